/* backend_poll.c - the portable poll(2) backend, always built.
 *
 * A dense pollfd array of the watchers with interest (slot 0 is the wakeup
 * pipe), the watcher of each slot, and an fd -> slot map.  O(watched fds)
 * per wait, so it is the fallback, and the backend CI runs the whole suite
 * on besides the best one.  add() reserves a slot and the map entry for
 * every live watcher, so apply and wait never allocate.
 *
 * An fd closed while watched makes poll report POLLNVAL: the watcher gets
 * WEFT_IO_ERROR (only) once and its slot is parked (fd = -1, which poll
 * ignores) until the watcher's interest changes again; that matches epoll,
 * which forgets a closed fd.
 */
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "backend.h"

typedef struct poll_state {
    struct pollfd *pfd; /* slot 0: the wakeup pipe's read end */
    weft_io **wof;      /* the watcher of each slot (NULL for slot 0) */
    int n, cap;         /* slots in use; allocated */
    int nlive;          /* watchers added: slots that may be needed */
    int *slot;          /* fd -> slot + 1; 0 = none */
    size_t nslot;
    int wake[2]; /* non-blocking CLOEXEC pipe */
} poll_state;

static void pl_close(weft_loop *loop)
{
    poll_state *s = loop->be_data;
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0)
            close(s->wake[i]);
    weft__free(loop, s->pfd);
    weft__free(loop, s->wof);
    weft__free(loop, s->slot);
    weft__free(loop, s);
    loop->be_data = NULL;
}

static int wake_pipe(int p[2])
{
    if (pipe(p) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(p[i], F_GETFL);
        if (fl < 0 || fcntl(p[i], F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(p[i], F_SETFD, FD_CLOEXEC) < 0)
            return -errno;
    }
    return 0;
}

/* Room for `slots` slots. */
static int reserve_slots(weft_loop *loop, poll_state *s, int slots)
{
    if (slots <= s->cap)
        return 0;
    int cap = s->cap ? s->cap : 16;
    while (cap < slots)
        cap *= 2;
    struct pollfd *pfd = weft__realloc(loop, s->pfd, (size_t)cap * sizeof *pfd);
    if (!pfd)
        return -ENOMEM;
    s->pfd = pfd;
    weft_io **wof = weft__realloc(loop, s->wof, (size_t)cap * sizeof *wof);
    if (!wof)
        return -ENOMEM;
    s->wof = wof;
    s->cap = cap;
    return 0;
}

static int pl_open(weft_loop *loop)
{
    poll_state *s = weft__alloc(loop, sizeof *s);
    if (!s)
        return -ENOMEM;
    *s = (poll_state){.wake = {-1, -1}};
    loop->be_data = s;
    int err = wake_pipe(s->wake);
    if (!err)
        err = reserve_slots(loop, s, 1);
    if (err) {
        pl_close(loop);
        return err;
    }
    s->pfd[0] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
    s->wof[0] = NULL;
    s->n = 1;
    return 0;
}

static int pl_add(weft_loop *loop, weft_io *w)
{
    poll_state *s = loop->be_data;
    if (fcntl(w->fd, F_GETFD) < 0)
        return -errno; /* -EBADF, as epoll_ctl would say */
    if (w->fd == s->wake[0] || w->fd == s->wake[1])
        return -EEXIST;
    size_t need = (size_t)w->fd + 1;
    if (need > s->nslot) {
        size_t n = s->nslot ? s->nslot : 64;
        while (n < need)
            n = n > SIZE_MAX / 2 ? need : n * 2;
        int *slot = n > SIZE_MAX / sizeof *slot ? NULL
                                                : weft__realloc(loop, s->slot, n * sizeof *slot);
        if (!slot)
            return -ENOMEM;
        for (size_t i = s->nslot; i < n; i++)
            slot[i] = 0;
        s->slot = slot;
        s->nslot = n;
    }
    int err = reserve_slots(loop, s, s->nlive + 2);
    if (err)
        return err;
    s->nlive++;
    return 0;
}

static short pl_events(unsigned ev)
{
    return (short)(((ev & WEFT_READABLE) ? POLLIN : 0) | ((ev & WEFT_WRITABLE) ? POLLOUT : 0));
}

static void drop_slot(poll_state *s, weft_io *w)
{
    int k = s->slot[w->fd] - 1;
    if (k < 0)
        return;
    WEFT_ASSERT(k > 0 && k < s->n && s->wof[k] == w);
    s->n--;
    s->pfd[k] = s->pfd[s->n];
    s->wof[k] = s->wof[s->n];
    if (k < s->n)
        s->slot[s->wof[k]->fd] = k + 1;
    s->slot[w->fd] = 0;
}

/* Give w a slot with its interest (or none without interest).  force: the
 * fd is checked, since poll itself never refuses one. */
static int sync_watcher(poll_state *s, weft_io *w, bool force)
{
    if (force && w->events && fcntl(w->fd, F_GETFD) < 0)
        return -errno;
    if (!w->events) {
        drop_slot(s, w);
        return 0;
    }
    int k = s->slot[w->fd] - 1;
    if (k < 0) {
        WEFT_ASSERT(s->n < s->cap);
        k = s->n++;
        s->slot[w->fd] = k + 1;
        s->wof[k] = w;
    }
    s->pfd[k] = (struct pollfd){.fd = w->fd, .events = pl_events(w->events)}; /* unparks too */
    return 0;
}

static int pl_apply(weft_loop *loop, weft_io *w)
{
    return sync_watcher(loop->be_data, w, true);
}

static void pl_del(weft_loop *loop, weft_io *w)
{
    poll_state *s = loop->be_data;
    drop_slot(s, w);
    s->nlive--;
}

static int pl_wait(weft_loop *loop, int64_t timeout_ns)
{
    poll_state *s = loop->be_data;
    weft_io *w;
    while ((w = weft__io_next_change(loop)) != NULL)
        sync_watcher(s, w, false); /* cannot fail */
    int n = poll(s->pfd, (nfds_t)s->n, weft__timeout_ms(timeout_ns));
    if (n < 0)
        return -errno;
    for (int i = 0, left = n; i < s->n && left > 0; i++) {
        short r = s->pfd[i].revents;
        if (!r)
            continue;
        left--;
        w = s->wof[i];
        if (!w) {
            char buf[64];
            while (read(s->wake[0], buf, sizeof buf) > 0)
                ;
            continue;
        }
        if (r & POLLNVAL) {
            s->pfd[i].fd = -1; /* closed while watched: park the slot */
            weft__io_event(loop, w, WEFT_IO_ERROR);
            continue;
        }
        unsigned ev = 0;
        if (r & (POLLIN | POLLERR | POLLHUP))
            ev |= WEFT_READABLE;
        if (r & (POLLOUT | POLLERR | POLLHUP))
            ev |= WEFT_WRITABLE;
        if (r & POLLERR)
            ev |= WEFT_IO_ERROR;
        weft__io_event(loop, w, ev);
    }
    return n;
}

static void pl_wakeup(weft_loop *loop)
{
    const poll_state *s = loop->be_data;
    char one = 1;
    (void)!write(s->wake[1], &one, 1); /* EAGAIN: the pipe is full, a wakeup is pending */
}

const weft__backend weft__backend_poll = {"poll",   pl_open, pl_close, pl_add,
                                          pl_apply, pl_del,  pl_wait,  pl_wakeup};
