/* tests/test_future.c - futures, pinned one guarantee per test.
 *
 * Each test is named after the guarantee it pins (include/weft/future.h)
 * and cites the asyncio statement it mirrors (S-FUT-n, S-LOOP-12 in
 * shared/reference/asyncio-semantics.md, section 2).  Where weft deliberately
 * differs from asyncio, the test says so and why.
 *
 * Time.  Every loop runs on the virtual clock (WEFT_LOOP_VIRTUAL_CLOCK):
 * nothing here waits on real time.
 *
 * Leaks and ownership.  Every loop is created with a counting allocator;
 * finish() destroys the loop and asserts that no block is still live, and
 * that the loop's error hook reported exactly what the test expected.  Run
 * the binary under valgrind (or build with WEFT_ASAN) to check the
 * reference-counting rule: a future used after its last reference dropped
 * is a use-after-free there.  The allocation tests use the same allocator
 * to fail the Nth allocation.  WEFT_TEST_FILTER / WEFT_TEST_SKIP (globs)
 * select tests.
 */
#include "weft_test.h"

#include "assert.h" /* WEFT__POISON: this build's recycling policy */

#include <math.h>

/* Done callbacks that record what they saw. */
static weft_future *g_cb_future;
static weft_future_state g_cb_state;

static void done_rec(weft_future *f, void *tag)
{
    g_cb_future = f;
    g_cb_state = weft_future_state_of(f);
    rec(tag);
}

static void done_nop(weft_future *f, void *arg)
{
    (void)f, (void)arg;
}

/* Callbacks that complete a future, dropping the reference they were given
 * (set_int_cb: weft_test.h). */
static void set_eio_cb(void *f)
{
    assert_int_equal(weft_future_set_error(f, -EIO), 0);
    weft_future_unref(f);
}

static void cancel_cb(void *f)
{
    assert_int_equal(weft_future_cancel(f), 0);
    weft_future_unref(f);
}

/* Pointer destructor accounting. */
static int g_dtor_calls;
static void *g_dtor_last;

static void count_dtor(void *p)
{
    g_dtor_calls++;
    g_dtor_last = p;
}

/* ---- fixtures ------------------------------------------------------------------ */

/* finish() also checks that the error hook reported exactly g_hook.expect. */
static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 60, .check_reports = true});
    g_dtor_calls = 0;
    g_dtor_last = NULL;
    g_cb_future = NULL;
    g_cb_state = WEFT_PENDING;
    return 0;
}

/* =============================================================================
 * States (S-FUT-1 .. S-FUT-5)
 * ========================================================================== */

/* S-FUT-1: a new future is pending, not cancelled, bound to its loop. */
static void test_new_future_is_pending_and_bound_to_its_loop(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_non_null(f);
    assert_int_equal(weft_future_state_of(f), WEFT_PENDING);
    assert_false(weft_future_done(f));
    assert_false(weft_future_cancelled(f));
    assert_ptr_equal(weft_future_loop(f), loop);
    assert_false(weft_is_task(f));
    weft_future_unref(f);
    finish(loop);
}

/* S-FUT-1, S-FUT-2: set_result (and its typed forms) make the future DONE
 * with that value. */
static void test_set_result_finishes_future_with_value(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *fr = weft_future_new(loop), *fi = weft_future_new(loop);
    weft_future *fd = weft_future_new(loop), *fp = weft_future_new(loop);
    int x;
    assert_int_equal(weft_future_set_result(fr, (weft_value){.i = -7}), 0);
    assert_int_equal(weft_future_set_int(fi, INT64_MAX), 0);
    assert_int_equal(weft_future_set_double(fd, 2.5), 0);
    assert_int_equal(weft_future_set_ptr(fp, &x, NULL), 0);
    weft_future *all[] = {fr, fi, fd, fp};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(weft_future_state_of(all[i]), WEFT_DONE);
        assert_true(weft_future_done(all[i]));
        assert_false(weft_future_cancelled(all[i]));
        assert_int_equal(weft_future_error(all[i]), 0);
    }
    weft_value v;
    assert_int_equal(weft_future_result(fr, &v), 0);
    assert_int_equal(v.i, -7);
    assert_int_equal(weft_future_result(fi, &v), 0);
    assert_true(v.i == INT64_MAX);
    assert_int_equal(weft_future_result(fd, &v), 0);
    assert_true(v.d == 2.5);
    assert_int_equal(weft_future_result(fp, &v), 0);
    assert_ptr_equal(v.p, &x);
    for (int i = 0; i < 4; i++)
        weft_future_unref(all[i]);
    finish(loop);
}

/* S-FUT-1, S-FUT-3: set_error makes the future DONE (not cancelled) with
 * that error code. */
static void test_set_error_finishes_future_with_error(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_set_error(f, -EIO), 0);
    assert_int_equal(weft_future_state_of(f), WEFT_DONE);
    assert_true(weft_future_done(f));
    assert_false(weft_future_cancelled(f));
    assert_int_equal(weft_future_error(f), -EIO);
    weft_future_unref(f);
    finish(loop);
}

/* S-FUT-1, S-FUT-4: cancel makes a pending future CANCELLED; its error
 * reads -ECANCELED. */
static void test_cancel_makes_pending_future_cancelled(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(weft_future_state_of(f), WEFT_CANCELLED);
    assert_true(weft_future_done(f));
    assert_true(weft_future_cancelled(f));
    assert_int_equal(weft_future_error(f), -ECANCELED);
    weft_future_unref(f);
    finish(loop);
}

/* S-FUT-2, S-FUT-3: a done future refuses a second outcome with WEFT_ESTATE
 * and keeps the first one. */
static void test_second_set_returns_estate_and_keeps_first_outcome(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop), *g = weft_future_new(loop);
    int x;
    assert_int_equal(weft_future_set_int(f, 1), 0);
    assert_int_equal(weft_future_set_int(f, 2), WEFT_ESTATE);
    assert_int_equal(weft_future_set_result(f, (weft_value){.i = 3}), WEFT_ESTATE);
    assert_int_equal(weft_future_set_double(f, 4.0), WEFT_ESTATE);
    assert_int_equal(weft_future_set_ptr(f, &x, count_dtor), WEFT_ESTATE);
    assert_int_equal(weft_future_set_error(f, -EIO), WEFT_ESTATE);
    weft_value v;
    assert_int_equal(weft_future_result(f, &v), 0);
    assert_int_equal(v.i, 1);

    assert_int_equal(weft_future_set_error(g, -EPIPE), 0);
    assert_int_equal(weft_future_set_error(g, -EIO), WEFT_ESTATE);
    assert_int_equal(weft_future_set_int(g, 5), WEFT_ESTATE);
    assert_int_equal(weft_future_error(g), -EPIPE);
    weft_future_unref(f);
    weft_future_unref(g);
    assert_int_equal(g_dtor_calls, 0); /* the refused pointer was never owned */
    finish(loop);
}

/* S-FUT-2: every setter refuses a cancelled future; it stays cancelled. */
static void test_set_after_cancel_returns_estate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    int x;
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(weft_future_set_result(f, (weft_value){.i = 1}), WEFT_ESTATE);
    assert_int_equal(weft_future_set_int(f, 1), WEFT_ESTATE);
    assert_int_equal(weft_future_set_double(f, 1.0), WEFT_ESTATE);
    assert_int_equal(weft_future_set_ptr(f, &x, count_dtor), WEFT_ESTATE);
    assert_int_equal(weft_future_set_error(f, -EIO), WEFT_ESTATE);
    assert_int_equal(weft_future_state_of(f), WEFT_CANCELLED);
    assert_int_equal(weft_future_error(f), -ECANCELED);
    weft_future_unref(f);
    assert_int_equal(g_dtor_calls, 0);
    finish(loop);
}

/* S-FUT-4: cancel on a done or cancelled future has no effect.  Deliberate
 * difference: asyncio's cancel() returns False; weft returns WEFT_ESTATE,
 * because every weft call that cannot do its job says so with an error
 * code (common.h). */
static void test_cancel_after_done_returns_estate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop), *g = weft_future_new(loop);
    weft_future *c = weft_future_new(loop);
    assert_int_equal(weft_future_set_int(f, 9), 0);
    assert_int_equal(weft_future_cancel(f), WEFT_ESTATE);
    assert_int_equal(weft_future_state_of(f), WEFT_DONE);
    assert_int_equal(weft_future_error(f), 0);
    assert_int_equal(weft_future_set_error(g, -EIO), 0);
    assert_int_equal(weft_future_cancel(g), WEFT_ESTATE);
    assert_int_equal(weft_future_error(g), -EIO);
    assert_int_equal(weft_future_cancel(c), 0);
    assert_int_equal(weft_future_cancel(c), WEFT_ESTATE);
    assert_int_equal(weft_future_state_of(c), WEFT_CANCELLED);
    weft_future_unref(f);
    weft_future_unref(g);
    weft_future_unref(c);
    finish(loop);
}

/* S-FUT-3: set_error takes a negative code other than -ECANCELED (use
 * cancel for that); anything else is -EINVAL and changes nothing. */
static void test_set_error_rejects_ecanceled_and_non_negative_codes(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(1)), 0);
    assert_int_equal(weft_future_set_error(f, -ECANCELED), -EINVAL);
    assert_int_equal(weft_future_set_error(f, 0), -EINVAL);
    assert_int_equal(weft_future_set_error(f, 1), -EINVAL);
    assert_int_equal(weft_future_set_error(f, EIO), -EINVAL);
    assert_int_equal(weft_future_state_of(f), WEFT_PENDING);
    step(loop);
    assert_int_equal(g_n, 0);                                    /* nothing was queued */
    assert_int_equal(weft_future_set_error(f, WEFT_EBROKEN), 0); /* weft codes are fine */
    assert_int_equal(weft_future_error(f), WEFT_EBROKEN);
    step(loop);
    EXPECT_TAGS(1);
    weft_future_unref(f);
    finish(loop);
}

/* S-FUT-5: result() per state: pending -> WEFT_ESTATE (out untouched),
 * value -> 0 and *out, error -> the code (out untouched), cancelled ->
 * -ECANCELED.  out may be NULL. */
static void test_result_in_each_state(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *p = weft_future_new(loop), *v = weft_future_new(loop);
    weft_future *e = weft_future_new(loop), *c = weft_future_new(loop);
    assert_int_equal(weft_future_set_int(v, 11), 0);
    assert_int_equal(weft_future_set_error(e, -ENOSPC), 0);
    assert_int_equal(weft_future_cancel(c), 0);

    weft_value out = {.i = 777};
    assert_int_equal(weft_future_result(p, &out), WEFT_ESTATE);
    assert_int_equal(out.i, 777);
    assert_int_equal(weft_future_error(p), WEFT_ESTATE);
    assert_int_equal(weft_future_result(e, &out), -ENOSPC);
    assert_int_equal(out.i, 777);
    assert_int_equal(weft_future_result(c, &out), -ECANCELED);
    assert_int_equal(out.i, 777);
    assert_int_equal(weft_future_result(v, &out), 0);
    assert_int_equal(out.i, 11);
    assert_int_equal(weft_future_result(v, NULL), 0);
    /* reading does not consume: the outcome can be read again */
    assert_int_equal(weft_future_result(v, &out), 0);
    assert_int_equal(out.i, 11);
    assert_int_equal(weft_future_error(e), -ENOSPC);
    weft_future_unref(p);
    weft_future_unref(v);
    weft_future_unref(e);
    weft_future_unref(c);
    finish(loop);
}

struct idle_task {
    WEFT_FRAME(int);
};

WEFT_ASYNC(idle_task)
{
    WEFT_BEGIN(self);
    WEFT_RETURN(self, 5);
    WEFT_END;
}

/* future.h: a task's outcome comes from its coroutine, so the setters
 * refuse a task (WEFT_ESTATE) even while it is pending. */
static void test_setters_refuse_a_task(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, idle_task);
    assert_non_null(t);
    assert_int_equal(weft_future_set_int(t, 1), WEFT_ESTATE);
    assert_int_equal(weft_future_set_error(t, -EIO), WEFT_ESTATE);
    assert_int_equal(weft_future_state_of(t), WEFT_PENDING);
    assert_int_equal(weft_loop_run_until_complete(loop, t), 0);
    weft_value v;
    assert_int_equal(weft_future_result(t, &v), 0);
    assert_int_equal(v.i, 5);
    weft_future_unref(t);
    finish(loop);
}

/* S-FUT-9: a future that failed and is freed without anyone retrieving its
 * error is reported once through the error hook, with its error code; a
 * retrieved error, a value and a cancellation are not reported. */
static void test_unretrieved_error_is_reported_once_when_freed(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *lost = weft_future_new(loop), *seen = weft_future_new(loop);
    weft_future *c = weft_future_new(loop), *v = weft_future_new(loop);
    assert_int_equal(weft_future_set_error(lost, -ENOSPC), 0);
    assert_int_equal(weft_future_set_error(seen, -EIO), 0);
    assert_int_equal(weft_future_cancel(c), 0);
    assert_int_equal(weft_future_set_int(v, 1), 0);
    assert_int_equal(weft_future_error(seen), -EIO);
    weft_future_unref(seen);
    weft_future_unref(c);
    weft_future_unref(v);
    assert_int_equal(g_hook.count, 0);
    weft_future_unref(lost);
    assert_int_equal(g_hook.count, 1);
    assert_int_equal(g_hook.err, -ENOSPC);
    g_hook.expect = 1;
    finish(loop);
}

/* =============================================================================
 * Done callbacks (S-FUT-7, S-FUT-8)
 * ========================================================================== */

/* S-FUT-7: completing a future (value, error or cancel) never calls its
 * callbacks inline: they run in the next iteration, with the future. */
static void test_done_callbacks_are_never_called_inline(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f[3];
    for (int i = 0; i < 3; i++) {
        f[i] = weft_future_new(loop);
        assert_int_equal(weft_future_add_done_callback(f[i], done_rec, TAG(i)), 0);
    }
    uint64_t it = iterations(loop);
    assert_int_equal(weft_future_set_int(f[0], 1), 0);
    assert_int_equal(weft_future_set_error(f[1], -EIO), 0);
    assert_int_equal(weft_future_cancel(f[2]), 0);
    assert_int_equal(g_n, 0);
    step(loop);
    EXPECT_TAGS(0, 1, 2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(g_ev[i].iter, it); /* during the first iteration after */
    assert_ptr_equal(g_cb_future, f[2]);
    assert_int_equal(g_cb_state, WEFT_CANCELLED);
    assert_int_equal(weft_future_error(f[1]), -EIO); /* retrieved: no report */
    for (int i = 0; i < 3; i++)
        weft_future_unref(f[i]);
    finish(loop);
}

/* S-FUT-7: callbacks run in registration order, in the same iteration. */
static void test_done_callbacks_run_in_registration_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    for (int i = 1; i <= 8; i++)
        assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(i)), 0);
    assert_int_equal(weft_future_set_int(f, 0), 0);
    step(loop);
    EXPECT_TAGS(1, 2, 3, 4, 5, 6, 7, 8);
    for (int i = 1; i < 8; i++)
        assert_int_equal(g_ev[i].iter, g_ev[0].iter);
    weft_future_unref(f);
    finish(loop);
}

/* S-FUT-7: a callback added to an already done future is queued (runs in
 * the next iteration), never called from add_done_callback itself. */
static void test_done_callback_added_to_done_future_is_queued_not_inline(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_set_int(f, 3), 0);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(1)), 0);
    assert_int_equal(g_n, 0);
    step(loop);
    EXPECT_TAGS(1);
    assert_ptr_equal(g_cb_future, f);
    assert_int_equal(g_cb_state, WEFT_DONE);
    weft_future_unref(f);
    finish(loop);
}

/* S-FUT-7, T15: callbacks are scheduled when the future completes, FIFO
 * with every other handle: a call_soon issued before set_result runs before
 * them, one issued after runs after them - whenever they were registered. */
static void test_done_callbacks_interleave_fifo_with_call_soon(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(10)), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(1), NULL), 0);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(11)), 0);
    assert_int_equal(weft_future_set_int(f, 0), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(2), NULL), 0);
    step(loop);
    EXPECT_TAGS(1, 10, 11, 2);
    weft_future_unref(f);
    finish(loop);
}

/* S-FUT-7, T15: on a done future, add_done_callback schedules at once, so
 * it interleaves with call_soon in call order. */
static void test_done_callback_on_done_future_is_queued_at_registration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_set_int(f, 0), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(1), NULL), 0);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(10)), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(2), NULL), 0);
    step(loop);
    EXPECT_TAGS(1, 10, 2);
    weft_future_unref(f);
    finish(loop);
}

/* S-FUT-8: remove_done_callback removes every registration of (fn, arg) and
 * returns how many; other registrations still run. */
static void test_remove_done_callback_counts_every_matching_registration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(1)), 0);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(2)), 0);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(1)), 0);
    assert_int_equal(weft_future_add_done_callback(f, done_nop, TAG(1)), 0);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(3)), 0);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(1)), 0);
    assert_int_equal(weft_future_remove_done_callback(f, done_rec, TAG(1)), 3);
    assert_int_equal(weft_future_remove_done_callback(f, done_rec, TAG(1)), 0);
    assert_int_equal(weft_future_remove_done_callback(f, done_rec, TAG(9)), 0);
    assert_int_equal(weft_future_remove_done_callback(f, done_nop, TAG(1)), 1);
    assert_int_equal(weft_future_set_int(f, 0), 0);
    step(loop);
    EXPECT_TAGS(2, 3);
    weft_future_unref(f);
    finish(loop);
}

/* S-FUT-8: once the future is done its callbacks are queued: removing
 * returns 0 and they still run. */
static void test_remove_done_callback_after_completion_returns_zero(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(1)), 0);
    assert_int_equal(weft_future_set_int(f, 0), 0);
    assert_int_equal(weft_future_remove_done_callback(f, done_rec, TAG(1)), 0);
    step(loop);
    EXPECT_TAGS(1);
    assert_int_equal(weft_future_remove_done_callback(f, done_rec, TAG(1)), 0);
    weft_future_unref(f);
    finish(loop);
}

/* future.h ownership: "the loop keeps f alive until then" - a callback
 * receives a valid future even when every caller reference is gone
 * (valgrind/ASan would flag the read otherwise). */
static void test_done_callback_keeps_future_alive_until_it_ran(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(1)), 0);
    assert_int_equal(weft_call_soon(loop, set_int_cb, f, NULL), 0); /* takes our ref */
    f = NULL;
    step(loop); /* set, queues the callback */
    step(loop);
    EXPECT_TAGS(1);
    assert_int_equal(g_cb_state, WEFT_DONE);
    finish(loop);
}

/* A pending future whose only references are its callbacks' is released
 * by weft_loop_close (close drops the callbacks without running them). */
static void test_close_releases_future_held_only_by_its_callbacks(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(1)), 0);
    weft_future_unref(f);
    weft_future *g = weft_future_new(loop); /* queued callback of a done future */
    assert_int_equal(weft_future_add_done_callback(g, done_rec, TAG(2)), 0);
    assert_int_equal(weft_future_set_int(g, 0), 0);
    weft_future_unref(g);
    finish(loop); /* no block may stay live */
    assert_int_equal(g_n, 0);
}

/* =============================================================================
 * Awaiting (S-FUT-10, S-FUT-11)
 * ========================================================================== */

struct awaiter {
    WEFT_FRAME(int64_t);
    weft_future *f; /* borrowed: the test keeps it */
    int tag;
};

WEFT_ASYNC(awaiter)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_future_ref(self->f));
    note(self->tag, 0);
    WEFT_RETURN(self, WEFT_RESULT(self).i + self->tag);
    WEFT_END;
}

/* S-FUT-7, S-FUT-10: many tasks awaiting one future all resume with its
 * value, in the order they started waiting, in one iteration. */
static void test_many_awaiters_of_one_future_all_resume_in_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t[6];
    for (int i = 0; i < 6; i++)
        assert_non_null(t[i] = WEFT_SPAWN(loop, awaiter, .f = f, .tag = i + 1));
    step(loop); /* every task parks on f */
    for (int i = 0; i < 6; i++)
        assert_false(weft_future_done(t[i]));
    assert_int_equal(weft_future_set_int(f, 100), 0);
    assert_int_equal(g_n, 0);
    step(loop);
    EXPECT_TAGS(1, 2, 3, 4, 5, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(g_ev[i].iter, g_ev[0].iter);
        weft_value v;
        assert_int_equal(weft_future_result(t[i], &v), 0);
        assert_int_equal(v.i, 100 + i + 1);
        weft_future_unref(t[i]);
    }
    weft_future_unref(f);
    finish(loop);
}

/* S-FUT-10: the awaiters see the error, and a cancelled future makes them
 * fail with -ECANCELED (though the tasks themselves were not cancelled). */
static void test_awaiters_of_failed_future_fail_with_its_error(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop), *c = weft_future_new(loop);
    weft_task *a = WEFT_SPAWN(loop, awaiter, .f = f, .tag = 1);
    weft_task *b = WEFT_SPAWN(loop, awaiter, .f = c, .tag = 2);
    step(loop);
    assert_int_equal(weft_future_set_error(f, -EIO), 0);
    assert_int_equal(weft_future_cancel(c), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, a), -EIO);
    assert_int_equal(weft_loop_run_until_complete(loop, b), -ECANCELED);
    assert_int_equal(g_n, 0); /* neither reached the line after the await */
    weft_future_unref(a);
    weft_future_unref(b);
    weft_future_unref(f);
    weft_future_unref(c);
    finish(loop);
}

struct await_done {
    WEFT_FRAME(int);
    weft_future *f; /* borrowed */
    int i;
};

WEFT_ASYNC(await_done)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < 3; self->i++) {
        note(self->i, 0);
        WEFT_AWAIT(self, weft_future_ref(self->f));
    }
    note(3, 0);
    WEFT_END;
}

/* S-FUT-10 (T67): awaiting a done future continues at once - no iteration
 * passes. */
static void test_await_of_done_future_does_not_suspend(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_set_int(f, 1), 0);
    assert_int_equal(run_task(loop, WEFT_SPAWN(loop, await_done, .f = f)), 0);
    EXPECT_TAGS(0, 1, 2, 3);
    for (int i = 1; i < 4; i++)
        assert_int_equal(g_ev[i].iter, g_ev[0].iter);
    weft_future_unref(f);
    finish(loop);
}

struct await_foreign {
    WEFT_FRAME(int);
    weft_future *f; /* owned: the await consumes it */
    int e;
};

WEFT_ASYNC(await_foreign)
{
    WEFT_BEGIN(self);
    WEFT_TRY_AWAIT(self, self->f, self->e);
    self->f = NULL;
    WEFT_RETURN(self, self->e);
    WEFT_END;
}

/* S-FUT-11: awaiting a future bound to another loop fails at once with
 * -EINVAL (asyncio: RuntimeError) instead of parking forever; the await
 * still consumes the reference it was given and leaves the future alone. */
static void test_awaiting_future_of_another_loop_fails(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_loop *other = new_vloop();
    weft_future *f = weft_future_new(other);
    assert_non_null(f);
    weft_task *t = WEFT_SPAWN(loop, await_foreign, .f = weft_future_ref(f));
    assert_int_equal(weft_loop_run_until_complete(loop, t), 0);
    weft_value v;
    assert_int_equal(weft_future_result(t, &v), 0);
    assert_int_equal(v.i, -EINVAL);
    weft_future_unref(t);
    assert_int_equal(weft_future_state_of(f), WEFT_PENDING);
    weft_future_unref(f); /* the last reference: the await consumed its own */
    assert_int_equal(weft_loop_destroy(other), 0);
    finish(loop);
}

struct await_self {
    WEFT_FRAME(int);
    int e;
};

WEFT_ASYNC(await_self)
{
    WEFT_BEGIN(self);
    WEFT_TRY_AWAIT(self, weft_future_ref(task), self->e);
    WEFT_RETURN(self, self->e);
    WEFT_END;
}

/* S-FUT-11: a task awaiting itself fails with WEFT_ENOTASK (asyncio:
 * RuntimeError 'Task cannot await on itself') instead of deadlocking, and
 * the extra reference it passed is consumed. */
static void test_task_awaiting_itself_fails_with_enotask(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, await_self);
    assert_int_equal(weft_loop_run_until_complete(loop, t), 0);
    weft_value v;
    assert_int_equal(weft_future_result(t, &v), 0);
    assert_int_equal(v.i, WEFT_ENOTASK);
    weft_future_unref(t);
    finish(loop);
}

/* =============================================================================
 * Pointer values and references
 * ========================================================================== */

/* future.h: a pointer value's destructor runs exactly once, when the last
 * reference drops, if nobody took the pointer. */
static void test_ptr_destructor_runs_once_when_last_reference_drops(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int x;
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_set_ptr(f, &x, count_dtor), 0);
    weft_future_ref(f);
    weft_future_ref(f);
    weft_value v;
    assert_int_equal(weft_future_result(f, &v), 0); /* reading is not taking */
    assert_ptr_equal(v.p, &x);
    weft_future_unref(f);
    weft_future_unref(f);
    assert_int_equal(g_dtor_calls, 0);
    weft_future_unref(f);
    assert_int_equal(g_dtor_calls, 1);
    assert_ptr_equal(g_dtor_last, &x);
    finish(loop);
    assert_int_equal(g_dtor_calls, 1);
}

/* future.h: take_ptr hands the pointer over; the destructor never runs. */
static void test_ptr_destructor_not_called_after_take_ptr(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int x;
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_set_ptr(f, &x, count_dtor), 0);
    assert_ptr_equal(weft_future_take_ptr(f), &x);
    weft_future_unref(f);
    finish(loop);
    assert_int_equal(g_dtor_calls, 0);
}

/* future.h: take_ptr gives NULL when there is no value to take (pending,
 * failed, cancelled) and changes nothing. */
static void test_take_ptr_without_value_returns_null(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *p = weft_future_new(loop), *e = weft_future_new(loop);
    weft_future *c = weft_future_new(loop);
    assert_int_equal(weft_future_set_error(e, -EIO), 0);
    assert_int_equal(weft_future_cancel(c), 0);
    assert_null(weft_future_take_ptr(p));
    assert_null(weft_future_take_ptr(e));
    assert_null(weft_future_take_ptr(c));
    assert_int_equal(weft_future_state_of(p), WEFT_PENDING);
    assert_int_equal(weft_future_error(e), -EIO); /* unchanged */
    weft_future_unref(p);
    weft_future_unref(e);
    weft_future_unref(c);
    finish(loop);
}

struct await_ptr {
    WEFT_FRAME(void *);
    weft_future *f; /* owned */
};

WEFT_ASYNC(await_ptr)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, self->f);
    self->f = NULL;
    WEFT_RETURN(self, WEFT_RESULT(self).p);
    WEFT_END;
}

/* future.h: a task that awaits a pointer future (consuming the reference)
 * and does not take the pointer lets the future destroy it exactly once. */
static void test_ptr_value_awaited_and_dropped_is_destroyed_once(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int x;
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, await_ptr, .f = weft_future_ref(f));
    step(loop); /* parked */
    assert_int_equal(weft_future_set_ptr(f, &x, count_dtor), 0);
    weft_future_unref(f); /* the task holds the last reference */
    assert_int_equal(weft_loop_run_until_complete(loop, t), 0);
    weft_value v;
    assert_int_equal(weft_future_result(t, &v), 0);
    assert_ptr_equal(v.p, &x);
    assert_int_equal(g_dtor_calls, 1);
    weft_future_unref(t);
    finish(loop);
    assert_int_equal(g_dtor_calls, 1);
}

/* future.h ownership rule: ref/unref balance; a constructor's reference
 * plus every ref must be dropped once; WEFT_AWAIT consumes the one it is
 * given.  Checked by the leak count here and by valgrind/ASan for early
 * frees. */
static void test_references_balance_and_await_consumes_one(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_ptr_equal(weft_future_ref(f), f);
    assert_ptr_equal(weft_future_ref(f), f);
    weft_future_unref(f);
    weft_future_unref(f);
    /* one reference left: f is fully usable */
    weft_task *t = WEFT_SPAWN(loop, awaiter, .f = f, .tag = 1); /* awaits ref(f) */
    step(loop);
    assert_int_equal(weft_call_soon(loop, set_int_cb, weft_future_ref(f), NULL), 0);
    assert_int_equal(run_task(loop, t), 0);
    weft_value v;
    assert_int_equal(weft_future_result(f, &v), 0);
    assert_int_equal(v.i, 42);
    weft_future_unref(f); /* the last one */
    finish(loop);
}

/* future.h: the loop holds its own reference to a pending task, so a task
 * whose handle is dropped at once still runs to completion. */
static void test_dropped_task_handle_still_runs_to_completion(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_future_unref(WEFT_SPAWN(loop, awaiter, .f = f, .tag = 7));
    step(loop); /* parked on f */
    assert_int_equal(weft_future_set_int(f, 0), 0);
    step(loop);
    EXPECT_TAGS(7);
    weft_future_unref(f);
    finish(loop);
}

/* Every future.h function is NULL-safe: -EINVAL, NULL, false or a no-op. */
static void test_null_arguments_are_safe_everywhere(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);

    assert_null(weft_future_new(NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_future_ref(NULL));
    weft_future_unref(NULL);
    assert_int_equal(weft_future_set_result(NULL, (weft_value){.i = 0}), -EINVAL);
    assert_int_equal(weft_future_set_int(NULL, 0), -EINVAL);
    assert_int_equal(weft_future_set_double(NULL, 0), -EINVAL);
    assert_int_equal(weft_future_set_ptr(NULL, f, count_dtor), -EINVAL);
    assert_int_equal(weft_future_set_error(NULL, -EIO), -EINVAL);
    assert_int_equal(weft_future_cancel(NULL), -EINVAL);
    assert_int_equal(weft_future_state_of(NULL), WEFT_PENDING);
    assert_false(weft_future_done(NULL));
    assert_false(weft_future_cancelled(NULL));
    weft_value v = {.i = 5};
    assert_int_equal(weft_future_result(NULL, &v), -EINVAL);
    assert_int_equal(v.i, 5);
    assert_int_equal(weft_future_error(NULL), -EINVAL);
    assert_null(weft_future_take_ptr(NULL));
    assert_null(weft_future_loop(NULL));
    assert_int_equal(weft_future_add_done_callback(NULL, done_rec, NULL), -EINVAL);
    assert_int_equal(weft_future_add_done_callback(f, NULL, NULL), -EINVAL);
    assert_int_equal(weft_future_remove_done_callback(NULL, done_rec, NULL), -EINVAL);
    assert_int_equal(weft_future_remove_done_callback(f, NULL, NULL), -EINVAL);
    assert_int_equal(weft_loop_run_until_complete(NULL, f), -EINVAL);
    assert_int_equal(weft_loop_run_until_complete(loop, NULL), -EINVAL);
    assert_int_equal(weft_loop_run_until_complete(NULL, NULL), -EINVAL);
    assert_false(weft_is_task(NULL));
    assert_int_equal(g_dtor_calls, 0);

    assert_int_equal(weft_future_state_of(f), WEFT_PENDING); /* untouched */
    weft_future_unref(f);
    finish(loop);
}

/* =============================================================================
 * run_until_complete (S-LOOP-12)
 * ========================================================================== */

/* S-LOOP-12: returns the future's error code (0 = value), and does not
 * consume the caller's reference. */
static void test_run_until_complete_returns_outcome(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *v = weft_future_new(loop), *e = weft_future_new(loop);
    weft_future *c = weft_future_new(loop);
    assert_int_equal(weft_call_later(loop, 1.0, set_int_cb, weft_future_ref(v), NULL), 0);
    assert_int_equal(weft_call_later(loop, 2.0, set_eio_cb, weft_future_ref(e), NULL), 0);
    assert_int_equal(weft_call_later(loop, 3.0, cancel_cb, weft_future_ref(c), NULL), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, v), 0);
    assert_int_equal(weft_loop_now(loop), 1 * SEC);
    weft_value out;
    assert_int_equal(weft_future_result(v, &out), 0);
    assert_int_equal(out.i, 42);
    assert_int_equal(weft_loop_run_until_complete(loop, e), -EIO);
    assert_int_equal(weft_loop_now(loop), 2 * SEC);
    assert_int_equal(weft_loop_run_until_complete(loop, c), -ECANCELED);
    assert_int_equal(weft_loop_now(loop), 3 * SEC);
    /* already done: returns at once with the same outcome */
    assert_int_equal(weft_loop_run_until_complete(loop, e), -EIO);
    weft_future_unref(v);
    weft_future_unref(e);
    weft_future_unref(c);
    finish(loop);
}

static weft_future *g_f;

static void queue_z(void *arg)
{
    (void)arg;
    note(2, 0);
    assert_int_equal(weft_call_soon(g_loop, rec, TAG(3), NULL), 0);
}

static void complete_then_queue(void *arg)
{
    (void)arg;
    note(1, 0);
    assert_int_equal(weft_future_set_int(g_f, 0), 0);
    assert_int_equal(weft_call_soon(g_loop, queue_z, NULL, NULL), 0);
}

/* S-LOOP-12: the stop is itself a queued callback, so exactly one more
 * iteration runs after the future completes: handles queued up to the
 * end of the completing iteration run; those queued during that last
 * iteration wait for the next run. */
static void test_run_until_complete_runs_one_more_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_f = weft_future_new(loop);
    assert_int_equal(weft_call_soon(loop, complete_then_queue, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, g_f), 0);
    EXPECT_TAGS(1, 2);
    assert_int_equal(g_ev[1].iter, g_ev[0].iter + 1);
    step(loop);
    EXPECT_TAGS(1, 2, 3);
    weft_future_unref(g_f);
    finish(loop);
}

/* S-LOOP-12: a loop stopped before the future completed returns
 * WEFT_ESTATE (asyncio: RuntimeError 'Event loop stopped before Future
 * completed.'); the future is untouched and can be run to completion
 * later, without a stale stop request. */
static void test_run_until_complete_stopped_early_returns_estate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_call_soon(loop, stop_cb, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, f), WEFT_ESTATE);
    assert_int_equal(weft_future_state_of(f), WEFT_PENDING);
    /* the first run's stop callback was removed: completing f now does not
     * stop a later run_forever early */
    assert_int_equal(weft_future_set_int(f, 1), 0);
    assert_int_equal(weft_call_later(loop, 5.0, stop_cb, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    assert_int_equal(weft_loop_now(loop), 5 * SEC);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_future_unref(f);
    finish(loop);
}

static int g_rc = 12345;

static void nested_run(void *f)
{
    g_rc = weft_loop_run_until_complete(g_loop, f);
}

/* S-LOOP-12: refused on a closed loop (WEFT_ECLOSED), from inside a
 * running loop (-EBUSY), and for a future of another loop (-EINVAL). */
static void test_run_until_complete_rejects_closed_running_and_foreign(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_loop *other = new_vloop();
    weft_future *f = weft_future_new(loop), *g = weft_future_new(other);
    assert_int_equal(weft_loop_run_until_complete(loop, g), -EINVAL);
    assert_int_equal(weft_call_soon(loop, nested_run, f, NULL), 0);
    step(loop);
    assert_int_equal(g_rc, -EBUSY);
    assert_int_equal(weft_future_state_of(f), WEFT_PENDING);
    weft_future_unref(g);
    assert_int_equal(weft_loop_destroy(other), 0);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, f), WEFT_ECLOSED);
    weft_future_unref(f);
    finish(loop);
}

/* S-FUT-12: a future works on a closed loop (weft_future_new and the
 * setters), but callbacks can no longer be added (WEFT_ECLOSED). */
static void test_future_on_closed_loop_completes_but_refuses_callbacks(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_loop_close(loop), 0);
    weft_future *f = weft_future_new(loop);
    assert_non_null(f);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(1)), WEFT_ECLOSED);
    assert_int_equal(weft_future_set_int(f, 1), 0);
    assert_int_equal(weft_future_error(f), 0);
    weft_future_unref(f);
    finish(loop);
    assert_int_equal(g_n, 0);
}

/* =============================================================================
 * Allocation
 * ========================================================================== */

struct await_new {
    WEFT_FRAME(int);
    int e;
};

WEFT_ASYNC(await_new)
{
    WEFT_BEGIN(self);
    alloc_fail_all(true);
    WEFT_TRY_AWAIT(self, weft_future_new(weft_task_loop(task)), self->e);
    alloc_fail_all(false);
    WEFT_RETURN(self, self->e);
    WEFT_END;
}

/* future.h: weft_future_new fails on its allocation with NULL and
 * weft_last_error() == -ENOMEM; the next call succeeds.  Awaiting that
 * NULL fails with the same error. */
static void test_future_new_enomem_returns_null_with_last_error(void **state)
{
    (void)state;
    weft_loop *loop = vloop(); /* fresh: the future free list is empty */
    alloc_fail_at(alloc_calls() + 1);
    assert_null(weft_future_new(loop));
    assert_int_equal(weft_last_error(), -ENOMEM);
    alloc_fail_at(0);
    weft_future *f = weft_future_new(loop);
    assert_non_null(f);
    weft_future_unref(f);

    weft_loop *l2 = new_vloop(); /* again fresh, for the await */
    g_loop = l2;
    weft_task *t = WEFT_SPAWN(l2, await_new);
    assert_int_equal(weft_loop_run_until_complete(l2, t), 0);
    weft_value v;
    assert_int_equal(weft_future_result(t, &v), 0);
    assert_int_equal(v.i, -ENOMEM);
    weft_future_unref(t);
    assert_int_equal(weft_loop_destroy(l2), 0);
    g_loop = loop;
    finish(loop);
}

/* common.h error rule: add_done_callback failing with -ENOMEM (at any of
 * its allocations) changes nothing and the callback never runs. */
static void test_add_done_callback_enomem_never_calls_callback(void **state)
{
    (void)state;
    weft_loop *loop = vloop(); /* fresh: the callback node pool is empty */
    weft_future *f = weft_future_new(loop);
    int k, rc;
    for (k = 1;; k++) {
        assert_true(k < 16);
        alloc_fail_at(alloc_calls() + k);
        rc = weft_future_add_done_callback(f, done_rec, TAG(k));
        alloc_fail_at(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(weft_future_remove_done_callback(f, done_rec, TAG(k)), 0);
    }
    assert_true(k > 1); /* at least one allocation was failed */
    assert_int_equal(weft_future_set_int(f, 0), 0);
    step(loop);
    EXPECT_TAGS(k); /* only the registration that succeeded */
    weft_future_unref(f);
    finish(loop);
}

struct churn {
    WEFT_FRAME(int);
    int i;
    long warm, extra;
    int64_t sum;
    weft_future *f;
};

static int g_done_count;

static void count_done(weft_future *f, void *arg)
{
    (void)f, (void)arg;
    g_done_count++;
}

WEFT_ASYNC(churn)
{
    weft_loop *L = weft_task_loop(task);
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < 10000; self->i++) {
        if (self->i == 100)
            self->warm = alloc_calls();
        self->f = weft_future_new(L);
        if (!self->f || weft_future_add_done_callback(self->f, count_done, NULL) != 0 ||
            weft_call_soon(L, set_int_cb, weft_future_ref(self->f), NULL) != 0)
            WEFT_THROW(self, -ENOMEM);
        WEFT_AWAIT(self, self->f); /* consumes the reference */
        self->sum += WEFT_RESULT(self).i;
    }
    self->extra = alloc_calls() - self->warm;
    WEFT_RETURN(self, (int)self->extra);
    WEFT_END;
}

/* future.c: released futures go to a per-loop free list, so creating,
 * awaiting and releasing futures (with a done callback each) allocates
 * nothing after warm-up. */
static void test_future_churn_allocates_nothing_in_steady_state(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_done_count = 0;
    weft_task *t = WEFT_SPAWN(loop, churn);
    assert_int_equal(weft_loop_run_until_complete(loop, t), 0);
    weft_value v;
    assert_int_equal(weft_future_result(t, &v), 0);
    if (WT_POOLED)
        assert_int_equal(v.i, 0); /* allocations after warm-up */
    weft_future_unref(t);
    step(loop); /* the last done callback */
    assert_int_equal(g_done_count, 10000);
    finish(loop);
}

/* =============================================================================
 * Registration
 * ========================================================================== */


/* =============================================================================
 * Regressions (issue 7)
 * ========================================================================== */

/* Defect: closing the loop dropped the done callbacks of pending futures,
 * and completing such a future afterwards returned 0 with nothing run.
 * Now the completion says WEFT_ECLOSED (the state still changes, as in
 * asyncio S-FUT-12) and the callback never runs; nothing leaks. */
static void test_completing_after_close_with_callbacks_is_eclosed(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop), *g = weft_future_new(loop);
    weft_future *h = weft_future_new(loop), *k = weft_future_new(loop);
    assert_int_equal(weft_future_add_done_callback(f, done_rec, TAG(1)), 0);
    assert_int_equal(weft_future_add_done_callback(g, done_rec, TAG(2)), 0);
    assert_int_equal(weft_future_add_done_callback(h, done_rec, TAG(3)), 0);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(weft_future_set_int(f, 7), WEFT_ECLOSED);
    assert_true(weft_future_done(f));
    assert_int_equal(weft_future_set_error(g, -EIO), WEFT_ECLOSED);
    assert_int_equal(weft_future_error(g), -EIO);
    assert_int_equal(weft_future_cancel(h), WEFT_ECLOSED);
    assert_true(weft_future_cancelled(h));
    assert_int_equal(weft_future_set_int(k, 1), 0); /* no callbacks: nothing lost */
    assert_int_equal(g_n, 0);                      /* no callback ever ran */
    weft_future_unref(f);
    weft_future_unref(g);
    weft_future_unref(h);
    weft_future_unref(k);
    finish(loop);
}

/* In assertion and sanitizer builds (WEFT__POISON) released memory is not
 * handed out again at once: a released future is quarantined, so the next
 * new future is somewhere else, and a use after release touches memory
 * that ASan and valgrind watch rather than a live future of someone else.
 * Release builds recycle (the churn test above pins that instead). */
static void test_poison_builds_do_not_recycle_released_futures(void **state)
{
    (void)state;
#if WEFT__POISON
    weft_loop *loop = vloop();
    wt_warm(loop);
    weft_future *seen[16];
    for (int i = 0; i < 16; i++) {
        seen[i] = weft_future_new(loop);
        assert_non_null(seen[i]);
        weft_future_unref(seen[i]);
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(seen[i], seen[j]); /* never the same block twice in a row */
    }
    finish(loop);
#else
    skip();
#endif
}

/* Defect: a double unref (or an await of a released future) silently
 * completed someone else's future.  Now it is reported through the hook
 * (WEFT_REPORT_MISUSE) and changes nothing. */
static void test_double_unref_is_reported(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_future_unref(f);
    weft_future_unref(f);
    assert_int_equal(g_hook.count, 1);
    assert_int_equal(g_hook.err, -EINVAL);
    assert_non_null(strstr(g_hook.msg, "no reference left"));
    weft_future *g = weft_future_new(loop); /* the loop goes on */
    assert_int_equal(weft_future_set_int(g, 1), 0);
    weft_future_unref(g);
    g_hook.expect = 1;
    finish(loop);
}

struct await_it {
    WEFT_FRAME(int);
    weft_future *f;
};

WEFT_ASYNC(await_it)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, self->f);
    WEFT_END;
}

static void test_await_of_released_future_is_reported_and_fails(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_future_unref(f); /* released: the task below awaits a dangling pointer */
    weft_task *t = WEFT_SPAWN(loop, await_it, .f = f);
    assert_int_equal(weft_loop_run_until_complete(loop, t), -EINVAL);
    assert_int_equal(g_hook.count, 1);
    assert_non_null(strstr(g_hook.msg, "already released"));
    weft_future_unref(t);
    g_hook.expect = 1;
    finish(loop);
}

/* Completion by users is for plain futures: a lock waiter refuses it. */
static void test_set_result_refused_for_a_waiter(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    assert_int_equal(weft_lock_init(&l, loop), 0);
    weft_waiter w1 = {0}, w2 = {0};
    weft_future *held = weft_lock_acquire(&l, &w1), *queued = weft_lock_acquire(&l, &w2);
    assert_int_equal(weft_future_set_int(queued, 1), WEFT_ESTATE);
    assert_false(weft_future_done(queued));
    assert_int_equal(weft_lock_waiters(&l), 1);
    assert_int_equal(weft_lock_release(&l), 0); /* the real hand-off */
    assert_true(weft_future_done(queued));
    weft_future_unref(held);
    weft_future_unref(queued);
    assert_int_equal(weft_lock_release(&l), 0);
    finish(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* states */
        T(test_new_future_is_pending_and_bound_to_its_loop),
        T(test_set_result_finishes_future_with_value),
        T(test_set_error_finishes_future_with_error),
        T(test_cancel_makes_pending_future_cancelled),
        T(test_second_set_returns_estate_and_keeps_first_outcome),
        T(test_set_after_cancel_returns_estate),
        T(test_cancel_after_done_returns_estate),
        T(test_set_error_rejects_ecanceled_and_non_negative_codes),
        T(test_result_in_each_state),
        T(test_setters_refuse_a_task),
        T(test_unretrieved_error_is_reported_once_when_freed),
        /* done callbacks */
        T(test_done_callbacks_are_never_called_inline),
        T(test_done_callbacks_run_in_registration_order),
        T(test_done_callback_added_to_done_future_is_queued_not_inline),
        T(test_done_callbacks_interleave_fifo_with_call_soon),
        T(test_done_callback_on_done_future_is_queued_at_registration),
        T(test_remove_done_callback_counts_every_matching_registration),
        T(test_remove_done_callback_after_completion_returns_zero),
        T(test_done_callback_keeps_future_alive_until_it_ran),
        T(test_close_releases_future_held_only_by_its_callbacks),
        /* awaiting */
        T(test_many_awaiters_of_one_future_all_resume_in_order),
        T(test_awaiters_of_failed_future_fail_with_its_error),
        T(test_await_of_done_future_does_not_suspend),
        T(test_awaiting_future_of_another_loop_fails),
        T(test_task_awaiting_itself_fails_with_enotask),
        /* pointer values and references */
        T(test_ptr_destructor_runs_once_when_last_reference_drops),
        T(test_ptr_destructor_not_called_after_take_ptr),
        T(test_take_ptr_without_value_returns_null),
        T(test_ptr_value_awaited_and_dropped_is_destroyed_once),
        T(test_references_balance_and_await_consumes_one),
        T(test_dropped_task_handle_still_runs_to_completion),
        T(test_null_arguments_are_safe_everywhere),
        /* run_until_complete */
        T(test_run_until_complete_returns_outcome),
        T(test_run_until_complete_runs_one_more_iteration),
        T(test_run_until_complete_stopped_early_returns_estate),
        T(test_run_until_complete_rejects_closed_running_and_foreign),
        T(test_future_on_closed_loop_completes_but_refuses_callbacks),
        /* allocation */
        T(test_future_new_enomem_returns_null_with_last_error),
        T(test_add_done_callback_enomem_never_calls_callback),
        T(test_future_churn_allocates_nothing_in_steady_state),
        /* regressions */
        T(test_completing_after_close_with_callbacks_is_eclosed),
        T(test_double_unref_is_reported),
        T(test_poison_builds_do_not_recycle_released_futures),
        T(test_await_of_released_future_is_reported_and_fails),
        T(test_set_result_refused_for_a_waiter),
    };
    return RUN_TESTS(tests);
}
