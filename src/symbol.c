/* symbol.c - a function's name for slow-callback reports, where the
 * platform can tell (dladdr), else its address.
 *
 * The one file of weft that asks libc for more than POSIX.1-2008: dladdr is
 * in <dlfcn.h> behind _GNU_SOURCE on glibc and musl (in libc itself since
 * glibc 2.34; older glibc keeps it in libdl, which weft does not link, so
 * there the report shows the address).  A feature macro, not a compiler
 * extension: cmake/portability_check.cmake allows it here and only here.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1
#endif
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#define _DARWIN_C_SOURCE 1
#endif
#include <limits.h> /* brings <features.h> on glibc, for the version test */
#include <stdio.h>
#include <string.h>

#include "loop_impl.h"

#if defined(__GLIBC__)
#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34)
#define WEFT__HAVE_DLADDR 1
#endif
#elif defined(__linux__) || defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__) || defined(__DragonFly__)
#define WEFT__HAVE_DLADDR 1
#endif
#ifdef WEFT__HAVE_DLADDR
#include <dlfcn.h>
#endif

const char *weft__symbol(const void *fn_bytes, size_t fn_size, char *buf, size_t n)
{
#ifdef WEFT__HAVE_DLADDR
    /* POSIX guarantees a function pointer fits a void * (dlsym) */
    void *addr = NULL;
    if (fn_size == sizeof addr) {
        memcpy(&addr, fn_bytes, sizeof addr);
        Dl_info info;
        if (addr && dladdr(addr, &info) && info.dli_sname && info.dli_saddr == addr) {
            snprintf(buf, n, "%s", info.dli_sname);
            return buf;
        }
    }
#endif
    /* ISO C cannot print a function pointer: its bytes, most significant
     * first on little-endian machines */
    const unsigned char *b = fn_bytes;
    int k = snprintf(buf, n, "0x");
    for (size_t i = fn_size; i-- > 0 && k >= 0 && (size_t)k + 3 < n;)
        k += snprintf(buf + k, n - (size_t)k, "%02x", b[i]);
    return buf;
}

