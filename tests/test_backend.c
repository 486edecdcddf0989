/* tests/test_backend.c - the backend contract (src/backend.h), pinned on
 * every backend this build has: epoll (Linux), kqueue (BSD, macOS; Linux
 * with -DWEFT_KQUEUE_PREFIX) and poll (everywhere).
 *
 * The kernels' readiness interfaces differ most where these tests look:
 * interest changes that are deferred to the next wait, a change the kernel
 * refuses, hang-ups, many watchers in one wait, an fd number reused, and
 * the wakeup from another thread.  Everything goes through the public
 * weft_io API, so each test states a guarantee of weft, not of a backend.
 *
 * The backends are found at run time (a loop is made on each name) and
 * every test runs once per backend found, named "test(backend)".  Virtual
 * clock, except for the tests that need a real wait.
 */
#include "weft_test.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>

static const char *const k_backends[] = {"epoll", "kqueue", "poll"};

/* ---- a watcher that records its callbacks ---------------------------------------- */

typedef struct probe {
    weft_io io;
    int calls;
    unsigned events; /* of the last call */
    unsigned all;    /* every call's, or-ed */
} probe;

static void probe_cb(weft_io *w, unsigned events)
{
    probe *p = WEFT_CONTAINER_OF(w, probe, io);
    p->calls++;
    p->events = events;
    p->all |= events;
}

static void probe_init(probe *p, weft_loop *loop, int fd)
{
    *p = (probe){.calls = 0};
    assert_int_equal(weft_io_init(&p->io, loop, fd, probe_cb), 0);
}

static void make_pipe(int p[2])
{
    assert_int_equal(pipe(p), 0);
    for (int k = 0; k < 2; k++)
        assert_int_equal(fcntl(p[k], F_SETFL, fcntl(p[k], F_GETFL) | O_NONBLOCK), 0);
}

static void write_byte(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 60});
    return 0;
}

/* ---- deferred interest changes ---------------------------------------------------- */

/* Interest started before a write is seen by the next wait: the callback
 * runs once per iteration while the fd is readable, with WEFT_READABLE. */
static void test_started_interest_reports_readable(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    probe r;
    probe_init(&r, loop, p[0]);
    assert_int_equal(weft_io_start(&r.io, WEFT_READABLE), 0);
    step(loop);
    assert_int_equal(r.calls, 0);
    write_byte(p[1]);
    step(loop);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.events, WEFT_READABLE);
    step(loop); /* level-triggered: still readable */
    assert_int_equal(r.calls, 2);
    weft_io_close(&r.io);
    close(p[0]);
    close(p[1]);
    finish(loop);
}

/* Interest stopped before the next wait never reaches the callback, even
 * with the fd ready all along. */
static void test_stopped_interest_reports_nothing(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    write_byte(p[1]);
    probe r;
    probe_init(&r, loop, p[0]);
    assert_int_equal(weft_io_start(&r.io, WEFT_READABLE), 0);
    step(loop);
    assert_int_equal(r.calls, 1);
    assert_int_equal(weft_io_stop(&r.io, WEFT_READABLE), 0);
    step(loop);
    step(loop);
    assert_int_equal(r.calls, 1);
    weft_io_close(&r.io);
    close(p[0]);
    close(p[1]);
    finish(loop);
}

/* Both directions on one watcher: one callback per iteration carrying both. */
static void test_both_directions_arrive_in_one_callback(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    write_byte(sv[1]);
    probe s;
    probe_init(&s, loop, sv[0]);
    assert_int_equal(weft_io_start(&s.io, WEFT_READABLE | WEFT_WRITABLE), 0);
    step(loop);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.events, WEFT_READABLE | WEFT_WRITABLE);
    weft_io_close(&s.io);
    close(sv[0]);
    close(sv[1]);
    finish(loop);
}

/* ---- hang-ups and refused changes --------------------------------------------------- */

/* The writer's close is a hang-up: the reader is called readable (a read
 * then returns 0), and only with what it asked for. */
static void test_hangup_reports_readable(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    probe r;
    probe_init(&r, loop, p[0]);
    assert_int_equal(weft_io_start(&r.io, WEFT_READABLE), 0);
    close(p[1]);
    step(loop);
    assert_int_equal(r.calls, 1);
    assert_true(r.events & WEFT_READABLE);
    assert_false(r.events & WEFT_WRITABLE);
    char c;
    assert_int_equal(read(p[0], &c, 1), 0);
    weft_io_close(&r.io);
    close(p[0]);
    finish(loop);
}

/* Interest started on an fd closed meanwhile: the kernel refuses it at the
 * next wait, and the callback learns it once, as WEFT_IO_ERROR; the loop
 * neither spins nor calls again. */
static void test_refused_interest_reports_io_error_once(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2];
    make_pipe(p);
    probe r;
    probe_init(&r, loop, p[0]);
    close(p[0]);
    close(p[1]);
    assert_int_equal(weft_io_start(&r.io, WEFT_READABLE), 0);
    step(loop);
    assert_int_equal(r.calls, 1);
    assert_true(r.events & WEFT_IO_ERROR);
    step(loop);
    step(loop);
    assert_int_equal(r.calls, 1);
    weft_io_close(&r.io);
    finish(loop);
}

/* A watcher closed with its callback queued is not called, and a new
 * watcher on the same fd number (closed and reopened) fires: no trace of
 * the old registration is left (libkqueue keeps registrations of closed
 * fds; the kernels drop them). */
static void test_reused_fd_number_fires_for_the_new_watcher(void **state)
{
    weft_loop *loop = vloop_on(*state);
    int p[2], q[2];
    make_pipe(p);
    probe a, b;
    probe_init(&a, loop, p[0]);
    assert_int_equal(weft_io_start(&a.io, WEFT_READABLE), 0);
    step(loop);
    write_byte(p[1]);
    close(p[0]);
    close(p[1]);
    weft_io_close(&a.io);
    make_pipe(q);
    if (q[0] != p[0]) { /* put the new read end on the old number */
        assert_int_equal(dup2(q[0], p[0]), p[0]);
        close(q[0]);
        q[0] = p[0];
    }
    probe_init(&b, loop, q[0]);
    assert_int_equal(weft_io_start(&b.io, WEFT_READABLE), 0);
    step(loop);
    assert_int_equal(b.calls, 0);
    write_byte(q[1]);
    step(loop);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.events, WEFT_READABLE);
    assert_int_equal(a.calls, 0);
    weft_io_close(&b.io);
    close(q[0]);
    close(q[1]);
    finish(loop);
}

/* ---- many watchers ------------------------------------------------------------------ */

enum { MANY = 300 }; /* more than epoll's batch and kqueue's first array */

/* Every ready watcher is called, however many there are, and at most once
 * per iteration.  (A backend may take them in batches: epoll reads 256
 * events per wait and, level-triggered, the rest next time.) */
static void test_many_ready_watchers_are_all_called(void **state)
{
    weft_loop *loop = vloop_on(*state);
    static int fds[MANY][2];
    static probe w[MANY];
    for (int i = 0; i < MANY; i++) {
        make_pipe(fds[i]);
        probe_init(&w[i], loop, fds[i][1]);
        assert_int_equal(weft_io_start(&w[i].io, WEFT_WRITABLE), 0);
    }
    enum { ROUNDS = 3 };
    for (int k = 0; k < ROUNDS; k++)
        step(loop);
    for (int i = 0; i < MANY; i++) {
        assert_in_range(w[i].calls, 1, ROUNDS);
        assert_int_equal(w[i].all, WEFT_WRITABLE);
    }
    for (int i = 0; i < MANY; i++) {
        weft_io_close(&w[i].io);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    finish(loop);
}

/* ---- real waits ------------------------------------------------------------------------ */

static weft_loop_stats loop_stats(weft_loop *loop)
{
    weft_loop_stats st;
    assert_int_equal(weft_loop_get_stats(loop, &st), 0);
    return st;
}

/* A lone timer costs one backend wait on the real clock: the wait lasts
 * until the deadline (kqueue to the nanosecond, epoll and poll rounded up
 * to the millisecond), so the loop never wakes early only to wait again. */
static void test_a_timer_costs_one_backend_wait(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    int p[2];
    make_pipe(p);
    probe r;
    probe_init(&r, loop, p[0]);
    assert_int_equal(weft_io_start(&r.io, WEFT_READABLE), 0);
    for (int k = 0; k < 5; k++) {
        weft_loop_stats s0 = loop_stats(loop);
        assert_int_equal(weft_call_later_ns(loop, 1500000, stop_cb, NULL, NULL), 0);
        assert_int_equal(weft_loop_run_forever(loop), 0);
        weft_loop_stats s1 = loop_stats(loop);
        assert_int_equal(s1.polls - s0.polls, 1);
    }
    assert_int_equal(r.calls, 0);
    weft_io_close(&r.io);
    close(p[0]);
    close(p[1]);
    finish(loop);
}

static void *stop_later(void *arg)
{
    struct timespec d = {0, 20 * 1000000};
    nanosleep(&d, NULL);
    assert_int_equal(weft_call_soon_threadsafe(arg, stop_cb, NULL), 0);
    return NULL;
}

/* A loop blocked in its backend with nothing due (no timer: an infinite
 * wait) is woken by call_soon_threadsafe from another thread. */
static void test_threadsafe_call_wakes_an_infinite_wait(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    int p[2];
    make_pipe(p);
    probe r;
    probe_init(&r, loop, p[0]);
    assert_int_equal(weft_io_start(&r.io, WEFT_READABLE), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_later, loop), 0);
    assert_int_equal(weft_loop_run_forever(loop), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.calls, 0);
    weft_io_close(&r.io);
    close(p[0]);
    close(p[1]);
    finish(loop);
}

/* ---- one run per backend found ------------------------------------------------------- */

static bool backend_available(const char *name)
{
    weft_loop_options o = {.backend = name};
    weft_loop *loop = NULL;
    if (weft_loop_new(&loop, &o) != 0)
        return false;
    weft_loop_destroy(loop);
    return true;
}

int main(void)
{
    static const struct {
        const char *name;
        CMUnitTestFunction fn;
    } tests[] = {
#define TEST(f) {#f, f}
        TEST(test_started_interest_reports_readable),
        TEST(test_stopped_interest_reports_nothing),
        TEST(test_both_directions_arrive_in_one_callback),
        TEST(test_hangup_reports_readable),
        TEST(test_refused_interest_reports_io_error_once),
        TEST(test_reused_fd_number_fires_for_the_new_watcher),
        TEST(test_many_ready_watchers_are_all_called),
        TEST(test_a_timer_costs_one_backend_wait),
        TEST(test_threadsafe_call_wakes_an_infinite_wait),
#undef TEST
    };
    enum { NT = sizeof tests / sizeof tests[0], NB = sizeof k_backends / sizeof k_backends[0] };
    static struct CMUnitTest run[NT * NB];
    static char names[NT * NB][96];
    size_t n = 0;
    for (size_t b = 0; b < NB; b++) {
        if (!backend_available(k_backends[b]))
            continue;
        for (size_t t = 0; t < NT; t++, n++) {
            snprintf(names[n], sizeof names[n], "%s(%s)", tests[t].name, k_backends[b]);
            run[n] = (struct CMUnitTest){names[n], tests[t].fn, setup, teardown,
                                         (void *)(uintptr_t)k_backends[b]};
        }
    }
    return wt_run_tests(run, n, "test_backend");
}
