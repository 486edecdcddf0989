/* shim.c - TEMPORARY: the new upper-layer interface on the old loop. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop_internal.h"

void weft__layer_set(weft_loop *loop, int id, weft__layer *state)
{
    loop->layers[id] = state;
}

void weft__report(weft_loop *loop, const weft_report *r)
{
    loop->err_hook(loop, r->err, r->message, loop->err_ud);
}

void weft__reportf(weft_loop *loop, weft_report_kind kind, int err, const char *fmt, ...)
{
    (void)kind;
    weft__strbuf b;
    weft__strbuf_init(&b, loop);
    va_list ap;
    va_start(ap, fmt);
    char small[512];
    vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    loop->err_hook(loop, err, small, loop->err_ud);
    weft__strbuf_free(&b);
}

void weft__lag_capture(weft_loop *loop)
{
    (void)loop;
}

int weft__sec_to_ns(double s, int64_t *out)
{
    if (isnan(s))
        return -EINVAL;
    if (s >= 9.2e9)
        *out = INT64_MAX;
    else if (s <= -9.2e9)
        *out = INT64_MIN;
    else
        *out = (int64_t)(s * 1e9);
    return 0;
}

int64_t weft__add_sat(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

void weft__strbuf_init(weft__strbuf *b, weft_loop *loop)
{
    *b = (weft__strbuf){.loop = loop};
}

void weft__strbuf_printf(weft__strbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *s = weft__realloc(b->loop, b->s, cap);
        if (!s) {
            b->failed = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

const char *weft__strbuf_str(const weft__strbuf *b)
{
    return b->s && !b->failed ? b->s : "";
}

void weft__strbuf_free(weft__strbuf *b)
{
    weft__free(b->loop, b->s);
    *b = (weft__strbuf){.loop = b->loop};
}

void weft__assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "weft: assertion failed: %s (%s:%d)\n", cond, file, line);
    abort();
}
