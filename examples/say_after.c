/* say_after.c - awaiting coroutines one after the other vs. running them
 * as concurrent tasks (seed 000; the asyncio docs' "Coroutines and Tasks").
 *
 *     async def say_after(delay, what):
 *         await asyncio.sleep(delay)
 *         print(what)
 *
 *     async def main():                          # part 1: 1 s + 2 s = 3 s
 *         print(f"started at {time.strftime('%X')}")
 *         await say_after(1, 'hello')
 *         await say_after(2, 'world')
 *         print(f"finished at {time.strftime('%X')}")
 *
 *     async def main():                          # part 2: max(1, 2) = 2 s
 *         task1 = asyncio.create_task(say_after(1, 'hello'))
 *         task2 = asyncio.create_task(say_after(2, 'world'))
 *         print(f"started at {time.strftime('%X')}")
 *         await task1
 *         await task2
 *         print(f"finished at {time.strftime('%X')}")
 *
 * Both parts run in one program, on one loop, so part 2 starts where part 1
 * ended.  Instead of the wall-clock time ('%X') it prints the loop time in
 * whole seconds; under WEFT_CLOCK=virtual that starts at 0 and the sleeps
 * take no real time at all, so the output is exact: 0, 3, then 3, 5.
 */
#include <stdio.h>
#include <weft.h>

/* async def say_after(delay, what): the arguments live in the frame. */
struct say_after {
    WEFT_FRAME(int);
    double delay;
    const char *what;
};

WEFT_ASYNC(say_after)
{
    WEFT_BEGIN(self);
    WEFT_SLEEP(self, self->delay);
    printf("%s\n", self->what);
    WEFT_END;
}

/* Everything main() keeps across an await goes in its frame: the child
 * frame for the inline calls, and the two task handles. */
struct main_co {
    WEFT_FRAME(int);
    struct say_after child; /* storage for `await say_after(...)` */
    weft_task *task1, *task2;
};

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task); /* recomputed on every resume */
    WEFT_BEGIN(self);

    /* Part 1: `await say_after(...)` runs the child inline, in this task:
     * WEFT_CALL.  The second call starts only when the first is done. */
    printf("sequential:\n");
    printf("started at %.0f\n", weft_loop_time(loop));
    WEFT_CALL(self, say_after, &self->child, .delay = 1, .what = "hello");
    WEFT_CALL(self, say_after, &self->child, .delay = 2, .what = "world");
    printf("finished at %.0f\n", weft_loop_time(loop));

    /* Part 2: asyncio.create_task is WEFT_SPAWN.  Both tasks are queued now
     * and start at the next iteration, so their sleeps overlap. */
    printf("concurrent:\n");
    self->task1 = WEFT_SPAWN(loop, say_after, .delay = 1, .what = "hello");
    self->task2 = WEFT_SPAWN(loop, say_after, .delay = 2, .what = "world");
    printf("started at %.0f\n", weft_loop_time(loop));
    /* WEFT_AWAIT consumes a reference.  We keep ours (dropped in FINALLY,
     * on every path), so we hand it a new one. */
    WEFT_AWAIT(self, weft_future_ref(self->task1));
    WEFT_AWAIT(self, weft_future_ref(self->task2));
    printf("finished at %.0f\n", weft_loop_time(loop));

    WEFT_FINALLY;
    weft_future_unref(self->task1); /* NULL-safe */
    weft_future_unref(self->task2);
    WEFT_END;
}

int main(void)
{
    int err = WEFT_RUN(WEFT_ENV_OPTIONS, NULL, main_co);
    if (err)
        fprintf(stderr, "say_after: %s\n", weft_strerror(err));
    return err ? 1 : 0;
}
