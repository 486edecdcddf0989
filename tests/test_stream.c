/* tests/test_stream.c - streams (weft/stream.h): readers fed by hand,
 * streams over socketpairs, pipes and loopback connections, servers
 * with handler tasks; every S-STREAM statement of asyncio-semantics.md
 * section 6 pinned by name; both fd backends. */
#include "weft_test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

static const char *const BACKENDS[] = {"epoll", "poll"};
#define EACH_BACKEND(b) for (size_t b = 0; b < sizeof BACKENDS / sizeof *BACKENDS; b++)

static int setup(void **state)
{
    (void)state;
    wt_setup((wt_policy){.watchdog_s = 60});
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* ---- helpers -------------------------------------------------------------------- */

static weft_stream *fed(weft_loop *loop, size_t limit)
{
    weft_stream *s = NULL;
    weft_stream_opts o = {.limit = limit};
    assert_int_equal(weft_stream_new(loop, &o, &s), 0);
    assert_non_null(s);
    return s;
}

static void feed(weft_stream *s, const char *text)
{
    assert_int_equal(weft_stream_feed_data(s, text, strlen(text)), 0);
}

/* f is done with data equal to want (len n); drops f. */
static void expect_data_n(weft_future *f, const char *want, size_t n)
{
    assert_non_null(f);
    assert_true(weft_future_done(f));
    weft_value v = {0};
    assert_int_equal(weft_future_result(f, &v), 0);
    const weft_bytes *b = v.p;
    assert_non_null(b);
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
    assert_int_equal(b->data[n], 0); /* NUL-terminated */
    weft_future_unref(f);
}

static void expect_data(weft_future *f, const char *want)
{
    expect_data_n(f, want, strlen(want));
}

/* f failed with err; drops f. */
static void expect_err(weft_future *f, int err)
{
    assert_non_null(f);
    assert_true(weft_future_done(f));
    assert_int_equal(weft_future_error(f), err);
    weft_future_unref(f);
}

static void expect_null(weft_future *f, int err)
{
    assert_null(f);
    assert_int_equal(weft_last_error(), err);
}

static void expect_last(weft_stream *s, const char *want)
{
    const weft_bytes *b = weft_stream_last(s);
    assert_non_null(b);
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->data, want, b->len);
}

/* ---- read(n): S-STREAM-3 ----------------------------------------------------------- */

/* n > 0 waits for at least one byte, takes up to n; n == 0 is empty at
 * once; at EOF the result is empty. */
static void test_s_stream_3_read_n(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        weft_future *f = weft_stream_read(s, 4);
        assert_non_null(f);
        assert_false(weft_future_done(f)); /* nothing buffered: waits */
        feed(s, "abcdefg");
        expect_data(f, "abcd");
        expect_data(weft_stream_read(s, 0), "");
        assert_int_equal(weft_stream_buffered(s), 3);
        expect_data(weft_stream_read(s, 100), "efg");
        assert_int_equal(weft_stream_feed_eof(s), 0);
        expect_data(weft_stream_read(s, 10), "");
        expect_data(weft_stream_read(s, 10), ""); /* and again */
        weft_stream_free(s);
        finish(loop);
    }
}

/* An exception set on the reader is raised first, even with data
 * buffered (and the buffered data is no longer returned). */
static void test_s_stream_3_exception_first_even_with_data_buffered(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        feed(s, "data\nmore");
        assert_int_equal(weft_stream_set_exception(s, -ECONNRESET), 0);
        assert_int_equal(weft_stream_exception(s), -ECONNRESET);
        expect_err(weft_stream_read(s, 10), -ECONNRESET);
        expect_err(weft_stream_read(s, 0), -ECONNRESET);
        expect_err(weft_stream_readline(s), -ECONNRESET);
        expect_err(weft_stream_readexactly(s, 1), -ECONNRESET);
        expect_err(weft_stream_readuntil(s, "\n", 1), -ECONNRESET);
        expect_err(weft_stream_read(s, -1), -ECONNRESET);
        assert_int_equal(weft_stream_buffered(s), 0);
        assert_int_equal(weft_stream_set_exception(s, -EIO), WEFT_ESTATE);
        weft_stream_free(s);
        finish(loop);
    }
}

/* The exception fails a read already pending. */
static void test_s_stream_12_exception_fails_the_pending_read(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        weft_future *f = weft_stream_readexactly(s, 10);
        feed(s, "abc");
        assert_false(weft_future_done(f));
        assert_int_equal(weft_stream_set_exception(s, -ECONNRESET), 0);
        expect_err(f, -ECONNRESET);
        weft_stream_free(s);
        finish(loop);
    }
}

/* read(-1) reads to EOF and returns everything, past the limit. */
static void test_s_stream_3_read_to_eof(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 16);
        weft_future *f = weft_stream_read(s, -1);
        char big[100];
        for (int k = 0; k < 100; k++)
            big[k] = (char)('a' + k % 26);
        for (int k = 0; k < 10; k++) {
            assert_int_equal(weft_stream_feed_data(s, big + 10 * k, 10), 0);
            assert_false(weft_future_done(f));
        }
        assert_int_equal(weft_stream_feed_eof(s), 0);
        expect_data_n(f, big, 100);
        assert_true(weft_stream_at_eof(s));
        expect_data(weft_stream_read(s, -1), ""); /* at EOF: empty */
        weft_stream_free(s);
        finish(loop);
    }
}

/* ---- readline: S-STREAM-4 ---------------------------------------------------------- */

static void test_s_stream_4_readline(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        weft_future *f = weft_stream_readline(s);
        feed(s, "one");
        assert_false(weft_future_done(f));
        feed(s, "\ntwo\nthr");
        expect_data(f, "one\n");
        expect_data(weft_stream_readline(s), "two\n");
        f = weft_stream_readline(s);
        assert_false(weft_future_done(f));
        assert_int_equal(weft_stream_feed_eof(s), 0);
        expect_data(f, "thr");                    /* the partial last line, no newline */
        expect_data(weft_stream_readline(s), ""); /* EOF, buffer empty */
        weft_stream_free(s);
        finish(loop);
    }
}

/* Limit overrun: the separator found -> the over-long line is dropped;
 * not found -> the buffer is cleared; either way WEFT_ELIMIT. */
static void test_s_stream_4_readline_limit_overrun_drops(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 4);
        feed(s, "0123456789\nok\n");
        expect_err(weft_stream_readline(s), WEFT_ELIMIT);
        assert_int_equal(weft_stream_buffered(s), 3); /* the long line is gone */
        expect_data(weft_stream_readline(s), "ok\n");
        /* not found: cleared */
        weft_future *f = weft_stream_readline(s);
        feed(s, "abcdefgh");
        expect_err(f, WEFT_ELIMIT);
        assert_int_equal(weft_stream_buffered(s), 0);
        feed(s, "ij\n"); /* the rest of that line arrives */
        expect_data(weft_stream_readline(s), "ij\n");
        weft_stream_free(s);
        finish(loop);
    }
}

/* ---- readexactly: S-STREAM-5 --------------------------------------------------------- */

static void test_s_stream_5_readexactly(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 4); /* exactly may exceed the limit */
        expect_null(weft_stream_readexactly(s, -1), -EINVAL);
        expect_data(weft_stream_readexactly(s, 0), "");
        weft_future *f = weft_stream_readexactly(s, 10);
        feed(s, "01234");
        assert_false(weft_future_done(f));
        feed(s, "56789ab");
        expect_data(f, "0123456789");
        f = weft_stream_readexactly(s, 5);
        assert_false(weft_future_done(f));
        assert_int_equal(weft_stream_feed_eof(s), 0);
        expect_err(f, WEFT_EINCOMPLETE);
        expect_last(s, "ab");                         /* the partial data */
        assert_int_equal(weft_stream_buffered(s), 0); /* buffer cleared */
        assert_true(weft_stream_at_eof(s));
        weft_stream_free(s);
        finish(loop);
    }
}

/* ---- readuntil: S-STREAM-6 ----------------------------------------------------------- */

static void test_s_stream_6_readuntil(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        expect_null(weft_stream_readuntil(s, "", 0), -EINVAL);
        expect_null(weft_stream_readuntil(s, NULL, 1), -EINVAL);
        char sep[3] = {'\r', '\n', '!'};
        weft_future *f = weft_stream_readuntil(s, sep, 2);
        sep[0] = 'x'; /* copied: the caller's separator may change */
        feed(s, "GET /\r");
        assert_false(weft_future_done(f));
        feed(s, "\nHost: a\r\n\r\n");
        expect_data(f, "GET /\r\n");
        expect_data(weft_stream_readuntil(s, "\r\n\r\n", 4), "Host: a\r\n\r\n");
        feed(s, "tail");
        assert_int_equal(weft_stream_feed_eof(s), 0);
        expect_err(weft_stream_readuntil(s, "\n", 1), WEFT_EINCOMPLETE);
        expect_last(s, "tail"); /* partial = everything buffered */
        assert_int_equal(weft_stream_buffered(s), 0);
        weft_stream_free(s);
        finish(loop);
    }
}

/* Not found and the scanned chunk exceeds the limit / found but starting
 * after the limit: WEFT_ELIMIT, the data left in the buffer, consumed as
 * asyncio's LimitOverrunError.consumed. */
static void test_s_stream_6_readuntil_limit_overrun_leaves_the_data(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 5);
        weft_future *f = weft_stream_readuntil(s, "##", 2);
        feed(s, "abcdef");
        assert_false(weft_future_done(f)); /* offset 5 = len + 1 - seplen: not > 5 */
        feed(s, "g");
        expect_err(f, WEFT_ELIMIT);
        assert_int_equal(weft_stream_consumed(s), 6);
        assert_int_equal(weft_stream_buffered(s), 7); /* left */
        expect_data(weft_stream_read(s, 100), "abcdefg");
        feed(s, "0123456##");
        expect_err(weft_stream_readuntil(s, "##", 2), WEFT_ELIMIT); /* found at 7 > 5 */
        assert_int_equal(weft_stream_consumed(s), 7);
        assert_int_equal(weft_stream_buffered(s), 9);
        expect_data(weft_stream_readexactly(s, 9), "0123456##");
        feed(s, "01234##");
        expect_data(weft_stream_readuntil(s, "##", 2), "01234##"); /* at 5: fine */
        weft_stream_free(s);
        finish(loop);
    }
}

/* ---- at_eof and feeding: S-STREAM-7 ---------------------------------------------------- */

static void test_s_stream_7_at_eof_and_feeding(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        assert_false(weft_stream_at_eof(s));
        assert_int_equal(weft_stream_feed_data(s, "", 0), 0); /* no-op */
        assert_int_equal(weft_stream_buffered(s), 0);
        feed(s, "x");
        assert_int_equal(weft_stream_feed_eof(s), 0);
        assert_false(weft_stream_at_eof(s)); /* EOF but data buffered */
        assert_int_equal(weft_stream_feed_data(s, "y", 1), WEFT_ESTATE);
        assert_int_equal(weft_stream_feed_eof(s), WEFT_ESTATE);
        expect_data(weft_stream_read(s, 5), "x");
        assert_true(weft_stream_at_eof(s));
        weft_stream_free(s);
        finish(loop);
    }
}

/* ---- one reader at a time ------------------------------------------------------------ */

static void test_s_stream_3_second_concurrent_reader_is_refused(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        weft_future *f = weft_stream_read(s, 10);
        expect_null(weft_stream_read(s, 10), WEFT_ESTATE);
        expect_null(weft_stream_readline(s), WEFT_ESTATE);
        feed(s, "a\nb\n");
        /* done but its data not yet seen: still refused */
        assert_true(weft_future_done(f));
        expect_null(weft_stream_readline(s), WEFT_ESTATE);
        expect_data(f, "a\nb\n");
        feed(s, "c");
        expect_data(weft_stream_read(s, 10), "c");
        weft_stream_free(s);
        finish(loop);
    }
}

/* ---- ownership of results ------------------------------------------------------------- */

/* The result is valid until the next read starts; take keeps it. */
static void test_results_belong_to_the_stream_until_taken(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        feed(s, "first\nsecond\n");
        weft_future *f = weft_stream_readline(s);
        weft_value v;
        assert_int_equal(weft_future_result(f, &v), 0);
        weft_future_unref(f);
        assert_ptr_equal(weft_stream_last(s), v.p);
        weft_bytes *mine = weft_stream_take(s);
        assert_ptr_equal(mine, v.p);
        assert_null(weft_stream_last(s));
        assert_null(weft_stream_take(s));
        expect_data(weft_stream_readline(s), "second\n");
        assert_string_equal(mine->data, "first\n"); /* still valid: taken */
        weft_bytes_free(mine);
        weft_bytes_free(NULL);
        weft_stream_free(s);
        finish(loop);
    }
}

/* A read future dropped without anyone seeing its data gives the data
 * back: the next read sees it. */
static void test_dropped_read_gives_its_data_back(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        weft_future *f = weft_stream_read(s, 3);
        feed(s, "abcdef");
        assert_true(weft_future_done(f));
        weft_future_unref(f); /* never looked at */
        expect_data(weft_stream_read(s, 100), "abcdef");
        weft_stream_free(s);
        finish(loop);
    }
}

/* ---- coroutines: cancellation and timeouts ------------------------------------------------ */

static char g_got[256];
static size_t g_got_len;
static int g_got_err;

/* A task that awaits one readline or read(n) and records what it got. */
struct reader {
    WEFT_FRAME(int);
    weft_stream *s;
    ssize_t n;      /* 0: readline */
    double timeout; /* > 0: through weft_wait_for */
};

static weft_future *reader_start(struct reader *self)
{
    weft_future *f = self->n ? weft_stream_read(self->s, self->n) : weft_stream_readline(self->s);
    return self->timeout > 0 ? weft_wait_for(f, self->timeout) : f;
}

WEFT_ASYNC(reader)
{
    WEFT_BEGIN(self);
    g_got_err = 1;
    WEFT_TRY_AWAIT(self, reader_start(self), g_got_err);
    if (!g_got_err) {
        const weft_bytes *b = WEFT_RESULT(self).p;
        g_got_len = b->len < sizeof g_got ? b->len : sizeof g_got - 1;
        memcpy(g_got, b->data, g_got_len);
        g_got[g_got_len] = 0;
    }
    WEFT_RETURN(self, 0);
    WEFT_END;
}

/* A task cancelled while its read waits loses nothing: the next read
 * sees every byte. */
static void test_read_cancelled_while_waiting_loses_nothing(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        feed(s, "part"); /* no newline yet */
        weft_task *t = WEFT_SPAWN(loop, reader, .s = s);
        step(loop);
        assert_false(weft_future_done(t));
        assert_int_equal(weft_task_cancel(t), 0);
        assert_int_equal(run(loop, t), -ECANCELED);
        weft_future_unref(t);
        feed(s, "ial\n");
        expect_data(weft_stream_readline(s), "partial\n");
        weft_stream_free(s);
        finish(loop);
    }
}

/* A read whose outcome was seen and that only the stream still holds is
 * reused by the next read (nothing is allocated); one its caller still
 * holds never is: it stays done with its own outcome. */
static void test_next_read_reuses_a_seen_read_only_the_stream_holds(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        feed(s, "one\n");
        weft_future *a = weft_stream_readline(s);
        uintptr_t a_addr = (uintptr_t)a;
        expect_data(a, "one\n"); /* seen, and the caller's reference dropped */
        feed(s, "two\n");
        /* the future is reused and the buffer block becomes the result */
        alloc_fail_at(alloc_calls() + 1);
        weft_future *b = weft_stream_readline(s);
        alloc_fail_at(0);
        assert_true((uintptr_t)b == a_addr);
        assert_true(weft_future_done(b));
        weft_value v = {0};
        assert_int_equal(weft_future_result(b, &v), 0); /* seen; b still held */
        assert_memory_equal(((const weft_bytes *)v.p)->data, "two\n", 4);
        feed(s, "three\n");
        weft_future *c = weft_stream_readline(s);
        assert_ptr_not_equal(c, b);
        assert_true(weft_future_done(b)); /* untouched by the next read */
        assert_int_equal(weft_future_state_of(b), WEFT_DONE);
        weft_future_unref(b);
        expect_data(c, "three\n");
        weft_stream_free(s);
        finish(loop);
    }
}

/* The read completed but its task is cancelled before it resumes: the
 * data goes back to the buffer (rollback), the task ends cancelled. */
static void test_read_completed_then_cancelled_gives_the_data_back(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        weft_task *t = WEFT_SPAWN(loop, reader, .s = s);
        step(loop);              /* parked on the read */
        feed(s, "line\nnext\n"); /* completes the read; t is queued */
        assert_int_equal(weft_task_cancel(t), 0);
        assert_int_equal(run(loop, t), -ECANCELED);
        weft_future_unref(t);
        assert_int_equal(g_got_err, 1); /* never saw a value */
        expect_data(weft_stream_readline(s), "line\n");
        expect_data(weft_stream_readline(s), "next\n");
        weft_stream_free(s);
        finish(loop);
    }
}

/* wait_for around a read: the timeout fires, the read is cancelled, and
 * the bytes that arrived meanwhile are still there. */
static void test_wait_for_timeout_on_a_read(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = vloop_on(BACKENDS[i]);
        weft_stream *s = fed(loop, 0);
        weft_task *t = WEFT_SPAWN(loop, reader, .s = s, .timeout = 0.5);
        step(loop);
        feed(s, "no newline");
        int64_t t0 = weft_loop_now(loop);
        assert_int_equal(run(loop, t), 0);
        weft_future_unref(t);
        assert_int_equal(g_got_err, -ETIMEDOUT);
        assert_true(weft_loop_now(loop) - t0 >= 500 * MS);
        feed(s, "\n");
        expect_data(weft_stream_readline(s), "no newline\n");
        /* and a read that completes in time */
        t = WEFT_SPAWN(loop, reader, .s = s, .n = 3, .timeout = 0.5);
        step(loop);
        feed(s, "xyz");
        assert_int_equal(run_task(loop, t), 0);
        assert_int_equal(g_got_err, 0);
        assert_string_equal(g_got, "xyz");
        weft_stream_free(s);
        finish(loop);
    }
}

/* A read pending when its stream is freed is cancelled. */
static void test_free_cancels_the_pending_read(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = fed(loop, 0);
        weft_future *f = weft_stream_read(s, 1);
        weft_stream_free(s);
        assert_true(weft_future_cancelled(f));
        weft_future_unref(f);
        weft_stream_free(NULL);
        finish(loop);
    }
}

/* ---- bad input -------------------------------------------------------------------------- */

static void test_bad_input_is_refused(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream *s = NULL;
        weft_stream_opts big = {.limit = (size_t)WEFT_STREAM_LIMIT_MAX + 1};
        assert_int_equal(weft_stream_new(NULL, NULL, &s), -EINVAL);
        assert_int_equal(weft_stream_new(loop, NULL, NULL), -EINVAL);
        assert_int_equal(weft_stream_new(loop, &big, &s), -EINVAL);
        assert_int_equal(weft_stream_wrap(loop, -1, NULL, &s), -EINVAL);
        assert_int_equal(weft_stream_wrap(NULL, 0, NULL, &s), -EINVAL);
        assert_int_equal(weft_open_read_pipe(loop, 1000, NULL, &s), -EBADF);
        assert_null(s);
        expect_null(weft_stream_read(NULL, 1), -EINVAL);
        expect_null(weft_stream_readline(NULL), -EINVAL);
        expect_null(weft_stream_readexactly(NULL, 1), -EINVAL);
        expect_null(weft_stream_readuntil(NULL, "x", 1), -EINVAL);
        expect_null(weft_stream_drain(NULL), -EINVAL);
        expect_null(weft_stream_wait_closed(NULL), -EINVAL);
        expect_null(weft_open_connection(NULL, "127.0.0.1", 1, NULL), -EINVAL);
        expect_null(weft_open_connection(loop, NULL, 1, NULL), -EINVAL);
        expect_null(weft_open_connection(loop, "127.0.0.1", 1, &big), -EINVAL);
        expect_null(weft_open_unix_connection(loop, NULL, NULL), -EINVAL);
        expect_null(weft_start_server(loop, NULL, NULL, NULL, 0, NULL), -EINVAL);
        weft_server *srv = NULL;
        assert_int_equal(weft_start_unix_server(loop, NULL, NULL, "/tmp/x", NULL, &srv), -EINVAL);
        assert_int_equal(weft_stream_write(NULL, "x", 1), -EINVAL);
        assert_int_equal(weft_stream_writelines(NULL, NULL, 0), -EINVAL);
        assert_int_equal(weft_stream_write_eof(NULL), -EINVAL);
        assert_int_equal(weft_stream_close(NULL), -EINVAL);
        assert_int_equal(weft_stream_abort(NULL), -EINVAL);
        assert_int_equal(weft_stream_feed_data(NULL, "x", 1), -EINVAL);
        assert_int_equal(weft_stream_feed_eof(NULL), -EINVAL);
        assert_int_equal(weft_stream_set_exception(NULL, -EIO), -EINVAL);
        assert_false(weft_stream_at_eof(NULL));
        assert_false(weft_stream_is_closing(NULL));
        assert_false(weft_stream_can_write_eof(NULL));
        assert_null(weft_stream_transport(NULL));
        assert_null(weft_stream_loop(NULL));
        assert_null(weft_stream_last(NULL));
        assert_null(weft_stream_take(NULL));
        assert_int_equal(weft_stream_buffered(NULL), 0);
        assert_int_equal(weft_stream_dropped_writes(NULL), 0);
        /* a fed stream cannot be written */
        s = fed(loop, 0);
        assert_ptr_equal(weft_stream_loop(s), loop);
        assert_int_equal(weft_stream_limit(s), WEFT_STREAM_LIMIT_DEFAULT);
        assert_int_equal(weft_stream_write(s, "x", 1), -EBADF);
        assert_int_equal(weft_stream_write(s, NULL, 1), -EINVAL);
        assert_int_equal(weft_stream_writelines(s, NULL, 1), -EINVAL);
        assert_int_equal(weft_stream_write_eof(s), -ENOTSUP);
        expect_null(weft_stream_drain(s), -EBADF);
        assert_int_equal(weft_stream_feed_data(s, NULL, 1), -EINVAL);
        assert_int_equal(weft_stream_set_exception(s, 0), -EINVAL);
        assert_int_equal(weft_stream_set_exception(s, -ECANCELED), -EINVAL);
        assert_false(weft_stream_is_closing(s));
        assert_int_equal(weft_stream_close(s), 0);
        assert_true(weft_stream_is_closing(s));
        expect_err(weft_stream_wait_closed(s), 0);
        weft_stream_free(s);
        finish(loop);
    }
}

/* ---- allocation failure -------------------------------------------------------------------- */

/* Every allocation of a fed stream's life fails once in turn: each call
 * reports -ENOMEM and changes nothing, and nothing leaks. */
/* A read's future, or the same read started again if the first attempt
 * found no memory (the allocation-failure tests: one call fails). */
typedef weft_future *read_fn(weft_stream *s);

static weft_future *rd_line(weft_stream *s)
{
    return weft_stream_readline(s);
}

static weft_future *rd_all(weft_stream *s)
{
    return weft_stream_read(s, -1);
}

static weft_future *retry_nomem(read_fn *fn, weft_stream *s)
{
    weft_future *f = fn(s);
    if (!f) {
        assert_int_equal(weft_last_error(), -ENOMEM);
        return fn(s);
    }
    if (weft_future_done(f) && weft_future_error(f) == -ENOMEM) {
        weft_future_unref(f);
        return fn(s);
    }
    return f;
}

static void test_every_allocation_failure_of_a_fed_stream_is_survived(void **state)
{
    (void)state;
    int failures = 0;
    for (long k = 1;; k++) {
        weft_loop *loop = loop_on(NULL, 0);
        wt_warm(loop);
        long base = alloc_calls();
        alloc_fail_at(base + k);
        weft_stream *s = NULL;
        int err = weft_stream_new(loop, NULL, &s);
        assert_true(err == 0 || err == -ENOMEM);
        if (!err) {
            err = weft_stream_feed_data(s, "hello\nworld", 11);
            assert_true(err == 0 || err == -ENOMEM);
            assert_int_equal(weft_stream_buffered(s), err ? 0 : 11); /* unchanged on failure */
            if (err)
                feed(s, "hello\nworld");
            weft_future *f = retry_nomem(rd_line, s);
            expect_data(f, "hello\n");
            assert_int_equal(weft_stream_feed_eof(s), 0);
            expect_data(retry_nomem(rd_all, s), "world");
            weft_stream_free(s);
        }
        long calls = alloc_calls();
        alloc_fail_at(0);
        finish(loop);
        if (calls < base + k)
            break; /* the scenario made fewer than k calls: every site was hit */
        failures++;
    }
    assert_true(failures >= 3); /* the stream, the buffer, a read */
}

/* =============================================================================
 * Streams over transports: socketpairs, loopback TCP, pipes
 * ========================================================================== */

static void nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    assert_true(fl >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* A connected AF_UNIX stream pair. */
static void unix_pair(int fds[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
}

/* A connected loopback TCP pair, made with plain sockets. */
static void tcp_pair(int fds[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fds[0], (struct sockaddr *)&a, sizeof a), 0);
    fds[1] = accept(l, NULL, NULL);
    assert_true(fds[1] >= 0);
    close(l);
}

static weft_stream *wrapped(weft_loop *loop, int fd, size_t limit)
{
    weft_stream *s = NULL;
    weft_stream_opts o = {.limit = limit};
    assert_int_equal(weft_stream_wrap(loop, fd, &o, &s), 0);
    assert_non_null(s);
    return s;
}

/* Run loop until f is done (f stays the caller's); f's error.  Running
 * may itself find no memory (the allocation-failure tests): run again. */
static int await_f(weft_loop *loop, weft_future *f)
{
    assert_non_null(f);
    for (int k = 0; k < 3 && !weft_future_done(f); k++) {
        int rc = weft_loop_run_until_complete(loop, f);
        assert_true(rc == weft_future_error(f) || rc == -ENOMEM);
    }
    assert_true(weft_future_done(f));
    return weft_future_error(f);
}

/* Read exactly n bytes from the raw fd (blocking). */
static void raw_read_all(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
}

/* S-STREAM-8: write is synchronous, tried at once; the peer's stream
 * reads it; both directions. */
static void test_s_stream_8_write_and_read_over_a_socketpair(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        int fds[2];
        unix_pair(fds);
        weft_stream *a = wrapped(loop, fds[0], 0), *b = wrapped(loop, fds[1], 0);
        assert_non_null(weft_stream_transport(a));
        assert_int_equal(weft_transport_fd(weft_stream_transport(a)), fds[0]);
        assert_int_equal(weft_stream_write(a, "hello\nwor", 9), 0);
        assert_int_equal(weft_stream_write(a, "", 0), 0); /* empty: ignored */
        assert_int_equal(weft_transport_get_write_buffer_size(weft_stream_transport(a)), 0);
        struct iovec iov[2] = {{"ld", 2}, {"\n", 1}};
        assert_int_equal(weft_stream_writelines(a, iov, 2), 0);
        weft_future *f = weft_stream_readline(b);
        assert_int_equal(await_f(loop, f), 0);
        expect_data(f, "hello\n");
        f = weft_stream_readline(b);
        assert_int_equal(await_f(loop, f), 0);
        expect_data(f, "world\n");
        assert_int_equal(weft_stream_write(b, "back", 4), 0);
        f = weft_stream_readexactly(a, 4);
        assert_int_equal(await_f(loop, f), 0);
        expect_data(f, "back");
        weft_stream_free(a);
        weft_stream_free(b);
        drain(loop);
        finish(loop);
    }
}

/* S-STREAM-2: a reader that does not read pauses the transport above
 * 2 * limit and resumes it once reads bring the buffer to <= limit. */
static void test_s_stream_2_reader_pauses_above_twice_the_limit(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        int fds[2];
        unix_pair(fds);
        nonblock(fds[1]);
        const size_t limit = 1024;
        weft_stream *s = wrapped(loop, fds[0], limit);
        weft_transport *t = weft_stream_transport(s);
        char chunk[512];
        memset(chunk, 'x', sizeof chunk);
        for (int k = 0; k < 200 && weft_transport_is_reading(t); k++) {
            while (write(fds[1], chunk, sizeof chunk) > 0)
                ;
            step(loop);
        }
        assert_false(weft_transport_is_reading(t)); /* paused */
        size_t held = weft_stream_buffered(s);
        assert_true(held > 2 * limit);
        for (int k = 0; k < 5; k++)
            step(loop);
        assert_int_equal(weft_stream_buffered(s), held); /* no more reading */
        /* read down to the limit: still paused just above it, resumed at it */
        weft_future *f = weft_stream_readexactly(s, (ssize_t)(held - limit - 1));
        assert_int_equal(weft_future_error(f), 0);
        weft_future_unref(f);
        assert_false(weft_transport_is_reading(t));
        f = weft_stream_readexactly(s, 1);
        assert_int_equal(weft_future_error(f), 0);
        weft_future_unref(f);
        assert_int_equal(weft_stream_buffered(s), limit);
        assert_true(weft_transport_is_reading(t));
        weft_stream_free(s);
        close(fds[1]);
        drain(loop);
        finish(loop);
    }
}

/* A task that writes chunks and drains after each, forever (until the
 * stream fails or rounds run out). */
static char g_chunk[8192];

struct flood {
    WEFT_FRAME(int);
    weft_stream *s;
    int rounds;
    int err;
};

WEFT_ASYNC(flood)
{
    WEFT_BEGIN(self);
    for (self->rounds = 0; self->rounds < 100000; self->rounds++) {
        self->err = weft_stream_write(self->s, g_chunk, sizeof g_chunk);
        if (self->err)
            break;
        WEFT_TRY_AWAIT(self, weft_stream_drain(self->s), self->err);
        if (self->err)
            break;
    }
    WEFT_RETURN(self, self->rounds);
    WEFT_END;
}

/* S-STREAM-9: drain does not suspend while writing is not paused; a peer
 * that never reads stops the writer, whose buffer stops growing at the
 * high-water mark; reading the peer wakes drain at the low-water mark. */
static void test_s_stream_9_drain_stops_the_writer_at_the_high_water_mark(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        int fds[2];
        unix_pair(fds);
        int small = 4096;
        setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        weft_stream *s = wrapped(loop, fds[0], 0);
        weft_transport *t = weft_stream_transport(s);
        size_t high = 0, low = 0;
        assert_int_equal(weft_transport_get_write_buffer_limits(t, &high, &low), 0);
        assert_int_equal(high, WEFT_WRITE_HIGH_DEFAULT);
        assert_int_equal(low, WEFT_WRITE_LOW_DEFAULT);
        weft_future *d = weft_stream_drain(s);
        assert_true(weft_future_done(d)); /* not paused: done at once */
        weft_value v = {.i = -1};
        assert_int_equal(weft_future_result(d, &v), 0);
        assert_int_equal(v.i, 0);
        /* with nothing to wait for, nothing is made: every drain gives the
         * loop's one done future, even when no allocation can succeed */
        alloc_fail_at(alloc_calls() + 1);
        weft_future *d2 = weft_stream_drain(s);
        alloc_fail_at(0);
        assert_ptr_equal(d2, d);
        weft_future_unref(d2);
        weft_future_unref(d);
        weft_task *w = WEFT_SPAWN(loop, flood, .s = s);
        for (int k = 0; k < 1000 && weft_transport_get_write_buffer_size(t) <= high; k++)
            step(loop);
        size_t size = weft_transport_get_write_buffer_size(t);
        assert_true(size > high);
        assert_true(size <= high + sizeof g_chunk);
        /* it stays there: the writer is parked on drain */
        for (int k = 0; k < 20; k++)
            step(loop);
        assert_int_equal(weft_transport_get_write_buffer_size(t), size);
        assert_false(weft_future_done(w));
        /* the peer reads: the buffer drains to the low-water mark and the
         * writer goes on */
        nonblock(fds[1]);
        char sink[65536];
        for (int k = 0; k < 1000 && weft_transport_get_write_buffer_size(t) >= size; k++) {
            while (read(fds[1], sink, sizeof sink) > 0)
                ;
            step(loop);
        }
        assert_true(weft_transport_get_write_buffer_size(t) < size);
        weft_stream_abort(s);
        assert_int_equal(run(loop, w), 0);
        weft_future_unref(w);
        weft_stream_free(s);
        close(fds[1]);
        drain(loop);
        finish(loop);
    }
}

/* S-STREAM-10: close stops reading at once, is_closing is true right
 * after it, wait_closed completes once the connection is gone, the peer
 * sees EOF after the data. */
static void test_s_stream_10_close_and_wait_closed(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        int fds[2];
        unix_pair(fds);
        weft_stream *s = wrapped(loop, fds[0], 0);
        assert_false(weft_stream_is_closing(s));
        assert_int_equal(weft_stream_write(s, "bye", 3), 0);
        assert_int_equal(weft_stream_close(s), 0);
        assert_true(weft_stream_is_closing(s));
        assert_int_equal(weft_stream_close(s), 0); /* idempotent */
        assert_int_equal(weft_stream_write(s, "x", 1), WEFT_ESTATE);
        weft_future *wc = weft_stream_wait_closed(s);
        assert_false(weft_future_done(wc));
        assert_int_equal(await_f(loop, wc), 0);
        weft_future_unref(wc);
        assert_null(weft_stream_transport(s));
        char buf[8];
        raw_read_all(fds[1], buf, 3);
        assert_memory_equal(buf, "bye", 3);
        assert_int_equal(read(fds[1], buf, sizeof buf), 0); /* EOF */
        /* after the loss: wait_closed done at once, drain fails */
        wc = weft_stream_wait_closed(s);
        assert_true(weft_future_done(wc));
        expect_err(wc, 0);
        expect_err(weft_stream_drain(s), -ECONNRESET);
        expect_data(weft_stream_read(s, 10), ""); /* a clean loss reads as EOF */
        weft_stream_free(s);
        close(fds[1]);
        finish(loop);
    }
}

/* S-STREAM-11: the peer's EOF reads as EOF; the stream stays open for
 * writing (half-close); write_eof shuts our side, later writes fail. */
static void test_s_stream_11_half_close_both_ways(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        int fds[2];
        tcp_pair(fds);
        weft_stream *s = wrapped(loop, fds[0], 0);
        assert_int_equal(write(fds[1], "last", 4), 4);
        assert_int_equal(shutdown(fds[1], SHUT_WR), 0);
        weft_future *f = weft_stream_read(s, -1);
        assert_int_equal(await_f(loop, f), 0);
        expect_data(f, "last");
        assert_true(weft_stream_at_eof(s));
        assert_false(weft_stream_is_closing(s)); /* still open for writing */
        assert_true(weft_stream_can_write_eof(s));
        assert_int_equal(weft_stream_write(s, "reply", 5), 0);
        assert_int_equal(weft_stream_write_eof(s), 0);
        assert_int_equal(weft_stream_write(s, "more", 4), WEFT_ESTATE);
        char buf[16];
        raw_read_all(fds[1], buf, 5);
        assert_memory_equal(buf, "reply", 5);
        assert_int_equal(read(fds[1], buf, sizeof buf), 0); /* our EOF */
        weft_stream_free(s);
        close(fds[1]);
        drain(loop);
        finish(loop);
    }
}

/* S-STREAM-12: a peer reset fails the pending read and later reads with
 * -ECONNRESET, buffered data is no longer returned, drain and wait_closed
 * fail with it.  S-STREAM-13: writes after it are dropped and counted. */
static void test_s_stream_12_13_peer_reset(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        g_hook.count = 0;
        int fds[2];
        tcp_pair(fds);
        weft_stream *s = wrapped(loop, fds[0], 0);
        weft_future *wc = weft_stream_wait_closed(s);
        assert_int_equal(write(fds[1], "buffered", 8), 8);
        weft_future *f = weft_stream_readexactly(s, 100); /* takes nothing */
        for (int k = 0; k < 100 && weft_stream_buffered(s) < 8; k++)
            step(loop);
        assert_int_equal(weft_stream_buffered(s), 8);
        assert_int_equal(weft_stream_dropped_writes(s), 0); /* none while connected */
        struct linger lg = {1, 0};
        assert_int_equal(setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        close(fds[1]); /* RST */
        assert_int_equal(await_f(loop, f), -ECONNRESET);
        weft_future_unref(f);
        assert_int_equal(weft_stream_buffered(s), 0);
        expect_err(weft_stream_read(s, 1), -ECONNRESET);
        expect_err(weft_stream_readline(s), -ECONNRESET);
        assert_int_equal(await_f(loop, wc), -ECONNRESET);
        weft_future_unref(wc);
        expect_err(weft_stream_drain(s), -ECONNRESET);
        expect_err(weft_stream_wait_closed(s), -ECONNRESET);
        assert_true(weft_stream_is_closing(s));
        for (int k = 0; k < 4; k++)
            assert_int_equal(weft_stream_write(s, "lost", 4), 0);
        int io = g_hook.by_kind[WEFT_REPORT_IO];
        assert_int_equal(weft_stream_write(s, "lost", 4), 0);
        assert_int_equal(g_hook.by_kind[WEFT_REPORT_IO], io + 1); /* the 5th is reported */
        assert_non_null(strstr(g_hook.msg, "dropped"));
        assert_int_equal(weft_stream_write(s, "lost", 4), 0);
        assert_int_equal(g_hook.by_kind[WEFT_REPORT_IO], io + 1); /* once */
        assert_int_equal(weft_stream_dropped_writes(s), 6);
        weft_stream_free(s);
        finish(loop);
    }
}

/* Pipes: a read pipe reads to EOF when the writer closes; writing it is
 * -EBADF.  A write pipe's reader closing is the loss (-EPIPE): drain and
 * wait_closed fail with it, later writes are dropped. */
static void test_read_pipe_and_write_pipe(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        int p[2];
        assert_int_equal(pipe(p), 0);
        weft_stream *r = NULL, *w = NULL;
        assert_int_equal(weft_open_read_pipe(loop, p[1], NULL, &r), -EBADF);  /* write end */
        assert_int_equal(weft_open_write_pipe(loop, p[0], NULL, &w), -EBADF); /* read end */
        assert_int_equal(weft_open_read_pipe(loop, p[0], NULL, &r), 0);
        assert_int_equal(weft_open_write_pipe(loop, p[1], NULL, &w), 0);
        assert_int_equal(weft_stream_write(r, "x", 1), -EBADF);
        expect_null(weft_stream_read(w, 1), -EBADF);
        assert_false(weft_stream_can_write_eof(r));
        assert_true(weft_stream_can_write_eof(w));
        assert_int_equal(weft_stream_write(w, "line one\nline two\n", 18), 0);
        weft_future *f = weft_stream_readline(r);
        assert_int_equal(await_f(loop, f), 0);
        expect_data(f, "line one\n");
        assert_int_equal(weft_stream_write_eof(w), 0); /* closes the pipe */
        f = weft_stream_read(r, -1);
        assert_int_equal(await_f(loop, f), 0);
        expect_data(f, "line two\n");
        assert_true(weft_stream_at_eof(r));
        weft_future *wc = weft_stream_wait_closed(w);
        assert_int_equal(await_f(loop, wc), 0);
        weft_future_unref(wc);
        weft_stream_free(r);
        weft_stream_free(w);
        /* the reader goes away: EPIPE */
        assert_int_equal(pipe(p), 0);
        assert_int_equal(weft_open_write_pipe(loop, p[1], NULL, &w), 0);
        wc = weft_stream_wait_closed(w);
        close(p[0]);
        assert_int_equal(weft_stream_write(w, "into the void", 13), 0);
        assert_int_equal(await_f(loop, wc), -EPIPE);
        weft_future_unref(wc);
        expect_err(weft_stream_drain(w), -EPIPE);
        assert_int_equal(weft_stream_write(w, "dropped", 7), 0);
        assert_int_equal(weft_stream_dropped_writes(w), 1);
        weft_stream_free(w);
        drain(loop);
        finish(loop);
    }
}

/* A FIFO works as a read pipe and a write pipe. */
static void test_fifo_pipes(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-stream-fifo-%d", (int)getpid());
    unlink(path);
    assert_int_equal(mkfifo(path, 0600), 0);
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        int rfd = open(path, O_RDONLY | O_NONBLOCK);
        int wfd = open(path, O_WRONLY | O_NONBLOCK);
        assert_true(rfd >= 0 && wfd >= 0);
        weft_stream *r = NULL, *w = NULL;
        assert_int_equal(weft_open_read_pipe(loop, rfd, NULL, &r), 0);
        assert_int_equal(weft_open_write_pipe(loop, wfd, NULL, &w), 0);
        assert_int_equal(weft_stream_write(w, "fifo!", 5), 0);
        weft_future *f = weft_stream_readexactly(r, 5);
        assert_int_equal(await_f(loop, f), 0);
        expect_data(f, "fifo!");
        weft_stream_free(w);
        f = weft_stream_read(r, -1);
        assert_int_equal(await_f(loop, f), 0);
        expect_data(f, "");
        weft_stream_free(r);
        drain(loop);
        finish(loop);
    }
    unlink(path);
}

/* The loop closes with streams open: their transports go, pending reads
 * end, nothing leaks once the streams are freed. */
static void test_loop_close_with_streams_open(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        int fds[2];
        unix_pair(fds);
        weft_stream *a = wrapped(loop, fds[0], 0), *b = wrapped(loop, fds[1], 0);
        weft_future *f = weft_stream_readline(a);
        assert_int_equal(weft_stream_write(b, "partial", 7), 0);
        step(loop);
        assert_int_equal(weft_loop_close(loop), 0);
        assert_true(weft_future_done(f));
        weft_future_unref(f);
        weft_stream_free(a);
        weft_stream_free(b);
        finish(loop);
    }
}

/* Every allocation of wrapping, reading and writing fails once in turn. */
static void test_every_allocation_failure_over_a_socketpair_is_survived(void **state)
{
    (void)state;
    int failures = 0;
    for (long k = 1;; k++) {
        weft_loop *loop = loop_on(NULL, 0);
        wt_warm(loop);
        int fds[2];
        unix_pair(fds);
        long base = alloc_calls();
        alloc_fail_at(base + k);
        weft_stream *s = NULL;
        int err = weft_stream_wrap(loop, fds[0], NULL, &s);
        assert_true(err == 0 || err == -ENOMEM);
        if (err) {
            assert_int_equal(weft_stream_wrap(loop, fds[0], NULL, &s), 0);
        }
        assert_int_equal(write(fds[1], "ping\n", 5), 5);
        weft_future *f = retry_nomem(rd_line, s);
        int e = await_f(loop, f);
        if (e == -ENOMEM) { /* no memory to buffer what arrived: the stream failed */
            weft_future_unref(f);
        } else {
            assert_int_equal(e, 0);
            expect_data(f, "ping\n");
            err = weft_stream_write(s, "pong", 4);
            assert_true(err == 0 || err == -ENOMEM);
        }
        weft_stream_free(s);
        close(fds[1]);
        drain(loop);
        long calls = alloc_calls();
        alloc_fail_at(0);
        finish(loop);
        if (calls < base + k)
            break;
        failures++;
    }
    assert_true(failures >= 3);
}

/* =============================================================================
 * Connections and servers
 * ========================================================================== */

static int g_handled, g_client_ok, g_client_err;
static void *g_handler_arg;
static const char *g_handler_name; /* the handler task's name */

/* Echo each line back; a line "fail" makes the handler fail; "quit"
 * makes it return without closing (weft closes). */
struct echo_line {
    WEFT_STREAM_FRAME;
    const weft_bytes *b;
};

WEFT_ASYNC(echo_line)
{
    WEFT_BEGIN(self);
    g_handler_arg = self->arg;
    g_handler_name = weft_task_name(task);
    for (;;) {
        WEFT_AWAIT(self, weft_stream_readline(self->stream));
        self->b = WEFT_RESULT(self).p;
        if (!self->b->len)
            break;
        if (!strcmp(self->b->data, "fail\n"))
            WEFT_THROW_MSG(self, -EPROTO, "bad line");
        if (!strcmp(self->b->data, "quit\n"))
            break;
        weft_stream_write(self->stream, self->b->data, self->b->len);
        WEFT_AWAIT(self, weft_stream_drain(self->stream));
    }
    g_handled++;
    WEFT_RETURN(self, 0);
    WEFT_END;
}

/* Connect, send a line, expect it back, then (optionally) send "quit" or
 * "fail" and expect EOF. */
struct client {
    WEFT_FRAME(int);
    int port;
    const char *path; /* a Unix socket instead */
    int id;
    const char *last; /* "quit\n" / "fail\n" / NULL */
    weft_stream *s;
    char line[32];
    int err;
};

static weft_future *client_open(struct client *self, weft_loop *loop)
{
    return self->path ? weft_open_unix_connection(loop, self->path, NULL)
                      : weft_open_connection(loop, "127.0.0.1", self->port, NULL);
}

WEFT_ASYNC(client)
{
    weft_loop *loop = weft_task_loop(task);
    WEFT_BEGIN(self);
    WEFT_TRY_AWAIT(self, client_open(self, loop), self->err);
    if (self->err) {
        g_client_err = self->err;
        WEFT_RETURN(self, self->err);
    }
    self->s = WEFT_RESULT(self).p;
    snprintf(self->line, sizeof self->line, "client %d\n", self->id);
    weft_stream_write(self->s, self->line, strlen(self->line));
    WEFT_AWAIT(self, weft_stream_readline(self->s));
    if (strcmp(((const weft_bytes *)WEFT_RESULT(self).p)->data, self->line))
        WEFT_RETURN(self, -EBADMSG);
    if (self->last) {
        weft_stream_write(self->s, self->last, strlen(self->last));
        WEFT_AWAIT(self, weft_stream_read(self->s, -1));
        if (((const weft_bytes *)WEFT_RESULT(self).p)->len)
            WEFT_RETURN(self, -EBADMSG);
    }
    g_client_ok++;
    WEFT_FINALLY;
    weft_stream_free(self->s);
    WEFT_END;
}

static weft_server *start_echo(weft_loop *loop, void *arg)
{
    weft_future *f =
        weft_start_server(loop, WEFT_STREAM_HANDLER(echo_line), arg, "127.0.0.1", 0, NULL);
    assert_int_equal(await_f(loop, f), 0);
    weft_value v;
    assert_int_equal(weft_future_result(f, &v), 0);
    weft_future_unref(f);
    assert_non_null(v.p);
    return v.p;
}

static void stop_server(weft_loop *loop, weft_server *srv)
{
    assert_int_equal(weft_server_close(srv), 0);
    weft_future *w = weft_server_wait_closed(srv);
    assert_int_equal(await_f(loop, w), 0);
    weft_future_unref(w);
    weft_server_free(srv);
    drain(loop);
}

/* S-STREAM-1: start_server runs the handler in a task per connection;
 * open_connection gives a stream; many clients at once. */
static void test_s_stream_1_start_server_with_many_clients(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        g_handled = g_client_ok = 0;
        int tag;
        weft_server *srv = start_echo(loop, &tag);
        assert_true(weft_server_is_serving(srv));
        int port = weft_server_port(srv);
        assert_true(port > 0);
        enum { N = 64 };
        weft_task *ts[N];
        for (int k = 0; k < N; k++)
            ts[k] = WEFT_SPAWN(loop, client, .port = port, .id = k, .last = "quit\n");
        for (int k = 0; k < N; k++)
            assert_int_equal(run_task(loop, ts[k]), 0);
        assert_int_equal(g_client_ok, N);
        drain(loop);
        assert_int_equal(g_handled, N);
        assert_ptr_equal(g_handler_arg, &tag);
        assert_int_equal(weft_server_nclients(srv), 0); /* closed when the handlers ended */
        stop_server(loop, srv);
        finish(loop);
    }
}

/* S-STREAM-1 [3.12]: a handler that fails is reported, and its stream is
 * closed (the client sees EOF). */
static void test_s_stream_1_handler_error_is_reported_and_closes(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        memset(&g_hook, 0, sizeof g_hook);
        g_client_ok = 0;
        weft_server *srv = start_echo(loop, NULL);
        weft_task *t = WEFT_SPAWN(loop, client, .port = weft_server_port(srv), .last = "fail\n");
        assert_int_equal(run_task(loop, t), 0);
        drain(loop);
        assert_int_equal(g_client_ok, 1);
        assert_int_equal(g_hook.by_kind[WEFT_REPORT_UNOBSERVED], 1);
        assert_int_equal(g_hook.err, -EPROTO);
        assert_non_null(strstr(g_hook.msg, "unhandled error in stream handler 'echo_line'"));
        assert_non_null(strstr(g_hook.msg, "bad line"));
        stop_server(loop, srv);
        finish(loop);
    }
}

/* Without opts.task_name a handler task is named after the handler
 * coroutine, as stream.h says. */
static void test_start_server_unnamed_handler_tasks_take_the_coroutine_name(void **state)
{
    (void)state;
    weft_loop *loop = loop_on(BACKENDS[0], 0);
    weft_future *f =
        weft_start_server(loop, WEFT_STREAM_HANDLER(echo_line), NULL, "127.0.0.1", 0, NULL);
    assert_int_equal(await_f(loop, f), 0);
    weft_value v;
    assert_int_equal(weft_future_result(f, &v), 0);
    weft_future_unref(f);
    g_handler_name = NULL;
    g_client_ok = 0;
    weft_task *t = WEFT_SPAWN(loop, client, .port = weft_server_port(v.p), .last = "quit\n");
    assert_int_equal(run_task(loop, t), 0);
    assert_int_equal(g_client_ok, 1);
    drain(loop);
    assert_non_null(g_handler_name);
    assert_string_equal(g_handler_name, "echo_line");
    stop_server(loop, v.p);
    finish(loop);
}

/* weft_stream_opts.task_name names every handler task (its descriptor
 * carries the name: servers of one name share it, and it outlives the
 * first server). */
static void test_start_server_task_name_names_the_handler_tasks(void **state)
{
    (void)state;
    static const char name[] = "conn-handler";
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_stream_opts o = {.task_name = name};
        weft_server *srv[2];
        for (int k = 0; k < 2; k++) {
            weft_future *f =
                weft_start_server(loop, WEFT_STREAM_HANDLER(echo_line), NULL, "127.0.0.1", 0, &o);
            assert_int_equal(await_f(loop, f), 0);
            weft_value v;
            assert_int_equal(weft_future_result(f, &v), 0);
            weft_future_unref(f);
            srv[k] = v.p;
        }
        for (int k = 0; k < 2; k++) {
            g_handler_name = NULL;
            g_client_ok = 0;
            weft_task *t =
                WEFT_SPAWN(loop, client, .port = weft_server_port(srv[k]), .last = "quit\n");
            assert_int_equal(run_task(loop, t), 0);
            assert_int_equal(g_client_ok, 1);
            drain(loop);
            assert_ptr_equal(g_handler_name, name);
        }
        stop_server(loop, srv[0]);
        /* the other server's tasks keep the name after the first is gone */
        g_handler_name = NULL;
        weft_task *t = WEFT_SPAWN(loop, client, .port = weft_server_port(srv[1]), .last = "quit\n");
        assert_int_equal(run_task(loop, t), 0);
        drain(loop);
        assert_ptr_equal(g_handler_name, name);
        stop_server(loop, srv[1]);
        finish(loop);
    }
}

/* A handler frame beyond the wrapper's static descriptors (4 KiB): its
 * descriptor is the loop's, and a second server of the same size and name
 * shares it. */
struct big_echo {
    WEFT_STREAM_FRAME;
    const weft_bytes *b;
    char pad[5000];
};

WEFT_ASYNC(big_echo)
{
    WEFT_BEGIN(self);
    g_handler_name = weft_task_name(task);
    self->pad[sizeof self->pad - 1] = 1;
    for (;;) {
        WEFT_AWAIT(self, weft_stream_readline(self->stream));
        self->b = WEFT_RESULT(self).p;
        if (!self->b->len || !strcmp(self->b->data, "quit\n"))
            break;
        weft_stream_write(self->stream, self->b->data, self->b->len);
        WEFT_AWAIT(self, weft_stream_drain(self->stream));
    }
    g_handled++;
    WEFT_END;
}

static void test_start_server_with_a_large_handler_frame(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        for (int named = 0; named < 2; named++) {
            weft_stream_opts o = {.task_name = named ? "big" : NULL};
            for (int k = 0; k < 2; k++) {
                weft_future *f = weft_start_server(loop, WEFT_STREAM_HANDLER(big_echo), NULL,
                                                   "127.0.0.1", 0, &o);
                assert_int_equal(await_f(loop, f), 0);
                weft_value v;
                assert_int_equal(weft_future_result(f, &v), 0);
                weft_future_unref(f);
                g_handled = g_client_ok = 0;
                g_handler_name = NULL;
                weft_task *t =
                    WEFT_SPAWN(loop, client, .port = weft_server_port(v.p), .last = "quit\n");
                assert_int_equal(run_task(loop, t), 0);
                drain(loop);
                assert_int_equal(g_client_ok, 1);
                assert_int_equal(g_handled, 1);
                assert_non_null(g_handler_name);
                /* unnamed: the handler coroutine's name (stream.h) */
                assert_string_equal(g_handler_name, named ? "big" : "big_echo");
                stop_server(loop, v.p);
            }
        }
        finish(loop);
    }
}

/* Unix sockets: start_unix_server and open_unix_connection. */
static void test_unix_server_and_connection(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-stream-%d.sock", (int)getpid());
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        g_client_ok = 0;
        weft_server *srv = NULL;
        assert_int_equal(
            weft_start_unix_server(loop, WEFT_STREAM_HANDLER(echo_line), NULL, path, NULL, &srv),
            0);
        weft_task *t = WEFT_SPAWN(loop, client, .path = path, .last = "quit\n");
        assert_int_equal(run_task(loop, t), 0);
        assert_int_equal(g_client_ok, 1);
        drain(loop);
        stop_server(loop, srv);
        finish(loop);
    }
    unlink(path);
}

/* Read a line from s, expecting want. */
static void expect_line(weft_loop *loop, weft_stream *s, const char *want)
{
    weft_future *f = weft_stream_readline(s);
    assert_int_equal(await_f(loop, f), 0);
    expect_data(f, want);
}

/* S-STREAM-14: close stops listening but leaves existing connections
 * open; wait_closed returns once the server is closed and its
 * connections are gone (3.12.1). */
static void test_s_stream_14_server_close_keeps_connections_wait_closed_waits(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        weft_server *srv = start_echo(loop, NULL);
        weft_future *f = weft_open_connection(loop, "127.0.0.1", weft_server_port(srv), NULL);
        assert_int_equal(await_f(loop, f), 0);
        weft_value v;
        assert_int_equal(weft_future_result(f, &v), 0);
        weft_future_unref(f);
        weft_stream *s = v.p;
        assert_int_equal(weft_stream_write(s, "a\n", 2), 0);
        expect_line(loop, s, "a\n");
        assert_int_equal(weft_server_close(srv), 0);
        assert_false(weft_server_is_serving(srv));
        weft_future *w = weft_server_wait_closed(srv);
        for (int k = 0; k < 5; k++)
            step(loop);
        assert_false(weft_future_done(w)); /* a connection is still there */
        assert_int_equal(weft_stream_write(s, "b\n", 2), 0);
        expect_line(loop, s, "b\n");               /* and it still works */
        assert_int_equal(weft_stream_close(s), 0); /* the handler sees EOF and ends */
        assert_int_equal(await_f(loop, w), 0);
        weft_future_unref(w);
        weft_stream_free(s);
        weft_server_free(srv);
        drain(loop);
        finish(loop);
    }
}

/* open_connection to a port nobody listens on: -ECONNREFUSED, no leak. */
static void test_open_connection_refused(void **state)
{
    (void)state;
    EACH_BACKEND(i)
    {
        weft_loop *loop = loop_on(BACKENDS[i], 0);
        int fds[2];
        tcp_pair(fds); /* find a port, then free it */
        struct sockaddr_in a;
        socklen_t len = sizeof a;
        assert_int_equal(getsockname(fds[1], (struct sockaddr *)&a, &len), 0);
        close(fds[0]);
        close(fds[1]);
        int l = socket(AF_INET, SOCK_STREAM, 0);
        a.sin_port = 0;
        assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
        len = sizeof a;
        assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
        close(l); /* bound, never listened: the port refuses */
        weft_future *f = weft_open_connection(loop, "127.0.0.1", ntohs(a.sin_port), NULL);
        assert_int_equal(await_f(loop, f), -ECONNREFUSED);
        weft_future_unref(f);
        /* cancelled before it connects */
        f = weft_open_connection(loop, "127.0.0.1", ntohs(a.sin_port), NULL);
        assert_int_equal(weft_future_cancel(f), 0);
        assert_true(weft_future_cancelled(f));
        weft_future_unref(f);
        drain(loop);
        finish(loop);
    }
}

/* Every allocation of a server's and a client's life fails once in turn:
 * each step fails with a clear code or goes on, and nothing leaks. */
static void test_every_allocation_failure_of_servers_and_connections_is_survived(void **state)
{
    (void)state;
    int failures = 0;
    for (long k = 1;; k++) {
        weft_loop *loop = loop_on(NULL, 0);
        wt_warm(loop);
        long base = alloc_calls();
        alloc_fail_at(base + k);
        weft_server *srv = NULL;
        weft_stream *s = NULL;
        weft_value v;
        weft_future *f =
            weft_start_server(loop, WEFT_STREAM_HANDLER(echo_line), NULL, "127.0.0.1", 0, NULL);
        if (!f) {
            assert_int_equal(weft_last_error(), -ENOMEM);
            goto done;
        }
        int err = await_f(loop, f);
        assert_true(err == 0 || err == -ENOMEM);
        if (!err) {
            assert_int_equal(weft_future_result(f, &v), 0);
            srv = v.p;
        }
        weft_future_unref(f);
        if (!srv)
            goto done;
        f = weft_open_connection(loop, "127.0.0.1", weft_server_port(srv), NULL);
        if (!f) {
            assert_int_equal(weft_last_error(), -ENOMEM);
            goto done;
        }
        err = await_f(loop, f);
        assert_true(err == 0 || err == -ENOMEM);
        if (!err) {
            assert_int_equal(weft_future_result(f, &v), 0);
            s = v.p;
        }
        weft_future_unref(f);
        if (!s)
            goto done;
        err = weft_stream_write(s, "x\n", 2);
        assert_true(err == 0 || err == -ENOMEM);
        f = weft_stream_readline(s);
        if (f) {
            err = await_f(loop, f);
            /* the line back, or the server side gave up: EOF, a reset, no memory */
            assert_true(err == 0 || err == -ECONNRESET || err == -ENOMEM);
            weft_future_unref(f);
        }
    done:
        weft_stream_free(s);
        if (srv) {
            weft_server_close(srv);
            weft_server_free(srv);
        }
        drain(loop);
        long calls = alloc_calls();
        alloc_fail_at(0);
        finish(loop);
        if (calls < base + k)
            break;
        failures++;
    }
    assert_true(failures >= 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* readers fed by hand */
        T(test_s_stream_3_read_n),
        T(test_s_stream_3_exception_first_even_with_data_buffered),
        T(test_s_stream_12_exception_fails_the_pending_read),
        T(test_s_stream_3_read_to_eof),
        T(test_s_stream_4_readline),
        T(test_s_stream_4_readline_limit_overrun_drops),
        T(test_s_stream_5_readexactly),
        T(test_s_stream_6_readuntil),
        T(test_s_stream_6_readuntil_limit_overrun_leaves_the_data),
        T(test_s_stream_7_at_eof_and_feeding),
        T(test_s_stream_3_second_concurrent_reader_is_refused),
        T(test_results_belong_to_the_stream_until_taken),
        T(test_dropped_read_gives_its_data_back),
        /* coroutines */
        T(test_read_cancelled_while_waiting_loses_nothing),
        T(test_read_completed_then_cancelled_gives_the_data_back),
        T(test_next_read_reuses_a_seen_read_only_the_stream_holds),
        T(test_wait_for_timeout_on_a_read),
        T(test_free_cancels_the_pending_read),
        /* bad input, allocation failure */
        T(test_bad_input_is_refused),
        T(test_every_allocation_failure_of_a_fed_stream_is_survived),
        /* over transports */
        T(test_s_stream_8_write_and_read_over_a_socketpair),
        T(test_s_stream_2_reader_pauses_above_twice_the_limit),
        T(test_s_stream_9_drain_stops_the_writer_at_the_high_water_mark),
        T(test_s_stream_10_close_and_wait_closed),
        T(test_s_stream_11_half_close_both_ways),
        T(test_s_stream_12_13_peer_reset),
        T(test_read_pipe_and_write_pipe),
        T(test_fifo_pipes),
        T(test_loop_close_with_streams_open),
        T(test_every_allocation_failure_over_a_socketpair_is_survived),
        /* connections and servers */
        T(test_s_stream_1_start_server_with_many_clients),
        T(test_s_stream_1_handler_error_is_reported_and_closes),
        T(test_start_server_unnamed_handler_tasks_take_the_coroutine_name),
        T(test_start_server_task_name_names_the_handler_tasks),
        T(test_start_server_with_a_large_handler_frame),
        T(test_s_stream_14_server_close_keeps_connections_wait_closed_waits),
        T(test_unix_server_and_connection),
        T(test_open_connection_refused),
        T(test_every_allocation_failure_of_servers_and_connections_is_survived),
    };
    return RUN_TESTS(tests);
}
