/* rate_limit.c - at most three jobs at a time: a Semaphore(3) shared by ten
 * tasks (asyncio's `async with sem:` around the work).
 *
 *     sem = asyncio.Semaphore(3)
 *
 *     async def job(i, secs):
 *         async with sem:
 *             print(f"{loop.time():.1f}  job {i} starts")
 *             await asyncio.sleep(secs)
 *             print(f"{loop.time():.1f}  job {i} done")
 *
 *     async def main():
 *         async with asyncio.TaskGroup() as tg:
 *             for i in range(10):
 *                 tg.create_task(job(i, SECS[i]))
 *
 * Jobs 0, 1 and 2 start at once; the others queue in spawn order.  Each
 * release hands the permit straight to the first job still waiting (it
 * never goes back to the pool while someone waits), so the queue is served
 * strictly first come, first served.  The program tracks how many jobs run
 * at once and prints the maximum: 3.
 *
 * The semaphore block keeps its waiter in the frame (weft_lock_block):
 * waiting allocates nothing.  Under WEFT_CLOCK=virtual (the test) the
 * sleeps take no real time and the output is exact.
 */
#include <stdio.h>
#include <weft.h>

enum { JOBS = 10, LIMIT = 3 };

/* How long each job works, in seconds. */
static const double SECS[JOBS] = {2, 1, 3, 1, 2, 1, 2, 3, 1, 1};

static int running, max_running;

struct job {
    WEFT_FRAME(int);
    weft_semaphore *sem;   /* argument */
    int id;                /* argument */
    weft_lock_block guard; /* the `async with sem:` block: its waiter and state */
};

WEFT_ASYNC(job)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_SEMAPHORE_BEGIN(self, guard, self->sem); /* waits for a permit */
    if (++running > max_running)
        max_running = running;
    printf("%4.1f  job %d starts  (%d running)\n", weft_loop_time(loop), self->id, running);
    WEFT_SLEEP(self, SECS[self->id]);
    printf("%4.1f  job %d done\n", weft_loop_time(loop), self->id);
    running--; /* (the demo's count; nothing here is cancelled) */
    WEFT_SEMAPHORE_END(self, guard); /* gives the permit back on every path */
    WEFT_END;
}

struct main_co {
    WEFT_FRAME(int);
    weft_semaphore sem; /* in the frame: frames never move */
    weft_group tg;
    int i;
};

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    weft_semaphore_init(&self->sem, loop, LIMIT);
    WEFT_GROUP_BEGIN(self, tg); /* async with TaskGroup() as tg: */
    for (self->i = 0; self->i < JOBS; self->i++)
        WEFT_GROUP_SPAWN(&self->tg, job, .sem = &self->sem, .id = self->i);
    WEFT_GROUP_END(self, tg); /* waits for all ten */
    printf("all done at %.1f; at most %d jobs ran at once (limit %d)\n", weft_loop_time(loop),
           max_running, LIMIT);
    WEFT_END;
}

int main(void)
{
    int err = WEFT_RUN(WEFT_ENV_OPTIONS, NULL, main_co);
    if (err)
        fprintf(stderr, "rate_limit: %s\n", weft_strerror(err));
    return err || max_running != LIMIT ? 1 : 0;
}
