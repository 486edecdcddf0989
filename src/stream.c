/* stream.c - streams: asyncio's StreamReader and StreamWriter in one
 * object, a protocol on a weft_transport, for coroutines (weft/stream.h).
 *
 * The read buffer is one pooled block that exists only while it holds
 * data.  A read is a small future of its own kind; it completes from the
 * buffer when it can (at once, or from data_received / EOF / the loss),
 * taking its bytes out into a result block that the stream owns until the
 * next read: when a read takes the whole buffer, the buffer block itself
 * becomes the result (no copy).  A read completed but not yet seen by its
 * awaiter can be given back (rollback: its task was cancelled; release:
 * its future was dropped unseen): its bytes go back to the front of the
 * buffer, so no byte is lost to a cancellation.
 *
 * Lifetime: the stream's memory goes when its owner freed it (OWNED clear)
 * and its transport is gone (connection_lost ran, or it never had one).
 * Futures that point at it (the read, the drain and wait_closed waiters)
 * are detached first.
 *
 * Servers: each connection's task runs a wrapper frame (stream_serve) with
 * the user's handler frame after it, in one block: the wrapper calls the
 * handler, reports its error, and closes and frees the stream however the
 * handler ended.  Its descriptor is static, or (a named server, a frame
 * beyond the static table) one of the loop's, kept until the loop is
 * destroyed; the server's context (the frame template) goes with the
 * server.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "future_internal.h"
#include "net_internal.h"
#include "weft/stream.h"
#include "weft/task.h"

/* ---- blocks ---------------------------------------------------------------------- */

/* A data block: the read buffer, or a read's result.  pub.data points
 * into mem; one spare byte after the data always exists (the NUL). */
typedef struct sbuf {
    weft_bytes pub;
    weft_loop *loop;
    uint32_t cap; /* bytes at mem */
    uint32_t pad;
    char mem[];
} sbuf;

static char empty_data[1];
static weft_bytes empty_bytes = {0, empty_data};

static size_t sbuf_size(uint32_t cap)
{
    return sizeof(sbuf) + cap;
}

/* A block for at least n data bytes (+ the NUL), rounded to the pool's
 * classes; NULL on -ENOMEM. */
static sbuf *sbuf_new(weft_loop *loop, size_t n)
{
    if (n >= UINT32_MAX - 64)
        return NULL;
    size_t total = (sizeof(sbuf) + n + 1 + 15) / 16 * 16;
    weft__pool *pool = weft__pool_of(loop);
    sbuf *b = pool ? weft__pool_get(pool, WEFT__POOL_ANY, total) : NULL;
    if (!b)
        return NULL;
    b->loop = loop;
    b->cap = (uint32_t)(total - sizeof(sbuf));
    b->pad = 0;
    b->pub.len = 0;
    b->pub.data = b->mem;
    return b;
}

static void sbuf_free(sbuf *b)
{
    if (b)
        weft__pool_put(weft__pool_of(b->loop), WEFT__POOL_ANY, b, sbuf_size(b->cap));
}

static sbuf *sbuf_of(weft_bytes *p)
{
    return p == &empty_bytes ? NULL : WEFT_CONTAINER_OF(p, sbuf, pub);
}

static size_t sbuf_off(const sbuf *b)
{
    return (size_t)(b->pub.data - b->mem);
}

/* ---- the stream ------------------------------------------------------------------ */

enum {
    S_OWNED = 1u << 0,     /* someone owns it (the caller, a handler task) */
    S_TRANSPORT = 1u << 1, /* made with a transport (else fed by hand) */
    S_ATTACHED = 1u << 2,  /* the transport is there (connection_lost not yet run) */
    S_EOF = 1u << 3,       /* EOF received or fed */
    S_PAUSED = 1u << 4,    /* we paused the transport's reading */
    S_WPAUSED = 1u << 5,   /* pause_writing: drain waits */
    S_RDONLY = 1u << 6,    /* a read pipe: no writing */
    S_WRONLY = 1u << 7,    /* a write pipe: no reading */
    S_CLOSED = 1u << 8,    /* close was called (a fed stream) */
    S_LOST = 1u << 9,      /* connection_lost ran */
    S_SERVED = 1u << 10,   /* a server's: connection_made spawns the handler */
};

typedef struct stream_rd stream_rd;
typedef struct stream_slow stream_slow;
typedef struct stream_ctx stream_ctx;

/* 48 bytes.  What only some streams need for a while lives elsewhere:
 * the drain and wait_closed waiters (stream_slow) in the transport's
 * protocol word (they exist only while the transport does), the count
 * of writes after the loss where the transport pointer was, and
 * weft_stream_consumed's value in the failed read. */
struct weft_stream {
    union {
        weft_transport *t; /* while S_ATTACHED */
        uint32_t dropped;  /* once S_LOST: writes after the loss (saturating) */
    };
    weft_loop *loop;
    sbuf *buf; /* buffered data; NULL when empty */
    union {
        weft_bytes *last; /* the last read's data (owned), or NULL */
        stream_ctx *ctx;  /* S_SERVED: the server's context, until connection_made */
    };
    stream_rd *rd; /* the read now or last (a reference, until the next) */
    uint32_t limit;
    int16_t err; /* the exception, or 0 */
    uint16_t flags;
};

_Static_assert(sizeof(void *) != 8 || sizeof(weft_stream) <= 48, "a stream is 48 bytes");

/* Drain and wait_closed waiters: futures on lists hung off the stream's
 * transport (its protocol word), made on first use; the handle re-checks drainers that wait for a
 * pause_writing not yet delivered (the transport delivers flow changes from the ready queue, and
 * one undone before delivery is never delivered). */
struct stream_slow {
    weft_link drainers;
    weft_link closers;
    weft_handle recheck;
    weft_stream *s;
};

/* The waiters of s, if made (only while the transport is there). */
static stream_slow *slow_get(const weft_stream *s)
{
    return (s->flags & S_ATTACHED) ? *weft__transport_word(s->t) : NULL;
}

/* At the transport's end: the lists are empty. */
static void slow_free(weft_stream *s, stream_slow *sl)
{
    weft_handle_cancel(&sl->recheck);
    weft__pool_put(weft__pool_of(s->loop), WEFT__POOL_ANY, sl, sizeof *sl);
}

typedef struct stream_wait {
    weft_future f;
    weft_link link; /* in a stream_slow list while pending */
} stream_wait;

/* Read operations. */
enum { RD_READ, RD_ALL, RD_EXACT, RD_UNTIL, RD_LINE };

/* 64 bytes for a read with no separator.  n fits in 32 bits: a buffer
 * never holds UINT32_MAX bytes (sbuf_new), so a read or readexactly of
 * more is asked for UINT32_MAX, with the same outcome. */
struct stream_rd {
    weft_future f;
    weft_stream *s; /* NULL once detached */
    uint32_t n;     /* READ/EXACT: n; UNTIL/LINE: the scan offset */
    uint8_t op;
    uint8_t pad;
    uint16_t seplen;
    char sep[];
};

_Static_assert(sizeof(void *) != 8 || sizeof(stream_rd) <= 64, "a read is 64 bytes");

#define SEP_MAX 1024u

static size_t buffered(const weft_stream *s)
{
    return s->buf ? s->buf->pub.len : 0;
}

static void stream_release_mem(weft_stream *s);
static void serve(weft_stream *s);
static void wake_all(weft_stream *s, weft_link *list, int err);

/* ---- give back: the front of the buffer ------------------------------------------- */

/* Put the bytes of b (a result nobody saw) back in front of the buffer,
 * consuming b.  False only without memory (the bytes are then lost and
 * the stream fails with -ENOMEM). */
static bool unshift(weft_stream *s, weft_bytes *p)
{
    sbuf *b = sbuf_of(p);
    if (!b)
        return true; /* empty */
    sbuf *buf = s->buf;
    if (!buf || !buf->pub.len) {
        sbuf_free(buf);
        s->buf = b;
        return true;
    }
    size_t blen = b->pub.len, len = buf->pub.len;
    if (sbuf_off(buf) >= blen) {
        buf->pub.data -= blen;
        memcpy(buf->pub.data, b->pub.data, blen);
        buf->pub.len += blen;
        sbuf_free(b);
        return true;
    }
    if (b->cap - sbuf_off(b) - blen >= len + 1) {
        memcpy(b->pub.data + blen, buf->pub.data, len);
        b->pub.len += len;
        sbuf_free(buf);
        s->buf = b;
        return true;
    }
    sbuf *nb = sbuf_new(s->loop, blen + len);
    if (!nb) {
        sbuf_free(b);
        return false;
    }
    memcpy(nb->mem, b->pub.data, blen);
    memcpy(nb->mem + blen, buf->pub.data, len);
    nb->pub.len = blen + len;
    sbuf_free(b);
    sbuf_free(buf);
    s->buf = nb;
    return true;
}

/* r completed with a value its awaiter has not seen: take it back. */
static bool give_back(stream_rd *r)
{
    weft_stream *s = r->s;
    if (!s || !s->last || r->f.out.v.p != s->last)
        return false;
    weft_bytes *p = s->last;
    s->last = NULL;
    if (!unshift(s, p)) {
        if (!s->err)
            s->err = -ENOMEM;
        weft__reportf(s->loop, WEFT_REPORT_IO, -ENOMEM,
                      "stream %p: no memory to give a cancelled read's data back", (void *)s);
    }
    return true;
}

/* ---- read futures ---------------------------------------------------------------- */

/* The stream lets go of r (the next read starts, or the stream goes):
 * detach it and drop the stream's reference (may free r). */
static void rd_detach(weft_stream *s, stream_rd *r)
{
    if (s->rd == r)
        s->rd = NULL;
    r->s = NULL;
    weft__future_unref(&r->f);
}

static int rd_cancel(weft_future *f)
{
    stream_rd *r = WEFT_CONTAINER_OF(f, stream_rd, f);
    int err = weft__future_cancel_now(f);
    if (r->s)
        serve(r->s); /* flow control: nobody waits any more */
    return err;
}

static bool rd_rollback(weft_future *f)
{
    stream_rd *r = WEFT_CONTAINER_OF(f, stream_rd, f);
    if (f->state != WEFT__DONE || (f->flags & WEFT__F_OBSERVED))
        return false;
    if (!give_back(r))
        return false;
    f->state = WEFT__CANCELLED;
    f->flags |= WEFT__F_OBSERVED;
    if (r->s)
        serve(r->s);
    return true;
}

/* The stream held a reference until it detached r: r->s is NULL here. */
static void rd_release(weft_future *f)
{
    stream_rd *r = WEFT_CONTAINER_OF(f, stream_rd, f);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, r, sizeof *r + r->seplen);
}

static void rd_describe(const weft_future *f, weft_report *rep, char *buf, size_t n)
{
    (void)rep;
    const stream_rd *r = WEFT_CONTAINER_OF(f, stream_rd, f);
    static const char *const names[] = {"read", "read to EOF", "readexactly", "readuntil",
                                        "readline"};
    snprintf(buf, n, "stream %s %p (of stream %p)", names[r->op], (const void *)f,
             (const void *)r->s);
}

static const weft__future_ops rd_ops = {
    .kind = "stream read",
    .cancel = rd_cancel,
    .rollback = rd_rollback,
    .release = rd_release,
    .describe = rd_describe,
};

/* ---- taking data out of the buffer -------------------------------------------------- */

/* The first k bytes of the buffer as a result block (k <= buffered);
 * NULL on -ENOMEM (nothing taken). */
static weft_bytes *take(weft_stream *s, size_t k)
{
    if (k == 0)
        return &empty_bytes;
    sbuf *buf = s->buf;
    size_t len = buf->pub.len;
    if (k == len) {
        s->buf = NULL; /* the whole buffer: hand the block out */
        buf->pub.data[k] = 0;
        return &buf->pub;
    }
    if (len - k < k) {
        /* a small rest: move the rest out, hand the block out */
        sbuf *rest = sbuf_new(s->loop, len - k);
        if (!rest)
            return NULL;
        memcpy(rest->mem, buf->pub.data + k, len - k);
        rest->pub.len = len - k;
        buf->pub.len = k;
        buf->pub.data[k] = 0;
        s->buf = rest;
        return &buf->pub;
    }
    sbuf *res = sbuf_new(s->loop, k);
    if (!res)
        return NULL;
    memcpy(res->mem, buf->pub.data, k);
    res->mem[k] = 0;
    res->pub.len = k;
    buf->pub.data += k;
    buf->pub.len -= k;
    return &res->pub;
}

/* Drop the first k bytes of the buffer. */
static void discard(weft_stream *s, size_t k)
{
    sbuf *buf = s->buf;
    if (!buf)
        return;
    if (k >= buf->pub.len) {
        sbuf_free(buf);
        s->buf = NULL;
        return;
    }
    buf->pub.data += k;
    buf->pub.len -= k;
}

static void free_last(weft_stream *s)
{
    if (s->last) {
        sbuf_free(sbuf_of(s->last));
        s->last = NULL;
    }
}

/* ---- serving the pending read ----------------------------------------------------- */

enum { WAIT = 0, GOT = 1, FAIL = -1 };

static const void *find(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 1)
        return memchr(hay, needle[0], hlen);
    for (size_t i = 0; i + nlen <= hlen; i++) {
        const char *p = memchr(hay + i, needle[0], hlen - nlen + 1 - i);
        if (!p)
            return NULL;
        i = (size_t)(p - hay);
        if (!memcmp(p, needle, nlen))
            return p;
    }
    return NULL;
}

/* Try to complete read r from the buffer: GOT with *out, FAIL with *err,
 * or WAIT (more data needed). */
static int attempt(weft_stream *s, stream_rd *r, weft_bytes **out, int *err)
{
    if (s->err) {
        *err = s->err;
        return FAIL;
    }
    size_t len = buffered(s);
    bool eof = s->flags & S_EOF;
    switch (r->op) {
    case RD_READ:
        if (!len && !eof && r->n)
            return WAIT;
        *out = take(s, len < r->n ? len : r->n);
        break;
    case RD_ALL:
        if (!eof)
            return WAIT;
        *out = take(s, len);
        break;
    case RD_EXACT:
        if (len >= r->n) {
            *out = take(s, r->n);
            break;
        }
        if (!eof)
            return WAIT;
        *out = take(s, len);
        if (!*out)
            break;
        *err = WEFT_EINCOMPLETE;
        return FAIL;
    default: { /* RD_UNTIL, RD_LINE */
        const char *sep = r->op == RD_LINE ? "\n" : r->sep;
        size_t seplen = r->op == RD_LINE ? 1 : r->seplen;
        const char *data = len ? s->buf->pub.data : NULL;
        if (len >= r->n + seplen) {
            const char *p = find(data + r->n, len - r->n, sep, seplen);
            if (p) {
                size_t isep = (size_t)(p - data);
                if (isep > s->limit) {
                    r->n = (uint32_t)isep; /* weft_stream_consumed */
                    if (r->op == RD_LINE)
                        discard(s, isep + seplen);
                    *err = WEFT_ELIMIT;
                    return FAIL;
                }
                *out = take(s, isep + seplen);
                break;
            }
            r->n = (uint32_t)(len + 1 - seplen);
            if (r->n > s->limit) {
                if (r->op == RD_LINE)
                    discard(s, len);
                *err = WEFT_ELIMIT;
                return FAIL;
            }
        }
        if (!eof)
            return WAIT;
        *out = take(s, len);
        if (!*out || r->op == RD_LINE)
            break;
        *err = WEFT_EINCOMPLETE;
        return FAIL;
    }
    }
    if (!*out) {
        *err = -ENOMEM;
        return FAIL;
    }
    return GOT;
}

/* Reading is paused above 2 * limit and resumed at <= limit, or whenever
 * a read waits for data. */
static void flow(weft_stream *s, bool waiting)
{
    if (!(s->flags & S_ATTACHED))
        return;
    size_t len = buffered(s);
    if (s->flags & S_PAUSED) {
        if (waiting || len <= s->limit) {
            s->flags &= (uint16_t)~S_PAUSED;
            weft_transport_resume_reading(s->t);
        }
    } else if (!waiting && len > 2 * (size_t)s->limit) {
        if (weft_transport_pause_reading(s->t) == 0)
            s->flags |= S_PAUSED;
    }
}

/* Complete the pending read if it can be, then apply flow control. */
static void serve(weft_stream *s)
{
    stream_rd *r = s->rd;
    bool waiting = false;
    if (r && r->f.state == WEFT__PENDING) {
        weft_bytes *out = NULL;
        int err = 0;
        int st = attempt(s, r, &out, &err);
        if (st == WAIT) {
            waiting = true;
        } else {
            if (out) {
                free_last(s);
                s->last = out;
            }
            if (st == GOT)
                weft__future_resolve(&r->f, (weft_value){.p = out});
            else
                weft__future_fail(&r->f, err);
            flow(s, false);
            return;
        }
    }
    flow(s, waiting);
}

static weft_future *read_start(weft_stream *s, int op, size_t n, const void *sep, size_t seplen)
{
    int err = 0;
    if (!s)
        err = -EINVAL;
    else if (weft__closed(s->loop))
        err = WEFT_ECLOSED;
    else if (s->flags & S_WRONLY)
        err = -EBADF;
    else if (s->rd && (s->rd->f.state == WEFT__PENDING ||
                       (s->rd->f.state == WEFT__DONE && !(s->rd->f.flags & WEFT__F_OBSERVED) &&
                        s->rd->f.refs > 1)))
        err = WEFT_ESTATE; /* another read waits, or its data is not seen yet */
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    stream_rd *r = s->rd;
    if (r && r->f.refs == 1 && r->f.state != WEFT__PENDING &&
        (r->f.flags & (WEFT__F_OBSERVED | WEFT__F_EXTRAS)) == WEFT__F_OBSERVED &&
        r->seplen == seplen) {
        /* only the stream holds the last read, and it was seen: it becomes
         * this one (the caller's reference and the stream's) */
        weft__future_rearm(&r->f);
    } else {
        weft__pool *pool = weft__pool_of(s->loop);
        r = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *r + seplen) : NULL;
        if (!r) {
            weft__set_last_error(-ENOMEM);
            return NULL;
        }
        weft__future_init(&r->f, &rd_ops, s->loop);
        stream_rd *prev = s->rd;
        if (prev) {
            if (prev->f.state == WEFT__DONE && !(prev->f.flags & WEFT__F_OBSERVED)) {
                give_back(prev); /* dropped unseen: nothing is lost */
                prev->f.flags |= WEFT__F_OBSERVED;
            }
            rd_detach(s, prev);
        }
        weft_future_ref(&r->f); /* the stream's, until the next read */
    }
    r->s = s;
    r->n = n < UINT32_MAX ? (uint32_t)n : UINT32_MAX; /* UNTIL, LINE: 0, the scan offset */
    r->op = (uint8_t)op;
    r->seplen = (uint16_t)seplen;
    if (seplen)
        memcpy(r->sep, sep, seplen);
    free_last(s); /* "valid until the next read starts" */
    s->rd = r;
    if (op == RD_READ && n && !s->buf && !s->err && !(s->flags & S_EOF))
        flow(s, true); /* the common case: serve would find nothing and wait */
    else
        serve(s);
    return &r->f;
}

weft_future *weft_stream_read(weft_stream *s, ssize_t n)
{
    return n < 0 ? read_start(s, RD_ALL, 0, NULL, 0) : read_start(s, RD_READ, (size_t)n, NULL, 0);
}

weft_future *weft_stream_readline(weft_stream *s)
{
    return read_start(s, RD_LINE, 0, NULL, 0);
}

weft_future *weft_stream_readexactly(weft_stream *s, ssize_t n)
{
    if (n < 0) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    return read_start(s, RD_EXACT, (size_t)n, NULL, 0);
}

weft_future *weft_stream_readuntil(weft_stream *s, const void *sep, size_t seplen)
{
    if (!sep || !seplen || seplen > SEP_MAX) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    return read_start(s, RD_UNTIL, 0, sep, seplen);
}

const weft_bytes *weft_stream_last(const weft_stream *s)
{
    return s ? s->last : NULL;
}

weft_bytes *weft_stream_take(weft_stream *s)
{
    if (!s || !s->last)
        return NULL;
    weft_bytes *p = s->last;
    s->last = NULL; /* nothing to give back any more */
    return p;
}

void weft_bytes_free(weft_bytes *b)
{
    if (b)
        sbuf_free(sbuf_of(b));
}

bool weft_stream_at_eof(const weft_stream *s)
{
    return s && (s->flags & S_EOF) && !buffered(s);
}

size_t weft_stream_buffered(const weft_stream *s)
{
    return s ? buffered(s) : 0;
}

size_t weft_stream_consumed(const weft_stream *s)
{
    const stream_rd *r = s ? s->rd : NULL;
    return r && r->f.state == WEFT__FAILED && r->f.out.err == WEFT_ELIMIT ? r->n : 0;
}

size_t weft_stream_limit(const weft_stream *s)
{
    return s ? s->limit : 0;
}

int weft_stream_exception(const weft_stream *s)
{
    return s ? s->err : 0;
}

/* ---- feeding ---------------------------------------------------------------------- */

/* Append n bytes to the buffer; -ENOMEM leaves it as it was. */
static int append(weft_stream *s, const void *data, size_t n)
{
    sbuf *buf = s->buf;
    if (!buf) {
        buf = sbuf_new(s->loop, n);
        if (!buf)
            return -ENOMEM;
        memcpy(buf->mem, data, n);
        buf->pub.len = n;
        s->buf = buf;
        return 0;
    }
    size_t len = buf->pub.len, off = sbuf_off(buf);
    if (off + len + n + 1 <= buf->cap) {
        memcpy(buf->pub.data + len, data, n);
        buf->pub.len += n;
        return 0;
    }
    if (len + n + 1 <= buf->cap && len <= buf->cap / 2) {
        memmove(buf->mem, buf->pub.data, len); /* compact */
        buf->pub.data = buf->mem;
        memcpy(buf->mem + len, data, n);
        buf->pub.len += n;
        return 0;
    }
    size_t want = len + n;
    if (want < 2 * (size_t)buf->cap)
        want = 2 * (size_t)buf->cap;
    sbuf *nb = sbuf_new(s->loop, want);
    if (!nb)
        return -ENOMEM;
    memcpy(nb->mem, buf->pub.data, len);
    memcpy(nb->mem + len, data, n);
    nb->pub.len = len + n;
    sbuf_free(buf);
    s->buf = nb;
    return 0;
}

/* Set the exception: buffered data is no longer returned; the pending
 * read fails. */
static void set_error(weft_stream *s, int err)
{
    if (!s->err)
        s->err = (int16_t)err;
    sbuf_free(s->buf);
    s->buf = NULL;
    serve(s);
}

int weft_stream_feed_data(weft_stream *s, const void *data, size_t n)
{
    if (!s || (!data && n))
        return -EINVAL;
    if ((s->flags & (S_EOF | S_TRANSPORT)))
        return WEFT_ESTATE;
    if (!n)
        return 0;
    int err = append(s, data, n);
    if (err)
        return err;
    serve(s);
    return 0;
}

int weft_stream_feed_eof(weft_stream *s)
{
    if (!s)
        return -EINVAL;
    if (s->flags & (S_EOF | S_TRANSPORT))
        return WEFT_ESTATE;
    s->flags |= S_EOF;
    serve(s);
    return 0;
}

int weft_stream_set_exception(weft_stream *s, int err)
{
    if (!s || err >= 0 || err < WEFT_ERR_MIN || err == -ECANCELED)
        return -EINVAL;
    if (s->err)
        return WEFT_ESTATE;
    set_error(s, err);
    return 0;
}

/* ---- the protocol ------------------------------------------------------------------ */

static void spawn_handler(weft_stream *s);

static void p_connection_made(weft_transport *t, void *ud)
{
    weft_stream *s = ud;
    if (!(s->flags & S_ATTACHED)) {
        s->t = t;
        s->flags |= S_ATTACHED;
    }
    if (s->flags & S_SERVED)
        spawn_handler(s);
}

static void p_data_received(weft_transport *t, const void *data, size_t n, void *ud)
{
    (void)t;
    weft_stream *s = ud;
    if (s->err)
        return;
    if (append(s, data, n)) {
        weft__reportf(s->loop, WEFT_REPORT_IO, -ENOMEM,
                      "stream %p: no memory to buffer %zu bytes received; connection aborted",
                      (void *)s, n);
        set_error(s, -ENOMEM);
        weft_transport_abort(s->t);
        return;
    }
    serve(s);
}

static bool p_eof_received(weft_transport *t, void *ud)
{
    (void)t;
    weft_stream *s = ud;
    s->flags |= S_EOF;
    serve(s);
    return (s->flags & S_OWNED) && !(s->flags & S_RDONLY); /* half-close (S-STREAM-11) */
}

static void p_connection_lost(weft_transport *t, int err, void *ud)
{
    (void)t;
    weft_stream *s = ud;
    stream_slow *sl = slow_get(s);
    s->t = NULL; /* dropped = 0 */
    s->flags = (uint16_t)((s->flags & ~(S_ATTACHED | S_PAUSED)) | S_LOST);
    if (err)
        set_error(s, err);
    else {
        s->flags |= S_EOF;
        serve(s);
    }
    if (sl) {
        wake_all(s, &sl->drainers, err ? err : -ECONNRESET);
        wake_all(s, &sl->closers, err);
        slow_free(s, sl);
    }
    if (!(s->flags & S_OWNED))
        stream_release_mem(s);
}

static void p_pause_writing(weft_transport *t, void *ud)
{
    (void)t;
    weft_stream *s = ud;
    s->flags |= S_WPAUSED;
}

static void p_resume_writing(weft_transport *t, void *ud)
{
    (void)t;
    weft_stream *s = ud;
    s->flags &= (uint16_t)~S_WPAUSED;
    stream_slow *sl = slow_get(s);
    if (sl)
        wake_all(s, &sl->drainers, 0);
}

static const weft_protocol stream_protocol = {
    .connection_made = p_connection_made,
    .data_received = p_data_received,
    .eof_received = p_eof_received,
    .connection_lost = p_connection_lost,
    .pause_writing = p_pause_writing,
    .resume_writing = p_resume_writing,
};

/* ---- making and freeing -------------------------------------------------------------- */

static int check_opts(const weft_stream_opts *opts, uint32_t *limit)
{
    size_t l = opts && opts->limit ? opts->limit : WEFT_STREAM_LIMIT_DEFAULT;
    if (l > WEFT_STREAM_LIMIT_MAX)
        return -EINVAL;
    *limit = (uint32_t)l;
    return 0;
}

static weft_stream *stream_alloc(weft_loop *loop, uint32_t limit, uint16_t flags)
{
    weft__pool *pool = weft__pool_of(loop);
    weft_stream *s = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *s) : NULL;
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->limit = limit;
    s->flags = flags;
    return s;
}

static void stream_release_mem(weft_stream *s)
{
    if (s->rd)
        rd_detach(s, s->rd);
    if (!(s->flags & S_SERVED))
        free_last(s); /* (else it holds the server's context) */
    sbuf_free(s->buf);
    weft__pool_put(weft__pool_of(s->loop), WEFT__POOL_ANY, s, sizeof *s);
}

int weft_stream_new(weft_loop *loop, const weft_stream_opts *opts, weft_stream **out)
{
    uint32_t limit;
    if (!loop || !out || check_opts(opts, &limit))
        return -EINVAL;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    weft_stream *s = stream_alloc(loop, limit, S_OWNED);
    if (!s)
        return -ENOMEM;
    *out = s;
    return 0;
}

static int wrap(weft_loop *loop, int fd, const weft_stream_opts *opts, uint16_t mode,
                weft_stream **out)
{
    uint32_t limit;
    if (!loop || !out || fd < 0 || check_opts(opts, &limit))
        return -EINVAL;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    if (mode) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0)
            return -EBADF;
        int acc = fl & O_ACCMODE;
        if ((mode == S_RDONLY && acc == O_WRONLY) || (mode == S_WRONLY && acc == O_RDONLY))
            return -EBADF;
    }
    weft_stream *s = stream_alloc(loop, limit, (uint16_t)(S_OWNED | S_TRANSPORT | mode));
    if (!s)
        return -ENOMEM;
    weft_transport *t = NULL;
    int err = weft_transport_wrap(loop, fd, &stream_protocol, s, &t);
    if (err) {
        stream_release_mem(s);
        return err;
    }
    s->t = t;
    s->flags |= S_ATTACHED;
    *out = s;
    return 0;
}

int weft_stream_wrap(weft_loop *loop, int fd, const weft_stream_opts *opts, weft_stream **out)
{
    return wrap(loop, fd, opts, 0, out);
}

int weft_open_read_pipe(weft_loop *loop, int fd, const weft_stream_opts *opts, weft_stream **out)
{
    return wrap(loop, fd, opts, S_RDONLY, out);
}

int weft_open_write_pipe(weft_loop *loop, int fd, const weft_stream_opts *opts, weft_stream **out)
{
    return wrap(loop, fd, opts, S_WRONLY, out);
}

void weft_stream_free(weft_stream *s)
{
    if (!s || !(s->flags & S_OWNED))
        return;
    s->flags &= (uint16_t)~S_OWNED;
    stream_rd *r = s->rd;
    if (r) {
        r->s = NULL; /* no serve from the cancellation */
        if (r->f.state == WEFT__PENDING) {
            weft__future_cancel_now(&r->f);
        } else if (r->f.state == WEFT__DONE && !(r->f.flags & WEFT__F_OBSERVED) &&
                   r->f.out.v.p == s->last) {
            r->f.state = WEFT__CANCELLED; /* its data goes with the stream */
            r->f.flags |= WEFT__F_OBSERVED;
        }
        rd_detach(s, r);
    }
    free_last(s);
    if (s->flags & S_ATTACHED) {
        sbuf_free(s->buf);
        s->buf = NULL;
        weft_transport_close(s->t); /* the memory goes at connection_lost */
        return;
    }
    stream_release_mem(s); /* (no waiter: they went with the transport) */
}

/* ---- waiters: drain and wait_closed ------------------------------------------------------ */

static int wait_cancel(weft_future *f)
{
    stream_wait *w = WEFT_CONTAINER_OF(f, stream_wait, f);
    if (w->link.next)
        weft__list_unlink(&w->link);
    w->link.next = w->link.prev = NULL;
    return weft__future_cancel_now(f);
}

static void wait_release(weft_future *f)
{
    stream_wait *w = WEFT_CONTAINER_OF(f, stream_wait, f);
    if (w->link.next)
        weft__list_unlink(&w->link);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, w, sizeof *w);
}

static const weft__future_ops wait_ops = {
    .kind = "stream wait",
    .cancel = wait_cancel,
    .release = wait_release,
};

/* Complete every waiter of list: value 0 (err 0) or err. */
static void wake_all(weft_stream *s, weft_link *list, int err)
{
    (void)s;
    while (list->next != list) {
        stream_wait *w = WEFT_CONTAINER_OF(list->next, stream_wait, link);
        weft__list_unlink(&w->link);
        w->link.next = w->link.prev = NULL;
        weft_future_ref(&w->f);
        if (err == -ECANCELED)
            weft__future_cancel_now(&w->f);
        else if (err)
            weft__future_fail(&w->f, err);
        else
            weft__future_resolve(&w->f, (weft_value){.i = 0});
        weft__future_unref(&w->f);
    }
}

/* Bytes the transport holds above its high-water mark (0: none). */
/* The transport's weft__transport_write_state (WEFT__T_CLEAR once it is gone). */
static int write_state(const weft_stream *s)
{
    return (s->flags & S_ATTACHED) ? weft__transport_write_state(s->t) : WEFT__T_CLEAR;
}

static bool above_high(const weft_stream *s)
{
    return write_state(s) == WEFT__T_ABOVE;
}

/* Drainers waiting while pause_writing is pending: if it came, resume
 * wakes them; if it was undone (the buffer drained first), wake them. */
static void recheck(void *arg)
{
    stream_slow *sl = arg;
    weft_stream *s = sl->s;
    if (s->flags & S_WPAUSED)
        return;
    if (above_high(s))
        weft_handle_schedule(s->loop, &sl->recheck); /* still pending */
    else
        wake_all(s, &sl->drainers, 0);
}

/* The waiters of s, made on first use (only while the transport is
 * there: a drain or wait_closed of a stream without one waits for
 * nothing); NULL on -ENOMEM. */
static stream_slow *slow_of(weft_stream *s)
{
    WEFT_ASSERT(s->flags & S_ATTACHED);
    void **word = weft__transport_word(s->t);
    if (!*word) {
        weft__pool *pool = weft__pool_of(s->loop);
        stream_slow *sl = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *sl) : NULL;
        if (!sl)
            return NULL;
        weft__list_init(&sl->drainers);
        weft__list_init(&sl->closers);
        weft_handle_init(&sl->recheck, recheck, sl);
        sl->s = s;
        *word = sl;
    }
    return *word;
}

/* A pending waiter on list, or NULL (-ENOMEM). */
static weft_future *waiter(weft_stream *s, bool drainer)
{
    stream_slow *sl = slow_of(s);
    weft__pool *pool = weft__pool_of(s->loop);
    stream_wait *w = sl && pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *w) : NULL;
    if (!w) {
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    weft__future_init(&w->f, &wait_ops, s->loop);
    w->link.next = w->link.prev = NULL;
    weft__list_push(drainer ? &sl->drainers : &sl->closers, &w->link);
    return &w->f;
}

/* A future already done with value 0 (the loop's shared one: nothing is
 * made) or a plain one failed with err. */
static weft_future *done_future(weft_loop *loop, int err)
{
    weft_future *f = err ? NULL : weft__future_none(loop);
    if (f)
        return f;
    f = weft_future_new(loop);
    if (f && (err ? weft_future_set_error(f, err) : weft_future_set_int(f, 0)) < 0) {
        weft_future_unref(f);
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    return f;
}

static int check_usable(const weft_stream *s)
{
    if (!s)
        return -EINVAL;
    if (weft__closed(s->loop))
        return WEFT_ECLOSED;
    return 0;
}

weft_future *weft_stream_drain(weft_stream *s)
{
    int err = check_usable(s);
    if (!err && (!(s->flags & S_TRANSPORT) || (s->flags & S_RDONLY)))
        err = -EBADF;
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    if (s->err)
        return done_future(s->loop, s->err);
    if (s->flags & S_LOST)
        return done_future(s->loop, -ECONNRESET);
    if (s->flags & S_WPAUSED)
        return waiter(s, true);
    int state = write_state(s);
    if (state == WEFT__T_ABOVE) {
        /* the transport's pause_writing is on its way (from the ready
         * queue): wait as if it had come */
        weft_future *w = waiter(s, true);
        if (w)
            weft_handle_schedule(s->loop, &slow_get(s)->recheck);
        return w;
    }
    if (state == WEFT__T_CLOSING)
        return weft__future_yield(s->loop); /* let connection_lost run */
    return done_future(s->loop, 0);
}

weft_future *weft_stream_wait_closed(weft_stream *s)
{
    int err = check_usable(s);
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    if (!(s->flags & S_ATTACHED))
        return done_future(s->loop, (s->flags & S_LOST) && s->err != -ENOMEM ? s->err : 0);
    return waiter(s, false);
}

/* ---- writing -------------------------------------------------------------------------- */

static int write_check(weft_stream *s)
{
    if (!s)
        return -EINVAL;
    if (!(s->flags & S_TRANSPORT) || (s->flags & S_RDONLY))
        return -EBADF;
    if (s->flags & S_LOST) {
        if (s->dropped < UINT32_MAX && ++s->dropped == 5)
            weft__reportf(s->loop, WEFT_REPORT_IO, -EPIPE,
                          "stream %p: writes after the connection was lost are dropped", (void *)s);
        return 1;
    }
    return 0;
}

int weft_stream_write(weft_stream *s, const void *data, size_t n)
{
    if (s && !data && n)
        return -EINVAL;
    int err = write_check(s);
    if (err)
        return err > 0 ? 0 : err;
    return weft_transport_write(s->t, data, n);
}

int weft_stream_writelines(weft_stream *s, const struct iovec *iov, int iovcnt)
{
    if (s && (iovcnt < 0 || (!iov && iovcnt)))
        return -EINVAL;
    int err = write_check(s);
    if (err)
        return err > 0 ? 0 : err;
    return weft_transport_writev(s->t, iov, iovcnt);
}

int weft_stream_write_eof(weft_stream *s)
{
    if (!s)
        return -EINVAL;
    if (!(s->flags & S_TRANSPORT) || (s->flags & S_RDONLY))
        return -ENOTSUP;
    if (!(s->flags & S_ATTACHED))
        return WEFT_ESTATE;
    return weft_transport_write_eof(s->t);
}

bool weft_stream_can_write_eof(const weft_stream *s)
{
    return s && (s->flags & S_ATTACHED) && !(s->flags & S_RDONLY) &&
           weft_transport_can_write_eof(s->t);
}

int weft_stream_close(weft_stream *s)
{
    if (!s)
        return -EINVAL;
    s->flags |= S_CLOSED;
    if (s->flags & S_ATTACHED)
        return weft_transport_close(s->t);
    return 0;
}

int weft_stream_abort(weft_stream *s)
{
    if (!s)
        return -EINVAL;
    s->flags |= S_CLOSED;
    if (s->flags & S_ATTACHED)
        return weft_transport_abort(s->t);
    return 0;
}

bool weft_stream_is_closing(const weft_stream *s)
{
    if (!s)
        return false;
    if (s->flags & S_ATTACHED)
        return weft_transport_is_closing(s->t);
    return (s->flags & (S_CLOSED | S_LOST)) != 0;
}

uint64_t weft_stream_dropped_writes(const weft_stream *s)
{
    return s && (s->flags & S_LOST) ? s->dropped : 0; /* (else the union holds t) */
}

weft_transport *weft_stream_transport(const weft_stream *s)
{
    return s && (s->flags & S_ATTACHED) ? s->t : NULL;
}

weft_loop *weft_stream_loop(const weft_stream *s)
{
    return s ? s->loop : NULL;
}

/* ---- open_connection ------------------------------------------------------------------ */

typedef struct stream_open {
    weft_future f; /* value: the stream */
    weft__hold hold;
    weft_future *inner; /* the connect */
    weft_stream *s;
} stream_open;

static void open_done(weft_future *inner, void *arg)
{
    stream_open *o = arg;
    weft_stream *s = o->s;
    weft_value v = {0};
    int err = weft_future_result(inner, &v);
    weft_future_unref(inner);
    o->inner = NULL;
    if (o->f.state != WEFT__PENDING) {
        /* cancelled meanwhile: nobody will have the stream */
        if (!err && !(s->flags & S_ATTACHED)) {
            s->t = v.p;
            s->flags |= S_ATTACHED;
        }
        if (err)
            stream_release_mem(s);
        else
            weft_stream_free(s);
    } else if (err) {
        stream_release_mem(s);
        weft__future_fail(&o->f, err);
    } else {
        if (!(s->flags & S_ATTACHED)) {
            s->t = v.p;
            s->flags |= S_ATTACHED;
        }
        weft__future_resolve(&o->f, (weft_value){.p = s});
    }
    o->s = NULL;
    weft__future_unhold(&o->hold);
}

static int open_cancel(weft_future *f)
{
    stream_open *o = WEFT_CONTAINER_OF(f, stream_open, f);
    int err = weft__future_cancel_now(f);
    if (o->inner)
        weft_future_cancel(o->inner); /* open_done frees the stream */
    return err;
}

static void open_release(weft_future *f)
{
    stream_open *o = WEFT_CONTAINER_OF(f, stream_open, f);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, o, sizeof *o);
}

static const weft__future_ops open_ops = {
    .kind = "stream open",
    .cancel = open_cancel,
    .release = open_release,
};

static weft_future *open_common(weft_loop *loop, const char *host, int port, const char *path,
                                const weft_stream_opts *opts)
{
    uint32_t limit;
    int err = 0;
    if (!loop || check_opts(opts, &limit) || (!path && !host))
        err = -EINVAL;
    else if (weft__closed(loop))
        err = WEFT_ECLOSED;
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    weft__pool *pool = weft__pool_of(loop);
    stream_open *o = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *o) : NULL;
    weft_stream *s = o ? stream_alloc(loop, limit, S_OWNED | S_TRANSPORT) : NULL;
    if (!s) {
        if (o)
            weft__pool_put(pool, WEFT__POOL_ANY, o, sizeof *o);
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    weft_future *inner = path ? weft_create_unix_connection(loop, &stream_protocol, s, path)
                              : weft_create_connection(loop, &stream_protocol, s, host, port,
                                                       opts ? opts->connect : NULL);
    if (!inner) {
        err = weft_last_error();
        stream_release_mem(s);
        weft__pool_put(pool, WEFT__POOL_ANY, o, sizeof *o);
        weft__set_last_error(err);
        return NULL;
    }
    if ((err = weft_future_add_done_callback(inner, open_done, o)) < 0) {
        weft_future_cancel(inner);
        weft_future_unref(inner);
        /* a cancelled connect never makes its transport: the stream is ours */
        stream_release_mem(s);
        weft__pool_put(pool, WEFT__POOL_ANY, o, sizeof *o);
        weft__set_last_error(err);
        return NULL;
    }
    weft__future_init(&o->f, &open_ops, loop);
    o->inner = inner;
    o->s = s;
    memset(&o->hold, 0, sizeof o->hold);
    weft__future_hold(&o->f, &o->hold);
    return &o->f;
}

weft_future *weft_open_connection(weft_loop *loop, const char *host, int port,
                                  const weft_stream_opts *opts)
{
    if (!host) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    return open_common(loop, host, port, NULL, opts);
}

weft_future *weft_open_unix_connection(weft_loop *loop, const char *path,
                                       const weft_stream_opts *opts)
{
    if (!path) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    return open_common(loop, NULL, 0, path, opts);
}

/* ---- servers ------------------------------------------------------------------------- */

/* The wrapper frame of a handler task; the handler's frame follows at
 * SERVE_CHILD.  A task reads its descriptor until its memory goes, which
 * may be long after it ended (a reference someone keeps; the quarantine
 * of debug builds), so the descriptor must not live in the server's
 * context: it is a serve_info of the loop's (below). */
struct stream_serve {
    WEFT_FRAME(int);
    int err;
};

#define SERVE_CHILD ((sizeof(struct stream_serve) + 15) / 16 * 16)

struct stream_ctx {
    weft_loop *loop;
    const weft_co_info *task_info; /* a serve_info's */
    const weft_co_info *handler;
    void *arg;
    size_t size; /* of this block */
    uint32_t limit;
    _Alignas(16) unsigned char frame[]; /* the template: wrapper + handler */
};

static void ctx_free(stream_ctx *c)
{
    weft__pool_put(weft__pool_of(c->loop), WEFT__POOL_ANY, c, c->size);
}

static void report_handler_error(weft_loop *loop, weft_task *task,
                                 const weft_stream_handler_frame *h, int err)
{
    const char *detail = weft__future_detail(task, err);
    weft__reportf(loop, WEFT_REPORT_UNOBSERVED, err,
                  "unhandled error in stream handler '%s' (%s:%d): %s%s%s", h->co.info->name,
                  h->co.info->file, (int)h->co.err_line, weft_strerror(err), detail ? ": " : "",
                  detail ? detail : "");
}

WEFT_ASYNC(stream_serve)
{
    weft_stream_handler_frame *h =
        (weft_stream_handler_frame *)(void *)((char *)self + SERVE_CHILD);
    WEFT_BEGIN(self);
    h->co.up = weft__co;
    WEFT__SUSPEND(WEFT_CO_CALL, &h->co);
    if (weft__co_call_end(weft__co, &h->co, 1, &self->err))
        goto weft__unwind;
    if (self->err && self->err != -ECANCELED)
        report_handler_error(weft_task_loop(task), task, h, self->err);
    WEFT_FINALLY;
    /* however it ended: close (flush) and free the stream (asyncio 3.12) */
    weft_stream_free(h->stream);
    h->stream = NULL;
    WEFT_END;
}

/* The wrapper's descriptor.  A task's name is its root frame's name
 * unless one is set on it, so the handler tasks carry their name
 * (opts->task_name, else the handler coroutine's) in their descriptor and
 * need no entry each in the loop's extras table.  The descriptors are on
 * a list of the loop's, shared by every server of the same name and frame
 * size, in pool blocks that stay until the loop is destroyed (the pool
 * gives them back): a task reads its descriptor until its memory goes. */
typedef struct serve_info {
    weft_co_info info;
    struct serve_info *next;
} serve_info;

/* The descriptor for a handler frame of steps 16-byte steps and task name
 * name; NULL on -ENOMEM. */
static const weft_co_info *serve_info_of(weft_loop *loop, size_t steps, const char *name)
{
    void **head = weft__net_serve_infos(loop);
    weft__pool *pool = weft__pool_of(loop);
    if (!head || !pool)
        return NULL;
    size_t fsize = SERVE_CHILD + 16 * steps;
    for (serve_info *i = *head; i; i = i->next)
        if (i->info.name == name && i->info.size == fsize)
            return &i->info;
    serve_info *i = weft__pool_get(pool, WEFT__POOL_ANY, sizeof *i);
    if (!i)
        return NULL;
    i->info = stream_serve__info;
    i->info.name = name;
    i->info.size = fsize;
    i->info.align = 16;
    i->next = *head;
    *head = i;
    return &i->info;
}

static void spawn_handler(weft_stream *s)
{
    stream_ctx *c = s->ctx;
    s->ctx = NULL;
    s->flags &= (uint16_t)~S_SERVED;
    weft_stream_handler_frame *h = (weft_stream_handler_frame *)(void *)(c->frame + SERVE_CHILD);
    h->stream = s;
    h->arg = c->arg;
    /* the name, if any, is the descriptor's */
    weft_task *t = weft__spawn_opts(s->loop, NULL, (const weft_co *)(const void *)c->frame);
    h->stream = NULL;
    h->arg = NULL;
    if (!t) {
        int err = weft_last_error();
        weft__reportf(s->loop, WEFT_REPORT_IO, err,
                      "stream server: cannot start the handler '%s' (%s); connection closed",
                      c->handler->name, weft_strerror(err));
        weft_stream_abort(s);
        weft_stream_free(s);
        return;
    }
    weft_future_unref(t);
}

static int serve_factory(weft_server *srv, void *arg, void **ud)
{
    (void)srv;
    stream_ctx *c = arg;
    weft_stream *s = stream_alloc(c->loop, c->limit, S_OWNED | S_TRANSPORT | S_SERVED);
    if (!s)
        return -ENOMEM;
    s->ctx = c;
    *ud = s;
    return 0;
}

static stream_ctx *ctx_new(weft_loop *loop, const weft_co_info *handler, void *arg,
                           const weft_stream_opts *opts)
{
    uint32_t limit;
    int err = 0;
    if (!loop || !handler || !handler->fn || handler->size < sizeof(weft_stream_handler_frame) ||
        handler->align > 16 || check_opts(opts, &limit))
        err = -EINVAL;
    else if (weft__closed(loop))
        err = WEFT_ECLOSED;
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    size_t steps = (handler->size + 15) / 16;
    size_t fsize = SERVE_CHILD + 16 * steps;
    size_t size = sizeof(stream_ctx) + fsize;
    const char *name = opts && opts->task_name ? opts->task_name : handler->name;
    const weft_co_info *info = serve_info_of(loop, steps, name);
    weft__pool *pool = weft__pool_of(loop);
    stream_ctx *c = info && pool ? weft__pool_get(pool, WEFT__POOL_ANY, size) : NULL;
    if (!c) {
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    memset(c, 0, size);
    c->loop = loop;
    c->task_info = info;
    c->handler = handler;
    c->arg = arg;
    c->size = size;
    c->limit = limit;
    weft_co *root = (weft_co *)(void *)c->frame;
    root->info = c->task_info;
    weft_co *child = (weft_co *)(void *)(c->frame + SERVE_CHILD);
    child->info = handler;
    return c;
}

static void server_gone(weft_future *w, void *arg)
{
    stream_ctx *c = arg;
    (void)weft_future_error(w);
    weft_future_unref(w);
    ctx_free(c); /* no connection will come; the tasks need nothing of c */
}

/* Watch srv's end to free c; without memory for that, c stays until the
 * loop is destroyed (the pool gives it back). */
static void watch_server(stream_ctx *c, weft_server *srv)
{
    weft_future *w = weft_server_wait_closed(srv);
    if (w && weft_future_add_done_callback(w, server_gone, c) < 0) {
        weft_future_cancel(w); /* leaves the server's list now, not at its release */
        weft_future_unref(w);
        w = NULL;
    }
    if (!w)
        weft__reportf(c->loop, WEFT_REPORT_IO, -ENOMEM,
                      "stream server: no memory to watch the server's end; its context "
                      "stays until the loop is destroyed");
}

static void server_made(weft_future *f, void *arg)
{
    stream_ctx *c = arg;
    weft_value v = {0};
    if (f->state == WEFT__DONE) {
        v = f->out.v;
        watch_server(c, v.p);
    } else {
        ctx_free(c); /* no server: no connection came */
    }
}

weft_future *weft_start_server(weft_loop *loop, const weft_co_info *handler, void *arg,
                               const char *host, int port, const weft_stream_opts *opts)
{
    stream_ctx *c = ctx_new(loop, handler, arg, opts);
    if (!c)
        return NULL;
    weft_future *f = weft_create_server(loop, &stream_protocol, serve_factory, c, host, port,
                                        opts ? opts->server : NULL);
    if (!f) {
        int err = weft_last_error();
        ctx_free(c);
        weft__set_last_error(err);
        return NULL;
    }
    if (weft_future_done(f)) {
        /* made at once (a numeric host): watch it now, before the caller
         * can free it */
        server_made(f, c);
        return f;
    }
    int err = weft_future_add_done_callback(f, server_made, c);
    if (err < 0) {
        if (weft_future_done(f)) {
            weft_value v;
            if (weft_future_result(f, &v) == 0)
                weft_server_free(v.p); /* made at once (a numeric host): no client yet */
            ctx_free(c);
        } else {
            /* the context stays until the loop is destroyed: a server being
             * made may still call the factory */
            weft_future_cancel(f);
        }
        weft_future_unref(f);
        weft__set_last_error(err);
        return NULL;
    }
    return f;
}

int weft_start_unix_server(weft_loop *loop, const weft_co_info *handler, void *arg,
                           const char *path, const weft_stream_opts *opts, weft_server **out)
{
    if (!out || !path)
        return -EINVAL;
    stream_ctx *c = ctx_new(loop, handler, arg, opts);
    if (!c)
        return weft_last_error();
    weft_server *srv = NULL;
    int err = weft_create_unix_server(loop, &stream_protocol, serve_factory, c, path,
                                      opts ? opts->server : NULL, &srv);
    if (err) {
        ctx_free(c);
        return err;
    }
    watch_server(c, srv);
    *out = srv;
    return 0;
}
