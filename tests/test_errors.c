/* test_errors.c - errors that carry context: messages attached with
 * weft_future_set_error_msg, WEFT_THROW_MSG and weft_task_cancel_msg,
 * carried on by awaiting tasks, shown by weft_future_error_message,
 * weft_future_strerror and the reports (in their detail field, not twice),
 * and refused for codes that are not errors.  Runs on both coroutine
 * backends.
 */
#include "weft_test.h"

#include <stdio.h>
#include <string.h>

static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 60, .check_reports = true});
    return 0;
}

/* Fails with -EPROTO and a formatted message. */
struct thrower {
    WEFT_FRAME(int);
    int byte;
};

WEFT_ASYNC(thrower)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    WEFT_THROW_MSG(self, -EPROTO, "bad header byte 0x%02x", self->byte);
    WEFT_END;
}

/* Awaits its child (owned): lets its error propagate, or catches it and
 * throws another error of its own. */
struct relay_co {
    WEFT_FRAME(int);
    weft_task *child;
    int convert; /* 0: let it propagate; else throw this code instead */
    int e;
};

WEFT_ASYNC(relay_co)
{
    WEFT_BEGIN(self);
    if (!self->convert) {
        WEFT_AWAIT(self, self->child); /* its error unwinds this frame too */
    } else {
        WEFT_TRY_AWAIT(self, self->child, self->e);
        if (self->e)
            WEFT_THROW_MSG(self, self->convert, "while reading: %s", "gave up");
    }
    WEFT_END;
}

static char g_detail[600], g_message[900];
static int g_reports;

static void capture(weft_loop *loop, const weft_report *r, void *ud)
{
    record_report(loop, r, ud);
    g_reports++;
    snprintf(g_detail, sizeof g_detail, "%s", r->detail ? r->detail : "(none)");
    snprintf(g_message, sizeof g_message, "%s", r->message);
}

/* WEFT_THROW_MSG: the task's error carries the message; an awaiting task
 * that fails with the same error carries it on; weft_future_strerror
 * renders "message: strerror". */
static void test_throw_msg_travels_with_the_error(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *c = WEFT_SPAWN(loop, thrower, .byte = 1);
    weft_task *p = WEFT_SPAWN(loop, relay_co, .child = weft_future_ref(c));
    assert_int_equal(run(loop, p), -EPROTO);
    assert_string_equal(weft_future_error_message(c), "bad header byte 0x01");
    assert_string_equal(weft_future_error_message(p), "bad header byte 0x01");
    char buf[128];
    assert_string_equal(weft_future_strerror(p, buf, sizeof buf),
                        "bad header byte 0x01: protocol error");
    weft_future_unref(c);
    weft_future_unref(p);
    finish(loop);
}

/* A frame that turns the error into another one gives its own message;
 * the original message stays with the original task. */
static void test_converted_error_carries_its_own_message(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *c = WEFT_SPAWN(loop, thrower, .byte = 2);
    weft_task *p = WEFT_SPAWN(loop, relay_co, .child = weft_future_ref(c), .convert = -EIO);
    assert_int_equal(run(loop, p), -EIO);
    assert_string_equal(weft_future_error_message(p), "while reading: gave up");
    assert_string_equal(weft_future_error_message(c), "bad header byte 0x02");
    weft_future_unref(c);
    weft_future_unref(p);
    finish(loop);
}

/* weft_task_cancel_msg: the -ECANCELED carries the message (asyncio's
 * cancel(msg)); a plain future's set_error_msg does the same for any
 * error; codes that are not errors, -ECANCELED for set_error_msg, a NULL
 * format and a done future are refused. */
static void test_cancel_msg_and_set_error_msg(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    weft_task *t = WEFT_SPAWN(loop, thrower);
    assert_int_equal(weft_task_cancel_msg(t, "shutting down (%d)", 3), 0);
    assert_int_equal(run(loop, t), -ECANCELED);
    assert_string_equal(weft_future_error_message(t), "shutting down (3)");
    assert_int_equal(weft_task_cancel_msg(t, "again"), WEFT_ESTATE); /* done */
    weft_future_unref(t);

    weft_future *f = weft_future_new(loop);
    assert_int_equal(weft_future_set_error_msg(f, 0, "x"), -EINVAL);
    assert_int_equal(weft_future_set_error_msg(f, 5, "x"), -EINVAL);
    assert_int_equal(weft_future_set_error_msg(f, -ECANCELED, "x"), -EINVAL);
    assert_int_equal(weft_future_set_error_msg(f, WEFT_ERR_MIN - 1, "x"), -EINVAL);
    assert_int_equal(weft_future_set_error_msg(f, -EIO, NULL), -EINVAL);
    assert_false(weft_future_done(f));
    assert_int_equal(weft_future_set_error_msg(f, -EIO, "disk %s", "gone"), 0);
    assert_string_equal(weft_future_error_message(f), "disk gone");
    assert_int_equal(weft_future_set_error_msg(f, -EIO, "twice"), WEFT_ESTATE);
    assert_int_equal(weft_future_error(f), -EIO);
    weft_future_unref(f);

    weft_future *v = weft_future_new(loop);
    assert_null(weft_future_error_message(v)); /* pending */
    assert_int_equal(weft_future_set_int(v, 1), 0);
    assert_null(weft_future_error_message(v)); /* a value */
    char buf[64];
    assert_string_equal(weft_future_strerror(v, buf, sizeof buf), "success");
    weft_future_unref(v);
    assert_null(weft_future_error_message(NULL));
    finish(loop);
}

/* An unobserved failure is reported with the message in the report's
 * detail field, once: the message line does not repeat it. */
static void test_report_carries_the_message_once(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    assert_int_equal(weft_loop_set_report_hook(loop, capture, NULL), 0);
    g_reports = 0;
    weft_future_unref(WEFT_SPAWN(loop, thrower, .byte = 0x7f)); /* nobody will observe it */
    drain(loop);
    assert_int_equal(g_reports, 1);
    assert_int_equal(g_hook.kind, WEFT_REPORT_UNOBSERVED);
    assert_int_equal(g_hook.err, -EPROTO);
    assert_string_equal(g_detail, "bad header byte 0x7f");
    assert_null(strstr(g_message, "bad header byte")); /* not twice */
    assert_non_null(strstr(g_message, "thrower"));
    g_hook.expect = 1;
    finish(loop);
}

/* Every allocation failure while attaching a message leaves the error set
 * without it (nothing lost, nothing leaked). */
static void test_messages_survive_allocation_failure(void **state)
{
    (void)state;
    weft_loop *loop = vloop();
    wt_warm(loop);
    for (long k = 1;; k++) {
        weft_future *f = weft_future_new(loop);
        assert_non_null(f);
        alloc_fail_at(alloc_calls() + k);
        int rc = weft_future_set_error_msg(f, -EIO, "message %ld", k);
        alloc_fail_at(0);
        assert_int_equal(rc, 0);
        assert_int_equal(weft_future_error(f), -EIO);
        const char *m = weft_future_error_message(f);
        weft_future_unref(f);
        if (m)
            break; /* no failure reached this time: done */
    }
    finish(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_throw_msg_travels_with_the_error),
        T(test_converted_error_carries_its_own_message),
        T(test_cancel_msg_and_set_error_msg),
        T(test_report_carries_the_message_once),
        T(test_messages_survive_allocation_failure),
    };
    return RUN_TESTS(tests);
}
