/* queue_workers.c - three workers share a queue of work items (the asyncio
 * docs' Queue example, in the form Python 3.13's Queue.shutdown allows).
 *
 *     async def worker(name, queue):
 *         while True:
 *             try:
 *                 sleep_for = await queue.get()
 *             except asyncio.QueueShutDown:
 *                 break                              # no more work: done
 *             await asyncio.sleep(sleep_for)
 *             queue.task_done()
 *             print(f'{name} has slept for {sleep_for:.2f} seconds')
 *
 *     async def main():
 *         queue = asyncio.Queue()
 *         for _ in range(20):                        # twenty work items
 *             queue.put_nowait(random.uniform(0.05, 1.0))
 *         async with asyncio.TaskGroup() as tg:
 *             for i in range(3):
 *                 tg.create_task(worker(f'worker-{i}', queue))
 *             await queue.join()                     # every item done
 *             queue.shutdown()                       # the workers end
 *
 * Items are pointers: a sleep time in milliseconds travels as
 * (void *)(intptr_t)ms.  The "random" times come from a fixed-seed LCG, so
 * under WEFT_CLOCK=virtual (sleeps take no real time) the output is exact.
 * Each worker adds up what it slept; the three sums add up to the total of
 * the twenty items, while the loop clock shows that they slept in parallel.
 */
#include <stdint.h>
#include <stdio.h>
#include <weft.h>

#define ITEMS 20
#define WORKERS 3

/* async def worker(name, queue): loops until the queue is shut down. */
struct worker {
    WEFT_FRAME(int);
    const char *name;
    weft_queue *queue;
    int64_t *slept_ms; /* where to add up this worker's sleep time */
    void *item;        /* the current item */
    int err;           /* the get's outcome: 0, or WEFT_ESHUTDOWN at the end */
    weft_waiter w;     /* the queue's waiter node lives in the frame */
};

WEFT_ASYNC(worker)
{
    WEFT_BEGIN(self);
    for (;;) {
        /* A get that ends quietly at shutdown: the error goes to self->err
         * instead of unwinding (asyncio's `except QueueShutDown: break`). */
        WEFT_TRY_QUEUE_GET(self, self->queue, &self->w, self->item, self->err);
        if (self->err)
            break;
        WEFT_AWAIT(self, weft_sleep_ns(weft_task_loop(task), (intptr_t)self->item * 1000000));
        *self->slept_ms += (intptr_t)self->item;
        weft_queue_task_done(self->queue);
        printf("%s has slept for %.2f seconds\n", self->name, (double)(intptr_t)self->item / 1000);
    }
    WEFT_END;
}

/* A small LCG (the C standard's example rand), so the run is repeatable. */
static unsigned lcg(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return (*state >> 16) & 0x7fff;
}

struct main_co {
    WEFT_FRAME(int);
    weft_queue queue; /* frames never move: the queue can live here */
    weft_group tg;    /* the task group of the workers */
    int64_t slept_ms[WORKERS];
    int64_t total_ms;
    double started, elapsed; /* locals that live across an await: in the frame */
    int i;
    weft_waiter w;
};

WEFT_ASYNC(main_co)
{
    static const char *names[WORKERS] = {"worker-0", "worker-1", "worker-2"};
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    weft_queue_init(&self->queue, loop, 0, NULL); /* unbounded */

    { /* a local that must not cross a suspension: a block of its own */
        unsigned seed = 2024;
        for (int i = 0; i < ITEMS; i++) {
            int64_t ms = 50 + lcg(&seed) % 951; /* 0.05 .. 1.00 s */
            self->total_ms += ms;
            weft_queue_put_nowait(&self->queue, (void *)(intptr_t)ms);
        }
    }

    /* async with TaskGroup() as tg: the block's end waits for every worker,
     * on every path (an error, a cancellation), so the queue outlives them. */
    WEFT_GROUP_BEGIN(self, tg);
    for (self->i = 0; self->i < WORKERS; self->i++)
        WEFT_GROUP_SPAWN(&self->tg, worker, .name = names[self->i], .queue = &self->queue,
                         .slept_ms = &self->slept_ms[self->i]);

    /* Wait until every item has been got and marked done. */
    self->started = weft_loop_time(loop);
    WEFT_AWAIT(self, weft_queue_join(&self->queue, &self->w));
    self->elapsed = weft_loop_time(loop) - self->started;

    /* No more work: shut the queue down, and each worker's next get ends
     * its loop.  Nobody is cancelled. */
    weft_queue_shutdown(&self->queue, false);
    WEFT_GROUP_END(self, tg);

    printf("====\n");
    printf("%d workers slept in parallel for %.2f seconds\n", WORKERS, self->elapsed);
    for (int i = 0; i < WORKERS; i++)
        printf("%s slept %.2f seconds in total\n", names[i], (double)self->slept_ms[i] / 1000);
    printf("total expected sleep time: %.2f seconds\n", (double)self->total_ms / 1000);

    WEFT_FINALLY;
    weft_queue_destroy(&self->queue);
    WEFT_END;
}

int main(void)
{
    int err = WEFT_RUN(WEFT_ENV_OPTIONS, NULL, main_co);
    if (err)
        fprintf(stderr, "queue_workers: %s\n", weft_strerror(err));
    return err ? 1 : 0;
}
