/* relay.c - wait_for and shield: a future that relays another's outcome.
 *
 * A relay is one pooled block: the outer future (what the caller awaits),
 * a node in the inner future's waiter list and, for wait_for, a timer.
 * Freeing the outer unlinks the node, so an abandoned wait_for or shield
 * leaves nothing behind in the inner future.
 */
#include "future_internal.h"
#include "weft/combinators.h"

typedef struct relay {
    weft__dfuture outer; /* a pointer value changes owner through it */
    weft_node node;      /* in inner's waiters */
    weft_future *inner;  /* a reference */
    weft_timer timer;
    weft__hold hold; /* while outer is pending */
    bool timer_on, expired, shield;
} relay;

static relay *relay_of(weft_future *f)
{
    return WEFT_CONTAINER_OF(f, relay, outer.f);
}

static void disarm(relay *r)
{
    if (r->timer_on) {
        weft_timer_close(&r->timer);
        r->timer_on = false;
    }
}

static void unlink_node(relay *r)
{
    if (weft__node_linked(&r->node))
        weft__node_unlink(&r->node);
}

/* inner finished: relay its outcome (a timeout turns our cancellation of
 * inner into -ETIMEDOUT) */
static void relay_done(weft_node *n)
{
    relay *r = WEFT_CONTAINER_OF(n, relay, node);
    weft_future *in = r->inner;
    disarm(r);
    if (r->outer.f.state != WEFT__PENDING)
        return;
    if (r->expired && in->state == WEFT__CANCELLED) {
        in->flags |= WEFT__F_OBSERVED;
        weft__future_fail(&r->outer.f, -ETIMEDOUT);
    } else {
        weft__future_copy_outcome(&r->outer.f, in);
    }
    weft__future_unhold(&r->hold); /* last: it may free r */
}

static int relay_cancel_now(weft_future *f);

/* The outer was cancelled (by its awaiter or its holder, who keeps it). */
static int relay_cancel(weft_future *f)
{
    int err = relay_cancel_now(f);
    weft__future_unhold(&relay_of(f)->hold);
    return err;
}

static int relay_cancel_now(weft_future *f)
{
    relay *r = relay_of(f);
    disarm(r);
    if (r->shield) {
        unlink_node(r); /* inner runs on, unobserved by us */
        return weft__future_cancel_now(f);
    }
    weft_future *in = r->inner;
    if (in->state == WEFT__PENDING) {
        weft__future_cancel(in);
        if (r->outer.f.state != WEFT__PENDING)
            return 0; /* inner's cancellation was relayed at once */
    } else if (in->ops->rollback && !in->ops->rollback(in) && in->state == WEFT__DONE) {
        /* a hand-off that cannot be given back (a put whose item was got
         * already): report it done rather than have the caller believe it
         * failed; the cancellation lands at its next suspension */
        unlink_node(r);
        return weft__future_copy_outcome(f, in);
    }
    if (in->state != WEFT__PENDING) {
        unlink_node(r);
        in->flags |= WEFT__F_OBSERVED;
    } /* else a task unwinding: it finishes on its own */
    return weft__future_cancel_now(f);
}

static void relay_timeout(void *arg)
{
    relay *r = arg;
    r->expired = true;
    if (r->inner->state != WEFT__PENDING)
        return; /* completed in this same iteration: its value wins */
    weft__future_cancel(r->inner);
    if (r->inner->state != WEFT__PENDING) {
        unlink_node(r); /* queued by the cancel: finish now */
        relay_done(&r->node);
    }
}

static void relay_release(weft_future *f)
{
    relay *r = relay_of(f);
    disarm(r);
    weft__future_unhold(&r->hold);
    unlink_node(r);
    weft_future_unref(r->inner);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, r, sizeof *r);
}

static const weft__future_ops wait_for_ops = {
    .kind = "wait_for",
    .flags = WEFT__OPS_DTOR,
    .cancel = relay_cancel,
    .release = relay_release,
};

static const weft__future_ops shield_ops = {
    .kind = "shield",
    .flags = WEFT__OPS_DTOR,
    .cancel = relay_cancel,
    .release = relay_release,
};

/* f was handed to us and we cannot use it: a waiter is withdrawn. */
static void refuse(weft_future *f, int err)
{
    if (f->ops->abandon && (f->ops->flags & WEFT__OPS_IN_FRAME))
        f->ops->abandon(f);
    weft_future_unref(f);
    weft__set_last_error(err);
}

static weft_future *relay_new(weft_future *f, int64_t timeout_ns, bool shield)
{
    if (!f)
        return NULL; /* its constructor failed: last error says why */
    weft_loop *loop = f->loop;
    if (weft__closed(loop)) {
        refuse(f, WEFT_ECLOSED);
        return NULL;
    }
    if (shield && (f->ops->flags & WEFT__OPS_IN_FRAME)) {
        refuse(f, -EINVAL); /* a frame's waiter cannot outlive its frame */
        return NULL;
    }
    if (f->state != WEFT__PENDING)
        return f; /* already done: its own outcome */
    weft__pool *pool = weft__pool_of(loop);
    relay *r = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *r) : NULL;
    if (!r) {
        refuse(f, -ENOMEM);
        return NULL;
    }
    r->timer_on = false;
    if (timeout_ns >= 0) {
        int err = weft_timer_init(&r->timer, loop, relay_timeout, r);
        if (err) {
            weft__pool_put(pool, WEFT__POOL_ANY, r, sizeof *r);
            refuse(f, err);
            return NULL;
        }
        r->timer_on = true;
        weft_timer_start_ns(&r->timer, timeout_ns, 0);
    }
    weft__future_init(&r->outer.f, shield ? &shield_ops : &wait_for_ops, loop);
    r->outer.dtor = NULL;
    r->node = (weft_node){{NULL, NULL}, relay_done};
    r->inner = f;
    r->expired = false;
    r->shield = shield;
    weft__future_wait(f, &r->node);
    weft__future_hold(&r->outer.f, &r->hold);
    return &r->outer.f;
}

weft_future *weft_wait_for(weft_future *f, double timeout)
{
    int64_t ns;
    if (f && weft__sec_to_ns(timeout, &ns)) {
        refuse(f, -EINVAL);
        return NULL;
    }
    if (f && (timeout < 0 || ns == INT64_MAX))
        ns = -1; /* no timeout */
    return relay_new(f, f ? ns : -1, false);
}

weft_future *weft_shield(weft_future *f)
{
    return relay_new(f, -1, true);
}
