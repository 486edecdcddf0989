/* weft/task.h - tasks: futures that drive a coroutine, and the macros that
 * await inside coroutine bodies.
 *
 * A task is a weft_future (weft_task is the same type), so everything in
 * future.h applies: await it, add done callbacks, read its value.  Its value
 * is its coroutine's `result`; its error, the error its body ended with.
 *
 * The loop keeps every pending task alive until it is done, whether or not
 * you keep a reference.  A task that fails and whose failure nobody can
 * observe (no awaiter, no callback, no reference left) is reported through
 * the loop's report hook when it completes, with its name, the coroutine and
 * the line it failed at; one whose last reference is dropped without its
 * outcome having been read is reported then ("never retrieved").
 *
 * Costs (LP64): a task is 80 bytes plus its frame, in one block from the
 * loop's pool (a task whose frame is WEFT_FRAME(int) alone is 128 bytes);
 * spawning takes no allocator call in steady state; resuming a task is one
 * ready-queue node and one indirect call per frame entered (its root
 * frame's body runs inside the task's step itself, where the compiler
 * inlines it).
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include <stdio.h>

#include "co.h"
#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- spawning ------------------------------------------------------------------ */

/* Spawn coroutine fn as a new task on loop (asyncio's create_task):
 *     weft_task *t = WEFT_SPAWN(loop, say_after, .delay = 1, .what = "hi");
 * The designated initializers become the frame's fields (the rest is
 * zero); task and frame are one block.  The first step is queued, not run.
 * Returns a new reference (drop it with weft_future_unref; the task still
 * runs), or NULL with weft_last_error() set (-EINVAL, -ENOMEM,
 * WEFT_ECLOSED).  Frames may be aligned to at most 16 bytes. */
#define WEFT_SPAWN(loop, ...) WEFT__SPAWN(loop, NULL, 0, __VA_ARGS__, )

/* Options at spawn (asyncio's create_task(name=...) and 3.12's eager task
 * factory).  Zero-initialise, then set what you need. */
typedef struct weft_spawn_options {
    const char *name; /* the task's name (it must outlive the task), or NULL */
    bool eager;       /* run the first step inside the spawn call, until the
                         first suspension: a coroutine that never suspends
                         returns an already finished task and never goes
                         through the ready queue */
} weft_spawn_options;

/* WEFT_SPAWN with options (opts may be NULL):
 *     weft_spawn_options o = {.name = "fetch-1", .eager = true};
 *     weft_task *t = WEFT_SPAWN_OPTS(loop, &o, fetch, .url = u);
 * An eager first step runs as the current task (weft_current_task is the
 * new task) and then returns to the caller, whose own task, if any, simply
 * continues afterwards. */
#define WEFT_SPAWN_OPTS(loop, opts, ...) WEFT__SPAWN_OPTS(loop, opts, __VA_ARGS__, )
#define WEFT__SPAWN_OPTS(loop, opts, fn, ...) \
    weft__spawn_opts((loop), (opts), &(struct fn){.co = {.info = &fn##__info}, __VA_ARGS__}.co)
WEFT_NODISCARD weft_task *weft__spawn_opts(weft_loop *loop, const weft_spawn_options *opts,
                                           const weft_co *init);

/* Bytes of caller storage for a task running coroutine fn. */
#define WEFT_TASK_SIZE(fn) (WEFT__TASK_SPACE + sizeof(struct fn))

/* Caller-provided storage for a task of coroutine fn (malloc-free spawn). */
#define WEFT_TASK_STORAGE(fn)                                 \
    struct {                                                  \
        _Alignas(16) unsigned char bytes[WEFT_TASK_SIZE(fn)]; \
    }

/* Spawn into storage (a WEFT_TASK_STORAGE(fn) object) instead of the pool:
 * never allocates.  The storage must stay valid until the task is done and
 * every reference is dropped. */
#define WEFT_SPAWN_INTO(loop, storage, ...) \
    WEFT__SPAWN(loop, (storage)->bytes, sizeof((storage)->bytes), __VA_ARGS__, )

/* Room a task needs besides its frame, in caller storage (a list link and
 * the task header). */
#define WEFT__TASK_SPACE 96
#define WEFT__SPAWN(loop, mem, size, fn, ...) \
    weft__spawn((loop), &(struct fn){.co = {.info = &fn##__info}, __VA_ARGS__}.co, (mem), (size))
WEFT_NODISCARD weft_task *weft__spawn(weft_loop *loop, const weft_co *init, void *mem, size_t size);

/* ---- awaiting, inside a coroutine body ------------------------------------------- */

/* Await future f (consuming the reference passed in).  If f is already
 * done, continue at once without suspending (except that a task step which
 * has already finished 128 such awaits yields once first, so a loop over
 * done futures cannot starve the others); else park the task on f and
 * return to the loop.  On resume: if f failed or was cancelled (or f is
 * NULL: its constructor failed), unwind with that error.  The value is
 * then WEFT_RESULT(self).  A task that is cancelled cannot park: the await
 * cancels f and fails with -ECANCELED (unless f completes at once). */
#define WEFT_AWAIT(self, f) WEFT__AWAIT(self, f, NULL)

/* Like WEFT_AWAIT, but store the error code (0 = value) in the int lvalue
 * var instead of unwinding.  The task's own cancellation is not caught. */
#define WEFT_TRY_AWAIT(self, f, var) WEFT__AWAIT(self, f, &(var))

/* weft__await: 0 = done (value or caught error), 1 = suspend, -1 = unwind;
 * var (NULL or the lvalue's address) says whether it catches.  The
 * awaiting frame is the task's innermost one; its line is set once f is
 * made.  weft__f and weft__r are assigned, never initialized, so resuming
 * does not jump over an initializer (the macros stay clean under GCC's
 * -Wjump-misses-init, the lint for locals in bodies); weft__r is assigned
 * again after the resume point before it is read. */
#define WEFT__AWAIT(self, f, var)                         \
    do {                                                  \
        int weft__r;                                      \
        weft_future *weft__f;                             \
        (void)weft__co_self(WEFT__SELF_CO(self));         \
        weft__f = (f);                                    \
        weft__co->line = __LINE__;                        \
        weft__r = weft__await(task, weft__f, (var));      \
        if (weft__r > 0) {                                \
            WEFT__SUSPEND_AT_LINE(WEFT_CO_PENDING, NULL); \
            weft__r = weft__await_end(task, (var));       \
        }                                                 \
        if (weft__r < 0)                                  \
            goto weft__unwind;                            \
    } while (0)

/* The value (weft_value) of this task's last successful await - possibly
 * one inside a child frame; after WEFT_CALL read child->result instead. */
#define WEFT_RESULT(self) ((void)weft__co_self(WEFT__SELF_CO(self)), weft__last_value(task))

/* Let every other ready callback run, then continue (asyncio.sleep(0)).
 * Fails with -ECANCELED if the task is cancelled. */
#define WEFT_YIELD(self)                           \
    do {                                           \
        (void)weft__co_self(WEFT__SELF_CO(self));  \
        if (weft__yield(weft__co, task, __LINE__)) \
            WEFT__SUSPEND(WEFT_CO_PENDING, NULL);  \
        if (weft__yield_end(weft__co, task))       \
            goto weft__unwind;                     \
    } while (0)

/* Fail this frame with error code e and a message (printf format, up to
 * 511 bytes) that travels with the error to whoever observes it: the task
 * that ends with it carries it (weft_future_error_message), reports show
 * it, and an awaiting task that fails with the same error carries it on.
 *     WEFT_THROW_MSG(self, -EPROTO, "bad header byte 0x%02x", b);        */
#define WEFT_THROW_MSG(self, e, ...)                                 \
    do {                                                             \
        (void)weft__co_self(WEFT__SELF_CO(self));                    \
        weft__throw_msg(weft__co, task, (e), __LINE__, __VA_ARGS__); \
        goto weft__unwind;                                           \
    } while (0)

void weft__throw_msg(weft_co *co, weft_task *task, int err, int line, const char *fmt, ...)
    WEFT_PRINTF(5, 6);
static inline int weft__await(weft_task *task, weft_future *f, int *var);
int weft__await_slow(weft_task *task, weft_future *f, int *var);
static inline int weft__await_end(weft_task *task, int *var);
int weft__await_end_slow(weft_task *task, int *var);
weft_value weft__last_value(weft_task *task);
int weft__yield(weft_co *co, weft_task *task, int line);
int weft__yield_end(weft_co *co, weft_task *task);

/* Storage for one waiting operation (a lock acquire, a queue get, a group
 * join...): put it in your frame; zeroed, as frames are.  Opaque. */
#define WEFT__WAITER_SPACE 88
typedef struct weft_waiter {
    _Alignas(8) unsigned char opaque[WEFT__WAITER_SPACE];
} weft_waiter;

/* ---- the task API ---------------------------------------------------------------- */

/* Request cancellation (asyncio's Task.cancel): counts one request, and
 * cancels what the task awaits.  The task sees -ECANCELED at its current
 * or next suspension point, and at every later one until uncancelled.
 * Cancelled before its first step, its body never runs (only its
 * WEFT_FINALLY).  Inside WEFT_FINALLY cancellation is masked: it is
 * delivered after the cleanup, but what the task waits for there may still
 * react (a task group's join cancels its children).  Returns 0, -EINVAL,
 * or WEFT_ESTATE if already done. */
int weft_task_cancel(weft_task *t);

/* weft_task_cancel with a message (asyncio's cancel(msg)): the task's
 * -ECANCELED carries it, as weft_future_error_message shows.  Returns as
 * weft_task_cancel (the message is dropped without memory for it). */
int weft_task_cancel_msg(weft_task *t, const char *fmt, ...) WEFT_PRINTF(2, 3);

/* Pending cancellation requests (asyncio 3.13 cancelling()). */
int weft_task_cancelling(const weft_task *t);

/* Withdraw one request (asyncio 3.13 uncancel()); at 0 the task is no
 * longer cancelled.  Returns the new count, or -EINVAL. */
int weft_task_uncancel(weft_task *t);

/* The task's name: the one set, else its coroutine's name; NULL if t is
 * not a task. */
const char *weft_task_name(const weft_task *t);

/* Name the task; name must outlive it (a string literal is typical).
 * Returns 0, -EINVAL or WEFT_ESTATE (done). */
int weft_task_set_name(weft_task *t, const char *name);

/* True if f is a task. */
bool weft_is_task(const weft_future *f);

/* The task whose step is running on loop, or NULL (inside a plain
 * callback, or when loop is NULL). */
weft_task *weft_current_task(weft_loop *loop);

/* The loop a task (or any future) belongs to; the running loop from inside
 * a coroutine is weft_task_loop(task). */
static inline weft_loop *weft_task_loop(const weft_task *t);

/* Store up to n pending tasks of loop in out (borrowed pointers, valid
 * until the loop runs again; in no particular order); returns how many
 * tasks are pending, which may exceed n (asyncio's all_tasks). */
size_t weft_all_tasks(weft_loop *loop, weft_task **out, size_t n);

/* Print every pending task: its address, name and state, the file:line
 * each frame of its chain of inline coroutines waits at (root first), and
 * what it waits on (a task by name, anything else by kind and address).
 * Returns the number of tasks (0 for a NULL loop or file).  The same text
 * is what weft_loop_request_dump delivers. */
size_t weft_loop_dump_tasks(weft_loop *loop, FILE *out);

/* ---- running a coroutine to completion -------------------------------------------- */

/* loop.run_until_complete(coro): spawn fn as a task on loop (which must not
 * be running), run the loop until the task is done, store its value in
 * *out (out may be NULL) and drop the task.  Returns the task's error code
 * (0 for a value), a spawn error (-EINVAL, -ENOMEM, WEFT_ECLOSED), -EBUSY
 * if a loop already runs in this thread, or WEFT_ESTATE if the loop
 * stopped first (weft_loop_stop, weft_exit) - the task then stays pending
 * and the loop keeps it.
 *     weft_value v;
 *     int err = WEFT_RUN_UNTIL_COMPLETE(loop, &v, fetch, .url = u);       */
#define WEFT_RUN_UNTIL_COMPLETE(loop, out, ...) WEFT__RUN_UNTIL_COMPLETE(loop, out, __VA_ARGS__, )
#define WEFT__RUN_UNTIL_COMPLETE(loop, out, fn, ...) \
    weft__run_until_complete((loop), (out),          \
                             &(struct fn){.co = {.info = &fn##__info}, __VA_ARGS__}.co)
int weft__run_until_complete(weft_loop *loop, weft_value *out, const weft_co *init);

/* ---- stopping everything from inside (asyncio's SystemExit) ---------------------------

 * C has no exception that escapes every frame at once, so a weft program
 * stops itself explicitly: weft_exit(loop, status) records an exit status
 * and stops the loop at the end of the current iteration, like
 * weft_loop_stop.  WEFT_RUN then cancels every task, lets their cleanup
 * run (its usual bounded shutdown) and returns status instead of the main
 * task's error; a loop you run yourself returns from run_forever (or
 * run_until_complete, with WEFT_ESTATE), and weft_exit_requested tells you
 * why.  The calling task goes on until its next suspension; WEFT_EXIT
 * unwinds it at once instead (its FINALLY runs, it ends cancelled), as a
 * raised SystemExit would.  Ctrl-C is a separate option of WEFT_RUN
 * (WEFT_RUN_OPTS with WEFT_RUN_CANCEL_ON_SIGNALS, in weft/signal.h;
 * docs/signals.md). */

/* weft_exit and weft_exit_requested are in loop.h. */

/* weft_exit on the task's loop, then unwind this frame with -ECANCELED. */
#define WEFT_EXIT(self, status)                          \
    do {                                                 \
        (void)weft_exit(weft_task_loop(task), (status)); \
        WEFT_THROW(self, -ECANCELED);                    \
    } while (0)

/* ---- asyncio.run ------------------------------------------------------------------- */

/* asyncio.run: make a loop (opts may be NULL), run fn as the main task to
 * completion, then cancel the tasks still pending and run the loop until
 * they are done and every callback their completion queued has run - for
 * at most 5 s of loop time; stragglers are then listed through the report
 * hook (WEFT_REPORT_SHUTDOWN) and released (each reported) - and close and
 * free the loop.  Returns main's error code (0 on success; -EBUSY if a loop
 * already runs in this thread; a weft_loop_new or spawn error) and stores
 * its value in *out if out is not NULL; or, if a task called weft_exit,
 * the status it gave (>= 0), after the same shutdown.
 *     int main(void) { return WEFT_RUN(NULL, NULL, hello) ? 1 : 0; }     */
#define WEFT_RUN(opts, out, ...) WEFT__RUN(opts, out, __VA_ARGS__, )
#define WEFT__RUN(opts, out, fn, ...) \
    weft__run((opts), (out), &(struct fn){.co = {.info = &fn##__info}, __VA_ARGS__}.co)
int weft__run(const weft_loop_options *opts, weft_value *out, const weft_co *init);

/* ---- private: the layout of a task and the inline halves of awaiting ------------------
 * Visible only so that the resume check of an await inlines into the
 * coroutine body.  Private, do not touch. */

/* Private: a task is one block [weft__task][root frame]. */
typedef struct weft__task {
    weft_future fut; /* first: a task is a future; fut.aux = cancel requests,
                        fut.out.kind = the error origin while pending */
    weft_node node;  /* ready-queue node; or parked in a future's waiters */
    union {
        weft_future *waiting;       /* pending: the future awaited now or last */
        const weft_co_info *origin; /* done: where its error came from */
    } w;
} weft__task; /* a name, if set, is in the loop's extras table */

/* The previous await's future prev, held by the task alone, goes back to
 * loop's cache if it is a plain future done with a value nobody must
 * destroy (and the build recycles: WEFT__F_PLAIN): true.  False: nothing
 * done.  Only from a running step: the loop is open. */
static inline bool weft__await_recycle(weft_future *prev, weft_loop *loop)
{
    weft__loop_head *h = (weft__loop_head *)(void *)loop;
    const weft__future_hdr mask = {UINT32_MAX, 0xff, WEFT__F_PLAIN | WEFT__F_EXTRAS, 0};
    const weft__future_hdr want = {1, WEFT__DONE, WEFT__F_PLAIN, 0};
    if (!weft__future_hdr_is(prev, mask, want)) /* one test of refs, state, flags */
        return false;
    prev->refs = 0;
    prev->waiters.next = (weft_link *)(void *)h->ffree;
    h->ffree = (weft__dfuture *)(void *)prev;
    return true;
}

/* The hot path of an await, inline: park on a pending future of this loop
 * (or go once round the loop for sleep(0)), the task not cancelled, the previous await's future
 * gone without running anything (shared, or a plain one recycled).  Everything else is
 * weft__await_slow.  (A released future never reads as pending.) */
static inline int weft__await(weft_task *task, weft_future *f, int *var)
{
    weft__task *t = (weft__task *)(void *)task;
    weft_future *prev = t->w.waiting;
    weft_link *s;
    if (!f)
        return weft__await_slow(task, f, var);
    if (f->state == WEFT__PENDING)
        s = &f->waiters;
    else if (f->flags & WEFT__F_YIELD)
        s = ((weft__loop_head *)(void *)task->loop)->ready;
    else
        return weft__await_slow(task, f, var);
    if (f->loop != task->loop || f == task || task->aux)
        return weft__await_slow(task, f, var);
    if (prev && !weft__await_recycle(prev, task->loop)) {
        /* (a recycled one is not f: f is pending, or the yield future) */
        if (prev->refs > 1)
            prev->refs--; /* the reference of its previous await (f's too: a reused waiter) */
        else if (prev != f)
            return weft__await_slow(task, f, var);
    }
    t->w.waiting = f;
    weft__link_append(s, &t->node.link); /* park */
    return 1;
}

/* After the resume point of an await: 0 = go on (a value, or a caught
 * error in *var), -1 = unwind.  The common case, a value, is inline. */
static inline int weft__await_end(weft_task *task, int *var)
{
    const weft__task *t = (const weft__task *)(void *)task;
    weft_future *f = t->w.waiting;
    const weft__future_hdr mask = {0, 0xff, WEFT__F_YIELD, 0};
    const weft__future_hdr want = {0, WEFT__DONE, 0, 0};
    if (weft__future_hdr_is(f, mask, want) || /* done, not sleep(0): one test */
        (f->state == WEFT__DONE && !task->aux)) {
        f->flags |= WEFT__F_OBSERVED; /* a value, or back from sleep(0) */
        if (var)
            *var = 0;
        return 0;
    }
    return weft__await_end_slow(task, var);
}

/* Private: the general step (whatever frame is innermost, a cancellation
 * pending), the rest of a step whose frame returned anything but
 * "suspended" (calls, returns, the end), and the lag report's description
 * of a root frame's step (src/task.c). */
void weft__task_step(weft_node *n);
void weft__task_step_on(weft__task *t, weft_co *co, weft_co_rc rc);
void weft__task_root_step_on(weft_node *n, weft_co_rc rc); /* the root frame returned rc */
void weft__task_describe_root(const void *obj, struct weft_report *r, char *buf, size_t n);

/* Private: the step of a task whose root frame is coroutine `name`
 * (WEFT_ASYNC emits it, and a task spawned with it runs it off the ready
 * queue while its root frame is innermost; src/task.c switches to the
 * general step while a child frame is): the common case - no
 * cancellation pending - records the step for the lag report (the resume
 * line in the record's arg) and the current task, and runs the body here,
 * with no trampoline call in between; a cancellation pending is the
 * general step's. */
#undef WEFT__CO_STEP_DEF
#undef WEFT__CO_STEP_PTR
#define WEFT__CO_STEP_DEF(name)                                                        \
    static void name##__step(weft_node *weft__n)                                       \
    {                                                                                  \
        weft__task *weft__t = WEFT_CONTAINER_OF(weft__n, weft__task, node);            \
        weft_co *weft__root = (weft_co *)(void *)(weft__t + 1);                        \
        weft__loop_head *weft__h = (weft__loop_head *)(void *)weft__t->fut.loop;       \
        weft_co_rc weft__rc;                                                           \
        if (!weft__t->fut.aux) {                                                       \
            weft__h->task_now = weft__t;                                               \
            weft__h->run.fn = weft__run_obj;                                           \
            weft__h->run.arg = (void *)(intptr_t)weft__root->line;                     \
            weft__h->run.describe = weft__task_describe_root;                          \
            weft__h->run.obj = weft__t;                                                \
            weft__rc = name##__body((struct name *)(void *)weft__root, &weft__t->fut); \
            if (weft__rc.v == WEFT_CO_PENDING) {                                       \
                weft__h->task_now = NULL;                                              \
                return;                                                                \
            }                                                                          \
            weft__task_root_step_on(weft__n, weft__rc);                                \
            return;                                                                    \
        }                                                                              \
        weft__task_step(weft__n);                                                      \
    }
#define WEFT__CO_STEP_PTR(name) name##__step

/* Private: NULL, out of line (no NULL constant for the optimiser to
 * carry into the caller's use of the loop). */
weft_loop *weft__task_no_loop(void);

static inline weft_loop *weft_task_loop(const weft_task *t)
{
    return t ? t->loop : weft__task_no_loop();
}

#ifdef __cplusplus
}
#endif
#endif
