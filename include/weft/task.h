/* weft/task.h - tasks: futures that drive a coroutine.
 *
 * A task is a weft_future (weft_task is the same type), so everything in
 * future.h applies: await it, add done callbacks, read its value.  Its value
 * is its coroutine's `result`; its error, the error its body ended with.
 *
 * The loop keeps every pending task alive until it is done, whether or not
 * you keep a reference.  A task that fails and whose failure nobody can
 * observe (no awaiter, no callback, no reference left) is reported through
 * the loop's error hook when it completes, with its name, the coroutine and
 * the line it failed at; one whose last reference is dropped without its
 * outcome having been read is reported then ("never retrieved").
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include <stdio.h>

#include "co.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Spawn coroutine fn as a new task on loop (asyncio's create_task):
 *     weft_task *t = WEFT_SPAWN(loop, say_after, .delay = 1, .what = "hi");
 * The designated initializers become the frame's fields (the rest is
 * zero); task and frame are one allocation.  The first step is queued, not
 * run.  Returns a new reference (drop it with weft_future_unref; the task
 * still runs), or NULL with weft_last_error() set. */
#define WEFT_SPAWN(loop, ...) WEFT__SPAWN(loop, NULL, 0, __VA_ARGS__, )

/* Bytes of caller storage for a task running coroutine fn. */
#define WEFT_TASK_SIZE(fn) (WEFT__TASK_SPACE + sizeof(struct fn))

/* Caller-provided storage for a task of coroutine fn (malloc-free spawn). */
#define WEFT_TASK_STORAGE(fn)                                 \
    struct {                                                  \
        _Alignas(16) unsigned char bytes[WEFT_TASK_SIZE(fn)]; \
    }

/* Spawn into storage (a WEFT_TASK_STORAGE(fn) object) instead of the heap:
 * never allocates.  The storage must stay valid until the task is done and
 * every reference is dropped. */
#define WEFT_SPAWN_INTO(loop, storage, ...) \
    WEFT__SPAWN(loop, (storage)->bytes, sizeof((storage)->bytes), __VA_ARGS__, )

#define WEFT__TASK_SPACE 128
#define WEFT__SPAWN(loop, mem, size, fn, ...) \
    weft__spawn((loop), &(struct fn){.co = {.info = &fn##__info}, __VA_ARGS__}.co, (mem), (size))
weft_task *weft__spawn(weft_loop *loop, const weft_co *init, void *mem, size_t size);

/* Request cancellation (asyncio's Task.cancel): counts one request, and
 * cancels what the task awaits.  The task sees -ECANCELED at its current
 * or next suspension point, and at every later one until uncancelled.
 * Cancelled before its first step, its body never runs (only its
 * WEFT_FINALLY).  Returns 0, -EINVAL, or WEFT_ESTATE if already done. */
int weft_task_cancel(weft_task *t);

/* Pending cancellation requests (asyncio 3.13 cancelling()). */
int weft_task_cancelling(const weft_task *t);

/* Withdraw one request (asyncio 3.13 uncancel()); at 0 the task is no
 * longer cancelled.  Returns the new count, or -EINVAL. */
int weft_task_uncancel(weft_task *t);

/* The task's name: the one set, else its coroutine's name. */
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
weft_loop *weft_task_loop(const weft_task *t);

/* Store up to n pending tasks of loop in out (borrowed pointers, valid
 * until the loop runs again); returns how many tasks are pending, which
 * may exceed n (asyncio's all_tasks). */
size_t weft_all_tasks(weft_loop *loop, weft_task **out, size_t n);

/* Print every live task: its address, name and state, the file:line each
 * frame of its chain of inline coroutines waits at (root first), and what
 * it waits on (a task by name, anything else by address).
 * Returns the number of tasks (0 for a NULL loop or file). */
size_t weft_loop_dump_tasks(weft_loop *loop, FILE *out);

/* asyncio.run: make a loop (opts may be NULL), run fn as the main task to
 * completion, then cancel the tasks still pending and run the loop until
 * they are done - for at most 5 s of loop time; stragglers are then listed
 * through the error hook and released (each reported) - and close and free
 * the loop.  Returns main's error code (0 on success; -EBUSY if a loop
 * already runs in this thread; a weft_loop_new or spawn error) and stores
 * its value in *out if out is not NULL.
 *     int main(void) { return WEFT_RUN(NULL, NULL, hello) ? 1 : 0; }     */
#define WEFT_RUN(opts, out, ...) WEFT__RUN(opts, out, __VA_ARGS__, )
#define WEFT__RUN(opts, out, fn, ...) \
    weft__run((opts), (out), &(struct fn){.co = {.info = &fn##__info}, __VA_ARGS__}.co)
int weft__run(const weft_loop_options *opts, weft_value *out, const weft_co *init);

#ifdef __cplusplus
}
#endif
#endif
