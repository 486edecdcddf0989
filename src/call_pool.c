/* call_pool.c - the cold side of the convenience-call node pool: creating
 * nodes, the quarantine of sanitizer and Debug builds, freeing them all at
 * close, and weft_call_soon's slow path.
 *
 * It is a translation unit of its own so that the warm paths in call.c
 * (a pop and a push on the free list) compile to a few instructions with
 * no stack frame: a slow path the compiler could inline would make them
 * save registers on every call.
 *
 * Nodes are freed only when the loop closes, which keeps every token safe
 * to look at.  Sanitizer and Debug builds (WEFT__POISON) do not recycle a
 * node at once: a released node waits in a FIFO quarantine of QUARANTINE
 * nodes with its run function, callback and argument poisoned (ASan,
 * valgrind), so that a stale use is reported instead of silently running
 * someone else's call; generation and outcome stay readable for tokens.
 */
#include "loop_impl.h"

#if WEFT__POISON
#if WEFT__ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#elif defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define POISON(p, n) (void)VALGRIND_MAKE_MEM_NOACCESS(p, n)
#define UNPOISON(p, n) (void)VALGRIND_MAKE_MEM_UNDEFINED(p, n)
#endif
#endif
#endif
#ifndef POISON
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

enum { QUARANTINE = 256 };

/* The poisoned part of a released node: node.run, t.fn, t.arg (8-byte
 * aligned, as ASan wants). */
#define POISON_AT(c) ((void *)&(c)->node.run)
#define POISON_LEN (offsetof(weft__call, t.loop) - offsetof(weft__call, node.run))

static inline weft__call *call_of_link(weft_link *l)
{
    return (weft__call *)(void *)l; /* node.link is the first member */
}

weft__call *weft__call_new(weft_loop *loop)
{
    weft__call *c;
    if (WEFT__POISON && loop->nquarantine >= QUARANTINE) {
        c = loop->quarantine;
        loop->quarantine = call_of_link(c->node.link.next);
        loop->nquarantine--;
        UNPOISON(POISON_AT(c), POISON_LEN);
        c->node.link.next = NULL;
        c->node.run = weft__call_soon_run;
        return c;
    }
    c = weft__alloc(loop, sizeof *c);
    if (!c)
        return NULL;
    if (weft__heap_reserve(loop) < 0) { /* for call_later: arming cannot fail */
        weft__free(loop, c);
        return NULL;
    }
    *c = (weft__call){{{NULL, NULL}, weft__call_soon_run},
                      {.loop = loop, .index = WEFT__T_IDLE, .state = WEFT__T_CALL},
                      0,
                      0,
                      loop->calls};
    loop->calls = c;
    return c;
}

void weft__call_retire(weft_loop *loop, weft__call *c)
{
    POISON(POISON_AT(c), POISON_LEN);
    c->node.link.next = NULL;
    if (loop->quarantine)
        loop->quarantine_tail->node.link.next = &c->node.link;
    else
        loop->quarantine = c;
    loop->quarantine_tail = c;
    loop->nquarantine++;
}

int weft__call_soon_cold(weft_loop *loop, weft_cb *fn, void *arg, weft_call *out)
{
    if (!loop || !fn)
        return -EINVAL;
    if (weft__wrong_thread(loop, "weft_call_soon"))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    weft__call *c = loop->pool;
    if (c) {
        loop->pool = call_of_link(c->node.link.next);
        c->node.link.next = NULL;
    } else if (!(c = weft__call_new(loop))) {
        return -ENOMEM;
    }
    c->t.fn = fn;
    c->t.arg = arg;
    weft__ready_push(loop, &c->node);
    if (out)
        *out = (weft_call){c, c->gen};
    return 0;
}

void weft__calls_close(weft_loop *loop)
{
    for (weft__call *c = loop->calls, *next; c; c = next) {
        next = c->all;
        UNPOISON(POISON_AT(c), POISON_LEN);
        weft__free(loop, c); /* unlinked and disarmed by close already */
    }
    loop->calls = loop->pool = NULL;
    loop->quarantine = loop->quarantine_tail = NULL;
    loop->nquarantine = 0;
}
