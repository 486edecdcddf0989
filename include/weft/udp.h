/* weft/udp.h - datagram (UDP) endpoints: asyncio's create_datagram_endpoint.
 *
 * An endpoint is weft's object for one datagram socket (UDP over IPv4 or
 * IPv6, or any SOCK_DGRAM socket you wrap).  It is driven two ways, which
 * mix freely:
 *   - a datagram protocol, a table of callbacks (datagram_received gets a
 *     pointer into weft's 64 KiB read buffer, valid during the call);
 *   - awaitable receives for coroutines (weft_udp_recvfrom and
 *     weft_udp_recvfrom_into), each a future done with one datagram.
 * A datagram goes to the oldest pending receive if there is one, else to
 * datagram_received; with neither, weft stops reading and the datagrams
 * wait in the kernel, so nothing is read that nobody takes.  A receive
 * that is cancelled before it completed has read nothing, and one that
 * completed keeps its datagram (a timeout or a cancellation that arrives
 * after the completion lands at the task's next suspension): cancelling a
 * receive never loses a datagram.
 *
 * Sending never buffers: weft_udp_sendto hands the datagram to the kernel
 * at once, or fails with -EAGAIN when the kernel's send buffer is full
 * (nothing is queued, nothing is sent).  That -EAGAIN also pauses the
 * endpoint: pause_writing is called, and once the socket is writable
 * again resume_writing is called and weft_udp_drain futures complete.
 *
 * Every callback runs on the loop, never inside the call that caused it;
 * connection_made first (from the ready queue, after the endpoint exists),
 * connection_lost exactly once, last, after which the endpoint is freed.
 * weft_loop_close closes the endpoints still open: each gets
 * connection_lost(WEFT_ECLOSED) from inside the close (its only callback
 * not run from the ready queue), even if its connection_made never ran.
 *
 * Costs (LP64): an endpoint is one allocation of 432 bytes plus its fd
 * watcher's slot; the loop's UDP state (64 KiB, the read buffer) is made
 * with the first endpoint and freed when the loop closes.  Receiving into
 * datagram_received or into a caller's buffer allocates nothing in steady
 * state; a pending receive or drain is one block of the loop's pool.  Up
 * to 32 datagrams are read per readiness, one recvmsg each.
 */
#ifndef WEFT_UDP_H
#define WEFT_UDP_H

#include <sys/socket.h>
#include <sys/types.h>

#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_udp weft_udp;

/* The largest datagram weft sends or receives (the read buffer's size is
 * this plus one, so that a larger one is seen as truncated). */
#define WEFT_UDP_MAX_DATAGRAM 65535

/* ---- datagram protocols ------------------------------------------------------- *
 *
 * Every member may be NULL (nothing to do); ud is the pointer given with
 * the protocol. */
typedef struct weft_datagram_protocol {
    /* The endpoint is ready: the first callback, from the ready queue.
     * Reading starts after it returns. */
    void (*connection_made)(weft_udp *ep, void *ud);
    /* One datagram of n bytes (n may be 0) from addr (addrlen bytes; the
     * peer's address on a connected endpoint).  data and addr are weft's
     * buffers, valid during the call.  A datagram longer than
     * WEFT_UDP_MAX_DATAGRAM is cut there. */
    void (*datagram_received)(weft_udp *ep, const void *data, size_t n, const struct sockaddr *addr,
                              socklen_t addrlen, void *ud);
    /* A receive found an error the socket reported: an ICMP error
     * (-ECONNREFUSED for port unreachable on a connected endpoint,
     * -EHOSTUNREACH, -ENETUNREACH...) or another -errno.  The endpoint
     * stays open.  When a weft_udp_recvfrom is pending the error fails it
     * instead. */
    void (*error_received)(weft_udp *ep, int err, void *ud);
    /* The endpoint is gone: err 0 after weft_udp_close / weft_udp_abort,
     * WEFT_ECLOSED when the loop closed it.  The last callback; the
     * endpoint is freed after it returns. */
    void (*connection_lost)(weft_udp *ep, int err, void *ud);
    /* The kernel's send buffer is full (a send failed with -EAGAIN) / has
     * room again.  Coalesced: called once per change, from the ready queue,
     * and not at all if the change was undone before it could run. */
    void (*pause_writing)(weft_udp *ep, void *ud);
    void (*resume_writing)(weft_udp *ep, void *ud);
} weft_datagram_protocol;

/* ---- creating endpoints ------------------------------------------------------------------ */

/* Options for weft_udp_open and weft_create_datagram_endpoint (asyncio's
 * keyword arguments); zero-initialise and set what you need.
 *
 * Local side: the socket is bound when local_host is not NULL, or
 * local_port is not 0, or local_addr is given.  local_host "" (or NULL
 * with a port) is every interface of the family; local_port 0 lets the
 * kernel pick (read it with weft_udp_sockname).  Remote side: the socket
 * is connected when remote_host or remote_addr is given (weft_udp_sendto
 * then takes a NULL address).  With neither side, family must be AF_INET
 * or AF_INET6 (the kernel binds on the first send).  The *_addr forms take
 * a ready address (also AF_UNIX) and override host and port. */
typedef struct weft_udp_opts {
    const char *local_host;            /* numeric address or name, "" = any, or NULL */
    int local_port;                    /* 0..65535 */
    const char *remote_host;           /* numeric address or name, or NULL */
    int remote_port;                   /* 0..65535 */
    const struct sockaddr *local_addr; /* instead of local_host/local_port */
    socklen_t local_addrlen;
    const struct sockaddr *remote_addr; /* instead of remote_host/remote_port */
    socklen_t remote_addrlen;
    int family;           /* AF_UNSPEC (what the hosts resolve to), AF_INET, AF_INET6 */
    bool reuse_port;      /* SO_REUSEPORT (several sockets, one port) */
    bool allow_broadcast; /* SO_BROADCAST (send to broadcast addresses) */
} weft_udp_opts;

/* Create an endpoint now, without the executor: every host must be a
 * numeric address ("127.0.0.1", "::1", "") or NULL.  Tries each address
 * (local and remote of one family paired) in turn; the first socket that
 * binds and connects wins.  connection_made(ep, ud) runs from the ready
 * queue.  proto may be NULL (an endpoint read only with weft_udp_recvfrom).
 * *out receives the endpoint.  Returns 0, -EINVAL (NULL loop, opts or out,
 * port out of range, a bad address length, no side and no family),
 * WEFT_EAI_NONAME (a name: use weft_create_datagram_endpoint) or another
 * WEFT_EAI_* code, -EAFNOSUPPORT (no local and remote address of one
 * family), the socket calls' -errno (-EADDRINUSE, ...), -ENOMEM,
 * WEFT_ECLOSED, -EPERM (debug thread check); nothing is left behind. */
int weft_udp_open(weft_loop *loop, const weft_datagram_protocol *proto, void *ud,
                  const weft_udp_opts *opts, weft_udp **out);

/* asyncio's create_datagram_endpoint: weft_udp_open, with names resolved
 * through weft_getaddrinfo on the executor (numeric hosts never go there).
 * The future's value .p is the weft_udp * (valid until its
 * connection_lost returns); its error is one weft_udp_open returns, or a
 * resolution error.  Cancelling it while it resolves cancels the lookups.
 * NULL on failure to start (weft_last_error(): -EINVAL as weft_udp_open,
 * -ENOMEM, WEFT_ECLOSED, -EPERM). */
WEFT_NODISCARD weft_future *weft_create_datagram_endpoint(weft_loop *loop,
                                                          const weft_datagram_protocol *proto,
                                                          void *ud, const weft_udp_opts *opts);

/* Wrap fd, a datagram socket the caller made (asyncio's sock= argument):
 * bound or not, connected or not.  On success the endpoint owns fd (made
 * non-blocking) and closes it.  Returns 0, -EINVAL (NULL loop or out,
 * fd < 0), -ENOTSOCK, -EPROTOTYPE (not SOCK_DGRAM), -EBADF, -EEXIST (the
 * loop already watches fd), -ENOMEM, WEFT_ECLOSED, -EPERM; on failure fd
 * is left open and untouched. */
int weft_udp_from_fd(weft_loop *loop, int fd, const weft_datagram_protocol *proto, void *ud,
                     weft_udp **out);

/* ---- sending ----------------------------------------------------------------------------- */

/* Send one datagram of n bytes (0 is allowed) to addr (addrlen bytes), or
 * to the peer when addr is NULL on a connected endpoint.  The kernel takes
 * it or nothing happens.  Returns 0 (sent); -EAGAIN (the send buffer is
 * full: the endpoint pauses writing, see weft_udp_drain); -EINVAL (NULL
 * ep, NULL data with n > 0, addrlen 0 or too long); -EMSGSIZE (n beyond
 * WEFT_UDP_MAX_DATAGRAM, or beyond what the kernel sends); -EDESTADDRREQ
 * (no address on an unconnected endpoint); -EISCONN (an address other than
 * the peer's on a connected one); WEFT_ESTATE (closed: after
 * weft_udp_close or weft_udp_abort, until connection_lost); -EPERM (debug
 * thread check); else the kernel's -errno (-ECONNREFUSED for an ICMP
 * error not yet read, -EACCES for a broadcast without allow_broadcast,
 * -ENETUNREACH, ...).  asyncio passes these to error_received instead. */
int weft_udp_sendto(weft_udp *ep, const void *data, size_t n, const struct sockaddr *addr,
                    socklen_t addrlen);

/* A future done (value 0) once writing is not paused: at once if it is
 * not, else when the socket is writable again.  Fails with WEFT_ESTATE if
 * the endpoint closes first (WEFT_ECLOSED with the loop).  NULL on
 * failure (-EINVAL, WEFT_ESTATE after close, -ENOMEM, -EPERM). */
WEFT_NODISCARD weft_future *weft_udp_drain(weft_udp *ep);

/* True while writing is paused (since a send failed with -EAGAIN). */
bool weft_udp_is_writing_paused(const weft_udp *ep);

/* Bytes the kernel holds in the socket's send queue, not yet sent
 * (SIOCOUTQ where the platform has it, else 0).  weft itself buffers
 * nothing, so asyncio's get_write_buffer_size is always 0 here plus what
 * the kernel holds.  0 for NULL or a closed endpoint. */
size_t weft_udp_get_write_buffer_size(const weft_udp *ep);

/* ---- receiving in coroutines ------------------------------------------------------------- */

/* One received datagram: the value (.p) of a receive future.  It lives in
 * the future: read it while the future lives (inside a coroutine, until
 * its next await; WEFT_RESULT(self).p). */
typedef struct weft_datagram {
    const void *data;  /* the bytes: the future's own buffer, or the caller's */
    size_t n;          /* bytes stored */
    bool truncated;    /* the datagram was longer than the buffer: the rest is lost */
    socklen_t addrlen; /* the sender's address */
    struct sockaddr_storage addr;
} weft_datagram;

/* Receive one datagram of at most bufsize bytes (0: WEFT_UDP_MAX_DATAGRAM)
 * into a buffer the future owns (asyncio's loop.sock_recvfrom).  Pending
 * receives are served in call order, before datagram_received.  The future
 * fails with an error the socket reports (-ECONNREFUSED...), WEFT_ESTATE if
 * the endpoint closes first, WEFT_ECLOSED with the loop.  Cancelling it
 * reads nothing.  One block of 272 bytes plus bufsize (from the loop's
 * pool, allocation-free in steady state, up to bufsize 240; beyond, and
 * for the default 64 KiB, one allocator call per receive: use
 * weft_udp_recvfrom_into on a hot path).  NULL on
 * failure (-EINVAL: NULL ep or bufsize beyond the maximum; WEFT_ESTATE:
 * closed; -ENOMEM; -EPERM). */
WEFT_NODISCARD weft_future *weft_udp_recvfrom(weft_udp *ep, size_t bufsize);

/* The same into buf (cap bytes) that the caller owns (asyncio's
 * loop.sock_recvfrom_into), which must stay valid until the future is
 * done or cancelled (a coroutine frame is the natural place).  weft reads
 * straight into it: no copy, and no allocation in steady state.  The
 * value's data is buf.  NULL on failure (-EINVAL also for NULL buf with
 * cap > 0). */
WEFT_NODISCARD weft_future *weft_udp_recvfrom_into(weft_udp *ep, void *buf, size_t cap);

/* ---- reading, closing -------------------------------------------------------------------- */

/* Stop / resume calling datagram_received (pending receives are still
 * served; the datagrams wait in the kernel, which drops what does not
 * fit).  Idempotent.  0, -EINVAL, WEFT_ESTATE (closed). */
int weft_udp_pause_reading(weft_udp *ep);
int weft_udp_resume_reading(weft_udp *ep);
bool weft_udp_is_reading(const weft_udp *ep);

/* Close: stop reading, close the socket, fail pending receives and drains
 * with WEFT_ESTATE; connection_lost(ep, 0, ud) follows from the ready
 * queue.  With nothing ever buffered, close and abort are the same (both
 * kept for asyncio's names).  Idempotent.  0 or -EINVAL, -EPERM. */
int weft_udp_close(weft_udp *ep);
int weft_udp_abort(weft_udp *ep);

/* True once close or abort was called. */
bool weft_udp_is_closing(const weft_udp *ep);

/* ---- get_extra_info ---------------------------------------------------------------------- */

/* The socket (-1 for NULL or once closed). */
int weft_udp_fd(const weft_udp *ep);

/* getsockname / getpeername into *addr (*len in and out).  0, -EINVAL
 * (NULL), WEFT_ESTATE (closed), -ENOTCONN (peername of an unconnected
 * endpoint), or the call's -errno. */
int weft_udp_sockname(const weft_udp *ep, struct sockaddr *addr, socklen_t *len);
int weft_udp_peername(const weft_udp *ep, struct sockaddr *addr, socklen_t *len);

/* The local port (what port 0 picked), or -1 (NULL, closed, not IP). */
int weft_udp_port(const weft_udp *ep);

/* The loop; the protocol's ud; NULL for NULL. */
weft_loop *weft_udp_loop(const weft_udp *ep);
void *weft_udp_protocol_ud(const weft_udp *ep);

/* Counters of one endpoint. */
typedef struct weft_udp_stats {
    uint64_t datagrams_received; /* delivered to datagram_received or a receive */
    uint64_t datagrams_sent;     /* taken by the kernel */
    uint64_t errors_received;    /* socket errors found by receives */
    uint64_t eagain;             /* sends refused with -EAGAIN */
} weft_udp_stats;

/* Copy ep's counters into *out.  0 or -EINVAL. */
int weft_udp_get_stats(const weft_udp *ep, weft_udp_stats *out);

#ifdef __cplusplus
}
#endif
#endif
