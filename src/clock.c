/* clock.c - the loop's clock: cached monotonic time, the virtual clock, and
 * the one seconds-to-nanoseconds rule.
 *
 * The loop reads CLOCK_MONOTONIC at most once per iteration (a vDSO call,
 * 20-35 ns natively): weft__now() returns the cached value, and the loop
 * invalidates it at the timer step.  With the virtual clock the cache is
 * always valid: time moves only when the loop (loop.c) jumps it to the next
 * deadline.
 */
#include <math.h>
#include <time.h>

#include "loop_impl.h"

int64_t weft__clock_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t weft__clock_read(weft_loop *loop)
{
    loop->now = weft__clock_mono();
    loop->now_valid = true;
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

int weft__sec_to_ns(double s, int64_t *out)
{
    if (isnan(s))
        return -EINVAL;
    double ns = s * 1e9;
    /* 0x1p63 is 2^63, one past INT64_MAX; -0x1p63 is INT64_MIN exactly.
     * Everything strictly between converts without UB. */
    if (ns >= 0x1p63)
        *out = INT64_MAX;
    else if (ns <= -0x1p63)
        *out = INT64_MIN;
    else
        *out = (int64_t)ns;
    return 0;
}
