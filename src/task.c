/* task.c - tasks: a future that drives a coroutine frame.
 *
 * A task's step is a trampoline: it resumes the innermost frame directly
 * (O(1) at any depth), enters a child when a frame returns WEFT_CO_CALL,
 * and pops to the parent when a frame is done.  Frames form a ring: each
 * points to its caller and the root to the innermost frame, so the task
 * needs no pointer of its own for "where to resume".  A parked task's
 * ready-queue node sits in the awaited future's waiter list, so waking it
 * costs nothing and a stale wakeup cannot exist: cancelling unlinks it.
 *
 * The task is the frames' driver (see "Driving a frame" in weft/co.h): it
 * delivers cancellation when a frame is entered, marks a child's error
 * uncatchable when it is the task's own cancellation, records where an
 * error came from and reports misuse.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task_internal.h"

/* Awaits of done futures one task step may finish before it must yield. */
#define AWAIT_BUDGET 128

/* ---- the layer ------------------------------------------------------------------------ */

typedef struct task_layer {
    weft__layer base;
    int budget;                    /* done awaits the step may still finish */
    uint64_t budget_tick;          /* the loop's callback tick budget is for: a
                                      step of another tick starts afresh */
    const weft_co_info *step_info; /* where a general step resumed (lag reports;
                                      the line is in the record's arg) */
    weft_link listed;              /* listed tasks (see task_internal.h) */
    size_t pending;
} task_layer;

static void layer_close(weft_loop *loop, weft__layer *self);
static void layer_dump(weft_loop *loop, weft__layer *self, weft__strbuf *out);

static task_layer *tasks_of(weft_loop *loop)
{
    return (task_layer *)(void *)weft__layer_get(loop, WEFT__LAYER_TASK);
}

static task_layer *tasks_make(weft_loop *loop)
{
    task_layer *ts = tasks_of(loop);
    if (ts)
        return ts;
    ts = weft__alloc(loop, sizeof *ts);
    if (!ts)
        return NULL;
    memset(ts, 0, sizeof *ts);
    ts->base.close = layer_close;
    ts->base.dump = layer_dump;
    weft__list_init(&ts->listed);
    weft__layer_set(loop, WEFT__LAYER_TASK, &ts->base);
    return ts;
}

/* ---- layout ---------------------------------------------------------------------------- */

static weft__task *T(const weft_task *f)
{
    return (weft__task *)(void *)(uintptr_t)f;
}

/* The root frame follows the header at once: the header is a multiple of
 * 16 bytes, the most a frame may be aligned to. */
_Static_assert(sizeof(weft__task) % 16 == 0, "a frame follows the task header unpadded");

static size_t frame_offset(size_t align)
{
    (void)align;
    return sizeof(weft__task);
}

static weft_co *root_of(const weft__task *t)
{
    return (weft_co *)(void *)((char *)(uintptr_t)t + sizeof(weft__task));
}

static size_t task_bytes(const weft__task *t)
{
    const weft_co_info *info = root_of(t)->info;
    return frame_offset(info->align) + info->size;
}

static weft_link *prefix_of(weft__task *t)
{
    return (weft_link *)(void *)((char *)t - WEFT__TASK_PREFIX);
}

static const weft__future_ops task_ops;

/* The run function of a task whose innermost frame is its root frame:
 * the root coroutine's own step (WEFT__CO_STEP_DEF in weft/task.h, which
 * tests nothing but the cancellation requests: node.run is it only while
 * the root frame is innermost), or the general one.  A child frame
 * innermost: the general step. */
static void (*root_step(const weft_co *root))(weft_node *)
{
    return root->info->step ? root->info->step : weft__task_step;
}

bool weft_is_task(const weft_future *f)
{
    return f && f->ops == &task_ops;
}

bool weft__task_in_storage(const weft_task *t)
{
    return weft_is_task(t) && (t->flags & WEFT__T_STORAGE);
}

/* ---- spawn ---------------------------------------------------------------------------------- */

/* A new task; queued (its first step in the ready queue) if queue. */
static weft__task *spawn(weft_loop *loop, const weft_co *init, void *mem, size_t size, bool queue);

weft_task *weft__spawn(weft_loop *loop, const weft_co *init, void *mem, size_t size)
{
    weft__task *t = spawn(loop, init, mem, size, true);
    return t ? &t->fut : NULL;
}

/* Run t's first step now, inside the caller (which may be another task's
 * step): what the loop records about the running step is saved and put
 * back, so the caller's task goes on as if nothing had happened. */
static void eager_step(weft__task *t)
{
    weft_loop *loop = t->fut.loop;
    task_layer *ts = tasks_of(loop);
    const void *current = loop->task_now;
    int budget = ts->budget;
    uint64_t budget_tick = ts->budget_tick;
    const weft_co_info *info = ts->step_info;
    weft__running run = loop->run;
    weft_future_ref(&t->fut);  /* the step may finish it and drop the loop's reference */
    ts->budget = AWAIT_BUDGET; /* a step of its own, in the caller's tick */
    ts->budget_tick = atomic_load_explicit(&loop->lag.tick, memory_order_relaxed);
    t->node.run(&t->node); /* its coroutine's step, or the general one */
    loop->task_now = current;
    ts->budget = budget;
    ts->budget_tick = budget_tick;
    ts->step_info = info;
    loop->run = run;
    weft_future_unref(&t->fut);
}

weft_task *weft__spawn_opts(weft_loop *loop, const weft_spawn_options *opts, const weft_co *init)
{
    bool eager = opts && opts->eager;
    weft__task *t = spawn(loop, init, NULL, 0, !eager);
    if (!t)
        return NULL;
    if (opts && opts->name && weft_task_set_name(&t->fut, opts->name) < 0) {
        /* no memory for the name: nothing ran yet, so undo the spawn */
        weft__node_unlink(&t->node);
        tasks_of(loop)->pending--;
        t->fut.flags &= (uint8_t)~WEFT__T_LOOPREF;
        t->fut.state = WEFT__CANCELLED;
        t->fut.flags |= WEFT__F_OBSERVED;
        t->fut.refs = 1;
        weft_future_unref(&t->fut);
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    if (eager)
        eager_step(t);
    return &t->fut;
}

static weft__task *spawn(weft_loop *loop, const weft_co *init, void *mem, size_t size, bool queue)
{
    if (!loop || !init || !init->info || init->info->align > 16 ||
        init->info->size < sizeof(weft_co)) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (weft__closed(loop)) {
        weft__set_last_error(WEFT_ECLOSED);
        return NULL;
    }
    if (weft__wrong_thread(loop, "WEFT_SPAWN")) {
        weft__set_last_error(-EPERM);
        return NULL;
    }
    task_layer *ts = tasks_make(loop);
    weft__pool *pool = weft__pool_of(loop);
    if (!ts || !pool) {
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    const weft_co_info *info = init->info;
    size_t off = frame_offset(info->align), need = off + info->size;
    weft__task *t;
    uint8_t kflags = 0;
    if (mem) {
        if (size < WEFT__TASK_PREFIX + need || ((uintptr_t)mem & 15)) {
            weft__set_last_error(-EINVAL);
            return NULL;
        }
        t = (weft__task *)(void *)((char *)mem + WEFT__TASK_PREFIX);
        kflags = WEFT__T_STORAGE | WEFT__T_LISTED;
    } else {
        t = weft__pool_get(pool, WEFT__POOL_TASKS, need); /* hot path */
    }
    if (!t) {
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    weft_co *root = (weft_co *)(void *)((char *)t + off);
    memcpy(root, init, info->size);
    root->up = root;
    weft__future_init(&t->fut, &task_ops, loop);
    t->fut.refs = 2; /* the caller's and the loop's */
    t->fut.flags = WEFT__T_LOOPREF | kflags;
    t->node.link.next = t->node.link.prev = NULL;
    t->node.run = root_step(root); /* the root frame is innermost */
    t->w.waiting = NULL;
    if (kflags & WEFT__T_LISTED)
        weft__list_push(&ts->listed, prefix_of(t));
    ts->pending++;
    if (queue)
        weft__ready_push(loop, &t->node);
    return t;
}

static void task_release(weft_future *f)
{
    weft__task *t = T(f);
    if (f->flags & WEFT__T_LISTED) { /* caller storage */
        weft_link *l = prefix_of(t);
        if (l->next)
            weft__list_unlink(l);
        return;
    }
    weft__pool *pool = weft__pool_of(f->loop);
    WEFT_ASSERT(pool != NULL);
    size_t bytes = task_bytes(t);
    t->fut.ops = NULL; /* free: the arena walk skips it */
    weft__pool_put(pool, WEFT__POOL_TASKS, t, bytes);
}

/* ---- names and reports ------------------------------------------------------------------------
 */

static const char *tname(const weft__task *t)
{
    if (t->fut.flags & WEFT__F_EXTRAS) {
        weft__extras *x = weft__future_extras((weft_future *)(uintptr_t)&t->fut, false);
        if (x && x->name)
            return x->name;
    }
    return root_of(t)->info->name;
}

const char *weft_task_name(const weft_task *tf)
{
    return weft_is_task(tf) ? tname(T(tf)) : NULL;
}

int weft_task_set_name(weft_task *t, const char *name)
{
    if (!weft_is_task(t) || !name)
        return -EINVAL;
    if (t->state != WEFT__PENDING)
        return WEFT_ESTATE;
    weft__extras *x = weft__future_extras(t, true);
    if (!x)
        return -ENOMEM;
    x->name = name;
    return 0;
}

/* Fill a report about t failing with its root frame's error. */
static void task_describe(const weft_future *f, weft_report *r, char *buf, size_t n)
{
    const weft__task *t = T(f);
    const weft_co *root = root_of(t);
    const weft_co_info *origin = f->state == WEFT__PENDING  ? f->out.kind
                                 : f->state == WEFT__FAILED ? t->w.origin
                                                            : NULL;
    if (!origin)
        origin = root->info;
    r->task = f;
    r->task_name = tname(t);
    r->coroutine = origin->name;
    r->file = origin->file;
    r->line = root->err_line;
    snprintf(buf, n, "task '%s'", r->task_name);
}

/* ---- cancellation -------------------------------------------------------------------------------
 */

/* Cancellation is masked while any frame of the chain runs its FINALLY.
 * from: the frame to start at (the innermost, or a frame about to become
 * it); the walk stops at the root. */
static bool masked_from(const weft__task *t, const weft_co *from)
{
    const weft_co *root = root_of(t);
    for (const weft_co *co = from;; co = co->up) {
        if (co->flags & WEFT__CO_IN_FINALLY)
            return true;
        if (co == root)
            return false;
    }
}

static bool cancelling(const weft__task *t)
{
    return t->fut.aux && !masked_from(t, root_of(t)->up);
}

int weft_task_cancel(weft_task *tf)
{
    if (!weft_is_task(tf))
        return -EINVAL;
    if (tf->state != WEFT__PENDING)
        return WEFT_ESTATE;
    weft__task *t = T(tf);
    if (t->fut.aux < UINT16_MAX)
        t->fut.aux++;
    weft_future *w = t->w.waiting;
    if (!weft__node_linked(&t->node) || !w)
        return 0; /* running, or not started: delivered at its next suspension */
    bool mask = masked_from(t, root_of(t)->up);
    if (w->state == WEFT__PENDING) {
        if (!mask)
            weft__future_cancel(w); /* parked on w: cancel what it awaits */
        else if (w->ops->masked_cancel)
            w->ops->masked_cancel(w); /* in cleanup: w may still react */
    } else if (!mask && w->ops->rollback) {
        w->ops->rollback(w); /* woken by a hand-off it has not seen */
    }
    return 0;
}

int weft_task_cancel_msg(weft_task *t, const char *fmt, ...)
{
    int err = weft_task_cancel(t);
    if (err || !fmt)
        return err;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    weft__future_set_detail(t, -ECANCELED, msg);
    return 0;
}

bool weft__task_cancel_pending(const weft_task *t)
{
    return weft_is_task(t) && t->state == WEFT__PENDING && cancelling(T(t));
}

static int task_cancel_op(weft_future *f)
{
    return weft_task_cancel(f);
}

int weft_task_cancelling(const weft_task *t)
{
    return weft_is_task(t) ? t->aux : 0;
}

int weft_task_uncancel(weft_task *t)
{
    if (!weft_is_task(t))
        return -EINVAL;
    if (t->aux)
        t->aux--;
    return t->aux;
}

/* ---- awaiting
 * --------------------------------------------------------------------------------------- */

/* Decide whether err ends the await: true = unwind (err raised). */
static bool fail(weft_co *co, const weft__task *t, int err, int catching, int *var)
{
    if (!err) {
        if (var)
            *var = 0;
        return false;
    }
    if (catching && !(err == -ECANCELED && cancelling(t))) {
        *var = err; /* caught: the task's own cancellation never is */
        return false;
    }
    weft__co_raise(co, err, co->line, 0);
    return true;
}

/* The outcome of done f, observed.  An error that unwinds the frame takes
 * its message along (the first one the task raises). */
static int outcome(weft_co *co, const weft__task *t, weft_future *f, int catching, int *var)
{
    if (f->flags & WEFT__F_YIELD)
        return fail(co, t, cancelling(t) ? -ECANCELED : 0, catching, var) ? -1 : 0;
    f->flags |= WEFT__F_OBSERVED;
    int err = weft__future_err(f);
    if (!fail(co, t, err, catching, var))
        return 0;
    const char *msg = (f->flags & WEFT__F_EXTRAS) ? weft__future_detail(f, err) : NULL;
    if (msg && !weft__future_detail(&t->fut, err))
        weft__future_set_detail((weft_future *)(uintptr_t)&t->fut, err, msg);
    return -1;
}

static int await_slow(weft_co *co, weft__task *t, weft_future *f, int catching, int *var)
{
    weft_loop *loop = t->fut.loop;
    if (!f) {
        int err = weft_last_error();
        return fail(co, t, err < 0 ? err : -ENOMEM, catching, var) ? -1 : 0;
    }
    if (f->refs == 0 && f->ops->release) {
        t->w.waiting = NULL;
        weft__reportf(loop, WEFT_REPORT_MISUSE, -EINVAL,
                      "task '%s' awaits a %s %p that was already released (%s:%d)", tname(t),
                      f->ops->kind, (void *)f, co->info->file, co->line);
        return fail(co, t, -EINVAL, catching, var) ? -1 : 0;
    }
    if (f == &t->fut || f->loop != loop) {
        t->w.waiting = NULL;
        int err = f == &t->fut ? WEFT_ENOTASK : -EINVAL;
        weft__future_unref(f);
        return fail(co, t, err, catching, var) ? -1 : 0;
    }
    if (f->flags & WEFT__F_YIELD) {
        if (cancelling(t))
            return fail(co, t, -ECANCELED, catching, var) ? -1 : 0;
        weft__ready_push(loop, &t->node); /* sleep(0) */
        return 1;
    }
    if (f->state == WEFT__PENDING) {
        if (!cancelling(t) || (f->ops->flags & WEFT__OPS_ALWAYS_WAIT)) {
            if (t->fut.aux && (f->ops->flags & WEFT__OPS_ALWAYS_WAIT))
                weft__future_cancel(f); /* it reacts, and goes on waiting */
            weft__future_wait(f, &t->node);
            return 1;
        }
        weft__future_cancel(f); /* sticky: a cancelled task cannot park */
        if (f->state == WEFT__PENDING)
            return fail(co, t, -ECANCELED, catching, var) ? -1 : 0;
    }
    task_layer *ts = tasks_of(loop);
    uint64_t tick = atomic_load_explicit(&loop->lag.tick, memory_order_relaxed);
    if (ts->budget_tick != tick) { /* the first done await of this step */
        ts->budget_tick = tick;
        ts->budget = AWAIT_BUDGET;
    }
    if (--ts->budget < 0) {
        /* fairness: a step that keeps awaiting done futures yields once in
         * a while, then gets the outcome (tokio's coop budget) */
        ts->budget = AWAIT_BUDGET;
        weft__ready_push(loop, &t->node);
        return 1;
    }
    return outcome(co, t, f, catching, var);
}

/* Append n to list s: weft__list_push, with the stores ordered so that
 * the compiler keeps them four plain moves (storing n's two links side by
 * side becomes a vector store that costs three more instructions). */
static inline void park(weft_link *s, weft_link *n)
{
    WEFT_ASSERT(n->next == NULL && n->prev == NULL);
    weft_link *tail = s->prev;
    n->prev = tail;
    tail->next = n;
    n->next = s;
    s->prev = n;
}

/* weft__future_recycle of the previous await's future, from a running
 * step: prev was awaited here, so it is of this loop, and the loop is open
 * (a step never runs on a closed loop, and close refuses a running one), so
 * a plain future's layer exists and is not closed. */
static inline bool recycle_prev(weft_future *prev, weft_loop *loop)
{
#if WEFT__POISON
    return weft__future_recycle_in(prev, loop); /* false: the quarantine */
#else
    WEFT_ASSERT(prev->refs == 1); /* the task's own */
    if (prev->ops != &weft__plain_ops || prev->state != WEFT__DONE ||
        (prev->flags & WEFT__F_EXTRAS) || ((weft__dfuture *)(void *)prev)->dtor)
        return false; /* weft__future_recyclable, knowing the count */
    weft__future_layer *fl =
        (weft__future_layer *)(void *)weft__layer_get(loop, WEFT__LAYER_FUTURE);
    WEFT_ASSERT(prev->loop == loop && fl && !fl->closed && !weft__closed(loop));
    weft__future_recycle_into(prev, fl);
    return true;
#endif
}

/* The awaiting frame: the innermost one of the chain. */
static weft_co *top_of(const weft__task *t)
{
    return root_of(t)->up;
}

/* Everything weft__await leaves: drop the reference of the previous await
 * (which may run a destructor), then everything but parking plainly. */
WEFT__COLD static int await_cold(weft__task *t, weft_future *f, int *var)
{
    weft_future *prev = t->w.waiting;
    t->w.waiting = f;
    if (prev) {
        if (prev != f)
            weft__future_unref(prev);
        else if (prev->refs > 1)
            prev->refs--; /* the reference of its previous await */
    }
    return await_slow(top_of(t), t, f, var != NULL, var);
}

int weft__await_slow(weft_task *task, weft_future *f, int *var)
{
    weft__task *t = T(task);
    /* hot path: park on a pending future of this loop (or go once round
     * the loop for sleep(0)), the previous one gone without running
     * anything (shared, or a plain one recycled) */
    if (!f || (f->state != WEFT__PENDING && !(f->flags & WEFT__F_YIELD)) || !f->refs ||
        f->loop != task->loop || f == task || task->aux)
        return await_cold(t, f, var);
    weft_future *prev = t->w.waiting;
    if (prev) {
        if (prev == f)
            return await_cold(t, f, var);
        if (prev->refs > 1)
            prev->refs--;
        else if (!prev->refs || !recycle_prev(prev, task->loop)) /* the last one: the task's */
            return await_cold(t, f, var);
    }
    t->w.waiting = f;
    park(f->state == WEFT__PENDING ? &f->waiters : task->loop->ready, &t->node.link);
    return 1;
}

/* The cold half of weft__await_end (task.h): an error, a cancellation. */
int weft__await_end_slow(weft_task *task, int *var)
{
    weft__task *t = T(task);
    weft_future *f = t->w.waiting;
    weft_co *co = top_of(t);
    if (f->state == WEFT__PENDING) /* cannot happen: woken means done */
        return fail(co, t, -ECANCELED, var != NULL, var) ? -1 : 0;
    return outcome(co, t, f, var != NULL, var);
}

weft_value weft__last_value(weft_task *task)
{
    weft_future *f = T(task)->w.waiting;
    if (f && f->state == WEFT__DONE)
        return f->out.v;
    return (weft_value){0};
}

void weft__throw_msg(weft_co *co, weft_task *task, int err, int line, const char *fmt, ...)
{
    weft__co_throw(co, err, line);
    if (co->err != err || !fmt)
        return; /* misuse, or an earlier error wins */
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    weft__future_set_detail(task, err, msg);
}

int weft__yield(weft_co *co, weft_task *task, int line)
{
    weft__task *t = T(task);
    co->line = line;
    if (cancelling(t))
        return 0;
    weft__ready_push(t->fut.loop, &t->node);
    return 1;
}

int weft__yield_end(weft_co *co, weft_task *task)
{
    weft__task *t = T(task);
    return fail(co, t, cancelling(t) ? -ECANCELED : 0, 0, NULL);
}

/* ---- stepping and completion
 * ------------------------------------------------------------------------ */

/* Make a frame that is about to run for the first time start in its
 * cleanup: the task is cancelled (asyncio: a task cancelled before it
 * started never runs its body; here its FINALLY still runs). */
static void enter_cancelled(weft_co *co, int line)
{
    co->err = -ECANCELED;
    co->err_line = line;
    co->key = WEFT_CO_KEY_FINALLY;
}

/* Report something about task t: kind, code, message (and its detail),
 * and where (coroutine info and line). */
static void task_report(const weft__task *t, weft_report_kind kind, int err, const char *msg,
                        const char *detail, const weft_co_info *where, int line)
{
    weft_report r;
    memset(&r, 0, sizeof r);
    r.kind = kind;
    r.err = err;
    r.message = msg;
    r.detail = detail;
    r.task = &t->fut;
    r.task_name = tname(t);
    r.coroutine = where->name;
    r.file = where->file;
    r.line = line;
    weft__report(t->fut.loop, &r);
}

static const char *misuse_text(unsigned flags)
{
    if (flags & WEFT_CO_MISUSE_RESUME)
        return "resumed at an unknown point (a suspension inside a switch?)";
    if (flags & WEFT_CO_MISUSE_BREAK)
        return "a 'break' escaped the coroutine body";
    if (flags & WEFT_CO_MISUSE_REENTER)
        return "a block began again before its end (a 'continue' or 'goto' back to its "
               "beginning?)";
    if (flags & WEFT_CO_MISUSE_BLOCK)
        return "the frame ended inside a block whose end was never reached (a 'break' or "
               "'goto' out of it?)";
    return "WEFT_THROW needs a negative error code (>= WEFT_ERR_MIN)";
}

/* A frame finished with an error or by misuse (cold). */
static void frame_failed(weft__task *t, weft_co *co)
{
    if (co->flags & WEFT_CO_MISUSE) {
        char msg[320];
        snprintf(msg, sizeof msg, "task '%s': coroutine '%s' (%s:%d): %s", tname(t), co->info->name,
                 co->info->file, (int)co->err_line, misuse_text(co->flags));
        task_report(t, WEFT_REPORT_MISUSE, WEFT_ECORO, msg, NULL, co->info, co->err_line);
        co->flags &= (uint16_t)~WEFT_CO_MISUSE;
    }
    if (co->err && !(co->flags & WEFT__CO_PROPAGATED))
        t->fut.out.kind = co->info; /* raised here: the origin, until an outer
                                        frame raises one of its own */
}

/* task_finish with an error or a cancellation (cold: it may report). */
WEFT__COLD static void task_finish_failed(weft__task *t, weft_co *root)
{
    const weft_co_info *origin = t->w.origin;
    int err = root->err;
    if (!err)
        err = -ECANCELED; /* cancellation is sticky: not uncancelled = cancelled */
    if (err == -ECANCELED) {
        weft__future_finish(&t->fut, WEFT__CANCELLED);
        return;
    }
    t->fut.out.err = err;
    if (weft__list_empty(&t->fut.waiters) && t->fut.refs == 1) {
        /* nobody awaits it, nobody holds it: nobody ever will */
        t->fut.flags |= WEFT__F_OBSERVED;
        char msg[900];
        const char *detail = weft__future_detail(&t->fut, err);
        snprintf(msg, sizeof msg, "task '%s' failed at %s:%d (in %s)", tname(t), origin->file,
                 (int)root->err_line, origin->name); /* detail: r.detail */
        task_report(t, WEFT_REPORT_UNOBSERVED, err, msg, detail, origin, root->err_line);
    }
    weft__future_finish(&t->fut, WEFT__FAILED);
}

static void task_finish(weft__task *t, weft_co *root)
{
    weft_future *w = t->w.waiting;
    t->w.origin = t->fut.out.kind ? t->fut.out.kind : root->info;
    if (w)
        weft__future_unref(w);
    tasks_of(t->fut.loop)->pending--;
    if (root->err || t->fut.aux) {
        task_finish_failed(t, root);
        return;
    }
    weft_value v;
    root->info->store(root, &v);
    t->fut.out.v = v;
    if (weft__list_empty(&t->fut.waiters)) {
        t->fut.state = WEFT__DONE; /* weft__future_finish with nothing to queue */
        return;
    }
    weft__future_finish(&t->fut, WEFT__DONE);
}

/* The loop's reference of finished t goes (weft__future_unref, knowing the
 * kind: the last one of a task with nothing to report or drop is given
 * back to the pool at once). */
static void task_unref_done(weft__task *t)
{
    weft_future *f = &t->fut;
#if !WEFT__POISON
    if (f->refs == 1 && !(f->state == WEFT__FAILED && !(f->flags & WEFT__F_OBSERVED)) &&
        !(f->flags & (WEFT__F_CALLBACKS | WEFT__F_EXTRAS))) {
        weft__future_layer *fl =
            (weft__future_layer *)(void *)weft__layer_get(f->loop, WEFT__LAYER_FUTURE);
        f->refs = 0; /* weft__future_release_fast */
        if (fl)
            fl->live--;
        task_release(f);
        return;
    }
#endif
    weft__future_unref(f);
}

/* The lag report's description of t's step, which resumed frame info at
 * the line the record's arg holds. */
static void describe_at(const weft__task *t, const weft_co_info *info, weft_report *r, char *buf,
                        size_t n)
{
    r->task = &t->fut;
    r->task_name = tname(t);
    r->coroutine = info->name;
    r->file = info->file;
    r->line = (int)(intptr_t)t->fut.loop->run.arg;
    snprintf(buf, n, "task '%s' step resumed at %s:%d", r->task_name, r->file, r->line);
}

/* A general step: the frame it resumed is the layer's step_info. */
static void describe_step(const void *obj, weft_report *r, char *buf, size_t n)
{
    const weft__task *t = obj;
    describe_at(t, tasks_of(t->fut.loop)->step_info, r, buf, n);
}

/* A coroutine's own step (weft/task.h): it resumed the root frame. */
void weft__task_describe_root(const void *obj, weft_report *r, char *buf, size_t n)
{
    const weft__task *t = obj;
    describe_at(t, root_of(t)->info, r, buf, n);
}

/* The rest of a step once the frame running returned anything but
 * "suspended": calls into children, returns to parents, failures, the end
 * of the task.  rc is what co returned. */
WEFT__COLD void weft__task_step_on(weft__task *t, weft_co *co, weft_co_rc rc)
{
    weft_loop *loop = t->fut.loop;
    weft_co *root = root_of(t);
    for (;;) {
        if (rc.v == WEFT_CO_CALL) {
            weft_co *child = rc.child;
            if (t->fut.aux && !masked_from(t, co))
                enter_cancelled(child, co->line);
            root->up = child;
            t->node.run = weft__task_step; /* a child innermost */
            co = child;
        } else {
            if (!co->err && (co->flags & WEFT__CO_IN_FINALLY) && t->fut.aux &&
                (co == root || !masked_from(t, co->up))) {
                /* a cancellation its cleanup masked is delivered as it ends */
                co->err = -ECANCELED;
                co->err_line = co->line;
            }
            if (co->err || (co->flags & WEFT_CO_MISUSE))
                frame_failed(t, co);
            if (co == root) {
                task_finish(t, root);
                loop->task_now = NULL;
                weft__lag_capture(loop); /* t may be freed below: the loop must not touch it */
                t->fut.flags &= (uint8_t)~WEFT__T_LOOPREF;
                task_unref_done(t);
                return;
            }
            weft_co *parent = co->up;
            if (co->err == -ECANCELED && t->fut.aux && !masked_from(t, parent))
                co->flags |= WEFT_CO_UNCATCHABLE; /* the task's own: TRY_CALL must not catch it */
            root->up = parent;
            if (parent == root)
                t->node.run = root_step(root);
            co = parent;
        }
        rc = co->info->fn(co, &t->fut);
        if (rc.v == WEFT_CO_PENDING)
            break;
    }
    loop->task_now = NULL;
}

/* weft__task_step_on for a coroutine's own step (the root frame returned
 * rc): the step keeps nothing but the node across the body. */
WEFT__COLD void weft__task_root_step_on(weft_node *n, weft_co_rc rc)
{
    weft__task *t = WEFT_CONTAINER_OF(n, weft__task, node);
    weft__task_step_on(t, root_of(t), rc);
}

/* The general step: resume the innermost frame.  The common case, a
 * frame that runs to its next suspension, is the short path; a root frame
 * with no cancellation pending usually runs in its coroutine's own step
 * instead (WEFT__CO_STEP_DEF in weft/task.h), which does what this does
 * with the root frame known. */
void weft__task_step(weft_node *n)
{
    weft__task *t = WEFT_CONTAINER_OF(n, weft__task, node);
    weft_loop *loop = t->fut.loop;
    task_layer *ts = tasks_of(loop);
    weft_co *root = root_of(t), *co = root->up;
    loop->task_now = t; /* (the await budget is reset by the first done await of the tick) */
    ts->step_info = co->info;
    weft__running_obj(loop, describe_step, t);
    loop->run.arg = (void *)(intptr_t)co->line; /* describe_step's line */
    if (t->fut.aux && co->key == WEFT_CO_KEY_START && co == root &&
        !(co->flags & WEFT__CO_IN_FINALLY))
        enter_cancelled(co, 0); /* cancelled before its first step */
    weft_co_rc rc = co->info->fn(co, &t->fut);
    if (rc.v == WEFT_CO_PENDING) {
        loop->task_now = NULL;
        return;
    }
    weft__task_step_on(t, co, rc);
}

/* ---- introspection
 * -------------------------------------------------------------------------------- */

weft_task *weft_current_task(weft_loop *loop)
{
    return loop ? (weft_task *)(uintptr_t)loop->task_now : NULL;
}

weft_loop *weft__task_no_loop(void)
{
    return NULL;
}

/* Visit every pending task: the pool's task arena, then the listed ones. */
typedef struct visit {
    void (*fn)(weft__task *t, void *ctx);
    void *ctx;
} visit;

static void visit_block(void *block, void *ctx)
{
    weft__task *t = block;
    visit *v = ctx;
    if (t->fut.ops == &task_ops && t->fut.state == WEFT__PENDING)
        v->fn(t, v->ctx);
}

static void for_each_pending(weft_loop *loop, void (*fn)(weft__task *t, void *ctx), void *ctx)
{
    task_layer *ts = tasks_of(loop);
    weft__pool *pool = weft__pool_of(loop);
    if (!ts || !pool)
        return;
    visit v = {fn, ctx};
    weft__pool_walk(pool, WEFT__POOL_TASKS, visit_block, &v);
    for (weft_link *l = ts->listed.next, *next; l != &ts->listed; l = next) {
        next = l->next;
        weft__task *t = (weft__task *)(void *)((char *)l + WEFT__TASK_PREFIX);
        if (t->fut.state == WEFT__PENDING)
            fn(t, ctx);
    }
}

typedef struct collect {
    weft_task **out;
    size_t n, k;
} collect;

static void collect_one(weft__task *t, void *ctx)
{
    collect *c = ctx;
    if (c->out && c->k < c->n)
        c->out[c->k] = &t->fut;
    c->k++;
}

size_t weft_all_tasks(weft_loop *loop, weft_task **out, size_t n)
{
    if (!loop)
        return 0;
    collect c = {out, n, 0};
    for_each_pending(loop, collect_one, &c);
    return c.k;
}

static const char *task_state(const task_layer *ts, const weft__task *t)
{
    (void)ts;
    if (t->fut.loop->task_now == t)
        return "running";
    weft_future *w = t->w.waiting;
    if (weft__node_linked(&t->node) && w && w->state == WEFT__PENDING)
        return "waiting";
    const weft_co *root = root_of(t);
    return root->up == root && root->key == WEFT_CO_KEY_START ? "scheduled" : "ready";
}

typedef struct dump_ctx {
    const task_layer *ts;
    weft__strbuf *out;
    size_t k;
} dump_ctx;

static void dump_one(weft__task *t, void *ctx)
{
    dump_ctx *d = ctx;
    weft__strbuf *b = d->out;
    d->k++;
    weft__strbuf_printf(b, "task %p '%s' %s", (void *)t, tname(t), task_state(d->ts, t));
    if (t->fut.aux)
        weft__strbuf_printf(b, " (cancelling x%u)", (unsigned)t->fut.aux);
    weft__strbuf_printf(b, "\n");
    const weft_co *root = root_of(t), *chain[64];
    int depth = 0;
    for (const weft_co *co = root->up; depth < 64; co = co->up) {
        chain[depth++] = co;
        if (co == root)
            break;
    }
    for (int i = depth - 1; i >= 0; i--)
        weft__strbuf_printf(b, "  %-20s at %s:%d%s\n", chain[i]->info->name, chain[i]->info->file,
                            (int)chain[i]->line,
                            (chain[i]->flags & WEFT__CO_IN_FINALLY) ? " (finally)" : "");
    weft_future *w = t->w.waiting;
    if (w && w->state == WEFT__PENDING) {
        if (weft_is_task(w))
            weft__strbuf_printf(b, "  waiting on task %p '%s'\n", (void *)w, weft_task_name(w));
        else
            weft__strbuf_printf(b, "  waiting on %s %p\n", w->ops->kind, (void *)w);
    }
}

static size_t dump_into(weft_loop *loop, weft__strbuf *b)
{
    task_layer *ts = tasks_of(loop);
    if (!ts)
        return 0;
    dump_ctx d = {ts, b, 0};
    for_each_pending(loop, dump_one, &d);
    return d.k;
}

static void layer_dump(weft_loop *loop, weft__layer *self, weft__strbuf *out)
{
    (void)self;
    dump_into(loop, out);
}

size_t weft_loop_dump_tasks(weft_loop *loop, FILE *out)
{
    if (!loop || !out)
        return 0;
    weft__strbuf b;
    weft__strbuf_init(&b, loop);
    size_t k = dump_into(loop, &b);
    fputs(weft__strbuf_str(&b), out);
    weft__strbuf_free(&b);
    return k;
}

/* ---- loop close: release what is still pending
 * ---------------------------------------------------- */

typedef struct release_ctx {
    weft__task **list;
    size_t n, cap;
    bool oom;
} release_ctx;

static void gather_one(weft__task *t, void *ctx)
{
    release_ctx *r = ctx;
    if (r->n < r->cap)
        r->list[r->n++] = t;
    else
        r->oom = true;
}

/* First pass for one task: report it, take it off every queue, and make
 * what it awaits forget it (a waiter in its frame leaves its primitive). */
static void release_detach(weft__task *t)
{
    const weft_co *top = root_of(t)->up;
    char msg[320];
    snprintf(msg, sizeof msg, "task '%s' released while pending (at %s:%d)", tname(t),
             top->info->file, (int)top->line);
    task_report(t, WEFT_REPORT_RELEASED, 0, msg, NULL, top->info, top->line);
    if (weft__node_linked(&t->node))
        weft__node_unlink(&t->node);
    weft_future *w = t->w.waiting;
    if (w && w->ops->abandon)
        w->ops->abandon(w); /* in the frame that goes: a waiter leaves its queue */
}

/* Second pass: the task ends CANCELLED (observed: nobody is told), drops
 * what it awaited and the loop's reference. */
static void release_finish(weft__task *t)
{
    weft_future *w = t->w.waiting;
    t->w.waiting = NULL;
    t->fut.state = WEFT__CANCELLED;
    t->fut.flags |= WEFT__F_OBSERVED;
    weft__ready_splice(t->fut.loop, &t->fut.waiters); /* dropped by close */
    t->w.origin = NULL;
    if (w)
        weft__future_unref(w);
    if (t->fut.flags & WEFT__T_LOOPREF) {
        t->fut.flags &= (uint8_t)~WEFT__T_LOOPREF;
        weft__future_unref(&t->fut);
    }
}

static void release_one(weft__task *t, void *ctx)
{
    (void)ctx;
    release_detach(t);
    release_finish(t);
}

static void layer_close(weft_loop *loop, weft__layer *self)
{
    task_layer *ts = (task_layer *)(void *)self;
    release_ctx r = {NULL, 0, ts->pending, false};
    if (ts->pending)
        r.list = weft__alloc(loop, ts->pending * sizeof *r.list);
    if (r.list) {
        /* two passes, so that no task is freed while another still points
         * at it (a task awaiting a task) */
        for_each_pending(loop, gather_one, &r);
        for (size_t i = 0; i < r.n; i++)
            release_detach(r.list[i]);
        for (size_t i = 0; i < r.n; i++)
            release_finish(r.list[i]);
        weft__free(loop, r.list);
    } else if (ts->pending) {
        for_each_pending(loop, release_one, NULL); /* no memory for the list */
    }
    /* listed tasks still referenced by users outlive the layer: unhook them */
    while (!weft__list_empty(&ts->listed))
        weft__list_unlink(ts->listed.next);
    weft__layer_set(loop, WEFT__LAYER_TASK, NULL);
    weft__free(loop, ts);
}

/* ---- the kind
 * ---------------------------------------------------------------------------------------- */

static const weft__future_ops task_ops = {
    .kind = "task",
    .cancel = task_cancel_op,
    .release = task_release,
    .describe = task_describe,
};

/* ---- weft_run
 * ---------------------------------------------------------------------------------------- */

#define SHUTDOWN_GRACE_NS 5000000000LL /* bounded shutdown: 5 s of loop time */

static void shutdown_expired(void *arg)
{
    *(bool *)arg = true;
}

static void cancel_one(weft__task *t, void *ctx)
{
    (void)ctx;
    weft_task_cancel(&t->fut);
}

/* Cancel every pending task and run the loop until they are done and the
 * callbacks their completion queued have run, or until the grace period
 * ends (then dump and abandon what is left). */
static void shutdown_tasks(weft_loop *loop)
{
    bool expired = false;
    weft_call grace = {0};
    bool armed = false;
    if (tasks_of(loop) && tasks_of(loop)->pending) {
        for_each_pending(loop, cancel_one, NULL);
        armed =
            weft_call_later_ns(loop, SHUTDOWN_GRACE_NS, shutdown_expired, &expired, &grace) == 0;
        expired = !armed;
        while (tasks_of(loop)->pending && !expired)
            if (weft_loop_run_once(loop) < 0)
                break;
    }
    /* what the last completions queued (done callbacks, gathers settling) */
    for (int i = 0; i < 64 && !weft__ready_empty(loop); i++) {
        weft_loop_stop(loop);
        if (weft_loop_run_once(loop) < 0)
            break;
    }
    if (armed)
        weft_call_cancel(loop, grace);
    task_layer *ts = tasks_of(loop);
    if (ts && ts->pending) {
        weft__strbuf b;
        weft__strbuf_init(&b, loop);
        weft__strbuf_printf(&b, "shutdown: tasks still pending after %.1f s:\n",
                            SHUTDOWN_GRACE_NS / 1e9);
        dump_into(loop, &b);
        weft__reportf(loop, WEFT_REPORT_SHUTDOWN, -ETIMEDOUT, "%s", weft__strbuf_str(&b));
        weft__strbuf_free(&b);
    }
}

int weft__run_begin(const weft_loop_options *opts, const weft_co *init, weft_loop **loop,
                    weft_task **main_task)
{
    if (weft_running_loop())
        return -EBUSY;
    int err = weft_loop_new(loop, opts);
    if (err)
        return err;
    *main_task = weft__spawn(*loop, init, NULL, 0);
    if (!*main_task) {
        err = weft_last_error();
        weft_loop_destroy(*loop);
    }
    return err;
}

int weft__run_end(weft_loop *loop, weft_task *main_task, int err, weft_value *out)
{
    if (!err && out)
        weft_future_result(main_task, out);
    int status;
    if (weft_exit_requested(loop, &status)) {
        err = status; /* weft_exit: the status, after the same shutdown */
        weft_future_cancel(main_task);
        weft_exit_clear(loop); /* the shutdown runs the loop again */
    }
    shutdown_tasks(loop);
    weft_future_unref(main_task);
    weft_loop_destroy(loop);
    return err;
}

int weft__run(const weft_loop_options *opts, weft_value *out, const weft_co *init)
{
    weft_loop *loop;
    weft_task *main_task;
    int err = weft__run_begin(opts, init, &loop, &main_task);
    if (err)
        return err;
    return weft__run_end(loop, main_task, weft_loop_run_until_complete(loop, main_task), out);
}

int weft__run_until_complete(weft_loop *loop, weft_value *out, const weft_co *init)
{
    if (!loop)
        return -EINVAL;
    if (weft_loop_is_running(loop) || weft_running_loop())
        return -EBUSY;
    weft_task *t = weft__spawn(loop, init, NULL, 0);
    if (!t)
        return weft_last_error();
    int err = weft_loop_run_until_complete(loop, t);
    if (!err && out)
        weft_future_result(t, out);
    else if (weft_future_done(t))
        weft_future_error(t); /* observed: the caller got the code */
    weft_future_unref(t);
    return err;
}
