/* tests/compile_fail/two_suspends_one_line.c - MUST FAIL TO COMPILE.
 *
 * Pins coroutines.md 4.6 pitfall 2 and the co.h rule "one suspension per
 * source line: two fail to compile (duplicate case)".  On the default
 * (switch) backend both WEFT_YIELDs expand to `case __LINE__:` with the same
 * line; on the labels backend both define the label weft__resume_<line>.
 * Either way the compiler must reject this file.  Deleting the line marked
 * OFFENDING makes it compile: that proves the failure comes from that line.
 */
#include <weft.h>

struct two_on_one_line {
    WEFT_FRAME(int);
};

WEFT_ASYNC(two_on_one_line)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(self);
    /* clang-format off */
    WEFT_YIELD(self); WEFT_YIELD(self); /* OFFENDING: two suspensions on one line */
    /* clang-format on */
    WEFT_END;
}

int main(void)
{
    return WEFT_RUN(NULL, NULL, two_on_one_line) ? 1 : 0;
}
