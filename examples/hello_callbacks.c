/* hello_callbacks.c - the event loop with plain callbacks, no coroutines.
 *
 * Two classic examples from the asyncio documentation ("Event Loop",
 * section "Examples"), ported one to one:
 *
 *   (a) "Hello World" with call_soon:
 *
 *       def hello_world(loop):
 *           print('Hello World')
 *           loop.stop()
 *
 *       loop = asyncio.new_event_loop()
 *       loop.call_soon(hello_world, loop)
 *       try:
 *           loop.run_forever()
 *       finally:
 *           loop.close()
 *
 *   (b) "Display the current date with call_later":
 *
 *       def display_date(end_time, loop):
 *           print(datetime.datetime.now())
 *           if (loop.time() + 1.0) < end_time:
 *               loop.call_later(1, display_date, end_time, loop)
 *           else:
 *               loop.stop()
 *
 *       end_time = loop.time() + 5.0
 *       loop.call_soon(display_date, end_time, loop)
 *       loop.run_forever()
 *
 * (b) prints the loop time instead of the date (loop.time(), which is what
 * the deadline is computed from anyway), so the output is the same on every
 * run under WEFT_CLOCK=virtual, where the loop time starts at 0.  With the
 * real clock it is a monotonic time in seconds, like Python's loop.time().
 */
#include <stdio.h>
#include <weft.h>

/* ---- (a) Hello World ------------------------------------------------------ */

/* A weft_cb takes one void *: the loop travels in it, as in
 * call_soon(hello_world, loop). */
static void hello_world(void *arg)
{
    weft_loop *loop = arg;
    printf("Hello World\n");
    weft_loop_stop(loop); /* run_forever returns after this batch */
}

static int hello(void)
{
    weft_loop *loop;
    int err = weft_loop_new(&loop, WEFT_ENV_OPTIONS); /* asyncio.new_event_loop() */
    if (err)
        return err;
    err = weft_call_soon(loop, hello_world, loop, NULL);
    if (!err)
        err = weft_loop_run_forever(loop); /* blocks until weft_loop_stop */
    weft_loop_destroy(loop);               /* close + free: the `finally` */
    return err;
}

/* ---- (b) the loop time every second for 5 seconds --------------------------- */

/* Python passes (end_time, loop) as extra call arguments; C passes one
 * pointer, so both go in a struct that outlives the calls. */
struct display {
    weft_loop *loop;
    double end_time;
};

static void display_date(void *arg)
{
    struct display *d = arg;
    printf("loop time %.1f\n", weft_loop_time(d->loop));
    if (weft_loop_time(d->loop) + 1.0 < d->end_time) {
        /* Re-arm: call me again in one second.  A failure here (only
         * -ENOMEM is possible) would leave nothing scheduled: stop. */
        if (weft_call_later(d->loop, 1.0, display_date, d, NULL) < 0)
            weft_loop_stop(d->loop);
    } else {
        weft_loop_stop(d->loop);
    }
}

static int display(void)
{
    weft_loop *loop;
    int err = weft_loop_new(&loop, WEFT_ENV_OPTIONS);
    if (err)
        return err;
    struct display d = {loop, weft_loop_time(loop) + 5.0};
    err = weft_call_soon(loop, display_date, &d, NULL);
    if (!err)
        err = weft_loop_run_forever(loop);
    weft_loop_destroy(loop);
    return err;
}

int main(void)
{
    int err = hello();
    if (!err)
        err = display();
    if (err)
        fprintf(stderr, "hello_callbacks: %s\n", weft_strerror(err));
    return err ? 1 : 0;
}
