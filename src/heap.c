/* heap.c - the timer heap: a 4-ary min-heap of (when, seq, timer) entries.
 *
 * Keys live in the array, so comparisons never touch the timers; each timer
 * stores its own index, so removing any timer is O(log n) and needs no
 * tombstones.  Ties on `when` are broken by `seq`, the start sequence, so
 * equal deadlines fire in start order.  Four children per node halve the
 * depth of a binary heap; the four siblings sit in 96 contiguous bytes.
 * Capacity is reserved by weft_timer_init (loop.c), so nothing here
 * allocates or fails.
 */
#include "loop_internal.h"

#define D 4

static inline bool less(const weft__hent *a, const weft__hent *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void put(weft__heap *h, size_t k, weft__hent e)
{
    h->e[k] = e;
    e.t->index = k;
}

static void sift_up(weft__heap *h, size_t k, weft__hent e)
{
    while (k > 0) {
        size_t p = (k - 1) / D;
        if (!less(&e, &h->e[p]))
            break;
        put(h, k, h->e[p]);
        k = p;
    }
    put(h, k, e);
}

/* Index of the smaller of two entries (ties: the lower index). */
static inline size_t min2(const weft__hent *e, size_t a, size_t b)
{
    return less(&e[b], &e[a]) ? b : a;
}

static void sift_down(weft__heap *h, size_t k, weft__hent e)
{
    weft__hent *a = h->e;
    size_t n = h->n;
    for (;;) {
        size_t c = D * k + 1, best;
        if (c + D <= n) {
            /* all four children exist: a fixed tournament, no loop */
            best = min2(a, min2(a, c, c + 1), min2(a, c + 2, c + 3));
        } else {
            if (c >= n)
                break;
            best = c;
            for (size_t j = c + 1; j < n; j++)
                if (less(&a[j], &a[best]))
                    best = j;
        }
        if (!less(&a[best], &e))
            break;
        put(h, k, a[best]);
        k = best;
    }
    put(h, k, e);
}

void weft__heap_insert(weft__heap *h, weft_timer *t, uint64_t seq)
{
    weft__hent e = {t->when, seq, t};
    sift_up(h, h->n++, e);
}

void weft__heap_remove(weft__heap *h, weft_timer *t)
{
    size_t k = t->index;
    t->index = WEFT__NO_INDEX;
    weft__hent last = h->e[--h->n];
    if (k == h->n)
        return;
    if (k > 0 && less(&last, &h->e[(k - 1) / D]))
        sift_up(h, k, last);
    else
        sift_down(h, k, last);
}

void weft__heap_fix_down(weft__heap *h, size_t k)
{
    sift_down(h, k, h->e[k]);
}
