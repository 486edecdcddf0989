/* tests/test_co_alone.c - weft/co.h used alone: frames driven by hand.
 *
 * This file includes weft/co.h and nothing else of weft, and links against
 * no part of the library (CMakeLists.txt gives it the include directory
 * only): it proves the coroutine mechanics compile and run without the
 * loop, as DESIGN.md says, with a twenty-line driver of its own.  One
 * guarantee per test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <weft/co.h>

#ifdef WEFT_H
#error "weft/co.h pulled in the rest of weft"
#endif
#ifdef WEFT_LOOP_H
#error "weft/co.h pulled in the loop"
#endif

/* ---- a driver of our own --------------------------------------------------------- */

/* Run root until it suspends or ends; follows WEFT_CO_CALL into children
 * (the ring: root->up is the innermost frame).  Returns WEFT_CO_PENDING or
 * WEFT_CO_DONE. */
static int drive(weft_co *root)
{
    weft_co *co = root->up ? root->up : root;
    for (;;) {
        weft_co_rc rc = co->info->fn(co, NULL);
        if (rc.v == WEFT_CO_PENDING) {
            root->up = co;
            return WEFT_CO_PENDING;
        }
        if (rc.v == WEFT_CO_CALL) {
            co = rc.child;
            continue;
        }
        if (co == root)
            return WEFT_CO_DONE;
        co = co->up;
    }
}

static void start(weft_co *root)
{
    root->up = root;
}

/* ---- coroutines ------------------------------------------------------------------ */

static char g_log[256];

static void note(const char *s)
{
    strncat(g_log, s, sizeof g_log - strlen(g_log) - 1);
}

/* counts to n, suspending after each step */
struct counter {
    WEFT_FRAME(int);
    int n, i;
};

WEFT_ASYNC(counter)
{
    WEFT_BEGIN(self);
    for (self->i = 0; self->i < self->n; self->i++) {
        note("c");
        WEFT_CO_SUSPEND(self);
    }
    WEFT_RETURN(self, self->i * 10);
    WEFT_END;
}

/* calls a counter inline, fails if asked, always cleans up */
struct outer {
    WEFT_FRAME(int);
    int fail, caught;
    struct counter sub;
};

WEFT_ASYNC(outer)
{
    WEFT_BEGIN(self);
    WEFT_CALL(self, counter, &self->sub, .n = 2);
    note("o");
    if (self->fail)
        WEFT_THROW(self, self->fail);
    WEFT_RETURN(self, self->sub.result + 1);
    WEFT_FINALLY;
    note(self->co.err ? "F!" : "F");
    WEFT_END;
}

struct thrower {
    WEFT_FRAME(int);
};

WEFT_ASYNC(thrower)
{
    WEFT_BEGIN(self);
    WEFT_THROW(self, -5);
    WEFT_END;
}

struct catcher {
    WEFT_FRAME(int);
    int e;
    struct thrower t;
};

WEFT_ASYNC(catcher)
{
    WEFT_BEGIN(self);
    WEFT_TRY_CALL(self, self->e, thrower, &self->t);
    WEFT_RETURN(self, self->e);
    WEFT_END;
}

struct bad_throw {
    WEFT_FRAME(int);
};

WEFT_ASYNC(bad_throw)
{
    WEFT_BEGIN(self);
    WEFT_THROW(self, 3); /* not an error code */
    WEFT_END;
}

/* ---- tests ------------------------------------------------------------------------- */

/* A frame suspends and resumes where it left off, keeping its fields. */
static void test_frame_suspends_and_resumes_by_hand(void **state)
{
    (void)state;
    g_log[0] = 0;
    struct counter c = {.co = {.info = &counter__info}, .n = 3};
    start(&c.co);
    assert_int_equal(drive(&c.co), WEFT_CO_PENDING);
    assert_int_equal(drive(&c.co), WEFT_CO_PENDING);
    assert_int_equal(drive(&c.co), WEFT_CO_PENDING);
    assert_int_equal(drive(&c.co), WEFT_CO_DONE);
    assert_string_equal(g_log, "ccc");
    assert_int_equal(c.result, 30);
    assert_int_equal(c.co.err, 0);
}

/* WEFT_CALL enters a child, which suspends inside the parent's chain; the
 * parent reads its result; FINALLY runs once. */
static void test_inline_child_and_finally_without_the_loop(void **state)
{
    (void)state;
    g_log[0] = 0;
    struct outer o = {.co = {.info = &outer__info}};
    start(&o.co);
    int rc, steps = 0;
    while ((rc = drive(&o.co)) == WEFT_CO_PENDING)
        steps++;
    assert_int_equal(steps, 2);
    assert_string_equal(g_log, "ccoF");
    assert_int_equal(o.result, 21);
}

/* An error unwinds to FINALLY and ends the frame with it. */
static void test_error_unwinds_to_finally(void **state)
{
    (void)state;
    g_log[0] = 0;
    struct outer o = {.co = {.info = &outer__info}, .fail = -7};
    start(&o.co);
    while (drive(&o.co) == WEFT_CO_PENDING)
        ;
    assert_string_equal(g_log, "ccoF!");
    assert_int_equal(o.co.err, -7);
}

/* WEFT_TRY_CALL catches a child's error. */
static void test_try_call_catches_child_error(void **state)
{
    (void)state;
    struct catcher c = {.co = {.info = &catcher__info}};
    start(&c.co);
    assert_int_equal(drive(&c.co), WEFT_CO_DONE);
    assert_int_equal(c.result, -5);
    assert_int_equal(c.co.err, 0);
}

/* A driver may start a frame in its cleanup (how a cancelled task skips a
 * body): only FINALLY runs. */
static void test_driver_can_start_a_frame_in_its_cleanup(void **state)
{
    (void)state;
    g_log[0] = 0;
    struct outer o = {.co = {.info = &outer__info}};
    start(&o.co);
    o.co.err = -9;
    o.co.key = WEFT_CO_KEY_FINALLY;
    assert_int_equal(drive(&o.co), WEFT_CO_DONE);
    assert_string_equal(g_log, "F!");
}

/* WEFT_THROW with a code that is not an error is misuse, flagged for the
 * driver. */
static void test_throw_of_non_error_is_flagged_misuse(void **state)
{
    (void)state;
    struct bad_throw b = {.co = {.info = &bad_throw__info}};
    start(&b.co);
    assert_int_equal(drive(&b.co), WEFT_CO_DONE);
    assert_int_equal(b.co.err, WEFT_ECORO);
    assert_true(b.co.flags & WEFT_CO_MISUSE_THROW);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_suspends_and_resumes_by_hand),
        cmocka_unit_test(test_inline_child_and_finally_without_the_loop),
        cmocka_unit_test(test_error_unwinds_to_finally),
        cmocka_unit_test(test_try_call_catches_child_error),
        cmocka_unit_test(test_driver_can_start_a_frame_in_its_cleanup),
        cmocka_unit_test(test_throw_of_non_error_is_flagged_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
