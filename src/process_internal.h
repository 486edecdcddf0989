/* process_internal.h - test seams of the process layer (process.c).  Never
 * installed. */
#ifndef WEFT_PROCESS_INTERNAL_H
#define WEFT_PROCESS_INTERNAL_H

#include "weft/process.h"

/* Nonzero: pidfd_open fails with this errno (ENOSYS: as on a kernel
 * without it), so that the SIGCHLD fallback runs.  0: the real call. */
extern int weft__process_fail_pidfd;

#endif
