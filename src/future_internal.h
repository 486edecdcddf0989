/* future_internal.h - layout of futures and tasks, shared by src/. */
#ifndef WEFT_FUTURE_INTERNAL_H
#define WEFT_FUTURE_INTERNAL_H

#include "loop_internal.h"
#include "weft/task.h"
#include "weft/sync.h"

/* Future flags. */
enum {
    WEFT__F_TASK = 1u << 0,     /* is a struct weft__task */
    WEFT__F_OBSERVED = 1u << 1, /* outcome retrieved: no failure report */
    WEFT__F_HOOKS = 1u << 2,    /* waiters hold cancel hooks */
    WEFT__F_STORAGE = 1u << 3,  /* memory is the caller's: never freed */
    WEFT__F_LOOPREF = 1u << 4,  /* the loop holds a reference (pending task) */
    WEFT__F_YIELD = 1u << 5,    /* done sleep(0) future: awaiting it yields */
    WEFT__F_HANDOFF = 1u << 6,  /* a struct weft__handoff (sync.c, queue.c) */
};

/* Sized so that a task (future + node + links + top) is 104 bytes on LP64
 * and a task with a small frame fits a 160-byte malloc chunk: a task's
 * name shares the slot of a value's destructor, and its error origin the
 * slot of the error code. */
struct weft_future {
    weft_loop *loop;
    weft_link waiters; /* parked tasks and done callbacks, FIFO */
    union {
        struct {
            weft_value v;
            weft_dtor *dtor;
        } done; /* finished with a value */
        struct {
            union {
                weft_future *waiting; /* what the task awaits / awaited last */
                weft_value slot_;     /* keeps name clear of done.v where a
                                         pointer is narrower than a weft_value
                                         (ILP32) */
            };
            const char *name; /* name set by weft_task_set_name; it overlays
                                 done.dtor, which a task never uses, so it
                                 survives completion */
        } task;
    } u;
    uint32_t refs;
    uint8_t state; /* weft_future_state */
    uint8_t flags;
    uint16_t cancel_requests;
    union {
        int32_t err;                /* once done: 0 or the error code */
        const weft_co_info *origin; /* a pending task: the coroutine that
                                       raised the error it unwinds with */
    };
};

/* Completion writes u.done.v into a task; its name must not share those bytes. */
_Static_assert(offsetof(weft_future, u.task.name) == offsetof(weft_future, u.done.dtor),
               "a task's name must overlay done.dtor, never done.v");

typedef struct weft__task {
    weft_future fut; /* first: a task is a future */
    weft_node node;  /* ready-queue node; or parked in a future's waiters */
    weft_link live;  /* in loop->tasks while pending */
    weft_co *top;    /* innermost frame: where the trampoline resumes */
} weft__task;

_Static_assert(sizeof(weft__task) <= WEFT__TASK_SPACE, "WEFT__TASK_SPACE too small");

static inline weft__task *weft__as_task(weft_future *f)
{
    return (weft__task *)(void *)f;
}

/* Offset of the root frame in a task allocation. */
static inline size_t weft__frame_offset(size_t align)
{
    return (sizeof(weft__task) + align - 1) / align * align;
}

/* A waiter of a primitive with hand-off semantics (lock, semaphore, queue,
 * ...), embedded in the waiting task's frame (public: weft_waiter).  The
 * primitive hands the resource over by completing fut; cancelled() is
 * called synchronously when the waiter is cancelled while queued
 * (handed == false: unlink it) or after the hand-off but before the task
 * observed it (handed == true: give the resource to the next waiter or back
 * to the primitive).  The memory belongs to the frame: never freed. */
typedef struct weft__handoff {
    weft_future fut;
    weft_link q; /* in the primitive's waiter queue */
    void (*cancelled)(struct weft__handoff *h, bool handed);
    void *prim;
    weft_value item; /* the item or count handed over / offered */
    int64_t aux;     /* for the primitive */
} weft__handoff;

_Static_assert(sizeof(weft__handoff) <= WEFT__WAITER_SPACE, "WEFT__WAITER_SPACE too small");

/* Initialise h as a pending waiter future on loop; returns &h->fut with one
 * reference (the await consumes it; the memory is never freed). */
weft_future *weft__handoff_init(weft__handoff *h, weft_loop *loop, void *prim,
                                void (*cancelled)(weft__handoff *h, bool handed));

/* Undo a hand-off the waiter's task has not seen yet: give the resource to
 * the next waiter or back to the primitive, and make f CANCELLED.  Returns
 * true if f was such a hand-off. */
bool weft__handoff_rollback(weft_future *f);

/* Internal future API (future.c). */
void weft__future_complete(weft_future *f, uint8_t state);
/* Park node n (a task, a done callback) on f, after its other waiters. */
static inline void weft__future_wait(weft_future *f, weft_node *n)
{
    weft__list_push(&f->waiters, &n->link);
}
int weft__future_on_cancel(weft_future *f, weft_cb *fn, void *arg);
void weft__future_free(weft_future *f);
void weft__set_last_error(int err);

/* task.c */
void weft__task_free(weft_future *f);
void weft__tasks_on_close(weft_loop *loop);

#endif
