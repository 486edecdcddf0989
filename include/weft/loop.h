/* weft/loop.h - the event loop: ready queue, timers, fd watchers, clock.
 *
 * One thread runs one loop.  An iteration does, in this order:
 *   1. poll timeout = 0 if the ready queue is not empty or the loop is
 *      stopping; else until the earliest timer; else infinite;
 *   2. one backend wait; each ready fd queues its reader, then its writer;
 *   3. refresh the cached clock; move every expired timer to the ready queue
 *      in (deadline, start sequence) order: equal deadlines fire FIFO and no
 *      timer fires before its deadline;
 *   4. run exactly the callbacks that were queued when this phase began;
 *      whatever they schedule runs in the next iteration.
 * When no fd is watched the backend is not asked (it could report nothing),
 * so a busy ready queue costs no system call per iteration.
 *
 * All functions here must be called from the loop's thread, except
 * weft_call_soon_threadsafe.
 */
#ifndef WEFT_LOOP_H
#define WEFT_LOOP_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_loop weft_loop;

/* A callback: called with the argument given when it was scheduled. */
typedef void weft_cb(void *arg);

/* Links of an intrusive list, and a node of the ready queue (private).
 * They are public only so that callers can own the structs that contain
 * them. */
typedef struct weft_link {
    struct weft_link *next, *prev;
} weft_link;

typedef struct weft_node {
    weft_link link;
    void (*run)(struct weft_node *node);
} weft_node;

/* ---- loop lifecycle ------------------------------------------------------ */

/* Loop flags. */
enum {
    /* Virtual clock: time starts at 0 and only moves when the loop would
     * block with timers pending; then it jumps to the earliest deadline.
     * Timeout tests run in microseconds and never flake.  Also selected by
     * the environment variable WEFT_CLOCK=virtual. */
    WEFT_LOOP_VIRTUAL_CLOCK = 1u << 0,
};

/* Options for weft_loop_new; zero-initialise and set what you need. */
typedef struct weft_loop_options {
    weft_allocator alloc;     /* {NULL, NULL}: libc malloc/realloc/free */
    const char *backend;      /* "epoll", "poll" or NULL for the best one;
                                 NULL also honours $WEFT_BACKEND */
    unsigned flags;           /* WEFT_LOOP_* */
    int64_t lag_threshold_ns; /* slow-callback report threshold:
                                 0 = default (100 ms), < 0 = off */
} weft_loop_options;

/* Create a loop.  opts may be NULL for defaults.  On success stores the new
 * loop in *out and returns 0; else returns -EINVAL (bad argument or unknown
 * backend name), -ENOMEM, or the backend's error, and *out is untouched.
 * The caller owns the loop and frees it with weft_loop_destroy. */
int weft_loop_new(weft_loop **out, const weft_loop_options *opts);

/* Close the loop: drop every queued callback, timer and fd watcher without
 * running them and release the backend.  Tasks still pending are released
 * and reported.  Afterwards every scheduling call returns WEFT_ECLOSED.
 * Idempotent.  Returns 0, -EINVAL (NULL) or -EBUSY (the loop is running). */
int weft_loop_close(weft_loop *loop);

/* Close the loop if needed and free it.  Returns 0, -EBUSY if it is running
 * (nothing is freed then); NULL is a no-op returning 0. */
int weft_loop_destroy(weft_loop *loop);

/* Run iterations until weft_loop_stop.  Returns 0 once stopped;
 * WEFT_ECLOSED, -EBUSY (this loop, or another loop, is already running in
 * this thread), -EINVAL (NULL), or a backend error.  The stop request is
 * cleared on return. */
int weft_loop_run_forever(weft_loop *loop);

/* Run exactly one iteration (which may block, per the timeout rule).
 * Same errors as weft_loop_run_forever. */
int weft_loop_run_once(weft_loop *loop);

/* Ask run_forever to return after the current batch of callbacks.  Before
 * run_forever, makes the next run_forever do exactly one iteration polled
 * with timeout 0.  Returns 0, -EINVAL or WEFT_ECLOSED. */
int weft_loop_stop(weft_loop *loop);

/* True while run_forever / run_once executes (inside every callback). */
bool weft_loop_is_running(const weft_loop *loop);

/* True after weft_loop_close. */
bool weft_loop_is_closed(const weft_loop *loop);

/* The loop running in the calling thread, or NULL. */
weft_loop *weft_running_loop(void);

/* Name of the backend in use: "epoll" or "poll". */
const char *weft_loop_backend(const weft_loop *loop);

/* ---- time ------------------------------------------------------------------ */

/* The loop's cached monotonic time in nanoseconds.  It is read once per
 * iteration (at the timer phase when timers are pending, else at the first
 * call), so every callback of one iteration sees the same value.  With the
 * virtual clock it is the virtual time. */
int64_t weft_loop_now(weft_loop *loop);

/* The same time in seconds (asyncio's loop.time()). */
double weft_loop_time(weft_loop *loop);

/* ---- caller-owned handles: starting them never fails ---------------------- */

/* A one-shot callback node owned by the caller. */
typedef struct weft_handle {
    weft_node node; /* private */
    weft_cb *fn;
    void *arg;
} weft_handle;

/* Prepare a handle to call fn(arg).  No allocation. */
void weft_handle_init(weft_handle *h, weft_cb *fn, void *arg);

/* Queue h to run in the next batch.  A handle already queued stays where it
 * is.  Returns 0; only -EINVAL (NULL) or WEFT_ECLOSED. */
int weft_handle_schedule(weft_loop *loop, weft_handle *h);

/* Unqueue h.  Returns 0, or -ENOENT if it was not queued, -EINVAL (NULL).
 * After cancel (or after it ran) the caller may free h. */
int weft_handle_cancel(weft_handle *h);

/* True while h is queued. */
bool weft_handle_pending(const weft_handle *h);

/* A timer owned by the caller.  weft_timer_init reserves its place in the
 * loop's timer heap, so weft_timer_start never runs out of memory;
 * weft_timer_close gives the place back and must precede freeing it. */
typedef struct weft_timer {
    weft_handle h;   /* private */
    weft_loop *loop; /* private */
    int64_t when;    /* deadline (ns, loop clock) while armed */
    int64_t repeat;  /* period in ns; 0 = one-shot */
    size_t index;    /* private: heap position */
} weft_timer;

/* Bind t to loop and make it call fn(arg).  Returns 0, -EINVAL, -ENOMEM
 * (the heap could not grow) or WEFT_ECLOSED. */
int weft_timer_init(weft_timer *t, weft_loop *loop, weft_cb *fn, void *arg);

/* Arm t to fire delay_ns after the loop's cached time (negative = 0), then
 * every repeat_ns if repeat_ns > 0.  Re-arming a pending timer moves it.
 * Returns 0; only -EINVAL (NULL, uninitialised, repeat < 0) or WEFT_ECLOSED.
 * A repeating timer is re-armed before its callback runs, at
 * deadline + period (or now + period if it fell behind). */
int weft_timer_start_ns(weft_timer *t, int64_t delay_ns, int64_t repeat_ns);

/* Same as weft_timer_start with an absolute deadline on the loop clock. */
int weft_timer_start_at_ns(weft_timer *t, int64_t when_ns, int64_t repeat_ns);

/* Disarm t, and unqueue it if it already expired but has not run.
 * Returns 0, -ENOENT if it was not active, -EINVAL. */
int weft_timer_stop(weft_timer *t);

/* Deadline while active, else INT64_MIN. */
int64_t weft_timer_when(const weft_timer *t);

/* True while t is armed or expired-but-not-yet-run. */
bool weft_timer_active(const weft_timer *t);

/* Stop t and release its heap reservation; t may then be freed.
 * Idempotent; NULL is a no-op. */
void weft_timer_close(weft_timer *t);

/* ---- convenience scheduling (asyncio's call_soon / call_later / call_at) -- */

/* Token for a convenience call; lets you cancel it safely at any time,
 * including after it ran (the token is then simply stale). */
typedef struct weft_call {
    void *p;
    uint64_t gen;
} weft_call;

/* Queue fn(arg) for the next batch.  The node comes from the loop's free
 * list, so steady state allocates nothing.  If out is not NULL it receives a
 * token for weft_call_cancel.  Returns 0, -EINVAL, -ENOMEM or WEFT_ECLOSED
 * (fn is then never called). */
int weft_call_soon(weft_loop *loop, weft_cb *fn, void *arg, weft_call *out);

/* Call fn(arg) delay seconds from now (loop time; <= 0 means at the next
 * timer pass).  NaN is -EINVAL.  Otherwise as weft_call_soon. */
int weft_call_later(weft_loop *loop, double delay, weft_cb *fn, void *arg, weft_call *out);

/* Call fn(arg) at absolute loop time when (seconds). */
int weft_call_at(weft_loop *loop, double when, weft_cb *fn, void *arg, weft_call *out);

/* Nanosecond forms of weft_call_later and weft_call_at. */
int weft_call_later_ns(weft_loop *loop, int64_t delay_ns, weft_cb *fn, void *arg, weft_call *out);
int weft_call_at_ns(weft_loop *loop, int64_t when_ns, weft_cb *fn, void *arg, weft_call *out);

/* Cancel a pending convenience call.  Returns 0 if it was pending and now
 * never runs, -ENOENT if it already ran or was cancelled, -EINVAL (NULL). */
int weft_call_cancel(weft_loop *loop, weft_call call);

/* ---- fd watchers (level-triggered, persistent, like asyncio) --------------- */

/* Call fn(arg) in every iteration in which fd is readable (writable).
 * A second add for the same fd and direction replaces the first.
 * Returns 0, -EBADF (bad or closed fd), -EPERM (fd type not pollable, e.g. a
 * regular file with epoll), -ENOMEM, -EINVAL or WEFT_ECLOSED. */
int weft_add_reader(weft_loop *loop, int fd, weft_cb *fn, void *arg);
int weft_add_writer(weft_loop *loop, int fd, weft_cb *fn, void *arg);

/* Stop watching fd for reading (writing); an already queued callback for it
 * is unqueued too.  Returns 0, -ENOENT if there was no such watcher,
 * -EINVAL or WEFT_ECLOSED.  Works after the fd was closed. */
int weft_remove_reader(weft_loop *loop, int fd);
int weft_remove_writer(weft_loop *loop, int fd);

/* ---- other threads --------------------------------------------------------- */

/* The only entry point safe from other threads: queue fn(arg) and wake the
 * loop if it is blocked.  Runs in the loop thread at the start of the next
 * iteration, in call order.  Returns 0, -EINVAL, -ENOMEM or WEFT_ECLOSED.
 * The loop must not be destroyed while other threads may call this. */
int weft_call_soon_threadsafe(weft_loop *loop, weft_cb *fn, void *arg);

/* ---- hooks and accounting -------------------------------------------------- */

/* What the lag hook receives for a callback or task step that ran longer
 * than the loop's threshold. */
typedef struct weft_lag_report {
    int64_t duration_ns; /* how long it ran (coarse clock, ~1-4 ms steps
                            unless the threshold is below 20 ms) */
    const char *what;    /* one-line description of what ran */
    weft_cb *fn;         /* the callback, or NULL for a task step */
    void *arg;           /* its argument, or the task */
} weft_lag_report;

/* A slow-callback hook: called from the loop thread right after the slow
 * callback returned; r and r->what are valid only during the call. */
typedef void weft_lag_hook(weft_loop *loop, const weft_lag_report *r, void *ud);

/* Install the slow-callback hook; NULL restores the default, which prints
 * one line to stderr.  Returns 0 or -EINVAL. */
int weft_loop_set_lag_hook(weft_loop *loop, weft_lag_hook *hook, void *ud);

/* Set the slow-callback threshold in ns (0 = default 100 ms, < 0 = off).
 * Returns 0 or -EINVAL. */
int weft_loop_set_lag_threshold(weft_loop *loop, int64_t ns);

/* Error reports the loop cannot return to anyone: a failed task nobody
 * observed, a task released while pending, coroutine misuse.  err is the
 * error code (or 0), message a one-line description. */
typedef void weft_error_hook(weft_loop *loop, int err, const char *message, void *ud);

/* Install the error hook; NULL restores the default (one line to stderr).
 * Returns 0 or -EINVAL. */
int weft_loop_set_error_hook(weft_loop *loop, weft_error_hook *hook, void *ud);

/* Counters, cheap and always kept. */
typedef struct weft_loop_stats {
    uint64_t iterations;  /* completed iterations */
    uint64_t callbacks;   /* callbacks and task steps run */
    uint64_t polls;       /* backend waits */
    uint64_t eintr;       /* backend waits interrupted by a signal */
    uint64_t lag_reports; /* slow callbacks reported */
} weft_loop_stats;

/* Copy the loop's counters into *out.  Returns 0 or -EINVAL. */
int weft_loop_get_stats(const weft_loop *loop, weft_loop_stats *out);

#ifdef __cplusplus
}
#endif
#endif
