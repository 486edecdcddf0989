/* loop.c - the event loop: one iteration, run / stop, creation and close.
 *
 * The iteration (iterate) is the whole story; everything else feeds the
 * ready queue (call.c, io.c, inbox.c) or the timer heap (timer.c).  Each
 * step of the documented iteration is one named call:
 *
 *   0. begin_iteration  the iteration hook, a requested dump, the inbox
 *   1+2. poll_io        the timeout rule and one backend wait
 *   3. expire_timers    fresh clock; expired timers to the due list
 *   4. run_batch        the ready queue as it is now, then the due list
 *
 * Costs: an iteration is O(ready + expired timers + ready fds), plus one
 * backend wait when an fd is watched or the loop must sleep.  A loop busy
 * with nothing but callbacks runs its iterations back to back in call.c
 * (weft__run_callbacks): about 32 instructions per iteration of a
 * call_soon chain, the callback's dispatch and the lag tick included
 * (callgrind, the bench's callbacks workload: 60 in all per callback with
 * the bench's callback and its inline weft_call_soon).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

static _Thread_local weft_loop *running_loop;
static _Thread_local char thread_marker; /* its address names the thread */

/* ---- allocation -------------------------------------------------------------------- */

void *weft__libc_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    if (n == 0) {
        free(p);
        return NULL;
    }
    return realloc(p, n);
}

void *weft__realloc(weft_loop *loop, void *p, size_t n)
{
    return loop->alloc.realloc(loop->alloc.ud, p, n);
}

void *weft__alloc(weft_loop *loop, size_t n)
{
    return loop->alloc.realloc(loop->alloc.ud, NULL, n);
}

void weft__free(weft_loop *loop, void *p)
{
    if (p)
        loop->alloc.realloc(loop->alloc.ud, p, 0);
}

/* ---- the iteration --------------------------------------------------------------------- */

/* 0. The iteration hook, then what other threads (or a signal handler)
 * asked for: a dump, the inbox. */
static void begin_iteration(weft_loop *loop)
{
    if (loop->iter_hook)
        loop->iter_hook(loop, loop->iter_ud);
    if (atomic_load_explicit(&loop->attn, memory_order_relaxed)) {
        unsigned attn = atomic_exchange_explicit(&loop->attn, 0, memory_order_acquire);
        if (attn & WEFT__ATTN_DUMP)
            weft__dump(loop);
        if (attn & WEFT__ATTN_INBOX)
            weft__inbox_drain(loop);
        /* WEFT__ATTN_LAG is dropped: each callback here checks the flag;
         * WEFT__ATTN_STATE too: the state bits it stands for stay */
    }
}

/* One backend wait; a blocking one is idle time for the lag watchdog. */
static int backend_wait(weft_loop *loop, int64_t timeout)
{
    loop->stats.polls++;
    if (timeout)
        weft__lag_idle(loop);
    int n = loop->be->wait(loop, timeout);
    if (timeout)
        weft__lag_busy(loop);
    if (n == -EINTR) {
        loop->stats.eintr++;
        n = 0;
    }
    return n < 0 ? n : 0;
}

/* 1 + 2. Timeout 0 when work is ready or the loop stops, else until the
 * earliest timer, else forever; the backend is asked only if it could
 * report something.  The virtual clock never sleeps while a timer is
 * pending: it jumps to it instead. */
static int poll_io(weft_loop *loop)
{
    int64_t timeout = 0;
    if (weft__list_empty(loop->ready) && !(loop->state & WEFT__STOPPING)) {
        timeout = -1;
        if (loop->heap.n) {
            int64_t now = (loop->state & WEFT__VIRTUAL) ? loop->now : weft__clock_read(loop);
            int64_t when = loop->heap.e[0].when;
            timeout = when > now ? when - now : 0;
        }
    }
    if (timeout == 0 && loop->nwatched == 0)
        return 0;
    if ((loop->state & WEFT__VIRTUAL) && timeout > 0) {
        int err = backend_wait(loop, 0);
        if (!err && weft__list_empty(loop->ready))
            loop->now = loop->heap.e[0].when; /* nothing happened: jump */
        return err;
    }
    return backend_wait(loop, timeout);
}

/* 3. A fresh clock for this iteration, and the expired timers. */
static void expire_timers(weft_loop *loop)
{
    loop->now_valid = loop->virtual_clock;
    if (loop->heap.n)
        weft__timers_expire(loop);
}

/* 4, first half, out of line: for the callbacks-only loop (call.c), whose
 * own registers then stay few. */
void weft__run_ready_checked(weft_loop *loop)
{
    weft__run_ready(loop);
}

/* 4. Exactly what is queued now: the ready queue, then the due timers. */
static void run_batch(weft_loop *loop)
{
    if (!weft__list_empty(loop->ready))
        weft__run_ready(loop);
    if (loop->due.n)
        weft__timers_run_due(loop);
}

static int iterate(weft_loop *loop)
{
    if (weft__only_callbacks(loop)) {
        weft__run_callbacks(loop); /* call.c */
        return 0;
    }
    begin_iteration(loop);
    int err = poll_io(loop);
    if (err)
        return err;
    expire_timers(loop);
    run_batch(loop);
    loop->stats.iterations++;
    return 0;
}

/* ---- running ------------------------------------------------------------------------------- */

static int run(weft_loop *loop, bool once)
{
    if (!loop)
        return -EINVAL;
    if (weft__wrong_thread(loop, once ? "weft_loop_run_once" : "weft_loop_run_forever"))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    if ((loop->state & WEFT__RUNNING) || running_loop)
        return -EBUSY;
    loop->state |= WEFT__RUNNING | (once ? WEFT__ONCE : 0u);
    running_loop = loop;
    atomic_store_explicit(&loop->owner, &thread_marker, memory_order_relaxed);
    weft__lag_run_begin(loop);
    int err;
    do
        err = iterate(loop);
    while (!err && !(loop->state & (WEFT__STOPPING | WEFT__ONCE)));
    weft__lag_run_end(loop);
    atomic_store_explicit(&loop->owner, NULL, memory_order_relaxed);
    running_loop = NULL;
    loop->state &= ~(WEFT__RUNNING | WEFT__STOPPING | WEFT__ONCE);
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
    if (weft__wrong_thread(loop, "weft_loop_stop"))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    loop->state |= WEFT__STOPPING;
    /* seen by the callbacks-only loop's attn test (once per stop: cold) */
    atomic_fetch_or_explicit(&loop->attn, WEFT__ATTN_STATE, memory_order_relaxed);
    return 0;
}

int weft_exit(weft_loop *loop, int status)
{
    if (!loop || status < 0 || status == INT_MAX)
        return -EINVAL;
    int err = weft_loop_stop(loop);
    if (!err && !loop->exit_status)
        loop->exit_status = status + 1;
    return err;
}

bool weft_exit_requested(const weft_loop *loop, int *status)
{
    if (!loop || !loop->exit_status)
        return false;
    if (status)
        *status = loop->exit_status - 1;
    return true;
}

void weft_exit_clear(weft_loop *loop)
{
    if (loop)
        loop->exit_status = 0;
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
    return loop ? loop->be->name : NULL;
}

bool weft__wrong_thread_slow(weft_loop *loop, const char *call)
{
    void *owner = atomic_load_explicit(&loop->owner, memory_order_relaxed);
    if (!owner || owner == &thread_marker)
        return false;
    weft__reportf(loop, WEFT_REPORT_MISUSE, -EPERM, "%s called from another thread", call);
    return true;
}

/* ---- settings and introspection ------------------------------------------------------------ */

int weft_loop_set_lag_threshold(weft_loop *loop, int64_t ns)
{
    if (!loop)
        return -EINVAL;
    if (weft__wrong_thread(loop, "weft_loop_set_lag_threshold"))
        return -EPERM;
    weft__lag_set(loop, ns);
    return 0;
}

int weft_loop_set_iteration_hook(weft_loop *loop, void (*hook)(weft_loop *, void *), void *ud)
{
    if (!loop)
        return -EINVAL;
    if (weft__wrong_thread(loop, "weft_loop_set_iteration_hook"))
        return -EPERM;
    loop->iter_hook = hook;
    loop->iter_ud = hook ? ud : NULL;
    loop->state = hook ? loop->state | WEFT__HOOKED : loop->state & ~WEFT__HOOKED;
    if (hook) /* the callbacks-only loop must leave for the full iteration */
        atomic_fetch_or_explicit(&loop->attn, WEFT__ATTN_STATE, memory_order_relaxed);
    return 0;
}

int weft_loop_request_dump(weft_loop *loop)
{
    if (!loop)
        return -EINVAL;
    /* async-signal-safe: lock-free atomics and a write() */
    unsigned old = atomic_fetch_or_explicit(&loop->attn, WEFT__ATTN_DUMP, memory_order_release);
    if (old & WEFT__ATTN_CLOSED)
        return WEFT_ECLOSED;
    loop->be->wakeup(loop);
    return 0;
}

int weft_loop_get_stats(const weft_loop *loop, weft_loop_stats *out)
{
    if (!loop || !out)
        return -EINVAL;
    *out = loop->stats;
    out->callbacks = atomic_load_explicit(&((weft_loop *)loop)->lag.tick, memory_order_relaxed);
    return 0;
}

void weft__layer_set(weft_loop *loop, int id, weft__layer *state)
{
    WEFT_ASSERT(id >= 0 && id < WEFT__LAYERS);
    loop->layers[id] = state;
}

/* ---- creation and close ------------------------------------------------------------------ */

int weft_loop_new(weft_loop **out, const weft_loop_options *opts)
{
    static const weft_loop_options defaults;
    if (!out)
        return -EINVAL;
    if (!opts)
        opts = &defaults;
    if (opts->flags & ~(unsigned)(WEFT_LOOP_VIRTUAL_CLOCK | WEFT_LOOP_ENV | WEFT_LOOP_DEBUG))
        return -EINVAL;
    const char *name = opts->backend;
    bool virt = opts->flags & WEFT_LOOP_VIRTUAL_CLOCK;
    if (opts->flags & WEFT_LOOP_ENV) { /* only then: getenv costs, and surprises */
        const char *env = getenv("WEFT_BACKEND");
        if (!name && env && *env)
            name = env;
        env = getenv("WEFT_CLOCK");
        virt = virt || (env && strcmp(env, "virtual") == 0);
    }
    const weft__backend *be = weft__backend_find(name);
    if (!be)
        return -EINVAL;
    weft_allocator alloc = opts->alloc;
    if (!alloc.realloc)
        alloc = (weft_allocator){weft__libc_realloc, NULL};
    weft_loop *loop = alloc.realloc(alloc.ud, NULL, sizeof *loop);
    if (!loop)
        return -ENOMEM;
    memset(loop, 0, sizeof *loop);
    loop->alloc = alloc;
    loop->be = be;
    loop->flags = opts->flags;
    weft__list_init(&loop->queues[0]);
    weft__list_init(&loop->queues[1]);
    loop->ready = &loop->queues[0];
    loop->batch = &loop->queues[1];
    weft__list_init(&loop->inbox);
    weft__list_init(&loop->changes);
    atomic_init(&loop->attn, 0);
    atomic_init(&loop->owner, NULL);
    weft__report_init(loop);
    if (virt) {
        loop->state |= WEFT__VIRTUAL;
        loop->virtual_clock = loop->now_valid = true; /* time starts at 0 */
    }
    int err = pthread_mutex_init(&loop->inbox_mu, NULL);
    if (err) {
        weft__free(loop, loop);
        return -err;
    }
    err = weft__lag_open(loop);
    if (err)
        goto fail_mutex;
    weft__lag_set(loop, opts->lag_threshold_ns);
    err = weft__timers_open(loop);
    if (err)
        goto fail_lag;
    err = be->open(loop);
    if (err)
        goto fail_timers;
    *out = loop;
    return 0;

fail_timers:
    weft__timers_close(loop);
fail_lag:
    weft__lag_free(loop);
fail_mutex:
    pthread_mutex_destroy(&loop->inbox_mu);
    weft__free(loop, loop);
    return err;
}

/* Close: unlink every queued node without running it; the nodes of
 * weft_call_soon_threadsafe are freed (the others are owned elsewhere). */
static void drop_ready(weft_loop *loop)
{
    for (int q = 0; q < 2; q++) {
        while (!weft__list_empty(&loop->queues[q])) {
            weft_node *n = (weft_node *)(void *)loop->queues[q].next;
            weft__node_unlink(n);
            weft__inbox_drop(loop, n);
        }
    }
}

int weft_loop_close(weft_loop *loop)
{
    if (!loop)
        return -EINVAL;
    if (weft__wrong_thread(loop, "weft_loop_close"))
        return -EPERM;
    if (loop->state & (WEFT__RUNNING | WEFT__CLOSING))
        return -EBUSY; /* running, or called from a hook of this close */
    if (loop->state & WEFT__CLOSED)
        return 0;
    loop->state |= WEFT__CLOSING;
    for (int id = WEFT__LAYERS - 1; id >= 0; id--) {
        weft__layer *l = loop->layers[id];
        if (l && l->close)
            l->close(loop, l); /* frees and clears its slot, or keeps it for destroy */
    }
    atomic_fetch_or_explicit(&loop->attn, WEFT__ATTN_CLOSED, memory_order_relaxed);
    weft__inbox_close(loop);
    drop_ready(loop);
    weft__timers_close(loop);
    weft__calls_close(loop);
    weft__io_close_all(loop);
    weft__lag_close(loop);
    loop->be->close(loop);
    loop->state = (loop->state & ~WEFT__CLOSING) | WEFT__CLOSED;
    return 0;
}

int weft_loop_destroy(weft_loop *loop)
{
    if (!loop)
        return 0;
    int err = weft_loop_close(loop);
    if (err)
        return err;
    for (int id = WEFT__LAYERS - 1; id >= 0; id--) {
        weft__layer *l = loop->layers[id];
        if (l && l->destroy)
            l->destroy(loop, l);
        loop->layers[id] = NULL;
    }
    weft__lag_free(loop);
    pthread_mutex_destroy(&loop->inbox_mu);
    weft__free(loop, loop);
    return 0;
}
