/* tests/compile_fail/self_not_a_frame.c - MUST FAIL TO COMPILE.
 *
 * Pins co.h's promise that the macros taking `self` check it is a frame:
 * each expands weft__co_self(&(self)->co), which takes a weft_co *, so a
 * pointer to some other struct - even one with a member named `co` - is
 * a compile error, not a suspension that writes into the wrong memory.
 * Deleting the line marked OFFENDING makes it compile.
 */
#include <weft.h>

struct not_a_frame {
    int co; /* a member with the right name and the wrong type */
    int x;
};

struct frame {
    WEFT_FRAME(int);
    struct not_a_frame other;
};

WEFT_ASYNC(frame)
{
    WEFT_BEGIN(self);
    WEFT_YIELD(&self->other); /* OFFENDING: self is not a coroutine frame */
    WEFT_YIELD(self);
    WEFT_END;
}

int main(void)
{
    return WEFT_RUN(NULL, NULL, frame) ? 1 : 0;
}
