/* server.c - servers: listening sockets, accepting in batches, the
 * accepted connections, close / wait_closed / serve_forever.
 *
 * A server is one block (weft__alloc): the struct and its listeners, each
 * a listening fd with its weft_io.  A readable listener accepts up to
 * accept_batch connections (accept4: non-blocking and close-on-exec in the
 * same call), asks the factory for the protocol's pointer and gives each
 * connection a transport that knows the server as its owner (no list
 * node, no allocation per connection beyond the transport: the server
 * counts its clients, and close_clients / abort_clients find them in the
 * loop's fd table).  When the process or the system is out of descriptors
 * (EMFILE, ENFILE) or memory (ENOBUFS, ENOMEM), the listeners stop for
 * WEFT__ACCEPT_BACKOFF_S on a timer of the server's and the loop's report
 * hook hears about it (WEFT_REPORT_IO): a level-triggered listener would
 * otherwise spin on the connection it cannot take.
 *
 * wait_closed futures wait on the server's list until it is closed and its
 * last client is gone (a client's end calls weft__server_client_gone);
 * weft_server_free defers the free to that moment too.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net_internal.h"
#include "sock.h"

/* accept4 (non-blocking and close-on-exec in the accept itself) is in
 * POSIX.1-2024 and in Linux since 2.6.28, but glibc declares it only for
 * _GNU_SOURCE, which weft never defines: declare it here (the libc's own
 * prototype, where a header shows it too, is the same). */
#if defined(__linux__) && defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
#define WEFT__ACCEPT4 1
int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
#else
#define WEFT__ACCEPT4 0
#endif

/* SO_REUSEPORT is Linux's and the BSDs', outside POSIX: glibc shows it
 * only with _DEFAULT_SOURCE; the kernel's header has it either way. */
#if !defined(SO_REUSEPORT) && defined(__linux__)
#include <asm/socket.h>
#endif

#define WEFT__ACCEPT_BACKOFF_S 0.1
#define WEFT__BACKLOG_DEFAULT 100
#define WEFT__ACCEPT_BATCH_DEFAULT 128

typedef struct listener {
    weft_io io;
    weft_server *s;
    int fd;
    bool tcp; /* accepted sockets get TCP_NODELAY */
} listener;

typedef struct srv_wait {
    weft_future f;
    weft_link link;  /* in the server's waiters while pending */
    weft__hold hold; /* the list holds the wait: dropping it pending is safe */
} srv_wait;

typedef struct srv_forever {
    weft_future f;
    weft_server *s; /* NULL once the server forgot it */
} srv_forever;

struct weft_server {
    weft_loop *loop;
    const weft_protocol *proto;
    weft_protocol_factory *factory;
    void *arg;
    int backlog, batch;
    bool serving;   /* accepting (or backing off, to accept again) */
    bool closed;    /* weft_server_close ran: no listeners left */
    bool freeing;   /* weft_server_free ran: free once the last client went */
    bool backoff;   /* listeners stopped until the timer fires */
    bool accepting; /* inside the accept loop: a free waits for its end */
    bool free_due;  /* free_now was due during the accept loop */
    weft_timer timer;
    size_t nclients;   /* accepted transports (each knows its owner) not yet freed */
    weft_link waiters; /* srv_wait futures */
    srv_forever *forever;
    char *path; /* a Unix server's socket file, removed at close */
    dev_t dev;
    ino_t ino;
    int nls;
    listener ls[];
};

/* ---- the end of a server --------------------------------------------------------------------- */

static void free_now(weft_server *s)
{
    if (s->accepting) { /* the factory freed it: the accept loop ends first */
        s->free_due = true;
        return;
    }
    weft_timer_close(&s->timer);
    weft__free(s->loop, s->path);
    weft__free(s->loop, s);
}

/* Closed and no client left: wake every wait_closed, and free if asked. */
static void maybe_done(weft_server *s)
{
    if (!s->closed || s->nclients)
        return;
    while (!weft__list_empty(&s->waiters)) {
        srv_wait *w = WEFT_CONTAINER_OF(s->waiters.next, srv_wait, link);
        weft__list_unlink(&w->link);
        weft__future_resolve(&w->f, (weft_value){.i = 0});
        weft__future_unhold(&w->hold); /* last: it may free w */
    }
    if (s->freeing)
        free_now(s);
}

void weft__server_client_gone(weft_server *s)
{
    s->nclients--;
    maybe_done(s);
}

/* ---- accepting ------------------------------------------------------------------------------- */

static void listeners_set(weft_server *s, bool on)
{
    for (int i = 0; i < s->nls; i++) {
        if (on)
            weft_io_start(&s->ls[i].io, WEFT_READABLE);
        else
            weft_io_stop(&s->ls[i].io, WEFT_READABLE);
    }
}

static void backoff_end(void *arg)
{
    weft_server *s = arg;
    s->backoff = false;
    if (s->serving)
        listeners_set(s, true);
}

static void backoff_start(weft_server *s, int err)
{
    s->backoff = true;
    listeners_set(s, false);
    weft_timer_start(&s->timer, WEFT__ACCEPT_BACKOFF_S, 0);
    weft__reportf(s->loop, WEFT_REPORT_IO, err,
                  "server: accept failed for lack of resources; accepting again in %d ms",
                  (int)(WEFT__ACCEPT_BACKOFF_S * 1000));
}

/* One accepted connection: the factory's pointer, a transport, the list. */
static void take(weft_server *s, listener *l, int fd)
{
    if (l->tcp)
        (void)weft__sock_nodelay(fd);
    /* the transport first: once the factory made its ud, a callback sees it */
    weft_transport *t = NULL;
    int err = weft__transport_adopt_socket(s->loop, fd, s->proto, s->arg, &t);
    if (err) {
        close(fd);
        weft__reportf(s->loop, WEFT_REPORT_IO, err,
                      "server: an accepted connection was dropped (no transport)");
        return;
    }
    void *ud = s->arg;
    if ((s->factory && s->factory(s, s->arg, &ud) < 0) || s->freeing) {
        weft__transport_discard(t); /* refused, or the factory freed the server */
        return;
    }
    (void)weft_transport_set_protocol(t, s->proto, ud);
    s->nclients++;
    weft__transport_set_owner(t, s);
}

static void accept_batch(weft_server *s, listener *l);

static void on_readable(weft_io *w, unsigned events)
{
    (void)events;
    listener *l = WEFT_CONTAINER_OF(w, listener, io);
    weft_server *s = l->s;
    s->accepting = true;
    accept_batch(s, l);
    s->accepting = false;
    if (s->free_due)
        free_now(s);
}

/* Accept up to the batch on l (the factory may close or free s meanwhile). */
static void accept_batch(weft_server *s, listener *l)
{
    for (int i = 0; i < s->batch && s->serving && !s->backoff; i++) {
#if WEFT__ACCEPT4
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
        int fd = accept(l->fd, NULL, NULL);
        if (fd >= 0 && (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
                        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)) {
            close(fd);
            continue;
        }
#endif
        if (fd >= 0) {
            take(s, l, fd);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return; /* drained */
        case EINTR:
        case ECONNABORTED: /* the peer gave up while queued */
        case EPROTO:
            continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            backoff_start(s, -errno);
            return;
        default: /* unexpected: report it, and do not spin on it */
            backoff_start(s, weft__sock_errno());
            return;
        }
    }
}

/* ---- construction ---------------------------------------------------------------------------- */

static int check_opts(const weft_server_opts *o)
{
    if (!o)
        return 0;
    if (o->family != AF_UNSPEC && o->family != AF_INET && o->family != AF_INET6)
        return -EINVAL;
    if (o->backlog < 0 || o->accept_batch < 0)
        return -EINVAL;
    return 0;
}

/* A server with room for n listeners, none open yet; NULL for -ENOMEM or
 * the timer's error in *err. */
static weft_server *server_new(weft_loop *loop, const weft_protocol *proto,
                               weft_protocol_factory *factory, void *arg,
                               const weft_server_opts *opts, int n, int *err)
{
    weft_server *s = weft__alloc(loop, sizeof *s + (size_t)n * sizeof s->ls[0]);
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    memset(s, 0, sizeof *s);
    *err = weft_timer_init(&s->timer, loop, backoff_end, s);
    if (*err) {
        weft__free(loop, s);
        return NULL;
    }
    s->loop = loop;
    s->proto = proto;
    s->factory = factory;
    s->arg = arg;
    s->backlog = opts && opts->backlog ? opts->backlog : WEFT__BACKLOG_DEFAULT;
    s->batch = opts && opts->accept_batch ? opts->accept_batch : WEFT__ACCEPT_BATCH_DEFAULT;
    weft__list_init(&s->waiters);
    return s;
}

/* Close every listener opened so far. */
static void close_listeners(weft_server *s)
{
    for (int i = 0; i < s->nls; i++) {
        weft_io_close(&s->ls[i].io);
        close(s->ls[i].fd);
    }
    s->nls = 0;
}

/* Watch fd (bound and listening) as the next listener; on failure fd is
 * left to the caller. */
static int add_listener(weft_server *s, int fd, bool tcp)
{
    listener *l = &s->ls[s->nls];
    int err = weft_io_init(&l->io, s->loop, fd, on_readable);
    if (err)
        return err;
    l->s = s;
    l->fd = fd;
    l->tcp = tcp;
    s->nls++;
    return 0;
}

static void begin_serving(weft_server *s, const weft_server_opts *opts)
{
    if (!(opts && opts->start_paused))
        weft_server_start_serving(s);
}

static int set_port(weft__addr *a, int port)
{
    if (a->family == AF_INET)
        ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
    return 0;
}

static int sock_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

/* One listening TCP socket on a; the fd or the error. */
static int listen_tcp(weft_server *s, weft__addr *a, const weft_server_opts *opts)
{
    int fd = weft__sock_open(a->family, SOCK_STREAM);
    if (fd < 0)
        return fd;
    int one = 1, err = 0;
    if (!(opts && opts->no_reuse_addr) &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        err = weft__sock_errno();
#ifdef SO_REUSEPORT
    if (!err && opts && opts->reuse_port &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        err = weft__sock_errno();
#else
    if (!err && opts && opts->reuse_port)
        err = -ENOTSUP;
#endif
#ifdef IPV6_V6ONLY
    if (!err && a->family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        err = weft__sock_errno();
#endif
    if (!err && bind(fd, (struct sockaddr *)&a->ss, a->len) < 0)
        err = weft__sock_errno();
    if (!err && listen(fd, s->backlog) < 0)
        err = weft__sock_errno();
    if (err) {
        close(fd);
        return err;
    }
    return fd;
}

/* Bind and listen on every address of list (freed here).  port 0 on
 * several addresses: the first socket's port for all.  0 with *out, or
 * the error with nothing left open. */
static int serve_list(weft_loop *loop, const weft_protocol *proto, weft_protocol_factory *factory,
                      void *arg, const weft_server_opts *opts, int port, struct addrinfo *list,
                      weft_server **out)
{
    weft__addr *addrs = NULL;
    size_t n = 0;
    int err = weft__addrs_from_list(loop, list, &addrs, &n);
    freeaddrinfo(list);
    if (err)
        return err;
    if (n == 0)
        return WEFT_EAI_NODATA;
    weft_server *s = server_new(loop, proto, factory, arg, opts, (int)n, &err);
    if (!s) {
        weft__free(loop, addrs);
        return err;
    }
    for (size_t i = 0; i < n && !err; i++) {
        if (port == 0 && s->nls > 0)
            set_port(&addrs[i], sock_port(s->ls[0].fd));
        int fd = listen_tcp(s, &addrs[i], opts);
        if (fd == -EAFNOSUPPORT && n > 1)
            continue; /* a family this host lacks (IPv6 off): the others serve */
        if (fd < 0) {
            err = fd;
            break;
        }
        err = add_listener(s, fd, true);
        if (err)
            close(fd);
    }
    weft__free(loop, addrs);
    if (!err && s->nls == 0)
        err = -EAFNOSUPPORT;
    if (err) {
        close_listeners(s);
        free_now(s);
        return err;
    }
    begin_serving(s, opts);
    *out = s;
    return 0;
}

/* The future of weft_create_server: pending while the name resolves. */
typedef struct mkserver {
    weft_future f;
    weft__hold hold;
    weft__resolve res;
    const weft_protocol *proto;
    weft_protocol_factory *factory;
    void *arg;
    weft_server_opts opts;
    int port;
} mkserver;

static int mk_cancel(weft_future *f)
{
    mkserver *m = WEFT_CONTAINER_OF(f, mkserver, f);
    weft__resolve_cancel(&m->res);
    int err = weft__future_cancel_now(f);
    weft__future_unhold(&m->hold);
    return err;
}

static void mk_release(weft_future *f)
{
    mkserver *m = WEFT_CONTAINER_OF(f, mkserver, f);
    weft__resolve_cancel(&m->res);
    weft__future_unhold(&m->hold);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, m, sizeof *m);
}

static const weft__future_ops mk_ops = {
    .kind = "create_server",
    .cancel = mk_cancel,
    .release = mk_release,
};

/* Finish m with the list (or err). */
static void mk_finish(mkserver *m, struct addrinfo *list, int err)
{
    weft_server *s = NULL;
    if (!err)
        err = serve_list(m->f.loop, m->proto, m->factory, m->arg, &m->opts, m->port, list, &s);
    if (err)
        weft__future_fail(&m->f, err);
    else
        weft__future_resolve(&m->f, (weft_value){.p = s});
}

static void mk_resolved(weft__resolve *r, struct addrinfo *list, int err)
{
    mkserver *m = WEFT_CONTAINER_OF(r, mkserver, res);
    mk_finish(m, list, err);
    weft__future_unhold(&m->hold); /* last: it may free m */
}

static weft_future *fail_start(int err)
{
    weft__set_last_error(err);
    return NULL;
}

static int check_loop(weft_loop *loop, const char *call)
{
    if (weft__wrong_thread(loop, call))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    return 0;
}

weft_future *weft_create_server(weft_loop *loop, const weft_protocol *proto,
                                weft_protocol_factory *factory, void *arg, const char *host,
                                int port, const weft_server_opts *opts)
{
    if (!loop || !proto || port < 0 || port > 65535)
        return fail_start(-EINVAL);
    int err = check_opts(opts);
    if (!err)
        err = check_loop(loop, "weft_create_server");
    if (err)
        return fail_start(err);
    weft__pool *pool = weft__pool_of(loop);
    mkserver *m = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *m) : NULL;
    if (!m)
        return fail_start(-ENOMEM);
    memset(m, 0, sizeof *m);
    m->proto = proto;
    m->factory = factory;
    m->arg = arg;
    if (opts)
        m->opts = *opts;
    m->port = port;
    m->res.done = mk_resolved;
    weft__future_init(&m->f, &mk_ops, loop);
    struct addrinfo *list = NULL;
    int rc = weft__resolve_start(&m->res, loop, host, port, m->opts.family, true, &list);
    if (rc == 1) {
        weft__future_hold(&m->f, &m->hold);
        return &m->f;
    }
    if (rc < 0 && rc != -ENOMEM && !(rc >= WEFT_EAI_MIN && rc <= WEFT_EAI_MAX)) {
        weft_future_unref(&m->f);
        return fail_start(rc);
    }
    mk_finish(m, list, rc);
    return &m->f;
}

int weft_create_unix_server(weft_loop *loop, const weft_protocol *proto,
                            weft_protocol_factory *factory, void *arg, const char *path,
                            const weft_server_opts *opts, weft_server **out)
{
    struct sockaddr_un sun;
    socklen_t len = 0;
    if (!loop || !proto || !out || weft__sock_unix_addr(path, &sun, &len))
        return -EINVAL;
    int err = check_opts(opts);
    if (!err)
        err = check_loop(loop, "weft_create_unix_server");
    if (err)
        return err;
    size_t plen = strlen(path) + 1;
    char *copy = weft__alloc(loop, plen);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, path, plen);
    weft_server *s = server_new(loop, proto, factory, arg, opts, 1, &err);
    if (!s) {
        weft__free(loop, copy);
        return err;
    }
    s->path = copy;
    int fd = -1;
    struct stat st;
    if (lstat(path, &st) == 0) {
        /* something is there: a socket nobody listens on is stale */
        if (!S_ISSOCK(st.st_mode)) {
            err = -EADDRINUSE;
        } else {
            int probe = weft__sock_open(AF_UNIX, SOCK_STREAM);
            if (probe < 0)
                err = probe;
            else if (connect(probe, (struct sockaddr *)&sun, len) < 0 && errno == ECONNREFUSED)
                unlink(path);
            else
                err = -EADDRINUSE; /* a live server (connected, or its backlog is full) */
            if (probe >= 0)
                close(probe);
        }
    }
    if (!err && (fd = weft__sock_open(AF_UNIX, SOCK_STREAM)) < 0)
        err = fd;
    if (!err && bind(fd, (struct sockaddr *)&sun, len) < 0)
        err = weft__sock_errno();
    bool bound = !err;
    if (!err && listen(fd, s->backlog) < 0)
        err = weft__sock_errno();
    if (!err && stat(path, &st) == 0) {
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
    if (!err)
        err = add_listener(s, fd, false);
    if (err) {
        if (bound)
            unlink(path);
        if (fd >= 0)
            close(fd);
        s->path = NULL;
        weft__free(loop, copy);
        free_now(s);
        return err;
    }
    begin_serving(s, opts);
    *out = s;
    return 0;
}

int weft_server_from_fd(weft_loop *loop, int fd, const weft_protocol *proto,
                        weft_protocol_factory *factory, void *arg, const weft_server_opts *opts,
                        weft_server **out)
{
    if (!loop || !proto || !out)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    int err = check_opts(opts);
    if (!err)
        err = check_loop(loop, "weft_server_from_fd");
    if (err)
        return err;
    int type = 0, acc = 0;
    socklen_t tl = sizeof type, al = sizeof acc;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
        return weft__sock_errno(); /* -ENOTSOCK, -EBADF */
    if (type != SOCK_STREAM)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return weft__sock_errno();
    weft_server *s = server_new(loop, proto, factory, arg, opts, 1, &err);
    if (!s)
        return err;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        err = weft__sock_errno();
#ifdef SO_ACCEPTCONN
    if (!err && getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0)
        acc = 0;
#endif
    if (!err && !acc && listen(fd, s->backlog) < 0)
        err = weft__sock_errno();
    if (!err)
        err = add_listener(s, fd, ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
    if (err) {
        free_now(s);
        return err;
    }
    begin_serving(s, opts);
    *out = s;
    return 0;
}

/* ---- the server's API ------------------------------------------------------------------------ */

int weft_server_start_serving(weft_server *s)
{
    if (!s)
        return -EINVAL;
    if (s->closed)
        return WEFT_ESTATE;
    if (!s->serving) {
        s->serving = true;
        if (!s->backoff)
            listeners_set(s, true);
    }
    return 0;
}

bool weft_server_is_serving(const weft_server *s)
{
    return s && s->serving;
}

int weft_server_close(weft_server *s)
{
    if (!s)
        return -EINVAL;
    if (s->closed)
        return 0;
    s->closed = true;
    s->serving = false;
    close_listeners(s);
    weft_timer_stop(&s->timer);
    s->backoff = false;
    if (s->path) {
        struct stat st;
        if (stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
            unlink(s->path); /* ours still: not a file someone put there since */
    }
    srv_forever *sf = s->forever;
    if (sf) {
        s->forever = NULL;
        sf->s = NULL;
        weft__future_cancel_now(&sf->f);
    }
    maybe_done(s);
    return 0;
}

/* Apply close or abort to every client (neither runs callbacks inline). */
static int each_client(weft_server *s, int (*fn)(weft_transport *))
{
    if (!s)
        return -EINVAL;
    if (s->nclients)
        weft__transport_each_owned(s->loop, s, s->nclients, fn);
    return 0;
}

int weft_server_close_clients(weft_server *s)
{
    return each_client(s, weft_transport_close);
}

int weft_server_abort_clients(weft_server *s)
{
    return each_client(s, weft_transport_abort);
}

/* ---- wait_closed ----------------------------------------------------------------------------- */

static int wait_cancel(weft_future *f)
{
    srv_wait *w = WEFT_CONTAINER_OF(f, srv_wait, f);
    int err = weft__future_cancel_now(f);
    if (w->link.next) {
        weft__list_unlink(&w->link);
        weft__future_unhold(&w->hold); /* last: it may free w */
    }
    return err;
}

static void wait_release(weft_future *f)
{
    srv_wait *w = WEFT_CONTAINER_OF(f, srv_wait, f);
    if (w->link.next)
        weft__list_unlink(&w->link);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, w, sizeof *w);
}

static const weft__future_ops wait_ops = {
    .kind = "server wait_closed",
    .cancel = wait_cancel,
    .release = wait_release,
};

weft_future *weft_server_wait_closed(weft_server *s)
{
    if (!s)
        return fail_start(-EINVAL);
    weft__pool *pool = weft__pool_of(s->loop);
    srv_wait *w = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *w) : NULL;
    if (!w)
        return fail_start(-ENOMEM);
    memset(w, 0, sizeof *w);
    weft__future_init(&w->f, &wait_ops, s->loop);
    if (s->closed && s->nclients == 0)
        weft__future_resolve(&w->f, (weft_value){.i = 0});
    else {
        weft__list_push(&s->waiters, &w->link);
        weft__future_hold(&w->f, &w->hold);
    }
    return &w->f;
}

/* ---- serve_forever --------------------------------------------------------------------------- */

/* Cancelled (its task was, or a timeout): the server closes. */
static int forever_cancel(weft_future *f)
{
    srv_forever *sf = WEFT_CONTAINER_OF(f, srv_forever, f);
    weft_server *s = sf->s;
    int err = weft__future_cancel_now(f);
    if (s) {
        sf->s = NULL;
        s->forever = NULL;
        weft_server_close(s);
    }
    return err;
}

static void forever_release(weft_future *f)
{
    srv_forever *sf = WEFT_CONTAINER_OF(f, srv_forever, f);
    if (sf->s)
        sf->s->forever = NULL;
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, sf, sizeof *sf);
}

static const weft__future_ops forever_ops = {
    .kind = "serve_forever",
    .cancel = forever_cancel,
    .release = forever_release,
};

weft_future *weft_server_serve_forever(weft_server *s)
{
    if (!s)
        return fail_start(-EINVAL);
    if (s->closed || s->forever)
        return fail_start(WEFT_ESTATE); /* closed, or served forever already */
    if (weft__closed(s->loop))
        return fail_start(WEFT_ECLOSED);
    weft__pool *pool = weft__pool_of(s->loop);
    srv_forever *sf = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *sf) : NULL;
    if (!sf)
        return fail_start(-ENOMEM);
    memset(sf, 0, sizeof *sf);
    weft__future_init(&sf->f, &forever_ops, s->loop);
    sf->s = s;
    s->forever = sf;
    weft_server_start_serving(s);
    return &sf->f;
}

/* ---- accessors ------------------------------------------------------------------------------ */

int weft_server_port(const weft_server *s)
{
    if (!s || s->nls == 0 || !s->ls[0].tcp)
        return -1;
    return sock_port(s->ls[0].fd);
}

int weft_server_nsockets(const weft_server *s)
{
    return s ? s->nls : 0;
}

int weft_server_socket(const weft_server *s, int i)
{
    return s && i >= 0 && i < s->nls ? s->ls[i].fd : -1;
}

size_t weft_server_nclients(const weft_server *s)
{
    return s ? s->nclients : 0;
}

void weft_server_free(weft_server *s)
{
    if (!s || s->freeing)
        return;
    weft_server_close(s);
    s->freeing = true;
    weft_server_abort_clients(s);
    if (s->nclients == 0)
        free_now(s);
}
