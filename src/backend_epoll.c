/* backend_epoll.c - Linux epoll: level-triggered, one epoll_ctl per changed
 * watcher per wait, events straight to the watcher (data.ptr), an eventfd
 * for wakeups.
 *
 * w->backend holds what the kernel was told: REG (registered) plus the
 * interest bits.  Registration happens at weft_io_init with no interest
 * (that validates the fd); an fd whose interest drops to 0 is deleted, and
 * so is one that reports an event nobody wants (a hang-up is reported even
 * with no interest, and would wake every wait), then added again when
 * interest returns.
 *
 * Stale registrations.  epoll registers an open file, not an fd number:
 * if the watched fd is closed while a dup() of it lives on, the
 * registration (and its data.ptr) survives, yet EPOLL_CTL_DEL on the closed
 * number fails with EBADF.  When a DEL or MOD finds the fd closed (EBADF),
 * or finds that the number now names another file (ENOENT), the next wait
 * first rebuilds the whole set: a new epoll fd, every registered watcher
 * added again from the loop's fd table, the old epoll fd closed, with it
 * every stale registration and dangling data.ptr.  That is reported once
 * per rebuild (WEFT_REPORT_IO).  It costs one epoll_ctl per watcher, and
 * only happens when a program closed an fd before its watcher.
 */
#include "backend.h"

#if WEFT__HAVE_EPOLL
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_EVENTS 256 /* per wait; level-triggered, so the rest come next time */
#define REG 0x80u      /* w->backend: registered */

typedef struct epoll_state {
    int epfd;
    int wakefd;   /* eventfd; its data.ptr is &wake */
    weft_io wake; /* a stand-in with no interest: the wait's fast test fails for it */
    int stale_fd; /* >= 0: rebuild at the next wait (the fd that showed it) */
    struct epoll_event ev[MAX_EVENTS];
} epoll_state;

static uint32_t ep_events(unsigned ev)
{
    return ((ev & WEFT_READABLE) ? EPOLLIN : 0u) | ((ev & WEFT_WRITABLE) ? EPOLLOUT : 0u);
}

static int ctl(int epfd, int op, int fd, unsigned ev, void *ptr)
{
    struct epoll_event e = {0};
    e.events = ep_events(ev);
    e.data.ptr = ptr;
    return epoll_ctl(epfd, op, fd, &e) == 0 ? 0 : -errno;
}

static int ep_open(weft_loop *loop)
{
    epoll_state *s = weft__alloc(loop, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->stale_fd = -1;
    s->wakefd = -1;
    s->wake = (weft_io){{{NULL, NULL}, NULL}, {NULL, NULL}, NULL, NULL, -1, 0, 0, 0, 0};
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    int err = s->epfd < 0 ? -errno : 0;
    if (!err) {
        s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        err = s->wakefd < 0 ? -errno
                            : ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, WEFT_READABLE, &s->wake);
    }
    if (err) {
        if (s->wakefd >= 0)
            close(s->wakefd);
        if (s->epfd >= 0)
            close(s->epfd);
        weft__free(loop, s);
        return err;
    }
    loop->be_data = s;
    return 0;
}

static void ep_close(weft_loop *loop)
{
    epoll_state *s = loop->be_data;
    close(s->wakefd);
    close(s->epfd);
    weft__free(loop, s);
    loop->be_data = NULL;
}

static int ep_add(weft_loop *loop, weft_io *w)
{
    epoll_state *s = loop->be_data;
    int err = ctl(s->epfd, EPOLL_CTL_ADD, w->fd, 0, w);
    if (err)
        return err; /* -EBADF, -EPERM (a regular file), -EEXIST (our wakeup fd), -ENOMEM */
    w->backend = REG;
    return 0;
}

/* The fd of w turned out closed (or reused): rebuild at the next wait. */
static void stale(epoll_state *s, const weft_io *w)
{
    if (s->stale_fd < 0)
        s->stale_fd = w->fd;
}

/* Make the kernel's interest for w equal w->events.  force: even if the
 * backend believes it already is. */
static int sync_watcher(epoll_state *s, weft_io *w, bool force)
{
    unsigned want = w->events, reg = w->backend & REG, have = w->backend & ~REG;
    if (!want) { /* nothing wanted: not registered at all (see the top) */
        if (reg && ctl(s->epfd, EPOLL_CTL_DEL, w->fd, 0, w) == -EBADF)
            stale(s, w); /* ENOENT: the kernel forgot it already */
        w->backend = 0;
        return 0;
    }
    if (!force && reg && want == have)
        return 0;
    int err = ctl(s->epfd, reg ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, w->fd, want, w);
    if (err == -ENOENT && reg) {
        stale(s, w); /* the number names another file now */
        err = ctl(s->epfd, EPOLL_CTL_ADD, w->fd, want, w);
    } else if (err == -EEXIST && !reg) {
        err = ctl(s->epfd, EPOLL_CTL_MOD, w->fd, want, w);
    }
    if (err) {
        if (err == -EBADF && reg)
            stale(s, w);
        w->backend = 0;
        return err;
    }
    w->backend = (uint8_t)(REG | want);
    return 0;
}

static int ep_apply(weft_loop *loop, weft_io *w)
{
    return sync_watcher(loop->be_data, w, true);
}

static void ep_del(weft_loop *loop, weft_io *w)
{
    epoll_state *s = loop->be_data;
    if ((w->backend & REG) && ctl(s->epfd, EPOLL_CTL_DEL, w->fd, 0, w) == -EBADF)
        stale(s, w);
    w->backend = 0;
}

/* A new epoll set with every registered watcher: see the top of the file. */
static void rebuild(weft_loop *loop, epoll_state *s)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0 || ctl(epfd, EPOLL_CTL_ADD, s->wakefd, WEFT_READABLE, &s->wake) < 0) {
        int err = -errno;
        if (epfd >= 0)
            close(epfd);
        weft__reportf(loop, WEFT_REPORT_IO, err,
                      "epoll: fd %d was closed while watched, and the epoll set could not be "
                      "rebuilt (retrying at the next wait)",
                      s->stale_fd);
        return;
    }
    size_t n = 0;
    for (size_t fd = 0; fd < loop->nfds; fd++) {
        weft_io *w = loop->fds[fd];
        if (!w || !(w->backend & REG))
            continue;
        int err = ctl(epfd, EPOLL_CTL_ADD, w->fd, w->backend & ~REG, w);
        if (err) {
            w->backend = 0;
            if (w->events)
                weft__io_refused(loop, w, err);
        } else {
            n++;
        }
    }
    close(s->epfd);
    s->epfd = epfd;
    weft__reportf(loop, WEFT_REPORT_IO, -EBADF,
                  "epoll: fd %d was closed while watched (a dup() may keep its registration "
                  "alive): rebuilt the epoll set, %zu watchers re-added",
                  s->stale_fd, n);
    s->stale_fd = -1;
}

/* epoll's events as weft's: errors and hang-ups as readable and writable. */
static unsigned ep_revents(uint32_t r)
{
    unsigned ev = 0;
    if (r & (EPOLLIN | EPOLLERR | EPOLLHUP))
        ev |= WEFT_READABLE;
    if (r & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        ev |= WEFT_WRITABLE;
    if (r & EPOLLERR)
        ev |= WEFT_IO_ERROR;
    return ev;
}

static int ep_wait(weft_loop *loop, int64_t timeout_ns)
{
    epoll_state *s = loop->be_data;
    weft_io *w;
    while ((w = weft__io_next_change(loop)) != NULL) {
        int err = sync_watcher(s, w, false);
        if (err)
            weft__io_refused(loop, w, err);
    }
    if (s->stale_fd >= 0)
        rebuild(loop, s);
    int n = epoll_wait(s->epfd, s->ev, MAX_EVENTS, weft__timeout_ms(timeout_ns));
    if (n < 0)
        return -errno;
    for (int i = 0; i < n; i++) {
        uint32_t r = s->ev[i].events;
        w = s->ev[i].data.ptr;
        if (w == &s->wake) {
            uint64_t v;
            (void)!read(s->wakefd, &v, sizeof v);
            continue;
        }
        if (!weft__io_event(loop, w, r == EPOLLIN ? WEFT_READABLE : ep_revents(r)))
            weft__io_changed(loop, w); /* no interest: deleted at the next wait */
    }
    return n;
}

static void ep_wakeup(weft_loop *loop)
{
    const epoll_state *s = loop->be_data;
    uint64_t one = 1;
    (void)!write(s->wakefd, &one, sizeof one); /* EAGAIN: one is pending already */
}

const weft__backend weft__backend_epoll = {"epoll",  ep_open, ep_close, ep_add,
                                           ep_apply, ep_del,  ep_wait,  ep_wakeup};
#else
typedef int weft__no_epoll; /* ISO C: a translation unit must not be empty */
#endif
