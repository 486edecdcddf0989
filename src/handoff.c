/* handoff.c - waiters with hand-off semantics (see handoff.h). */
#include <stdio.h>

#include "handoff.h"
#include "task_internal.h"

static const weft__handoff_kind *kind_of(const weft__handoff *h)
{
    return (const weft__handoff_kind *)(const void *)h->fut.ops;
}

/* Cancelled while queued: leave the primitive, then cancel plainly. */
int weft__handoff_cancel(weft_future *f)
{
    weft__handoff *h = WEFT_CONTAINER_OF(f, weft__handoff, fut);
    if (h->q.next) {
        const weft__handoff_kind *k = kind_of(h);
        if (k->leave)
            k->leave(h);
        else
            weft__list_unlink(&h->q);
    }
    return weft__future_cancel_now(f);
}

bool weft__handoff_rollback(weft_future *f)
{
    weft__handoff *h = WEFT_CONTAINER_OF(f, weft__handoff, fut);
    if (f->state != WEFT__DONE || (f->flags & WEFT__F_OBSERVED))
        return false;
    const weft__handoff_kind *k = kind_of(h);
    if (k->give_back && !k->give_back(h))
        return false; /* final: the value stands */
    f->state = WEFT__CANCELLED;
    return true;
}

/* Its frame goes: leave the queue, or give back what it was handed. */
void weft__handoff_abandon(weft_future *f)
{
    if (f->state == WEFT__PENDING)
        weft__handoff_cancel(f);
    else
        weft__handoff_rollback(f);
}

void weft__handoff_describe(const weft_future *f, weft_report *r, char *buf, size_t n)
{
    (void)r;
    const weft__handoff *h = WEFT_CONTAINER_OF(f, weft__handoff, fut);
    snprintf(buf, n, "%s %p (of %p)", f->ops->kind, (const void *)f, h->prim);
}

weft__handoff *weft__handoff_begin(weft_waiter *w, weft_loop *loop, void *prim,
                                   const weft__handoff_kind *kind)
{
    weft_loop *running = weft_running_loop();
    if (!w || !loop || (running && running != loop)) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft__handoff *h = (weft__handoff *)(void *)w;
    if (h->q.next) {
        weft__set_last_error(WEFT_ESTATE); /* still queued: serves another operation */
        return NULL;
    }
    weft__future_init(&h->fut, &kind->ops, loop);
    h->q.next = h->q.prev = NULL;
    h->prim = prim;
    h->item = (weft_value){0};
    h->aux = 0;
    return h;
}

size_t weft__handoff_count(const weft_link *queue)
{
    size_t n = 0;
    for (const weft_link *l = queue->next; l != queue; l = l->next)
        n++;
    return n;
}

/* ---- pins -------------------------------------------------------------------------------- */

uintptr_t weft__handoff_owner(weft_loop *loop)
{
    return (uintptr_t)weft_current_task(loop);
}

uintptr_t weft__handoff_pin(uintptr_t owner)
{
    weft_task *t = (weft_task *)owner;
    if (!t || weft__task_in_storage(t))
        return 0;
    weft_future_ref(t);
    return owner;
}

bool weft__handoff_pin_alive(uintptr_t pin)
{
    return pin && !weft_future_done((weft_task *)pin);
}

void weft__handoff_unpin(uintptr_t pin)
{
    if (pin)
        weft_future_unref((weft_task *)pin);
}
