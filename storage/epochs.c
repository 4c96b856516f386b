/*
 * epochs.c — the leader-epoch history of a log (Kafka's leader-epoch-
 * checkpoint, KIP-101/279): the file "leader-epochs" and its codec, the
 * in-memory list the append paths extend, and the lookups replication is
 * built on (the leader's end offset of an epoch, the follower's divergence
 * point). docs/storage.md, "Leader epochs and replica appends".
 *
 * Invariants: entries strictly increase in epoch and in start offset, and
 * every start offset is below the log's next offset (the history says which
 * epoch wrote every offset from the log start on). The file is replaced
 * atomically (rn_snapshot_write) and written durably before any range it
 * describes becomes one recovery will not scan again (log.c: seals, index
 * checkpoints, close; recovery.c), so at open its entries below the first
 * scanned offset are exact and the rest is rebuilt from the scanned batches.
 *
 * Ownership: the in-memory list belongs to the log (log->hist), touched on
 * the owner thread only; encodings handed to background jobs are copies.
 * The lookups over arrays are pure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "log_int.h"

#define HIST_MAGIC 0x454c4e52u /* "RNLE" */
#define HIST_HDR 16u
#define HIST_ENTRY 16u
/* Far more than a log ever sees (one entry per leader change); bounds what
 * a damaged count can make decode allocate. */
#define HIST_MAX_ENTRIES (1u << 20)

/* ---- codec ------------------------------------------------------------------ */

rn_err_t rn__hist_encode(const rn_log_epoch_t *h, uint32_t n, uint8_t **out, size_t *len) {
  size_t body = HIST_HDR + (size_t)n * HIST_ENTRY;
  uint8_t *b = malloc(body + 8);
  if (!b) return RN_ENOMEM;
  rn__put_u32(b, HIST_MAGIC);
  rn__put_u32(b + 4, 1);
  rn__put_u32(b + 8, n);
  rn__put_u32(b + 12, 0);
  for (uint32_t i = 0; i < n; i++) {
    uint8_t *p = b + HIST_HDR + (size_t)i * HIST_ENTRY;
    rn__put_u32(p, h[i].epoch);
    rn__put_u32(p + 4, 0);
    rn__put_u64(p + 8, h[i].start_offset);
  }
  rn__put_u64(b + body, XXH3_64bits(b, body));
  *out = b;
  *len = body + 8;
  return 0;
}

rn_err_t rn__hist_decode(const uint8_t *b, size_t len, rn_log_epoch_t **out, uint32_t *n) {
  *out = NULL;
  *n = 0;
  if (len < HIST_HDR + 8) return RN_ECORRUPT;
  if (rn__get_u32(b) != HIST_MAGIC || rn__get_u32(b + 4) != 1 || rn__get_u32(b + 12) != 0) return RN_ECORRUPT;
  uint32_t count = rn__get_u32(b + 8);
  if (count > HIST_MAX_ENTRIES || len != HIST_HDR + (size_t)count * HIST_ENTRY + 8) return RN_ECORRUPT;
  size_t body = len - 8;
  if (rn__get_u64(b + body) != XXH3_64bits(b, body)) return RN_ECORRUPT;
  rn_log_epoch_t *h = count ? malloc((size_t)count * sizeof(*h)) : NULL;
  if (count && !h) return RN_ENOMEM;
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t *p = b + HIST_HDR + (size_t)i * HIST_ENTRY;
    h[i].epoch = rn__get_u32(p);
    h[i].start_offset = rn__get_u64(p + 8);
    if (rn__get_u32(p + 4) != 0 || h[i].epoch == RN_LOG_EPOCH_NONE ||
        (i > 0 && (h[i].epoch <= h[i - 1].epoch || h[i].start_offset <= h[i - 1].start_offset))) {
      free(h);
      return RN_ECORRUPT;
    }
  }
  *out = h;
  *n = count;
  return 0;
}

/* ---- the in-memory history ----------------------------------------------------- */

rn_err_t rn__hist_reserve(rn_log_t *log, uint32_t k) {
  if (log->hist_cap - log->hist_n >= k) return 0;
  uint32_t nc = log->hist_cap ? log->hist_cap : 8;
  while (nc - log->hist_n < k) nc *= 2;
  rn_log_epoch_t *h = realloc(log->hist, (size_t)nc * sizeof(*h));
  if (!h) return RN_ENOMEM;
  log->hist = h;
  log->hist_cap = nc;
  return 0;
}

rn_err_t rn__hist_scan_note(rn_log_t *log, uint32_t epoch, uint64_t base) {
  if (log->hist_n) {
    const rn_log_epoch_t *last = &log->hist[log->hist_n - 1];
    if (epoch == last->epoch) return 0;
    if (epoch < last->epoch) {
      if (!log->hist_bad) {
        log->hist_bad = true;
        log->hist_bad_offset = base;
        log->hist_bad_epoch = epoch;
        log->hist_bad_last = last->epoch;
      }
      return 0;
    }
  }
  rn_err_t err = rn__hist_reserve(log, 1);
  if (err) return err;
  rn__hist_note(log, epoch, base);
  return 0;
}

void rn__hist_cut(rn_log_t *log, uint64_t end) {
  uint32_t n = log->hist_n;
  while (n && log->hist[n - 1].start_offset >= end) n--;
  if (n == log->hist_n) return;
  log->hist_n = n;
  log->hist_seq++;
}

void rn__hist_trim(rn_log_t *log, uint64_t start) {
  uint32_t k = 0; /* the last entry starting at or below start */
  while (k + 1 < log->hist_n && log->hist[k + 1].start_offset <= start) k++;
  if (k) memmove(log->hist, log->hist + k, (size_t)(log->hist_n - k) * sizeof(*log->hist));
  log->hist_n -= k;
  /* The one covering the start keeps its start offset: moved up to the log
   * start it would sit at the end of a log whose active segment is empty,
   * where the next epoch's entry must start. Only what recovery redoes by
   * itself: no new version to write. */
}

rn_err_t rn__hist_capture(const rn_log_t *log, uint8_t **buf, size_t *len, uint64_t *seq) {
  *buf = NULL;
  *len = 0;
  *seq = log->hist_seq;
  if (log->hist_seq == log->hist_durable_seq) return 0;
  return rn__hist_encode(log->hist, log->hist_n, buf, len);
}

rn_err_t rn__hist_write(const rn_log_t *log, const uint8_t *buf, size_t len) {
  return rn_snapshot_write(log->fs, log->dir, RN__HIST_NAME, buf, len);
}

rn_err_t rn__hist_load(rn_log_t *log) {
  void *data = NULL;
  size_t len = 0;
  rn_err_t err = rn_snapshot_read(log->fs, log->dir, RN__HIST_NAME, &data, &len);
  if (err) return err;
  rn_log_epoch_t *h;
  uint32_t n;
  err = rn__hist_decode(data, len, &h, &n);
  free(data);
  if (err) return err;
  free(log->hist);
  log->hist = h;
  log->hist_n = log->hist_cap = n;
  return 0;
}

/* ---- public lookups -------------------------------------------------------------- */

uint32_t rn_log_last_epoch(const rn_log_t *log) {
  return log->hist_n ? log->hist[log->hist_n - 1].epoch : RN_LOG_EPOCH_NONE;
}

uint32_t rn_log_epochs(const rn_log_t *log, rn_log_epoch_t *out, uint32_t cap) {
  uint32_t n = log->hist_n < cap ? log->hist_n : cap;
  if (n) memcpy(out, log->hist, (size_t)n * sizeof(*out));
  return log->hist_n;
}

/* Index of the last entry whose epoch is <= epoch; n when none. */
static uint32_t find_le(const rn_log_epoch_t *h, uint32_t n, uint32_t epoch) {
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (h[mid].epoch <= epoch)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo ? lo - 1 : n;
}

void rn_log_epochs_end(const rn_log_epoch_t *h, uint32_t n, uint64_t log_start, uint64_t log_end, uint32_t epoch,
                       uint32_t *found_epoch, uint64_t *end_offset) {
  uint32_t i = find_le(h, n, epoch);
  if (i == n) {
    *found_epoch = RN_LOG_EPOCH_NONE;
    *end_offset = log_start;
    return;
  }
  *found_epoch = h[i].epoch;
  *end_offset = i + 1 < n ? h[i + 1].start_offset : log_end;
}

rn_err_t rn_log_epoch_end(const rn_log_t *log, uint32_t epoch, uint32_t *found_epoch, uint64_t *end_offset) {
  if (!found_epoch || !end_offset) return RN_EINVAL;
  rn_log_epochs_end(log->hist, log->hist_n, rn_log_start(log), rn_log_next_offset(log), epoch, found_epoch,
                    end_offset);
  return 0;
}

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

uint64_t rn_log_epochs_divergence(const rn_log_epoch_t *h, uint32_t n, uint64_t log_start, uint64_t log_end,
                                  uint32_t leader_found_epoch, uint64_t leader_end_offset, bool *complete) {
  bool done = true;
  uint64_t to;
  if (n == 0) {
    to = log_end; /* nothing to compare: fetch from the end */
  } else if (leader_found_epoch == RN_LOG_EPOCH_NONE) {
    /* The leader has no epoch at or below ours: nothing of ours from its
     * start on can be matched. */
    to = clamp(leader_end_offset, log_start, log_end);
  } else {
    uint32_t f_epoch;
    uint64_t f_end;
    rn_log_epochs_end(h, n, log_start, log_end, leader_found_epoch, &f_epoch, &f_end);
    if (f_epoch == leader_found_epoch) {
      /* Both have the epoch: keep what both wrote in it. */
      to = f_end < leader_end_offset ? f_end : leader_end_offset;
    } else if (f_epoch == RN_LOG_EPOCH_NONE) {
      to = log_start; /* every epoch of ours is one the leader lacks */
    } else {
      /* We lack the leader's epoch: our epochs after f_epoch are not the
       * leader's. Cut them, then ask again for f_epoch. */
      to = f_end;
      done = false;
    }
    to = clamp(to, log_start, log_end);
  }
  if (complete) *complete = done;
  return to;
}

uint64_t rn_log_divergence(uint32_t leader_found_epoch, uint64_t leader_end_offset, const rn_log_t *follower,
                           bool *complete) {
  return rn_log_epochs_divergence(follower->hist, follower->hist_n, rn_log_start(follower),
                                  rn_log_next_offset(follower), leader_found_epoch, leader_end_offset, complete);
}
