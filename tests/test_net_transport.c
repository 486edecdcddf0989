/* test_net_transport.c - transports and protocols (weft/net.h), on both fd
 * backends: socketpairs, loopback TCP pairs and pipes. */
#include "weft_test.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <limits.h>
#include <unistd.h>

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
    size_t resume_bufsize; /* the write buffer when resume_writing ran */
    int lost_write_rc;     /* a write made inside connection_lost */
    bool write_in_lost;
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
    if (r->write_in_lost) {
        r->lost_write_rc = weft_transport_write(t, "late", 4);
        r->lost_dropped = weft_transport_dropped_writes(t);
    }
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
    r->resume_bufsize = weft_transport_get_write_buffer_size(t);
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
    /* Nagle off on both sides, as weft's clients and servers do. */
    int one = 1;
    assert_int_equal(setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
    assert_int_equal(setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
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
#define RUN_UNTIL(loop, cond)                              \
    do {                                                   \
        for (int it_ = 0; !(cond); it_++) {                \
            assert_true(it_ < 100000);                     \
            assert_int_equal(weft_loop_run_once(loop), 0); \
        }                                                  \
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
    /* A send buffer that holds only one loopback segment (MSS ~64 KiB)
     * would leave the receiver one segment per round trip, which it ACKs
     * only on its 40 ms delayed-ACK timer: keep room for a few segments. */
    int small = 256 * 1024;
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
            struct iovec iov[3] = {
                {src + off, n / 3}, {src + off + n / 3, 0}, {src + off + n / 3, n - n / 3}};
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

/* Fill fd's send side with raw writes until the kernel refuses. */
static void fill_kernel(int fd)
{
    static unsigned char junk[16384];
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    while (write(fd, junk, sizeof junk) > 0)
        ;
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    fcntl(fd, F_SETFL, fl);
}

/* =============================================================================
 * Writing
 * ========================================================================== */

/* writev sends its buffers (an empty one among them) as one stream, in
 * order; bad vectors are refused before anything is sent. */
static void test_writev_sends_every_buffer_in_order(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    rec_t r = {0}, peer = {0};
    weft_transport *t;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    step(loop);
    struct iovec iov[4] = {{"one ", 4}, {NULL, 0}, {"two ", 4}, {"three", 5}};
    assert_int_equal(weft_transport_writev(t, iov, 4), 0);
    assert_int_equal(weft_transport_writev(t, iov, 0), 0);
    assert_int_equal(weft_transport_writev(t, NULL, 0), 0);
    assert_int_equal(weft_transport_writev(t, NULL, 1), -EINVAL);
    assert_int_equal(weft_transport_writev(t, iov, -1), -EINVAL);
    struct iovec bad[2] = {{"x", 1}, {NULL, 3}};
    assert_int_equal(weft_transport_writev(t, bad, 2), -EINVAL);
    assert_int_equal(weft_transport_writev(NULL, iov, 4), -EINVAL);
    raw_drain(fds[1], &peer);
    assert_int_equal(peer.n, 13);
    assert_memory_equal(peer.data, "one two three", 13);
    /* queued behind a full kernel buffer, writev's bytes keep their order */
    fill_kernel(fds[0]);
    assert_int_equal(weft_transport_writev(t, iov, 4), 0);
    assert_int_equal(weft_transport_get_write_buffer_size(t), 13);
    assert_int_equal(weft_transport_write(t, "!", 1), 0);
    peer.n = 0;
    while (weft_transport_get_write_buffer_size(t) > 0) {
        raw_drain(fds[1], &peer);
        assert_int_equal(weft_loop_run_once(loop), 0);
    }
    raw_drain(fds[1], &peer);
    assert_true(peer.n > 14);
    assert_memory_equal(peer.data + peer.n - 14, "one two three!", 14);
    weft_transport_abort(t);
    step(loop);
    assert_string_equal(r.ev, "ml");
    close(fds[1]);
    rec_free(&r);
    rec_free(&peer);
    finish(loop);
}

/* write_eof half-closes (S-STREAM-10): the peer sees EOF, keeps its side
 * open by returning true from eof_received (S-STREAM-11) and can still
 * write back; the first side still reads.  write and write_eof after
 * write_eof are WEFT_ESTATE. */
static void test_write_eof_half_closes_both_directions(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    tcp_pair(fds);
    rec_t r = {0}, peer = {.keep_open = true};
    weft_transport *t, *pt;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    assert_int_equal(weft_transport_wrap(loop, fds[1], &k_proto, &peer, &pt), 0);
    step(loop);
    assert_true(weft_transport_can_write_eof(t));
    assert_int_equal(weft_transport_write(t, "ab", 2), 0);
    assert_int_equal(weft_transport_write_eof(t), 0);
    assert_int_equal(weft_transport_write(t, "c", 1), WEFT_ESTATE);
    assert_int_equal(weft_transport_write_eof(t), WEFT_ESTATE);
    assert_false(weft_transport_is_closing(t));
    assert_true(weft_transport_is_reading(t));
    RUN_UNTIL(loop, strchr(peer.ev, 'e'));
    assert_string_equal(peer.ev, "mde");
    assert_memory_equal(peer.data, "ab", 2);
    assert_false(weft_transport_is_closing(pt));
    /* the other direction still works */
    assert_int_equal(weft_transport_write(pt, "reply", 5), 0);
    RUN_UNTIL(loop, r.n == 5);
    assert_memory_equal(r.data, "reply", 5);
    /* the peer half-closes too: r's eof_received returns false, r closes */
    assert_int_equal(weft_transport_write_eof(pt), 0);
    RUN_UNTIL(loop, strchr(r.ev, 'l'));
    assert_string_equal(r.ev, "mdel");
    assert_int_equal(r.lost_err, 0);
    /* both directions are shut; the peer stays until it closes */
    assert_false(strchr(peer.ev, 'l'));
    assert_int_equal(weft_transport_close(pt), 0);
    RUN_UNTIL(loop, strchr(peer.ev, 'l'));
    assert_string_equal(peer.ev, "mdel");
    assert_int_equal(peer.lost_err, 0);
    rec_free(&r);
    rec_free(&peer);
    finish(loop);
}

/* write_eof with data queued: the shutdown waits for the flush. */
static void test_write_eof_waits_for_the_buffer(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    rec_t r = {0}, peer = {0};
    weft_transport *t;
    fill_kernel(fds[0]);
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    step(loop);
    assert_int_equal(weft_transport_write(t, "tail", 4), 0);
    assert_int_equal(weft_transport_get_write_buffer_size(t), 4);
    assert_int_equal(weft_transport_write_eof(t), 0);
    ssize_t k;
    while ((k = raw_drain(fds[1], &peer)) != 0)
        assert_int_equal(weft_loop_run_once(loop), 0);
    assert_memory_equal(peer.data + peer.n - 4, "tail", 4);
    assert_int_equal(weft_transport_get_write_buffer_size(t), 0);
    assert_false(strchr(r.ev, 'l')); /* still open for reading */
    assert_int_equal(write(fds[1], "in", 2), 2);
    RUN_UNTIL(loop, r.n == 2);
    close(fds[1]);
    RUN_UNTIL(loop, strchr(r.ev, 'l'));
    assert_string_equal(r.ev, "mdel");
    rec_free(&r);
    rec_free(&peer);
    finish(loop);
}

/* eof_received true keeps the transport writable; false closes it. */
static void test_eof_received_true_keeps_writing_false_closes(void **state)
{
    (void)state;
    for (int keep = 0; keep < 2; keep++) {
        weft_loop *loop = tloop();
        int fds[2];
        unix_pair(fds);
        rec_t r = {.keep_open = keep}, peer = {0};
        weft_transport *t;
        assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
        shutdown(fds[1], SHUT_WR);
        RUN_UNTIL(loop, strchr(r.ev, 'e'));
        if (keep) {
            step(loop);
            assert_string_equal(r.ev, "me");
            assert_false(weft_transport_is_closing(t));
            assert_int_equal(weft_transport_write(t, "still", 5), 0);
            raw_drain(fds[1], &peer);
            assert_int_equal(peer.n, 5);
            assert_memory_equal(peer.data, "still", 5);
            weft_transport_close(t);
        }
        RUN_UNTIL(loop, strchr(r.ev, 'l'));
        assert_string_equal(r.ev, "mel");
        assert_int_equal(r.lost_err, 0);
        assert_int_equal(raw_drain(fds[1], &peer), 0); /* the peer sees EOF */
        close(fds[1]);
        rec_free(&r);
        rec_free(&peer);
        finish(loop);
    }
}

/* abort drops the buffer at once; connection_lost(0) comes from the ready
 * queue, not from inside abort; writes after it are WEFT_ESTATE. */
static void test_abort_drops_the_buffer_and_loses_from_the_ready_queue(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    rec_t r = {0}, peer = {0};
    weft_transport *t;
    fill_kernel(fds[0]);
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    step(loop);
    assert_int_equal(weft_transport_write(t, "never", 5), 0);
    assert_int_equal(weft_transport_get_write_buffer_size(t), 5);
    assert_int_equal(weft_transport_abort(t), 0);
    assert_int_equal(weft_transport_abort(t), 0);
    assert_int_equal(weft_transport_close(t), 0);
    assert_true(weft_transport_is_closing(t));
    assert_int_equal(weft_transport_get_write_buffer_size(t), 0);
    assert_int_equal(weft_transport_write(t, "x", 1), WEFT_ESTATE);
    assert_string_equal(r.ev, "m");
    step(loop);
    assert_string_equal(r.ev, "ml");
    assert_int_equal(r.lost_err, 0);
    assert_int_equal(r.lost_bufsize, 0);
    assert_false(fd_open(fds[0]));
    ssize_t k;
    while ((k = raw_drain(fds[1], &peer)) > 0)
        ;
    assert_int_equal(k, 0);
    for (size_t i = 0; i + 5 <= peer.n; i++)
        assert_false(memcmp(peer.data + i, "never", 5) == 0);
    close(fds[1]);
    rec_free(&r);
    rec_free(&peer);
    finish(loop);
}

/* A TCP peer that resets (SO_LINGER {1, 0}, then close): the reader gets
 * connection_lost(-ECONNRESET). */
static void test_peer_reset_loses_with_econnreset(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    tcp_pair(fds);
    rec_t r = {0};
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, NULL), 0);
    step(loop);
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fds[1]);
    RUN_UNTIL(loop, strchr(r.ev, 'l'));
    assert_string_equal(r.ev, "ml");
    assert_int_equal(r.lost_err, -ECONNRESET);
    assert_false(fd_open(fds[0]));
    rec_free(&r);
    finish(loop);
}

/* A write that finds the connection reset loses it; that write and later
 * ones return 0 and the later ones are counted (S-STREAM-13), up to and
 * inside connection_lost. */
static void test_writes_after_the_loss_are_dropped_and_counted(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    tcp_pair(fds);
    rec_t r = {.write_in_lost = true};
    weft_transport *t;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    step(loop);
    assert_int_equal(weft_transport_pause_reading(t), 0); /* the write finds it */
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fds[1]);
    assert_int_equal(weft_transport_write(t, "first", 5), 0);
    assert_true(weft_transport_is_closing(t));
    assert_int_equal(weft_transport_dropped_writes(t), 0);
    assert_int_equal(weft_transport_write(t, "abc", 3), 0);
    struct iovec iov[2] = {{"de", 2}, {"f", 1}};
    assert_int_equal(weft_transport_writev(t, iov, 2), 0);
    assert_int_equal(weft_transport_dropped_writes(t), 6);
    assert_int_equal(weft_transport_get_write_buffer_size(t), 0);
    assert_string_equal(r.ev, "m");
    step(loop);
    assert_string_equal(r.ev, "ml");
    assert_int_equal(r.lost_err, -ECONNRESET);
    assert_int_equal(r.lost_write_rc, 0);
    assert_int_equal(r.lost_dropped, 10);
    rec_free(&r);
    finish(loop);
}

/* Writing to a socket whose peer is gone never raises SIGPIPE (it is
 * SIG_DFL here, so a raise would kill the test): the write returns 0 and
 * connection_lost(-EPIPE) follows.  Unix and TCP sockets. */
static void test_sigpipe_is_never_raised(void **state)
{
    (void)state;
    void (*old)(int) = signal(SIGPIPE, SIG_DFL);
    for (int tcp = 0; tcp < 2; tcp++) {
        weft_loop *loop = tloop();
        int fds[2];
        if (tcp)
            tcp_pair(fds);
        else
            unix_pair(fds);
        rec_t r = {0};
        weft_transport *t;
        assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
        step(loop);
        weft_transport_pause_reading(t);
        if (tcp) {
            struct linger lg = {1, 0};
            setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(fds[1]);
        /* a TCP socket reports the reset once, then EPIPE */
        for (int i = 0; i < 3; i++)
            assert_int_equal(weft_transport_write(t, "x", 1), 0);
        step(loop);
        assert_string_equal(r.ev, "ml");
        assert_true(r.lost_err == -EPIPE || (tcp && r.lost_err == -ECONNRESET));
        if (!tcp)
            assert_int_equal(r.lost_err, -EPIPE);
        rec_free(&r);
        finish(loop);
    }
    /* and on the raw level too, the fd that a transport owned is closed */
    signal(SIGPIPE, old);
}

/* =============================================================================
 * Reading control and flow control
 * ========================================================================== */

/* pause_reading stops data_received until resume_reading; both are
 * idempotent; WEFT_ESTATE once closing. */
static void test_pause_and_resume_reading(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    rec_t r = {.pause_on_data = true};
    weft_transport *t;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    assert_true(weft_transport_is_reading(t));
    assert_int_equal(write(fds[1], "a", 1), 1);
    RUN_UNTIL(loop, r.n == 1);
    assert_false(weft_transport_is_reading(t));
    assert_int_equal(weft_transport_pause_reading(t), 0);
    assert_int_equal(write(fds[1], "b", 1), 1);
    for (int i = 0; i < 5; i++)
        step(loop);
    assert_int_equal(r.n, 1);
    r.pause_on_data = false;
    assert_int_equal(weft_transport_resume_reading(t), 0);
    assert_int_equal(weft_transport_resume_reading(t), 0);
    assert_true(weft_transport_is_reading(t));
    RUN_UNTIL(loop, r.n == 2);
    assert_memory_equal(r.data, "ab", 2);
    assert_int_equal(weft_transport_pause_reading(NULL), -EINVAL);
    assert_false(weft_transport_is_reading(NULL));
    weft_transport_close(t);
    assert_false(weft_transport_is_reading(t));
    assert_int_equal(weft_transport_pause_reading(t), WEFT_ESTATE);
    assert_int_equal(weft_transport_resume_reading(t), WEFT_ESTATE);
    step(loop);
    assert_string_equal(r.ev, "mdl");
    close(fds[1]);
    rec_free(&r);
    finish(loop);
}

/* pause_writing once the buffer goes above high, resume_writing once it
 * is back at or below low, both from the ready queue. */
static void test_pause_writing_above_high_resume_at_low(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    rec_t r = {0}, peer = {0};
    weft_transport *t;
    fill_kernel(fds[0]);
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    step(loop);
    assert_int_equal(weft_transport_set_write_buffer_limits(t, 8192, 1024), 0);
    static unsigned char buf[8192];
    assert_int_equal(weft_transport_write(t, buf, sizeof buf), 0);
    assert_int_equal(weft_transport_get_write_buffer_size(t), 8192); /* == high: no pause */
    step(loop);
    assert_string_equal(r.ev, "m");
    assert_int_equal(weft_transport_write(t, buf, 1), 0);
    assert_string_equal(r.ev, "m"); /* never inside write */
    step(loop);
    assert_string_equal(r.ev, "mp");
    while (!strchr(r.ev, 'r')) {
        raw_drain(fds[1], &peer);
        assert_int_equal(weft_loop_run_once(loop), 0);
    }
    assert_string_equal(r.ev, "mpr");
    assert_true(r.resume_bufsize <= 1024);
    /* lowering the marks under a queued buffer pauses, from the ready queue */
    fill_kernel(fds[0]);
    assert_int_equal(weft_transport_write(t, buf, 100), 0);
    assert_int_equal(weft_transport_set_write_buffer_limits(t, 10, 0), 0);
    assert_string_equal(r.ev, "mpr");
    step(loop);
    assert_string_equal(r.ev, "mprp");
    weft_transport_abort(t);
    step(loop);
    close(fds[1]);
    rec_free(&r);
    rec_free(&peer);
    finish(loop);
}

/* The marks: asyncio's defaults and validation. */
static void test_write_buffer_limits_defaults_and_validation(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    weft_transport *t;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_empty, NULL, &t), 0);
    size_t hi = 0, lo = 0;
    assert_int_equal(weft_transport_get_write_buffer_limits(t, &hi, &lo), 0);
    assert_int_equal(hi, 64 * 1024);
    assert_int_equal(lo, 16 * 1024);
    static const struct {
        long high, low;
        int rc;
        size_t hi, lo;
    } cases[] = {
        {-1, -1, 0, 65536, 16384},
        {-1, 100, 0, 400, 100},
        {1000, -1, 0, 1000, 250},
        {0, 0, 0, 0, 0},
        {5, 5, 0, 5, 5},
        {10, 20, -EINVAL, 5, 5},
        {-1, LONG_MAX, -EINVAL, 5, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(weft_transport_set_write_buffer_limits(t, cases[i].high, cases[i].low),
                         cases[i].rc);
        assert_int_equal(weft_transport_get_write_buffer_limits(t, &hi, NULL), 0);
        assert_int_equal(weft_transport_get_write_buffer_limits(t, NULL, &lo), 0);
        assert_int_equal(hi, cases[i].hi);
        assert_int_equal(lo, cases[i].lo);
    }
    assert_int_equal(weft_transport_set_write_buffer_limits(NULL, -1, -1), -EINVAL);
    assert_int_equal(weft_transport_get_write_buffer_limits(NULL, &hi, &lo), -EINVAL);
    assert_int_equal(weft_transport_get_write_buffer_size(NULL), 0);
    assert_int_equal(weft_transport_dropped_writes(NULL), 0);
    weft_transport_close(t);
    step(loop);
    close(fds[1]);
    finish(loop);
}

/* A peer that never reads: a writer that respects pause_writing stops at
 * the high-water mark; the buffer never exceeds high plus one write. */
static void test_a_writer_that_respects_pause_stops_at_the_high_mark(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    rec_t r = {0};
    weft_transport *t;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    step(loop);
    enum { CHUNK = 4096 };
    static unsigned char buf[CHUNK];
    size_t max = 0, written = 0;
    for (int i = 0; i < 2000; i++) {
        if (!r.paused) {
            assert_int_equal(weft_transport_write(t, buf, CHUNK), 0);
            written += CHUNK;
        }
        size_t n = weft_transport_get_write_buffer_size(t);
        max = n > max ? n : max;
        step(loop);
    }
    assert_true(r.paused);
    assert_string_equal(r.ev, "mp");
    assert_true(max > WEFT_WRITE_HIGH_DEFAULT);
    assert_true(max <= WEFT_WRITE_HIGH_DEFAULT + CHUNK);
    assert_int_equal(weft_transport_get_write_buffer_size(t), max);
    assert_true(written < 8u * 1024 * 1024);
    weft_transport_abort(t);
    step(loop);
    close(fds[1]);
    rec_free(&r);
    finish(loop);
}

/* =============================================================================
 * Extra info, set_protocol
 * ========================================================================== */

static void test_extra_info_and_set_protocol(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    tcp_pair(fds);
    rec_t r = {0}, r2 = {0};
    weft_transport *t;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    step(loop);
    assert_int_equal(weft_transport_fd(t), fds[0]);
    assert_ptr_equal(weft_transport_loop(t), loop);
    assert_ptr_equal(weft_transport_protocol_ud(t), &r);
    struct sockaddr_in a, b;
    socklen_t len = sizeof a, blen = sizeof b;
    assert_int_equal(weft_transport_sockname(t, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(len, sizeof a);
    assert_int_equal(getsockname(fds[0], (struct sockaddr *)&b, &blen), 0);
    assert_memory_equal(&a, &b, sizeof a);
    len = sizeof a;
    blen = sizeof b;
    assert_int_equal(weft_transport_peername(t, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(getsockname(fds[1], (struct sockaddr *)&b, &blen), 0);
    assert_int_equal(a.sin_port, b.sin_port);
    assert_int_equal(a.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    assert_int_equal(weft_transport_sockname(t, NULL, &len), -EINVAL);
    assert_int_equal(weft_transport_peername(t, (struct sockaddr *)&a, NULL), -EINVAL);
    assert_int_equal(weft_transport_sockname(NULL, (struct sockaddr *)&a, &len), -EINVAL);
    assert_int_equal(weft_transport_fd(NULL), -1);
    assert_null(weft_transport_loop(NULL));
    assert_null(weft_transport_protocol_ud(NULL));
    /* set_protocol: the next callbacks go to the new one */
    assert_int_equal(weft_transport_set_protocol(t, NULL, &r2), -EINVAL);
    assert_int_equal(weft_transport_set_protocol(NULL, &k_proto, &r2), -EINVAL);
    assert_int_equal(weft_transport_set_protocol(t, &k_proto, &r2), 0);
    assert_ptr_equal(weft_transport_protocol_ud(t), &r2);
    assert_int_equal(write(fds[1], "new", 3), 3);
    RUN_UNTIL(loop, r2.n == 3);
    assert_int_equal(r.n, 0);
    close(fds[1]);
    RUN_UNTIL(loop, strchr(r2.ev, 'l'));
    assert_string_equal(r.ev, "m");
    assert_string_equal(r2.ev, "del");
    /* a pipe has no addresses */
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(weft_transport_wrap(loop, p[0], &k_empty, NULL, &t), 0);
    len = sizeof a;
    assert_int_equal(weft_transport_sockname(t, (struct sockaddr *)&a, &len), -ENOTSOCK);
    assert_int_equal(weft_transport_peername(t, (struct sockaddr *)&a, &len), -ENOTSOCK);
    weft_transport_close(t);
    step(loop);
    close(p[1]);
    rec_free(&r);
    rec_free(&r2);
    finish(loop);
}

/* =============================================================================
 * Pipes
 * ========================================================================== */

/* A pipe's read end: the data, then EOF closes it, connection_lost(0); it
 * is never written. */
static void test_pipe_read_end_gets_data_then_eof(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    rec_t r = {.keep_open = true}; /* a read-only fd closes at EOF anyway */
    weft_transport *t;
    assert_int_equal(weft_transport_wrap(loop, p[0], &k_proto, &r, &t), 0);
    assert_false(weft_transport_can_write_eof(t));
    assert_int_equal(weft_transport_write(t, "x", 1), -ENOTSUP);
    assert_int_equal(weft_transport_write_eof(t), -ENOTSUP);
    assert_int_equal(write(p[1], "abc", 3), 3);
    close(p[1]);
    RUN_UNTIL(loop, strchr(r.ev, 'l'));
    assert_string_equal(r.ev, "mdel");
    assert_int_equal(r.lost_err, 0);
    assert_memory_equal(r.data, "abc", 3);
    assert_false(fd_open(p[0]));
    rec_free(&r);
    finish(loop);
}

/* A pipe's write end: writes arrive, write_eof closes it (the reader sees
 * EOF, connection_lost(0)); never read. */
static void test_pipe_write_end_write_eof_closes_it(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int p[2];
    assert_int_equal(pipe(p), 0);
    rec_t r = {0};
    weft_transport *t;
    assert_int_equal(weft_transport_wrap(loop, p[1], &k_proto, &r, &t), 0);
    step(loop);
    assert_true(weft_transport_can_write_eof(t));
    assert_false(weft_transport_is_reading(t));
    assert_int_equal(weft_transport_write(t, "xyz", 3), 0);
    char buf[8];
    assert_int_equal(read(p[0], buf, sizeof buf), 3);
    assert_memory_equal(buf, "xyz", 3);
    assert_int_equal(weft_transport_write_eof(t), 0);
    step(loop);
    assert_string_equal(r.ev, "ml");
    assert_int_equal(r.lost_err, 0);
    assert_false(fd_open(p[1]));
    assert_int_equal(read(p[0], buf, sizeof buf), 0);
    close(p[0]);
    rec_free(&r);
    finish(loop);
}

/* The reader of a write pipe closing: connection_lost(0) with nothing
 * queued, -EPIPE with data queued (SIGPIPE is ignored here: for pipes that
 * is the caller's job, as net.h says). */
static void test_pipe_reader_closing(void **state)
{
    (void)state;
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    for (int with_data = 0; with_data < 2; with_data++) {
        weft_loop *loop = tloop();
        int p[2];
        assert_int_equal(pipe(p), 0);
        rec_t r = {0};
        weft_transport *t;
        if (with_data)
            fill_kernel(p[1]);
        assert_int_equal(weft_transport_wrap(loop, p[1], &k_proto, &r, &t), 0);
        step(loop);
        if (with_data) {
            assert_int_equal(weft_transport_write(t, "queued", 6), 0);
            assert_int_equal(weft_transport_get_write_buffer_size(t), 6);
        }
        close(p[0]);
        RUN_UNTIL(loop, strchr(r.ev, 'l'));
        assert_string_equal(r.ev, "ml");
        assert_int_equal(r.lost_err, with_data ? -EPIPE : 0);
        assert_false(fd_open(p[1]));
        rec_free(&r);
        finish(loop);
    }
    signal(SIGPIPE, old);
}

/* =============================================================================
 * Bad input
 * ========================================================================== */

static void test_wrap_refuses_bad_input(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    assert_int_equal(weft_transport_wrap(NULL, fds[0], &k_proto, NULL, NULL), -EINVAL);
    assert_int_equal(weft_transport_wrap(loop, fds[0], NULL, NULL, NULL), -EINVAL);
    assert_int_equal(weft_transport_wrap(loop, -1, &k_proto, NULL, NULL), -EINVAL);
    int dead = dup(fds[0]);
    close(dead);
    assert_int_equal(weft_transport_wrap(loop, dead, &k_proto, NULL, NULL), -EBADF);
    /* a regular file: not pollable */
    char path[] = "/tmp/weft_transport_XXXXXX";
    int f = mkstemp(path);
    assert_true(f >= 0);
    unlink(path);
    assert_int_equal(weft_transport_wrap(loop, f, &k_proto, NULL, NULL), -EPERM);
    assert_true(fd_open(f));
    close(f);
    /* an fd the loop already watches */
    weft_transport *t;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_empty, NULL, &t), 0);
    weft_transport *t2 = (weft_transport *)&t2;
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_empty, NULL, &t2), -EEXIST);
    assert_ptr_equal(t2, (weft_transport *)&t2); /* *out untouched */
    /* a datagram socket and a listening one are not connected streams */
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(weft_transport_wrap(loop, u, &k_proto, NULL, NULL), -EINVAL);
    assert_false(nonblocking(u));
    close(u);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(weft_transport_wrap(loop, l, &k_proto, NULL, NULL), -EINVAL);
    assert_false(nonblocking(l));
    close(l);
    /* the calls on a NULL transport */
    assert_int_equal(weft_transport_write(NULL, "x", 1), -EINVAL);
    assert_int_equal(weft_transport_write(t, NULL, 1), -EINVAL);
    assert_int_equal(weft_transport_write(t, NULL, 0), 0);
    assert_int_equal(weft_transport_write_eof(NULL), -EINVAL);
    assert_int_equal(weft_transport_close(NULL), -EINVAL);
    assert_int_equal(weft_transport_abort(NULL), -EINVAL);
    assert_false(weft_transport_is_closing(NULL));
    assert_false(weft_transport_can_write_eof(NULL));
    /* after close: WEFT_ESTATE */
    assert_int_equal(weft_transport_close(t), 0);
    assert_int_equal(weft_transport_write(t, "x", 1), WEFT_ESTATE);
    assert_int_equal(weft_transport_write_eof(t), WEFT_ESTATE);
    step(loop);
    close(fds[1]);
    /* a closed loop */
    unix_pair(fds);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, NULL, NULL), WEFT_ECLOSED);
    assert_false(nonblocking(fds[0]));
    close(fds[0]);
    close(fds[1]);
    finish(loop);
}

/* =============================================================================
 * Allocation failure, loop close
 * ========================================================================== */

/* Each allocation wrap makes (the loop's net layer with its read buffer,
 * the transport, the fd table's growth) fails cleanly: -ENOMEM, the fd
 * left open and blocking, nothing leaked; the next try succeeds. */
static void test_wrap_survives_allocation_failure_at_each_site(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    /* a high fd, so that the loop's fd table has to grow */
    int hi = fcntl(fds[0], F_DUPFD, 200);
    assert_true(hi >= 200);
    close(fds[0]);
    rec_t r = {0};
    int rc = -1, sites = 0;
    for (long k = 1; rc != 0; k++) {
        long live = alloc_live();
        alloc_fail_at(alloc_calls() + k);
        rc = weft_transport_wrap(loop, hi, &k_proto, &r, NULL);
        alloc_fail_at(0);
        if (rc == 0)
            break;
        sites++;
        assert_int_equal(rc, -ENOMEM);
        assert_true(fd_open(hi));
        assert_false(nonblocking(hi));
        assert_true(alloc_live() <= live + 1); /* at most the kept net layer */
        assert_int_equal(r.nev, 0);
        assert_true(k < 20);
    }
    assert_true(sites >= 2);
    step(loop);
    assert_string_equal(r.ev, "m");
    weft_transport_close(r.t);
    step(loop);
    assert_false(fd_open(hi));
    close(fds[1]);
    rec_free(&r);
    finish(loop);
}

/* The write buffer's allocation and growth failing: with nothing sent the
 * write fails with -ENOMEM and queues nothing; a buffer that cannot grow
 * stays as it was; a write the kernel took part of and whose rest cannot
 * be kept tears the stream, so the connection is lost with -ENOMEM. */
static void test_write_buffer_allocation_failure(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int fds[2];
    unix_pair(fds);
    rec_t r = {0}, peer = {0};
    weft_transport *t;
    fill_kernel(fds[0]);
    assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
    step(loop);
    long live = alloc_live();
    alloc_fail_at(alloc_calls() + 1);
    assert_int_equal(weft_transport_write(t, "lost", 4), -ENOMEM);
    alloc_fail_at(0);
    assert_int_equal(weft_transport_get_write_buffer_size(t), 0);
    assert_int_equal(alloc_live(), live);
    assert_false(weft_transport_is_closing(t));
    assert_int_equal(weft_transport_write(t, "kept", 4), 0);
    assert_int_equal(weft_transport_get_write_buffer_size(t), 4);
    /* growth */
    static unsigned char big[1 << 20]; /* more than a socket buffer */
    alloc_fail_at(alloc_calls() + 1);
    assert_int_equal(weft_transport_write(t, big, sizeof big), -ENOMEM);
    struct iovec iov[1] = {{big, sizeof big}};
    alloc_fail_at(alloc_calls() + 1);
    assert_int_equal(weft_transport_writev(t, iov, 1), -ENOMEM);
    alloc_fail_at(0);
    assert_int_equal(weft_transport_get_write_buffer_size(t), 4);
    assert_int_equal(weft_transport_write(t, "more", 4), 0);
    while (weft_transport_get_write_buffer_size(t) > 0) {
        raw_drain(fds[1], &peer);
        assert_int_equal(weft_loop_run_once(loop), 0);
    }
    raw_drain(fds[1], &peer);
    assert_memory_equal(peer.data + peer.n - 8, "keptmore", 8);
    /* a partly sent write: the rest cannot be kept */
    alloc_fail_at(alloc_calls() + 1);
    assert_int_equal(weft_transport_write(t, big, sizeof big), -ENOMEM);
    alloc_fail_at(0);
    assert_true(weft_transport_is_closing(t));
    step(loop);
    assert_string_equal(r.ev, "ml");
    assert_int_equal(r.lost_err, -ENOMEM);
    close(fds[1]);
    rec_free(&r);
    rec_free(&peer);
    finish(loop);
}

/* The loop closing with transports open: each gets connection_lost
 * (WEFT_ECLOSED), its fd is closed and its memory freed. */
static void test_loop_close_releases_open_transports(void **state)
{
    (void)state;
    weft_loop *loop = tloop();
    int a[2], b[2];
    unix_pair(a);
    unix_pair(b);
    rec_t ra = {0}, rb = {0}, rc_ = {0};
    weft_transport *ta, *tb;
    fill_kernel(a[0]);
    assert_int_equal(weft_transport_wrap(loop, a[0], &k_proto, &ra, &ta), 0);
    assert_int_equal(weft_transport_wrap(loop, b[0], &k_proto, &rb, &tb), 0);
    step(loop);
    assert_int_equal(weft_transport_write(ta, "queued", 6), 0); /* a buffer to free */
    int c = dup(b[1]);
    assert_int_equal(weft_transport_wrap(loop, c, &k_proto, &rc_, NULL), 0); /* never made */
    assert_int_equal(weft_loop_close(loop), 0);
    assert_string_equal(ra.ev, "ml");
    assert_string_equal(rb.ev, "ml");
    assert_string_equal(rc_.ev, "l");
    assert_int_equal(ra.lost_err, WEFT_ECLOSED);
    assert_int_equal(rb.lost_err, WEFT_ECLOSED);
    assert_int_equal(rc_.lost_err, WEFT_ECLOSED);
    assert_false(fd_open(a[0]));
    assert_false(fd_open(b[0]));
    assert_false(fd_open(c));
    close(a[1]);
    close(b[1]);
    rec_free(&ra);
    rec_free(&rb);
    rec_free(&rc_);
    finish(loop);
}

/* close or abort before connection_made ran: connection_made still comes
 * first, then connection_lost(0), both from the ready queue. */
static void test_close_before_connection_made_keeps_the_order(void **state)
{
    (void)state;
    for (int ab = 0; ab < 2; ab++) {
        weft_loop *loop = tloop();
        int fds[2];
        unix_pair(fds);
        rec_t r = {0};
        weft_transport *t;
        assert_int_equal(weft_transport_wrap(loop, fds[0], &k_proto, &r, &t), 0);
        assert_int_equal(ab ? weft_transport_abort(t) : weft_transport_close(t), 0);
        assert_int_equal(r.nev, 0);
        step(loop);
        assert_string_equal(r.ev, "ml");
        assert_int_equal(r.lost_err, 0);
        assert_false(fd_open(fds[0]));
        close(fds[1]);
        rec_free(&r);
        finish(loop);
    }
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
        TEST(test_writev_sends_every_buffer_in_order),
        TEST(test_write_eof_half_closes_both_directions),
        TEST(test_write_eof_waits_for_the_buffer),
        TEST(test_eof_received_true_keeps_writing_false_closes),
        TEST(test_abort_drops_the_buffer_and_loses_from_the_ready_queue),
        TEST(test_peer_reset_loses_with_econnreset),
        TEST(test_writes_after_the_loss_are_dropped_and_counted),
        TEST(test_sigpipe_is_never_raised),
        TEST(test_pause_and_resume_reading),
        TEST(test_pause_writing_above_high_resume_at_low),
        TEST(test_write_buffer_limits_defaults_and_validation),
        TEST(test_a_writer_that_respects_pause_stops_at_the_high_mark),
        TEST(test_extra_info_and_set_protocol),
        TEST(test_pipe_read_end_gets_data_then_eof),
        TEST(test_pipe_write_end_write_eof_closes_it),
        TEST(test_pipe_reader_closing),
        TEST(test_wrap_refuses_bad_input),
        TEST(test_wrap_survives_allocation_failure_at_each_site),
        TEST(test_write_buffer_allocation_failure),
        TEST(test_loop_close_releases_open_transports),
        TEST(test_close_before_connection_made_keeps_the_order),
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
