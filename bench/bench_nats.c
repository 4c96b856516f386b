/*
 * bench_nats.c — `runnel-bench nats`: the bench_load.c design against NATS
 * JetStream through libnats (the C client), so the row is comparable with
 * `broker`.
 *
 *   - Server: by default its own nats-server on 127.0.0.1, port chosen by
 *     the server (port -1, read back from --ports_file_dir), JetStream file
 *     storage in the run's fresh directory, stopped by PID. `--sync always`
 *     writes `sync_interval: always` into its config (fsync before every
 *     acknowledgement); nats-server 2.9.10 (Debian 12) does not know that
 *     option (it appeared in 2.10) and refuses to start: the run then stops
 *     with exit status 3 and says the durable row is blocked. `--sync
 *     default` leaves the server's default (JetStream fsyncs its files
 *     periodically, every 2 minutes by default, and acknowledges from the
 *     page cache).
 *   - Shards are S streams (file storage, one subject each), so the server
 *     can work on them in parallel like runnel's shards or Redis keys.
 *   - A producer has its own connection and JetStream context and publishes
 *     with js_PublishAsync, at most --inflight unacknowledged (the call
 *     blocks beyond that: the wait counts in the latency). The ack handler
 *     runs on the connection's delivery thread and reads the intended time
 *     from the record itself (the message the library hands back).
 *   - Consumers: group g is a durable pull consumer "g<g>" on each stream
 *     (deliver new, i.e. the end, created before anything is produced; ack
 *     none when the server allows it for pull consumers, else ack-all with
 *     one ack per fetched batch — a checkpoint, not a per-record ack). A
 *     consumer thread fetches batches of up to 256 from each of its streams:
 *     a long poll with one stream, otherwise no-wait passes and a 1 ms wait
 *     after a pass that found nothing (the broker bench's rule).
 */
#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_load.h"
#include "bench_util.h"

int rn_bench_nats(int argc, char **argv);

#define FETCH_BATCH 256

typedef struct rnats {
  const char *bin;  /* nats-server */
  const char *sync; /* always | default */
  char url[160];
  char logpath[4200];
  char (*stream)[48]; /* per shard */
  char (*subj)[48];
  bool ack_all; /* the server refused ack none on pull consumers */
} rnats_t;

typedef struct rnprod {
  natsConnection *nc;
  jsCtx *js;
} rnprod_t;

typedef struct rncons {
  natsConnection *nc;
  jsCtx *js;
  natsSubscription **subs;
  unsigned n;
} rncons_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: runnel-bench nats [options]\n"
          "\n"
          "The runnel-bench broker load against NATS JetStream through libnats: N producers with\n"
          "asynchronous publishes over S file-storage streams, M pull consumers per group; publish\n"
          "and end-to-end latency from the intended send time, throughput, and the raw limit.\n"
          "\n"
          "  --sync MODE          always (durable: sync_interval always; needs nats-server >= 2.10,\n"
          "                       exit status 3 when the server refuses it) | default (default)\n"
          "  --nats-server PATH   binary to start (default: nats-server on PATH)\n"
          "  (--server HOST:PORT uses a running server: its sync settings are its own)\n");
  bench_load_usage_common(out);
}

static natsStatus connect_to(const rnats_t *rn, natsConnection **nc) {
  natsOptions *no = NULL;
  natsStatus s = natsOptions_Create(&no);
  if (s == NATS_OK) s = natsOptions_SetURL(no, rn->url);
  if (s == NATS_OK) s = natsOptions_SetTimeout(no, 10000);
  if (s == NATS_OK) s = natsConnection_Connect(nc, no);
  natsOptions_Destroy(no);
  return s;
}

/* ---- server ------------------------------------------------------------------------ */

/* 0 started; -1 failed; 3 the server refused the durable configuration. */
static int server_start(bench_load_t *L, rnats_t *rn) {
  char conf[4200], store[4200], ports[4200];
  snprintf(conf, sizeof(conf), "%s/nats.conf", L->work);
  snprintf(store, sizeof(store), "%s/jetstream", L->work);
  snprintf(rn->logpath, sizeof(rn->logpath), "%s/nats.log", L->work);
  FILE *f = fopen(conf, "w");
  if (!f) return -1;
  fprintf(f, "host: 127.0.0.1\nport: -1\njetstream {\n  store_dir: \"%s\"\n%s}\n", store,
          !strcmp(rn->sync, "always") ? "  sync_interval: always\n" : "");
  if (fclose(f)) return -1;
  const char *argv[] = {rn->bin, "-c", conf, "--ports_file_dir", L->work, NULL};
  pid_t pid = bench_proc_spawn("runnel-bench nats", argv, rn->logpath);
  if (pid < 0) return -1;
  snprintf(ports, sizeof(ports), "%s/%s_%d.ports", L->work, strrchr(rn->bin, '/') ? strrchr(rn->bin, '/') + 1 : rn->bin,
           (int)pid);
  for (int i = 0; i < 6000; i++) { /* 30 s, polling the ports file: startup only */
    f = fopen(ports, "r");
    if (f) {
      char buf[1024];
      size_t n = fread(buf, 1, sizeof(buf) - 1, f);
      fclose(f);
      buf[n] = 0;
      const char *u = strstr(buf, "nats://");
      if (u && strchr(u, '"')) {
        snprintf(rn->url, sizeof(rn->url), "%.*s", (int)(strchr(u, '"') - u), u);
        snprintf(L->server_addr, sizeof(L->server_addr), "%s", u + 7);
        L->server_addr[strcspn(L->server_addr, "\"")] = 0;
        L->server_pid = pid;
        return 0;
      }
    }
    if (!bench_proc_alive(pid, NULL)) {
      char line[512] = "";
      char cmd[4400];
      snprintf(cmd, sizeof(cmd), "grep -m1 -o 'unknown field \"sync_interval\"' '%s' 2>/dev/null", rn->logpath);
      bench_cmd_line(cmd, line, sizeof(line));
      if (*line) {
        fprintf(stderr, "runnel-bench nats: BLOCKED: %s rejects `sync_interval: always` (%s; the option exists "
                        "from nats-server 2.10): no durable (fsync-per-ack) JetStream row with this server\n",
                L->server_version, line);
        return 3;
      }
      fprintf(stderr, "runnel-bench nats: nats-server exited during startup; see %s\n", rn->logpath);
      return -1;
    }
    bench_sleep_ms(5);
  }
  bench_proc_stop(pid, 5);
  fprintf(stderr, "runnel-bench nats: nats-server did not start within 30 s; see %s\n", rn->logpath);
  return -1;
}

static int be_setup(bench_load_t *L) {
  rnats_t *rn = L->be_state;
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "'%s' --version 2>&1", rn->bin);
  bench_cmd_line(cmd, L->server_version, sizeof(L->server_version));
  if (L->o.server) {
    snprintf(rn->url, sizeof(rn->url), "nats://%s", L->o.server);
    snprintf(L->server_addr, sizeof(L->server_addr), "%s", L->o.server);
  } else {
    int r = server_start(L, rn);
    if (r) return r;
  }
  rn->stream = calloc(L->o.shards, sizeof(*rn->stream));
  rn->subj = calloc(L->o.shards, sizeof(*rn->subj));
  if (!rn->stream || !rn->subj) return -1;
  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  natsStatus s = connect_to(rn, &nc);
  if (s == NATS_OK) s = natsConnection_JetStream(&js, nc, NULL);
  for (unsigned i = 0; s == NATS_OK && i < L->o.shards; i++) {
    snprintf(rn->stream[i], sizeof(rn->stream[i]), "B%d_%lld_%u", (int)getpid(), (long long)time(NULL), i);
    snprintf(rn->subj[i], sizeof(rn->subj[i]), "b%d.%lld.%u", (int)getpid(), (long long)time(NULL), i);
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {rn->subj[i]};
    sc.Name = rn->stream[i];
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = 1;
    jsErrCode jerr = 0;
    s = js_AddStream(NULL, js, &sc, NULL, &jerr);
    if (s != NATS_OK)
      fprintf(stderr, "runnel-bench nats: add stream %s: %s (%d) %s\n", sc.Name, natsStatus_GetText(s), (int)jerr,
              nats_GetLastError(NULL));
  }
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  if (s != NATS_OK) {
    fprintf(stderr, "runnel-bench nats: %s: %s\n", rn->url, natsStatus_GetText(s));
    return -1;
  }
  return 0;
}

static void be_teardown(bench_load_t *L, int *rc) {
  rnats_t *rn = L->be_state;
  if (rn->stream && L->o.server) {
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    if (connect_to(rn, &nc) == NATS_OK && natsConnection_JetStream(&js, nc, NULL) == NATS_OK)
      for (unsigned i = 0; i < L->o.shards; i++) js_DeleteStream(js, rn->stream[i], NULL, NULL);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
  if (L->server_pid) {
    int st = bench_proc_stop(L->server_pid, 60);
    L->server_pid = 0;
    if (st == 1) { /* nats-server exits 1 after a clean shutdown on SIGTERM */
      char cmd[4400], line[64];
      snprintf(cmd, sizeof(cmd), "grep -c 'Server Exiting' '%s' 2>/dev/null", rn->logpath);
      bench_cmd_line(cmd, line, sizeof(line));
      if (atoi(line) > 0) st = 0;
    }
    if (st != 0) {
      fprintf(stderr, "runnel-bench nats: nats-server exited with status %d; see %s\n", st, rn->logpath);
      *rc = 1;
    }
  }
  nats_CloseAndWait(5000);
}

/* ---- producers ------------------------------------------------------------------------- */

/* The connection's delivery thread. The library hands back the published
 * message, which carries our header; we destroy it. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
  (void)js;
  bench_prod_t *pr = closure;
  const uint8_t *data = (const uint8_t *)natsMsg_GetData(msg);
  if (pa && !pae && data && natsMsg_GetDataLength(msg) >= BENCH_PAYLOAD_HEADER)
    bench_prod_acked(pr, bench_payload_time(data), bench_payload_measured(data));
  else
    bench_prod_failed(pr, pae ? natsStatus_GetText(pae->Err) : "NATS_NO_ACK");
  natsMsg_Destroy(msg);
}

static int be_prod_open(bench_prod_t *pr) {
  rnats_t *rn = pr->L->be_state;
  rnprod_t *rp = calloc(1, sizeof(*rp));
  if (!rp) return -1;
  pr->ctx = rp;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = pr->L->o.inflight;
  jo.PublishAsync.AckHandler = on_ack;
  jo.PublishAsync.AckHandlerClosure = pr;
  jo.PublishAsync.StallWait = 60000;
  natsStatus s = connect_to(rn, &rp->nc);
  if (s == NATS_OK) s = natsConnection_JetStream(&rp->js, rp->nc, &jo);
  if (s != NATS_OK) {
    bench_prod_error(pr, natsStatus_GetText(s), "%s", nats_GetLastError(NULL));
    return -1;
  }
  return 0;
}

static int be_prod_send(bench_prod_t *pr, unsigned key, const uint8_t *data, size_t len, int64_t t, bool measured) {
  (void)t;
  (void)measured; /* both travel in the record's header */
  rnats_t *rn = pr->L->be_state;
  rnprod_t *rp = pr->ctx;
  natsStatus s = js_PublishAsync(rp->js, rn->subj[key % pr->L->o.shards], data, (int)len, NULL);
  if (s == NATS_OK) return BENCH_SEND_OK;
  bench_prod_error(pr, natsStatus_GetText(s), "%s", nats_GetLastError(NULL));
  return s == NATS_TIMEOUT ? BENCH_SEND_RETRY : BENCH_SEND_FATAL;
}

static int be_prod_flush(bench_prod_t *pr) {
  rnprod_t *rp = pr->ctx;
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 300000;
  natsStatus s = js_PublishAsyncComplete(rp->js, &po);
  if (s != NATS_OK) bench_prod_error(pr, natsStatus_GetText(s), "flush: %s", nats_GetLastError(NULL));
  return s == NATS_OK ? 0 : -1;
}

static void be_prod_close(bench_prod_t *pr) {
  rnprod_t *rp = pr->ctx;
  if (!rp) return;
  jsCtx_Destroy(rp->js);
  natsConnection_Destroy(rp->nc);
  free(rp);
  pr->ctx = NULL;
}

/* ---- consumers ---------------------------------------------------------------------------- */

static natsStatus pull_subscribe(rnats_t *rn, rncons_t *rc, unsigned shard, const char *durable, bool ack_all) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = rn->stream[shard];
  so.Config.Durable = durable;
  so.Config.DeliverPolicy = js_DeliverNew;
  so.Config.AckPolicy = ack_all ? js_AckAll : js_AckNone;
  so.Config.MaxAckPending = ack_all ? 1 << 20 : 0;
  jsErrCode jerr = 0;
  return js_PullSubscribe(&rc->subs[rc->n], rc->js, rn->subj[shard], durable, NULL, &so, &jerr);
}

static int be_cons_open(bench_cons_t *cs, const unsigned *shards, unsigned n) {
  rnats_t *rn = cs->L->be_state;
  rncons_t *rc = calloc(1, sizeof(*rc));
  if (!rc) return -1;
  cs->ctx = rc;
  rc->subs = calloc(n ? n : 1, sizeof(*rc->subs));
  natsStatus s = rc->subs ? connect_to(rn, &rc->nc) : NATS_NO_MEMORY;
  if (s == NATS_OK) s = natsConnection_JetStream(&rc->js, rc->nc, NULL);
  char durable[16];
  snprintf(durable, sizeof(durable), "g%u", cs->group);
  for (unsigned i = 0; s == NATS_OK && i < n; i++) {
    s = pull_subscribe(rn, rc, shards[i], durable, rn->ack_all);
    if (s != NATS_OK && !rn->ack_all) { /* older servers: pull consumers need an ack policy */
      rn->ack_all = true;
      s = pull_subscribe(rn, rc, shards[i], durable, true);
    }
    if (s == NATS_OK) rc->n++;
  }
  if (s != NATS_OK) {
    bench_cons_error(cs, natsStatus_GetText(s), "pull subscribe: %s", nats_GetLastError(NULL));
    return -1;
  }
  return 0;
}

static int be_cons_poll(bench_cons_t *cs, bool idle) {
  rnats_t *rn = cs->L->be_state;
  rncons_t *rc = cs->ctx;
  int got = 0;
  for (unsigned k = 0; k < rc->n; k++) {
    jsFetchRequest req;
    jsFetchRequest_Init(&req);
    req.Batch = FETCH_BATCH;
    if (rc->n == 1) req.Expires = 200 * 1000000LL;
    else if (idle) req.Expires = 1000000LL;
    else {
      req.NoWait = true;
      req.Expires = 1000 * 1000000LL; /* bounds the call if the server does not answer */
    }
    natsMsgList list = {0};
    natsStatus s = natsSubscription_FetchRequest(&list, rc->subs[k], &req);
    if (s == NATS_OK) {
      for (int i = 0; i < list.Count; i++)
        bench_cons_record(cs, (const uint8_t *)natsMsg_GetData(list.Msgs[i]),
                          (size_t)natsMsg_GetDataLength(list.Msgs[i]));
      got += list.Count;
      if (rn->ack_all && list.Count) natsMsg_Ack(list.Msgs[list.Count - 1], NULL);
      natsMsgList_Destroy(&list);
    } else if (s != NATS_TIMEOUT && s != NATS_NOT_FOUND) {
      bench_cons_error(cs, natsStatus_GetText(s), "fetch: %s", nats_GetLastError(NULL));
      if (s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION) return BENCH_POLL_FATAL;
    }
  }
  return got;
}

static void be_cons_close(bench_cons_t *cs) {
  rncons_t *rc = cs->ctx;
  if (!rc) return;
  for (unsigned k = 0; k < rc->n; k++) natsSubscription_Destroy(rc->subs[k]);
  free(rc->subs);
  jsCtx_Destroy(rc->js);
  natsConnection_Destroy(rc->nc);
  free(rc);
  cs->ctx = NULL;
}

static void be_json(bench_load_t *L, FILE *out) {
  rnats_t *rn = L->be_state;
  fprintf(out, ",\"inflight\":%u,\"fetch_batch\":%d,\"consumer_ack\":\"%s\"", L->o.inflight, FETCH_BATCH,
          rn->ack_all ? "all" : "none");
}

static void be_text(bench_load_t *L, FILE *out) {
  rnats_t *rn = L->be_state;
  fprintf(out, "  producer   js_PublishAsync, at most %u unacknowledged; pull consumers, batches of %d, ack %s\n",
          L->o.inflight, FETCH_BATCH, rn->ack_all ? "all (one per batch)" : "none");
}

static const bench_backend_t k_backend = {
    .name = "nats",
    .setup = be_setup,
    .teardown = be_teardown,
    .prod_open = be_prod_open,
    .prod_send = be_prod_send,
    .prod_wait = NULL, /* acks arrive on the library's thread */
    .prod_flush = be_prod_flush,
    .prod_close = be_prod_close,
    .cons_open = be_cons_open,
    .cons_poll = be_cons_poll,
    .cons_close = be_cons_close,
    .json_extra = be_json,
    .text_extra = be_text,
};

enum { OPT_SYNC = 1, OPT_BIN };

static int on_opt(bench_load_t *L, int c, const char *arg) {
  rnats_t *rn = L->be_state;
  switch (c) {
  case OPT_SYNC:
    if (strcmp(arg, "always") && strcmp(arg, "default")) {
      fprintf(stderr, "runnel-bench nats: --sync must be always or default\n");
      return 2;
    }
    rn->sync = arg;
    break;
  case OPT_BIN: rn->bin = arg; break;
  default: return 2;
  }
  return 0;
}

int rn_bench_nats(int argc, char **argv) {
  static const struct option lo[] = {{"sync", required_argument, 0, OPT_SYNC},
                                     {"nats-server", required_argument, 0, OPT_BIN},
                                     {0, 0, 0, 0}};
  bench_load_t *L = calloc(1, sizeof(*L));
  rnats_t *rn = calloc(1, sizeof(*rn));
  if (!L || !rn) {
    free(L);
    free(rn);
    return 1;
  }
  bench_load_init(L, &k_backend);
  L->be_state = rn;
  L->system = "nats";
  rn->bin = "nats-server";
  rn->sync = "default";
  int rc = bench_load_parse(L, argc, argv, lo, on_opt, usage);
  if (!rc) {
    bool always = !strcmp(rn->sync, "always");
    L->durability = L->o.server ? "server's own" : always ? "sync_always" : "default";
    L->durable = !L->o.server && always;
    L->note = always ? "" : "JetStream default: acknowledged from the page cache, fsync every 2 min";
    if (L->o.groups > 1)
      L->note = always ? "one durable pull consumer per group on every stream"
                       : "JetStream default: acknowledged from the page cache, fsync every 2 min; one durable "
                         "pull consumer per group on every stream";
    rc = bench_load_run(L);
  } else {
    rc = rc == 1 ? 0 : 2;
  }
  free(rn->stream);
  free(rn->subj);
  free(rn);
  free(L);
  return rc;
}
