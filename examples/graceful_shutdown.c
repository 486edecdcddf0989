/* graceful_shutdown.c - a server-like task group that stops cleanly on
 * SIGTERM (or Ctrl-C): the main task is cancelled, the group cancels its
 * workers, and each worker's cleanup runs before the program exits.
 *
 *     async def worker(name, period):
 *         served = 0
 *         try:
 *             while True:                        # serve until cancelled
 *                 await asyncio.sleep(period)
 *                 served += 1
 *                 print(f'{name}: request {served}')
 *         finally:
 *             print(f'{name}: cleanup, {served} served')
 *
 *     async def main():
 *         loop = asyncio.get_running_loop()
 *         main_task = asyncio.current_task()
 *         loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
 *         loop.call_later(2.6, os.kill, os.getpid(), signal.SIGTERM)
 *         try:
 *             async with asyncio.TaskGroup() as tg:
 *                 for name, period in (('a', 0.5), ('b', 0.7), ('c', 1.1)):
 *                     tg.create_task(worker(f'worker-{name}', period))
 *         finally:
 *             print('main: every worker stopped')
 *
 *     asyncio.run(main())    # Ctrl-C cancels main the same way
 *
 * WEFT_RUN_OPTS with WEFT_RUN_CANCEL_ON_SIGNALS does what the two
 * signal-handling lines do, for SIGINT and SIGTERM, and returns 128 +
 * signo (143 for SIGTERM) once the cleanup is over.  A real server would
 * return that status to its supervisor; this example sends itself the
 * SIGTERM after 2.6 s of loop time (a stand-in for `kill <pid>`), so it
 * reports the status and exits 0.  Under WEFT_CLOCK=virtual the output is
 * exact.
 */
#include <signal.h>
#include <stdio.h>
#include <weft.h>

static double t0; /* the loop time at the start: lines show the time since */

/* async def worker(name, period): serves until cancelled. */
struct worker {
    WEFT_FRAME(int);
    const char *name; /* argument */
    double period;    /* argument */
    int served;
};

WEFT_ASYNC(worker)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    for (;;) {
        WEFT_SLEEP(self, self->period);
        self->served++;
        printf("%.1f: %s: request %d\n", weft_loop_time(loop) - t0, self->name, self->served);
    }
    WEFT_FINALLY; /* runs when the group cancels the worker */
    printf("%.1f: %s: cleanup, %d served\n", weft_loop_time(loop) - t0, self->name, self->served);
    WEFT_END;
}

/* The stand-in for `kill -TERM <pid>` from outside. */
static void send_sigterm(void *arg)
{
    (void)arg;
    printf("%.1f: sending SIGTERM\n", weft_loop_time(weft_running_loop()) - t0);
    raise(SIGTERM);
}

struct main_co {
    WEFT_FRAME(int);
    weft_group tg;
};

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    t0 = weft_loop_time(loop);
    weft_call_later(loop, 2.6, send_sigterm, NULL, NULL);
    WEFT_GROUP_BEGIN(self, tg); /* async with TaskGroup() as tg: */
    WEFT_GROUP_SPAWN(&self->tg, worker, .name = "worker-a", .period = 0.5);
    WEFT_GROUP_SPAWN(&self->tg, worker, .name = "worker-b", .period = 0.7);
    WEFT_GROUP_SPAWN(&self->tg, worker, .name = "worker-c", .period = 1.1);
    WEFT_GROUP_END(self, tg); /* the workers never end by themselves */
    WEFT_FINALLY;
    printf("%.1f: main: every worker stopped (%s)\n", weft_loop_time(loop) - t0,
           self->co.err == -ECANCELED ? "cancelled" : weft_strerror(self->co.err));
    WEFT_END;
}

int main(void)
{
    const weft_run_options ro = {.loop = WEFT_ENV_OPTIONS, .flags = WEFT_RUN_CANCEL_ON_SIGNALS};
    int rc = WEFT_RUN_OPTS(&ro, NULL, main_co);
    printf("WEFT_RUN_OPTS returned %d", rc);
    if (rc > 128)
        printf(" (128 + signal %d)", rc - 128);
    printf("\n");
    return rc == 128 + SIGTERM || rc == 128 + SIGINT ? 0 : 1; /* the shutdowns we expect */
}
