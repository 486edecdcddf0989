/* weft/stream.h - streams: readers and writers over transports, for coroutines.
 *
 * asyncio's higher level (StreamReader and StreamWriter).  One weft_stream
 * is both the reader and the writer of one connection: a protocol
 * implementation on a weft_transport (weft/net.h) that buffers what
 * arrives and completes read futures from it.  Await the reads from
 * coroutines (WEFT_AWAIT), or compose them with weft_wait_for, timeout
 * blocks, task groups and cancellation.
 *
 *     WEFT_AWAIT(self, weft_stream_readline(self->s));
 *     const weft_bytes *line = WEFT_RESULT(self).p;   // line->data, line->len
 *
 * DATA OWNERSHIP.  A read's value is a weft_bytes * that belongs to the
 * stream: valid until the next read on the same stream starts, until
 * weft_stream_take hands it to you, or until the stream is freed.  Its
 * data is NUL-terminated (data[len] == 0) for convenience; the bytes may
 * contain NULs too.  So the usual loop (read, use, read again) needs no
 * free and no copy; keep a result longer with weft_stream_take.
 *
 * ONE READER AT A TIME.  A read started while another is pending, or while
 * the previous read's data has not yet been seen by its awaiter, is refused
 * (WEFT_ESTATE; asyncio's "read() called while another coroutine is already
 * waiting").  A read cancelled or timed out loses no byte: data it was
 * about to deliver goes back to the front of the buffer, and the next read
 * sees it (also when its future is dropped without being awaited).
 *
 * LIMIT AND FLOW CONTROL (asyncio's, S-STREAM-2).  Every stream has a limit
 * (64 KiB unless set at creation): readline and readuntil fail with
 * WEFT_ELIMIT past it, and the transport's reading is paused while more
 * than 2 * limit bytes are buffered, resumed once reads bring it to <=
 * limit (or when a read must wait for data).  Writing: weft_stream_drain
 * waits while the transport's write buffer is above its high-water mark
 * and wakes at the low-water mark (S-STREAM-9).
 *
 * ERRORS.  When the connection is lost with an error (a peer reset), every
 * pending and later read fails with it (-ECONNRESET...) and buffered data
 * is no longer returned (S-STREAM-12); drain and wait_closed fail with it.
 * A clean loss (the peer closed, or we did) reads as EOF.  Writes after the
 * loss are dropped and counted, as asyncio does (S-STREAM-13).
 *
 * MEMORY.  A stream is 64 bytes (LP64) from the loop's pool; its read
 * buffer exists only while it holds data (it is handed out as the result
 * when a read takes all of it, so an echo loop copies nothing); a pending
 * read is one more small pooled block.  A stream must be freed
 * (weft_stream_free) by whoever owns it: the caller for the constructors
 * below, weft for the streams it hands to a server's handler.
 */
#ifndef WEFT_STREAM_H
#define WEFT_STREAM_H

#include <sys/types.h>
#include <sys/uio.h>

#include "co.h"
#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_stream weft_stream;

/* What a read produced: len bytes at data, followed by a NUL.  Read-only
 * for you unless you took it (weft_stream_take). */
typedef struct weft_bytes {
    size_t len;
    char *data;
} weft_bytes;

/* The default reader limit (asyncio's _DEFAULT_LIMIT, 2**16). */
#define WEFT_STREAM_LIMIT_DEFAULT (64 * 1024)
/* The largest limit accepted (2 * limit must fit in 32 bits). */
#define WEFT_STREAM_LIMIT_MAX (1u << 30)

/* Options of every stream constructor; zero means the default; NULL is all
 * defaults. */
typedef struct weft_stream_opts {
    size_t limit;                     /* 0: WEFT_STREAM_LIMIT_DEFAULT; above
                                         WEFT_STREAM_LIMIT_MAX: -EINVAL */
    const weft_connect_opts *connect; /* weft_open_connection's (NULL: defaults) */
    const weft_server_opts *server;   /* weft_start_server's and
                                         weft_start_unix_server's (NULL: defaults) */
    const char *task_name;            /* the name of each handler task (must
                                         outlive the server); NULL: the
                                         coroutine's name */
} weft_stream_opts;

/* ---- making streams ----------------------------------------------------------- */

/* asyncio.open_connection: connect to host:port (weft_create_connection
 * with opts->connect) and make a stream of the connection.  The future's
 * value is the weft_stream * (.p), which you own: weft_stream_free it.
 * Fails as weft_create_connection (-ECONNREFUSED, WEFT_EAI_*, ...), with
 * -EINVAL for a bad limit; cancelling it cancels the connect.  NULL on
 * failure to start (weft_last_error). */
WEFT_NODISCARD weft_future *weft_open_connection(weft_loop *loop, const char *host, int port,
                                                 const weft_stream_opts *opts);

/* asyncio.open_unix_connection: the same over the Unix socket at path. */
WEFT_NODISCARD weft_future *weft_open_unix_connection(weft_loop *loop, const char *path,
                                                      const weft_stream_opts *opts);

/* Make a stream of fd, an already connected stream socket, a tty or a
 * pipe end opened read-write (asyncio's connect_accepted_socket + streams).
 * On success the stream owns fd (through its transport) and *out is yours
 * to free.  Returns 0, -EINVAL (NULL loop or out, fd < 0, bad limit), or
 * what weft_transport_wrap returns (-EBADF, -EPERM, -EEXIST, -ENOMEM,
 * WEFT_ECLOSED); on failure fd is left open and untouched. */
int weft_stream_wrap(weft_loop *loop, int fd, const weft_stream_opts *opts, weft_stream **out);

/* asyncio's connect_read_pipe with a StreamReader: a read-only stream of
 * fd, the read end of a pipe, a FIFO or a tty (open for reading).  EOF
 * when the writer closes; writing it fails with -EBADF.  Returns as
 * weft_stream_wrap, plus -EBADF if fd is not open for reading. */
int weft_open_read_pipe(weft_loop *loop, int fd, const weft_stream_opts *opts, weft_stream **out);

/* asyncio's connect_write_pipe with a StreamWriter: a write-only stream of
 * fd, the write end of a pipe, a FIFO or a tty (open for writing).  The
 * reader closing is the loss of the connection (-EPIPE: drain and
 * wait_closed fail with it; later writes are dropped and counted); reading
 * it fails with -EBADF.  Returns as weft_stream_wrap, plus -EBADF if fd is
 * not open for writing. */
int weft_open_write_pipe(weft_loop *loop, int fd, const weft_stream_opts *opts, weft_stream **out);

/* A stream with no transport, fed by hand (asyncio's bare StreamReader(),
 * for tests and for parsers over data from elsewhere): weft_stream_feed_*
 * give it data, EOF or an error; writing it fails with -EBADF.  Returns 0,
 * -EINVAL, -ENOMEM or WEFT_ECLOSED. */
int weft_stream_new(weft_loop *loop, const weft_stream_opts *opts, weft_stream **out);

/* Close the stream if it is not closing (weft_stream_close: what is
 * buffered for writing is still sent) and give up your ownership: pending
 * reads are cancelled, the last read's data goes (unless taken), and the
 * memory goes once the transport is gone.  NULL is a no-op.  Free every
 * stream before destroying its loop (loop close aborts their transports). */
void weft_stream_free(weft_stream *s);

/* ---- reading (StreamReader) ----------------------------------------------------
 *
 * Each read returns a new future (yours: await it or drop it) whose value
 * .p is a const weft_bytes * as described above, never NULL (len 0 means
 * EOF).  Errors of the future: the connection's error (-ECONNRESET, ...;
 * checked first, even with data buffered), WEFT_EINCOMPLETE, WEFT_ELIMIT,
 * -ENOMEM, -ECANCELED (cancelled, or the stream was freed).  NULL on
 * failure to start (weft_last_error): -EINVAL (NULL s, bad argument),
 * WEFT_ESTATE (another read pending or undelivered), -EBADF (write-only
 * stream), -ENOMEM, WEFT_ECLOSED. */

/* read(n): n > 0: wait until at least one byte or EOF, take up to n; n == 0:
 * empty at once; n < 0: read to EOF and take everything (the buffer grows
 * past the limit without pausing for this read). */
WEFT_NODISCARD weft_future *weft_stream_read(weft_stream *s, ssize_t n);

/* readline(): bytes up to and including "\n"; at EOF the last partial line
 * (no "\n"), empty at EOF with nothing buffered.  Past the limit: fails
 * with WEFT_ELIMIT after dropping the over-long line if its "\n" is
 * buffered, else the whole buffer (asyncio's ValueError, S-STREAM-4). */
WEFT_NODISCARD weft_future *weft_stream_readline(weft_stream *s);

/* readexactly(n): exactly n bytes (n == 0: empty at once; n < 0: -EINVAL).
 * EOF first: fails with WEFT_EINCOMPLETE, the buffer is cleared and what it
 * held is weft_stream_last (asyncio's IncompleteReadError.partial). */
WEFT_NODISCARD weft_future *weft_stream_readexactly(weft_stream *s, ssize_t n);

/* readuntil(separator): bytes up to and including the first occurrence of
 * sep (seplen bytes, copied: it need not outlive the call; seplen 0 or a
 * NULL sep: -EINVAL).  EOF first: WEFT_EINCOMPLETE with everything buffered
 * as weft_stream_last (buffer cleared).  The separator not found within
 * the limit, or found but starting after it: WEFT_ELIMIT with the data
 * left in the buffer and weft_stream_consumed set (asyncio's
 * LimitOverrunError.consumed, S-STREAM-6). */
WEFT_NODISCARD weft_future *weft_stream_readuntil(weft_stream *s, const void *sep, size_t seplen);

/* The data of the last read that completed on s: its value, or after
 * WEFT_EINCOMPLETE the partial data.  NULL if there is none (or it was
 * taken, or a new read started). */
const weft_bytes *weft_stream_last(const weft_stream *s);

/* Take the last read's data: it is yours, to free with weft_bytes_free
 * (before the loop is destroyed).  NULL if there is none. */
weft_bytes *weft_stream_take(weft_stream *s);

/* Free data taken with weft_stream_take.  NULL is a no-op. */
void weft_bytes_free(weft_bytes *b);

/* at_eof(): true once EOF was received (or fed) and the buffer is empty. */
bool weft_stream_at_eof(const weft_stream *s);

/* Bytes buffered and not yet read. */
size_t weft_stream_buffered(const weft_stream *s);

/* After a read failed with WEFT_ELIMIT, until the next read starts:
 * asyncio's LimitOverrunError.consumed (0 otherwise). */
size_t weft_stream_consumed(const weft_stream *s);

/* The reader limit. */
size_t weft_stream_limit(const weft_stream *s);

/* The error set on the stream (a lost connection's, or set by hand), or 0
 * (asyncio's StreamReader.exception()). */
int weft_stream_exception(const weft_stream *s);

/* feed_data / feed_eof / set_exception, for streams made with
 * weft_stream_new (on other streams the transport does it).  feed_data
 * copies n bytes (n == 0: no-op); 0, -EINVAL, WEFT_ESTATE (after feed_eof,
 * or the stream has a transport), -ENOMEM.  feed_eof: 0, -EINVAL,
 * WEFT_ESTATE.  set_exception(err < 0): pending and later reads fail with
 * err; 0, -EINVAL, WEFT_ESTATE. */
int weft_stream_feed_data(weft_stream *s, const void *data, size_t n);
int weft_stream_feed_eof(weft_stream *s);
int weft_stream_set_exception(weft_stream *s, int err);

/* ---- writing (StreamWriter) ---------------------------------------------------- */

/* write(data): weft_transport_write (tried at once, the rest buffered).
 * 0; -EINVAL (NULL s, NULL data with n > 0); WEFT_ESTATE after write_eof
 * or close; -EBADF (read-only stream); -ENOMEM.  After the connection was
 * lost: dropped, counted (weft_stream_dropped_writes) and 0. */
int weft_stream_write(weft_stream *s, const void *data, size_t n);

/* writelines(): iovcnt buffers in one go; returns as weft_stream_write. */
int weft_stream_writelines(weft_stream *s, const struct iovec *iov, int iovcnt);

/* drain(): a future that is already done (value 0) unless writing is
 * paused (the transport's buffer above its high-water mark), in which
 * case it completes when the buffer falls to the low-water mark.  Fails
 * with the stream's error if one is set, with -ECONNRESET (or the loss's
 * error) once the connection is lost; while the transport is closing it
 * yields once (asyncio's sleep(0)).  NULL on failure to start (-EINVAL,
 * -ENOMEM, WEFT_ECLOSED). */
WEFT_NODISCARD weft_future *weft_stream_drain(weft_stream *s);

/* write_eof(): shut the write side once the buffer is flushed.  0,
 * -EINVAL, WEFT_ESTATE (already done, closing, lost), -ENOTSUP (cannot). */
int weft_stream_write_eof(weft_stream *s);

/* can_write_eof(): true for sockets and write pipes. */
bool weft_stream_can_write_eof(const weft_stream *s);

/* close(): weft_transport_close (stop reading, flush, close); the loss
 * then reads as EOF.  Idempotent; 0 or -EINVAL. */
int weft_stream_close(weft_stream *s);

/* transport.abort(): close now, dropping the write buffer.  0 or -EINVAL. */
int weft_stream_abort(weft_stream *s);

/* is_closing(): true once close or abort was called or the connection
 * was lost (for a stream without transport: once close was called). */
bool weft_stream_is_closing(const weft_stream *s);

/* wait_closed(): a future done (value 0) once the connection is gone, or
 * failed with the loss's error (-ECONNRESET...).  Does not close.  NULL on
 * failure to start (-EINVAL, -ENOMEM, WEFT_ECLOSED). */
WEFT_NODISCARD weft_future *weft_stream_wait_closed(weft_stream *s);

/* Writes dropped because the connection was lost (S-STREAM-13). */
uint64_t weft_stream_dropped_writes(const weft_stream *s);

/* get_extra_info: the transport (NULL once the connection is gone, or for
 * a stream without transport): use weft_transport_fd, _peername,
 * _sockname, _get_write_buffer_size, _set_write_buffer_limits on it.  Do
 * not close it behind the stream's back: use weft_stream_close. */
weft_transport *weft_stream_transport(const weft_stream *s);

/* The loop of s (NULL for NULL). */
weft_loop *weft_stream_loop(const weft_stream *s);

/* ---- servers -----------------------------------------------------------------
 *
 * A handler is a coroutine whose frame begins with WEFT_STREAM_FRAME:
 *
 *     struct echo {
 *         WEFT_STREAM_FRAME;   // weft_co co; int result; weft_stream *stream; void *arg;
 *         const weft_bytes *b;
 *     };
 *     WEFT_ASYNC(echo)
 *     {
 *         WEFT_BEGIN(self);
 *         for (;;) {
 *             WEFT_AWAIT(self, weft_stream_read(self->stream, 65536));
 *             self->b = WEFT_RESULT(self).p;
 *             if (!self->b->len)
 *                 break;
 *             weft_stream_write(self->stream, self->b->data, self->b->len);
 *             WEFT_AWAIT(self, weft_stream_drain(self->stream));
 *         }
 *         WEFT_RETURN(self, 0);
 *         WEFT_END;
 *     }
 *     ... weft_start_server(loop, WEFT_STREAM_HANDLER(echo), arg, NULL, 8888, NULL)
 *
 * For each connection weft spawns a task running the handler with stream
 * and arg set (the rest of the frame zeroed).  The stream belongs to weft:
 * it is closed (flushed) and freed when the handler's task ends, however
 * it ends (asyncio 3.12).  A handler that fails is reported through the
 * loop's report hook (WEFT_REPORT_UNOBSERVED, "unhandled error in stream
 * handler"), as asyncio's exception handler is called; a cancelled one is
 * not.  Each connection's task is one pooled block: the task, a 48-byte
 * wrapper frame and the handler's frame.  The server's context goes when
 * its wait_closed completes, except with a handler frame of 4 KiB or
 * more, whose context stays until the loop is destroyed. */

/* The first members of a handler's frame. */
#define WEFT_STREAM_FRAME \
    WEFT_FRAME(int);      \
    weft_stream *stream;  \
    void *arg

/* The layout every handler frame begins with. */
typedef struct weft_stream_handler_frame {
    WEFT_STREAM_FRAME;
} weft_stream_handler_frame;

/* The handler argument for coroutine fn (checks at compile time that its
 * frame begins with WEFT_STREAM_FRAME). */
#define WEFT_STREAM_HANDLER(fn)                                                              \
    ((void)sizeof(                                                                           \
         char[(offsetof(struct fn, stream) == offsetof(weft_stream_handler_frame, stream) && \
               offsetof(struct fn, arg) == offsetof(weft_stream_handler_frame, arg))         \
                  ? 1                                                                        \
                  : -1]),                                                                    \
     &fn##__info)

/* asyncio.start_server: listen on host:port (weft_create_server with
 * opts->server) and run handler (WEFT_STREAM_HANDLER(fn)) for every
 * connection, with arg.  The future's value is the weft_server * (.p),
 * already serving, which you own (weft_server_close, _wait_closed,
 * _free...: net.h).  Fails as weft_create_server, with -EINVAL for a NULL
 * handler or a bad limit.  NULL on failure to start (weft_last_error). */
WEFT_NODISCARD weft_future *weft_start_server(weft_loop *loop, const weft_co_info *handler,
                                              void *arg, const char *host, int port,
                                              const weft_stream_opts *opts);

/* asyncio.start_unix_server: the same on the Unix socket at path;
 * synchronous like weft_create_unix_server: 0 with *out set, or its errors
 * (-EINVAL, -EADDRINUSE, -ENAMETOOLONG, -ENOMEM, ...). */
int weft_start_unix_server(weft_loop *loop, const weft_co_info *handler, void *arg,
                           const char *path, const weft_stream_opts *opts, weft_server **out);

#ifdef __cplusplus
}
#endif
#endif
