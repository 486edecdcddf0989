/* chat_server.c - a line-based chat room: per-client queues, and a client
 * that stops reading is disconnected instead of stalling the room.
 *
 *     chat_server --port N      serve (try `nc 127.0.0.1 N` in two terminals)
 *     chat_server               a demo: the server and three clients in one loop
 *
 * The classic asyncio exercise.  Each connection is a task (start_server's
 * handler): it asks for a name, joins the room, and then every line it
 * reads is broadcast to the others.  Broadcasting never waits: each client
 * has its own bounded queue (asyncio.Queue(maxsize=16)) and its own writer
 * task that takes lines from it, writes them and awaits drain.  A client
 * that does not read makes its writer wait in drain, its queue fills, and
 * the next broadcast finds it full (put_nowait: WEFT_EFULL): that client is
 * DISCONNECTED (its stream aborted) and the others are told.  Dropping
 * lines for it instead would keep it connected but silently incomplete;
 * either way nobody else waits for it.
 *
 *     async def handle(reader, writer):
 *         name = (await reader.readline()).strip()
 *         me = Client(name, writer, asyncio.Queue(16))
 *         room.add(me); writer_task = asyncio.create_task(pump(me))
 *         try:
 *             while line := await reader.readline():
 *                 for c in room - {me}:
 *                     try: c.queue.put_nowait(f'{name}: {line}')
 *                     except asyncio.QueueFull: c.writer.transport.abort()
 *                 await asyncio.sleep(0)          # let the writers run
 *         finally:
 *             room.remove(me); writer_task.cancel()
 *
 * A line is one shared, reference-counted buffer, whatever the number of
 * queues it sits in.  The server keeps weft's write buffer of each client
 * small (16 KiB high-water mark, 16 KiB socket send buffer) so that a slow
 * client is found out after a few dozen KiB, not megabytes.
 *
 * The demo connects alice, bob and carol; carol never reads again after
 * joining.  Alice sends 2000 lines of 500 bytes (1 MB): carol is
 * disconnected once her buffers and her queue are full, and bob receives
 * every line, in order.  Its output is the same on every run.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <weft.h>

#define QUEUE_LINES 16
#define NAME_MAX_LEN 31
#define SMALL_BUFFER (16 * 1024)

/* ---- lines: shared, reference counted ------------------------------------------ */

struct line {
    int refs;
    size_t len;
    char data[];
};

static struct line *line_new(const char *fmt, const char *a, const char *b)
{
    int n = snprintf(NULL, 0, fmt, a, b);
    struct line *l = malloc(sizeof *l + (size_t)n + 1);
    if (!l)
        return NULL;
    l->refs = 1;
    l->len = (size_t)n;
    snprintf(l->data, (size_t)n + 1, fmt, a, b);
    return l;
}

static void line_unref(void *p)
{
    struct line *l = p;
    if (l && --l->refs == 0)
        free(l);
}

/* ---- the room -------------------------------------------------------------------- */

struct client {
    struct client *next, *prev; /* the room's list */
    weft_stream *s;
    weft_queue out; /* lines for this client, taken by its writer task */
    char name[NAME_MAX_LEN + 1];
    bool dropped;
};

struct room {
    struct client head; /* list sentinel */
    bool quiet;         /* the demo prints only what it checks */
};

static void room_join(struct room *r, struct client *c)
{
    c->prev = r->head.prev;
    c->next = &r->head;
    r->head.prev->next = c;
    r->head.prev = c;
}

static void room_leave(struct client *c)
{
    if (!c->next)
        return;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

/* Queue l for every client but from; one that is full is disconnected. */
static void room_broadcast(struct room *r, struct client *from, struct line *l)
{
    for (struct client *c = r->head.next; c != &r->head; c = c->next) {
        if (c == from || c->dropped)
            continue;
        l->refs++;
        int err = weft_queue_put_nowait(&c->out, l);
        if (err == 0)
            continue;
        l->refs--;
        if (err != WEFT_EFULL)
            continue; /* shut down: it is leaving */
        c->dropped = true;
        printf("server: %s is too slow (%d lines queued): disconnected\n", c->name, QUEUE_LINES);
        weft_stream_abort(c->s); /* now, dropping what its buffer holds */
        struct line *notice = line_new("* %s was too slow and is disconnected%s\n", c->name, "");
        if (notice) {
            room_broadcast(r, c, notice);
            line_unref(notice);
        }
    }
}

/* ---- a client's writer task: queue -> stream ------------------------------------- */

struct chat_writer {
    WEFT_FRAME(int);
    struct client *c;
    weft_waiter w;
    void *item;
    int err;
};

WEFT_ASYNC(chat_writer)
{
    WEFT_BEGIN(self);
    for (;;) {
        WEFT_TRY_QUEUE_GET(self, &self->c->out, &self->w, self->item, self->err);
        if (self->err)
            break; /* shut down: the client left */
        {
            struct line *l = self->item;
            weft_stream_write(self->c->s, l->data, l->len);
            line_unref(l);
        }
        /* Waits only while this client's buffer is above its high-water
         * mark: a slow reader parks here, and its queue fills. */
        WEFT_TRY_AWAIT(self, weft_stream_drain(self->c->s), self->err);
        if (self->err)
            break; /* the connection is gone */
    }
    WEFT_END;
}

/* ---- a connection's handler ---------------------------------------------------------- */

struct chat_conn {
    WEFT_STREAM_FRAME; /* arg: the room */
    struct client c;   /* in the frame: frames never move, the queue may live here */
    bool queue_ready;
    weft_task *writer;
    const weft_bytes *line;
    int err;
};

WEFT_ASYNC(chat_conn)
{
    weft_loop *loop = weft_task_loop(task);
    struct room *room = self->arg;
    WEFT_BEGIN(self);
    self->c.s = self->stream;
    weft_stream_write(self->stream, "name?\n", 6);
    WEFT_TRY_AWAIT(self, weft_stream_readline(self->stream), self->err);
    if (self->err)
        WEFT_RETURN(self, 0); /* gone before saying who it is */
    self->line = WEFT_RESULT(self).p;
    if (!self->line->len)
        WEFT_RETURN(self, 0);
    {
        size_t n = strcspn(self->line->data, "\r\n");
        if (n > NAME_MAX_LEN)
            n = NAME_MAX_LEN;
        memcpy(self->c.name, self->line->data, n);
        self->c.name[n] = '\0';
        if (!n)
            strcpy(self->c.name, "guest");
    }
    if (weft_queue_init(&self->c.out, loop, QUEUE_LINES, line_unref) < 0)
        WEFT_THROW(self, -ENOMEM);
    self->queue_ready = true;
    {
        /* Small buffers: a client that stops reading is found out soon. */
        weft_transport *t = weft_stream_transport(self->stream);
        int sndbuf = SMALL_BUFFER;
        setsockopt(weft_transport_fd(t), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        weft_transport_set_write_buffer_limits(t, SMALL_BUFFER, SMALL_BUFFER / 4);
    }
    self->writer = WEFT_SPAWN(loop, chat_writer, .c = &self->c);
    if (!self->writer)
        WEFT_THROW(self, weft_last_error());
    room_join(room, &self->c);
    printf("server: %s joined\n", self->c.name);
    {
        struct line *l = line_new("* %s joined%s\n", self->c.name, "");
        if (l) {
            room_broadcast(room, &self->c, l);
            line_unref(l);
        }
        l = line_new("welcome, %s%s\n", self->c.name, ""); /* to the newcomer only */
        if (l && weft_queue_put_nowait(&self->c.out, l) < 0)
            line_unref(l);
    }

    for (;;) {
        WEFT_TRY_AWAIT(self, weft_stream_readline(self->stream), self->err);
        if (self->err || self->c.dropped)
            break;
        self->line = WEFT_RESULT(self).p;
        if (!self->line->len)
            break; /* EOF: the client left */
        {
            struct line *l = line_new("%s: %s", self->c.name, self->line->data);
            if (!l)
                WEFT_THROW(self, -ENOMEM);
            room_broadcast(room, &self->c, l);
            line_unref(l);
        }
        WEFT_YIELD(self); /* let the writer tasks run before the next line */
    }

    WEFT_FINALLY;
    if (self->c.next) {
        room_leave(&self->c);
        if (!self->c.dropped) {
            printf("server: %s left\n", self->c.name);
            struct line *l = line_new("* %s left%s\n", self->c.name, "");
            if (l) {
                room_broadcast(room, &self->c, l);
                line_unref(l);
            }
        }
    }
    if (self->writer) {
        weft_task_cancel(self->writer); /* nobody reads what it holds */
        WEFT_TRY_AWAIT(self, self->writer, self->err);
        self->writer = NULL;
    }
    if (self->queue_ready)
        weft_queue_destroy(&self->c.out); /* frees the lines left */
    WEFT_END;
}

/* ---- the demo: three clients in the server's loop ------------------------------------ */

#define DEMO_LINES 2000
#define DEMO_LINE_LEN 500

/* Connect, answer the name prompt, wait for the welcome. */
struct join {
    WEFT_FRAME(weft_stream *);
    int port;
    const char *name;
    const weft_bytes *line;
};

WEFT_ASYNC(join)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_open_connection(loop, "127.0.0.1", self->port, NULL));
    self->result = WEFT_RESULT(self).p;
    WEFT_AWAIT(self, weft_stream_readline(self->result)); /* "name?" */
    weft_stream_write(self->result, self->name, strlen(self->name));
    weft_stream_write(self->result, "\n", 1);
    WEFT_AWAIT(self, weft_stream_readline(self->result)); /* "welcome, NAME" */
    self->line = WEFT_RESULT(self).p;
    if (strncmp(self->line->data, "welcome, ", 9) != 0)
        WEFT_THROW_MSG(self, -EPROTO, "%s: unexpected greeting", self->name);
    WEFT_FINALLY;
    if (self->co.err) {
        weft_stream_free(self->result);
        self->result = NULL;
    }
    WEFT_END;
}

/* Bob: read lines, checking the order of alice's numbered lines, until
 * `want` of them came (want > 0) or a line equal to `until` (non-NULL).
 * The result is the number of alice's lines read, all in order. */
struct reader {
    WEFT_FRAME(int);
    weft_stream *s;
    int want;
    const char *until;
    const weft_bytes *line;
};

WEFT_ASYNC(reader)
{
    WEFT_BEGIN(self);
    while (self->want <= 0 || self->result < self->want) {
        WEFT_AWAIT(self, weft_stream_readline(self->s));
        self->line = WEFT_RESULT(self).p;
        if (!self->line->len)
            WEFT_THROW_MSG(self, WEFT_EINCOMPLETE, "EOF after %d lines", self->result);
        int i;
        if (sscanf(self->line->data, "alice: line %d ", &i) == 1) {
            if (i != self->result)
                WEFT_THROW_MSG(self, -EPROTO, "line %d arrived after %d lines", i, self->result);
            self->result++;
        }
        if (self->until && strcmp(self->line->data, self->until) == 0)
            break;
    }
    WEFT_END;
}

struct demo {
    WEFT_FRAME(int);
    struct room room;
    weft_server *server;
    int port, i;
    weft_stream *alice, *bob, *carol;
    struct join j;
    struct reader r;
    weft_task *bob_task;
    char buf[DEMO_LINE_LEN + 1];
};

WEFT_ASYNC(demo)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    self->room.head.next = self->room.head.prev = &self->room.head;
    WEFT_AWAIT(self, weft_start_server(loop, WEFT_STREAM_HANDLER(chat_conn), &self->room,
                                       "127.0.0.1", 0, NULL));
    self->server = WEFT_RESULT(self).p;
    self->port = weft_server_port(self->server);
    printf("chat room on 127.0.0.1 (a free port); three clients in the same loop\n");

    WEFT_CALL(self, join, &self->j, .port = self->port, .name = "alice");
    self->alice = self->j.result;
    WEFT_CALL(self, join, &self->j, .port = self->port, .name = "bob");
    self->bob = self->j.result;
    WEFT_CALL(self, join, &self->j, .port = self->port, .name = "carol");
    self->carol = self->j.result;
    {
        /* Carol stops reading; a small receive buffer finds it out sooner. */
        int rcvbuf = SMALL_BUFFER;
        setsockopt(weft_transport_fd(weft_stream_transport(self->carol)), SOL_SOCKET, SO_RCVBUF,
                   &rcvbuf, sizeof rcvbuf);
    }
    printf("carol stops reading; alice sends %d lines of %d bytes\n", DEMO_LINES, DEMO_LINE_LEN);

    /* Bob reads in a task of his own while alice writes. */
    self->bob_task = WEFT_SPAWN(loop, reader, .s = self->bob, .want = DEMO_LINES);
    for (self->i = 0; self->i < DEMO_LINES; self->i++) {
        {
            int n = snprintf(self->buf, sizeof self->buf, "line %04d ", self->i);
            memset(self->buf + n, 'x', DEMO_LINE_LEN - 1 - (size_t)n);
            self->buf[DEMO_LINE_LEN - 1] = '\n';
            weft_stream_write(self->alice, self->buf, DEMO_LINE_LEN);
        }
        WEFT_AWAIT(self, weft_stream_drain(self->alice));
    }
    WEFT_AWAIT(self, weft_future_ref(self->bob_task));
    printf("bob received %d of alice's %d lines, in order\n", (int)WEFT_RESULT(self).i, DEMO_LINES);

    /* Alice leaves; bob hears of it; then bob leaves. */
    weft_stream_close(self->alice);
    WEFT_CALL(self, reader, &self->r, .s = self->bob, .until = "* alice left\n");
    printf("bob was told that alice left\n");
    weft_stream_close(self->bob);
    weft_server_close(self->server);
    WEFT_AWAIT(self, weft_server_wait_closed(self->server)); /* every handler is done */
    printf("the room is empty\n");
    WEFT_FINALLY;
    weft_future_unref(self->bob_task);
    weft_stream_free(self->alice);
    weft_stream_free(self->bob);
    weft_stream_free(self->carol);
    weft_server_free(self->server);
    WEFT_END;
}

/* ---- serving for real ------------------------------------------------------------------ */

struct serve {
    WEFT_FRAME(int);
    int port;
    struct room room;
    weft_server *server;
};

WEFT_ASYNC(serve)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    self->room.head.next = self->room.head.prev = &self->room.head;
    WEFT_AWAIT(self, weft_start_server(loop, WEFT_STREAM_HANDLER(chat_conn), &self->room,
                                       "127.0.0.1", self->port, NULL));
    self->server = WEFT_RESULT(self).p;
    printf("chat room on 127.0.0.1:%d (nc 127.0.0.1 %d)\n", weft_server_port(self->server),
           weft_server_port(self->server));
    WEFT_AWAIT(self, weft_server_serve_forever(self->server)); /* until Ctrl-C */
    WEFT_FINALLY;
    weft_server_free(self->server);
    WEFT_END;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "--port") == 0) {
        const weft_loop_options lo = {.backend = getenv("WEFT_BACKEND")};
        const weft_run_options ro = {.loop = &lo, .flags = WEFT_RUN_CANCEL_ON_SIGNALS};
        int rc = WEFT_RUN_OPTS(&ro, NULL, serve, .port = atoi(argv[2]));
        if (rc < 0)
            fprintf(stderr, "chat_server: %s\n", weft_strerror(rc));
        return rc < 0 ? 1 : rc;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: chat_server [--port N]\n");
        return 2;
    }
    const weft_loop_options lo = {.backend = getenv("WEFT_BACKEND")};
    int err = WEFT_RUN(&lo, NULL, demo);
    if (err < 0) {
        fprintf(stderr, "chat_server: %s\n", weft_strerror(err));
        return 1;
    }
    return 0;
}
