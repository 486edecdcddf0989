/* udp.c - datagram endpoints (weft/udp.h): asyncio's datagram transport,
 * with awaitable receives.
 *
 * An endpoint is one block: the socket's weft_io watcher, three handles
 * (connection_made, connection_lost, the pause/resume notice), the FIFO of
 * pending receives and the list of pending drains.  The loop's UDP layer
 * keeps every endpoint (for loop close), the pending creations, and the
 * one 64 KiB buffer that datagram_received reads into: reads never nest
 * (they happen only in a watcher's callback), so one buffer per loop
 * serves every endpoint.
 *
 * Reading.  The watcher wants READABLE only while someone takes
 * datagrams: a pending receive, or datagram_received (not paused).  Each
 * readiness reads up to BATCH datagrams, each one straight into the
 * oldest receive's buffer, else into the layer's buffer for
 * datagram_received.  A receive is completed by the read that filled it,
 * in the same callback, so a receive that is cancelled while pending has
 * read nothing; one that is done keeps its datagram (its rollback refuses,
 * so that a wait_for or a cancelled task still delivers it).
 *
 * Writing.  weft_udp_sendto is one sendto: the kernel takes the datagram
 * or the call fails.  -EAGAIN pauses the endpoint: the watcher wants
 * WRITABLE, and the notice handle tells the protocol (pause_writing, then
 * resume_writing once the socket is writable), coalescing changes that
 * happen before it runs.
 *
 * Lifetime.  close (or abort) closes the fd at once, fails what is pending
 * and queues connection_lost; the endpoint is freed after it returns.
 * Loop close does the same to every endpoint still there, calling
 * connection_lost itself (the ready queue is about to be dropped).
 */
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/sockios.h> /* SIOCOUTQ */
#ifndef SO_REUSEPORT
#include <asm/socket.h> /* hidden by a strict POSIX build */
#endif
#endif

#include "future_internal.h"
#include "weft/executor.h"
#include "weft/udp.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

enum { BATCH = 32 }; /* datagrams read per readiness */

/* ---- the layer: every endpoint, pending creations, the read buffer ----------------------- */

typedef struct udp_layer {
    weft__layer base;
    weft_link eps;   /* every endpoint until it is freed */
    weft_link opens; /* pending weft_create_datagram_endpoint futures */
    struct sockaddr_storage from;
    unsigned char buf[WEFT_UDP_MAX_DATAGRAM + 1]; /* one more: a longer one shows */
} udp_layer;

enum {
    EP_IO = 1u << 0,          /* the watcher is initialised */
    EP_MADE = 1u << 1,        /* connection_made ran: reading may start */
    EP_CLOSING = 1u << 2,     /* close, abort or loop close */
    EP_LOST = 1u << 3,        /* connection_lost is running or ran */
    EP_CONNECTED = 1u << 4,   /* has a peer: sendto takes a NULL address */
    EP_PAUSED = 1u << 5,      /* writing paused (a send hit -EAGAIN) */
    EP_TOLD_PAUSED = 1u << 6, /* pause_writing was called, resume not yet */
    EP_READ_PAUSED = 1u << 7, /* weft_udp_pause_reading */
};

struct weft_udp {
    weft_io io;
    weft_handle made, lost, notice;
    weft_link link;   /* in the layer's eps */
    weft_link recvs;  /* pending receives, oldest first */
    weft_link drains; /* pending drains */
    const weft_datagram_protocol *proto;
    void *ud;
    weft_loop *loop;
    int fd;
    int lost_err;
    unsigned flags;
    socklen_t peerlen;
    weft_udp_stats stats;
    struct sockaddr_storage peer;
};

/* A pending receive or drain: one pooled block, its own buffer after it
 * for weft_udp_recvfrom. */
typedef struct udp_wait {
    weft_future f;
    weft__hold hold; /* the endpoint holds it while it is pending */
    weft_link link;  /* in ep->recvs or ep->drains while pending */
    size_t bytes;    /* the block's size */
    void *buf;
    size_t cap;
    weft_datagram d; /* the value */
    _Alignas(16) unsigned char data[];
} udp_wait;

static void layer_close(weft_loop *loop, weft__layer *self);
static void layer_dump(weft_loop *loop, weft__layer *self, weft__strbuf *out);

static udp_layer *layer_of(weft_loop *loop)
{
    weft__layer *l = weft__layer_get(loop, WEFT__LAYER_UDP);
    if (l)
        return (udp_layer *)(void *)l;
    if (!weft__futures(loop)) /* receives are futures */
        return NULL;
    udp_layer *L = weft__alloc(loop, sizeof *L);
    if (!L)
        return NULL;
    memset(&L->base, 0, sizeof L->base);
    L->base.close = layer_close;
    L->base.dump = layer_dump;
    weft__list_init(&L->eps);
    weft__list_init(&L->opens);
    weft__layer_set(loop, WEFT__LAYER_UDP, &L->base);
    return L;
}

static int sock_err(void)
{
    return errno > 0 ? -errno : -EIO;
}

/* ---- pending receives and drains --------------------------------------------------------- */

static int wait_cancel(weft_future *f)
{
    udp_wait *w = WEFT_CONTAINER_OF(f, udp_wait, f);
    if (w->link.next)
        weft__list_unlink(&w->link); /* nothing was read for it */
    int err = weft__future_cancel_now(f);
    weft__future_unhold(&w->hold);
    return err;
}

/* Done means done: the datagram stays with the future (a wait_for or a
 * task cancelled after the completion still gets it). */
static bool wait_rollback(weft_future *f)
{
    (void)f;
    return false;
}

static void wait_release(weft_future *f)
{
    udp_wait *w = WEFT_CONTAINER_OF(f, udp_wait, f);
    weft__future_unhold(&w->hold);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, w, w->bytes);
}

static const weft__future_ops recv_ops = {
    .kind = "udp receive",
    .cancel = wait_cancel,
    .rollback = wait_rollback,
    .release = wait_release,
};

static const weft__future_ops drain_ops = {
    .kind = "udp drain",
    .cancel = wait_cancel,
    .release = wait_release,
};

/* Finish pending w (value, or err < 0) and let go of it: last, it may be freed. */
static void wait_finish(udp_wait *w, int err)
{
    weft__list_unlink(&w->link);
    if (err == WEFT_ECLOSED)
        w->f.flags |= WEFT__F_OBSERVED; /* the loop closed: nothing to report */
    if (err)
        weft__future_fail(&w->f, err);
    else
        weft__future_resolve(&w->f, w->f.ops == &recv_ops ? (weft_value){.p = &w->d}
                                                          : (weft_value){.i = 0});
    weft__future_unhold(&w->hold);
}

static void fail_all(weft_link *list, int err)
{
    while (!weft__list_empty(list))
        wait_finish(WEFT_CONTAINER_OF(list->next, udp_wait, link), err);
}

/* ---- interest, the notice, closing ------------------------------------------------------- */

static bool wants_read(const weft_udp *ep)
{
    if ((ep->flags & (EP_MADE | EP_CLOSING)) != EP_MADE)
        return false;
    return !weft__list_empty(&ep->recvs) ||
           (ep->proto && ep->proto->datagram_received && !(ep->flags & EP_READ_PAUSED));
}

/* Make the watcher's interest match what the endpoint needs now. */
static void ep_sync(weft_udp *ep)
{
    if (!(ep->flags & EP_IO))
        return;
    unsigned want = (wants_read(ep) ? WEFT_READABLE : 0u) |
                    ((ep->flags & (EP_PAUSED | EP_CLOSING)) == EP_PAUSED ? WEFT_WRITABLE : 0u);
    unsigned have = weft_io_events(&ep->io);
    if (want & ~have)
        weft_io_start(&ep->io, want & ~have);
    if (have & ~want)
        weft_io_stop(&ep->io, have & ~want);
}

/* The notice handle: tell the protocol where writing stands now. */
static void notice_run(void *arg)
{
    weft_udp *ep = arg;
    if (ep->flags & EP_CLOSING)
        return;
    const weft_datagram_protocol *p = ep->proto;
    if ((ep->flags & EP_PAUSED) && !(ep->flags & EP_TOLD_PAUSED)) {
        ep->flags |= EP_TOLD_PAUSED;
        if (p && p->pause_writing)
            p->pause_writing(ep, ep->ud);
    } else if (!(ep->flags & EP_PAUSED) && (ep->flags & EP_TOLD_PAUSED)) {
        ep->flags &= ~(unsigned)EP_TOLD_PAUSED;
        if (p && p->resume_writing)
            p->resume_writing(ep, ep->ud);
    }
}

/* Release the socket (once) and fail what is pending with err. */
static void ep_shut(weft_udp *ep, int err)
{
    if (ep->flags & EP_IO) {
        weft_io_close(&ep->io);
        ep->flags &= ~(unsigned)EP_IO;
    }
    if (ep->fd >= 0) {
        close(ep->fd);
        ep->fd = -1;
    }
    fail_all(&ep->recvs, err);
    fail_all(&ep->drains, err);
}

/* connection_lost, then free the endpoint. */
static void ep_finish(weft_udp *ep)
{
    weft_handle_cancel(&ep->made);
    weft_handle_cancel(&ep->notice);
    weft_handle_cancel(&ep->lost);
    ep->flags |= EP_LOST;
    if (ep->proto && ep->proto->connection_lost)
        ep->proto->connection_lost(ep, ep->lost_err, ep->ud);
    weft__list_unlink(&ep->link);
    weft__free(ep->loop, ep);
}

static void lost_run(void *arg)
{
    weft_udp *ep = arg;
    ep_finish(ep);
}

static void made_run(void *arg)
{
    weft_udp *ep = arg;
    ep->flags |= EP_MADE;
    if (ep->proto && ep->proto->connection_made)
        ep->proto->connection_made(ep, ep->ud);
    ep_sync(ep);
}

/* ---- reading ----------------------------------------------------------------------------- */

static void writable(weft_udp *ep)
{
    ep->flags &= ~(unsigned)EP_PAUSED;
    fail_all(&ep->drains, 0);
    weft_handle_schedule(ep->loop, &ep->notice);
}

/* Read up to BATCH datagrams, each into the oldest receive or for
 * datagram_received, until the socket is empty or nobody takes more. */
static void read_batch(weft_udp *ep)
{
    udp_layer *L = (udp_layer *)(void *)weft__layer_get(ep->loop, WEFT__LAYER_UDP);
    for (int i = 0; i < BATCH && !(ep->flags & EP_CLOSING); i++) {
        udp_wait *r =
            weft__list_empty(&ep->recvs) ? NULL : WEFT_CONTAINER_OF(ep->recvs.next, udp_wait, link);
        const weft_datagram_protocol *p = ep->proto;
        if (!r && !(p && p->datagram_received && !(ep->flags & EP_READ_PAUSED)))
            break;
        struct iovec iov = {r ? r->buf : L->buf, r ? r->cap : sizeof L->buf};
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_name = r ? (void *)&r->d.addr : (void *)&L->from;
        msg.msg_namelen = sizeof(struct sockaddr_storage);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        ssize_t n = recvmsg(ep->fd, &msg, 0);
        if (n < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                break;
            ep->stats.errors_received++;
            if (r)
                wait_finish(r, -e);
            else if (p->error_received)
                p->error_received(ep, -e, ep->ud);
            if (e != ECONNREFUSED && e != EHOSTUNREACH && e != ENETUNREACH && e != EHOSTDOWN &&
                e != ENETDOWN && e != ECONNRESET)
                break; /* not a queued ICMP error: do not spin on it */
            continue;
        }
        ep->stats.datagrams_received++;
        bool cut = (msg.msg_flags & MSG_TRUNC) != 0;
        if (r) {
            r->d.data = r->buf;
            r->d.n = (size_t)n;
            r->d.truncated = cut;
            r->d.addrlen = msg.msg_namelen;
            wait_finish(r, 0);
        } else {
            size_t len = (size_t)n > WEFT_UDP_MAX_DATAGRAM ? WEFT_UDP_MAX_DATAGRAM : (size_t)n;
            p->datagram_received(ep, L->buf, len, (const struct sockaddr *)&L->from,
                                 msg.msg_namelen, ep->ud);
        }
    }
}

static void ep_io(weft_io *w, unsigned events)
{
    weft_udp *ep = WEFT_CONTAINER_OF(w, weft_udp, io);
    if ((events & WEFT_WRITABLE) && (ep->flags & EP_PAUSED))
        writable(ep);
    if (events & (WEFT_READABLE | WEFT_IO_ERROR))
        read_batch(ep);
    if (!(ep->flags & EP_CLOSING))
        ep_sync(ep);
}

/* ---- making endpoints -------------------------------------------------------------------- */

/* Checks every loop call of the API makes: 0 to go on. */
static int loop_check(weft_loop *loop, const char *call)
{
    if (!loop)
        return -EINVAL;
    if (weft__wrong_thread(loop, call))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    return 0;
}

/* An endpoint for fd (which it owns from now on only if this succeeds). */
static int ep_new(weft_loop *loop, int fd, const weft_datagram_protocol *proto, void *ud,
                  weft_udp **out)
{
    udp_layer *L = layer_of(loop);
    if (!L)
        return -ENOMEM;
    weft_udp *ep = weft__alloc(loop, sizeof *ep);
    if (!ep)
        return -ENOMEM;
    memset(ep, 0, sizeof *ep);
    int err = weft_io_init(&ep->io, loop, fd, ep_io);
    if (err) {
        weft__free(loop, ep);
        return err;
    }
    ep->flags = EP_IO;
    ep->loop = loop;
    ep->fd = fd;
    ep->proto = proto;
    ep->ud = ud;
    weft__list_init(&ep->recvs);
    weft__list_init(&ep->drains);
    socklen_t len = sizeof ep->peer;
    if (getpeername(fd, (struct sockaddr *)&ep->peer, &len) == 0 && len <= sizeof ep->peer) {
        ep->flags |= EP_CONNECTED;
        ep->peerlen = len;
    }
    weft_handle_init(&ep->made, made_run, ep);
    weft_handle_init(&ep->lost, lost_run, ep);
    weft_handle_init(&ep->notice, notice_run, ep);
    weft_handle_schedule(loop, &ep->made); /* the loop is open: cannot fail */
    weft__list_push(&L->eps, &ep->link);
    *out = ep;
    return 0;
}

/* Undo ep_new (the fd stays open: the caller still owns it). */
static void ep_unmake(weft_udp *ep)
{
    weft_handle_cancel(&ep->made);
    weft_io_close(&ep->io);
    weft__list_unlink(&ep->link);
    weft__free(ep->loop, ep);
}

int weft_udp_from_fd(weft_loop *loop, int fd, const weft_datagram_protocol *proto, void *ud,
                     weft_udp **out)
{
    int err = loop_check(loop, "weft_udp_from_fd");
    if (err)
        return err;
    if (!out || fd < 0)
        return -EINVAL;
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
        return sock_err();
    if (type != SOCK_DGRAM)
        return -EPROTOTYPE;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return sock_err();
    weft_udp *ep = NULL;
    err = ep_new(loop, fd, proto, ud, &ep);
    if (err)
        return err;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        err = sock_err();
        ep_unmake(ep);
        return err;
    }
    *out = ep;
    return 0;
}

/* One side of a creation: getaddrinfo's list, or one given address. */
typedef struct side {
    bool used;
    bool has_one;
    struct addrinfo *list; /* freeaddrinfo */
    struct addrinfo one;
    struct sockaddr_storage ss;
} side;

static const struct addrinfo *side_first(const side *s)
{
    return s->has_one ? &s->one : s->list;
}

static void side_free(side *s)
{
    if (s->list)
        freeaddrinfo(s->list);
    s->list = NULL;
}

static bool port_ok(int port)
{
    return port >= 0 && port <= 65535;
}

static bool addr_ok(const struct sockaddr *a, socklen_t len)
{
    return !a || (len >= sizeof(sa_family_t) && len <= sizeof(struct sockaddr_storage));
}

/* Validate opts; 0 or -EINVAL. */
static int opts_check(const weft_udp_opts *o)
{
    if (!o || !port_ok(o->local_port) || !port_ok(o->remote_port) ||
        !addr_ok(o->local_addr, o->local_addrlen) || !addr_ok(o->remote_addr, o->remote_addrlen))
        return -EINVAL;
    bool local = o->local_host || o->local_port || o->local_addr;
    bool remote = o->remote_host || o->remote_addr;
    if (o->family != AF_UNSPEC && o->family != AF_INET && o->family != AF_INET6 &&
        !(o->family == AF_UNIX && !o->local_host && !o->remote_host))
        return -EINVAL;
    if (!local && !remote && o->family != AF_INET && o->family != AF_INET6)
        return -EINVAL;
    if (!o->remote_addr && !o->remote_host && o->remote_port)
        return -EINVAL; /* a port without a host */
    if (o->local_addr && o->family != AF_UNSPEC && o->local_addr->sa_family != o->family)
        return -EINVAL;
    if (o->remote_addr && o->family != AF_UNSPEC && o->remote_addr->sa_family != o->family)
        return -EINVAL;
    return 0;
}

/* The hints of a lookup for one side. */
static struct addrinfo side_hints(const weft_udp_opts *o, bool local, bool numeric)
{
    struct addrinfo h;
    memset(&h, 0, sizeof h);
    h.ai_family = o->family;
    h.ai_socktype = SOCK_DGRAM;
    h.ai_flags = AI_NUMERICSERV | (numeric ? AI_NUMERICHOST : 0) | (local ? AI_PASSIVE : 0);
    return h;
}

/* Fill side s (local or remote) of opts without the executor.  Returns 0
 * (filled, or the side is unused), WEFT_EAI_NONAME when the host is a name,
 * or another error. */
static int side_numeric(side *s, const weft_udp_opts *o, bool local)
{
    memset(s, 0, sizeof *s);
    const struct sockaddr *a = local ? o->local_addr : o->remote_addr;
    socklen_t alen = local ? o->local_addrlen : o->remote_addrlen;
    const char *host = local ? o->local_host : o->remote_host;
    int port = local ? o->local_port : o->remote_port;
    if (a) {
        s->used = s->has_one = true;
        memcpy(&s->ss, a, alen);
        s->one.ai_family = a->sa_family;
        s->one.ai_socktype = SOCK_DGRAM;
        s->one.ai_addr = (struct sockaddr *)&s->ss;
        s->one.ai_addrlen = alen;
        return 0;
    }
    if (!host && !(local && port))
        return 0;
    s->used = true;
    char serv[8];
    snprintf(serv, sizeof serv, "%d", port);
    struct addrinfo h = side_hints(o, local, true);
    int rc = getaddrinfo(host && *host ? host : NULL, serv, &h, &s->list);
    if (rc) {
        s->list = NULL;
        return weft_eai_error(rc);
    }
    return 0;
}

/* A socket of family with the options, bound to l and connected to r
 * (either may be NULL): the fd, or -errno with nothing left open. */
static int try_open(int family, const struct addrinfo *l, const struct addrinfo *r,
                    const weft_udp_opts *o)
{
    int type = SOCK_DGRAM;
#ifdef SOCK_NONBLOCK
    type |= SOCK_NONBLOCK | SOCK_CLOEXEC;
#endif
    int fd = socket(family, type, 0);
    if (fd < 0)
        return sock_err();
    int err = 0, one = 1;
#ifndef SOCK_NONBLOCK
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        err = sock_err();
#endif
    if (!err && o->reuse_port) {
#ifdef SO_REUSEPORT
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
            err = sock_err();
#else
        err = -ENOTSUP;
#endif
    }
    if (!err && o->allow_broadcast &&
        setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0)
        err = sock_err();
    if (!err && l && bind(fd, l->ai_addr, l->ai_addrlen) < 0)
        err = sock_err();
    if (!err && r && connect(fd, r->ai_addr, r->ai_addrlen) < 0)
        err = sock_err();
    if (err) {
        close(fd);
        return err;
    }
    return fd;
}

/* Walk the address pairs of the two sides (a remote address with each
 * local one of its family) and open the first that works: the fd, or the
 * last error (-EAFNOSUPPORT if no pair matched). */
static int open_pairs(const side *ls, const side *rs, const weft_udp_opts *o)
{
    int err = -EAFNOSUPPORT;
    if (!ls->used && !rs->used)
        return try_open(o->family, NULL, NULL, o);
    if (!rs->used) {
        for (const struct addrinfo *l = side_first(ls); l; l = l->ai_next) {
            int fd = try_open(l->ai_family, l, NULL, o);
            if (fd >= 0)
                return fd;
            err = fd;
        }
        return err;
    }
    for (const struct addrinfo *r = side_first(rs); r; r = r->ai_next) {
        if (!ls->used) {
            int fd = try_open(r->ai_family, NULL, r, o);
            if (fd >= 0)
                return fd;
            err = fd;
            continue;
        }
        for (const struct addrinfo *l = side_first(ls); l; l = l->ai_next) {
            if (l->ai_family != r->ai_family)
                continue;
            int fd = try_open(r->ai_family, l, r, o);
            if (fd >= 0)
                return fd;
            err = fd;
        }
    }
    return err;
}

/* Both sides resolved: the socket, then its endpoint. */
static int open_sides(weft_loop *loop, const weft_datagram_protocol *proto, void *ud,
                      const side *ls, const side *rs, const weft_udp_opts *o, weft_udp **out)
{
    int fd = open_pairs(ls, rs, o);
    if (fd < 0)
        return fd;
    int err = ep_new(loop, fd, proto, ud, out);
    if (err)
        close(fd);
    return err;
}

int weft_udp_open(weft_loop *loop, const weft_datagram_protocol *proto, void *ud,
                  const weft_udp_opts *opts, weft_udp **out)
{
    int err = loop_check(loop, "weft_udp_open");
    if (err)
        return err;
    if (!out)
        return -EINVAL;
    err = opts_check(opts);
    if (err)
        return err;
    side ls, rs;
    err = side_numeric(&ls, opts, true);
    if (!err)
        err = side_numeric(&rs, opts, false);
    else
        memset(&rs, 0, sizeof rs);
    if (!err)
        err = open_sides(loop, proto, ud, &ls, &rs, opts, out);
    side_free(&ls);
    side_free(&rs);
    return err;
}

/* ---- weft_create_datagram_endpoint ------------------------------------------------------- */

typedef struct udp_open udp_open;

/* One side's lookup on the executor: a node parked on its future. */
typedef struct lookup {
    weft_node node;
    udp_open *o;
    weft_future *gai; /* a reference while it runs */
    side s;
} lookup;

struct udp_open {
    weft_future f;
    weft__hold hold; /* held while it resolves */
    weft_link link;  /* in the layer's opens while pending */
    const weft_datagram_protocol *proto;
    void *ud;
    weft_udp_opts opts; /* hosts and addresses not kept: only the flags */
    lookup side[2];     /* local, remote */
};

/* Withdraw a lookup: its node leaves the future (or the ready queue), the
 * job is cancelled, the list freed. */
static void lookup_drop(lookup *k)
{
    if (k->node.link.next)
        weft__node_unlink(&k->node);
    if (k->gai) {
        weft_future_cancel(k->gai);
        weft_future_unref(k->gai);
        k->gai = NULL;
    }
    side_free(&k->s);
}

/* Settle pending o: err, or open the endpoint from the two sides. */
static void open_settle(udp_open *o, int err)
{
    weft_udp *ep = NULL;
    if (!err)
        err = open_sides(o->f.loop, o->proto, o->ud, &o->side[0].s, &o->side[1].s, &o->opts, &ep);
    lookup_drop(&o->side[0]);
    lookup_drop(&o->side[1]);
    weft__list_unlink(&o->link);
    if (err == WEFT_ECLOSED)
        o->f.flags |= WEFT__F_OBSERVED; /* the loop closed: nothing to report */
    if (err)
        weft__future_fail(&o->f, err);
    else
        weft__future_resolve(&o->f, (weft_value){.p = ep});
    weft__future_unhold(&o->hold); /* last: may free o */
}

static void lookup_run(weft_node *n)
{
    lookup *k = WEFT_CONTAINER_OF(n, lookup, node);
    udp_open *o = k->o;
    weft_future *g = k->gai;
    k->gai = NULL;
    int err = weft_future_error(g);
    if (!err)
        k->s.list = weft_future_take_ptr(g);
    weft_future_unref(g);
    if (err) {
        open_settle(o, err);
        return;
    }
    if (!o->side[0].gai && !o->side[1].gai)
        open_settle(o, 0);
}

static int open_cancel(weft_future *f)
{
    udp_open *o = WEFT_CONTAINER_OF(f, udp_open, f);
    lookup_drop(&o->side[0]);
    lookup_drop(&o->side[1]);
    if (o->link.next)
        weft__list_unlink(&o->link);
    int err = weft__future_cancel_now(f);
    weft__future_unhold(&o->hold);
    return err;
}

/* The endpoint is made: a cancellation that comes late does not undo it. */
static bool open_rollback(weft_future *f)
{
    (void)f;
    return false;
}

static void open_release(weft_future *f)
{
    udp_open *o = WEFT_CONTAINER_OF(f, udp_open, f);
    weft__future_unhold(&o->hold);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, o, sizeof *o);
}

static const weft__future_ops open_ops = {
    .kind = "udp endpoint creation",
    .cancel = open_cancel,
    .rollback = open_rollback,
    .release = open_release,
};

/* Start side i's lookup of a name on the executor.  0 or the error. */
static int lookup_start(udp_open *o, int i, const weft_udp_opts *opts)
{
    lookup *k = &o->side[i];
    bool local = i == 0;
    const char *host = local ? opts->local_host : opts->remote_host;
    char serv[8];
    snprintf(serv, sizeof serv, "%d", local ? opts->local_port : opts->remote_port);
    struct addrinfo h = side_hints(opts, local, false);
    weft_future *g = weft_getaddrinfo(o->f.loop, host, serv, &h);
    if (!g)
        return weft_last_error();
    k->gai = g;
    k->s.used = true;
    k->node.run = lookup_run;
    if (g->state == WEFT__PENDING)
        weft__future_wait(g, &k->node);
    else
        weft__ready_push(o->f.loop, &k->node);
    return 0;
}

weft_future *weft_create_datagram_endpoint(weft_loop *loop, const weft_datagram_protocol *proto,
                                           void *ud, const weft_udp_opts *opts)
{
    int err = loop_check(loop, "weft_create_datagram_endpoint");
    if (!err)
        err = opts_check(opts);
    udp_layer *L = err ? NULL : layer_of(loop);
    if (!err && !L)
        err = -ENOMEM;
    weft__pool *pool = err ? NULL : weft__pool_of(loop);
    udp_open *o = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *o) : NULL;
    if (!err && !o)
        err = -ENOMEM;
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    memset(o, 0, sizeof *o);
    weft__future_init(&o->f, &open_ops, loop);
    o->proto = proto;
    o->ud = ud;
    o->opts.family = opts->family;
    o->opts.reuse_port = opts->reuse_port;
    o->opts.allow_broadcast = opts->allow_broadcast;
    o->side[0].o = o->side[1].o = o;
    weft__future_hold(&o->f, &o->hold);
    weft__list_push(&L->opens, &o->link);
    for (int i = 0; i < 2 && !err; i++) {
        err = side_numeric(&o->side[i].s, opts, i == 0);
        if (err == WEFT_EAI_NONAME) /* a name: the executor resolves it */
            err = lookup_start(o, i, opts);
    }
    if (err == -ENOMEM || err == WEFT_ECLOSED) {
        /* the lookup could not start: nothing to report through the future */
        open_cancel(&o->f);
        weft__future_unref(&o->f);
        weft__set_last_error(err);
        return NULL;
    }
    if (err || (!o->side[0].gai && !o->side[1].gai))
        open_settle(o, err);
    return &o->f;
}

/* ---- sending ----------------------------------------------------------------------------- */

/* Whether a (alen bytes) names the same address as b (blen bytes). */
static bool same_addr(const struct sockaddr *a, socklen_t alen, const struct sockaddr_storage *bs,
                      socklen_t blen)
{
    const struct sockaddr *b = (const struct sockaddr *)bs;
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET && alen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6 && alen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return alen == blen && memcmp(a, b, alen) == 0;
}

int weft_udp_sendto(weft_udp *ep, const void *data, size_t n, const struct sockaddr *addr,
                    socklen_t addrlen)
{
    if (!ep || (!data && n))
        return -EINVAL;
    if (weft__wrong_thread(ep->loop, "weft_udp_sendto"))
        return -EPERM;
    if (ep->flags & EP_CLOSING)
        return WEFT_ESTATE;
    if (addr && (addrlen < sizeof(sa_family_t) || addrlen > sizeof(struct sockaddr_storage)))
        return -EINVAL;
    if (n > WEFT_UDP_MAX_DATAGRAM)
        return -EMSGSIZE;
    if (addr && (ep->flags & EP_CONNECTED)) {
        if (!same_addr(addr, addrlen, &ep->peer, ep->peerlen))
            return -EISCONN;
        addr = NULL; /* the peer's: send as connected */
        addrlen = 0;
    } else if (!addr && !(ep->flags & EP_CONNECTED)) {
        return -EDESTADDRREQ;
    }
    ssize_t r;
    do
        r = sendto(ep->fd, data, n, MSG_NOSIGNAL, addr, addrlen);
    while (r < 0 && errno == EINTR);
    if (r >= 0) {
        ep->stats.datagrams_sent++;
        return 0;
    }
    int e = errno;
    if (e != EAGAIN && e != EWOULDBLOCK)
        return e > 0 ? -e : -EIO;
    ep->stats.eagain++;
    if (!(ep->flags & EP_PAUSED)) {
        ep->flags |= EP_PAUSED;
        ep_sync(ep);
        weft_handle_schedule(ep->loop, &ep->notice);
    }
    return -EAGAIN;
}

/* A pending wait of kind ops on ep with room for own bytes after it. */
static udp_wait *wait_new(weft_udp *ep, const weft__future_ops *ops, size_t own, const char *call)
{
    int err = 0;
    if (!ep)
        err = -EINVAL;
    else if (weft__wrong_thread(ep->loop, call))
        err = -EPERM;
    else if (ep->flags & EP_CLOSING)
        err = WEFT_ESTATE;
    weft__pool *pool = err ? NULL : weft__pool_of(ep->loop);
    size_t bytes = sizeof(udp_wait) + own;
    udp_wait *w = pool ? weft__pool_get(pool, WEFT__POOL_ANY, bytes) : NULL;
    if (!err && !w)
        err = -ENOMEM;
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    memset(w, 0, sizeof *w);
    weft__future_init(&w->f, ops, ep->loop);
    w->bytes = bytes;
    return w;
}

weft_future *weft_udp_drain(weft_udp *ep)
{
    udp_wait *w = wait_new(ep, &drain_ops, 0, "weft_udp_drain");
    if (!w)
        return NULL;
    if (!(ep->flags & EP_PAUSED)) {
        weft__future_resolve(&w->f, (weft_value){.i = 0});
        return &w->f;
    }
    weft__future_hold(&w->f, &w->hold);
    weft__list_push(&ep->drains, &w->link);
    return &w->f;
}

bool weft_udp_is_writing_paused(const weft_udp *ep)
{
    return ep && (ep->flags & (EP_PAUSED | EP_CLOSING)) == EP_PAUSED;
}

size_t weft_udp_get_write_buffer_size(const weft_udp *ep)
{
    if (!ep || ep->fd < 0)
        return 0;
#ifdef SIOCOUTQ
    int v = 0;
    if (ioctl(ep->fd, SIOCOUTQ, &v) == 0 && v > 0)
        return (size_t)v;
#endif
    return 0;
}

/* ---- receiving --------------------------------------------------------------------------- */

static weft_future *recv_start(weft_udp *ep, void *buf, size_t cap, bool own, const char *call)
{
    udp_wait *w = wait_new(ep, &recv_ops, own ? cap : 0, call);
    if (!w)
        return NULL;
    w->buf = own ? (void *)w->data : buf;
    w->cap = cap;
    w->d.data = w->buf;
    weft__future_hold(&w->f, &w->hold);
    weft__list_push(&ep->recvs, &w->link);
    ep_sync(ep);
    return &w->f;
}

weft_future *weft_udp_recvfrom(weft_udp *ep, size_t bufsize)
{
    if (bufsize > WEFT_UDP_MAX_DATAGRAM) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    return recv_start(ep, NULL, bufsize ? bufsize : WEFT_UDP_MAX_DATAGRAM, true,
                      "weft_udp_recvfrom");
}

weft_future *weft_udp_recvfrom_into(weft_udp *ep, void *buf, size_t cap)
{
    if (!buf && cap) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    return recv_start(ep, buf, cap, false, "weft_udp_recvfrom_into");
}

/* ---- reading, closing -------------------------------------------------------------------- */

static int set_reading(weft_udp *ep, bool on, const char *call)
{
    if (!ep)
        return -EINVAL;
    if (weft__wrong_thread(ep->loop, call))
        return -EPERM;
    if (ep->flags & EP_CLOSING)
        return WEFT_ESTATE;
    if (on)
        ep->flags &= ~(unsigned)EP_READ_PAUSED;
    else
        ep->flags |= EP_READ_PAUSED;
    ep_sync(ep);
    return 0;
}

int weft_udp_pause_reading(weft_udp *ep)
{
    return set_reading(ep, false, "weft_udp_pause_reading");
}

int weft_udp_resume_reading(weft_udp *ep)
{
    return set_reading(ep, true, "weft_udp_resume_reading");
}

bool weft_udp_is_reading(const weft_udp *ep)
{
    return ep && !(ep->flags & (EP_CLOSING | EP_READ_PAUSED));
}

int weft_udp_close(weft_udp *ep)
{
    if (!ep)
        return -EINVAL;
    if (weft__wrong_thread(ep->loop, "weft_udp_close"))
        return -EPERM;
    if (ep->flags & EP_CLOSING)
        return 0;
    ep->flags |= EP_CLOSING;
    ep->lost_err = 0;
    ep_shut(ep, WEFT_ESTATE);
    /* WEFT_ECLOSED inside loop close: the layer's close calls connection_lost */
    weft_handle_schedule(ep->loop, &ep->lost);
    return 0;
}

int weft_udp_abort(weft_udp *ep)
{
    return weft_udp_close(ep);
}

bool weft_udp_is_closing(const weft_udp *ep)
{
    return ep && (ep->flags & EP_CLOSING);
}

/* ---- get_extra_info ---------------------------------------------------------------------- */

int weft_udp_fd(const weft_udp *ep)
{
    return ep ? ep->fd : -1;
}

static int name_of(const weft_udp *ep, struct sockaddr *addr, socklen_t *len, bool peer)
{
    if (!ep || !addr || !len)
        return -EINVAL;
    if (ep->fd < 0)
        return WEFT_ESTATE;
    int rc = peer ? getpeername(ep->fd, addr, len) : getsockname(ep->fd, addr, len);
    return rc < 0 ? sock_err() : 0;
}

int weft_udp_sockname(const weft_udp *ep, struct sockaddr *addr, socklen_t *len)
{
    return name_of(ep, addr, len, false);
}

int weft_udp_peername(const weft_udp *ep, struct sockaddr *addr, socklen_t *len)
{
    return name_of(ep, addr, len, true);
}

int weft_udp_port(const weft_udp *ep)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (weft_udp_sockname(ep, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)&ss)->sin6_port);
    return -1;
}

weft_loop *weft_udp_loop(const weft_udp *ep)
{
    return ep ? ep->loop : NULL;
}

void *weft_udp_protocol_ud(const weft_udp *ep)
{
    return ep ? ep->ud : NULL;
}

int weft_udp_get_stats(const weft_udp *ep, weft_udp_stats *out)
{
    if (!ep || !out)
        return -EINVAL;
    *out = ep->stats;
    return 0;
}

/* ---- the dump and loop close ---------------------------------------------------------- */

static size_t list_len(const weft_link *s)
{
    size_t n = 0;
    for (const weft_link *l = s->next; l != s; l = l->next)
        n++;
    return n;
}

/* One line per endpoint: fd, port, state, pending receives and drains. */
static void layer_dump(weft_loop *loop, weft__layer *self, weft__strbuf *out)
{
    (void)loop;
    udp_layer *L = (udp_layer *)(void *)self;
    for (weft_link *l = L->eps.next; l != &L->eps; l = l->next) {
        const weft_udp *ep = WEFT_CONTAINER_OF(l, weft_udp, link);
        weft__strbuf_printf(out,
                            "udp endpoint %p: fd %d, port %d%s%s%s, %zu receive(s) and %zu "
                            "drain(s) pending, %llu datagram(s) in, %llu out\n",
                            (const void *)ep, ep->fd, weft_udp_port(ep),
                            (ep->flags & EP_CONNECTED) ? ", connected" : "",
                            (ep->flags & EP_CLOSING) ? ", closing" : "",
                            weft_udp_is_writing_paused(ep) ? ", writing paused" : "",
                            list_len(&ep->recvs), list_len(&ep->drains),
                            (unsigned long long)ep->stats.datagrams_received,
                            (unsigned long long)ep->stats.datagrams_sent);
    }
    size_t n = list_len(&L->opens);
    if (n)
        weft__strbuf_printf(out, "udp: %zu endpoint creation(s) resolving\n", n);
}

static void layer_close(weft_loop *loop, weft__layer *self)
{
    udp_layer *L = (udp_layer *)(void *)self;
    while (!weft__list_empty(&L->opens)) {
        udp_open *o = WEFT_CONTAINER_OF(L->opens.next, udp_open, link);
        open_settle(o, WEFT_ECLOSED);
    }
    /* connection_lost may close other endpoints (its schedule then fails:
     * they are still in the list, and served here) */
    while (!weft__list_empty(&L->eps)) {
        weft_udp *ep = WEFT_CONTAINER_OF(L->eps.next, weft_udp, link);
        if (!(ep->flags & EP_CLOSING)) {
            ep->flags |= EP_CLOSING;
            ep->lost_err = WEFT_ECLOSED;
        }
        ep_shut(ep, WEFT_ECLOSED);
        ep_finish(ep);
    }
    weft__layer_set(loop, WEFT__LAYER_UDP, NULL);
    weft__free(loop, L);
}
