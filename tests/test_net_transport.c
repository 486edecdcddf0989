/* test_net_transport.c - transports and protocols (weft/net.h), on both fd
 * backends: socketpairs, loopback TCP pairs and pipes. */
#include "weft_test.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* ---- a recording protocol ------------------------------------------------------------ */

/* What one transport's protocol saw. */
typedef struct rec_t {
    weft_transport *t;
    char ev[64]; /* m made, d data, e eof, l lost, p pause, r resume */
    int nev;
    int lost_err;
    bool keep_open;      /* eof_received's answer */
    bool echo;           /* write back what arrives */
    bool pause_on_data;  /* pause_reading in data_received */
    bool respect_pause;  /* the pumping writer stops while paused */
    unsigned char *data; /* what arrived (malloc) */
    size_t n, cap;
    size_t max_buffered; /* the largest write buffer seen by the pump */
    uint64_t lost_dropped;
    size_t lost_bufsize;
    bool paused;
} rec_t;

static void ev_add(rec_t *r, char c)
{
    if (r->nev < (int)sizeof r->ev - 1)
        r->ev[r->nev++] = c;
    r->ev[r->nev] = 0;
}

static void p_made(weft_transport *t, void *ud)
{
    rec_t *r = ud;
    r->t = t;
    ev_add(r, 'm');
}

static void p_data(weft_transport *t, const void *data, size_t n, void *ud)
{
    rec_t *r = ud;
    if (!r->nev || r->ev[r->nev - 1] != 'd')
        ev_add(r, 'd');
    if (r->n + n > r->cap) {
        r->cap = (r->n + n) * 2;
        r->data = realloc(r->data, r->cap);
    }
    memcpy(r->data + r->n, data, n);
    r->n += n;
    if (r->echo)
        weft_transport_write(t, data, n);
    if (r->pause_on_data)
        weft_transport_pause_reading(t);
}

static bool p_eof(weft_transport *t, void *ud)
{
    (void)t;
    rec_t *r = ud;
    ev_add(r, 'e');
    return r->keep_open;
}

static void p_lost(weft_transport *t, int err, void *ud)
{
    rec_t *r = ud;
    ev_add(r, 'l');
    r->lost_err = err;
    r->lost_dropped = weft_transport_dropped_writes(t);
    r->lost_bufsize = weft_transport_get_write_buffer_size(t);
    r->t = NULL;
}

static void p_pause(weft_transport *t, void *ud)
{
    (void)t;
    rec_t *r = ud;
    r->paused = true;
    ev_add(r, 'p');
}

static void p_resume(weft_transport *t, void *ud)
{
    (void)t;
    rec_t *r = ud;
    r->paused = false;
    ev_add(r, 'r');
}

static const weft_protocol k_proto = {p_made, p_data, p_eof, p_lost, p_pause, p_resume};
static const weft_protocol k_empty; /* every member NULL */

static void rec_free(rec_t *r)
{
    free(r->data);
    r->data = NULL;
    r->n = r->cap = 0;
}

/* ---- fds ------------------------------------------------------------------------------- */

static void unix_pair(int fds[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
}

/* A connected loopback TCP pair: fds[0] the connecting side, fds[1] the
 * accepted one (both blocking). */
static void tcp_pair(int fds[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fds[0] >= 0);
    assert_int_equal(connect(fds[0], (struct sockaddr *)&a, sizeof a), 0);
    fds[1] = accept(l, NULL, NULL);
    assert_true(fds[1] >= 0);
    close(l);
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static bool nonblocking(int fd)
{
    return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

/* Read what is there from a raw fd into r's data (non-blocking); returns
 * the read's last result (0 at EOF, -1 with EAGAIN...). */
static ssize_t raw_drain(int fd, rec_t *r)
{
    unsigned char buf[65536];
    for (;;) {
        ssize_t k = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (k <= 0)
            return k;
        if (r->n + (size_t)k > r->cap) {
            r->cap = (r->n + (size_t)k) * 2;
            r->data = realloc(r->data, r->cap);
        }
        memcpy(r->data + r->n, buf, (size_t)k);
        r->n += (size_t)k;
    }
}

/* ---- running ---------------------------------------------------------------------------- */

/* Run iterations until cond holds (each iteration blocks until something
 * happens, so cond must be reached by events); at most max iterations. */
#define RUN_UNTIL(loop, cond)                                        \
    do {                                                             \
        for (int it_ = 0; !(cond); it_++) {                          \
            assert_true(it_ < 100000);                               \
            assert_int_equal(weft_loop_run_once(loop), 0);           \
        }                                                            \
    } while (0)

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 7 + i / 251) & 0xff);
}

static void check_pattern(const unsigned char *p, size_t n, size_t from)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern(from + i))
            fail_msg("byte %zu: %u, expected %u", from + i, p[i], pattern(from + i));
}

static const char *g_backend;

static weft_loop *tloop(void)
{
    return loop_on(g_backend, 0);
}

static int setup(void **state)
{
    g_backend = *state;
    wt_setup((wt_policy){.watchdog_s = 30});
    return 0;
}

/* =============================================================================
 * Lifecycle
 * ========================================================================== */

/* wrap never calls back inline: connection_made comes from the ready
 * queue, first, then the data. */
static void test_connection_made_runs_from_the_ready_queue_first(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    assert_int_equal(write(fds[1], "hi", 2), 2);
    rec_t r = {0};
    weft_transport *t = NULL;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    assert_non_null(t);
    assert_true(nonblocking(fds[0]));
    assert_int_equal(r.nev, 0);
    assert_ptr_equal(weft_transport_loop(t), loop);
    assert_ptr_equal(weft_transport_protocol_ud(t), &r);
    assert_int_equal(weft_transport_fd(t), fds[0]);
    step(loop);
    assert_string_equal(r.ev, "m");
    assert_ptr_equal(r.t, t);
    RUN_UNTIL(loop, r.n == 2);
    assert_string_equal(r.ev, "md");
    assert_memory_equal(r.data, "hi", 2);
    assert_int_equal(weft_transport_close(t), 0);
    RUN_UNTIL(loop, r.lost_err == 0 && strchr(r.ev, 'l'));
    assert_string_equal(r.ev, "mdl");
    assert_false(fd_open(fds[0]));
    close(fds[1]);
    rec_free(&r);
    finish(loop);
}

/* An echo protocol over TCP: what the peer sends comes back, in order. */
static void test_echo_over_tcp(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    tcp_pair(fds);
    rec_t r = {.echo = true}, peer = {0};
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, NULL), 0);
    assert_int_equal(weft_transport_wrap(loop, fds[1], &k_proto, &peer, NULL), 0);
    step(loop);
    assert_string_equal(peer.ev, "m");
    assert_int_equal(weft_transport_write(peer.t, "hello, ", 7), 0);
    assert_int_equal(weft_transport_write(peer.t, "world", 5), 0);
    RUN_UNTIL(loop, peer.n == 12);
    assert_memory_equal(peer.data, "hello, world", 12);
    assert_memory_equal(r.data, "hello, world", 12);
    weft_transport_close(peer.t);
    /* the peer's close is r's EOF: eof_received false closes r too */
    RUN_UNTIL(loop, strchr(r.ev, 'l') && strchr(peer.ev, 'l'));
    assert_string_equal(r.ev, "mdel");
    assert_int_equal(r.lost_err, 0);
    assert_int_equal(peer.lost_err, 0);
    rec_free(&r);
    rec_free(&peer);
    finish(loop);
}

/* A write the kernel takes entirely is not buffered; nothing allocated. */
static void test_write_goes_out_at_once_without_allocating(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    rec_t r = {0}, peer = {0};
    weft_transport *t;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    step(loop);
    long calls = alloc_calls();
    for (int i = 0; i < 100; i++)
        assert_int_equal(weft_transport_write(t, "abcdefgh", 8), 0);
    assert_int_equal(weft_transport_get_write_buffer_size(t), 0);
    assert_int_equal(alloc_calls(), calls);
    raw_drain(fds[1], &peer);
    assert_int_equal(peer.n, 800);
    /* reads allocate nothing either */
    for (int i = 0; i < 50; i++) {
        assert_int_equal(write(fds[1], "xy", 2), 2);
        RUN_UNTIL(loop, r.n == (size_t)(i + 1) * 2);
    }
    assert_int_equal(alloc_calls(), calls);
    weft_transport_abort(t);
    step(loop);
    assert_string_equal(r.ev, "mdl");
    close(fds[1]);
    rec_free(&r);
    rec_free(&peer);
    finish(loop);
}

/* Megabytes through a small send buffer: EAGAIN storms and short writes;
 * every byte arrives, in order, and the buffer empties. */
static void test_buffered_write_delivers_every_byte_in_order(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    tcp_pair(fds);
    int small = 4096;
    assert_int_equal(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    rec_t r = {0}, peer = {0};
    weft_transport *t;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    assert_int_equal(weft_transport_wrap(loop, fds[1], &k_proto, &peer, NULL), 0);
    enum { TOTAL = 3 * 1024 * 1024, CHUNK = 10007 };
    unsigned char *src = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        src[i] = pattern(i);
    size_t off = 0;
    bool buffered = false;
    while (off < TOTAL) {
        size_t n = TOTAL - off < CHUNK ? TOTAL - off : CHUNK;
        if (off % 3 == 0) {
            struct iovec iov[3] = {{src + off, n / 3}, {src + off + n / 3, 0},
                                   {src + off + n / 3, n - n / 3}};
            assert_int_equal(weft_transport_writev(t, iov, 3), 0);
        } else {
            assert_int_equal(weft_transport_write(t, src + off, n), 0);
        }
        off += n;
        buffered = buffered || weft_transport_get_write_buffer_size(t) > 0;
        if (weft_transport_get_write_buffer_size(t) > 256 * 1024)
            assert_int_equal(weft_loop_run_once(loop), 0);
    }
    assert_true(buffered);
    RUN_UNTIL(loop, peer.n == TOTAL);
    check_pattern(peer.data, TOTAL, 0);
    assert_int_equal(weft_transport_get_write_buffer_size(t), 0);
    weft_transport_close(t);
    RUN_UNTIL(loop, strchr(peer.ev, 'l') && strchr(r.ev, 'l'));
    assert_int_equal(r.lost_err, 0);
    free(src);
    rec_free(&r);
    rec_free(&peer);
    finish(loop);
}

/* close flushes what is queued, then connection_lost(0); writes after it
 * are refused. */
static void test_close_flushes_then_loses_with_zero(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    int small = 4096;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    rec_t r = {0}, peer = {0};
    weft_transport *t;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    enum { TOTAL = 512 * 1024 };
    unsigned char *src = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        src[i] = pattern(i);
    assert_int_equal(weft_transport_write(t, src, TOTAL), 0);
    assert_true(weft_transport_get_write_buffer_size(t) > 0);
    assert_int_equal(weft_transport_close(t), 0);
    assert_int_equal(weft_transport_close(t), 0); /* idempotent */
    assert_true(weft_transport_is_closing(t));
    assert_int_equal(weft_transport_write(t, "x", 1), WEFT_ESTATE);
    while (!strchr(r.ev, 'l')) {
        raw_drain(fds[1], &peer);
        assert_int_equal(weft_loop_run_once(loop), 0);
    }
    assert_string_equal(r.ev, "mprl"); /* 512 KiB is above the high-water mark */
    assert_int_equal(r.lost_err, 0);
    assert_int_equal(raw_drain(fds[1], &peer), 0); /* then EOF */
    assert_int_equal(peer.n, TOTAL);
    check_pattern(peer.data, TOTAL, 0);
    close(fds[1]);
    free(src);
    rec_free(&r);
    rec_free(&peer);
    finish(loop);
}

/* A protocol whose members are all NULL: data is consumed, the peer's EOF
 * closes the transport (eof_received NULL means false), nothing leaks. */
static void test_null_members_do_nothing(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_empty, NULL, NULL), 0);
    assert_int_equal(write(fds[1], "abc", 3), 3);
    shutdown(fds[1], SHUT_WR);
    rec_t peer = {0};
    while (raw_drain(fds[1], &peer) != 0)
        assert_int_equal(weft_loop_run_once(loop), 0);
    RUN_UNTIL(loop, !fd_open(fds[0]));
    close(fds[1]);
    rec_free(&peer);
    finish(loop);
}

int main(void)
{
    static const struct {
        const char *name;
        void (*fn)(void **);
    } tests[] = {
#define TEST(f) {#f, f}
        TEST(test_connection_made_runs_from_the_ready_queue_first),
        TEST(test_echo_over_tcp),
        TEST(test_write_goes_out_at_once_without_allocating),
        TEST(test_buffered_write_delivers_every_byte_in_order),
        TEST(test_close_flushes_then_loses_with_zero),
        TEST(test_null_members_do_nothing),
#undef TEST
    };
    static const char *const backends[] = {"epoll", "poll"};
    enum { NT = sizeof tests / sizeof tests[0], NB = 2 };
    static struct CMUnitTest run[NT * NB];
    static char names[NT * NB][128];
    size_t n = 0;
    for (size_t b = 0; b < NB; b++) {
        weft_loop *probe = NULL;
        weft_loop_options o = {.backend = backends[b]};
        if (weft_loop_new(&probe, &o) != 0)
            continue; /* not on this platform */
        weft_loop_destroy(probe);
        for (size_t i = 0; i < NT; i++, n++) {
            snprintf(names[n], sizeof names[n], "%s(%s)", tests[i].name, backends[b]);
            run[n] = (struct CMUnitTest){names[n], tests[i].fn, setup, teardown,
                                         (void *)(uintptr_t)backends[b]};
        }
    }
    return wt_run_tests(run, n, "test_net_transport");
}
