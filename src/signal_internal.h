/* signal_internal.h - the signal layer's entry points for other modules. */
#ifndef WEFT_SIGNAL_INTERNAL_H
#define WEFT_SIGNAL_INTERNAL_H

#include "weft/signal.h"

/* weft_add_signal_handler without the public refusal of SIGCHLD: for the
 * process layer, which owns SIGCHLD.  Same codes otherwise. */
int weft__signal_add(weft_loop *loop, int signo, weft_signal_cb *cb, void *ud);

/* weft_remove_signal_handler for any catchable signal, SIGCHLD included. */
int weft__signal_remove(weft_loop *loop, int signo);

#endif
