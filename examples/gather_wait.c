/* gather_wait.c - gather vs. wait, a wait_for timeout, and shield
 * (seeds 002 and 003).
 *
 *     async def work(x):
 *         print(f'work({x}) started')
 *         try:
 *             await asyncio.sleep(x)
 *         except asyncio.CancelledError:
 *             print(f'work({x}) cancelled')
 *             raise
 *         print(f'work({x}) finished')
 *         return x * 10
 *
 *     async def main():
 *         # 1. gather: results in argument order
 *         print(await asyncio.gather(work(3), work(1)))     # [30, 10]
 *         # 2. wait: (done, pending), nothing cancelled
 *         fast, slow = create_task(work(1)), create_task(work(3))
 *         done, pending = await asyncio.wait({fast, slow},
 *                                            return_when=FIRST_COMPLETED)
 *         print(await slow)                                  # 30
 *         # 3. wait_for: cancel on timeout
 *         try:
 *             await asyncio.wait_for(work(5), timeout=1)
 *         except TimeoutError as e:
 *             print('wait_for:', e)
 *         # 4. shield: the timeout cancels the shield, not the task
 *         inner = create_task(work(2))
 *         try:
 *             await asyncio.wait_for(asyncio.shield(inner), timeout=1)
 *         except TimeoutError:
 *             print('timed out; inner still running')
 *         print(await inner)                                 # 20
 *
 * Every line carries the loop time in seconds; under WEFT_CLOCK=virtual it
 * starts at 0 and each part starts where the previous one ended.
 */
#include <stdio.h>
#include <weft.h>

struct work {
    WEFT_FRAME(int);
    int x;
};

WEFT_ASYNC(work)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    printf("%.0f: work(%d) started\n", weft_loop_time(loop), self->x);
    WEFT_SLEEP(self, self->x);
    printf("%.0f: work(%d) finished\n", weft_loop_time(loop), self->x);
    WEFT_RETURN(self, self->x * 10);
    WEFT_FINALLY; /* the `except CancelledError` (self->co.err says why) */
    if (self->co.err == -ECANCELED)
        printf("%.0f: work(%d) cancelled\n", weft_loop_time(loop), self->x);
    WEFT_END;
}

struct main_co {
    WEFT_FRAME(int);
    weft_future *fs[2];    /* handed to gather/wait, which take them */
    const weft_results *r; /* valid until the next await */
    weft_task *fast, *slow, *inner;
    int err;
};

/* Print "[a, b, ...]" from a gather's results, in argument order. */
static void print_results(const weft_results *r)
{
    printf("[");
    for (size_t i = 0; i < weft_results_count(r); i++) {
        weft_value v = {0};
        weft_results_get(r, i, &v);
        printf("%s%lld", i ? ", " : "", (long long)v.i);
    }
    printf("]");
}

/* Print wait's "done" and "pending" sets, naming entry i names[i]. */
static void print_sets(const weft_results *r, const char *const names[])
{
    for (int done = 1; done >= 0; done--) {
        printf("%s: {", done ? "done" : ", pending");
        const char *sep = "";
        for (size_t i = 0; i < weft_results_count(r); i++) {
            if (weft_results_done(r, i) == done) {
                printf("%s%s", sep, names[i]);
                sep = ", ";
            }
        }
        printf("}");
    }
    printf("\n");
}

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);

    /* 1. gather: work(1) finishes first, but the results keep argument
     * order.  Spawn in separate statements: C leaves the evaluation order
     * of an initializer list unspecified, and spawn order is start order. */
    printf("== gather ==\n");
    self->fs[0] = WEFT_SPAWN(loop, work, .x = 3);
    self->fs[1] = WEFT_SPAWN(loop, work, .x = 1);
    WEFT_AWAIT(self, weft_gather(loop, self->fs, 2, 0)); /* takes both references */
    self->r = WEFT_RESULT(self).p;
    printf("%.0f: gather -> ", weft_loop_time(loop));
    print_results(self->r);
    printf("\n");

    /* 2. wait: returns when the first one is done, and says which are
     * done; it never cancels the rest.  We keep our own task references,
     * so weft_wait gets new ones. */
    printf("== wait ==\n");
    self->fast = WEFT_SPAWN(loop, work, .x = 1);
    self->slow = WEFT_SPAWN(loop, work, .x = 3);
    self->fs[0] = weft_future_ref(self->fast);
    self->fs[1] = weft_future_ref(self->slow);
    WEFT_AWAIT(self, weft_wait(loop, self->fs, 2, WEFT_FIRST_COMPLETED, -1 /* no timeout */));
    self->r = WEFT_RESULT(self).p;
    printf("%.0f: wait -> ", weft_loop_time(loop));
    print_sets(self->r, (const char *[]){"work(1)", "work(3)"});
    WEFT_AWAIT(self, weft_future_ref(self->slow));
    printf("%.0f: await slow -> %lld\n", weft_loop_time(loop), (long long)WEFT_RESULT(self).i);

    /* 3. wait_for: on timeout the task is cancelled, and the result
     * (-ETIMEDOUT) arrives once it has finished unwinding.  TRY_AWAIT
     * catches the error instead of propagating it. */
    printf("== wait_for ==\n");
    WEFT_TRY_AWAIT(self, weft_wait_for(WEFT_SPAWN(loop, work, .x = 5), 1.0), self->err);
    printf("%.0f: wait_for -> %s\n", weft_loop_time(loop), weft_strerror(self->err));

    /* 4. shield: wait_for's timeout cancels the shield future, which does
     * not pass the cancellation on: the inner task runs to the end. */
    printf("== shield ==\n");
    self->inner = WEFT_SPAWN(loop, work, .x = 2);
    WEFT_TRY_AWAIT(self, weft_wait_for(weft_shield(weft_future_ref(self->inner)), 1.0), self->err);
    printf("%.0f: wait_for(shield) -> %s; inner is %s\n", weft_loop_time(loop),
           weft_strerror(self->err), weft_future_done(self->inner) ? "done" : "still running");
    WEFT_AWAIT(self, weft_future_ref(self->inner));
    printf("%.0f: await inner -> %lld\n", weft_loop_time(loop), (long long)WEFT_RESULT(self).i);

    WEFT_FINALLY;
    weft_future_unref(self->fast);
    weft_future_unref(self->slow);
    weft_future_unref(self->inner);
    WEFT_END;
}

int main(void)
{
    int err = WEFT_RUN(WEFT_ENV_OPTIONS, NULL, main_co);
    if (err)
        fprintf(stderr, "gather_wait: %s\n", weft_strerror(err));
    return err ? 1 : 0;
}
