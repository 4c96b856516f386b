/*
 * tier_int.h — private to storage/tier/: the manifest codec and state
 * (manifest.c), shared by the tiering code (tier.c), its tests and its fuzz
 * target. Nothing outside storage/tier/ and its tests includes it.
 */
#ifndef RN_TIER_INT_H
#define RN_TIER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_tier.h"
#include "runnel/error.h"

/* ---- the manifest: records ---------------------------------------------------
 *
 * A shard's manifest is an append-only stream of self-checking records,
 * little-endian:
 *   u8 type | u8 version (1) | u16 payload length | payload | u64 XXH3 of
 *   everything before it in the record
 * Payloads:
 *   STARTED  u64 base, u64 next, u64 bytes, i64 max_ts, u32 epoch  (36 bytes)
 *   UPLOADED u64 base                                              (8)
 *   DELETED  u64 base                                              (8)
 *   START    u64 offset                                            (8)
 * The encoding is canonical: a decoder accepts exactly what the encoder
 * writes (the fuzz target checks it). */

typedef enum { RN_MF_STARTED = 1, RN_MF_UPLOADED = 2, RN_MF_DELETED = 3, RN_MF_START = 4 } rn_mf_type_t;

typedef struct rn_mf_rec {
  rn_mf_type_t type;
  uint64_t base;   /* STARTED/UPLOADED/DELETED: the segment; START: the offset */
  uint64_t next;   /* STARTED only, as the rest */
  uint64_t bytes;
  int64_t max_ts;
  uint32_t epoch;
} rn_mf_rec_t;

#define RN_MF_REC_MAX 48 /* the largest encoded record */
/* A writer appends at most this many records with one write, so a write
 * torn by a crash damages at most RN_MF_TAIL_MAX bytes at the end. */
#define RN_MF_WRITE_RECS 8
#define RN_MF_TAIL_MAX (RN_MF_WRITE_RECS * RN_MF_REC_MAX)

/* Encode r into out[RN_MF_REC_MAX]; returns its length (0 for a bad type). */
size_t rn_mf_encode(const rn_mf_rec_t *r, uint8_t *out);
/* Decode the record at p[0, len). Returns 0 (*used = its length),
 * RN_EPARTIAL (p holds a prefix of a record: *used = 0) or RN_ECORRUPT. */
rn_err_t rn_mf_decode(const uint8_t *p, size_t len, rn_mf_rec_t *r, size_t *used);

/* ---- the manifest: state ----------------------------------------------------
 *
 * What the records say, applied in order: the shard's remote segments in
 * offset order (the last may be only STARTED: at most one upload per shard
 * runs, in offset order) and the total start. Entries below start are
 * uploaded segments whose remote delete (total retention) has not finished. */

typedef struct rn_mf_seg {
  uint64_t base, next, bytes;
  int64_t max_ts;
  uint32_t epoch;
  bool uploaded;
} rn_mf_seg_t;

typedef struct rn_mf {
  rn_mf_seg_t *segs; /* owned, sorted by base, non-overlapping */
  uint32_t n, cap;
  uint64_t start;    /* the shard's total start (START records); 0 none */
  uint64_t records;  /* records applied (the file's length in records) */
} rn_mf_t;

/* Apply one record. Returns 0, RN_ENOMEM, or RN_ECORRUPT with why for a
 * record that contradicts the state (UPLOADED of an unknown segment, a
 * STARTED that overlaps an uploaded one or goes backwards). */
rn_err_t rn_mf_apply(rn_mf_t *m, const rn_mf_rec_t *r, char *why, size_t whylen);
/* Apply every record of buf[0, len). A torn tail (an incomplete or damaged
 * record fewer than RN_MF_TAIL_MAX bytes before the end) ends the stream:
 * *valid = the bytes before it. Damage further from the end is RN_ECORRUPT
 * (with why: the position). */
rn_err_t rn_mf_parse(rn_mf_t *m, const uint8_t *buf, size_t len, size_t *valid, char *why, size_t whylen);
/* The state as the shortest record stream that rebuilds it (START, then per
 * segment STARTED and, when uploaded, UPLOADED): the compacted file and the
 * bucket's mirror. *out malloc'd. */
rn_err_t rn_mf_snapshot(const rn_mf_t *m, uint8_t **out, size_t *len);
/* The entry holding offset (base <= offset < next), or NULL. */
const rn_mf_seg_t *rn_mf_find(const rn_mf_t *m, uint64_t offset);
/* Offset after the last uploaded entry; 0 when none. */
uint64_t rn_mf_uploaded_end(const rn_mf_t *m);
void rn_mf_free(rn_mf_t *m);

/* ==== the tier and its shards (tier.c, reader.c) ============================== */

#define RN__TIER_KEY_MAX 1024
#define RN__TIER_PATH_MAX 2048
#define RN__MFQ_MAX 64 /* manifest records queued per shard */

/* A store operation in flight (tier.c): first member of every callback
 * context. t/ts NULL once detached (shard or tier closed): the callback
 * then only frees. */
typedef struct rn__op {
  rn_tier_t *t;
  rn_tier_shard_t *ts;
  struct rn__op *prev, *next;
  /* An op carrying a caller's callback sets this: detaching it (shard close,
   * destroy) calls it once, to answer that caller RN_ECANCELED now; the
   * store's late completion then only frees (op->t == NULL). */
  void (*cancel)(struct rn__op *op);
} rn__op_t;
rn__op_t *rn__op_new(rn_tier_t *t, rn_tier_shard_t *ts, size_t size);
void rn__op_done(rn__op_t *op);

typedef enum { RN__UP_IDLE = 0, RN__UP_STARTING, RN__UP_PUTTING, RN__UP_RECORDING, RN__UP_BACKOFF } rn__up_state_t;
const char *rn__up_state_name(rn__up_state_t s);

typedef struct rn__job rn__job_t;
typedef struct rn__chunk rn__chunk_t;
typedef struct rn__rop rn__rop_t;

struct rn_tier_shard {
  rn_tier_t *t;
  rn_log_t *log;
  char stream[130];
  char dir[RN__TIER_PATH_MAX - 64];
  char prefix[RN__TIER_KEY_MAX / 2]; /* "<hash8>/<cluster>/<stream>-<uid>/<shard>/" */
  uint64_t uid;
  uint32_t shard;
  int64_t retention_ms, retention_bytes, local_retention_ms, local_retention_bytes;
  bool closing;

  rn_mf_t mf;               /* what the manifest file durably says */
  uint64_t mf_size;         /* its valid length: the next write goes there */
  uint64_t mf_snap_records; /* records of the compaction in flight */
  bool mf_active;           /* a write (or compaction) in flight */
  rn_mf_rec_t mfq[RN__MFQ_MAX];
  void (*mfq_done[RN__MFQ_MAX])(rn_tier_shard_t *ts, rn_err_t err, const rn_mf_rec_t *r);
  unsigned mfq_len;
  unsigned io_inflight;     /* rn_io jobs holding ts */
  bool mirror_dirty, mirror_active;
  bool mirror_drain_failed; /* a mirror failed while the tier drains: no more tries */

  struct {
    rn__up_state_t state;
    rn_log_seg_info_t seg; /* the segment being uploaded */
    unsigned puts_pending;
    rn_err_t put_err;
    char put_msg[256];
    uint32_t backoff_ms;
    int64_t retry_ms, started_ms, warned_ms;
    unsigned failures;     /* consecutive */
  } up;

  bool start_active;        /* a START record in flight */
  bool del_active;          /* an entry's remote delete in flight */
  unsigned dels_pending;
  rn_err_t del_err;
  int64_t del_retry_ms;
  bool gc_active;

  uint64_t uploaded_bytes, uploaded_segments;
  rn_err_t last_err;
  char last_error[256];

  rn__rop_t *rops;          /* reads waiting (reader.c) */
  uint64_t seq_next;        /* where the last read ended: read-ahead for a sequential reader */
};

struct rn_tier {
  rn_tier_opts_t o;
  char cluster[64];
  rn_tier_shard_t **shards;
  uint32_t nshards, shards_cap, rr;
  uint32_t uploads_active;
  int64_t bw_next_ms;
  uint64_t rng;
  int64_t last_gc_ms;
  rn__op_t *ops;            /* store operations in flight */
  bool draining;            /* rn_tier_drain */
  rn__job_t *jobs;          /* stream-delete jobs */
  unsigned jobs_io;         /* rn_io jobs holding jobs or restores */

  /* reader.c: the chunk cache */
  rn__chunk_t **buckets;    /* hash of (shard, base, kind, index) */
  uint32_t nbuckets;
  rn__chunk_t *lru_head, *lru_tail; /* ready chunks, most recent first */
  uint64_t cache_used;
  unsigned gets_inflight, gets_inflight_max;
  uint64_t ahead_bytes;     /* chunks fetched ahead, not read yet (budget: cache_bytes / 2) */

  uint64_t bytes_uploaded, bytes_downloaded;
  uint64_t cache_hits, cache_misses, cache_evictions;
  uint64_t orphans_collected, remote_deletes, corrupt_objects;
  rn_err_t last_err;
  char last_error[256];
};

int64_t rn__tier_now(const rn_tier_t *t);
void rn__tier_shard_prefix(const rn_tier_t *t, const char *stream, uint64_t uid, uint32_t shard, char *out,
                           size_t cap);
/* kind: 0 ".index", 1 ".timeindex", 2 ".log" */
void rn__tier_seg_key(const rn_tier_shard_t *ts, uint64_t base, uint32_t epoch, int kind, char *out, size_t cap);

/* reader.c */
void rn__reader_shard_close(rn_tier_shard_t *ts); /* reads: RN_ECANCELED; its chunks dropped */
void rn__reader_tick(rn_tier_t *t, int64_t now);
void rn__reader_destroy(rn_tier_t *t);

#endif
