/* signal.c - signal handlers that run on the loop (asyncio's
 * add_signal_handler), and futures that wait for a signal.
 *
 * One process-wide handler serves every signal weft watches.  It runs in
 * signal context, so it does only async-signal-safe things: it walks the
 * list of loops that use signals (atomic pointers, never locked), and for
 * each loop whose mask has the signal it sets the signal's pending bit and
 * writes one byte to that loop's self-pipe.  Each loop watches the read end
 * of its pipe with a weft_io; the callback drains the pipe, takes the
 * pending bits (one atomic exchange per word) and runs the handlers and
 * completes the waiters on the loop's own thread.  Any number of bytes and
 * pending bits that pile up before the loop gets there become one call per
 * signal: a burst is coalesced.
 *
 * Why a pipe per loop and not signalfd, or the loop's wakeup: a signalfd
 * read consumes the signal, so one delivery reaches one loop, and it needs
 * the signal blocked in every thread; the loop's wakeup (weft_async_send)
 * takes a mutex, which a signal handler must not.  docs/signals.md says
 * more.
 *
 * Locking: g_mu (never taken in signal context) guards the per-signal
 * process state (how many loops watch it, the disposition saved at the
 * first install) and the changes to the list of loops.  The handler only
 * loads: the list head, each loop's next pointer, its mask word.  A loop
 * leaves the list at close: it unlinks itself, then waits until no handler
 * is in flight (g_inflight) before it closes its pipe and frees its state,
 * so a handler never touches freed memory or a reused fd.
 *
 * Costs: a delivery is one write(2) per watching loop in signal context,
 * one weft_io callback per loop with a read(2) until EAGAIN, and one
 * atomic exchange per 32 signals.  A loop that uses signals holds two fds
 * and about 1.7 KiB (a handler slot per signal number) until it closes.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "future_internal.h"
#include "signal_internal.h"

/* Signal numbers are 1 .. MAXSIG - 1. */
#if defined(NSIG)
#define MAXSIG NSIG
#elif defined(_NSIG)
#define MAXSIG _NSIG
#else
#define MAXSIG 65
#endif
#define WORDS ((MAXSIG + 31) / 32)

_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_POINTER_LOCK_FREE == 2,
               "the signal handler needs lock-free atomics");

typedef struct sigloop sigloop;

/* A future waiting for the next delivery of signo: one pooled block. */
typedef struct sig_wait {
    weft_future f;
    weft__hold hold; /* the loop holds a pending wait */
    weft_link link;  /* in sl->waiters while attached */
    sigloop *sl;     /* NULL once completed, cancelled or detached (close) */
    int signo;
} sig_wait;

/* One loop's signal state: the layer WEFT__LAYER_OS. */
struct sigloop {
    weft__layer base;
    weft_loop *loop;
    _Atomic(sigloop *) next;    /* the process's list of loops (g_loops) */
    int rfd, wfd;               /* the self-pipe, both ends non-blocking */
    weft_io io;                 /* the read end; interest while nwatched > 0 */
    int nwatched;               /* signals this loop watches */
    atomic_uint mask[WORDS];    /* signals watched: read by the handler */
    atomic_uint pending[WORDS]; /* delivered, not yet dispatched: set by the handler */
    weft_link waiters;          /* sig_wait.link, in creation order */
    struct {
        weft_signal_cb *cb; /* NULL: no handler */
        void *ud;
        unsigned nwait; /* waiters of this signal */
        bool watched;   /* in mask, counted in g_sig: cb or nwait */
    } sig[MAXSIG];
};

/* ---- process-wide state ------------------------------------------------------------------ */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(sigloop *) g_loops; /* changed under g_mu; read by the handler */
static atomic_uint g_inflight;     /* handlers running now, in any thread */
static struct {
    unsigned users;       /* loops watching the signal */
    struct sigaction old; /* the disposition before weft's: restored at 0 users */
} g_sig[MAXSIG];          /* guarded by g_mu */

static inline unsigned word_of(int signo)
{
    return (unsigned)signo / 32u;
}

static inline unsigned bit_of(int signo)
{
    return 1u << ((unsigned)signo % 32u);
}

/* The handler: async-signal-safe (lock-free atomics and write(2)); errno
 * is preserved for the code it interrupted. */
static void on_signal(int signo)
{
    int saved = errno;
    atomic_fetch_add(&g_inflight, 1);
    if (signo > 0 && signo < MAXSIG) {
        unsigned w = word_of(signo), b = bit_of(signo);
        for (sigloop *s = atomic_load(&g_loops); s; s = atomic_load(&s->next)) {
            if (atomic_load_explicit(&s->mask[w], memory_order_relaxed) & b) {
                atomic_fetch_or(&s->pending[w], b);
                /* a full pipe already wakes the loop: the byte is not needed */
                ssize_t n = write(s->wfd, "s", 1);
                (void)n;
            }
        }
    }
    atomic_fetch_sub(&g_inflight, 1);
    errno = saved;
}

/* ---- watching a signal ------------------------------------------------------------------- */

static bool watching(const sigloop *sl, int signo)
{
    return sl->sig[signo].cb || sl->sig[signo].nwait;
}

/* This loop starts watching signo: its mask bit, and the process handler
 * at the first watcher in the process (the old disposition saved).
 * 0 or the negated errno of sigaction (nothing changed then). */
static int watch(sigloop *sl, int signo)
{
    unsigned w = word_of(signo), b = bit_of(signo);
    int err = 0;
    pthread_mutex_lock(&g_mu);
    atomic_fetch_and(&sl->pending[w], ~b); /* what came before does not count */
    atomic_fetch_or(&sl->mask[w], b);
    if (g_sig[signo].users == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        if (sigaction(signo, &sa, &g_sig[signo].old) < 0) {
            err = -errno;
            atomic_fetch_and(&sl->mask[w], ~b);
        }
    }
    if (!err)
        g_sig[signo].users++;
    pthread_mutex_unlock(&g_mu);
    if (!err) {
        sl->sig[signo].watched = true;
        if (sl->nwatched++ == 0)
            weft_io_start(&sl->io, WEFT_READABLE);
    }
    return err;
}

/* This loop stops watching signo; the last watcher in the process puts
 * the saved disposition back. */
static void unwatch(sigloop *sl, int signo)
{
    unsigned w = word_of(signo), b = bit_of(signo);
    pthread_mutex_lock(&g_mu);
    atomic_fetch_and(&sl->mask[w], ~b);
    WEFT_ASSERT(g_sig[signo].users > 0);
    if (--g_sig[signo].users == 0)
        sigaction(signo, &g_sig[signo].old, NULL);
    pthread_mutex_unlock(&g_mu);
    atomic_fetch_and(&sl->pending[w], ~b);
    sl->sig[signo].watched = false;
    if (--sl->nwatched == 0)
        weft_io_stop(&sl->io, WEFT_READABLE);
}

/* unwatch if nothing on this loop needs signo any more. */
static void maybe_unwatch(sigloop *sl, int signo)
{
    if (sl->sig[signo].watched && !watching(sl, signo))
        unwatch(sl, signo);
}

/* ---- delivery on the loop ---------------------------------------------------------------- */

static void wait_detach(sig_wait *w)
{
    weft__list_unlink(&w->link);
    w->sl->sig[w->signo].nwait--;
    w->sl = NULL;
}

/* One signal delivered to this loop: its waiters complete first (their
 * tasks run later, from the ready queue), then the handler runs.  Waiters
 * made by the handler wait for the next delivery. */
static void deliver(sigloop *sl, int signo)
{
    for (weft_link *l = sl->waiters.next, *next; l != &sl->waiters; l = next) {
        next = l->next;
        sig_wait *w = WEFT_CONTAINER_OF(l, sig_wait, link);
        if (w->signo != signo)
            continue;
        wait_detach(w);
        weft__future_resolve(&w->f, (weft_value){.i = signo});
        weft__future_unhold(&w->hold); /* may free w */
    }
    weft_signal_cb *cb = sl->sig[signo].cb;
    if (cb) {
        weft__running_cb(sl->loop, (weft_cb *)(void (*)(void))cb, sl->sig[signo].ud);
        cb(sl->loop, signo, sl->sig[signo].ud);
    }
    maybe_unwatch(sl, signo); /* the last waiters went, and no handler */
}

/* The self-pipe is readable: drain it, then dispatch every pending signal
 * (lowest number first), each once however often it came. */
static void on_readable(weft_io *io, unsigned events)
{
    (void)events;
    sigloop *sl = WEFT_CONTAINER_OF(io, sigloop, io);
    char buf[64];
    while (read(sl->rfd, buf, sizeof buf) > 0)
        ;
    for (unsigned w = 0; w < WORDS; w++) {
        unsigned bits = atomic_exchange(&sl->pending[w], 0u);
        for (unsigned i = 0; bits; i++) {
            if (!(bits & (1u << i)))
                continue;
            bits &= ~(1u << i);
            int signo = (int)(w * 32u + i);
            if (signo > 0 && signo < MAXSIG && sl->sig[signo].watched)
                deliver(sl, signo);
        }
    }
}

/* ---- the layer --------------------------------------------------------------------------- */

/* A non-blocking, close-on-exec pipe (POSIX.1-2008 has no pipe2). */
static int open_pipe(int p[2])
{
    if (pipe(p) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(p[i], F_GETFL);
        if (fl < 0 || fcntl(p[i], F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(p[i], F_SETFD, FD_CLOEXEC) < 0) {
            int err = -errno;
            close(p[0]);
            close(p[1]);
            return err;
        }
    }
    return 0;
}

/* Loop close: every handler and waiter goes (the waiters' futures stay
 * pending: the future layer drops the loop's holds), the dispositions come
 * back, and once no handler can be reading this state, it is freed. */
static void layer_close(weft_loop *loop, weft__layer *self)
{
    sigloop *sl = (sigloop *)(void *)self;
    while (!weft__list_empty(&sl->waiters))
        wait_detach(WEFT_CONTAINER_OF(sl->waiters.next, sig_wait, link));
    for (int signo = 1; signo < MAXSIG; signo++) {
        sl->sig[signo].cb = NULL;
        maybe_unwatch(sl, signo);
    }
    weft_io_close(&sl->io);
    pthread_mutex_lock(&g_mu);
    _Atomic(sigloop *) *pp = &g_loops;
    while (atomic_load(pp) != sl)
        pp = &atomic_load(pp)->next;
    atomic_store(pp, atomic_load(&sl->next));
    pthread_mutex_unlock(&g_mu);
    /* a handler that loaded sl before the unlink may still use it: wait */
    while (atomic_load(&g_inflight))
        sched_yield();
    close(sl->rfd);
    close(sl->wfd);
    weft__layer_set(loop, WEFT__LAYER_OS, NULL);
    weft__free(loop, sl);
}

static void layer_dump(weft_loop *loop, weft__layer *self, weft__strbuf *out)
{
    (void)loop;
    const sigloop *sl = (const sigloop *)(const void *)self;
    if (!sl->nwatched)
        return;
    weft__strbuf_printf(out, "signals watched:");
    for (int signo = 1; signo < MAXSIG; signo++) {
        if (!sl->sig[signo].watched)
            continue;
        weft__strbuf_printf(out, " %d (%s%u waiter%s)", signo, sl->sig[signo].cb ? "handler, " : "",
                            sl->sig[signo].nwait, sl->sig[signo].nwait == 1 ? "" : "s");
    }
    weft__strbuf_printf(out, "\n");
}

static sigloop *sigloop_of(const weft_loop *loop)
{
    return (sigloop *)(void *)weft__layer_get(loop, WEFT__LAYER_OS);
}

/* The loop's signal state, made on first use: its pipe, its watcher, its
 * place in the process's list.  0, -ENOMEM, the errno of pipe/fcntl
 * (-EMFILE...), or weft_io_init's error. */
static int sigloop_make(weft_loop *loop, sigloop **out)
{
    sigloop *sl = sigloop_of(loop);
    if (sl) {
        *out = sl;
        return 0;
    }
    sl = weft__alloc(loop, sizeof *sl);
    if (!sl)
        return -ENOMEM;
    memset(sl, 0, sizeof *sl);
    int p[2];
    int err = open_pipe(p);
    if (err) {
        weft__free(loop, sl);
        return err;
    }
    sl->rfd = p[0];
    sl->wfd = p[1];
    err = weft_io_init(&sl->io, loop, sl->rfd, on_readable);
    if (err) {
        close(p[0]);
        close(p[1]);
        weft__free(loop, sl);
        return err;
    }
    sl->base.close = layer_close;
    sl->base.dump = layer_dump;
    sl->loop = loop;
    for (unsigned w = 0; w < WORDS; w++) {
        atomic_init(&sl->mask[w], 0u);
        atomic_init(&sl->pending[w], 0u);
    }
    weft__list_init(&sl->waiters);
    pthread_mutex_lock(&g_mu);
    atomic_init(&sl->next, atomic_load(&g_loops));
    atomic_store(&g_loops, sl); /* published whole: the handler may walk it now */
    pthread_mutex_unlock(&g_mu);
    weft__layer_set(loop, WEFT__LAYER_OS, &sl->base);
    *out = sl;
    return 0;
}

/* ---- handlers ---------------------------------------------------------------------------- */

/* The checks every entry point makes on signo: catchable, and (unless
 * the process layer asks) not SIGCHLD. */
static int check_signo(int signo, bool allow_chld)
{
    if (signo <= 0 || signo >= MAXSIG || signo == SIGKILL || signo == SIGSTOP)
        return -EINVAL;
    if (signo == SIGCHLD && !allow_chld)
        return -EPERM;
    return 0;
}

static int add_handler(weft_loop *loop, int signo, weft_signal_cb *cb, void *ud, bool allow_chld)
{
    if (!loop || !cb)
        return -EINVAL;
    int err = check_signo(signo, allow_chld);
    if (err)
        return err;
    if (weft__wrong_thread(loop, "weft_add_signal_handler"))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    sigloop *sl;
    err = sigloop_make(loop, &sl);
    if (!err && !sl->sig[signo].watched)
        err = watch(sl, signo);
    if (err)
        return err;
    sl->sig[signo].cb = cb;
    sl->sig[signo].ud = ud;
    return 0;
}

static int remove_handler(weft_loop *loop, int signo, bool allow_chld)
{
    if (!loop)
        return -EINVAL;
    int err = check_signo(signo, allow_chld);
    if (err)
        return err;
    if (weft__wrong_thread(loop, "weft_remove_signal_handler"))
        return -EPERM;
    sigloop *sl = sigloop_of(loop);
    if (!sl || !sl->sig[signo].cb)
        return 0;
    sl->sig[signo].cb = NULL;
    sl->sig[signo].ud = NULL;
    maybe_unwatch(sl, signo);
    return 1;
}

int weft_add_signal_handler(weft_loop *loop, int signo, weft_signal_cb *cb, void *ud)
{
    return add_handler(loop, signo, cb, ud, false);
}

int weft_remove_signal_handler(weft_loop *loop, int signo)
{
    return remove_handler(loop, signo, false);
}

int weft__signal_add(weft_loop *loop, int signo, weft_signal_cb *cb, void *ud)
{
    return add_handler(loop, signo, cb, ud, true);
}

int weft__signal_remove(weft_loop *loop, int signo)
{
    return remove_handler(loop, signo, true);
}

/* ---- waiting for a signal ---------------------------------------------------------------- */

static int wait_cancel(weft_future *f)
{
    sig_wait *w = WEFT_CONTAINER_OF(f, sig_wait, f);
    sigloop *sl = w->sl;
    if (sl) {
        int signo = w->signo;
        wait_detach(w);
        maybe_unwatch(sl, signo);
    }
    int err = weft__future_cancel_now(f);
    weft__future_unhold(&w->hold); /* last: it may free w */
    return err;
}

static void wait_release(weft_future *f)
{
    sig_wait *w = WEFT_CONTAINER_OF(f, sig_wait, f);
    sigloop *sl = w->sl;
    if (sl) { /* not reached: a pending wait is held until close detaches it */
        int signo = w->signo;
        wait_detach(w);
        maybe_unwatch(sl, signo);
    }
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, w, sizeof *w);
}

static const weft__future_ops wait_ops = {
    .kind = "signal wait",
    .cancel = wait_cancel,
    .release = wait_release,
};

weft_future *weft_signal_wait(weft_loop *loop, int signo)
{
    int err = loop ? check_signo(signo, false) : -EINVAL;
    if (!err && weft__wrong_thread(loop, "weft_signal_wait"))
        err = -EPERM;
    if (!err && weft__closed(loop))
        err = WEFT_ECLOSED;
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    weft__pool *pool = weft__pool_of(loop);
    sig_wait *w = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *w) : NULL;
    if (!w) {
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    sigloop *sl;
    err = sigloop_make(loop, &sl);
    if (!err && !sl->sig[signo].watched)
        err = watch(sl, signo);
    if (err) {
        weft__pool_put(pool, WEFT__POOL_ANY, w, sizeof *w);
        weft__set_last_error(err);
        return NULL;
    }
    weft__future_init(&w->f, &wait_ops, loop);
    w->signo = signo;
    w->sl = sl;
    w->link.next = w->link.prev = NULL;
    weft__list_push(&sl->waiters, &w->link);
    sl->sig[signo].nwait++;
    weft__future_hold(&w->f, &w->hold);
    return &w->f;
}
