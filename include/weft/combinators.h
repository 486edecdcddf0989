/* weft/combinators.h - sleep, gather, wait, wait_for, shield, as_completed,
 * timeout scopes and task groups.
 *
 * Every combinator that takes futures takes the references you pass (as
 * WEFT_AWAIT does): spawn inline and forget, or pass weft_future_ref(f) to
 * keep using f.  Constructors return NULL on failure with weft_last_error()
 * set; awaiting that NULL fails with the same error.  On a closed loop they
 * fail with WEFT_ECLOSED.
 *
 * Seconds, one rule everywhere (the loop's): NaN is -EINVAL; values beyond
 * the int64 nanosecond range, infinities included, saturate.  For the
 * `timeout` of wait, wait_for and as_completed a negative value means "no
 * timeout" (WEFT_NO_TIMEOUT), as does +INFINITY.
 */
#ifndef WEFT_COMBINATORS_H
#define WEFT_COMBINATORS_H

#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* No timeout, for the timeout arguments below. */
#define WEFT_NO_TIMEOUT (-1.0)

/* ---- sleep ------------------------------------------------------------------- */

/* A future that completes (value .i = 0) delay seconds from now, on the
 * loop clock.  delay <= 0 is a bare yield: awaiting it lets every other
 * ready callback run once (asyncio's sleep(0)).  Cancelling it drops its
 * timer.  NULL on failure (NaN delay: -EINVAL). */
WEFT_NODISCARD weft_future *weft_sleep(weft_loop *loop, double delay);

/* Nanosecond form of weft_sleep. */
WEFT_NODISCARD weft_future *weft_sleep_ns(weft_loop *loop, int64_t delay_ns);

/* asyncio.sleep(delay, result): a sleep whose value is result (any delay
 * <= 0 completes at the next timer step, not as a plain yield).  NaN:
 * NULL with -EINVAL. */
WEFT_NODISCARD weft_future *weft_sleep_result(weft_loop *loop, double delay, weft_value result);

/* Sleep inside a coroutine body: WEFT_AWAIT(self, weft_sleep(loop, delay)). */
#define WEFT_SLEEP(self, delay) WEFT_AWAIT(self, weft_sleep(weft_task_loop(task), (delay)))

/* ---- results of gather and wait ------------------------------------------------- */

/* The outcome of a gather or wait: one entry per future passed, in argument
 * order.  It is the value (.p) of the gather/wait future and lives as long
 * as that future: in a coroutine, read it right after the await with
 * WEFT_RESULT(self).p, before the next await. */
typedef struct weft_results weft_results;

/* Number of entries. */
size_t weft_results_count(const weft_results *r);

/* Outcome of entry i: 0 with *out set (out may be NULL), the future's error
 * code, -ECANCELED if it was cancelled, WEFT_ESTATE if it is still pending
 * (wait), -ERANGE if i is out of range, -EINVAL for NULL. */
int weft_results_get(const weft_results *r, size_t i, weft_value *out);

/* True if entry i is done (wait's "done" set). */
bool weft_results_done(const weft_results *r, size_t i);

/* Entry i's future (borrowed, valid while r is). */
weft_future *weft_results_future(const weft_results *r, size_t i);

/* ---- fd readiness ------------------------------------------------------------ */

/* A future that completes (value .i = WEFT_READABLE) the first time fd is
 * readable - or has hung up or failed, which a read then reports - and
 * removes its registration at that moment: one completion, however long
 * the fd stays ready (trio's wait_readable; the safe form of completing a
 * future from an add_reader callback).  Cancelling it removes the
 * registration at once; a wait nobody holds any more stays registered
 * (the loop holds it, as it holds a sleep) until it completes or the loop
 * closes.  Built on weft_add_reader: NULL with weft_last_error()
 * -EBUSY if fd already has a reader in this loop (it is never replaced),
 * -EEXIST if fd has a weft_io of its own, -EBADF, -EPERM (not pollable),
 * -ENOMEM, -EINVAL, WEFT_ECLOSED.  Close the fd only after the wait is
 * done or cancelled. */
WEFT_NODISCARD weft_future *weft_wait_readable(weft_loop *loop, int fd);

/* The same for writability (value .i = WEFT_WRITABLE), on weft_add_writer. */
WEFT_NODISCARD weft_future *weft_wait_writable(weft_loop *loop, int fd);

/* In a coroutine body: WEFT_AWAIT of the two above. */
#define WEFT_WAIT_READABLE(self, fd) WEFT_AWAIT(self, weft_wait_readable(weft_task_loop(task), (fd)))
#define WEFT_WAIT_WRITABLE(self, fd) WEFT_AWAIT(self, weft_wait_writable(weft_task_loop(task), (fd)))

/* ---- gather --------------------------------------------------------------------- */

enum {
    /* Never fail because of a child: wait for all, report each outcome in
     * the results (asyncio's return_exceptions=True). */
    WEFT_GATHER_ALL = 1u << 0,
};

/* Run fs[0..n) concurrently and complete when all are done, with a
 * weft_results value in argument order.  Default mode: the first child to
 * fail (in completion order) fails the gather with its error at once and
 * cancels the others.  A child cancelled by someone else is not a failure:
 * its entry reads -ECANCELED, and the gather itself succeeds.  Cancelling
 * the gather cancels every child still pending and makes the gather
 * CANCELLED at once (asyncio instead waits for the children to finish and
 * completes with a CancelledError); a task group waits.  n == 0 gives an
 * already done gather.  Takes the references in fs; if an entry is NULL
 * (its constructor failed) the gather is not made, weft_last_error() says
 * why, and the tasks among the others are cancelled.  A waiter of sync.h or
 * queue.h is refused (-EINVAL; it is withdrawn): await those directly.
 * Note: C leaves the evaluation order of an initializer list unspecified,
 * so `(weft_future *[]){WEFT_SPAWN(a), WEFT_SPAWN(b)}` may spawn b first;
 * spawn in separate statements when start order matters. */
WEFT_NODISCARD weft_future *weft_gather(weft_loop *loop, weft_future *const *fs, size_t n,
                                        unsigned flags);

/* ---- wait ----------------------------------------------------------------------- */

typedef enum weft_return_when {
    WEFT_ALL_COMPLETED = 0, /* when every future is done */
    WEFT_FIRST_COMPLETED,   /* when any is done (cancellation counts) */
    WEFT_FIRST_EXCEPTION,   /* when any fails (not a cancellation), else all */
} weft_return_when;

/* Wait for fs[0..n) under the return_when rule, or until timeout seconds
 * pass (< 0: none).  Never fails because of the futures and never cancels
 * them: the value is a weft_results whose weft_results_done says which
 * were done when it completed.  n must be > 0 and return_when valid
 * (-EINVAL); a NULL entry fails it with weft_last_error().  Takes the
 * references in fs. */
WEFT_NODISCARD weft_future *weft_wait(weft_loop *loop, weft_future *const *fs, size_t n,
                                      weft_return_when when, double timeout);

/* ---- wait_for, shield ------------------------------------------------------------- */

/* f's outcome, or -ETIMEDOUT after timeout seconds (< 0: none).  On
 * timeout f is cancelled and the result arrives only after f finished its
 * cleanup; if f produced a value anyway (completion wins a tie), the value
 * is delivered.  Cancelling the wait_for future cancels f and completes at
 * once, without waiting for f's cleanup (await f itself, or use a timeout
 * scope, to wait for it).  Takes f; f may be a waiter of sync.h/queue.h. */
WEFT_NODISCARD weft_future *weft_wait_for(weft_future *f, double timeout);

/* A future that mirrors f but whose cancellation does not reach f: the
 * awaiting task can be cancelled while f runs on.  If f is already done, f
 * itself is returned.  Takes f; a waiter is refused (-EINVAL, withdrawn). */
WEFT_NODISCARD weft_future *weft_shield(weft_future *f);

/* ---- as_completed ------------------------------------------------------------------ */

typedef struct weft_as_completed weft_as_completed;

/* Iterate fs[0..n) in completion order; timeout < 0: none.  Takes the
 * references in fs.  NULL on failure. */
WEFT_NODISCARD weft_as_completed *weft_as_completed_new(weft_loop *loop, weft_future *const *fs,
                                                        size_t n, double timeout);

/* A future for the next future to complete: its value is that future's
 * value (its error is that future's error; -ETIMEDOUT once the timeout
 * passed).  NULL (with weft_last_error() == WEFT_EEMPTY) when all were
 * handed out.  A next-future its holder cancels or completes is skipped:
 * the outcome goes to the next one. */
WEFT_NODISCARD weft_future *weft_as_completed_next(weft_as_completed *ac);

/* Release the iterator: the input futures are released (not cancelled),
 * and next() futures still pending are cancelled. */
void weft_as_completed_free(weft_as_completed *ac);

/* ---- timeout scopes ------------------------------------------------------------------ */

/* A timeout scope (asyncio's `async with timeout(d)`): a block of the body
 * (WEFT_TIMEOUT_BEGIN / WEFT_TIMEOUT_END) or a scope around one inline
 * child call (WEFT_TIMEOUT_CALL).  Lives in the frame; fields are private
 * but `when`. */
typedef struct weft_timeout {
    weft_block blk;   /* the block form's (first) */
    weft_timer timer; /* the deadline */
    weft_handle soon; /* a deadline already due expires through the ready queue */
    weft_task *task;
    int64_t when;  /* public: deadline (loop clock, ns); INT64_MAX = never */
    uint16_t base; /* the task's cancel count at entry */
    uint8_t state, normal;
} weft_timeout;

/* The block form: `name` is a weft_timeout member of the frame.
 *
 *     WEFT_TIMEOUT_BEGIN(self, to, 1.5);      // async with timeout(1.5):
 *         WEFT_AWAIT(self, fetch(...));        //     await fetch(...)
 *         WEFT_AWAIT(self, store(...));        //     await store(...)
 *     WEFT_TIMEOUT_END(self, to);
 *
 * When the deadline passes the task is cancelled; the cancellation, if it
 * unwinds out of the block, turns into -ETIMEDOUT at WEFT_TIMEOUT_END and
 * goes on unwinding; an outside cancellation stays -ECANCELED.
 * weft_timeout_reschedule and weft_timeout_expired work on it.  NaN is
 * -EINVAL (raised at BEGIN; the block is not entered).  See WEFT_TRY in
 * weft/co.h for what blocks may contain. */
#define WEFT_TIMEOUT_BEGIN(self, name, delay) WEFT__TIMEOUT_BEGIN(self, name, (delay), 0)
/* Same with an absolute deadline in loop seconds (asyncio timeout_at). */
#define WEFT_TIMEOUT_AT_BEGIN(self, name, when) WEFT__TIMEOUT_BEGIN(self, name, (when), 1)
#define WEFT__TIMEOUT_BEGIN(self, name, t, absolute)                                     \
    WEFT__BLOCK_DECLARE(name);                                                           \
    WEFT__BLOCK_FRESH(&(self)->name.blk);                                                \
    if (weft__timeout_open(&(self)->name, task, (t), (absolute), weft__co, __LINE__) < 0) \
        goto weft__unwind;                                                               \
    weft__co_block_enter(weft__co, &(self)->name.blk, WEFT__BLOCK_KEY(name))

/* End the block: close the scope; an error raised inside goes on
 * unwinding (-ETIMEDOUT for the scope's own expiry). */
#define WEFT_TIMEOUT_END(self, name)                              \
    WEFT__BLOCK_END(name, &(self)->name.blk, (self)->name.normal);             \
    weft__timeout_close(&(self)->name, weft__co);                 \
    WEFT__BLOCK_DONE((self)->name.normal)

/* Like WEFT_TIMEOUT_END, but store the error raised inside the block in
 * the int lvalue var (0: none; -ETIMEDOUT: expired) and go on after the
 * block instead of unwinding.  A cancellation is not caught. */
#define WEFT_TIMEOUT_TRY_END(self, name, var)                                            \
    WEFT__BLOCK_END(name, &(self)->name.blk, (self)->name.normal);                                    \
    weft__timeout_close(&(self)->name, weft__co);                                        \
    (var) = (self)->name.normal ? 0 : weft__co_block_error(weft__co, &(self)->name.blk); \
    if ((var) && (var) != -ECANCELED) {                                                  \
        weft__co_block_catch(weft__co, &(self)->name.blk);                               \
        (self)->name.normal = 1;                                                         \
    }                                                                                    \
    WEFT__BLOCK_DONE((self)->name.normal)

int weft__timeout_open(weft_timeout *scope, weft_task *task, double t, int absolute, weft_co *co,
                       int line);
void weft__timeout_close(weft_timeout *scope, weft_co *co);

/* Run child coroutine fn inline (as WEFT_CALL) under a timeout of delay
 * seconds (+INFINITY: none; <= 0: expires at once).  When it expires the
 * task is cancelled; once the child has unwound, the scope turns its own
 * cancellation into -ETIMEDOUT, which then propagates.  A cancellation from
 * outside stays -ECANCELED.  Inside WEFT_FINALLY, where cancellation is
 * masked, a scope cannot interrupt anything.  If the scope cannot be set up
 * (NaN: -EINVAL; -ENOMEM) the child is not entered and that is the error.
 *     WEFT_TIMEOUT_CALL(self, &self->to, 2.0, fetch, &self->f, .url = u); */
#define WEFT_TIMEOUT_CALL(self, scope, delay, ...) \
    WEFT__TIMEOUT_CALL(self, scope, (delay), 0, 0, NULL, __VA_ARGS__, )
/* Same, with an absolute deadline in loop seconds (asyncio timeout_at). */
#define WEFT_TIMEOUT_AT_CALL(self, scope, when, ...) \
    WEFT__TIMEOUT_CALL(self, scope, (when), 1, 0, NULL, __VA_ARGS__, )
/* Like WEFT_TIMEOUT_CALL, storing the outcome (0, -ETIMEDOUT, or the
 * child's error) in the int lvalue var instead of propagating it. */
#define WEFT_TRY_TIMEOUT_CALL(self, var, scope, delay, ...) \
    WEFT__TIMEOUT_CALL(self, scope, (delay), 0, 1, &(var), __VA_ARGS__, )
#define WEFT__TIMEOUT_CALL(self, scope, t, absolute, catching, var, fn, child, ...) \
    do {                                                                             \
        (void)weft__co_self(WEFT__SELF_CO(self));                                            \
        *(child) = (struct fn){.co = {.info = &fn##__info}, __VA_ARGS__};            \
        (child)->co.up = weft__co;                                                   \
        if (weft__timeout_enter((scope), task, (t), (absolute), &(child)->co))       \
            WEFT__SUSPEND(WEFT_CO_CALL, &(child)->co);                               \
        weft__timeout_exit((scope), &(child)->co);                                   \
        if (weft__co_call_end(weft__co, &(child)->co, (catching), (var)))            \
            goto weft__unwind;                                                       \
    } while (0)

/* Move the deadline of an active scope to when_ns (loop clock;
 * INT64_MAX: never).  A deadline in the past expires at the next
 * iteration.  Returns 0, -EINVAL, or WEFT_ESTATE if the scope is not
 * active (not entered, expired or exited). */
int weft_timeout_reschedule(weft_timeout *scope, int64_t when_ns);

/* True once the scope's deadline passed (also after exit). */
bool weft_timeout_expired(const weft_timeout *scope);

bool weft__timeout_enter(weft_timeout *scope, weft_task *task, double t, int absolute,
                         weft_co *child);
void weft__timeout_exit(weft_timeout *scope, weft_co *child);

/* ---- task groups ------------------------------------------------------------------------ */

/* A task group (asyncio's TaskGroup, libdill's bundle).  Lives in the
 * frame of the task that owns it:
 *
 *     weft_group_init(&self->g, task);
 *     WEFT_GROUP_SPAWN(&self->g, worker, .id = 1);
 *     WEFT_GROUP_SPAWN(&self->g, worker, .id = 2);
 *     ... the body may await ...
 *     WEFT_FINALLY;
 *     WEFT_GROUP_JOIN(self, &self->g);   // waits for every child
 *     WEFT_END;
 *
 * The first child to fail cancels its siblings and the owner (once, to
 * interrupt the body); the join waits for all children, undoes its own
 * cancellation of the owner, and the group's error becomes the frame's
 * error (the first child error, in completion order; else the body's).  A
 * child's cancellation is not an error.  Join in WEFT_FINALLY so that it
 * runs on every path.  A cancellation of the owner from outside cancels the
 * children, also while the owner waits in the join, and stays -ECANCELED.
 * Fields are private: use the functions. */
struct weft__group_slot;

typedef struct weft_group {
    weft_block blk; /* the block form's (first) */
    weft_loop *loop;
    weft_task *owner;
    weft_future **kids;             /* every child (references held until the join) */
    struct weft__group_slot *slots; /* per child: its outcome after the join; the
                                       child errors in completion order */
    size_t n, cap, active;          /* children, capacity, children still pending */
    size_t nerrors;                 /* child errors so far */
    int body_error;                 /* the error the body ended with, or 0 */
    int spawn_error;                /* the first failed spawn's error, or 0 */
    uint16_t base;                  /* the owner's cancel count at init */
    uint8_t state, flags, normal;
    weft_waiter join; /* the join's future */
} weft_group;

/* The block form (async with TaskGroup() as tg): `name` is a weft_group
 * member of the frame.  WEFT_GROUP_END joins: it waits for every child,
 * also when an error or a cancellation unwinds out of the block, and the
 * group's error (the first child error) then unwinds from there.
 *
 *     WEFT_GROUP_BEGIN(self, g);
 *         WEFT_GROUP_SPAWN(&self->g, worker, .id = 1);
 *         WEFT_GROUP_SPAWN(&self->g, worker, .id = 2);
 *     WEFT_GROUP_END(self, g);                                            */
#define WEFT_GROUP_BEGIN(self, name)                                                    \
    WEFT__BLOCK_DECLARE(name);                                                          \
    WEFT__BLOCK_FRESH(&(self)->name.blk);                                               \
    if (weft_group_init(&(self)->name, task) < 0) {                                     \
        weft__co_raise(weft__co, -EINVAL, __LINE__, 0);                                 \
        goto weft__unwind;                                                              \
    }                                                                                   \
    weft__co_block_enter(weft__co, &(self)->name.blk, WEFT__BLOCK_KEY(name))

#define WEFT_GROUP_END(self, name)                                                      \
    WEFT__BLOCK_END(name, &(self)->name.blk, (self)->name.normal);                                   \
    WEFT_GROUP_JOIN(self, &(self)->name);                                               \
    if (weft__co_block_error(weft__co, &(self)->name.blk))                              \
        (self)->name.normal = 0; /* the group failed */                                 \
    WEFT__BLOCK_DONE((self)->name.normal)

/* Enter a group owned by task.  0 or -EINVAL. */
int weft_group_init(weft_group *g, weft_task *owner);

/* Spawn coroutine fn in group g; returns the task (borrowed: the group
 * holds it until the join; read its outcome after the join with
 * weft_group_result) or NULL with weft_last_error(): WEFT_ESTATE if the
 * group is aborting, or its join has begun (nothing else happens: a child
 * cannot add siblings once the owner waits in the join); for a failed spawn
 * (-ENOMEM...) the join also cancels the other children and fails with
 * that error unless a child failed first. */
#define WEFT_GROUP_SPAWN(g, ...) WEFT__GROUP_SPAWN(g, __VA_ARGS__, )
#define WEFT__GROUP_SPAWN(g, fn, ...) \
    weft__group_spawn((g), &(struct fn){.co = {.info = &fn##__info}, __VA_ARGS__}.co)
weft_task *weft__group_spawn(weft_group *g, const weft_co *init);

/* Wait until every child of g is done, then set the frame's error from the
 * group and release the children.  Use once, normally in WEFT_FINALLY. */
#define WEFT_GROUP_JOIN(self, g)                                 \
    do {                                                         \
        WEFT_AWAIT(self, weft__group_join_begin((g), weft__co)); \
        weft__group_join_end((g), weft__co);                     \
    } while (0)

weft_future *weft__group_join_begin(weft_group *g, weft_co *co);
void weft__group_join_end(weft_group *g, weft_co *co);

/* Every child error, in completion order (C's ExceptionGroup): copies up
 * to n of them into out (out may be NULL) and returns how many there are.
 * A child's cancellation is not an error. */
size_t weft_group_errors(const weft_group *g, int *out, size_t n);

/* The error the owner's body ended with before the join (0 if none), kept
 * apart from the children's; or, if a spawn failed (-ENOMEM...), that
 * spawn's error. */
int weft_group_body_error(const weft_group *g);

/* How many children were spawned into g (refused spawns not counted).
 * Child i is the i-th successful WEFT_GROUP_SPAWN. */
size_t weft_group_size(const weft_group *g);

/* Child i's outcome once the group is joined: its value in *out (may be
 * NULL) and 0, or its error code (-ECANCELED for a cancelled child).
 * WEFT_ESTATE before the join, -EINVAL for i out of range.  The outcomes
 * live in the owner task's memory until the group is initialised again or
 * the task is released, so they stay readable after the task handles
 * (borrowed, released at the join) are gone. */
int weft_group_result(const weft_group *g, size_t i, weft_value *out);

#ifdef __cplusplus
}
#endif
#endif
