/* tests/test_loop.c - the loop core, pinned one guarantee per test.
 *
 * Each test is named after the guarantee it pins (include/weft/loop.h) and
 * cites the asyncio statement it mirrors (S-LOOP-n in
 * shared/reference/asyncio-semantics.md, section 1).
 *
 * Time.  Nothing here sleeps and hopes.  Time-dependent tests use the
 * virtual clock (WEFT_LOOP_VIRTUAL_CLOCK): time starts at 0, never moves
 * while callbacks run, and when the loop would otherwise block with timers
 * pending it jumps straight to the earliest deadline.  So "an hour later"
 * takes microseconds and every timer is observed exactly at its deadline
 * (now == deadline), which lets the tests compare times with ==.  The few
 * tests that need real time (lag reports, never-early on the real clock,
 * threads) assert nothing about how long anything took.
 *
 * Leaks.  Every loop is created with a counting allocator, and finish()
 * destroys the loop and asserts that no block is still live.  The
 * allocation tests use the same allocator to fail chosen allocations.
 *
 * fd tests run once per backend the build has ("epoll" and "poll" on
 * Linux, "kqueue" on the BSDs and macOS or with libkqueue); the backend
 * name is the cmocka initial state.  A watchdog alarm kills a hung test.
 */
#include "weft_test.h"

#include "backend_features.h" /* WEFT__HAVE_*: the backends this build has */
#include "loop_internal.h"    /* the lag flag, the watchdog's state, layers */

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

/* ---- recorders (more in weft_test.h) -------------------------------------------- */

static int g_count[8];
static int g_rc, g_rc2;

static void noop(void *arg)
{
    (void)arg;
}

static void rec_stop(void *tag)
{
    rec(tag);
    stop_cb(NULL);
}

static void count_cb(void *tag)
{
    g_count[(intptr_t)tag]++;
}

/* ---- loops (more in weft_test.h) ------------------------------------------------ */

/* Run until loop time reaches when_ns (virtual clock: instantly). */
static void run_until(weft_loop *loop, int64_t when_ns)
{
    assert_int_equal(weft_call_at_ns(loop, when_ns, stop_cb, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
}

/* ---- fds and real time ------------------------------------------------------- */

static void make_pipe(int p[2])
{
    assert_int_equal(pipe(p), 0);
}

static void close_pair(int p[2])
{
    close(p[0]);
    close(p[1]);
}

static void write_byte(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    return fd;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- fixtures ------------------------------------------------------------------ */

/* An error report (none is expected here) is printed, as the loop's default
 * hook would. */
static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 120, .echo_reports = true});
    memset(g_count, 0, sizeof g_count);
    g_rc = g_rc2 = 12345;
    return 0;
}

/* =============================================================================
 * Lifecycle
 * ========================================================================== */

/* Defaults: opts may be NULL; the loop picks one of the known backends. */
static void test_loop_new_with_null_options_uses_defaults(void **state)
{
    (void)state;
    weft_loop *loop = NULL;
    assert_int_equal(weft_loop_new(&loop, NULL), 0);
    const char *b = weft_loop_backend(loop);
    assert_non_null(b);
    assert_true(strcmp(b, "epoll") == 0 || strcmp(b, "kqueue") == 0 || strcmp(b, "poll") == 0);
    assert_false(weft_loop_is_running(loop));
    assert_false(weft_loop_is_closed(loop));
    assert_int_equal(weft_loop_destroy(loop), 0);
}

static void test_loop_new_rejects_null_out(void **state)
{
    (void)state;
    weft_loop_options o = loop_options(NULL, 0);
    assert_int_equal(weft_loop_new(NULL, &o), -EINVAL);
    assert_int_equal(weft_loop_new(NULL, NULL), -EINVAL);
    assert_int_equal(alloc_live(), 0);
}

/* Unknown backend name -> -EINVAL, *out untouched, nothing leaked. */
static void test_loop_new_rejects_unknown_backend(void **state)
{
    (void)state;
    static char sentinel;
    weft_loop *out = (weft_loop *)(void *)&sentinel;
    weft_loop_options o = loop_options("kqueue-on-linux", 0);
    assert_int_equal(weft_loop_new(&out, &o), -EINVAL);
    assert_ptr_equal(out, &sentinel);
    assert_int_equal(alloc_live(), 0);
}

/* Both named backends work and report their name. */
static void test_loop_new_accepts_named_backend(void **state)
{
    const char *backend = *state;
    weft_loop *loop = vloop_on(backend);
    assert_string_equal(weft_loop_backend(loop), backend);
    assert_int_equal(weft_call_soon(loop, rec, TAG(1), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(1);
    finish(loop);
}

/* Saves, sets and restores an environment variable around a test. */
typedef struct saved_env {
    const char *name;
    char *old;
} saved_env;

static saved_env env_set(const char *name, const char *value)
{
    saved_env s = {name, NULL};
    const char *old = getenv(name);
    if (old)
        s.old = strdup(old);
    assert_int_equal(setenv(name, value, 1), 0);
    return s;
}

static void env_restore(saved_env s)
{
    if (s.old) {
        setenv(s.name, s.old, 1);
        free(s.old);
    } else {
        unsetenv(s.name);
    }
}

/* backend == NULL honours $WEFT_BACKEND. */
static void test_backend_env_var_selects_backend(void **state)
{
    (void)state;
    saved_env e = env_set("WEFT_BACKEND", "poll");
    weft_loop *loop = loop_on(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
    env_restore(e);
    assert_string_equal(weft_loop_backend(loop), "poll");
    finish(loop);
}

/* WEFT_CLOCK=virtual selects the virtual clock without the flag.  (If it
 * did not, the run_once below would wait 0.2 s of real time and the exact
 * comparison would fail - no hang.) */
static void test_clock_env_var_selects_virtual_clock(void **state)
{
    (void)state;
    saved_env e = env_set("WEFT_CLOCK", "virtual");
    weft_loop *loop = loop_on(NULL, 0);
    env_restore(e);
    assert_int_equal(weft_call_later_ns(loop, 200 * MS, rec, TAG(1), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(1);
    assert_int_equal(weft_loop_now(loop), 200 * MS);
    finish(loop);
}

/* NULL loop or object -> -EINVAL: lifecycle and running. */
static void test_null_arguments_return_einval_lifecycle(void **state)
{
    (void)state;
    assert_int_equal(weft_loop_close(NULL), -EINVAL);
    assert_int_equal(weft_loop_destroy(NULL), 0); /* documented no-op */
    assert_int_equal(weft_loop_run_forever(NULL), -EINVAL);
    assert_int_equal(weft_loop_run_once(NULL), -EINVAL);
    assert_int_equal(weft_loop_stop(NULL), -EINVAL);
    assert_false(weft_loop_is_running(NULL));
    weft_loop_stats s;
    assert_int_equal(weft_loop_get_stats(NULL, &s), -EINVAL);
    weft_loop *loop = vloop();
    assert_int_equal(weft_loop_get_stats(loop, NULL), -EINVAL);
    finish(loop);
}

/* NULL loop, callback or object -> -EINVAL: scheduling. */
static void test_null_arguments_return_einval_scheduling(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_call c = {0};
    weft_handle h;
    weft_timer t;
    weft_handle_init(&h, rec, TAG(1));
    assert_int_equal(weft_call_soon(NULL, rec, NULL, &c), -EINVAL);
    assert_int_equal(weft_call_soon(loop, NULL, NULL, &c), -EINVAL);
    assert_int_equal(weft_call_later(NULL, 1.0, rec, NULL, &c), -EINVAL);
    assert_int_equal(weft_call_later(loop, 1.0, NULL, NULL, &c), -EINVAL);
    assert_int_equal(weft_call_later(loop, NAN, rec, NULL, &c), -EINVAL);
    assert_int_equal(weft_call_at(NULL, 1.0, rec, NULL, &c), -EINVAL);
    assert_int_equal(weft_call_at(loop, NAN, rec, NULL, &c), -EINVAL);
    assert_int_equal(weft_call_later_ns(NULL, 1, rec, NULL, &c), -EINVAL);
    assert_int_equal(weft_call_at_ns(NULL, 1, rec, NULL, &c), -EINVAL);
    assert_int_equal(weft_call_soon_threadsafe(NULL, rec, NULL), -EINVAL);
    assert_int_equal(weft_call_soon_threadsafe(loop, NULL, NULL), -EINVAL);
    assert_int_equal(weft_call_cancel(NULL, c), -EINVAL);
    assert_int_equal(weft_handle_schedule(NULL, &h), -EINVAL);
    assert_int_equal(weft_handle_schedule(loop, NULL), -EINVAL);
    assert_int_equal(weft_handle_cancel(NULL), -EINVAL);
    assert_int_equal(weft_timer_init(&t, NULL, rec, NULL), -EINVAL);
    assert_int_equal(weft_timer_init(NULL, loop, rec, NULL), -EINVAL);
    assert_int_equal(weft_timer_start_ns(NULL, 1, 0), -EINVAL);
    assert_int_equal(weft_timer_start_at_ns(NULL, 1, 0), -EINVAL);
    assert_int_equal(weft_timer_stop(NULL), -EINVAL);
    weft_timer_close(NULL); /* no-op */
    step(loop);             /* none of it was queued */
    assert_int_equal(g_n, 0);
    finish(loop);
}

/* weft_timer_start on a zeroed, never-initialised timer -> -EINVAL. */
static void test_timer_start_uninitialised_returns_einval(void **state)
{
    (void)state;
    weft_timer t;
    memset(&t, 0, sizeof t);
    assert_int_equal(weft_timer_start_ns(&t, 1, 0), -EINVAL);
    assert_int_equal(weft_timer_start_at_ns(&t, 1, 0), -EINVAL);
}

/* NULL loop or callback -> -EINVAL: watchers and hooks. */
static void test_null_arguments_return_einval_watchers_and_hooks(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int p[2];
    make_pipe(p);
    assert_int_equal(weft_add_reader(NULL, p[0], rec, NULL), -EINVAL);
    assert_int_equal(weft_add_reader(loop, p[0], NULL, NULL), -EINVAL);
    assert_int_equal(weft_add_writer(NULL, p[1], rec, NULL), -EINVAL);
    assert_int_equal(weft_add_writer(loop, p[1], NULL, NULL), -EINVAL);
    assert_int_equal(weft_remove_reader(NULL, p[0]), -EINVAL);
    assert_int_equal(weft_remove_writer(NULL, p[1]), -EINVAL);
    assert_int_equal(weft_loop_set_report_hook(NULL, NULL, NULL), -EINVAL);
    assert_int_equal(weft_loop_set_lag_threshold(NULL, 1), -EINVAL);
    assert_int_equal(weft_loop_set_iteration_hook(NULL, NULL, NULL), -EINVAL);
    assert_int_equal(weft_loop_request_dump(NULL), -EINVAL);
    assert_int_equal(weft_remove_reader(loop, p[0]), -ENOENT); /* nothing was added */
    close_pair(p);
    finish(loop);
}

static void note_running(void *arg)
{
    (void)arg;
    g_rc = weft_loop_is_running(g_loop);
    g_rc2 = weft_running_loop() == g_loop;
}

/* S-LOOP-14: is_running is true inside callbacks, false outside. */
static void test_is_running_only_inside_callbacks(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_false(weft_loop_is_running(loop));
    assert_int_equal(weft_call_soon(loop, note_running, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_rc, 1);
    assert_false(weft_loop_is_running(loop));
    finish(loop);
}

/* S-LOOP-20: weft_running_loop() is the loop inside callbacks, NULL outside. */
static void test_running_loop_is_set_only_inside_callbacks(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_null(weft_running_loop());
    assert_int_equal(weft_call_soon(loop, note_running, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_rc2, 1);
    assert_null(weft_running_loop());
    finish(loop);
}

/* S-LOOP-14: is_closed after close. */
static void test_is_closed_after_close(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_false(weft_loop_is_closed(loop));
    assert_int_equal(weft_loop_close(loop), 0);
    assert_true(weft_loop_is_closed(loop));
    finish(loop);
}

/* S-LOOP-13: close is idempotent. */
static void test_close_twice_is_fine(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_true(weft_loop_is_closed(loop));
    finish(loop);
}

static void close_self(void *arg)
{
    (void)arg;
    g_rc = weft_loop_close(g_loop);
}

/* S-LOOP-13: a running loop cannot be closed. */
static void test_close_from_callback_returns_ebusy(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_soon(loop, close_self, NULL, NULL), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(1), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_rc, -EBUSY);
    assert_false(weft_loop_is_closed(loop));
    EXPECT_TAGS(1); /* the batch went on */
    finish(loop);
}

static void destroy_self(void *arg)
{
    (void)arg;
    g_rc = weft_loop_destroy(g_loop);
}

/* A running loop cannot be destroyed; nothing is freed. */
static void test_destroy_from_callback_returns_ebusy(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_soon(loop, destroy_self, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_rc, -EBUSY);
    assert_false(weft_loop_is_closed(loop));
    finish(loop);
}

static void run_nested(void *arg)
{
    weft_loop *target = arg ? arg : g_loop;
    g_rc = weft_loop_run_forever(target);
    g_rc2 = weft_loop_run_once(target);
}

/* S-LOOP-11: run_forever / run_once of a running loop -> -EBUSY. */
static void test_nested_run_returns_ebusy(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_soon(loop, run_nested, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_rc, -EBUSY);
    assert_int_equal(g_rc2, -EBUSY);
    finish(loop);
}

/* S-LOOP-11: another loop cannot run while one runs in this thread. */
static void test_running_second_loop_in_same_thread_returns_ebusy(void **state)
{
    (void)state;
    weft_loop *other = vloop();
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_soon(other, rec, TAG(9), NULL), 0);
    assert_int_equal(weft_call_soon(loop, run_nested, other, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_rc, -EBUSY);
    assert_int_equal(g_rc2, -EBUSY);
    assert_int_equal(g_n, 0); /* other's callback did not run */
    assert_int_equal(weft_loop_destroy(other), 0);
    finish(loop);
}

/* S-LOOP-13: a closed loop refuses every way to add work, and the callbacks
 * passed to the refused calls never run. */
static void test_closed_loop_refuses_scheduling(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int p[2];
    make_pipe(p);
    weft_timer t, t2;
    weft_handle h;
    weft_call c;
    assert_int_equal(weft_timer_init(&t, loop, rec, TAG(1)), 0);
    weft_handle_init(&h, rec, TAG(2));
    assert_int_equal(weft_loop_close(loop), 0);

    assert_int_equal(weft_call_soon(loop, rec, TAG(3), &c), WEFT_ECLOSED);
    assert_int_equal(weft_call_later(loop, 0.0, rec, TAG(3), &c), WEFT_ECLOSED);
    assert_int_equal(weft_call_at(loop, 0.0, rec, TAG(3), &c), WEFT_ECLOSED);
    assert_int_equal(weft_call_later_ns(loop, 0, rec, TAG(3), &c), WEFT_ECLOSED);
    assert_int_equal(weft_call_at_ns(loop, 0, rec, TAG(3), &c), WEFT_ECLOSED);
    assert_int_equal(weft_handle_schedule(loop, &h), WEFT_ECLOSED);
    assert_int_equal(weft_timer_init(&t2, loop, rec, TAG(3)), WEFT_ECLOSED);
    assert_int_equal(weft_timer_start_ns(&t, 0, 0), WEFT_ECLOSED);
    assert_int_equal(weft_timer_start_at_ns(&t, 0, 0), WEFT_ECLOSED);
    assert_int_equal(weft_add_reader(loop, p[0], rec, TAG(3)), WEFT_ECLOSED);
    assert_int_equal(weft_add_writer(loop, p[1], rec, TAG(3)), WEFT_ECLOSED);
    assert_int_equal(weft_remove_reader(loop, p[0]), WEFT_ECLOSED);
    assert_int_equal(weft_call_soon_threadsafe(loop, rec, TAG(3)), WEFT_ECLOSED);

    assert_false(weft_handle_pending(&h));
    assert_false(weft_timer_active(&t));
    weft_timer_close(&t);
    assert_int_equal(g_n, 0);
    close_pair(p);
    finish(loop);
}

/* S-LOOP-13: a closed loop refuses to run or stop. */
static void test_closed_loop_refuses_to_run(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(weft_loop_run_forever(loop), WEFT_ECLOSED);
    assert_int_equal(weft_loop_run_once(loop), WEFT_ECLOSED);
    assert_int_equal(weft_loop_stop(loop), WEFT_ECLOSED);
    finish(loop);
}

/* S-LOOP-13: close discards queued work without running any of it. */
static void test_close_drops_pending_work_without_running_it(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int p[2];
    make_pipe(p);
    write_byte(p[1]);
    weft_timer t;
    weft_handle h;
    weft_handle_init(&h, rec, TAG(1));
    assert_int_equal(weft_timer_init(&t, loop, rec, TAG(2)), 0);
    assert_int_equal(weft_timer_start_ns(&t, 0, 0), 0);
    assert_int_equal(weft_handle_schedule(loop, &h), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(3), NULL), 0);
    assert_int_equal(weft_call_later(loop, 0.0, rec, TAG(4), NULL), 0);
    assert_int_equal(weft_add_reader(loop, p[0], rec, TAG(5)), 0);
    assert_int_equal(weft_call_soon_threadsafe(loop, rec, TAG(6)), 0);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(g_n, 0);
    assert_false(weft_handle_pending(&h));
    assert_false(weft_timer_active(&t));
    weft_timer_close(&t);
    close_pair(p);
    finish(loop);
}

/* destroy closes an open loop with pending work, and frees everything. */
static void test_destroy_releases_open_loop_with_pending_work(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int p[2];
    make_pipe(p);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(weft_call_soon(loop, rec, TAG(1), NULL), 0);
        assert_int_equal(weft_call_later(loop, i, rec, TAG(2), NULL), 0);
    }
    assert_int_equal(weft_add_reader(loop, p[0], rec, TAG(3)), 0);
    assert_int_equal(weft_call_soon_threadsafe(loop, rec, TAG(4)), 0);
    finish(loop);
    assert_int_equal(g_n, 0);
    close_pair(p);
}

/* weft_strerror: never NULL; distinct texts for distinct codes. */
static void test_strerror_gives_distinct_texts(void **state)
{
    (void)state;
    const int codes[] = {WEFT_ECLOSED, WEFT_ESTATE, -ENOMEM, -EINVAL, 987654};
    const char *s[5];
    for (int i = 0; i < 5; i++) {
        s[i] = weft_strerror(codes[i]);
        assert_non_null(s[i]);
        assert_true(s[i][0] != '\0');
    }
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            assert_true(strcmp(s[i], s[j]) != 0);
    assert_non_null(weft_strerror(-987654));
    assert_non_null(weft_strerror(0));
}

/* Every text is static: the pointer for a code is the same in every call
 * and in every thread, and a later call for another code leaves an earlier
 * text alone (no per-thread buffer: -EIO, -ENOSPC, ... included). */
static void *strerror_in_thread(void *arg)
{
    return (void *)weft_strerror(*(int *)arg);
}

static void test_strerror_texts_are_static_for_every_errno(void **state)
{
    (void)state;
    const int codes[] = {-EIO, -ENOSPC, -EACCES, -EMFILE, -EHOSTUNREACH, -EADDRINUSE, -ENOTCONN};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *a = weft_strerror(codes[i]);
        char copy[128];
        snprintf(copy, sizeof copy, "%s", a);
        assert_string_not_equal(a, "unknown error");
        assert_string_not_equal(weft_strerror(-E2BIG), a); /* another call ... */
        assert_string_equal(a, copy);                      /* ... left it alone */
        assert_ptr_equal(weft_strerror(codes[i]), a);
        pthread_t th;
        void *other = NULL;
        int code = codes[i];
        assert_int_equal(pthread_create(&th, NULL, strerror_in_thread, &code), 0);
        assert_int_equal(pthread_join(th, &other), 0);
        assert_ptr_equal(other, a); /* the same text in another thread */
    }
    assert_string_equal(weft_strerror(-4000), "unknown error");
}

/* =============================================================================
 * Ordering (S-LOOP-1, 3, 5, 6)
 * ========================================================================== */

static void schedule_next(void *tag)
{
    rec(tag);
    assert_int_equal(weft_call_soon(g_loop, rec_stop, TAG(2), NULL), 0);
}

/* S-LOOP-3: a callback queued by a running callback runs in the next
 * iteration, never in the current one. */
static void test_call_soon_runs_in_next_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_soon(loop, schedule_next, TAG(1), NULL), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    EXPECT_TAGS(1, 2);
    assert_int_equal(g_ev[1].iter, g_ev[0].iter + 1);
    finish(loop);
}

/* S-LOOP-6: call_soon callbacks run FIFO. */
static void test_call_soon_runs_fifo(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    for (int i = 0; i < 6; i++)
        assert_int_equal(weft_call_soon(loop, rec, TAG(i), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(0, 1, 2, 3, 4, 5);
    finish(loop);
}

static void later_then_soon(void *arg)
{
    (void)arg;
    assert_int_equal(weft_call_later(g_loop, 0.0, rec, TAG(2), NULL), 0);
    assert_int_equal(weft_call_later(g_loop, -1.0, rec, TAG(3), NULL), 0);
    assert_int_equal(weft_call_soon(g_loop, rec, TAG(1), NULL), 0);
}

/* S-LOOP-5 (T04): call_later(0) (and call_later(-1)) run after a call_soon
 * issued later in the same iteration, in the same next iteration; the
 * negative delay is a deadline in the past, so it fires first of the two. */
static void test_call_later_zero_runs_after_later_call_soon(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_soon(loop, later_then_soon, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_n, 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(1, 3, 2);
    assert_int_equal(g_ev[0].iter, g_ev[2].iter);
    finish(loop);
}

/* Issue 7 defect 3 (asyncio: call_later(d) = call_at(now + d)): a negative
 * delay is a deadline in the past and fires before a call_later(0) made
 * earlier, and in deadline order among themselves. */
static void test_call_later_negative_delay_fires_before_earlier_call_later_zero(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    run_until(loop, 10 * SEC);
    g_n = 0;
    assert_int_equal(weft_call_later(loop, 0.0, rec, TAG(1), NULL), 0);
    assert_int_equal(weft_call_later(loop, -1.0, rec, TAG(2), NULL), 0);
    assert_int_equal(weft_call_later(loop, -5.0, rec, TAG(3), NULL), 0);
    assert_int_equal(weft_call_later_ns(loop, -1, rec, TAG(4), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(3, 2, 4, 1);
    assert_int_equal(weft_loop_now(loop), 10 * SEC); /* the clock did not move */
    finish(loop);
}

/* S-LOOP-1/5: within one iteration: ready queue, then I/O, then timers -
 * whatever order they were requested in. */
static void test_iteration_runs_ready_then_io_then_timers(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    write_byte(p[1]);
    assert_int_equal(weft_call_later(loop, 0.0, rec, TAG(3), NULL), 0);
    assert_int_equal(weft_add_reader(loop, p[0], rec, TAG(2)), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(1), NULL), 0);
    step(loop);
    EXPECT_TAGS(1, 2, 3);
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    close_pair(p);
    finish(loop);
}

/* Stats: iterations and callbacks are counted; cancelled ones are not run. */
static void test_stats_count_iterations_and_callbacks(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_call c;
    assert_int_equal(weft_call_soon(loop, noop, NULL, NULL), 0);
    assert_int_equal(weft_call_soon(loop, noop, NULL, &c), 0);
    assert_int_equal(weft_call_soon(loop, noop, NULL, NULL), 0);
    assert_int_equal(weft_call_cancel(loop, c), 0);
    weft_loop_stats before = stats(loop);
    assert_int_equal(weft_loop_run_once(loop), 0);
    weft_loop_stats after = stats(loop);
    assert_int_equal(after.iterations - before.iterations, 1);
    assert_int_equal(after.callbacks - before.callbacks, 2);
    finish(loop);
}

/* loop.h: with no fd watched the backend is not asked, so a busy ready
 * queue costs no backend wait per iteration. */
static void test_busy_ready_queue_without_fds_makes_no_backend_wait(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    for (int i = 0; i < 100; i++) {
        assert_int_equal(weft_call_soon(loop, noop, NULL, NULL), 0);
        assert_int_equal(weft_loop_run_once(loop), 0);
    }
    assert_int_equal(stats(loop).polls, 0);
    finish(loop);
}

/* =============================================================================
 * stop (S-LOOP-10)
 * ========================================================================== */

static void stop_and_queue(void *tag)
{
    rec(tag);
    assert_int_equal(weft_loop_stop(g_loop), 0);
    assert_int_equal(weft_call_soon(g_loop, rec, TAG(4), NULL), 0);
}

/* S-LOOP-10 (T02): stop lets the rest of the current batch run. */
static void test_stop_lets_current_batch_finish(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_soon(loop, rec, TAG(1), NULL), 0);
    assert_int_equal(weft_call_soon(loop, stop_and_queue, TAG(2), NULL), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(3), NULL), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    EXPECT_TAGS(1, 2, 3);
    finish(loop);
}

/* S-LOOP-10: what the stopping batch queued stays queued for the next run. */
static void test_callbacks_queued_by_stopping_batch_run_in_next_run(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_soon(loop, stop_and_queue, TAG(2), NULL), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    EXPECT_TAGS(2);
    assert_int_equal(weft_loop_stop(loop), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    EXPECT_TAGS(2, 4);
    finish(loop);
}

static void chain(void *arg)
{
    (void)arg;
    g_count[0]++;
    assert_int_equal(weft_call_soon(g_loop, chain, NULL, NULL), 0);
}

/* S-LOOP-10 (T03): stop before run_forever = exactly one iteration, polled
 * with timeout 0 (virtual time does not jump to the pending timer). */
static void test_stop_before_run_forever_runs_one_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_later(loop, 10.0, rec, TAG(9), NULL), 0);
    assert_int_equal(weft_call_soon(loop, chain, NULL, NULL), 0);
    assert_int_equal(weft_loop_stop(loop), 0);
    uint64_t it = iterations(loop);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    assert_int_equal(iterations(loop) - it, 1);
    assert_int_equal(g_count[0], 1);
    assert_int_equal(weft_loop_now(loop), 0);
    assert_int_equal(g_n, 0);
    finish(loop);
}

/* S-LOOP-10: pre-stop with an empty loop still returns after one iteration
 * (timeout 0, no blocking). */
static void test_stop_before_run_forever_on_idle_loop_does_not_block(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_loop_stop(loop), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    assert_int_equal(iterations(loop), 1);
    finish(loop);
}

static void chain_stop_at_3(void *arg)
{
    (void)arg;
    if (++g_count[1] == 3)
        assert_int_equal(weft_loop_stop(g_loop), 0);
    else
        assert_int_equal(weft_call_soon(g_loop, chain_stop_at_3, NULL, NULL), 0);
}

/* S-LOOP-10: the stop request is cleared when run_forever returns. */
static void test_stop_request_is_cleared_on_return(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_loop_stop(loop), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    assert_int_equal(weft_call_soon(loop, chain_stop_at_3, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    assert_int_equal(g_count[1], 3);
    finish(loop);
}

/* run_once runs exactly one iteration. */
static void test_run_once_runs_one_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_soon(loop, chain, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_count[0], 1);
    assert_int_equal(iterations(loop), 1);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_count[0], 2);
    assert_int_equal(iterations(loop), 2);
    finish(loop);
}

/* S-LOOP-2: with only a timer pending, one iteration waits for it (on the
 * virtual clock: jumps to it) and runs it. */
static void test_run_once_waits_for_the_next_timer(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_later(loop, 5.0, rec, TAG(1), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(1);
    assert_int_equal(g_ev[0].now, 5 * SEC);
    assert_int_equal(iterations(loop), 1);
    finish(loop);
}

/* =============================================================================
 * Timers (S-LOOP-4, 7, 8)
 * ========================================================================== */

/* S-LOOP-7 (T05): equal deadlines fire in start order.  asyncio is unstable
 * here (it fired [0, 2, 6, 5, 7, 1, 3, 4]); weft is deterministic. */
static void test_equal_deadline_timers_fire_fifo(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_at(loop, 2.0, rec, TAG(100), NULL), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(weft_call_at(loop, 1.0, rec, TAG(i), NULL), 0);
    run_until(loop, 3 * SEC);
    EXPECT_TAGS(0, 1, 2, 3, 4, 5, 6, 7, 100);
    finish(loop);
}

/* S-LOOP-7: FIFO for equal deadlines holds across embedded and convenience
 * timers (one heap, one sequence). */
static void test_equal_deadline_fifo_across_embedded_and_convenience_timers(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer t[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_timer_init(&t[i], loop, rec, TAG(2 * i)), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(weft_timer_start_at_ns(&t[i], SEC, 0), 0);
        assert_int_equal(weft_call_at_ns(loop, SEC, rec, TAG(2 * i + 1), NULL), 0);
    }
    run_until(loop, 2 * SEC);
    EXPECT_TAGS(0, 1, 2, 3, 4, 5);
    for (int i = 0; i < 3; i++)
        weft_timer_close(&t[i]);
    finish(loop);
}

static int64_t g_deadline[8];

static void check_not_early(void *tag)
{
    intptr_t i = (intptr_t)tag;
    assert_true(weft_loop_now(g_loop) >= g_deadline[i]);
    rec(tag);
}

/* S-LOOP-4: the virtual clock fires every timer exactly at its deadline
 * (asyncio may fire one clock resolution early; weft never does). */
static void test_virtual_clock_fires_timers_exactly_at_deadline(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    const int64_t d[5] = {1, 999, SEC + 1, 3, 7 * MS};
    for (int i = 0; i < 5; i++)
        assert_int_equal(weft_call_later_ns(loop, d[i], rec, TAG(i), NULL), 0);
    run_until(loop, 2 * SEC);
    EXPECT_TAGS(0, 3, 1, 4, 2);
    for (int i = 0; i < 5; i++)
        assert_int_equal(g_ev[i].now, d[g_ev[i].tag]);
    finish(loop);
}

/* S-LOOP-4: on the real clock too, a timer never fires before its deadline
 * (the backend's millisecond timeouts must not cause early firing).  No
 * timing assertion: only now >= deadline, true however slow the machine. */
static void test_timer_never_fires_early_on_real_clock(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    const int64_t delay[4] = {1000, 300 * 1000, 1500 * 1000, 2700 * 1000};
    weft_timer t[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(weft_timer_init(&t[i], loop, check_not_early, TAG(i)), 0);
        assert_int_equal(weft_timer_start_ns(&t[i], delay[i], 0), 0);
        g_deadline[i] = weft_timer_when(&t[i]);
    }
    /* FIFO: after t[3] */
    assert_int_equal(weft_call_at_ns(loop, g_deadline[3], stop_cb, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    EXPECT_TAGS(0, 1, 2, 3);
    for (int i = 0; i < 4; i++)
        weft_timer_close(&t[i]);
    finish(loop);
}

static void call_at_past(void *tag)
{
    rec(tag);
    assert_int_equal(weft_call_at(g_loop, 1.0, rec_stop, TAG(2), NULL), 0);
}

/* S-LOOP-7: call_at in the past fires at the next timer pass, not in the
 * current batch, and without moving the clock. */
static void test_call_at_in_the_past_fires_at_next_timer_pass(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_at(loop, 5.0, call_at_past, TAG(1), NULL), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    EXPECT_TAGS(1, 2);
    assert_int_equal(g_ev[1].iter, g_ev[0].iter + 1);
    assert_int_equal(g_ev[1].now, 5 * SEC);
    finish(loop);
}

/* S-LOOP-8: cancel -> 0 and the callback never runs; cancelling again ->
 * -ENOENT. */
static void test_call_cancel_prevents_timer_and_second_cancel_is_enoent(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_call c;
    assert_int_equal(weft_call_later(loop, 1.0, rec, TAG(1), &c), 0);
    assert_int_equal(weft_call_cancel(loop, c), 0);
    assert_int_equal(weft_call_cancel(loop, c), -ENOENT);
    run_until(loop, 2 * SEC);
    assert_int_equal(g_n, 0);
    finish(loop);
}

/* S-LOOP-8: cancel works for call_soon too. */
static void test_call_cancel_prevents_call_soon(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_call c;
    assert_int_equal(weft_call_soon(loop, rec, TAG(1), &c), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(2), NULL), 0);
    assert_int_equal(weft_call_cancel(loop, c), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(2);
    finish(loop);
}

/* A token for a call that already ran is stale: -ENOENT. */
static void test_call_cancel_after_it_ran_is_enoent(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_call c;
    assert_int_equal(weft_call_soon(loop, rec, TAG(1), &c), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(weft_call_cancel(loop, c), -ENOENT);
    finish(loop);
}

/* A stale token cannot cancel the call that reused its node. */
static void test_stale_call_token_does_not_cancel_newer_call(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_call old, fresh;
    assert_int_equal(weft_call_soon(loop, rec, TAG(1), &old), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    for (int i = 0; i < 4; i++) /* likely reuses old's node */
        assert_int_equal(weft_call_soon(loop, rec, TAG(2), &fresh), 0);
    assert_int_equal(weft_call_cancel(loop, old), -ENOENT);
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(1, 2, 2, 2, 2);
    finish(loop);
}

static weft_call g_victim;

static void cancel_victim(void *tag)
{
    rec(tag);
    g_rc = weft_call_cancel(g_loop, g_victim);
}

/* S-LOOP-8 (T06): a timer already moved to the ready queue can still be
 * cancelled by an earlier callback of the same batch. */
static void test_cancel_expired_timer_from_earlier_callback_in_batch(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_at(loop, 1.0, cancel_victim, TAG(1), NULL), 0);
    assert_int_equal(weft_call_at(loop, 1.0, rec, TAG(2), &g_victim), 0);
    assert_int_equal(weft_call_at(loop, 1.0, rec, TAG(3), NULL), 0);
    run_until(loop, 2 * SEC);
    assert_int_equal(g_rc, 0);
    EXPECT_TAGS(1, 3);
    finish(loop);
}

/* S-LOOP-8: same for a queued call_soon. */
static void test_cancel_queued_call_from_earlier_callback_in_batch(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_soon(loop, cancel_victim, TAG(1), NULL), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(2), &g_victim), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(3), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_rc, 0);
    EXPECT_TAGS(1, 3);
    finish(loop);
}

/* Embedded timer: fires once at its deadline; active only until then. */
static void test_timer_fires_once_at_deadline(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer t;
    assert_int_equal(weft_timer_init(&t, loop, rec, TAG(1)), 0);
    assert_false(weft_timer_active(&t));
    assert_int_equal(weft_timer_start_ns(&t, 2 * SEC, 0), 0);
    assert_true(weft_timer_active(&t));
    assert_int_equal(weft_timer_when(&t), 2 * SEC);
    run_until(loop, 5 * SEC);
    EXPECT_TAGS(1);
    assert_int_equal(g_ev[0].now, 2 * SEC);
    assert_false(weft_timer_active(&t));
    weft_timer_close(&t);
    finish(loop);
}

/* weft_timer_start_at arms at an absolute deadline. */
static void test_timer_start_at_uses_absolute_deadline(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer t;
    assert_int_equal(weft_timer_init(&t, loop, rec, TAG(1)), 0);
    run_until(loop, 3 * SEC);
    assert_int_equal(weft_timer_start_at_ns(&t, 7 * SEC, 0), 0);
    run_until(loop, 10 * SEC);
    EXPECT_TAGS(1);
    assert_int_equal(g_ev[0].now, 7 * SEC);
    weft_timer_close(&t);
    finish(loop);
}

/* A negative delay means 0: the timer fires at the next timer pass. */
static void test_timer_negative_delay_fires_at_next_pass(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer t;
    assert_int_equal(weft_timer_init(&t, loop, rec, TAG(1)), 0);
    assert_int_equal(weft_timer_start_ns(&t, -5 * SEC, 0), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(1);
    assert_int_equal(g_ev[0].now, 0);
    weft_timer_close(&t);
    finish(loop);
}

/* Re-arming a pending timer moves its deadline earlier (fires once). */
static void test_timer_restart_moves_deadline_earlier(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer t;
    assert_int_equal(weft_timer_init(&t, loop, rec, TAG(1)), 0);
    assert_int_equal(weft_timer_start_ns(&t, 5 * SEC, 0), 0);
    assert_int_equal(weft_timer_start_ns(&t, 1 * SEC, 0), 0);
    run_until(loop, 10 * SEC);
    EXPECT_TAGS(1);
    assert_int_equal(g_ev[0].now, 1 * SEC);
    weft_timer_close(&t);
    finish(loop);
}

/* Re-arming a pending timer moves its deadline later (fires once). */
static void test_timer_restart_moves_deadline_later(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer t;
    assert_int_equal(weft_timer_init(&t, loop, rec, TAG(1)), 0);
    assert_int_equal(weft_timer_start_ns(&t, 1 * SEC, 0), 0);
    assert_int_equal(weft_timer_start_ns(&t, 5 * SEC, 0), 0);
    run_until(loop, 10 * SEC);
    EXPECT_TAGS(1);
    assert_int_equal(g_ev[0].now, 5 * SEC);
    weft_timer_close(&t);
    finish(loop);
}

typedef struct ticker {
    weft_timer t;
    int count, stop_at;
    int64_t at[8];
    int64_t when_inside[8];
    bool active_inside[8];
} ticker;

static void tick(void *arg)
{
    ticker *k = arg;
    assert_true(k->count < 8);
    k->at[k->count] = weft_loop_now(g_loop);
    k->when_inside[k->count] = weft_timer_when(&k->t);
    k->active_inside[k->count] = weft_timer_active(&k->t);
    if (++k->count == k->stop_at)
        assert_int_equal(weft_timer_stop(&k->t), 0);
}

/* A repeating timer fires every period, at exactly deadline + n * period. */
static void test_repeating_timer_fires_every_period(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    ticker k = {.stop_at = 5};
    assert_int_equal(weft_timer_init(&k.t, loop, tick, &k), 0);
    assert_int_equal(weft_timer_start_ns(&k.t, SEC, 250 * MS), 0);
    run_until(loop, 10 * SEC);
    assert_int_equal(k.count, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(k.at[i], SEC + i * 250 * MS);
    weft_timer_close(&k.t);
    finish(loop);
}

/* loop.h: a repeating timer is re-armed (at deadline + period) before its
 * callback runs. */
static void test_repeating_timer_is_rearmed_before_its_callback(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    ticker k = {.stop_at = 2};
    assert_int_equal(weft_timer_init(&k.t, loop, tick, &k), 0);
    assert_int_equal(weft_timer_start_ns(&k.t, SEC, SEC), 0);
    run_until(loop, 10 * SEC);
    assert_int_equal(k.count, 2);
    assert_true(k.active_inside[0]);
    assert_int_equal(k.when_inside[0], 2 * SEC);
    weft_timer_close(&k.t);
    finish(loop);
}

/* Stopping a repeating timer inside its own callback ends the repetition. */
static void test_timer_stop_in_own_callback_stops_repetition(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    ticker k = {.stop_at = 3};
    assert_int_equal(weft_timer_init(&k.t, loop, tick, &k), 0);
    assert_int_equal(weft_timer_start_ns(&k.t, SEC, SEC), 0);
    run_until(loop, 100 * SEC);
    assert_int_equal(k.count, 3);
    assert_false(weft_timer_active(&k.t));
    weft_timer_close(&k.t);
    finish(loop);
}

/* loop.h: a repeating timer that fell behind is re-armed at now + period. */
static void test_repeating_timer_that_fell_behind_rearms_from_now(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    ticker k = {.stop_at = 2};
    assert_int_equal(weft_timer_init(&k.t, loop, tick, &k), 0);
    run_until(loop, 10 * SEC);
    assert_int_equal(weft_timer_start_at_ns(&k.t, 1 * SEC, 2 * SEC), 0); /* 9 s behind */
    run_until(loop, 100 * SEC);
    assert_int_equal(k.count, 2);
    assert_int_equal(k.at[0], 10 * SEC);
    assert_int_equal(k.at[1], 12 * SEC);
    weft_timer_close(&k.t);
    finish(loop);
}

static void restart_self(void *arg)
{
    ticker *k = arg;
    k->at[k->count++] = weft_loop_now(g_loop);
    if (k->count < 3)
        assert_int_equal(weft_timer_start_ns(&k->t, SEC, 0), 0);
}

/* A one-shot timer can re-arm itself from its own callback. */
static void test_timer_restarted_from_own_callback_fires_again(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    ticker k = {0};
    assert_int_equal(weft_timer_init(&k.t, loop, restart_self, &k), 0);
    assert_int_equal(weft_timer_start_ns(&k.t, SEC, 0), 0);
    run_until(loop, 100 * SEC);
    assert_int_equal(k.count, 3);
    assert_int_equal(k.at[2], 3 * SEC);
    weft_timer_close(&k.t);
    finish(loop);
}

/* weft_timer_stop of an inactive timer -> -ENOENT (never started, already
 * stopped, already fired). */
/* loop.h: weft_timer_active is false for a timer that was never
 * initialised (zeroed), for an initialised one never started, and after
 * weft_timer_close. */
static void test_timer_active_only_between_start_and_fire_or_stop(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer t = {0};
    assert_false(weft_timer_active(&t));
    assert_false(weft_timer_active(NULL));
    assert_int_equal(weft_timer_init(&t, loop, rec, TAG(1)), 0);
    assert_false(weft_timer_active(&t));
    assert_int_equal(weft_timer_start_ns(&t, SEC, 0), 0);
    assert_true(weft_timer_active(&t));
    weft_timer_close(&t);
    assert_false(weft_timer_active(&t));
    finish(loop);
}

static void test_timer_stop_inactive_returns_enoent(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer t;
    assert_int_equal(weft_timer_init(&t, loop, rec, TAG(1)), 0);
    assert_int_equal(weft_timer_stop(&t), -ENOENT);
    assert_int_equal(weft_timer_start_ns(&t, SEC, 0), 0);
    assert_int_equal(weft_timer_stop(&t), 0);
    assert_int_equal(weft_timer_stop(&t), -ENOENT);
    assert_int_equal(weft_timer_start_ns(&t, SEC, 0), 0);
    run_until(loop, 2 * SEC);
    EXPECT_TAGS(1);
    assert_int_equal(weft_timer_stop(&t), -ENOENT);
    weft_timer_close(&t);
    finish(loop);
}

/* weft_timer_start with repeat < 0 -> -EINVAL, timer unchanged. */
static void test_timer_start_negative_repeat_returns_einval(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer t;
    assert_int_equal(weft_timer_init(&t, loop, rec, TAG(1)), 0);
    assert_int_equal(weft_timer_start_ns(&t, SEC, -1), -EINVAL);
    assert_int_equal(weft_timer_start_at_ns(&t, SEC, -1), -EINVAL);
    assert_false(weft_timer_active(&t));
    run_until(loop, 5 * SEC);
    assert_int_equal(g_n, 0);
    weft_timer_close(&t);
    finish(loop);
}

static weft_timer *g_victim_timer;

static void stop_victim_timer(void *tag)
{
    rec(tag);
    g_rc = weft_timer_stop(g_victim_timer);
}

/* S-LOOP-8: weft_timer_stop unqueues a timer that already expired but has
 * not run yet (stopped by an earlier callback of the same batch). */
static void test_timer_stop_unqueues_expired_timer(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer a, b;
    assert_int_equal(weft_timer_init(&a, loop, stop_victim_timer, TAG(1)), 0);
    assert_int_equal(weft_timer_init(&b, loop, rec, TAG(2)), 0);
    g_victim_timer = &b;
    assert_int_equal(weft_timer_start_ns(&a, SEC, 0), 0);
    assert_int_equal(weft_timer_start_ns(&b, SEC, 0), 0);
    run_until(loop, 2 * SEC);
    assert_int_equal(g_rc, 0);
    EXPECT_TAGS(1);
    assert_false(weft_timer_active(&b));
    weft_timer_close(&a);
    weft_timer_close(&b);
    finish(loop);
}

/* weft_timer_close disarms an armed timer; it is idempotent. */
static void test_timer_close_disarms_and_is_idempotent(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer t;
    assert_int_equal(weft_timer_init(&t, loop, rec, TAG(1)), 0);
    assert_int_equal(weft_timer_start_ns(&t, SEC, 0), 0);
    weft_timer_close(&t);
    assert_false(weft_timer_active(&t));
    weft_timer_close(&t);
    run_until(loop, 2 * SEC);
    assert_int_equal(g_n, 0);
    finish(loop);
}

/* ---- heap stress --------------------------------------------------------------- */

enum { STRESS_N = 10000, STRESS_SPAN = 2000 };
static int64_t g_when[STRESS_N];
static uint64_t g_seq[STRESS_N];
static uint64_t g_rng;

static uint32_t rnd(void)
{
    g_rng = g_rng * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(g_rng >> 33);
}

static void shuffle(int *v, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rnd() % (uint32_t)(i + 1)), x = v[i];
        v[i] = v[j];
        v[j] = x;
    }
}

static int by_deadline_then_seq(const void *pa, const void *pb)
{
    int a = *(const int *)pa, b = *(const int *)pb;
    if (g_when[a] != g_when[b])
        return g_when[a] < g_when[b] ? -1 : 1;
    return g_seq[a] < g_seq[b] ? -1 : g_seq[a] > g_seq[b];
}

/* The fired log is exactly the live timers sorted by (deadline, sequence),
 * each seen at its deadline. */
static void expect_fired_in_heap_order(const bool *live)
{
    static int order[STRESS_N];
    int m = 0;
    for (int i = 0; i < STRESS_N; i++)
        if (live[i])
            order[m++] = i;
    qsort(order, (size_t)m, sizeof *order, by_deadline_then_seq);
    assert_int_equal(g_n, m);
    for (int k = 0; k < m; k++) {
        assert_int_equal(g_ev[k].tag, order[k]);
        assert_int_equal(g_ev[k].now, g_when[order[k]]);
    }
}

/* S-LOOP-7 stress: 10000 timers with random (seeded, heavily tied)
 * deadlines, a random half cancelled; the rest fire in (deadline, start
 * order) order, each exactly at its deadline. */
static void test_timer_heap_stress_fires_in_deadline_then_start_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    static weft_call tok[STRESS_N];
    static bool live[STRESS_N];
    static int idx[STRESS_N];
    g_rng = 42;
    for (int i = 0; i < STRESS_N; i++) {
        g_when[i] = 1 + rnd() % STRESS_SPAN;
        g_seq[i] = (uint64_t)i;
        live[i] = true;
        idx[i] = i;
        assert_int_equal(weft_call_at_ns(loop, g_when[i], rec, TAG(i), &tok[i]), 0);
    }
    shuffle(idx, STRESS_N);
    for (int k = 0; k < STRESS_N / 2; k++) {
        assert_int_equal(weft_call_cancel(loop, tok[idx[k]]), 0);
        live[idx[k]] = false;
    }
    run_until(loop, STRESS_SPAN + 1);
    expect_fired_in_heap_order(live);
    finish(loop);
}

/* Same with embedded timers, re-armed (new deadline, new sequence) and
 * stopped at random: the heap keeps its stored indices right. */
static void test_embedded_timer_heap_stress_with_restarts_and_stops(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer *t = calloc(STRESS_N, sizeof *t);
    static bool live[STRESS_N];
    static int idx[STRESS_N];
    uint64_t seq = 0;
    assert_non_null(t);
    g_rng = 7;
    for (int i = 0; i < STRESS_N; i++) {
        assert_int_equal(weft_timer_init(&t[i], loop, rec, TAG(i)), 0);
        g_when[i] = 1 + rnd() % STRESS_SPAN;
        g_seq[i] = seq++;
        assert_int_equal(weft_timer_start_at_ns(&t[i], g_when[i], 0), 0);
        live[i] = true;
        idx[i] = i;
    }
    shuffle(idx, STRESS_N);
    for (int k = 0; k < STRESS_N / 2; k++) { /* re-arm half */
        int i = idx[k];
        g_when[i] = 1 + rnd() % STRESS_SPAN;
        g_seq[i] = seq++;
        assert_int_equal(weft_timer_start_at_ns(&t[i], g_when[i], 0), 0);
    }
    shuffle(idx, STRESS_N);
    for (int k = 0; k < STRESS_N / 4; k++) { /* stop a quarter */
        assert_int_equal(weft_timer_stop(&t[idx[k]]), 0);
        live[idx[k]] = false;
    }
    run_until(loop, STRESS_SPAN + 1);
    expect_fired_in_heap_order(live);
    for (int i = 0; i < STRESS_N; i++)
        weft_timer_close(&t[i]);
    free(t);
    finish(loop);
}

/* Timers armed for one deadline in a row share a heap entry (a bucket):
 * runs of 1 to 16 equal deadlines, 2000 deadlines in all (more than the
 * loop's bucket cache has slots, so buckets of one deadline also split
 * and collide), then a quarter re-armed and a quarter stopped at random
 * (first, middle and last timers of buckets alike).  Every armed timer
 * reports its own deadline, and they fire in (deadline, start) order. */
static void test_timer_buckets_keep_deadlines_and_start_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer *t = calloc(STRESS_N, sizeof *t);
    static bool live[STRESS_N];
    static int idx[STRESS_N];
    uint64_t seq = 0;
    assert_non_null(t);
    g_rng = 11;
    for (int i = 0; i < STRESS_N;) {
        int64_t when = 1 + rnd() % STRESS_SPAN;
        for (int run = 1 + (int)(rnd() % 16); run > 0 && i < STRESS_N; run--, i++) {
            assert_int_equal(weft_timer_init(&t[i], loop, rec, TAG(i)), 0);
            g_when[i] = when;
            g_seq[i] = seq++;
            assert_int_equal(weft_timer_start_at_ns(&t[i], when, 0), 0);
            live[i] = true;
            idx[i] = i;
        }
    }
    shuffle(idx, STRESS_N);
    for (int k = 0; k < STRESS_N / 4; k++) { /* re-arm a quarter, in runs too */
        int i = idx[k];
        g_when[i] = k % 3 == 0 ? 1 + rnd() % STRESS_SPAN : g_when[idx[k - 1]];
        g_seq[i] = seq++;
        assert_int_equal(weft_timer_start_at_ns(&t[i], g_when[i], 0), 0);
    }
    for (int k = STRESS_N / 4; k < STRESS_N / 2; k++) { /* stop another quarter */
        assert_int_equal(weft_timer_stop(&t[idx[k]]), 0);
        assert_int_equal(weft_timer_when(&t[idx[k]]), INT64_MIN);
        live[idx[k]] = false;
    }
    for (int i = 0; i < STRESS_N; i++)
        if (live[i])
            assert_int_equal(weft_timer_when(&t[i]), g_when[i]);
    run_until(loop, STRESS_SPAN + 1);
    expect_fired_in_heap_order(live);
    for (int i = 0; i < STRESS_N; i++) {
        assert_false(weft_timer_active(&t[i]));
        weft_timer_close(&t[i]);
    }
    free(t);
    finish(loop);
}

/* Repeating timers started together share each period's bucket and keep
 * their start order period after period, also when the first of them
 * stops and a later one joins between periods. */
static void test_repeating_timers_sharing_a_deadline_keep_start_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(weft_timer_init(&t[i], loop, rec, TAG(i)), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_timer_start_ns(&t[i], SEC, SEC), 0);
    run_until(loop, SEC);
    EXPECT_TAGS(0, 1, 2);
    assert_int_equal(weft_timer_when(&t[2]), 2 * SEC);
    assert_int_equal(weft_timer_stop(&t[0]), 0); /* the first of the next bucket */
    assert_int_equal(weft_timer_start_at_ns(&t[3], 2 * SEC, SEC), 0); /* joins it */
    assert_int_equal(weft_timer_when(&t[1]), 2 * SEC);
    assert_int_equal(weft_timer_when(&t[3]), 2 * SEC);
    run_until(loop, 2 * SEC);
    EXPECT_TAGS(0, 1, 2, 1, 2, 3);
    run_until(loop, 3 * SEC);
    EXPECT_TAGS(0, 1, 2, 1, 2, 3, 1, 2, 3);
    for (int i = 0; i < 4; i++)
        weft_timer_close(&t[i]);
    finish(loop);
}

/* Closing the loop with a bucket armed leaves each of its timers idle. */
static void test_loop_close_idles_every_timer_of_a_bucket(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer t[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(weft_timer_init(&t[i], loop, rec, TAG(i)), 0);
        assert_int_equal(weft_timer_start_ns(&t[i], SEC, 0), 0);
    }
    assert_int_equal(weft_loop_close(loop), 0);
    for (int i = 0; i < 3; i++) {
        assert_false(weft_timer_active(&t[i]));
        assert_int_equal(weft_timer_when(&t[i]), INT64_MIN);
        weft_timer_close(&t[i]);
    }
    assert_int_equal(g_n, 0);
    finish(loop);
}

/* =============================================================================
 * Embedded handles
 * ========================================================================== */

/* A scheduled handle runs in the next batch; pending only while queued. */
static void test_handle_schedule_runs_it_once_next_batch(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_handle h;
    weft_handle_init(&h, rec, TAG(1));
    assert_false(weft_handle_pending(&h));
    assert_int_equal(weft_handle_schedule(loop, &h), 0);
    assert_true(weft_handle_pending(&h));
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(1);
    assert_false(weft_handle_pending(&h));
    step(loop);
    EXPECT_TAGS(1);
    finish(loop);
}

/* Scheduling a queued handle again keeps its single entry, in place. */
static void test_handle_scheduled_twice_keeps_one_entry(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_handle h;
    weft_handle_init(&h, rec, TAG(1));
    assert_int_equal(weft_handle_schedule(loop, &h), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(2), NULL), 0);
    assert_int_equal(weft_handle_schedule(loop, &h), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(1, 2);
    finish(loop);
}

/* weft_handle_cancel: 0 while queued (it then never runs), -ENOENT after. */
static void test_handle_cancel_returns_0_then_enoent(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_handle h;
    weft_handle_init(&h, rec, TAG(1));
    assert_int_equal(weft_handle_cancel(&h), -ENOENT);
    assert_int_equal(weft_handle_schedule(loop, &h), 0);
    assert_int_equal(weft_handle_cancel(&h), 0);
    assert_false(weft_handle_pending(&h));
    assert_int_equal(weft_handle_cancel(&h), -ENOENT);
    step(loop);
    assert_int_equal(g_n, 0);
    finish(loop);
}

static weft_handle *g_victim_handle;

static void cancel_victim_handle(void *tag)
{
    rec(tag);
    g_rc = weft_handle_cancel(g_victim_handle);
}

/* S-LOOP-8: cancelling a handle from an earlier callback of the same batch
 * prevents it from running. */
static void test_handle_cancel_from_earlier_callback_in_batch(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_handle a, b;
    weft_handle_init(&a, cancel_victim_handle, TAG(1));
    weft_handle_init(&b, rec, TAG(2));
    g_victim_handle = &b;
    assert_int_equal(weft_handle_schedule(loop, &a), 0);
    assert_int_equal(weft_handle_schedule(loop, &b), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(3), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_rc, 0);
    EXPECT_TAGS(1, 3);
    finish(loop);
}

static weft_handle g_self_handle;

static void reschedule_self(void *tag)
{
    rec(tag);
    g_rc = weft_handle_pending(&g_self_handle);
    if (g_n < 3)
        assert_int_equal(weft_handle_schedule(g_loop, &g_self_handle), 0);
}

/* S-LOOP-3: a handle rescheduled from its own callback runs again in the
 * next iteration (it is not pending while it runs). */
static void test_handle_rescheduled_from_own_callback_runs_next_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_handle_init(&g_self_handle, reschedule_self, TAG(1));
    assert_int_equal(weft_handle_schedule(loop, &g_self_handle), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(weft_loop_run_once(loop), 0);
    step(loop); /* the third run did not reschedule */
    EXPECT_TAGS(1, 1, 1);
    assert_int_equal(g_rc, 0);
    assert_int_equal(g_ev[1].iter, g_ev[0].iter + 1);
    assert_int_equal(g_ev[2].iter, g_ev[1].iter + 1);
    finish(loop);
}

/* =============================================================================
 * Virtual clock
 * ========================================================================== */

/* The virtual clock starts at 0. */
static void test_virtual_clock_starts_at_zero(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_loop_now(loop), 0);
    assert_true(weft_loop_time(loop) == 0.0);
    finish(loop);
}

/* An hour-long call_later completes at once: time jumps to 3600 s exactly. */
static void test_virtual_clock_jumps_to_an_hour_long_timer(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_later(loop, 3600.0, rec_stop, TAG(1), NULL), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    EXPECT_TAGS(1);
    assert_int_equal(weft_loop_now(loop), 3600 * SEC);
    assert_true(weft_loop_time(loop) == 3600.0);
    finish(loop);
}

/* Time never moves while there is work: only jumps, only to deadlines. */
static void test_virtual_clock_moves_only_by_jumps_to_deadlines(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_at(loop, 1.0, rec, TAG(1), NULL), 0);
    assert_int_equal(weft_call_at(loop, 2.5, rec, TAG(2), NULL), 0);
    assert_int_equal(weft_call_at(loop, 7.0, rec_stop, TAG(3), NULL), 0);
    for (int i = 0; i < 50; i++) { /* busy iterations: no time passes */
        assert_int_equal(weft_call_soon(loop, noop, NULL, NULL), 0);
        assert_int_equal(weft_loop_run_once(loop), 0);
        assert_int_equal(weft_loop_now(loop), 0);
    }
    assert_int_equal(weft_loop_run_forever(loop), 0);
    EXPECT_TAGS(1, 2, 3);
    assert_int_equal(g_ev[0].now, 1 * SEC);
    assert_int_equal(g_ev[1].now, 2500 * MS);
    assert_int_equal(g_ev[2].now, 7 * SEC);
    assert_int_equal(weft_loop_now(loop), 7 * SEC);
    finish(loop);
}

/* S-LOOP-15: weft_loop_time is weft_loop_now in seconds. */
static void test_loop_time_is_now_in_seconds(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    run_until(loop, 1500 * MS);
    assert_int_equal(weft_loop_now(loop), 1500 * MS);
    assert_true(weft_loop_time(loop) == 1.5);
    assert_true(weft_loop_time(loop) == (double)weft_loop_now(loop) / 1e9);
    finish(loop);
}

/* =============================================================================
 * fd watchers (S-LOOP-21), every test on both backends
 * ========================================================================== */

typedef struct watch {
    int fd;
    int tag;
    int calls;
    int stop_at; /* stop the loop after this many calls (0 = never) */
    bool drain;  /* read what is there */
} watch;

static void on_watch(void *arg)
{
    watch *w = arg;
    w->calls++;
    if (w->drain) {
        char buf[64];
        (void)!read(w->fd, buf, sizeof buf);
    }
    rec(TAG(w->tag));
    if (w->calls == w->stop_at)
        assert_int_equal(weft_loop_stop(g_loop), 0);
}

/* S-LOOP-21: a reader is level-triggered and persistent: it fires in every
 * iteration while the fd stays readable. */
static void test_reader_fires_every_iteration_while_readable(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    write_byte(p[1]);
    watch w = {.fd = p[0], .tag = 1, .stop_at = 3};
    assert_int_equal(weft_add_reader(loop, p[0], on_watch, &w), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    EXPECT_TAGS(1, 1, 1);
    assert_int_equal(g_ev[1].iter, g_ev[0].iter + 1);
    assert_int_equal(g_ev[2].iter, g_ev[1].iter + 1);
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    close_pair(p);
    finish(loop);
}

/* S-LOOP-21: once drained the reader stops firing, and fires again on new
 * data. */
static void test_reader_stops_when_drained_and_fires_on_new_data(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    write_byte(p[1]);
    watch w = {.fd = p[0], .tag = 1, .drain = true};
    assert_int_equal(weft_add_reader(loop, p[0], on_watch, &w), 0);
    run_until(loop, SEC);
    assert_int_equal(w.calls, 1);
    write_byte(p[1]);
    run_until(loop, 2 * SEC);
    assert_int_equal(w.calls, 2);
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    close_pair(p);
    finish(loop);
}

/* A reader fires at end of file (writer closed). */
static void test_reader_fires_at_eof(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    close(p[1]);
    watch w = {.fd = p[0], .tag = 1, .stop_at = 1};
    assert_int_equal(weft_add_reader(loop, p[0], on_watch, &w), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    EXPECT_TAGS(1);
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    close(p[0]);
    finish(loop);
}

/* A writer fires in every iteration while the fd is writable. */
static void test_writer_fires_while_writable(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    watch w = {.fd = p[1], .tag = 2, .stop_at = 2};
    assert_int_equal(weft_add_writer(loop, p[1], on_watch, &w), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    EXPECT_TAGS(2, 2);
    assert_int_equal(weft_remove_writer(loop, p[1]), 0);
    close_pair(p);
    finish(loop);
}

/* S-LOOP-21: a second add_reader for the same fd replaces the first. */
static void test_second_add_reader_replaces_first(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    write_byte(p[1]);
    assert_int_equal(weft_add_reader(loop, p[0], rec, TAG(1)), 0);
    assert_int_equal(weft_add_reader(loop, p[0], rec, TAG(2)), 0);
    step(loop);
    EXPECT_TAGS(2);
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    assert_int_equal(weft_remove_reader(loop, p[0]), -ENOENT); /* one watcher */
    close_pair(p);
    finish(loop);
}

/* S-LOOP-21: remove_reader -> 0 when there was a reader, then -ENOENT; the
 * reader no longer fires. */
static void test_remove_reader_returns_0_then_enoent(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    assert_int_equal(weft_add_reader(loop, p[0], rec, TAG(1)), 0);
    assert_int_equal(weft_remove_writer(loop, p[0]), -ENOENT);
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    assert_int_equal(weft_remove_reader(loop, p[0]), -ENOENT);
    write_byte(p[1]);
    run_until(loop, SEC);
    assert_int_equal(g_n, 0);
    close_pair(p);
    finish(loop);
}

/* S-LOOP-1 step 3: for one fd ready both ways the reader is queued before
 * the writer, whatever order they were added in. */
static void test_reader_runs_before_writer_for_same_fd(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    write_byte(sv[1]);
    assert_int_equal(weft_add_writer(loop, sv[0], rec, TAG(2)), 0);
    assert_int_equal(weft_add_reader(loop, sv[0], rec, TAG(1)), 0);
    step(loop);
    EXPECT_TAGS(1, 2);
    assert_int_equal(weft_remove_reader(loop, sv[0]), 0);
    assert_int_equal(weft_remove_writer(loop, sv[0]), 0);
    close_pair(sv);
    finish(loop);
}

/* Removing the reader of an fd watched both ways keeps the writer. */
static void test_remove_reader_keeps_writer_of_same_fd(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    write_byte(sv[1]);
    assert_int_equal(weft_add_reader(loop, sv[0], rec, TAG(1)), 0);
    assert_int_equal(weft_add_writer(loop, sv[0], rec, TAG(2)), 0);
    assert_int_equal(weft_remove_reader(loop, sv[0]), 0);
    step(loop);
    EXPECT_TAGS(2);
    assert_int_equal(weft_remove_writer(loop, sv[0]), 0);
    close_pair(sv);
    finish(loop);
}

/* Removing the writer of an fd watched both ways keeps the reader. */
static void test_remove_writer_keeps_reader_of_same_fd(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    write_byte(sv[1]);
    assert_int_equal(weft_add_reader(loop, sv[0], rec, TAG(1)), 0);
    assert_int_equal(weft_add_writer(loop, sv[0], rec, TAG(2)), 0);
    assert_int_equal(weft_remove_writer(loop, sv[0]), 0);
    step(loop);
    EXPECT_TAGS(1);
    assert_int_equal(weft_remove_reader(loop, sv[0]), 0);
    close_pair(sv);
    finish(loop);
}

static int g_fd_to_remove;

static void remove_reader_cb(void *tag)
{
    rec(tag);
    g_rc = weft_remove_reader(g_loop, g_fd_to_remove);
}

/* S-LOOP-8/21: a reader already queued for this iteration is unqueued when
 * an earlier callback of the batch removes it. */
static void test_reader_removed_by_earlier_callback_in_batch_is_not_called(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    write_byte(p[1]);
    g_fd_to_remove = p[0];
    assert_int_equal(weft_add_reader(loop, p[0], rec, TAG(2)), 0);
    assert_int_equal(weft_call_soon(loop, remove_reader_cb, TAG(1), NULL), 0);
    step(loop);
    assert_int_equal(g_rc, 0);
    EXPECT_TAGS(1);
    close_pair(p);
    finish(loop);
}

typedef struct mutual {
    int fd, other_fd, tag;
} mutual;

static void remove_other(void *arg)
{
    mutual *m = arg;
    rec(TAG(m->tag));
    assert_int_equal(weft_remove_reader(g_loop, m->other_fd), 0);
    assert_int_equal(weft_remove_reader(g_loop, m->fd), 0);
}

/* S-LOOP-8/21: two ready readers that each remove the other: whichever the
 * backend reports first runs, the other is not called. */
static void test_ready_readers_removing_each_other_run_exactly_once(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    write_byte(a[1]);
    write_byte(b[1]);
    mutual ma = {a[0], b[0], 1}, mb = {b[0], a[0], 2};
    assert_int_equal(weft_add_reader(loop, a[0], remove_other, &ma), 0);
    assert_int_equal(weft_add_reader(loop, b[0], remove_other, &mb), 0);
    step(loop);
    assert_int_equal(g_n, 1);
    close_pair(a);
    close_pair(b);
    finish(loop);
}

/* Many ready fds all fire in one iteration. */
static void test_many_ready_readers_fire_in_one_iteration(void **state)
{
    enum { N = 100 };
    weft_loop *loop = vloop_on(*state);
    int p[N][2];
    for (int i = 0; i < N; i++) {
        make_pipe(p[i]);
        write_byte(p[i][1]);
        assert_int_equal(weft_add_reader(loop, p[i][0], count_cb, TAG(0)), 0);
    }
    step(loop);
    assert_int_equal(g_count[0], N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(weft_remove_reader(loop, p[i][0]), 0);
        close_pair(p[i]);
    }
    finish(loop);
}

/* Bad fds are refused with -EBADF: -1 and a closed fd number. */
static void test_add_watcher_bad_fd_returns_ebadf(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    close_pair(p);
    assert_int_equal(weft_add_reader(loop, -1, rec, TAG(1)), -EBADF);
    assert_int_equal(weft_add_writer(loop, -1, rec, TAG(1)), -EBADF);
    assert_int_equal(weft_add_reader(loop, p[0], rec, TAG(1)), -EBADF);
    assert_int_equal(weft_add_writer(loop, p[1], rec, TAG(1)), -EBADF);
    assert_int_equal(weft_remove_reader(loop, p[0]), -ENOENT);
    finish(loop);
}

static void on_closed_fd(void *arg)
{
    (void)arg;
    if (++g_count[2] >= 1000) /* guard: a spinning loop ends the test */
        weft_loop_stop(g_loop);
}

/* An fd closed while watched makes the loop neither fail nor spin: timers
 * keep firing on time, few iterations pass, and the stale watcher is not
 * called; remove_reader still works afterwards. */
static void test_fd_closed_while_watched_neither_errors_nor_spins(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    assert_int_equal(weft_add_reader(loop, p[0], on_closed_fd, NULL), 0);
    run_until(loop, SEC / 2); /* the backend now watches the fd */
    close_pair(p);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(weft_call_at(loop, i, rec, TAG(i), NULL), 0);
    uint64_t it = iterations(loop);
    run_until(loop, 3 * SEC);
    assert_int_equal(weft_loop_now(loop), 3 * SEC);
    EXPECT_TAGS(1, 2, 3);
    assert_int_equal(g_count[2], 0);
    assert_true(iterations(loop) - it <= 8);
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    finish(loop);
}

/* Put a fresh pipe at exactly the fd numbers of old[]. */
static void pipe_at(int old[2], int q[2])
{
    make_pipe(q);
    for (int k = 0; k < 2; k++) {
        if (q[k] != old[k]) {
            assert_int_equal(dup2(q[k], old[k]), old[k]);
            close(q[k]);
            q[k] = old[k];
        }
    }
}

/* After remove_reader of a closed fd, a new fd with the same number can be
 * watched and fires. */
static void test_reused_fd_number_can_be_watched_after_remove(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2], q[2];
    make_pipe(p);
    assert_int_equal(weft_add_reader(loop, p[0], rec, TAG(1)), 0);
    run_until(loop, SEC);
    close_pair(p);
    run_until(loop, 2 * SEC);
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    pipe_at(p, q);
    assert_int_equal(weft_add_reader(loop, q[0], rec, TAG(2)), 0);
    write_byte(q[1]);
    step(loop);
    EXPECT_TAGS(2);
    assert_int_equal(weft_remove_reader(loop, q[0]), 0);
    close_pair(q);
    finish(loop);
}

/* S-LOOP-21 "replaces": add_reader on a reused fd number whose old watcher
 * was never removed replaces it and fires (epoll forgot the closed fd). */
static void test_add_reader_on_reused_fd_number_replaces_stale_watcher(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2], q[2];
    make_pipe(p);
    assert_int_equal(weft_add_reader(loop, p[0], rec, TAG(1)), 0);
    run_until(loop, SEC);
    close_pair(p);
    run_until(loop, 2 * SEC);
    pipe_at(p, q);
    assert_int_equal(weft_add_reader(loop, q[0], rec, TAG(2)), 0);
    write_byte(q[1]);
    step(loop);
    EXPECT_TAGS(2);
    assert_int_equal(weft_remove_reader(loop, q[0]), 0);
    close_pair(q);
    finish(loop);
}

/* loop.h: a regular file cannot be watched with epoll -> -EPERM. */
static void test_add_reader_regular_file_with_epoll_returns_eperm(void **state)
{
    (void)state;
    weft_loop *loop = vloop_on("epoll");
    char path[] = "/tmp/weft_test_loop_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(weft_add_reader(loop, fd, rec, TAG(1)), -EPERM);
    assert_int_equal(weft_remove_reader(loop, fd), -ENOENT);
    close(fd);
    finish(loop);
}

/* ---- fd-table and registration defects (issue 7) --------------------------------- */

/* An fd of INT_MAX is refused by the backend before the fd table grows: no
 * overflow, no table, -EBADF (the record allocated first is freed). */
static void test_add_reader_fd_int_max_is_refused_before_the_table_grows(void **state)
{
    weft_loop *loop = vloop_on(*state);
    long live = alloc_live();
    assert_int_equal(weft_add_reader(loop, INT_MAX, rec, TAG(1)), -EBADF);
    assert_int_equal(alloc_live(), live);
    assert_int_equal(loop->nfds, 0);
    finish(loop);
}

static void io_noop(weft_io *w, unsigned ev)
{
    (void)w, (void)ev;
}

/* A bad fd far above the table (2^26) is refused without growing the table
 * to it (the old loop zero-filled 1 GiB first). */
static void test_bad_fd_near_2_pow_26_grows_nothing(void **state)
{
    weft_loop *loop = vloop_on(*state);
    weft_io w;
    long before = alloc_calls(), live = alloc_live();
    assert_int_equal(weft_io_init(&w, loop, 1 << 26, io_noop), -EBADF);
    assert_int_equal(alloc_calls(), before);
    assert_null(weft_io_loop(&w));
    assert_int_equal(weft_add_reader(loop, 1 << 26, rec, TAG(1)), -EBADF);
    assert_int_equal(alloc_live(), live);
    assert_int_equal(loop->nfds, 0);
    finish(loop);
}

/* Defect: an fd closed while watched whose open file lives on through a
 * dup() kept its epoll registration, EPOLL_CTL_DEL failed with EBADF, and
 * the idle loop spun on the stale event.  Now the epoll set is rebuilt
 * (reported once, WEFT_REPORT_IO) and the removed reader is never called;
 * the poll backend parks the POLLNVAL slot.  Over an hour of virtual time
 * the loop iterates a handful of times. */
static void test_fd_closed_behind_a_dup_neither_spins_nor_calls_the_removed_reader(void **state)
{
    const char *backend = *state;
    weft_loop *loop = vloop_on(backend);
    int p[2];
    make_pipe(p);
    int keep = dup(p[0]); /* keeps the open file (and its registration) alive */
    assert_true(keep >= 0);
    write_byte(p[1]);
    assert_int_equal(weft_add_reader(loop, p[0], count_cb, TAG(3)), 0);
    step(loop);
    assert_int_equal(g_count[3], 1); /* it works, and the kernel knows the fd */
    close(p[0]);                     /* still readable through keep */
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    g_hook.count = 0;
    memset(g_hook.by_kind, 0, sizeof g_hook.by_kind);
    for (int i = 1; i <= 4; i++)
        assert_int_equal(weft_call_later(loop, 900.0 * i, count_cb, TAG(4), NULL), 0);
    weft_loop_stats s0 = stats(loop);
    run_until(loop, 3600 * SEC);
    weft_loop_stats s1 = stats(loop);
    assert_int_equal(g_count[3], 1);
    assert_int_equal(g_count[4], 4);
    assert_true(s1.iterations - s0.iterations <= 10);
    assert_true(s1.polls - s0.polls <= 10);
    if (strcmp(backend, "epoll") == 0)
        assert_int_equal(g_hook.by_kind[WEFT_REPORT_IO], 1); /* one rebuild */
    close(keep);
    close(p[1]);
    finish(loop);
}

/* The poll backend parks the slot of an fd closed while watched: the
 * watcher hears WEFT_IO_ERROR once, the loop does not spin, and a new
 * interest unparks it. */
static int g_io_calls, g_io_last;

static void io_record(weft_io *w, unsigned ev)
{
    (void)w;
    g_io_calls++;
    g_io_last = (int)ev;
}

static void test_poll_parks_the_slot_of_a_closed_fd(void **state)
{
    (void)state;
    weft_loop *loop = vloop_on("poll");
    int p[2];
    make_pipe(p);
    weft_io w;
    assert_int_equal(weft_io_init(&w, loop, p[0], io_record), 0);
    assert_int_equal(weft_io_start(&w, WEFT_READABLE), 0);
    step(loop);
    assert_int_equal(g_io_calls, 0);
    close(p[0]);
    assert_int_equal(weft_call_later(loop, 60.0, noop, NULL, NULL), 0);
    uint64_t it = iterations(loop);
    run_until(loop, 120 * SEC);
    assert_int_equal(g_io_calls, 1);
    assert_int_equal(g_io_last, WEFT_IO_ERROR);
    assert_true(iterations(loop) - it <= 6);
    weft_io_close(&w);
    close(p[1]);
    finish(loop);
}

/* ---- weft_io (caller-owned fd watchers) -------------------------------------------------- */

typedef struct conn {
    int fd;
    weft_io io; /* embedded: WEFT_CONTAINER_OF finds the conn */
    int calls;
    unsigned events[8];
    int stop_after;
} conn;

static void conn_cb(weft_io *w, unsigned ev)
{
    conn *c = WEFT_CONTAINER_OF(w, conn, io);
    if (c->calls < 8)
        c->events[c->calls] = ev;
    if (++c->calls == c->stop_after)
        weft_loop_stop(g_loop);
}

/* weft_io_init validates the fd with the backend at once: -EBADF for -1 and
 * for a closed fd, -EINVAL for NULL arguments; nothing is left registered. */
static void test_io_init_refuses_bad_arguments_and_fds(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    close_pair(p);
    weft_io w;
    assert_int_equal(weft_io_init(NULL, loop, 0, io_noop), -EINVAL);
    assert_int_equal(weft_io_init(&w, NULL, 0, io_noop), -EINVAL);
    assert_int_equal(weft_io_init(&w, loop, 0, NULL), -EINVAL);
    assert_int_equal(weft_io_init(&w, loop, -1, io_noop), -EBADF);
    assert_int_equal(weft_io_init(&w, loop, p[0], io_noop), -EBADF);
    assert_null(weft_io_loop(&w));
    assert_int_equal(weft_io_start(&w, WEFT_READABLE), -EINVAL);
    assert_int_equal(weft_io_start(NULL, WEFT_READABLE), -EINVAL);
    assert_int_equal(weft_io_stop(NULL, WEFT_READABLE), -EINVAL);
    weft_io_close(NULL);
    weft_io_close(&w); /* never initialised (loop NULL): a no-op */
    finish(loop);
}

/* A regular file cannot be watched with epoll: -EPERM at init. */
static void test_io_init_regular_file_with_epoll_returns_eperm(void **state)
{
    (void)state;
    weft_loop *loop = vloop_on("epoll");
    char path[] = "/tmp/weft_test_io_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    weft_io w;
    assert_int_equal(weft_io_init(&w, loop, fd, io_noop), -EPERM);
    close(fd);
    finish(loop);
}

/* One watcher per fd and loop: a second weft_io_init, or add_reader on a
 * fd with a weft_io, is -EEXIST; and the other way round. */
static void test_io_init_on_a_watched_fd_returns_eexist(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2], q[2];
    make_pipe(p);
    make_pipe(q);
    weft_io a, b;
    assert_int_equal(weft_io_init(&a, loop, p[0], io_noop), 0);
    assert_int_equal(weft_io_init(&b, loop, p[0], io_noop), -EEXIST);
    assert_int_equal(weft_add_reader(loop, p[0], rec, TAG(1)), -EEXIST);
    assert_int_equal(weft_remove_reader(loop, p[0]), -ENOENT);
    assert_int_equal(weft_add_reader(loop, q[0], rec, TAG(1)), 0);
    assert_int_equal(weft_io_init(&b, loop, q[0], io_noop), -EEXIST);
    assert_int_equal(weft_remove_reader(loop, q[0]), 0);
    weft_io_close(&a);
    assert_int_equal(weft_io_init(&b, loop, p[0], io_noop), 0); /* free again */
    weft_io_close(&b);
    close_pair(p);
    close_pair(q);
    finish(loop);
}

/* Start and stop never fail on a live watcher; bad masks are -EINVAL; the
 * accessors tell the interest, fd and loop. */
static void test_io_start_and_stop_change_only_the_interest(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    weft_io w;
    assert_int_equal(weft_io_init(&w, loop, p[0], io_noop), 0);
    assert_int_equal(weft_io_events(&w), 0);
    assert_int_equal(weft_io_fd(&w), p[0]);
    assert_ptr_equal(weft_io_loop(&w), loop);
    long before = alloc_calls();
    assert_int_equal(weft_io_start(&w, WEFT_READABLE), 0);
    assert_int_equal(weft_io_start(&w, WEFT_WRITABLE), 0);
    assert_int_equal(weft_io_events(&w), WEFT_READABLE | WEFT_WRITABLE);
    assert_int_equal(weft_io_stop(&w, WEFT_READABLE), 0);
    assert_int_equal(weft_io_events(&w), WEFT_WRITABLE);
    assert_int_equal(weft_io_start(&w, WEFT_IO_ERROR), -EINVAL);
    assert_int_equal(weft_io_start(&w, 8), -EINVAL);
    assert_int_equal(weft_io_stop(&w, 16), -EINVAL);
    assert_int_equal(weft_io_events(&w), WEFT_WRITABLE);
    assert_int_equal(alloc_calls(), before); /* no allocation either */
    weft_io_close(&w);
    assert_int_equal(weft_io_events(&w), 0);
    assert_int_equal(weft_io_fd(&w), -1);
    assert_null(weft_io_loop(&w));
    weft_io_close(&w); /* idempotent */
    close_pair(p);
    finish(loop);
}

/* The callback runs once per iteration with every event seen, level-
 * triggered, and finds its owner with WEFT_CONTAINER_OF. */
static void test_io_callback_gets_the_events_once_per_iteration(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    write_byte(sv[1]);
    conn c = {.fd = sv[0], .stop_after = 3};
    assert_int_equal(weft_io_init(&c.io, loop, sv[0], conn_cb), 0);
    assert_int_equal(weft_io_start(&c.io, WEFT_READABLE | WEFT_WRITABLE), 0);
    uint64_t it = iterations(loop);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    assert_int_equal(c.calls, 3);
    assert_int_equal(iterations(loop) - it, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.events[i], WEFT_READABLE | WEFT_WRITABLE);
    weft_io_stop(&c.io, WEFT_WRITABLE);
    step(loop);
    assert_int_equal(c.events[3], WEFT_READABLE);
    weft_io_close(&c.io);
    close_pair(sv);
    finish(loop);
}

/* A hang-up is reported as readable and writable (a read sees EOF). */
static void test_io_hangup_is_reported_readable(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    close(p[1]);
    conn c = {.fd = p[0], .stop_after = 1};
    assert_int_equal(weft_io_init(&c.io, loop, p[0], conn_cb), 0);
    assert_int_equal(weft_io_start(&c.io, WEFT_READABLE), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    assert_true(c.events[0] & WEFT_READABLE);
    weft_io_close(&c.io);
    close(p[0]);
    finish(loop);
}

/* A watcher with no interest on a hung-up fd does not wake the loop: an
 * hour of virtual time passes in a few iterations. */
static void test_io_without_interest_on_a_hung_up_fd_does_not_spin(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    close(p[1]);
    conn c = {.fd = p[0]};
    assert_int_equal(weft_io_init(&c.io, loop, p[0], conn_cb), 0);
    assert_int_equal(weft_io_start(&c.io, WEFT_READABLE), 0);
    step(loop);
    assert_int_equal(c.calls, 1);
    assert_int_equal(weft_io_stop(&c.io, WEFT_READABLE), 0);
    uint64_t it = iterations(loop);
    run_until(loop, 3600 * SEC);
    assert_int_equal(c.calls, 1);
    assert_true(iterations(loop) - it <= 4);
    weft_io_close(&c.io);
    close(p[0]);
    finish(loop);
}

static weft_io *g_victim_io;

static void stop_victim_io(void *tag)
{
    rec(tag);
    assert_int_equal(weft_io_stop(g_victim_io, WEFT_READABLE), 0);
}

/* Stopping a direction drops the events gathered for it: a watcher queued
 * only for them does not run (an earlier callback of the batch stopped it). */
static void test_io_stop_drops_events_already_gathered(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    write_byte(p[1]);
    conn c = {.fd = p[0]};
    assert_int_equal(weft_io_init(&c.io, loop, p[0], conn_cb), 0);
    assert_int_equal(weft_io_start(&c.io, WEFT_READABLE), 0);
    g_victim_io = &c.io;
    /* the batch: this call (queued first), then the I/O */
    assert_int_equal(weft_call_soon(loop, stop_victim_io, TAG(1), NULL), 0);
    step(loop);
    EXPECT_TAGS(1);
    assert_int_equal(c.calls, 0);
    weft_io_close(&c.io);
    close_pair(p);
    finish(loop);
}

static void close_and_free_self(weft_io *w, unsigned ev)
{
    (void)ev;
    conn *c = WEFT_CONTAINER_OF(w, conn, io);
    weft_io_close(w);
    g_count[5]++;
    free(c);
}

/* A callback may close its own watcher and free the memory holding it. */
static void test_io_callback_may_close_and_free_its_watcher(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    write_byte(p[1]);
    conn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(weft_io_init(&c->io, loop, p[0], close_and_free_self), 0);
    assert_int_equal(weft_io_start(&c->io, WEFT_READABLE), 0);
    step(loop);
    step(loop);
    assert_int_equal(g_count[5], 1);
    close_pair(p);
    finish(loop);
}

/* A change the kernel refuses at the next wait (the fd was closed, and its
 * number is free) reaches the callback as WEFT_IO_ERROR and clears the
 * interest. */
static void test_io_change_refused_at_the_next_wait_is_reported_as_error(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    conn c = {.fd = p[0]};
    assert_int_equal(weft_io_init(&c.io, loop, p[0], conn_cb), 0);
    close(p[0]);
    assert_int_equal(weft_io_start(&c.io, WEFT_READABLE), 0); /* never fails */
    step(loop);
    if (strcmp(*state, "poll") != 0) { /* epoll, kqueue: the kernel refuses */
        assert_int_equal(c.calls, 1);
        assert_int_equal(c.events[0], WEFT_IO_ERROR);
        assert_int_equal(weft_io_events(&c.io), 0);
    } else {
        /* poll cannot refuse: the closed fd shows as POLLNVAL instead */
        assert_int_equal(c.calls, 1);
        assert_int_equal(c.events[0], WEFT_IO_ERROR);
    }
    weft_io_close(&c.io);
    close(p[1]);
    finish(loop);
}

/* After weft_loop_close a watcher is inactive: start returns WEFT_ECLOSED
 * and close still works (before destroy). */
static void test_io_watcher_outlives_loop_close(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    weft_io w;
    assert_int_equal(weft_io_init(&w, loop, p[0], io_noop), 0);
    assert_int_equal(weft_io_start(&w, WEFT_READABLE), 0);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(weft_io_start(&w, WEFT_READABLE), WEFT_ECLOSED);
    assert_int_equal(weft_io_init(&w, loop, p[1], io_noop), WEFT_ECLOSED);
    weft_io_close(&w);
    assert_null(weft_io_loop(&w));
    close_pair(p);
    finish(loop);
}

/* weft_io_init's allocations (the fd table grown to a high fd, and the
 * poll backend's tables): every failure is -ENOMEM with nothing registered,
 * until it succeeds.  A table that did grow keeps its capacity (freed at
 * close; finish() checks that nothing leaks). */
static void test_io_init_survives_every_allocation_failure(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    int fd = fcntl(p[0], F_DUPFD, 300);
    assert_true(fd >= 300);
    weft_io w;
    for (long n = 1;; n++) {
        assert_true(n < 100);
        long live = alloc_live();
        alloc_fail_at(alloc_calls() + n);
        int rc = weft_io_init(&w, loop, fd, io_noop);
        alloc_fail_at(0);
        if (rc == 0)
            break;
        /* nothing left behind: were the fd still registered, the next
         * attempt would fail with -EEXIST */
        assert_int_equal(rc, -ENOMEM);
        assert_true(alloc_live() <= live + 2);
        assert_null(weft_io_loop(&w));
    }
    assert_true(loop->nfds > 300);
    weft_io_close(&w);
    close(fd);
    close_pair(p);
    finish(loop);
}

/* ---- EINTR ---------------------------------------------------------------------- */

/* Counter bumped by the SIGUSR1 handler; atomic rather than volatile
 * sig_atomic_t because the signalling thread reads it (lock-free atomics are
 * async-signal-safe). */
static atomic_int g_sigs;

static void on_sigusr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_sigs, 1);
}

typedef struct eintr_ctx {
    pthread_t loop_thread;
    int wfd;
    atomic_int started;
} eintr_ctx;

static void mark_started(void *arg)
{
    atomic_store(&((eintr_ctx *)arg)->started, 1);
}

/* Signals the loop thread (blocked in the backend) until the handler ran 3
 * times, then makes the pipe readable.  The pacing only spaces the signals;
 * nothing depends on it. */
static void *signaller(void *arg)
{
    eintr_ctx *c = arg;
    while (!atomic_load(&c->started))
        sleep_us(100);
    for (int i = 0; i < 10000 && atomic_load(&g_sigs) < 3; i++) {
        pthread_kill(c->loop_thread, SIGUSR1);
        sleep_us(1000);
    }
    (void)!write(c->wfd, "x", 1);
    return NULL;
}

/* A backend wait interrupted by a signal (no SA_RESTART) is counted and
 * retried: the loop keeps waiting and the reader fires later. */
static void test_interrupted_wait_is_counted_and_retried(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    atomic_store(&g_sigs, 0);
    eintr_ctx c = {.loop_thread = pthread_self(), .wfd = p[1]};
    atomic_init(&c.started, 0);
    watch w = {.fd = p[0], .tag = 1, .stop_at = 1, .drain = true};
    assert_int_equal(weft_add_reader(loop, p[0], on_watch, &w), 0);
    assert_int_equal(weft_call_soon(loop, mark_started, &c, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, signaller, &c), 0);
    int rc = weft_loop_run_forever(loop);
    pthread_join(th, NULL);
    sigaction(SIGUSR1, &old, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(w.calls, 1);
    assert_true(atomic_load(&g_sigs) >= 3);
    assert_true(stats(loop).eintr >= 1);
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    close_pair(p);
    finish(loop);
}

/* =============================================================================
 * call_soon_threadsafe (S-LOOP-16)
 * ========================================================================== */

typedef struct wake_ctx {
    weft_loop *loop;
    pthread_t loop_thread;
    atomic_int running;
    int rc; /* written by the thread, read after join */
    bool on_loop_thread;
} wake_ctx;

static void mark_running(void *arg)
{
    atomic_store(&((wake_ctx *)arg)->running, 1);
}

static void remote_cb(void *arg)
{
    wake_ctx *c = arg;
    c->on_loop_thread = pthread_equal(pthread_self(), c->loop_thread);
    assert_int_equal(weft_loop_stop(c->loop), 0);
}

static void *waker(void *arg)
{
    wake_ctx *c = arg;
    while (!atomic_load(&c->running))
        sleep_us(100);
    sleep_us(20000); /* let the loop reach its infinite wait; not relied on */
    c->rc = weft_call_soon_threadsafe(c->loop, remote_cb, c);
    return NULL;
}

/* S-LOOP-16: a loop blocked with nothing to do (no timers, fds or ready
 * callbacks: an infinite wait) wakes for call_soon_threadsafe; the callback
 * runs on the loop thread and can stop the loop. */
static void test_call_soon_threadsafe_wakes_blocked_loop(void **state)
{
    weft_loop *loop = vloop_on(*state);
    wake_ctx c = {.loop = loop, .loop_thread = pthread_self(), .rc = 1};
    atomic_init(&c.running, 0);
    assert_int_equal(weft_call_soon(loop, mark_running, &c, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waker, &c), 0);
    int rc = weft_loop_run_forever(loop);
    pthread_join(th, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(c.rc, 0);
    assert_true(c.on_loop_thread);
    finish(loop);
}

enum { TS_THREADS = 8, TS_CALLS = 2000 };

typedef struct ts_state {
    weft_loop *loop;
    int next[TS_THREADS];
    int total, out_of_order;
} ts_state;

static ts_state g_ts;

typedef struct ts_thread_arg {
    int id, failures;
} ts_thread_arg;

static void ts_cb(void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    int id = (int)(v >> 20), seq = (int)(v & 0xfffff);
    if (seq != g_ts.next[id])
        g_ts.out_of_order++;
    g_ts.next[id] = seq + 1;
    if (++g_ts.total == TS_THREADS * TS_CALLS)
        weft_loop_stop(g_ts.loop);
}

static void *ts_thread(void *p)
{
    ts_thread_arg *a = p;
    for (int seq = 0; seq < TS_CALLS; seq++) {
        uintptr_t v = ((uintptr_t)a->id << 20) | (uintptr_t)seq;
        if (weft_call_soon_threadsafe(g_ts.loop, ts_cb, (void *)v) != 0)
            a->failures++;
    }
    return NULL;
}

/* S-LOOP-16: many threads x many calls: each arrives exactly once, and each
 * thread's calls run in call order. */
static void test_call_soon_threadsafe_from_many_threads_arrives_once_in_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    memset(&g_ts, 0, sizeof g_ts);
    g_ts.loop = loop;
    pthread_t th[TS_THREADS];
    ts_thread_arg args[TS_THREADS];
    for (int i = 0; i < TS_THREADS; i++) {
        args[i] = (ts_thread_arg){.id = i};
        assert_int_equal(pthread_create(&th[i], NULL, ts_thread, &args[i]), 0);
    }
    int rc = weft_loop_run_forever(loop);
    for (int i = 0; i < TS_THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(rc, 0);
    for (int i = 0; i < TS_THREADS; i++) {
        assert_int_equal(args[i].failures, 0);
        assert_int_equal(g_ts.next[i], TS_CALLS);
    }
    assert_int_equal(g_ts.total, TS_THREADS * TS_CALLS);
    assert_int_equal(g_ts.out_of_order, 0);
    assert_int_equal(weft_loop_stop(loop), 0); /* one more iteration: nothing extra */
    assert_int_equal(weft_loop_run_forever(loop), 0);
    assert_int_equal(g_ts.total, TS_THREADS * TS_CALLS);
    finish(loop);
}

static void threadsafe_from_loop(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 3; i++)
        assert_int_equal(weft_call_soon_threadsafe(g_loop, rec, TAG(i)), 0);
}

/* call_soon_threadsafe from the loop thread itself: runs in the next
 * iteration, in call order. */
static void test_call_soon_threadsafe_from_loop_thread_runs_next_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_call_soon(loop, threadsafe_from_loop, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_n, 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(1, 2, 3);
    finish(loop);
}

typedef struct thread_loop_arg {
    weft_loop *loop;
    int ticks, rc;
    bool saw_own_loop;
} thread_loop_arg;

static void count_tick(void *arg)
{
    thread_loop_arg *a = arg;
    a->saw_own_loop = weft_running_loop() == a->loop;
    if (++a->ticks == 100)
        weft_loop_stop(a->loop);
}

static void *run_private_loop(void *p)
{
    thread_loop_arg *a = p;
    weft_loop_options o = loop_options(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
    a->rc = weft_loop_new(&a->loop, &o);
    for (int i = 1; i <= 100 && a->rc == 0; i++)
        a->rc = weft_call_later(a->loop, i, count_tick, a, NULL);
    if (a->rc == 0)
        a->rc = weft_loop_run_forever(a->loop);
    if (a->loop)
        weft_loop_destroy(a->loop);
    return NULL;
}

/* No global state: loops in several threads run independently. */
static void test_loops_in_separate_threads_run_independently(void **state)
{
    (void)state;
    pthread_t th[4];
    thread_loop_arg a[4];
    memset(a, 0, sizeof a);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, run_private_loop, &a[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(a[i].rc, 0);
        assert_int_equal(a[i].ticks, 100);
        assert_true(a[i].saw_own_loop);
    }
    assert_int_equal(alloc_live(), 0);
}

/* =============================================================================
 * Loop lag: the watchdog thread (slow-callback reports)
 *
 * Real time, but no timing assertion: a slow callback spins until the
 * watchdog has flagged it (weft__lag_flagged), with a 30 s guard, so the
 * tests do not depend on how fast the machine or the scheduler is.
 * ========================================================================== */

static struct {
    int count;
    weft_cb *fn;
    void *arg, *ud;
    int64_t duration_ns;
    weft_loop *loop;
    const char *task_name;
    int line;
    char msg[256];
} g_lag;

static void lag_hook(weft_loop *loop, const weft_report *r, void *ud)
{
    if (r->kind != WEFT_REPORT_SLOW) {
        record_report(loop, r, ud);
        return;
    }
    g_lag.count++;
    g_lag.loop = loop;
    g_lag.fn = r->fn;
    g_lag.arg = r->arg;
    g_lag.ud = ud;
    g_lag.duration_ns = r->duration_ns;
    g_lag.task_name = r->task_name ? "set" : NULL;
    g_lag.line = r->line;
    snprintf(g_lag.msg, sizeof g_lag.msg, "%s", r->message);
}

/* Busy until the watchdog flags this callback (or 30 s passed). */
static void spin_until_flagged(void *arg)
{
    (void)arg;
    int64_t guard = mono_ns() + 30 * SEC;
    while (!weft__lag_flagged(g_loop) && mono_ns() < guard) {
    }
}

/* Busy for ms of real time (outside callbacks, or with accounting off). */
static void spin_ms(void *arg)
{
    int64_t end = mono_ns() + (intptr_t)arg * MS;
    while (mono_ns() < end) {
    }
}

static weft_loop *lag_loop(int64_t threshold_ns)
{
    weft_loop *loop = vloop();
    memset(&g_lag, 0, sizeof g_lag);
    assert_int_equal(weft_loop_set_report_hook(loop, lag_hook, &g_lag), 0);
    assert_int_equal(weft_loop_set_lag_threshold(loop, threshold_ns), 0);
    return loop;
}

/* P-4 / S-LOOP-19 without debug mode: a callback running past the threshold
 * is reported once, as SLOW, with its identity and a duration of at least
 * the threshold. */
static void test_slow_callback_is_reported_once(void **state)
{
    (void)state;
    weft_loop *loop = lag_loop(10 * MS);
    assert_int_equal(weft_call_soon(loop, spin_until_flagged, TAG(30), NULL), 0);
    assert_int_equal(weft_call_soon(loop, noop, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_lag.count, 1);
    assert_ptr_equal(g_lag.loop, loop);
    assert_true(g_lag.fn == spin_until_flagged);
    assert_ptr_equal(g_lag.arg, TAG(30));
    assert_ptr_equal(g_lag.ud, &g_lag);
    assert_true(g_lag.duration_ns >= 10 * MS);
    assert_non_null(strstr(g_lag.msg, "slow callback: "));
    assert_int_equal(stats(loop).lag_reports, 1);
    finish(loop);
}

/* The default report hook names a callback by its symbol where dladdr can
 * (an exported function of this executable is not always one), else by
 * its address bytes: either way the message says what ran. */
static void test_slow_callback_message_names_the_callback(void **state)
{
    (void)state;
    weft_loop *loop = lag_loop(10 * MS);
    assert_int_equal(weft_call_soon(loop, spin_until_flagged, TAG(7), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_lag.count, 1);
    assert_true(strstr(g_lag.msg, "spin_until_flagged") || strstr(g_lag.msg, "0x"));
    assert_non_null(strstr(g_lag.msg, " ran "));
    finish(loop);
}

/* Fast callbacks are not reported. */
static void test_fast_callbacks_are_not_reported(void **state)
{
    (void)state;
    weft_loop *loop = lag_loop(1 * SEC);
    for (int i = 0; i < 10; i++)
        assert_int_equal(weft_call_soon(loop, noop, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_lag.count, 0);
    assert_int_equal(stats(loop).lag_reports, 0);
    finish(loop);
}

/* Fast callbacks are not reported in an iteration that polls fds either. */
static void test_fast_callbacks_with_watched_fd_are_not_reported(void **state)
{
    weft_loop *loop = vloop_on(*state);
    memset(&g_lag, 0, sizeof g_lag);
    assert_int_equal(weft_loop_set_report_hook(loop, lag_hook, NULL), 0);
    assert_int_equal(weft_loop_set_lag_threshold(loop, SEC), 0);
    int p[2];
    make_pipe(p);
    write_byte(p[1]);
    assert_int_equal(weft_add_reader(loop, p[0], noop, NULL), 0);
    assert_int_equal(weft_call_soon(loop, noop, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_lag.count, 0);
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    close_pair(p);
    finish(loop);
}

/* Time spent outside the loop, between two runs, is not lag: the loop is
 * idle then, and an idle loop's watchdog does not sample at all. */
static void test_time_between_runs_is_not_lag(void **state)
{
    weft_loop *loop = vloop_on(*state);
    memset(&g_lag, 0, sizeof g_lag);
    assert_int_equal(weft_loop_set_report_hook(loop, lag_hook, NULL), 0);
    assert_int_equal(weft_loop_set_lag_threshold(loop, 10 * MS), 0);
    int p[2];
    make_pipe(p);
    write_byte(p[1]);
    assert_int_equal(weft_add_reader(loop, p[0], noop, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    spin_ms(TAG(100)); /* the embedding application is busy: 10 thresholds */
    assert_int_equal(weft_call_soon(loop, noop, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_lag.count, 0);
    assert_int_equal(weft_remove_reader(loop, p[0]), 0);
    close_pair(p);
    finish(loop);
}

/* A negative threshold turns reporting off, and no watchdog thread runs. */
static void test_negative_lag_threshold_disables_reports_and_the_thread(void **state)
{
    (void)state;
    weft_loop *loop = lag_loop(-1);
    assert_int_equal(weft_call_soon(loop, spin_ms, TAG(50), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_lag.count, 0);
    assert_int_equal(stats(loop).lag_reports, 0);
    assert_false(loop->lag.started);
    finish(loop);
}

/* weft_loop_options.lag_threshold_ns sets the threshold at creation. */
static void test_lag_threshold_option_is_honoured(void **state)
{
    (void)state;
    weft_loop_options o = loop_options(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
    o.lag_threshold_ns = 10 * MS;
    weft_loop *loop = NULL;
    assert_int_equal(weft_loop_new(&loop, &o), 0);
    g_loop = loop;
    memset(&g_lag, 0, sizeof g_lag);
    assert_int_equal(weft_loop_set_report_hook(loop, lag_hook, NULL), 0);
    assert_int_equal(weft_call_soon(loop, spin_until_flagged, TAG(30), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_lag.count, 1);
    finish(loop);
}

/* The watchdog is lazy: no thread before the first run (nor after close);
 * one while the loop has run with accounting on. */
static void test_watchdog_starts_at_first_run_and_is_joined_at_close(void **state)
{
    (void)state;
    weft_loop *loop = lag_loop(0); /* the default: 100 ms */
    assert_false(loop->lag.started);
    step(loop);
    assert_true(loop->lag.started);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_false(loop->lag.started);
    finish(loop);
}

typedef struct idle_ctx {
    weft_loop *loop;
    atomic_int running;
    int rc;
    bool saw_asleep;
} idle_ctx;

static void idle_mark_running(void *arg)
{
    atomic_store(&((idle_ctx *)arg)->running, 1);
}

/* Waits (deterministically: until the condition holds, 30 s guard) for the
 * watchdog to fall asleep while the loop is blocked, then stops the loop. */
static void *idle_waker(void *arg)
{
    idle_ctx *c = arg;
    int64_t guard = mono_ns() + 30 * SEC;
    while (!atomic_load(&c->running) && mono_ns() < guard)
        sleep_us(200);
    while (!atomic_load(&c->loop->lag.asleep) && mono_ns() < guard)
        sleep_us(200);
    c->saw_asleep = atomic_load(&c->loop->lag.asleep);
    c->rc = weft_call_soon_threadsafe(c->loop, stop_cb, NULL);
    return NULL;
}

/* While the loop blocks in the backend the watchdog sleeps on its
 * condition variable (it does not wake periodically), and the loop wakes
 * it when it has work again. */
static void test_watchdog_sleeps_while_the_loop_is_blocked(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    assert_int_equal(weft_loop_set_lag_threshold(loop, 10 * MS), 0);
    idle_ctx c = {.loop = loop, .rc = 1};
    atomic_init(&c.running, 0);
    assert_int_equal(weft_call_soon(loop, idle_mark_running, &c, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, idle_waker, &c), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    pthread_join(th, NULL);
    assert_true(c.saw_asleep);
    assert_int_equal(c.rc, 0);
    finish(loop);
}

/* A run function that describes itself (a task step) is reported through
 * its describe function: the report carries what it filled in. */
typedef struct fake_step {
    weft_node node;
    const char *name;
} fake_step;

static void describe_fake_step(const void *obj, weft_report *r, char *buf, size_t n)
{
    const fake_step *s = obj;
    r->task = s;
    r->task_name = s->name;
    r->file = "fake.c";
    r->line = 42;
    snprintf(buf, n, "task '%s' step resumed at fake.c:42", s->name);
}

static void fake_step_run(weft_node *n)
{
    fake_step *s = (fake_step *)(void *)n;
    weft__running_obj(g_loop, describe_fake_step, s);
    spin_until_flagged(NULL);
}

static void test_slow_task_step_is_described_by_its_describe_function(void **state)
{
    (void)state;
    weft_loop *loop = lag_loop(10 * MS);
    fake_step s = {{{NULL, NULL}, fake_step_run}, "worker"};
    weft__ready_push(loop, &s.node);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_lag.count, 1);
    assert_null(g_lag.fn);
    assert_ptr_equal(g_lag.arg, &s);
    assert_non_null(g_lag.task_name);
    assert_int_equal(g_lag.line, 42);
    assert_non_null(strstr(g_lag.msg, "task 'worker' step resumed at fake.c:42"));
    finish(loop);
}

/* weft__lag_capture before freeing the object: the report is built from
 * the capture, and the loop never touches the freed object (ASan). */
static void freeing_step_run(weft_node *n)
{
    fake_step *s = (fake_step *)(void *)n;
    weft__running_obj(g_loop, describe_fake_step, s);
    spin_until_flagged(NULL);
    weft__lag_capture(g_loop);
    free(s);
}

static void test_lag_capture_lets_a_step_free_its_object(void **state)
{
    (void)state;
    weft_loop *loop = lag_loop(10 * MS);
    fake_step *s = malloc(sizeof *s);
    assert_non_null(s);
    *s = (fake_step){{{NULL, NULL}, freeing_step_run}, "gone"};
    weft__ready_push(loop, &s->node);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_lag.count, 1);
    assert_non_null(strstr(g_lag.msg, "task 'gone' step"));
    finish(loop);
}

/* A node whose run function records nothing is still named (by node and
 * run function), never by the previous callback's record. */
static void silent_run(weft_node *n)
{
    (void)n;
    spin_until_flagged(NULL);
}

static void test_slow_unrecorded_node_is_not_blamed_on_the_previous_callback(void **state)
{
    (void)state;
    weft_loop *loop = lag_loop(10 * MS);
    weft_node n = {{NULL, NULL}, silent_run};
    assert_int_equal(weft_call_soon(loop, noop, TAG(5), NULL), 0);
    weft__ready_push(loop, &n);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_lag.count, 1);
    assert_null(g_lag.fn);
    assert_non_null(strstr(g_lag.msg, "node"));
    finish(loop);
}

/* A slow due timer is reported too, with the timer's callback. */
static void test_slow_timer_callback_is_reported(void **state)
{
    (void)state;
    weft_loop *loop = lag_loop(10 * MS);
    weft_timer t;
    assert_int_equal(weft_timer_init(&t, loop, spin_until_flagged, TAG(3)), 0);
    assert_int_equal(weft_timer_start_ns(&t, 0, 0), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_lag.count, 1);
    assert_true(g_lag.fn == spin_until_flagged);
    assert_ptr_equal(g_lag.arg, TAG(3));
    weft_timer_close(&t);
    finish(loop);
}

/* A forked child has no watchdog thread of its parent: its loop starts its
 * own at the next run (getpid at run()), so slow callbacks are reported in
 * the child too.  The child reports through its exit status. */
#if defined(__SANITIZE_THREAD__)
#define WT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WT_TSAN 1
#endif
#endif

static void test_forked_child_starts_its_own_watchdog(void **state)
{
    (void)state;
#ifdef WT_TSAN
    skip(); /* TSan cannot start threads after a multi-threaded fork */
#endif
    weft_loop *loop = lag_loop(10 * MS);
    step(loop); /* the parent's watchdog runs */
    assert_true(loop->lag.started);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int code = 1;
        if (weft_call_soon(loop, spin_until_flagged, NULL, NULL) == 0 &&
            weft_loop_run_once(loop) == 0)
            code = g_lag.count == 1 ? 0 : 2;
        if (weft_loop_destroy(loop) != 0) /* joins the child's own watchdog */
            code = 3;
        _exit(code);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    finish(loop);
}

static int failing_spawn(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    (void)t, (void)a, (void)fn, (void)arg;
    return EAGAIN;
}

/* If the watchdog thread cannot be created, that is reported once
 * (WEFT_REPORT_OTHER) and the loop runs without slow-callback reports. */
static void test_watchdog_thread_failure_is_reported_once_and_the_loop_runs(void **state)
{
    (void)state;
    weft_loop *loop = lag_loop(10 * MS);
    loop->lag.spawn = failing_spawn;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(weft_call_soon(loop, count_cb, TAG(1), NULL), 0);
        assert_int_equal(weft_loop_run_once(loop), 0);
    }
    assert_int_equal(g_count[1], 3);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_OTHER], 1);
    assert_int_equal(g_hook.err, -EAGAIN);
    assert_false(loop->lag.started);
    assert_int_equal(g_lag.count, 0);
    /* a new setting tries again */
    loop->lag.spawn = pthread_create;
    assert_int_equal(weft_loop_set_lag_threshold(loop, 10 * MS), 0);
    step(loop);
    assert_true(loop->lag.started);
    finish(loop);
}

/* The default report hook (NULL) prints one line to stderr; reports still
 * count. */
static void test_default_report_hook_reports_to_stderr(void **state)
{
    (void)state;
    weft_loop *loop = lag_loop(10 * MS);
    assert_int_equal(weft_loop_set_report_hook(loop, NULL, NULL), 0);
    assert_int_equal(weft_call_soon(loop, spin_until_flagged, TAG(5), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_lag.count, 0);
    assert_int_equal(stats(loop).lag_reports, 1);
    finish(loop);
}

static void counting_hook(weft_loop *loop, const weft_report *r, void *ud)
{
    (void)loop;
    (void)r;
    (*(int *)ud)++;
}

/* The report hook can be set and reset (NULL = default); a healthy loop
 * never calls it. */
static void test_set_report_hook_accepts_custom_and_null(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int calls = 0;
    assert_int_equal(weft_loop_set_report_hook(loop, counting_hook, &calls), 0);
    assert_int_equal(weft_call_soon(loop, noop, NULL, NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(calls, 0);
    assert_int_equal(weft_loop_set_report_hook(loop, NULL, NULL), 0);
    assert_int_equal(weft_loop_set_report_hook(NULL, counting_hook, &calls), -EINVAL);
    finish(loop);
}

/* =============================================================================
 * Timers: the defects and the new API
 * ========================================================================== */

/* Defect: a repeating timer whose next deadline would pass INT64_MAX was
 * re-armed at "now" forever (a virtual clock hang).  It now fires its last
 * time and is disarmed. */
static void test_repeating_timer_past_int64_max_fires_once_more_then_stops(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    ticker k = {.stop_at = 100};
    assert_int_equal(weft_timer_init(&k.t, loop, tick, &k), 0);
    assert_int_equal(weft_timer_start_at_ns(&k.t, INT64_MAX - 5, 10), 0);
    for (int i = 0; i < 5 && weft_timer_active(&k.t); i++)
        assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(k.count, 1);
    assert_int_equal(k.at[0], INT64_MAX - 5);
    assert_false(weft_timer_active(&k.t));
    /* and one that already sits at INT64_MAX */
    assert_int_equal(weft_timer_start_at_ns(&k.t, INT64_MAX, 1), 0);
    for (int i = 0; i < 5 && weft_timer_active(&k.t); i++)
        assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(k.count, 2);
    assert_false(weft_timer_active(&k.t));
    weft_timer_close(&k.t);
    finish(loop);
}

/* A repeating timer that fell behind near INT64_MAX (now + period would
 * overflow) is disarmed too. */
static void test_repeating_timer_behind_near_int64_max_is_disarmed(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    ticker k = {.stop_at = 100};
    assert_int_equal(weft_timer_init(&k.t, loop, tick, &k), 0);
    run_until(loop, INT64_MAX - 10);
    assert_int_equal(weft_timer_start_at_ns(&k.t, 0, 20), 0); /* far behind */
    for (int i = 0; i < 5 && weft_timer_active(&k.t); i++)
        assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(k.count, 1);
    assert_false(weft_timer_active(&k.t));
    weft_timer_close(&k.t);
    finish(loop);
}

/* weft_timer_when: the deadline while armed, while due (seen from an
 * earlier callback of the batch) and, for a repeating timer, the next one
 * inside its callback; INT64_MIN when idle. */
static weft_timer *g_when_probe;
static int64_t g_when_seen;

static void probe_when(void *tag)
{
    rec(tag);
    g_when_seen = weft_timer_when(g_when_probe);
}

static void test_timer_when_reports_armed_and_due_deadlines(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_timer a, b;
    assert_int_equal(weft_timer_init(&a, loop, probe_when, TAG(1)), 0);
    assert_int_equal(weft_timer_init(&b, loop, rec, TAG(2)), 0);
    assert_int_equal(weft_timer_when(&a), INT64_MIN);
    assert_int_equal(weft_timer_when(NULL), INT64_MIN);
    assert_int_equal(weft_timer_start_ns(&a, SEC, 0), 0);
    assert_int_equal(weft_timer_start_ns(&b, SEC, 0), 0);
    assert_int_equal(weft_timer_when(&a), SEC);
    g_when_probe = &b;
    run_until(loop, 2 * SEC);
    EXPECT_TAGS(1, 2);
    assert_int_equal(g_when_seen, SEC); /* b was due, not yet run */
    assert_int_equal(weft_timer_when(&b), INT64_MIN);
    weft_timer_close(&a);
    weft_timer_close(&b);
    finish(loop);
}

/* weft_timer_start takes seconds, by the one conversion rule. */
static void test_timer_start_in_seconds(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    ticker k = {.stop_at = 3};
    assert_int_equal(weft_timer_init(&k.t, loop, tick, &k), 0);
    assert_int_equal(weft_timer_start(&k.t, NAN, 0), -EINVAL);
    assert_int_equal(weft_timer_start(&k.t, 1.0, NAN), -EINVAL);
    assert_int_equal(weft_timer_start(&k.t, 1.0, -0.5), -EINVAL);
    assert_false(weft_timer_active(&k.t));
    assert_int_equal(weft_timer_start(&k.t, 1.5, 0.25), 0);
    run_until(loop, 10 * SEC);
    assert_int_equal(k.count, 3);
    assert_int_equal(k.at[0], 1500 * MS);
    assert_int_equal(k.at[2], 2000 * MS);
    assert_int_equal(weft_timer_start(&k.t, INFINITY, 0), 0); /* never */
    assert_int_equal(weft_timer_when(&k.t), INT64_MAX);
    weft_timer_close(&k.t);
    finish(loop);
}

/* Defect (issue 7, 2): one seconds-to-ns rule.  NaN is -EINVAL; infinities
 * and huge values saturate (no UB: weft_sleep(-INFINITY) was); a deadline
 * in the infinite past fires at the next timer step, one in the infinite
 * future never. */
static void test_seconds_saturate_and_nan_is_einval(void **state)
{
    (void)state;
    int64_t ns = 0;
    assert_int_equal(weft__sec_to_ns(NAN, &ns), -EINVAL);
    assert_int_equal(weft__sec_to_ns(INFINITY, &ns), 0);
    assert_int_equal(ns, INT64_MAX);
    assert_int_equal(weft__sec_to_ns(-INFINITY, &ns), 0);
    assert_int_equal(ns, INT64_MIN);
    assert_int_equal(weft__sec_to_ns(1e300, &ns), 0);
    assert_int_equal(ns, INT64_MAX);
    assert_int_equal(weft__sec_to_ns(-1e300, &ns), 0);
    assert_int_equal(ns, INT64_MIN);
    assert_int_equal(weft__sec_to_ns(9223372036.854775807, &ns), 0);
    assert_int_equal(ns, INT64_MAX);
    assert_int_equal(weft__sec_to_ns(-1.5, &ns), 0);
    assert_int_equal(ns, -1500 * MS);
    assert_int_equal(weft__add_sat(INT64_MAX - 1, 5), INT64_MAX);
    assert_int_equal(weft__add_sat(INT64_MIN + 1, -5), INT64_MIN);
    assert_int_equal(weft__add_sat(7, -5), 2);

    weft_loop *loop = vloop();
    run_until(loop, SEC);
    g_n = 0;
    assert_int_equal(weft_call_later(loop, INFINITY, rec, TAG(9), NULL), 0);
    assert_int_equal(weft_call_later(loop, -INFINITY, rec, TAG(1), NULL), 0);
    assert_int_equal(weft_call_at(loop, -1e300, rec, TAG(2), NULL), 0);
    assert_int_equal(weft_call_later(loop, NAN, rec, TAG(3), NULL), -EINVAL);
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(2, 1); /* INT64_MIN, then 1 s + INT64_MIN */
    assert_int_equal(weft_loop_now(loop), SEC);
    finish(loop);
}

/* =============================================================================
 * Call tokens: cancel, cancelled, pending
 * ========================================================================== */

/* Defect: weft_call_cancel(loop_b, token_of_loop_a) returned 0 and moved
 * A's node into B's free list.  Now -EINVAL, and A's call still runs. */
static void test_call_cancel_with_a_token_of_another_loop_returns_einval(void **state)
{
    (void)state;
    weft_loop *a = vloop();
    weft_loop *b = new_vloop();
    weft_call tok;
    assert_int_equal(weft_call_soon(a, rec, TAG(1), &tok), 0);
    assert_int_equal(weft_call_cancel(b, tok), -EINVAL);
    assert_false(weft_call_pending(b, tok));
    assert_false(weft_call_cancelled(b, tok));
    assert_true(weft_call_pending(a, tok));
    assert_int_equal(weft_loop_run_once(a), 0);
    EXPECT_TAGS(1);
    assert_int_equal(weft_loop_destroy(b), 0);
    finish(a);
}

/* pending: true while queued or armed; cancelled: true only after a
 * successful cancel; both false after it ran. */
static void test_call_pending_and_cancelled_follow_the_call(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_call ran, gone, timer, zero = {0};
    assert_false(weft_call_pending(loop, zero));
    assert_false(weft_call_cancelled(loop, zero));
    assert_false(weft_call_pending(NULL, zero));
    assert_int_equal(weft_call_soon(loop, rec, TAG(1), &ran), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(2), &gone), 0);
    assert_int_equal(weft_call_later(loop, 5.0, rec, TAG(3), &timer), 0);
    assert_true(weft_call_pending(loop, ran));
    assert_true(weft_call_pending(loop, timer));
    assert_false(weft_call_cancelled(loop, gone));
    assert_int_equal(weft_call_cancel(loop, gone), 0);
    assert_false(weft_call_pending(loop, gone));
    assert_true(weft_call_cancelled(loop, gone));
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(1);
    assert_false(weft_call_pending(loop, ran));
    assert_false(weft_call_cancelled(loop, ran));
    assert_true(weft_call_cancelled(loop, gone)); /* still known */
    assert_true(weft_call_pending(loop, timer));
    assert_int_equal(weft_call_cancel(loop, timer), 0);
    assert_true(weft_call_cancelled(loop, timer));
    assert_false(weft_call_pending(loop, timer));
    assert_int_equal(weft_loop_close(loop), 0);
    assert_false(weft_call_cancelled(loop, gone)); /* a closed loop knows nothing */
    finish(loop);
}

/* A cancelled token stays cancelled while its node serves other calls that
 * run; the newer calls' tokens are not cancelled. */
static void test_call_cancelled_survives_reuse_of_the_node(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_call old, fresh;
    assert_int_equal(weft_call_soon(loop, rec, TAG(1), &old), 0);
    assert_int_equal(weft_call_cancel(loop, old), 0);
    assert_int_equal(weft_call_soon(loop, rec, TAG(2), &fresh), 0);
    if (fresh.p == old.p) /* the same node (not in quarantine builds) */
        assert_true(fresh.gen != old.gen);
    assert_true(weft_call_cancelled(loop, old));
    assert_false(weft_call_cancelled(loop, fresh));
    assert_int_equal(weft_call_cancel(loop, old), -ENOENT); /* stale */
    assert_int_equal(weft_loop_run_once(loop), 0);
    EXPECT_TAGS(2);
    assert_true(weft_call_cancelled(loop, old));
    assert_false(weft_call_cancelled(loop, fresh));
    finish(loop);
}

/* =============================================================================
 * weft_async
 * ========================================================================== */

static void async_count(void *arg)
{
    (*(int *)arg)++;
}

/* Sends before the callback starts coalesce into one call; a send after it
 * started (from the callback itself) makes another. */
static void test_async_sends_coalesce_until_the_callback_starts(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int calls = 0;
    weft_async a;
    assert_int_equal(weft_async_init(&a, loop, async_count, &calls), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(weft_async_send(&a), 0);
    step(loop);
    assert_int_equal(calls, 1);
    step(loop);
    assert_int_equal(calls, 1);
    assert_int_equal(weft_async_send(&a), 0);
    step(loop);
    assert_int_equal(calls, 2);
    weft_async_close(&a);
    finish(loop);
}

static weft_async g_resend;

static void async_resend(void *arg)
{
    int *calls = arg;
    if (++*calls < 3)
        assert_int_equal(weft_async_send(&g_resend), 0);
}

static void test_async_send_from_its_callback_runs_it_again_next_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int calls = 0;
    assert_int_equal(weft_async_init(&g_resend, loop, async_resend, &calls), 0);
    assert_int_equal(weft_async_send(&g_resend), 0);
    for (int i = 0; i < 5; i++)
        step(loop);
    assert_int_equal(calls, 3);
    weft_async_close(&g_resend);
    finish(loop);
}

/* close forgets a pending send; sends after the loop closed fail. */
static void test_async_close_forgets_a_pending_send(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int calls = 0;
    weft_async a;
    assert_int_equal(weft_async_init(&a, NULL, async_count, &calls), -EINVAL);
    assert_int_equal(weft_async_init(&a, loop, NULL, &calls), -EINVAL);
    assert_int_equal(weft_async_send(NULL), -EINVAL);
    assert_int_equal(weft_async_init(&a, loop, async_count, &calls), 0);
    assert_int_equal(weft_async_send(&a), 0);
    weft_async_close(&a);
    step(loop);
    assert_int_equal(calls, 0);
    assert_int_equal(weft_async_send(&a), -EINVAL); /* closed */
    weft_async_close(&a);                           /* idempotent */
    assert_int_equal(weft_async_init(&a, loop, async_count, &calls), 0);
    assert_int_equal(weft_async_send(&a), 0);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(weft_async_send(&a), WEFT_ECLOSED);
    assert_int_equal(weft_async_init(&a, loop, async_count, &calls), WEFT_ECLOSED);
    weft_async_close(&a);
    assert_int_equal(calls, 0);
    finish(loop);
}

enum { ASYNC_THREADS = 4, ASYNC_SENDS = 5000 };

typedef struct async_ctx {
    weft_async a;
    weft_loop *loop;
    atomic_int sent_done;
    atomic_int failures;
    int calls;
} async_ctx;

static void async_on_loop(void *arg)
{
    async_ctx *c = arg;
    c->calls++;
    if (atomic_load(&c->sent_done) == ASYNC_THREADS)
        weft_loop_stop(c->loop);
}

static void *async_sender(void *arg)
{
    async_ctx *c = arg;
    for (int i = 0; i < ASYNC_SENDS; i++)
        if (weft_async_send(&c->a) != 0)
            atomic_fetch_add(&c->failures, 1);
    atomic_fetch_add(&c->sent_done, 1);
    weft_async_send(&c->a); /* the last one: after sent_done, so it stops the loop */
    return NULL;
}

/* Many threads send; the loop wakes from an infinite wait, runs the
 * callback on its thread at least once and at most once per send, and
 * nothing is allocated per send (TSan runs this). */
static void test_async_send_from_many_threads_wakes_the_loop(void **state)
{
    weft_loop *loop = vloop_on(*state);
    async_ctx c = {.loop = loop};
    atomic_init(&c.sent_done, 0);
    atomic_init(&c.failures, 0);
    assert_int_equal(weft_async_init(&c.a, loop, async_on_loop, &c), 0);
    long before = alloc_calls();
    pthread_t th[ASYNC_THREADS];
    for (int i = 0; i < ASYNC_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, async_sender, &c), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    for (int i = 0; i < ASYNC_THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&c.failures), 0);
    assert_true(c.calls >= 1);
    assert_true(c.calls <= ASYNC_THREADS * (ASYNC_SENDS + 1));
    assert_int_equal(alloc_calls(), before);
    weft_async_close(&c.a);
    finish(loop);
}

/* =============================================================================
 * Iteration hook, dump request, layers
 * ========================================================================== */

static int g_hook_order[8];
static int g_hook_n;

static void iteration_hook(weft_loop *loop, void *ud)
{
    (void)loop;
    if (g_hook_n < 8)
        g_hook_order[g_hook_n++] = (int)(intptr_t)ud;
}

static void order_cb(void *tag)
{
    if (g_hook_n < 8)
        g_hook_order[g_hook_n++] = (int)(intptr_t)tag;
}

/* The hook runs at the start of every iteration, before the inbox joins
 * the ready queue; NULL removes it. */
static void test_iteration_hook_runs_first_in_every_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_hook_n = 0;
    assert_int_equal(weft_loop_set_iteration_hook(loop, iteration_hook, TAG(7)), 0);
    assert_int_equal(weft_call_soon_threadsafe(loop, order_cb, TAG(1)), 0);
    step(loop);
    step(loop);
    assert_int_equal(g_hook_n, 3);
    assert_int_equal(g_hook_order[0], 7);
    assert_int_equal(g_hook_order[1], 1);
    assert_int_equal(g_hook_order[2], 7);
    assert_int_equal(weft_loop_set_iteration_hook(loop, NULL, NULL), 0);
    step(loop);
    assert_int_equal(g_hook_n, 3);
    finish(loop);
}

/* A test layer: its dump text, and what its close does. */
typedef struct test_layer {
    weft__layer base;
    int closes;
    bool report_in_close;
} test_layer;

static void test_layer_dump(weft_loop *loop, weft__layer *self, weft__strbuf *out)
{
    (void)loop, (void)self;
    weft__strbuf_printf(out, "test layer: %d things\n", 42);
}

static int g_close_rc[2];

/* Clear the slot that holds self: what a layer's close does once it freed
 * its state. */
static void clear_own_slot(weft_loop *loop, weft__layer *self)
{
    for (int id = 0; id < WEFT__LAYERS; id++)
        if (weft__layer_get(loop, id) == self)
            weft__layer_set(loop, id, NULL);
}

static void test_layer_close(weft_loop *loop, weft__layer *self)
{
    test_layer *l = (test_layer *)(void *)self;
    l->closes++;
    if (l->report_in_close)
        weft__reportf(loop, WEFT_REPORT_RELEASED, 0, "a task released while pending");
    clear_own_slot(loop, self);
}

/* A dump request (from a signal handler, say) is answered at the next
 * iteration with one WEFT_REPORT_DUMP: the loop's summary, then every
 * layer's dump. */
static char g_dump[1024];

static void dump_hook(weft_loop *loop, const weft_report *r, void *ud)
{
    record_report(loop, r, ud);
    if (r->kind == WEFT_REPORT_DUMP)
        snprintf(g_dump, sizeof g_dump, "%s", r->message);
}

static weft_loop *g_sig_loop;

static void on_dump_signal(int sig)
{
    (void)sig;
    weft_loop_request_dump(g_sig_loop);
}

static void test_dump_request_is_answered_at_the_next_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    test_layer layer = {{test_layer_close, test_layer_dump, NULL}, 0, false};
    weft__layer_set(loop, WEFT__LAYER_TASK, &layer.base);
    assert_ptr_equal(weft__layer_get(loop, WEFT__LAYER_TASK), &layer.base);
    assert_int_equal(weft_loop_set_report_hook(loop, dump_hook, NULL), 0);
    g_dump[0] = '\0';
    g_sig_loop = loop;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_dump_signal;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR2, &sa, &old), 0);
    raise(SIGUSR2);
    sigaction(SIGUSR2, &old, NULL);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_DUMP], 0); /* not in the handler */
    step(loop);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_DUMP], 1);
    assert_non_null(strstr(g_dump, "backend"));
    assert_non_null(strstr(g_dump, "test layer: 42 things"));
    step(loop);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_DUMP], 1); /* once per request */
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(layer.closes, 1);
    assert_null(weft__layer_get(loop, WEFT__LAYER_TASK));
    assert_int_equal(weft_loop_request_dump(loop), WEFT_ECLOSED);
    finish(loop);
}

/* The dump text is built through the allocator: every allocation failure
 * gives a short "out of memory" dump, never a crash or a leak. */
static void test_dump_survives_allocation_failure(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_loop_set_report_hook(loop, dump_hook, NULL), 0);
    for (long n = 1; n < 4; n++) {
        g_dump[0] = '\0';
        assert_int_equal(weft_loop_request_dump(loop), 0);
        alloc_fail_at(alloc_calls() + n);
        step(loop);
        alloc_fail_at(0);
        assert_true(g_dump[0] != '\0');
    }
    assert_int_equal(weft_loop_request_dump(loop), 0);
    alloc_fail_all(true);
    step(loop);
    alloc_fail_all(false);
    assert_non_null(strstr(g_dump, "out of memory"));
    assert_int_equal(g_hook.err, -ENOMEM);
    finish(loop);
}

/* Close is re-entrancy safe: a report hook that calls weft_loop_destroy and
 * weft_loop_close while close reports (a layer releasing a task) gets
 * -EBUSY, and close goes on. */
static void reentrant_hook(weft_loop *loop, const weft_report *r, void *ud)
{
    (void)ud;
    record_report(loop, r, NULL);
    g_close_rc[0] = weft_loop_destroy(loop);
    g_close_rc[1] = weft_loop_close(loop);
}

static void test_close_called_from_a_report_during_close_returns_ebusy(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    test_layer layer = {{test_layer_close, NULL, NULL}, 0, true};
    weft__layer_set(loop, WEFT__LAYER_FUTURE, &layer.base);
    assert_int_equal(weft_loop_set_report_hook(loop, reentrant_hook, NULL), 0);
    g_close_rc[0] = g_close_rc[1] = 1;
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(layer.closes, 1);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_RELEASED], 1);
    assert_int_equal(g_close_rc[0], -EBUSY);
    assert_int_equal(g_close_rc[1], -EBUSY);
    assert_true(weft_loop_is_closed(loop));
    assert_int_equal(weft_loop_close(loop), 0);
    finish(loop);
}

/* Layers close highest id first. */
static int g_layer_order[WEFT__LAYERS], g_layer_n;

static void order_close(weft_loop *loop, weft__layer *self)
{
    g_layer_order[g_layer_n++] = ((test_layer *)(void *)self)->closes;
    clear_own_slot(loop, self);
}

static void test_layers_close_highest_id_first(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    test_layer l[WEFT__LAYERS];
    g_layer_n = 0;
    for (int id = 0; id < WEFT__LAYERS; id++) {
        l[id] = (test_layer){{order_close, NULL, NULL}, id, false};
        weft__layer_set(loop, id, &l[id].base);
    }
    weft__layer_set(loop, WEFT__LAYER_NET, NULL); /* cleared: not called */
    finish(loop);
    assert_int_equal(g_layer_n, WEFT__LAYERS - 1);
    assert_int_equal(g_layer_order[0], WEFT__LAYERS - 1);
    for (int i = 1; i < g_layer_n; i++) /* every one, in decreasing id order */
        assert_true(g_layer_order[i] < g_layer_order[i - 1] && g_layer_order[i] != WEFT__LAYER_NET);
    assert_int_equal(g_layer_order[g_layer_n - 1], WEFT__LAYER_FUTURE);
}

/* =============================================================================
 * The environment flag and the debug thread check
 * ========================================================================== */

/* Without WEFT_LOOP_ENV the environment is never read. */
static void test_environment_is_ignored_without_the_env_flag(void **state)
{
    (void)state;
    saved_env b = env_set("WEFT_BACKEND", "no-such-backend");
    saved_env c = env_set("WEFT_CLOCK", "virtual");
    weft_loop_options o = loop_options(NULL, 0);
    o.flags &= ~(unsigned)WEFT_LOOP_ENV;
    weft_loop *loop = NULL;
    int rc = weft_loop_new(&loop, &o);
    o.flags |= WEFT_LOOP_ENV;
    weft_loop *with_env = (weft_loop *)(void *)&o;
    int rc2 = weft_loop_new(&with_env, &o);
    env_restore(c);
    env_restore(b);
    assert_int_equal(rc, 0);
    assert_int_equal(rc2, -EINVAL); /* the flag honours the (bad) name */
    assert_ptr_equal(with_env, &o);
    assert_false(loop->virtual_clock); /* $WEFT_CLOCK was not read */
    assert_int_equal(weft_loop_destroy(loop), 0);
    assert_int_equal(alloc_live(), 0);
}

/* Unknown option flags are -EINVAL. */
static void test_loop_new_rejects_unknown_flags(void **state)
{
    (void)state;
    weft_loop_options o = loop_options(NULL, 1u << 20);
    weft_loop *loop = NULL;
    assert_int_equal(weft_loop_new(&loop, &o), -EINVAL);
    assert_null(loop);
    assert_int_equal(alloc_live(), 0);
}

typedef struct debug_ctx {
    weft_loop *loop;
    atomic_int phase; /* 1: the loop runs; 2: the other thread is done */
    int rc_soon, rc_later, rc_timer, rc_stop, rc_reader, rc_safe, rc_async;
    weft_timer t;
    weft_async a;
} debug_ctx;

static void debug_mark(void *arg)
{
    debug_ctx *c = arg;
    atomic_store(&c->phase, 1);
}

static void debug_async_cb(void *arg)
{
    debug_ctx *c = arg;
    if (atomic_load(&c->phase) == 2)
        weft_loop_stop(c->loop);
}

static void *debug_intruder(void *arg)
{
    debug_ctx *c = arg;
    int64_t guard = mono_ns() + 30 * SEC;
    while (atomic_load(&c->phase) != 1 && mono_ns() < guard)
        sleep_us(200);
    c->rc_soon = weft_call_soon(c->loop, noop, NULL, NULL);
    c->rc_later = weft_call_later(c->loop, 1.0, noop, NULL, NULL);
    c->rc_timer = weft_timer_start_ns(&c->t, SEC, 0);
    c->rc_stop = weft_loop_stop(c->loop);
    c->rc_reader = weft_add_reader(c->loop, 0, noop, NULL);
    c->rc_safe = weft_call_soon_threadsafe(c->loop, noop, NULL); /* exempt */
    atomic_store(&c->phase, 2);
    c->rc_async = weft_async_send(&c->a); /* exempt; wakes and stops the loop */
    return NULL;
}

/* WEFT_LOOP_DEBUG: a loop call from another thread while the loop runs is
 * reported (WEFT_REPORT_MISUSE, naming the call) and refused with -EPERM,
 * doing nothing; the thread-safe entry points still work. */
static void test_debug_loop_refuses_calls_from_other_threads(void **state)
{
    weft_loop *loop = loop_on(*state, WEFT_LOOP_VIRTUAL_CLOCK | WEFT_LOOP_DEBUG);
    debug_ctx c = {.loop = loop};
    atomic_init(&c.phase, 0);
    assert_int_equal(weft_timer_init(&c.t, loop, noop, NULL), 0);
    assert_int_equal(weft_async_init(&c.a, loop, debug_async_cb, &c), 0);
    assert_int_equal(weft_call_soon(loop, debug_mark, &c, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, debug_intruder, &c), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    pthread_join(th, NULL);
    assert_int_equal(c.rc_soon, -EPERM);
    assert_int_equal(c.rc_later, -EPERM);
    assert_int_equal(c.rc_timer, -EPERM);
    assert_int_equal(c.rc_stop, -EPERM);
    assert_int_equal(c.rc_reader, -EPERM);
    assert_int_equal(c.rc_safe, 0);
    assert_int_equal(c.rc_async, 0);
    assert_false(weft_timer_active(&c.t));
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_MISUSE], 5);
    assert_non_null(strstr(g_hook.msg, "called from another thread"));
    /* the loop thread itself, and any thread while the loop does not run */
    assert_int_equal(weft_call_soon(loop, noop, NULL, NULL), 0);
    step(loop);
    weft_async_close(&c.a);
    weft_timer_close(&c.t);
    finish(loop);
}

/* =============================================================================
 * The due list: growth and allocation failure
 * ========================================================================== */

enum { DUE_N = 1000 };

/* More timers due at once than the due list holds, with every allocation
 * failing: the ones that do not fit stay in the heap and fire at the next
 * iterations, still in (deadline, start) order; nothing is lost. */
static void test_due_list_that_cannot_grow_defers_timers_in_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    for (int i = 0; i < DUE_N; i++)
        assert_int_equal(weft_call_at_ns(loop, SEC + (i % 7), rec, TAG(i), NULL), 0);
    assert_int_equal(weft_call_at_ns(loop, 2 * SEC, stop_cb, NULL, NULL), 0);
    alloc_fail_all(true);
    uint64_t it = iterations(loop);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    alloc_fail_all(false);
    assert_int_equal(g_n, DUE_N);
    for (int k = 1; k < DUE_N; k++) {
        int a = g_ev[k - 1].tag, b = g_ev[k].tag;
        assert_true(a % 7 < b % 7 || (a % 7 == b % 7 && a < b));
    }
    assert_true(iterations(loop) - it >= DUE_N / 64); /* 64 per iteration */
    finish(loop);
}

/* The due list grows (doubling) when it can, and everything due fires in
 * one iteration. */
static void test_due_list_grows_for_a_burst(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    for (int i = 0; i < DUE_N; i++)
        assert_int_equal(weft_call_at_ns(loop, SEC, rec, TAG(i), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_n, DUE_N);
    for (int i = 0; i < DUE_N; i++)
        assert_int_equal(g_ev[i].tag, i);
    assert_true(loop->due.cap >= DUE_N);
    finish(loop);
}

/* =============================================================================
 * Allocation
 * ========================================================================== */

/* Everything the loop allocates goes through the allocator hook, and comes
 * back by destroy. */
static void test_loop_allocates_only_through_the_hook(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_true(alloc_calls() > 0);
    assert_true(alloc_live() > 0);
    finish(loop);
}

typedef struct churn {
    weft_timer t;
    weft_handle h;
    weft_call tok;
    long left;
} churn;

static void churn_step(void *arg)
{
    churn *c = arg;
    if (c->tok.p)
        assert_int_equal(weft_call_cancel(g_loop, c->tok), 0);
    assert_int_equal(weft_call_later(g_loop, 1.0, noop, NULL, &c->tok), 0);
    assert_int_equal(weft_timer_start_ns(&c->t, SEC, 0), 0);
    assert_int_equal(weft_handle_schedule(g_loop, &c->h), 0);
    if (--c->left == 0)
        assert_int_equal(weft_loop_stop(g_loop), 0);
    else
        assert_int_equal(weft_call_soon(g_loop, churn_step, c, NULL), 0);
}

/* DESIGN: steady state allocates nothing.  After a warm-up, 100000
 * iterations of a call_soon chain plus call_later/cancel churn, an embedded
 * timer re-armed and an embedded handle scheduled each time: 0 allocations. */
static void test_steady_state_allocates_nothing(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    churn c;
    memset(&c, 0, sizeof c);
    assert_int_equal(weft_timer_init(&c.t, loop, noop, NULL), 0);
    weft_handle_init(&c.h, noop, NULL);
    c.left = 1000;
    assert_int_equal(weft_call_soon(loop, churn_step, &c, NULL), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    long before = alloc_calls();
    uint64_t it = iterations(loop);
    c.left = 100000;
    assert_int_equal(weft_call_soon(loop, churn_step, &c, NULL), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    assert_int_equal(iterations(loop) - it, 100000);
    assert_int_equal(alloc_calls() - before, 0);
    weft_timer_close(&c.t);
    finish(loop);
}

/* Every allocation failure inside weft_loop_new -> -ENOMEM, *out untouched,
 * no block and no fd leaked. */
static void test_loop_new_survives_every_allocation_failure(void **state)
{
    const char *backend = *state;
    static char sentinel;
    /* A backend's implementation may open fds for the whole process on
     * first use (libkqueue's monitoring thread does): count the loop's own. */
    finish(vloop_on(backend));
    int fd_mark = lowest_free_fd();
    for (long n = 1;; n++) {
        assert_true(n < 10000);
        alloc_reset(); /* nothing is live here */
        alloc_fail_at(n);
        weft_loop_options o = loop_options(backend, WEFT_LOOP_VIRTUAL_CLOCK);
        weft_loop *loop = (weft_loop *)(void *)&sentinel;
        int rc = weft_loop_new(&loop, &o);
        if (rc == 0) {
            alloc_fail_at(0);
            assert_true(n > 1); /* the loop allocates at least once */
            finish(loop);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_ptr_equal(loop, &sentinel);
        assert_int_equal(alloc_live(), 0);
        assert_int_equal(lowest_free_fd(), fd_mark);
    }
    assert_int_equal(lowest_free_fd(), fd_mark);
}

/* With allocation failing: call the op until it reports -ENOMEM (free lists
 * may serve the first calls).  Returns how many succeeded first. */
typedef int alloc_op(weft_loop *loop, int i, void *tag);

static int fill_until_enomem(weft_loop *loop, alloc_op *op)
{
    alloc_fail_all(true);
    int ok = 0, rc;
    while ((rc = op(loop, ok, TAG(0))) == 0)
        assert_true(++ok < 65536);
    assert_int_equal(rc, -ENOMEM);
    assert_int_equal(op(loop, ok, TAG(1)), -ENOMEM); /* still failing */
    alloc_fail_all(false);
    return ok;
}

static int op_call_soon(weft_loop *loop, int i, void *tag)
{
    (void)i;
    static weft_call untouched = {&untouched, 77};
    weft_call c = untouched;
    int rc = weft_call_soon(loop, count_cb, tag, &c);
    if (rc)
        assert_memory_equal(&c, &untouched, sizeof c); /* *out untouched */
    return rc;
}

/* -ENOMEM from call_soon changes nothing: the callback never runs; later
 * calls succeed. */
static void test_call_soon_enomem_leaves_loop_unchanged(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int ok = fill_until_enomem(loop, op_call_soon);
    assert_int_equal(weft_call_soon(loop, count_cb, TAG(2), NULL), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_count[0], ok);
    assert_int_equal(g_count[1], 0);
    assert_int_equal(g_count[2], 1);
    finish(loop);
}

static int op_call_later(weft_loop *loop, int i, void *tag)
{
    (void)i;
    return weft_call_later(loop, 1.0, count_cb, tag, NULL);
}

/* -ENOMEM from call_later changes nothing: the callback never runs; later
 * calls succeed. */
static void test_call_later_enomem_leaves_loop_unchanged(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int ok = fill_until_enomem(loop, op_call_later);
    assert_int_equal(weft_call_later(loop, 1.0, count_cb, TAG(2), NULL), 0);
    run_until(loop, 2 * SEC);
    assert_int_equal(g_count[0], ok);
    assert_int_equal(g_count[1], 0);
    assert_int_equal(g_count[2], 1);
    finish(loop);
}

enum { MAX_TIMERS = 65536 };
static weft_timer *g_timers;

static int op_timer_init(weft_loop *loop, int i, void *tag)
{
    return weft_timer_init(&g_timers[i], loop, count_cb, tag);
}

/* -ENOMEM from weft_timer_init leaves the timer uninitialised (start ->
 * -EINVAL) and the loop unchanged; later inits succeed. */
static void test_timer_init_enomem_leaves_loop_unchanged(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    g_timers = calloc(MAX_TIMERS, sizeof *g_timers);
    assert_non_null(g_timers);
    int ok = fill_until_enomem(loop, op_timer_init);
    assert_int_equal(weft_timer_start_ns(&g_timers[ok], 0, 0), -EINVAL);
    assert_int_equal(weft_timer_init(&g_timers[ok], loop, count_cb, TAG(2)), 0);
    for (int i = 0; i <= ok; i++)
        assert_int_equal(weft_timer_start_ns(&g_timers[i], SEC, 0), 0);
    run_until(loop, 2 * SEC);
    assert_int_equal(g_count[0], ok);
    assert_int_equal(g_count[2], 1);
    for (int i = 0; i <= ok; i++)
        weft_timer_close(&g_timers[i]);
    free(g_timers);
    finish(loop);
}

static int g_reader_fd;
static int g_rfd[256]; /* fd used by the i-th op_add_reader */

/* Watch a copy of the pipe's read end at fd >= 64 * i, so that a per-fd
 * table has to grow. */
static int op_add_reader(weft_loop *loop, int i, void *tag)
{
    if (i >= 256)
        return -EMFILE;
    int fd = i == 0 ? g_reader_fd : fcntl(g_reader_fd, F_DUPFD, 64 * i);
    if (fd < 0)
        return -EMFILE;
    int rc = weft_add_reader(loop, fd, count_cb, tag);
    if (rc == 0)
        g_rfd[i] = fd;
    else if (fd != g_reader_fd)
        close(fd);
    return rc;
}

/* -ENOMEM from add_reader registers nothing: the readable fd's callback
 * never runs, remove -> -ENOENT; a later add_reader succeeds and fires. */
static void test_add_reader_enomem_leaves_loop_unchanged(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    write_byte(p[1]);
    g_reader_fd = p[0];
    int ok = fill_until_enomem(loop, op_add_reader);
    int failed_fd = ok == 0 ? p[0] : fcntl(p[0], F_DUPFD, 64 * ok);
    assert_true(failed_fd >= 0);
    step(loop); /* all readable: the ok readers fire */
    assert_int_equal(g_count[0], ok);
    assert_int_equal(g_count[1], 0);
    assert_int_equal(weft_remove_reader(loop, failed_fd), -ENOENT);
    assert_int_equal(weft_add_reader(loop, failed_fd, count_cb, TAG(2)), 0);
    step(loop);
    assert_int_equal(g_count[2], 1);
    assert_int_equal(weft_remove_reader(loop, failed_fd), 0);
    for (int i = 0; i < ok; i++) {
        assert_int_equal(weft_remove_reader(loop, g_rfd[i]), 0);
        if (g_rfd[i] != p[0])
            close(g_rfd[i]);
    }
    if (failed_fd != p[0])
        close(failed_fd);
    close_pair(p);
    finish(loop);
}

static int op_threadsafe(weft_loop *loop, int i, void *tag)
{
    (void)i;
    return weft_call_soon_threadsafe(loop, count_cb, tag);
}

/* -ENOMEM from call_soon_threadsafe: the callback never runs; later calls
 * succeed. */
static void test_call_soon_threadsafe_enomem_leaves_loop_unchanged(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    int ok = fill_until_enomem(loop, op_threadsafe);
    assert_int_equal(weft_call_soon_threadsafe(loop, count_cb, TAG(2)), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(g_count[0], ok);
    assert_int_equal(g_count[1], 0);
    assert_int_equal(g_count[2], 1);
    finish(loop);
}

/* =============================================================================
 * Registration
 * ========================================================================== */

/* clang-format off */
#define ON(f, backend) {#f "(" backend ")", f, setup, teardown, (void *)backend}
/* clang-format on */
#if WEFT__HAVE_EPOLL
#define ON_EPOLL(f) ON(f, "epoll"),
#else
#define ON_EPOLL(f)
#endif
#if WEFT__HAVE_KQUEUE
#define ON_KQUEUE(f) ON(f, "kqueue"),
#else
#define ON_KQUEUE(f)
#endif
/* On every backend this build has (the name is from when there were two). */
#define ON_BOTH(f) ON_EPOLL(f) ON_KQUEUE(f) ON(f, "poll")

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* lifecycle */
        T(test_loop_new_with_null_options_uses_defaults),
        T(test_loop_new_rejects_null_out),
        T(test_loop_new_rejects_unknown_backend),
        ON_BOTH(test_loop_new_accepts_named_backend),
        T(test_backend_env_var_selects_backend),
        T(test_clock_env_var_selects_virtual_clock),
        T(test_null_arguments_return_einval_lifecycle),
        T(test_null_arguments_return_einval_scheduling),
        T(test_timer_start_uninitialised_returns_einval),
        T(test_null_arguments_return_einval_watchers_and_hooks),
        T(test_is_running_only_inside_callbacks),
        T(test_running_loop_is_set_only_inside_callbacks),
        T(test_is_closed_after_close),
        T(test_close_twice_is_fine),
        T(test_close_from_callback_returns_ebusy),
        T(test_destroy_from_callback_returns_ebusy),
        T(test_nested_run_returns_ebusy),
        T(test_running_second_loop_in_same_thread_returns_ebusy),
        T(test_closed_loop_refuses_scheduling),
        T(test_closed_loop_refuses_to_run),
        T(test_close_drops_pending_work_without_running_it),
        T(test_destroy_releases_open_loop_with_pending_work),
        T(test_strerror_gives_distinct_texts),
        T(test_strerror_texts_are_static_for_every_errno),
        /* ordering */
        T(test_call_soon_runs_in_next_iteration),
        T(test_call_soon_runs_fifo),
        T(test_call_later_zero_runs_after_later_call_soon),
        T(test_call_later_negative_delay_fires_before_earlier_call_later_zero),
        ON_BOTH(test_iteration_runs_ready_then_io_then_timers),
        T(test_stats_count_iterations_and_callbacks),
        T(test_busy_ready_queue_without_fds_makes_no_backend_wait),
        /* stop */
        T(test_stop_lets_current_batch_finish),
        T(test_callbacks_queued_by_stopping_batch_run_in_next_run),
        T(test_stop_before_run_forever_runs_one_iteration),
        T(test_stop_before_run_forever_on_idle_loop_does_not_block),
        T(test_stop_request_is_cleared_on_return),
        T(test_run_once_runs_one_iteration),
        T(test_run_once_waits_for_the_next_timer),
        /* timers */
        T(test_equal_deadline_timers_fire_fifo),
        T(test_equal_deadline_fifo_across_embedded_and_convenience_timers),
        T(test_virtual_clock_fires_timers_exactly_at_deadline),
        ON_BOTH(test_timer_never_fires_early_on_real_clock),
        T(test_call_at_in_the_past_fires_at_next_timer_pass),
        T(test_call_cancel_prevents_timer_and_second_cancel_is_enoent),
        T(test_call_cancel_prevents_call_soon),
        T(test_call_cancel_after_it_ran_is_enoent),
        T(test_stale_call_token_does_not_cancel_newer_call),
        T(test_cancel_expired_timer_from_earlier_callback_in_batch),
        T(test_cancel_queued_call_from_earlier_callback_in_batch),
        T(test_timer_fires_once_at_deadline),
        T(test_timer_start_at_uses_absolute_deadline),
        T(test_timer_negative_delay_fires_at_next_pass),
        T(test_timer_restart_moves_deadline_earlier),
        T(test_timer_restart_moves_deadline_later),
        T(test_repeating_timer_fires_every_period),
        T(test_repeating_timer_is_rearmed_before_its_callback),
        T(test_timer_stop_in_own_callback_stops_repetition),
        T(test_repeating_timer_that_fell_behind_rearms_from_now),
        T(test_timer_restarted_from_own_callback_fires_again),
        T(test_timer_active_only_between_start_and_fire_or_stop),
        T(test_timer_stop_inactive_returns_enoent),
        T(test_timer_start_negative_repeat_returns_einval),
        T(test_timer_stop_unqueues_expired_timer),
        T(test_timer_close_disarms_and_is_idempotent),
        T(test_timer_heap_stress_fires_in_deadline_then_start_order),
        T(test_embedded_timer_heap_stress_with_restarts_and_stops),
        T(test_timer_buckets_keep_deadlines_and_start_order),
        T(test_repeating_timers_sharing_a_deadline_keep_start_order),
        T(test_loop_close_idles_every_timer_of_a_bucket),
        /* embedded handles */
        T(test_handle_schedule_runs_it_once_next_batch),
        T(test_handle_scheduled_twice_keeps_one_entry),
        T(test_handle_cancel_returns_0_then_enoent),
        T(test_handle_cancel_from_earlier_callback_in_batch),
        T(test_handle_rescheduled_from_own_callback_runs_next_iteration),
        /* virtual clock */
        T(test_virtual_clock_starts_at_zero),
        T(test_virtual_clock_jumps_to_an_hour_long_timer),
        T(test_virtual_clock_moves_only_by_jumps_to_deadlines),
        T(test_loop_time_is_now_in_seconds),
        /* fd watchers */
        ON_BOTH(test_reader_fires_every_iteration_while_readable),
        ON_BOTH(test_reader_stops_when_drained_and_fires_on_new_data),
        ON_BOTH(test_reader_fires_at_eof),
        ON_BOTH(test_writer_fires_while_writable),
        ON_BOTH(test_second_add_reader_replaces_first),
        ON_BOTH(test_remove_reader_returns_0_then_enoent),
        ON_BOTH(test_reader_runs_before_writer_for_same_fd),
        ON_BOTH(test_remove_reader_keeps_writer_of_same_fd),
        ON_BOTH(test_remove_writer_keeps_reader_of_same_fd),
        ON_BOTH(test_reader_removed_by_earlier_callback_in_batch_is_not_called),
        ON_BOTH(test_ready_readers_removing_each_other_run_exactly_once),
        ON_BOTH(test_many_ready_readers_fire_in_one_iteration),
        ON_BOTH(test_add_watcher_bad_fd_returns_ebadf),
        ON_BOTH(test_fd_closed_while_watched_neither_errors_nor_spins),
        ON_BOTH(test_reused_fd_number_can_be_watched_after_remove),
        ON_BOTH(test_add_reader_on_reused_fd_number_replaces_stale_watcher),
#ifdef __linux__
        T(test_add_reader_regular_file_with_epoll_returns_eperm),
#endif
        ON_BOTH(test_interrupted_wait_is_counted_and_retried),
        /* fd-table and registration defects */
        ON_BOTH(test_add_reader_fd_int_max_is_refused_before_the_table_grows),
        ON_BOTH(test_bad_fd_near_2_pow_26_grows_nothing),
        ON_BOTH(test_fd_closed_behind_a_dup_neither_spins_nor_calls_the_removed_reader),
        T(test_poll_parks_the_slot_of_a_closed_fd),
        /* weft_io */
        ON_BOTH(test_io_init_refuses_bad_arguments_and_fds),
#ifdef __linux__
        T(test_io_init_regular_file_with_epoll_returns_eperm),
#endif
        ON_BOTH(test_io_init_on_a_watched_fd_returns_eexist),
        ON_BOTH(test_io_start_and_stop_change_only_the_interest),
        ON_BOTH(test_io_callback_gets_the_events_once_per_iteration),
        ON_BOTH(test_io_hangup_is_reported_readable),
        ON_BOTH(test_io_without_interest_on_a_hung_up_fd_does_not_spin),
        ON_BOTH(test_io_stop_drops_events_already_gathered),
        ON_BOTH(test_io_callback_may_close_and_free_its_watcher),
        ON_BOTH(test_io_change_refused_at_the_next_wait_is_reported_as_error),
        ON_BOTH(test_io_watcher_outlives_loop_close),
        ON_BOTH(test_io_init_survives_every_allocation_failure),
        /* other threads */
        ON_BOTH(test_call_soon_threadsafe_wakes_blocked_loop),
        T(test_call_soon_threadsafe_from_many_threads_arrives_once_in_order),
        T(test_call_soon_threadsafe_from_loop_thread_runs_next_iteration),
        T(test_loops_in_separate_threads_run_independently),
        /* lag and hooks */
        T(test_slow_callback_is_reported_once),
        T(test_slow_callback_message_names_the_callback),
        T(test_fast_callbacks_are_not_reported),
        ON_BOTH(test_fast_callbacks_with_watched_fd_are_not_reported),
        ON_BOTH(test_time_between_runs_is_not_lag),
        T(test_negative_lag_threshold_disables_reports_and_the_thread),
        T(test_lag_threshold_option_is_honoured),
        T(test_watchdog_starts_at_first_run_and_is_joined_at_close),
        ON_BOTH(test_watchdog_sleeps_while_the_loop_is_blocked),
        T(test_slow_task_step_is_described_by_its_describe_function),
        T(test_lag_capture_lets_a_step_free_its_object),
        T(test_slow_unrecorded_node_is_not_blamed_on_the_previous_callback),
        T(test_slow_timer_callback_is_reported),
        T(test_forked_child_starts_its_own_watchdog),
        T(test_watchdog_thread_failure_is_reported_once_and_the_loop_runs),
        T(test_default_report_hook_reports_to_stderr),
        T(test_set_report_hook_accepts_custom_and_null),
        /* timers: defects and new API */
        T(test_repeating_timer_past_int64_max_fires_once_more_then_stops),
        T(test_repeating_timer_behind_near_int64_max_is_disarmed),
        T(test_timer_when_reports_armed_and_due_deadlines),
        T(test_timer_start_in_seconds),
        T(test_seconds_saturate_and_nan_is_einval),
        /* call tokens */
        T(test_call_cancel_with_a_token_of_another_loop_returns_einval),
        T(test_call_pending_and_cancelled_follow_the_call),
        T(test_call_cancelled_survives_reuse_of_the_node),
        /* weft_async */
        ON_BOTH(test_async_sends_coalesce_until_the_callback_starts),
        T(test_async_send_from_its_callback_runs_it_again_next_iteration),
        T(test_async_close_forgets_a_pending_send),
        ON_BOTH(test_async_send_from_many_threads_wakes_the_loop),
        /* hooks, dumps, layers, close */
        T(test_iteration_hook_runs_first_in_every_iteration),
        T(test_dump_request_is_answered_at_the_next_iteration),
        T(test_dump_survives_allocation_failure),
        T(test_close_called_from_a_report_during_close_returns_ebusy),
        T(test_layers_close_highest_id_first),
        /* environment and debug */
        T(test_environment_is_ignored_without_the_env_flag),
        T(test_loop_new_rejects_unknown_flags),
        ON_BOTH(test_debug_loop_refuses_calls_from_other_threads),
        /* the due list */
        T(test_due_list_that_cannot_grow_defers_timers_in_order),
        T(test_due_list_grows_for_a_burst),
        /* allocation */
        T(test_loop_allocates_only_through_the_hook),
        T(test_steady_state_allocates_nothing),
        T(test_call_soon_enomem_leaves_loop_unchanged),
        T(test_call_later_enomem_leaves_loop_unchanged),
        T(test_timer_init_enomem_leaves_loop_unchanged),
        ON_BOTH(test_add_reader_enomem_leaves_loop_unchanged),
        T(test_call_soon_threadsafe_enomem_leaves_loop_unchanged),
        /* last: before the fix it aborts in free(), which ends the run */
        ON_BOTH(test_loop_new_survives_every_allocation_failure),
    };
    return RUN_TESTS(tests);
}
