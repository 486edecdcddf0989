/* http_server.c - a small HTTP/1.1 server on streams, one task per connection.
 *
 *     http_server [--port N] [--host ADDR] [--delay-ms MS]
 *
 * asyncio's start_server with a handler that speaks just enough HTTP/1.1
 * for curl, wrk and browsers:
 *
 *     async def handle(reader, writer):
 *         while True:
 *             request = await reader.readline()         # GET /path HTTP/1.1
 *             if not request: break                     # the client closed
 *             while (await reader.readline()) not in (b'\r\n', b'\n', b''):
 *                 ...                                   # headers: Connection
 *             await asyncio.sleep(delay)                # --delay-ms
 *             writer.write(b'HTTP/1.1 200 OK\r\n...\r\n\r\nhello from weft\n')
 *             await writer.drain()
 *             if close: break
 *
 *     server = await asyncio.start_server(handle, '127.0.0.1', 8080)
 *     await server.serve_forever()
 *
 * Every method but GET and HEAD gets 405; a malformed request line gets
 * 400.  Connections are kept alive (HTTP/1.1's default) unless the client
 * sends "Connection: close" or speaks HTTP/1.0 without "Connection:
 * keep-alive"; a request with a body (Content-Length) has its body read
 * and ignored.  --delay-ms makes every response wait (the test of
 * examples/http_get.c uses 200 ms): connections wait at once, each in its
 * own task, so ten clients take one delay, not ten.
 *
 * It prints "listening on http://HOST:PORT/" (port 0, the default here
 * being 8080, picks a free one) and serves until Ctrl-C or SIGTERM, which
 * cancel the main task (WEFT_RUN_CANCEL_ON_SIGNALS): the server then
 * closes and the program exits with 128 + the signal's number, as a shell
 * expects.  Try it:
 *
 *     ./http_server --port 8080 &
 *     curl -i http://127.0.0.1:8080/
 *     wrk -t1 -c50 -d5s http://127.0.0.1:8080/
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <weft.h>

#define BODY "hello from weft\n"

/* What the handler needs from main: frames never move, so a pointer to
 * main's frame member is stable. */
struct config {
    double delay; /* seconds */
};

/* Parse "METHOD TARGET HTTP/1.x" into its parts; false if malformed. */
static bool parse_request_line(const char *line, char *method, size_t mlen, int *minor)
{
    const char *sp = strchr(line, ' ');
    if (!sp || sp == line || (size_t)(sp - line) >= mlen)
        return false;
    memcpy(method, line, (size_t)(sp - line));
    method[sp - line] = '\0';
    const char *target = sp + 1;
    const char *sp2 = strchr(target, ' ');
    if (!sp2 || sp2 == target || *target != '/')
        return false;
    if (strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1'))
        return false;
    *minor = sp2[8] - '0';
    return true;
}

/* True if header line (NUL-terminated) is "Name: ..." for name,
 * case-insensitively; *value then points past the colon and blanks. */
static bool header_is(const char *line, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    line += n + 1;
    while (*line == ' ' || *line == '\t')
        line++;
    *value = line;
    return true;
}

/* One connection: requests one after another until the client closes,
 * asks to close, or sends something this server does not understand. */
struct http_conn {
    WEFT_STREAM_FRAME;
    const weft_bytes *line;
    char method[16];
    int minor, status, err;
    bool keep_alive;
    long body_len;
    char head[256];
};

WEFT_ASYNC(http_conn)
{
    const struct config *cfg = self->arg;
    WEFT_BEGIN(self);
    for (;;) {
        /* The request line; a reset or an over-long line ends the
         * connection like EOF (a reset stream has nobody to answer). */
        WEFT_TRY_AWAIT(self, weft_stream_readline(self->stream), self->err);
        if (self->err)
            break;
        self->line = WEFT_RESULT(self).p;
        if (!self->line->len)
            break; /* EOF: the client is done */
        if (strcmp(self->line->data, "\r\n") == 0 || strcmp(self->line->data, "\n") == 0)
            continue; /* a blank line between requests is allowed (RFC 9112) */
        self->keep_alive = true;
        self->body_len = 0;
        if (!parse_request_line(self->line->data, self->method, sizeof self->method,
                                &self->minor)) {
            self->status = 400;
            self->keep_alive = false;
        } else {
            self->status =
                strcmp(self->method, "GET") == 0 || strcmp(self->method, "HEAD") == 0 ? 200 : 405;
            self->keep_alive = self->minor == 1; /* HTTP/1.0 closes by default */
        }

        /* The headers, up to the blank line. */
        for (;;) {
            WEFT_TRY_AWAIT(self, weft_stream_readline(self->stream), self->err);
            if (self->err)
                break;
            self->line = WEFT_RESULT(self).p;
            if (!self->line->len) {
                self->err = WEFT_EINCOMPLETE; /* EOF inside the head */
                break;
            }
            const char *v;
            if (self->line->data[0] == '\r' || self->line->data[0] == '\n')
                break;
            if (header_is(self->line->data, "Connection", &v)) {
                if (strncasecmp(v, "close", 5) == 0)
                    self->keep_alive = false;
                else if (strncasecmp(v, "keep-alive", 10) == 0)
                    self->keep_alive = true;
            } else if (header_is(self->line->data, "Content-Length", &v)) {
                self->body_len = strtol(v, NULL, 10);
                if (self->body_len < 0 || self->body_len > 1 << 20) {
                    self->status = 400;
                    self->keep_alive = false;
                    self->body_len = 0;
                }
            }
        }
        if (self->err)
            break;
        if (self->body_len > 0) /* a body we do not use: read it, drop it */
            WEFT_AWAIT(self, weft_stream_readexactly(self->stream, self->body_len));

        if (cfg->delay > 0)
            WEFT_SLEEP(self, cfg->delay);

        {
            const char *reason = self->status == 200   ? "OK"
                                 : self->status == 405 ? "Method Not Allowed"
                                                       : "Bad Request";
            const char *body = self->status == 200 ? BODY : reason;
            size_t blen = strlen(body) + (self->status == 200 ? 0 : 1);
            int n = snprintf(self->head, sizeof self->head,
                             "HTTP/1.1 %d %s\r\n"
                             "Server: weft-example\r\n"
                             "Content-Type: text/plain\r\n"
                             "Content-Length: %zu\r\n"
                             "%s"
                             "Connection: %s\r\n\r\n",
                             self->status, reason, blen,
                             self->status == 405 ? "Allow: GET, HEAD\r\n" : "",
                             self->keep_alive ? "keep-alive" : "close");
            struct iovec iov[3] = {
                {self->head, (size_t)n}, {(void *)body, strlen(body)}, {"\n", 1}};
            int cnt = strcmp(self->method, "HEAD") == 0 && self->status == 200 ? 1
                      : self->status == 200                                    ? 2
                                                                               : 3;
            if (weft_stream_writelines(self->stream, iov, cnt) < 0)
                break;
        }
        WEFT_AWAIT(self, weft_stream_drain(self->stream));
        if (!self->keep_alive)
            break;
    }
    /* weft closes (flushes) the stream when this task ends. */
    WEFT_END;
}

struct main_co {
    WEFT_FRAME(int);
    const char *host;
    int port;
    struct config cfg;
    weft_server *server;
};

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_start_server(loop, WEFT_STREAM_HANDLER(http_conn), &self->cfg, self->host,
                                       self->port, NULL));
    self->server = WEFT_RESULT(self).p;
    printf("listening on http://%s:%d/\n", self->host, weft_server_port(self->server));
    WEFT_AWAIT(self, weft_server_serve_forever(self->server)); /* until Ctrl-C */
    WEFT_FINALLY;
    weft_server_free(self->server); /* closes it and its connections */
    WEFT_END;
}

static int usage(void)
{
    fprintf(stderr, "usage: http_server [--port N] [--host ADDR] [--delay-ms MS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 8080, delay_ms = 0;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--port") == 0)
            port = strtol(argv[++i], &end, 10);
        else if (strcmp(argv[i], "--delay-ms") == 0)
            delay_ms = strtol(argv[++i], &end, 10);
        else if (strcmp(argv[i], "--host") == 0)
            host = argv[++i];
        else
            return usage();
        if (end && (*end || port < 0 || port > 65535 || delay_ms < 0))
            return usage();
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* the "listening" line goes out at once */

    const weft_loop_options lo = {.backend = getenv("WEFT_BACKEND")};
    const weft_run_options ro = {.loop = &lo, .flags = WEFT_RUN_CANCEL_ON_SIGNALS};
    int rc = WEFT_RUN_OPTS(&ro, NULL, main_co, .host = host, .port = (int)port,
                           .cfg = {.delay = (double)delay_ms / 1000.0});
    if (rc < 0) {
        fprintf(stderr, "http_server: %s\n", weft_strerror(rc));
        return 1;
    }
    return rc; /* 130 after Ctrl-C, 143 after SIGTERM */
}
