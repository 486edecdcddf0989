/* pool.h - per-loop pools of small blocks, for the layers above the loop.
 *
 * Blocks of up to WEFT__POOL_MAX bytes come from slabs of 4 to 64 KiB
 * (growing), one set per size class (16-byte steps), recycled LIFO: steady
 * state costs a pointer pop and push, no allocator call and no per-block
 * header, so a 128-byte task costs 128 bytes.  Slabs come from the loop's allocator
 * hook; a class whose free blocks far outnumber its used ones gives its
 * empty slabs back (amortised O(1) per free).  Larger blocks go to the
 * allocator with a 16-byte link, so that the pool still frees them if
 * their owner never does (a loop destroyed with work pending).
 *
 * Two arenas: WEFT__POOL_ANY for anything, WEFT__POOL_TASKS for tasks,
 * whose blocks can be walked (weft__pool_walk) so that the loop can find
 * every task at close without a list link in each task.  A walked block
 * must keep a non-NULL pointer in its first word while in use, and NULL
 * when its owner gives it back.
 *
 * With WEFT__POISON (Debug and sanitizer builds) every block goes to the
 * allocator on its own (with the big-block link) so that AddressSanitizer
 * and valgrind see a use after free.
 */
#ifndef WEFT_POOL_H
#define WEFT_POOL_H

#include "loop_internal.h"

#define WEFT__POOL_MAX 512

enum weft__pool_arena { WEFT__POOL_ANY, WEFT__POOL_TASKS, WEFT__POOL_ARENAS };

#define WEFT__POOL_CLASSES (WEFT__POOL_MAX / 16)

/* One slab of a class (private): where its blocks are. */
typedef struct weft__slab {
    char *base;       /* the allocation: blocks only */
    uint32_t nblocks; /* how many */
    uint32_t nfree;   /* scratch for trim */
} weft__slab;

/* One size class of one arena (private). */
typedef struct weft__pool_class {
    void *free;           /* free blocks, linked through their second word */
    weft__slab *slabs;    /* records, sorted by base address */
    uint32_t nslabs, cap; /* slabs used / records allocated */
    uint32_t next_bytes;  /* size of the next slab (0: the smallest) */
    size_t used, nfree;   /* blocks in use / on the free list */
    size_t slack;         /* free blocks beyond used that start a trim */
} weft__pool_class;

typedef struct weft__pool {
    weft_loop *loop;
    weft_link big[WEFT__POOL_ARENAS]; /* blocks larger than WEFT__POOL_MAX
                                          (and all of them under POISON) */
    bool walking;      /* no trim while a walk runs */
    bool trim_armed;   /* the trim timer is armed */
    bool timer_ready;  /* the trim timer is initialised */
    weft_timer trim;   /* runs trims, at most once a second */
    weft__pool_class cls[WEFT__POOL_ARENAS][WEFT__POOL_CLASSES];
} weft__pool;

/* Make p an empty pool for loop (no allocation). */
void weft__pool_init(weft__pool *p, weft_loop *loop);

/* The loop closes: no more trims (closes the trim timer). */
void weft__pool_close(weft__pool *p);

/* Give every slab and big block back.  Blocks still in use are lost to
 * their owners: call this only once they are all freed or abandoned. */
void weft__pool_free_all(weft__pool *p);

/* A block of size bytes (16-byte aligned), or NULL.  size > WEFT__POOL_MAX
 * is allocated directly (and must be freed with the same size).  Inline:
 * a free block of the class is a pop; everything else is the cold half. */
static inline void *weft__pool_get(weft__pool *p, int arena, size_t size);

/* Return a block got with the same arena and size.  Inline: a push, and
 * the cold half when the class may want a trim. */
static inline void weft__pool_put(weft__pool *p, int arena, void *b, size_t size);

/* The cold halves (pool.c). */
void *weft__pool_get_slow(weft__pool *p, int arena, size_t size);
void weft__pool_put_slow(weft__pool *p, int arena, void *b, size_t size);

/* Call fn(block, ctx) for every block in use in arena (first word not
 * NULL), slab by slab, then the big ones.  fn may free the block it is
 * given, and no other block of the arena. */
void weft__pool_walk(weft__pool *p, int arena, void (*fn)(void *block, void *ctx), void *ctx);

/* ---- the inline halves ----------------------------------------------------------------- */

/* A free block: its first word is NULL (walks skip it), its second links
 * the class's free list. */
typedef struct weft__free_block {
    void *zero;
    struct weft__free_block *next;
} weft__free_block;

/* Sizes in 1 .. WEFT__POOL_MAX come from classes, except in poison builds. */
static inline bool weft__pool_pooled(size_t size)
{
    return !WEFT__POISON && size - 1 < WEFT__POOL_MAX;
}

static inline weft__pool_class *weft__pool_class_of(weft__pool *p, int arena, size_t size)
{
    return &p->cls[arena][(size + 15) / 16 - 1];
}

static inline void *weft__pool_get(weft__pool *p, int arena, size_t size)
{
    if (weft__pool_pooled(size)) {
        weft__pool_class *c = weft__pool_class_of(p, arena, size);
        weft__free_block *fb = c->free;
        if (fb) {
            c->free = fb->next;
            c->nfree--;
            c->used++;
            return fb;
        }
    }
    return weft__pool_get_slow(p, arena, size);
}

static inline void weft__pool_put(weft__pool *p, int arena, void *b, size_t size)
{
    if (weft__pool_pooled(size)) {
        weft__pool_class *c = weft__pool_class_of(p, arena, size);
        weft__free_block *fb = b;
        fb->zero = NULL;
        fb->next = c->free;
        c->free = fb;
        c->nfree++;
        c->used--;
        if (!(c->nslabs > 2 && c->nfree > c->used + c->slack))
            return; /* no trim wanted (the common case) */
    }
    weft__pool_put_slow(p, arena, b, size);
}

#endif
