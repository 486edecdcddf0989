/* backend_kqueue.c - the kqueue backend: the BSDs and macOS, and Linux
 * through libkqueue (cmake -DWEFT_KQUEUE_PREFIX=..., docs/portability.md).
 *
 * Interest changes queued by weft_io_start/stop reach the kernel as one
 * changelist (EV_ADD / EV_DELETE of EVFILT_READ and EVFILT_WRITE) submitted
 * with the wait itself: one kevent() call per iteration, however many
 * watchers changed.  Changes and events share one array (kevent allows
 * it), so the event list is never shorter than the changelist and the
 * kernel can return every refused change as an EV_ERROR entry instead of
 * failing the call.  Each registration carries its watcher in udata (no
 * lookup per event); w->backend records the filters the kernel was told
 * about.  The array holds two entries per watcher plus one, reserved at
 * weft_io_init, so apply and wait never allocate and every event of an
 * iteration fits.
 *
 * Cost: O(changes + ready events) per wait.  weft_io_close of a watcher
 * with kernel interest costs one kevent(): its filters are deleted at once,
 * so that no later event can name a freed watcher.
 *
 * Errors and end of file, read the way libuv and libev read them:
 *   - EV_ERROR on an EV_DELETE (udata NULL) is ignored: ENOENT and EBADF
 *     mean the kernel forgot the filter already (the fd was closed);
 *   - EV_ERROR on an EV_ADD is the kernel refusing the watcher's interest
 *     (EBADF: closed meanwhile; EINVAL, EPERM: a kind of file this kqueue
 *     cannot watch): weft__io_refused clears the interest and gives the
 *     callback WEFT_IO_ERROR; the next wait deletes the other filter;
 *   - EV_ERROR with data 0 is a receipt, not an error;
 *   - EV_EOF is a hang-up: readable and writable, as epoll reports
 *     EPOLLHUP; with a socket error in fflags, WEFT_IO_ERROR as well.
 *
 * The thread-safe wakeup is an EVFILT_USER event (NOTE_TRIGGER; EV_CLEAR
 * re-arms it as it is read) where the system has one, else a non-blocking
 * pipe.  -DWEFT_KQUEUE_PIPE_WAKEUP=1 forces the pipe, to test it where
 * EVFILT_USER exists.
 *
 * libkqueue differs from the kernels in ways that matter here (its
 * sys/event.h defines LIBKQUEUE):
 *   - it waits for events even when a change failed, and a wait that times
 *     out returns 0, dropping the EV_ERROR entries: under libkqueue the
 *     changelist goes in a kevent() call of its own, with EV_RECEIPT, right
 *     before the wait;
 *   - closing an fd does not drop its registrations: a forced apply
 *     deletes before it adds (kq_diff), and an fd closed behind a dup()
 *     leaves a stale registration that only a new kqueue clears
 *     (kq_rebuild);
 *   - it releases a closed kqueue asynchronously: kq_close waits for it.
 */
#include "backend.h"

#if WEFT__HAVE_KQUEUE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/event.h>
#include <time.h>
#include <unistd.h>

#if defined(EVFILT_USER) && !(defined(WEFT_KQUEUE_PIPE_WAKEUP) && WEFT_KQUEUE_PIPE_WAKEUP)
#define KQ_USER_WAKEUP 1
#else
#define KQ_USER_WAKEUP 0
#endif

enum {
    KQ_MAX_DIFF = 2,  /* changes per watcher and wait: one per filter */
    KQ_MAX_FORCE = 4, /* changes of a forced apply: two per filter */
    KQ_MIN_LIST = 64, /* entries of the change/event array to start with */
    KQ_WAKE_IDENT = 0 /* ident of the EVFILT_USER wakeup */
};

/* Longest single wait: one day.  libkqueue turns the timespec into int
 * milliseconds, and kernels refuse absurd timeouts; a wait cut short only
 * makes the loop compute its timeout again. */
#define KQ_MAX_WAIT_NS (INT64_C(86400) * 1000000000)

struct kq_state {
    int kq;
    int nchanges;        /* changes queued in list[0, nchanges) */
    int cap;             /* entries of list: >= KQ_MAX_DIFF * nwatch + 1 */
    int nwatch;          /* watchers added and not deleted */
    struct kevent *list; /* the changelist going in, the events coming out */
#if !KQ_USER_WAKEUP
    int wake_rd, wake_wr; /* the pipe; wake_rd is registered with udata = state */
#endif
#ifdef LIBKQUEUE
    int stale_fd; /* >= 0: move to a new kqueue at the next wait (kq_rebuild) */
#endif
};

static struct kq_state *kq_of(weft_loop *loop)
{
    return loop->be_data;
}

static unsigned kq_bit(short filter)
{
    return filter == EVFILT_READ ? WEFT_READABLE : filter == EVFILT_WRITE ? WEFT_WRITABLE : 0;
}

/* Writes to out[] the changes that turn the kernel's interest for w
 * (w->backend) into `want` and returns how many: at most KQ_MAX_DIFF, or
 * KQ_MAX_FORCE with `force`, which registers the wanted filters afresh
 * (EV_DELETE, then EV_ADD) because the fd may have been closed and its
 * number reused: a kernel forgot the old registration then, but libkqueue
 * keeps it, and an EV_ADD would modify it and never fire.  Records `want`
 * as told: kq_event takes back the bit of an EV_ADD the kernel refuses.
 * Deletions carry no watcher, so their errors are recognised and ignored. */
static int kq_diff(struct kevent *out, weft_io *w, unsigned want, bool force, unsigned short extra)
{
    static const short filters[KQ_MAX_DIFF] = {EVFILT_READ, EVFILT_WRITE};
    unsigned have = w->backend;
    int n = 0;
    for (int i = 0; i < KQ_MAX_DIFF; i++) {
        short filter = filters[i];
        unsigned bit = kq_bit(filter);
        if ((have & bit) && (force || !(want & bit)))
            EV_SET(&out[n++], (uintptr_t)w->fd, filter, EV_DELETE | extra, 0, 0, NULL);
        if ((want & bit) && (force || !(have & bit)))
            EV_SET(&out[n++], (uintptr_t)w->fd, filter, EV_ADD | extra, 0, 0, w);
    }
    w->backend = (uint8_t)want;
    return n;
}

#if !KQ_USER_WAKEUP
static void kq_drain_pipe(struct kq_state *s)
{
    char buf[64];
    while (read(s->wake_rd, buf, sizeof buf) > 0)
        ;
}
#endif

/* Reports one entry of the event list to the loop. */
static void kq_event(weft_loop *loop, struct kq_state *s, const struct kevent *e)
{
#if KQ_USER_WAKEUP
    (void)s;
    if (e->filter == EVFILT_USER)
        return; /* the wakeup; EV_CLEAR re-armed it */
#else
    if (e->udata == s) {
        kq_drain_pipe(s);
        return;
    }
#endif
    weft_io *w = e->udata;
    unsigned bit = kq_bit(e->filter);
    if (e->flags & EV_ERROR) {
        /* A refused change.  udata is NULL for deletions (nothing to do:
         * the kernel forgot the filter already); data 0 is a receipt. */
        if (w && e->data) {
            w->backend = (uint8_t)(w->backend & ~bit);
            weft__io_refused(loop, w, -(int)e->data);
            if (w->backend)
                weft__io_changed(loop, w); /* the next wait deletes the other filter */
        }
        return;
    }
    if (!w || w->fd != (int)e->ident || !bit)
        return; /* not a registration of ours: cannot happen, never trust it */
    unsigned ev = bit;
    if (e->flags & EV_EOF) {
        ev |= WEFT_READABLE | WEFT_WRITABLE; /* a hang-up, like EPOLLHUP */
        if (e->fflags)
            ev |= WEFT_IO_ERROR; /* the socket's pending error */
    }
    if (!weft__io_event(loop, w, ev)) {
        /* w wants none of it: the kernel has a filter w no longer asked
         * for.  Have the next wait delete it. */
        w->backend = (uint8_t)(w->backend | bit);
        weft__io_changed(loop, w);
    }
}

#ifdef LIBKQUEUE
/* Submits the queued changes alone and reports what the kernel refused.
 * EV_RECEIPT makes every change answer, so kevent() neither waits nor
 * stops at the first failure. */
static int kq_submit(weft_loop *loop, struct kq_state *s)
{
    int n = s->nchanges;
    s->nchanges = 0;
    if (!n)
        return 0;
    for (int i = 0; i < n; i++)
        s->list[i].flags |= EV_RECEIPT;
    int r = kevent(s->kq, s->list, n, s->list, n, NULL);
    if (r < 0)
        return -errno;
    for (int i = 0; i < r; i++)
        kq_event(loop, s, &s->list[i]);
    return 0;
}
#endif

/* The loop's timeout (< 0: none) as kevent's; NULL waits forever. */
static const struct timespec *kq_timeout(int64_t timeout_ns, struct timespec *ts)
{
    if (timeout_ns < 0)
        return NULL;
    if (timeout_ns > KQ_MAX_WAIT_NS)
        timeout_ns = KQ_MAX_WAIT_NS;
    /* To the nanosecond: kevent sleeps at least this long, so no timer is
     * seen before its deadline and nothing needs rounding. */
    ts->tv_sec = (time_t)(timeout_ns / 1000000000);
    ts->tv_nsec = (long)(timeout_ns % 1000000000);
    return ts;
}

/* Grows list to hold `need` entries; 0 or -ENOMEM (then it is unchanged). */
static int kq_reserve(weft_loop *loop, struct kq_state *s, int need)
{
    if (need <= s->cap)
        return 0;
    int cap = s->cap;
    while (cap < need)
        cap = cap > INT32_MAX / 2 ? need : cap * 2;
    struct kevent *list = weft__realloc(loop, s->list, (size_t)cap * sizeof *list);
    if (!list)
        return -ENOMEM;
    s->list = list;
    s->cap = cap;
    return 0;
}

/* FD_CLOEXEC, and O_NONBLOCK if asked: POSIX.1-2008 has no pipe2(). */
static int kq_fd_flags(int fd, bool nonblock)
{
    int fl = nonblock ? fcntl(fd, F_GETFL) : 0;
    if (fl < 0 || (nonblock && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

/* Registers the wakeup source with kqueue kq. */
static int kq_watch_wakeup(struct kq_state *s, int kq)
{
    struct kevent k;
#if KQ_USER_WAKEUP
    (void)s;
    EV_SET(&k, KQ_WAKE_IDENT, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL);
#else
    EV_SET(&k, (uintptr_t)s->wake_rd, EVFILT_READ, EV_ADD, 0, 0, s);
#endif
    return kevent(kq, &k, 1, NULL, 0, NULL) < 0 ? -errno : 0;
}

static int kq_open_wakeup(struct kq_state *s)
{
#if !KQ_USER_WAKEUP
    int p[2];
    if (pipe(p) < 0)
        return -errno;
    s->wake_rd = p[0];
    s->wake_wr = p[1];
    int err = kq_fd_flags(p[0], true);
    if (!err)
        err = kq_fd_flags(p[1], true);
    if (err)
        return err;
#endif
    return kq_watch_wakeup(s, s->kq);
}

#if defined(LIBKQUEUE) && defined(WEFT_LIBKQUEUE_DRAIN)
/* libkqueue on Linux frees a closed kqueue's own fds and memory in a thread
 * of its own, some time after close(); this waits for it (CMake defines
 * WEFT_LIBKQUEUE_DRAIN where libkqueue has it). */
void libkqueue_drain_pending_close(void);
#define kq_drain_closed() libkqueue_drain_pending_close()
#else
#define kq_drain_closed() ((void)0)
#endif

static void kq_free(weft_loop *loop, struct kq_state *s)
{
#if !KQ_USER_WAKEUP
    if (s->wake_rd >= 0)
        close(s->wake_rd);
    if (s->wake_wr >= 0)
        close(s->wake_wr);
#endif
    if (s->kq >= 0) {
        close(s->kq);
        kq_drain_closed();
    }
    weft__free(loop, s->list);
    weft__free(loop, s);
}

#ifdef LIBKQUEUE
/* libkqueue watches an fd through an epoll set of its own, and epoll keeps a
 * registration while any dup() of the file lives on.  Deleting the filters
 * of an fd closed before its watcher then succeeds and frees libkqueue's
 * record, yet leaves the epoll registration, and a later wait reads the
 * freed record.  So a watcher whose fd is found closed as its filters are
 * deleted makes the next wait move every registration to a new kqueue
 * first: closing the old one drops the stale registration with its epoll
 * set (what the epoll backend's rebuild does, for the same reason).  The
 * kernels drop an fd's registrations when it is closed: none of this is
 * needed there.  One fcntl() per deletion, under libkqueue only. */
static void kq_check_closed(struct kq_state *s, const weft_io *w)
{
    if (s->stale_fd < 0 && fcntl(w->fd, F_GETFD) < 0 && errno == EBADF)
        s->stale_fd = w->fd;
}

/* Re-registers the wakeup and every watcher's filters (w->backend) with a
 * new kqueue, then closes the old one.  A filter the new kqueue refuses
 * goes to weft__io_refused.  If no kqueue can be made, the old one stays
 * and the next wait tries again. */
static void kq_rebuild(weft_loop *loop, struct kq_state *s)
{
    int kq = kqueue();
    int err = kq < 0 ? -errno : kq_fd_flags(kq, false);
    if (!err)
        err = kq_watch_wakeup(s, kq);
    int n = 0;
    size_t nw = 0;
    for (size_t fd = 0; !err && fd < loop->nfds; fd++) {
        weft_io *w = loop->fds[fd];
        if (!w || !w->backend)
            continue;
        unsigned want = w->backend;
        w->backend = 0;
        n += kq_diff(&s->list[n], w, want, false, EV_RECEIPT); /* w->backend = want */
        nw++;
    }
    int r = !err && n ? kevent(kq, s->list, n, s->list, n, NULL) : 0;
    if (r < 0)
        err = -errno;
    if (err) {
        if (kq >= 0)
            close(kq);
        weft__reportf(loop, WEFT_REPORT_IO, err,
                      "kqueue: fd %d was closed while watched, and the kqueue could not be "
                      "rebuilt (retrying at the next wait)",
                      s->stale_fd);
        return;
    }
    for (int i = 0; i < r; i++)
        kq_event(loop, s, &s->list[i]);
    close(s->kq);
    kq_drain_closed();
    s->kq = kq;
    weft__reportf(loop, WEFT_REPORT_IO, -EBADF,
                  "kqueue: fd %d was closed while watched (a dup() may keep its registration "
                  "alive in libkqueue): rebuilt the kqueue, %zu watchers re-added",
                  s->stale_fd, nw);
    s->stale_fd = -1;
}
#else
#define kq_check_closed(s, w) ((void)0)
#endif

/* ---- the backend interface (backend.h says what each call must do) -------- */

static int kq_open(weft_loop *loop)
{
    struct kq_state *s = weft__alloc(loop, sizeof *s);
    if (!s)
        return -ENOMEM;
    *s = (struct kq_state){.kq = -1, .cap = KQ_MIN_LIST};
#if !KQ_USER_WAKEUP
    s->wake_rd = s->wake_wr = -1;
#endif
#ifdef LIBKQUEUE
    s->stale_fd = -1;
#endif
    int err = 0;
    s->list = weft__alloc(loop, (size_t)s->cap * sizeof *s->list);
    if (!s->list)
        err = -ENOMEM;
    if (!err && (s->kq = kqueue()) < 0)
        err = -errno;
    if (!err)
        err = kq_fd_flags(s->kq, false);
    if (!err)
        err = kq_open_wakeup(s);
    if (err) {
        kq_free(loop, s);
        return err;
    }
    loop->be_data = s;
    return 0;
}

/* Closing the kqueue drops every registration: no del per watcher.  Its
 * resources are gone when this returns, as with the kernels' kqueues. */
static void kq_close(weft_loop *loop)
{
    kq_free(loop, kq_of(loop));
    loop->be_data = NULL;
}

/* kqueue registers filters, not fds: validating the fd and reserving the
 * watcher's room in the array is all there is to do. */
static int kq_add(weft_loop *loop, weft_io *w)
{
    struct kq_state *s = kq_of(loop);
    if (fcntl(w->fd, F_GETFD) < 0)
        return -errno;
    if (s->nwatch >= (INT32_MAX - 1) / KQ_MAX_DIFF)
        return -ENOMEM;
    int err = kq_reserve(loop, s, KQ_MAX_DIFF * (s->nwatch + 1) + 1);
    if (err)
        return err;
    s->nwatch++;
    w->backend = 0;
    return 0;
}

/* Makes the kernel's interest w->events now (weft_add_reader's synchronous
 * errors).  On failure the kernel keeps what it accepted, as recorded in
 * w->backend; the first error is returned. */
static int kq_apply(weft_loop *loop, weft_io *w)
{
    struct kq_state *s = kq_of(loop);
    struct kevent ch[KQ_MAX_FORCE];
    unsigned before = w->backend;
    if (before)
        kq_check_closed(s, w);
    int n = kq_diff(ch, w, w->events, true, EV_RECEIPT);
    if (!n)
        return 0;
    int r = kevent(s->kq, ch, n, ch, n, NULL);
    if (r < 0) {
        int err = -errno;
        w->backend = (uint8_t)before;
        return err;
    }
    int err = 0;
    for (int i = 0; i < r; i++)
        if ((ch[i].flags & EV_ERROR) && ch[i].data && ch[i].udata) {
            w->backend = (uint8_t)(w->backend & ~kq_bit(ch[i].filter));
            if (!err)
                err = -(int)ch[i].data;
        }
    return err;
}

/* Deletes w's filters now.  ENOENT and EBADF (the fd is closed already)
 * are expected; EV_RECEIPT makes kevent() try every change regardless. */
static void kq_del(weft_loop *loop, weft_io *w)
{
    struct kq_state *s = kq_of(loop);
    struct kevent ch[KQ_MAX_DIFF];
    if (w->backend)
        kq_check_closed(s, w);
    int n = kq_diff(ch, w, 0, false, EV_RECEIPT);
    if (n)
        (void)kevent(s->kq, ch, n, ch, n, NULL);
    s->nwatch--;
}

static int kq_wait(weft_loop *loop, int64_t timeout_ns)
{
    struct kq_state *s = kq_of(loop);
    /* Room was reserved at add: at most two changes per watcher. */
    for (weft_io *w; (w = weft__io_next_change(loop)) != NULL;) {
        if (w->backend & ~w->events)
            kq_check_closed(s, w);
        s->nchanges += kq_diff(&s->list[s->nchanges], w, w->events, false, 0);
    }
#ifdef LIBKQUEUE
    int err = kq_submit(loop, s); /* receipts only: reads no event */
    if (err)
        return err;
    if (s->stale_fd >= 0)
        kq_rebuild(loop, s); /* before any wait on the stale kqueue */
#endif
    struct timespec ts;
    int n = s->nchanges;
    s->nchanges = 0;
    int r = kevent(s->kq, s->list, n, s->list, s->cap, kq_timeout(timeout_ns, &ts));
    if (r < 0)
        return -errno; /* EINTR: the changes were applied all the same */
    for (int i = 0; i < r; i++)
        kq_event(loop, s, &s->list[i]);
    return r;
}

/* Any thread, and signal handlers: one system call, errno preserved. */
static void kq_wakeup(weft_loop *loop)
{
    struct kq_state *s = kq_of(loop);
    int saved = errno;
#if KQ_USER_WAKEUP
    struct kevent k;
    EV_SET(&k, KQ_WAKE_IDENT, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL);
    (void)kevent(s->kq, &k, 1, NULL, 0, NULL);
#else
    static const char byte = 0;
    (void)!write(s->wake_wr, &byte, 1); /* EAGAIN: the pipe is full, a wakeup is pending */
#endif
    errno = saved;
}

const weft__backend weft__backend_kqueue = {
    .name = "kqueue",
    .open = kq_open,
    .close = kq_close,
    .add = kq_add,
    .apply = kq_apply,
    .del = kq_del,
    .wait = kq_wait,
    .wakeup = kq_wakeup,
};
#else
typedef int weft__no_kqueue; /* ISO C: a translation unit must not be empty */
#endif
