/* assert.h - assertions for weft's own invariants, and the poison switch.
 *
 * WEFT_ASSERT(cond) checks something only a bug in weft can break (a heap
 * index, list membership before an unlink, a due-array slot, an fd-table
 * entry).  It is on when WEFT_ASSERTIONS is 1, which CMake sets for Debug
 * builds and for -DWEFT_ASSERT=ON, and compiles to nothing otherwise.  On
 * failure it prints file:line and the condition to stderr and aborts.
 * Never use it for anything a caller can get wrong: that is an error code.
 *
 * WEFT__POISON is 1 in assertion and sanitizer builds.  Every layer tests it
 * to stop recycling its objects through free lists, so that a use after
 * release is a use of freed (or poisoned) memory that ASan and valgrind
 * report, instead of a silent use of someone else's object.
 */
#ifndef WEFT_ASSERT_H
#define WEFT_ASSERT_H

#ifndef WEFT_ASSERTIONS
#define WEFT_ASSERTIONS 0
#endif

#if WEFT_ASSERTIONS
void weft__assert_fail(const char *cond, const char *file, int line);
#define WEFT_ASSERT(cond) ((cond) ? (void)0 : weft__assert_fail(#cond, __FILE__, __LINE__))
#else
#define WEFT_ASSERT(cond) ((void)0)
#endif

/* WEFT__COLD marks the slow half of a hot function: never inlined, laid
 * out away from the hot code, and calls to it predicted not taken, so that
 * the fast half stays a short leaf with no registers to save.  An
 * optimisation hint only (GCC and Clang); nothing depends on it. */
#if defined(__GNUC__) || defined(__clang__)
#define WEFT__COLD __attribute__((noinline, cold))
#else
#define WEFT__COLD
#endif

/* Sanitizer detection: GCC defines __SANITIZE_ADDRESS__, Clang answers
 * __has_feature(address_sanitizer). */
#if defined(__SANITIZE_ADDRESS__)
#define WEFT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT__ASAN 1
#endif
#endif
#ifndef WEFT__ASAN
#define WEFT__ASAN 0
#endif

#if WEFT_ASSERTIONS || WEFT__ASAN
#define WEFT__POISON 1
#else
#define WEFT__POISON 0
#endif

#endif
