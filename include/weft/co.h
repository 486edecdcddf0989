/* weft/co.h - stackless coroutines: explicit frames and resume points.
 *
 * This header is the coroutine mechanics alone: it includes nothing of the
 * loop and calls no function of the library, so a frame can be driven by
 * any code (see "Driving a frame" below).  weft's tasks (weft/task.h) are
 * the usual driver; they add awaiting futures, cancellation and spawning.
 *
 * A coroutine is a function plus one struct, its frame.  The frame starts
 * with WEFT_FRAME(T) (a header and the result of type T), then holds the
 * arguments and EVERY local that must live across a suspension:
 *
 *     struct say_after {
 *         WEFT_FRAME(int);          // header + `int result`
 *         double delay;             // argument
 *         const char *what;         // argument
 *     };
 *
 *     WEFT_ASYNC(say_after)         // defines the coroutine `say_after`
 *     {
 *         WEFT_BEGIN(self);
 *         WEFT_AWAIT(self, weft_sleep(weft_task_loop(task), self->delay));
 *         printf("%s\n", self->what);
 *         WEFT_RETURN(self, 0);
 *         WEFT_END;
 *     }
 *
 * Inside a body, `self` is the frame and `task` the task running it (NULL
 * for a frame you drive yourself).  Frames are zeroed at creation and never
 * move after the first step.  Declarations may precede WEFT_BEGIN (e.g.
 * `weft_loop *loop = weft_task_loop(task);`): they run again on every
 * resume, so they must only compute things from self and task.
 *
 * THE RULES, STATED LOUDLY:
 *   - C locals do NOT survive a suspension.  Put them in the frame.  Loop
 *     counters too (`for (self->i = 0; ...)`).  GCC's
 *     -Werror=jump-misses-init catches an initialized local that crosses a
 *     suspension (switch backend); weft's macros are clean under it.
 *   - No `return` in a body: use WEFT_RETURN / WEFT_THROW (a stray
 *     `return 0;` does not compile: the body returns a struct).
 *   - Switch backend (the default): no suspension (WEFT_AWAIT, WEFT_YIELD,
 *     WEFT_CALL, ...) inside a `switch` of yours.  It is detected on resume:
 *     the frame fails with WEFT_ECORO and the driver names the frame and
 *     line.  The labels backend (define WEFT_CO_LABELS, GCC/Clang) lifts this.
 *   - One suspension per source line: two fail to compile (duplicate case).
 *   - A top-level `break` (one that is not inside a loop or switch of yours)
 *     is detected: the frame fails with WEFT_ECORO.
 *   - The result type T is a scalar (integer, floating or pointer): a task's
 *     value is stored in a weft_value.
 *   - Error codes are negative and at least WEFT_ERR_MIN (-32767).
 *
 * Errors propagate by default: a failed await or call jumps to the frame's
 * WEFT_FINALLY section (if any), which runs exactly once on every path
 * (value, error, cancellation, even cancellation before the first step),
 * then the error passes to the parent frame or becomes the task's error.
 * Catching is explicit (WEFT_TRY_AWAIT, WEFT_TRY_CALL).  The first error
 * wins: an error raised while unwinding does not replace it.
 *
 * Driving a frame (what weft's tasks do; write your own to use frames
 * without the loop): zero the frame, set co.info = &name__info and co.up to
 * the frame itself, then call `rc = co->info->fn(co, NULL)` repeatedly.
 * rc.v is WEFT_CO_PENDING (it suspended: call again later), WEFT_CO_CALL
 * (it entered the child frame rc.child: drive the child until it is done,
 * then call the parent again) or WEFT_CO_DONE (finished: result and co.err
 * are final; co.flags & WEFT_CO_MISUSE tells a misuse ended it).  Before
 * calling a frame for the first time, a driver may make it start in its
 * cleanup by setting co.err, co.err_line and co.key = WEFT_CO_KEY_FINALLY
 * (that is how a task cancelled before a step skips the body).
 */
#ifndef WEFT_CO_H
#define WEFT_CO_H

/* This header is laid out by hand: clang-format would scatter the macros. */
/* clang-format off */

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A task is a future that drives a coroutine (see weft/task.h). */
typedef struct weft_future weft_task;

typedef struct weft_co weft_co;

/* What a coroutine function returns: a struct, so `return 0;` fails to
 * compile in a body.  v: WEFT_CO_PENDING, WEFT_CO_CALL or WEFT_CO_DONE;
 * child: the frame entered, for WEFT_CO_CALL. */
typedef struct weft_co_rc {
    weft_co *child;
    int v;
} weft_co_rc;

enum {
    WEFT_CO_PENDING = 1, /* suspended: resume it later */
    WEFT_CO_CALL = 2,    /* entered rc.child: run it to the end, then resume */
    WEFT_CO_DONE = 3,    /* finished */
};

/* The uniform entry point a driver calls. */
typedef weft_co_rc weft_co_fn(weft_co *co, weft_task *task);

struct weft_node;

/* Static description of a coroutine, emitted by WEFT_ASYNC. */
typedef struct weft_co_info {
    weft_co_fn *fn;
    const char *name; /* the coroutine's name, e.g. "say_after" */
    const char *file; /* __FILE__ of its definition */
    void (*store)(const weft_co *co, weft_value *out); /* result -> value */
    size_t size, align;                                 /* of the frame */
    /* Private: the step of a task whose root frame this coroutine is
     * (emitted where weft/task.h is included: the body runs inside it),
     * or NULL (such a task runs the general step). */
    void (*step)(struct weft_node *node);
} weft_co_info;

/* A block of a frame: a scope whose exit runs on every way out of it
 * (its end, an error, a return, a cancellation), like a cleanup section of
 * its own.  The first member of every block struct (weft_timeout,
 * weft_group, the lock blocks...).  Private. */
typedef struct weft_block {
    struct weft_block *outer; /* the active block it is nested in */
    int32_t exit_key;         /* resume key of its exit */
    int16_t active;           /* entered and not left */
    int16_t err_at_entry;     /* the frame's err when it was entered */
} weft_block;

/* The frame header, 40 bytes on LP64.  Fields are private except where
 * noted. */
struct weft_co {
    const weft_co_info *info; /* what this frame runs */
    weft_co *up;       /* the frame that entered this one; a root frame's
                          points to the innermost frame of its chain */
    weft_block *block; /* the innermost active block */
    int32_t key;       /* resume point */
    int32_t line;      /* public: source line of the current suspension */
    int32_t err_line;  /* public: line where err was raised */
    int16_t err;       /* public: error this frame is unwinding with, or 0 */
    uint16_t flags;
};

/* Frame flags (WEFT_CO_MISUSE is public: a driver reports it). */
enum {
    WEFT__CO_IN_FINALLY = 1u << 0, /* in WEFT_FINALLY: the unwind target is the end */
    WEFT__CO_PROPAGATED = 1u << 1, /* err came from a child frame */
    WEFT_CO_UNCATCHABLE = 1u << 2, /* set by a driver on a finished child: its
                                      error must propagate (a task's own
                                      cancellation), TRY forms do not catch it */
    WEFT_CO_MISUSE_RESUME = 1u << 3, /* resumed at an unknown point */
    WEFT_CO_MISUSE_BREAK = 1u << 4,  /* a `break` escaped the body */
    WEFT_CO_MISUSE_THROW = 1u << 5,  /* WEFT_THROW with a code >= 0 or < WEFT_ERR_MIN */
    WEFT_CO_MISUSE_BLOCK = 1u << 6,  /* the frame ended inside a block (a `break` out of it?) */
    WEFT_CO_MISUSE_REENTER = 1u << 7, /* a block began again before its end (a `continue`
                                         or `goto` back to its beginning?) */
    WEFT_CO_MISUSE = WEFT_CO_MISUSE_RESUME | WEFT_CO_MISUSE_BREAK | WEFT_CO_MISUSE_THROW |
                     WEFT_CO_MISUSE_BLOCK | WEFT_CO_MISUSE_REENTER,
};

/* Resume keys a driver may set (see "Driving a frame"). */
enum { WEFT_CO_KEY_START = 0, WEFT_CO_KEY_FINALLY = -1, WEFT__CO_KEY_END = -2 };

/* Put first in a frame struct: the header and `T result`. */
#define WEFT_FRAME(T)                                                                              \
    weft_co co;                                                                                    \
    T result

/* Declare a coroutine defined in another file (e.g. in a header). */
#define WEFT_ASYNC_DECL(name) extern const weft_co_info name##__info

/* Define coroutine `name` whose frame is `struct name`.  Follow with the
 * body in braces: { WEFT_BEGIN(self); ... WEFT_END; }.  Emits the
 * descriptor `name__info` (external linkage) and static functions: the
 * body, its entry point, the result's store and, where weft/task.h is
 * included, the step of a task whose root frame it is (the body runs
 * there without a second call; WEFT__CO_STEP_DEF). */
#define WEFT_ASYNC(name)                                                                           \
    _Static_assert(offsetof(struct name, co) == 0, "WEFT_FRAME must come first in struct " #name); \
    static WEFT__CO_BODY_ATTR weft_co_rc name##__body(struct name *self, weft_task *task);                        \
    static weft_co_rc name##__entry(weft_co *co, weft_task *task)                                  \
    {                                                                                              \
        return name##__body((struct name *)(void *)co, task);                                      \
    }                                                                                              \
    WEFT__CO_STEP_DEF(name)                                                                        \
    static void name##__store(const weft_co *co, weft_value *out)                                  \
    {                                                                                              \
        *out = WEFT_VALUE_OF(((const struct name *)(const void *)co)->result);                     \
    }                                                                                              \
    extern const weft_co_info name##__info;                                                        \
    const weft_co_info name##__info = {name##__entry,         #name, __FILE__, name##__store,     \
                                       sizeof(struct name), _Alignof(struct name),                 \
                                       WEFT__CO_STEP_PTR(name)};                                   \
    static weft_co_rc name##__body(struct name *self, weft_task *task)

/* Private: the body is inline, so that the compiler may inline it into
 * its step (and its entry point) and a task's step is one function; a
 * body with computed gotos (the labels backend) cannot be inlined, and
 * stays a function of its own. */
#if defined(WEFT_CO_LABELS) && (defined(__GNUC__) || defined(__clang__))
#define WEFT__CO_BODY_ATTR
#else
#define WEFT__CO_BODY_ATTR inline
#endif

/* Private: without weft/task.h a coroutine has no step of its own (a task
 * runs it through the general step: weft_co_info.step); weft/task.h
 * redefines both. */
#ifndef WEFT__CO_STEP_DEF
#define WEFT__CO_STEP_DEF(name)
#define WEFT__CO_STEP_PTR(name) NULL
#endif

/* Convert a scalar to a weft_value: integers to .i, floating to .d,
 * pointers to .p (C11 _Generic). */
#define WEFT_VALUE_OF(x)                                                                           \
    _Generic((x),                                                                                  \
        _Bool: weft__value_i, char: weft__value_i, signed char: weft__value_i,                     \
        unsigned char: weft__value_i, short: weft__value_i, unsigned short: weft__value_i,         \
        int: weft__value_i, unsigned: weft__value_i, long: weft__value_i,                          \
        unsigned long: weft__value_i, long long: weft__value_i,                                    \
        unsigned long long: weft__value_i, float: weft__value_d, double: weft__value_d,            \
        long double: weft__value_d, default: weft__value_p)(x)

static inline weft_value weft__value_i(int64_t i)
{
    weft_value v;
    v.i = i;
    return v;
}

static inline weft_value weft__value_d(double d)
{
    weft_value v;
    v.d = d;
    return v;
}

static inline weft_value weft__value_p(const void *p)
{
    weft_value v;
    v.p = (void *)(uintptr_t)p;
    return v;
}

/* ---- private helpers the macros use (pure: no library calls) ------------ */

/* `self` must be a frame: its member `co` must be a weft_co.  A _Generic
 * with no other association makes anything else a compile error (not a
 * warning about pointer types that a build might ignore). */
static inline weft_co *weft__co_self(weft_co *co)
{
    return co;
}
#define WEFT__SELF_CO(self) _Generic((self)->co, weft_co: &(self)->co)

/* Start unwinding with err raised at line (the first error wins). */
static inline void weft__co_raise(weft_co *co, int err, int line, int propagated)
{
    if (co->err)
        return;
    co->err = (int16_t)err;
    co->err_line = line;
    if (propagated)
        co->flags |= WEFT__CO_PROPAGATED;
    else
        co->flags &= (uint16_t)~WEFT__CO_PROPAGATED;
}

/* WEFT_THROW: a code that is not a valid error is misuse. */
static inline void weft__co_throw(weft_co *co, int err, int line)
{
    if (err >= 0 || err < WEFT_ERR_MIN) {
        co->flags |= WEFT_CO_MISUSE_THROW;
        err = WEFT_ECORO;
    }
    weft__co_raise(co, err, line, 0);
}

/* Where unwinding goes: the exit of the innermost active block, else the
 * cleanup, or the end from inside the cleanup. */
static inline int32_t weft__co_unwind_key(const weft_co *co)
{
    if (co->block)
        return co->block->exit_key;
    return (co->flags & WEFT__CO_IN_FINALLY) ? WEFT__CO_KEY_END : WEFT_CO_KEY_FINALLY;
}

/* Enter block b, whose exit resumes at key. */
static inline void weft__co_block_enter(weft_co *co, weft_block *b, int32_t key)
{
    b->outer = co->block;
    b->exit_key = key;
    b->active = 1;
    b->err_at_entry = co->err;
    co->block = b;
}

/* Leave block b (both ways out call it; the second call does nothing). */
static inline void weft__co_block_leave(weft_co *co, weft_block *b)
{
    if (b->active) {
        co->block = b->outer;
        b->active = 0;
    }
}

/* At the exit of block b reached by unwinding: the error raised inside the
 * block (0 if it was a return, or an error the frame had before).  A TRY
 * form catching it calls weft__co_block_catch. */
static inline int weft__co_block_error(const weft_co *co, const weft_block *b)
{
    return co->err != b->err_at_entry ? co->err : 0;
}

/* Catch the error raised inside block b: the frame stops unwinding. */
static inline void weft__co_block_catch(weft_co *co, const weft_block *b)
{
    co->err = b->err_at_entry;
    co->flags &= (uint16_t)~WEFT__CO_PROPAGATED;
}

/* The frame ends by misuse (reason: a WEFT_CO_MISUSE_* flag). */
static inline weft_co_rc weft__co_misuse(weft_co *co, unsigned reason)
{
    co->flags |= (uint16_t)reason;
    co->err = WEFT_ECORO;
    co->err_line = co->line;
    return (weft_co_rc){NULL, WEFT_CO_DONE};
}

/* After a child frame finished: 1 = unwind with its error. */
static inline int weft__co_call_end(weft_co *co, const weft_co *child, int catching, int *var)
{
    int e = child->err;
    if (!e) {
        if (var)
            *var = 0;
        return 0;
    }
    if (catching && !(child->flags & WEFT_CO_UNCATCHABLE)) {
        *var = e;
        return 0;
    }
    weft__co_raise(co, e, child->err_line, 1);
    return 1;
}

/* ---- resume backends -------------------------------------------------------- */
#if defined(WEFT_CO_LABELS) && (defined(__GNUC__) || defined(__clang__))
#define WEFT__CAT2(a, b) a##b
#define WEFT__CAT(a, b) WEFT__CAT2(a, b)
#define WEFT__LABEL WEFT__CAT(weft__resume_, __LINE__)
/* A resume point is stored as its label's distance from weft__dispatch
 * (either sign: compilers lay blocks out as they like) plus a bias that
 * keeps it apart from the fixed keys, so both backends share the frame
 * layout.  __extension__ keeps -Wpedantic quiet about the GNU constructs. */
#define WEFT__LABEL_BIAS 0x40000000
#define WEFT__LABEL_KEY(label)                                                                     \
    ((int32_t)(__extension__((char *)&&label - (char *)&&weft__dispatch)) + WEFT__LABEL_BIAS)
#define WEFT__DISPATCH                                                                             \
    if (weft__co->key >= WEFT__LABEL_BIAS / 2)                                                     \
        __extension__({                                                                            \
            goto *(void *)((char *)&&weft__dispatch + (weft__co->key - WEFT__LABEL_BIAS));         \
        });                                                                                        \
    switch (weft__co->key)
/* A block exit is a label. */
#define WEFT__BLOCK_DECLARE(name) enum { weft__blk_declared_##name }
#define WEFT__BLOCK_KEY(name) WEFT__LABEL_KEY(weft__blk_##name)
#define WEFT__BLOCK_EXIT(name) weft__blk_##name:
#define WEFT__SUSPEND(rc, child)                                                                   \
    do {                                                                                           \
        weft__co->key = WEFT__LABEL_KEY(WEFT__LABEL);                                              \
        weft__co->line = __LINE__;                                                                 \
        return (weft_co_rc){(child), (rc)};                                                        \
    WEFT__LABEL:;                                                                                  \
    } while (0)
/* WEFT__SUSPEND where co->line is __LINE__ already. */
#define WEFT__SUSPEND_AT_LINE(rc, child)                                                           \
    do {                                                                                           \
        weft__co->key = WEFT__LABEL_KEY(WEFT__LABEL);                                              \
        return (weft_co_rc){(child), (rc)};                                                        \
    WEFT__LABEL:;                                                                                  \
    } while (0)
#else
#define WEFT__DISPATCH switch (weft__co->key)
/* A block exit's key: an enumeration constant declared where the block
 * begins (block scope; unique per line), a case label where it ends. */
#define WEFT__BLOCK_DECLARE(name) enum { weft__blk_##name = -1000 - __LINE__ }
#define WEFT__BLOCK_KEY(name) weft__blk_##name
#define WEFT__BLOCK_EXIT(name) case weft__blk_##name:
#define WEFT__SUSPEND(rc, child)                                                                   \
    do {                                                                                           \
        weft__co->key = weft__co->line = __LINE__;                                                 \
        return (weft_co_rc){(child), (rc)};                                                        \
    case __LINE__:;                                                                                \
    } while (0)
#define WEFT__SUSPEND_AT_LINE(rc, child)                                                           \
    do {                                                                                           \
        weft__co->key = __LINE__;                                                                  \
        return (weft_co_rc){(child), (rc)};                                                        \
    case __LINE__:;                                                                                \
    } while (0)
#endif

/* ---- body macros ------------------------------------------------------------ */

/* Open a coroutine body: the first statement after any declarations.
 * If the driver starts the frame in its cleanup (a task cancelled before
 * the frame ran), the body is skipped and only WEFT_FINALLY runs. */
#define WEFT_BEGIN(self)                                                                           \
    weft_co *const weft__co = weft__co_self(WEFT__SELF_CO(self));                                          \
    (void)task;                                                                                    \
    weft__dispatch:                                                                                \
    WEFT__DISPATCH                                                                                 \
    {                                                                                              \
    case WEFT_CO_KEY_START:                                                                        \
        if (0)                                                                                     \
            goto weft__unwind; /* a body that never unwinds still has the label */

/* Close a coroutine body.  Must be the last statement.  Also catches
 * misuse: a resume point inside a user switch, or a `break` that escaped
 * the body (the frame then fails with WEFT_ECORO and WEFT_CO_MISUSE_*). */
#define WEFT_END                                                                                   \
    weft__co->key = WEFT__CO_KEY_END;                                                              \
    goto weft__dispatch;                                                                           \
    case WEFT__CO_KEY_END:                                                                         \
        if (weft__co->block)                                                                       \
            return weft__co_misuse(weft__co, WEFT_CO_MISUSE_BLOCK);                                \
        return (weft_co_rc){NULL, WEFT_CO_DONE};                                                   \
    default:                                                                                       \
        if (weft__co->key == WEFT_CO_KEY_FINALLY)                                                  \
            return (weft_co_rc){NULL, WEFT_CO_DONE}; /* no WEFT_FINALLY section */                 \
        return weft__co_misuse(weft__co, WEFT_CO_MISUSE_RESUME);                                   \
        }                                                                                          \
        return weft__co_misuse(weft__co, WEFT_CO_MISUSE_BREAK);                                    \
        weft__unwind:                                                                              \
        weft__co->key = weft__co_unwind_key(weft__co);                                             \
        goto weft__dispatch

/* Start the cleanup section: runs exactly once, after the body finished,
 * returned, threw, or was cancelled (then self->co.err says why).
 * Cancellation is masked inside it, so it may await. */
#define WEFT_FINALLY                                                                               \
    weft__co->key = WEFT_CO_KEY_FINALLY;                                                           \
    goto weft__dispatch;                                                                           \
    case WEFT_CO_KEY_FINALLY:                                                                      \
        weft__co->flags |= WEFT__CO_IN_FINALLY

/* Return to the driver; resume here when it calls the frame again.  The
 * raw suspension for frames driven by hand; in tasks use WEFT_YIELD. */
#define WEFT_CO_SUSPEND(self)                                                                      \
    do {                                                                                           \
        (void)weft__co_self(WEFT__SELF_CO(self));                                                          \
        WEFT__SUSPEND(WEFT_CO_PENDING, NULL);                                                      \
    } while (0)

/* Call child coroutine fn inline (Python's `await fn(args)`): its frame is
 * *child (usually a member of self, e.g. &self->sub.read), initialised
 * from the designated initializers that follow (the rest is zeroed), and
 * run in this task until it ends; resuming it later is O(1) at any depth.
 * Its result is child->result; its error propagates.
 *     WEFT_CALL(self, read_exact, &self->rx, .fd = self->fd, .want = 8);   */
#define WEFT_CALL(self, ...) WEFT__CALL(self, 0, NULL, __VA_ARGS__, )
/* Like WEFT_CALL, storing the child's error (0 = ok) in the int lvalue var.
 * The task's own cancellation is not caught. */
#define WEFT_TRY_CALL(self, var, ...) WEFT__CALL(self, 1, &(var), __VA_ARGS__, )
#define WEFT__CALL(self, catching, var, fn, child, ...)                                            \
    do {                                                                                           \
        (void)weft__co_self(WEFT__SELF_CO(self));                                                          \
        *(child) = (struct fn){.co = {.info = &fn##__info}, __VA_ARGS__};                          \
        (child)->co.up = weft__co;                                                                 \
        WEFT__SUSPEND(WEFT_CO_CALL, &(child)->co);                                                 \
        if (weft__co_call_end(weft__co, &(child)->co, (catching), (var)))                          \
            goto weft__unwind;                                                                     \
    } while (0)

/* Finish this frame with value v: runs WEFT_FINALLY (if any), then ends. */
#define WEFT_RETURN(self, v)                                                                       \
    do {                                                                                           \
        (self)->result = (v);                                                                      \
        weft__co->key = weft__co_unwind_key(weft__co);                                             \
        goto weft__dispatch;                                                                       \
    } while (0)

/* Fail this frame with error code e (WEFT_ERR_MIN <= e < 0): unwind to
 * WEFT_FINALLY.  Any other code is misuse: the frame fails with WEFT_ECORO
 * and WEFT_CO_MISUSE_THROW (a task reports where). */
#define WEFT_THROW(self, e)                                                                        \
    do {                                                                                           \
        (void)weft__co_self(WEFT__SELF_CO(self));                                                          \
        weft__co_throw(weft__co, (e), __LINE__);                                                   \
        goto weft__unwind;                                                                         \
    } while (0)

/* ---- blocks: scopes with an exit on every path --------------------------------

 * The building block of the scoped forms (WEFT_TIMEOUT_BEGIN/END,
 * WEFT_GROUP_BEGIN/END, WEFT_LOCK_BEGIN/END, WEFT_TRY/WEFT_EXCEPT): `name`
 * is a member of the frame whose first member is a weft_block; the block's
 * exit code runs when the body ends and when anything unwinds out of it.
 * A member may open one block per body (its name makes the exit's label).
 * Blocks nest, suspend inside, and need no C local.  Not inside a switch
 * of yours on the switch backend (the exit is a case label); the labels
 * backend lifts that, as for suspensions.

 * Open block `name` (&self->name begins with a weft_block). */
#define WEFT__BLOCK_BEGIN(self, name)                                                              \
    WEFT__BLOCK_DECLARE(name);                                                                     \
    WEFT__BLOCK_FRESH(&(self)->name.blk);                                                          \
    weft__co_block_enter(weft__co, &(self)->name.blk, WEFT__BLOCK_KEY(name))

/* Every block's beginning checks first that the block is not already open
 * in this frame: reaching it again before its end (a `continue` or `goto`
 * back to it) would nest it inside itself, and a lock block would wait
 * forever for the lock it holds.  The frame unwinds with WEFT_ECORO and
 * WEFT_CO_MISUSE_REENTER instead, through the exits of the blocks still
 * open (the lock is released). */
#define WEFT__BLOCK_FRESH(blkp)                                                                    \
    do {                                                                                           \
        if ((blkp)->active) {                                                                      \
            weft__co_raise(weft__co, WEFT_ECORO, __LINE__, 0);                                     \
            weft__co->flags |= WEFT_CO_MISUSE_REENTER;                                             \
            goto weft__unwind;                                                                     \
        }                                                                                          \
    } while (0)

/* The exit of block `name` (blkp: its weft_block): `normal` (an lvalue)
 * becomes 1 after the body, 0 when unwinding reached it.  The exit code
 * follows, then WEFT__BLOCK_DONE. */
#define WEFT__BLOCK_END(name, blkp, normal)                                                        \
    (normal) = 1;                                                                                  \
    if (0) {                                                                                       \
        WEFT__BLOCK_EXIT(name)                                                                     \
        (normal) = 0;                                                                              \
    }                                                                                              \
    weft__co_block_leave(weft__co, (blkp))

/* After the exit code: go on unwinding if unwinding brought us here and
 * nothing caught it. */
#define WEFT__BLOCK_DONE(normal)                                                                   \
    if (!(normal))                                                                                 \
        goto weft__unwind

/* A plain TRY block (Python's try/except): an error raised inside jumps
 * to WEFT_EXCEPT, which stores it in the int lvalue var (0: none) and
 * continues after it; a cancellation (-ECANCELED) is not caught by
 * WEFT_EXCEPT and goes on unwinding (WEFT_EXCEPT_CANCEL catches it too,
 * but the task stays cancelled until weft_task_uncancel: its next
 * suspension fails again).  A WEFT_RETURN inside goes on to the frame's
 * end, as in Python.
 *     WEFT_TRY(self, t);
 *         WEFT_AWAIT(self, fetch(...));
 *     WEFT_EXCEPT(self, t, self->err);
 *     if (self->err == -EIO) ...          // handled: the body goes on */
typedef struct weft_try {
    weft_block blk;
    uint8_t normal;
} weft_try;

#define WEFT_TRY(self, name) WEFT__BLOCK_BEGIN(self, name)
#define WEFT_EXCEPT(self, name, var) WEFT__EXCEPT(self, name, var, 0)
#define WEFT_EXCEPT_CANCEL(self, name, var) WEFT__EXCEPT(self, name, var, 1)
#define WEFT__EXCEPT(self, name, var, cancel)                                                      \
    WEFT__BLOCK_END(name, &(self)->name.blk, (self)->name.normal);                                 \
    (var) = (self)->name.normal ? 0 : weft__co_block_error(weft__co, &(self)->name.blk);          \
    if ((var) && ((cancel) || (var) != -ECANCELED)) {                                              \
        weft__co_block_catch(weft__co, &(self)->name.blk);                                         \
        (self)->name.normal = 1;                                                                   \
    }                                                                                              \
    WEFT__BLOCK_DONE((self)->name.normal)

#ifdef __cplusplus
}
#endif
/* clang-format on */
#endif
