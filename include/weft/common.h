/* weft/common.h - error codes, values and the allocator hook.
 *
 * Every fallible weft function returns 0 (or a non-negative count) on
 * success and a negative error code on failure: a negated errno value
 * (-EINVAL, -ENOMEM, -EBADF, -ECANCELED, -ETIMEDOUT, ...) where one fits, or
 * one of the WEFT_E* codes below where none does.  A call that fails changes
 * nothing, and a callback passed to a call that failed is never called.
 */
#ifndef WEFT_COMMON_H
#define WEFT_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

/* Marks a function whose result must not be dropped (a future nobody
 * awaits is a bug: asyncio's "coroutine was never awaited").  The compiler
 * warns where it can (GCC and Clang; C23's [[nodiscard]] elsewhere). */
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 202311L
#define WEFT_NODISCARD [[nodiscard]]
#elif defined(__GNUC__) || defined(__clang__)
#define WEFT_NODISCARD __attribute__((warn_unused_result))
#else
#define WEFT_NODISCARD
#endif

/* Marks a printf-like function (format string at argument fmt, the
 * arguments from first) so the compiler checks the calls (GCC and Clang). */
#if defined(__GNUC__) || defined(__clang__)
#define WEFT_PRINTF(fmt, first) __attribute__((format(printf, fmt, first)))
#else
#define WEFT_PRINTF(fmt, first)
#endif

/* The struct of type `type` whose member `member` is at ptr (for callers
 * that embed weft structs in their own: weft_io, weft_timer, ...). */
#define WEFT_CONTAINER_OF(ptr, type, member) \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* weft's own error codes, below every errno value. */
enum weft_errc {
    WEFT_ESTATE = -10001,      /* operation invalid in the object's current state */
    WEFT_ECLOSED = -10002,     /* the loop is closed */
    WEFT_EFULL = -10003,       /* queue is full (put_nowait) */
    WEFT_EEMPTY = -10004,      /* queue is empty (get_nowait) */
    WEFT_ESHUTDOWN = -10005,   /* queue or executor was shut down */
    WEFT_EBROKEN = -10006,     /* barrier is broken (aborted) */
    WEFT_ECORO = -10007,       /* coroutine misuse: bad resume point, escaped break */
    WEFT_ENOTASK = -10008,     /* needs a current task, or awaited itself */
    WEFT_EINCOMPLETE = -10009, /* stream ended before the read was complete (partial data kept) */
    WEFT_ELIMIT = -10010,      /* stream read overran the buffer limit (data left in the buffer) */
};

/* Name resolution errors (weft_getaddrinfo, weft_getnameinfo,
 * weft_eai_error): one code per EAI_* value of getaddrinfo and getnameinfo,
 * in a range of their own, [WEFT_EAI_MIN, WEFT_EAI_MAX].  EAI_MEMORY is
 * -ENOMEM and EAI_SYSTEM is -errno instead. */
enum weft_eai_errc {
    WEFT_EAI_AGAIN = -10101,      /* temporary failure (EAI_AGAIN): try again later */
    WEFT_EAI_BADFLAGS = -10102,   /* invalid ai_flags / NI_* flags (EAI_BADFLAGS) */
    WEFT_EAI_FAIL = -10103,       /* non-recoverable failure (EAI_FAIL) */
    WEFT_EAI_FAMILY = -10104,     /* address family not supported (EAI_FAMILY) */
    WEFT_EAI_NONAME = -10105,     /* name or service not known (EAI_NONAME) */
    WEFT_EAI_SERVICE = -10106,    /* service not available for the socket type (EAI_SERVICE) */
    WEFT_EAI_SOCKTYPE = -10107,   /* socket type not supported (EAI_SOCKTYPE) */
    WEFT_EAI_OVERFLOW = -10108,   /* an argument buffer overflowed (EAI_OVERFLOW) */
    WEFT_EAI_NODATA = -10109,     /* the name has no address (EAI_NODATA, not POSIX) */
    WEFT_EAI_ADDRFAMILY = -10110, /* no address in the family asked for (EAI_ADDRFAMILY) */
    WEFT_EAI_UNKNOWN = -10111,    /* an EAI_* value this build does not know */
};
#define WEFT_EAI_MIN (-10199)
#define WEFT_EAI_MAX (-10101)

/* The most negative error code weft carries (codes live in a frame's
 * 16-bit err field): every error code is in [WEFT_ERR_MIN, -1]. */
#define WEFT_ERR_MIN (-32767)

/* A static, human-readable description of a weft error code: weft's own
 * codes and every negative errno POSIX defines (weft's texts, the same on
 * every libc; "unknown error" for anything else).  Never NULL, never a
 * buffer a later call overwrites, safe from any thread. */
const char *weft_strerror(int err);

/* A small result value: an integer, a double or a pointer.  Which member is
 * valid is the producer's and consumer's agreement, as with a C union. */
typedef union weft_value {
    int64_t i;
    double d;
    void *p;
} weft_value;

/* Destructor for a pointer result; called when the owner of the value
 * (a future, a queue) is released without handing the value on. */
typedef void weft_dtor(void *p);

/* The allocator hook: one function with realloc semantics.
 * realloc(ud, NULL, n) allocates, realloc(ud, p, n) resizes,
 * realloc(ud, p, 0) frees and returns NULL.  Returning NULL for n > 0 is an
 * allocation failure, which weft reports as -ENOMEM and survives.
 * A loop created with an allocator uses it for everything it allocates;
 * weft_call_soon_threadsafe may call it from other threads. */
typedef void *weft_realloc_fn(void *ud, void *ptr, size_t size);

typedef struct weft_allocator {
    weft_realloc_fn *realloc; /* NULL selects the libc allocator */
    void *ud;                 /* passed back as the first argument */
} weft_allocator;

#ifdef __cplusplus
}
#endif
#endif
