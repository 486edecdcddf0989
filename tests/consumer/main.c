/* A small weft user, as a project that links weft::weft (or uses
 * pkg-config) would write it: a coroutine run by WEFT_RUN that awaits a
 * task and a sleep, then prints "ok".  Built with the coroutine lint
 * (-Werror=jump-misses-init) where the compiler has it. */
#include <stdio.h>

#include <weft.h>

struct child {
    WEFT_FRAME(int);
    int x;
};

WEFT_ASYNC(child)
{
    WEFT_BEGIN(self);
    WEFT_SLEEP(self, 0.001);
    WEFT_RETURN(self, self->x * 2);
    WEFT_END;
}

struct main_co {
    WEFT_FRAME(int);
    weft_task *t;
};

WEFT_ASYNC(main_co)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_AWAIT(self, WEFT_SPAWN(loop, child, .x = 21));
    WEFT_RETURN(self, (int)WEFT_RESULT(self).i);
    WEFT_END;
}

int main(void)
{
    weft_value v = {0};
    int err = WEFT_RUN(NULL, &v, main_co);
    if (err || v.i != 42) {
        fprintf(stderr, "consumer: %s, result %lld\n", weft_strerror(err), (long long)v.i);
        return 1;
    }
    printf("ok\n");
    return 0;
}
