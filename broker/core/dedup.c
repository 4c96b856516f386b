/*
 * dedup.c — a stream's dedup window (dedup.h, docs/dedup.md): a ring of
 * entries in arrival order plus a linear-probing index of ring positions.
 *
 * Invariants: every live (not dead) entry in the ring is in the index
 * exactly once; the index has twice the ring's slots, so its load is at
 * most 1/2; live <= max_ids after every insert. Expiry and eviction pop the
 * ring's head (the oldest); a removed entry stays in the ring as dead until
 * it reaches the head. Growth doubles the ring (unwrapping it) and rebuilds
 * the index: amortised O(1) per insert.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "dedup.h"

#define RING_MIN 256u

rn__dedup_hash_t rn__dedup_hash(const void *id, size_t len) {
  XXH128_hash_t x = XXH3_128bits(id, len);
  rn__dedup_hash_t h = {x.low64, x.high64};
  if (h.lo == 0 && h.hi == 0) h.lo = 1; /* 0/0 marks nothing, but keep hashes non-zero anyway */
  return h;
}

static bool alloc_tables(rn__dedup_t *d, uint32_t ring_cap) {
  rn__dedup_entry_t *ring = calloc(ring_cap, sizeof(*ring));
  uint32_t *index = calloc((size_t)ring_cap * 2, sizeof(*index));
  if (!ring || !index) {
    free(ring);
    free(index);
    return false;
  }
  d->ring = ring;
  d->index = index;
  d->ring_cap = ring_cap;
  d->idx_cap = ring_cap * 2;
  return true;
}

rn__dedup_t *rn__dedup_new(int64_t window_ms, uint32_t max_ids) {
  rn__dedup_t *d = calloc(1, sizeof(*d));
  if (!d) return NULL;
  d->window_ms = window_ms;
  d->max_ids = max_ids ? max_ids : 1;
  if (!alloc_tables(d, RING_MIN)) {
    free(d);
    return NULL;
  }
  return d;
}

void rn__dedup_free(rn__dedup_t *d) {
  if (!d) return;
  free(d->ring);
  free(d->index);
  free(d);
}

size_t rn__dedup_bytes(const rn__dedup_t *d) {
  return sizeof(*d) + (size_t)d->ring_cap * sizeof(*d->ring) + (size_t)d->idx_cap * sizeof(*d->index);
}

static inline uint32_t home(const rn__dedup_t *d, uint64_t lo) { return (uint32_t)(lo & (d->idx_cap - 1)); }

static void index_put(rn__dedup_t *d, uint32_t pos) {
  uint32_t m = d->idx_cap - 1;
  uint32_t i = home(d, d->ring[pos].lo);
  while (d->index[i]) i = (i + 1) & m;
  d->index[i] = pos + 1;
}

/* The index slot holding h, or UINT32_MAX. */
static uint32_t index_slot(const rn__dedup_t *d, rn__dedup_hash_t h) {
  uint32_t m = d->idx_cap - 1;
  for (uint32_t i = home(d, h.lo);; i = (i + 1) & m) {
    uint32_t v = d->index[i];
    if (!v) return UINT32_MAX;
    const rn__dedup_entry_t *e = &d->ring[v - 1];
    if (e->lo == h.lo && e->hi == h.hi) return i;
  }
}

/* Remove index slot i by backward shift (no tombstones in the index). */
static void index_del(rn__dedup_t *d, uint32_t i) {
  uint32_t m = d->idx_cap - 1;
  for (uint32_t j = (i + 1) & m; d->index[j]; j = (j + 1) & m) {
    uint32_t k = home(d, d->ring[d->index[j] - 1].lo);
    /* j's entry may move to i unless its home lies cyclically in (i, j]. */
    bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      d->index[i] = d->index[j];
      i = j;
    }
  }
  d->index[i] = 0;
}

static void unindex(rn__dedup_t *d, uint32_t pos) {
  rn__dedup_entry_t *e = &d->ring[pos];
  rn__dedup_hash_t h = {e->lo, e->hi};
  uint32_t i = index_slot(d, h);
  if (i != UINT32_MAX && d->index[i] == pos + 1) index_del(d, i);
}

/* Drop the ring's head. */
static void pop_head(rn__dedup_t *d, bool evicted) {
  rn__dedup_entry_t *e = &d->ring[d->head];
  if (!e->dead) {
    unindex(d, d->head);
    d->live--;
    if (evicted) d->evictions++;
  }
  memset(e, 0, sizeof(*e));
  d->head = (d->head + 1) & (d->ring_cap - 1);
  d->used--;
}

void rn__dedup_expire(rn__dedup_t *d, int64_t now_ms) {
  int64_t cutoff = now_ms - d->window_ms;
  while (d->used && (d->ring[d->head].dead || d->ring[d->head].arrival_ms < cutoff)) pop_head(d, false);
}

rn__dedup_entry_t *rn__dedup_find(rn__dedup_t *d, rn__dedup_hash_t h, int64_t now_ms) {
  rn__dedup_expire(d, now_ms); /* pops from the head: O(1) amortised */
  uint32_t i = index_slot(d, h);
  if (i == UINT32_MAX) return NULL;
  rn__dedup_entry_t *e = &d->ring[d->index[i] - 1];
  if (e->arrival_ms < now_ms - d->window_ms) return NULL; /* expired, not popped yet */
  return e;
}

static bool grow(rn__dedup_t *d) {
  if (d->ring_cap > (UINT32_MAX >> 2)) return false;
  rn__dedup_t n = *d;
  if (!alloc_tables(&n, d->ring_cap * 2)) return false;
  for (uint32_t k = 0; k < d->used; k++) n.ring[k] = d->ring[(d->head + k) & (d->ring_cap - 1)];
  n.head = 0;
  for (uint32_t k = 0; k < n.used; k++)
    if (!n.ring[k].dead) index_put(&n, k);
  free(d->ring);
  free(d->index);
  *d = n;
  return true;
}

rn__dedup_entry_t *rn__dedup_insert(rn__dedup_t *d, rn__dedup_hash_t h, uint32_t shard, uint64_t offset,
                                    int64_t arrival_ms, void *pending) {
  /* An expired entry of h that expiry has not reached yet (the clock
   * stepped back): replaced, so the index holds each hash once. */
  uint32_t old = index_slot(d, h);
  if (old != UINT32_MAX) {
    rn__dedup_entry_t *e = &d->ring[d->index[old] - 1];
    index_del(d, old);
    e->dead = 1;
    e->pending = NULL;
    d->live--;
  }
  while (d->live >= d->max_ids && d->used) pop_head(d, true);
  while (d->used && d->ring[d->head].dead) pop_head(d, false);
  if (d->used == d->ring_cap && !grow(d)) return NULL;
  uint32_t pos = (d->head + d->used) & (d->ring_cap - 1);
  rn__dedup_entry_t *e = &d->ring[pos];
  *e = (rn__dedup_entry_t){.lo = h.lo, .hi = h.hi, .offset = offset, .arrival_ms = arrival_ms, .shard = shard,
                           .pending = pending};
  d->used++;
  d->live++;
  index_put(d, pos);
  return e;
}

rn__dedup_entry_t *rn__dedup_owned(rn__dedup_t *d, rn__dedup_hash_t h, const void *pending) {
  uint32_t i = index_slot(d, h);
  if (i == UINT32_MAX) return NULL;
  rn__dedup_entry_t *e = &d->ring[d->index[i] - 1];
  return e->pending == pending ? e : NULL;
}

void rn__dedup_remove(rn__dedup_t *d, rn__dedup_hash_t h, const void *pending) {
  uint32_t i = index_slot(d, h);
  if (i == UINT32_MAX) return;
  rn__dedup_entry_t *e = &d->ring[d->index[i] - 1];
  if (e->pending != pending) return;
  index_del(d, i);
  e->dead = 1;
  e->pending = NULL;
  d->live--;
}
