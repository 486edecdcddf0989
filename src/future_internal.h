/* future_internal.h - the layout of futures and the interface every kind
 * of future implements.  Never installed.
 *
 * A future is a 48-byte header embedded first in the struct of its kind: a
 * plain future (future.c), a task (task.c), a sleep, a gather, a lock
 * waiter...  Everything that differs between kinds goes through the kind's
 * ops table, on cold paths only: how to cancel it, what a cancellation of
 * its awaiter inside FINALLY means to it, how to undo a hand-off nobody saw
 * yet, how to free it, how to name it.  The common fast paths (complete,
 * await, unref) never dispatch.
 */
#ifndef WEFT_FUTURE_INTERNAL_H
#define WEFT_FUTURE_INTERNAL_H

#include "loop_internal.h"
#include "pool.h"
#include "weft/future.h"

/* The layout of struct weft_future, its states (WEFT__PENDING ...) and
 * flags (WEFT__F_*) are in weft/future.h (private there). */

/* Ops flags. */
enum {
    WEFT__OPS_SETTABLE = 1u << 0,   /* weft_future_set_* from users */
    WEFT__OPS_DTOR = 1u << 1,       /* the kind is a weft__dfuture */
    WEFT__OPS_IN_FRAME = 1u << 2,   /* lives in its awaiter's frame (a waiter):
                                       combinators that keep futures refuse it */
    WEFT__OPS_ALWAYS_WAIT = 1u << 3 /* a cancelled task still parks on it (a
                                       group join: it must not be left half way) */
};

typedef struct weft__future_ops {
    const char *kind; /* "future", "task", "sleep", "waiter", ... */
    unsigned flags;   /* WEFT__OPS_* */
    /* Cancel a pending f (weft_future_cancel, or its awaiter was cancelled).
     * NULL: weft__future_cancel_now.  Returns 0 or WEFT_ESTATE. */
    int (*cancel)(weft_future *f);
    /* Its awaiting task was cancelled while cancellation is masked (inside
     * FINALLY): f itself must not be cancelled, but may react (a group join
     * cancels the children it waits for).  NULL: nothing. */
    void (*masked_cancel)(weft_future *f);
    /* f is done, its awaiting task is cancelled and has not seen f yet:
     * undo the hand-off f carries (give the lock to the next waiter...) and
     * make f CANCELLED; true if it did.  NULL: nothing to undo. */
    bool (*rollback)(weft_future *f);
    /* The task awaiting f is being released (loop close): f lives in its
     * frame, which is about to go, so withdraw everything that points at
     * it (a waiter leaves its primitive, a join lets go of its children).
     * NULL: nothing to do. */
    void (*abandon)(weft_future *f);
    /* The last reference went (after the common checks): give the memory
     * back.  NULL: the memory is not weft's (a frame's waiter). */
    void (*release)(weft_future *f);
    /* A name for reports ("task 'x'") in buf, and what r can say about it
     * (task, name, coroutine, file, line).  NULL: the kind. */
    void (*describe)(const weft_future *f, weft_report *r, char *buf, size_t n);
} weft__future_ops;

/* weft__dfuture, a future that owns its pointer value's destructor (the
 * kinds with WEFT__OPS_DTOR), is in weft/future.h (private there). */

/* A future whose completion is driven by the loop (a timer, children, an
 * inner future) is held: the loop keeps a reference until it completes, as
 * asyncio's handles keep their futures, so that a gather or a sleep nobody
 * holds still completes and runs its callbacks.  The hold is a link in the
 * kind's struct; loop close drops every hold left. */
typedef struct weft__hold {
    weft_link link;
    weft_future *f;
} weft__hold;

/* What few futures need and most do not, kept beside them in a per-loop
 * table rather than in every future: a task's name, an error's message. */
typedef struct weft__extras {
    weft_future *f;              /* the key */
    const char *name;            /* a task's name (the caller's string) */
    char *detail;                /* the message of error detail_err, owned */
    int detail_err;              /* the error the message belongs to */
    struct weft__scoped *scoped; /* blocks freed with f (a task's groups) */
} weft__extras;

/* A block that lives as long as its future (weft__future_scoped_alloc). */
typedef struct weft__scoped {
    struct weft__scoped *next;
    _Alignas(16) unsigned char data[];
} weft__scoped;

/* ---- the future layer's per-loop state ------------------------------------------------ */

typedef struct weft__future_layer {
    weft__layer base;
    weft__pool pool; /* small blocks for every layer above the loop; it
                        outlives close (blocks users still hold) until the
                        loop is destroyed */
    struct weft__cbnode *cbfree;
    weft_link cbinuse;    /* callback nodes in use */
    weft_link held;       /* weft__hold links of held futures */
    size_t live;          /* futures weft allocated and has not released
                             (recycled plain futures count until close frees
                             them: a recycle and a reuse touch no count) */
    bool closed;          /* the loop was closed: no more recycling */
    weft_future yield;    /* the immortal done future of sleep(0) */
    weft_future none;     /* the immortal future done with 0 */
    weft__extras *extras; /* open addressing, power-of-two capacity */
    size_t nextras, extras_cap;
    weft_future *quar[64]; /* WEFT__POISON: recently freed, kept to catch reuse */
    unsigned quar_next;
} weft__future_layer;

/* The layer state of loop, made on first use; NULL if it cannot be made
 * (-ENOMEM), or if the loop was closed before it was ever made. */
static inline weft__future_layer *weft__futures(weft_loop *loop);
weft__future_layer *weft__futures_make(weft_loop *loop);

/* f's extras: the entry if it has one, else (create) a new zeroed one, or
 * NULL (none, or -ENOMEM).  Valid until the next call that creates one. */
weft__extras *weft__future_extras(weft_future *f, bool create);

/* Attach message msg (copied; NULL removes) to error err of f.  0 or
 * -ENOMEM (f then has no message). */
int weft__future_set_detail(weft_future *f, int err, const char *msg);

/* The message of f's error err, or NULL. */
const char *weft__future_detail(const weft_future *f, int err);

/* A zeroed block of n bytes freed when f is freed (or by
 * weft__future_scoped_free); NULL on -ENOMEM. */
void *weft__future_scoped_alloc(weft_future *f, size_t n);
void weft__future_scoped_free(weft_future *f, void *p);

/* A reference to the loop's yield future: done, and awaiting it lets every
 * other ready callback run once (sleep(0)).  NULL as weft__futures. */
weft_future *weft__future_yield(weft_loop *loop);

/* A reference to the loop's immortal future done with the value 0 (.i):
 * what an operation with nothing to wait for returns (a drain below the
 * high-water mark), without making a future.  NULL as weft__futures. */
weft_future *weft__future_none(weft_loop *loop);

static inline weft__future_layer *weft__futures(weft_loop *loop)
{
    weft__layer *l = weft__layer_get(loop, WEFT__LAYER_FUTURE);
    return l ? (weft__future_layer *)(void *)l : weft__futures_make(loop);
}

/* The loop's pool, or NULL as weft__futures. */
static inline weft__pool *weft__pool_of(weft_loop *loop)
{
    weft__future_layer *fl = weft__futures(loop);
    return fl ? &fl->pool : NULL;
}

/* ---- for kinds ---------------------------------------------------------------------------- */

/* Make f a pending future of kind ops on loop with one reference.  A kind
 * with a release op (memory weft allocated) is counted among the live
 * futures that loop close reports; its layer state must exist. */
static inline void weft__future_init(weft_future *f, const weft__future_ops *ops, weft_loop *loop)
{
    f->ops = ops;
    f->loop = loop;
    weft__list_init(&f->waiters);
    f->out.v.i = 0;
    f->refs = 1;
    f->state = WEFT__PENDING;
    f->flags = 0;
    f->aux = 0;
    if (ops->release) {
        weft__layer *l = weft__layer_get(loop, WEFT__LAYER_FUTURE);
        if (l)
            ((weft__future_layer *)(void *)l)->live++;
    }
}

/* Make f, done and held only by its kind (one reference, its outcome
 * seen, no waiters, no extras), pending again with a second reference for
 * the caller: a kind reuses its block for the next operation with no free
 * and no allocation (f stays live, so no count changes). */
static inline void weft__future_rearm(weft_future *f)
{
    WEFT_ASSERT(f->refs == 1 && f->state != WEFT__PENDING && weft__list_empty(&f->waiters) &&
                (f->flags & (WEFT__F_OBSERVED | WEFT__F_EXTRAS)) == WEFT__F_OBSERVED);
    f->out.v.i = 0;
    f->refs = 2;
    f->state = WEFT__PENDING;
    f->flags = 0;
    f->aux = 0;
}

/* Hold f (one reference) until weft__future_unhold; h in f's struct,
 * zeroed or unheld.  After close nothing is held. */
void weft__future_hold(weft_future *f, weft__hold *h);

/* Drop the hold, if any: the reference goes, which may free f (call it
 * last). */
void weft__future_unhold(weft__hold *h);

/* Park node n (a task, a callback) on pending f, after its other waiters. */
static inline void weft__future_wait(weft_future *f, weft_node *n)
{
    weft__list_push(&f->waiters, &n->link);
}

/* Finish f (pending) in state with out already set: queue its waiters at
 * the tail of the ready queue.  0, or WEFT_ECLOSED if they can never run
 * (the loop is closed; they are released). */
int weft__future_finish(weft_future *f, uint8_t state);

/* The common completions (no settable check). */
int weft__future_resolve(weft_future *f, weft_value v);
int weft__future_fail(weft_future *f, int err);

/* Cancel pending f plainly: CANCELLED, waiters queued.  0 or WEFT_ECLOSED. */
int weft__future_cancel_now(weft_future *f);

/* Cancel f through its kind (what weft_future_cancel does for users). */
static inline int weft__future_cancel(weft_future *f)
{
    if (f->state != WEFT__PENDING)
        return WEFT_ESTATE;
    return f->ops->cancel ? f->ops->cancel(f) : weft__future_cancel_now(f);
}

/* The last reference of f went. */
void weft__future_free(weft_future *f);

/* weft__plain_ops, plain futures' kind (future.c), is declared in
 * weft/future.h for the inline fast paths. */

/* The last reference of f goes and f is a plain future done with a value
 * nobody must destroy, on an open loop: recycle it and return true (the
 * hot path of every await's release).  False: nothing done. */
static inline bool weft__future_recycle_in(weft_future *f, weft_loop *loop);

static inline bool weft__future_recycle(weft_future *f)
{
    return weft__future_recycle_in(f, f->loop);
}

/* True if f is a plain future done with a value nobody must destroy, and
 * this is its last reference. */
static inline bool weft__future_recyclable(const weft_future *f)
{
    return f->ops == &weft__plain_ops && f->refs == 1 && f->state == WEFT__DONE &&
           !(f->flags & WEFT__F_EXTRAS) && !((const weft__dfuture *)(const void *)f)->dtor;
}

/* Put recyclable f on the free list of its loop, whose layer fl is open
 * (the list is the loop head's ffree: weft/future.h). */
static inline void weft__future_recycle_into(weft_future *f, weft__future_layer *fl)
{
    weft_loop *loop = f->loop;
    (void)fl;
    f->refs = 0; /* fl->live still counts it (see there) */
    f->waiters.next = (weft_link *)(void *)loop->ffree;
    loop->ffree = (weft__dfuture *)(void *)f;
}

/* weft__future_recycle where the caller knows f->loop already. */
static inline bool weft__future_recycle_in(weft_future *f, weft_loop *loop)
{
#if WEFT__POISON
    (void)f;
    (void)loop;
    return false; /* freed futures go through the quarantine */
#else
    WEFT_ASSERT(f->loop == loop);
    if (!weft__future_recyclable(f))
        return false;
    weft__future_layer *fl =
        (weft__future_layer *)(void *)weft__layer_get(loop, WEFT__LAYER_FUTURE);
    if (!fl || fl->closed)
        return false;
    weft__future_recycle_into(f, fl);
    return true;
#endif
}

/* The last reference of f goes and nothing needs doing but giving its
 * memory back (no unobserved failure to report, no value to destroy, no
 * callbacks to drop, no extras): release it and return true (a finished
 * task, a sleep, a gather).  False: nothing done. */
static inline bool weft__future_release_fast(weft_future *f)
{
#if WEFT__POISON
    (void)f;
    return false; /* freed futures go through the quarantine */
#else
    if (f->refs != 1 || (f->state == WEFT__FAILED && !(f->flags & WEFT__F_OBSERVED)) ||
        (f->flags & (WEFT__F_CALLBACKS | WEFT__F_EXTRAS)) || (f->ops->flags & WEFT__OPS_DTOR) ||
        !f->ops->release)
        return false;
    weft__future_layer *fl =
        (weft__future_layer *)(void *)weft__layer_get(f->loop, WEFT__LAYER_FUTURE);
    f->refs = 0;
    if (fl)
        fl->live--;
    f->ops->release(f);
    return true;
#endif
}

/* Drop a reference (inline fast path of weft_future_unref). */
static inline void weft__future_unref(weft_future *f)
{
    if (f->refs > 1)
        f->refs--;
    else if (!weft__future_recycle(f) && !weft__future_release_fast(f))
        weft_future_unref(f);
}

/* Move src's outcome to pending dst (a pointer value's destructor moves
 * too if both kinds keep one).  Marks src observed. */
int weft__future_copy_outcome(weft_future *dst, weft_future *src);

/* The error code of a finished f: 0 for a value. */
static inline int weft__future_err(const weft_future *f)
{
    return f->state == WEFT__DONE ? 0 : f->state == WEFT__CANCELLED ? -ECANCELED : f->out.err;
}

/* "task 'x'" / "future" for reports. */
void weft__future_name(const weft_future *f, char *buf, size_t n);

void weft__set_last_error(int err);

#endif
