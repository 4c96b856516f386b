/*
 * log.c — runneld's stderr logger, one line per event:
 *   2026-11-22T02:40:00.123Z info server: listening native=... http=...
 * Each line goes out in one write(2), so lines from several threads never
 * interleave; newlines inside a message become spaces. Any thread may log.
 *
 * Here until base/ has the one logger of the tree (issue 11): then these
 * functions move there unchanged.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rn_net.h"

/* ---- logging ---------------------------------------------------------------- */

static int log_min = RN_NET_LOG_INFO;

void rn__log_set_level(int level) { log_min = level; }
int rn__log_level(void) { return log_min; }

static const char *level_name(int l) {
  switch (l) {
  case RN_NET_LOG_DEBUG: return "debug";
  case RN_NET_LOG_INFO: return "info";
  case RN_NET_LOG_WARN: return "warn";
  case RN_NET_LOG_ERROR: return "error";
  }
  return "?";
}

static void log_line(int level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void log_line(int level, const char *component, const char *fmt, va_list ap) {
  char line[4096];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000),
                   level_name(level), component ? component : "runneld");
  if (n < 0) return;
  size_t head = (size_t)n;
  size_t room = sizeof line - head - 1; /* keep one byte for '\n' */
  int m = vsnprintf(line + head, room + 1, fmt, ap);
  if (m < 0) m = 0;
  size_t len = head + ((size_t)m > room ? room : (size_t)m);
  if ((size_t)m > room) memcpy(line + len - 3, "...", 3);
  for (size_t i = head; i < len; i++)
    if (line[i] == '\n' || line[i] == '\r') line[i] = ' '; /* one line per event */
  line[len++] = '\n';
  for (size_t off = 0; off < len;) {
    ssize_t w = write(STDERR_FILENO, line + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
}

void rn__logf(int level, const char *component, const char *fmt, ...) {
  if (level < log_min) return;
  va_list ap;
  va_start(ap, fmt);
  log_line(level, component, fmt, ap);
  va_end(ap);
}

void rn_net_log_stderr(void *arg, int level, const char *component, const char *msg) {
  (void)arg;
  rn__logf(level, component, "%s", msg);
}
