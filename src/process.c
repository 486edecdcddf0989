/* process.c - subprocesses: spawn with posix_spawn, reap with a pidfd or on
 * SIGCHLD, wait futures, signals.
 *
 * Spawning.  Every fd weft opens for a child (pipe ends, /dev/null, the
 * copy of a caller's fd) is close-on-exec and numbered 3 or above, so that
 * the file actions are plain dup2s onto 0, 1 and 2 (which clear the flag
 * on the copy) in any order, and nothing else reaches the child.  glibc's
 * posix_spawn runs the child with CLONE_VFORK and returns the exec's errno
 * through its own pipe: a missing program is -ENOENT from the call itself.
 *
 * Reaping.  A process object is in its loop's list from spawn until it is
 * freed; `reaped` says whether its child was waited for.  With a pidfd the
 * loop watches it (readable: the child exited) and then calls
 * waitpid(pid, WNOHANG); with SIGCHLD the loop's handler tries every
 * child not yet reaped.  Either way the pid cannot be reused before weft
 * waits for it, so waitpid and kill on it are safe.  A process freed
 * before its child exits stays in the list, marked dropped, and is freed
 * once reaped.
 *
 * Loop close kills and reaps every child still running (blocking in
 * waitpid: after SIGKILL that is short), completes every wait future, and
 * keeps the objects users still hold until destroy.
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "future_internal.h"
#include "process_internal.h"
#include "signal_internal.h"
#include "weft/process.h"
#include "weft/stream.h"

extern char **environ;

/* Three calls beyond POSIX.1-2008 that the libcs below export, declared
 * here with their libc prototypes rather than by asking every header for
 * _GNU_SOURCE (weft's sources are built as plain POSIX; see
 * cmake/portability_check.cmake). */
#if defined(__linux__) && defined(SYS_pidfd_open)
#define HAVE_PIDFD 1
long syscall(long number, ...);
#else
#define HAVE_PIDFD 0
#endif

#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
#define HAVE_PIPE2 1
int pipe2(int fds[2], int flags);
#else
#define HAVE_PIPE2 0
#endif

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#define HAVE_ADDCHDIR 1
int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *restrict fa,
                                         const char *restrict path);
#elif defined(__APPLE__) || defined(__FreeBSD__)
#define HAVE_ADDCHDIR 1 /* declared by <spawn.h> without feature macros */
#else
#define HAVE_ADDCHDIR 0
#endif

enum { REAP_PIDFD, REAP_SIGCHLD };

typedef struct proc_layer {
    weft__layer base;
    weft_loop *loop;
    weft_link procs; /* every process object not yet freed */
    size_t running;  /* of which: children not reaped */
    bool sigchld;    /* our SIGCHLD handler is installed */
    bool no_pidfd;   /* pidfd_open is missing (ENOSYS) or forced off */
} proc_layer;

struct weft_process {
    weft_link link; /* in the layer's procs */
    proc_layer *L;
    pid_t pid;
    int rc; /* returncode once reaped */
    bool reaped;
    bool dropped;               /* freed by the user while the child ran */
    uint8_t reaper;             /* REAP_* */
    int pidfd;                  /* -1: none */
    weft_io io;                 /* watches pidfd */
    weft_link waits;            /* pending wait futures */
    int fds[3];                 /* the parent's ends of the pipes (-1: none, or a stream's) */
    weft_stream *streams[3];    /* pipes made streams (weft_process_stdin...) */
    struct comm *comm;          /* the communicate in progress, or NULL */
    weft_process_output output; /* the last one's result */
    bool has_output;
};

/* A wait future: pending in its process's list, held until it completes. */
typedef struct proc_wait {
    weft_future f;
    weft__hold hold;
    weft_link link; /* in p->waits while pending */
} proc_wait;

/* One pipe a communicate watches. */
typedef struct comm_pipe {
    weft_io io;
    struct comm *c;
    int i;       /* 0 stdin, 1 stdout, 2 stderr */
    bool active; /* io initialised, pipe not finished */
    char *buf;   /* stdout / stderr: what arrived (cap > len: room for the NUL) */
    size_t len, cap;
    weft_future *rd; /* a stream's read to EOF (the pipe is a stream), or NULL */
} comm_pipe;

/* A communicate: a future of its own kind, held while pending. */
typedef struct comm {
    weft_future f;
    weft__hold hold;
    weft_process *p;
    comm_pipe pipe[3];
    char *in; /* the copy of the input */
    size_t in_len, in_off;
} comm;

static void comm_check(comm *c);

/* Test seams (process_internal.h). */
int weft__process_fail_pidfd;

/* ---- small helpers ---------------------------------------------------------------- */

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* fd moved to a number >= 3, close-on-exec (the original is closed).
 * -errno on failure (fd is then closed too). */
static int fd_up(int *fd)
{
    if (*fd >= 3)
        return 0;
    int up = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    int err = up < 0 ? -errno : 0;
    close(*fd);
    *fd = up;
    return err;
}

static int make_pipe(int fds[2])
{
#if HAVE_PIPE2
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
#else
    /* without pipe2 a fork in another thread may copy the ends before
     * they are marked; posix_spawn children still never keep them */
    if (pipe(fds) < 0)
        return -errno;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
#endif
    int err = fd_up(&fds[0]);
    int err2 = fd_up(&fds[1]);
    if (err || err2) {
        close_fd(&fds[0]);
        close_fd(&fds[1]);
        return err ? err : err2;
    }
    return 0;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* The returncode of a wait status. */
static int status_rc(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return -WTERMSIG(st);
    return 255;
}

/* ---- the layer --------------------------------------------------------------------- */

static void layer_close(weft_loop *loop, weft__layer *self);
static void layer_destroy(weft_loop *loop, weft__layer *self);
static void layer_dump(weft_loop *loop, weft__layer *self, weft__strbuf *out);

static proc_layer *layer_of(weft_loop *loop, bool create)
{
    weft__layer *l = weft__layer_get(loop, WEFT__LAYER_PROCESS);
    if (l || !create)
        return (proc_layer *)(void *)l;
    proc_layer *L = weft__alloc(loop, sizeof *L);
    if (!L)
        return NULL;
    memset(L, 0, sizeof *L);
    L->base.close = layer_close;
    L->base.destroy = layer_destroy;
    L->base.dump = layer_dump;
    L->loop = loop;
    weft__list_init(&L->procs);
    if (loop->flags & WEFT_LOOP_ENV) {
        const char *env = getenv("WEFT_PROCESS_REAPER");
        L->no_pidfd = env && strcmp(env, "sigchld") == 0;
    }
    weft__layer_set(loop, WEFT__LAYER_PROCESS, &L->base);
    return L;
}

/* ---- reaping ---------------------------------------------------------------------------- */

static void proc_destroy(weft_process *p);
static void sigchld_cb(weft_loop *loop, int signo, void *ud);

/* The child of p was reaped with returncode rc: record it, stop watching,
 * complete the waits; a dropped p is freed. */
static void exited(weft_process *p, int rc)
{
    proc_layer *L = p->L;
    p->reaped = true;
    p->rc = rc;
    L->running--;
    if (p->pidfd >= 0) {
        weft_io_close(&p->io);
        close_fd(&p->pidfd);
    }
    while (!weft__list_empty(&p->waits)) {
        proc_wait *w = WEFT_CONTAINER_OF(p->waits.next, proc_wait, link);
        weft__list_unlink(&w->link);
        weft__future_resolve(&w->f, (weft_value){.i = rc});
        weft__future_unhold(&w->hold);
    }
    if (p->comm)
        comm_check(p->comm); /* it may have been waiting for the exit only */
    else if (p->dropped)
        proc_destroy(p);
}

/* Try to reap p's child without blocking (or blocking, after a kill at
 * close).  True if it is gone. */
static bool try_reap(weft_process *p, bool block)
{
    int st = 0;
    pid_t r;
    do
        r = waitpid(p->pid, &st, block ? 0 : WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return false;
    if (r < 0) {
        /* ECHILD: someone else (a waitpid(-1) elsewhere in the program)
         * took the status; asyncio reports 255 then, as weft does */
        weft__reportf(p->L->loop, WEFT_REPORT_OTHER, -errno,
                      "child %ld was reaped by someone else: returncode 255 reported",
                      (long)p->pid);
        exited(p, 255);
        return true;
    }
    exited(p, status_rc(st));
    return true;
}

static void pidfd_ready(weft_io *w, unsigned events)
{
    (void)events;
    try_reap(WEFT_CONTAINER_OF(w, weft_process, io), false);
}

/* SIGCHLD: try every child of this loop that is not reaped yet. */
static void sigchld_cb(weft_loop *loop, int signo, void *ud)
{
    (void)loop, (void)signo;
    proc_layer *L = ud;
    for (weft_link *l = L->procs.next, *next; l != &L->procs; l = next) {
        next = l->next; /* exited() may free a dropped process */
        weft_process *p = WEFT_CONTAINER_OF(l, weft_process, link);
        if (!p->reaped)
            try_reap(p, false);
    }
}

/* Make the loop reap p's child: a pidfd watcher, else the SIGCHLD
 * handler.  0 or the error of the last way tried. */
static int watch_child(proc_layer *L, weft_process *p)
{
#if HAVE_PIDFD
    if (!L->no_pidfd) {
        int fd = weft__process_fail_pidfd ? (errno = weft__process_fail_pidfd, -1)
                                          : (int)syscall(SYS_pidfd_open, p->pid, 0);
        if (fd < 0 && errno == ENOSYS)
            L->no_pidfd = true; /* older kernel: never again */
        if (fd >= 0) {
            if (weft_io_init(&p->io, L->loop, fd, pidfd_ready) == 0) {
                weft_io_start(&p->io, WEFT_READABLE);
                p->pidfd = fd;
                p->reaper = REAP_PIDFD;
                return 0;
            }
            close(fd);
        }
    }
#endif
    if (!L->sigchld) {
        int err = weft__signal_add(L->loop, SIGCHLD, sigchld_cb, L);
        if (err)
            return err;
        L->sigchld = true;
    }
    p->reaper = REAP_SIGCHLD;
    /* a SIGCHLD that came before the handler existed is not lost: the
     * child is tried once now */
    return 0;
}

/* ---- spawn ------------------------------------------------------------------------------- */

/* The fds of one spawn: what each child fd gets (-1: inherited) and the
 * parent's end of each pipe. */
typedef struct stdio_plan {
    int child[3];
    int parent[3];
} stdio_plan;

static void plan_close(stdio_plan *sp)
{
    for (int i = 0; i < 3; i++) {
        close_fd(&sp->child[i]);
        close_fd(&sp->parent[i]);
    }
}

static int plan_one(stdio_plan *sp, int i, const weft_stdio *s)
{
    int fds[2], err;
    switch (s->kind) {
    case WEFT_STDIO_INHERIT:
    case WEFT_STDIO_STDOUT:
        return 0;
    case WEFT_STDIO_PIPE:
        err = make_pipe(fds);
        if (err)
            return err;
        sp->child[i] = i == 0 ? fds[0] : fds[1];
        sp->parent[i] = i == 0 ? fds[1] : fds[0];
        return 0;
    case WEFT_STDIO_DEVNULL:
        sp->child[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (sp->child[i] < 0)
            return -errno;
        return fd_up(&sp->child[i]);
    case WEFT_STDIO_FD:
        sp->child[i] = fcntl(s->fd, F_DUPFD_CLOEXEC, 3);
        return sp->child[i] < 0 ? -errno : 0;
    }
    return -EINVAL;
}

/* 0 if s is a valid setting for child fd i, else -EINVAL or -EBADF. */
static int stdio_check(const weft_stdio *s, int i)
{
    switch (s->kind) {
    case WEFT_STDIO_INHERIT:
    case WEFT_STDIO_PIPE:
    case WEFT_STDIO_DEVNULL:
        return 0;
    case WEFT_STDIO_FD:
        return s->fd >= 0 && fcntl(s->fd, F_GETFD) >= 0 ? 0 : -EBADF;
    case WEFT_STDIO_STDOUT:
        return i == 2 ? 0 : -EINVAL;
    }
    return -EINVAL;
}

/* SIGPIPE's default action would kill the program on a write to a child
 * that exited: ignore it once, if nobody chose otherwise. */
static void ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
        sa.sa_handler == SIG_DFL) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
    }
}

/* posix_spawn with the plan.  0 with *pid, or -errno. */
static int do_spawn(char *const argv[], const weft_process_opts *o, const stdio_plan *sp,
                    pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc)
        return -rc;
    rc = posix_spawnattr_init(&attr);
    if (rc) {
        posix_spawn_file_actions_destroy(&fa);
        return -rc;
    }
    for (int i = 0; i < 3 && !rc; i++)
        if (sp->child[i] >= 0)
            rc = posix_spawn_file_actions_adddup2(&fa, sp->child[i], i);
    if (!rc && o->err.kind == WEFT_STDIO_STDOUT)
        rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
#if HAVE_ADDCHDIR
    if (!rc && o->cwd)
        rc = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
#else
    if (!rc && o->cwd)
        rc = ENOTSUP;
#endif
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    if (!rc)
        rc = posix_spawnattr_setsigmask(&attr, &none);
    if (!rc)
        rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (!rc)
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (!rc) {
        const char *file = o->file ? o->file : argv[0];
        char *const *envp = o->envp ? o->envp : environ;
        rc = o->no_path_search ? posix_spawn(pid, file, &fa, &attr, argv, envp)
                               : posix_spawnp(pid, file, &fa, &attr, argv, envp);
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return -rc;
}

int weft_process_spawn(weft_loop *loop, char *const argv[], const weft_process_opts *opts,
                       weft_process **out)
{
    static const weft_process_opts defaults;
    const weft_process_opts *o = opts ? opts : &defaults;
    if (!loop || !argv || !argv[0] || !out)
        return -EINVAL;
    const weft_stdio *io[3] = {&o->in, &o->out, &o->err};
    for (int i = 0; i < 3; i++) {
        int err = stdio_check(io[i], i);
        if (err)
            return err;
    }
    if (weft__wrong_thread(loop, "weft_process_spawn"))
        return -EPERM;
    if (weft__closed(loop))
        return WEFT_ECLOSED;
#if !HAVE_ADDCHDIR
    if (o->cwd)
        return -ENOTSUP;
#endif
    proc_layer *L = layer_of(loop, true);
    if (!L)
        return -ENOMEM;
    weft_process *p = weft__alloc(loop, sizeof *p);
    if (!p)
        return -ENOMEM;
    memset(p, 0, sizeof *p);
    p->L = L;
    p->pidfd = -1;
    weft__list_init(&p->waits);

    stdio_plan sp = {{-1, -1, -1}, {-1, -1, -1}};
    int err = 0;
    for (int i = 0; i < 3 && !err; i++)
        err = plan_one(&sp, i, io[i]);
    for (int i = 0; i < 3 && !err; i++)
        if (sp.parent[i] >= 0)
            err = set_nonblock(sp.parent[i]);
    if (!err && sp.parent[0] >= 0)
        ignore_sigpipe();
    if (!err)
        err = do_spawn(argv, o, &sp, &p->pid);
    if (err) {
        plan_close(&sp);
        weft__free(loop, p);
        return err;
    }
    for (int i = 0; i < 3; i++) {
        close_fd(&sp.child[i]);
        p->fds[i] = sp.parent[i];
    }
    weft__list_push(&L->procs, &p->link);
    L->running++;
    err = watch_child(L, p);
    if (err) {
        /* nobody could reap it later: undo the spawn */
        kill(p->pid, SIGKILL);
        try_reap(p, true);
        weft__list_unlink(&p->link);
        for (int i = 0; i < 3; i++)
            close_fd(&p->fds[i]);
        weft__free(loop, p);
        return err;
    }
    if (p->reaper == REAP_SIGCHLD)
        try_reap(p, false);
    *out = p;
    return 0;
}

/* ---- the process object -------------------------------------------------------------- */

pid_t weft_process_pid(const weft_process *p)
{
    return p ? p->pid : -1;
}

weft_loop *weft_process_loop(const weft_process *p)
{
    return p ? p->L->loop : NULL;
}

const char *weft_process_reaper(const weft_process *p)
{
    return !p ? NULL : p->reaper == REAP_PIDFD ? "pidfd" : "sigchld";
}

int weft_process_returncode(const weft_process *p, int *rc)
{
    if (!p)
        return -EINVAL;
    if (!p->reaped)
        return WEFT_ESTATE;
    if (rc)
        *rc = p->rc;
    return 0;
}

int weft_process_send_signal(weft_process *p, int signo)
{
    if (!p || signo < 0)
        return -EINVAL; /* kill() refuses numbers beyond the last signal */
    if (weft__wrong_thread(p->L->loop, "weft_process_send_signal"))
        return -EPERM;
    if (p->reaped)
        return -ESRCH;
    if (kill(p->pid, signo) < 0)
        return -errno;
    return 0;
}

int weft_process_terminate(weft_process *p)
{
    return weft_process_send_signal(p, SIGTERM);
}

int weft_process_kill(weft_process *p)
{
    return weft_process_send_signal(p, SIGKILL);
}

/* Close what p owns and free it (its child was reaped, or the loop is
 * being destroyed). */
static void proc_destroy(weft_process *p)
{
    weft_loop *loop = p->L->loop;
    weft__list_unlink(&p->link);
    if (p->comm)
        weft__future_cancel(&p->comm->f);
    for (int i = 0; i < 3; i++) {
        close_fd(&p->fds[i]);
        weft_stream_free(p->streams[i]);
        p->streams[i] = NULL;
    }
    if (p->pidfd >= 0) {
        weft_io_close(&p->io);
        close_fd(&p->pidfd);
    }
    weft__free(loop, p->output.out);
    weft__free(loop, p->output.err);
    weft__free(loop, p);
}

void weft_process_free(weft_process *p)
{
    if (!p || p->dropped)
        return;
    if (p->comm)
        weft__future_cancel(&p->comm->f);
    for (int i = 0; i < 3; i++) {
        close_fd(&p->fds[i]);
        weft_stream_free(p->streams[i]); /* a write stream still flushes */
        p->streams[i] = NULL;
    }
    if (p->reaped)
        proc_destroy(p);
    else
        p->dropped = true; /* freed once reaped */
}

/* ---- wait futures -------------------------------------------------------------------------- */

static int wait_cancel(weft_future *f)
{
    proc_wait *w = WEFT_CONTAINER_OF(f, proc_wait, f);
    weft__list_unlink(&w->link);
    int err = weft__future_cancel_now(f);
    weft__future_unhold(&w->hold);
    return err;
}

static void wait_release(weft_future *f)
{
    proc_wait *w = WEFT_CONTAINER_OF(f, proc_wait, f);
    weft__pool_put(weft__pool_of(f->loop), WEFT__POOL_ANY, w, sizeof *w);
}

static const weft__future_ops wait_ops = {
    .kind = "process wait",
    .cancel = wait_cancel,
    .release = wait_release,
};

weft_future *weft_process_wait(weft_process *p)
{
    if (!p) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    weft_loop *loop = p->L->loop;
    if (weft__wrong_thread(loop, "weft_process_wait")) {
        weft__set_last_error(-EPERM);
        return NULL;
    }
    if (p->reaped) { /* a plain future, done: this works on a closed loop too */
        weft_future *f = weft_future_new(loop);
        if (f)
            weft_future_set_int(f, p->rc);
        return f;
    }
    weft__pool *pool = weft__pool_of(loop);
    proc_wait *w = pool ? weft__pool_get(pool, WEFT__POOL_ANY, sizeof *w) : NULL;
    if (!w) {
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    memset(w, 0, sizeof *w);
    weft__future_init(&w->f, &wait_ops, loop);
    weft__list_push(&p->waits, &w->link);
    weft__future_hold(&w->f, &w->hold);
    return &w->f;
}

/* ---- communicate ------------------------------------------------------------------------------
 */

#define COMM_BUF0 4096
#define COMM_BUDGET (256 * 1024) /* bytes read per callback: other work runs between */

/* Stop watching pipe i; finished: its fd is closed too (the pipe is used up). */
static void comm_pipe_stop(comm *c, int i, bool finished)
{
    comm_pipe *cp = &c->pipe[i];
    if (cp->active && cp->rd) {
        cp->active = false;
        weft_future *rd = cp->rd;
        cp->rd = NULL;
        weft_future_cancel(rd); /* not finished: the stream keeps its data */
        weft_future_unref(rd);  /* its done callback still holds one */
    } else if (cp->active) {
        weft_io_close(&cp->io);
        cp->active = false;
    }
    if (finished)
        close_fd(&c->p->fds[i]);
}

/* Withdraw everything c registered and free what it collected. */
static void comm_stop(comm *c)
{
    weft_loop *loop = c->f.loop;
    for (int i = 0; i < 3; i++) {
        comm_pipe_stop(c, i, false);
        weft__free(loop, c->pipe[i].buf);
        c->pipe[i].buf = NULL;
    }
    weft__free(loop, c->in);
    c->in = NULL;
    c->p->comm = NULL;
}

static void comm_fail(comm *c, int err)
{
    comm_stop(c);
    weft__future_fail(&c->f, err);
    weft__future_unhold(&c->hold); /* last: it may free c */
}

/* Done once every pipe is finished and the child was reaped. */
static void comm_check(comm *c)
{
    weft_process *p = c->p;
    for (int i = 0; i < 3; i++)
        if (c->pipe[i].active)
            return;
    if (!p->reaped)
        return;
    weft_loop *loop = c->f.loop;
    weft__free(loop, p->output.out);
    weft__free(loop, p->output.err);
    p->output = (weft_process_output){.returncode = p->rc};
    p->output.out = c->pipe[1].buf;
    p->output.out_len = c->pipe[1].len;
    p->output.err = c->pipe[2].buf;
    p->output.err_len = c->pipe[2].len;
    p->has_output = true;
    c->pipe[1].buf = c->pipe[2].buf = NULL;
    comm_stop(c);
    weft__future_resolve(&c->f, (weft_value){.p = &p->output});
    weft__future_unhold(&c->hold);
}

static void comm_write(comm_pipe *cp)
{
    comm *c = cp->c;
    int fd = c->p->fds[0];
    while (c->in_off < c->in_len) {
        ssize_t k = write(fd, c->in + c->in_off, c->in_len - c->in_off);
        if (k > 0) {
            c->in_off += (size_t)k;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            break; /* EPIPE: the child stopped reading; the rest is dropped */
        }
    }
    comm_pipe_stop(c, 0, true); /* closing stdin: the child reads EOF */
    comm_check(c);
}

static void comm_read(comm_pipe *cp)
{
    comm *c = cp->c;
    int fd = c->p->fds[cp->i];
    for (size_t got = 0;;) {
        if (cp->cap - cp->len < 2) {
            size_t cap = cp->cap * 2;
            char *nb = cap > cp->cap ? weft__realloc(c->f.loop, cp->buf, cap) : NULL;
            if (!nb) {
                comm_fail(c, -ENOMEM);
                return;
            }
            cp->buf = nb;
            cp->cap = cap;
        }
        ssize_t k = read(fd, cp->buf + cp->len, cp->cap - cp->len - 1);
        if (k > 0) {
            cp->len += (size_t)k;
            cp->buf[cp->len] = 0;
            got += (size_t)k;
            if (got >= COMM_BUDGET)
                return; /* level-triggered: the rest next iteration */
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            break; /* EOF (or an error, which ends the pipe as well) */
        }
    }
    comm_pipe_stop(c, cp->i, true);
    comm_check(c);
}

static void comm_ready(weft_io *w, unsigned events)
{
    (void)events;
    comm_pipe *cp = WEFT_CONTAINER_OF(w, comm_pipe, io);
    if (cp->i == 0)
        comm_write(cp);
    else
        comm_read(cp);
}

/* A stream's read to EOF is done.  The callback holds a reference to the
 * communicate (its memory stays until the callback ran, even if it ended
 * meanwhile) and one to the read. */
static void comm_stream_done(weft_future *rd, void *arg)
{
    comm_pipe *cp = arg;
    comm *c = cp->c;
    if (cp->rd == rd && c->f.state == WEFT__PENDING) {
        weft_value v = {0};
        int err = weft_future_result(rd, &v);
        cp->rd = NULL;
        cp->active = false;
        weft_future_unref(rd); /* the communicate's own reference */
        if (!err) {
            const weft_bytes *b = v.p;
            if (b->len >= cp->cap) {
                char *nb = weft__realloc(c->f.loop, cp->buf, b->len + 1);
                if (!nb)
                    err = -ENOMEM;
                else {
                    cp->buf = nb;
                    cp->cap = b->len + 1;
                }
            }
            if (!err) {
                memcpy(cp->buf, b->data, b->len);
                cp->len = b->len;
                cp->buf[cp->len] = 0;
            }
        }
        if (err)
            comm_fail(c, err);
        else
            comm_check(c);
    } else if (rd->state == WEFT__FAILED) {
        weft_future_error(rd); /* a superseded failure: observed, not reported */
    } /* data of a read nobody took goes back to the stream at its next read */
    weft_future_unref(rd);
    weft_future_unref(&c->f);
}

/* Pipe i of c is the stream s: start reading it to EOF (1, 2) or write the
 * input and close it (0). */
static int comm_stream_start(comm *c, int i, weft_stream *s)
{
    comm_pipe *cp = &c->pipe[i];
    if (i == 0)
        return 0; /* written at the end of the start, when nothing can fail */
    weft_future *rd = weft_stream_read(s, -1);
    if (!rd)
        return weft_last_error();
    int err = weft_future_add_done_callback(rd, comm_stream_done, cp);
    if (err) {
        weft_future_cancel(rd);
        weft_future_unref(rd);
        return err;
    }
    weft_future_ref(rd);    /* the callback's */
    weft_future_ref(&c->f); /* and the communicate's memory, for the callback */
    cp->rd = rd;
    cp->active = true;
    return 0;
}

static int comm_cancel(weft_future *f)
{
    comm *c = WEFT_CONTAINER_OF(f, comm, f);
    comm_stop(c);
    int err = weft__future_cancel_now(f);
    weft__future_unhold(&c->hold);
    return err;
}

static void comm_release(weft_future *f)
{
    weft__free(f->loop, WEFT_CONTAINER_OF(f, comm, f));
}

static const weft__future_ops comm_ops = {
    .kind = "communicate",
    .cancel = comm_cancel,
    .release = comm_release,
};

/* Undo a communicate that could not start: withdraw what it registered
 * and drop the caller's reference (stream reads it started still hold one
 * until their callbacks ran). */
static void comm_abandon(comm *c)
{
    weft_loop *loop = c->f.loop;
    for (int i = 0; i < 3; i++) {
        comm_pipe_stop(c, i, false);
        weft__free(loop, c->pipe[i].buf);
        c->pipe[i].buf = NULL;
    }
    weft__free(loop, c->in);
    c->in = NULL;
    weft__future_cancel_now(&c->f); /* nothing waits on it yet */
    weft_future_error(&c->f);       /* observed: no report */
    weft_future_unref(&c->f);
}

weft_future *weft_process_communicate(weft_process *p, const void *input, size_t n)
{
    int err = 0;
    weft_loop *loop = p ? p->L->loop : NULL;
    if (!p || (n > 0 && (!input || (p->fds[0] < 0 && !p->streams[0]))))
        err = -EINVAL;
    else if (weft__wrong_thread(loop, "weft_process_communicate"))
        err = -EPERM;
    else if (weft__closed(loop))
        err = WEFT_ECLOSED;
    else if (p->comm)
        err = WEFT_ESTATE;
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    comm *c = weft__futures(loop) ? weft__alloc(loop, sizeof *c) : NULL;
    if (!c) {
        weft__set_last_error(-ENOMEM);
        return NULL;
    }
    memset(c, 0, sizeof *c);
    c->p = p;
    weft__future_init(&c->f, &comm_ops, loop);
    err = -ENOMEM;
    bool raw_in = n > 0 && !p->streams[0]; /* the stream copies the input itself */
    if (raw_in) {
        c->in = weft__alloc(loop, n);
        if (!c->in)
            goto fail;
        memcpy(c->in, input, n);
        c->in_len = n;
    }
    for (int i = 1; i < 3; i++) {
        if (p->fds[i] < 0 && !p->streams[i])
            continue;
        c->pipe[i].buf = weft__alloc(loop, COMM_BUF0);
        if (!c->pipe[i].buf)
            goto fail;
        c->pipe[i].buf[0] = 0;
        c->pipe[i].cap = COMM_BUF0;
    }
    for (int i = 0; i < 3; i++) {
        comm_pipe *cp = &c->pipe[i];
        cp->c = c;
        cp->i = i;
        if (p->streams[i]) {
            err = comm_stream_start(c, i, p->streams[i]);
            if (err)
                goto fail;
            continue;
        }
        if (p->fds[i] < 0 || (i == 0 && n == 0))
            continue;
        err = weft_io_init(&cp->io, loop, p->fds[i], comm_ready);
        if (err)
            goto fail;
        cp->active = true;
        weft_io_start(&cp->io, i == 0 ? WEFT_WRITABLE : WEFT_READABLE);
    }
    /* nothing fails from here on */
    if (p->streams[0]) {
        if (n > 0)
            weft_stream_write(p->streams[0], input, n); /* dropped if the child is gone */
        weft_stream_close(p->streams[0]);               /* flushed, then closed: EOF */
    } else if (n == 0) {
        close_fd(&p->fds[0]); /* no input: the child reads EOF at once */
    }
    weft__future_hold(&c->f, &c->hold);
    p->comm = c;
    comm_check(c); /* nothing to read and already reaped: done now */
    return &c->f;

fail:
    comm_abandon(c);
    weft__set_last_error(err);
    return NULL;
}

/* The pipe i as a stream, made on first use. */
static weft_stream *pipe_stream(weft_process *p, int i)
{
    if (!p) {
        weft__set_last_error(-EINVAL);
        return NULL;
    }
    if (p->streams[i])
        return p->streams[i];
    weft_loop *loop = p->L->loop;
    int err = 0;
    if (weft__wrong_thread(loop, "weft_process_stdin"))
        err = -EPERM;
    else if (p->fds[i] < 0)
        err = -ENOENT; /* not a pipe, or used up */
    else if (p->comm)
        err = WEFT_ESTATE; /* communicate owns the raw pipe now */
    else
        err = i == 0 ? weft_open_write_pipe(loop, p->fds[0], NULL, &p->streams[0])
                     : weft_open_read_pipe(loop, p->fds[i], NULL, &p->streams[i]);
    if (err) {
        weft__set_last_error(err);
        return NULL;
    }
    p->fds[i] = -1; /* the stream's now */
    return p->streams[i];
}

weft_stream *weft_process_stdin(weft_process *p)
{
    return pipe_stream(p, 0);
}

weft_stream *weft_process_stdout(weft_process *p)
{
    return pipe_stream(p, 1);
}

weft_stream *weft_process_stderr(weft_process *p)
{
    return pipe_stream(p, 2);
}

const weft_process_output *weft_process_output_of(const weft_process *p)
{
    return p && p->has_output ? &p->output : NULL;
}

/* ---- close, destroy, dump ------------------------------------------------------------------- */

static void layer_close(weft_loop *loop, weft__layer *self)
{
    proc_layer *L = (proc_layer *)(void *)self;
    for (weft_link *l = L->procs.next, *next; l != &L->procs; l = next) {
        next = l->next;
        weft_process *p = WEFT_CONTAINER_OF(l, weft_process, link);
        if (p->comm)
            weft__future_cancel(&p->comm->f); /* its pipes can no longer be read */
        if (!p->reaped) {
            kill(p->pid, SIGKILL);
            try_reap(p, true); /* frees a dropped p */
        }
    }
    if (L->sigchld) {
        weft__signal_remove(loop, SIGCHLD);
        L->sigchld = false;
    }
}

static void layer_destroy(weft_loop *loop, weft__layer *self)
{
    proc_layer *L = (proc_layer *)(void *)self;
    size_t n = 0;
    while (!weft__list_empty(&L->procs)) {
        proc_destroy(WEFT_CONTAINER_OF(L->procs.next, weft_process, link));
        n++;
    }
    if (n)
        weft__reportf(loop, WEFT_REPORT_OTHER, 0,
                      "loop destroyed with %zu process object(s) not freed", n);
    weft__layer_set(loop, WEFT__LAYER_PROCESS, NULL);
    weft__free(loop, L);
}

static void layer_dump(weft_loop *loop, weft__layer *self, weft__strbuf *out)
{
    (void)loop;
    proc_layer *L = (proc_layer *)(void *)self;
    weft__strbuf_printf(out, "processes: %zu running\n", L->running);
    for (weft_link *l = L->procs.next; l != &L->procs; l = l->next) {
        weft_process *p = WEFT_CONTAINER_OF(l, weft_process, link);
        if (p->reaped)
            weft__strbuf_printf(out, "  process %ld: returncode %d\n", (long)p->pid, p->rc);
        else
            weft__strbuf_printf(out, "  process %ld: running (%s)%s\n", (long)p->pid,
                                weft_process_reaper(p), p->dropped ? ", dropped" : "");
    }
}
