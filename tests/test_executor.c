/* test_executor.c - the executor: to_thread, explicit executors, shutdown,
 * loop close, allocation failures, getaddrinfo and getnameinfo.
 *
 * No test sleeps to synchronise: blocking jobs wait on gates (a mutex, a
 * condition variable and a counter) that the test opens, the loop blocks
 * in its backend until a completion wakes it, and the executor's
 * before-wait seam says exactly when close or shutdown starts waiting.
 * Loops use the real clock (nothing here waits on a timer) and a watched
 * allocator: a test that leaves a worker to finish on its own (an
 * abandoned job, a detached worker) waits until every block came back.
 */
#include "weft_test.h"

#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>

#include "executor_internal.h"

/* ---- gates: counters threads wait on ----------------------------------------------------- */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int value;
} gate;

static void gate_init(gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->value = 0;
}

static void gate_add(gate *g, int k)
{
    pthread_mutex_lock(&g->mu);
    g->value += k;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_wait(gate *g, int at_least)
{
    pthread_mutex_lock(&g->mu);
    while (g->value < at_least)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static int gate_get(gate *g)
{
    pthread_mutex_lock(&g->mu);
    int v = g->value;
    pthread_mutex_unlock(&g->mu);
    return v;
}

/* The before-wait seam: opens the gate it is given. */
static void open_gate(void *g)
{
    gate_add(g, 1);
}

/* ---- a watched allocator: wait until every block came back ------------------------------- */

static pthread_mutex_t g_wmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wcv = PTHREAD_COND_INITIALIZER;

static void *watch_realloc(void *ud, void *p, size_t n)
{
    void *r = count_realloc(ud, p, n);
    if (n == 0 && p) {
        pthread_mutex_lock(&g_wmu);
        pthread_cond_broadcast(&g_wcv);
        pthread_mutex_unlock(&g_wmu);
    }
    return r;
}

static const weft_allocator watched = {watch_realloc, &g_alloc};

/* Block until no block is live (workers finishing on their own free the
 * last ones).  A leak never frees: after 10 s the caller's assert on
 * alloc_live() fails with the count instead of the watchdog killing the
 * test (a safety net, not a synchronisation: a passing test never waits
 * for it). */
static void wait_all_freed(void)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&g_wmu);
    while (alloc_live() > 0)
        if (pthread_cond_timedwait(&g_wcv, &g_wmu, &until) != 0)
            break;
    pthread_mutex_unlock(&g_wmu);
}

/* A loop on the real clock with the watched allocator, reporting into
 * g_hook; it becomes g_loop. */
static weft_loop *xloop_flags(unsigned flags)
{
    weft_loop_options o = loop_options(NULL, flags);
    o.alloc = watched;
    weft_loop *loop = NULL;
    assert_int_equal(weft_loop_new(&loop, &o), 0);
    assert_int_equal(weft_loop_set_report_hook(loop, record_report, NULL), 0);
    g_loop = loop;
    return loop;
}

static weft_loop *xloop(void)
{
    return xloop_flags(0);
}

/* Destroy the loop and wait until everything was freed. */
static void xfinish(weft_loop *loop)
{
    assert_int_equal(weft_loop_destroy(loop), 0);
    g_loop = NULL;
    wait_all_freed();
    assert_int_equal(alloc_live(), 0);
    assert_int_equal(g_hook.count, g_hook.expect);
}

static weft_executor *xexecutor(unsigned threads)
{
    weft_executor *ex = NULL;
    weft_executor_options o = {.threads = threads, .alloc = watched};
    assert_int_equal(weft_executor_new(&ex, &o), 0);
    assert_non_null(ex);
    return ex;
}

static weft_executor_stats xstats(weft_executor *ex)
{
    weft_executor_stats st;
    assert_int_equal(weft_executor_get_stats(ex, &st), 0);
    return st;
}

/* Give the default executor of loop `threads` workers. */
static void default_threads(weft_loop *loop, unsigned threads, int64_t close_timeout_ns)
{
    weft_executor_options o = {.threads = threads, .close_timeout_ns = close_timeout_ns};
    assert_int_equal(weft_executor_set_default_options(loop, &o), 0);
}

/* Run loop iterations until f is done, without observing its outcome. */
static void run_until_done(weft_loop *loop, weft_future *f)
{
    while (!weft_future_done(f))
        assert_int_equal(weft_loop_run_once(loop), 0);
}

static int64_t value_i(weft_future *f)
{
    weft_value v = {0};
    assert_int_equal(weft_future_result(f, &v), 0);
    return v.i;
}

/* ---- jobs -------------------------------------------------------------------------------- */

/* Returns its argument as an integer. */
static int job_value(void *arg, weft_value *out)
{
    out->i = (int64_t)(intptr_t)arg;
    return 0;
}

/* Returns its argument as an error code. */
static int job_error(void *arg, weft_value *out)
{
    (void)out;
    return (int)(intptr_t)arg;
}

/* Records that it ran (an atomic counter) and returns 1. */
static int job_count(void *arg, weft_value *out)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
    out->i = 1;
    return 0;
}

/* Records the thread it ran on. */
typedef struct probe {
    pthread_t thread;
    int64_t value;
} probe;

static int job_probe(void *arg, weft_value *out)
{
    probe *p = arg;
    p->thread = pthread_self();
    out->i = p->value;
    return 0;
}

/* Signals `started`, waits for `release`, returns value (or a pointer to
 * a malloc'd copy of it, for the _ptr form). */
typedef struct blocker {
    gate started, release, finished;
    int64_t value;
} blocker;

static void blocker_init(blocker *b, int64_t value)
{
    gate_init(&b->started);
    gate_init(&b->release);
    gate_init(&b->finished);
    b->value = value;
}

static int job_block(void *arg, weft_value *out)
{
    blocker *b = arg;
    gate_add(&b->started, 1);
    gate_wait(&b->release, 1);
    out->i = b->value;
    gate_add(&b->finished, 1);
    return 0;
}

static int job_block_ptr(void *arg, weft_value *out)
{
    blocker *b = arg;
    gate_add(&b->started, 1);
    gate_wait(&b->release, 1);
    int64_t *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    *p = b->value;
    out->p = p;
    gate_add(&b->finished, 1);
    return 0;
}

/* The destructor of job_block_ptr's results: records where it ran. */
static gate g_dtor;
static pthread_t g_dtor_thread;
static int64_t g_dtor_value;

static void rec_free(void *p)
{
    g_dtor_thread = pthread_self();
    g_dtor_value = *(int64_t *)p;
    free(p);
    gate_add(&g_dtor, 1);
}

static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 60});
    gate_init(&g_dtor);
    return 0;
}

/* =============================================================================
 * Results and errors cross back
 * ========================================================================== */

static pthread_t g_cb_thread;
static weft_loop *g_cb_loop;

static void on_done(weft_future *f, void *arg)
{
    (void)f, (void)arg;
    g_cb_thread = pthread_self();
    g_cb_loop = weft_running_loop();
}

/* The function runs on a worker; the value, the future's completion and
 * its callbacks are on the loop's thread. */
static void test_to_thread_value_crosses_back_to_the_loop_thread(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    probe p = {.value = 42};
    weft_future *f = weft_to_thread(loop, job_probe, &p);
    assert_non_null(f);
    assert_false(weft_future_done(f)); /* never inline */
    assert_int_equal(weft_future_add_done_callback(f, on_done, NULL), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    assert_int_equal(value_i(f), 42);
    assert_false(pthread_equal(p.thread, pthread_self()));
    assert_true(pthread_equal(g_cb_thread, pthread_self()));
    assert_ptr_equal(g_cb_loop, loop);
    weft_future_unref(f);
    xfinish(loop);
}

/* A negative code fails the future with it; -ECANCELED cancels it; weft's
 * own codes pass through. */
static void test_to_thread_error_codes_cross_back(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    const int codes[] = {-EIO, -ENOENT, WEFT_EAI_NONAME, WEFT_ERR_MIN, -1};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        weft_future *f = weft_to_thread(loop, job_error, (void *)(intptr_t)codes[i]);
        assert_non_null(f);
        assert_int_equal(weft_loop_run_until_complete(loop, f), codes[i]);
        assert_false(weft_future_cancelled(f));
        weft_future_unref(f);
    }
    weft_future *c = weft_to_thread(loop, job_error, (void *)(intptr_t)-ECANCELED);
    assert_int_equal(weft_loop_run_until_complete(loop, c), -ECANCELED);
    assert_true(weft_future_cancelled(c));
    weft_future_unref(c);
    xfinish(loop);
}

/* A return value that is neither 0 nor an error code is a bug of the
 * function: -ERANGE, and a MISUSE report naming the job. */
static void test_invalid_return_value_fails_with_erange_and_is_reported(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    const int bad[] = {1, 4096, WEFT_ERR_MIN - 1};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        weft_future *f = weft_to_thread(loop, job_error, (void *)(intptr_t)bad[i]);
        assert_int_equal(weft_loop_run_until_complete(loop, f), -ERANGE);
        weft_future_unref(f);
    }
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_MISUSE], 3);
    assert_non_null(strstr(g_hook.msg, "returned"));
    g_hook.expect = 3;
    xfinish(loop);
}

/* A pointer result with a destructor belongs to the future: destroyed
 * when the future goes, unless taken. */
static void test_pointer_result_is_owned_by_the_future(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    blocker b;
    blocker_init(&b, 7);
    gate_add(&b.release, 1); /* never blocks */
    weft_future *f = weft_executor_submit_ptr(NULL, loop, job_block_ptr, &b, rec_free);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    assert_int_equal(gate_get(&g_dtor), 0);
    weft_future_unref(f); /* nobody took it */
    assert_int_equal(gate_get(&g_dtor), 1);
    assert_int_equal(g_dtor_value, 7);

    f = weft_executor_submit_ptr(NULL, loop, job_block_ptr, &b, rec_free);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    int64_t *p = weft_future_take_ptr(f);
    assert_non_null(p);
    assert_int_equal(*p, 7);
    weft_future_unref(f);
    assert_int_equal(gate_get(&g_dtor), 1); /* taken: not destroyed */
    free(p);
    xfinish(loop);
}

/* A failure nobody retrieved is reported when the future goes, naming
 * the job. */
static void test_unobserved_job_failure_is_reported(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    weft_future *f = weft_to_thread(loop, job_error, (void *)(intptr_t)-EIO);
    run_until_done(loop, f);
    weft_future_unref(f);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_UNOBSERVED], 1);
    assert_int_equal(g_hook.err, -EIO);
    assert_non_null(strstr(g_hook.msg, "job"));
    g_hook.expect = 1;
    xfinish(loop);
}

/* The executor completes a job's future; users cannot. */
static void test_job_future_is_not_settable(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    weft_future *f = weft_to_thread(loop, job_value, TAG(3));
    assert_int_equal(weft_future_set_int(f, 1), WEFT_ESTATE);
    assert_int_equal(weft_future_set_error(f, -EIO), WEFT_ESTATE);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    assert_int_equal(value_i(f), 3);
    weft_future_unref(f);
    xfinish(loop);
}

/* =============================================================================
 * Many jobs
 * ========================================================================== */

enum { NJOBS = 1000 };
static int g_seen[NJOBS];
static int g_order[NJOBS];
static int g_nseen;

static void on_seen(weft_future *f, void *arg)
{
    (void)f;
    int i = (int)(intptr_t)arg;
    g_seen[i]++;
    g_order[g_nseen++] = i;
}

/* A thousand jobs on four workers: every future completes exactly once
 * with its own value, none is lost, the pool never exceeds its size. */
static void test_thousand_jobs_complete_each_exactly_once(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    weft_future **fs = calloc(NJOBS, sizeof *fs);
    assert_non_null(fs);
    for (int i = 0; i < NJOBS; i++) {
        fs[i] = weft_to_thread(loop, job_value, (void *)(intptr_t)(i * 3));
        assert_non_null(fs[i]);
        assert_int_equal(weft_future_add_done_callback(fs[i], on_seen, (void *)(intptr_t)i), 0);
    }
    while (g_nseen < NJOBS)
        assert_int_equal(weft_loop_run_once(loop), 0);
    for (int i = 0; i < NJOBS; i++) {
        assert_int_equal(g_seen[i], 1);
        assert_int_equal(value_i(fs[i]), i * 3);
        weft_future_unref(fs[i]);
    }
    weft_executor_stats st = xstats(weft_executor_default(loop));
    assert_int_equal(st.completed, NJOBS);
    assert_true(st.threads >= 1 && st.threads <= WEFT_EXECUTOR_DEFAULT_THREADS);
    assert_int_equal(st.max_threads, WEFT_EXECUTOR_DEFAULT_THREADS);
    free(fs);
    xfinish(loop);
}

/* On one worker, jobs run and complete in submission order (the FIFO),
 * and their futures complete in that order too (completion order). */
static void test_one_worker_runs_and_completes_jobs_in_fifo_order(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    default_threads(loop, 1, 0);
    weft_future **fs = calloc(NJOBS, sizeof *fs);
    assert_non_null(fs);
    for (int i = 0; i < NJOBS; i++) {
        fs[i] = weft_to_thread(loop, job_value, (void *)(intptr_t)i);
        assert_int_equal(weft_future_add_done_callback(fs[i], on_seen, (void *)(intptr_t)i), 0);
    }
    while (g_nseen < NJOBS)
        assert_int_equal(weft_loop_run_once(loop), 0);
    for (int i = 0; i < NJOBS; i++) {
        assert_int_equal(g_order[i], i);
        weft_future_unref(fs[i]);
    }
    assert_int_equal(xstats(weft_executor_default(loop)).threads, 1);
    free(fs);
    xfinish(loop);
}

/* A burst of completions costs the loop one wakeup: after the workers
 * finished 100 jobs, one iteration with one callback settles them all. */
static void test_a_burst_of_completions_is_one_wakeup(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    weft_executor *ex = xexecutor(1);
    weft_future *fs[100];
    for (int i = 0; i < 100; i++)
        fs[i] = weft_executor_submit(ex, loop, job_value, (void *)(intptr_t)i);
    assert_int_equal(weft_executor_shutdown(ex, true), 0); /* all ran */
    assert_int_equal(xstats(ex).completed, 100);
    uint64_t cb = stats(loop).callbacks;
    step(loop);
    assert_int_equal(stats(loop).callbacks - cb, 1);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(value_i(fs[i]), i);
        weft_future_unref(fs[i]);
    }
    assert_int_equal(weft_executor_free(ex), 0);
    xfinish(loop);
}

/* Threads start when work is queued and no worker is idle, up to the
 * executor's size and never beyond. */
static void test_threads_start_lazily_and_never_exceed_the_size(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    weft_executor *ex = xexecutor(3);
    assert_int_equal(xstats(ex).threads, 0);
    blocker b;
    blocker_init(&b, 1);
    weft_future *fs[10];
    for (int i = 0; i < 10; i++)
        fs[i] = weft_executor_submit(ex, loop, job_block, &b);
    gate_wait(&b.started, 3);
    weft_executor_stats st = xstats(ex);
    assert_int_equal(st.threads, 3);
    assert_int_equal(st.running, 3);
    assert_int_equal(st.queued, 7);
    gate_add(&b.release, 1);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(weft_loop_run_until_complete(loop, fs[i]), 0);
        weft_future_unref(fs[i]);
    }
    st = xstats(ex);
    assert_int_equal(st.threads, 3);
    assert_int_equal(st.idle, 3);
    assert_int_equal(st.completed, 10);
    assert_int_equal(weft_executor_shutdown(ex, true), 0);
    assert_int_equal(xstats(ex).threads, 0);
    assert_int_equal(weft_executor_free(ex), 0);
    xfinish(loop);
}

/* One job at a time never starts a second worker: the idle one takes it. */
static void test_sequential_jobs_reuse_one_idle_worker(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    weft_executor *ex = xexecutor(4);
    for (int i = 0; i < 20; i++) {
        weft_future *f = weft_executor_submit(ex, loop, job_value, TAG(i));
        assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
        weft_future_unref(f);
        /* the worker went idle before the loop could settle the job: it
         * keeps the executor's lock from the hand-off to its wait */
        assert_int_equal(xstats(ex).idle, 1);
    }
    assert_int_equal(xstats(ex).threads, 1);
    assert_int_equal(weft_executor_shutdown(ex, true), 0);
    assert_int_equal(weft_executor_free(ex), 0);
    xfinish(loop);
}

/* =============================================================================
 * Cancellation
 * ========================================================================== */

/* Cancelling a job nobody started removes it from the queue: the future
 * is CANCELLED at once and the function never runs. */
static void test_cancel_before_start_never_runs_the_function(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    default_threads(loop, 1, 0);
    blocker a;
    blocker_init(&a, 1);
    _Atomic int ran = 0;
    weft_future *fa = weft_to_thread(loop, job_block, &a);
    gate_wait(&a.started, 1);
    weft_future *fb = weft_to_thread(loop, job_count, &ran);
    assert_int_equal(xstats(weft_executor_default(loop)).queued, 1);
    assert_int_equal(weft_future_cancel(fb), 0);
    assert_true(weft_future_cancelled(fb)); /* at once, without the loop */
    assert_int_equal(xstats(weft_executor_default(loop)).queued, 0);
    weft_future_unref(fb);
    gate_add(&a.release, 1);
    assert_int_equal(weft_loop_run_until_complete(loop, fa), 0);
    weft_future_unref(fa);
    assert_int_equal(weft_executor_shutdown(weft_executor_default(loop), true), 0);
    assert_int_equal(atomic_load(&ran), 0);
    assert_int_equal(xstats(weft_executor_default(loop)).completed, 1);
    xfinish(loop);
}

/* Cancelling a running job cancels its future at once; the function runs
 * to its end and its result is destroyed on the loop's thread. */
static void test_cancel_while_running_releases_the_result_on_the_loop_thread(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    blocker b;
    blocker_init(&b, 9);
    weft_future *f = weft_executor_submit_ptr(NULL, loop, job_block_ptr, &b, rec_free);
    gate_wait(&b.started, 1);
    assert_int_equal(weft_future_cancel(f), 0);
    assert_true(weft_future_cancelled(f));
    weft_future_unref(f); /* the executor still holds it */
    gate_add(&b.release, 1);
    while (gate_get(&g_dtor) == 0)
        assert_int_equal(weft_loop_run_once(loop), 0); /* woken by the completion */
    assert_int_equal(gate_get(&g_dtor), 1);
    assert_true(pthread_equal(g_dtor_thread, pthread_self()));
    assert_int_equal(g_dtor_value, 9);
    xfinish(loop);
}

/* A task awaiting to_thread gets the value. */
struct thread_sum {
    WEFT_FRAME(int64_t);
    int64_t x;
};

WEFT_ASYNC(thread_sum)
{
    WEFT_BEGIN(self);
    WEFT_TO_THREAD(self, job_value, (void *)(intptr_t)self->x);
    WEFT_RETURN(self, WEFT_RESULT(self).i * 2);
    WEFT_END;
}

static void test_task_awaits_to_thread(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    weft_task *t = WEFT_SPAWN(loop, thread_sum, .x = 21);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 42);
    weft_future_unref(t);
    xfinish(loop);
}

/* Cancelling a task that awaits a queued job cancels the job: it leaves
 * the queue and never runs. */
struct await_job {
    WEFT_FRAME(int);
    weft_future *job;
};

WEFT_ASYNC(await_job)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, self->job);
    WEFT_END;
}

static void test_cancelling_a_task_cancels_its_queued_job(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    default_threads(loop, 1, 0);
    blocker a;
    blocker_init(&a, 1);
    _Atomic int ran = 0;
    weft_future *fa = weft_to_thread(loop, job_block, &a);
    gate_wait(&a.started, 1);
    weft_task *t = WEFT_SPAWN(loop, await_job, .job = weft_to_thread(loop, job_count, &ran));
    step(loop); /* the task parks on its job */
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(xstats(weft_executor_default(loop)).queued, 0);
    weft_future_unref(t);
    gate_add(&a.release, 1);
    assert_int_equal(weft_loop_run_until_complete(loop, fa), 0);
    weft_future_unref(fa);
    assert_int_equal(weft_executor_shutdown(weft_executor_default(loop), true), 0);
    assert_int_equal(atomic_load(&ran), 0);
    xfinish(loop);
}

/* =============================================================================
 * Shutdown
 * ========================================================================== */

/* shutdown(wait=true): the queued jobs still run; it returns once they
 * have and every worker was joined; their completions then reach the
 * loop.  Submitting afterwards fails with WEFT_ESHUTDOWN. */
static void test_shutdown_wait_runs_the_queue_and_joins(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    weft_executor *ex = xexecutor(1);
    blocker a;
    blocker_init(&a, 5);
    _Atomic int ran = 0;
    weft_future *fa = weft_executor_submit(ex, loop, job_block, &a);
    gate_wait(&a.started, 1);
    weft_future *fb = weft_executor_submit(ex, loop, job_count, &ran);
    weft_future *fc = weft_executor_submit(ex, loop, job_count, &ran);
    /* a is released only once shutdown waits */
    weft__executor_set_seams(ex, NULL, open_gate, &a.release);
    assert_int_equal(weft_executor_shutdown(ex, true), 0);
    assert_int_equal(gate_get(&a.release), 1);
    assert_int_equal(atomic_load(&ran), 2);
    weft_executor_stats st = xstats(ex);
    assert_int_equal(st.threads, 0);
    assert_int_equal(st.completed, 3);
    assert_true(st.shutdown);
    assert_null(weft_executor_submit(ex, loop, job_value, TAG(1)));
    assert_int_equal(weft_last_error(), WEFT_ESHUTDOWN);
    assert_int_equal(weft_loop_run_until_complete(loop, fa), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, fb), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, fc), 0);
    assert_int_equal(value_i(fa), 5);
    weft_future_unref(fa);
    weft_future_unref(fb);
    weft_future_unref(fc);
    assert_int_equal(weft_executor_shutdown(ex, true), 0); /* idempotent */
    assert_int_equal(weft_executor_free(ex), 0);
    xfinish(loop);
}

/* shutdown(wait=false) returns while a job runs; the queued jobs never run
 * and their futures are cancelled on the loop's thread, at its next
 * iteration; the running job finishes and delivers on its own. */
static void test_shutdown_nowait_drops_the_queue_and_does_not_wait(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    weft_executor *ex = xexecutor(1);
    blocker a;
    blocker_init(&a, 6);
    _Atomic int ran = 0;
    weft_future *fa = weft_executor_submit(ex, loop, job_block, &a);
    gate_wait(&a.started, 1);
    weft_future *fb = weft_executor_submit(ex, loop, job_count, &ran);
    weft_future *fc = weft_executor_submit(ex, loop, job_count, &ran);
    assert_int_equal(weft_executor_shutdown(ex, false), 0); /* a still blocks */
    assert_int_equal(xstats(ex).queued, 0);
    assert_false(weft_future_done(fb)); /* cancelled on the loop thread... */
    step(loop);
    assert_true(weft_future_cancelled(fb)); /* ...at its next iteration */
    assert_true(weft_future_cancelled(fc));
    assert_false(weft_future_done(fa));
    gate_add(&a.release, 1);
    assert_int_equal(weft_loop_run_until_complete(loop, fa), 0);
    assert_int_equal(value_i(fa), 6);
    assert_int_equal(atomic_load(&ran), 0);
    weft_future_unref(fa);
    weft_future_unref(fb);
    weft_future_unref(fc);
    assert_null(weft_executor_submit(ex, loop, job_value, TAG(1)));
    assert_int_equal(weft_last_error(), WEFT_ESHUTDOWN);
    assert_int_equal(weft_executor_free(ex), 0);
    xfinish(loop); /* the detached worker frees the executor, or we do */
}

/* The default executor can be shut down by hand (asyncio's
 * shutdown_default_executor); to_thread then fails with WEFT_ESHUTDOWN, and
 * the loop cannot free it. */
static void test_default_executor_shutdown_refuses_new_jobs(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    weft_future *f = weft_to_thread(loop, job_value, TAG(2));
    weft_executor *ex = weft_executor_default(loop);
    assert_non_null(ex);
    assert_int_equal(weft_executor_free(ex), -EPERM);
    assert_int_equal(weft_executor_shutdown(ex, true), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_future_unref(f);
    assert_null(weft_to_thread(loop, job_value, TAG(1)));
    assert_int_equal(weft_last_error(), WEFT_ESHUTDOWN);
    assert_null(weft_getaddrinfo(loop, "127.0.0.1", NULL, NULL));
    assert_int_equal(weft_last_error(), WEFT_ESHUTDOWN);
    xfinish(loop);
}

/* A job that shuts its own executor down with wait = true would wait for
 * itself: -EDEADLK. */
static weft_executor *g_self_ex;

static int job_shutdown_self(void *arg, weft_value *out)
{
    (void)arg;
    out->i = weft_executor_shutdown(g_self_ex, true);
    return 0;
}

static void test_shutdown_wait_from_its_own_worker_is_edeadlk(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    g_self_ex = xexecutor(1);
    weft_future *f = weft_executor_submit(g_self_ex, loop, job_shutdown_self, NULL);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    assert_int_equal(value_i(f), -EDEADLK);
    weft_future_unref(f);
    assert_int_equal(weft_executor_shutdown(g_self_ex, true), 0);
    assert_int_equal(weft_executor_free(g_self_ex), 0);
    xfinish(loop);
}

/* =============================================================================
 * Loop close
 * ========================================================================== */

/* Loop close waits for a job of the default executor that still runs, and
 * settles its future with the value; queued jobs are dropped (cancelled,
 * never run); nothing is reported. */
static void test_loop_close_waits_for_a_running_job(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    default_threads(loop, 1, 0); /* the 5 s default bound */
    blocker b;
    blocker_init(&b, 11);
    _Atomic int ran = 0;
    weft__executor_set_seams(weft_executor_default(loop), NULL, open_gate, &b.release);
    weft_future *f = weft_executor_submit_ptr(NULL, loop, job_block_ptr, &b, rec_free);
    gate_wait(&b.started, 1);
    weft_future *q = weft_to_thread(loop, job_count, &ran);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(gate_get(&b.finished), 1); /* close returned after the job */
    assert_true(weft_future_done(f));
    assert_false(weft_future_cancelled(f));
    int64_t *p = weft_future_take_ptr(f);
    assert_non_null(p);
    assert_int_equal(*p, 11);
    free(p);
    assert_true(weft_future_cancelled(q));
    assert_int_equal(atomic_load(&ran), 0);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_SHUTDOWN], 0);
    weft_future_unref(f);
    weft_future_unref(q);
    xfinish(loop);
}

/* A job still running when the bound expires is reported (naming the
 * job), its future cancelled, and abandoned: its worker finishes it later
 * and releases its result there; the executor's memory goes with the last
 * worker. */
static void test_loop_close_abandons_a_job_after_the_bound_and_reports_it(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    default_threads(loop, 1, 1000000); /* 1 ms */
    blocker b;
    blocker_init(&b, 12);
    weft_future *f = weft_executor_submit_ptr(NULL, loop, job_block_ptr, &b, rec_free);
    gate_wait(&b.started, 1);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_SHUTDOWN], 1);
    assert_int_equal(g_hook.err, -ETIMEDOUT);
    assert_non_null(strstr(g_hook.msg, "abandoned"));
    assert_non_null(strstr(g_hook.msg, "job"));
    assert_true(weft_future_cancelled(f));
    weft_future_unref(f);
    assert_int_equal(gate_get(&b.finished), 0); /* it runs on */
    g_hook.expect = 1;
    gate_add(&b.release, 1);
    gate_wait(&g_dtor, 1);
    assert_false(pthread_equal(g_dtor_thread, pthread_self())); /* on its worker */
    assert_int_equal(g_dtor_value, 12);
    xfinish(loop);
}

/* close_timeout_ns < 0: close does not wait at all. */
static void test_loop_close_with_negative_bound_abandons_at_once(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    default_threads(loop, 2, -1);
    blocker b;
    blocker_init(&b, 13);
    weft_future *f1 = weft_to_thread(loop, job_block, &b);
    weft_future *f2 = weft_to_thread(loop, job_block, &b);
    gate_wait(&b.started, 2);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_SHUTDOWN], 2);
    assert_true(weft_future_cancelled(f1));
    assert_true(weft_future_cancelled(f2));
    weft_future_unref(f1);
    weft_future_unref(f2);
    g_hook.expect = 2;
    gate_add(&b.release, 1);
    xfinish(loop);
}

/* A loop closed with jobs on an explicit executor: queued ones are dropped
 * (never run), running ones abandoned (reported, cancelled), and the
 * executor goes on serving other loops. */
static void test_loop_close_detaches_from_an_explicit_executor(void **state)
{
    (void)state;
    weft_loop *l1 = xloop();
    weft_executor *ex = xexecutor(1);
    blocker a;
    blocker_init(&a, 1);
    _Atomic int ran = 0;
    weft_future *fa = weft_executor_submit_ptr(ex, l1, job_block_ptr, &a, rec_free);
    gate_wait(&a.started, 1);
    weft_future *fb = weft_executor_submit(ex, l1, job_count, &ran);
    assert_int_equal(weft_loop_close(l1), 0); /* no waiting here */
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_SHUTDOWN], 1);
    assert_int_equal(g_hook.err, -ECANCELED);
    assert_true(weft_future_cancelled(fa));
    assert_true(weft_future_cancelled(fb));
    weft_future_unref(fa);
    weft_future_unref(fb);
    assert_int_equal(weft_loop_destroy(l1), 0);
    assert_int_equal(xstats(ex).queued, 0);

    weft_loop *l2 = xloop();
    weft_future *fc = weft_executor_submit(ex, l2, job_count, &ran);
    gate_add(&a.release, 1); /* a finishes alone; then c runs */
    assert_int_equal(weft_loop_run_until_complete(l2, fc), 0);
    assert_int_equal(atomic_load(&ran), 1);
    weft_future_unref(fc);
    gate_wait(&g_dtor, 1);
    assert_false(pthread_equal(g_dtor_thread, pthread_self()));
    assert_int_equal(weft_executor_shutdown(ex, true), 0);
    assert_int_equal(weft_executor_free(ex), 0);
    g_hook.expect = 1;
    xfinish(l2);
}

/* WEFT_RUN's shutdown: the main task cancelled while it awaits a running
 * job returns; the loop's close waits for the job, and nothing leaks. */
static blocker g_run_blocker;

struct run_main {
    WEFT_FRAME(int);
};

WEFT_ASYNC(run_main)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_executor_submit_ptr(NULL, weft_task_loop(task), job_block_ptr,
                                              &g_run_blocker, rec_free));
    WEFT_END;
}

struct run_outer {
    WEFT_FRAME(int);
    weft_task *inner;
};

WEFT_ASYNC(run_outer)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    self->inner = WEFT_SPAWN(loop, run_main);
    weft__executor_set_seams(weft_executor_default(loop), NULL, open_gate, &g_run_blocker.release);
    WEFT_YIELD(self);                     /* the inner task submits its job, */
    gate_wait(&g_run_blocker.started, 1); /* which a worker starts */
    weft_future_unref(self->inner);       /* left to WEFT_RUN's shutdown */
    WEFT_END;
}

static void test_weft_run_shutdown_waits_for_the_default_executor(void **state)
{
    (void)state;
    blocker_init(&g_run_blocker, 4);
    weft_loop_options o = loop_options(NULL, 0);
    o.alloc = watched;
    assert_int_equal(WEFT_RUN(&o, NULL, run_outer), 0);
    assert_int_equal(gate_get(&g_run_blocker.finished), 1); /* waited for */
    assert_int_equal(gate_get(&g_dtor), 1);                 /* result released */
    assert_true(pthread_equal(g_dtor_thread, pthread_self()));
    wait_all_freed();
    assert_int_equal(alloc_live(), 0);
}

/* =============================================================================
 * Several loops, several threads
 * ========================================================================== */

enum { SHARE_LOOPS = 4, SHARE_JOBS = 250 };

typedef struct share_arg {
    weft_executor *ex;
    int64_t sum;
    int err;
} share_arg;

static void *share_thread(void *p)
{
    share_arg *a = p;
    weft_loop_options o = loop_options(NULL, 0);
    o.alloc = watched;
    weft_loop *loop;
    a->err = weft_loop_new(&loop, &o);
    if (a->err)
        return NULL;
    weft_future *fs[SHARE_JOBS];
    for (int i = 0; i < SHARE_JOBS; i++)
        fs[i] = weft_executor_submit(a->ex, loop, job_value, (void *)(intptr_t)i);
    for (int i = 0; i < SHARE_JOBS; i++) {
        weft_value v = {0};
        if (!fs[i] || weft_loop_run_until_complete(loop, fs[i]) != 0 ||
            weft_future_result(fs[i], &v) != 0)
            a->err = -1;
        a->sum += v.i;
        weft_future_unref(fs[i]);
    }
    if (weft_loop_destroy(loop) != 0)
        a->err = -2;
    return NULL;
}

/* One executor serves four loops in four threads; each gets its own
 * results, and the executor outlives them. */
static void test_several_loops_in_threads_share_one_executor(void **state)
{
    (void)state;
    weft_executor *ex = xexecutor(3);
    pthread_t th[SHARE_LOOPS];
    share_arg args[SHARE_LOOPS];
    for (int i = 0; i < SHARE_LOOPS; i++) {
        args[i] = (share_arg){ex, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, share_thread, &args[i]), 0);
    }
    for (int i = 0; i < SHARE_LOOPS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].err, 0);
        assert_int_equal(args[i].sum, SHARE_JOBS * (SHARE_JOBS - 1) / 2);
    }
    weft_executor_stats st = xstats(ex);
    assert_int_equal(st.completed, SHARE_LOOPS * SHARE_JOBS);
    assert_true(st.threads <= 3);
    assert_int_equal(weft_executor_shutdown(ex, true), 0);
    assert_int_equal(weft_executor_free(ex), 0);
    wait_all_freed();
    assert_int_equal(alloc_live(), 0);
}

/* =============================================================================
 * Allocation and thread-creation failures
 * ========================================================================== */

enum { MK_TO_THREAD, MK_SUBMIT, MK_GAI, MK_GNI, MK_KINDS };

static weft_future *make_one(int kind, weft_loop *loop, weft_executor *ex)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(80);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    switch (kind) {
    case MK_TO_THREAD:
        return weft_to_thread(loop, job_value, TAG(1));
    case MK_SUBMIT:
        return weft_executor_submit(ex, loop, job_value, TAG(1));
    case MK_GAI: {
        struct addrinfo h;
        memset(&h, 0, sizeof h);
        h.ai_flags = AI_NUMERICHOST;
        h.ai_family = AF_INET;
        return weft_getaddrinfo(loop, "127.0.0.1", "80", &h);
    }
    default:
        return weft_getnameinfo(loop, (struct sockaddr *)&sin, sizeof sin,
                                NI_NUMERICHOST | NI_NUMERICSERV);
    }
}

/* Every allocation site, failed in turn on a fresh loop (layer state,
 * default executor, binding, job, getnameinfo's result): -ENOMEM, nothing
 * leaks, and the first attempt that gets its memory works. */
static void test_every_allocation_failure_is_survived(void **state)
{
    (void)state;
    for (int kind = 0; kind < MK_KINDS; kind++) {
        int failures = 0;
        for (long k = 1;; k++) {
            weft_loop *loop = xloop();
            wt_warm(loop); /* the future and task layers exist */
            weft_executor *ex = kind == MK_SUBMIT ? xexecutor(1) : NULL;
            alloc_fail_at(alloc_calls() + k);
            weft_future *f = make_one(kind, loop, ex);
            alloc_fail_at(0);
            if (f) {
                assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
                weft_future_unref(f);
            } else {
                assert_int_equal(weft_last_error(), -ENOMEM);
                failures++;
            }
            if (ex) {
                assert_int_equal(weft_executor_shutdown(ex, true), 0);
                assert_int_equal(weft_executor_free(ex), 0);
            }
            xfinish(loop);
            if (f)
                break;
        }
        /* layer, (default executor,) binding, job (, result block) */
        assert_int_equal(failures, kind == MK_SUBMIT ? 3 : kind == MK_GNI ? 5 : 4);
    }
    weft_executor *ex = NULL;
    weft_executor_options o = {.alloc = watched};
    alloc_fail_at(alloc_calls() + 1);
    assert_int_equal(weft_executor_new(&ex, &o), -ENOMEM);
    alloc_fail_at(0);
    assert_null(ex);
    assert_int_equal(alloc_live(), 0);
}

static int g_spawn_fail; /* fail this many more thread creations */

static int failing_spawn(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    if (g_spawn_fail > 0) {
        g_spawn_fail--;
        return EAGAIN;
    }
    return pthread_create(t, a, fn, arg);
}

/* No worker and none can start: the submit fails with pthread_create's
 * error and changes nothing.  With one worker running, failing to start a
 * second only means the job waits for the first. */
static void test_thread_creation_failure(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    weft_executor *ex = xexecutor(2);
    weft__executor_set_seams(ex, failing_spawn, NULL, NULL);
    g_spawn_fail = 1;
    assert_null(weft_executor_submit(ex, loop, job_value, TAG(1)));
    assert_int_equal(weft_last_error(), -EAGAIN);
    weft_executor_stats st = xstats(ex);
    assert_int_equal(st.threads, 0);
    assert_int_equal(st.queued, 0);

    blocker b;
    blocker_init(&b, 3);
    weft_future *fa = weft_executor_submit(ex, loop, job_block, &b);
    assert_non_null(fa);
    gate_wait(&b.started, 1);
    g_spawn_fail = 1;
    weft_future *fb = weft_executor_submit(ex, loop, job_value, TAG(8));
    assert_non_null(fb); /* queued behind a */
    assert_int_equal(xstats(ex).threads, 1);
    gate_add(&b.release, 1);
    assert_int_equal(weft_loop_run_until_complete(loop, fb), 0);
    assert_int_equal(value_i(fb), 8);
    assert_int_equal(weft_loop_run_until_complete(loop, fa), 0);
    weft_future_unref(fa);
    weft_future_unref(fb);
    assert_int_equal(weft_executor_shutdown(ex, true), 0);
    assert_int_equal(weft_executor_free(ex), 0);
    xfinish(loop);
}

/* =============================================================================
 * Bad input
 * ========================================================================== */

static void test_bad_arguments_are_refused(void **state)
{
    (void)state;
    weft_executor *ex = TAG(1);
    weft_executor_options o = {.threads = WEFT_EXECUTOR_MAX_THREADS + 1};
    assert_int_equal(weft_executor_new(NULL, NULL), -EINVAL);
    assert_int_equal(weft_executor_new(&ex, &o), -EINVAL);
    o = (weft_executor_options){.stack_size = 1};
    assert_int_equal(weft_executor_new(&ex, &o), -EINVAL);
    assert_ptr_equal(ex, TAG(1)); /* untouched */
    assert_int_equal(weft_executor_shutdown(NULL, true), -EINVAL);
    assert_int_equal(weft_executor_free(NULL), 0);
    weft_executor_stats st;
    assert_int_equal(weft_executor_get_stats(NULL, &st), -EINVAL);

    assert_null(weft_to_thread(NULL, job_value, NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_executor_default(NULL));
    assert_int_equal(weft_last_error(), -EINVAL);

    weft_loop *loop = xloop();
    assert_null(weft_to_thread(loop, NULL, NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_int_equal(weft_executor_set_default_options(loop, NULL), -EINVAL);
    o = (weft_executor_options){.threads = 5000};
    assert_int_equal(weft_executor_set_default_options(loop, &o), -EINVAL);
    assert_null(weft_getaddrinfo(loop, NULL, NULL, NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    assert_null(weft_getnameinfo(loop, NULL, sizeof sin, 0));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_getnameinfo(loop, (struct sockaddr *)&sin, 0, 0));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_getnameinfo(loop, (struct sockaddr *)&sin, 4096, 0));
    assert_int_equal(weft_last_error(), -EINVAL);

    assert_non_null(weft_executor_default(loop));
    o = (weft_executor_options){.threads = 2};
    assert_int_equal(weft_executor_set_default_options(loop, &o), -EBUSY);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_null(weft_to_thread(loop, job_value, NULL));
    assert_int_equal(weft_last_error(), WEFT_ECLOSED);
    assert_null(weft_executor_default(loop));
    assert_int_equal(weft_last_error(), WEFT_ECLOSED);
    assert_null(weft_getaddrinfo(loop, "localhost", NULL, NULL));
    assert_int_equal(weft_last_error(), WEFT_ECLOSED);
    xfinish(loop);
}

/* A debug loop refuses to_thread from another thread (here: a job, once
 * the loop runs: the check knows the loop's thread only then). */
static weft_loop *g_debug_loop;

static int job_submit_from_worker(void *arg, weft_value *out)
{
    gate_wait(arg, 1); /* opened by a callback: the loop runs */
    weft_future *f = weft_to_thread(g_debug_loop, job_value, NULL);
    out->i = f ? 0 : weft_last_error();
    return 0;
}

static void test_debug_loop_refuses_to_thread_from_another_thread(void **state)
{
    (void)state;
    weft_loop *loop = g_debug_loop = xloop_flags(WEFT_LOOP_DEBUG);
    gate running;
    gate_init(&running);
    weft_future *f = weft_to_thread(loop, job_submit_from_worker, &running);
    assert_int_equal(weft_call_soon(loop, open_gate, &running, NULL), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    assert_int_equal(value_i(f), -EPERM);
    weft_future_unref(f);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_MISUSE], 1);
    g_hook.expect = 1;
    xfinish(loop);
}

/* The loop's dump lists its executors. */
static void test_dump_lists_the_executor(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    default_threads(loop, 1, 0);
    blocker b;
    blocker_init(&b, 1);
    weft_future *f = weft_to_thread(loop, job_block, &b);
    gate_wait(&b.started, 1);
    assert_int_equal(weft_loop_request_dump(loop), 0);
    step(loop);
    assert_int_equal(g_hook.kind, WEFT_REPORT_DUMP);
    assert_non_null(strstr(g_hook.msg, "(default): 0 job(s) of this loop queued, 1 running"));
    gate_add(&b.release, 1);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_future_unref(f);
    g_hook.expect = 1;
    xfinish(loop);
}

/* =============================================================================
 * Name resolution
 * ========================================================================== */

static void test_eai_codes_map_to_weft_codes_with_texts(void **state)
{
    (void)state;
    assert_int_equal(weft_eai_error(0), 0);
    const struct {
        int eai, weft;
    } m[] = {
        {EAI_AGAIN, WEFT_EAI_AGAIN},
        {EAI_BADFLAGS, WEFT_EAI_BADFLAGS},
        {EAI_FAIL, WEFT_EAI_FAIL},
        {EAI_FAMILY, WEFT_EAI_FAMILY},
        {EAI_NONAME, WEFT_EAI_NONAME},
        {EAI_SERVICE, WEFT_EAI_SERVICE},
        {EAI_SOCKTYPE, WEFT_EAI_SOCKTYPE},
        {EAI_OVERFLOW, WEFT_EAI_OVERFLOW},
        {EAI_MEMORY, -ENOMEM},
    };
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
        assert_int_equal(weft_eai_error(m[i].eai), m[i].weft);
        if (m[i].weft != -ENOMEM) {
            assert_true(m[i].weft >= WEFT_EAI_MIN && m[i].weft <= WEFT_EAI_MAX);
            assert_string_not_equal(weft_strerror(m[i].weft), "unknown error");
        }
    }
    errno = EMFILE;
    assert_int_equal(weft_eai_error(EAI_SYSTEM), -EMFILE);
    errno = 0;
    assert_int_equal(weft_eai_error(EAI_SYSTEM), -EIO);
    assert_int_equal(weft_eai_error(12345), WEFT_EAI_UNKNOWN);
    for (int c = WEFT_EAI_UNKNOWN; c <= WEFT_EAI_MAX; c++)
        assert_string_not_equal(weft_strerror(c), "unknown error");
}

/* The first address of the list for family fam, as text, or "". */
static const char *first_addr(const struct addrinfo *ai, int fam, char *buf, size_t n)
{
    buf[0] = 0;
    for (; ai; ai = ai->ai_next) {
        if (ai->ai_family != fam)
            continue;
        const void *a = fam == AF_INET
                            ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        inet_ntop(fam, a, buf, (socklen_t)n);
        break;
    }
    return buf;
}

/* "localhost" resolves to a loopback address (from /etc/hosts: no
 * network needed); the list is the future's and freed with it. */
static void test_getaddrinfo_localhost(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    struct addrinfo h;
    memset(&h, 0, sizeof h);
    h.ai_socktype = SOCK_STREAM;
    weft_future *f = weft_getaddrinfo(loop, "localhost", "80", &h);
    assert_non_null(f);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_value v;
    assert_int_equal(weft_future_result(f, &v), 0);
    const struct addrinfo *ai = v.p;
    assert_non_null(ai);
    bool loopback = false;
    for (; ai; ai = ai->ai_next) {
        assert_int_equal(ai->ai_socktype, SOCK_STREAM);
        if (ai->ai_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)ai->ai_addr;
            loopback |= (ntohl(a->sin_addr.s_addr) >> 24) == 127;
        } else if (ai->ai_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ai->ai_addr;
            loopback |= IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
        }
    }
    assert_true(loopback);
    weft_future_unref(f); /* freeaddrinfo */
    xfinish(loop);
}

/* Numeric addresses: exactly what was asked; a taken list is the
 * caller's to free. */
static void test_getaddrinfo_numeric_addresses(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    struct addrinfo h;
    memset(&h, 0, sizeof h);
    h.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    h.ai_socktype = SOCK_STREAM;
    weft_future *f = weft_getaddrinfo(loop, "127.0.0.1", "8080", &h);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    struct addrinfo *ai = weft_future_take_ptr(f);
    weft_future_unref(f);
    assert_non_null(ai);
    assert_int_equal(ai->ai_family, AF_INET);
    assert_null(ai->ai_next);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ai->ai_addr;
    assert_int_equal(ntohs(sin->sin_port), 8080);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    freeaddrinfo(ai);

    f = weft_getaddrinfo(loop, "::1", NULL, &h);
    int err = weft_loop_run_until_complete(loop, f);
    if (err != WEFT_EAI_FAMILY) { /* a libc without IPv6 */
        assert_int_equal(err, 0);
        weft_value v;
        assert_int_equal(weft_future_result(f, &v), 0);
        char b6[64];
        assert_string_equal(first_addr(v.p, AF_INET6, b6, sizeof b6), "::1");
    }
    weft_future_unref(f);
    xfinish(loop);
}

/* A name that cannot resolve (RFC 6761: .invalid never does) fails with a
 * name resolution code: NONAME with a resolver, AGAIN or FAIL without a
 * network.  With AI_NUMERICHOST a name is exactly WEFT_EAI_NONAME. */
static void test_getaddrinfo_of_a_name_that_cannot_resolve(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    weft_future *f = weft_getaddrinfo(loop, "nonexistent.invalid", NULL, NULL);
    int err = weft_loop_run_until_complete(loop, f);
    assert_true(err == WEFT_EAI_NONAME || err == WEFT_EAI_AGAIN || err == WEFT_EAI_FAIL ||
                err == WEFT_EAI_NODATA);
    weft_future_unref(f);

    struct addrinfo h;
    memset(&h, 0, sizeof h);
    h.ai_flags = AI_NUMERICHOST;
    f = weft_getaddrinfo(loop, "localhost", NULL, &h);
    assert_int_equal(weft_loop_run_until_complete(loop, f), WEFT_EAI_NONAME);
    weft_future_unref(f);

    h = (struct addrinfo){.ai_family = 12345};
    f = weft_getaddrinfo(loop, "127.0.0.1", NULL, &h);
    assert_int_equal(weft_loop_run_until_complete(loop, f), WEFT_EAI_FAMILY);
    weft_future_unref(f);
    xfinish(loop);
}

/* getnameinfo of 127.0.0.1:80, numeric and by name. */
static void test_getnameinfo_of_127_0_0_1(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(80);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    weft_future *f = weft_getnameinfo(loop, (struct sockaddr *)&sin, sizeof sin,
                                      NI_NUMERICHOST | NI_NUMERICSERV);
    assert_non_null(f);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_value v;
    assert_int_equal(weft_future_result(f, &v), 0);
    const weft_nameinfo *ni = v.p;
    assert_string_equal(ni->host, "127.0.0.1");
    assert_string_equal(ni->service, "80");
    weft_future_unref(f);

    f = weft_getnameinfo(loop, (struct sockaddr *)&sin, sizeof sin, NI_NUMERICSERV);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_nameinfo *taken = weft_future_take_ptr(f);
    weft_future_unref(f);
    assert_non_null(taken);
    assert_true(strlen(taken->host) > 0); /* "localhost" from /etc/hosts, or the number */
    assert_string_equal(taken->service, "80");
    weft_nameinfo_free(taken);

    sin.sin_family = 12345; /* no such family */
    f = weft_getnameinfo(loop, (struct sockaddr *)&sin, sizeof sin, NI_NUMERICHOST);
    assert_int_equal(weft_loop_run_until_complete(loop, f), WEFT_EAI_FAMILY);
    weft_future_unref(f);
    xfinish(loop);
}

/* Resolution jobs that never run (cancelled in the queue, dropped by loop
 * close) release what they carry: the copied strings, getnameinfo's
 * result block.  xfinish checks that every block came back. */
static void test_resolution_jobs_cancelled_or_dropped_leak_nothing(void **state)
{
    (void)state;
    weft_loop *loop = xloop();
    default_threads(loop, 1, 0);
    blocker b;
    blocker_init(&b, 1);
    weft__executor_set_seams(weft_executor_default(loop), NULL, open_gate, &b.release);
    weft_future *fb = weft_to_thread(loop, job_block, &b);
    gate_wait(&b.started, 1);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    weft_future *n1 = weft_getnameinfo(loop, (struct sockaddr *)&sin, sizeof sin, NI_NUMERICHOST);
    weft_future *n2 = weft_getnameinfo(loop, (struct sockaddr *)&sin, sizeof sin, NI_NUMERICHOST);
    weft_future *a1 = weft_getaddrinfo(loop, "127.0.0.1", "80", NULL);
    weft_future *a2 = weft_getaddrinfo(loop, "127.0.0.1", "80", NULL);
    assert_int_equal(xstats(weft_executor_default(loop)).queued, 4);
    assert_int_equal(weft_future_cancel(n1), 0);
    assert_int_equal(weft_future_cancel(a1), 0);
    assert_int_equal(weft_loop_close(loop), 0); /* drops n2 and a2 */
    assert_true(weft_future_cancelled(n2));
    assert_true(weft_future_cancelled(a2));
    assert_int_equal(value_i(fb), 1);
    weft_future *fs[] = {fb, n1, n2, a1, a2};
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++)
        weft_future_unref(fs[i]);
    xfinish(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* results and errors */
        T(test_to_thread_value_crosses_back_to_the_loop_thread),
        T(test_to_thread_error_codes_cross_back),
        T(test_invalid_return_value_fails_with_erange_and_is_reported),
        T(test_pointer_result_is_owned_by_the_future),
        T(test_unobserved_job_failure_is_reported),
        T(test_job_future_is_not_settable),
        /* many jobs */
        T(test_thousand_jobs_complete_each_exactly_once),
        T(test_one_worker_runs_and_completes_jobs_in_fifo_order),
        T(test_a_burst_of_completions_is_one_wakeup),
        T(test_threads_start_lazily_and_never_exceed_the_size),
        T(test_sequential_jobs_reuse_one_idle_worker),
        /* cancellation */
        T(test_cancel_before_start_never_runs_the_function),
        T(test_cancel_while_running_releases_the_result_on_the_loop_thread),
        T(test_task_awaits_to_thread),
        T(test_cancelling_a_task_cancels_its_queued_job),
        /* shutdown */
        T(test_shutdown_wait_runs_the_queue_and_joins),
        T(test_shutdown_nowait_drops_the_queue_and_does_not_wait),
        T(test_default_executor_shutdown_refuses_new_jobs),
        T(test_shutdown_wait_from_its_own_worker_is_edeadlk),
        /* loop close */
        T(test_loop_close_waits_for_a_running_job),
        T(test_loop_close_abandons_a_job_after_the_bound_and_reports_it),
        T(test_loop_close_with_negative_bound_abandons_at_once),
        T(test_loop_close_detaches_from_an_explicit_executor),
        T(test_weft_run_shutdown_waits_for_the_default_executor),
        /* several loops */
        T(test_several_loops_in_threads_share_one_executor),
        /* failures and bad input */
        T(test_every_allocation_failure_is_survived),
        T(test_thread_creation_failure),
        T(test_bad_arguments_are_refused),
        T(test_debug_loop_refuses_to_thread_from_another_thread),
        T(test_dump_lists_the_executor),
        /* name resolution */
        T(test_eai_codes_map_to_weft_codes_with_texts),
        T(test_getaddrinfo_localhost),
        T(test_getaddrinfo_numeric_addresses),
        T(test_getaddrinfo_of_a_name_that_cannot_resolve),
        T(test_getnameinfo_of_127_0_0_1),
        T(test_resolution_jobs_cancelled_or_dropped_leak_nothing),
    };
    return RUN_TESTS(tests);
}
