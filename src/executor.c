/* executor.c - worker threads for blocking calls: executors, jobs, and the
 * per-loop bindings that bring completions back.
 *
 * An executor is a mutex, a FIFO of jobs (every loop's), two condition
 * variables and up to `max` worker threads, started one by one when a job
 * is queued and no worker is idle.  A job is a future of its own kind with
 * the function, its argument and its result in one block the loop
 * allocates (and recycles).  Each (executor, loop) pair has a binding, made
 * on the loop's first job there: the list of this loop's jobs whose
 * function runs, the list of finished ones, and a weft_async.  A worker
 * that finishes a job moves it to its binding's done list and, if that
 * list was empty, sends the async: one wakeup per burst of completions.
 * The loop then settles every finished job (resolves, fails or cancels its
 * future) on its own thread.  That list and the async are the only things
 * a worker touches besides the job it runs: never loop state.
 *
 * Locking: one mutex per executor guards the queue, the counters, the
 * bindings' running and done lists, a job's state, and a binding's
 * detached flag.  Workers send the async with it held, so a binding that
 * is detached under it (loop close) is never sent to again; the lock
 * order is executor, then the loop's inbox.
 *
 * Costs: submitting is a block from the loop's free list, one lock and a
 * list push (plus a condvar signal when a worker is idle); a worker takes
 * the lock once per job (completion and the next pop share it); the loop
 * takes it once per burst of completions.
 *
 * Lifetimes: an executor is reference counted by its owner (the user, or
 * the loop for its default executor), each binding and each live worker;
 * the last to let go frees it, a detached worker included.  A job that is
 * still running when its loop closes is abandoned: its future is cancelled
 * and a counter of two owners (the future's side, the worker's) decides
 * which one frees the block.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executor_internal.h"

#define CLOSE_TIMEOUT_NS INT64_C(5000000000)            /* loop close waits 5 s for running jobs */
#define MAX_WAIT_NS (INT64_C(86400) * 365 * 1000000000) /* a year: time_t-safe deadlines */

/* The clock of the timed waits: CLOCK_MONOTONIC where a condition variable
 * can use it (POSIX clock selection; not macOS), else CLOCK_REALTIME. */
#if defined(_POSIX_CLOCK_SELECTION) && _POSIX_CLOCK_SELECTION > 0
#define WAIT_CLOCK CLOCK_MONOTONIC
#else
#define WAIT_CLOCK CLOCK_REALTIME
#endif

typedef struct binding binding;
typedef struct exec_layer exec_layer;

/* A job's state, guarded by the executor's mutex. */
enum {
    J_NEW,       /* made, not queued */
    J_QUEUED,    /* in ex->queue */
    J_RUNNING,   /* in b->running: a worker runs its function */
    J_DONE,      /* in b->done: the function returned */
    J_DROPPED,   /* in b->done: dropped by a shutdown, never ran */
    J_SETTLED,   /* out of every list: its future is done (loop thread) */
    J_ABANDONED, /* running, forgotten by its closed loop */
};

/* Flags beyond WEFT__JOB_* (set before the job is queued, then constant). */
enum { J_RECYCLE = 1u << 7 };

struct weft__job {
    weft__dfuture fut; /* first: the future (dtor: the value's, once resolved) */
    weft_link link;    /* ex->queue, b->running or b->done; a close list */
    binding *b;        /* NULL once abandoned */
    weft_work_fn *fn;
    void *arg;
    weft_dtor *dtor;        /* of a pointer result */
    const char *what;       /* name for reports, or NULL: fn's symbol */
    weft_value v;           /* written by the worker before the hand-off */
    int err;                /* fn's return value, likewise */
    uint8_t state;          /* J_* (ex->mu) */
    uint8_t flags;          /* WEFT__JOB_*, J_RECYCLE */
    _Atomic uint8_t owners; /* abandoned: the future's side and the worker's */
    weft_allocator alloc;   /* abandoned: where the block goes back */
};

_Static_assert(sizeof(void *) != 8 || sizeof(weft__job) == 144, "weft__job grew");

typedef struct worker {
    pthread_t id;
    bool joinable; /* started, not yet joined or detached */
} worker;

struct weft_executor {
    pthread_mutex_t mu;
    pthread_cond_t work; /* workers wait here: a job was queued, or stop */
    pthread_cond_t idle; /* close and shutdown wait here: a job ended, a worker exited */
    weft_link queue;     /* FIFO of queued jobs, every loop's */
    size_t nqueued, nrunning;
    uint64_t completed;
    unsigned max;      /* worker threads at most */
    unsigned nthreads; /* started (entries of th[] in use) */
    unsigned alive;    /* started and not yet exited */
    unsigned nidle;    /* waiting on `work` */
    unsigned nwaiters; /* waiting on `idle` */
    unsigned refs;     /* owner + bindings + live workers */
    bool stop;         /* shut down: no new jobs; workers exit once the queue is empty */
    bool is_default;   /* a loop's default executor (constant) */
    size_t stack_size;
    int64_t close_timeout; /* default executor: ns loop close waits; < 0: none */
    weft_allocator alloc;  /* of this block */
    weft__spawn_fn *spawn; /* pthread_create, or a test's seam */
    void (*before_wait)(void *);
    void *seam_ud;
    worker th[]; /* max entries */
};

/* One (executor, loop) pair. */
struct binding {
    weft_async async;         /* a finished job wakes the loop (sent under ex->mu) */
    weft_link link;           /* in the layer's bindings */
    weft_link running;        /* this loop's jobs whose function runs (ex->mu) */
    weft_link done;           /* finished or dropped, not yet settled (ex->mu) */
    weft_executor *ex;        /* a reference */
    size_t nqueued, nrunning; /* this loop's jobs in ex->queue, in running (ex->mu) */
    bool detached;            /* the loop closed: nothing is sent any more (ex->mu) */
};

/* The executor layer's state in one loop. */
struct exec_layer {
    weft__layer base;
    weft_loop *loop;
    weft_link bindings;
    binding *last;       /* the binding of the last job (a cache) */
    weft_executor *dflt; /* the default executor, once made */
    weft_executor_options dopts;
    weft__job *free; /* recycled job blocks, linked through link.next */
};

static _Thread_local weft_executor *tl_executor; /* the executor a worker serves */

/* ---- small helpers ----------------------------------------------------------------------- */

static weft__job *job_of(const weft_future *f)
{
    return (weft__job *)(void *)(uintptr_t)f;
}

static void fail_with(int err)
{
    weft__set_last_error(err);
}

/* The argument of an ARG_IS_RESULT job that will not become the value. */
static void release_arg(weft__job *j)
{
    if ((j->flags & WEFT__JOB_ARG_IS_RESULT) && j->dtor)
        j->dtor(j->arg);
}

static const char *job_name(const weft__job *j, char *buf, size_t n)
{
    if (j->what)
        return j->what;
    if (!j->fn)
        return "job";
    return weft__symbol(&j->fn, sizeof j->fn, buf, n);
}

/* ---- the executor's memory and threads --------------------------------------------------- */

static int sync_init(weft_executor *ex)
{
    int err = pthread_mutex_init(&ex->mu, NULL);
    if (err)
        return -err;
    err = pthread_cond_init(&ex->work, NULL);
    if (err)
        goto fail_mu;
    pthread_condattr_t ca;
    err = pthread_condattr_init(&ca);
    if (err)
        goto fail_work;
#if defined(_POSIX_CLOCK_SELECTION) && _POSIX_CLOCK_SELECTION > 0
    err = pthread_condattr_setclock(&ca, WAIT_CLOCK);
#endif
    if (!err)
        err = pthread_cond_init(&ex->idle, &ca);
    pthread_condattr_destroy(&ca);
    if (!err)
        return 0;
fail_work:
    pthread_cond_destroy(&ex->work);
fail_mu:
    pthread_mutex_destroy(&ex->mu);
    return -err;
}

static int check_options(const weft_executor_options *o)
{
    if (o->threads > WEFT_EXECUTOR_MAX_THREADS)
        return -EINVAL;
    if (o->stack_size) {
        pthread_attr_t a;
        if (pthread_attr_init(&a))
            return -ENOMEM;
        int e = pthread_attr_setstacksize(&a, o->stack_size);
        pthread_attr_destroy(&a);
        if (e)
            return -EINVAL;
    }
    return 0;
}

static int executor_make(weft_executor **out, const weft_executor_options *o, weft_allocator alloc,
                         bool is_default)
{
    if (!alloc.realloc)
        return -EINVAL;
    unsigned max = o->threads ? o->threads : WEFT_EXECUTOR_DEFAULT_THREADS;
    size_t size = sizeof(weft_executor) + (size_t)max * sizeof(worker);
    weft_executor *ex = alloc.realloc(alloc.ud, NULL, size);
    if (!ex)
        return -ENOMEM;
    memset(ex, 0, size);
    int err = sync_init(ex);
    if (err) {
        alloc.realloc(alloc.ud, ex, 0);
        return err;
    }
    weft__list_init(&ex->queue);
    ex->max = max;
    ex->refs = 1;
    ex->is_default = is_default;
    ex->stack_size = o->stack_size;
    ex->close_timeout = o->close_timeout_ns ? o->close_timeout_ns : CLOSE_TIMEOUT_NS;
    ex->alloc = alloc;
    ex->spawn = pthread_create;
    *out = ex;
    return 0;
}

static void executor_destroy(weft_executor *ex)
{
    weft_allocator a = ex->alloc;
    pthread_cond_destroy(&ex->idle);
    pthread_cond_destroy(&ex->work);
    pthread_mutex_destroy(&ex->mu);
    a.realloc(a.ud, ex, 0);
}

/* Drop a reference taken by an owner or a binding. */
static void executor_unref(weft_executor *ex)
{
    pthread_mutex_lock(&ex->mu);
    bool last = --ex->refs == 0;
    pthread_mutex_unlock(&ex->mu);
    if (last)
        executor_destroy(ex);
}

/* A job that its loop abandoned is finished: its result and its
 * ARG_IS_RESULT argument go on this (worker) thread, and the block goes
 * if the future's side let go of it already. */
static void abandoned_finish(weft__job *j, weft_value v, int err)
{
    if (j->flags & WEFT__JOB_ARG_IS_RESULT)
        release_arg(j);
    else if (err == 0 && j->dtor && v.p)
        j->dtor(v.p);
    if (atomic_fetch_sub_explicit(&j->owners, 1, memory_order_acq_rel) == 1)
        j->alloc.realloc(j->alloc.ud, j, 0);
}

static void *worker_main(void *arg)
{
    weft_executor *ex = arg;
    tl_executor = ex;
    pthread_mutex_lock(&ex->mu);
    for (;;) {
        while (weft__list_empty(&ex->queue) && !ex->stop) {
            ex->nidle++;
            pthread_cond_wait(&ex->work, &ex->mu);
            ex->nidle--;
        }
        if (weft__list_empty(&ex->queue))
            break; /* shut down, and nothing left to run */
        weft__job *j = WEFT_CONTAINER_OF(ex->queue.next, weft__job, link);
        weft__list_unlink(&j->link);
        ex->nqueued--;
        binding *b = j->b;
        b->nqueued--;
        weft__list_push(&b->running, &j->link);
        b->nrunning++;
        ex->nrunning++;
        j->state = J_RUNNING;
        weft_work_fn *fn = j->fn;
        void *fn_arg = j->arg;
        pthread_mutex_unlock(&ex->mu);

        weft_value v = {0};
        int err = fn(fn_arg, &v);

        pthread_mutex_lock(&ex->mu);
        ex->nrunning--;
        ex->completed++;
        if (j->state == J_ABANDONED) {
            pthread_mutex_unlock(&ex->mu);
            abandoned_finish(j, v, err);
            pthread_mutex_lock(&ex->mu);
        } else {
            b = j->b;
            weft__list_unlink(&j->link);
            b->nrunning--;
            j->v = v;
            j->err = err;
            j->state = J_DONE;
            bool first = weft__list_empty(&b->done);
            weft__list_push(&b->done, &j->link);
            if (first)
                weft_async_send(&b->async); /* attached: detaching takes this lock */
        }
        if (ex->nwaiters)
            pthread_cond_broadcast(&ex->idle);
    }
    ex->alive--;
    if (ex->nwaiters)
        pthread_cond_broadcast(&ex->idle);
    bool last = --ex->refs == 0; /* a detached worker may be the last */
    pthread_mutex_unlock(&ex->mu);
    if (last)
        executor_destroy(ex);
    return NULL;
}

/* Start one more worker (ex->mu held), with every signal blocked: signal
 * handlers then run on the application's threads.  0 or -errno. */
static int spawn_locked(weft_executor *ex)
{
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (err)
        return -err;
    if (ex->stack_size)
        pthread_attr_setstacksize(&attr, ex->stack_size); /* checked at creation */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = ex->spawn(&ex->th[ex->nthreads].id, &attr, worker_main, ex);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err)
        return -err;
    ex->th[ex->nthreads++].joinable = true;
    ex->alive++;
    ex->refs++;
    return 0;
}

/* Shut down without waiting (ex->mu held): no new jobs; each queued job
 * goes to its binding's done list as dropped, to be cancelled on its loop's
 * thread.  Idempotent (it also drops what a shutdown(wait) still runs). */
static void stop_locked(weft_executor *ex)
{
    ex->stop = true;
    pthread_cond_broadcast(&ex->work);
    while (!weft__list_empty(&ex->queue)) {
        weft__job *j = WEFT_CONTAINER_OF(ex->queue.next, weft__job, link);
        weft__list_unlink(&j->link);
        ex->nqueued--;
        binding *b = j->b;
        b->nqueued--;
        j->state = J_DROPPED;
        bool first = weft__list_empty(&b->done);
        weft__list_push(&b->done, &j->link);
        if (first && !b->detached)
            weft_async_send(&b->async);
    }
}

/* After a stop (ex->mu held): the workers that can be joined at once (no
 * job runs, the queue is empty: they are exiting) go into out (returns
 * how many); otherwise every worker is detached and finishes on its own. */
static unsigned release_workers_locked(weft_executor *ex, pthread_t *out)
{
    unsigned n = 0;
    bool join = ex->nrunning == 0 && weft__list_empty(&ex->queue);
    for (unsigned i = 0; i < ex->nthreads; i++) {
        if (!ex->th[i].joinable)
            continue;
        ex->th[i].joinable = false;
        if (join)
            out[n++] = ex->th[i].id;
        else
            pthread_detach(ex->th[i].id);
    }
    return n;
}

/* The owner lets go: stop, release the workers, drop the reference. */
static void executor_drop_owner(weft_executor *ex)
{
    pthread_t ids[WEFT_EXECUTOR_MAX_THREADS];
    pthread_mutex_lock(&ex->mu);
    stop_locked(ex);
    unsigned n = release_workers_locked(ex, ids);
    pthread_mutex_unlock(&ex->mu);
    for (unsigned i = 0; i < n; i++)
        pthread_join(ids[i], NULL);
    executor_unref(ex);
}

/* ---- the public executor API ------------------------------------------------------------- */

int weft_executor_new(weft_executor **out, const weft_executor_options *opts)
{
    static const weft_executor_options defaults;
    if (!out)
        return -EINVAL;
    if (!opts)
        opts = &defaults;
    int err = check_options(opts);
    if (err)
        return err;
    weft_allocator a = opts->alloc;
    if (!a.realloc)
        a = (weft_allocator){weft__libc_realloc, NULL};
    return executor_make(out, opts, a, false);
}

int weft_executor_shutdown(weft_executor *ex, bool wait)
{
    if (!ex)
        return -EINVAL;
    if (wait && tl_executor == ex)
        return -EDEADLK;
    pthread_t ids[WEFT_EXECUTOR_MAX_THREADS];
    pthread_mutex_lock(&ex->mu);
    if (!wait) {
        stop_locked(ex);
        for (unsigned i = 0; i < ex->nthreads; i++)
            if (ex->th[i].joinable) {
                ex->th[i].joinable = false;
                pthread_detach(ex->th[i].id);
            }
        pthread_mutex_unlock(&ex->mu);
        return 0;
    }
    ex->stop = true; /* the queue still runs: workers exit once it is empty */
    pthread_cond_broadcast(&ex->work);
    ex->nwaiters++;
    if (ex->before_wait && ex->alive) {
        pthread_mutex_unlock(&ex->mu);
        ex->before_wait(ex->seam_ud);
        pthread_mutex_lock(&ex->mu);
    }
    while (ex->alive)
        pthread_cond_wait(&ex->idle, &ex->mu);
    ex->nwaiters--;
    unsigned n = 0;
    for (unsigned i = 0; i < ex->nthreads; i++)
        if (ex->th[i].joinable) {
            ex->th[i].joinable = false;
            ids[n++] = ex->th[i].id;
        }
    pthread_mutex_unlock(&ex->mu);
    for (unsigned i = 0; i < n; i++)
        pthread_join(ids[i], NULL);
    return 0;
}

int weft_executor_free(weft_executor *ex)
{
    if (!ex)
        return 0;
    if (ex->is_default)
        return -EPERM;
    executor_drop_owner(ex);
    return 0;
}

int weft_executor_get_stats(weft_executor *ex, weft_executor_stats *out)
{
    if (!ex || !out)
        return -EINVAL;
    pthread_mutex_lock(&ex->mu);
    *out = (weft_executor_stats){
        .max_threads = ex->max,
        .threads = ex->alive,
        .idle = ex->nidle,
        .queued = ex->nqueued,
        .running = ex->nrunning,
        .completed = ex->completed,
        .shutdown = ex->stop,
    };
    pthread_mutex_unlock(&ex->mu);
    return 0;
}

void weft__executor_set_seams(weft_executor *ex, weft__spawn_fn *spawn,
                              void (*before_wait)(void *ud), void *ud)
{
    pthread_mutex_lock(&ex->mu);
    ex->spawn = spawn ? spawn : pthread_create;
    ex->before_wait = before_wait;
    ex->seam_ud = ud;
    pthread_mutex_unlock(&ex->mu);
}

/* ---- the job kind ------------------------------------------------------------------------ */

/* Cancel: a queued job leaves the queue (its function never runs); a
 * running or finished one only loses its future, and its result is
 * discarded when it is settled. */
static int job_cancel(weft_future *f)
{
    weft__job *j = job_of(f);
    bool unqueued = false;
    binding *b = j->b;
    if (b) {
        weft_executor *ex = b->ex;
        pthread_mutex_lock(&ex->mu);
        if (j->state == J_QUEUED) {
            weft__list_unlink(&j->link);
            ex->nqueued--;
            b->nqueued--;
            j->state = J_SETTLED;
            unqueued = true;
        }
        pthread_mutex_unlock(&ex->mu);
    }
    int err = weft__future_cancel_now(f);
    if (unqueued) {
        release_arg(j);
        weft__future_unref(f); /* the executor's reference: last, it may free j */
    }
    return err;
}

static void job_release(weft_future *f)
{
    weft__job *j = job_of(f);
    if (j->state == J_ABANDONED) {
        if (atomic_fetch_sub_explicit(&j->owners, 1, memory_order_acq_rel) == 1)
            j->alloc.realloc(j->alloc.ud, j, 0); /* the worker is done with it */
        return;
    }
    weft_loop *loop = f->loop;
    exec_layer *L = (exec_layer *)(void *)weft__layer_get(loop, WEFT__LAYER_EXECUTOR);
#if !WEFT__POISON
    if (L && (j->flags & J_RECYCLE)) {
        j->link.next = (weft_link *)(void *)L->free;
        L->free = j;
        return;
    }
#else
    (void)L;
#endif
    weft__free(loop, j);
}

static void job_describe(const weft_future *f, weft_report *r, char *buf, size_t n)
{
    (void)r;
    char sym[128];
    const weft__job *j = job_of(f);
    snprintf(buf, n, "job %s", job_name(j, sym, sizeof sym));
}

static const weft__future_ops job_ops = {
    .kind = "job",
    .flags = WEFT__OPS_DTOR,
    .cancel = job_cancel,
    .release = job_release,
    .describe = job_describe,
};

/* The job's future gets the function's outcome (loop thread). */
static void complete(weft__job *j)
{
    weft_future *f = &j->fut.f;
    int err = j->err;
    if (err == 0) {
        weft_value v = j->v;
        if (j->flags & WEFT__JOB_ARG_IS_RESULT)
            v.p = j->arg;
        j->fut.dtor = j->dtor;
        weft__future_resolve(f, v);
        return;
    }
    release_arg(j);
    if (err == -ECANCELED) {
        weft__future_cancel_now(f);
    } else if (err < 0 && err >= WEFT_ERR_MIN) {
        weft__future_fail(f, err);
    } else {
        char sym[128];
        weft__reportf(f->loop, WEFT_REPORT_MISUSE, -ERANGE,
                      "job %s returned %d, which is neither 0 nor an error code in [%d, -1]",
                      job_name(j, sym, sizeof sym), err, WEFT_ERR_MIN);
        weft__future_fail(f, -ERANGE);
    }
}

/* A finished or dropped job (out of every list, loop thread): settle its
 * future, or discard the result nobody will see, then drop the executor's
 * reference. */
static void settle(weft__job *j)
{
    weft_future *f = &j->fut.f;
    if (j->state == J_DROPPED) {
        release_arg(j);
        if (f->state == WEFT__PENDING)
            weft__future_cancel_now(f);
    } else if (f->state == WEFT__PENDING) {
        complete(j);
    } else if (j->flags & WEFT__JOB_ARG_IS_RESULT) {
        release_arg(j); /* cancelled while it ran */
    } else if (j->err == 0 && j->dtor && j->v.p) {
        j->dtor(j->v.p);
    }
    j->state = J_SETTLED;
    weft__future_unref(f);
}

/* ---- the layer: bindings, the default executor, close ------------------------------------ */

static void layer_close(weft_loop *loop, weft__layer *self);
static void layer_dump(weft_loop *loop, weft__layer *self, weft__strbuf *out);

static exec_layer *layer_of(weft_loop *loop, bool create)
{
    weft__layer *l = weft__layer_get(loop, WEFT__LAYER_EXECUTOR);
    if (l || !create)
        return (exec_layer *)(void *)l;
    if (!weft__futures(loop)) /* job futures need the future layer */
        return NULL;
    exec_layer *L = weft__alloc(loop, sizeof *L);
    if (!L)
        return NULL;
    memset(L, 0, sizeof *L);
    L->base.close = layer_close;
    L->base.dump = layer_dump;
    L->loop = loop;
    weft__list_init(&L->bindings);
    weft__layer_set(loop, WEFT__LAYER_EXECUTOR, &L->base);
    return L;
}

/* The loop's checks, then its layer (made if needed): NULL with the error
 * in *err. */
static exec_layer *checked_layer(weft_loop *loop, const char *call, int *err)
{
    if (!loop) {
        *err = -EINVAL;
        return NULL;
    }
    if (weft__wrong_thread(loop, call)) {
        *err = -EPERM;
        return NULL;
    }
    if (weft__closed(loop)) {
        *err = WEFT_ECLOSED;
        return NULL;
    }
    exec_layer *L = layer_of(loop, true);
    if (!L)
        *err = -ENOMEM;
    return L;
}

static weft_executor *default_of(exec_layer *L, int *err)
{
    if (!L->dflt) {
        *err = executor_make(&L->dflt, &L->dopts, weft__allocator(L->loop), true);
        if (*err)
            return NULL;
    }
    return L->dflt;
}

static void deliver(void *arg);

static binding *binding_of(exec_layer *L, weft_executor *ex, int *err)
{
    if (L->last && L->last->ex == ex)
        return L->last;
    for (weft_link *l = L->bindings.next; l != &L->bindings; l = l->next) {
        binding *b = WEFT_CONTAINER_OF(l, binding, link);
        if (b->ex == ex)
            return L->last = b;
    }
    binding *b = weft__alloc(L->loop, sizeof *b);
    if (!b) {
        *err = -ENOMEM;
        return NULL;
    }
    memset(b, 0, sizeof *b);
    *err = weft_async_init(&b->async, L->loop, deliver, b);
    if (*err) {
        weft__free(L->loop, b);
        return NULL;
    }
    weft__list_init(&b->running);
    weft__list_init(&b->done);
    b->ex = ex;
    pthread_mutex_lock(&ex->mu);
    if (ex->stop)
        *err = WEFT_ESHUTDOWN;
    else
        ex->refs++;
    pthread_mutex_unlock(&ex->mu);
    if (*err) {
        weft_async_close(&b->async);
        weft__free(L->loop, b);
        return NULL;
    }
    weft__list_push(&L->bindings, &b->link);
    return L->last = b;
}

/* The async: settle every job of this loop that finished since the last
 * time, in completion order. */
static void deliver(void *arg)
{
    binding *b = arg;
    weft_executor *ex = b->ex;
    weft_link list;
    weft__list_init(&list);
    pthread_mutex_lock(&ex->mu);
    weft__list_splice(&list, &b->done);
    pthread_mutex_unlock(&ex->mu);
    while (!weft__list_empty(&list)) {
        weft__job *j = WEFT_CONTAINER_OF(list.next, weft__job, link);
        weft__list_unlink(&j->link);
        settle(j);
    }
}

/* Close one binding (loop close): its queued jobs are dropped; on the
 * default executor the running ones are waited for (bounded); what still
 * runs is abandoned; the binding is detached, so no worker sends to it
 * again; then every future is settled here. */
static void binding_close(exec_layer *L, binding *b)
{
    weft_executor *ex = b->ex;
    weft_loop *loop = L->loop;
    bool dflt = ex == L->dflt;
    weft_link dropped, done, abandoned;
    weft__list_init(&dropped);
    weft__list_init(&done);
    weft__list_init(&abandoned);
    bool timed_out = false;

    pthread_mutex_lock(&ex->mu);
    for (weft_link *l = ex->queue.next, *next; b->nqueued && l != &ex->queue; l = next) {
        next = l->next;
        weft__job *j = WEFT_CONTAINER_OF(l, weft__job, link);
        if (j->b != b)
            continue;
        weft__list_unlink(&j->link);
        ex->nqueued--;
        b->nqueued--;
        j->state = J_DROPPED;
        weft__list_push(&dropped, &j->link);
    }
    if (dflt && !ex->stop) {
        ex->stop = true; /* the loop owns it: no more jobs, workers may exit */
        pthread_cond_broadcast(&ex->work);
    }
    if (dflt && b->nrunning && ex->close_timeout >= 0) {
        int64_t t = ex->close_timeout < MAX_WAIT_NS ? ex->close_timeout : MAX_WAIT_NS;
        struct timespec until;
        clock_gettime(WAIT_CLOCK, &until);
        int64_t ns = until.tv_nsec + t % 1000000000;
        until.tv_sec += (time_t)(t / 1000000000 + ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        ex->nwaiters++;
        if (ex->before_wait) {
            pthread_mutex_unlock(&ex->mu);
            ex->before_wait(ex->seam_ud);
            pthread_mutex_lock(&ex->mu);
        }
        while (b->nrunning && !timed_out)
            timed_out = pthread_cond_timedwait(&ex->idle, &ex->mu, &until) == ETIMEDOUT;
        ex->nwaiters--;
    }
    weft__list_splice(&done, &b->done);
    weft_allocator alloc = weft__allocator(loop);
    while (!weft__list_empty(&b->running)) {
        weft__job *j = WEFT_CONTAINER_OF(b->running.next, weft__job, link);
        weft__list_unlink(&j->link);
        b->nrunning--;
        j->state = J_ABANDONED;
        j->b = NULL;
        j->alloc = alloc;
        atomic_store_explicit(&j->owners, 2, memory_order_relaxed);
        weft__list_push(&abandoned, &j->link); /* the worker never touches link now */
    }
    b->detached = true;
    pthread_mutex_unlock(&ex->mu);
    weft_async_close(&b->async);

    /* the loop is closing: completing a future drops its callbacks */
    while (!weft__list_empty(&dropped)) {
        weft__job *j = WEFT_CONTAINER_OF(dropped.next, weft__job, link);
        weft__list_unlink(&j->link);
        settle(j);
    }
    while (!weft__list_empty(&done)) {
        weft__job *j = WEFT_CONTAINER_OF(done.next, weft__job, link);
        weft__list_unlink(&j->link);
        settle(j);
    }
    while (!weft__list_empty(&abandoned)) {
        weft__job *j = WEFT_CONTAINER_OF(abandoned.next, weft__job, link);
        weft__list_unlink(&j->link);
        char sym[128];
        const char *name = job_name(j, sym, sizeof sym);
        if (dflt && ex->close_timeout >= 0)
            weft__reportf(loop, WEFT_REPORT_SHUTDOWN, -ETIMEDOUT,
                          "loop close: job %s still running on the default executor after "
                          "%.3f s: abandoned (its future is cancelled; its result is released "
                          "on its worker thread)",
                          name, (double)ex->close_timeout / 1e9);
        else
            weft__reportf(loop, WEFT_REPORT_SHUTDOWN, -ECANCELED,
                          "loop close: job %s still running on %s: abandoned (its future is "
                          "cancelled; its result is released on its worker thread)",
                          name, dflt ? "the default executor" : "an executor");
        weft_future *f = &j->fut.f;
        if (f->state == WEFT__PENDING)
            weft__future_cancel_now(f);
        weft__future_unref(f); /* the executor's reference */
    }
    weft__list_unlink(&b->link);
    if (L->last == b)
        L->last = NULL;
    weft__free(loop, b);
    executor_unref(ex);
}

static void layer_close(weft_loop *loop, weft__layer *self)
{
    exec_layer *L = (exec_layer *)(void *)self;
    /* the default executor's binding first: its bounded wait is the one
     * that may take time, and other bindings abandon at once */
    for (weft_link *l = L->bindings.next; l != &L->bindings; l = l->next) {
        binding *b = WEFT_CONTAINER_OF(l, binding, link);
        if (b->ex == L->dflt) {
            binding_close(L, b);
            break;
        }
    }
    while (!weft__list_empty(&L->bindings))
        binding_close(L, WEFT_CONTAINER_OF(L->bindings.next, binding, link));
    if (L->dflt)
        executor_drop_owner(L->dflt);
    for (weft__job *j = L->free, *next; j; j = next) {
        next = (weft__job *)(void *)j->link.next;
        weft__free(loop, j);
    }
    weft__layer_set(loop, WEFT__LAYER_EXECUTOR, NULL);
    weft__free(loop, L);
}

static void layer_dump(weft_loop *loop, weft__layer *self, weft__strbuf *out)
{
    (void)loop;
    exec_layer *L = (exec_layer *)(void *)self;
    for (weft_link *l = L->bindings.next; l != &L->bindings; l = l->next) {
        binding *b = WEFT_CONTAINER_OF(l, binding, link);
        weft_executor *ex = b->ex;
        pthread_mutex_lock(&ex->mu);
        size_t q = b->nqueued, r = b->nrunning, all = ex->nqueued;
        unsigned alive = ex->alive, max = ex->max;
        pthread_mutex_unlock(&ex->mu);
        weft__strbuf_printf(out,
                            "executor %p%s: %zu job(s) of this loop queued, %zu running "
                            "(%zu queued in all; %u of %u threads)\n",
                            (void *)ex, ex == L->dflt ? " (default)" : "", q, r, all, alive, max);
    }
}

/* ---- making and submitting jobs ---------------------------------------------------------- */

weft__job *weft__job_new(weft_loop *loop, size_t extra, void **extra_out)
{
    int err = 0;
    exec_layer *L = checked_layer(loop, "weft_to_thread", &err);
    if (!L) {
        fail_with(err);
        return NULL;
    }
    weft__job *j;
    if (!extra && L->free) {
        j = L->free;
        L->free = (weft__job *)(void *)j->link.next;
    } else {
        size_t head = (sizeof *j + 15) & ~(size_t)15;
        if (extra > SIZE_MAX - head) {
            fail_with(-ENOMEM);
            return NULL;
        }
        j = weft__alloc(loop, head + extra);
        if (!j) {
            fail_with(-ENOMEM);
            return NULL;
        }
        if (extra_out)
            *extra_out = (char *)j + head;
    }
    memset(j, 0, sizeof *j);
    j->flags = extra ? 0 : J_RECYCLE;
    weft__future_init(&j->fut.f, &job_ops, loop);
    return j;
}

void weft__job_discard(weft__job *j)
{
    if (j)
        weft_future_unref(&j->fut.f);
}

weft_future *weft__job_submit(weft__job *j, weft_executor *ex, weft_work_fn *fn, void *arg,
                              weft_dtor *dtor, unsigned flags, const char *what)
{
    weft_future *f = &j->fut.f;
    exec_layer *L = layer_of(f->loop, false);
    int err = fn ? 0 : -EINVAL;
    if (!err && !ex)
        ex = default_of(L, &err);
    binding *b = err ? NULL : binding_of(L, ex, &err);
    if (err) {
        weft_future_unref(f);
        fail_with(err);
        return NULL;
    }
    j->fn = fn;
    j->arg = arg;
    j->dtor = dtor;
    j->what = what;
    j->flags = (uint8_t)(j->flags | (flags & WEFT__JOB_ARG_IS_RESULT));
    j->b = b;
    pthread_mutex_lock(&ex->mu);
    if (ex->stop) {
        err = WEFT_ESHUTDOWN;
    } else if (ex->nqueued >= ex->nidle && ex->nthreads < ex->max) {
        /* no idle worker left for this job: start one (lazily, up to max) */
        int e = spawn_locked(ex);
        if (e && ex->alive == 0)
            err = e; /* nobody could ever run it */
    }
    if (!err) {
        j->state = J_QUEUED;
        weft__list_push(&ex->queue, &j->link);
        ex->nqueued++;
        b->nqueued++;
        if (ex->nidle)
            pthread_cond_signal(&ex->work);
    }
    pthread_mutex_unlock(&ex->mu);
    if (err) {
        j->b = NULL;
        weft_future_unref(f);
        fail_with(err);
        return NULL;
    }
    f->refs++; /* the executor's, until the job is settled */
    return f;
}

weft_future *weft_executor_submit_ptr(weft_executor *ex, weft_loop *loop, weft_work_fn *fn,
                                      void *arg, weft_dtor *dtor)
{
    if (!fn) {
        fail_with(-EINVAL);
        return NULL;
    }
    weft__job *j = weft__job_new(loop, 0, NULL);
    return j ? weft__job_submit(j, ex, fn, arg, dtor, 0, NULL) : NULL;
}

weft_future *weft_executor_submit(weft_executor *ex, weft_loop *loop, weft_work_fn *fn, void *arg)
{
    return weft_executor_submit_ptr(ex, loop, fn, arg, NULL);
}

weft_future *weft_to_thread(weft_loop *loop, weft_work_fn *fn, void *arg)
{
    return weft_executor_submit_ptr(NULL, loop, fn, arg, NULL);
}

weft_executor *weft_executor_default(weft_loop *loop)
{
    int err = 0;
    exec_layer *L = checked_layer(loop, "weft_executor_default", &err);
    weft_executor *ex = L ? default_of(L, &err) : NULL;
    if (!ex)
        fail_with(err);
    return ex;
}

int weft_executor_set_default_options(weft_loop *loop, const weft_executor_options *opts)
{
    if (!opts)
        return -EINVAL;
    int err = 0;
    exec_layer *L = checked_layer(loop, "weft_executor_set_default_options", &err);
    if (!L)
        return err;
    if (L->dflt)
        return -EBUSY;
    err = check_options(opts);
    if (err)
        return err;
    L->dopts = *opts;
    L->dopts.alloc = (weft_allocator){NULL, NULL};
    return 0;
}
