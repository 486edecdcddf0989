/* tests/test_combinators.c - sleep, gather, wait, wait_for, shield,
 * as_completed, timeout scopes and task groups, one guarantee per test.
 *
 * Each test is named after the guarantee it pins (include/weft/
 * combinators.h) and cites the asyncio statement it mirrors (S-SLEEP,
 * S-GATHER, S-WAIT, S-WAITFOR, S-SHIELD, S-ASCOMP, S-TIMEOUT, S-TG in
 * shared/reference/asyncio-semantics.md, section 4).  Where weft
 * deliberately differs from asyncio (pain points P-4 and P-7, section 7),
 * the test says so and why.
 *
 * Time.  Every loop runs on the virtual clock (WEFT_LOOP_VIRTUAL_CLOCK):
 * time starts at 0, never moves while callbacks run, and jumps straight to
 * the next deadline when the loop is idle.  So the tests compare loop times
 * (integer nanoseconds) with ==, and "an hour" takes microseconds.
 *
 * Leaks.  Every loop uses a counting allocator; finish() lets the tasks
 * still running finish, destroys the loop and asserts that no block is
 * still live and that the error hook reported exactly what the test
 * expected.  WEFT_TEST_FILTER / WEFT_TEST_SKIP (globs) select tests.
 *
 * Shape.  A test builds its futures, spawns a small coroutine that awaits
 * them and writes what it saw into an `outcome` owned by the test, runs the
 * loop, and asserts on the outcome and on the event log (tag, error, time)
 * that the children's WEFT_FINALLY sections fill in.
 */
#include "weft_test.h"

#include <math.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- event log (weft_test.h): lookups ------------------------------------------ */

/* The event with this tag (it must exist exactly once). */
static const event *ev(int tag)
{
    const event *found = NULL;
    for (int i = 0; i < g_n; i++)
        if (g_ev[i].tag == tag) {
            assert_null(found);
            found = &g_ev[i];
        }
    assert_non_null(found);
    return found;
}

static bool has_ev(int tag)
{
    for (int i = 0; i < g_n; i++)
        if (g_ev[i].tag == tag)
            return true;
    return false;
}

/* ---- loops ------------------------------------------------------------------- */

/* Run until f is done; the caller keeps its reference. */
static int run_until_done(weft_loop *loop, weft_future *f)
{
    return weft_loop_run_until_complete(loop, f);
}

/* Nothing is left scheduled: after draining the ready queue, a stop timer
 * far in the future is the very next thing the loop reaches (one iteration,
 * one callback).  A forgotten timer (say, a cancelled hour-long sleep)
 * would cost an extra iteration and callback first. */
static void assert_nothing_scheduled(weft_loop *loop)
{
    for (int i = 0; i < 4; i++)
        step(loop);
    weft_loop_stats a = stats(loop);
    int64_t far = weft_loop_now(loop) + 1000000 * SEC;
    assert_int_equal(weft_call_at_ns(loop, far, stop_cb, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    weft_loop_stats b = stats(loop);
    assert_int_equal(weft_loop_now(loop), far);
    assert_int_equal(b.iterations - a.iterations, 1);
    assert_int_equal(b.callbacks - a.callbacks, 1);
}

/* Third parties, scheduled with call_later: they take the reference they
 * are given (and set_int_cb, weft_test.h). */
static void cancel_task_cb(void *t)
{
    assert_int_equal(weft_task_cancel(t), 0);
    weft_future_unref(t);
}

/* ---- fixtures ------------------------------------------------------------------ */

/* finish() lets the tasks still running finish first, and checks that the
 * error hook reported exactly g_hook.expect. */
static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 60, .check_reports = true, .drain = true});
    return 0;
}

/* ---- coroutines shared by the tests ---------------------------------------------- */

static int64_t now_of(weft_task *task)
{
    return weft_loop_now(weft_task_loop(task));
}

/* work: sleep d seconds (d < 0: no await at all; 0: a bare yield), yield
 * `yields` more times, then return v or fail with `fail`.  Its FINALLY
 * notes (tag, err) and may itself sleep `cleanup` seconds (cancellation is
 * masked there), then notes (tag + 1, err). */
struct work {
    WEFT_FRAME(int64_t);
    double d, cleanup;
    int64_t v;
    int fail, tag, yields, i;
};

WEFT_ASYNC(work)
{
    WEFT_BEGIN(self);
    if (self->d >= 0)
        WEFT_SLEEP(self, self->d);
    for (self->i = 0; self->i < self->yields; self->i++)
        WEFT_YIELD(self);
    if (self->fail)
        WEFT_THROW(self, self->fail);
    WEFT_RETURN(self, self->v);
    WEFT_FINALLY;
    if (self->tag)
        note(self->tag, self->co.err);
    if (self->cleanup > 0)
        WEFT_SLEEP(self, self->cleanup);
    if (self->tag && self->cleanup > 0)
        note(self->tag + 1, self->co.err);
    WEFT_END;
}

/* What an awaiting coroutine saw. */
typedef struct outcome {
    int e;            /* error of the await (0 = value) */
    weft_value v;     /* the value */
    int64_t at;       /* loop time right after the await */
    int cancelling;   /* weft_task_cancelling() right after the await */
    bool resumed;     /* got past the await */
    bool finished;    /* FINALLY ran */
    int fin_err;      /* the frame's error in FINALLY */
    int64_t fin_at;   /* loop time in FINALLY */
    bool expired;     /* timeout scope: weft_timeout_expired after exit */
    int64_t after_at; /* loop time after a further sleep */
    /* gather / wait results, as_completed rounds */
    size_t n;
    int rerr[8];
    int64_t rval[8];
    bool rdone[8];
    int64_t rat[8];
} outcome;

static void grab(outcome *out, const weft_results *r)
{
    assert_non_null(r);
    out->n = weft_results_count(r);
    assert_true(out->n <= 8);
    for (size_t i = 0; i < out->n; i++) {
        weft_value v = {.i = -1};
        out->rerr[i] = weft_results_get(r, i, &v);
        out->rval[i] = v.i;
        out->rdone[i] = weft_results_done(r, i);
    }
    assert_int_equal(weft_results_get(r, out->n, NULL), -ERANGE);
}

static weft_future *take(weft_future **slot)
{
    weft_future *f = *slot;
    *slot = NULL;
    return f;
}

/* await_it: await f (owned), record the outcome; with `results`, read the
 * weft_results value right after the await. */
struct await_it {
    WEFT_FRAME(int64_t);
    weft_future *f;
    outcome *out;
    bool results;
};

WEFT_ASYNC(await_it)
{
    WEFT_BEGIN(self);
    WEFT_TRY_AWAIT(self, take(&self->f), self->out->e);
    self->out->at = now_of(task);
    self->out->cancelling = weft_task_cancelling(task);
    self->out->resumed = true;
    if (!self->out->e) {
        self->out->v = WEFT_RESULT(self);
        if (self->results)
            grab(self->out, WEFT_RESULT(self).p);
    }
    WEFT_RETURN(self, self->out->v.i);
    WEFT_FINALLY;
    weft_future_unref(self->f); /* only if cancelled before the first step */
    self->out->finished = true;
    self->out->fin_err = self->co.err;
    self->out->fin_at = now_of(task);
    WEFT_END;
}

#define AWAIT_IT(loop, fut, outp, res) \
    WEFT_SPAWN(loop, await_it, .f = (fut), .out = (outp), .results = (res))

/* =============================================================================
 * sleep (S-SLEEP-1, S-SLEEP-2)
 * ========================================================================== */

struct sleeper {
    WEFT_FRAME(int);
};

WEFT_ASYNC(sleeper)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_sleep(weft_task_loop(task), 1.5));
    note(1, (int)WEFT_RESULT(self).i);
    WEFT_SLEEP(self, 2.25);
    note(2, 0);
    WEFT_AWAIT(self, weft_sleep_ns(weft_task_loop(task), 250 * MS));
    note(3, 0);
    WEFT_END;
}

/* S-SLEEP-1: a sleep completes (value 0) exactly at now + delay on the
 * loop clock; sleeps add up exactly. */
static void test_sleep_completes_at_exact_loop_time(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(run_task(loop, WEFT_SPAWN(loop, sleeper)), 0);
    assert_int_equal(ev(1)->now, 1500 * MS);
    assert_int_equal(ev(1)->err, 0); /* the value of a sleep is 0 */
    assert_int_equal(ev(2)->now, 3750 * MS);
    assert_int_equal(ev(3)->now, 4000 * MS);
    assert_int_equal(weft_loop_now(loop), 4000 * MS);
    finish(loop);
}

struct pinger {
    WEFT_FRAME(int);
    int base, i;
};

WEFT_ASYNC(pinger)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < 3; self->i++) {
        note(self->base + self->i, 0);
        WEFT_AWAIT(self, weft_sleep(weft_task_loop(task), 0));
    }
    WEFT_END;
}

/* S-SLEEP-2 (T21): sleep(0) is a bare yield that requeues the task at the
 * tail, so two tasks interleave strictly A0 B0 A1 B1 A2 B2, one step per
 * iteration, and time does not move. */
static void test_sleep_zero_interleaves_two_tasks_strictly(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *a = WEFT_SPAWN(loop, pinger, .base = 10);
    weft_task *b = WEFT_SPAWN(loop, pinger, .base = 20);
    assert_int_equal(run_task(loop, b), 0);
    assert_true(weft_future_done(a));
    weft_future_unref(a);
    EXPECT_TAGS(10, 20, 11, 21, 12, 22);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(g_ev[i].now, 0);
        assert_int_equal(g_ev[i].iter, g_ev[0].iter + (uint64_t)(i / 2));
    }
    finish(loop);
}

static void note_cb(void *tag)
{
    note((int)(intptr_t)tag, 0);
}

struct yielder {
    WEFT_FRAME(int);
};

WEFT_ASYNC(yielder)
{
    weft_loop *L = weft_task_loop(task);
    WEFT_BEGIN(self);
    weft_call_soon(L, note_cb, TAG(1), NULL);
    WEFT_AWAIT(self, weft_sleep(L, 0));
    note(2, 0);
    weft_call_soon(L, note_cb, TAG(3), NULL);
    WEFT_AWAIT(self, weft_sleep(L, -5.0));
    note(4, 0);
    WEFT_END;
}

/* S-SLEEP-1: a delay <= 0 resumes after every handle already queued (the
 * task goes to the tail of the ready queue); negative delays behave as 0. */
static void test_sleep_zero_resumes_after_handles_already_queued(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(run_task(loop, WEFT_SPAWN(loop, yielder)), 0);
    EXPECT_TAGS(1, 2, 3, 4);
    assert_int_equal(weft_loop_now(loop), 0);
    finish(loop);
}

/* asyncio.sleep(delay, result): the value comes back at now + delay; a
 * delay of 0 still carries it (at the next timer step); NaN is -EINVAL;
 * cancelling it is -ECANCELED; a closed loop refuses it. */
static void test_sleep_result_carries_its_value(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    assert_int_equal(
        run_task(loop, AWAIT_IT(loop, weft_sleep_result(loop, 2.0, (weft_value){.i = 7}), &o, false)),
        0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.v.i, 7);
    assert_int_equal(o.at, 2 * SEC);
    outcome z = {0};
    assert_int_equal(
        run_task(loop, AWAIT_IT(loop, weft_sleep_result(loop, 0, (weft_value){.d = 1.5}), &z, false)),
        0);
    assert_true(z.v.d == 1.5);
    assert_int_equal(z.at, 2 * SEC);
    assert_null(weft_sleep_result(loop, NAN, (weft_value){0}));
    assert_int_equal(weft_last_error(), -EINVAL);
    weft_future *f = weft_sleep_result(loop, 5.0, (weft_value){.i = 1});
    assert_non_null(f);
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(weft_future_error(f), -ECANCELED);
    weft_future_unref(f);
    assert_null(weft_sleep_result(NULL, 1.0, (weft_value){0}));
    assert_int_equal(weft_last_error(), -EINVAL);
    finish(loop);
    weft_loop *closed = NULL;
    assert_int_equal(weft_loop_new(&closed, NULL), 0);
    assert_int_equal(weft_loop_close(closed), 0);
    assert_null(weft_sleep_result(closed, 1.0, (weft_value){0}));
    assert_int_equal(weft_last_error(), WEFT_ECLOSED);
    assert_int_equal(weft_loop_destroy(closed), 0);
}

/* =============================================================================
 * fd readiness: weft_wait_readable / weft_wait_writable
 * ========================================================================== */

static void write_byte(void *arg)
{
    int fd = *(int *)arg;
    assert_int_equal(write(fd, "x", 1), 1);
}

/* A wait on a pipe's read end completes (value WEFT_READABLE) once a byte
 * arrives, at the loop time of the write, and exactly once: afterwards the
 * byte is still unread, the fd stays readable, and nothing else fires (the
 * registration is gone: a second wait can be made). */
static void test_wait_readable_completes_once_and_unregisters(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(weft_call_later(loop, 2.0, write_byte, &p[1], NULL), 0);
    outcome o = {0};
    assert_int_equal(run_task(loop, AWAIT_IT(loop, weft_wait_readable(loop, p[0]), &o, false)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.v.i, WEFT_READABLE);
    assert_int_equal(o.at, 2 * SEC);
    assert_int_equal(weft_remove_reader(loop, p[0]), -ENOENT); /* one-shot */
    step(loop);
    step(loop); /* still readable: nothing runs, nothing breaks */
    outcome again = {0};
    assert_int_equal(run_task(loop, AWAIT_IT(loop, weft_wait_readable(loop, p[0]), &again, false)), 0);
    assert_int_equal(again.v.i, WEFT_READABLE);
    assert_int_equal(again.at, 2 * SEC); /* at once: the byte is still there */
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    finish(loop);
    close(p[0]);
    close(p[1]);
}

/* Writable: a pipe with room is writable at once.  Readable and writable
 * waits on the two ends (or on one socket) coexist. */
static void test_wait_writable_and_readable_coexist(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    weft_future *r = weft_wait_readable(loop, sv[0]);
    weft_future *w = weft_wait_writable(loop, sv[0]);
    assert_non_null(r);
    assert_non_null(w);
    step(loop);
    assert_true(weft_future_done(w));
    assert_false(weft_future_done(r));
    assert_int_equal(write(sv[1], "y", 1), 1);
    step(loop);
    assert_true(weft_future_done(r));
    weft_value v = {0};
    assert_int_equal(weft_future_result(r, &v), 0);
    assert_int_equal(v.i, WEFT_READABLE);
    assert_int_equal(weft_future_result(w, &v), 0);
    assert_int_equal(v.i, WEFT_WRITABLE);
    weft_future_unref(r);
    weft_future_unref(w);
    finish(loop);
    close(sv[0]);
    close(sv[1]);
}

/* Cancelling a pending wait removes its registration at once (the fd can
 * then get a reader of its own); a second wait in the same direction, or
 * an fd with a reader, is -EBUSY (never replaced); bad input is refused. */
static void test_wait_readable_cancel_busy_and_bad_input(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    weft_future *f = weft_wait_readable(loop, p[0]);
    assert_non_null(f);
    assert_null(weft_wait_readable(loop, p[0]));
    assert_int_equal(weft_last_error(), -EBUSY);
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(weft_future_error(f), -ECANCELED);
    assert_int_equal(weft_remove_reader(loop, p[0]), -ENOENT);
    weft_future_unref(f);
    assert_int_equal(weft_add_reader(loop, p[0], write_byte, &p[1]), 0);
    assert_null(weft_wait_readable(loop, p[0]));
    assert_int_equal(weft_last_error(), -EBUSY);
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    assert_null(weft_wait_readable(loop, -1));
    assert_int_equal(weft_last_error(), -EBADF);
    int closed_fd = dup(p[0]);
    close(closed_fd);
    assert_null(weft_wait_writable(loop, closed_fd));
    assert_int_equal(weft_last_error(), -EBADF);
    assert_null(weft_wait_readable(NULL, p[0]));
    assert_int_equal(weft_last_error(), -EINVAL);
    finish(loop);
    close(p[0]);
    close(p[1]);
}

/* A task waiting for readability is cancelled: the wait is cancelled with
 * it and unregistered; allocation failure at each site leaves no
 * registration behind; a loop closed with a wait pending leaks nothing. */
static void test_wait_readable_task_cancel_enomem_and_close(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    wt_warm(loop);
    int p[2];
    assert_int_equal(pipe(p), 0);
    outcome o = {0};
    weft_task *t = AWAIT_IT(loop, weft_wait_readable(loop, p[0]), &o, false);
    step(loop);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run_task(loop, t), -ECANCELED);
    assert_false(o.resumed);
    assert_int_equal(o.fin_err, -ECANCELED);
    assert_int_equal(weft_remove_reader(loop, p[0]), -ENOENT);
    int failures = 0;
    for (long k = 1;; k++) {
        alloc_fail_at(alloc_calls() + k);
        weft_future *f = weft_wait_readable(loop, p[0]);
        alloc_fail_at(0);
        if (f) {
            weft_future_unref(f); /* held by the loop: still registered */
            break;
        }
        failures++;
        assert_int_equal(weft_last_error(), -ENOMEM);
        assert_int_equal(weft_remove_reader(loop, p[0]), -ENOENT);
    }
    (void)failures; /* the pool and the fd record may already exist: maybe none */
    finish(loop); /* closes with the wait pending: nothing leaks */
    close(p[0]);
    close(p[1]);
}

/* S-SLEEP-1 [3.13]: a NaN delay is -EINVAL (NULL with weft_last_error());
 * awaiting that NULL fails with -EINVAL. */
static void test_sleep_nan_is_einval(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_null(weft_sleep(loop, NAN));
    assert_int_equal(weft_last_error(), -EINVAL);
    outcome o = {0};
    assert_int_equal(run_task(loop, AWAIT_IT(loop, weft_sleep(loop, NAN), &o, false)), 0);
    assert_int_equal(o.e, -EINVAL);
    assert_int_equal(o.at, 0);
    finish(loop);
}

/* S-SLEEP-1, S-LOOP-9: cancelling a sleeping task drops its timer: the task
 * ends at once (t == 0), and the loop has nothing left to wait for - no
 * hour-long idle wait. */
static void test_cancelling_sleeping_task_drops_its_timer(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, work, .d = 3600, .tag = 10);
    step(loop); /* parked on its sleep */
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run_task(loop, t), -ECANCELED);
    assert_int_equal(weft_loop_now(loop), 0);
    assert_int_equal(ev(10)->err, -ECANCELED);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* loop.h: destroying a loop releases what is still pending ("Tasks still
 * pending are released and reported"): a task parked on a sleep, its sleep
 * future and the sleep's timer leave no block behind. */
static void test_destroying_loop_with_sleeping_task_releases_everything(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future_unref(WEFT_SPAWN(loop, work, .d = 10));
    step(loop); /* parked on its sleep */
    g_loop = NULL;
    assert_int_equal(weft_loop_destroy(loop), 0);
    assert_int_equal(g_hook.count, 1); /* "released while pending" */
    assert_int_equal(alloc_live(), 0);
}

/* =============================================================================
 * gather (S-GATHER-*)
 * ========================================================================== */

/* S-GATHER-1: the results come in argument order whatever the completion
 * order; the gather completes when the last child does. */
static void test_gather_results_in_argument_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *fs[] = {
        WEFT_SPAWN(loop, work, .d = 3, .v = 30),
        WEFT_SPAWN(loop, work, .d = 1, .v = 10),
        WEFT_SPAWN(loop, work, .d = 2, .v = 20),
    };
    outcome o = {0};
    assert_int_equal(run_task(loop, AWAIT_IT(loop, weft_gather(loop, fs, 3, 0), &o, true)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 3 * SEC);
    assert_int_equal(o.n, 3);
    int64_t want[] = {30, 10, 20};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o.rerr[i], 0);
        assert_int_equal(o.rval[i], want[i]);
        assert_true(o.rdone[i]);
    }
    finish(loop);
}

/* S-GATHER-2: gather of nothing is an already done future whose results
 * are empty (fs may be NULL then). */
static void test_gather_of_nothing_is_already_done(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *g1 = weft_gather(loop, NULL, 0, 0);
    weft_future *dummy[1] = {NULL};
    weft_future *g2 = weft_gather(loop, dummy, 0, WEFT_GATHER_ALL);
    weft_future *gs[] = {g1, g2};
    for (int i = 0; i < 2; i++) {
        assert_non_null(gs[i]);
        assert_int_equal(weft_future_state_of(gs[i]), WEFT_DONE);
        weft_value v;
        assert_int_equal(weft_future_result(gs[i], &v), 0);
        assert_non_null(v.p);
        assert_int_equal(weft_results_count(v.p), 0);
        weft_future_unref(gs[i]);
    }
    finish(loop);
}

/* S-GATHER-7 [3.12+]: children already done are accounted for at once; if
 * all are done the gather is returned already done (with a value, or with
 * the first failure in default mode). */
static void test_gather_of_done_children_is_already_done(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *a = weft_future_new(loop), *b = weft_future_new(loop);
    weft_future *c = weft_future_new(loop);
    assert_int_equal(weft_future_set_int(a, 1), 0);
    assert_int_equal(weft_future_set_int(b, 2), 0);
    assert_int_equal(weft_future_set_error(c, -EIO), 0);

    weft_future *ok =
        weft_gather(loop, (weft_future *[]){weft_future_ref(a), weft_future_ref(b)}, 2, 0);
    assert_true(weft_future_done(ok));
    weft_value v;
    assert_int_equal(weft_future_result(ok, &v), 0);
    assert_int_equal(weft_results_count(v.p), 2);
    weft_value e;
    assert_int_equal(weft_results_get(v.p, 1, &e), 0);
    assert_int_equal(e.i, 2);

    weft_future *bad =
        weft_gather(loop, (weft_future *[]){weft_future_ref(a), weft_future_ref(c)}, 2, 0);
    assert_true(weft_future_done(bad));
    assert_int_equal(weft_future_error(bad), -EIO);

    weft_future *all = weft_gather(loop, (weft_future *[]){weft_future_ref(a), weft_future_ref(c)},
                                   2, WEFT_GATHER_ALL);
    assert_true(weft_future_done(all));
    assert_int_equal(weft_future_result(all, &v), 0);
    assert_int_equal(weft_results_get(v.p, 1, NULL), -EIO);

    weft_future_unref(ok);
    weft_future_unref(bad);
    weft_future_unref(all);
    weft_future_unref(a);
    weft_future_unref(b);
    weft_future_unref(c);
    finish(loop);
}

/* S-GATHER-3: the first child to fail fails the gather with its error at
 * the time of that failure.  Deliberate difference (P-7): asyncio leaves
 * the siblings running; weft cancels them (their FINALLY runs with
 * -ECANCELED), so a failed gather leaves no orphan work behind. */
static void test_gather_first_failure_fails_at_once_and_cancels_siblings(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *kids[] = {
        WEFT_SPAWN(loop, work, .d = 5, .v = 1, .tag = 10),
        WEFT_SPAWN(loop, work, .d = 1, .fail = -EIO, .tag = 20),
        WEFT_SPAWN(loop, work, .d = 5, .v = 3, .tag = 30),
    };
    weft_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = weft_future_ref(kids[i]);
    outcome o = {0};
    assert_int_equal(run_task(loop, AWAIT_IT(loop, weft_gather(loop, fs, 3, 0), &o, false)), 0);
    assert_int_equal(o.e, -EIO);
    assert_int_equal(o.at, 1 * SEC);
    assert_int_equal(ev(10)->err, -ECANCELED);
    assert_int_equal(ev(10)->now, 1 * SEC);
    assert_int_equal(ev(30)->err, -ECANCELED);
    assert_int_equal(ev(30)->now, 1 * SEC);
    assert_int_equal(ev(20)->err, -EIO);
    assert_true(weft_future_cancelled(kids[0]));
    assert_int_equal(weft_future_error(kids[1]), -EIO);
    assert_true(weft_future_cancelled(kids[2]));
    for (int i = 0; i < 3; i++)
        weft_future_unref(kids[i]);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* S-GATHER-4: WEFT_GATHER_ALL (return_exceptions=True) waits for every
 * child and reports each outcome - value, error, cancellation - in
 * argument order; the gather itself succeeds. */
static void test_gather_all_collects_every_outcome(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *victim = WEFT_SPAWN(loop, work, .d = 5, .tag = 30);
    assert_int_equal(weft_call_later(loop, 3.0, cancel_task_cb, weft_future_ref(victim), NULL), 0);
    weft_future *fs[] = {
        WEFT_SPAWN(loop, work, .d = 1, .v = 10),
        WEFT_SPAWN(loop, work, .d = 2, .fail = -EIO, .tag = 20),
        victim,
    };
    outcome o = {0};
    weft_future *g = weft_gather(loop, fs, 3, WEFT_GATHER_ALL);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, g, &o, true)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 3 * SEC);
    assert_int_equal(o.n, 3);
    assert_int_equal(o.rerr[0], 0);
    assert_int_equal(o.rval[0], 10);
    assert_int_equal(o.rerr[1], -EIO);
    assert_int_equal(o.rerr[2], -ECANCELED);
    assert_true(o.rdone[0] && o.rdone[1] && o.rdone[2]);
    assert_int_equal(ev(30)->now, 3 * SEC); /* nothing cancelled it early */
    finish(loop);
}

/* S-GATHER-6 / P-7: deliberate difference.  asyncio fails the gather with
 * CancelledError when a child is cancelled by someone else, so an awaiter
 * that nobody cancelled receives CancelledError.  weft: such a child is not
 * a failure - its entry reads -ECANCELED, the siblings run on, the gather
 * succeeds, and the awaiting task's cancelling() stays 0. */
static void test_gather_child_cancelled_by_third_party_is_not_a_failure(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *victim = WEFT_SPAWN(loop, work, .d = 5, .tag = 20);
    assert_int_equal(weft_call_later(loop, 2.0, cancel_task_cb, weft_future_ref(victim), NULL), 0);
    weft_future *fs[] = {
        WEFT_SPAWN(loop, work, .d = 1, .v = 1),
        victim,
        WEFT_SPAWN(loop, work, .d = 3, .v = 3, .tag = 30),
    };
    outcome o = {0};
    weft_task *t = AWAIT_IT(loop, weft_gather(loop, fs, 3, 0), &o, true);
    assert_int_equal(run_until_done(loop, t), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 3 * SEC);
    assert_int_equal(o.cancelling, 0);
    assert_int_equal(weft_task_cancelling(t), 0);
    assert_false(weft_future_cancelled(t));
    assert_int_equal(o.rerr[0], 0);
    assert_int_equal(o.rval[0], 1);
    assert_int_equal(o.rerr[1], -ECANCELED);
    assert_int_equal(o.rerr[2], 0);
    assert_int_equal(o.rval[2], 3);
    assert_int_equal(ev(20)->now, 2 * SEC);
    assert_int_equal(ev(30)->err, 0); /* the sibling ran on */
    weft_future_unref(t);
    finish(loop);
}

/* S-GATHER-5: deliberate difference.  asyncio's gather.cancel() only asks
 * the children and later finishes the outer *with* CancelledError (so
 * cancelled() is False).  weft: the gather future is CANCELLED at once,
 * and every pending child is cancelled (their FINALLY runs). */
static void test_cancelling_gather_cancels_it_at_once_and_its_children(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *a = WEFT_SPAWN(loop, work, .d = 5, .tag = 10);
    weft_future *b = WEFT_SPAWN(loop, work, .d = 6, .tag = 20);
    weft_future *g =
        weft_gather(loop, (weft_future *[]){weft_future_ref(a), weft_future_ref(b)}, 2, 0);
    step(loop); /* both children parked on their sleeps */
    assert_int_equal(weft_future_cancel(g), 0);
    assert_true(weft_future_cancelled(g));
    assert_int_equal(weft_future_error(g), -ECANCELED);
    assert_int_equal(run_until_done(loop, b), -ECANCELED);
    assert_true(weft_future_cancelled(a));
    assert_int_equal(ev(10)->err, -ECANCELED);
    assert_int_equal(ev(20)->err, -ECANCELED);
    assert_int_equal(weft_loop_now(loop), 0);
    weft_future_unref(g);
    weft_future_unref(a);
    weft_future_unref(b);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* S-GATHER-5 via the awaiter: cancelling the task awaiting a gather cancels
 * the gather and so its children; the task ends cancelled. */
static void test_cancelling_task_awaiting_gather_cancels_children(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *fs[] = {
        WEFT_SPAWN(loop, work, .d = 5, .tag = 10),
        WEFT_SPAWN(loop, work, .d = 6, .tag = 20),
    };
    outcome o = {0};
    weft_task *t = AWAIT_IT(loop, weft_gather(loop, fs, 2, 0), &o, false);
    assert_int_equal(weft_call_later(loop, 1.0, cancel_task_cb, weft_future_ref(t), NULL), 0);
    assert_int_equal(run_until_done(loop, t), -ECANCELED);
    assert_true(weft_future_cancelled(t));
    assert_false(o.resumed);
    assert_int_equal(o.fin_err, -ECANCELED);
    assert_int_equal(o.fin_at, 1 * SEC);
    weft_future_unref(t);
    step(loop);
    assert_int_equal(ev(10)->err, -ECANCELED);
    assert_int_equal(ev(10)->now, 1 * SEC);
    assert_int_equal(ev(20)->err, -ECANCELED);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* combinators.h: a NULL entry (a failed constructor) fails the gather with
 * weft_last_error(); the references to the other entries are released and
 * nothing is cancelled. */
static void test_gather_with_null_entry_fails_and_releases_the_rest(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    weft_future *fs[] = {weft_future_ref(f), weft_sleep(loop, NAN)};
    assert_null(weft_gather(loop, fs, 2, 0));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_int_equal(weft_future_state_of(f), WEFT_PENDING);
    weft_future_unref(f); /* the last reference: leak check */
    finish(loop);
}

/* =============================================================================
 * wait (S-WAIT-*)
 * ========================================================================== */

/* S-WAIT-3: FIRST_COMPLETED returns when the first future is done; the
 * done flags say which; the others keep running. */
static void test_wait_first_completed_returns_at_first_completion(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *b = WEFT_SPAWN(loop, work, .d = 2, .v = 2, .tag = 20);
    weft_future *fs[] = {WEFT_SPAWN(loop, work, .d = 1, .v = 1), weft_future_ref(b)};
    outcome o = {0};
    weft_future *w = weft_wait(loop, fs, 2, WEFT_FIRST_COMPLETED, -1);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, w, &o, true)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 1 * SEC);
    assert_true(o.rdone[0]);
    assert_false(o.rdone[1]);
    assert_int_equal(o.rerr[0], 0);
    assert_int_equal(o.rval[0], 1);
    assert_int_equal(o.rerr[1], WEFT_ESTATE);
    assert_int_equal(run_until_done(loop, b), 0); /* not cancelled */
    assert_int_equal(weft_loop_now(loop), 2 * SEC);
    assert_int_equal(ev(20)->err, 0);
    weft_future_unref(b);
    finish(loop);
}

/* S-WAIT-3: for FIRST_COMPLETED a cancellation counts as completion. */
static void test_wait_first_completed_counts_a_cancellation(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *a = WEFT_SPAWN(loop, work, .d = 5);
    assert_int_equal(weft_call_later(loop, 1.0, cancel_task_cb, weft_future_ref(a), NULL), 0);
    weft_future *fs[] = {a, WEFT_SPAWN(loop, work, .d = 3)};
    outcome o = {0};
    weft_future *w = weft_wait(loop, fs, 2, WEFT_FIRST_COMPLETED, -1);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, w, &o, true)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 1 * SEC);
    assert_true(o.rdone[0]);
    assert_false(o.rdone[1]);
    assert_int_equal(o.rerr[0], -ECANCELED);
    finish(loop);
}

/* S-WAIT-3: FIRST_EXCEPTION returns when the first future fails. */
static void test_wait_first_exception_returns_at_first_failure(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *fs[] = {
        WEFT_SPAWN(loop, work, .d = 1, .v = 1),
        WEFT_SPAWN(loop, work, .d = 2, .fail = -EIO),
        WEFT_SPAWN(loop, work, .d = 3, .v = 3, .tag = 30),
    };
    outcome o = {0};
    weft_future *w = weft_wait(loop, fs, 3, WEFT_FIRST_EXCEPTION, -1);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, w, &o, true)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 2 * SEC);
    assert_true(o.rdone[0]);
    assert_true(o.rdone[1]);
    assert_false(o.rdone[2]);
    assert_int_equal(o.rerr[1], -EIO);
    assert_false(has_ev(30)); /* still running, not cancelled */
    finish(loop);
}

/* S-WAIT-3: for FIRST_EXCEPTION a cancellation is not an exception; with no
 * failure it waits for all. */
static void test_wait_first_exception_ignores_cancellation_and_waits_for_all(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *a = WEFT_SPAWN(loop, work, .d = 5);
    assert_int_equal(weft_call_later(loop, 1.0, cancel_task_cb, weft_future_ref(a), NULL), 0);
    weft_future *fs[] = {a, WEFT_SPAWN(loop, work, .d = 2, .v = 2),
                         WEFT_SPAWN(loop, work, .d = 3, .v = 3)};
    outcome o = {0};
    weft_future *w = weft_wait(loop, fs, 3, WEFT_FIRST_EXCEPTION, -1);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, w, &o, true)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 3 * SEC);
    assert_true(o.rdone[0] && o.rdone[1] && o.rdone[2]);
    assert_int_equal(o.rerr[0], -ECANCELED);
    assert_int_equal(o.rval[2], 3);
    finish(loop);
}

/* S-WAIT-1, S-WAIT-3: ALL_COMPLETED waits for every future and never fails
 * because of them: errors stay in the entries. */
static void test_wait_all_completed_waits_for_every_future(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *fs[] = {
        WEFT_SPAWN(loop, work, .d = 1, .fail = -EIO),
        WEFT_SPAWN(loop, work, .d = 3, .v = 3),
        WEFT_SPAWN(loop, work, .d = 2, .v = 2),
    };
    outcome o = {0};
    weft_future *w = weft_wait(loop, fs, 3, WEFT_ALL_COMPLETED, -1);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, w, &o, true)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 3 * SEC);
    assert_int_equal(o.n, 3);
    assert_true(o.rdone[0] && o.rdone[1] && o.rdone[2]);
    assert_int_equal(o.rerr[0], -EIO);
    assert_int_equal(o.rval[1], 3);
    assert_int_equal(o.rval[2], 2);
    finish(loop);
}

/* S-WAIT-2: on timeout wait returns normally (no -ETIMEDOUT) and cancels
 * nothing: pending futures keep running. */
static void test_wait_timeout_returns_without_cancelling(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *a = WEFT_SPAWN(loop, work, .d = 5, .v = 5, .tag = 10);
    weft_future *fs[] = {weft_future_ref(a), WEFT_SPAWN(loop, work, .d = 1, .v = 1)};
    outcome o = {0};
    weft_future *w = weft_wait(loop, fs, 2, WEFT_ALL_COMPLETED, 2.0);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, w, &o, true)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 2 * SEC);
    assert_false(o.rdone[0]);
    assert_true(o.rdone[1]);
    assert_int_equal(o.rerr[0], WEFT_ESTATE);
    assert_int_equal(run_until_done(loop, a), 0);
    assert_int_equal(weft_loop_now(loop), 5 * SEC);
    assert_int_equal(ev(10)->err, 0);
    weft_future_unref(a);
    finish(loop);
}

/* wait_sleep: weft_wait(ALL_COMPLETED, timeout) over a sleep of `sleep`
 * seconds made inside the task; the results go to out. */
struct wait_sleep {
    WEFT_FRAME(int);
    double sleep, timeout;
    outcome *out;
};

WEFT_ASYNC(wait_sleep)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_TRY_AWAIT(self,
                   weft_wait(loop, (weft_future *[]){weft_sleep(loop, self->sleep)}, 1,
                             WEFT_ALL_COMPLETED, self->timeout),
                   self->out->e);
    self->out->at = now_of(task);
    if (!self->out->e)
        grab(self->out, WEFT_RESULT(self).p);
    WEFT_END;
}

/* S-WAIT-2, regression: a wait that timed out stops listening to a plain
 * future that never completes (here a 100 s sleep that only the wait
 * held), so destroying the loop then frees everything: finish() finds no
 * block left. */
static void test_wait_timeout_over_never_completing_future_then_destroy_leaks_nothing(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    assert_int_equal(
        run_task(loop, WEFT_SPAWN(loop, wait_sleep, .sleep = 100, .timeout = 1, .out = &o)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 1 * SEC);
    assert_int_equal(o.n, 1);
    assert_false(o.rdone[0]);
    assert_int_equal(o.rerr[0], WEFT_ESTATE);
    finish(loop); /* the sleep is still pending */
}

/* S-WAIT-1: wait needs at least one future (-EINVAL, like asyncio's
 * ValueError) and a valid return_when; a refused call still takes the
 * references and cancels nothing. */
static void test_wait_of_nothing_or_bad_mode_is_einval(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_null(weft_wait(loop, NULL, 0, WEFT_ALL_COMPLETED, -1));
    assert_int_equal(weft_last_error(), -EINVAL);
    weft_future *f = weft_future_new(loop);
    assert_null(
        weft_wait(loop, (weft_future *[]){weft_future_ref(f)}, 1, (weft_return_when)99, -1));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_int_equal(weft_future_state_of(f), WEFT_PENDING);
    weft_future_unref(f);
    finish(loop);
}

/* =============================================================================
 * wait_for (S-WAITFOR-*)
 * ========================================================================== */

/* S-WAITFOR-3: on timeout the inner is cancelled; when its cleanup does not
 * await, -ETIMEDOUT arrives exactly at t == timeout. */
static void test_wait_for_times_out_exactly_when_inner_cleans_up_at_once(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *inner = WEFT_SPAWN(loop, work, .d = 5, .v = 5, .tag = 10);
    outcome o = {0};
    weft_future *w = weft_wait_for(weft_future_ref(inner), 1.0);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, w, &o, false)), 0);
    assert_int_equal(o.e, -ETIMEDOUT);
    assert_int_equal(o.at, 1 * SEC);
    assert_int_equal(o.cancelling, 0);
    assert_true(weft_future_cancelled(inner));
    assert_int_equal(ev(10)->err, -ECANCELED);
    assert_int_equal(ev(10)->now, 1 * SEC);
    weft_future_unref(inner);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* S-WAITFOR-3: -ETIMEDOUT arrives only after the inner finished its
 * cleanup: a FINALLY that sleeps 2 s makes the result arrive at
 * t = timeout + 2. */
static void test_wait_for_timeout_waits_for_inner_cleanup(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *inner = WEFT_SPAWN(loop, work, .d = 5, .tag = 10, .cleanup = 2);
    outcome o = {0};
    weft_future *w = weft_wait_for(inner, 1.0);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, w, &o, false)), 0);
    assert_int_equal(o.e, -ETIMEDOUT);
    assert_int_equal(ev(10)->now, 1 * SEC);
    assert_int_equal(ev(11)->now, 3 * SEC);
    assert_int_equal(o.at, 3 * SEC);
    finish(loop);
}

/* S-WAITFOR-1: an inner that completes first delivers its value at its
 * own time, and the timeout timer is dropped. */
static void test_wait_for_returns_value_when_inner_completes_first(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_future *w = weft_wait_for(WEFT_SPAWN(loop, work, .d = 1, .v = 7), 2.0);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, w, &o, false)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.v.i, 7);
    assert_int_equal(o.at, 1 * SEC);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* P-4 tie-break: a value produced in the same iteration as the timeout
 * wins ("completion wins over a simultaneous timeout").  Here a plain
 * future is completed by a timer due at the same deadline. */
static void test_wait_for_value_in_timeout_iteration_wins_future(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_call_later(loop, 1.0, set_int_cb, weft_future_ref(f), NULL), 0);
    outcome o = {0};
    weft_future *w = weft_wait_for(f, 1.0);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, w, &o, false)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.v.i, 42);
    assert_int_equal(o.at, 1 * SEC);
    finish(loop);
}

/* P-4 tie-break, task form: with timeout 0 the timer fires in the first
 * iteration, in which the inner task also returns its value (it never
 * awaits): the value wins. */
static void test_wait_for_value_in_timeout_iteration_wins_task(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_future *w = weft_wait_for(WEFT_SPAWN(loop, work, .d = -1, .v = 9), 0);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, w, &o, false)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.v.i, 9);
    assert_int_equal(o.at, 0);
    finish(loop);
}

/* S-WAITFOR-5: cancellation of the awaiting task from outside is never
 * swallowed: the task ends cancelled (not -ETIMEDOUT, no value) and the
 * inner is cancelled. */
static void test_wait_for_outside_cancellation_is_not_swallowed(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *inner = WEFT_SPAWN(loop, work, .d = 5, .tag = 10);
    outcome o = {0};
    weft_task *t = AWAIT_IT(loop, weft_wait_for(weft_future_ref(inner), 10.0), &o, false);
    assert_int_equal(weft_call_later(loop, 1.0, cancel_task_cb, weft_future_ref(t), NULL), 0);
    assert_int_equal(run_until_done(loop, t), -ECANCELED);
    assert_true(weft_future_cancelled(t));
    assert_false(o.resumed);
    assert_int_equal(o.fin_err, -ECANCELED);
    assert_int_equal(o.fin_at, 1 * SEC);
    step(loop);
    assert_true(weft_future_cancelled(inner));
    assert_int_equal(ev(10)->now, 1 * SEC);
    weft_future_unref(inner);
    weft_future_unref(t);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* S-WAITFOR-5 (T43, gh-86296): the inner completes and the awaiting task is
 * cancelled from outside in the same iteration: cancellation wins, the task
 * ends cancelled ([3.12+]; <= 3.11 swallowed it). */
static void test_wait_for_race_with_outside_cancellation_ends_cancelled(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    outcome o = {0};
    weft_task *t = AWAIT_IT(loop, weft_wait_for(weft_future_ref(f), 10.0), &o, false);
    assert_int_equal(weft_call_later(loop, 1.0, set_int_cb, weft_future_ref(f), NULL), 0);
    assert_int_equal(weft_call_later(loop, 1.0, cancel_task_cb, weft_future_ref(t), NULL), 0);
    assert_int_equal(run_until_done(loop, t), -ECANCELED);
    assert_false(o.resumed);
    assert_int_equal(o.fin_err, -ECANCELED);
    assert_int_equal(o.fin_at, 1 * SEC);
    assert_int_equal(weft_future_error(f), 0); /* the inner kept its value */
    weft_future_unref(f);
    weft_future_unref(t);
    finish(loop);
}

/* S-WAITFOR-3: wait_for converts only the cancellation it caused by its
 * own timeout.  The inner's own error passes through unchanged, and an
 * inner cancelled by a third party gives -ECANCELED (not -ETIMEDOUT) to an
 * awaiter that was not cancelled itself. */
static void test_wait_for_passes_inner_outcome_through_unchanged(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o1 = {0}, o2 = {0};
    weft_task *t1 = AWAIT_IT(loop, weft_wait_for(WEFT_SPAWN(loop, work, .d = 1, .fail = -EIO), 5.0),
                             &o1, false);
    weft_future *victim = WEFT_SPAWN(loop, work, .d = 5);
    assert_int_equal(weft_call_later(loop, 2.0, cancel_task_cb, weft_future_ref(victim), NULL), 0);
    weft_task *t2 = AWAIT_IT(loop, weft_wait_for(victim, 5.0), &o2, false);
    assert_int_equal(run_task(loop, t1), 0);
    assert_int_equal(run_task(loop, t2), 0);
    assert_int_equal(o1.e, -EIO);
    assert_int_equal(o1.at, 1 * SEC);
    assert_int_equal(o2.e, -ECANCELED);
    assert_int_equal(o2.at, 2 * SEC);
    assert_int_equal(o2.cancelling, 0);
    finish(loop);
}

/* combinators.h: a negative timeout means none; a NaN timeout is -EINVAL
 * (and the reference is released); a done future is returned as is. */
static void test_wait_for_negative_timeout_nan_and_done_future(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_future *w = weft_wait_for(WEFT_SPAWN(loop, work, .d = 100, .v = 1), -1);
    assert_int_equal(run_task(loop, AWAIT_IT(loop, w, &o, false)), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 100 * SEC);

    weft_future *f = weft_future_new(loop);
    assert_null(weft_wait_for(weft_future_ref(f), NAN));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_int_equal(weft_future_set_int(f, 3), 0);
    assert_ptr_equal(weft_wait_for(weft_future_ref(f), 1.0), f);
    weft_future_unref(f);
    weft_future_unref(f);
    finish(loop);
}

/* =============================================================================
 * shield (S-SHIELD-1)
 * ========================================================================== */

/* S-SHIELD-1: cancelling the task awaiting a shield cancels only the
 * awaiter; the inner runs on and completes later. */
static void test_shield_cancelling_awaiter_does_not_cancel_inner(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *inner = WEFT_SPAWN(loop, work, .d = 2, .v = 7, .tag = 10);
    outcome o = {0};
    weft_task *t = AWAIT_IT(loop, weft_shield(weft_future_ref(inner)), &o, false);
    assert_int_equal(weft_call_later(loop, 1.0, cancel_task_cb, weft_future_ref(t), NULL), 0);
    assert_int_equal(run_until_done(loop, t), -ECANCELED);
    assert_int_equal(o.fin_at, 1 * SEC);
    assert_false(weft_future_done(inner));
    assert_int_equal(run_until_done(loop, inner), 0);
    assert_int_equal(weft_loop_now(loop), 2 * SEC);
    weft_value v;
    assert_int_equal(weft_future_result(inner, &v), 0);
    assert_int_equal(v.i, 7);
    assert_int_equal(ev(10)->err, 0);
    weft_future_unref(inner);
    weft_future_unref(t);
    finish(loop);
}

/* S-SHIELD-1: the shield of a done future is that future itself. */
static void test_shield_of_done_future_returns_it(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_set_int(f, 1), 0);
    assert_ptr_equal(weft_shield(weft_future_ref(f)), f);
    weft_future_unref(f);
    weft_future_unref(f);
    assert_null(weft_shield(NULL));
    finish(loop);
}

/* S-SHIELD-1: the shield mirrors the inner: its value, and its
 * cancellation by other means. */
static void test_shield_mirrors_inner_value_and_cancellation(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *a = weft_future_new(loop), *b = weft_future_new(loop);
    outcome oa = {0}, ob = {0};
    weft_task *ta = AWAIT_IT(loop, weft_shield(weft_future_ref(a)), &oa, false);
    weft_task *tb = AWAIT_IT(loop, weft_shield(weft_future_ref(b)), &ob, false);
    step(loop);
    assert_int_equal(weft_future_set_int(a, 5), 0);
    assert_int_equal(weft_future_cancel(b), 0);
    assert_int_equal(run_task(loop, ta), 0);
    assert_int_equal(run_task(loop, tb), 0);
    assert_int_equal(oa.e, 0);
    assert_int_equal(oa.v.i, 5);
    assert_int_equal(ob.e, -ECANCELED);
    assert_int_equal(ob.cancelling, 0);
    weft_future_unref(a);
    weft_future_unref(b);
    finish(loop);
}

/* =============================================================================
 * as_completed (S-ASCOMP-1)
 * ========================================================================== */

struct ac_main {
    WEFT_FRAME(int);
    weft_as_completed *ac;
    outcome *out;
    int k, i;
    int tail_err;
    bool tail_null;
};

WEFT_ASYNC(ac_main)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < self->k; self->i++) {
        WEFT_TRY_AWAIT(self, weft_as_completed_next(self->ac), self->out->rerr[self->i]);
        self->out->rval[self->i] = WEFT_RESULT(self).i;
        self->out->rat[self->i] = now_of(task);
    }
    self->out->n = (size_t)self->k;
    {
        weft_future *tail = weft_as_completed_next(self->ac);
        self->out->e = weft_last_error();
        self->out->resumed = tail == NULL;
        weft_future_unref(tail);
    }
    WEFT_END;
}

/* S-ASCOMP-1: next() futures resolve in completion order, each with that
 * future's value or error; after all were handed out next() is NULL with
 * WEFT_EEMPTY. */
static void test_as_completed_yields_in_completion_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *fs[] = {
        WEFT_SPAWN(loop, work, .d = 3, .v = 30),
        WEFT_SPAWN(loop, work, .d = 1, .v = 10),
        WEFT_SPAWN(loop, work, .d = 2, .fail = -EIO),
    };
    weft_as_completed *ac = weft_as_completed_new(loop, fs, 3, -1);
    assert_non_null(ac);
    outcome o = {0};
    assert_int_equal(run_task(loop, WEFT_SPAWN(loop, ac_main, .ac = ac, .out = &o, .k = 3)), 0);
    assert_int_equal(o.rerr[0], 0);
    assert_int_equal(o.rval[0], 10);
    assert_int_equal(o.rat[0], 1 * SEC);
    assert_int_equal(o.rerr[1], -EIO);
    assert_int_equal(o.rat[1], 2 * SEC);
    assert_int_equal(o.rerr[2], 0);
    assert_int_equal(o.rval[2], 30);
    assert_int_equal(o.rat[2], 3 * SEC);
    assert_true(o.resumed); /* the fourth next() was NULL */
    assert_int_equal(o.e, WEFT_EEMPTY);
    weft_as_completed_free(ac);
    finish(loop);
}

/* S-ASCOMP-1: once the timeout passed, every remaining next() future fails
 * with -ETIMEDOUT, and the underlying futures are not cancelled. */
static void test_as_completed_timeout_fails_remaining_without_cancelling(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *b = WEFT_SPAWN(loop, work, .d = 5, .v = 50, .tag = 20);
    weft_future *c = WEFT_SPAWN(loop, work, .d = 6, .v = 60, .tag = 30);
    weft_future *fs[] = {WEFT_SPAWN(loop, work, .d = 1, .v = 10), weft_future_ref(b),
                         weft_future_ref(c)};
    weft_as_completed *ac = weft_as_completed_new(loop, fs, 3, 2.0);
    outcome o = {0};
    assert_int_equal(run_task(loop, WEFT_SPAWN(loop, ac_main, .ac = ac, .out = &o, .k = 3)), 0);
    assert_int_equal(o.rerr[0], 0);
    assert_int_equal(o.rval[0], 10);
    assert_int_equal(o.rat[0], 1 * SEC);
    assert_int_equal(o.rerr[1], -ETIMEDOUT);
    assert_int_equal(o.rat[1], 2 * SEC);
    assert_int_equal(o.rerr[2], -ETIMEDOUT);
    assert_int_equal(o.rat[2], 2 * SEC);
    assert_int_equal(o.e, WEFT_EEMPTY);
    assert_int_equal(run_until_done(loop, c), 0);
    assert_int_equal(weft_loop_now(loop), 6 * SEC);
    assert_int_equal(ev(20)->err, 0);
    assert_int_equal(ev(30)->err, 0);
    assert_int_equal(weft_future_error(b), 0);
    weft_as_completed_free(ac);
    weft_future_unref(b);
    weft_future_unref(c);
    finish(loop);
}

/* S-ASCOMP-1: an empty iterator is exhausted at once; NULL is -EINVAL. */
static void test_as_completed_of_nothing_is_exhausted_at_once(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_as_completed *ac = weft_as_completed_new(loop, NULL, 0, -1);
    assert_non_null(ac);
    assert_null(weft_as_completed_next(ac));
    assert_int_equal(weft_last_error(), WEFT_EEMPTY);
    assert_null(weft_as_completed_next(NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    weft_as_completed_free(ac);
    weft_as_completed_free(NULL);
    finish(loop);
}

/* =============================================================================
 * Timeout scopes (S-TIMEOUT-*)
 * ========================================================================== */

/* scoped: run `work` under a timeout scope of `delay` seconds, catching
 * the outcome (or, with `propagate`, letting it propagate); then sleep
 * `after` seconds. */
struct scoped {
    WEFT_FRAME(int);
    double delay, after;
    double cd, ccleanup; /* the child's sleep and cleanup */
    int64_t cv;
    int ctag;
    bool propagate;
    outcome *out;
    weft_timeout to;
    struct work w;
};

WEFT_ASYNC(scoped)
{
    WEFT_BEGIN(self);
    if (self->propagate)
        WEFT_TIMEOUT_CALL(self, &self->to, self->delay, work, &self->w, .d = self->cd,
                          .v = self->cv, .tag = self->ctag, .cleanup = self->ccleanup);
    else
        WEFT_TRY_TIMEOUT_CALL(self, self->out->e, &self->to, self->delay, work, &self->w,
                              .d = self->cd, .v = self->cv, .tag = self->ctag,
                              .cleanup = self->ccleanup);
    self->out->resumed = true;
    self->out->at = now_of(task);
    self->out->v.i = self->w.result;
    self->out->expired = weft_timeout_expired(&self->to);
    self->out->cancelling = weft_task_cancelling(task);
    if (self->after > 0)
        WEFT_SLEEP(self, self->after);
    self->out->after_at = now_of(task);
    WEFT_FINALLY;
    self->out->finished = true;
    self->out->fin_err = self->co.err;
    self->out->fin_at = now_of(task);
    self->out->expired = weft_timeout_expired(&self->to);
    WEFT_END;
}

/* S-TIMEOUT-3: at expiry the scope cancels the task; once the child has
 * unwound, the scope turns its own cancellation into -ETIMEDOUT, withdraws
 * its cancel request (cancelling() back to 0) and the task goes on. */
static void test_timeout_expiry_turns_own_cancellation_into_etimedout(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t =
        WEFT_SPAWN(loop, scoped, .delay = 1.0, .cd = 5, .ctag = 10, .after = 1.0, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.e, -ETIMEDOUT);
    assert_int_equal(o.at, 1 * SEC);
    assert_true(o.expired);
    assert_int_equal(o.cancelling, 0);
    assert_int_equal(ev(10)->err, -ECANCELED); /* the child saw a cancellation */
    assert_int_equal(o.after_at, 2 * SEC);     /* and the task is not stuck cancelled */
    assert_int_equal(o.fin_err, 0);
    finish(loop);
}

/* S-TIMEOUT-3: without TRY, -ETIMEDOUT propagates: the task fails with it
 * (DONE with an error, not CANCELLED). */
static void test_timeout_expiry_propagates_etimedout(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t = WEFT_SPAWN(loop, scoped, .delay = 1.0, .cd = 5, .propagate = true, .out = &o);
    assert_int_equal(run_until_done(loop, t), -ETIMEDOUT);
    assert_false(weft_future_cancelled(t));
    assert_false(o.resumed);
    assert_int_equal(o.fin_err, -ETIMEDOUT);
    assert_int_equal(o.fin_at, 1 * SEC);
    assert_true(o.expired);
    weft_future_unref(t);
    finish(loop);
}

/* S-TIMEOUT-3: a child that finishes in time gives its value; the scope did
 * not expire and leaves no timer behind. */
static void test_timeout_not_expired_returns_child_value_and_disarms(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t = WEFT_SPAWN(loop, scoped, .delay = 2.0, .cd = 1, .cv = 5, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.v.i, 5);
    assert_int_equal(o.at, 1 * SEC);
    assert_false(o.expired);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* S-TIMEOUT-6: a scope that did not expire lets a cancellation from
 * outside through as -ECANCELED; the task ends cancelled. */
static void test_timeout_scope_that_did_not_expire_lets_ecanceled_through(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t = WEFT_SPAWN(loop, scoped, .delay = 10.0, .cd = 5, .ctag = 10, .out = &o);
    assert_int_equal(weft_call_later(loop, 1.0, cancel_task_cb, weft_future_ref(t), NULL), 0);
    assert_int_equal(run_until_done(loop, t), -ECANCELED);
    assert_true(weft_future_cancelled(t));
    assert_false(o.resumed);
    assert_int_equal(o.fin_err, -ECANCELED);
    assert_int_equal(o.fin_at, 1 * SEC);
    assert_false(o.expired);
    weft_future_unref(t);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* S-TIMEOUT-6: the scope expires and the task is also cancelled from
 * outside in the same iteration: after the scope withdraws its own request
 * the count is still above its base, so nothing is converted - the task
 * ends cancelled, not timed out. */
static void test_outside_cancellation_in_expiry_iteration_stays_ecanceled(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t = WEFT_SPAWN(loop, scoped, .delay = 1.0, .cd = 5, .ctag = 10, .out = &o);
    /* due at t = 1 like the scope's timer, and armed before it: runs first */
    assert_int_equal(weft_call_later(loop, 1.0, cancel_task_cb, weft_future_ref(t), NULL), 0);
    assert_int_equal(run_until_done(loop, t), -ECANCELED);
    assert_true(weft_future_cancelled(t));
    assert_false(o.resumed);
    assert_int_equal(o.fin_err, -ECANCELED);
    assert_int_equal(o.fin_at, 1 * SEC);
    assert_true(o.expired);
    weft_future_unref(t);
    finish(loop);
}

/* S-TIMEOUT-6 with co.h's masking ("Inside WEFT_FINALLY cancellation is
 * masked, so cleanup may await"): the scope expired at t = 1 and the child
 * is in a 2 s cleanup when an outside cancel arrives at t = 2.  The
 * cleanup is not interrupted (it ends at t = 3), and then the outside
 * cancellation stays -ECANCELED. */
static void test_outside_cancellation_during_scope_cleanup_waits_for_it(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t =
        WEFT_SPAWN(loop, scoped, .delay = 1.0, .cd = 5, .ctag = 10, .ccleanup = 2, .out = &o);
    assert_int_equal(weft_call_later(loop, 2.0, cancel_task_cb, weft_future_ref(t), NULL), 0);
    assert_int_equal(run_until_done(loop, t), -ECANCELED);
    assert_true(weft_future_cancelled(t));
    weft_future_unref(t);
    assert_int_equal(ev(10)->now, 1 * SEC);
    assert_int_equal(ev(11)->now, 3 * SEC); /* the cleanup ran to its end */
    assert_int_equal(o.fin_err, -ECANCELED);
    assert_int_equal(o.fin_at, 3 * SEC);
    assert_true(o.expired);
    finish(loop);
}

/* mid: a second scope (inner) inside the outer one, around a 10 s child. */
struct mid {
    WEFT_FRAME(int);
    double inner, after;
    bool catching;
    outcome *out; /* out->rerr[0] = caught outcome, rval[0] = expired */
    weft_timeout to;
    struct work w;
};

WEFT_ASYNC(mid)
{
    WEFT_BEGIN(self);
    if (self->catching)
        WEFT_TRY_TIMEOUT_CALL(self, self->out->rerr[0], &self->to, self->inner, work, &self->w,
                              .d = 10);
    else
        WEFT_TIMEOUT_CALL(self, &self->to, self->inner, work, &self->w, .d = 10);
    self->out->rat[0] = now_of(task);
    if (self->after > 0)
        WEFT_SLEEP(self, self->after);
    WEFT_FINALLY;
    self->out->rerr[1] = self->co.err;
    self->out->rdone[0] = weft_timeout_expired(&self->to);
    WEFT_END;
}

struct nest_main {
    WEFT_FRAME(int);
    double outer, inner, after;
    bool catching;
    outcome *out;
    weft_timeout to;
    struct mid m;
};

WEFT_ASYNC(nest_main)
{
    WEFT_BEGIN(self);
    WEFT_TRY_TIMEOUT_CALL(self, self->out->e, &self->to, self->outer, mid, &self->m,
                          .inner = self->inner, .after = self->after, .catching = self->catching,
                          .out = self->out);
    self->out->at = now_of(task);
    self->out->expired = weft_timeout_expired(&self->to);
    self->out->cancelling = weft_task_cancelling(task);
    WEFT_END;
}

/* S-TIMEOUT-6: nested scopes, the outer expires first: the inner scope
 * (not expired) lets -ECANCELED through; only the outer converts. */
static void test_nested_scopes_outer_expires_first(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t = WEFT_SPAWN(loop, nest_main, .outer = 1.0, .inner = 5.0, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.e, -ETIMEDOUT);
    assert_int_equal(o.at, 1 * SEC);
    assert_true(o.expired);
    assert_int_equal(o.rerr[1], -ECANCELED); /* what left the inner scope */
    assert_false(o.rdone[0]);                /* the inner scope did not expire */
    assert_int_equal(o.cancelling, 0);
    finish(loop);
}

/* S-TIMEOUT-6: nested scopes, the inner expires first: it converts to
 * -ETIMEDOUT (which the middle frame can catch and carry on from); the
 * outer scope does not expire. */
static void test_nested_scopes_inner_expires_first(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t = WEFT_SPAWN(loop, nest_main, .outer = 5.0, .inner = 1.0, .catching = true,
                              .after = 1.0, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.rerr[0], -ETIMEDOUT); /* caught in the middle frame */
    assert_int_equal(o.rat[0], 1 * SEC);
    assert_true(o.rdone[0]);
    assert_int_equal(o.rerr[1], 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 2 * SEC);
    assert_false(o.expired);
    assert_int_equal(o.cancelling, 0);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* S-TIMEOUT-5: timeout 0 around a child that never suspends does not
 * expire: expiry is delivered by the loop, and the child is done first. */
static void test_timeout_zero_around_child_that_never_awaits_does_not_expire(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t = WEFT_SPAWN(loop, scoped, .delay = 0, .cd = -1, .cv = 3, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.v.i, 3);
    assert_false(o.expired);
    assert_int_equal(o.at, 0);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* S-TIMEOUT-5: timeout 0 around a child that awaits: it is cancelled at its
 * first suspension and the scope gives -ETIMEDOUT at t = 0. */
static void test_timeout_zero_around_child_that_awaits_expires_at_once(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t = WEFT_SPAWN(loop, scoped, .delay = 0, .cd = 1, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.e, -ETIMEDOUT);
    assert_int_equal(o.at, 0);
    assert_true(o.expired);
    finish(loop);
}

/* S-TIMEOUT-5 (upstream test_timeout_zero_sleep_zero): `async with
 * timeout(0): await sleep(0)` raises TimeoutError - asyncio queues the
 * expiry with call_soon at entry, ahead of the task's own yield, so the
 * first suspension (even a bare yield) is cancelled. */
static void test_timeout_zero_around_bare_yield_expires(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t = WEFT_SPAWN(loop, scoped, .delay = 0, .cd = 0, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.e, -ETIMEDOUT);
    assert_true(o.expired);
    assert_int_equal(o.at, 0);
    finish(loop);
}

/* resched: the child of a scope, which moves its scope's deadline. */
struct resched {
    WEFT_FRAME(int);
    weft_timeout *scope;
    double d1, d2; /* sleep before (d1 < 0: none) and after rescheduling */
    int64_t to;
    outcome *out; /* rerr[0] = reschedule rc, rerr[1] = rc in FINALLY,
                     rdone[0] = expired in FINALLY, rval[0] = scope->when */
};

WEFT_ASYNC(resched)
{
    WEFT_BEGIN(self);
    if (self->d1 >= 0)
        WEFT_SLEEP(self, self->d1);
    self->out->rerr[0] = weft_timeout_reschedule(self->scope, self->to);
    self->out->rval[0] = self->scope->when;
    WEFT_SLEEP(self, self->d2);
    WEFT_RETURN(self, 1);
    WEFT_FINALLY;
    self->out->rdone[0] = weft_timeout_expired(self->scope);
    if (self->co.err)
        self->out->rerr[1] = weft_timeout_reschedule(self->scope, INT64_MAX);
    WEFT_END;
}

struct resched_main {
    WEFT_FRAME(int);
    double delay, d1, d2;
    int64_t to;
    outcome *out; /* rerr[2] = reschedule after exit */
    weft_timeout to_scope;
    struct resched r;
};

WEFT_ASYNC(resched_main)
{
    WEFT_BEGIN(self);
    self->out->rerr[3] = weft_timeout_reschedule(&self->to_scope, 0); /* never entered */
    WEFT_TRY_TIMEOUT_CALL(self, self->out->e, &self->to_scope, self->delay, resched, &self->r,
                          .scope = &self->to_scope, .d1 = self->d1, .d2 = self->d2, .to = self->to,
                          .out = self->out);
    self->out->at = now_of(task);
    self->out->expired = weft_timeout_expired(&self->to_scope);
    self->out->rerr[2] = weft_timeout_reschedule(&self->to_scope, 0);
    WEFT_END;
}

/* S-TIMEOUT-4: rescheduling to a later deadline moves the expiry there. */
static void test_timeout_reschedule_later_moves_expiry(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t =
        WEFT_SPAWN(loop, resched_main, .delay = 1.0, .d1 = -1, .d2 = 5, .to = 3 * SEC, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.rerr[0], 0);
    assert_int_equal(o.rval[0], 3 * SEC); /* scope->when follows */
    assert_int_equal(o.e, -ETIMEDOUT);
    assert_int_equal(o.at, 3 * SEC);
    assert_true(o.expired);
    finish(loop);
}

/* S-TIMEOUT-4: rescheduling to an earlier deadline moves the expiry there. */
static void test_timeout_reschedule_earlier_moves_expiry(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t =
        WEFT_SPAWN(loop, resched_main, .delay = 10.0, .d1 = -1, .d2 = 5, .to = 1 * SEC, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.e, -ETIMEDOUT);
    assert_int_equal(o.at, 1 * SEC);
    finish(loop);
}

/* S-TIMEOUT-4: INT64_MAX (asyncio's None) disables the deadline. */
static void test_timeout_reschedule_never_disables_expiry(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t =
        WEFT_SPAWN(loop, resched_main, .delay = 1.0, .d1 = -1, .d2 = 5, .to = INT64_MAX, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.rerr[0], 0);
    assert_true(o.rval[0] == INT64_MAX);
    assert_int_equal(o.e, 0);
    assert_int_equal(o.at, 5 * SEC);
    assert_false(o.expired);
    finish(loop);
}

/* S-TIMEOUT-4: a deadline already in the past expires at the next
 * iteration (not synchronously inside reschedule). */
static void test_timeout_reschedule_to_the_past_expires_at_next_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t =
        WEFT_SPAWN(loop, resched_main, .delay = 10.0, .d1 = 1, .d2 = 5, .to = 500 * MS, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.rerr[0], 0);
    assert_int_equal(o.e, -ETIMEDOUT);
    assert_int_equal(o.at, 1 * SEC);
    finish(loop);
}

/* S-TIMEOUT-4: reschedule is valid only while the scope is active: before
 * entry, once expired (inside the child's unwinding) and after exit it is
 * WEFT_ESTATE; NULL is -EINVAL. */
static void test_timeout_reschedule_outside_active_scope_is_estate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t =
        WEFT_SPAWN(loop, resched_main, .delay = 1.0, .d1 = -1, .d2 = 5, .to = 2 * SEC, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.e, -ETIMEDOUT);
    assert_int_equal(o.rerr[3], WEFT_ESTATE); /* not entered */
    assert_int_equal(o.rerr[1], WEFT_ESTATE); /* expired */
    assert_int_equal(o.rerr[2], WEFT_ESTATE); /* exited */
    assert_int_equal(weft_timeout_reschedule(NULL, 0), -EINVAL);
    finish(loop);
}

/* S-TIMEOUT-2: expired() is false while the deadline has not passed, true
 * from the expiry on - already inside the child's unwinding - and after
 * exit; NULL reads false. */
static void test_timeout_expired_is_true_from_expiry_on(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t =
        WEFT_SPAWN(loop, resched_main, .delay = 1.0, .d1 = -1, .d2 = 5, .to = 2 * SEC, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_true(o.rdone[0]); /* in the child's FINALLY */
    assert_true(o.expired);  /* after exit */
    assert_false(weft_timeout_expired(NULL));

    outcome p = {0};
    t = WEFT_SPAWN(loop, scoped, .delay = 5.0, .cd = 1, .out = &p);
    assert_int_equal(run_task(loop, t), 0);
    assert_false(p.expired);
    finish(loop);
}

struct at_main {
    WEFT_FRAME(int);
    double pre, when;
    outcome *out;
    weft_timeout to;
    struct work w;
};

WEFT_ASYNC(at_main)
{
    WEFT_BEGIN(self);
    WEFT_SLEEP(self, self->pre);
    WEFT_TIMEOUT_AT_CALL(self, &self->to, self->when, work, &self->w, .d = 5);
    WEFT_FINALLY;
    self->out->fin_err = self->co.err;
    self->out->fin_at = now_of(task);
    self->out->expired = weft_timeout_expired(&self->to);
    WEFT_END;
}

/* S-TIMEOUT-1 (timeout_at): WEFT_TIMEOUT_AT_CALL takes an absolute loop
 * time, independent of when the scope is entered. */
static void test_timeout_at_uses_absolute_deadline(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    outcome o = {0};
    weft_task *t = WEFT_SPAWN(loop, at_main, .pre = 1.0, .when = 2.5, .out = &o);
    assert_int_equal(run_task(loop, t), -ETIMEDOUT);
    assert_int_equal(o.fin_err, -ETIMEDOUT);
    assert_int_equal(o.fin_at, 2500 * MS);
    assert_true(o.expired);
    finish(loop);
}

/* =============================================================================
 * Task groups (S-TG-*)
 * ========================================================================== */

typedef struct kidspec {
    double d;
    int64_t v;
    int fail, tag, yields;
} kidspec;

struct sub_throw {
    WEFT_FRAME(int);
    double cleanup;
};

WEFT_ASYNC(sub_throw)
{
    WEFT_BEGIN(self);
    WEFT_THROW(self, -EPIPE);
    WEFT_FINALLY;
    WEFT_SLEEP(self, self->cleanup);
    WEFT_END;
}

/* What a group owner saw. */
typedef struct grp_out {
    int body_err;    /* frame error entering FINALLY (before the join) */
    int64_t body_at; /* ... and when */
    int err;         /* frame error after the join */
    int64_t at;      /* when the join returned */
    int cancelling;  /* owner's cancelling() after the join */
    size_t nerr;
    int errs[8];
    bool late_null; /* spawn after the join refused */
    int late_err;
    bool abort_null; /* spawn while aborting refused (if tried) */
    int abort_err;
} grp_out;

/* grp: a group owner.  Spawns kids, optionally cancels kid #cancel_kid (1-based) at
 * cancel_at, sleeps body_d (< 0: no await), optionally calls sub_throw
 * (body error with a slow cleanup) or throws body_fail; joins in FINALLY. */
struct grp {
    WEFT_FRAME(int);
    const kidspec *kids;
    int nkids, cancel_kid, body_fail, i;
    double cancel_at, body_d;
    bool body_sub, spawn_while_aborting;
    grp_out *out;
    weft_group g;
    weft_task *kid[4];
    struct sub_throw sub;
};

WEFT_ASYNC(grp)
{
    WEFT_BEGIN(self);
    weft_group_init(&self->g, task);
    for (self->i = 0; self->i < self->nkids; self->i++) {
        const kidspec *k = &self->kids[self->i];
        self->kid[self->i] = WEFT_GROUP_SPAWN(&self->g, work, .d = k->d, .v = k->v, .fail = k->fail,
                                              .tag = k->tag, .yields = k->yields);
        assert_non_null(self->kid[self->i]);
    }
    if (self->cancel_kid > 0) {
        WEFT_SLEEP(self, self->cancel_at);
        assert_int_equal(weft_task_cancel(self->kid[self->cancel_kid - 1]), 0);
    }
    if (self->body_d >= 0)
        WEFT_SLEEP(self, self->body_d);
    if (self->body_sub)
        WEFT_CALL(self, sub_throw, &self->sub, .cleanup = 1.0);
    if (self->body_fail)
        WEFT_THROW(self, self->body_fail);
    WEFT_FINALLY;
    self->out->body_err = self->co.err;
    self->out->body_at = now_of(task);
    if (self->spawn_while_aborting) {
        self->out->abort_null = WEFT_GROUP_SPAWN(&self->g, work, .d = 1) == NULL;
        self->out->abort_err = weft_last_error();
    }
    WEFT_GROUP_JOIN(self, &self->g);
    self->out->err = self->co.err;
    self->out->at = now_of(task);
    self->out->cancelling = weft_task_cancelling(task);
    self->out->nerr = weft_group_errors(&self->g, self->out->errs, 8);
    self->out->late_null = WEFT_GROUP_SPAWN(&self->g, work, .d = 1) == NULL;
    self->out->late_err = weft_last_error();
    WEFT_END;
}

#define GRP(loop, ks, outp, ...)                                                      \
    WEFT_SPAWN(loop, grp, .kids = (ks), .nkids = (int)(sizeof(ks) / sizeof((ks)[0])), \
               .out = (outp), __VA_ARGS__)

/* S-TG-3: the first child failure cancels the siblings and interrupts the
 * body; the join waits for all, and the group's error is that failure. */
static void test_group_first_failure_cancels_siblings_and_body(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    static const kidspec ks[] = {
        {.d = 1, .v = 1, .tag = 10},
        {.d = 2, .fail = -EIO, .tag = 20},
        {.d = 3, .v = 3, .tag = 30},
    };
    grp_out o = {0};
    assert_int_equal(run_task(loop, GRP(loop, ks, &o, .body_d = 10)), -EIO);
    assert_int_equal(ev(10)->err, 0); /* finished before the failure */
    assert_int_equal(ev(10)->now, 1 * SEC);
    assert_int_equal(ev(20)->err, -EIO);
    assert_int_equal(ev(30)->err, -ECANCELED);
    assert_int_equal(ev(30)->now, 2 * SEC);
    assert_int_equal(o.body_err, -ECANCELED); /* the body was interrupted */
    assert_int_equal(o.body_at, 2 * SEC);
    assert_int_equal(o.err, -EIO);
    assert_int_equal(o.at, 2 * SEC);
    assert_int_equal(o.nerr, 1);
    assert_int_equal(o.errs[0], -EIO);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* S-TG-3: the join waits for every child, even when the body is done at
 * once; no failure, no error. */
static void test_group_join_waits_for_all_children(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    static const kidspec ks[] = {
        {.d = 1, .tag = 10},
        {.d = 3, .tag = 30},
        {.d = 2, .tag = 20},
    };
    grp_out o = {0};
    assert_int_equal(run_task(loop, GRP(loop, ks, &o, .body_d = -1)), 0);
    assert_int_equal(o.body_err, 0);
    assert_int_equal(o.body_at, 0);
    assert_int_equal(o.err, 0);
    assert_int_equal(o.at, 3 * SEC);
    assert_int_equal(o.nerr, 0);
    EXPECT_TAGS(10, 20, 30);
    finish(loop);
}

/* S-TG-3: child errors are kept in completion order (not spawn order); the
 * group's error is the first of them.  Both children fail at t = 1 before
 * the abort reaches them; the first-spawned one yields once more, so it
 * completes second. */
static void test_group_errors_are_in_completion_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    static const kidspec ks[] = {
        {.d = 1, .fail = -EPIPE, .yields = 1},
        {.d = 1, .fail = -EIO},
    };
    grp_out o = {0};
    assert_int_equal(run_task(loop, GRP(loop, ks, &o, .body_d = 10)), -EIO);
    assert_int_equal(o.nerr, 2);
    assert_int_equal(o.errs[0], -EIO);
    assert_int_equal(o.errs[1], -EPIPE);
    assert_int_equal(o.err, -EIO);
    assert_int_equal(o.at, 1 * SEC);
    finish(loop);
}

/* S-TG-4: a child that ends cancelled (here cancelled individually by the
 * body) is not an error: no abort, the others finish normally. */
static void test_group_child_cancellation_is_not_an_error(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    static const kidspec ks[] = {
        {.d = 5, .tag = 10},
        {.d = 2, .v = 2, .tag = 20},
    };
    grp_out o = {0};
    weft_task *t = GRP(loop, ks, &o, .cancel_kid = 1, .cancel_at = 0.5, .body_d = 1.0);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(ev(10)->err, -ECANCELED);
    assert_int_equal(ev(10)->now, 500 * MS);
    assert_int_equal(ev(20)->err, 0);
    assert_int_equal(ev(20)->now, 2 * SEC);
    assert_int_equal(o.body_err, 0); /* the body was not interrupted */
    assert_int_equal(o.body_at, 1500 * MS);
    assert_int_equal(o.err, 0);
    assert_int_equal(o.at, 2 * SEC);
    assert_int_equal(o.nerr, 0);
    finish(loop);
}

/* S-TG-5: an error of the body aborts the children, waits for them and is
 * the group's error; it is not a child error. */
static void test_group_body_error_aborts_children(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    static const kidspec ks[] = {
        {.d = 5, .tag = 10},
        {.d = 6, .tag = 20},
    };
    grp_out o = {0};
    assert_int_equal(run_task(loop, GRP(loop, ks, &o, .body_d = 1.0, .body_fail = -EPIPE)), -EPIPE);
    assert_int_equal(ev(10)->err, -ECANCELED);
    assert_int_equal(ev(10)->now, 1 * SEC);
    assert_int_equal(ev(20)->err, -ECANCELED);
    assert_int_equal(o.err, -EPIPE);
    assert_int_equal(o.at, 1 * SEC);
    assert_int_equal(o.nerr, 0);
    assert_nothing_scheduled(loop);
    finish(loop);
}

/* S-TG-6: cancelling the owner from outside cancels the children; after the
 * join the owner ends cancelled (-ECANCELED), and the outside request is
 * still counted (the group withdraws only its own). */
static void test_group_outside_cancellation_cancels_children(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    static const kidspec ks[] = {
        {.d = 5, .tag = 10},
        {.d = 6, .tag = 20},
    };
    grp_out o = {0};
    weft_task *t = GRP(loop, ks, &o, .body_d = 10);
    assert_int_equal(weft_call_later(loop, 1.0, cancel_task_cb, weft_future_ref(t), NULL), 0);
    assert_int_equal(run_until_done(loop, t), -ECANCELED);
    assert_true(weft_future_cancelled(t));
    assert_int_equal(ev(10)->err, -ECANCELED);
    assert_int_equal(ev(10)->now, 1 * SEC);
    assert_int_equal(ev(20)->err, -ECANCELED);
    assert_int_equal(o.err, -ECANCELED);
    assert_int_equal(o.at, 1 * SEC);
    assert_int_equal(o.cancelling, 1);
    assert_int_equal(o.nerr, 0);
    weft_future_unref(t);
    finish(loop);
}

struct grp_caller {
    WEFT_FRAME(int);
    const kidspec *kids;
    int nkids, e, cancelling;
    int64_t after_at;
    grp_out *out;
    struct grp g;
};

WEFT_ASYNC(grp_caller)
{
    WEFT_BEGIN(self);
    WEFT_TRY_CALL(self, self->e, grp, &self->g, .kids = self->kids, .nkids = self->nkids,
                  .body_d = 10, .out = self->out);
    self->cancelling = weft_task_cancelling(task);
    WEFT_SLEEP(self, 1.0);
    self->after_at = now_of(task);
    WEFT_RETURN(self, self->e);
    WEFT_END;
}

/* S-TG-3: the group cancelled its owner to interrupt the body; after the
 * join the owner's cancelling() is back to its previous value (0) and the
 * task can await again (cancellation is sticky otherwise). */
static void test_group_restores_owner_cancelling_after_join(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    static const kidspec ks[] = {
        {.d = 1, .fail = -EIO},
        {.d = 5},
    };
    grp_out o = {0};
    weft_task *t = WEFT_SPAWN(loop, grp_caller, .kids = ks, .nkids = 2, .out = &o);
    assert_int_equal(run_until_done(loop, t), 0);
    weft_value v;
    assert_int_equal(weft_future_result(t, &v), 0);
    assert_int_equal(v.i, -EIO); /* caught by the caller */
    assert_int_equal(o.cancelling, 0);
    assert_int_equal(weft_task_cancelling(t), 0);
    assert_int_equal(weft_loop_now(loop), 2 * SEC); /* the 1 s sleep after the group ran */
    weft_future_unref(t);
    finish(loop);
}

/* S-TG-2: spawning into an aborting or joined group is refused: NULL with
 * WEFT_ESTATE, and no task is created. */
static void test_group_spawn_into_aborting_or_joined_group_is_estate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    static const kidspec ks[] = {
        {.d = 1, .fail = -EIO},
        {.d = 5},
    };
    grp_out o = {0};
    weft_task *t = GRP(loop, ks, &o, .body_d = 10, .spawn_while_aborting = true);
    assert_int_equal(run_task(loop, t), -EIO);
    assert_true(o.abort_null);
    assert_int_equal(o.abort_err, WEFT_ESTATE);
    assert_true(o.late_null);
    assert_int_equal(o.late_err, WEFT_ESTATE);
    assert_int_equal(o.err, -EIO);
    size_t all = weft_all_tasks(loop, NULL, 0);
    assert_int_equal(all, 0);
    finish(loop);
}

/* combinators.h: "the group's error becomes the frame's error (the first
 * child error, in completion order; else the body's)".  Here a child fails
 * (t = 0.5) while the body is inside a cleanup (sub_throw's FINALLY) and
 * the body then ends with its own error -EPIPE: the group's error must be
 * the child's -EIO.
 * (asyncio raises an ExceptionGroup with the child errors first and the
 * body's last.) */
static void test_group_child_error_takes_precedence_over_body_error(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    static const kidspec ks[] = {
        {.d = 0.5, .fail = -EIO, .tag = 10},
    };
    grp_out o = {0};
    assert_int_equal(run_task(loop, GRP(loop, ks, &o, .body_d = -1, .body_sub = true)), -EIO);
    assert_int_equal(o.body_err, -EPIPE);
    assert_int_equal(o.nerr, 1);
    assert_int_equal(o.errs[0], -EIO);
    assert_int_equal(o.err, -EIO);
    assert_int_equal(o.cancelling, 0);
    finish(loop);
}

/* =============================================================================
 * Registration
 * ========================================================================== */


/* =============================================================================
 * Regressions (issue 7)
 * ========================================================================== */

/* A service: spawns two workers that would run for an hour, reaches its
 * join at once (in FINALLY, where cancellation is masked). */
struct service {
    WEFT_FRAME(int);
    weft_group g;
};

WEFT_ASYNC(service)
{
    WEFT_BEGIN(self);
    weft_group_init(&self->g, task);
    WEFT_GROUP_SPAWN(&self->g, work, .d = 3600, .tag = 41);
    WEFT_GROUP_SPAWN(&self->g, work, .d = 3600, .tag = 42);
    WEFT_FINALLY;
    WEFT_GROUP_JOIN(self, &self->g);
    note(40, self->co.err);
    WEFT_END;
}

struct timed_service {
    WEFT_FRAME(int);
    weft_timeout to;
    struct service svc;
};

WEFT_ASYNC(timed_service)
{
    WEFT_BEGIN(self);
    WEFT_TIMEOUT_CALL(self, &self->to, 1.5, service, &self->svc);
    WEFT_END;
}

/* Defect: an outside cancel was lost once the owner waited in its join
 * (masked), so timeout(1.5) around a service never cancelled the workers
 * and the program ran forever.  Now the expiry cancels the children, the
 * join completes, and the scope fails with -ETIMEDOUT at 1.5 s (S-TG-2,
 * S-TIMEOUT-2). */
static void test_timeout_around_group_cancels_workers_in_join(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, timed_service);
    assert_int_equal(run_task(loop, t), -ETIMEDOUT);
    assert_int_equal(ev(41)->err, -ECANCELED);
    assert_int_equal(ev(42)->err, -ECANCELED);
    assert_int_equal(ev(41)->now, 1500 * MS);
    assert_int_equal(ev(40)->err, 0); /* in its cleanup: the cancellation lands as it ends */
    assert_int_equal(weft_loop_now(loop), 1500 * MS);
    finish(loop);
}

/* A supervisor that cancels the owner while it waits in its join: the
 * children are cancelled and the owner ends cancelled. */
static void cancel_later(void *t)
{
    assert_int_equal(weft_task_cancel(t), 0);
}

static void test_supervisor_cancel_of_owner_in_join_cancels_children(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, service);
    assert_int_equal(weft_call_later_ns(loop, 2 * SEC, cancel_later, t, NULL), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_true(weft_future_cancelled(t));
    assert_int_equal(ev(41)->err, -ECANCELED);
    assert_int_equal(ev(42)->now, 2 * SEC);
    weft_future_unref(t);
    finish(loop);
}

/* A child that turns its cancellation into an error of its own (asyncio's
 * `except CancelledError: raise Other`): each sibling a group aborts then
 * fails, so one group collects many errors. */
struct converter {
    WEFT_FRAME(int64_t);
    double d;
    int fail, convert;
    int64_t v;
    int err;
    weft_try t;
};

WEFT_ASYNC(converter)
{
    WEFT_BEGIN(self);
    WEFT_TRY(self, t);
    WEFT_SLEEP(self, self->d);
    WEFT_EXCEPT_CANCEL(self, t, self->err);
    if (self->err == -ECANCELED && self->convert)
        WEFT_THROW(self, self->convert);
    if (self->fail)
        WEFT_THROW(self, self->fail);
    WEFT_RETURN(self, self->v);
    WEFT_END;
}

typedef struct many_out {
    int err;
    size_t nerr, size;
    int errs[64];
    int res[64];
    int64_t val[64];
    int before_join; /* weft_group_result before the join */
} many_out;

struct grp_many {
    WEFT_FRAME(int);
    int n, first_fail, convert;
    many_out *out;
    weft_group g;
    int i;
};

WEFT_ASYNC(grp_many)
{
    WEFT_BEGIN(self);
    WEFT_GROUP_BEGIN(self, g);
    for (self->i = 0; self->i < self->n; self->i++) {
        bool first = self->i == 0;
        assert_non_null(WEFT_GROUP_SPAWN(&self->g, converter, .d = first ? 1 : 10 + self->i,
                                         .fail = first ? self->first_fail : 0,
                                         .convert = self->convert ? -1000 - self->i : 0,
                                         .v = 10 * self->i));
    }
    self->out->before_join = weft_group_result(&self->g, 0, NULL);
    WEFT_GROUP_END(self, g);
    WEFT_FINALLY;
    self->out->err = self->co.err;
    self->out->nerr = weft_group_errors(&self->g, self->out->errs, 64);
    self->out->size = weft_group_size(&self->g);
    for (size_t k = 0; k < self->out->size && k < 64; k++) {
        weft_value v = {.i = -1};
        self->out->res[k] = weft_group_result(&self->g, k, &v);
        self->out->val[k] = v.i;
    }
    WEFT_END;
}

/* Groups keep every child error, in completion order, however many: the
 * first child fails, the group aborts the other 39, and each of those turns
 * its cancellation into an error of its own.  All 40 are listed (not eight),
 * the group's error is the first, and each child's outcome is still
 * readable after the join. */
static void test_group_keeps_every_error_in_completion_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    many_out o = {0};
    weft_task *t = WEFT_SPAWN(loop, grp_many, .n = 40, .first_fail = -EIO, .convert = 1, .out = &o);
    assert_int_equal(run_task(loop, t), -EIO);
    assert_int_equal(o.before_join, WEFT_ESTATE);
    assert_int_equal(o.err, -EIO);
    assert_int_equal(o.nerr, 40);
    assert_int_equal(o.errs[0], -EIO);
    for (int k = 1; k < 40; k++) /* aborted in spawn order, so they fail in that order */
        assert_int_equal(o.errs[k], -1000 - k);
    assert_int_equal(o.size, 40);
    assert_int_equal(o.res[0], -EIO);
    for (int k = 1; k < 40; k++) {
        assert_int_equal(o.res[k], -1000 - k);
        assert_int_equal(o.val[k], 0); /* no value for a failed child */
    }
    finish(loop);
}

/* The children's outcomes after the join: values, and a cancelled child's
 * -ECANCELED, by spawn index; out of range is -EINVAL. */
static void test_group_results_are_readable_after_the_join(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    many_out o = {0};
    weft_task *t = WEFT_SPAWN(loop, grp_many, .n = 12, .out = &o);
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(o.err, 0);
    assert_int_equal(o.nerr, 0);
    assert_int_equal(o.size, 12);
    for (int k = 0; k < 12; k++) {
        assert_int_equal(o.res[k], 0);
        assert_int_equal(o.val[k], 10 * k);
    }
    finish(loop);
}

/* A child's plain cancellation (no conversion) is not an error; its
 * outcome after the join says -ECANCELED. */
static void test_group_cancelled_children_read_ecanceled_after_join(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    many_out o = {0};
    weft_task *t = WEFT_SPAWN(loop, grp_many, .n = 3, .first_fail = -EPIPE, .out = &o);
    assert_int_equal(run_task(loop, t), -EPIPE);
    assert_int_equal(o.nerr, 1);
    assert_int_equal(o.errs[0], -EPIPE);
    assert_int_equal(o.res[0], -EPIPE);
    assert_int_equal(o.res[1], -ECANCELED);
    assert_int_equal(o.res[2], -ECANCELED);
    finish(loop);
}

/* Every allocation a group makes (children array, outcome slots, the
 * spawn itself), failed in turn: the spawn returns NULL with -ENOMEM, the
 * join cancels what did start and fails with -ENOMEM, and nothing leaks. */
typedef struct grp_alloc_out {
    int spawned, err, spawn_err;
} grp_alloc_out;

struct grp_alloc {
    WEFT_FRAME(int);
    long k;
    grp_alloc_out *out;
    weft_group g;
    int i;
};

WEFT_ASYNC(grp_alloc)
{
    WEFT_BEGIN(self);
    WEFT_GROUP_BEGIN(self, g);
    for (self->i = 0; self->i < 10; self->i++) {
        if (self->i == 9) /* the 9th child's spawn grows the group's arrays */
            alloc_fail_at(alloc_calls() + self->k);
        weft_task *c = WEFT_GROUP_SPAWN(&self->g, work, .d = 1, .v = self->i);
        alloc_fail_at(0);
        if (!c) {
            self->out->spawn_err = weft_last_error();
            break;
        }
        self->out->spawned++;
    }
    WEFT_GROUP_END(self, g);
    WEFT_FINALLY;
    self->out->err = self->co.err;
    WEFT_END;
}

static void test_group_spawn_survives_every_allocation_failure(void **state)
{
    (void)state;
    for (long k = 1;; k++) {
        weft_loop *loop = vloop();
        wt_warm(loop);
        grp_alloc_out o = {0};
        int err = run_task(loop, WEFT_SPAWN(loop, grp_alloc, .k = k, .out = &o));
        if (o.spawned == 10) {
            assert_int_equal(err, 0);
            assert_int_equal(o.err, 0);
            finish(loop);
            assert_true(k > 1); /* some allocation did fail on the way */
            break;
        }
        assert_int_equal(o.spawn_err, -ENOMEM);
        assert_int_equal(o.spawned, 9);
        assert_int_equal(err, -ENOMEM);
        assert_int_equal(o.err, -ENOMEM);
        finish(loop);
    }
}

/* Defect: a spawn refused because the group is shutting down was recorded
 * as a group error (and could replace the body's error at the join).  A
 * refusal (WEFT_ESTATE) leaves the errors alone: here the body fails with
 * its own error, and spawns after the join are refused without a trace. */
struct refusing_out {
    bool refused;
    int refused_err, nerr_after, body_err;
};

struct refusing {
    WEFT_FRAME(int);
    weft_group g;
    struct refusing_out *out;
};

WEFT_ASYNC(refusing)
{
    WEFT_BEGIN(self);
    weft_group_init(&self->g, task);
    WEFT_GROUP_SPAWN(&self->g, work, .d = 1);
    WEFT_THROW(self, -EPIPE);
    WEFT_FINALLY;
    WEFT_GROUP_JOIN(self, &self->g);
    self->out->refused = WEFT_GROUP_SPAWN(&self->g, work, .d = 1) == NULL;
    self->out->refused_err = weft_last_error();
    self->out->nerr_after = (int)weft_group_errors(&self->g, NULL, 0);
    self->out->body_err = weft_group_body_error(&self->g);
    WEFT_END;
}

static void test_refused_group_spawn_is_not_a_group_error(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    struct refusing_out o = {0};
    weft_task *t = WEFT_SPAWN(loop, refusing, .out = &o);
    assert_int_equal(run(loop, t), -EPIPE); /* the body's own error */
    assert_true(o.refused);
    assert_int_equal(o.refused_err, WEFT_ESTATE);
    assert_int_equal(o.nerr_after, 0);
    assert_int_equal(o.body_err, -EPIPE);
    weft_future_unref(t);
    finish(loop);
}

static void test_refused_group_spawn_records_nothing(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    static const kidspec ks[] = {{.d = 1, .fail = -EIO}, {.d = 5}};
    grp_out o = {0};
    weft_task *g = GRP(loop, ks, &o, .body_d = 10, .spawn_while_aborting = true);
    assert_int_equal(run_task(loop, g), -EIO);
    assert_true(o.abort_null);
    assert_int_equal(o.abort_err, WEFT_ESTATE);
    assert_int_equal(o.nerr, 1); /* only the child's failure */
    finish(loop);
}

/* A gather or wait over a future that never completes, then loop destroy
 * with a task awaiting it: nothing leaks (finish() counts blocks).  Also a
 * gather and a wait nobody awaits, and a group owner waiting in its join. */
struct awaits {
    WEFT_FRAME(int);
    weft_future *f;
};

WEFT_ASYNC(awaits)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, self->f);
    WEFT_END;
}

/* Destroy without letting the tasks finish (the file's finish() drains),
 * and check that every block came back. */
static void destroy_now(weft_loop *loop)
{
    assert_int_equal(weft_loop_destroy(loop), 0);
    g_loop = NULL;
    assert_int_equal(alloc_live(), 0);
}

static void test_destroy_with_pending_combinators_leaks_nothing(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *never = weft_future_new(loop);
    weft_future *g = weft_gather(loop, (weft_future *[]){weft_future_ref(never)}, 1, 0);
    weft_future *w = weft_wait(loop, (weft_future *[]){weft_future_ref(never)}, 1,
                               WEFT_ALL_COMPLETED, WEFT_NO_TIMEOUT);
    weft_future *g2 = weft_gather(loop, (weft_future *[]){weft_future_ref(never)}, 1, 0);
    weft_task *a = WEFT_SPAWN(loop, awaits, .f = g2);
    weft_task *s = WEFT_SPAWN(loop, service);
    step(loop);
    step(loop);
    weft_future_unref(g); /* nobody holds g and w any more: they go now */
    weft_future_unref(w);
    weft_future_unref(a);
    weft_future_unref(s);
    weft_future_unref(never);
    destroy_now(loop);
    assert_int_equal(g_hook.count, 4); /* released while pending: a, s and its workers */
}

/* wait_for and shield on a closed loop are refused (WEFT_ECLOSED) and
 * allocate nothing. */
static void test_wait_for_and_shield_refuse_a_closed_loop(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_loop_close(loop), 0);
    long live = alloc_live();
    assert_null(weft_wait_for(weft_future_ref(f), 1.0));
    assert_int_equal(weft_last_error(), WEFT_ECLOSED);
    assert_null(weft_shield(weft_future_ref(f)));
    assert_int_equal(weft_last_error(), WEFT_ECLOSED);
    assert_int_equal(alloc_live(), live);
    weft_future_unref(f);
    destroy_now(loop);
}

/* One policy for seconds: NaN is -EINVAL everywhere; -INFINITY and huge
 * negative delays are "now" (no undefined behaviour: defect). */
static void test_seconds_policy_nan_einval_infinities_saturate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_null(weft_sleep(loop, NAN));
    assert_int_equal(weft_last_error(), -EINVAL);
    weft_future *y = weft_sleep(loop, -INFINITY); /* a yield */
    assert_non_null(y);
    assert_true(weft_future_done(y));
    weft_future_unref(y);
    y = weft_sleep(loop, -1e300);
    assert_non_null(y);
    weft_future_unref(y);
    weft_future *f = weft_future_new(loop);
    assert_null(weft_wait_for(weft_future_ref(f), NAN));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_wait(loop, (weft_future *[]){weft_future_ref(f)}, 1, WEFT_ALL_COMPLETED, NAN));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_as_completed_new(loop, (weft_future *[]){weft_future_ref(f)}, 1, NAN));
    assert_int_equal(weft_last_error(), -EINVAL);
    weft_future *s = weft_sleep(loop, INFINITY); /* forever: pending */
    assert_non_null(s);
    assert_false(weft_future_done(s));
    weft_future_unref(s);
    weft_future_unref(f);
    finish(loop);
}

/* as_completed: a next-future its holder cancelled is skipped, and the
 * outcome (with its pointer value's destructor) goes to the next one. */
static int g_dtor_runs;
static void count_dtor(void *p)
{
    (void)p;
    g_dtor_runs++;
}

static void test_as_completed_skips_next_futures_their_holder_finished(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_dtor_runs = 0;
    weft_future *a = weft_future_new(loop);
    weft_as_completed *ac = weft_as_completed_new(loop, (weft_future *[]){weft_future_ref(a)}, 1,
                                                  WEFT_NO_TIMEOUT);
    assert_non_null(ac);
    weft_future *n1 = weft_as_completed_next(ac);
    assert_int_equal(weft_future_cancel(n1), 0); /* its holder gives up on it */
    static int payload;
    assert_int_equal(weft_future_set_ptr(a, &payload, count_dtor), 0);
    step(loop);
    assert_true(weft_future_cancelled(n1)); /* not overwritten */
    weft_as_completed_free(ac);
    weft_future_unref(n1);
    assert_int_equal(g_dtor_runs, 0); /* still a's: it holds the value */
    weft_future_unref(a);
    assert_int_equal(g_dtor_runs, 1); /* the value nobody took is destroyed once */
    finish(loop);
}

/* as_completed: a next-future its holder completed itself (set a value on
 * it) is not overwritten by the outcome that arrives later; that outcome,
 * a pointer value with a destructor, stays with its source, whose release
 * destroys it exactly once. */
static void test_as_completed_skips_a_next_future_completed_by_its_holder(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_dtor_runs = 0;
    weft_future *a = weft_future_new(loop);
    weft_as_completed *ac = weft_as_completed_new(loop, (weft_future *[]){weft_future_ref(a)}, 1,
                                                  WEFT_NO_TIMEOUT);
    assert_non_null(ac);
    weft_future *n1 = weft_as_completed_next(ac);
    assert_non_null(n1);
    assert_int_equal(weft_future_set_int(n1, 5), 0); /* its holder finishes it */
    static int payload;
    assert_int_equal(weft_future_set_ptr(a, &payload, count_dtor), 0);
    step(loop);
    weft_value v = {0};
    assert_int_equal(weft_future_result(n1, &v), 0);
    assert_int_equal(v.i, 5); /* not overwritten */
    weft_as_completed_free(ac);
    weft_future_unref(n1);
    assert_int_equal(g_dtor_runs, 0); /* still a's */
    weft_future_unref(a);
    assert_int_equal(g_dtor_runs, 1); /* destroyed once */
    finish(loop);
}

/* weft_as_completed_next's own allocation, failed in turn: NULL with
 * -ENOMEM, nothing delivered to a future that does not exist, and the
 * outcome still reaches the next call that succeeds. */
static void test_as_completed_next_survives_allocation_failure(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    wt_warm(loop);
    weft_future *a = weft_future_new(loop);
    weft_as_completed *ac = weft_as_completed_new(loop, (weft_future *[]){weft_future_ref(a)}, 1,
                                                  WEFT_NO_TIMEOUT);
    assert_non_null(ac);
    assert_int_equal(weft_future_set_int(a, 11), 0);
    step(loop);
    weft_future *n = NULL;
    int failures = 0;
    for (long k = 1; !n; k++) {
        alloc_fail_all(k == 1);
        n = weft_as_completed_next(ac);
        alloc_fail_all(false);
        if (!n) {
            failures++;
            assert_int_equal(weft_last_error(), -ENOMEM);
        }
    }
    assert_int_equal(failures, 1);
    step(loop);
    weft_value v = {0};
    assert_int_equal(weft_future_result(n, &v), 0);
    assert_int_equal(v.i, 11);
    weft_future_unref(n);
    weft_as_completed_free(ac);
    weft_future_unref(a);
    finish(loop);
}

/* gather, wait and shield refuse a lock waiter (-EINVAL) and withdraw it:
 * the lock is not handed to a frame that no longer waits for it (defect). */
static void test_combinators_refuse_waiters_and_withdraw_them(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_lock l;
    assert_int_equal(weft_lock_init(&l, loop), 0);
    weft_waiter holder = {0}, w1 = {0}, w2 = {0}, w3 = {0};
    weft_future *h = weft_lock_acquire(&l, &holder);
    assert_true(weft_future_done(h));
    assert_null(weft_gather(loop, (weft_future *[]){weft_lock_acquire(&l, &w1)}, 1, 0));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_wait(loop, (weft_future *[]){weft_lock_acquire(&l, &w2)}, 1,
                          WEFT_ALL_COMPLETED, WEFT_NO_TIMEOUT));
    assert_null(weft_shield(weft_lock_acquire(&l, &w3)));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_int_equal(weft_lock_waiters(&l), 0);
    weft_future_unref(h);
    assert_int_equal(weft_lock_release(&l), 0);
    assert_false(weft_lock_locked(&l)); /* nobody was handed the lock */
    finish(loop);
}

/* Every allocation of wait_for over a queued lock acquire, failed in turn:
 * the waiter is withdrawn each time (no use-after-free at the release),
 * nothing leaks, and the last try succeeds. */
static void test_wait_for_on_lock_survives_every_allocation_failure(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    wt_warm(loop);
    weft_lock l;
    assert_int_equal(weft_lock_init(&l, loop), 0);
    weft_waiter holder = {0}, w = {0};
    weft_future *h = weft_lock_acquire(&l, &holder);
    int failures = 0;
    for (long k = 1;; k++) {
        alloc_fail_at(alloc_calls() + k);
        weft_future *f = weft_wait_for(weft_lock_acquire(&l, &w), 1.0);
        alloc_fail_at(0);
        if (f) {
            assert_int_equal(weft_lock_waiters(&l), 1);
            weft_future_unref(f); /* wait_for released: its lock waiter stays queued */
            break;
        }
        failures++;
        assert_int_equal(weft_last_error(), -ENOMEM);
        assert_int_equal(weft_lock_waiters(&l), 0);
    }
    assert_true(failures >= 1);
    weft_future_cancel((weft_future *)(void *)&w); /* withdraw the waiter */
    weft_future_unref(h);
    assert_int_equal(weft_lock_release(&l), 0);
    assert_false(weft_lock_locked(&l));
    finish(loop);
}

/* Every allocation site of the combinators, failed in turn (a countdown
 * per constructor): each fails with -ENOMEM, leaks nothing (no block and no
 * reference: finish() checks both at destroy), and the one that succeeds
 * works. */
static void test_combinator_constructors_survive_every_allocation_failure(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    wt_warm(loop);
    for (int which = 0; which < 7; which++) {
        for (long k = 1;; k++) {
            weft_future *a = weft_future_new(loop), *b = weft_future_new(loop);
            assert_non_null(a);
            assert_non_null(b);
            alloc_fail_at(alloc_calls() + k);
            weft_future *f = NULL;
            weft_as_completed *ac = NULL;
            weft_future *fs[] = {weft_future_ref(a), weft_future_ref(b)};
            switch (which) {
            case 0: f = weft_gather(loop, fs, 2, 0); break;
            case 1: f = weft_wait(loop, fs, 2, WEFT_FIRST_COMPLETED, 5.0); break;
            case 2: ac = weft_as_completed_new(loop, fs, 2, 5.0); break;
            case 3: f = weft_wait_for(fs[0], 5.0); weft_future_unref(b); break;
            case 4: f = weft_shield(fs[0]); weft_future_unref(b); break;
            case 5: f = weft_sleep(loop, 5.0); weft_future_unref(fs[0]); weft_future_unref(fs[1]); break;
            default: f = weft_sleep_result(loop, 5.0, (weft_value){.i = 1}); weft_future_unref(fs[0]); weft_future_unref(fs[1]); break;
            }
            alloc_fail_at(0);
            bool ok = f || ac;
            if (!ok) /* (the pool may keep what it grew; finish() checks for leaks) */
                assert_int_equal(weft_last_error(), -ENOMEM);
            if (ac)
                weft_as_completed_free(ac);
            weft_future_unref(f);
            weft_future_unref(a);
            weft_future_unref(b);
            if (ok)
                break;
        }
    }
    finish(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* sleep */
        T(test_sleep_completes_at_exact_loop_time),
        T(test_sleep_zero_interleaves_two_tasks_strictly),
        T(test_sleep_zero_resumes_after_handles_already_queued),
        T(test_sleep_nan_is_einval),
        T(test_sleep_result_carries_its_value),
        T(test_wait_readable_completes_once_and_unregisters),
        T(test_wait_writable_and_readable_coexist),
        T(test_wait_readable_cancel_busy_and_bad_input),
        T(test_wait_readable_task_cancel_enomem_and_close),
        T(test_cancelling_sleeping_task_drops_its_timer),
        T(test_destroying_loop_with_sleeping_task_releases_everything),
        /* gather */
        T(test_gather_results_in_argument_order),
        T(test_gather_of_nothing_is_already_done),
        T(test_gather_of_done_children_is_already_done),
        T(test_gather_first_failure_fails_at_once_and_cancels_siblings),
        T(test_gather_all_collects_every_outcome),
        T(test_gather_child_cancelled_by_third_party_is_not_a_failure),
        T(test_cancelling_gather_cancels_it_at_once_and_its_children),
        T(test_cancelling_task_awaiting_gather_cancels_children),
        T(test_gather_with_null_entry_fails_and_releases_the_rest),
        /* wait */
        T(test_wait_first_completed_returns_at_first_completion),
        T(test_wait_first_completed_counts_a_cancellation),
        T(test_wait_first_exception_returns_at_first_failure),
        T(test_wait_first_exception_ignores_cancellation_and_waits_for_all),
        T(test_wait_all_completed_waits_for_every_future),
        T(test_wait_timeout_returns_without_cancelling),
        T(test_wait_timeout_over_never_completing_future_then_destroy_leaks_nothing),
        T(test_wait_of_nothing_or_bad_mode_is_einval),
        /* wait_for */
        T(test_wait_for_times_out_exactly_when_inner_cleans_up_at_once),
        T(test_wait_for_timeout_waits_for_inner_cleanup),
        T(test_wait_for_returns_value_when_inner_completes_first),
        T(test_wait_for_value_in_timeout_iteration_wins_future),
        T(test_wait_for_value_in_timeout_iteration_wins_task),
        T(test_wait_for_outside_cancellation_is_not_swallowed),
        T(test_wait_for_race_with_outside_cancellation_ends_cancelled),
        T(test_wait_for_passes_inner_outcome_through_unchanged),
        T(test_wait_for_negative_timeout_nan_and_done_future),
        /* shield */
        T(test_shield_cancelling_awaiter_does_not_cancel_inner),
        T(test_shield_of_done_future_returns_it),
        T(test_shield_mirrors_inner_value_and_cancellation),
        /* as_completed */
        T(test_as_completed_yields_in_completion_order),
        T(test_as_completed_timeout_fails_remaining_without_cancelling),
        T(test_as_completed_of_nothing_is_exhausted_at_once),
        /* timeout scopes */
        T(test_timeout_expiry_turns_own_cancellation_into_etimedout),
        T(test_timeout_expiry_propagates_etimedout),
        T(test_timeout_not_expired_returns_child_value_and_disarms),
        T(test_timeout_scope_that_did_not_expire_lets_ecanceled_through),
        T(test_outside_cancellation_in_expiry_iteration_stays_ecanceled),
        T(test_outside_cancellation_during_scope_cleanup_waits_for_it),
        T(test_nested_scopes_outer_expires_first),
        T(test_nested_scopes_inner_expires_first),
        T(test_timeout_zero_around_child_that_never_awaits_does_not_expire),
        T(test_timeout_zero_around_child_that_awaits_expires_at_once),
        T(test_timeout_zero_around_bare_yield_expires),
        T(test_timeout_reschedule_later_moves_expiry),
        T(test_timeout_reschedule_earlier_moves_expiry),
        T(test_timeout_reschedule_never_disables_expiry),
        T(test_timeout_reschedule_to_the_past_expires_at_next_iteration),
        T(test_timeout_reschedule_outside_active_scope_is_estate),
        T(test_timeout_expired_is_true_from_expiry_on),
        T(test_timeout_at_uses_absolute_deadline),
        /* task groups */
        T(test_group_first_failure_cancels_siblings_and_body),
        T(test_group_join_waits_for_all_children),
        T(test_group_errors_are_in_completion_order),
        T(test_group_child_cancellation_is_not_an_error),
        T(test_group_body_error_aborts_children),
        T(test_group_outside_cancellation_cancels_children),
        T(test_group_restores_owner_cancelling_after_join),
        T(test_group_spawn_into_aborting_or_joined_group_is_estate),
        T(test_group_child_error_takes_precedence_over_body_error),
        /* regressions */
        T(test_timeout_around_group_cancels_workers_in_join),
        T(test_supervisor_cancel_of_owner_in_join_cancels_children),
        T(test_refused_group_spawn_is_not_a_group_error),
        T(test_refused_group_spawn_records_nothing),
        T(test_group_keeps_every_error_in_completion_order),
        T(test_group_results_are_readable_after_the_join),
        T(test_group_cancelled_children_read_ecanceled_after_join),
        T(test_group_spawn_survives_every_allocation_failure),
        T(test_destroy_with_pending_combinators_leaks_nothing),
        T(test_wait_for_and_shield_refuse_a_closed_loop),
        T(test_seconds_policy_nan_einval_infinities_saturate),
        T(test_as_completed_skips_next_futures_their_holder_finished),
        T(test_as_completed_skips_a_next_future_completed_by_its_holder),
        T(test_as_completed_next_survives_allocation_failure),
        T(test_combinators_refuse_waiters_and_withdraw_them),
        T(test_wait_for_on_lock_survives_every_allocation_failure),
        T(test_combinator_constructors_survive_every_allocation_failure),
    };
    return RUN_TESTS(tests);
}
