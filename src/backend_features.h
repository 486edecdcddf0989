/* backend_features.h - which readiness backends this build has.
 *
 * One feature check per backend file (poll has none: it is always built).
 * backend.h and backend.c use them to declare and list the backends; tests
 * include this file alone to run their fd tests on each backend built.
 */
#ifndef WEFT_BACKEND_FEATURES_H
#define WEFT_BACKEND_FEATURES_H

#if defined(__linux__)
#define WEFT__HAVE_EPOLL 1
#else
#define WEFT__HAVE_EPOLL 0
#endif

/* kqueue is in libc on the BSDs and macOS; elsewhere only when the build
 * provides one (WEFT_HAVE_KQUEUE: cmake -DWEFT_KQUEUE_PREFIX, libkqueue). */
#if defined(WEFT_HAVE_KQUEUE) || defined(__APPLE__) || defined(__FreeBSD__) || \
    defined(__NetBSD__) || defined(__OpenBSD__) || defined(__DragonFly__)
#define WEFT__HAVE_KQUEUE 1
#else
#define WEFT__HAVE_KQUEUE 0
#endif

#endif
