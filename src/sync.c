/* sync.c - Event, Lock, Semaphore, BoundedSemaphore, Condition, Barrier.
 *
 * One model for all five, the hand-off waiter of handoff.h: a blocking
 * operation turns the caller's weft_waiter (memory in the task's frame)
 * into a waiter future.  If the operation can complete at once, the future
 * is done right away and awaiting it does not suspend.  Else it goes to the
 * tail of the primitive's waiter list.
 *
 * Hand-off: whoever frees the resource (release, set, notify, the last
 * arrival at a barrier) pops the FIRST waiter, gives it the resource and
 * completes its future, in one step.  The lock stays locked, the permit
 * never reaches `value`: nobody can take it in between, so there is no
 * barging and no lost wake-up.  The waiter list holds only waiters that
 * were not served yet, so every operation here is O(1) per waiter served.
 * A waiter cancelled after it was served but before its task ran gives
 * the resource to the next waiter, or back (its kind's give_back).
 *
 * Nothing here allocates.  The primitives are not thread-safe.
 */
#include <limits.h>

#include "handoff.h"

static weft_value one(void)
{
    return (weft_value){.i = 1};
}

/* ---- Event ------------------------------------------------------------------------ */

/* handed: nothing to give back, the flag stays */
static const weft__handoff_kind event_kind = WEFT__HANDOFF_KIND("event waiter", NULL, NULL);

int weft_event_init(weft_event *e, weft_loop *loop)
{
    if (!e || !loop)
        return -EINVAL;
    e->loop = loop;
    weft__list_init(&e->waiters);
    e->set = false;
    return 0;
}

int weft_event_set(weft_event *e)
{
    if (!e || !e->loop)
        return -EINVAL;
    if (e->set)
        return 0;
    e->set = true;
    for (weft__handoff *h; (h = weft__handoff_dequeue(&e->waiters));)
        weft__handoff_serve(h, one());
    return 0;
}

int weft_event_clear(weft_event *e)
{
    if (!e || !e->loop)
        return -EINVAL;
    e->set = false;
    return 0;
}

bool weft_event_is_set(const weft_event *e)
{
    return e && e->set;
}

size_t weft_event_waiters(const weft_event *e)
{
    return e && e->loop ? weft__handoff_count(&e->waiters) : 0;
}

weft_future *weft_event_wait(weft_event *e, weft_waiter *w)
{
    if (!e || !e->loop) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft__handoff *h = weft__handoff_begin(w, e->loop, e, &event_kind);
    if (!h)
        return NULL;
    if (e->set)
        return weft__handoff_settle(h, one(), 0);
    weft__handoff_enqueue(&e->waiters, h);
    return &h->fut;
}

/* ---- Lock --------------------------------------------------------------------------- */

/* The holder lets go: the first waiter becomes the holder, else unlock. */
static void lock_pass(weft_lock *l)
{
    weft__handoff *h = weft__handoff_dequeue(&l->waiters);
    if (h)
        weft__handoff_serve(h, one()); /* stays locked: now it is h's */
    else
        l->locked = false;
}

static bool lock_give_back(weft__handoff *h)
{
    lock_pass(h->prim);
    return true;
}

static const weft__handoff_kind lock_kind =
    WEFT__HANDOFF_KIND("lock waiter", NULL, lock_give_back);

int weft_lock_init(weft_lock *l, weft_loop *loop)
{
    if (!l || !loop)
        return -EINVAL;
    l->loop = loop;
    weft__list_init(&l->waiters);
    l->locked = false;
    return 0;
}

weft_future *weft_lock_acquire(weft_lock *l, weft_waiter *w)
{
    if (!l || !l->loop) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft__handoff *h = weft__handoff_begin(w, l->loop, l, &lock_kind);
    if (!h)
        return NULL;
    if (!l->locked && weft__list_empty(&l->waiters)) {
        l->locked = true;
        return weft__handoff_settle(h, one(), 0);
    }
    weft__handoff_enqueue(&l->waiters, h);
    return &h->fut;
}

int weft_lock_release(weft_lock *l)
{
    if (!l || !l->loop)
        return -EINVAL;
    if (!l->locked)
        return WEFT_ESTATE;
    lock_pass(l);
    return 0;
}

bool weft_lock_locked(const weft_lock *l)
{
    return l && l->locked;
}

size_t weft_lock_waiters(const weft_lock *l)
{
    return l && l->loop ? weft__handoff_count(&l->waiters) : 0;
}

/* ---- Semaphore ------------------------------------------------------------------------ */

/* A permit comes back: to the first waiter, else to the count.  Invariant:
 * waiters are queued only while value == 0. */
static void sem_pass(weft_semaphore *s)
{
    weft__handoff *h = weft__handoff_dequeue(&s->waiters);
    if (h)
        weft__handoff_serve(h, one());
    else
        s->value++;
}

static bool sem_give_back(weft__handoff *h)
{
    sem_pass(h->prim);
    return true;
}

static const weft__handoff_kind sem_kind =
    WEFT__HANDOFF_KIND("semaphore waiter", NULL, sem_give_back);

static int sem_init(weft_semaphore *s, weft_loop *loop, int64_t value, int64_t bound)
{
    if (!s || !loop || value < 0)
        return -EINVAL;
    s->loop = loop;
    weft__list_init(&s->waiters);
    s->value = value;
    s->bound = bound;
    return 0;
}

int weft_semaphore_init(weft_semaphore *s, weft_loop *loop, int64_t value)
{
    return sem_init(s, loop, value, -1);
}

int weft_bounded_semaphore_init(weft_semaphore *s, weft_loop *loop, int64_t value)
{
    return sem_init(s, loop, value, value);
}

weft_future *weft_semaphore_acquire(weft_semaphore *s, weft_waiter *w)
{
    if (!s || !s->loop) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft__handoff *h = weft__handoff_begin(w, s->loop, s, &sem_kind);
    if (!h)
        return NULL;
    if (s->value > 0 && weft__list_empty(&s->waiters)) {
        s->value--;
        return weft__handoff_settle(h, one(), 0);
    }
    weft__handoff_enqueue(&s->waiters, h);
    return &h->fut;
}

int weft_semaphore_release(weft_semaphore *s)
{
    if (!s || !s->loop)
        return -EINVAL;
    if ((s->bound >= 0 && s->value >= s->bound) || s->value == INT64_MAX)
        return -EOVERFLOW;
    sem_pass(s);
    return 0;
}

bool weft_semaphore_locked(const weft_semaphore *s)
{
    return s && (s->value == 0 || !weft__list_empty(&s->waiters));
}

int64_t weft_semaphore_value(const weft_semaphore *s)
{
    return s ? s->value : 0;
}

size_t weft_semaphore_waiters(const weft_semaphore *s)
{
    return s && s->loop ? weft__handoff_count(&s->waiters) : 0;
}

/* ---- Condition ------------------------------------------------------------------------ */

/* Wake (serve) the first waiter not woken yet; false if there is none. */
static bool cond_wake_one(weft_condition *c)
{
    weft__handoff *h = weft__handoff_dequeue(&c->waiters);
    if (h)
        weft__handoff_serve(h, one());
    return h != NULL;
}

static bool cond_give_back(weft__handoff *h)
{
    cond_wake_one(h->prim); /* pass the notification on (3.13) */
    return true;
}

static const weft__handoff_kind cond_kind =
    WEFT__HANDOFF_KIND("condition waiter", NULL, cond_give_back);

int weft_condition_init(weft_condition *c, weft_loop *loop, weft_lock *lock)
{
    if (!c || (!loop && !lock))
        return -EINVAL;
    weft_lock_init(&c->own, loop ? loop : lock->loop);
    c->lock = lock ? lock : &c->own;
    weft__list_init(&c->waiters);
    return 0;
}

weft_lock *weft_condition_lock(weft_condition *c)
{
    return c ? c->lock : NULL;
}

int weft_condition_notify(weft_condition *c, size_t n)
{
    if (!c || !c->lock)
        return -EINVAL;
    if (!c->lock->locked)
        return WEFT_ESTATE;
    int woken = 0;
    while ((size_t)woken < n && woken < INT_MAX && cond_wake_one(c))
        woken++;
    return woken;
}

int weft_condition_notify_all(weft_condition *c)
{
    return weft_condition_notify(c, SIZE_MAX);
}

size_t weft_condition_waiters(const weft_condition *c)
{
    return c && c->lock ? weft__handoff_count(&c->waiters) : 0;
}

/* Queue the waiter, then release the lock (it may go straight to a task
 * queued on it).  From here on the frame's FINALLY owes a re-acquire. */
static weft_future *cond_wait_begin(struct weft_condition_wait *self)
{
    weft_condition *c = self->cond;
    weft__handoff *h = weft__handoff_begin(&self->w, c->lock->loop, c, &cond_kind);
    if (!h)
        return NULL;
    weft__handoff_enqueue(&c->waiters, h);
    weft_lock_release(c->lock);
    self->result = 1; /* the lock is out of our hands */
    return &h->fut;
}

/* result doubles as "the lock was released": FINALLY takes it back then.
 * The notification is awaited with a TRY form only to keep the error in
 * the frame; the task's own cancellation is not caught and unwinds to
 * FINALLY, which re-acquires anyway (cancellation is masked there). */
WEFT_ASYNC(weft_condition_wait)
{
    WEFT_BEGIN(self);
    if (!self->cond || !self->cond->lock)
        WEFT_THROW(self, -EINVAL);
    if (!self->cond->lock->locked)
        WEFT_THROW(self, WEFT_ESTATE);
    WEFT_TRY_AWAIT(self, cond_wait_begin(self), self->err);
    if (self->err)
        WEFT_THROW(self, self->err);
    WEFT_FINALLY;
    /* Through the lock's FIFO, like any acquire.  Retried if the await is
     * interrupted anyway (it must not be: cancellation is masked here),
     * because the caller is promised the lock on every exit. */
    while (self->result) {
        WEFT_TRY_AWAIT(self, weft_lock_acquire(self->cond->lock, &self->w), self->err);
        if (self->err != -ECANCELED)
            break;
    }
    if (self->err)
        WEFT_THROW(self, self->err); /* not reached: acquire cannot fail */
    WEFT_END;
}

WEFT_ASYNC(weft_condition_wait_for)
{
    WEFT_BEGIN(self);
    if (!self->cond || !self->cond->lock || !self->pred)
        WEFT_THROW(self, -EINVAL);
    if (!self->cond->lock->locked)
        WEFT_THROW(self, WEFT_ESTATE);
    while (!self->pred(self->arg))
        WEFT_CALL(self, weft_condition_wait, &self->inner, .cond = self->cond);
    WEFT_RETURN(self, 1);
    WEFT_END;
}

/* ---- Barrier ------------------------------------------------------------------------ */

enum { BARRIER_FILLING = 0, BARRIER_BROKEN = 1 };

/* Fail every waiter with WEFT_EBROKEN (arrival order) and empty the barrier. */
static void barrier_fail_all(weft_barrier *b)
{
    for (weft__handoff *h; (h = weft__handoff_dequeue(&b->waiters));)
        weft__handoff_fail(h, WEFT_EBROKEN);
    b->count = 0;
}

/* A waiter leaving while the barrier fills breaks it (threading.Barrier's
 * rule; see docs/sync.md): the others could never be released by a full
 * set of parties, and their arrival indexes would no longer add up.  A
 * waiter cancelled after the release has nothing to give back. */
static void barrier_leave(weft__handoff *h)
{
    weft_barrier *b = h->prim;
    weft__list_unlink(&h->q);
    b->state = BARRIER_BROKEN;
    barrier_fail_all(b);
}

static const weft__handoff_kind barrier_kind =
    WEFT__HANDOFF_KIND("barrier waiter", barrier_leave, NULL);

int weft_barrier_init(weft_barrier *b, weft_loop *loop, size_t parties)
{
    if (!b || !loop || parties < 1)
        return -EINVAL;
    b->loop = loop;
    weft__list_init(&b->waiters);
    b->parties = parties;
    b->count = 0;
    b->state = BARRIER_FILLING;
    return 0;
}

weft_future *weft_barrier_wait(weft_barrier *b, weft_waiter *w)
{
    if (!b || !b->loop) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft__handoff *h = weft__handoff_begin(w, b->loop, b, &barrier_kind);
    if (!h)
        return NULL;
    if (b->state == BARRIER_BROKEN)
        return weft__handoff_settle(h, (weft_value){0}, WEFT_EBROKEN);
    size_t index = b->count;
    if (index + 1 < b->parties) {
        h->item.i = (int64_t)index;
        b->count++;
        weft__handoff_enqueue(&b->waiters, h);
        return &h->fut;
    }
    /* The last arriver: it goes on at once, the others wake in arrival
     * order, and the barrier is empty again for the next round. */
    for (weft__handoff *o; (o = weft__handoff_dequeue(&b->waiters));)
        weft__handoff_serve(o, o->item);
    b->count = 0;
    return weft__handoff_settle(h, (weft_value){.i = (int64_t)index}, 0);
}

int weft_barrier_abort(weft_barrier *b)
{
    if (!b || !b->loop)
        return -EINVAL;
    b->state = BARRIER_BROKEN;
    barrier_fail_all(b);
    return 0;
}

int weft_barrier_reset(weft_barrier *b)
{
    if (!b || !b->loop)
        return -EINVAL;
    barrier_fail_all(b);
    b->state = BARRIER_FILLING;
    return 0;
}

size_t weft_barrier_n_waiting(const weft_barrier *b)
{
    return b ? b->count : 0;
}

bool weft_barrier_broken(const weft_barrier *b)
{
    return b && b->state == BARRIER_BROKEN;
}

/* ---- blocks -------------------------------------------------------------------------- */

void weft__lock_block_release(weft_lock_block *b)
{
    if (b->held) {
        b->held = 0;
        weft_lock_release(b->prim);
    }
}

void weft__semaphore_block_release(weft_lock_block *b)
{
    if (b->held) {
        b->held = 0;
        weft_semaphore_release(b->prim);
    }
}

void weft__condition_block_release(weft_lock_block *b)
{
    if (b->held) {
        b->held = 0;
        weft_lock_release(weft_condition_lock(b->prim));
    }
}
