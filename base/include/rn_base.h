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

/* ==== 3. time =================================================================
 *
 * Proleptic Gregorian calendar arithmetic (Howard Hinnant's days_from_civil
 * and civil_from_days: 400-year eras of 146097 days, March-based years) and
 * the date syntaxes runnel reads and writes: ISO-8601 / RFC 3339 date-times
 * and the SigV4 "YYYYMMDDTHHMMSSZ" form. Pure functions over bytes; errors
 * are -EINVAL (the same number as proto's RN_EINVAL). */

/* Days since 1970-01-01 of year y, month m (1..12), day d (1..31; a day
 * past the month's end counts on into the next month). */
int64_t rn_days_from_civil(int64_t y, unsigned m, unsigned d);
/* The inverse: the date of `days` since 1970-01-01 (negative: before). */
void rn_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
bool rn_leap_year(int64_t y);

/* What rn_iso8601_parse accepts beyond the strict RFC 3339 form
 *   YYYY-MM-DD(T|t|' ')HH:MM:SS[(.|,)digits](Z|z|(+|-)HH[[:]MM])
 * (fractions past milliseconds are dropped; offsets up to 23:59). */
enum {
  RN_ISO8601_DATE_ONLY = 1u << 0,      /* "YYYY-MM-DD" alone: midnight UTC */
  RN_ISO8601_NO_SECONDS = 1u << 1,     /* "HH:MM" without ":SS" (then no fraction) */
  RN_ISO8601_NO_ZONE = 1u << 2,        /* no zone: UTC */
  RN_ISO8601_OFFSET_MINUTES = 1u << 3, /* an offset must have its minutes, (+|-)HH[:]MM */
};
/* Parse s[0..n) (exactly; no surrounding blanks) into ms since the epoch,
 * negative before 1970. Returns 0 or -EINVAL (then *ms is untouched). */
int rn_iso8601_parse(const char *s, size_t n, unsigned flags, int64_t *ms);

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" of ms since the epoch, NUL-terminated; years
 * 0..9999 (outside them the year is printed with its sign and its digits,
 * so allow RN_ISO8601_MAX bytes). Returns the length without the NUL. */
#define RN_ISO8601_MAX 40
size_t rn_iso8601_format_ms(int64_t ms, char out[RN_ISO8601_MAX]);

/* SigV4 / X-Amz-Date "20150830T123600Z": s[0..n), exactly 16 bytes, into
 * seconds since the epoch. Returns 0 or -EINVAL. */
int rn_amz_date_parse(const char *s, size_t n, int64_t *secs);
/* The same form of secs (years 0..9999), NUL-terminated in out[17]. */
void rn_amz_date_format(int64_t secs, char out[17]);

/* ==== 4. histogram ============================================================
 *
 * A fixed-bucket latency histogram, the Prometheus kind: counts per bucket
 * (not cumulative) against upper bounds given at each record, a last
 * +Inf bucket, the sum and the count. Plain value type; no allocation; not
 * thread-safe (each owner records on its own thread). Bounds are increasing
 * upper bounds (a value equal to a bound lands in that bound's bucket); the
 * +Inf bucket is buckets[nbounds]. (bench/hist.h is a different kind: a
 * log-linear histogram for percentiles.) */
#define RN_HIST_BUCKETS 16 /* most bounds a histogram may use */
typedef struct rn_hist {
  uint64_t count;
  double sum;                            /* of the recorded values (seconds, for latencies) */
  uint64_t buckets[RN_HIST_BUCKETS + 1]; /* per bucket; [nbounds] = +Inf */
} rn_hist_t;

/* The latency bounds of runnel's /metrics, in seconds: 100 us .. 10 s
 * (appends, fdatasync rounds). */
extern const double rn_hist_latency_bounds[RN_HIST_BUCKETS];

/* Count v. bounds[0..nbounds) increasing, nbounds <= RN_HIST_BUCKETS. */
void rn_hist_record(rn_hist_t *h, const double *bounds, unsigned nbounds, double v);
/* Add every bucket, the sum and the count of from to into (same bounds). */
void rn_hist_merge(rn_hist_t *into, const rn_hist_t *from);

/* ==== 5. arena and buffer =====================================================
 *
 * rn_arena_t: a bump allocator for the pieces of one reply (protobuf
 * messages, strings) that are all freed together. Zero-initialise it
 * ({0}); rn_arena_free releases every block and leaves it reusable. Every
 * allocation is zeroed and 16-byte aligned; lives until rn_arena_free. One
 * thread at a time. Out of memory aborts (control-plane sized: see
 * section 6). */
typedef struct rn_arena {
  struct rn_arena_blk *head;
} rn_arena_t;

void *rn_arena_alloc(rn_arena_t *a, size_t n);
char *rn_arena_printf(rn_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rn_arena_free(rn_arena_t *a);

/* rn_buf_t: a growable byte buffer for output (HTTP bodies, JSON,
 * /metrics). Zero-initialise it. Appends never fail: on out-of-memory the
 * buffer remembers it (oom) and ignores further writes; the caller checks
 * oom once before sending. While len > 0 and !oom, p[len] is a NUL. The
 * buffer owns p; rn_buf_free releases it and zeroes the buffer (a zeroed
 * buffer is accepted). */
typedef struct rn_buf {
  char *p;
  size_t len, cap;
  bool oom;
} rn_buf_t;

void rn_buf_free(rn_buf_t *b);
/* Room for `more` bytes and a NUL after len. */
void rn_buf_reserve(rn_buf_t *b, size_t more);
void rn_buf_put(rn_buf_t *b, const void *p, size_t n);
void rn_buf_puts(rn_buf_t *b, const char *s);
void rn_buf_printf(rn_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ==== 6. memory ===============================================================
 *
 * The out-of-memory policy (docs/architecture.md): control-plane
 * allocations of bounded small size (a stream's record, a group's member,
 * a config string) abort on OOM with one line naming the size and the
 * call site, through these; allocations sized by a peer's input or data
 * (frames, batches, fetch buffers, HTTP bodies) are bounded by budgets and
 * return RN_ENOMEM instead, so they never use these. Each returns memory
 * the caller frees with free(); rn_xrealloc(p, 0) frees p and returns NULL. */
void *rn__xmalloc(size_t n, const char *file, int line);
void *rn__xcalloc(size_t count, size_t size, const char *file, int line);
void *rn__xrealloc(void *p, size_t n, const char *file, int line);
char *rn__xstrdup(const char *s, const char *file, int line);
#define rn_xmalloc(n) rn__xmalloc((n), __FILE__, __LINE__)
#define rn_xcalloc(count, size) rn__xcalloc((count), (size), __FILE__, __LINE__)
#define rn_xrealloc(p, n) rn__xrealloc((p), (n), __FILE__, __LINE__)
#define rn_xstrdup(s) rn__xstrdup((s), __FILE__, __LINE__)
/* Write "runnel: out of memory allocating N bytes at FILE:LINE" to stderr
 * and abort(). What the functions above call; for sites that allocate by
 * other means (a library's allocator returning NULL). */
void rn__oom_abort(size_t n, const char *file, int line) __attribute__((noreturn));

/* Write code point v (<= 0x10FFFF, not a surrogate: the caller checked) as
 * UTF-8 into out[0..4); returns the bytes written. Pure. */
size_t rn_utf8_put(uint8_t *out, uint32_t v);

#ifdef __cplusplus
}
#endif
#endif
