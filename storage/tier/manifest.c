/*
 * manifest.c — the per-shard manifest: a pure codec of its records and the
 * state they describe (tier_int.h). No I/O here: tier.c writes the records
 * to "<shard dir>/tier.manifest" and mirrors snapshots to the bucket.
 *
 * Invariants the state keeps (rn_mf_apply refuses what breaks them):
 *   - entries are sorted by base and do not overlap;
 *   - only the last entry may be not uploaded (uploads run one at a time
 *     per shard, in offset order);
 *   - start only grows.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "tier_int.h"

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

#define HDR 4u
#define SUM 8u

static size_t payload_len(uint8_t type) {
  switch (type) {
  case RN_MF_STARTED: return 36;
  case RN_MF_UPLOADED:
  case RN_MF_DELETED:
  case RN_MF_START: return 8;
  default: return 0;
  }
}

size_t rn_mf_encode(const rn_mf_rec_t *r, uint8_t *out) {
  size_t pl = payload_len((uint8_t)r->type);
  if (!pl) return 0;
  out[0] = (uint8_t)r->type;
  out[1] = 1;
  out[2] = (uint8_t)pl;
  out[3] = 0;
  uint8_t *p = out + HDR;
  put64(p, r->base);
  if (r->type == RN_MF_STARTED) {
    put64(p + 8, r->next);
    put64(p + 16, r->bytes);
    put64(p + 24, (uint64_t)r->max_ts);
    for (int i = 0; i < 4; i++) p[32 + i] = (uint8_t)(r->epoch >> (8 * i));
  }
  put64(out + HDR + pl, XXH3_64bits(out, HDR + pl));
  return HDR + pl + SUM;
}

rn_err_t rn_mf_decode(const uint8_t *p, size_t len, rn_mf_rec_t *r, size_t *used) {
  *used = 0;
  if (len < HDR) return RN_EPARTIAL;
  size_t pl = payload_len(p[0]);
  if (!pl || p[1] != 1 || p[2] != pl || p[3] != 0) return RN_ECORRUPT;
  if (len < HDR + pl + SUM) return RN_EPARTIAL;
  if (get64(p + HDR + pl) != XXH3_64bits(p, HDR + pl)) return RN_ECORRUPT;
  memset(r, 0, sizeof(*r));
  r->type = (rn_mf_type_t)p[0];
  const uint8_t *q = p + HDR;
  r->base = get64(q);
  if (r->type == RN_MF_STARTED) {
    r->next = get64(q + 8);
    r->bytes = get64(q + 16);
    r->max_ts = (int64_t)get64(q + 24);
    r->epoch = (uint32_t)q[32] | (uint32_t)q[33] << 8 | (uint32_t)q[34] << 16 | (uint32_t)q[35] << 24;
    if (r->next <= r->base) return RN_ECORRUPT; /* a segment holds at least one record */
  }
  *used = HDR + pl + SUM;
  return 0;
}

static int find_idx(const rn_mf_t *m, uint64_t base) {
  uint32_t lo = 0, hi = m->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (m->segs[mid].base < base)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < m->n && m->segs[lo].base == base ? (int)lo : -1;
}

rn_err_t rn_mf_apply(rn_mf_t *m, const rn_mf_rec_t *r, char *why, size_t whylen) {
  switch (r->type) {
  case RN_MF_STARTED: {
    rn_mf_seg_t s = {r->base, r->next, r->bytes, r->max_ts, r->epoch, false};
    if (m->n) {
      rn_mf_seg_t *last = &m->segs[m->n - 1];
      if (!last->uploaded && last->base == r->base) { /* the same upload started again */
        *last = s;
        break;
      }
      if (!last->uploaded) {
        snprintf(why, whylen, "STARTED %" PRIu64 " while segment %" PRIu64 " is still uploading", r->base, last->base);
        return RN_ECORRUPT;
      }
      if (r->base < last->next) {
        snprintf(why, whylen, "STARTED %" PRIu64 " overlaps uploaded segment %" PRIu64 "-%" PRIu64, r->base,
                 last->base, last->next);
        return RN_ECORRUPT;
      }
    }
    if (m->n == m->cap) {
      uint32_t nc = m->cap ? m->cap * 2 : 16;
      rn_mf_seg_t *ns = realloc(m->segs, nc * sizeof(*ns));
      if (!ns) return RN_ENOMEM;
      m->segs = ns;
      m->cap = nc;
    }
    m->segs[m->n++] = s;
    break;
  }
  case RN_MF_UPLOADED: {
    int i = find_idx(m, r->base);
    if (i < 0) {
      snprintf(why, whylen, "UPLOADED %" PRIu64 " of a segment never STARTED", r->base);
      return RN_ECORRUPT;
    }
    m->segs[i].uploaded = true;
    break;
  }
  case RN_MF_DELETED: {
    int i = find_idx(m, r->base);
    if (i >= 0) { /* a repeated delete is harmless */
      memmove(&m->segs[i], &m->segs[i + 1], (m->n - (uint32_t)i - 1) * sizeof(*m->segs));
      m->n--;
    }
    break;
  }
  case RN_MF_START:
    if (r->base > m->start) m->start = r->base;
    break;
  default: snprintf(why, whylen, "record type %d", (int)r->type); return RN_ECORRUPT;
  }
  m->records++;
  return 0;
}

rn_err_t rn_mf_parse(rn_mf_t *m, const uint8_t *buf, size_t len, size_t *valid, char *why, size_t whylen) {
  size_t at = 0;
  while (at < len) {
    rn_mf_rec_t r;
    size_t used;
    rn_err_t err = rn_mf_decode(buf + at, len - at, &r, &used);
    if (err) {
      if (len - at < RN_MF_TAIL_MAX) break; /* a torn last write */
      snprintf(why, whylen, "damaged record at byte %zu of %zu", at, len);
      return RN_ECORRUPT;
    }
    char w[200];
    err = rn_mf_apply(m, &r, w, sizeof(w));
    if (err) {
      snprintf(why, whylen, "record at byte %zu: %s", at, err == RN_ENOMEM ? "out of memory" : w);
      return err;
    }
    at += used;
  }
  *valid = at;
  return 0;
}

rn_err_t rn_mf_snapshot(const rn_mf_t *m, uint8_t **out, size_t *len) {
  size_t cap = (size_t)(2 * m->n + 1) * RN_MF_REC_MAX;
  uint8_t *b = malloc(cap), *p = b;
  if (!b) return RN_ENOMEM;
  if (m->start) p += rn_mf_encode(&(rn_mf_rec_t){.type = RN_MF_START, .base = m->start}, p);
  for (uint32_t i = 0; i < m->n; i++) {
    const rn_mf_seg_t *s = &m->segs[i];
    p += rn_mf_encode(&(rn_mf_rec_t){RN_MF_STARTED, s->base, s->next, s->bytes, s->max_ts, s->epoch}, p);
    if (s->uploaded) p += rn_mf_encode(&(rn_mf_rec_t){.type = RN_MF_UPLOADED, .base = s->base}, p);
  }
  *out = b;
  *len = (size_t)(p - b);
  return 0;
}

const rn_mf_seg_t *rn_mf_find(const rn_mf_t *m, uint64_t offset) {
  uint32_t lo = 0, hi = m->n;
  while (lo < hi) { /* the first entry with base > offset */
    uint32_t mid = lo + (hi - lo) / 2;
    if (m->segs[mid].base <= offset)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (!lo) return NULL;
  const rn_mf_seg_t *s = &m->segs[lo - 1];
  return offset < s->next ? s : NULL;
}

uint64_t rn_mf_uploaded_end(const rn_mf_t *m) {
  for (uint32_t i = m->n; i > 0; i--)
    if (m->segs[i - 1].uploaded) return m->segs[i - 1].next;
  return 0;
}

void rn_mf_free(rn_mf_t *m) {
  free(m->segs);
  memset(m, 0, sizeof(*m));
}
