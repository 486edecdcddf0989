/* tests/compile_fail/return_in_body.c - MUST FAIL TO COMPILE.
 *
 * Pins coroutines.md 4.6 pitfall 4 and the co.h rule "No `return` in a
 * body: use WEFT_RETURN / WEFT_THROW (a stray `return 0;` does not compile:
 * the body returns a struct)".  A plain return would skip WEFT_FINALLY and
 * leave the task's state inconsistent, so it must be a compile error on
 * both backends.  Deleting the line marked OFFENDING makes it compile: that
 * proves the failure comes from that line.
 */
#include <weft.h>

struct returns_int {
    WEFT_FRAME(int);
};

WEFT_ASYNC(returns_int)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    return 0; /* OFFENDING: plain return in a coroutine body */
    WEFT_END;
}

int main(void)
{
    return WEFT_RUN(NULL, NULL, returns_int) ? 1 : 0;
}
