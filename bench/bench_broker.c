/*
 * bench_broker.c — `runnel-bench broker`: N producers and M consumers on one
 * stream of S shards, through librunnel and a real runneld, compared in the
 * same run with the raw limit of the data directory's file system. The load
 * design (timeline, latency, rounds, results) is bench_load.c's; this file
 * is the runnel backend.
 *
 * What it owns and the rules it keeps:
 *   - By default it starts its own runneld (fork/exec of the built binary,
 *     127.0.0.1:0, --port-file, data in the run's fresh directory) and stops
 *     it by PID at the end (SIGTERM, then SIGKILL after 30 s); with
 *     --broker HOST:PORT it uses that broker instead.
 *   - Each producer is one application thread with its own client (one TCP
 *     connection, one librunnel I/O thread) and rn_producer; the delivery
 *     callback (on the I/O thread) finds the producer, the intended time and
 *     the measured flag in the opaque value.
 *   - Consumers: one rn_consumer per shard, spread round-robin over the M
 *     threads of a group (each thread with its own client), positioned at
 *     LATEST (resolved by a first fetch) before any record is produced.
 *     runnel has no consumer groups yet: --groups G runs G independent sets
 *     of such consumers, each reading every shard (the row says so).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_load.h"
#include "bench_util.h"
#include "runnel/runnel.h"

#ifndef RN_BENCH_RUNNELD
#define RN_BENCH_RUNNELD "runneld"
#endif

int rn_bench_broker(int argc, char **argv);

/* The backend's run state (one per process). */
typedef struct rbroker {
  const char *runneld;
  rn_durability_t durability;
  uint32_t linger_ms;
  uint32_t batch_bytes;
  uint64_t buffer_bytes;
  char stream[64];
  char datadir[4200], logpath[4200];
  rn_client_t *admin;
  bool stream_made;
  uint64_t scan_batches, scan_bytes; /* batches the broker stored */
} rbroker_t;

typedef struct rprod {
  rn_client_t *cl;
  rn_producer_t *p;
} rprod_t;

typedef struct rcons {
  rn_client_t *cl;
  rn_consumer_t **cs;
  size_t n;
} rcons_t;

/* The bench (one per process): the delivery callback finds its producer
 * through the index packed into the opaque value. */
static bench_load_t *g_load;

static void usage(FILE *out) {
  fprintf(out,
          "usage: runnel-bench broker [options]\n"
          "\n"
          "N producers and M consumers on one stream of S shards through librunnel; publish and\n"
          "end-to-end latency, throughput, and the raw pwrite+fdatasync limit of the same file\n"
          "system measured in alternating rounds of the same run.\n"
          "\n"
          "  --broker HOST:PORT   use this broker (same as --server; default: start runneld on\n"
          "                       127.0.0.1:0 with data under --dir, stop it at the end)\n"
          "  --runneld PATH       runneld binary to start (default: the one built with this\n"
          "                       bench, or $RUNNELD)\n"
          "  --durability D       sync | interval | none (default sync)\n"
          "  --linger-ms N        producer linger (default 1)\n"
          "  --batch-bytes N      producer max batch bytes (default 1M; K/M suffixes)\n"
          "  --buffer-bytes N     producer max buffered bytes (default 64M)\n"
          "  (--raw-write-size defaults to --batch-bytes; --inflight does not apply: the producer\n"
          "   is bounded by --buffer-bytes)\n");
  bench_load_usage_common(out);
}

/* ---- the broker process ----------------------------------------------------------- */

/* Start runneld with data in datadir, stderr to logpath, bound ports written
 * to portfile. Waits (polling the port file: startup only) until it listens
 * or exits. Returns 0 or -1 (message printed). */
static int broker_start(bench_load_t *L, rbroker_t *rb, const char *portfile) {
  unlink(portfile);
  const char *argv[] = {rb->runneld,   "--data-dir", rb->datadir, "--listen",    "127.0.0.1:0", "--http",
                        "127.0.0.1:0", "--port-file", portfile,   "--log-level", "warn",        NULL};
  pid_t pid = bench_proc_spawn("runnel-bench broker", argv, rb->logpath);
  if (pid < 0) return -1;
  for (int i = 0; i < 6000; i++) { /* 30 s */
    FILE *f = fopen(portfile, "r");
    if (f) {
      unsigned native = 0, http = 0;
      int ok = fscanf(f, "%u %u", &native, &http) == 2;
      fclose(f);
      if (ok && native) {
        snprintf(L->server_addr, sizeof(L->server_addr), "127.0.0.1:%u", native);
        L->server_pid = pid;
        return 0;
      }
    }
    if (!bench_proc_alive(pid, NULL)) {
      fprintf(stderr, "runnel-bench broker: %s exited during startup; see %s\n", rb->runneld, rb->logpath);
      return -1;
    }
    bench_sleep_ms(5);
  }
  bench_proc_stop(pid, 0);
  fprintf(stderr, "runnel-bench broker: %s did not listen within 30 s; see %s\n", rb->runneld, rb->logpath);
  return -1;
}

/* Batches the broker stored: walk every segment (<20 digits>.log) under the
 * data directory and follow the batch_length fields. */
static int scan_file(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  rbroker_t *rb = g_load->be_state;
  const char *base = path + ftw->base;
  if (flag != FTW_F || strlen(base) != 24 || strcmp(base + 20, ".log") != 0) return 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  uint64_t pos = 0;
  for (;;) {
    uint8_t h[4];
    if (pread(fd, h, 4, (off_t)pos) != 4) break;
    uint32_t len = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    if (len < 88) break; /* end of data (or a preallocated tail) */
    rb->scan_batches++;
    rb->scan_bytes += len;
    pos += len;
  }
  close(fd);
  return 0;
}

static void client_conf(const bench_load_t *L, rn_client_conf_t *cc) {
  rn_client_conf_init(cc);
  cc->broker = L->o.server ? L->o.server : L->server_addr;
}

static int be_setup(bench_load_t *L) {
  rbroker_t *rb = L->be_state;
  char portfile[4200];
  snprintf(rb->datadir, sizeof(rb->datadir), "%s/data", L->work);
  snprintf(portfile, sizeof(portfile), "%s/ports", L->work);
  snprintf(rb->logpath, sizeof(rb->logpath), "%s/runneld.log", L->work);
  snprintf(rb->stream, sizeof(rb->stream), "bench-%d-%lld", (int)getpid(), (long long)time(NULL));
  if (!L->o.server && broker_start(L, rb, portfile)) return -1;
  rn_client_conf_t cc;
  client_conf(L, &cc);
  rn_err_t err = rn_client_new(&cc, &rb->admin);
  if (!err) {
    rn_stream_config_t sc = {.name = rb->stream, .shard_count = L->o.shards, .retention_ms = 0,
                             .retention_bytes = 0, .durability = rb->durability};
    err = rn_stream_create(rb->admin, &sc, NULL);
  }
  if (err) {
    fprintf(stderr, "runnel-bench broker: create stream on %s: %s (%s) %s\n", cc.broker, rn_strerror(err),
            rn_err_name(err), rn_last_error_message());
    return -1;
  }
  rb->stream_made = true;
  return 0;
}

static void be_teardown(bench_load_t *L, int *rc) {
  rbroker_t *rb = L->be_state;
  if (rb->stream_made) {
    rn_err_t derr = rn_stream_delete(rb->admin, rb->stream);
    if (derr) fprintf(stderr, "runnel-bench broker: delete stream %s: %s\n", rb->stream, rn_strerror(derr));
  }
  rn_client_destroy(rb->admin);
  rb->admin = NULL;
  if (L->server_pid) {
    int st = bench_proc_stop(L->server_pid, 30);
    L->server_pid = 0;
    if (st != 0) {
      fprintf(stderr, "runnel-bench broker: runneld exited with status %d; see %s (kept)\n", st, rb->logpath);
      *rc = 1;
    }
  }
}

/* ---- producers ------------------------------------------------------------------------ */

/* opaque: producer index (bits 63..48) | measured (bit 47) | intended ns
 * since base (bits 46..0, ~39 h). */
static void *pack_opaque(unsigned idx, bool measured, int64_t t) {
  uint64_t v = (uint64_t)idx << 48 | (uint64_t)measured << 47 | ((uint64_t)t & ((1ull << 47) - 1));
  return (void *)(uintptr_t)v;
}

/* librunnel's I/O thread of the producer's client. */
static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  (void)shard;
  (void)offset;
  uint64_t v = (uint64_t)(uintptr_t)opaque;
  bench_prod_t *pr = &g_load->prods[v >> 48];
  if (err) {
    bench_prod_failed(pr, rn_err_name(err));
    return;
  }
  bench_prod_acked(pr, (int64_t)(v & ((1ull << 47) - 1)), v >> 47 & 1);
}

static int be_prod_open(bench_prod_t *pr) {
  rbroker_t *rb = pr->L->be_state;
  rprod_t *rp = calloc(1, sizeof(*rp));
  if (!rp) return -1;
  pr->ctx = rp;
  rn_client_conf_t cc;
  client_conf(pr->L, &cc);
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.linger_ms = rb->linger_ms;
  pc.max_batch_bytes = rb->batch_bytes;
  pc.max_buffered_bytes = rb->buffer_bytes;
  rn_err_t err = rn_client_new(&cc, &rp->cl);
  if (!err) err = rn_producer_new(rp->cl, &pc, &rp->p);
  if (err) {
    bench_prod_error(pr, rn_err_name(err), "%s %s", rn_strerror(err), rn_last_error_message());
    return -1;
  }
  return 0;
}

static int be_prod_send(bench_prod_t *pr, unsigned key, const uint8_t *data, size_t len, int64_t t, bool measured) {
  bench_load_t *L = pr->L;
  rbroker_t *rb = L->be_state;
  rprod_t *rp = pr->ctx;
  rn_err_t err = rn_producer_send(rp->p, rb->stream, L->keys[key], L->keylen[key], data, len, on_delivery,
                                  pack_opaque(pr->idx, measured, t));
  if (!err) return BENCH_SEND_OK;
  bench_prod_error(pr, rn_err_name(err), "%s", rn_last_error_message());
  return rn_err_retriable(err) ? BENCH_SEND_RETRY : BENCH_SEND_FATAL;
}

static int be_prod_flush(bench_prod_t *pr) {
  rprod_t *rp = pr->ctx;
  rn_err_t err = rn_producer_flush(rp->p, 300000);
  if (err) bench_prod_error(pr, rn_err_name(err), "flush: %s", rn_last_error_message());
  return err ? -1 : 0;
}

static void be_prod_close(bench_prod_t *pr) {
  rprod_t *rp = pr->ctx;
  if (!rp) return;
  rn_producer_destroy(rp->p);
  rn_client_destroy(rp->cl);
  free(rp);
  pr->ctx = NULL;
}

/* ---- consumers -------------------------------------------------------------------------- */

static int be_cons_open(bench_cons_t *cs, const unsigned *shards, unsigned n) {
  bench_load_t *L = cs->L;
  rbroker_t *rb = L->be_state;
  rcons_t *rc = calloc(1, sizeof(*rc));
  if (!rc) return -1;
  cs->ctx = rc;
  rc->cs = calloc(n ? n : 1, sizeof(*rc->cs));
  rn_client_conf_t cc;
  client_conf(L, &cc);
  rn_err_t err = rc->cs ? rn_client_new(&cc, &rc->cl) : RN_ENOMEM;
  for (unsigned i = 0; !err && i < n; i++) {
    rn_consumer_t *cn;
    err = rn_consumer_new(rc->cl, rb->stream, shards[i], RN_POS_LATEST, 0, &cn);
    if (err) break;
    rc->cs[rc->n++] = cn;
    const rn_record_t *rec;
    uint64_t pos;
    err = rn_consumer_poll(cn, 0, &rec);
    if (err == RN_EAGAIN) err = 0;
    if (!err && !rn_consumer_position(cn, &pos)) err = RN_EINVAL;
  }
  if (err) {
    bench_cons_error(cs, rn_err_name(err), "%s %s", rn_strerror(err), rn_last_error_message());
    return -1;
  }
  return 0;
}

static int be_cons_poll(bench_cons_t *cs, bool idle) {
  rcons_t *rc = cs->ctx;
  int got = 0;
  for (size_t k = 0; k < rc->n; k++) {
    /* one consumer: a long poll; several: drain each without waiting, and
     * wait 1 ms per consumer only after a pass that found nothing */
    uint32_t wait = rc->n == 1 ? 200 : idle ? 1 : 0;
    const rn_record_t *rec;
    rn_err_t err;
    while ((err = rn_consumer_poll(rc->cs[k], wait, &rec)) == 0) {
      bench_cons_record(cs, rec->value, rec->value_len);
      got++;
      wait = 0;
    }
    if (err != RN_EAGAIN) {
      bench_cons_error(cs, rn_err_name(err), "%s", rn_last_error_message());
      if (!rn_err_retriable(err)) return BENCH_POLL_FATAL;
    }
  }
  return got;
}

static void be_cons_close(bench_cons_t *cs) {
  rcons_t *rc = cs->ctx;
  if (!rc) return;
  for (size_t k = 0; k < rc->n; k++) rn_consumer_destroy(rc->cs[k]);
  free(rc->cs);
  rn_client_destroy(rc->cl);
  free(rc);
  cs->ctx = NULL;
}

/* ---- results ------------------------------------------------------------------------------- */

static void scan(bench_load_t *L) {
  rbroker_t *rb = L->be_state;
  if (rb->scan_batches || !L->server_pid) return;
  nftw(rb->datadir, scan_file, 16, FTW_PHYS);
}

static void be_json(bench_load_t *L, FILE *out) {
  rbroker_t *rb = L->be_state;
  scan(L);
  fprintf(out, ",\"linger_ms\":%u,\"batch_bytes\":%u,\"buffer_bytes\":%" PRIu64 ",\"broker_batches\":%" PRIu64
               ",\"mean_batch_bytes\":%.0f",
          rb->linger_ms, rb->batch_bytes, rb->buffer_bytes, rb->scan_batches,
          rb->scan_batches ? (double)rb->scan_bytes / (double)rb->scan_batches : 0);
}

static void be_text(bench_load_t *L, FILE *out) {
  rbroker_t *rb = L->be_state;
  scan(L);
  fprintf(out, "  producer   linger %u ms, batch %u B, buffer %" PRIu64 " B\n", rb->linger_ms, rb->batch_bytes,
          rb->buffer_bytes);
  if (L->server_pid)
    fprintf(out, "  broker     %" PRIu64 " batches stored, mean %.0f B\n", rb->scan_batches,
            rb->scan_batches ? (double)rb->scan_bytes / (double)rb->scan_batches : 0);
}

static const bench_backend_t k_backend = {
    .name = "broker",
    .setup = be_setup,
    .teardown = be_teardown,
    .prod_open = be_prod_open,
    .prod_send = be_prod_send,
    .prod_wait = NULL, /* completions run on librunnel's I/O thread */
    .prod_flush = be_prod_flush,
    .prod_close = be_prod_close,
    .cons_open = be_cons_open,
    .cons_poll = be_cons_poll,
    .cons_close = be_cons_close,
    .json_extra = be_json,
    .text_extra = be_text,
};

/* ---- options ---------------------------------------------------------------------------------- */

enum { OPT_BROKER = 1, OPT_RUNNELD, OPT_DURABILITY, OPT_LINGER, OPT_BATCH, OPT_BUFFER };

static int on_opt(bench_load_t *L, int c, const char *arg) {
  rbroker_t *rb = L->be_state;
  switch (c) {
  case OPT_BROKER: L->o.server = arg; break;
  case OPT_RUNNELD: rb->runneld = arg; break;
  case OPT_DURABILITY:
    if (!strcmp(arg, "sync")) rb->durability = RN_DURABILITY_SYNC;
    else if (!strcmp(arg, "interval")) rb->durability = RN_DURABILITY_INTERVAL;
    else if (!strcmp(arg, "none")) rb->durability = RN_DURABILITY_NONE;
    else {
      fprintf(stderr, "runnel-bench broker: --durability must be sync, interval or none\n");
      return 2;
    }
    break;
  case OPT_LINGER: rb->linger_ms = (uint32_t)atoi(arg); break;
  case OPT_BATCH: rb->batch_bytes = (uint32_t)bench_parse_size(arg); break;
  case OPT_BUFFER: rb->buffer_bytes = bench_parse_size(arg); break;
  default: return 2;
  }
  return 0;
}

int rn_bench_broker(int argc, char **argv) {
  static const struct option lo[] = {
      {"broker", required_argument, 0, OPT_BROKER},         {"runneld", required_argument, 0, OPT_RUNNELD},
      {"durability", required_argument, 0, OPT_DURABILITY}, {"linger-ms", required_argument, 0, OPT_LINGER},
      {"batch-bytes", required_argument, 0, OPT_BATCH},     {"buffer-bytes", required_argument, 0, OPT_BUFFER},
      {0, 0, 0, 0}};
  bench_load_t *L = calloc(1, sizeof(*L));
  rbroker_t *rb = calloc(1, sizeof(*rb));
  if (!L || !rb) {
    free(L);
    free(rb);
    return 1;
  }
  bench_load_init(L, &k_backend);
  L->be_state = rb;
  L->system = "runnel";
  *rb = (rbroker_t){.durability = RN_DURABILITY_SYNC, .linger_ms = 1, .batch_bytes = 1u << 20,
                    .buffer_bytes = 64ull << 20};
  const char *env = getenv("RUNNELD");
  rb->runneld = env && *env ? env : RN_BENCH_RUNNELD;
  int rc = bench_load_parse(L, argc, argv, lo, on_opt, usage);
  if (!rc && (!rb->batch_bytes || !rb->buffer_bytes)) {
    fprintf(stderr, "runnel-bench broker: --batch-bytes and --buffer-bytes must be > 0\n");
    rc = 2;
  }
  if (rc) {
    free(rb);
    free(L);
    return rc == 1 ? 0 : 2;
  }
  if (!L->o.raw_write_size) L->o.raw_write_size = rb->batch_bytes;
  L->durability = rb->durability == RN_DURABILITY_SYNC ? "sync"
                  : rb->durability == RN_DURABILITY_INTERVAL ? "interval" : "none";
  L->durable = rb->durability == RN_DURABILITY_SYNC;
  if (L->o.groups > 1)
    L->note = "no consumer groups in runnel yet: independent consumer sets, each reading every shard";
  snprintf(L->server_version, sizeof(L->server_version), "runneld (this tree)");
  g_load = L;
  rc = bench_load_run(L);
  free(rb);
  free(L);
  return rc;
}
