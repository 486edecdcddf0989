/* sock.h - socket helpers shared by connect.c and server.c: opening
 * sockets with the right flags, Unix addresses, name resolution with a
 * numeric fast path, and the address list a connect walks.  Never
 * installed.
 */
#ifndef WEFT_SOCK_H
#define WEFT_SOCK_H

#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "future_internal.h"
#include "weft/executor.h"
#include "weft/net.h"

/* A socket of family and type, non-blocking and close-on-exec (and
 * SO_NOSIGPIPE where the platform has it).  The fd, or -errno. */
int weft__sock_open(int family, int type);

/* setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, 1).  0 or -errno. */
int weft__sock_nodelay(int fd);

/* The -errno of the last failed call (errno), -EIO if errno is 0. */
int weft__sock_errno(void);

/* Fill *sun and *len with path.  0, or -EINVAL (NULL or empty path, or one
 * that does not fit in sun_path with its NUL). */
int weft__sock_unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len);

/* One address to bind or connect to. */
typedef struct weft__addr {
    struct sockaddr_storage ss;
    socklen_t len;
    int family;
} weft__addr;

/* Copy the stream addresses of list (AF_INET and AF_INET6 only, with
 * duplicates dropped, in list order) into a new array through the loop's
 * allocator: *out (NULL when there is none) and *n.  0 or -ENOMEM. */
int weft__addrs_from_list(weft_loop *loop, const struct addrinfo *list, weft__addr **out,
                          size_t *n);

/* Reorder a[0..n) as RFC 8305 section 4 and asyncio's interleave option
 * do: the first `first` addresses of the first family, then one of each
 * family in turn (families in order of first appearance).  first >= 1. */
void weft__addrs_interleave(weft__addr *a, size_t n, int first);

/* ---- name resolution ---------------------------------------------------------------------
 *
 * A resolution is a node in weft_getaddrinfo's future: it runs once the
 * future is done.  Numeric hosts (and a NULL host, for servers) never go to
 * the executor: getaddrinfo with AI_NUMERICHOST answers them on the spot. */
typedef struct weft__resolve {
    weft_node node;   /* in gai's waiters while it is pending */
    weft_future *gai; /* a reference, or NULL */
    /* the outcome: a list to free with freeaddrinfo (NULL on error), or err */
    void (*done)(struct weft__resolve *r, struct addrinfo *list, int err);
} weft__resolve;

/* Resolve host:port for stream sockets of family (AF_UNSPEC: both);
 * passive: for binding (a NULL host means every interface).  Returns 0
 * with *list set (a numeric host or NULL: nothing to wait for; free it
 * with freeaddrinfo), 1 if the resolution runs on the executor (r->done
 * will be called from the ready queue), or an error: a WEFT_EAI_* code
 * for a numeric lookup that failed otherwise than on a name, or what
 * weft_getaddrinfo failed with. */
int weft__resolve_start(weft__resolve *r, weft_loop *loop, const char *host, int port, int family,
                        bool passive, struct addrinfo **list);

/* Withdraw a resolution that may be pending: done is never called, the
 * executor's job is cancelled.  Idempotent. */
void weft__resolve_cancel(weft__resolve *r);

/* ---- connecting to known addresses (connect.c) --------------------------------------------
 *
 * weft_create_connection after resolution, and the test seam for happy
 * eyeballs: try a[0..n) (copied) in that order, with the options'
 * staggering and local address, and give the winner a transport.  Returns
 * the future, or NULL with weft_last_error(). */
weft_future *weft__connect_addrs(weft_loop *loop, const weft_protocol *proto, void *ud,
                                 const weft__addr *a, size_t n, const weft_connect_opts *opts);

#endif
