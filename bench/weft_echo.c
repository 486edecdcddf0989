/* weft_echo.c - weft's echo server for the peer benchmark harness.
 *
 *   weft-echo [--streams] [--backend NAME] PORT
 *
 * Listens on 127.0.0.1:PORT (backlog 4096), echoes every byte back in order
 * on the same connection (weft's TCP servers set TCP_NODELAY on every
 * accepted socket), closes a connection on EOF or error, and exits 0 within a moment of SIGTERM or
 * SIGINT
 * (../shared/bench/README.md, "weft-echo PORT").  Two levels:
 *
 *   default    the protocol level (asyncio's Protocol): data_received hands
 *              weft's read buffer to weft_transport_write, which writes it
 *              at once and copies only what the kernel did not take; when
 *              the write buffer passes its high-water mark, reading pauses
 *              until it drains (pause_writing / resume_writing).  No
 *              per-connection state besides weft's transport.
 *   --streams  the stream level (asyncio's start_server): one task per
 *              connection, read(65536), write, drain, until EOF.
 *
 * bench/weft-echo-streams is `weft-echo --streams` (a script that execs it,
 * so the PID the harness started is the server's): WEFT_ECHO= that path to
 * measure the stream level.
 *
 * SIGTERM: a sigaction handler writes one byte to a pipe the loop watches;
 * its callback stops the loop, then the server closes its clients and
 * exits.
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
#include <unistd.h>

#include "weft.h"

#define ECHO_DIE(...)                               \
    do {                                            \
        fprintf(stderr, "weft-echo: " __VA_ARGS__); \
        fputc('\n', stderr);                        \
        exit(1);                                    \
    } while (0)

/* ---- the protocol level ------------------------------------------------------- */

/* The hot path: the kernel usually takes it all, and nothing is copied. */
static void echo_data(weft_transport *t, const void *data, size_t n, void *ud)
{
    (void)ud;
    if (weft_transport_write(t, data, n) < 0)
        weft_transport_abort(t);
}

/* A peer that sends faster than it reads: stop reading until it catches up. */
static void echo_pause(weft_transport *t, void *ud)
{
    (void)ud;
    weft_transport_pause_reading(t);
}

static void echo_resume(weft_transport *t, void *ud)
{
    (void)ud;
    weft_transport_resume_reading(t);
}

/* connection_made, eof_received and connection_lost are NULL: nothing to
 * set up, and EOF closes the transport. */
static const weft_protocol echo_protocol = {
    .data_received = echo_data,
    .pause_writing = echo_pause,
    .resume_writing = echo_resume,
};

static int echo_factory(weft_server *s, void *arg, void **ud)
{
    (void)s;
    (void)arg;
    *ud = NULL;
    return 0;
}

/* ---- the stream level ----------------------------------------------------------- */

/* Only the stream and arg: the data read is not kept across a suspension
 * (so it is a C local, in a block that ends before the drain's await). */
struct echo_handler {
    WEFT_STREAM_FRAME;
};

WEFT_ASYNC(echo_handler)
{
    WEFT_BEGIN(self);
    for (;;) {
        WEFT_AWAIT(self, weft_stream_read(self->stream, 65536));
        {
            const weft_bytes *b = WEFT_RESULT(self).p;
            if (!b->len)
                break; /* EOF: weft closes the stream when the task ends */
            if (weft_stream_write(self->stream, b->data, b->len) < 0)
                break;
        }
        WEFT_AWAIT(self, weft_stream_drain(self->stream));
    }
    WEFT_END;
}

/* ---- SIGTERM ------------------------------------------------------------------- */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int signo)
{
    int saved = errno;
    char c = (char)signo;
    (void)!write(sig_pipe[1], &c, 1);
    errno = saved;
}

static void on_sig_readable(weft_io *w, unsigned events)
{
    (void)events;
    weft_loop_stop(weft_io_loop(w));
}

static void install_signals(weft_loop *loop, weft_io *w)
{
    if (pipe(sig_pipe) < 0)
        ECHO_DIE("pipe: %s", strerror(errno));
    for (int i = 0; i < 2; i++) {
        fcntl(sig_pipe[i], F_SETFL, O_NONBLOCK);
        fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int err = weft_io_init(w, loop, sig_pipe[0], on_sig_readable);
    if (err == 0)
        err = weft_io_start(w, WEFT_READABLE);
    if (err < 0)
        ECHO_DIE("watching the signal pipe: %s", weft_strerror(err));
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: weft-echo [--streams] [--backend epoll|poll] PORT\n");
    exit(2);
}

int main(int argc, char **argv)
{
    bool streams = false;
    const char *backend = NULL;
    const char *port_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--streams") == 0)
            streams = true;
        else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            backend = argv[++i];
        else if (!port_arg && argv[i][0] != '-')
            port_arg = argv[i];
        else
            usage();
    }
    if (!port_arg)
        usage();
    char *end;
    long port = strtol(port_arg, &end, 10);
    if (*end || port < 0 || port > 65535)
        usage();

    weft_loop *loop;
    /* No slow-callback watchdog: its thread would make the process
     * multi-threaded, and glibc then wraps every read and send in the
     * cancellation-point bookkeeping (about 60 instructions per round trip
     * under callgrind, a fifth of the protocol level's user time). */
    weft_loop_options lo = {.backend = backend, .lag_threshold_ns = -1};
    int err = weft_loop_new(&loop, &lo);
    if (err < 0)
        ECHO_DIE("loop: %s", weft_strerror(err));
    weft_io sig_watch;
    install_signals(loop, &sig_watch);

    weft_server_opts so = {.backlog = 4096};
    weft_future *f;
    if (streams) {
        weft_stream_opts sto = {.server = &so, .task_name = "echo"};
        f = weft_start_server(loop, WEFT_STREAM_HANDLER(echo_handler), NULL, "127.0.0.1", (int)port,
                              &sto);
    } else {
        f = weft_create_server(loop, &echo_protocol, echo_factory, NULL, "127.0.0.1", (int)port,
                               &so);
    }
    if (!f)
        ECHO_DIE("server: %s", weft_strerror(weft_last_error()));
    err = weft_loop_run_until_complete(loop, f);
    if (err < 0)
        ECHO_DIE("listening on 127.0.0.1:%ld: %s", port, weft_strerror(err));
    weft_value v;
    (void)weft_future_result(f, &v);
    weft_future_unref(f);
    weft_server *srv = v.p;
    fprintf(stderr, "weft-echo: %s level, listening on 127.0.0.1:%d (%s)\n",
            streams ? "stream" : "protocol", weft_server_port(srv), weft_loop_backend(loop));

    err = weft_loop_run_forever(loop);
    if (err < 0)
        ECHO_DIE("loop: %s", weft_strerror(err));

    /* Stopped by a signal: stop accepting, drop the clients, wait for them. */
    weft_server_close(srv);
    weft_server_abort_clients(srv);
    weft_future *closed = weft_server_wait_closed(srv);
    if (closed) {
        (void)weft_loop_run_until_complete(loop, closed);
        weft_future_unref(closed);
    }
    weft_server_free(srv);
    weft_io_close(&sig_watch);
    weft_loop_destroy(loop);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    return 0;
}
