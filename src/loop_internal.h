/* loop_internal.h - the loop's private state and helpers shared by src/.
 * Never installed. */
#ifndef WEFT_LOOP_INTERNAL_H
#define WEFT_LOOP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>

#include "weft/loop.h"

struct weft_report;

/* ---- intrusive circular lists with a sentinel --------------------------------
 * A link that is in no list has next == prev == NULL. */
static inline void weft__list_init(weft_link *s)
{
    s->next = s->prev = s;
}

static inline bool weft__list_empty(const weft_link *s)
{
    return s->next == s;
}

static inline void weft__list_push(weft_link *s, weft_link *n)
{
    n->prev = s->prev;
    n->next = s;
    s->prev->next = n;
    s->prev = n;
}

static inline void weft__list_unlink(weft_link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

/* Move every link of src to the tail of dst, keeping their order. O(1). */
static inline void weft__list_splice(weft_link *dst, weft_link *src)
{
    if (weft__list_empty(src))
        return;
    weft_link *first = src->next, *last = src->prev;
    first->prev = dst->prev;
    dst->prev->next = first;
    last->next = dst;
    dst->prev = last;
    weft__list_init(src);
}

static inline bool weft__node_linked(const weft_node *n)
{
    return n->link.next != NULL;
}

static inline void weft__node_unlink(weft_node *n)
{
    weft__list_unlink(&n->link);
}

/* ---- timer heap (heap.c): 4-ary min-heap keyed by (when, seq) -------------- */
typedef struct weft__hent {
    int64_t when;
    uint64_t seq;
    weft_timer *t;
} weft__hent;

typedef struct weft__heap {
    weft__hent *e;
    size_t n;        /* entries in use */
    size_t cap;      /* entries allocated */
    size_t reserved; /* timers that may be armed at once (initialised ones) */
} weft__heap;

#define WEFT__NO_INDEX ((size_t)-1)

void weft__heap_insert(weft__heap *h, weft_timer *t, uint64_t seq);
void weft__heap_remove(weft__heap *h, weft_timer *t);
/* The root changed key (re-armed in place): restore the order. */
void weft__heap_fix_down(weft__heap *h, size_t k);

/* ---- backends -------------------------------------------------------------- */
enum { WEFT__IN = 1u, WEFT__OUT = 2u };

typedef struct weft__backend {
    const char *name;
    int (*open)(weft_loop *loop);
    void (*close)(weft_loop *loop);
    /* Change the interest set of fd from old_ev to new_ev (0 = unwatch). */
    int (*watch)(weft_loop *loop, int fd, unsigned old_ev, unsigned new_ev);
    /* Wait up to timeout_ns (-1 = forever); report each ready fd with
     * weft__io_ready.  Returns >= 0 or a negative errno (-EINTR too). */
    int (*wait)(weft_loop *loop, int64_t timeout_ns);
} weft__backend;

extern const weft__backend weft__backend_poll;
#ifdef __linux__
extern const weft__backend weft__backend_epoll;
#endif

/* Called by a backend's wait for each ready fd (WEFT__IN / WEFT__OUT bits;
 * errors and hang-ups are reported as both). */
void weft__io_ready(weft_loop *loop, int fd, unsigned ev);

/* ---- pooled convenience nodes ---------------------------------------------- */
typedef struct weft__pooled {
    weft_timer t;             /* t.h: node + fn + arg; t.loop */
    uint64_t gen;             /* bumped on release: stale tokens fail */
    struct weft__pooled *all; /* every pooled node, for close */
    void *aux;                /* for users of the pool: a future whose
                                 reference this node holds (released if
                                 the loop closes first), or NULL */
    void (*aux_fn)(void);     /* idem: the real callback type, cast back */
} weft__pooled;

/* Take a node from the loop's pool (allocating when empty).  Its timer is
 * initialised and reserved; node.run must be set by the caller. */
weft__pooled *weft__call_get(weft_loop *loop);
/* Give a node back (it must be unlinked and disarmed). */
void weft__call_put(weft_loop *loop, weft__pooled *c);

/* ---- per fd state ------------------------------------------------------------ */
typedef struct weft__io {
    weft_handle rd, wr;
    unsigned events; /* interest registered with the backend */
} weft__io;

/* ---- the loop -------------------------------------------------------------- */
enum {
    WEFT__RUNNING = 1u << 0,
    WEFT__STOPPING = 1u << 1,
    WEFT__CLOSED = 1u << 2,
    WEFT__VIRTUAL = 1u << 3,
};

struct weft_loop {
    /* hot: the ready queue and the timer heap */
    weft_link ready;
    weft__heap heap;
    uint64_t timer_seq;
    int64_t now;
    bool now_valid;
    unsigned state;
    int nwatched; /* user fds with a non-empty interest set */
    atomic_int inbox_pending;

    /* loop-lag accounting */
    int64_t lag_threshold;
    clockid_t lag_clock;
    int64_t lag_stamp; /* end of the last callback, lag clock */
    bool lag_stamp_valid;
    weft_cb *cur_fn; /* what the current callback is, for the lag report */
    void *cur_arg;
    void (*cur_describe)(const void *obj, struct weft_report *r, char *buf, size_t n);
    const void *cur_obj;

    weft_loop_stats stats;
    weft__pooled *pool, *pool_all;
    weft_allocator alloc;

    /* backend */
    const weft__backend *be;
    void *be_data;
    weft__io **io; /* by fd; entries never move once allocated */
    int io_cap;
    int wake_rd, wake_wr;

    /* other threads */
    pthread_mutex_t inbox_mu;
    weft_link inbox;
    bool inbox_closed; /* guarded by inbox_mu */

    /* hooks */
    weft_lag_hook *lag_hook;
    void *lag_ud;
    weft_error_hook *err_hook;
    void *err_ud;

    struct weft__layer *layers[6];
};

/* allocation through the loop's hook */
void *weft__alloc(weft_loop *loop, size_t size);
void *weft__realloc(weft_loop *loop, void *p, size_t size);
void weft__free(weft_loop *loop, void *p);

/* Queue a node at the tail of the ready queue. */
static inline void weft__ready_push(weft_loop *loop, weft_node *n)
{
    weft__list_push(&loop->ready, &n->link);
}

/* The cached loop time, read now if it is stale. */
int64_t weft__now(weft_loop *loop);


/* Run function of caller-owned weft_handle nodes. */
void weft__handle_run(weft_node *n);

static inline bool weft__closed(const weft_loop *loop)
{
    return (loop->state & WEFT__CLOSED) != 0;
}


void weft__assert_fail(const char *cond, const char *file, int line);
#if defined(WEFT_ASSERTIONS) && WEFT_ASSERTIONS
#define WEFT_ASSERT(c) ((c) ? (void)0 : weft__assert_fail(#c, __FILE__, __LINE__))
#else
#define WEFT_ASSERT(c) ((void)0)
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT__ASAN 1
#endif
#endif
#if (defined(WEFT_ASSERTIONS) && WEFT_ASSERTIONS) || defined(__SANITIZE_ADDRESS__) || defined(WEFT__ASAN)
#define WEFT__POISON 1
#endif

/* ==== SHIM: the new upper-layer interface on the old loop (replaced by the
 * loop-layer rewrite) ==== */
#include <stdio.h>
typedef enum weft_report_kind {
    WEFT_REPORT_UNOBSERVED = 1, WEFT_REPORT_RELEASED, WEFT_REPORT_SLOW, WEFT_REPORT_MISUSE,
    WEFT_REPORT_SHUTDOWN, WEFT_REPORT_IO, WEFT_REPORT_DUMP, WEFT_REPORT_OTHER,
} weft_report_kind;
typedef struct weft_report {
    weft_report_kind kind;
    int err;
    const char *message;
    const char *detail;
    const void *task;
    const char *task_name;
    const char *coroutine;
    const char *file;
    int line;
    int64_t duration_ns;
    weft_cb *fn;
    void *arg;
} weft_report;

enum weft__layer_id {
    WEFT__LAYER_FUTURE, WEFT__LAYER_TASK, WEFT__LAYER_EXECUTOR,
    WEFT__LAYER_NET, WEFT__LAYER_OS, WEFT__LAYERS
};
typedef struct weft__strbuf {
    weft_loop *loop;
    char *s;
    size_t len, cap;
    bool failed;
} weft__strbuf;
typedef struct weft__layer weft__layer;
struct weft__layer {
    void (*close)(weft_loop *loop, weft__layer *self);
    void (*dump)(weft_loop *loop, weft__layer *self, weft__strbuf *out);
    /* loop destroy: free what close kept (NULL: close freed everything and
     * cleared the slot) */
    void (*destroy)(weft_loop *loop, weft__layer *self);
};
static inline weft__layer *weft__layer_get(const weft_loop *loop, int id)
{
    return loop->layers[id];
}
void weft__layer_set(weft_loop *loop, int id, weft__layer *state);
void weft__report(weft_loop *loop, const weft_report *r);
void weft__reportf(weft_loop *loop, weft_report_kind kind, int err, const char *fmt, ...);
static inline void weft__running_cb(weft_loop *loop, weft_cb *fn, void *arg)
{
    loop->cur_fn = fn;
    loop->cur_arg = arg;
}
typedef void weft__describe_fn(const void *obj, weft_report *r, char *buf, size_t n);
static inline void weft__running_obj(weft_loop *loop, weft__describe_fn *d, const void *obj)
{
    loop->cur_fn = NULL;
    loop->cur_arg = (void *)(uintptr_t)obj;
    loop->cur_describe = d;
    loop->cur_obj = obj;
}
static inline bool weft__lag_flagged(const weft_loop *loop)
{
    (void)loop;
    return false;
}
void weft__lag_capture(weft_loop *loop);
int weft__sec_to_ns(double s, int64_t *out);
int64_t weft__add_sat(int64_t a, int64_t b);
static inline bool weft__wrong_thread(weft_loop *loop, const char *call)
{
    (void)loop, (void)call;
    return false;
}
static inline bool weft__ready_empty(const weft_loop *loop)
{
    return weft__list_empty(&loop->ready);
}
void weft__strbuf_init(weft__strbuf *b, weft_loop *loop);
void weft__strbuf_printf(weft__strbuf *b, const char *fmt, ...);
const char *weft__strbuf_str(const weft__strbuf *b);
void weft__strbuf_free(weft__strbuf *b);

#endif
