/*
 * recovery.c — rebuilding a log's in-memory state from its directory at open.
 *
 * Three cases (docs/storage.md, "Recovery"):
 *   1. Clean-shutdown marker present and matching the active segment: trust
 *      the index files (rebuild any that are missing or stale), scan nothing.
 *      Restart cost is O(segments), not O(data).
 *   2. Otherwise segments wholly below the recovery point are "sealed": they
 *      were fdatasync'ed and their indexes written before the recovery point
 *      moved past them. They are trusted the same way; any damage found in
 *      them (size mismatch, a batch failing verification while rebuilding an
 *      index, a gap) makes open fail with RN_ECORRUPT: the log refuses to
 *      pretend it is whole instead of dropping acknowledged data.
 *   3. Segments at or above the recovery point are scanned and every batch
 *      verified. At the first torn or corrupt batch the segment is truncated
 *      and every later segment deleted: what remains is exactly a prefix of
 *      what was written. Everything kept is fdatasync'ed before any reader can
 *      see it.
 *
 * The leader-epoch history ("leader-epochs", epochs.c) is trusted below the
 * first offset this open scans (S): it was written durably before anything
 * made those offsets trusted (seal, index checkpoint, clean close). Entries
 * at or past S are dropped and rebuilt from the epochs of the batches the
 * scans verify; a missing or damaged file is rebuilt from the batch headers
 * below S (one pread per batch: logs from before the history existed).
 * Entries past the recovered end go, those wholly below the log start go
 * (the first may start below it), and a history that changed is written
 * before the recovery point moves past what was scanned. So every
 * recovered batch carries the epoch of the entry covering its offset.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "log_int.h"

typedef struct listing {
  uint64_t *bases;
  size_t n, cap;
  char **stale; /* names to delete: *.tmp, orphan index files */
  size_t nstale, stale_cap;
  bool has_clean, has_rp;
} listing_t;

static int parse_base(const char *name, const char *suffix, uint64_t *base) {
  size_t n = strlen(name), s = strlen(suffix);
  if (n != 20 + s || strcmp(name + 20, suffix) != 0) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 20; i++) {
    if (name[i] < '0' || name[i] > '9') return 0;
    uint64_t d = (uint64_t)(name[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
  }
  *base = v;
  return 1;
}

static int add_stale(listing_t *l, const char *name) {
  if (l->nstale == l->stale_cap) {
    size_t nc = l->stale_cap ? l->stale_cap * 2 : 8;
    char **n = realloc(l->stale, nc * sizeof(*n));
    if (!n) return 1;
    l->stale = n;
    l->stale_cap = nc;
  }
  l->stale[l->nstale] = strdup(name);
  return l->stale[l->nstale++] == NULL;
}

static int list_cb(void *arg, const char *name) {
  listing_t *l = arg;
  uint64_t base;
  size_t n = strlen(name);
  if (parse_base(name, ".log", &base)) {
    if (l->n == l->cap) {
      size_t nc = l->cap ? l->cap * 2 : 16;
      uint64_t *nb = realloc(l->bases, nc * sizeof(*nb));
      if (!nb) return 1;
      l->bases = nb;
      l->cap = nc;
    }
    l->bases[l->n++] = base;
  } else if (n > 4 && strcmp(name + n - 4, ".tmp") == 0) {
    return add_stale(l, name);
  } else if (strcmp(name, RN__CLEAN_NAME) == 0) {
    l->has_clean = true;
  } else if (strcmp(name, RN__RP_NAME) == 0) {
    l->has_rp = true;
  }
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void listing_free(listing_t *l) {
  free(l->bases);
  for (size_t i = 0; i < l->nstale; i++) free(l->stale[i]);
  free(l->stale);
}

/* Delete a segment's three files (index files first, so a crash in between
 * leaves no index without its data). */
static rn_err_t unlink_seg_files(rn_log_t *log, uint64_t base) {
  static const char *const sfx[] = {".index", ".timeindex", ".log"};
  for (int i = 0; i < 3; i++) {
    char path[RN__PATH_MAX];
    rn__seg_path(log, base, sfx[i], path);
    rn_err_t err = log->fs->unlink(log->fs, path);
    if (err && err != RN_ENOENT) return err;
  }
  return 0;
}

static rn_err_t fail(rn_log_recovery_t *rec, rn_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static rn_err_t fail(rn_log_recovery_t *rec, rn_err_t err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rec->message, sizeof(rec->message), fmt, ap);
  va_end(ap);
  return err;
}

/* Load a trusted segment's index, rebuilding it by a verifying scan when the
 * files are missing or stale. Any damage is corruption. */
static rn_err_t load_trusted(rn_log_t *log, rn__seg_t *seg, rn_log_recovery_t *rec, bool force_scan) {
  uint64_t size;
  rn_err_t err = seg->file->fs->size(seg->file, &size);
  if (err) return err;
  err = force_scan ? RN_ENOENT : rn__seg_index_load(log, seg, size);
  if (err == 0) return 0;
  if (err != RN_ECORRUPT && err != RN_ENOENT) return err;
  rn__scan_t scan;
  err = rn__seg_scan(log, seg, &scan);
  if (err) return err;
  rec->segments_scanned++;
  rec->indexes_rebuilt++;
  if (scan.err)
    return fail(rec, RN_ECORRUPT, "segment " RN__SEG_NAME_FMT ".log below the recovery point is damaged: %s",
                seg->base, scan.why);
  uint8_t *ib, *tb;
  size_t il, tl;
  err = rn__seg_index_encode(seg, &ib, &il, &tb, &tl);
  if (err) return err;
  char path[RN__PATH_MAX];
  rn__seg_path(log, seg->base, ".index", path);
  err = rn_fs_write_file(log->fs, path, ib, il);
  rn__seg_path(log, seg->base, ".timeindex", path);
  if (!err) err = rn_fs_write_file(log->fs, path, tb, tl);
  free(ib);
  free(tb);
  return err;
}

/* ---- the leader-epoch history ----------------------------------------------------- */

/* Rebuild the history below upto from the batch headers of the segments
 * loaded so far (their size known): a file that is missing or damaged.
 * Headers are checked (structure, header checksum); damage is corruption. */
static rn_err_t hist_walk(rn_log_t *log, uint64_t upto, rn_log_recovery_t *rec) {
  for (uint32_t i = 0; i < log->nsegs && log->segs[i]->base < upto; i++) {
    rn__seg_t *seg = log->segs[i];
    uint64_t pos = 0;
    while (pos < seg->size) {
      uint8_t hb[RN_BATCH_HEADER_SIZE];
      size_t got = 0;
      rn_err_t err = seg->file->fs->pread(seg->file, hb, sizeof(hb), pos, &got);
      if (err) return err;
      rn_batch_header_t hdr;
      if (got < sizeof(hb) || rn_batch_header_decode(hb, got, &hdr) || XXH3_64bits(hb, 32) != hdr.header_checksum)
        return fail(rec, RN_ECORRUPT,
                    "segment " RN__SEG_NAME_FMT ".log: damaged batch header at position %" PRIu64
                    " while rebuilding the leader-epoch history",
                    seg->base, pos);
      if (hdr.base_offset >= upto) break;
      err = rn__hist_scan_note(log, hdr.leader_epoch, hdr.base_offset);
      if (err) return err;
      pos += hdr.batch_length;
    }
  }
  return 0;
}

/* Offsets from `from` on are scanned from here: the file's entries there
 * go (they are rebuilt from the batches); below, a file that could not be
 * loaded is rebuilt from the headers. */
static rn_err_t hist_begin(rn_log_t *log, bool loaded, uint64_t from, rn_log_recovery_t *rec) {
  rn_err_t err = 0;
  if (loaded) {
    rn__hist_cut(log, from);
  } else {
    log->hist_n = 0;
    err = hist_walk(log, from, rec);
  }
  log->hist_collect = true;
  return err;
}

static bool hist_equal(const rn_log_epoch_t *a, uint32_t na, const rn_log_epoch_t *b, uint32_t nb) {
  if (na != nb) return false;
  for (uint32_t i = 0; i < na; i++)
    if (a[i].epoch != b[i].epoch || a[i].start_offset != b[i].start_offset) return false;
  return true;
}

/* ---- journal replay ----------------------------------------------------------- */

typedef struct replay {
  rn_log_t *log;
  uint64_t rp;
  bool create;        /* may create a missing segment file */
  uint64_t bases[8];  /* files opened so far (a log's records touch few) */
  rn_file_t *files[8];
  int n;
} replay_t;

static rn_err_t replay_apply(void *arg, uint64_t seg_base, uint64_t file_pos, const uint8_t *data, uint32_t len) {
  replay_t *r = arg;
  if (seg_base < r->rp) return 0; /* sealed: synced and verified before the recovery point passed it */
  rn_fs_t *fs = r->log->fs;
  int k = 0;
  while (k < r->n && r->bases[k] != seg_base) k++;
  if (k == r->n) {
    if (r->n == 8) { /* flush the oldest to make room */
      rn_err_t err = r->files[0]->fs->datasync(r->files[0]);
      r->files[0]->fs->close(r->files[0]);
      if (err) return err;
      memmove(r->files, r->files + 1, 7 * sizeof(*r->files));
      memmove(r->bases, r->bases + 1, 7 * sizeof(*r->bases));
      r->n = k = 7;
    }
    char path[RN__PATH_MAX];
    rn__seg_path(r->log, seg_base, ".log", path);
    rn_err_t err = fs->open(fs, path, r->create ? RN_FS_CREATE : 0, &r->files[k]);
    if (err == RN_ENOENT) return 0;
    if (err) return err;
    r->bases[k] = seg_base;
    r->n++;
  }
  struct iovec iov;
  memcpy(&iov.iov_base, &data, sizeof(data)); /* iovec has no const variant */
  iov.iov_len = len;
  return fs->pwritev(r->files[k], &iov, 1, file_pos);
}

rn_err_t rn__log_replay(rn_log_t *log, rn_log_recovery_t *rec) {
  rn_fs_t *fs = log->fs;
  uint64_t floor = 0, rp = 0, start = 0;
  rn_err_t err = rn__floor_read(log, &floor);
  if (err && err != RN_ENOENT)
    return fail(rec, err, "%s: journal floor file unreadable: %s; refusing to guess which journal records belong here",
                log->dir, rn_strerror(err));
  err = rn__rp_read(log, &rp, &start);
  replay_t r = {.log = log, .rp = err ? 0 : rp, .create = err == 0 || err == RN_ENOENT};
  err = fs->mkdirs(fs, log->dir);
  if (err) return fail(rec, err, "cannot create %s: %s", log->dir, rn_strerror(err));
  uint64_t applied = 0;
  err = rn__journal_replay(log->jr, log->opts.journal_id, floor, replay_apply, &r, &applied);
  for (int i = 0; i < r.n; i++) {
    rn_err_t e = r.files[i]->fs->datasync(r.files[i]);
    if (!err) err = e;
    r.files[i]->fs->close(r.files[i]);
  }
  if (!err && applied) err = fs->sync_dir(fs, log->dir);
  if (err) return fail(rec, err, "%s: replaying the journal: %s", log->dir, rn_strerror(err));
  rec->journal_replayed = applied;
  if (applied) rn__log_say(log, RN_LVL_INFO, "%s: replayed %" PRIu64 " journal record(s)", log->dir, applied);
  return 0;
}

rn_err_t rn__log_recover(rn_log_t *log, rn_log_recovery_t *rec) {
  rn_fs_t *fs = log->fs;
  listing_t l = {0};
  rn_err_t err = fs->mkdirs(fs, log->dir);
  if (err) return fail(rec, err, "cannot create %s: %s", log->dir, rn_strerror(err));
  err = fs->list(fs, log->dir, list_cb, &l);
  if (err) {
    listing_free(&l);
    return fail(rec, err, "cannot list %s: %s", log->dir, rn_strerror(err));
  }
  if (l.n) qsort(l.bases, l.n, sizeof(uint64_t), cmp_u64);
  for (size_t i = 0; i < l.nstale; i++) {
    char path[RN__PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", log->dir, l.stale[i]);
    fs->unlink(fs, path);
  }

  /* The epoch history as last written (a copy, to know whether this open
   * changes it). */
  rn_log_epoch_t *hist_file = NULL;
  uint32_t hist_file_n = 0;
  rn_err_t herr = rn__hist_load(log);
  bool hist_loaded = herr == 0, hist_begun = false;
  if (herr && herr != RN_ENOENT && herr != RN_ECORRUPT) {
    fail(rec, herr, "%s: cannot read the leader-epoch history: %s", log->dir, rn_strerror(herr));
    err = herr;
    goto out;
  }
  if (herr == RN_ECORRUPT)
    rn__log_say(log, RN_LVL_WARN, "%s: leader-epoch history damaged; rebuilding it from the batch headers", log->dir);
  if (hist_loaded && log->hist_n) {
    hist_file = malloc(log->hist_n * sizeof(*hist_file));
    if (!hist_file) {
      err = RN_ENOMEM;
      goto out;
    }
    memcpy(hist_file, log->hist, log->hist_n * sizeof(*hist_file));
    hist_file_n = log->hist_n;
  }

  rn__clean_t clean = {0};
  bool have_clean = l.has_clean && rn__clean_read(log, &clean) == 0;
  if (l.has_clean && !have_clean) rn__log_say(log, RN_LVL_WARN, "%s: clean-shutdown marker unreadable; recovering by scan", log->dir);
  uint64_t rp = 0, start = 0;
  bool rp_damaged = false;
  if (l.has_rp) {
    err = rn__rp_read(log, &rp, &start);
    if (err) {
      rn__log_say(log, RN_LVL_ERROR, "%s: recovery-point file damaged (%s); verifying every segment and refusing to drop any closed one",
                  log->dir, rn_err_name(err));
      rp = start = 0;
      rp_damaged = true;
    }
  }

  /* Finish an interrupted retention pass: segments wholly below the log
   * start were deleted (the start was made durable before the unlinks). */
  size_t first = 0;
  while (first + 1 < l.n && l.bases[first + 1] <= start) {
    err = unlink_seg_files(log, l.bases[first]);
    if (err) {
      fail(rec, err, "cannot delete segment " RN__SEG_NAME_FMT " below the log start: %s", l.bases[first], rn_strerror(err));
      goto out;
    }
    first++;
  }
  if (first) {
    rn__log_say(log, RN_LVL_INFO, "%s: deleted %zu segment(s) left by an interrupted retention pass", log->dir, first);
    err = fs->sync_dir(fs, log->dir);
    if (err) goto out;
  }

  /* Open every segment file. */
  for (size_t i = first; i < l.n; i++) {
    rn__seg_t *seg = rn__seg_new(l.bases[i]);
    if (!seg) {
      err = RN_ENOMEM;
      goto out;
    }
    char path[RN__PATH_MAX];
    rn__seg_path(log, seg->base, ".log", path);
    err = fs->open(fs, path, 0, &seg->file);
    if (!err) err = rn__log_push_seg(log, seg);
    if (err) {
      rn__seg_free(seg);
      fail(rec, err, "cannot open %s: %s", path, rn_strerror(err));
      goto out;
    }
    seg->dir_synced = true;
  }

  if (have_clean && log->nsegs == 0) have_clean = false; /* a marker without data: ignore it */
  if (have_clean) {
    rn__seg_t *last = log->segs[log->nsegs - 1];
    uint64_t size = 0;
    err = fs->size(last->file, &size);
    if (err) goto out;
    if (last->base != clean.active_base || size != clean.active_size) {
      rn__log_say(log, RN_LVL_WARN, "%s: clean-shutdown marker does not match the active segment; recovering by scan",
                  log->dir);
      have_clean = false;
    }
  }
  /* The marker is consumed either way: appends after this open must not be
   * mistaken for a clean state by the next one. */
  if (l.has_clean) {
    char path[RN__PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", log->dir, RN__CLEAN_NAME);
    err = fs->unlink(fs, path);
    if (!err) err = fs->sync_dir(fs, log->dir);
    if (err) {
      fail(rec, err, "cannot remove the clean-shutdown marker: %s", rn_strerror(err));
      goto out;
    }
  }

  if (have_clean) {
    rec->clean = true;
    for (uint32_t i = 0; i < log->nsegs; i++) {
      rn__seg_t *seg = log->segs[i];
      err = load_trusted(log, seg, rec, false);
      if (err) goto out;
      if (i > 0 && seg->base != log->segs[i - 1]->next) {
        err = fail(rec, RN_ECORRUPT, "gap between segments: " RN__SEG_NAME_FMT " ends at %" PRIu64 ", next starts at %" PRIu64,
                   log->segs[i - 1]->base, log->segs[i - 1]->next, seg->base);
        goto out;
      }
      seg->sealed = seg->next <= rp && i + 1 < log->nsegs;
    }
    if (log->segs[log->nsegs - 1]->next != clean.next_offset) {
      err = fail(rec, RN_ECORRUPT, "clean-shutdown marker says next offset %" PRIu64 ", index says %" PRIu64,
                 clean.next_offset, log->segs[log->nsegs - 1]->next);
      goto out;
    }
    /* Nothing is scanned: the history written at close covers it all. */
    err = hist_begin(log, hist_loaded, clean.next_offset, rec);
    hist_begun = true;
    if (err) goto out;
  } else {
    uint32_t i = 0;
    if (rp_damaged && log->nsegs) {
      /* Every closed segment is scanned below: so is the history. */
      err = hist_begin(log, hist_loaded, log->segs[0]->base, rec);
      hist_begun = true;
      if (err) goto out;
    }
    /* Sealed: the next segment starts at or below the recovery point. With a
     * damaged recovery-point file every closed segment is treated as sealed
     * but verified in full: damage there fails the open instead of cutting
     * acknowledged data. */
    for (; i + 1 < log->nsegs && (rp_damaged || log->segs[i + 1]->base <= rp); i++) {
      rn__seg_t *seg = log->segs[i];
      err = load_trusted(log, seg, rec, rp_damaged);
      if (err) goto out;
      if (i > 0 && seg->base != log->segs[i - 1]->next) {
        err = fail(rec, RN_ECORRUPT, "gap below the recovery point: segment " RN__SEG_NAME_FMT " ends at %" PRIu64 ", next starts at %" PRIu64,
                   log->segs[i - 1]->base, log->segs[i - 1]->next, seg->base);
        goto out;
      }
      seg->sealed = true;
    }
    if (!rp_damaged && rp > 0 && (i >= log->nsegs || log->segs[i]->base != rp)) {
      err = fail(rec, RN_ECORRUPT, "recovery point %" PRIu64 " has no segment starting there (segment files missing)", rp);
      goto out;
    }
    if (i > 0 && log->segs[i - 1]->next != log->segs[i]->base) {
      err = fail(rec, RN_ECORRUPT, "segment " RN__SEG_NAME_FMT " ends at %" PRIu64 " but the next starts at %" PRIu64,
                 log->segs[i - 1]->base, log->segs[i - 1]->next, log->segs[i]->base);
      goto out;
    }
    /* Unsealed: verify every batch; cut at the first tear. */
    for (; i < log->nsegs; i++) {
      rn__seg_t *seg = log->segs[i];
      uint32_t drop_from = UINT32_MAX;
      if (i > 0 && seg->base != log->segs[i - 1]->next) {
        rn__log_say(log, RN_LVL_WARN, "%s: segment " RN__SEG_NAME_FMT " does not continue the previous one (ends at %" PRIu64 "); dropping it and later segments",
                    log->dir, seg->base, log->segs[i - 1]->next);
        drop_from = i;
      } else {
        /* An index checkpoint covers a synced prefix: scan only after it.
         * Only the first segment scanned trusts one (the epoch history was
         * written before it, and is trusted below where the scans start). */
        uint64_t fsize = 0, from = 0;
        err = fs->size(seg->file, &fsize);
        if (err) goto out;
        if (hist_begun || rn__seg_index_load_prefix(log, seg, fsize, &from) != 0) from = 0;
        if (!hist_begun) {
          err = hist_begin(log, hist_loaded, from ? seg->next : seg->base, rec);
          hist_begun = true;
          if (err) goto out;
        }
        rn__scan_t scan;
        err = rn__seg_scan_from(log, seg, from, &scan);
        if (err) goto out;
        rec->segments_scanned++;
        if (from) rec->bytes_trusted += from;
        seg->idx_cp = from;
        if (scan.err) {
          rn__log_say(log, RN_LVL_WARN, "%s: " RN__SEG_NAME_FMT ".log: %s; truncating %" PRIu64 " bytes",
                      log->dir, seg->base, scan.why, scan.file_size - scan.valid_size);
          err = fs->truncate(seg->file, scan.valid_size);
          if (err) goto out;
          rec->bytes_truncated += scan.file_size - scan.valid_size;
          drop_from = i + 1;
        }
        err = fs->datasync(seg->file);
        if (err) goto out;
      }
      if (drop_from == UINT32_MAX) continue;
      for (uint32_t j = drop_from; j < log->nsegs; j++) {
        uint64_t size = 0;
        if (fs->size(log->segs[j]->file, &size) == 0) rec->bytes_truncated += size;
        err = unlink_seg_files(log, log->segs[j]->base);
        if (err) goto out;
        rec->segments_dropped++;
        rn__seg_free(log->segs[j]);
        log->segs[j] = NULL;
      }
      log->nsegs = drop_from;
      err = fs->sync_dir(fs, log->dir);
      if (err) goto out;
      break;
    }
    if (rec->segments_dropped)
      rn__log_say(log, RN_LVL_WARN, "%s: dropped %u unsynced segment(s) after a torn write", log->dir,
                  rec->segments_dropped);
  }

  log->hist_collect = false;
  if (log->hist_bad) {
    err = fail(rec, RN_ECORRUPT,
               "%s: the batch at offset %" PRIu64 " has leader epoch %" PRIu32 ", below epoch %" PRIu32
               " before it: the log or its leader-epoch history is damaged",
               log->dir, log->hist_bad_offset, log->hist_bad_epoch, log->hist_bad_last);
    goto out;
  }
  if (!hist_begun && log->nsegs) {
    /* Every segment was trusted (the unsealed one was dropped). */
    err = hist_begin(log, hist_loaded, log->segs[log->nsegs - 1]->next, rec);
    log->hist_collect = false;
    if (err) goto out;
  }

  if (log->nsegs == 0) {
    /* An empty directory: a restored shard continues at opts.first_offset. */
    rn__seg_t *seg = rn__seg_new(rp > log->opts.first_offset ? rp : log->opts.first_offset);
    if (!seg) {
      err = RN_ENOMEM;
      goto out;
    }
    char path[RN__PATH_MAX];
    rn__seg_path(log, seg->base, ".log", path);
    err = fs->open(fs, path, RN_FS_CREATE | RN_FS_TRUNC, &seg->file);
    if (!err) err = fs->sync_dir(fs, log->dir);
    if (!err) err = rn__log_push_seg(log, seg);
    if (err) {
      rn__seg_free(seg);
      fail(rec, err, "cannot create %s: %s", path, rn_strerror(err));
      goto out;
    }
    seg->dir_synced = true;
  }

  /* Seal unsealed closed segments now (they were just verified and synced),
   * so the recovery point reaches the active segment. */
  for (uint32_t i = 0; i + 1 < log->nsegs; i++) {
    rn__seg_t *seg = log->segs[i];
    if (seg->sealed) continue;
    uint8_t *ib, *tb;
    size_t il, tl;
    err = rn__seg_index_encode(seg, &ib, &il, &tb, &tl);
    if (err) goto out;
    char path[RN__PATH_MAX];
    rn__seg_path(log, seg->base, ".index", path);
    err = rn_fs_write_file(fs, path, ib, il);
    rn__seg_path(log, seg->base, ".timeindex", path);
    if (!err) err = rn_fs_write_file(fs, path, tb, tl);
    free(ib);
    free(tb);
    if (err) goto out;
    seg->sealed = true;
  }
  /* The history says which epoch wrote every offset kept, nothing past:
   * written (when this open changed it) before the recovery point moves
   * past what was scanned. */
  rn__hist_cut(log, log->segs[log->nsegs - 1]->next);
  rn__hist_trim(log, log->segs[0]->base);
  if (herr == RN_ECORRUPT || !hist_equal(log->hist, log->hist_n, hist_file, hist_file_n)) {
    uint8_t *hb;
    size_t hl;
    err = rn__hist_encode(log->hist, log->hist_n, &hb, &hl);
    if (!err) err = rn__hist_write(log, hb, hl);
    free(hb);
    if (err) {
      fail(rec, err, "%s: cannot write the leader-epoch history: %s", log->dir, rn_strerror(err));
      goto out;
    }
    rec->epochs_repaired = true;
  }
  log->hist_seq = log->hist_durable_seq = 0;

  uint64_t active_base = log->segs[log->nsegs - 1]->base;
  if (active_base != rp || start != log->segs[0]->base || !l.has_rp || rp_damaged) {
    err = rn__rp_write(log, active_base, log->segs[0]->base);
    if (err) goto out;
  }
  log->recovery_point = log->rp_submitted = active_base;
  log->start_submitted = log->segs[0]->base;

  for (uint32_t i = 0; i < log->nsegs; i++) {
    rn__seg_t *seg = log->segs[i];
    seg->written = seg->synced = seg->size;
    seg->created_ms = rn__log_now(log);
  }
  /* A segment's age counts from its first batch's arrival, so restarts do
   * not postpone roll by age (and with it time retention). */
  rn__seg_t *act = log->segs[log->nsegs - 1];
  if (act->size >= RN_BATCH_HEADER_SIZE) {
    uint8_t hb[RN_BATCH_HEADER_SIZE];
    size_t got = 0;
    rn_batch_header_t h;
    if (fs->pread(act->file, hb, sizeof(hb), 0, &got) == 0 && got == sizeof(hb) &&
        rn_batch_header_decode(hb, got, &h) == 0 && h.arrival_time_ms > 0 && h.arrival_time_ms < act->created_ms)
      act->created_ms = h.arrival_time_ms;
  }
  rn__seg_t *last = log->segs[log->nsegs - 1];
  log->next_offset = log->written_next = log->durable_next = last->next;
  rec->segments = log->nsegs;
  err = 0;
out:
  log->hist_collect = false;
  free(hist_file);
  listing_free(&l);
  if (err && !rec->message[0]) fail(rec, err, "%s: recovery failed: %s", log->dir, rn_strerror(err));
  return err;
}
