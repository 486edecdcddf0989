/* group.c - task groups (asyncio's TaskGroup).
 *
 * A group lives in its owner's frame.  It holds a reference on every
 * child and a done callback on each; its join is a future kept in the
 * group itself (no allocation at the join), of a kind that reacts to a
 * cancellation of the owner even inside WEFT_FINALLY: the children are
 * cancelled and the join goes on waiting for them.
 */
#include <string.h>

#include "task_internal.h"
#include "weft/combinators.h"

enum { G_OPEN = 0, G_JOINING = 1, G_JOINED = 2 };

typedef struct join_fut {
    weft_future f;
    weft_group *g;
} join_fut;

_Static_assert(sizeof(join_fut) <= sizeof(weft_waiter), "the join future fits a waiter");

static join_fut *join_of(weft_group *g)
{
    return (join_fut *)(void *)&g->join;
}

int weft_group_init(weft_group *g, weft_task *owner)
{
    if (!g || !weft_is_task(owner))
        return -EINVAL;
    memset(g, 0, sizeof *g);
    g->owner = owner;
    g->loop = weft_task_loop(owner);
    g->base = (uint16_t)weft_task_cancelling(owner);
    return 0;
}

static void group_record(weft_group *g, int err)
{
    if (g->nerrors < sizeof g->errors / sizeof g->errors[0])
        g->errors[g->nerrors] = err;
    g->nerrors++;
}

/* Cancel the children still pending, and the owner once (to interrupt
 * its body; the join takes that cancellation back). */
static void group_abort(weft_group *g)
{
    if (g->flags & 2)
        return;
    g->flags |= 2; /* aborting */
    for (size_t i = 0; i < g->n; i++)
        if (g->kids[i]->state == WEFT__PENDING)
            weft_task_cancel(g->kids[i]);
    if (g->owner->state == WEFT__PENDING && !(g->flags & 1)) {
        g->flags |= 1;
        weft_task_cancel(g->owner);
    }
}

static void group_child_done(weft_future *t, void *arg)
{
    weft_group *g = arg;
    g->active--;
    t->flags |= WEFT__F_OBSERVED;
    if (t->state == WEFT__FAILED) {
        group_record(g, t->out.err);
        group_abort(g);
    }
    join_fut *j = join_of(g);
    if (g->active == 0 && g->state == G_JOINING && j->f.state == WEFT__PENDING)
        weft__future_resolve(&j->f, (weft_value){.i = 0});
}

static void release_kids(weft_group *g)
{
    for (size_t i = 0; i < g->n; i++) {
        weft_future_remove_done_callback(g->kids[i], group_child_done, g);
        weft_future_unref(g->kids[i]);
    }
    weft__free(g->loop, g->kids);
    g->kids = NULL;
    g->n = g->cap = g->active = 0;
}

weft_task *weft__group_spawn(weft_group *g, const weft_co *init)
{
    if (!g || !g->loop) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if ((g->flags & 2) || g->state != G_OPEN) {
        weft__set_last_error(WEFT_ESTATE); /* refused: the group's errors stay as they are */
        return NULL;
    }
    weft_task *t = weft__spawn(g->loop, init, NULL, 0);
    int err = t ? 0 : weft_last_error();
    if (!err && g->n == g->cap) {
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
        if (t) {
            weft_task_cancel(t); /* cannot track it: do not let it run loose */
            weft_future_unref(t);
        }
        g->flags |= 4; /* a spawn failed: the join aborts */
        group_record(g, err < 0 ? err : -ENOMEM);
        weft__set_last_error(err);
        return NULL;
    }
    g->kids[g->n++] = t;
    g->active++;
    return t;
}

/* The owner was cancelled while it waits in the join (masked or not):
 * cancel the children; the join goes on waiting. */
static int join_cancel(weft_future *f)
{
    group_abort(((join_fut *)(void *)f)->g);
    return 0;
}

static void join_masked(weft_future *f)
{
    join_cancel(f);
}

/* The owner is released at loop close while it waits in the join. */
static void join_abandon(weft_future *f)
{
    weft_group *g = ((join_fut *)(void *)f)->g;
    release_kids(g);
    g->state = G_JOINED;
}

static const weft__future_ops join_ops = {
    .kind = "group join",
    .flags = WEFT__OPS_IN_FRAME | WEFT__OPS_ALWAYS_WAIT,
    .cancel = join_cancel,
    .masked_cancel = join_masked,
    .abandon = join_abandon,
};

weft_future *weft__group_join_begin(weft_group *g, weft_co *co)
{
    if (!g || !g->loop || g->state != G_OPEN) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    g->body_error = co->err;
    /* the body failed or was cancelled, a spawn failed, or the owner was
     * cancelled from outside: stop the children */
    int outside = weft_task_cancelling(g->owner) - (int)g->base - (g->flags & 1);
    if (co->err || (g->flags & 4) || outside > 0)
        group_abort(g);
    join_fut *j = join_of(g);
    weft__future_init(&j->f, &join_ops, g->loop);
    j->g = g;
    g->state = G_JOINING;
    if (g->active == 0)
        weft__future_resolve(&j->f, (weft_value){.i = 0});
    return &j->f;
}

void weft__group_join_end(weft_group *g, weft_co *co)
{
    if (!g || !g->loop || g->state != G_JOINING)
        return;
    if (g->flags & 1) {
        weft_task_uncancel(g->owner);
        g->flags &= (uint8_t)~1;
    }
    if (g->nerrors) {
        /* the first child error wins over the body's error and over a
         * cancellation (an outside one stays counted: the task still ends
         * cancelled at its next suspension, as in asyncio 3.13) */
        co->err = (int16_t)g->errors[0];
        co->err_line = co->line;
        co->flags &= (uint16_t)~(WEFT__CO_PROPAGATED | WEFT_CO_UNCATCHABLE);
    } else if (!co->err && weft__task_cancel_pending(g->owner)) {
        /* cancelled from outside while it waited: raised from the join, as
         * asyncio's TaskGroup.__aexit__ does */
        co->err = -ECANCELED;
        co->err_line = co->line;
    }
    release_kids(g);
    g->state = G_JOINED;
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

int weft_group_body_error(const weft_group *g)
{
    return g ? g->body_error : 0;
}
