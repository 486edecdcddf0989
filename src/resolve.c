/* resolve.c - getaddrinfo and getnameinfo on the default executor, and the
 * EAI_* codes as weft error codes.
 *
 * weft_getaddrinfo is one allocation on the loop thread: the job with the
 * host and service strings and the hints copied after it.  The worker calls
 * libc's getaddrinfo, whose result list (libc allocates it) becomes the
 * future's value, freed with freeaddrinfo.  weft_getnameinfo allocates the
 * job and its result block (a weft_nameinfo with the copied address and the
 * loop's allocator in front of it), so that the worker allocates nothing
 * and the value outlives the job.
 */
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include "executor_internal.h"

/* EAI_NODATA and EAI_ADDRFAMILY are not POSIX: glibc hides them from a
 * strict POSIX build but returns them all the same (its ABI values). */
#if !defined(EAI_NODATA) && defined(__GLIBC__)
#define EAI_NODATA (-5)
#endif
#if !defined(EAI_ADDRFAMILY) && defined(__GLIBC__)
#define EAI_ADDRFAMILY (-9)
#endif

int weft_eai_error(int eai)
{
    int saved = errno; /* EAI_SYSTEM: the errno of the failed call */
    switch (eai) {
    case 0:
        return 0;
    case EAI_AGAIN:
        return WEFT_EAI_AGAIN;
    case EAI_BADFLAGS:
        return WEFT_EAI_BADFLAGS;
    case EAI_FAIL:
        return WEFT_EAI_FAIL;
    case EAI_FAMILY:
        return WEFT_EAI_FAMILY;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_NONAME:
        return WEFT_EAI_NONAME;
    case EAI_SERVICE:
        return WEFT_EAI_SERVICE;
    case EAI_SOCKTYPE:
        return WEFT_EAI_SOCKTYPE;
    case EAI_OVERFLOW:
        return WEFT_EAI_OVERFLOW;
    case EAI_SYSTEM:
        return saved > 0 ? -saved : -EIO;
#if defined(EAI_NODATA) && EAI_NODATA != EAI_NONAME
    case EAI_NODATA:
        return WEFT_EAI_NODATA;
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
        return WEFT_EAI_ADDRFAMILY;
#endif
    default:
        return WEFT_EAI_UNKNOWN;
    }
}

/* ---- getaddrinfo ------------------------------------------------------------------------- */

typedef struct gai_req {
    const char *host, *service; /* into text[], or NULL */
    struct addrinfo hints;
    bool has_hints;
    char text[];
} gai_req;

static int gai_work(void *arg, weft_value *out)
{
    gai_req *r = arg;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(r->host, r->service, r->has_hints ? &r->hints : NULL, &res);
    if (rc)
        return weft_eai_error(rc);
    out->p = res;
    return 0;
}

static void gai_free(void *p)
{
    freeaddrinfo(p);
}

weft_future *weft_getaddrinfo(weft_loop *loop, const char *host, const char *service,
                              const struct addrinfo *hints)
{
    if (!host && !service) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    size_t nh = host ? strlen(host) + 1 : 0, ns = service ? strlen(service) + 1 : 0;
    void *extra = NULL;
    weft__job *j = weft__job_new(loop, sizeof(gai_req) + nh + ns, &extra);
    if (!j)
        return NULL;
    gai_req *r = extra;
    memset(r, 0, sizeof *r);
    if (host)
        r->host = memcpy(r->text, host, nh);
    if (service)
        r->service = memcpy(r->text + nh, service, ns);
    if (hints) {
        /* only these four may be set in hints (POSIX); the rest stays 0 */
        r->hints.ai_flags = hints->ai_flags;
        r->hints.ai_family = hints->ai_family;
        r->hints.ai_socktype = hints->ai_socktype;
        r->hints.ai_protocol = hints->ai_protocol;
        r->has_hints = true;
    }
    return weft__job_submit(j, NULL, gai_work, r, gai_free, 0, "getaddrinfo");
}

/* ---- getnameinfo ------------------------------------------------------------------------- */

typedef struct gni_block {
    weft_allocator alloc; /* the loop's: the block may be freed anywhere, any time */
    struct sockaddr_storage addr;
    socklen_t len;
    int flags;
    weft_nameinfo out; /* the value handed out: &out */
} gni_block;

static gni_block *gni_of(void *ni)
{
    return WEFT_CONTAINER_OF(ni, gni_block, out);
}

void weft_nameinfo_free(void *ni)
{
    if (!ni)
        return;
    gni_block *g = gni_of(ni);
    g->alloc.realloc(g->alloc.ud, g, 0);
}

static int gni_work(void *arg, weft_value *out)
{
    gni_block *g = gni_of(arg);
    int rc = getnameinfo((const struct sockaddr *)&g->addr, g->len, g->out.host, sizeof g->out.host,
                         g->out.service, sizeof g->out.service, g->flags);
    if (rc)
        return weft_eai_error(rc);
    out->p = arg;
    return 0;
}

weft_future *weft_getnameinfo(weft_loop *loop, const struct sockaddr *addr, size_t addrlen,
                              int flags)
{
    if (!addr || addrlen == 0 || addrlen > sizeof(struct sockaddr_storage)) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft__job *j = weft__job_new(loop, 0, NULL);
    if (!j)
        return NULL;
    gni_block *g = weft__alloc(loop, sizeof *g);
    if (!g) {
        weft__job_discard(j);
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    memset(g, 0, sizeof *g);
    g->alloc = weft__allocator(loop);
    memcpy(&g->addr, addr, addrlen);
    g->len = (socklen_t)addrlen;
    g->flags = flags;
    weft_future *f = weft__job_submit(j, NULL, gni_work, &g->out, weft_nameinfo_free,
                                      WEFT__JOB_ARG_IS_RESULT, "getnameinfo");
    if (!f)
        weft_nameinfo_free(&g->out);
    return f;
}
