/*
 * rn_log.h — one shard's append-only, segmented, crash-safe log.
 *
 * A log is a directory of segments "<base offset, 20 digits>.log", each with
 * a sparse offset index ".index" and a time index ".timeindex", plus a
 * "recovery-point" file and, after a clean close, a "clean-shutdown" marker.
 * docs/storage.md describes the files, recovery and the durability modes.
 *
 * Threading: a log is owned by one thread — the thread that owns its rn_io_t.
 * Every function below is called on that thread; append callbacks run there
 * too (from rn_io_poll / rn_io_wait). Several logs may share one rn_io_t.
 *
 * Blocking: rn_log_open, rn_log_close, rn_log_truncate and rn_log_read/
 * rn_log_find_time do file-system calls directly (open, scan, pread). The
 * append path (rn_log_append*, replica appends included), syncs, retention
 * deletes, index writes, the leader-epoch history's writes and
 * rn_log_truncate_async never block the owner thread: they go through
 * rn_io_t.
 *
 * Leader epochs (docs/storage.md, "Leader epochs and replica appends"): the
 * log keeps the history of the epochs its batches carry, one entry
 * (epoch, start offset) per change, in the file "leader-epochs". After any
 * crash every recovered batch carries the epoch of the entry covering its
 * offset and no entry starts at or past the recovered end.
 *
 * Visibility: readers see only records whose write completed and, in sync
 * mode, whose fdatasync completed ("the high watermark"), and every batch a
 * read returns was checksum-verified on the way out.
 */
#ifndef RN_LOG_H
#define RN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_base.h"
#include "rn_fs.h"
#include "rn_io.h"
#include "runnel/batch.h"
#include "runnel/durability.h"
#include "runnel/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rn_log rn_log_t;
typedef struct rn_journal rn_journal_t;

/* rn_durability_t (sync, interval, none) is in runnel/durability.h. */

typedef struct rn_log_opts {
  rn_durability_t durability; /* default sync */
  uint32_t interval_ms;       /* interval mode: sync period; default 1000 */
  uint64_t segment_bytes;     /* roll when a segment reaches this; default 1 GiB */
  int64_t segment_ms;         /* roll a segment this old (ms); default 7 days; <=0 off */
  int64_t retention_ms;       /* delete closed segments older than this; <0 = forever */
  int64_t retention_bytes;    /* keep total bytes under this; <0 = unlimited */
  uint32_t index_interval;    /* bytes between sparse index entries; default 4096 */
  uint32_t max_batch_bytes;   /* largest batch accepted; default 8 MiB */
  /* Index checkpoints: when the active segment grew by 1/16 of its size
   * (at least this / 32, at most this) since the last one, the next sync
   * round also writes its index files for what it synced, so recovery after
   * a crash rescans only what follows (restart time bounded whatever the
   * segment size and shard count). Default 32 MiB; 0 = off. */
  uint64_t index_checkpoint_bytes;
  /* Journal mode: once this many written bytes (whole pages) of a segment
   * are not yet being written back, start their writeback
   * (rn_io_writeback), so the checkpoint's fdatasync has little left.
   * 0 = leave it to the kernel, the default: on this project's machines
   * (virtio disk, 16-64 shards at 40k records/s) 1 MiB measured a p99 of
   * 300-460 ms against 36-46 ms without (the writebacks queue ahead of the
   * journal's flushes), so it stays an option to measure on real disks. */
  uint32_t writeback_bytes;
  /* Where the log reads time (rn_base.h): wall_ms for segment ages,
   * retention and sync periods, mono_ns for sync-round latency. Zeroed = the
   * system clocks. Tests inject it. */
  rn_clock_t clock;
  /* Where the log reports recovery and failures, one line each (rn_base.h);
   * fn NULL = the stderr line as component "storage", WARN and above. */
  rn_logger_t logger;
  /* Sync mode only: acknowledge through this shared journal (below) instead
   * of one fdatasync per log per round; NULL = per-log rounds. Borrowed: it
   * must outlive the log, and belong to the same rn_io_t. journal_id names
   * this log in the journal and must be unique among the logs that ever
   * share it and stable across restarts (the broker derives it from the
   * stream's uid and the shard number); 0 is invalid with a journal. */
  rn_journal_t *journal;
  uint64_t journal_id;
  /* A log created in an empty directory starts at this offset instead of
   * 0: a shard restored from tiered storage continues after its last
   * remote segment. Ignored when the directory has segments. */
  uint64_t first_offset;
} rn_log_opts_t;

void rn_log_opts_default(rn_log_opts_t *opts);

/* What rn_log_open found and did. */
typedef struct rn_log_recovery {
  bool clean;                /* clean-shutdown marker was present and valid */
  uint32_t segments;         /* segments after recovery */
  uint32_t segments_scanned; /* segments whose batches were read and verified */
  uint32_t indexes_rebuilt;  /* segments whose index files were rebuilt */
  uint32_t segments_dropped; /* unsynced segments deleted after a torn one */
  uint64_t journal_replayed; /* journal records rewritten into segments */
  uint64_t bytes_trusted;    /* unsealed bytes not rescanned: an index checkpoint covered them */
  uint64_t bytes_truncated;  /* torn/corrupt tail bytes removed */
  bool epochs_repaired;      /* the leader-epoch history was rewritten at open: entries
                              * past the end dropped, entries for scanned batches
                              * added, or the file (missing or damaged) rebuilt
                              * from the batch headers */
  char message[256];         /* on failure: what and where (file, position) */
} rn_log_recovery_t;

/* Open (creating when missing) the log in directory dir, recovering as
 * described in docs/storage.md. Blocking. io must outlive the log; fs is
 * taken from io (rn_io_fs). opts NULL = defaults. rec may be NULL.
 * Returns 0, RN_ECORRUPT (damage below the recovery point: the log refuses to
 * open rather than drop acknowledged data; rec->message says where),
 * RN_EINVAL (bad options) or a file-system error. */
rn_err_t rn_log_open(rn_io_t *io, const char *dir, const rn_log_opts_t *opts, rn_log_t **out,
                     rn_log_recovery_t *rec);

/* Flush, sync, write the index files and the clean-shutdown marker, free.
 * Blocking: waits for this log's in-flight I/O (running rn_io callbacks of
 * the shared io meanwhile). Pending appends complete first. Returns the
 * first error met (the log is freed regardless); a failed log closes without
 * a clean marker. NULL ok (returns 0). Must not be called from inside one
 * of the log's own append callbacks: it then returns RN_EBUSY and does
 * nothing. */
rn_err_t rn_log_close(rn_log_t *log);

/* Close without a final sync, index files or clean-shutdown marker: for a
 * log whose directory is about to be deleted. Waits for this log's
 * in-flight I/O (blocking briefly); appends not yet written complete with
 * RN_ECANCELED. NULL ok. Like rn_log_close it returns RN_EBUSY (and does
 * nothing) when called from inside one of the log's append callbacks:
 * close from a deferred step instead. */
rn_err_t rn_log_close_discard(rn_log_t *log);

/* The first half of rn_log_close_discard, for closing off the owner thread
 * (the broker deletes a stream without blocking its loop): fail the log so
 * nothing new is submitted and complete appends not yet written with
 * RN_ECANCELED. Owner thread; not from inside the log's own callbacks. Once
 * rn_log_inflight() is 0, rn_log_close_discard does no more I/O waits and
 * may run on any thread (the owner must not touch the log meanwhile). NULL
 * ok. */
void rn_log_discard_begin(rn_log_t *log);

/* This log's rn_io operations not yet called back (a roll's open among
 * them). Owner thread. NULL: 0. */
unsigned rn_log_inflight(const rn_log_t *log);

/* Append completion: err 0 and the batch's base offset once the durability
 * promise holds (sync: fdatasync'ed; interval/none: written to the file), or
 * the error that failed the log. */
typedef void (*rn_log_append_cb)(void *arg, rn_err_t err, uint64_t base_offset);

/* Append one producer batch. The log verifies it (checksums, structure,
 * max_batch_bytes), assigns offsets, stamps base offset, leader_epoch and
 * arrival time, and copies it into its write buffer: batch need not outlive
 * the call. *base_offset (may be NULL) gets the assigned base offset at once.
 * A leader_epoch greater than rn_log_last_epoch() (or any epoch on a log
 * without history) starts a new entry of the epoch history at this batch.
 * Returns 0 (cb will run), or without running cb: RN_ECORRUPT/RN_EFORMAT
 * (bad batch), RN_ETOOLARGE, RN_ESTALEEPOCH (leader_epoch below
 * rn_log_last_epoch(): a deposed leader; nothing stored), RN_ELOGFAILED
 * (log failed; see rn_log_failure), RN_ECLOSED, RN_ENOMEM, or a transient
 * error that leaves the log healthy (rn_log_health: DEGRADED): RN_ENOSPC
 * (a failed write is still being undone), RN_EBUSY (a truncation is pending
 * or running, see rn_log_truncate_async; or a segment roll is still opening
 * its files and the new segment's 32-bit index positions cannot take more,
 * practically unreachable).
 * The callback's err is 0, the error that failed the log, or a transient
 * error that leaves the log healthy; the batch is then not stored and its
 * offset will be reused: RN_ENOSPC (the write holding the batch failed for
 * want of space, the log cut the file back to the last completed write) or
 * RN_EMFILE/RN_ENFILE/RN_ENOSPC (the batch went into a new segment whose
 * files a roll could not create; the next append that needs the roll tries
 * again). A roll never blocks the caller: the new segment's files are
 * created on an rn_io worker, appends into it wait for that. */
rn_err_t rn_log_append(rn_log_t *log, const uint8_t *batch, size_t len, uint32_t leader_epoch,
                       rn_log_append_cb cb, void *arg, uint64_t *base_offset);

/* rn_log_append for a batch the caller has just verified itself (both
 * checksums, e.g. with rn_batch_verify or rn_batch_iter_init, as the broker
 * does while checking every record): the log then decodes only the header
 * instead of hashing the payload a second time on the hot path. Same
 * results and contract otherwise. */
rn_err_t rn_log_append_verified(rn_log_t *log, const uint8_t *batch, size_t len, uint32_t leader_epoch,
                                rn_log_append_cb cb, void *arg, uint64_t *base_offset);

/* ---- replica appends (a follower copying its leader) -------------------------
 *
 * A follower stores the leader's batches exactly as the leader stored them:
 * verified in full (both checksums, structure, max_batch_bytes), their
 * bytes unchanged (no restamp of base offset, leader epoch or arrival
 * time), at the offsets they carry. Durability, acknowledgement, failure
 * and the shared journal work as for rn_log_append: cb runs once the
 * durability promise holds, with the base offset of the (first) batch.
 * Each batch whose leader_epoch is greater than the history's last epoch
 * starts a new history entry at its base offset. */

/* Defined while this header declares the replica API below (replica appends,
 * the leader-epoch history, rn_log_truncate_async): broker/core enables its
 * replicate, truncate and epoch_end bodies on it. */
#define RN_LOG_HAVE_REPLICA 1

/* Append one batch as its leader stored it. Its base_offset must equal
 * rn_log_next_offset(log) and its leader_epoch be >= rn_log_last_epoch(log)
 * (any epoch when the history is empty). batch need not outlive the call.
 * Returns 0 (cb will run), or without running cb and storing nothing:
 * RN_ECORRUPT/RN_EFORMAT (bad batch, or len is not exactly one batch),
 * RN_ETOOLARGE, RN_EOFFSET (base_offset is not the next offset: a gap or an
 * overlap), RN_ESTALEEPOCH (epoch below the last), or rn_log_append's other
 * errors (RN_ELOGFAILED, RN_ECLOSED, RN_ENOMEM, RN_ENOSPC, RN_EBUSY). The
 * checks run in that order. */
rn_err_t rn_log_append_replica(rn_log_t *log, const uint8_t *batch, size_t len, rn_log_append_cb cb, void *arg);

/* The same for buf[0, len) holding consecutive whole batches (what a fetch
 * from the leader returns). Every batch is checked first, as above (each
 * base offset continuing the previous batch, epochs never going down): if
 * any fails, the call returns that error and stores nothing. It then stores
 * the longest prefix that goes into one write (at most max(max_batch_bytes,
 * 256 KiB) bytes) in one segment — always at least the first batch — and
 * sets *nbatches (may be NULL) to how many it stored; call again with the
 * rest (buf + the bytes of those batches), whose offsets now continue the
 * log. Those batches succeed or fail together: cb runs once, when all are
 * durable (err 0, base_offset = the first one's), or with the error that
 * kept all of them out (RN_ENOSPC etc., as for rn_log_append: none of
 * them is stored then). len 0 or a partial trailing batch: RN_EINVAL /
 * RN_ECORRUPT. Same errors otherwise. */
rn_err_t rn_log_append_replica_many(rn_log_t *log, const uint8_t *buf, size_t len, rn_log_append_cb cb, void *arg,
                                    uint32_t *nbatches);

/* ---- the leader-epoch history (Kafka's leader-epoch-checkpoint) ---------------
 *
 * Ordered by epoch and start offset, both strictly increasing; the entry
 * (E, s) covers offsets [s, start of the next entry) — the last one up to
 * rn_log_next_offset(). Entries change when an append starts a new epoch,
 * when a truncation cuts the log (entries at or past the cut go), when
 * appends are undone after a failed write, and when retention removes the
 * oldest segments (once the deletion's recovery-point write is durable,
 * entries wholly below the new log start go; the one covering it keeps its
 * start offset, which may lie below rn_log_start). rn_log_epoch_end for an
 * epoch below every entry answers rn_log_start. The in-memory history
 * includes appends not yet durable (like rn_log_next_offset). Owner thread;
 * no I/O. */

#define RN_LOG_EPOCH_NONE UINT32_MAX

typedef struct rn_log_epoch {
  uint32_t epoch;
  uint64_t start_offset;
} rn_log_epoch_t;

/* The epoch of the last entry; RN_LOG_EPOCH_NONE when the history is empty
 * (a log nothing was ever appended to, or one truncated to its start). */
uint32_t rn_log_last_epoch(const rn_log_t *log);

/* Copy the entries, oldest first, into out[0, min(cap, count)); returns the
 * count. out may be NULL when cap is 0. */
uint32_t rn_log_epochs(const rn_log_t *log, rn_log_epoch_t *out, uint32_t cap);

/* KIP-279's OffsetsForLeaderEpoch, the leader's side. For the requested
 * epoch: *found_epoch = the largest epoch <= epoch in the history and
 * *end_offset = the start offset of the entry after it, or
 * rn_log_next_offset() when it is the last; when epoch is below every
 * entry (or the history is empty): *found_epoch = RN_LOG_EPOCH_NONE and
 * *end_offset = rn_log_start(). Returns 0, or RN_EINVAL for NULL outputs. */
rn_err_t rn_log_epoch_end(const rn_log_t *log, uint32_t epoch, uint32_t *found_epoch, uint64_t *end_offset);

/* The same lookup over a history array h[0, n) of a log holding
 * [log_start, log_end). Pure. */
void rn_log_epochs_end(const rn_log_epoch_t *h, uint32_t n, uint64_t log_start, uint64_t log_end, uint32_t epoch,
                       uint32_t *found_epoch, uint64_t *end_offset);

/* The follower's side (KIP-279): where a follower whose history is
 * h[0, n), holding [log_start, log_end), must truncate to, given the
 * leader's answer (leader_found_epoch, leader_end_offset) to
 * rn_log_epoch_end for the follower's last epoch. Pure. The rules:
 *   - the leader has the epoch (leader_found_epoch is in h): the follower
 *     keeps what the two agree on, min(leader_end_offset, the follower's
 *     own end of that epoch, log_end); *complete = true;
 *   - the follower lacks the leader's epoch (it led or followed an epoch
 *     the leader never saw, or missed one): it cuts every epoch above its
 *     largest epoch below leader_found_epoch — truncate to the start of its
 *     first epoch after that one (log_start when there is none) —
 *     and *complete = false: ask the leader again with the new last epoch
 *     (rn_log_last_epoch after the truncation) and call this again;
 *   - the leader has no epoch <= the one asked for (leader_found_epoch
 *     RN_LOG_EPOCH_NONE, leader_end_offset = the leader's log start):
 *     nothing of the follower's can be matched from the leader's start on:
 *     truncate to leader_end_offset clamped to [log_start, log_end];
 *     *complete = true. (When leader_end_offset > log_end the logs do not
 *     overlap: the broker restarts the follower's log at the leader's
 *     start, outside this function.)
 *   - an empty follower (n == 0): log_end, complete.
 * Returns the offset (in [log_start, log_end]); complete may be NULL. */
uint64_t rn_log_epochs_divergence(const rn_log_epoch_t *h, uint32_t n, uint64_t log_start, uint64_t log_end,
                                  uint32_t leader_found_epoch, uint64_t leader_end_offset, bool *complete);

/* rn_log_epochs_divergence over a follower's log (its history, rn_log_start
 * and rn_log_next_offset). Owner thread; no I/O. */
uint64_t rn_log_divergence(uint32_t leader_found_epoch, uint64_t leader_end_offset, const rn_log_t *follower,
                           bool *complete);

/* Time-driven work: interval syncs, roll by age, retention. Call at least
 * every rn_log_next_tick_ms() ms (or sooner). now_ms as from rn_clock_wall_ms(&opts->clock). */
void rn_log_tick(rn_log_t *log, int64_t now_ms);
/* Milliseconds until rn_log_tick has work; -1 when none is scheduled. */
int64_t rn_log_next_tick_ms(const rn_log_t *log, int64_t now_ms);

/* Copy whole batches, starting with the one containing offset, into
 * buf[0, cap). Stops at a segment end or the visible end. On success *len
 * bytes were copied, each batch verified. Returns 0 (with *len 0 when offset
 * is the visible end), RN_EOFFSET (offset below start or past end),
 * RN_ETOOLARGE (the first batch needs more than cap: *len = its size) or
 * RN_ECORRUPT (the first batch failed verification; reported loudly). */
rn_err_t rn_log_read(rn_log_t *log, uint64_t offset, uint8_t *buf, size_t cap, size_t *len);

/* A planned read, for reading off the owner thread (the broker reads on a
 * thread pool). rn_log_span_plan runs on the owner thread and does no I/O:
 * it resolves the segment, an index position at or before offset and the
 * visible limit, and pins the segment (retention will not delete it and
 * truncate returns RN_EBUSY) until rn_log_span_release, also on the owner
 * thread. rn_log_span_read may run on any thread, once or more; it has
 * rn_log_read's semantics. Every span must be released before close. */
typedef struct rn_log_span {
  uint64_t offset;     /* the requested offset */
  uint64_t end_offset; /* visible end when planned; nothing at or past it is returned */
  uint64_t start_pos;  /* file position to scan forward from */
  uint64_t limit_pos;  /* visible bytes of the segment */
  void *seg;           /* private: the pinned segment; NULL = nothing to read */
} rn_log_span_t;

/* Returns 0 (span->seg NULL when offset is the visible end) or RN_EOFFSET. */
rn_err_t rn_log_span_plan(rn_log_t *log, uint64_t offset, rn_log_span_t *span);
/* Any thread. Same results as rn_log_read (RN_ECORRUPT is not logged here:
 * the caller reports it). */
rn_err_t rn_log_span_read(const rn_log_span_t *span, uint8_t *buf, size_t cap, size_t *len);
/* Owner thread. Accepts a span whose seg is NULL. */
void rn_log_span_release(rn_log_t *log, rn_log_span_t *span);

/* A timestamp lookup in two steps, like reads: rn_log_time_plan (owner
 * thread, no I/O) picks and pins the first segment whose newest record is
 * at or after ts; rn_log_time_resolve (any thread) scans it from the time
 * index and sets *offset to the first record with timestamp >= ts, or to
 * span->end_offset when no visible record qualifies. Release the span with
 * rn_log_span_release. */
rn_err_t rn_log_time_plan(rn_log_t *log, int64_t ts, rn_log_span_t *span);
rn_err_t rn_log_time_resolve(const rn_log_span_t *span, int64_t ts, uint64_t *offset);

/* First offset whose record timestamp is >= ts. *offset = visible end when
 * no such record exists. Returns 0 or a read error. */
rn_err_t rn_log_find_time(rn_log_t *log, int64_t ts, uint64_t *offset);

/* Earliest offset still stored. */
uint64_t rn_log_start(const rn_log_t *log);
/* Next offset a reader can wait for (exclusive end of the visible records). */
uint64_t rn_log_end(const rn_log_t *log);
/* Next offset an append will get (includes not yet durable appends). */
uint64_t rn_log_next_offset(const rn_log_t *log);
/* Total bytes of all segments. */
uint64_t rn_log_size_bytes(const rn_log_t *log);
/* Segments, counting one a roll is still opening (it goes again if that
 * open fails). */
uint32_t rn_log_segment_count(const rn_log_t *log);

/* fdatasync rounds of this log (group commits in sync mode, timed syncs in
 * interval mode, the final sync at close): how many and how long each took,
 * from submission to completion of every fdatasync (and directory sync) in
 * the round, in seconds. Buckets use rn_hist_latency_bounds (rn_base.h);
 * the last bucket is +Inf; counts are per bucket, not cumulative. */
void rn_log_sync_stats(const rn_log_t *log, rn_hist_t *out);

/* 0, or the error that failed the log (appends then get RN_ELOGFAILED). */
rn_err_t rn_log_failure(const rn_log_t *log);

/* How the log is doing (docs/storage.md, "Failures"):
 *   HEALTHY   appends are accepted;
 *   DEGRADED  the last write, roll or seal hit a transient error (disk full,
 *             out of file descriptors): nothing acknowledged was lost, the
 *             appends that failed were told so with that (retriable) error,
 *             and the log retries by itself at the next append or tick;
 *   FAILED    a failed fdatasync or an I/O error: appends get RN_ELOGFAILED
 *             until the broker restarts and recovers the log. */
typedef enum { RN_LOG_HEALTHY = 0, RN_LOG_DEGRADED = 1, RN_LOG_FAILED = 2 } rn_log_state_t;
typedef struct rn_log_health {
  rn_log_state_t state;
  rn_err_t err;     /* 0 when HEALTHY */
  const char *what; /* the operation that failed ("write", "segment roll",
                     * "fdatasync", ...); "" when HEALTHY. Static storage or
                     * owned by the log: valid until the log's next call. */
} rn_log_health_t;
void rn_log_health(const rn_log_t *log, rn_log_health_t *out);

/* Remove every record at or after offset (a batch boundary, >= start, <=
 * end). Blocking: rn_log_truncate_async below, waited for (running the
 * shared io's callbacks meanwhile); requires no append or other I/O of the
 * log in flight (RN_EBUSY otherwise). The truncation (with the epoch
 * history's cut) is durable when this returns 0. RN_EOFFSET outside
 * [start, next offset], RN_EINVAL when offset is not a batch boundary. */
rn_err_t rn_log_truncate(rn_log_t *log, uint64_t offset);

/* Truncation completion: err 0 once the cut is durable. */
typedef void (*rn_log_truncate_cb)(void *arg, rn_err_t err);

/* Remove every record at or after offset without blocking the owner thread
 * (a follower cutting back to its leader's epoch boundary). offset must be
 * a batch boundary in [rn_log_start, rn_log_next_offset].
 *
 * From this call on appends are refused with RN_EBUSY, readers see at most
 * up to offset (rn_log_end is clamped to it), retention and rolls by age
 * wait. Appends already accepted complete first, with their usual results
 * (their callbacks run before cb; those at or past offset are then cut
 * like the rest); so do the log's other operations, and reads holding a
 * span on a segment wholly past offset (rn_log_span_release lets it go
 * on). Then the file work runs on the rn_io background lane: the journal
 * floor (journal mode), the recovery point lowered, later segments
 * deleted, the segment cut and fdatasync'ed, the directory synced, the
 * epoch history cut (entries at or past offset go) written durably, the
 * cut segment rescanned. cb (owner thread, never from inside this call)
 * gets 0 when all that is durable: rn_log_next_offset() is then offset
 * (or lower, when accepted appends failed meanwhile and the log ended
 * below offset anyway: nothing to cut, 0 too), and appends are accepted
 * again. Or cb gets RN_EINVAL (offset is not a batch boundary: nothing
 * changed), RN_ECANCELED (the log was closed or discarded before the work
 * started), a transient error from before anything changed (the log is
 * unchanged and healthy), or the error that failed the log (a failed
 * fdatasync, or an error once the cut had begun; the next open recovers a
 * consistent log either way).
 * Returns 0 (cb will run), or without running cb: RN_ELOGFAILED,
 * RN_ECLOSED, RN_EBUSY (another truncation is pending or running),
 * RN_EINVAL (offset outside [rn_log_start, rn_log_next_offset]),
 * RN_ENOMEM. */
rn_err_t rn_log_truncate_async(rn_log_t *log, uint64_t offset, rn_log_truncate_cb cb, void *arg);

/* Apply time and size retention now: closed segments that qualify are
 * removed from the log at once and their files deleted in the background.
 * Returns the number of segments removed. Also done by rn_log_tick. */
unsigned rn_log_apply_retention(rn_log_t *log, int64_t now_ms);

/* Remove every closed segment whose records all lie below offset (for a log
 * compacted by a snapshot that covers them); the active segment stays. Same
 * mechanism and durability as retention (the new log start is durable
 * before files go). Returns the number of segments removed (0 also while a
 * previous removal is still running: call again later). */
unsigned rn_log_delete_below(rn_log_t *log, uint64_t offset);

/* One segment, as rn_log_segments reports it. */
typedef struct rn_log_seg_info {
  uint64_t base;   /* first offset (the file name) */
  uint64_t next;   /* offset after its last record */
  uint64_t bytes;  /* file size (appended bytes) */
  uint64_t index_bytes, timeindex_bytes; /* sizes of its index files (when sealed) */
  int64_t max_ts;  /* newest record timestamp; INT64_MIN when empty */
  uint32_t epoch;  /* leader epoch of its last batch appended in this run; 0 for a
                    * segment recovered from disk (a single broker writes 0) */
  bool sealed;     /* closed, synced, index files written: may be copied
                    * elsewhere (tiering) as it is; never changes again */
} rn_log_seg_info_t;

/* The segments in offset order, the active one last (never sealed): fills
 * out[0, min(cap, count)) and returns count. Owner thread; no I/O. */
uint32_t rn_log_segments(const rn_log_t *log, rn_log_seg_info_t *out, uint32_t cap);

/* Path of a segment's file: suffix ".log", ".index" or ".timeindex".
 * Returns 0 or RN_ETOOLARGE when cap is too small. */
rn_err_t rn_log_seg_path(const rn_log_t *log, uint64_t base, const char *suffix, char *out, size_t cap);

/* Lookups in a sealed segment's index files read back from elsewhere (a
 * copy in an object store): pure functions of the file's bytes, which are
 * verified first (checksum, and that they describe the segment at base
 * whose file is bytes long: RN_ECORRUPT otherwise).
 * rn_log_index_lookup: *pos = the file position of a batch at or before the
 * one holding offset (scan forward from there); RN_EOFFSET below base.
 * rn_log_timeindex_lookup: *pos = a position at or before the first batch
 * whose newest record is at or after ts (scan forward from there). */
rn_err_t rn_log_index_lookup(const uint8_t *idx, size_t len, uint64_t base, uint64_t bytes, uint64_t offset,
                             uint64_t *pos);
rn_err_t rn_log_timeindex_lookup(const uint8_t *tidx, size_t len, uint64_t base, uint64_t bytes, int64_t ts,
                                 uint64_t *pos);

/* The log's directory (owned by the log). */
const char *rn_log_dir(const rn_log_t *log);

/* Change retention (takes effect at the next tick). */
void rn_log_set_retention(rn_log_t *log, int64_t retention_ms, int64_t retention_bytes);

/* Read and verify every batch of every segment; blocking. Returns 0 or
 * RN_ECORRUPT with where (file, position) in msg. */
rn_err_t rn_log_verify(rn_log_t *log, char *msg, size_t msglen);

/* ---- the shared journal ------------------------------------------------------
 *
 * One preallocated file per data disk (docs/storage.md, "The journal"):
 * every sync-mode log attached to it hands each completed segment write to
 * it, the journal writes all of them in one round (one pwritev, one
 * fdatasync of a file whose blocks are all allocated, so the flush commits
 * no metadata) and the appends are acknowledged when their round is
 * durable, whatever the number of logs. Segment files are made durable in
 * the background by checkpoints (every attached log's dirty segments
 * fdatasync'ed in parallel, then the journal's header records the new tail)
 * and the space before the tail is reused. rn_log_open replays a log's
 * records from the journal into its segments before recovering them.
 *
 * Threading: owned by the thread of its rn_io_t, like the logs on it;
 * rn_log_open of an attached log may run on another thread. */

typedef struct rn_journal_opts {
  uint64_t size_bytes;    /* file size, preallocated at creation; default 512 MiB,
                           * minimum 1 MiB (a quarter of it bounds max_batch_bytes
                           * of the logs on it). An existing journal keeps its size. */
  uint32_t checkpoint_ms; /* checkpoint at least this often while records arrive
                           * (bounds replay at restart); default 1000. A
                           * checkpoint also starts at a quarter full. */
  uint32_t direct_bytes;  /* a segment write at least this large is made durable
                           * by its own file's fdatasync in the round instead of
                           * being journaled (its bytes would go to disk twice;
                           * at this size the flush's fixed cost no longer
                           * dominates); 0 = journal everything. Default 256 KiB. */
  rn_clock_t clock;
  rn_logger_t logger;
} rn_journal_opts_t;

void rn_journal_opts_default(rn_journal_opts_t *opts);

typedef struct rn_journal_recovery {
  bool created;      /* the file did not exist and was preallocated */
  uint64_t records;  /* valid records found past the last checkpoint */
  uint64_t bytes;    /* their payload bytes */
  uint32_t gen;      /* generation of this run */
  char message[256]; /* on failure: what and where */
} rn_journal_recovery_t;

/* Open the journal file at path, creating and preallocating it (writing it
 * whole, then fdatasync and a directory sync) when missing, else reading
 * every valid record past its last checkpoint so the logs opened next can
 * replay theirs. Open every log that used it before the first checkpoint
 * (the next round after a second, or rn_journal_tick): records no log
 * claimed by then are dropped, with a warning. Blocking. Returns 0,
 * RN_EINVAL (size), RN_ECORRUPT (no valid header: it refuses to start
 * rather than lose acknowledged records) or a file-system error. */
rn_err_t rn_journal_open(rn_io_t *io, const char *path, const rn_journal_opts_t *opts, rn_journal_t **out,
                         rn_journal_recovery_t *rec);

/* After every log on it was closed: a final checkpoint (the next open
 * replays nothing), then free. Blocking. Returns the error that failed the
 * journal, RN_EBUSY when logs are still attached (nothing checkpointed), or
 * 0. NULL ok. */
rn_err_t rn_journal_close(rn_journal_t *j);

/* Start a checkpoint when one is due (time). Owner thread; call about as
 * often as rn_log_tick. */
void rn_journal_tick(rn_journal_t *j, int64_t now_ms);

/* 0, or the error that failed the journal (a failed write or fdatasync of
 * a round): every log on it fails with it. */
rn_err_t rn_journal_failure(const rn_journal_t *j);

/* Largest segment write the journal takes as one record (a quarter of its
 * data area); a log whose max_batch_bytes is larger fails to open. */
uint64_t rn_journal_max_record(const rn_journal_t *j);

typedef struct rn_journal_stats {
  uint64_t rounds;       /* write + fdatasync rounds completed */
  uint64_t records;      /* records placed */
  uint64_t bytes;        /* payload bytes placed */
  uint64_t checkpoints;  /* checkpoints completed */
  uint64_t full_waits;   /* rounds held back because the journal was full */
  uint64_t direct_records; /* records made durable by their segment's fdatasync */
  uint64_t direct_bytes;
  uint64_t direct_syncs;   /* those fdatasyncs */
  uint64_t used_bytes;   /* bytes between the tail and the head */
  uint64_t size_bytes;
  rn_hist_t round_seconds; /* per round, rn_hist_latency_bounds */
} rn_journal_stats_t;
void rn_journal_stats(const rn_journal_t *j, rn_journal_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
