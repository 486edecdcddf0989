/* transport.c - stream transports over fds: sockets, pipes, FIFOs, ttys.
 *
 * A transport is one block (120 bytes on LP64, weft__alloc) that
 * embeds its weft_io: readiness goes straight to it, with no lookup.  The watcher's own ready
 * node also carries the deferred callbacks (connection_made, the flow
 * control calls, connection_lost): a pending flag is set and the node is
 * queued, and the watcher's callback runs them before any I/O.  So a
 * transport has a single node and its callbacks never run inside the call
 * that caused them.
 *
 * Reads go into one buffer per loop (64 KiB, made with the loop's first
 * transport and freed when the loop closes), and data_received gets a
 * pointer into it: nothing is allocated per read.  A write is tried at
 * once when nothing is queued; only what the kernel did not take is copied
 * into the transport's write buffer, which lives while data is queued (a
 * small one is kept for reuse).  The watcher wants WRITABLE only while
 * data is queued, READABLE while reading is wanted; readiness is
 * level-triggered, so a read stops at EAGAIN, at a short read, or after
 * READS_PER_EVENT full buffers (fairness).
 *
 * Lifetime: loss (an error, a close that has flushed, an abort) stops the
 * watcher and queues connection_lost; after it returns the fd is closed,
 * the owning server hears of it and the block is freed.  The watcher stays
 * registered until then, so the fd number cannot be reused under it and
 * the loop's close finds every live transport in its fd table.
 *
 * Costs: a read or write is one system call and no allocation in steady
 * state; a buffered write costs one copy (and a buffer growth by doubling);
 * interest changes are the loop's O(1) change list.
 */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loop_internal.h"
#include "net_internal.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* SO_NOSIGPIPE is set on the socket instead */
#define WEFT__NOSIGPIPE_OPT 1
#endif
#ifdef IOV_MAX
#define T_IOV_MAX IOV_MAX
#else
#define T_IOV_MAX 16 /* POSIX's minimum */
#endif

enum {
    RBUF_SIZE = 64 * 1024, /* the loop's shared read buffer */
    READS_PER_EVENT = 4,   /* full reads per readiness before yielding */
    WBUF_MIN = 1024,       /* smallest write buffer */
    WBUF_KEEP = 4096,      /* a drained buffer up to this size is kept */
};

/* flags */
enum {
    T_SOCKET = 1u << 0,  /* send / sendmsg / shutdown */
    T_READS = 1u << 1,   /* the fd is read */
    T_WRITES = 1u << 2,  /* the fd is written */
    T_MADE = 1u << 3,    /* connection_made ran */
    T_READING = 1u << 4, /* reading wanted (not paused) */
    T_EOF = 1u << 5,     /* the peer's EOF was read */
    T_CLOSING = 1u << 6, /* close or abort called */
    T_WEOF = 1u << 7,    /* write_eof called */
    T_SHUT = 1u << 8,    /* the write side is shut */
    T_LOST = 1u << 9,    /* gone: connection_lost queued, buffer dropped */
    T_DONE = 1u << 10,   /* connection_lost runs or ran */
    T_PAUSED = 1u << 11, /* over the high-water mark (what the protocol is to see) */
    T_SEEN = 1u << 12,   /* pause_writing was delivered (and no resume since) */
    P_MADE = 1u << 13,   /* pending: connection_made */
    P_FLOW = 1u << 14,   /* pending: pause_writing or resume_writing */
};
#define T_PENDING (P_MADE | P_FLOW | T_LOST)

/* The write buffer: data[off .. end) is queued. */
typedef struct wbuf {
    size_t off, end, cap;
    unsigned char data[];
} wbuf;

struct weft_transport {
    weft_io io; /* first: its node carries the deferred callbacks too */
    const weft_protocol *proto;
    void *ud;
    union {
        wbuf *wb;         /* until lost (NULL: nothing queued, nothing kept) */
        uint64_t dropped; /* once lost: bytes written since */
    } w;
    uint32_t high, low; /* flow-control marks */
    uint32_t flags;
    int err;            /* connection_lost's argument, once lost */
    weft_server *owner; /* the server that accepted it, or NULL */
    void *word;         /* the protocol's (weft__transport_word) */
};

/* 120 bytes: with malloc's header, a 128-byte chunk */
_Static_assert(sizeof(void *) != 8 || sizeof(weft_transport) <= 120, "weft_transport grew");

/* The loop's transport state: the layer header and the read buffer. */
typedef struct net_layer {
    weft__layer base;
    void *serve_infos; /* stream.c's (weft__net_serve_infos) */
    unsigned char rbuf[RBUF_SIZE];
} net_layer;

static void t_io(weft_io *w, unsigned ev);

static weft_transport *t_of(weft_io *w)
{
    return WEFT_CONTAINER_OF(w, weft_transport, io);
}

/* A transport is an allocator block (weft__alloc): its 120 bytes make a
 * 128-byte chunk, what a pool class would take too.  (At 112 bytes the
 * pool would save a class step, but share its class with a 64-byte read's
 * data block, whose free then pays the pool's trim test on a class of many
 * slabs: 5-6 instructions per round trip of the stream echo.) */
static weft_transport *t_alloc(weft_loop *loop)
{
    return weft__alloc(loop, sizeof(weft_transport));
}

static void t_free(weft_loop *loop, weft_transport *t)
{
    weft__free(loop, t);
}

static size_t queued(const weft_transport *t)
{
    return !(t->flags & T_LOST) && t->w.wb ? t->w.wb->end - t->w.wb->off : 0;
}

/* ---- the loop's state -------------------------------------------------------------- */

static void release(weft_transport *t, int err);

/* Loop close: release every transport still open (connection_lost with
 * WEFT_ECLOSED, or the error already pending), then the read buffer.  The
 * transports are found in the loop's fd table (O(largest fd), once). */
static void net_close(weft_loop *loop, weft__layer *self)
{
    for (size_t i = 0; i < loop->nfds; i++) {
        weft_io *w = loop->fds[i];
        if (w && w->cb == t_io)
            release(t_of(w), WEFT_ECLOSED);
    }
    weft__layer_set(loop, WEFT__LAYER_NET, NULL);
    weft__free(loop, self);
}

static net_layer *net_of(weft_loop *loop)
{
    weft__layer *l = weft__layer_get(loop, WEFT__LAYER_NET);
    if (l)
        return (net_layer *)(void *)l;
    net_layer *n = weft__alloc(loop, sizeof *n);
    if (!n)
        return NULL;
    n->base = (weft__layer){net_close, NULL, NULL};
    n->serve_infos = NULL;
    weft__layer_set(loop, WEFT__LAYER_NET, &n->base);
    return n;
}

/* ---- interest, pending callbacks and loss -------------------------------------------- */

/* Make the watcher's interest what the state wants, and keep the node
 * queued while a callback is pending (changing the interest unqueues a
 * watcher that has no events gathered). */
static void t_sync(weft_transport *t)
{
    unsigned f = t->flags, want = 0;
    if (!(f & T_LOST)) {
        if ((f & (T_READS | T_MADE | T_READING)) == (T_READS | T_MADE | T_READING) &&
            !(f & (T_EOF | T_CLOSING)))
            want |= WEFT_READABLE;
        if (!(f & T_READS) && (f & T_MADE))
            want |= WEFT_READABLE; /* a write-only fd: notices the reader going */
        if (queued(t))
            want |= WEFT_WRITABLE;
    }
    unsigned cur = t->io.events;
    if (cur & ~want)
        weft_io_stop(&t->io, cur & ~want);
    if (want & ~cur)
        weft_io_start(&t->io, want & ~cur);
    if ((t->flags & T_PENDING) && !weft__node_linked(&t->io.node) && t->io.loop)
        weft__ready_push(t->io.loop, &t->io.node);
}

static void free_wbuf(weft_transport *t)
{
    if (!(t->flags & T_LOST) && t->w.wb) {
        weft__free(t->io.loop, t->w.wb);
        t->w.wb = NULL;
    }
}

/* The connection is gone: drop the buffer, stop watching, queue
 * connection_lost(err).  Once. */
static void lose(weft_transport *t, int err)
{
    if (t->flags & T_LOST)
        return;
    free_wbuf(t);
    t->flags |= T_LOST;
    t->w.dropped = 0;
    t->err = err;
    t_sync(t);
}

/* connection_lost, then the fd, the owner and the block. */
static void finish(weft_transport *t)
{
    t->flags |= T_DONE;
    weft_loop *loop = t->io.loop;
    int fd = t->io.fd;
    if (t->proto->connection_lost)
        t->proto->connection_lost(t, t->err, t->ud);
    weft_io_close(&t->io); /* unqueues the node too */
    close(fd);
    if (t->owner)
        weft__server_client_gone(t->owner);
    t_free(loop, t);
}

/* Loop close: finish t now, with its pending error or err. */
static void release(weft_transport *t, int err)
{
    if (weft__node_linked(&t->io.node))
        weft__node_unlink(&t->io.node);
    lose(t, err);
    finish(t);
}

/* Set the flow state to paused (or not); the protocol hears of a change
 * now when direct (from the watcher's callback), else from the ready
 * queue; a change undone before it was delivered is never delivered. */
static void flow_set(weft_transport *t, bool paused, bool direct)
{
    if ((t->flags & T_LOST) || paused == !!(t->flags & T_PAUSED))
        return;
    t->flags ^= T_PAUSED;
    bool seen = t->flags & T_SEEN;
    if (paused == seen) {
        t->flags &= ~(uint32_t)P_FLOW; /* back where the protocol thinks it is */
        return;
    }
    if (direct && !(t->flags & P_FLOW)) {
        t->flags ^= T_SEEN;
        void (*fn)(weft_transport *, void *) =
            paused ? t->proto->pause_writing : t->proto->resume_writing;
        if (fn)
            fn(t, t->ud);
        return;
    }
    t->flags |= P_FLOW;
    t_sync(t);
}

/* The buffer may have crossed a mark. */
static void flow_check(weft_transport *t, bool direct)
{
    size_t n = queued(t);
    if (n > t->high)
        flow_set(t, true, direct);
    else if (n <= t->low)
        flow_set(t, false, direct);
}

/* ---- writing ------------------------------------------------------------------------- */

static inline ssize_t sys_write(const weft_transport *t, const void *p, size_t n)
{
    ssize_t k;
    do
        k = (t->flags & T_SOCKET) ? send(t->io.fd, p, n, MSG_NOSIGNAL) : write(t->io.fd, p, n);
    while (k < 0 && errno == EINTR);
    return k;
}

static ssize_t sys_writev(const weft_transport *t, const struct iovec *iov, int cnt)
{
    if (cnt > T_IOV_MAX)
        cnt = T_IOV_MAX;
    ssize_t k;
    do {
        if (t->flags & T_SOCKET) {
            struct msghdr m;
            memset(&m, 0, sizeof m);
            m.msg_iov = (struct iovec *)(void *)iov;
            m.msg_iovlen = (size_t)cnt;
            k = sendmsg(t->io.fd, &m, MSG_NOSIGNAL);
        } else {
            k = writev(t->io.fd, iov, cnt);
        }
    } while (k < 0 && errno == EINTR);
    return k;
}

/* A write that failed with errno: 0 to queue the rest (EAGAIN), or the
 * connection is lost (EPIPE, ECONNRESET, ...) and -1 is returned. */
static int write_failed(weft_transport *t)
{
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK)
        return 0;
    lose(t, -e);
    return -1;
}

/* Room for n more bytes at the buffer's end: compacts, else grows by
 * doubling.  -ENOMEM. */
static int wbuf_reserve(weft_transport *t, size_t n)
{
    wbuf *b = t->w.wb;
    size_t used = b ? b->end - b->off : 0;
    if (b && b->cap - b->end >= n)
        return 0;
    if (b && b->off) {
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->end = used;
        if (b->cap - used >= n)
            return 0;
    }
    if (n > SIZE_MAX - sizeof *b - used)
        return -ENOMEM;
    size_t need = used + n, cap = b ? b->cap : WBUF_MIN;
    while (cap < need)
        cap = cap > (SIZE_MAX - sizeof *b) / 2 ? need : cap * 2;
    wbuf *nb = weft__realloc(t->io.loop, b, sizeof *nb + cap);
    if (!nb)
        return -ENOMEM;
    if (!b)
        nb->off = nb->end = 0;
    nb->cap = cap;
    t->w.wb = nb;
    return 0;
}

/* After copying into the buffer: watch for writability, check the mark. */
static void queued_more(weft_transport *t)
{
    t_sync(t);
    flow_check(t, false);
}

/* The kernel took nothing or part (sent bytes) of a write of total bytes
 * and the rest could not be buffered: with nothing sent the write simply
 * fails; a partly sent one leaves the stream torn, so the connection is
 * lost with -ENOMEM. */
static int enqueue_failed(weft_transport *t, size_t sent)
{
    if (sent)
        lose(t, -ENOMEM);
    return -ENOMEM;
}

/* The checks every write makes: < 0 an error, 1 dropped (lost), 0 go on. */
static int write_check(weft_transport *t, size_t n)
{
    if (t->flags & (T_CLOSING | T_WEOF))
        return WEFT_ESTATE;
    if (!(t->flags & T_WRITES))
        return -ENOTSUP;
    if (t->flags & T_LOST) {
        t->w.dropped += n;
        return 1;
    }
    return 0;
}

/* What a write that is tried at once leaves: k is what the kernel took
 * (< 0: errno says why); the rest is buffered. */
static int write_rest(weft_transport *t, const unsigned char *p, size_t n, ssize_t k)
{
    if (k < 0 && write_failed(t))
        return 0;
    size_t sent = k > 0 ? (size_t)k : 0;
    if (sent == n)
        return 0;
    if (wbuf_reserve(t, n - sent))
        return enqueue_failed(t, sent);
    memcpy(t->w.wb->data + t->w.wb->end, p + sent, n - sent);
    t->w.wb->end += n - sent;
    queued_more(t);
    return 0;
}

WEFT__COLD static int write_slow(weft_transport *t, const unsigned char *p, size_t n)
{
    if (!t || (!p && n))
        return -EINVAL;
    int err = write_check(t, n);
    if (err)
        return err < 0 ? err : 0;
    if (n == 0)
        return 0;
    if (queued(t))
        return write_rest(t, p, n, 0);
    return write_rest(t, p, n, sys_write(t, p, n));
}

/* The common write's send took k bytes of n, not all (k < 0: errno says
 * why; EINTR is tried again). */
WEFT__COLD static int write_short(weft_transport *t, const unsigned char *p, size_t n, ssize_t k)
{
    if (k < 0 && errno == EINTR)
        k = sys_write(t, p, n);
    return write_rest(t, p, n, k);
}

int weft_transport_write(weft_transport *t, const void *data, size_t n)
{
    /* the common case: a writable socket, nothing queued (T_LOST is
     * excluded, so the union holds the buffer); one system call and only
     * t, data and n kept across it */
    if (!t || !data || !n)
        return write_slow(t, data, n);
    const wbuf *b = t->w.wb;
    if ((t->flags & (T_SOCKET | T_WRITES | T_CLOSING | T_WEOF | T_LOST)) != (T_SOCKET | T_WRITES) ||
        (b && b->end != b->off))
        return write_slow(t, data, n);
    ssize_t k = send(t->io.fd, data, n, MSG_NOSIGNAL);
    if (k == (ssize_t)n)
        return 0;
    return write_short(t, data, n, k);
}

int weft_transport_writev(weft_transport *t, const struct iovec *iov, int iovcnt)
{
    if (!t || iovcnt < 0 || (!iov && iovcnt > 0))
        return -EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
        if (iov[i].iov_len > SIZE_MAX - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    int err = write_check(t, total);
    if (err)
        return err < 0 ? err : 0;
    if (total == 0)
        return 0;
    size_t sent = 0;
    if (!queued(t)) {
        ssize_t k = sys_writev(t, iov, iovcnt);
        if (k < 0 && write_failed(t))
            return 0;
        sent = k > 0 ? (size_t)k : 0;
        if (sent == total)
            return 0;
    }
    if (wbuf_reserve(t, total - sent))
        return enqueue_failed(t, sent);
    wbuf *b = t->w.wb;
    size_t skip = sent;
    for (int i = 0; i < iovcnt; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(b->data + b->end, (const unsigned char *)iov[i].iov_base + skip, len - skip);
        b->end += len - skip;
        skip = 0;
    }
    queued_more(t);
    return 0;
}

/* Shut the write side now (the buffer is empty). */
static void shut_write(weft_transport *t)
{
    t->flags |= T_SHUT;
    if (!(t->flags & T_SOCKET)) {
        lose(t, 0); /* a write pipe: closing it is its EOF */
        return;
    }
    if (shutdown(t->io.fd, SHUT_WR) < 0 && errno != ENOTCONN)
        lose(t, -errno);
}

/* The buffer drained: free a large one, then what waited for the flush. */
static void drained(weft_transport *t)
{
    wbuf *b = t->w.wb;
    b->off = b->end = 0;
    if (b->cap > WBUF_KEEP)
        free_wbuf(t);
    if (t->flags & T_CLOSING)
        lose(t, 0);
    else if ((t->flags & T_WEOF) && !(t->flags & T_SHUT))
        shut_write(t);
}

/* The fd is writable: one write of what is queued. */
static void on_writable(weft_transport *t)
{
    wbuf *b = t->w.wb;
    ssize_t k = sys_write(t, b->data + b->off, b->end - b->off);
    if (k < 0) {
        write_failed(t);
        return;
    }
    b->off += (size_t)k;
    if (b->off == b->end)
        drained(t);
    flow_check(t, true);
    t_sync(t);
}

/* ---- reading ------------------------------------------------------------------------------ */

static void on_eof(weft_transport *t)
{
    t->flags |= T_EOF;
    t_sync(t);
    bool keep = t->proto->eof_received && t->proto->eof_received(t, t->ud);
    if (!(t->flags & T_WRITES) || !keep)
        weft_transport_close(t); /* a read-only fd always closes */
}

/* on_readable's general case, after its first read got n: deliver, then
 * read again while the buffer came back full (READS_PER_EVENT reads in
 * all, an EINTR counted as one). */
WEFT__COLD static void read_slow(weft_transport *t, unsigned char *buf, ssize_t n)
{
    for (int i = 1;; i++) {
        if (n > 0) {
            if (t->proto->data_received)
                t->proto->data_received(t, buf, (size_t)n, t->ud);
            if ((size_t)n < RBUF_SIZE || (t->flags & (T_LOST | T_CLOSING | T_EOF)) ||
                !(t->flags & T_READING))
                return;
        } else if (n == 0) {
            on_eof(t);
            return;
        } else if (errno != EINTR) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                lose(t, -errno);
            return;
        }
        if (i == READS_PER_EVENT)
            return;
        n = read(t->io.fd, buf, RBUF_SIZE);
    }
}

/* Up to READS_PER_EVENT reads.  The common one (a short read: the socket
 * is drained) hands the data over as a tail call, t and buf the only
 * values kept across the read. */
static void on_readable(weft_transport *t, unsigned char *buf)
{
    ssize_t n = read(t->io.fd, buf, RBUF_SIZE);
    void (*fn)(weft_transport *, const void *, size_t, void *) = t->proto->data_received;
    if (n > 0 && n < RBUF_SIZE && fn) {
        fn(t, buf, (size_t)n, t->ud);
        return;
    }
    read_slow(t, buf, n);
}

/* An error condition nobody's read or write consumed. */
static void on_error(weft_transport *t)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (t->flags & T_SOCKET) {
        if (getsockopt(t->io.fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
            e = errno;
    } else if (fcntl(t->io.fd, F_GETFL) < 0) {
        e = errno; /* closed under us */
    }
    if (e)
        lose(t, -e);
}

/* ---- the watcher's callback ---------------------------------------------------------------- */

WEFT__COLD static void t_io_slow(weft_transport *t, unsigned ev);

static void t_io(weft_io *w, unsigned ev)
{
    weft_transport *t = t_of(w);
    /* the common case: data to read, nothing pending, nothing queued
     * (READABLE gathered means READABLE still wanted: dropping the
     * interest drops the events gathered for it) */
    if (ev == WEFT_READABLE && (t->flags & (T_READS | T_PENDING)) == T_READS) {
        net_layer *n = (net_layer *)(void *)weft__layer_get(w->loop, WEFT__LAYER_NET);
        on_readable(t, n->rbuf);
        return;
    }
    t_io_slow(t, ev);
}

static void t_io_slow(weft_transport *t, unsigned ev)
{
    weft_io *w = &t->io;
    uint32_t pend = t->flags & T_PENDING;
    t->flags &= ~(uint32_t)(P_MADE | P_FLOW);
    if (pend & P_MADE) {
        t->flags |= T_MADE;
        if (t->proto->connection_made)
            t->proto->connection_made(t, t->ud);
        t_sync(t); /* reading starts now */
    }
    if (pend & T_LOST) {
        finish(t);
        return;
    }
    if ((pend & P_FLOW) && !(t->flags & T_LOST) &&
        !!(t->flags & T_PAUSED) != !!(t->flags & T_SEEN)) {
        t->flags ^= T_SEEN;
        void (*fn)(weft_transport *, void *) =
            (t->flags & T_PAUSED) ? t->proto->pause_writing : t->proto->resume_writing;
        if (fn)
            fn(t, t->ud);
    }
    if (t->flags & T_LOST)
        return;
    if ((ev & WEFT_READABLE) && !(t->flags & T_READS)) {
        /* a write-only fd turns "readable" when its reader is gone */
        lose(t, queued(t) ? -EPIPE : 0);
        return;
    }
    if ((ev & WEFT_WRITABLE) && queued(t))
        on_writable(t);
    if ((ev & WEFT_READABLE) && (t->io.events & WEFT_READABLE) && !(t->flags & T_LOST)) {
        net_layer *n = (net_layer *)(void *)weft__layer_get(w->loop, WEFT__LAYER_NET);
        on_readable(t, n->rbuf);
    } else if ((ev & WEFT_IO_ERROR) && !(t->flags & T_LOST)) {
        on_error(t);
    }
}

/* ---- creation -------------------------------------------------------------------------------- */

static int create(weft_loop *loop, int fd, uint32_t kind, int fl, const weft_protocol *proto,
                  void *ud, weft_transport **out)
{
    if (!net_of(loop))
        return -ENOMEM;
    weft_transport *t = t_alloc(loop);
    if (!t)
        return -ENOMEM;
    memset(t, 0, sizeof *t);
    int err = weft_io_init(&t->io, loop, fd, t_io);
    if (err) {
        t_free(loop, t);
        return err;
    }
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        err = -errno;
        weft_io_close(&t->io);
        t_free(loop, t);
        return err;
    }
#ifdef WEFT__NOSIGPIPE_OPT
    if (kind & T_SOCKET) {
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
    }
#endif
    t->proto = proto;
    t->ud = ud;
    t->high = WEFT_WRITE_HIGH_DEFAULT;
    t->low = WEFT_WRITE_LOW_DEFAULT;
    t->flags = kind | T_READING | P_MADE;
    weft__ready_push(loop, &t->io.node); /* connection_made */
    if (out)
        *out = t;
    return 0;
}

static int loop_check(weft_loop *loop, int fd, const weft_protocol *proto)
{
    if (!loop || !proto || fd < 0)
        return -EINVAL;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    return 0;
}

int weft_transport_wrap(weft_loop *loop, int fd, const weft_protocol *proto, void *ud,
                        weft_transport **out)
{
    int err = loop_check(loop, fd, proto);
    if (err)
        return err;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
        return -EPERM; /* always "ready": not pollable */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    uint32_t kind;
    if (S_ISSOCK(st.st_mode)) {
        int type = 0;
        socklen_t len = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
            return -errno;
        int listening = 0;
#ifdef SO_ACCEPTCONN
        len = sizeof listening;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
            listening = 0;
#endif
        if (type != SOCK_STREAM || listening)
            return -EINVAL; /* a datagram or a listening socket */
        kind = T_SOCKET | T_READS | T_WRITES;
    } else {
        int acc = fl & O_ACCMODE;
        kind = acc == O_RDONLY ? T_READS : acc == O_WRONLY ? T_WRITES : T_READS | T_WRITES;
    }
    return create(loop, fd, kind, fl, proto, ud, out);
}

int weft__transport_adopt_socket(weft_loop *loop, int fd, const weft_protocol *proto, void *ud,
                                 weft_transport **out)
{
    int err = loop_check(loop, fd, proto);
    return err ? err : create(loop, fd, T_SOCKET | T_READS | T_WRITES, O_NONBLOCK, proto, ud, out);
}

/* ---- closing ------------------------------------------------------------------------------------
 */

int weft_transport_close(weft_transport *t)
{
    if (!t)
        return -EINVAL;
    if (t->flags & (T_CLOSING | T_LOST))
        return 0;
    t->flags |= T_CLOSING;
    if (!queued(t))
        lose(t, 0);
    else
        t_sync(t); /* reading stops; the flush goes on */
    return 0;
}

int weft_transport_abort(weft_transport *t)
{
    if (!t)
        return -EINVAL;
    t->flags |= T_CLOSING;
    lose(t, 0);
    return 0;
}

bool weft_transport_is_closing(const weft_transport *t)
{
    return t && (t->flags & (T_CLOSING | T_LOST));
}

int weft_transport_write_eof(weft_transport *t)
{
    if (!t)
        return -EINVAL;
    if (!weft_transport_can_write_eof(t))
        return -ENOTSUP;
    if (t->flags & (T_CLOSING | T_LOST | T_WEOF))
        return WEFT_ESTATE;
    t->flags |= T_WEOF;
    if (!queued(t))
        shut_write(t);
    return 0;
}

bool weft_transport_can_write_eof(const weft_transport *t)
{
    return t && ((t->flags & T_SOCKET) || (t->flags & (T_READS | T_WRITES)) == T_WRITES);
}

/* ---- reading control ----------------------------------------------------------------------------
 */

static int set_reading(weft_transport *t, bool on)
{
    if (!t)
        return -EINVAL;
    if (t->flags & (T_CLOSING | T_LOST))
        return WEFT_ESTATE;
    if (on)
        t->flags |= T_READING;
    else
        t->flags &= ~(uint32_t)T_READING;
    t_sync(t);
    return 0;
}

int weft_transport_pause_reading(weft_transport *t)
{
    return set_reading(t, false);
}

int weft_transport_resume_reading(weft_transport *t)
{
    return set_reading(t, true);
}

bool weft_transport_is_reading(const weft_transport *t)
{
    return t && (t->flags & (T_READS | T_READING)) == (T_READS | T_READING) &&
           !(t->flags & (T_CLOSING | T_LOST));
}

/* ---- flow control -------------------------------------------------------------------------------
 */

int weft_transport_set_write_buffer_limits(weft_transport *t, long high, long low)
{
    if (!t)
        return -EINVAL;
    if (high < 0) {
        if (low > LONG_MAX / 4)
            return -EINVAL;
        high = low >= 0 ? 4 * low : WEFT_WRITE_HIGH_DEFAULT;
    }
    if (low < 0)
        low = high / 4;
    if (!(high >= low && low >= 0) || (unsigned long)high > UINT32_MAX)
        return -EINVAL;
    t->high = (uint32_t)high;
    t->low = (uint32_t)low;
    flow_check(t, false);
    return 0;
}

int weft_transport_get_write_buffer_limits(const weft_transport *t, size_t *high, size_t *low)
{
    if (!t)
        return -EINVAL;
    if (high)
        *high = t->high;
    if (low)
        *low = t->low;
    return 0;
}

size_t weft_transport_get_write_buffer_size(const weft_transport *t)
{
    return t ? queued(t) : 0;
}

void weft__transport_discard(weft_transport *t)
{
    weft_loop *loop = t->io.loop;
    int fd = t->io.fd;
    free_wbuf(t);
    weft_io_close(&t->io); /* unqueues the node too */
    close(fd);
    t_free(loop, t);
}

int weft__transport_write_state(const weft_transport *t)
{
    if (queued(t) > t->high)
        return WEFT__T_ABOVE;
    return (t->flags & (T_CLOSING | T_LOST)) ? WEFT__T_CLOSING : WEFT__T_CLEAR;
}

uint64_t weft_transport_dropped_writes(const weft_transport *t)
{
    return t && (t->flags & T_LOST) ? t->w.dropped : 0;
}

/* ---- the rest
 * ------------------------------------------------------------------------------------ */

int weft_transport_set_protocol(weft_transport *t, const weft_protocol *proto, void *ud)
{
    if (!t || !proto)
        return -EINVAL;
    t->proto = proto;
    t->ud = ud;
    return 0;
}

int weft_transport_fd(const weft_transport *t)
{
    return t ? t->io.fd : -1;
}

static int addr_of(const weft_transport *t, struct sockaddr *addr, socklen_t *len, bool peer)
{
    if (!t || !addr || !len)
        return -EINVAL;
    if (!(t->flags & T_SOCKET))
        return -ENOTSOCK;
    int r = peer ? getpeername(t->io.fd, addr, len) : getsockname(t->io.fd, addr, len);
    return r < 0 ? -errno : 0;
}

int weft_transport_sockname(const weft_transport *t, struct sockaddr *addr, socklen_t *len)
{
    return addr_of(t, addr, len, false);
}

int weft_transport_peername(const weft_transport *t, struct sockaddr *addr, socklen_t *len)
{
    return addr_of(t, addr, len, true);
}

weft_loop *weft_transport_loop(const weft_transport *t)
{
    return t ? t->io.loop : NULL;
}

void *weft_transport_protocol_ud(const weft_transport *t)
{
    return t ? t->ud : NULL;
}

/* ---- net_internal.h
 * ------------------------------------------------------------------------------ */

void **weft__transport_word(weft_transport *t)
{
    return &t->word;
}

void weft__transport_set_owner(weft_transport *t, weft_server *s)
{
    t->owner = s;
}

void weft__transport_each_owned(weft_loop *loop, const weft_server *s, size_t n,
                                int (*fn)(weft_transport *t))
{
    for (size_t i = 0; i < loop->nfds && n; i++) {
        weft_io *w = loop->fds[i];
        if (w && w->cb == t_io && t_of(w)->owner == s) {
            n--;
            fn(t_of(w));
        }
    }
}

void **weft__net_serve_infos(weft_loop *loop)
{
    net_layer *n = net_of(loop);
    return n ? &n->serve_infos : NULL;
}
