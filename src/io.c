/* io.c - fd watchers: caller-owned weft_io, the loop's fd table, and the
 * asyncio-style weft_add_reader / weft_add_writer built on top.
 *
 * weft_io_init asks the backend first (so a bad fd is refused before any
 * memory is spent), then records loop->fds[fd] = w.  Start and stop only
 * change w->events and put w on the loop's change list; the backend syncs
 * the kernel at its next wait.  The backend reports readiness straight to
 * the watcher (no lookup per event), which queues its embedded ready node
 * once per iteration.
 *
 * Costs: init one backend call (epoll_ctl or fcntl) and an amortised table
 * growth (doubling, 8 bytes per fd number); start / stop O(1), no system
 * call; close one backend call.  The table is indexed by fd, so its size
 * follows the largest fd watched.
 */
#include <limits.h>

#include "backend.h"

/* The documented size on LP64 (the caller embeds it). */
_Static_assert(sizeof(void *) != 8 || sizeof(weft_io) == 64, "weft_io grew");

/* ---- the fd table -------------------------------------------------------------------- */

/* Make loop->fds hold index fd: grow by doubling, in size_t (fd <= INT_MAX
 * cannot overflow it), zero-filling the new part.  -ENOMEM. */
static int fds_reserve(weft_loop *loop, int fd)
{
    size_t need = (size_t)fd + 1;
    if (need <= loop->nfds)
        return 0;
    size_t n = loop->nfds ? loop->nfds : 64;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (n > SIZE_MAX / sizeof *loop->fds)
        return -ENOMEM;
    weft_io **fds = weft__realloc(loop, loop->fds, n * sizeof *fds);
    if (!fds)
        return -ENOMEM;
    for (size_t i = loop->nfds; i < n; i++)
        fds[i] = NULL;
    loop->fds = fds;
    loop->nfds = n;
    return 0;
}

static weft_io *fd_watcher(const weft_loop *loop, int fd)
{
    return fd >= 0 && (size_t)fd < loop->nfds ? loop->fds[fd] : NULL;
}

/* ---- the change list ------------------------------------------------------------------- */

void weft__io_changed(weft_loop *loop, weft_io *w)
{
    if (!w->change.next)
        weft__list_push(&loop->changes, &w->change);
}

weft_io *weft__io_next_change(weft_loop *loop)
{
    if (weft__list_empty(&loop->changes))
        return NULL;
    weft_link *l = loop->changes.next;
    weft__list_unlink(l);
    return WEFT_CONTAINER_OF(l, weft_io, change);
}

/* Set w's interest to ev: count it, drop gathered events nobody wants any
 * more (unqueueing w if none is left), and let the backend know at its
 * next wait. */
static void set_interest(weft_io *w, unsigned ev)
{
    weft_loop *loop = w->loop;
    if (ev == w->events)
        return;
    loop->nwatched += (ev != 0) - (w->events != 0);
    if (loop->nwatched == 1 && ev && !w->events) /* the first: see WEFT__ATTN_STATE */
        atomic_fetch_or_explicit(&loop->attn, WEFT__ATTN_STATE, memory_order_relaxed);
    w->events = (uint8_t)ev;
    w->revents = (uint8_t)(w->revents & (ev | WEFT_IO_ERROR));
    if (!w->revents && weft__node_linked(&w->node))
        weft__node_unlink(&w->node);
    weft__io_changed(loop, w);
}

void weft__io_refused(weft_loop *loop, weft_io *w, int err)
{
    (void)err; /* the callback learns only that the fd is gone */
    set_interest(w, 0);
    if (w->change.next)
        weft__list_unlink(&w->change); /* nothing left to sync */
    weft__io_event(loop, w, WEFT_IO_ERROR);
}

/* ---- weft_io ----------------------------------------------------------------------------- */

/* Run a watcher: its callback gets what was gathered this iteration.
 * (weft__run_head dispatches watchers itself, as it does call_soon nodes;
 * this is for every other way a node runs.) */
void weft__io_run(weft_node *n)
{
    weft_io *w = WEFT_CONTAINER_OF(n, weft_io, node);
    unsigned ev = w->revents;
    w->revents = 0;
    /* the report prints the symbol; the pointer is never called as a weft_cb */
    weft__running_cb(w->loop, (weft_cb *)(void (*)(void))w->cb, w);
    w->cb(w, ev);
}

int weft_io_init(weft_io *w, weft_loop *loop, int fd, weft_io_cb *cb)
{
    if (!w || !loop || !cb)
        return -EINVAL;
    if (weft__wrong_thread(loop, "weft_io_init"))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    if (fd < 0)
        return -EBADF;
    if (fd_watcher(loop, fd))
        return -EEXIST;
    *w = (weft_io){{{NULL, NULL}, weft__io_run}, {NULL, NULL}, loop, cb, fd, 0, 0, 0, 0};
    int err = loop->be->add(loop, w); /* validates fd: before the table grows */
    if (!err) {
        err = fds_reserve(loop, fd);
        if (err)
            loop->be->del(loop, w);
    }
    if (err) {
        w->loop = NULL;
        return err;
    }
    loop->fds[fd] = w;
    w->flags = WEFT__IO_LIVE;
    return 0;
}

/* The checks start and stop share; 0 to go on. */
static int io_check(weft_io *w, unsigned events, const char *what)
{
    if (!w || !w->loop || (events & ~(unsigned)(WEFT_READABLE | WEFT_WRITABLE)))
        return -EINVAL;
    if (weft__wrong_thread(w->loop, what))
        return -EPERM;
    if (weft__closed(w->loop))
        return WEFT_ECLOSED;
    if (!(w->flags & WEFT__IO_LIVE))
        return -EINVAL;
    return 0;
}

int weft_io_start(weft_io *w, unsigned events)
{
    int err = io_check(w, events, "weft_io_start");
    if (!err)
        set_interest(w, w->events | events);
    return err;
}

int weft_io_stop(weft_io *w, unsigned events)
{
    int err = io_check(w, events, "weft_io_stop");
    if (!err)
        set_interest(w, w->events & ~events);
    return err;
}

unsigned weft_io_events(const weft_io *w)
{
    return w && w->loop ? w->events : 0;
}

int weft_io_fd(const weft_io *w)
{
    return w && w->loop ? w->fd : -1;
}

weft_loop *weft_io_loop(const weft_io *w)
{
    return w ? w->loop : NULL;
}

/* Unhook w from everything of the loop (not from the backend). */
static void io_detach(weft_loop *loop, weft_io *w)
{
    if (w->events)
        loop->nwatched--;
    if (weft__node_linked(&w->node))
        weft__node_unlink(&w->node);
    if (w->change.next)
        weft__list_unlink(&w->change);
    WEFT_ASSERT(fd_watcher(loop, w->fd) == w);
    loop->fds[w->fd] = NULL;
    w->events = w->revents = 0;
    w->flags = 0;
}

void weft_io_close(weft_io *w)
{
    if (!w || !w->loop)
        return;
    weft_loop *loop = w->loop;
    if (weft__wrong_thread(loop, "weft_io_close"))
        return;
    if (w->flags & WEFT__IO_LIVE) {
        loop->be->del(loop, w);
        io_detach(loop, w);
    }
    w->loop = NULL;
}

/* ---- weft_add_reader / weft_add_writer ------------------------------------------------------ */

/* The per-fd record: a watcher and the two asyncio-style callbacks. */
typedef struct fdrec {
    weft_io io;
    weft_cb *rd_fn, *wr_fn;
    void *rd_arg, *wr_arg;
} fdrec;

/* Run the reader, then the writer: each is its own callback for the lag
 * watchdog, and each is looked up again just before it runs (the reader
 * may have removed or replaced the writer). */
static void rec_run(weft_io *w, unsigned ev)
{
    fdrec *r = WEFT_CONTAINER_OF(w, fdrec, io);
    weft_loop *loop = w->loop;
    bool ran = false;
    if ((ev & WEFT_READABLE) && r->rd_fn) {
        weft__running_cb(loop, r->rd_fn, r->rd_arg);
        r->rd_fn(r->rd_arg);
        ran = true;
    }
    if ((ev & WEFT_WRITABLE) && r->wr_fn) {
        uint64_t tick = 0;
        if (ran) { /* the reader's tick is checked here, the writer gets its own */
            weft__cb_end(loop, atomic_load_explicit(&loop->lag.tick, memory_order_relaxed),
                         &w->node, NULL);
            tick = weft__cb_begin(loop);
        }
        weft__running_cb(loop, r->wr_fn, r->wr_arg);
        r->wr_fn(r->wr_arg);
        if (ran)
            weft__cb_end(loop, tick, &w->node, NULL);
    }
}

static int add_watcher(weft_loop *loop, int fd, unsigned dir, weft_cb *fn, void *arg)
{
    if (!loop || !fn)
        return -EINVAL;
    if (weft__wrong_thread(loop, dir == WEFT_READABLE ? "weft_add_reader" : "weft_add_writer"))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    if (fd < 0)
        return -EBADF;
    weft_io *w = fd_watcher(loop, fd);
    fdrec *r;
    if (w && !(w->flags & WEFT__IO_RECORD))
        return -EEXIST; /* a caller-owned weft_io has this fd */
    if (w) {
        r = WEFT_CONTAINER_OF(w, fdrec, io);
    } else {
        r = weft__alloc(loop, sizeof *r);
        if (!r)
            return -ENOMEM;
        int err = weft_io_init(&r->io, loop, fd, rec_run);
        if (err) {
            weft__free(loop, r);
            return err;
        }
        r->io.flags |= WEFT__IO_RECORD;
        r->rd_fn = r->wr_fn = NULL;
        r->rd_arg = r->wr_arg = NULL;
    }
    unsigned old = r->io.events;
    set_interest(&r->io, old | dir);
    /* sync now, even if nothing seems to change: the fd may be a new one
     * under an old number, which the kernel does not know yet */
    int err = loop->be->apply(loop, &r->io);
    if (err) {
        set_interest(&r->io, old);
        if (!w) {
            weft_io_close(&r->io);
            weft__free(loop, r);
        }
        return err;
    }
    if (r->io.change.next)
        weft__list_unlink(&r->io.change); /* applied */
    /* the replaced callback must not run, even if already queued */
    r->io.revents = (uint8_t)(r->io.revents & ~dir);
    if (!r->io.revents && weft__node_linked(&r->io.node))
        weft__node_unlink(&r->io.node);
    if (dir == WEFT_READABLE) {
        r->rd_fn = fn;
        r->rd_arg = arg;
    } else {
        r->wr_fn = fn;
        r->wr_arg = arg;
    }
    return 0;
}

static int remove_watcher(weft_loop *loop, int fd, unsigned dir)
{
    if (!loop)
        return -EINVAL;
    if (weft__wrong_thread(loop,
                           dir == WEFT_READABLE ? "weft_remove_reader" : "weft_remove_writer"))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    weft_io *w = fd_watcher(loop, fd);
    if (!w || !(w->flags & WEFT__IO_RECORD) || !(w->events & dir))
        return -ENOENT;
    fdrec *r = WEFT_CONTAINER_OF(w, fdrec, io);
    if (dir == WEFT_READABLE)
        r->rd_fn = NULL;
    else
        r->wr_fn = NULL;
    set_interest(w, w->events & ~dir); /* the backend forgets it at its next wait */
    return 0;
}

int weft_add_reader(weft_loop *loop, int fd, weft_cb *fn, void *arg)
{
    return add_watcher(loop, fd, WEFT_READABLE, fn, arg);
}

int weft_add_writer(weft_loop *loop, int fd, weft_cb *fn, void *arg)
{
    return add_watcher(loop, fd, WEFT_WRITABLE, fn, arg);
}

bool weft__fd_watched(const weft_loop *loop, int fd, unsigned dir)
{
    weft_io *w = fd_watcher(loop, fd);
    if (!w)
        return false;
    if (!(w->flags & WEFT__IO_RECORD))
        return true; /* a caller-owned watcher: add_reader/writer would refuse anyway */
    fdrec *r = WEFT_CONTAINER_OF(w, fdrec, io);
    return dir == WEFT_READABLE ? r->rd_fn != NULL : r->wr_fn != NULL;
}

int weft_remove_reader(weft_loop *loop, int fd)
{
    return remove_watcher(loop, fd, WEFT_READABLE);
}

int weft_remove_writer(weft_loop *loop, int fd)
{
    return remove_watcher(loop, fd, WEFT_WRITABLE);
}

/* ---- close
 * ---------------------------------------------------------------------------------------- */

void weft__io_close_all(weft_loop *loop)
{
    for (size_t fd = 0; fd < loop->nfds; fd++) {
        weft_io *w = loop->fds[fd];
        if (!w)
            continue;
        bool record = w->flags & WEFT__IO_RECORD;
        io_detach(loop, w); /* the backend forgets everything at its close */
        if (record)
            weft__free(loop, WEFT_CONTAINER_OF(w, fdrec, io));
    }
    weft__free(loop, loop->fds);
    loop->fds = NULL;
    loop->nfds = 0;
}
