/* call.c - the ready queue's two front doors: caller-owned handles, and
 * convenience calls (call_soon / call_later / call_at) with their tokens.
 *
 * A convenience call takes an 88-byte node from the loop's free list (a
 * LIFO, so a call_soon chain reuses one warm node) and gives it back just
 * before its callback runs.  Nodes are freed only when the loop closes,
 * which is what makes a token {node, generation} safe to look at forever:
 * the generation moves on at every release, and the node remembers how its
 * last use ended (ran or cancelled).
 *
 * Sanitizer and Debug builds (WEFT__POISON) do not recycle a node at once:
 * a released node waits in a FIFO quarantine of QUARANTINE nodes with its
 * run function, callback and argument poisoned (ASan, valgrind), so that a
 * stale use is reported instead of silently running someone else's call.
 * Tokens stay valid: the generation and outcome are outside the poison.
 *
 * Costs: call_soon O(1) (about 20 instructions on the warm path), call_at /
 * call_later O(log timers), cancel O(1) or O(log timers).
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
#ifndef POISON
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif
enum { QUARANTINE = 256 };
/* The poisoned part of a released node: node.run, t.fn, t.arg (8-byte
 * aligned, as ASan wants). */
#define POISON_AT(c) ((void *)&(c)->node.run)
#define POISON_LEN (offsetof(weft__call, t.loop) - offsetof(weft__call, node.run))
#endif

/* ---- handles ------------------------------------------------------------------------- */

void weft__handle_run(weft_node *n)
{
    weft_handle *h = (weft_handle *)(void *)n;
    weft__running_cb(weft_running_loop(), h->fn, h->arg);
    h->fn(h->arg);
}

void weft_handle_init(weft_handle *h, weft_cb *fn, void *arg)
{
    if (!h)
        return;
    h->node = (weft_node){{NULL, NULL}, weft__handle_run};
    h->fn = fn;
    h->arg = arg;
}

int weft_handle_schedule(weft_loop *loop, weft_handle *h)
{
    if (!loop || !h || !h->fn)
        return -EINVAL;
    if (weft__wrong_thread(loop, "weft_handle_schedule"))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    if (!weft__node_linked(&h->node)) {
        h->node.run = weft__handle_run;
        weft__ready_push(loop, &h->node);
    }
    return 0;
}

int weft_handle_cancel(weft_handle *h)
{
    if (!h)
        return -EINVAL;
    if (!weft__node_linked(&h->node))
        return -ENOENT;
    weft__node_unlink(&h->node);
    return 0;
}

bool weft_handle_pending(const weft_handle *h)
{
    return h && weft__node_linked(&h->node);
}

/* ---- the node pool ------------------------------------------------------------------------ */

static void call_soon_run(weft_node *n);

static inline weft__call *call_of_link(weft_link *l)
{
    return (weft__call *)(void *)l; /* node.link is the first member */
}

/* A fresh node: allocated, with a heap slot reserved for call_later. */
static weft__call *call_alloc(weft_loop *loop)
{
    weft__call *c = weft__alloc(loop, sizeof *c);
    if (!c)
        return NULL;
    if (weft__heap_reserve(loop) < 0) {
        weft__free(loop, c);
        return NULL;
    }
    *c = (weft__call){{{NULL, NULL}, call_soon_run}, {NULL, NULL, loop, 0, WEFT__T_IDLE, WEFT__T_CALL},
                      0, 0, loop->calls};
    loop->calls = c;
    return c;
}

/* A node for a new call (free list first); NULL: -ENOMEM. */
static weft__call *call_get(weft_loop *loop)
{
    weft__call *c;
#if WEFT__POISON
    if (loop->nquarantine < QUARANTINE)
        return call_alloc(loop);
    c = loop->quarantine;
    loop->quarantine = call_of_link(c->node.link.next);
    loop->nquarantine--;
    UNPOISON(POISON_AT(c), POISON_LEN);
    c->node.run = call_soon_run;
#else
    c = loop->pool;
    if (!c)
        return call_alloc(loop);
    loop->pool = call_of_link(c->node.link.next);
#endif
    c->node.link.next = NULL;
    return c;
}

/* The call of c ended (it runs now, or was cancelled): the token goes
 * stale, the outcome is remembered, the node is free again. */
static inline void call_release(weft_loop *loop, weft__call *c, bool cancelled)
{
    c->last = c->gen << 1 | (uint64_t)cancelled;
    c->gen++;
#if WEFT__POISON
    POISON(POISON_AT(c), POISON_LEN);
    c->node.link.next = NULL;
    if (loop->quarantine)
        loop->quarantine_tail->node.link.next = &c->node.link;
    else
        loop->quarantine = c;
    loop->quarantine_tail = c;
    loop->nquarantine++;
#else
    c->node.link.next = loop->pool ? &loop->pool->node.link : NULL;
    loop->pool = c;
#endif
}

/* Run a call_soon: record what runs, let the node go (so that a chain
 * reuses it), then call. */
static void call_soon_run(weft_node *n)
{
    weft__call *c = (weft__call *)(void *)n;
    weft_loop *loop = c->t.loop;
    weft_cb *fn = c->t.fn;
    void *arg = c->t.arg;
    weft__running_cb(loop, fn, arg);
    call_release(loop, c, false);
    fn(arg);
}

void weft__call_fired(weft_loop *loop, weft_timer *t)
{
    call_release(loop, WEFT_CONTAINER_OF(t, weft__call, t), false);
}

void weft__calls_close(weft_loop *loop)
{
    for (weft__call *c = loop->calls, *next; c; c = next) {
        next = c->all;
#if WEFT__POISON
        UNPOISON(POISON_AT(c), POISON_LEN);
#endif
        weft__free(loop, c); /* unlinked and disarmed by close already */
    }
    loop->calls = loop->pool = NULL;
    loop->quarantine = loop->quarantine_tail = NULL;
    loop->nquarantine = 0;
}

/* ---- convenience calls ------------------------------------------------------------------------ */

static int call_check(weft_loop *loop, weft_cb *fn, const char *what)
{
    if (!loop || !fn)
        return -EINVAL;
    if (weft__wrong_thread(loop, what))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    return 0;
}

static void call_token(const weft__call *c, weft_call *out)
{
    if (out)
        *out = (weft_call){(void *)c, c->gen};
}

static int call_soon_slow(weft_loop *loop, weft_cb *fn, void *arg, weft_call *out)
{
    int err = call_check(loop, fn, "weft_call_soon");
    if (err)
        return err;
    weft__call *c = call_get(loop);
    if (!c)
        return -ENOMEM;
    c->t.fn = fn;
    c->t.arg = arg;
    weft__ready_push(loop, &c->node);
    call_token(c, out);
    return 0;
}

int weft_call_soon(weft_loop *loop, weft_cb *fn, void *arg, weft_call *out)
{
    weft__call *c;
    /* the warm path: a free node; debug loops and closed loops (whose pool
     * is empty) take the slow path, with every check */
    if (!loop || !fn || (loop->flags & WEFT_LOOP_DEBUG) || !(c = loop->pool))
        return call_soon_slow(loop, fn, arg, out);
    loop->pool = call_of_link(c->node.link.next);
    c->node.link.next = NULL;
    c->t.fn = fn;
    c->t.arg = arg;
    weft__ready_push(loop, &c->node);
    call_token(c, out);
    return 0;
}

int weft_call_at_ns(weft_loop *loop, int64_t when_ns, weft_cb *fn, void *arg, weft_call *out)
{
    int err = call_check(loop, fn, "weft_call_at");
    if (err)
        return err;
    weft__call *c = call_get(loop);
    if (!c)
        return -ENOMEM;
    c->t.fn = fn;
    c->t.arg = arg;
    weft__heap_insert(loop, &c->t, when_ns);
    call_token(c, out);
    return 0;
}

int weft_call_later_ns(weft_loop *loop, int64_t delay_ns, weft_cb *fn, void *arg, weft_call *out)
{
    if (!loop)
        return -EINVAL;
    return weft_call_at_ns(loop, weft__add_sat(weft__now(loop), delay_ns), fn, arg, out);
}

int weft_call_later(weft_loop *loop, double delay, weft_cb *fn, void *arg, weft_call *out)
{
    int64_t ns;
    int err = weft__sec_to_ns(delay, &ns);
    return err ? err : weft_call_later_ns(loop, ns, fn, arg, out);
}

int weft_call_at(weft_loop *loop, double when, weft_cb *fn, void *arg, weft_call *out)
{
    int64_t ns;
    int err = weft__sec_to_ns(when, &ns);
    return err ? err : weft_call_at_ns(loop, ns, fn, arg, out);
}

/* The live node of tok in loop, or NULL: stale (ran, cancelled, reused),
 * or the loop is closed (its nodes are gone).  *foreign: the token is
 * another loop's. */
static weft__call *call_lookup(weft_loop *loop, weft_call tok, bool *foreign)
{
    weft__call *c = tok.p;
    *foreign = false;
    if (weft__closed(loop))
        return NULL;
    if (c->t.loop != loop) {
        *foreign = true;
        return NULL;
    }
    return c->gen == tok.gen ? c : NULL;
}

int weft_call_cancel(weft_loop *loop, weft_call tok)
{
    if (!loop || !tok.p)
        return -EINVAL;
    if (weft__wrong_thread(loop, "weft_call_cancel"))
        return -EPERM;
    bool foreign;
    weft__call *c = call_lookup(loop, tok, &foreign);
    if (!c)
        return foreign ? -EINVAL : -ENOENT;
    if (weft__node_linked(&c->node))
        weft__node_unlink(&c->node); /* a queued call_soon */
    else if (c->t.index != WEFT__T_IDLE)
        weft__timer_disarm(loop, &c->t); /* an armed or due call_later */
    else
        return -ENOENT;
    call_release(loop, c, true);
    return 0;
}

bool weft_call_pending(weft_loop *loop, weft_call tok)
{
    bool foreign;
    return loop && tok.p && call_lookup(loop, tok, &foreign) != NULL;
}

bool weft_call_cancelled(weft_loop *loop, weft_call tok)
{
    if (!loop || !tok.p || weft__closed(loop))
        return false;
    const weft__call *c = tok.p;
    return c->t.loop == loop && c->last == (tok.gen << 1 | 1u);
}
