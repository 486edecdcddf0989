/* sock.c - socket helpers for clients and servers: sockets opened
 * non-blocking and close-on-exec in one call, Unix addresses, address
 * lists (deduplicated, interleaved by family), and name resolution that
 * answers numeric hosts on the loop thread and sends names to the executor.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sock.h"

int weft__sock_errno(void)
{
    return errno > 0 ? -errno : -EIO;
}

int weft__sock_open(int family, int type)
{
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return weft__sock_errno();
#else
    int fd = socket(family, type, 0);
    if (fd < 0)
        return weft__sock_errno();
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        int err = weft__sock_errno();
        close(fd);
        return err;
    }
#endif
#ifdef SO_NOSIGPIPE
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    return fd;
}

int weft__sock_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ? weft__sock_errno() : 0;
}

int weft__sock_unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
    size_t n = path ? strlen(path) : 0;
    if (n == 0 || n >= sizeof sun->sun_path)
        return -EINVAL;
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* ---- address lists --------------------------------------------------------------------------- */

int weft__addrs_from_list(weft_loop *loop, const struct addrinfo *list, weft__addr **out, size_t *n)
{
    size_t k = 0;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next)
        k++;
    *out = NULL;
    *n = 0;
    if (k == 0)
        return 0;
    weft__addr *a = weft__alloc(loop, k * sizeof *a);
    if (!a)
        return -ENOMEM;
    size_t m = 0;
    for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || !ai->ai_addr ||
            ai->ai_addrlen == 0 || ai->ai_addrlen > sizeof a->ss)
            continue;
        bool dup = false;
        for (size_t i = 0; i < m && !dup; i++)
            dup = a[i].len == ai->ai_addrlen && memcmp(&a[i].ss, ai->ai_addr, ai->ai_addrlen) == 0;
        if (dup)
            continue;
        memset(&a[m], 0, sizeof a[m]);
        memcpy(&a[m].ss, ai->ai_addr, ai->ai_addrlen);
        a[m].len = (socklen_t)ai->ai_addrlen;
        a[m].family = ai->ai_family;
        m++;
    }
    if (m == 0) {
        weft__free(loop, a);
        return 0;
    }
    *out = a;
    *n = m;
    return 0;
}

void weft__addrs_interleave(weft__addr *a, size_t n, int first)
{
    /* Stable selection in place, O(n^2) on a handful of addresses: at each
     * position pick the next address of the family whose turn it is. */
    int fams[2] = {0, 0};
    size_t nf = 0;
    for (size_t i = 0; i < n && nf < 2; i++)
        if (nf == 0 || a[i].family != fams[0])
            fams[nf++] = a[i].family;
    if (nf < 2)
        return; /* one family: nothing to interleave */
    size_t pos = 0;
    int turn = 0, run = first > 1 ? first : 1;
    while (pos < n) {
        size_t j = pos;
        while (j < n && a[j].family != fams[turn])
            j++;
        if (j == n) { /* that family ran out: the rest keeps its order */
            break;
        }
        weft__addr pick = a[j];
        memmove(&a[pos + 1], &a[pos], (j - pos) * sizeof *a);
        a[pos++] = pick;
        if (--run <= 0) {
            turn ^= 1;
            run = 1;
        }
    }
}

/* ---- name resolution ------------------------------------------------------------------------- */

static void resolve_run(weft_node *n)
{
    weft__resolve *r = WEFT_CONTAINER_OF(n, weft__resolve, node);
    weft_future *gai = r->gai;
    r->gai = NULL;
    int err = weft_future_error(gai);
    struct addrinfo *list = err ? NULL : weft_future_take_ptr(gai);
    weft_future_unref(gai);
    r->done(r, list, err);
}

int weft__resolve_start(weft__resolve *r, weft_loop *loop, const char *host, int port, int family,
                        bool passive, struct addrinfo **list)
{
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    if (host && !*host)
        host = NULL;
    r->gai = NULL;
    r->node = (weft_node){{NULL, NULL}, resolve_run};
    struct addrinfo numeric = hints, *res = NULL;
    numeric.ai_flags |= AI_NUMERICHOST;
    int rc = getaddrinfo(host, service, &numeric, &res);
    if (rc == 0) {
        *list = res;
        return 0;
    }
    if (!host || rc != EAI_NONAME)
        return weft_eai_error(rc); /* a numeric host of the wrong family, ... */
    weft_future *f = weft_getaddrinfo(loop, host, service, &hints);
    if (!f)
        return weft_last_error();
    r->gai = f;
    weft__future_wait(f, &r->node);
    return 1;
}

void weft__resolve_cancel(weft__resolve *r)
{
    weft_future *gai = r->gai;
    if (!gai)
        return;
    r->gai = NULL;
    if (weft__node_linked(&r->node))
        weft__node_unlink(&r->node);
    if (gai->state == WEFT__PENDING)
        weft__future_cancel(gai);
    else
        gai->flags |= WEFT__F_OBSERVED; /* done in this iteration: nobody looks */
    weft_future_unref(gai);
}
