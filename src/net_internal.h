/* net_internal.h - what the servers, clients and streams use of the
 * transports.  Never installed.
 *
 * A transport carries one list node that the transport layer never
 * touches: its owner (a server) links it into its own list of clients,
 * and an on-free hook tells the owner when the transport goes.
 */
#ifndef WEFT_NET_INTERNAL_H
#define WEFT_NET_INTERNAL_H

#include "weft/net.h"

/* An intrusive doubly linked list node. */
typedef struct weft__tlink {
    struct weft__tlink *prev, *next;
} weft__tlink;

/* The transport's embedded list node, free for its owner (a server); the
 * transport layer never reads or writes it (it starts zeroed). */
weft__tlink *weft__transport_link(weft_transport *t);

/* The transport whose node l is (the inverse of weft__transport_link). */
weft_transport *weft__transport_of_link(weft__tlink *l);

/* fn(t, ctx) runs after connection_lost returned, just before t is freed
 * (one hook per transport; a second call replaces the first, fn NULL
 * removes it).  It also runs when the loop's close releases t. */
void weft__transport_on_free(weft_transport *t, void (*fn)(weft_transport *t, void *ctx),
                             void *ctx);

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
