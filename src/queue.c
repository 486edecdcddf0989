/* queue.c - FIFO, LIFO and priority queues for tasks, with hand-off.
 *
 * Storage.  FIFO and LIFO queues keep a ring of void * whose capacity is a
 * power of two: logical position k (0 = front, the bottom of a LIFO stack)
 * is slot (head + k) & (cap - 1); FIFO pops at the front, LIFO at the back,
 * both push at the back.  A priority queue keeps a binary min-heap in
 * items[0..count), ordered by (cmp, put sequence) so that ties leave in put
 * order.  Storage is allocated on first use: a bounded queue takes its
 * maxsize slots (rounded up to a power of two, at most 4096 at once) in one
 * go; an unbounded one grows by doubling.
 *
 * Hand-off.  A put that finds a getter waiting gives it the item directly;
 * a get that frees a slot while a putter waits places that putter's item
 * at once.  Nobody can take what was handed over, and order is strict FIFO
 * (gh-83055).  If the woken task is cancelled before it runs, task.c calls
 * cancelled(h, true) and we roll back: a getter's item goes to the next
 * getter or back to where it would be had it never left (front of a FIFO,
 * bottom of a LIFO, re-inserted with its sequence in a heap); a putter's
 * item is taken out again and the next putter gets the slot.
 *
 * Placed items.  An item placed for a blocked putter may be got (or dropped
 * by a shutdown) before that putter runs; then it can no longer be taken
 * out, so its put must become final.  Such a slot is marked: seqs[i] holds
 * a unique tag (priority: the put sequence, unique too), seqs[cap + i] the
 * putter's task, referenced so that its frame stays readable, and
 * seqs[2 * cap + i] the putter's waiter.  When the item leaves, a waiter
 * still unobserved (its task pending and not resumed past it) is marked
 * OBSERVED, which tells task.c not to undo the hand-off: the cancellation
 * then arrives at the task's next suspension.  Unmarked slots have the
 * three words at 0, free slots too, so the fast put writes none of them.
 * FIFO and LIFO queues allocate seqs only when a putter is first placed.
 * Tasks spawned into caller storage are not referenced (the caller may
 * reuse the storage once the task is done): their placed puts are final
 * at once.
 *
 * Costs: put and get O(1) (priority O(log n)), no allocation in steady
 * state; cancelling a placed putter O(n) (it searches for its tag).
 */
#include <string.h>

#include "handoff.h"
#include "weft/queue.h"

#define NONE ((size_t)-1)
#define UNBOUNDED SIZE_MAX /* internal maxsize of an unbounded queue */
#define FIRST_CAP_MAX 4096 /* a bounded queue allocates at most this much up front */

static bool getter_give_back(weft__handoff *h);
static bool putter_give_back(weft__handoff *h);

static const weft__handoff_kind getter_kind =
    WEFT__HANDOFF_KIND("queue getter", NULL, getter_give_back);
static const weft__handoff_kind putter_kind =
    WEFT__HANDOFF_KIND("queue putter", NULL, putter_give_back);
static const weft__handoff_kind joiner_kind = WEFT__HANDOFF_KIND("queue joiner", NULL, NULL);

/* ---- small helpers ---------------------------------------------------------------- */

static inline bool is_heap(const weft_queue *q)
{
    return q->kind == WEFT_QUEUE_PRIORITY;
}

/* Slot of logical position k (ring; for the heap head is 0 and k < cap). */
static inline size_t at(const weft_queue *q, size_t k)
{
    return (q->head + k) & (q->cap - 1);
}

/* The putter task and waiter of a marked slot (0 for others). */
static inline uint64_t *who_of(const weft_queue *q, size_t i)
{
    return &q->seqs[q->cap + i];
}

static inline uint64_t *waiter_of(const weft_queue *q, size_t i)
{
    return &q->seqs[2 * q->cap + i];
}

#define SEQ_WORDS 3 /* seqs words per slot: tag, task, waiter */

static inline weft__handoff *first(weft_link *list)
{
    return weft__handoff_dequeue(list);
}

/* Complete a queued waiter (already unlinked) with p or err. */
static void wake(weft__handoff *h, void *p, int err)
{
    if (err)
        weft__handoff_fail(h, err);
    else
        weft__handoff_serve(h, (weft_value){.p = p});
}

static void wake_all(weft_link *list, int err)
{
    while (!weft__list_empty(list))
        wake(first(list), NULL, err);
}

/* One got item is done (or one was dropped): maybe release join. */
static void done_one(weft_queue *q)
{
    if (q->unfinished && --q->unfinished == 0)
        wake_all(&q->joiners, 0);
}

static void drop(weft_queue *q, void *item)
{
    if (q->dtor)
        q->dtor(item);
}

/* Recompute the fast paths' folded tests (see put_room and get_hold in
 * weft/queue.h).  Called after every change that can turn one on or off;
 * a waiter unlinked elsewhere (cancelled) only leaves them off until then.
 * This one leaves get_hold 0 and returns true when it must be the
 * first marked slot's (first_mark_hold). */
static bool refresh_but_hold(weft_queue *q)
{
    size_t room = q->maxsize < q->cap ? q->maxsize : q->cap;
    q->mask = q->cap - 1;
    q->put_room =
        !is_heap(q) && !q->shutdown && !q->marked && weft__list_empty(&q->getters) ? room : 0;
    if (q->kind != WEFT_QUEUE_FIFO || !weft__list_empty(&q->putters)) {
        q->get_hold = SIZE_MAX;
        return false;
    }
    q->get_hold = 0;
    return q->marked != 0;
}

/* get_hold of a FIFO with marked slots: the items before the first. */
static size_t first_mark_hold(const weft_queue *q)
{
    size_t k = q->count; /* one mark is usually the newest item */
    if (q->marked == 1) {
        while (k-- > 0 && !*who_of(q, at(q, k)))
            ;
    } else {
        for (k = 0; k < q->count && !*who_of(q, at(q, k)); k++)
            ;
    }
    return k < q->count ? q->count - k : SIZE_MAX; /* none: cannot be */
}

/* All of them. */
static void refresh(weft_queue *q)
{
    if (refresh_but_hold(q))
        q->get_hold = first_mark_hold(q);
}

/* ---- storage ----------------------------------------------------------------------- */

/* Move the live items into arrays of cap slots (seqs too if with_seqs),
 * front first; head becomes 0. */
static int resize(weft_queue *q, size_t cap, bool with_seqs)
{
    if (cap > SIZE_MAX / (SEQ_WORDS * sizeof(uint64_t)))
        return -ENOMEM;
    void **items = weft__alloc(q->loop, cap * sizeof *items);
    uint64_t *seqs = with_seqs ? weft__alloc(q->loop, SEQ_WORDS * cap * sizeof *seqs) : NULL;
    if (!items || (with_seqs && !seqs)) {
        weft__free(q->loop, items);
        weft__free(q->loop, seqs);
        return -ENOMEM;
    }
    if (seqs)
        memset(seqs, 0, SEQ_WORDS * cap * sizeof *seqs);
    for (size_t k = 0; k < q->count; k++) {
        size_t i = at(q, k);
        items[k] = q->items[i];
        if (q->seqs) {
            seqs[k] = q->seqs[i];
            seqs[cap + k] = *who_of(q, i);
            seqs[2 * cap + k] = *waiter_of(q, i);
        }
    }
    weft__free(q->loop, q->items);
    weft__free(q->loop, q->seqs);
    q->items = items;
    q->seqs = seqs;
    q->cap = cap;
    q->head = 0;
    refresh(q);
    return 0;
}

/* Make room for need items.  -ENOMEM leaves everything as it was. */
static int reserve(weft_queue *q, size_t need)
{
    if ((need <= q->cap))
        return 0;
    size_t cap = q->cap;
    if (!cap) {
        size_t want = q->maxsize == UNBOUNDED ? 8 : q->maxsize;
        if (want > FIRST_CAP_MAX)
            want = FIRST_CAP_MAX;
        for (cap = 1; cap < want; cap *= 2)
            ;
    }
    while (cap < need) {
        if (cap > SIZE_MAX / 4)
            return -ENOMEM;
        cap *= 2;
    }
    return resize(q, cap, is_heap(q) || q->seqs);
}

/* ---- the binary heap (priority queues) ------------------------------------------------- */

static bool before(const weft_queue *q, size_t a, size_t b)
{
    int c = q->cmp(q->items[a], q->items[b], q->cmp_ud);
    return c < 0 || (c == 0 && q->seqs[a] < q->seqs[b]);
}

static void heap_swap(weft_queue *q, size_t a, size_t b)
{
    void *item = q->items[a];
    uint64_t seq = q->seqs[a], who = *who_of(q, a), waiter = *waiter_of(q, a);
    q->items[a] = q->items[b];
    q->seqs[a] = q->seqs[b];
    *who_of(q, a) = *who_of(q, b);
    *waiter_of(q, a) = *waiter_of(q, b);
    q->items[b] = item;
    q->seqs[b] = seq;
    *who_of(q, b) = who;
    *waiter_of(q, b) = waiter;
}

static void sift_up(weft_queue *q, size_t i)
{
    while (i > 0 && before(q, i, (i - 1) / 2)) {
        heap_swap(q, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void sift_down(weft_queue *q, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = l;
        if (l >= q->count)
            return;
        if (l + 1 < q->count && before(q, l + 1, l))
            m = l + 1;
        if (!before(q, m, i))
            return;
        heap_swap(q, i, m);
        i = m;
    }
}

/* Room must be reserved; who and waiter mark a placed putter's item. */
static void heap_insert(weft_queue *q, void *item, uint64_t seq, uint64_t who, uint64_t waiter)
{
    size_t i = q->count++;
    q->items[i] = item;
    q->seqs[i] = seq;
    *who_of(q, i) = who;
    *waiter_of(q, i) = waiter;
    if (who)
        q->marked++;
    sift_up(q, i);
}

static void heap_remove(weft_queue *q, size_t i)
{
    size_t last = --q->count;
    if (i != last) {
        heap_swap(q, i, last);
        sift_down(q, i);
        sift_up(q, i);
    }
    *who_of(q, last) = *waiter_of(q, last) = 0;
}

/* ---- slots of placed putters ---------------------------------------------------------- */

/* The item in slot i leaves the queue for good (got or dropped).  If a
 * putter placed it and has not run yet, its put becomes final. */
static void release_slot(weft_queue *q, size_t i)
{
    uint64_t tag = q->seqs[i];
    uintptr_t pin = (uintptr_t)*who_of(q, i);
    weft__handoff *h = (weft__handoff *)(uintptr_t)*waiter_of(q, i);
    *who_of(q, i) = *waiter_of(q, i) = 0;
    if (!is_heap(q))
        q->seqs[i] = 0;
    if (!pin)
        return;
    q->marked--;
    /* A pending task's frame is alive; the waiter still describes this
     * placement iff it was not re-used (kind, primitive and tag match). */
    if (weft__handoff_pin_alive(pin) && h->fut.ops == &putter_kind.ops && h->prim == q &&
        (uint64_t)h->aux == tag && h->fut.state == WEFT__DONE)
        h->fut.flags |= WEFT__F_OBSERVED; /* cannot be taken back any more */
    weft__handoff_unpin(pin);
}

static bool tagged(const weft_queue *q, size_t i)
{
    return q->seqs && *who_of(q, i);
}

/* Logical position (ring) or heap index of the slot tagged tag, or NONE. */
static size_t find_tag(const weft_queue *q, uint64_t tag)
{
    if (!q->seqs)
        return NONE;
    for (size_t k = q->count; k-- > 0;) {
        size_t i = is_heap(q) ? k : at(q, k);
        if (q->seqs[i] == tag && *who_of(q, i))
            return k;
    }
    return NONE;
}

/* Copy slot b over slot a (ring), tags included. */
static void ring_move(weft_queue *q, size_t a, size_t b)
{
    q->items[a] = q->items[b];
    if (q->seqs) {
        q->seqs[a] = q->seqs[b];
        *who_of(q, a) = *who_of(q, b);
        *waiter_of(q, a) = *waiter_of(q, b);
    }
}

/* Take out logical position k of a ring (its tag already released),
 * moving the shorter side. */
static void ring_remove(weft_queue *q, size_t k)
{
    size_t gap;
    if (k < q->count / 2) {
        for (size_t j = k; j > 0; j--)
            ring_move(q, at(q, j), at(q, j - 1));
        gap = q->head;
        q->head = at(q, 1);
    } else {
        for (size_t j = k; j + 1 < q->count; j++)
            ring_move(q, at(q, j), at(q, j + 1));
        gap = at(q, q->count - 1);
    }
    if (q->seqs)
        q->seqs[gap] = *who_of(q, gap) = *waiter_of(q, gap) = 0;
    q->count--;
}

/* ---- core operations ------------------------------------------------------------------- */

/* Store a new item (room reserved). */
static void push(weft_queue *q, void *item)
{
    if (is_heap(q))
        heap_insert(q, item, q->seq++, 0, 0);
    else
        q->items[at(q, q->count++)] = item;
}

/* Remove and return the next item (count > 0). */
static void *pop(weft_queue *q)
{
    void *item;
    if (is_heap(q)) {
        item = q->items[0];
        release_slot(q, 0);
        heap_remove(q, 0);
        return item;
    }
    size_t i = q->kind == WEFT_QUEUE_FIFO ? q->head : at(q, q->count - 1);
    item = q->items[i];
    if (tagged(q, i))
        release_slot(q, i);
    if (q->kind == WEFT_QUEUE_FIFO)
        q->head = at(q, 1);
    q->count--;
    return item;
}

/* Give item (of put sequence seq) to the first waiting getter. */
static void hand_to_getter(weft_queue *q, void *item, uint64_t seq)
{
    weft__handoff *g = first(&q->getters);
    g->item.p = item;
    g->aux = (int64_t)seq;
    wake(g, item, 0);
}

/* Place the first waiting putter's item (room reserved) and wake it. */
static void place_putter(weft_queue *q)
{
    weft__handoff *h = first(&q->putters);
    uint64_t tag = q->seq++;
    /* pinned: the waiter's frame stays alive while the put may be taken
     * back; no pin (caller storage, no task): the put is final */
    uintptr_t t = weft__handoff_pin((uintptr_t)h->aux);
    if (is_heap(q)) {
        heap_insert(q, h->item.p, tag, t, t ? (uintptr_t)h : 0);
    } else {
        size_t i = at(q, q->count++);
        q->items[i] = h->item.p;
        if (t && !q->seqs && resize(q, q->cap, true)) {
            weft__handoff_unpin(t); /* no memory for the marks: the put is final at once */
            t = 0;
        } else if (t) {
            i = at(q, q->count - 1); /* resize may have moved it */
            q->seqs[i] = tag;
            *who_of(q, i) = t;
            *waiter_of(q, i) = (uintptr_t)h;
            q->marked++;
        }
    }
    q->unfinished++;
    if (t) {
        h->aux = (int64_t)tag;
    } else {
        h->fut.flags |= WEFT__F_OBSERVED; /* nobody can undo it */
    }
    wake(h, NULL, 0);
}

/* Fill free room from the waiting putters, in order. */
static void refill(weft_queue *q)
{
    while (!weft__list_empty(&q->putters) && q->count < q->maxsize && reserve(q, q->count + 1) == 0)
        place_putter(q);
    refresh(q);
}

/* ---- fast paths ---------------------------------------------------------------------------- */

/* ---- cancellation callbacks (called by future.c / task.c) ---------------------------------- */

static void give_back(weft_queue *q, void *item, uint64_t seq);

/* Woken with an item but cancelled before it ran: the item goes on. */
static bool getter_give_back(weft__handoff *h)
{
    weft_queue *q = h->prim;
    give_back(q, h->item.p, (uint64_t)h->aux);
    refresh(q);
    return true;
}

/* Where the item of a cancelled getter goes (seq: its put sequence). */
static void give_back(weft_queue *q, void *item, uint64_t seq)
{
    if (!weft__list_empty(&q->getters)) {
        hand_to_getter(q, item, seq);
        return;
    }
    if (q->shutdown == 2) {
        drop(q, item); /* as if still queued at the immediate shutdown */
        done_one(q);
        return;
    }
    if (reserve(q, q->count + 1)) {
        weft__reportf(q->loop, WEFT_REPORT_OTHER, -ENOMEM,
                      "queue: no memory to give back the item of a cancelled "
                      "getter; the item is destroyed");
        drop(q, item);
        done_one(q);
        return;
    }
    if (is_heap(q)) {
        heap_insert(q, item, seq, 0, 0);
    } else {
        q->head = (q->head - 1) & (q->cap - 1); /* front of a FIFO, bottom of a LIFO */
        q->items[q->head] = item;
        q->count++;
    }
}

/* Its item was placed but it has not run: take the item out again.  (Had
 * the item left meanwhile, release_slot made the put final and we would
 * not be called.)  A put that was immediate (no tag) is final. */
static bool putter_give_back(weft__handoff *h)
{
    weft_queue *q = h->prim;
    size_t k = find_tag(q, (uint64_t)h->aux);
    if (k == NONE)
        return false;
    size_t i = is_heap(q) ? k : at(q, k);
    uintptr_t pin = (uintptr_t)*who_of(q, i);
    *who_of(q, i) = *waiter_of(q, i) = 0;
    q->marked--;
    if (is_heap(q)) {
        heap_remove(q, i);
    } else {
        q->seqs[i] = 0;
        ring_remove(q, k);
    }
    weft__handoff_unpin(pin);
    q->unfinished--; /* counted when placed */
    refill(q);       /* the slot goes to the next putter */
    if (!q->unfinished)
        wake_all(&q->joiners, 0);
    refresh(q);
    return true;
}

/* ---- public API ------------------------------------------------------------------------- */

static int init(weft_queue *q, weft_loop *loop, weft_queue_kind kind, size_t maxsize,
                weft_compare_fn *cmp, void *ud, weft_dtor *dtor)
{
    if (!q || !loop)
        return -EINVAL;
    *q = (weft_queue){.loop = loop,
                      .kind = kind,
                      .maxsize = maxsize ? maxsize : UNBOUNDED,
                      .seq = 1,
                      .cmp = cmp,
                      .cmp_ud = ud,
                      .dtor = dtor};
    weft__list_init(&q->getters);
    weft__list_init(&q->putters);
    weft__list_init(&q->joiners);
    refresh(q);
    return 0;
}

int weft_queue_init(weft_queue *q, weft_loop *loop, size_t maxsize, weft_dtor *dtor)
{
    return init(q, loop, WEFT_QUEUE_FIFO, maxsize, NULL, NULL, dtor);
}

int weft_lifo_queue_init(weft_queue *q, weft_loop *loop, size_t maxsize, weft_dtor *dtor)
{
    return init(q, loop, WEFT_QUEUE_LIFO, maxsize, NULL, NULL, dtor);
}

int weft_priority_queue_init(weft_queue *q, weft_loop *loop, size_t maxsize, weft_compare_fn *cmp,
                             void *ud, weft_dtor *dtor)
{
    if (!cmp)
        return -EINVAL;
    return init(q, loop, WEFT_QUEUE_PRIORITY, maxsize, cmp, ud, dtor);
}

int weft_queue_shutdown(weft_queue *q, bool immediate)
{
    if (!q || !q->loop)
        return -EINVAL;
    if (immediate) {
        q->shutdown = 2;
        while (q->count) {
            void *item = pop(q); /* placed puts become final, then dropped */
            drop(q, item);
            if (q->unfinished)
                q->unfinished--;
        }
        q->head = 0;
        if (!q->unfinished)
            wake_all(&q->joiners, 0);
    } else if (!q->shutdown) {
        q->shutdown = 1;
    }
    wake_all(&q->getters, WEFT_ESHUTDOWN); /* waiting means the queue is empty */
    wake_all(&q->putters, WEFT_ESHUTDOWN);
    refresh(q);
    return 0;
}

void weft_queue_destroy(weft_queue *q)
{
    if (!q || !q->loop)
        return;
    weft_queue_shutdown(q, true);
    wake_all(&q->joiners, WEFT_ESHUTDOWN);
    weft__free(q->loop, q->items);
    weft__free(q->loop, q->seqs);
    q->items = NULL;
    q->seqs = NULL;
    q->cap = q->count = q->head = 0;
    refresh(q);
}

static int put_nowait_slow(weft_queue *q, void *item);

/* put_nowait_slow, and the fast paths' tests recomputed after it.  An item
 * stored at the back of a FIFO behind a placed put's item moves no mark:
 * the hold grows by one, without refresh's search for the first mark. */
static int put_refresh(weft_queue *q, void *item)
{
    size_t hold = q->get_hold, n = q->count;
    int err = put_nowait_slow(q, item);
    if (err)
        return err; /* nothing changed */
    if (refresh_but_hold(q)) {
        if (hold && hold != SIZE_MAX && q->count - n <= 1)
            q->get_hold = hold + (q->count - n);
        else
            q->get_hold = first_mark_hold(q);
    }
    return err;
}

/* The slow put. */
WEFT__COLD static int put_nowait_cold(weft_queue *q, void *item)
{
    if (!q || !q->loop)
        return -EINVAL;
    return put_refresh(q, item);
}

static int put_nowait_slow(weft_queue *q, void *item)
{
    if (q->shutdown)
        return WEFT_ESHUTDOWN;
    if (!weft__list_empty(&q->getters)) {
        hand_to_getter(q, item, is_heap(q) ? q->seq++ : 0);
        q->unfinished++;
        return 0;
    }
    if (q->count >= q->maxsize)
        return WEFT_EFULL;
    int err = reserve(q, q->count + 1);
    if (err)
        return err;
    push(q, item);
    q->unfinished++;
    return 0;
}

int weft__queue_put_slow(weft_queue *q, void *item)
{
    return put_nowait_cold(q, item);
}

int weft_queue_put_nowait(weft_queue *q, void *item)
{
    if (weft__queue_put_fast(q, item))
        return 0;
    return put_nowait_cold(q, item);
}

WEFT__COLD static int get_nowait_slow(weft_queue *q, void **out)
{
    if (!q || !q->loop || !out)
        return -EINVAL;
    if (!q->count)
        return q->shutdown ? WEFT_ESHUTDOWN : WEFT_EEMPTY;
    *out = pop(q);
    refill(q); /* refreshes */
    return 0;
}

int weft__queue_get_slow(weft_queue *q, void **out)
{
    return get_nowait_slow(q, out);
}

int weft_queue_get_nowait(weft_queue *q, void **out)
{
    if (out && weft__queue_get_fast(q, out))
        return 0;
    return get_nowait_slow(q, out);
}

static weft_future *put_slow(weft_queue *q, void *item, weft__handoff *h)
{
    if (q->count >= q->maxsize && !q->shutdown && weft__list_empty(&q->getters)) {
        /* full: wait in line; remember who to ask if it gets placed */
        h->item.p = item;
        h->aux = (int64_t)weft__handoff_owner(q->loop);
        weft__handoff_enqueue(&q->putters, h);
        q->get_hold = SIZE_MAX; /* all refresh changes: the queue is full */
        return &h->fut;
    }
    int err = put_refresh(q, item);
    return weft__handoff_settle(h, (weft_value){.p = NULL}, err);
}

weft_future *weft_queue_put(weft_queue *q, void *item, weft_waiter *w)
{
    if (!q || !q->loop) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft__handoff *h = weft__handoff_begin(w, q->loop, q, &putter_kind);
    if (!h)
        return NULL;
    if (weft__queue_put_fast(q, item))
        return weft__handoff_settle(h, (weft_value){.p = NULL}, 0);
    return put_slow(q, item, h);
}

weft_future *weft_queue_get(weft_queue *q, weft_waiter *w)
{
    if (!q || !q->loop) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft__handoff *h = weft__handoff_begin(w, q->loop, q, &getter_kind);
    if (!h)
        return NULL;
    void *item;
    if (weft__queue_get_fast(q, &item))
        return weft__handoff_settle(h, (weft_value){.p = item}, 0);
    if (q->count) {
        item = pop(q);
        refill(q);
        return weft__handoff_settle(h, (weft_value){.p = item}, 0);
    }
    if (q->shutdown)
        return weft__handoff_settle(h, (weft_value){.p = NULL}, WEFT_ESHUTDOWN);
    weft__handoff_enqueue(&q->getters, h);
    q->put_room = 0; /* all refresh changes: the queue is empty */
    return &h->fut;
}

int weft_queue_task_done(weft_queue *q)
{
    if (!q || !q->loop)
        return -EINVAL;
    if (!q->unfinished)
        return WEFT_ESTATE;
    done_one(q);
    return 0;
}

weft_future *weft_queue_join(weft_queue *q, weft_waiter *w)
{
    if (!q || !q->loop) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft__handoff *h = weft__handoff_begin(w, q->loop, q, &joiner_kind);
    if (!h)
        return NULL;
    if (!q->unfinished)
        return weft__handoff_settle(h, (weft_value){.p = NULL}, 0);
    weft__handoff_enqueue(&q->joiners, h);
    return &h->fut;
}

size_t weft_queue_unfinished(const weft_queue *q)
{
    return q ? q->unfinished : 0;
}

size_t weft_queue_getters(const weft_queue *q)
{
    return q && q->loop ? weft__handoff_count(&q->getters) : 0;
}

size_t weft_queue_putters(const weft_queue *q)
{
    return q && q->loop ? weft__handoff_count(&q->putters) : 0;
}

size_t weft_queue_size(const weft_queue *q)
{
    return q ? q->count : 0;
}

size_t weft_queue_maxsize(const weft_queue *q)
{
    return q && q->maxsize != UNBOUNDED ? q->maxsize : 0;
}

bool weft_queue_empty(const weft_queue *q)
{
    return !q || !q->count;
}

bool weft_queue_full(const weft_queue *q)
{
    return q && q->count >= q->maxsize;
}
