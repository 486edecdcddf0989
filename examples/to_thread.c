/* to_thread.c - blocking calls on worker threads while the loop stays
 * responsive (asyncio.to_thread).
 *
 *     def blocking_io(n):                   # a blocking library call
 *         time.sleep(1)
 *         return n * 10
 *
 *     async def ticker():
 *         while True:
 *             await asyncio.sleep(0.2)
 *             print('tick')
 *
 *     async def call(n):
 *         r = await asyncio.to_thread(blocking_io, n)
 *         print(f'call {n} done: {r}')
 *
 *     async def main():
 *         t = asyncio.create_task(ticker())
 *         await asyncio.gather(call(1), call(2), call(3))
 *         t.cancel()
 *
 * sleep(1) stands in for any call that blocks its thread: a database
 * client, a compression library, a synchronous HTTP request.  Called on the
 * loop's thread it would freeze every task for a second, three times over.
 * weft_to_thread runs it on a worker of the loop's default executor (4
 * threads), so the three calls overlap and take about 1 s, and the ticker
 * keeps ticking all the while: the result comes back to the loop's thread,
 * where the task that awaited it resumes.
 *
 * This example runs on the real clock (it does not read WEFT_CLOCK):
 * sleep(1) takes real time, whatever a virtual loop clock says.  Its output
 * therefore varies a little from run to run, and its test checks the order
 * (ticks before the first call is done, three calls done) and the elapsed
 * time the program measures (at least 1 s, well under 3 s).
 */
#include <stdio.h>
#include <unistd.h>
#include <weft.h>

/* Runs on a worker thread: anything that blocks is fine here, and nothing
 * here may touch the loop. */
static int blocking_io(void *arg, weft_value *out)
{
    sleep(1);
    out->i = (int64_t)(intptr_t)arg * 10;
    return 0;
}

/* Prints a tick every 0.2 s until it is cancelled. */
struct ticker {
    WEFT_FRAME(int);
    double t0;
    int *ticks; /* main's counter: frames never move */
};

WEFT_ASYNC(ticker)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    for (;;) {
        WEFT_SLEEP(self, 0.2);
        ++*self->ticks;
        printf("tick %d at %.2f s\n", *self->ticks, weft_loop_time(loop) - self->t0);
    }
    WEFT_END;
}

/* One blocking call, awaited: the task parks while a worker runs it. */
struct call {
    WEFT_FRAME(int);
    int n;
    double t0;
};

WEFT_ASYNC(call)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_TO_THREAD(self, blocking_io, (void *)(intptr_t)self->n);
    printf("call %d done at %.2f s: %lld\n", self->n, weft_loop_time(loop) - self->t0,
           (long long)WEFT_RESULT(self).i);
    WEFT_END;
}

struct main_co {
    WEFT_FRAME(int);
    double t0;
    int ticks;
    weft_task *ticker;
    weft_future *calls[3];
};

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    self->t0 = weft_loop_time(loop);
    printf("three blocking calls of 1 s each on worker threads; a tick every 0.2 s\n");
    self->ticker = WEFT_SPAWN(loop, ticker, .t0 = self->t0, .ticks = &self->ticks);
    for (int i = 0; i < 3; i++) /* spawned in order: the calls start in order */
        self->calls[i] = WEFT_SPAWN(loop, call, .n = i + 1, .t0 = self->t0);
    WEFT_AWAIT(self, weft_gather(loop, self->calls, 3, 0)); /* takes the references */
    printf("all 3 calls done in %.2f s (one after another: 3 s); the loop ticked %d times "
           "meanwhile\n",
           weft_loop_time(loop) - self->t0, self->ticks);
    weft_task_cancel(self->ticker);
    WEFT_FINALLY;
    weft_future_unref(self->ticker);
    WEFT_END;
}

int main(void)
{
    return WEFT_RUN(NULL, NULL, main_co) ? 1 : 0;
}
