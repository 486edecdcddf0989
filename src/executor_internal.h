/* executor_internal.h - what resolve.c and the tests use of the executor.
 * Never installed.
 *
 * A job can carry its argument in its own block (weft__job_new with extra
 * bytes), so that a getaddrinfo costs one allocation: the job, the copied
 * host and service strings and the hints.
 */
#ifndef WEFT_EXECUTOR_INTERNAL_H
#define WEFT_EXECUTOR_INTERNAL_H

#include <pthread.h>

#include "future_internal.h"
#include "weft/executor.h"

typedef struct weft__job weft__job;

/* Job flags for weft__job_submit. */
enum {
    /* The argument is the result block: fn stores out->p = arg on success,
     * and the destructor releases arg in every other case (a failure, a
     * job dropped before it ran, a result discarded). */
    WEFT__JOB_ARG_IS_RESULT = 1u << 0,
};

/* A job for loop with `extra` bytes (16-byte aligned, uninitialised) after
 * it, at *extra_out: checks the loop (-EINVAL, WEFT_ECLOSED, -EPERM) and
 * allocates (-ENOMEM).  NULL on failure, weft_last_error() says why.
 * Submit it or give it back with weft__job_discard. */
weft__job *weft__job_new(weft_loop *loop, size_t extra, void **extra_out);

/* Give back a job weft__job_new made and nobody submitted. */
void weft__job_discard(weft__job *j);

/* Queue j on ex (NULL: the loop's default executor) to run fn(arg), with
 * destructor dtor for a pointer result, flags WEFT__JOB_*, and what (a
 * static string, or NULL: fn's symbol) naming it in reports.  Consumes j:
 * on failure it is released (the ARG_IS_RESULT argument is not: the
 * caller still owns it), and NULL is returned with weft_last_error(). */
weft_future *weft__job_submit(weft__job *j, weft_executor *ex, weft_work_fn *fn, void *arg,
                              weft_dtor *dtor, unsigned flags, const char *what);

/* Test seams.  spawn replaces pthread_create (NULL: pthread_create), so
 * tests can make thread creation fail; before_wait(ud) is called, without
 * the executor's lock, right before close or shutdown starts a blocking
 * wait for workers, so a test can release a job exactly then. */
typedef int weft__spawn_fn(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
void weft__executor_set_seams(weft_executor *ex, weft__spawn_fn *spawn,
                              void (*before_wait)(void *ud), void *ud);

#endif
