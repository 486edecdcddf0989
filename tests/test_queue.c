/* tests/test_queue.c - FIFO, LIFO and priority queues (include/weft/queue.h),
 * one guarantee per test.
 *
 * Each test cites the statement it mirrors: S-QUEUE-1..5 in
 * shared/reference/asyncio-semantics.md (section 5), or P-8 / gh-83055
 * where weft deliberately differs from asyncio: wake-ups are hand-offs, so
 * nobody can steal a woken waiter's item or slot, and every cancel-after-
 * wake interleaving rolls the hand-off back (nothing lost, nothing
 * duplicated, order kept).
 *
 * Bodies never call cmocka asserts (a longjmp out of a running loop would
 * leave it running): they append to a text log, and the test compares the
 * log afterwards.  Log entries: "G1:7" (task G1 got item 7), "P1+" (P1's
 * put succeeded), "G1!cancel" (G1 ended with that error), "J1+" (join).
 * Every loop uses the virtual clock and a counting allocator; finish_queue()
 * destroys the queue and the loop and asserts that every block came back.
 */
#include "weft_test.h"

#define ITEM(x) ((void *)(intptr_t)(x))
#define VAL(p) ((long)(intptr_t)(p))

/* ---- the text log ----------------------------------------------------------------------- */

static char g_text[4096];

static void logf_(const char *fmt, ...)
{
    size_t n = strlen(g_text);
    if (n && n < sizeof g_text - 1)
        g_text[n++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_text + n, sizeof g_text - n, fmt, ap);
    va_end(ap);
}

static const char *errname(int err)
{
    switch (err) {
    case -ECANCELED:
        return "cancel";
    case -ETIMEDOUT:
        return "timeout";
    case WEFT_ESHUTDOWN:
        return "shutdown";
    case WEFT_EFULL:
        return "full";
    case WEFT_EEMPTY:
        return "empty";
    default:
        return weft_strerror(err);
    }
}

/* Destructor that logs what it destroys ("~7"). */
static void log_dtor(void *p)
{
    logf_("~%ld", VAL(p));
}

/* ---- loops (more in weft_test.h) ------------------------------------------------------ */

/* Run whole iterations (run_once; the virtual clock advances as needed)
 * until t is done, and stop after the iteration in which it finished
 * (run() stops through a done callback instead). */
static void run_iterations(weft_loop *loop, weft_task *t)
{
    for (int i = 0; i < 100000 && !weft_future_done(t); i++)
        assert_true(weft_loop_run_once(loop) >= 0);
    assert_true(weft_future_done(t));
}

/* Destroy q (if any), let the tasks it woke end, then finish(loop). */
static void finish_queue(weft_loop *loop, weft_queue *q)
{
    if (q)
        weft_queue_destroy(q);
    for (int i = 0; i < 8; i++)
        step(loop); /* let woken tasks end */
    finish(loop);
}

/* Take everything out of q with get_nowait and log it as "q:a,b,c". */
static void drain_log(weft_queue *q)
{
    char buf[512] = "q:";
    void *p;
    int n = 0;
    while (weft_queue_get_nowait(q, &p) == 0)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%ld", n++ ? "," : "", VAL(p));
    logf_("%s", buf);
}

static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 120});
    g_text[0] = 0;
    return 0;
}

/* ---- coroutines ---------------------------------------------------------------------------- */

/* getter: one get; logs "NAME:item" or "NAME!err". */
struct getter {
    WEFT_FRAME(long);
    weft_queue *q;
    const char *name;
    weft_waiter w;
};

WEFT_ASYNC(getter)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_queue_get(self->q, &self->w));
    self->result = VAL(WEFT_RESULT(self).p);
    logf_("%s:%ld", self->name, self->result);
    WEFT_FINALLY;
    if (self->co.err)
        logf_("%s!%s", self->name, errname(self->co.err));
    WEFT_END;
}

/* putter: one put of item; logs "NAME+" or "NAME!err". */
struct putter {
    WEFT_FRAME(int);
    weft_queue *q;
    const char *name;
    long item;
    weft_waiter w;
};

WEFT_ASYNC(putter)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_queue_put(self->q, ITEM(self->item), &self->w));
    logf_("%s+", self->name);
    WEFT_FINALLY;
    if (self->co.err)
        logf_("%s!%s", self->name, errname(self->co.err));
    WEFT_END;
}

/* joiner: one join. */
struct joiner {
    WEFT_FRAME(int);
    weft_queue *q;
    const char *name;
    weft_waiter w;
};

WEFT_ASYNC(joiner)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_queue_join(self->q, &self->w));
    logf_("%s+", self->name);
    WEFT_FINALLY;
    if (self->co.err)
        logf_("%s!%s", self->name, errname(self->co.err));
    WEFT_END;
}

/* Spawn helpers return a new reference; go() drops it at once (the loop
 * keeps pending tasks alive) for tasks the test does not touch again. */
static void go(weft_task *t)
{
    assert_non_null(t);
    weft_future_unref(t);
}

static weft_task *spawn_getter(weft_loop *loop, weft_queue *q, const char *name)
{
    weft_task *t = WEFT_SPAWN(loop, getter, .q = q, .name = name);
    assert_non_null(t);
    return t;
}

static weft_task *spawn_putter(weft_loop *loop, weft_queue *q, const char *name, long item)
{
    weft_task *t = WEFT_SPAWN(loop, putter, .q = q, .name = name, .item = item);
    assert_non_null(t);
    return t;
}

static void put_all(weft_queue *q, const long *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(weft_queue_put_nowait(q, ITEM(v[i])), 0);
}

/* =============================================================================
 * Order and capacity (S-QUEUE-1, S-QUEUE-4)
 * ========================================================================== */

/* S-QUEUE-1: a FIFO queue returns items in put order. */
static void test_fifo_returns_items_in_put_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    put_all(&q, (long[]){1, 2, 3, 4, 5}, 5);
    drain_log(&q);
    assert_string_equal(g_text, "q:1,2,3,4,5");
    finish_queue(loop, &q);
}

/* S-QUEUE-4: a LIFO queue returns the newest item first. */
static void test_lifo_returns_newest_first(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_lifo_queue_init(&q, loop, 0, NULL), 0);
    put_all(&q, (long[]){1, 2, 3}, 3);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    assert_int_equal(VAL(p), 3);
    put_all(&q, (long[]){4}, 1);
    drain_log(&q);
    assert_string_equal(g_text, "q:4,2,1");
    finish_queue(loop, &q);
}

/* Priority key: the tens digit (so 21 and 23 tie). */
static int by_tens(const void *a, const void *b, void *ud)
{
    (void)ud;
    long x = VAL(a) / 10, y = VAL(b) / 10;
    return (x > y) - (x < y);
}

/* S-QUEUE-4: a priority queue returns the smallest item first; equal items
 * leave in put order (weft's addition: heapq alone is not stable). */
static void test_priority_smallest_first_ties_in_put_order(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_priority_queue_init(&q, loop, 0, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(weft_priority_queue_init(&q, loop, 0, by_tens, NULL, NULL), 0);
    put_all(&q, (long[]){31, 21, 12, 23, 11, 22, 13, 32, 24, 14}, 10);
    drain_log(&q);
    assert_string_equal(g_text, "q:12,11,13,14,21,23,22,24,31,32");
    finish_queue(loop, &q);
}

/* S-QUEUE-4: many equal keys through a heap that grows and shrinks keep put
 * order within each key. */
static void test_priority_stable_under_many_ties(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_priority_queue_init(&q, loop, 0, by_tens, NULL, NULL), 0);
    unsigned s = 12345;
    long last[10];
    for (int round = 0; round < 3; round++) {
        for (long i = 0; i < 300; i++) {
            s = s * 1103515245u + 12345u;
            long key = (s >> 16) % 5;
            assert_int_equal(weft_queue_put_nowait(&q, ITEM(key * 10 + round)), 0);
        }
        for (int k = 0; k < 10; k++)
            last[k] = -1;
        long prev_key = -1;
        void *p;
        for (int i = 0; i < 150; i++) {
            assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
            long key = VAL(p) / 10, rnd = VAL(p) % 10;
            assert_true(key >= prev_key);
            assert_true(rnd >= last[key]); /* older rounds of a key first */
            prev_key = key;
            last[key] = rnd;
        }
    }
    assert_int_equal(weft_queue_size(&q), 450);
    finish_queue(loop, &q);
}

/* S-QUEUE-1: maxsize, qsize, empty, full; maxsize 0 is unbounded. */
static void test_maxsize_size_empty_full(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q, u;
    assert_int_equal(weft_queue_init(&q, loop, 2, NULL), 0);
    assert_int_equal(weft_queue_maxsize(&q), 2);
    assert_true(weft_queue_empty(&q));
    assert_false(weft_queue_full(&q));
    put_all(&q, (long[]){1, 2}, 2);
    assert_int_equal(weft_queue_size(&q), 2);
    assert_false(weft_queue_empty(&q));
    assert_true(weft_queue_full(&q));

    assert_int_equal(weft_queue_init(&u, loop, 0, NULL), 0);
    assert_int_equal(weft_queue_maxsize(&u), 0);
    for (long i = 0; i < 5000; i++)
        assert_int_equal(weft_queue_put_nowait(&u, ITEM(i)), 0);
    assert_false(weft_queue_full(&u));
    assert_int_equal(weft_queue_size(&u), 5000);
    void *p;
    for (long i = 0; i < 5000; i++) {
        assert_int_equal(weft_queue_get_nowait(&u, &p), 0);
        assert_int_equal(VAL(p), i);
    }
    weft_queue_destroy(&u);

    assert_int_equal(weft_queue_init(&u, loop, 5000, NULL), 0); /* grows past 4096 */
    for (long i = 0; i < 5000; i++)
        assert_int_equal(weft_queue_put_nowait(&u, ITEM(i)), 0);
    assert_true(weft_queue_full(&u));
    assert_int_equal(weft_queue_put_nowait(&u, ITEM(0)), WEFT_EFULL);
    weft_queue_destroy(&u);
    finish_queue(loop, &q);
}

/* S-QUEUE-1: put_nowait on a full queue fails with WEFT_EFULL and changes
 * nothing. */
static void test_put_nowait_full_is_efull(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, log_dtor), 0);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(1)), 0);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(2)), WEFT_EFULL);
    assert_int_equal(weft_queue_size(&q), 1);
    assert_int_equal(weft_queue_task_done(&q), 0); /* one unfinished, not two */
    assert_int_equal(weft_queue_task_done(&q), WEFT_ESTATE);
    drain_log(&q);
    assert_string_equal(g_text, "q:1");
    finish_queue(loop, &q);
}

/* S-QUEUE-1: get_nowait on an empty queue fails with WEFT_EEMPTY. */
static void test_get_nowait_empty_is_eempty(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    void *p = ITEM(99);
    assert_int_equal(weft_queue_get_nowait(&q, &p), WEFT_EEMPTY);
    assert_int_equal(VAL(p), 99);
    finish_queue(loop, &q);
}

/* Bad arguments are -EINVAL (NULL futures with weft_last_error). */
static void test_null_arguments_are_einval(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    weft_waiter w = {0};
    void *p;
    assert_int_equal(weft_queue_init(NULL, loop, 0, NULL), -EINVAL);
    assert_int_equal(weft_queue_init(&q, NULL, 0, NULL), -EINVAL);
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    assert_int_equal(weft_queue_put_nowait(NULL, ITEM(1)), -EINVAL);
    assert_int_equal(weft_queue_get_nowait(&q, NULL), -EINVAL);
    assert_null(weft_queue_put(NULL, ITEM(1), &w));
    assert_int_equal(weft_last_error(), -EINVAL);
    assert_null(weft_queue_get(&q, NULL));
    assert_null(weft_queue_join(NULL, &w));
    assert_int_equal(weft_queue_task_done(NULL), -EINVAL);
    assert_int_equal(weft_queue_shutdown(NULL, false), -EINVAL);
    assert_int_equal(weft_queue_get_nowait(&q, &p), WEFT_EEMPTY);
    finish_queue(loop, &q);
}

/* S-QUEUE-1: awaiting put / get on a queue with room / items is done at once
 * (no suspension), and the value of a get is the item. */
static void test_put_and_get_with_room_complete_at_once(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    weft_waiter w = {0};
    weft_value v;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    weft_future *f = weft_queue_put(&q, ITEM(5), &w);
    assert_true(weft_future_done(f));
    assert_int_equal(weft_future_result(f, NULL), 0);
    weft_future_unref(f);
    f = weft_queue_get(&q, &w);
    assert_true(weft_future_done(f));
    assert_int_equal(weft_future_result(f, &v), 0);
    assert_int_equal(VAL(v.p), 5);
    weft_future_unref(f);
    finish_queue(loop, &q);
}

/* =============================================================================
 * Blocking put / get (S-QUEUE-1) and hand-off (P-8, contrast S-QUEUE-3)
 * ========================================================================== */

/* S-QUEUE-1: getters block on an empty queue and are served in FIFO order. */
static void test_getters_block_and_resume_fifo(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    go(spawn_getter(loop, &q, "G1"));
    go(spawn_getter(loop, &q, "G2"));
    go(spawn_getter(loop, &q, "G3"));
    step(loop);
    assert_string_equal(g_text, "");
    put_all(&q, (long[]){1, 2, 3}, 3);
    assert_int_equal(weft_queue_size(&q), 0); /* handed straight over */
    step(loop);
    assert_string_equal(g_text, "G1:1 G2:2 G3:3");
    finish_queue(loop, &q);
}

/* S-QUEUE-1: putters block on a full queue; their items enter in FIFO order
 * and they resume in FIFO order. */
static void test_putters_block_and_resume_fifo(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    go(spawn_putter(loop, &q, "P1", 1));
    go(spawn_putter(loop, &q, "P2", 2));
    go(spawn_putter(loop, &q, "P3", 3));
    step(loop);
    assert_string_equal(g_text, "");
    drain_log(&q); /* each get places the next putter's item */
    step(loop);
    assert_string_equal(g_text, "q:0,1,2,3 P1+ P2+ P3+");
    finish_queue(loop, &q);
}

/* P-8 hand-off (contrast S-QUEUE-3/T61, where a get_nowait by another task
 * before the woken getter runs takes the item and the getter re-queues at
 * the tail): the item is the woken getter's; the thief finds nothing. */
static void test_put_hands_item_to_woken_getter_nobody_can_steal_it(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    go(spawn_getter(loop, &q, "G1"));
    step(loop);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(7)), 0);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), WEFT_EEMPTY); /* the thief */
    step(loop);
    assert_string_equal(g_text, "G1:7");
    finish_queue(loop, &q);
}

/* gh-83055 (putting items out of order when full): in asyncio a woken putter
 * only appends when it runs, so a put_nowait in between overtakes it.  Here
 * the freed slot is the putter's at once: the put_nowait finds the queue
 * full and the order is the putters' order. */
static void test_woken_putter_keeps_its_place_gh83055(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    go(spawn_putter(loop, &q, "P1", 1));
    step(loop);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    assert_int_equal(VAL(p), 0);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(2)), WEFT_EFULL); /* no overtaking */
    assert_true(weft_queue_full(&q));
    step(loop);
    drain_log(&q);
    assert_string_equal(g_text, "P1+ q:1");
    finish_queue(loop, &q);
}

/* =============================================================================
 * task_done / join (S-QUEUE-2)
 * ========================================================================== */

/* S-QUEUE-2: join is done at once when nothing is unfinished. */
static void test_join_done_at_once_when_nothing_unfinished(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    weft_waiter w = {0};
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    weft_future *f = weft_queue_join(&q, &w);
    assert_true(weft_future_done(f));
    assert_int_equal(weft_future_error(f), 0);
    weft_future_unref(f);
    finish_queue(loop, &q);
}

/* S-QUEUE-2: every put counts one unfinished item, task_done one finished;
 * join returns when the count reaches 0 - not when the queue is empty. */
static void test_join_waits_until_every_item_is_done(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    put_all(&q, (long[]){1, 2}, 2);
    weft_task *j = WEFT_SPAWN(loop, joiner, .q = &q, .name = "J1");
    step(loop);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    step(loop);
    assert_false(weft_future_done(j)); /* empty, but not done */
    assert_int_equal(weft_queue_task_done(&q), 0);
    step(loop);
    assert_false(weft_future_done(j));
    assert_int_equal(weft_queue_task_done(&q), 0);
    step(loop);
    assert_true(weft_future_done(j));
    assert_string_equal(g_text, "J1+");
    weft_future_unref(j);
    finish_queue(loop, &q);
}

/* S-QUEUE-2: task_done more times than items were put is WEFT_ESTATE. */
static void test_task_done_too_many_times_is_estate(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    assert_int_equal(weft_queue_task_done(&q), WEFT_ESTATE);
    put_all(&q, (long[]){1}, 1);
    assert_int_equal(weft_queue_task_done(&q), 0);
    assert_int_equal(weft_queue_task_done(&q), WEFT_ESTATE);
    finish_queue(loop, &q);
}

/* A joiner cancelled while waiting leaves the queue; later task_done calls
 * do not touch it. */
static void test_joiner_cancelled_while_waiting_leaves(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    put_all(&q, (long[]){1}, 1);
    weft_task *j1 = WEFT_SPAWN(loop, joiner, .q = &q, .name = "J1");
    weft_task *j2 = WEFT_SPAWN(loop, joiner, .q = &q, .name = "J2");
    step(loop);
    assert_int_equal(weft_task_cancel(j1), 0);
    step(loop);
    assert_int_equal(weft_queue_task_done(&q), 0);
    step(loop);
    assert_string_equal(g_text, "J1!cancel J2+");
    weft_future_unref(j1);
    weft_future_unref(j2);
    finish_queue(loop, &q);
}

/* =============================================================================
 * shutdown and destroy (S-QUEUE-5)
 * ========================================================================== */

/* S-QUEUE-5: after a graceful shutdown puts fail, blocked putters are woken
 * with WEFT_ESHUTDOWN, gets drain the items and then fail. */
static void test_shutdown_graceful_fails_puts_and_drains_gets(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 2, log_dtor), 0);
    put_all(&q, (long[]){1, 2}, 2);
    go(spawn_putter(loop, &q, "P1", 3));
    step(loop);
    assert_int_equal(weft_queue_shutdown(&q, false), 0);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(4)), WEFT_ESHUTDOWN);
    step(loop);
    go(spawn_getter(loop, &q, "G1"));
    go(spawn_getter(loop, &q, "G2"));
    go(spawn_getter(loop, &q, "G3"));
    step(loop);
    assert_string_equal(g_text, "P1!shutdown G1:1 G2:2 G3!shutdown");
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), WEFT_ESHUTDOWN);
    finish_queue(loop, &q);
}

/* S-QUEUE-5: a graceful shutdown wakes getters blocked on the empty queue
 * with WEFT_ESHUTDOWN. */
static void test_shutdown_wakes_blocked_getters(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    go(spawn_getter(loop, &q, "G1"));
    go(spawn_getter(loop, &q, "G2"));
    step(loop);
    assert_int_equal(weft_queue_shutdown(&q, false), 0);
    step(loop);
    assert_string_equal(g_text, "G1!shutdown G2!shutdown");
    finish_queue(loop, &q);
}

/* S-QUEUE-5: an immediate shutdown drops the items (destructor once each),
 * counts each as done (releasing join) and gets fail at once. */
static void test_shutdown_immediate_drops_items_and_releases_join(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, log_dtor), 0);
    put_all(&q, (long[]){1, 2, 3}, 3);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0); /* 1 got, not yet done */
    go(WEFT_SPAWN(loop, joiner, .q = &q, .name = "J1"));
    step(loop);
    assert_int_equal(weft_queue_shutdown(&q, true), 0);
    assert_int_equal(weft_queue_size(&q), 0);
    step(loop);
    assert_string_equal(g_text, "~2 ~3"); /* 1 is still unfinished */
    assert_int_equal(weft_queue_get_nowait(&q, &p), WEFT_ESHUTDOWN);
    assert_int_equal(weft_queue_task_done(&q), 0);
    step(loop);
    assert_string_equal(g_text, "~2 ~3 J1+");
    weft_queue_destroy(&q);
    assert_string_equal(g_text, "~2 ~3 J1+"); /* nothing dropped twice */
    finish_queue(loop, NULL);
}

/* S-QUEUE-5: immediate shutdown wakes blocked putters (their items stay
 * theirs: no destructor) and blocked getters. */
static void test_shutdown_immediate_wakes_putters_without_dropping_their_items(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, log_dtor), 0);
    put_all(&q, (long[]){1}, 1);
    go(spawn_putter(loop, &q, "P1", 2));
    step(loop);
    assert_int_equal(weft_queue_shutdown(&q, true), 0);
    step(loop);
    assert_string_equal(g_text, "~1 P1!shutdown");
    finish_queue(loop, &q);
}

/* destroy: waiters fail with WEFT_ESHUTDOWN and leftovers are destroyed. */
static void test_destroy_destroys_leftovers_and_fails_waiters(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 2, log_dtor), 0);
    put_all(&q, (long[]){1, 2}, 2);
    go(spawn_putter(loop, &q, "P1", 3));
    go(WEFT_SPAWN(loop, joiner, .q = &q, .name = "J1"));
    step(loop);
    weft_queue_destroy(&q);
    step(loop);
    /* dropping the last unfinished items releases the joiner first */
    assert_string_equal(g_text, "~1 ~2 J1+ P1!shutdown");
    finish_queue(loop, NULL);
}

/* =============================================================================
 * Loop closed with waiters in task frames (regression)
 * ========================================================================== */

/* loop.h close "tasks still pending are released": a getter waiting in
 * weft_queue_get leaves the queue before its frame (which holds the waiter)
 * is freed, so a later put is queued instead of being handed to freed
 * memory (ASan / valgrind would see it), and a get takes it back out. */
static void test_loop_close_unlinks_waiting_getter_from_queue(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    go(spawn_getter(loop, &q, "G1"));
    step(loop); /* G1 waits in weft_queue_get */
    assert_int_equal(weft_queue_getters(&q), 1);
    assert_int_equal(weft_loop_close(loop), 0);
    assert_int_equal(g_hook.count, 1); /* released while pending */
    assert_int_equal(weft_queue_getters(&q), 0);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(7)), 0);
    assert_int_equal(weft_queue_size(&q), 1); /* queued: nobody to hand it to */
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    assert_int_equal(VAL(p), 7);
    assert_int_equal(weft_queue_get_nowait(&q, &p), WEFT_EEMPTY);
    assert_string_equal(g_text, ""); /* G1 never got anything */
    weft_queue_destroy(&q);
    finish(loop);
}

/* Same through weft_loop_destroy (which closes first): no waiter is left
 * linked in the queue once the loop and the frame are gone. */
static void test_loop_destroy_unlinks_waiting_getter_from_queue(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0); /* allocates nothing yet */
    go(spawn_getter(loop, &q, "G1"));
    step(loop);
    assert_int_equal(weft_queue_getters(&q), 1);
    finish(loop); /* the queue owns no memory: it outlives its loop unused */
    assert_int_equal(g_hook.count, 1);
    assert_int_equal(weft_queue_getters(&q), 0);
    assert_int_equal(weft_queue_size(&q), 0);
}

/* A getter that was handed an item but whose task never ran gives the item
 * back when the loop closes: the queue size is restored, the item at the
 * front (where a cancelled woken getter puts it), nothing lost or doubled. */
static void test_loop_close_returns_item_handed_to_getter_that_never_ran(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, log_dtor), 0);
    go(spawn_getter(loop, &q, "G1"));
    step(loop);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(7)), 0); /* handed to G1 */
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(8)), 0); /* queued */
    assert_int_equal(weft_queue_size(&q), 1);
    assert_int_equal(weft_loop_close(loop), 0); /* G1 never ran */
    assert_int_equal(g_hook.count, 1);
    assert_int_equal(weft_queue_size(&q), 2);
    drain_log(&q);
    assert_string_equal(g_text, "q:7,8");
    weft_queue_destroy(&q);
    assert_string_equal(g_text, "q:7,8"); /* nothing left to destroy */
    finish(loop);
}

/* =============================================================================
 * Cancellation of getters (P-8): every interleaving
 * ========================================================================== */

/* P-8: a getter handed an item but cancelled before it runs passes the item
 * to the next getter. */
static void test_woken_getter_cancelled_passes_item_to_next_getter(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    weft_task *g1 = spawn_getter(loop, &q, "G1");
    go(spawn_getter(loop, &q, "G2"));
    step(loop);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(1)), 0);
    assert_int_equal(weft_task_cancel(g1), 0);
    step(loop);
    assert_string_equal(g_text, "G1!cancel G2:1");
    assert_int_equal(weft_queue_size(&q), 0);
    weft_future_unref(g1);
    finish_queue(loop, &q);
}

/* P-8: with no other getter, a cancelled woken getter's item goes back to
 * the front of a FIFO, before items put since. */
static void test_woken_getter_cancelled_returns_item_to_fifo_front(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    weft_task *g1 = spawn_getter(loop, &q, "G1");
    step(loop);
    put_all(&q, (long[]){1, 2, 3}, 3); /* 1 to G1, 2 and 3 queued */
    assert_int_equal(weft_task_cancel(g1), 0);
    step(loop);
    drain_log(&q);
    assert_string_equal(g_text, "G1!cancel q:1,2,3");
    weft_future_unref(g1);
    finish_queue(loop, &q);
}

/* P-8: for a LIFO the item goes back to the bottom: it is older than every
 * item put since (asyncio would have it there, under them). */
static void test_woken_getter_cancelled_returns_item_to_lifo_bottom(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_lifo_queue_init(&q, loop, 0, NULL), 0);
    weft_task *g1 = spawn_getter(loop, &q, "G1");
    step(loop);
    put_all(&q, (long[]){1, 2, 3}, 3);
    assert_int_equal(weft_task_cancel(g1), 0);
    step(loop);
    drain_log(&q);
    assert_string_equal(g_text, "G1!cancel q:3,2,1");
    weft_future_unref(g1);
    finish_queue(loop, &q);
}

/* P-8: for a priority queue the item is re-inserted with its put sequence,
 * so it still leaves before equal items put after it. */
static void test_woken_getter_cancelled_reinserts_by_priority(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_priority_queue_init(&q, loop, 0, by_tens, NULL, NULL), 0);
    weft_task *g1 = spawn_getter(loop, &q, "G1");
    step(loop);
    put_all(&q, (long[]){21, 22, 11, 23}, 4); /* 21 to G1 */
    assert_int_equal(weft_task_cancel(g1), 0);
    step(loop);
    drain_log(&q);
    assert_string_equal(g_text, "G1!cancel q:11,21,22,23");
    weft_future_unref(g1);
    finish_queue(loop, &q);
}

/* P-8: the item of a cancelled woken getter must go back to an unbounded
 * queue that is full to its capacity; if it cannot grow, the item is
 * destroyed and the loss reported (the only case where an item is lost). */
static void test_woken_getter_cancelled_without_memory_reports_and_destroys(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, log_dtor), 0);
    weft_task *g1 = spawn_getter(loop, &q, "G1");
    step(loop);
    put_all(&q, (long[]){1, 2, 3, 4, 5, 6, 7, 8, 9}, 9); /* 1 to G1, 8 slots full */
    alloc_fail_all(true);
    assert_int_equal(weft_task_cancel(g1), 0);
    alloc_fail_all(false);
    assert_int_equal(g_hook.count, 1);
    step(loop);
    assert_string_equal(g_text, "~1 G1!cancel");
    assert_int_equal(weft_queue_size(&q), 8);
    weft_future_unref(g1);
    finish_queue(loop, &q);
}

/* P-8 / S-QUEUE-5: after an immediate shutdown the item of a cancelled
 * woken getter is dropped as if it had still been queued (destructor once,
 * counted as done). */
static void test_woken_getter_cancelled_after_immediate_shutdown_drops_item(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, log_dtor), 0);
    void *p;
    put_all(&q, (long[]){0}, 1);
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0); /* 0 got, not done */
    go(WEFT_SPAWN(loop, joiner, .q = &q, .name = "J1"));
    weft_task *g1 = spawn_getter(loop, &q, "G1");
    step(loop);
    put_all(&q, (long[]){1}, 1); /* handed to G1 */
    assert_int_equal(weft_queue_shutdown(&q, true), 0);
    assert_int_equal(weft_queue_task_done(&q), 0); /* 0 done, 1 unfinished */
    assert_int_equal(weft_task_cancel(g1), 0);
    step(loop);
    assert_string_equal(g_text, "~1 G1!cancel J1+");
    assert_int_equal(weft_queue_size(&q), 0);
    weft_future_unref(g1);
    finish_queue(loop, &q);
}

/* P-8: cancelled first, then an item arrives in the same iteration: the
 * getter has left the line, so the item is queued. */
static void test_getter_cancelled_then_put_same_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    weft_task *g1 = spawn_getter(loop, &q, "G1");
    go(spawn_getter(loop, &q, "G2"));
    step(loop);
    assert_int_equal(weft_task_cancel(g1), 0);
    put_all(&q, (long[]){1, 2}, 2); /* 1 to G2, 2 queued */
    step(loop);
    drain_log(&q);
    assert_string_equal(g_text, "G1!cancel G2:1 q:2");
    weft_future_unref(g1);
    finish_queue(loop, &q);
}

/* P-8: a getter cancelled while waiting leaves the line; items put later
 * are queued, none is lost. */
static void test_getter_cancelled_while_waiting_leaves_the_line(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    weft_task *g1 = spawn_getter(loop, &q, "G1");
    step(loop);
    assert_int_equal(weft_task_cancel(g1), 0);
    step(loop);
    put_all(&q, (long[]){1}, 1);
    drain_log(&q);
    assert_string_equal(g_text, "G1!cancel q:1");
    weft_future_unref(g1);
    finish_queue(loop, &q);
}

/* getter_wait_for: get through weft_wait_for(timeout). */
struct getter_wait_for {
    WEFT_FRAME(int);
    weft_queue *q;
    double timeout;
    int err;
    weft_waiter w;
};

WEFT_ASYNC(getter_wait_for)
{
    WEFT_BEGIN(self);
    WEFT_TRY_AWAIT(self, weft_wait_for(weft_queue_get(self->q, &self->w), self->timeout),
                   self->err);
    if (self->err)
        logf_("W!%s@%.0f", errname(self->err), weft_loop_time(weft_task_loop(task)));
    else
        logf_("W:%ld", VAL(WEFT_RESULT(self).p));
    WEFT_END;
}

/* P-8 / S-WAITFOR: a get under weft_wait_for that times out while queued
 * fails with -ETIMEDOUT and leaves the line; an item put afterwards is
 * queued, not lost. */
static void test_getter_wait_for_timeout_loses_nothing(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    weft_task *t = WEFT_SPAWN(loop, getter_wait_for, .q = &q, .timeout = 2);
    run_iterations(loop, t);
    put_all(&q, (long[]){1}, 1);
    drain_log(&q);
    assert_string_equal(g_text, "W!timeout@2 q:1");
    weft_future_unref(t);
    finish_queue(loop, &q);
}

/* P-8 / S-WAITFOR: an item that arrives before the timeout is the value. */
static void test_getter_wait_for_gets_item_before_timeout(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    weft_task *t = WEFT_SPAWN(loop, getter_wait_for, .q = &q, .timeout = 2);
    step(loop);
    put_all(&q, (long[]){5}, 1);
    run_iterations(loop, t);
    assert_string_equal(g_text, "W:5");
    weft_future_unref(t);
    finish_queue(loop, &q);
}

/* getter_scope: a child getter coroutine under a timeout scope. */
struct getter_scope {
    WEFT_FRAME(int);
    weft_queue *q;
    double timeout;
    int err;
    weft_timeout to;
    struct getter child;
};

WEFT_ASYNC(getter_scope)
{
    WEFT_BEGIN(self);
    WEFT_TRY_TIMEOUT_CALL(self, self->err, &self->to, self->timeout, getter, &self->child,
                          .q = self->q, .name = "C");
    logf_("S=%s@%.0f", self->err ? errname(self->err) : "ok", weft_loop_time(weft_task_loop(task)));
    WEFT_END;
}

/* P-8 / S-TIMEOUT: a get in a child coroutine under a timeout scope that
 * expires while queued: -ETIMEDOUT, and the line is left. */
static void test_getter_timeout_scope_expires_while_queued(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    weft_task *t = WEFT_SPAWN(loop, getter_scope, .q = &q, .timeout = 1);
    run_iterations(loop, t);
    put_all(&q, (long[]){1}, 1);
    drain_log(&q);
    assert_string_equal(g_text, "C!cancel S=timeout@1 q:1");
    weft_future_unref(t);
    finish_queue(loop, &q);
}

static void put_cb(void *arg)
{
    assert_int_equal(weft_queue_put_nowait(arg, ITEM(9)), 0);
}

/* P-8 / S-TIMEOUT: the item is handed over in the iteration in which the
 * scope expires, before the task runs: the expiry cancels the woken getter,
 * and the item goes back to the queue. */
static void test_getter_timeout_scope_expires_after_handoff_returns_item(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    /* queued before the scope's timer: same deadline, runs first */
    assert_int_equal(weft_call_later(loop, 1.0, put_cb, &q, NULL), 0);
    weft_task *t = WEFT_SPAWN(loop, getter_scope, .q = &q, .timeout = 1);
    run_iterations(loop, t);
    drain_log(&q);
    assert_string_equal(g_text, "C!cancel S=timeout@1 q:9");
    weft_future_unref(t);
    finish_queue(loop, &q);
}

/* =============================================================================
 * Cancellation of putters (P-8, gh-83055): every interleaving
 * ========================================================================== */

/* P-8: a putter whose item was placed but who is cancelled before it runs
 * takes its item out again; the slot goes to the next putter. */
static void test_woken_putter_cancelled_gives_slot_to_next_putter(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    weft_task *p1 = spawn_putter(loop, &q, "P1", 1);
    go(spawn_putter(loop, &q, "P2", 2));
    step(loop);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0); /* places 1 */
    assert_int_equal(weft_task_cancel(p1), 0);          /* 1 out, 2 in */
    step(loop);
    drain_log(&q);
    assert_string_equal(g_text, "P1!cancel P2+ q:2");
    assert_int_equal(weft_queue_task_done(&q), 0); /* 0 and 2 were put: two */
    assert_int_equal(weft_queue_task_done(&q), 0);
    assert_int_equal(weft_queue_task_done(&q), WEFT_ESTATE);
    weft_future_unref(p1);
    finish_queue(loop, &q);
}

/* P-8: with no other putter the slot is simply free again. */
static void test_woken_putter_cancelled_frees_the_slot(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, log_dtor), 0);
    put_all(&q, (long[]){0}, 1);
    weft_task *p1 = spawn_putter(loop, &q, "P1", 1);
    step(loop);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    assert_int_equal(weft_queue_size(&q), 1);
    assert_int_equal(weft_task_cancel(p1), 0);
    assert_int_equal(weft_queue_size(&q), 0);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(5)), 0);
    step(loop);
    drain_log(&q);
    assert_string_equal(g_text, "P1!cancel q:5");
    weft_future_unref(p1);
    finish_queue(loop, &q);
}

/* P-8: the placed item is taken out of the middle of the queue (later items
 * placed for other putters stay in order). */
static void test_woken_putter_cancelled_item_removed_from_middle(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 3, NULL), 0);
    put_all(&q, (long[]){10, 11, 12}, 3);
    go(spawn_putter(loop, &q, "P1", 1));
    weft_task *p2 = spawn_putter(loop, &q, "P2", 2);
    go(spawn_putter(loop, &q, "P3", 3));
    go(spawn_putter(loop, &q, "P4", 4));
    step(loop);
    void *p;
    for (int i = 0; i < 3; i++) /* 10, 11, 12 out; 1, 2, 3 placed */
        assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    assert_int_equal(weft_task_cancel(p2), 0); /* 2 out, 4 placed at the back */
    step(loop);
    drain_log(&q);
    assert_string_equal(g_text, "P1+ P2!cancel P3+ P4+ q:1,3,4");
    weft_future_unref(p2);
    finish_queue(loop, &q);
}

/* P-8: same near the front of the ring (the shorter side moves). */
static void test_woken_putter_cancelled_item_removed_near_front(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 4, NULL), 0);
    put_all(&q, (long[]){10, 11, 12, 13}, 4);
    go(spawn_putter(loop, &q, "P1", 1));
    weft_task *p2 = spawn_putter(loop, &q, "P2", 2);
    go(spawn_putter(loop, &q, "P3", 3));
    go(spawn_putter(loop, &q, "P4", 4));
    step(loop);
    void *p;
    for (int i = 0; i < 4; i++)
        assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    assert_int_equal(weft_task_cancel(p2), 0);
    step(loop);
    drain_log(&q);
    assert_string_equal(g_text, "P1+ P2!cancel P3+ P4+ q:1,3,4");
    weft_future_unref(p2);
    finish_queue(loop, &q);
}

/* P-8: items put behind a placed put's item (its putter not run yet) and
 * got around it keep their order, and the placed item can still be taken
 * out by the cancellation (the inline get stops in front of it). */
static void test_woken_putter_cancelled_items_put_and_got_around_it(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 4, NULL), 0);
    put_all(&q, (long[]){10, 11, 12, 13}, 4);
    weft_task *p1 = spawn_putter(loop, &q, "P1", 1);
    step(loop);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0); /* 1 placed at the back */
    assert_int_equal(VAL(p), 10);
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    assert_int_equal(VAL(p), 11);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(20)), 0); /* behind 1 */
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(21)), WEFT_EFULL);
    for (long want = 12; want <= 13; want++) {
        assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
        assert_int_equal(VAL(p), want);
    }
    assert_int_equal(weft_task_cancel(p1), 0); /* 1 out: 20 left */
    step(loop);
    assert_int_equal(weft_queue_unfinished(&q), 5);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(22)), 0);
    drain_log(&q);
    assert_string_equal(g_text, "P1!cancel q:20,22");
    weft_future_unref(p1);
    finish_queue(loop, &q);
}

/* S-QUEUE-2 / P-8: a put taken back by its cancellation no longer counts as
 * unfinished: join is released if it was the last one. */
static void test_woken_putter_cancelled_undoes_its_unfinished_count(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    weft_task *p1 = spawn_putter(loop, &q, "P1", 1);
    go(WEFT_SPAWN(loop, joiner, .q = &q, .name = "J1"));
    step(loop);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0); /* places 1 */
    assert_int_equal(weft_queue_task_done(&q), 0);      /* 0 done; 1 unfinished */
    assert_int_equal(weft_task_cancel(p1), 0);
    step(loop);
    assert_string_equal(g_text, "P1!cancel J1+");
    weft_future_unref(p1);
    finish_queue(loop, &q);
}

/* P-8: if the bookkeeping for a placed item cannot be allocated, the put is
 * final at once (a later cancellation does not take it back): nothing is
 * lost either way. */
static void test_placed_put_without_memory_for_bookkeeping_is_final(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    weft_task *p1 = spawn_putter(loop, &q, "P1", 1);
    step(loop);
    void *p;
    alloc_fail_all(true);
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    alloc_fail_all(false);
    assert_int_equal(weft_task_cancel(p1), 0);
    step(loop);
    drain_log(&q);
    assert_string_equal(g_text, "P1+ q:1");
    weft_future_unref(p1);
    finish_queue(loop, &q);
}

/* A task spawned into caller storage is never referenced by the queue (the
 * caller may reuse the storage as soon as the task is done), so its placed
 * put is final at once: a cancellation before it runs does not undo it. */
static void test_placed_put_of_task_in_caller_storage_is_final(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    static WEFT_TASK_STORAGE(putter) mem;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    weft_task *p1 = WEFT_SPAWN_INTO(loop, &mem, putter, .q = &q, .name = "P1", .item = 1);
    assert_non_null(p1);
    step(loop);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    assert_int_equal(weft_task_cancel(p1), 0);
    step(loop);
    drain_log(&q);
    assert_string_equal(g_text, "P1+ q:1");
    weft_future_unref(p1);
    finish_queue(loop, &q);
}

/* P-8, LIFO and priority: the placed item is found and removed there too. */
static void test_woken_putter_cancelled_lifo_and_priority(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue l, pq;
    assert_int_equal(weft_lifo_queue_init(&l, loop, 2, NULL), 0);
    assert_int_equal(weft_priority_queue_init(&pq, loop, 2, by_tens, NULL, NULL), 0);
    put_all(&l, (long[]){1, 2}, 2);
    put_all(&pq, (long[]){10, 30}, 2);
    weft_task *a = spawn_putter(loop, &l, "A", 3);
    go(spawn_putter(loop, &l, "B", 4));
    weft_task *c = spawn_putter(loop, &pq, "C", 20);
    go(spawn_putter(loop, &pq, "D", 21));
    step(loop);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&l, &p), 0); /* 2 out, 3 placed on top */
    assert_int_equal(VAL(p), 2);
    assert_int_equal(weft_queue_get_nowait(&pq, &p), 0); /* 10 out, 20 placed */
    assert_int_equal(VAL(p), 10);
    assert_int_equal(weft_task_cancel(a), 0); /* 3 out, 4 on top */
    assert_int_equal(weft_task_cancel(c), 0); /* 20 out, 21 placed */
    step(loop);
    drain_log(&l);
    drain_log(&pq);
    assert_string_equal(g_text, "A!cancel C!cancel B+ D+ q:4,1 q:21,30");
    weft_future_unref(a);
    weft_future_unref(c);
    weft_queue_destroy(&l);
    finish_queue(loop, &pq);
}

/* P-8: once the placed item has been got, it cannot be taken back: the put
 * is final (the task sees success; its cancellation arrives at its next
 * suspension, here: none, so it ends cancelled).  Nothing is duplicated and
 * the item's ownership is never ambiguous. */
static void test_woken_putter_cancelled_after_item_was_got_put_stands(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    weft_task *p1 = spawn_putter(loop, &q, "P1", 1);
    step(loop);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0); /* places 1 */
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0); /* gets 1 */
    assert_int_equal(VAL(p), 1);
    assert_int_equal(weft_task_cancel(p1), 0);
    step(loop);
    assert_string_equal(g_text, "P1+");
    assert_true(weft_future_cancelled(p1)); /* the task, not the put */
    assert_int_equal(weft_queue_size(&q), 0);
    weft_future_unref(p1);
    finish_queue(loop, &q);
}

/* P-8 / S-QUEUE-5: same when the placed item was dropped by an immediate
 * shutdown: the queue owned it (destructor called once), the put stands. */
static void test_woken_putter_cancelled_after_immediate_shutdown_put_stands(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, log_dtor), 0);
    put_all(&q, (long[]){0}, 1);
    weft_task *p1 = spawn_putter(loop, &q, "P1", 1);
    step(loop);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    assert_int_equal(weft_queue_shutdown(&q, true), 0);
    assert_int_equal(weft_task_cancel(p1), 0);
    step(loop);
    assert_string_equal(g_text, "~1 P1+");
    weft_future_unref(p1);
    finish_queue(loop, &q);
}

/* P-8: cancelled first, then a slot frees in the same iteration: the putter
 * has left the line, its item never enters. */
static void test_putter_cancelled_then_slot_freed_same_iteration(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    weft_task *p1 = spawn_putter(loop, &q, "P1", 1);
    go(spawn_putter(loop, &q, "P2", 2));
    step(loop);
    assert_int_equal(weft_task_cancel(p1), 0);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0); /* places 2 */
    step(loop);
    drain_log(&q);
    assert_string_equal(g_text, "P1!cancel P2+ q:2");
    weft_future_unref(p1);
    finish_queue(loop, &q);
}

/* P-8: a putter cancelled while waiting leaves the line. */
static void test_putter_cancelled_while_waiting_leaves_the_line(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    weft_task *p1 = spawn_putter(loop, &q, "P1", 1);
    step(loop);
    assert_int_equal(weft_task_cancel(p1), 0);
    step(loop);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    assert_int_equal(weft_queue_size(&q), 0);
    assert_string_equal(g_text, "P1!cancel");
    weft_future_unref(p1);
    finish_queue(loop, &q);
}

/* putter_wait_for: put through weft_wait_for(timeout). */
struct putter_wait_for {
    WEFT_FRAME(int);
    weft_queue *q;
    double timeout;
    long item;
    int err;
    weft_waiter w;
};

WEFT_ASYNC(putter_wait_for)
{
    WEFT_BEGIN(self);
    WEFT_TRY_AWAIT(
        self, weft_wait_for(weft_queue_put(self->q, ITEM(self->item), &self->w), self->timeout),
        self->err);
    logf_("W%s@%.0f", self->err ? errname(self->err) : "+", weft_loop_time(weft_task_loop(task)));
    WEFT_END;
}

/* P-8 / S-WAITFOR: a put that times out while queued fails with -ETIMEDOUT;
 * its item never enters and the queue is unchanged. */
static void test_putter_wait_for_timeout_item_never_enters(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    weft_task *t = WEFT_SPAWN(loop, putter_wait_for, .q = &q, .timeout = 3, .item = 1);
    run_iterations(loop, t);
    drain_log(&q);
    assert_string_equal(g_text, "Wtimeout@3 q:0");
    weft_future_unref(t);
    finish_queue(loop, &q);
}

/* P-8 / S-WAITFOR, regression: weft_wait_for around a put on a full queue;
 * a slot frees (the item is placed) and a consumer gets the item; then the
 * task is cancelled before it resumes.  The put was final, so the task sees
 * it succeed (its TRY_AWAIT error is 0: -ECANCELED would say "the item is
 * still yours" about an item already delivered), the item is delivered
 * exactly once, and the cancellation still ends the task (sticky). */
static void test_wait_for_put_got_before_cancel_is_success_and_task_ends_cancelled(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, log_dtor), 0);
    put_all(&q, (long[]){0}, 1);
    weft_task *t =
        WEFT_SPAWN(loop, putter_wait_for, .q = &q, .timeout = 10, .item = 1, .err = 12345);
    assert_non_null(t);
    step(loop); /* blocks: the queue is full */
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0); /* 0 out, 1 placed */
    assert_int_equal(VAL(p), 0);
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0); /* 1 got: the put is final */
    assert_int_equal(VAL(p), 1);
    assert_int_equal(weft_task_cancel(t), 0); /* before the task resumed */
    run_iterations(loop, t);
    assert_string_equal(g_text, "W+@0"); /* err 0: the put succeeded */
    assert_true(weft_future_cancelled(t));
    assert_int_equal(weft_queue_size(&q), 0);
    assert_int_equal(weft_queue_get_nowait(&q, &p), WEFT_EEMPTY);
    weft_future_unref(t);
    finish_queue(loop, &q);
    assert_string_equal(g_text, "W+@0"); /* and the queue destroyed no copy */
}

/* putter_scope: a child putter coroutine under a timeout scope. */
struct putter_scope {
    WEFT_FRAME(int);
    weft_queue *q;
    double timeout;
    int err;
    weft_timeout to;
    struct putter child;
};

WEFT_ASYNC(putter_scope)
{
    WEFT_BEGIN(self);
    WEFT_TRY_TIMEOUT_CALL(self, self->err, &self->to, self->timeout, putter, &self->child,
                          .q = self->q, .name = "C", .item = 1);
    logf_("S=%s@%.0f", self->err ? errname(self->err) : "ok", weft_loop_time(weft_task_loop(task)));
    WEFT_END;
}

/* P-8 / S-TIMEOUT: a put in a child coroutine under a timeout scope that
 * expires while queued: -ETIMEDOUT, item never enters. */
static void test_putter_timeout_scope_expires_while_queued(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    weft_task *t = WEFT_SPAWN(loop, putter_scope, .q = &q, .timeout = 1);
    run_iterations(loop, t);
    drain_log(&q);
    assert_string_equal(g_text, "C!cancel S=timeout@1 q:0");
    weft_future_unref(t);
    finish_queue(loop, &q);
}

static void get_cb(void *arg)
{
    void *p;
    assert_int_equal(weft_queue_get_nowait(arg, &p), 0);
    logf_("got:%ld", VAL(p));
}

/* P-8 / S-TIMEOUT: the slot frees in the iteration in which the scope
 * expires, before the task runs: the expiry takes the placed item out. */
static void test_putter_timeout_scope_expires_after_placement_takes_item_out(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    assert_int_equal(weft_call_later(loop, 1.0, get_cb, &q, NULL), 0);
    weft_task *t = WEFT_SPAWN(loop, putter_scope, .q = &q, .timeout = 1);
    run_iterations(loop, t);
    drain_log(&q);
    assert_string_equal(g_text, "got:0 C!cancel S=timeout@1 q:");
    weft_future_unref(t);
    finish_queue(loop, &q);
}

/* =============================================================================
 * Memory
 * ========================================================================== */

struct producer {
    WEFT_FRAME(int);
    weft_queue *q;
    long n, i;
    weft_waiter w;
};

WEFT_ASYNC(producer)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < self->n; self->i++)
        WEFT_AWAIT(self, weft_queue_put(self->q, ITEM(self->i), &self->w));
    WEFT_END;
}

static long g_consumed, g_bad;

struct consumer {
    WEFT_FRAME(int);
    weft_queue *q;
    long n, i;
    weft_waiter w;
};

WEFT_ASYNC(consumer)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < self->n; self->i++) {
        WEFT_AWAIT(self, weft_queue_get(self->q, &self->w));
        if (VAL(WEFT_RESULT(self).p) != self->i)
            g_bad++;
        g_consumed++;
    }
    WEFT_END;
}

/* The waiter node is in the frame: after warm-up, 10000 blocking put/get
 * cycles through a bounded queue allocate nothing. */
static void test_blocking_put_get_allocate_nothing(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    g_consumed = g_bad = 0;
    weft_task *p = WEFT_SPAWN(loop, producer, .q = &q, .n = 10100);
    weft_task *c = WEFT_SPAWN(loop, consumer, .q = &q, .n = 10100);
    while (g_consumed < 100)
        step(loop);
    long calls = alloc_calls();
    uint64_t steps0, steps1;
    weft_loop_stats st;
    weft_loop_get_stats(loop, &st);
    steps0 = st.callbacks;
    while (!weft_future_done(c) || !weft_future_done(p))
        step(loop);
    weft_loop_get_stats(loop, &st);
    steps1 = st.callbacks;
    assert_int_equal(alloc_calls() - calls, 0);
    assert_int_equal(g_bad, 0);
    assert_true(steps1 - steps0 >= 6000); /* they did block, every other item or so */
    weft_future_unref(p);
    weft_future_unref(c);
    finish_queue(loop, &q);
}

/* An unbounded queue that cannot grow fails the put with -ENOMEM and keeps
 * everything it had. */
static void test_unbounded_growth_failure_is_enomem_nothing_lost(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    weft_waiter w = {0};
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    long i = 0;
    for (; i < 8; i++) /* the first allocation: 8 slots */
        assert_int_equal(weft_queue_put_nowait(&q, ITEM(i)), 0);
    alloc_fail_all(true);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(i)), -ENOMEM);
    weft_future *f = weft_queue_put(&q, ITEM(i), &w);
    assert_int_equal(weft_future_error(f), -ENOMEM);
    weft_future_unref(f);
    alloc_fail_all(false);
    assert_int_equal(weft_queue_size(&q), 8);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(i)), 0);
    drain_log(&q);
    assert_string_equal(g_text, "q:0,1,2,3,4,5,6,7,8");
    finish_queue(loop, &q);
}

/* Growth of a FIFO and of a priority queue (items and put sequences: two
 * allocations, the second failing after the first succeeded), each
 * allocation failed in turn: -ENOMEM, nothing lost or reordered, and the
 * put succeeds once nothing fails. */
static int cmp_long(const void *a, const void *b, void *ud)
{
    (void)ud;
    long x = (long)(intptr_t)a, y = (long)(intptr_t)b;
    return (x > y) - (x < y);
}

static void test_queue_growth_survives_every_allocation_failure(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    wt_warm(loop);
    for (int prio = 0; prio < 2; prio++) {
        weft_queue q;
        if (prio)
            assert_int_equal(weft_priority_queue_init(&q, loop, 0, cmp_long, NULL, NULL), 0);
        else
            assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
        long i = 0;
        for (; i < 8; i++)
            assert_int_equal(weft_queue_put_nowait(&q, ITEM(i)), 0);
        int failures = 0;
        for (long k = 1;; k++) {
            alloc_fail_at(alloc_calls() + k);
            int rc = weft_queue_put_nowait(&q, ITEM(i));
            alloc_fail_at(0);
            if (rc == 0)
                break;
            failures++;
            assert_int_equal(rc, -ENOMEM);
            assert_int_equal(weft_queue_size(&q), 8);
        }
        assert_int_equal(failures, prio ? 2 : 1); /* items, then (priority) sequences */
        drain_log(&q);
        assert_string_equal(g_text, "q:0,1,2,3,4,5,6,7,8");
        g_text[0] = '\0';
        weft_queue_destroy(&q);
    }
    finish(loop);
}

/* =============================================================================
 * WEFT_QUEUE_PUT / WEFT_QUEUE_GET
 * ========================================================================== */

/* Completed loop iterations, for bodies (no assert: 0 on error). */
static uint64_t iterations_now(weft_loop *loop)
{
    weft_loop_stats s;
    return weft_loop_get_stats(loop, &s) == 0 ? s.iterations : 0;
}

/* qmacro: runs ops in order, 'p': WEFT_QUEUE_PUT of the next item (from
 * `next` up), 'g': WEFT_QUEUE_GET; logs "N>5" (put 5), "N:5" (got 5), with
 * "*" appended when the operation suspended (the loop iterated meanwhile),
 * and "N!err" if the task ends with an error. */
struct qmacro {
    WEFT_FRAME(int);
    weft_queue *q;
    const char *name, *ops;
    long next;
    size_t k;
    uint64_t it;
    void *item;
    weft_waiter w;
};

WEFT_ASYNC(qmacro)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    for (self->k = 0; self->ops[self->k]; self->k++) {
        self->it = iterations_now(loop);
        if (self->ops[self->k] == 'p') {
            WEFT_QUEUE_PUT(self, self->q, ITEM(self->next), &self->w);
            logf_("%s>%ld%s", self->name, self->next, iterations_now(loop) != self->it ? "*" : "");
            self->next++;
        } else {
            WEFT_QUEUE_GET(self, self->q, &self->w, self->item);
            logf_("%s:%ld%s", self->name, VAL(self->item),
                  iterations_now(loop) != self->it ? "*" : "");
        }
    }
    WEFT_FINALLY;
    if (self->co.err)
        logf_("%s!%s", self->name, errname(self->co.err));
    WEFT_END;
}

static weft_task *spawn_qmacro(weft_loop *loop, weft_queue *q, const char *name, const char *ops,
                               long next)
{
    weft_task *t = WEFT_SPAWN(loop, qmacro, .q = q, .name = name, .ops = ops, .next = next);
    assert_non_null(t);
    return t;
}

/* queue.h WEFT_QUEUE_PUT / WEFT_QUEUE_GET "suspends only when the queue is
 * full / empty": with room and items, puts and gets complete within the
 * task's one step (the loop iteration count does not move). */
static void test_queue_macros_complete_without_suspending_when_possible(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 2, NULL), 0);
    put_all(&q, (long[]){1}, 1);
    weft_task *t = spawn_qmacro(loop, &q, "M", "gppgg", 2);
    uint64_t it = iterations(loop);
    step(loop);
    assert_true(weft_future_done(t));
    assert_int_equal(iterations(loop) - it, 1);
    assert_string_equal(g_text, "M:1 M>2 M>3 M:2 M:3");
    assert_int_equal(weft_queue_size(&q), 0);
    weft_future_unref(t);
    finish_queue(loop, &q);
}

/* S-QUEUE-1 through WEFT_QUEUE_GET: getters suspend on an empty queue and
 * are served in FIFO order. */
static void test_queue_get_macro_waits_fifo_when_empty(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    go(spawn_qmacro(loop, &q, "G1", "g", 0));
    go(spawn_qmacro(loop, &q, "G2", "g", 0));
    go(spawn_qmacro(loop, &q, "G3", "g", 0));
    step(loop);
    assert_string_equal(g_text, "");
    put_all(&q, (long[]){1, 2, 3}, 3);
    assert_int_equal(weft_queue_size(&q), 0); /* handed straight over */
    step(loop);
    assert_string_equal(g_text, "G1:1* G2:2* G3:3*");
    finish_queue(loop, &q);
}

/* S-QUEUE-1 through WEFT_QUEUE_PUT: putters suspend on a full queue; their
 * items enter and they resume in FIFO order. */
static void test_queue_put_macro_waits_fifo_when_full(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    put_all(&q, (long[]){0}, 1);
    go(spawn_qmacro(loop, &q, "P1", "p", 1));
    go(spawn_qmacro(loop, &q, "P2", "p", 2));
    go(spawn_qmacro(loop, &q, "P3", "p", 3));
    step(loop);
    assert_string_equal(g_text, "");
    drain_log(&q); /* each get places the next putter's item */
    step(loop);
    assert_string_equal(g_text, "q:0,1,2,3 P1>1* P2>2* P3>3*");
    finish_queue(loop, &q);
}

/* S-QUEUE-5 through the macros: WEFT_ESHUTDOWN propagates as from
 * WEFT_AWAIT, whether the queue was shut down before the call (put; get
 * once drained) or while the task waited (put and get). */
static void test_queue_macros_propagate_shutdown(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q, e;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    assert_int_equal(weft_queue_init(&e, loop, 0, NULL), 0);
    put_all(&q, (long[]){1}, 1);
    weft_task *p1 = spawn_qmacro(loop, &q, "P1", "p", 2); /* waits: full */
    weft_task *g1 = spawn_qmacro(loop, &e, "G1", "g", 0); /* waits: empty */
    step(loop);
    assert_int_equal(weft_queue_shutdown(&q, false), 0);
    assert_int_equal(weft_queue_shutdown(&e, false), 0);
    step(loop);
    assert_string_equal(g_text, "P1!shutdown G1!shutdown");
    weft_task *p2 = spawn_qmacro(loop, &q, "P2", "p", 3);  /* after shutdown */
    weft_task *g2 = spawn_qmacro(loop, &q, "G2", "gg", 0); /* drains 1, then fails */
    step(loop);
    assert_string_equal(g_text, "P1!shutdown G1!shutdown P2!shutdown G2:1 G2!shutdown");
    weft_task *all[] = {p1, g1, p2, g2};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(weft_future_error(all[i]), WEFT_ESHUTDOWN);
        weft_future_unref(all[i]);
    }
    weft_queue_destroy(&e);
    finish_queue(loop, &q);
}

/* A worker that drains q with WEFT_TRY_QUEUE_GET and ends quietly (value:
 * the sum of its items) when the queue is shut down and empty. */
struct try_worker {
    WEFT_FRAME(long);
    weft_queue *q;
    weft_waiter w;
    void *item;
    int err;
    long sum, n;
};

WEFT_ASYNC(try_worker)
{
    WEFT_BEGIN(self);
    for (;;) {
        WEFT_TRY_QUEUE_GET(self, self->q, &self->w, self->item, self->err);
        if (self->err)
            break;
        self->sum += (long)(intptr_t)self->item;
        self->n++;
    }
    WEFT_RETURN(self, self->err == WEFT_ESHUTDOWN ? self->sum : -1);
    WEFT_END;
}

/* WEFT_TRY_QUEUE_GET: items already there (fast path) and items that
 * arrive while it waits are got; a graceful shutdown lets it drain what is
 * left and then end without an error; cancellation still unwinds. */
static void test_try_queue_get_ends_quietly_at_shutdown(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    put_all(&q, (long[]){1, 2}, 2);
    weft_task *t = WEFT_SPAWN(loop, try_worker, .q = &q);
    step(loop); /* gets 1 and 2 at once, then waits */
    assert_false(weft_future_done(t));
    put_all(&q, (long[]){4, 8}, 2);
    step(loop);
    put_all(&q, (long[]){16}, 1);
    assert_int_equal(weft_queue_shutdown(&q, false), 0); /* graceful: 16 still got */
    assert_int_equal(run(loop, t), 0);
    weft_value v = {0};
    assert_int_equal(weft_future_result(t, &v), 0);
    assert_int_equal(v.i, 31);
    weft_future_unref(t);
    weft_queue c;
    assert_int_equal(weft_queue_init(&c, loop, 0, NULL), 0);
    weft_task *u = WEFT_SPAWN(loop, try_worker, .q = &c);
    step(loop);
    assert_int_equal(weft_task_cancel(u), 0);
    assert_int_equal(run(loop, u), -ECANCELED);
    weft_future_unref(u);
    weft_queue_destroy(&c);
    finish_queue(loop, &q);
}

static long g_fast, g_slow; /* WEFT_QUEUE_GETs that did not / did suspend */

struct macro_producer {
    WEFT_FRAME(int);
    weft_queue *q;
    long n, i;
    weft_waiter w;
};

WEFT_ASYNC(macro_producer)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < self->n; self->i++)
        WEFT_QUEUE_PUT(self, self->q, ITEM(self->i), &self->w);
    WEFT_END;
}

struct macro_consumer {
    WEFT_FRAME(int);
    weft_queue *q;
    long n, i;
    uint64_t it;
    void *item;
    weft_waiter w;
};

WEFT_ASYNC(macro_consumer)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < self->n; self->i++) {
        self->it = iterations_now(loop);
        WEFT_QUEUE_GET(self, self->q, &self->w, self->item);
        if (iterations_now(loop) == self->it)
            g_fast++;
        else
            g_slow++;
        if (VAL(self->item) != self->i)
            g_bad++;
        g_consumed++;
    }
    WEFT_END;
}

/* WEFT_QUEUE_PUT / WEFT_QUEUE_GET allocate nothing: after warm-up, 10000
 * items through a queue of 2, taking both the immediate and the waiting
 * path, make no allocation call. */
static void test_queue_macros_allocate_nothing(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 2, NULL), 0);
    g_consumed = g_bad = g_fast = g_slow = 0;
    weft_task *c = WEFT_SPAWN(loop, macro_consumer, .q = &q, .n = 10100);
    weft_task *p = WEFT_SPAWN(loop, macro_producer, .q = &q, .n = 10100);
    assert_non_null(c);
    assert_non_null(p);
    while (g_consumed < 100)
        step(loop);
    long calls = alloc_calls();
    long fast = g_fast, slow = g_slow;
    while (!weft_future_done(c) || !weft_future_done(p))
        step(loop);
    assert_int_equal(alloc_calls() - calls, 0);
    assert_int_equal(g_consumed, 10100);
    assert_int_equal(g_bad, 0);
    assert_true(g_fast > fast); /* both paths were taken */
    assert_true(g_slow > slow);
    assert_int_equal(weft_future_error(c), 0);
    assert_int_equal(weft_future_error(p), 0);
    weft_future_unref(p);
    weft_future_unref(c);
    finish_queue(loop, &q);
}

/* =============================================================================
 * Model check: random interleavings, nothing lost, nothing duplicated
 * ========================================================================== */

#define MC_ITEMS 4096

static struct {
    int put_ok[MC_ITEMS];   /* put succeeded (task or nowait) */
    int put_fail[MC_ITEMS]; /* put failed: the item stayed the putter's */
    int got[MC_ITEMS];      /* times a getter received it */
    int dropped[MC_ITEMS];  /* times the destructor destroyed it */
    long last_got;          /* FIFO, no cancellation: order check */
} mc;

static void mc_dtor(void *p)
{
    mc.dropped[VAL(p)]++;
}

struct mc_put {
    WEFT_FRAME(int);
    weft_queue *q;
    long item;
    weft_waiter w;
};

WEFT_ASYNC(mc_put)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_queue_put(self->q, ITEM(self->item), &self->w));
    mc.put_ok[self->item]++;
    WEFT_FINALLY;
    if (self->co.err)
        mc.put_fail[self->item]++;
    WEFT_END;
}

struct mc_get {
    WEFT_FRAME(int);
    weft_queue *q;
    weft_waiter w;
};

WEFT_ASYNC(mc_get)
{
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, weft_queue_get(self->q, &self->w));
    mc.got[VAL(WEFT_RESULT(self).p)]++;
    WEFT_END;
}

/* The same under a timeout scope (the expiry cancels at any point). */
struct mc_put_scope {
    WEFT_FRAME(int);
    weft_queue *q;
    long item;
    double timeout;
    int err;
    weft_timeout to;
    struct mc_put child;
};

WEFT_ASYNC(mc_put_scope)
{
    WEFT_BEGIN(self);
    WEFT_TRY_TIMEOUT_CALL(self, self->err, &self->to, self->timeout, mc_put, &self->child,
                          .q = self->q, .item = self->item);
    WEFT_FINALLY;
    if (!mc.put_ok[self->item] && !mc.put_fail[self->item])
        mc.put_fail[self->item]++; /* cancelled before the child ran */
    WEFT_END;
}

struct mc_get_scope {
    WEFT_FRAME(int);
    weft_queue *q;
    double timeout;
    int err;
    weft_timeout to;
    struct mc_get child;
};

WEFT_ASYNC(mc_get_scope)
{
    WEFT_BEGIN(self);
    WEFT_TRY_TIMEOUT_CALL(self, self->err, &self->to, self->timeout, mc_get, &self->child,
                          .q = self->q);
    WEFT_END;
}

static void nothing(void *arg)
{
    (void)arg;
}

static unsigned mc_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

static void model_run(weft_queue_kind kind, size_t maxsize, unsigned seed)
{
    weft_loop *loop = vloop();
    weft_queue q;
    memset(&mc, 0, sizeof mc);
    if (kind == WEFT_QUEUE_FIFO)
        assert_int_equal(weft_queue_init(&q, loop, maxsize, mc_dtor), 0);
    else if (kind == WEFT_QUEUE_LIFO)
        assert_int_equal(weft_lifo_queue_init(&q, loop, maxsize, mc_dtor), 0);
    else
        assert_int_equal(weft_priority_queue_init(&q, loop, maxsize, by_tens, NULL, mc_dtor), 0);
    weft_task *tasks[256];
    int ntasks = 0;
    long next = 0;
    unsigned s = seed;
    for (int op = 0; op < 400 && next < MC_ITEMS - 1; op++) {
        unsigned r = mc_rand(&s) % 100;
        void *p;
        double timeout = 0.25 * (1 + mc_rand(&s) % 4);
        if (r < 14 && ntasks < 256) {
            tasks[ntasks++] = WEFT_SPAWN(loop, mc_put, .q = &q, .item = next++);
        } else if (r < 20 && ntasks < 256) {
            tasks[ntasks++] =
                WEFT_SPAWN(loop, mc_put_scope, .q = &q, .item = next++, .timeout = timeout);
        } else if (r < 34 && ntasks < 256) {
            tasks[ntasks++] = WEFT_SPAWN(loop, mc_get, .q = &q);
        } else if (r < 40 && ntasks < 256) {
            tasks[ntasks++] = WEFT_SPAWN(loop, mc_get_scope, .q = &q, .timeout = timeout);
        } else if (r < 50) {
            long it = next++;
            int err = weft_queue_put_nowait(&q, ITEM(it));
            if (err)
                mc.put_fail[it]++;
            else
                mc.put_ok[it]++;
        } else if (r < 60) {
            if (weft_queue_get_nowait(&q, &p) == 0)
                mc.got[VAL(p)]++;
        } else if (r < 75 && ntasks) {
            weft_task_cancel(tasks[mc_rand(&s) % (unsigned)ntasks]);
        } else if (r < 76) {
            weft_queue_shutdown(&q, mc_rand(&s) % 2);
        } else if (r < 82) {
            /* let virtual time pass: timeout scopes expire */
            assert_int_equal(weft_call_later(loop, 0.5, nothing, NULL, NULL), 0);
            assert_true(weft_loop_run_once(loop) >= 0);
        } else {
            step(loop);
        }
    }
    /* Cancel what still waits, let everything end, then destroy. */
    for (int i = 0; i < ntasks; i++)
        weft_task_cancel(tasks[i]);
    for (int i = 0; i < 10; i++)
        step(loop);
    weft_queue_destroy(&q);
    for (int i = 0; i < 10; i++)
        step(loop);
    for (int i = 0; i < ntasks; i++) {
        assert_true(weft_future_done(tasks[i]));
        weft_future_error(tasks[i]); /* observed: WEFT_ESHUTDOWN is expected */
        weft_future_unref(tasks[i]);
    }
    for (long i = 0; i < next; i++) {
        /* every item either entered (once) and left exactly once, or never
         * entered and was never seen */
        assert_int_equal(mc.put_ok[i] + mc.put_fail[i], 1);
        if (mc.put_ok[i])
            assert_int_equal(mc.got[i] + mc.dropped[i], 1);
        else
            assert_int_equal(mc.got[i] + mc.dropped[i], 0);
    }
    assert_int_equal(g_hook.count, 0);
    finish_queue(loop, NULL);
}

/* P-8 ("model-check the cancel-after-wake interleavings"): random mixes of
 * blocking and non-blocking puts and gets, some under timeout scopes,
 * cancellations and expiries at any point, shutdowns; every item put is got
 * or destroyed exactly once, every item whose put failed is never seen. */
static void test_model_random_interleavings_lose_and_duplicate_nothing(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 300; seed++) {
        model_run(WEFT_QUEUE_FIFO, 1 + seed % 3, seed);
        model_run(WEFT_QUEUE_LIFO, 1 + seed % 3, seed * 7);
        model_run(WEFT_QUEUE_PRIORITY, 1 + seed % 3, seed * 13);
        model_run(WEFT_QUEUE_FIFO, 0, seed * 17);
    }
}

/* =============================================================================
 * Registration
 * ========================================================================== */

/* =============================================================================
 * Regressions (issue 7): the fairness budget, other loops, waiter reuse
 * ========================================================================== */

/* A task that awaits many gets (or puts, or joins) which complete at once:
 * after 128 of them in one step the fairness budget makes it yield with
 * the last one done but not yet seen.  q2: a blocking get on another queue
 * first, with the same waiter. */
struct budget_user {
    WEFT_FRAME(int);
    weft_queue *q, *q2;
    int op; /* 0 get, 1 put, 2 join */
    int n, done;
    weft_waiter w;
};

WEFT_ASYNC(budget_user)
{
    WEFT_BEGIN(self);
    if (self->q2)
        WEFT_AWAIT(self, weft_queue_get(self->q2, &self->w));
    for (self->done = 0; self->done < self->n; self->done++) {
        if (self->op == 0)
            WEFT_AWAIT(self, weft_queue_get(self->q, &self->w));
        else if (self->op == 1)
            WEFT_AWAIT(self, weft_queue_put(self->q, ITEM(self->done), &self->w));
        else
            WEFT_AWAIT(self, weft_queue_join(self->q, &self->w));
    }
    WEFT_FINALLY;
    logf_("U!%s done=%d", errname(self->co.err), self->done);
    WEFT_END;
}

/* Defect: the fast path built a done waiter without its kind, so a task
 * cancelled while the budget parked it on that waiter called a NULL
 * function.  Now the 129th get, cancelled before the task saw it, gives
 * its item back to the front: nothing lost, nothing duplicated. */
static void test_budget_yield_on_fast_get_then_cancel_gives_item_back(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    for (long i = 0; i < 200; i++)
        assert_int_equal(weft_queue_put_nowait(&q, ITEM(i)), 0);
    weft_task *t = WEFT_SPAWN(loop, budget_user, .q = &q, .n = 200);
    step(loop); /* 128 gets, then the 129th yields with item 128 taken */
    assert_false(weft_future_done(t));
    assert_int_equal(weft_queue_size(&q), 71);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_string_equal(g_text, "U!cancel done=128");
    assert_int_equal(weft_queue_size(&q), 72);
    void *p;
    assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
    assert_int_equal(VAL(p), 128); /* back at the front */
    weft_future_unref(t);
    finish_queue(loop, &q);
}

/* Same, with the waiter used for a blocking get on another queue first:
 * the item goes back to the queue it came from, not to the other one. */
static void test_budget_yield_with_reused_waiter_returns_item_to_its_queue(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q, q2;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    assert_int_equal(weft_queue_init(&q2, loop, 0, NULL), 0);
    for (long i = 0; i < 200; i++)
        assert_int_equal(weft_queue_put_nowait(&q, ITEM(i)), 0);
    weft_task *t = WEFT_SPAWN(loop, budget_user, .q = &q, .q2 = &q2, .n = 200);
    step(loop); /* blocks on q2 */
    assert_int_equal(weft_queue_getters(&q2), 1);
    assert_int_equal(weft_queue_put_nowait(&q2, ITEM(999)), 0);
    step(loop); /* resumes with 999, then 128 fast gets from q and yields */
    assert_int_equal(weft_queue_size(&q), 71);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_int_equal(weft_queue_size(&q), 72);
    assert_int_equal(weft_queue_size(&q2), 0);
    weft_future_unref(t);
    weft_queue_destroy(&q2);
    finish_queue(loop, &q);
}

/* A put that completed at once is final: cancelled while the budget parked
 * the task on it, the task sees the put done, every item is in the queue
 * once, and the task still ends cancelled (sticky). */
static void test_budget_yield_on_fast_put_then_cancel_keeps_every_item_once(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    weft_task *t = WEFT_SPAWN(loop, budget_user, .q = &q, .op = 1, .n = 200);
    step(loop);
    assert_int_equal(weft_queue_size(&q), 129);
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_string_equal(g_text, "U!success done=200");
    assert_int_equal(weft_queue_size(&q), 200);
    for (long i = 0; i < 200; i++) {
        void *p;
        assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
        assert_int_equal(VAL(p), i);
    }
    weft_future_unref(t);
    finish_queue(loop, &q);
}

/* A join done at once, cancelled while the budget parked the task on it,
 * has nothing to give back: the task ends cancelled. */
static void test_budget_yield_on_fast_join_then_cancel(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    weft_task *t = WEFT_SPAWN(loop, budget_user, .q = &q, .op = 2, .n = 200);
    step(loop);
    assert_false(weft_future_done(t));
    assert_int_equal(weft_task_cancel(t), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_string_equal(g_text, "U!cancel done=128");
    weft_future_unref(t);
    finish_queue(loop, &q);
}

/* A get (put, join) from a task of another loop is refused (-EINVAL) and
 * leaves nothing queued (it used to leave a getter behind: a use-after-free
 * at the next put). */
struct other_loop_op {
    WEFT_FRAME(int);
    weft_queue *q;
    int op;
    weft_waiter w;
};

WEFT_ASYNC(other_loop_op)
{
    WEFT_BEGIN(self);
    if (self->op == 0)
        WEFT_AWAIT(self, weft_queue_get(self->q, &self->w));
    else if (self->op == 1)
        WEFT_AWAIT(self, weft_queue_put(self->q, ITEM(1), &self->w));
    else
        WEFT_AWAIT(self, weft_queue_join(self->q, &self->w));
    WEFT_END;
}

static void test_queue_ops_from_a_task_of_another_loop_are_refused(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_loop *other = new_vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 1, NULL), 0);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(7)), 0); /* full: a put would wait */
    static const int ops[] = {1, 0, 2}; /* put (full), get (then empty), join (unfinished) */
    for (int k = 0; k < 3; k++) {
        if (ops[k] == 0) {
            void *p;
            assert_int_equal(weft_queue_get_nowait(&q, &p), 0);
        }
        weft_task *t = WEFT_SPAWN(other, other_loop_op, .q = &q, .op = ops[k]);
        assert_int_equal(run(other, t), -EINVAL);
        weft_future_unref(t);
        assert_int_equal(weft_queue_getters(&q) + weft_queue_putters(&q), 0);
    }
    assert_int_equal(weft_queue_unfinished(&q), 1);
    assert_int_equal(weft_loop_destroy(other), 0);
    finish_queue(loop, &q);
}

/* Starting an operation with a waiter that is still queued for another is
 * refused (WEFT_ESTATE) and changes nothing (it used to re-initialise a
 * linked node: a NULL dereference at the next release). */
static void test_reusing_a_queued_waiter_is_refused(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    weft_waiter w = {0};
    weft_future *f = weft_queue_get(&q, &w); /* empty: queued */
    assert_non_null(f);
    assert_false(weft_future_done(f));
    assert_null(weft_queue_get(&q, &w));
    assert_int_equal(weft_last_error(), WEFT_ESTATE);
    assert_null(weft_queue_join(&q, &w));
    assert_int_equal(weft_queue_getters(&q), 1);
    assert_int_equal(weft_queue_put_nowait(&q, ITEM(3)), 0); /* served */
    assert_int_equal(weft_future_result(f, NULL), 0);
    weft_future_unref(f);
    assert_int_equal(weft_queue_unfinished(&q), 1);
    assert_int_equal(weft_queue_task_done(&q), 0);
    assert_int_equal(weft_queue_unfinished(&q), 0);
    finish_queue(loop, &q);
}

/* A waiter's future is completed by its queue only: weft_future_set_* and
 * cancel of a served waiter are refused (WEFT_ESTATE). */
static void test_waiter_futures_refuse_completion_by_users(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_queue q;
    assert_int_equal(weft_queue_init(&q, loop, 0, NULL), 0);
    weft_waiter w = {0};
    weft_future *f = weft_queue_get(&q, &w);
    assert_int_equal(weft_future_set_int(f, 1), WEFT_ESTATE);
    assert_int_equal(weft_future_set_error(f, -EIO), WEFT_ESTATE);
    assert_int_equal(weft_queue_getters(&q), 1);
    assert_int_equal(weft_future_cancel(f), 0); /* cancel withdraws it */
    assert_int_equal(weft_queue_getters(&q), 0);
    assert_true(weft_future_cancelled(f));
    weft_future_unref(f);
    finish_queue(loop, &q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* order and capacity */
        T(test_fifo_returns_items_in_put_order),
        T(test_lifo_returns_newest_first),
        T(test_priority_smallest_first_ties_in_put_order),
        T(test_priority_stable_under_many_ties),
        T(test_maxsize_size_empty_full),
        T(test_put_nowait_full_is_efull),
        T(test_get_nowait_empty_is_eempty),
        T(test_null_arguments_are_einval),
        T(test_put_and_get_with_room_complete_at_once),
        /* blocking and hand-off */
        T(test_getters_block_and_resume_fifo),
        T(test_putters_block_and_resume_fifo),
        T(test_put_hands_item_to_woken_getter_nobody_can_steal_it),
        T(test_woken_putter_keeps_its_place_gh83055),
        /* task_done / join */
        T(test_join_done_at_once_when_nothing_unfinished),
        T(test_join_waits_until_every_item_is_done),
        T(test_task_done_too_many_times_is_estate),
        T(test_joiner_cancelled_while_waiting_leaves),
        /* shutdown and destroy */
        T(test_shutdown_graceful_fails_puts_and_drains_gets),
        T(test_try_queue_get_ends_quietly_at_shutdown),
        T(test_shutdown_wakes_blocked_getters),
        T(test_shutdown_immediate_drops_items_and_releases_join),
        T(test_shutdown_immediate_wakes_putters_without_dropping_their_items),
        T(test_destroy_destroys_leftovers_and_fails_waiters),
        /* loop closed with waiters in frames */
        T(test_loop_close_unlinks_waiting_getter_from_queue),
        T(test_loop_destroy_unlinks_waiting_getter_from_queue),
        T(test_loop_close_returns_item_handed_to_getter_that_never_ran),
        /* getters cancelled */
        T(test_woken_getter_cancelled_passes_item_to_next_getter),
        T(test_woken_getter_cancelled_returns_item_to_fifo_front),
        T(test_woken_getter_cancelled_returns_item_to_lifo_bottom),
        T(test_woken_getter_cancelled_reinserts_by_priority),
        T(test_woken_getter_cancelled_without_memory_reports_and_destroys),
        T(test_woken_getter_cancelled_after_immediate_shutdown_drops_item),
        T(test_getter_cancelled_then_put_same_iteration),
        T(test_getter_cancelled_while_waiting_leaves_the_line),
        T(test_getter_wait_for_timeout_loses_nothing),
        T(test_getter_wait_for_gets_item_before_timeout),
        T(test_getter_timeout_scope_expires_while_queued),
        T(test_getter_timeout_scope_expires_after_handoff_returns_item),
        /* putters cancelled */
        T(test_woken_putter_cancelled_gives_slot_to_next_putter),
        T(test_woken_putter_cancelled_frees_the_slot),
        T(test_woken_putter_cancelled_item_removed_from_middle),
        T(test_woken_putter_cancelled_item_removed_near_front),
        T(test_woken_putter_cancelled_items_put_and_got_around_it),
        T(test_woken_putter_cancelled_undoes_its_unfinished_count),
        T(test_placed_put_without_memory_for_bookkeeping_is_final),
        T(test_placed_put_of_task_in_caller_storage_is_final),
        T(test_woken_putter_cancelled_lifo_and_priority),
        T(test_woken_putter_cancelled_after_item_was_got_put_stands),
        T(test_woken_putter_cancelled_after_immediate_shutdown_put_stands),
        T(test_putter_cancelled_then_slot_freed_same_iteration),
        T(test_putter_cancelled_while_waiting_leaves_the_line),
        T(test_putter_wait_for_timeout_item_never_enters),
        T(test_wait_for_put_got_before_cancel_is_success_and_task_ends_cancelled),
        T(test_putter_timeout_scope_expires_while_queued),
        T(test_putter_timeout_scope_expires_after_placement_takes_item_out),
        /* memory */
        T(test_blocking_put_get_allocate_nothing),
        T(test_unbounded_growth_failure_is_enomem_nothing_lost),
        T(test_queue_growth_survives_every_allocation_failure),
        /* WEFT_QUEUE_PUT / WEFT_QUEUE_GET */
        T(test_queue_macros_complete_without_suspending_when_possible),
        T(test_queue_get_macro_waits_fifo_when_empty),
        T(test_queue_put_macro_waits_fifo_when_full),
        T(test_queue_macros_propagate_shutdown),
        T(test_queue_macros_allocate_nothing),
        /* model check */
        T(test_model_random_interleavings_lose_and_duplicate_nothing),
        /* regressions */
        T(test_budget_yield_on_fast_get_then_cancel_gives_item_back),
        T(test_budget_yield_with_reused_waiter_returns_item_to_its_queue),
        T(test_budget_yield_on_fast_put_then_cancel_keeps_every_item_once),
        T(test_budget_yield_on_fast_join_then_cancel),
        T(test_queue_ops_from_a_task_of_another_loop_are_refused),
        T(test_reusing_a_queued_waiter_is_refused),
        T(test_waiter_futures_refuse_completion_by_users),
    };
    return RUN_TESTS(tests);
}
