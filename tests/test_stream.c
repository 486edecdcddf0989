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
        expect_data(f, "thr"); /* the partial last line, no newline */
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
        expect_last(s, "ab"); /* the partial data */
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
    ssize_t n;     /* 0: readline */
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
        step(loop); /* parked on the read */
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
        T(test_wait_for_timeout_on_a_read),
        T(test_free_cancels_the_pending_read),
        /* bad input, allocation failure */
        T(test_bad_input_is_refused),
        T(test_every_allocation_failure_of_a_fed_stream_is_survived),
    };
    return RUN_TESTS(tests);
}
