/*
 * bench_util.h — small helpers shared by runnel-bench subcommands: size
 * arguments, the median of per-round ratios, JSON number lists, the clock,
 * CPU and load figures, the raw write+fdatasync loop, and child server
 * processes (started with fork/exec, stopped by PID, never by name).
 */
#ifndef RN_BENCH_UTIL_H
#define RN_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* "64", "64K", "1M", "1.5G" (powers of 1024) → bytes; 0 when malformed. */
uint64_t bench_parse_size(const char *s);
/* Median of v[0, n), n >= 1 (v is not modified). */
double bench_median(const double *v, unsigned n);
/* Write v as "a,b,c" with the given decimals into out[cap]. */
void bench_json_list(char *out, size_t cap, const double *v, unsigned n, int decimals);

/* ---- time, CPU, load ---------------------------------------------------- */

/* CLOCK_MONOTONIC in ns. */
int64_t bench_now_ns(void);
/* Sleep until CLOCK_MONOTONIC reaches t (ns); restarts after signals. */
void bench_sleep_until_ns(int64_t t);
void bench_sleep_ms(unsigned ms);
/* CPU seconds (user + system) a process has used, from /proc; -1 if unknown. */
double bench_proc_cpu_s(pid_t pid);
/* CPU seconds this process has used. */
double bench_self_cpu_s(void);
/* 1-minute load average (the machine may be shared); -1 if unknown. */
double bench_loadavg1(void);

/* ---- the raw limit -------------------------------------------------------- */

/* pwrite(write_size) + fdatasync in a loop for `seconds`, appending to `path`
 * (created, truncated every 256 MiB — the broker's segment size — and
 * removed at the end). Adds the bytes written to *bytes and the elapsed time
 * to *secs. Returns 0, or -1 with errno set. */
int bench_raw_slice(const char *path, size_t write_size, double seconds, double *bytes, double *secs);

/* ---- child server processes ------------------------------------------------ */

/* fork/exec argv[0] with argv (NULL-terminated), stdin/stdout on /dev/null and
 * stderr appended to logpath (NULL: inherited). Returns the PID, or -1 with a
 * message printed (prefix `who`). The caller owns the child: stop it with
 * bench_proc_stop(). */
pid_t bench_proc_spawn(const char *who, const char *const *argv, const char *logpath);
/* True while the child has not exited (reaps it when it has; *status gets
 * its wait status). */
bool bench_proc_alive(pid_t pid, int *status);
/* SIGTERM, SIGKILL after `grace_s` seconds, reap. Returns the exit status,
 * or -1 when it was killed by a signal or could not be reaped. */
int bench_proc_stop(pid_t pid, double grace_s);
/* A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read
 * it back, close), for servers that cannot report the port they bound.
 * Returns 0 on failure. */
unsigned bench_free_port(void);
/* rm -rf dir (the bench's own temporary directories only). 0 or -1. */
int bench_rm_rf(const char *dir);
/* The first line of `cmd`'s standard output (e.g. a version), without the
 * newline, into out[cap]; "" when it fails. */
void bench_cmd_line(const char *cmd, char *out, size_t cap);

#endif
