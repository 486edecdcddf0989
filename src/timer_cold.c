/* timer_cold.c - the cold halves of the timer entry points in timer.c:
 * every check and every rare path (debug thread check, closed loop, heap
 * growth, re-arming an active timer, reading the clock).
 *
 * A translation unit of its own so that timer.c's warm paths stay a few
 * instructions with no stack frame: if the compiler could see these bodies
 * it would inline them and save registers on every call.
 */
#include "loop_impl.h"

int weft__timer_init_cold(weft_timer *t, weft_loop *loop, weft_cb *fn, void *arg)
{
    if (weft__wrong_thread(loop, "weft_timer_init"))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    int err = weft__heap_reserve(loop);
    if (err)
        return err;
    *t = (weft_timer){.fn = fn, .arg = arg, .loop = loop, .index = WEFT__T_IDLE};
    return 0;
}

int weft__timer_start_cold(weft_timer *t, int64_t at, int64_t repeat, bool relative)
{
    weft_loop *loop = t->loop;
    if (weft__wrong_thread(loop, "weft_timer_start"))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
    int64_t when = relative ? weft__add_sat(weft__now(loop), at) : at;
    if (t->index != WEFT__T_IDLE)
        weft__timer_disarm(loop, t); /* re-armed, or a due one superseded */
    t->repeat = repeat;
    weft__heap_insert(loop, t, when);
    return 0;
}

void weft__timer_close_cold(weft_timer *t)
{
    weft_loop *loop = t->loop;
    if (weft__wrong_thread(loop, "weft_timer_close"))
        return;
    if (t->index != WEFT__T_IDLE)
        weft__timer_disarm(loop, t);
    if (!(loop->state & WEFT__CLOSED))
        weft__heap_unreserve(loop); /* a closed loop has no heap any more */
    t->loop = NULL;
}
