/* soak.c - 10,000 concurrent connections to a weft echo server, every byte
 * verified, the server's memory flat from round to round.
 *
 *   weft-soak [--conns N] [--bytes B] [--rounds R] [--streams] [--backend NAME]
 *
 * Forks: the child is a weft echo server on 127.0.0.1, port 0 (the
 * protocol level of bench/weft_echo.c, or with --streams one task per
 * connection); the parent is the load, a weft loop of its own with one
 * protocol per connection.  Each round, the parent opens N connections
 * (default 10,000; at most 256 connects in flight, so that the listen
 * backlog never overflows), and once all N are open at the same time,
 * every connection sends B bytes (default 16 KiB) of its own pseudo-random
 * stream in chunks of random size (1..1024 bytes), keeping at most 4 KiB
 * unanswered, and checks every echoed byte against the same stream.  A
 * connection that has all its bytes back closes; the round ends when all
 * have.  Then, after a short pause for the server to see the closes, the
 * parent reads the server's resident size from /proc/PID/statm.
 *
 * Pass: every byte of every round verified, no connection lost with an
 * error, and the server's resident size after each later round at most
 * 1 MiB above its size after the first (which warmed its pools up): no
 * memory that grows with the connections served.  Prints one line per
 * round and a verdict; exits 0 on pass, 1 on failure.
 *
 * Needs 10,000 + some fds in each process: the soft RLIMIT_NOFILE is
 * raised to the hard limit (ulimit -Hn must be at least N + 100).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

#define SOAK_DIE(...)                               \
    do {                                            \
        fprintf(stderr, "weft-soak: " __VA_ARGS__); \
        fputc('\n', stderr);                        \
        exit(1);                                    \
    } while (0)

#define CONNECTS_IN_FLIGHT 256
#define WINDOW 4096
#define CHUNK_MAX 1024
#define RSS_SLACK (1024 * 1024)

/* The byte at offset k of stream `seed`: splitmix64's finalizer of the
 * 8-byte block k / 8, byte k % 8.  Stateless, so sender and checker need
 * only their offsets. */
static inline uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static inline unsigned char stream_byte(uint64_t seed, uint64_t k)
{
    return (unsigned char)(mix64(seed ^ (k >> 3) * 0x100000001b3u) >> ((k & 7) * 8));
}

/* ---- the server (child) ---------------------------------------------------------- */

static void srv_data(weft_transport *t, const void *data, size_t n, void *ud)
{
    (void)ud;
    if (weft_transport_write(t, data, n) < 0)
        weft_transport_abort(t);
}

static void srv_pause(weft_transport *t, void *ud)
{
    (void)ud;
    weft_transport_pause_reading(t);
}

static void srv_resume(weft_transport *t, void *ud)
{
    (void)ud;
    weft_transport_resume_reading(t);
}

static const weft_protocol srv_protocol = {
    .data_received = srv_data,
    .pause_writing = srv_pause,
    .resume_writing = srv_resume,
};

static int srv_factory(weft_server *s, void *arg, void **ud)
{
    (void)s;
    (void)arg;
    *ud = NULL;
    return 0;
}

struct srv_echo {
    WEFT_STREAM_FRAME;
    const weft_bytes *b;
};

WEFT_ASYNC(srv_echo)
{
    WEFT_BEGIN(self);
    for (;;) {
        WEFT_AWAIT(self, weft_stream_read(self->stream, 65536));
        self->b = WEFT_RESULT(self).p;
        if (!self->b->len || weft_stream_write(self->stream, self->b->data, self->b->len) < 0)
            break;
        WEFT_AWAIT(self, weft_stream_drain(self->stream));
    }
    WEFT_END;
}

/* The parent closing the control pipe stops the server. */
static void srv_control(weft_io *w, unsigned events)
{
    (void)events;
    weft_loop_stop(weft_io_loop(w));
}

static int run_server(int port_fd, int control_fd, bool streams, const char *backend)
{
    weft_loop *loop;
    weft_loop_options lo = {.backend = backend};
    int err = weft_loop_new(&loop, &lo);
    if (err < 0)
        SOAK_DIE("server loop: %s", weft_strerror(err));
    weft_io ctl;
    if ((err = weft_io_init(&ctl, loop, control_fd, srv_control)) < 0 ||
        (err = weft_io_start(&ctl, WEFT_READABLE)) < 0)
        SOAK_DIE("server control pipe: %s", weft_strerror(err));
    weft_server_opts so = {.backlog = 4096};
    weft_stream_opts sto = {.server = &so};
    weft_future *f =
        streams ? weft_start_server(loop, WEFT_STREAM_HANDLER(srv_echo), NULL, "127.0.0.1", 0, &sto)
                : weft_create_server(loop, &srv_protocol, srv_factory, NULL, "127.0.0.1", 0, &so);
    if (!f || (err = weft_loop_run_until_complete(loop, f)) < 0)
        SOAK_DIE("server: %s", weft_strerror(f ? err : weft_last_error()));
    weft_value v;
    (void)weft_future_result(f, &v);
    weft_future_unref(f);
    weft_server *srv = v.p;
    int port = weft_server_port(srv);
    if (write(port_fd, &port, sizeof port) != (ssize_t)sizeof port)
        SOAK_DIE("server: reporting the port: %s", strerror(errno));
    close(port_fd);
    err = weft_loop_run_forever(loop);
    weft_server_close(srv);
    weft_server_abort_clients(srv);
    weft_future *closed = weft_server_wait_closed(srv);
    if (closed) {
        (void)weft_loop_run_until_complete(loop, closed);
        weft_future_unref(closed);
    }
    weft_server_free(srv);
    weft_io_close(&ctl);
    weft_loop_destroy(loop);
    return err < 0;
}

/* ---- the load (parent) --------------------------------------------------------------- */

struct soak;

struct conn {
    struct soak *soak;
    weft_transport *t;
    uint64_t seed;
    uint64_t sent, recvd;
    bool closed;
};

struct soak {
    weft_loop *loop;
    struct conn *conns;
    long n;
    uint64_t bytes;
    int port;
    pid_t server;
    long rss_open; /* the server's RSS (KiB) once all N were open */
    long next_connect, connecting, connected, finished;
    uint64_t verified;
    int failures;
    bool round_over;
};

/* Record a failure (the first ten are printed) and stop the round. */
static void soak_fail(struct soak *s, const char *what, long id, uint64_t off, int err)
{
    if (s->failures++ < 10)
        fprintf(stderr, "weft-soak: connection %ld: %s at byte %llu%s%s\n", id, what,
                (unsigned long long)off, err ? ": " : "", err ? weft_strerror(err) : "");
    weft_loop_stop(s->loop);
}

/* Send chunks until WINDOW bytes are unanswered or all are sent. */
static void conn_pump(struct conn *c)
{
    unsigned char buf[CHUNK_MAX];
    while (c->sent < c->soak->bytes && c->sent - c->recvd < WINDOW) {
        uint64_t room = WINDOW - (c->sent - c->recvd);
        uint64_t left = c->soak->bytes - c->sent;
        size_t n = 1 + (size_t)(mix64(c->seed + c->sent) % CHUNK_MAX);
        if (n > room)
            n = (size_t)room;
        if (n > left)
            n = (size_t)left;
        for (size_t i = 0; i < n; i++)
            buf[i] = stream_byte(c->seed, c->sent + i);
        int err = weft_transport_write(c->t, buf, n);
        if (err < 0) {
            soak_fail(c->soak, "write failed", c - c->soak->conns, c->sent, err);
            return;
        }
        c->sent += n;
    }
}

static long rss_kib(pid_t pid);

static void conn_made(weft_transport *t, void *ud)
{
    struct conn *c = ud;
    struct soak *s = c->soak;
    c->t = t;
    if (++s->connected == s->n) { /* all open at once: go */
        s->rss_open = rss_kib(s->server);
        for (long i = 0; i < s->n; i++)
            conn_pump(&s->conns[i]);
    }
}

static void conn_data(weft_transport *t, const void *data, size_t n, void *ud)
{
    struct conn *c = ud;
    const unsigned char *p = data;
    (void)t;
    if (c->recvd + n > c->sent) {
        soak_fail(c->soak, "more bytes back than sent", c - c->soak->conns, c->recvd, 0);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] != stream_byte(c->seed, c->recvd + i)) {
            soak_fail(c->soak, "wrong byte", c - c->soak->conns, c->recvd + i, 0);
            return;
        }
    }
    c->recvd += n;
    c->soak->verified += n;
    if (c->recvd == c->soak->bytes)
        weft_transport_close(c->t);
    else
        conn_pump(c);
}

static void conn_lost(weft_transport *t, int err, void *ud)
{
    struct conn *c = ud;
    struct soak *s = c->soak;
    (void)t;
    c->t = NULL;
    c->closed = true;
    if (err || c->recvd != s->bytes)
        soak_fail(s, "connection lost", c - s->conns, c->recvd, err);
    if (++s->finished == s->n) {
        s->round_over = true;
        weft_loop_stop(s->loop);
    }
}

static const weft_protocol load_protocol = {
    .connection_made = conn_made,
    .data_received = conn_data,
    .connection_lost = conn_lost,
};

static void connect_next(struct soak *s);

static void connect_done(weft_future *f, void *arg)
{
    struct soak *s = arg;
    int err = weft_future_error(f);
    s->connecting--;
    if (err)
        soak_fail(s, "connect failed", -1, 0, err);
    else
        connect_next(s);
}

static void connect_next(struct soak *s)
{
    while (s->connecting < CONNECTS_IN_FLIGHT && s->next_connect < s->n) {
        struct conn *c = &s->conns[s->next_connect++];
        weft_future *f =
            weft_create_connection(s->loop, &load_protocol, c, "127.0.0.1", s->port, NULL);
        if (!f || weft_future_add_done_callback(f, connect_done, s) < 0) {
            soak_fail(s, "connect failed", c - s->conns, 0, f ? -ENOMEM : weft_last_error());
            weft_future_unref(f);
            return;
        }
        weft_future_unref(f); /* the loop keeps it until the callback ran */
        s->connecting++;
    }
}

static long rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/statm", (long)pid);
    FILE *f = fopen(path, "r");
    long size, resident = -1;
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void stop_cb(void *arg)
{
    weft_loop_stop(arg);
}

int main(int argc, char **argv)
{
    long n = 10000, rounds = 3;
    long long bytes = 16384;
    bool streams = false;
    const char *backend = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--streams") == 0)
            streams = true;
        else if (strcmp(argv[i], "--conns") == 0 && i + 1 < argc)
            n = atol(argv[++i]);
        else if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc)
            bytes = atoll(argv[++i]);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atol(argv[++i]);
        else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            backend = argv[++i];
        else {
            fprintf(stderr, "usage: weft-soak [--conns N] [--bytes B] [--rounds R] [--streams] "
                            "[--backend NAME]\n");
            return 2;
        }
    }
    if (n < 1 || bytes < 1 || rounds < 1)
        SOAK_DIE("--conns, --bytes and --rounds must be positive");

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (long)rl.rlim_cur < n + 100)
        SOAK_DIE("RLIMIT_NOFILE is %ld: %ld connections need %ld", (long)rl.rlim_cur, n, n + 100);

    int port_pipe[2], ctl_pipe[2];
    if (pipe(port_pipe) < 0 || pipe(ctl_pipe) < 0)
        SOAK_DIE("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        SOAK_DIE("fork: %s", strerror(errno));
    if (pid == 0) {
        close(port_pipe[0]);
        close(ctl_pipe[1]);
        _exit(run_server(port_pipe[1], ctl_pipe[0], streams, backend));
    }
    close(port_pipe[1]);
    close(ctl_pipe[0]);
    int port = -1;
    if (read(port_pipe[0], &port, sizeof port) != (ssize_t)sizeof port)
        SOAK_DIE("the server did not start");
    close(port_pipe[0]);

    struct soak s = {.n = n, .bytes = (uint64_t)bytes, .port = port, .server = pid};
    /* Starting 10,000 connections' sends is one long callback: no reports. */
    weft_loop_options lo = {.backend = backend, .lag_threshold_ns = -1};
    int err = weft_loop_new(&s.loop, &lo);
    if (err < 0)
        SOAK_DIE("loop: %s", weft_strerror(err));
    s.conns = calloc((size_t)n, sizeof *s.conns);
    if (!s.conns)
        SOAK_DIE("out of memory");

    printf("weft-soak: %ld connections x %lld bytes, %ld rounds, %s level server (pid %ld, "
           "port %d), %s backend\n",
           n, bytes, rounds, streams ? "stream" : "protocol", (long)pid, port,
           weft_loop_backend(s.loop));
    long rss0 = rss_kib(pid), rss1 = -1, worst = 0;
    printf("server RSS before: %ld KiB\n", rss0);
    fflush(stdout);
    double t_all = now_s();
    for (long r = 1; r <= rounds && !s.failures; r++) {
        for (long i = 0; i < n; i++)
            s.conns[i] = (struct conn){.soak = &s, .seed = mix64((uint64_t)(r * n + i))};
        s.next_connect = s.connecting = s.connected = s.finished = 0;
        s.verified = 0;
        s.round_over = false;
        double t0 = now_s();
        connect_next(&s);
        while (!s.round_over && !s.failures)
            weft_loop_run_forever(s.loop);
        double dt = now_s() - t0;
        /* Let the server see the last closes before measuring it. */
        weft_call_later(s.loop, 0.5, stop_cb, s.loop, NULL);
        weft_loop_run_forever(s.loop);
        long rss = rss_kib(pid);
        if (r == 1)
            rss1 = rss;
        else if (rss - rss1 > worst)
            worst = rss - rss1;
        printf("round %ld: %ld connections open at once (server RSS %ld KiB), %llu bytes "
               "verified in %.2f s; server RSS after the closes %ld KiB\n",
               r, s.connected, s.rss_open, (unsigned long long)s.verified, dt, rss);
        fflush(stdout);
        if (!s.failures && s.verified != (uint64_t)n * (uint64_t)bytes)
            s.failures++;
    }
    double total = now_s() - t_all;

    /* Abort what is left (after a failure), then stop the server. */
    for (long i = 0; i < n; i++)
        if (s.conns[i].t)
            weft_transport_abort(s.conns[i].t);
    weft_call_later(s.loop, 0.1, stop_cb, s.loop, NULL);
    weft_loop_run_forever(s.loop);
    weft_loop_destroy(s.loop);
    free(s.conns);
    close(ctl_pipe[1]);
    int status;
    waitpid(pid, &status, 0);

    bool flat = rounds < 2 || worst <= RSS_SLACK / 1024;
    bool ok = !s.failures && flat && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf("%s: %s; server RSS growth after round 1: %ld KiB (limit %d); server exit %d; "
           "%.1f s in all\n",
           ok ? "PASS" : "FAIL", s.failures ? "errors (see stderr)" : "every byte verified", worst,
           RSS_SLACK / 1024, WIFEXITED(status) ? WEXITSTATUS(status) : -1, total);
    return ok ? 0 : 1;
}
