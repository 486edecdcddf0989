/* Smallest possible weft user: create a loop, destroy it, print "ok". */
#include <stdio.h>

#include <weft.h>

int main(void)
{
    weft_loop *loop = NULL;
    int rc = weft_loop_new(&loop, NULL);
    if (rc != 0) {
        fprintf(stderr, "weft_loop_new: %s\n", weft_strerror(rc));
        return 1;
    }
    rc = weft_loop_destroy(loop);
    if (rc != 0) {
        fprintf(stderr, "weft_loop_destroy: %s\n", weft_strerror(rc));
        return 1;
    }
    printf("ok\n");
    return 0;
}
