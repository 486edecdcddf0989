/* timer.c - a one-shot timer built from a sleep and a done callback
 * (seed 002, "Timer"):
 *
 *     async def timer(x, cb):
 *         futu = asyncio.ensure_future(asyncio.sleep(x))
 *         futu.add_done_callback(cb)
 *         await futu
 *
 *     t = timer(3, lambda futu: print('Done'))
 *     asyncio.run(t)
 *
 * In Python asyncio.sleep(x) is a coroutine, so ensure_future wraps it in
 * a task.  weft_sleep already returns a future, so there is nothing to
 * wrap: the callback goes on the sleep itself.  (For a timer without any
 * coroutine, see weft_call_later in hello_callbacks.c.)
 */
#include <stdio.h>
#include <weft.h>

struct timer {
    WEFT_FRAME(int);
    double x;
    weft_done_cb *cb;   /* the `lambda futu: print('Done')` */
    weft_future *futu;  /* kept across the await: a frame field */
};

WEFT_ASYNC(timer)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    self->futu = weft_sleep(loop, self->x);
    if (!self->futu)
        WEFT_THROW(self, weft_last_error());
    {
        /* A C local is fine here: no suspension happens in its lifetime. */
        int err = weft_future_add_done_callback(self->futu, self->cb, NULL);
        if (err)
            WEFT_THROW(self, err);
    }
    /* Registered first, the callback runs before this task resumes. */
    WEFT_AWAIT(self, weft_future_ref(self->futu));
    printf("timer resumed at %.0f s\n", weft_loop_time(loop));
    WEFT_FINALLY;
    weft_future_unref(self->futu);
    WEFT_END;
}

static void print_done(weft_future *futu, void *arg)
{
    (void)futu, (void)arg;
    printf("Done\n");
}

int main(void)
{
    printf("timer(3) started\n");
    int err = WEFT_RUN(WEFT_ENV_OPTIONS, NULL, timer, .x = 3, .cb = print_done);
    if (err)
        fprintf(stderr, "timer: %s\n", weft_strerror(err));
    return err ? 1 : 0;
}
