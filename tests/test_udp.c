/* test_udp.c - datagram endpoints (weft/udp.h): loopback IPv4 and IPv6,
 * echo between two endpoints, connected endpoints, ICMP errors,
 * awaitable receives and their cancellation, back-pressure, bad input,
 * allocation failures, loop close, bursts.
 *
 * Every test runs on each fd backend the build has (the cmocka state is
 * the backend's name) on the real clock: nothing here waits on a timer,
 * the loop blocks in its backend until a datagram, an ICMP error or a
 * writable socket wakes it.  Back-pressure uses an AF_UNIX datagram pair,
 * whose sender the kernel refuses with EAGAIN (loopback UDP drops
 * instead).  A watchdog alarm kills a hung test.
 */
#include "weft_test.h"

#include "backend_features.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

/* ---- a recording protocol ---------------------------------------------------------------- */

typedef struct prec {
    int made, lost, lost_err, errors, last_err, paused, resumed, n;
    char order[64]; /* 'm' made, 'd' datagram, 'e' error, 'l' lost, 'p', 'r' */
    int norder;
    size_t last_n;
    unsigned char last[2048];
    struct sockaddr_storage from;
    socklen_t fromlen;
    bool echo;        /* send each datagram back to its sender */
    bool close_in_cb; /* close the endpoint in the first datagram_received */
    bool verify;      /* datagrams are numbered: 4-byte sequence + pattern */
    uint32_t next_seq;
    int bad;
    weft_udp *ep;
} prec;

static void order(prec *r, char c)
{
    if (r->norder < (int)sizeof r->order - 1)
        r->order[r->norder++] = c;
}

static void on_made(weft_udp *ep, void *ud)
{
    prec *r = ud;
    r->made++;
    r->ep = ep;
    order(r, 'm');
}

/* The byte at offset i of datagram seq (after its 4-byte number). */
static unsigned char pattern(uint32_t seq, size_t i)
{
    return (unsigned char)(seq * 31u + (unsigned)i * 7u + 1u);
}

static size_t make_datagram(unsigned char *buf, uint32_t seq, size_t n)
{
    memcpy(buf, &seq, sizeof seq);
    for (size_t i = sizeof seq; i < n; i++)
        buf[i] = pattern(seq, i);
    return n;
}

static void on_dgram(weft_udp *ep, const void *data, size_t n, const struct sockaddr *addr,
                     socklen_t addrlen, void *ud)
{
    prec *r = ud;
    r->n++;
    order(r, 'd');
    r->last_n = n;
    memcpy(r->last, data, n < sizeof r->last ? n : sizeof r->last);
    memcpy(&r->from, addr, addrlen);
    r->fromlen = addrlen;
    if (r->verify) {
        uint32_t seq = 0;
        const unsigned char *b = data;
        if (n < sizeof seq)
            r->bad++;
        else
            memcpy(&seq, b, sizeof seq);
        if (seq != r->next_seq)
            r->bad++;
        for (size_t i = sizeof seq; i < n; i++)
            if (b[i] != pattern(seq, i))
                r->bad++;
        r->next_seq = seq + 1;
    }
    if (r->echo && weft_udp_sendto(ep, data, n, addr, addrlen) != 0)
        r->bad++;
    if (r->close_in_cb)
        weft_udp_close(ep);
}

static void on_error(weft_udp *ep, int err, void *ud)
{
    (void)ep;
    prec *r = ud;
    r->errors++;
    r->last_err = err;
    order(r, 'e');
}

static void on_lost(weft_udp *ep, int err, void *ud)
{
    (void)ep;
    prec *r = ud;
    r->lost++;
    r->lost_err = err;
    order(r, 'l');
}

static void on_pause(weft_udp *ep, void *ud)
{
    (void)ep;
    prec *r = ud;
    r->paused++;
    order(r, 'p');
}

static void on_resume(weft_udp *ep, void *ud)
{
    (void)ep;
    prec *r = ud;
    r->resumed++;
    order(r, 'r');
}

static const weft_datagram_protocol k_proto = {
    .connection_made = on_made,
    .datagram_received = on_dgram,
    .error_received = on_error,
    .connection_lost = on_lost,
    .pause_writing = on_pause,
    .resume_writing = on_resume,
};

/* No datagram_received: read only through receives. */
static const weft_datagram_protocol k_quiet = {
    .connection_made = on_made,
    .error_received = on_error,
    .connection_lost = on_lost,
};

/* ---- helpers ----------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 30, .check_reports = true});
    return 0;
}

#define RUN_UNTIL(loop, cond)                              \
    do {                                                   \
        while (!(cond))                                    \
            assert_int_equal(weft_loop_run_once(loop), 0); \
    } while (0)

static weft_udp_opts local_opts(const char *host)
{
    return (weft_udp_opts){.local_host = host};
}

static weft_udp *open_local(weft_loop *loop, const weft_datagram_protocol *p, prec *r,
                            const char *host)
{
    weft_udp_opts o = local_opts(host);
    weft_udp *ep = NULL;
    assert_int_equal(weft_udp_open(loop, p, r, &o, &ep), 0);
    assert_non_null(ep);
    return ep;
}

static weft_udp *open_connected(weft_loop *loop, const weft_datagram_protocol *p, prec *r,
                                const char *host, int port)
{
    weft_udp_opts o = {.remote_host = host, .remote_port = port};
    weft_udp *ep = NULL;
    assert_int_equal(weft_udp_open(loop, p, r, &o, &ep), 0);
    return ep;
}

/* Whether ::1 can be bound here. */
static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
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

/* A UDP port on 127.0.0.1 with nobody listening (bound, then closed). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

/* ---- echo, both families ----------------------------------------------------------------- */

static void echo_between_two_endpoints(const char *backend, const char *host)
{
    weft_loop *loop = loop_on(backend, 0);
    prec srv = {.echo = true}, cli = {0};
    weft_udp *s = open_local(loop, &k_proto, &srv, host);
    int port = weft_udp_port(s);
    assert_true(port > 0);
    weft_udp *c = open_connected(loop, &k_proto, &cli, host, port);
    RUN_UNTIL(loop, srv.made && cli.made);
    for (uint32_t i = 0; i < 20; i++) {
        unsigned char buf[300];
        size_t n = make_datagram(buf, i, 10 + i * 13);
        assert_int_equal(weft_udp_sendto(c, buf, n, NULL, 0), 0);
        RUN_UNTIL(loop, cli.n == (int)i + 1);
        assert_int_equal(cli.last_n, n);
        assert_memory_equal(cli.last, buf, n);
    }
    assert_int_equal(srv.n, 20);
    assert_int_equal(srv.bad, 0);
    /* the server saw the client's address, the client the server's */
    struct sockaddr_storage cs;
    socklen_t cl = sizeof cs;
    assert_int_equal(weft_udp_sockname(c, (struct sockaddr *)&cs, &cl), 0);
    assert_int_equal(srv.fromlen, cl);
    assert_memory_equal(&srv.from, &cs, cl);
    struct sockaddr_storage ps;
    socklen_t pl = sizeof ps;
    assert_int_equal(weft_udp_peername(c, (struct sockaddr *)&ps, &pl), 0);
    assert_int_equal(cli.fromlen, pl);
    weft_udp_stats st;
    assert_int_equal(weft_udp_get_stats(c, &st), 0);
    assert_int_equal(st.datagrams_sent, 20);
    assert_int_equal(st.datagrams_received, 20);
    int sfd = weft_udp_fd(s), cfd = weft_udp_fd(c);
    assert_int_equal(weft_udp_close(s), 0);
    assert_int_equal(weft_udp_close(c), 0);
    assert_int_equal(weft_udp_close(c), 0); /* idempotent */
    assert_false(fd_open(sfd));
    assert_false(fd_open(cfd));
    assert_int_equal(srv.lost, 0); /* from the ready queue */
    RUN_UNTIL(loop, srv.lost && cli.lost);
    step(loop);
    assert_int_equal(srv.lost, 1);
    assert_int_equal(cli.lost, 1);
    assert_int_equal(srv.lost_err, 0);
    assert_string_equal(cli.order + cli.norder - 1, "l");
    assert_int_equal(cli.order[0], 'm');
    finish(loop);
}

static void test_echo_ipv4(void **state)
{
    echo_between_two_endpoints(*state, "127.0.0.1");
}

static void test_echo_ipv6(void **state)
{
    if (!have_ipv6_loopback())
        skip();
    echo_between_two_endpoints(*state, "::1");
}

static void test_port_zero_picks_a_port_and_reports_it(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec r = {0};
    weft_udp *ep = open_local(loop, &k_proto, &r, "");
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(weft_udp_sockname(ep, (struct sockaddr *)&ss, &len), 0);
    int port = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                       : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    assert_true(port > 0);
    assert_int_equal(weft_udp_port(ep), port);
    assert_int_equal(weft_udp_peername(ep, (struct sockaddr *)&ss, &len), -ENOTCONN);
    assert_ptr_equal(weft_udp_loop(ep), loop);
    assert_ptr_equal(weft_udp_protocol_ud(ep), &r);
    assert_true(weft_udp_fd(ep) >= 0);
    assert_int_equal(weft_udp_get_write_buffer_size(ep), 0);
    weft_udp_close(ep);
    step(loop);
    assert_int_equal(r.lost, 1);
    assert_int_equal(r.made, 1);
    finish(loop);
}

/* ---- connected endpoints ----------------------------------------------------------------- */

static void test_connected_endpoint_sends_to_its_peer_only(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec srv = {0}, cli = {0}, other = {0};
    weft_udp *s = open_local(loop, &k_proto, &srv, "127.0.0.1");
    weft_udp *o = open_local(loop, &k_proto, &other, "127.0.0.1");
    weft_udp *c = open_connected(loop, &k_proto, &cli, "127.0.0.1", weft_udp_port(s));
    RUN_UNTIL(loop, cli.made);
    struct sockaddr_storage peer, elsewhere;
    socklen_t pl = sizeof peer, el = sizeof elsewhere;
    assert_int_equal(weft_udp_peername(c, (struct sockaddr *)&peer, &pl), 0);
    assert_int_equal(weft_udp_sockname(o, (struct sockaddr *)&elsewhere, &el), 0);
    /* NULL address, or the peer's own: sent; another address: -EISCONN */
    assert_int_equal(weft_udp_sendto(c, "a", 1, NULL, 0), 0);
    assert_int_equal(weft_udp_sendto(c, "b", 1, (struct sockaddr *)&peer, pl), 0);
    assert_int_equal(weft_udp_sendto(c, "c", 1, (struct sockaddr *)&elsewhere, el), -EISCONN);
    RUN_UNTIL(loop, srv.n == 2);
    assert_int_equal(srv.last[0], 'b');
    /* an unconnected endpoint needs an address */
    assert_int_equal(weft_udp_sendto(o, "d", 1, NULL, 0), -EDESTADDRREQ);
    /* and reaches anyone with one; a connected endpoint drops strangers */
    assert_int_equal(weft_udp_sendto(o, "e", 1, (struct sockaddr *)&peer, pl), 0);
    RUN_UNTIL(loop, srv.n == 3);
    struct sockaddr_storage cs;
    socklen_t cl = sizeof cs;
    assert_int_equal(weft_udp_sockname(c, (struct sockaddr *)&cs, &cl), 0);
    assert_int_equal(weft_udp_sendto(o, "f", 1, (struct sockaddr *)&cs, cl), 0);
    assert_int_equal(weft_udp_sendto(s, "g", 1, (struct sockaddr *)&cs, cl), 0);
    RUN_UNTIL(loop, cli.n == 1);
    assert_int_equal(cli.last[0], 'g');
    weft_udp_close(s);
    weft_udp_close(o);
    weft_udp_close(c);
    step(loop);
    assert_int_equal(srv.lost + cli.lost + other.lost, 3);
    finish(loop);
}

/* libkqueue (the kqueue backend on Linux) does not report a connected
 * UDP socket's pending error (ICMP port unreachable) as readable, as the
 * BSDs' kqueue and epoll do: skip the ICMP tests there. */
static void skip_icmp_on_libkqueue(weft_loop *loop)
{
#ifdef __linux__
    if (strcmp(weft_loop_backend(loop), "kqueue") == 0) {
        print_message("libkqueue does not report UDP socket errors: skipped\n");
        skip(); /* teardown destroys the loop under test */
    }
#else
    (void)loop;
#endif
}

static void test_icmp_port_unreachable_is_error_received(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    skip_icmp_on_libkqueue(loop);
    prec r = {0};
    weft_udp *c = open_connected(loop, &k_proto, &r, "127.0.0.1", closed_port());
    RUN_UNTIL(loop, r.made);
    assert_int_equal(weft_udp_sendto(c, "ping", 4, NULL, 0), 0);
    RUN_UNTIL(loop, r.errors == 1);
    assert_int_equal(r.last_err, -ECONNREFUSED);
    assert_int_equal(r.n, 0);
    assert_false(weft_udp_is_closing(c)); /* the endpoint stays open */
    weft_udp_stats st;
    assert_int_equal(weft_udp_get_stats(c, &st), 0);
    assert_int_equal(st.errors_received, 1);
    /* and the next one is found again */
    assert_int_equal(weft_udp_sendto(c, "ping", 4, NULL, 0), 0);
    RUN_UNTIL(loop, r.errors == 2);
    assert_int_equal(r.last_err, -ECONNREFUSED);
    weft_udp_close(c);
    step(loop);
    assert_int_equal(r.lost, 1);
    assert_string_equal(r.order, "meel");
    finish(loop);
}

static void test_icmp_error_fails_a_pending_receive(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    skip_icmp_on_libkqueue(loop);
    prec r = {0};
    weft_udp *c = open_connected(loop, &k_quiet, &r, "127.0.0.1", closed_port());
    weft_future *f = weft_udp_recvfrom(c, 64);
    assert_non_null(f);
    assert_int_equal(weft_udp_sendto(c, "ping", 4, NULL, 0), 0);
    assert_int_equal(weft_loop_run_until_complete(loop, f), -ECONNREFUSED);
    assert_int_equal(r.errors, 0); /* the receive got it */
    weft_future_unref(f);
    weft_udp_close(c);
    step(loop);
    finish(loop);
}

/* ---- awaitable receives ------------------------------------------------------------------ */

static unsigned char g_got[2048];
static size_t g_got_n;
static struct sockaddr_storage g_got_from;
static socklen_t g_got_fromlen;
static int g_got_count;

struct recv_co {
    WEFT_FRAME(int);
    weft_udp *ep;
    weft_future *f; /* await this (a reference) instead of a new receive */
    int count;      /* receives in a row */
    int i;
};

WEFT_ASYNC(recv_co)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < (self->count ? self->count : 1); self->i++) {
        if (self->f) {
            WEFT_AWAIT(self, self->f);
            self->f = NULL;
        } else {
            WEFT_AWAIT(self, weft_udp_recvfrom(self->ep, 0));
        }
        {
            const weft_datagram *d = WEFT_RESULT(self).p;
            memcpy(g_got, d->data, d->n);
            g_got_n = d->n;
            memcpy(&g_got_from, &d->addr, d->addrlen);
            g_got_fromlen = d->addrlen;
            g_got_count++;
            self->result = (int)d->n;
        }
    }
    WEFT_END;
}

static void test_recvfrom_awaited_in_a_task(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec a = {0}, b = {0};
    weft_udp *s = open_local(loop, &k_quiet, &a, "127.0.0.1");
    weft_udp *c = open_connected(loop, &k_quiet, &b, "127.0.0.1", weft_udp_port(s));
    g_got_count = 0;
    weft_task *t = WEFT_SPAWN(loop, recv_co, .ep = s, .count = 3);
    assert_non_null(t);
    step(loop);
    step(loop); /* the task waits, with nothing sent */
    assert_false(weft_future_done(t));
    assert_int_equal(weft_udp_sendto(c, "one", 3, NULL, 0), 0);
    assert_int_equal(weft_udp_sendto(c, "two!", 4, NULL, 0), 0);
    assert_int_equal(weft_udp_sendto(c, "three", 5, NULL, 0), 0);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(g_got_count, 3);
    assert_int_equal(g_got_n, 5);
    assert_memory_equal(g_got, "three", 5);
    struct sockaddr_storage cs;
    socklen_t cl = sizeof cs;
    assert_int_equal(weft_udp_sockname(c, (struct sockaddr *)&cs, &cl), 0);
    assert_int_equal(g_got_fromlen, cl);
    assert_memory_equal(&g_got_from, &cs, cl);
    weft_future_unref(t);
    weft_udp_close(s);
    weft_udp_close(c);
    step(loop);
    assert_int_equal(a.lost + b.lost, 2);
    finish(loop);
}

static void test_cancelled_recvfrom_loses_no_datagram(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec a = {0}, b = {0};
    weft_udp *s = open_local(loop, &k_quiet, &a, "127.0.0.1");
    weft_udp *c = open_connected(loop, &k_quiet, &b, "127.0.0.1", weft_udp_port(s));
    step(loop);
    /* a pending receive cancelled: it read nothing */
    weft_future *f1 = weft_udp_recvfrom(s, 0);
    assert_non_null(f1);
    step(loop);
    assert_int_equal(weft_future_cancel(f1), 0);
    assert_int_equal(weft_udp_sendto(c, "first", 5, NULL, 0), 0);
    weft_future *f2 = weft_udp_recvfrom(s, 0);
    assert_int_equal(weft_loop_run_until_complete(loop, f2), 0);
    weft_value v;
    assert_int_equal(weft_future_result(f2, &v), 0);
    const weft_datagram *d = v.p;
    assert_int_equal(d->n, 5);
    assert_memory_equal(d->data, "first", 5);
    assert_false(d->truncated);
    assert_true(weft_future_cancelled(f1));
    weft_future_unref(f1);
    weft_future_unref(f2);

    /* a task cancelled after its receive completed, before it resumed:
     * it still gets the datagram (the cancellation lands later) */
    g_got_count = 0;
    weft_future *f3 = weft_udp_recvfrom(s, 0);
    weft_task *t = WEFT_SPAWN(loop, recv_co, .ep = s, .f = weft_future_ref(f3));
    step(loop); /* parked on f3 */
    assert_int_equal(weft_udp_sendto(c, "second", 6, NULL, 0), 0);
    RUN_UNTIL(loop, weft_future_done(f3));
    assert_false(weft_future_done(t));
    assert_int_equal(weft_task_cancel(t), 0);
    run(loop, t);
    assert_int_equal(g_got_count, 1);
    assert_memory_equal(g_got, "second", 6);
    weft_future_unref(t);
    weft_future_unref(f3);

    /* a task cancelled while its receive waits: the next one gets it */
    t = WEFT_SPAWN(loop, recv_co, .ep = s);
    step(loop);
    step(loop);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    weft_future_unref(t);
    assert_int_equal(weft_udp_sendto(c, "third", 5, NULL, 0), 0);
    t = WEFT_SPAWN(loop, recv_co, .ep = s);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(g_got_count, 2);
    assert_memory_equal(g_got, "third", 5);
    weft_future_unref(t);

    /* wait_for: a timeout racing a datagram never eats it */
    assert_int_equal(weft_udp_sendto(c, "fourth", 6, NULL, 0), 0);
    weft_future *w = weft_wait_for(weft_udp_recvfrom(s, 0), 5.0);
    assert_int_equal(weft_loop_run_until_complete(loop, w), 0);
    assert_int_equal(weft_future_result(w, &v), 0);
    assert_memory_equal(((const weft_datagram *)v.p)->data, "fourth", 6);
    weft_future_unref(w);

    weft_udp_close(s);
    weft_udp_close(c);
    step(loop);
    finish(loop);
}

static void test_recvfrom_into_a_caller_buffer_and_truncation(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec a = {0}, b = {0};
    weft_udp *s = open_local(loop, &k_quiet, &a, "127.0.0.1");
    weft_udp *c = open_connected(loop, &k_quiet, &b, "127.0.0.1", weft_udp_port(s));
    unsigned char buf[10];
    unsigned char big[100];
    make_datagram(big, 7, sizeof big);
    assert_int_equal(weft_udp_sendto(c, big, sizeof big, NULL, 0), 0);
    assert_int_equal(weft_udp_sendto(c, big, 4, NULL, 0), 0);
    weft_future *f = weft_udp_recvfrom_into(s, buf, sizeof buf);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    weft_value v;
    assert_int_equal(weft_future_result(f, &v), 0);
    const weft_datagram *d = v.p;
    assert_ptr_equal(d->data, buf);
    assert_int_equal(d->n, sizeof buf);
    assert_true(d->truncated);
    assert_memory_equal(buf, big, sizeof buf);
    weft_future_unref(f);
    /* the rest of that datagram is gone; the next is whole */
    f = weft_udp_recvfrom(s, 64);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    assert_int_equal(weft_future_result(f, &v), 0);
    assert_int_equal(((const weft_datagram *)v.p)->n, 4);
    assert_false(((const weft_datagram *)v.p)->truncated);
    weft_future_unref(f);
    weft_udp_close(s);
    weft_udp_close(c);
    step(loop);
    finish(loop);
}

static void test_receives_come_before_datagram_received(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec a = {0}, b = {0};
    weft_udp *s = open_local(loop, &k_proto, &a, "127.0.0.1");
    weft_udp *c = open_connected(loop, &k_quiet, &b, "127.0.0.1", weft_udp_port(s));
    step(loop);
    weft_future *f1 = weft_udp_recvfrom(s, 0), *f2 = weft_udp_recvfrom(s, 0);
    assert_int_equal(weft_udp_sendto(c, "1", 1, NULL, 0), 0);
    assert_int_equal(weft_udp_sendto(c, "2", 1, NULL, 0), 0);
    assert_int_equal(weft_udp_sendto(c, "3", 1, NULL, 0), 0);
    RUN_UNTIL(loop, a.n == 1);
    weft_value v;
    assert_int_equal(weft_future_result(f1, &v), 0);
    assert_memory_equal(((const weft_datagram *)v.p)->data, "1", 1);
    assert_int_equal(weft_future_result(f2, &v), 0);
    assert_memory_equal(((const weft_datagram *)v.p)->data, "2", 1);
    assert_int_equal(a.last[0], '3');
    weft_future_unref(f1);
    weft_future_unref(f2);
    /* paused reading: datagrams wait in the kernel; a receive still gets one */
    assert_int_equal(weft_udp_pause_reading(s), 0);
    assert_false(weft_udp_is_reading(s));
    assert_int_equal(weft_udp_sendto(c, "4", 1, NULL, 0), 0);
    assert_int_equal(weft_udp_sendto(c, "5", 1, NULL, 0), 0);
    step(loop);
    step(loop);
    assert_int_equal(a.n, 1);
    f1 = weft_udp_recvfrom(s, 0);
    assert_int_equal(weft_loop_run_until_complete(loop, f1), 0);
    assert_int_equal(weft_future_result(f1, &v), 0);
    assert_memory_equal(((const weft_datagram *)v.p)->data, "4", 1);
    weft_future_unref(f1);
    assert_int_equal(weft_udp_resume_reading(s), 0);
    RUN_UNTIL(loop, a.n == 2);
    assert_int_equal(a.last[0], '5');
    weft_udp_close(s);
    weft_udp_close(c);
    step(loop);
    finish(loop);
}

static void test_close_fails_pending_receives_and_drains(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec a = {0};
    weft_udp *s = open_local(loop, &k_quiet, &a, "127.0.0.1");
    weft_future *f = weft_udp_recvfrom(s, 0);
    weft_future *d = weft_udp_drain(s); /* not paused: done at once */
    assert_true(weft_future_done(d));
    assert_int_equal(weft_future_error(d), 0);
    weft_future_unref(d);
    assert_int_equal(weft_udp_close(s), 0);
    assert_int_equal(weft_future_error(f), WEFT_ESTATE);
    weft_future_unref(f);
    assert_null(weft_udp_recvfrom(s, 0));
    assert_int_equal(weft_last_error(), WEFT_ESTATE);
    assert_null(weft_udp_drain(s));
    assert_int_equal(weft_udp_sendto(s, "x", 1, NULL, 0), WEFT_ESTATE);
    assert_int_equal(weft_udp_pause_reading(s), WEFT_ESTATE);
    assert_int_equal(weft_udp_fd(s), -1);
    assert_true(weft_udp_is_closing(s));
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(weft_udp_sockname(s, (struct sockaddr *)&ss, &len), WEFT_ESTATE);
    step(loop);
    assert_int_equal(a.lost, 1);
    assert_string_equal(a.order, "ml");
    finish(loop);
}

static void test_close_inside_datagram_received_ends_the_batch(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec a = {.close_in_cb = true}, b = {0};
    weft_udp *s = open_local(loop, &k_proto, &a, "127.0.0.1");
    weft_udp *c = open_connected(loop, &k_quiet, &b, "127.0.0.1", weft_udp_port(s));
    step(loop);
    for (int i = 0; i < 5; i++)
        assert_int_equal(weft_udp_sendto(c, "x", 1, NULL, 0), 0);
    RUN_UNTIL(loop, a.lost);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.lost, 1);
    assert_string_equal(a.order, "mdl");
    weft_udp_close(c);
    step(loop);
    finish(loop);
}

static void test_nothing_is_delivered_before_connection_made(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec a = {0}, b = {0};
    weft_udp *s = open_local(loop, &k_proto, &a, "127.0.0.1");
    weft_udp *c = open_connected(loop, &k_quiet, &b, "127.0.0.1", weft_udp_port(s));
    /* sent before either endpoint's connection_made ran */
    assert_int_equal(weft_udp_sendto(c, "early", 5, NULL, 0), 0);
    assert_int_equal(a.made, 0);
    RUN_UNTIL(loop, a.n == 1);
    assert_string_equal(a.order, "md");
    weft_udp_close(s);
    weft_udp_close(c);
    step(loop);
    assert_string_equal(a.order, "mdl");
    finish(loop);
}

static weft_udp *g_made_ep;

struct create_co {
    WEFT_FRAME(int);
    weft_future *f;
};

WEFT_ASYNC(create_co)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, self->f);
    g_made_ep = WEFT_RESULT(self).p;
    WEFT_END;
}

static void test_a_late_cancellation_keeps_the_endpoint(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec a = {0};
    weft_udp_opts o = {.local_host = "localhost", .family = AF_INET};
    weft_future *f = weft_create_datagram_endpoint(loop, &k_proto, &a, &o);
    assert_non_null(f);
    g_made_ep = NULL;
    weft_task *t = WEFT_SPAWN(loop, create_co, .f = weft_future_ref(f));
    RUN_UNTIL(loop, weft_future_done(f));
    assert_false(weft_future_done(t));
    assert_int_equal(weft_task_cancel(t), 0); /* after the endpoint was made */
    run(loop, t);
    assert_non_null(g_made_ep); /* the task got it: nothing leaks to nobody */
    weft_value v;
    assert_int_equal(weft_future_result(f, &v), 0);
    assert_ptr_equal(v.p, g_made_ep);
    weft_future_unref(t);
    weft_future_unref(f);
    assert_int_equal(weft_udp_close(g_made_ep), 0);
    step(loop);
    assert_int_equal(a.lost, 1);
    finish(loop);
}

static weft_udp *g_thread_ep;
static int g_thread_rc[3];

static void *other_thread(void *arg)
{
    (void)arg;
    g_thread_rc[0] = weft_udp_sendto(g_thread_ep, "x", 1, NULL, 0);
    g_thread_rc[1] = weft_udp_close(g_thread_ep);
    weft_udp *ep = NULL;
    weft_udp_opts o = local_opts("127.0.0.1");
    g_thread_rc[2] = weft_udp_open(weft_udp_loop(g_thread_ep), &k_proto, NULL, &o, &ep);
    return NULL;
}

static void call_from_thread(void *arg)
{
    (void)arg;
    pthread_t th;
    if (pthread_create(&th, NULL, other_thread, NULL) == 0)
        pthread_join(th, NULL);
}

static void test_debug_loop_refuses_calls_from_another_thread(void **state)
{
    weft_loop *loop = loop_on(*state, WEFT_LOOP_DEBUG);
    prec a = {0}, b = {0};
    weft_udp *s = open_local(loop, &k_proto, &a, "127.0.0.1");
    g_thread_ep = open_connected(loop, &k_proto, &b, "127.0.0.1", weft_udp_port(s));
    g_thread_rc[0] = g_thread_rc[1] = g_thread_rc[2] = 1;
    assert_int_equal(weft_call_soon(loop, call_from_thread, NULL, NULL), 0);
    g_hook.expect = 3; /* each refusal is reported as misuse */
    step(loop);
    assert_int_equal(g_thread_rc[0], -EPERM);
    assert_int_equal(g_thread_rc[1], -EPERM);
    assert_int_equal(g_thread_rc[2], -EPERM);
    assert_false(weft_udp_is_closing(g_thread_ep));
    assert_int_equal(g_hook.by_kind[WEFT_REPORT_MISUSE], 3);
    weft_udp_close(s);
    weft_udp_close(g_thread_ep);
    step(loop);
    finish(loop);
}

static void test_bound_and_connected_and_unix_paths(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec a = {0}, b = {0};
    weft_udp *s = open_local(loop, &k_proto, &a, "127.0.0.1");
    /* both sides: bound to a chosen local port, connected to s */
    weft_udp_opts o = {
        .local_host = "127.0.0.1", .remote_host = "127.0.0.1", .remote_port = weft_udp_port(s)};
    weft_udp *c = NULL;
    assert_int_equal(weft_udp_open(loop, &k_proto, &b, &o, &c), 0);
    assert_true(weft_udp_port(c) > 0);
    assert_int_equal(weft_udp_sendto(c, "pair", 4, NULL, 0), 0);
    RUN_UNTIL(loop, a.n == 1);
    assert_int_equal(ntohs(((struct sockaddr_in *)&a.from)->sin_port), weft_udp_port(c));
    weft_udp_close(s);
    weft_udp_close(c);

    /* AF_UNIX datagram sockets bound to paths, through the *_addr forms */
    prec x = {0}, y = {0};
    struct sockaddr_un ux = {.sun_family = AF_UNIX}, uy = {.sun_family = AF_UNIX};
    snprintf(ux.sun_path, sizeof ux.sun_path, "/tmp/weft-udp-%d-x", (int)getpid());
    snprintf(uy.sun_path, sizeof uy.sun_path, "/tmp/weft-udp-%d-y", (int)getpid());
    unlink(ux.sun_path);
    unlink(uy.sun_path);
    weft_udp *ex = NULL, *ey = NULL;
    o = (weft_udp_opts){.local_addr = (struct sockaddr *)&ux, .local_addrlen = sizeof ux};
    assert_int_equal(weft_udp_open(loop, &k_proto, &x, &o, &ex), 0);
    o = (weft_udp_opts){.local_addr = (struct sockaddr *)&uy,
                        .local_addrlen = sizeof uy,
                        .remote_addr = (struct sockaddr *)&ux,
                        .remote_addrlen = sizeof ux,
                        .family = AF_UNIX};
    assert_int_equal(weft_udp_open(loop, &k_proto, &y, &o, &ey), 0);
    assert_int_equal(weft_udp_port(ey), -1);
    assert_int_equal(weft_udp_sendto(ey, "unix", 4, NULL, 0), 0);
    RUN_UNTIL(loop, x.n == 1);
    assert_memory_equal(x.last, "unix", 4);
    assert_string_equal(((struct sockaddr_un *)&x.from)->sun_path, uy.sun_path);
    assert_int_equal(weft_udp_sendto(ex, "back", 4, (struct sockaddr *)&x.from, x.fromlen), 0);
    RUN_UNTIL(loop, y.n == 1);
    assert_memory_equal(y.last, "back", 4);
    weft_udp_close(ex);
    weft_udp_close(ey);
    unlink(ux.sun_path);
    unlink(uy.sun_path);
    step(loop);
    assert_int_equal(a.lost + b.lost + x.lost + y.lost, 4);
    finish(loop);
}

static void test_dump_lists_the_endpoints(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec a = {0};
    weft_udp *s = open_local(loop, &k_quiet, &a, "127.0.0.1");
    weft_future *f = weft_udp_recvfrom(s, 16);
    assert_int_equal(weft_loop_request_dump(loop), 0);
    step(loop);
    g_hook.expect = 1;
    assert_int_equal(g_hook.kind, WEFT_REPORT_DUMP);
    char want[128];
    snprintf(want, sizeof want, "fd %d, port %d, 1 receive(s) and 0 drain(s) pending",
             weft_udp_fd(s), weft_udp_port(s));
    assert_non_null(strstr(g_hook.msg, want));
    weft_future_cancel(f);
    weft_future_unref(f);
    weft_udp_close(s);
    step(loop);
    finish(loop);
}

/* ---- back-pressure ----------------------------------------------------------------------- */

struct drain_co {
    WEFT_FRAME(int);
    weft_udp *ep;
};

WEFT_ASYNC(drain_co)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_udp_drain(self->ep));
    self->result = 1;
    WEFT_END;
}

static void test_full_send_buffer_is_eagain_then_pause_and_resume(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
    prec r = {0};
    weft_udp *ep = NULL;
    assert_int_equal(weft_udp_from_fd(loop, sv[0], &k_proto, &r, &ep), 0);
    RUN_UNTIL(loop, r.made);
    assert_true(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    unsigned char buf[512];
    int sent = 0, rc = 0;
    while ((rc = weft_udp_sendto(ep, make_datagram(buf, (uint32_t)sent, sizeof buf) ? buf : buf,
                                 sizeof buf, NULL, 0)) == 0) {
        sent++;
        assert_true(sent < 100000);
    }
    assert_int_equal(rc, -EAGAIN);
    assert_true(sent > 0);
    assert_true(weft_udp_is_writing_paused(ep));
    /* nothing buffered by weft; the kernel holds what it took */
#ifdef __linux__
    assert_true(weft_udp_get_write_buffer_size(ep) > 0);
#endif
    assert_int_equal(weft_udp_sendto(ep, buf, sizeof buf, NULL, 0), -EAGAIN);
    weft_task *t = WEFT_SPAWN(loop, drain_co, .ep = ep);
    weft_future *dr = weft_udp_drain(ep);
    assert_false(weft_future_done(dr));
    step(loop);
    step(loop);
    assert_int_equal(r.paused, 1); /* once, however many refusals */
    assert_false(weft_future_done(t));
    weft_udp_stats st;
    assert_int_equal(weft_udp_get_stats(ep, &st), 0);
    assert_int_equal(st.eagain, 2);
    assert_int_equal(st.datagrams_sent, (uint64_t)sent);
    /* the peer reads everything: writable again */
    int got = 0;
    unsigned char in[1024];
    ssize_t n;
    while ((n = recv(sv[1], in, sizeof in, MSG_DONTWAIT)) > 0) {
        uint32_t seq;
        memcpy(&seq, in, sizeof seq);
        assert_int_equal(seq, (uint32_t)got);
        got++;
    }
    assert_int_equal(got, sent);
    assert_int_equal(run(loop, t), 0);
    assert_int_equal(result_i(t), 1);
    weft_value v = {.i = 5};
    assert_int_equal(weft_future_result(dr, &v), 0);
    assert_int_equal(v.i, 0);
    weft_future_unref(dr);
    RUN_UNTIL(loop, r.resumed);
    assert_int_equal(r.paused, 1);
    assert_int_equal(r.resumed, 1);
    assert_false(weft_udp_is_writing_paused(ep));
    assert_int_equal(weft_udp_sendto(ep, buf, sizeof buf, NULL, 0), 0);
    weft_future_unref(t);
    weft_udp_close(ep);
    step(loop);
    assert_string_equal(r.order, "mprl");
    assert_false(fd_open(sv[0]));
    close(sv[1]);
    finish(loop);
}

/* ---- bad input --------------------------------------------------------------------------- */

static void test_bad_input_is_refused(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec r = {0};
    weft_udp *ep = NULL;
    weft_udp_opts o = local_opts("127.0.0.1");
    assert_int_equal(weft_udp_open(NULL, &k_proto, &r, &o, &ep), -EINVAL);
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, NULL, &ep), -EINVAL);
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, NULL), -EINVAL);
    o.local_port = 65536;
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, &ep), -EINVAL);
    o.local_port = -1;
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, &ep), -EINVAL);
    o = (weft_udp_opts){.remote_host = "127.0.0.1", .remote_port = 70000};
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, &ep), -EINVAL);
    o = (weft_udp_opts){.remote_port = 53}; /* a port without a host */
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, &ep), -EINVAL);
    o = (weft_udp_opts){0}; /* no side, no family */
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, &ep), -EINVAL);
    o.family = 12345;
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, &ep), -EINVAL);
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    o = (weft_udp_opts){.local_addr = (struct sockaddr *)&a4, .local_addrlen = 1};
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, &ep), -EINVAL);
    o.local_addrlen = 4096;
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, &ep), -EINVAL);
    o = (weft_udp_opts){
        .local_addr = (struct sockaddr *)&a4, .local_addrlen = sizeof a4, .family = AF_INET6};
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, &ep), -EINVAL);
    /* bad addresses */
    o = local_opts("not-an-address");
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, &ep), WEFT_EAI_NONAME);
    o = local_opts("127.0.0.1");
    o.family = AF_INET6;
    assert_true(weft_udp_open(loop, &k_proto, &r, &o, &ep) < 0);
    o = (weft_udp_opts){.local_host = "127.0.0.1", .remote_host = "::1", .remote_port = 9};
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, &ep), -EAFNOSUPPORT);
    /* from_fd */
    assert_int_equal(weft_udp_from_fd(loop, -1, &k_proto, &r, &ep), -EINVAL);
    assert_int_equal(weft_udp_from_fd(loop, 0, &k_proto, &r, NULL), -EINVAL);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(weft_udp_from_fd(loop, p[0], &k_proto, &r, &ep), -ENOTSOCK);
    close(p[0]);
    close(p[1]);
    assert_int_equal(weft_udp_from_fd(loop, p[0], &k_proto, &r, &ep), -EBADF);
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(weft_udp_from_fd(loop, tcp, &k_proto, &r, &ep), -EPROTOTYPE);
    assert_true(fd_open(tcp));
    close(tcp);
    /* a watched fd: refused and left alone */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
    assert_int_equal(weft_udp_from_fd(loop, sv[0], &k_proto, &r, &ep), 0);
    weft_udp *ep2 = NULL;
    assert_int_equal(weft_udp_from_fd(loop, sv[0], &k_proto, &r, &ep2), -EEXIST);
    assert_null(ep2);
    /* sends, receives */
    unsigned char *huge = calloc(1, WEFT_UDP_MAX_DATAGRAM + 1);
    assert_non_null(huge);
    assert_int_equal(weft_udp_sendto(NULL, "x", 1, NULL, 0), -EINVAL);
    assert_int_equal(weft_udp_sendto(ep, NULL, 1, NULL, 0), -EINVAL);
    assert_int_equal(weft_udp_sendto(ep, huge, WEFT_UDP_MAX_DATAGRAM + 1, NULL, 0), -EMSGSIZE);
    free(huge);
    assert_int_equal(weft_udp_sendto(ep, "x", 1, (struct sockaddr *)&a4, 0), -EINVAL);
    assert_int_equal(weft_udp_sendto(ep, NULL, 0, NULL, 0), 0); /* an empty datagram */
    assert_null(weft_udp_recvfrom(NULL, 0));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_udp_recvfrom(ep, WEFT_UDP_MAX_DATAGRAM + 1));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_udp_recvfrom_into(ep, NULL, 5));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_udp_drain(NULL));
    assert_int_equal(weft_udp_close(NULL), -EINVAL);
    assert_int_equal(weft_udp_abort(NULL), -EINVAL);
    assert_int_equal(weft_udp_pause_reading(NULL), -EINVAL);
    assert_int_equal(weft_udp_fd(NULL), -1);
    assert_int_equal(weft_udp_port(NULL), -1);
    assert_int_equal(weft_udp_port(ep), -1); /* not IP */
    assert_int_equal(weft_udp_sockname(NULL, NULL, NULL), -EINVAL);
    assert_int_equal(weft_udp_get_stats(ep, NULL), -EINVAL);
    assert_false(weft_udp_is_closing(NULL));
    assert_false(weft_udp_is_writing_paused(NULL));
    assert_int_equal(weft_udp_get_write_buffer_size(NULL), 0);
    assert_null(weft_udp_loop(NULL));
    assert_null(weft_create_datagram_endpoint(NULL, &k_proto, &r, &o));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_create_datagram_endpoint(loop, &k_proto, &r, NULL));
    assert_int_equal(weft_last_error(), -EINVAL);
    /* sendto after close */
    assert_int_equal(weft_udp_abort(ep), 0);
    assert_int_equal(weft_udp_sendto(ep, "x", 1, NULL, 0), WEFT_ESTATE);
    step(loop);
    assert_int_equal(r.lost, 1);
    close(sv[1]);
    /* a closed loop */
    assert_int_equal(weft_loop_close(loop), 0);
    o = local_opts("127.0.0.1");
    assert_int_equal(weft_udp_open(loop, &k_proto, &r, &o, &ep), WEFT_ECLOSED);
    assert_null(weft_create_datagram_endpoint(loop, &k_proto, &r, &o));
    assert_int_equal(weft_last_error(), WEFT_ECLOSED);
    assert_int_equal(weft_udp_from_fd(loop, 0, &k_proto, &r, &ep), WEFT_ECLOSED);
    finish(loop);
}

static void test_options_reuse_port_and_broadcast(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec a = {0}, b = {0};
    weft_udp_opts o = {.local_host = "127.0.0.1", .reuse_port = true, .allow_broadcast = true};
    weft_udp *x = NULL, *y = NULL;
    assert_int_equal(weft_udp_open(loop, &k_proto, &a, &o, &x), 0);
    int on = 0;
    socklen_t len = sizeof on;
    assert_int_equal(getsockopt(weft_udp_fd(x), SOL_SOCKET, SO_BROADCAST, &on, &len), 0);
    assert_true(on);
    o.local_port = weft_udp_port(x);
    assert_int_equal(weft_udp_open(loop, &k_proto, &b, &o, &y), 0);
    assert_int_equal(weft_udp_port(y), o.local_port);
    weft_udp *z = NULL;
    o.reuse_port = false;
    assert_int_equal(weft_udp_open(loop, &k_proto, &b, &o, &z), -EADDRINUSE);
    assert_null(z);
    /* no side, a family: unbound until the first send */
    prec c = {0};
    o = (weft_udp_opts){.family = AF_INET};
    assert_int_equal(weft_udp_open(loop, &k_proto, &c, &o, &z), 0);
    assert_int_equal(weft_udp_port(z), 0);
    struct sockaddr_storage xs;
    socklen_t xl = sizeof xs;
    assert_int_equal(weft_udp_sockname(x, (struct sockaddr *)&xs, &xl), 0);
    assert_int_equal(weft_udp_sendto(z, "hi", 2, (struct sockaddr *)&xs, xl), 0);
    assert_true(weft_udp_port(z) > 0);
    RUN_UNTIL(loop, a.n + b.n == 1);
    weft_udp_close(x);
    weft_udp_close(y);
    weft_udp_close(z);
    step(loop);
    assert_int_equal(a.lost + b.lost + c.lost, 3);
    finish(loop);
}

/* ---- creation through the executor ------------------------------------------------------- */

static void test_create_datagram_endpoint_resolves_names(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec a = {0}, b = {0};
    /* numeric: done at once */
    weft_udp_opts o = local_opts("127.0.0.1");
    weft_future *f = weft_create_datagram_endpoint(loop, &k_proto, &a, &o);
    assert_non_null(f);
    assert_true(weft_future_done(f));
    weft_value v;
    assert_int_equal(weft_future_result(f, &v), 0);
    weft_udp *s = v.p;
    weft_future_unref(f);
    /* a name: through the executor, connected to s */
    o = (weft_udp_opts){
        .remote_host = "localhost", .remote_port = weft_udp_port(s), .family = AF_INET};
    f = weft_create_datagram_endpoint(loop, &k_proto, &b, &o);
    assert_non_null(f);
    assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
    assert_int_equal(weft_future_result(f, &v), 0);
    weft_udp *c = v.p;
    weft_future_unref(f);
    assert_int_equal(b.made, 1); /* before the future's waiters */
    assert_int_equal(weft_udp_sendto(c, "hello", 5, NULL, 0), 0);
    RUN_UNTIL(loop, a.n == 1);
    assert_memory_equal(a.last, "hello", 5);
    /* errors arrive through the future */
    o = (weft_udp_opts){.local_host = "127.0.0.1", .local_port = weft_udp_port(s)};
    f = weft_create_datagram_endpoint(loop, &k_proto, &b, &o);
    assert_int_equal(weft_loop_run_until_complete(loop, f), -EADDRINUSE);
    weft_future_unref(f);
    o = (weft_udp_opts){.remote_host = "no-such-host.invalid", .remote_port = 9};
    f = weft_create_datagram_endpoint(loop, &k_proto, &b, &o);
    int err = weft_loop_run_until_complete(loop, f);
    assert_true(err >= WEFT_EAI_MIN && err <= WEFT_EAI_MAX);
    weft_future_unref(f);
    /* cancelled while it resolves: no endpoint, nothing left */
    o = (weft_udp_opts){.remote_host = "localhost", .remote_port = 9};
    f = weft_create_datagram_endpoint(loop, &k_proto, &b, &o);
    assert_false(weft_future_done(f));
    assert_int_equal(weft_future_cancel(f), 0);
    weft_future_unref(f);
    weft_udp_close(s);
    weft_udp_close(c);
    step(loop);
    assert_int_equal(a.lost, 1);
    assert_int_equal(b.lost, 1);
    assert_int_equal(b.made, 1);
    finish(loop);
}

/* ---- allocation failures ----------------------------------------------------------------- */

/* Every allocation of open + a receive + a drain + a creation fails in
 * turn: each is -ENOMEM (or NULL) with nothing left behind. */
static void test_every_allocation_failure_is_survived(void **state)
{
    for (long k = 1;; k++) {
        weft_loop *loop = loop_on(*state, 0);
        long base = alloc_calls();
        alloc_fail_at(base + k);
        prec r = {0}, q = {0}, q2 = {0};
        weft_udp_opts o = local_opts("127.0.0.1");
        weft_udp *ep = NULL;
        int err = weft_udp_open(loop, &k_proto, &r, &o, &ep);
        weft_future *f = NULL, *d = NULL, *c = NULL;
        if (!err) {
            f = weft_udp_recvfrom(ep, 1000);
            err = f ? 0 : weft_last_error();
        }
        if (!err) {
            d = weft_udp_drain(ep);
            err = d ? 0 : weft_last_error();
        }
        if (!err) {
            c = weft_create_datagram_endpoint(loop, &k_proto, &q, &o);
            err = c ? 0 : weft_last_error();
        }
        if (!err && weft_future_error(c))
            err = weft_future_error(c);
        weft_future *n = NULL; /* a name: the executor's allocations too */
        if (!err) {
            weft_udp_opts ro = {.remote_host = "localhost", .remote_port = 9, .family = AF_INET};
            n = weft_create_datagram_endpoint(loop, &k_proto, &q2, &ro);
            err = n ? weft_loop_run_until_complete(loop, n) : weft_last_error();
        }
        alloc_fail_at(0);
        bool done = err == 0;
        if (!done) {
            assert_int_equal(err, -ENOMEM);
            assert_int_equal(q2.made + q2.lost, 0);
            if (!c || weft_future_error(c))
                assert_int_equal(q.made + q.lost, 0);
        }
        if (f)
            weft_future_cancel(f); /* a dropped pending receive would fail unobserved */
        weft_future_unref(f);
        weft_future_unref(d);
        if (c && weft_future_error(c) == 0) {
            weft_value v;
            weft_future_result(c, &v);
            weft_udp_close(v.p);
        }
        weft_future_unref(c);
        if (n && weft_future_error(n) == 0) {
            weft_value v;
            weft_future_result(n, &v);
            weft_udp_close(v.p);
        }
        weft_future_unref(n);
        if (ep)
            weft_udp_close(ep);
        step(loop);
        assert_int_equal(r.lost, ep ? 1 : 0);
        finish(loop);
        if (done) {
            assert_true(k > 3);
            break;
        }
    }
}

/* ---- loop close -------------------------------------------------------------------------- */

static prec *g_close_other;
static weft_udp *g_close_other_ep;

static void lost_closes_another(weft_udp *ep, int err, void *ud)
{
    on_lost(ep, err, ud);
    if (g_close_other_ep) {
        weft_udp_close(g_close_other_ep); /* from inside loop close */
        g_close_other_ep = NULL;
    }
}

static void test_loop_close_releases_open_endpoints(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    static weft_datagram_protocol p;
    p = k_proto;
    p.connection_lost = lost_closes_another;
    prec a = {0}, b = {0}, c = {0};
    weft_udp *x = open_local(loop, &p, &a, "127.0.0.1");
    weft_udp *y = open_local(loop, &k_proto, &b, "127.0.0.1");
    step(loop);
    weft_future *f = weft_udp_recvfrom(y, 0);
    weft_task *t = WEFT_SPAWN(loop, recv_co, .ep = x);
    step(loop);
    weft_udp *z = open_local(loop, &k_proto, &c, "127.0.0.1"); /* connection_made still queued */
    int fx = weft_udp_fd(x), fy = weft_udp_fd(y), fz = weft_udp_fd(z);
    g_close_other_ep = y;
    g_close_other = &b;
    /* a pending creation too */
    prec d = {0};
    weft_udp_opts o = {.remote_host = "localhost", .remote_port = 9};
    weft_future *cf = weft_create_datagram_endpoint(loop, &k_proto, &d, &o);
    assert_non_null(cf);
    g_hook.expect = 1; /* the task released while pending */
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(a.lost, 1);
    assert_int_equal(b.lost, 1);
    assert_int_equal(c.lost, 1);
    assert_int_equal(a.lost_err, WEFT_ECLOSED);
    assert_int_equal(b.lost_err, 0); /* closed by a's connection_lost */
    assert_int_equal(c.lost_err, WEFT_ECLOSED);
    assert_int_equal(c.made, 0);
    assert_int_equal(d.made + d.lost, 0);
    assert_int_equal(weft_future_error(f), WEFT_ESTATE); /* y was closed by a */
    assert_true(weft_future_done(cf));
    assert_int_equal(weft_future_error(cf), WEFT_ECLOSED);
    assert_false(fd_open(fx));
    assert_false(fd_open(fy));
    assert_false(fd_open(fz));
    weft_future_unref(f);
    weft_future_unref(cf);
    weft_future_unref(t);
    finish(loop);
}

/* ---- bursts ------------------------------------------------------------------------------ */

static void test_a_burst_of_datagrams_is_all_received_in_order(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec srv = {.verify = true}, cli = {0};
    weft_udp *s = open_local(loop, &k_proto, &srv, "127.0.0.1");
    int big = 1 << 20;
    setsockopt(weft_udp_fd(s), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    weft_udp *c = open_connected(loop, &k_quiet, &cli, "127.0.0.1", weft_udp_port(s));
    RUN_UNTIL(loop, srv.made);
    /* loopback UDP drops what the receive buffer cannot hold: bursts sized
     * to it (2 KiB per small datagram is a generous kernel cost) */
    int rcvbuf = 0;
    socklen_t rl = sizeof rcvbuf;
    assert_int_equal(getsockopt(weft_udp_fd(s), SOL_SOCKET, SO_RCVBUF, &rcvbuf, &rl), 0);
    int burst = rcvbuf / 2048 < 128 ? rcvbuf / 2048 : 128;
    if (burst < 8)
        burst = 8;
    enum { N = 512 };
    unsigned char buf[200];
    uint64_t before = iterations(loop);
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(weft_udp_sendto(c, buf, make_datagram(buf, i, 20 + i % 170), NULL, 0), 0);
        if ((i + 1) % (uint32_t)burst == 0)
            RUN_UNTIL(loop, srv.n == (int)i + 1);
    }
    RUN_UNTIL(loop, srv.n == N);
    assert_true(iterations(loop) - before >= N / 32); /* at most 32 per readiness */
    assert_int_equal(srv.bad, 0);
    assert_int_equal(srv.next_seq, N);

    /* a lossless burst of 5000 through an AF_UNIX pair, paced by -EAGAIN */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
    prec tx = {0}, rx = {.verify = true};
    weft_udp *a = NULL, *b = NULL;
    assert_int_equal(weft_udp_from_fd(loop, sv[0], &k_quiet, &tx, &a), 0);
    assert_int_equal(weft_udp_from_fd(loop, sv[1], &k_proto, &rx, &b), 0);
    RUN_UNTIL(loop, tx.made && rx.made);
    uint32_t next = 0;
    while (next < 5000) {
        int rc = weft_udp_sendto(a, buf, make_datagram(buf, next, 4 + next % 190), NULL, 0);
        if (rc == 0) {
            next++;
            continue;
        }
        assert_int_equal(rc, -EAGAIN);
        weft_future *dr = weft_udp_drain(a);
        assert_int_equal(weft_loop_run_until_complete(loop, dr), 0);
        weft_future_unref(dr);
    }
    RUN_UNTIL(loop, rx.n == 5000);
    assert_int_equal(rx.bad, 0);
    weft_udp_close(s);
    weft_udp_close(c);
    weft_udp_close(a);
    weft_udp_close(b);
    step(loop);
    finish(loop);
}

/* Steady state: receiving allocates nothing (callback and caller buffer). */
static void test_steady_state_receiving_allocates_nothing(void **state)
{
    weft_loop *loop = loop_on(*state, 0);
    prec srv = {0}, cli = {0};
    weft_udp *s = open_local(loop, &k_proto, &srv, "127.0.0.1");
    weft_udp *c = open_connected(loop, &k_proto, &cli, "127.0.0.1", weft_udp_port(s));
    unsigned char buf[64];
    for (int round = 0; round < 2; round++) {
        long before = alloc_calls();
        for (int i = 0; i < 50; i++) {
            assert_int_equal(weft_udp_sendto(c, "x", 1, NULL, 0), 0);
            RUN_UNTIL(loop, srv.n == round * 100 + i + 1);
        }
        for (int i = 0; i < 50; i++) {
            assert_int_equal(weft_udp_sendto(c, "y", 1, NULL, 0), 0);
            weft_future *f = weft_udp_recvfrom_into(s, buf, sizeof buf);
            assert_int_equal(weft_loop_run_until_complete(loop, f), 0);
            weft_future_unref(f);
            srv.n++;
        }
        if (round == 1 && WT_POOLED)
            assert_int_equal(alloc_calls(), before);
    }
    weft_udp_close(s);
    weft_udp_close(c);
    step(loop);
    finish(loop);
}

/* ---- registration ------------------------------------------------------------------------ */

/* clang-format off */
#define ON(f, backend) {#f "(" backend ")", f, setup, teardown, (void *)backend}
/* clang-format on */
#if WEFT__HAVE_EPOLL
#define ON_EPOLL(f) ON(f, "epoll"),
#else
#define ON_EPOLL(f)
#endif
#if WEFT__HAVE_KQUEUE
#define ON_KQUEUE(f) ON(f, "kqueue"),
#else
#define ON_KQUEUE(f)
#endif
#define ON_ALL(f) ON_EPOLL(f) ON_KQUEUE(f) ON(f, "poll")

int main(void)
{
    const struct CMUnitTest tests[] = {
        ON_ALL(test_echo_ipv4),
        ON_ALL(test_echo_ipv6),
        ON_ALL(test_port_zero_picks_a_port_and_reports_it),
        ON_ALL(test_connected_endpoint_sends_to_its_peer_only),
        ON_ALL(test_icmp_port_unreachable_is_error_received),
        ON_ALL(test_icmp_error_fails_a_pending_receive),
        ON_ALL(test_recvfrom_awaited_in_a_task),
        ON_ALL(test_cancelled_recvfrom_loses_no_datagram),
        ON_ALL(test_recvfrom_into_a_caller_buffer_and_truncation),
        ON_ALL(test_receives_come_before_datagram_received),
        ON_ALL(test_close_fails_pending_receives_and_drains),
        ON_ALL(test_close_inside_datagram_received_ends_the_batch),
        ON_ALL(test_nothing_is_delivered_before_connection_made),
        ON_ALL(test_bound_and_connected_and_unix_paths),
        ON_ALL(test_dump_lists_the_endpoints),
        ON_ALL(test_a_late_cancellation_keeps_the_endpoint),
        ON_ALL(test_debug_loop_refuses_calls_from_another_thread),
        ON_ALL(test_full_send_buffer_is_eagain_then_pause_and_resume),
        ON_ALL(test_bad_input_is_refused),
        ON_ALL(test_options_reuse_port_and_broadcast),
        ON_ALL(test_create_datagram_endpoint_resolves_names),
        ON_ALL(test_every_allocation_failure_is_survived),
        ON_ALL(test_loop_close_releases_open_endpoints),
        ON_ALL(test_a_burst_of_datagrams_is_all_received_in_order),
        ON_ALL(test_steady_state_receiving_allocates_nothing),
    };
    return RUN_TESTS(tests);
}
