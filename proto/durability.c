/* durability.c — names of the durability modes (runnel/durability.h). */
#include "runnel/durability.h"

#include <string.h>

const char *rn_durability_name(rn_durability_t d) {
  switch (d) {
  case RN_DURABILITY_SYNC: return "sync";
  case RN_DURABILITY_INTERVAL: return "interval";
  case RN_DURABILITY_NONE: return "none";
  }
  return "unknown";
}

rn_err_t rn_durability_parse(const char *s, rn_durability_t *out) {
  if (!s || !out) return RN_EINVAL;
  if (!strcmp(s, "sync")) *out = RN_DURABILITY_SYNC;
  else if (!strcmp(s, "interval")) *out = RN_DURABILITY_INTERVAL;
  else if (!strcmp(s, "none")) *out = RN_DURABILITY_NONE;
  else return RN_EINVAL;
  return 0;
}
