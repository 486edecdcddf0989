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
 * That saves the comparison with the moving entry at every level.  The
 * loops walk pointers, as libev's do, and keep the smallest key so far in
 * registers: about 30 instructions per level.
 *
 * Capacity is reserved per initialised timer (weft__heap_reserve), so
 * insert (inline in loop_impl.h: one comparison when timers are started
 * in deadline order) never allocates or fails.
 */
#include "loop_impl.h"

#define D 4

/* (aw, as) < (bw, bs) */
static inline bool key_less(int64_t aw, uint64_t as, int64_t bw, uint64_t bs)
{
    return aw < bw || (aw == bw && as < bs);
}

static inline bool less(const weft__hent *a, const weft__hent *b)
{
    return key_less(a->when, a->seq, b->when, b->seq);
}

/* Store x at e[k] and tell its timer. */
static inline void put(weft__hent *e, size_t k, const weft__hent *x)
{
    e[k] = *x;
    x->t->index = (uint32_t)k;
}

static void sift_up(weft__hent *e, size_t k, weft__hent x)
{
    while (k > 0) {
        size_t p = (k - 1) / D;
        if (!less(&x, &e[p]))
            break;
        put(e, k, &e[p]);
        k = p;
    }
    put(e, k, &x);
}

/* The position (0..3) of the smallest of the children at c, c < end;
 * there are min(4, end - c) of them.  All four (the common case): three
 * comparisons, unrolled, the smallest key kept in registers. */
static inline size_t min_child(const weft__hent *c, const weft__hent *end)
{
    size_t j = 0;
    int64_t mw = c[0].when;
    uint64_t ms = c[0].seq;
    if (c + D <= end) {
        if (key_less(c[1].when, c[1].seq, mw, ms)) {
            j = 1;
            mw = c[1].when;
            ms = c[1].seq;
        }
        if (key_less(c[2].when, c[2].seq, mw, ms)) {
            j = 2;
            mw = c[2].when;
            ms = c[2].seq;
        }
        if (key_less(c[3].when, c[3].seq, mw, ms))
            j = 3;
        return j;
    }
    for (size_t i = 1; c + i < end; i++) {
        if (key_less(c[i].when, c[i].seq, mw, ms)) {
            j = i;
            mw = c[i].when;
            ms = c[i].seq;
        }
    }
    return j;
}

static void sift_down(weft__hent *e, size_t n, size_t k, weft__hent x)
{
    const weft__hent *end = e + n;
    for (;;) {
        size_t ck = D * k + 1;
        if (ck >= n)
            break;
        size_t mk = ck + min_child(e + ck, end);
        if (!less(&e[mk], &x))
            break;
        put(e, k, &e[mk]);
        k = mk;
    }
    put(e, k, &x);
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

/* For an insert: x is the newest entry, so its seq is larger than every
 * other and the deadline alone decides. */
void weft__heap_sift_up(weft_loop *loop, uint32_t k, int64_t when, uint64_t seq, weft_timer *t)
{
    weft__hent *e = loop->heap.e, x = {when, seq, t};
    while (k > 0) {
        uint32_t p = (k - 1) / D;
        if (x.when >= e[p].when)
            break;
        put(e, k, &e[p]);
        k = p;
    }
    put(e, k, &x);
}

void weft__heap_remove(weft_loop *loop, weft_timer *t)
{
    weft__hent *e = loop->heap.e;
    size_t k = t->index;
    WEFT_ASSERT(k < loop->heap.n && e[k].t == t);
    t->index = WEFT__T_IDLE;
    size_t n = --loop->heap.n;
    if (k == n)
        return;
    weft__hent last = e[n];
    if (k > 0 && less(&last, &e[(k - 1) / D]))
        sift_up(e, k, last);
    else
        sift_down(e, n, k, last);
}

/* Remove the root of a heap of n + 1 entries (Floyd): walk the hole down
 * with pointers, moving the smallest child up each time.  The loop runs
 * while all four children exist; the last, partial level is done once. */
static void pop_root(weft__hent *e, size_t n)
{
    weft__hent *hole = e, *m;
    size_t hk = 0, ck, lim = n >= D ? n - D : 0; /* ck <= lim: four children */
    while ((ck = D * hk + 1) <= lim) {
        weft__hent *c = e + ck;
        int64_t mw = c[0].when;
        uint64_t ms = c[0].seq;
        size_t j = 0;
        if (key_less(c[1].when, c[1].seq, mw, ms)) {
            j = 1;
            mw = c[1].when;
            ms = c[1].seq;
        }
        if (key_less(c[2].when, c[2].seq, mw, ms)) {
            j = 2;
            mw = c[2].when;
            ms = c[2].seq;
        }
        if (key_less(c[3].when, c[3].seq, mw, ms))
            j = 3;
        m = c + j;
        weft_timer *t = m->t; /* before the copy: *hole might alias it */
        *hole = *m;
        t->index = (uint32_t)hk;
        hole = m;
        hk = ck + j;
    }
    if (ck < n) { /* 1 to 3 children */
        size_t j = min_child(e + ck, e + n);
        m = e + ck + j;
        *hole = *m;
        m->t->index = (uint32_t)hk;
        hk = ck + j;
    }
    if (hk != n)
        sift_up(e, hk, e[n]);
}

uint32_t weft__heap_pop_due(weft_loop *loop, int64_t now, weft__due *out, uint32_t k, uint32_t max)
{
    weft__hent *e = loop->heap.e;
    size_t n = loop->heap.n;
    while (n && k < max && e[0].when <= now) {
        weft_timer *t = e[0].t;
        out[k] = (weft__due){t, e[0].when};
        t->index = WEFT__T_DUE | k;
        k++;
        if (--n)
            pop_root(e, n);
    }
    loop->heap.n = (uint32_t)n;
    return k;
}
