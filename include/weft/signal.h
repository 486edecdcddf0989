/* weft/signal.h - signal handlers that run on the loop.
 *
 * asyncio's loop.add_signal_handler / remove_signal_handler, plus an
 * awaitable "wait for the next delivery of this signal".  The callback runs
 * on the loop's thread from the ready queue, never in signal context, so it
 * may call any weft function.  Deliveries that arrive before the loop gets
 * to run the callback are coalesced: a burst gives one call.
 *
 * Several loops (in several threads) may watch the same signal; each gets
 * every delivery.  The process's previous disposition of a signal is saved
 * when weft first installs its handler and restored when the last loop's
 * handler of that signal goes (weft_remove_signal_handler, or the loop's
 * close).  SIGKILL and SIGSTOP cannot be caught (-EINVAL); SIGCHLD belongs
 * to the process layer (weft/process.h) and is refused here (-EPERM).
 * See docs/signals.md for threads, masks and the details.
 */
#ifndef WEFT_SIGNAL_H
#define WEFT_SIGNAL_H

#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A signal callback: called on the loop with the signal number and the ud
 * given to weft_add_signal_handler, once per delivery burst. */
typedef void weft_signal_cb(weft_loop *loop, int signo, void *ud);

/* Call cb(loop, signo, ud) on the loop after each delivery burst of signo
 * (asyncio's loop.add_signal_handler).  Replaces a previous handler of signo
 * on this loop.  Not thread-safe for one loop (call it on the loop's
 * thread); different loops may call it from different threads.
 * The handler runs on the loop's thread, never in signal context, so it
 * may call anything; ud is borrowed until the handler is removed.
 * Returns 0; -EINVAL (NULL loop or cb, signo out of range, SIGKILL,
 * SIGSTOP, or a signal sigaction refuses); -EPERM (SIGCHLD: the process
 * layer owns it; or another thread on a WEFT_LOOP_DEBUG loop);
 * WEFT_ECLOSED; -ENOMEM; -EMFILE / -ENFILE (the loop's self-pipe). */
int weft_add_signal_handler(weft_loop *loop, int signo, weft_signal_cb *cb, void *ud);

/* Remove this loop's handler of signo (asyncio's remove_signal_handler).
 * Returns 1 if a handler was removed, 0 if there was none (also on a
 * closed loop: closing removed them), or a negative code: -EINVAL (NULL
 * loop, or a signo weft_add_signal_handler refuses with -EINVAL), -EPERM
 * (SIGCHLD, or the debug thread check).  When it was the last user of
 * signo in the process, the saved disposition is restored.  Pending
 * waiters of weft_signal_wait on signo are not affected. */
int weft_remove_signal_handler(weft_loop *loop, int signo);

/* A future that completes with value .i = signo at the next delivery of
 * signo after this call (a coroutine's "await the signal").  Cancelling it
 * removes its waiter (and the process-wide handler if it was the last
 * user).  The caller owns one reference.  NULL on failure, with
 * weft_last_error() set as for weft_add_signal_handler. */
WEFT_NODISCARD weft_future *weft_signal_wait(weft_loop *loop, int signo);

#ifdef __cplusplus
}
#endif
#endif
