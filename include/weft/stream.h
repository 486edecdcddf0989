/* weft/stream.h - streams: readers and writers over transports, for coroutines. */
#ifndef WEFT_STREAM_H
#define WEFT_STREAM_H

#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif
