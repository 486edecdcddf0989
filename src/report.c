/* report.c - structured reports, the default report hook, dumps, and the
 * string builder they use.
 *
 * Everything the loop cannot return as an error goes through one hook as a
 * weft_report (kind, code, message, and the task / callback concerned).
 * Reports are cold: formatting uses a 256-byte stack buffer, and longer
 * texts (dumps) go through the loop's allocator, never around it.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

/* ---- the string builder ------------------------------------------------------------- */

void weft__strbuf_init(weft__strbuf *b, weft_loop *loop)
{
    *b = (weft__strbuf){loop, NULL, 0, 0, false};
}

void weft__strbuf_printf(weft__strbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(room ? b->buf + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return; /* an encoding error: skip this piece */
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *p = weft__realloc(b->loop, b->buf, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
}

const char *weft__strbuf_str(const weft__strbuf *b)
{
    return b->failed || !b->buf ? "" : b->buf;
}

void weft__strbuf_free(weft__strbuf *b)
{
    weft__free(b->loop, b->buf);
    weft__strbuf_init(b, b->loop);
}

/* ---- reports ------------------------------------------------------------------------------- */

static void default_hook(weft_loop *loop, const weft_report *r, void *ud)
{
    (void)loop, (void)ud;
    const char *sep = r->detail ? ": " : "", *detail = r->detail ? r->detail : "";
    if (r->err)
        fprintf(stderr, "weft: %s%s%s (%s)\n", r->message, sep, detail, weft_strerror(r->err));
    else
        fprintf(stderr, "weft: %s%s%s\n", r->message, sep, detail);
}

int weft_loop_set_report_hook(weft_loop *loop, weft_report_hook *hook, void *ud)
{
    if (!loop)
        return -EINVAL;
    loop->report_hook = hook ? hook : default_hook;
    loop->report_ud = hook ? ud : NULL;
    return 0;
}

void weft__report_init(weft_loop *loop)
{
    loop->report_hook = default_hook;
    loop->report_ud = NULL;
}

void weft__report(weft_loop *loop, const weft_report *r)
{
    WEFT_ASSERT(r->message != NULL);
    loop->report_hook(loop, r, loop->report_ud);
}

void weft__reportf(weft_loop *loop, weft_report_kind kind, int err, const char *fmt, ...)
{
    char small[256], *big = NULL;
    weft_report r = {0};
    r.kind = kind;
    r.err = err;
    r.message = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        small[0] = '\0';
    else if ((size_t)n >= sizeof small && (big = weft__alloc(loop, (size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        r.message = big; /* else: the truncated text */
    }
    weft__report(loop, &r);
    weft__free(loop, big);
}

/* ---- dumps ----------------------------------------------------------------------------------- */

void weft__dump(weft_loop *loop)
{
    weft__strbuf b;
    weft__strbuf_init(&b, loop);
    size_t ready = 0;
    for (const weft_link *l = loop->ready->next; l != loop->ready; l = l->next)
        ready++;
    weft__strbuf_printf(&b,
                        "loop %p: backend %s, %s clock at %lld ns, %llu iterations, "
                        "%llu callbacks\n  %zu ready, %u timers armed, %d fds watched\n",
                        (void *)loop, loop->be->name, (loop->state & WEFT__VIRTUAL) ? "virtual" : "real",
                        (long long)weft__now(loop), (unsigned long long)loop->stats.iterations,
                        (unsigned long long)atomic_load(&loop->lag.tick), ready, loop->heap.n,
                        loop->nwatched);
    for (int id = 0; id < WEFT__LAYERS; id++) {
        weft__layer *l = loop->layers[id];
        if (l && l->dump)
            l->dump(loop, l, &b);
    }
    if (!b.failed && b.len && b.buf[b.len - 1] == '\n')
        b.buf[--b.len] = '\0'; /* lines are separated, not terminated */
    weft_report r = {0};
    r.kind = WEFT_REPORT_DUMP;
    r.message = b.failed ? "loop dump: out of memory" : weft__strbuf_str(&b);
    r.err = b.failed ? -ENOMEM : 0;
    weft__report(loop, &r);
    weft__strbuf_free(&b);
}

/* ---- assertions ------------------------------------------------------------------------------ */

#if WEFT_ASSERTIONS
void weft__assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "weft: %s:%d: assertion failed: %s\n", file, line, cond);
    abort(); /* weft's own bug, never the caller's input */
}
#endif
