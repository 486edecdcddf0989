/* test_net_server.c - servers: TCP (IPv4, IPv6, every interface), Unix
 * paths, an existing fd; accepting in batches, the factory, EMFILE
 * back-off, SO_REUSEPORT; close, close_clients, abort_clients,
 * wait_closed, serve_forever; allocation failures; a thousand echoed
 * connections; the loop closing under a server and its clients.
 *
 * Clients are mostly plain blocking sockets made by the test: a connect to
 * a listening socket completes in the kernel's backlog without the server
 * accepting, so the test controls exactly what is queued before the loop
 * runs.  Timers (the EMFILE back-off) run on the virtual clock, which
 * jumps to the deadline as soon as the loop would block.  Every test runs
 * on both fd backends and counts the process's open fds.
 */
#include "weft_test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "backend_features.h"
#include "sock.h"

static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 60});
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

/* ---- fds and clients ------------------------------------------------------------------------- */

static int nfds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
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

/* A blocking client connected to the loopback of family at port. */
static int dial(int family, int port)
{
    int fd = socket(family, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static int dial_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    socklen_t len;
    assert_int_equal(weft__sock_unix_addr(path, &sun, &len), 0);
    if (connect(fd, (struct sockaddr *)&sun, len) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* ---- an echo protocol that counts ------------------------------------------------------------ */

static struct {
    int made, lost, factory_calls, refuse;
    int lost_err;
} g_srv;

static void echo_made(weft_transport *t, void *ud)
{
    (void)t, (void)ud;
    g_srv.made++;
}

static void echo_data(weft_transport *t, const void *data, size_t n, void *ud)
{
    (void)ud;
    weft_transport_write(t, data, n);
}

static void echo_lost(weft_transport *t, int err, void *ud)
{
    (void)t, (void)ud;
    g_srv.lost++;
    g_srv.lost_err = err;
}

static const weft_protocol echo_proto = {
    .connection_made = echo_made,
    .data_received = echo_data,
    .connection_lost = echo_lost,
};

static int factory(weft_server *s, void *arg, void **ud)
{
    (void)s;
    g_srv.factory_calls++;
    if (g_srv.refuse)
        return -EPERM;
    *ud = arg;
    return 0;
}

/* Run until pred holds (blocking in the backend between events). */
#define RUN_UNTIL(loop, cond)                              \
    do {                                                   \
        while (!(cond))                                    \
            assert_int_equal(weft_loop_run_once(loop), 0); \
    } while (0)

/* The server of a create_server future, run to completion. */
static int server_of(weft_loop *loop, weft_future *f, weft_server **out)
{
    assert_non_null(f);
    while (!weft_future_done(f)) /* not run_until_complete: it allocates */
        assert_int_equal(weft_loop_run_once(loop), 0);
    weft_value v = {0};
    int err = weft_future_result(f, &v);
    weft_future_unref(f);
    *out = err ? NULL : v.p;
    return err;
}

static weft_server *tcp_server(weft_loop *loop, const char *host, const weft_server_opts *o)
{
    weft_server *s = NULL;
    assert_int_equal(
        server_of(loop, weft_create_server(loop, &echo_proto, factory, TAG(7), host, 0, o), &s), 0);
    assert_non_null(s);
    return s;
}

/* Write msg on a blocking client and read its echo. */
static void echo_check(weft_loop *loop, int c, const char *msg)
{
    size_t n = strlen(msg);
    assert_int_equal(write(c, msg, n), (ssize_t)n);
    /* the loop must run to echo: read without blocking until it did */
    char buf[256];
    size_t got = 0;
    while (got < n) {
        assert_int_equal(weft_loop_run_once(loop), 0);
        ssize_t k = recv(c, buf + got, n - got, MSG_DONTWAIT);
        if (k > 0)
            got += (size_t)k;
    }
    assert_memory_equal(buf, msg, n);
}

/* ---- TCP ------------------------------------------------------------------------------------- */

static void serve_on(void **state, int family, const char *host)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    int before = nfds();
    weft_server *s = tcp_server(loop, host, NULL);
    assert_int_equal(weft_server_nsockets(s), 1);
    assert_true(weft_server_is_serving(s));
    int port = weft_server_port(s);
    assert_true(port > 0);
    int c = dial(family, port);
    assert_true(c >= 0);
    RUN_UNTIL(loop, g_srv.made == 1);
    assert_int_equal(g_srv.factory_calls, 1);
    assert_int_equal(weft_server_nclients(s), 1);
    echo_check(loop, c, "ping");
    close(c);
    RUN_UNTIL(loop, g_srv.lost == 1);
    assert_int_equal(weft_server_nclients(s), 0);
    weft_server_free(s);
    assert_int_equal(nfds(), before);
    finish(loop);
}

/* net.h: a TCP server on 127.0.0.1 port 0 accepts, gives the factory's
 * pointer, echoes, and counts its clients. */
static void test_server_tcp_ipv4(void **state)
{
    serve_on(state, AF_INET, "127.0.0.1");
}

static void test_server_tcp_ipv6(void **state)
{
    if (!have_ipv6_loopback()) {
        skip();
        return;
    }
    serve_on(state, AF_INET6, "::1");
}

/* host NULL: every interface, one socket per family on one port (V6ONLY
 * lets them share it), both reachable. */
static void test_server_all_interfaces_shares_one_port(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server *s = tcp_server(loop, NULL, NULL);
    int port = weft_server_port(s);
    bool v6 = have_ipv6_loopback();
    assert_int_equal(weft_server_nsockets(s), v6 ? 2 : 1);
    for (int i = 0; i < weft_server_nsockets(s); i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        assert_int_equal(getsockname(weft_server_socket(s, i), (struct sockaddr *)&ss, &len), 0);
        int p = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                        : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        assert_int_equal(p, port);
        if (ss.ss_family == AF_INET6) {
            int on = 0;
            socklen_t ol = sizeof on;
            assert_int_equal(
                getsockopt(weft_server_socket(s, i), IPPROTO_IPV6, IPV6_V6ONLY, &on, &ol), 0);
            assert_int_equal(on, 1);
        }
    }
    assert_int_equal(weft_server_socket(s, 2), -1);
    assert_int_equal(weft_server_socket(s, -1), -1);
    int c4 = dial(AF_INET, port);
    assert_true(c4 >= 0);
    int c6 = v6 ? dial(AF_INET6, port) : -1;
    RUN_UNTIL(loop, g_srv.made == (v6 ? 2 : 1));
    close(c4);
    if (c6 >= 0)
        close(c6);
    weft_server_free(s);
    step(loop);
    finish(loop);
}

/* Accepted TCP sockets have TCP_NODELAY; SO_REUSEADDR is on by default. */
static void test_server_socket_options(void **state)
{
    weft_loop *loop = net_loop(state, false);
    weft_server *s = tcp_server(loop, "127.0.0.1", NULL);
    int on = 0;
    socklen_t ol = sizeof on;
    assert_int_equal(getsockopt(weft_server_socket(s, 0), SOL_SOCKET, SO_REUSEADDR, &on, &ol), 0);
    assert_int_not_equal(on, 0);
    weft_server_free(s);
    weft_server_opts o = {.no_reuse_addr = true};
    s = tcp_server(loop, "127.0.0.1", &o);
    on = 1;
    assert_int_equal(getsockopt(weft_server_socket(s, 0), SOL_SOCKET, SO_REUSEADDR, &on, &ol), 0);
    assert_int_equal(on, 0);
    weft_server_free(s);
    finish(loop);
}

/* Two servers on one port with reuse_port (one loop per thread, in real
 * life); without it the second bind fails with -EADDRINUSE. */
static void test_reuse_port_two_servers_on_one_port(void **state)
{
    weft_loop *loop = net_loop(state, false);
    weft_server_opts o = {.reuse_port = true};
    weft_server *a = tcp_server(loop, "127.0.0.1", &o);
    int port = weft_server_port(a);
    weft_server *b = NULL;
    assert_int_equal(
        server_of(loop, weft_create_server(loop, &echo_proto, factory, NULL, "127.0.0.1", port, &o),
                  &b),
        0);
    assert_int_equal(weft_server_port(b), port);
    weft_server *c = NULL;
    assert_int_equal(
        server_of(loop,
                  weft_create_server(loop, &echo_proto, factory, NULL, "127.0.0.1", port, NULL),
                  &c),
        -EADDRINUSE);
    weft_server_free(a);
    weft_server_free(b);
    finish(loop);
}

/* The factory refuses: the connection is closed, no callback runs. */
static void test_factory_refusing_closes_the_connection(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    g_srv.refuse = 1;
    weft_server *s = tcp_server(loop, "127.0.0.1", NULL);
    int before = nfds();
    int c = dial(AF_INET, weft_server_port(s));
    RUN_UNTIL(loop, g_srv.factory_calls == 1);
    char b;
    assert_int_equal(read(c, &b, 1), 0); /* EOF: the server closed it */
    assert_int_equal(weft_server_nclients(s), 0);
    step(loop);
    assert_int_equal(g_srv.made, 0);
    assert_int_equal(g_srv.lost, 0);
    close(c);
    assert_int_equal(nfds(), before);
    weft_server_free(s);
    finish(loop);
}

/* A factory that frees its server: the accept loop ends first, the
 * connection in hand is dropped, nothing is touched after the free. */
static int freeing_factory(weft_server *s, void *arg, void **ud)
{
    (void)arg, (void)ud;
    g_srv.factory_calls++;
    weft_server_free(s);
    return 0;
}

static void test_factory_may_free_its_server(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server *s = NULL;
    assert_int_equal(server_of(loop,
                               weft_create_server(loop, &echo_proto, freeing_factory, NULL,
                                                  "127.0.0.1", 0, NULL),
                               &s),
                     0);
    int before = nfds();
    int c1 = dial(AF_INET, weft_server_port(s)), c2 = dial(AF_INET, weft_server_port(s));
    RUN_UNTIL(loop, g_srv.factory_calls == 1);
    char b;
    assert_int_equal(read(c1, &b, 1), 0); /* dropped */
    step(loop);
    assert_int_equal(g_srv.factory_calls, 1);
    assert_int_equal(g_srv.made, 0);
    close(c1);
    close(c2);
    assert_int_equal(nfds(), before - 1); /* the listening socket went too */
    finish(loop);
}

/* accept_batch: one readiness accepts at most that many connections. */
static void test_accept_batch_limits_one_readiness(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server_opts o = {.accept_batch = 2};
    weft_server *s = tcp_server(loop, "127.0.0.1", &o);
    int c[5];
    for (int i = 0; i < 5; i++)
        c[i] = dial(AF_INET, weft_server_port(s));
    step(loop);
    assert_int_equal(weft_server_nclients(s), 2);
    step(loop);
    assert_int_equal(weft_server_nclients(s), 4);
    step(loop);
    assert_int_equal(weft_server_nclients(s), 5);
    for (int i = 0; i < 5; i++)
        close(c[i]);
    RUN_UNTIL(loop, g_srv.lost == 5);
    weft_server_free(s);
    finish(loop);
}

/* start_paused: listening, not accepting, until start_serving. */
static void test_start_paused_then_start_serving(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server_opts o = {.start_paused = true};
    weft_server *s = tcp_server(loop, "127.0.0.1", &o);
    assert_false(weft_server_is_serving(s));
    int c = dial(AF_INET, weft_server_port(s)); /* waits in the backlog */
    assert_true(c >= 0);
    step(loop);
    step(loop);
    assert_int_equal(g_srv.factory_calls, 0);
    assert_int_equal(weft_server_start_serving(s), 0);
    assert_int_equal(weft_server_start_serving(s), 0); /* idempotent */
    assert_true(weft_server_is_serving(s));
    RUN_UNTIL(loop, g_srv.made == 1);
    close(c);
    RUN_UNTIL(loop, g_srv.lost == 1);
    weft_server_free(s);
    finish(loop);
}

/* EMFILE: the server stops accepting for 100 ms (a timer: no busy loop),
 * reports it through the report hook, and accepts again afterwards. */
static void test_emfile_backs_off_reports_and_resumes(void **state)
{
    weft_loop *loop = net_loop(state, true);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server *s = tcp_server(loop, "127.0.0.1", NULL);
    int c = dial(AF_INET, weft_server_port(s));
    assert_true(c >= 0);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int next = dup(0); /* the lowest free fd: the limit makes it the first refused */
    close(next);
    low = old;
    low.rlim_cur = (rlim_t)next;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload")) {
        /* valgrind checks the limit after the kernel made the fd: the
         * queued connection is accepted and lost, nothing to resume */
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        close(c);
        weft_server_free(s);
        finish(loop);
        skip();
        return;
    }
    uint64_t it0 = iterations(loop);
    step(loop);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_IO], 1);
    assert_int_equal(g_hook.err, -EMFILE);
    assert_int_equal(weft_server_nclients(s), 0);
    assert_true(weft_server_is_serving(s));
    int64_t t0 = weft_loop_now(loop);
    RUN_UNTIL(loop, g_srv.made == 1);
    assert_true(weft_loop_now(loop) - t0 >= 100 * MS);
    assert_true(iterations(loop) - it0 < 10); /* it waited on the timer, not in a spin */
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_IO], 1);
    close(c);
    RUN_UNTIL(loop, g_srv.lost == 1);
    weft_server_free(s);
    finish(loop);
}

/* ---- close, clients, wait_closed, serve_forever ---------------------------------------------- */

/* close stops accepting (new connects are refused) and closes the
 * listening sockets; accepted connections go on. */
static void test_close_stops_accepting_clients_go_on(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server *s = tcp_server(loop, "127.0.0.1", NULL);
    int port = weft_server_port(s);
    int c = dial(AF_INET, port);
    RUN_UNTIL(loop, g_srv.made == 1);
    assert_int_equal(weft_server_close(s), 0);
    assert_int_equal(weft_server_close(s), 0); /* idempotent */
    assert_false(weft_server_is_serving(s));
    assert_int_equal(weft_server_nsockets(s), 0);
    assert_int_equal(weft_server_port(s), -1);
    assert_int_equal(weft_server_start_serving(s), WEFT_ESTATE);
    assert_int_equal(dial(AF_INET, port), -ECONNREFUSED);
    echo_check(loop, c, "still here");
    assert_int_equal(weft_server_nclients(s), 1);
    close(c);
    RUN_UNTIL(loop, g_srv.lost == 1);
    weft_server_free(s);
    finish(loop);
}

/* wait_closed is done once the server is closed AND every connection is
 * gone (3.12.1); close_clients closes them (flushing). */
static void test_wait_closed_waits_for_close_and_clients(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server *s = tcp_server(loop, "127.0.0.1", NULL);
    int c1 = dial(AF_INET, weft_server_port(s)), c2 = dial(AF_INET, weft_server_port(s));
    RUN_UNTIL(loop, g_srv.made == 2);
    weft_future *w = weft_server_wait_closed(s);
    assert_non_null(w);
    step(loop);
    assert_false(weft_future_done(w)); /* not closed */
    assert_int_equal(weft_server_close(s), 0);
    step(loop);
    assert_false(weft_future_done(w)); /* clients left */
    assert_int_equal(weft_server_close_clients(s), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, w), 0);
    assert_int_equal(g_srv.lost, 2);
    assert_int_equal(g_srv.lost_err, 0);
    assert_int_equal(weft_server_nclients(s), 0);
    char b;
    assert_int_equal(read(c1, &b, 1), 0);
    assert_int_equal(read(c2, &b, 1), 0);
    weft_future_unref(w);
    /* done already: a done future */
    w = weft_server_wait_closed(s);
    assert_true(weft_future_done(w));
    weft_future_unref(w);
    close(c1);
    close(c2);
    weft_server_free(s);
    finish(loop);
}

/* A pending wait_closed the caller drops stays held by the server until
 * it completes (no use after free, nothing leaked; finish() counts); one
 * cancelled before the close leaves the server's list at once. */
static void test_wait_closed_dropped_or_cancelled_while_pending(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server *s = tcp_server(loop, "127.0.0.1", NULL);
    weft_future *dropped = weft_server_wait_closed(s);
    weft_future *cancelled = weft_server_wait_closed(s);
    assert_non_null(dropped);
    assert_non_null(cancelled);
    weft_future_unref(dropped); /* pending: the server still holds it */
    assert_int_equal(weft_future_cancel(cancelled), 0);
    assert_true(weft_future_cancelled(cancelled));
    weft_future_unref(cancelled);
    step(loop);
    assert_int_equal(weft_server_close(s), 0);
    step(loop);
    weft_future *w = weft_server_wait_closed(s);
    assert_true(weft_future_done(w));
    weft_future_unref(w);
    weft_server_free(s);
    finish(loop);
}

/* abort_clients drops every connection now. */
static void test_abort_clients(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server *s = tcp_server(loop, "127.0.0.1", NULL);
    int c[3];
    for (int i = 0; i < 3; i++)
        c[i] = dial(AF_INET, weft_server_port(s));
    RUN_UNTIL(loop, g_srv.made == 3);
    assert_int_equal(weft_server_abort_clients(s), 0);
    RUN_UNTIL(loop, g_srv.lost == 3);
    assert_int_equal(weft_server_nclients(s), 0);
    assert_true(weft_server_is_serving(s)); /* the server itself goes on */
    for (int i = 0; i < 3; i++)
        close(c[i]);
    weft_server_free(s);
    finish(loop);
}

/* serve_forever accepts until its task is cancelled; the server is then
 * closed.  A second serve_forever is refused. */
struct forever_co {
    WEFT_FRAME(int);
    weft_server *s;
};

WEFT_ASYNC(forever_co)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_server_serve_forever(self->s));
    WEFT_END;
}

static void test_serve_forever_until_cancelled(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server_opts o = {.start_paused = true};
    weft_server *s = tcp_server(loop, "127.0.0.1", &o);
    weft_task *t = WEFT_SPAWN(loop, forever_co, .s = s);
    step(loop);
    assert_true(weft_server_is_serving(s)); /* serve_forever started it */
    assert_null(weft_server_serve_forever(s));
    assert_int_equal(weft_last_error(), WEFT_ESTATE);
    int c = dial(AF_INET, weft_server_port(s));
    RUN_UNTIL(loop, g_srv.made == 1);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run_task(loop, t), -ECANCELED);
    assert_false(weft_server_is_serving(s));
    assert_int_equal(weft_server_nsockets(s), 0);
    assert_null(weft_server_serve_forever(s)); /* closed */
    assert_int_equal(weft_last_error(), WEFT_ESTATE);
    close(c);
    RUN_UNTIL(loop, g_srv.lost == 1);
    weft_server_free(s);
    finish(loop);
}

/* A timeout around serve_forever ends it and closes the server. */
static void test_timeout_around_serve_forever_closes_the_server(void **state)
{
    weft_loop *loop = net_loop(state, true);
    weft_server *s = tcp_server(loop, "127.0.0.1", NULL);
    weft_future *f = weft_wait_for(weft_server_serve_forever(s), 1.5);
    assert_non_null(f);
    while (!weft_future_done(f))
        assert_int_equal(weft_loop_run_once(loop), 0);
    assert_int_equal(weft_future_error(f), -ETIMEDOUT);
    assert_int_equal(weft_loop_now(loop), 1500 * MS);
    weft_future_unref(f);
    assert_false(weft_server_is_serving(s));
    assert_int_equal(weft_server_nsockets(s), 0);
    weft_server_free(s);
    finish(loop);
}

/* A host name (not numeric) resolves on the executor. */
static void test_server_by_name_resolves_on_the_executor(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server *s = tcp_server(loop, "localhost", NULL);
    assert_true(weft_server_nsockets(s) >= 1);
    int c = dial(AF_INET, weft_server_port(s));
    assert_true(c >= 0);
    RUN_UNTIL(loop, g_srv.made == 1);
    close(c);
    RUN_UNTIL(loop, g_srv.lost == 1);
    weft_server_free(s);
    finish(loop);
}

/* weft_server_close while serve_forever waits cancels it. */
static void test_close_cancels_serve_forever(void **state)
{
    weft_loop *loop = net_loop(state, false);
    weft_server *s = tcp_server(loop, "127.0.0.1", NULL);
    weft_task *t = WEFT_SPAWN(loop, forever_co, .s = s);
    step(loop);
    assert_int_equal(weft_server_close(s), 0);
    assert_int_equal(run_task(loop, t), -ECANCELED);
    weft_server_free(s);
    finish(loop);
}

/* weft_server_free with clients: they are aborted and the server is freed
 * after their connection_lost ran (no leak, no use after free). */
static void test_free_with_clients_waits_for_connection_lost(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server *s = tcp_server(loop, "127.0.0.1", NULL);
    int c = dial(AF_INET, weft_server_port(s));
    RUN_UNTIL(loop, g_srv.made == 1);
    weft_future *w = weft_server_wait_closed(s);
    weft_server_free(s);
    assert_int_equal(weft_loop_run_until_complete(loop, w), 0);
    assert_int_equal(g_srv.lost, 1);
    weft_future_unref(w);
    close(c);
    finish(loop);
}

/* ---- Unix sockets and fds ------------------------------------------------------------------- */

static void unix_path(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "/tmp/weft-test-%d-%s.sock", (int)getpid(), what);
    unlink(buf);
}

/* A Unix server: a stale socket file is replaced, a live one or another
 * file is not, and the file goes when the server closes. */
static void test_unix_server(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    char path[108];
    unix_path(path, sizeof path, "s");
    /* a stale socket file: bound, then its socket closed */
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun;
    socklen_t len;
    assert_int_equal(weft__sock_unix_addr(path, &sun, &len), 0);
    assert_int_equal(bind(stale, (struct sockaddr *)&sun, len), 0);
    close(stale);
    int before = nfds();
    weft_server *s = NULL;
    assert_int_equal(weft_create_unix_server(loop, &echo_proto, factory, NULL, path, NULL, &s), 0);
    assert_int_equal(weft_server_nsockets(s), 1);
    assert_int_equal(weft_server_port(s), -1);
    /* a live one is not replaced */
    weft_server *s2 = NULL;
    assert_int_equal(weft_create_unix_server(loop, &echo_proto, factory, NULL, path, NULL, &s2),
                     -EADDRINUSE);
    assert_null(s2);
    RUN_UNTIL(loop, g_srv.lost == 1); /* the live server saw the probe come and go */
    int c = dial_unix(path);
    assert_true(c >= 0);
    RUN_UNTIL(loop, g_srv.made == 2);
    echo_check(loop, c, "unix");
    close(c);
    RUN_UNTIL(loop, g_srv.lost == 2);
    weft_server_free(s);
    struct stat st;
    assert_int_equal(stat(path, &st), -1); /* removed */
    assert_int_equal(nfds(), before);
    /* a regular file there is not ours to remove */
    FILE *fp = fopen(path, "w");
    fclose(fp);
    assert_int_equal(weft_create_unix_server(loop, &echo_proto, factory, NULL, path, NULL, &s2),
                     -EADDRINUSE);
    assert_int_equal(stat(path, &st), 0);
    unlink(path);
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    assert_int_equal(weft_create_unix_server(loop, &echo_proto, factory, NULL, longp, NULL, &s2),
                     -EINVAL);
    assert_int_equal(nfds(), before);
    finish(loop);
}

/* weft_server_from_fd: a bound socket (listen is called) and a listening
 * one; the server owns the fd.  Not a stream socket: refused, fd kept. */
static void test_server_from_fd(void **state)
{
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    for (int listening = 0; listening < 2; listening++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
        if (listening)
            assert_int_equal(listen(fd, 4), 0);
        int before = nfds();
        weft_server *s = NULL;
        assert_int_equal(weft_server_from_fd(loop, fd, &echo_proto, NULL, NULL, NULL, &s), 0);
        assert_int_equal(weft_server_socket(s, 0), fd);
        int c = dial(AF_INET, weft_server_port(s));
        assert_true(c >= 0);
        RUN_UNTIL(loop, g_srv.made == listening + 1);
        echo_check(loop, c, "fd");
        close(c);
        RUN_UNTIL(loop, g_srv.lost == listening + 1);
        weft_server_free(s);
        assert_int_equal(nfds(), before - 1); /* fd closed by the server */
    }
    weft_server *s = NULL;
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(weft_server_from_fd(loop, udp, &echo_proto, NULL, NULL, NULL, &s), -EINVAL);
    close(udp);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    assert_int_equal(weft_server_from_fd(loop, pipefd[0], &echo_proto, NULL, NULL, NULL, &s),
                     -ENOTSOCK);
    close(pipefd[0]);
    close(pipefd[1]);
    assert_int_equal(weft_server_from_fd(loop, -1, &echo_proto, NULL, NULL, NULL, &s), -EBADF);
    assert_int_equal(weft_server_from_fd(loop, 1000, &echo_proto, NULL, NULL, NULL, &s), -EBADF);
    assert_null(s);
    finish(loop);
}

/* ---- bad input, allocation failures ---------------------------------------------------------- */

static void test_server_bad_input(void **state)
{
    weft_loop *loop = net_loop(state, false);
    const weft_protocol *p = &echo_proto;
    assert_null(weft_create_server(NULL, p, factory, NULL, NULL, 0, NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_create_server(loop, NULL, factory, NULL, NULL, 0, NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_create_server(loop, p, factory, NULL, NULL, -1, NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_create_server(loop, p, factory, NULL, NULL, 65536, NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    weft_server_opts bad[] = {{.family = AF_UNIX}, {.backlog = -1}, {.accept_batch = -1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(weft_create_server(loop, p, factory, NULL, NULL, 0, &bad[i]));
        assert_int_equal(weft_last_error(), -EINVAL);
    }
    weft_server *s = NULL;
    assert_int_equal(weft_create_unix_server(NULL, p, factory, NULL, "/tmp/x", NULL, &s), -EINVAL);
    assert_int_equal(weft_create_unix_server(loop, p, factory, NULL, NULL, NULL, &s), -EINVAL);
    assert_int_equal(weft_create_unix_server(loop, p, factory, NULL, "/tmp/x", NULL, NULL),
                     -EINVAL);
    assert_int_equal(weft_server_from_fd(loop, 0, NULL, NULL, NULL, NULL, &s), -EINVAL);
    /* NULL servers */
    assert_int_equal(weft_server_start_serving(NULL), -EINVAL);
    assert_false(weft_server_is_serving(NULL));
    assert_int_equal(weft_server_close(NULL), -EINVAL);
    assert_int_equal(weft_server_close_clients(NULL), -EINVAL);
    assert_int_equal(weft_server_abort_clients(NULL), -EINVAL);
    assert_null(weft_server_wait_closed(NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_server_serve_forever(NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_int_equal(weft_server_port(NULL), -1);
    assert_int_equal(weft_server_nsockets(NULL), 0);
    assert_int_equal(weft_server_socket(NULL, 0), -1);
    assert_int_equal(weft_server_nclients(NULL), 0);
    weft_server_free(NULL);
    /* a name that does not resolve */
    assert_true(
        server_of(loop, weft_create_server(loop, p, factory, NULL, "no-such-host.invalid", 0, NULL),
                  &s) <= WEFT_EAI_MAX);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_null(weft_create_server(loop, p, factory, NULL, NULL, 0, NULL));
    assert_int_equal(weft_last_error(), WEFT_ECLOSED);
    assert_int_equal(weft_create_unix_server(loop, p, factory, NULL, "/tmp/x", NULL, &s),
                     WEFT_ECLOSED);
    finish(loop);
}

/* Every allocation of create_server, then of accept, fails in turn: a
 * clean -ENOMEM (creation) or a dropped, reported connection (accept,
 * before the factory is asked); no fd and no block leaks. */
static void test_server_allocation_failures(void **state)
{
    int before = nfds();
    bool done = false;
    for (long k = 1; !done && k < 100; k++) {
        weft_loop *loop = net_loop(state, false);
        wt_warm(loop);
        alloc_fail_at(alloc_calls() + k);
        weft_future *f = weft_create_server(loop, &echo_proto, factory, NULL, "127.0.0.1", 0, NULL);
        weft_server *s = NULL;
        int err = f ? server_of(loop, f, &s) : weft_last_error();
        alloc_fail_at(0);
        if (err == 0) {
            done = true;
            weft_server_free(s);
        } else {
            assert_int_equal(err, -ENOMEM);
        }
        finish(loop);
        assert_int_equal(nfds(), before);
    }
    assert_true(done);
    /* accept */
    done = false;
    int dropped = 0;
    for (long k = 1; !done && k < 100; k++) {
        weft_loop *loop = net_loop(state, false);
        memset(&g_srv, 0, sizeof g_srv);
        memset(&g_hook, 0, sizeof g_hook);
        weft_server *s = tcp_server(loop, "127.0.0.1", NULL);
        int c = dial(AF_INET, weft_server_port(s));
        alloc_fail_at(alloc_calls() + k);
        RUN_UNTIL(loop, g_srv.factory_calls == 1 || g_hook.by_kind[WEFT_REPORT_IO] == 1);
        alloc_fail_at(0);
        if (weft_server_nclients(s) == 1) {
            done = true;
            RUN_UNTIL(loop, g_srv.made == 1);
        } else {
            assert_int_equal(g_hook.by_kind[WEFT_REPORT_IO], 1);
            assert_int_equal(g_hook.err, -ENOMEM);
            assert_int_equal(g_srv.factory_calls, 0); /* nothing made that could leak */
            char b;
            assert_int_equal(read(c, &b, 1), 0); /* closed */
            dropped++;
        }
        close(c);
        if (done)
            RUN_UNTIL(loop, g_srv.lost == 1);
        weft_server_free(s);
        finish(loop);
        assert_int_equal(nfds(), before);
    }
    assert_true(done);
    assert_true(dropped >= 1);
}

/* ---- many connections ------------------------------------------------------------------------ */

enum { MANY = 1000, MSG = 64 };

/* A client of the thousand: a weft connection that writes its pattern and
 * checks the echo. */
typedef struct many_client {
    char got[MSG];
    size_t n;
    int id;
    bool ok;
} many_client;

static int g_many_done, g_many_ok;

static void pattern(int id, char *buf)
{
    for (int i = 0; i < MSG; i++)
        buf[i] = (char)('a' + (id * 7 + i) % 26);
}

static void many_made(weft_transport *t, void *ud)
{
    many_client *c = ud;
    char buf[MSG];
    pattern(c->id, buf);
    assert_int_equal(weft_transport_write(t, buf, MSG), 0);
}

static void many_data(weft_transport *t, const void *data, size_t n, void *ud)
{
    many_client *c = ud;
    if (c->n + n > MSG)
        n = MSG - c->n;
    memcpy(c->got + c->n, data, n);
    c->n += n;
    if (c->n == MSG) {
        char buf[MSG];
        pattern(c->id, buf);
        c->ok = memcmp(buf, c->got, MSG) == 0;
        weft_transport_close(t);
    }
}

static void many_lost(weft_transport *t, int err, void *ud)
{
    (void)t, (void)err;
    many_client *c = ud;
    g_many_done++;
    g_many_ok += c->ok;
}

static const weft_protocol many_proto = {
    .connection_made = many_made,
    .data_received = many_data,
    .connection_lost = many_lost,
};

static void test_thousand_connections_echoed(void **state)
{
    struct rlimit old, hi;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    hi = old;
    hi.rlim_cur = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &hi), 0);
    if (hi.rlim_cur < 2 * MANY + 64) {
        setrlimit(RLIMIT_NOFILE, &old);
        skip();
        return;
    }
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    g_many_done = g_many_ok = 0;
    weft_server_opts o = {.backlog = 2 * MANY};
    weft_server *s = tcp_server(loop, "127.0.0.1", &o);
    int port = weft_server_port(s);
    many_client *cl = calloc(MANY, sizeof *cl);
    weft_future **fs = calloc(MANY, sizeof *fs);
    for (int i = 0; i < MANY; i++) {
        cl[i].id = i;
        fs[i] = weft_create_connection(loop, &many_proto, &cl[i], "127.0.0.1", port, NULL);
        assert_non_null(fs[i]);
    }
    RUN_UNTIL(loop, g_many_done == MANY);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(weft_future_error(fs[i]), 0);
        weft_future_unref(fs[i]);
    }
    assert_int_equal(g_many_ok, MANY);
    RUN_UNTIL(loop, g_srv.lost == MANY);
    assert_int_equal(g_srv.made, MANY);
    assert_int_equal(weft_server_nclients(s), 0);
    weft_server_free(s);
    free(cl);
    free(fs);
    finish(loop);
    setrlimit(RLIMIT_NOFILE, &old);
}

/* The loop closes with a server and its clients open: the clients'
 * connection_lost runs, then freeing the server (after the close) releases
 * the rest; no fd, no block left. */
static void test_loop_close_with_server_and_clients_open(void **state)
{
    int before = nfds();
    weft_loop *loop = net_loop(state, false);
    memset(&g_srv, 0, sizeof g_srv);
    weft_server *s = tcp_server(loop, "127.0.0.1", NULL);
    weft_server *s2 = tcp_server(loop, "127.0.0.1", NULL);
    int c[3];
    for (int i = 0; i < 3; i++)
        c[i] = dial(AF_INET, weft_server_port(s));
    RUN_UNTIL(loop, g_srv.made == 3);
    weft_future *w = weft_server_wait_closed(s2);
    weft_server_free(s2); /* freed while the loop lives, no clients: at once */
    weft_future_unref(w);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(g_srv.lost, 3);
    assert_int_equal(weft_server_nclients(s), 0);
    weft_server_free(s);
    for (int i = 0; i < 3; i++)
        close(c[i]);
    finish(loop);
    assert_int_equal(nfds(), before);
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
        ON_BOTH(test_server_tcp_ipv4)
        ON_BOTH(test_server_tcp_ipv6)
        ON_BOTH(test_server_all_interfaces_shares_one_port)
        ON_BOTH(test_server_socket_options)
        ON_BOTH(test_reuse_port_two_servers_on_one_port)
        ON_BOTH(test_factory_refusing_closes_the_connection)
        ON_BOTH(test_factory_may_free_its_server)
        ON_BOTH(test_accept_batch_limits_one_readiness)
        ON_BOTH(test_start_paused_then_start_serving)
        ON_BOTH(test_emfile_backs_off_reports_and_resumes)
        ON_BOTH(test_close_stops_accepting_clients_go_on)
        ON_BOTH(test_wait_closed_waits_for_close_and_clients)
        ON_BOTH(test_wait_closed_dropped_or_cancelled_while_pending)
        ON_BOTH(test_abort_clients)
        ON_BOTH(test_serve_forever_until_cancelled)
        ON_BOTH(test_close_cancels_serve_forever)
        ON_BOTH(test_timeout_around_serve_forever_closes_the_server)
        ON_BOTH(test_server_by_name_resolves_on_the_executor)
        ON_BOTH(test_free_with_clients_waits_for_connection_lost)
        ON_BOTH(test_unix_server)
        ON_BOTH(test_server_from_fd)
        ON_BOTH(test_server_bad_input)
        ON_BOTH(test_server_allocation_failures)
        ON_BOTH(test_thousand_connections_echoed)
        ON_BOTH(test_loop_close_with_server_and_clients_open)
    };
    /* clang-format on */
    return RUN_TESTS(tests);
}
