/* tests/weft_test.h - the infrastructure shared by the cmocka tests.
 *
 * Header only: every tests/test_*.c includes it first (it brings the
 * system headers, cmocka and <weft.h>) instead of carrying a private copy.
 * Everything here is static, and the functions are inline, so each test
 * binary gets its own copy and a helper a file does not use costs nothing
 * and draws no warning.  CMake builds only tests/test_*.c into
 * executables; nothing globs this header into a target.
 *
 * What it holds:
 *   - a counting allocator with failure injection, installed in every loop
 *     the helpers create (alloc_*);
 *   - a report-hook recorder (g_hook) installed in the same loops;
 *   - loop constructors on the virtual clock (vloop, new_vloop, loop_on)
 *     and "the loop under test" (g_loop) that callbacks may use;
 *   - finish(), which destroys a loop and asserts that every block came
 *     back (plus the per-file checks chosen by the file's wt_policy);
 *   - run helpers (step, run, run_task, drain), an event log (note, rec, EXPECT_TAGS), a tag log
 *     (log_tag, EXPECT_LOG), small callbacks;
 *   - fixtures: wt_setup() for a file's setup, teardown, T(f), and
 *     RUN_TESTS(), which honours WEFT_TEST_FILTER / WEFT_TEST_SKIP.
 *
 * Per-file choices.  Each file describes what its finish() and its hook
 * do in one wt_policy, passed to wt_setup() from its setup():
 *
 *     static int setup(void **state)
 *     {
 *         (void)state;
 *         wt_setup((wt_policy){.watchdog_s = 60, .check_reports = true});
 *         ...reset the file's own recorders...
 *         return 0;
 *     }
 *
 * Asserts.  The helpers assert with cmocka (a failure names the line in
 * this header).  Files whose coroutine bodies must not assert (a longjmp
 * out of a running loop leaves it running) call them from the test
 * function only; log_tag and record_report never assert, note and rec only
 * on an overflowing log or a missing g_loop.
 *
 * Environment: WEFT_TEST_FILTER / WEFT_TEST_SKIP (cmocka globs on test
 * names) select tests; WEFT_TEST_VERBOSE prints every report.
 */
#ifndef WEFT_TEST_H
#define WEFT_TEST_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fnmatch.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <weft.h>

#define TAG(x) ((void *)(intptr_t)(x))

/* weft recycles futures and tasks through per-loop pools, except in
 * sanitizer and assertion builds, where every block goes back to the
 * allocator so that use-after-free is caught: steady-state allocation
 * counts hold only when pooling is on. */
#if defined(__SANITIZE_ADDRESS__) || (defined(WEFT_ASSERTIONS) && WEFT_ASSERTIONS)
#define WT_POOLED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WT_POOLED 0
#else
#define WT_POOLED 1
#endif
#else
#define WT_POOLED 1
#endif
#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)

/* ---- per-file policy ------------------------------------------------------------ */

/* What finish() checks besides "every block came back", and how the report
 * hook behaves, for one test file.  Zero is the plain default. */
typedef struct wt_policy {
    unsigned watchdog_s; /* alarm() armed for each test (0: 120 s) */
    bool check_reports;  /* finish(): the hook reported exactly g_hook.expect */
    bool drain;          /* finish(): first run until the loop has no task */
    bool echo_reports;   /* print every report to stderr */
} wt_policy;

static wt_policy g_policy;

/* ---- counting allocator with failure injection ------------------------------------ */

/* Counts allocation calls (size > 0, failed ones included) and live blocks;
 * fails the call numbered fail_at, or every call while fail_all is set.
 * Locked: call_soon_threadsafe may allocate from other threads. */
typedef struct wt_alloc {
    pthread_mutex_t mu;
    long calls;
    long live;
    long fail_at; /* 0: none */
    bool fail_all;
} wt_alloc;

static wt_alloc g_alloc = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, false};

typedef union wt_block_hdr {
    size_t size;
    max_align_t align;
} wt_block_hdr;

/* The weft_alloc.realloc of every loop made here; ud is the wt_alloc (the
 * loop must pass it through). */
static inline void *count_realloc(void *ud, void *p, size_t n)
{
    wt_alloc *a = ud;
    wt_block_hdr *h = p ? (wt_block_hdr *)p - 1 : NULL;
    if (n == 0) {
        if (h) {
            pthread_mutex_lock(&a->mu);
            a->live--;
            pthread_mutex_unlock(&a->mu);
            free(h);
        }
        return NULL;
    }
    pthread_mutex_lock(&a->mu);
    a->calls++;
    bool fail = a->fail_all || a->calls == a->fail_at;
    pthread_mutex_unlock(&a->mu);
    if (fail)
        return NULL;
    wt_block_hdr *nh = realloc(h, sizeof *nh + n);
    if (!nh)
        return NULL;
    if (!h) {
        pthread_mutex_lock(&a->mu);
        a->live++;
        pthread_mutex_unlock(&a->mu);
    }
    nh->size = n;
    return nh + 1;
}

/* Allocation calls so far (since the last alloc_reset). */
static inline long alloc_calls(void)
{
    pthread_mutex_lock(&g_alloc.mu);
    long n = g_alloc.calls;
    pthread_mutex_unlock(&g_alloc.mu);
    return n;
}

/* Blocks currently allocated. */
static inline long alloc_live(void)
{
    pthread_mutex_lock(&g_alloc.mu);
    long n = g_alloc.live;
    pthread_mutex_unlock(&g_alloc.mu);
    return n;
}

/* Fail every allocation while on. */
static inline void alloc_fail_all(bool on)
{
    pthread_mutex_lock(&g_alloc.mu);
    g_alloc.fail_all = on;
    pthread_mutex_unlock(&g_alloc.mu);
}

/* Fail the allocation call numbered n (alloc_calls() counts them; so
 * alloc_calls() + 1 is the next one); 0 turns it off. */
static inline void alloc_fail_at(long n)
{
    pthread_mutex_lock(&g_alloc.mu);
    g_alloc.fail_at = n;
    pthread_mutex_unlock(&g_alloc.mu);
}

/* Zero every counter and turn failure injection off. */
static inline void alloc_reset(void)
{
    pthread_mutex_lock(&g_alloc.mu);
    g_alloc.calls = g_alloc.live = g_alloc.fail_at = 0;
    g_alloc.fail_all = false;
    pthread_mutex_unlock(&g_alloc.mu);
}

/* ---- report hook recorder ---------------------------------------------------------- */

/* What the loops' report hook saw.  A test expecting reports sets
 * g_hook.expect (checked by finish() where the policy says so). */
static struct wt_hook {
    int count;     /* reports so far */
    int expect;    /* reports finish() expects (policy check_reports) */
    int err;       /* error of the last report */
    int kind;      /* weft_report_kind of the last report */
    int by_kind[WEFT_REPORT_OTHER + 1]; /* reports so far, per kind */
    char msg[512]; /* message of the last report */
} g_hook;

/* The report hook of every loop made here.  May run inside loop callbacks:
 * it does not assert. */
static inline void record_report(weft_loop *loop, const weft_report *r, void *ud)
{
    (void)loop, (void)ud;
    g_hook.count++;
    g_hook.err = r->err;
    g_hook.kind = (int)r->kind;
    if (r->kind >= WEFT_REPORT_UNOBSERVED && r->kind <= WEFT_REPORT_OTHER)
        g_hook.by_kind[r->kind]++;
    snprintf(g_hook.msg, sizeof g_hook.msg, "%s", r->message);
    if (g_policy.echo_reports || getenv("WEFT_TEST_VERBOSE"))
        fprintf(stderr, "report (kind %d, %d): %s\n", (int)r->kind, r->err, r->message);
}

/* ---- loops ---------------------------------------------------------------------------- */

/* The loop under test: set by loop_on / vloop_on / vloop, cleared by
 * finish(); callbacks may use it.  A test that destroys it by hand sets it
 * to NULL (teardown destroys a loop left here by a failed test). */
static weft_loop *g_loop;

/* Options with the counting allocator on the given backend (NULL: the
 * default, or $WEFT_BACKEND) and flags, plus WEFT_LOOP_ENV: the test
 * loops honour $WEFT_BACKEND and $WEFT_CLOCK. */
static inline weft_loop_options loop_options(const char *backend, unsigned flags)
{
    weft_loop_options o;
    memset(&o, 0, sizeof o);
    o.alloc.realloc = count_realloc;
    o.alloc.ud = &g_alloc;
    o.backend = backend;
    o.flags = flags | WEFT_LOOP_ENV;
    return o;
}

/* A loop on the counting allocator reporting into g_hook; not g_loop. */
static inline weft_loop *new_loop(const char *backend, unsigned flags)
{
    weft_loop_options o = loop_options(backend, flags);
    weft_loop *loop = NULL;
    assert_int_equal(weft_loop_new(&loop, &o), 0);
    assert_non_null(loop);
    assert_int_equal(weft_loop_set_report_hook(loop, record_report, NULL), 0);
    return loop;
}

/* A second virtual-clock loop (not g_loop). */
static inline weft_loop *new_vloop(void)
{
    return new_loop(NULL, WEFT_LOOP_VIRTUAL_CLOCK);
}

/* new_loop(), made the loop under test (g_loop). */
static inline weft_loop *loop_on(const char *backend, unsigned flags)
{
    g_loop = new_loop(backend, flags);
    return g_loop;
}

/* The loop under test on the virtual clock (WEFT_LOOP_VIRTUAL_CLOCK): time
 * starts at 0, never moves while callbacks run and jumps to the next
 * deadline when the loop would block.  backend NULL: the default. */
static inline weft_loop *vloop_on(const char *backend)
{
    return loop_on(backend, WEFT_LOOP_VIRTUAL_CLOCK);
}

static inline weft_loop *vloop(void)
{
    return vloop_on(NULL);
}

static inline weft_loop_stats stats(weft_loop *loop)
{
    weft_loop_stats s;
    assert_int_equal(weft_loop_get_stats(loop, &s), 0);
    return s;
}

/* Completed loop iterations. */
static inline uint64_t iterations(weft_loop *loop)
{
    return stats(loop).iterations;
}

/* ---- running ---------------------------------------------------------------------- */

/* One iteration that never blocks, even on an idle loop where a plain
 * run_once would wait forever (stop first: poll timeout 0, S-LOOP-2). */
static inline void step(weft_loop *loop)
{
    assert_int_equal(weft_loop_stop(loop), 0);
    assert_int_equal(weft_loop_run_once(loop), 0);
}

/* Run until t is done (run_until_complete); returns its error (0 = value).
 * The caller keeps its reference. */
static inline int run(weft_loop *loop, weft_task *t)
{
    assert_non_null(t);
    return weft_loop_run_until_complete(loop, t);
}

/* run(), then drop the caller's reference to t. */
static inline int run_task(weft_loop *loop, weft_task *t)
{
    int rc = run(loop, t);
    weft_future_unref(t);
    return rc;
}

/* Run until the loop has no task left (the virtual clock jumps), then one
 * more iteration for the callbacks queued by the last completions. */
static inline void drain(weft_loop *loop)
{
    while (weft_all_tasks(loop, NULL, 0) > 0)
        assert_int_equal(weft_loop_run_once(loop), 0);
    step(loop);
}

/* The integer value of a task that completed with one. */
static inline int64_t result_i(weft_task *t)
{
    weft_value v = {0};
    assert_int_equal(weft_future_result(t, &v), 0);
    return v.i;
}

/* ---- finish ------------------------------------------------------------------------- */

/* End of a test: (policy drain: let every task finish,) destroy the loop,
 * assert that every block came back (and, policy check_reports, that the
 * hook reported exactly g_hook.expect times).  Clears g_loop. */
static inline void finish(weft_loop *loop)
{
    if (g_policy.drain)
        drain(loop);
    int rc = weft_loop_destroy(loop);
    g_loop = NULL;
    assert_int_equal(rc, 0);
    assert_int_equal(alloc_live(), 0);
    if (g_policy.check_reports)
        assert_int_equal(g_hook.count, g_hook.expect);
}

/* ---- warming a loop up ------------------------------------------------------------------- */

/* The first use of futures and of tasks on a loop makes their per-loop
 * state (one allocation each, kept until the loop is destroyed): a test
 * that counts allocations warms the loop up first. */
struct wt_nop {
    WEFT_FRAME(int);
};

WEFT_ASYNC(wt_nop)
{
    WEFT_BEGIN(self);
    WEFT_END;
}

static inline void wt_warm(weft_loop *loop)
{
    weft_task *t = WEFT_SPAWN(loop, wt_nop);
    assert_non_null(t);
    assert_int_equal(weft_loop_run_until_complete(loop, t), 0);
    weft_future_unref(t);
}

/* ---- event log ------------------------------------------------------------------------ */

/* What a recorder saw: a tag, an error, the loop time and the number of
 * completed iterations of g_loop (so "not inline", "same iteration" and
 * "next iteration" are provable). */
typedef struct event {
    int tag;
    int err;
    int64_t now;
    uint64_t iter;
} event;

enum { MAX_EVENTS = 16384 };
static event g_ev[MAX_EVENTS];
static int g_n;

/* Record (tag, err) at g_loop's current time and iteration. */
static inline void note(int tag, int err)
{
    assert_true(g_n < MAX_EVENTS);
    g_ev[g_n] =
        (event){.tag = tag, .err = err, .now = weft_loop_now(g_loop), .iter = iterations(g_loop)};
    g_n++;
}

/* A callback that records its argument as a tag: rec(TAG(n)). */
static inline void rec(void *tag)
{
    note((int)(intptr_t)tag, 0);
}

/* Check the recorded tags; on mismatch report both sequences at the
 * caller's line. */
static inline void expect_tags(const int *want, int n, const char *file, int line)
{
    bool same = g_n == n;
    for (int i = 0; same && i < n; i++)
        same = g_ev[i].tag == want[i];
    if (same)
        return;
    char msg[512];
    int k = snprintf(msg, sizeof msg, "tags: expected [");
    for (int i = 0; i < n && k < 200; i++)
        k += snprintf(msg + k, sizeof msg - (size_t)k, " %d", want[i]);
    k += snprintf(msg + k, sizeof msg - (size_t)k, " ], got [");
    for (int i = 0; i < g_n && k < 450; i++)
        k += snprintf(msg + k, sizeof msg - (size_t)k, " %d", g_ev[i].tag);
    snprintf(msg + k, sizeof msg - (size_t)k, " ]");
    _assert_true(0, msg, file, line);
}
#define EXPECT_TAGS(...)                    \
    expect_tags((const int[]){__VA_ARGS__}, \
                (int)(sizeof((const int[]){__VA_ARGS__}) / sizeof(int)), __FILE__, __LINE__)

/* ---- tag log ---------------------------------------------------------------------------- */

/* A plain list of ints in the order things happened (bodies may append:
 * no assert). */
enum { MAX_LOG = 256 };
static int g_log[MAX_LOG];
static int g_nlog;

static inline void log_tag(int tag)
{
    if (g_nlog < MAX_LOG)
        g_log[g_nlog++] = tag;
}

/* Assert the tag log; on a length mismatch print what it holds. */
#define EXPECT_LOG(...)                                         \
    do {                                                        \
        int want_[] = {__VA_ARGS__};                            \
        int n_ = (int)(sizeof want_ / sizeof *want_);           \
        if (g_nlog != n_) {                                     \
            for (int i_ = 0; i_ < g_nlog; i_++)                 \
                print_message("log[%d] = %d\n", i_, g_log[i_]); \
        }                                                       \
        assert_int_equal(g_nlog, n_);                           \
        for (int i_ = 0; i_ < n_; i_++)                         \
            assert_int_equal(g_log[i_], want_[i_]);             \
    } while (0)

/* ---- small callbacks ---------------------------------------------------------------------- */

/* Stop g_loop. */
static inline void stop_cb(void *arg)
{
    (void)arg;
    assert_int_equal(weft_loop_stop(g_loop), 0);
}

/* Complete future f with 42, dropping the reference it was given. */
static inline void set_int_cb(void *f)
{
    assert_int_equal(weft_future_set_int(f, 42), 0);
    weft_future_unref(f);
}

/* Store the source line of a suspension (or throw) macro in var, then run
 * it: both expand on the same line, so var is the line the frame records.
 * (A macro rather than two statements on one line, which a formatter
 * would split.) */
#define AT_LINE(var, stmt) \
    do {                   \
        (var) = __LINE__;  \
        stmt;              \
    } while (0)

/* ---- fixtures ------------------------------------------------------------------------------ */

/* The shared part of every file's setup(): adopt the file's policy, reset
 * the allocator, the hook, g_loop and the logs, arm the watchdog (a hung
 * test kills the run instead of blocking CI). */
static inline void wt_setup(wt_policy policy)
{
    g_policy = policy;
    alloc_reset();
    memset(&g_hook, 0, sizeof g_hook);
    g_loop = NULL;
    g_n = 0;
    g_nlog = 0;
    alarm(policy.watchdog_s ? policy.watchdog_s : 120);
}

/* Every file's teardown: disarm the watchdog; destroy a loop a failed
 * test left behind (unless it is still running). */
static inline int teardown(void **state)
{
    (void)state;
    alarm(0);
    if (g_loop && !weft_loop_is_running(g_loop))
        weft_loop_destroy(g_loop);
    g_loop = NULL;
    return 0;
}

/* A test with the file's setup() and the shared teardown. */
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* LeakSanitizer's check, for a forked test child that ends with _exit
 * (which skips the check LSan makes at exit): nonzero if it found leaks
 * (and printed them).  0 without ASan. */
#if defined(__SANITIZE_ADDRESS__)
#define WT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WT_ASAN 1
#endif
#endif
#ifdef WT_ASAN
#include <sanitizer/lsan_interface.h>
static inline int wt_leak_check(void)
{
    return __lsan_do_recoverable_leak_check();
}
#else
static inline int wt_leak_check(void)
{
    return 0;
}
#endif

/* Run a group with every test in a process of its own (fork), so that a
 * failure cannot cascade: a cmocka assertion that fails inside a loop
 * callback leaves that loop marked running, and in-process every later
 * test would fail with -EBUSY.  Each child runs a one-test cmocka group
 * (setup, test, teardown) and exits with its status; the parent counts
 * the failures.  WEFT_TEST_FILTER / WEFT_TEST_SKIP (globs, fnmatch) select
 * tests; WEFT_TEST_NOFORK=1 runs them all in-process (for a debugger). */
static inline int wt_run_tests(const struct CMUnitTest *tests, size_t n, const char *group)
{
    const char *filter = getenv("WEFT_TEST_FILTER"), *skip = getenv("WEFT_TEST_SKIP");
    if (getenv("WEFT_TEST_NOFORK")) {
        if (filter)
            cmocka_set_test_filter(filter);
        if (skip)
            cmocka_set_skip_filter(skip);
        return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    }
    int failed = 0, ran = 0;
    for (size_t i = 0; i < n; i++) {
        if ((filter && fnmatch(filter, tests[i].name, 0) != 0) ||
            (skip && fnmatch(skip, tests[i].name, 0) == 0))
            continue;
        fflush(stdout);
        fflush(stderr);
        ran++;
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            int failed = _cmocka_run_group_tests(tests[i].name, &tests[i], 1, NULL, NULL);
            /* _exit skips LeakSanitizer's exit-time check: run it here, so
             * that a leak fails the test that leaked */
            if (wt_leak_check())
                failed = 1;
            _exit(failed ? 1 : 0);
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed++;
            if (WIFSIGNALED(status))
                fprintf(stderr, "[  CRASHED ] %s (signal %d)\n", tests[i].name, WTERMSIG(status));
            fprintf(stderr, "[  FAILED  ] %s\n", tests[i].name);
        }
    }
    printf("[==========] %s: %d test(s) run in their own processes, %d failed.\n", group, ran,
           failed);
    return failed;
}

/* main()'s return: run the group `tests` (an array of CMUnitTest). */
#define RUN_TESTS(tests) wt_run_tests((tests), sizeof(tests) / sizeof((tests)[0]), __FILE__)

#endif
