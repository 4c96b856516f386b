/*
 * rn_base.h — the machinery every layer of runnel shares, written once:
 * the logger (one line format, one level enum), the clock interface,
 * time and ISO-8601, the fixed-bucket latency histogram, the arena and
 * the growable byte buffer, and the out-of-memory helpers.
 *
 * base/ uses libc (and pthread) only; every other folder may use it.
 * Nothing here blocks except the stderr logger's one write(2) per line.
 * Sections:
 *   1. logger        rn_level_t, rn_logger_t, rn_say
 *   2. clock         rn_clock_t, rn_clock_wall_ms, rn_clock_mono_ns
 *   3. time          day arithmetic, ISO-8601 / RFC-3339 / SigV4 dates
 *   4. histogram     rn_hist_t
 *   5. arena, buffer rn_arena_t, rn_buf_t
 *   6. memory        rn_xmalloc and friends (abort on OOM)
 */
#ifndef RN_BASE_H
#define RN_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== 1. logger ===============================================================
 *
 * One event is one line. A subsystem that reports events takes an
 * rn_logger_t in its options and calls rn_say(); the application decides
 * where lines go. The one line format of the tree, written by
 * rn_logger_stderr (runneld's stderr, which tests and docs read):
 *
 *   2026-11-22T02:40:00.123Z info server: listening native=... http=...
 *
 * UTC time with milliseconds, the level name, the component, ": ", the
 * message with any newline turned into a space. A line is at most
 * RN_SAY_LINE_MAX bytes including its '\n'; a longer one ends in "...".
 *
 * "log" in runnel means the shard log (storage/rn_log.h); these are "say". */

typedef enum { RN_LVL_DEBUG = 0, RN_LVL_INFO = 1, RN_LVL_WARN = 2, RN_LVL_ERROR = 3 } rn_level_t;

/* Receives one formatted message (no newline; msg valid only during the
 * call). May be called from any thread the owner of the logger uses. */
typedef struct rn_logger {
  void (*fn)(void *arg, rn_level_t lvl, const char *msg);
  void *arg;
} rn_logger_t;

#define RN_SAY_LINE_MAX 4096

/* "debug", "info", "warn", "error"; "?" for anything else. Static. */
const char *rn_level_name(rn_level_t lvl);

/* Format and hand one message to lg. lg NULL or lg->fn NULL: the default
 * line on stderr, rn_logger_stderr(NULL, ...). Any thread. */
void rn_say(const rn_logger_t *lg, rn_level_t lvl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void rn_vsay(const rn_logger_t *lg, rn_level_t lvl, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* The stderr logger: arg is the component name (a const char *, NULL =
 * "runneld"). Writes the line in one write(2), so lines from several
 * threads never interleave; drops lines below rn_say_min_level(). */
void rn_logger_stderr(void *arg, rn_level_t lvl, const char *msg);
/* An rn_logger_t writing to stderr as component (a string that outlives it). */
rn_logger_t rn_logger_stderr_as(const char *component);
/* Least severe level rn_logger_stderr writes; default RN_LVL_INFO.
 * Set it before other threads start. */
void rn_say_set_min_level(rn_level_t lvl);
rn_level_t rn_say_min_level(void);
/* Write one stderr line as component, bypassing any rn_logger_t (for
 * code that has no options to carry one: main, signal handlers' aftermath). */
void rn_sayf(rn_level_t lvl, const char *component, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The line rn_logger_stderr writes, into line[cap] (cap >= 64), for the
 * wall time wall_ms: returns its length including the '\n' (no NUL is
 * counted, but one is written). For tests and for sinks other than stderr. */
size_t rn_say_format_line(char *line, size_t cap, int64_t wall_ms, rn_level_t lvl, const char *component,
                          const char *msg);

/* ==== 2. clock ================================================================
 *
 * Where a subsystem reads time. Options carry an rn_clock_t; zeroed (or a
 * NULL pointer, or a NULL function) means the system clock, so tests inject
 * time by setting the functions. Both functions are called from whatever
 * thread the subsystem reads time on. */
typedef struct rn_clock {
  int64_t (*wall_ms)(void *arg);  /* ms since the Unix epoch (CLOCK_REALTIME) */
  uint64_t (*mono_ns)(void *arg); /* ns, only differences mean anything (CLOCK_MONOTONIC) */
  void *arg;
} rn_clock_t;

int64_t rn_clock_wall_ms(const rn_clock_t *clk);
uint64_t rn_clock_mono_ns(const rn_clock_t *clk);
/* The system clocks themselves (arg unused), e.g. to wrap them. */
int64_t rn_clock_system_wall_ms(void *arg);
uint64_t rn_clock_system_mono_ns(void *arg);

#ifdef __cplusplus
}
#endif
#endif
