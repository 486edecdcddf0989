/* http_get.c - ten HTTP GETs one after another, then all at once.
 *
 *     http_get [URL]           URL: http://HOST[:PORT][/PATH]
 *
 * The asyncio classic: the same ten requests take ten round trips in
 * sequence, and about one when they run as tasks at once.
 *
 *     def blocking():                        # one after another
 *         for _ in range(10):
 *             print(url, '=>', requests.get(url).status_code)
 *
 *     async def concurrent():                # all at once
 *         async with aiohttp.ClientSession() as session:
 *             rs = await asyncio.gather(*(session.get(url) for _ in range(10)))
 *         for r in rs:
 *             print(url, '=>', r.status)
 *
 * Each GET is a coroutine on streams: open_connection, write the request
 * (HTTP/1.1, "Connection: close"), readline for the status line, readline
 * for each header, readexactly for a Content-Length body (else read to
 * EOF), close and wait_closed.  The first run awaits it ten times in a row
 * (WEFT_CALL: an inline child frame, like `await fetch()`); the second
 * spawns ten tasks and gathers them (asyncio.gather).
 *
 * Without a URL it serves one itself, in the same loop: a task-per-
 * connection server on 127.0.0.1, port 0, that answers every request after
 * 200 ms, so that the difference shows on any machine without a network
 * (about 2 s one after another, 0.2 s at once).  examples/http_server.c
 * --delay-ms 200 is the same server as a program of its own.
 *
 * It runs on the real clock (it does not read WEFT_CLOCK), so its times
 * vary a little; its test checks the ratio of the two times.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <weft.h>

#define N_REQUESTS 10

/* A parsed http:// URL. */
struct target {
    char host[256];
    int port;
    char path[1024];
};

static int parse_url(const char *url, struct target *t)
{
    if (strncmp(url, "http://", 7) != 0)
        return -EINVAL;
    const char *h = url + 7, *end;
    size_t hlen;
    if (*h == '[') { /* [v6 address] */
        end = strchr(h, ']');
        if (!end)
            return -EINVAL;
        h++;
        hlen = (size_t)(end - h);
        end++;
    } else {
        end = h + strcspn(h, ":/");
        hlen = (size_t)(end - h);
    }
    if (!hlen || hlen >= sizeof t->host)
        return -EINVAL;
    memcpy(t->host, h, hlen);
    t->host[hlen] = '\0';
    t->port = 80;
    if (*end == ':') {
        char *e;
        long p = strtol(end + 1, &e, 10);
        if (e == end + 1 || p <= 0 || p > 65535 || (*e && *e != '/'))
            return -EINVAL;
        t->port = (int)p;
        end = e;
    }
    if (strlen(*end ? end : "/") >= sizeof t->path)
        return -EINVAL;
    strcpy(t->path, *end ? end : "/");
    return 0;
}

/* ---- the client: one GET, its status code as the result ----------------------- */

struct fetch {
    WEFT_FRAME(int);
    const struct target *t;
    weft_stream *s;
    const weft_bytes *line;
    long length; /* Content-Length, -1: read to EOF */
    int err;
    char req[1400];
};

WEFT_ASYNC(fetch)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_open_connection(loop, self->t->host, self->t->port, NULL));
    self->s = WEFT_RESULT(self).p;
    snprintf(self->req, sizeof self->req,
             "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: weft-http-get\r\n"
             "Connection: close\r\n\r\n",
             self->t->path, self->t->host, self->t->port);
    if (weft_stream_write(self->s, self->req, strlen(self->req)) < 0)
        WEFT_THROW(self, -EIO);
    WEFT_AWAIT(self, weft_stream_drain(self->s));

    /* "HTTP/1.1 200 OK" */
    WEFT_AWAIT(self, weft_stream_readline(self->s));
    self->line = WEFT_RESULT(self).p;
    if (strncmp(self->line->data, "HTTP/1.", 7) != 0 || strlen(self->line->data) < 12)
        WEFT_THROW_MSG(self, -EPROTO, "not an HTTP response");
    self->result = atoi(self->line->data + 9);

    /* Headers until the blank line: only Content-Length matters here. */
    self->length = -1;
    for (;;) {
        WEFT_AWAIT(self, weft_stream_readline(self->s));
        self->line = WEFT_RESULT(self).p;
        if (!self->line->len)
            WEFT_THROW_MSG(self, WEFT_EINCOMPLETE, "EOF inside the response head");
        if (self->line->data[0] == '\r' || self->line->data[0] == '\n')
            break;
        if (strncasecmp(self->line->data, "Content-Length:", 15) == 0)
            self->length = strtol(self->line->data + 15, NULL, 10);
    }
    /* The body (not printed: the status is what this example is about). */
    if (self->length >= 0)
        WEFT_AWAIT(self, weft_stream_readexactly(self->s, self->length));
    else
        WEFT_AWAIT(self, weft_stream_read(self->s, -1));

    weft_stream_close(self->s); /* writer.close(); await writer.wait_closed() */
    WEFT_TRY_AWAIT(self, weft_stream_wait_closed(self->s), self->err);
    WEFT_FINALLY;
    weft_stream_free(self->s);
    WEFT_END;
}

/* ---- the built-in server: every answer after 200 ms ------------------------------ */

struct slow_http {
    WEFT_STREAM_FRAME;
    int err;
};

WEFT_ASYNC(slow_http)
{
    static const char response[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                   "Content-Length: 16\r\nConnection: close\r\n\r\n"
                                   "hello from weft\n";
    WEFT_BEGIN(self);
    /* The request head, up to its blank line (the request is not parsed). */
    WEFT_TRY_AWAIT(self, weft_stream_readuntil(self->stream, "\r\n\r\n", 4), self->err);
    if (self->err)
        WEFT_RETURN(self, 0); /* the client went away */
    WEFT_SLEEP(self, 0.2);
    weft_stream_write(self->stream, response, sizeof response - 1);
    WEFT_AWAIT(self, weft_stream_drain(self->stream));
    WEFT_END; /* weft closes the stream: "Connection: close" */
}

/* ---- main -------------------------------------------------------------------------- */

struct main_co {
    WEFT_FRAME(int);
    const char *url;
    struct target t;
    char own_url[64];
    weft_server *server;
    struct fetch one;
    int i, ok;
    double t0, seq, conc;
    weft_future *tasks[N_REQUESTS];
};

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    if (!self->url) {
        WEFT_AWAIT(self, weft_start_server(loop, WEFT_STREAM_HANDLER(slow_http), NULL, "127.0.0.1",
                                           0, NULL));
        self->server = WEFT_RESULT(self).p;
        snprintf(self->own_url, sizeof self->own_url, "http://127.0.0.1:%d/",
                 weft_server_port(self->server));
        self->url = self->own_url;
        printf("no URL given: serving %s in this loop, each answer after 200 ms\n", self->url);
    }
    if (parse_url(self->url, &self->t) < 0)
        WEFT_THROW_MSG(self, -EINVAL, "not an http:// URL: %s", self->url);

    printf("%d requests one after another:\n", N_REQUESTS);
    self->t0 = weft_loop_time(loop);
    for (self->i = 0; self->i < N_REQUESTS; self->i++) {
        WEFT_CALL(self, fetch, &self->one, .t = &self->t);
        printf("%s => %d\n", self->url, self->one.result);
    }
    self->seq = weft_loop_time(loop) - self->t0;
    printf("sequential: %d requests in %.2f s\n", N_REQUESTS, self->seq);

    printf("%d requests at once:\n", N_REQUESTS);
    self->t0 = weft_loop_time(loop);
    for (self->i = 0; self->i < N_REQUESTS; self->i++)
        self->tasks[self->i] = WEFT_SPAWN(loop, fetch, .t = &self->t);
    /* return_exceptions=True: every outcome, failures included. */
    WEFT_AWAIT(self, weft_gather(loop, self->tasks, N_REQUESTS, WEFT_GATHER_ALL));
    {
        const weft_results *r = WEFT_RESULT(self).p;
        for (size_t k = 0; k < N_REQUESTS; k++) {
            weft_value v;
            int err = weft_results_get(r, k, &v);
            if (err == 0) {
                printf("%s => %d\n", self->url, (int)v.i);
                self->ok++;
            } else {
                printf("%s => error: %s\n", self->url, weft_strerror(err));
            }
        }
    }
    self->conc = weft_loop_time(loop) - self->t0;
    printf("concurrent: %d requests in %.2f s (%.1fx faster)\n", N_REQUESTS, self->conc,
           self->conc > 0 ? self->seq / self->conc : 0.0);
    if (self->ok != N_REQUESTS)
        WEFT_THROW_MSG(self, -EIO, "%d of %d requests failed", N_REQUESTS - self->ok, N_REQUESTS);
    WEFT_FINALLY;
    weft_server_free(self->server);
    WEFT_END;
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: http_get [http://HOST[:PORT][/PATH]]\n");
        return 2;
    }
    const weft_loop_options lo = {.backend = getenv("WEFT_BACKEND")};
    int err = WEFT_RUN(&lo, NULL, main_co, .url = argc == 2 ? argv[1] : NULL);
    if (err < 0) {
        fprintf(stderr, "http_get: %s\n", weft_strerror(err));
        return 1;
    }
    return 0;
}
