/* inbox.c - the entry points from other threads: weft_call_soon_threadsafe
 * and weft_async.
 *
 * Both put a ready-queue node on the inbox, a list guarded by a mutex.  The
 * sender that makes the inbox non-empty also raises WEFT__ATTN_INBOX and
 * wakes the backend (one write to an eventfd or a pipe), so a loop blocked
 * in an infinite wait returns.  The loop splices the whole inbox onto its
 * ready queue at the start of the next iteration: O(1) under the lock,
 * whatever was sent.
 *
 * Costs per send: one lock, one list push, and one write only when the
 * inbox was empty.  weft_call_soon_threadsafe also allocates a 48-byte
 * node (freed when it runs); weft_async allocates nothing.
 */
#include "backend.h"

/* ---- the inbox --------------------------------------------------------------------- */

/* Queue n (inbox_mu held): the first node raises the flag and wakes the
 * loop. */
static void push_locked(weft_loop *loop, weft_node *n)
{
    bool first = weft__list_empty(&loop->inbox);
    weft__list_push(&loop->inbox, &n->link);
    if (first) {
        atomic_fetch_or_explicit(&loop->attn, WEFT__ATTN_INBOX, memory_order_release);
        loop->be->wakeup(loop);
    }
}

/* Queue n from any thread; WEFT_ECLOSED once the loop closed. */
static int inbox_push(weft_loop *loop, weft_node *n)
{
    pthread_mutex_lock(&loop->inbox_mu);
    int err = loop->inbox_closed ? WEFT_ECLOSED : 0;
    if (!err)
        push_locked(loop, n);
    pthread_mutex_unlock(&loop->inbox_mu);
    return err;
}

void weft__inbox_drain(weft_loop *loop)
{
    pthread_mutex_lock(&loop->inbox_mu);
    weft__ready_splice(loop, &loop->inbox);
    pthread_mutex_unlock(&loop->inbox_mu);
}

void weft__inbox_close(weft_loop *loop)
{
    pthread_mutex_lock(&loop->inbox_mu);
    loop->inbox_closed = true;
    weft__ready_splice(loop, &loop->inbox); /* close drops it with the rest */
    pthread_mutex_unlock(&loop->inbox_mu);
}

/* ---- weft_call_soon_threadsafe -------------------------------------------------------- */

typedef struct tcall {
    weft_node node;
    weft_loop *loop;
    weft_cb *fn;
    void *arg;
} tcall;

static void tcall_run(weft_node *n)
{
    tcall *c = (tcall *)(void *)n;
    weft_loop *loop = c->loop;
    weft_cb *fn = c->fn;
    void *arg = c->arg;
    weft__running_cb(loop, fn, arg);
    weft__free(loop, c);
    fn(arg);
}

int weft_call_soon_threadsafe(weft_loop *loop, weft_cb *fn, void *arg)
{
    if (!loop || !fn)
        return -EINVAL;
    tcall *c = weft__alloc(loop, sizeof *c);
    if (!c)
        return -ENOMEM;
    *c = (tcall){{{NULL, NULL}, tcall_run}, loop, fn, arg};
    int err = inbox_push(loop, &c->node);
    if (err)
        weft__free(loop, c);
    return err;
}

bool weft__inbox_drop(weft_loop *loop, weft_node *n)
{
    if (n->run != tcall_run)
        return false;
    weft__free(loop, n);
    return true;
}

/* ---- weft_async ---------------------------------------------------------------------------- */

enum { ASYNC_LIVE = 1 };

static void async_run(weft_node *n)
{
    weft_async *a = (weft_async *)(void *)n;
    weft_loop *loop = a->loop;
    /* from here on a send queues the next call: this one has started */
    pthread_mutex_lock(&loop->inbox_mu);
    a->pending = 0;
    pthread_mutex_unlock(&loop->inbox_mu);
    weft__running_cb(loop, a->fn, a->arg);
    a->fn(a->arg);
}

int weft_async_init(weft_async *a, weft_loop *loop, weft_cb *fn, void *arg)
{
    if (!a || !loop || !fn)
        return -EINVAL;
    if (weft__wrong_thread(loop, "weft_async_init"))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    *a = (weft_async){{{NULL, NULL}, async_run}, loop, fn, arg, 0, ASYNC_LIVE};
    return 0;
}

int weft_async_send(weft_async *a)
{
    if (!a || !a->loop)
        return -EINVAL;
    weft_loop *loop = a->loop;
    pthread_mutex_lock(&loop->inbox_mu);
    int err = 0;
    if (loop->inbox_closed) {
        err = WEFT_ECLOSED;
    } else if (!a->pending) { /* else coalesced with the send before */
        a->pending = 1;
        push_locked(loop, &a->node);
    }
    pthread_mutex_unlock(&loop->inbox_mu);
    return err;
}

void weft_async_close(weft_async *a)
{
    if (!a || !a->loop)
        return;
    weft_loop *loop = a->loop;
    if (weft__wrong_thread(loop, "weft_async_close"))
        return;
    pthread_mutex_lock(&loop->inbox_mu);
    if (weft__node_linked(&a->node))
        weft__node_unlink(&a->node); /* from the inbox or the ready queue */
    a->pending = 0;
    pthread_mutex_unlock(&loop->inbox_mu);
    a->loop = NULL;
    a->flags = 0;
}
