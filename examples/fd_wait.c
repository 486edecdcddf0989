/* fd_wait.c - awaiting a file descriptor: a reader task waits until a pipe
 * is readable, first with a deadline that passes, then without.
 *
 * asyncio has no public "wait until readable" (its streams build one from
 * loop.add_reader and a future); this is the shape of it:
 *
 *     async def writer(w):
 *         await asyncio.sleep(1)
 *         os.write(w, b'ping')
 *
 *     async def reader(r):
 *         try:
 *             await asyncio.wait_for(wait_readable(r), 0.5)
 *         except TimeoutError:
 *             print('first wait: timed out')
 *         await wait_readable(r)
 *         print('read', os.read(r, 16))
 *
 * weft_wait_readable is that wait_readable: a future that completes the
 * first time the fd is readable and removes its registration at that
 * moment (or when it is cancelled, as the timed-out wait is), so it
 * completes once however long the fd stays ready.  The pipe is made in
 * main() and its ends travel to the tasks as arguments.  Under
 * WEFT_CLOCK=virtual the loop time is exact; the pipe is real.
 */
#include <stdio.h>
#include <unistd.h>
#include <weft.h>

struct writer {
    WEFT_FRAME(int);
    int fd; /* argument: the write end */
};

WEFT_ASYNC(writer)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_SLEEP(self, 1);
    printf("%.1f: writer: ping\n", weft_loop_time(loop));
    if (write(self->fd, "ping", 4) != 4)
        WEFT_THROW(self, -EIO);
    WEFT_END;
}

struct reader {
    WEFT_FRAME(int);
    int fd;  /* argument: the read end */
    int err; /* the first wait's outcome */
};

WEFT_ASYNC(reader)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    /* wait_for cancels the wait when its deadline passes, which removes
     * the wait's registration: the next wait on the fd starts clean. */
    WEFT_TRY_AWAIT(self, weft_wait_for(weft_wait_readable(loop, self->fd), 0.5), self->err);
    printf("%.1f: first wait: %s\n", weft_loop_time(loop), weft_strerror(self->err));
    WEFT_WAIT_READABLE(self, self->fd); /* WEFT_AWAIT(self, weft_wait_readable(loop, fd)) */
    {
        /* C locals are fine between two suspensions. */
        char buf[16];
        ssize_t n = read(self->fd, buf, sizeof buf);
        if (n < 0)
            WEFT_THROW(self, -errno);
        printf("%.1f: read %zd bytes: %.*s\n", weft_loop_time(loop), n, (int)n, buf);
    }
    WEFT_END;
}

struct main_co {
    WEFT_FRAME(int);
    int rfd, wfd; /* arguments: the pipe's ends */
};

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    weft_future_unref(WEFT_SPAWN(loop, writer, .fd = self->wfd)); /* fire and forget */
    WEFT_AWAIT(self, WEFT_SPAWN(loop, reader, .fd = self->rfd));
    WEFT_END;
}

int main(void)
{
    int p[2];
    if (pipe(p) < 0) {
        perror("fd_wait: pipe");
        return 1;
    }
    int err = WEFT_RUN(WEFT_ENV_OPTIONS, NULL, main_co, .rfd = p[0], .wfd = p[1]);
    close(p[0]); /* after the loop is gone: nothing watches them any more */
    close(p[1]);
    if (err)
        fprintf(stderr, "fd_wait: %s\n", weft_strerror(err));
    return err ? 1 : 0;
}
