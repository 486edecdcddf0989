/* future.c - futures: one-shot result cells with done callbacks.
 *
 * The waiter list is an intrusive list of ready-queue nodes: a parked task
 * links its own node, a done callback links a pooled node.  Completing a
 * future splices the whole list onto the ready queue in O(1), which is
 * asyncio's "schedule every callback with call_soon, in registration
 * order".  Standalone futures are recycled through a per-loop free list,
 * so await-heavy code allocates nothing in steady state.
 */
#include "future_internal.h"

static _Thread_local int last_error;

int weft_last_error(void)
{
    return last_error;
}

void weft__set_last_error(int err)
{
    last_error = err;
}

/* ---- allocation and references ------------------------------------------------- */

weft_future *weft_future_new(weft_loop *loop)
{
    if (!loop) {
        last_error = -EINVAL;
        return NULL;
    }
    weft_future *f = loop->future_pool;
    if (f) {
        loop->future_pool = (weft_future *)(void *)f->waiters.next;
    } else {
        f = weft__alloc(loop, sizeof *f);
        if (!f) {
            last_error = -ENOMEM;
            return NULL;
        }
        loop->on_close = weft__tasks_on_close;
    }
    *f = (weft_future){.loop = loop, .refs = 1};
    weft__list_init(&f->waiters);
    return f;
}

weft_future *weft_future_ref(weft_future *f)
{
    if (f)
        f->refs++;
    return f;
}

void weft__future_free(weft_future *f)
{
    weft_loop *loop = f->loop;
    if (f->err) {
        if (f->state == WEFT_DONE && !(f->flags & WEFT__F_OBSERVED))
            weft__report(loop, f->err, "%s '%s' failed and its error was never retrieved",
                         (f->flags & WEFT__F_TASK) ? "task" : "future",
                         (f->flags & WEFT__F_TASK) ? weft_task_name(f) : "-");
    } else if (f->state == WEFT_DONE && !(f->flags & WEFT__F_TASK) && f->u.done.dtor) {
        f->u.done.dtor(f->u.done.v.p); /* a pointer value nobody took */
    }
    if (f->flags & (WEFT__F_STORAGE | WEFT__F_TASK)) {
        if (f->flags & WEFT__F_TASK)
            weft__task_free(f);
        return; /* else a waiter in a frame: the frame owns the memory */
    }
    if (weft__closed(loop)) {
        weft__free(loop, f);
        return;
    }
    f->waiters.next = (weft_link *)(void *)loop->future_pool; /* recycle */
    loop->future_pool = f;
}

void weft_future_unref(weft_future *f)
{
    if (f && --f->refs == 0)
        weft__future_free(f);
}

/* ---- completion ---------------------------------------------------------------- */

static void hook_run(weft_node *n)
{
    (void)n; /* never queued: hooks are called or dropped by complete() */
}

/* Take f's cancel hooks out of its waiter list; call them if `call`. */
static void take_hooks(weft_future *f, bool call)
{
    /* Move them to a list of our own first: a hook may complete f, which
     * moves f's waiter list to the ready queue. */
    weft_link hooks;
    weft__list_init(&hooks);
    f->flags &= (uint8_t)~WEFT__F_HOOKS;
    for (weft_link *l = f->waiters.next, *next; l != &f->waiters; l = next) {
        next = l->next;
        if (((weft_node *)l)->run == hook_run) {
            weft__list_unlink(l);
            weft__list_push(&hooks, l);
        }
    }
    while (!weft__list_empty(&hooks)) {
        weft__pooled *c = (weft__pooled *)(void *)hooks.next;
        weft__node_unlink(&c->t.h.node);
        weft_cb *fn = c->t.h.fn;
        void *arg = c->t.h.arg;
        weft__call_put(f->loop, c);
        if (call)
            fn(arg);
    }
}

void weft__future_complete(weft_future *f, uint8_t state)
{
    f->state = state;
    if (f->flags & WEFT__F_HOOKS)
        take_hooks(f, false); /* completed otherwise than by cancel */
    weft__list_splice(&f->loop->ready, &f->waiters);
}

int weft__future_on_cancel(weft_future *f, weft_cb *fn, void *arg)
{
    weft__pooled *c = weft__call_get(f->loop);
    if (!c)
        return -ENOMEM;
    c->t.h.node.run = hook_run;
    c->t.h.fn = fn;
    c->t.h.arg = arg;
    weft__list_push(&f->waiters, &c->t.h.node.link);
    f->flags |= WEFT__F_HOOKS;
    return 0;
}

static int settable(const weft_future *f)
{
    if (!f)
        return -EINVAL;
    if (f->state != WEFT_PENDING || (f->flags & WEFT__F_TASK))
        return WEFT_ESTATE;
    return 0;
}

static int set_value(weft_future *f, weft_value v, weft_dtor *dtor)
{
    int err = settable(f);
    if (err)
        return err;
    f->u.done.v = v;
    f->u.done.dtor = dtor;
    weft__future_complete(f, WEFT_DONE);
    return 0;
}

int weft_future_set_result(weft_future *f, weft_value v)
{
    return set_value(f, v, NULL);
}

int weft_future_set_int(weft_future *f, int64_t i)
{
    return set_value(f, (weft_value){.i = i}, NULL);
}

int weft_future_set_double(weft_future *f, double d)
{
    return set_value(f, (weft_value){.d = d}, NULL);
}

int weft_future_set_ptr(weft_future *f, void *p, weft_dtor *dtor)
{
    return set_value(f, (weft_value){.p = p}, dtor);
}

int weft_future_set_error(weft_future *f, int err)
{
    if (err >= 0 || err == -ECANCELED)
        return -EINVAL;
    int e = settable(f);
    if (e)
        return e;
    f->err = err;
    weft__future_complete(f, WEFT_DONE);
    return 0;
}

int weft_future_cancel(weft_future *f)
{
    if (!f)
        return -EINVAL;
    if (f->flags & WEFT__F_TASK)
        return weft_task_cancel(f);
    if (f->state != WEFT_PENDING)
        return WEFT_ESTATE;
    if (f->flags & WEFT__F_HANDOFF) {
        weft__handoff *h = (weft__handoff *)(void *)f;
        h->cancelled(h, false); /* leave the primitive's queue */
    }
    if (f->flags & WEFT__F_HOOKS) {
        /* Cancel hooks run first, synchronously (gather cancels its
         * children, sleep drops its timer, ...).  One may complete f with
         * a value that already exists: then the value wins. */
        take_hooks(f, true);
        if (f->state != WEFT_PENDING)
            return WEFT_ESTATE;
    }
    f->err = -ECANCELED;
    weft__future_complete(f, WEFT_CANCELLED);
    return 0;
}

bool weft__handoff_rollback(weft_future *f)
{
    if (!(f->flags & WEFT__F_HANDOFF) || f->state != WEFT_DONE || f->err ||
        (f->flags & WEFT__F_OBSERVED))
        return false;
    weft__handoff *h = (weft__handoff *)(void *)f;
    h->cancelled(h, true);
    f->state = WEFT_CANCELLED;
    f->err = -ECANCELED;
    return true;
}

weft_future *weft__handoff_init(weft__handoff *h, weft_loop *loop, void *prim,
                                void (*cancelled)(weft__handoff *h, bool handed))
{
    h->fut = (weft_future){.loop = loop, .refs = 1, .flags = WEFT__F_STORAGE | WEFT__F_HANDOFF};
    weft__list_init(&h->fut.waiters);
    h->q.next = h->q.prev = NULL;
    h->cancelled = cancelled;
    h->prim = prim;
    h->item = (weft_value){0};
    h->aux = 0;
    return &h->fut;
}

/* ---- queries ----------------------------------------------------------------------- */

weft_future_state weft_future_state_of(const weft_future *f)
{
    return f ? (weft_future_state)f->state : WEFT_PENDING;
}

bool weft_future_done(const weft_future *f)
{
    return f && f->state != WEFT_PENDING;
}

bool weft_future_cancelled(const weft_future *f)
{
    return f && f->state == WEFT_CANCELLED;
}

int weft_future_result(weft_future *f, weft_value *out)
{
    if (!f)
        return -EINVAL;
    if (f->state == WEFT_PENDING)
        return WEFT_ESTATE;
    f->flags |= WEFT__F_OBSERVED;
    if (f->err)
        return f->err;
    if (out)
        *out = f->u.done.v;
    return 0;
}

int weft_future_error(weft_future *f)
{
    return weft_future_result(f, NULL);
}

void *weft_future_take_ptr(weft_future *f)
{
    if (!f || f->state != WEFT_DONE || f->err)
        return NULL;
    f->flags |= WEFT__F_OBSERVED;
    if (!(f->flags & WEFT__F_TASK))
        f->u.done.dtor = NULL;
    return f->u.done.v.p;
}

weft_loop *weft_future_loop(const weft_future *f)
{
    return f ? f->loop : NULL;
}

/* ---- done callbacks ------------------------------------------------------------------ */

static void done_run(weft_node *n)
{
    weft__pooled *c = (weft__pooled *)n;
    weft_future *f = c->aux;
    weft_done_cb *fn = (weft_done_cb *)c->aux_fn;
    void *arg = c->t.h.arg;
    weft_loop *loop = c->t.loop;
    loop->cur_fn = (weft_cb *)c->aux_fn;
    loop->cur_arg = arg;
    weft__call_put(loop, c);
    fn(f, arg);
    weft_future_unref(f);
}

int weft_future_add_done_callback(weft_future *f, weft_done_cb *fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    if (weft__closed(f->loop))
        return WEFT_ECLOSED;
    weft__pooled *c = weft__call_get(f->loop);
    if (!c)
        return -ENOMEM;
    c->t.h.node.run = done_run;
    c->t.h.arg = arg;
    c->aux = weft_future_ref(f);
    c->aux_fn = (void (*)(void))fn;
    if (f->state == WEFT_PENDING)
        weft__future_wait(f, &c->t.h.node);
    else
        weft__ready_push(f->loop, &c->t.h.node);
    return 0;
}

int weft_future_remove_done_callback(weft_future *f, weft_done_cb *fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    int n = 0;
    weft_future_ref(f); /* the nodes' references may be the last ones */
    for (weft_link *l = f->waiters.next; l != &f->waiters;) {
        weft__pooled *c = (weft__pooled *)(void *)l;
        l = l->next;
        if (c->t.h.node.run != done_run || c->aux_fn != (void (*)(void))fn || c->t.h.arg != arg)
            continue;
        weft__node_unlink(&c->t.h.node);
        weft__call_put(f->loop, c);
        weft_future_unref(f);
        n++;
    }
    weft_future_unref(f);
    return n;
}

/* ---- run_until_complete ------------------------------------------------------------- */

static void stop_loop(weft_future *f, void *arg)
{
    (void)f;
    weft_loop_stop(arg);
}

int weft_loop_run_until_complete(weft_loop *loop, weft_future *f)
{
    if (!loop || !f || f->loop != loop)
        return -EINVAL;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    if (weft_loop_is_running(loop) || weft_running_loop())
        return -EBUSY;
    weft_future_ref(f);
    int err = weft_future_add_done_callback(f, stop_loop, loop);
    if (!err)
        err = weft_loop_run_forever(loop);
    if (!err && !weft_future_done(f)) {
        weft_future_remove_done_callback(f, stop_loop, loop);
        err = WEFT_ESTATE;
    }
    if (!err)
        err = weft_future_error(f);
    weft_future_unref(f);
    return err;
}
