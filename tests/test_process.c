/* test_process.c - subprocesses: spawn and its errors, exit codes and
 * signals, wait futures, reaping (pidfd and SIGCHLD), stdio settings,
 * communicate, loop close, allocation failures.
 *
 * Each test runs in a process of its own (weft_test.h forks), so the
 * children it spawns are its only children: finish_reaped() checks that
 * none is left, not even a zombie (waitpid(-1, WNOHANG) fails with
 * ECHILD).  Tests wait for events (a child's exit, EOF on a pipe), never
 * for time.  Most run on both fd backends and with both reapers; the
 * cmocka state names them ("epoll/pidfd", ...), and the SIGCHLD reaper is
 * chosen through $WEFT_PROCESS_REAPER, which the test loops honour
 * (WEFT_LOOP_ENV).
 */
#define _DEFAULT_SOURCE 1 /* realpath */
#include "weft_test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>

#include "process_internal.h"

typedef struct cfg {
    const char *backend;
    const char *reaper;
} cfg;

static const cfg *g_cfg;
static char g_dir[64]; /* a scratch directory of the test, or "" */

static int setup(void **state)
{
    g_cfg = *state;
    wt_setup((wt_policy){.watchdog_s = 60, .check_reports = true});
    if (g_cfg && g_cfg->reaper)
        setenv("WEFT_PROCESS_REAPER", g_cfg->reaper, 1);
    g_dir[0] = 0;
    return 0;
}

/* The loop under test on the test's backend (real clock). */
static weft_loop *ploop(void)
{
    return loop_on(g_cfg ? g_cfg->backend : NULL, 0);
}

/* No child of this test process is left, zombie or running. */
static void assert_no_children(void)
{
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* True while pid is a child of ours not yet reaped (running or a zombie);
 * WNOWAIT: asking does not reap it. */
static bool unreaped(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
        assert_int_equal(errno, ECHILD);
        return false;
    }
    return true;
}

static void finish_reaped(weft_loop *loop)
{
    finish(loop);
    assert_no_children();
    if (g_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        assert_int_equal(system(cmd), 0);
    }
}

static const char *make_dir(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/weft-process-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return g_dir;
}

/* Spawn sh -c script with o (may be NULL); asserts success. */
static weft_process *sh(weft_loop *loop, const char *script, const weft_process_opts *o)
{
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    weft_process *p = NULL;
    int rc = weft_process_spawn(loop, argv, o, &p);
    if (rc)
        print_message("spawn: %s\n", weft_strerror(rc));
    assert_int_equal(rc, 0);
    assert_non_null(p);
    assert_true(weft_process_pid(p) > 0);
    return p;
}

/* Run until p exits; its returncode. */
static int wait_rc(weft_loop *loop, weft_process *p)
{
    weft_future *f = weft_process_wait(p);
    assert_non_null(f);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_value v = {0};
    assert_int_equal(weft_future_result(f, &v), 0);
    weft_future_unref(f);
    int rc = -1000;
    assert_int_equal(weft_process_returncode(p, &rc), 0);
    assert_int_equal(rc, (int)v.i);
    return rc;
}

/* Whether this system has pidfd_open (valgrind 3.19 does not emulate it:
 * weft then falls back to SIGCHLD, as on an old kernel). */
static bool have_pidfd(void)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (fd >= 0) {
        close(fd);
        return true;
    }
#endif
    return false;
}

static void assert_reaper(const weft_process *p)
{
    if (g_cfg && g_cfg->reaper)
        assert_string_equal(weft_process_reaper(p), have_pidfd() ? g_cfg->reaper : "sigchld");
}

/* Under valgrind, glibc's posix_spawn cannot report the exec's failure
 * (valgrind runs its CLONE_VFORK child as a fork): the spawn succeeds and
 * the child exits with a failure code, as on a libc without the report. */
static bool under_valgrind(void)
{
    const char *pre = getenv("LD_PRELOAD");
    return pre && strstr(pre, "vgpreload");
}

/* spawn(argv, o) fails with err before anything runs.  Not under
 * valgrind: there the failure cannot be seen (the spawn succeeds and the
 * child exits non-zero), and the child valgrind forks for it exits with a
 * copy of the parent's heap, which memcheck reports as lost; every other
 * build checks it. */
static void expect_exec_failure(weft_loop *loop, char *const argv[], const weft_process_opts *o,
                                int err)
{
    if (under_valgrind()) {
        print_message("exec failure not observable under valgrind: not checked\n");
        return;
    }
    weft_process *p = NULL;
    int rc = weft_process_spawn(loop, argv, o, &p);
    assert_int_equal(rc, err);
    assert_null(p);
}

/* A pipe whose ends are close-on-exec (the child gets only the copy weft
 * makes of the end it is given). */
static void cloexec_pipe(int fds[2])
{
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(fcntl(fds[0], F_SETFD, FD_CLOEXEC), 0);
    assert_int_equal(fcntl(fds[1], F_SETFD, FD_CLOEXEC), 0);
}

/* The whole content of a file. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    size_t k;
    while ((k = fread(buf + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[len] = 0;
    if (n)
        *n = len;
    return buf;
}

/* =============================================================================
 * Exit status and signals
 * ========================================================================== */

/* The returncode is the exit code, and the wait future's value is the same. */
static void test_exit_code_is_the_returncode(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process *p = sh(loop, "exit 3", NULL);
    assert_reaper(p);
    assert_int_equal(wait_rc(loop, p), 3);
    weft_process *q = sh(loop, "exit 0", NULL);
    assert_int_equal(wait_rc(loop, q), 0);
    weft_process_free(p);
    weft_process_free(q);
    finish_reaped(loop);
}

/* terminate and kill: the returncode is -SIGTERM / -SIGKILL. */
static void test_killed_child_reports_minus_signo(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    /* exec: the signal reaches sleep itself, not a shell that waits for it */
    weft_process *p = sh(loop, "exec sleep 30", NULL);
    weft_process *q = sh(loop, "exec sleep 30", NULL);
    assert_int_equal(weft_process_returncode(p, NULL), WEFT_ESTATE); /* running */
    assert_int_equal(weft_process_send_signal(p, 0), 0);
    assert_int_equal(weft_process_send_signal(p, 1000), -EINVAL); /* no such signal */
    assert_int_equal(weft_process_terminate(p), 0);
    assert_int_equal(weft_process_kill(q), 0);
    assert_int_equal(wait_rc(loop, p), -SIGTERM);
    assert_int_equal(wait_rc(loop, q), -SIGKILL);
    weft_process_free(p);
    weft_process_free(q);
    finish_reaped(loop);
}

/* After the child was reaped, signals are refused with -ESRCH (the pid may
 * belong to someone else by then). */
static void test_signal_after_reap_is_esrch(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process *p = sh(loop, "exit 1", NULL);
    assert_int_equal(wait_rc(loop, p), 1);
    assert_int_equal(weft_process_send_signal(p, SIGTERM), -ESRCH);
    assert_int_equal(weft_process_terminate(p), -ESRCH);
    assert_int_equal(weft_process_kill(p), -ESRCH);
    assert_int_equal(weft_process_send_signal(p, -1), -EINVAL);
    assert_int_equal(weft_process_send_signal(NULL, SIGTERM), -EINVAL);
    weft_process_free(p);
    finish_reaped(loop);
}

/* A wait made after the child was reaped is done at once. */
static void test_wait_after_reap_is_done_at_once(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process *p = sh(loop, "exit 7", NULL);
    assert_int_equal(wait_rc(loop, p), 7);
    weft_future *f = weft_process_wait(p);
    assert_non_null(f);
    assert_true(weft_future_done(f));
    weft_value v = {0};
    assert_int_equal(weft_future_result(f, &v), 0);
    assert_int_equal(v.i, 7);
    weft_future_unref(f);
    weft_process_free(p);
    finish_reaped(loop);
}

/* Cancelling one wait leaves the others: they complete when the child
 * exits. */
static void test_cancelling_a_wait_removes_only_that_waiter(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process *p = sh(loop, "exec sleep 30", NULL);
    weft_future *a = weft_process_wait(p);
    weft_future *b = weft_process_wait(p);
    weft_future *c = weft_process_wait(p);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_int_equal(weft_future_cancel(b), 0);
    assert_true(weft_future_cancelled(b));
    assert_false(weft_future_done(a));
    step(loop);
    assert_false(weft_future_done(a));
    assert_int_equal(weft_process_kill(p), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, a), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, c), 0);
    weft_value v = {0};
    assert_int_equal(weft_future_result(c, &v), 0);
    assert_int_equal(v.i, -SIGKILL);
    assert_int_equal(weft_future_error(b), -ECANCELED);
    weft_future_unref(a);
    weft_future_unref(b);
    weft_future_unref(c);
    weft_process_free(p);
    finish_reaped(loop);
}

/* A wait future nobody holds still completes (the loop holds it) and is
 * freed then. */
static void test_dropped_wait_future_is_freed_at_exit(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process *p = sh(loop, "exit 0", NULL);
    weft_future_unref(weft_process_wait(p));
    assert_int_equal(wait_rc(loop, p), 0);
    weft_process_free(p);
    finish_reaped(loop);
}

/* =============================================================================
 * Reaping
 * ========================================================================== */

/* A process object freed while its child runs: the child is still reaped
 * when it exits (no zombie), and a wait made before still completes. */
static void test_dropped_process_is_still_reaped(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    int fds[2];
    cloexec_pipe(fds);
    /* the child exits when we close our end of its stdin */
    weft_process_opts o = {.in = {WEFT_STDIO_FD, fds[0]}};
    weft_process *p = sh(loop, "read x; exit 4", &o);
    close(fds[0]);
    pid_t pid = weft_process_pid(p);
    weft_future *f = weft_process_wait(p);
    weft_process_free(p);
    step(loop);
    assert_false(weft_future_done(f));
    close(fds[1]);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_value v = {0};
    assert_int_equal(weft_future_result(f, &v), 0);
    assert_int_equal(v.i, 4);
    weft_future_unref(f);
    assert_false(unreaped(pid));
    finish_reaped(loop);
}

/* A process object freed with no wait at all: the loop reaps the child
 * anyway while it runs. */
static void test_forgotten_child_is_reaped_by_the_loop(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    int in[2], out[2];
    cloexec_pipe(in);
    cloexec_pipe(out);
    weft_process_opts o = {.in = {WEFT_STDIO_FD, in[0]}, .out = {WEFT_STDIO_FD, out[1]}};
    weft_process *p = sh(loop, "read x; exit 0", &o);
    close(in[0]);
    close(out[1]);
    pid_t pid = weft_process_pid(p);
    weft_process_free(p);
    close(in[1]); /* the child reads EOF and exits */
    char c;
    assert_int_equal(read(out[0], &c, 1), 0); /* it is gone: EOF on its stdout */
    close(out[0]);
    assert_true(unreaped(pid)); /* a zombie: the loop did not run yet */
    long before = alloc_live();
    while (unreaped(pid))
        assert_int_equal(weft_loop_run_once(loop), 0); /* blocks until the exit event */
    assert_true(alloc_live() < before);                /* and the dropped object went with it */
    finish_reaped(loop);
}

/* Two loops, each with children: each reaps its own (with SIGCHLD, each
 * loop's handler tries only its own children). */
static void test_two_loops_reap_their_own_children(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_loop *other = new_loop(g_cfg->backend, 0);
    weft_process *a = sh(loop, "exit 11", NULL);
    weft_process *b = sh(other, "exit 12", NULL);
    weft_process *c = sh(other, "exec sleep 30", NULL);
    assert_int_equal(wait_rc(other, b), 12);
    assert_int_equal(wait_rc(loop, a), 11);
    assert_int_equal(weft_process_returncode(c, NULL), WEFT_ESTATE);
    weft_process_free(a);
    weft_process_free(b);
    weft_process_free(c);
    assert_int_equal(weft_loop_destroy(other), 0); /* kills and reaps c */
    finish_reaped(loop);
}

/* 200 children at once, all reaped, each with its own code. */
static void test_200_concurrent_children_leave_no_zombie(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    enum { N = 200 };
    weft_process *p[N];
    weft_future *f[N];
    for (int i = 0; i < N; i++) {
        char script[32];
        snprintf(script, sizeof script, "exit %d", i % 100);
        char *argv[] = {"sh", "-c", script, NULL};
        assert_int_equal(weft_process_spawn(loop, argv, NULL, &p[i]), 0);
        f[i] = weft_process_wait(p[i]);
        assert_non_null(f[i]);
    }
    weft_future *all = weft_gather(loop, f, N, 0);
    assert_non_null(all);
    assert_int_equal(weft_loop_run_until_complete(loop, all), 0);
    weft_future_unref(all);
    for (int i = 0; i < N; i++) {
        int rc = -1;
        assert_int_equal(weft_process_returncode(p[i], &rc), 0);
        assert_int_equal(rc, i % 100);
        weft_process_free(p[i]);
    }
    assert_no_children();
    finish_reaped(loop);
}

/* pidfd_open failing (ENOSYS: an old kernel) falls back to SIGCHLD. */
static void test_pidfd_failure_falls_back_to_sigchld(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    /* EMFILE: this child only */
    weft__process_fail_pidfd = EMFILE;
    weft_process *p = sh(loop, "exit 5", NULL);
    weft__process_fail_pidfd = 0;
    assert_string_equal(weft_process_reaper(p), "sigchld");
    assert_int_equal(wait_rc(loop, p), 5);
    weft_process_free(p);
    if (have_pidfd()) {
        p = sh(loop, "exit 0", NULL);
        assert_string_equal(weft_process_reaper(p), "pidfd");
        assert_int_equal(wait_rc(loop, p), 0);
        weft_process_free(p);
    }
    /* ENOSYS: the kernel has none; the loop stops asking */
    weft__process_fail_pidfd = ENOSYS;
    p = sh(loop, "exit 6", NULL);
    weft__process_fail_pidfd = 0;
    weft_process *q = sh(loop, "exit 7", NULL);
    assert_string_equal(weft_process_reaper(p), "sigchld");
    assert_string_equal(weft_process_reaper(q), "sigchld");
    assert_int_equal(wait_rc(loop, p), 6);
    assert_int_equal(wait_rc(loop, q), 7);
    weft_process_free(p);
    weft_process_free(q);
    finish_reaped(loop);
}

/* Loop close with children running kills and reaps them; wait futures
 * complete (with -SIGKILL); the objects stay readable until freed. */
static void test_loop_close_kills_and_reaps_running_children(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process *p = sh(loop, "exec sleep 30", NULL);
    weft_process *q = sh(loop, "exec sleep 30", NULL);
    weft_process_free(q); /* dropped and running */
    weft_future *f = weft_process_wait(p);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_no_children();
    assert_true(weft_future_done(f));
    weft_value v = {0};
    assert_int_equal(weft_future_result(f, &v), 0);
    assert_int_equal(v.i, -SIGKILL);
    int rc = 0;
    assert_int_equal(weft_process_returncode(p, &rc), 0);
    assert_int_equal(rc, -SIGKILL);
    weft_future_unref(f);
    weft_process_free(p);
    finish_reaped(loop);
}

/* A process object never freed is freed (and reported) by destroy. */
static void test_destroy_frees_and_reports_process_left(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process *p = sh(loop, "exit 0", NULL);
    (void)p;
    g_hook.expect = 1;
    finish_reaped(loop);
    assert_int_equal(g_hook.kind, WEFT_REPORT_OTHER);
}

/* =============================================================================
 * Spawn errors
 * ========================================================================== */

static void test_missing_program_is_enoent(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    char *argv[] = {"weft-no-such-program-here", NULL};
    expect_exec_failure(loop, argv, NULL, -ENOENT);
    char *argv2[] = {"/nonexistent/weft/prog", NULL};
    expect_exec_failure(loop, argv2, NULL, -ENOENT);
    weft_process_opts o = {.no_path_search = true};
    char *argv3[] = {"sh", NULL}; /* no '/': not looked up on $PATH */
    expect_exec_failure(loop, argv3, &o, -ENOENT);
    finish_reaped(loop);
}

static void test_non_executable_file_is_eacces(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    char path[128];
    snprintf(path, sizeof path, "%s/plain", make_dir());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\nexit 0\n", f);
    fclose(f);
    assert_int_equal(chmod(path, 0644), 0);
    char *argv[] = {path, NULL};
    expect_exec_failure(loop, argv, NULL, -EACCES);
    finish_reaped(loop);
}

static void test_bad_arguments_are_refused(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    char *argv[] = {"true", NULL};
    char *empty[] = {NULL};
    weft_process *p = NULL;
    assert_int_equal(weft_process_spawn(NULL, argv, NULL, &p), -EINVAL);
    assert_int_equal(weft_process_spawn(loop, NULL, NULL, &p), -EINVAL);
    assert_int_equal(weft_process_spawn(loop, empty, NULL, &p), -EINVAL);
    assert_int_equal(weft_process_spawn(loop, argv, NULL, NULL), -EINVAL);
    weft_process_opts o = {.in = {WEFT_STDIO_STDOUT, 0}};
    assert_int_equal(weft_process_spawn(loop, argv, &o, &p), -EINVAL);
    o = (weft_process_opts){.out = {WEFT_STDIO_STDOUT, 0}};
    assert_int_equal(weft_process_spawn(loop, argv, &o, &p), -EINVAL);
    o = (weft_process_opts){.out = {(weft_stdio_kind)42, 0}};
    assert_int_equal(weft_process_spawn(loop, argv, &o, &p), -EINVAL);
    o = (weft_process_opts){.out = {WEFT_STDIO_FD, -1}};
    assert_int_equal(weft_process_spawn(loop, argv, &o, &p), -EBADF);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    o = (weft_process_opts){.err = {WEFT_STDIO_FD, fds[0]}};
    assert_int_equal(weft_process_spawn(loop, argv, &o, &p), -EBADF);
    assert_null(p);
    o = (weft_process_opts){.cwd = "/nonexistent/weft/dir"};
    expect_exec_failure(loop, argv, &o, -ENOENT);
    /* the accessors on NULL */
    assert_int_equal(weft_process_pid(NULL), -1);
    assert_null(weft_process_loop(NULL));
    assert_null(weft_process_reaper(NULL));
    assert_int_equal(weft_process_returncode(NULL, NULL), -EINVAL);
    assert_null(weft_process_wait(NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    weft_process_free(NULL);
    finish_reaped(loop);
}

static void test_closed_loop_refuses_spawn(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    assert_int_equal(weft_loop_close(loop), 0);
    char *argv[] = {"true", NULL};
    weft_process *p = NULL;
    assert_int_equal(weft_process_spawn(loop, argv, NULL, &p), WEFT_ECLOSED);
    assert_null(p);
    finish_reaped(loop);
}

/* With no fd left, spawn fails with -EMFILE and leaks none. */
static void test_fd_limit_is_emfile(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    char *argv[] = {"true", NULL};
    weft_process *p = NULL;
    /* warm up (the layer), then fill the table but for a few fds */
    assert_int_equal(weft_process_spawn(loop, argv, NULL, &p), 0);
    assert_int_equal(wait_rc(loop, p), 0);
    weft_process_free(p);
    p = NULL;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    struct rlimit low = rl;
    low.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fill[256], n = 0;
    while (n < 256) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        fill[n++] = fd;
    }
    assert_int_equal(errno, EMFILE);
    /* free one: a pipe needs two */
    close(fill[--n]);
    weft_process_opts o = {.out = {WEFT_STDIO_PIPE, 0}};
    assert_int_equal(weft_process_spawn(loop, argv, &o, &p), -EMFILE);
    assert_null(p);
    /* exactly the one fd is free again: nothing leaked */
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(open("/dev/null", O_RDONLY), -1);
    close(fd);
    while (n > 0)
        close(fill[--n]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    finish_reaped(loop);
}

/* Every allocation of a spawn failing in turn: -ENOMEM, nothing started,
 * nothing leaked; then it works. */
static void test_allocation_failure_at_each_spawn_site(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    char *argv[] = {"true", NULL};
    int failures = 0;
    for (long k = 1;; k++) {
        weft_process *p = NULL;
        alloc_fail_at(alloc_calls() + k);
        int rc = weft_process_spawn(loop, argv, NULL, &p);
        alloc_fail_at(0);
        if (rc == 0) {
            assert_int_equal(wait_rc(loop, p), 0);
            weft_process_free(p);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_null(p);
        assert_no_children();
        failures++;
    }
    assert_true(failures >= 1);
    /* the wait future's allocation: waits may first come from blocks the
     * loop's pool keeps (a release build reuses them at once), so take
     * waits until the pool is dry; then the next one fails with -ENOMEM */
    weft_process *p = sh(loop, "exit 0", NULL);
    weft_future *held[256];
    size_t nheld = 0;
    alloc_fail_all(true);
    weft_future *f;
    while ((f = weft_process_wait(p)) != NULL && nheld < sizeof held / sizeof held[0])
        held[nheld++] = f;
    alloc_fail_all(false);
    assert_null(f);
    assert_int_equal(weft_last_error(), -ENOMEM);
    while (nheld > 0)
        weft_future_unref(held[--nheld]);
    assert_int_equal(wait_rc(loop, p), 0);
    weft_process_free(p);
    finish_reaped(loop);
}

/* =============================================================================
 * stdio, environment, directory
 * ========================================================================== */

/* Only 0, 1 and 2 reach the child: none of weft's fds (the backend's,
 * pidfds, the ends of other pipes, the copy of a caller's fd) does. */
static void test_child_gets_no_fd_but_0_1_2(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    char path[128];
    snprintf(path, sizeof path, "%s/fds", make_dir());
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(out >= 0);
    /* another child with pipes, running: its pidfd and pipe ends are open */
    weft_process_opts po = {.in = {WEFT_STDIO_PIPE, 0}, .out = {WEFT_STDIO_PIPE, 0}};
    weft_process *other = sh(loop, "exec sleep 30", &po);
    /* what the caller left inheritable is not weft's business */
    bool allowed[1024] = {false};
    for (int fd = 3; fd < 1024; fd++) {
        int fl = fcntl(fd, F_GETFD);
        allowed[fd] = fl >= 0 && !(fl & FD_CLOEXEC);
    }
    weft_process_opts o = {
        .in = {WEFT_STDIO_PIPE, 0}, .out = {WEFT_STDIO_FD, out}, .err = {WEFT_STDIO_DEVNULL, 0}};
    weft_process *p = sh(loop, "exec ls /proc/self/fd", &o);
    assert_int_equal(wait_rc(loop, p), 0);
    weft_process_free(p);
    assert_int_equal(weft_process_kill(other), 0);
    assert_int_equal(wait_rc(loop, other), -SIGKILL);
    weft_process_free(other);
    close(out);
    char *text = slurp(path, NULL);
    int low = 0, extra = 0;
    for (char *s = strtok(text, "\n"); s; s = strtok(NULL, "\n")) {
        int fd = atoi(s);
        assert_true(fd >= 0 && fd < 1024);
        if (fd < 3)
            low++;
        else if (!allowed[fd])
            extra++;
    }
    free(text);
    assert_int_equal(low, 3);
    assert_true(extra <= 1); /* the directory ls reads /proc/self/fd with */
    finish_reaped(loop);
}

/* stderr merged into stdout, /dev/null for stdin (reads EOF), cwd, env. */
static void test_stdio_devnull_merge_cwd_env(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    const char *dir = make_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/out", dir);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(out >= 0);
    char *envp[] = {"WEFT_X=forty-two", "PATH=/usr/bin:/bin", NULL};
    weft_process_opts o = {.in = {WEFT_STDIO_DEVNULL, 0},
                           .out = {WEFT_STDIO_FD, out},
                           .err = {WEFT_STDIO_STDOUT, 0},
                           .cwd = dir,
                           .envp = envp};
    weft_process *p = sh(loop,
                         "if read x; then echo not-eof; else echo eof; fi; "
                         "echo out:$WEFT_X; echo err:$(pwd) >&2",
                         &o);
    close(out);
    assert_int_equal(wait_rc(loop, p), 0);
    weft_process_free(p);
    char *text = slurp(path, NULL);
    char want[256];
    char real[128];
    assert_non_null(realpath(dir, real));
    snprintf(want, sizeof want, "eof\nout:forty-two\nerr:%s\n", real);
    assert_string_equal(text, want);
    free(text);
    finish_reaped(loop);
}

/* =============================================================================
 * communicate
 * ========================================================================== */

static const weft_stdio PIPE = {WEFT_STDIO_PIPE, 0};

/* Run communicate to its end; the output (owned by p). */
static const weft_process_output *communicate(weft_loop *loop, weft_process *p, const void *in,
                                              size_t n)
{
    weft_future *f = weft_process_communicate(p, in, n);
    assert_non_null(f);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_value v = {0};
    assert_int_equal(weft_future_result(f, &v), 0);
    weft_future_unref(f);
    assert_ptr_equal(v.p, weft_process_output_of(p));
    return v.p;
}

/* Input bigger than any pipe buffer, copied by the child to both stdout
 * and stderr: only reading both while writing avoids a deadlock. */
static void test_communicate_megabytes_both_ways(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    enum { N = 3 * 1024 * 1024 + 17 };
    char *in = malloc(N);
    assert_non_null(in);
    for (size_t i = 0; i < N; i++)
        in[i] = (char)('a' + i % 23);
    weft_process_opts o = {.in = PIPE, .out = PIPE, .err = PIPE};
    weft_process *p = sh(loop, "exec tee /dev/stderr", &o);
    const weft_process_output *out = communicate(loop, p, in, N);
    free(in); /* the input was copied at the call: nothing of ours is used after */
    assert_int_equal(out->returncode, 0);
    assert_int_equal(out->out_len, N);
    assert_int_equal(out->err_len, N);
    for (size_t i = 0; i < N; i += 4099) {
        assert_int_equal(out->out[i], (char)('a' + i % 23));
        assert_int_equal(out->err[i], (char)('a' + i % 23));
    }
    assert_int_equal(out->out[N], 0);
    assert_int_equal(memcmp(out->out, out->err, N), 0);
    /* the pipes are used up */
    assert_null(weft_process_communicate(p, "x", 1));
    assert_int_equal(weft_last_error(), -EINVAL);
    weft_process_free(p);
    finish_reaped(loop);
}

/* Several MB on stdout and stderr at once with no input. */
static void test_communicate_large_outputs(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process_opts o = {.out = PIPE, .err = PIPE};
    weft_process *p =
        sh(loop, "head -c 5000000 /dev/zero & head -c 4000000 /dev/zero >&2; wait; exit 9", &o);
    const weft_process_output *out = communicate(loop, p, NULL, 0);
    assert_int_equal(out->returncode, 9);
    assert_int_equal(out->out_len, 5000000);
    assert_int_equal(out->err_len, 4000000);
    weft_process_free(p);
    finish_reaped(loop);
}

/* Input fed through stdin; stderr merged into the stdout pipe. */
static void test_communicate_feeds_stdin_and_merges_stderr(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process_opts o = {.in = PIPE, .out = PIPE, .err = {WEFT_STDIO_STDOUT, 0}};
    weft_process *p = sh(loop, "read x; echo got:$x; echo oops >&2; exit 1", &o);
    const weft_process_output *out = communicate(loop, p, "abc\n", 4);
    assert_int_equal(out->returncode, 1);
    assert_string_equal(out->out, "got:abc\noops\n");
    assert_null(out->err);
    assert_int_equal(out->err_len, 0);
    weft_process_free(p);
    finish_reaped(loop);
}

/* A child that exited before its pipes were read: the data waits in the
 * pipes, and communicate still gets it. */
static void test_child_exits_before_its_pipes_are_read(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process_opts o = {.in = PIPE, .out = PIPE, .err = PIPE};
    weft_process *p = sh(loop, "echo hello; echo world >&2; exit 2", &o);
    assert_int_equal(wait_rc(loop, p), 2);
    const weft_process_output *out = communicate(loop, p, NULL, 0);
    assert_int_equal(out->returncode, 2);
    assert_string_equal(out->out, "hello\n");
    assert_string_equal(out->err, "world\n");
    weft_process_free(p);
    finish_reaped(loop);
}

/* A child that does not read its input: the rest is dropped, no error. */
static void test_communicate_ignores_a_child_that_stops_reading(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    enum { N = 1 << 20 };
    char *in = calloc(1, N);
    assert_non_null(in);
    weft_process_opts o = {.in = PIPE, .out = PIPE};
    weft_process *p = sh(loop, "exec true", &o);
    const weft_process_output *out = communicate(loop, p, in, N);
    free(in);
    assert_int_equal(out->returncode, 0);
    assert_int_equal(out->out_len, 0);
    assert_string_equal(out->out, "");
    weft_process_free(p);
    finish_reaped(loop);
}

/* Without pipes: the output has no data, only the returncode. */
static void test_communicate_without_pipes_waits_for_exit(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process_opts o = {.out = {WEFT_STDIO_DEVNULL, 0}};
    weft_process *p = sh(loop, "echo gone; exit 6", &o);
    const weft_process_output *out = communicate(loop, p, NULL, 0);
    assert_int_equal(out->returncode, 6);
    assert_null(out->out);
    assert_null(out->err);
    /* input without a stdin pipe is refused */
    assert_null(weft_process_communicate(p, "x", 1));
    assert_int_equal(weft_last_error(), -EINVAL);
    weft_process_free(p);
    finish_reaped(loop);
}

/* Cancelling a communicate withdraws it; a second one at the same time is
 * refused; freeing the process cancels one still pending. */
static void test_communicate_cancel_and_state(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process_opts o = {.out = PIPE};
    weft_process *p = sh(loop, "exec sleep 30", &o);
    weft_future *f = weft_process_communicate(p, NULL, 0);
    assert_non_null(f);
    assert_null(weft_process_communicate(p, NULL, 0));
    assert_int_equal(weft_last_error(), WEFT_ESTATE);
    step(loop);
    assert_false(weft_future_done(f));
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(weft_future_error(f), -ECANCELED);
    weft_future_unref(f);
    assert_null(weft_process_output_of(p));
    /* another one, pending when the process is freed */
    f = weft_process_communicate(p, NULL, 0);
    assert_non_null(f);
    pid_t pid = weft_process_pid(p);
    assert_int_equal(weft_process_kill(p), 0);
    weft_process_free(p);
    assert_true(weft_future_cancelled(f));
    weft_future_unref(f);
    while (unreaped(pid))
        assert_int_equal(weft_loop_run_once(loop), 0); /* the loop reaps the dropped child */
    finish_reaped(loop);
}

/* Every allocation of a communicate failing in turn: NULL with -ENOMEM,
 * nothing leaked, the pipes untouched; then it works. */
static void test_communicate_allocation_failure_at_each_site(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    wt_warm(loop);
    weft_process_opts o = {.in = PIPE, .out = PIPE, .err = PIPE};
    weft_process *p = sh(loop, "read x; echo out:$x; echo err:$x >&2", &o);
    int failures = 0;
    for (long k = 1;; k++) {
        alloc_fail_at(alloc_calls() + k);
        weft_future *f = weft_process_communicate(p, "in\n", 3);
        alloc_fail_at(0);
        if (f) {
            assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
            weft_future_unref(f);
            break;
        }
        assert_int_equal(weft_last_error(), -ENOMEM);
        failures++;
    }
    assert_true(failures >= 4); /* state, input copy, two buffers */
    const weft_process_output *out = weft_process_output_of(p);
    assert_non_null(out);
    assert_string_equal(out->out, "out:in\n");
    assert_string_equal(out->err, "err:in\n");
    weft_process_free(p);
    finish_reaped(loop);
}

/* The output cannot grow: the communicate fails with -ENOMEM. */
static void test_communicate_fails_when_output_cannot_grow(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    wt_warm(loop);
    weft_process_opts o = {.out = PIPE};
    weft_process *p = sh(loop, "exec head -c 1000000 /dev/zero", &o);
    weft_future *f = weft_process_communicate(p, NULL, 0);
    assert_non_null(f);
    alloc_fail_all(true);
    assert_int_equal(weft_loop_run_until_complete(loop, f), -ENOMEM);
    alloc_fail_all(false);
    weft_future_unref(f);
    assert_int_equal(weft_process_kill(p), 0);
    assert_int_equal(wait_rc(loop, p), -SIGKILL);
    weft_process_free(p);
    finish_reaped(loop);
}

/* A child whose status someone else took (a waitpid of theirs): weft
 * reports it and records 255, as asyncio does. */
static void test_child_reaped_by_someone_else_reads_255(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process *p = sh(loop, "exit 3", NULL);
    int st = 0;
    if (waitpid(weft_process_pid(p), &st, 0) < 0) {
        /* SIGCHLD reaper: spawn may already have reaped it */
        assert_int_equal(errno, ECHILD);
        assert_int_equal(wait_rc(loop, p), 3);
    } else {
        g_hook.expect = 1;
        assert_int_equal(wait_rc(loop, p), 255);
        assert_int_equal(g_hook.kind, WEFT_REPORT_OTHER);
    }
    weft_process_free(p);
    finish_reaped(loop);
}

/* The loop's dump lists its children. */
static void dump_hook(weft_loop *loop, const weft_report *r, void *ud)
{
    (void)loop;
    if (r->kind == WEFT_REPORT_DUMP && strstr(r->message, "processes: 1 running"))
        *(int *)ud += 1;
}

static void test_dump_lists_children(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    int seen = 0;
    assert_int_equal(weft_loop_set_report_hook(loop, dump_hook, &seen), 0);
    weft_process *p = sh(loop, "exec sleep 30", NULL);
    assert_int_equal(weft_loop_request_dump(loop), 0);
    step(loop);
    assert_int_equal(seen, 1);
    weft_process_free(p); /* the loop's close kills it */
    finish_reaped(loop);
}

/* After loop close: wait futures of a reaped child are still made, done
 * at once; communicate is refused. */
static void test_after_close_wait_is_done_and_communicate_refused(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process_opts o = {.out = PIPE};
    weft_process *p = sh(loop, "exec sleep 30", &o);
    assert_int_equal(weft_loop_close(loop), 0);
    weft_future *f = weft_process_wait(p);
    assert_non_null(f);
    assert_true(weft_future_done(f));
    weft_value v = {0};
    assert_int_equal(weft_future_result(f, &v), 0);
    assert_int_equal(v.i, -SIGKILL);
    weft_future_unref(f);
    assert_null(weft_process_communicate(p, NULL, 0));
    assert_int_equal(weft_last_error(), WEFT_ECLOSED);
    assert_int_equal(weft_process_kill(p), -ESRCH);
    weft_process_free(p);
    finish_reaped(loop);
}

/* =============================================================================
 * Pipes as streams
 * ========================================================================== */

/* Run f to its end (it must succeed); its value; f is dropped. */
static weft_value await_value(weft_loop *loop, weft_future *f)
{
    assert_non_null(f);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_value v = {0};
    assert_int_equal(weft_future_result(f, &v), 0);
    weft_future_unref(f);
    return v;
}

/* The next line of s, compared with want ("" at EOF). */
static void expect_line(weft_loop *loop, weft_stream *s, const char *want)
{
    weft_future *f = weft_stream_readline(s);
    assert_non_null(f);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_value v = {0};
    assert_int_equal(weft_future_result(f, &v), 0);
    const weft_bytes *b = v.p;
    assert_string_equal(b->data, want);
    weft_future_unref(f);
}

/* proc.stdout.readline() until EOF. */
static void test_stdout_stream_readline(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process_opts o = {.out = PIPE};
    weft_process *p = sh(loop, "printf 'one\ntwo\nlast'; exit 4", &o);
    weft_stream *out = weft_process_stdout(p);
    assert_non_null(out);
    assert_ptr_equal(weft_process_stdout(p), out); /* one stream per pipe */
    expect_line(loop, out, "one\n");
    expect_line(loop, out, "two\n");
    expect_line(loop, out, "last");
    expect_line(loop, out, "");
    assert_true(weft_stream_at_eof(out));
    assert_int_equal(wait_rc(loop, p), 4);
    weft_process_free(p); /* frees the stream */
    finish_reaped(loop);
}

/* proc.stdin.write(), drain(), close(); the child sees EOF. */
static void test_stdin_stream_write_drain_close(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process_opts o = {.in = PIPE, .out = PIPE};
    weft_process *p = sh(loop, "exec tr a-z A-Z", &o);
    weft_stream *in = weft_process_stdin(p), *out = weft_process_stdout(p);
    assert_non_null(in);
    assert_non_null(out);
    enum { N = 1 << 20 }; /* beyond the pipe and the write-buffer marks */
    char *big = malloc(N);
    assert_non_null(big);
    memset(big, 'x', N);
    big[N - 1] = '\n';
    assert_int_equal(weft_stream_write(in, big, N), 0);
    free(big);
    /* the child's output must be read while we drain: communicate-free
     * code reads it first, then drains (drain waits for the low mark) */
    weft_future *rd = weft_stream_readexactly(out, N);
    weft_future *dr = weft_stream_drain(in);
    assert_non_null(dr);
    await_value(loop, dr);
    assert_int_equal(weft_stream_close(in), 0);
    const weft_bytes *b = await_value(loop, rd).p;
    assert_int_equal(b->len, N);
    assert_int_equal(b->data[0], 'X');
    assert_int_equal(b->data[N - 2], 'X');
    expect_line(loop, out, ""); /* EOF: tr saw ours */
    assert_int_equal(wait_rc(loop, p), 0);
    weft_process_free(p);
    finish_reaped(loop);
}

/* communicate after the streams were used: it continues from where they
 * are (what the stream buffered included). */
static void test_communicate_through_streams(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process_opts o = {.in = PIPE, .out = PIPE, .err = PIPE};
    weft_process *p = sh(loop,
                         "read x; echo first; echo $x; head -c 2000000 /dev/zero; "
                         "read y; echo err:$y >&2",
                         &o);
    weft_stream *in = weft_process_stdin(p), *out = weft_process_stdout(p);
    assert_int_equal(weft_stream_write(in, "abc\n", 4), 0);
    expect_line(loop, out, "first\n");
    const weft_process_output *r = communicate(loop, p, "def\n", 4);
    assert_int_equal(r->returncode, 0);
    assert_int_equal(r->out_len, 4 + 2000000);
    assert_int_equal(memcmp(r->out, "abc\n", 4), 0);
    assert_int_equal(r->out[r->out_len - 1], 0);
    assert_string_equal(r->err, "err:def\n");
    weft_process_free(p);
    finish_reaped(loop);
}

/* Cancelling a communicate that reads a stream gives the data back to the
 * stream. */
static void test_cancelled_communicate_leaves_stream_data(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    weft_process_opts o = {.out = PIPE};
    weft_process *p = sh(loop, "echo data; exec sleep 30", &o);
    weft_stream *out = weft_process_stdout(p);
    assert_non_null(out);
    weft_future *f = weft_process_communicate(p, NULL, 0);
    assert_non_null(f);
    while (weft_stream_buffered(out) < 5)
        assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(weft_future_cancel(f), 0);
    weft_future_unref(f);
    expect_line(loop, out, "data\n");
    assert_int_equal(weft_process_kill(p), 0);
    assert_int_equal(wait_rc(loop, p), -SIGKILL);
    weft_process_free(p);
    finish_reaped(loop);
}

/* The accessors' errors; an allocation failure leaves the pipe usable. */
static void test_stream_accessor_errors(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    wt_warm(loop);
    assert_null(weft_process_stdout(NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    weft_process_opts o = {.out = PIPE, .err = PIPE};
    weft_process *p = sh(loop, "echo out; echo err >&2", &o);
    assert_null(weft_process_stdin(p)); /* inherited: not a pipe */
    assert_int_equal(weft_last_error(), -ENOENT);
    alloc_fail_all(true);
    assert_null(weft_process_stdout(p));
    alloc_fail_all(false);
    assert_int_equal(weft_last_error(), -ENOMEM);
    weft_future *f = weft_process_communicate(p, NULL, 0); /* on the raw pipes */
    assert_non_null(f);
    assert_null(weft_process_stderr(p));
    assert_int_equal(weft_last_error(), WEFT_ESTATE);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_future_unref(f);
    const weft_process_output *r = weft_process_output_of(p);
    assert_string_equal(r->out, "out\n");
    assert_string_equal(r->err, "err\n");
    assert_null(weft_process_stdout(p)); /* used up */
    assert_int_equal(weft_last_error(), -ENOENT);
    weft_process_free(p);
    finish_reaped(loop);
}

/* Allocation failure at each site of a communicate through streams. */
static void test_stream_communicate_allocation_failure_at_each_site(void **state)
{
    (void)state;
    weft_loop *loop = ploop();
    wt_warm(loop);
    weft_process_opts o = {.in = PIPE, .out = PIPE, .err = PIPE};
    weft_process *p = sh(loop, "read x; echo out:$x; echo err:$x >&2", &o);
    assert_non_null(weft_process_stdin(p));
    assert_non_null(weft_process_stdout(p));
    assert_non_null(weft_process_stderr(p));
    step(loop); /* the streams' connection_made */
    int failures = 0;
    for (long k = 1;; k++) {
        alloc_fail_at(alloc_calls() + k);
        weft_future *f = weft_process_communicate(p, "in\n", 3);
        alloc_fail_at(0);
        if (f) {
            int rc = weft_loop_run_until_complete(loop, f);
            weft_future_unref(f);
            if (rc == 0)
                break;
            assert_int_equal(rc, -ENOMEM); /* a buffer of the completion */
            failures++;
            continue;
        }
        assert_int_equal(weft_last_error(), -ENOMEM);
        step(loop); /* a cancelled read's callback */
        failures++;
    }
    assert_true(failures >= 3);
    const weft_process_output *r = weft_process_output_of(p);
    assert_string_equal(r->out, "out:in\n");
    assert_string_equal(r->err, "err:in\n");
    weft_process_free(p);
    finish_reaped(loop);
}

/* =============================================================================
 * Registration
 * ========================================================================== */

static const cfg k_epoll_pidfd = {"epoll", "pidfd"}, k_poll_pidfd = {"poll", "pidfd"},
                 k_epoll_sigchld = {"epoll", "sigchld"}, k_poll_sigchld = {"poll", "sigchld"};

/* clang-format off */
#define ON(f, c) {#f "(" #c ")", f, setup, teardown, (void *)&c}
/* clang-format on */
#define ON_ALL(f) \
    ON(f, k_epoll_pidfd), ON(f, k_poll_pidfd), ON(f, k_epoll_sigchld), ON(f, k_poll_sigchld)
#define ONCE(f) ON(f, k_epoll_pidfd)

int main(void)
{
    const struct CMUnitTest tests[] = {
        ON_ALL(test_exit_code_is_the_returncode),
        ON_ALL(test_killed_child_reports_minus_signo),
        ONCE(test_signal_after_reap_is_esrch),
        ONCE(test_wait_after_reap_is_done_at_once),
        ON_ALL(test_cancelling_a_wait_removes_only_that_waiter),
        ONCE(test_dropped_wait_future_is_freed_at_exit),
        ON_ALL(test_dropped_process_is_still_reaped),
        ON_ALL(test_forgotten_child_is_reaped_by_the_loop),
        ON_ALL(test_two_loops_reap_their_own_children),
        ON_ALL(test_200_concurrent_children_leave_no_zombie),
        ON_ALL(test_loop_close_kills_and_reaps_running_children),
        ONCE(test_destroy_frees_and_reports_process_left),
        ONCE(test_pidfd_failure_falls_back_to_sigchld),
        ONCE(test_missing_program_is_enoent),
        ONCE(test_non_executable_file_is_eacces),
        ONCE(test_bad_arguments_are_refused),
        ONCE(test_closed_loop_refuses_spawn),
        ONCE(test_fd_limit_is_emfile),
        ON_ALL(test_allocation_failure_at_each_spawn_site),
        ON_ALL(test_child_gets_no_fd_but_0_1_2),
        ON_ALL(test_stdio_devnull_merge_cwd_env),
        ON_ALL(test_child_reaped_by_someone_else_reads_255),
        ONCE(test_dump_lists_children),
        ONCE(test_after_close_wait_is_done_and_communicate_refused),
        ON_ALL(test_communicate_megabytes_both_ways),
        ON_ALL(test_communicate_large_outputs),
        ON_ALL(test_communicate_feeds_stdin_and_merges_stderr),
        ON_ALL(test_child_exits_before_its_pipes_are_read),
        ONCE(test_communicate_ignores_a_child_that_stops_reading),
        ONCE(test_communicate_without_pipes_waits_for_exit),
        ON_ALL(test_communicate_cancel_and_state),
        ONCE(test_communicate_allocation_failure_at_each_site),
        ONCE(test_communicate_fails_when_output_cannot_grow),
        ON_ALL(test_stdout_stream_readline),
        ON_ALL(test_stdin_stream_write_drain_close),
        ON_ALL(test_communicate_through_streams),
        ON_ALL(test_cancelled_communicate_leaves_stream_data),
        ONCE(test_stream_accessor_errors),
        ONCE(test_stream_communicate_allocation_failure_at_each_site),
    };
    return RUN_TESTS(tests);
}
