/*
 * bench_http.c — `runnel-bench http`: what the HTTP APIs cost per record,
 * against each other and against the native protocol, in one run.
 *
 *   ingest   the same records (--record-size, --batch per request) through
 *            Kinesis PutRecords, REST's proxy shape (PUT /streams/S/records,
 *            base64 data) and REST's batch endpoint (POST /v1/streams/S/records,
 *            NDJSON events of the same size), each for --seconds over --conns
 *            keep-alive HTTP/1.1 connections (one blocking client thread per
 *            connection, plain sockets). Reported per API: records/s and the
 *            server's CPU seconds per record (utime+stime of the runneld PID
 *            from /proc before and after), with the client's own CPU beside
 *            it so a client-bound row shows as such.
 *   catchup  one shard pre-filled with --catchup-bytes of records (native
 *            producer), then read from the oldest record to the end through
 *            GetRecords (Limit 10000, following NextShardIterator) and through
 *            librunnel's consumer, alternately --rounds times: MB/s of record
 *            data each and the ratio.
 *
 * Phases are interleaved round by round (put, rest, v1, then rest, v1, put,
 * ...: each round starts with the next API) so a change of machine load or
 * of the page cache's writeback hits every row alike; the figures are sums
 * over the rounds. It starts its own runneld (127.0.0.1:0, --port-file, a fresh
 * data directory) and stops it by PID; --runneld picks the binary, so two
 * builds compare with the same command. Owns every socket, thread and file it
 * makes; nothing outlives the call.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "runnel/runnel.h"

#ifndef RN_BENCH_RUNNELD
#define RN_BENCH_RUNNELD "runneld"
#endif

int rn_bench_http(int argc, char **argv);

#define MAX_CONNS 32

typedef struct hopts {
  const char *runneld;
  size_t record_size;
  unsigned batch;
  unsigned conns;
  unsigned shards;
  double seconds;
  unsigned rounds;
  uint64_t catchup_bytes;
  rn_durability_t durability;
  const char *only; /* NULL: every phase */
  unsigned apis;    /* bit per api_t: the ingest rows to run */
  const char *label;
  bool json;
} hopts_t;

/* ---- one keep-alive HTTP/1.1 connection (blocking; client threads only) ---------- */

typedef struct hconn {
  int fd;
  char *buf; /* the last response: headers then body */
  size_t cap;
  const char *body;
  size_t body_len;
  int status;
} hconn_t;

static int hc_open(hconn_t *h, unsigned port) {
  memset(h, 0, sizeof(*h));
  h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (h->fd < 0 || connect(h->fd, (struct sockaddr *)&sa, sizeof(sa))) {
    if (h->fd >= 0) close(h->fd);
    h->fd = -1;
    return -1;
  }
  int one = 1;
  setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return 0;
}

static void hc_close(hconn_t *h) {
  if (h->fd >= 0) close(h->fd);
  free(h->buf);
  h->fd = -1;
  h->buf = NULL;
}

/* Send head + body, read one response (Content-Length framed). 0 or -1. */
static int hc_call(hconn_t *h, const char *head, size_t head_len, const char *body, size_t body_len) {
  struct iovec iov[2] = {{(void *)(uintptr_t)head, head_len}, {(void *)(uintptr_t)body, body_len}};
  int iovn = 2;
  struct iovec *v = iov;
  while (iovn) {
    ssize_t n = writev(h->fd, v, iovn);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    while (iovn && (size_t)n >= v->iov_len) {
      n -= (ssize_t)v->iov_len;
      v++;
      iovn--;
    }
    if (iovn) {
      v->iov_base = (char *)v->iov_base + n;
      v->iov_len -= (size_t)n;
    }
  }
  size_t have = 0, hdr_end = 0, want = 0;
  for (;;) {
    if (h->cap - have < 65536) {
      size_t nc = h->cap ? h->cap * 2 : 1 << 20;
      char *nb = realloc(h->buf, nc);
      if (!nb) return -1;
      h->buf = nb;
      h->cap = nc;
    }
    ssize_t n = read(h->fd, h->buf + have, h->cap - have - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    have += (size_t)n;
    if (!hdr_end) {
      h->buf[have] = 0;
      char *e = strstr(h->buf, "\r\n\r\n");
      if (!e) continue;
      hdr_end = (size_t)(e - h->buf) + 4;
      h->status = atoi(h->buf + 9);
      const char *cl = strcasestr(h->buf, "\r\ncontent-length:");
      if (!cl || cl > e) return -1; /* the broker always sends Content-Length */
      want = hdr_end + strtoull(cl + 17, NULL, 10);
    }
    if (have >= want) break;
  }
  h->body = h->buf + hdr_end;
  h->body_len = want - hdr_end;
  h->buf[want] = 0;
  return 0;
}

/* The unsigned number after `"name":` in the response body; -1 when absent. */
static long long json_num(const hconn_t *h, const char *name) {
  char pat[64];
  snprintf(pat, sizeof(pat), "\"%s\":", name);
  const char *p = strstr(h->body, pat);
  return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* ---- request bodies ------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64(const uint8_t *p, size_t n, char *out) {
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    out[o++] = B64[v >> 18], out[o++] = B64[(v >> 12) & 63], out[o++] = B64[(v >> 6) & 63], out[o++] = B64[v & 63];
  }
  if (n - i) {
    uint32_t v = (uint32_t)p[i] << 16 | (n - i == 2 ? (uint32_t)p[i + 1] << 8 : 0);
    out[o++] = B64[v >> 18], out[o++] = B64[(v >> 12) & 63];
    out[o++] = n - i == 2 ? B64[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  return o;
}

typedef enum { API_PUT = 0, API_REST, API_V1, API_N } api_t;
static const char *const API_NAME[API_N] = {"put_records", "rest_records", "rest_v1_batch"};

typedef struct req {
  char head[512];
  size_t head_len;
  char *body;
  size_t body_len;
} req_t;

/* One request of o->batch records of o->record_size bytes of data each
 * (random bytes; NDJSON events of the same length for the v1 batch), keys
 * k<conn>-<i>. */
static int build_req(const hopts_t *o, api_t api, const char *stream, unsigned conn, req_t *r) {
  size_t cap = (size_t)o->batch * (o->record_size * 4 / 3 + 128) + 256;
  r->body = malloc(cap);
  uint8_t *raw = malloc(o->record_size + 1);
  if (!r->body || !raw) {
    free(raw);
    return -1;
  }
  unsigned seed = 12345u + conn;
  size_t at = 0;
  if (api == API_PUT) at += (size_t)sprintf(r->body, "{\"StreamName\":\"%s\",\"Records\":[", stream);
  else if (api == API_REST) at += (size_t)sprintf(r->body, "{\"records\":[");
  for (unsigned i = 0; i < o->batch; i++) {
    for (size_t j = 0; j < o->record_size; j++) raw[j] = (uint8_t)rand_r(&seed);
    if (api == API_V1) {
      int hl = sprintf(r->body + at, "{\"id\":\"k%u-%u\",\"payload\":\"", conn, i);
      at += (size_t)hl;
      size_t fill = o->record_size > (size_t)hl + 3 ? o->record_size - (size_t)hl - 3 : 1;
      for (size_t j = 0; j < fill; j++) r->body[at++] = (char)('a' + raw[j] % 26);
      at += (size_t)sprintf(r->body + at, "\"}\n");
      continue;
    }
    if (i) r->body[at++] = ',';
    at += (size_t)sprintf(r->body + at, api == API_PUT ? "{\"Data\":\"" : "{\"data\":\"");
    at += b64(raw, o->record_size, r->body + at);
    at += (size_t)sprintf(r->body + at, api == API_PUT ? "\",\"PartitionKey\":\"k%u-%u\"}" : "\",\"partition-key\":\"k%u-%u\"}",
                          conn, i);
  }
  if (api != API_V1) at += (size_t)sprintf(r->body + at, "]}");
  r->body_len = at;
  free(raw);
  if (api == API_PUT)
    r->head_len = (size_t)snprintf(r->head, sizeof(r->head),
                                   "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\n"
                                   "Content-Type: application/x-amz-json-1.1\r\nContent-Length: %zu\r\n\r\n",
                                   at);
  else if (api == API_REST)
    r->head_len = (size_t)snprintf(r->head, sizeof(r->head),
                                   "PUT /streams/%s/records HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                   "Content-Length: %zu\r\n\r\n",
                                   stream, at);
  else
    r->head_len = (size_t)snprintf(r->head, sizeof(r->head),
                                   "POST /v1/streams/%s/records?key_field=id HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   "Content-Type: application/x-ndjson\r\nContent-Length: %zu\r\n\r\n",
                                   stream, at);
  return 0;
}

/* ---- ingest --------------------------------------------------------------------- */

typedef struct iworker {
  const hopts_t *o;
  api_t api;
  unsigned port;
  req_t req;
  int64_t end_ns;
  uint64_t ok, failed, requests;
  int err;
  char msg[200];
  pthread_t th;
} iworker_t;

static void *ingest_main(void *arg) {
  iworker_t *w = arg;
  hconn_t h;
  if (hc_open(&h, w->port)) {
    w->err = errno ? errno : EIO;
    snprintf(w->msg, sizeof(w->msg), "connect: %s", strerror(w->err));
    return NULL;
  }
  while (bench_now_ns() < w->end_ns) {
    if (hc_call(&h, w->req.head, w->req.head_len, w->req.body, w->req.body_len)) {
      w->err = EIO;
      snprintf(w->msg, sizeof(w->msg), "connection lost");
      break;
    }
    w->requests++;
    if (h.status != 200) {
      w->err = EPROTO;
      snprintf(w->msg, sizeof(w->msg), "HTTP %d: %.150s", h.status, h.body);
      break;
    }
    long long failed = json_num(&h, w->api == API_V1 ? "failed" : "FailedRecordCount");
    if (failed < 0) failed = w->o->batch;
    w->failed += (uint64_t)failed;
    w->ok += w->o->batch - (uint64_t)failed;
  }
  hc_close(&h);
  return NULL;
}

typedef struct row {
  double secs, server_cpu, client_cpu;
  uint64_t records, failed, bytes;
} row_t;

static int ingest_round(const hopts_t *o, api_t api, unsigned port, pid_t pid, const char *stream, row_t *row) {
  iworker_t w[MAX_CONNS];
  memset(w, 0, sizeof(w));
  for (unsigned i = 0; i < o->conns; i++) {
    w[i].o = o;
    w[i].api = api;
    w[i].port = port;
    if (build_req(o, api, stream, i, &w[i].req)) {
      fprintf(stderr, "runnel-bench http: out of memory building requests\n");
      for (unsigned k = 0; k <= i; k++) free(w[k].req.body);
      return -1;
    }
  }
  double s0 = bench_proc_cpu_s(pid), c0 = bench_self_cpu_s();
  int64_t t0 = bench_now_ns();
  for (unsigned i = 0; i < o->conns; i++) {
    w[i].end_ns = t0 + (int64_t)(o->seconds * 1e9);
    pthread_create(&w[i].th, NULL, ingest_main, &w[i]);
  }
  int rc = 0;
  for (unsigned i = 0; i < o->conns; i++) pthread_join(w[i].th, NULL);
  int64_t t1 = bench_now_ns();
  double s1 = bench_proc_cpu_s(pid), c1 = bench_self_cpu_s();
  for (unsigned i = 0; i < o->conns; i++) {
    if (w[i].err && !rc) {
      fprintf(stderr, "runnel-bench http: %s connection %u: %s\n", API_NAME[api], i, w[i].msg);
      rc = -1;
    }
    row->records += w[i].ok;
    row->failed += w[i].failed;
    row->bytes += w[i].ok * o->record_size;
    free(w[i].req.body);
  }
  row->secs += (double)(t1 - t0) / 1e9;
  row->server_cpu += s1 - s0;
  row->client_cpu += c1 - c0;
  return rc;
}

/* ---- catch-up ----------------------------------------------------------------------- */

static void noop_cb(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  (void)shard, (void)offset;
  if (err) __atomic_fetch_add((uint64_t *)opaque, 1, __ATOMIC_RELAXED);
}

static int prefill(const hopts_t *o, rn_client_t *cl, const char *stream, uint64_t *nrec) {
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  rn_producer_t *p = NULL;
  rn_err_t err = rn_producer_new(cl, &pc, &p);
  uint8_t *data = malloc(o->record_size);
  uint64_t n = o->catchup_bytes / o->record_size, errors = 0;
  if (!data) err = RN_ENOMEM;
  unsigned seed = 99;
  for (size_t j = 0; data && j < o->record_size; j++) data[j] = (uint8_t)rand_r(&seed);
  for (uint64_t i = 0; !err && i < n; i++) {
    char key[32];
    int kl = snprintf(key, sizeof(key), "key-%" PRIu64, i % 1000);
    data[0] = (uint8_t)i;
    err = rn_producer_send(p, stream, key, (size_t)kl, data, o->record_size, noop_cb, &errors);
  }
  if (!err) err = rn_producer_flush(p, 300000);
  rn_producer_destroy(p);
  free(data);
  if (err || errors) {
    fprintf(stderr, "runnel-bench http: prefill: %s (%" PRIu64 " records failed) %s\n", rn_strerror(err), errors,
            rn_last_error_message());
    return -1;
  }
  *nrec = n;
  return 0;
}

static int kinesis_call(hconn_t *h, const char *op, const char *body) {
  char head[512];
  size_t bl = strlen(body);
  int hl = snprintf(head, sizeof(head),
                    "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: Kinesis_20131202.%s\r\n"
                    "Content-Type: application/x-amz-json-1.1\r\nContent-Length: %zu\r\n\r\n",
                    op, bl);
  if (hc_call(h, head, (size_t)hl, body, bl)) return -1;
  if (h->status != 200) {
    fprintf(stderr, "runnel-bench http: %s: HTTP %d: %.200s\n", op, h->status, h->body);
    return -1;
  }
  return 0;
}

/* Copy the string value of "name" into out[cap]; -1 when absent. Searched
 * from the end when `last` (NextShardIterator closes a GetRecords answer of
 * megabytes: the client should not scan it all for that). */
static int json_str(const hconn_t *h, const char *name, char *out, size_t cap, bool last) {
  char pat[64];
  snprintf(pat, sizeof(pat), "\"%s\":\"", name);
  size_t pl = strlen(pat);
  const char *p = NULL;
  if (last) {
    size_t from = h->body_len > 4096 ? h->body_len - 4096 : 0;
    p = memmem(h->body + from, h->body_len - from, pat, pl);
  }
  if (!p) p = strstr(h->body, pat);
  if (!p) return -1;
  p += strlen(pat);
  const char *e = strchr(p, '"');
  if (!e || (size_t)(e - p) >= cap) return -1;
  memcpy(out, p, (size_t)(e - p));
  out[e - p] = 0;
  return 0;
}

/* Records in a GetRecords answer: its '{' less the outer one (memchr, so
 * the client stays cheap; the bench's keys and base64 data hold no '{'). */
static uint64_t count_records(const hconn_t *h) {
  uint64_t n = 0;
  const char *p = h->body, *end = h->body + h->body_len;
  while ((p = memchr(p, '{', (size_t)(end - p)))) {
    n++;
    p++;
  }
  return n ? n - 1 : 0;
}

static int catchup_getrecords(const hopts_t *o, unsigned port, pid_t pid, const char *stream, uint64_t nrec,
                              row_t *row) {
  hconn_t h;
  if (hc_open(&h, port)) {
    fprintf(stderr, "runnel-bench http: connect: %s\n", strerror(errno));
    return -1;
  }
  char body[1200], iter[1024];
  snprintf(body, sizeof(body),
           "{\"StreamName\":\"%s\",\"ShardId\":\"shardId-000000000000\",\"ShardIteratorType\":\"TRIM_HORIZON\"}", stream);
  int rc = -1;
  double s0 = bench_proc_cpu_s(pid), c0 = bench_self_cpu_s();
  int64_t t0 = bench_now_ns();
  if (kinesis_call(&h, "GetShardIterator", body) || json_str(&h, "ShardIterator", iter, sizeof(iter), false)) goto out;
  uint64_t got = 0;
  while (got < nrec) {
    snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\",\"Limit\":10000}", iter);
    if (kinesis_call(&h, "GetRecords", body)) goto out;
    uint64_t n = count_records(&h);
    if (n == 0) {
      fprintf(stderr, "runnel-bench http: GetRecords returned nothing after %" PRIu64 " of %" PRIu64 " records\n", got,
              nrec);
      goto out;
    }
    got += n;
    if (json_str(&h, "NextShardIterator", iter, sizeof(iter), true)) goto out;
  }
  rc = 0;
  int64_t t1 = bench_now_ns();
  row->secs += (double)(t1 - t0) / 1e9;
  row->server_cpu += bench_proc_cpu_s(pid) - s0;
  row->client_cpu += bench_self_cpu_s() - c0;
  row->records += got;
  row->bytes += got * o->record_size;
out:
  hc_close(&h);
  return rc;
}

static int catchup_native(rn_client_t *cl, pid_t pid, const char *stream, uint64_t nrec, row_t *row) {
  rn_consumer_t *c = NULL;
  double s0 = bench_proc_cpu_s(pid), c0 = bench_self_cpu_s();
  int64_t t0 = bench_now_ns();
  rn_err_t err = rn_consumer_new(cl, stream, 0, RN_POS_EARLIEST, 0, &c);
  uint64_t got = 0, bytes = 0;
  while (!err && got < nrec) {
    const rn_record_t *rec;
    err = rn_consumer_poll(c, 1000, &rec);
    if (!err) {
      got++;
      bytes += rec->value_len;
    }
  }
  int64_t t1 = bench_now_ns();
  rn_consumer_destroy(c);
  if (err) {
    fprintf(stderr, "runnel-bench http: native consumer: %s %s\n", rn_strerror(err), rn_last_error_message());
    return -1;
  }
  row->secs += (double)(t1 - t0) / 1e9;
  row->server_cpu += bench_proc_cpu_s(pid) - s0;
  row->client_cpu += bench_self_cpu_s() - c0;
  row->records += got;
  row->bytes += bytes;
  return 0;
}

/* ---- the broker process ------------------------------------------------------------ */

static pid_t broker_start(const hopts_t *o, const char *work, unsigned *native, unsigned *http) {
  char datadir[4200], portfile[4200], logpath[4200];
  snprintf(datadir, sizeof(datadir), "%s/data", work);
  snprintf(portfile, sizeof(portfile), "%s/ports", work);
  snprintf(logpath, sizeof(logpath), "%s/runneld.log", work);
  const char *argv[] = {o->runneld,    "--data-dir", datadir,   "--listen",    "127.0.0.1:0", "--http",
                        "127.0.0.1:0", "--port-file", portfile, "--log-level", "warn",        NULL};
  pid_t pid = bench_proc_spawn("runnel-bench http", argv, logpath);
  if (pid < 0) return -1;
  for (int i = 0; i < 6000; i++) { /* startup only: poll the port file for 30 s */
    FILE *f = fopen(portfile, "r");
    if (f) {
      int ok = fscanf(f, "%u %u", native, http) == 2;
      fclose(f);
      if (ok && *native && *http) return pid;
    }
    if (!bench_proc_alive(pid, NULL)) {
      fprintf(stderr, "runnel-bench http: %s exited during startup; see %s\n", o->runneld, logpath);
      return -1;
    }
    bench_sleep_ms(5);
  }
  bench_proc_stop(pid, 0);
  fprintf(stderr, "runnel-bench http: %s did not listen within 30 s; see %s\n", o->runneld, logpath);
  return -1;
}

static int make_stream(rn_client_t *cl, const char *name, unsigned shards, rn_durability_t d) {
  rn_stream_config_t sc = {.name = name, .shard_count = shards, .durability = d};
  rn_err_t err = rn_stream_create(cl, &sc, NULL);
  if (err) fprintf(stderr, "runnel-bench http: create stream %s: %s %s\n", name, rn_strerror(err), rn_last_error_message());
  return err ? -1 : 0;
}

/* ---- the command ----------------------------------------------------------------------- */

static void usage(FILE *out) {
  fprintf(out,
          "usage: runnel-bench http [options]\n"
          "\n"
          "Server CPU per record and records/s of Kinesis PutRecords, REST PUT /streams/S/records\n"
          "and REST POST /v1/streams/S/records with the same records; then catch-up reads of one\n"
          "pre-filled shard through GetRecords against librunnel's consumer (MB/s, ratio).\n"
          "\n"
          "  --runneld PATH        broker binary (default: the one built with this; $RUNNELD)\n"
          "  --record-size N       bytes of data per record (default 1K)\n"
          "  --batch N             records per request (default 500)\n"
          "  --conns N             keep-alive connections, one client thread each (default 2)\n"
          "  --shards N            shards of the ingest stream (default 4)\n"
          "  --seconds S           per ingest phase and round (default 4)\n"
          "  --rounds N            rounds; phases interleave within each (default 2)\n"
          "  --catchup-bytes N     data in the catch-up shard (default 256M; 0 = skip catch-up)\n"
          "  --durability D        of both streams: sync|interval|none (default none: the HTTP\n"
          "                        cost without the disk's)\n"
          "  --only ingest|catchup one half only\n"
          "  --apis LIST           ingest rows, of put,rest,v1 (default all)\n"
          "  --label TEXT          copied into the JSON row\n"
          "  --json                one JSON line instead of the summary\n");
}

static void row_json(char *out, size_t cap, const char *name, const row_t *r) {
  double rps = r->secs > 0 ? (double)r->records / r->secs : 0;
  snprintf(out, cap,
           "\"%s\":{\"records\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"seconds\":%.3f,\"records_per_s\":%.0f,"
           "\"mb_per_s\":%.1f,\"server_cpu_s\":%.3f,\"server_cpu_us_per_record\":%.3f,\"server_cores\":%.2f,"
           "\"client_cpu_s\":%.3f,\"client_cores\":%.2f}",
           name, r->records, r->failed, r->secs, rps, r->secs > 0 ? (double)r->bytes / r->secs / 1e6 : 0, r->server_cpu,
           r->records ? r->server_cpu * 1e6 / (double)r->records : 0, r->secs > 0 ? r->server_cpu / r->secs : 0,
           r->client_cpu, r->secs > 0 ? r->client_cpu / r->secs : 0);
}

int rn_bench_http(int argc, char **argv) {
  hopts_t o = {.record_size = 1024, .batch = 500, .conns = 2, .shards = 4, .seconds = 4, .rounds = 2,
               .catchup_bytes = 256u << 20, .durability = RN_DURABILITY_NONE, .label = "", .apis = 7};
  const char *env = getenv("RUNNELD");
  o.runneld = env && *env ? env : RN_BENCH_RUNNELD;
  static const struct option lo[] = {
      {"runneld", required_argument, 0, 'r'}, {"record-size", required_argument, 0, 's'},
      {"batch", required_argument, 0, 'b'},   {"conns", required_argument, 0, 'c'},
      {"shards", required_argument, 0, 'S'},  {"seconds", required_argument, 0, 't'},
      {"rounds", required_argument, 0, 'R'},  {"catchup-bytes", required_argument, 0, 'C'},
      {"durability", required_argument, 0, 'd'}, {"only", required_argument, 0, 'o'},
      {"label", required_argument, 0, 'L'},   {"json", no_argument, 0, 'j'},
      {"apis", required_argument, 0, 'A'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
    case 'r': o.runneld = optarg; break;
    case 's': o.record_size = (size_t)bench_parse_size(optarg); break;
    case 'b': o.batch = (unsigned)atoi(optarg); break;
    case 'c': o.conns = (unsigned)atoi(optarg); break;
    case 'S': o.shards = (unsigned)atoi(optarg); break;
    case 't': o.seconds = atof(optarg); break;
    case 'R': o.rounds = (unsigned)atoi(optarg); break;
    case 'C': o.catchup_bytes = !strcmp(optarg, "0") ? 0 : bench_parse_size(optarg); break;
    case 'd':
      if (rn_durability_parse(optarg, &o.durability)) {
        fprintf(stderr, "runnel-bench http: --durability must be sync, interval or none\n");
        return 2;
      }
      break;
    case 'o': o.only = optarg; break;
    case 'A':
      o.apis = (strstr(optarg, "put") ? 1u << API_PUT : 0) | (strstr(optarg, "rest") ? 1u << API_REST : 0) |
               (strstr(optarg, "v1") ? 1u << API_V1 : 0);
      break;
    case 'L': o.label = optarg; break;
    case 'j': o.json = true; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!o.record_size || o.record_size > (1u << 20) - 256 || !o.batch || o.batch > 500 || !o.conns || !o.apis ||
      o.conns > MAX_CONNS || !o.shards || o.seconds <= 0 || !o.rounds ||
      (o.only && strcmp(o.only, "ingest") && strcmp(o.only, "catchup"))) {
    fprintf(stderr, "runnel-bench http: invalid options (record-size 1..1M-256, batch 1..500, conns 1..%d, "
                    "--only ingest|catchup)\n", MAX_CONNS);
    return 2;
  }
  bool do_ingest = !o.only || !strcmp(o.only, "ingest");
  bool do_catchup = (!o.only || !strcmp(o.only, "catchup")) && o.catchup_bytes >= o.record_size;
  signal(SIGPIPE, SIG_IGN);

  char work[] = "/tmp/runnel-bench-http-XXXXXX";
  if (!mkdtemp(work)) {
    fprintf(stderr, "runnel-bench http: mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  unsigned nport = 0, hport = 0;
  pid_t pid = broker_start(&o, work, &nport, &hport);
  if (pid < 0) return 1;
  rn_client_t *cl = NULL;
  rn_client_conf_t cc;
  rn_client_conf_init(&cc);
  char addr[64];
  snprintf(addr, sizeof(addr), "127.0.0.1:%u", nport);
  cc.broker = addr;
  int rc = 1;
  row_t ing[API_N], gr = {0}, nat = {0};
  memset(ing, 0, sizeof(ing));
  double gr_mbps[64], nat_mbps[64];
  unsigned ncu = 0;
  uint64_t nrec = 0;
  double load0 = bench_loadavg1();
  if (rn_client_new(&cc, &cl)) {
    fprintf(stderr, "runnel-bench http: client: %s\n", rn_last_error_message());
    goto out;
  }
  if (do_ingest && make_stream(cl, "bench-http-ingest", o.shards, o.durability)) goto out;
  if (do_catchup) {
    if (make_stream(cl, "bench-http-catchup", 1, o.durability)) goto out;
    if (!o.json) fprintf(stderr, "runnel-bench http: pre-filling one shard with %" PRIu64 " MiB...\n", o.catchup_bytes >> 20);
    if (prefill(&o, cl, "bench-http-catchup", &nrec)) goto out;
  }
  for (unsigned r = 0; r < o.rounds; r++) {
    if (do_ingest)
      for (unsigned k = 0; k < API_N; k++) {
        api_t a = (api_t)((r + k) % API_N); /* each round starts with the next API */
        if ((o.apis >> a & 1) && ingest_round(&o, a, hport, pid, "bench-http-ingest", &ing[a])) goto out;
      }
    if (do_catchup && ncu < 64) {
      row_t g1 = {0}, n1 = {0};
      /* Alternate which goes first, so neither always reads a warmer cache. */
      if (r % 2 == 0) {
        if (catchup_getrecords(&o, hport, pid, "bench-http-catchup", nrec, &g1) ||
            catchup_native(cl, pid, "bench-http-catchup", nrec, &n1))
          goto out;
      } else {
        if (catchup_native(cl, pid, "bench-http-catchup", nrec, &n1) ||
            catchup_getrecords(&o, hport, pid, "bench-http-catchup", nrec, &g1))
          goto out;
      }
      gr_mbps[ncu] = (double)g1.bytes / g1.secs / 1e6;
      nat_mbps[ncu] = (double)n1.bytes / n1.secs / 1e6;
      ncu++;
      gr.secs += g1.secs, gr.server_cpu += g1.server_cpu, gr.client_cpu += g1.client_cpu;
      gr.records += g1.records, gr.bytes += g1.bytes;
      nat.secs += n1.secs, nat.server_cpu += n1.server_cpu, nat.client_cpu += n1.client_cpu;
      nat.records += n1.records, nat.bytes += n1.bytes;
    }
  }
  rc = 0;
out:
  rn_client_destroy(cl);
  int st = bench_proc_stop(pid, 30);
  if (st != 0) {
    fprintf(stderr, "runnel-bench http: runneld exited with status %d; see %s/runneld.log (kept)\n", st, work);
    rc = 1;
  } else {
    bench_rm_rf(work);
  }
  if (rc) return rc;

  double cpr[API_N];
  for (api_t a = 0; a < API_N; a++) cpr[a] = ing[a].records ? ing[a].server_cpu / (double)ing[a].records : 0;
  double gr_med = ncu ? bench_median(gr_mbps, ncu) : 0, nat_med = ncu ? bench_median(nat_mbps, ncu) : 0;
  double ratios[64];
  for (unsigned i = 0; i < ncu; i++) ratios[i] = gr_mbps[i] / nat_mbps[i];
  double ratio_med = ncu ? bench_median(ratios, ncu) : 0;
  if (o.json) {
    char rows[API_N + 2][600];
    for (api_t a = 0; a < API_N; a++) row_json(rows[a], sizeof(rows[a]), API_NAME[a], &ing[a]);
    row_json(rows[API_N], sizeof(rows[API_N]), "get_records", &gr);
    row_json(rows[API_N + 1], sizeof(rows[API_N + 1]), "native_consumer", &nat);
    char grl[1024], natl[1024];
    bench_json_list(grl, sizeof(grl), gr_mbps, ncu, 1);
    bench_json_list(natl, sizeof(natl), nat_mbps, ncu, 1);
    printf("{\"bench\":\"http\",\"label\":\"%s\",\"runneld\":\"%s\",\"record_size\":%zu,\"batch\":%u,\"conns\":%u,"
           "\"shards\":%u,\"seconds\":%.1f,\"rounds\":%u,\"durability\":\"%s\",\"catchup_bytes\":%" PRIu64
           ",\"loadavg1\":%.2f,",
           o.label, o.runneld, o.record_size, o.batch, o.conns, o.shards, o.seconds, o.rounds,
           rn_durability_name(o.durability), nrec * o.record_size, load0);
    if (do_ingest)
      printf("%s,%s,%s,\"rest_cpu_per_record_vs_put_records\":%.3f,\"v1_cpu_per_record_vs_put_records\":%.3f,", rows[0],
             rows[1], rows[2], cpr[API_PUT] > 0 ? cpr[API_REST] / cpr[API_PUT] : 0,
             cpr[API_PUT] > 0 ? cpr[API_V1] / cpr[API_PUT] : 0);
    if (do_catchup)
      printf("%s,%s,\"get_records_mb_per_s\":[%s],\"native_mb_per_s\":[%s],\"get_records_vs_native\":%.3f,", rows[3],
             rows[4], grl, natl, ratio_med);
    printf("\"ok\":true}\n");
  } else {
    printf("runnel-bench http: %s, %zu B records, batches of %u, %u connections, %u shards, %s, %u rounds\n",
           o.runneld, o.record_size, o.batch, o.conns, o.shards, rn_durability_name(o.durability), o.rounds);
    if (do_ingest) {
      printf("  %-14s %12s %10s %14s %12s %12s\n", "api", "records/s", "MB/s", "server us/rec", "server cores",
             "client cores");
      for (api_t a = 0; a < API_N; a++)
        if (ing[a].secs > 0)
          printf("  %-14s %12.0f %10.1f %14.3f %12.2f %12.2f%s\n", API_NAME[a], ing[a].records / ing[a].secs,
               (double)ing[a].bytes / ing[a].secs / 1e6, cpr[a] * 1e6, ing[a].server_cpu / ing[a].secs,
               ing[a].client_cpu / ing[a].secs, ing[a].failed ? " (some records failed)" : "");
      printf("  REST CPU/record / PutRecords CPU/record: %.3f (v1 batch: %.3f)\n", cpr[API_REST] / cpr[API_PUT],
             cpr[API_V1] / cpr[API_PUT]);
    }
    if (do_catchup) {
      printf("  catch-up of %" PRIu64 " MiB: GetRecords median %.1f MB/s (server %.2f cores, client %.2f), native "
             "%.1f MB/s (server %.2f, client %.2f)\n",
             (nrec * o.record_size) >> 20, gr_med, gr.server_cpu / gr.secs, gr.client_cpu / gr.secs, nat_med,
             nat.server_cpu / nat.secs, nat.client_cpu / nat.secs);
      printf("  GetRecords / native: %.3f (median of %u rounds)\n", ratio_med, ncu);
    }
  }
  return 0;
}
