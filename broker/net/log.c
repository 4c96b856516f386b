/*
 * log.c — the broker's transitional logging names over base's one logger
 * (rn_base.h: rn_sayf, its line format and level): rn__logf and
 * rn__log_set_level are what runneld and the HTTP applications call today;
 * they write exactly what rn_sayf writes. rn_net_log_stderr is net's
 * rn_net_log_fn onto the same stderr lines. Any thread may call them.
 */
#include <stdarg.h>
#include <stdio.h>

#include "rn_net.h"

void rn__log_set_level(int level) { rn_say_set_min_level((rn_level_t)level); }
int rn__log_level(void) { return (int)rn_say_min_level(); }

void rn__logf(int level, const char *component, const char *fmt, ...) {
  if (level < (int)rn_say_min_level()) return;
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  rn_sayf((rn_level_t)level, component, "%s", msg);
}

void rn_net_log_stderr(void *arg, rn_level_t level, const char *component, const char *msg) {
  (void)arg;
  rn_sayf(level, component, "%s", msg);
}
