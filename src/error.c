/* error.c - weft_strerror. */
#include <string.h>

#include "weft/common.h"

static _Thread_local char other[96];

const char *weft_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case WEFT_ESTATE:
        return "invalid state";
    case WEFT_ECLOSED:
        return "event loop is closed";
    case WEFT_EFULL:
        return "queue is full";
    case WEFT_EEMPTY:
        return "queue is empty";
    case WEFT_ESHUTDOWN:
        return "shut down (queue or executor)";
    case WEFT_EBROKEN:
        return "barrier is broken";
    case WEFT_ECORO:
        return "coroutine misuse";
    case WEFT_ENOTASK:
        return "no current task, or a task awaited itself";
    case WEFT_EAI_AGAIN:
        return "temporary failure in name resolution";
    case WEFT_EAI_BADFLAGS:
        return "invalid flags for name resolution";
    case WEFT_EAI_FAIL:
        return "non-recoverable failure in name resolution";
    case WEFT_EAI_FAMILY:
        return "address family not supported";
    case WEFT_EAI_NONAME:
        return "name or service not known";
    case WEFT_EAI_SERVICE:
        return "service not available for the socket type";
    case WEFT_EAI_SOCKTYPE:
        return "socket type not supported";
    case WEFT_EAI_OVERFLOW:
        return "name resolution buffer overflow";
    case WEFT_EAI_NODATA:
        return "no address associated with the name";
    case WEFT_EAI_ADDRFAMILY:
        return "no address in the requested family";
    case WEFT_EAI_UNKNOWN:
        return "unknown name resolution error";
    case -EINVAL:
        return "invalid argument";
    case -ENOMEM:
        return "out of memory";
    case -EBADF:
        return "bad file descriptor";
    case -EBUSY:
        return "busy (the loop is running)";
    case -ENOENT:
        return "no such entry";
    case -EPERM:
        return "operation not permitted";
    case -ECANCELED:
        return "cancelled";
    case -ETIMEDOUT:
        return "timed out";
    case -EAGAIN:
        return "resource temporarily unavailable";
    case -EINTR:
        return "interrupted";
    case -EPIPE:
        return "broken pipe";
    case -ECONNRESET:
        return "connection reset";
    case -ECONNREFUSED:
        return "connection refused";
    case -EEXIST:
        return "already exists";
    case -ERANGE:
        return "out of range";
    case -EDEADLK:
        return "deadlock avoided";
    default:
        /* any other errno: libc's text, in a per-thread buffer */
        if (err < 0 && err > -4096 && strerror_r(-err, other, sizeof other) == 0)
            return other;
        return "unknown error";
    }
}
