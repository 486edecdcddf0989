/* task.c - tasks: a future that drives a coroutine frame.
 *
 * A task's step is a trampoline: it resumes the innermost frame directly
 * (O(1) at any depth), enters a child when a frame returns RC_CALL, and
 * pops to the parent when a frame returns RC_DONE.  A parked task's
 * ready-queue node sits in the awaited future's waiter list, so waking it
 * costs nothing and a stale wakeup cannot exist: cancelling unlinks it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "future_internal.h"

/* Awaits of done futures one task step may finish before it must yield. */
#define WEFT__AWAIT_BUDGET 128

static void task_step(weft_node *n);
static void describe_step(weft_loop *loop, char *buf, size_t n);

static weft__task *task_of_node(weft_node *n)
{
    return (weft__task *)(void *)((char *)n - offsetof(weft__task, node));
}

static weft__task *task_of_live(weft_link *l)
{
    return (weft__task *)(void *)((char *)l - offsetof(weft__task, live));
}

static weft_co *root_of(weft__task *t, const weft_co_info *info)
{
    return (weft_co *)(void *)((char *)t + weft__frame_offset(info->align));
}

static weft__task *T(weft_task *t)
{
    return weft__as_task(t);
}

bool weft_is_task(const weft_future *f)
{
    return f && (f->flags & WEFT__F_TASK);
}

/* ---- spawn ---------------------------------------------------------------------- */

weft_task *weft__spawn(weft_loop *loop, const weft_co *init, void *mem, size_t size)
{
    if (!loop || !init || !init->info) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (weft__closed(loop)) {
        weft__set_last_error(WEFT_ECLOSED);
        return NULL;
    }
    const weft_co_info *info = init->info;
    size_t need = weft__frame_offset(info->align) + info->size;
    weft__task *t;
    if (mem) {
        if (size < need || ((uintptr_t)mem & 15)) {
            weft__set_last_error(-EINVAL);
            return NULL;
        }
        t = mem;
    } else {
        t = weft__alloc(loop, need);
        if (!t) {
            weft__set_last_error(-ENOMEM);
            return NULL;
        }
    }
    weft_co *root = root_of(t, info);
    memcpy(root, init, info->size);
    t->fut = (weft_future){.loop = loop, .refs = 2, .flags = WEFT__F_TASK | WEFT__F_LOOPREF};
    if (mem)
        t->fut.flags |= WEFT__F_STORAGE;
    weft__list_init(&t->fut.waiters);
    t->node.run = task_step;
    t->top = root;
    weft__list_push(&loop->tasks, &t->live);
    weft__ready_push(loop, &t->node);
    loop->on_close = weft__tasks_on_close;
    loop->describe = describe_step;
    return &t->fut;
}

void weft__task_free(weft_future *f)
{
    if (!(f->flags & WEFT__F_STORAGE))
        weft__free(f->loop, f);
}

/* ---- cancellation ------------------------------------------------------------------ */

/* Cancellation is masked while any frame of the chain runs its FINALLY. */
static bool masked(const weft_co *co)
{
    for (; co; co = co->parent)
        if (co->flags & WEFT__CO_IN_FINALLY)
            return true;
    return false;
}

static bool cancelling(const weft__task *t, const weft_co *co)
{
    return t->fut.cancel_requests && !masked(co);
}

int weft_task_cancel(weft_task *tf)
{
    if (!weft_is_task(tf))
        return -EINVAL;
    if (tf->state != WEFT_PENDING)
        return WEFT_ESTATE;
    weft__task *t = T(tf);
    if (t->fut.cancel_requests < UINT16_MAX)
        t->fut.cancel_requests++;
    weft_future *w = t->fut.u.task.waiting;
    if (!weft__node_linked(&t->node) || !w || masked(t->top))
        return 0; /* running, between awaits, or in cleanup: delivered at the
                     next suspension outside FINALLY */
    if (w->state == WEFT_PENDING)
        weft_future_cancel(w); /* parked on w: cancel what it awaits */
    else
        weft__handoff_rollback(w); /* woken by a hand-off it has not seen */
    return 0;
}

int weft_task_cancelling(const weft_task *t)
{
    return weft_is_task(t) ? t->cancel_requests : 0;
}

int weft_task_uncancel(weft_task *t)
{
    if (!weft_is_task(t))
        return -EINVAL;
    if (t->cancel_requests)
        t->cancel_requests--;
    return t->cancel_requests;
}

/* ---- the macros' helpers ----------------------------------------------------------- */

void weft__raise(weft_co *co, int err, int line)
{
    if (err >= 0)
        err = WEFT_ECORO; /* WEFT_THROW needs a negative code (checked by the
                             callers that can report it) */
    if (!co->err) {
        co->err = err;
        co->err_line = line;
    }
}

intptr_t weft__unwind_key(weft_co *co)
{
    return (co->flags & WEFT__CO_IN_FINALLY) ? WEFT__K_END : WEFT__K_FINALLY;
}

/* Raise err in co; a new error that starts in co (origin) records co's
 * coroutine as where the task's error comes from. */
static void raise_in(weft_co *co, weft__task *t, int err, int line, bool origin)
{
    if (!co->err && origin)
        t->fut.origin = co->info;
    weft__raise(co, err, line);
}

bool weft__co_start(weft_co *co, weft_task *task)
{
    if (cancelling(T(task), co)) {
        /* entered while the task is cancelled: skip the body, but run
         * FINALLY, which may own what the initializers handed over */
        raise_in(co, T(task), -ECANCELED, co->parent ? co->parent->line : 0, true);
        return false;
    }
    return true;
}

/* Release the future the task awaited last.  Most often it is a waiter in
 * a frame (a queue put/get, a lock) with nothing to destroy: then dropping
 * it is a decrement. */
static inline void drop_waiting(weft__task *t)
{
    weft_future *w = t->fut.u.task.waiting;
    t->fut.u.task.waiting = NULL;
    if (w && --w->refs == 0 && (w->flags & (WEFT__F_STORAGE | WEFT__F_TASK)) != WEFT__F_STORAGE)
        weft__future_free(w);
}

static bool fail(weft_co *co, weft__task *t, int err, int line, bool catching, int *var,
                 bool origin);

int weft__await(weft_co *co, weft_task *task, weft_future *f, int line, bool catching, int *var)
{
    weft__task *t = T(task);
    drop_waiting(t);
    co->line = line;
    if (f && f->state == WEFT_DONE && !f->err && !(f->flags & WEFT__F_YIELD) &&
        f->loop == t->fut.loop) {
        /* hot path: done with a value - no suspension, nothing to check */
        t->fut.u.task.waiting = f;
        if (--t->fut.loop->await_budget < 0) {
            /* fairness: a step that keeps awaiting done futures yields once
             * in a while, then gets the value (tokio's coop budget) */
            weft__ready_push(t->fut.loop, &t->node);
            return 1;
        }
        f->flags |= WEFT__F_OBSERVED;
        if (var)
            *var = 0;
        return 0;
    }
    if (f && (f->loop != t->fut.loop || f == task)) {
        weft__set_last_error(f == task ? WEFT_ENOTASK : -EINVAL);
        weft_future_unref(f);
        f = NULL;
    }
    t->fut.u.task.waiting = f;
    if (f && (f->flags & WEFT__F_YIELD)) {
        if (weft__yield(co, task, line))
            return 1; /* sleep(0) */
    } else if (f && f->state == WEFT_PENDING) {
        if (!cancelling(t, co)) {
            weft__future_wait(f, &t->node);
            return 1;
        }
        weft_future_cancel(f); /* sticky: a cancelled task cannot park */
    }
    return weft__await_failed(co, task, catching, var) ? -1 : 0;
}

/* Decide whether err ends the await: true = unwind (err raised). */
static bool fail(weft_co *co, weft__task *t, int err, int line, bool catching, int *var,
                 bool origin)
{
    if (!err) {
        if (var)
            *var = 0;
        return false;
    }
    if (catching && !(err == -ECANCELED && cancelling(t, co))) {
        *var = err; /* caught: the task's own cancellation never is */
        return false;
    }
    raise_in(co, t, err, line, origin);
    return true;
}

bool weft__await_failed(weft_co *co, weft_task *task, bool catching, int *var)
{
    weft__task *t = T(task);
    weft_future *f = t->fut.u.task.waiting;
    int err;
    if (!f) {
        err = weft_last_error();
        if (!err)
            err = -ENOMEM;
    } else if (f->state == WEFT_PENDING) {
        err = -ECANCELED; /* refused to park: the task is cancelled */
    } else if (f->flags & WEFT__F_YIELD) {
        err = cancelling(t, co) ? -ECANCELED : 0;
    } else {
        f->flags |= WEFT__F_OBSERVED;
        err = f->err; /* a value wins over a cancellation that came later */
    }
    return fail(co, t, err, co->line, catching, var, true);
}

bool weft__yield(weft_co *co, weft_task *task, int line)
{
    /* also reached from weft__await for a sleep(0) future */
    weft__task *t = T(task);
    co->line = line;
    if (cancelling(t, co))
        return false;
    weft__ready_push(t->fut.loop, &t->node);
    return true;
}

bool weft__yield_failed(weft_co *co, weft_task *task)
{
    weft__task *t = T(task);
    return fail(co, t, cancelling(t, co) ? -ECANCELED : 0, co->line, false, NULL, true);
}

bool weft__call(weft_co *co, weft_task *task, weft_co *child, int line)
{
    weft__task *t = T(task);
    co->line = line;
    child->parent = co;
    t->top = child; /* even when cancelled: the child's FINALLY must run */
    return true;
}

bool weft__call_failed(weft_co *co, weft_task *task, weft_co *child, bool catching, int *var)
{
    return fail(co, T(task), child->err, child->err_line, catching, var, false);
}

weft_co_rc weft__co_done(weft_co *co, weft_task *task)
{
    (void)co, (void)task;
    return (weft_co_rc){WEFT__RC_DONE};
}

weft_co_rc weft__co_misuse(weft_co *co, weft_task *task, const char *what)
{
    weft__report(task->loop, WEFT_ECORO,
                 "task '%s': coroutine '%s' (%s, last suspended at line %d): %s",
                 weft_task_name(task), co->info->name, co->info->file, (int)co->line, what);
    co->err = WEFT_ECORO;
    co->err_line = co->line;
    return (weft_co_rc){WEFT__RC_DONE};
}

weft_value weft__last_value(weft_task *task)
{
    weft_future *f = T(task)->fut.u.task.waiting;
    if (f && f->state == WEFT_DONE && !f->err)
        return f->u.done.v;
    return (weft_value){0};
}

/* ---- stepping and completion ------------------------------------------------------- */

static void task_finish(weft__task *t, weft_co *root)
{
    weft_loop *loop = t->fut.loop;
    drop_waiting(t);
    int err = root->err;
    const weft_co_info *origin = t->fut.origin ? t->fut.origin : root->info;
    t->fut.err = 0; /* the slot held origin: from here on it is the error */
    if (!err && t->fut.cancel_requests)
        err = -ECANCELED; /* cancellation is sticky: not uncancelled = cancelled */
    weft__list_unlink(&t->live);
    if (err == -ECANCELED) {
        t->fut.err = err;
        weft__future_complete(&t->fut, WEFT_CANCELLED);
    } else if (err) {
        t->fut.err = err;
        if (weft__list_empty(&t->fut.waiters) && t->fut.refs == 1) {
            /* nobody awaits it, nobody holds it: nobody ever will */
            t->fut.flags |= WEFT__F_OBSERVED;
            weft__report(loop, err, "task '%s' failed at %s:%d (in %s)", weft_task_name(&t->fut),
                         origin->file, (int)root->err_line, origin->name);
        }
        weft__future_complete(&t->fut, WEFT_DONE);
    } else {
        weft_value v;
        root->info->store(root, &v);
        t->fut.u.done.v = v; /* u.task.name stays: see future_internal.h */
        weft__future_complete(&t->fut, WEFT_DONE);
    }
    t->fut.flags &= (uint8_t)~WEFT__F_LOOPREF;
    weft_future_unref(&t->fut);
}

static void task_step(weft_node *n)
{
    weft__task *t = task_of_node(n);
    weft_loop *loop = t->fut.loop;
    weft_co *co = t->top;
    loop->current_task = t;
    loop->cur_fn = NULL;
    loop->cur_arg = t;
    loop->step_name = t->fut.u.task.name ? t->fut.u.task.name : co->info->name;
    loop->step_file = co->info->file;
    loop->step_line = co->line;
    loop->await_budget = WEFT__AWAIT_BUDGET;
    for (;;) {
        weft_co_rc rc = co->info->fn(co, &t->fut);
        if (rc.v == WEFT__RC_PENDING)
            break;
        if (rc.v == WEFT__RC_CALL) {
            co = t->top;
            continue;
        }
        if (!co->parent) {
            task_finish(t, co);
            break;
        }
        t->top = co = co->parent;
    }
    loop->current_task = NULL;
}

static void describe_step(weft_loop *loop, char *buf, size_t n)
{
    snprintf(buf, n, "task '%s' step resumed at %s:%d", loop->step_name, loop->step_file,
             loop->step_line);
}

/* ---- names and introspection --------------------------------------------------------- */

const char *weft_task_name(const weft_task *tf)
{
    if (!weft_is_task(tf))
        return NULL;
    const weft__task *t = (const weft__task *)(const void *)tf;
    if (tf->u.task.name)
        return tf->u.task.name;
    const weft_co *root = t->top;
    while (root->parent)
        root = root->parent;
    return root->info->name;
}

int weft_task_set_name(weft_task *t, const char *name)
{
    if (!weft_is_task(t) || !name)
        return -EINVAL;
    if (t->state != WEFT_PENDING)
        return WEFT_ESTATE;
    t->u.task.name = name;
    return 0;
}

weft_task *weft_current_task(weft_loop *loop)
{
    return loop && loop->current_task ? &((weft__task *)loop->current_task)->fut : NULL;
}

weft_loop *weft_task_loop(const weft_task *t)
{
    return t ? t->loop : NULL;
}

size_t weft_all_tasks(weft_loop *loop, weft_task **out, size_t n)
{
    if (!loop)
        return 0;
    size_t k = 0;
    for (weft_link *l = loop->tasks.next; l && l != &loop->tasks; l = l->next, k++)
        if (out && k < n)
            out[k] = &task_of_live(l)->fut;
    return k;
}

static const char *task_state(weft_loop *loop, weft__task *t)
{
    if (loop->current_task == t)
        return "running";
    weft_future *w = t->fut.u.task.waiting;
    if (weft__node_linked(&t->node) && w && w->state == WEFT_PENDING)
        return "waiting";
    return t->top->resume.key == WEFT__K_START && !(t->top->flags & WEFT__CO_LABEL) &&
                   !t->top->parent
               ? "scheduled"
               : "ready";
}

size_t weft_loop_dump_tasks(weft_loop *loop, FILE *out)
{
    if (!loop || !out)
        return 0;
    size_t k = 0;
    for (weft_link *l = loop->tasks.next; l && l != &loop->tasks; l = l->next, k++) {
        weft__task *t = task_of_live(l);
        fprintf(out, "task %p '%s' %s", (void *)t, weft_task_name(&t->fut), task_state(loop, t));
        if (t->fut.cancel_requests)
            fprintf(out, " (cancelling x%u)", (unsigned)t->fut.cancel_requests);
        fputc('\n', out);
        const weft_co *chain[64];
        int depth = 0;
        for (const weft_co *co = t->top; co && depth < 64; co = co->parent)
            chain[depth++] = co;
        for (int i = depth - 1; i >= 0; i--)
            fprintf(out, "  %-20s at %s:%d%s\n", chain[i]->info->name, chain[i]->info->file,
                    (int)chain[i]->line,
                    (chain[i]->flags & WEFT__CO_IN_FINALLY) ? " (finally)" : "");
        weft_future *w = t->fut.u.task.waiting;
        if (w && w->state == WEFT_PENDING) {
            if (weft_is_task(w))
                fprintf(out, "  waiting on task %p '%s'\n", (void *)w, weft_task_name(w));
            else
                fprintf(out, "  waiting on future %p\n", (void *)w);
        }
    }
    return k;
}

/* ---- loop close: release what is still pending ------------------------------------- */

void weft__tasks_on_close(weft_loop *loop)
{
    while (!weft__list_empty(&loop->tasks)) {
        weft__task *t = task_of_live(loop->tasks.next);
        weft__list_unlink(&t->live);
        weft__report(loop, 0, "task '%s' released while pending (at %s:%d)",
                     weft_task_name(&t->fut), t->top->info->file, (int)t->top->line);
        if (weft__node_linked(&t->node))
            weft__node_unlink(&t->node);
        /* a waiter in the frame about to be freed must leave its primitive
         * (queued), or give back what it was handed (not yet seen) */
        weft_future *w = t->fut.u.task.waiting;
        if (w && (w->flags & WEFT__F_HANDOFF) && w->state == WEFT_PENDING)
            weft_future_cancel(w);
        else if (w)
            weft__handoff_rollback(w);
        drop_waiting(t);
        t->fut.err = -ECANCELED;
        t->fut.state = WEFT_CANCELLED;
        t->fut.flags |= WEFT__F_OBSERVED;
        weft__list_splice(&loop->ready, &t->fut.waiters); /* dropped by close */
        if (t->fut.flags & WEFT__F_LOOPREF) {
            t->fut.flags &= (uint8_t)~WEFT__F_LOOPREF;
            weft_future_unref(&t->fut);
        }
    }
    /* Pooled nodes still in use (done callbacks, sleep timers) hold
     * references: unlink them all first, then drop the references, so that
     * no unlink touches a future that was just freed. */
    for (weft__pooled *c = loop->pool_all; c; c = c->all) {
        if (c->t.h.node.link.prev)
            weft__node_unlink(&c->t.h.node);
        if (c->t.index != WEFT__NO_INDEX)
            weft__heap_remove(&loop->heap, &c->t);
    }
    for (weft__pooled *c = loop->pool_all; c; c = c->all) {
        weft_future *f = c->aux;
        c->aux = NULL;
        weft_future_unref(f);
    }
    loop->describe = NULL;
    weft__free(loop, loop->yield_future);
    loop->yield_future = NULL;
    for (weft_future *f = loop->future_pool, *next; f; f = next) {
        next = (weft_future *)(void *)f->waiters.next;
        weft__free(loop, f);
    }
    loop->future_pool = NULL;
}

/* ---- weft_run ------------------------------------------------------------------------ */

/* WEFT_THROW's entry point: a non-negative code is a bug worth naming. */
void weft__throw(weft_co *co, weft_task *task, int err, int line)
{
    if (err >= 0)
        weft__report(task->loop, WEFT_ECORO,
                     "task '%s': WEFT_THROW(%d) at %s:%d needs a negative code",
                     weft_task_name(task), err, co->info->file, line);
    raise_in(co, T(task), err, line, true);
}

#define SHUTDOWN_GRACE_NS 5000000000LL /* bounded shutdown: 5 s of loop time */

static void shutdown_expired(void *arg)
{
    *(bool *)arg = true;
}

/* Cancel every pending task and run the loop until they are done, or until
 * the grace period ends (then dump and abandon them). */
static void cancel_all(weft_loop *loop)
{
    if (weft__list_empty(&loop->tasks))
        return;
    for (weft_link *l = loop->tasks.next; l != &loop->tasks; l = l->next)
        weft_task_cancel(&task_of_live(l)->fut);
    bool expired = false;
    weft_call grace;
    if (weft_call_later_ns(loop, SHUTDOWN_GRACE_NS, shutdown_expired, &expired, &grace) < 0)
        expired = true;
    while (!weft__list_empty(&loop->tasks) && !expired)
        if (weft_loop_run_once(loop) < 0)
            break;
    weft_call_cancel(loop, grace);
    if (!weft__list_empty(&loop->tasks)) {
        /* through the error hook, like every other report */
        char *dump = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&dump, &len);
        if (f) {
            weft_loop_dump_tasks(loop, f);
            fclose(f);
        }
        weft__report(loop, -ETIMEDOUT, "shutdown: tasks still pending after %.1f s:\n%s",
                     SHUTDOWN_GRACE_NS / 1e9, dump ? dump : "");
        free(dump);
    }
}

int weft__run(const weft_loop_options *opts, weft_value *out, const weft_co *init)
{
    weft_loop *loop;
    if (weft_running_loop())
        return -EBUSY;
    int err = weft_loop_new(&loop, opts);
    if (err)
        return err;
    weft_task *main_task = weft__spawn(loop, init, NULL, 0);
    if (!main_task) {
        weft_loop_destroy(loop);
        return weft_last_error();
    }
    err = weft_loop_run_until_complete(loop, main_task);
    if (!err && out)
        weft_future_result(main_task, out);
    cancel_all(loop);
    weft_future_unref(main_task);
    weft_loop_destroy(loop);
    return err;
}
