/* loop_internal.h - what the layers above the loop (future, task, executor,
 * net, os) may use of it.  Never installed.
 *
 * The contract, in order: intrusive lists; per-layer state and its close
 * and dump hooks; allocation; the ready queue; time; reports; the running
 * identity and the lag watchdog's flag; the debug thread check; a string
 * builder.  struct weft_loop is defined at the end only because the inline
 * helpers need it: its fields belong to the loop layer (src/loop_impl.h
 * declares the rest of that layer's internals); read and write them only
 * through the functions here.
 */
#ifndef WEFT_LOOP_INTERNAL_H
#define WEFT_LOOP_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "assert.h"
#include "weft/loop.h"

/* ---- intrusive circular lists with a sentinel ----------------------------------
 * A link that is in no list has next == prev == NULL.  All O(1). */
static inline void weft__list_init(weft_link *s)
{
    s->next = s->prev = s;
}

static inline bool weft__list_empty(const weft_link *s)
{
    return s->next == s;
}

/* Append n at the tail of the list s. */
static inline void weft__list_push(weft_link *s, weft_link *n)
{
    WEFT_ASSERT(n->next == NULL && n->prev == NULL);
    weft__link_append(s, n);
}

/* Remove n from the list it is in; n must be in one. */
static inline void weft__list_unlink(weft_link *n)
{
    WEFT_ASSERT(n->next != NULL && n->prev != NULL);
    WEFT_ASSERT(n->next->prev == n && n->prev->next == n);
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

/* Move every link of src to the tail of dst, keeping their order. */
static inline void weft__list_splice(weft_link *dst, weft_link *src)
{
    if (!weft__list_empty(src))
        weft__link_splice(dst, src);
}

/* True while n is in a list (the ready queue, for a node). */
static inline bool weft__node_linked(const weft_node *n)
{
    return n->link.next != NULL;
}

static inline void weft__node_unlink(weft_node *n)
{
    weft__list_unlink(&n->link);
}

/* ---- strings built through the allocator ---------------------------------------- */

/* Growable text: embed it, init, printf into it as often as needed, read
 * it with weft__strbuf_str, free it.  Grows by doubling through the loop's
 * allocator; after a failed allocation the text is "" and further printfs
 * are ignored. */
typedef struct weft__strbuf {
    weft_loop *loop;
    char *buf;
    size_t len, cap;
    bool failed;
} weft__strbuf;

void weft__strbuf_init(weft__strbuf *b, weft_loop *loop);
void weft__strbuf_printf(weft__strbuf *b, const char *fmt, ...);
/* The text so far; "" if empty or after an allocation failure. */
const char *weft__strbuf_str(const weft__strbuf *b);
void weft__strbuf_free(weft__strbuf *b);

/* ---- per-layer state ------------------------------------------------------------- */

enum weft__layer_id {
    WEFT__LAYER_FUTURE,
    WEFT__LAYER_TASK,
    WEFT__LAYER_EXECUTOR,
    WEFT__LAYER_NET,
    WEFT__LAYER_OS,
    WEFT__LAYER_UDP,     /* datagram endpoints (udp.c) */
    WEFT__LAYER_PROCESS, /* subprocesses (process.c): closes before the signals it uses */
    WEFT__LAYERS
};

/* A layer's per-loop state starts with this header (embed it first, or
 * point to it).  The loop never frees it: close or destroy does. */
typedef struct weft__layer weft__layer;
struct weft__layer {
    /* Release everything the layer holds for this loop.  Called by
     * weft_loop_close, highest id first, before the loop drops its own
     * queues, timers and fds (so a layer may still stop its timers, cancel
     * its handles, close its watchers; scheduling new work returns
     * WEFT_ECLOSED by then).  It then frees its state and clears its slot
     * (weft__layer_set(loop, id, NULL)), or keeps what users may still
     * reach until destroy (the future layer keeps its pool).  NULL: nothing
     * to do. */
    void (*close)(weft_loop *loop, weft__layer *self);
    /* Append a human-readable dump of the layer's state (NULL: nothing). */
    void (*dump)(weft_loop *loop, weft__layer *self, weft__strbuf *out);
    /* weft_loop_destroy, after close: free what close kept (NULL: close
     * freed everything). */
    void (*destroy)(weft_loop *loop, weft__layer *self);
};

static inline weft__layer *weft__layer_get(const weft_loop *loop, int id);
/* Install (or, with NULL, clear) layer id's state.  The loop calls its
 * hooks from then on. */
void weft__layer_set(weft_loop *loop, int id, weft__layer *state);

/* True if fd has a reader (dir WEFT_READABLE) or writer (WEFT_WRITABLE)
 * registered with weft_add_reader / weft_add_writer, or a caller-owned
 * weft_io, in loop (io.c). */
bool weft__fd_watched(const weft_loop *loop, int fd, unsigned dir);

/* ---- allocation through the loop's hook ----------------------------------------- */

/* The default allocator hook (libc's realloc and free), for layers that
 * need a hook of their own when the caller gave none. */
void *weft__libc_realloc(void *ud, void *p, size_t n);

/* n > 0; NULL on failure.  weft__free(loop, NULL) is a no-op. */
void *weft__alloc(weft_loop *loop, size_t n);
void *weft__realloc(weft_loop *loop, void *p, size_t n);
void weft__free(weft_loop *loop, void *p);

/* The loop's allocator hook itself, for memory that must be freed where
 * the loop cannot be asked: off its thread, or after it was destroyed (the
 * executor's blocks that a worker still uses when the loop closes). */
static inline weft_allocator weft__allocator(const weft_loop *loop);

/* ---- the ready queue ---------------------------------------------------------------- */

/* Queue n at the tail of the ready queue: it runs (n->run(n)) in the next
 * batch, unless unlinked first (weft__node_unlink).  O(1), no allocation.
 * A run function that frees or recycles its node before calling user code
 * records what runs (weft__running_cb / weft__running_obj below). */
static inline void weft__ready_push(weft_loop *loop, weft_node *n);

/* Queue every node of list (in order) at the tail of the ready queue and
 * leave list empty: O(1) (a future's waiters, for instance). */
static inline void weft__ready_splice(weft_loop *loop, weft_link *list);

/* True if nothing is queued on the ready queue. */
static inline bool weft__ready_empty(const weft_loop *loop);

/* True once weft_loop_close has begun: refuse new work with WEFT_ECLOSED. */
static inline bool weft__closed(const weft_loop *loop);

/* ---- time ---------------------------------------------------------------------------- */

/* The cached loop time (ns), read now if it is stale. */
static inline int64_t weft__now(weft_loop *loop);

/* Seconds to nanoseconds, the one policy: NaN -> -EINVAL; beyond the int64
 * range (infinities included) saturates to INT64_MAX / INT64_MIN; else
 * truncates toward zero.  Returns 0 and stores *out, or -EINVAL. */
int weft__sec_to_ns(double s, int64_t *out);

/* a + b, saturating at INT64_MAX and INT64_MIN. */
static inline int64_t weft__add_sat(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* ---- reports --------------------------------------------------------------------------- */

/* Hand r to the loop's report hook as is (r->message must be set). */
void weft__report(weft_loop *loop, const weft_report *r);

/* Report with a printf-formatted message; long texts are formatted through
 * the allocator (truncated if that fails); every other field is 0. */
void weft__reportf(weft_loop *loop, weft_report_kind kind, int err, const char *fmt, ...);

/* The name of a function pointer's target, where the platform can tell
 * (dladdr), else its bytes in hex: writes into buf, returns buf.  Pass the
 * pointer's bytes: weft__symbol(&fn, sizeof fn, buf, n). */
const char *weft__symbol(const void *fn_bytes, size_t fn_size, char *buf, size_t n);

/* ---- what runs, and the lag watchdog -----------------------------------------------------
 *
 * The loop clears the record before each node runs.  A run function that
 * frees or recycles its node before calling user code records what runs,
 * so that a slow-callback report can name it: */
static inline void weft__running_cb(weft_loop *loop, weft_cb *fn, void *arg);

/* A run function that describes itself (a task step) records an object and
 * a describe function instead; the loop calls d(obj, r, buf, n) only if the
 * step turns out slow, to fill the report's task fields and write a short
 * description of what ran into buf ("task 'name' step resumed at f.c:12").
 * obj must stay valid until the run function returns, or until it called
 * weft__lag_capture. */
/* (weft__describe_fn and the record, weft__running, are in weft/loop.h:
 * the task step's inline path writes the record.) */
static inline void weft__running_obj(weft_loop *loop, weft__describe_fn *d, const void *obj);

/* True when the watchdog has flagged the callback running now as slow (one
 * relaxed load; the report itself is emitted when the callback returns). */
static inline bool weft__lag_flagged(const weft_loop *loop);

/* Call before freeing or recycling the obj given to weft__running_obj: if
 * the watchdog flagged this callback, the pending SLOW report is filled
 * from the describe function now; either way the loop will not touch obj
 * again.  Inline: a few instructions when nothing is flagged. */
static inline void weft__lag_capture(weft_loop *loop);
void weft__lag_capture_slow(weft_loop *loop); /* lag.c: the flagged case */

/* ---- the debug thread check ------------------------------------------------------------- */

/* For every call of a layer's API that needs the loop thread: true when the
 * loop was made with WEFT_LOOP_DEBUG, runs, and this is another thread; the
 * misuse is then reported ("<call> called from another thread") and the
 * caller must refuse with -EPERM and do nothing.  One flag test when off. */
static inline bool weft__wrong_thread(weft_loop *loop, const char *call);

/* ==== the loop layer's state (fields private to src/loop*.c and friends) ================ */

struct weft__backend;
struct weft__call;

/* Slots in the loop's cache of open timer buckets: 2^WEFT__BUCKET_BITS
 * (8 KiB on LP64, allocated when the first timer is initialised). */
#define WEFT__BUCKET_BITS 10
#define WEFT__BUCKET_CACHE (1u << WEFT__BUCKET_BITS)

typedef struct weft__hent { /* a timer heap entry: the key lives here */
    int64_t when;
    uint64_t seq;
    weft_timer *t;
} weft__hent;

/* (weft__running, the record of what runs, and weft__run_obj, the marker
 * that weft__running_obj stores in it, are in weft/loop.h.) */

typedef struct weft__lag {
    /* shared with the watchdog thread */
    _Atomic uint64_t tick;     /* callbacks started: the loop's progress */
    _Atomic uint64_t flag;     /* a tick the watchdog found stuck */
    _Atomic int64_t seen;      /* monotonic ns at which it first saw it */
    _Atomic int64_t threshold; /* ns; <= 0: off */
    _Atomic int busy;          /* the loop runs and is not blocked */
    _Atomic int asleep;        /* the watchdog waits for busy */
    pthread_mutex_t mu;        /* the watchdog's sleep and stop */
    pthread_cond_t cv;
    bool stop; /* guarded by mu */
    /* loop thread only */
    bool started;
    bool failed; /* thread creation failed (reported once) */
    /* pthread_create; a seam for tests that make thread creation fail */
    int (*spawn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    pthread_t thread;
    pid_t pid;         /* of the process that started it */
    uint64_t reported; /* last tick reported */
    uint64_t captured; /* tick of the captured report */
    weft_report cap;
    char cap_what[200];
} weft__lag;

enum {
    WEFT__RUNNING = 1u << 0,
    WEFT__STOPPING = 1u << 1,
    WEFT__CLOSING = 1u << 2, /* close in progress */
    WEFT__CLOSED = 1u << 3,  /* close done */
    WEFT__VIRTUAL = 1u << 4,
    WEFT__ONCE = 1u << 5,   /* run_once: one iteration */
    WEFT__HOOKED = 1u << 6, /* iter_hook is set (tested with the others) */
};

/* WEFT__ATTN_LAG: the watchdog raised its flag (for the callbacks-only
 * loop, whose attn test is the lag check of a one-node batch; the full
 * iteration drops it).  WEFT__ATTN_STATE: a stop was requested, an
 * iteration hook set or the first fd watcher started (the state bits and
 * nwatched say which), so that the callbacks-only loop's one attn test
 * covers them too; the full iteration drops it, the state stays. */
enum {
    WEFT__ATTN_INBOX = 1u,
    WEFT__ATTN_DUMP = 2u,
    WEFT__ATTN_CLOSED = 4u,
    WEFT__ATTN_LAG = 8u,
    WEFT__ATTN_STATE = 16u,
};

struct weft_loop {
    /* hot: what the call_soon / iteration paths touch; the first members
     * are weft__loop_head's (weft/loop.h: weft_call_soon's inline path
     * reads them through it) */
    WEFT__LOOP_HEAD
    int nwatched;          /* watchers with interest */
    _Atomic unsigned attn; /* WEFT__ATTN_*: look before the iteration */
    void (*iter_hook)(weft_loop *, void *);
    void *iter_ud;
    int exit_status; /* weft_exit: status + 1; 0 = not requested */
    int64_t now;
    bool now_valid;
    bool virtual_clock; /* WEFT__VIRTUAL, where the iteration needs it */

    /* timers (timer.c, heap.c) */
    struct {
        weft__hent *e;
        uint32_t n, cap, reserved;
        /* WEFT__BUCKET_CACHE slots, allocated with the heap array: by
         * hash of a deadline, the newest bucket of that deadline, as its
         * first timer (live: every change of a first updates it), or NULL */
        weft_timer **bucket;
    } heap;
    struct {
        weft_timer **e; /* expired timers waiting for step 4; NULL: stopped */
        uint32_t n, cap;
    } due;
    uint64_t timer_seq;

    weft_loop_stats stats; /* .callbacks is lag.tick */
    weft_allocator alloc;
    weft_report_hook *report_hook;
    void *report_ud;
    _Atomic(void *) owner; /* marker of the running thread, or NULL */

    /* convenience call nodes (call.c) */
    struct weft__call *calls;                        /* every node, for close */
    struct weft__call *quarantine, *quarantine_tail; /* WEFT__POISON */
    uint32_t nquarantine;

    /* fd watchers (io.c) and the backend */
    weft_io **fds; /* by fd */
    size_t nfds;
    weft_link changes; /* watchers whose interest the backend must sync */
    const struct weft__backend *be;
    void *be_data;

    /* other threads (inbox.c) */
    pthread_mutex_t inbox_mu;
    weft_link inbox;   /* guarded by inbox_mu */
    bool inbox_closed; /* guarded by inbox_mu */

    weft__layer *layers[WEFT__LAYERS];
    weft__lag lag;
};

/* ==== the inline helpers ================================================================= */

static inline weft__layer *weft__layer_get(const weft_loop *loop, int id)
{
    WEFT_ASSERT(id >= 0 && id < WEFT__LAYERS);
    return loop->layers[id];
}

static inline weft_allocator weft__allocator(const weft_loop *loop)
{
    return loop->alloc;
}

static inline void weft__ready_push(weft_loop *loop, weft_node *n)
{
    weft__list_push(loop->ready, &n->link);
}

static inline void weft__ready_splice(weft_loop *loop, weft_link *list)
{
    weft__list_splice(loop->ready, list);
}

static inline bool weft__ready_empty(const weft_loop *loop)
{
    return weft__list_empty(loop->ready);
}

static inline bool weft__closed(const weft_loop *loop)
{
    return (loop->state & (WEFT__CLOSING | WEFT__CLOSED)) != 0;
}

int64_t weft__clock_read(weft_loop *loop); /* clock.c */

static inline int64_t weft__now(weft_loop *loop)
{
    return loop->now_valid ? loop->now : weft__clock_read(loop);
}

static inline void weft__running_cb(weft_loop *loop, weft_cb *fn, void *arg)
{
    loop->run.fn = fn;
    loop->run.arg = arg;
}

static inline void weft__running_obj(weft_loop *loop, weft__describe_fn *d, const void *obj)
{
    loop->run.fn = weft__run_obj;
    loop->run.describe = d;
    loop->run.obj = obj;
}

static inline void weft__lag_capture(weft_loop *loop)
{
    if (loop->run.fn == weft__run_obj) {
        if (weft__lag_flagged(loop))
            weft__lag_capture_slow(loop);
        loop->run.fn = NULL; /* obj is gone */
    }
}

static inline bool weft__lag_flagged(const weft_loop *loop)
{
    weft__lag *lag = (weft__lag *)&loop->lag; /* loads only */
    return atomic_load_explicit(&lag->flag, memory_order_acquire) ==
           atomic_load_explicit(&lag->tick, memory_order_relaxed);
}

bool weft__wrong_thread_slow(weft_loop *loop, const char *call); /* loop.c */

static inline bool weft__wrong_thread(weft_loop *loop, const char *call)
{
    return (loop->flags & WEFT_LOOP_DEBUG) && weft__wrong_thread_slow(loop, call);
}

#endif
