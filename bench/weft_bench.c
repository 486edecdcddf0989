/* weft_bench.c - weft's program for the peer benchmark harness.
 *
 *   weft-bench WORKLOAD N [SEED]
 *
 * Implements the micro workloads of ../shared/bench/README.md with weft's own
 * primitives and prints one JSON line on stdout (diagnostics go to stderr):
 *
 *   callbacks N           a weft_call_soon chain: each callback schedules the
 *                         next, the last one stops the loop
 *   timers N              N caller-owned weft_timer structs (one array),
 *                         libuv's million-timers layout
 *   timer-cancel N [SEED] the splitmix64 layout, half cancelled with
 *                         weft_timer_stop before the loop runs
 *   task-pingpong N       two tasks alternate N rounds: each resolves the
 *                         other's future and awaits a fresh one of its own
 *   spawn N               N detached tasks alive at once, each awaits
 *                         sleep(0) once and finishes
 *   queue N               items 0..N-1 through a weft_queue (maxsize 64) from
 *                         a producer task to a consumer task
 *   to-thread N           N empty jobs through the default executor, all
 *                         submitted at once, then one gather awaited
 *
 * Any other workload exits with status 2 and prints nothing on stdout, which
 * the harness reads as "unsupported".  To add one, write a
 * `static int bench_x(const bench_args *)` and put it in the `workloads`
 * table at the bottom.
 *
 * The loop is created with default options plus WEFT_LOOP_ENV (so the
 * backend honours $WEFT_BACKEND), outside the timed regions, and destroyed
 * after them; $WEFT_BENCH_LAG_NS sets the lag threshold (-1: off).
 *
 * Built with WEFT_BENCH_LOOP_ONLY, only the loop workloads (callbacks,
 * timers, timer-cancel) exist: that is how the loop layer is measured on
 * its own, without the layers above.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

#include "bench_util.h"

typedef struct bench_args {
    const char *workload; /* argv[1] */
    long n;               /* N */
    uint64_t seed;        /* SEED (timer-cancel), default 42 */
} bench_args;

typedef int bench_fn(const bench_args *a);

/* ---- helpers ------------------------------------------------------------------ */

static weft_loop *bench_loop_new(void)
{
    /* The timer workloads are defined on the real clock. */
    const char *clk = getenv("WEFT_CLOCK");
    if (clk && *clk) {
        fprintf(stderr, "weft-bench: ignoring WEFT_CLOCK=%s (benchmarks use the real clock)\n",
                clk);
        unsetenv("WEFT_CLOCK");
    }
    /* WEFT_LOOP_ENV: $WEFT_BACKEND picks the backend.  $WEFT_BENCH_LAG_NS
     * sets the slow-callback threshold (default: the library's, 100 ms;
     * -1: accounting off, to measure what it costs). */
    weft_loop_options o = {.flags = WEFT_LOOP_ENV};
    const char *lag = getenv("WEFT_BENCH_LAG_NS");
    if (lag && *lag)
        o.lag_threshold_ns = strtoll(lag, NULL, 10);
    weft_loop *loop;
    int err = weft_loop_new(&loop, &o);
    if (err)
        BENCH_DIE("weft_loop_new: %s", weft_strerror(err));
    return loop;
}

/* Loop counters as extra JSON fields (not part of the contract; they show,
 * e.g., that the callbacks chain never polled the backend). */
static void json_loop_fields(const weft_loop *loop)
{
    weft_loop_stats st;
    weft_loop_get_stats(loop, &st);
    printf(",\"backend\":\"%s\",\"loop_iterations\":%llu,\"loop_polls\":%llu",
           weft_loop_backend(loop), (unsigned long long)st.iterations,
           (unsigned long long)st.polls);
}

static void bench_loop_destroy(weft_loop *loop)
{
    int err = weft_loop_destroy(loop);
    if (err)
        BENCH_DIE("weft_loop_destroy: %s", weft_strerror(err));
}

static void run_loop(weft_loop *loop, const char *what)
{
    int err = weft_loop_run_forever(loop);
    if (err)
        BENCH_DIE("%s: weft_loop_run_forever: %s", what, weft_strerror(err));
}

/* ---- callbacks ------------------------------------------------------------------ */

struct chain {
    weft_loop *loop;
    long n;   /* callbacks to run */
    long ran; /* callbacks run so far */
    int err;  /* first scheduling error */
};

static void chain_cb(void *arg)
{
    struct chain *c = arg;
    if (++c->ran < c->n) {
        int err = weft_call_soon(c->loop, chain_cb, c, NULL);
        if (err) {
            c->err = err;
            weft_loop_stop(c->loop);
        }
    } else {
        weft_loop_stop(c->loop);
    }
}

static int bench_callbacks(const bench_args *a)
{
    weft_loop *loop = bench_loop_new();
    struct chain c = {loop, a->n, 0, 0};
    long base = bench_rss_kb();

    double c0 = bench_cpu_s(), t0 = bench_now_s();
    int err = weft_call_soon(loop, chain_cb, &c, NULL);
    if (err)
        BENCH_DIE("callbacks: weft_call_soon: %s", weft_strerror(err));
    run_loop(loop, "callbacks");
    double t1 = bench_now_s(), c1 = bench_cpu_s();

    if (c.err)
        BENCH_DIE("callbacks: weft_call_soon in the chain: %s", weft_strerror(c.err));
    if (c.ran != a->n)
        BENCH_DIE("callbacks: ran %ld callbacks, expected %ld", c.ran, a->n);
    bench_json_begin("callbacks", a->n, t1 - t0, c1 - c0, base);
    printf(",\"semantics\":\"call_soon chain, one loop iteration per callback (no fd watched: "
           "no epoll_wait)\",\"ns_per_op\":%.2f",
           (t1 - t0) * 1e9 / (double)a->n);
    json_loop_fields(loop);
    bench_json_end();
    bench_loop_destroy(loop);
    return 0;
}

/* ---- timers and timer-cancel ------------------------------------------------------ */

struct fire_count {
    weft_loop *loop;
    long fired;
    long target; /* stop the loop when this many have fired */
};

static void timer_cb(void *arg)
{
    struct fire_count *f = arg;
    if (++f->fired == f->target)
        weft_loop_stop(f->loop);
}

/* Allocate n timers, initialise them and arm timer i with deadline_ms(i):
 * the setup phase of both timer workloads. */
static weft_timer *timers_setup(weft_loop *loop, long n, struct fire_count *f,
                                const unsigned *deadline_ms)
{
    weft_timer *t = malloc((size_t)n * sizeof *t);
    if (!t)
        BENCH_DIE("out of memory for %ld timers", n);
    for (long i = 0; i < n; i++) {
        int err = weft_timer_init(&t[i], loop, timer_cb, f);
        if (err)
            BENCH_DIE("weft_timer_init: %s", weft_strerror(err));
        unsigned ms = deadline_ms ? deadline_ms[i] : bench_timers_timeout_ms(i);
        err = weft_timer_start_ns(&t[i], (int64_t)ms * 1000000, 0);
        if (err)
            BENCH_DIE("weft_timer_start: %s", weft_strerror(err));
    }
    return t;
}

/* Close and free the timers (the teardown phase); returns how many were
 * still active, which must be none. */
static long timers_teardown(weft_timer *t, long n)
{
    long active = 0;
    for (long i = 0; i < n; i++) {
        active += weft_timer_active(&t[i]);
        weft_timer_close(&t[i]);
    }
    free(t);
    return active;
}

static int bench_timers(const bench_args *a)
{
    long n = a->n;
    weft_loop *loop = bench_loop_new();
    struct fire_count f = {loop, 0, n};
    long base = bench_rss_kb();

    double c0 = bench_cpu_s(), t0 = bench_now_s();
    weft_timer *t = timers_setup(loop, n, &f, NULL);
    double t1 = bench_now_s(), c1 = bench_cpu_s();
    run_loop(loop, "timers");
    double t2 = bench_now_s(), c2 = bench_cpu_s();
    long active = timers_teardown(t, n);
    double t3 = bench_now_s(), c3 = bench_cpu_s();

    if (f.fired != n || active)
        BENCH_DIE("timers: fired %ld, expected %ld; %ld still active", f.fired, n, active);
    bench_json_begin("timers", n, t3 - t0, c3 - c0, base);
    printf(",\"setup_s\":%.6f,\"run_s\":%.6f,\"run_cpu_s\":%.6f,\"teardown_s\":%.6f,"
           "\"fired\":%ld,\"setup_cpu_s\":%.6f,\"teardown_cpu_s\":%.6f",
           t1 - t0, t2 - t1, c2 - c1, t3 - t2, f.fired, c1 - c0, c3 - c2);
    json_loop_fields(loop);
    bench_json_end();
    bench_loop_destroy(loop);
    return 0;
}

static int bench_timer_cancel(const bench_args *a)
{
    long n = a->n, ncancel = n / 2;
    unsigned *deadline = malloc((size_t)n * sizeof *deadline);
    unsigned *order = malloc((size_t)n * sizeof *order);
    if (!deadline || !order)
        BENCH_DIE("out of memory for the layout of %ld timers", n);
    bench_cancel_layout(n, a->seed, deadline, order); /* untimed */
    weft_loop *loop = bench_loop_new();
    struct fire_count f = {loop, 0, n - ncancel};
    long base = bench_rss_kb();

    double c0 = bench_cpu_s(), t0 = bench_now_s();
    weft_timer *t = timers_setup(loop, n, &f, deadline);
    double t1 = bench_now_s(), c1 = bench_cpu_s();
    for (long k = 0; k < ncancel; k++) {
        int err = weft_timer_stop(&t[order[k]]);
        if (err)
            BENCH_DIE("timer-cancel: weft_timer_stop: %s", weft_strerror(err));
    }
    double t2 = bench_now_s(), c2 = bench_cpu_s();
    run_loop(loop, "timer-cancel");
    double t3 = bench_now_s(), c3 = bench_cpu_s();
    long active = timers_teardown(t, n);
    double t4 = bench_now_s(), c4 = bench_cpu_s();

    if (f.fired != n - ncancel || active)
        BENCH_DIE("timer-cancel: fired %ld, expected %ld; %ld still active", f.fired, n - ncancel,
                  active);
    bench_json_begin("timer-cancel", n, t4 - t0, c4 - c0, base);
    printf(",\"setup_s\":%.6f,\"cancel_s\":%.6f,\"run_s\":%.6f,\"run_cpu_s\":%.6f,"
           "\"teardown_s\":%.6f,\"fired\":%ld,\"cancelled\":%ld,\"setup_cpu_s\":%.6f,"
           "\"cancel_cpu_s\":%.6f,\"teardown_cpu_s\":%.6f,\"seed\":%llu",
           t1 - t0, t2 - t1, t3 - t2, c3 - c2, t4 - t3, f.fired, ncancel, c1 - c0, c2 - c1, c4 - c3,
           (unsigned long long)a->seed);
    json_loop_fields(loop);
    bench_json_end();
    bench_loop_destroy(loop);
    free(deadline);
    free(order);
    return 0;
}

#ifndef WEFT_BENCH_LOOP_ONLY
/* ---- queue ------------------------------------------------------------------------- */

/* ---- task-pingpong: two tasks alternate through fresh futures ------------------- */

/* A resolves B's future and awaits a fresh one of its own; B does the same
 * back (README workload 4).  The awaiting task holds its future (WEFT_AWAIT
 * takes the reference) until its next await, so the peer's borrowed pointer
 * in box[] stays valid for as long as it is needed. */
struct pp_shared {
    weft_future *box[2];
    long n, switches;
};

struct pp_side {
    WEFT_FRAME(int);
    struct pp_shared *s;
    int me; /* 0 = A, 1 = B */
    long i;
};

WEFT_ASYNC(pp_side)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < self->s->n; self->i++) {
        if (self->me == 0) {
            weft_future *mine = weft_future_new(loop);
            self->s->box[0] = mine;
            weft_future_set_int(self->s->box[1], 0); /* wake B */
            WEFT_AWAIT(self, mine);
            self->s->switches++;
        } else {
            weft_future *mine = weft_future_new(loop);
            self->s->box[1] = mine;
            WEFT_AWAIT(self, mine);
            self->s->switches++;
            weft_future_set_int(self->s->box[0], 0); /* wake A */
        }
    }
    WEFT_END;
}

static int bench_pingpong(const bench_args *a)
{
    weft_loop *loop = bench_loop_new();
    struct pp_shared s = {.n = a->n};
    long base = bench_rss_kb();
    double c0 = bench_cpu_s(), t0 = bench_now_s();
    /* B first: its first step creates box[1] before A's first step sets it */
    weft_task *b = WEFT_SPAWN(loop, pp_side, .s = &s, .me = 1);
    weft_task *ta = WEFT_SPAWN(loop, pp_side, .s = &s, .me = 0);
    if (!ta || !b)
        BENCH_DIE("task-pingpong: spawn: %s", weft_strerror(weft_last_error()));
    int err = weft_loop_run_until_complete(loop, b);
    if (!err && !weft_future_done(ta))
        err = weft_loop_run_until_complete(loop, ta);
    double t1 = bench_now_s(), c1 = bench_cpu_s();
    if (err || weft_future_error(ta) || weft_future_error(b) || s.switches != 2 * a->n)
        BENCH_DIE("task-pingpong: %s, %ld switches for %ld rounds", weft_strerror(err), s.switches,
                  a->n);
    bench_json_begin("task-pingpong", a->n, t1 - t0, c1 - c0, base);
    printf(",\"switches\":%ld,\"switches_per_sec\":%.1f,\"ns_per_switch\":%.3f", s.switches,
           (double)s.switches / (t1 - t0), (t1 - t0) * 1e9 / (double)s.switches);
    json_loop_fields(loop);
    bench_json_end();
    weft_future_unref(ta);
    weft_future_unref(b);
    bench_loop_destroy(loop);
    return 0;
}

/* ---- spawn: n tasks alive at once, each yields once ------------------------------ */

/* The frame holds nothing but the header and its result, so a task is one
 * 152-byte allocation (a 160-byte malloc chunk); the count of live tasks is
 * a global, as in the rawc floor. */
static long sp_live;
static weft_future *sp_done;

struct sp_child {
    WEFT_FRAME(int);
};

WEFT_ASYNC(sp_child)
{
    WEFT_BEGIN(self);
    WEFT_SLEEP(self, 0);
    if (--sp_live == 0)
        weft_future_set_int(sp_done, 0);
    WEFT_END;
}

static int bench_spawn(const bench_args *a)
{
    weft_loop *loop = bench_loop_new();
    sp_done = weft_future_new(loop);
    if (!sp_done)
        BENCH_DIE("spawn: future: %s", weft_strerror(weft_last_error()));
    long base = bench_rss_kb();
    double c0 = bench_cpu_s(), t0 = bench_now_s();
    for (long i = 0; i < a->n; i++) {
        weft_task *t = WEFT_SPAWN(loop, sp_child);
        if (!t)
            BENCH_DIE("spawn: %s", weft_strerror(weft_last_error()));
        weft_future_unref(t); /* detached: the loop keeps it until it is done */
        sp_live++;
    }
    int err = weft_loop_run_until_complete(loop, sp_done);
    double t1 = bench_now_s(), c1 = bench_cpu_s();
    long peak = bench_peak_rss_kb();
    if (err || sp_live)
        BENCH_DIE("spawn: %s, %ld tasks left", weft_strerror(err), sp_live);
    bench_json_begin("spawn", a->n, t1 - t0, c1 - c0, base);
    printf(",\"tasks_per_sec\":%.1f,\"bytes_per_task\":%.1f", (double)a->n / (t1 - t0),
           (double)(peak - base) * 1024.0 / (double)a->n);
    json_loop_fields(loop);
    bench_json_end();
    weft_future_unref(sp_done);
    bench_loop_destroy(loop);
    return 0;
}

/* The items 0..n-1 through one bounded FIFO weft_queue (maxsize 64), from a
 * producer task awaiting weft_queue_put per item to a consumer task awaiting
 * weft_queue_get n times and checking the order.  The waiters live in the
 * frames, so nothing is allocated per item. */
struct bq_producer {
    WEFT_FRAME(int);
    weft_queue *q;
    long n, i;
    weft_waiter w;
};

WEFT_ASYNC(bq_producer)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < self->n; self->i++)
        WEFT_QUEUE_PUT(self, self->q, (void *)(intptr_t)self->i, &self->w);
    WEFT_END;
}

struct bq_consumer {
    WEFT_FRAME(long); /* result: items received out of order (must be 0) */
    weft_queue *q;
    long n, i, bad;
    void *item;
    weft_waiter w;
};

WEFT_ASYNC(bq_consumer)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < self->n; self->i++) {
        WEFT_QUEUE_GET(self, self->q, &self->w, self->item);
        if ((intptr_t)self->item != self->i)
            self->bad++;
    }
    WEFT_RETURN(self, self->bad);
    WEFT_END;
}

static int bench_queue(const bench_args *a)
{
    weft_loop *loop = bench_loop_new();
    weft_queue q;
    int err = weft_queue_init(&q, loop, 64, NULL);
    if (err)
        BENCH_DIE("queue: weft_queue_init: %s", weft_strerror(err));
    weft_loop_stats s0, s1;
    weft_loop_get_stats(loop, &s0);
    long base = bench_rss_kb();

    double c0 = bench_cpu_s(), t0 = bench_now_s();
    weft_task *p = WEFT_SPAWN(loop, bq_producer, .q = &q, .n = a->n);
    weft_task *c = WEFT_SPAWN(loop, bq_consumer, .q = &q, .n = a->n);
    if (!p || !c)
        BENCH_DIE("queue: spawn: %s", weft_strerror(weft_last_error()));
    err = weft_loop_run_until_complete(loop, c);
    if (!err && !weft_future_done(p))
        err = weft_loop_run_until_complete(loop, p); /* its last step may be pending */
    double t1 = bench_now_s(), c1 = bench_cpu_s();

    weft_value bad = {.i = -1};
    if (err || weft_future_error(p) || weft_future_result(c, &bad))
        BENCH_DIE("queue: tasks failed: %s / %s", weft_strerror(err),
                  weft_strerror(weft_future_error(p)));
    if (bad.i || weft_queue_size(&q))
        BENCH_DIE("queue: %lld items out of order, %zu left in the queue", (long long)bad.i,
                  weft_queue_size(&q));
    weft_loop_get_stats(loop, &s1);
    bench_json_begin("queue", a->n, t1 - t0, c1 - c0, base);
    printf(",\"ns_per_op\":%.3f,\"switches\":%llu", (t1 - t0) * 1e9 / (double)a->n,
           (unsigned long long)(s1.callbacks - s0.callbacks));
    json_loop_fields(loop);
    bench_json_end();
    weft_future_unref(p);
    weft_future_unref(c);
    weft_queue_destroy(&q);
    bench_loop_destroy(loop);
    return 0;
}

/* ---- to-thread: n empty jobs through the default executor ------------------------ */

/* Every job is submitted with weft_to_thread before the loop runs, then one
 * weft_gather of the n futures is awaited (asyncio: gather of n
 * run_in_executor futures).  The default executor has 4 workers; each
 * burst of completions costs the loop one wakeup. */
static int tt_empty(void *arg, weft_value *out)
{
    (void)arg, (void)out;
    return 0;
}

static int bench_to_thread(const bench_args *a)
{
    weft_loop *loop = bench_loop_new();
    weft_future **fs = malloc((size_t)a->n * sizeof *fs);
    if (!fs)
        BENCH_DIE("to-thread: out of memory for %ld futures", a->n);
    weft_loop_stats s0, s1;
    weft_loop_get_stats(loop, &s0);
    long base = bench_rss_kb();

    double c0 = bench_cpu_s(), t0 = bench_now_s();
    for (long i = 0; i < a->n; i++) {
        fs[i] = weft_to_thread(loop, tt_empty, NULL);
        if (!fs[i])
            BENCH_DIE("to-thread: weft_to_thread: %s", weft_strerror(weft_last_error()));
    }
    weft_future *all = weft_gather(loop, fs, (size_t)a->n, 0);
    if (!all)
        BENCH_DIE("to-thread: weft_gather: %s", weft_strerror(weft_last_error()));
    int err = weft_loop_run_until_complete(loop, all);
    double t1 = bench_now_s(), c1 = bench_cpu_s();

    weft_executor_stats es;
    weft_executor_get_stats(weft_executor_default(loop), &es);
    if (err || es.completed != (uint64_t)a->n)
        BENCH_DIE("to-thread: %s, %llu of %ld jobs completed", weft_strerror(err),
                  (unsigned long long)es.completed, a->n);
    weft_loop_get_stats(loop, &s1);
    bench_json_begin("to-thread", a->n, t1 - t0, c1 - c0, base);
    printf(",\"ns_per_op\":%.3f,\"jobs_per_sec\":%.1f,\"threads\":%u,\"loop_callbacks\":%llu,"
           "\"semantics\":\"n empty weft_to_thread jobs submitted at once, then one gather of "
           "the n futures awaited (default executor)\"",
           (t1 - t0) * 1e9 / (double)a->n, (double)a->n / (t1 - t0), es.max_threads,
           (unsigned long long)(s1.callbacks - s0.callbacks));
    json_loop_fields(loop);
    bench_json_end();
    weft_future_unref(all);
    free(fs);
    bench_loop_destroy(loop);
    return 0;
}

#endif /* WEFT_BENCH_LOOP_ONLY */

/* ---- the workload table --------------------------------------------------------- */

static const struct workload {
    const char *name;
    bench_fn *run;
    long default_n; /* N when the argument is omitted (the harness's N_C_* default) */
} workloads[] = {
    {"callbacks", bench_callbacks, 5000000},
    {"timers", bench_timers, 1000000},
    {"timer-cancel", bench_timer_cancel, 1000000},
#ifndef WEFT_BENCH_LOOP_ONLY
    {"task-pingpong", bench_pingpong, 5000000},
    {"spawn", bench_spawn, 1000000},
    {"queue", bench_queue, 5000000},
    {"to-thread", bench_to_thread, 1000000},
#endif
};

static void usage(FILE *out)
{
    fputs("usage: weft-bench WORKLOAD [N] [SEED]\nworkloads:", out);
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
        fprintf(out, " %s", workloads[i].name);
    fputc('\n', out);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        usage(stderr);
        return 1;
    }
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
        const struct workload *w = &workloads[i];
        if (strcmp(argv[1], w->name) != 0)
            continue;
        bench_args a = {w->name, bench_arg_n(argc, argv, 2, w->default_n),
                        bench_arg_seed(argc, argv, 3)};
        return w->run(&a);
    }
    fprintf(stderr, "weft-bench: unknown workload %s\n", argv[1]);
    usage(stderr);
    return BENCH_UNSUPPORTED;
}
