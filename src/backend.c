/* backend.c - the table of readiness backends, and what they share.
 *
 * The only place that knows which backends exist: each entry is guarded by
 * the feature macro of its file (backend.h).  The first entry is the
 * default.  Adding a backend is one file plus one line here.
 */
#include <limits.h>
#include <string.h>

#include "backend.h"

static const weft__backend *const backends[] = {
#if WEFT__HAVE_EPOLL
    &weft__backend_epoll,
#endif
#if WEFT__HAVE_KQUEUE
    &weft__backend_kqueue, /* the default where there is no epoll: BSD, macOS */
#endif
    &weft__backend_poll, /* everywhere; the fallback */
};

const weft__backend *weft__backend_find(const char *name)
{
    if (!name)
        return backends[0];
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}

int weft__timeout_ms(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return -1;
    int64_t ms = timeout_ns / 1000000 + (timeout_ns % 1000000 != 0); /* round up: never early */
    return ms > INT_MAX ? INT_MAX : (int)ms;
}
