/*
 * bench_dedup.c — `runnel-bench dedup`: the cost of a stream's dedup window
 * on produce (docs/dedup.md). One runneld, two streams of the same shape,
 * one plain and one keeping a dedup window on a JSON field; the same
 * workload (JSON events of --record-size bytes, each with a unique
 * event_uuid, plus a --dup-percent share of records repeating an earlier
 * one) is produced to each in alternating rounds of the same run through
 * one librunnel producer per round at max rate, each round timed from the
 * first send to the flush returning (every record acknowledged). Prints
 * records/s of both, their ratio (dedup / plain, overall and the median of
 * the per-round ratios), and with --json exactly one JSON line.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "runnel/runnel.h"

int rn_bench_dedup(int argc, char **argv);

#ifndef RN_BENCH_RUNNELD
#define RN_BENCH_RUNNELD "runneld"
#endif

static void usage(FILE *out) {
  fprintf(out,
          "usage: runnel-bench dedup [options]\n"
          "\n"
          "The same produce workload to a stream without and one with a dedup window\n"
          "(--dedup-field event_uuid), alternating rounds in one run; prints the ratio.\n"
          "\n"
          "  --dir D            working directory (default .): runneld's data in a fresh subdirectory\n"
          "  --runneld PATH     runneld to start (default: the one built with this bench, or $RUNNELD)\n"
          "  --records N        records per stream over all rounds (default 400000)\n"
          "  --rounds N         alternating rounds (default 4)\n"
          "  --record-size N    bytes of each JSON event (default 300)\n"
          "  --shards N         shards of each stream (default 4)\n"
          "  --dup-percent P    share of records repeating an earlier event_uuid (default 10)\n"
          "  --durability D     sync | interval | none (default sync)\n"
          "  --window D-ms      the dedup window in ms (default 3600000)\n"
          "  --json             one JSON line\n");
}

typedef struct acks {
  _Atomic uint64_t ok, failed;
} acks_t;

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  (void)shard;
  (void)offset;
  acks_t *a = opaque;
  if (err) atomic_fetch_add(&a->failed, 1);
  else atomic_fetch_add(&a->ok, 1);
}

/* One round: records [from, to) of the workload to stream. Returns seconds or -1. */
static double round_run(rn_client_t *cl, const char *stream, char **data, size_t *lens, size_t from, size_t to) {
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.linger_ms = 1;
  rn_producer_t *p = NULL;
  if (rn_producer_new(cl, &pc, &p)) return -1;
  acks_t a = {0};
  int64_t t0 = bench_now_ns();
  for (size_t i = from; i < to; i++) {
    char key[24];
    int kl = snprintf(key, sizeof key, "k%zu", i % 4096);
    rn_err_t err = rn_producer_send(p, stream, key, (size_t)kl, data[i], lens[i], on_delivery, &a);
    if (err) {
      fprintf(stderr, "runnel-bench dedup: send: %s\n", rn_strerror(err));
      rn_producer_destroy(p);
      return -1;
    }
  }
  rn_err_t err = rn_producer_flush(p, 600000);
  int64_t t1 = bench_now_ns();
  rn_producer_destroy(p);
  if (err || a.failed || a.ok != to - from) {
    fprintf(stderr, "runnel-bench dedup: %" PRIu64 " failed, flush %s\n", (uint64_t)a.failed, rn_strerror(err));
    return -1;
  }
  return (double)(t1 - t0) / 1e9;
}

int rn_bench_dedup(int argc, char **argv) {
  const char *dir = ".", *runneld = getenv("RUNNELD") ? getenv("RUNNELD") : RN_BENCH_RUNNELD, *dur = "sync";
  size_t nrec = 400000, rsize = 300;
  unsigned rounds = 4, shards = 4, dup_pct = 10;
  int64_t window = 3600000;
  bool json = false;
  static const struct option lo[] = {{"dir", 1, 0, 'd'},        {"runneld", 1, 0, 'R'},   {"records", 1, 0, 'n'},
                                     {"rounds", 1, 0, 'r'},     {"record-size", 1, 0, 's'}, {"shards", 1, 0, 'S'},
                                     {"dup-percent", 1, 0, 'p'}, {"durability", 1, 0, 'D'}, {"window", 1, 0, 'w'},
                                     {"json", 0, 0, 'j'},       {"help", 0, 0, 'h'},      {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 'd': dir = optarg; break;
    case 'R': runneld = optarg; break;
    case 'n': nrec = (size_t)bench_parse_size(optarg); break;
    case 'r': rounds = (unsigned)atoi(optarg); break;
    case 's': rsize = (size_t)bench_parse_size(optarg); break;
    case 'S': shards = (unsigned)atoi(optarg); break;
    case 'p': dup_pct = (unsigned)atoi(optarg); break;
    case 'D': dur = optarg; break;
    case 'w': window = atoll(optarg); break;
    case 'j': json = true; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  rn_durability_t durability;
  if (rounds < 1 || rounds > 64 || shards < 1 || nrec < rounds || rsize < 64 || dup_pct > 90 ||
      rn_durability_parse(dur, &durability)) {
    usage(stderr);
    return 2;
  }
  /* The workload: event i carries uuid i, or (dup) an earlier record's uuid. */
  char **data = calloc(nrec, sizeof(*data));
  size_t *lens = calloc(nrec, sizeof(*lens));
  uint64_t *uuid = calloc(nrec, sizeof(*uuid));
  if (!data || !lens || !uuid) return 1;
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < nrec; i++) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    uuid[i] = (i > 0 && rng % 100 < dup_pct) ? uuid[rng % i] : i + 1;
    data[i] = malloc(rsize + 1);
    int n = snprintf(data[i], rsize + 1,
                     "{\"event_uuid\":\"%08" PRIx64 "-0000-4000-8000-%012" PRIx64 "\",\"event_type\":\"click\","
                     "\"user\":%zu,\"pad\":\"",
                     uuid[i] >> 16, uuid[i], i % 100000);
    size_t at = (size_t)n;
    while (at < rsize - 2) data[i][at++] = 'x';
    memcpy(data[i] + at, "\"}", 2);
    lens[i] = rsize;
  }
  /* runneld */
  char work[4200], datadir[4300], portfile[4300], logpath[4300];
  snprintf(work, sizeof work, "%s/bench-dedup-XXXXXX", dir);
  if (!mkdtemp(work)) {
    perror("runnel-bench dedup: mkdtemp");
    return 1;
  }
  snprintf(datadir, sizeof datadir, "%s/data", work);
  snprintf(portfile, sizeof portfile, "%s/ports", work);
  snprintf(logpath, sizeof logpath, "%s/runneld.log", work);
  const char *av[] = {runneld, "--data-dir", datadir, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                      "--port-file", portfile, "--log-level", "warn", NULL};
  pid_t pid = bench_proc_spawn("runnel-bench dedup", av, logpath);
  if (pid < 0) return 1;
  unsigned port = 0;
  for (int i = 0; i < 6000 && !port; i++) { /* startup only: poll the port file, 30 s */
    FILE *f = fopen(portfile, "r");
    unsigned http = 0;
    if (f) {
      if (fscanf(f, "%u %u", &port, &http) != 2) port = 0;
      fclose(f);
    }
    if (!port) {
      if (!bench_proc_alive(pid, NULL)) break;
      bench_sleep_ms(5);
    }
  }
  if (!port) {
    fprintf(stderr, "runnel-bench dedup: runneld did not start; see %s\n", logpath);
    bench_proc_stop(pid, 5);
    return 1;
  }
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
  rn_client_conf_t cc;
  rn_client_conf_init(&cc);
  cc.broker = addr;
  rn_client_t *cl = NULL;
  int rc = 1;
  if (rn_client_new(&cc, &cl)) goto out;
  rn_stream_config_t plain = {.name = "plain", .shard_count = shards, .durability = durability};
  rn_stream_config_t dd = plain;
  dd.name = "dedup";
  dd.dedup_key = RN_DEDUP_FIELD;
  dd.dedup_field = "event_uuid";
  dd.dedup_window_ms = window;
  if (rn_stream_create(cl, &plain, NULL) || rn_stream_create(cl, &dd, NULL)) {
    fprintf(stderr, "runnel-bench dedup: create: %s\n", rn_last_error_message());
    goto out;
  }
  double tp = 0, td = 0, ratios[64];
  size_t per = nrec / rounds;
  for (unsigned r = 0; r < rounds; r++) {
    size_t from = r * per, to = r + 1 == rounds ? nrec : from + per;
    /* Alternate which goes first, so drift hits both alike. */
    double a, b;
    if (r % 2 == 0) {
      a = round_run(cl, "plain", data, lens, from, to);
      b = round_run(cl, "dedup", data, lens, from, to);
    } else {
      b = round_run(cl, "dedup", data, lens, from, to);
      a = round_run(cl, "plain", data, lens, from, to);
    }
    if (a < 0 || b < 0) goto out;
    tp += a;
    td += b;
    ratios[r] = a / b; /* (records/b) / (records/a) */
  }
  rn_stream_desc_t *d = NULL;
  uint64_t stored_plain = 0, stored_dedup = 0;
  if (!rn_stream_describe(cl, "plain", &d)) {
    for (size_t i = 0; i < d->shard_count; i++) stored_plain += d->shards[i].end_offset;
    rn_stream_desc_free(d);
  }
  if (!rn_stream_describe(cl, "dedup", &d)) {
    for (size_t i = 0; i < d->shard_count; i++) stored_dedup += d->shards[i].end_offset;
    rn_stream_desc_free(d);
  }
  double rp = (double)nrec / tp, rd = (double)nrec / td, med = bench_median(ratios, rounds);
  char rl[1024];
  bench_json_list(rl, sizeof rl, ratios, rounds, 3);
  if (json) {
    printf("{\"bench\":\"dedup\",\"records\":%zu,\"rounds\":%u,\"record_size\":%zu,\"shards\":%u,"
           "\"dup_percent\":%u,\"durability\":\"%s\",\"window_ms\":%lld,\"plain_records_per_s\":%.0f,"
           "\"dedup_records_per_s\":%.0f,\"ratio\":%.3f,\"ratio_median\":%.3f,\"round_ratios\":[%s],"
           "\"stored_plain\":%" PRIu64 ",\"stored_dedup\":%" PRIu64 ",\"loadavg1\":%.2f}\n",
           nrec, rounds, rsize, shards, dup_pct, dur, (long long)window, rp, rd, rd / rp, med, rl, stored_plain,
           stored_dedup, bench_loadavg1());
  } else {
    printf("dedup window cost on produce: %zu records of %zu B, %u shards, %u%% repeats, %s, %u rounds\n", nrec,
           rsize, shards, dup_pct, dur, rounds);
    printf("  plain: %.0f records/s (stored %" PRIu64 ")\n  dedup: %.0f records/s (stored %" PRIu64 ")\n", rp,
           stored_plain, rd, stored_dedup);
    printf("  ratio dedup/plain: %.3f (median of rounds %.3f; rounds %s)\n", rd / rp, med, rl);
  }
  rc = 0;
out:
  rn_client_destroy(cl);
  int st = bench_proc_stop(pid, 30);
  if (st != 0) {
    fprintf(stderr, "runnel-bench dedup: runneld exited with %d; kept %s\n", st, work);
    rc = 1;
  } else if (rc == 0) {
    bench_rm_rf(work);
  }
  for (size_t i = 0; i < nrec; i++) free(data[i]);
  free(data);
  free(lens);
  free(uuid);
  return rc;
}
