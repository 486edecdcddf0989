/* subprocess.c - a pipeline of two programs, `ls DIR | sort -r`, with weft
 * in the middle: it reads ls's stdout through a stream, writes what it
 * reads to sort's stdin stream, then reads sort's output line by line and
 * prints it with both exit statuses.
 *
 * The asyncio program it mirrors:
 *
 *     async def main(d):
 *         ls = await asyncio.create_subprocess_exec('ls', d, stdout=PIPE)
 *         sort = await asyncio.create_subprocess_exec(
 *             'sort', '-r', stdin=PIPE, stdout=PIPE)
 *         while chunk := await ls.stdout.read(65536):
 *             sort.stdin.write(chunk)
 *             await sort.stdin.drain()
 *         sort.stdin.close()
 *         print('sort -r printed:')
 *         while line := await sort.stdout.readline():
 *             print(' ', line.decode(), end='')
 *         print('ls exited with', await ls.wait(), 'and sort with', await sort.wait())
 *         bad = await asyncio.create_subprocess_exec(
 *             'ls', '/nonexistent', stdout=PIPE, stderr=PIPE)
 *         out, err = await bad.communicate()
 *
 * sort reads all its input before it writes, so feeding it first and
 * reading it after cannot block; for a child that writes while it reads
 * (tr, cat), read in another task, or use communicate, which writes stdin
 * and reads stdout and stderr at once, as the last child here shows.  The
 * listed directory is made here (four empty files in a fresh temporary
 * directory) so that the output is always the same; it is removed at the
 * end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

struct main_co {
    WEFT_FRAME(int);
    const char *dir; /* argument: the directory to list */
    weft_process *ls, *sort, *bad;
    weft_stream *ls_out, *sort_in, *sort_out; /* owned by the processes */
    const weft_bytes *chunk;
    int ls_rc;
    const weft_process_output *failed;
};

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    {
        char *ls_argv[] = {"ls", (char *)self->dir, NULL};
        char *sort_argv[] = {"sort", "-r", NULL};
        weft_process_opts lo = {.out = {WEFT_STDIO_PIPE, 0}};
        weft_process_opts so = {.in = {WEFT_STDIO_PIPE, 0}, .out = {WEFT_STDIO_PIPE, 0}};
        int err = weft_process_spawn(loop, ls_argv, &lo, &self->ls);
        if (!err)
            err = weft_process_spawn(loop, sort_argv, &so, &self->sort);
        if (err)
            WEFT_THROW_MSG(self, err, "cannot run ls or sort");
    }
    self->ls_out = weft_process_stdout(self->ls);
    self->sort_in = weft_process_stdin(self->sort);
    self->sort_out = weft_process_stdout(self->sort);
    if (!self->ls_out || !self->sort_in || !self->sort_out)
        WEFT_THROW(self, weft_last_error());
    /* ls's output, chunk by chunk, into sort's input */
    for (;;) {
        WEFT_AWAIT(self, weft_stream_read(self->ls_out, 65536));
        self->chunk = WEFT_RESULT(self).p; /* the stream's: valid until the next read */
        if (self->chunk->len == 0)
            break; /* EOF: ls is done */
        weft_stream_write(self->sort_in, self->chunk->data, self->chunk->len);
        WEFT_AWAIT(self, weft_stream_drain(self->sort_in));
    }
    weft_stream_close(self->sort_in); /* sort sees EOF and writes its output */
    printf("sort -r printed:\n");
    for (;;) {
        WEFT_AWAIT(self, weft_stream_readline(self->sort_out));
        self->chunk = WEFT_RESULT(self).p;
        if (self->chunk->len == 0)
            break;
        printf("  %s", self->chunk->data);
    }
    WEFT_AWAIT(self, weft_process_wait(self->ls));
    self->ls_rc = (int)WEFT_RESULT(self).i;
    WEFT_AWAIT(self, weft_process_wait(self->sort));
    printf("ls exited with %d, sort with %d\n", self->ls_rc, (int)WEFT_RESULT(self).i);
    {
        /* a program that fails: its status (GNU ls: 2) and its stderr,
         * collected with communicate */
        char *bad_argv[] = {"ls", "/nonexistent-weft-example", NULL};
        weft_process_opts o = {.out = {WEFT_STDIO_PIPE, 0}, .err = {WEFT_STDIO_PIPE, 0}};
        int err = weft_process_spawn(loop, bad_argv, &o, &self->bad);
        if (err)
            WEFT_THROW(self, err);
    }
    WEFT_AWAIT(self, weft_process_communicate(self->bad, NULL, 0));
    self->failed = WEFT_RESULT(self).p; /* owned by self->bad */
    printf("ls of a missing directory exited with %d and wrote %s to stderr\n",
           self->failed->returncode, self->failed->err_len ? "a message" : "nothing");
    WEFT_FINALLY;
    weft_process_free(self->ls); /* and their streams */
    weft_process_free(self->sort);
    weft_process_free(self->bad);
    WEFT_END;
}

int main(void)
{
    char dir[] = "/tmp/weft-subprocess-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    static const char *const names[] = {"banana", "apple", "date", "cherry"};
    char path[sizeof dir + 16];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "w");
        if (f)
            fclose(f);
    }
    int rc = WEFT_RUN(WEFT_ENV_OPTIONS, NULL, main_co, .dir = dir);
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return rc < 0;
}
