/* task_group.c - asyncio.TaskGroup as a block of the body: the children's
 * results after the group, every error when one fails, and a timeout
 * around a group (Python 3.11+).
 *
 *     async def fetch(i, fail=False):
 *         try:
 *             await asyncio.sleep(i)
 *         except asyncio.CancelledError:
 *             print(f'fetch({i}) cancelled')
 *             raise
 *         if fail:
 *             raise ConnectionResetError
 *         print(f'fetch({i}) done')
 *         return i * 10
 *
 *     async def main():
 *         # 1. the group waits for all; the results are there afterwards
 *         async with asyncio.TaskGroup() as tg:
 *             ts = [tg.create_task(fetch(i)) for i in (1, 2, 3)]
 *         print([t.result() for t in ts])
 *         # 2. a failing child cancels the others; except* sees every error
 *         try:
 *             async with asyncio.TaskGroup() as tg:
 *                 for i in (1, 2, 3):
 *                     tg.create_task(fetch(i, fail=(i == 2)))
 *         except* ConnectionResetError as eg:
 *             print(len(eg.exceptions), 'error(s)')
 *         # 3. a timeout around a group cancels the children, then fires
 *         try:
 *             async with asyncio.timeout(1.5):
 *                 async with asyncio.TaskGroup() as tg:
 *                     for i in (1, 2, 3):
 *                         tg.create_task(fetch(i))
 *         except TimeoutError:
 *             print('timed out')
 *
 * Each block keeps its state in a member of main's frame (a weft_group, a
 * weft_timeout, a weft_try), so no helper coroutine is needed.  A body
 * opens each member's block once, hence one member per block.  Every line
 * carries the loop time; under WEFT_CLOCK=virtual the output is exact.
 */
#include <stdio.h>
#include <weft.h>

struct fetch {
    WEFT_FRAME(int);
    int i;     /* argument */
    bool fail; /* argument */
};

WEFT_ASYNC(fetch)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_SLEEP(self, self->i);
    if (self->fail)
        WEFT_THROW(self, -ECONNRESET);
    printf("%.1f: fetch(%d) done\n", weft_loop_time(loop), self->i);
    WEFT_RETURN(self, self->i * 10);
    WEFT_FINALLY;
    if (self->co.err == -ECANCELED)
        printf("%.1f: fetch(%d) cancelled\n", weft_loop_time(loop), self->i);
    WEFT_END;
}

struct main_co {
    WEFT_FRAME(int);
    weft_group g1, g2, g3; /* one member per group block */
    weft_try t2, t3;
    weft_timeout to;
    int i, err;
};

/* Print each child's outcome, read after the join. */
static void print_outcomes(const weft_group *g)
{
    printf("  [");
    for (size_t k = 0; k < weft_group_size(g); k++) {
        weft_value v;
        int err = weft_group_result(g, k, &v);
        if (err)
            printf("%s%s", k ? ", " : "", weft_strerror(err));
        else
            printf("%s%lld", k ? ", " : "", (long long)v.i);
    }
    printf("]\n");
}

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);

    /* 1. async with TaskGroup(): the end of the block joins. */
    printf("== all succeed ==\n");
    WEFT_GROUP_BEGIN(self, g1);
    for (self->i = 1; self->i <= 3; self->i++)
        WEFT_GROUP_SPAWN(&self->g1, fetch, .i = self->i);
    WEFT_GROUP_END(self, g1);
    printf("%.1f: group done\n", weft_loop_time(loop));
    print_outcomes(&self->g1);

    /* 2. fetch(2) fails at 2 s: the group cancels fetch(3) and the body,
     * waits for them, and its end unwinds with the first child error.  The
     * try block catches it (except*), and the body goes on. */
    printf("== one fails ==\n");
    WEFT_TRY(self, t2);
    WEFT_GROUP_BEGIN(self, g2);
    for (self->i = 1; self->i <= 3; self->i++)
        WEFT_GROUP_SPAWN(&self->g2, fetch, .i = self->i, .fail = self->i == 2);
    WEFT_GROUP_END(self, g2);
    WEFT_EXCEPT(self, t2, self->err);
    printf("%.1f: group failed: %s, %zu error(s)\n", weft_loop_time(loop),
           weft_strerror(self->err), weft_group_errors(&self->g2, NULL, 0));
    print_outcomes(&self->g2);

    /* 3. The timeout cancels the task at 1.5 s; the group cancels its
     * children and waits for them; the cancellation that unwinds out of
     * the timeout block turns into -ETIMEDOUT there. */
    printf("== timeout around a group ==\n");
    WEFT_TIMEOUT_BEGIN(self, to, 1.5);
    WEFT_GROUP_BEGIN(self, g3);
    for (self->i = 1; self->i <= 3; self->i++)
        WEFT_GROUP_SPAWN(&self->g3, fetch, .i = self->i);
    WEFT_GROUP_END(self, g3);
    WEFT_TIMEOUT_TRY_END(self, to, self->err);
    printf("%.1f: %s\n", weft_loop_time(loop), weft_strerror(self->err));
    print_outcomes(&self->g3);
    WEFT_END;
}

int main(void)
{
    int err = WEFT_RUN(WEFT_ENV_OPTIONS, NULL, main_co);
    if (err)
        fprintf(stderr, "task_group: %s\n", weft_strerror(err));
    return err ? 1 : 0;
}
