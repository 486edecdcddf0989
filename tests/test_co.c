/* tests/test_co.c - coroutine mechanics (include/weft/co.h), one guarantee
 * per test.
 *
 * Each test is named after the guarantee it pins and cites the statement it
 * mirrors: S-FUT-n / S-TASK-n (shared/reference/asyncio-semantics.md) or a
 * pitfall "P4.6-n" (shared/reference/coroutines.md, section 4.6).
 *
 * This file is compiled twice: as test_co (switch backend, the default) and
 * as test_co_labels (-DWEFT_CO_LABELS=1, labels-as-values).  Both must pass;
 * the only test that differs is the suspension inside a user `switch`.
 *
 * Bodies never call cmocka asserts (a longjmp out of a running loop would
 * leave it running): they record into globals, the test asserts afterwards.
 * Every loop uses the virtual clock and a counting allocator; finish()
 * destroys the loop and asserts that every block came back.
 */
#include "weft_test.h"

/* Callbacks the loop has run so far. */
static uint64_t callbacks(weft_loop *loop)
{
    return stats(loop).callbacks;
}

/* ---- shared recorders ------------------------------------------------------------------ */

static int g_body;     /* body statements reached */
static int g_after;    /* statements after the interesting point */
static int g_fin;      /* FINALLY entries */
static int g_fin_done; /* FINALLY sections that ran to their end */
static int g_fin_err;  /* self->co.err seen in FINALLY */
static int g_line;     /* a __LINE__ captured in a body */
static int g_line2;
static int g_err_line; /* co.err_line seen somewhere */
static int g_caught;   /* an error caught by a TRY form */
static int g_always = 1;
static int64_t g_t_ms; /* loop time seen by a body, in ms */

static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 120});
    g_body = g_after = g_fin = g_fin_done = g_fin_err = 0;
    g_line = g_line2 = g_err_line = g_caught = 0;
    g_t_ms = -1;
    return 0;
}

/* =============================================================================
 * Basic mechanics: begin / await / yield / return / throw / end
 * ========================================================================== */

struct returns {
    WEFT_FRAME(int);
    int x;
};

WEFT_ASYNC(returns)
{
    WEFT_BEGIN(self);
    g_body++;
    WEFT_RETURN(self, self->x * 2);
    g_after++; /* never reached */
    WEFT_END;
}

/* WEFT_RETURN ends the frame with its value; nothing after it runs. */
static void test_return_sets_task_value_and_stops_body(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, returns, .x = 21);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 42);
    assert_int_equal(g_body, 1);
    assert_int_equal(g_after, 0);
    weft_future_unref(t);
    finish(loop);
}

struct falls_off {
    WEFT_FRAME(int);
};

WEFT_ASYNC(falls_off)
{
    WEFT_BEGIN(self);
    g_body++;
    WEFT_END;
}

/* Reaching WEFT_END succeeds with the zeroed result (frames are zeroed). */
static void test_falling_off_end_succeeds_with_zero_result(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, falls_off);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 0);
    assert_int_equal(g_body, 1);
    weft_future_unref(t);
    finish(loop);
}

struct awaits_value {
    WEFT_FRAME(int64_t);
    weft_future *f;
};

WEFT_ASYNC(awaits_value)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_future_ref(self->f));
    WEFT_RETURN(self, WEFT_RESULT(self).i + 1);
    WEFT_END;
}

/* S-FUT-10: await parks on a pending future and resumes with its value. */
static void test_await_resumes_with_future_value(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, awaits_value, .f = f);
    step(loop); /* parks */
    assert_false(weft_future_done(t));
    assert_int_equal(weft_future_set_int(f, 41), 0);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 42);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

/* S-FUT-5/10: awaiting a failed future unwinds with its error code. */
static void test_await_failed_future_unwinds_with_its_error(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, awaits_value, .f = f);
    step(loop);
    assert_int_equal(weft_future_set_error(f, -EPIPE), 0);
    assert_int_equal(run(loop, t), -EPIPE);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

struct try_awaits {
    WEFT_FRAME(int);
    weft_future *f;
    int e;
};

WEFT_ASYNC(try_awaits)
{
    WEFT_BEGIN(self);
    WEFT_TRY_AWAIT(self, weft_future_ref(self->f), self->e);
    g_caught = self->e;
    g_after++;
    WEFT_RETURN(self, 5);
    WEFT_END;
}

/* WEFT_TRY_AWAIT stores a plain error and the body continues. */
static void test_try_await_stores_error_and_continues(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, try_awaits, .f = f);
    step(loop);
    assert_int_equal(weft_future_set_error(f, -EIO), 0);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 5);
    assert_int_equal(g_caught, -EIO);
    assert_int_equal(g_after, 1);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

/* A TRY_AWAIT whose future succeeds stores 0 in var. */
static void test_try_await_stores_zero_on_success(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_set_int(f, 1), 0);
    g_caught = 99;
    weft_task *t = WEFT_SPAWN(loop, try_awaits, .f = f, .e = 77);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(g_caught, 0);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

struct yielder {
    WEFT_FRAME(int);
    int tag;
    int i;
};

WEFT_ASYNC(yielder)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < 3; self->i++) {
        log_tag(self->tag + self->i);
        WEFT_YIELD(self);
    }
    WEFT_END;
}

/* S-TASK-3 (bare yield = call_soon(step)): WEFT_YIELD requeues the task at
 * the tail, so two yielding tasks alternate. */
static void test_yield_requeues_at_tail_so_tasks_alternate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_nlog = 0;
    weft_task *a = WEFT_SPAWN(loop, yielder, .tag = 10);
    weft_task *b = WEFT_SPAWN(loop, yielder, .tag = 20);
    assert_int_equal(run(loop, b), 0);
    assert_true(weft_future_done(a));
    const int want[] = {10, 20, 11, 21, 12, 22};
    assert_int_equal(g_nlog, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(g_log[i], want[i]);
    weft_future_unref(a);
    weft_future_unref(b);
    finish(loop);
}

struct throws {
    WEFT_FRAME(int);
    int err;
};

WEFT_ASYNC(throws)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    AT_LINE(g_line, WEFT_THROW(self, self->err));
    g_after++;
    WEFT_END;
}

/* WEFT_THROW fails the frame (and the task) with the code and its line. */
static void test_throw_fails_task_with_code_and_line(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, throws, .err = -ENOSPC);
    assert_int_equal(run(loop, t), -ENOSPC);
    assert_int_equal(weft_future_error(t), -ENOSPC);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_hook.count, 0); /* observed by run_until_complete */
    weft_future_unref(t);
    finish(loop);
}

struct dbl {
    WEFT_FRAME(double);
};

WEFT_ASYNC(dbl)
{
    WEFT_BEGIN(self);
    WEFT_RETURN(self, 2.5);
    WEFT_END;
}

struct ptr {
    WEFT_FRAME(const char *);
};

static const char g_text[] = "weft";

WEFT_ASYNC(ptr)
{
    WEFT_BEGIN(self);
    WEFT_RETURN(self, g_text);
    WEFT_END;
}

/* WEFT_VALUE_OF: a floating result lands in .d, a pointer in .p. */
static void test_double_and_pointer_results_convert_to_value(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *d = WEFT_SPAWN(loop, dbl);
    weft_task *p = WEFT_SPAWN(loop, ptr);
    assert_int_equal(run(loop, p), 0);
    assert_int_equal(run(loop, d), 0);
    weft_value v;
    assert_int_equal(weft_future_result(d, &v), 0);
    assert_true(v.d == 2.5);
    assert_int_equal(weft_future_result(p, &v), 0);
    assert_ptr_equal(v.p, g_text);
    weft_future_unref(d);
    weft_future_unref(p);
    finish(loop);
}

struct user_loops {
    WEFT_FRAME(int);
    int i, n;
};

WEFT_ASYNC(user_loops)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < 10; self->i++) {
        WEFT_YIELD(self);
        if (self->i % 2)
            continue;
        if (self->i == 6)
            break;
        self->n++;
    }
    WEFT_RETURN(self, self->n * 100 + self->i);
    WEFT_END;
}

/* P4.6-3: `break` and `continue` inside the user's own loops keep working
 * across suspensions. */
static void test_break_and_continue_in_user_loops_work(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, user_loops);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 3 * 100 + 6); /* i = 0, 2, 4 counted; break at 6 */
    assert_int_equal(g_hook.count, 0);
    weft_future_unref(t);
    finish(loop);
}

/* =============================================================================
 * FINALLY runs exactly once on every path (P4.6-6)
 * ========================================================================== */

enum path { P_END, P_RETURN_NESTED, P_THROW, P_CHILD_ERR, P_PARK };

struct fin {
    WEFT_FRAME(int);
    int path;
    weft_future *f; /* P_PARK: never completed */
    int i, j;
    struct throws child;
};

WEFT_ASYNC(fin)
{
    WEFT_BEGIN(self);
    g_body++;
    if (self->path == P_END) {
        WEFT_YIELD(self);
    } else if (self->path == P_RETURN_NESTED) {
        for (self->i = 0; self->i < 3; self->i++)
            for (self->j = 0; self->j < 3; self->j++) {
                WEFT_YIELD(self);
                if (self->i == 1 && self->j == 2)
                    WEFT_RETURN(self, 12);
            }
    } else if (self->path == P_THROW) {
        WEFT_YIELD(self);
        WEFT_THROW(self, -EIO);
    } else if (self->path == P_CHILD_ERR) {
        WEFT_CALL(self, throws, &self->child, .err = -EPIPE);
    } else {
        WEFT_AWAIT(self, weft_future_ref(self->f));
    }
    g_after++;
    WEFT_FINALLY;
    g_fin++;
    g_fin_err = self->co.err;
    WEFT_END;
}

/* Same bodies without a FINALLY section. */
struct nofin {
    WEFT_FRAME(int);
    int path;
    weft_future *f;
    int i, j;
    struct throws child;
};

WEFT_ASYNC(nofin)
{
    WEFT_BEGIN(self);
    g_body++;
    if (self->path == P_END) {
        WEFT_YIELD(self);
    } else if (self->path == P_RETURN_NESTED) {
        for (self->i = 0; self->i < 3; self->i++)
            for (self->j = 0; self->j < 3; self->j++) {
                WEFT_YIELD(self);
                if (self->i == 1 && self->j == 2)
                    WEFT_RETURN(self, 12);
            }
    } else if (self->path == P_THROW) {
        WEFT_YIELD(self);
        WEFT_THROW(self, -EIO);
    } else if (self->path == P_CHILD_ERR) {
        WEFT_CALL(self, throws, &self->child, .err = -EPIPE);
    } else {
        WEFT_AWAIT(self, weft_future_ref(self->f));
    }
    g_after++;
    WEFT_END;
}

/* P4.6-6: normal end -> FINALLY once, err 0, value kept. */
static void test_finally_runs_once_on_normal_end(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, fin, .path = P_END);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(g_after, 1);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_err, 0);
    weft_future_unref(t);
    finish(loop);
}

/* P4.6-6: WEFT_RETURN from inside two nested loops -> FINALLY once, the
 * returned value survives it. */
static void test_finally_runs_once_on_return_from_nested_loops(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, fin, .path = P_RETURN_NESTED);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 12);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_err, 0);
    weft_future_unref(t);
    finish(loop);
}

/* P4.6-6: WEFT_THROW -> FINALLY once with co.err set, then the task fails. */
static void test_finally_runs_once_on_throw(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, fin, .path = P_THROW);
    assert_int_equal(run(loop, t), -EIO);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_err, -EIO);
    weft_future_unref(t);
    finish(loop);
}

/* P4.6-6: an error propagated from an inline child -> FINALLY once. */
static void test_finally_runs_once_on_propagated_child_error(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, fin, .path = P_CHILD_ERR);
    assert_int_equal(run(loop, t), -EPIPE);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_err, -EPIPE);
    weft_future_unref(t);
    finish(loop);
}

/* P4.6-6, S-TASK-5: cancelled while parked -> FINALLY once with
 * -ECANCELED, the task ends CANCELLED. */
static void test_finally_runs_once_on_cancel_while_parked(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *never = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, fin, .path = P_PARK, .f = never);
    step(loop);
    assert_int_equal(g_body, 1);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_true(weft_future_cancelled(t));
    assert_int_equal(g_after, 0);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_err, -ECANCELED);
    weft_future_unref(never);
    weft_future_unref(t);
    finish(loop);
}

/* P4.6-6, S-TASK-11: cancelled before the first step -> the body never
 * runs but FINALLY does, once, with -ECANCELED.  Deliberate difference from
 * asyncio, where the coroutine (try/finally included) never executes. */
static void test_finally_runs_once_on_cancel_before_first_step(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, fin, .path = P_END);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_true(weft_future_cancelled(t));
    assert_int_equal(g_body, 0);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_err, -ECANCELED);
    weft_future_unref(t);
    finish(loop);
}

/* P4.6-6 (FINALLY absent): every path still completes the task correctly. */
static void test_without_finally_every_path_completes_task(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *never = weft_future_new(loop);
    weft_task *t[6];
    t[0] = WEFT_SPAWN(loop, nofin, .path = P_END);
    t[1] = WEFT_SPAWN(loop, nofin, .path = P_RETURN_NESTED);
    t[2] = WEFT_SPAWN(loop, nofin, .path = P_THROW);
    t[3] = WEFT_SPAWN(loop, nofin, .path = P_CHILD_ERR);
    t[4] = WEFT_SPAWN(loop, nofin, .path = P_PARK, .f = never);
    t[5] = WEFT_SPAWN(loop, nofin, .path = P_END);
    assert_int_equal(weft_task_cancel(t[5]), 0); /* before its first step */
    step(loop);
    assert_int_equal(weft_task_cancel(t[4]), 0); /* parked */
    for (int i = 0; i < 6; i++)
        (void)run(loop, t[i]);
    assert_int_equal(weft_future_error(t[0]), 0);
    assert_int_equal(result_i(t[1]), 12);
    assert_int_equal(weft_future_error(t[2]), -EIO);
    assert_int_equal(weft_future_error(t[3]), -EPIPE);
    assert_true(weft_future_cancelled(t[4]));
    assert_true(weft_future_cancelled(t[5]));
    assert_int_equal(g_body, 5); /* t[5] never ran its body */
    assert_int_equal(g_after, 1);
    assert_int_equal(g_hook.count, 0);
    for (int i = 0; i < 6; i++)
        weft_future_unref(t[i]);
    weft_future_unref(never);
    finish(loop);
}

/* ---- awaits and errors inside FINALLY (P4.6-7) --------------------------------- */

struct fin_awaits {
    WEFT_FRAME(int);
    weft_future *f; /* parked on it until cancelled */
};

WEFT_ASYNC(fin_awaits)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_future_ref(self->f));
    WEFT_FINALLY;
    g_fin++;
    g_fin_err = self->co.err;
    WEFT_SLEEP(self, 1.0);
    g_t_ms = weft_loop_now(weft_task_loop(task)) / 1000000;
    g_fin_done++;
    WEFT_END;
}

/* P4.6-7: an await inside FINALLY suspends and resumes correctly (the
 * cancellation that started the unwinding is masked there). */
static void test_await_inside_finally_resumes(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *never = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, fin_awaits, .f = never);
    step(loop);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_err, -ECANCELED);
    assert_int_equal(g_fin_done, 1);
    assert_int_equal(g_t_ms, 1000);
    weft_future_unref(never);
    weft_future_unref(t);
    finish(loop);
}

/* P4.6-7: a second cancel while FINALLY is suspended does not restart the
 * FINALLY section. */
static void test_second_cancel_does_not_restart_finally(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *never = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, fin_awaits, .f = never);
    step(loop);
    assert_int_equal(weft_task_cancel(t), 0);
    step(loop); /* unwinds into FINALLY, parks on the sleep */
    assert_int_equal(g_fin, 1);
    assert_false(weft_future_done(t));
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(weft_task_cancelling(t), 2);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_fin, 1);
    weft_future_unref(never);
    weft_future_unref(t);
    finish(loop);
}

struct fin_throws {
    WEFT_FRAME(int);
};

WEFT_ASYNC(fin_throws)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    AT_LINE(g_line, WEFT_THROW(self, -EIO));
    WEFT_FINALLY;
    g_fin++;
    WEFT_THROW(self, -EPIPE);
    g_after++; /* a throw in FINALLY still leaves it */
    WEFT_END;
}

struct catches_fin_throws {
    WEFT_FRAME(int);
    int e;
    struct fin_throws c;
};

WEFT_ASYNC(catches_fin_throws)
{
    WEFT_BEGIN(self);
    WEFT_TRY_CALL(self, self->e, fin_throws, &self->c);
    g_caught = self->e;
    g_err_line = self->c.co.err_line;
    WEFT_END;
}

/* P4.6-7: an error raised in FINALLY while unwinding does not replace the
 * first error (co.h: "the first error wins"), nor its origin line. */
static void test_error_in_finally_does_not_replace_first_error(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, catches_fin_throws);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_caught, -EIO);
    assert_int_equal(g_err_line, g_line);
    weft_future_unref(t);
    finish(loop);
}

struct fin_throws_clean {
    WEFT_FRAME(int);
};

WEFT_ASYNC(fin_throws_clean)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    WEFT_RETURN(self, 3);
    WEFT_FINALLY;
    g_fin++;
    WEFT_THROW(self, -EPIPE);
    WEFT_END;
}

/* co.h rule: with no earlier error, an error raised in FINALLY becomes the
 * frame's error (the value is discarded). */
static void test_error_in_finally_after_success_fails_frame(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, fin_throws_clean);
    assert_int_equal(run(loop, t), -EPIPE);
    assert_int_equal(g_fin, 1);
    weft_future_unref(t);
    finish(loop);
}

/* ---- cancellation at frame entry, masking in FINALLY ------------------------- */

struct entered_child {
    WEFT_FRAME(int);
};

WEFT_ASYNC(entered_child)
{
    WEFT_BEGIN(self);
    g_body++;
    WEFT_YIELD(self);
    WEFT_FINALLY;
    g_fin++;
    g_fin_err = self->co.err;
    WEFT_END;
}

struct cancels_then_calls {
    WEFT_FRAME(int);
    int e;
    struct entered_child c;
};

WEFT_ASYNC(cancels_then_calls)
{
    WEFT_BEGIN(self);
    weft_task_cancel(task);
    WEFT_TRY_CALL(self, self->e, entered_child, &self->c);
    g_after++; /* not reached: the TRY form does not catch own cancellation */
    WEFT_END;
}

/* co.h (sticky cancellation): a frame entered with WEFT_CALL while its task
 * is cancelled skips its body but runs its FINALLY (with -ECANCELED); the
 * caller's TRY_CALL does not catch the task's own cancellation. */
static void test_call_while_cancelled_skips_child_body_runs_its_finally(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, cancels_then_calls);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_body, 0);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_err, -ECANCELED);
    assert_int_equal(g_after, 0);
    weft_future_unref(t);
    finish(loop);
}

struct cleanup_child {
    WEFT_FRAME(int);
};

WEFT_ASYNC(cleanup_child)
{
    WEFT_BEGIN(self);
    g_body++;
    WEFT_SLEEP(self, 1.0);
    WEFT_YIELD(self);
    g_t_ms = weft_loop_now(weft_task_loop(task)) / 1000000;
    WEFT_RETURN(self, 4);
    WEFT_END;
}

struct finally_calls {
    WEFT_FRAME(int);
    weft_future *f;
    struct cleanup_child c;
};

WEFT_ASYNC(finally_calls)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_future_ref(self->f));
    WEFT_FINALLY;
    WEFT_CALL(self, cleanup_child, &self->c);
    g_fin_done = self->c.result;
    WEFT_END;
}

/* co.h "Inside WEFT_FINALLY, and in every frame it calls, cancellation is
 * masked": a child called from FINALLY of a cancelled task runs its body
 * and its awaits complete. */
static void test_frames_called_from_finally_are_masked(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *never = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, finally_calls, .f = never);
    step(loop);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_body, 1);
    assert_int_equal(g_t_ms, 1000);
    assert_int_equal(g_fin_done, 4);
    weft_future_unref(never);
    weft_future_unref(t);
    finish(loop);
}

struct cancelled_awaits_done {
    WEFT_FRAME(int);
    weft_future *done, *pending;
    int e;
};

WEFT_ASYNC(cancelled_awaits_done)
{
    WEFT_BEGIN(self);
    weft_task_cancel(task);
    WEFT_AWAIT(self, weft_future_ref(self->done));
    g_caught = (int)WEFT_RESULT(self).i;
    WEFT_TRY_AWAIT(self, weft_future_ref(self->pending), self->e);
    g_after++;
    WEFT_FINALLY;
    g_fin_err = self->co.err;
    WEFT_END;
}

/* co.h "(Awaiting a future that is already done still returns its value:
 * completion wins.)": a cancelled task awaiting a done future gets its
 * value; the next await that would suspend fails with -ECANCELED. */
static void test_cancelled_task_awaiting_done_future_gets_value(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *done = weft_future_new(loop);
    weft_future *pending = weft_future_new(loop);
    assert_int_equal(weft_future_set_int(done, 31), 0);
    weft_task *t = WEFT_SPAWN(loop, cancelled_awaits_done, .done = done, .pending = pending);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_caught, 31);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_fin_err, -ECANCELED);
    assert_true(weft_future_cancelled(pending)); /* cancelled as it was awaited */
    weft_future_unref(done);
    weft_future_unref(pending);
    weft_future_unref(t);
    finish(loop);
}

struct throws_positive {
    WEFT_FRAME(int);
};

WEFT_ASYNC(throws_positive)
{
    WEFT_BEGIN(self);
    AT_LINE(g_line, WEFT_THROW(self, EIO)); /* forgot the minus */
    WEFT_END;
}

/* co.h WEFT_THROW: "A code >= 0 is misuse: the frame fails with WEFT_ECORO
 * and the error hook says where." */
static void test_throw_of_nonnegative_code_is_misuse(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, throws_positive);
    assert_int_equal(run(loop, t), WEFT_ECORO);
    assert_int_equal(g_hook.count, 1);
    assert_int_equal(g_hook.err, WEFT_ECORO);
    char where[512];
    snprintf(where, sizeof where, "%s:%d", __FILE__, g_line);
    assert_non_null(strstr(g_hook.msg, where));
    weft_future_unref(t);
    finish(loop);
}

/* =============================================================================
 * Nesting: results and errors through inline children (P4.6-10, P4.6-11)
 * ========================================================================== */

struct leaf {
    WEFT_FRAME(int);
    int x;
};

WEFT_ASYNC(leaf)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    WEFT_RETURN(self, self->x + 1);
    WEFT_END;
}

struct mid {
    WEFT_FRAME(int);
    int x;
    struct leaf l;
};

WEFT_ASYNC(mid)
{
    WEFT_BEGIN(self);
    WEFT_CALL(self, leaf, &self->l, .x = self->x * 2);
    WEFT_YIELD(self);
    WEFT_RETURN(self, self->l.result * 10);
    WEFT_END;
}

struct top {
    WEFT_FRAME(int);
    int x;
    struct mid m;
};

WEFT_ASYNC(top)
{
    WEFT_BEGIN(self);
    WEFT_CALL(self, mid, &self->m, .x = self->x + 1);
    WEFT_RETURN(self, self->m.result + 5);
    WEFT_END;
}

/* P4.6-10, S-FUT-10 (`await coro()`): results flow up through 3 levels of
 * WEFT_CALL, each child initialised from its designated initializers. */
static void test_results_flow_through_three_call_levels(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, top, .x = 3);
    assert_int_equal(run(loop, t), 0);
    /* top x=3 -> mid x=4 -> leaf x=8 -> 9 -> 90 -> 95 */
    assert_int_equal(result_i(t), 95);
    weft_future_unref(t);
    finish(loop);
}

struct quick_child {
    WEFT_FRAME(int);
};

WEFT_ASYNC(quick_child)
{
    WEFT_BEGIN(self);
    WEFT_RETURN(self, 7);
    WEFT_END;
}

struct calls_quick {
    WEFT_FRAME(int);
    struct quick_child c;
    int i, sum;
};

static int g_entries; /* body entries: each is one resume of the frame */

WEFT_ASYNC(calls_quick)
{
    g_entries++;
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < 1000; self->i++) {
        WEFT_CALL(self, quick_child, &self->c);
        self->sum += self->c.result;
    }
    WEFT_RETURN(self, self->sum);
    WEFT_END;
}

/* S-FUT-10: calling a child coroutine that never suspends takes no loop
 * iteration: 1000 calls run within the task's first step. */
static void test_call_of_non_suspending_child_does_not_suspend(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_entries = 0;
    weft_task *t = WEFT_SPAWN(loop, calls_quick);
    step(loop);
    assert_true(weft_future_done(t));
    assert_int_equal(result_i(t), 7000);
    /* the parent's body is re-entered once per child return, all in step 1 */
    assert_int_equal(callbacks(loop), 1);
    weft_future_unref(t);
    finish(loop);
}

/* ---- error origin and catching ------------------------------------------------ */

struct deep_thrower {
    WEFT_FRAME(int);
};

WEFT_ASYNC(deep_thrower)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    AT_LINE(g_line, WEFT_THROW(self, -EIO));
    WEFT_END;
}

enum { NO_CATCH, CATCH, CATCH_RETHROW };

struct middle {
    WEFT_FRAME(int);
    int mode;
    int e;
    struct deep_thrower d;
};

WEFT_ASYNC(middle)
{
    WEFT_BEGIN(self);
    if (self->mode == NO_CATCH) {
        WEFT_CALL(self, deep_thrower, &self->d);
    } else {
        WEFT_TRY_CALL(self, self->e, deep_thrower, &self->d);
        g_caught = self->e;
        g_err_line = self->d.co.err_line;
        if (self->mode == CATCH_RETHROW) {
            AT_LINE(g_line2, WEFT_THROW(self, self->e));
        }
    }
    WEFT_RETURN(self, 20);
    WEFT_END;
}

static int g_root_err, g_root_err_line;

struct root {
    WEFT_FRAME(int);
    int mode;
    struct middle m;
};

WEFT_ASYNC(root)
{
    WEFT_BEGIN(self);
    WEFT_CALL(self, middle, &self->m, .mode = self->mode);
    WEFT_RETURN(self, self->m.result + 1);
    WEFT_FINALLY;
    g_root_err = self->co.err;
    g_root_err_line = self->co.err_line;
    WEFT_END;
}

/* P4.6-11: a WEFT_THROW three levels down reaches the root with its
 * original co.err_line. */
static void test_error_origin_line_survives_three_levels(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_root_err = g_root_err_line = 0;
    weft_task *t = WEFT_SPAWN(loop, root, .mode = NO_CATCH);
    assert_int_equal(run(loop, t), -EIO);
    assert_int_equal(g_root_err, -EIO);
    assert_true(g_line > 0);
    assert_int_equal(g_root_err_line, g_line);
    weft_future_unref(t);
    finish(loop);
}

/* P4.6-11: WEFT_TRY_CALL at the middle level catches the child's error
 * (and can read its origin line); the root succeeds. */
static void test_try_call_in_middle_catches_and_root_succeeds(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_root_err = g_root_err_line = -1;
    weft_task *t = WEFT_SPAWN(loop, root, .mode = CATCH);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 21);
    assert_int_equal(g_caught, -EIO);
    assert_int_equal(g_err_line, g_line);
    assert_int_equal(g_root_err, 0);
    assert_int_equal(g_hook.count, 0);
    weft_future_unref(t);
    finish(loop);
}

/* P4.6-11: a caught error rethrown with WEFT_THROW propagates to the root
 * (its origin is now the rethrow). */
static void test_rethrow_after_try_call_propagates(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, root, .mode = CATCH_RETHROW);
    assert_int_equal(run(loop, t), -EIO);
    assert_int_equal(g_caught, -EIO);
    assert_int_equal(g_root_err, -EIO);
    assert_int_equal(g_root_err_line, g_line2);
    weft_future_unref(t);
    finish(loop);
}

/* =============================================================================
 * Misuse detection (P4.6-1, P4.6-3)
 * ========================================================================== */

struct switch_suspender {
    WEFT_FRAME(int);
    int mode;
    int reached;
};

WEFT_ASYNC(switch_suspender)
{
    WEFT_BEGIN(self);
    switch (self->mode) {
    case 1:
        AT_LINE(g_line, WEFT_YIELD(self));
        self->reached = 1;
        break;
    default:
        break;
    }
    g_after++;
    WEFT_RETURN(self, self->reached ? 7 : 0);
    WEFT_END;
}

#ifndef WEFT_CO_LABELS
/* P4.6-1 (switch backend): a suspension inside a user `switch` is detected
 * on resume: the task fails with WEFT_ECORO, the body after it never runs,
 * and the error hook is called once, naming the coroutine and the line. */
static void test_suspension_inside_switch_is_detected(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, switch_suspender, .mode = 1);
    assert_int_equal(run(loop, t), WEFT_ECORO);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_hook.count, 1);
    assert_int_equal(g_hook.err, WEFT_ECORO);
    assert_non_null(strstr(g_hook.msg, "switch_suspender"));
    char line[16];
    snprintf(line, sizeof line, "%d", g_line);
    assert_non_null(strstr(g_hook.msg, line));
    weft_future_unref(t);
    finish(loop);
}
#else
/* P4.6-1 (labels backend): the same body works. */
static void test_suspension_inside_switch_works_with_labels(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, switch_suspender, .mode = 1);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 7);
    assert_int_equal(g_after, 1);
    assert_int_equal(g_hook.count, 0);
    weft_future_unref(t);
    finish(loop);
}
#endif

struct breaker {
    WEFT_FRAME(int);
};

WEFT_ASYNC(breaker)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    if (g_always)
        break; /* escapes the body: misuse */
    g_after++;
    WEFT_RETURN(self, 1);
    WEFT_END;
}

/* P4.6-3: a top-level stray `break` is detected (WEFT_ECORO, one report
 * naming the coroutine), never taken as a successful completion. */
static void test_stray_break_is_detected(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, breaker);
    assert_int_equal(run(loop, t), WEFT_ECORO);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_hook.count, 1);
    assert_int_equal(g_hook.err, WEFT_ECORO);
    assert_non_null(strstr(g_hook.msg, "breaker"));
    weft_future_unref(t);
    finish(loop);
}

/* =============================================================================
 * Frames: suspension line, stability, depth, stack (P4.6-15, 26, 27)
 * ========================================================================== */

struct line_child {
    WEFT_FRAME(int);
    weft_future *f;
    int at;
};

WEFT_ASYNC(line_child)
{
    WEFT_BEGIN(self);
    AT_LINE(self->at, WEFT_AWAIT(self, weft_future_ref(self->f)));
    WEFT_END;
}

static struct line_parent *g_lp;

struct line_parent {
    WEFT_FRAME(int);
    weft_future *f;
    int yield_at, call_at;
    struct line_child c;
};

WEFT_ASYNC(line_parent)
{
    WEFT_BEGIN(self);
    g_lp = self;
    AT_LINE(self->yield_at, WEFT_YIELD(self));
    AT_LINE(self->call_at, WEFT_CALL(self, line_child, &self->c, .f = self->f));
    WEFT_END;
}

/* P4.6-26 / co.h: the frame header records the line of the current
 * suspension macro (co.line), for a yield, an await and, in the parent, the
 * WEFT_CALL it is suspended in. */
static void test_frame_records_line_of_suspension(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, line_parent, .f = f);
    step(loop); /* at the yield */
    assert_int_equal(g_lp->co.line, g_lp->yield_at);
    step(loop); /* parked in the child */
    assert_int_equal(g_lp->co.line, g_lp->call_at);
    assert_int_equal(g_lp->c.co.line, g_lp->c.at);
    assert_int_equal(weft_future_set_int(f, 0), 0);
    assert_int_equal(run(loop, t), 0);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

static void *g_addr[3];

struct pinned {
    WEFT_FRAME(int);
    int slot;
    int *p;
    struct pinned *me;
};

WEFT_ASYNC(pinned)
{
    WEFT_BEGIN(self);
    self->p = &self->slot;
    self->me = self;
    g_addr[0] = self;
    WEFT_YIELD(self);
    g_addr[1] = self;
    WEFT_SLEEP(self, 1.0);
    g_addr[2] = self;
    *self->p = 5; /* writes through the pointer stored before suspending */
    g_after = self->me == self;
    WEFT_RETURN(self, self->slot);
    WEFT_END;
}

/* P4.6-27: frames never move: a pointer into the frame stored before a
 * suspension is still valid after resuming. */
static void test_frame_never_moves_across_suspensions(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, pinned);
    /* other tasks and allocations in between must not relocate it */
    weft_task *others[8];
    for (int i = 0; i < 8; i++)
        others[i] = WEFT_SPAWN(loop, yielder, .tag = i);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 5);
    assert_ptr_equal(g_addr[0], g_addr[1]);
    assert_ptr_equal(g_addr[0], g_addr[2]);
    assert_int_equal(g_after, 1);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(run(loop, others[i]), 0);
        weft_future_unref(others[i]);
    }
    weft_future_unref(t);
    finish(loop);
}

enum { MILLION = 1000000 };

struct million {
    WEFT_FRAME(int64_t);
    long i;
    weft_future *f;
    uintptr_t sp0, spread;
};

WEFT_ASYNC(million)
{
    g_entries++;
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < MILLION; self->i++) {
        self->f = weft_future_new(weft_task_loop(task));
        weft_future_set_int(self->f, 1);
        WEFT_AWAIT(self, self->f);
        self->result += WEFT_RESULT(self).i;
        {
            volatile char probe = 0;
            uintptr_t sp = (uintptr_t)&probe;
            if (!self->sp0)
                self->sp0 = sp;
            uintptr_t d = sp > self->sp0 ? sp - self->sp0 : self->sp0 - sp;
            if (d > self->spread)
                self->spread = d;
        }
    }
    g_after = (int)self->spread;
    WEFT_END;
}

/* P4.6-15, S-FUT-10, P4.6-19: 10^6 awaits of already-done futures complete
 * without growing the C stack.  An await of a done future does not suspend,
 * except that the fairness budget makes a step yield once after 128 of
 * them (co.h): the body is entered once per 129 awaits.  (asyncio never
 * yields here; weft does, so such a loop cannot starve the others.) */
static void test_million_done_awaits_neither_suspend_nor_grow_stack(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_entries = 0;
    g_after = -1;
    weft_task *t = WEFT_SPAWN(loop, million);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), MILLION);
    assert_int_equal(g_entries, (MILLION + 128) / 129); /* one yield per 129 */
    assert_int_equal(g_after, 0);                       /* the probe never moved */
    weft_future_unref(t);
    finish(loop);
}

/* P4.6-19 (fairness): a task that keeps awaiting done futures and never
 * suspends otherwise cannot starve the others: the budget makes it yield,
 * so a second task runs and stops it. */
static bool g_stop_spinner;

struct spinner {
    WEFT_FRAME(long); /* awaits done before it saw the stop flag */
};

WEFT_ASYNC(spinner)
{
    WEFT_BEGIN(self);
    while (!g_stop_spinner) {
        weft_future *f = weft_future_new(weft_task_loop(task));
        weft_future_set_int(f, 1);
        WEFT_AWAIT(self, f);
        self->result++;
    }
    WEFT_END;
}

struct stopper {
    WEFT_FRAME(int);
};

WEFT_ASYNC(stopper)
{
    WEFT_BEGIN(self);
    g_stop_spinner = true;
    WEFT_END;
}

static void test_done_awaits_loop_yields_to_other_tasks(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_stop_spinner = false;
    weft_task *spin = WEFT_SPAWN(loop, spinner);
    weft_task *stop = WEFT_SPAWN(loop, stopper);
    assert_int_equal(run(loop, spin), 0);
    assert_true(weft_future_done(stop));
    /* the stopper ran right after the spinner's first yield */
    assert_int_equal(result_i(spin), 129);
    weft_future_unref(spin);
    weft_future_unref(stop);
    finish(loop);
}

/* A chain of DEPTH nested inline frames, each frame a member of its
 * parent's (the design's layout: no recursion through pointers).  C has no
 * recursive struct types, so the preprocessor writes DEPTH coroutine types
 * lv_000 ... lv_999, each calling the next; lv_A00 is the leaf.  They are
 * defined leaf first (a frame embeds its child's complete type). */
enum { DEPTH = 1000, LEAF_YIELDS = 50 };

static long g_level_entries[DEPTH + 1]; /* body entries per level */

struct lv_A00 {
    WEFT_FRAME(int);
    int i;
};

WEFT_ASYNC(lv_A00)
{
    g_level_entries[DEPTH]++;
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < LEAF_YIELDS; self->i++)
        WEFT_YIELD(self);
    WEFT_RETURN(self, 0);
    WEFT_END;
}

#define LEVEL(a, b, c, na, nb, nc)                      \
    struct lv_##a##b##c {                               \
        WEFT_FRAME(int);                                \
        struct lv_##na##nb##nc child;                   \
    };                                                  \
    WEFT_ASYNC(lv_##a##b##c)                            \
    {                                                   \
        g_level_entries[a * 100 + b * 10 + c]++;        \
        WEFT_BEGIN(self);                               \
        WEFT_CALL(self, lv_##na##nb##nc, &self->child); \
        WEFT_RETURN(self, self->child.result + 1);      \
        WEFT_END;                                       \
    }
/* levels a,b,9 .. a,b,0; the last of the row calls na,nb,0 */
#define ROW(a, b, na, nb)     \
    LEVEL(a, b, 9, na, nb, 0) \
    LEVEL(a, b, 8, a, b, 9)   \
    LEVEL(a, b, 7, a, b, 8)   \
    LEVEL(a, b, 6, a, b, 7)   \
    LEVEL(a, b, 5, a, b, 6)   \
    LEVEL(a, b, 4, a, b, 5)   \
    LEVEL(a, b, 3, a, b, 4)   \
    LEVEL(a, b, 2, a, b, 3)   \
    LEVEL(a, b, 1, a, b, 2)   \
    LEVEL(a, b, 0, a, b, 1)
#define BLOCK(a, na) \
    ROW(a, 9, na, 0) \
    ROW(a, 8, a, 9)  \
    ROW(a, 7, a, 8)  \
    ROW(a, 6, a, 7)  \
    ROW(a, 5, a, 6)  \
    ROW(a, 4, a, 5)  \
    ROW(a, 3, a, 4)  \
    ROW(a, 2, a, 3)  \
    ROW(a, 1, a, 2)  \
    ROW(a, 0, a, 1)

BLOCK(9, A)
BLOCK(8, 9)
BLOCK(7, 8)
BLOCK(6, 7)
BLOCK(5, 6)
BLOCK(4, 5)
BLOCK(3, 4)
BLOCK(2, 3)
BLOCK(1, 2)
BLOCK(0, 1)

/* P4.6-15, DESIGN "Inline child coroutines ... resumes its innermost frame
 * directly, O(1)": with DEPTH frames nested, every resume of the leaf costs
 * one callback and enters only the leaf's body, never its ancestors'. */
static void test_deep_call_chain_resumes_leaf_directly(void **state)
{
    (void)state;
    memset(g_level_entries, 0, sizeof g_level_entries);
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, lv_000);
    step(loop); /* builds the whole chain in one step */
    for (int d = 0; d <= DEPTH; d++)
        assert_int_equal(g_level_entries[d], 1);
    for (int k = 1; k < LEAF_YIELDS; k++) {
        uint64_t before = callbacks(loop);
        step(loop);
        assert_int_equal(callbacks(loop) - before, 1);
        assert_int_equal(g_level_entries[DEPTH], 1 + k);
        assert_int_equal(g_level_entries[0], 1);
        assert_int_equal(g_level_entries[DEPTH / 2], 1);
        assert_int_equal(g_level_entries[DEPTH - 1], 1);
    }
    assert_false(weft_future_done(t));
    step(loop); /* the leaf returns: the chain unwinds in this same step */
    assert_true(weft_future_done(t));
    assert_int_equal(result_i(t), DEPTH);
    for (int d = 0; d < DEPTH; d++)
        assert_int_equal(g_level_entries[d], 2);
    weft_future_unref(t);
    finish(loop);
}

/* ---- main ------------------------------------------------------------------------------ */

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* basics */
        T(test_return_sets_task_value_and_stops_body),
        T(test_falling_off_end_succeeds_with_zero_result),
        T(test_await_resumes_with_future_value),
        T(test_await_failed_future_unwinds_with_its_error),
        T(test_try_await_stores_error_and_continues),
        T(test_try_await_stores_zero_on_success),
        T(test_yield_requeues_at_tail_so_tasks_alternate),
        T(test_throw_fails_task_with_code_and_line),
        T(test_double_and_pointer_results_convert_to_value),
        T(test_break_and_continue_in_user_loops_work),
        /* FINALLY */
        T(test_finally_runs_once_on_normal_end),
        T(test_finally_runs_once_on_return_from_nested_loops),
        T(test_finally_runs_once_on_throw),
        T(test_finally_runs_once_on_propagated_child_error),
        T(test_finally_runs_once_on_cancel_while_parked),
        T(test_finally_runs_once_on_cancel_before_first_step),
        T(test_without_finally_every_path_completes_task),
        T(test_await_inside_finally_resumes),
        T(test_second_cancel_does_not_restart_finally),
        T(test_error_in_finally_does_not_replace_first_error),
        T(test_error_in_finally_after_success_fails_frame),
        T(test_call_while_cancelled_skips_child_body_runs_its_finally),
        T(test_frames_called_from_finally_are_masked),
        T(test_cancelled_task_awaiting_done_future_gets_value),
        T(test_throw_of_nonnegative_code_is_misuse),
        /* nesting */
        T(test_results_flow_through_three_call_levels),
        T(test_call_of_non_suspending_child_does_not_suspend),
        T(test_error_origin_line_survives_three_levels),
        T(test_try_call_in_middle_catches_and_root_succeeds),
        T(test_rethrow_after_try_call_propagates),
    /* misuse */
#ifndef WEFT_CO_LABELS
        T(test_suspension_inside_switch_is_detected),
#else
        T(test_suspension_inside_switch_works_with_labels),
#endif
        T(test_stray_break_is_detected),
        /* frames */
        T(test_frame_records_line_of_suspension),
        T(test_frame_never_moves_across_suspensions),
        T(test_million_done_awaits_neither_suspend_nor_grow_stack),
        T(test_done_awaits_loop_yields_to_other_tasks),
        T(test_deep_call_chain_resumes_leaf_directly),
    };
    return RUN_TESTS(tests);
}
