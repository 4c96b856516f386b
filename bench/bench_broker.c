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
 *     --groups G runs G independent sets of such consumers, each reading
 *     every shard.
 *   - With --use-groups the M consumer threads of a group are instead the
 *     members of one runnel consumer group ("bench-<g>", created at LATEST
 *     by the first join, session --session-timeout-ms): the broker assigns
 *     the shards, members checkpoint every second. --kill-member-at T
 *     abandons member 0 of group 0 T seconds into the run (like kill -9: no
 *     commit, no leave) and measures the rebalance: from the moment its
 *     session runs out until the survivors hold all shards, and until the
 *     first record of one of its shards reaches a survivor.
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
  rn_group_consumer_t *gc; /* --use-groups */
  bool dead;               /* abandoned by --kill-member-at */
  _Atomic uint32_t held;   /* shards the member holds (after its last poll) */
} rcons_t;

/* --use-groups / --kill-member-at state (one per process). */
typedef struct rgroups {
  bool on;
  uint32_t session_ms;
  double kill_at_s;          /* 0 = no kill */
  _Atomic int64_t kill_ns;   /* when member 0 of group 0 was abandoned (ns since base), 0 = not yet */
  _Atomic int64_t contact_ns; /* its last heartbeat/commit the broker answered (ns since base) */
  _Atomic uint32_t victim_mask[8]; /* its shards (bit per shard, up to 256) */
  _Atomic int64_t assigned_ns; /* survivors hold every shard again */
  _Atomic int64_t resumed_ns;  /* first record of a victim shard at a survivor */
} rgroups_t;

static rgroups_t g_grp = {.session_ms = 3000};

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
          "  --use-groups         the M consumers of each --groups set are the members of one consumer\n"
          "                       group (broker-side assignment and checkpoints) instead of fixed\n"
          "                       per-shard readers\n"
          "  --session-timeout-ms N  members' session timeout (default 3000)\n"
          "  --kill-member-at T   abandon member 0 of group 0 T s into the first measured slice (like\n"
          "                       kill -9) and report how long the rebalance took once its session\n"
          "                       ran out\n"
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
  /* bench/restart.sh fills a broker and keeps what it wrote. */
  const char *keep = getenv("RUNNEL_BENCH_KEEP_STREAM");
  if (rb->stream_made && !(keep && strcmp(keep, "1") == 0)) {
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

static int group_open(bench_cons_t *cs, rcons_t *rc) {
  bench_load_t *L = cs->L;
  rbroker_t *rb = L->be_state;
  rn_client_conf_t cc;
  client_conf(L, &cc);
  rn_err_t err = rn_client_new(&cc, &rc->cl);
  if (!err) {
    rn_group_conf_t gconf;
    rn_group_conf_init(&gconf);
    gconf.session_timeout_ms = g_grp.session_ms;
    gconf.start_kind = RN_POS_LATEST;
    gconf.client_id = "bench";
    char name[32];
    snprintf(name, sizeof(name), "bench-%u", cs->group);
    err = rn_group_consumer_new(rc->cl, rb->stream, name, &gconf, &rc->gc);
  }
  if (err) {
    bench_cons_error(cs, rn_err_name(err), "%s %s", rn_strerror(err), rn_last_error_message());
    return -1;
  }
  return 0;
}

static bool victim_shard(uint32_t s) {
  return s < 256 && (atomic_load(&g_grp.victim_mask[s / 32]) >> (s % 32)) & 1u;
}

/* Member 0 of group 0 dies at --kill-member-at; the others watch the
 * rebalance. */
static int group_poll(bench_cons_t *cs, rcons_t *rc, bool idle) {
  bench_load_t *L = cs->L;
  bool victim = cs->group == 0 && cs->idx == 0 && g_grp.kill_at_s > 0;
  if (rc->dead) {
    bench_sleep_ms(5);
    return BENCH_POLL_EMPTY;
  }
  bool due = false;
  if (victim) { /* T seconds into the first measured slice */
    pthread_mutex_lock(&L->mu);
    due = L->measured && bench_load_now(L) - L->slice_start >= (int64_t)(g_grp.kill_at_s * 1e9);
    pthread_mutex_unlock(&L->mu);
  }
  if (due) {
    uint32_t held[256];
    size_t n = rn_group_shards(rc->gc, held, 256);
    for (size_t i = 0; i < n && i < 256; i++) atomic_fetch_or(&g_grp.victim_mask[held[i] / 32], 1u << (held[i] % 32));
    /* The broker frees the shards session_ms after it last heard from the
     * member: that moment (on the bench's clock) is what the rebalance is
     * measured from. */
    int64_t contact_ns = rn_group_last_contact_ms(rc->gc) * 1000000 - L->base_ns;
    rn_group_consumer_abandon(rc->gc);
    rc->gc = NULL;
    rc->dead = true;
    atomic_store(&g_grp.contact_ns, contact_ns);
    atomic_store(&g_grp.kill_ns, bench_load_now(L));
    return BENCH_POLL_EMPTY;
  }
  int got = 0;
  uint32_t wait = idle ? 200 : 0;
  const rn_record_t *rec;
  uint32_t shard;
  rn_err_t err;
  while ((err = rn_group_poll(rc->gc, wait, &rec, &shard)) == 0) {
    bench_cons_record(cs, rec->value, rec->value_len);
    if (atomic_load(&g_grp.kill_ns) && !atomic_load(&g_grp.resumed_ns) && victim_shard(shard)) {
      int64_t zero = 0;
      atomic_compare_exchange_strong(&g_grp.resumed_ns, &zero, bench_load_now(L));
    }
    if (++got >= 4096) break;
    wait = 0;
  }
  if (cs->group == 0 && atomic_load(&g_grp.kill_ns) && !atomic_load(&g_grp.assigned_ns)) {
    /* Do the survivors of group 0 hold every shard? (each member checks
     * after its own poll: the union of what the live members hold) */
    uint32_t total = 0; /* members 1.. of group 0 survive; ctx pointers were set before the threads started */
    for (unsigned i = 1; i < L->o.consumers; i++) {
      rcons_t *o = L->cons[i].ctx;
      if (o) total += (uint32_t)atomic_load(&o->held);
    }
    if (total >= L->o.shards) {
      int64_t zero = 0;
      atomic_compare_exchange_strong(&g_grp.assigned_ns, &zero, bench_load_now(L));
    }
  }
  if (rc->gc) atomic_store(&rc->held, (uint32_t)rn_group_shards(rc->gc, NULL, 0));
  if (err != RN_EAGAIN && err != 0) {
    bench_cons_error(cs, rn_err_name(err), "%s", rn_last_error_message());
    if (!rn_err_retriable(err)) return BENCH_POLL_FATAL;
  }
  return got;
}

static int be_cons_open(bench_cons_t *cs, const unsigned *shards, unsigned n) {
  bench_load_t *L = cs->L;
  rbroker_t *rb = L->be_state;
  rcons_t *rc = calloc(1, sizeof(*rc));
  if (!rc) return -1;
  cs->ctx = rc;
  if (g_grp.on) return group_open(cs, rc);
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
  if (g_grp.on) return group_poll(cs, rc, idle);
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
  rn_group_consumer_close(rc->gc);
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

/* Rebalance after the kill, session timeout excluded: from the moment the
 * session ran out (the victim's last contact + session timeout; the send
 * time of that contact, so the broker's own deadline is no earlier) until
 * the survivors hold every shard (*assign) and until a record of a moved
 * shard arrived (*resume); -1 when it did not happen (or no kill). */
static void rebalance_ms(double *assign, double *resume) {
  int64_t k = atomic_load(&g_grp.kill_ns), a = atomic_load(&g_grp.assigned_ns), r = atomic_load(&g_grp.resumed_ns);
  double expiry = (double)atomic_load(&g_grp.contact_ns) / 1e6 + g_grp.session_ms;
  *assign = k && a ? (double)a / 1e6 - expiry : -1;
  *resume = k && r ? (double)r / 1e6 - expiry : -1;
}

static void be_json(bench_load_t *L, FILE *out) {
  rbroker_t *rb = L->be_state;
  scan(L);
  fprintf(out, ",\"linger_ms\":%u,\"batch_bytes\":%u,\"buffer_bytes\":%" PRIu64 ",\"broker_batches\":%" PRIu64
               ",\"mean_batch_bytes\":%.0f",
          rb->linger_ms, rb->batch_bytes, rb->buffer_bytes, rb->scan_batches,
          rb->scan_batches ? (double)rb->scan_bytes / (double)rb->scan_batches : 0);
  if (g_grp.on) {
    double a, r;
    rebalance_ms(&a, &r);
    fprintf(out, ",\"consumer_groups\":true,\"session_timeout_ms\":%u,\"kill_member_at_s\":%.3f,"
                 "\"rebalance_assign_ms\":%.1f,\"rebalance_resume_ms\":%.1f",
            g_grp.session_ms, g_grp.kill_at_s, a, r);
  }
}

static void be_text(bench_load_t *L, FILE *out) {
  rbroker_t *rb = L->be_state;
  scan(L);
  fprintf(out, "  producer   linger %u ms, batch %u B, buffer %" PRIu64 " B\n", rb->linger_ms, rb->batch_bytes,
          rb->buffer_bytes);
  if (L->server_pid)
    fprintf(out, "  broker     %" PRIu64 " batches stored, mean %.0f B\n", rb->scan_batches,
            rb->scan_batches ? (double)rb->scan_bytes / (double)rb->scan_batches : 0);
  if (g_grp.on) {
    fprintf(out, "  groups     consumer groups of %u member(s), session %u ms\n", L->o.consumers, g_grp.session_ms);
    if (g_grp.kill_at_s > 0) {
      double a, r;
      rebalance_ms(&a, &r);
      fprintf(out, "  rebalance  member 0 abandoned at %.1f s; after its session ran out: survivors hold every shard "
                   "in %.1f ms, first record of a moved shard in %.1f ms (-1: did not happen)\n",
              g_grp.kill_at_s, a, r);
    }
  }
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

enum { OPT_BROKER = 1, OPT_RUNNELD, OPT_DURABILITY, OPT_LINGER, OPT_BATCH, OPT_BUFFER, OPT_USE_GROUPS, OPT_SESSION,
       OPT_KILL };

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
  case OPT_USE_GROUPS: g_grp.on = true; break;
  case OPT_SESSION: g_grp.session_ms = (uint32_t)atoi(arg); break;
  case OPT_KILL: g_grp.kill_at_s = atof(arg); break;
  default: return 2;
  }
  return 0;
}

int rn_bench_broker(int argc, char **argv) {
  static const struct option lo[] = {
      {"broker", required_argument, 0, OPT_BROKER},         {"runneld", required_argument, 0, OPT_RUNNELD},
      {"durability", required_argument, 0, OPT_DURABILITY}, {"linger-ms", required_argument, 0, OPT_LINGER},
      {"batch-bytes", required_argument, 0, OPT_BATCH},     {"buffer-bytes", required_argument, 0, OPT_BUFFER},
      {"use-groups", no_argument, 0, OPT_USE_GROUPS},       {"session-timeout-ms", required_argument, 0, OPT_SESSION},
      {"kill-member-at", required_argument, 0, OPT_KILL},   {0, 0, 0, 0}};
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
  if (!rc && g_grp.kill_at_s > 0 && (!g_grp.on || L->o.consumers < 2 || L->o.shards > 256)) {
    fprintf(stderr, "runnel-bench broker: --kill-member-at needs --use-groups, --consumers >= 2 and <= 256 shards\n");
    free(rb);
    free(L);
    return 2;
  }
  if (g_grp.on && !g_grp.session_ms) g_grp.session_ms = 3000;
  if (L->o.groups > 1 && !g_grp.on)
    L->note = "independent consumer sets (not consumer groups), each reading every shard";
  snprintf(L->server_version, sizeof(L->server_version), "runneld (this tree)");
  g_load = L;
  rc = bench_load_run(L);
  free(rb);
  free(L);
  return rc;
}
