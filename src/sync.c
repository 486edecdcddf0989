/* sync.c - Event, Lock, Semaphore, BoundedSemaphore, Condition, Barrier.
 *
 * One model for all five: a blocking operation turns the caller's
 * weft_waiter (memory in the task's frame) into a weft__handoff, a future
 * with an intrusive link.  If the operation can complete at once, the
 * future is completed right away and awaiting it does not suspend.  Else
 * the link goes to the tail of the primitive's waiter list.
 *
 * Hand-off: whoever frees the resource (release, set, notify, the last
 * arrival at a barrier) pops the FIRST waiter, gives it the resource and
 * completes its future, in one step.  The lock stays locked, the permit
 * never reaches `value`: nobody can take it in between, so there is no
 * barging and no lost wake-up.  The waiter list holds only waiters that
 * were not served yet, so every operation here is O(1) per waiter served.
 *
 * Cancellation goes through the waiter's cancelled() hook, called
 * synchronously by future.c / task.c:
 *   handed == false: the waiter was still queued; it leaves the queue.
 *   handed == true:  it was served but its task had not run yet, and will
 *                    see -ECANCELED; what it was given goes to the next
 *                    waiter, or back to the primitive.
 *
 * Nothing here allocates.  The primitives are not thread-safe.
 */
#include <limits.h>

#include "future_internal.h"

/* ---- waiters ---------------------------------------------------------------------- */

typedef void cancelled_fn(weft__handoff *h, bool handed);

static weft__handoff *handoff_of(weft_link *l)
{
    return (weft__handoff *)(void *)((char *)l - offsetof(weft__handoff, q));
}

/* Turn w into a pending waiter of prim.  NULL (-EINVAL) for a NULL waiter,
 * an uninitialised primitive, or a call from a task of another loop: its
 * await would be refused, and the node would be left in our queue. */
static weft__handoff *waiter_begin(weft_waiter *w, weft_loop *loop, void *prim,
                                   cancelled_fn *cancelled)
{
    weft_loop *running = weft_running_loop();
    if (!w || !loop || (running && running != loop)) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft__handoff *h = (weft__handoff *)(void *)w;
    weft__handoff_init(h, loop, prim, cancelled);
    return h;
}

static void enqueue(weft_link *waiters, weft__handoff *h)
{
    weft__list_push(waiters, &h->q);
}

/* Remove and return the first waiter, or NULL. */
static weft__handoff *dequeue(weft_link *waiters)
{
    if (weft__list_empty(waiters))
        return NULL;
    weft__handoff *h = handoff_of(waiters->next);
    weft__list_unlink(&h->q);
    return h;
}

/* Hand-off: complete h with value i.  Its task resumes in the next batch. */
static void serve(weft__handoff *h, int64_t i)
{
    h->item.i = i;
    weft_future_set_int(&h->fut, i);
}

static void leave_queue(weft__handoff *h)
{
    if (h->q.next)
        weft__list_unlink(&h->q);
}

/* ---- Event ------------------------------------------------------------------------ */

static void event_cancelled(weft__handoff *h, bool handed)
{
    if (!handed)
        leave_queue(h); /* handed: nothing to give back, the flag stays */
}

void weft_event_init(weft_event *e, weft_loop *loop)
{
    if (!e)
        return;
    e->loop = loop;
    weft__list_init(&e->waiters);
    e->set = false;
}

void weft_event_set(weft_event *e)
{
    if (!e || e->set)
        return;
    e->set = true;
    for (weft__handoff *h; (h = dequeue(&e->waiters));)
        serve(h, 1);
}

void weft_event_clear(weft_event *e)
{
    if (e)
        e->set = false;
}

bool weft_event_is_set(const weft_event *e)
{
    return e && e->set;
}

weft_future *weft_event_wait(weft_event *e, weft_waiter *w)
{
    weft__handoff *h = e ? waiter_begin(w, e->loop, e, event_cancelled) : NULL;
    if (!h) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (e->set)
        serve(h, 1);
    else
        enqueue(&e->waiters, h);
    return &h->fut;
}

/* ---- Lock --------------------------------------------------------------------------- */

/* The holder lets go: the first waiter becomes the holder, else unlock. */
static void lock_pass(weft_lock *l)
{
    weft__handoff *h = dequeue(&l->waiters);
    if (h)
        serve(h, 1); /* stays locked: now it is h's */
    else
        l->locked = false;
}

static void lock_cancelled(weft__handoff *h, bool handed)
{
    if (handed)
        lock_pass(h->prim);
    else
        leave_queue(h);
}

void weft_lock_init(weft_lock *l, weft_loop *loop)
{
    if (!l)
        return;
    l->loop = loop;
    weft__list_init(&l->waiters);
    l->locked = false;
}

weft_future *weft_lock_acquire(weft_lock *l, weft_waiter *w)
{
    weft__handoff *h = l ? waiter_begin(w, l->loop, l, lock_cancelled) : NULL;
    if (!h) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (!l->locked && weft__list_empty(&l->waiters)) {
        l->locked = true;
        serve(h, 1);
    } else {
        enqueue(&l->waiters, h);
    }
    return &h->fut;
}

int weft_lock_release(weft_lock *l)
{
    if (!l)
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

/* ---- Semaphore ------------------------------------------------------------------------ */

/* A permit comes back: to the first waiter, else to the count.  Invariant:
 * waiters are queued only while value == 0. */
static void sem_pass(weft_semaphore *s)
{
    weft__handoff *h = dequeue(&s->waiters);
    if (h)
        serve(h, 1);
    else
        s->value++;
}

static void sem_cancelled(weft__handoff *h, bool handed)
{
    if (handed)
        sem_pass(h->prim);
    else
        leave_queue(h);
}

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
    weft__handoff *h = s ? waiter_begin(w, s->loop, s, sem_cancelled) : NULL;
    if (!h) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (s->value > 0 && weft__list_empty(&s->waiters)) {
        s->value--;
        serve(h, 1);
    } else {
        enqueue(&s->waiters, h);
    }
    return &h->fut;
}

int weft_semaphore_release(weft_semaphore *s)
{
    if (!s)
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

/* ---- Condition ------------------------------------------------------------------------ */

/* Wake (serve) the first waiter not woken yet; false if there is none. */
static bool cond_wake_one(weft_condition *c)
{
    weft__handoff *h = dequeue(&c->waiters);
    if (h)
        serve(h, 1);
    return h != NULL;
}

static void cond_cancelled(weft__handoff *h, bool handed)
{
    if (handed)
        cond_wake_one(h->prim); /* pass the notification on (3.13) */
    else
        leave_queue(h);
}

void weft_condition_init(weft_condition *c, weft_loop *loop, weft_lock *lock)
{
    if (!c)
        return;
    weft_lock_init(&c->own, loop);
    c->lock = lock ? lock : &c->own;
    weft__list_init(&c->waiters);
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

/* Queue the waiter, then release the lock (it may go straight to a task
 * queued on it).  From here on the frame's FINALLY owes a re-acquire. */
static weft_future *cond_wait_begin(struct weft_condition_wait *self)
{
    weft_condition *c = self->cond;
    weft__handoff *h = waiter_begin(&self->w, c->lock->loop, c, cond_cancelled);
    if (!h)
        return NULL;
    enqueue(&c->waiters, h);
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
    for (weft__handoff *h; (h = dequeue(&b->waiters));)
        weft_future_set_error(&h->fut, WEFT_EBROKEN);
    b->count = 0;
}

/* A waiter leaving while the barrier fills breaks it (threading.Barrier's
 * rule; see docs/sync.md): the others could never be released by a full
 * set of parties, and their arrival indexes would no longer add up.  A
 * waiter cancelled after the release has nothing to give back. */
static void barrier_cancelled(weft__handoff *h, bool handed)
{
    if (handed)
        return;
    weft_barrier *b = h->prim;
    leave_queue(h);
    b->state = BARRIER_BROKEN;
    barrier_fail_all(b);
}

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
    weft__handoff *h = b ? waiter_begin(w, b->loop, b, barrier_cancelled) : NULL;
    if (!h) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (b->state == BARRIER_BROKEN) {
        weft_future_set_error(&h->fut, WEFT_EBROKEN);
        return &h->fut;
    }
    size_t index = b->count;
    if (index + 1 < b->parties) {
        h->item.i = (int64_t)index;
        b->count++;
        enqueue(&b->waiters, h);
        return &h->fut;
    }
    /* The last arriver: it goes on at once, the others wake in arrival
     * order, and the barrier is empty again for the next round. */
    serve(h, (int64_t)index);
    for (weft__handoff *o; (o = dequeue(&b->waiters));)
        serve(o, o->item.i);
    b->count = 0;
    return &h->fut;
}

int weft_barrier_abort(weft_barrier *b)
{
    if (!b)
        return -EINVAL;
    b->state = BARRIER_BROKEN;
    barrier_fail_all(b);
    return 0;
}

int weft_barrier_reset(weft_barrier *b)
{
    if (!b)
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
