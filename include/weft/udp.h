/* weft/udp.h - datagram (UDP) endpoints. */
#ifndef WEFT_UDP_H
#define WEFT_UDP_H

#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif
