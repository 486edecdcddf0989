/* Must NOT compile with -Werror=jump-misses-init (GCC): the local `n`
 * lives across a suspension, so resuming the coroutine jumps over its
 * initialisation.  consumer_test.cmake builds it and expects the lint to
 * fire through weft's installed headers (they must not be -isystem). */
#include <weft.h>

struct probe {
    WEFT_FRAME(int);
};

WEFT_ASYNC(probe)
{
    WEFT_BEGIN(self);
    int n = 1;
    WEFT_SLEEP(self, 0);
    WEFT_RETURN(self, n);
    WEFT_END;
}

int lint_probe_unused(void);
int lint_probe_unused(void)
{
    return (int)sizeof(struct probe);
}
