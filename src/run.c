/* run.c - WEFT_RUN_OPTS: asyncio.run with its Ctrl-C handling.
 *
 * The os layer's half of asyncio.run: WEFT_RUN's loop and main task come
 * from the task layer (weft__run_begin / weft__run_end); between them this
 * file installs the SIGINT / SIGTERM handlers that cancel the main task,
 * through the signal handlers of signal.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>

#include "task_internal.h"
#include "weft/signal.h"

/* WEFT_RUN_CANCEL_ON_SIGNALS: the signals, the main task, and the first
 * signal that came (0: none yet). */
static const int run_signals[] = {SIGINT, SIGTERM};

typedef struct run_sig {
    weft_task *main;
    int signo;
    bool installed[2];
} run_sig;

static void run_sig_remove(weft_loop *loop, run_sig *rs)
{
    for (int i = 0; i < 2; i++)
        if (rs->installed[i])
            weft_remove_signal_handler(loop, run_signals[i]);
    rs->installed[0] = rs->installed[1] = false;
}

/* The first SIGINT / SIGTERM: cancel the main task, and give both signals
 * back, so that a second one acts as without weft. */
static void run_on_signal(weft_loop *loop, int signo, void *ud)
{
    run_sig *rs = ud;
    if (!rs->signo) {
        rs->signo = signo;
        weft_task_cancel_msg(rs->main, "%s", signo == SIGINT ? "SIGINT" : "SIGTERM");
    }
    run_sig_remove(loop, rs);
}

/* Install the handlers, except for a signal the process ignores. */
static int run_sig_install(weft_loop *loop, run_sig *rs)
{
    for (int i = 0; i < 2; i++) {
        struct sigaction cur;
        if (sigaction(run_signals[i], NULL, &cur) == 0 && cur.sa_handler == SIG_IGN)
            continue;
        int err = weft_add_signal_handler(loop, run_signals[i], run_on_signal, rs);
        if (err) {
            run_sig_remove(loop, rs);
            return err;
        }
        rs->installed[i] = true;
    }
    return 0;
}

int weft__run_opts(const weft_run_options *ropts, weft_value *out, const weft_co *init)
{
    static const weft_run_options defaults;
    if (!ropts)
        ropts = &defaults;
    if (ropts->flags & ~(unsigned)WEFT_RUN_CANCEL_ON_SIGNALS)
        return -EINVAL;
    weft_loop *loop;
    weft_task *main_task;
    int err = weft__run_begin(ropts->loop, init, &loop, &main_task);
    if (err)
        return err;
    run_sig rs = {.main = main_task};
    if (ropts->flags & WEFT_RUN_CANCEL_ON_SIGNALS)
        err = run_sig_install(loop, &rs);
    if (err) /* the main task never ran: the shutdown cancels it */
        return weft__run_end(loop, main_task, err, NULL);
    err = weft_loop_run_until_complete(loop, main_task);
    run_sig_remove(loop, &rs);
    if (err == -ECANCELED && rs.signo)
        err = 128 + rs.signo; /* the shell's status for a program the signal stopped */
    return weft__run_end(loop, main_task, err, out);
}
