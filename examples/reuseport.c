/* reuseport.c - several cores: one loop per thread, all on one port.
 *
 *     reuseport                    a demo: 2 server loops, 40 connections
 *     reuseport --threads N --port P   serve with N loops until Ctrl-C
 *
 * One weft loop runs on one thread.  To use several cores, run several
 * loops, one per thread, each with its own server on the same port:
 * weft_server_opts.reuse_port sets SO_REUSEPORT, and the kernel spreads
 * incoming connections over the listening sockets (by a hash of the
 * addresses, on Linux).  The loops share nothing, so nothing needs a lock;
 * a connection stays on the loop that accepted it.  This is how
 * multi-process asyncio servers use SO_REUSEPORT (start_server(...,
 * reuse_port=True) in each worker), with threads instead of processes.
 *
 * Each server here answers a connection with "loop K" (its thread's
 * number) and closes it.  The first loop listens on port 0 and the kernel
 * picks a port; the others then listen on that port.  The demo's client,
 * on the main thread's own loop, connects 40 times and counts who answered;
 * then it stops the server loops from outside with
 * weft_call_soon_threadsafe (the one call other threads may make) and
 * weft_exit, which ends each WEFT_RUN with its usual shutdown.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#define MAX_LOOPS 16
#define DEMO_CONNECTIONS 40

/* One server loop's thread. */
struct worker {
    int index;
    int port; /* in: the port to listen on (0: pick one) */
    pthread_t thread;
    pthread_mutex_t *mu; /* guards the three fields below */
    pthread_cond_t *cv;
    weft_loop *loop;         /* set once listening */
    int listening_port, err; /* the port it got, or the error */
    bool ready;
};

/* A connection: say which loop took it, then weft closes it. */
struct hello {
    WEFT_STREAM_FRAME; /* arg: the worker */
};

WEFT_ASYNC(hello)
{
    const struct worker *w = self->arg;
    WEFT_BEGIN(self);
    {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "loop %d\n", w->index);
        weft_stream_write(self->stream, msg, (size_t)n);
    }
    WEFT_AWAIT(self, weft_stream_drain(self->stream));
    WEFT_END;
}

static void worker_ready(struct worker *w, weft_loop *loop, int port, int err)
{
    pthread_mutex_lock(w->mu);
    w->loop = loop;
    w->listening_port = port;
    w->err = err;
    w->ready = true;
    pthread_cond_broadcast(w->cv);
    pthread_mutex_unlock(w->mu);
}

struct serve {
    WEFT_FRAME(int);
    struct worker *w;
    weft_server_opts so;
    weft_stream_opts sto;
    weft_server *server;
    int err;
};

WEFT_ASYNC(serve)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    self->so.reuse_port = true; /* SO_REUSEPORT: share the port with the other loops */
    self->sto.server = &self->so;
    WEFT_TRY_AWAIT(self,
                   weft_start_server(loop, WEFT_STREAM_HANDLER(hello), self->w, "127.0.0.1",
                                     self->w->port, &self->sto),
                   self->err);
    if (self->err) {
        worker_ready(self->w, NULL, -1, self->err);
        WEFT_THROW(self, self->err);
    }
    self->server = WEFT_RESULT(self).p;
    worker_ready(self->w, loop, weft_server_port(self->server), 0);
    WEFT_AWAIT(self, weft_server_serve_forever(self->server)); /* until weft_exit */
    WEFT_FINALLY;
    weft_server_free(self->server);
    WEFT_END;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const weft_loop_options lo = {.backend = getenv("WEFT_BACKEND")};
    int rc = WEFT_RUN(&lo, NULL, serve, .w = w);
    if (rc < 0)
        fprintf(stderr, "reuseport: loop %d: %s\n", w->index, weft_strerror(rc));
    return NULL;
}

/* Start the workers one by one: the first picks the port, the others
 * share it.  Returns the port, or -1. */
static int start_workers(struct worker *ws, int n, int port, pthread_mutex_t *mu,
                         pthread_cond_t *cv)
{
    for (int i = 0; i < n; i++) {
        ws[i] = (struct worker){.index = i, .port = port, .mu = mu, .cv = cv};
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0)
            return -1;
        pthread_mutex_lock(mu);
        while (!ws[i].ready)
            pthread_cond_wait(cv, mu);
        pthread_mutex_unlock(mu);
        if (ws[i].err) {
            fprintf(stderr, "reuseport: loop %d: %s\n", i, weft_strerror(ws[i].err));
            pthread_join(ws[i].thread, NULL);
            return -1;
        }
        port = ws[i].listening_port;
    }
    return port;
}

/* Runs on a worker's loop (queued from another thread). */
static void stop_loop(void *arg)
{
    weft_exit(arg, 0);
}

static void stop_workers(struct worker *ws, int n)
{
    for (int i = 0; i < n; i++)
        weft_call_soon_threadsafe(ws[i].loop, stop_loop, ws[i].loop);
    for (int i = 0; i < n; i++)
        pthread_join(ws[i].thread, NULL);
}

/* ---- the demo's client ----------------------------------------------------------- */

struct ask {
    WEFT_FRAME(int); /* the loop that answered */
    int port;
    weft_stream *s;
};

WEFT_ASYNC(ask)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_open_connection(loop, "127.0.0.1", self->port, NULL));
    self->s = WEFT_RESULT(self).p;
    WEFT_AWAIT(self, weft_stream_read(self->s, -1)); /* to EOF: "loop K\n" */
    if (sscanf(((const weft_bytes *)WEFT_RESULT(self).p)->data, "loop %d", &self->result) != 1)
        WEFT_THROW(self, -EPROTO);
    WEFT_FINALLY;
    weft_stream_free(self->s);
    WEFT_END;
}

struct client {
    WEFT_FRAME(int);
    int port, nloops;
    int *served; /* per loop */
    struct ask a;
    int i;
};

WEFT_ASYNC(client)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < DEMO_CONNECTIONS; self->i++) {
        WEFT_CALL(self, ask, &self->a, .port = self->port);
        if (self->a.result >= 0 && self->a.result < self->nloops)
            self->served[self->a.result]++;
    }
    WEFT_END;
}

int main(int argc, char **argv)
{
    int nloops = 2, port = 0;
    bool demo = argc == 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            nloops = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
    }
    if ((argc != 1 && argc % 2 == 0) || nloops < 1 || nloops > MAX_LOOPS) {
        fprintf(stderr, "usage: reuseport [--threads N] [--port P]\n");
        return 2;
    }
    struct worker ws[MAX_LOOPS];
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

    if (!demo) {
        /* Serve until SIGINT/SIGTERM, waited for here with the signals
         * blocked (the worker threads inherit the mask). */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        port = start_workers(ws, nloops, port, &mu, &cv);
        if (port < 0)
            return 1;
        printf("%d loops in %d threads serve 127.0.0.1:%d\n", nloops, nloops, port);
        fflush(stdout);
        int sig;
        sigwait(&set, &sig);
        stop_workers(ws, nloops);
        return 0;
    }

    port = start_workers(ws, nloops, 0, &mu, &cv);
    if (port < 0)
        return 1;
    printf("%d loops in %d threads listen on one port (SO_REUSEPORT)\n", nloops, nloops);
    int served[MAX_LOOPS] = {0};
    const weft_loop_options lo = {.backend = getenv("WEFT_BACKEND")};
    int err = WEFT_RUN(&lo, NULL, client, .port = port, .nloops = nloops, .served = served);
    stop_workers(ws, nloops);
    if (err < 0) {
        fprintf(stderr, "reuseport: client: %s\n", weft_strerror(err));
        return 1;
    }
    int total = 0, used = 0;
    printf("%d connections:", DEMO_CONNECTIONS);
    for (int i = 0; i < nloops; i++) {
        printf("%s loop %d served %d", i ? "," : "", i, served[i]);
        total += served[i];
        used += served[i] > 0;
    }
    printf("\n%d of %d answered; the kernel spread them over %d of the %d loops\n", total,
           DEMO_CONNECTIONS, used, nloops);
    return total == DEMO_CONNECTIONS ? 0 : 1;
}
