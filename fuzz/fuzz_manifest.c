/*
 * fuzz_manifest.c — libFuzzer target for the tier manifest codec and state
 * (storage/tier/manifest.c).
 *
 * Each input is tried as a manifest file as given, and as a sequence of
 * records re-encoded from it (6 bytes of input per record: type and fields
 * drawn from them), which gets past the checksums into the state rules. For
 * every input that parses, the target checks what the codec promises:
 *   - every record the decoder accepts re-encodes to the very same bytes
 *     (one encoding per record);
 *   - the state keeps its invariants: entries sorted, not overlapping, only
 *     the last one not uploaded;
 *   - the snapshot parses back to the same state, whole (nothing torn).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tier_int.h"

static void check_state(const rn_mf_t *m) {
  for (uint32_t i = 0; i < m->n; i++) {
    CHECK(m->segs[i].next > m->segs[i].base);
    if (i) CHECK(m->segs[i].base >= m->segs[i - 1].next);
    if (i + 1 < m->n) CHECK(m->segs[i].uploaded);
  }
  uint8_t *snap;
  size_t len, valid;
  CHECK(rn_mf_snapshot(m, &snap, &len) == 0);
  rn_mf_t back = {0};
  char why[200];
  CHECK(rn_mf_parse(&back, snap, len, &valid, why, sizeof(why)) == 0);
  CHECK(valid == len);
  CHECK(back.n == m->n && back.start == m->start);
  CHECK(m->n == 0 || memcmp(back.segs, m->segs, m->n * sizeof(*m->segs)) == 0);
  rn_mf_free(&back);
  free(snap);
}

static void try_file(const uint8_t *data, size_t size) {
  rn_mf_t m = {0};
  size_t valid = 0;
  char why[200];
  if (rn_mf_parse(&m, data, size, &valid, why, sizeof(why)) == 0) {
    CHECK(valid <= size);
    CHECK(size - valid < RN_MF_TAIL_MAX || valid == size);
    /* Canonical: each accepted record re-encodes identically. */
    size_t at = 0;
    while (at < valid) {
      rn_mf_rec_t r;
      size_t used;
      CHECK(rn_mf_decode(data + at, valid - at, &r, &used) == 0);
      uint8_t re[RN_MF_REC_MAX];
      CHECK(rn_mf_encode(&r, re) == used);
      CHECK(memcmp(re, data + at, used) == 0);
      at += used;
    }
    check_state(&m);
  }
  rn_mf_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try_file(data, size);
  /* Records drawn from the input: 6 bytes each. */
  size_t n = size / 6;
  uint8_t *buf = malloc(n * RN_MF_REC_MAX + 1);
  if (!buf) return 0;
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = data + 6 * i;
    rn_mf_rec_t r = {.type = (rn_mf_type_t)(1 + p[0] % 4), .base = (uint64_t)p[1] * 16 + p[2] % 16};
    r.next = r.base + 1 + p[3] % 64;
    r.bytes = p[4];
    r.max_ts = (int64_t)p[5] - 128;
    r.epoch = p[0] >> 4;
    len += rn_mf_encode(&r, buf + len);
  }
  try_file(buf, len);
  free(buf);
  return 0;
}
