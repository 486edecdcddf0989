/* weft/net.h - transports and protocols: sockets and pipes with callbacks.
 *
 * asyncio's lower level.  A protocol is a table of callbacks plus your
 * pointer; a transport is weft's object for one connected stream fd (a
 * TCP or Unix socket, a pipe, a tty).  weft reads into the transport's own
 * buffer and hands you each chunk in data_received; weft_transport_write
 * tries the write at once when nothing is queued and copies only what the
 * kernel did not take.  Servers accept connections and give each a
 * transport with a protocol from your factory; clients resolve a name on
 * the executor, connect, and give you a transport.
 *
 * Every callback runs on the loop, never inside the call that caused it:
 * connection_made runs from the ready queue after the transport exists,
 * connection_lost once, last, after which the transport is freed (do not
 * touch it after connection_lost returns).
 *
 * SIGPIPE never fires: sockets are written with MSG_NOSIGNAL (SO_NOSIGPIPE
 * where there is no MSG_NOSIGNAL); a pipe's EPIPE is reported as the loss
 * of the connection (to be safe with pipes, ignore SIGPIPE or use the
 * process layer, which does).
 */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_transport weft_transport;
typedef struct weft_server weft_server;

/* ---- protocols ----------------------------------------------------------------
 *
 * Every member may be NULL (nothing to do); ud is the pointer given with
 * the protocol. */
typedef struct weft_protocol {
    /* The transport is ready: the first callback, from the ready queue. */
    void (*connection_made)(weft_transport *t, void *ud);
    /* n > 0 bytes arrived; data is weft's buffer, valid during the call. */
    void (*data_received)(weft_transport *t, const void *data, size_t n, void *ud);
    /* The peer shut its write side.  Return true to keep the transport
     * open for writing (a half-closed connection, S-STREAM-10); false (or
     * a NULL member) closes it. */
    bool (*eof_received)(weft_transport *t, void *ud);
    /* The connection is gone: err 0 for a close (either side, cleanly),
     * else the error (-ECONNRESET, -EPIPE, -ETIMEDOUT, ...).  The last
     * callback; the transport is freed after it returns. */
    void (*connection_lost)(weft_transport *t, int err, void *ud);
    /* The write buffer rose above the high-water mark / fell to the
     * low-water mark (asyncio's flow control; weft_transport_write keeps
     * working either way). */
    void (*pause_writing)(weft_transport *t, void *ud);
    void (*resume_writing)(weft_transport *t, void *ud);
} weft_protocol;

/* ---- transports --------------------------------------------------------------- */

/* Default write-buffer limits (asyncio's). */
#define WEFT_WRITE_HIGH_DEFAULT (64 * 1024)
#define WEFT_WRITE_LOW_DEFAULT (16 * 1024)

/* Wrap fd, an already connected stream socket, a pipe end, a FIFO or a
 * tty, in a transport driving proto (asyncio's connect_accepted_socket,
 * connect_read_pipe and connect_write_pipe in one).  fd is made
 * non-blocking; on success the transport owns it and closes it when it
 * goes.  connection_made(t, ud) runs from the ready queue.  A read-only fd
 * (a pipe's read end) is never written; a write-only fd is never read
 * (its peer closing is still noticed).  *out (may be NULL) receives the
 * transport.  Returns 0, -EINVAL (NULL loop or proto, fd < 0, a datagram
 * or listening socket), -EBADF,
 * -EPERM (a regular file: not pollable), -EEXIST (the loop already
 * watches fd), -ENOMEM or WEFT_ECLOSED; on failure fd is left open and
 * untouched. */
int weft_transport_wrap(weft_loop *loop, int fd, const weft_protocol *proto, void *ud,
                        weft_transport **out);

/* Queue n bytes for writing: written at once if the buffer is empty and
 * the kernel takes them, the rest copied into the buffer and sent when the
 * fd is writable.  Returns 0; -EINVAL (NULL t, NULL data with n > 0);
 * WEFT_ESTATE after weft_transport_write_eof or close; -ENOTSUP on a
 * read-only fd; -ENOMEM (nothing queued).  After the connection was lost the bytes are dropped and
 * counted (weft_transport_dropped_writes) and 0 is returned, as asyncio
 * does (S-STREAM-13). */
int weft_transport_write(weft_transport *t, const void *data, size_t n);

/* weft_transport_write of iovcnt buffers in one go (writev / sendmsg). */
int weft_transport_writev(weft_transport *t, const struct iovec *iov, int iovcnt);

/* Shut the write side once the buffer is flushed (shutdown(SHUT_WR); for
 * a pipe, close it).  Returns 0, -EINVAL, WEFT_ESTATE (closing, or already
 * done), -ENOTSUP (weft_transport_can_write_eof is false). */
int weft_transport_write_eof(weft_transport *t);

/* Whether write_eof is possible (sockets and write pipes: true). */
bool weft_transport_can_write_eof(const weft_transport *t);

/* Stop reading, flush the buffer, then close; connection_lost(0) follows.
 * Idempotent.  Returns 0, -EINVAL. */
int weft_transport_close(weft_transport *t);

/* Close now, dropping the buffer; connection_lost(0) follows from the
 * ready queue.  Idempotent (also after close).  Returns 0, -EINVAL. */
int weft_transport_abort(weft_transport *t);

/* True once close or abort was called or the connection was lost. */
bool weft_transport_is_closing(const weft_transport *t);

/* Stop / resume calling data_received (the kernel's buffer then fills and
 * the peer's writes block).  Idempotent; 0, -EINVAL, WEFT_ESTATE (closing). */
int weft_transport_pause_reading(weft_transport *t);
int weft_transport_resume_reading(weft_transport *t);
bool weft_transport_is_reading(const weft_transport *t);

/* Set the flow-control marks, as asyncio: high < 0 means the default
 * (4 * low if low >= 0 was given, else 64 KiB), low < 0 means high / 4.
 * Returns 0, -EINVAL (NULL, or not high >= low >= 0 after the defaults).
 * May call pause_writing or resume_writing (from the ready queue). */
int weft_transport_set_write_buffer_limits(weft_transport *t, long high, long low);

/* The current marks (either pointer may be NULL).  0 or -EINVAL. */
int weft_transport_get_write_buffer_limits(const weft_transport *t, size_t *high, size_t *low);

/* Bytes queued and not yet taken by the kernel. */
size_t weft_transport_get_write_buffer_size(const weft_transport *t);

/* Bytes passed to write after the connection was lost (asyncio's
 * "socket.send() raised exception" counter). */
uint64_t weft_transport_dropped_writes(const weft_transport *t);

/* Replace the protocol (asyncio's set_protocol); the next callback goes to
 * the new one.  0 or -EINVAL. */
int weft_transport_set_protocol(weft_transport *t, const weft_protocol *proto, void *ud);

/* get_extra_info: the fd (-1 for NULL or once closed), the socket's own
 * and its peer's address (getsockname / getpeername into *addr, *len in
 * and out; 0, -EINVAL, -ENOTSOCK, or the call's -errno), the loop, and
 * the protocol pointer. */
int weft_transport_fd(const weft_transport *t);
int weft_transport_sockname(const weft_transport *t, struct sockaddr *addr, socklen_t *len);
int weft_transport_peername(const weft_transport *t, struct sockaddr *addr, socklen_t *len);
weft_loop *weft_transport_loop(const weft_transport *t);
void *weft_transport_protocol_ud(const weft_transport *t);

/* ---- clients ------------------------------------------------------------------ */

/* Options for weft_create_connection; zero means the default. */
typedef struct weft_connect_opts {
    int family;                        /* AF_UNSPEC (both), AF_INET or AF_INET6 */
    double happy_eyeballs_delay;       /* > 0: RFC 8305 staggered attempts, this many
                                          seconds apart (asyncio's option); 0: each
                                          address in turn */
    int interleave;                    /* with happy eyeballs: addresses of one family
                                          in a row before the other (0: 1) */
    const struct sockaddr *local_addr; /* bind before connecting (NULL: none) */
    socklen_t local_addrlen;
    bool no_delay_off; /* leave Nagle on (TCP_NODELAY is the default) */
} weft_connect_opts;

/* Connect to host:port over TCP: resolve through weft_getaddrinfo (on the
 * executor; numeric hosts are answered on the spot, AI_NUMERICHOST), try
 * each address in turn (or staggered, with happy eyeballs: a new attempt
 * every happy_eyeballs_delay seconds while earlier ones are pending, or at
 * once when one fails; the first to connect wins, the others are closed),
 * and on success wrap the socket with proto and ud as weft_transport_wrap
 * does, TCP_NODELAY on unless no_delay_off.  The future's value is the
 * weft_transport * (.p; the loop owns it; valid until its connection_lost
 * returns); connection_made runs before a task awaiting the future
 * resumes.  Fails with the last address's -errno (-ECONNREFUSED, ...), a
 * WEFT_EAI_* code, -EADDRNOTAVAIL (local_addr leaves no address of its
 * family), -ENOMEM.  Cancelling it (or a timeout around it) closes every
 * half-open socket and cancels a pending lookup.  NULL on failure to start
 * (weft_last_error): -EINVAL (NULL loop, proto or host, port outside
 * 1..65535, bad opts), WEFT_ECLOSED.  opts may be NULL. */
WEFT_NODISCARD weft_future *weft_create_connection(weft_loop *loop, const weft_protocol *proto,
                                                   void *ud, const char *host, int port,
                                                   const weft_connect_opts *opts);

/* Connect to the Unix socket at path (as weft_create_connection; NULL with
 * -EINVAL for a NULL, empty or too long path).  Fails with -ENOENT (nothing
 * there), -ECONNREFUSED (a dead socket file), -EAGAIN (the server's
 * backlog is full: a Unix connect cannot wait for room). */
WEFT_NODISCARD weft_future *weft_create_unix_connection(weft_loop *loop, const weft_protocol *proto,
                                                        void *ud, const char *path);

/* ---- servers ------------------------------------------------------------------ */

/* A server's protocol factory, called for each accepted connection before
 * its transport is made: set *ud (the protocol's pointer) and return 0, or
 * return a negative code to refuse the connection (it is closed, and no
 * callback runs for it).  A NULL factory gives every connection the
 * server's arg as ud.  The factory runs once the connection's transport
 * exists, so a ud it makes always reaches connection_made and
 * connection_lost (free it there); a transport that cannot be made (out of
 * memory) closes the connection and is reported (WEFT_REPORT_IO) before
 * the factory is asked. */
typedef int weft_protocol_factory(weft_server *s, void *arg, void **ud);

/* Options for the servers; zero means the default. */
typedef struct weft_server_opts {
    int family;         /* AF_UNSPEC: every family the host resolves to */
    int backlog;        /* listen backlog; 0: 100 (asyncio's) */
    bool reuse_port;    /* SO_REUSEPORT: several loops (threads) on one port */
    bool no_reuse_addr; /* leave SO_REUSEADDR off (it is on by default) */
    bool start_paused;  /* do not accept until weft_server_start_serving */
    int accept_batch;   /* connections accepted per readiness; 0: 128 */
} weft_server_opts;

/* Accepting.  accept4 (non-blocking, close-on-exec), TCP_NODELAY on
 * accepted TCP sockets.  When accept fails for lack of descriptors or
 * memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) the server stops accepting for
 * 100 ms on a timer (no busy loop) and reports it through the loop's report
 * hook (WEFT_REPORT_IO, the error code); it stays "serving" meanwhile. */

/* Listen on host:port (host NULL or "": every interface, IPv4 and IPv6;
 * port 0: the kernel picks, see weft_server_port) with one listening socket
 * per resolved address (duplicates dropped; IPV6_V6ONLY on IPv6 sockets, so
 * that both families share the port; with port 0 every socket gets the
 * first one's port).  Numeric hosts and NULL resolve on the spot, names on
 * the executor.  Sockets listen at once (start_paused only delays
 * accepting).  Accepted connections get transports driving proto with the
 * ud factory(s, arg, &ud) gives.  The future's value is the weft_server *
 * (.p), which the caller owns (weft_server_free).  Fails with -EADDRINUSE,
 * -EACCES, a WEFT_EAI_* code, -ENOMEM...  NULL on failure to start:
 * -EINVAL (NULL loop or proto, port out of 0..65535, bad opts),
 * WEFT_ECLOSED. */
WEFT_NODISCARD weft_future *weft_create_server(weft_loop *loop, const weft_protocol *proto,
                                               weft_protocol_factory *factory, void *arg,
                                               const char *host, int port,
                                               const weft_server_opts *opts);

/* Listen on the Unix socket at path.  A socket file there that refuses a
 * connection (its server is gone) is replaced; a live server's socket (it
 * sees the probe connect and close) or any other file is -EADDRINUSE.  The
 * file is removed when the server closes, if it is still the one bound.
 * Synchronous: returns 0 with *out set, -EINVAL (NULLs, an empty or too
 * long path, bad opts), -EADDRINUSE, -EACCES, -ENOMEM, WEFT_ECLOSED... */
int weft_create_unix_server(weft_loop *loop, const weft_protocol *proto,
                            weft_protocol_factory *factory, void *arg, const char *path,
                            const weft_server_opts *opts, weft_server **out);

/* Serve on fd, a stream socket the caller made, bound and possibly
 * listening (listen is called if it is not); it is made non-blocking.  On
 * success the server owns fd; on failure it stays the caller's.  Returns
 * 0, -EINVAL (NULLs, a datagram socket, bad opts), -EBADF, -ENOTSOCK,
 * -ENOMEM, WEFT_ECLOSED. */
int weft_server_from_fd(weft_loop *loop, int fd, const weft_protocol *proto,
                        weft_protocol_factory *factory, void *arg, const weft_server_opts *opts,
                        weft_server **out);

/* Start accepting (after start_paused); idempotent.  0, -EINVAL, WEFT_ESTATE (closed). */
int weft_server_start_serving(weft_server *s);

/* True while the server accepts connections. */
bool weft_server_is_serving(const weft_server *s);

/* Stop accepting and close the listening sockets (a Unix server's file
 * is removed); connections already accepted go on; a pending serve_forever
 * is cancelled.  Idempotent; 0 or -EINVAL.  Works after the loop closed. */
int weft_server_close(weft_server *s);

/* Close (weft_transport_close) / abort every connection the server
 * accepted (asyncio 3.13's close_clients / abort_clients).  0 or -EINVAL. */
int weft_server_close_clients(weft_server *s);
int weft_server_abort_clients(weft_server *s);

/* A future done once the server is closed and every connection it
 * accepted is gone, their connection_lost run (the 3.12.1 behaviour);
 * done at once if that is so already.  NULL on failure (-EINVAL, -ENOMEM). */
WEFT_NODISCARD weft_future *weft_server_wait_closed(weft_server *s);

/* Start serving, and a future that stays pending until it is cancelled
 * (asyncio's serve_forever: its task cancelled, a timeout around it); the
 * cancellation closes the server.  NULL on failure: -EINVAL, WEFT_ESTATE
 * (closed, or a serve_forever already waits), WEFT_ECLOSED, -ENOMEM. */
WEFT_NODISCARD weft_future *weft_server_serve_forever(weft_server *s);

/* The port of the first listening socket (what port 0 picked); -1 for a
 * Unix server, once closed, or for NULL. */
int weft_server_port(const weft_server *s);

/* The listening sockets: how many (0 once closed), and the fd of the i-th
 * (-1 when out of range). */
int weft_server_nsockets(const weft_server *s);
int weft_server_socket(const weft_server *s, int i);

/* Connections accepted and not yet lost. */
size_t weft_server_nclients(const weft_server *s);

/* Close the server and abort its clients if not done, and free it (after
 * the clients' connection_lost ran; wait_closed futures complete first).
 * Call it before weft_loop_destroy (after weft_loop_close is fine).  NULL
 * is a no-op. */
void weft_server_free(weft_server *s);

#ifdef __cplusplus
}
#endif
#endif
