/* test_signal.c - signal handlers on the loop, signal waits, dispositions,
 * several loops in several threads, and WEFT_RUN's Ctrl-C option.
 *
 * Signals are raised in the test's own process (raise() delivers to the
 * calling thread before it returns; kill(getpid()) to some thread that does
 * not block the signal), so every delivery has happened, and its byte is in
 * the loop's pipe, before the test steps the loop: no test waits for time.
 * Each test runs in a process of its own (RUN_TESTS forks), so a
 * disposition a failed test leaves behind cannot leak into the next.
 * Tests that raise a signal after weft let go of it first install a
 * counting handler of their own as the "previous disposition", so a
 * mistake shows up as a count, not as a killed test.
 */
#include "weft_test.h"

#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>

#include "backend_features.h"
#include "signal_internal.h"

/* Signal numbers are below T_NSIG (NSIG is not POSIX). */
#if defined(NSIG)
#define T_NSIG NSIG
#elif defined(_NSIG)
#define T_NSIG _NSIG
#else
#define T_NSIG 65
#endif

static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 30});
    return 0;
}

/* ---- recorders --------------------------------------------------------------------------- */

/* What the weft handlers saw. */
static struct {
    int calls[T_NSIG];
    int last_signo;
    void *last_ud;
    weft_loop *last_loop;
    bool was_running; /* the loop was running the callback */
} g_seen;

static void on_sig(weft_loop *loop, int signo, void *ud)
{
    if (signo > 0 && signo < T_NSIG)
        g_seen.calls[signo]++;
    g_seen.last_signo = signo;
    g_seen.last_ud = ud;
    g_seen.last_loop = loop;
    g_seen.was_running = weft_loop_is_running(loop) && weft_running_loop() == loop;
}

static void on_sig_other(weft_loop *loop, int signo, void *ud)
{
    (void)loop, (void)ud;
    g_seen.last_signo = -signo; /* marks the other handler */
}

/* A plain (non-weft) handler: the "previous disposition" of the tests. */
static volatile sig_atomic_t g_plain[T_NSIG];

static void plain_handler(int signo)
{
    if (signo > 0 && signo < T_NSIG)
        g_plain[signo]++;
}

static void install_plain(int signo)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = plain_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(signo, &sa, NULL), 0);
}

/* The handler function installed for signo now. */
static void (*current_handler(int signo))(int)
{
    struct sigaction cur;
    assert_int_equal(sigaction(signo, NULL, &cur), 0);
    return cur.sa_handler;
}

static void reset_seen(void)
{
    memset(&g_seen, 0, sizeof g_seen);
    for (int i = 0; i < T_NSIG; i++)
        g_plain[i] = 0;
}

/* ---- delivery ---------------------------------------------------------------------------- */

static void test_handler_runs_on_the_loop_with_the_signal_number(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    reset_seen();
    int tag = 7;
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, on_sig, &tag), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(g_seen.calls[SIGUSR1], 0); /* not in signal context */
    step(loop);
    assert_int_equal(g_seen.calls[SIGUSR1], 1);
    assert_int_equal(g_seen.last_signo, SIGUSR1);
    assert_ptr_equal(g_seen.last_ud, &tag);
    assert_ptr_equal(g_seen.last_loop, loop);
    assert_true(g_seen.was_running);
    step(loop); /* nothing more */
    assert_int_equal(g_seen.calls[SIGUSR1], 1);
    assert_int_equal(weft_remove_signal_handler(loop, SIGUSR1), 1);
    assert_int_equal(weft_remove_signal_handler(loop, SIGUSR1), 0);
    finish(loop);
}

static void test_a_burst_gives_one_call(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    reset_seen();
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, on_sig, NULL), 0);
    for (int i = 0; i < 5; i++) /* five deliveries, five bytes, before the loop runs */
        assert_int_equal(raise(SIGUSR1), 0);
    step(loop);
    assert_int_equal(g_seen.calls[SIGUSR1], 1);
    assert_int_equal(raise(SIGUSR1), 0); /* a later burst: a later call */
    step(loop);
    assert_int_equal(g_seen.calls[SIGUSR1], 2);
    finish(loop);
}

static void test_a_blocked_burst_gives_one_call(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    reset_seen();
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR2, on_sig, NULL), 0);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(raise(SIGUSR2), 0);
    step(loop);
    assert_int_equal(g_seen.calls[SIGUSR2], 0);                    /* blocked: still pending */
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0); /* delivered here */
    step(loop);
    assert_int_equal(g_seen.calls[SIGUSR2], 1);
    finish(loop);
}

static void test_two_signals_in_one_burst_each_get_their_call(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    reset_seen();
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, on_sig, NULL), 0);
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR2, on_sig, NULL), 0);
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(raise(SIGUSR2), 0);
    step(loop);
    assert_int_equal(g_seen.calls[SIGUSR1], 1);
    assert_int_equal(g_seen.calls[SIGUSR2], 1);
    finish(loop);
}

/* A signal that arrived before the handler was added does not count. */
static void test_deliveries_before_the_handler_do_not_count(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    reset_seen();
    install_plain(SIGUSR1);
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR2, on_sig, NULL), 0); /* the pipe exists */
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(g_plain[SIGUSR1], 1);
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, on_sig, NULL), 0);
    step(loop);
    assert_int_equal(g_seen.calls[SIGUSR1], 0);
    finish(loop);
}

static void test_replacing_a_handler(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    reset_seen();
    install_plain(SIGUSR1);
    int a = 1, b = 2;
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, on_sig_other, &a), 0);
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, on_sig, &b), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    step(loop);
    assert_int_equal(g_seen.calls[SIGUSR1], 1);
    assert_int_equal(g_seen.last_signo, SIGUSR1); /* not the other handler's mark */
    assert_ptr_equal(g_seen.last_ud, &b);
    /* one handler per signal and loop: one remove gives the signal back */
    assert_int_equal(weft_remove_signal_handler(loop, SIGUSR1), 1);
    assert_ptr_equal(current_handler(SIGUSR1), plain_handler);
    finish(loop);
}

/* A handler that removes itself: the next delivery goes to the previous
 * disposition. */
static void remove_self(weft_loop *loop, int signo, void *ud)
{
    (void)ud;
    g_seen.calls[signo]++;
    g_seen.last_signo = weft_remove_signal_handler(loop, signo); /* 1 */
}

static void test_a_handler_may_remove_itself(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    reset_seen();
    install_plain(SIGUSR1);
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, remove_self, NULL), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    step(loop);
    assert_int_equal(g_seen.calls[SIGUSR1], 1);
    assert_int_equal(g_seen.last_signo, 1);
    assert_ptr_equal(current_handler(SIGUSR1), plain_handler);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(g_plain[SIGUSR1], 1);
    step(loop);
    assert_int_equal(g_seen.calls[SIGUSR1], 1);
    finish(loop);
}

/* ---- dispositions ------------------------------------------------------------------------ */

static void test_remove_restores_the_previous_disposition(void **state)
{
    weft_loop *a = loop_on(*state, 0);
    weft_loop *b = new_loop(*state, 0);
    reset_seen();
    struct sigaction prev, cur;
    memset(&prev, 0, sizeof prev);
    prev.sa_handler = plain_handler;
    sigemptyset(&prev.sa_mask);
    sigaddset(&prev.sa_mask, SIGUSR2);
    prev.sa_flags = SA_NODEFER;
    assert_int_equal(sigaction(SIGUSR1, &prev, NULL), 0);

    assert_int_equal(weft_add_signal_handler(a, SIGUSR1, on_sig, NULL), 0);
    assert_int_equal(sigaction(SIGUSR1, NULL, &cur), 0);
    assert_true(cur.sa_handler != plain_handler);
    assert_true(cur.sa_flags & SA_RESTART);
    assert_int_equal(weft_add_signal_handler(b, SIGUSR1, on_sig, NULL), 0);

    /* the first loop lets go: the other still watches */
    assert_int_equal(weft_remove_signal_handler(a, SIGUSR1), 1);
    assert_true(current_handler(SIGUSR1) != plain_handler);
    assert_int_equal(raise(SIGUSR1), 0);
    step(a);
    step(b);
    assert_int_equal(g_seen.calls[SIGUSR1], 1);
    assert_ptr_equal(g_seen.last_loop, b);
    assert_int_equal(g_plain[SIGUSR1], 0);

    /* the last one: the saved disposition, flags and mask included */
    assert_int_equal(weft_remove_signal_handler(b, SIGUSR1), 1);
    assert_int_equal(sigaction(SIGUSR1, NULL, &cur), 0);
    assert_ptr_equal(cur.sa_handler, plain_handler);
    assert_true(cur.sa_flags & SA_NODEFER);
    assert_false(cur.sa_flags & SA_RESTART);
    assert_true(sigismember(&cur.sa_mask, SIGUSR2));
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(g_plain[SIGUSR1], 1);

    /* the default disposition comes back as SIG_DFL, an ignored one as SIG_IGN */
    signal(SIGUSR2, SIG_IGN);
    assert_int_equal(weft_add_signal_handler(a, SIGUSR2, on_sig, NULL), 0);
    assert_true(current_handler(SIGUSR2) != SIG_IGN);
    assert_int_equal(weft_remove_signal_handler(a, SIGUSR2), 1);
    assert_ptr_equal(current_handler(SIGUSR2), SIG_IGN);
    signal(SIGUSR2, SIG_DFL);
    assert_int_equal(weft_add_signal_handler(a, SIGUSR2, on_sig, NULL), 0);
    assert_int_equal(weft_remove_signal_handler(a, SIGUSR2), 1);
    assert_ptr_equal(current_handler(SIGUSR2), SIG_DFL);

    assert_int_equal(weft_loop_destroy(b), 0);
    finish(a);
}

static void test_loop_close_removes_its_handlers_and_waiters(void **state)
{
    weft_loop *a = loop_on(*state, 0);
    weft_loop *b = new_loop(*state, 0);
    reset_seen();
    install_plain(SIGUSR1);
    install_plain(SIGUSR2);
    assert_int_equal(weft_add_signal_handler(a, SIGUSR1, on_sig, NULL), 0);
    assert_int_equal(weft_add_signal_handler(a, SIGUSR2, on_sig, NULL), 0);
    assert_int_equal(weft_add_signal_handler(b, SIGUSR2, on_sig, NULL), 0);
    weft_future *w = weft_signal_wait(a, SIGHUP);
    assert_non_null(w);
    weft_future *kept = weft_signal_wait(a, SIGUSR1);
    assert_non_null(kept);
    weft_future_unref(w); /* the loop holds it while pending */

    assert_int_equal(weft_loop_close(a), 0);
    assert_ptr_equal(current_handler(SIGUSR1), plain_handler);
    assert_ptr_equal(current_handler(SIGHUP), SIG_DFL);
    assert_true(current_handler(SIGUSR2) != plain_handler);     /* b still watches */
    assert_int_equal(weft_future_state_of(kept), WEFT_PENDING); /* never completes now */
    assert_int_equal(weft_remove_signal_handler(a, SIGUSR1), 0);
    assert_int_equal(weft_add_signal_handler(a, SIGUSR1, on_sig, NULL), WEFT_ECLOSED);

    assert_int_equal(raise(SIGUSR2), 0);
    step(b);
    assert_int_equal(g_seen.calls[SIGUSR2], 1);
    assert_ptr_equal(g_seen.last_loop, b);
    weft_future_unref(kept);
    assert_int_equal(weft_loop_destroy(b), 0);
    assert_ptr_equal(current_handler(SIGUSR2), plain_handler);
    finish(a);
}

/* ---- several loops, several threads ------------------------------------------------------ */

typedef struct thread_loop {
    const char *backend;
    bool block; /* block the signal in this thread */
    pthread_barrier_t *ready;
    weft_loop *loop;
    pthread_t self;
    int calls;
    bool right_thread;
    int rc;
} thread_loop;

static void thread_on_sig(weft_loop *loop, int signo, void *ud)
{
    thread_loop *t = ud;
    t->calls += signo == SIGUSR1;
    t->right_thread = pthread_equal(pthread_self(), t->self) != 0;
    weft_loop_stop(loop);
}

static void *thread_main(void *arg)
{
    thread_loop *t = arg;
    t->self = pthread_self();
    if (t->block) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }
    weft_loop_options o = loop_options(t->backend, 0);
    t->rc = weft_loop_new(&t->loop, &o);
    if (!t->rc)
        t->rc = weft_add_signal_handler(t->loop, SIGUSR1, thread_on_sig, t);
    pthread_barrier_wait(t->ready);
    if (!t->rc)
        t->rc = weft_loop_run_forever(t->loop); /* until its handler stops it */
    pthread_barrier_wait(t->ready);             /* both done before either loop goes */
    weft_loop_destroy(t->loop);
    return NULL;
}

static void two_loops_in_two_threads(const char *backend, bool block)
{
    reset_seen();
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, 3);
    thread_loop t[2] = {{.backend = backend, .block = block, .ready = &ready},
                        {.backend = backend, .block = block, .ready = &ready}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &t[i]), 0);
    pthread_barrier_wait(&ready); /* both handlers are installed */
    assert_int_equal(t[0].rc, 0);
    assert_int_equal(t[1].rc, 0);
    /* process-directed: one thread takes it (this one, if the others block it) */
    assert_int_equal(kill(getpid(), SIGUSR1), 0);
    pthread_barrier_wait(&ready);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(t[i].rc, 0);
        assert_int_equal(t[i].calls, 1);
        assert_true(t[i].right_thread);
    }
    pthread_barrier_destroy(&ready);
    assert_ptr_equal(current_handler(SIGUSR1), SIG_DFL); /* the last loop gave it back */
    assert_int_equal(alloc_live(), 0);
}

static void test_signal_two_loops_two_threads_each_get_it(void **state)
{
    two_loops_in_two_threads(*state, false);
}

/* The loops' threads block the signal: the main thread takes it, and its
 * handler still wakes both loops. */
static void test_signal_two_loops_in_threads_that_block_it(void **state)
{
    two_loops_in_two_threads(*state, true);
}

/* Loops come and go while another thread takes a stream of signals: the
 * handler, running in that thread, walks the list of loops while they
 * leave it (ASan and TSan check that it never touches a freed state). */
static atomic_bool g_stop_sender;
static atomic_int g_sent;

static void *sender_main(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* it inherited the main thread's block */
    while (!atomic_load(&g_stop_sender)) {
        kill(getpid(), SIGUSR1); /* only this thread has it unblocked: it runs the handler */
        atomic_fetch_add(&g_sent, 1);
        sched_yield();
    }
    return NULL;
}

static void test_signal_loops_close_while_another_thread_takes_signals(void **state)
{
    reset_seen();
    install_plain(SIGUSR1); /* what comes back at the end */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    weft_loop *keeper = loop_on(*state, 0); /* keeps weft's handler installed throughout */
    assert_int_equal(weft_add_signal_handler(keeper, SIGUSR1, on_sig, NULL), 0);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
    atomic_store(&g_stop_sender, false);
    atomic_store(&g_sent, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sender_main, NULL), 0);
    for (int i = 0; i < 1000; i++) {
        weft_loop *l = new_loop(*state, 0);
        assert_int_equal(weft_add_signal_handler(l, SIGUSR1, on_sig, NULL), 0);
        if (i % 2)
            step(l);
        assert_int_equal(weft_loop_destroy(l), 0);
    }
    while (atomic_load(&g_sent) < 10) /* the sender did run */
        sched_yield();
    atomic_store(&g_stop_sender, true);
    assert_int_equal(pthread_join(th, NULL), 0);
    step(keeper);
    assert_true(g_seen.calls[SIGUSR1] >= 1);
    finish(keeper);
    assert_ptr_equal(current_handler(SIGUSR1), plain_handler);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0); /* a pending one: plain */
}

/* ---- signal waits ------------------------------------------------------------------------ */

static void test_signal_wait_completes_at_the_next_delivery(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    reset_seen();
    weft_future *f = weft_signal_wait(loop, SIGUSR1);
    assert_non_null(f);
    assert_true(current_handler(SIGUSR1) != SIG_DFL);
    step(loop);
    assert_int_equal(weft_future_state_of(f), WEFT_PENDING);
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    step(loop);
    assert_int_equal(weft_future_state_of(f), WEFT_DONE);
    weft_value v = {0};
    assert_int_equal(weft_future_result(f, &v), 0);
    assert_int_equal(v.i, SIGUSR1);
    weft_future_unref(f);
    assert_ptr_equal(current_handler(SIGUSR1), SIG_DFL); /* the last user went */
    finish(loop);
}

struct await_signal {
    WEFT_FRAME(int);
};

WEFT_ASYNC(await_signal)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_signal_wait(weft_task_loop(task), SIGUSR2));
    self->result = (int)WEFT_RESULT(self).i;
    WEFT_END;
}

static void test_a_task_awaits_a_signal(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    weft_task *t = WEFT_SPAWN(loop, await_signal);
    assert_non_null(t);
    step(loop); /* parked on the wait */
    assert_false(weft_future_done(t));
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), SIGUSR2);
    weft_future_unref(t);
    finish(loop);
}

/* Waiters and the handler of one signal share a delivery; a wait made by
 * the handler waits for the next one. */
static weft_future *g_made;

static void make_wait(weft_loop *loop, int signo, void *ud)
{
    (void)ud;
    g_seen.calls[signo]++;
    if (!g_made)
        g_made = weft_signal_wait(loop, signo);
}

static void test_waiters_and_the_handler_share_a_delivery(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    reset_seen();
    g_made = NULL;
    weft_future *w1 = weft_signal_wait(loop, SIGUSR1);
    weft_future *w2 = weft_signal_wait(loop, SIGUSR1);
    weft_future *other = weft_signal_wait(loop, SIGUSR2);
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, make_wait, NULL), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    step(loop);
    assert_int_equal(g_seen.calls[SIGUSR1], 1);
    assert_int_equal(weft_future_state_of(w1), WEFT_DONE);
    assert_int_equal(weft_future_state_of(w2), WEFT_DONE);
    assert_int_equal(weft_future_state_of(other), WEFT_PENDING);
    assert_non_null(g_made);
    assert_int_equal(weft_future_state_of(g_made), WEFT_PENDING);
    assert_int_equal(raise(SIGUSR1), 0);
    step(loop);
    assert_int_equal(weft_future_state_of(g_made), WEFT_DONE);
    assert_int_equal(g_seen.calls[SIGUSR1], 2);
    weft_future_unref(w1);
    weft_future_unref(w2);
    weft_future_unref(g_made);
    assert_int_equal(weft_future_cancel(other), 0);
    weft_future_unref(other);
    finish(loop);
}

static void test_cancelling_a_wait_removes_its_waiter(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    reset_seen();
    install_plain(SIGUSR1);
    weft_future *f = weft_signal_wait(loop, SIGUSR1);
    assert_non_null(f);
    assert_true(current_handler(SIGUSR1) != plain_handler);
    assert_int_equal(weft_future_cancel(f), 0);
    assert_int_equal(weft_future_state_of(f), WEFT_CANCELLED);
    assert_ptr_equal(current_handler(SIGUSR1), plain_handler); /* no user left */
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(g_plain[SIGUSR1], 1);
    step(loop);
    weft_future_unref(f);

    /* a task cancelled while it awaits: its wait goes with it */
    weft_task *t = WEFT_SPAWN(loop, await_signal);
    step(loop);
    assert_true(current_handler(SIGUSR2) != SIG_DFL);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_ptr_equal(current_handler(SIGUSR2), SIG_DFL);
    weft_future_unref(t);

    /* a wait beside a handler: cancelling it keeps the handler */
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, on_sig, NULL), 0);
    f = weft_signal_wait(loop, SIGUSR1);
    assert_int_equal(weft_future_cancel(f), 0);
    weft_future_unref(f);
    assert_int_equal(raise(SIGUSR1), 0);
    step(loop);
    assert_int_equal(g_seen.calls[SIGUSR1], 1);
    assert_int_equal(g_plain[SIGUSR1], 1);
    finish(loop);
}

/* ---- refusals and bad input -------------------------------------------------------------- */

static void test_uncatchable_and_owned_signals_are_refused(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    reset_seen();
    assert_int_equal(weft_add_signal_handler(loop, SIGKILL, on_sig, NULL), -EINVAL);
    assert_int_equal(weft_add_signal_handler(loop, SIGSTOP, on_sig, NULL), -EINVAL);
    assert_int_equal(weft_add_signal_handler(loop, SIGCHLD, on_sig, NULL), -EPERM);
    assert_int_equal(weft_remove_signal_handler(loop, SIGKILL), -EINVAL);
    assert_int_equal(weft_remove_signal_handler(loop, SIGCHLD), -EPERM);
    assert_null(weft_signal_wait(loop, SIGSTOP));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_signal_wait(loop, SIGCHLD));
    assert_int_equal(weft_last_error(), -EPERM);
    const int bad[] = {0, -1, T_NSIG, 1000, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(weft_add_signal_handler(loop, bad[i], on_sig, NULL), -EINVAL);
        assert_int_equal(weft_remove_signal_handler(loop, bad[i]), -EINVAL);
        assert_null(weft_signal_wait(loop, bad[i]));
        assert_int_equal(weft_last_error(), -EINVAL);
    }
    assert_ptr_equal(current_handler(SIGCHLD), SIG_DFL);

    /* the process layer's door allows SIGCHLD */
    assert_int_equal(weft__signal_add(loop, SIGCHLD, on_sig, NULL), 0);
    assert_int_equal(raise(SIGCHLD), 0);
    step(loop);
    assert_int_equal(g_seen.calls[SIGCHLD], 1);
    assert_int_equal(weft__signal_add(loop, SIGKILL, on_sig, NULL), -EINVAL);
    assert_int_equal(weft__signal_remove(loop, SIGCHLD), 1);
    assert_int_equal(weft__signal_remove(loop, SIGCHLD), 0);
    assert_ptr_equal(current_handler(SIGCHLD), SIG_DFL);
    finish(loop);
}

#if defined(__GLIBC__)
/* glibc keeps signals 32 and 33 for itself: sigaction refuses them, and
 * the refusal changes nothing. */
static void test_a_signal_sigaction_refuses_changes_nothing(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    assert_int_equal(weft_add_signal_handler(loop, 32, on_sig, NULL), -EINVAL);
    assert_null(weft_signal_wait(loop, 32));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_int_equal(weft_remove_signal_handler(loop, 32), 0);
    finish(loop);
}
#endif

static void test_bad_arguments_are_refused(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    assert_int_equal(weft_add_signal_handler(NULL, SIGUSR1, on_sig, NULL), -EINVAL);
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, NULL, NULL), -EINVAL);
    assert_int_equal(weft_remove_signal_handler(NULL, SIGUSR1), -EINVAL);
    assert_null(weft_signal_wait(NULL, SIGUSR1));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_int_equal(weft__signal_add(NULL, SIGCHLD, on_sig, NULL), -EINVAL);
    assert_int_equal(weft__signal_remove(NULL, SIGCHLD), -EINVAL);
    assert_ptr_equal(current_handler(SIGUSR1), SIG_DFL);

    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, on_sig, NULL), WEFT_ECLOSED);
    assert_null(weft_signal_wait(loop, SIGUSR1));
    assert_int_equal(weft_last_error(), WEFT_ECLOSED);
    assert_int_equal(weft_remove_signal_handler(loop, SIGUSR1), 0); /* nothing there */
    assert_ptr_equal(current_handler(SIGUSR1), SIG_DFL);
    finish(loop);
}

/* The debug thread check: another thread may not touch a running loop's
 * handlers. */
typedef struct intruder {
    weft_loop *loop;
    int add, remove, wait;
} intruder;

static void *intrude(void *arg)
{
    intruder *in = arg;
    in->add = weft_add_signal_handler(in->loop, SIGUSR1, on_sig, NULL);
    in->remove = weft_remove_signal_handler(in->loop, SIGUSR1);
    weft_future *f = weft_signal_wait(in->loop, SIGUSR1);
    in->wait = f ? 0 : weft_last_error();
    weft_future_unref(f);
    return NULL;
}

static void run_intruder(void *arg)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, intrude, arg), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

static void test_debug_loop_refuses_other_threads(void **state)
{
    weft_loop *loop = loop_on(*state, WEFT_LOOP_DEBUG);
    intruder in = {.loop = loop};
    assert_int_equal(weft_call_soon(loop, run_intruder, &in, NULL), 0);
    step(loop);
    assert_int_equal(in.add, -EPERM);
    assert_int_equal(in.remove, -EPERM);
    assert_int_equal(in.wait, -EPERM);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_MISUSE], 3);
    assert_ptr_equal(current_handler(SIGUSR1), SIG_DFL);
    finish(loop);
}

/* ---- allocation failures and fd limits --------------------------------------------------- */

static void test_every_allocation_failure_is_survived(void **state)
{
    /* weft_add_signal_handler: the signal state, the fd table's growth */
    int failures = 0;
    for (long k = 1;; k++) {
        weft_loop *loop = loop_on(*state, 0);
        alloc_fail_at(alloc_calls() + k);
        int rc = weft_add_signal_handler(loop, SIGUSR1, on_sig, NULL);
        alloc_fail_at(0);
        if (rc == 0) {
            assert_true(current_handler(SIGUSR1) != SIG_DFL);
            finish(loop);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_ptr_equal(current_handler(SIGUSR1), SIG_DFL);
        /* (a grown fd table stays with the loop; finish() checks the rest) */
        failures++;
        finish(loop);
    }
    assert_true(failures >= 1);

    /* weft_signal_wait: the future layer, its pool, the signal state */
    failures = 0;
    for (long k = 1;; k++) {
        weft_loop *loop = loop_on(*state, 0);
        alloc_fail_at(alloc_calls() + k);
        weft_future *f = weft_signal_wait(loop, SIGUSR2);
        alloc_fail_at(0);
        if (f) {
            assert_true(current_handler(SIGUSR2) != SIG_DFL);
            assert_int_equal(raise(SIGUSR2), 0);
            step(loop);
            assert_int_equal(weft_future_state_of(f), WEFT_DONE);
            weft_future_unref(f);
            finish(loop);
            break;
        }
        assert_int_equal(weft_last_error(), -ENOMEM);
        assert_ptr_equal(current_handler(SIGUSR2), SIG_DFL);
        failures++;
        finish(loop);
    }
    assert_true(failures >= 2);
}

static void test_an_fd_limit_is_reported_and_survived(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int lowest = dup(0); /* the lowest free fd: the pipe would need it and one more */
    assert_true(lowest >= 0);
    close(lowest);
    low = old;
    low.rlim_cur = (rlim_t)lowest;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int rc = weft_add_signal_handler(loop, SIGUSR1, on_sig, NULL);
    weft_future *f = weft_signal_wait(loop, SIGUSR1);
    int werr = weft_last_error();
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(rc, -EMFILE);
    assert_null(f);
    assert_int_equal(werr, -EMFILE);
    assert_ptr_equal(current_handler(SIGUSR1), SIG_DFL);
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, on_sig, NULL), 0);
    finish(loop);
}

/* ---- dump -------------------------------------------------------------------------------- */

static void test_dump_lists_the_watched_signals(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    assert_int_equal(weft_add_signal_handler(loop, SIGUSR1, on_sig, NULL), 0);
    weft_future *f = weft_signal_wait(loop, SIGUSR2);
    assert_int_equal(weft_loop_request_dump(loop), 0);
    step(loop);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_DUMP], 1);
    char want[128];
    snprintf(want, sizeof want, "signals watched: %d (handler, 0 waiters) %d (1 waiter)", SIGUSR1,
             SIGUSR2);
    if (!strstr(g_hook.msg, want))
        fail_msg("dump: [%s] lacks [%s]", g_hook.msg, want);
    assert_int_equal(weft_future_cancel(f), 0);
    weft_future_unref(f);
    finish(loop);
}

/* ---- WEFT_RUN's Ctrl-C ------------------------------------------------------------------- */

/* The child's main task: says it is ready through one pipe, then sleeps
 * "forever"; its cleanup writes to the other pipe what it found. */
static int g_ready_fd = -1, g_out_fd = -1;

static void say(int fd, const char *s)
{
    ssize_t n = write(fd, s, strlen(s));
    (void)n;
}

/* "dfl", "ign" or "weft" (anything else): signo's disposition now. */
static const char *disposition(int signo)
{
    struct sigaction cur;
    sigaction(signo, NULL, &cur);
    return cur.sa_handler == SIG_DFL ? "dfl" : cur.sa_handler == SIG_IGN ? "ign" : "weft";
}

struct ctrl_c_main {
    WEFT_FRAME(int);
    bool swallow; /* catch the cancellation (and uncancel): end normally */
    bool at_once; /* report the dispositions and return at once */
    weft_try t;
    int err;
};

WEFT_ASYNC(ctrl_c_main)
{
    WEFT_BEGIN(self);
    say(g_ready_fd, "r");
    if (self->at_once) {
        WEFT_RETURN(self, 0);
    } else if (self->swallow) {
        WEFT_TRY(self, t);
        WEFT_AWAIT(self, weft_sleep(weft_task_loop(task), 3600));
        WEFT_EXCEPT_CANCEL(self, t, self->err);
        if (self->err == -ECANCELED && weft_task_uncancel(task) == 0)
            say(g_out_fd, "caught\n");
    } else {
        WEFT_AWAIT(self, weft_sleep(weft_task_loop(task), 3600));
        say(g_out_fd, "not cancelled\n");
    }
    WEFT_FINALLY;
    {
        char line[96];
        snprintf(line, sizeof line, "cleanup%s, INT %s TERM %s\n",
                 self->co.err == -ECANCELED ? " after cancel" : "", disposition(SIGINT),
                 disposition(SIGTERM));
        say(g_out_fd, line);
    }
    WEFT_END;
}

typedef struct child_run {
    pid_t pid;
    int ready, out; /* the parent's ends */
} child_run;

/* Fork a child that runs WEFT_RUN_OPTS(flags) with ctrl_c_main; it exits
 * with what WEFT_RUN returned (255 for a negative code). */
static child_run start_child(unsigned flags, bool swallow, bool at_once, void (*before)(void))
{
    int rp[2], op[2];
    assert_int_equal(pipe(rp), 0);
    assert_int_equal(pipe(op), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(rp[0]);
        close(op[0]);
        g_ready_fd = rp[1];
        g_out_fd = op[1];
        signal(SIGINT, SIG_DFL); /* whatever the test runner had */
        signal(SIGTERM, SIG_DFL);
        if (before)
            before();
        weft_run_options ro = {.flags = flags};
        int rc = WEFT_RUN_OPTS(&ro, NULL, ctrl_c_main, .swallow = swallow, .at_once = at_once);
        char line[64];
        snprintf(line, sizeof line, "rc %d\n", rc);
        say(g_out_fd, line);
        _exit(rc < 0 ? 255 : rc);
    }
    close(rp[1]);
    close(op[1]);
    return (child_run){pid, rp[0], op[0]};
}

/* Wait for the child's readiness byte, or its end. */
static void wait_ready(child_run *c)
{
    char b;
    ssize_t n;
    while ((n = read(c->ready, &b, 1)) < 0 && errno == EINTR)
        ;
    assert_int_equal(n, 1);
}

/* Everything the child wrote, and its wait status. */
static int finish_child(child_run *c, char *out, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = read(c->out, out + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    int status = 0;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
        ;
    close(c->ready);
    close(c->out);
    return status;
}

static void test_weft_run_cancels_main_on_sigint_and_exits_130(void **state)
{
    (void)state;
    child_run c = start_child(WEFT_RUN_CANCEL_ON_SIGNALS, false, false, NULL);
    wait_ready(&c);
    assert_int_equal(kill(c.pid, SIGINT), 0);
    char out[256];
    int status = finish_child(&c, out, sizeof out);
    assert_string_equal(out, "cleanup after cancel, INT dfl TERM dfl\nrc 130\n");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 130);
}

static void test_weft_run_cancels_main_on_sigterm_and_exits_143(void **state)
{
    (void)state;
    child_run c = start_child(WEFT_RUN_CANCEL_ON_SIGNALS, false, false, NULL);
    wait_ready(&c);
    assert_int_equal(kill(c.pid, SIGTERM), 0);
    char out[256];
    int status = finish_child(&c, out, sizeof out);
    assert_string_equal(out, "cleanup after cancel, INT dfl TERM dfl\nrc 143\n");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 128 + SIGTERM);
}

/* asyncio.run: a main task that catches the cancellation and returns has
 * its own outcome. */
static void test_weft_run_main_that_swallows_the_cancel_returns_its_value(void **state)
{
    (void)state;
    child_run c = start_child(WEFT_RUN_CANCEL_ON_SIGNALS, true, false, NULL);
    wait_ready(&c);
    assert_int_equal(kill(c.pid, SIGINT), 0);
    char out[256];
    int status = finish_child(&c, out, sizeof out);
    assert_string_equal(out, "caught\ncleanup, INT dfl TERM dfl\nrc 0\n");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Without the option nothing is installed (no kill here: a child killed
 * under valgrind would report its threads as possibly lost). */
static void test_weft_run_without_the_option_installs_nothing(void **state)
{
    (void)state;
    child_run c = start_child(0, false, true, NULL);
    wait_ready(&c);
    char out[256];
    int status = finish_child(&c, out, sizeof out);
    assert_string_equal(out, "cleanup, INT dfl TERM dfl\nrc 0\n");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* and with it, they are weft's while the main task runs */
    c = start_child(WEFT_RUN_CANCEL_ON_SIGNALS, false, true, NULL);
    wait_ready(&c);
    status = finish_child(&c, out, sizeof out);
    assert_string_equal(out, "cleanup, INT weft TERM weft\nrc 0\n");
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A SIGINT the process ignores stays ignored (a background job): SIGTERM
 * still works. */
static void ignore_sigint(void)
{
    signal(SIGINT, SIG_IGN);
}

static void test_weft_run_leaves_an_ignored_sigint_ignored(void **state)
{
    (void)state;
    child_run c = start_child(WEFT_RUN_CANCEL_ON_SIGNALS, false, false, ignore_sigint);
    wait_ready(&c);
    assert_int_equal(kill(c.pid, SIGINT), 0); /* ignored */
    assert_int_equal(kill(c.pid, SIGTERM), 0);
    char out[256];
    int status = finish_child(&c, out, sizeof out);
    assert_string_equal(out, "cleanup after cancel, INT ign TERM dfl\nrc 143\n");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 143);
}

static void test_weft_run_opts_refuses_unknown_flags(void **state)
{
    (void)state;
    weft_run_options ro = {.flags = 1u << 9};
    assert_int_equal(WEFT_RUN_OPTS(&ro, NULL, wt_nop), -EINVAL);
    assert_int_equal(WEFT_RUN_OPTS(NULL, NULL, wt_nop), 0);
    assert_ptr_equal(current_handler(SIGINT), SIG_DFL);
}

/* Every allocation of a WEFT_RUN_OPTS with the option may fail: the run
 * then fails with -ENOMEM (or survives it), frees everything and leaves
 * SIGINT and SIGTERM as they were. */
static void test_weft_run_opts_survives_every_allocation_failure(void **state)
{
    (void)state;
    weft_loop_options lo = loop_options(NULL, 0);
    weft_run_options ro = {.loop = &lo, .flags = WEFT_RUN_CANCEL_ON_SIGNALS};
    alloc_reset();
    assert_int_equal(WEFT_RUN_OPTS(&ro, NULL, wt_nop), 0);
    long total = alloc_calls();
    assert_true(total > 3);
    int failed = 0;
    for (long k = 1; k <= total; k++) {
        alloc_reset();
        alloc_fail_at(k);
        int rc = WEFT_RUN_OPTS(&ro, NULL, wt_nop);
        alloc_fail_at(0);
        if (rc != 0) {
            assert_int_equal(rc, -ENOMEM);
            failed++;
        }
        assert_int_equal(alloc_live(), 0);
        assert_ptr_equal(current_handler(SIGINT), SIG_DFL);
        assert_ptr_equal(current_handler(SIGTERM), SIG_DFL);
    }
    assert_true(failed >= 3); /* the loop, the task, the signal state at least */
}

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
#define ON_BOTH(f) ON_EPOLL(f) ON_KQUEUE(f) ON(f, "poll")

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* delivery */
        ON_BOTH(test_handler_runs_on_the_loop_with_the_signal_number),
        ON_BOTH(test_a_burst_gives_one_call),
        ON_BOTH(test_a_blocked_burst_gives_one_call),
        ON_BOTH(test_two_signals_in_one_burst_each_get_their_call),
        ON_BOTH(test_deliveries_before_the_handler_do_not_count),
        ON_BOTH(test_replacing_a_handler),
        ON_BOTH(test_a_handler_may_remove_itself),
        /* dispositions */
        ON_BOTH(test_remove_restores_the_previous_disposition),
        ON_BOTH(test_loop_close_removes_its_handlers_and_waiters),
        /* threads */
        ON_BOTH(test_signal_two_loops_two_threads_each_get_it),
        ON_BOTH(test_signal_two_loops_in_threads_that_block_it),
        ON_BOTH(test_signal_loops_close_while_another_thread_takes_signals),
        /* waits */
        ON_BOTH(test_signal_wait_completes_at_the_next_delivery),
        ON_BOTH(test_a_task_awaits_a_signal),
        ON_BOTH(test_waiters_and_the_handler_share_a_delivery),
        ON_BOTH(test_cancelling_a_wait_removes_its_waiter),
        /* refusals, bad input, failures */
        ON_BOTH(test_uncatchable_and_owned_signals_are_refused),
#if defined(__GLIBC__)
        ON_BOTH(test_a_signal_sigaction_refuses_changes_nothing),
#endif
        ON_BOTH(test_bad_arguments_are_refused),
        ON_BOTH(test_debug_loop_refuses_other_threads),
        ON_BOTH(test_every_allocation_failure_is_survived),
        ON_BOTH(test_an_fd_limit_is_reported_and_survived),
        ON_BOTH(test_dump_lists_the_watched_signals),
        /* WEFT_RUN */
        T(test_weft_run_cancels_main_on_sigint_and_exits_130),
        T(test_weft_run_cancels_main_on_sigterm_and_exits_143),
        T(test_weft_run_main_that_swallows_the_cancel_returns_its_value),
        T(test_weft_run_without_the_option_installs_nothing),
        T(test_weft_run_leaves_an_ignored_sigint_ignored),
        T(test_weft_run_opts_refuses_unknown_flags),
        T(test_weft_run_opts_survives_every_allocation_failure),
    };
    return RUN_TESTS(tests);
}
