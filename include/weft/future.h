/* weft/future.h - futures: one-shot result cells with done callbacks.
 *
 * A future is pending, then done (with a value or an error code) or
 * cancelled; both end states are final.  Done callbacks are never called
 * inline: completing a future queues its callbacks, and any task parked on
 * it, at the tail of the ready queue in registration order (asyncio's
 * call_soon), so they run in the next batch.
 *
 * OWNERSHIP - the one rule.  Futures (tasks included) are reference
 * counted.  Every function that returns a future gives the caller one
 * reference; weft_future_ref adds one, weft_future_unref drops one, and the
 * last drop frees the future (calling the destructor of a pointer value
 * nobody took).  WEFT_AWAIT consumes the reference it is handed, so
 * `WEFT_AWAIT(self, weft_sleep(...))` leaks nothing and awaiting a future you
 * keep is `WEFT_AWAIT(self, weft_future_ref(f))`.  The loop holds its own
 * reference while a task is pending, while a future the loop itself will
 * complete is pending (a sleep, a gather, a wait_for, ...), and while a
 * completed future's callbacks wait to run; a task holds one on what it
 * awaits.  So dropping yours never frees or cancels anything early.  A
 * pending plain future (weft_future_new) nobody holds is freed, and its
 * callbacks never run: nobody could complete it.  Drop every reference
 * before destroying the loop (what is left is reported and freed then).  Constructors return NULL
 * on failure; weft_last_error() says why, and awaiting NULL fails with that error.
 *
 * After weft_loop_close, nothing can run: completing a future still changes
 * its state (asyncio does too) but returns WEFT_ECLOSED when the future had
 * callbacks or parked tasks, which then never run (asyncio's "Event loop is
 * closed").
 */
#ifndef WEFT_FUTURE_H
#define WEFT_FUTURE_H

#include <string.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_future weft_future;

/* States of a future. */
typedef enum weft_future_state {
    WEFT_PENDING = 0,
    WEFT_DONE = 1,      /* finished with a value or an error */
    WEFT_CANCELLED = 2, /* weft_future_error() is -ECANCELED */
} weft_future_state;

/* Done callback: called (from the ready queue) with the future and arg. */
typedef void weft_done_cb(weft_future *f, void *arg);

/* The error of the last constructor that returned NULL in this thread
 * (-ENOMEM, -EINVAL, WEFT_ECLOSED, ...). */
int weft_last_error(void);

/* A new pending future bound to loop; the caller owns one reference.
 * Works on a closed loop too (as asyncio's create_future).
 * NULL on failure (-EINVAL, -ENOMEM). */
WEFT_NODISCARD weft_future *weft_future_new(weft_loop *loop);

/* Add a reference; returns f (NULL stays NULL). */
weft_future *weft_future_ref(weft_future *f);

/* Drop a reference; the last one frees f.  NULL is a no-op.  Dropping a
 * reference that is not there (a double unref) is reported through the
 * loop's report hook (WEFT_REPORT_MISUSE) when it can be detected: always
 * in Debug and sanitizer builds. */
void weft_future_unref(weft_future *f);

/* Finish f with a value.  Returns 0; -EINVAL; WEFT_ESTATE if f is not
 * pending or is a kind whose outcome weft sets (a task, a sleep, a lock
 * waiter...); WEFT_ECLOSED if f is now done but its callbacks and waiters
 * can never run because the loop is closed. */
int weft_future_set_result(weft_future *f, weft_value v);

/* Typed forms of weft_future_set_result.  set_ptr's dtor (may be NULL)
 * is called on p if the future is freed without anyone taking p. */
int weft_future_set_int(weft_future *f, int64_t i);
int weft_future_set_double(weft_future *f, double d);
int weft_future_set_ptr(weft_future *f, void *p, weft_dtor *dtor);

/* Finish f with an error code (err < 0, not -ECANCELED: use cancel).
 * Returns as weft_future_set_result; -EINVAL for a bad code. */
int weft_future_set_error(weft_future *f, int err);

/* Like weft_future_set_error, with a message (printf format; copied, up
 * to 511 bytes) that travels with the error: what an exception's text is
 * in Python.  A task that awaits f and fails with this error carries the
 * message on.  Without memory for the message the error is set without it. */
int weft_future_set_error_msg(weft_future *f, int err, const char *fmt, ...) WEFT_PRINTF(3, 4);

/* The message f's error carries (set_error_msg, WEFT_THROW_MSG,
 * weft_task_cancel_msg), or NULL; valid while f is. */
const char *weft_future_error_message(const weft_future *f);

/* f's outcome as text in buf (n bytes): "message: strerror" when its error
 * has a message, else weft_strerror(code) ("success" for a value,
 * "pending").  Returns buf. */
const char *weft_future_strerror(const weft_future *f, char *buf, size_t n);

/* Cancel a pending future: it becomes CANCELLED and its callbacks are
 * queued.  For a task this is weft_task_cancel (a request); for a future
 * made by a combinator or a primitive, cancelling also withdraws what it
 * registered (a sleep's timer, a lock waiter's place in line, gather's
 * children...).  Returns 0, -EINVAL, WEFT_ESTATE if it is already done, or
 * WEFT_ECLOSED as for weft_future_set_result. */
int weft_future_cancel(weft_future *f);

/* State queries; NULL reads as not done. */
weft_future_state weft_future_state_of(const weft_future *f);
bool weft_future_done(const weft_future *f);
bool weft_future_cancelled(const weft_future *f);

/* The outcome: 0 with *out set to the value (out may be NULL), the stored
 * error code, -ECANCELED if cancelled, WEFT_ESTATE if pending, -EINVAL for
 * NULL.  Marks the outcome observed (no "never retrieved" report). */
int weft_future_result(weft_future *f, weft_value *out);

/* Like weft_future_result, returning only the error code (0 = value). */
int weft_future_error(weft_future *f);

/* Take ownership of a pointer value: its destructor will not be called
 * by the future.  NULL if f holds no value. */
void *weft_future_take_ptr(weft_future *f);

/* The loop f belongs to. */
weft_loop *weft_future_loop(const weft_future *f);

/* Call fn(f, arg) once f is done, through the ready queue (never inline,
 * even if f is already done).  From the completion until fn ran, the loop
 * keeps f alive.  Returns 0, -EINVAL, -ENOMEM or WEFT_ECLOSED. */
int weft_future_add_done_callback(weft_future *f, weft_done_cb *fn, void *arg);

/* Remove every pending registration of (fn, arg); returns how many were
 * removed (0 once they are queued or ran), or -EINVAL. */
int weft_future_remove_done_callback(weft_future *f, weft_done_cb *fn, void *arg);

/* Run the loop until f is done (asyncio: one more iteration runs after f
 * completes, as its stop callback is queued).  Returns f's error code
 * (0 = done with a value), WEFT_ESTATE if the loop was stopped before f
 * completed, or a loop error (WEFT_ECLOSED, -EBUSY, -EINVAL, -ENOMEM).
 * Does not consume the caller's reference. */
int weft_loop_run_until_complete(weft_loop *loop, weft_future *f);

/* ---- private: the layout of a future --------------------------------------------------------
 * Visible only so that the hot paths of awaiting (weft/task.h) can be
 * inlined into coroutine bodies.  Private, do not touch: read and change
 * futures only through the functions above; all of this may change. */

struct weft__future_ops; /* private: what differs between kinds (src/future_internal.h) */

/* Private: internal states; weft_future_state_of maps FAILED to WEFT_DONE. */
enum { WEFT__PENDING = 0, WEFT__DONE = 1, WEFT__CANCELLED = 2, WEFT__FAILED = 3 };

/* Private: future flags; bits 4-6 are the kind's own. */
enum {
    WEFT__F_OBSERVED = 1u << 0,  /* outcome retrieved: no failure report */
    WEFT__F_CALLBACKS = 1u << 1, /* done-callback nodes among the waiters */
    WEFT__F_YIELD = 1u << 2,     /* done, and awaiting it yields once (sleep(0)) */
    WEFT__F_EXTRAS = 1u << 3,    /* has an entry in the loop's extras table */
    WEFT__F_PLAIN = 1u << 7      /* a plain future without a destructor, in a
                                    build that recycles (what the inline paths
                                    test: never set on any other kind) */
};

/* Private, do not touch: the 48-byte header every kind of future embeds
 * first (a plain future, a task, a sleep, a waiter...). */
struct weft_future {
    const struct weft__future_ops *ops;
    weft_loop *loop;
    weft_link waiters; /* parked tasks and done-callback nodes, FIFO */
    union {
        weft_value v;     /* DONE */
        int err;          /* FAILED (CANCELLED implies -ECANCELED) */
        const void *kind; /* pending: free for the kind (a task's error origin) */
    } out;
    uint32_t refs;
    uint8_t state; /* WEFT__PENDING ... */
    uint8_t flags; /* WEFT__F_* */
    uint16_t aux;  /* free for the kind: a task's cancel requests */
};

/* Private: refs, state, flags and aux, the four fields the inline paths
 * test, are one 8-byte word at refs; weft__future_hdr_is tests masked
 * values of them with one load and one comparison. */
typedef struct weft__future_hdr {
    uint32_t refs;
    uint8_t state, flags;
    uint16_t aux;
} weft__future_hdr;

static inline uint64_t weft__future_hdr_word(weft__future_hdr h)
{
    uint64_t w;
    memcpy(&w, &h, sizeof w);
    return w;
}

/* True if f's fields masked by mask (set bits: compared) equal want's. */
static inline bool weft__future_hdr_is(const weft_future *f, weft__future_hdr mask,
                                       weft__future_hdr want)
{
    uint64_t w;
    memcpy(&w, (const char *)f + offsetof(weft_future, refs), sizeof w);
    return (w & weft__future_hdr_word(mask)) == weft__future_hdr_word(want);
}

/* Private: a future that owns its pointer value's destructor (a plain
 * future is one). */
typedef struct weft__dfuture {
    weft_future f;
    weft_dtor *dtor;
} weft__dfuture;

/* Private: plain futures' kind (src/future.c). */
extern const struct weft__future_ops weft__plain_ops;

/* Private: weft_future_new's hot path, inline: a recycled future of an
 * open loop (already a plain future of this loop, without a destructor,
 * whose waiters.prev points to its waiters), from the loop's free list
 * (weft__loop_head.ffree: the future layer keeps it there, so that the
 * inline paths of weft_future_new and of an await reach it at a fixed
 * offset; future.c fills it, and empties it at the close). */
static inline weft_future *weft__future_new_inline(weft_loop *loop)
{
    weft__loop_head *h = (weft__loop_head *)(void *)loop;
    weft__dfuture *d;
    if (!loop || !(d = h->ffree))
        return (weft_future_new)(loop);
    h->ffree = (weft__dfuture *)(void *)d->f.waiters.next;
    d->f.waiters.next = &d->f.waiters; /* prev is &waiters already: the free
                                          list chains through next only, and
                                          a done future has no waiters */
    d->f.refs = 1;
    d->f.state = WEFT__PENDING;
    d->f.flags = WEFT__F_PLAIN;
    d->f.aux = 0;
    return &d->f;
}
#define weft_future_new(loop) weft__future_new_inline(loop)

/* Private: the loop state bits of a closing or closed loop (checked in
 * src/future.c). */
#define WEFT__LOOP_CLOSED_BITS 12u

/* Private: weft_future_set_result's hot path, inline: a pending plain
 * future with parked tasks only (no done callback) on an open loop; its
 * waiters move to the tail of the ready queue. */
/* Private: complete pending f with v and move its waiters (parked tasks
 * only, at least one) to the end of the ready queue dst, in order (the
 * stores are ordered so that they stay plain moves, not a vector store).
 * The one completion both weft__future_set_inline and future.c's hot path
 * use. */
static inline void weft__future_wake_parked(weft_future *f, weft_link *dst, weft_value v)
{
    f->out.v = v;
    f->state = WEFT__DONE;
    weft__link_splice(dst, &f->waiters);
}

static inline int weft__future_set_inline(weft_future *f, weft_value v)
{
    weft__loop_head *h;
    if (f && (f->flags & (WEFT__F_PLAIN | WEFT__F_CALLBACKS)) == WEFT__F_PLAIN &&
        f->waiters.next != &f->waiters && /* waiters: pending (a done one has none) */
        !((h = (weft__loop_head *)(void *)f->loop)->state & WEFT__LOOP_CLOSED_BITS)) {
        weft__future_wake_parked(f, h->ready, v);
        return 0;
    }
    return (weft_future_set_result)(f, v);
}

static inline int weft__future_set_int_inline(weft_future *f, int64_t i)
{
    weft_value v;
    v.i = i;
    return weft__future_set_inline(f, v);
}
#define weft_future_set_result(f, v) weft__future_set_inline((f), (v))
#define weft_future_set_int(f, i) weft__future_set_int_inline((f), (i))

#ifdef __cplusplus
}
#endif
#endif
