/* timeout.c - timeout scopes (asyncio's `async with timeout(d)`).
 *
 * A scope lives in the frame: a timer for a future deadline and a handle
 * for one already due (it expires through the ready queue, ahead of what
 * the task queues next: asyncio's call_soon(_on_timeout)).  Expiry cancels
 * the task; when the child has unwound, the scope turns its own
 * cancellation, and only its own, into -ETIMEDOUT.
 */
#include <string.h>

#include "future_internal.h"
#include "weft/combinators.h"

enum { TO_ACTIVE = 1, TO_EXPIRED = 2, TO_EXITED = 4 };

static void arm_scope(weft_timeout *s, int64_t when)
{
    weft_timer_stop(&s->timer);
    weft_handle_cancel(&s->soon);
    if (when == INT64_MAX)
        return;
    weft_loop *loop = weft_task_loop(s->task);
    if (when <= weft_loop_now(loop))
        weft_handle_schedule(loop, &s->soon);
    else
        weft_timer_start_at_ns(&s->timer, when, 0);
}

static void timeout_fire(void *arg)
{
    weft_timeout *s = arg;
    if (s->state == TO_ACTIVE) {
        s->state = TO_ACTIVE | TO_EXPIRED;
        weft_task_cancel(s->task);
    }
}

bool weft__timeout_enter(weft_timeout *s, weft_task *task, double t, int absolute,
                         weft_co *child)
{
    *s = (weft_timeout){.task = task, .base = (uint16_t)weft_task_cancelling(task)};
    s->state = TO_EXITED;
    int64_t ns;
    int err = !weft_is_task(task) ? -EINVAL : weft__sec_to_ns(t, &ns);
    if (!err) {
        weft_loop *loop = weft_task_loop(task);
        s->when = absolute ? ns : ns == INT64_MAX ? INT64_MAX : weft__add_sat(weft_loop_now(loop), ns);
        err = weft_timer_init(&s->timer, loop, timeout_fire, s);
    }
    if (err) {
        child->err = (int16_t)err;
        child->err_line = child->up ? child->up->line : 0;
        return false;
    }
    weft_handle_init(&s->soon, timeout_fire, s);
    s->state = TO_ACTIVE;
    arm_scope(s, s->when);
    return true;
}

/* Leave scope s, whose frame co ends with co->err: stop the timer, and if
 * the scope expired, take its cancellation back and turn the -ECANCELED it
 * caused into -ETIMEDOUT (only its own: not when outside cancellations are
 * still pending, nor when the error was already -ECANCELED on entry, which
 * `outside` says).  True if it converted. */
static bool scope_leave(weft_timeout *s, weft_co *co, bool outside)
{
    bool converted = false;
    weft_timer_close(&s->timer);
    weft_handle_cancel(&s->soon);
    if (s->state & TO_EXPIRED) {
        weft_task_uncancel(s->task);
        if (co->err == -ECANCELED && !outside && weft_task_cancelling(s->task) <= s->base) {
            co->err = -ETIMEDOUT; /* our own cancellation, and only ours */
            converted = true;
        }
    }
    s->state |= TO_EXITED;
    return converted;
}

void weft__timeout_exit(weft_timeout *s, weft_co *child)
{
    if (!(s->state & TO_EXITED) && scope_leave(s, child, false))
        child->flags &= (uint16_t)~WEFT_CO_UNCATCHABLE;
}

int weft_timeout_reschedule(weft_timeout *s, int64_t when_ns)
{
    if (!s)
        return -EINVAL;
    if (s->state != TO_ACTIVE)
        return WEFT_ESTATE;
    s->when = when_ns;
    arm_scope(s, when_ns);
    return 0;
}

bool weft_timeout_expired(const weft_timeout *s)
{
    return s && (s->state & TO_EXPIRED);
}

/* ---- the block form -------------------------------------------------------------------- */

int weft__timeout_open(weft_timeout *s, weft_task *task, double t, int absolute, weft_co *co,
                       int line)
{
    weft_co child;
    memset(&child, 0, sizeof child);
    if (weft__timeout_enter(s, task, t, absolute, &child))
        return 0;
    weft__co_raise(co, child.err, line, 0);
    return -1;
}

void weft__timeout_close(weft_timeout *s, weft_co *co)
{
    if (!(s->state & TO_EXITED))
        scope_leave(s, co, s->blk.err_at_entry == -ECANCELED);
}
