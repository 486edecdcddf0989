/* echo_client.c - the TCP echo client of asyncio's documentation, on streams.
 *
 *     echo_client [PORT [MESSAGE]]     (default 8888, "Hello World!")
 *
 *     async def tcp_echo_client(message):
 *         reader, writer = await asyncio.open_connection('127.0.0.1', 8888)
 *         print(f'Send: {message!r}')
 *         writer.write(message.encode())
 *         await writer.drain()
 *         data = await reader.read(100)
 *         print(f'Received: {data.decode()!r}')
 *         print('Close the connection')
 *         writer.close()
 *         await writer.wait_closed()
 *
 *     asyncio.run(tcp_echo_client('Hello World!'))
 *
 * weft_open_connection gives one stream, the reader and the writer in one;
 * the stream is the caller's, freed with weft_stream_free (here in the
 * frame's FINALLY, which also runs if the connection is refused).  Run
 * examples/echo_server.c first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

struct tcp_echo_client {
    WEFT_FRAME(int);
    int port;
    const char *message;
    weft_stream *s;
    const weft_bytes *data;
};

WEFT_ASYNC(tcp_echo_client)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_open_connection(loop, "127.0.0.1", self->port, NULL));
    self->s = WEFT_RESULT(self).p;
    printf("Send: '%s'\n", self->message);
    weft_stream_write(self->s, self->message, strlen(self->message));
    WEFT_AWAIT(self, weft_stream_drain(self->s));
    WEFT_AWAIT(self, weft_stream_read(self->s, 100));
    self->data = WEFT_RESULT(self).p;
    printf("Received: '%s'\n", self->data->data);
    printf("Close the connection\n");
    weft_stream_close(self->s);
    WEFT_AWAIT(self, weft_stream_wait_closed(self->s));
    WEFT_FINALLY;
    weft_stream_free(self->s);
    WEFT_END;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8888;
    const char *message = argc > 2 ? argv[2] : "Hello World!";
    const weft_loop_options lo = {.backend = getenv("WEFT_BACKEND")};
    int err = WEFT_RUN(&lo, NULL, tcp_echo_client, .port = port, .message = message);
    if (err < 0) {
        fprintf(stderr, "echo_client: %s\n", weft_strerror(err));
        return 1;
    }
    return 0;
}
