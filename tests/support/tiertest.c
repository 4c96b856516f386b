/* tiertest.c — see tiertest.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <time.h>

#include "broker_proc.h"
#include "tiertest.h"

uint64_t rn_tt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void rn_tt_pause(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

json_t *rn_tt_ctl_json(const char *ctl, const char *addr, const char *scratch, const char *const *args) {
  const char *a[40];
  int n = 0;
  a[n++] = "--json";
  for (int i = 0; args[i] && n < 39; i++) a[n++] = args[i];
  a[n] = NULL;
  char *out, *err;
  int rc = rn_test_ctl_run(ctl, addr, a, scratch, &out, &err);
  if (rc != 0)
    fail_msg("runnelctl --json %s %s: exit %d\nstdout: %s\nstderr: %s", args[0], args[1] ? args[1] : "", rc,
             out ? out : "", err ? err : "");
  json_error_t jerr;
  json_t *doc = json_loads(out, 0, &jerr);
  if (!doc) fail_msg("runnelctl --json %s: not JSON (%s): %s", args[0], jerr.text, out);
  free(out);
  free(err);
  return doc;
}

int64_t rn_tt_jint(json_t *o, const char *name) {
  json_t *v = json_object_get(o, name);
  if (!json_is_integer(v)) {
    char *s = json_dumps(o, JSON_COMPACT);
    fail_msg("no integer \"%s\" in %s", name, s ? s : "?");
  }
  return (int64_t)json_integer_value(v);
}
