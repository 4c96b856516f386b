/*
 * segment.c — one segment's files: the data file, its sparse offset and time
 * indexes (in memory and on disk), scanning and verifying a data file, and
 * the small state files of a log (recovery point, clean-shutdown marker).
 *
 * Invariants: index entries are strictly increasing in pos and rel; an index
 * file is trusted only when its checksum matches and it covers exactly the
 * data file's size; every byte a scan accepts belongs to a batch whose both
 * checksums verified and whose offsets continue the previous batch.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "log_int.h"

/* ---- segments ---------------------------------------------------------- */

void rn__seg_path(const rn_log_t *log, uint64_t base, const char *suffix, char *out) {
  snprintf(out, RN__PATH_MAX, "%s/" RN__SEG_NAME_FMT "%s", log->dir, base, suffix);
}

rn__seg_t *rn__seg_new(uint64_t base) {
  rn__seg_t *seg = calloc(1, sizeof(*seg));
  if (!seg) return NULL;
  seg->base = base;
  seg->next = base;
  seg->max_ts = INT64_MIN;
  return seg;
}

void rn__seg_free(rn__seg_t *seg) {
  if (!seg) return;
  if (seg->file) seg->file->fs->close(seg->file);
  free(seg->idx);
  free(seg->tidx);
  free(seg);
}

static rn_err_t grow(void **arr, uint32_t *cap, size_t elem) {
  uint32_t ncap = *cap ? *cap * 2 : 64;
  void *n = realloc(*arr, (size_t)ncap * elem);
  if (!n) return RN_ENOMEM;
  *arr = n;
  *cap = ncap;
  return 0;
}

rn_err_t rn__seg_index_batch(rn__seg_t *seg, uint64_t pos, const rn_batch_header_t *hdr,
                             uint32_t len, uint32_t interval) {
  uint32_t rel = (uint32_t)(hdr->base_offset - seg->base);
  bool add_idx = seg->idx_len == 0 || pos - seg->idx_last_pos >= interval;
  bool add_tidx = hdr->max_timestamp > seg->max_ts && (seg->tidx_len == 0 || pos - seg->tidx_last_pos >= interval);
  /* Reserve both before changing anything: all or nothing. */
  if (add_idx && seg->idx_len == seg->idx_cap && grow((void **)&seg->idx, &seg->idx_cap, sizeof(rn__idx_t)))
    return RN_ENOMEM;
  if (add_tidx && seg->tidx_len == seg->tidx_cap && grow((void **)&seg->tidx, &seg->tidx_cap, sizeof(rn__tidx_t)))
    return RN_ENOMEM;
  if (add_idx) {
    seg->idx[seg->idx_len++] = (rn__idx_t){.rel = rel, .pos = (uint32_t)pos};
    seg->idx_last_pos = pos;
  }
  if (add_tidx) {
    seg->tidx[seg->tidx_len++] = (rn__tidx_t){.ts = hdr->max_timestamp, .rel = rel, .pos = (uint32_t)pos};
    seg->tidx_last_pos = pos;
  }
  if (hdr->max_timestamp > seg->max_ts) seg->max_ts = hdr->max_timestamp;
  seg->next = hdr->base_offset + hdr->record_count;
  seg->size = pos + len;
  return 0;
}

void rn__seg_take_index(rn__seg_t *seg, rn__seg_t *from) {
  free(seg->idx);
  free(seg->tidx);
  seg->idx = from->idx;
  seg->idx_len = from->idx_len;
  seg->idx_cap = from->idx_cap;
  seg->tidx = from->tidx;
  seg->tidx_len = from->tidx_len;
  seg->tidx_cap = from->tidx_cap;
  seg->idx_last_pos = from->idx_last_pos;
  seg->tidx_last_pos = from->tidx_last_pos;
  seg->next = from->next;
  seg->size = from->size;
  seg->max_ts = from->max_ts;
  from->idx = NULL;
  from->tidx = NULL;
  from->idx_len = from->idx_cap = from->tidx_len = from->tidx_cap = 0;
}

void rn__seg_index_truncate(rn__seg_t *seg, uint64_t pos) {
  while (seg->idx_len && seg->idx[seg->idx_len - 1].pos >= pos) seg->idx_len--;
  while (seg->tidx_len && seg->tidx[seg->tidx_len - 1].pos >= pos) seg->tidx_len--;
  seg->idx_last_pos = seg->idx_len ? seg->idx[seg->idx_len - 1].pos : 0;
  seg->tidx_last_pos = seg->tidx_len ? seg->tidx[seg->tidx_len - 1].pos : 0;
}

/* ---- scanning -------------------------------------------------------------- */

#define SCAN_BUF (1u << 20)

rn_err_t rn__seg_scan(rn_log_t *log, rn__seg_t *seg, rn__scan_t *scan) { return rn__seg_scan_from(log, seg, 0, scan); }

rn_err_t rn__seg_scan_from(rn_log_t *log, rn__seg_t *seg, uint64_t from, rn__scan_t *scan) {
  rn_file_t *f = seg->file;
  memset(scan, 0, sizeof(*scan));
  rn_err_t err = f->fs->size(f, &scan->file_size);
  if (err) return err;

  if (from == 0) {
    seg->next = seg->base;
    seg->size = 0;
    seg->max_ts = INT64_MIN;
    seg->idx_len = seg->tidx_len = 0;
    seg->idx_last_pos = seg->tidx_last_pos = 0;
  } else if (from > scan->file_size || seg->size != from) {
    return RN_EINVAL;
  }

  size_t cap = SCAN_BUF;
  uint8_t *buf = malloc(cap);
  if (!buf) return RN_ENOMEM;
  uint64_t pos = from;  /* file position of buf[0] */
  size_t have = 0, at = 0; /* bytes in buf; parse cursor */
  uint32_t interval = log->opts.index_interval;

  for (;;) {
    uint64_t here = pos + at;
    if (here == scan->file_size) break;
    size_t avail = have - at;
    rn_batch_header_t hdr;
    size_t need = 0;
    rn_err_t v = avail >= RN_BATCH_HEADER_SIZE ? rn_batch_verify(buf + at, avail, &hdr, &need)
                                               : RN_EPARTIAL;
    if (v == RN_EPARTIAL) {
      if (need == 0) need = RN_BATCH_HEADER_SIZE;
      if (here + need > scan->file_size) {
        scan->err = RN_ECORRUPT;
        snprintf(scan->why, sizeof(scan->why), "torn batch at position %" PRIu64 " (needs %zu bytes, file has %" PRIu64 ")",
                 here, need, scan->file_size - here);
        break;
      }
      /* Refill: move the partial batch to the front, grow when needed. */
      memmove(buf, buf + at, avail);
      pos = here;
      have = avail;
      at = 0;
      if (need > cap) {
        uint8_t *nb = realloc(buf, need);
        if (!nb) {
          free(buf);
          return RN_ENOMEM;
        }
        buf = nb;
        cap = need;
      }
      size_t want = cap - have;
      if (want > scan->file_size - (pos + have)) want = (size_t)(scan->file_size - (pos + have));
      size_t got = 0;
      err = f->fs->pread(f, buf + have, want, pos + have, &got);
      if (err) {
        free(buf);
        return err;
      }
      if (got == 0) {
        scan->err = RN_ECORRUPT;
        snprintf(scan->why, sizeof(scan->why), "short read at position %" PRIu64, pos + have);
        break;
      }
      have += got;
      continue;
    }
    if (v) {
      scan->err = v;
      snprintf(scan->why, sizeof(scan->why), "batch at position %" PRIu64 " failed verification (%s)",
               here, rn_err_name(v));
      break;
    }
    if (hdr.base_offset != seg->next) {
      scan->err = RN_ECORRUPT;
      snprintf(scan->why, sizeof(scan->why),
               "batch at position %" PRIu64 " has base offset %" PRIu64 ", expected %" PRIu64, here,
               hdr.base_offset, seg->next);
      break;
    }
    if (here + hdr.batch_length > UINT32_MAX) {
      scan->err = RN_ECORRUPT;
      snprintf(scan->why, sizeof(scan->why), "segment larger than 4 GiB at position %" PRIu64, here);
      break;
    }
    err = rn__seg_index_batch(seg, here, &hdr, hdr.batch_length, interval);
    if (!err && log->hist_collect) err = rn__hist_scan_note(log, hdr.leader_epoch, hdr.base_offset);
    if (err) {
      free(buf);
      return err;
    }
    at += hdr.batch_length;
  }
  free(buf);
  scan->valid_size = seg->size;
  return 0;
}

/* ---- index files ------------------------------------------------------------
 * Header (48 bytes, little-endian): magic "RNIX" | u16 version 1 | u16 kind
 * (1 offset, 2 time) | u64 base | u64 covered size | u64 next offset | i64 max
 * timestamp | u32 count | u32 0; then count entries (offset: u32 rel, u32 pos;
 * time: i64 ts, u32 rel, u32 pos); then u64 XXH3 of everything before it. */

#define IDX_MAGIC 0x58494e52u /* "RNIX" */
#define IDX_HDR 48u

static uint8_t *idx_encode(const rn__seg_t *seg, uint16_t kind, uint32_t count, size_t esize, uint64_t covered,
                           uint64_t next, int64_t max_ts, bool checkpoint, size_t *out_len) {
  size_t len = IDX_HDR + (size_t)count * esize + 8;
  uint8_t *b = malloc(len);
  if (!b) return NULL;
  rn__put_u32(b, IDX_MAGIC);
  b[4] = 1;
  b[5] = 0;
  b[6] = (uint8_t)kind;
  b[7] = checkpoint ? 1 : 0; /* an index checkpoint of an active segment */
  rn__put_u64(b + 8, seg->base);
  rn__put_u64(b + 16, covered);
  rn__put_u64(b + 24, next);
  rn__put_u64(b + 32, (uint64_t)max_ts);
  rn__put_u32(b + 40, count);
  rn__put_u32(b + 44, 0);
  uint8_t *p = b + IDX_HDR;
  for (uint32_t i = 0; i < count; i++, p += esize) {
    if (kind == 1) {
      rn__put_u32(p, seg->idx[i].rel);
      rn__put_u32(p + 4, seg->idx[i].pos);
    } else {
      rn__put_u64(p, (uint64_t)seg->tidx[i].ts);
      rn__put_u32(p + 8, seg->tidx[i].rel);
      rn__put_u32(p + 12, seg->tidx[i].pos);
    }
  }
  rn__put_u64(p, XXH3_64bits(b, (size_t)(p - b)));
  *out_len = len;
  return b;
}

static rn_err_t encode_pair(const rn__seg_t *seg, uint32_t ic, uint32_t tc, uint64_t covered, uint64_t next,
                            int64_t max_ts, bool checkpoint, uint8_t **idx, size_t *idx_len, uint8_t **tidx,
                            size_t *tidx_len) {
  *idx = idx_encode(seg, 1, ic, 8, covered, next, max_ts, checkpoint, idx_len);
  *tidx = idx_encode(seg, 2, tc, 16, covered, next, max_ts, checkpoint, tidx_len);
  if (!*idx || !*tidx) {
    free(*idx);
    free(*tidx);
    *idx = *tidx = NULL;
    return RN_ENOMEM;
  }
  return 0;
}

rn_err_t rn__seg_index_encode(const rn__seg_t *seg, uint8_t **idx, size_t *idx_len, uint8_t **tidx,
                              size_t *tidx_len) {
  return encode_pair(seg, seg->idx_len, seg->tidx_len, seg->size, seg->next, seg->max_ts, false, idx, idx_len, tidx,
                     tidx_len);
}

rn_err_t rn__seg_index_encode_prefix(const rn__seg_t *seg, uint64_t covered, uint64_t next, int64_t max_ts, uint8_t **idx,
                                     size_t *idx_len, uint8_t **tidx, size_t *tidx_len) {
  uint32_t ic = seg->idx_len, tc = seg->tidx_len;
  while (ic && seg->idx[ic - 1].pos >= covered) ic--;
  while (tc && seg->tidx[tc - 1].pos >= covered) tc--;
  return encode_pair(seg, ic, tc, covered, next, max_ts, true, idx, idx_len, tidx, tidx_len);
}

/* file_size: the size the files must cover; with prefix, they may cover
 * less (their own covered size, returned in *covered). */
static rn_err_t idx_check(const uint8_t *b, size_t len, uint16_t kind, size_t esize, const rn__seg_t *seg,
                          uint64_t file_size, bool prefix, uint64_t *covered, uint32_t *count) {
  if (len < IDX_HDR + 8 || rn__get_u32(b) != IDX_MAGIC || b[4] != 1 || b[6] != kind) return RN_ECORRUPT;
  *count = rn__get_u32(b + 40);
  if ((size_t)*count * esize + IDX_HDR + 8 != len) return RN_ECORRUPT;
  if (rn__get_u64(b + len - 8) != XXH3_64bits(b, len - 8)) return RN_ECORRUPT;
  *covered = rn__get_u64(b + 16);
  if (rn__get_u64(b + 8) != seg->base || (prefix ? *covered > file_size : *covered != file_size)) return RN_ECORRUPT;
  /* Only an index checkpoint vouches for a prefix: the index files a clean
   * close leaves are trusted only together with the clean-shutdown marker. */
  if (prefix && b[7] != 1) return RN_ECORRUPT;
  return 0;
}

static rn_err_t index_load(rn_log_t *log, rn__seg_t *seg, uint64_t file_size, bool prefix, uint64_t *covered);

rn_err_t rn__seg_index_load(rn_log_t *log, rn__seg_t *seg, uint64_t file_size) {
  uint64_t covered;
  return index_load(log, seg, file_size, false, &covered);
}

rn_err_t rn__seg_index_load_prefix(rn_log_t *log, rn__seg_t *seg, uint64_t file_size, uint64_t *covered) {
  return index_load(log, seg, file_size, true, covered);
}

static rn_err_t index_load(rn_log_t *log, rn__seg_t *seg, uint64_t file_size, bool prefix, uint64_t *covered) {
  char path[RN__PATH_MAX];
  uint8_t *ib = NULL, *tb = NULL;
  size_t il = 0, tl = 0;
  uint32_t ic = 0, tc = 0;
  rn__seg_path(log, seg->base, ".index", path);
  rn_err_t err = rn__read_file(log->fs, path, 64u << 20, &ib, &il);
  if (!err) {
    rn__seg_path(log, seg->base, ".timeindex", path);
    err = rn__read_file(log->fs, path, 64u << 20, &tb, &tl);
  }
  uint64_t tcov = 0;
  if (!err) err = idx_check(ib, il, 1, 8, seg, file_size, prefix, covered, &ic);
  if (!err) err = idx_check(tb, tl, 2, 16, seg, file_size, prefix, &tcov, &tc);
  if (!err && tcov != *covered) err = RN_ECORRUPT;
  if (!err) file_size = *covered; /* what the entries must lie in */
  if (!err && (rn__get_u64(ib + 24) != rn__get_u64(tb + 24) || rn__get_u64(ib + 32) != rn__get_u64(tb + 32)))
    err = RN_ECORRUPT;
  uint64_t next = 0;
  if (!err) {
    next = rn__get_u64(ib + 24);
    if (next < seg->base || (file_size == 0) != (next == seg->base)) err = RN_ECORRUPT;
  }
  rn__idx_t *idx = NULL;
  rn__tidx_t *tidx = NULL;
  if (!err) {
    idx = malloc(((size_t)ic + 1) * sizeof(*idx));
    tidx = malloc(((size_t)tc + 1) * sizeof(*tidx));
    if (!idx || !tidx) err = RN_ENOMEM;
  }
  if (!err) {
    for (uint32_t i = 0; i < ic && !err; i++) {
      idx[i].rel = rn__get_u32(ib + IDX_HDR + 8 * i);
      idx[i].pos = rn__get_u32(ib + IDX_HDR + 8 * i + 4);
      if (idx[i].pos >= file_size || idx[i].rel >= next - seg->base ||
          (i && (idx[i].pos <= idx[i - 1].pos || idx[i].rel <= idx[i - 1].rel)))
        err = RN_ECORRUPT;
    }
    if (!err && file_size && (ic == 0 || idx[0].pos != 0 || idx[0].rel != 0)) err = RN_ECORRUPT;
    for (uint32_t i = 0; i < tc && !err; i++) {
      const uint8_t *e = tb + IDX_HDR + 16 * i;
      tidx[i].ts = (int64_t)rn__get_u64(e);
      tidx[i].rel = rn__get_u32(e + 8);
      tidx[i].pos = rn__get_u32(e + 12);
      if (tidx[i].pos >= file_size || (i && (tidx[i].pos <= tidx[i - 1].pos || tidx[i].ts <= tidx[i - 1].ts)))
        err = RN_ECORRUPT;
    }
  }
  if (!err) {
    free(seg->idx);
    free(seg->tidx);
    seg->idx = idx;
    seg->idx_len = ic;
    seg->idx_cap = ic + 1;
    seg->tidx = tidx;
    seg->tidx_len = tc;
    seg->tidx_cap = tc + 1;
    seg->idx_last_pos = ic ? idx[ic - 1].pos : 0;
    seg->tidx_last_pos = tc ? tidx[tc - 1].pos : 0;
    seg->next = next;
    seg->max_ts = (int64_t)rn__get_u64(ib + 32);
    seg->size = file_size;
  } else {
    free(idx);
    free(tidx);
  }
  free(ib);
  free(tb);
  return err;
}

/* ---- locating a batch ------------------------------------------------------ */

uint64_t rn__seg_index_file_bytes(const rn__seg_t *seg, bool time) {
  return IDX_HDR + (uint64_t)(time ? seg->tidx_len : seg->idx_len) * (time ? 16 : 8) + 8;
}

/* ---- index files read back from elsewhere (rn_log.h) ---- */

/* Check an index file's bytes for the sealed segment (base, bytes). */
static rn_err_t idx_check_sealed(const uint8_t *b, size_t len, uint16_t kind, size_t esize, uint64_t base,
                                 uint64_t bytes, uint32_t *count) {
  if (!b || len < IDX_HDR + 8 || rn__get_u32(b) != IDX_MAGIC || b[4] != 1 || b[6] != kind) return RN_ECORRUPT;
  *count = rn__get_u32(b + 40);
  if ((size_t)*count * esize + IDX_HDR + 8 != len) return RN_ECORRUPT;
  if (rn__get_u64(b + len - 8) != XXH3_64bits(b, len - 8)) return RN_ECORRUPT;
  if (rn__get_u64(b + 8) != base || rn__get_u64(b + 16) != bytes) return RN_ECORRUPT;
  return 0;
}

rn_err_t rn_log_index_lookup(const uint8_t *idx, size_t len, uint64_t base, uint64_t bytes, uint64_t offset,
                             uint64_t *pos) {
  uint32_t n;
  rn_err_t err = idx_check_sealed(idx, len, 1, 8, base, bytes, &n);
  if (err) return err;
  if (offset < base) return RN_EOFFSET;
  uint64_t rel = offset - base;
  const uint8_t *e = idx + IDX_HDR;
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (rn__get_u32(e + 8 * (size_t)mid) <= rel)
      lo = mid + 1;
    else
      hi = mid;
  }
  *pos = lo ? rn__get_u32(e + 8 * (size_t)(lo - 1) + 4) : 0;
  return *pos < bytes || bytes == 0 ? 0 : RN_ECORRUPT;
}

rn_err_t rn_log_timeindex_lookup(const uint8_t *tidx, size_t len, uint64_t base, uint64_t bytes, int64_t ts,
                                 uint64_t *pos) {
  uint32_t n;
  rn_err_t err = idx_check_sealed(tidx, len, 2, 16, base, bytes, &n);
  if (err) return err;
  /* Entries are in position order with growing ts; every batch before the
   * entry at pos has max timestamp <= its ts. The last entry with ts < the
   * target is where a batch reaching the target may start at the earliest. */
  const uint8_t *e = tidx + IDX_HDR;
  uint32_t lo = 0, hi = n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if ((int64_t)rn__get_u64(e + 16 * (size_t)mid) < ts)
      lo = mid + 1;
    else
      hi = mid;
  }
  *pos = lo ? rn__get_u32(e + 16 * (size_t)(lo - 1) + 12) : 0;
  return *pos < bytes || bytes == 0 ? 0 : RN_ECORRUPT;
}

uint64_t rn__seg_index_pos(const rn__seg_t *seg, uint64_t offset) {
  uint32_t lo = 0, hi = seg->idx_len;
  uint64_t rel = offset - seg->base;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (seg->idx[mid].rel <= rel)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo ? seg->idx[lo - 1].pos : 0;
}

rn_err_t rn__scan_to_offset(rn_file_t *f, uint64_t pos, uint64_t limit, uint64_t offset, uint64_t *found,
                            rn_batch_header_t *hdr) {
  uint8_t hb[RN_BATCH_HEADER_SIZE];
  while (pos < limit) {
    size_t got = 0;
    rn_err_t err = f->fs->pread(f, hb, sizeof(hb), pos, &got);
    if (err) return err;
    if (got < sizeof(hb) || rn_batch_header_decode(hb, sizeof(hb), hdr)) return RN_ECORRUPT;
    if (hdr->record_count == 0 || hdr->base_offset > offset) return RN_ECORRUPT;
    if (rn_batch_last_offset(hdr) >= offset) {
      *found = pos;
      return 0;
    }
    pos += hdr->batch_length;
  }
  return RN_EOFFSET;
}

/* ---- small files ------------------------------------------------------------ */

rn_err_t rn__read_file(rn_fs_t *fs, const char *path, size_t max, uint8_t **data, size_t *len) {
  rn_file_t *f;
  *data = NULL;
  *len = 0;
  rn_err_t err = fs->open(fs, path, RN_FS_RDONLY, &f);
  if (err) return err;
  uint64_t size = 0;
  err = fs->size(f, &size);
  if (!err && size > max) err = RN_ECORRUPT;
  uint8_t *b = NULL;
  size_t got = 0;
  if (!err) {
    b = malloc(size ? (size_t)size : 1);
    if (!b) err = RN_ENOMEM;
  }
  if (!err) err = fs->pread(f, b, (size_t)size, 0, &got);
  fs->close(f);
  if (err) {
    free(b);
    return err;
  }
  *data = b;
  *len = got;
  return 0;
}

/* State files: u32 magic | u32 version 1 | payload u64s | u64 XXH3. */
static rn_err_t state_write(rn_log_t *log, const char *name, uint32_t magic, const uint64_t *v, int n) {
  uint8_t b[8 + 8 * 4 + 8];
  rn__put_u32(b, magic);
  rn__put_u32(b + 4, 1);
  for (int i = 0; i < n; i++) rn__put_u64(b + 8 + 8 * i, v[i]);
  size_t len = 8 + 8 * (size_t)n;
  rn__put_u64(b + len, XXH3_64bits(b, len));
  return rn_snapshot_write(log->fs, log->dir, name, b, len + 8);
}

static rn_err_t state_read(rn_log_t *log, const char *name, uint32_t magic, uint64_t *v, int n) {
  char path[RN__PATH_MAX];
  snprintf(path, sizeof(path), "%s/%s", log->dir, name);
  uint8_t *b;
  size_t len;
  rn_err_t err = rn__read_file(log->fs, path, 4096, &b, &len);
  if (err) return err;
  size_t want = 8 + 8 * (size_t)n;
  if (len != want + 8 || rn__get_u32(b) != magic || rn__get_u32(b + 4) != 1 ||
      rn__get_u64(b + want) != XXH3_64bits(b, want)) {
    free(b);
    return RN_ECORRUPT;
  }
  for (int i = 0; i < n; i++) v[i] = rn__get_u64(b + 8 + 8 * i);
  free(b);
  return 0;
}

#define RP_MAGIC 0x50524e52u    /* "RNRP" */
#define CLEAN_MAGIC 0x53434e52u /* "RNCS" */
#define FLOOR_MAGIC 0x464a4e52u /* "RNJF" */

rn_err_t rn__floor_write(rn_log_t *log, uint64_t lsn) {
  return state_write(log, RN__FLOOR_NAME, FLOOR_MAGIC, &lsn, 1);
}
rn_err_t rn__floor_read(rn_log_t *log, uint64_t *lsn) {
  return state_read(log, RN__FLOOR_NAME, FLOOR_MAGIC, lsn, 1);
}

rn_err_t rn__rp_write(rn_log_t *log, uint64_t rp, uint64_t start) {
  uint64_t v[2] = {rp, start};
  return state_write(log, RN__RP_NAME, RP_MAGIC, v, 2);
}
rn_err_t rn__rp_read(rn_log_t *log, uint64_t *rp, uint64_t *start) {
  uint64_t v[2];
  rn_err_t err = state_read(log, RN__RP_NAME, RP_MAGIC, v, 2);
  if (err) return err;
  if (v[1] > v[0]) return RN_ECORRUPT;
  *rp = v[0];
  *start = v[1];
  return 0;
}
rn_err_t rn__clean_write(rn_log_t *log, const rn__clean_t *c) {
  uint64_t v[3] = {c->active_base, c->active_size, c->next_offset};
  return state_write(log, RN__CLEAN_NAME, CLEAN_MAGIC, v, 3);
}
rn_err_t rn__clean_read(rn_log_t *log, rn__clean_t *c) {
  uint64_t v[3];
  rn_err_t err = state_read(log, RN__CLEAN_NAME, CLEAN_MAGIC, v, 3);
  if (err) return err;
  c->active_base = v[0];
  c->active_size = v[1];
  c->next_offset = v[2];
  return 0;
}
