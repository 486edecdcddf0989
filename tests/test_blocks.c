/* tests/test_blocks.c - the scoped forms: timeout, task group, lock,
 * semaphore and condition blocks, and WEFT_TRY / WEFT_EXCEPT (issue 9),
 * one guarantee per test.  Built on both coroutine backends.
 *
 * A block's exit runs on every way out of it (its end, an error, a return,
 * a cancellation); blocks nest, suspend inside and need no C local.  Time
 * is the virtual clock's; every test ends with the loop destroyed and
 * every block given back (finish()).
 */
#include "weft_test.h"

#include <math.h>

static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 60, .check_reports = true});
    return 0;
}

static int64_t now(weft_task *task)
{
    return weft_loop_now(weft_task_loop(task));
}

/* ---- timeout blocks ------------------------------------------------------------------ */

struct tblock {
    WEFT_FRAME(int);
    double limit, work, inner_limit;
    int caught, inner_caught;
    int64_t at;
    bool expired;
    weft_timeout to, inner;
};

/* One timeout block around a sleep of `work` seconds. */
WEFT_ASYNC(tblock)
{
    WEFT_BEGIN(self);
    WEFT_TIMEOUT_BEGIN(self, to, self->limit);
    WEFT_SLEEP(self, self->work);
    log_tag(1);
    WEFT_TIMEOUT_END(self, to);
    log_tag(2);
    WEFT_FINALLY;
    self->at = now(task);
    self->expired = weft_timeout_expired(&self->to);
    WEFT_END;
}

/* S-TIMEOUT-2 (block form): the expiry cancels the task, and at the
 * block's end the cancellation becomes -ETIMEDOUT and unwinds on. */
static void test_timeout_block_expiry_unwinds_with_etimedout(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, tblock, .limit = 1.5, .work = 10);
    assert_int_equal(run(loop, t), -ETIMEDOUT);
    assert_int_equal(weft_loop_now(loop), 1500 * MS);
    assert_int_equal(g_nlog, 0);
    assert_int_equal(weft_task_cancelling(t), 0); /* its own cancellation is withdrawn */
    weft_future_unref(t);
    finish(loop);
}

/* Work that finishes in time: the block ends normally. */
static void test_timeout_block_in_time_goes_on(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, tblock, .limit = 5, .work = 1);
    assert_int_equal(run(loop, t), 0);
    EXPECT_LOG(1, 2);
    assert_int_equal(weft_loop_now(loop), 1 * SEC);
    weft_future_unref(t);
    finish(loop);
}

static void cancel_cb(void *t)
{
    assert_int_equal(weft_task_cancel(t), 0);
}

/* An outside cancellation stays -ECANCELED through the block. */
static void test_timeout_block_leaves_outside_cancel_intact(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, tblock, .limit = 5, .work = 10);
    assert_int_equal(weft_call_later_ns(loop, 2 * SEC, cancel_cb, t, NULL), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(weft_loop_now(loop), 2 * SEC);
    weft_future_unref(t);
    finish(loop);
}

struct tnest {
    WEFT_FRAME(int);
    double limit, inner_limit;
    int caught, inner_caught;
    int64_t at;
    weft_timeout to, inner;
};

/* Nested blocks: the inner one expires first and WEFT_TIMEOUT_TRY_END
 * catches its -ETIMEDOUT; the outer one expires later. */
WEFT_ASYNC(tnest)
{
    WEFT_BEGIN(self);
    WEFT_TIMEOUT_BEGIN(self, to, self->limit);
    WEFT_TIMEOUT_BEGIN(self, inner, self->inner_limit);
    WEFT_SLEEP(self, 100);
    WEFT_TIMEOUT_TRY_END(self, inner, self->inner_caught);
    log_tag(self->inner_caught == -ETIMEDOUT ? 1 : 9);
    self->at = now(task);
    WEFT_SLEEP(self, 100);
    WEFT_TIMEOUT_TRY_END(self, to, self->caught);
    log_tag(self->caught == -ETIMEDOUT ? 2 : 9);
    WEFT_END;
}

static void test_nested_timeout_blocks_each_convert_their_own(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, tnest, .limit = 3, .inner_limit = 1);
    assert_int_equal(run(loop, t), 0);
    EXPECT_LOG(1, 2);
    assert_int_equal(weft_loop_now(loop), 3 * SEC);
    weft_future_unref(t);
    finish(loop);
}

/* reschedule moves an active block's deadline. */
struct tresched {
    WEFT_FRAME(int);
    int e;
    weft_timeout to;
};

WEFT_ASYNC(tresched)
{
    WEFT_BEGIN(self);
    WEFT_TIMEOUT_BEGIN(self, to, 1.0);
    assert_int_equal(weft_timeout_reschedule(&self->to, now(task) + 4 * SEC), 0);
    WEFT_SLEEP(self, 100);
    WEFT_TIMEOUT_TRY_END(self, to, self->e);
    WEFT_RETURN(self, self->e);
    WEFT_END;
}

static void test_timeout_block_reschedule_moves_the_deadline(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, tresched);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), -ETIMEDOUT);
    assert_int_equal(weft_loop_now(loop), 4 * SEC);
    weft_future_unref(t);
    finish(loop);
}

/* NaN is -EINVAL at BEGIN and the block is not entered; a timer that cannot
 * be had (-ENOMEM) the same. */
static void test_timeout_block_refuses_nan_and_survives_enomem(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, tblock, .limit = NAN, .work = 1);
    assert_int_equal(run(loop, t), -EINVAL);
    assert_int_equal(g_nlog, 0);
    weft_future_unref(t);
    wt_warm(loop);
    for (long k = 1;; k++) {
        g_nlog = 0;
        t = WEFT_SPAWN(loop, tblock, .limit = 5, .work = 1);
        assert_non_null(t);
        alloc_fail_at(alloc_calls() + k);
        step(loop); /* the first step: the scope's timer, the sleep */
        alloc_fail_at(0);
        int rc = run(loop, t);
        weft_future_unref(t);
        if (rc == 0) {
            EXPECT_LOG(1, 2);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
    }
    finish(loop);
}

/* ---- lock, semaphore and condition blocks ------------------------------------------------ */

enum { END_NORMAL, END_THROW, END_RETURN, END_CANCEL };

struct lblock {
    WEFT_FRAME(int);
    weft_lock *l;
    weft_semaphore *s;
    int how;
    weft_lock_block g, g2;
};

WEFT_ASYNC(lblock)
{
    WEFT_BEGIN(self);
    if (self->l) {
        WEFT_LOCK_BEGIN(self, g, self->l);
        log_tag(weft_lock_locked(self->l) ? 1 : 9);
        if (self->how == END_THROW)
            WEFT_THROW(self, -EIO);
        if (self->how == END_RETURN)
            WEFT_RETURN(self, 5);
        WEFT_SLEEP(self, self->how == END_CANCEL ? 100 : 1);
        WEFT_LOCK_END(self, g);
    } else {
        WEFT_SEMAPHORE_BEGIN(self, g2, self->s);
        log_tag((int)weft_semaphore_value(self->s));
        if (self->how == END_THROW)
            WEFT_THROW(self, -EIO);
        WEFT_SLEEP(self, 1);
        WEFT_SEMAPHORE_END(self, g2);
    }
    log_tag(2);
    WEFT_END;
}

/* async with lock: the lock is released on every way out - the end, an
 * error, a return, a cancellation - and what unwound goes on. */
static void test_lock_block_releases_on_every_path(void **state)
{
    (void)state;
    static const int rcs[] = {0, -EIO, 0, -ECANCELED};
    for (int how = END_NORMAL; how <= END_CANCEL; how++) {
        weft_loop *loop = vloop();
        g_nlog = 0;
        weft_lock l;
        assert_int_equal(weft_lock_init(&l, loop), 0);
        weft_task *t = WEFT_SPAWN(loop, lblock, .l = &l, .how = how);
        if (how == END_CANCEL)
            assert_int_equal(weft_call_later_ns(loop, 3 * SEC, cancel_cb, t, NULL), 0);
        assert_int_equal(run(loop, t), rcs[how]);
        assert_false(weft_lock_locked(&l));
        if (how == END_NORMAL)
            EXPECT_LOG(1, 2);
        else
            EXPECT_LOG(1);
        if (how == END_RETURN)
            assert_int_equal(result_i(t), 5);
        weft_future_unref(t);
        finish(loop);
    }
}

/* A `continue` out of a lock block jumps back to its beginning while it is
 * still open: the block is entered again before its end.  That is refused
 * (WEFT_ECORO, WEFT_CO_MISUSE_REENTER, reported with the line) instead of
 * waiting forever for the lock the frame holds, and the unwinding releases
 * the lock through the block's exit. */
struct reenter {
    WEFT_FRAME(int);
    weft_lock *l;
    int i;
    weft_lock_block g;
};

WEFT_ASYNC(reenter)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < 2; self->i++) {
        WEFT_LOCK_BEGIN(self, g, self->l);
        log_tag(self->i + 1);
        if (self->i == 0)
            continue; /* misuse: leaves the block without its end */
        WEFT_LOCK_END(self, g);
    }
    WEFT_END;
}

static void test_block_entered_again_before_its_end_is_refused(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_nlog = 0;
    weft_lock l;
    assert_int_equal(weft_lock_init(&l, loop), 0);
    weft_task *t = WEFT_SPAWN(loop, reenter, .l = &l);
    g_hook.expect = 1;
    assert_int_equal(run(loop, t), WEFT_ECORO);
    EXPECT_LOG(1);
    assert_false(weft_lock_locked(&l)); /* released on the way out */
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_MISUSE], 1);
    assert_non_null(strstr(g_hook.msg, "began again"));
    weft_future_unref(t);
    finish(loop);
}

/* Two tasks through one lock block take turns (the block waits FIFO). */
static void test_lock_blocks_serialise_tasks(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    assert_int_equal(weft_lock_init(&l, loop), 0);
    weft_task *a = WEFT_SPAWN(loop, lblock, .l = &l);
    weft_task *b = WEFT_SPAWN(loop, lblock, .l = &l);
    assert_int_equal(run(loop, b), 0);
    assert_true(weft_future_done(a));
    EXPECT_LOG(1, 2, 1, 2);
    assert_int_equal(weft_loop_now(loop), 2 * SEC);
    weft_future_unref(a);
    weft_future_unref(b);
    finish(loop);
}

/* async with semaphore: the permit comes back on every path. */
static void test_semaphore_block_gives_the_permit_back(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_semaphore s;
    assert_int_equal(weft_semaphore_init(&s, loop, 2), 0);
    weft_task *a = WEFT_SPAWN(loop, lblock, .s = &s);
    weft_task *b = WEFT_SPAWN(loop, lblock, .s = &s, .how = END_THROW);
    assert_int_equal(run(loop, a), 0);
    assert_int_equal(run(loop, b), -EIO);
    assert_int_equal(weft_semaphore_value(&s), 2);
    EXPECT_LOG(1, 0, 2);
    weft_future_unref(a);
    weft_future_unref(b);
    finish(loop);
}

/* async with cond: await cond.wait() ... - the consumer waits for the
 * producer's notify inside a condition block, and holds the lock after. */
static int g_items;

struct cconsumer {
    WEFT_FRAME(int);
    weft_condition *c;
    weft_condition_block cb;
};

WEFT_ASYNC(cconsumer)
{
    WEFT_BEGIN(self);
    WEFT_CONDITION_BEGIN(self, cb, self->c);
    while (g_items == 0)
        WEFT_CONDITION_WAIT(self, cb);
    g_items--;
    log_tag(weft_lock_locked(weft_condition_lock(self->c)) ? 1 : 9);
    WEFT_CONDITION_END(self, cb);
    WEFT_END;
}

struct cproducer {
    WEFT_FRAME(int);
    weft_condition *c;
    weft_condition_block cb;
};

WEFT_ASYNC(cproducer)
{
    WEFT_BEGIN(self);
    WEFT_SLEEP(self, 1);
    WEFT_CONDITION_BEGIN(self, cb, self->c);
    g_items++;
    weft_condition_notify(self->c, 1);
    log_tag(2);
    WEFT_CONDITION_END(self, cb);
    WEFT_END;
}

static void test_condition_block_waits_and_releases(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_items = 0;
    weft_condition c;
    assert_int_equal(weft_condition_init(&c, loop, NULL), 0);
    weft_task *k = WEFT_SPAWN(loop, cconsumer, .c = &c);
    weft_task *p = WEFT_SPAWN(loop, cproducer, .c = &c);
    assert_int_equal(run(loop, k), 0);
    assert_int_equal(run(loop, p), 0);
    EXPECT_LOG(2, 1);
    assert_false(weft_lock_locked(weft_condition_lock(&c)));
    weft_future_unref(k);
    weft_future_unref(p);
    finish(loop);
}

/* ---- task group blocks ---------------------------------------------------------------------- */

struct child {
    WEFT_FRAME(int);
    double d;
    int fail, tag;
};

WEFT_ASYNC(child)
{
    WEFT_BEGIN(self);
    WEFT_SLEEP(self, self->d);
    if (self->fail)
        WEFT_THROW(self, self->fail);
    WEFT_FINALLY;
    note(self->tag, self->co.err);
    WEFT_END;
}

struct gblock {
    WEFT_FRAME(int);
    int fail_kid, body_fail;
    double body_d;
    weft_group g;
};

WEFT_ASYNC(gblock)
{
    WEFT_BEGIN(self);
    WEFT_GROUP_BEGIN(self, g);
    WEFT_GROUP_SPAWN(&self->g, child, .d = 1, .tag = 1);
    WEFT_GROUP_SPAWN(&self->g, child, .d = 2, .tag = 2, .fail = self->fail_kid);
    WEFT_GROUP_SPAWN(&self->g, child, .d = 3, .tag = 3);
    if (self->body_d > 0)
        WEFT_SLEEP(self, self->body_d);
    if (self->body_fail)
        WEFT_THROW(self, self->body_fail);
    WEFT_GROUP_END(self, g);
    note(9, 0); /* after the block */
    WEFT_END;
}

/* S-TG-1 (block form): the end waits for every child. */
static void test_group_block_end_joins_every_child(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, gblock);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(weft_loop_now(loop), 3 * SEC);
    EXPECT_TAGS(1, 2, 3, 9);
    weft_future_unref(t);
    finish(loop);
}

/* S-TG-3: a child failure cancels the others and the body, and the group's
 * error unwinds from the end of the block. */
static void test_group_block_child_failure_unwinds_from_its_end(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, gblock, .fail_kid = -EIO, .body_d = 10);
    assert_int_equal(run(loop, t), -EIO);
    assert_int_equal(weft_loop_now(loop), 2 * SEC);
    EXPECT_TAGS(1, 2, 3);
    assert_int_equal(g_ev[2].err, -ECANCELED);
    assert_int_equal(weft_task_cancelling(t), 0); /* the group's cancellation withdrawn */
    weft_future_unref(t);
    finish(loop);
}

/* An error of the body: the end still waits for the children (cancelled),
 * then the body's error unwinds on. */
static void test_group_block_body_error_waits_then_unwinds(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, gblock, .body_fail = -EPIPE);
    assert_int_equal(run(loop, t), -EPIPE);
    EXPECT_TAGS(1, 2, 3);
    assert_int_equal(g_ev[0].err, -ECANCELED);
    weft_future_unref(t);
    finish(loop);
}

/* A cancellation from outside while the block waits for its children
 * cancels them; the task ends cancelled. */
static void test_group_block_outside_cancel_cancels_children(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, gblock);
    assert_int_equal(weft_call_later_ns(loop, 1500 * MS, cancel_cb, t, NULL), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(weft_loop_now(loop), 1500 * MS);
    EXPECT_TAGS(1, 2, 3);
    assert_int_equal(g_ev[1].err, -ECANCELED);
    weft_future_unref(t);
    finish(loop);
}

/* ---- WEFT_TRY / WEFT_EXCEPT ------------------------------------------------------------------ */

struct trier {
    WEFT_FRAME(int);
    int fail, mode, err, err2;
    weft_try t, t2;
};

struct failing {
    WEFT_FRAME(int);
    int fail;
};

WEFT_ASYNC(failing)
{
    WEFT_BEGIN(self);
    WEFT_SLEEP(self, 1);
    if (self->fail)
        WEFT_THROW(self, self->fail);
    WEFT_END;
}

/* try: await failing() except E: log, and the body goes on */
WEFT_ASYNC(trier)
{
    WEFT_BEGIN(self);
    WEFT_TRY(self, t);
    WEFT_AWAIT(self, WEFT_SPAWN(weft_task_loop(task), failing, .fail = self->fail));
    log_tag(1);
    if (self->mode == 1)
        WEFT_RETURN(self, 7);
    WEFT_EXCEPT(self, t, self->err);
    log_tag(self->err == 0 ? 2 : self->err == -EIO ? 3 : 9);
    WEFT_TRY(self, t2);
    WEFT_SLEEP(self, 100);
    WEFT_EXCEPT_CANCEL(self, t2, self->err2);
    log_tag(self->err2 == -ECANCELED ? 4 : 5);
    WEFT_RETURN(self, 1);
    WEFT_FINALLY;
    log_tag(8);
    WEFT_END;
}

static void test_try_except_catches_and_goes_on(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, trier, .fail = -EIO);
    assert_int_equal(weft_call_later_ns(loop, 5 * SEC, cancel_cb, t, NULL), 0);
    /* the second TRY catches the cancellation (EXCEPT_CANCEL), but the task
     * stays cancelled: it ends CANCELLED */
    assert_int_equal(run(loop, t), -ECANCELED);
    EXPECT_LOG(3, 4, 8);
    weft_future_unref(t);
    finish(loop);
}

static void test_try_without_error_and_return_inside_try(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, trier, .mode = 1);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 7); /* the return went through FINALLY to the end */
    EXPECT_LOG(1, 8);
    weft_future_unref(t);
    finish(loop);
}

/* WEFT_EXCEPT does not catch a cancellation: it unwinds on. */
struct trycancel {
    WEFT_FRAME(int);
    int err;
    weft_try t;
};

WEFT_ASYNC(trycancel)
{
    WEFT_BEGIN(self);
    WEFT_TRY(self, t);
    WEFT_SLEEP(self, 100);
    WEFT_EXCEPT(self, t, self->err);
    log_tag(1); /* not reached */
    WEFT_END;
}

static void test_except_does_not_swallow_cancellation(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, trycancel);
    assert_int_equal(weft_call_later_ns(loop, 1 * SEC, cancel_cb, t, NULL), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_nlog, 0);
    weft_future_unref(t);
    finish(loop);
}

/* A `break` out of a block (its end never reached) is misuse: the frame
 * fails with WEFT_ECORO and the report says why. */
struct breaker {
    WEFT_FRAME(int);
    int i;
    weft_lock *l;
    weft_lock_block g;
};

WEFT_ASYNC(breaker)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < 3; self->i++) {
        WEFT_LOCK_BEGIN(self, g, self->l);
        if (self->i == 0)
            break; /* misuse: leaves the block without its end */
        WEFT_LOCK_END(self, g);
    }
    WEFT_END;
}

static void test_break_out_of_a_block_is_misuse(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    assert_int_equal(weft_lock_init(&l, loop), 0);
    weft_task *t = WEFT_SPAWN(loop, breaker, .l = &l);
    assert_int_equal(run(loop, t), WEFT_ECORO);
    assert_non_null(strstr(g_hook.msg, "block"));
    g_hook.expect = 1;
    weft_future_unref(t);
    finish(loop);
}

/* A lock block inside FINALLY works (cleanup may take a lock). */
struct finlock {
    WEFT_FRAME(int);
    weft_lock *l;
    weft_lock_block g;
};

WEFT_ASYNC(finlock)
{
    WEFT_BEGIN(self);
    WEFT_THROW(self, -EIO);
    WEFT_FINALLY;
    WEFT_LOCK_BEGIN(self, g, self->l);
    WEFT_SLEEP(self, 1);
    log_tag(self->co.err == -EIO ? 1 : 9);
    WEFT_LOCK_END(self, g);
    log_tag(2);
    WEFT_END;
}

static void test_lock_block_inside_finally(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    assert_int_equal(weft_lock_init(&l, loop), 0);
    weft_task *t = WEFT_SPAWN(loop, finlock, .l = &l);
    assert_int_equal(run(loop, t), -EIO);
    EXPECT_LOG(1, 2);
    assert_false(weft_lock_locked(&l));
    weft_future_unref(t);
    finish(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_timeout_block_expiry_unwinds_with_etimedout),
        T(test_timeout_block_in_time_goes_on),
        T(test_timeout_block_leaves_outside_cancel_intact),
        T(test_nested_timeout_blocks_each_convert_their_own),
        T(test_timeout_block_reschedule_moves_the_deadline),
        T(test_timeout_block_refuses_nan_and_survives_enomem),
        T(test_lock_block_releases_on_every_path),
        T(test_block_entered_again_before_its_end_is_refused),
        T(test_lock_blocks_serialise_tasks),
        T(test_semaphore_block_gives_the_permit_back),
        T(test_condition_block_waits_and_releases),
        T(test_group_block_end_joins_every_child),
        T(test_group_block_child_failure_unwinds_from_its_end),
        T(test_group_block_body_error_waits_then_unwinds),
        T(test_group_block_outside_cancel_cancels_children),
        T(test_try_except_catches_and_goes_on),
        T(test_try_without_error_and_return_inside_try),
        T(test_except_does_not_swallow_cancellation),
        T(test_break_out_of_a_block_is_misuse),
        T(test_lock_block_inside_finally),
    };
    return RUN_TESTS(tests);
}
