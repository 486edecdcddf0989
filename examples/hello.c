/* hello.c - the smallest coroutine program (seed 000):
 *
 *     import asyncio
 *
 *     async def main():
 *         print('hello')
 *         await asyncio.sleep(1)
 *         print('world')
 *
 *     asyncio.run(main())
 *
 * `async def main()` becomes a frame struct plus a WEFT_ASYNC body; the
 * frame holds what Python keeps in the coroutine object (arguments and
 * locals).  main() has none, so its frame is only the header and a result.
 */
#include <stdio.h>
#include <weft.h>

struct main_co {
    WEFT_FRAME(int); /* header + `int result`: Python's None becomes 0 */
};

WEFT_ASYNC(main_co)
{
    WEFT_BEGIN(self);
    printf("hello\n");
    WEFT_SLEEP(self, 1); /* await asyncio.sleep(1): the task parks here */
    printf("world\n");
    WEFT_END; /* falling off the end returns result = 0 */
}

int main(void)
{
    /* asyncio.run(main()): new loop, main_co as its first task, run it to
     * completion, cancel leftovers, close the loop.  Returns main's error
     * code, 0 on success. */
    int err = WEFT_RUN(WEFT_ENV_OPTIONS, NULL, main_co);
    if (err)
        fprintf(stderr, "hello: %s\n", weft_strerror(err));
    return err ? 1 : 0;
}
