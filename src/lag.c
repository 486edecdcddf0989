/* lag.c - slow-callback accounting with a watchdog thread (Go's sysmon).
 *
 * The loop does almost nothing per callback: it stores a new tick (a
 * relaxed atomic store of its callback counter) before the callback, and
 * after it one relaxed load of the watchdog's flag.  No clock is read.
 *
 * The watchdog, one thread per running loop with accounting on, samples the
 * tick every P = clamp(threshold / 8, 1 ms, 12.5 ms).  When the loop is busy
 * and the tick has not moved for the threshold, it publishes that tick in
 * `flag`, with the time it first saw it in `seen`.  The loop, after the
 * callback returns and finds the flag equal to its tick, reads the clock
 * once and reports the callback as SLOW; the duration is measured from the
 * watchdog's first sighting plus P/2 (the expected unseen start), so it is
 * right to about +-P/2.  A tick flagged while the loop was doing its own
 * work between callbacks is never matched, so never reported (nearly: the
 * callbacks-only loop checks its last callback when it leaves, and a flag
 * raised after that callback's own check, for a tick that really did run
 * past the threshold, is reported then).  The watchdog also raises
 * WEFT__ATTN_LAG: the ready queue's runs test that bit and read the flag
 * only when it is up, and a loop running nothing but one-callback
 * batches tests it after every iteration anyway, with the rest of attn.
 *
 * While the loop is idle (blocked in the backend, or not running) the
 * watchdog sleeps on a condition variable instead of polling.  The loop
 * marks itself idle before a blocking wait and busy after it; leaving the
 * wait, it signals the watchdog only if the watchdog is actually asleep
 * (one atomic load; a lock and a signal otherwise).
 *
 * Cost: one thread per loop that runs with accounting on (started at the
 * first run, joined at close; weft_loop_set_lag_threshold(loop, -1) or
 * opts.lag_threshold_ns < 0 means no thread), about 100 bytes of stack
 * work per sample, and in the loop 3 instructions per callback for the tick
 * plus 3 for the check (a test of the WEFT__ATTN_LAG bit; the flag itself
 * is read only when it is up; none for a call_soon chain, whose check is
 * the attn test it makes anyway: about 3 instructions per callback in
 * all, callgrind).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"

#define DEFAULT_NS INT64_C(100000000) /* 100 ms, asyncio's slow_callback_duration */

void weft__run_obj(void *unused)
{
    (void)unused; /* a marker: never called */
}

/* The clock of the watchdog's timed waits: CLOCK_MONOTONIC where the
 * condition variable can use it (POSIX clock selection; not macOS), else
 * the default CLOCK_REALTIME.  The samples always use CLOCK_MONOTONIC. */
#if defined(_POSIX_CLOCK_SELECTION) && _POSIX_CLOCK_SELECTION > 0
#define WAIT_CLOCK CLOCK_MONOTONIC
#else
#define WAIT_CLOCK CLOCK_REALTIME
#endif

static int64_t period(int64_t threshold)
{
    int64_t p = threshold / 8;
    return p < 1000000 ? 1000000 : p > 12500000 ? 12500000 : p;
}

/* ---- the watchdog thread ------------------------------------------------------------- */

static void *watchdog(void *arg)
{
    weft_loop *loop = arg;
    weft__lag *lag = &loop->lag;
    uint64_t last = 0;
    int64_t first = 0;
    bool have = false; /* last/first describe the current sighting */
    pthread_mutex_lock(&lag->mu);
    while (!lag->stop) {
        int64_t thr = atomic_load_explicit(&lag->threshold, memory_order_relaxed);
        if (thr <= 0 || !atomic_load(&lag->busy)) {
            /* idle: sleep until the loop (or close) signals; seq_cst pairs
             * with the loop's store of busy and load of asleep */
            atomic_store(&lag->asleep, 1);
            if (thr <= 0 || !atomic_load(&lag->busy))
                pthread_cond_wait(&lag->cv, &lag->mu);
            atomic_store(&lag->asleep, 0);
            have = false;
            continue;
        }
        int64_t p = period(thr);
        struct timespec until;
        clock_gettime(WAIT_CLOCK, &until);
        until.tv_nsec += (long)p; /* p < 1 s */
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&lag->cv, &lag->mu, &until);
        if (lag->stop)
            break;
        uint64_t tick = atomic_load_explicit(&lag->tick, memory_order_relaxed);
        int64_t now = weft__clock_mono();
        if (!atomic_load_explicit(&lag->busy, memory_order_relaxed)) {
            have = false;
        } else if (!have || tick != last) {
            have = true;
            last = tick;
            first = now;
        } else if (now - first + p / 2 >= thr &&
                   atomic_load_explicit(&lag->flag, memory_order_relaxed) != tick) {
            /* the bit first: whoever sees the flag (acquire) sees the bit,
             * so the check after the callback (bit, then flag) cannot miss
             * a flag its callback saw */
            atomic_fetch_or_explicit(&loop->attn, WEFT__ATTN_LAG, memory_order_release);
            atomic_store_explicit(&lag->seen, first, memory_order_relaxed);
            atomic_store_explicit(&lag->flag, tick, memory_order_release);
        }
    }
    pthread_mutex_unlock(&lag->mu);
    return NULL;
}

static int sync_init(weft__lag *lag)
{
    int err = pthread_mutex_init(&lag->mu, NULL);
    if (err)
        return -err;
    pthread_condattr_t ca;
    err = pthread_condattr_init(&ca);
    if (!err) {
#if defined(_POSIX_CLOCK_SELECTION) && _POSIX_CLOCK_SELECTION > 0
        err = pthread_condattr_setclock(&ca, WAIT_CLOCK);
#endif
        if (!err)
            err = pthread_cond_init(&lag->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (err)
        pthread_mutex_destroy(&lag->mu);
    return -err;
}

int weft__lag_open(weft_loop *loop)
{
    weft__lag *lag = &loop->lag;
    atomic_init(&lag->tick, 0);
    atomic_init(&lag->flag, UINT64_MAX); /* matches no tick */
    atomic_init(&lag->seen, 0);
    atomic_init(&lag->threshold, 0);
    atomic_init(&lag->busy, 0);
    atomic_init(&lag->asleep, 0);
    lag->reported = lag->captured = UINT64_MAX;
    lag->spawn = pthread_create;
    return sync_init(lag);
}

void weft__lag_free(weft_loop *loop)
{
    pthread_cond_destroy(&loop->lag.cv);
    pthread_mutex_destroy(&loop->lag.mu);
}

/* Start the watchdog (loop thread).  Signals are blocked in it, so that a
 * process-directed signal never lands on weft's thread. */
static void start(weft_loop *loop)
{
    weft__lag *lag = &loop->lag;
    pid_t pid = getpid();
    if (lag->started) {
        if (lag->pid == pid)
            return;
        /* a forked child: the thread stayed in the parent, and the parent
         * may have held the mutex at fork time */
        lag->started = false;
        if (sync_init(lag) < 0) {
            lag->failed = true;
            return;
        }
    }
    lag->stop = false;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = lag->spawn(&lag->thread, NULL, watchdog, loop);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        lag->failed = true;
        weft__reportf(loop, WEFT_REPORT_OTHER, -err,
                      "cannot start the lag watchdog thread: no slow-callback reports");
        return;
    }
    lag->started = true;
    lag->pid = pid;
}

/* The loop is busy again: wake the watchdog if (and only if) it sleeps. */
static void wake(weft__lag *lag)
{
    atomic_store(&lag->busy, 1); /* seq_cst: see watchdog() */
    if (atomic_load(&lag->asleep)) {
        pthread_mutex_lock(&lag->mu);
        pthread_cond_signal(&lag->cv);
        pthread_mutex_unlock(&lag->mu);
    }
}

void weft__lag_run_begin(weft_loop *loop)
{
    weft__lag *lag = &loop->lag;
    if (atomic_load_explicit(&lag->threshold, memory_order_relaxed) > 0 && !lag->failed)
        start(loop); /* getpid(): a forked child starts its own */
    if (lag->started)
        wake(lag);
}

void weft__lag_run_end(weft_loop *loop)
{
    atomic_store_explicit(&loop->lag.busy, 0, memory_order_relaxed);
}

void weft__lag_idle(weft_loop *loop)
{
    atomic_store_explicit(&loop->lag.busy, 0, memory_order_relaxed);
}

void weft__lag_busy(weft_loop *loop)
{
    if (loop->lag.started)
        wake(&loop->lag);
}

void weft__lag_set(weft_loop *loop, int64_t ns)
{
    weft__lag *lag = &loop->lag;
    atomic_store_explicit(&lag->threshold,
                          ns == 0  ? DEFAULT_NS
                          : ns < 0 ? 0
                                   : ns,
                          memory_order_relaxed);
    lag->failed = false; /* a new setting may try the thread again */
    if (lag->started && lag->pid == getpid()) {
        pthread_mutex_lock(&lag->mu); /* it may sleep because accounting was off */
        pthread_cond_signal(&lag->cv);
        pthread_mutex_unlock(&lag->mu);
    } else if (ns >= 0 && (loop->state & WEFT__RUNNING)) {
        start(loop);
        if (lag->started)
            wake(lag);
    }
}

void weft__lag_close(weft_loop *loop)
{
    weft__lag *lag = &loop->lag;
    if (!lag->started || lag->pid != getpid())
        return;
    pthread_mutex_lock(&lag->mu);
    lag->stop = true;
    pthread_cond_signal(&lag->cv);
    pthread_mutex_unlock(&lag->mu);
    pthread_join(lag->thread, NULL);
    lag->started = false;
}

/* ---- reports ---------------------------------------------------------------------------- */

/* Describe what the record says runs now into r and what[]. */
static void describe(weft_loop *loop, weft_report *r, char *what, size_t n, const void *node,
                     void (*run)(weft_node *))
{
    char sym[128];
    const weft__running *rec = &loop->run;
    if (rec->fn == weft__run_obj) {
        r->fn = NULL;
        r->arg = (void *)(uintptr_t)rec->obj;
        snprintf(what, n, "step of %p", rec->obj);
        if (rec->describe)
            rec->describe(rec->obj, r, what, n);
    } else if (rec->fn) {
        r->fn = rec->fn;
        r->arg = rec->arg;
        snprintf(what, n, "callback %s(%p)",
                 weft__symbol(&rec->fn, sizeof rec->fn, sym, sizeof sym), rec->arg);
    } else if (run) {
        snprintf(what, n, "callback node %p run by %s", node,
                 weft__symbol(&run, sizeof run, sym, sizeof sym));
    } else {
        snprintf(what, n, "callback node %p", node);
    }
}

void weft__lag_capture_slow(weft_loop *loop)
{
    weft__lag *lag = &loop->lag;
    lag->cap = (weft_report){0};
    describe(loop, &lag->cap, lag->cap_what, sizeof lag->cap_what, NULL, NULL);
    lag->captured = atomic_load_explicit(&lag->tick, memory_order_relaxed);
}

void weft__lag_report(weft_loop *loop, const void *node, void (*run)(weft_node *))
{
    weft__lag *lag = &loop->lag;
    uint64_t tick = atomic_load_explicit(&lag->tick, memory_order_relaxed);
    if (lag->reported == tick)
        return;
    lag->reported = tick;
    atomic_thread_fence(memory_order_acquire); /* pairs with the flag's release */
    int64_t seen = atomic_load_explicit(&lag->seen, memory_order_relaxed);
    int64_t thr = atomic_load_explicit(&lag->threshold, memory_order_relaxed);
    int64_t dur = weft__clock_mono() - seen + period(thr > 0 ? thr : DEFAULT_NS) / 2;

    weft_report r = {0};
    char local[200], msg[320];
    const char *what = local;
    if (lag->captured == tick) {
        r = lag->cap;
        what = lag->cap_what;
    } else {
        describe(loop, &r, local, sizeof local, node, run);
    }
    r.kind = WEFT_REPORT_SLOW;
    r.err = 0;
    r.duration_ns = dur;
    snprintf(msg, sizeof msg, "slow callback: %s ran %.1f ms", what, (double)dur / 1e6);
    r.message = msg;
    loop->stats.lag_reports++;
    weft__report(loop, &r);
}
