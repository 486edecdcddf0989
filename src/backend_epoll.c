/* backend_epoll.c - Linux epoll backend.
 *
 * Level-triggered, one epoll_ctl per interest change, one epoll_wait per
 * iteration that asks the backend at all.  epoll forgets an fd when its last
 * descriptor is closed, so "not registered" answers from the kernel are
 * mapped to the registration the loop wanted.
 */
#ifdef __linux__
#include <limits.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop_internal.h"

#define MAX_EVENTS 256

struct epoll_state {
    int epfd;
    struct epoll_event ev[MAX_EVENTS];
};

static int ep_open(weft_loop *loop)
{
    struct epoll_state *s = weft__alloc(loop, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int err = -errno;
        weft__free(loop, s);
        return err;
    }
    loop->be_data = s;
    return 0;
}

static void ep_close(weft_loop *loop)
{
    struct epoll_state *s = loop->be_data;
    close(s->epfd);
    weft__free(loop, s);
    loop->be_data = NULL;
}

static int ep_watch(weft_loop *loop, int fd, unsigned old_ev, unsigned new_ev)
{
    struct epoll_state *s = loop->be_data;
    struct epoll_event e = {0};
    e.events = ((new_ev & WEFT__IN) ? EPOLLIN : 0u) | ((new_ev & WEFT__OUT) ? EPOLLOUT : 0u);
    e.data.fd = fd;
    int op = !old_ev ? EPOLL_CTL_ADD : new_ev ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
    if (epoll_ctl(s->epfd, op, fd, &e) == 0)
        return 0;
    if (op == EPOLL_CTL_DEL && (errno == ENOENT || errno == EBADF))
        return 0; /* already forgotten: the fd was closed */
    if (op == EPOLL_CTL_MOD && errno == ENOENT)
        op = EPOLL_CTL_ADD; /* closed and reopened under the same number */
    else if (op == EPOLL_CTL_ADD && errno == EEXIST)
        op = EPOLL_CTL_MOD;
    else
        return -errno;
    return epoll_ctl(s->epfd, op, fd, &e) == 0 ? 0 : -errno;
}

static int ep_wait(weft_loop *loop, int64_t timeout_ns)
{
    struct epoll_state *s = loop->be_data;
    int ms = -1;
    if (timeout_ns >= 0) {
        int64_t m = (timeout_ns + 999999) / 1000000; /* round up: never early */
        ms = m > INT_MAX ? INT_MAX : (int)m;
    }
    int n = epoll_wait(s->epfd, s->ev, MAX_EVENTS, ms);
    if (n < 0)
        return -errno;
    for (int i = 0; i < n; i++) {
        uint32_t r = s->ev[i].events;
        unsigned ev = 0;
        if (r & (EPOLLIN | EPOLLERR | EPOLLHUP))
            ev |= WEFT__IN;
        if (r & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            ev |= WEFT__OUT;
        weft__io_ready(loop, s->ev[i].data.fd, ev);
    }
    return n;
}

const weft__backend weft__backend_epoll = {"epoll", ep_open, ep_close, ep_watch, ep_wait};
#else
typedef int weft__no_epoll; /* ISO C: a translation unit must not be empty */
#endif
