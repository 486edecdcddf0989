/* run_modes.c - the ways to drive a loop by hand (seed 002): run until a
 * future is done, run until stopped, stop from a done callback, and what a
 * closed loop says.  Each part gets a fresh loop, so each starts at time 0
 * under WEFT_CLOCK=virtual.
 *
 * The seed's coroutine, with the loop.stop() of run_forever_and_stop.py:
 *
 *     async def is_coroutine(loop, x, stop=False):
 *         print(f'sleep {x} second')
 *         await asyncio.sleep(x)
 *         print(f'done by sleep {x} second')
 *         if stop:
 *             loop.stop()
 */
#include <stdio.h>
#include <weft.h>

struct is_coroutine {
    WEFT_FRAME(int);
    double x;
    bool stop; /* stop the loop when done */
};

WEFT_ASYNC(is_coroutine)
{
    WEFT_BEGIN(self);
    printf("sleep %g second\n", self->x);
    WEFT_SLEEP(self, self->x);
    printf("done by sleep %g second\n", self->x);
    if (self->stop)
        weft_loop_stop(weft_task_loop(task)); /* the loop is always at hand */
    WEFT_END;
}

/* ---- 1. run_until_complete ------------------------------------------------
 *     loop.run_until_complete(is_coroutine(loop, 5))
 * WEFT_RUN_UNTIL_COMPLETE takes the coroutine, as Python does: it spawns
 * the task, runs the loop until the task is done, and drops it.  (For a
 * future you already have, weft_loop_run_until_complete takes the future:
 * part 2 uses it.) */
static int part_run_until_complete(weft_loop *loop)
{
    int err = WEFT_RUN_UNTIL_COMPLETE(loop, NULL, is_coroutine, .x = 5); /* the task's error */
    printf("run_until_complete returned '%s' at %.0f s\n", weft_strerror(err),
           weft_loop_time(loop));
    return err;
}

/* ---- 2. run_forever + stop ------------------------------------------------------
 *     asyncio.ensure_future(is_coroutine(loop, 3, stop=True))
 *     asyncio.ensure_future(is_coroutine(loop, 1, stop=True))
 *     loop.run_forever()
 * The 1 s coroutine stops the loop before the 3 s one is done.  Python
 * would later warn "Task was destroyed but it is pending!"; weft would
 * report "released while pending" on close.  We clean up instead: cancel
 * the task and run the loop until it has finished. */
static int part_run_forever(weft_loop *loop)
{
    weft_task *slow = WEFT_SPAWN(loop, is_coroutine, .x = 3, .stop = true);
    weft_task *fast = WEFT_SPAWN(loop, is_coroutine, .x = 1, .stop = true);
    int err = slow && fast ? weft_loop_run_forever(loop) : weft_last_error();
    if (!err) {
        printf("run_forever returned at %.0f s\n", weft_loop_time(loop));
        printf("the 3 s task is %s\n", weft_future_done(slow) ? "done" : "still pending");
        weft_task_cancel(slow); /* a request: the task sees it at its sleep */
        err = weft_loop_run_until_complete(loop, slow);
        printf("after cancel: '%s', cancelled() = %s, at %.0f s\n", weft_strerror(err),
               weft_future_cancelled(slow) ? "true" : "false", weft_loop_time(loop));
        err = err == -ECANCELED ? 0 : err; /* the outcome we asked for */
    }
    weft_future_unref(slow); /* NULL-safe */
    weft_future_unref(fast);
    return err;
}

/* ---- 3. forever_to_complete: stop from a done callback ------------------------
 *     def done_callback(loop, futu):
 *         loop.stop()
 *
 *     futus = asyncio.gather(is_coroutine(loop, 1), is_coroutine(loop, 3))
 *     futus.add_done_callback(functools.partial(done_callback, loop))
 *     loop.run_forever() */
static void done_callback(weft_future *futu, void *arg)
{
    printf("gather done ('%s'): stopping the loop\n", weft_strerror(weft_future_error(futu)));
    weft_loop_stop(arg);
}

static int part_forever_to_complete(weft_loop *loop)
{
    /* Two statements, not one initializer list: C does not specify the
     * order in which an initializer list is evaluated, and the order of the
     * spawns is the order in which the tasks start. */
    weft_future *fs[2];
    fs[0] = WEFT_SPAWN(loop, is_coroutine, .x = 1);
    fs[1] = WEFT_SPAWN(loop, is_coroutine, .x = 3);
    weft_future *futus = weft_gather(loop, fs, 2, 0); /* takes both references */
    if (!futus)
        return weft_last_error();
    int err = weft_future_add_done_callback(futus, done_callback, loop);
    if (!err)
        err = weft_loop_run_forever(loop);
    if (!err)
        printf("run_forever returned at %.0f s\n", weft_loop_time(loop));
    weft_future_unref(futus);
    return err;
}

/* ---- 4. a closed loop --------------------------------------------------------------
 *     loop.run_until_complete(is_coroutine(loop, 1))
 *     loop.close()
 *     loop.run_until_complete(is_coroutine(loop, 1))   # RuntimeError:
 *                                                      # Event loop is closed
 * weft returns WEFT_ECLOSED instead of raising: from the spawn (which
 * returns NULL and sets weft_last_error()) and from every run function. */
static int part_closed(weft_loop *loop)
{
    weft_task *t = WEFT_SPAWN(loop, is_coroutine, .x = 1);
    int err = t ? weft_loop_run_until_complete(loop, t) : weft_last_error();
    weft_future_unref(t);
    if (err)
        return err;
    weft_loop_close(loop);
    printf("loop closed: is_closed() = %s\n", weft_loop_is_closed(loop) ? "true" : "false");

    t = WEFT_SPAWN(loop, is_coroutine, .x = 1);
    printf("spawn: %s, '%s'\n", t ? "a task" : "NULL", weft_strerror(weft_last_error()));
    weft_future_unref(t);
    err = weft_loop_run_forever(loop);
    printf("run_forever: '%s'\n", weft_strerror(err));
    return err == WEFT_ECLOSED ? 0 : WEFT_ESTATE; /* the error is what we show */
}

int main(void)
{
    static const struct {
        const char *title;
        int (*run)(weft_loop *loop);
    } parts[] = {
        {"run_until_complete", part_run_until_complete},
        {"run_forever + stop", part_run_forever},
        {"forever_to_complete: gather + done callback", part_forever_to_complete},
        {"close", part_closed},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        printf("%s== %s ==\n", i ? "\n" : "", parts[i].title);
        weft_loop *loop = NULL;
        int err = weft_loop_new(&loop, WEFT_ENV_OPTIONS);
        if (!err)
            err = parts[i].run(loop);
        weft_loop_destroy(loop); /* closes it first if needed; NULL-safe */
        if (err) {
            fprintf(stderr, "run_modes: %s: %s\n", parts[i].title, weft_strerror(err));
            return 1;
        }
    }
    return 0;
}
