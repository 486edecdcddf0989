/* tests/test_task.c - tasks (include/weft/task.h): spawn, await,
 * introspection, cancellation in every state, failure reports, WEFT_RUN,
 * run_until_complete, allocation failures.  One guarantee per test.
 *
 * Each test cites what it pins: S-FUT-n / S-TASK-n / S-LOOP-n / S-RUN-n
 * (shared/reference/asyncio-semantics.md) or a pitfall "P4.6-n"
 * (shared/reference/coroutines.md, section 4.6).  Where weft deliberately
 * differs from asyncio the comment says so.
 *
 * Compiled twice: test_task (switch backend) and test_task_labels
 * (-DWEFT_CO_LABELS=1).  Bodies never call cmocka asserts (a longjmp out of
 * a running loop would leave it running): they record into globals and the
 * test asserts afterwards.  Every loop uses the virtual clock and a
 * counting allocator; finish() destroys the loop and asserts that every
 * block came back.
 */
#include "weft_test.h"

#include <time.h>

#include "loop_internal.h" /* weft__lag_flagged: wait for the watchdog, not for time */

/* Run the loop for sec seconds of (virtual) loop time. */
static void run_for(weft_loop *loop, double sec)
{
    weft_future *s = weft_sleep(loop, sec);
    assert_non_null(s);
    assert_int_equal(weft_loop_run_until_complete(loop, s), 0);
    weft_future_unref(s);
}

static int64_t now_ms(weft_task *task)
{
    return weft_loop_now(weft_task_loop(task)) / MS;
}

/* ---- shared recorders ------------------------------------------------------------------ */

static int g_body;     /* body statements reached */
static int g_after;    /* statements after the interesting point */
static int g_fin;      /* FINALLY entries */
static int g_fin_done; /* FINALLY sections that ran to their end */
static int g_fin_err;  /* self->co.err seen in FINALLY */
static int g_line;     /* a __LINE__ captured in a body */
static int g_caught;   /* an error caught by a TRY form */
static int g_rc;       /* a return code seen inside a body */
static int64_t g_val;  /* a value seen inside a body */
static int64_t g_t_ms; /* loop time seen by a body, in ms */

static void log_cb(void *arg)
{
    log_tag((int)(intptr_t)arg);
}

static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 120});
    g_body = g_after = g_fin = g_fin_done = g_fin_err = 0;
    g_line = g_caught = g_rc = 0;
    g_val = 0;
    g_t_ms = -1;
    return 0;
}

/* ---- coroutines used by many tests ---------------------------------------------------- */

/* Yields n times, then returns v (or throws fail). */
struct worker {
    WEFT_FRAME(int);
    int n, v, fail;
    int i;
};

WEFT_ASYNC(worker)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < self->n; self->i++)
        WEFT_YIELD(self);
    if (self->fail)
        WEFT_THROW(self, self->fail);
    WEFT_RETURN(self, self->v);
    WEFT_END;
}

/* Parks on f (a reference it does not own); logs tag in FINALLY. */
struct parker {
    WEFT_FRAME(int);
    weft_future *f;
    int tag;
};

WEFT_ASYNC(parker)
{
    WEFT_BEGIN(self);
    g_body++;
    WEFT_AWAIT(self, weft_future_ref(self->f));
    g_after++;
    g_val = WEFT_RESULT(self).i;
    WEFT_YIELD(self);
    g_after++;
    WEFT_FINALLY;
    g_fin++;
    g_fin_err = self->co.err;
    log_tag(self->tag);
    WEFT_END;
}

/* TRY_AWAITs t (taking the reference) and returns its value or error. */
struct awaiter {
    WEFT_FRAME(int);
    weft_task *t;
    int e;
};

static int g_entries; /* awaiter body entries */

WEFT_ASYNC(awaiter)
{
    g_entries++;
    WEFT_BEGIN(self);
    WEFT_TRY_AWAIT(self, self->t, self->e);
    g_caught = self->e;
    WEFT_RETURN(self, self->e ? self->e : (int)WEFT_RESULT(self).i);
    WEFT_END;
}

/* =============================================================================
 * Spawning
 * ========================================================================== */

struct args {
    WEFT_FRAME(int);
    int a;
    const char *s;
    double d;
    int unset;
};

static struct {
    int a;
    const char *s;
    double d;
    int unset;
} g_args;

WEFT_ASYNC(args)
{
    WEFT_BEGIN(self);
    g_args.a = self->a;
    g_args.s = self->s;
    g_args.d = self->d;
    g_args.unset = self->unset;
    WEFT_END;
}

/* The compound literal WEFT_SPAWN builds dies with this function. */
static weft_task *spawn_args(weft_loop *loop, int a)
{
    return WEFT_SPAWN(loop, args, .a = a, .s = "hi", .d = 1.5);
}

static void scribble_stack(void)
{
    volatile unsigned char junk[4096];
    memset((void *)junk, 0xA5, sizeof junk);
}

/* S-TASK-1 / DESIGN "Spawning": the designated initializers are copied
 * into the task's frame at spawn time; unnamed fields are zero. */
static void test_spawn_copies_designated_initializer_args(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = spawn_args(loop, 5);
    scribble_stack(); /* the spawner's temporary is gone */
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(g_args.a, 5);
    assert_string_equal(g_args.s, "hi");
    assert_true(g_args.d == 1.5);
    assert_int_equal(g_args.unset, 0);
    weft_future_unref(t);
    finish(loop);
}

struct logger {
    WEFT_FRAME(int);
    int tag;
};

WEFT_ASYNC(logger)
{
    WEFT_BEGIN(self);
    log_tag(self->tag);
    WEFT_END;
}

struct spawner {
    WEFT_FRAME(int);
    weft_task *child;
};

WEFT_ASYNC(spawner)
{
    WEFT_BEGIN(self);
    log_tag(1);
    self->child = WEFT_SPAWN(weft_task_loop(task), logger, .tag = 2);
    log_tag(3); /* the child has not run yet */
    WEFT_YIELD(self);
    log_tag(4);
    WEFT_AWAIT(self, self->child);
    WEFT_END;
}

/* S-TASK-1, P4.6-20 (lazy spawn): the first step is queued, not run: the
 * spawner goes on until its next suspension, then the child runs. */
static void test_spawn_queues_first_step_spawner_continues(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, spawner);
    assert_int_equal(g_nlog, 0); /* nothing ran inside WEFT_SPAWN */
    assert_false(weft_future_done(t));
    assert_int_equal(run(loop, t), 0);
    EXPECT_LOG(1, 3, 2, 4);
    weft_future_unref(t);
    finish(loop);
}

/* S-TASK-1 (create_task on a closed loop fails): WEFT_SPAWN returns NULL
 * with weft_last_error() == WEFT_ECLOSED. */
static void test_spawn_on_closed_loop_fails_eclosed(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_loop_close(loop), 0);
    assert_null(WEFT_SPAWN(loop, worker));
    assert_int_equal(weft_last_error(), WEFT_ECLOSED);
    finish(loop);
}

/* DESIGN "A malloc-free form with caller-provided storage exists":
 * WEFT_SPAWN_INTO + WEFT_TASK_STORAGE spawn and run with 0 allocations. */
static void test_spawn_into_storage_allocates_nothing(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    wt_warm(loop);
    static WEFT_TASK_STORAGE(worker) storage;
    long before = alloc_calls();
    weft_task *t = WEFT_SPAWN_INTO(loop, &storage, worker, .n = 3, .v = 11);
    assert_non_null(t);
    assert_int_equal(alloc_calls() - before, 0); /* the spawn itself */
    assert_true((unsigned char *)t >= storage.bytes &&
                (unsigned char *)t < storage.bytes + sizeof storage.bytes);
    for (int i = 0; i < 4; i++)
        step(loop);
    assert_true(weft_future_done(t));
    assert_int_equal(result_i(t), 11);
    if (WT_POOLED) /* and its run, once the pools are warm */
        assert_int_equal(alloc_calls() - before, 0);
    weft_future_unref(t);
    finish(loop);
}

/* =============================================================================
 * Awaiting tasks
 * ========================================================================== */

/* S-FUT-10 (await on a Task), P4.6-10: awaiting a task delivers its value;
 * awaiting a failed task delivers its error, and reading a failed task's
 * result yields the error, not garbage. */
static void test_await_task_delivers_value_or_error(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *ok = WEFT_SPAWN(loop, worker, .n = 2, .v = 33);
    weft_task *bad = WEFT_SPAWN(loop, worker, .n = 1, .fail = -EIO);
    weft_task *a = WEFT_SPAWN(loop, awaiter, .t = weft_future_ref(ok));
    weft_task *b = WEFT_SPAWN(loop, awaiter, .t = weft_future_ref(bad));
    assert_int_equal(run(loop, a), 0);
    assert_int_equal(result_i(a), 33);
    assert_int_equal(run(loop, b), 0);
    assert_int_equal(result_i(b), -EIO);
    weft_value v = {.i = 12345};
    assert_int_equal(weft_future_result(bad, &v), -EIO);
    assert_int_equal(v.i, 12345); /* untouched on error */
    assert_int_equal(g_hook.count, 0);
    weft_future_unref(ok);
    weft_future_unref(bad);
    weft_future_unref(a);
    weft_future_unref(b);
    finish(loop);
}

/* S-FUT-10: awaiting an already done task does not suspend: the awaiter
 * finishes within its first step. */
static void test_await_done_task_does_not_suspend(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *w = WEFT_SPAWN(loop, worker, .v = 8);
    assert_int_equal(run(loop, w), 0);
    g_entries = 0;
    weft_task *a = WEFT_SPAWN(loop, awaiter, .t = w); /* takes our reference */
    step(loop);
    assert_true(weft_future_done(a));
    assert_int_equal(g_entries, 1);
    assert_int_equal(result_i(a), 8);
    weft_future_unref(a);
    finish(loop);
}

/* P4.6-18: several tasks awaiting one task all get its value. */
static void test_multiple_awaiters_of_one_task_all_resume(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *w = WEFT_SPAWN(loop, worker, .n = 3, .v = 4);
    weft_task *a[3];
    for (int i = 0; i < 3; i++)
        a[i] = WEFT_SPAWN(loop, awaiter, .t = weft_future_ref(w));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run(loop, a[i]), 0);
        assert_int_equal(result_i(a[i]), 4);
        weft_future_unref(a[i]);
    }
    weft_future_unref(w);
    finish(loop);
}

struct self_awaiter {
    WEFT_FRAME(int);
    weft_future *other; /* a future of another loop */
    int e1, e2;
};

WEFT_ASYNC(self_awaiter)
{
    WEFT_BEGIN(self);
    WEFT_TRY_AWAIT(self, weft_future_ref(task), self->e1);
    WEFT_TRY_AWAIT(self, weft_future_ref(self->other), self->e2);
    g_caught = self->e1;
    g_rc = self->e2;
    WEFT_END;
}

/* S-FUT-11: a task awaiting itself fails that await with WEFT_ENOTASK, a
 * future of another loop with -EINVAL; neither suspends forever. */
static void test_await_self_or_foreign_future_fails(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_loop *other = vloop();
    weft_future *f = weft_future_new(other);
    weft_task *t = WEFT_SPAWN(loop, self_awaiter, .other = f);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(g_caught, WEFT_ENOTASK);
    assert_int_equal(g_rc, -EINVAL);
    weft_future_unref(t);
    weft_future_unref(f);
    assert_int_equal(weft_loop_destroy(other), 0);
    finish(loop);
}

/* S-TASK-13: a task's outcome comes from its coroutine: set_result and
 * set_error on a task return WEFT_ESTATE and change nothing. */
static void test_task_refuses_set_result(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, worker, .v = 1);
    assert_int_equal(weft_future_set_int(t, 5), WEFT_ESTATE);
    assert_int_equal(weft_future_set_error(t, -EIO), WEFT_ESTATE);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 1);
    weft_future_unref(t);
    finish(loop);
}

/* =============================================================================
 * Names and introspection
 * ========================================================================== */

/* S-TASK-2: get/set name.  Deliberate difference: the default name is the
 * coroutine's name, not asyncio's "Task-<n>". */
static void test_task_name_defaults_to_coroutine_name(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, worker);
    assert_string_equal(weft_task_name(t), "worker");
    assert_true(weft_is_task(t));
    assert_int_equal(run(loop, t), 0);
    weft_future_unref(t);
    finish(loop);
}

/* S-TASK-2: set_name renames a pending task; a NULL name is -EINVAL. */
static void test_set_name_renames_pending_task(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, worker, .n = 1);
    assert_int_equal(weft_task_set_name(t, "worker-1"), 0);
    assert_string_equal(weft_task_name(t), "worker-1");
    assert_int_equal(weft_task_set_name(t, NULL), -EINVAL);
    assert_string_equal(weft_task_name(t), "worker-1");
    assert_int_equal(run(loop, t), 0);
    weft_future_unref(t);
    finish(loop);
}

/* task.h: "The task's name: the one set, else its coroutine's name" -
 * including after it is done; renaming a done task is WEFT_ESTATE. */
static void test_set_name_survives_completion(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, worker, .v = 3);
    assert_int_equal(weft_task_set_name(t, "worker-2"), 0);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(weft_task_set_name(t, "late"), WEFT_ESTATE);
    assert_string_equal(weft_task_name(t), "worker-2");
    weft_future_unref(t);
    finish(loop);
}

static weft_task *g_cur[2];
static weft_task *g_task_arg;

struct whoami {
    WEFT_FRAME(int);
};

WEFT_ASYNC(whoami)
{
    WEFT_BEGIN(self);
    g_task_arg = task;
    g_cur[0] = weft_current_task(weft_task_loop(task));
    WEFT_YIELD(self);
    g_cur[1] = weft_current_task(weft_task_loop(task));
    WEFT_END;
}

static weft_task *g_cur_in_cb = (weft_task *)1;

static void current_in_cb(void *arg)
{
    g_cur_in_cb = weft_current_task(arg);
}

/* S-TASK-14: current_task is the task whose step runs (inside its body,
 * across resumes); NULL outside the loop, in a plain callback, for NULL. */
static void test_current_task_inside_and_outside(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, whoami);
    assert_null(weft_current_task(loop));
    assert_int_equal(weft_call_soon(loop, current_in_cb, loop, NULL), 0);
    assert_int_equal(run(loop, t), 0);
    assert_ptr_equal(g_task_arg, t);
    assert_ptr_equal(g_cur[0], t);
    assert_ptr_equal(g_cur[1], t);
    assert_null(g_cur_in_cb);
    assert_null(weft_current_task(loop));
    assert_null(weft_current_task(NULL));
    weft_future_unref(t);
    finish(loop);
}

static weft_task *g_seen[16];
static int g_nseen;

struct cur_child {
    WEFT_FRAME(int);
    int k;
};

WEFT_ASYNC(cur_child)
{
    WEFT_BEGIN(self);
    for (self->k = 0; self->k < 2; self->k++) {
        if (g_nseen < 16)
            g_seen[g_nseen++] = weft_current_task(weft_task_loop(task));
        WEFT_YIELD(self);
    }
    WEFT_RETURN(self, 7);
    WEFT_END;
}

struct cur_root {
    WEFT_FRAME(int);
    struct cur_child c;
    int round, sum;
};

WEFT_ASYNC(cur_root)
{
    WEFT_BEGIN(self);
    for (self->round = 0; self->round < 3; self->round++) {
        WEFT_CALL(self, cur_child, &self->c);
        self->sum += self->c.result;
        if (g_nseen < 16)
            g_seen[g_nseen++] = weft_current_task(weft_task_loop(task));
        WEFT_YIELD(self);
    }
    WEFT_RETURN(self, self->sum);
    WEFT_END;
}

/* A task runs its coroutine's own step while its root frame is innermost
 * and the general one while a child frame is, back and forth: every
 * resume goes on in the right frame, and the current task is the task in
 * both kinds of step. */
static void test_steps_alternate_between_root_and_child_frames(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_nseen = 0;
    weft_task *t = WEFT_SPAWN(loop, cur_root);
    weft_value v;
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(weft_future_result(t, &v), 0);
    assert_int_equal(v.i, 21);
    assert_int_equal(g_nseen, 9);
    for (int i = 0; i < g_nseen; i++)
        assert_ptr_equal(g_seen[i], t);
    assert_null(weft_current_task(loop));
    weft_future_unref(t);
    finish(loop);
}

/* S-TASK-14 (all_tasks = the tasks not done): borrowed pointers, the count
 * may exceed n; a NULL loop has none. */
static void test_all_tasks_lists_pending_tasks(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *quick = WEFT_SPAWN(loop, worker);
    weft_task *slow1 = WEFT_SPAWN(loop, worker, .n = 10);
    weft_task *slow2 = WEFT_SPAWN(loop, worker, .n = 10);
    weft_task *out[8] = {0};
    assert_int_equal(weft_all_tasks(loop, out, 8), 3);
    assert_int_equal(run(loop, quick), 0);
    memset(out, 0, sizeof out);
    assert_int_equal(weft_all_tasks(loop, out, 8), 2);
    assert_true((out[0] == slow1 && out[1] == slow2) || (out[0] == slow2 && out[1] == slow1));
    memset(out, 0, sizeof out);
    assert_int_equal(weft_all_tasks(loop, out, 1), 2);
    assert_non_null(out[0]);
    assert_null(out[1]);
    assert_int_equal(weft_all_tasks(NULL, out, 8), 0);
    assert_int_equal(run(loop, slow1), 0);
    assert_int_equal(run(loop, slow2), 0);
    assert_int_equal(weft_all_tasks(loop, out, 8), 0);
    weft_future_unref(quick);
    weft_future_unref(slow1);
    weft_future_unref(slow2);
    finish(loop);
}

/* task.h: weft_task_loop is the loop the task belongs to. */
static void test_task_loop_is_owning_loop(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, worker);
    assert_ptr_equal(weft_task_loop(t), loop);
    assert_null(weft_task_loop(NULL));
    assert_int_equal(run(loop, t), 0);
    weft_future_unref(t);
    finish(loop);
}

/* =============================================================================
 * Cancellation in every state (P4.6-21)
 * ========================================================================== */

/* S-TASK-11, P4.6-21: cancelled before its first step, the body never runs
 * and FINALLY runs once.  Deliberate difference from asyncio, where the
 * coroutine's try/finally never executes either. */
static void test_cancel_before_start_skips_body_runs_finally_once(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, parker, .f = f);
    assert_int_equal(weft_task_cancel(t), 0);
    /* S-TASK-5: right after cancel() the task is neither done nor cancelled */
    assert_false(weft_future_done(t));
    assert_false(weft_future_cancelled(t));
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_true(weft_future_cancelled(t));
    assert_int_equal(g_body, 0);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_err, -ECANCELED);
    assert_false(weft_future_done(f)); /* never awaited, so never cancelled */
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

/* P4.6-21 (on the ready queue): a task queued after a yield sees
 * -ECANCELED when it resumes; the rest of its body does not run. */
static void test_cancel_while_queued_fails_resumed_yield(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_set_int(f, 1), 0);
    weft_task *t = WEFT_SPAWN(loop, parker, .f = f);
    step(loop); /* await of a done future, then yield: queued */
    assert_int_equal(g_after, 1);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_after, 1);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_err, -ECANCELED);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

/* S-TASK-5: cancelling a parked task cancels the future it awaits at once;
 * the task itself is not done until its next step. */
static void test_cancel_parked_task_cancels_awaited_future(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, parker, .f = f);
    step(loop);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_true(weft_future_cancelled(f));
    assert_false(weft_future_done(t));
    assert_int_equal(weft_task_cancelling(t), 1);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_fin, 1);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

/* weft_future_cancel on a task is weft_task_cancel: a request. */
static void test_future_cancel_on_task_is_a_request(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, parker, .f = f);
    step(loop);
    assert_int_equal(weft_future_cancel(t), 0);
    assert_false(weft_future_done(t));
    assert_int_equal(weft_task_cancelling(t), 1);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_fin, 1);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

struct c3 {
    WEFT_FRAME(int);
    weft_future *f;
};

WEFT_ASYNC(c3)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_future_ref(self->f));
    WEFT_FINALLY;
    log_tag(3);
    WEFT_END;
}

struct c2 {
    WEFT_FRAME(int);
    weft_future *f;
    struct c3 c;
};

WEFT_ASYNC(c2)
{
    WEFT_BEGIN(self);
    WEFT_CALL(self, c3, &self->c, .f = self->f);
    g_after++;
    WEFT_FINALLY;
    log_tag(2);
    WEFT_END;
}

struct c1 {
    WEFT_FRAME(int);
    weft_future *f;
    struct c2 c;
};

WEFT_ASYNC(c1)
{
    WEFT_BEGIN(self);
    WEFT_CALL(self, c2, &self->c, .f = self->f);
    g_after++;
    WEFT_FINALLY;
    log_tag(1);
    WEFT_END;
}

/* P4.6-21, S-TASK-6 (innermost first): cancelled while parked three inline
 * frames deep, FINALLY sections run innermost -> outermost, once each. */
static void test_cancel_three_frames_deep_unwinds_innermost_first(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, c1, .f = f);
    step(loop);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_true(weft_future_cancelled(f));
    assert_int_equal(run(loop, t), -ECANCELED);
    EXPECT_LOG(3, 2, 1);
    assert_int_equal(g_after, 0);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

struct fin_sleeper {
    WEFT_FRAME(int);
};

WEFT_ASYNC(fin_sleeper)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    WEFT_RETURN(self, 5);
    WEFT_FINALLY;
    g_fin++;
    WEFT_SLEEP(self, 1.0);
    g_t_ms = now_ms(task);
    g_fin_done++;
    WEFT_END;
}

/* P4.6-21 (in FINALLY), co.h "Inside WEFT_FINALLY cancellation is masked,
 * so cleanup may await": a cancel arriving while FINALLY awaits does not
 * interrupt the cleanup; its sleep completes at its deadline.  The task
 * then ends CANCELLED because a request is still pending: a deliberate
 * difference from asyncio S-TASK-7 (there a task that does not see the
 * CancelledError finishes normally). */
static void test_cancel_inside_finally_is_masked_cleanup_completes(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, fin_sleeper);
    step(loop); /* yield */
    step(loop); /* return -> FINALLY -> parked on the sleep */
    assert_int_equal(g_fin, 1);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_done, 1);
    assert_int_equal(g_t_ms, 1000);
    weft_future_unref(t);
    finish(loop);
}

/* S-TASK-5 (done task -> no effect), P4.6-21 (after done): cancelling a
 * done task returns WEFT_ESTATE and changes nothing. */
static void test_cancel_after_done_returns_estate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, worker, .v = 6);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(weft_task_cancel(t), WEFT_ESTATE);
    assert_int_equal(weft_task_cancelling(t), 0);
    assert_false(weft_future_cancelled(t));
    assert_int_equal(result_i(t), 6);
    weft_future_unref(t);
    finish(loop);
}

/* S-TASK-8, P4.6-21 (double cancel): every cancel while pending counts
 * (cancelling() == 2) but the cancellation is delivered once: FINALLY runs
 * once. */
static void test_cancel_twice_counts_two_delivers_once(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, parker, .f = f);
    step(loop);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(weft_task_cancelling(t), 2);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_err, -ECANCELED);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

struct self_cancel_return {
    WEFT_FRAME(int);
};

WEFT_ASYNC(self_cancel_return)
{
    WEFT_BEGIN(self);
    g_rc = weft_task_cancel(task);
    WEFT_RETURN(self, 9);
    WEFT_FINALLY;
    g_fin++;
    WEFT_END;
}

/* S-TASK-10 (self-cancel, then return without suspending): the task ends
 * CANCELLED and its return value is lost (as in asyncio). */
static void test_self_cancel_then_return_ends_cancelled(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, self_cancel_return);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_rc, 0);
    assert_true(weft_future_cancelled(t));
    assert_int_equal(g_fin, 1);
    weft_future_unref(t);
    finish(loop);
}

struct self_cancel_await {
    WEFT_FRAME(int);
    weft_future *f;
    int e;
};

WEFT_ASYNC(self_cancel_await)
{
    WEFT_BEGIN(self);
    weft_task_cancel(task);
    WEFT_TRY_AWAIT(self, weft_future_ref(self->f), self->e);
    g_after++;
    WEFT_FINALLY;
    g_fin_err = self->co.err;
    WEFT_END;
}

/* S-TASK-10 (self-cancel, then await): the next future it awaits is
 * cancelled as it is awaited and the await fails with -ECANCELED (not
 * caught by the TRY form: it is the task's own cancellation). */
static void test_self_cancel_then_await_cancels_that_future(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, self_cancel_await, .f = f);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_true(weft_future_cancelled(f));
    assert_int_equal(g_after, 0);
    assert_int_equal(g_fin_err, -ECANCELED);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

/* S-TASK-9: cancelling() counts requests, uncancel() decrements (never
 * below 0) and returns the new count; non-tasks are -EINVAL. */
static void test_cancelling_and_uncancel_count_requests(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, worker, .n = 1);
    assert_int_equal(weft_task_cancelling(t), 0);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(weft_task_cancelling(t), 2);
    assert_int_equal(weft_task_uncancel(t), 1);
    assert_int_equal(weft_task_uncancel(t), 0);
    assert_int_equal(weft_task_uncancel(t), 0);
    assert_int_equal(weft_task_cancelling(t), 0);
    assert_int_equal(weft_task_cancel(f), -EINVAL);
    assert_int_equal(weft_task_uncancel(f), -EINVAL);
    assert_int_equal(weft_task_cancel(NULL), -EINVAL);
    assert_int_equal(weft_task_uncancel(NULL), -EINVAL);
    assert_int_equal(run(loop, t), 0);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

/* S-TASK-9 [3.13]: uncancel() bringing the count to 0 withdraws a pending,
 * undelivered cancellation: the task runs normally (weft follows 3.13, not
 * 3.12 where the CancelledError is still delivered). */
static void test_uncancel_to_zero_withdraws_pending_cancellation(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_set_int(f, 1), 0);
    weft_task *t = WEFT_SPAWN(loop, parker, .f = f);
    step(loop); /* queued after its yield */
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(weft_task_uncancel(t), 0);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(g_after, 2);
    assert_int_equal(g_fin_err, 0);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

struct uncancel_child {
    WEFT_FRAME(int);
    weft_future *f;
};

WEFT_ASYNC(uncancel_child)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_future_ref(self->f));
    WEFT_FINALLY;
    if (self->co.err == -ECANCELED)
        weft_task_uncancel(task); /* give the cancellation up */
    WEFT_END;
}

struct uncancel_parent {
    WEFT_FRAME(int);
    weft_future *f;
    int e;
    struct uncancel_child c;
};

WEFT_ASYNC(uncancel_parent)
{
    WEFT_BEGIN(self);
    WEFT_TRY_CALL(self, self->e, uncancel_child, &self->c, .f = self->f);
    g_caught = self->e;
    WEFT_YIELD(self); /* no longer cancelled: suspends normally */
    WEFT_RETURN(self, 77);
    WEFT_END;
}

/* DESIGN "giving one up takes an explicit call (asyncio's uncancel)",
 * S-TASK-7/9: once uncancel brings the count to 0, the -ECANCELED still
 * unwinding is a plain error: the parent's TRY_CALL catches it and the task
 * succeeds. */
static void test_uncancel_in_finally_lets_parent_catch_and_succeed(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, uncancel_parent, .f = f);
    step(loop);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 77);
    assert_int_equal(g_caught, -ECANCELED);
    assert_int_equal(weft_task_cancelling(t), 0);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

/* ---- sticky cancellation (P4.6-22) ------------------------------------------------------ */

struct try_parker {
    WEFT_FRAME(int);
    weft_future *f;
    int e, e2;
};

WEFT_ASYNC(try_parker)
{
    WEFT_BEGIN(self);
    WEFT_TRY_AWAIT(self, weft_future_ref(self->f), self->e);
    g_caught = self->e;
    g_after++;
    WEFT_TRY_AWAIT(self, weft_sleep(weft_task_loop(task), 1.0), self->e2);
    g_after++;
    WEFT_FINALLY;
    g_fin++;
    g_fin_err = self->co.err;
    WEFT_END;
}

/* P4.6-22, co.h "the TRY forms do not catch it": a TRY_AWAIT interrupted by
 * the task's own cancellation unwinds instead of storing -ECANCELED. */
static void test_try_await_does_not_swallow_own_cancellation(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, try_parker, .f = f);
    step(loop);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_fin, 1);
    assert_int_equal(g_fin_err, -ECANCELED);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

/* P4.6-22 (sticky): the awaited future failed with a plain error in the
 * same iteration as the cancel; the TRY_AWAIT gets that error, and the
 * next suspension fails with -ECANCELED (uncaught by its TRY form). */
static void test_cancellation_is_sticky_next_suspension_fails_again(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, try_parker, .f = f);
    step(loop);
    assert_int_equal(weft_future_set_error(f, -EIO), 0);
    assert_int_equal(weft_task_cancel(t), 0); /* f is done: cannot be cancelled */
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_caught, -EIO);
    assert_int_equal(g_after, 1);
    assert_int_equal(g_fin_err, -ECANCELED);
    assert_int_equal(weft_loop_now(loop), 0); /* the sleep never ran */
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

/* S-TASK-6 (from the awaited side): a task awaiting another task that a
 * third party cancels, while itself not cancelled, gets -ECANCELED as a
 * plain, catchable error and carries on. */
static void test_awaited_task_cancelled_by_third_party_is_catchable(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *b = WEFT_SPAWN(loop, parker, .f = f);
    weft_task *a = WEFT_SPAWN(loop, awaiter, .t = weft_future_ref(b));
    step(loop);
    assert_int_equal(weft_task_cancel(b), 0);
    assert_int_equal(run(loop, a), 0);
    assert_int_equal(result_i(a), -ECANCELED);
    assert_int_equal(g_caught, -ECANCELED);
    assert_int_equal(weft_task_cancelling(a), 0);
    assert_true(weft_future_cancelled(b));
    weft_future_unref(f);
    weft_future_unref(a);
    weft_future_unref(b);
    finish(loop);
}

struct chain_awaiter {
    WEFT_FRAME(int);
    weft_task *t;
};

WEFT_ASYNC(chain_awaiter)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, self->t);
    WEFT_FINALLY;
    log_tag(100);
    WEFT_END;
}

/* S-TASK-6: cancelling a task that awaits another task cancels that task
 * too (its count goes up); the inner one unwinds first. */
static void test_cancel_propagates_to_awaited_task(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *b = WEFT_SPAWN(loop, parker, .f = f, .tag = 200);
    weft_task *a = WEFT_SPAWN(loop, chain_awaiter, .t = weft_future_ref(b));
    step(loop);
    assert_int_equal(weft_task_cancel(a), 0);
    assert_int_equal(weft_task_cancelling(b), 1);
    assert_int_equal(run(loop, a), -ECANCELED);
    assert_true(weft_future_cancelled(b));
    EXPECT_LOG(200, 100);
    weft_future_unref(f);
    weft_future_unref(a);
    weft_future_unref(b);
    finish(loop);
}

/* P4.6-23 (completion wins a tie): the awaited future completes, then the
 * task is cancelled before it resumes.  The value is delivered and the
 * cancellation lands at the next suspension.  Deliberate difference from
 * asyncio S-TASK-5a, where the result is lost. */
static void test_completion_wins_tie_with_cancel(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, parker, .f = f);
    step(loop);
    assert_int_equal(weft_future_set_int(f, 42), 0);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_false(weft_future_cancelled(f));
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(g_after, 1); /* the await returned... */
    assert_int_equal(g_val, 42);  /* ...with the value */
    assert_int_equal(g_fin_err, -ECANCELED);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

struct shielded {
    WEFT_FRAME(int);
    weft_future *f;
};

WEFT_ASYNC(shielded)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_shield(weft_future_ref(self->f)));
    g_after++;
    WEFT_FINALLY;
    g_fin++;
    WEFT_SLEEP(self, 1.0); /* moved on: parked on something else */
    g_t_ms = now_ms(task);
    g_fin_done++;
    WEFT_END;
}

/* P4.6-16 (stale wakeups): a future completing after its waiter was
 * cancelled and moved on wakes nothing - neither while the task waits on
 * something else nor after the task is freed (ASan/valgrind clean). */
static void test_stale_wakeup_after_cancel_is_ignored(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_future *g = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, shielded, .f = f);
    weft_task *u = WEFT_SPAWN(loop, shielded, .f = g);
    step(loop);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(weft_task_cancel(u), 0);
    step(loop); /* both unwind into FINALLY and park on their sleeps */
    assert_int_equal(g_fin, 2);
    assert_false(weft_future_done(f)); /* shielded */
    assert_int_equal(weft_future_set_int(f, 1), 0);
    step(loop);
    step(loop);
    assert_int_equal(g_fin_done, 0); /* no spurious resume of t */
    assert_int_equal(g_after, 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(run(loop, u), -ECANCELED);
    assert_int_equal(g_fin_done, 2);
    assert_int_equal(g_t_ms, 1000);
    weft_future_unref(t);
    weft_future_unref(u);
    assert_int_equal(weft_future_set_int(g, 2), 0); /* u is gone */
    step(loop);
    step(loop);
    weft_future_unref(f);
    weft_future_unref(g);
    finish(loop);
}

static int g_cb_runs;

static void count_done(weft_future *f, void *arg)
{
    (void)f, (void)arg;
    g_cb_runs++;
}

struct completes_own {
    WEFT_FRAME(int);
    weft_future *f;
    int seen_after_set, seen_after_await;
};

WEFT_ASYNC(completes_own)
{
    WEFT_BEGIN(self);
    weft_future_add_done_callback(self->f, count_done, NULL);
    weft_future_set_int(self->f, 5);
    self->seen_after_set = g_cb_runs + 10 * g_after;
    WEFT_AWAIT(self, weft_future_ref(self->f));
    self->seen_after_await = g_cb_runs + 10 * g_after;
    g_val = WEFT_RESULT(self).i;
    g_rc = self->seen_after_set * 100 + self->seen_after_await;
    WEFT_YIELD(self);
    WEFT_END;
}

/* S-FUT-7, P4.6-14 (callbacks never inline): a task completes a future it
 * is about to await.  Neither the future's done callback nor another task
 * parked on it runs inside set_result; the await returns the value at once
 * (done future: no suspension); they run in the next iteration. */
static void test_completing_awaited_future_runs_nothing_inline(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_cb_runs = 0;
    weft_future *f = weft_future_new(loop);
    weft_task *other = WEFT_SPAWN(loop, parker, .f = f);
    step(loop); /* other parks on f */
    weft_task *t = WEFT_SPAWN(loop, completes_own, .f = f);
    step(loop);                /* t: set, await (no suspension), yield */
    assert_int_equal(g_rc, 0); /* nothing ran inline: 0 after set, 0 after await */
    assert_int_equal(g_val, 5);
    assert_int_equal(g_cb_runs, 0);
    assert_int_equal(g_after, 0);
    step(loop);
    assert_int_equal(g_cb_runs, 1);
    assert_int_equal(g_after, 1);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(run(loop, other), 0);
    weft_future_unref(f);
    weft_future_unref(t);
    weft_future_unref(other);
    finish(loop);
}

/* =============================================================================
 * Failure reports (S-FUT-9, P4.6-13)
 * ========================================================================== */

struct failer {
    WEFT_FRAME(int);
};

WEFT_ASYNC(failer)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    AT_LINE(g_line, WEFT_THROW(self, -EIO));
    WEFT_END;
}

/* S-FUT-9, P4.6-13, task.h: a detached task (reference dropped at spawn)
 * that fails is reported exactly once through the error hook, when it
 * completes, with its name and file:line of the failure.  Deliberate
 * difference from asyncio: at completion, not at garbage collection. */
static void test_detached_failed_task_reported_once_at_completion(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, failer);
    assert_int_equal(weft_task_set_name(t, "doomed"), 0);
    weft_future_unref(t);
    step(loop); /* yield */
    assert_int_equal(g_hook.count, 0);
    step(loop); /* fails: reported now */
    assert_int_equal(g_hook.count, 1);
    assert_int_equal(g_hook.err, -EIO);
    assert_non_null(strstr(g_hook.msg, "doomed"));
    char where[512];
    snprintf(where, sizeof where, "%s:%d", __FILE__, g_line);
    assert_non_null(strstr(g_hook.msg, where));
    run_for(loop, 1.0);
    g_loop = NULL; /* destroyed here, not by finish() */
    assert_int_equal(weft_loop_destroy(loop), 0);
    assert_int_equal(g_hook.count, 1);
    assert_int_equal(alloc_live(), 0);
}

/* S-FUT-9, P4.6-13: a failure that is awaited is not reported. */
static void test_awaited_failed_task_is_not_reported(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *a = WEFT_SPAWN(loop, awaiter, .t = WEFT_SPAWN(loop, failer));
    assert_int_equal(run(loop, a), 0);
    assert_int_equal(result_i(a), -EIO);
    weft_future_unref(a);
    finish(loop);
    assert_int_equal(g_hook.count, 0);
}

/* S-FUT-9, P4.6-13: a failure whose result is queried is not reported. */
static void test_queried_failed_task_is_not_reported(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, failer);
    run_for(loop, 1.0);
    assert_true(weft_future_done(t));
    assert_int_equal(weft_future_error(t), -EIO);
    weft_future_unref(t);
    finish(loop);
    assert_int_equal(g_hook.count, 0);
}

/* S-FUT-9, P4.6-13 (future.h "no 'never retrieved' report"): a failed task
 * whose reference was kept, then dropped without retrieving the outcome, is
 * reported once, on release. */
static void test_failed_task_dropped_unretrieved_is_reported_once(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, failer);
    assert_int_equal(weft_task_set_name(t, "forgotten"), 0);
    run_for(loop, 1.0);
    assert_true(weft_future_done(t));
    assert_int_equal(g_hook.count, 0); /* still referenced: may be retrieved */
    weft_future_unref(t);
    assert_int_equal(g_hook.count, 1);
    assert_int_equal(g_hook.err, -EIO);
    assert_non_null(strstr(g_hook.msg, "forgotten"));
    finish(loop);
    assert_int_equal(g_hook.count, 1);
}

/* ---- dump ---------------------------------------------------------------------------------- */

struct dleaf {
    WEFT_FRAME(int);
    weft_future *f;
    int at;
};

WEFT_ASYNC(dleaf)
{
    WEFT_BEGIN(self);
    AT_LINE(self->at, WEFT_AWAIT(self, weft_future_ref(self->f)));
    g_line = self->at;
    WEFT_END;
}

struct dmid {
    WEFT_FRAME(int);
    weft_future *f;
    struct dleaf l;
};

WEFT_ASYNC(dmid)
{
    WEFT_BEGIN(self);
    WEFT_CALL(self, dleaf, &self->l, .f = self->f);
    WEFT_END;
}

struct droot {
    WEFT_FRAME(int);
    weft_future *f;
    struct dmid m;
};

static struct droot *g_droot;

WEFT_ASYNC(droot)
{
    WEFT_BEGIN(self);
    g_droot = self;
    WEFT_CALL(self, dmid, &self->m, .f = self->f);
    WEFT_END;
}

/* P4.6-26: weft_loop_dump_tasks prints the task's name, "waiting", and its
 * chain of inline frames root -> leaf with the file:line of the leaf's
 * WEFT_AWAIT. */
static void test_dump_tasks_shows_name_state_line_and_chain(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_task *t = WEFT_SPAWN(loop, droot, .f = f);
    assert_int_equal(weft_task_set_name(t, "dumpee"), 0);
    step(loop);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    assert_int_equal(weft_loop_dump_tasks(loop, tmp), 1);
    char buf[4096];
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
    assert_non_null(strstr(buf, "dumpee"));
    assert_non_null(strstr(buf, "waiting"));
    char where[512];
    snprintf(where, sizeof where, "%s:%d", __FILE__, g_droot->m.l.at);
    assert_non_null(strstr(buf, where));
    const char *r = strstr(buf, "droot"), *m = strstr(buf, "dmid"), *l = strstr(buf, "dleaf");
    assert_non_null(r);
    assert_non_null(m);
    assert_non_null(l);
    assert_true(r < m && m < l);
    assert_int_equal(weft_loop_dump_tasks(NULL, stdout), 0);
    assert_int_equal(weft_future_set_int(f, 0), 0);
    assert_int_equal(run(loop, t), 0);
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

/* =============================================================================
 * Spawn options: name, eager start (asyncio 3.12 eager_task_factory)
 * ========================================================================== */

/* Records the current task, then returns v at once, or after n yields. */
struct eager_co {
    WEFT_FRAME(int);
    int n, v, tag;
    int i;
};

static weft_task *g_eager_cur;

WEFT_ASYNC(eager_co)
{
    WEFT_BEGIN(self);
    g_eager_cur = weft_current_task(weft_task_loop(task));
    log_tag(self->tag);
    for (self->i = 0; self->i < self->n; self->i++)
        WEFT_YIELD(self);
    log_tag(self->tag + 1);
    WEFT_RETURN(self, self->v);
    WEFT_END;
}

/* An eager task that never suspends is finished when WEFT_SPAWN_OPTS
 * returns: it ran as the current task, never went through the ready queue,
 * and its value is there. */
static void test_eager_spawn_that_never_suspends_returns_done_task(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_spawn_options o = {.eager = true};
    uint64_t before = stats(loop).callbacks;
    weft_task *t = WEFT_SPAWN_OPTS(loop, &o, eager_co, .v = 5, .tag = 10);
    assert_non_null(t);
    assert_true(weft_future_done(t));
    assert_ptr_equal(g_eager_cur, t);
    assert_null(weft_current_task(loop)); /* restored: nothing runs now */
    weft_value v = {0};
    assert_int_equal(weft_future_result(t, &v), 0);
    assert_int_equal(v.i, 5);
    EXPECT_LOG(10, 11);
    assert_int_equal(stats(loop).callbacks, before); /* no loop iteration, no callback */
    assert_int_equal(weft_all_tasks(loop, NULL, 0), 0);
    weft_future_unref(t);
    finish(loop);
}

/* An eager task runs until its first suspension inside the spawn, then
 * goes on from the loop like any task. */
static void test_eager_spawn_runs_until_first_suspension(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_spawn_options o = {.eager = true, .name = "eager-one"};
    weft_task *t = WEFT_SPAWN_OPTS(loop, &o, eager_co, .n = 2, .v = 3, .tag = 20);
    assert_non_null(t);
    EXPECT_LOG(20);
    assert_false(weft_future_done(t));
    assert_string_equal(weft_task_name(t), "eager-one");
    assert_int_equal(run(loop, t), 0);
    EXPECT_LOG(20, 21);
    weft_future_unref(t);
    finish(loop);
}

/* Eager spawn from inside another task's step: the child's first step runs
 * inside the parent's, and the parent is the current task again after it
 * (its own step goes on). */
struct eager_parent {
    WEFT_FRAME(int);
    weft_task *child;
    weft_task *cur_after;
};

WEFT_ASYNC(eager_parent)
{
    WEFT_BEGIN(self);
    log_tag(1);
    {
        weft_spawn_options o = {.eager = true};
        self->child = WEFT_SPAWN_OPTS(weft_task_loop(task), &o, eager_co, .n = 1, .tag = 2);
    }
    self->cur_after = weft_current_task(weft_task_loop(task));
    log_tag(4);
    WEFT_AWAIT(self, self->child);
    log_tag(5);
    WEFT_RETURN(self, self->cur_after == task);
    WEFT_END;
}

static void test_eager_spawn_inside_a_task_runs_child_first_step_inline(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, eager_parent);
    assert_int_equal(run(loop, t), 0);
    EXPECT_LOG(1, 2, 4, 3, 5);
    weft_value v = {0};
    assert_int_equal(weft_future_result(t, &v), 0);
    assert_int_equal(v.i, 1); /* the parent was current again after the spawn */
    weft_future_unref(t);
    finish(loop);
}

/* Options: NULL opts is plain WEFT_SPAWN; a name is set at spawn; a name
 * that cannot be stored (allocation failure) refuses the spawn with
 * -ENOMEM and runs nothing. */
static void test_spawn_options_name_and_failures(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    wt_warm(loop);
    weft_task *t = WEFT_SPAWN_OPTS(loop, NULL, eager_co, .tag = 30);
    assert_non_null(t);
    assert_int_equal(g_nlog, 0); /* queued, not run */
    assert_string_equal(weft_task_name(t), "eager_co");
    weft_future_unref(t);
    weft_spawn_options o = {.name = "named"};
    int failures = 0;
    for (long k = 1;; k++) {
        alloc_fail_at(alloc_calls() + k);
        weft_task *n = WEFT_SPAWN_OPTS(loop, &o, eager_co, .tag = 40);
        alloc_fail_at(0);
        if (n) {
            assert_string_equal(weft_task_name(n), "named");
            weft_future_unref(n);
            break;
        }
        failures++;
        assert_int_equal(weft_last_error(), -ENOMEM);
    }
    assert_true(failures >= 1);
    drain(loop);
    EXPECT_LOG(30, 31, 40, 41); /* the refused spawns ran nothing */
    assert_null(WEFT_SPAWN_OPTS(NULL, &o, eager_co));
    assert_int_equal(weft_last_error(), -EINVAL);
    finish(loop);
}

/* =============================================================================
 * WEFT_RUN (S-RUN-1, S-RUN-2)
 * ========================================================================== */

struct lingerer {
    WEFT_FRAME(int);
};

WEFT_ASYNC(lingerer)
{
    WEFT_BEGIN(self);
    g_body++;
    WEFT_SLEEP(self, 3600.0);
    g_after++;
    WEFT_FINALLY;
    g_fin++;
    WEFT_SLEEP(self, 0.5); /* cleanup that awaits */
    g_fin_done++;
    WEFT_END;
}

/* =============================================================================
 * run_until_complete on a coroutine, and weft_exit (asyncio's SystemExit)
 * ========================================================================== */

/* WEFT_RUN_UNTIL_COMPLETE spawns, runs and drops the task: its value, its
 * error, -EBUSY inside a running loop, WEFT_ECLOSED on a closed loop. */
static void test_run_until_complete_on_a_coroutine(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_value v = {0};
    assert_int_equal(WEFT_RUN_UNTIL_COMPLETE(loop, &v, worker, .n = 2, .v = 9), 0);
    assert_int_equal(v.i, 9);
    assert_int_equal(WEFT_RUN_UNTIL_COMPLETE(loop, NULL, worker, .fail = -EIO), -EIO);
    assert_int_equal(g_hook.count, 0); /* the caller got the error: no report */
    assert_int_equal(WEFT_RUN_UNTIL_COMPLETE(NULL, NULL, worker), -EINVAL);
    assert_int_equal(weft_all_tasks(loop, NULL, 0), 0);
    finish(loop);
    weft_loop *closed = NULL;
    assert_int_equal(weft_loop_new(&closed, NULL), 0);
    assert_int_equal(weft_loop_close(closed), 0);
    assert_int_equal(WEFT_RUN_UNTIL_COMPLETE(closed, NULL, worker), WEFT_ECLOSED);
    assert_int_equal(weft_loop_destroy(closed), 0);
}

/* A task that exits: weft_exit stops the loop, WEFT_RUN cancels every
 * other task, lets their FINALLY (with its awaits) run, and returns the
 * status. */
struct exiter {
    WEFT_FRAME(int);
    int status, how; /* how: 0 = weft_exit then return, 1 = WEFT_EXIT */
};

WEFT_ASYNC(exiter)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    weft_future_unref(WEFT_SPAWN(loop, lingerer));
    WEFT_YIELD(self); /* the lingerer starts and parks */
    if (self->how == 1)
        WEFT_EXIT(self, self->status);
    assert_int_equal(weft_exit(loop, self->status), 0);
    assert_int_equal(weft_exit(loop, 99), 0); /* the first request wins */
    g_after++;
    WEFT_SLEEP(self, 10); /* the loop stops before this ends */
    g_after += 100;
    WEFT_FINALLY;
    g_fin++;
    g_fin_err = self->co.err;
    WEFT_END;
}

static void test_weft_exit_stops_run_and_returns_the_status(void **state)
{
    (void)state;
    weft_loop_options o = loop_options(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
    assert_int_equal(WEFT_RUN(&o, NULL, exiter, .status = 3), 3);
    assert_int_equal(g_after, 1);      /* went on to its suspension, not past it */
    assert_int_equal(g_fin, 2);        /* its cleanup and the lingerer's ran */
    assert_int_equal(g_fin_done, 1);   /* the lingerer's cleanup awaited and finished */
    assert_int_equal(g_fin_err, -ECANCELED);
    assert_int_equal(alloc_live(), 0);
    assert_int_equal(g_hook.count, 0);
}

static void test_weft_exit_macro_unwinds_at_once(void **state)
{
    (void)state;
    weft_loop_options o = loop_options(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
    assert_int_equal(WEFT_RUN(&o, NULL, exiter, .status = 0, .how = 1), 0);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_fin, 2);
    assert_int_equal(g_fin_err, -ECANCELED);
    assert_int_equal(alloc_live(), 0);
}

/* On a loop run by hand: run_until_complete returns WEFT_ESTATE, the
 * request is visible and can be cleared; bad arguments are refused. */
static void test_weft_exit_on_a_loop_run_by_hand(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, exiter, .status = 7);
    assert_int_equal(run(loop, t), WEFT_ESTATE);
    int st = -1;
    assert_true(weft_exit_requested(loop, &st));
    assert_int_equal(st, 7);
    weft_exit_clear(loop);
    assert_false(weft_exit_requested(loop, NULL));
    assert_int_equal(weft_exit(loop, -1), -EINVAL);
    assert_int_equal(weft_exit(NULL, 0), -EINVAL);
    assert_false(weft_exit_requested(NULL, NULL));
    assert_int_equal(weft_future_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    weft_future_unref(t);
    drain(loop);
    finish(loop);
}

/* A task whose cleanup outlasts WEFT_RUN's grace period (5 s of loop
 * time): the shutdown gives up, reports it (WEFT_REPORT_SHUTDOWN, naming
 * the task and where it waits, the text built through the loop's
 * allocator), releases it, and frees everything. */
struct stubborn {
    WEFT_FRAME(int);
};

WEFT_ASYNC(stubborn)
{
    WEFT_BEGIN(self);
    WEFT_SLEEP(self, 3600.0);
    WEFT_FINALLY;
    WEFT_SLEEP(self, 60.0); /* far past the grace period */
    g_fin_done++;
    WEFT_END;
}

struct stubborn_main {
    WEFT_FRAME(int);
};

static char g_shutdown_msg[2048];

static void shutdown_hook(weft_loop *loop, const weft_report *r, void *ud)
{
    record_report(loop, r, ud);
    if (r->kind == WEFT_REPORT_SHUTDOWN)
        snprintf(g_shutdown_msg, sizeof g_shutdown_msg, "%s", r->message);
}

WEFT_ASYNC(stubborn_main)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    weft_loop_set_report_hook(loop, shutdown_hook, NULL);
    {
        weft_spawn_options o = {.name = "stubborn-one"};
        weft_future_unref(WEFT_SPAWN_OPTS(loop, &o, stubborn));
    }
    WEFT_YIELD(self);
    WEFT_END;
}

static void test_run_shutdown_gives_up_after_grace_and_reports(void **state)
{
    (void)state;
    weft_loop_options o = loop_options(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
    assert_int_equal(WEFT_RUN(&o, NULL, stubborn_main), 0);
    assert_int_equal(g_fin_done, 0); /* its cleanup never finished */
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_SHUTDOWN], 1);
    assert_non_null(strstr(g_shutdown_msg, "stubborn-one"));
    assert_non_null(strstr(g_shutdown_msg, "(finally)")); /* where it waits */
    assert_true(g_hook.by_kind[WEFT_REPORT_RELEASED] >= 1);
    assert_int_equal(alloc_live(), 0);
}

enum { RUN_VALUE, RUN_THROW, RUN_LEFTOVERS, RUN_NESTED };

/* Runs in the iteration after main completed (S-LOOP-12): the task it
 * spawns has not started when WEFT_RUN cancels the leftovers. */
static void spawn_late_lingerer(void *loop)
{
    weft_future_unref(WEFT_SPAWN((weft_loop *)loop, lingerer));
}

struct run_main {
    WEFT_FRAME(int);
    int mode;
};

WEFT_ASYNC(run_main)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    weft_loop_set_report_hook(loop, record_report, NULL);
    if (self->mode == RUN_THROW)
        WEFT_THROW(self, -EPROTO);
    if (self->mode == RUN_LEFTOVERS) {
        weft_future_unref(WEFT_SPAWN(loop, lingerer));
        weft_future_unref(WEFT_SPAWN(loop, lingerer));
        WEFT_YIELD(self); /* both start and park */
        weft_call_soon(loop, spawn_late_lingerer, loop, NULL);
    }
    if (self->mode == RUN_NESTED) {
        g_rc = WEFT_RUN(NULL, NULL, worker);
        g_caught = weft_loop_run_until_complete(loop, task);
    }
    WEFT_RETURN(self, 7);
    WEFT_END;
}

/* S-RUN-2: WEFT_RUN returns main's error code (0) and stores its value;
 * the loop it made is gone (every block freed). */
static void test_run_returns_main_value(void **state)
{
    (void)state;
    weft_loop_options o = loop_options(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
    weft_value v = {0};
    assert_int_equal(WEFT_RUN(&o, &v, run_main, .mode = RUN_VALUE), 0);
    assert_int_equal(v.i, 7);
    assert_int_equal(alloc_live(), 0);
    assert_int_equal(g_hook.count, 0);
}

/* S-RUN-2: main's error is WEFT_RUN's return value; *out is untouched. */
static void test_run_returns_main_error(void **state)
{
    (void)state;
    weft_loop_options o = loop_options(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
    weft_value v = {.i = 99};
    assert_int_equal(WEFT_RUN(&o, &v, run_main, .mode = RUN_THROW), -EPROTO);
    assert_int_equal(v.i, 99);
    assert_int_equal(alloc_live(), 0);
    assert_int_equal(g_hook.count, 0); /* WEFT_RUN observed it */
}

/* S-RUN-2: after main, every task still pending is cancelled and waited
 * for (their FINALLY runs, awaits included, also for one that never
 * started); their cancellation is not reported; the loop is closed and
 * freed. */
static void test_run_cancels_leftovers_and_waits_for_their_finally(void **state)
{
    (void)state;
    weft_loop_options o = loop_options(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
    weft_value v = {0};
    assert_int_equal(WEFT_RUN(&o, &v, run_main, .mode = RUN_LEFTOVERS), 0);
    assert_int_equal(v.i, 7);
    assert_int_equal(g_body, 2);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_fin, 3);
    assert_int_equal(g_fin_done, 3);
    assert_int_equal(g_hook.count, 0);
    assert_int_equal(alloc_live(), 0);
}

/* S-RUN-1, S-LOOP-12: WEFT_RUN and run_until_complete from inside a
 * running loop return -EBUSY (and run nothing). */
static void test_run_and_run_until_complete_nested_return_ebusy(void **state)
{
    (void)state;
    weft_loop_options o = loop_options(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
    assert_int_equal(WEFT_RUN(&o, NULL, run_main, .mode = RUN_NESTED), 0);
    assert_int_equal(g_rc, -EBUSY);
    assert_int_equal(g_caught, -EBUSY);
    assert_int_equal(alloc_live(), 0);
}

/* ---- run_until_complete (S-LOOP-12) --------------------------------------------------- */

static void log_and_chain(void *arg)
{
    log_tag((int)(intptr_t)arg);
    /* queued during the extra iteration: must not run before return */
    weft_call_soon(weft_running_loop(), log_cb, (void *)(intptr_t)((int)(intptr_t)arg + 1), NULL);
}

struct last_step_schedules {
    WEFT_FRAME(int);
};

WEFT_ASYNC(last_step_schedules)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    weft_call_soon(weft_task_loop(task), log_and_chain, (void *)(intptr_t)10, NULL);
    WEFT_END;
}

/* S-LOOP-12: run_until_complete(task) runs one more iteration after the
 * task completes: a callback queued by its last step runs before it
 * returns; one queued during that extra iteration does not. */
static void test_run_until_complete_task_runs_one_more_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, last_step_schedules);
    assert_int_equal(run(loop, t), 0);
    EXPECT_LOG(10);
    step(loop);
    EXPECT_LOG(10, 11);
    weft_future_unref(t);
    finish(loop);
}

static weft_future *g_fut;

static void complete_then_schedule(void *arg)
{
    (void)arg;
    weft_future_set_int(g_fut, 3);
    weft_call_soon(weft_running_loop(), log_and_chain, (void *)(intptr_t)20, NULL);
}

/* S-LOOP-12 for a plain future: completed by a callback that then queues
 * another; that one runs before run_until_complete returns (one more
 * iteration), what it queues does not.  Returns the future's error (0). */
static void test_run_until_complete_future_runs_one_more_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_fut = weft_future_new(loop);
    assert_int_equal(weft_call_later(loop, 1.0, complete_then_schedule, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, g_fut), 0);
    EXPECT_LOG(20);
    assert_int_equal(weft_loop_now(loop), 1000 * MS);
    step(loop);
    EXPECT_LOG(20, 21);
    weft_future_unref(g_fut);
    finish(loop);
}

/* S-LOOP-12: a future failing returns its error code. */
static void test_run_until_complete_returns_future_error(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_set_error(f, -ETIME), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, f), -ETIME);
    weft_future_unref(f);
    finish(loop);
}

/* S-LOOP-12 (checks closed first): on a closed loop, WEFT_ECLOSED. */
static void test_run_until_complete_on_closed_loop_fails(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, f), WEFT_ECLOSED);
    assert_false(weft_future_done(f));
    weft_future_unref(f);
    finish(loop);
}

static void stop_loop_cb(void *arg)
{
    weft_loop_stop(arg);
}

/* S-LOOP-12 ("Event loop stopped before Future completed"): WEFT_ESTATE. */
static void test_run_until_complete_stopped_early_returns_estate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_call_soon(loop, stop_loop_cb, loop, NULL), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, f), WEFT_ESTATE);
    assert_false(weft_future_done(f));
    weft_future_unref(f);
    finish(loop);
}

/* =============================================================================
 * Allocation failures (STYLE: SQLite-style injection)
 * ========================================================================== */

/* common.h "-ENOMEM ... survives": WEFT_SPAWN whose allocation fails
 * returns NULL with weft_last_error() == -ENOMEM, leaks nothing, and the
 * loop keeps working. */
static void test_spawn_enomem_returns_null_without_leak(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    wt_warm(loop);
    long live = alloc_live();
    alloc_fail_at(alloc_calls() + 1);
    assert_null(WEFT_SPAWN(loop, worker));
    assert_int_equal(weft_last_error(), -ENOMEM);
    assert_int_equal(alloc_live(), live);
    assert_int_equal(weft_all_tasks(loop, NULL, 0), 0);
    weft_task *t = WEFT_SPAWN(loop, worker, .v = 2);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 2);
    weft_future_unref(t);
    finish(loop);
}

struct oom_sleeper {
    WEFT_FRAME(int);
};

WEFT_ASYNC(oom_sleeper)
{
    WEFT_BEGIN(self);
    alloc_fail_all(true);
    WEFT_SLEEP(self, 1.0); /* its constructor fails: awaiting NULL */
    g_after++;
    WEFT_FINALLY;
    alloc_fail_all(false);
    g_fin_err = self->co.err;
    WEFT_END;
}

/* future.h "awaiting NULL fails with that error": a coroutine awaiting a
 * constructor that ran out of memory unwinds with -ENOMEM. */
static void test_await_of_failed_constructor_unwinds_with_enomem(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, oom_sleeper);
    assert_int_equal(run(loop, t), -ENOMEM);
    assert_int_equal(g_after, 0);
    assert_int_equal(g_fin_err, -ENOMEM);
    weft_future_unref(t);
    finish(loop);
}

struct oom_main {
    WEFT_FRAME(int);
    weft_task *kids[3], *cur;
    int i, e, sum;
};

WEFT_ASYNC(oom_main)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < 3; self->i++)
        self->kids[self->i] = WEFT_SPAWN(weft_task_loop(task), worker, .n = self->i, .v = 1);
    WEFT_SLEEP(self, 0.5);
    for (self->i = 0; self->i < 3; self->i++) {
        self->cur = self->kids[self->i];
        self->kids[self->i] = NULL; /* the await takes the reference */
        WEFT_AWAIT(self, self->cur);
        self->sum += (int)WEFT_RESULT(self).i;
    }
    WEFT_RETURN(self, self->sum);
    WEFT_FINALLY;
    for (self->i = 0; self->i < 3; self->i++) {
        if (!self->kids[self->i])
            continue;
        weft_task_cancel(self->kids[self->i]);
        self->cur = self->kids[self->i];
        self->kids[self->i] = NULL;
        WEFT_TRY_AWAIT(self, self->cur, self->e);
    }
    WEFT_END;
}

/* STYLE (failure injection at every allocation site): a small program
 * (spawn, sleep, await) run with the Nth allocation failing, for every N,
 * ends with success or -ENOMEM and leaks nothing. */
static void test_every_allocation_failure_is_survived(void **state)
{
    (void)state;
    for (long n = 1; n < 200; n++) {
        alloc_reset();
        alloc_fail_at(n);
        weft_loop_options o = loop_options(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
        weft_loop *loop = NULL;
        int err = weft_loop_new(&loop, &o);
        if (err) {
            assert_int_equal(err, -ENOMEM);
            assert_int_equal(alloc_live(), 0);
            continue;
        }
        weft_loop_set_report_hook(loop, record_report, NULL);
        weft_task *t = WEFT_SPAWN(loop, oom_main);
        if (!t) {
            assert_int_equal(weft_last_error(), -ENOMEM);
            finish(loop);
            continue;
        }
        err = weft_loop_run_until_complete(loop, t);
        assert_true(err == 0 || err == -ENOMEM);
        if (err == 0)
            assert_int_equal(result_i(t), 3);
        weft_future_unref(t);
        finish(loop);
        if (alloc_calls() < n) /* no allocation failed this time: all covered */
            return;
    }
    fail_msg("the scenario needs more than 200 allocations");
}

/* =============================================================================
 * Lag reports
 * ========================================================================== */

/* Reports naming the task under test (others, e.g. a first run under
 * valgrind being slow, are ignored). */
static struct {
    int count;
    char what[256];
    weft_cb *fn;
    void *arg;
} g_lag;

static void lag_hook(weft_loop *loop, const weft_report *r, void *ud)
{
    (void)loop, (void)ud;
    if (r->kind != WEFT_REPORT_SLOW || !strstr(r->message, "sluggish"))
        return;
    g_lag.count++;
    snprintf(g_lag.what, sizeof g_lag.what, "%s", r->message);
    g_lag.fn = r->fn;
    g_lag.arg = r->arg;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct hog {
    WEFT_FRAME(int);
};

WEFT_ASYNC(hog)
{
    WEFT_BEGIN(self);
    /* one step only, busy until the watchdog has flagged it as slow (a
     * 30 s guard): the test waits for the event, never for a duration */
    for (int64_t guard = mono_ns() + 30 * SEC;
         !weft__lag_flagged(weft_task_loop(task)) && mono_ns() < guard;) {
    }
    WEFT_END;
}

/* loop.h report hook: a slow task step is reported (WEFT_REPORT_SLOW) with
 * the task's name in the message ("task '<name>'"), fn NULL and arg the
 * task. */
static void test_slow_task_step_lag_report_names_task(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    memset(&g_lag, 0, sizeof g_lag);
    assert_int_equal(weft_loop_set_report_hook(loop, lag_hook, NULL), 0);
    assert_int_equal(weft_loop_set_lag_threshold(loop, 1 * MS), 0);
    weft_task *t = WEFT_SPAWN(loop, hog);
    assert_int_equal(weft_task_set_name(t, "sluggish"), 0);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(g_lag.count, 1);
    assert_non_null(strstr(g_lag.what, "task 'sluggish'"));
    assert_null(g_lag.fn);
    assert_ptr_equal(g_lag.arg, t);
    weft_future_unref(t);
    finish(loop);
}

/* =============================================================================
 * Failure report of an error raised in a frame defined in another file
 * ========================================================================== */

static const char g_this_file[] = __FILE__;

struct near_child {
    WEFT_FRAME(int);
};

WEFT_ASYNC(near_child)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    AT_LINE(g_line, WEFT_THROW(self, -EIO));
    WEFT_END;
}

/* From here to the end of the file __FILE__ is "root_elsewhere.c": the
 * root coroutine below stands for one defined in another translation unit
 * (cmocka reports the lines that follow under that name too). */
#line 1 "root_elsewhere.c"
struct far_root {
    WEFT_FRAME(int);
    struct near_child c;
};

WEFT_ASYNC(far_root)
{
    WEFT_BEGIN(self);
    WEFT_CALL(self, near_child, &self->c);
    WEFT_END;
}

/* task.h "reported ... with its name and the line it failed at": the
 * file:line is where the error was raised (the child's file), not the root
 * coroutine's file with the child's line number. */
static void test_failure_report_names_file_of_failing_frame(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future_unref(WEFT_SPAWN(loop, far_root));
    run_for(loop, 1.0);
    assert_int_equal(g_hook.count, 1);
    char where[512];
    snprintf(where, sizeof where, "%s:%d", g_this_file, g_line);
    if (!strstr(g_hook.msg, where))
        fail_msg("report \"%s\" does not contain \"%s\"", g_hook.msg, where);
    finish(loop);
}

/* ---- main ------------------------------------------------------------------------------ */


/* =============================================================================
 * Regressions (issue 7)
 * ========================================================================== */

/* Defect: WEFT_RUN's shutdown stopped iterating as soon as no task was
 * pending, so callbacks queued by the last completions never ran (and a
 * gather over children cancelled at shutdown leaked).  Now they run before
 * the loop is destroyed, and nothing leaks. */
static int g_shutdown_cb;

static void shutdown_cb(weft_future *f, void *arg)
{
    (void)arg;
    g_shutdown_cb += weft_future_cancelled(f) ? 1 : 100;
}

struct forever {
    WEFT_FRAME(int);
};

WEFT_ASYNC(forever)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_sleep(weft_task_loop(task), 3600));
    WEFT_END;
}

struct leaves_work {
    WEFT_FRAME(int);
};

WEFT_ASYNC(leaves_work)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    weft_task *a = WEFT_SPAWN(loop, forever), *b = WEFT_SPAWN(loop, forever);
    weft_future_add_done_callback(a, shutdown_cb, NULL);
    weft_future *g = weft_gather(loop, (weft_future *[]){weft_future_ref(a), weft_future_ref(b)}, 2, 0);
    weft_future_add_done_callback(g, shutdown_cb, NULL);
    weft_future_unref(g);
    weft_future_unref(a);
    weft_future_unref(b);
    WEFT_END;
}

static void test_run_shutdown_runs_callbacks_of_the_last_completions(void **state)
{
    (void)state;
    g_shutdown_cb = 0;
    weft_loop_options o = loop_options(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
    assert_int_equal(WEFT_RUN(&o, NULL, leaves_work), 0);
    /* a's callback (a cancelled: 1) and the gather's (children cancelled
     * by someone else are no failure: it succeeds, 100), although nobody
     * held the gather: the loop holds it while its children run */
    assert_int_equal(g_shutdown_cb, 101);
    assert_int_equal(g_hook.count, 0);
    assert_int_equal(alloc_live(), 0);
}

/* A cancellation that arrives while a frame's cleanup runs is masked until
 * the cleanup ends, then delivered: the frame ends with -ECANCELED (asyncio:
 * the CancelledError raised in a finally block propagates). */
struct cleanup_sleeps {
    WEFT_FRAME(int);
    int seen;
};

WEFT_ASYNC(cleanup_sleeps)
{
    WEFT_BEGIN(self);
    WEFT_FINALLY;
    WEFT_AWAIT(self, weft_sleep(weft_task_loop(task), 1.0)); /* masked: not interrupted */
    self->seen = self->co.err;
    WEFT_END;
}

struct calls_cleanup {
    WEFT_FRAME(int);
    struct cleanup_sleeps c;
};

WEFT_ASYNC(calls_cleanup)
{
    WEFT_BEGIN(self);
    WEFT_CALL(self, cleanup_sleeps, &self->c);
    log_tag(1); /* not reached: the child ends cancelled */
    WEFT_FINALLY;
    log_tag(self->co.err == -ECANCELED ? 2 : 3);
    WEFT_END;
}

static void cancel_cb(void *t)
{
    weft_task_cancel(t);
}

static void test_cancel_masked_by_cleanup_is_delivered_as_it_ends(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, calls_cleanup);
    assert_int_equal(weft_call_later_ns(loop, 500 * MS, cancel_cb, t, NULL), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(weft_loop_now(loop), 1 * SEC); /* the cleanup's sleep ran to the end */
    EXPECT_LOG(2);
    weft_future_unref(t);
    finish(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* spawning */
        T(test_spawn_copies_designated_initializer_args),
        T(test_eager_spawn_that_never_suspends_returns_done_task),
        T(test_eager_spawn_runs_until_first_suspension),
        T(test_eager_spawn_inside_a_task_runs_child_first_step_inline),
        T(test_spawn_options_name_and_failures),
        T(test_run_until_complete_on_a_coroutine),
        T(test_weft_exit_stops_run_and_returns_the_status),
        T(test_weft_exit_macro_unwinds_at_once),
        T(test_weft_exit_on_a_loop_run_by_hand),
        T(test_run_shutdown_gives_up_after_grace_and_reports),
        T(test_spawn_queues_first_step_spawner_continues),
        T(test_spawn_on_closed_loop_fails_eclosed),
        T(test_spawn_into_storage_allocates_nothing),
        /* awaiting tasks */
        T(test_await_task_delivers_value_or_error),
        T(test_await_done_task_does_not_suspend),
        T(test_multiple_awaiters_of_one_task_all_resume),
        T(test_await_self_or_foreign_future_fails),
        T(test_task_refuses_set_result),
        /* names and introspection */
        T(test_task_name_defaults_to_coroutine_name),
        T(test_set_name_renames_pending_task),
        T(test_set_name_survives_completion),
        T(test_current_task_inside_and_outside),
        T(test_steps_alternate_between_root_and_child_frames),
        T(test_all_tasks_lists_pending_tasks),
        T(test_task_loop_is_owning_loop),
        /* cancellation in every state */
        T(test_cancel_before_start_skips_body_runs_finally_once),
        T(test_cancel_while_queued_fails_resumed_yield),
        T(test_cancel_parked_task_cancels_awaited_future),
        T(test_future_cancel_on_task_is_a_request),
        T(test_cancel_three_frames_deep_unwinds_innermost_first),
        T(test_cancel_inside_finally_is_masked_cleanup_completes),
        T(test_cancel_after_done_returns_estate),
        T(test_cancel_twice_counts_two_delivers_once),
        T(test_self_cancel_then_return_ends_cancelled),
        T(test_self_cancel_then_await_cancels_that_future),
        T(test_cancelling_and_uncancel_count_requests),
        T(test_uncancel_to_zero_withdraws_pending_cancellation),
        T(test_uncancel_in_finally_lets_parent_catch_and_succeed),
        /* sticky cancellation, ties, wakeups */
        T(test_try_await_does_not_swallow_own_cancellation),
        T(test_cancellation_is_sticky_next_suspension_fails_again),
        T(test_awaited_task_cancelled_by_third_party_is_catchable),
        T(test_cancel_propagates_to_awaited_task),
        T(test_completion_wins_tie_with_cancel),
        T(test_stale_wakeup_after_cancel_is_ignored),
        T(test_completing_awaited_future_runs_nothing_inline),
        /* failure reports and dump */
        T(test_detached_failed_task_reported_once_at_completion),
        T(test_awaited_failed_task_is_not_reported),
        T(test_queried_failed_task_is_not_reported),
        T(test_failed_task_dropped_unretrieved_is_reported_once),
        T(test_failure_report_names_file_of_failing_frame),
        T(test_dump_tasks_shows_name_state_line_and_chain),
        /* WEFT_RUN and run_until_complete */
        T(test_run_returns_main_value),
        T(test_run_returns_main_error),
        T(test_run_cancels_leftovers_and_waits_for_their_finally),
        T(test_run_and_run_until_complete_nested_return_ebusy),
        T(test_run_until_complete_task_runs_one_more_iteration),
        T(test_run_until_complete_future_runs_one_more_iteration),
        T(test_run_until_complete_returns_future_error),
        T(test_run_until_complete_on_closed_loop_fails),
        T(test_run_until_complete_stopped_early_returns_estate),
        /* allocation failures */
        T(test_spawn_enomem_returns_null_without_leak),
        T(test_await_of_failed_constructor_unwinds_with_enomem),
        T(test_every_allocation_failure_is_survived),
        /* lag */
        T(test_slow_task_step_lag_report_names_task),
        /* regressions */
        T(test_run_shutdown_runs_callbacks_of_the_last_completions),
        T(test_cancel_masked_by_cleanup_is_delivered_as_it_ends),
    };
    return RUN_TESTS(tests);
}
