/* weft/signal.h - signal handlers that run on the loop. */
#ifndef WEFT_SIGNAL_H
#define WEFT_SIGNAL_H

#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif
