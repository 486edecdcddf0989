/* pool.c - per-loop slab pools of small blocks (see pool.h).
 *
 * A slab is one allocation from the allocator hook holding nothing but
 * blocks of one size; its record (where it is, how many blocks) lives in
 * its class's array of slab records, sorted by address, so that trimming
 * finds a block's slab by binary search.  A class's slabs grow
 * geometrically, from SLAB_MIN to SLAB_MAX bytes, so that a class used a
 * little costs a few KiB and one used a lot costs next to nothing beyond
 * its blocks (a 128-byte task costs 128 bytes plus 1/16 byte of slab
 * record and allocator header at SLAB_MAX).  Free blocks of a class form
 * one LIFO list through their second word (the first is NULL: "free", for
 * walks).  Costs: get and put O(1) (a new slab or a trim aside); a trim is
 * O(free blocks * log slabs) and runs only when free blocks outnumber used
 * ones by more than two of the largest slabs' worth, so it is amortised
 * over the frees that made the surplus.
 */
#include <string.h>

#include "pool.h"

#define SLAB_MIN 4096
#define SLAB_MAX 65536
#define TRIM_DELAY_NS 1000000000LL /* trims run at most once a second */

typedef weft__free_block free_block;


void weft__pool_init(weft__pool *p, weft_loop *loop)
{
    memset(p, 0, sizeof *p);
    p->loop = loop;
    for (int a = 0; a < WEFT__POOL_ARENAS; a++) {
        weft__list_init(&p->big[a]);
        for (size_t k = 0; k < WEFT__POOL_CLASSES; k++)
            p->cls[a][k].slack = 2 * (SLAB_MIN / ((k + 1) * 16));
    }
}

#define BIG_HEADER 16 /* a weft_link, keeps the block 16-byte aligned */

static void *big_get(weft__pool *p, int arena, size_t size)
{
    weft_link *l = weft__alloc(p->loop, BIG_HEADER + (size ? size : 1));
    if (!l)
        return NULL;
    l->next = l->prev = NULL; /* fresh memory: not in a list yet */
    weft__list_push(&p->big[arena], l);
    return (char *)l + BIG_HEADER;
}

static void big_put(weft__pool *p, void *b)
{
    weft_link *l = (weft_link *)(void *)((char *)b - BIG_HEADER);
    weft__list_unlink(l);
    weft__free(p->loop, l);
}

static size_t class_of(size_t size)
{
    return (size + 15) / 16 - 1;
}

/* Add a slab of blocks of bsize bytes to c (sorted insert), the next
 * size up.  0 or -ENOMEM. */
static int grow(weft__pool *p, weft__pool_class *c, size_t bsize)
{
    if (c->nslabs == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 4;
        weft__slab *a = weft__realloc(p->loop, c->slabs, cap * sizeof *a);
        if (!a)
            return -ENOMEM;
        c->slabs = a;
        c->cap = cap;
    }
    size_t bytes = c->next_bytes ? c->next_bytes : SLAB_MIN;
    char *base = weft__alloc(p->loop, bytes);
    if (!base)
        return -ENOMEM;
    if (bytes < SLAB_MAX)
        c->next_bytes = (uint32_t)(bytes * 2);
    else
        c->next_bytes = SLAB_MAX;
    c->slack = 2 * (c->next_bytes / bsize);
    weft__slab rec = {base, (uint32_t)(bytes / bsize), 0};
    uint32_t k = c->nslabs;
    while (k > 0 && (uintptr_t)c->slabs[k - 1].base > (uintptr_t)base) {
        c->slabs[k] = c->slabs[k - 1];
        k--;
    }
    c->slabs[k] = rec;
    c->nslabs++;
    /* thread the new blocks in address order (the first is popped first) */
    for (uint32_t i = rec.nblocks; i-- > 0;) {
        free_block *fb = (free_block *)(void *)(base + i * bsize);
        fb->zero = NULL;
        fb->next = c->free;
        c->free = fb;
    }
    c->nfree += rec.nblocks;
    return 0;
}

void *weft__pool_get_slow(weft__pool *p, int arena, size_t size)
{
    if (!weft__pool_pooled(size))
        return big_get(p, arena, size);
    /* the class's free list is empty: a new slab first */
    weft__pool_class *c = weft__pool_class_of(p, arena, size);
    if (grow(p, c, (class_of(size) + 1) * 16) < 0)
        return NULL;
    free_block *fb = c->free;
    c->free = fb->next;
    c->nfree--;
    c->used++;
    return fb;
}

/* The record of the slab of c (blocks of bsize bytes) holding block b
 * (binary search), or NULL. */
static weft__slab *slab_of(const weft__pool_class *c, size_t bsize, const void *b)
{
    uint32_t lo = 0, hi = c->nslabs;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if ((uintptr_t)c->slabs[mid].base <= (uintptr_t)b)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    weft__slab *s = &c->slabs[lo - 1];
    return (uintptr_t)b < (uintptr_t)s->base + s->nblocks * bsize ? s : NULL;
}

/* Give back every slab of c (blocks of bsize bytes) whose blocks are all
 * free. */
static void trim(weft__pool *p, weft__pool_class *c, size_t bsize)
{
    if (c->used == 0) {
        /* nothing in use: every slab goes, no search needed */
        for (uint32_t i = 0; i < c->nslabs; i++)
            weft__free(p->loop, c->slabs[i].base);
        c->nslabs = 0;
        c->free = NULL;
        c->nfree = 0;
        c->next_bytes = 0; /* start small again */
        return;
    }
    for (uint32_t i = 0; i < c->nslabs; i++)
        c->slabs[i].nfree = 0;
    for (free_block *fb = c->free; fb; fb = fb->next) {
        weft__slab *s = slab_of(c, bsize, fb);
        WEFT_ASSERT(s != NULL);
        s->nfree++;
    }
    /* rebuild the free list without the blocks of empty slabs */
    free_block *keep = NULL, **tail = &keep;
    size_t nfree = 0;
    for (free_block *fb = c->free, *next; fb; fb = next) {
        next = fb->next;
        weft__slab *s = slab_of(c, bsize, fb);
        if (s->nfree == s->nblocks)
            continue;
        *tail = fb;
        tail = &fb->next;
        nfree++;
    }
    *tail = NULL;
    c->free = keep;
    c->nfree = nfree;
    uint32_t k = 0;
    for (uint32_t i = 0; i < c->nslabs; i++) {
        weft__slab s = c->slabs[i];
        if (s.nfree == s.nblocks)
            weft__free(p->loop, s.base);
        else
            c->slabs[k++] = s;
    }
    c->nslabs = k;
}

/* More than two slabs, and more free blocks than used ones plus two of
 * the largest slabs' worth. */
static bool wants_trim(const weft__pool_class *c)
{
    return c->nslabs > 2 && c->nfree > c->used + c->slack;
}

static void trim_all(void *arg)
{
    weft__pool *p = arg;
    p->trim_armed = false;
    for (int a = 0; a < WEFT__POOL_ARENAS; a++)
        for (size_t k = 0; k < WEFT__POOL_CLASSES; k++)
            if (wants_trim(&p->cls[a][k]))
                trim(p, &p->cls[a][k], (k + 1) * 16);
}

static void arm_trim(weft__pool *p)
{
    if (p->trim_armed || p->walking || weft__closed(p->loop))
        return;
    if (!p->timer_ready) {
        if (weft_timer_init(&p->trim, p->loop, trim_all, p) < 0)
            return; /* no memory for the timer: memory stays pooled */
        p->timer_ready = true;
    }
    p->trim_armed = weft_timer_start_ns(&p->trim, TRIM_DELAY_NS, 0) == 0;
}

void weft__pool_close(weft__pool *p)
{
    if (p->timer_ready)
        weft_timer_close(&p->trim);
    p->timer_ready = p->trim_armed = false;
}

/* Called after the inline put pushed b when its class may want a trim, or
 * for a big block. */
void weft__pool_put_slow(weft__pool *p, int arena, void *b, size_t size)
{
    if (!weft__pool_pooled(size)) {
        big_put(p, b);
        return;
    }
    weft__pool_class *c = weft__pool_class_of(p, arena, size);
    if (!wants_trim(c))
        return;
    if (c->used == 0 && !p->walking)
        trim(p, c, 0); /* everything is free: no block size needed */
    else
        arm_trim(p);
}

void weft__pool_walk(weft__pool *p, int arena, void (*fn)(void *block, void *ctx), void *ctx)
{
    bool was = p->walking;
    p->walking = true;
    for (size_t k = 0; k < WEFT__POOL_CLASSES; k++) {
        weft__pool_class *c = &p->cls[arena][k];
        size_t bsize = (k + 1) * 16;
        /* fn may free blocks, which then stay in their slab (no trim
         * while walking); it must not allocate from this arena */
        for (uint32_t i = 0; i < c->nslabs; i++) {
            const weft__slab *s = &c->slabs[i];
            for (uint32_t j = 0; j < s->nblocks; j++) {
                void *blk = s->base + j * bsize;
                if (*(void **)blk)
                    fn(blk, ctx);
            }
        }
    }
    for (weft_link *l = p->big[arena].next, *next; l != &p->big[arena]; l = next) {
        next = l->next;
        void *blk = (char *)l + BIG_HEADER;
        if (*(void **)blk)
            fn(blk, ctx);
    }
    p->walking = was;
}

void weft__pool_free_all(weft__pool *p)
{
    weft__pool_close(p);
    for (int a = 0; a < WEFT__POOL_ARENAS; a++)
        while (!weft__list_empty(&p->big[a])) {
            weft_link *l = p->big[a].next;
            weft__list_unlink(l);
            weft__free(p->loop, l);
        }
    for (int a = 0; a < WEFT__POOL_ARENAS; a++)
        for (size_t k = 0; k < WEFT__POOL_CLASSES; k++) {
            weft__pool_class *c = &p->cls[a][k];
            for (uint32_t i = 0; i < c->nslabs; i++)
                weft__free(p->loop, c->slabs[i].base);
            weft__free(p->loop, c->slabs);
            memset(c, 0, sizeof *c);
        }
}
