/* test_net_connect.c - clients: weft_create_connection and
 * weft_create_unix_connection.
 *
 * The peers are plain sockets the test makes itself (a listener, a socket
 * bound but not listening for a refusal, a listener whose backlog is full
 * for a connect that stays pending), so that only the client side is under
 * test.  A pending connect is made deterministic with a full backlog: the
 * kernel drops the SYN, the connect neither succeeds nor fails, and the
 * virtual clock jumps straight to whatever deadline the test set (a
 * timeout, the happy-eyeballs stagger).  Every test counts the process's
 * open fds before and after: each error path must close every socket it
 * opened, once.  Every test runs on both fd backends.
 */
#include "weft_test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>

#include "backend_features.h"
#include "sock.h"

static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 30});
    return 0;
}

static const char *backend_of(void **state)
{
    return *state;
}

/* The loop under test on this test's backend, run once so that whatever
 * fds the loop makes lazily exist before a test counts them. */
static weft_loop *net_loop(void **state, bool virtual_clock)
{
    weft_loop *loop = loop_on(backend_of(state), virtual_clock ? WEFT_LOOP_VIRTUAL_CLOCK : 0);
    step(loop);
    return loop;
}

/* ---- fds and peers --------------------------------------------------------------------------- */

/* Open fds of this process. */
static int nfds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A blocking TCP socket on the loopback of family, bound to port 0, and
 * listening with backlog (backlog < 0: not listening); its port in *port. */
static int tcp_socket(int family, int backlog, int *port)
{
    int fd = socket(family, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
    if (backlog >= 0)
        assert_int_equal(listen(fd, backlog), 0);
    len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *port = family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                              : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* A listener whose accept queue is full: a further SYN is dropped, so a
 * connect to it stays pending.  *filler is the connection that fills it. */
static int full_listener(int family, int *port, int *filler)
{
    int fd = tcp_socket(family, 0, port); /* backlog 0: one connection fills it */
    int c = socket(family, SOCK_STREAM, 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    assert_int_equal(connect(c, (struct sockaddr *)&ss, len), 0);
    *filler = c;
    return fd;
}

static weft__addr loopback_addr(int family, int port)
{
    /* built in sockaddr_in / _in6 locals and copied in: writing through a
     * cast of &a.ss breaks the aliasing rules, and gcc -O2 -m32 dropped
     * those stores */
    weft__addr a;
    memset(&a, 0, sizeof a);
    a.family = family;
    if (family == AF_INET) {
        struct sockaddr_in s;
        memset(&s, 0, sizeof s);
        s.sin_family = AF_INET;
        s.sin_port = htons((uint16_t)port);
        s.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        memcpy(&a.ss, &s, sizeof s);
        a.len = sizeof s;
    } else {
        struct sockaddr_in6 s;
        memset(&s, 0, sizeof s);
        s.sin6_family = AF_INET6;
        s.sin6_port = htons((uint16_t)port);
        s.sin6_addr = in6addr_loopback;
        memcpy(&a.ss, &s, sizeof s);
        a.len = sizeof s;
    }
    return a;
}

static int port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
                                    : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* ---- a recording client protocol ------------------------------------------------------------- */

static struct {
    int made, lost, lost_err;
    weft_transport *t;
    char data[256];
    size_t n;
} g_cl;

static void cl_made(weft_transport *t, void *ud)
{
    (void)ud;
    g_cl.made++;
    g_cl.t = t;
}

static void cl_data(weft_transport *t, const void *data, size_t n, void *ud)
{
    (void)t, (void)ud;
    if (g_cl.n + n <= sizeof g_cl.data) {
        memcpy(g_cl.data + g_cl.n, data, n);
        g_cl.n += n;
    }
}

static void cl_lost(weft_transport *t, int err, void *ud)
{
    (void)t, (void)ud;
    g_cl.lost++;
    g_cl.lost_err = err;
}

static const weft_protocol client_proto = {
    .connection_made = cl_made,
    .data_received = cl_data,
    .connection_lost = cl_lost,
};

/* Run until f is done; its error; the transport in *t (may be NULL). */
static int await_connect(weft_loop *loop, weft_future *f, weft_transport **t)
{
    assert_non_null(f);
    while (!weft_future_done(f)) /* not run_until_complete: it allocates */
        assert_int_equal(weft_loop_run_once(loop), 0);
    weft_value v = {0};
    int err = weft_future_result(f, &v);
    if (t)
        *t = err ? NULL : v.p;
    weft_future_unref(f);
    return err;
}

/* Abort t and run until its connection_lost ran. */
static void drop_transport(weft_loop *loop, weft_transport *t)
{
    int lost = g_cl.lost;
    assert_int_equal(weft_transport_abort(t), 0);
    while (g_cl.lost == lost)
        assert_int_equal(weft_loop_run_once(loop), 0);
}

/* ---- TCP ------------------------------------------------------------------------------------- */

static void connect_on_loopback(void **state, int family, const char *host)
{
    weft_loop *loop = net_loop(state, false);
    int port, lfd = tcp_socket(family, 8, &port);
    memset(&g_cl, 0, sizeof g_cl);
    int before = nfds();
    weft_transport *t = NULL;
    assert_int_equal(
        await_connect(loop, weft_create_connection(loop, &client_proto, TAG(1), host, port, NULL),
                      &t),
        0);
    assert_non_null(t);
    step(loop); /* connection_made was queued before the future's waiters */
    assert_int_equal(g_cl.made, 1);
    assert_ptr_equal(g_cl.t, t);
    assert_ptr_equal(weft_transport_protocol_ud(t), TAG(1));
    assert_int_equal(nfds(), before + 1);
    /* connected to the listener, with Nagle off */
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    assert_int_equal(weft_transport_peername(t, (struct sockaddr *)&peer, &len), 0);
    assert_int_equal(peer.ss_family, family);
    assert_int_equal(port_of(&peer), port);
    int nd = 0;
    socklen_t ndl = sizeof nd;
    assert_int_equal(getsockopt(weft_transport_fd(t), IPPROTO_TCP, TCP_NODELAY, &nd, &ndl), 0);
    assert_int_not_equal(nd, 0);
    /* the accepted side talks to it */
    int peerfd = accept(lfd, NULL, NULL);
    assert_true(peerfd >= 0);
    assert_int_equal(write(peerfd, "hello", 5), 5);
    while (g_cl.n < 5)
        assert_int_equal(weft_loop_run_once(loop), 0);
    assert_memory_equal(g_cl.data, "hello", 5);
    drop_transport(loop, t);
    assert_int_equal(g_cl.lost_err, 0);
    close(peerfd);
    assert_int_equal(nfds(), before);
    close(lfd);
    finish(loop);
}

/* net.h: TCP over IPv4 on a port the kernel picked; the future's value is
 * the transport, connection_made ran first, TCP_NODELAY is on. */
static void test_connect_tcp_ipv4(void **state)
{
    connect_on_loopback(state, AF_INET, "127.0.0.1");
}

/* The same over IPv6 (skipped only if the machine has no ::1). */
static void test_connect_tcp_ipv6(void **state)
{
    if (!have_ipv6_loopback()) {
        skip();
        return;
    }
    connect_on_loopback(state, AF_INET6, "::1");
}

/* A name (not numeric) goes through weft_getaddrinfo on the executor. */
static void test_connect_by_name_resolves_on_the_executor(void **state)
{
    connect_on_loopback(state, AF_INET, "localhost");
}

/* no_delay_off leaves Nagle on; local_addr binds the socket first. */
static void test_connect_no_delay_off_and_local_addr(void **state)
{
    weft_loop *loop = net_loop(state, false);
    int port, lfd = tcp_socket(AF_INET, 8, &port);
    weft__addr local = loopback_addr(AF_INET, 0);
    weft_connect_opts o = {.no_delay_off = true,
                           .local_addr = (struct sockaddr *)&local.ss,
                           .local_addrlen = local.len};
    weft_transport *t = NULL;
    assert_int_equal(
        await_connect(loop,
                      weft_create_connection(loop, &client_proto, NULL, "127.0.0.1", port, &o), &t),
        0);
    int nd = 1;
    socklen_t ndl = sizeof nd;
    assert_int_equal(getsockopt(weft_transport_fd(t), IPPROTO_TCP, TCP_NODELAY, &nd, &ndl), 0);
    assert_int_equal(nd, 0);
    struct sockaddr_storage me;
    socklen_t len = sizeof me;
    assert_int_equal(weft_transport_sockname(t, (struct sockaddr *)&me, &len), 0);
    assert_int_equal(((struct sockaddr_in *)&me)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    drop_transport(loop, t);
    /* a local address of another family leaves no address to try */
    if (have_ipv6_loopback()) {
        weft__addr l6 = loopback_addr(AF_INET6, 0);
        o.local_addr = (struct sockaddr *)&l6.ss;
        o.local_addrlen = l6.len;
        int before = nfds();
        assert_int_equal(
            await_connect(loop,
                          weft_create_connection(loop, &client_proto, NULL, "127.0.0.1", port, &o),
                          NULL),
            -EADDRNOTAVAIL);
        assert_int_equal(nfds(), before);
    }
    close(lfd);
    finish(loop);
}

/* A port nobody listens on: -ECONNREFUSED, and the socket is closed. */
static void test_connect_refused(void **state)
{
    weft_loop *loop = net_loop(state, false);
    int port, busy = tcp_socket(AF_INET, -1, &port); /* bound, not listening */
    int before = nfds();
    assert_int_equal(
        await_connect(
            loop, weft_create_connection(loop, &client_proto, NULL, "127.0.0.1", port, NULL), NULL),
        -ECONNREFUSED);
    assert_int_equal(nfds(), before);
    close(busy);
    finish(loop);
}

/* A name that cannot resolve (RFC 6761 .invalid): a WEFT_EAI_* code. */
static void test_connect_unresolvable_name(void **state)
{
    weft_loop *loop = net_loop(state, false);
    int before = nfds();
    int err = await_connect(
        loop, weft_create_connection(loop, &client_proto, NULL, "no-such-host.invalid", 80, NULL),
        NULL);
    assert_true(err >= WEFT_EAI_MIN && err <= WEFT_EAI_MAX);
    assert_int_equal(nfds(), before);
    /* a numeric host of the wrong family, without the executor */
    weft_connect_opts o = {.family = AF_INET6};
    err = await_connect(
        loop, weft_create_connection(loop, &client_proto, NULL, "127.0.0.1", 80, &o), NULL);
    assert_true(err >= WEFT_EAI_MIN && err <= WEFT_EAI_MAX);
    finish(loop);
}

/* Cancelling a pending connect closes its socket; the future is
 * cancelled and connection_made never runs. */
static void test_cancel_pending_connect_closes_the_socket(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_cl, 0, sizeof g_cl);
    int port, filler, lfd = full_listener(AF_INET, &port, &filler);
    int before = nfds();
    weft_future *f = weft_create_connection(loop, &client_proto, NULL, "127.0.0.1", port, NULL);
    assert_non_null(f);
    step(loop);
    step(loop);
    assert_false(weft_future_done(f));
    assert_int_equal(nfds(), before + 1); /* the half-open socket */
    assert_int_equal(weft_future_cancel(f), 0);
    assert_true(weft_future_cancelled(f));
    assert_int_equal(nfds(), before);
    weft_future_unref(f);
    step(loop);
    assert_int_equal(g_cl.made, 0);
    close(filler);
    close(lfd);
    finish(loop);
}

/* A timeout around a connect (weft_wait_for): -ETIMEDOUT, socket closed. */
static void test_timeout_around_connect(void **state)
{
    weft_loop *loop = net_loop(state, true);
    int port, filler, lfd = full_listener(AF_INET, &port, &filler);
    int before = nfds();
    weft_future *f = weft_wait_for(
        weft_create_connection(loop, &client_proto, NULL, "127.0.0.1", port, NULL), 2.0);
    assert_int_equal(await_connect(loop, f, NULL), -ETIMEDOUT);
    assert_int_equal(weft_loop_now(loop), 2 * SEC);
    assert_int_equal(nfds(), before);
    close(filler);
    close(lfd);
    finish(loop);
}

/* A task awaiting a connect is cancelled: the connect goes with it. */
struct connect_co {
    WEFT_FRAME(int);
    int port;
};

WEFT_ASYNC(connect_co)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_create_connection(weft_task_loop(task), &client_proto, NULL, "127.0.0.1",
                                            self->port, NULL));
    WEFT_END;
}

static void test_cancelled_task_closes_its_pending_connect(void **state)
{
    weft_loop *loop = net_loop(state, true);
    int port, filler, lfd = full_listener(AF_INET, &port, &filler);
    int before = nfds();
    weft_task *t = WEFT_SPAWN(loop, connect_co, .port = port);
    step(loop);
    assert_int_equal(nfds(), before + 1);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run_task(loop, t), -ECANCELED);
    assert_int_equal(nfds(), before);
    close(filler);
    close(lfd);
    finish(loop);
}

/* A task awaiting the connect resumes after connection_made ran (asyncio's
 * create_connection returns once the protocol has the transport). */
struct made_first_co {
    WEFT_FRAME(int);
    int port;
};

WEFT_ASYNC(made_first_co)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_create_connection(weft_task_loop(task), &client_proto, NULL, "127.0.0.1",
                                            self->port, NULL));
    self->result = g_cl.made; /* no assert in a body: the test checks it */
    weft_transport_abort(WEFT_RESULT(self).p);
    WEFT_END;
}

static void test_connection_made_runs_before_the_awaiter_resumes(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_cl, 0, sizeof g_cl);
    int port, lfd = tcp_socket(AF_INET, 8, &port);
    weft_task *t = WEFT_SPAWN(loop, made_first_co, .port = port);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 1);
    weft_future_unref(t);
    while (g_cl.lost == 0)
        assert_int_equal(weft_loop_run_once(loop), 0);
    close(lfd);
    finish(loop);
}

/* ---- several addresses ----------------------------------------------------------------------- */

/* Happy eyeballs: the first address hangs, the second starts after the
 * stagger delay (exactly, on the virtual clock) and wins; the hanging
 * attempt is closed. */
static void test_happy_eyeballs_second_address_wins_after_the_delay(void **state)
{
    weft_loop *loop = net_loop(state, true);
    int hang_port, filler, hang = full_listener(AF_INET, &hang_port, &filler);
    int port, lfd = tcp_socket(AF_INET, 8, &port);
    weft__addr a[2] = {loopback_addr(AF_INET, hang_port), loopback_addr(AF_INET, port)};
    weft_connect_opts o = {.happy_eyeballs_delay = 0.25};
    int before = nfds();
    weft_transport *t = NULL;
    assert_int_equal(
        await_connect(loop, weft__connect_addrs(loop, &client_proto, NULL, a, 2, &o), &t), 0);
    assert_int_equal(weft_loop_now(loop), 250 * MS);
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    assert_int_equal(weft_transport_peername(t, (struct sockaddr *)&peer, &len), 0);
    assert_int_equal(port_of(&peer), port);
    assert_int_equal(nfds(), before + 1); /* the winner only */
    drop_transport(loop, t);
    close(lfd);
    close(filler);
    close(hang);
    finish(loop);
}

/* A refused first address starts the next one at once, staggered or not. */
static void test_failed_attempt_starts_the_next_at_once(void **state)
{
    for (int he = 0; he < 2; he++) {
        weft_loop *loop = net_loop(state, true);
        int dead_port, dead = tcp_socket(AF_INET, -1, &dead_port);
        int port, lfd = tcp_socket(AF_INET, 8, &port);
        weft__addr a[2] = {loopback_addr(AF_INET, dead_port), loopback_addr(AF_INET, port)};
        weft_connect_opts o = {.happy_eyeballs_delay = he ? 10.0 : 0};
        weft_transport *t = NULL;
        assert_int_equal(
            await_connect(loop, weft__connect_addrs(loop, &client_proto, NULL, a, 2, &o), &t), 0);
        assert_int_equal(weft_loop_now(loop), 0);
        drop_transport(loop, t);
        /* every address refused: the last error */
        weft__addr b[2] = {loopback_addr(AF_INET, dead_port), loopback_addr(AF_INET, dead_port)};
        int before = nfds();
        assert_int_equal(
            await_connect(loop, weft__connect_addrs(loop, &client_proto, NULL, b, 2, &o), NULL),
            -ECONNREFUSED);
        assert_int_equal(nfds(), before);
        close(lfd);
        close(dead);
        finish(loop);
    }
}

/* Cancelling while several staggered attempts hang closes all of them. */
static void test_cancel_closes_every_staggered_attempt(void **state)
{
    weft_loop *loop = net_loop(state, true);
    int port, filler, hang = full_listener(AF_INET, &port, &filler);
    weft__addr a[3] = {loopback_addr(AF_INET, port), loopback_addr(AF_INET, port),
                       loopback_addr(AF_INET, port)};
    weft_connect_opts o = {.happy_eyeballs_delay = 0.1};
    int before = nfds();
    weft_future *f = weft_wait_for(weft__connect_addrs(loop, &client_proto, NULL, a, 3, &o), 1.0);
    assert_int_equal(await_connect(loop, f, NULL), -ETIMEDOUT);
    assert_int_equal(nfds(), before);
    close(filler);
    close(hang);
    finish(loop);
}

/* RFC 8305 interleaving: `first` of the first family, then alternate. */
static void test_interleave_orders_addresses_by_family(void **state)
{
    (void)state;
    int fam[] = {AF_INET6, AF_INET6, AF_INET6, AF_INET, AF_INET};
    weft__addr a[5];
    for (int i = 0; i < 5; i++) {
        a[i] = loopback_addr(fam[i], 1000 + i);
    }
    weft__addrs_interleave(a, 5, 1);
    int want1[] = {1000, 1003, 1001, 1004, 1002};
    for (int i = 0; i < 5; i++)
        assert_int_equal(port_of(&a[i].ss), want1[i]);
    for (int i = 0; i < 5; i++)
        a[i] = loopback_addr(fam[i], 1000 + i);
    weft__addrs_interleave(a, 5, 2);
    int want2[] = {1000, 1001, 1003, 1002, 1004};
    for (int i = 0; i < 5; i++)
        assert_int_equal(port_of(&a[i].ss), want2[i]);
}

/* ---- Unix sockets ---------------------------------------------------------------------------- */

static void unix_path(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "/tmp/weft-test-%d-%s.sock", (int)getpid(), what);
    unlink(buf);
}

static void test_connect_unix(void **state)
{
    weft_loop *loop = net_loop(state, false);
    char path[108];
    unix_path(path, sizeof path, "c");
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    socklen_t len;
    assert_int_equal(weft__sock_unix_addr(path, &sun, &len), 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, len), 0);
    assert_int_equal(listen(lfd, 8), 0);
    int before = nfds();
    weft_transport *t = NULL;
    assert_int_equal(
        await_connect(loop, weft_create_unix_connection(loop, &client_proto, NULL, path), &t), 0);
    assert_non_null(t);
    int peer = accept(lfd, NULL, NULL);
    assert_int_equal(write(peer, "hi", 2), 2);
    g_cl.n = 0;
    while (g_cl.n < 2)
        assert_int_equal(weft_loop_run_once(loop), 0);
    drop_transport(loop, t);
    close(peer);
    assert_int_equal(nfds(), before);
    close(lfd);
    before--;
    unlink(path);
    /* nobody there */
    assert_int_equal(
        await_connect(loop, weft_create_unix_connection(loop, &client_proto, NULL, path), NULL),
        -ENOENT);
    assert_int_equal(nfds(), before);
    /* too long */
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    assert_null(weft_create_unix_connection(loop, &client_proto, NULL, longp));
    assert_int_equal(weft_last_error(), -EINVAL);
    finish(loop);
}

/* ---- bad input, allocation failures, loop close ---------------------------------------------- */

static void test_connect_bad_input(void **state)
{
    weft_loop *loop = net_loop(state, false);
    const weft_protocol *p = &client_proto;
#define REFUSED(call, code)                          \
    do {                                             \
        assert_null(call);                           \
        assert_int_equal(weft_last_error(), (code)); \
    } while (0)
    REFUSED(weft_create_connection(NULL, p, NULL, "127.0.0.1", 80, NULL), -EINVAL);
    REFUSED(weft_create_connection(loop, NULL, NULL, "127.0.0.1", 80, NULL), -EINVAL);
    REFUSED(weft_create_connection(loop, p, NULL, NULL, 80, NULL), -EINVAL);
    REFUSED(weft_create_connection(loop, p, NULL, "127.0.0.1", 0, NULL), -EINVAL);
    REFUSED(weft_create_connection(loop, p, NULL, "127.0.0.1", 65536, NULL), -EINVAL);
    REFUSED(weft_create_connection(loop, p, NULL, "127.0.0.1", -1, NULL), -EINVAL);
    weft_connect_opts bad[] = {
        {.family = AF_UNIX},
        {.happy_eyeballs_delay = -1},
        {.happy_eyeballs_delay = NAN},
        {.interleave = -1},
        {.local_addrlen = 16},
        {.local_addr = (const struct sockaddr *)&bad, .local_addrlen = 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        REFUSED(weft_create_connection(loop, p, NULL, "127.0.0.1", 80, &bad[i]), -EINVAL);
    REFUSED(weft_create_unix_connection(NULL, p, NULL, "/tmp/x"), -EINVAL);
    REFUSED(weft_create_unix_connection(loop, NULL, NULL, "/tmp/x"), -EINVAL);
    REFUSED(weft_create_unix_connection(loop, p, NULL, NULL), -EINVAL);
    REFUSED(weft_create_unix_connection(loop, p, NULL, ""), -EINVAL);
    assert_int_equal(weft_loop_close(loop), 0);
    REFUSED(weft_create_connection(loop, p, NULL, "127.0.0.1", 80, NULL), WEFT_ECLOSED);
    REFUSED(weft_create_unix_connection(loop, p, NULL, "/tmp/x"), WEFT_ECLOSED);
#undef REFUSED
    finish(loop);
}

/* Fail each allocation of a connect in turn (numeric and by name, with
 * and without happy eyeballs): each fails with -ENOMEM (NULL or a failed
 * future), closes what it opened and leaks nothing, until one succeeds. */
static void connect_with_failures(void **state, const char *host, double he)
{
    int port, lfd = tcp_socket(AF_INET, 64, &port);
    weft_connect_opts o = {.happy_eyeballs_delay = he};
    int before = nfds();
    bool done = false;
    int failures = 0;
    for (long k = 1; !done && k < 100; k++) {
        weft_loop *loop = net_loop(state, false);
        wt_warm(loop);
        alloc_fail_at(alloc_calls() + k);
        weft_future *f = weft_create_connection(loop, &client_proto, NULL, host, port, &o);
        if (!f) {
            assert_int_equal(weft_last_error(), -ENOMEM);
            failures++;
        } else {
            weft_transport *t = NULL;
            int err = await_connect(loop, f, &t);
            alloc_fail_at(0);
            if (err == 0) {
                done = true;
                drop_transport(loop, t);
                int peer = accept(lfd, NULL, NULL);
                assert_true(peer >= 0);
                close(peer);
            } else {
                assert_int_equal(err, -ENOMEM);
                failures++;
            }
        }
        alloc_fail_at(0);
        finish(loop);
        assert_int_equal(nfds(), before);
    }
    assert_true(done);
    assert_true(failures >= 3); /* the block, the addresses, the attempts at least */
    close(lfd);
}

static void test_connect_allocation_failures(void **state)
{
    connect_with_failures(state, "127.0.0.1", 0);
    connect_with_failures(state, "127.0.0.1", 0.5);
    connect_with_failures(state, "localhost", 0);
}

/* The loop closes under a pending connect: its socket is closed, its
 * future released, nothing leaks. */
static void test_loop_close_releases_a_pending_connect(void **state)
{
    int port, filler, lfd = full_listener(AF_INET, &port, &filler);
    int base = nfds();
    weft_loop *loop = net_loop(state, false);
    int before = nfds();
    weft_future *f = weft_create_connection(loop, &client_proto, NULL, "127.0.0.1", port, NULL);
    step(loop);
    assert_int_equal(nfds(), before + 1);
    weft_future_unref(f); /* the loop still holds it */
    step(loop);
    assert_int_equal(nfds(), before + 1);
    finish(loop);
    assert_int_equal(nfds(), base);
    close(filler);
    close(lfd);
}

/* ---- registration ---------------------------------------------------------------------------- */

/* clang-format off */
#define ON(f, backend) {#f "(" backend ")", f, setup, teardown, (void *)backend}
/* clang-format on */
#if WEFT__HAVE_EPOLL
#define ON_EPOLL(f) ON(f, "epoll"),
#else
#define ON_EPOLL(f)
#endif
#define ON_BOTH(f) ON_EPOLL(f) ON(f, "poll"),

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        ON_BOTH(test_connect_tcp_ipv4)
        ON_BOTH(test_connect_tcp_ipv6)
        ON_BOTH(test_connect_by_name_resolves_on_the_executor)
        ON_BOTH(test_connect_no_delay_off_and_local_addr)
        ON_BOTH(test_connect_refused)
        ON_BOTH(test_connect_unresolvable_name)
        ON_BOTH(test_cancel_pending_connect_closes_the_socket)
        ON_BOTH(test_timeout_around_connect)
        ON_BOTH(test_cancelled_task_closes_its_pending_connect)
        ON_BOTH(test_connection_made_runs_before_the_awaiter_resumes)
        ON_BOTH(test_happy_eyeballs_second_address_wins_after_the_delay)
        ON_BOTH(test_failed_attempt_starts_the_next_at_once)
        ON_BOTH(test_cancel_closes_every_staggered_attempt)
        T(test_interleave_orders_addresses_by_family),
        ON_BOTH(test_connect_unix)
        ON_BOTH(test_connect_bad_input)
        ON_BOTH(test_connect_allocation_failures)
        ON_BOTH(test_loop_close_releases_a_pending_connect)
    };
    /* clang-format on */
    return RUN_TESTS(tests);
}
