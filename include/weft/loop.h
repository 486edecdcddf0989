/* weft/loop.h - the event loop: ready queue, timers, fd watchers, clock.
 *
 * One thread runs one loop.  An iteration does, in this order:
 *   0. the iteration hook, a requested dump, then the cross-thread inbox
 *      (weft_call_soon_threadsafe, weft_async_send) joins the ready queue;
 *   1. poll timeout = 0 if the ready queue is not empty or the loop is
 *      stopping; else until the earliest timer; else infinite;
 *   2. one backend wait; each ready fd queues its watcher once, with the
 *      events seen;
 *   3. refresh the cached clock; every expired timer leaves the heap for the
 *      due list, in (deadline, start sequence) order: equal deadlines fire
 *      FIFO and no timer fires before its deadline;
 *   4. run exactly what was queued when this step began: the ready queue
 *      (callbacks queued before, then I/O), then the due timers.  Whatever
 *      they schedule, timers included, runs in a later iteration.
 * When no fd is watched and the timeout is 0 the backend is not asked (it
 * could report nothing), so a busy ready queue costs no system call.
 *
 * Threads.  Every function here must be called from the thread running the
 * loop (or, while it does not run, from one thread at a time), except
 * weft_call_soon_threadsafe, weft_async_send and weft_loop_request_dump.
 * A loop created with WEFT_LOOP_DEBUG checks this and refuses calls from
 * other threads with -EPERM (and a WEFT_REPORT_MISUSE report).
 *
 * Errors are negative codes (weft/common.h); a call that fails changes
 * nothing and never calls the callback it was given.
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

/* Loop flags (weft_loop_options.flags). */
enum {
    /* Virtual clock: time starts at 0 and only moves when the loop would
     * block with timers pending; then it jumps to the earliest deadline.
     * Timeout tests run in microseconds and never flake. */
    WEFT_LOOP_VIRTUAL_CLOCK = 1u << 0,
    /* Honour the environment: $WEFT_BACKEND ("epoll", "kqueue", "poll") when
     * opts.backend is NULL, and $WEFT_CLOCK=virtual.  For tests and
     * examples; without this flag weft never reads the environment. */
    WEFT_LOOP_ENV = 1u << 1,
    /* Check that every loop call comes from the thread running the loop:
     * one from another thread (while the loop runs) is reported as
     * WEFT_REPORT_MISUSE and refused with -EPERM.  Costs a flag test per
     * call when off. */
    WEFT_LOOP_DEBUG = 1u << 2,
};

/* Options for weft_loop_new; zero-initialise and set what you need. */
typedef struct weft_loop_options {
    weft_allocator alloc;     /* {NULL, NULL}: libc malloc/realloc/free */
    const char *backend;      /* "epoll", "kqueue", "poll" or NULL for the best one */
    unsigned flags;           /* WEFT_LOOP_* */
    int64_t lag_threshold_ns; /* slow-callback report threshold:
                                 0 = default (100 ms), < 0 = off */
} weft_loop_options;

/* Options that only set WEFT_LOOP_ENV: the examples use them, so that
 * their tests can run them on the virtual clock (WEFT_CLOCK=virtual) and
 * on either backend (WEFT_BACKEND=poll).
 *     WEFT_RUN(WEFT_ENV_OPTIONS, NULL, main_co);                          */
#define WEFT_ENV_OPTIONS (&(const weft_loop_options){.flags = WEFT_LOOP_ENV})

/* Create a loop.  opts may be NULL for defaults.  On success stores the new
 * loop in *out and returns 0; else returns -EINVAL (bad argument or unknown
 * backend name), -ENOMEM, or the backend's error, and *out is untouched.
 * The caller owns the loop and frees it with weft_loop_destroy. */
int weft_loop_new(weft_loop **out, const weft_loop_options *opts);

/* Close the loop: every layer above releases what it holds (tasks still
 * pending are released and reported), then every queued callback, timer
 * and fd watcher is dropped without running, and the backend and the lag
 * watchdog thread are released.  Caller-owned handles, timers, watchers
 * and asyncs stay valid as objects (inactive) until you close them.
 * Afterwards every scheduling call returns WEFT_ECLOSED.  Idempotent.
 * Returns 0, -EINVAL (NULL) or -EBUSY (the loop is running, or close is
 * already in progress: a report hook called by close may not close). */
int weft_loop_close(weft_loop *loop);

/* Close the loop if needed and free it.  Returns 0, or -EBUSY (running, or
 * called from inside its close) and nothing is freed; NULL is a no-op
 * returning 0. */
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

/* Stop with an exit status (asyncio's SystemExit; task.h explains how
 * WEFT_RUN and WEFT_EXIT use it): records status (0 to INT_MAX - 1; the
 * first request wins) and stops the loop as weft_loop_stop does.  Returns
 * 0, -EINVAL (NULL loop, status out of range), -EPERM (debug thread check),
 * WEFT_ECLOSED. */
int weft_exit(weft_loop *loop, int status);

/* True if weft_exit was called on loop (and not cleared by
 * weft_exit_clear); its status in *status (may be NULL). */
bool weft_exit_requested(const weft_loop *loop, int *status);

/* Forget an exit request (a loop run again after handling one). */
void weft_exit_clear(weft_loop *loop);

/* True while run_forever / run_once executes (inside every callback). */
bool weft_loop_is_running(const weft_loop *loop);

/* True once weft_loop_close has begun. */
bool weft_loop_is_closed(const weft_loop *loop);

/* The loop running in the calling thread, or NULL. */
weft_loop *weft_running_loop(void);

/* Name of the backend in use: "epoll", "kqueue" or "poll"; NULL for NULL. */
const char *weft_loop_backend(const weft_loop *loop);

/* ---- time ------------------------------------------------------------------ */

/* The loop's cached monotonic time in nanoseconds.  It is read once per
 * iteration (at the timer step when timers are pending, else at the first
 * call), so every callback of one iteration sees the same value.  With the
 * virtual clock it is the virtual time.  0 for NULL. */
int64_t weft_loop_now(weft_loop *loop);

/* The same time in seconds (asyncio's loop.time()). */
double weft_loop_time(weft_loop *loop);

/* Seconds (double) become nanoseconds in every seconds API of the loop by
 * one rule: NaN is -EINVAL; values beyond the int64 range, infinities
 * included, saturate to INT64_MAX / INT64_MIN; the rest truncate toward
 * zero.  Deadlines (now + delay) saturate both ways. */

/* ---- caller-owned handles: scheduling them never fails -------------------- */

/* A one-shot callback node owned by the caller. */
typedef struct weft_handle {
    weft_node node; /* private */
    weft_cb *fn;
    void *arg;
} weft_handle;

/* Prepare a handle to call fn(arg).  No allocation.  NULL h is a no-op. */
void weft_handle_init(weft_handle *h, weft_cb *fn, void *arg);

/* Queue h to run in the next batch.  A handle already queued stays where it
 * is.  Returns 0; only -EINVAL (NULL, or no fn) or WEFT_ECLOSED. */
int weft_handle_schedule(weft_loop *loop, weft_handle *h);

/* Unqueue h.  Returns 0, or -ENOENT if it was not queued, -EINVAL (NULL).
 * After cancel (or once it runs) the caller may free h. */
int weft_handle_cancel(weft_handle *h);

/* True while h is queued. */
bool weft_handle_pending(const weft_handle *h);

/* ---- caller-owned timers ------------------------------------------------------
 *
 * weft_timer_init reserves the timer's place in the loop's heap (24 bytes),
 * so starting it never fails; weft_timer_close gives the place back and
 * must precede freeing the struct.  Timers armed for the same deadline
 * one after another share one heap entry (a bucket, in start order), so
 * start, stop and expiry are O(1) for them; otherwise start and stop are
 * O(log n) in a 4-ary heap (no tombstones) and firing O(log n) per timer.
 * The deadline lives in the heap, not in the struct: read it with
 * weft_timer_when.  56 bytes on LP64; every field is private. */
typedef struct weft_timer {
    weft_cb *fn;
    void *arg;
    weft_loop *loop; /* NULL: not initialised, or closed */
    int64_t repeat;  /* period in ns, 0 = one-shot (a due one-shot: its deadline) */
    uint32_t index;  /* heap position (a bucket's first), in a bucket, due position, or idle */
    uint32_t state;  /* flags (and the due slot of a repeating timer) */
    struct weft_timer *next, *prev; /* its bucket's ring, in start order */
} weft_timer;

/* Bind t to loop and make it call fn(arg).  Returns 0, -EINVAL, -ENOMEM
 * (the heap could not grow), WEFT_ECLOSED or -EPERM (debug thread check). */
int weft_timer_init(weft_timer *t, weft_loop *loop, weft_cb *fn, void *arg);

/* Arm t to fire at loop time now + delay_ns (a negative delay is a deadline
 * in the past: it fires at the next timer step, before timers due later),
 * then every repeat_ns if repeat_ns > 0.  Starting an active timer moves it
 * (a due one that has not run yet is superseded).  Returns 0; only -EINVAL
 * (NULL, uninitialised, repeat < 0), WEFT_ECLOSED or -EPERM.
 * A repeating timer is re-armed when it expires (step 3, so before its
 * callback runs), at deadline + period, or now + period if it fell behind;
 * if that deadline would pass INT64_MAX ns it is not re-armed (it has
 * fired its last). */
int weft_timer_start_ns(weft_timer *t, int64_t delay_ns, int64_t repeat_ns);

/* The same with an absolute deadline on the loop clock. */
int weft_timer_start_at_ns(weft_timer *t, int64_t when_ns, int64_t repeat_ns);

/* The same in seconds (see the seconds rule above): NaN -> -EINVAL,
 * repeat_s < 0 -> -EINVAL. */
int weft_timer_start(weft_timer *t, double delay_s, double repeat_s);

/* Disarm t; a due timer that has not run yet does not run.  Returns 0,
 * -ENOENT if it was not active, -EINVAL, -EPERM. */
int weft_timer_stop(weft_timer *t);

/* True while t is armed or due-but-not-yet-run.  False for NULL, for a
 * zeroed (never initialised) timer and after weft_timer_close. */
bool weft_timer_active(const weft_timer *t);

/* The deadline of an active timer (loop clock, ns); INT64_MIN otherwise. */
int64_t weft_timer_when(const weft_timer *t);

/* Stop t and release its heap reservation; t may then be freed.
 * Idempotent; NULL is a no-op.  Works after the loop was closed (not after
 * it was destroyed). */
void weft_timer_close(weft_timer *t);

/* ---- convenience scheduling (asyncio's call_soon / call_later / call_at) -- */

/* Token for a convenience call; lets you cancel it or ask about it at any
 * time while the loop lives, including after it ran (the token is then
 * simply stale).  Tokens of a closed loop are all stale. */
typedef struct weft_call {
    void *p;
    uint64_t gen;
} weft_call;

/* Queue fn(arg) for the next batch.  The node (104 bytes) comes from the
 * loop's free list, so steady state allocates nothing.  If out is not NULL
 * it receives a token.  Returns 0, -EINVAL, -ENOMEM, WEFT_ECLOSED or
 * -EPERM (fn is then never called).  Costs O(1); the common case (a free
 * node, no debug checks) is inline, through the macro below. */
int weft_call_soon(weft_loop *loop, weft_cb *fn, void *arg, weft_call *out);

/* Private: append n at the tail of the list s, the stores ordered so that
 * they stay plain moves.  The one list append of weft: weft__list_push
 * (src/loop_internal.h) and the headers' inline fast paths use it. */
static inline void weft__link_append(weft_link *s, weft_link *n)
{
    weft_link *p = s->prev;
    n->prev = p;
    p->next = n;
    n->next = s;
    s->prev = n;
}

/* Private: move the links of the non-empty list src, in order, to the
 * tail of dst, leaving src empty (the stores ordered as above).  The one
 * splice: weft__list_splice and the inline completion of a future use it. */
static inline void weft__link_splice(weft_link *dst, weft_link *src)
{
    weft_link *first = src->next, *last = src->prev;
    first->prev = dst->prev;
    src->next = src;
    dst->prev->next = first;
    src->prev = src;
    last->next = dst;
    dst->prev = last;
}

/* Private (do not touch): the record of what runs now, for the lag
 * report.  A callback: fn and arg.  A run function that describes itself
 * (a task step): fn is weft__run_obj, describe(obj, r, buf, n) fills a
 * report when the step turns out slow, and arg is free for it (a task
 * step keeps its resume line there).  src/loop_internal.h documents the
 * protocol. */
struct weft_report;
typedef void weft__describe_fn(const void *obj, struct weft_report *r, char *buf, size_t n);
typedef struct weft__running {
    weft_cb *fn; /* the callback, weft__run_obj (see obj), or NULL */
    weft__describe_fn *describe;
    void *arg;
    const void *obj;
} weft__running;

/* Private: the marker that a self-describing run stores in weft__running.fn. */
void weft__run_obj(void *unused);

/* private (for weft__call_soon_inline and the task and future layers'
 * inline paths; do not touch): the first members of the loop's struct
 * (src/loop_internal.h lays them out with this very macro, and call.c
 * checks the offsets), and a convenience call node (call.c, call_pool.c).
 * The last two are the layers' above: the loop only zeroes them. */
struct weft__call;
struct weft__dfuture;
#define WEFT__LOOP_HEAD                                                                      \
    weft_link *ready; /* where new work is queued: one of queues[] */                        \
    weft_link *batch; /* the other one: the batch being run, or empty */                     \
    weft_link queues[2];                                                                     \
    struct weft__call *pool;     /* free call nodes (LIFO; NULL in debug builds) */          \
    unsigned state;              /* WEFT__RUNNING ... */                                     \
    unsigned flags;              /* WEFT_LOOP_* */                                           \
    weft__running run;           /* what runs now (the lag report) */                        \
    struct weft__dfuture *ffree; /* the future layer's recycled plain futures (chained       \
                                    through f.waiters.next; always NULL in a poison          \
                                    build) */                                                \
    const void *task_now;        /* the task layer's: the task whose step runs, or NULL (not \
                                    next to run.obj, which a step stores the same value in:  \
                                    the two stores would become a vector store) */
typedef struct weft__loop_head {
    WEFT__LOOP_HEAD
} weft__loop_head;

typedef struct weft__call {
    weft_node node;         /* ready queue; while free, link.next chains the pool */
    weft_timer t;           /* fn, arg, loop; armed for call_later */
    uint64_t gen;           /* the current use's generation, bumped at release */
    uint64_t cancelled;     /* gen of the last use that was cancelled, + 1 */
    struct weft__call *all; /* the loop's next node (close frees them all) */
} weft__call;

/* weft_call_soon's warm path, inline (private): no debug checks (tested
 * first: another thread may read nothing else) and a free node; closed
 * loops (whose pool is empty) and everything else take the function. */
static inline int weft__call_soon_inline(weft_loop *loop, weft_cb *fn, void *arg, weft_call *out)
{
    weft__loop_head *h = (weft__loop_head *)(void *)loop;
    weft__call *c;
    if (!loop || !fn || (h->flags & WEFT_LOOP_DEBUG) || !(c = h->pool))
        return weft_call_soon(loop, fn, arg, out);
    h->pool = (weft__call *)(void *)c->node.link.next;
    c->t.fn = fn;
    c->t.arg = arg;
    weft__link_append(h->ready, &c->node.link);
    if (out) {
        out->p = c;
        out->gen = c->gen;
    }
    return 0;
}
/* (the function itself stays: (weft_call_soon)(...) and &weft_call_soon) */
#define weft_call_soon(loop, fn, arg, out) weft__call_soon_inline((loop), (fn), (arg), (out))

/* Call fn(arg) at loop time now + delay seconds.  A delay <= 0 fires at the
 * next timer step; a negative one is a deadline in the past, so it fires
 * before a call_later(0) made earlier (asyncio: call_at(now + delay)).
 * NaN is -EINVAL.  Otherwise as weft_call_soon; costs O(log timers). */
int weft_call_later(weft_loop *loop, double delay, weft_cb *fn, void *arg, weft_call *out);

/* Call fn(arg) at absolute loop time when (seconds). */
int weft_call_at(weft_loop *loop, double when, weft_cb *fn, void *arg, weft_call *out);

/* Nanosecond forms of weft_call_later and weft_call_at. */
int weft_call_later_ns(weft_loop *loop, int64_t delay_ns, weft_cb *fn, void *arg, weft_call *out);
int weft_call_at_ns(weft_loop *loop, int64_t when_ns, weft_cb *fn, void *arg, weft_call *out);

/* Cancel a pending convenience call.  Returns 0 if it was pending and now
 * never runs, -ENOENT if it already ran or was cancelled (or the loop is
 * closed), -EINVAL (NULL, or a token of another loop), -EPERM. */
int weft_call_cancel(weft_loop *loop, weft_call call);

/* True iff that call was cancelled with weft_call_cancel before it ran.
 * Each node remembers its last cancelled use, so the answer is exact until
 * a later call served by the same node is cancelled too; after that (and
 * on a closed loop) it is false.  A call that ran is never "cancelled". */
bool weft_call_cancelled(weft_loop *loop, weft_call call);

/* True while that call is queued or armed (not yet run, not cancelled). */
bool weft_call_pending(weft_loop *loop, weft_call call);

/* ---- caller-owned fd watchers (libuv's uv__io_t habit) ---------------------
 *
 * weft_io_init registers the fd with the backend at once, so a bad fd is
 * refused there; after that start and stop only record the interest and
 * never fail: the backend applies the change at its next wait.  Readiness
 * is level-triggered: while the fd stays ready, the callback runs in every
 * iteration, once, with every event seen.  Errors and hang-ups are
 * reported as WEFT_READABLE | WEFT_WRITABLE (so a read or write sees them),
 * plus WEFT_IO_ERROR for an error condition or an fd that turned out to be
 * closed; a change the kernel refuses at the next wait (the fd was closed
 * meanwhile) is reported as WEFT_IO_ERROR and clears the interest.
 * Embed the struct (64 bytes on LP64, fields private) in your own object
 * and get back to it with WEFT_CONTAINER_OF.  Costs: no allocation after
 * init, no lookup per event, one backend call per changed watcher per
 * wait (epoll). */
enum { WEFT_READABLE = 1u, WEFT_WRITABLE = 2u, WEFT_IO_ERROR = 4u };

typedef struct weft_io weft_io;

/* Called from the loop with the events seen (WEFT_READABLE, ...). */
typedef void weft_io_cb(weft_io *w, unsigned events);

struct weft_io {
    weft_node node;   /* ready queue */
    weft_link change; /* the loop's list of watchers to sync */
    weft_loop *loop;  /* NULL: not initialised, or closed */
    weft_io_cb *cb;
    int fd;
    uint8_t events;  /* interest (WEFT_READABLE | WEFT_WRITABLE) */
    uint8_t backend; /* the backend's own state */
    uint8_t revents; /* events gathered for the next callback */
    uint8_t flags;
};

/* Watch fd with cb, no interest yet.  Returns 0, -EINVAL (NULL, no cb),
 * -EBADF (bad or closed fd), -EPERM (fd type not pollable: a regular file
 * with epoll), -EEXIST (this loop already has a watcher for fd), -ENOMEM,
 * WEFT_ECLOSED or -EPERM (debug thread check). */
int weft_io_init(weft_io *w, weft_loop *loop, int fd, weft_io_cb *cb);

/* Add interest (WEFT_READABLE and/or WEFT_WRITABLE).  Never fails on an
 * initialised watcher: 0, or -EINVAL (NULL, uninitialised, other bits),
 * WEFT_ECLOSED, -EPERM. */
int weft_io_start(weft_io *w, unsigned events);

/* Remove interest; events already gathered for those directions are
 * dropped (a callback queued only for them does not run).  0 or -EINVAL
 * (as weft_io_start), WEFT_ECLOSED, -EPERM. */
int weft_io_stop(weft_io *w, unsigned events);

/* The current interest; 0 for NULL or a closed watcher. */
unsigned weft_io_events(const weft_io *w);

/* The fd (-1 for NULL or a closed watcher). */
int weft_io_fd(const weft_io *w);

/* The loop (NULL for NULL or a closed watcher). */
weft_loop *weft_io_loop(const weft_io *w);

/* Deregister and unqueue w; the caller may then free it or close the fd.
 * Idempotent; NULL is a no-op.  Works after the loop was closed. */
void weft_io_close(weft_io *w);

/* ---- asyncio-style fd watchers (level-triggered, persistent) --------------- */

/* Call fn(arg) in every iteration in which fd is readable (writable).
 * A second add for the same fd and direction replaces the first.  Built
 * on weft_io: a per-fd record (96 bytes, allocated on first use, kept until
 * the loop closes) whose callback runs the reader, then the writer.  The
 * change is applied at once, so errors are synchronous: returns 0, -EBADF
 * (bad or closed fd), -EPERM (not pollable), -EEXIST (fd has a weft_io
 * of its own in this loop), -ENOMEM, -EINVAL or WEFT_ECLOSED. */
int weft_add_reader(weft_loop *loop, int fd, weft_cb *fn, void *arg);
int weft_add_writer(weft_loop *loop, int fd, weft_cb *fn, void *arg);

/* Stop watching fd for reading (writing); an already queued callback for it
 * does not run.  Returns 0, -ENOENT if there was no such watcher, -EINVAL
 * or WEFT_ECLOSED.  Works after the fd was closed. */
int weft_remove_reader(weft_loop *loop, int fd);
int weft_remove_writer(weft_loop *loop, int fd);

/* ---- other threads --------------------------------------------------------- */

/* Queue fn(arg) from any thread and wake the loop if it is blocked.  Runs
 * in the loop thread at the start of the next iteration, in call order.
 * Allocates a 48-byte node through the loop's allocator (which must then
 * be thread-safe).  Returns 0, -EINVAL, -ENOMEM or WEFT_ECLOSED.  The loop
 * must not be destroyed while other threads may call this. */
int weft_call_soon_threadsafe(weft_loop *loop, weft_cb *fn, void *arg);

/* An allocation-free cross-thread wakeup (libuv's uv_async_t): any thread
 * sends, the loop thread calls fn(arg).  Sends that arrive before the
 * callback starts coalesce into one call.  56 bytes on LP64, fields
 * private; caller-owned. */
typedef struct weft_async {
    weft_node node;
    weft_loop *loop;
    weft_cb *fn;
    void *arg;
    int pending; /* guarded by the loop's inbox lock */
    int flags;
} weft_async;

/* Bind a to loop.  Returns 0, -EINVAL, WEFT_ECLOSED, -EPERM. */
int weft_async_init(weft_async *a, weft_loop *loop, weft_cb *fn, void *arg);

/* Any thread: make the loop call fn(arg) soon (one lock, one write to the
 * wakeup fd when the inbox was empty).  Returns 0, -EINVAL, or
 * WEFT_ECLOSED once the loop is closed.  Not async-signal-safe (it takes
 * the inbox lock, unlike libuv's uv_async_send): for signals use
 * weft_add_signal_handler (weft/signal.h). */
int weft_async_send(weft_async *a);

/* Loop thread: forget a pending send and unbind; a may then be freed.  No
 * weft_async_send may race with it.  Idempotent; NULL is a no-op. */
void weft_async_close(weft_async *a);

/* ---- reports ----------------------------------------------------------------- */

/* What the loop (and the layers above) report to the report hook: things
 * nobody can return an error for. */
typedef enum weft_report_kind {
    WEFT_REPORT_UNOBSERVED = 1, /* a failure nobody observed */
    WEFT_REPORT_RELEASED,       /* a task released while pending (loop closed) */
    WEFT_REPORT_SLOW,           /* a callback or task step ran past the threshold */
    WEFT_REPORT_MISUSE,         /* coroutine or API misuse */
    WEFT_REPORT_SHUTDOWN,       /* bounded shutdown gave up on something */
    WEFT_REPORT_IO,             /* an fd or socket problem the loop survived */
    WEFT_REPORT_DUMP,           /* weft_loop_request_dump output */
    WEFT_REPORT_OTHER,
} weft_report_kind;

/* One report.  Everything in it, strings included, is valid only during
 * the hook call. */
typedef struct weft_report {
    weft_report_kind kind;
    int err;               /* the error code, or 0 */
    const char *message;   /* one line (several for DUMP); never NULL */
    const char *detail;    /* the error's attached message (WEFT_THROW_MSG...), or
                              NULL; not repeated in message */
    const void *task;      /* the task concerned, or NULL */
    const char *task_name; /* or NULL */
    const char *coroutine; /* or NULL */
    const char *file;      /* or NULL */
    int line;              /* or 0 */
    int64_t duration_ns;   /* SLOW: how long it ran (estimate, see docs/loop.md) */
    weft_cb *fn;           /* SLOW: the callback, NULL for a task step */
    void *arg;             /* SLOW: its argument, or the task */
} weft_report;

/* A report hook.  Called from the loop thread (MISUSE: from the thread
 * that misused the loop).  It may call the loop's API, except that
 * weft_loop_close and weft_loop_destroy return -EBUSY from inside a close. */
typedef void weft_report_hook(weft_loop *loop, const weft_report *r, void *ud);

/* Install the report hook; NULL restores the default, which prints one line
 * to stderr: "weft: <message>[: <detail>][ (<strerror of err>)]" (the
 * message never repeats the detail: that is its own field); for SLOW the
 * message is "slow callback: <what> ran <ms> ms".  Returns 0 or -EINVAL. */
int weft_loop_set_report_hook(weft_loop *loop, weft_report_hook *hook, void *ud);

/* ---- accounting and introspection -------------------------------------------- */

/* Set the slow-callback threshold in ns (0 = default 100 ms, < 0 = off).
 * While it is on, a running loop has a watchdog thread that samples its
 * progress; see docs/loop.md.  Returns 0, -EINVAL or -EPERM. */
int weft_loop_set_lag_threshold(weft_loop *loop, int64_t ns);

/* Call hook(loop, ud) at the start of every iteration, before the inbox
 * joins the ready queue; NULL removes it.  Returns 0, -EINVAL or -EPERM. */
int weft_loop_set_iteration_hook(weft_loop *loop, void (*hook)(weft_loop *, void *), void *ud);

/* Ask for a state dump: at the start of the next iteration the loop emits
 * a WEFT_REPORT_DUMP report with the loop's summary and every layer's
 * dump (the task layer lists its tasks).  Async-signal-safe and callable
 * from any thread (an atomic flag and a wakeup); must not race with
 * weft_loop_destroy.  Returns 0, -EINVAL or WEFT_ECLOSED. */
int weft_loop_request_dump(weft_loop *loop);

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
