/*
 * log_int.h — private structures of the segmented log (log.c, segment.c,
 * recovery.c). Not installed; nothing outside storage/ includes it.
 *
 * Positions: a segment's bytes pass three marks, size >= written >= synced.
 *   size     bytes appended (some may still sit in the write buffer)
 *   written  bytes whose write completed (in the page cache)
 *   synced   bytes covered by a completed fdatasync
 * The log keeps the matching offsets: next_offset >= written_next >=
 * durable_next. Writes complete in file order (one write in flight per log),
 * so each mark is a prefix.
 */
#ifndef RN_LOG_INT_H
#define RN_LOG_INT_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>

#include "rn_log.h"

#define RN__SEG_NAME_FMT "%020" PRIu64

/* Little-endian integers of the on-disk formats (segment.c, journal.c). */
static inline void rn__put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void rn__put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t rn__get_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static inline uint64_t rn__get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
#define RN__PATH_MAX 4096

/* Sparse offset index entry: the batch at file position pos starts at
 * base + rel. */
typedef struct rn__idx {
  uint32_t rel;
  uint32_t pos;
} rn__idx_t;

/* Sparse time index entry: every batch at or before pos has max timestamp
 * <= ts, and the batch at pos is the first to reach ts. */
typedef struct rn__tidx {
  int64_t ts;
  uint32_t rel;
  uint32_t pos;
} rn__tidx_t;

typedef struct rn__seg {
  uint64_t base;  /* offset of the first record (file name) */
  uint64_t next;  /* offset after the last appended record */
  uint64_t size;  /* bytes appended */
  uint64_t written;
  uint64_t synced;
  int64_t max_ts;     /* largest record timestamp; INT64_MIN when empty */
  uint32_t epoch;     /* leader epoch of the newest batch appended in this run; 0 when recovered */
  int64_t created_ms; /* when this process created or opened it (roll by age) */
  uint64_t create_gen; /* creation order, for directory-sync tracking */
  bool dir_synced;     /* its directory entry is durable */
  bool sealed;         /* below the recovery point: synced, index files written */
  unsigned busy;       /* rn_io operations using file in flight (no delete) */
  /* Created by a roll whose open is still running on a worker: file is NULL,
   * nothing is written to it or synced for it, and the segment before it is
   * not sealed until the open completes (log.c, "roll"). */
  bool opening;        /* at most one: the active segment (log.c roll_pending) */
  rn_file_t *file;     /* owned; NULL while opening */
  rn__idx_t *idx;      /* owned, idx_len entries */
  uint32_t idx_len, idx_cap;
  rn__tidx_t *tidx; /* owned */
  uint32_t tidx_len, tidx_cap;
  uint64_t idx_last_pos; /* position of the newest idx entry */
  uint64_t tidx_last_pos;
  uint64_t jdurable;    /* journal mode: bytes whose journal record is durable */
  uint64_t idx_cp;      /* bytes covered by its newest index checkpoint (active segment) */
  uint64_t wb_pos;      /* writeback started for the bytes below this */
} rn__seg_t;

/* A run of batches bound for one segment, written with one pwrite. */
typedef struct rn__chunk {
  rn__seg_t *seg;
  uint64_t pos;        /* file position of buf[0] */
  uint8_t *buf;        /* owned */
  size_t len, cap;
  uint64_t end_offset; /* offset after its last batch */
  /* The segment's next offset and max timestamp before this chunk's first
   * batch: what a failed write rolls the segment back to. */
  uint64_t start_offset;
  int64_t start_max_ts;
  struct rn__chunk *next;
} rn__chunk_t;

typedef struct rn__ack {
  uint64_t end_offset; /* completes once the durable mark reaches this */
  uint64_t base;       /* base offset of its (first) batch; all of its batches are in one write */
  rn_log_append_cb cb;
  void *arg;
} rn__ack_t;

/* Which kind of operation left the log degraded (see struct rn_log). */
typedef enum { RN__DEG_NONE = 0, RN__DEG_WRITE, RN__DEG_ROLL, RN__DEG_SEAL, RN__DEG_SYNC } rn__degraded_src_t;

struct rn_log {
  rn_io_t *io;
  rn_fs_t *fs;
  char *dir; /* owned */
  rn_log_opts_t opts;

  rn__seg_t **segs; /* owned, sorted by base; segs[nsegs-1] is active */
  uint32_t nsegs, segs_cap;
  uint64_t create_gen;

  uint64_t next_offset;  /* next offset to assign */
  uint64_t written_next; /* all offsets below are written */
  uint64_t durable_next; /* all offsets below are fdatasync'ed */
  uint64_t recovery_point;
  /* Values of the newest recovery-point file write submitted to the
   * background lane (which runs in order, so they only grow). */
  uint64_t rp_submitted;
  uint64_t start_submitted;
  unsigned cb_depth; /* > 0 while append callbacks run: close must not free */

  /* write pipeline */
  rn__chunk_t *fill;       /* accumulating; not submitted */
  rn__chunk_t *ready_head; /* closed by a roll or size cap, in order */
  rn__chunk_t *ready_tail;
  rn__chunk_t *writing;    /* the one write in flight */
  rn__chunk_t *spare;      /* recycled chunks (buffer reuse), chained through next */
  uint32_t nspare;

  /* acks waiting for their durable mark; a ring */
  rn__ack_t *acks;
  uint32_t acks_head, acks_len, acks_cap;

  /* sync round: one at a time */
  bool round_active;
  int round_pending;
  rn_err_t round_err;
  uint64_t round_target;
  uint64_t round_gen; /* create_gen captured at round start */
  int64_t last_sync_ms;
  uint64_t round_start_ns; /* CLOCK_MONOTONIC */
  rn_hist_t sync_stats; /* fdatasync rounds, rn_hist_latency_bounds */

  /* sealing closed segments: one job at a time, in order */
  bool seal_active;
  bool delete_active;

  rn_err_t failed;
  char failed_what[96]; /* the operation that failed the log */
  /* Transient trouble (docs/storage.md, "Failures"): the last error of a
   * write, roll or seal that did not fail the log; cleared when that kind
   * of operation succeeds again. */
  rn_err_t degraded;
  rn__degraded_src_t degraded_src;
  bool rollback_active; /* a failed write is being undone: appends get `degraded` */
  /* A write that failed for want of space while a roll was pending: its
   * undo (rollback) starts when the roll's open completed, so the undo's
   * unlinks never race the open. Owned; rollback_active is set meanwhile. */
  rn__chunk_t *rollback_chunk;
  rn_err_t rollback_err;
  int64_t seal_retry_ms; /* after a transient seal failure: not before then */
  int64_t round_retry_ms; /* after a round's directory could not be opened: not before then */
  rn_file_t *dir_reserve; /* owned: a descriptor kept by a roll for the next directory sync (sync mode) */
  unsigned inflight; /* this log's rn_io operations (and journal records) not yet called back */
  bool closing;

  /* Journal mode (opts.journal, sync durability): completed writes go to
   * the journal; an append is acknowledged once its write's record is
   * durable there (jdurable_next) or its segment was fdatasync'ed
   * (durable_next), whichever comes first. Sync rounds run only for
   * checkpoints, seals and close. */
  rn_journal_t *jr;
  bool jr_attached;     /* in the journal's list (the first submission attaches) */
  uint64_t jdurable_next;
  bool cp_round;        /* the round in flight answers a checkpoint */
  bool cp_wanted;       /* a checkpoint asked while another round ran */

  /* Index checkpoints (log.c): when the active segment has grown by
   * opts.index_checkpoint_bytes since the last one, the round that syncs it also
   * writes its index files for the synced prefix, so recovery after a
   * crash scans only what follows (restart time independent of the active
   * segment's size). Captured at round start, written after it. */
  rn__seg_t *idxcp_seg;
  uint64_t idxcp_pos, idxcp_next;
  bool idxcp_active;

  /* The leader-epoch history (epochs.c; docs/storage.md, "Leader epochs
   * and replica appends"): entries strictly increasing in epoch and start
   * offset, every start below next_offset. hist_seq counts its changes;
   * hist_durable_seq is the newest version known written (the file
   * "leader-epochs"). Invariant: the file is written durably before
   * anything makes a range of offsets "trusted" at the next open (a seal
   * moving the recovery point, an index checkpoint, the clean-shutdown
   * marker, recovery's own seals), so its entries below the first offset
   * recovery scans are exact; entries from there on are rebuilt from the
   * scanned batches. */
  rn_log_epoch_t *hist; /* owned */
  uint32_t hist_n, hist_cap;
  uint64_t hist_seq, hist_durable_seq;
  /* Recovery only: scans note every batch's epoch (rn__hist_scan_note);
   * the first batch whose epoch is below the history's last goes here. */
  bool hist_collect;
  bool hist_bad;
  uint64_t hist_bad_offset;
  uint32_t hist_bad_epoch, hist_bad_last;

  /* An asynchronous truncation (log.c, "truncation"): pending until the
   * log's I/O is idle, then running on the background lane. Owned. */
  struct rn__trunc *trunc;
};

/* ---- segment.c: files, indexes, scanning ---------------------------------- */

/* Size of the index file (time index when time) a seal writes for seg. */
uint64_t rn__seg_index_file_bytes(const rn__seg_t *seg, bool time);

/* Path of the segment file with base and suffix (".log", ".index",
 * ".timeindex") into out[RN__PATH_MAX]. */
void rn__seg_path(const rn_log_t *log, uint64_t base, const char *suffix, char *out);

rn__seg_t *rn__seg_new(uint64_t base);
/* Free memory and close the file (NULL ok). Blocking only for close(). */
void rn__seg_free(rn__seg_t *seg);

/* Record a batch of len bytes at position pos in the in-memory indexes and
 * advance next/max_ts/size. */
rn_err_t rn__seg_index_batch(rn__seg_t *seg, uint64_t pos, const rn_batch_header_t *hdr,
                             uint32_t len, uint32_t interval);

/* Drop index entries at or after pos (truncate). */
void rn__seg_index_truncate(rn__seg_t *seg, uint64_t pos);

/* Result of scanning a segment file. */
typedef struct rn__scan {
  uint64_t valid_size; /* bytes of whole, verified, contiguous batches */
  uint64_t file_size;
  rn_err_t err;        /* 0 when valid_size == file_size */
  char why[160];       /* the first problem, for logs */
} rn__scan_t;

/* Read seg->file from 0, verify each batch, rebuild the in-memory indexes,
 * next, max_ts and size from the valid prefix. Blocking. Returns 0 (see
 * scan->err for a torn/corrupt tail) or a read error. */
rn_err_t rn__seg_scan(rn_log_t *log, rn__seg_t *seg, rn__scan_t *scan);
/* The same from file position from > 0, continuing the in-memory state a
 * prefix index loaded (seg->size == from). */
rn_err_t rn__seg_scan_from(rn_log_t *log, rn__seg_t *seg, uint64_t from, rn__scan_t *scan);

/* Serialise the index files of seg (covering seg->size bytes) into two
 * malloc'd buffers; *_len set. Pure. */
rn_err_t rn__seg_index_encode(const rn__seg_t *seg, uint8_t **idx, size_t *idx_len, uint8_t **tidx,
                              size_t *tidx_len);

/* Load the index files of seg when they are valid and cover exactly
 * file_size bytes. Returns 0 (loaded), RN_ECORRUPT/RN_ENOENT (caller
 * rebuilds by scanning) or an I/O error. Blocking. */
rn_err_t rn__seg_index_load(rn_log_t *log, rn__seg_t *seg, uint64_t file_size);

/* Index files for the first covered bytes of a segment that is still being
 * appended to (the active one): entries below covered, next offset and max
 * timestamp as given. Written only for bytes already fdatasync'ed, so
 * recovery may trust them and scan from covered on ("index checkpoints",
 * docs/storage.md). Pure. */
rn_err_t rn__seg_index_encode_prefix(const rn__seg_t *seg, uint64_t covered, uint64_t next, int64_t max_ts, uint8_t **idx,
                                     size_t *idx_len, uint8_t **tidx, size_t *tidx_len);
/* Move the in-memory indexes, next, size and max timestamp of from (a
 * scan's result) into seg; from keeps nothing. */
void rn__seg_take_index(rn__seg_t *seg, rn__seg_t *from);

/* Load index files covering at most file_size bytes; *covered = what they
 * cover (seg->size is set to it). Same results as rn__seg_index_load. */
rn_err_t rn__seg_index_load_prefix(rn_log_t *log, rn__seg_t *seg, uint64_t file_size, uint64_t *covered);

/* File position of the sparse index entry at or below offset (pure,
 * in memory; 0 when none). */
uint64_t rn__seg_index_pos(const rn__seg_t *seg, uint64_t offset);

/* Scan batch headers of f forward from pos (a batch boundary) to the batch
 * containing offset, without passing limit. *found and *hdr describe it.
 * Returns 0, RN_EOFFSET (not before limit), RN_ECORRUPT or a read error.
 * Any thread (pread only). */
rn_err_t rn__scan_to_offset(rn_file_t *f, uint64_t pos, uint64_t limit, uint64_t offset, uint64_t *found,
                            rn_batch_header_t *hdr);


/* Read a whole small file (malloc'd) of at most max bytes. */
rn_err_t rn__read_file(rn_fs_t *fs, const char *path, size_t max, uint8_t **data, size_t *len);

/* Small fixed-size state files: recovery point and clean-shutdown marker. */
/* The recovery-point file holds two offsets: the recovery point (segments
 * wholly below it are sealed) and the log start (segments wholly below it
 * were deleted by retention; recovery finishes deleting any left over). */
rn_err_t rn__rp_write(rn_log_t *log, uint64_t rp, uint64_t start);
rn_err_t rn__rp_read(rn_log_t *log, uint64_t *rp, uint64_t *start);
typedef struct rn__clean {
  uint64_t active_base;
  uint64_t active_size;
  uint64_t next_offset;
} rn__clean_t;
rn_err_t rn__clean_write(rn_log_t *log, const rn__clean_t *c);
rn_err_t rn__clean_read(rn_log_t *log, rn__clean_t *c);

#define RN__RP_NAME "recovery-point"
#define RN__CLEAN_NAME "clean-shutdown"

#define RN__FLOOR_NAME "journal-floor"
#define RN__HIST_NAME "leader-epochs"

/* ---- epochs.c: the leader-epoch history ------------------------------------ */

/* The file: u32 magic "RNLE" | u32 version 1 | u32 count | u32 0 | count x
 * (u32 epoch, u32 0, u64 start offset) | u64 XXH3 of everything before it.
 * Pure codecs; decode checks the checksum, the length and that epochs and
 * start offsets strictly increase (RN_ECORRUPT otherwise). *out malloc'd
 * (NULL when count is 0). */
rn_err_t rn__hist_encode(const rn_log_epoch_t *h, uint32_t n, uint8_t **out, size_t *len);
rn_err_t rn__hist_decode(const uint8_t *b, size_t len, rn_log_epoch_t **out, uint32_t *n);

/* Room for k more entries (so a later push cannot fail). */
rn_err_t rn__hist_reserve(rn_log_t *log, uint32_t k);
/* A batch of epoch at base is appended: a new entry when epoch is greater
 * than the last (or the history is empty). The caller checked epoch >= the
 * last and reserved room. */
static inline void rn__hist_note(rn_log_t *log, uint32_t epoch, uint64_t base) {
  if (log->hist_n && log->hist[log->hist_n - 1].epoch == epoch) return;
  log->hist[log->hist_n++] = (rn_log_epoch_t){.epoch = epoch, .start_offset = base};
  log->hist_seq++;
}
/* Recovery's scans: note a verified batch (reserving as needed; a batch
 * whose epoch is below the last sets hist_bad). Returns 0 or RN_ENOMEM. */
rn_err_t rn__hist_scan_note(rn_log_t *log, uint32_t epoch, uint64_t base);
/* Drop entries starting at or past end (a truncation, undone appends). */
void rn__hist_cut(rn_log_t *log, uint64_t end);
/* Retention moved the log start: entries wholly below it go (the one
 * covering it stays as it is, maybe starting below it). */
void rn__hist_trim(rn_log_t *log, uint64_t start);
/* When the history changed since its last write: its encoding (malloc'd)
 * and the version it is, for a background write. *buf NULL when clean.
 * Returns 0 or RN_ENOMEM. */
rn_err_t rn__hist_capture(const rn_log_t *log, uint8_t **buf, size_t *len, uint64_t *seq);
/* Write an encoding durably (rn_snapshot_write: tmp, fdatasync, rename,
 * directory sync). Blocking; any thread (uses only log->fs and log->dir). */
rn_err_t rn__hist_write(const rn_log_t *log, const uint8_t *buf, size_t len);
/* Version seq is durable (owner thread). */
static inline void rn__hist_written(rn_log_t *log, uint64_t seq) {
  if (seq > log->hist_durable_seq) log->hist_durable_seq = seq;
}
/* Read the file into log->hist. Returns 0, RN_ENOENT, RN_ECORRUPT or an
 * I/O error. Blocking. */
rn_err_t rn__hist_load(rn_log_t *log);
/* Journal records of this log below this LSN are never replayed (written
 * by truncate). RN_ENOENT when there is none. */
rn_err_t rn__floor_write(rn_log_t *log, uint64_t lsn);
rn_err_t rn__floor_read(rn_log_t *log, uint64_t *lsn);

/* ---- journal.c ------------------------------------------------------------- */

typedef struct rn__journal_head {
  uint32_t seq, gen;
  uint64_t size, fence_lsn, cp_lsn, cp_pos;
} rn__journal_head_t;
typedef struct rn__journal_rec {
  uint32_t kind, gen, len;
  uint64_t lsn, log_id, seg_base, file_pos, sum;
} rn__journal_rec_t;
/* Pure codecs (fuzzed): header slots and record headers. */
void rn__journal_head_encode(const rn__journal_head_t *h, uint8_t out[60]);
rn_err_t rn__journal_head_decode(const uint8_t *p, size_t len, rn__journal_head_t *h);
void rn__journal_rec_encode(const rn__journal_rec_t *r, const uint8_t *payload, uint8_t out[56]);
rn_err_t rn__journal_rec_decode_hdr(const uint8_t *p, size_t len, rn__journal_rec_t *r);
bool rn__journal_rec_check(const uint8_t *hdr, const uint8_t *payload, uint32_t len, uint64_t sum);

/* Hand a completed segment write to the journal (owner thread); it calls
 * rn__log_journal_done(log, chunk, err) once the record is durable or
 * failed. chunk is borrowed until then. */
rn_err_t rn__journal_submit(rn_journal_t *j, rn_log_t *log, uint64_t log_id, rn__chunk_t *chunk, bool dir_synced);
/* direct: the record was made durable by its segment's own fdatasync (a
 * large write: journaling it would write its bytes twice), not journaled.
 * Only a segment whose directory entry is durable qualifies (dir_synced):
 * replay could not bring back a file that vanished. */
void rn__log_journal_done(rn_log_t *log, rn__chunk_t *chunk, rn_err_t err, bool direct);
/* Whether rn__journal_submit would make a write of len bytes direct. */
bool rn__journal_is_direct(const rn_journal_t *j, size_t len, bool dir_synced);
rn_err_t rn__journal_attach(rn_journal_t *j, rn_log_t *log);
void rn__journal_detach(rn_journal_t *j, rn_log_t *log);
uint64_t rn__journal_next_lsn(rn_journal_t *j);
/* A checkpoint asks the log to fdatasync its dirty segments: 1 = started,
 * rn__journal_cp_done follows exactly once; 0 = nothing to do; < 0 = the
 * log cannot (failed). */
int rn__log_checkpoint(rn_log_t *log);
void rn__journal_cp_done(rn_journal_t *j, rn_err_t err);
/* Replay this log's recovered records at or past floor_lsn, in LSN order,
 * through fn. Blocking; any thread. */
typedef rn_err_t (*rn__journal_apply_fn)(void *arg, uint64_t seg_base, uint64_t file_pos, const uint8_t *data,
                                         uint32_t len);
rn_err_t rn__journal_replay(rn_journal_t *j, uint64_t log_id, uint64_t floor_lsn, rn__journal_apply_fn fn, void *arg,
                            uint64_t *applied);

/* ---- recovery.c ------------------------------------------------------------ */

/* Journal mode: rewrite this log's journal records into its segment files
 * (those at or past the recovery point), make them durable. Blocking. */
rn_err_t rn__log_replay(rn_log_t *log, rn_log_recovery_t *rec);

/* Build log->segs from the directory (see docs/storage.md, "Recovery").
 * Blocking. */
rn_err_t rn__log_recover(rn_log_t *log, rn_log_recovery_t *rec);

/* ---- log.c ----------------------------------------------------------------- */

void rn__log_say(const rn_log_t *log, rn_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int64_t rn__log_now(const rn_log_t *log);
rn_err_t rn__log_push_seg(rn_log_t *log, rn__seg_t *seg);

#endif
