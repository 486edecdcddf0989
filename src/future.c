/* future.c - futures: the common header every kind shares, plain futures,
 * done callbacks, run_until_complete.
 *
 * The waiter list is an intrusive list of ready-queue nodes: a parked task
 * links its own node, a done callback a callback node.  Completing a
 * future splices the whole list onto the ready queue, which is asyncio's
 * "schedule every callback with call_soon, in registration order"; O(1)
 * unless callbacks are among the waiters (each takes a reference on the
 * future then, so that the future lives until its callbacks ran).  Plain
 * futures and callback nodes are recycled per loop, so await-heavy code
 * allocates nothing in steady state.
 *
 * Everything kind-specific goes through f->ops (future_internal.h); this
 * file knows no kind but its own.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

/* ---- the layer ------------------------------------------------------------------------ */

/* A done-callback node: in a pending future's waiters, or queued. */
typedef struct weft__cbnode {
    weft_node node;
    weft_link inuse; /* in the layer's list of nodes in use (for close) */
    weft_future *f;
    weft_done_cb *fn;
    void *arg;
} weft__cbnode;

static void layer_close(weft_loop *loop, weft__layer *self);
static void layer_destroy(weft_loop *loop, weft__layer *self);
static void cb_run(weft_node *n);

static const weft__future_ops yield_ops = {.kind = "yield"};
static const weft__future_ops none_ops = {.kind = "done"};

/* What the inline paths of weft/future.h assume. */
#define HDR_AT(m) \
    (offsetof(weft_future, m) - offsetof(weft_future, refs) == offsetof(weft__future_hdr, m))
_Static_assert(sizeof(weft__future_hdr) == 8 && HDR_AT(refs) && HDR_AT(state) && HDR_AT(flags) &&
                   HDR_AT(aux),
               "weft__future_hdr is the word at a future's refs");
#undef HDR_AT
_Static_assert(WEFT__LOOP_CLOSED_BITS == (WEFT__CLOSING | WEFT__CLOSED),
               "WEFT__LOOP_CLOSED_BITS: the closing and closed state bits");

static weft__future_layer *layer_new(weft_loop *loop)
{
    weft__future_layer *fl = weft__alloc(loop, sizeof *fl);
    if (!fl)
        return NULL;
    memset(fl, 0, sizeof *fl);
    fl->base.close = layer_close;
    fl->base.destroy = layer_destroy;
    weft__pool_init(&fl->pool, loop);
    weft__list_init(&fl->cbinuse);
    weft__list_init(&fl->held);
    weft__future_init(&fl->yield, &yield_ops, loop);
    fl->yield.state = WEFT__DONE;
    fl->yield.flags = WEFT__F_YIELD | WEFT__F_OBSERVED;
    weft__future_init(&fl->none, &none_ops, loop);
    fl->none.state = WEFT__DONE;
    fl->none.flags = WEFT__F_OBSERVED;
    weft__layer_set(loop, WEFT__LAYER_FUTURE, &fl->base);
    return fl;
}

weft__future_layer *weft__futures_make(weft_loop *loop)
{
    weft__layer *l = weft__layer_get(loop, WEFT__LAYER_FUTURE);
    if (l)
        return (weft__future_layer *)(void *)l;
    if (weft__closed(loop))
        return NULL;
    return layer_new(loop);
}

/* ---- extras: a small hash table keyed by future ------------------------------------- */

static size_t extras_slot(const weft__future_layer *fl, const weft_future *f)
{
    uint64_t h = (uint64_t)(uintptr_t)f * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(h >> 32) & (fl->extras_cap - 1);
}

static int extras_grow(weft_loop *loop, weft__future_layer *fl)
{
    size_t cap = fl->extras_cap ? fl->extras_cap * 2 : 16;
    weft__extras *old = fl->extras, *e = weft__alloc(loop, cap * sizeof *e);
    if (!e)
        return -ENOMEM;
    memset(e, 0, cap * sizeof *e);
    size_t oldcap = fl->extras_cap;
    fl->extras = e;
    fl->extras_cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].f) {
            size_t k = extras_slot(fl, old[i].f);
            while (e[k].f)
                k = (k + 1) & (cap - 1);
            e[k] = old[i];
        }
    weft__free(loop, old);
    return 0;
}

weft__extras *weft__future_extras(weft_future *f, bool create)
{
    weft__future_layer *fl = weft__futures(f->loop);
    if (!fl || (!(f->flags & WEFT__F_EXTRAS) && !create))
        return NULL;
    if (f->flags & WEFT__F_EXTRAS) {
        for (size_t k = extras_slot(fl, f);; k = (k + 1) & (fl->extras_cap - 1))
            if (fl->extras[k].f == f)
                return &fl->extras[k];
    }
    if ((fl->nextras + 1) * 2 > fl->extras_cap && extras_grow(f->loop, fl) < 0)
        return NULL;
    size_t k = extras_slot(fl, f);
    while (fl->extras[k].f)
        k = (k + 1) & (fl->extras_cap - 1);
    fl->extras[k] = (weft__extras){.f = f};
    fl->nextras++;
    f->flags |= WEFT__F_EXTRAS;
    return &fl->extras[k];
}

int weft__future_set_detail(weft_future *f, int err, const char *msg)
{
    weft__extras *x = weft__future_extras(f, msg != NULL);
    if (!x)
        return msg ? -ENOMEM : 0;
    weft__free(f->loop, x->detail);
    x->detail = NULL;
    if (!msg)
        return 0;
    size_t n = strlen(msg) + 1;
    if (n > 512)
        n = 512;
    x->detail = weft__alloc(f->loop, n);
    if (!x->detail)
        return -ENOMEM;
    memcpy(x->detail, msg, n - 1);
    x->detail[n - 1] = 0;
    x->detail_err = err;
    return 0;
}

const char *weft__future_detail(const weft_future *f, int err)
{
    if (!(f->flags & WEFT__F_EXTRAS))
        return NULL;
    weft__extras *x = weft__future_extras((weft_future *)(uintptr_t)f, false);
    return x && x->detail && x->detail_err == err ? x->detail : NULL;
}

void *weft__future_scoped_alloc(weft_future *f, size_t n)
{
    weft__extras *x = weft__future_extras(f, true);
    if (!x)
        return NULL;
    weft__scoped *b = weft__alloc(f->loop, sizeof *b + n);
    if (!b)
        return NULL;
    memset(b->data, 0, n);
    b->next = x->scoped;
    x->scoped = b;
    return b->data;
}

void weft__future_scoped_free(weft_future *f, void *p)
{
    if (!p)
        return;
    weft__extras *x = weft__future_extras(f, false);
    for (weft__scoped **pp = x ? &x->scoped : NULL; pp && *pp; pp = &(*pp)->next)
        if ((*pp)->data == p) {
            weft__scoped *b = *pp;
            *pp = b->next;
            weft__free(f->loop, b);
            return;
        }
}

static void extras_clear(weft_loop *loop, weft__extras *x)
{
    weft__free(loop, x->detail);
    for (weft__scoped *b = x->scoped, *next; b; b = next) {
        next = b->next;
        weft__free(loop, b);
    }
}

/* Remove f's entry (backward-shift deletion: no tombstones). */
static void extras_drop(weft_future *f)
{
    weft__future_layer *fl =
        (weft__future_layer *)(void *)weft__layer_get(f->loop, WEFT__LAYER_FUTURE);
    f->flags &= (uint8_t)~WEFT__F_EXTRAS;
    if (!fl || !fl->extras_cap)
        return;
    size_t mask = fl->extras_cap - 1, k = extras_slot(fl, f);
    while (fl->extras[k].f != f) {
        if (!fl->extras[k].f)
            return;
        k = (k + 1) & mask;
    }
    extras_clear(f->loop, &fl->extras[k]);
    fl->nextras--;
    for (size_t j = (k + 1) & mask; fl->extras[j].f; j = (j + 1) & mask) {
        size_t home = extras_slot(fl, fl->extras[j].f);
        /* move j into the hole at k if its home is not in (k, j] */
        if ((j > k && (home <= k || home > j)) || (j < k && home <= k && home > j)) {
            fl->extras[k] = fl->extras[j];
            k = j;
        }
    }
    fl->extras[k] = (weft__extras){0};
}

weft_future *weft__future_yield(weft_loop *loop)
{
    weft__future_layer *fl = weft__futures(loop);
    return fl ? weft_future_ref(&fl->yield) : NULL;
}

weft_future *weft__future_none(weft_loop *loop)
{
    weft__future_layer *fl = weft__futures(loop);
    return fl ? weft_future_ref(&fl->none) : NULL;
}

/* ---- the common header -------------------------------------------------------------------- */

void weft__future_name(const weft_future *f, char *buf, size_t n)
{
    weft_report r;
    memset(&r, 0, sizeof r);
    if (f->ops->describe)
        f->ops->describe(f, &r, buf, n);
    else
        snprintf(buf, n, "%s %p", f->ops->kind, (const void *)f);
}

/* The callbacks of a future that will never complete normally (freed while
 * pending, or completed after close) are dropped; other waiters (tasks
 * parked on it, being released by the close) are only unlinked. */
static void drop_callbacks(weft_future *f)
{
    for (weft_link *l = f->waiters.next, *next; l != &f->waiters; l = next) {
        next = l->next;
        weft_node *n = (weft_node *)(void *)l;
        weft__node_unlink(n);
        if (n->run != cb_run)
            continue;
        weft__cbnode *c = WEFT_CONTAINER_OF(n, weft__cbnode, node);
        if (c->inuse.next)
            weft__list_unlink(&c->inuse);
        weft__free(f->loop, c);
    }
}

static void really_release(weft_future *f)
{
    weft__layer *l = weft__layer_get(f->loop, WEFT__LAYER_FUTURE);
    if (l)
        ((weft__future_layer *)(void *)l)->live--;
    f->ops->release(f);
}

WEFT__COLD static void future_free_slow(weft_future *f);

void weft__future_free(weft_future *f)
{
    if (!weft__future_release_fast(f)) /* f->refs is 1: the last one goes */
        future_free_slow(f);
}

static void future_free_slow(weft_future *f)
{
    weft_loop *loop = f->loop;
    f->refs = 0;
    if (f->state == WEFT__FAILED && !(f->flags & WEFT__F_OBSERVED)) {
        char name[160];
        weft_report r;
        memset(&r, 0, sizeof r);
        if (f->ops->describe)
            f->ops->describe(f, &r, name, sizeof name);
        else
            snprintf(name, sizeof name, "%s", f->ops->kind);
        char msg[900];
        const char *detail = weft__future_detail(f, f->out.err); /* r.detail, not in msg */
        if (r.file)
            snprintf(msg, sizeof msg, "%s failed at %s:%d and its error was never retrieved", name,
                     r.file, r.line);
        else
            snprintf(msg, sizeof msg, "%s failed and its error was never retrieved", name);
        r.kind = WEFT_REPORT_UNOBSERVED;
        r.err = f->out.err;
        r.message = msg;
        r.detail = detail;
        weft__report(loop, &r);
    } else if (f->state == WEFT__DONE && (f->ops->flags & WEFT__OPS_DTOR)) {
        weft__dfuture *d = (weft__dfuture *)(void *)f;
        if (d->dtor) {
            weft_dtor *dtor = d->dtor;
            d->dtor = NULL;
            dtor(f->out.v.p); /* a pointer value nobody took */
        }
    }
    if (f->state == WEFT__PENDING && (f->flags & WEFT__F_CALLBACKS))
        drop_callbacks(f);
    if (f->flags & WEFT__F_EXTRAS)
        extras_drop(f);
    if (!f->ops->release)
        return; /* a frame's: the frame owns the memory */
#if WEFT__POISON
    /* keep it a while, marked dead, so that a double unref or an await of
     * a freed future is reported instead of corrupting another future */
    weft__future_layer *fl =
        (weft__future_layer *)(void *)weft__layer_get(loop, WEFT__LAYER_FUTURE);
    if (fl && !fl->closed) {
        unsigned k = fl->quar_next++ % (sizeof fl->quar / sizeof fl->quar[0]);
        weft_future *old = fl->quar[k];
        fl->quar[k] = f;
        f->state = 0xff;
        f = old;
        if (!f)
            return;
        f->state = WEFT__PENDING;
    }
#endif
    really_release(f);
}

weft_future *weft_future_ref(weft_future *f)
{
    if (f)
        f->refs++;
    return f;
}

/* The last reference, or none left (the cold half of weft_future_unref). */
WEFT__COLD static void unref_last(weft_future *f)
{
    if (!f)
        return;
    if (f->refs == 0) {
        if (!f->ops->release)
            return; /* a frame's waiter: its count is not tracked */
        weft__reportf(f->loop, WEFT_REPORT_MISUSE, -EINVAL,
                      "weft_future_unref of a %s %p that has no reference left (a double "
                      "unref, or an await of a future already released)",
                      f->ops->kind, (void *)f);
        return;
    }
    if (!weft__future_recycle(f))
        weft__future_free(f);
}

void weft_future_unref(weft_future *f)
{
    if (f && f->refs > 1) {
        f->refs--; /* hot path: not the last reference */
        return;
    }
    unref_last(f);
}

void weft__future_hold(weft_future *f, weft__hold *h)
{
    weft__future_layer *fl =
        (weft__future_layer *)(void *)weft__layer_get(f->loop, WEFT__LAYER_FUTURE);
    h->f = NULL;
    h->link.next = h->link.prev = NULL;
    if (!fl || fl->closed)
        return;
    h->f = weft_future_ref(f);
    weft__list_push(&fl->held, &h->link);
}

void weft__future_unhold(weft__hold *h)
{
    if (!h->link.next)
        return;
    weft__list_unlink(&h->link);
    weft_future *f = h->f;
    h->f = NULL;
    weft__future_unref(f);
}

/* ---- completion ------------------------------------------------------------------------------ */

int weft__future_finish(weft_future *f, uint8_t state)
{
    WEFT_ASSERT(f->state == WEFT__PENDING);
    f->state = state;
    if (weft__list_empty(&f->waiters))
        return weft__closed(f->loop) && (f->flags & WEFT__F_CALLBACKS) ? WEFT_ECLOSED : 0;
    if (weft__closed(f->loop)) {
        drop_callbacks(f); /* tasks were released at close: only callbacks */
        return WEFT_ECLOSED;
    }
    if (f->flags & WEFT__F_CALLBACKS) {
        /* the loop keeps f alive until each callback ran */
        for (weft_link *l = f->waiters.next; l != &f->waiters; l = l->next)
            if (((weft_node *)(void *)l)->run == cb_run)
                f->refs++;
    }
    weft__ready_splice(f->loop, &f->waiters);
    return 0;
}

int weft__future_resolve(weft_future *f, weft_value v)
{
    f->out.v = v;
    return weft__future_finish(f, WEFT__DONE);
}

int weft__future_fail(weft_future *f, int err)
{
    f->out.err = err;
    return weft__future_finish(f, WEFT__FAILED);
}

int weft__future_cancel_now(weft_future *f)
{
    if (f->state != WEFT__PENDING)
        return WEFT_ESTATE;
    return weft__future_finish(f, WEFT__CANCELLED);
}

static int settable(const weft_future *f)
{
    if (!f)
        return -EINVAL;
    if (f->state != WEFT__PENDING || !(f->ops->flags & WEFT__OPS_SETTABLE))
        return WEFT_ESTATE;
    return 0;
}

WEFT__COLD static int set_value_slow(weft_future *f, weft_value v, weft_dtor *dtor)
{
    int err = settable(f);
    if (err)
        return err;
    if (f->ops->flags & WEFT__OPS_DTOR)
        ((weft__dfuture *)(void *)f)->dtor = dtor;
    else if (dtor)
        return -EINVAL;
    if (dtor)
        f->flags &= (uint8_t)~WEFT__F_PLAIN;
    return weft__future_resolve(f, v);
}

static inline int set_value(weft_future *f, weft_value v, weft_dtor *dtor)
{
    /* what weft__future_set_inline (weft/future.h) relies on */
    WEFT_ASSERT(!f || f->state == WEFT__PENDING || weft__list_empty(&f->waiters));
    if (f && f->ops == &weft__plain_ops && f->state == WEFT__PENDING &&
        !weft__list_empty(&f->waiters) && !(f->flags & WEFT__F_CALLBACKS) &&
        !weft__closed(f->loop)) {
        /* hot path: a plain future with parked tasks only (a pending one
         * has no destructor yet) */
        if (dtor) {
            ((weft__dfuture *)(void *)f)->dtor = dtor;
            f->flags &= (uint8_t)~WEFT__F_PLAIN;
        }
        weft__future_wake_parked(f, f->loop->ready, v);
        return 0;
    }
    return set_value_slow(f, v, dtor);
}

/* (parenthesised: weft/future.h defines these two as macros too) */
int(weft_future_set_result)(weft_future *f, weft_value v)
{
    return set_value(f, v, NULL);
}

int(weft_future_set_int)(weft_future *f, int64_t i)
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
    if (err >= 0 || err == -ECANCELED || err < WEFT_ERR_MIN)
        return -EINVAL;
    int e = settable(f);
    if (e)
        return e;
    return weft__future_fail(f, err);
}

int weft_future_set_error_msg(weft_future *f, int err, const char *fmt, ...)
{
    if (err >= 0 || err == -ECANCELED || err < WEFT_ERR_MIN || !fmt)
        return -EINVAL;
    int e = settable(f);
    if (e)
        return e;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    weft__future_set_detail(f, err, msg); /* -ENOMEM: the error stands, without text */
    return weft__future_fail(f, err);
}

const char *weft_future_error_message(const weft_future *f)
{
    if (!f || f->state == WEFT__PENDING || f->state == WEFT__DONE)
        return NULL;
    return weft__future_detail(f, weft__future_err(f));
}

const char *weft_future_strerror(const weft_future *f, char *buf, size_t n)
{
    if (!buf || !n)
        return "";
    int err = f && f->state != WEFT__PENDING ? weft__future_err(f) : 0;
    const char *msg = f ? weft_future_error_message(f) : NULL;
    if (msg)
        snprintf(buf, n, "%s: %s", msg, weft_strerror(err));
    else
        snprintf(buf, n, "%s", f && f->state == WEFT__PENDING ? "pending" : weft_strerror(err));
    return buf;
}

int weft_future_cancel(weft_future *f)
{
    if (!f)
        return -EINVAL;
    return weft__future_cancel(f);
}

int weft__future_copy_outcome(weft_future *dst, weft_future *src)
{
    src->flags |= WEFT__F_OBSERVED;
    if (src->state == WEFT__CANCELLED)
        return weft__future_cancel_now(dst);
    if (src->state == WEFT__FAILED)
        return weft__future_fail(dst, src->out.err);
    if ((src->ops->flags & WEFT__OPS_DTOR) && (dst->ops->flags & WEFT__OPS_DTOR)) {
        weft__dfuture *s = (weft__dfuture *)(void *)src, *d = (weft__dfuture *)(void *)dst;
        d->dtor = s->dtor; /* the pointer changes owner */
        s->dtor = NULL;
        if (d->dtor)
            dst->flags &= (uint8_t)~WEFT__F_PLAIN;
    }
    return weft__future_resolve(dst, src->out.v);
}

/* ---- plain futures ----------------------------------------------------------------------------
 */

static void plain_release(weft_future *f)
{
    weft__dfuture *d = (weft__dfuture *)(void *)f;
    weft__future_layer *fl =
        (weft__future_layer *)(void *)weft__layer_get(f->loop, WEFT__LAYER_FUTURE);
    if (!fl || fl->closed) {
        weft__free(f->loop, d); /* made or released after close */
        return;
    }
#if WEFT__POISON
    weft__free(f->loop, d);
#else
    f->state = WEFT__DONE; /* a freed future never reads as pending (see weft__await) */
    f->waiters.next = (weft_link *)(void *)f->loop->ffree; /* recycle */
    f->loop->ffree = d;
    fl->live++; /* counted while on the free list (really_release uncounted it) */
#endif
}

const weft__future_ops weft__plain_ops = {
    .kind = "future",
    .flags = WEFT__OPS_SETTABLE | WEFT__OPS_DTOR,
    .release = plain_release,
};

WEFT__COLD static weft_future *future_new_slow(weft_loop *loop)
{
    if (!loop) {
        last_error = -EINVAL;
        return NULL;
    }
    weft__future_layer *fl = weft__futures(loop);
    if (!fl && !weft__closed(loop)) {
        last_error = -ENOMEM;
        return NULL;
    }
    weft__dfuture *d = weft__alloc(loop, sizeof *d);
    if (!d) {
        last_error = -ENOMEM;
        return NULL;
    }
    weft__future_init(&d->f, &weft__plain_ops, loop);
    d->f.flags = WEFT__POISON ? 0 : WEFT__F_PLAIN; /* poison builds never recycle */
    d->dtor = NULL;
    return &d->f;
}

/* (parenthesised: weft/future.h defines weft_future_new as a macro too) */
weft_future *(weft_future_new)(weft_loop *loop)
{
    weft__dfuture *d;
    if (!loop || !(d = loop->ffree))
        return future_new_slow(loop);
    loop->ffree = (weft__dfuture *)(void *)d->f.waiters.next; /* a recycled future */
    /* it is a plain future of this loop already, without a destructor (a
     * pending plain future never reads its out) */
    WEFT_ASSERT(d->f.ops == &weft__plain_ops && d->f.loop == loop && !d->dtor &&
                d->f.waiters.prev == &d->f.waiters);
    d->f.waiters.next = &d->f.waiters; /* prev is already (see weft/future.h) */
    d->f.refs = 1;
    d->f.state = WEFT__PENDING;
    d->f.flags = WEFT__F_PLAIN; /* a recycled one: not a poison build */
    d->f.aux = 0;
    return &d->f;
}

/* ---- queries --------------------------------------------------------------------------------- */

weft_future_state weft_future_state_of(const weft_future *f)
{
    if (!f || f->state == WEFT__PENDING)
        return WEFT_PENDING;
    return f->state == WEFT__CANCELLED ? WEFT_CANCELLED : WEFT_DONE;
}

bool weft_future_done(const weft_future *f)
{
    return f && f->state != WEFT__PENDING;
}

bool weft_future_cancelled(const weft_future *f)
{
    return f && f->state == WEFT__CANCELLED;
}

int weft_future_result(weft_future *f, weft_value *out)
{
    if (!f)
        return -EINVAL;
    if (f->state == WEFT__PENDING)
        return WEFT_ESTATE;
    f->flags |= WEFT__F_OBSERVED;
    if (f->state != WEFT__DONE)
        return weft__future_err(f);
    if (out)
        *out = f->out.v;
    return 0;
}

int weft_future_error(weft_future *f)
{
    return weft_future_result(f, NULL);
}

void *weft_future_take_ptr(weft_future *f)
{
    if (!f || f->state != WEFT__DONE)
        return NULL;
    f->flags |= WEFT__F_OBSERVED;
    if (f->ops->flags & WEFT__OPS_DTOR)
        ((weft__dfuture *)(void *)f)->dtor = NULL;
    return f->out.v.p;
}

weft_loop *weft_future_loop(const weft_future *f)
{
    return f ? f->loop : NULL;
}

/* ---- done callbacks -------------------------------------------------------------------------- */

static void cb_put(weft_loop *loop, weft__cbnode *c)
{
    if (c->inuse.next)
        weft__list_unlink(&c->inuse);
    weft__future_layer *fl =
        (weft__future_layer *)(void *)weft__layer_get(loop, WEFT__LAYER_FUTURE);
#if !WEFT__POISON
    if (fl && !fl->closed) {
        c->node.link.next = (weft_link *)(void *)fl->cbfree;
        fl->cbfree = c;
        return;
    }
#else
    (void)fl;
#endif
    weft__free(loop, c);
}

static void cb_run(weft_node *n)
{
    weft__cbnode *c = WEFT_CONTAINER_OF(n, weft__cbnode, node);
    weft_future *f = c->f;
    weft_done_cb *fn = c->fn;
    void *arg = c->arg;
    weft__running_cb(f->loop, (weft_cb *)(void (*)(void))fn, arg);
    cb_put(f->loop, c);
    fn(f, arg);
    weft__future_unref(f);
}

int weft_future_add_done_callback(weft_future *f, weft_done_cb *fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    if (weft__closed(f->loop))
        return WEFT_ECLOSED;
    weft__future_layer *fl = weft__futures(f->loop);
    if (!fl || fl->closed)
        return fl ? WEFT_ECLOSED : -ENOMEM;
    weft__cbnode *c = fl->cbfree;
    if (c) {
        fl->cbfree = (weft__cbnode *)(void *)c->node.link.next;
    } else {
        c = weft__alloc(f->loop, sizeof *c);
        if (!c)
            return -ENOMEM;
        c->inuse = (weft_link){NULL, NULL}; /* fresh memory: not in a list yet */
    }
    c->node = (weft_node){{NULL, NULL}, cb_run};
    c->inuse.next = c->inuse.prev = NULL;
    c->f = f;
    c->fn = fn;
    c->arg = arg;
    weft__list_push(&fl->cbinuse, &c->inuse);
    if (f->state == WEFT__PENDING) {
        f->flags |= WEFT__F_CALLBACKS;
        weft__future_wait(f, &c->node);
    } else {
        f->refs++;
        weft__ready_push(f->loop, &c->node);
    }
    return 0;
}

int weft_future_remove_done_callback(weft_future *f, weft_done_cb *fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    int n = 0;
    for (weft_link *l = f->waiters.next, *next; l != &f->waiters; l = next) {
        next = l->next;
        weft_node *node = (weft_node *)(void *)l;
        if (node->run != cb_run)
            continue; /* a parked task */
        weft__cbnode *c = WEFT_CONTAINER_OF(node, weft__cbnode, node);
        if (c->fn != fn || c->arg != arg)
            continue;
        weft__node_unlink(&c->node);
        cb_put(f->loop, c);
        n++;
    }
    return n;
}

/* ---- close ---------------------------------------------------------------------------------- */

static void layer_close(weft_loop *loop, weft__layer *self)
{
    weft__future_layer *fl = (weft__future_layer *)(void *)self;
    /* Callback nodes still in use: a queued one holds a reference on its
     * (done) future, which goes; one on a pending future is dropped, and
     * the future remembers it had callbacks (its completion then returns
     * WEFT_ECLOSED).  Unlink them all before dropping any reference. */
    weft_link queued;
    weft__list_init(&queued);
    while (!weft__list_empty(&fl->cbinuse)) {
        weft__cbnode *c = WEFT_CONTAINER_OF(fl->cbinuse.next, weft__cbnode, inuse);
        weft__list_unlink(&c->inuse);
        weft__node_unlink(&c->node);
        if (c->f->state != WEFT__PENDING)
            weft__list_push(&queued, &c->inuse);
        else
            weft__free(loop, c);
    }
    fl->closed = true;
    weft__pool_close(&fl->pool);
    while (!weft__list_empty(&fl->held)) /* what the loop would have completed */
        weft__future_unhold(WEFT_CONTAINER_OF(fl->held.next, weft__hold, link));
    while (!weft__list_empty(&queued)) {
        weft__cbnode *c = WEFT_CONTAINER_OF(queued.next, weft__cbnode, inuse);
        weft__list_unlink(&c->inuse);
        weft_future *f = c->f;
        weft__free(loop, c);
        weft__future_unref(f);
    }
    for (weft__cbnode *c = fl->cbfree, *next; c; c = next) {
        next = (weft__cbnode *)(void *)c->node.link.next;
        weft__free(loop, c);
    }
    fl->cbfree = NULL;
#if WEFT__POISON
    for (size_t i = 0; i < sizeof fl->quar / sizeof fl->quar[0]; i++)
        if (fl->quar[i]) {
            fl->quar[i]->state = WEFT__PENDING;
            really_release(fl->quar[i]);
            fl->quar[i] = NULL;
        }
#endif
    for (weft__dfuture *d = loop->ffree, *next; d; d = next) {
        next = (weft__dfuture *)(void *)d->f.waiters.next;
        weft__free(loop, d);
        fl->live--; /* recycled ones were still counted */
    }
    loop->ffree = NULL;
}

/* The loop is destroyed: the pool goes (blocks still referenced by users
 * go with it: they must have dropped them). */
static void layer_destroy(weft_loop *loop, weft__layer *self)
{
    weft__future_layer *fl = (weft__future_layer *)(void *)self;
    if (fl->live)
        weft__reportf(loop, WEFT_REPORT_OTHER, 0,
                      "loop destroyed with %zu futures still referenced (a reference never "
                      "dropped: they are freed now and must not be used)",
                      fl->live);
    weft__pool_free_all(&fl->pool);
    for (size_t i = 0; i < fl->extras_cap; i++)
        if (fl->extras[i].f)
            extras_clear(loop, &fl->extras[i]);
    weft__free(loop, fl->extras);
    weft__layer_set(loop, WEFT__LAYER_FUTURE, NULL);
    weft__free(loop, fl);
}

/* ---- run_until_complete ------------------------------------------------------------------------
 */

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
