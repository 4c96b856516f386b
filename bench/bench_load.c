/*
 * bench_load.c — the load generator shared by the broker, redis and nats
 * subcommands (see bench_load.h for the design). It owns the producer and
 * consumer threads, the send timeline, the alternating raw/system rounds,
 * the catch-up mode and the result row; backends only make client calls.
 *
 * Invariants: a producer's histogram and counters are written by its one
 * completion thread and read by main only after that producer's flush
 * returned (the slice handshake under mu orders them); consumer counters
 * that main polls are atomics; the rest is read after the threads joined.
 */
#include "bench_load.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

/* Percentiles of the latency curves in the JSON row (the plots use them). */
static const double k_pcts[] = {0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999};
#define NPCTS (sizeof(k_pcts) / sizeof(k_pcts[0]))

/* ---- options ------------------------------------------------------------------ */

enum {
  OPT_SERVER = 1000, OPT_DIR, OPT_PRODUCERS, OPT_CONSUMERS, OPT_SHARDS, OPT_GROUPS, OPT_RECORD_SIZE, OPT_RATE,
  OPT_DURATION, OPT_WARMUP, OPT_ROUNDS, OPT_RAW, OPT_TICK, OPT_INFLIGHT, OPT_BACKLOG, OPT_LABEL, OPT_JSON, OPT_HELP
};

static const struct option k_common[] = {
    {"server", required_argument, 0, OPT_SERVER},     {"dir", required_argument, 0, OPT_DIR},
    {"producers", required_argument, 0, OPT_PRODUCERS}, {"consumers", required_argument, 0, OPT_CONSUMERS},
    {"shards", required_argument, 0, OPT_SHARDS},     {"groups", required_argument, 0, OPT_GROUPS},
    {"record-size", required_argument, 0, OPT_RECORD_SIZE}, {"rate", required_argument, 0, OPT_RATE},
    {"duration", required_argument, 0, OPT_DURATION}, {"warmup", required_argument, 0, OPT_WARMUP},
    {"rounds", required_argument, 0, OPT_ROUNDS},     {"raw-write-size", required_argument, 0, OPT_RAW},
    {"tick-us", required_argument, 0, OPT_TICK},      {"inflight", required_argument, 0, OPT_INFLIGHT},
    {"backlog", required_argument, 0, OPT_BACKLOG},   {"label", required_argument, 0, OPT_LABEL},
    {"json", no_argument, 0, OPT_JSON},               {"help", no_argument, 0, OPT_HELP},
};
#define NCOMMON (sizeof(k_common) / sizeof(k_common[0]))

void bench_load_usage_common(FILE *out) {
  fprintf(out,
          "  --server HOST:PORT   use this running server (default: start one on 127.0.0.1 with\n"
          "                       data under --dir, stop it by PID at the end)\n"
          "  --dir DIR            working directory: server data and the raw-limit file go in a\n"
          "                       fresh subdirectory, removed at the end (default ./data)\n"
          "  --producers N        producer threads, one client each (default 1)\n"
          "  --consumers M        consumer threads per group; the S shards are spread over them\n"
          "                       (default S: one thread per shard; 0: no consumers, no e2e)\n"
          "  --groups G           independent consumer groups, each reading every record (default 1)\n"
          "  --shards S           shards (streams / subjects for the peers) (default 8)\n"
          "  --record-size N      bytes of data per record, >= %d (default 1024)\n"
          "  --rate R             records/s over all producers; 0 = as fast as possible (default 0)\n"
          "  --duration SECS      measured time in all, split over the rounds (default 20)\n"
          "  --warmup SECS        unmeasured time before the first round (default 1)\n"
          "  --rounds N           alternate a raw slice and a system slice N times (default 4)\n"
          "  --raw-write-size N   bytes per pwrite+fdatasync of the raw loop (default 1M)\n"
          "  --tick-us N          fixed rate: a producer wakes at most every N us and sends what is\n"
          "                       due; the wait counts in the latency (default 200; 0 = per record)\n"
          "  --inflight N         peers: unacknowledged records per producer (default 1024)\n"
          "  --backlog SIZE       catch-up read: fill SIZE bytes (K/M/G) with no consumer running,\n"
          "                       then time the consumers reading it all (default 0: off)\n"
          "  --label TEXT         copied into the JSON row (\"label\")\n"
          "  --json               one JSON line instead of the summary\n",
          BENCH_PAYLOAD_HEADER);
}

void bench_load_init(bench_load_t *L, const bench_backend_t *be) {
  memset(L, 0, sizeof(*L));
  L->be = be;
  L->o = (bench_load_opts_t){.dir = "./data", .producers = 1, .shards = 8, .consumers = UINT32_MAX, .groups = 1,
                             .record_size = 1024, .duration_s = 20, .warmup_s = 1, .rounds = 4,
                             .raw_write_size = 0, .tick_us = 200, .inflight = 1024, .label = ""};
  L->note = "";
  L->durability = "";
}

static int common_opt(bench_load_opts_t *o, int c, const char *arg) {
  switch (c) {
  case OPT_SERVER: o->server = arg; break;
  case OPT_DIR: o->dir = arg; break;
  case OPT_PRODUCERS: o->producers = (unsigned)atoi(arg); break;
  case OPT_CONSUMERS: o->consumers = (unsigned)atoi(arg); break;
  case OPT_SHARDS: o->shards = (unsigned)atoi(arg); break;
  case OPT_GROUPS: o->groups = (unsigned)atoi(arg); break;
  case OPT_RECORD_SIZE: o->record_size = (size_t)bench_parse_size(arg); break;
  case OPT_RATE: o->rate = atof(arg); break;
  case OPT_DURATION: o->duration_s = atof(arg); break;
  case OPT_WARMUP: o->warmup_s = atof(arg); break;
  case OPT_ROUNDS: o->rounds = (unsigned)atoi(arg); break;
  case OPT_RAW: o->raw_write_size = (size_t)bench_parse_size(arg); break;
  case OPT_TICK: o->tick_us = (uint32_t)atoi(arg); break;
  case OPT_INFLIGHT: o->inflight = (uint32_t)atoi(arg); break;
  case OPT_BACKLOG:
    o->backlog_bytes = bench_parse_size(arg);
    if (!o->backlog_bytes && strcmp(arg, "0")) return 2;
    break;
  case OPT_LABEL: o->label = arg; break;
  case OPT_JSON: o->json = 1; break;
  default: return 2;
  }
  return 0;
}

int bench_load_parse(bench_load_t *L, int argc, char **argv, const struct option *extra,
                     int (*on_opt)(bench_load_t *, int, const char *), void (*usage)(FILE *)) {
  size_t nextra = 0;
  while (extra && extra[nextra].name) nextra++;
  struct option *lo = calloc(NCOMMON + nextra + 1, sizeof(*lo));
  if (!lo) return 2;
  memcpy(lo, k_common, sizeof(k_common));
  if (nextra) memcpy(lo + NCOMMON, extra, nextra * sizeof(*lo));
  bench_load_opts_t *o = &L->o;
  int c, rc = 0;
  optind = 1;
  while (!rc && (c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    if (c == OPT_HELP) {
      usage(stdout);
      rc = 1;
    } else if (c >= OPT_SERVER && c <= OPT_JSON) {
      if (common_opt(o, c, optarg)) {
        fprintf(stderr, "runnel-bench %s: bad value for --%s\n", L->be->name, lo[c - OPT_SERVER].name);
        rc = 2;
      }
    } else if (c == '?' || !on_opt || (rc = on_opt(L, c, optarg)) != 0) {
      if (c == '?') usage(stderr);
      rc = 2;
    }
  }
  free(lo);
  if (rc) return rc;
  if (optind < argc) {
    fprintf(stderr, "runnel-bench %s: unexpected argument '%s'\n", L->be->name, argv[optind]);
    return 2;
  }
  if (o->consumers == UINT32_MAX) o->consumers = o->shards;
  if (!o->producers || o->producers > 1024 || !o->shards || o->shards > 4096 || o->consumers > o->shards ||
      !o->groups || o->groups > 64 || o->record_size < BENCH_PAYLOAD_HEADER || o->record_size > (1u << 20) ||
      o->rate < 0 || o->duration_s <= 0 || o->warmup_s < 0 || !o->rounds || o->rounds > BENCH_MAX_ROUNDS ||
      !o->inflight) {
    fprintf(stderr, "runnel-bench %s: invalid options (consumers <= shards, record-size in [%d, 1M], "
                    "duration > 0, 1 <= rounds <= %d, 1 <= groups <= 64)\n", L->be->name, BENCH_PAYLOAD_HEADER,
            BENCH_MAX_ROUNDS);
    return 2;
  }
  if (o->backlog_bytes && (!o->consumers || o->rate > 0)) {
    fprintf(stderr, "runnel-bench %s: --backlog needs consumers and max rate\n", L->be->name);
    return 2;
  }
  return 0;
}

/* ---- payload ------------------------------------------------------------------------ */

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get_u32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static uint64_t get_u64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

int64_t bench_payload_time(const uint8_t *data) { return (int64_t)get_u64(data); }
bool bench_payload_measured(const uint8_t *data) { return get_u32(data + 12) & BENCH_FLAG_MEASURED; }

/* ---- reports from backends ------------------------------------------------------------ */

int64_t bench_load_now(const bench_load_t *L) { return bench_now_ns() - L->base_ns; }

void bench_prod_acked(bench_prod_t *pr, int64_t t, bool measured) {
  pr->acked++;
  if (measured) {
    int64_t now = bench_load_now(pr->L);
    pr->acked_measured++;
    hist_add(&pr->pub, now > t ? (uint64_t)(now - t) / 1000 : 0);
  }
}

void bench_prod_failed(bench_prod_t *pr, const char *err_name) {
  if (!pr->failed++) snprintf(pr->fail_name, sizeof(pr->fail_name), "%s", err_name);
}

void bench_prod_error(bench_prod_t *pr, const char *name, const char *fmt, ...) {
  if (pr->err_name[0]) return;
  snprintf(pr->err_name, sizeof(pr->err_name), "%s", name);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pr->err_msg, sizeof(pr->err_msg), fmt, ap);
  va_end(ap);
}

void bench_cons_error(bench_cons_t *cs, const char *name, const char *fmt, ...) {
  if (cs->err_name[0]) return;
  snprintf(cs->err_name, sizeof(cs->err_name), "%s", name);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cs->err_msg, sizeof(cs->err_msg), fmt, ap);
  va_end(ap);
}

void bench_cons_record(bench_cons_t *cs, const uint8_t *data, size_t len) {
  int64_t now = bench_load_now(cs->L);
  atomic_store_explicit(&cs->last_ns, now, memory_order_relaxed);
  atomic_fetch_add_explicit(&cs->consumed, 1, memory_order_release);
  if (len < BENCH_PAYLOAD_HEADER) {
    cs->bad++;
    return;
  }
  int64_t t = bench_payload_time(data);
  if (bench_payload_measured(data) && !cs->L->no_e2e) {
    cs->consumed_measured++;
    hist_add(&cs->e2e, now > t ? (uint64_t)(now - t) / 1000 : 0);
  }
}

/* ---- producer threads ------------------------------------------------------------------ */

/* One slice of sending: until end (ns since base) or slice_records records,
 * at the fixed rate or as fast as possible. Producer thread. */
static void produce_slice(bench_prod_t *pr, int64_t start, int64_t end, uint64_t limit, bool measured) {
  bench_load_t *L = pr->L;
  double per = L->o.rate / L->o.producers;
  double interval = per > 0 ? 1e9 / per : 0;
  /* producers are staggered over one interval so they do not send in lockstep */
  double first = (double)start + interval * pr->idx / L->o.producers;
  for (uint64_t i = 0; !limit || i < limit; i++) {
    int64_t now = bench_load_now(L), t;
    if (now >= end) break;
    if (interval > 0) {
      t = (int64_t)(first + interval * (double)i);
      if (t >= end) break;
      if (t > now) {
        /* one wake-up per tick, not per record (a sleep per record costs more
         * CPU than the broker at high rates); the delay is in the latency */
        int64_t tick = (int64_t)L->o.tick_us * 1000, wake = t;
        if (tick > 0) wake = (t + tick - 1) / tick * tick;
        if (L->be->prod_wait) L->be->prod_wait(pr, L->base_ns + wake);
        else bench_sleep_until_ns(L->base_ns + wake);
      }
    } else {
      t = now;
    }
    uint64_t seq = pr->seq++;
    put_u64(pr->payload, (uint64_t)t);
    put_u32(pr->payload + 8, pr->idx);
    put_u32(pr->payload + 12, measured ? BENCH_FLAG_MEASURED : 0);
    put_u64(pr->payload + 16, seq);
    unsigned k = (unsigned)((seq * 2654435761u + pr->idx) % BENCH_NKEYS);
    int r = L->be->prod_send(pr, k, pr->payload, L->o.record_size, t, measured);
    if (r == BENCH_SEND_FATAL) break;
    if (r == BENCH_SEND_OK) pr->sent++;
  }
}

static void *producer_main(void *arg) {
  bench_prod_t *pr = arg;
  bench_load_t *L = pr->L;
  unsigned seen = 0;
  prctl(PR_SET_TIMERSLACK, 1UL); /* precise wake-ups for the fixed-rate timeline */
  for (;;) {
    pthread_mutex_lock(&L->mu);
    while (L->gen == seen && !L->quit) pthread_cond_wait(&L->cv, &L->mu);
    if (L->quit) {
      pthread_mutex_unlock(&L->mu);
      return NULL;
    }
    seen = L->gen;
    int64_t start = L->slice_start, end = L->slice_end;
    uint64_t limit = L->slice_records;
    bool measured = L->measured;
    pthread_mutex_unlock(&L->mu);

    produce_slice(pr, start, end, limit, measured);
    L->be->prod_flush(pr);
    pthread_mutex_lock(&L->mu);
    L->done++;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
  }
}

/* ---- consumer threads ------------------------------------------------------------------- */

static void *consumer_main(void *arg) {
  bench_cons_t *cs = arg;
  bool idle = false;
  while (!atomic_load(&cs->L->stop_consumers)) {
    int r = cs->L->be->cons_poll(cs, idle);
    if (r == BENCH_POLL_FATAL) break;
    idle = r <= 0;
  }
  return NULL;
}

/* ---- slices ------------------------------------------------------------------------------- */

static uint64_t total_acked(const bench_load_t *L) {
  uint64_t n = 0;
  for (unsigned i = 0; i < L->o.producers; i++) n += L->prods[i].acked;
  return n;
}

static uint64_t total_measured(const bench_load_t *L) {
  uint64_t n = 0;
  for (unsigned i = 0; i < L->o.producers; i++) n += L->prods[i].acked_measured;
  return n;
}

static uint64_t total_consumed(bench_load_t *L) {
  uint64_t n = 0;
  for (unsigned i = 0; i < L->ncons; i++) n += atomic_load_explicit(&L->cons[i].consumed, memory_order_acquire);
  return n;
}

/* Run one system slice of `seconds` (or `records` per producer); returns its
 * length in seconds (start to the last flush returned). Main thread. */
static double system_slice(bench_load_t *L, double seconds, uint64_t records, bool measured) {
  int64_t start = bench_load_now(L) + 2000000; /* 2 ms for the threads to wake */
  pthread_mutex_lock(&L->mu);
  L->slice_start = start;
  L->slice_end = seconds > 0 ? start + (int64_t)(seconds * 1e9) : INT64_MAX;
  L->slice_records = records;
  L->measured = measured;
  L->done = 0;
  L->gen++;
  pthread_cond_broadcast(&L->cv);
  while (L->done < L->o.producers) pthread_cond_wait(&L->cv, &L->mu);
  pthread_mutex_unlock(&L->mu);
  return (double)(bench_load_now(L) - start) / 1e9;
}

/* Wait until every group has read every acknowledged record (at most
 * `timeout_s`; the consumers are other threads: polling is the simplest
 * correct wait). Returns the number still missing. */
static uint64_t wait_consumers(bench_load_t *L, double timeout_s) {
  if (!L->ncons) return 0;
  uint64_t want = total_acked(L) * L->o.groups;
  int64_t end = bench_now_ns() + (int64_t)(timeout_s * 1e9);
  while (bench_now_ns() < end) {
    if (total_consumed(L) >= want) return 0;
    bench_sleep_ms(5);
  }
  uint64_t got = total_consumed(L);
  return got >= want ? 0 : want - got;
}

static void stop_threads(bench_load_t *L, unsigned *nprod, unsigned *ncons) {
  atomic_store(&L->stop_consumers, true);
  pthread_mutex_lock(&L->mu);
  L->quit = true;
  pthread_cond_broadcast(&L->cv);
  pthread_mutex_unlock(&L->mu);
  for (unsigned i = 0; i < *nprod; i++) pthread_join(L->prods[i].th, NULL);
  for (unsigned i = 0; i < *ncons; i++) pthread_join(L->cons[i].th, NULL);
  *nprod = *ncons = 0;
}

/* ---- the run ------------------------------------------------------------------------------- */

static void json_pcts(char *out, size_t cap, const hist_t *h) {
  double v[NPCTS + 1];
  for (size_t i = 0; i < NPCTS; i++) v[i] = (double)hist_quantile(h, k_pcts[i]);
  v[NPCTS] = (double)h->max;
  bench_json_list(out, cap, v, NPCTS + 1, 0);
}

/* JSON string without quotes or control characters (labels, notes, errors). */
static void json_str(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) fputc(*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 ? '\'' : *s, out);
  fputc('"', out);
}

int bench_load_run(bench_load_t *L) {
  bench_load_opts_t *o = &L->o;
  const bench_backend_t *be = L->be;
  const char *who = be->name;
  signal(SIGPIPE, SIG_IGN);
  if (!o->raw_write_size) o->raw_write_size = 1u << 20;
  L->base_ns = bench_now_ns();
  pthread_mutex_init(&L->mu, NULL);
  pthread_cond_init(&L->cv, NULL);
  for (unsigned k = 0; k < BENCH_NKEYS; k++)
    L->keylen[k] = (uint8_t)snprintf(L->keys[k], sizeof(L->keys[k]), "key-%u", k);

  int rc = 1;
  bool set_up = false;
  unsigned nprod = 0, ncons_started = 0, nprod_open = 0, ncons_open = 0;
  double load0 = bench_loadavg1();
  char rawpath[4200];

  /* A fresh working directory: server data, its log, the raw-limit file. */
  mkdir(o->dir, 0755);
  snprintf(L->work, sizeof(L->work), "%s/bench-%s-XXXXXX", o->dir, who);
  if (!mkdtemp(L->work)) {
    fprintf(stderr, "runnel-bench %s: cannot create a directory under %s: %s\n", who, o->dir, strerror(errno));
    return 1;
  }
  snprintf(rawpath, sizeof(rawpath), "%s/raw.dat", L->work);

  set_up = true; /* teardown undoes whatever part of setup happened */
  int sr = be->setup(L);
  if (sr) {
    rc = sr > 1 ? sr : 1;
    goto out;
  }

  /* Consumers: created and positioned at the end before anything is produced. */
  L->ncons = o->consumers * o->groups;
  L->cons = calloc(L->ncons ? L->ncons : 1, sizeof(*L->cons));
  L->prods = calloc(o->producers, sizeof(*L->prods));
  unsigned *shards = calloc(o->shards, sizeof(unsigned));
  if (!L->cons || !L->prods || !shards) {
    free(shards);
    goto out;
  }
  for (unsigned i = 0; i < L->ncons; i++, ncons_open++) {
    bench_cons_t *cs = &L->cons[i];
    cs->L = L;
    cs->group = i / o->consumers;
    cs->idx = i % o->consumers;
    unsigned n = 0;
    for (unsigned s = cs->idx; s < o->shards; s += o->consumers) shards[n++] = s;
    if (be->cons_open(cs, shards, n)) {
      fprintf(stderr, "runnel-bench %s: consumer %u of group %u: %s %s\n", who, cs->idx, cs->group,
              cs->err_name, cs->err_msg);
      ncons_open++;
      free(shards);
      goto out;
    }
  }
  free(shards);
  if (!o->backlog_bytes)
    for (unsigned i = 0; i < L->ncons; i++, ncons_started++)
      if (pthread_create(&L->cons[i].th, NULL, consumer_main, &L->cons[i])) goto out;

  /* Producers: one client each. */
  for (unsigned i = 0; i < o->producers; i++) {
    bench_prod_t *pr = &L->prods[i];
    pr->L = L;
    pr->idx = i;
    pr->payload = malloc(o->record_size);
    if (!pr->payload) goto out;
    for (size_t x = 0; x < o->record_size; x++) pr->payload[x] = (uint8_t)(x * 131 + i * 7 + 17);
    nprod_open++;
    if (be->prod_open(pr)) {
      fprintf(stderr, "runnel-bench %s: producer %u: %s %s\n", who, i, pr->err_name, pr->err_msg);
      goto out;
    }
    if (pthread_create(&pr->th, NULL, producer_main, pr)) goto out;
    nprod++;
  }

  /* Warm-up (unmeasured): connections, stream descriptions, page cache.
   * Not in catch-up mode: the backlog is exactly what the fill wrote. */
  uint64_t missing = 0;
  if (o->warmup_s > 0 && !o->backlog_bytes) {
    system_slice(L, o->warmup_s, 0, false);
    if (!o->backlog_bytes) missing += wait_consumers(L, 60);
  }

  double slice_s = o->duration_s / o->rounds;
  double raw_bytes = 0, raw_secs = 0, el = 0, server_cpu = 0, self_cpu = 0;
  double ratios[BENCH_MAX_ROUNDS], raws[BENCH_MAX_ROUNDS], mbs[BENCH_MAX_ROUNDS];
  uint64_t measured_total = 0;
  double read_s = 0;
  uint64_t read_records = 0;
  unsigned rounds = o->backlog_bytes ? 1 : o->rounds;
  for (unsigned r = 0; r < rounds; r++) {
    double rb = 0, rs = 0;
    if (bench_raw_slice(rawpath, o->raw_write_size, slice_s, &rb, &rs)) {
      fprintf(stderr, "runnel-bench %s: raw loop on %s: %s\n", who, rawpath, strerror(errno));
      goto out;
    }
    raw_bytes += rb;
    raw_secs += rs;
    raws[r] = rb / rs / 1e6;
    uint64_t m0 = total_measured(L);
    double bc0 = L->server_pid ? bench_proc_cpu_s(L->server_pid) : 0, sc0 = bench_self_cpu_s();
    double sel;
    if (o->backlog_bytes) {
      uint64_t per = (o->backlog_bytes / o->record_size + o->producers - 1) / o->producers;
      sel = system_slice(L, 0, per ? per : 1, true);
    } else {
      sel = system_slice(L, slice_s, 0, true);
    }
    double bc1 = L->server_pid ? bench_proc_cpu_s(L->server_pid) : 0, sc1 = bench_self_cpu_s();
    server_cpu += bc1 - bc0;
    self_cpu += sc1 - sc0;
    uint64_t m1 = total_measured(L);
    el += sel;
    mbs[r] = (double)(m1 - m0) * (double)o->record_size / sel / 1e6;
    ratios[r] = raws[r] > 0 ? mbs[r] / raws[r] : 0;
    measured_total += m1 - m0;
    if (!o->backlog_bytes) missing += wait_consumers(L, 60);
  }

  if (o->backlog_bytes) {
    /* Catch-up: every record sent so far is a backlog; read it all. */
    L->no_e2e = true;
    int64_t t0 = bench_load_now(L);
    for (unsigned i = 0; i < L->ncons; i++, ncons_started++)
      if (pthread_create(&L->cons[i].th, NULL, consumer_main, &L->cons[i])) goto out;
    missing += wait_consumers(L, 3600);
    int64_t last = t0;
    for (unsigned i = 0; i < L->ncons; i++) {
      int64_t x = atomic_load(&L->cons[i].last_ns);
      if (x > last) last = x;
    }
    read_s = (double)(last - t0) / 1e9;
    read_records = total_consumed(L);
  }

  stop_threads(L, &nprod, &ncons_started);

  /* Results. */
  hist_t *pub = calloc(1, sizeof(hist_t)), *e2e = calloc(1, sizeof(hist_t));
  if (!pub || !e2e) {
    free(pub);
    free(e2e);
    goto out;
  }
  uint64_t sent = 0, acked = 0, failed = 0, consumed = 0, consumed_m = 0, bad = 0;
  const char *first_err = "", *first_msg = "";
  for (unsigned i = 0; i < o->producers; i++) {
    bench_prod_t *pr = &L->prods[i];
    hist_merge(pub, &pr->pub);
    sent += pr->sent;
    acked += pr->acked;
    failed += pr->failed;
    if (!*first_err && pr->err_name[0]) first_err = pr->err_name, first_msg = pr->err_msg;
    if (!*first_err && pr->fail_name[0]) first_err = pr->fail_name;
  }
  for (unsigned i = 0; i < L->ncons; i++) {
    bench_cons_t *cs = &L->cons[i];
    hist_merge(e2e, &cs->e2e);
    consumed += atomic_load(&cs->consumed);
    consumed_m += cs->consumed_measured;
    bad += cs->bad;
    if (!*first_err && cs->err_name[0]) first_err = cs->err_name, first_msg = cs->err_msg;
  }

  double load1 = bench_loadavg1();
  double mbps = (double)measured_total * (double)o->record_size / el / 1e6;
  double rps = (double)measured_total / el;
  double raw = raw_secs > 0 ? raw_bytes / raw_secs / 1e6 : 0;
  double ratio = raw > 0 ? mbps / raw : 0;
  double rmed = bench_median(ratios, rounds);
  double read_rps = read_s > 0 ? (double)read_records / read_s : 0;
  double read_mbps = read_rps * (double)o->record_size / 1e6;
  char jr[BENCH_MAX_ROUNDS * 16], jraw[BENCH_MAX_ROUNDS * 16], jmb[BENCH_MAX_ROUNDS * 16];
  char jpub[(NPCTS + 1) * 24], je2e[(NPCTS + 1) * 24], jq[(NPCTS + 1) * 24];
  bench_json_list(jr, sizeof(jr), ratios, rounds, 3);
  bench_json_list(jraw, sizeof(jraw), raws, rounds, 1);
  bench_json_list(jmb, sizeof(jmb), mbs, rounds, 1);
  json_pcts(jpub, sizeof(jpub), pub);
  json_pcts(je2e, sizeof(je2e), e2e);
  bench_json_list(jq, sizeof(jq), k_pcts, NPCTS, 4);
  uint64_t q[2][4] = {{hist_quantile(pub, 0.5), hist_quantile(pub, 0.99), hist_quantile(pub, 0.999), pub->max},
                      {hist_quantile(e2e, 0.5), hist_quantile(e2e, 0.99), hist_quantile(e2e, 0.999), e2e->max}};
  const char *server = o->server ? o->server : "own";
  if (o->json) {
    printf("{\"bench\":\"%s\",\"system\":\"%s\",\"label\":", who, L->system);
    json_str(stdout, o->label);
    printf(",\"broker\":\"%s\",\"server_version\":", server);
    json_str(stdout, L->server_version);
    printf(",\"durability\":\"%s\",\"durable\":%s,\"note\":", L->durability, L->durable ? "true" : "false");
    json_str(stdout, L->note);
    printf(",\"producers\":%u,\"consumers\":%u,\"groups\":%u,\"shards\":%u,\"record_size\":%zu,\"rate\":%.0f,"
           "\"duration_s\":%.1f,\"rounds\":%u",
           o->producers, o->consumers, o->groups, o->shards, o->record_size, o->rate, o->duration_s, rounds);
    if (be->json_extra) be->json_extra(L, stdout);
    printf(",\"raw_write_size\":%zu,\"tick_us\":%u,\"backlog_bytes\":%" PRIu64 ","
           "\"records\":%" PRIu64 ",\"seconds\":%.3f,\"mb_per_s\":%.1f,\"records_per_s\":%.0f,"
           "\"raw_mb_per_s\":%.1f,\"ratio_to_raw\":%.3f,\"ratio_median\":%.3f,\"round_ratios\":[%s],"
           "\"round_mb_per_s\":[%s],\"round_raw_mb_per_s\":[%s],"
           "\"pub_p50_us\":%" PRIu64 ",\"pub_p99_us\":%" PRIu64 ",\"pub_p999_us\":%" PRIu64 ",\"pub_max_us\":%" PRIu64
           ",\"e2e_p50_us\":%" PRIu64 ",\"e2e_p99_us\":%" PRIu64 ",\"e2e_p999_us\":%" PRIu64 ",\"e2e_max_us\":%" PRIu64
           ",\"pct_q\":[%s],\"pub_pct_us\":[%s],\"e2e_pct_us\":[%s]"
           ",\"read_records\":%" PRIu64 ",\"read_seconds\":%.3f,\"read_records_per_s\":%.0f,\"read_mb_per_s\":%.1f"
           ",\"e2e_records\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"failed\":%" PRIu64
           ",\"consumed\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"bad\":%" PRIu64 ",\"error\":",
           o->raw_write_size, o->tick_us, o->backlog_bytes, measured_total, el, mbps, rps, raw, ratio, rmed, jr, jmb,
           jraw, q[0][0], q[0][1], q[0][2], q[0][3], q[1][0], q[1][1], q[1][2], q[1][3], jq, jpub, je2e,
           read_records, read_s, read_rps, read_mbps, consumed_m, sent, acked, failed, consumed, missing, bad);
    json_str(stdout, first_err);
    printf(",\"broker_cpu\":%.2f,\"client_cpu\":%.2f,\"loadavg_start\":%.2f,\"loadavg_end\":%.2f}\n",
           L->server_pid && el > 0 ? server_cpu / el : -1, el > 0 ? self_cpu / el : 0, load0, load1);
  } else {
    printf("runnel-bench %s: %s durability, %u shards, %u producer(s), %u consumer thread(s)", who, L->durability,
           o->shards, o->producers, o->consumers);
    if (o->groups > 1) printf(" x %u groups", o->groups);
    printf(", %s %s\n", L->system, o->server ? o->server : L->server_addr);
    if (*L->note) printf("  note       %s\n", L->note);
    if (o->rate > 0)
      printf("  load       fixed rate %.0f records/s of %zu B (latency from the intended send time; %u us tick)\n",
             o->rate, o->record_size, o->tick_us);
    else if (o->backlog_bytes)
      printf("  load       catch-up: a backlog of %" PRIu64 " B in records of %zu B, then read\n", o->backlog_bytes,
             o->record_size);
    else
      printf("  load       max rate, records of %zu B\n", o->record_size);
    if (be->text_extra) be->text_extra(L, stdout);
    printf("  measured   %" PRIu64 " records acknowledged in %.2f s (%u rounds)\n", measured_total, el, rounds);
    printf("  %-10s %.1f MB/s, %.0f records/s (per round: %s MB/s)\n", L->system, mbps, rps, jmb);
    printf("  raw limit  %.1f MB/s (pwrite %zu B + fdatasync each; per round: %s)\n", raw, o->raw_write_size, jraw);
    printf("  ratio      %.3f of the raw limit overall; median of rounds %.3f (rounds: %s)\n", ratio, rmed, jr);
    printf("  publish    p50 %" PRIu64 " us, p99 %" PRIu64 " us, p99.9 %" PRIu64 " us, max %" PRIu64 " us\n", q[0][0],
           q[0][1], q[0][2], q[0][3]);
    if (o->backlog_bytes)
      printf("  catch-up   %" PRIu64 " records read in %.2f s: %.0f records/s, %.1f MB/s\n", read_records, read_s,
             read_rps, read_mbps);
    else
      printf("  end-to-end p50 %" PRIu64 " us, p99 %" PRIu64 " us, p99.9 %" PRIu64 " us, max %" PRIu64
             " us (%" PRIu64 " records)\n", q[1][0], q[1][1], q[1][2], q[1][3], consumed_m);
    printf("  records    sent %" PRIu64 ", acknowledged %" PRIu64 ", failed %" PRIu64 ", consumed %" PRIu64
           ", missing %" PRIu64 "%s%s%s%s\n", sent, acked, failed, consumed, missing, *first_err ? "; first error " : "",
           first_err, *first_msg ? ": " : "", first_msg);
    if (L->server_pid)
      printf("  cpu        %.2f cores (server) + %.2f (bench) during the measured slices\n",
             el > 0 ? server_cpu / el : 0, el > 0 ? self_cpu / el : 0);
    printf("  machine    %ld CPUs, load average %.2f at the start, %.2f at the end\n", sysconf(_SC_NPROCESSORS_ONLN),
           load0, load1);
  }
  fflush(stdout);
  free(pub);
  free(e2e);
  rc = failed || missing || bad ? 1 : 0;

out:
  stop_threads(L, &nprod, &ncons_started);
  for (unsigned i = 0; i < nprod_open; i++) {
    be->prod_close(&L->prods[i]);
    free(L->prods[i].payload);
  }
  for (unsigned i = 0; i < ncons_open; i++) be->cons_close(&L->cons[i]);
  free(L->prods);
  free(L->cons);
  L->prods = NULL;
  L->cons = NULL;
  if (set_up) be->teardown(L, &rc);
  if (rc == 0 || rc == 3) { /* 3: the backend said why it could not run */
    if (bench_rm_rf(L->work)) fprintf(stderr, "runnel-bench %s: could not remove %s\n", who, L->work);
  } else {
    fprintf(stderr, "runnel-bench %s: working directory kept: %s\n", who, L->work);
  }
  pthread_mutex_destroy(&L->mu);
  pthread_cond_destroy(&L->cv);
  return rc;
}
