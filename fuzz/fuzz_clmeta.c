/*
 * fuzz_clmeta.c — libFuzzer target for the cluster's etcd values and keys
 * (broker/cluster/plan.h: rn_cl_*_decode, rn_cl_key_parse): bytes etcd hands
 * back, which any writer with access to etcd (or a bug in an older broker)
 * may have put there. Input: byte 0 picks the decoder (shard, broker,
 * stream, controller, ineligible, key), the rest is the value (exactly
 * size - 1 bytes, not NUL-terminated). Checked promises (a violation aborts):
 *   - a rejection is RN_EINVAL (or RN_ENOMEM) with a NUL-terminated one-line
 *     reason of printable ASCII naming the record, never truncated, and the
 *     output left all zero;
 *   - an accepted record passes its _check, encodes, and the encoding
 *     decodes to the same bytes (the decoder zeroes padding and unused
 *     slots, so memcmp is exact);
 *   - an accepted key formats back to exactly the input.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "plan.h"

typedef rn_err_t (*dec_fn)(const uint8_t *, size_t, void *, char *, size_t);
typedef rn_err_t (*enc_fn)(const void *, char *, size_t, size_t *);
typedef rn_err_t (*chk_fn)(const void *, char *, size_t);

#define WRAP(T, rec)                                                                                          \
  static rn_err_t dec_##rec(const uint8_t *d, size_t n, void *o, char *w, size_t l) {                          \
    return rn_cl_##rec##_decode(d, n, (T *)o, w, l);                                                         \
  }                                                                                                           \
  static rn_err_t enc_##rec(const void *r, char *b, size_t c, size_t *n) { return rn_cl_##rec##_encode(r, b, c, n); } \
  static rn_err_t chk_##rec(const void *r, char *w, size_t l) { return rn_cl_##rec##_check(r, w, l); }

WRAP(rn_cl_shard_t, shard)
WRAP(rn_cl_broker_t, broker)
WRAP(rn_cl_stream_t, stream)
WRAP(rn_cl_controller_t, controller)
WRAP(rn_cl_ineligible_t, ineligible)

static const struct {
  const char *name;
  size_t size;
  dec_fn dec;
  enc_fn enc;
  chk_fn chk;
} kinds[] = {
    {"shard", sizeof(rn_cl_shard_t), dec_shard, enc_shard, chk_shard},
    {"broker", sizeof(rn_cl_broker_t), dec_broker, enc_broker, chk_broker},
    {"stream", sizeof(rn_cl_stream_t), dec_stream, enc_stream, chk_stream},
    {"controller", sizeof(rn_cl_controller_t), dec_controller, enc_controller, chk_controller},
    {"ineligible", sizeof(rn_cl_ineligible_t), dec_ineligible, enc_ineligible, chk_ineligible},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static void check_why(const char *why, size_t cap, const char *name) {
  const char *end = memchr(why, '\0', cap);
  CHECK(end != NULL);
  CHECK((size_t)(end - why) < cap - 1); /* never truncated */
  for (const char *p = why; p < end; p++) CHECK(*p >= 0x20 && *p < 0x7f);
  CHECK(strncmp(why, name, strlen(name)) == 0 && why[strlen(name)] == ':');
}

static void fuzz_key(const uint8_t *data, size_t len) {
  rn_cl_key_t k;
  static const char *const roots[] = {NULL, "/r", "/a/b.c"};
  for (size_t r = 0; r < 3; r++) {
    rn_err_t rc = rn_cl_key_parse(roots[r], (const char *)data, len, &k);
    if (rc != 0) {
      CHECK(rc == RN_EINVAL);
      CHECK(k.kind == 0);
      continue;
    }
    char buf[RN_CL_KEY_MAX];
    size_t n = 0;
    CHECK(rn_cl_key_format(roots[r], &k, buf, sizeof buf, &n) == 0);
    CHECK(n == len && memcmp(buf, data, len) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  if (size < 1) return 0;
  const uint8_t *data = in + 1;
  size_t len = size - 1;
  unsigned pick = in[0] % (NKINDS + 1);
  if (pick == NKINDS) {
    fuzz_key(data, len);
    return 0;
  }
  /* a private copy, so reading past len would be seen by ASan */
  uint8_t *copy = malloc(len ? len : 1);
  if (copy == NULL) return 0;
  if (len) memcpy(copy, data, len);
  unsigned char out[1024], back[1024], zero[1024];
  memset(zero, 0, sizeof zero);
  memset(out, 0xa5, sizeof out);
  char why[RN_CL_WHY_MAX];
  memset(why, 'x', sizeof why);
  rn_err_t rc = kinds[pick].dec(copy, len, out, why, sizeof why);
  free(copy);
  if (rc != 0) {
    CHECK(rc == RN_EINVAL || rc == RN_ENOMEM);
    check_why(why, sizeof why, kinds[pick].name);
    CHECK(memcmp(out, zero, kinds[pick].size) == 0);
    return 0;
  }
  CHECK(kinds[pick].chk(out, NULL, 0) == 0);
  char enc[RN_CL_VALUE_MAX];
  size_t n = 0;
  CHECK(kinds[pick].enc(out, enc, sizeof enc, &n) == 0);
  CHECK(n == strlen(enc));
  CHECK(kinds[pick].dec((const uint8_t *)enc, n, back, why, sizeof why) == 0);
  CHECK(memcmp(out, back, kinds[pick].size) == 0);
  return 0;
}
