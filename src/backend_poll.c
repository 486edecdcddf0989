/* backend_poll.c - the portable poll(2) backend, always built.
 *
 * A dense pollfd array plus an fd -> slot map.  O(watched fds) per wait, so
 * it is the fallback, and the backend CI runs the whole suite on besides the
 * best one.  An fd closed while watched makes poll report POLLNVAL; the slot
 * is then parked (fd = -1, which poll ignores) until the loop changes that
 * fd's interest again, matching epoll, which forgets closed fds.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>

#include "loop_internal.h"

struct poll_state {
    struct pollfd *pfd; /* dense array of watched fds */
    int *fdof;          /* fd of each slot (pfd[i].fd may be parked at -1) */
    int n, cap;
    int *slot; /* fd -> slot index + 1; 0 = not watched */
    int slot_cap;
};

static int pl_open(weft_loop *loop)
{
    struct poll_state *s = weft__alloc(loop, sizeof *s);
    if (!s)
        return -ENOMEM;
    *s = (struct poll_state){0};
    loop->be_data = s;
    return 0;
}

static void pl_close(weft_loop *loop)
{
    struct poll_state *s = loop->be_data;
    weft__free(loop, s->pfd);
    weft__free(loop, s->fdof);
    weft__free(loop, s->slot);
    weft__free(loop, s);
    loop->be_data = NULL;
}

static short pl_events(unsigned ev)
{
    return (short)(((ev & WEFT__IN) ? POLLIN : 0) | ((ev & WEFT__OUT) ? POLLOUT : 0));
}

static int pl_grow(weft_loop *loop, struct poll_state *s, int fd)
{
    if (fd >= s->slot_cap) {
        int cap = s->slot_cap ? s->slot_cap : 64;
        while (cap <= fd)
            cap *= 2;
        int *slot = weft__realloc(loop, s->slot, (size_t)cap * sizeof *slot);
        if (!slot)
            return -ENOMEM;
        for (int i = s->slot_cap; i < cap; i++)
            slot[i] = 0;
        s->slot = slot;
        s->slot_cap = cap;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        struct pollfd *pfd = weft__realloc(loop, s->pfd, (size_t)cap * sizeof *pfd);
        if (!pfd)
            return -ENOMEM;
        s->pfd = pfd;
        int *fdof = weft__realloc(loop, s->fdof, (size_t)cap * sizeof *fdof);
        if (!fdof)
            return -ENOMEM;
        s->fdof = fdof;
        s->cap = cap;
    }
    return 0;
}

static int pl_watch(weft_loop *loop, int fd, unsigned old_ev, unsigned new_ev)
{
    struct poll_state *s = loop->be_data;
    (void)old_ev;
    if (new_ev && fcntl(fd, F_GETFD) < 0)
        return -errno; /* -EBADF, as epoll_ctl would say */
    int k = fd < s->slot_cap ? s->slot[fd] - 1 : -1;
    if (!new_ev) {
        if (k < 0)
            return 0;
        s->n--;
        s->pfd[k] = s->pfd[s->n];
        s->fdof[k] = s->fdof[s->n];
        s->slot[s->fdof[k]] = k + 1;
        s->slot[fd] = 0;
        return 0;
    }
    if (k < 0) {
        int err = pl_grow(loop, s, fd);
        if (err)
            return err;
        k = s->n++;
        s->slot[fd] = k + 1;
        s->fdof[k] = fd;
    }
    s->pfd[k] = (struct pollfd){.fd = fd, .events = pl_events(new_ev)};
    return 0;
}

static int pl_wait(weft_loop *loop, int64_t timeout_ns)
{
    struct poll_state *s = loop->be_data;
    int ms = -1;
    if (timeout_ns >= 0) {
        int64_t m = (timeout_ns + 999999) / 1000000; /* round up: never early */
        ms = m > INT_MAX ? INT_MAX : (int)m;
    }
    int n = poll(s->pfd, (nfds_t)s->n, ms);
    if (n < 0)
        return -errno;
    for (int i = 0, left = n; i < s->n && left > 0; i++) {
        short r = s->pfd[i].revents;
        if (!r)
            continue;
        left--;
        if (r & POLLNVAL) {
            s->pfd[i].fd = -1; /* closed while watched: park the slot */
            continue;
        }
        unsigned ev = 0;
        if (r & (POLLIN | POLLERR | POLLHUP))
            ev |= WEFT__IN;
        if (r & (POLLOUT | POLLERR | POLLHUP))
            ev |= WEFT__OUT;
        weft__io_ready(loop, s->fdof[i], ev);
    }
    return n;
}

const weft__backend weft__backend_poll = {"poll", pl_open, pl_close, pl_watch, pl_wait};
