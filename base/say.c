/*
 * say.c — the tree's one logger: rn_say() formats a message and hands it
 * to the caller's rn_logger_t; rn_logger_stderr writes the one line format
 *   2026-11-22T02:40:00.123Z info server: listening native=... http=...
 * (runneld's stderr, unchanged from broker/net/log.c where it was before).
 * Each line goes out in one write(2), so lines from several threads never
 * interleave; newlines inside a message become spaces. Any thread may log.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rn_base.h"

static rn_level_t say_min = RN_LVL_INFO;

void rn_say_set_min_level(rn_level_t lvl) { say_min = lvl; }
rn_level_t rn_say_min_level(void) { return say_min; }

const char *rn_level_name(rn_level_t lvl) {
  switch (lvl) {
  case RN_LVL_DEBUG: return "debug";
  case RN_LVL_INFO: return "info";
  case RN_LVL_WARN: return "warn";
  case RN_LVL_ERROR: return "error";
  }
  return "?";
}

size_t rn_say_format_line(char *line, size_t cap, int64_t wall_ms, rn_level_t lvl, const char *component,
                          const char *msg) {
  time_t secs = (time_t)(wall_ms >= 0 ? wall_ms / 1000 : (wall_ms - 999) / 1000);
  int ms = (int)(wall_ms - (int64_t)secs * 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  int n = snprintf(line, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ", tm.tm_year + 1900, tm.tm_mon + 1,
                   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms, rn_level_name(lvl),
                   component ? component : "runneld");
  if (n < 0) n = 0;
  size_t head = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
  size_t room = cap - head - 2; /* one byte for '\n', one for the NUL */
  size_t m = msg ? strlen(msg) : 0;
  size_t len = head + (m > room ? room : m);
  if (m > 0) memcpy(line + head, msg, len - head);
  if (m > room) memcpy(line + len - 3, "...", 3);
  for (size_t i = head; i < len; i++)
    if (line[i] == '\n' || line[i] == '\r') line[i] = ' '; /* one line per event */
  line[len++] = '\n';
  line[len] = '\0';
  return len;
}

void rn_logger_stderr(void *arg, rn_level_t lvl, const char *msg) {
  if (lvl < say_min) return;
  char line[RN_SAY_LINE_MAX + 1];
  size_t len = rn_say_format_line(line, sizeof line, rn_clock_wall_ms(NULL), lvl, arg, msg);
  for (size_t off = 0; off < len;) {
    ssize_t w = write(STDERR_FILENO, line + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
}

rn_logger_t rn_logger_stderr_as(const char *component) {
  rn_logger_t lg = {rn_logger_stderr, (void *)(uintptr_t)component};
  return lg;
}

void rn_vsay(const rn_logger_t *lg, rn_level_t lvl, const char *fmt, va_list ap) {
  if ((lg == NULL || lg->fn == NULL) && lvl < say_min) return;
  char msg[RN_SAY_LINE_MAX];
  int m = vsnprintf(msg, sizeof msg, fmt, ap);
  if (m < 0) msg[0] = '\0';
  else if ((size_t)m >= sizeof msg) memcpy(msg + sizeof msg - 4, "...", 3);
  if (lg != NULL && lg->fn != NULL) lg->fn(lg->arg, lvl, msg);
  else rn_logger_stderr(NULL, lvl, msg);
}

void rn_say(const rn_logger_t *lg, rn_level_t lvl, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rn_vsay(lg, lvl, fmt, ap);
  va_end(ap);
}

void rn_sayf(rn_level_t lvl, const char *component, const char *fmt, ...) {
  if (lvl < say_min) return;
  rn_logger_t lg = rn_logger_stderr_as(component);
  va_list ap;
  va_start(ap, fmt);
  rn_vsay(&lg, lvl, fmt, ap);
  va_end(ap);
}
