/*
 * rawclient.h — a deliberately small, blocking client of runneld's native
 * protocol for the integration tests, built on protobuf-c and the codecs of
 * rn_proto only (never librunnel: the tests must not share a client's bugs).
 *
 * One rn_raw_t is one TCP connection to 127.0.0.1:port. Requests are framed
 * (4-byte little-endian length + one runnel.Request) and written at once;
 * responses are read frame by frame and matched by correlation id, so a test
 * can pipeline (send a long-polling fetch, then more requests) and collect
 * the answers in any order. Responses that arrive for another correlation id
 * are queued until asked for.
 *
 * Errors: functions returning int give 0 or -errno (what the socket said,
 * so a test can assert on it). Functions returning a
 * Runnel__Response * give NULL when the connection closed or failed before
 * the answer came; otherwise the caller owns the response and frees it with
 * rn_raw_free. Reads block; a generous receive timeout (RN_RAW_RECV_TIMEOUT_S)
 * turns a broker that never answers into a test failure instead of a hang.
 *
 * Also here: the batch builder helpers (rn_raw_batch) and a decoder that
 * turns fetched batch bytes into copied records (rn_raw_records_t), and the
 * per-test broker fixture (rn_raw_env_t).
 */
#ifndef RN_TEST_RAWCLIENT_H
#define RN_TEST_RAWCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_proc.h"
#include "runnel.pb-c.h"
#include "runnel/batch.h"
#include "runnel/error.h"

/* Safety net only (never a timing assertion): longer than any max_wait the
 * tests use, shorter than their CTest timeout. */
#define RN_RAW_RECV_TIMEOUT_S 120

/* ---- connection ------------------------------------------------------------ */

typedef struct rn_raw {
  int fd;              /* -1 when closed */
  uint64_t next_corr;  /* last correlation id handed out */
  uint8_t *in;         /* received bytes not yet decoded (owned) */
  size_t in_len, in_cap;
  Runnel__Response **queued; /* answers not yet asked for (owned) */
  size_t nqueued, queued_cap;
  bool eof;            /* the broker closed the connection (or it failed) */
} rn_raw_t;

/* Connect to 127.0.0.1:port. Returns 0 or -errno; *c is usable for
 * rn_raw_close either way. */
int rn_raw_connect(rn_raw_t *c, uint16_t port);

/* Close the socket and free queued responses. Safe on a closed client. */
void rn_raw_close(rn_raw_t *c);

/* Write all of buf (used to send malformed frames). Returns 0 or -errno. */
int rn_raw_send_bytes(rn_raw_t *c, const void *buf, size_t len);

/* TCP_CORK on (1) or off (0): while corked, frames sent are held by the
 * kernel and go out together when uncorked — on loopback as one segment
 * (up to ~64 KiB) that the broker receives in one read. */
int rn_raw_cork(rn_raw_t *c, int on);

/* Frame and send req with a fresh correlation id (written into req). Returns
 * the correlation id, or 0 when the write failed. */
uint64_t rn_raw_send(rn_raw_t *c, Runnel__Request *req);

/* Frame and send an already packed Request payload (no correlation id is
 * assigned). Returns 0 or -errno. */
int rn_raw_send_payload(rn_raw_t *c, const void *payload, size_t len);

/* The response with correlation id corr (blocking). NULL when the
 * connection closed first. Owned by the caller (rn_raw_free). */
Runnel__Response *rn_raw_recv(rn_raw_t *c, uint64_t corr);

/* The next response in arrival order (queued ones first). NULL at EOF. */
Runnel__Response *rn_raw_recv_any(rn_raw_t *c);

/* Read until the broker closes the connection, queueing any responses that
 * arrive first. Returns true when it closed (EOF or reset), false when the
 * receive timeout expired. */
bool rn_raw_wait_closed(rn_raw_t *c);

/* Send req and wait for its answer. */
Runnel__Response *rn_raw_call(rn_raw_t *c, Runnel__Request *req);

/* Free a response (NULL ok). */
void rn_raw_free(Runnel__Response *resp);

/* Wire code of an Error (0 for NULL = no error). */
static inline uint32_t rn_raw_code(const Runnel__Error *e) { return e ? e->code : 0; }
/* Wire code of a C error constant, for comparisons: rn_raw_wire(RN_ENOSTREAM). */
static inline uint32_t rn_raw_wire(rn_err_t err) { return rn_err_to_wire(err); }

/* ---- requests ------------------------------------------------------------------ */

Runnel__Response *rn_raw_create(rn_raw_t *c, const char *name, uint32_t shards, Runnel__Durability durability);
Runnel__Response *rn_raw_delete(rn_raw_t *c, const char *name);
Runnel__Response *rn_raw_list(rn_raw_t *c);
Runnel__Response *rn_raw_describe(rn_raw_t *c, const char *name);
Runnel__Response *rn_raw_set_retention(rn_raw_t *c, const char *name, int64_t retention_ms, int64_t retention_bytes);
Runnel__Response *rn_raw_init_producer(rn_raw_t *c);

/* One batch for one shard (the bytes are borrowed for the call). */
Runnel__Response *rn_raw_produce1(rn_raw_t *c, const char *stream, uint32_t shard, const uint8_t *batch, size_t len);
uint64_t rn_raw_send_produce1(rn_raw_t *c, const char *stream, uint32_t shard, const uint8_t *batch, size_t len);

/* Several batches (shards[i], batches[i], lens[i]) in one request. */
Runnel__Response *rn_raw_produce(rn_raw_t *c, const char *stream, size_t n, const uint32_t *shards,
                                 uint8_t *const *batches, const size_t *lens);

/* Fetch one shard. max_bytes 0 = the broker's default. */
uint64_t rn_raw_send_fetch1(rn_raw_t *c, const char *stream, uint32_t shard, Runnel__PositionKind kind, int64_t value,
                            uint32_t max_wait_ms, uint32_t max_bytes);
Runnel__Response *rn_raw_fetch1(rn_raw_t *c, const char *stream, uint32_t shard, Runnel__PositionKind kind,
                                int64_t value, uint32_t max_wait_ms, uint32_t max_bytes);

/* The single produce result / fetch result of a one-shard call, or NULL
 * when the response has none (a request-level error). */
const Runnel__ShardBatchResult *rn_raw_produce_result(const Runnel__Response *resp);
const Runnel__ShardFetchResult *rn_raw_fetch_result(const Runnel__Response *resp);

/* ---- batches ---------------------------------------------------------------------- */

typedef struct rn_raw_rec {
  const void *key;
  size_t key_len;
  const void *value;
  size_t value_len;
  int64_t ts;
  const rn_record_header_t *headers; /* may be NULL */
  size_t header_count;
} rn_raw_rec_t;

/* Build one uncompressed batch of n >= 1 records; producer may be NULL (not
 * idempotent). Returns malloc'd bytes (*len set), NULL on failure. */
uint8_t *rn_raw_batch(const rn_raw_rec_t *recs, size_t n, const rn_batch_producer_t *producer, size_t *len);

/* Convenience: n records whose keys are "k<i>" and values the given
 * NUL-terminated strings, timestamps ts, ts+1, ... */
uint8_t *rn_raw_batch_strings(const char *const *values, size_t n, int64_t ts, const rn_batch_producer_t *producer,
                              size_t *len);

/* A decoded record; key and value are malloc'd copies. */
typedef struct rn_raw_record {
  uint64_t offset;
  uint64_t batch_base;  /* base offset of the batch it came in */
  int64_t ts;
  uint8_t *key;
  size_t key_len;
  uint8_t *value;
  size_t value_len;
  uint64_t producer_id;
  int32_t base_sequence;
} rn_raw_record_t;

typedef struct rn_raw_records {
  rn_raw_record_t *v;
  size_t n, cap;
  size_t batches; /* whole batches decoded */
} rn_raw_records_t;

/* Verify and decode every batch in buf[0, len) and append its records.
 * Returns 0, or the rn_batch_* error of the first bad batch (RN_ECORRUPT
 * when bytes are left over that are not a whole batch). */
rn_err_t rn_raw_decode(const uint8_t *buf, size_t len, rn_raw_records_t *out);

/* Read shard from EARLIEST to its end (no waiting) and append every record.
 * Returns 0, or the wire code of the first error met (request or shard
 * level), or -1 if the connection failed or a batch did not decode. */
int rn_raw_fetch_all(rn_raw_t *c, const char *stream, uint32_t shard, rn_raw_records_t *out);

void rn_raw_records_free(rn_raw_records_t *r);

/* ---- per-test broker fixture -------------------------------------------------------- */

typedef struct rn_raw_env {
  char *root;        /* temp dir (owned) */
  char data_dir[600];
  const char *const *extra; /* extra runneld arguments used at every start (borrowed) */
  rn_test_broker_t broker;
  rn_raw_t c;        /* a connection to the running broker */
} rn_raw_env_t;

/* Fresh temp dir, start runneld in <root>/data with extra args (may be
 * NULL), connect env->c. Returns 0 or -1. */
int rn_raw_env_start(rn_raw_env_t *env, const char *const *extra);

/* Start again on the same data dir (after a stop) and reconnect env->c. */
int rn_raw_env_restart(rn_raw_env_t *env);

/* Close env->c and SIGTERM the broker; returns its exit status (0 = clean). */
int rn_raw_env_stop(rn_raw_env_t *env);

/* Teardown after pass or failure: close, SIGKILL if still running, print
 * any sanitizer report from the broker's log (the whole log if
 * RUNNEL_TEST_VERBOSE is set), remove the temp dir unless RUNNEL_TEST_KEEP
 * is set. */
void rn_raw_env_destroy(rn_raw_env_t *env);

#endif
