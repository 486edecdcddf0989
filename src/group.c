/* group.c - task groups (asyncio's TaskGroup).
 *
 * A group lives in its owner's frame.  It holds a reference on every
 * child and a done callback on each; its join is a future kept in the
 * group itself (no allocation at the join), of a kind that reacts to a
 * cancellation of the owner even inside WEFT_FINALLY: the children are
 * cancelled and the join goes on waiting for them.
 *
 * Each child has a 16-byte slot in a block that lives as long as the
 * owner task (weft__future_scoped_alloc), grown with the children array at
 * spawn, so nothing is allocated once a child runs: a child's failure
 * appends its error to the slots' error column (completion order), and the
 * join copies every child's outcome into its slot before it lets go of the
 * children.  The slots outlive the join: that is how outcomes are read
 * after it.
 */
#include <string.h>

#include "task_internal.h"
#include "weft/combinators.h"

enum { G_OPEN = 0, G_JOINING = 1, G_JOINED = 2 };

struct weft__group_slot {
    weft_value v; /* child i's value, after the join */
    int err;      /* child i's error (-ECANCELED, ...), after the join */
    int cerr;     /* the i-th child error in completion order */
};

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
    /* a group used again in the same frame gives its old slots back (a
     * pointer that is not a block of owner's is ignored) */
    if (g->owner == owner && g->slots)
        weft__future_scoped_free(owner, g->slots);
    memset(g, 0, sizeof *g);
    g->owner = owner;
    g->loop = weft_task_loop(owner);
    g->base = (uint16_t)weft_task_cancelling(owner);
    return 0;
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
        g->slots[g->nerrors++].cerr = t->out.err; /* room reserved at spawn */
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
    g->active = 0; /* n and the slots stay: they index the outcomes */
}

/* Room for one more child: the children array and the slots grow
 * together, so that a child's completion never allocates.  0 or -ENOMEM. */
static int reserve(weft_group *g)
{
    if (g->n < g->cap)
        return 0;
    size_t cap = g->cap ? g->cap * 2 : 8;
    weft_future **k = weft__realloc(g->loop, g->kids, cap * sizeof *k);
    if (!k)
        return -ENOMEM;
    g->kids = k;
    struct weft__group_slot *sl = weft__future_scoped_alloc(g->owner, cap * sizeof *sl);
    if (!sl)
        return -ENOMEM; /* the larger kids array stays: harmless */
    if (g->slots) {
        memcpy(sl, g->slots, g->cap * sizeof *sl);
        weft__future_scoped_free(g->owner, g->slots);
    }
    g->slots = sl;
    g->cap = cap;
    return 0;
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
    int err = reserve(g);
    weft_task *t = err ? NULL : weft__spawn(g->loop, init, NULL, 0);
    if (!err && !t)
        err = weft_last_error();
    if (!err)
        err = weft_future_add_done_callback(t, group_child_done, g);
    if (err) {
        if (t) {
            weft_task_cancel(t); /* cannot track it: do not let it run loose */
            weft_future_unref(t);
        }
        g->flags |= 4; /* a spawn failed: the join aborts */
        if (!g->spawn_error)
            g->spawn_error = err < 0 ? err : -ENOMEM;
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
    int first = g->nerrors ? g->slots[0].cerr : g->spawn_error;
    if (first) {
        /* the first child error (else a failed spawn's) wins over the
         * body's error and over a cancellation (an outside one stays
         * counted: the task still ends cancelled at its next suspension,
         * as in asyncio 3.13) */
        co->err = (int16_t)first;
        co->err_line = co->line;
        co->flags &= (uint16_t)~(WEFT__CO_PROPAGATED | WEFT_CO_UNCATCHABLE);
    } else if (!co->err && weft__task_cancel_pending(g->owner)) {
        /* cancelled from outside while it waited: raised from the join, as
         * asyncio's TaskGroup.__aexit__ does */
        co->err = -ECANCELED;
        co->err_line = co->line;
    }
    for (size_t i = 0; i < g->n; i++) {
        weft_future *t = g->kids[i];
        g->slots[i].err = weft__future_err(t);
        g->slots[i].v = g->slots[i].err ? (weft_value){0} : t->out.v;
    }
    release_kids(g);
    g->state = G_JOINED;
    g->flags |= 8; /* outcomes recorded */
}

size_t weft_group_errors(const weft_group *g, int *out, size_t n)
{
    if (!g)
        return 0;
    for (size_t i = 0; out && i < n && i < g->nerrors; i++)
        out[i] = g->slots[i].cerr;
    return g->nerrors;
}

int weft_group_body_error(const weft_group *g)
{
    return !g ? 0 : g->body_error ? g->body_error : g->spawn_error;
}

size_t weft_group_size(const weft_group *g)
{
    return g ? g->n : 0;
}

int weft_group_result(const weft_group *g, size_t i, weft_value *out)
{
    if (!g || i >= weft_group_size(g))
        return -EINVAL;
    if (!(g->flags & 8))
        return WEFT_ESTATE;
    if (out)
        *out = g->slots[i].v;
    return g->slots[i].err;
}
