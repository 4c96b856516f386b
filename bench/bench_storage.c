/*
 * bench_storage.c — `runnel-bench storage`: append a fixed volume to a log
 * and, in the same run and on the same file system, measure the raw limit:
 * a plain pwrite loop with the same write size and the same fdatasync
 * cadence (sync: one fdatasync per group; interval: one per interval; none:
 * none). The run alternates: --rounds times a raw slice then a log slice of
 * total/rounds bytes each, so drift on a shared machine hits both sides
 * alike; the per-round ratios and their median are reported.
 *
 * Batches are encoded before timing starts (the producer's work is not the
 * log's); the encode rate is reported separately.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "hist.h"
#include "rn_io.h"
#include "rn_log.h"
#include "runnel/batch.h"

int rn_bench_storage(int argc, char **argv);

typedef struct sopts {
  const char *dir;
  rn_durability_t mode;
  size_t record_size;
  size_t group_bytes;
  uint64_t total_bytes;
  rn_io_backend_t backend;
  rn_codec_t codec;
  unsigned inflight;
  uint32_t interval_ms;
  uint64_t segment_bytes;
  unsigned rounds;
  int json;
} sopts_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: runnel-bench storage [options]\n"
          "\n"
          "  --dir DIR            where to write (a fresh subdirectory, removed after; default ./data)\n"
          "  --mode MODE          sync | interval | none (default sync)\n"
          "  --record-size N      bytes of data per record (default 1024)\n"
          "  --group-bytes N      bytes of records per batch (default 1048576)\n"
          "  --total N            bytes to append in all (default 1073741824; K/M/G suffixes)\n"
          "  --backend B          uring | posix | auto (default auto)\n"
          "  --codec C            none | lz4 (default none)\n"
          "  --inflight N         batches appended but not yet acknowledged (default 4)\n"
          "  --interval-ms N      interval mode: fdatasync period (default 1000)\n"
          "  --segment-bytes N    segment roll size (default 1G)\n"
          "  --rounds N           alternate raw and log slices N times (default 4)\n"
          "  --json               one JSON line instead of the summary\n");
}


/* ---- raw limit ------------------------------------------------------------ */

/* Sequential pwrite of `write_size` chunks up to volume bytes, with the
 * mode's fdatasync cadence. Returns MB/s (1e6 bytes), or -1 on error. */
static double raw_limit(const sopts_t *o, const char *dir, size_t write_size, uint64_t volume) {
  char path[4200];
  snprintf(path, sizeof(path), "%s/raw.dat", dir);
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  char *buf = malloc(write_size);
  if (!buf) {
    close(fd);
    return -1;
  }
  for (size_t i = 0; i < write_size; i++) buf[i] = (char)('a' + i % 26);
  double t0 = now_s(), last_sync = t0;
  uint64_t off = 0;
  int err = 0;
  while (off < volume && !err) {
    ssize_t w = pwrite(fd, buf, write_size, (off_t)off);
    if (w != (ssize_t)write_size) {
      err = 1;
      break;
    }
    off += write_size;
    if (o->mode == RN_DURABILITY_SYNC) {
      if (fdatasync(fd)) err = 1;
    } else if (o->mode == RN_DURABILITY_INTERVAL) {
      double t = now_s();
      if ((t - last_sync) * 1000 >= o->interval_ms) {
        if (fdatasync(fd)) err = 1;
        last_sync = t;
      }
    }
  }
  double el = now_s() - t0;
  free(buf);
  close(fd);
  unlink(path);
  return err ? -1 : (double)off / el / 1e6;
}

/* ---- log run ---------------------------------------------------------------- */

typedef struct run {
  rn_io_t *io;
  unsigned outstanding;
  uint64_t acked;
  rn_err_t err;
  hist_t lat;
  uint64_t *sent_us; /* ring by sequence */
  unsigned ring;
} run_t;

typedef struct ack {
  run_t *r;
  uint64_t seq;
} ack_t;

static void on_ack(void *arg, rn_err_t err, uint64_t base) {
  (void)base;
  ack_t *a = arg;
  run_t *r = a->r;
  if (err && !r->err) r->err = err;
  hist_add(&r->lat, now_us() - r->sent_us[a->seq % r->ring]);
  r->outstanding--;
  r->acked++;
}

int rn_bench_storage(int argc, char **argv) {
  sopts_t o = {.dir = "./data", .mode = RN_DURABILITY_SYNC, .record_size = 1024,
               .group_bytes = 1 << 20, .total_bytes = 1ull << 30, .backend = RN_IO_AUTO,
               .codec = RN_CODEC_NONE, .inflight = 4, .interval_ms = 1000,
               .segment_bytes = 1ull << 30, .rounds = 4};
  static const struct option lo[] = {
      {"dir", required_argument, 0, 'd'},         {"mode", required_argument, 0, 'm'},
      {"record-size", required_argument, 0, 'r'}, {"group-bytes", required_argument, 0, 'g'},
      {"total", required_argument, 0, 't'},       {"backend", required_argument, 0, 'b'},
      {"codec", required_argument, 0, 'c'},       {"inflight", required_argument, 0, 'i'},
      {"interval-ms", required_argument, 0, 'I'}, {"segment-bytes", required_argument, 0, 's'},
      {"json", no_argument, 0, 'j'},              {"help", no_argument, 0, 'h'},
      {"rounds", required_argument, 0, 'R'},
      {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 'd': o.dir = optarg; break;
    case 'm':
      if (rn_durability_parse(optarg, &o.mode)) {
        fprintf(stderr, "runnel-bench storage: --mode must be sync, interval or none\n");
        return 2;
      }
      break;
    case 'r': o.record_size = (size_t)bench_parse_size(optarg); break;
    case 'g': o.group_bytes = (size_t)bench_parse_size(optarg); break;
    case 't': o.total_bytes = bench_parse_size(optarg); break;
    case 'b':
      if (!strcmp(optarg, "uring")) o.backend = RN_IO_URING;
      else if (!strcmp(optarg, "posix")) o.backend = RN_IO_POSIX;
      else if (!strcmp(optarg, "auto")) o.backend = RN_IO_AUTO;
      else {
        fprintf(stderr, "runnel-bench storage: --backend must be uring, posix or auto\n");
        return 2;
      }
      break;
    case 'c':
      if (!strcmp(optarg, "none")) o.codec = RN_CODEC_NONE;
      else if (!strcmp(optarg, "lz4")) o.codec = RN_CODEC_LZ4;
      else {
        fprintf(stderr, "runnel-bench storage: --codec must be none or lz4\n");
        return 2;
      }
      break;
    case 'i': o.inflight = (unsigned)atoi(optarg); break;
    case 'I': o.interval_ms = (uint32_t)atoi(optarg); break;
    case 's': o.segment_bytes = bench_parse_size(optarg); break;
    case 'j': o.json = 1; break;
    case 'R': o.rounds = (unsigned)atoi(optarg); break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!o.record_size || o.group_bytes < o.record_size || !o.total_bytes || !o.inflight || !o.rounds || o.rounds > 64 ||
      o.group_bytes > 64u << 20 || !o.segment_bytes) {
    fprintf(stderr, "runnel-bench storage: invalid sizes (record-size <= group-bytes <= 64M, total > 0, inflight > 0)\n");
    return 2;
  }

  /* A fresh working directory. */
  mkdir(o.dir, 0755);
  char work[4096];
  snprintf(work, sizeof(work), "%s/bench-storage-XXXXXX", o.dir);
  if (!mkdtemp(work)) {
    fprintf(stderr, "runnel-bench storage: cannot create a directory under %s: %s\n", o.dir, strerror(errno));
    return 1;
  }

  /* Encode a few distinct batches up front. */
  enum { NB = 8 };
  uint8_t *batches[NB];
  size_t blen[NB];
  uint32_t per_batch = (uint32_t)(o.group_bytes / o.record_size);
  uint8_t *val = malloc(o.record_size);
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  double te0 = now_s();
  for (int k = 0; k < NB; k++) {
    rn_batch_builder_reset(&b);
    for (size_t x = 0; x < o.record_size; x++) val[x] = (uint8_t)("{\"user\":\"u123\",\"event\":\"tap\"}"[(x + (size_t)k) % 30]);
    for (uint32_t i = 0; i < per_batch; i++) {
      memcpy(val, &i, o.record_size < sizeof(i) ? o.record_size : sizeof(i));
      char key[24];
      int kl = snprintf(key, sizeof(key), "user-%u", (unsigned)(i % 1000));
      rn_record_t r = {.timestamp = 1700000000000 + i, .key = (uint8_t *)key, .key_len = (size_t)kl,
                       .value = val, .value_len = o.record_size};
      if (rn_batch_builder_add(&b, &r)) return 1;
    }
    const uint8_t *out;
    if (rn_batch_builder_finish(&b, o.codec, NULL, &out, &blen[k])) return 1;
    batches[k] = malloc(blen[k]);
    memcpy(batches[k], out, blen[k]);
  }
  double encode_rps = (double)per_batch * NB / (now_s() - te0);
  rn_batch_builder_free(&b);
  free(val);
  uint64_t nbatches = (o.total_bytes + o.group_bytes - 1) / o.group_bytes;

  /* The log run. */
  run_t r = {0};
  r.ring = o.inflight + 1;
  r.sent_us = calloc(r.ring, sizeof(uint64_t));
  ack_t *acks = calloc(r.ring, sizeof(ack_t));
  rn_io_opts_t io_opts;
  rn_io_opts_default(&io_opts);
  io_opts.backend = o.backend;
  rn_err_t err = rn_io_new(&io_opts, &r.io);
  if (err) {
    fprintf(stderr, "runnel-bench storage: I/O backend: %s\n", rn_strerror(err));
    return 1;
  }
  rn_log_opts_t lo_opts;
  rn_log_opts_default(&lo_opts);
  lo_opts.durability = o.mode;
  lo_opts.interval_ms = o.interval_ms;
  lo_opts.segment_bytes = o.segment_bytes;
  lo_opts.max_batch_bytes = 80u << 20;
  char logdir[4200];
  snprintf(logdir, sizeof(logdir), "%s/log", work);
  rn_log_t *log;
  rn_log_recovery_t rec;
  err = rn_log_open(r.io, logdir, &lo_opts, &log, &rec);
  if (err) {
    fprintf(stderr, "runnel-bench storage: open: %s\n", rec.message);
    return 1;
  }
  uint64_t bytes = 0, records = 0;
  double el = 0, ratios[64], raws[64];
  double raw_bytes_sum = 0, raw_secs_sum = 0;
  uint64_t seq = 0;
  for (unsigned round = 0; round < o.rounds && !r.err; round++) {
    uint64_t round_end = nbatches * (round + 1) / o.rounds;
    uint64_t round_batches = round_end - seq;
    double raw = raw_limit(&o, work, blen[0], round_batches * blen[0]);
    raws[round] = raw;
    raw_bytes_sum += (double)(round_batches * blen[0]);
    raw_secs_sum += raw > 0 ? (double)(round_batches * blen[0]) / (raw * 1e6) : 0;
    uint64_t rbytes = 0;
    double t0 = now_s();
    while (seq < round_end && !r.err) {
      if (r.outstanding < o.inflight) {
        ack_t *a = &acks[seq % r.ring];
        a->r = &r;
        a->seq = seq;
        r.sent_us[seq % r.ring] = now_us();
        err = rn_log_append(log, batches[seq % NB], blen[seq % NB], 1, on_ack, a, NULL);
        if (err) {
          r.err = err;
          break;
        }
        r.outstanding++;
        rbytes += blen[seq % NB];
        records += per_batch;
        seq++;
        rn_io_poll(r.io);
      } else {
        int64_t wall = (int64_t)(now_s() * 1000);
        int64_t tick = rn_log_next_tick_ms(log, wall);
        rn_io_wait(r.io, tick < 0 ? -1 : (int)tick);
        rn_log_tick(log, (int64_t)(now_s() * 1000));
      }
    }
    while (r.outstanding && !r.err) rn_io_wait(r.io, 100), rn_log_tick(log, (int64_t)(now_s() * 1000));
    double rel = now_s() - t0;
    el += rel;
    bytes += rbytes;
    ratios[round] = raw > 0 ? (double)rbytes / rel / 1e6 / raw : 0;
  }
  rn_err_t cerr = rn_log_close(log);
  rn_io_backend_t be = rn_io_backend(r.io);
  rn_io_destroy(r.io);
  if (r.err || cerr) {
    fprintf(stderr, "runnel-bench storage: append failed: %s\n", rn_strerror(r.err ? r.err : cerr));
    return 1;
  }
  char cmd[4400];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
  if (system(cmd) != 0) fprintf(stderr, "runnel-bench storage: could not remove %s\n", work);

  double mbps = (double)bytes / el / 1e6, rps = (double)records / el;
  double raw = raw_secs_sum > 0 ? raw_bytes_sum / raw_secs_sum / 1e6 : 0;
  double ratio = raw > 0 ? mbps / raw : 0;
  double median = bench_median(ratios, o.rounds);
  char rounds_json[64 * 24], raws_json[64 * 24];
  bench_json_list(rounds_json, sizeof(rounds_json), ratios, o.rounds, 3);
  bench_json_list(raws_json, sizeof(raws_json), raws, o.rounds, 1);
  if (o.json) {
    printf("{\"bench\":\"storage\",\"mode\":\"%s\",\"backend\":\"%s\",\"codec\":\"%s\",\"record_size\":%zu,"
           "\"group_bytes\":%zu,\"batch_bytes\":%zu,\"records_per_batch\":%u,\"inflight\":%u,\"bytes\":%" PRIu64
           ",\"records\":%" PRIu64 ",\"seconds\":%.3f,\"mb_per_s\":%.1f,\"records_per_s\":%.0f,"
           "\"raw_mb_per_s\":%.1f,\"ratio_to_raw\":%.3f,\"ratio_median\":%.3f,\"round_ratios\":[%s],\"round_raw_mb_per_s\":[%s],"
           "\"ack_p50_us\":%" PRIu64 ",\"ack_p99_us\":%" PRIu64 ",\"ack_p999_us\":%" PRIu64 ",\"ack_max_us\":%" PRIu64
           ",\"encode_records_per_s\":%.0f}\n",
           rn_durability_name(o.mode), rn_io_backend_name(be), o.codec == RN_CODEC_LZ4 ? "lz4" : "none",
           o.record_size, o.group_bytes, blen[0], per_batch, o.inflight, bytes, records, el, mbps, rps, raw,
           ratio, median, rounds_json, raws_json, hist_quantile(&r.lat, 0.5), hist_quantile(&r.lat, 0.99),
           hist_quantile(&r.lat, 0.999), r.lat.max, encode_rps);
  } else {
    printf("runnel-bench storage: %s durability, %s backend, codec %s\n", rn_durability_name(o.mode),
           rn_io_backend_name(be), o.codec == RN_CODEC_LZ4 ? "lz4" : "none");
    printf("  appended   %" PRIu64 " records of %zu B in %" PRIu64 " batches of %zu B (%u in flight) in %.2f s\n",
           records, o.record_size, nbatches, blen[0], o.inflight, el);
    printf("  log        %.1f MB/s, %.0f records/s\n", mbps, rps);
    printf("  raw limit  %.1f MB/s (pwrite %zu B%s; per round: %s)\n", raw, blen[0],
           o.mode == RN_DURABILITY_SYNC ? " + fdatasync each" : o.mode == RN_DURABILITY_INTERVAL ? ", fdatasync per interval" : ", no fdatasync",
           raws_json);
    printf("  ratio      %.3f of the raw limit overall; median of rounds %.3f (rounds: %s)\n", ratio, median, rounds_json);
    printf("  ack        p50 %" PRIu64 " us, p99 %" PRIu64 " us, p99.9 %" PRIu64 " us, max %" PRIu64 " us\n",
           hist_quantile(&r.lat, 0.5), hist_quantile(&r.lat, 0.99), hist_quantile(&r.lat, 0.999), r.lat.max);
    printf("  encode     %.0f records/s (producer side, not included above)\n", encode_rps);
  }
  for (int k = 0; k < NB; k++) free(batches[k]);
  free(acks);
  free(r.sent_us);
  return 0;
}
