/* subprocess.c - a pipeline of two programs, `ls DIR | sort -r`, with weft
 * in the middle: it reads ls's output, hands it to sort, and prints
 * sort's output and both exit statuses.
 *
 * The asyncio program it mirrors:
 *
 *     async def main(d):
 *         ls = await asyncio.create_subprocess_exec(
 *             'ls', d, stdout=asyncio.subprocess.PIPE)
 *         names, _ = await ls.communicate()
 *         sort = await asyncio.create_subprocess_exec(
 *             'sort', '-r', stdin=PIPE, stdout=PIPE)
 *         out, _ = await sort.communicate(names)
 *         print(out.decode(), end='')
 *         print('ls exited with', ls.returncode, 'and sort with', sort.returncode)
 *
 * communicate writes stdin, reads stdout and stderr at once and waits for
 * the exit, so neither side can block on a full pipe, whatever the sizes.
 * A third child, ls of a directory that does not exist, shows a failure's
 * status and its stderr.  The listed directory is made here (four empty
 * files in a fresh temporary directory) so that the output is always the
 * same; it is removed at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

struct main_co {
    WEFT_FRAME(int);
    const char *dir;     /* argument: the directory to list */
    weft_process *ls, *sort, *bad;
    const weft_process_output *names, *sorted, *failed;
};

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    {
        char *ls_argv[] = {"ls", (char *)self->dir, NULL};
        weft_process_opts o = {.out = {WEFT_STDIO_PIPE, 0}};
        int err = weft_process_spawn(loop, ls_argv, &o, &self->ls);
        if (err)
            WEFT_THROW_MSG(self, err, "cannot run ls");
    }
    /* ls's whole stdout; the output belongs to self->ls */
    WEFT_AWAIT(self, weft_process_communicate(self->ls, NULL, 0));
    self->names = WEFT_RESULT(self).p;
    {
        char *sort_argv[] = {"sort", "-r", NULL};
        weft_process_opts o = {.in = {WEFT_STDIO_PIPE, 0}, .out = {WEFT_STDIO_PIPE, 0}};
        int err = weft_process_spawn(loop, sort_argv, &o, &self->sort);
        if (err)
            WEFT_THROW_MSG(self, err, "cannot run sort");
    }
    /* ls's output becomes sort's input */
    WEFT_AWAIT(self,
               weft_process_communicate(self->sort, self->names->out, self->names->out_len));
    self->sorted = WEFT_RESULT(self).p;
    printf("sort -r printed:\n%s", self->sorted->out);
    printf("ls exited with %d, sort with %d\n", self->names->returncode,
           self->sorted->returncode);
    {
        /* a program that fails: its status (GNU ls: 2) and its stderr */
        char *bad_argv[] = {"ls", "/nonexistent-weft-example", NULL};
        weft_process_opts o = {.out = {WEFT_STDIO_PIPE, 0}, .err = {WEFT_STDIO_PIPE, 0}};
        int err = weft_process_spawn(loop, bad_argv, &o, &self->bad);
        if (err)
            WEFT_THROW(self, err);
    }
    WEFT_AWAIT(self, weft_process_communicate(self->bad, NULL, 0));
    self->failed = WEFT_RESULT(self).p;
    printf("ls of a missing directory exited with %d and wrote %s to stderr\n",
           self->failed->returncode, self->failed->err_len ? "a message" : "nothing");
    WEFT_FINALLY;
    weft_process_free(self->ls);
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
