/* connect.c - clients: weft_create_connection and weft_create_unix_connection.
 *
 * A connect is one future of its own kind (the "connect" block): the
 * resolution node, the addresses to try with one attempt slot each (a
 * socket and its fd watcher), and, with happy eyeballs, a timer that
 * starts the next attempt while earlier ones are still pending (RFC 8305:
 * staggered, not parallel; a failure starts the next one at once).  The
 * first socket to become writable with SO_ERROR 0 wins: every other
 * attempt is closed, and the winner becomes a transport.
 *
 * Every fd an attempt opens is closed exactly once: by the attempt itself
 * when it fails, by teardown (cancellation, a timeout around the future,
 * failure, the future's release at loop close), or handed to the
 * transport.  Allocations: the block (pooled), the address list (and,
 * after a name lookup, the executor's job), the attempts, a timer slot
 * with happy eyeballs, the fd table's growth in weft_io_init, and the
 * transport.
 */
#include <math.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "net_internal.h"
#include "sock.h"

typedef struct conn conn;

typedef struct attempt {
    weft_io io; /* live while fd is connecting */
    conn *c;
    int fd; /* -1: not started, failed or handed over */
    weft__addr addr;
} attempt;

struct conn {
    weft_future f;
    weft__hold hold; /* while pending: the loop completes it */
    weft__resolve res;
    const weft_protocol *proto;
    void *ud;
    attempt *att; /* n of them (weft__alloc) */
    size_t n, next;
    int running;      /* attempts connecting now */
    int last_err;     /* of the last attempt that failed */
    int64_t delay_ns; /* happy eyeballs: stagger; 0: one at a time */
    int interleave;
    int family;
    bool nodelay, timer_ready;
    weft_timer timer;
    struct sockaddr_storage local;
    socklen_t local_len;
};

static void start_next(conn *c);

/* ---- teardown ------------------------------------------------------------------------------ */

static void attempt_close(attempt *a)
{
    if (a->fd < 0)
        return;
    weft_io_close(&a->io);
    close(a->fd);
    a->fd = -1;
}

/* Withdraw everything: the lookup, every attempt, the timer.  Idempotent. */
static void teardown(conn *c)
{
    weft_loop *loop = c->f.loop;
    weft__resolve_cancel(&c->res);
    if (c->att) {
        for (size_t i = 0; i < c->n; i++)
            attempt_close(&c->att[i]);
        weft__free(loop, c->att);
        c->att = NULL;
    }
    c->n = c->next = 0;
    c->running = 0;
    if (c->timer_ready) {
        weft_timer_close(&c->timer);
        c->timer_ready = false;
    }
}

static void conn_fail(conn *c, int err)
{
    teardown(c);
    weft__future_fail(&c->f, err);
    weft__future_unhold(&c->hold); /* last: it may free c */
}

static int conn_cancel(weft_future *f)
{
    conn *c = WEFT_CONTAINER_OF(f, conn, f);
    teardown(c);
    int err = weft__future_cancel_now(f);
    weft__future_unhold(&c->hold);
    return err;
}

static void conn_release(weft_future *f)
{
    conn *c = WEFT_CONTAINER_OF(f, conn, f);
    teardown(c); /* pending only when the loop closed under it */
    weft__future_unhold(&c->hold);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, c, sizeof *c);
}

static const weft__future_ops conn_ops = {
    .kind = "connect",
    .cancel = conn_cancel,
    .release = conn_release,
};

/* ---- attempts ------------------------------------------------------------------------------- */

/* a connected: it becomes the transport, everything else goes. */
static void win(conn *c, attempt *a)
{
    int fd = a->fd;
    weft_io_close(&a->io); /* the transport watches fd with its own */
    a->fd = -1;
    bool tcp = a->addr.family == AF_INET || a->addr.family == AF_INET6;
    teardown(c);
    if (tcp && c->nodelay)
        (void)weft__sock_nodelay(fd); /* best effort, as asyncio */
    weft_transport *t = NULL;
    int err = weft__transport_adopt_socket(c->f.loop, fd, c->proto, c->ud, &t);
    if (err) {
        close(fd);
        conn_fail(c, err);
        return;
    }
    weft__future_resolve(&c->f, (weft_value){.p = t});
    weft__future_unhold(&c->hold); /* last: it may free c */
}

static void on_writable(weft_io *w, unsigned events)
{
    (void)events;
    attempt *a = WEFT_CONTAINER_OF(w, attempt, io);
    conn *c = a->c;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr == 0) {
        win(c, a);
        return;
    }
    attempt_close(a);
    c->running--;
    c->last_err = -soerr;
    start_next(c); /* at once, staggered or not (RFC 8305 section 5) */
}

/* Open a's socket and start connecting: 0 if it is in progress, 1 if it
 * connected at once (a Unix socket), else the error (nothing left open). */
static int attempt_start(conn *c, attempt *a)
{
    int fd = weft__sock_open(a->addr.family, SOCK_STREAM);
    if (fd < 0)
        return fd;
    int err = 0;
    if (c->local_len && bind(fd, (struct sockaddr *)&c->local, c->local_len) < 0) {
        err = weft__sock_errno();
    } else if (connect(fd, (struct sockaddr *)&a->addr.ss, a->addr.len) == 0) {
        a->fd = fd;
        return 1;
    } else if (errno != EINPROGRESS && errno != EINTR) {
        err = weft__sock_errno(); /* a Unix socket's full backlog: -EAGAIN */
    } else if ((err = weft_io_init(&a->io, c->f.loop, fd, on_writable)) == 0) {
        weft_io_start(&a->io, WEFT_WRITABLE);
        a->fd = fd;
        return 0;
    }
    close(fd);
    return err;
}

static void stagger_fire(void *arg)
{
    start_next(arg);
}

/* Start the next address that can be started; fail the connect when none
 * is left and none is pending. */
static void start_next(conn *c)
{
    while (c->next < c->n) {
        attempt *a = &c->att[c->next++];
        int rc = attempt_start(c, a);
        if (rc == 1) {
            win(c, a);
            return;
        }
        if (rc == 0) {
            c->running++;
            if (c->delay_ns > 0 && c->next < c->n)
                weft_timer_start_ns(&c->timer, c->delay_ns, 0);
            return;
        }
        c->last_err = rc;
    }
    if (c->timer_ready)
        weft_timer_stop(&c->timer);
    if (c->running == 0)
        conn_fail(c, c->last_err ? c->last_err : -EADDRNOTAVAIL);
}

/* Take the addresses (copied) and start. */
static void conn_begin(conn *c, const weft__addr *addrs, size_t n)
{
    size_t keep = 0;
    for (size_t i = 0; i < n; i++) /* a local address restricts the family */
        keep += !c->local_len || addrs[i].family == c->local.ss_family;
    if (keep == 0) {
        conn_fail(c, n ? -EADDRNOTAVAIL : WEFT_EAI_NODATA);
        return;
    }
    attempt *att = weft__alloc(c->f.loop, keep * sizeof *att);
    if (!att) {
        conn_fail(c, -ENOMEM);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (c->local_len && addrs[i].family != c->local.ss_family)
            continue;
        memset(&att[k], 0, sizeof att[k]);
        att[k].c = c;
        att[k].fd = -1;
        att[k].addr = addrs[i];
        k++;
    }
    c->att = att;
    c->n = keep;
    c->next = 0;
    start_next(c);
}

static void begin_list(conn *c, struct addrinfo *list)
{
    weft__addr *addrs = NULL;
    size_t n = 0;
    int err = weft__addrs_from_list(c->f.loop, list, &addrs, &n);
    freeaddrinfo(list);
    if (err) {
        conn_fail(c, err);
        return;
    }
    if (c->interleave > 0)
        weft__addrs_interleave(addrs, n, c->interleave);
    conn_begin(c, addrs, n);
    weft__free(c->f.loop, addrs);
}

static void resolved(weft__resolve *r, struct addrinfo *list, int err)
{
    conn *c = WEFT_CONTAINER_OF(r, conn, res);
    if (err)
        conn_fail(c, err);
    else
        begin_list(c, list);
}

/* ---- construction ---------------------------------------------------------------------------- */

static int check_opts(const weft_connect_opts *o)
{
    if (!o)
        return 0;
    if (o->family != AF_UNSPEC && o->family != AF_INET && o->family != AF_INET6)
        return -EINVAL;
    if (isnan(o->happy_eyeballs_delay) || o->happy_eyeballs_delay < 0 || o->interleave < 0)
        return -EINVAL;
    if (o->local_addr ? o->local_addrlen == 0 || o->local_addrlen > sizeof(struct sockaddr_storage)
                      : o->local_addrlen != 0)
        return -EINVAL;
    return 0;
}

static weft_future *fail_start(int err)
{
    weft__set_last_error(err);
    return NULL;
}

/* A pending connect with its options, held; NULL with the last error. */
static conn *conn_new(weft_loop *loop, const weft_protocol *proto, void *ud,
                      const weft_connect_opts *opts)
{
    weft__pool *pool = weft__pool_of(loop);
    conn *c = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *c) : NULL;
    if (!c) {
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    memset(c, 0, sizeof *c);
    c->proto = proto;
    c->ud = ud;
    c->nodelay = !(opts && opts->no_delay_off);
    if (opts) {
        c->family = opts->family;
        if (opts->happy_eyeballs_delay > 0) {
            int64_t ns = 0;
            (void)weft__sec_to_ns(opts->happy_eyeballs_delay, &ns); /* not NaN: checked */
            c->delay_ns = ns > 0 ? ns : 1;
            c->interleave = opts->interleave ? opts->interleave : 1;
        } else {
            c->interleave = opts->interleave;
        }
        if (opts->local_addr) {
            memcpy(&c->local, opts->local_addr, opts->local_addrlen);
            c->local_len = opts->local_addrlen;
        }
    }
    if (c->delay_ns > 0) {
        int err = weft_timer_init(&c->timer, loop, stagger_fire, c);
        if (err) {
            weft__pool_put(pool, WEFT__POOL_ANY, c, sizeof *c);
            weft__set_last_error(err);
            return NULL;
        }
        c->timer_ready = true;
    }
    weft__future_init(&c->f, &conn_ops, loop);
    weft__future_hold(&c->f, &c->hold);
    return c;
}

static int check_loop(weft_loop *loop, const char *call)
{
    if (weft__wrong_thread(loop, call))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    return 0;
}

weft_future *weft_create_connection(weft_loop *loop, const weft_protocol *proto, void *ud,
                                    const char *host, int port, const weft_connect_opts *opts)
{
    if (!loop || !proto || !host || port < 1 || port > 65535)
        return fail_start(-EINVAL);
    int err = check_opts(opts);
    if (!err)
        err = check_loop(loop, "weft_create_connection");
    if (err)
        return fail_start(err);
    conn *c = conn_new(loop, proto, ud, opts);
    if (!c)
        return NULL;
    c->res.done = resolved;
    struct addrinfo *list = NULL;
    int rc = weft__resolve_start(&c->res, loop, host, port, c->family, false, &list);
    if (rc < 0 && rc != -ENOMEM && !(rc >= WEFT_EAI_MIN && rc <= WEFT_EAI_MAX)) {
        /* the lookup could not start (closed, thread check): as bad input */
        teardown(c);
        weft__future_unhold(&c->hold);
        weft_future_unref(&c->f); /* frees c: nobody saw it */
        return fail_start(rc);
    }
    if (rc < 0)
        conn_fail(c, rc);
    else if (rc == 0)
        begin_list(c, list);
    return &c->f;
}

weft_future *weft__connect_addrs(weft_loop *loop, const weft_protocol *proto, void *ud,
                                 const weft__addr *a, size_t n, const weft_connect_opts *opts)
{
    if (!loop || !proto || !a || n == 0)
        return fail_start(-EINVAL);
    int err = check_opts(opts);
    if (!err)
        err = check_loop(loop, "weft_create_connection");
    if (err)
        return fail_start(err);
    conn *c = conn_new(loop, proto, ud, opts);
    if (!c)
        return NULL;
    conn_begin(c, a, n);
    return &c->f;
}

weft_future *weft_create_unix_connection(weft_loop *loop, const weft_protocol *proto, void *ud,
                                         const char *path)
{
    weft__addr a;
    memset(&a, 0, sizeof a);
    if (!loop || !proto || weft__sock_unix_addr(path, (struct sockaddr_un *)&a.ss, &a.len))
        return fail_start(-EINVAL);
    a.family = AF_UNIX;
    return weft__connect_addrs(loop, proto, ud, &a, 1, NULL);
}
