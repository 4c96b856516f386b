/*
 * dedup.h — private to broker/core: a stream's dedup window (dedup.c) and
 * the id extraction from a record's data (dedup_json.c). docs/dedup.md.
 *
 * The window maps a 128-bit hash of a record id (XXH3_128) to where the
 * first copy was stored (shard, offset) and when it arrived. Entries live
 * in a ring in insertion order (which is arrival order, since the loop
 * inserts as records arrive; the rebuild at open inserts sorted by
 * arrival), indexed by an open-addressing table of ring positions. They
 * expire by arrival time (rn__dedup_expire, and lazily on lookup); when
 * max_ids are held the oldest is evicted early (counted). Memory grows by
 * doubling with use and is bounded by max_ids.
 *
 * An entry may be pending: its append is in flight, owned by the token
 * `pending` (core's produce item). A second copy then waits for that
 * append; when it completes the entry is settled (kept) or removed (the
 * append failed). Loop thread only (or the opening thread at open).
 */
#ifndef RN_CORE_DEDUP_H
#define RN_CORE_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runnel/error.h"

typedef struct rn__dedup_hash {
  uint64_t lo, hi;
} rn__dedup_hash_t;

typedef struct rn__dedup_entry {
  uint64_t lo, hi;      /* the hash; lo == hi == 0 with dead: a removed entry */
  uint64_t offset;
  int64_t arrival_ms;
  uint32_t shard;
  uint32_t dead;        /* removed (a failed append); skipped, not indexed */
  void *pending;        /* the in-flight append storing it; NULL = acknowledged */
} rn__dedup_entry_t;

typedef struct rn__dedup {
  int64_t window_ms;
  uint32_t max_ids;
  rn__dedup_entry_t *ring; /* ring_cap entries, power of two */
  uint32_t ring_cap, head, used; /* used: ring slots taken (dead ones included) */
  uint32_t live;                 /* indexed entries */
  uint32_t *index;               /* idx_cap = 2 * ring_cap slots: ring position + 1, 0 = empty */
  uint32_t idx_cap;
  uint64_t evictions;
} rn__dedup_t;

/* The hash of an id (XXH3_128). Any thread. */
rn__dedup_hash_t rn__dedup_hash(const void *id, size_t len);

/* A window of window_ms (> 0) holding at most max_ids (>= 1) ids. NULL on OOM. */
rn__dedup_t *rn__dedup_new(int64_t window_ms, uint32_t max_ids);
void rn__dedup_free(rn__dedup_t *d); /* NULL ok */

/* Drop the entries that arrived before now_ms - window_ms. */
void rn__dedup_expire(rn__dedup_t *d, int64_t now_ms);

/* The live entry of h that arrived at or after now_ms - window_ms, or NULL.
 * Valid until the next insert, remove or expire. */
rn__dedup_entry_t *rn__dedup_find(rn__dedup_t *d, rn__dedup_hash_t h, int64_t now_ms);

/* Add h as the newest entry (callers find first: an entry of h still in
 * the window is replaced). Evicts the
 * oldest when max_ids are held. Returns the entry (valid as find's) or
 * NULL on OOM (then the window is unchanged). */
rn__dedup_entry_t *rn__dedup_insert(rn__dedup_t *d, rn__dedup_hash_t h, uint32_t shard, uint64_t offset,
                                    int64_t arrival_ms, void *pending);

/* h's entry while it is still owned by pending (the caller then settles
 * it: pending = NULL, or fixes its offset), else NULL: gone (expired,
 * evicted) or another append's. remove drops it when owned by pending (the
 * append failed). */
rn__dedup_entry_t *rn__dedup_owned(rn__dedup_t *d, rn__dedup_hash_t h, const void *pending);
void rn__dedup_remove(rn__dedup_t *d, rn__dedup_hash_t h, const void *pending);

static inline uint32_t rn__dedup_count(const rn__dedup_t *d) { return d->live; }
/* Bytes allocated by the window now (ring and index). */
size_t rn__dedup_bytes(const rn__dedup_t *d);

/* Find the JSON member at path ("a" or "a.b.c": each part a member name of
 * an object, matched against the raw key bytes) in data, which must be one
 * complete JSON value that is an object (whitespace around it allowed).
 * A string member gives its raw bytes between the quotes (escapes as
 * written); a number gives its text. Returns true with *id and *idlen pointing
 * into data; false when data is not valid JSON, not an object, the member
 * is missing, or its value is another type (object, array, true, false,
 * null). Pure; nesting deeper than 64 is refused. */
bool rn__dedup_json_field(const uint8_t *data, size_t len, const char *path, const uint8_t **id, size_t *idlen);

#endif
