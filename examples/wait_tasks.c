/* wait_tasks.c - two tasks on a loop you drive yourself, awaited together
 * with wait (seed 001):
 *
 *     loop = asyncio.get_event_loop()
 *
 *     async def example1():
 *         print("Start example1 coroutin.")
 *         await asyncio.sleep(1)
 *         print("Finish example1 coroutin.")
 *
 *     async def example2():
 *         print("Start example2 coroutin.")
 *         await asyncio.sleep(2)
 *         print("Finish example2 coroutin.")
 *
 *     tasks = [asyncio.ensure_future(example1()),
 *              asyncio.ensure_future(example2())]
 *     loop.run_until_complete(asyncio.wait(tasks))
 *
 * (The strings, typo included, are the seed's.)  ensure_future(coroutine)
 * is WEFT_SPAWN: C knows at compile time that example1 is a coroutine, so
 * there is nothing to "ensure".  The last line is ours: it shows that the
 * two sleeps overlapped (2 s in total, not 1 + 2).
 */
#include <stdio.h>
#include <weft.h>

struct example1 {
    WEFT_FRAME(int);
};

WEFT_ASYNC(example1)
{
    WEFT_BEGIN(self);
    printf("Start example1 coroutin.\n");
    WEFT_SLEEP(self, 1);
    printf("Finish example1 coroutin.\n");
    WEFT_END;
}

struct example2 {
    WEFT_FRAME(int);
};

WEFT_ASYNC(example2)
{
    WEFT_BEGIN(self);
    printf("Start example2 coroutin.\n");
    WEFT_SLEEP(self, 2);
    printf("Finish example2 coroutin.\n");
    WEFT_END;
}

int main(void)
{
    weft_loop *loop;
    int err = weft_loop_new(&loop, WEFT_ENV_OPTIONS);
    if (err) {
        fprintf(stderr, "wait_tasks: %s\n", weft_strerror(err));
        return 1;
    }

    /* Tasks can be spawned before the loop runs: their first steps wait in
     * the ready queue.  weft_wait takes both references, so the array needs
     * no cleanup.  Constructors return NULL on failure: a failed spawn
     * makes weft_wait return NULL too, and weft_last_error() says why.
     * (Two statements rather than an initializer list, whose evaluation
     * order C leaves unspecified: spawn order is start order.) */
    weft_future *tasks[2];
    tasks[0] = WEFT_SPAWN(loop, example1);
    tasks[1] = WEFT_SPAWN(loop, example2);
    weft_future *all = weft_wait(loop, tasks, 2, WEFT_ALL_COMPLETED, -1 /* no timeout */);

    err = all ? weft_loop_run_until_complete(loop, all) : weft_last_error();
    if (!err)
        printf("wait returned at %.0f s\n", weft_loop_time(loop));
    else
        fprintf(stderr, "wait_tasks: %s\n", weft_strerror(err));

    weft_future_unref(all);
    weft_loop_destroy(loop);
    return err ? 1 : 0;
}
