/* loop_internal.h - the loop's private state and helpers shared by src/.
 * Never installed. */
#ifndef WEFT_LOOP_INTERNAL_H
#define WEFT_LOOP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>

#include "weft/loop.h"

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
    const char *step_name, *step_file; /* set by task steps */
    int step_line;

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

    /* task layer (task.c) */
    weft_link tasks;    /* live tasks */
    void *current_task; /* task whose step runs now */
    int await_budget;   /* awaits the current step may still finish without
                           suspending (fairness) */
    void *future_pool;  /* free futures */
    void *yield_future; /* the immortal done future of sleep(0) */
    void (*describe)(weft_loop *loop, char *buf, size_t n); /* task steps */
    void (*on_close)(weft_loop *loop);
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

/* Report through the error hook (printf-style message). */
void weft__report(weft_loop *loop, int err, const char *fmt, ...);

/* Run function of caller-owned weft_handle nodes. */
void weft__handle_run(weft_node *n);

static inline bool weft__closed(const weft_loop *loop)
{
    return (loop->state & WEFT__CLOSED) != 0;
}

#endif
