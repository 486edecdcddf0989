/* weft/co.h - stackless coroutines: explicit frames, resume points, await.
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
 *         WEFT_AWAIT(self, weft_sleep(task, self->delay));
 *         printf("%s\n", self->what);
 *         WEFT_RETURN(self, 0);
 *         WEFT_END;
 *     }
 *
 * Inside a body, `self` is the frame and `task` the task running it.
 * Frames are zeroed at creation and never move after the first step.
 * Declarations may precede WEFT_BEGIN (e.g. `weft_loop *loop =
 * weft_task_loop(task);`): they run again on every resume, so they must
 * only compute things from self and task.
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
 *     the task fails with WEFT_ECORO and the error hook names the frame and
 *     line.  The labels backend (define WEFT_CO_LABELS, GCC/Clang) lifts this.
 *   - One suspension per source line: two fail to compile (duplicate case).
 *   - A top-level `break` (one that is not inside a loop or switch of yours)
 *     is detected: the task fails with WEFT_ECORO.
 *   - The result type T is a scalar (integer, floating or pointer): a task's
 *     value is stored in a weft_value.
 *
 * Errors propagate by default: a failed await or call jumps to the frame's
 * WEFT_FINALLY section (if any), which runs exactly once on every path
 * (value, error, cancellation, even cancellation before the first step),
 * then the error passes to the parent frame or becomes the task's error.
 * Catching is explicit (WEFT_TRY_AWAIT, WEFT_TRY_CALL).  The first error
 * wins: an error raised while unwinding does not replace it.
 *
 * Cancellation is sticky.  Once a task is cancelled, every await that would
 * suspend, every WEFT_YIELD and every frame entered (WEFT_CALL) fails with
 * -ECANCELED until weft_task_uncancel brings its count back to 0, and the
 * TRY forms do not catch it.  (Awaiting a future that is already done still
 * returns its value: completion wins.)  A frame entered while its task is
 * cancelled skips its body but runs its WEFT_FINALLY.  Inside WEFT_FINALLY,
 * and in every frame it calls, cancellation is masked, so cleanup may
 * await.
 */
#ifndef WEFT_CO_H
#define WEFT_CO_H

/* This header is laid out by hand: clang-format would scatter the macros. */
/* clang-format off */

#include <stddef.h>

#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A task is a future that drives a coroutine (see weft/task.h). */
typedef struct weft_future weft_task;

typedef struct weft_co weft_co;

/* What a coroutine function returns: a struct, so `return 0;` fails to
 * compile in a body.  Private values. */
typedef struct weft_co_rc {
    int v;
} weft_co_rc;

/* The uniform entry point the task's trampoline calls. */
typedef weft_co_rc weft_co_fn(weft_co *co, weft_task *task);

/* Static description of a coroutine, emitted by WEFT_ASYNC. */
typedef struct weft_co_info {
    weft_co_fn *fn;
    const char *name; /* the coroutine's name, e.g. "say_after" */
    const char *file; /* __FILE__ of its definition */
    void (*store)(const weft_co *co, weft_value *out); /* result -> value */
    size_t size, align;                                 /* of the frame */
} weft_co_info;

/* The frame header.  Fields are private except where noted. */
struct weft_co {
    const weft_co_info *info; /* what this frame runs */
    weft_co *parent;          /* the frame that WEFT_CALLed this one */
    union {
        intptr_t key; /* switch backend: line of the resume point */
        void *label;  /* labels backend: address of the resume point */
    } resume;
    int32_t line;     /* public: source line of the current suspension */
    int32_t err;      /* public: error this frame is unwinding with, or 0 */
    int32_t err_line; /* public: line where err was raised */
    uint32_t flags;
};

/* Put first in a frame struct: the header and `T result`. */
#define WEFT_FRAME(T)                                                                              \
    weft_co co;                                                                                    \
    T result

/* Declare a coroutine defined in another file (e.g. in a header). */
#define WEFT_ASYNC_DECL(name) extern const weft_co_info name##__info

/* Define coroutine `name` whose frame is `struct name`.  Follow with the
 * body in braces: { WEFT_BEGIN(self); ... WEFT_END; }.  Emits the
 * descriptor `name__info` (external linkage) and two static functions. */
#define WEFT_ASYNC(name)                                                                           \
    _Static_assert(offsetof(struct name, co) == 0, "WEFT_FRAME must come first in struct " #name); \
    static weft_co_rc name##__body(struct name *self, weft_task *task);                            \
    static weft_co_rc name##__entry(weft_co *co, weft_task *task)                                  \
    {                                                                                              \
        return name##__body((struct name *)(void *)co, task);                                      \
    }                                                                                              \
    static void name##__store(const weft_co *co, weft_value *out)                                  \
    {                                                                                              \
        *out = WEFT_VALUE_OF(((const struct name *)(const void *)co)->result);                     \
    }                                                                                              \
    extern const weft_co_info name##__info;                                                        \
    const weft_co_info name##__info = {name##__entry,         #name, __FILE__, name##__store,     \
                                       sizeof(struct name), _Alignof(struct name)};                \
    static weft_co_rc name##__body(struct name *self, weft_task *task)

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

/* ---- private helpers the macros call (src/task.c) ------------------------ */
enum {
    WEFT__RC_PENDING = 1, /* parked or queued: back to the loop */
    WEFT__RC_CALL = 2,    /* entered a child frame: trampoline to it */
    WEFT__RC_DONE = 3,    /* this frame finished */
};
enum { WEFT__K_START = 0, WEFT__K_FINALLY = -1, WEFT__K_END = -2 };
enum {
    WEFT__CO_IN_FINALLY = 1u << 0, /* cancellation masked */
    WEFT__CO_LABEL = 1u << 1,      /* resume.label is set (labels backend) */
};

bool weft__co_start(weft_co *co, weft_task *task);
int weft__await(weft_co *co, weft_task *task, weft_future *f, int line, bool catching,
                int *var);
bool weft__await_failed(weft_co *co, weft_task *task, bool catching, int *var);
bool weft__yield(weft_co *co, weft_task *task, int line);
bool weft__yield_failed(weft_co *co, weft_task *task);
bool weft__call(weft_co *co, weft_task *task, weft_co *child, int line);
bool weft__call_failed(weft_co *co, weft_task *task, weft_co *child, bool catching, int *var);
void weft__raise(weft_co *co, int err, int line);
void weft__throw(weft_co *co, weft_task *task, int err, int line);
intptr_t weft__unwind_key(weft_co *co);
weft_co_rc weft__co_done(weft_co *co, weft_task *task);
weft_co_rc weft__co_misuse(weft_co *co, weft_task *task, const char *what);
weft_value weft__last_value(weft_task *task);

/* ---- resume backends -------------------------------------------------------- */
#if defined(WEFT_CO_LABELS) && (defined(__GNUC__) || defined(__clang__))
#define WEFT__CAT2(a, b) a##b
#define WEFT__CAT(a, b) WEFT__CAT2(a, b)
#define WEFT__LABEL WEFT__CAT(weft__resume_, __LINE__)
/* __extension__ keeps -Wpedantic quiet about the two GNU constructs. */
/* The dead store keeps clang happy in bodies that never suspend (it
 * rejects an indirect goto in a function that takes no label address). */
#define WEFT__DISPATCH                                                                             \
    if (0)                                                                                         \
        weft__co->resume.label = __extension__ && weft__dispatch;                                  \
    if (weft__co->flags & WEFT__CO_LABEL)                                                          \
        __extension__({ goto *weft__co->resume.label; });                                          \
    switch (weft__co->resume.key)
#define WEFT__SUSPEND(rc)                                                                          \
    do {                                                                                           \
        weft__co->resume.label = __extension__ && WEFT__LABEL;                                     \
        weft__co->flags |= WEFT__CO_LABEL;                                                         \
        return (weft_co_rc){rc};                                                                   \
    WEFT__LABEL:                                                                                   \
        weft__co->flags &= ~(uint32_t)WEFT__CO_LABEL;                                              \
    } while (0)
#else
#define WEFT__DISPATCH switch (weft__co->resume.key)
#define WEFT__SUSPEND(rc)                                                                          \
    do {                                                                                           \
        weft__co->resume.key = __LINE__;                                                           \
        return (weft_co_rc){rc};                                                                   \
    case __LINE__:;                                                                                \
    } while (0)
#endif

/* ---- body macros ------------------------------------------------------------ */

/* Open a coroutine body: the first statement after any declarations.
 * If the task is cancelled when the frame starts (before its first step,
 * or at the WEFT_CALL that enters it), the body is skipped and only
 * WEFT_FINALLY runs (with self->co.err == -ECANCELED). */
#define WEFT_BEGIN(self)                                                                           \
    weft_co *const weft__co = &(self)->co;                                                         \
    weft__dispatch:                                                                                \
    WEFT__DISPATCH                                                                                 \
    {                                                                                              \
    case WEFT__K_START:                                                                            \
        if (!weft__co_start(weft__co, task))                                                       \
            goto weft__unwind;

/* Close a coroutine body.  Must be the last statement.  Also reports
 * misuse: a resume point inside a user switch, or a `break` that escaped
 * the body (the task then fails with WEFT_ECORO). */
#define WEFT_END                                                                                   \
    weft__co->resume.key = WEFT__K_END;                                                            \
    goto weft__dispatch;                                                                           \
    case WEFT__K_END:                                                                              \
        return weft__co_done(weft__co, task);                                                      \
    default:                                                                                       \
        if (weft__co->resume.key == WEFT__K_FINALLY)                                               \
            return weft__co_done(weft__co, task); /* no WEFT_FINALLY section */                    \
        return weft__co_misuse(weft__co, task,                                                     \
                               "resumed at an unknown point (a suspension inside a switch?)");     \
        }                                                                                          \
        return weft__co_misuse(weft__co, task, "a 'break' escaped the coroutine body");            \
        weft__unwind:                                                                              \
        weft__co->resume.key = weft__unwind_key(weft__co);                                         \
        weft__co->flags &= ~WEFT__CO_LABEL;                                                        \
        goto weft__dispatch

/* Start the cleanup section: runs exactly once, after the body finished,
 * returned, threw, or was cancelled (then self->co.err says why).
 * Cancellation is masked inside it, so it may await. */
#define WEFT_FINALLY                                                                               \
    weft__co->resume.key = WEFT__K_FINALLY;                                                        \
    goto weft__dispatch;                                                                           \
    case WEFT__K_FINALLY:                                                                          \
        weft__co->flags |= WEFT__CO_IN_FINALLY

/* Await future f (consuming the reference passed in).  If f is already
 * done, continue at once without suspending (except that a task step which
 * has already finished 128 such awaits yields once first, so a loop over
 * done futures cannot starve the others); else park the task on f and
 * return to the loop.  On resume: if f failed or was cancelled (or f is
 * NULL: its constructor failed), unwind with that error.  The value is
 * then WEFT_RESULT(self). */
#define WEFT_AWAIT(self, f) WEFT__AWAIT(self, f, false, NULL)

/* Like WEFT_AWAIT, but store the error code (0 = value) in the int lvalue
 * var instead of unwinding.  The task's own cancellation is not caught. */
#define WEFT_TRY_AWAIT(self, f, var) WEFT__AWAIT(self, f, true, &(var))

/* weft__await: 0 = done (value or caught error), 1 = parked, -1 = unwind.
 * weft__r is assigned again after the resume point before it is read; it
 * has no initializer, so resuming does not jump over one (the macros stay
 * clean under GCC's -Wjump-misses-init, the lint for locals in bodies). */
#define WEFT__AWAIT(self, f, catching, var)                                                        \
    do {                                                                                           \
        int weft__r;                                                                               \
        weft__r = weft__await(weft__co, task, (f), __LINE__, (catching), (var));                  \
        if (weft__r > 0) {                                                                         \
            WEFT__SUSPEND(WEFT__RC_PENDING);                                                       \
            weft__r = weft__await_failed(weft__co, task, (catching), (var)) ? -1 : 0;              \
        }                                                                                          \
        if (weft__r < 0)                                                                           \
            goto weft__unwind;                                                                     \
    } while (0)

/* The value (weft_value) of this task's last successful await - possibly
 * one inside a child frame; after WEFT_CALL read child->result instead. */
#define WEFT_RESULT(self) weft__last_value(task)

/* Let every other ready callback run, then continue (asyncio.sleep(0)).
 * Fails with -ECANCELED if the task is cancelled. */
#define WEFT_YIELD(self)                                                                           \
    do {                                                                                           \
        if (weft__yield(weft__co, task, __LINE__))                                                 \
            WEFT__SUSPEND(WEFT__RC_PENDING);                                                       \
        if (weft__yield_failed(weft__co, task))                                                    \
            goto weft__unwind;                                                                     \
    } while (0)

/* Call child coroutine fn inline (Python's `await fn(args)`): its frame is
 * *child (usually a member of self, e.g. &self->sub.read), initialised
 * from the designated initializers that follow (the rest is zeroed), and
 * run in this task until it ends; resuming it later is O(1) at any depth.
 * Its result is child->result; its error propagates.
 *     WEFT_CALL(self, read_exact, &self->rx, .fd = self->fd, .want = 8);   */
#define WEFT_CALL(self, ...) WEFT__CALL(self, false, NULL, __VA_ARGS__, )
/* Like WEFT_CALL, storing the child's error (0 = ok) in the int lvalue var. */
#define WEFT_TRY_CALL(self, var, ...) WEFT__CALL(self, true, &(var), __VA_ARGS__, )
#define WEFT__CALL(self, catching, var, fn, child, ...)                                            \
    do {                                                                                           \
        *(child) = (struct fn){.co = {.info = &fn##__info}, __VA_ARGS__};                          \
        if (weft__call(weft__co, task, &(child)->co, __LINE__))                                    \
            WEFT__SUSPEND(WEFT__RC_CALL);                                                          \
        if (weft__call_failed(weft__co, task, &(child)->co, (catching), (var)))                    \
            goto weft__unwind;                                                                     \
    } while (0)

/* Finish this frame with value v: runs WEFT_FINALLY (if any), then ends. */
#define WEFT_RETURN(self, v)                                                                       \
    do {                                                                                           \
        (self)->result = (v);                                                                      \
        weft__co->resume.key = weft__unwind_key(weft__co);                                         \
        weft__co->flags &= ~WEFT__CO_LABEL;                                                        \
        goto weft__dispatch;                                                                       \
    } while (0)

/* Fail this frame with error code e (< 0): unwind to WEFT_FINALLY.  A code
 * >= 0 is misuse: the frame fails with WEFT_ECORO and the error hook says
 * where. */
#define WEFT_THROW(self, e)                                                                        \
    do {                                                                                           \
        weft__throw(weft__co, task, (e), __LINE__);                                                \
        goto weft__unwind;                                                                         \
    } while (0)

#ifdef __cplusplus
}
#endif
/* clang-format on */
#endif
