/* fdwait.c - one-shot awaitables for fd readiness (weft_wait_readable,
 * weft_wait_writable; trio's wait_readable).
 *
 * A wait is one pooled block: the future and its hold.  It registers the
 * loop's reader (writer) for the fd, built on weft_io, and the first time
 * the fd is ready it removes that registration before it completes, so a
 * level-triggered fd that stays ready completes the future exactly once
 * (the trap of completing a future from a persistent add_reader callback).
 * Cancelling or releasing a pending wait removes the registration too.
 */
#include "future_internal.h"
#include "weft/combinators.h"

typedef struct fd_wait {
    weft_future f;
    weft__hold hold; /* the registration holds the wait */
    int fd;
    unsigned dir; /* WEFT_READABLE or WEFT_WRITABLE */
} fd_wait;

static void unregister(fd_wait *w)
{
    if (w->dir == WEFT_READABLE)
        weft_remove_reader(w->f.loop, w->fd);
    else
        weft_remove_writer(w->f.loop, w->fd);
}

static void fd_ready(void *arg)
{
    fd_wait *w = arg;
    unregister(w); /* first: one completion however long the fd stays ready */
    weft__future_resolve(&w->f, (weft_value){.i = w->dir});
    weft__future_unhold(&w->hold); /* last: it may free w */
}

static int fd_wait_cancel(weft_future *f)
{
    fd_wait *w = WEFT_CONTAINER_OF(f, fd_wait, f);
    unregister(w);
    int err = weft__future_cancel_now(f);
    weft__future_unhold(&w->hold);
    return err;
}

static void fd_wait_release(weft_future *f)
{
    fd_wait *w = WEFT_CONTAINER_OF(f, fd_wait, f);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, w, sizeof *w);
}

static const weft__future_ops fd_wait_ops = {
    .kind = "fd wait",
    .cancel = fd_wait_cancel,
    .release = fd_wait_release,
};

static weft_future *fd_wait_new(weft_loop *loop, int fd, unsigned dir)
{
    int err = 0;
    if (!loop)
        err = -EINVAL;
    else if (weft__closed(loop))
        err = WEFT_ECLOSED;
    else if (fd < 0)
        err = -EBADF;
    else if (weft__fd_watched(loop, fd, dir))
        err = -EBUSY; /* someone else waits in that direction: never replace them */
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    weft__pool *pool = weft__pool_of(loop);
    fd_wait *w = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *w) : NULL;
    if (!w) {
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    err = dir == WEFT_READABLE ? weft_add_reader(loop, fd, fd_ready, w)
                               : weft_add_writer(loop, fd, fd_ready, w);
    if (err) {
        weft__pool_put(pool, WEFT__POOL_ANY, w, sizeof *w);
        weft__set_last_error(err);
        return NULL;
    }
    weft__future_init(&w->f, &fd_wait_ops, loop);
    w->fd = fd;
    w->dir = dir;
    weft__future_hold(&w->f, &w->hold);
    return &w->f;
}

weft_future *weft_wait_readable(weft_loop *loop, int fd)
{
    return fd_wait_new(loop, fd, WEFT_READABLE);
}

weft_future *weft_wait_writable(weft_loop *loop, int fd)
{
    return fd_wait_new(loop, fd, WEFT_WRITABLE);
}
