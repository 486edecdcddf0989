/* backend.h - the interface every readiness backend fills.
 *
 * A backend is one file (backend_epoll.c, backend_poll.c, later
 * backend_kqueue.c) defining one `const weft__backend`, plus one entry in
 * the table in backend.c, guarded by the same feature macro as its file
 * (the macros are below).  Nothing else in weft knows which backends exist.
 *
 * The loop owns the watchers (weft_io, see weft/loop.h) and tells the
 * backend about them through these calls, all from the loop thread except
 * wakeup:
 *
 *   open(loop)      Create the backend's state in loop->be_data, including
 *                   the wakeup source (eventfd, a non-blocking CLOEXEC
 *                   pipe, EVFILT_USER, ...).  0 or -errno; on failure
 *                   nothing is left behind.
 *   close(loop)     Release all of it.  Every watcher is forgotten: the
 *                   loop does not call del for each one first.
 *   add(loop, w)    Validate w->fd and register it, with no interest yet:
 *                   the synchronous errors of weft_io_init come from here
 *                   (-EBADF, -EPERM for an fd kind the backend cannot
 *                   watch, -EEXIST, -ENOMEM).  Called before the loop's fd
 *                   table grows, so a bad fd costs no memory.  Reserve here
 *                   whatever apply and wait need for w: they cannot fail
 *                   for lack of memory.
 *   apply(loop, w)  Make the kernel's interest for w equal w->events now,
 *                   even if the backend believes it already is (the fd may
 *                   have been closed and its number reused).  0 or -errno;
 *                   the loop rolls back on error (weft_add_reader's
 *                   synchronous errors).
 *   del(loop, w)    Forget w (weft_io_close).  Never fails: if the kernel
 *                   refuses, the backend repairs its state at the next
 *                   wait.
 *   wait(loop, ns)  Apply the change list (weft__io_next_change until NULL;
 *                   a change the kernel refuses goes to weft__io_refused),
 *                   wait up to ns (< 0: forever; round with
 *                   weft__timeout_ms so that nothing fires early), report
 *                   each ready watcher with weft__io_event, and drain the
 *                   wakeup source.  Returns the number of events, or -errno
 *                   (-EINTR is counted and ignored by the loop).
 *   wakeup(loop)    Make a wait in progress (or the next one) return.  Any
 *                   thread, async-signal-safe; never fails (a wakeup
 *                   already pending is enough).
 *
 * What a backend may read and write:
 *   loop->be_data      its own state (open sets it, close frees it);
 *   w->fd, w->loop     fixed while w is registered;
 *   w->events          the interest the loop wants (WEFT_READABLE |
 *                      WEFT_WRITABLE), read-only for the backend;
 *   w->backend         one byte of the backend's own per-watcher state
 *                      (what the kernel was told, for instance); 0 when add
 *                      is called;
 *   loop->fds[0 .. loop->nfds - 1]  every registered watcher by fd (NULL
 *                      where none), read-only: to re-register them all, as
 *                      the epoll backend's rebuild does.
 * and the helpers below.  The loop counts waits and EINTRs itself, marks
 * blocking waits idle for the lag watchdog, and calls wait even when no
 * watcher is registered (the wakeup source must still work then).
 *
 * The kqueue backend (src/backend_kqueue.c, under WEFT__HAVE_KQUEUE)
 * submits the change list as the changelist of the wait's own kevent()
 * call, with an event list at least as long, so that the kernel returns a
 * refused change as an EV_ERROR entry (weft__io_refused) instead of failing
 * the call; EVFILT_USER + NOTE_TRIGGER (a pipe where it is missing) wakes
 * it.  It comes after epoll in backend.c's table: the default on the BSDs
 * and macOS, selectable by name on Linux with libkqueue.
 */
#ifndef WEFT_BACKEND_H
#define WEFT_BACKEND_H

#include "backend_features.h" /* WEFT__HAVE_EPOLL, WEFT__HAVE_KQUEUE */
#include "loop_impl.h"

typedef struct weft__backend {
    const char *name;
    int (*open)(weft_loop *loop);
    void (*close)(weft_loop *loop);
    int (*add)(weft_loop *loop, weft_io *w);
    int (*apply)(weft_loop *loop, weft_io *w);
    void (*del)(weft_loop *loop, weft_io *w);
    int (*wait)(weft_loop *loop, int64_t timeout_ns);
    void (*wakeup)(weft_loop *loop);
} weft__backend;

extern const weft__backend weft__backend_poll;
#if WEFT__HAVE_EPOLL
extern const weft__backend weft__backend_epoll;
#endif
#if WEFT__HAVE_KQUEUE
extern const weft__backend weft__backend_kqueue;
#endif

/* The backend called name, or the best one for NULL; NULL if unknown. */
const weft__backend *weft__backend_find(const char *name);

/* A wait timeout in ns as poll/epoll milliseconds: -1 (forever) for < 0,
 * else rounded up (never early) and clamped to INT_MAX. */
int weft__timeout_ms(int64_t timeout_ns);

/* ---- what the backend calls in the loop ------------------------------------------- */

/* w is ready with `events` (WEFT_READABLE | WEFT_WRITABLE | WEFT_IO_ERROR;
 * errors and hang-ups as readable and writable): queue its callback once
 * for this iteration, with every event seen.  Returns the events kept (those
 * in w's interest, and errors); 0 means w wanted none of them, and the
 * backend should stop watching the fd (a hang-up reported to an fd with no
 * interest would otherwise wake every wait). */
static inline unsigned weft__io_event(weft_loop *loop, weft_io *w, unsigned events)
{
    events &= w->events | WEFT_IO_ERROR;
    if (events) {
        w->revents = (uint8_t)(w->revents | events);
        if (!weft__node_linked(&w->node))
            weft__ready_push(loop, &w->node);
    }
    return events;
}

/* The kernel refused w's change with -errno err (the fd was closed): w's
 * interest is cleared and its callback gets WEFT_IO_ERROR. */
void weft__io_refused(weft_loop *loop, weft_io *w, int err);

/* The next watcher whose interest changed (taken off the change list), or
 * NULL. */
weft_io *weft__io_next_change(weft_loop *loop);

/* Queue w for the next wait's change list (the backend's own lazy work:
 * stop watching an fd nobody wants events from). */
void weft__io_changed(weft_loop *loop, weft_io *w);

#endif
