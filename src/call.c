/* call.c - the ready queue's two front doors: caller-owned handles, and
 * convenience calls (call_soon / call_later / call_at) with their tokens.
 *
 * A convenience call takes a 104-byte node from the loop's free list (a
 * LIFO, so a call_soon chain reuses one warm node) and gives it back just
 * before its callback runs; call_pool.c makes and frees the nodes.  Nodes
 * live until the loop closes, so a token {node, generation} is always safe
 * to look at: the generation moves on at every release, and the node
 * remembers the generation of its last cancelled use.
 *
 * Costs: call_soon O(1): on the warm path about 12 instructions inline in
 * the caller (weft/loop.h), or 20 and no stack frame in the function;
 * call_at / call_later O(log timers); cancel O(1) (queued) or O(log
 * timers) (armed).
 */
#include "loop_impl.h"

/* The documented size on LP64. */
_Static_assert(sizeof(void *) != 8 || sizeof(weft__call) == 104, "weft__call grew");

/* weft__loop_head is the head of struct weft_loop. */
#define SAME(f) (offsetof(struct weft_loop, f) == offsetof(weft__loop_head, f))
_Static_assert(SAME(ready) && SAME(batch) && SAME(queues) && SAME(pool) && SAME(state) &&
                   SAME(flags) && SAME(run) && SAME(task_now) && SAME(ffree),
               "weft__loop_head is not the head of struct weft_loop");
#undef SAME

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

/* ---- the node pool's warm side (the cold side: call_pool.c) ---------------------------- */

static inline weft__call *call_of_link(weft_link *l)
{
    return (weft__call *)(void *)l; /* node.link is the first member */
}

/* A node for a new call (the free list first); NULL: -ENOMEM. */
static inline weft__call *call_get(weft_loop *loop)
{
    weft__call *c = loop->pool;
    if (!c)
        return weft__call_new(loop);
    loop->pool = call_of_link(c->node.link.next);
    c->node.link.next = NULL;
    return c;
}

/* Run a call_soon: record what runs, let the node go (so that a chain
 * reuses it), then call. */
void weft__call_soon_run(weft_node *n)
{
    weft__call *c = (weft__call *)(void *)n;
    weft_loop *loop = c->t.loop;
    weft_cb *fn = c->t.fn;
    void *arg = c->t.arg;
    weft__running_cb(loop, fn, arg);
    weft__call_release(loop, c);
    fn(arg);
}

void weft__call_fired(weft_loop *loop, weft_timer *t)
{
    weft__call_release(loop, WEFT_CONTAINER_OF(t, weft__call, t));
}

/* ---- the callbacks-only iteration (iterate's, when it applies) ---------------------- */

/* Each iteration is exactly iterate()'s for a loop with nothing but
 * callbacks; only the return to run() in between is gone.  A batch of one
 * call_soon node (a chain) runs here, with no lag check of its own right
 * after it: the watchdog raises WEFT__ATTN_LAG with its flag, and the attn
 * test that follows every iteration leaves this loop for the check below,
 * as does every other way out (a stop, a hook, a first watcher raise
 * WEFT__ATTN_STATE); the record of what ran names the callback.  Other
 * batches run in loop.c, each callback checked as usual. */
void weft__run_callbacks(weft_loop *loop)
{
    const bool virt = loop->virtual_clock; /* fixed at creation */
    for (;;) {
        loop->now_valid = virt;
        weft_link *r = loop->ready, *l = r->next;
        weft__call *c = (weft__call *)(void *)l;
        if (l->next == r && c->node.run == weft__call_soon_run) {
            WEFT_ASSERT(l->prev == r && r->prev == l);
            r->next = r;
            /* (the tick between r's two stores: they stay plain stores) */
            weft__cb_tick(loop);
            r->prev = r;
            /* l->prev = NULL only where it is checked: a free node's prev
             * is never read otherwise (linked means next != NULL);
             * l->next: the release below sets it (the free list) */
            if (WEFT_ASSERTIONS)
                l->prev = NULL;
            weft_cb *fn = c->t.fn;
            void *arg = c->t.arg;
            weft__running_cb(loop, fn, arg);
            weft__call_release(loop, c);
            fn(arg);
        } else if (l->next != r) {
            weft__run_ready_checked(loop); /* several nodes */
        } else {
            /* one other node (a task step, a watcher): weft__run_head,
             * whose lag check (the WEFT__ATTN_LAG bit first) is the attn
             * test of the loop's condition, made once */
            weft_node *n = (weft_node *)(void *)l;
            void (*run)(weft_node *) = n->run;
            unsigned a;
            weft__run_head_unchecked(loop, r);
            loop->stats.iterations++;
            a = atomic_load_explicit(&loop->attn, memory_order_relaxed);
            if (a) {
                if ((a & WEFT__ATTN_LAG) && weft__lag_flagged(loop))
                    weft__lag_report(loop, n, run);
                break;
            }
            if (loop->heap.n || weft__list_empty(loop->ready))
                break;
            continue;
        }
        loop->stats.iterations++;
        /* weft__only_callbacks: a stop, a hook or a first watcher since
         * the entry raised WEFT__ATTN_STATE, so the attn test covers them */
        if (loop->heap.n || atomic_load_explicit(&loop->attn, memory_order_relaxed) ||
            weft__list_empty(loop->ready))
            break;
    }
    if (atomic_load_explicit(&loop->attn, memory_order_relaxed) & WEFT__ATTN_LAG)
        atomic_fetch_and_explicit(&loop->attn, ~(unsigned)WEFT__ATTN_LAG, memory_order_acquire);
    /* the last callback's check: due after a chain's, done already after
     * the other paths' (weft__lag_report reports a tick once); a task
     * step's record may name an object that is gone, and is skipped */
    if (loop->run.fn && loop->run.fn != weft__run_obj)
        weft__cb_done(loop, NULL, NULL);
}

/* ---- convenience calls -------------------------------------------------------------- */

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

/* (parenthesised: weft/loop.h defines weft_call_soon as a macro too) */
int(weft_call_soon)(weft_loop *loop, weft_cb *fn, void *arg, weft_call *out)
{
    weft__call *c;
    /* the warm path: no debug checks (tested first: another thread may
     * read nothing else) and a free node; closed loops (whose pool is
     * empty) and everything else take the cold path */
    if (!loop || !fn || (loop->flags & WEFT_LOOP_DEBUG) || !(c = loop->pool))
        return weft__call_soon_cold(loop, fn, arg, out);
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
    int err = call_check(loop, fn, "weft_call_later");
    if (err)
        return err;
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
    c->cancelled = c->gen + 1;
    weft__call_release(loop, c);
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
    return c->t.loop == loop && c->cancelled == tok.gen + 1;
}
