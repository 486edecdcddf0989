/* heap.c - the timer heap: a 4-ary min-heap of (when, seq, timer) entries.
 *
 * Keys live in the 24-byte entries, so comparisons never touch the timers;
 * each timer stores its own index, so removing any timer is O(log n) with
 * no tombstones.  Ties on `when` are broken by `seq`, the loop-wide start
 * sequence (64 bits: it never wraps), so equal deadlines fire in start
 * order.  Four children per node halve the depth of a binary heap and sit
 * in 96 contiguous bytes.
 *
 * Removing the minimum (the hot path: every timer that fires) uses Floyd's
 * bottom-up sift-down: the hole at the root moves down along the smallest
 * children to a leaf (3 comparisons per level), then the last entry sifts
 * up from there, which is usually at once since it came from the bottom.
 * That saves the comparison with the moving entry at every level.
 *
 * Capacity is reserved per initialised timer (weft__heap_reserve), so
 * insert never allocates or fails.
 */
#include "loop_impl.h"

#define D 4

static inline bool less(const weft__hent *a, const weft__hent *b)
{
    return a->when != b->when ? a->when < b->when : a->seq < b->seq;
}

static inline void put(weft__hent *e, uint32_t k, weft__hent x)
{
    e[k] = x;
    x.t->index = k;
}

static void sift_up(weft__hent *e, uint32_t k, weft__hent x)
{
    while (k > 0) {
        uint32_t p = (k - 1) / D;
        if (!less(&x, &e[p]))
            break;
        put(e, k, e[p]);
        k = p;
    }
    put(e, k, x);
}

/* The smallest of the children c .. c+3 (all four exist): a fixed
 * tournament, no loop. */
static inline uint32_t min4(const weft__hent *e, uint32_t c)
{
    uint32_t a = less(&e[c + 1], &e[c]) ? c + 1 : c;
    uint32_t b = less(&e[c + 3], &e[c + 2]) ? c + 3 : c + 2;
    return less(&e[b], &e[a]) ? b : a;
}

/* The smallest of the children c .. n-1 (fewer than four). */
static inline uint32_t min_tail(const weft__hent *e, uint32_t c, uint32_t n)
{
    uint32_t best = c;
    for (uint32_t j = c + 1; j < n; j++)
        if (less(&e[j], &e[best]))
            best = j;
    return best;
}

static void sift_down(weft__hent *e, uint32_t n, uint32_t k, weft__hent x)
{
    for (;;) {
        uint32_t c = D * k + 1, best;
        if (c + D <= n)
            best = min4(e, c);
        else if (c < n)
            best = min_tail(e, c, n);
        else
            break;
        if (!less(&e[best], &x))
            break;
        put(e, k, e[best]);
        k = best;
    }
    put(e, k, x);
}

int weft__heap_reserve(weft_loop *loop)
{
    if (loop->heap.reserved == loop->heap.cap) {
        if (loop->heap.cap >= WEFT__HEAP_MAX)
            return -ENOMEM;
        uint32_t cap = loop->heap.cap ? loop->heap.cap * 2 : 64;
        if (cap > WEFT__HEAP_MAX)
            cap = WEFT__HEAP_MAX;
        /* realloc: a large array is remapped, not copied, so growing
         * does not double the resident memory */
        weft__hent *e = weft__realloc(loop, loop->heap.e, (size_t)cap * sizeof *e);
        if (!e)
            return -ENOMEM;
        loop->heap.e = e;
        loop->heap.cap = cap;
    }
    loop->heap.reserved++;
    return 0;
}

void weft__heap_unreserve(weft_loop *loop)
{
    WEFT_ASSERT(loop->heap.reserved > loop->heap.n);
    loop->heap.reserved--;
}

void weft__heap_insert(weft_loop *loop, weft_timer *t, int64_t when)
{
    WEFT_ASSERT(loop->heap.n < loop->heap.reserved);
    weft__hent x = {when, loop->timer_seq++, t};
    sift_up(loop->heap.e, loop->heap.n++, x);
}

void weft__heap_remove(weft_loop *loop, weft_timer *t)
{
    weft__hent *e = loop->heap.e;
    uint32_t k = t->index;
    WEFT_ASSERT(k < loop->heap.n && e[k].t == t);
    t->index = WEFT__T_IDLE;
    uint32_t n = --loop->heap.n;
    if (k == n)
        return;
    weft__hent last = e[n];
    if (k > 0 && less(&last, &e[(k - 1) / D]))
        sift_up(e, k, last);
    else
        sift_down(e, n, k, last);
}

weft_timer *weft__heap_pop(weft_loop *loop, int64_t *when)
{
    weft__hent *e = loop->heap.e;
    WEFT_ASSERT(loop->heap.n > 0);
    weft_timer *top = e[0].t;
    *when = e[0].when;
    top->index = WEFT__T_IDLE;
    uint32_t n = --loop->heap.n;
    if (n == 0)
        return top;
    /* the hole goes down to a leaf along the smallest children */
    uint32_t hole = 0;
    for (;;) {
        uint32_t c = D * hole + 1, best;
        if (c + D <= n)
            best = min4(e, c);
        else if (c < n)
            best = min_tail(e, c, n);
        else
            break;
        put(e, hole, e[best]);
        hole = best;
    }
    /* and the last entry, from the bottom, fills it */
    sift_up(e, hole, e[n]);
    return top;
}
