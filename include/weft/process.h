/* weft/process.h - subprocesses: spawn, wait, signals, pipes as streams. */
#ifndef WEFT_PROCESS_H
#define WEFT_PROCESS_H

#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif
