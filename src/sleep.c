/* sleep.c - weft_sleep: a future completed by a timer of its own.
 *
 * A sleep is one pooled block: the future and its timer.  Cancelling it
 * stops the timer; releasing it closes the timer, so a sleep nobody holds
 * any more costs nothing.  sleep(0) is the loop's shared yield future: no
 * allocation at all.
 */
#include "future_internal.h"
#include "weft/combinators.h"

typedef struct sleep_fut {
    weft_future f;
    weft_timer timer;
    weft__hold hold; /* the timer holds the sleep */
} sleep_fut;

static void sleep_fire(void *arg)
{
    sleep_fut *s = arg;
    weft__future_resolve(&s->f, s->f.out.v); /* the result, kept there while pending */
    weft__future_unhold(&s->hold); /* last: it may free s */
}

static int sleep_cancel(weft_future *f)
{
    sleep_fut *s = WEFT_CONTAINER_OF(f, sleep_fut, f);
    weft_timer_stop(&s->timer); /* armed, or due but not run */
    int err = weft__future_cancel_now(f);
    weft__future_unhold(&s->hold);
    return err;
}

static void sleep_release(weft_future *f)
{
    sleep_fut *s = WEFT_CONTAINER_OF(f, sleep_fut, f);
    weft__future_unhold(&s->hold);
    weft_timer_close(&s->timer);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, s, sizeof *s);
}

static const weft__future_ops sleep_ops = {
    .kind = "sleep",
    .cancel = sleep_cancel,
    .release = sleep_release,
};

/* A sleep of delay_ns whose value is v; a delay <= 0 without a value is
 * the shared yield future. */
static weft_future *sleep_new(weft_loop *loop, int64_t delay_ns, weft_value v, bool valued)
{
    if (!loop) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (weft__closed(loop)) {
        weft__set_last_error(WEFT_ECLOSED);
        return NULL;
    }
    if (delay_ns <= 0 && !valued) {
        weft_future *y = weft__future_yield(loop);
        if (!y)
            weft__set_last_error(-ENOMEM);
        return y;
    }
    weft__pool *pool = weft__pool_of(loop);
    sleep_fut *s = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *s) : NULL;
    if (!s) {
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    int err = weft_timer_init(&s->timer, loop, sleep_fire, s);
    if (err) {
        weft__pool_put(pool, WEFT__POOL_ANY, s, sizeof *s);
        weft__set_last_error(err);
        return NULL;
    }
    weft__future_init(&s->f, &sleep_ops, loop);
    s->f.out.v = v;
    weft_timer_start_ns(&s->timer, delay_ns > 0 ? delay_ns : 0, 0);
    weft__future_hold(&s->f, &s->hold);
    return &s->f;
}

weft_future *weft_sleep_ns(weft_loop *loop, int64_t delay_ns)
{
    return sleep_new(loop, delay_ns, (weft_value){.i = 0}, false);
}

weft_future *weft_sleep_result(weft_loop *loop, double delay, weft_value result)
{
    int64_t ns;
    int err = weft__sec_to_ns(delay, &ns);
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    return sleep_new(loop, ns, result, true);
}

WEFT__COLD static weft_future *sleep_seconds(weft_loop *loop, double delay)
{
    int64_t ns;
    int err = weft__sec_to_ns(delay, &ns);
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    return weft_sleep_ns(loop, ns);
}

weft_future *weft_sleep(weft_loop *loop, double delay)
{
    weft__future_layer *fl;
    if (delay == 0 && loop && !weft__closed(loop) &&
        (fl = (weft__future_layer *)(void *)weft__layer_get(loop, WEFT__LAYER_FUTURE))) {
        fl->yield.refs++; /* hot path: sleep(0) */
        return &fl->yield;
    }
    return sleep_seconds(loop, delay);
}
