/* loop.c - the event loop: one iteration, scheduling, fd watchers, clock.
 *
 * The iteration (weft__iterate) is the whole story; everything else feeds
 * the ready queue or the timer heap.  Costs: call_soon O(1), call_later and
 * cancel O(log timers), an iteration O(ready + expired timers + ready fds)
 * plus one backend wait when an fd is watched or the loop must sleep.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "loop_internal.h"

#define DEFAULT_LAG_NS 100000000LL /* 100 ms, asyncio's slow_callback_duration */

static _Thread_local weft_loop *running_loop;

/* ---- allocation ------------------------------------------------------------ */

static void *libc_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    if (n == 0) {
        free(p);
        return NULL;
    }
    return realloc(p, n);
}

void *weft__realloc(weft_loop *loop, void *p, size_t size)
{
    return loop->alloc.realloc(loop->alloc.ud, p, size);
}

void *weft__alloc(weft_loop *loop, size_t size)
{
    return loop->alloc.realloc(loop->alloc.ud, NULL, size);
}

void weft__free(weft_loop *loop, void *p)
{
    if (p)
        loop->alloc.realloc(loop->alloc.ud, p, 0);
}

/* ---- clock -------------------------------------------------------------------- */

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t weft__now(weft_loop *loop)
{
    if (!loop->now_valid) {
        loop->now = clock_ns(CLOCK_MONOTONIC);
        loop->now_valid = true;
    }
    return loop->now;
}

int64_t weft_loop_now(weft_loop *loop)
{
    return loop ? weft__now(loop) : 0;
}

double weft_loop_time(weft_loop *loop)
{
    return (double)weft_loop_now(loop) / 1e9;
}

/* ---- reports -------------------------------------------------------------- */

static void default_error_hook(weft_loop *loop, int err, const char *msg, void *ud)
{
    (void)loop, (void)ud;
    if (err)
        fprintf(stderr, "weft: %s (%s)\n", msg, weft_strerror(err));
    else
        fprintf(stderr, "weft: %s\n", msg);
}

static void default_lag_hook(weft_loop *loop, const weft_lag_report *r, void *ud)
{
    (void)loop, (void)ud;
    fprintf(stderr, "weft: slow callback: %s ran %.1f ms\n", r->what, (double)r->duration_ns / 1e6);
}

static void lag_report(weft_loop *loop, int64_t ns)
{
    char what[256];
    weft_lag_report r = {ns, what, loop->cur_fn, loop->cur_arg};
    if (loop->cur_fn) {
        /* ISO C has no portable way to print a function pointer, so its
         * bytes are shown in hex. */
        unsigned char b[sizeof loop->cur_fn];
        memcpy(b, &loop->cur_fn, sizeof b);
        int k = snprintf(what, sizeof what, "callback fn=0x");
        for (size_t i = sizeof b; i-- > 0 && k < (int)sizeof what - 3;)
            k += snprintf(what + k, sizeof what - (size_t)k, "%02x", b[i]);
        snprintf(what + k, sizeof what - (size_t)k, " arg=%p", loop->cur_arg);
    } else if (loop->cur_describe) {
        weft_report rep = {0};
        r.fn = NULL;
        loop->cur_describe(loop->cur_obj, &rep, what, sizeof what);
    } else {
        snprintf(what, sizeof what, "callback node=%p", loop->cur_arg);
    }
    loop->stats.lag_reports++;
    loop->lag_hook(loop, &r, loop->lag_ud);
}

int weft_loop_set_lag_hook(weft_loop *loop, weft_lag_hook *hook, void *ud)
{
    if (!loop)
        return -EINVAL;
    loop->lag_hook = hook ? hook : default_lag_hook;
    loop->lag_ud = hook ? ud : NULL;
    return 0;
}

int weft_loop_set_lag_threshold(weft_loop *loop, int64_t ns)
{
    if (!loop)
        return -EINVAL;
    loop->lag_threshold = ns == 0 ? DEFAULT_LAG_NS : ns < 0 ? 0 : ns;
    /* The coarse clock costs a quarter of the precise one but ticks in
     * 1-4 ms steps: good enough unless the threshold is small. */
#ifdef CLOCK_MONOTONIC_COARSE
    loop->lag_clock = loop->lag_threshold >= 20000000 ? CLOCK_MONOTONIC_COARSE : CLOCK_MONOTONIC;
#else
    loop->lag_clock = CLOCK_MONOTONIC; /* no coarse clock (not Linux) */
#endif
    loop->lag_stamp_valid = false;
    return 0;
}

int weft_loop_set_error_hook(weft_loop *loop, weft_error_hook *hook, void *ud)
{
    if (!loop)
        return -EINVAL;
    loop->err_hook = hook ? hook : default_error_hook;
    loop->err_ud = hook ? ud : NULL;
    return 0;
}

int weft_loop_get_stats(const weft_loop *loop, weft_loop_stats *out)
{
    if (!loop || !out)
        return -EINVAL;
    *out = loop->stats;
    return 0;
}

/* ---- handles and the pool ----------------------------------------------------- */

void weft__handle_run(weft_node *n)
{
    weft_handle *h = (weft_handle *)n;
    h->fn(h->arg);
}

void weft_handle_init(weft_handle *h, weft_cb *fn, void *arg)
{
    if (!h)
        return;
    h->node = (weft_node){{NULL, NULL}, weft__handle_run};
    h->fn = fn;
    h->arg = arg;
}

int weft_handle_schedule(weft_loop *loop, weft_handle *h)
{
    if (!loop || !h || !h->fn)
        return -EINVAL;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    if (!weft__node_linked(&h->node)) {
        h->node.run = weft__handle_run;
        weft__ready_push(loop, &h->node);
    }
    return 0;
}

int weft_handle_cancel(weft_handle *h)
{
    if (!h)
        return -EINVAL;
    if (!weft__node_linked(&h->node))
        return -ENOENT;
    weft__node_unlink(&h->node);
    return 0;
}

bool weft_handle_pending(const weft_handle *h)
{
    return h && weft__node_linked(&h->node);
}

/* Reserve one more heap slot; the heap grows here, never in start. */
static int heap_reserve(weft_loop *loop)
{
    weft__heap *h = &loop->heap;
    if (h->reserved == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        weft__hent *e = weft__realloc(loop, h->e, cap * sizeof *e);
        if (!e)
            return -ENOMEM;
        h->e = e;
        h->cap = cap;
    }
    h->reserved++;
    return 0;
}

/* Run a convenience call: record what runs, let the node go (back to the
 * pool, or to the allocator for a node made by another thread), then
 * call.  Releasing first lets a call_soon chain reuse the same node. */
static void call_run(weft_node *n, bool pooled)
{
    weft__pooled *c = (weft__pooled *)n;
    weft_loop *loop = c->t.loop;
    weft_cb *fn = c->t.h.fn;
    void *arg = c->t.h.arg;
    loop->cur_fn = fn;
    loop->cur_arg = arg;
    if (pooled)
        weft__call_put(loop, c);
    else
        weft__free(loop, c);
    fn(arg);
}

static void pooled_run(weft_node *n)
{
    call_run(n, true);
}

weft__pooled *weft__call_get(weft_loop *loop)
{
    weft__pooled *c = loop->pool;
    if (c) {
        loop->pool = (weft__pooled *)c->t.h.node.link.next;
        c->t.h.node.link.next = NULL;
        return c;
    }
    c = weft__alloc(loop, sizeof *c);
    if (!c)
        return NULL;
    if (heap_reserve(loop) < 0) {
        weft__free(loop, c);
        return NULL;
    }
    *c = (weft__pooled){0};
    c->t.loop = loop;
    c->t.index = WEFT__NO_INDEX;
    c->all = loop->pool_all;
    loop->pool_all = c;
    return c;
}

void weft__call_put(weft_loop *loop, weft__pooled *c)
{
    c->gen++;
    c->aux = NULL;
    c->t.h.node.link.next = (weft_link *)loop->pool;
    loop->pool = c;
}

/* ---- timers ------------------------------------------------------------------- */

int weft_timer_init(weft_timer *t, weft_loop *loop, weft_cb *fn, void *arg)
{
    if (!loop || !t || !fn)
        return -EINVAL;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    int err = heap_reserve(loop);
    if (err)
        return err;
    weft_handle_init(&t->h, fn, arg);
    t->loop = loop;
    t->when = 0;
    t->repeat = 0;
    t->index = WEFT__NO_INDEX;
    return 0;
}

static void timer_arm(weft_loop *loop, weft_timer *t, int64_t when, int64_t repeat)
{
    weft_timer_stop(t); /* armed: re-armed; expired but not run: superseded */
    t->when = when;
    t->repeat = repeat;
    weft__heap_insert(&loop->heap, t, loop->timer_seq++);
}

int weft_timer_start_at_ns(weft_timer *t, int64_t when_ns, int64_t repeat_ns)
{
    if (!t || !t->loop || repeat_ns < 0)
        return -EINVAL;
    if (weft__closed(t->loop))
        return WEFT_ECLOSED;
    timer_arm(t->loop, t, when_ns, repeat_ns);
    return 0;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    if (b <= 0)
        return a;
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

int weft_timer_start_ns(weft_timer *t, int64_t delay_ns, int64_t repeat_ns)
{
    if (!t || !t->loop || repeat_ns < 0)
        return -EINVAL;
    if (weft__closed(t->loop))
        return WEFT_ECLOSED;
    timer_arm(t->loop, t, add_sat(weft__now(t->loop), delay_ns), repeat_ns);
    return 0;
}

int weft_timer_stop(weft_timer *t)
{
    if (!t || !t->loop)
        return -EINVAL;
    if (t->index != WEFT__NO_INDEX)
        weft__heap_remove(&t->loop->heap, t);
    else if (weft__node_linked(&t->h.node))
        weft__node_unlink(&t->h.node);
    else
        return -ENOENT;
    return 0;
}

int64_t weft_timer_when(const weft_timer *t)
{
    return weft_timer_active(t) ? t->when : INT64_MIN;
}

bool weft_timer_active(const weft_timer *t)
{
    /* t->loop is NULL for a zeroed (never initialised) or closed timer */
    return t && t->loop && (t->index != WEFT__NO_INDEX || weft__node_linked(&t->h.node));
}

void weft_timer_close(weft_timer *t)
{
    if (!t || !t->loop)
        return;
    weft_timer_stop(t);
    if (!weft__closed(t->loop))
        t->loop->heap.reserved--;
    t->loop = NULL;
}

/* Move every expired timer to the ready queue, in (when, seq) order. */
static void run_timers(weft_loop *loop)
{
    weft__heap *h = &loop->heap;
    int64_t now = weft__now(loop);
    while (h->n && h->e[0].when <= now) {
        weft_timer *t = h->e[0].t;
        if (t->repeat > 0) {
            int64_t next = add_sat(t->when, t->repeat);
            t->when = next > now ? next : add_sat(now, t->repeat);
            h->e[0].when = t->when;
            h->e[0].seq = loop->timer_seq++;
            weft__heap_fix_down(h, 0);
        } else {
            weft__heap_remove(h, t);
        }
        if (!weft__node_linked(&t->h.node))
            weft__ready_push(loop, &t->h.node);
    }
}

/* ---- convenience calls ---------------------------------------------------------- */

static int call_new(weft_loop *loop, weft_cb *fn, void *arg, weft__pooled **out)
{
    if (!loop || !fn)
        return -EINVAL;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    weft__pooled *c = weft__call_get(loop);
    if (!c)
        return -ENOMEM;
    c->t.h.node.run = pooled_run;
    c->t.h.fn = fn;
    c->t.h.arg = arg;
    *out = c;
    return 0;
}

static void call_token(weft__pooled *c, weft_call *out)
{
    if (out)
        *out = (weft_call){c, c->gen};
}

int weft_call_soon(weft_loop *loop, weft_cb *fn, void *arg, weft_call *out)
{
    weft__pooled *c;
    if (loop && fn && loop->pool) {
        /* hot path: a recycled node (a closed loop has an empty pool) */
        c = loop->pool;
        loop->pool = (weft__pooled *)c->t.h.node.link.next;
        c->t.h.node.link.next = NULL;
        c->t.h.node.run = pooled_run;
        c->t.h.fn = fn;
        c->t.h.arg = arg;
    } else {
        int err = call_new(loop, fn, arg, &c);
        if (err)
            return err;
    }
    weft__ready_push(loop, &c->t.h.node);
    call_token(c, out);
    return 0;
}

int weft_call_at_ns(weft_loop *loop, int64_t when_ns, weft_cb *fn, void *arg, weft_call *out)
{
    weft__pooled *c;
    int err = call_new(loop, fn, arg, &c);
    if (err)
        return err;
    timer_arm(loop, &c->t, when_ns, 0);
    call_token(c, out);
    return 0;
}

int weft_call_later_ns(weft_loop *loop, int64_t delay_ns, weft_cb *fn, void *arg, weft_call *out)
{
    if (!loop)
        return -EINVAL;
    return weft_call_at_ns(loop, add_sat(weft__now(loop), delay_ns), fn, arg, out);
}

/* Seconds to nanoseconds, saturating; NaN is an error. */
static int sec_to_ns(double s, int64_t *out)
{
    if (isnan(s))
        return -EINVAL;
    if (s >= 9.2e9)
        *out = INT64_MAX;
    else if (s <= -9.2e9)
        *out = INT64_MIN;
    else
        *out = (int64_t)(s * 1e9);
    return 0;
}

int weft_call_later(weft_loop *loop, double delay, weft_cb *fn, void *arg, weft_call *out)
{
    int64_t ns;
    int err = sec_to_ns(delay, &ns);
    return err ? err : weft_call_later_ns(loop, ns, fn, arg, out);
}

int weft_call_at(weft_loop *loop, double when, weft_cb *fn, void *arg, weft_call *out)
{
    int64_t ns;
    int err = sec_to_ns(when, &ns);
    return err ? err : weft_call_at_ns(loop, ns, fn, arg, out);
}

int weft_call_cancel(weft_loop *loop, weft_call call)
{
    weft__pooled *c = call.p;
    if (!loop || !c)
        return -EINVAL;
    if (weft__closed(loop) || c->gen != call.gen || c->t.h.node.run != pooled_run)
        return -ENOENT;
    if (weft_timer_stop(&c->t) < 0)
        return -ENOENT; /* ran already */
    weft__call_put(loop, c);
    return 0;
}

/* ---- fd watchers ---------------------------------------------------------------- */

static int io_grow(weft_loop *loop, int fd)
{
    if (fd >= loop->io_cap) {
        int cap = loop->io_cap ? loop->io_cap : 64;
        while (cap <= fd)
            cap *= 2;
        weft__io **io = weft__realloc(loop, loop->io, (size_t)cap * sizeof *io);
        if (!io)
            return -ENOMEM;
        for (int i = loop->io_cap; i < cap; i++)
            io[i] = NULL;
        loop->io = io;
        loop->io_cap = cap;
    }
    if (!loop->io[fd]) {
        weft__io *e = weft__alloc(loop, sizeof *e);
        if (!e)
            return -ENOMEM;
        weft_handle_init(&e->rd, NULL, NULL);
        weft_handle_init(&e->wr, NULL, NULL);
        e->events = 0;
        loop->io[fd] = e;
    }
    return 0;
}

/* Set fd's interest to `events`, telling the backend first so that a
 * refusal leaves everything as it was.  force: tell the backend even if
 * nothing changed (an add may be for a closed fd's reused number, which
 * the kernel, or the poll backend, has forgotten). */
static int io_set(weft_loop *loop, int fd, unsigned events, bool force)
{
    weft__io *io = loop->io[fd];
    if (events == io->events && !force)
        return 0;
    int err = loop->be->watch(loop, fd, io->events, events);
    if (err)
        return err;
    if (fd != loop->wake_rd)
        loop->nwatched += (events != 0) - (io->events != 0);
    io->events = events;
    return 0;
}

static int add_watcher(weft_loop *loop, int fd, unsigned dir, weft_cb *fn, void *arg)
{
    if (!loop || !fn)
        return -EINVAL;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    if (fd < 0 || fd == loop->wake_rd)
        return -EBADF;
    int err = io_grow(loop, fd);
    if (err)
        return err;
    weft__io *io = loop->io[fd];
    err = io_set(loop, fd, io->events | dir, true);
    if (err)
        return err;
    weft_handle *h = dir == WEFT__IN ? &io->rd : &io->wr;
    if (weft__node_linked(&h->node))
        weft__node_unlink(&h->node); /* the replaced callback must not run */
    weft_handle_init(h, fn, arg);
    return 0;
}

static int remove_watcher(weft_loop *loop, int fd, unsigned dir)
{
    if (!loop)
        return -EINVAL;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    if (fd < 0 || fd >= loop->io_cap || fd == loop->wake_rd || !loop->io[fd] ||
        !(loop->io[fd]->events & dir))
        return -ENOENT;
    weft__io *io = loop->io[fd];
    weft_handle *h = dir == WEFT__IN ? &io->rd : &io->wr;
    if (weft__node_linked(&h->node))
        weft__node_unlink(&h->node);
    h->fn = NULL;
    if (io_set(loop, fd, io->events & ~dir, false) < 0) {
        /* The kernel refused to shrink the set (the fd was closed and its
         * number reused): forget the fd rather than keep half a state. */
        loop->be->watch(loop, fd, io->events, 0);
        loop->nwatched -= io->events != 0;
        io->events = 0;
    }
    return 0;
}

int weft_add_reader(weft_loop *loop, int fd, weft_cb *fn, void *arg)
{
    return add_watcher(loop, fd, WEFT__IN, fn, arg);
}

int weft_add_writer(weft_loop *loop, int fd, weft_cb *fn, void *arg)
{
    return add_watcher(loop, fd, WEFT__OUT, fn, arg);
}

int weft_remove_reader(weft_loop *loop, int fd)
{
    return remove_watcher(loop, fd, WEFT__IN);
}

int weft_remove_writer(weft_loop *loop, int fd)
{
    return remove_watcher(loop, fd, WEFT__OUT);
}

static void drain_wakeup(weft_loop *loop)
{
    char buf[64];
    while (read(loop->wake_rd, buf, sizeof buf) > 0)
        ;
}

void weft__io_ready(weft_loop *loop, int fd, unsigned ev)
{
    if (fd == loop->wake_rd) {
        drain_wakeup(loop);
        return;
    }
    if (fd < 0 || fd >= loop->io_cap)
        return;
    weft__io *io = loop->io[fd];
    if (!io)
        return;
    ev &= io->events;
    if ((ev & WEFT__IN) && !weft__node_linked(&io->rd.node))
        weft__ready_push(loop, &io->rd.node);
    if ((ev & WEFT__OUT) && !weft__node_linked(&io->wr.node))
        weft__ready_push(loop, &io->wr.node);
}

/* ---- other threads ---------------------------------------------------------------- */

static void inbox_run(weft_node *n)
{
    call_run(n, false);
}

static void wakeup(weft_loop *loop)
{
#ifdef __linux__
    uint64_t one = 1;
    ssize_t r = write(loop->wake_wr, &one, sizeof one);
#else
    char one = 1;
    ssize_t r = write(loop->wake_wr, &one, 1);
#endif
    (void)r; /* EAGAIN: a wakeup is already pending, which is all we need */
}

int weft_call_soon_threadsafe(weft_loop *loop, weft_cb *fn, void *arg)
{
    if (!loop || !fn)
        return -EINVAL;
    weft__pooled *c = weft__alloc(loop, sizeof *c);
    if (!c)
        return -ENOMEM;
    *c = (weft__pooled){0};
    c->t.loop = loop;
    c->t.h = (weft_handle){{{NULL, NULL}, inbox_run}, fn, arg};
    pthread_mutex_lock(&loop->inbox_mu);
    if (loop->inbox_closed) {
        pthread_mutex_unlock(&loop->inbox_mu);
        weft__free(loop, c);
        return WEFT_ECLOSED;
    }
    bool first = weft__list_empty(&loop->inbox);
    weft__list_push(&loop->inbox, &c->t.h.node.link);
    if (first) {
        atomic_store_explicit(&loop->inbox_pending, 1, memory_order_release);
        wakeup(loop);
    }
    pthread_mutex_unlock(&loop->inbox_mu);
    return 0;
}

static void inbox_drain(weft_loop *loop)
{
    pthread_mutex_lock(&loop->inbox_mu);
    atomic_store_explicit(&loop->inbox_pending, 0, memory_order_relaxed);
    weft__list_splice(&loop->ready, &loop->inbox);
    pthread_mutex_unlock(&loop->inbox_mu);
}

/* ---- the iteration ------------------------------------------------------------------ */

static int poll_backend(weft_loop *loop, int64_t timeout)
{
    loop->stats.polls++;
    int n = loop->be->wait(loop, timeout);
    if (n == -EINTR) {
        loop->stats.eintr++;
        n = 0;
    }
    return n;
}

/* Steps 1 and 2 when the ready queue is empty: the loop may sleep. */
static int wait_for_work(weft_loop *loop)
{
    int64_t timeout = -1;
    if (loop->heap.n) {
        loop->now_valid = loop->state & WEFT__VIRTUAL; /* refresh a real clock */
        int64_t d = loop->heap.e[0].when - weft__now(loop);
        timeout = d > 0 ? d : 0;
    }
    if (loop->nwatched == 0 && timeout == 0)
        return 0;                  /* a timer is due and nothing else could be reported */
    loop->lag_stamp_valid = false; /* a sleep is not lag */
    if ((loop->state & WEFT__VIRTUAL) && loop->heap.n) {
        /* virtual time: never sleep while a timer is pending */
        int n = poll_backend(loop, 0);
        if (n == 0 && weft__list_empty(&loop->ready) && timeout > 0)
            loop->now = loop->heap.e[0].when;
        return n < 0 ? n : 0;
    }
    int n = poll_backend(loop, timeout);
    return n < 0 ? n : 0;
}

static int weft__iterate(weft_loop *loop)
{
    if (atomic_load_explicit(&loop->inbox_pending, memory_order_acquire))
        inbox_drain(loop);

    /* 1 + 2: poll timeout 0 when work is ready or the loop stops; the
     * backend is asked only if it could report something */
    if (!weft__list_empty(&loop->ready) || (loop->state & WEFT__STOPPING)) {
        if (loop->nwatched > 0) {
            int n = poll_backend(loop, 0);
            if (n < 0)
                return n;
        }
    } else {
        int err = wait_for_work(loop);
        if (err)
            return err;
    }

    /* 3. timers, against a clock refreshed for this iteration */
    loop->now_valid = loop->state & WEFT__VIRTUAL;
    if (loop->heap.n)
        run_timers(loop);

    /* 4. run exactly the batch queued so far */
    if (weft__list_empty(&loop->ready)) {
        loop->stats.iterations++;
        return 0;
    }
    weft_link batch;
    weft__list_init(&batch);
    weft__list_splice(&batch, &loop->ready);
    int64_t thr = loop->lag_threshold, t0 = loop->lag_stamp;
    if (thr && !loop->lag_stamp_valid)
        t0 = clock_ns(loop->lag_clock);
    do {
        weft_node *n = (weft_node *)batch.next;
        weft__node_unlink(n);
        if (n->run == weft__handle_run) {
            /* every other run function records what it runs itself */
            loop->cur_fn = ((weft_handle *)n)->fn;
            loop->cur_arg = ((weft_handle *)n)->arg;
        }
        n->run(n);
        loop->stats.callbacks++;
        if (thr) {
            int64_t t1 = clock_ns(loop->lag_clock);
            if (t1 - t0 >= thr)
                lag_report(loop, t1 - t0);
            t0 = t1;
        }
    } while (!weft__list_empty(&batch));
    if (thr) {
        loop->lag_stamp = t0;
        loop->lag_stamp_valid = true;
    }
    loop->stats.iterations++;
    return 0;
}

static int run_check(weft_loop *loop)
{
    if (!loop)
        return -EINVAL;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    if ((loop->state & WEFT__RUNNING) || running_loop)
        return -EBUSY;
    return 0;
}

static int run(weft_loop *loop, bool once)
{
    int err = run_check(loop);
    if (err)
        return err;
    loop->state |= WEFT__RUNNING;
    loop->lag_stamp_valid = false; /* time between runs is not lag */
    running_loop = loop;
    do
        err = weft__iterate(loop);
    while (!err && !once && !(loop->state & WEFT__STOPPING));
    loop->state &= ~(WEFT__RUNNING | WEFT__STOPPING);
    running_loop = NULL;
    return err;
}

int weft_loop_run_forever(weft_loop *loop)
{
    return run(loop, false);
}

int weft_loop_run_once(weft_loop *loop)
{
    return run(loop, true);
}

int weft_loop_stop(weft_loop *loop)
{
    if (!loop)
        return -EINVAL;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    loop->state |= WEFT__STOPPING;
    return 0;
}

bool weft_loop_is_running(const weft_loop *loop)
{
    return loop && (loop->state & WEFT__RUNNING);
}

bool weft_loop_is_closed(const weft_loop *loop)
{
    return loop && weft__closed(loop);
}

weft_loop *weft_running_loop(void)
{
    return running_loop;
}

const char *weft_loop_backend(const weft_loop *loop)
{
    return loop && loop->be ? loop->be->name : NULL;
}

/* ---- creation and teardown -------------------------------------------------------- */

static const weft__backend *find_backend(const char *name)
{
#ifdef __linux__
    if (!name || !strcmp(name, "epoll"))
        return &weft__backend_epoll;
#else
    if (!name)
        return &weft__backend_poll;
#endif
    if (!strcmp(name, "poll"))
        return &weft__backend_poll;
    return NULL;
}

static int wake_open(weft_loop *loop)
{
#ifdef __linux__
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    loop->wake_rd = loop->wake_wr = fd;
#else
    int p[2];
    if (pipe(p) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    loop->wake_rd = p[0];
    loop->wake_wr = p[1];
#endif
    return 0;
}

static void wake_close(weft_loop *loop)
{
    if (loop->wake_wr >= 0 && loop->wake_wr != loop->wake_rd)
        close(loop->wake_wr);
    if (loop->wake_rd >= 0)
        close(loop->wake_rd);
    loop->wake_rd = loop->wake_wr = -1;
}

int weft_loop_new(weft_loop **out, const weft_loop_options *opts)
{
    static const weft_loop_options defaults;
    if (!out)
        return -EINVAL;
    if (!opts)
        opts = &defaults;
    const char *name = opts->backend;
    if (!name) {
        name = getenv("WEFT_BACKEND");
        if (name && !*name)
            name = NULL; /* an empty variable means the default */
    }
    const weft__backend *be = find_backend(name);
    if (!be)
        return -EINVAL;
    weft_allocator alloc = opts->alloc;
    if (!alloc.realloc)
        alloc = (weft_allocator){libc_realloc, NULL};
    weft_loop *loop = alloc.realloc(alloc.ud, NULL, sizeof *loop);
    if (!loop)
        return -ENOMEM;
    *loop = (weft_loop){0};
    loop->alloc = alloc;
    loop->be = be;
    loop->wake_rd = loop->wake_wr = -1;
    weft__list_init(&loop->ready);
    weft__list_init(&loop->inbox);
    atomic_init(&loop->inbox_pending, 0);
    loop->err_hook = default_error_hook;
    loop->lag_hook = default_lag_hook;
    weft_loop_set_lag_threshold(loop, opts->lag_threshold_ns);
    const char *clk = getenv("WEFT_CLOCK");
    if ((opts->flags & WEFT_LOOP_VIRTUAL_CLOCK) || (clk && !strcmp(clk, "virtual"))) {
        loop->state |= WEFT__VIRTUAL;
        loop->now_valid = true;
    }
    int err = pthread_mutex_init(&loop->inbox_mu, NULL);
    if (err) {
        weft__free(loop, loop);
        return -err;
    }
    err = be->open(loop);
    if (err)
        goto fail_mutex;
    err = wake_open(loop);
    if (err)
        goto fail_backend;
    err = io_grow(loop, loop->wake_rd);
    if (err)
        goto fail_wake;
    err = io_set(loop, loop->wake_rd, WEFT__IN, false);
    if (err)
        goto fail_wake;
    *out = loop;
    return 0;

fail_wake:
    if (loop->io)
        weft__free(loop, loop->io[loop->wake_rd]);
    weft__free(loop, loop->io);
    wake_close(loop);
fail_backend:
    be->close(loop);
fail_mutex:
    pthread_mutex_destroy(&loop->inbox_mu);
    weft__free(loop, loop);
    return err;
}

int weft_loop_close(weft_loop *loop)
{
    if (!loop)
        return -EINVAL;
    if (loop->state & WEFT__RUNNING)
        return -EBUSY;
    if (weft__closed(loop))
        return 0;
    for (int i = WEFT__LAYERS - 1; i >= 0; i--) {
        weft__layer *l = loop->layers[i];
        if (l)
            l->close(loop, l);
    }
    loop->state |= WEFT__CLOSED;

    pthread_mutex_lock(&loop->inbox_mu);
    loop->inbox_closed = true;
    weft__list_splice(&loop->ready, &loop->inbox);
    pthread_mutex_unlock(&loop->inbox_mu);

    /* Drop queued callbacks and armed timers without running them. */
    while (!weft__list_empty(&loop->ready)) {
        weft_node *n = (weft_node *)loop->ready.next;
        weft__node_unlink(n);
        if (n->run == inbox_run)
            weft__free(loop, n);
    }
    for (size_t i = 0; i < loop->heap.n; i++)
        loop->heap.e[i].t->index = WEFT__NO_INDEX;
    loop->heap.n = 0;
    for (weft__pooled *c = loop->pool_all, *next; c; c = next) {
        next = c->all;
        if (c->t.h.node.link.prev)
            weft__node_unlink(&c->t.h.node); /* e.g. a future's done callback */
        weft__free(loop, c);
    }
    loop->pool = loop->pool_all = NULL;
    weft__free(loop, loop->heap.e);
    loop->heap = (weft__heap){0};

    for (int fd = 0; fd < loop->io_cap; fd++)
        weft__free(loop, loop->io[fd]); /* the backend forgets all at close */
    weft__free(loop, loop->io);
    loop->io = NULL;
    loop->io_cap = 0;
    loop->nwatched = 0;
    loop->be->close(loop);
    wake_close(loop);
    return 0;
}

int weft_loop_destroy(weft_loop *loop)
{
    if (!loop)
        return 0;
    int err = weft_loop_close(loop);
    if (err)
        return err;
    for (int i = WEFT__LAYERS - 1; i >= 0; i--) {
        weft__layer *l = loop->layers[i];
        if (l && l->destroy)
            l->destroy(loop, l);
    }
    pthread_mutex_destroy(&loop->inbox_mu);
    weft__free(loop, loop);
    return 0;
}
