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

#include "task.h"

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

/* ---- asyncio.run with Ctrl-C -------------------------------------------------------
 * WEFT_RUN (weft/task.h) plus run options; the signal handling of
 * asyncio.run lives here, in the layer that owns signals. */

/* Flags of weft_run_options. */
enum {
    /* asyncio.run's Ctrl-C: while the main task runs, the first SIGINT or
     * SIGTERM cancels it (its -ECANCELED carries the message "SIGINT" or
     * "SIGTERM") and puts both signals back to their previous dispositions,
     * so a second one during the cleanup acts as without weft (by default
     * it kills the process at once).  If the main task then ends cancelled,
     * WEFT_RUN_OPTS returns 128 + signo (130 for SIGINT, 143 for SIGTERM),
     * the shell's status for a program stopped by that signal, after the
     * usual shutdown; if it catches the cancellation and returns, its own
     * outcome is returned.  A signal whose disposition is SIG_IGN when the
     * run starts (a background job's SIGINT, nohup) is left alone, as
     * asyncio leaves a SIGINT it does not own.  Handlers are installed with
     * weft_add_signal_handler (weft/signal.h), for the main task's run
     * only; weft_exit's status takes precedence. */
    WEFT_RUN_CANCEL_ON_SIGNALS = 1u << 0,
};

/* Options of WEFT_RUN_OPTS; zero-initialise and set what you need. */
typedef struct weft_run_options {
    const weft_loop_options *loop; /* the loop's options, or NULL */
    unsigned flags;                /* WEFT_RUN_* */
} weft_run_options;

/* WEFT_RUN with run options (ropts may be NULL: WEFT_RUN(NULL, ...)):
 *     static const weft_run_options ro = {.flags = WEFT_RUN_CANCEL_ON_SIGNALS};
 *     int main(void) { int rc = WEFT_RUN_OPTS(&ro, NULL, server); return rc < 0 ? 1 : rc; }
 * Returns as WEFT_RUN, plus 128 + signo (above), or -EINVAL for unknown
 * flags, or the error of installing the signal handlers. */
#define WEFT_RUN_OPTS(ropts, out, ...) WEFT__RUN_OPTS(ropts, out, __VA_ARGS__, )
#define WEFT__RUN_OPTS(ropts, out, fn, ...) \
    weft__run_opts((ropts), (out), &(struct fn){.co = {.info = &fn##__info}, __VA_ARGS__}.co)
int weft__run_opts(const weft_run_options *ropts, weft_value *out, const weft_co *init);

#ifdef __cplusplus
}
#endif
#endif
