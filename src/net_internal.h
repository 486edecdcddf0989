/* net_internal.h - what the servers, clients and streams use of the
 * transports.  Never installed.
 *
 * A transport accepted by a server knows its owner: the server counts
 * its clients, hears of each one's end, and finds them (to close or abort
 * them) in the loop's fd table, so a transport carries no list node.
 */
#ifndef WEFT_NET_INTERNAL_H
#define WEFT_NET_INTERNAL_H

#include "weft/net.h"

/* A word of t's for its protocol (streams keep their waiters there):
 * NULL at first, never read or written by the transport layer; it goes
 * with t, after connection_lost. */
void **weft__transport_word(weft_transport *t);

/* Make s t's owner (the server that accepted it): after t's
 * connection_lost returned, just before t is freed (also when the loop's
 * close releases t), weft__server_client_gone(s) runs. */
void weft__transport_set_owner(weft_transport *t, weft_server *s);

/* server.c's: a transport owned by s is about to be freed. */
void weft__server_client_gone(weft_server *s);

/* fn(t) for every transport of loop owned by s, in fd order, stopping
 * after the n-th (n: how many s owns).  O(largest fd of the loop).  fn
 * must not free a transport (close and abort do not: connection_lost
 * runs from the ready queue). */
void weft__transport_each_owned(weft_loop *loop, const weft_server *s, size_t n,
                                int (*fn)(weft_transport *t));

/* Wrap an fd known to be a connected, non-blocking stream socket (accept4
 * / connect results): no probing syscalls.  Returns as weft_transport_wrap
 * (-EINVAL, -EEXIST, -ENOMEM, WEFT_ECLOSED); on failure fd is left open. */
int weft__transport_adopt_socket(weft_loop *loop, int fd, const weft_protocol *proto, void *ud,
                                 weft_transport **out);

/* Close and free t before any callback ran (its connection_made still
 * pending): no callback runs, the fd is closed. */
void weft__transport_discard(weft_transport *t);

/* What a writer waiting on t has to do, in one call: WEFT__T_CLEAR (the
 * buffer is at or below the high-water mark), WEFT__T_ABOVE (above it) or
 * WEFT__T_CLOSING (closing or lost). */
enum { WEFT__T_CLEAR, WEFT__T_ABOVE, WEFT__T_CLOSING };
int weft__transport_write_state(const weft_transport *t);

/* The head of a list stream.c keeps in the loop's net layer (the stream
 * servers' wrapper descriptors, in pool blocks that outlive the layer), or
 * NULL (-ENOMEM: the layer cannot be made).  The layer goes at the loop's
 * close, after which nothing is added. */
void **weft__net_serve_infos(weft_loop *loop);

#endif
