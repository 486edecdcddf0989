/* loop_impl.h - declarations shared by the loop layer's own files only
 * (loop.c, clock.c, heap.c, timer.c, call.c, io.c, inbox.c, report.c,
 * lag.c, backend*.c).  The layers above include loop_internal.h, never this.
 */
#ifndef WEFT_LOOP_IMPL_H
#define WEFT_LOOP_IMPL_H

#include "loop_internal.h"

/* ---- timers: heap.c and timer.c --------------------------------------------------- */

/* weft_timer.index: a heap position (< 2^31 - 1: the first timer of its
 * bucket), WEFT__T_IN_BUCKET (a later one), WEFT__T_DUE | due position, or
 * WEFT__T_IDLE. */
#define WEFT__T_IDLE UINT32_MAX
#define WEFT__T_DUE (UINT32_C(1) << 31)
#define WEFT__T_IN_BUCKET (WEFT__T_DUE - 1)
#define WEFT__HEAP_MAX (WEFT__T_IN_BUCKET - 1) /* timers one loop can hold */

/* weft_timer.state: flags, and above them the due slot + 1 of a
 * repeating timer that expired in this iteration (it is re-armed at once,
 * so its index is a heap position, yet step 4 must still run it once). */
enum { WEFT__T_CALL = 1u }; /* the timer of a convenience call node */
#define WEFT__T_SLOT_SHIFT 1
#define WEFT__T_FLAGS ((UINT32_C(1) << WEFT__T_SLOT_SHIFT) - 1)

/* Reserve (give back) one heap slot: the heap array grows here, by
 * doubling through realloc, never in insert.  -ENOMEM. */
int weft__heap_reserve(weft_loop *loop);
static inline void weft__heap_unreserve(weft_loop *loop)
{
    WEFT_ASSERT(loop->heap.reserved > loop->heap.n);
    loop->heap.reserved--;
}
/* Insert (when, seq, t) by sifting up from the free slot k (heap.c). */
void weft__heap_sift_up(weft_loop *loop, uint32_t k, int64_t when, uint64_t seq, weft_timer *t);

/* The bucket cache's slot for deadline when (Fibonacci hashing). */
static inline weft_timer **weft__bucket_slot(weft_loop *loop, int64_t when)
{
    return &loop->heap.bucket[((uint64_t)when * UINT64_C(0x9E3779B97F4A7C15)) >>
                              (64 - WEFT__BUCKET_BITS)];
}

/* Arm t at when, after every timer armed before it for when.  O(1) if
 * the newest bucket of when is in the cache (t joins it: timers armed for
 * one deadline one after another, or for a few deadlines in turn);
 * otherwise t opens a bucket, a heap entry at (when, next sequence):
 * O(log n), or one comparison when timers are started in deadline order.
 * No allocation. */
static inline void weft__heap_insert(weft_loop *loop, weft_timer *t, int64_t when)
{
    WEFT_ASSERT(loop->heap.n < loop->heap.reserved);
    weft_timer **slot = weft__bucket_slot(loop, when), *b = *slot;
    if (b && loop->heap.e[b->index].when == when) { /* b's bucket is the newest of when */
        weft_timer *last = b->prev;
        t->next = b;
        t->prev = last;
        last->next = t;
        b->prev = t;
        t->index = WEFT__T_IN_BUCKET;
        return;
    }
    t->next = t->prev = t;
    *slot = t;
    uint32_t k = loop->heap.n++;
    uint64_t seq = loop->timer_seq++;
    if (k > 0 && when < loop->heap.e[(k - 1) / 4].when) {
        /* (equal deadlines: seq is the largest, so the new entry stays) */
        weft__heap_sift_up(loop, k, when, seq, t);
        return;
    }
    loop->heap.e[k] = (weft__hent){when, seq, t};
    t->index = k;
}
/* Disarm t (in the heap: a bucket's first or a later one).  O(1) if its
 * bucket goes on without it, else O(log n). */
void weft__heap_remove(weft_loop *loop, weft_timer *t);
/* Move the expired one-shot timers (when <= now), in (deadline, start)
 * order, to the due list while it has room, marking each WEFT__T_DUE |
 * position and keeping its deadline in its repeat field (0 for a one-shot,
 * and it has left the heap); stops early at a repeating timer, which is
 * then the first of the root's bucket.  O(1) per timer plus Floyd's
 * bottom-up sift-down per bucket. */
void weft__heap_expire(weft_loop *loop, int64_t now);

/* Step 3: move every expired timer to the due list, in (when, seq) order.
 * If the due list cannot grow, the rest stay in the heap for the next
 * iteration. */
void weft__timers_expire(weft_loop *loop);
/* Step 4, second half: run the due list in order. */
void weft__timers_run_due(weft_loop *loop);
/* Disarm an active timer (armed or due). */
void weft__timer_disarm(weft_loop *loop, weft_timer *t);
/* timer_cold.c: the cold halves of weft_timer_init, the starts (at: a
 * deadline, or a delay if relative) and weft_timer_close. */
int weft__timer_init_cold(weft_timer *t, weft_loop *loop, weft_cb *fn, void *arg);
int weft__timer_start_cold(weft_timer *t, int64_t at, int64_t repeat, bool relative);
void weft__timer_close_cold(weft_timer *t);
/* weft_loop_new: allocate the due list's first 64 slots (so that expiry
 * makes progress even when the allocator fails later). */
int weft__timers_open(weft_loop *loop);
/* Close: forget every armed and due timer, free the arrays. */
void weft__timers_close(weft_loop *loop);

/* ---- convenience call nodes: call.c ------------------------------------------------- */

/* One node serves a call_soon (queued through node) or a call_later
 * (armed through t), and the token {node, gen} that names it.  Nodes live
 * until the loop closes, so a token is always safe to look at. */
/* (weft__call itself is in weft/loop.h, for weft_call_soon's inline path.) */

/* call.c: the run function of call_soon nodes, and of weft_handle nodes.
 * (The iteration dispatches call_soon nodes itself, as it does.) */
void weft__call_soon_run(weft_node *n);
void weft__handle_run(weft_node *n);
/* A call node whose timer fired: release it (its callback runs next). */
void weft__call_fired(weft_loop *loop, weft_timer *t);

/* call_pool.c, the cold side of the node pool (a separate translation unit
 * so that the warm paths in call.c stay free of its register pressure): */
/* A node when the free list is empty: newly allocated (with a heap slot
 * reserved), or the oldest quarantined one (WEFT__POISON); NULL: -ENOMEM. */
weft__call *weft__call_new(weft_loop *loop);
/* WEFT__POISON: a released node goes to the quarantine, poisoned. */
void weft__call_retire(weft_loop *loop, weft__call *c);
/* weft_call_soon when its warm path does not apply: every check, then a
 * node from wherever it comes. */
int weft__call_soon_cold(weft_loop *loop, weft_cb *fn, void *arg, weft_call *out);
/* Close: free every node. */
void weft__calls_close(weft_loop *loop);

/* The call of c ended (it runs now, or was cancelled): the token goes
 * stale and the node is free again. */
static inline void weft__call_release(weft_loop *loop, weft__call *c)
{
    c->gen++;
    if (WEFT__POISON) {
        weft__call_retire(loop, c);
        return;
    }
    c->node.link.next = loop->pool ? &loop->pool->node.link : NULL;
    loop->pool = c;
}

/* ---- fd watchers: io.c ------------------------------------------------------------------ */

enum {
    WEFT__IO_LIVE = 1u,   /* initialised and registered */
    WEFT__IO_RECORD = 2u, /* the weft_io of a weft_add_reader record */
};

/* The run function of a watcher's ready node. */
void weft__io_run(weft_node *n);

/* Close: forget every watcher (caller-owned ones become inactive), free
 * the records and the fd table.  Before the backend closes. */
void weft__io_close_all(weft_loop *loop);

/* ---- the inbox: inbox.c --------------------------------------------------------------------- */

/* Step 0: move what other threads queued to the ready queue. */
void weft__inbox_drain(weft_loop *loop);
/* Close: refuse further sends; what was sent is dropped. */
void weft__inbox_close(weft_loop *loop);
/* Close, for nodes dropped from the ready queue: true (and freed) if n was
 * a weft_call_soon_threadsafe node. */
bool weft__inbox_drop(weft_loop *loop, weft_node *n);

/* ---- reports and dumps: report.c ------------------------------------------------------------- */

/* weft_loop_new: install the default report hook. */
void weft__report_init(weft_loop *loop);
/* Emit the WEFT_REPORT_DUMP report (step 0, after weft_loop_request_dump). */
void weft__dump(weft_loop *loop);
/* weft__symbol (symbol.c) is declared in loop_internal.h. */

/* ---- the lag watchdog: lag.c ------------------------------------------------------------ */

/* weft_loop_new / weft_loop_destroy: the watchdog's counters, mutex and
 * condition variable (no thread yet). */
int weft__lag_open(weft_loop *loop);
void weft__lag_free(weft_loop *loop);
/* run() entry / exit: start the watchdog if needed (once per process:
 * a forked child starts its own), mark the loop busy / idle. */
void weft__lag_run_begin(weft_loop *loop);
void weft__lag_run_end(weft_loop *loop);
/* Around a blocking backend wait (not around polls with timeout 0). */
void weft__lag_idle(weft_loop *loop);
void weft__lag_busy(weft_loop *loop);
/* Close: stop and join the watchdog. */
void weft__lag_close(weft_loop *loop);
/* Set the threshold (ns > 0, or <= 0 for off). */
void weft__lag_set(weft_loop *loop, int64_t ns);
/* The SLOW report of the callback that just returned (cold path).  node
 * and run: the ready-queue node and its run function, for a callback that
 * recorded nothing (both NULL for a due timer). */
void weft__lag_report(weft_loop *loop, const void *node, void (*run)(weft_node *));

/* Before each callback: a new tick (the watchdog's measure of progress),
 * returned.  A load and a store. */
static inline uint64_t weft__cb_tick(weft_loop *loop)
{
    uint64_t t = atomic_load_explicit(&loop->lag.tick, memory_order_relaxed) + 1;
    atomic_store_explicit(&loop->lag.tick, t, memory_order_relaxed);
    return t;
}

/* The same, and the running record cleared (for a callback that may
 * record nothing). */
static inline uint64_t weft__cb_begin(weft_loop *loop)
{
    uint64_t t = weft__cb_tick(loop);
    loop->run.fn = NULL;
    return t;
}

/* After it: one relaxed load of the watchdog's flag, compared with the
 * callback's tick; the report is the cold path.  (A run function that ran
 * several callbacks under new ticks checked those itself; the report of a
 * tick is emitted once.) */
static inline void weft__cb_end(weft_loop *loop, uint64_t tick, const void *node,
                                void (*run)(weft_node *))
{
    if (atomic_load_explicit(&loop->lag.flag, memory_order_relaxed) == tick)
        weft__lag_report(loop, node, run);
}

/* weft__cb_end for the callback whose tick is the current one: the tick
 * is read back rather than kept (a run function that ran several
 * callbacks under new ticks checked the earlier ones itself, and the
 * report of a tick is emitted once). */
static inline void weft__cb_done(weft_loop *loop, const void *node, void (*run)(weft_node *))
{
    if (weft__lag_flagged(loop))
        weft__lag_report(loop, node, run);
}

/* weft__cb_done as the ready queue's runs make it: the watchdog's
 * WEFT__ATTN_LAG bit first (one load and a bit test where the flag and
 * the tick are two loads; the bit is raised with every flag and stays
 * until the next full iteration, which only makes the checks after it
 * the full ones). */
static inline void weft__cb_checked(weft_loop *loop, const void *node, void (*run)(weft_node *))
{
    if ((atomic_load_explicit(&loop->attn, memory_order_relaxed) & WEFT__ATTN_LAG) &&
        weft__lag_flagged(loop))
        weft__lag_report(loop, node, run);
}

/* ---- running the ready queue: loop.c and call.c ----------------------------------------- */

/* Run one node taken off the head of batch.  A call_soon node (nearly
 * every node of a callback-heavy loop) is dispatched here rather than
 * through its run function: the record of what runs, the release of the
 * node (so that a chain reuses it), then the callback; that saves an
 * indirect call and the clear of the record.  So is a watcher (nearly
 * every node of an I/O-heavy loop). */
static inline void weft__run_head_unchecked(weft_loop *loop, weft_link *batch);

static inline void weft__run_head(weft_loop *loop, weft_link *batch)
{
    weft_node *n = (weft_node *)(void *)batch->next;
    void (*run)(weft_node *) = n->run;
    weft__run_head_unchecked(loop, batch);
    weft__cb_checked(loop, n, run);
}

/* weft__run_head without the lag check after the node ran (the caller
 * makes it: the callbacks-only loop folds it into its attn test). */
static inline void weft__run_head_unchecked(weft_loop *loop, weft_link *batch)
{
    weft_link *l = batch->next, *next = l->next; /* the head: prev is batch */
    WEFT_ASSERT(l->prev == batch && next->prev == l);
    batch->next = next;
    next->prev = batch;
    l->next = NULL; /* unlinked; prev is read only by the assertions */
    if (WEFT_ASSERTIONS)
        l->prev = NULL;
    weft_node *n = (weft_node *)(void *)l;
    void (*run)(weft_node *) = n->run;
    weft__cb_tick(loop);
    if (run == weft__call_soon_run) {
        weft__call *c = (weft__call *)(void *)n;
        weft_cb *fn = c->t.fn;
        void *arg = c->t.arg;
        weft__running_cb(loop, fn, arg);
        weft__call_release(loop, c);
        fn(arg);
    } else if (run == weft__io_run) {
        /* a watcher (weft__io_run, inline): its callback gets what was
         * gathered this iteration */
        weft_io *w = (weft_io *)(void *)n; /* node is the first member */
        unsigned ev = w->revents;
        w->revents = 0;
        /* the report prints the symbol; the pointer is never called as a weft_cb */
        weft__running_cb(loop, (weft_cb *)(void (*)(void))w->cb, w);
        w->cb(w, ev);
    } else {
        loop->run.fn = NULL;
        run(n);
    }
}

/* 4, first half: the ready queue as it is now (callbacks queued before
 * this iteration, then I/O).  What the callbacks queue runs in the next
 * iteration: the two queues swap, so new work goes to the other one while
 * this batch runs (no splice).  Per callback: a head pop, a tick for the
 * lag watchdog, a call and two loads for the lag flag. */
static inline void weft__run_ready(weft_loop *loop)
{
    weft_link *batch = loop->ready;
    if (batch->next->next == batch) {
        /* one node (a call_soon chain): it leaves the ready queue before
         * it runs, so what it queues comes after it anyway; no swap */
        weft__run_head(loop, batch);
        return;
    }
    loop->ready = loop->batch;
    loop->batch = batch;
    do
        weft__run_head(loop, batch);
    while (!weft__list_empty(batch));
}

/* A loop busy with nothing but callbacks (no hook, nothing from other
 * threads, no fd watched, no timer, work ready, not stopping, not
 * run_once): steps 0 to 3 have nothing to do. */
static inline bool weft__only_callbacks(weft_loop *loop)
{
    return !((unsigned)loop->nwatched | loop->heap.n) &&
           !(loop->state & (WEFT__HOOKED | WEFT__STOPPING | WEFT__ONCE)) &&
           !atomic_load_explicit(&loop->attn, memory_order_relaxed) &&
           !weft__list_empty(loop->ready);
}

/* loop.c: weft__run_ready, out of line (for call.c). */
void weft__run_ready_checked(weft_loop *loop);

/* call.c: iterations of such a loop, back to back until it is told to
 * stop or something else needs the full iteration (a translation unit of
 * its own keeps run()'s registers out of it). */
void weft__run_callbacks(weft_loop *loop);

/* ---- clock.c ---------------------------------------------------------------------------- */

/* The monotonic clock, ns. */
int64_t weft__clock_mono(void);

#endif
