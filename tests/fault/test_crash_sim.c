/*
 * test_crash_sim.c — the log under the crash simulator (tests/support/
 * crashfs.h): thousands of randomized workloads, each cut by a machine crash
 * at a random file-system operation; unsynced writes are dropped, kept,
 * torn or garbled. After recovery the log must hold exactly a prefix of what
 * was appended — byte-exact, no phantom or corrupt record — and in sync mode
 * that prefix contains every acknowledged record. Some rounds crash again
 * during recovery itself. Some rounds also fill the disk part way through
 * (writes then end short with ENOSPC and the log undoes them) and maybe
 * free it again: a batch reported as failed must never reappear.
 *
 * Replication (docs/storage.md, "Leader epochs and replica appends"): the
 * leader epoch changes at random appends, half the rounds mix in replica
 * appends (one batch or several per call, stored with the offset, epoch
 * and arrival time they carry) and some truncate asynchronously with
 * appends still pending. After recovery every batch must carry the epoch
 * and arrival time it was appended with, and the leader-epoch history must
 * hold: every batch has the epoch of the entry covering its offset, no
 * entry starts at or past the end.
 *
 * Usage: test_crash_sim [iterations] [first-seed]. A failing seed is printed;
 * rerun it alone with `test_crash_sim 1 <seed>`.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crashfs.h"
#include "logtest.h"
#include "testutil.h"

static uint64_t g_iters = 2000;
static uint64_t g_seed0 = 1;
static uint64_t g_enospc; /* appends failed with RN_ENOSPC, over all rounds */
static uint64_t g_replayed;    /* journal records replayed by recoveries */
static uint64_t g_checkpoints; /* journal checkpoints completed */
static uint64_t g_direct;      /* journal-mode writes made durable by their own fdatasync */
static uint64_t g_trusted;     /* bytes recovery did not rescan: index checkpoints covered them */
static uint64_t g_replica;     /* replica appends accepted */
static uint64_t g_epochs;      /* epoch changes appended */
static uint64_t g_truncs;      /* asynchronous truncations completed */
static uint64_t g_repaired;    /* recoveries that rewrote the epoch history */

typedef struct bspec {
  uint64_t tag;
  int n;
  size_t vlen;
  int64_t ts;
  uint32_t epoch;     /* the leader epoch it was stored with */
  int64_t arrival_ms; /* and its arrival time (a replica's is the leader's) */
} bspec_t;

typedef struct world {
  crashfs_t *cfs;
  rn_io_t *io;
  bool use_journal;   /* sync mode through the shared journal (docs/storage.md, "The journal") */
  uint32_t direct_bytes; /* its direct threshold: small here, so direct rounds happen too */
  rn_journal_t *jr;
  rn_log_opts_t opts;
  int64_t now;
  bspec_t *batches; /* in offset order */
  uint64_t *first;  /* first offset of each batch */
  size_t nbatches, cap;
  uint64_t total;      /* records appended (assigned offsets) */
  uint64_t acked_end;  /* every offset below was acknowledged OK */
  uint64_t durable_end;/* interval mode: every offset below was covered by a sync */
  uint64_t rng;
  int retention;
  uint64_t next_tag;   /* tags are never reused, even for reused offsets */
  uint64_t enospc;     /* appends that failed for want of space */
  uint64_t cut;        /* lowest base of those since the last model_follow; UINT64_MAX = none */
  uint32_t epoch;      /* the leader epoch appends use now */
  bool replicas;       /* this round mixes in replica appends */
  bool truncating_rounds; /* this round truncates asynchronously now and then */
  bool truncating;     /* an asynchronous truncation is pending or running */
  uint64_t tcut;       /* a completed one's offset, for model_follow; UINT64_MAX = none */
  uint64_t keep_cap;   /* acknowledged records above this may be gone (a truncation asked for it) */
} world_t;

static void quiet(void *arg, rn_level_t level, const char *msg) {
  (void)arg;
  (void)level;
  (void)msg;
}

static int64_t wclock(void *arg) { return ((world_t *)arg)->now; }

static rn_io_t *new_io(world_t *w) {
  rn_io_opts_t o;
  rn_io_opts_default(&o);
  o.backend = RN_IO_POSIX;
  o.threads = 1 + (unsigned)(w->rng & 1);
  o.fs = crashfs_fs(w->cfs);
  rn_io_t *io = NULL;
  assert_int_equal(rn_io_new(&o, &io), 0);
  return io;
}

typedef struct ackctx {
  world_t *w;
  uint64_t end; /* offset after this batch */
} ackctx_t;

static void on_ack(void *arg, rn_err_t err, uint64_t base) {
  ackctx_t *a = arg;
  if (err == RN_ENOSPC) {
    /* Definitely not stored: the log undid it (and everything after it)
     * before saying so. Any other error leaves the outcome open. */
    a->w->enospc++;
    if (base < a->w->cut) a->w->cut = base;
  }
  if (err == 0) {
    /* Acks arrive in offset order. */
    assert_true(a->end > a->w->acked_end);
    a->w->acked_end = a->end;
  }
  free(a);
}

static void expected_value(const bspec_t *b, int i, uint8_t *out, size_t *len) {
  int pre = snprintf((char *)out, 64, "%" PRIu64 ":%d:", b->tag, i);
  size_t vl = b->vlen > (size_t)pre ? b->vlen : (size_t)pre;
  for (size_t k = (size_t)pre; k < vl; k++) out[k] = (uint8_t)('a' + (b->tag + k) % 26);
  *len = vl;
}

typedef struct checker {
  world_t *w;
  size_t bi; /* batch index of the current offset */
  uint8_t buf[2048];
} checker_t;

static void check_one(void *arg, const rn_record_t *r) {
  checker_t *c = arg;
  world_t *w = c->w;
  if (r->offset >= w->total) {
    fail_msg("phantom record at offset %" PRIu64 " (only %" PRIu64 " appended)", r->offset, w->total);
  }
  while (c->bi + 1 < w->nbatches && w->first[c->bi + 1] <= r->offset) c->bi++;
  const bspec_t *b = &w->batches[c->bi];
  int i = (int)(r->offset - w->first[c->bi]);
  size_t len;
  expected_value(b, i, c->buf, &len);
  assert_int_equal(r->value_len, len);
  assert_memory_equal(r->value, c->buf, len);
  assert_int_equal(r->timestamp, b->ts + i);
}

/* Open (the journal first, in journal mode), returning the error rather
 * than asserting (crash may hit recovery). */
static rn_err_t try_open(world_t *w, rn_log_t **log, rn_log_recovery_t *rec) {
  *log = NULL;
  if (w->use_journal && !w->jr) {
    rn_journal_opts_t jo;
    rn_journal_opts_default(&jo);
    jo.size_bytes = 1280u << 10; /* small: rounds wrap and checkpoint */
    jo.checkpoint_ms = 5;
    jo.direct_bytes = w->direct_bytes;
    jo.clock = w->opts.clock;
    jo.logger.fn = quiet;
    rn_journal_recovery_t jrec;
    rn_err_t err = rn_journal_open(w->io, "/data/journal", &jo, &w->jr, &jrec);
    if (err) {
      snprintf(rec->message, sizeof(rec->message), "journal: %.200s", jrec.message);
      return err;
    }
  }
  w->opts.journal = w->jr;
  w->opts.journal_id = w->use_journal ? 7 : 0;
  return rn_log_open(w->io, "/data/shard", &w->opts, log, rec);
}

/* Close the log (may be NULL) and then the journal; errors are expected
 * when the machine is down. */
static rn_err_t close_all(world_t *w, rn_log_t *log) {
  rn_err_t err = rn_log_close(log);
  if (w->jr) {
    rn_journal_stats_t st;
    rn_journal_stats(w->jr, &st);
    g_checkpoints += st.checkpoints;
    g_direct += st.direct_records;
  }
  rn_err_t jerr = rn_journal_close(w->jr);
  w->jr = NULL;
  return err ? err : jerr;
}

static void tick(world_t *w, rn_log_t *log) {
  rn_log_tick(log, w->now);
  if (w->jr) rn_journal_tick(w->jr, w->now);
}

/* Reopen after a crash and check the prefix property. Returns records kept. */
static uint64_t recover_and_check(world_t *w, uint64_t seed) {
  rn_log_t *log = NULL;
  rn_log_recovery_t rec;
  rn_err_t err = try_open(w, &log, &rec);
  if (err) fail_msg("seed %" PRIu64 ": reopen failed: %s: %s", seed, rn_err_name(err), rec.message);
  g_replayed += rec.journal_replayed;
  g_trusted += rec.bytes_trusted;
  checker_t c = {.w = w};
  uint64_t count = 0;
  err = lt_read_all(log, rn_log_start(log), check_one, &c, &count);
  if (err) fail_msg("seed %" PRIu64 ": read after recovery: %s", seed, rn_err_name(err));
  uint64_t end = rn_log_end(log);
  if (count != end - rn_log_start(log)) fail_msg("seed %" PRIu64 ": count %" PRIu64 " start %" PRIu64 " end %" PRIu64, seed, count, rn_log_start(log), end);
  if (!w->retention && rn_log_start(log) != 0) fail_msg("seed %" PRIu64 ": start %" PRIu64, seed, rn_log_start(log));
  if (end > w->total) fail_msg("seed %" PRIu64 ": %" PRIu64 " records recovered, %" PRIu64 " appended", seed, end, w->total);
  uint64_t must = w->acked_end < w->keep_cap ? w->acked_end : w->keep_cap;
  if (w->opts.durability == RN_DURABILITY_SYNC && end < must)
    fail_msg("seed %" PRIu64 ": lost acknowledged records: kept %" PRIu64 ", acked %" PRIu64, seed, end, w->acked_end);
  if (end < (w->durable_end < w->keep_cap ? w->durable_end : w->keep_cap))
    fail_msg("seed %" PRIu64 ": lost synced records: kept %" PRIu64 ", synced %" PRIu64, seed, end, w->durable_end);
  char msg[256];
  if (rn_log_verify(log, msg, sizeof(msg))) fail_msg("seed %" PRIu64 ": verify: %s", seed, msg);
  if (rec.epochs_repaired) g_repaired++;
  if (!lt_epochs_ok(log, msg, sizeof(msg))) {
    rn_log_epoch_t h[64];
    uint32_t n = rn_log_epochs(log, h, 64);
    fprintf(stderr, "history (%u):", n);
    for (uint32_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %u@%" PRIu64, h[i].epoch, h[i].start_offset);
    fprintf(stderr, "\nrecovery: clean %d scanned %u segs %u rebuilt %u dropped %u replayed %" PRIu64 " trusted %" PRIu64
            " truncated %" PRIu64 " repaired %d; mode %d journal %d start %" PRIu64 " end %" PRIu64 "\n",
            rec.clean, rec.segments_scanned, rec.segments, rec.indexes_rebuilt, rec.segments_dropped, rec.journal_replayed,
            rec.bytes_trusted, rec.bytes_truncated, rec.epochs_repaired, (int)w->opts.durability, w->use_journal,
            rn_log_start(log), end);
    rn_log_seg_info_t si[64];
    uint32_t ns = rn_log_segments(log, si, 64);
    for (uint32_t i = 0; i < ns && i < 64; i++) fprintf(stderr, " seg %" PRIu64 "-%" PRIu64 "%s", si[i].base, si[i].next, si[i].sealed ? "s" : "");
    fprintf(stderr, "\nmodel:");
    for (size_t i = 0; i < w->nbatches; i++) fprintf(stderr, " %" PRIu64 ":%u", w->first[i], w->batches[i].epoch);
    fprintf(stderr, "\n");
    fail_msg("seed %" PRIu64 ": leader epochs: %s", seed, msg);
  }
  {
    /* Each batch as it was stored: its epoch and arrival time. */
    size_t blen;
    uint8_t *bytes = lt_read_bytes(log, rn_log_start(log), &blen);
    size_t at = 0, bi = 0;
    while (at < blen) {
      rn_batch_header_t h;
      assert_int_equal(rn_batch_header_decode(bytes + at, blen - at, &h), 0);
      while (bi + 1 < w->nbatches && w->first[bi + 1] <= h.base_offset) bi++;
      if (w->first[bi] != h.base_offset)
        fail_msg("seed %" PRIu64 ": batch at %" PRIu64 " is not one appended", seed, h.base_offset);
      if (h.leader_epoch != w->batches[bi].epoch || h.arrival_time_ms != w->batches[bi].arrival_ms)
        fail_msg("seed %" PRIu64 ": batch at %" PRIu64 ": epoch %" PRIu32 " arrival %" PRId64 ", appended with %" PRIu32
                 " and %" PRId64,
                 seed, h.base_offset, h.leader_epoch, h.arrival_time_ms, w->batches[bi].epoch, w->batches[bi].arrival_ms);
      at += h.batch_length;
    }
    free(bytes);
  }
  /* The recovered log is writable and the new record is readable. */
  size_t len;
  uint8_t *b = lt_batch(999999, 2, 30, w->now, RN_CODEC_NONE, &len);
  lt_ack_t a = {0};
  uint64_t base;
  uint32_t last = rn_log_last_epoch(log);
  assert_int_equal(rn_log_append(log, b, len, last == RN_LOG_EPOCH_NONE ? 1 : last, lt_ack_cb, &a, &base), 0);
  free(b);
  assert_int_equal(base, end);
  lt_wait(w->io, &a);
  assert_int_equal(a.err, 0);
  assert_int_equal(rn_log_end(log), end + 2);
  assert_int_equal(close_all(w, log), 0);
  return end;
}

static void push_batch(world_t *w, const bspec_t *b, uint64_t first) {
  if (w->nbatches == w->cap) {
    w->cap = w->cap ? w->cap * 2 : 64;
    w->batches = realloc(w->batches, w->cap * sizeof(*w->batches));
    w->first = realloc(w->first, w->cap * sizeof(*w->first));
  }
  w->batches[w->nbatches] = *b;
  w->first[w->nbatches++] = first;
}

/* Appends that failed with RN_ENOSPC were undone (the log's next offset
 * went back to the first of them): they are no longer part of what was
 * appended, and their offsets are used again. */
static void model_follow(world_t *w, rn_log_t *log) {
  if (w->cut == UINT64_MAX && w->tcut == UINT64_MAX) return;
  uint64_t cut = w->cut < w->tcut ? w->cut : w->tcut;
  if (w->cut != UINT64_MAX) assert_true(w->cut <= w->total);
  /* A completed truncation is durable: what is acknowledged after it must
   * survive again. */
  if (w->tcut != UINT64_MAX && !w->truncating) w->keep_cap = UINT64_MAX;
  w->cut = w->tcut = UINT64_MAX;
  if (cut > w->total) cut = w->total; /* a truncation past what undone appends left */
  while (w->nbatches && w->first[w->nbatches - 1] >= cut) w->nbatches--;
  w->total = cut;
  if (w->acked_end > cut) w->acked_end = cut;
  if (w->durable_end > cut) w->durable_end = cut;
  if (!rn_log_failure(log)) assert_int_equal(rn_log_next_offset(log), cut);
}

typedef struct truncctx {
  world_t *w;
  rn_log_t *log;
  uint64_t offset;
} truncctx_t;

/* A failed truncation that left the log healthy changed nothing (it failed
 * before lowering the recovery point, or was cancelled): every acknowledged
 * record must survive again. One that failed the log may have cut part of
 * it: keep_cap stays. */
static void on_trunc(void *arg, rn_err_t err) {
  truncctx_t *t = arg;
  t->w->truncating = false;
  if (err == 0) {
    t->w->tcut = t->offset;
    g_truncs++;
  } else if (!rn_log_failure(t->log)) {
    t->w->keep_cap = UINT64_MAX;
  }
  free(t);
}

/* Append one batch (spec b, its bytes built here) as the leader (producer
 * append at w->epoch) or, in replica rounds, sometimes as a follower
 * storing several batches its leader sent (stamped with their offsets, the
 * epoch and an arrival time of the leader's). Returns the error; the model
 * learns what was accepted. */
static rn_err_t append_some(world_t *w, rn_log_t *log, uint64_t seed, int k, bool allow_lz4) {
  if (rn_test_rand_below(&w->rng, 8) == 0) {
    w->epoch += 1 + (uint32_t)rn_test_rand_below(&w->rng, 2);
    g_epochs++;
  }
  bool replica = w->replicas && rn_test_rand_below(&w->rng, 2);
  int nb = replica ? 1 + (int)rn_test_rand_below(&w->rng, 4) : 1;
  bspec_t specs[4];
  uint8_t *buf = NULL;
  size_t blen = 0;
  uint64_t base = rn_log_next_offset(log), off = base;
  for (int i = 0; i < nb; i++) {
    bspec_t b = {.tag = seed * 100000 + 50000 + w->next_tag++,
                 .n = 1 + (int)rn_test_rand_below(&w->rng, 5),
                 .vlen = (size_t)rn_test_rand_below(&w->rng, 700),
                 .ts = w->now,
                 .epoch = w->epoch,
                 .arrival_ms = replica ? w->now - 12345 - i : w->now};
    /* The leader's epoch may change inside one fetch (w->epoch is never
     * below the log's last epoch). */
    if (replica && i > 0) b.epoch = specs[i - 1].epoch + (rn_test_rand_below(&w->rng, 4) == 0);
    size_t len;
    uint8_t *bytes = lt_batch(b.tag, b.n, b.vlen, b.ts, allow_lz4 && (k & 3) == 3 ? RN_CODEC_LZ4 : RN_CODEC_NONE, &len);
    if (replica) rn_batch_stamp(bytes, off, b.epoch, b.arrival_ms);
    buf = realloc(buf, blen + len);
    memcpy(buf + blen, bytes, len);
    free(bytes);
    blen += len;
    off += (uint64_t)b.n;
    specs[i] = b;
  }
  w->epoch = specs[nb - 1].epoch;
  ackctx_t *a = malloc(sizeof(*a));
  a->w = w;
  rn_err_t err;
  uint32_t stored = 1;
  if (!replica) {
    uint64_t got;
    a->end = base + (uint64_t)specs[0].n;
    err = rn_log_append(log, buf, blen, w->epoch, on_ack, a, &got);
    if (!err) assert_int_equal(got, base);
  } else {
    /* the ack's end must be known before the call: compute for the stored prefix after */
    a->end = UINT64_MAX;
    err = nb == 1 && rn_test_rand_below(&w->rng, 2) ? rn_log_append_replica(log, buf, blen, on_ack, a)
                                                       : rn_log_append_replica_many(log, buf, blen, on_ack, a, &stored);
    if (!err) {
      uint64_t end = base;
      for (uint32_t i = 0; i < stored; i++) end += (uint64_t)specs[i].n;
      a->end = end;
      g_replica++;
    }
  }
  free(buf);
  if (err) {
    free(a);
    return err;
  }
  assert_int_equal(base, w->total);
  for (uint32_t i = 0; i < stored; i++) {
    push_batch(w, &specs[i], w->total);
    w->total += (uint64_t)specs[i].n;
  }
  return 0;
}

static void one_round(uint64_t seed, uint64_t *kept_sum, uint64_t *crashes_in_recovery) {
  world_t w = {0};
  w.cut = UINT64_MAX;
  w.tcut = UINT64_MAX;
  w.keep_cap = UINT64_MAX;
  w.rng = seed * 0x9E3779B97F4A7C15ull + 1;
  w.cfs = crashfs_new(seed);
  w.now = 1700000000000;
  rn_log_opts_default(&w.opts);
  uint64_t r = rn_test_rand(&w.rng);
  w.opts.durability = r % 10 < 6 ? RN_DURABILITY_SYNC : r % 10 < 8 ? RN_DURABILITY_INTERVAL : RN_DURABILITY_NONE;
  /* Half the sync rounds acknowledge through the shared journal. */
  w.use_journal = w.opts.durability == RN_DURABILITY_SYNC && rn_test_rand_below(&w.rng, 2);
  w.direct_bytes = rn_test_rand_below(&w.rng, 2) ? 0 : 600 + (uint32_t)rn_test_rand_below(&w.rng, 3000);
  w.opts.max_batch_bytes = 64u << 10;
  /* Index checkpoints every few KB (or never): recovery trusts their prefix. */
  w.opts.index_checkpoint_bytes = rn_test_rand_below(&w.rng, 3) ? 500 + rn_test_rand_below(&w.rng, 4000) : 0;
  w.opts.interval_ms = 5;
  w.opts.segment_bytes = 4096 + rn_test_rand_below(&w.rng, 12288);
  w.opts.index_interval = 128 + (uint32_t)rn_test_rand_below(&w.rng, 1024);
  if (rn_test_rand_below(&w.rng, 2)) w.opts.segment_ms = 4 + (int64_t)rn_test_rand_below(&w.rng, 20);
  if (rn_test_rand_below(&w.rng, 2)) { w.retention = 1; w.opts.retention_bytes = 6000 + (int64_t)rn_test_rand_below(&w.rng, 30000); }
  w.opts.clock.wall_ms = wclock;
  w.opts.clock.arg = &w;
  w.opts.logger.fn = quiet;
  w.replicas = rn_test_rand_below(&w.rng, 2);
  w.truncating_rounds = rn_test_rand_below(&w.rng, 3) == 0;
  w.io = new_io(&w);

  /* Sometimes start from a cleanly closed log with data in it. */
  rn_log_t *log = NULL;
  rn_log_recovery_t rec;
  int phases = rn_test_rand_below(&w.rng, 3) == 0 ? 2 : 1;
  for (int phase = 0; phase < phases; phase++) {
    assert_int_equal(try_open(&w, &log, &rec), 0);
    if (phase + 1 == phases && rn_test_rand_below(&w.rng, 2)) {
      /* pre-crash workload with a truncate in the middle */
      int pre = 1 + (int)rn_test_rand_below(&w.rng, 60);
      for (int k = 0; k < pre; k++) {
        if (rn_test_rand_below(&w.rng, 10) == 0) w.epoch++;
        bspec_t b = {.tag = seed * 1000 + 500 + w.nbatches, .n = 1 + (int)rn_test_rand_below(&w.rng, 5),
                     .vlen = (size_t)rn_test_rand_below(&w.rng, 700), .ts = w.now, .epoch = w.epoch,
                     .arrival_ms = w.now};
        size_t len;
        uint8_t *bytes = lt_batch(b.tag, b.n, b.vlen, b.ts, RN_CODEC_NONE, &len);
        ackctx_t *a = malloc(sizeof(*a)); a->w = &w; a->end = w.total + (uint64_t)b.n;
        assert_int_equal(rn_log_append(log, bytes, len, w.epoch, on_ack, a, NULL), 0);
        free(bytes);
        push_batch(&w, &b, w.total); w.total += (uint64_t)b.n;
        if (rn_test_rand_below(&w.rng, 4) == 0) { w.now += 3; tick(&w, log); }
      }
      lt_drain(w.io);
      size_t first_ok = 0;
      while (first_ok < w.nbatches && w.first[first_ok] < rn_log_start(log)) first_ok++;
      if (first_ok < w.nbatches) {
        size_t cut = first_ok + rn_test_rand_below(&w.rng, w.nbatches - first_ok);
        uint64_t off = w.first[cut];
        rn_err_t te = rn_log_truncate(log, off);
        if (te) fail_msg("seed %" PRIu64 ": truncate %" PRIu64 ": %s", seed, off, rn_err_name(te));
        w.nbatches = cut; w.total = off;
        if (w.acked_end > off) w.acked_end = off;
        if (w.durable_end > off) w.durable_end = off;
      }
    }
    if (phase + 1 == phases) crashfs_arm(w.cfs, 1 + rn_test_rand_below(&w.rng, 400));
    int nappends = 1 + (int)rn_test_rand_below(&w.rng, 120);
    /* A quarter of the rounds run out of space at a random append, and
     * half of those get it back later. */
    int fill_at = phase + 1 == phases && rn_test_rand_below(&w.rng, 4) == 0 ? (int)rn_test_rand_below(&w.rng, (uint64_t)nappends) : -1;
    int free_at = fill_at >= 0 && rn_test_rand_below(&w.rng, 2) ? fill_at + (int)rn_test_rand_below(&w.rng, 40) : -1;
    for (int k = 0; k < nappends; k++) {
      if (k == fill_at) crashfs_set_space(w.cfs, crashfs_used(w.cfs) + rn_test_rand_below(&w.rng, 6000));
      if (k == free_at) crashfs_set_space(w.cfs, UINT64_MAX);
      model_follow(&w, log);
      if (w.truncating_rounds && !w.truncating && w.nbatches && rn_test_rand_below(&w.rng, 16) == 0 &&
          !rn_log_failure(log)) {
        /* A follower cut back by its leader, appends still in flight: the
         * model cuts once it completes; from now on what it removes may be
         * gone after a crash. */
        size_t first_ok = 0, past = w.nbatches;
        while (first_ok < w.nbatches && w.first[first_ok] < rn_log_start(log)) first_ok++;
        /* Only what the log still has (a failed write being undone may
         * already have taken the model's last batches back). */
        while (past > first_ok && w.first[past - 1] > rn_log_next_offset(log)) past--;
        if (first_ok < past) {
          truncctx_t *t = malloc(sizeof(*t));
          t->w = &w;
          t->log = log;
          t->offset = w.first[first_ok + rn_test_rand_below(&w.rng, past - first_ok)];
          rn_err_t te = rn_log_truncate_async(log, t->offset, on_trunc, t);
          if (te) {
            if (te != RN_ELOGFAILED && te != RN_ECLOSED)
              fail_msg("seed %" PRIu64 ": truncate_async(%" PRIu64 "): %s (start %" PRIu64 ", next %" PRIu64
                       ", model %" PRIu64 ")",
                       seed, t->offset, rn_err_name(te), rn_log_start(log), rn_log_next_offset(log), w.total);
            free(t);
          } else {
            w.truncating = true;
            if (t->offset < w.keep_cap) w.keep_cap = t->offset;
          }
        }
      }
      rn_err_t err = append_some(&w, log, seed, k, true);
      if (err == RN_ENOSPC || err == RN_EMFILE || (err == RN_EBUSY && w.truncating)) {
        /* refused while a failed write is undone, at a roll, or while a
         * truncation waits: retriable */
        assert_int_equal(rn_log_failure(log), 0);
        continue;
      }
      if (err) {
        assert_true(err == RN_ELOGFAILED || rn_log_failure(log) != 0);
        break;
      }
      uint64_t what = rn_test_rand_below(&w.rng, 8);
      if (what == 0) {
        rn_io_wait(w.io, -1);
      } else if (what == 1) {
        w.now += 3;
        tick(&w, log);
      }
    }
    lt_drain(w.io);
    model_follow(&w, log);
    if (w.opts.durability != RN_DURABILITY_SYNC && !rn_log_failure(log) && rn_test_rand_below(&w.rng, 2)) {
      /* Interval mode's timed sync: what it covered must survive. */
      w.now += 10;
      rn_log_tick(log, w.now);
      uint64_t end_before = rn_log_next_offset(log);
      lt_drain(w.io);
      if (!rn_log_failure(log) && w.opts.durability == RN_DURABILITY_INTERVAL) w.durable_end = end_before;
    }
    if (phase + 1 < phases) {
      assert_int_equal(close_all(&w, log), 0);
      w.durable_end = w.total; /* clean close syncs everything */
      if (w.opts.durability == RN_DURABILITY_SYNC) assert_int_equal(w.acked_end, w.total);
    }
  }
  /* Crash now if the armed point was not reached: the close fails at its
   * first operation and the log is freed without a clean marker. */
  model_follow(&w, log);
  if (!crashfs_is_down(w.cfs)) crashfs_arm(w.cfs, 1);
  (void)close_all(&w, log);
  rn_io_destroy(w.io);
  crashfs_crash(w.cfs);
  crashfs_set_space(w.cfs, UINT64_MAX);

  w.io = new_io(&w);
  /* Sometimes crash again in the middle of recovery. */
  if (rn_test_rand_below(&w.rng, 4) == 0) {
    crashfs_arm(w.cfs, 1 + rn_test_rand_below(&w.rng, 12));
    log = NULL;
    (void)try_open(&w, &log, &rec);
    (void)close_all(&w, log);
    rn_io_destroy(w.io);
    if (crashfs_is_down(w.cfs)) (*crashes_in_recovery)++;
    crashfs_crash(w.cfs);
    w.io = new_io(&w);
  }
  *kept_sum += recover_and_check(&w, seed);
  g_enospc += w.enospc;
  rn_io_destroy(w.io);
  crashfs_free(w.cfs);
  free(w.batches);
  free(w.first);
}

static void test_randomized_crashes(void **state) {
  (void)state;
  uint64_t kept = 0, in_recovery = 0;
  for (uint64_t i = 0; i < g_iters; i++) one_round(g_seed0 + i, &kept, &in_recovery);
  printf("crash rounds: %" PRIu64 " (seeds %" PRIu64 "..%" PRIu64 "), records kept in total: %" PRIu64
         ", crashes during recovery: %" PRIu64 ", appends undone after ENOSPC: %" PRIu64
         ", journal records replayed: %" PRIu64 ", journal checkpoints: %" PRIu64 ", direct writes: %" PRIu64 ", bytes trusted from index checkpoints: %" PRIu64
         ", epoch changes: %" PRIu64 ", replica appends: %" PRIu64 ", async truncations: %" PRIu64 ", epoch histories repaired at open: %" PRIu64 "\n",
         g_iters, g_seed0, g_seed0 + g_iters - 1, kept, in_recovery, g_enospc, g_replayed, g_checkpoints, g_direct, g_trusted,
         g_epochs, g_replica, g_truncs, g_repaired);
}

/* A failed fdatasync fails the log: the pending append gets the error, later
 * appends are refused, close reports it, and what was durable survives. */
static void test_failed_fdatasync(void **state) {
  (void)state;
  world_t w = {0};
  w.cfs = crashfs_new(42);
  w.rng = 42;
  rn_log_opts_default(&w.opts);
  w.opts.logger.fn = quiet;
  w.io = new_io(&w);
  rn_log_t *log;
  rn_log_recovery_t rec;
  assert_int_equal(try_open(&w, &log, &rec), 0);
  size_t len;
  uint8_t *b = lt_batch(1, 3, 50, 10, RN_CODEC_NONE, &len);
  lt_ack_t a1 = {0}, a2 = {0};
  assert_int_equal(rn_log_append(log, b, len, 0, lt_ack_cb, &a1, NULL), 0);
  lt_wait(w.io, &a1);
  assert_int_equal(a1.err, 0);
  /* Next: the write succeeds (op 1), the fdatasync fails (op 2). */
  crashfs_arm(w.cfs, 2);
  assert_int_equal(rn_log_append(log, b, len, 0, lt_ack_cb, &a2, NULL), 0);
  lt_wait(w.io, &a2);
  assert_int_equal(a2.err, RN_EIO);
  assert_int_equal(rn_log_failure(log), RN_EIO);
  assert_int_equal(rn_log_append(log, b, len, 0, lt_ack_cb, &a2, NULL), RN_ELOGFAILED);
  assert_int_equal(rn_log_close(log), RN_EIO);
  rn_io_destroy(w.io);
  crashfs_crash(w.cfs);
  w.io = new_io(&w);
  assert_int_equal(try_open(&w, &log, &rec), 0);
  assert_true(rn_log_end(log) >= 3); /* the acknowledged batch */
  assert_int_equal(rn_log_close(log), 0);
  rn_io_destroy(w.io);
  crashfs_free(w.cfs);
  free(b);
}

int main(int argc, char **argv) {
  if (argc > 1) g_iters = strtoull(argv[1], NULL, 10);
  if (argc > 2) g_seed0 = strtoull(argv[2], NULL, 10);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_randomized_crashes),
      cmocka_unit_test(test_failed_fdatasync),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
