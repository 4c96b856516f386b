/*
 * log.c — the append path, group commit, sealing, reads, retention and
 * truncation of one shard's log. Recovery lives in recovery.c, file formats
 * in segment.c.
 *
 * The append path never blocks the owner thread: an append is verified,
 * stamped and copied into the fill buffer; one write per log is in flight at
 * a time (so writes complete in file order) and everything appended while it
 * runs is coalesced into the next write. In sync mode one fdatasync round is
 * in flight at a time and covers every write completed before it started:
 * that is the group commit. Acks are released strictly in offset order when
 * the durable mark (sync) or the written mark (interval, none) passes them.
 *
 * A closed segment is "sealed" in the background: fdatasync, index files,
 * then the recovery point moves past it (tmp + rename + directory sync). Only
 * sealed segments are ever deleted by retention.
 *
 * Failures (docs/storage.md, "Failures") come in two kinds.
 *   - Transient: a write that fails for want of space (ENOSPC, EDQUOT), a
 *     segment (or index/recovery-point file) that cannot be created for want
 *     of space or file descriptors (EMFILE, ENFILE). The log stays healthy
 *     and marks itself DEGRADED. A failed write is undone: every append not
 *     yet written is dropped, the segment is cut back (ftruncate, then
 *     fdatasync) to the end of the last completed write, segments created
 *     after it are deleted, and only then are the dropped appends completed
 *     with RN_ENOSPC, so an append reported as failed is never found after
 *     a crash. While that runs appends get RN_ENOSPC; afterwards the next
 *     append simply tries again. A failed roll (its open runs on a worker)
 *     refuses just the appends made into the new segment, through their
 *     callbacks; the next append (or tick) retries the roll. A failed seal
 *     step after the segment's fdatasync is retried a second later.
 *   - Fatal: any failed fdatasync (the kernel may have dropped the dirty
 *     pages, so nothing retries it) and any other write, seal or truncate
 *     error. Pending appends complete with the error, later appends get
 *     RN_ELOGFAILED until the log is reopened (recovered).
 *
 * State: failed != 0 is FAILED (final); otherwise degraded != 0 is
 * DEGRADED (cleared when the same kind of operation succeeds again), with
 * rollback_active while a failed write is being undone; else HEALTHY.
 *
 * Leader epochs (epochs.c): every append notes its batch's epoch in the
 * in-memory history (a new entry only when the epoch grows: one compare on
 * the hot path). The history file is written on the background lane by the
 * seal or index checkpoint that would otherwise make a range trusted before
 * the file covers it, and at close; never per sync round. Undone appends
 * cut the history back with next_offset.
 *
 * Truncation (rn_log_truncate_async) is a second state beside those: log->
 * trunc pending (appends refused with RN_EBUSY, rn_log_end clamped,
 * retention and rolls by age held, the rest of the pipeline drains) and
 * then running (one job on the background lane; no round, seal, roll or
 * retention starts until its callback).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log_int.h"

#define CHUNK_MIN (256u << 10)
#define CHUNK_MAX (4u << 20)

/* ---- options, names, helpers ---------------------------------------------- */

void rn_log_opts_default(rn_log_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->durability = RN_DURABILITY_SYNC;
  o->interval_ms = 1000;
  o->segment_bytes = 1ull << 30;
  o->segment_ms = 7ll * 24 * 3600 * 1000;
  o->retention_ms = -1;
  o->retention_bytes = -1;
  o->index_interval = 4096;
  o->max_batch_bytes = 8u << 20;
  o->index_checkpoint_bytes = 32u << 20;
  o->writeback_bytes = 0; /* measured worse here: see rn_log.h */
}

void rn__log_say(const rn_log_t *log, rn_level_t level, const char *fmt, ...) {
  if (log->opts.logger.fn == NULL && level < RN_LVL_WARN) return;
  rn_logger_t dflt = rn_logger_stderr_as("storage");
  va_list ap;
  va_start(ap, fmt);
  rn_vsay(log->opts.logger.fn != NULL ? &log->opts.logger : &dflt, level, fmt, ap);
  va_end(ap);
}

int64_t rn__log_now(const rn_log_t *log) { return rn_clock_wall_ms(&log->opts.clock); }

rn_err_t rn__log_push_seg(rn_log_t *log, rn__seg_t *seg) {
  if (log->nsegs == log->segs_cap) {
    uint32_t nc = log->segs_cap ? log->segs_cap * 2 : 16;
    rn__seg_t **n = realloc(log->segs, nc * sizeof(*n));
    if (!n) return RN_ENOMEM;
    log->segs = n;
    log->segs_cap = nc;
  }
  log->segs[log->nsegs++] = seg;
  return 0;
}

static rn__seg_t *active(const rn_log_t *log) { return log->segs[log->nsegs - 1]; }
/* A roll's open is running on a worker: its segment is the active one. */
static bool roll_pending(const rn_log_t *log) { return active(log)->opening; }

/* Index of the last segment whose base <= offset (offset >= segs[0]->base). */
static uint32_t seg_for(const rn_log_t *log, uint64_t offset) {
  uint32_t lo = 0, hi = log->nsegs;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (log->segs[mid]->base <= offset)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo ? lo - 1 : 0;
}

static void trunc_kick(rn_log_t *log);
static void trunc_abandon(rn_log_t *log, rn_err_t err);
static bool trunc_running(const rn_log_t *log);

/* ---- acks ------------------------------------------------------------------ */

static rn_err_t acks_reserve(rn_log_t *log) {
  if (log->acks_len < log->acks_cap) return 0;
  uint32_t nc = log->acks_cap ? log->acks_cap * 2 : 256;
  rn__ack_t *n = malloc(nc * sizeof(*n));
  if (!n) return RN_ENOMEM;
  for (uint32_t i = 0; i < log->acks_len; i++) n[i] = log->acks[(log->acks_head + i) % log->acks_cap];
  free(log->acks);
  log->acks = n;
  log->acks_cap = nc;
  log->acks_head = 0;
  return 0;
}

static void acks_push(rn_log_t *log, const rn__ack_t *a) {
  log->acks[(log->acks_head + log->acks_len) % log->acks_cap] = *a;
  log->acks_len++;
}

/* Complete acks up to mark (err 0) or all of them (err != 0). Callbacks may
 * append: each ack is popped before its callback runs. */
static void acks_release(rn_log_t *log, uint64_t mark, rn_err_t err) {
  while (log->acks_len) {
    rn__ack_t a = log->acks[log->acks_head];
    if (!err && a.end_offset > mark) break;
    log->acks_head = (log->acks_head + 1) % log->acks_cap;
    log->acks_len--;
    if (a.cb) {
      log->cb_depth++;
      a.cb(a.arg, err, a.base);
      log->cb_depth--;
    }
  }
}

/* ---- failure ---------------------------------------------------------------- */

static void chunk_free(rn__chunk_t *c) {
  if (c) free(c->buf);
  free(c);
}

/* Forget every buffered, not yet submitted write and complete every pending
 * append with err (the log is failed or being discarded). */
static void drop_unwritten(rn_log_t *log, rn_err_t err) {
  while (log->ready_head) {
    rn__chunk_t *c = log->ready_head;
    log->ready_head = c->next;
    chunk_free(c);
  }
  log->ready_tail = NULL;
  chunk_free(log->fill);
  log->fill = NULL;
  acks_release(log, 0, err);
}

static void fail_log(rn_log_t *log, rn_err_t err, const char *what) {
  if (log->failed) return;
  log->failed = err;
  if (log->cp_wanted) {
    /* A checkpoint waits for this log: it cannot pass it now. */
    log->cp_wanted = false;
    rn__journal_cp_done(log->jr, err);
  }
  snprintf(log->failed_what, sizeof(log->failed_what), "%s", what);
  rn__log_say(log, RN_LVL_ERROR, "%s: %s failed: %s; the log refuses further appends", log->dir,
              what, rn_strerror(err));
  drop_unwritten(log, err);
  trunc_abandon(log, err); /* one still waiting to start: it never will */
}

rn_err_t rn_log_failure(const rn_log_t *log) { return log->failed; }

/* The error a transient failure is reported with (disk full: RN_ENOSPC,
 * whether the kernel said ENOSPC or EDQUOT), or 0 when err is not
 * transient and must fail the log. */
static rn_err_t transient(rn_err_t err) {
  if (err == RN_ENOSPC || err == -EDQUOT) return RN_ENOSPC;
  if (err == RN_EMFILE || err == RN_ENFILE) return err;
  return 0;
}

static const char *const degraded_names[] = {"", "write", "segment roll", "seal", "directory sync"};

/* A sync round whose directory could not be opened is retried this much
 * later (at a tick or an append); a seal, a second later. */
#define ROUND_RETRY_MS 100
#define SEAL_RETRY_MS 1000

static void set_degraded(rn_log_t *log, rn__degraded_src_t src, rn_err_t err) {
  /* Warn once per episode, not once per failed retry. */
  if (log->degraded != err || log->degraded_src != src)
    rn__log_say(log, log->degraded ? RN_LVL_DEBUG : RN_LVL_WARN,
                "%s: %s failed: %s; nothing acknowledged is lost, retrying at the next append", log->dir,
                degraded_names[src], rn_strerror(err));
  log->degraded = err;
  log->degraded_src = src;
}

/* An operation of kind src succeeded: leave DEGRADED if it put us there. */
static void clear_degraded(rn_log_t *log, rn__degraded_src_t src) {
  if (!log->degraded || log->degraded_src != src) return;
  rn__log_say(log, RN_LVL_INFO, "%s: %s succeeds again; the log is healthy", log->dir, degraded_names[src]);
  log->degraded = 0;
  log->degraded_src = RN__DEG_NONE;
}

void rn_log_health(const rn_log_t *log, rn_log_health_t *out) {
  if (log->failed) {
    *out = (rn_log_health_t){.state = RN_LOG_FAILED, .err = log->failed, .what = log->failed_what};
  } else if (log->degraded) {
    *out = (rn_log_health_t){.state = RN_LOG_DEGRADED, .err = log->degraded, .what = degraded_names[log->degraded_src]};
  } else {
    *out = (rn_log_health_t){.state = RN_LOG_HEALTHY, .err = 0, .what = ""};
  }
}

/* ---- write pipeline -------------------------------------------------------- */

static void maybe_round(rn_log_t *log);
static void maybe_seal(rn_log_t *log);

static void after_progress(rn_log_t *log);

/* Spare chunks kept per log: a fill, a write in flight and a few ready
 * chunks recycle their buffers instead of faulting in fresh pages. */
#define SPARE_MAX 4u

static void chunk_recycle(rn_log_t *log, rn__chunk_t *c) {
  if (log->nspare < SPARE_MAX && c->cap <= CHUNK_MAX * 2) {
    c->len = 0;
    c->next = log->spare;
    log->spare = c;
    log->nspare++;
  } else {
    chunk_free(c);
  }
}

static rn__chunk_t *chunk_get(rn_log_t *log, rn__seg_t *seg, size_t need) {
  rn__chunk_t *c = log->spare;
  if (c) {
    log->spare = c->next;
    log->nspare--;
  }
  if (!c) c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  size_t want = need > CHUNK_MIN ? need : CHUNK_MIN;
  if (c->cap < want) {
    /* empty: a fresh buffer, not a realloc that would copy the old one */
    uint8_t *b = malloc(want);
    if (!b) {
      chunk_free(c);
      return NULL;
    }
    free(c->buf);
    c->buf = b;
    c->cap = want;
  }
  c->seg = seg;
  c->pos = seg->size;
  c->len = 0;
  c->end_offset = seg->next;
  c->start_offset = seg->next;
  c->start_max_ts = seg->max_ts;
  c->next = NULL;
  return c;
}

static void ready_push(rn_log_t *log, rn__chunk_t *c) {
  c->next = NULL;
  if (log->ready_tail)
    log->ready_tail->next = c;
  else
    log->ready_head = c;
  log->ready_tail = c;
}

/* ---- undoing a write that failed for want of space ---------------------------
 *
 * Everything from the failed chunk on is unwritten (one write in flight, in
 * file order), so the log goes back to written_next: the segment of the
 * failed chunk is cut to the chunk's position, later segments (they hold
 * nothing written) are deleted, and every append not yet written fails. The
 * cut and the deletes run on a worker; the failed appends are completed
 * only after the cut is durable, so a batch reported as failed is never
 * found by recovery after a crash, and no later roll can create a segment
 * before the stale ones are unlinked (directory operations become durable
 * in the order issued, so no crash can leave a stale segment after a new
 * one). */

typedef struct rollback_job {
  rn_log_t *log;
  rn__seg_t *seg;      /* cut to pos; busy while the job runs */
  uint64_t pos;
  rn__seg_t **dropped; /* owned: removed from the log, deleted by the job */
  uint32_t ndropped;
  rn__ack_t *acks;     /* owned: the appends that fail, in offset order */
  uint32_t nacks;
  rn_err_t err;        /* what they fail with */
} rollback_job_t;

/* Worker thread: touches the job, the segments it holds and log->dir/fs
 * (immutable). */
static rn_err_t rollback_fn(void *arg) {
  rollback_job_t *j = arg;
  rn_fs_t *fs = j->log->fs;
  rn_err_t err = fs->truncate(j->seg->file, j->pos);
  if (!err) err = fs->datasync(j->seg->file);
  for (uint32_t i = 0; !err && i < j->ndropped; i++) {
    rn__seg_t *seg = j->dropped[i];
    if (seg->file) seg->file->fs->close(seg->file);
    seg->file = NULL;
    static const char *const sfx[] = {".index", ".timeindex", ".log"};
    for (int k = 0; k < 3 && !err; k++) {
      char path[RN__PATH_MAX];
      rn__seg_path(j->log, seg->base, sfx[k], path);
      rn_err_t e = fs->unlink(fs, path);
      if (e && e != RN_ENOENT) err = e;
    }
  }
  return err;
}

static void rollback_cb(void *arg, rn_err_t res) {
  rollback_job_t *j = arg;
  rn_log_t *log = j->log;
  log->inflight--;
  log->rollback_active = false;
  j->seg->busy--;
  for (uint32_t i = 0; i < j->ndropped; i++) rn__seg_free(j->dropped[i]);
  if (res < 0) fail_log(log, res, "cutting back a segment after a failed write");
  rn_err_t err = log->failed ? log->failed : j->err;
  for (uint32_t i = 0; i < j->nacks; i++) {
    if (!j->acks[i].cb) continue;
    log->cb_depth++;
    j->acks[i].cb(j->acks[i].arg, err, j->acks[i].base);
    log->cb_depth--;
  }
  free(j->acks);
  free(j->dropped);
  free(j);
  after_progress(log);
  trunc_kick(log);
}

static void rollback(rn_log_t *log, rn__chunk_t *c, rn_err_t err) {
  rn__seg_t *seg = c->seg;
  uint32_t si = 0;
  while (si < log->nsegs && log->segs[si] != seg) si++;
  bool ok = si < log->nsegs && c->pos == seg->written && c->start_offset == log->written_next;
  for (uint32_t i = si + 1; ok && i < log->nsegs; i++) ok = log->segs[i]->busy == 0 && log->segs[i]->written == 0;
  rollback_job_t *j = ok ? calloc(1, sizeof(*j)) : NULL;
  uint32_t ndropped = ok ? log->nsegs - si - 1 : 0;
  uint32_t first = 0; /* first ack past the written mark */
  while (first < log->acks_len && log->acks[(log->acks_head + first) % log->acks_cap].end_offset <= log->written_next)
    first++;
  uint32_t nacks = log->acks_len - first;
  if (j) {
    j->dropped = ndropped ? malloc(ndropped * sizeof(*j->dropped)) : NULL;
    j->acks = nacks ? malloc(nacks * sizeof(*j->acks)) : NULL;
    if ((ndropped && !j->dropped) || (nacks && !j->acks)) {
      free(j->dropped);
      free(j->acks);
      free(j);
      j = NULL;
    }
  }
  if (!j) {
    chunk_free(c);
    fail_log(log, err, "write");
    return;
  }
  set_degraded(log, RN__DEG_WRITE, err);
  const uint64_t pos = c->pos, start_offset = c->start_offset;
  const int64_t start_max_ts = c->start_max_ts;
  /* Forget every unwritten chunk: the failed one, the ready ones, the fill. */
  chunk_recycle(log, c);
  while (log->ready_head) {
    rn__chunk_t *r = log->ready_head;
    log->ready_head = r->next;
    chunk_recycle(log, r);
  }
  log->ready_tail = NULL;
  if (log->fill) chunk_recycle(log, log->fill);
  log->fill = NULL;
  /* The log goes back to the written mark. */
  for (uint32_t i = 0; i < ndropped; i++) j->dropped[i] = log->segs[si + 1 + i];
  j->ndropped = ndropped;
  log->nsegs = si + 1;
  rn__seg_index_truncate(seg, pos);
  seg->size = pos;
  seg->next = start_offset;
  seg->max_ts = start_max_ts;
  log->next_offset = start_offset;
  rn__hist_cut(log, start_offset);
  for (uint32_t i = 0; i < nacks; i++) j->acks[i] = log->acks[(log->acks_head + first + i) % log->acks_cap];
  j->nacks = nacks;
  log->acks_len = first;
  j->log = log;
  j->seg = seg;
  j->pos = pos;
  j->err = err;
  rn__log_say(log, RN_LVL_DEBUG, "%s: undoing %u unwritten append(s) from offset %" PRIu64 " (segment " RN__SEG_NAME_FMT ".log cut to %" PRIu64 " bytes, %u later segment(s) deleted)",
              log->dir, nacks, log->next_offset, seg->base, pos, ndropped);
  rn_err_t serr = rn_io_job(log->io, rollback_fn, rollback_cb, j);
  if (serr) {
    /* Cannot undo: the appends fail with the log. */
    for (uint32_t i = 0; i < ndropped; i++) rn__seg_free(j->dropped[i]);
    fail_log(log, serr, "submitting the cut after a failed write");
    for (uint32_t i = 0; i < nacks; i++)
      if (j->acks[i].cb) {
        log->cb_depth++;
        j->acks[i].cb(j->acks[i].arg, serr, j->acks[i].base);
        log->cb_depth--;
      }
    free(j->acks);
    free(j->dropped);
    free(j);
    return;
  }
  seg->busy++;
  log->inflight++;
  log->rollback_active = true;
}

typedef struct writeback {
  rn_log_t *log;
  rn__seg_t *seg; /* busy while it runs */
} writeback_t;

static void writeback_cb(void *arg, rn_err_t res) {
  writeback_t *w = arg;
  rn_log_t *log = w->log;
  (void)res; /* a hint: its failure changes nothing */
  w->seg->busy--;
  log->inflight--;
  free(w);
  trunc_kick(log);
}

/* Journal mode, where no fdatasync follows a journaled write: start the
 * segment's writeback every writeback_bytes, so the checkpoint's fdatasync
 * finds little left to flush instead of a second's worth at once that the
 * journal's next flush queues behind (the p99). Whole pages only: the next
 * write into a page under writeback could wait for it. (Interval mode
 * measured no better with it: off there.) */
static void start_writeback(rn_log_t *log, rn__chunk_t *c) {
  rn__seg_t *seg = c->seg;
  if (!log->jr || rn__journal_is_direct(log->jr, c->len, seg->dir_synced) || log->failed || !log->opts.writeback_bytes)
    return;
  if (seg->wb_pos > seg->written) seg->wb_pos = 0; /* cut back (truncate, undo) */
  uint64_t upto = seg->written & ~(uint64_t)4095;
  if (upto <= seg->wb_pos || upto - seg->wb_pos < log->opts.writeback_bytes) return;
  writeback_t *w = malloc(sizeof(*w));
  if (!w) return;
  *w = (writeback_t){.log = log, .seg = seg};
  if (rn_io_writeback(log->io, seg->file, seg->wb_pos, upto - seg->wb_pos, writeback_cb, w)) {
    free(w);
    return;
  }
  seg->wb_pos = upto;
  seg->busy++;
  log->inflight++;
}

static void write_cb(void *arg, rn_err_t res) {
  rn_log_t *log = arg;
  rn__chunk_t *c = log->writing;
  log->inflight--;
  log->writing = NULL;
  c->seg->busy--;
  if (res < 0) {
    rn_err_t t = log->failed ? 0 : transient(res);
    if (t && roll_pending(log)) {
      /* Undo once the roll's open completed (it may be creating a file
       * the undo would have to delete). */
      log->rollback_chunk = c;
      log->rollback_err = t;
      log->rollback_active = true;
      return;
    }
    if (t) {
      rollback(log, c, t);
      return;
    }
    chunk_free(c);
    fail_log(log, res, "write");
    return;
  }
  c->seg->written += c->len;
  log->written_next = c->end_offset;
  clear_degraded(log, RN__DEG_WRITE);
  start_writeback(log, c);
  if (log->jr && !log->failed) {
    /* Journal mode: the write is acknowledged once its record is durable
     * in the shared journal (journal.c, invariant 1: only written bytes
     * are journaled, so a checkpoint's segment syncs cover them). */
    rn_err_t err = log->jr_attached ? 0 : rn__journal_attach(log->jr, log);
    if (!err) {
      log->jr_attached = true;
      err = rn__journal_submit(log->jr, log, log->opts.journal_id, c, c->seg->dir_synced);
    }
    if (err) {
      chunk_free(c);
      fail_log(log, err, "journal submission");
      return;
    }
    c->seg->busy++;
    log->inflight++;
  } else {
    chunk_recycle(log, c);
  }
  after_progress(log);
}

/* The end of what readers may see, and acks may be released up to: the
 * durable mark (sync) or the written mark. rn_log_end clamps it further
 * while a truncation waits or runs. */
static uint64_t visible_end(const rn_log_t *log) {
  if (log->opts.durability != RN_DURABILITY_SYNC) return log->written_next;
  return log->jdurable_next > log->durable_next ? log->jdurable_next : log->durable_next;
}

void rn__log_journal_done(rn_log_t *log, rn__chunk_t *c, rn_err_t err, bool direct) {
  log->inflight--;
  c->seg->busy--;
  if (err) {
    chunk_free(c);
    fail_log(log, err, direct ? "fdatasync (journal round)" : "journal write");
    return;
  }
  uint64_t end = c->pos + c->len;
  if (end > c->seg->jdurable) c->seg->jdurable = end;
  /* Its fdatasync ran after every earlier write of the file had landed. */
  if (direct && end > c->seg->synced) c->seg->synced = end;
  if (c->end_offset > log->jdurable_next) log->jdurable_next = c->end_offset;
  chunk_recycle(log, c);
  if (!log->failed) acks_release(log, visible_end(log), 0);
  trunc_kick(log);
}

static void kick_write(rn_log_t *log) {
  if (log->writing || log->failed || log->rollback_active) return;
  rn__chunk_t *c = log->ready_head;
  if (c ? c->seg->opening : log->fill && log->fill->seg->opening) return; /* queued behind a roll */
  if (c) {
    log->ready_head = c->next;
    if (!log->ready_head) log->ready_tail = NULL;
  } else if (log->fill && log->fill->len) {
    c = log->fill;
    log->fill = NULL;
  } else {
    return;
  }
  struct iovec iov = {.iov_base = c->buf, .iov_len = c->len};
  log->writing = c;
  rn_err_t err = rn_io_write(log->io, c->seg->file, &iov, 1, c->pos, write_cb, log);
  if (err) {
    log->writing = NULL;
    chunk_free(c);
    fail_log(log, err, "write submission");
    return;
  }
  c->seg->busy++;
  log->inflight++;
}

static void after_progress(rn_log_t *log) {
  if (log->failed) return;
  if (log->opts.durability != RN_DURABILITY_SYNC) acks_release(log, log->written_next, 0);
  maybe_round(log);
  maybe_seal(log);
  kick_write(log);
  trunc_kick(log);
}

/* ---- sync rounds (group commit) -------------------------------------------- */

typedef struct round_op {
  rn_log_t *log;
  rn__seg_t *seg;       /* NULL for the directory sync */
  uint64_t upto;        /* seg->written when submitted */
  rn_file_t *reserve;   /* directory sync: the descriptor a roll kept for it (owned) */
} round_op_t;

static bool needs_sync(const rn_log_t *log) {
  if (log->written_next > log->durable_next) return true;
  for (uint32_t i = log->nsegs; i-- > 0;) {
    const rn__seg_t *seg = log->segs[i];
    if (seg->opening) continue; /* its file does not exist yet */
    if (seg->synced < seg->written || !seg->dir_synced) return true;
    if (seg->sealed) break;
  }
  return false;
}

void rn_log_sync_stats(const rn_log_t *log, rn_hist_t *out) { *out = log->sync_stats; }

static void cp_answer(rn_log_t *log, rn_err_t err);
static void index_checkpoint(rn_log_t *log);

static void round_done_one(rn_log_t *log) {
  if (--log->round_pending) return;
  log->round_active = false;
  rn_err_t cp_err = log->round_err ? log->round_err : log->failed;
  if (log->cp_round) cp_answer(log, cp_err == RN_ECANCELED ? 0 : cp_err);
  rn_hist_record(&log->sync_stats, rn_hist_latency_bounds, RN_HIST_BUCKETS,
                 (double)(rn_clock_mono_ns(&log->opts.clock) - log->round_start_ns) / 1e9);
  if (log->round_err) {
    rn_err_t t = transient(log->round_err);
    if (t == RN_EMFILE || t == RN_ENFILE) {
      /* Only opening the directory for its fsync can fail this way (an
       * fdatasync on an open file cannot): nothing was synced and nothing
       * lost, so the round is simply tried again. */
      set_degraded(log, RN__DEG_SYNC, t);
      log->round_retry_ms = rn__log_now(log) + ROUND_RETRY_MS;
      trunc_kick(log);
      return;
    }
    fail_log(log, log->round_err, "fdatasync");
    return;
  }
  if (log->failed) return;
  log->round_retry_ms = 0;
  clear_degraded(log, RN__DEG_SYNC);
  if (log->round_target > log->durable_next) log->durable_next = log->round_target;
  for (uint32_t i = 0; i < log->nsegs; i++)
    if (log->segs[i]->create_gen <= log->round_gen) log->segs[i]->dir_synced = true;
  log->last_sync_ms = rn__log_now(log);
  if (log->opts.durability == RN_DURABILITY_SYNC) acks_release(log, visible_end(log), 0);
  index_checkpoint(log);
  maybe_round(log);
  maybe_seal(log);
  trunc_kick(log);
}

/* ---- index checkpoints ------------------------------------------------------------ */

typedef struct idxcp_job {
  rn_log_t *log;
  rn__seg_t *seg;
  uint64_t pos;
  uint8_t *idx, *tidx;
  size_t idx_len, tidx_len;
  /* The epoch history when it changed since its last write: written (and
   * durable) before the index files, because recovery trusts the prefix
   * they cover without scanning it. NULL = already on disk. */
  uint8_t *hist;
  size_t hist_len;
  uint64_t hist_seq;
  bool hist_ok; /* set by the worker */
  char idx_path[RN__PATH_MAX];
  char tidx_path[RN__PATH_MAX];
} idxcp_job_t;

/* Write a whole file without fdatasync: an index checkpoint need not be
 * durable (lost or torn, its checksum fails and recovery scans instead);
 * only the data it covers must be, and it is. */
static rn_err_t write_file_nosync(rn_fs_t *fs, const char *path, const uint8_t *data, size_t len) {
  rn_file_t *f = NULL;
  rn_err_t err = fs->open(fs, path, RN_FS_CREATE | RN_FS_TRUNC, &f);
  if (err) return err;
  struct iovec iov;
  memcpy(&iov.iov_base, &data, sizeof(data)); /* iovec has no const variant */
  iov.iov_len = len;
  err = fs->pwritev(f, &iov, 1, 0);
  fs->close(f);
  return err;
}

/* Background lane (in order with seals, which rewrite the same files whole,
 * durably, later): touches only the job and the log's immutable fs. */
static rn_err_t idxcp_fn(void *arg) {
  idxcp_job_t *j = arg;
  if (j->hist) {
    rn_err_t err = rn__hist_write(j->log, j->hist, j->hist_len);
    if (err) return err;
    j->hist_ok = true;
  }
  rn_err_t err = write_file_nosync(j->log->fs, j->idx_path, j->idx, j->idx_len);
  if (!err) err = write_file_nosync(j->log->fs, j->tidx_path, j->tidx, j->tidx_len);
  return err;
}

static void idxcp_cb(void *arg, rn_err_t res) {
  idxcp_job_t *j = arg;
  rn_log_t *log = j->log;
  log->inflight--;
  log->idxcp_active = false;
  j->seg->busy--;
  if (j->hist_ok) rn__hist_written(log, j->hist_seq);
  if (res == 0)
    j->seg->idx_cp = j->pos;
  else /* only restart time suffers: recovery then scans the whole segment */
    rn__log_say(log, RN_LVL_DEBUG, "%s: index checkpoint of segment " RN__SEG_NAME_FMT " failed: %s", log->dir,
                j->seg->base, rn_strerror(res));
  free(j->idx);
  free(j->tidx);
  free(j->hist);
  free(j);
  trunc_kick(log);
}

/* After a successful round: write the index files of the active segment's
 * prefix the round made durable (captured at its start). */
static void index_checkpoint(rn_log_t *log) {
  rn__seg_t *seg = log->idxcp_seg;
  log->idxcp_seg = NULL;
  if (!seg || log->failed || log->idxcp_active || seg != active(log) || seg->synced < log->idxcp_pos) return;
  idxcp_job_t *j = calloc(1, sizeof(*j));
  if (!j) return;
  j->log = log;
  j->seg = seg;
  j->pos = log->idxcp_pos;
  rn__seg_path(log, seg->base, ".index", j->idx_path);
  rn__seg_path(log, seg->base, ".timeindex", j->tidx_path);
  if (rn__seg_index_encode_prefix(seg, j->pos, log->idxcp_next, seg->max_ts, &j->idx, &j->idx_len, &j->tidx,
                                  &j->tidx_len) ||
      rn__hist_capture(log, &j->hist, &j->hist_len, &j->hist_seq) || rn_io_job_bg(log->io, idxcp_fn, idxcp_cb, j)) {
    free(j->idx);
    free(j->tidx);
    free(j->hist);
    free(j);
    return;
  }
  seg->busy++;
  log->inflight++;
  log->idxcp_active = true;
}

/* ---- checkpoints (journal mode) ------------------------------------------------ */

static void cp_answer(rn_log_t *log, rn_err_t err) {
  log->cp_round = false;
  rn__journal_cp_done(log->jr, err);
}

int rn__log_checkpoint(rn_log_t *log) {
  if (log->failed) return log->failed == RN_ECANCELED ? 0 : log->failed; /* a discarded log's data goes */
  if (!log->round_active && !needs_sync(log)) return 0;
  if (log->round_retry_ms) return log->degraded ? log->degraded : RN_EAGAIN;
  log->cp_wanted = true; /* the next round started answers it */
  maybe_round(log);
  return 1;
}

static void round_op_cb(void *arg, rn_err_t res) {
  round_op_t *op = arg;
  rn_log_t *log = op->log;
  log->inflight--;
  if (op->seg) {
    op->seg->busy--;
    if (res == 0 && op->upto > op->seg->synced) op->seg->synced = op->upto;
  }
  if (res < 0 && !log->round_err) log->round_err = res;
  free(op);
  round_done_one(log);
}

static rn_err_t sync_dir_job(void *arg) {
  round_op_t *op = arg;
  /* Give the kept descriptor back right before the directory open needs one. */
  if (op->reserve) op->reserve->fs->close(op->reserve);
  op->reserve = NULL;
  return op->log->fs->sync_dir(op->log->fs, op->log->dir);
}

static void start_round(rn_log_t *log) {
  if (log->round_active || log->failed || trunc_running(log)) return;
  log->round_active = true;
  /* The round syncs the active segment up to its written mark, which is
   * where written_next lies once anything was written into it. */
  rn__seg_t *a = active(log);
  log->idxcp_seg = NULL;
  /* Every 1/16 of the segment's size, at least every/32, at most every:
   * what recovery rescans stays a small part of each active segment, and
   * rewriting the index costs ~16 x 0.2 % of the data written. */
  uint64_t every = log->opts.index_checkpoint_bytes, step = a->written / 16;
  if (step < every / 32) step = every / 32;
  if (step > every) step = every;
  if (every && !a->opening && !log->idxcp_active && a->written > 0 && a->written >= a->idx_cp + step) {
    log->idxcp_seg = a;
    log->idxcp_pos = a->written;
    log->idxcp_next = log->written_next;
  }
  if (log->cp_wanted) {
    log->cp_wanted = false;
    log->cp_round = true;
  }
  log->round_start_ns = rn_clock_mono_ns(&log->opts.clock);
  log->round_pending = 1; /* guard until every op is submitted */
  log->round_err = 0;
  log->round_target = log->written_next;
  log->round_gen = log->create_gen;
  bool dir = false;
  for (uint32_t i = log->nsegs; i-- > 0;) {
    rn__seg_t *seg = log->segs[i];
    if (!seg->dir_synced && !seg->opening) dir = true;
    if (seg->synced < seg->written) {
      round_op_t *op = malloc(sizeof(*op));
      rn_err_t err = op ? 0 : RN_ENOMEM;
      if (op) {
        *op = (round_op_t){.log = log, .seg = seg, .upto = seg->written};
        err = rn_io_datasync(log->io, seg->file, round_op_cb, op);
      }
      if (err) {
        free(op);
        if (!log->round_err) log->round_err = err;
        break;
      }
      seg->busy++;
      log->inflight++;
      log->round_pending++;
    }
    if (seg->sealed) break;
  }
  if (dir && !log->round_err) {
    round_op_t *op = malloc(sizeof(*op));
    rn_err_t err = op ? 0 : RN_ENOMEM;
    if (op) {
      *op = (round_op_t){.log = log, .reserve = log->dir_reserve};
      err = rn_io_job(log->io, sync_dir_job, round_op_cb, op);
      if (!err) log->dir_reserve = NULL;
    }
    if (err) {
      free(op);
      log->round_err = err;
    } else {
      log->inflight++;
      log->round_pending++;
    }
  }
  round_done_one(log);
}

/* Start a round when the mode (or closing, or a checkpoint) wants one now.
 * In journal mode the journal acknowledges appends: rounds run only for
 * checkpoints and close. */
static void maybe_round(rn_log_t *log) {
  if (log->round_active || log->failed || trunc_running(log)) return;
  if (log->round_retry_ms && rn__log_now(log) < log->round_retry_ms) return;
  bool want = log->closing || log->cp_wanted || (log->opts.durability == RN_DURABILITY_SYNC && !log->jr);
  if (!want) return;
  if (needs_sync(log)) {
    start_round(log);
  } else if (log->cp_wanted) {
    log->cp_wanted = false; /* nothing left to sync */
    rn__journal_cp_done(log->jr, 0);
  }
}

/* ---- sealing closed segments ------------------------------------------------ */

typedef struct seal_job {
  rn_log_t *log;
  rn__seg_t *seg;
  bool data_synced; /* the segment's fdatasync succeeded */
  /* The epoch history when it changed since its last write: durable
   * before the recovery point passes the segment (recovery will not scan
   * it again). NULL = already on disk. */
  uint8_t *hist;
  size_t hist_len;
  uint64_t hist_seq;
  bool hist_ok; /* set by the worker */
  uint64_t rp;
  uint64_t start;
  uint8_t *idx, *tidx;
  size_t idx_len, tidx_len;
  char idx_path[RN__PATH_MAX];
  char tidx_path[RN__PATH_MAX];
} seal_job_t;

/* Worker thread: touches only the job, the segment's file handle (kept
 * alive by seg->busy) and the log's immutable dir/fs. */
static rn_err_t seal_fn(void *arg) {
  seal_job_t *j = arg;
  rn_fs_t *fs = j->log->fs;
  rn_err_t err = fs->datasync(j->seg->file);
  if (err) return err;
  j->data_synced = true;
  /* Every step below rewrites a whole file, so a failed one (disk full, no
   * file descriptor) can simply be retried. */
  err = rn_fs_write_file(fs, j->idx_path, j->idx, j->idx_len);
  if (!err) err = rn_fs_write_file(fs, j->tidx_path, j->tidx, j->tidx_len);
  if (!err && j->hist) {
    err = rn__hist_write(j->log, j->hist, j->hist_len);
    j->hist_ok = err == 0;
  }
  if (!err) err = rn__rp_write(j->log, j->rp, j->start);
  return err;
}

static void seal_cb(void *arg, rn_err_t res) {
  seal_job_t *j = arg;
  rn_log_t *log = j->log;
  log->inflight--;
  log->seal_active = false;
  j->seg->busy--;
  if (j->hist_ok) rn__hist_written(log, j->hist_seq);
  rn_err_t t = res < 0 && j->data_synced ? transient(res) : 0;
  if (t) {
    if (j->seg->synced < j->seg->size) j->seg->synced = j->seg->size;
    set_degraded(log, RN__DEG_SEAL, t);
    log->seal_retry_ms = rn__log_now(log) + SEAL_RETRY_MS;
  } else if (res < 0) {
    char what[96];
    snprintf(what, sizeof(what), "sealing segment " RN__SEG_NAME_FMT, j->seg->base);
    fail_log(log, res, what);
  } else {
    log->seal_retry_ms = 0;
    clear_degraded(log, RN__DEG_SEAL);
    j->seg->sealed = true;
    if (j->seg->synced < j->seg->size) j->seg->synced = j->seg->size;
    log->recovery_point = j->rp;
  }
  free(j->idx);
  free(j->tidx);
  free(j->hist);
  free(j);
  if (!log->failed) {
    maybe_seal(log);
    maybe_round(log);
  }
  trunc_kick(log);
}

static void maybe_seal(rn_log_t *log) {
  if (log->seal_active || log->failed || trunc_running(log)) return;
  if (log->seal_retry_ms && rn__log_now(log) < log->seal_retry_ms) return;
  rn__seg_t *seg = NULL;
  /* The segment before a pending roll stays active until the open succeeds. */
  uint32_t closed = log->nsegs - (roll_pending(log) ? 2u : 1u);
  for (uint32_t i = 0; i < closed; i++) {
    if (!log->segs[i]->sealed) {
      seg = log->segs[i];
      break;
    }
  }
  if (!seg || seg->written != seg->size) return;
  seal_job_t *j = calloc(1, sizeof(*j));
  rn_err_t err = j ? 0 : RN_ENOMEM;
  if (!err) {
    j->log = log;
    j->seg = seg;
    j->rp = seg->next;
    j->start = log->start_submitted;
    rn__seg_path(log, seg->base, ".index", j->idx_path);
    rn__seg_path(log, seg->base, ".timeindex", j->tidx_path);
    err = rn__seg_index_encode(seg, &j->idx, &j->idx_len, &j->tidx, &j->tidx_len);
  }
  if (!err) err = rn__hist_capture(log, &j->hist, &j->hist_len, &j->hist_seq);
  if (!err) err = rn_io_job_bg(log->io, seal_fn, seal_cb, j);
  if (err) {
    if (j) {
      free(j->idx);
      free(j->tidx);
      free(j->hist);
    }
    free(j);
    fail_log(log, err, "seal submission");
    return;
  }
  seg->busy++;
  log->seal_active = true;
  log->rp_submitted = j->rp;
  log->inflight++;
}

/* ---- roll -------------------------------------------------------------------- *
 *
 * A roll never blocks the owner thread. The new segment joins the log at
 * once (its base, in-memory indexes, offsets for the appends that follow),
 * but its files are created on a worker (roll_fn) and, until that open has
 * completed (seg->opening), nothing is written to it, no sync round covers
 * its directory entry and the segment before it is not sealed: appends are
 * queued behind the pending roll. One roll is pending at a time. When the
 * open fails, the new segment is dropped together with every append made
 * into it (none was written): they complete with the error, the segment
 * before becomes the active one again, and the offsets are reused. EMFILE,
 * ENFILE and ENOSPC leave the log healthy (DEGRADED); the next append (or
 * tick) that wants the roll tries it again. So a roll that cannot open its
 * files never leaves acks waiting. The directory sync is part of the next
 * round (sync) or of the old segment's seal, as before. */

typedef struct roll_job {
  rn_log_t *log;
  rn__seg_t *seg;        /* in log->segs, opening */
  bool want_reserve;     /* sync mode without a kept directory descriptor */
  rn_file_t *file;       /* result: the new segment (owned until roll_cb) */
  rn_file_t *reserve;    /* result: a second handle for the directory sync */
  char path[RN__PATH_MAX];
} roll_job_t;

/* Worker thread: touches only the job and the log's immutable fs. */
static rn_err_t roll_fn(void *arg) {
  roll_job_t *j = arg;
  rn_fs_t *fs = j->log->fs;
  rn_err_t err = fs->open(fs, j->path, RN_FS_CREATE | RN_FS_TRUNC, &j->file);
  /* Sync mode acknowledges nothing in the new segment before its directory
   * entry is durable, and the directory sync needs a descriptor of its
   * own: keep one for it now (a second handle on the new file), so a roll
   * that would leave none fails here, retriably, instead of leaving acks
   * waiting for a descriptor. */
  if (!err && j->want_reserve) {
    err = fs->open(fs, j->path, RN_FS_RDONLY, &j->reserve);
    if (err) {
      j->file->fs->close(j->file);
      j->file = NULL;
    }
  }
  return err;
}

/* The pending segment seg (the active one, nothing written) could not be
 * opened: forget it and every append made into it; they complete with err. */
static void roll_drop(rn_log_t *log, rn__seg_t *seg, rn_err_t err) {
  rn__chunk_t **pp = &log->ready_head;
  log->ready_tail = NULL;
  for (rn__chunk_t *c = log->ready_head, *n; c; c = n) {
    n = c->next;
    if (c->seg == seg) {
      *pp = n;
      chunk_recycle(log, c);
    } else {
      log->ready_tail = c;
      pp = &c->next;
    }
  }
  if (log->fill && log->fill->seg == seg) {
    chunk_recycle(log, log->fill);
    log->fill = NULL;
  }
  uint32_t first = 0; /* first ack in the dropped segment */
  while (first < log->acks_len && log->acks[(log->acks_head + first) % log->acks_cap].base < seg->base) first++;
  uint32_t n = log->acks_len - first;
  rn__ack_t *dropped = n ? malloc(n * sizeof(*dropped)) : NULL;
  for (uint32_t i = 0; dropped && i < n; i++) dropped[i] = log->acks[(log->acks_head + first + i) % log->acks_cap];
  log->nsegs--;
  log->next_offset = seg->base;
  rn__hist_cut(log, seg->base);
  rn__seg_free(seg); /* no file: it never opened */
  if (n && !dropped) {
    fail_log(log, RN_ENOMEM, "segment roll"); /* completes every pending append */
    return;
  }
  log->acks_len = first;
  rn__log_say(log, RN_LVL_DEBUG, "%s: roll to segment " RN__SEG_NAME_FMT " failed: %s; %u append(s) refused", log->dir,
              log->next_offset, rn_strerror(err), n);
  for (uint32_t i = 0; i < n; i++) {
    if (!dropped[i].cb) continue;
    log->cb_depth++;
    dropped[i].cb(dropped[i].arg, err, dropped[i].base);
    log->cb_depth--;
  }
  free(dropped);
}

static void roll_cb(void *arg, rn_err_t res) {
  roll_job_t *j = arg;
  rn_log_t *log = j->log;
  rn__seg_t *seg = j->seg;
  log->inflight--;
  seg->opening = false;
  /* It exists now (or stays empty and closed on a failed log, or goes with
   * the undo below); a dropped one leaves just a gap in the numbering. */
  seg->create_gen = ++log->create_gen;
  if (res == 0) {
    seg->file = j->file; /* even on a failed log: freed with it */
    /* Only a roll keeps a reserve, it asks for one only when none is kept,
     * and one roll is pending at a time: none was kept since. */
    if (j->reserve) log->dir_reserve = j->reserve;
    if (!log->failed) {
      rn__log_say(log, RN_LVL_DEBUG, "%s: rolled to segment " RN__SEG_NAME_FMT, log->dir, seg->base);
      clear_degraded(log, RN__DEG_ROLL);
    }
  } else if (!log->failed) {
    rn_err_t t = transient(res);
    if (t && log->rollback_chunk) {
      /* Nothing here: the undo below drops the new segment (and unlinks a
       * .log the open may have left) with every unwritten append, in
       * offset order. */
    } else if (t) {
      set_degraded(log, RN__DEG_ROLL, t);
      roll_drop(log, seg, t);
    } else {
      fail_log(log, res, "segment roll"); /* completes every pending append, in order */
      log->nsegs--;
      log->next_offset = seg->base;
      rn__hist_cut(log, seg->base);
      rn__seg_free(seg);
    }
  }
  free(j);
  rn__chunk_t *c = log->rollback_chunk;
  if (c) {
    /* A write failed for want of space while the roll was pending. */
    log->rollback_chunk = NULL;
    log->rollback_active = false;
    if (log->failed)
      chunk_free(c);
    else
      rollback(log, c, log->rollback_err);
    return;
  }
  after_progress(log);
}

/* Start a new segment at next_offset; its files are opened on a worker
 * (see above). Fails at once only when nothing can be submitted. */
static rn_err_t roll(rn_log_t *log) {
  rn__seg_t *seg = rn__seg_new(log->next_offset);
  roll_job_t *j = seg ? calloc(1, sizeof(*j)) : NULL;
  rn_err_t err = j ? rn__log_push_seg(log, seg) : RN_ENOMEM;
  if (err) {
    free(j);
    rn__seg_free(seg);
    return err;
  }
  j->log = log;
  j->seg = seg;
  j->want_reserve = log->opts.durability == RN_DURABILITY_SYNC && !log->dir_reserve;
  rn__seg_path(log, seg->base, ".log", j->path);
  seg->opening = true;
  seg->create_gen = UINT64_MAX; /* no round covers it before it exists */
  seg->created_ms = rn__log_now(log);
  err = rn_io_job(log->io, roll_fn, roll_cb, j);
  if (err) {
    log->nsegs--;
    rn__seg_free(seg);
    free(j);
    return err;
  }
  log->inflight++;
  if (log->fill && log->fill->len) {
    ready_push(log, log->fill);
    log->fill = NULL;
  }
  return 0;
}

static bool wants_roll(const rn_log_t *log, size_t len, uint32_t records, int64_t now) {
  const rn__seg_t *a = active(log);
  if (a->size == 0) return false;
  if (a->size + len > log->opts.segment_bytes) return true;
  /* Index entries hold offsets relative to the segment base in 32 bits. */
  if (a->next + records - a->base > UINT32_MAX) return true;
  return log->opts.segment_ms > 0 && now - a->created_ms >= log->opts.segment_ms;
}

/* ---- open / close ------------------------------------------------------------- */

/* Owner thread: leave the journal's list (checkpoints stop asking). */
static void journal_detach(rn_log_t *log) {
  if (log->jr_attached) rn__journal_detach(log->jr, log);
  log->jr_attached = false;
}

static void log_free(rn_log_t *log) {
  chunk_free(log->rollback_chunk);
  if (log->dir_reserve) log->dir_reserve->fs->close(log->dir_reserve);
  for (uint32_t i = 0; i < log->nsegs; i++) rn__seg_free(log->segs[i]);
  free(log->segs);
  chunk_free(log->fill);
  while (log->spare) {
    rn__chunk_t *c = log->spare;
    log->spare = c->next;
    chunk_free(c);
  }
  while (log->ready_head) {
    rn__chunk_t *c = log->ready_head;
    log->ready_head = c->next;
    chunk_free(c);
  }
  free(log->acks);
  free(log->hist);
  free(log->trunc); /* only one that never started is left here */
  free(log->dir);
  free(log);
}

rn_err_t rn_log_open(rn_io_t *io, const char *dir, const rn_log_opts_t *opts, rn_log_t **out,
                     rn_log_recovery_t *rec) {
  rn_assert_may_block("rn_log_open (open, scan, recovery)");
  rn_log_recovery_t local;
  if (!rec) rec = &local;
  memset(rec, 0, sizeof(*rec));
  *out = NULL;
  if (!io || !dir || !*dir) return RN_EINVAL;
  rn_log_t *log = calloc(1, sizeof(*log));
  if (!log) return RN_ENOMEM;
  if (opts)
    log->opts = *opts;
  else
    rn_log_opts_default(&log->opts);
  const rn_log_opts_t *o = &log->opts;
  if (o->durability > RN_DURABILITY_NONE || o->index_interval == 0 || o->max_batch_bytes < RN_BATCH_HEADER_SIZE ||
      o->max_batch_bytes > RN_BATCH_MAX_SIZE || o->segment_bytes < 4096 ||
      o->segment_bytes > (uint64_t)UINT32_MAX - o->max_batch_bytes ||
      (o->durability == RN_DURABILITY_INTERVAL && o->interval_ms == 0)) {
    snprintf(rec->message, sizeof(rec->message), "invalid log options");
    free(log);
    return RN_EINVAL;
  }
  if (o->journal && o->durability == RN_DURABILITY_SYNC) {
    uint64_t chunk_max = o->max_batch_bytes > CHUNK_MIN ? o->max_batch_bytes : CHUNK_MIN;
    if (o->journal_id == 0 || chunk_max > rn_journal_max_record(o->journal)) {
      snprintf(rec->message, sizeof(rec->message),
               o->journal_id == 0 ? "invalid log options: a journal needs a journal_id"
                                  : "invalid log options: the journal is too small for max_batch_bytes (a record may be a quarter of it)");
      free(log);
      return RN_EINVAL;
    }
    log->jr = o->journal;
  }
  log->io = io;
  log->fs = rn_io_fs(io);
  log->dir = strdup(dir);
  if (!log->dir) {
    free(log);
    return RN_ENOMEM;
  }
  size_t dl = strlen(log->dir);
  while (dl > 1 && log->dir[dl - 1] == '/') log->dir[--dl] = '\0';
  rn_err_t err = log->jr ? rn__log_replay(log, rec) : 0;
  if (!err) err = rn__log_recover(log, rec);
  if (err) {
    rn__log_say(log, RN_LVL_ERROR, "%s", rec->message);
    log_free(log);
    return err;
  }
  log->last_sync_ms = rn__log_now(log);
  if (rec->segments_scanned || !rec->clean)
    rn__log_say(log, RN_LVL_INFO, "%s: recovered %u segment(s), scanned %u, truncated %" PRIu64 " byte(s), next offset %" PRIu64,
                log->dir, rec->segments, rec->segments_scanned, rec->bytes_truncated, log->next_offset);
  *out = log;
  return 0;
}

rn_err_t rn_log_close(rn_log_t *log) {
  if (!log) return 0;
  if (log->cb_depth) return RN_EBUSY; /* never free a log from its own callback */
  log->closing = true;
  trunc_abandon(log, RN_ECANCELED); /* one not started yet; a running one is waited for */
  for (;;) {
    if (!log->failed) {
      kick_write(log);
      if (!log->writing && !log->ready_head && !(log->fill && log->fill->len)) maybe_round(log);
      maybe_seal(log);
    }
    if (log->inflight == 0) break;
    rn_assert_may_block("rn_log_close (waits for in-flight I/O)");
    rn_io_wait(log->io, -1);
  }
  rn_err_t err = log->failed;
  if (!err && needs_sync(log)) {
    /* A sync round that could not open the directory (no descriptor) is
     * held back: say so, and leave no clean-shutdown marker. */
    err = log->degraded ? log->degraded : RN_EIO;
    rn__log_say(log, RN_LVL_ERROR, "%s: close could not sync everything: %s; the next open recovers by scanning", log->dir,
                rn_strerror(err));
  }
  bool unsealed = false; /* a seal that failed for want of space or fds */
  for (uint32_t i = 0; !err && i + 1 < log->nsegs; i++) unsealed |= !log->segs[i]->sealed;
  if (!err && unsealed) {
    /* Everything is synced, but the recovery point must not pass a closed
     * segment without index files: the next open scans from it instead. */
    rn__log_say(log, RN_LVL_WARN, "%s: closing with an unsealed segment (%s); the next open verifies it", log->dir,
                rn_strerror(log->degraded));
  } else if (!err) {
    /* Everything is synced and every closed segment sealed: write the active
     * segment's index files and the marker that makes the next open cheap. */
    rn__seg_t *a = active(log);
    uint8_t *ib, *tb;
    size_t il, tl;
    err = rn__seg_index_encode(a, &ib, &il, &tb, &tl);
    if (!err) {
      char path[RN__PATH_MAX];
      rn__seg_path(log, a->base, ".index", path);
      err = rn_fs_write_file(log->fs, path, ib, il);
      rn__seg_path(log, a->base, ".timeindex", path);
      if (!err) err = rn_fs_write_file(log->fs, path, tb, tl);
      free(ib);
      free(tb);
    }
    /* The epoch history before the marker: the next open trusts it for
     * every offset without scanning. */
    uint8_t *hb = NULL;
    size_t hl = 0;
    uint64_t hseq = 0;
    if (!err) err = rn__hist_capture(log, &hb, &hl, &hseq);
    if (!err && hb) err = rn__hist_write(log, hb, hl);
    if (!err) rn__hist_written(log, hseq);
    free(hb);
    if (!err && (log->recovery_point != a->base || log->start_submitted != rn_log_start(log)))
      err = rn__rp_write(log, a->base, rn_log_start(log));
    if (!err) {
      rn__clean_t c = {.active_base = a->base, .active_size = a->size, .next_offset = log->next_offset};
      err = rn__clean_write(log, &c);
    }
    if (err && transient(err)) {
      /* Every record is durable; only the files that make the next open
       * cheap are missing (disk full, no fd): it recovers by scanning. */
      rn__log_say(log, RN_LVL_WARN, "%s: clean-shutdown files not written: %s; the next open recovers by scanning",
                  log->dir, rn_strerror(err));
      err = 0;
    } else if (err) {
      rn__log_say(log, RN_LVL_ERROR, "%s: clean shutdown failed: %s", log->dir, rn_strerror(err));
    }
  }
  acks_release(log, 0, err ? err : RN_ECLOSED); /* nothing should be left */
  journal_detach(log);
  log_free(log);
  return err;
}

rn_err_t rn_log_close_discard(rn_log_t *log) {
  if (!log) return 0;
  if (log->cb_depth) return RN_EBUSY;
  /* Fail first so nothing new is submitted; then let in-flight I/O land. */
  rn_log_discard_begin(log);
  if (log->inflight) rn_assert_may_block("rn_log_close_discard (waits for in-flight I/O)");
  while (log->inflight) rn_io_wait(log->io, -1);
  acks_release(log, 0, RN_ECANCELED);
  log_free(log);
  return 0;
}

void rn_log_discard_begin(rn_log_t *log) {
  if (!log || log->cb_depth) return;
  log->closing = true;
  trunc_abandon(log, RN_ECANCELED);
  if (!log->failed) {
    log->failed = RN_ECANCELED;
    if (log->cp_wanted) {
      log->cp_wanted = false;
      rn__journal_cp_done(log->jr, 0); /* its data is going: nothing to keep */
    }
    drop_unwritten(log, RN_ECANCELED);
  }
  journal_detach(log);
}

unsigned rn_log_inflight(const rn_log_t *log) { return log ? log->inflight : 0; }

/* ---- append ------------------------------------------------------------------ */

/* Whether appends may go in now: 0 or the error they get. */
static rn_err_t append_state(const rn_log_t *log) {
  if (log->failed) return RN_ELOGFAILED;
  if (log->closing) return RN_ECLOSED;
  if (log->rollback_active) return RN_ENOSPC; /* a write failed for want of space is being undone */
  if (log->trunc) return RN_EBUSY;           /* a truncation is pending or running */
  return 0;
}

/* The one append path, for a producer's batch and a replica's batches
 * alike. buf[0, len) holds count whole batches the caller has checked
 * (structure and checksums, and that they continue the log: offsets, epochs
 * not below the last, new_epochs = the history entries they add); first is
 * the first one's header. restamp: a producer's append (count is 1): the
 * batch gets base offset next_offset, leader epoch epoch and arrival time
 * now; otherwise a replica's: bytes as the leader stored them. Stores the
 * longest prefix that fits one chunk (at most what the journal takes as one
 * record) in one segment, with one ack for all of it: a group in one chunk
 * is written, undone after a failed write or dropped with a failed roll as
 * a whole. *stored = how many batches (0 with an error: nothing changed). */
static rn_err_t store(rn_log_t *log, const uint8_t *buf, size_t len, const rn_batch_header_t *first, uint32_t count,
                      uint32_t new_epochs, bool restamp, uint32_t epoch, rn_log_append_cb cb, void *arg,
                      uint64_t *base_offset, uint32_t *stored) {
  *stored = 0;
  /* Room for the history entries before anything changes. */
  if (new_epochs && rn__hist_reserve(log, new_epochs)) return RN_ENOMEM;

  int64_t now = rn__log_now(log);
  rn_err_t err;
  if (wants_roll(log, first->batch_length, first->record_count, now)) {
    if (roll_pending(log)) {
      /* The pending segment takes the batch (it rolls once open), unless
       * its 32-bit index positions could not. */
      const rn__seg_t *a = active(log);
      if (a->size + first->batch_length > UINT32_MAX || a->next + first->record_count - a->base > UINT32_MAX)
        return RN_EBUSY;
    } else {
      err = roll(log);
      rn_err_t t = transient(err);
      if (t) {
        set_degraded(log, RN__DEG_ROLL, t); /* this append is refused; the next one tries again */
        return t;
      }
      if (err) {
        fail_log(log, err, "segment roll");
        return err;
      }
    }
  }
  rn__seg_t *seg = active(log);
  /* The group: whole batches that fit one chunk and the segment (the first
   * always goes in). A segment already past its size whose roll is pending
   * takes what it would take one append at a time: anything its 32-bit
   * positions can hold. */
  uint64_t chunk_max = log->opts.max_batch_bytes > CHUNK_MIN ? log->opts.max_batch_bytes : CHUNK_MIN;
  uint64_t seg_max = log->opts.segment_bytes;
  if (roll_pending(log) && seg->size + first->batch_length > seg_max) seg_max = UINT32_MAX;
  size_t glen = first->batch_length;
  uint32_t gn = 1;
  uint64_t gnext = seg->next + first->record_count;
  while (gn < count) {
    rn_batch_header_t h;
    (void)rn_batch_header_decode(buf + glen, len - glen, &h); /* checked by the caller */
    if (glen + h.batch_length > chunk_max || seg->size + glen + h.batch_length > seg_max ||
        gnext + h.record_count - seg->base > UINT32_MAX)
      break;
    glen += h.batch_length;
    gnext += h.record_count;
    gn++;
  }
  /* The fill buffer must belong to the active segment: one left from before
   * a roll goes to the write queue (or back to the spare list if empty, e.g.
   * after an allocation failure below). A fill that cannot take the group
   * goes too, rather than growing: growing copies what it holds (realloc),
   * which at megabyte batches cost as much as the append's own copy. A new
   * chunk always has room for the group (chunk_get). */
  if (log->fill && (log->fill->seg != seg || log->fill->len + glen > log->fill->cap)) {
    if (log->fill->len)
      ready_push(log, log->fill);
    else
      chunk_recycle(log, log->fill);
    log->fill = NULL;
  }
  if (!log->fill) {
    log->fill = chunk_get(log, seg, glen);
    if (!log->fill) return RN_ENOMEM;
  }
  if (acks_reserve(log)) return RN_ENOMEM;

  rn__chunk_t *c = log->fill;
  uint64_t base = log->next_offset;
  size_t at = 0;
  uint32_t n = 0;
  err = 0;
  for (; n < gn; n++) {
    rn_batch_header_t h = *first;
    if (n > 0) (void)rn_batch_header_decode(buf + at, len - at, &h);
    if (restamp) h.base_offset = seg->next;
    err = rn__seg_index_batch(seg, seg->size, &h, h.batch_length, log->opts.index_interval);
    if (err) break; /* out of memory: what is stored so far goes as the group */
    memcpy(c->buf + c->len, buf + at, h.batch_length);
    if (restamp)
      rn_batch_stamp(c->buf + c->len, h.base_offset, epoch, now);
    else
      epoch = h.leader_epoch; /* as the leader stored it: no restamp */
    seg->epoch = epoch;
    rn__hist_note(log, epoch, h.base_offset);
    c->len += h.batch_length;
    at += h.batch_length;
  }
  if (n == 0) return err;
  c->end_offset = seg->next;
  log->next_offset = seg->next;
  acks_push(log, &(rn__ack_t){.end_offset = log->next_offset, .base = base, .cb = cb, .arg = arg});
  if (base_offset) *base_offset = base;
  *stored = n;
  kick_write(log);
  return 0;
}

static rn_err_t append(rn_log_t *log, const uint8_t *batch, size_t len, bool verified, uint32_t leader_epoch,
                       rn_log_append_cb cb, void *arg, uint64_t *base_offset) {
  rn_err_t err = append_state(log);
  if (err) return err;
  if (!batch) return RN_EINVAL;
  if (len > log->opts.max_batch_bytes) return RN_ETOOLARGE;
  rn_batch_header_t hdr;
  err = verified ? rn_batch_header_decode(batch, len, &hdr) : rn_batch_verify(batch, len, &hdr, NULL);
  if (err) return err == RN_EPARTIAL ? RN_ECORRUPT : err;
  if (hdr.batch_length != len) return RN_ECORRUPT;
  /* The epoch history only grows in epoch: a deposed leader's append is
   * refused. */
  uint32_t last = rn_log_last_epoch(log);
  if (log->hist_n && leader_epoch < last) return RN_ESTALEEPOCH;
  uint32_t new_epochs = log->hist_n == 0 || leader_epoch != last;
  uint32_t stored;
  return store(log, batch, len, &hdr, 1, new_epochs, true, leader_epoch, cb, arg, base_offset, &stored);
}

rn_err_t rn_log_append(rn_log_t *log, const uint8_t *batch, size_t len, uint32_t leader_epoch,
                       rn_log_append_cb cb, void *arg, uint64_t *base_offset) {
  return append(log, batch, len, false, leader_epoch, cb, arg, base_offset);
}

rn_err_t rn_log_append_verified(rn_log_t *log, const uint8_t *batch, size_t len, uint32_t leader_epoch,
                                rn_log_append_cb cb, void *arg, uint64_t *base_offset) {
  return append(log, batch, len, true, leader_epoch, cb, arg, base_offset);
}

/* ---- replica appends ------------------------------------------------------------ *
 *
 * A follower's batches go in as the leader stored them. Every batch of the
 * buffer is checked before anything is stored; then store() takes the
 * prefix that fits one write, with one ack, so the callback's result holds
 * for all of its batches. */

/* Check buf[0, len) as whole consecutive batches continuing the log; *count
 * = how many, *new_epochs = how many history entries they would add. */
static rn_err_t replica_check(const rn_log_t *log, const uint8_t *buf, size_t len, bool one, uint32_t *count,
                              uint32_t *new_epochs) {
  uint64_t expect = log->next_offset;
  bool have = log->hist_n > 0;
  uint32_t last = rn_log_last_epoch(log);
  uint32_t n = 0, ne = 0;
  size_t at = 0;
  if (one && len > log->opts.max_batch_bytes) return RN_ETOOLARGE;
  while (at < len) {
    rn_batch_header_t hdr;
    rn_err_t err = rn_batch_header_decode(buf + at, len - at, &hdr);
    if (err) return err == RN_EPARTIAL ? RN_ECORRUPT : err;
    if (hdr.batch_length > log->opts.max_batch_bytes) return RN_ETOOLARGE;
    err = rn_batch_verify(buf + at, len - at, &hdr, NULL);
    if (err) return err == RN_EPARTIAL ? RN_ECORRUPT : err;
    if (one && hdr.batch_length != len) return RN_ECORRUPT;
    if (hdr.base_offset != expect) return RN_EOFFSET;
    if (have && hdr.leader_epoch < last) return RN_ESTALEEPOCH;
    if (!have || hdr.leader_epoch != last) ne++;
    have = true;
    last = hdr.leader_epoch;
    expect = hdr.base_offset + hdr.record_count;
    at += hdr.batch_length;
    n++;
  }
  *count = n;
  *new_epochs = ne;
  return 0;
}

static rn_err_t append_replica(rn_log_t *log, const uint8_t *buf, size_t len, bool one, rn_log_append_cb cb,
                               void *arg, uint32_t *nbatches) {
  uint32_t stored = 0;
  if (nbatches) *nbatches = 0;
  rn_err_t err = append_state(log);
  if (err) return err;
  if (!buf) return RN_EINVAL;
  if (len == 0) return one ? RN_ECORRUPT : RN_EINVAL;
  uint32_t count, new_epochs;
  err = replica_check(log, buf, len, one, &count, &new_epochs);
  if (err) return err;
  rn_batch_header_t first;
  (void)rn_batch_header_decode(buf, len, &first); /* checked above */
  err = store(log, buf, len, &first, count, new_epochs, false, 0, cb, arg, NULL, &stored);
  if (nbatches) *nbatches = stored;
  return err;
}

rn_err_t rn_log_append_replica(rn_log_t *log, const uint8_t *batch, size_t len, rn_log_append_cb cb, void *arg) {
  return append_replica(log, batch, len, true, cb, arg, NULL);
}

rn_err_t rn_log_append_replica_many(rn_log_t *log, const uint8_t *buf, size_t len, rn_log_append_cb cb, void *arg,
                                    uint32_t *nbatches) {
  return append_replica(log, buf, len, false, cb, arg, nbatches);
}

/* ---- time-driven work ---------------------------------------------------------- */

void rn_log_tick(rn_log_t *log, int64_t now) {
  if (log->failed) return;
  if (log->trunc) {
    /* Only what lets a pending truncation start: a retried round. */
    maybe_round(log);
    return;
  }
  maybe_round(log); /* a round whose directory sync could not start is retried */
  if (log->opts.durability == RN_DURABILITY_INTERVAL && !log->round_active &&
      now - log->last_sync_ms >= (int64_t)log->opts.interval_ms && needs_sync(log))
    start_round(log);
  rn__seg_t *a = active(log);
  if (!log->rollback_active && !a->opening && a->size > 0 && log->opts.segment_ms > 0 && now - a->created_ms >= log->opts.segment_ms) {
    rn_err_t err = roll(log);
    rn_err_t t = transient(err);
    if (t) set_degraded(log, RN__DEG_ROLL, t);
    else if (err) fail_log(log, err, "segment roll");
  }
  maybe_seal(log); /* a seal that failed for want of space is retried */
  rn_log_apply_retention(log, now);
}

int64_t rn_log_next_tick_ms(const rn_log_t *log, int64_t now) {
  int64_t next = 1000; /* retention and age checks */
  if (log->round_retry_ms) {
    int64_t due = log->round_retry_ms - now;
    if (due < next) next = due < 0 ? 0 : due;
  }
  if (log->opts.durability == RN_DURABILITY_INTERVAL) {
    int64_t due = log->last_sync_ms + (int64_t)log->opts.interval_ms - now;
    if (due < next) next = due < 0 ? 0 : due;
  }
  return next;
}

/* ---- reads ----------------------------------------------------------------------- */

uint64_t rn_log_start(const rn_log_t *log) { return log->segs[0]->base; }
static uint64_t trunc_offset(const rn_log_t *log);
uint64_t rn_log_end(const rn_log_t *log) {
  uint64_t end = visible_end(log);
  /* Records a pending or running truncation removes are not served. */
  if (log->trunc && trunc_offset(log) < end) end = trunc_offset(log);
  return end;
}
uint64_t rn_log_next_offset(const rn_log_t *log) { return log->next_offset; }
uint32_t rn_log_segment_count(const rn_log_t *log) { return log->nsegs; }
uint64_t rn_log_size_bytes(const rn_log_t *log) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < log->nsegs; i++) n += log->segs[i]->size;
  return n;
}

/* Bytes of seg a reader may look at. */
static uint64_t visible_bytes(const rn_log_t *log, const rn__seg_t *seg) {
  if (log->opts.durability != RN_DURABILITY_SYNC) return seg->written;
  return seg->jdurable > seg->synced ? seg->jdurable : seg->synced;
}

rn_err_t rn_log_span_plan(rn_log_t *log, uint64_t offset, rn_log_span_t *span) {
  memset(span, 0, sizeof(*span));
  uint64_t end = rn_log_end(log);
  if (offset < rn_log_start(log) || offset > end) return RN_EOFFSET;
  span->offset = offset;
  span->end_offset = end;
  if (offset == end) return 0;
  rn__seg_t *seg = log->segs[seg_for(log, offset)];
  if (offset >= seg->next) return RN_EOFFSET;
  span->start_pos = rn__seg_index_pos(seg, offset); /* in memory: no I/O here */
  span->limit_pos = visible_bytes(log, seg);
  span->seg = seg;
  seg->busy++;
  return 0;
}

void rn_log_span_release(rn_log_t *log, rn_log_span_t *span) {
  bool pinned = span->seg != NULL;
  if (span->seg) ((rn__seg_t *)span->seg)->busy--;
  span->seg = NULL;
  if (pinned) trunc_kick(log); /* a truncation may wait for this segment */
}

rn_err_t rn_log_span_read(const rn_log_span_t *span, uint8_t *buf, size_t cap, size_t *len) {
  *len = 0;
  const rn__seg_t *seg = span->seg;
  if (!seg) return 0;
  rn_assert_may_block("rn_log_span_read (pread)");
  rn_file_t *f = seg->file;
  uint64_t offset = span->offset, end = span->end_offset, limit = span->limit_pos;
  /* Scan batch headers forward to the batch holding offset. */
  uint64_t pos;
  rn_batch_header_t hdr;
  rn_err_t serr = rn__scan_to_offset(f, span->start_pos, limit, offset, &pos, &hdr);
  if (serr == RN_EOFFSET) return 0;
  if (serr) return serr;
  if (hdr.base_offset >= end) return 0;
  if (hdr.batch_length > cap) {
    *len = hdr.batch_length;
    return RN_ETOOLARGE;
  }
  size_t want = (size_t)(limit - pos < cap ? limit - pos : cap);
  size_t got = 0;
  rn_err_t err = f->fs->pread(f, buf, want, pos, &got);
  if (err) return err;
  size_t at = 0;
  while (at < got) {
    rn_batch_header_t h;
    rn_err_t v = rn_batch_verify(buf + at, got - at, &h, NULL);
    if (v == RN_EPARTIAL) break;
    if (v) {
      if (at == 0) return v == RN_EFORMAT ? RN_ECORRUPT : v;
      break;
    }
    if (h.base_offset >= end) break;
    at += h.batch_length;
  }
  *len = at;
  return 0;
}

rn_err_t rn_log_read(rn_log_t *log, uint64_t offset, uint8_t *buf, size_t cap, size_t *len) {
  *len = 0;
  rn_log_span_t span;
  rn_err_t err = rn_log_span_plan(log, offset, &span);
  if (err) return err;
  err = rn_log_span_read(&span, buf, cap, len);
  if (err == RN_ECORRUPT)
    rn__log_say(log, RN_LVL_ERROR, "%s: segment " RN__SEG_NAME_FMT ".log: batch holding offset %" PRIu64 " failed verification; not served",
                log->dir, ((rn__seg_t *)span.seg)->base, offset);
  rn_log_span_release(log, &span);
  return err;
}

rn_err_t rn_log_time_plan(rn_log_t *log, int64_t ts, rn_log_span_t *span) {
  memset(span, 0, sizeof(*span));
  uint64_t end = rn_log_end(log);
  span->end_offset = end;
  span->offset = end;
  for (uint32_t i = 0; i < log->nsegs; i++) {
    rn__seg_t *seg = log->segs[i];
    if (seg->base >= end) break;
    if (seg->max_ts < ts) continue;
    /* Start at the last time-index entry still below ts (in memory). */
    uint64_t pos = 0;
    for (uint32_t k = 0; k < seg->tidx_len && seg->tidx[k].ts < ts; k++) pos = seg->tidx[k].pos;
    span->start_pos = pos;
    span->limit_pos = visible_bytes(log, seg);
    span->offset = seg->base;
    span->seg = seg;
    seg->busy++;
    return 0;
  }
  return 0;
}

rn_err_t rn_log_time_resolve(const rn_log_span_t *span, int64_t ts, uint64_t *offset) {
  *offset = span->end_offset;
  const rn__seg_t *seg = span->seg;
  if (!seg) return 0;
  rn_assert_may_block("rn_log_time_resolve (pread)");
  rn_file_t *f = seg->file;
  uint64_t pos = span->start_pos;
  uint8_t hb[RN_BATCH_HEADER_SIZE];
  while (pos < span->limit_pos) {
    size_t got = 0;
    rn_err_t err = f->fs->pread(f, hb, sizeof(hb), pos, &got);
    if (err) return err;
    rn_batch_header_t h;
    if (got < sizeof(hb) || rn_batch_header_decode(hb, got, &h)) return RN_ECORRUPT;
    if (h.base_offset >= span->end_offset) return 0;
    if (h.max_timestamp >= ts) {
      uint8_t *b = malloc(h.batch_length);
      if (!b) return RN_ENOMEM;
      err = f->fs->pread(f, b, h.batch_length, pos, &got);
      rn_batch_iter_t it = {0};
      if (!err) err = got == h.batch_length ? rn_batch_iter_init(&it, b, got) : RN_ECORRUPT;
      rn_record_t r;
      while (!err && (err = rn_batch_iter_next(&it, &r)) == 0) {
        if (r.timestamp >= ts) {
          *offset = r.offset;
          break;
        }
      }
      rn_batch_iter_free(&it);
      free(b);
      if (err == 0) return 0;
      if (err != RN_EOFFSET) return err;
    }
    pos += h.batch_length;
  }
  return 0;
}

rn_err_t rn_log_find_time(rn_log_t *log, int64_t ts, uint64_t *offset) {
  rn_log_span_t span;
  rn_err_t err = rn_log_time_plan(log, ts, &span);
  if (!err) err = rn_log_time_resolve(&span, ts, offset);
  rn_log_span_release(log, &span);
  return err;
}

/* ---- retention ----------------------------------------------------------------- */

/* One retention pass: the new log start is made durable first (so recovery
 * can finish the job if the machine crashes or an unlink fails), then the
 * segments' files are closed and unlinked, then the directory synced. Runs
 * on the background lane, after any seal submitted before it. */
typedef struct del_job {
  rn_log_t *log;
  rn__seg_t **segs; /* owned: removed from the log */
  uint32_t n;
  uint64_t rp, start;
  /* The epoch history when it changed since its last write. The recovery
   * point written here is the newest a seal submitted, and a seal that
   * failed after its fdatasync (disk full) leaves that ahead of the
   * segments actually sealed: the history must cover them before the
   * recovery point passes them, as in a seal. NULL = already on disk. */
  uint8_t *hist;
  size_t hist_len;
  uint64_t hist_seq;
  bool hist_ok; /* set by the worker */
  bool rp_ok;   /* set by the worker: the file's log start is j->start */
} del_job_t;

static rn_err_t del_fn(void *arg) {
  del_job_t *j = arg;
  rn_fs_t *fs = j->log->fs;
  rn_err_t err = 0;
  if (j->hist) {
    err = rn__hist_write(j->log, j->hist, j->hist_len);
    if (err) return err;
    j->hist_ok = true;
  }
  err = rn__rp_write(j->log, j->rp, j->start);
  if (err) return err;
  j->rp_ok = true;
  rn_err_t first = 0;
  for (uint32_t i = 0; i < j->n; i++) {
    rn__seg_t *seg = j->segs[i];
    if (seg->file) seg->file->fs->close(seg->file); /* the last close of a big file is slow */
    seg->file = NULL;
    static const char *const sfx[] = {".index", ".timeindex", ".log"};
    for (int k = 0; k < 3; k++) {
      char path[RN__PATH_MAX];
      rn__seg_path(j->log, seg->base, sfx[k], path);
      rn_err_t e = fs->unlink(fs, path);
      if (e && e != RN_ENOENT && !first) first = e;
    }
  }
  err = fs->sync_dir(fs, j->log->dir);
  return first ? first : err;
}

static void del_cb(void *arg, rn_err_t res) {
  del_job_t *j = arg;
  rn_log_t *log = j->log;
  log->inflight--;
  log->delete_active = false;
  if (j->hist_ok) rn__hist_written(log, j->hist_seq);
  /* The history drops what lies wholly below the new start only once the
   * file says the log starts there: trimmed earlier, a seal could write it
   * while a failed recovery-point write leaves the old segments to the next
   * open, which would then trust a history that does not cover them. */
  if (j->rp_ok) rn__hist_trim(log, j->start);
  if (res < 0)
    rn__log_say(log, RN_LVL_WARN, "%s: deleting %u segment(s) below offset %" PRIu64 " failed: %s (the next open finishes it)",
                log->dir, j->n, j->start, rn_strerror(res));
  for (uint32_t i = 0; i < j->n; i++) rn__seg_free(j->segs[i]);
  free(j->segs);
  free(j->hist);
  free(j);
  trunc_kick(log);
}

/* Remove the oldest closed segments that qualify: by time/bytes retention,
 * or (below != 0) every segment whose records all lie below `below`. */
static unsigned remove_old_segments(rn_log_t *log, int64_t now, uint64_t below) {
  if (log->delete_active || log->failed || log->trunc) return 0;
  uint64_t total = rn_log_size_bytes(log);
  uint32_t n = 0;
  bool by_time_any = false;
  while (n + 1 < log->nsegs) {
    rn__seg_t *seg = log->segs[n];
    if (!seg->sealed || seg->busy) break;
    bool by_time = log->opts.retention_ms >= 0 && seg->max_ts < now - log->opts.retention_ms;
    bool by_bytes = log->opts.retention_bytes >= 0 && total > (uint64_t)log->opts.retention_bytes;
    bool by_floor = below != 0 && log->segs[n + 1]->base <= below;
    if (!by_time && !by_bytes && !by_floor) break;
    by_time_any |= by_time;
    total -= seg->size;
    n++;
  }
  if (n == 0) return 0;
  del_job_t *j = calloc(1, sizeof(*j));
  rn__seg_t **segs = malloc(n * sizeof(*segs));
  if (!j || !segs) {
    free(j);
    free(segs);
    return 0;
  }
  memcpy(segs, log->segs, n * sizeof(*segs));
  j->log = log;
  j->segs = segs;
  j->n = n;
  j->rp = log->rp_submitted;
  j->start = log->segs[n]->base;
  if (rn__hist_capture(log, &j->hist, &j->hist_len, &j->hist_seq) || rn_io_job_bg(log->io, del_fn, del_cb, j)) {
    free(j->hist);
    free(segs);
    free(j);
    return 0;
  }
  log->inflight++;
  log->delete_active = true;
  log->start_submitted = j->start;
  memmove(log->segs, log->segs + n, (log->nsegs - n) * sizeof(*log->segs));
  log->nsegs -= n;
  rn__log_say(log, RN_LVL_INFO, "%s: retention removes %u segment(s) below offset %" PRIu64 " (%s)", log->dir, n,
              j->start, below ? "compacted" : by_time_any ? "time" : "bytes");
  return n;
}

unsigned rn_log_apply_retention(rn_log_t *log, int64_t now) { return remove_old_segments(log, now, 0); }

unsigned rn_log_delete_below(rn_log_t *log, uint64_t offset) {
  return offset ? remove_old_segments(log, rn__log_now(log), offset) : 0;
}

uint32_t rn_log_segments(const rn_log_t *log, rn_log_seg_info_t *out, uint32_t cap) {
  for (uint32_t i = 0; i < log->nsegs && i < cap; i++) {
    const rn__seg_t *seg = log->segs[i];
    out[i] = (rn_log_seg_info_t){.base = seg->base,
                                 .next = seg->next,
                                 .bytes = seg->size,
                                 .index_bytes = rn__seg_index_file_bytes(seg, false),
                                 .timeindex_bytes = rn__seg_index_file_bytes(seg, true),
                                 .max_ts = seg->max_ts,
                                 .epoch = seg->epoch,
                                 .sealed = seg->sealed && i + 1 < log->nsegs};
  }
  return log->nsegs;
}

rn_err_t rn_log_seg_path(const rn_log_t *log, uint64_t base, const char *suffix, char *out, size_t cap) {
  int n = snprintf(out, cap, "%s/" RN__SEG_NAME_FMT "%s", log->dir, base, suffix);
  return n < 0 || (size_t)n >= cap ? RN_ETOOLARGE : 0;
}

const char *rn_log_dir(const rn_log_t *log) { return log->dir; }

void rn_log_set_retention(rn_log_t *log, int64_t retention_ms, int64_t retention_bytes) {
  log->opts.retention_ms = retention_ms;
  log->opts.retention_bytes = retention_bytes;
}

/* ---- truncation ---------------------------------------------------------------- *
 *
 * rn_log_truncate_async: the truncation waits (pending) until every append
 * accepted before it has completed and the log's I/O is idle — no write,
 * round, seal, retention delete, index checkpoint, writeback or roll in
 * flight, no read span on a segment it deletes — then one job on the
 * background lane does the file work in the order that keeps every crash
 * recoverable (the blocking rn_log_truncate is the same job, waited for):
 *   0. journal mode: nothing may need the journal (every unsealed segment
 *      fdatasync'ed, the later ones too: a failure before step 1 keeps
 *      them, and the floor would make their journaled records unreplayable),
 *      and no record from before the cut may be replayed after it: a floor
 *      past all of them;
 *   1. the recovery point moves below the cut, so a crash midway leaves no
 *      "sealed" segment shorter than its index says;
 *   2. later segments go, newest first; the cut segment loses its index
 *      files, is cut and fdatasync'ed; the directory is synced;
 *   3. the epoch history without the entries at or past the cut is written
 *      (after the cut: a crash before leaves entries past the recovered end,
 *      which recovery drops);
 *   4. the cut segment is rescanned into a scratch segment (its in-memory
 *      indexes, max timestamp), swapped in by the callback.
 * Nothing before step 1 completes changes the log: a failure there (not a
 * batch boundary, disk full writing the floor or recovery point) leaves it
 * as it was; a failed fdatasync, or any failure from step 2 on, fails it.
 * The worker touches only the job, the files of the segments it names
 * (their in-memory state stays the owner's) and the log's immutable fs,
 * dir and options. */

typedef struct rn__trunc {
  rn_log_t *log;
  uint64_t offset;
  rn_log_truncate_cb cb;
  void *arg;
  bool running;
  /* Set when it starts (owner thread), read by the worker. */
  bool noop;          /* the log ends at or below offset: nothing to cut */
  rn__seg_t *seg;     /* the segment holding offset: cut; busy while running */
  uint32_t si;        /* its index: segments after it go */
  uint64_t scan_pos;  /* an index position at or before offset */
  uint64_t seg_size;
  rn__seg_t **drop;   /* the later segments (still in log->segs until the callback) */
  rn_file_t **drop_files;
  uint32_t ndrop;
  rn__seg_t **sync;   /* journal mode: unsealed segments with unsynced bytes */
  uint64_t *sync_upto;
  uint32_t nsync;
  uint32_t nsync_kept; /* the first ones, up to the cut segment: kept */
  bool floor;
  uint64_t floor_lsn;
  bool lower_rp;
  uint64_t rp, start;
  uint8_t *hist; /* the cut history's encoding */
  size_t hist_len;
  /* Results (worker). */
  uint64_t pos;        /* the cut's file position */
  rn__seg_t *scanned;  /* the cut segment rescanned */
  uint32_t nclosed;    /* drop_files closed */
  bool changed;        /* step 2 began: a failure now fails the log */
  bool sync_failed;    /* an fdatasync failed: it fails the log */
} rn__trunc_t;

static bool trunc_running(const rn_log_t *log) { return log->trunc && log->trunc->running; }
static uint64_t trunc_offset(const rn_log_t *log) { return log->trunc->offset; }

static void trunc_free(rn__trunc_t *t) {
  if (!t) return;
  free(t->drop);
  free(t->drop_files);
  free(t->sync);
  free(t->sync_upto);
  free(t->hist);
  if (t->scanned) t->scanned->file = NULL; /* borrowed */
  rn__seg_free(t->scanned);
  free(t);
}

static void trunc_complete(rn_log_t *log, rn__trunc_t *t, rn_err_t err) {
  if (t->cb) {
    log->cb_depth++;
    t->cb(t->arg, err);
    log->cb_depth--;
  }
  trunc_free(t);
}

/* A truncation that has not started is given up with err (the log failed,
 * is closing or being discarded). */
static void trunc_abandon(rn_log_t *log, rn_err_t err) {
  rn__trunc_t *t = log->trunc;
  if (!t || t->running) return;
  log->trunc = NULL;
  trunc_complete(log, t, err);
}

/* Worker thread (background lane). */
static rn_err_t trunc_fn(void *arg) {
  rn__trunc_t *t = arg;
  rn_log_t *log = t->log; /* only fs, dir and opts: immutable */
  rn_fs_t *fs = log->fs;
  if (t->noop) return 0;
  rn_err_t err;
  t->pos = 0;
  if (t->offset != t->seg->base) {
    rn_batch_header_t hdr;
    err = rn__scan_to_offset(t->seg->file, t->scan_pos, t->seg_size, t->offset, &t->pos, &hdr);
    if (err == RN_EOFFSET) return RN_EINVAL;
    if (err) return err;
    if (hdr.base_offset != t->offset) return RN_EINVAL; /* inside a batch */
  }
  /* 0. */
  for (uint32_t i = 0; i < t->nsync; i++) {
    err = fs->datasync(t->sync[i]->file);
    if (err) {
      t->sync_failed = true;
      return err;
    }
  }
  if (t->floor && (err = rn__floor_write(log, t->floor_lsn))) return err;
  /* 1. */
  if (t->lower_rp && (err = rn__rp_write(log, t->rp, t->start))) return err;
  t->changed = true;
  /* 2. */
  static const char *const sfx[] = {".index", ".timeindex", ".log"};
  char path[RN__PATH_MAX];
  for (uint32_t i = t->ndrop; i-- > 0;) {
    if (t->drop_files[i]) t->drop_files[i]->fs->close(t->drop_files[i]);
    t->nclosed++;
    for (int k = 0; k < 3; k++) {
      rn__seg_path(log, t->drop[i]->base, sfx[k], path);
      err = fs->unlink(fs, path);
      if (err && err != RN_ENOENT) return err;
    }
  }
  for (int k = 0; k < 2; k++) { /* stale now; a missing one is fine */
    rn__seg_path(log, t->seg->base, sfx[k], path);
    (void)fs->unlink(fs, path);
  }
  err = fs->truncate(t->seg->file, t->pos);
  if (!err) err = fs->datasync(t->seg->file);
  if (!err) err = fs->sync_dir(fs, log->dir);
  if (err) return err;
  /* 3. */
  err = rn__hist_write(log, t->hist, t->hist_len);
  if (err) return err;
  /* 4. */
  t->scanned = rn__seg_new(t->seg->base);
  if (!t->scanned) return RN_ENOMEM;
  t->scanned->file = t->seg->file;
  rn__scan_t scan;
  err = rn__seg_scan(log, t->scanned, &scan);
  if (!err && scan.err) err = scan.err;
  return err;
}

static void trunc_cb(void *arg, rn_err_t res) {
  rn__trunc_t *t = arg;
  rn_log_t *log = t->log;
  log->inflight--;
  log->trunc = NULL;
  if (!t->noop) t->seg->busy--;
  if (!t->noop && (res == 0 || t->changed)) {
    /* The later segments are gone (or going: the log fails below). */
    for (uint32_t i = 0; i < t->ndrop; i++) {
      if (i >= t->ndrop - t->nclosed) t->drop[i]->file = NULL; /* closed by the worker */
      rn__seg_free(t->drop[i]);
    }
    log->nsegs = t->si + 1;
    log->idxcp_seg = NULL;
  }
  if (res == 0 && !t->noop) {
    rn__seg_t *seg = t->seg;
    rn__seg_take_index(seg, t->scanned);
    seg->sealed = false;
    seg->written = seg->synced = seg->jdurable = seg->size;
    seg->idx_cp = 0; /* its index files are gone */
    seg->wb_pos = 0;
    seg->created_ms = rn__log_now(log);
    for (uint32_t i = 0; i < t->nsync_kept; i++) /* the later ones are freed above */
      if (t->sync[i] != seg && t->sync_upto[i] > t->sync[i]->synced) t->sync[i]->synced = t->sync_upto[i];
    if (t->lower_rp) log->recovery_point = log->rp_submitted = t->rp;
    log->next_offset = log->written_next = log->durable_next = log->jdurable_next = seg->next;
    rn__hist_cut(log, t->offset);
    rn__hist_written(log, log->hist_seq);
    rn__log_say(log, RN_LVL_INFO, "%s: truncated to offset %" PRIu64, log->dir, t->offset);
  } else if (res && (t->changed || t->sync_failed)) {
    fail_log(log, res, t->sync_failed ? "fdatasync before truncate" : "truncate");
  } else if (res && res != RN_EINVAL) {
    rn__log_say(log, RN_LVL_WARN, "%s: truncation to offset %" PRIu64 " failed before changing anything: %s",
                log->dir, t->offset, rn_strerror(res));
  }
  trunc_complete(log, t, res);
  after_progress(log);
}

/* Owner thread: capture what the job needs and submit it. Returns 0 or the
 * submission error (the truncation is then not running). */
static rn_err_t trunc_start(rn_log_t *log, rn__trunc_t *t) {
  if (t->offset >= log->next_offset) {
    t->noop = true; /* undone appends left the log below offset: nothing to cut */
  } else {
    t->si = seg_for(log, t->offset);
    t->seg = log->segs[t->si];
    t->scan_pos = rn__seg_index_pos(t->seg, t->offset);
    t->seg_size = t->seg->size;
    t->ndrop = log->nsegs - t->si - 1;
    if (t->ndrop) {
      t->drop = malloc(t->ndrop * sizeof(*t->drop));
      t->drop_files = malloc(t->ndrop * sizeof(*t->drop_files));
      if (!t->drop || !t->drop_files) return RN_ENOMEM;
      for (uint32_t i = 0; i < t->ndrop; i++) {
        t->drop[i] = log->segs[t->si + 1 + i];
        t->drop_files[i] = t->drop[i]->file;
      }
    }
    if (log->jr) {
      t->sync = malloc(log->nsegs * sizeof(*t->sync));
      t->sync_upto = malloc(log->nsegs * sizeof(*t->sync_upto));
      if (!t->sync || !t->sync_upto) return RN_ENOMEM;
      for (uint32_t i = 0; i < log->nsegs; i++) {
        if (i == t->si + 1) t->nsync_kept = t->nsync;
        rn__seg_t *s = log->segs[i];
        if (s->sealed || !s->file || s->synced >= s->written) continue;
        t->sync[t->nsync] = s;
        t->sync_upto[t->nsync++] = s->written;
      }
      if (t->si + 1 == log->nsegs) t->nsync_kept = t->nsync;
      t->floor = true;
      t->floor_lsn = rn__journal_next_lsn(log->jr);
    }
    /* What the file may hold, not only what a completed seal confirmed: a
     * seal that failed after its write, or retention's rewrite of the file
     * (del_fn), can leave rp_submitted on disk above recovery_point. */
    if (log->rp_submitted > t->seg->base) {
      t->lower_rp = true;
      t->rp = t->seg->base;
      t->start = rn_log_start(log);
    }
    uint32_t keep = log->hist_n;
    while (keep && log->hist[keep - 1].start_offset >= t->offset) keep--;
    rn_err_t err = rn__hist_encode(log->hist, keep, &t->hist, &t->hist_len);
    if (err) return err;
  }
  rn_err_t err = rn_io_job_bg(log->io, trunc_fn, trunc_cb, t);
  if (err) return err;
  t->running = true;
  log->inflight++;
  if (!t->noop) t->seg->busy++;
  return 0;
}

/* Whether nothing else of the log is in flight, so the job may start. */
static bool trunc_ready(const rn_log_t *log, const rn__trunc_t *t) {
  if (log->inflight || log->acks_len || log->writing || log->ready_head || (log->fill && log->fill->len) ||
      log->round_active || log->seal_active || log->delete_active || log->idxcp_active || log->rollback_active)
    return false;
  /* Reads of a segment the job deletes; those of the cut segment read only
   * below the cut (rn_log_end is clamped), which the cut leaves alone. */
  uint32_t si = t->offset < log->next_offset ? seg_for(log, t->offset) : log->nsegs - 1;
  for (uint32_t i = si + 1; i < log->nsegs; i++)
    if (log->segs[i]->busy) return false;
  return true;
}

/* Start a pending truncation when it can (called wherever the log's work
 * completes). */
static void trunc_kick(rn_log_t *log) {
  rn__trunc_t *t = log->trunc;
  if (!t || t->running || log->failed || !trunc_ready(log, t)) return;
  rn_err_t err = trunc_start(log, t);
  if (!err) return;
  log->trunc = NULL;
  rn__log_say(log, RN_LVL_WARN, "%s: truncation to offset %" PRIu64 " could not start: %s", log->dir, t->offset,
              rn_strerror(err));
  trunc_complete(log, t, err);
}

rn_err_t rn_log_truncate_async(rn_log_t *log, uint64_t offset, rn_log_truncate_cb cb, void *arg) {
  if (log->failed) return RN_ELOGFAILED;
  if (log->closing) return RN_ECLOSED;
  if (log->trunc) return RN_EBUSY;
  if (offset < rn_log_start(log) || offset > log->next_offset) return RN_EINVAL;
  rn__trunc_t *t = calloc(1, sizeof(*t));
  if (!t) return RN_ENOMEM;
  t->log = log;
  t->offset = offset;
  t->cb = cb;
  t->arg = arg;
  log->trunc = t;
  if (trunc_ready(log, t)) {
    /* Idle: start now; the callback still comes from rn_io. */
    rn_err_t err = trunc_start(log, t);
    if (err) {
      log->trunc = NULL;
      trunc_free(t);
      return err;
    }
  }
  return 0;
}

typedef struct trunc_wait {
  bool done;
  rn_err_t err;
} trunc_wait_t;

static void trunc_wait_cb(void *arg, rn_err_t err) {
  trunc_wait_t *w = arg;
  w->done = true;
  w->err = err;
}

rn_err_t rn_log_truncate(rn_log_t *log, uint64_t offset) {
  if (log->failed) return RN_ELOGFAILED;
  if (offset == log->next_offset) return 0;
  if (log->writing || log->ready_head || (log->fill && log->fill->len) || log->round_active ||
      log->seal_active || log->acks_len || log->inflight || log->trunc)
    return RN_EBUSY;
  rn_assert_may_block("rn_log_truncate (waits for the truncation job)");
  for (uint32_t i = 0; i < log->nsegs; i++)
    if (log->segs[i]->busy) return RN_EBUSY;
  if (offset < rn_log_start(log) || offset > log->next_offset) return RN_EOFFSET;
  trunc_wait_t w = {0};
  rn_err_t err = rn_log_truncate_async(log, offset, trunc_wait_cb, &w);
  if (err) return err;
  while (!w.done) rn_io_wait(log->io, -1);
  return w.err;
}

/* ---- verification ---------------------------------------------------------------- */

rn_err_t rn_log_verify(rn_log_t *log, char *msg, size_t msglen) {
  rn_assert_may_block("rn_log_verify (pread)");
  if (msg && msglen) msg[0] = '\0';
  if (trunc_running(log)) return RN_EBUSY; /* its worker closes and cuts files */
  for (uint32_t i = 0; i < log->nsegs; i++) {
    rn__seg_t *seg = log->segs[i];
    if (!seg->file) continue; /* a pending roll's segment: nothing written */
    rn__seg_t *tmp = rn__seg_new(seg->base);
    if (!tmp) return RN_ENOMEM;
    tmp->file = seg->file;
    rn__scan_t scan;
    rn_err_t err = rn__seg_scan(log, tmp, &scan);
    tmp->file = NULL;
    rn__seg_free(tmp);
    if (err) return err;
    if (scan.valid_size < seg->written || (seg->sealed && scan.err)) {
      if (msg)
        snprintf(msg, msglen, "segment " RN__SEG_NAME_FMT ".log: %s", seg->base,
                 scan.why[0] ? scan.why : "shorter than expected");
      rn__log_say(log, RN_LVL_ERROR, "%s: verify: %s", log->dir, msg ? msg : "damage found");
      return RN_ECORRUPT;
    }
  }
  return 0;
}
