/*
 * engine.h — the broker's data plane behind the network: streams, shards,
 * produce, fetch (with long poll), offsets, metadata. Private to broker/.
 *
 * The server (server.c, conn.c) owns sockets and framing; it decodes each
 * frame into a Runnel__Request and hands it to rn_engine_handle(), which
 * answers through a callback — at once for admin calls, later for produce
 * (after the stream's durability promise holds) and for long-polling
 * fetches (when data arrives or the wait expires).
 *
 * Threading: everything here runs on the loop thread given in the options;
 * disk work goes to rn_io_t (appends, syncs) or the libuv thread pool
 * (reads, metadata writes), never blocking the loop.
 */
#ifndef RN_BROKER_ENGINE_H
#define RN_BROKER_ENGINE_H

#include <stdint.h>
#include <uv.h>

#include "rn_io.h"
#include "rn_log.h"
#include "runnel.pb-c.h"
#include "runnel/error.h"

typedef struct rn_engine rn_engine_t;

/* Max bytes of a fetch whose request leaves max_bytes at 0 (before the
 * max_fetch_bytes cap). */
#define RN_ENGINE_FETCH_DEFAULT_BYTES (4u << 20)

typedef struct rn_engine_opts {
  uv_loop_t *loop;             /* the loop thread everything runs on */
  const char *data_dir;        /* root of all broker data */
  rn_io_backend_t io_backend;  /* RN_IO_AUTO by default */
  uint32_t max_record_bytes;   /* largest record value + key; default 1 MiB */
  uint32_t max_batch_bytes;    /* largest batch; default 8 MiB */
  uint32_t max_fetch_bytes;    /* cap on one fetch response; default 16 MiB */
  uint32_t max_frame_bytes;    /* the server's request frame limit, reported by BrokerInfo
                                  (the server enforces it); default 16 MiB */
  /* Broker-wide budget for fetch read buffers (native and HTTP fetches
   * alike), held from the read until the reply's bytes are freed (for a
   * native reply: its socket write completed). A fetch with data to read
   * that does not fit waits, first come first served, until memory comes
   * back; it never fails for it. One fetch always proceeds when nothing is
   * held. 0 = no limit. Default 256 MiB. */
  uint64_t max_fetch_memory_bytes;
  uint32_t max_wait_ms;        /* cap on a fetch long poll; default 30000 */
  uint32_t max_shards;         /* per stream; default 1024 */
  uint64_t segment_bytes;      /* log segment size; default 256 MiB */
  uint64_t group_segment_bytes;/* consumer groups' checkpoint log segment; compacted at 2x; default 4 MiB */
  uint32_t interval_ms;        /* fdatasync period of interval-mode streams; default 1000 */
  int64_t default_retention_ms;/* retention of a stream created without one; < 0 = forever; default 24 h */
  /* One line per event (rn_base.h); fn NULL = the stderr line as "engine". */
  rn_logger_t logger;
  /* Where the engine and the consumer groups read time (rn_base.h); zeroed =
   * the system clock. Tests inject it. */
  rn_clock_t clock;
} rn_engine_opts_t;

void rn_engine_opts_default(rn_engine_opts_t *o);

/* Open the data directory: load stream metadata, open (recover) every shard.
 * Blocking: call before the server starts accepting. On failure why holds a
 * one-line reason. */
rn_err_t rn_engine_open(const rn_engine_opts_t *opts, rn_engine_t **out, char *why, size_t whylen);

/* Answer for one request. resp is owned by the engine and valid only during
 * the call: the server packs it into a frame before returning. Called
 * exactly once per rn_engine_handle, possibly before rn_engine_handle
 * returns, on the loop thread. */
typedef void (*rn_engine_reply_cb)(void *ctx, const Runnel__Response *resp);

/* Handle one decoded request. req is borrowed: the engine copies what it
 * keeps. ctx is the server's (a connection + correlation id); the server
 * must keep it valid until cb runs (mark it closed instead of freeing when
 * the connection goes away). */
void rn_engine_handle(rn_engine_t *eng, const Runnel__Request *req, rn_engine_reply_cb cb, void *ctx);

/* Zero-copy replies. Called from inside a reply callback: keeps the bulk
 * buffers the response points to (a fetch's batches) valid after the
 * callback returns, so the server can hand them to the socket instead of
 * copying them into its output. Returns a token that owns them until
 * rn_engine_reply_release(token), or NULL when the reply holds no such
 * buffers (then everything is valid during the callback only, as usual).
 * Loop thread. */
void *rn_engine_reply_hold(rn_engine_t *eng);
/* Free what a hold kept. NULL ok. Any time after the callback returned. */
void rn_engine_reply_release(void *token);

/* Begin shutdown: refuse new produce requests (RN_ESHUTDOWN), complete
 * waiting fetches now with what they have. In-flight appends keep going. */
void rn_engine_drain(rn_engine_t *eng);

/* True once every in-flight append has been answered (after drain). */
int rn_engine_idle(const rn_engine_t *eng);

/* True from rn_engine_drain on (/readyz answers 503 then). */
int rn_engine_draining(const rn_engine_t *eng);

/* Sync and close every shard (clean-shutdown markers), free. Blocking; call
 * after the server stopped and rn_engine_idle() holds. NULL ok. Returns the
 * first error met. */
rn_err_t rn_engine_close(rn_engine_t *eng);

/* Fill an Error message for err. name points to static storage; message
 * points to msg (which must outlive the packing of the message; NULL = the
 * table's generic text). */
void rn_engine_error(Runnel__Error *e, rn_err_t err, const char *msg);

/* For /healthz and metrics: counts. */
typedef struct rn_engine_stats {
  uint32_t streams;
  uint32_t shards;
  uint32_t failed_shards; /* logs failed by an I/O error */
  uint64_t records_in, bytes_in, records_out, bytes_out;
  /* The fetch memory budget (max_fetch_memory_bytes): bytes held by fetch
   * buffers now, fetches waiting for budget now, and fetches that ever had
   * to wait. */
  uint64_t fetch_memory_bytes;
  uint64_t fetch_memory_waiting;
  uint64_t fetch_memory_waits;
} rn_engine_stats_t;
void rn_engine_stats(const rn_engine_t *eng, rn_engine_stats_t *st);

/* ---- per-shard counters, for /metrics ------------------------------------------
 * Counted on the loop thread as acknowledgements and fetch replies go out;
 * they start at zero when the broker starts (Prometheus counters). */

typedef struct rn_engine_shard_stats {
  const char *stream; /* valid during the callback only */
  uint32_t shard;
  uint64_t records_in, bytes_in;   /* batches acknowledged (bytes: stored batch bytes) */
  uint64_t records_out, bytes_out; /* returned by fetches */
  uint64_t append_errors;          /* appends that failed (the shard's log failed, ...) */
  uint64_t start_offset, end_offset;
  int64_t last_append_ms;
  int failed; /* the shard's log failed after an I/O error */
  uint64_t stored_bytes;           /* bytes of the shard's segment files */
  uint32_t segments;               /* segment files, the active one included */
  /* Append latency: from handing the batch to the log to the acknowledgement
   * (which, for sync streams, includes the group commit's fdatasync).
   * Seconds, buckets rn_hist_latency_bounds (rn_base.h). */
  rn_hist_t append;
  /* fdatasync rounds of the shard's log (rn_log_sync_stats; same bounds). */
  rn_hist_t sync;
  /* The log's health (rn_log_health; docs/storage.md, "Failures"): state is
   * RN_LOG_HEALTHY, RN_LOG_DEGRADED (a transient error such as a full disk:
   * appends fail with a retriable error and resume by themselves) or
   * RN_LOG_FAILED (same as failed above); health_err its error, 0 when
   * healthy; health_what the step that failed ("write", "segment roll",
   * "fdatasync", ...; valid during the callback only). */
  int health_state;
  rn_err_t health_err;
  const char *health_what;
} rn_engine_shard_stats_t;

typedef void (*rn_engine_shard_stats_fn)(void *arg, const rn_engine_shard_stats_t *s);

/* Call fn once per shard of every active stream, in stream order. Loop
 * thread; fn must not call back into the engine. */
void rn_engine_foreach_shard(const rn_engine_t *eng, rn_engine_shard_stats_fn fn, void *arg);

/* ---- consumer groups, for /metrics ---------------------------------------------- */

typedef struct rn_engine_group_stats {
  const char *stream, *group; /* valid during the callback only */
  uint32_t shard;
  uint32_t members;           /* of the group */
  uint64_t checkpoint;
  uint64_t lag_records;       /* end offset - the group's read position */
  int64_t lag_ms;             /* now - arrival of the oldest unconsumed record; 0 caught up;
                                 -1 unknown (no checkpoint, or its arrival not read yet) */
  int checkpoint_known;       /* the group has an offset position (checkpoint) in the shard */
} rn_engine_group_stats_t;

typedef void (*rn_engine_group_stats_fn)(void *arg, const rn_engine_group_stats_t *s);

/* Call fn once per (group, shard) of every consumer group, groups in
 * creation order, shards in order. Loop thread; fn must not call back into
 * the engine. */
void rn_engine_foreach_group_shard(const rn_engine_t *eng, rn_engine_group_stats_fn fn, void *arg);

#endif
