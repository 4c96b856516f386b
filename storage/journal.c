/*
 * journal.c — the shared write-ahead journal of a data disk (docs/storage.md,
 * "The journal").
 *
 * Invariants, in the order the code relies on them:
 *   1. A record is submitted only after its bytes were written to their
 *      segment file (the log calls rn__journal_submit from its write
 *      callback). So a checkpoint that fdatasyncs every attached log's
 *      segments makes every record placed before it redundant.
 *   2. Records are placed in submission order at increasing LSNs, one round
 *      (pwritev of every record that fits, then one fdatasync) in flight at
 *      a time; a record is reported durable only after the fdatasync of its
 *      round, and records are reported in LSN order.
 *   3. The file is preallocated by writing it whole at creation, so a round
 *      overwrites allocated, initialised blocks: its fdatasync is a data
 *      flush with no file-system metadata to commit.
 *   4. The writer never places a record over bytes at or after the tail (the
 *      position of the last durable checkpoint): space before the tail is
 *      reused only once the checkpoint header saying so is durable.
 *   5. A record is accepted by recovery only when its header and payload
 *      checksum match, its LSN is exactly the next one expected, and its
 *      generation fits the fence: a record at or past the fence LSN of the
 *      newest header must carry that header's generation, one below it an
 *      older generation. Every open that will write bumps the generation and
 *      sets the fence to the next LSN (durably, before writing), so bytes
 *      left by an earlier run that happen to parse in the right place after
 *      a torn round are never replayed.
 *   6. Replay is idempotent: a record rewrites the same bytes at the same
 *      position of its segment file; the log then recovers that segment as
 *      usual (verify, truncate a torn tail).
 *
 * Threading: everything runs on the owner thread of the rn_io_t except
 * rn__journal_claim and rn__journal_next_lsn, which rn_log_open may call on
 * another thread (the broker opens a new stream's logs on its thread pool);
 * they take mu.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t: the record checksum runs over header and payload */
#include <xxhash.h>

#include "log_int.h"

#define J_DATA_START 4096u
#define J_SLOT_SIZE 512u
#define J_HDR_SIZE 56u
#define J_REC_MAGIC 0x524e4a52u  /* "RNJR" */
#define J_HEAD_MAGIC 0x524e4a48u /* "RNJH" */
#define J_KIND_DATA 1u
#define J_KIND_WRAP 2u
#define J_MIN_SIZE (1ull << 20)
#define J_ROUND_MAX_RECS 480 /* two iovecs each, under IOV_MAX */

/* ---- pure codecs (header slots and record headers) ------------------------------ */

/* Header slot layout (little endian): magic, version, seq, gen, size,
 * fence_lsn, cp_lsn, cp_pos, xxh64 of the bytes before it. */
#define J_SLOT_BYTES 60u

void rn__journal_head_encode(const rn__journal_head_t *h, uint8_t out[J_SLOT_BYTES]) {
  rn__put_u32(out, J_HEAD_MAGIC);
  rn__put_u32(out + 4, 1);
  rn__put_u32(out + 8, h->seq);
  rn__put_u32(out + 12, h->gen);
  rn__put_u64(out + 16, h->size);
  rn__put_u64(out + 24, h->fence_lsn);
  rn__put_u64(out + 32, h->cp_lsn);
  rn__put_u64(out + 40, h->cp_pos);
  rn__put_u32(out + 48, 0);
  rn__put_u64(out + 52, XXH3_64bits(out, 52));
}

rn_err_t rn__journal_head_decode(const uint8_t *p, size_t len, rn__journal_head_t *h) {
  if (len < J_SLOT_BYTES) return RN_EPARTIAL;
  if (rn__get_u32(p) != J_HEAD_MAGIC || rn__get_u32(p + 4) != 1) return RN_EFORMAT;
  if (rn__get_u64(p + 52) != XXH3_64bits(p, 52)) return RN_ECORRUPT;
  h->seq = rn__get_u32(p + 8);
  h->gen = rn__get_u32(p + 12);
  h->size = rn__get_u64(p + 16);
  h->fence_lsn = rn__get_u64(p + 24);
  h->cp_lsn = rn__get_u64(p + 32);
  h->cp_pos = rn__get_u64(p + 40);
  if (h->size < J_MIN_SIZE || h->cp_pos < J_DATA_START || h->cp_pos >= h->size) return RN_EFORMAT;
  return 0;
}

/* Record header: magic, kind, gen, payload_len, lsn, log_id, seg_base,
 * file_pos, checksum (xxh64 of the header bytes before it, then payload). */
void rn__journal_rec_encode(const rn__journal_rec_t *r, const uint8_t *payload, uint8_t out[J_HDR_SIZE]) {
  rn__put_u32(out, J_REC_MAGIC);
  rn__put_u32(out + 4, r->kind);
  rn__put_u32(out + 8, r->gen);
  rn__put_u32(out + 12, r->len);
  rn__put_u64(out + 16, r->lsn);
  rn__put_u64(out + 24, r->log_id);
  rn__put_u64(out + 32, r->seg_base);
  rn__put_u64(out + 40, r->file_pos);
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  XXH3_64bits_update(&st, out, 48);
  if (r->len) XXH3_64bits_update(&st, payload, r->len);
  rn__put_u64(out + 48, XXH3_64bits_digest(&st));
}

rn_err_t rn__journal_rec_decode_hdr(const uint8_t *p, size_t len, rn__journal_rec_t *r) {
  if (len < J_HDR_SIZE) return RN_EPARTIAL;
  if (rn__get_u32(p) != J_REC_MAGIC) return RN_EFORMAT;
  r->kind = rn__get_u32(p + 4);
  r->gen = rn__get_u32(p + 8);
  r->len = rn__get_u32(p + 12);
  r->lsn = rn__get_u64(p + 16);
  r->log_id = rn__get_u64(p + 24);
  r->seg_base = rn__get_u64(p + 32);
  r->file_pos = rn__get_u64(p + 40);
  r->sum = rn__get_u64(p + 48);
  if (r->kind != J_KIND_DATA && r->kind != J_KIND_WRAP) return RN_EFORMAT;
  if (r->kind == J_KIND_WRAP && r->len != 0) return RN_EFORMAT;
  return 0;
}

bool rn__journal_rec_check(const uint8_t *hdr, const uint8_t *payload, uint32_t len, uint64_t sum) {
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  XXH3_64bits_update(&st, hdr, 48);
  if (len) XXH3_64bits_update(&st, payload, len);
  return XXH3_64bits_digest(&st) == sum;
}

/* ---- the journal ------------------------------------------------------------------ */

/* A record recovered at open, waiting for its log to claim it. */
typedef struct jrec {
  uint64_t lsn, log_id, seg_base, file_pos, jpos;
  uint32_t len;
} jrec_t;

/* A record submitted by a log, waiting to be placed or to become durable. */
typedef struct jsub {
  rn_journal_t *j;
  rn_log_t *log;
  rn__chunk_t *chunk; /* borrowed from the log until done */
  uint64_t log_id;
  bool direct;        /* made durable by its segment's own fdatasync in the round, not journaled */
  rn_err_t err;       /* direct: that fdatasync's error */
  struct jsub *owner; /* direct: the record of the round carrying its file's fdatasync */
  uint8_t hdr[J_HDR_SIZE];
  struct jsub *next;
} jsub_t;

struct rn_journal {
  rn_io_t *io;
  rn_fs_t *fs;
  rn_file_t *file;
  char *path;
  rn_journal_opts_t opts;
  uint64_t size;
  uint32_t gen;
  uint64_t fence_lsn;
  uint32_t slot_seq;

  /* writer */
  uint64_t head;          /* next position to place at */
  _Atomic uint64_t next_lsn;
  uint64_t placed_total;  /* bytes placed since open, wrap waste included */
  uint64_t tail_total;    /* placed_total at the durable checkpoint */
  uint64_t tail_pos;      /* its position */
  uint64_t tail_lsn;
  jsub_t *queue_head, *queue_tail; /* submitted, not placed */
  jsub_t *round_head, *round_tail; /* placed, in the round in flight */
  bool round_active;
  int round_ops;          /* operations of the round not yet completed (plus a guard) */
  bool round_need_jsync;  /* journal bytes were written: fdatasync them once the writes land */
  rn_err_t round_err;     /* the journal's own write or fdatasync failed */
  uint64_t round_start_ns;
  uint8_t wrap_hdr[J_HDR_SIZE];
  rn_err_t failed;

  /* checkpoint */
  bool cp_active;
  int cp_pending;          /* logs (plus one guard) not yet synced */
  rn_err_t cp_err;
  uint64_t cp_lsn, cp_pos, cp_total;
  int64_t last_cp_ms;
  uint8_t slot_buf[J_SLOT_SIZE];
  bool cp_warned;

  /* attached logs */
  rn_log_t **logs;
  uint32_t nlogs, logs_cap;
  unsigned inflight;

  /* recovered records, by log id, until claimed (mu) */
  pthread_mutex_t mu;
  jrec_t *recs;
  size_t nrecs;
  size_t nclaimed;

  rn_journal_stats_t stats;
};

static void jsay(const rn_journal_t *j, rn_level_t level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void jsay(const rn_journal_t *j, rn_level_t level, const char *fmt, ...) {
  if (j->opts.logger.fn == NULL && level < RN_LVL_WARN) return;
  rn_logger_t dflt = rn_logger_stderr_as("storage");
  va_list ap;
  va_start(ap, fmt);
  rn_vsay(j->opts.logger.fn != NULL ? &j->opts.logger : &dflt, level, fmt, ap);
  va_end(ap);
}

void rn_journal_opts_default(rn_journal_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->size_bytes = 512ull << 20;
  o->checkpoint_ms = 1000;
  o->direct_bytes = 256u << 10;
}

uint64_t rn_journal_max_record(const rn_journal_t *j) { return (j->size - J_DATA_START) / 4 - J_HDR_SIZE; }

rn_err_t rn_journal_failure(const rn_journal_t *j) { return j->failed; }

void rn_journal_stats(const rn_journal_t *j, rn_journal_stats_t *out) {
  *out = j->stats;
  out->used_bytes = j->placed_total - j->tail_total;
  out->size_bytes = j->size;
}

uint64_t rn__journal_next_lsn(rn_journal_t *j) { return atomic_load(&j->next_lsn); }

/* ---- open: create or scan ------------------------------------------------------------- */

static rn_err_t jfail(rn_journal_recovery_t *rec, rn_err_t err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static rn_err_t jfail(rn_journal_recovery_t *rec, rn_err_t err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rec->message, sizeof(rec->message), fmt, ap);
  va_end(ap);
  return err;
}

static rn_err_t write_slot(rn_journal_t *j, rn_file_t *f, const rn__journal_head_t *h) {
  memset(j->slot_buf, 0, sizeof(j->slot_buf));
  rn__journal_head_encode(h, j->slot_buf);
  struct iovec iov = {.iov_base = j->slot_buf, .iov_len = J_SLOT_SIZE};
  return f->fs->pwritev(f, &iov, 1, (uint64_t)(h->seq % 2) * J_SLOT_SIZE);
}

/* Write the whole file (zeros) and its first header, then make it and its
 * directory entry durable. */
static rn_err_t create_file(rn_journal_t *j, rn_journal_recovery_t *rec) {
  rn_fs_t *fs = j->fs;
  char tmp[RN__PATH_MAX];
  snprintf(tmp, sizeof(tmp), "%s.tmp", j->path);
  rn_file_t *f = NULL;
  rn_err_t err = fs->open(fs, tmp, RN_FS_CREATE | RN_FS_TRUNC, &f);
  if (err) return jfail(rec, err, "journal %s: cannot create: %s", tmp, rn_strerror(err));
  size_t zlen = 1u << 20;
  uint8_t *zero = calloc(1, zlen);
  if (!zero) err = RN_ENOMEM;
  for (uint64_t pos = 0; !err && pos < j->size; pos += zlen) {
    struct iovec iov = {.iov_base = zero, .iov_len = (size_t)(j->size - pos < zlen ? j->size - pos : zlen)};
    err = fs->pwritev(f, &iov, 1, pos);
  }
  free(zero);
  rn__journal_head_t h = {.seq = 0, .gen = 1, .size = j->size, .fence_lsn = 1, .cp_lsn = 1, .cp_pos = J_DATA_START};
  if (!err) err = write_slot(j, f, &h);
  if (!err) err = fs->datasync(f);
  fs->close(f);
  if (!err) err = fs->rename(fs, tmp, j->path);
  if (!err) {
    char dir[RN__PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", j->path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    err = fs->sync_dir(fs, slash ? dir : ".");
  }
  if (err) {
    fs->unlink(fs, tmp);
    return jfail(rec, err, "journal %s: cannot preallocate %" PRIu64 " bytes: %s", j->path, j->size, rn_strerror(err));
  }
  rec->created = true;
  return 0;
}

static rn_err_t add_rec(rn_journal_t *j, const jrec_t *r, size_t *cap) {
  if (j->nrecs == *cap) {
    size_t nc = *cap ? *cap * 2 : 1024;
    jrec_t *n = realloc(j->recs, nc * sizeof(*n));
    if (!n) return RN_ENOMEM;
    j->recs = n;
    *cap = nc;
  }
  j->recs[j->nrecs++] = *r;
  return 0;
}

/* Read the newest valid header, then every valid record from its
 * checkpoint on (invariant 5). */
static rn_err_t scan(rn_journal_t *j, rn_journal_recovery_t *rec) {
  rn_fs_t *fs = j->fs;
  uint8_t slots[2 * J_SLOT_SIZE];
  size_t got = 0;
  rn_err_t err = fs->pread(j->file, slots, sizeof(slots), 0, &got);
  if (err) return jfail(rec, err, "journal %s: cannot read its header: %s", j->path, rn_strerror(err));
  rn__journal_head_t h[2];
  bool ok[2];
  for (int i = 0; i < 2; i++)
    ok[i] = got >= (size_t)(i + 1) * J_SLOT_SIZE && rn__journal_head_decode(slots + i * J_SLOT_SIZE, J_SLOT_SIZE, &h[i]) == 0;
  if (!ok[0] && !ok[1])
    return jfail(rec, RN_ECORRUPT, "journal %s: neither header slot is valid; refusing to start without it (acknowledged records may be in it)",
                 j->path);
  const rn__journal_head_t *hd = !ok[1] ? &h[0] : !ok[0] ? &h[1] : (h[1].seq > h[0].seq ? &h[1] : &h[0]);
  uint64_t fsize = 0;
  err = fs->size(j->file, &fsize);
  if (err) return jfail(rec, err, "journal %s: %s", j->path, rn_strerror(err));
  if (hd->size != fsize)
    return jfail(rec, RN_ECORRUPT, "journal %s: header says %" PRIu64 " bytes, the file has %" PRIu64, j->path, hd->size, fsize);
  j->size = hd->size;
  j->gen = hd->gen;
  j->fence_lsn = hd->fence_lsn;
  j->slot_seq = hd->seq;
  j->tail_pos = hd->cp_pos;
  j->tail_lsn = hd->cp_lsn;

  uint64_t pos = hd->cp_pos, expect = hd->cp_lsn, scanned = 0;
  size_t cap = 0, bufcap = 1u << 20;
  uint8_t *buf = malloc(bufcap);
  if (!buf) return RN_ENOMEM;
  for (;;) {
    if (pos + J_HDR_SIZE > j->size) {
      scanned += j->size - pos;
      pos = J_DATA_START;
    }
    if (scanned >= j->size) break; /* a whole lap: cannot happen, but never loop */
    uint8_t hb[J_HDR_SIZE];
    err = fs->pread(j->file, hb, sizeof(hb), pos, &got);
    if (err) break;
    rn__journal_rec_t r;
    if (got < sizeof(hb) || rn__journal_rec_decode_hdr(hb, got, &r)) break;
    if (r.lsn != expect) break;
    if (expect >= j->fence_lsn ? r.gen != j->gen : r.gen >= j->gen) break;
    if (r.kind == J_KIND_WRAP) {
      if (!rn__journal_rec_check(hb, NULL, 0, r.sum)) break;
      scanned += j->size - pos;
      pos = J_DATA_START;
      continue;
    }
    if (pos + J_HDR_SIZE + r.len > j->size) break;
    if (r.len > bufcap) {
      uint8_t *nb = realloc(buf, r.len);
      if (!nb) {
        err = RN_ENOMEM;
        break;
      }
      buf = nb;
      bufcap = r.len;
    }
    err = fs->pread(j->file, buf, r.len, pos + J_HDR_SIZE, &got);
    if (err) break;
    if (got < r.len || !rn__journal_rec_check(hb, buf, r.len, r.sum)) break;
    jrec_t jr = {.lsn = r.lsn, .log_id = r.log_id, .seg_base = r.seg_base, .file_pos = r.file_pos,
                 .jpos = pos + J_HDR_SIZE, .len = r.len};
    err = add_rec(j, &jr, &cap);
    if (err) break;
    rec->records++;
    rec->bytes += r.len;
    expect++;
    pos += J_HDR_SIZE + r.len;
    scanned += J_HDR_SIZE + r.len;
  }
  free(buf);
  if (err) return jfail(rec, err, "journal %s: reading records: %s", j->path, rn_strerror(err));
  j->head = pos;
  atomic_store(&j->next_lsn, expect);
  /* What was placed before the tail is accounted as used from the tail on. */
  uint64_t ring = j->size - J_DATA_START;
  j->placed_total = pos >= j->tail_pos ? pos - j->tail_pos : ring - (j->tail_pos - pos);
  if (pos == j->tail_pos && expect != j->tail_lsn) j->placed_total = ring; /* cannot happen: full */
  j->tail_total = 0;
  return 0;
}

/* Make what the scan saw durable (a kill -9 leaves it in the page cache
 * only), then bump the generation and set the fence (invariant 5). */
static rn_err_t fence(rn_journal_t *j, rn_journal_recovery_t *rec) {
  rn__journal_head_t h = {.seq = j->slot_seq + 1, .gen = j->gen + 1, .size = j->size,
                          .fence_lsn = atomic_load(&j->next_lsn), .cp_lsn = j->tail_lsn, .cp_pos = j->tail_pos};
  rn_err_t err = write_slot(j, j->file, &h);
  if (!err) err = j->fs->datasync(j->file);
  if (err) return jfail(rec, err, "journal %s: cannot write its header: %s", j->path, rn_strerror(err));
  j->slot_seq = h.seq;
  j->gen = h.gen;
  j->fence_lsn = h.fence_lsn;
  return 0;
}

static int cmp_rec(const void *a, const void *b) {
  const jrec_t *x = a, *y = b;
  if (x->log_id != y->log_id) return x->log_id < y->log_id ? -1 : 1;
  return x->lsn < y->lsn ? -1 : x->lsn > y->lsn;
}

rn_err_t rn_journal_open(rn_io_t *io, const char *path, const rn_journal_opts_t *opts, rn_journal_t **out,
                         rn_journal_recovery_t *rec) {
  rn_assert_may_block("rn_journal_open (create or scan the journal)");
  rn_journal_recovery_t local;
  if (!rec) rec = &local;
  memset(rec, 0, sizeof(*rec));
  *out = NULL;
  if (!io || !path || !*path) return RN_EINVAL;
  rn_journal_t *j = calloc(1, sizeof(*j));
  if (!j) return RN_ENOMEM;
  if (opts)
    j->opts = *opts;
  else
    rn_journal_opts_default(&j->opts);
  if (j->opts.checkpoint_ms == 0) j->opts.checkpoint_ms = 1000;
  j->io = io;
  j->fs = rn_io_fs(io);
  j->path = strdup(path);
  pthread_mutex_init(&j->mu, NULL);
  rn_err_t err = j->path ? 0 : RN_ENOMEM;
  j->size = j->opts.size_bytes & ~(uint64_t)4095;
  if (!err && j->size < J_MIN_SIZE) {
    err = jfail(rec, RN_EINVAL, "journal size %" PRIu64 " bytes is below the minimum of %llu MiB", j->opts.size_bytes,
                J_MIN_SIZE >> 20);
  }
  if (!err) {
    err = j->fs->open(j->fs, j->path, 0, &j->file);
    if (err == RN_ENOENT) {
      err = create_file(j, rec);
      if (!err) err = j->fs->open(j->fs, j->path, 0, &j->file);
    }
    if (err && !rec->message[0]) jfail(rec, err, "journal %s: %s", j->path, rn_strerror(err));
  }
  if (!err) err = scan(j, rec);
  if (!err && j->size != (j->opts.size_bytes & ~(uint64_t)4095) && !rec->created)
    jsay(j, RN_LVL_WARN, "journal %s: keeps its size of %" PRIu64 " bytes (configured %" PRIu64 "); delete it after a clean shutdown to resize",
         j->path, j->size, j->opts.size_bytes);
  if (!err) err = fence(j, rec);
  if (err) {
    if (j->file) j->fs->close(j->file);
    free(j->recs);
    free(j->path);
    pthread_mutex_destroy(&j->mu);
    free(j);
    return err;
  }
  if (j->nrecs) qsort(j->recs, j->nrecs, sizeof(*j->recs), cmp_rec);
  rec->gen = j->gen;
  j->last_cp_ms = rn_clock_wall_ms(&j->opts.clock);
  if (rec->records)
    jsay(j, RN_LVL_INFO, "journal %s: %" PRIu64 " record(s), %" PRIu64 " byte(s) to replay", j->path, rec->records, rec->bytes);
  *out = j;
  return 0;
}

/* ---- claiming recovered records (rn_log_open) ---------------------------------------- */

rn_err_t rn__journal_replay(rn_journal_t *j, uint64_t log_id, uint64_t floor_lsn, rn__journal_apply_fn fn, void *arg,
                            uint64_t *applied) {
  *applied = 0;
  pthread_mutex_lock(&j->mu);
  size_t lo = 0, hi = j->nrecs;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (j->recs[mid].log_id < log_id)
      lo = mid + 1;
    else
      hi = mid;
  }
  size_t end = lo;
  while (end < j->nrecs && j->recs[end].log_id == log_id) end++;
  /* mu stays held: the first checkpoint frees the table. Only opens at
   * startup replay anything, so nobody waits long. */
  rn_err_t err = 0;
  uint8_t *buf = NULL;
  size_t cap = 0;
  for (size_t i = lo; i < end && !err; i++) {
    const jrec_t *r = &j->recs[i];
    if (r->lsn < floor_lsn) continue;
    if (r->len > cap) {
      uint8_t *nb = realloc(buf, r->len);
      if (!nb) {
        err = RN_ENOMEM;
        break;
      }
      buf = nb;
      cap = r->len;
    }
    size_t got = 0;
    err = j->fs->pread(j->file, buf, r->len, r->jpos, &got);
    if (!err && got != r->len) err = RN_EIO;
    if (!err) err = fn(arg, r->seg_base, r->file_pos, buf, r->len);
    if (!err) (*applied)++;
  }
  free(buf);
  j->nclaimed += end - lo;
  pthread_mutex_unlock(&j->mu);
  return err;
}

/* ---- attach / detach ------------------------------------------------------------------ */

rn_err_t rn__journal_attach(rn_journal_t *j, rn_log_t *log) {
  if (j->nlogs == j->logs_cap) {
    uint32_t nc = j->logs_cap ? j->logs_cap * 2 : 64;
    rn_log_t **n = realloc(j->logs, nc * sizeof(*n));
    if (!n) return RN_ENOMEM;
    j->logs = n;
    j->logs_cap = nc;
  }
  j->logs[j->nlogs++] = log;
  return 0;
}

void rn__journal_detach(rn_journal_t *j, rn_log_t *log) {
  for (uint32_t i = 0; i < j->nlogs; i++) {
    if (j->logs[i] == log) {
      j->logs[i] = j->logs[--j->nlogs];
      return;
    }
  }
}

/* ---- rounds ------------------------------------------------------------------------------- */

static void kick(rn_journal_t *j);
static void maybe_checkpoint(rn_journal_t *j, bool force);

static void complete_list(rn_journal_t *j, jsub_t *s, rn_err_t err) {
  while (s) {
    jsub_t *n = s->next;
    j->inflight--;
    rn__log_journal_done(s->log, s->chunk, err ? err : s->err, s->direct);
    free(s);
    s = n;
  }
}

static void jfail_all(rn_journal_t *j, rn_err_t err, const char *what) {
  if (!j->failed) {
    j->failed = err;
    jsay(j, RN_LVL_ERROR, "journal %s: %s failed: %s; every log on it refuses appends until a restart recovers", j->path,
         what, rn_strerror(err));
  }
  jsub_t *q = j->queue_head;
  j->queue_head = j->queue_tail = NULL;
  complete_list(j, q, err);
}

static void round_done(rn_journal_t *j) {
  rn_err_t err = j->round_err;
  for (jsub_t *s = j->round_head; s; s = s->next)
    if (s->direct && s->owner && s->owner != s) s->err = s->owner->err; /* owners come first */
  jsub_t *done = j->round_head;
  j->round_head = j->round_tail = NULL;
  j->round_active = false;
  rn_hist_record(&j->stats.round_seconds, rn_hist_latency_bounds, RN_HIST_BUCKETS,
                 (double)(rn_clock_mono_ns(&j->opts.clock) - j->round_start_ns) / 1e9);
  j->stats.rounds++;
  if (err) {
    /* A failed write or fdatasync: the pages may be gone (the failed-
     * fdatasync rule), so nothing in the round is acknowledged, ever. */
    complete_list(j, done, err);
    jfail_all(j, err, "journal fdatasync");
    return;
  }
  complete_list(j, done, 0); /* a direct record whose fdatasync failed gets its own error */
  maybe_checkpoint(j, false);
  kick(j);
}

static void round_sync_cb(void *arg, rn_err_t res);

/* One operation of the round landed: once the journal's writes have, its
 * fdatasync goes; once everything has, the round is done. */
static void round_op_done(rn_journal_t *j) {
  if (--j->round_ops) return;
  if (j->round_need_jsync && !j->round_err) {
    j->round_need_jsync = false;
    rn_err_t err = rn_io_datasync(j->io, j->file, round_sync_cb, j);
    if (!err) {
      j->inflight++;
      j->round_ops++;
      return;
    }
    j->round_err = err;
  }
  round_done(j);
}

static void round_sync_cb(void *arg, rn_err_t res) {
  rn_journal_t *j = arg;
  j->inflight--;
  if (res < 0 && !j->round_err) j->round_err = res;
  round_op_done(j);
}

static void round_write_cb(void *arg, rn_err_t res) {
  rn_journal_t *j = arg;
  j->inflight--;
  if (res < 0 && !j->round_err) j->round_err = res;
  round_op_done(j);
}

/* A direct record's segment fdatasync: its failure fails that log only. */
static void direct_sync_cb(void *arg, rn_err_t res) {
  jsub_t *s = arg;
  s->j->inflight--;
  if (res < 0) s->err = res;
  round_op_done(s->j);
}

/* Place every queued record that fits (invariant 4) and submit the round:
 * one or two writes (two when it wraps), then one fdatasync; in parallel,
 * the fdatasync of each direct record's segment file. */
static void kick(rn_journal_t *j) {
  if (j->round_active || j->failed || !j->queue_head) return;
  uint64_t ring = j->size - J_DATA_START;
  struct iovec iov[2][2 * J_ROUND_MAX_RECS + 1];
  int niov[2] = {0, 0};
  uint64_t start[2] = {j->head, 0};
  int part = 0, nrec = 0;
  uint64_t head = j->head, placed = j->placed_total;
  bool full = false;
  int ndirect = 0;
  while (j->queue_head && nrec < J_ROUND_MAX_RECS) {
    jsub_t *s = j->queue_head;
    if (s->direct) {
      ndirect++;
      goto take;
    }
    uint64_t need = J_HDR_SIZE + s->chunk->len;
    uint64_t waste = head + need > j->size ? j->size - head : 0;
    if (placed - j->tail_total + waste + need >= ring) {
      full = true;
      break;
    }
    if (waste) {
      if (part == 1) break; /* a round wraps at most once */
      if (waste >= J_HDR_SIZE) {
        rn__journal_rec_t w = {.kind = J_KIND_WRAP, .gen = j->gen, .lsn = atomic_load(&j->next_lsn)};
        rn__journal_rec_encode(&w, NULL, j->wrap_hdr);
        iov[0][niov[0]++] = (struct iovec){.iov_base = j->wrap_hdr, .iov_len = J_HDR_SIZE};
      }
      placed += waste;
      head = J_DATA_START;
      part = 1;
      start[1] = head;
    }
    rn__journal_rec_t r = {.kind = J_KIND_DATA, .gen = j->gen, .len = (uint32_t)s->chunk->len,
                           .lsn = atomic_load(&j->next_lsn), .log_id = s->log_id, .seg_base = s->chunk->seg->base,
                           .file_pos = s->chunk->pos};
    rn__journal_rec_encode(&r, s->chunk->buf, s->hdr);
    atomic_store(&j->next_lsn, r.lsn + 1);
    iov[part][niov[part]++] = (struct iovec){.iov_base = s->hdr, .iov_len = J_HDR_SIZE};
    iov[part][niov[part]++] = (struct iovec){.iov_base = s->chunk->buf, .iov_len = s->chunk->len};
    head += need;
    placed += need;
    j->stats.bytes += s->chunk->len;
    j->stats.records++;
    nrec++;
  take:
    j->queue_head = s->next;
    if (!j->queue_head) j->queue_tail = NULL;
    s->next = NULL;
    if (j->round_tail)
      j->round_tail->next = s;
    else
      j->round_head = s;
    j->round_tail = s;
  }
  if (full) {
    j->stats.full_waits++;
    maybe_checkpoint(j, true);
  }
  if (nrec == 0 && ndirect == 0) return;
  j->head = head;
  j->placed_total = placed;
  j->round_active = true;
  j->round_err = 0;
  j->round_need_jsync = nrec > 0;
  j->round_start_ns = rn_clock_mono_ns(&j->opts.clock);
  j->round_ops = 1; /* guard */
  for (int p = 0; p <= part && !j->round_err; p++) {
    if (!niov[p]) continue;
    rn_err_t err = rn_io_write(j->io, j->file, iov[p], niov[p], start[p], round_write_cb, j);
    if (err) {
      j->round_err = err;
      break;
    }
    j->inflight++;
    j->round_ops++;
  }
  /* Every write of the round had landed before it started, so one
   * fdatasync per segment file covers all of that file's direct records;
   * the first of them carries it (owner) and its error goes to all. */
  for (jsub_t *s = j->round_head; s && ndirect; s = s->next) {
    if (!s->direct) continue;
    rn_file_t *f = s->chunk->seg->file;
    s->owner = s;
    for (jsub_t *t = j->round_head; t != s; t = t->next)
      if (t->direct && t->chunk->seg->file == f) {
        s->owner = t->owner;
        break;
      }
    if (s->owner != s) continue;
    rn_err_t err = rn_io_datasync(j->io, f, direct_sync_cb, s);
    if (err) {
      s->err = err;
      continue;
    }
    j->stats.direct_syncs++;
    j->inflight++;
    j->round_ops++;
  }
  round_op_done(j); /* the guard */
}

bool rn__journal_is_direct(const rn_journal_t *j, size_t len, bool dir_synced) {
  return dir_synced && j->opts.direct_bytes && len >= j->opts.direct_bytes;
}

rn_err_t rn__journal_submit(rn_journal_t *j, rn_log_t *log, uint64_t log_id, rn__chunk_t *chunk, bool dir_synced) {
  if (j->failed) return RN_ELOGFAILED;
  bool direct = rn__journal_is_direct(j, chunk->len, dir_synced);
  if (!direct && chunk->len > rn_journal_max_record(j)) return RN_ETOOLARGE;
  jsub_t *s = malloc(sizeof(*s));
  if (!s) return RN_ENOMEM;
  s->j = j;
  s->log = log;
  s->chunk = chunk;
  s->log_id = log_id;
  s->direct = direct;
  s->err = 0;
  s->owner = NULL;
  s->next = NULL;
  if (direct) {
    j->stats.direct_records++;
    j->stats.direct_bytes += chunk->len;
  }
  if (j->queue_tail)
    j->queue_tail->next = s;
  else
    j->queue_head = s;
  j->queue_tail = s;
  j->inflight++;
  kick(j);
  return 0;
}

/* ---- checkpoints ----------------------------------------------------------------------------- */

static void cp_slot_cb(void *arg, rn_err_t res) {
  rn_journal_t *j = arg;
  j->inflight--;
  j->cp_active = false;
  if (res < 0) {
    jfail_all(j, res, "writing a checkpoint");
    return;
  }
  j->slot_seq++;
  j->cp_warned = false;
  j->tail_total = j->cp_total;
  j->tail_pos = j->cp_pos;
  j->tail_lsn = j->cp_lsn;
  j->stats.checkpoints++;
  kick(j);
}

static rn_err_t cp_slot_job(void *arg) {
  rn_journal_t *j = arg;
  rn__journal_head_t h = {.seq = j->slot_seq + 1, .gen = j->gen, .size = j->size, .fence_lsn = j->fence_lsn,
                          .cp_lsn = j->cp_lsn, .cp_pos = j->cp_pos};
  rn_err_t err = write_slot(j, j->file, &h);
  if (!err) err = j->fs->datasync(j->file);
  return err;
}

void rn__journal_cp_done(rn_journal_t *j, rn_err_t err) {
  if (err && !j->cp_err) j->cp_err = err;
  if (--j->cp_pending) return;
  if (j->cp_err) {
    /* A log could not make its segments durable (it is failed now, and its
     * records must stay replayable): the tail stays where it is. */
    if (!j->cp_warned)
      jsay(j, RN_LVL_ERROR, "journal %s: checkpoint failed: %s; the journal keeps its records and fills until a restart recovers the failed log",
           j->path, rn_strerror(j->cp_err));
    j->cp_warned = true;
    j->cp_active = false;
    return;
  }
  pthread_mutex_lock(&j->mu);
  size_t unclaimed = j->nrecs - j->nclaimed;
  if (j->nrecs) {
    free(j->recs);
    j->recs = NULL;
    j->nrecs = j->nclaimed = 0;
  }
  pthread_mutex_unlock(&j->mu);
  if (unclaimed)
    jsay(j, RN_LVL_WARN, "journal %s: %zu recovered record(s) were not claimed by any log (their logs were deleted or not opened) and are dropped",
         j->path, unclaimed);
  /* The header slot is written on a worker; it is a different region of
   * the file than the rounds, which go on meanwhile. */
  rn_err_t serr = rn_io_job(j->io, cp_slot_job, cp_slot_cb, j);
  if (serr) {
    j->cp_active = false;
    jfail_all(j, serr, "submitting a checkpoint");
    return;
  }
  j->inflight++;
}

static void maybe_checkpoint(rn_journal_t *j, bool force) {
  if (j->cp_active || j->failed) return;
  uint64_t ring = j->size - J_DATA_START;
  uint64_t used = j->placed_total - j->tail_total;
  int64_t now = rn_clock_wall_ms(&j->opts.clock);
  bool due = used > ring / 4 || (used > 0 && now - j->last_cp_ms >= (int64_t)j->opts.checkpoint_ms) || (force && used > 0);
  if (!due) return;
  if (j->cp_warned && !force && now - j->last_cp_ms < (int64_t)j->opts.checkpoint_ms) return;
  j->cp_active = true;
  j->cp_err = 0;
  j->last_cp_ms = now;
  /* Everything placed so far had its segment write completed (invariant 1). */
  j->cp_lsn = atomic_load(&j->next_lsn);
  j->cp_pos = j->head;
  j->cp_total = j->placed_total;
  j->cp_pending = 1; /* guard */
  for (uint32_t i = 0; i < j->nlogs; i++) {
    j->cp_pending++; /* before: the log may answer at once */
    int r = rn__log_checkpoint(j->logs[i]);
    if (r != 1) {
      j->cp_pending--;
      if (r < 0 && !j->cp_err) j->cp_err = r;
    }
  }
  rn__journal_cp_done(j, 0);
}

void rn_journal_tick(rn_journal_t *j, int64_t now_ms) {
  (void)now_ms;
  maybe_checkpoint(j, false);
}

/* ---- close ------------------------------------------------------------------------------------- */

rn_err_t rn_journal_close(rn_journal_t *j) {
  if (!j) return 0;
  rn_err_t err = 0;
  if (j->nlogs) {
    jsay(j, RN_LVL_ERROR, "journal %s: closed with %u log(s) still open; they are not checkpointed", j->path, j->nlogs);
    err = RN_EBUSY;
  }
  /* Every log closed synced its segments: one last checkpoint empties the
   * journal so the next open replays nothing. */
  if (!err && !j->failed) {
    while (j->inflight) {
      rn_assert_may_block("rn_journal_close (waits for in-flight I/O)");
      rn_io_wait(j->io, -1);
    }
    if (j->placed_total != j->tail_total) maybe_checkpoint(j, true);
  }
  while (j->inflight) {
    rn_assert_may_block("rn_journal_close (waits for in-flight I/O)");
    rn_io_wait(j->io, -1);
  }
  if (!err) err = j->failed;
  j->fs->close(j->file);
  free(j->recs);
  free(j->logs);
  free(j->path);
  pthread_mutex_destroy(&j->mu);
  free(j);
  return err;
}
