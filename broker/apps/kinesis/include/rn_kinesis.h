/*
 * rn_kinesis.h — the Kinesis Data Streams JSON 1.1 application of runneld's
 * HTTP port (X-Amz-Target: Kinesis_20131202.*, SigV4; docs/kinesis.md): the
 * operations over the engine, the Kinesis tags / stream-mode file, the
 * per-shard throughput limits, and the produce path REST ingest shares. It
 * talks to the engine through its C API (rn_core.h) only.
 * Library rn_kinesis, above rn_admin (it answers through rn_admin_reply*
 * and counts into rn_admin_counters) and rn_kinesis_codec (the pure codecs,
 * rn_kinesis_codec.h, included here).
 *
 * Threading: the loop thread that runs the engine, for everything here.
 */
#ifndef RN_KINESIS_H
#define RN_KINESIS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rn_core.h"
#include "rn_admin.h"
#include "rn_kinesis_codec.h"
#include "runnel/error.h"

typedef struct rn_kinesis rn_kinesis_t;

/* The Kinesis application's options (runneld fills them from its config:
 * rn_server_apps_opts, server.h). Strings are borrowed for the call only. */
typedef struct rn_kinesis_opts {
  const char *data_dir;    /* the tags/stream-mode file is <data_dir>/meta/kinesis-streams.json */
  const char *credentials; /* kinesis_credentials: "AKID:secret,..."; "" = accept any request */
  bool throughput_limits;  /* kinesis_throughput_limits: kinesis */
  uint32_t max_record_bytes, max_batch_bytes, max_shards;
} rn_kinesis_opts_t;

/* Create from opts: SigV4 credentials (none = accept any request),
 * throughput limits, record and batch limits, the tags/stream-mode file under <data_dir>/meta (read here,
 * blocking: call at startup), and a fresh random secret for shard
 * iterators. loop, core and adm are borrowed and must outlive the result.
 * Returns 0 with *out owned by the caller, or RN_EINVAL (a bad credential
 * list; why says which entry), RN_ECORRUPT (an unreadable tags file), RN_EIO
 * (no randomness), RN_ENOMEM. */
rn_err_t rn_kinesis_new(uv_loop_t *loop, rn_core_t *core, rn_admin_t *adm, const rn_kinesis_opts_t *opts,
                        rn_kinesis_t **out, char *why, size_t whylen);

/* Free. Call when no request is in flight; runs the loop until its own
 * pending writes of the tags file finished. NULL ok. */
void rn_kinesis_destroy(rn_kinesis_t *kin);

/* true when no credentials are configured: any request is accepted. */
bool rn_kinesis_open(const rn_kinesis_t *kin);

/* The wall clock (ms since the epoch) behind iterators, their expiry and
 * the throughput buckets; the default reads CLOCK_REALTIME. Tests replace
 * it. arg is borrowed. */
void rn_kinesis_set_clock(rn_kinesis_t *kin, int64_t (*now_ms)(void *arg), void *arg);

/* Answer a request carrying X-Amz-Target (target; NULL for POST / without
 * one: UnknownOperationException). Takes c. */
void rn_kinesis_handle(rn_kinesis_t *kin, rn_admin_call_t *c, const char *target);

/* ---- the shared produce path ---------------------------------------------------------- */

/* The shared produce path (PutRecord(s), REST ingest): describe the stream,
 * route every record (MD5 of the partition key or its explicit hash key)
 * to its shard, apply throughput limits, build one batch per shard, append
 * and wait for the stream's durability. Records are borrowed until cb. */
typedef struct rn__prod_result {
  uint32_t shard;
  uint64_t offset;
  rn_kinesis_err_t err_type; /* RN_KERR_NONE = stored; else why not */
  const char *err_msg;  /* lives until the produce is freed (after cb) */
  /* With err_type InternalFailure: the broker failed for a transient reason
   * (disk full, out of file descriptors) and stored nothing; a call about
   * this record alone (PutRecord, REST single record) answers 503
   * ServiceUnavailable, which SDKs retry. docs/kinesis.md, "Errors". */
  bool retry_later;
} rn__prod_result_t;

typedef struct rn__produce {
  /* request-level failure: err_type set (not RN_KERR_NONE), no record was stored */
  rn_kinesis_err_t err_type;
  char err_msg[512];
  int64_t created_ms; /* the stream's creation time (for sequence numbers) */
  size_t n, failed;
  rn__prod_result_t *res; /* n */
  void *priv;
} rn__produce_t;

typedef void (*rn__produce_cb)(rn__produce_t *p, void *arg);
/* cb runs exactly once (possibly before this returns); p is freed after cb. */
void rn_kinesis_produce(rn_kinesis_t *kin, const char *stream, const rn__krec_t *recs, size_t n, rn__produce_cb cb,
                        void *arg);

#endif
