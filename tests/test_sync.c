/* tests/test_sync.c - Event, Lock, Semaphore, BoundedSemaphore, Condition
 * and Barrier (include/weft/sync.h).  One guarantee per test.
 *
 * Each test cites what it pins: S-EVENT-n, S-LOCK-n, S-SEM-n, S-COND-n,
 * S-BARRIER-n (shared/reference/asyncio-semantics.md, section 5) or P-8
 * (section 7: cancel-after-wake).  Where weft deliberately differs from
 * asyncio the comment says so, and why (also in docs/sync.md).
 *
 * For every primitive the four cancel-after-wake interleavings are pinned:
 *   (1) served (woken) then cancelled before its task runs: the resource
 *       goes to the next waiter, or back to the primitive;
 *   (2) cancelled then served with no iteration in between: the release
 *       skips it;
 *   (3) cancelled while queued: it leaves the queue;
 *   (4) timed out while queued, through weft_wait_for and through a
 *       timeout scope (WEFT_TRY_TIMEOUT_CALL) around a child coroutine.
 *
 * Bodies never call cmocka asserts (a longjmp out of a running loop would
 * leave it running): they record into globals, the test asserts afterwards.
 * Every loop uses the virtual clock and a counting allocator; finish()
 * destroys the loop and asserts that every block came back.
 */
#include "weft_test.h"

/* ---- running (more in weft_test.h) ------------------------------------------------ */

/* Run every task to its end and drop the references. */
static void run_all(weft_loop *loop, weft_task **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t[i]) {
            weft_loop_run_until_complete(loop, t[i]);
            assert_true(weft_future_done(t[i]));
            weft_future_unref(t[i]);
            t[i] = NULL;
        }
}

static int64_t now_ms(weft_loop *loop)
{
    return weft_loop_now(loop) / 1000000;
}

/* ---- recorders ------------------------------------------------------------------------ */

#define MAXID 16

/* g_log (weft_test.h): ids, in the order they got the resource */
static int g_err[MAXID];             /* each task's error at its FINALLY */
static int g_fin[MAXID];             /* FINALLY entries */
static int64_t g_val[MAXID];         /* value of the wait (barrier index) */
static int64_t g_got_ms[MAXID];      /* loop time when served */
static int64_t g_fin_ms[MAXID];      /* loop time at FINALLY */
static bool g_locked_at[MAXID];      /* lock held when the wait returned */
static bool g_fin_locked[MAXID];     /* lock held in FINALLY */
static int g_owner, g_violations;    /* who holds the lock; double holds */
static int g_holders, g_max_holders; /* semaphore permits in use */
static int g_counter, g_pred_calls;  /* condition wait_for state */
static long g_cycles;                /* allocation test */

/* Lock ownership bookkeeping: a claim while someone holds it is a
 * violation (two holders), so is a release by someone else. */
static void claim(int id)
{
    if (g_owner != 0)
        g_violations++;
    g_owner = id;
}

static void unclaim(int id)
{
    if (g_owner != id)
        g_violations++;
    g_owner = 0;
}

/* finish() also checks that nothing was reported (no task left pending, no
 * failure unobserved); every report is printed. */
static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 120, .check_reports = true, .echo_reports = true});
    for (int i = 0; i < MAXID; i++) {
        g_err[i] = 1; /* 1: FINALLY not reached */
        g_fin[i] = 0;
        g_val[i] = g_got_ms[i] = g_fin_ms[i] = -1;
        g_locked_at[i] = g_fin_locked[i] = false;
    }
    g_owner = g_violations = g_holders = g_max_holders = 0;
    g_counter = g_pred_calls = 0;
    g_cycles = 0;
    return 0;
}

/* =============================================================================
 * The generic user: waits on a primitive, records, holds, gives back.
 * ========================================================================== */

enum { EVENT = 1, LOCK, SEM, BARRIER };

static weft_future *op_start(int kind, void *prim, weft_waiter *w)
{
    switch (kind) {
    case EVENT:
        return weft_event_wait(prim, w);
    case LOCK:
        return weft_lock_acquire(prim, w);
    case SEM:
        return weft_semaphore_acquire(prim, w);
    default:
        return weft_barrier_wait(prim, w);
    }
}

/* A child coroutine that waits (for the timeout-scope variant). */
struct op_child {
    WEFT_FRAME(int64_t);
    int kind;
    void *prim;
    weft_waiter w;
};

WEFT_ASYNC(op_child)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, op_start(self->kind, self->prim, &self->w));
    WEFT_RETURN(self, WEFT_RESULT(self).i);
    WEFT_END;
}

struct user {
    WEFT_FRAME(int);
    int kind;
    void *prim;
    int id;
    double wait_for; /* > 0: wait through weft_wait_for(.., wait_for) */
    double scope;    /* > 0: wait in a child under WEFT_TRY_TIMEOUT_CALL */
    double hold;     /* > 0: hold it that long; else one yield */
    bool keep;       /* never give it back */
    bool held;
    int e;
    weft_waiter w;
    weft_timeout to;
    struct op_child child;
};

WEFT_ASYNC(user)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    if (self->scope > 0) {
        WEFT_TRY_TIMEOUT_CALL(self, self->e, &self->to, self->scope, op_child, &self->child,
                              .kind = self->kind, .prim = self->prim);
        if (self->e)
            WEFT_THROW(self, self->e);
        g_val[self->id] = self->child.result;
    } else if (self->wait_for > 0) {
        WEFT_AWAIT(self, weft_wait_for(op_start(self->kind, self->prim, &self->w), self->wait_for));
        g_val[self->id] = WEFT_RESULT(self).i;
    } else {
        WEFT_AWAIT(self, op_start(self->kind, self->prim, &self->w));
        g_val[self->id] = WEFT_RESULT(self).i;
    }
    self->held = true;
    log_tag(self->id);
    g_got_ms[self->id] = now_ms(loop);
    if (self->kind == LOCK)
        claim(self->id);
    if (self->kind == SEM && ++g_holders > g_max_holders)
        g_max_holders = g_holders;
    if (self->hold > 0)
        WEFT_SLEEP(self, self->hold);
    else
        WEFT_YIELD(self);
    WEFT_FINALLY;
    g_err[self->id] = self->co.err;
    g_fin[self->id]++;
    g_fin_ms[self->id] = now_ms(loop);
    if (self->held && !self->keep) {
        if (self->kind == LOCK) {
            unclaim(self->id);
            weft_lock_release(self->prim);
        } else if (self->kind == SEM) {
            g_holders--;
            weft_semaphore_release(self->prim);
        }
    }
    WEFT_END;
}

#define USER(loop, ...) WEFT_SPAWN(loop, user, __VA_ARGS__)

/* Take a lock / permit from outside any task (the loop is not running, so
 * the fast path applies: the future is done at once). */
static void take_outside(int kind, void *prim)
{
    weft_waiter w = {0};
    memset(&w, 0, sizeof w);
    weft_future *f = op_start(kind, prim, &w);
    assert_non_null(f);
    assert_true(weft_future_done(f));
    assert_int_equal(weft_future_error(f), 0);
    weft_future_unref(f);
    if (kind == LOCK)
        claim(99);
}

static void release_outside_lock(weft_lock *l)
{
    unclaim(99);
    assert_int_equal(weft_lock_release(l), 0);
}

/* =============================================================================
 * Event
 * ========================================================================== */

/* S-EVENT-1: set() wakes every current waiter; they resume in wait order. */
static void test_event_set_wakes_all_waiters_in_wait_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_event e;
    weft_event_init(&e, loop);
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = USER(loop, .kind = EVENT, .prim = &e, .id = i + 1);
    step(loop);
    assert_int_equal(weft_event_waiters(&e), 3);
    assert_int_equal(g_nlog, 0);
    weft_event_set(&e);
    assert_true(weft_event_is_set(&e));
    assert_int_equal(weft_event_waiters(&e), 0);
    step(loop);
    EXPECT_LOG(1, 2, 3);
    assert_int_equal(g_val[1], 1);
    run_all(loop, t, 3);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(g_err[i], 0);
    finish(loop);
}

/* S-EVENT-1 (upstream test_clear_with_waiters): clear() right after set()
 * only resets the flag; the waiters already woken still succeed, and a
 * new waiter waits again. */
static void test_event_clear_right_after_set_does_not_unwake(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_event e;
    weft_event_init(&e, loop);
    weft_task *t[3];
    t[0] = USER(loop, .kind = EVENT, .prim = &e, .id = 1);
    t[1] = USER(loop, .kind = EVENT, .prim = &e, .id = 2);
    step(loop);
    weft_event_set(&e);
    weft_event_clear(&e);
    assert_false(weft_event_is_set(&e));
    t[2] = USER(loop, .kind = EVENT, .prim = &e, .id = 3);
    step(loop);
    EXPECT_LOG(1, 2);
    assert_int_equal(weft_event_waiters(&e), 1); /* 3 waits for the next set */
    run_all(loop, t, 2);
    assert_int_equal(g_err[1], 0);
    assert_int_equal(g_err[2], 0);
    weft_event_set(&e);
    run_all(loop, t + 2, 1);
    EXPECT_LOG(1, 2, 3);
    finish(loop);
}

/* S-EVENT-1: wait() on a set event returns without suspending: the task
 * records in its very first step. */
static void test_event_wait_on_set_event_does_not_suspend(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_event e;
    weft_event_init(&e, loop);
    weft_event_set(&e);
    weft_task *t = USER(loop, .kind = EVENT, .prim = &e, .id = 1);
    step(loop);
    EXPECT_LOG(1);
    assert_int_equal(weft_event_waiters(&e), 0);
    run_all(loop, &t, 1);
    finish(loop);
}

/* P-8 (1): a waiter woken by set() and cancelled before it runs sees
 * -ECANCELED; the others are unaffected and the flag stays set (an event
 * has nothing to hand back). */
static void test_event_woken_then_cancelled_others_unaffected(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_event e;
    weft_event_init(&e, loop);
    weft_task *t[2];
    t[0] = USER(loop, .kind = EVENT, .prim = &e, .id = 1);
    t[1] = USER(loop, .kind = EVENT, .prim = &e, .id = 2);
    step(loop);
    weft_event_set(&e);
    assert_int_equal(weft_task_cancel(t[0]), 0);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_int_equal(g_err[2], 0);
    assert_true(weft_event_is_set(&e));
    finish(loop);
}

/* P-8 (2): cancelled, then set() with no iteration in between: the set
 * skips the cancelled waiter (it already left the queue). */
static void test_event_cancelled_then_set_skips_it(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_event e;
    weft_event_init(&e, loop);
    weft_task *t[2];
    t[0] = USER(loop, .kind = EVENT, .prim = &e, .id = 1);
    t[1] = USER(loop, .kind = EVENT, .prim = &e, .id = 2);
    step(loop);
    assert_int_equal(weft_task_cancel(t[0]), 0);
    assert_int_equal(weft_event_waiters(&e), 1);
    weft_event_set(&e);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_int_equal(g_err[2], 0);
    finish(loop);
}

/* P-8 (3): a waiter cancelled while queued leaves the queue at once. */
static void test_event_cancelled_while_queued_leaves_queue(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_event e;
    weft_event_init(&e, loop);
    weft_task *t[2];
    t[0] = USER(loop, .kind = EVENT, .prim = &e, .id = 1);
    t[1] = USER(loop, .kind = EVENT, .prim = &e, .id = 2);
    step(loop);
    assert_int_equal(weft_task_cancel(t[0]), 0);
    assert_int_equal(run(loop, t[0]), -ECANCELED);
    assert_int_equal(weft_event_waiters(&e), 1);
    assert_int_equal(g_err[1], -ECANCELED);
    weft_event_set(&e);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    finish(loop);
}

/* P-8 (4): weft_wait_for around a wait times out with -ETIMEDOUT at its
 * deadline, leaves the queue clean, and a later set() wakes the others. */
static void test_event_wait_for_timeout_leaves_queue_clean(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_event e;
    weft_event_init(&e, loop);
    weft_task *t[2];
    t[0] = USER(loop, .kind = EVENT, .prim = &e, .id = 1, .wait_for = 1.0);
    t[1] = USER(loop, .kind = EVENT, .prim = &e, .id = 2);
    assert_int_equal(run(loop, t[0]), -ETIMEDOUT);
    assert_int_equal(g_fin_ms[1], 1000);
    assert_int_equal(weft_event_waiters(&e), 1);
    weft_event_set(&e);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    finish(loop);
}

/* P-8 (4): a timeout scope around a child that waits: -ETIMEDOUT, queue
 * clean. */
static void test_event_timeout_scope_leaves_queue_clean(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_event e;
    weft_event_init(&e, loop);
    weft_task *t[2];
    t[0] = USER(loop, .kind = EVENT, .prim = &e, .id = 1, .scope = 1.0);
    t[1] = USER(loop, .kind = EVENT, .prim = &e, .id = 2);
    assert_int_equal(run(loop, t[0]), -ETIMEDOUT);
    assert_int_equal(g_fin_ms[1], 1000);
    assert_int_equal(weft_event_waiters(&e), 1);
    weft_event_set(&e);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    finish(loop);
}

/* =============================================================================
 * Lock
 * ========================================================================== */

/* S-LOCK-1: four tasks queued on a held lock acquire in FIFO order. */
static void test_lock_fifo_order_four_tasks(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    weft_task *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = USER(loop, .kind = LOCK, .prim = &l, .id = i + 1, .hold = 0.5);
    step(loop);
    assert_int_equal(weft_lock_waiters(&l), 4);
    release_outside_lock(&l);
    run_all(loop, t, 4);
    EXPECT_LOG(1, 2, 3, 4);
    for (int i = 1; i <= 4; i++) {
        assert_int_equal(g_err[i], 0);
        assert_int_equal(g_got_ms[i], (i - 1) * 500);
    }
    assert_int_equal(g_violations, 0);
    assert_false(weft_lock_locked(&l));
    finish(loop);
}

/* T54 main: holds the lock, lets A, B, C queue, releases and re-acquires
 * at once. */
struct t54_main {
    WEFT_FRAME(int);
    weft_lock *l;
    weft_waiter w;
    weft_task *t[4];
    int i;
};

static bool g_locked_after_release;

WEFT_ASYNC(t54_main)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_LOCK(self, self->l, &self->w);
    claim(9);
    for (self->i = 0; self->i < 3; self->i++)
        self->t[self->i] = USER(loop, .kind = LOCK, .prim = self->l, .id = self->i + 1);
    WEFT_YIELD(self); /* A, B, C queue */
    unclaim(9);
    weft_lock_release(self->l);
    g_locked_after_release = weft_lock_locked(self->l);
    /* a newcomer, spawned while the waiters are queued */
    self->t[3] = USER(loop, .kind = LOCK, .prim = self->l, .id = 4);
    WEFT_LOCK(self, self->l, &self->w); /* queues behind A, B, C */
    claim(9);
    log_tag(9);
    unclaim(9);
    weft_lock_release(self->l);
    for (self->i = 0; self->i < 4; self->i++) {
        WEFT_AWAIT(self, self->t[self->i]);
        self->t[self->i] = NULL;
    }
    WEFT_END;
}

/* S-LOCK-1, S-LOCK-2 (T54): no barging.  A task calling acquire while
 * waiters are queued - including the releaser re-acquiring immediately -
 * waits behind them: main gets the lock only after A, B and C.
 * Difference from asyncio (S-LOCK-2): release is a hand-off, so locked()
 * stays true right after the release (asyncio: False until A resumes);
 * the order observed is the same. */
static void test_lock_no_barging_releaser_reacquire_waits_behind(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    weft_task *m = WEFT_SPAWN(loop, t54_main, .l = &l);
    assert_int_equal(run(loop, m), 0);
    weft_future_unref(m);
    EXPECT_LOG(1, 2, 3, 9, 4);
    assert_true(g_locked_after_release);
    assert_int_equal(g_violations, 0);
    assert_false(weft_lock_locked(&l));
    finish(loop);
}

/* S-LOCK-1: release of an unlocked lock fails with WEFT_ESTATE and changes
 * nothing; NULL is -EINVAL. */
static void test_lock_release_unlocked_is_estate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    assert_int_equal(weft_lock_release(&l), WEFT_ESTATE);
    assert_false(weft_lock_locked(&l));
    assert_int_equal(weft_lock_release(NULL), -EINVAL);
    assert_null(weft_lock_acquire(NULL, NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    finish(loop);
}

/* S-LOCK-1, S-LOCK-2: locked() is false when free, true when held, true
 * while handed to a waiter that has not run yet (hand-off; asyncio reads
 * False there), false after the last release. */
static void test_lock_locked_semantics(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    assert_false(weft_lock_locked(&l));
    take_outside(LOCK, &l);
    assert_true(weft_lock_locked(&l));
    weft_task *t = USER(loop, .kind = LOCK, .prim = &l, .id = 1);
    step(loop);
    release_outside_lock(&l);
    assert_true(weft_lock_locked(&l)); /* handed to 1, which has not run */
    step(loop);
    EXPECT_LOG(1);
    assert_true(weft_lock_locked(&l));
    run_all(loop, &t, 1);
    assert_false(weft_lock_locked(&l));
    finish(loop);
}

/* P-8 (1), S-LOCK-3 (upstream test_cancel_race): handed the lock, then
 * cancelled before it runs: the lock passes to the next waiter, who gets
 * it; the cancelled task sees -ECANCELED and never held it. */
static void test_lock_woken_then_cancelled_passes_to_next(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    weft_task *t[2];
    t[0] = USER(loop, .kind = LOCK, .prim = &l, .id = 1);
    t[1] = USER(loop, .kind = LOCK, .prim = &l, .id = 2);
    step(loop);
    release_outside_lock(&l); /* handed to 1 */
    assert_int_equal(weft_task_cancel(t[0]), 0);
    assert_int_equal(weft_lock_waiters(&l), 0); /* ... and passed on to 2 */
    assert_true(weft_lock_locked(&l));
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_int_equal(g_err[2], 0);
    assert_int_equal(g_violations, 0);
    assert_false(weft_lock_locked(&l));
    finish(loop);
}

/* P-8 (1), S-LOCK-3 (upstream test_finished_waiter_cancelled): handed the
 * lock, cancelled before it runs, nobody else waiting: the lock comes
 * back unlocked and the next acquire takes the fast path. */
static void test_lock_woken_then_cancelled_last_waiter_unlocks(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    weft_task *t = USER(loop, .kind = LOCK, .prim = &l, .id = 1);
    step(loop);
    release_outside_lock(&l);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_false(weft_lock_locked(&l));
    assert_int_equal(run(loop, t), -ECANCELED);
    weft_future_unref(t);
    take_outside(LOCK, &l);
    release_outside_lock(&l);
    assert_int_equal(g_nlog, 0);
    finish(loop);
}

/* P-8 (2), S-LOCK-3 (upstream test_cancel_release_race): cancelled while
 * queued, then the holder releases with no iteration in between: the
 * release skips it and hands the lock to the next waiter. */
static void test_lock_cancelled_then_released_skips_it(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    weft_task *t[2];
    t[0] = USER(loop, .kind = LOCK, .prim = &l, .id = 1);
    t[1] = USER(loop, .kind = LOCK, .prim = &l, .id = 2);
    step(loop);
    assert_int_equal(weft_task_cancel(t[0]), 0);
    release_outside_lock(&l);
    assert_int_equal(weft_lock_waiters(&l), 0);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_int_equal(g_violations, 0);
    assert_false(weft_lock_locked(&l));
    finish(loop);
}

/* P-8 (3), S-LOCK-3: cancelled while queued: it leaves the queue, the lock
 * stays with its holder, the next release goes to the next waiter. */
static void test_lock_cancelled_while_queued_leaves_queue(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = USER(loop, .kind = LOCK, .prim = &l, .id = i + 1);
    step(loop);
    assert_int_equal(weft_task_cancel(t[1]), 0);
    assert_int_equal(run(loop, t[1]), -ECANCELED);
    assert_int_equal(weft_lock_waiters(&l), 2);
    assert_true(weft_lock_locked(&l));
    release_outside_lock(&l);
    run_all(loop, t, 3);
    EXPECT_LOG(1, 3);
    assert_int_equal(g_violations, 0);
    finish(loop);
}

/* P-8 (4): weft_wait_for around acquire while queued: -ETIMEDOUT at the
 * deadline, the queue holds only the others, the next release goes to the
 * next waiter. */
static void test_lock_wait_for_timeout_next_release_goes_to_next(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    weft_task *t[2];
    t[0] = USER(loop, .kind = LOCK, .prim = &l, .id = 1, .wait_for = 1.0);
    t[1] = USER(loop, .kind = LOCK, .prim = &l, .id = 2);
    assert_int_equal(run(loop, t[0]), -ETIMEDOUT);
    assert_int_equal(g_fin_ms[1], 1000);
    assert_int_equal(weft_lock_waiters(&l), 1);
    release_outside_lock(&l);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_violations, 0);
    assert_false(weft_lock_locked(&l));
    finish(loop);
}

/* P-8 (4): a timeout scope around a child coroutine that acquires:
 * -ETIMEDOUT, queue clean, the next release goes to the next waiter. */
static void test_lock_timeout_scope_next_release_goes_to_next(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    weft_task *t[2];
    t[0] = USER(loop, .kind = LOCK, .prim = &l, .id = 1, .scope = 1.0);
    t[1] = USER(loop, .kind = LOCK, .prim = &l, .id = 2);
    assert_int_equal(run(loop, t[0]), -ETIMEDOUT);
    assert_int_equal(g_fin_ms[1], 1000);
    assert_int_equal(weft_lock_waiters(&l), 1);
    release_outside_lock(&l);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_false(weft_lock_locked(&l));
    finish(loop);
}

static void release_cb(void *arg)
{
    release_outside_lock(arg);
}

/* P-8 (1) with a timeout scope: the release (a timer at t=1, armed first)
 * hands the lock over, then the scope expires in the same iteration,
 * before the task runs.  The scope's cancellation wins: the task sees
 * -ETIMEDOUT and the lock passes to the next waiter - nothing is lost. */
static void test_lock_scope_expiry_after_handoff_passes_lock_on(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    assert_int_equal(weft_call_later(loop, 1.0, release_cb, &l, NULL), 0);
    weft_task *t[2];
    t[0] = USER(loop, .kind = LOCK, .prim = &l, .id = 1, .scope = 1.0);
    t[1] = USER(loop, .kind = LOCK, .prim = &l, .id = 2);
    run_all(loop, t, 2);
    assert_int_equal(g_err[1], -ETIMEDOUT);
    EXPECT_LOG(2);
    assert_int_equal(g_got_ms[2], 1000);
    assert_int_equal(g_violations, 0);
    assert_false(weft_lock_locked(&l));
    finish(loop);
}

/* P-8 (1) with weft_wait_for: the release hands the lock over and the
 * wait_for deadline passes in the same iteration: completion wins a tie
 * (combinators.h), so the task holds the lock. */
static void test_lock_wait_for_expiry_after_handoff_value_wins(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    assert_int_equal(weft_call_later(loop, 1.0, release_cb, &l, NULL), 0);
    weft_task *t[2];
    t[0] = USER(loop, .kind = LOCK, .prim = &l, .id = 1, .wait_for = 1.0);
    t[1] = USER(loop, .kind = LOCK, .prim = &l, .id = 2);
    run_all(loop, t, 2);
    EXPECT_LOG(1, 2);
    assert_int_equal(g_err[1], 0);
    assert_int_equal(g_violations, 0);
    assert_false(weft_lock_locked(&l));
    finish(loop);
}

/* P-8 (1) through weft_wait_for: the lock is handed to a task awaiting
 * weft_wait_for(acquire), and the task is cancelled before it runs.  The
 * hand-off must be rolled back (the next waiter gets the lock), exactly
 * as when the waiter is awaited directly. */
static void test_lock_wait_for_woken_then_cancelled_passes_to_next(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    weft_task *t[2];
    t[0] = USER(loop, .kind = LOCK, .prim = &l, .id = 1, .wait_for = 10.0);
    t[1] = USER(loop, .kind = LOCK, .prim = &l, .id = 2);
    step(loop);
    release_outside_lock(&l); /* handed to 1 */
    assert_int_equal(weft_task_cancel(t[0]), 0);
    assert_int_equal(run(loop, t[0]), -ECANCELED);
    assert_int_equal(weft_lock_waiters(&l), 0); /* 2 got the lock: nothing lost */
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_int_equal(g_violations, 0);
    assert_false(weft_lock_locked(&l));
    finish(loop);
}

/* A task of another loop cannot wait on a primitive: the operation fails
 * with -EINVAL and the primitive's queue is untouched. */
struct other_loop_acquire {
    WEFT_FRAME(int);
    weft_lock *l;
    weft_waiter w;
};

WEFT_ASYNC(other_loop_acquire)
{
    WEFT_BEGIN(self);
    WEFT_LOCK(self, self->l, &self->w);
    WEFT_END;
}

static void test_lock_acquire_from_another_loop_is_einval(void **state)
{
    (void)state;
    weft_loop *a = vloop(), *b = vloop();
    weft_lock l;
    weft_lock_init(&l, a);
    take_outside(LOCK, &l);
    weft_task *t = WEFT_SPAWN(b, other_loop_acquire, .l = &l);
    assert_int_equal(run(b, t), -EINVAL);
    assert_int_equal(weft_lock_waiters(&l), 0);
    weft_future_unref(t);
    release_outside_lock(&l);
    assert_int_equal(weft_loop_destroy(b), 0);
    finish(a);
}

/* loop.h close "tasks still pending are released": a task queued in
 * weft_lock_acquire leaves the lock's queue before its frame (which holds
 * the waiter) is freed, so the holder's release unlocks instead of handing
 * the lock to freed memory (ASan / valgrind would see it). */
static void test_loop_close_unlinks_waiting_lock_acquirer(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    weft_future_unref(USER(loop, .kind = LOCK, .prim = &l, .id = 1)); /* the loop's now */
    step(loop);
    assert_int_equal(weft_lock_waiters(&l), 1);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(g_hook.count, 1); /* released while pending */
    g_hook.expect = 1;
    assert_int_equal(weft_lock_waiters(&l), 0);
    release_outside_lock(&l);
    assert_false(weft_lock_locked(&l));
    assert_int_equal(g_nlog, 0); /* task 1 never held it */
    assert_int_equal(g_violations, 0);
    finish(loop);
}

/* Same through weft_loop_destroy: the lock outlives its loop, and releasing
 * it afterwards finds no waiter. */
static void test_loop_destroy_unlinks_waiting_lock_acquirer(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    weft_future_unref(USER(loop, .kind = LOCK, .prim = &l, .id = 1));
    step(loop);
    assert_int_equal(weft_lock_waiters(&l), 1);
    g_hook.expect = 1; /* released while pending */
    finish(loop);
    assert_int_equal(weft_lock_waiters(&l), 0);
    release_outside_lock(&l);
    assert_false(weft_lock_locked(&l));
    assert_int_equal(g_nlog, 0);
    assert_int_equal(g_violations, 0);
}

/* A task handed the lock whose task never ran gives it back when the loop
 * closes; it goes to the next waiter, which is released too: the lock
 * ends unlocked, with nobody queued. */
static void test_loop_close_returns_lock_handed_to_task_that_never_ran(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_lock_init(&l, loop);
    take_outside(LOCK, &l);
    weft_future_unref(USER(loop, .kind = LOCK, .prim = &l, .id = 1));
    weft_future_unref(USER(loop, .kind = LOCK, .prim = &l, .id = 2));
    step(loop);
    release_outside_lock(&l); /* handed to task 1 */
    assert_true(weft_lock_locked(&l));
    assert_int_equal(weft_lock_waiters(&l), 1);
    assert_int_equal(weft_loop_close(loop), 0); /* task 1 never ran */
    assert_int_equal(g_hook.count, 2);
    g_hook.expect = 2;
    assert_false(weft_lock_locked(&l));
    assert_int_equal(weft_lock_waiters(&l), 0);
    assert_int_equal(g_nlog, 0);
    assert_int_equal(g_violations, 0);
    finish(loop);
}

/* =============================================================================
 * Semaphore and BoundedSemaphore
 * ========================================================================== */

/* S-SEM-1: value counts free permits; locked() iff acquire would wait. */
static void test_semaphore_value_and_locked(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, loop, 2), 0);
    assert_int_equal(weft_semaphore_value(&s), 2);
    assert_false(weft_semaphore_locked(&s));
    take_outside(SEM, &s);
    assert_int_equal(weft_semaphore_value(&s), 1);
    assert_false(weft_semaphore_locked(&s));
    take_outside(SEM, &s);
    assert_int_equal(weft_semaphore_value(&s), 0);
    assert_true(weft_semaphore_locked(&s));
    assert_int_equal(weft_semaphore_release(&s), 0);
    assert_int_equal(weft_semaphore_release(&s), 0);
    assert_int_equal(weft_semaphore_release(&s), 0); /* unbounded: above initial */
    assert_int_equal(weft_semaphore_value(&s), 3);
    assert_int_equal(weft_semaphore_release(NULL), -EINVAL);
    finish(loop);
}

/* S-SEM-1 (upstream test_acquire_fifo_order): six tasks on a Semaphore(2)
 * holding 1 s each get permits in FIFO order, two at a time. */
static void test_semaphore_fifo_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, loop, 2), 0);
    weft_task *t[6];
    for (int i = 0; i < 6; i++)
        t[i] = USER(loop, .kind = SEM, .prim = &s, .id = i + 1, .hold = 1.0);
    run_all(loop, t, 6);
    EXPECT_LOG(1, 2, 3, 4, 5, 6);
    for (int i = 1; i <= 6; i++)
        assert_int_equal(g_got_ms[i], (i - 1) / 2 * 1000);
    assert_int_equal(g_max_holders, 2);
    assert_int_equal(weft_semaphore_value(&s), 2);
    finish(loop);
}

/* S-SEM-1: the fast path is taken only without waiters.  release() hands
 * the permit to the first waiter: value stays 0 and a newcomer queues
 * behind.  Difference from asyncio (S-SEM-1): there release() increments
 * value and the woken waiter decrements it when it runs ("reserving"), so
 * value reads 1 in between; the order observed is the same. */
static void test_semaphore_release_hands_permit_newcomer_queues(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, loop, 0), 0);
    weft_task *t[3];
    t[0] = USER(loop, .kind = SEM, .prim = &s, .id = 1);
    t[1] = USER(loop, .kind = SEM, .prim = &s, .id = 2);
    step(loop);
    assert_int_equal(weft_semaphore_release(&s), 0); /* to 1 */
    assert_int_equal(weft_semaphore_value(&s), 0);
    assert_true(weft_semaphore_locked(&s)); /* 2 waits */
    t[2] = USER(loop, .kind = SEM, .prim = &s, .id = 3);
    assert_int_equal(weft_semaphore_release(&s), 0); /* to 2 */
    assert_int_equal(weft_semaphore_value(&s), 0);
    step(loop); /* 1 and 2 run; 3 arrives, value 0: queues */
    assert_int_equal(weft_semaphore_waiters(&s), 1);
    run_all(loop, t, 3);
    EXPECT_LOG(1, 2, 3);
    assert_int_equal(weft_semaphore_value(&s), 2);
    finish(loop);
}

/* S-SEM-1: a permit free but someone queued (possible only transiently
 * in asyncio) never lets a newcomer through first: with hand-off the
 * state cannot even arise - value > 0 implies no waiters. */
static void test_semaphore_value_positive_only_without_waiters(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, loop, 1), 0);
    weft_task *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = USER(loop, .kind = SEM, .prim = &s, .id = i + 1, .hold = 0.25);
    for (int i = 0; i < 40 && !weft_future_done(t[3]); i++) {
        assert_true(weft_semaphore_value(&s) == 0 || weft_semaphore_waiters(&s) == 0);
        assert_int_equal(weft_loop_run_once(loop), 0);
    }
    run_all(loop, t, 4);
    EXPECT_LOG(1, 2, 3, 4);
    assert_int_equal(g_max_holders, 1);
    finish(loop);
}

/* S-SEM-2: BoundedSemaphore.release() above the initial value fails with
 * -EOVERFLOW and leaves the count unchanged. */
static void test_bounded_semaphore_over_release_is_eoverflow(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s;
    assert_int_equal(weft_bounded_semaphore_init(&s, loop, 2), 0);
    assert_int_equal(weft_semaphore_release(&s), -EOVERFLOW);
    assert_int_equal(weft_semaphore_value(&s), 2);
    take_outside(SEM, &s);
    assert_int_equal(weft_semaphore_release(&s), 0);
    assert_int_equal(weft_semaphore_release(&s), -EOVERFLOW);
    assert_int_equal(weft_semaphore_value(&s), 2);
    /* BoundedSemaphore(0): every release is one too many, even with a
     * waiter queued (asyncio: value >= initial -> ValueError) */
    weft_semaphore z;
    assert_int_equal(weft_bounded_semaphore_init(&z, loop, 0), 0);
    weft_task *t = USER(loop, .kind = SEM, .prim = &z, .id = 1);
    step(loop);
    assert_int_equal(weft_semaphore_release(&z), -EOVERFLOW);
    assert_int_equal(weft_semaphore_waiters(&z), 1);
    assert_int_equal(weft_semaphore_value(&z), 0);
    weft_task_cancel(t);
    run_all(loop, &t, 1);
    finish(loop);
}

/* S-SEM-1: a negative initial value is -EINVAL (asyncio: ValueError); the
 * struct is left untouched. */
static void test_semaphore_negative_init_is_einval(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s, before;
    memset(&s, 0xA5, sizeof s);
    before = s;
    assert_int_equal(weft_semaphore_init(&s, loop, -1), -EINVAL);
    assert_int_equal(weft_bounded_semaphore_init(&s, loop, -1), -EINVAL);
    assert_memory_equal(&s, &before, sizeof s);
    assert_int_equal(weft_semaphore_init(NULL, loop, 1), -EINVAL);
    assert_int_equal(weft_semaphore_init(&s, NULL, 1), -EINVAL);
    finish(loop);
}

/* P-8 (1), S-SEM-1 (upstream test_acquire_cancel_before_awoken): handed a
 * permit, cancelled before it runs: the permit goes to the next waiter. */
static void test_semaphore_woken_then_cancelled_passes_to_next(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, loop, 0), 0);
    weft_task *t[2];
    t[0] = USER(loop, .kind = SEM, .prim = &s, .id = 1);
    t[1] = USER(loop, .kind = SEM, .prim = &s, .id = 2);
    step(loop);
    assert_int_equal(weft_semaphore_release(&s), 0); /* to 1 */
    assert_int_equal(weft_task_cancel(t[0]), 0);     /* passed to 2 */
    assert_int_equal(weft_semaphore_waiters(&s), 0);
    assert_int_equal(weft_semaphore_value(&s), 0);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_int_equal(weft_semaphore_value(&s), 1);
    finish(loop);
}

/* P-8 (1), gh-90155: handed a permit, cancelled before it runs, nobody
 * else waiting: the permit returns to the count (nothing leaks). */
static void test_semaphore_woken_then_cancelled_last_waiter_returns_permit(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, loop, 0), 0);
    weft_task *t = USER(loop, .kind = SEM, .prim = &s, .id = 1);
    step(loop);
    assert_int_equal(weft_semaphore_release(&s), 0);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(weft_semaphore_value(&s), 1);
    assert_false(weft_semaphore_locked(&s));
    run_all(loop, &t, 1);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_int_equal(weft_semaphore_value(&s), 1);
    finish(loop);
}

/* P-8 (2): cancelled while queued, then release() with no iteration in
 * between: the release skips it. */
static void test_semaphore_cancelled_then_released_skips_it(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, loop, 0), 0);
    weft_task *t[2];
    t[0] = USER(loop, .kind = SEM, .prim = &s, .id = 1);
    t[1] = USER(loop, .kind = SEM, .prim = &s, .id = 2);
    step(loop);
    assert_int_equal(weft_task_cancel(t[0]), 0);
    assert_int_equal(weft_semaphore_release(&s), 0);
    assert_int_equal(weft_semaphore_value(&s), 0);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_int_equal(weft_semaphore_value(&s), 1);
    finish(loop);
}

/* P-8 (3): cancelled while queued: it leaves the queue; the permit count
 * is unchanged. */
static void test_semaphore_cancelled_while_queued_leaves_queue(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, loop, 0), 0);
    weft_task *t[2];
    t[0] = USER(loop, .kind = SEM, .prim = &s, .id = 1);
    t[1] = USER(loop, .kind = SEM, .prim = &s, .id = 2);
    step(loop);
    assert_int_equal(weft_task_cancel(t[0]), 0);
    assert_int_equal(run(loop, t[0]), -ECANCELED);
    assert_int_equal(weft_semaphore_waiters(&s), 1);
    assert_int_equal(weft_semaphore_value(&s), 0);
    assert_int_equal(weft_semaphore_release(&s), 0);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    finish(loop);
}

/* P-8 (4): weft_wait_for around acquire: -ETIMEDOUT, queue clean, the next
 * release goes to the next waiter. */
static void test_semaphore_wait_for_timeout_next_release_goes_to_next(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, loop, 0), 0);
    weft_task *t[2];
    t[0] = USER(loop, .kind = SEM, .prim = &s, .id = 1, .wait_for = 1.0);
    t[1] = USER(loop, .kind = SEM, .prim = &s, .id = 2);
    assert_int_equal(run(loop, t[0]), -ETIMEDOUT);
    assert_int_equal(g_fin_ms[1], 1000);
    assert_int_equal(weft_semaphore_waiters(&s), 1);
    assert_int_equal(weft_semaphore_release(&s), 0);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(weft_semaphore_value(&s), 1);
    finish(loop);
}

/* P-8 (4): a timeout scope around a child that acquires: -ETIMEDOUT,
 * queue clean, the next release goes to the next waiter. */
static void test_semaphore_timeout_scope_next_release_goes_to_next(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, loop, 0), 0);
    weft_task *t[2];
    t[0] = USER(loop, .kind = SEM, .prim = &s, .id = 1, .scope = 1.0);
    t[1] = USER(loop, .kind = SEM, .prim = &s, .id = 2);
    assert_int_equal(run(loop, t[0]), -ETIMEDOUT);
    assert_int_equal(weft_semaphore_waiters(&s), 1);
    assert_int_equal(weft_semaphore_release(&s), 0);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(weft_semaphore_value(&s), 1);
    finish(loop);
}

/* =============================================================================
 * Condition
 * ========================================================================== */

enum { WAIT = 0, WAIT_FOR, NO_LOCK_WAIT, NO_LOCK_WAIT_FOR };

static bool counter_reached_3(void *arg)
{
    (void)arg;
    g_pred_calls++;
    return g_counter >= 3;
}

struct cond_user {
    WEFT_FRAME(int);
    weft_condition *c;
    int id;
    int mode;
    double scope; /* > 0: the wait runs under a timeout scope */
    double hold;  /* > 0: hold the lock that long after the wait */
    bool locked_it, waiting;
    int e;
    weft_waiter w;
    weft_timeout to;
    struct weft_condition_wait cw;
    struct weft_condition_wait_for cwf;
};

WEFT_ASYNC(cond_user)
{
    weft_loop *loop = weft_task_loop(task);
    weft_lock *l = weft_condition_lock(self->c);
    WEFT_BEGIN(self);
    if (self->mode == NO_LOCK_WAIT) {
        WEFT_CALL(self, weft_condition_wait, &self->cw, .cond = self->c);
    } else if (self->mode == NO_LOCK_WAIT_FOR) {
        WEFT_CALL(self, weft_condition_wait_for, &self->cwf, .cond = self->c,
                  .pred = counter_reached_3);
    }
    WEFT_LOCK(self, l, &self->w);
    self->locked_it = true;
    claim(self->id);
    unclaim(self->id); /* the wait releases it */
    self->waiting = true;
    if (self->mode == WAIT_FOR) {
        WEFT_CALL(self, weft_condition_wait_for, &self->cwf, .cond = self->c,
                  .pred = counter_reached_3);
        g_val[self->id] = self->cwf.result;
    } else if (self->scope > 0) {
        WEFT_TRY_TIMEOUT_CALL(self, self->e, &self->to, self->scope, weft_condition_wait, &self->cw,
                              .cond = self->c);
        if (self->e)
            WEFT_THROW(self, self->e);
        g_val[self->id] = self->cw.result;
    } else {
        WEFT_CALL(self, weft_condition_wait, &self->cw, .cond = self->c);
        g_val[self->id] = self->cw.result;
    }
    self->waiting = false;
    claim(self->id);
    log_tag(self->id);
    g_got_ms[self->id] = now_ms(loop);
    g_locked_at[self->id] = weft_lock_locked(l);
    if (self->hold > 0)
        WEFT_SLEEP(self, self->hold);
    WEFT_FINALLY;
    if (self->waiting)
        claim(self->id); /* the failed wait re-acquired the lock */
    g_err[self->id] = self->co.err;
    g_fin[self->id]++;
    g_fin_ms[self->id] = now_ms(loop);
    g_fin_locked[self->id] = weft_lock_locked(l);
    if (self->locked_it) {
        unclaim(self->id);
        weft_lock_release(l);
    }
    WEFT_END;
}

#define CUSER(loop, ...) WEFT_SPAWN(loop, cond_user, __VA_ARGS__)

/* Notifier task: n rounds of (sleep, lock, counter++, notify, hold, release). */
struct notifier {
    WEFT_FRAME(int);
    weft_condition *c;
    int rounds;
    size_t n; /* notify(n); 0 = notify_all */
    double every, hold;
    int i;
    weft_waiter w;
};

WEFT_ASYNC(notifier)
{
    weft_lock *l = weft_condition_lock(self->c);
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < self->rounds; self->i++) {
        if (self->every > 0)
            WEFT_SLEEP(self, self->every);
        WEFT_LOCK(self, l, &self->w);
        claim(10);
        g_counter++;
        if (self->n)
            weft_condition_notify(self->c, self->n);
        else
            weft_condition_notify_all(self->c);
        if (self->hold > 0)
            WEFT_SLEEP(self, self->hold);
        unclaim(10);
        weft_lock_release(l);
    }
    WEFT_END;
}

/* S-COND-1: notify(n) wakes up to n not-yet-woken waiters, FIFO, and
 * returns how many; notify_all wakes the rest. */
static void test_condition_notify_n_wakes_n_in_fifo_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_condition_init(&c, loop, NULL);
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = CUSER(loop, .c = &c, .id = i + 1);
    step(loop);
    assert_int_equal(weft_condition_waiters(&c), 3);
    assert_false(weft_lock_locked(&c.own));
    take_outside(LOCK, &c.own);
    assert_int_equal(weft_condition_notify(&c, 2), 2);
    assert_int_equal(weft_condition_waiters(&c), 1);
    release_outside_lock(&c.own);
    run_all(loop, t, 2);
    EXPECT_LOG(1, 2);
    assert_int_equal(g_val[1], 1);
    take_outside(LOCK, &c.own);
    assert_int_equal(weft_condition_notify_all(&c), 1);
    assert_int_equal(weft_condition_notify(&c, 5), 0);
    release_outside_lock(&c.own);
    run_all(loop, t + 2, 1);
    EXPECT_LOG(1, 2, 3);
    assert_int_equal(g_violations, 0);
    finish(loop);
}

/* S-COND-1: notify_all wakes every waiter; each returns holding the lock,
 * one at a time, in wait order (through the lock's FIFO). */
static void test_condition_notify_all_wakes_every_waiter(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_condition_init(&c, loop, NULL);
    weft_task *t[4];
    for (int i = 0; i < 3; i++)
        t[i] = CUSER(loop, .c = &c, .id = i + 1, .hold = 1.0);
    t[3] = WEFT_SPAWN(loop, notifier, .c = &c, .rounds = 1);
    run_all(loop, t, 4);
    EXPECT_LOG(1, 2, 3);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(g_got_ms[i], (i - 1) * 1000);
        assert_true(g_locked_at[i]);
    }
    assert_int_equal(g_violations, 0);
    assert_false(weft_lock_locked(&c.own));
    finish(loop);
}

/* S-COND-1: a woken waiter cannot return until the notifier releases the
 * lock: it returns at t=1, holding the lock. */
static void test_condition_wait_reacquires_lock_before_returning(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_condition_init(&c, loop, NULL);
    weft_task *t[2];
    t[0] = CUSER(loop, .c = &c, .id = 1);
    t[1] = WEFT_SPAWN(loop, notifier, .c = &c, .rounds = 1, .n = 1, .hold = 1.0);
    run_all(loop, t, 2);
    EXPECT_LOG(1);
    assert_int_equal(g_got_ms[1], 1000);
    assert_true(g_locked_at[1]);
    assert_int_equal(g_err[1], 0);
    assert_int_equal(g_violations, 0);
    finish(loop);
}

/* S-COND-2: a wait cancelled while queued re-acquires the lock before the
 * cancellation propagates: the task blocks until the holder releases
 * (t=1) and its FINALLY runs holding the lock, which nobody else holds. */
static void test_condition_wait_cancelled_reacquires_lock(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_condition_init(&c, loop, NULL);
    weft_task *t = CUSER(loop, .c = &c, .id = 1);
    step(loop);
    take_outside(LOCK, &c.own);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(weft_condition_waiters(&c), 0);
    step(loop); /* unwinds into the wait's FINALLY: queued on the lock */
    assert_int_equal(g_fin[1], 0);
    assert_int_equal(weft_lock_waiters(weft_condition_lock(&c)), 1);
    assert_int_equal(weft_call_later(loop, 1.0, release_cb, &c.own, NULL), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    weft_future_unref(t);
    assert_int_equal(g_fin[1], 1);
    assert_int_equal(g_fin_ms[1], 1000);
    assert_true(g_fin_locked[1]);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_int_equal(g_violations, 0);
    assert_false(weft_lock_locked(&c.own));
    finish(loop);
}

/* S-COND-2 [3.13] (upstream test_cancelled_error_re_aquire): a cancel that
 * arrives while the wait re-acquires the lock does not interrupt the
 * re-acquire (cancellation is masked in FINALLY): the task keeps its place
 * in the lock's FIFO, ahead of a task that queued later, and once it holds
 * the lock again the wait re-raises the cancellation (asyncio 3.13's
 * `raise err`): a masked cancellation is delivered as the cleanup ends. */
static void test_condition_cancel_during_reacquire_keeps_fifo_place(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_condition_init(&c, loop, NULL);
    weft_task *t[2];
    t[0] = CUSER(loop, .c = &c, .id = 1, .hold = 1.0);
    step(loop);
    take_outside(LOCK, &c.own);
    assert_int_equal(weft_condition_notify(&c, 1), 1);
    step(loop); /* 1 resumes: queued on the lock in the wait's FINALLY */
    assert_int_equal(weft_lock_waiters(weft_condition_lock(&c)), 1);
    t[1] = USER(loop, .kind = LOCK, .prim = &c.own, .id = 2);
    step(loop); /* 2 queues behind */
    assert_int_equal(weft_task_cancel(t[0]), 0);
    release_outside_lock(&c.own);
    run_all(loop, t, 2);
    EXPECT_LOG(2);                          /* 1 never got past its wait */
    assert_int_equal(g_err[1], -ECANCELED); /* re-raised by the wait */
    assert_true(g_fin_locked[1]);           /* ... holding the lock again */
    assert_true(g_got_ms[2] >= g_fin_ms[1]); /* before 2, which queued later */
    assert_int_equal(g_violations, 0);
    finish(loop);
}

/* S-COND-1: notify without holding the lock is WEFT_ESTATE (asyncio:
 * RuntimeError); NULL is -EINVAL. */
static void test_condition_notify_without_lock_is_estate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_condition_init(&c, loop, NULL);
    assert_int_equal(weft_condition_notify(&c, 1), WEFT_ESTATE);
    assert_int_equal(weft_condition_notify_all(&c), WEFT_ESTATE);
    assert_int_equal(weft_condition_notify(NULL, 1), -EINVAL);
    finish(loop);
}

/* S-COND-1: wait and wait_for without the lock fail with WEFT_ESTATE and
 * release nothing. */
static void test_condition_wait_without_lock_is_estate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_condition_init(&c, loop, NULL);
    weft_task *t[2];
    t[0] = CUSER(loop, .c = &c, .id = 1, .mode = NO_LOCK_WAIT);
    t[1] = CUSER(loop, .c = &c, .id = 2, .mode = NO_LOCK_WAIT_FOR);
    assert_int_equal(run(loop, t[0]), WEFT_ESTATE);
    assert_int_equal(run(loop, t[1]), WEFT_ESTATE);
    run_all(loop, t, 2);
    assert_int_equal(g_nlog, 0);
    assert_int_equal(g_pred_calls, 0);
    assert_false(weft_lock_locked(&c.own));
    assert_int_equal(weft_condition_waiters(&c), 0);
    finish(loop);
}

/* S-COND-1: wait_for re-checks the predicate after every notify and
 * returns 1 once it holds (here after the third notify, t=3). */
static void test_condition_wait_for_predicate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_lock l;
    weft_lock_init(&l, loop);
    weft_condition_init(&c, loop, &l);
    assert_ptr_equal(weft_condition_lock(&c), &l);
    weft_task *t[2];
    t[0] = CUSER(loop, .c = &c, .id = 1, .mode = WAIT_FOR);
    t[1] = WEFT_SPAWN(loop, notifier, .c = &c, .rounds = 3, .every = 1.0);
    run_all(loop, t, 2);
    EXPECT_LOG(1);
    assert_int_equal(g_val[1], 1);
    assert_int_equal(g_got_ms[1], 3000);
    assert_int_equal(g_pred_calls, 4); /* before waiting, then per notify */
    assert_true(g_locked_at[1]);
    assert_int_equal(g_violations, 0);
    finish(loop);
}

/* P-8 (1), S-COND-2 [3.13] (upstream test_wait_cancel_after_notify): a
 * waiter notified and cancelled before it runs passes the notification to
 * the next waiter; it still re-acquires the lock before -ECANCELED. */
static void test_condition_notified_then_cancelled_passes_notification(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_condition_init(&c, loop, NULL);
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = CUSER(loop, .c = &c, .id = i + 1);
    step(loop);
    take_outside(LOCK, &c.own);
    assert_int_equal(weft_condition_notify(&c, 1), 1); /* 1 */
    assert_int_equal(weft_task_cancel(t[0]), 0);       /* -> 2 */
    assert_int_equal(weft_condition_waiters(&c), 1);             /* 3 still waits */
    release_outside_lock(&c.own);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_true(g_fin_locked[1]);
    assert_int_equal(g_err[2], 0);
    assert_int_equal(weft_condition_waiters(&c), 1);
    weft_task_cancel(t[2]);
    run_all(loop, t + 2, 1);
    assert_true(g_fin_locked[3]);
    assert_int_equal(g_violations, 0);
    finish(loop);
}

/* P-8 (2): cancelled, then notify(1) with no iteration in between: the
 * notify skips it and wakes the next waiter. */
static void test_condition_cancelled_then_notified_skips_it(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_condition_init(&c, loop, NULL);
    weft_task *t[2];
    t[0] = CUSER(loop, .c = &c, .id = 1);
    t[1] = CUSER(loop, .c = &c, .id = 2);
    step(loop);
    take_outside(LOCK, &c.own);
    assert_int_equal(weft_task_cancel(t[0]), 0);
    assert_int_equal(weft_condition_notify(&c, 1), 1);
    assert_int_equal(weft_condition_waiters(&c), 0);
    release_outside_lock(&c.own);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_true(g_fin_locked[1]);
    assert_int_equal(g_violations, 0);
    finish(loop);
}

/* P-8 (3): cancelled while queued on the condition: it leaves the queue,
 * notify_all wakes only the others. */
static void test_condition_cancelled_while_queued_leaves_queue(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_condition_init(&c, loop, NULL);
    weft_task *t[2];
    t[0] = CUSER(loop, .c = &c, .id = 1);
    t[1] = CUSER(loop, .c = &c, .id = 2);
    step(loop);
    assert_int_equal(weft_task_cancel(t[0]), 0);
    assert_int_equal(run(loop, t[0]), -ECANCELED);
    assert_true(g_fin_locked[1]);
    assert_int_equal(weft_condition_waiters(&c), 1);
    take_outside(LOCK, &c.own);
    assert_int_equal(weft_condition_notify_all(&c), 1);
    release_outside_lock(&c.own);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_violations, 0);
    finish(loop);
}

/* P-8 (4): a wait under a timeout scope: -ETIMEDOUT at the deadline, with
 * the lock re-acquired first; the condition's queue is clean. */
static void test_condition_timeout_scope_reacquires_and_cleans_queue(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_condition_init(&c, loop, NULL);
    weft_task *t[2];
    t[0] = CUSER(loop, .c = &c, .id = 1, .scope = 1.0);
    t[1] = CUSER(loop, .c = &c, .id = 2);
    assert_int_equal(run(loop, t[0]), -ETIMEDOUT);
    assert_int_equal(g_fin_ms[1], 1000);
    assert_true(g_fin_locked[1]);
    assert_int_equal(weft_condition_waiters(&c), 1);
    take_outside(LOCK, &c.own);
    assert_int_equal(weft_condition_notify(&c, 1), 1);
    release_outside_lock(&c.own);
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_violations, 0);
    finish(loop);
}

/* P-8 (4): weft_wait_for around a task that waits on the condition: the
 * task is cancelled at the deadline, re-acquires the lock in its cleanup,
 * and the result is -ETIMEDOUT; the queue is clean. */
static void test_condition_wait_for_timeout_reacquires_and_cleans_queue(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_condition c;
    weft_condition_init(&c, loop, NULL);
    weft_task *w = CUSER(loop, .c = &c, .id = 1);
    weft_future *f = weft_wait_for(weft_future_ref(w), 1.0);
    assert_int_equal(weft_loop_run_until_complete(loop, f), -ETIMEDOUT);
    weft_future_unref(f);
    assert_int_equal(g_fin_ms[1], 1000);
    assert_true(g_fin_locked[1]);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_int_equal(weft_condition_waiters(&c), 0);
    assert_false(weft_lock_locked(&c.own));
    run_all(loop, &w, 1);
    assert_int_equal(g_violations, 0);
    finish(loop);
}

/* =============================================================================
 * Barrier
 * ========================================================================== */

/* S-BARRIER-1: arrival indexes 0..parties-1; the last arriver releases
 * everyone and goes on first (without suspending), the others then in
 * arrival order; the barrier is reusable. */
static void test_barrier_arrival_indexes_last_releases_all(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, loop, 3), 0);
    weft_task *t[6];
    for (int i = 0; i < 3; i++)
        t[i] = USER(loop, .kind = BARRIER, .prim = &b, .id = i + 1);
    step(loop);
    EXPECT_LOG(3); /* the last arriver did not suspend */
    assert_int_equal(weft_barrier_n_waiting(&b), 0);
    step(loop);
    EXPECT_LOG(3, 1, 2);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(g_val[i], i - 1);
    /* second round */
    for (int i = 3; i < 6; i++)
        t[i] = USER(loop, .kind = BARRIER, .prim = &b, .id = i + 1);
    run_all(loop, t, 6);
    for (int i = 4; i <= 6; i++)
        assert_int_equal(g_val[i], i - 4);
    assert_false(weft_barrier_broken(&b));
    finish(loop);
}

/* S-BARRIER-1: n_waiting counts the parties waiting. */
static void test_barrier_n_waiting(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, loop, 3), 0);
    assert_int_equal(weft_barrier_n_waiting(&b), 0);
    weft_task *t[3];
    t[0] = USER(loop, .kind = BARRIER, .prim = &b, .id = 1);
    step(loop);
    assert_int_equal(weft_barrier_n_waiting(&b), 1);
    t[1] = USER(loop, .kind = BARRIER, .prim = &b, .id = 2);
    step(loop);
    assert_int_equal(weft_barrier_n_waiting(&b), 2);
    t[2] = USER(loop, .kind = BARRIER, .prim = &b, .id = 3);
    step(loop);
    assert_int_equal(weft_barrier_n_waiting(&b), 0);
    run_all(loop, t, 3);
    assert_int_equal(weft_barrier_n_waiting(NULL), 0);
    finish(loop);
}

/* S-BARRIER-1: abort() fails current waiters with WEFT_EBROKEN, and every
 * later wait at once, until reset(). */
static void test_barrier_abort_breaks_current_and_future_waiters(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, loop, 3), 0);
    weft_task *t[3];
    t[0] = USER(loop, .kind = BARRIER, .prim = &b, .id = 1);
    t[1] = USER(loop, .kind = BARRIER, .prim = &b, .id = 2);
    step(loop);
    assert_int_equal(weft_barrier_abort(&b), 0);
    assert_true(weft_barrier_broken(&b));
    assert_int_equal(weft_barrier_n_waiting(&b), 0);
    t[2] = USER(loop, .kind = BARRIER, .prim = &b, .id = 3);
    run_all(loop, t, 3);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(g_err[i], WEFT_EBROKEN);
    assert_int_equal(g_nlog, 0);
    assert_int_equal(weft_barrier_abort(NULL), -EINVAL);
    finish(loop);
}

/* S-BARRIER-1: reset() fails the current waiters with WEFT_EBROKEN and
 * returns to the empty state: it is usable again, also after abort(). */
static void test_barrier_reset_fails_waiters_then_usable(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, loop, 2), 0);
    weft_task *t[5];
    t[0] = USER(loop, .kind = BARRIER, .prim = &b, .id = 1);
    step(loop);
    assert_int_equal(weft_barrier_reset(&b), 0);
    assert_false(weft_barrier_broken(&b));
    assert_int_equal(weft_barrier_n_waiting(&b), 0);
    run_all(loop, t, 1);
    assert_int_equal(g_err[1], WEFT_EBROKEN);
    t[1] = USER(loop, .kind = BARRIER, .prim = &b, .id = 2);
    t[2] = USER(loop, .kind = BARRIER, .prim = &b, .id = 3);
    run_all(loop, t + 1, 2);
    EXPECT_LOG(3, 2);
    assert_int_equal(weft_barrier_abort(&b), 0);
    assert_int_equal(weft_barrier_reset(&b), 0);
    t[3] = USER(loop, .kind = BARRIER, .prim = &b, .id = 4);
    t[4] = USER(loop, .kind = BARRIER, .prim = &b, .id = 5);
    run_all(loop, t + 3, 2);
    EXPECT_LOG(3, 2, 5, 4);
    assert_int_equal(weft_barrier_reset(NULL), -EINVAL);
    finish(loop);
}

/* S-BARRIER-1: parties < 1 is -EINVAL (asyncio: ValueError). */
static void test_barrier_parties_below_one_is_einval(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, loop, 0), -EINVAL);
    assert_int_equal(weft_barrier_init(NULL, loop, 1), -EINVAL);
    assert_int_equal(weft_barrier_init(&b, loop, 1), 0);
    weft_task *t = USER(loop, .kind = BARRIER, .prim = &b, .id = 1);
    step(loop); /* one party: never waits */
    EXPECT_LOG(1);
    assert_int_equal(g_val[1], 0);
    run_all(loop, &t, 1);
    finish(loop);
}

/* P-8 (1): released (served) then cancelled before it runs: the round is
 * complete, so nothing is given back and nothing breaks - the others go on
 * with their indexes, the cancelled one sees -ECANCELED. */
static void test_barrier_released_then_cancelled_does_not_break(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, loop, 3), 0);
    weft_task *t[2];
    t[0] = USER(loop, .kind = BARRIER, .prim = &b, .id = 1);
    t[1] = USER(loop, .kind = BARRIER, .prim = &b, .id = 2);
    step(loop);
    take_outside(BARRIER, &b); /* the last arriver: releases 1 and 2 */
    assert_int_equal(weft_task_cancel(t[0]), 0);
    assert_false(weft_barrier_broken(&b));
    run_all(loop, t, 2);
    EXPECT_LOG(2);
    assert_int_equal(g_val[2], 1);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_false(weft_barrier_broken(&b));
    assert_int_equal(weft_barrier_n_waiting(&b), 0);
    finish(loop);
}

/* P-8 (2), weft's rule: a waiter cancelled while the barrier fills breaks
 * it; the last party arriving in the same iteration fails WEFT_EBROKEN. */
static void test_barrier_cancelled_then_last_arrives_is_broken(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, loop, 3), 0);
    weft_task *t[2];
    t[0] = USER(loop, .kind = BARRIER, .prim = &b, .id = 1);
    t[1] = USER(loop, .kind = BARRIER, .prim = &b, .id = 2);
    step(loop);
    assert_int_equal(weft_task_cancel(t[0]), 0);
    weft_waiter w = {0};
    memset(&w, 0, sizeof w);
    weft_future *f = weft_barrier_wait(&b, &w);
    assert_int_equal(weft_future_error(f), WEFT_EBROKEN);
    weft_future_unref(f);
    run_all(loop, t, 2);
    assert_int_equal(g_err[1], -ECANCELED);
    assert_int_equal(g_err[2], WEFT_EBROKEN);
    assert_int_equal(g_nlog, 0);
    finish(loop);
}

/* P-8 (3), weft's rule (threading.Barrier's; asyncio differs): a waiter
 * cancelled while the barrier fills breaks it - the others fail with
 * WEFT_EBROKEN instead of waiting for a party that will never come. */
static void test_barrier_cancelled_while_filling_breaks_barrier(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, loop, 3), 0);
    weft_task *t[2];
    t[0] = USER(loop, .kind = BARRIER, .prim = &b, .id = 1);
    t[1] = USER(loop, .kind = BARRIER, .prim = &b, .id = 2);
    step(loop);
    assert_int_equal(weft_task_cancel(t[1]), 0);
    assert_true(weft_barrier_broken(&b));
    assert_int_equal(weft_barrier_n_waiting(&b), 0);
    assert_int_equal(weft_barrier_n_waiting(&b), 0);
    run_all(loop, t, 2);
    assert_int_equal(g_err[1], WEFT_EBROKEN);
    assert_int_equal(g_err[2], -ECANCELED);
    finish(loop);
}

/* P-8 (4): a wait timed out by weft_wait_for: -ETIMEDOUT for it, the
 * barrier is broken, the others fail with WEFT_EBROKEN at that moment. */
static void test_barrier_wait_for_timeout_breaks_barrier(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, loop, 3), 0);
    weft_task *t[2];
    t[0] = USER(loop, .kind = BARRIER, .prim = &b, .id = 1);
    t[1] = USER(loop, .kind = BARRIER, .prim = &b, .id = 2, .wait_for = 1.0);
    run_all(loop, t, 2);
    assert_int_equal(g_err[1], WEFT_EBROKEN);
    assert_int_equal(g_err[2], -ETIMEDOUT);
    assert_int_equal(g_fin_ms[1], 1000);
    assert_true(weft_barrier_broken(&b));
    assert_int_equal(weft_barrier_n_waiting(&b), 0);
    finish(loop);
}

/* P-8 (4): same through a timeout scope around a child that waits. */
static void test_barrier_timeout_scope_breaks_barrier(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_barrier b;
    assert_int_equal(weft_barrier_init(&b, loop, 3), 0);
    weft_task *t[2];
    t[0] = USER(loop, .kind = BARRIER, .prim = &b, .id = 1, .scope = 1.0);
    t[1] = USER(loop, .kind = BARRIER, .prim = &b, .id = 2);
    run_all(loop, t, 2);
    assert_int_equal(g_err[1], -ETIMEDOUT);
    assert_int_equal(g_err[2], WEFT_EBROKEN);
    assert_int_equal(g_fin_ms[2], 1000);
    assert_true(weft_barrier_broken(&b));
    finish(loop);
}

/* =============================================================================
 * Allocation
 * ========================================================================== */

struct spinner {
    WEFT_FRAME(int);
    weft_lock *l;
    weft_semaphore *s;
    weft_event *e;
    int n, i;
    weft_waiter w;
};

WEFT_ASYNC(spinner)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < self->n; self->i++) {
        WEFT_LOCK(self, self->l, &self->w);
        WEFT_YIELD(self);
        weft_lock_release(self->l);
        WEFT_AWAIT(self, weft_semaphore_acquire(self->s, &self->w));
        WEFT_YIELD(self);
        weft_semaphore_release(self->s);
        WEFT_AWAIT(self, weft_event_wait(self->e, &self->w));
        g_cycles++;
    }
    WEFT_END;
}

/* Waiting costs no allocation: the waiter node lives in the frame.  Three
 * tasks contend for a lock and a semaphore; after warm-up, 1000 more
 * contended cycles allocate nothing at all. */
static void test_contended_waiting_allocates_nothing(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    weft_semaphore s;
    weft_event e;
    weft_lock_init(&l, loop);
    assert_int_equal(weft_semaphore_init(&s, loop, 1), 0);
    weft_event_init(&e, loop);
    weft_event_set(&e);
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = WEFT_SPAWN(loop, spinner, .l = &l, .s = &s, .e = &e, .n = 500);
    while (g_cycles < 100)
        step(loop);
    long calls = alloc_calls();
    long start = g_cycles;
    while (g_cycles < start + 1000)
        step(loop);
    assert_int_equal(alloc_calls() - calls, 0);
    run_all(loop, t, 3);
    assert_int_equal(g_cycles, 1500);
    finish(loop);
}

/* NULL arguments: the blocking operations return NULL with -EINVAL, and
 * awaiting that NULL fails with it. */
static void test_null_arguments_are_einval(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_event e;
    weft_event_init(&e, loop);
    weft_waiter w = {0};
    assert_null(weft_event_wait(NULL, &w));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_event_wait(&e, NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_semaphore_acquire(NULL, &w));
    assert_null(weft_barrier_wait(NULL, &w));
    assert_false(weft_event_is_set(NULL));
    assert_false(weft_lock_locked(NULL));
    assert_false(weft_semaphore_locked(NULL));
    assert_false(weft_barrier_broken(NULL));
    assert_null(weft_condition_lock(NULL));
    weft_task *t = USER(loop, .kind = EVENT, .prim = NULL, .id = 1);
    assert_int_equal(run(loop, t), -EINVAL);
    weft_future_unref(t);
    finish(loop);
}


/* =============================================================================
 * Regressions (issue 7)
 * ========================================================================== */

/* A zero-initialised primitive (never initialised) is refused with -EINVAL
 * by every call (event_set, barrier abort/reset used to dereference NULL). */
static void test_zeroed_primitives_are_einval(void **state)
{
    (void)state;
    weft_event e;
    weft_barrier b;
    weft_lock l;
    weft_semaphore s;
    memset(&e, 0, sizeof e);
    memset(&b, 0, sizeof b);
    memset(&l, 0, sizeof l);
    memset(&s, 0, sizeof s);
    weft_waiter w = {0};
    assert_int_equal(weft_event_set(&e), -EINVAL);
    assert_int_equal(weft_event_clear(&e), -EINVAL);
    assert_null(weft_event_wait(&e, &w));
    assert_int_equal(weft_barrier_abort(&b), -EINVAL);
    assert_int_equal(weft_barrier_reset(&b), -EINVAL);
    assert_null(weft_barrier_wait(&b, &w));
    assert_int_equal(weft_lock_release(&l), -EINVAL);
    assert_null(weft_lock_acquire(&l, &w));
    assert_int_equal(weft_semaphore_release(&s), -EINVAL);
    assert_null(weft_semaphore_acquire(&s, &w));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_int_equal(weft_event_init(NULL, NULL), -EINVAL);
    assert_int_equal(weft_lock_init(&l, NULL), -EINVAL);
    assert_int_equal(weft_condition_init(NULL, NULL, NULL), -EINVAL);
}

/* Reusing a waiter still queued on a lock is refused (WEFT_ESTATE): the
 * queue is untouched. */
static void test_reusing_a_queued_lock_waiter_is_estate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    assert_int_equal(weft_lock_init(&l, loop), 0);
    weft_waiter w1 = {0}, w2 = {0};
    weft_future *a = weft_lock_acquire(&l, &w1), *b = weft_lock_acquire(&l, &w2);
    assert_null(weft_lock_acquire(&l, &w2));
    assert_int_equal(weft_last_error(), WEFT_ESTATE);
    assert_int_equal(weft_lock_waiters(&l), 1);
    assert_int_equal(weft_future_cancel(b), 0);
    assert_int_equal(weft_lock_waiters(&l), 0);
    weft_future_unref(a);
    weft_future_unref(b);
    assert_int_equal(weft_lock_release(&l), 0);
    finish(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_event_set_wakes_all_waiters_in_wait_order),
        T(test_event_clear_right_after_set_does_not_unwake),
        T(test_event_wait_on_set_event_does_not_suspend),
        T(test_event_woken_then_cancelled_others_unaffected),
        T(test_event_cancelled_then_set_skips_it),
        T(test_event_cancelled_while_queued_leaves_queue),
        T(test_event_wait_for_timeout_leaves_queue_clean),
        T(test_event_timeout_scope_leaves_queue_clean),
        T(test_lock_fifo_order_four_tasks),
        T(test_lock_no_barging_releaser_reacquire_waits_behind),
        T(test_lock_release_unlocked_is_estate),
        T(test_lock_locked_semantics),
        T(test_lock_woken_then_cancelled_passes_to_next),
        T(test_lock_woken_then_cancelled_last_waiter_unlocks),
        T(test_lock_cancelled_then_released_skips_it),
        T(test_lock_cancelled_while_queued_leaves_queue),
        T(test_lock_wait_for_timeout_next_release_goes_to_next),
        T(test_lock_timeout_scope_next_release_goes_to_next),
        T(test_lock_scope_expiry_after_handoff_passes_lock_on),
        T(test_lock_wait_for_expiry_after_handoff_value_wins),
        T(test_lock_wait_for_woken_then_cancelled_passes_to_next),
        T(test_lock_acquire_from_another_loop_is_einval),
        T(test_loop_close_unlinks_waiting_lock_acquirer),
        T(test_loop_destroy_unlinks_waiting_lock_acquirer),
        T(test_loop_close_returns_lock_handed_to_task_that_never_ran),
        T(test_semaphore_value_and_locked),
        T(test_semaphore_fifo_order),
        T(test_semaphore_release_hands_permit_newcomer_queues),
        T(test_semaphore_value_positive_only_without_waiters),
        T(test_bounded_semaphore_over_release_is_eoverflow),
        T(test_semaphore_negative_init_is_einval),
        T(test_semaphore_woken_then_cancelled_passes_to_next),
        T(test_semaphore_woken_then_cancelled_last_waiter_returns_permit),
        T(test_semaphore_cancelled_then_released_skips_it),
        T(test_semaphore_cancelled_while_queued_leaves_queue),
        T(test_semaphore_wait_for_timeout_next_release_goes_to_next),
        T(test_semaphore_timeout_scope_next_release_goes_to_next),
        T(test_condition_notify_n_wakes_n_in_fifo_order),
        T(test_condition_notify_all_wakes_every_waiter),
        T(test_condition_wait_reacquires_lock_before_returning),
        T(test_condition_wait_cancelled_reacquires_lock),
        T(test_condition_cancel_during_reacquire_keeps_fifo_place),
        T(test_condition_notify_without_lock_is_estate),
        T(test_condition_wait_without_lock_is_estate),
        T(test_condition_wait_for_predicate),
        T(test_condition_notified_then_cancelled_passes_notification),
        T(test_condition_cancelled_then_notified_skips_it),
        T(test_condition_cancelled_while_queued_leaves_queue),
        T(test_condition_timeout_scope_reacquires_and_cleans_queue),
        T(test_condition_wait_for_timeout_reacquires_and_cleans_queue),
        T(test_barrier_arrival_indexes_last_releases_all),
        T(test_barrier_n_waiting),
        T(test_barrier_abort_breaks_current_and_future_waiters),
        T(test_barrier_reset_fails_waiters_then_usable),
        T(test_barrier_parties_below_one_is_einval),
        T(test_barrier_released_then_cancelled_does_not_break),
        T(test_barrier_cancelled_then_last_arrives_is_broken),
        T(test_barrier_cancelled_while_filling_breaks_barrier),
        T(test_barrier_wait_for_timeout_breaks_barrier),
        T(test_barrier_timeout_scope_breaks_barrier),
        T(test_contended_waiting_allocates_nothing),
        T(test_null_arguments_are_einval),
        /* regressions */
        T(test_zeroed_primitives_are_einval),
        T(test_reusing_a_queued_lock_waiter_is_estate),
    };
    return RUN_TESTS(tests);
}
