/* weft/queue.h - FIFO, LIFO and priority queues for tasks (asyncio.Queue).
 *
 * Items are pointers (store small integers with (void *)(intptr_t)i).  An
 * optional destructor is called on items left behind when the queue is shut
 * down immediately or destroyed.  Hand-off semantics (see sync.h): a put
 * that finds a getter waiting hands the item straight to it, and a putter
 * woken from a full queue has its item placed at that moment, so order is
 * strict FIFO for getters and for putters; a woken waiter cancelled before
 * it runs gives its item or slot to the next waiter or back to the queue.
 *
 *     WEFT_AWAIT(self, weft_queue_get(&q, &self->w));
 *     item = WEFT_RESULT(self).p;
 */
#ifndef WEFT_QUEUE_H
#define WEFT_QUEUE_H

#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Ordering of a queue. */
typedef enum weft_queue_kind {
    WEFT_QUEUE_FIFO = 0,
    WEFT_QUEUE_LIFO,
    WEFT_QUEUE_PRIORITY, /* smallest first, by the comparator */
} weft_queue_kind;

/* Comparator for priority queues: < 0, 0, > 0 as a is smaller, equal,
 * larger than b.  Equal items come out in put order. */
typedef int weft_compare_fn(const void *a, const void *b, void *ud);

typedef struct weft_queue {
    weft_loop *loop; /* private fields: use the functions */
    weft_queue_kind kind;
    void **items;
    uint64_t *seqs; /* put order (priority ties), and marks of placed puts */
    size_t head, count, cap, maxsize;
    uint64_t seq;
    size_t unfinished;
    weft_link getters, putters, joiners;
    weft_compare_fn *cmp;
    void *cmp_ud;
    weft_dtor *dtor;
    int shutdown; /* 0, 1 (graceful), 2 (immediate) */
    /* private, for the inline fast paths (queue.c keeps them up to date):
     * a put may store at once while count < put_room (min(maxsize, cap)
     * for a FIFO or LIFO not shut down with no getter waiting and no
     * placed put's item in the buffer, else 0); a get may take the front
     * item while count > get_hold: 0 for a FIFO with no putter waiting and
     * no placed put's item in the buffer; count - k for a FIFO whose first
     * such item is at position k (the fast get takes the items before it:
     * count and k drop together, and no fast put runs meanwhile);
     * SIZE_MAX for the others.  Both err on the slow side.  mask is
     * cap - 1 (a ring slot's index mask); marked counts the slots of
     * placed puts. */
    size_t put_room, mask, get_hold, marked;
} weft_queue;

/* Initialise a FIFO queue holding at most maxsize items (0 = unbounded).
 * dtor (may be NULL) is called on items dropped by an immediate shutdown or
 * by weft_queue_destroy.  Returns 0 or -EINVAL; allocates lazily. */
int weft_queue_init(weft_queue *q, weft_loop *loop, size_t maxsize, weft_dtor *dtor);

/* Same for a LIFO (stack) queue. */
int weft_lifo_queue_init(weft_queue *q, weft_loop *loop, size_t maxsize, weft_dtor *dtor);

/* Same for a priority queue ordered by cmp (required). */
int weft_priority_queue_init(weft_queue *q, weft_loop *loop, size_t maxsize, weft_compare_fn *cmp,
                             void *ud, weft_dtor *dtor);

/* Shut the queue down immediately (waiters fail with WEFT_ESHUTDOWN),
 * destroy the items left (dtor) and free its memory. */
void weft_queue_destroy(weft_queue *q);

/* Put without waiting.  Returns 0, WEFT_EFULL, WEFT_ESHUTDOWN, -ENOMEM
 * (an unbounded queue could not grow) or -EINVAL. */
int weft_queue_put_nowait(weft_queue *q, void *item);

/* Get without waiting: stores the item in *out.  Returns 0, WEFT_EEMPTY,
 * WEFT_ESHUTDOWN (shut down and empty) or -EINVAL. */
int weft_queue_get_nowait(weft_queue *q, void **out);

/* Put, waiting while the queue is full (FIFO among putters).  The future
 * fails with WEFT_ESHUTDOWN if the queue is or gets shut down, -ENOMEM if
 * an unbounded queue cannot grow.  On failure the item stays yours. */
WEFT_NODISCARD weft_future *weft_queue_put(weft_queue *q, void *item, weft_waiter *w);

/* Get, waiting while the queue is empty (FIFO among getters); the value
 * (.p) is the item, now yours.  Fails with WEFT_ESHUTDOWN once the queue is
 * shut down and empty. */
WEFT_NODISCARD weft_future *weft_queue_get(weft_queue *q, weft_waiter *w);

/* Put item in a coroutine: without any future when there is room (the
 * usual case), else through weft_queue_put with the waiter w (in the
 * frame); errors propagate as from WEFT_AWAIT.  Like asyncio's
 * `await q.put(item)`, it suspends only when the queue is full.  q and item
 * may be evaluated twice. */
#define WEFT_QUEUE_PUT(self, q, item, w)                                                  \
    do {                                                                                  \
        if (!weft__queue_put_fast((q), (item)) && weft__queue_put_slow((q), (item)) != 0) \
            WEFT_AWAIT(self, weft_queue_put((q), (item), (w)));                           \
    } while (0)

/* Get an item into the void * lvalue out, in a coroutine: without any
 * future when an item is there, else through weft_queue_get with the
 * waiter w; errors (WEFT_ESHUTDOWN) propagate.  Suspends only when the
 * queue is empty.  q and out may be evaluated twice. */
#define WEFT_QUEUE_GET(self, q, w, out)                                                     \
    do {                                                                                    \
        if (!weft__queue_get_fast((q), &(out)) && weft__queue_get_slow((q), &(out)) != 0) { \
            WEFT_AWAIT(self, weft_queue_get((q), (w)));                                     \
            (out) = WEFT_RESULT(self).p;                                                    \
        }                                                                                   \
    } while (0)

/* WEFT_QUEUE_GET that stores the error (0, or WEFT_ESHUTDOWN once the queue
 * is shut down and empty) in the int lvalue err instead of unwinding: the
 * worker loop that ends quietly at shutdown.
 *     for (;;) {
 *         WEFT_TRY_QUEUE_GET(self, q, &self->w, self->item, self->err);
 *         if (self->err) break;            // shut down: done
 *         ...
 *     }
 * The task's own cancellation still unwinds. */
#define WEFT_TRY_QUEUE_GET(self, q, w, out, err)                   \
    do {                                                           \
        (err) = 0;                                                 \
        if (!weft__queue_get_fast((q), &(out)) &&                  \
            ((err) = weft__queue_get_slow((q), &(out))) != 0) {    \
            WEFT_TRY_AWAIT(self, weft_queue_get((q), (w)), (err)); \
            if (!(err))                                            \
                (out) = WEFT_RESULT(self).p;                       \
        }                                                          \
    } while (0)

/* The common cases of the two macros above, inline (private: the same
 * tests as weft_queue_put_nowait / get_nowait make first, folded by
 * queue.c into put_room and get_hold).  Put: room in the buffer of a FIFO or
 * LIFO that is not shut down, nobody waiting to get.  Get: the front item
 * of a FIFO, nobody waiting to put, and the item not a placed put whose
 * putter has not resumed yet. */
static inline bool weft__queue_put_fast(weft_queue *q, void *item)
{
    size_t n;
    if (!q || (n = q->count) >= q->put_room)
        return false;
    q->items[(q->head + n) & q->mask] = item;
    q->count = n + 1;
    q->unfinished++;
    return true;
}

static inline bool weft__queue_get_fast(weft_queue *q, void **out)
{
    size_t n, i;
    if (!q || (n = q->count) <= q->get_hold)
        return false;
    i = q->head;
    *out = q->items[i];
    q->head = (i + 1) & q->mask;
    q->count = n - 1;
    return true;
}

/* Private: weft_queue_put_nowait / get_nowait once the inline test above
 * failed (the macros' second step). */
int weft__queue_put_slow(weft_queue *q, void *item);
int weft__queue_get_slow(weft_queue *q, void **out);

/* Mark one got item processed.  Returns 0, -EINVAL, or WEFT_ESTATE when
 * called more times than items were put. */
int weft_queue_task_done(weft_queue *q);

/* Wait until every item put has been marked done (done at once if so). */
WEFT_NODISCARD weft_future *weft_queue_join(weft_queue *q, weft_waiter *w);

/* Shut down (asyncio 3.13): puts fail with WEFT_ESHUTDOWN and blocked
 * putters are woken with it; gets drain what is left, then fail with it.
 * immediate also drops the items (dtor), counting each as done (which may
 * release join), and wakes blocked getters with WEFT_ESHUTDOWN.
 * Returns 0 or -EINVAL. */
int weft_queue_shutdown(weft_queue *q, bool immediate);

/* Items in the queue. */
size_t weft_queue_size(const weft_queue *q);

/* The maxsize given at init (0: unbounded). */
size_t weft_queue_maxsize(const weft_queue *q);

/* True when size is 0 (a NULL queue too). */
bool weft_queue_empty(const weft_queue *q);

/* True when size reached maxsize (never for an unbounded queue). */
bool weft_queue_full(const weft_queue *q);

/* Items put and not yet marked done with weft_queue_task_done (what join
 * waits for). */
size_t weft_queue_unfinished(const weft_queue *q);

/* Tasks waiting in weft_queue_get / weft_queue_put. */
size_t weft_queue_getters(const weft_queue *q);
size_t weft_queue_putters(const weft_queue *q);

#ifdef __cplusplus
}
#endif
#endif
