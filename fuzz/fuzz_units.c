/*
 * fuzz_units.c — libFuzzer target for the size and duration parsers
 * (proto/units.c), which read what operators type (runnelctl options, the
 * broker's configuration). Checked promises (a violation aborts):
 *   - both parsers terminate on any input, never write *out on failure, and
 *     always leave a NUL-terminated reason that fits the buffer;
 *   - an accepted value is >= 0, and formatting it gives text that parses
 *     back to the same value (format and parse agree on every unit).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runnel/units.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 256) return 0;
  char s[257];
  memcpy(s, data, size);
  s[size] = '\0';
  for (int kind = 0; kind < 2; kind++) {
    int64_t v = -7;
    char why[64];
    memset(why, 'x', sizeof why);
    rn_err_t err = kind ? rn_parse_duration_ms(s, &v, why, sizeof why) : rn_parse_size(s, &v, why, sizeof why);
    if (err) {
      if (err != RN_EINVAL || v != -7 || memchr(why, '\0', sizeof why) == NULL) abort();
      continue;
    }
    if (v < 0) abort();
    char buf[RN_UNITS_STRLEN];
    int64_t back = -1;
    if (kind) {
      rn_format_duration_ms(v, buf, sizeof buf);
      if (rn_parse_duration_ms(buf, &back, NULL, 0) != 0 || back != v) abort();
    } else {
      rn_format_size(v, buf, sizeof buf);
      if (rn_parse_size(buf, &back, NULL, 0) != 0 || back != v) abort();
    }
  }
  return 0;
}
