/*
 * fuzz_keys.c — libFuzzer target for the one decimal hash-key parser
 * (rn_hash_key_parse_n in proto/keys.c) and its inverse rn_hash_key_format:
 * the parser reads ExplicitHashKey from every entry point (native protocol,
 * Kinesis API, REST ingest, librunnel, runnelctl), so it sees client bytes
 * of any length and content. The input is the string, exactly size bytes,
 * not NUL-terminated (libFuzzer's buffer is its own heap block, so ASan
 * catches a read past len). Checked promises (a violation aborts):
 *   - the parser accepts exactly Kinesis's rule, computed here independently
 *     of the arithmetic: 1..39 bytes, "0" or a non-zero digit then digits,
 *     and (at 39 digits) not above 2^128-1 compared as text;
 *   - a rejection is RN_EINVAL (never another code) and leaves out
 *     untouched;
 *   - an accepted key round-trips: format gives back the input bytes (the
 *     canonical decimal is unique), and parsing that text — through both
 *     rn_hash_key_parse_n and the NUL-terminated rn_hash_key_parse — gives
 *     the same 16 bytes again;
 *   - the other way round, the first 16 input bytes read as any key format
 *     to canonical decimal that parses back to that key.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runnel/keys.h"
#include "fuzz_check.h"

/* 2^128-1, the largest hash key: 39 digits. */
static const char KEY_MAX[] = "340282366920938463463374607431768211455";

/* Kinesis's ExplicitHashKey rule on s[0, len), by text alone. */
static int accepted_by_rule(const char *s, size_t len) {
  if (len == 0 || len > sizeof KEY_MAX - 1) return 0;
  for (size_t i = 0; i < len; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  if (len > 1 && s[0] == '0') return 0;
  /* Same length, no leading zero: the decimal order is the text order. */
  return len < sizeof KEY_MAX - 1 || memcmp(s, KEY_MAX, len) <= 0;
}

/* text must be canonical decimal: digits only, no leading zero but "0". */
static void check_canonical(const char *text) {
  size_t n = strlen(text);
  CHECK(n >= 1 && n <= RN_HASH_KEY_STRLEN - 1);
  CHECK(n == 1 || text[0] != '0');
  for (size_t i = 0; i < n; i++) CHECK(text[i] >= '0' && text[i] <= '9');
}

/* format(key) parses back, by both entry points, to key. */
static void check_format_parses_back(const uint8_t key[RN_HASH_KEY_BYTES], char text[RN_HASH_KEY_STRLEN]) {
  memset(text, 'x', RN_HASH_KEY_STRLEN);
  rn_hash_key_format(key, text);
  CHECK(memchr(text, '\0', RN_HASH_KEY_STRLEN) != NULL);
  check_canonical(text);
  uint8_t back[RN_HASH_KEY_BYTES];
  CHECK(rn_hash_key_parse_n(text, strlen(text), back) == 0);
  CHECK(memcmp(back, key, RN_HASH_KEY_BYTES) == 0);
  memset(back, 0xa5, sizeof back);
  CHECK(rn_hash_key_parse(text, back) == 0);
  CHECK(memcmp(back, key, RN_HASH_KEY_BYTES) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  uint8_t key[RN_HASH_KEY_BYTES];
  memset(key, 0x5a, sizeof key);
  rn_err_t err = rn_hash_key_parse_n(size ? s : NULL, size, key);
  int want = accepted_by_rule(s, size);
  char text[RN_HASH_KEY_STRLEN];
  if (err) {
    CHECK(err == RN_EINVAL);
    CHECK(!want);
    for (size_t i = 0; i < sizeof key; i++) CHECK(key[i] == 0x5a);
  } else {
    CHECK(want);
    /* parse -> format is the identity on accepted text ... */
    check_format_parses_back(key, text);
    CHECK(strlen(text) == size && memcmp(text, s, size) == 0);
  }

  /* The NUL-terminated entry point agrees wherever the input is a C string. */
  if (size == 0 || memchr(data, '\0', size) == NULL) {
    char *z = malloc(size + 1);
    CHECK(z != NULL);
    if (size) memcpy(z, data, size);
    z[size] = '\0';
    uint8_t kz[RN_HASH_KEY_BYTES];
    rn_err_t ez = rn_hash_key_parse(z, kz);
    CHECK(ez == err);
    if (!ez) CHECK(memcmp(kz, key, sizeof kz) == 0);
    free(z);
  }

  /* ... and format -> parse the identity on every key. */
  if (size >= RN_HASH_KEY_BYTES) check_format_parses_back(data, text);
  return 0;
}
