/* heap.c - the timer heap: a 4-ary min-heap of (when, seq, bucket) entries.
 *
 * An entry is a bucket: timers armed for the same deadline, in start
 * order, on a ring through their next/prev links; the entry names the
 * first, which stores the entry's position (the others say
 * WEFT__T_IN_BUCKET).  A timer joins a bucket only while it is the newest
 * bucket of its deadline, which the loop's small cache of open buckets
 * (by hash of the deadline, loop_impl.h) finds; so every timer of a
 * bucket started before every timer of any later bucket of the same
 * deadline, and ordering buckets by (when, seq) keeps equal deadlines in
 * start order.  Timers armed for one deadline in a row (libuv's
 * million-timers layout; a batch of connections arming the same timeout
 * in one iteration) then cost O(1) to start, stop and expire, and the
 * heap holds one entry per bucket.
 *
 * Keys live in the 24-byte entries, so comparisons never touch the timers;
 * each bucket's first timer stores its position, so removing any timer is
 * O(log n) at most, with no tombstones.  seq is the loop-wide bucket
 * sequence (64 bits: it never wraps).  Four children per node halve the
 * depth of a binary heap and sit in 96 contiguous bytes.
 *
 * Removing the minimum (every bucket that expires) uses Floyd's
 * bottom-up sift-down: the hole at the root moves down along the smallest
 * children to a leaf (3 comparisons per level), then the last entry sifts
 * up from there, which is usually at once since it came from the bottom.
 * That saves the comparison with the moving entry at every level.  The
 * loops walk pointers, as libev's do, and keep the smallest key so far in
 * registers: about 30 instructions per level.
 *
 * Capacity is reserved per initialised timer (weft__heap_reserve), so
 * insert (inline in loop_impl.h) never allocates or fails.
 */
#include <string.h>

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
    if (!loop->heap.bucket) {
        weft_timer **b = weft__alloc(loop, WEFT__BUCKET_CACHE * sizeof *b);
        if (!b)
            return -ENOMEM;
        memset(b, 0, WEFT__BUCKET_CACHE * sizeof *b);
        loop->heap.bucket = b;
    }
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

/* Remove the entry at k (n + 1 entries before). */
static void remove_at(weft__hent *e, size_t n, size_t k)
{
    if (k == n)
        return;
    weft__hent last = e[n];
    if (k > 0 && less(&last, &e[(k - 1) / D]))
        sift_up(e, k, last);
    else
        sift_down(e, n, k, last);
}

void weft__heap_remove(weft_loop *loop, weft_timer *t)
{
    weft__hent *e = loop->heap.e;
    weft_timer *next = t->next;
    uint32_t k = t->index;
    t->index = WEFT__T_IDLE;
    if (next != t) { /* the bucket goes on without t */
        weft_timer *prev = t->prev;
        prev->next = next;
        next->prev = prev;
        if (k == WEFT__T_IN_BUCKET)
            return;
        WEFT_ASSERT(k < loop->heap.n && e[k].t == t);
        e[k].t = next; /* the next takes the entry over */
        next->index = k;
        weft_timer **slot = weft__bucket_slot(loop, e[k].when);
        if (*slot == t)
            *slot = next;
        return;
    }
    WEFT_ASSERT(k < loop->heap.n && e[k].t == t);
    weft_timer **slot = weft__bucket_slot(loop, e[k].when);
    if (*slot == t)
        *slot = NULL;
    remove_at(e, --loop->heap.n, k);
}

/* Remove the root of a heap of n + 1 entries (Floyd): walk the hole down
 * with pointers, moving the smallest child up each time.  The loop runs
 * while all four children exist; the last, partial level is done once. */
static inline void pop_root(weft__hent *e, size_t n)
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

void weft__heap_expire(weft_loop *loop, int64_t now)
{
    weft__hent *e = loop->heap.e;
    size_t n = loop->heap.n;
    weft_timer **out = loop->due.e;
    uint32_t k = loop->due.n, cap = loop->due.cap;
    while (n && e[0].when <= now) {
        weft_timer *first = e[0].t, *t = first, *last = first->prev;
        int64_t when = e[0].when;
        for (;;) { /* the bucket's timers, in start order */
            if (k == cap || t->repeat)
                goto stop;
            weft_timer *next = t->next;
            out[k] = t;
            t->repeat = when; /* the deadline, while due */
            t->index = WEFT__T_DUE | k;
            k++;
            if (t == last)
                break;
            t = next;
        }
        weft_timer **slot = weft__bucket_slot(loop, when);
        if (*slot == first)
            *slot = NULL; /* nobody joins a bucket that is gone */
        if (--n)
            pop_root(e, n);
        continue;
    stop:
        if (t != first) { /* the rest stay the root's bucket, t first */
            t->prev = last;
            last->next = t;
            e[0].t = t;
            t->index = 0;
            weft_timer **sl = weft__bucket_slot(loop, when);
            if (*sl == first)
                *sl = t;
        }
        break;
    }
    loop->heap.n = (uint32_t)n;
    loop->due.n = k;
}
