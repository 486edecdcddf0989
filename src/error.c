/* error.c - weft_strerror: a static text for every code.
 *
 * weft's own codes, then every errno POSIX names (those this platform
 * defines), in one table searched linearly: a cold path.  Texts are
 * weft's, the same on every libc, and never in a buffer that a later call
 * overwrites; an errno the table does not know gets "unknown error".
 */
#include <errno.h>
#include <stddef.h>

#include "weft/common.h"

typedef struct code_text {
    int err;
    const char *text;
} code_text;

#define E(name, text) \
    {                 \
        -(name), text \
    }

static const code_text texts[] = {
    {0, "success"},
    {WEFT_ESTATE, "invalid state"},
    {WEFT_ECLOSED, "event loop is closed"},
    {WEFT_EFULL, "queue is full"},
    {WEFT_EEMPTY, "queue is empty"},
    {WEFT_ESHUTDOWN, "shut down (queue or executor)"},
    {WEFT_EBROKEN, "barrier is broken"},
    {WEFT_ECORO, "coroutine misuse"},
    {WEFT_ENOTASK, "no current task, or a task awaited itself"},
    {WEFT_EINCOMPLETE, "stream ended before the read was complete"},
    {WEFT_ELIMIT, "stream read overran the buffer limit"},
    {WEFT_EAI_AGAIN, "temporary failure in name resolution"},
    {WEFT_EAI_BADFLAGS, "invalid flags for name resolution"},
    {WEFT_EAI_FAIL, "non-recoverable failure in name resolution"},
    {WEFT_EAI_FAMILY, "address family not supported by name resolution"},
    {WEFT_EAI_NONAME, "name or service not known"},
    {WEFT_EAI_SERVICE, "service not available for the socket type"},
    {WEFT_EAI_SOCKTYPE, "socket type not supported"},
    {WEFT_EAI_OVERFLOW, "name resolution buffer overflow"},
    {WEFT_EAI_NODATA, "no address associated with the name"},
    {WEFT_EAI_ADDRFAMILY, "no address in the requested family"},
    {WEFT_EAI_UNKNOWN, "unknown name resolution error"},
    /* the errno codes weft itself returns, first */
    E(EINVAL, "invalid argument"),
    E(ENOMEM, "out of memory"),
    E(EBADF, "bad file descriptor"),
    E(EBUSY, "resource busy"),
    E(ENOENT, "no such entry"),
    E(EPERM, "operation not permitted"),
    E(ECANCELED, "cancelled"),
    E(ETIMEDOUT, "timed out"),
    E(EAGAIN, "resource temporarily unavailable"),
    E(EINTR, "interrupted"),
    E(EPIPE, "broken pipe"),
    E(ECONNRESET, "connection reset"),
    E(ECONNREFUSED, "connection refused"),
    E(EEXIST, "already exists"),
    E(ERANGE, "out of range"),
    E(EDEADLK, "deadlock avoided"),
    /* the rest of POSIX */
    E(E2BIG, "argument list too long"),
    E(EACCES, "permission denied"),
    E(EADDRINUSE, "address in use"),
    E(EADDRNOTAVAIL, "address not available"),
    E(EAFNOSUPPORT, "address family not supported"),
    E(EALREADY, "operation already in progress"),
    E(EBADMSG, "bad message"),
    E(ECHILD, "no child process"),
    E(ECONNABORTED, "connection aborted"),
    E(EDESTADDRREQ, "destination address required"),
    E(EDOM, "argument out of domain"),
    E(EDQUOT, "disk quota exceeded"),
    E(EFAULT, "bad address"),
    E(EFBIG, "file too large"),
    E(EHOSTUNREACH, "host unreachable"),
    E(EIDRM, "identifier removed"),
    E(EILSEQ, "illegal byte sequence"),
    E(EINPROGRESS, "operation in progress"),
    E(EIO, "input/output error"),
    E(EISCONN, "already connected"),
    E(EISDIR, "is a directory"),
    E(ELOOP, "too many levels of symbolic links"),
    E(EMFILE, "too many open files"),
    E(EMLINK, "too many links"),
    E(EMSGSIZE, "message too long"),
    E(ENAMETOOLONG, "file name too long"),
    E(ENETDOWN, "network is down"),
    E(ENETRESET, "connection reset by network"),
    E(ENETUNREACH, "network unreachable"),
    E(ENFILE, "too many open files in system"),
    E(ENOBUFS, "no buffer space available"),
    E(ENODEV, "no such device"),
    E(ENOEXEC, "executable format error"),
    E(ENOLCK, "no locks available"),
    E(ENOMSG, "no message of the desired type"),
    E(ENOPROTOOPT, "protocol not available"),
    E(ENOSPC, "no space left on device"),
    E(ENOSYS, "function not implemented"),
    E(ENOTCONN, "not connected"),
    E(ENOTDIR, "not a directory"),
    E(ENOTEMPTY, "directory not empty"),
    E(ENOTSOCK, "not a socket"),
    E(ENOTSUP, "not supported"),
    E(ENOTTY, "inappropriate ioctl for device"),
    E(ENXIO, "no such device or address"),
    E(EOPNOTSUPP, "operation not supported"),
    E(EOVERFLOW, "value too large"),
    E(EPROTO, "protocol error"),
    E(EPROTONOSUPPORT, "protocol not supported"),
    E(EPROTOTYPE, "wrong protocol type for socket"),
    E(EROFS, "read-only file system"),
    E(ESPIPE, "invalid seek"),
    E(ESRCH, "no such process"),
    E(ESTALE, "stale file handle"),
    E(ETXTBSY, "text file busy"),
    E(EWOULDBLOCK, "operation would block"),
    E(EXDEV, "cross-device link"),
#ifdef ENOTRECOVERABLE
    E(ENOTRECOVERABLE, "state not recoverable"),
#endif
#ifdef EOWNERDEAD
    E(EOWNERDEAD, "previous owner died"),
#endif
#ifdef EMULTIHOP
    E(EMULTIHOP, "multihop attempted"),
#endif
#ifdef ENOLINK
    E(ENOLINK, "link has been severed"),
#endif
#ifdef ENODATA
    E(ENODATA, "no data available"),
#endif
#ifdef ETIME
    E(ETIME, "timer expired"),
#endif
};

#undef E

const char *weft_strerror(int err)
{
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (texts[i].err == err)
            return texts[i].text;
    return "unknown error";
}
