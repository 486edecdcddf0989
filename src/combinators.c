/* combinators.c - sleep, gather, wait, wait_for, shield, as_completed,
 * timeout scopes and task groups, all built from futures, done callbacks and
 * cancel hooks. */
#include <math.h>

#include "future_internal.h"
#include "weft/combinators.h"

/* ---- sleep ------------------------------------------------------------------------- */

static void sleep_fire(void *arg)
{
    weft_future *f = arg; /* the node is back in the pool: aux is moot */
    weft_future_set_int(f, 0);
    weft_future_unref(f);
}

/* Cancel hook: the sleep was cancelled before its timer ran. */
static void sleep_cancelled(void *arg)
{
    weft__pooled *c = arg;
    weft_future *f = c->t.h.arg;
    weft_timer_stop(&c->t); /* armed, or expired and queued */
    weft__call_put(c->t.loop, c);
    weft_future_unref(f);
}

weft_future *weft_sleep_ns(weft_loop *loop, int64_t delay_ns)
{
    if (!loop) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (weft__closed(loop)) {
        weft__set_last_error(WEFT_ECLOSED);
        return NULL;
    }
    if (delay_ns <= 0) {
        /* One shared, immortal done future: awaiting it requeues the task
         * once.  No allocation per sleep(0). */
        weft_future *y = loop->yield_future;
        if (!y) {
            y = weft_future_new(loop);
            if (!y)
                return NULL;
            y->flags |= WEFT__F_YIELD | WEFT__F_STORAGE;
            y->state = WEFT_DONE;
            y->refs = UINT32_MAX / 2; /* never reaches 0 */
            loop->yield_future = y;
        }
        return weft_future_ref(y);
    }
    weft_future *f = weft_future_new(loop);
    if (!f)
        return NULL;
    weft_call tok;
    int err = weft_call_later_ns(loop, delay_ns, sleep_fire, f, &tok);
    if (!err) {
        err = weft__future_on_cancel(f, sleep_cancelled, tok.p);
        if (err)
            weft_call_cancel(loop, tok);
    }
    if (err) {
        weft_future_unref(f);
        weft__set_last_error(err);
        return NULL;
    }
    weft_future_ref(f); /* the timer's reference */
    ((weft__pooled *)tok.p)->aux = f;
    return f;
}

weft_future *weft_sleep(weft_loop *loop, double delay)
{
    if (isnan(delay)) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    return weft_sleep_ns(loop, delay >= 9.2e9 ? INT64_MAX : (int64_t)(delay * 1e9));
}

/* Move f's outcome into dst (which must be pending). f's pointer value, if
 * it has a destructor, changes owner. */
static void copy_outcome(weft_future *dst, weft_future *f)
{
    f->flags |= WEFT__F_OBSERVED;
    if (f->state == WEFT_CANCELLED)
        weft_future_cancel(dst);
    else if (f->err)
        weft_future_set_error(dst, f->err);
    else {
        weft_dtor *dtor = NULL;
        if (!(f->flags & WEFT__F_TASK)) {
            dtor = f->u.done.dtor;
            f->u.done.dtor = NULL;
        }
        weft_future_set_result(dst, f->u.done.v);
        dst->u.done.dtor = dtor; /* the pointer changes owner */
    }
}

/* A waiter node embedded in a combinator's state, linked into a child's
 * waiter list: no allocation per child, nothing to fail half way. */
typedef struct entry {
    weft_node node;
    struct weft_results *m;
    weft_future *f;
    bool done; /* snapshot at completion (wait's done set) */
} entry;

/* ---- gather, wait, as_completed: one state type ------------------------------------ */

enum { GATHER, WAIT, ASCOMP };

struct weft_results {
    weft_loop *loop;
    weft_future *outer; /* gather / wait future (we hold a ref while children pend) */
    size_t n, left;     /* entries, entries still pending */
    int kind;
    unsigned flags;
    weft_return_when when;
    bool value_held; /* the outer's value points at us */
    weft_call timer;
    bool timer_armed, expired;
    /* as_completed: completed entries not handed out, and waiting slots */
    size_t *order, ohead, otail;
    weft_future **slots;
    size_t shead, stail, handed;
    entry e[];
};

static void results_free(weft_results *m)
{
    for (size_t i = 0; i < m->n; i++)
        weft_future_unref(m->e[i].f);
    weft_loop *loop = m->loop;
    weft__free(loop, m->order);
    weft__free(loop, m->slots);
    weft__free(loop, m);
}

static void results_dtor(void *p)
{
    weft_results *m = p;
    m->value_held = false;
    if (m->left == 0)
        results_free(m);
}

static void disarm(weft_results *m)
{
    if (m->timer_armed) {
        weft_call_cancel(m->loop, m->timer);
        m->timer_armed = false;
    }
}

/* No child callback will come any more: drop our reference to the outer
 * future, and free the state unless the outer's value still points at it. */
static void settle(weft_results *m)
{
    weft_future *outer = m->outer;
    m->outer = NULL;
    if (!m->value_held)
        results_free(m);
    weft_future_unref(outer);
}

/* Stop listening to the children still pending (wait: once it completed,
 * later completions change nothing, and a child that never completes must
 * not keep the state alive).  The references stay until the state goes. */
static void detach(weft_results *m)
{
    for (size_t i = 0; i < m->n; i++)
        if (weft__node_linked(&m->e[i].node))
            weft__node_unlink(&m->e[i].node);
    m->left = 0;
}

static void finish_value(weft_results *m)
{
    disarm(m);
    for (size_t i = 0; i < m->n; i++)
        m->e[i].done = m->e[i].f->state != WEFT_PENDING;
    m->value_held = true;
    weft_future_set_ptr(m->outer, m, results_dtor);
    if (m->kind == WAIT)
        detach(m);
}

static void child_done(weft_node *n);
static void outer_cancelled(void *arg);

static weft_results *results_new(weft_loop *loop, weft_future *const *fs, size_t n, int kind)
{
    weft_results *m = NULL;
    int err = 0;
    if (!loop || (n && !fs))
        err = -EINVAL;
    else if (weft__closed(loop))
        err = WEFT_ECLOSED;
    for (size_t i = 0; !err && i < n; i++)
        if (!fs[i])
            err = weft_last_error() ? weft_last_error() : -ENOMEM;
        else if (fs[i]->loop != loop || (fs[i]->flags & WEFT__F_HANDOFF))
            err = -EINVAL; /* a frame's waiter must be awaited directly */
    if (!err) {
        /* fs holds n pointers, but an entry is several times bigger: where
         * size_t is 32 bits the product can wrap (n > ~178 million). */
        if (n <= (SIZE_MAX - sizeof *m) / sizeof m->e[0])
            m = weft__alloc(loop, sizeof *m + n * sizeof m->e[0]);
        if (!m)
            err = -ENOMEM;
    }
    if (!err) {
        *m = (weft_results){.loop = loop, .n = n, .kind = kind};
        if (kind != ASCOMP) {
            m->outer = weft_future_new(loop);
            if (!m->outer || weft__future_on_cancel(m->outer, outer_cancelled, m) < 0)
                err = -ENOMEM;
        } else {
            m->order = weft__alloc(loop, (n ? n : 1) * sizeof *m->order);
            m->slots = weft__alloc(loop, (n ? n : 1) * sizeof *m->slots);
            if (!m->order || !m->slots)
                err = -ENOMEM;
        }
    }
    if (err) {
        for (size_t i = 0; fs && i < n; i++) {
            if (kind == GATHER && weft_is_task(fs[i]))
                weft_task_cancel(fs[i]); /* ours to run, and we cannot */
            weft_future_unref(fs[i]);
        }
        if (m) {
            weft_future_unref(m->outer);
            weft__free(loop, m->order);
            weft__free(loop, m->slots);
            weft__free(loop, m);
        }
        weft__set_last_error(err);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        m->e[i] = (entry){{{NULL, NULL}, child_done}, m, fs[i], false};
        if (fs[i]->state == WEFT_PENDING) {
            weft__future_wait(fs[i], &m->e[i].node);
            m->left++;
        }
    }
    return m;
}

static void cancel_children(weft_results *m)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].f->state == WEFT_PENDING)
            weft_future_cancel(m->e[i].f);
}

/* Cancel hook of the outer future. */
static void outer_cancelled(void *arg)
{
    weft_results *m = arg;
    disarm(m);
    if (m->kind == GATHER) {
        cancel_children(m); /* their callbacks settle the state */
    } else {
        detach(m); /* wait cancels nothing */
        settle(m);
    }
}

static bool wait_satisfied(weft_results *m, weft_future *f)
{
    switch (m->when) {
    case WEFT_FIRST_COMPLETED:
        return true;
    case WEFT_FIRST_EXCEPTION:
        return (f->err && f->state != WEFT_CANCELLED) || m->left == 0;
    default:
        return m->left == 0;
    }
}

static void ascomp_deliver(weft_results *m);

static void child_done(weft_node *n)
{
    entry *e = (entry *)(void *)n;
    weft_results *m = e->m;
    weft_future *f = e->f;
    m->left--;
    if (m->kind == ASCOMP) {
        m->order[m->otail++] = (size_t)(e - m->e);
        ascomp_deliver(m);
    } else if (m->outer->state == WEFT_PENDING) {
        if (m->kind == GATHER) {
            if (f->err && f->state != WEFT_CANCELLED && !(m->flags & WEFT_GATHER_ALL)) {
                f->flags |= WEFT__F_OBSERVED;
                disarm(m);
                weft_future_set_error(m->outer, f->err);
                cancel_children(m);
            } else if (m->left == 0) {
                finish_value(m);
            }
        } else if (wait_satisfied(m, f)) {
            finish_value(m);
        }
    }
    if (m->left == 0 && m->kind != ASCOMP)
        settle(m);
}

weft_future *weft_gather(weft_loop *loop, weft_future *const *fs, size_t n, unsigned flags)
{
    weft_results *m = results_new(loop, fs, n, GATHER);
    if (!m)
        return NULL;
    m->flags = flags;
    weft_future *outer = weft_future_ref(m->outer);
    /* children already done are accounted for at once (asyncio 3.12) */
    for (size_t i = 0; i < n && !(flags & WEFT_GATHER_ALL); i++) {
        weft_future *f = m->e[i].f;
        if (f->state == WEFT_DONE && f->err) {
            f->flags |= WEFT__F_OBSERVED;
            weft_future_set_error(outer, f->err);
            cancel_children(m);
            break;
        }
    }
    if (m->left == 0) {
        if (outer->state == WEFT_PENDING)
            finish_value(m);
        settle(m);
    }
    return outer;
}

static void wait_timeout(void *arg)
{
    weft_results *m = arg;
    m->timer_armed = false;
    m->expired = true;
    if (m->kind == ASCOMP) {
        ascomp_deliver(m);
    } else if (m->outer && m->outer->state == WEFT_PENDING) {
        finish_value(m); /* wait: detaches */
        settle(m);
    }
}

static int arm(weft_results *m, double timeout)
{
    if (timeout < 0 || isnan(timeout))
        return 0;
    int64_t ns = timeout >= 9.2e9 ? INT64_MAX : (int64_t)(timeout * 1e9);
    int err = weft_call_later_ns(m->loop, ns, wait_timeout, m, &m->timer);
    m->timer_armed = err == 0;
    return err;
}

weft_future *weft_wait(weft_loop *loop, weft_future *const *fs, size_t n, weft_return_when when,
                       double timeout)
{
    if (n == 0 || (unsigned)when > WEFT_FIRST_EXCEPTION) {
        for (size_t i = 0; fs && i < n; i++)
            weft_future_unref(fs[i]);
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft_results *m = results_new(loop, fs, n, WAIT);
    if (!m)
        return NULL;
    m->when = when;
    weft_future *outer = weft_future_ref(m->outer);
    bool now = m->left == 0;
    for (size_t i = 0; i < n && !now && when != WEFT_ALL_COMPLETED; i++)
        now = m->e[i].f->state != WEFT_PENDING && wait_satisfied(m, m->e[i].f);
    if (now) {
        finish_value(m); /* detaches */
    } else if (arm(m, timeout) < 0) {
        weft_future_set_error(outer, -ENOMEM);
        detach(m);
    }
    if (m->left == 0)
        settle(m);
    return outer;
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

/* ---- as_completed ------------------------------------------------------------------------ */

static void ascomp_deliver(weft_results *m)
{
    while (m->shead < m->stail && (m->ohead < m->otail || m->expired)) {
        weft_future *slot = m->slots[m->shead++];
        if (m->ohead < m->otail)
            copy_outcome(slot, m->e[m->order[m->ohead++]].f);
        else
            weft_future_set_error(slot, -ETIMEDOUT);
        weft_future_unref(slot);
    }
}

weft_as_completed *weft_as_completed_new(weft_loop *loop, weft_future *const *fs, size_t n,
                                         double timeout)
{
    weft_results *m = results_new(loop, fs, n, ASCOMP);
    if (!m)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (fs[i]->state != WEFT_PENDING)
            m->order[m->otail++] = i;
    if (m->left && arm(m, timeout) < 0) {
        weft_as_completed_free((weft_as_completed *)m);
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    return (weft_as_completed *)m;
}

weft_future *weft_as_completed_next(weft_as_completed *ac)
{
    weft_results *m = (weft_results *)ac;
    if (!m) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (m->handed == m->n) {
        weft__set_last_error(WEFT_EEMPTY);
        return NULL;
    }
    weft_future *slot = weft_future_new(m->loop);
    if (!slot)
        return NULL;
    m->handed++;
    m->slots[m->stail++] = weft_future_ref(slot);
    ascomp_deliver(m);
    return slot;
}

void weft_as_completed_free(weft_as_completed *ac)
{
    weft_results *m = (weft_results *)ac;
    if (!m)
        return;
    disarm(m);
    for (size_t i = 0; i < m->n; i++)
        if (weft__node_linked(&m->e[i].node))
            weft__node_unlink(&m->e[i].node);
    while (m->shead < m->stail) {
        weft_future *slot = m->slots[m->shead++];
        weft_future_cancel(slot);
        weft_future_unref(slot);
    }
    results_free(m);
}

/* ---- wait_for and shield ------------------------------------------------------------------ */

typedef struct relay {
    weft_node node; /* in inner's waiter list */
    weft_loop *loop;
    weft_future *outer, *inner;
    weft_call timer;
    bool timer_armed, expired, shield;
    bool finishing; /* relay_done is completing outer: ignore its hook */
} relay;

static void relay_free(relay *r)
{
    if (r->timer_armed)
        weft_call_cancel(r->loop, r->timer);
    weft_future_unref(r->inner);
    weft_future_unref(r->outer);
    weft__free(r->loop, r);
}

/* inner finished */
static void relay_done(weft_node *n)
{
    relay *r = (relay *)(void *)n;
    weft_future *in = r->inner;
    r->finishing = true;
    if (r->outer->state == WEFT_PENDING) {
        if (r->expired && (in->state == WEFT_CANCELLED || in->err == -ECANCELED)) {
            in->flags |= WEFT__F_OBSERVED;
            weft_future_set_error(r->outer, -ETIMEDOUT);
        } else {
            copy_outcome(r->outer, in);
        }
    }
    relay_free(r);
}

/* outer cancelled from outside */
static void relay_outer_cancelled(void *arg)
{
    relay *r = arg;
    if (r->finishing)
        return; /* relay_done mirrors inner's cancellation: it frees r */
    if (r->timer_armed) {
        weft_call_cancel(r->loop, r->timer);
        r->timer_armed = false;
    }
    if (r->shield) {
        weft__node_unlink(&r->node); /* let inner run on, unobserved by us */
        relay_free(r);
        return;
    }
    if (r->inner->state == WEFT_PENDING)
        weft_future_cancel(r->inner);
    else if ((r->inner->flags & WEFT__F_HANDOFF) && !weft__handoff_rollback(r->inner) &&
             r->inner->state == WEFT_DONE) {
        /* a hand-off that cannot be given back (a put whose item was
         * already got): report it done rather than have the caller believe
         * it failed; the cancellation lands at its next suspension.  (A
         * plain inner future simply keeps its value.) */
        weft__node_unlink(&r->node);
        relay_done(&r->node);
        return;
    }
    if (r->inner->state != WEFT_PENDING) {
        /* finished at once (a plain future, a waiter): done here, so that
         * nothing of ours outlives the awaiting frame */
        weft__node_unlink(&r->node);
        r->inner->flags |= WEFT__F_OBSERVED;
        relay_free(r);
    } /* else a task unwinding: relay_done frees r later */
}

static void relay_timeout(void *arg)
{
    relay *r = arg;
    r->timer_armed = false;
    r->expired = true;
    if (r->inner->state != WEFT_PENDING)
        return; /* completed in this same iteration: its value wins */
    weft_future_cancel(r->inner);
    if (r->inner->state != WEFT_PENDING) {
        weft__node_unlink(&r->node); /* queued by the cancel: finish now */
        relay_done(&r->node);
    }
}

static weft_future *relay_new(weft_future *f, double timeout, bool shield)
{
    if (!f)
        return NULL;
    if (shield && (f->flags & WEFT__F_HANDOFF)) {
        weft_future_unref(f); /* a frame's waiter cannot outlive its frame */
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (f->state != WEFT_PENDING)
        return f; /* already done: its own outcome */
    weft_loop *loop = f->loop;
    relay *r = weft__alloc(loop, sizeof *r);
    weft_future *outer = r ? weft_future_new(loop) : NULL;
    int err = outer ? 0 : -ENOMEM;
    if (!err) {
        *r = (relay){
            {{NULL, NULL}, relay_done}, loop, outer, f, {NULL, 0}, false, false, shield, false};
        err = weft__future_on_cancel(outer, relay_outer_cancelled, r);
    }
    if (!err && !shield && timeout >= 0) {
        int64_t ns = timeout >= 9.2e9 ? INT64_MAX : (int64_t)(timeout * 1e9);
        err = weft_call_later_ns(loop, ns, relay_timeout, r, &r->timer);
        r->timer_armed = err == 0;
    }
    if (err) {
        weft_future_unref(outer);
        weft__free(loop, r);
        weft_future_unref(f);
        weft__set_last_error(err);
        return NULL;
    }
    weft__future_wait(f, &r->node);
    return weft_future_ref(outer);
}

weft_future *weft_wait_for(weft_future *f, double timeout)
{
    if (f && isnan(timeout)) {
        weft_future_unref(f);
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    return relay_new(f, timeout, false);
}

weft_future *weft_shield(weft_future *f)
{
    return relay_new(f, -1, true);
}

/* ---- timeout scopes ----------------------------------------------------------------------- */

enum { TO_ACTIVE = 1, TO_EXPIRED = 2, TO_EXITED = 4 };

int64_t weft__deadline(weft_task *task, double delay)
{
    if (isnan(delay) || delay >= 9.2e9)
        return INT64_MAX;
    int64_t now = weft_loop_now(weft_task_loop(task));
    int64_t d = delay <= 0 ? 0 : (int64_t)(delay * 1e9);
    return now > INT64_MAX - d ? INT64_MAX : now + d;
}

int64_t weft__abs_deadline(double when)
{
    if (isnan(when) || when >= 9.2e9)
        return INT64_MAX;
    return when <= -9.2e9 ? INT64_MIN : (int64_t)(when * 1e9);
}

/* A deadline already due expires through the ready queue, ahead of what
 * the task queues next (asyncio's call_soon(_on_timeout)); a later one
 * through the heap. */
static void arm_scope(weft_timeout *s, int64_t when)
{
    weft_timer_stop(&s->timer);
    if (when == INT64_MAX)
        return;
    if (when <= weft_loop_now(s->task->loop))
        weft_handle_schedule(s->task->loop, &s->timer.h);
    else
        weft_timer_start_at(&s->timer, when, 0);
}

static void timeout_fire(void *arg)
{
    weft_timeout *s = arg;
    if (s->state == TO_ACTIVE) {
        s->state = TO_ACTIVE | TO_EXPIRED;
        weft_task_cancel(s->task);
    }
}

bool weft__timeout_enter(weft_timeout *s, weft_task *task, int64_t when, weft_co *child)
{
    *s = (weft_timeout){.task = task, .when = when, .base = task->cancel_requests};
    int err = weft_timer_init(task->loop, &s->timer, timeout_fire, s);
    if (err) {
        child->err = err;
        s->state = TO_EXITED;
        return false;
    }
    s->state = TO_ACTIVE;
    arm_scope(s, when);
    return true;
}

void weft__timeout_exit(weft_timeout *s, weft_co *child)
{
    if (s->state & TO_EXITED)
        return;
    weft_timer_close(&s->timer);
    if (s->state & TO_EXPIRED) {
        weft_task_uncancel(s->task);
        if (child->err == -ECANCELED && s->task->cancel_requests <= s->base)
            child->err = -ETIMEDOUT; /* our own cancellation, and only ours */
    }
    s->state |= TO_EXITED;
}

int weft_timeout_reschedule(weft_timeout *s, int64_t when_ns)
{
    if (!s)
        return -EINVAL;
    if (s->state != TO_ACTIVE)
        return WEFT_ESTATE;
    s->when = when_ns;
    arm_scope(s, when_ns);
    return 0;
}

bool weft_timeout_expired(const weft_timeout *s)
{
    return s && (s->state & TO_EXPIRED);
}

/* ---- task groups ----------------------------------------------------------------------------- */

void weft_group_init(weft_group *g, weft_task *owner)
{
    if (!g)
        return;
    *g = (weft_group){.owner = owner};
    if (owner) {
        g->loop = owner->loop;
        g->base = owner->cancel_requests;
    }
}

bool weft__group_ok(weft_group *g)
{
    if (!g || !g->loop) {
        weft__set_last_error(-EINVAL);
        return false;
    }
    if (g->aborting || (g->joined && g->joined->state != WEFT_PENDING)) {
        weft__set_last_error(WEFT_ESTATE);
        return false;
    }
    return true;
}

static void group_abort(weft_group *g)
{
    if (g->aborting)
        return;
    g->aborting = 1;
    for (size_t i = 0; i < g->n; i++)
        if (g->kids[i]->state == WEFT_PENDING)
            weft_task_cancel(g->kids[i]);
    if (g->owner->state == WEFT_PENDING && !g->cancelled_owner) {
        g->cancelled_owner = 1;
        weft_task_cancel(g->owner); /* interrupt the body once */
    }
}

static void group_record(weft_group *g, int err)
{
    if (g->nerrors < sizeof g->errors / sizeof g->errors[0])
        g->errors[g->nerrors] = err;
    g->nerrors++;
}

static void group_child_done(weft_future *t, void *arg)
{
    weft_group *g = arg;
    g->active--;
    t->flags |= WEFT__F_OBSERVED;
    if (t->err && t->state != WEFT_CANCELLED) {
        group_record(g, t->err);
        group_abort(g);
    }
    if (g->active == 0 && g->joined && g->joined->state == WEFT_PENDING)
        weft_future_set_int(g->joined, 0);
}

weft_task *weft__group_add(weft_group *g, weft_task *t)
{
    if (!t) {
        if (g && g->loop) {
            g->spawn_failed = 1;
            group_record(g, weft_last_error() ? weft_last_error() : -ENOMEM);
        }
        return NULL;
    }
    int err = 0;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        weft_future **k = weft__realloc(g->loop, g->kids, cap * sizeof *k);
        if (!k)
            err = -ENOMEM;
        else {
            g->kids = k;
            g->cap = cap;
        }
    }
    if (!err)
        err = weft_future_add_done_callback(t, group_child_done, g);
    if (err) {
        weft_task_cancel(t); /* cannot track it: do not let it run loose */
        weft_future_unref(t);
        g->spawn_failed = 1;
        group_record(g, err);
        weft__set_last_error(err);
        return NULL;
    }
    g->kids[g->n++] = t;
    g->active++;
    return t;
}

weft_future *weft__group_join_begin(weft_group *g, weft_co *co)
{
    if (!g || !g->loop) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (co->err || g->spawn_failed)
        group_abort(g); /* the body failed or was cancelled: stop the children */
    g->joined = weft_future_new(g->loop);
    if (!g->joined)
        return NULL;
    if (g->active == 0)
        weft_future_set_int(g->joined, 0);
    return weft_future_ref(g->joined);
}

void weft__group_join_end(weft_group *g, weft_co *co)
{
    if (!g || !g->loop)
        return;
    if (g->cancelled_owner) {
        weft_task_uncancel(g->owner);
        g->cancelled_owner = 0;
    }
    if (g->nerrors) {
        /* the first child error wins over the body's error and over a
         * cancellation (an outside one stays counted: the task still ends
         * cancelled at its next suspension, as in asyncio 3.13) */
        co->err = g->errors[0];
        co->err_line = co->line;
    }
    for (size_t i = 0; i < g->n; i++) {
        weft_future_remove_done_callback(g->kids[i], group_child_done, g);
        weft_future_unref(g->kids[i]);
    }
    weft__free(g->loop, g->kids);
    g->kids = NULL;
    g->n = g->cap = 0;
    weft_future_unref(g->joined);
    g->joined = NULL;
    g->aborting = 1; /* no more spawns */
}

size_t weft_group_errors(const weft_group *g, int *out, size_t n)
{
    if (!g)
        return 0;
    size_t k = g->nerrors < 8 ? g->nerrors : 8;
    for (size_t i = 0; out && i < n && i < k; i++)
        out[i] = g->errors[i];
    return g->nerrors;
}
