/* weft/sync.h - Event, Lock, Semaphore, BoundedSemaphore, Condition, Barrier.
 *
 * Hand-off semantics, strict FIFO, no barging.  When a waiter is woken,
 * what it waited for (the lock, a permit, its turn) is handed to it at the
 * wake-up: nobody can take it in between.  If the waiter is cancelled
 * before it runs, the hand-off goes to the next waiter or back to the
 * primitive: nothing is lost, nothing deadlocks (asyncio's P-8 history).
 *
 * A blocking operation takes a weft_waiter that lives in the caller's
 * frame and returns a future to await right away:
 *
 *     WEFT_AWAIT(self, weft_lock_acquire(&lock, &self->w));
 *     ... critical section ...
 *     weft_lock_release(&lock);
 *
 * So waiting costs no allocation: the waiter node is in the frame.  Await
 * it directly or through weft_wait_for / a timeout scope; the combinators
 * that keep futures (gather, wait, shield, as_completed) refuse waiter
 * futures (-EINVAL), and so does weft_future_set_* (WEFT_ESTATE): only the
 * primitive completes its waiters.  A waiter serves one operation at a
 * time: starting another while it is still queued fails (WEFT_ESTATE).
 * Zero a waiter before its first use (frames are zeroed).
 * Primitives belong to one loop and are not thread-safe.  Every init
 * returns 0 or -EINVAL; the *_waiters accessors count the waiters queued.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif


/* ---- Event ------------------------------------------------------------------ */

typedef struct weft_event {
    weft_loop *loop; /* private fields */
    weft_link waiters;
    bool set;
} weft_event;

/* Initialise an unset event bound to loop.  0 or -EINVAL. */
int weft_event_init(weft_event *e, weft_loop *loop);

/* Set the flag and wake every current waiter (in wait order).  A clear()
 * right after does not un-wake them.  0 or -EINVAL (NULL, uninitialised). */
int weft_event_set(weft_event *e);

/* Reset the flag; waiters already woken still succeed.  0 or -EINVAL. */
int weft_event_clear(weft_event *e);

/* True while the flag is set. */
bool weft_event_is_set(const weft_event *e);

/* Tasks waiting for the flag. */
size_t weft_event_waiters(const weft_event *e);

/* Wait until the flag is set (value .i = 1): the future is already done
 * if it is set.  NULL (weft_last_error) for NULL arguments. */
WEFT_NODISCARD weft_future *weft_event_wait(weft_event *e, weft_waiter *w);

/* ---- Lock ------------------------------------------------------------------ */

typedef struct weft_lock {
    weft_loop *loop; /* private fields */
    weft_link waiters;
    bool locked;
} weft_lock;

/* Initialise an unlocked lock bound to loop.  0 or -EINVAL. */
int weft_lock_init(weft_lock *l, weft_loop *loop);

/* Acquire: done at once if the lock is free and nobody waits; else queue
 * (FIFO).  A task calling acquire while others wait queues behind them.
 * Every blocking operation here returns NULL with weft_last_error() ==
 * -EINVAL for NULL arguments or when called from a task of another loop. */
WEFT_NODISCARD weft_future *weft_lock_acquire(weft_lock *l, weft_waiter *w);

/* Release: hands the lock to the first waiter, if any (it stays locked),
 * else unlocks.  Returns 0, -EINVAL or WEFT_ESTATE (not locked). */
int weft_lock_release(weft_lock *l);

/* True while held (including when just handed to a waiter). */
bool weft_lock_locked(const weft_lock *l);

/* Tasks queued for the lock. */
size_t weft_lock_waiters(const weft_lock *l);

/* Acquire inside a coroutine. */
#define WEFT_LOCK(self, l, w) WEFT_AWAIT(self, weft_lock_acquire((l), (w)))

/* ---- lock blocks (async with lock:) ----------------------------------------- */

/* A member of the frame for a lock, semaphore or condition block: the
 * acquire's waiter and what must be released on the way out.  Private. */
typedef struct weft_lock_block {
    weft_block blk;
    void *prim;
    uint8_t held, normal;
    weft_waiter w;
} weft_lock_block;

/* Acquire lock l, then run the block; WEFT_LOCK_END releases it on every
 * way out (the end, an error, a return, a cancellation), and whatever was
 * unwinding goes on.  `name` is a weft_lock_block member of the frame.
 *     WEFT_LOCK_BEGIN(self, guard, &self->lock);
 *         ... critical section, may await ...
 *     WEFT_LOCK_END(self, guard);                                         */
#define WEFT_LOCK_BEGIN(self, name, l) WEFT__ACQUIRE_BEGIN(self, name, (l), weft_lock_acquire)
#define WEFT_LOCK_END(self, name) WEFT__ACQUIRE_END(self, name, weft__lock_block_release)

/* Same for a semaphore permit (async with semaphore:). */
#define WEFT_SEMAPHORE_BEGIN(self, name, s) \
    WEFT__ACQUIRE_BEGIN(self, name, (s), weft_semaphore_acquire)
#define WEFT_SEMAPHORE_END(self, name) WEFT__ACQUIRE_END(self, name, weft__semaphore_block_release)

#define WEFT__ACQUIRE_BEGIN(self, name, p, acquire)                     \
    WEFT__BLOCK_DECLARE(name);                                          \
    WEFT__BLOCK_FRESH(&(self)->name.blk);                               \
    (self)->name.prim = (p);                                            \
    (self)->name.held = 0;                                              \
    WEFT_AWAIT(self, acquire((self)->name.prim, &(self)->name.w));      \
    (self)->name.held = 1;                                              \
    weft__co_block_enter(weft__co, &(self)->name.blk, WEFT__BLOCK_KEY(name))
#define WEFT__ACQUIRE_END(self, name, release)                          \
    WEFT__BLOCK_END(name, &(self)->name.blk, (self)->name.normal);                   \
    release(&(self)->name);                                             \
    WEFT__BLOCK_DONE((self)->name.normal)

void weft__lock_block_release(weft_lock_block *b);
void weft__semaphore_block_release(weft_lock_block *b);

/* ---- Semaphore and BoundedSemaphore -------------------------------------------- */

typedef struct weft_semaphore {
    weft_loop *loop; /* private fields */
    weft_link waiters;
    int64_t value;
    int64_t bound; /* initial value for a bounded semaphore, else -1 */
} weft_semaphore;

/* Initialise with value permits (>= 0, else -EINVAL). */
int weft_semaphore_init(weft_semaphore *s, weft_loop *loop, int64_t value);

/* Same, bounded: releasing above the initial value is an error. */
int weft_bounded_semaphore_init(weft_semaphore *s, weft_loop *loop, int64_t value);

/* Take a permit: done at once if one is free and nobody waits; else queue. */
WEFT_NODISCARD weft_future *weft_semaphore_acquire(weft_semaphore *s, weft_waiter *w);

/* Give a permit back: handed to the first waiter if any, else value+1.
 * Returns 0, -EINVAL, or -EOVERFLOW for a bounded semaphore already at its
 * initial value, or a count at INT64_MAX (the count is unchanged). */
int weft_semaphore_release(weft_semaphore *s);

/* True if acquire would wait. */
bool weft_semaphore_locked(const weft_semaphore *s);

/* Free permits. */
int64_t weft_semaphore_value(const weft_semaphore *s);

/* Tasks queued for a permit. */
size_t weft_semaphore_waiters(const weft_semaphore *s);

/* ---- Condition ------------------------------------------------------------------ */

typedef struct weft_condition {
    weft_lock *lock; /* private fields */
    weft_lock own;
    weft_link waiters;
} weft_condition;

/* Initialise a condition on lock, or on a lock of its own if lock is NULL.
 * 0 or -EINVAL. */
int weft_condition_init(weft_condition *c, weft_loop *loop, weft_lock *lock);

/* The condition's lock. */
weft_lock *weft_condition_lock(weft_condition *c);

/* Wake up to n waiters (FIFO); the caller must hold the lock.  Returns the
 * number woken, -EINVAL, or WEFT_ESTATE if the lock is not held. */
int weft_condition_notify(weft_condition *c, size_t n);
int weft_condition_notify_all(weft_condition *c);

/* Tasks waiting for a notification (not those woken and re-acquiring). */
size_t weft_condition_waiters(const weft_condition *c);

/* Wait (call inline with WEFT_CALL): release the lock, wait for a notify,
 * then re-acquire the lock before returning - also when the wait ends by
 * cancellation; result is 1.  Fails with WEFT_ESTATE if the lock is not
 * held (-EINVAL for a NULL cond).
 *     WEFT_CALL(self, weft_condition_wait, &self->cw, .cond = &c);        */
struct weft_condition_wait {
    WEFT_FRAME(int);
    weft_condition *cond; /* argument */
    weft_waiter w;        /* private */
    int err;              /* private */
};
WEFT_ASYNC_DECL(weft_condition_wait);

/* Wait until pred(arg) is true, re-checking after every notify; result is
 * 1.  Same locking rules as weft_condition_wait.
 *     WEFT_CALL(self, weft_condition_wait_for, &self->cw, .cond = &c,
 *               .pred = ready, .arg = self);                              */
struct weft_condition_wait_for {
    WEFT_FRAME(int);
    weft_condition *cond;             /* argument */
    bool (*pred)(void *arg);          /* argument */
    void *arg;                        /* argument */
    struct weft_condition_wait inner; /* private */
};
WEFT_ASYNC_DECL(weft_condition_wait_for);

/* ---- condition blocks (async with condition:) --------------------------------- */

/* A member of the frame for a condition block.  Private. */
typedef struct weft_condition_block {
    weft_lock_block lb; /* first: the block and the lock's waiter */
    struct weft_condition_wait cw;
    struct weft_condition_wait_for cwf;
} weft_condition_block;

/* Acquire condition c's lock, run the block, release it on every way out.
 * Inside, WEFT_CONDITION_WAIT(self, name) waits for a notification and
 * WEFT_CONDITION_WAIT_FOR(self, name, pred, arg) until pred(arg) is true
 * (both return holding the lock, also when they fail).
 *     WEFT_CONDITION_BEGIN(self, cb, &self->cond);
 *         while (!ready(self))
 *             WEFT_CONDITION_WAIT(self, cb);
 *         consume(self);
 *     WEFT_CONDITION_END(self, cb);                                       */
#define WEFT_CONDITION_BEGIN(self, name, c)                                                \
    WEFT__BLOCK_DECLARE(name);                                                             \
    WEFT__BLOCK_FRESH(&(self)->name.lb.blk);                                               \
    (self)->name.lb.prim = (c);                                                            \
    (self)->name.lb.held = 0;                                                              \
    WEFT_AWAIT(self, weft_lock_acquire(weft_condition_lock((self)->name.lb.prim),          \
                                       &(self)->name.lb.w));                               \
    (self)->name.lb.held = 1;                                                              \
    weft__co_block_enter(weft__co, &(self)->name.lb.blk, WEFT__BLOCK_KEY(name))
#define WEFT_CONDITION_WAIT(self, name) \
    WEFT_CALL(self, weft_condition_wait, &(self)->name.cw, .cond = (self)->name.lb.prim)
#define WEFT_CONDITION_WAIT_FOR(self, name, p, a)                                             \
    WEFT_CALL(self, weft_condition_wait_for, &(self)->name.cwf, .cond = (self)->name.lb.prim, \
              .pred = (p), .arg = (a))
#define WEFT_CONDITION_END(self, name)                                  \
    WEFT__BLOCK_END(name, &(self)->name.lb.blk, (self)->name.lb.normal);                \
    weft__condition_block_release(&(self)->name.lb);                    \
    WEFT__BLOCK_DONE((self)->name.lb.normal)

void weft__condition_block_release(weft_lock_block *b);

/* ---- Barrier ---------------------------------------------------------------------- */

typedef struct weft_barrier {
    weft_loop *loop; /* private fields */
    weft_link waiters;
    size_t parties, count;
    int state;
} weft_barrier;

/* Initialise a barrier for parties tasks (>= 1, else -EINVAL). */
int weft_barrier_init(weft_barrier *b, weft_loop *loop, size_t parties);

/* Wait until parties tasks are waiting; the value (.i) is the arrival
 * index 0..parties-1 (the last arriver releases everyone and does not
 * suspend).  Fails with WEFT_EBROKEN if the barrier is or becomes broken
 * (abort, or a waiter cancelled or timed out while the barrier fills; a
 * waiter cancelled after the release breaks nothing). */
WEFT_NODISCARD weft_future *weft_barrier_wait(weft_barrier *b, weft_waiter *w);

/* Break the barrier: current and future waiters fail with WEFT_EBROKEN
 * until reset.  Returns 0 or -EINVAL. */
int weft_barrier_abort(weft_barrier *b);

/* Return to the empty state; current waiters fail with WEFT_EBROKEN.
 * Returns 0 or -EINVAL. */
int weft_barrier_reset(weft_barrier *b);

/* Tasks waiting for the barrier to fill. */
size_t weft_barrier_n_waiting(const weft_barrier *b);

/* True after weft_barrier_abort (or a waiter left while it filled), until
 * weft_barrier_reset. */
bool weft_barrier_broken(const weft_barrier *b);

#ifdef __cplusplus
}
#endif
#endif
