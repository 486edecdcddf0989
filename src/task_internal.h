/* task_internal.h - the layout of a task, for src/ only.
 *
 * A task is one block: [weft__task][root frame].  Tasks from the
 * loop's pool (the usual case) have nothing before the header: loop close
 * finds them by walking the pool's task arena, so a task needs no list
 * link of its own.  Tasks in caller storage carry a list link just before
 * the header (they are "listed").
 */
#ifndef WEFT_TASK_INTERNAL_H
#define WEFT_TASK_INTERNAL_H

#include "future_internal.h"
#include "weft/task.h"

/* Task flags: the kind-private bits of the future's flags. */
enum {
    WEFT__T_LOOPREF = 1u << 4, /* the loop holds a reference (pending) */
    WEFT__T_STORAGE = 1u << 5, /* the caller's memory: never freed */
    WEFT__T_LISTED = 1u << 6,  /* a list link precedes the header (storage) */
};

/* struct weft__task, the header, is in weft/task.h (private there). */

#define WEFT__TASK_PREFIX 16 /* the list link of a listed task */

_Static_assert(sizeof(weft__task) <= 80 || sizeof(void *) != 8, "a task header is 80 bytes");
_Static_assert(WEFT__TASK_PREFIX + (sizeof(weft__task) + 15) / 16 * 16 <= WEFT__TASK_SPACE,
               "WEFT__TASK_SPACE too small");

/* True if t is cancelled and not inside a cleanup that masks it: its next
 * suspension would fail with -ECANCELED. */
bool weft__task_cancel_pending(const weft_task *t);

/* True if t runs in caller storage (its memory must not be referenced
 * after it is done: the caller may reuse it). */
bool weft__task_in_storage(const weft_task *t);

/* WEFT_RUN's two halves, shared by WEFT_RUN and the os layer's
 * WEFT_RUN_OPTS (src/run.c), which installs its signal handlers between
 * them.  weft__run_begin: -EBUSY if a loop runs in this thread, else a new
 * loop (opts may be NULL) with init spawned as its main task in *main_task;
 * returns 0, or weft_loop_new's or the spawn's error (the loop then freed).
 * weft__run_end, after the run: stores main's value in *out if err is 0
 * and out is not NULL, takes weft_exit's status instead of err if a task
 * asked for it, cancels what is still pending and runs the loop until it
 * is done (the bounded shutdown), drops main and frees the loop; returns
 * the run's status. */
int weft__run_begin(const weft_loop_options *opts, const weft_co *init, weft_loop **loop,
                    weft_task **main_task);
int weft__run_end(weft_loop *loop, weft_task *main_task, int err, weft_value *out);

#endif
