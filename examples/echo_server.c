/* echo_server.c - the TCP echo server of asyncio's documentation, on streams.
 *
 *     echo_server [PORT]        (default 8888; 0 picks a free port)
 *
 *     async def handle_echo(reader, writer):
 *         data = await reader.read(100)
 *         message = data.decode()
 *         addr = writer.get_extra_info('peername')
 *         print(f"Received {message!r} from {addr!r}")
 *         print(f"Send: {message!r}")
 *         writer.write(data)
 *         await writer.drain()
 *         print("Close the connection")
 *         writer.close()
 *         await writer.wait_closed()
 *
 *     async def main():
 *         server = await asyncio.start_server(handle_echo, '127.0.0.1', 8888)
 *         print(f'Serving on {server.sockets[0].getsockname()}')
 *         async with server:
 *             await server.serve_forever()
 *
 *     asyncio.run(main())
 *
 * weft_start_server spawns one task per connection running handle_echo,
 * with the connection's stream (reader and writer in one) in its frame.
 * Ctrl-C or SIGTERM cancels the main task (WEFT_RUN_CANCEL_ON_SIGNALS):
 * serve_forever ends, the server closes, and the program exits with 128 +
 * the signal's number.  The peer is printed without its port, which
 * changes from run to run.  Try it with examples/echo_client.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

struct handle_echo {
    WEFT_STREAM_FRAME;
    const weft_bytes *data;
    int err;
};

WEFT_ASYNC(handle_echo)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_stream_read(self->stream, 100));
    self->data = WEFT_RESULT(self).p;
    {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        char host[INET6_ADDRSTRLEN] = "?";
        if (weft_transport_peername(weft_stream_transport(self->stream), (struct sockaddr *)&ss,
                                    &len) == 0) {
            if (ss.ss_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
            else if (ss.ss_family == AF_INET6)
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
        }
        printf("Received '%s' from %s\n", self->data->data, host);
    }
    printf("Send: '%s'\n", self->data->data);
    weft_stream_write(self->stream, self->data->data, self->data->len);
    WEFT_AWAIT(self, weft_stream_drain(self->stream));
    printf("Close the connection\n");
    weft_stream_close(self->stream);
    WEFT_TRY_AWAIT(self, weft_stream_wait_closed(self->stream), self->err);
    WEFT_END;
}

struct main_co {
    WEFT_FRAME(int);
    int port;
    weft_server *server;
};

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_start_server(loop, WEFT_STREAM_HANDLER(handle_echo), NULL, "127.0.0.1",
                                       self->port, NULL));
    self->server = WEFT_RESULT(self).p;
    printf("Serving on 127.0.0.1:%d\n", weft_server_port(self->server));
    WEFT_AWAIT(self, weft_server_serve_forever(self->server)); /* until Ctrl-C */
    WEFT_FINALLY;
    weft_server_free(self->server);
    WEFT_END;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8888;
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line out at once, for a reader on a pipe */
    /* $WEFT_BACKEND picks the backend (the tests run both; the real clock
     * always: WEFT_ENV_OPTIONS would honour WEFT_CLOCK too) */
    const weft_loop_options lo = {.backend = getenv("WEFT_BACKEND")};
    const weft_run_options ro = {.loop = &lo, .flags = WEFT_RUN_CANCEL_ON_SIGNALS};
    int rc = WEFT_RUN_OPTS(&ro, NULL, main_co, .port = port);
    if (rc < 0) {
        fprintf(stderr, "echo_server: %s\n", weft_strerror(rc));
        return 1;
    }
    return rc; /* 130 after Ctrl-C, 143 after SIGTERM */
}
