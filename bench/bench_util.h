/* bench_util.h - small helpers for weft's benchmark programs.
 *
 * Clocks, memory figures, the deterministic workload layouts and the one-line
 * JSON result of the peer benchmark harness (../shared/bench/README.md, the
 * "contract for the new library").  The two layout functions must produce
 * exactly the deadlines and the cancel order the harness's other peers use,
 * so their formulas must not change.
 *
 * Needs _POSIX_C_SOURCE >= 200809L (clock_gettime, getrusage), defined by
 * the build or by the including file before any system header.
 */
#ifndef WEFT_BENCH_UTIL_H
#define WEFT_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Exit status for "this program does not implement that workload": the
 * harness skips the workload instead of recording a failure. */
#define BENCH_UNSUPPORTED 2

#define BENCH_DIE(...)                               \
    do {                                             \
        fprintf(stderr, "weft-bench: " __VA_ARGS__); \
        fputc('\n', stderr);                         \
        exit(1);                                     \
    } while (0)

/* ---- clocks and memory ----------------------------------------------------- */

/* Wall-clock seconds on the monotonic clock. */
static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline double bench_tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

/* CPU seconds (user + system) this process has used so far. */
static inline double bench_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return bench_tv_s(ru.ru_utime) + bench_tv_s(ru.ru_stime);
}

/* Largest resident set so far, KiB (Linux reports ru_maxrss in KiB). */
static inline long bench_peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long)ru.ru_maxrss;
}

/* Current resident set, KiB, from the VmRSS line of /proc/self/status;
 * -1 where that file does not exist. */
static inline long bench_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (kb < 0 && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* ---- workload layouts -------------------------------------------------------- */

/* The standard splitmix64 step: advances *state, returns the next value. */
static inline uint64_t bench_splitmix64(uint64_t *state)
{
    uint64_t x = *state += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

/* timers: libuv's million-timers layout, timer i fires after 1 + i/1000 ms
 * (integer division). */
static inline unsigned bench_timers_timeout_ms(long i)
{
    return 1u + (unsigned)(i / 1000);
}

/* timer-cancel: with s = seed, n deadlines 1 + splitmix64(s) % 1000 ms, then
 * a Fisher-Yates shuffle of 0..n-1 drawing from the same s (from the last
 * index down to 1, partner splitmix64(s) % (i + 1)).  The caller cancels
 * order[0 .. n/2 - 1] in that sequence. */
static inline void bench_cancel_layout(long n, uint64_t seed, unsigned *deadline_ms,
                                       unsigned *order)
{
    uint64_t s = seed;
    for (long i = 0; i < n; i++)
        deadline_ms[i] = 1u + (unsigned)(bench_splitmix64(&s) % 1000u);
    for (long i = 0; i < n; i++)
        order[i] = (unsigned)i;
    for (long i = n - 1; i > 0; i--) {
        long j = (long)(bench_splitmix64(&s) % (uint64_t)(i + 1));
        unsigned tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
}

/* ---- arguments ------------------------------------------------------------------ */

/* argv[idx] as a positive decimal N, or dflt when absent; exits on junk. */
static inline long bench_arg_n(int argc, char **argv, int idx, long dflt)
{
    if (argc <= idx)
        return dflt;
    char *end;
    long v = strtol(argv[idx], &end, 10);
    if (end == argv[idx] || *end != '\0' || v <= 0)
        BENCH_DIE("N must be a positive decimal integer, got \"%s\"", argv[idx]);
    return v;
}

/* argv[idx] as the layout seed, 42 when absent. */
static inline uint64_t bench_arg_seed(int argc, char **argv, int idx)
{
    if (argc <= idx)
        return 42;
    char *end;
    unsigned long long v = strtoull(argv[idx], &end, 10);
    if (end == argv[idx] || *end != '\0')
        BENCH_DIE("SEED must be a decimal integer, got \"%s\"", argv[idx]);
    return (uint64_t)v;
}

/* ---- the result line --------------------------------------------------------------- */

/* Opens the JSON object with the fields every workload reports.  Add
 * workload-specific fields with printf(",\"name\":...") and finish with
 * bench_json_end(). */
static inline void bench_json_begin(const char *workload, long n, double seconds,
                                    double cpu_seconds, long base_rss_kb)
{
    printf("{\"workload\":\"%s\",\"impl\":\"weft\",\"n\":%ld,\"seconds\":%.6f,"
           "\"ops_per_sec\":%.1f,\"cpu_seconds\":%.6f,\"peak_rss_kb\":%ld,\"base_rss_kb\":%ld",
           workload, n, seconds, seconds > 0 ? (double)n / seconds : 0.0, cpu_seconds,
           bench_peak_rss_kb(), base_rss_kb);
}

static inline void bench_json_end(void)
{
    fputs("}\n", stdout);
    fflush(stdout);
}

#endif
