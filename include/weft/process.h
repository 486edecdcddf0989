/* weft/process.h - subprocesses: spawn, wait, signals, pipes as streams.
 *
 * asyncio.subprocess in C.  weft_process_spawn starts a program with
 * posix_spawn (no fork of a big parent), with each of the child's stdin,
 * stdout and stderr inherited, a pipe, /dev/null, an fd of yours, or (for
 * stderr) merged into stdout.  It reports a missing program or a file
 * that cannot be executed synchronously, as its return value.  The
 * process object gives its pid, futures that complete when it exits, its
 * returncode, send_signal / terminate / kill, and communicate, which feeds
 * stdin and collects stdout and stderr at once.  See docs/subprocess.md.
 *
 * Exit status encoding (asyncio's returncode): the exit code (0..255) of a
 * child that exited, or -signo for one a signal killed.
 *
 * Reaping.  Every child is reaped by the loop as soon as it exits, also
 * when its process object was freed before: no zombie is left.  On Linux
 * 5.3+ each child has a pidfd watched by the loop; elsewhere (or when
 * pidfd_open fails) the loop watches SIGCHLD and tries each of its
 * children with waitpid(pid, WNOHANG), O(children) per SIGCHLD.  Loops
 * created with WEFT_LOOP_ENV read $WEFT_PROCESS_REAPER ("pidfd" or
 * "sigchld") to choose, for tests.
 *
 * Loop close with children still running kills them (SIGKILL) and reaps
 * them before returning, as asyncio's subprocess transport does when it is
 * closed: a loop never leaves a child of its own behind.
 *
 * Threads: everything here is for the loop's thread, as in loop.h.
 */
#ifndef WEFT_PROCESS_H
#define WEFT_PROCESS_H

#include <sys/types.h>

#include "net.h"
#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_process weft_process;

/* What one of the child's standard fds is connected to. */
typedef enum weft_stdio_kind {
    WEFT_STDIO_INHERIT = 0, /* the parent's own fd (asyncio: None) */
    WEFT_STDIO_PIPE,        /* a pipe to the loop (asyncio.subprocess.PIPE) */
    WEFT_STDIO_DEVNULL,     /* /dev/null (asyncio.subprocess.DEVNULL) */
    WEFT_STDIO_FD,          /* the caller's fd .fd (asyncio: a file descriptor);
                               the caller keeps it, the child gets a copy */
    WEFT_STDIO_STDOUT,      /* stderr only: wherever stdout goes
                               (asyncio.subprocess.STDOUT) */
} weft_stdio_kind;

/* One standard fd's connection: a kind, and the fd for WEFT_STDIO_FD. */
typedef struct weft_stdio {
    weft_stdio_kind kind;
    int fd;
} weft_stdio;

/* Spawn options; zero-initialise and set what you need (all zero: the
 * program found on $PATH, the parent's environment, directory and fds). */
typedef struct weft_process_opts {
    const char *file;    /* the program to run; NULL: argv[0] */
    char *const *envp;   /* NULL-terminated "NAME=value" strings; NULL: the
                            parent's environment */
    const char *cwd;     /* the child's working directory; NULL: the parent's */
    weft_stdio in;       /* the child's stdin */
    weft_stdio out;      /* its stdout */
    weft_stdio err;      /* its stderr */
    bool no_path_search; /* file is a path, never looked up on $PATH (a file
                            without '/' is looked up by default, as execvp
                            and asyncio do, in the parent's $PATH) */
} weft_process_opts;

/* Start a child running argv (NULL-terminated, argv[0] the program unless
 * opts->file is set) as opts says (NULL: defaults).  On success stores the
 * new process object in *out (which the caller frees with
 * weft_process_free) and returns 0.  Errors, with nothing started and
 * nothing leaked: -EINVAL (NULL loop, argv, out or argv[0]; a bad stdio
 * kind; STDOUT for stdin or stdout), -EBADF (a WEFT_STDIO_FD that is not
 * open), WEFT_ECLOSED, -ENOMEM, -EMFILE / -ENFILE (no fd left for a pipe
 * or /dev/null), -ENOTSUP (cwd where posix_spawn cannot change directory:
 * glibc before 2.29), and from posix_spawn: -ENOENT (no such program, or
 * cwd does not exist), -EACCES (not executable, or a directory on the
 * way), -ENOEXEC, -E2BIG, -EAGAIN (process limit)...  glibc (2.24+), musl
 * and the BSDs report the exec's failure this way; where a libc cannot
 * (or under valgrind, which runs glibc's vfork child as a fork) spawn
 * succeeds and the child exits with 127.  The child's signal mask is
 * empty and every signal has its default action.  The first spawn with a
 * stdin pipe sets SIGPIPE to SIG_IGN in the process if it had its default
 * action (a write to a child that exited then fails with -EPIPE instead of
 * killing the program, as Python does at start-up). */
int weft_process_spawn(weft_loop *loop, char *const argv[], const weft_process_opts *opts,
                       weft_process **out);

/* The child's pid (-1 for NULL).  It stays valid (never reused) until the
 * child is reaped; after that, never signal it yourself. */
pid_t weft_process_pid(const weft_process *p);

/* The loop the process belongs to (NULL for NULL). */
weft_loop *weft_process_loop(const weft_process *p);

/* A future that completes when the child has exited and was reaped, with
 * its returncode as value (.i; see the encoding above): asyncio's
 * Process.wait().  Each call gives a new future (one reference for the
 * caller); cancelling one withdraws only that one.  Already reaped: the
 * future is done at once.  The loop holds a pending wait until the child
 * exits.  Unlike asyncio it does not also wait for the pipes to close:
 * what the child wrote before it exited can still be read after.  NULL on
 * failure (weft_last_error: -EINVAL, -ENOMEM, WEFT_ECLOSED). */
WEFT_NODISCARD weft_future *weft_process_wait(weft_process *p);

/* asyncio's Process.returncode: 0 with *rc set (may be NULL) once the
 * child was reaped; WEFT_ESTATE while it runs; -EINVAL for NULL. */
int weft_process_returncode(const weft_process *p, int *rc);

/* Send signal signo to the child (0: only check it can be signalled).
 * Returns 0, -EINVAL (NULL, signo out of range), -ESRCH once the child was
 * reaped (never a reused pid; asyncio raises ProcessLookupError), or
 * kill()'s error. */
int weft_process_send_signal(weft_process *p, int signo);

/* send_signal(SIGTERM) and send_signal(SIGKILL), as asyncio's terminate()
 * and kill(). */
int weft_process_terminate(weft_process *p);
int weft_process_kill(weft_process *p);

/* What weft_process_communicate collected: the child's whole stdout and
 * stderr (each NUL-terminated for convenience, NULL with length 0 when
 * that fd was not a pipe; stderr merged into stdout arrives in out) and
 * its returncode.  Owned by the process object: valid until the next
 * communicate on it or weft_process_free. */
typedef struct weft_process_output {
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
    int returncode;
} weft_process_output;

/* asyncio's Process.communicate(input): write the n bytes at input (copied
 * first: the caller's buffer may go at once) to the child's stdin and
 * close it (also with n == 0: the child then reads EOF, as Popen does),
 * read its stdout and stderr pipes to EOF at the same time (so a child
 * that writes megabytes to both never blocks on a full pipe), then wait
 * for it to exit.  The future's value .p is the const weft_process_output *
 * above.  A child that stops reading stdin is not an error: what it did
 * not take is dropped (asyncio ignores BrokenPipeError there).  The pipes
 * it used are closed once it is done.  Fails with -ENOMEM (the output
 * could not grow; the child may then block on its full pipe: kill it),
 * -ECANCELED (cancelled: what was read so far is dropped, the pipes stay
 * open where they were).  NULL on failure to start (weft_last_error):
 * -EINVAL (NULL p, input with n > 0 but stdin not a pipe), WEFT_ESTATE
 * (another communicate is pending), -ENOMEM, WEFT_ECLOSED. */
WEFT_NODISCARD weft_future *weft_process_communicate(weft_process *p, const void *input, size_t n);

/* The output of the last communicate that completed on p, or NULL. */
const weft_process_output *weft_process_output_of(const weft_process *p);

/* The child's stdin, stdout or stderr pipe as a stream (asyncio's
 * proc.stdin, proc.stdout, proc.stderr): write, drain and close stdin;
 * read, readline, readexactly, readuntil stdout and stderr (stream.h).
 * Made from the pipe on the first call (weft_open_write_pipe /
 * weft_open_read_pipe) and owned by the process: weft_process_free frees
 * it; do not weft_stream_free it yourself.  communicate works through it
 * from then on (it reads what the stream has buffered, then the rest).
 * NULL on failure (weft_last_error): -EINVAL (NULL p), -ENOENT (that fd is
 * not a pipe, or communicate used it up), WEFT_ESTATE (a communicate on
 * the raw pipe is pending), -ENOMEM, WEFT_ECLOSED. */
weft_stream *weft_process_stdin(weft_process *p);
weft_stream *weft_process_stdout(weft_process *p);
weft_stream *weft_process_stderr(weft_process *p);

/* How the loop reaps this child: "pidfd" or "sigchld" (NULL for NULL). */
const char *weft_process_reaper(const weft_process *p);

/* Free the process object.  A child still running goes on running and is
 * still reaped when it exits (pending wait futures still complete).  Any
 * pipe the process still owns is closed.  NULL is a no-op.  Call it
 * before weft_loop_destroy: the loop frees objects left then and reports
 * them (WEFT_REPORT_OTHER). */
void weft_process_free(weft_process *p);

#ifdef __cplusplus
}
#endif
#endif
