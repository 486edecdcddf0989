/* gather.c - gather, wait and as_completed.
 *
 * All three watch a set of child futures with one node per child embedded
 * in their own block (an "entry", linked into the child's waiter list), so
 * watching n children is one allocation and nothing can fail half way.
 * gather and wait are futures of their own kind whose value (.p) is the
 * block itself, so the results live exactly as long as the future; freeing
 * it unlinks the entries (the children run on, unobserved by it).
 */
#include <stdio.h>
#include <string.h>

#include "future_internal.h"
#include "weft/combinators.h"

typedef struct entry {
    weft_node node; /* in the child's waiters, then queued when it completes */
    void *owner;    /* the results or the iterator */
    weft_future *f; /* the child (a reference) */
    bool done;      /* wait: done when the wait completed */
} entry;

static void entries_detach(entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (weft__node_linked(&e[i].node))
            weft__node_unlink(&e[i].node);
}

static void entry_describe(const void *obj, weft_report *r, char *buf, size_t n)
{
    (void)r;
    snprintf(buf, n, "combinator %p: a child completed", obj);
}

/* The caller handed us fs but the combinator is not made: let go of each
 * (a waiter of a primitive is withdrawn: its frame is not ours; a task we
 * were meant to run is cancelled if cancel_tasks). */
static void abandon_all(weft_future *const *fs, size_t n, bool cancel_tasks)
{
    for (size_t i = 0; fs && i < n; i++) {
        weft_future *f = fs[i];
        if (!f)
            continue;
        if (f->ops->abandon && (f->ops->flags & WEFT__OPS_IN_FRAME))
            f->ops->abandon(f);
        else if (cancel_tasks && weft_is_task(f))
            weft_task_cancel(f);
        weft_future_unref(f);
    }
}

/* 0, or why fs cannot be watched on loop. */
static int check_futures(weft_loop *loop, weft_future *const *fs, size_t n)
{
    if (!loop || (n && !fs))
        return -EINVAL;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    for (size_t i = 0; i < n; i++) {
        if (!fs[i]) {
            int err = weft_last_error();
            return err < 0 ? err : -ENOMEM;
        }
        if (fs[i]->loop != loop || (fs[i]->ops->flags & WEFT__OPS_IN_FRAME))
            return -EINVAL; /* a frame's waiter must be awaited directly */
    }
    return 0;
}

/* ---- gather and wait: one kind --------------------------------------------------------- */

enum { GATHER, WAIT };

struct weft_results {
    weft_future f; /* the gather or wait itself */
    size_t n, left; /* entries, entries still pending */
    size_t bytes;   /* of this block */
    int kind;
    unsigned flags;
    weft_return_when when;
    bool timer_on;
    weft_timer timer;
    weft__hold hold; /* while it waits for its children */
    entry e[];
};

static weft_results *results_of(weft_future *f)
{
    return WEFT_CONTAINER_OF(f, weft_results, f);
}

static void disarm(weft_results *m)
{
    if (m->timer_on) {
        weft_timer_close(&m->timer);
        m->timer_on = false;
    }
}

static void finish_value(weft_results *m)
{
    disarm(m);
    for (size_t i = 0; i < m->n; i++)
        m->e[i].done = m->e[i].f->state != WEFT__PENDING;
    if (m->kind == WAIT) {
        entries_detach(m->e, m->n); /* later completions change nothing */
        m->left = 0;
    }
    weft__future_resolve(&m->f, (weft_value){.p = m});
}

static void cancel_children(weft_results *m)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].f->state == WEFT__PENDING)
            weft__future_cancel(m->e[i].f);
}

static int results_cancel(weft_future *f)
{
    weft_results *m = results_of(f);
    disarm(m);
    if (m->kind == GATHER) {
        cancel_children(m); /* their entries see a gather no longer pending */
    } else {
        entries_detach(m->e, m->n); /* wait cancels nothing */
        m->left = 0;
    }
    int err = weft__future_cancel_now(f);
    weft__future_unhold(&m->hold); /* the caller holds f: it stays */
    return err;
}

static void results_release(weft_future *f)
{
    weft_results *m = results_of(f);
    disarm(m);
    weft__future_unhold(&m->hold); /* (only after close) */
    entries_detach(m->e, m->n);
    for (size_t i = 0; i < m->n; i++)
        weft_future_unref(m->e[i].f);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, m, m->bytes);
}

static const weft__future_ops gather_ops = {
    .kind = "gather",
    .cancel = results_cancel,
    .release = results_release,
};

static const weft__future_ops wait_ops = {
    .kind = "wait",
    .cancel = results_cancel,
    .release = results_release,
};

static bool wait_satisfied(const weft_results *m, const weft_future *f)
{
    switch (m->when) {
    case WEFT_FIRST_COMPLETED:
        return true;
    case WEFT_FIRST_EXCEPTION:
        return f->state == WEFT__FAILED || m->left == 0;
    default:
        return m->left == 0;
    }
}

static void results_child_done(weft_node *n)
{
    entry *e = WEFT_CONTAINER_OF(n, entry, node);
    weft_results *m = e->owner;
    weft_future *f = e->f;
    weft__running_obj(m->f.loop, entry_describe, m);
    m->left--;
    if (m->f.state != WEFT__PENDING)
        return;
    if (m->kind == GATHER) {
        if (f->state == WEFT__FAILED && !(m->flags & WEFT_GATHER_ALL)) {
            f->flags |= WEFT__F_OBSERVED;
            disarm(m);
            weft__future_fail(&m->f, f->out.err);
            cancel_children(m);
        } else if (m->left == 0) {
            finish_value(m);
        }
    } else if (wait_satisfied(m, f)) {
        finish_value(m);
    }
    if (m->f.state != WEFT__PENDING)
        weft__future_unhold(&m->hold); /* last: it may free m */
}

static weft_results *results_new(weft_loop *loop, weft_future *const *fs, size_t n, int kind)
{
    int err = check_futures(loop, fs, n);
    if (!err && n > (SIZE_MAX - sizeof(weft_results)) / sizeof(entry))
        err = -ENOMEM; /* the size would wrap (32-bit size_t) */
    size_t bytes = err ? 0 : sizeof(weft_results) + n * sizeof(entry);
    weft__pool *pool = err ? NULL : weft__pool_of(loop);
    weft_results *m = pool ? weft__pool_get(pool, WEFT__POOL_ANY, bytes) : NULL;
    if (!err && !m)
        err = -ENOMEM;
    if (err) {
        abandon_all(fs, n, kind == GATHER);
        weft__set_last_error(err);
        return NULL;
    }
    weft__future_init(&m->f, kind == GATHER ? &gather_ops : &wait_ops, loop);
    m->n = n;
    m->left = 0;
    m->bytes = bytes;
    m->kind = kind;
    m->flags = 0;
    m->when = WEFT_ALL_COMPLETED;
    m->timer_on = false;
    m->hold.link.next = NULL;
    for (size_t i = 0; i < n; i++) {
        m->e[i] = (entry){{{NULL, NULL}, results_child_done}, m, fs[i], false};
        if (fs[i]->state == WEFT__PENDING) {
            weft__future_wait(fs[i], &m->e[i].node);
            m->left++;
        }
    }
    return m;
}

weft_future *weft_gather(weft_loop *loop, weft_future *const *fs, size_t n, unsigned flags)
{
    weft_results *m = results_new(loop, fs, n, GATHER);
    if (!m)
        return NULL;
    m->flags = flags;
    /* children already done are accounted for at once (asyncio 3.12) */
    for (size_t i = 0; i < n && !(flags & WEFT_GATHER_ALL); i++) {
        weft_future *f = m->e[i].f;
        if (f->state == WEFT__FAILED) {
            f->flags |= WEFT__F_OBSERVED;
            weft__future_fail(&m->f, f->out.err);
            cancel_children(m);
            break;
        }
    }
    if (m->left == 0 && m->f.state == WEFT__PENDING)
        finish_value(m);
    if (m->f.state == WEFT__PENDING)
        weft__future_hold(&m->f, &m->hold);
    return &m->f;
}

static void wait_timeout(void *arg)
{
    weft_results *m = arg;
    if (m->f.state == WEFT__PENDING)
        finish_value(m);
    weft__future_unhold(&m->hold);
}

/* A timeout in seconds (< 0 or +inf: none) to ns, or -1 for none. */
static int timeout_ns(double timeout, int64_t *ns)
{
    int err = weft__sec_to_ns(timeout, ns);
    if (!err && (*ns < 0 || *ns == INT64_MAX))
        *ns = -1;
    return err;
}

weft_future *weft_wait(weft_loop *loop, weft_future *const *fs, size_t n, weft_return_when when,
                       double timeout)
{
    int64_t ns;
    if (n == 0 || (unsigned)when > WEFT_FIRST_EXCEPTION || timeout_ns(timeout, &ns)) {
        abandon_all(fs, n, false);
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft_results *m = results_new(loop, fs, n, WAIT);
    if (!m)
        return NULL;
    m->when = when;
    bool now = m->left == 0;
    for (size_t i = 0; i < n && !now && when != WEFT_ALL_COMPLETED; i++)
        now = m->e[i].f->state != WEFT__PENDING && wait_satisfied(m, m->e[i].f);
    if (now) {
        finish_value(m);
    } else if (ns >= 0) {
        int err = weft_timer_init(&m->timer, loop, wait_timeout, m);
        if (err) {
            weft_future_unref(&m->f); /* lets go of the children too */
            weft__set_last_error(err);
            return NULL;
        } else {
            m->timer_on = true;
            weft_timer_start_ns(&m->timer, ns, 0);
        }
    }
    if (m->f.state == WEFT__PENDING)
        weft__future_hold(&m->f, &m->hold);
    return &m->f;
}

/* ---- results accessors ---------------------------------------------------------------- */

size_t weft_results_count(const weft_results *r)
{
    return r ? r->n : 0;
}

int weft_results_get(const weft_results *r, size_t i, weft_value *out)
{
    if (!r)
        return -EINVAL;
    if (i >= r->n)
        return -ERANGE;
    return weft_future_result(r->e[i].f, out);
}

bool weft_results_done(const weft_results *r, size_t i)
{
    return r && i < r->n && r->e[i].done;
}

weft_future *weft_results_future(const weft_results *r, size_t i)
{
    return r && i < r->n ? r->e[i].f : NULL;
}

/* ---- as_completed ---------------------------------------------------------------------- */

/* One block: the header, n entries, then the queue of completed entry
 * indexes and the queue of next-futures waiting for an outcome. */
struct weft_as_completed {
    weft_loop *loop;
    size_t n, handed, bytes;
    size_t *order, ohead, otail; /* completed entries not handed out yet */
    weft_future **slots;         /* next() futures waiting for an outcome */
    size_t shead, stail;
    bool timer_on, expired;
    weft_timer timer;
    entry e[];
};

/* Give outcomes to waiting next-futures, in order.  A next-future its
 * holder completed or cancelled meanwhile is skipped: the outcome goes to
 * the next one. */
static void ascomp_deliver(weft_as_completed *ac)
{
    while (ac->shead < ac->stail && (ac->ohead < ac->otail || ac->expired)) {
        weft_future *slot = ac->slots[ac->shead++];
        if (slot->state == WEFT__PENDING) {
            if (ac->ohead < ac->otail)
                weft__future_copy_outcome(slot, ac->e[ac->order[ac->ohead++]].f);
            else
                weft__future_fail(slot, -ETIMEDOUT);
        }
        weft_future_unref(slot);
    }
}

static void ascomp_child_done(weft_node *n)
{
    entry *e = WEFT_CONTAINER_OF(n, entry, node);
    weft_as_completed *ac = e->owner;
    weft__running_obj(ac->loop, entry_describe, ac);
    ac->order[ac->otail++] = (size_t)(e - ac->e);
    ascomp_deliver(ac);
}

static void ascomp_timeout(void *arg)
{
    weft_as_completed *ac = arg;
    ac->expired = true;
    ascomp_deliver(ac);
}

weft_as_completed *weft_as_completed_new(weft_loop *loop, weft_future *const *fs, size_t n,
                                         double timeout)
{
    int64_t ns = -1;
    int err = timeout_ns(timeout, &ns) ? -EINVAL : check_futures(loop, fs, n);
    size_t per = sizeof(entry) + sizeof(size_t) + sizeof(weft_future *);
    if (!err && n > (SIZE_MAX - sizeof(weft_as_completed)) / per)
        err = -ENOMEM; /* the size would wrap (32-bit size_t) */
    size_t bytes = err ? 0 : sizeof(weft_as_completed) + n * per;
    weft__pool *pool = err ? NULL : weft__pool_of(loop);
    weft_as_completed *ac = pool ? weft__pool_get(pool, WEFT__POOL_ANY, bytes) : NULL;
    if (!err && !ac)
        err = -ENOMEM;
    if (!err && ns >= 0 && weft_timer_init(&ac->timer, loop, ascomp_timeout, ac) < 0) {
        weft__pool_put(pool, WEFT__POOL_ANY, ac, bytes);
        err = -ENOMEM;
    }
    if (err) {
        abandon_all(fs, n, false);
        weft__set_last_error(err);
        return NULL;
    }
    ac->loop = loop;
    ac->n = n;
    ac->handed = 0;
    ac->bytes = bytes;
    ac->order = (size_t *)(void *)(ac->e + n);
    ac->slots = (weft_future **)(void *)(ac->order + n);
    ac->ohead = ac->otail = ac->shead = ac->stail = 0;
    ac->expired = false;
    ac->timer_on = ns >= 0;
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        ac->e[i] = (entry){{{NULL, NULL}, ascomp_child_done}, ac, fs[i], false};
        if (fs[i]->state == WEFT__PENDING) {
            weft__future_wait(fs[i], &ac->e[i].node);
            left++;
        } else {
            ac->order[ac->otail++] = i;
        }
    }
    if (ac->timer_on) {
        if (left)
            weft_timer_start_ns(&ac->timer, ns, 0);
        else {
            weft_timer_close(&ac->timer);
            ac->timer_on = false;
        }
    }
    return ac;
}

weft_future *weft_as_completed_next(weft_as_completed *ac)
{
    if (!ac) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (ac->handed == ac->n) {
        weft__set_last_error(WEFT_EEMPTY);
        return NULL;
    }
    weft_future *slot = weft_future_new(ac->loop);
    if (!slot)
        return NULL;
    ac->handed++;
    ac->slots[ac->stail++] = weft_future_ref(slot);
    ascomp_deliver(ac);
    return slot;
}

void weft_as_completed_free(weft_as_completed *ac)
{
    if (!ac)
        return;
    if (ac->timer_on)
        weft_timer_close(&ac->timer);
    entries_detach(ac->e, ac->n);
    while (ac->shead < ac->stail) {
        weft_future *slot = ac->slots[ac->shead++];
        weft_future_cancel(slot);
        weft_future_unref(slot);
    }
    for (size_t i = 0; i < ac->n; i++)
        weft_future_unref(ac->e[i].f);
    weft__pool_put(weft__pool_of(ac->loop), WEFT__POOL_ANY, ac, ac->bytes);
}
