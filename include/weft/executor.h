/* weft/executor.h - worker threads for blocking calls: to_thread, executors,
 * getaddrinfo and getnameinfo.
 *
 * An executor is a fixed pool of worker threads with one FIFO of jobs
 * (asyncio's ThreadPoolExecutor, libuv's threadpool).  A job runs a blocking
 * function on a worker and completes a future on the loop's thread with its
 * value or its error code: everything but the function itself (the future,
 * its callbacks, the task that awaits it) stays on the loop's thread.
 *
 *     weft_future *f = weft_to_thread(loop, read_config, path);
 *     WEFT_AWAIT(self, f);                   -- asyncio.to_thread(fn, arg)
 *
 * Each loop has a default executor, made on first use (weft_to_thread,
 * weft_getaddrinfo, weft_getnameinfo); explicit executors
 * (weft_executor_new) can be sized, shared by several loops in several
 * threads, and shut down.
 *
 * Threads.  weft_executor_new, _shutdown, _free and _get_stats may be called
 * from any thread.  Everything that takes a loop (submitting, the default
 * executor) must be called from that loop's thread, as the loop's API.
 * Worker threads start lazily (when a job is queued and no worker is idle)
 * up to the executor's size, never more, run with every signal blocked, and
 * never touch a loop: a finished job goes to a list its loop drains, and
 * one weft_async wakes the loop per burst of completions.
 *
 * Memory.  A job is one block (144 bytes on LP64) allocated on the loop's
 * thread through the loop's allocator and recycled by the loop; a worker
 * allocates nothing (libc's getaddrinfo allocates its result).  See
 * "Abandoned jobs" below for the one case in which a block is released on
 * a worker thread.
 *
 * Cancellation (asyncio's rule).  Cancelling a job's future before a worker
 * took the job removes it from the queue: its function never runs, and the
 * future is CANCELLED at once.  Cancelling it while the function runs also
 * cancels the future at once, but a running thread cannot be interrupted:
 * the function runs to its end, and its result is then discarded on the
 * loop's thread (a pointer result's destructor runs there).
 *
 * Abandoned jobs.  weft_loop_close shuts the loop's default executor down:
 * queued jobs are dropped (their futures cancelled), and running ones are
 * waited for, at most close_timeout_ns (5 s by default; asyncio waits up to
 * 300 s).  A job still running then is reported (WEFT_REPORT_SHUTDOWN,
 * naming its function), its future is cancelled and it is abandoned: the
 * loop forgets it, its worker finishes it alone and releases its result
 * (the destructor) and its block on the worker thread, through the loop's
 * allocator hook (which must then be thread-safe: libc's is), and the
 * executor's memory lives until its last thread is done.  A loop closed
 * with jobs on an explicit executor does the same without waiting: queued
 * ones are dropped, running ones abandoned (and reported), and the
 * executor serves its other loops on.
 *
 * Errors are negative codes (weft/common.h).  Constructors returning a
 * future return NULL on failure with weft_last_error() set; awaiting that
 * NULL fails with the same error.
 */
#ifndef WEFT_EXECUTOR_H
#define WEFT_EXECUTOR_H

#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_executor weft_executor;

/* A blocking function, run on a worker thread: do the work, store the
 * result in *out and return 0, or return a negative error code in
 * [WEFT_ERR_MIN, -1] (then *out is ignored: free what you allocated).
 * -ECANCELED makes the future CANCELLED.  Any other return value is a bug:
 * the future fails with -ERANGE and the loop reports it (MISUSE).  The
 * function must not call weft functions that take a loop, except
 * weft_call_soon_threadsafe and weft_async_send. */
typedef int weft_work_fn(void *arg, weft_value *out);

/* The largest executor, and the size of one made with threads = 0. */
#define WEFT_EXECUTOR_MAX_THREADS 1024u
#define WEFT_EXECUTOR_DEFAULT_THREADS 4u

/* Options for weft_executor_new and weft_executor_set_default_options;
 * zero-initialise and set what you need. */
typedef struct weft_executor_options {
    /* Worker threads at most; 0: WEFT_EXECUTOR_DEFAULT_THREADS, which is
     * 4 as libuv's threadpool (not tied to the CPU count: the jobs are
     * blocking calls that mostly wait; size a pool for CPU-bound work to
     * the CPUs yourself). */
    unsigned threads;
    /* Stack of each worker, bytes; 0: the system default. */
    size_t stack_size;
    /* The default executor only: how long weft_loop_close waits for jobs
     * still running before it abandons them (0: 5 s; < 0: it does not
     * wait).  Ignored by weft_executor_new. */
    int64_t close_timeout_ns;
    /* weft_executor_new only: the allocator of the executor's own block
     * ({NULL, NULL}: libc).  The block may be freed by whichever thread
     * lets go of it last (a worker included), so the hook must be
     * thread-safe.  The default executor uses its loop's. */
    weft_allocator alloc;
} weft_executor_options;

/* Make an explicit executor (no thread starts yet).  opts may be NULL.
 * Stores it in *out and returns 0, or returns -EINVAL (out NULL, threads
 * above WEFT_EXECUTOR_MAX_THREADS, a stack size the system refuses) or
 * -ENOMEM, and *out is untouched.  The caller owns it: weft_executor_free.
 * Any thread. */
int weft_executor_new(weft_executor **out, const weft_executor_options *opts);

/* Stop accepting jobs (submitting fails with WEFT_ESHUTDOWN from now on).
 * wait = true (ThreadPoolExecutor.shutdown(wait=True)): the queued jobs
 * still run; returns once every worker has finished and been joined.
 * Their completions reach their loops as usual.  Blocks the calling
 * thread, a loop's thread included (its loop cannot run meanwhile:
 * completions wait for it).  wait = false: queued jobs are dropped (their
 * futures are cancelled on their loops' threads, at those loops' next
 * iteration) and running ones are not waited for: they finish and deliver
 * on their own, and the workers then exit.  Idempotent; a later wait =
 * true still waits.  Returns 0, -EINVAL (NULL), or -EDEADLK for wait =
 * true from one of ex's own workers (it would wait for itself).  Any
 * thread.  Works on a loop's default executor too (asyncio's
 * shutdown_default_executor, synchronously). */
int weft_executor_shutdown(weft_executor *ex, bool wait);

/* Let go of an explicit executor: shut it down without waiting if that was
 * not done, then join the workers if none runs a job, else let them finish
 * on their own (the memory lives until the last one is done).  Never
 * blocks on a job: call weft_executor_shutdown(ex, true) first to wait.
 * Loops bound to ex keep it alive until they close (their running jobs
 * still deliver).  Returns 0 (NULL: no-op), or -EPERM for a loop's default
 * executor (the loop owns it).  ex must not be used afterwards. */
int weft_executor_free(weft_executor *ex);

/* Run fn(arg) on a worker of ex (NULL: the loop's default executor, as
 * run_in_executor(None, ...)) and return a future, bound to loop, for its
 * outcome: the value fn stored, fn's error, or CANCELLED (see
 * Cancellation).  The executor holds the future until the job finished.
 * The first job on an executor in a loop binds them (one allocation kept
 * until the loop closes).  NULL on failure: -EINVAL (loop or fn NULL),
 * WEFT_ECLOSED, WEFT_ESHUTDOWN (ex was shut down), -ENOMEM, -EPERM (debug
 * thread check), or pthread_create's error when ex has no worker and
 * cannot start one (-EAGAIN).  Loop thread; O(1). */
WEFT_NODISCARD weft_future *weft_executor_submit(weft_executor *ex, weft_loop *loop,
                                                 weft_work_fn *fn, void *arg);

/* weft_executor_submit for a pointer result: the future owns out->p with
 * destructor dtor (as weft_future_set_ptr), and a result nobody will see
 * (the job was cancelled while it ran) is destroyed on the loop's thread.
 * dtor NULL is weft_executor_submit. */
WEFT_NODISCARD weft_future *weft_executor_submit_ptr(weft_executor *ex, weft_loop *loop,
                                                     weft_work_fn *fn, void *arg, weft_dtor *dtor);

/* asyncio.to_thread: weft_executor_submit on the loop's default executor. */
WEFT_NODISCARD weft_future *weft_to_thread(weft_loop *loop, weft_work_fn *fn, void *arg);

/* Run fn(arg) on a worker and await it, inside a coroutine body:
 * WEFT_AWAIT(self, weft_to_thread(loop, fn, arg)). */
#define WEFT_TO_THREAD(self, fn, arg) \
    WEFT_AWAIT(self, weft_to_thread(weft_task_loop(task), (fn), (arg)))

/* The loop's default executor, made now if needed (4 workers unless
 * weft_executor_set_default_options said otherwise; no thread starts
 * yet).  Borrowed: the loop owns it and shuts it down at close.  NULL on
 * failure (-EINVAL, WEFT_ECLOSED, -ENOMEM, -EPERM).  Loop thread. */
weft_executor *weft_executor_default(weft_loop *loop);

/* Options for the loop's default executor, before it is made: threads,
 * stack_size and close_timeout_ns count (alloc is the loop's).  Returns
 * 0, -EINVAL (NULL loop or opts, options weft_executor_new refuses),
 * -EBUSY (the default executor exists already), WEFT_ECLOSED, -ENOMEM or
 * -EPERM.  Loop thread. */
int weft_executor_set_default_options(weft_loop *loop, const weft_executor_options *opts);

/* A snapshot of an executor's counters. */
typedef struct weft_executor_stats {
    unsigned max_threads; /* its size */
    unsigned threads;     /* workers alive now */
    unsigned idle;        /* of which waiting for a job */
    size_t queued;        /* jobs waiting for a worker */
    size_t running;       /* jobs whose function runs now */
    uint64_t completed;   /* functions that returned, since it was made */
    bool shutdown;        /* weft_executor_shutdown (or loop close) was called */
} weft_executor_stats;

/* Fill *out.  Returns 0 or -EINVAL.  Any thread. */
int weft_executor_get_stats(weft_executor *ex, weft_executor_stats *out);

/* ---- name resolution on the default executor --------------------------------------------- */

struct addrinfo;
struct sockaddr;

/* The weft code of a getaddrinfo/getnameinfo return value: 0 for 0, a
 * WEFT_EAI_* code (weft/common.h), -ENOMEM for EAI_MEMORY, -errno for
 * EAI_SYSTEM (call it right after the failing call, errno intact; -EIO if
 * errno is 0), WEFT_EAI_UNKNOWN for a value this build does not know. */
int weft_eai_error(int eai);

/* getaddrinfo(host, service, hints) on the loop's default executor
 * (asyncio's loop.getaddrinfo).  host, service and the hints (ai_flags,
 * ai_family, ai_socktype, ai_protocol; NULL: none) are copied.  The
 * future's value .p is the struct addrinfo list, owned by the future (its
 * destructor is freeaddrinfo): take it with weft_future_take_ptr and free
 * it with freeaddrinfo, or leave it to the future.  Its error is a
 * WEFT_EAI_* code, -ENOMEM or -errno (weft_eai_error).  NULL on failure:
 * -EINVAL (host and service both NULL), or as weft_to_thread. */
WEFT_NODISCARD weft_future *weft_getaddrinfo(weft_loop *loop, const char *host, const char *service,
                                             const struct addrinfo *hints);

/* The value of weft_getnameinfo: host and service as NUL-terminated
 * strings (sizes: glibc's NI_MAXHOST and NI_MAXSERV). */
typedef struct weft_nameinfo {
    char host[1025];
    char service[32];
} weft_nameinfo;

/* getnameinfo(addr, addrlen, flags: NI_*) on the loop's default executor
 * (asyncio's loop.getnameinfo).  The address is copied.  The future's
 * value .p is a weft_nameinfo owned by the future (take it with
 * weft_future_take_ptr and release it with weft_nameinfo_free).  Errors as
 * weft_getaddrinfo.  NULL on failure: -EINVAL (addr NULL, addrlen 0 or
 * larger than a struct sockaddr_storage), or as weft_to_thread. */
WEFT_NODISCARD weft_future *weft_getnameinfo(weft_loop *loop, const struct sockaddr *addr,
                                             size_t addrlen, int flags);

/* Release a weft_nameinfo taken from its future.  NULL is a no-op.  Any
 * thread (it frees through the loop's allocator hook). */
void weft_nameinfo_free(void *ni);

#ifdef __cplusplus
}
#endif
#endif
