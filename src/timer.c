/* timer.c - caller-owned timers, expiry (step 3) and the due list (step 4).
 *
 * A timer is 56 bytes and holds no ready-queue node: while armed, it is
 * in a bucket of the heap (heap.c), whose entry holds the deadline.  Step
 * 3 moves expired timers to the loop's due list, an array of timer
 * pointers in (deadline, start) order that step 4 runs after the ready
 * queue (libev's pending array).  A due one-shot timer says "due, at slot
 * k" in t->index and keeps its deadline in t->repeat (0 otherwise, and it
 * has left the heap); a repeating timer is re-armed at expiry and keeps
 * its slot in t->state.  Either way stopping a due timer that has not run
 * yet clears its slot.
 *
 * Costs: init O(1) (reserves a heap slot: amortised realloc), start and
 * stop O(1) in a cached bucket, else O(log n); expiry O(1) per timer plus
 * O(log n) per bucket, and an amortised due-list append; the due list
 * grows by doubling and never shrinks.
 */
#include "loop_impl.h"

#define DUE_MIN 64 /* due-list capacity allocated by weft_loop_new */

/* The documented size on LP64 (the caller embeds it). */
_Static_assert(sizeof(void *) != 8 || sizeof(weft_timer) == 56, "weft_timer grew");

/* The entry points below keep their warm path free of calls and of any
 * code that could need a stack frame: every rare condition (debug checks,
 * a closed loop, heap growth, re-arming an active timer, a stale clock)
 * tail-calls its cold half in timer_cold.c, a separate translation unit so
 * that the compiler cannot merge it back in. */

int weft_timer_init(weft_timer *t, weft_loop *loop, weft_cb *fn, void *arg)
{
    if (!t || !loop || !fn)
        return -EINVAL;
    if ((loop->flags & WEFT_LOOP_DEBUG) || weft__closed(loop) ||
        loop->heap.reserved == loop->heap.cap)
        return weft__timer_init_cold(t, loop, fn, arg);
    loop->heap.reserved++;
    *t = (weft_timer){.fn = fn, .arg = arg, .loop = loop, .index = WEFT__T_IDLE};
    return 0;
}

void weft__timer_disarm(weft_loop *loop, weft_timer *t)
{
    if (t->index & WEFT__T_DUE) { /* a due one-shot: clear its slot */
        uint32_t k = t->index & ~WEFT__T_DUE;
        WEFT_ASSERT(k < loop->due.n && loop->due.e[k] == t);
        loop->due.e[k] = NULL; /* step 4 skips the slot */
        t->index = WEFT__T_IDLE;
        t->repeat = 0;
        return;
    }
    weft__heap_remove(loop, t);
    if (t->state >> WEFT__T_SLOT_SHIFT) { /* a repeating timer due in this batch */
        uint32_t k = (t->state >> WEFT__T_SLOT_SHIFT) - 1;
        WEFT_ASSERT(k < loop->due.n && loop->due.e[k] == t);
        loop->due.e[k] = NULL;
        t->state &= WEFT__T_FLAGS;
    }
}

/* The warm path of every start: an idle timer of an open, non-debug loop
 * whose clock is fresh (relative starts). */
static inline bool start_warm(const weft_timer *t, bool relative)
{
    const weft_loop *loop = t->loop;
    return !(loop->flags & WEFT_LOOP_DEBUG) && !weft__closed(loop) && t->index == WEFT__T_IDLE &&
           (!relative || loop->now_valid);
}

int weft_timer_start_at_ns(weft_timer *t, int64_t when_ns, int64_t repeat_ns)
{
    if (!t || !t->loop || repeat_ns < 0)
        return -EINVAL;
    if (!start_warm(t, false))
        return weft__timer_start_cold(t, when_ns, repeat_ns, false);
    t->repeat = repeat_ns;
    weft__heap_insert(t->loop, t, when_ns);
    return 0;
}

int weft_timer_start_ns(weft_timer *t, int64_t delay_ns, int64_t repeat_ns)
{
    if (!t || !t->loop || repeat_ns < 0)
        return -EINVAL;
    if (!start_warm(t, true))
        return weft__timer_start_cold(t, delay_ns, repeat_ns, true);
    t->repeat = repeat_ns;
    weft__heap_insert(t->loop, t, weft__add_sat(t->loop->now, delay_ns));
    return 0;
}

int weft_timer_start(weft_timer *t, double delay_s, double repeat_s)
{
    int64_t delay, repeat;
    if (weft__sec_to_ns(delay_s, &delay) || weft__sec_to_ns(repeat_s, &repeat))
        return -EINVAL;
    return weft_timer_start_ns(t, delay, repeat);
}

int weft_timer_stop(weft_timer *t)
{
    if (!t || !t->loop)
        return -EINVAL;
    if (weft__wrong_thread(t->loop, "weft_timer_stop"))
        return -EPERM;
    if (t->index == WEFT__T_IDLE)
        return -ENOENT;
    weft__timer_disarm(t->loop, t);
    return 0;
}

bool weft_timer_active(const weft_timer *t)
{
    return t && t->loop && t->index != WEFT__T_IDLE;
}

int64_t weft_timer_when(const weft_timer *t)
{
    if (!weft_timer_active(t))
        return INT64_MIN;
    if (t->index & WEFT__T_DUE)
        return t->repeat; /* a due one-shot keeps its deadline there */
    while (t->index == WEFT__T_IN_BUCKET)
        t = t->prev; /* to its bucket's first, which knows the entry */
    return t->loop->heap.e[t->index].when;
}

void weft_timer_close(weft_timer *t)
{
    weft_loop *loop;
    if (!t || !(loop = t->loop))
        return;
    if ((loop->flags & WEFT_LOOP_DEBUG) || t->index != WEFT__T_IDLE ||
        (loop->state & WEFT__CLOSED)) {
        weft__timer_close_cold(t);
        return;
    }
    weft__heap_unreserve(loop);
    t->loop = NULL;
}

/* ---- step 3: expiry ------------------------------------------------------------------- */

static int due_grow(weft_loop *loop)
{
    uint32_t cap = loop->due.cap ? loop->due.cap * 2 : DUE_MIN;
    weft_timer **e = weft__realloc(loop, loop->due.e, (size_t)cap * sizeof *e);
    if (!e)
        return -ENOMEM;
    loop->due.e = e;
    loop->due.cap = cap;
    return 0;
}

/* A repeating timer that expired at `when`: back into the heap at once, at
 * when + period, or now + period if it fell behind.  False (not re-armed)
 * if that deadline would pass INT64_MAX: a saturated deadline would be due
 * again at once, forever, on a virtual clock that reached it. */
static bool rearm(weft_loop *loop, weft_timer *t, int64_t when, int64_t now)
{
    int64_t period = t->repeat;
    if (when > INT64_MAX - period)
        return false;
    int64_t next = when + period;
    if (next <= now) {
        if (now > INT64_MAX - period)
            return false;
        next = now + period;
    }
    weft__heap_insert(loop, t, next);
    return true;
}

void weft__timers_expire(weft_loop *loop)
{
    int64_t now = weft__now(loop);
    for (;;) {
        weft__heap_expire(loop, now); /* the one-shot timers, in bulk */
        if (!loop->heap.n || loop->heap.e[0].when > now)
            return;
        if (loop->due.n == loop->due.cap) {
            if (due_grow(loop) < 0)
                return; /* the rest expire at the next iteration, still in order */
            continue;
        }
        /* a repeating timer, the first of the root's bucket: re-armed now,
         * and run once at step 4 */
        weft_timer *t = loop->heap.e[0].t;
        int64_t when = loop->heap.e[0].when;
        weft__heap_remove(loop, t);
        uint32_t k = loop->due.n++;
        loop->due.e[k] = t;
        if (rearm(loop, t, when, now)) {
            t->state = (t->state & WEFT__T_FLAGS) | (k + 1) << WEFT__T_SLOT_SHIFT;
        } else { /* its last run: due like a one-shot */
            t->repeat = when;
            t->index = WEFT__T_DUE | k;
        }
    }
}

/* ---- step 4, second half: the due list ---------------------------------------------------- */

void weft__timers_run_due(weft_loop *loop)
{
    for (uint32_t k = 0; k < loop->due.n; k++) {
        weft_timer *t = loop->due.e[k];
        if (!t)
            continue; /* stopped by an earlier callback of this batch */
        if (t->index & WEFT__T_DUE) {
            t->index = WEFT__T_IDLE;
            t->repeat = 0;
        } else {
            t->state &= WEFT__T_FLAGS; /* repeating: armed again already */
        }
        weft_cb *fn = t->fn;
        void *arg = t->arg;
        uint64_t tick = weft__cb_begin(loop);
        weft__running_cb(loop, fn, arg);
        if (t->state & WEFT__T_CALL)
            weft__call_fired(loop, t); /* its node goes back before fn runs */
        fn(arg);
        weft__cb_end(loop, tick, NULL, NULL);
    }
    loop->due.n = 0;
}

void weft__timers_close(weft_loop *loop)
{
    for (uint32_t k = 0; k < loop->due.n; k++)
        if (loop->due.e[k])
            weft__timer_disarm(loop, loop->due.e[k]);
    for (uint32_t i = 0; i < loop->heap.n; i++) {
        weft_timer *first = loop->heap.e[i].t, *t = first;
        do {
            t->index = WEFT__T_IDLE;
            t = t->next;
        } while (t != first);
    }
    weft__free(loop, loop->heap.bucket);
    loop->heap.bucket = NULL;
    weft__free(loop, loop->heap.e);
    weft__free(loop, loop->due.e);
    loop->heap.e = NULL;
    loop->heap.n = loop->heap.cap = loop->heap.reserved = 0;
    loop->due.e = NULL;
    loop->due.n = loop->due.cap = 0;
}

/* weft_loop_new: the due list starts with room for DUE_MIN timers, so that
 * expiry always makes progress even when the allocator fails later. */
int weft__timers_open(weft_loop *loop)
{
    return due_grow(loop);
}
