/* tests/compile_fail/local_across_suspension.c - MUST FAIL TO COMPILE
 * (with GCC, on the switch backend, with the flag below).
 *
 * Pins coroutines.md 4.6 pitfall 5 and co.h's first rule: "C locals do NOT
 * survive a suspension.  Put them in the frame."  On the switch backend,
 * resuming jumps into the body past the local's initialization, so the
 * local holds garbage after the suspension.  GCC's -Wjump-misses-init
 * reports exactly that jump; projects should build their coroutines with
 * it as an error, and this test proves that it catches the mistake.
 * Deleting the line marked OFFENDING makes it compile.
 *
 * COMPILE_FAIL_GCC_FLAGS: -Werror=jump-misses-init
 */
#include <stdio.h>
#include <weft.h>

struct child {
    WEFT_FRAME(int);
};

WEFT_ASYNC(child)
{
    WEFT_BEGIN(self);
    WEFT_SLEEP(self, 0.001);
    WEFT_END;
}

/* Without the OFFENDING line this body uses every suspending macro, so the
 * control also proves that weft's own macros are clean under the lint. */
struct keeps_a_local {
    WEFT_FRAME(int);
    struct child c;
    int e;
};

WEFT_ASYNC(keeps_a_local)
{
    WEFT_BEGIN(self);
    /* The declaration and its use must share the OFFENDING line. */
    /* clang-format off */
    int lost = 42; printf("%d\n", lost); /* OFFENDING: a C local crosses the yield */
    /* clang-format on */
    WEFT_YIELD(self);
    WEFT_AWAIT(self, weft_sleep(weft_task_loop(task), 0.001));
    WEFT_TRY_AWAIT(self, weft_sleep(weft_task_loop(task), 0.001), self->e);
    WEFT_CALL(self, child, &self->c);
    WEFT_TRY_CALL(self, self->e, child, &self->c);
    WEFT_FINALLY;
    WEFT_SLEEP(self, 0.001);
    WEFT_END;
}

int main(void)
{
    return WEFT_RUN(NULL, NULL, keeps_a_local) ? 1 : 0;
}
