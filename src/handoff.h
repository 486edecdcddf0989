/* handoff.h - waiters with hand-off semantics, for sync.c and queue.c.
 *
 * A blocking operation of a primitive (lock acquire, queue get, ...) turns
 * the caller's weft_waiter - memory in the waiting task's frame - into a
 * weft__handoff: a future with a link for the primitive's waiter queue.
 * Whoever frees the resource pops the first waiter and completes it with
 * the resource in one step (serve): nobody can take it in between.
 *
 * Cancellation goes through the kind's two hooks, called synchronously:
 *   leave:     the waiter was still queued; it leaves the queue (NULL: the
 *              link is simply unlinked);
 *   give_back: it was served but its task has not seen it yet and will see
 *              -ECANCELED; what it got goes to the next waiter or back to
 *              the primitive.  Returns false if that is no longer possible
 *              (the hand-off is final: the task sees its value, and the
 *              cancellation lands at its next suspension).  NULL: nothing
 *              to give back.
 * The memory belongs to the frame: never freed here.
 */
#ifndef WEFT_HANDOFF_H
#define WEFT_HANDOFF_H

#include "future_internal.h"
#include "weft/sync.h"

typedef struct weft__handoff weft__handoff;

typedef struct weft__handoff_kind {
    weft__future_ops ops; /* first: the waiter's fut.ops points here */
    void (*leave)(weft__handoff *h);
    bool (*give_back)(weft__handoff *h);
} weft__handoff_kind;

struct weft__handoff {
    weft_future fut;
    weft_link q;     /* in the primitive's waiter queue while queued */
    void *prim;      /* the primitive */
    weft_value item; /* what was handed over or offered */
    int64_t aux;     /* for the primitive */
};

_Static_assert(sizeof(weft__handoff) <= sizeof(weft_waiter), "weft_waiter too small");

int weft__handoff_cancel(weft_future *f);
bool weft__handoff_rollback(weft_future *f);
void weft__handoff_abandon(weft_future *f);
void weft__handoff_describe(const weft_future *f, weft_report *r, char *buf, size_t n);

/* The kind of a primitive's waiters: name, leave, give_back. */
#define WEFT__HANDOFF_KIND(name, leave_fn, give_back_fn)                                           \
    {                                                                                              \
        {.kind = (name),                                                                           \
         .flags = WEFT__OPS_IN_FRAME,                                                              \
         .cancel = weft__handoff_cancel,                                                           \
         .rollback = weft__handoff_rollback,                                                       \
         .abandon = weft__handoff_abandon,                                                         \
         .describe = weft__handoff_describe},                                                      \
            (leave_fn), (give_back_fn)                                                             \
    }

/* Turn waiter w into a pending hand-off of kind for prim on loop.  NULL,
 * with weft_last_error() set, for a NULL waiter or loop or a call from a
 * task of another loop (-EINVAL: its await would be refused and the node
 * left in our queue), or a waiter still queued for another operation
 * (WEFT_ESTATE). */
weft__handoff *weft__handoff_begin(weft_waiter *w, weft_loop *loop, void *prim,
                                   const weft__handoff_kind *kind);

/* Pins: a primitive that keeps pointing at a waiter after waking it (a
 * queue's placed put, which a cancellation may still take back) keeps the
 * waiter's frame alive with a pin on the task that owns it.
 *
 * The owner of a waiter being queued now: the loop's current task, as an
 * opaque value (0: none, e.g. a callback).  Store it in h->aux. */
uintptr_t weft__handoff_owner(weft_loop *loop);

/* A pin on owner: owner itself with a reference taken, or 0 if it cannot
 * be pinned (no owner, or a task in caller storage, whose memory its
 * caller may reuse once it is done: the primitive must then treat the
 * hand-off as final at once). */
uintptr_t weft__handoff_pin(uintptr_t owner);

/* True while the pinned task has not finished (its frame, and so the
 * waiter, still means what it meant). */
bool weft__handoff_pin_alive(uintptr_t pin);

/* Drop a pin (0: nothing). */
void weft__handoff_unpin(uintptr_t pin);

/* Make begun h done at once with v (err == 0) or err, without queueing it:
 * the fast paths (an uncontended lock, a get from a non-empty queue).  Its
 * task observes it before anything else runs, unless the fairness budget
 * makes it yield first (then give_back may still undo it).  Returns &h->fut. */
static inline weft_future *weft__handoff_settle(weft__handoff *h, weft_value v, int err)
{
    h->item = v;
    if (err) {
        h->fut.out.err = err;
        h->fut.state = WEFT__FAILED;
    } else {
        h->fut.out.v = v;
        h->fut.state = WEFT__DONE;
    }
    return &h->fut;
}

static inline weft__handoff *weft__handoff_of(weft_link *q)
{
    return WEFT_CONTAINER_OF(q, weft__handoff, q);
}

/* Queue h at the tail of a primitive's waiter list. */
static inline void weft__handoff_enqueue(weft_link *queue, weft__handoff *h)
{
    weft__list_push(queue, &h->q);
}

/* Remove and return the first waiter, or NULL. */
static inline weft__handoff *weft__handoff_dequeue(weft_link *queue)
{
    if (weft__list_empty(queue))
        return NULL;
    weft__handoff *h = weft__handoff_of(queue->next);
    weft__list_unlink(&h->q);
    return h;
}

/* Hand-off: complete dequeued h with v.  Its task resumes in the next batch. */
static inline void weft__handoff_serve(weft__handoff *h, weft_value v)
{
    h->item = v;
    weft__future_resolve(&h->fut, v);
}

/* Complete dequeued h with an error (a broken barrier, a shut-down queue). */
static inline void weft__handoff_fail(weft__handoff *h, int err)
{
    weft__future_fail(&h->fut, err);
}

/* Waiters in a primitive's queue. */
size_t weft__handoff_count(const weft_link *queue);

#endif
