/*
 * fuzz_dedup_json.c — libFuzzer target for the dedup window's id scanner
 * (rn__dedup_json_field in broker/core/dedup_json.c): it reads every record
 * of a stream deduplicated by a JSON field, i.e. any bytes a producer sends.
 * Input: byte 0 picks the path ("event_uuid", "a.b", "k"), the rest is the
 * data (exactly size - 1 bytes, not NUL-terminated). Checked promises:
 *   - a found id lies inside the data;
 *   - a found id means the data is valid JSON: jansson (an independent
 *     parser, Debian's) parses it too (NUL escapes allowed, as the scanner
 *     passes escapes through; numbers jansson cannot hold are JSON too);
 *   - the answer does not depend on bytes after the data (a second call on
 *     a copy with trailing garbage in the same buffer, length unchanged,
 *     answers the same).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dedup.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  if (size < 1) return 0;
  static const char *const paths[] = {"event_uuid", "a.b", "k"};
  const char *path = paths[in[0] % 3];
  const uint8_t *data = in + 1;
  size_t len = size - 1;
  const uint8_t *id = NULL;
  size_t idlen = 0;
  bool found = rn__dedup_json_field(data, len, path, &id, &idlen);
  if (found) {
    CHECK(id >= data && id + idlen <= data + len);
    json_error_t e;
    json_t *j = json_loadb((const char *)data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    /* jansson refuses numbers beyond int64 / double, which JSON allows. */
    CHECK(j != NULL || strstr(e.text, "too big") != NULL || strstr(e.text, "overflow") != NULL);
    json_decref(j);
  }
  uint8_t *copy = malloc(len + 8);
  if (!copy) return 0;
  memcpy(copy, data, len);
  memset(copy + len, '}', 8);
  const uint8_t *id2 = NULL;
  size_t idlen2 = 0;
  bool found2 = rn__dedup_json_field(copy, len, path, &id2, &idlen2);
  CHECK(found2 == found);
  if (found) CHECK(idlen2 == idlen && id2 - copy == id - data);
  free(copy);
  return 0;
}
