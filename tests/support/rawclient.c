/*
 * rawclient.c — see rawclient.h. Blocking sockets, one thread, no cleverness:
 * the point is to be obviously correct so that a failure means the broker
 * did something wrong. Every frame is read whole (length first, then body)
 * and unpacked with protobuf-c; the batch helpers use rn_proto's builder
 * and iterator (the storage format's reference codec).
 */
#include "rawclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "runnel/frame.h"
#include "testutil.h"

/* ---- connection ------------------------------------------------------------ */

int rn_raw_connect(rn_raw_t *c, uint16_t port) {
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  /* A broker that closes on us must show up as EPIPE, not kill the test. */
  signal(SIGPIPE, SIG_IGN);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct timeval tv = {.tv_sec = RN_RAW_RECV_TIMEOUT_S, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  c->fd = fd;
  return 0;
}

void rn_raw_close(rn_raw_t *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  for (size_t i = 0; i < c->nqueued; i++) rn_raw_free(c->queued[i]);
  free(c->queued);
  free(c->in);
  c->queued = NULL;
  c->in = NULL;
  c->nqueued = c->queued_cap = c->in_len = c->in_cap = 0;
}

int rn_raw_send_bytes(rn_raw_t *c, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

int rn_raw_send_payload(rn_raw_t *c, const void *payload, size_t len) {
  uint8_t hdr[RN_FRAME_HEADER_BYTES];
  rn_frame_put_header(hdr, (uint32_t)len);
  int rc = rn_raw_send_bytes(c, hdr, sizeof(hdr));
  return rc ? rc : rn_raw_send_bytes(c, payload, len);
}

uint64_t rn_raw_send(rn_raw_t *c, Runnel__Request *req) {
  req->correlation_id = ++c->next_corr;
  size_t n = rn_frame_encoded_len(&req->base);
  uint8_t *buf = malloc(n);
  if (!buf) return 0;
  size_t len = 0;
  rn_err_t err = rn_frame_encode(&req->base, buf, n, &len);
  int rc = err ? -EINVAL : rn_raw_send_bytes(c, buf, len);
  free(buf);
  return rc ? 0 : req->correlation_id;
}

void rn_raw_free(Runnel__Response *resp) {
  if (resp) runnel__response__free_unpacked(resp, NULL);
}

/* Read more bytes into c->in. Returns >0 bytes read, 0 at EOF/reset,
 * -ETIMEDOUT/-errno otherwise (c->eof set for EOF and errors). */
static ssize_t fill(rn_raw_t *c, size_t want) {
  if (c->in_cap - c->in_len < want) {
    size_t cap = c->in_cap ? c->in_cap : 65536;
    while (cap - c->in_len < want) cap *= 2;
    uint8_t *p = realloc(c->in, cap);
    if (!p) return -ENOMEM;
    c->in = p;
    c->in_cap = cap;
  }
  for (;;) {
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n > 0) {
      c->in_len += (size_t)n;
      return n;
    }
    if (n == 0) {
      c->eof = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -ETIMEDOUT;
    c->eof = true;
    return errno == ECONNRESET ? 0 : -errno;
  }
}

/* Read one whole frame and unpack it. NULL at EOF, on a timeout or when the
 * broker sent something that is not a Response (reported on stderr). */
static Runnel__Response *read_frame(rn_raw_t *c) {
  for (;;) {
    rn_frame_t f;
    size_t need = 0;
    rn_err_t err = rn_frame_decode(c->in, c->in_len, RN_FRAME_MAX_PAYLOAD, &f, &need);
    if (err == 0) {
      Runnel__Response *resp = runnel__response__unpack(NULL, f.payload_len, f.payload);
      if (!resp) fprintf(stderr, "rawclient: a %zu-byte frame from the broker is not a Response\n", f.payload_len);
      memmove(c->in, c->in + f.frame_len, c->in_len - f.frame_len);
      c->in_len -= f.frame_len;
      return resp;
    }
    if (err != RN_EPARTIAL || c->fd < 0 || c->eof) return NULL;
    size_t want = need > c->in_len ? need - c->in_len : 1;
    if (want < 4096) want = 4096;
    ssize_t n = fill(c, want);
    if (n == -ETIMEDOUT) {
      fprintf(stderr, "rawclient: no answer from the broker within %d s\n", RN_RAW_RECV_TIMEOUT_S);
      return NULL;
    }
    if (n <= 0) return NULL;
  }
}

static void enqueue(rn_raw_t *c, Runnel__Response *resp) {
  if (c->nqueued == c->queued_cap) {
    size_t nc = c->queued_cap ? c->queued_cap * 2 : 16;
    Runnel__Response **q = realloc(c->queued, nc * sizeof(*q));
    if (!q) abort();
    c->queued = q;
    c->queued_cap = nc;
  }
  c->queued[c->nqueued++] = resp;
}

static Runnel__Response *dequeue_at(rn_raw_t *c, size_t i) {
  Runnel__Response *r = c->queued[i];
  memmove(c->queued + i, c->queued + i + 1, (c->nqueued - i - 1) * sizeof(*c->queued));
  c->nqueued--;
  return r;
}

Runnel__Response *rn_raw_recv(rn_raw_t *c, uint64_t corr) {
  for (size_t i = 0; i < c->nqueued; i++)
    if (c->queued[i]->correlation_id == corr) return dequeue_at(c, i);
  for (;;) {
    Runnel__Response *resp = read_frame(c);
    if (!resp) return NULL;
    if (resp->correlation_id == corr) return resp;
    enqueue(c, resp);
  }
}

Runnel__Response *rn_raw_recv_any(rn_raw_t *c) {
  if (c->nqueued) return dequeue_at(c, 0);
  return read_frame(c);
}

bool rn_raw_wait_closed(rn_raw_t *c) {
  for (;;) {
    Runnel__Response *resp = read_frame(c);
    if (resp) {
      enqueue(c, resp);
      continue;
    }
    /* Not a Response, or a timeout: only an EOF (or reset) counts. */
    return c->eof;
  }
}

Runnel__Response *rn_raw_call(rn_raw_t *c, Runnel__Request *req) {
  uint64_t corr = rn_raw_send(c, req);
  return corr ? rn_raw_recv(c, corr) : NULL;
}

/* ---- requests ------------------------------------------------------------------ */

Runnel__Response *rn_raw_create(rn_raw_t *c, const char *name, uint32_t shards, Runnel__Durability durability) {
  Runnel__StreamConfig cfg = RUNNEL__STREAM_CONFIG__INIT;
  cfg.name = (char *)(uintptr_t)name;
  cfg.shard_count = shards;
  cfg.durability = durability;
  Runnel__CreateStreamRequest cr = RUNNEL__CREATE_STREAM_REQUEST__INIT;
  cr.config = &cfg;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_CREATE_STREAM;
  req.create_stream = &cr;
  return rn_raw_call(c, &req);
}

Runnel__Response *rn_raw_delete(rn_raw_t *c, const char *name) {
  Runnel__DeleteStreamRequest dr = RUNNEL__DELETE_STREAM_REQUEST__INIT;
  dr.name = (char *)(uintptr_t)name;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_DELETE_STREAM;
  req.delete_stream = &dr;
  return rn_raw_call(c, &req);
}

Runnel__Response *rn_raw_list(rn_raw_t *c) {
  Runnel__ListStreamsRequest lr = RUNNEL__LIST_STREAMS_REQUEST__INIT;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_LIST_STREAMS;
  req.list_streams = &lr;
  return rn_raw_call(c, &req);
}

Runnel__Response *rn_raw_describe(rn_raw_t *c, const char *name) {
  Runnel__DescribeStreamRequest dr = RUNNEL__DESCRIBE_STREAM_REQUEST__INIT;
  dr.name = (char *)(uintptr_t)name;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_DESCRIBE_STREAM;
  req.describe_stream = &dr;
  return rn_raw_call(c, &req);
}

Runnel__Response *rn_raw_set_retention(rn_raw_t *c, const char *name, int64_t retention_ms, int64_t retention_bytes) {
  Runnel__SetRetentionRequest sr = RUNNEL__SET_RETENTION_REQUEST__INIT;
  sr.name = (char *)(uintptr_t)name;
  sr.retention_ms = retention_ms;
  sr.retention_bytes = retention_bytes;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_SET_RETENTION;
  req.set_retention = &sr;
  return rn_raw_call(c, &req);
}

Runnel__Response *rn_raw_init_producer(rn_raw_t *c) {
  Runnel__InitProducerRequest ir = RUNNEL__INIT_PRODUCER_REQUEST__INIT;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_INIT_PRODUCER;
  req.init_producer = &ir;
  return rn_raw_call(c, &req);
}

static uint64_t send_produce(rn_raw_t *c, const char *stream, size_t n, const uint32_t *shards,
                             uint8_t *const *batches, const size_t *lens) {
  Runnel__ShardBatch *sb = calloc(n + 1, sizeof(*sb));
  Runnel__ShardBatch **sbp = calloc(n + 1, sizeof(*sbp));
  if (!sb || !sbp) abort();
  for (size_t i = 0; i < n; i++) {
    runnel__shard_batch__init(&sb[i]);
    sb[i].shard = shards[i];
    sb[i].batch.data = batches[i];
    sb[i].batch.len = lens[i];
    sbp[i] = &sb[i];
  }
  Runnel__ProduceRequest pr = RUNNEL__PRODUCE_REQUEST__INIT;
  pr.stream = (char *)(uintptr_t)stream;
  pr.n_batches = n;
  pr.batches = sbp;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_PRODUCE;
  req.produce = &pr;
  uint64_t corr = rn_raw_send(c, &req);
  free(sb);
  free(sbp);
  return corr;
}

Runnel__Response *rn_raw_produce(rn_raw_t *c, const char *stream, size_t n, const uint32_t *shards,
                                 uint8_t *const *batches, const size_t *lens) {
  uint64_t corr = send_produce(c, stream, n, shards, batches, lens);
  return corr ? rn_raw_recv(c, corr) : NULL;
}

uint64_t rn_raw_send_produce1(rn_raw_t *c, const char *stream, uint32_t shard, const uint8_t *batch, size_t len) {
  uint8_t *b = (uint8_t *)(uintptr_t)batch;
  return send_produce(c, stream, 1, &shard, &b, &len);
}

Runnel__Response *rn_raw_produce1(rn_raw_t *c, const char *stream, uint32_t shard, const uint8_t *batch, size_t len) {
  uint64_t corr = rn_raw_send_produce1(c, stream, shard, batch, len);
  return corr ? rn_raw_recv(c, corr) : NULL;
}

uint64_t rn_raw_send_fetch1(rn_raw_t *c, const char *stream, uint32_t shard, Runnel__PositionKind kind, int64_t value,
                            uint32_t max_wait_ms, uint32_t max_bytes) {
  Runnel__ShardFetch sf = RUNNEL__SHARD_FETCH__INIT;
  sf.shard = shard;
  sf.kind = kind;
  sf.value = value;
  Runnel__ShardFetch *sfp = &sf;
  Runnel__FetchRequest fr = RUNNEL__FETCH_REQUEST__INIT;
  fr.stream = (char *)(uintptr_t)stream;
  fr.n_shards = 1;
  fr.shards = &sfp;
  fr.max_wait_ms = max_wait_ms;
  fr.max_bytes = max_bytes;
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  req.op_case = RUNNEL__REQUEST__OP_FETCH;
  req.fetch = &fr;
  return rn_raw_send(c, &req);
}

Runnel__Response *rn_raw_fetch1(rn_raw_t *c, const char *stream, uint32_t shard, Runnel__PositionKind kind,
                                int64_t value, uint32_t max_wait_ms, uint32_t max_bytes) {
  uint64_t corr = rn_raw_send_fetch1(c, stream, shard, kind, value, max_wait_ms, max_bytes);
  return corr ? rn_raw_recv(c, corr) : NULL;
}

const Runnel__ShardBatchResult *rn_raw_produce_result(const Runnel__Response *resp) {
  if (!resp || resp->op_case != RUNNEL__RESPONSE__OP_PRODUCE || !resp->produce || resp->produce->n_results != 1)
    return NULL;
  return resp->produce->results[0];
}

const Runnel__ShardFetchResult *rn_raw_fetch_result(const Runnel__Response *resp) {
  if (!resp || resp->op_case != RUNNEL__RESPONSE__OP_FETCH || !resp->fetch || resp->fetch->n_results != 1) return NULL;
  return resp->fetch->results[0];
}

/* ---- batches ---------------------------------------------------------------------- */

uint8_t *rn_raw_batch(const rn_raw_rec_t *recs, size_t n, const rn_batch_producer_t *producer, size_t *len) {
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  for (size_t i = 0; i < n; i++) {
    rn_record_t r;
    memset(&r, 0, sizeof(r));
    r.timestamp = recs[i].ts;
    r.key = recs[i].key;
    r.key_len = recs[i].key_len;
    r.value = recs[i].value;
    r.value_len = recs[i].value_len;
    r.headers = recs[i].headers;
    r.header_count = recs[i].header_count;
    if (rn_batch_builder_add(&b, &r)) {
      rn_batch_builder_free(&b);
      return NULL;
    }
  }
  const uint8_t *out = NULL;
  size_t out_len = 0;
  uint8_t *copy = NULL;
  if (rn_batch_builder_finish(&b, RN_CODEC_NONE, producer, &out, &out_len) == 0) {
    copy = malloc(out_len);
    if (copy) {
      memcpy(copy, out, out_len);
      *len = out_len;
    }
  }
  rn_batch_builder_free(&b);
  return copy;
}

uint8_t *rn_raw_batch_strings(const char *const *values, size_t n, int64_t ts, const rn_batch_producer_t *producer,
                              size_t *len) {
  rn_raw_rec_t *recs = calloc(n, sizeof(*recs));
  char(*keys)[24] = calloc(n, sizeof(*keys));
  if (!recs || !keys) abort();
  for (size_t i = 0; i < n; i++) {
    snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
    recs[i].key = keys[i];
    recs[i].key_len = strlen(keys[i]);
    recs[i].value = values[i];
    recs[i].value_len = strlen(values[i]);
    recs[i].ts = ts + (int64_t)i;
  }
  uint8_t *b = rn_raw_batch(recs, n, producer, len);
  free(recs);
  free(keys);
  return b;
}

static void *dup_bytes(const uint8_t *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (!d) abort();
  if (n) memcpy(d, p, n);
  return d;
}

rn_err_t rn_raw_decode(const uint8_t *buf, size_t len, rn_raw_records_t *out) {
  size_t at = 0;
  while (at < len) {
    rn_batch_header_t h;
    size_t need = 0;
    rn_err_t err = rn_batch_verify(buf + at, len - at, &h, &need);
    if (err) return err == RN_EPARTIAL ? RN_ECORRUPT : err;
    rn_batch_iter_t it;
    err = rn_batch_iter_init(&it, buf + at, h.batch_length);
    if (err) return err;
    rn_record_t r;
    while ((err = rn_batch_iter_next(&it, &r)) == 0) {
      if (out->n == out->cap) {
        size_t nc = out->cap ? out->cap * 2 : 64;
        rn_raw_record_t *v = realloc(out->v, nc * sizeof(*v));
        if (!v) abort();
        out->v = v;
        out->cap = nc;
      }
      rn_raw_record_t *d = &out->v[out->n++];
      d->offset = r.offset;
      d->batch_base = h.base_offset;
      d->ts = r.timestamp;
      d->key = dup_bytes(r.key, r.key_len);
      d->key_len = r.key_len;
      d->value = dup_bytes(r.value, r.value_len);
      d->value_len = r.value_len;
      d->producer_id = h.producer_id;
      d->base_sequence = h.base_sequence;
    }
    rn_batch_iter_free(&it);
    if (err != RN_EOFFSET) return err;
    out->batches++;
    at += h.batch_length;
  }
  return 0;
}

int rn_raw_fetch_all(rn_raw_t *c, const char *stream, uint32_t shard, rn_raw_records_t *out) {
  Runnel__Response *resp =
      rn_raw_fetch1(c, stream, shard, RUNNEL__POSITION_KIND__POSITION_EARLIEST, 0, 0, 0);
  for (;;) {
    if (!resp) return -1;
    if (resp->error) {
      int code = (int)resp->error->code;
      rn_raw_free(resp);
      return code;
    }
    const Runnel__ShardFetchResult *r = rn_raw_fetch_result(resp);
    if (!r) {
      rn_raw_free(resp);
      return -1;
    }
    if (r->error) {
      int code = (int)r->error->code;
      rn_raw_free(resp);
      return code;
    }
    if (r->batches.len && rn_raw_decode(r->batches.data, r->batches.len, out)) {
      rn_raw_free(resp);
      return -1;
    }
    uint64_t next = r->next_offset, end = r->end_offset;
    bool empty = r->batches.len == 0;
    rn_raw_free(resp);
    if (next >= end || empty) return 0;
    resp = rn_raw_fetch1(c, stream, shard, RUNNEL__POSITION_KIND__POSITION_OFFSET, (int64_t)next, 0, 0);
  }
}

void rn_raw_records_free(rn_raw_records_t *r) {
  for (size_t i = 0; i < r->n; i++) {
    free(r->v[i].key);
    free(r->v[i].value);
  }
  free(r->v);
  memset(r, 0, sizeof(*r));
}

/* ---- fixture ---------------------------------------------------------------------------- */

int rn_raw_env_start(rn_raw_env_t *env, const char *const *extra) {
  memset(env, 0, sizeof(*env));
  env->c.fd = -1;
  env->root = rn_test_tmpdir();
  env->extra = extra;
  snprintf(env->data_dir, sizeof(env->data_dir), "%s/data", env->root);
  if (rn_test_broker_start(&env->broker, env->data_dir, extra)) return -1;
  return rn_raw_connect(&env->c, env->broker.port) ? -1 : 0;
}

int rn_raw_env_restart(rn_raw_env_t *env) {
  rn_raw_close(&env->c);
  if (rn_test_broker_start(&env->broker, env->data_dir, env->extra)) return -1;
  return rn_raw_connect(&env->c, env->broker.port) ? -1 : 0;
}

int rn_raw_env_stop(rn_raw_env_t *env) {
  rn_raw_close(&env->c);
  return rn_test_broker_stop(&env->broker);
}

/* Copy the broker's log to stderr: all of it when verbose, else only the
 * sanitizer reports (from the first report line to the end of the log),
 * so a broker that crashed explains itself in `ctest --output-on-failure`. */
static void show_log(const char *path, bool verbose) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  char line[1024];
  bool on = verbose;
  if (verbose) fprintf(stderr, "---- %s ----\n", path);
  while (fgets(line, sizeof(line), f)) {
    if (!on && (strstr(line, "ERROR: AddressSanitizer") || strstr(line, "ERROR: LeakSanitizer") ||
                strstr(line, "runtime error:") || strstr(line, "Assertion") || strstr(line, "ThreadSanitizer"))) {
      on = true;
      fprintf(stderr, "---- runneld reported (%s) ----\n", path);
    }
    if (on) fputs(line, stderr);
  }
  fclose(f);
}

void rn_raw_env_destroy(rn_raw_env_t *env) {
  rn_raw_close(&env->c);
  if (env->broker.pid) rn_test_broker_kill(&env->broker);
  const char *verbose = getenv("RUNNEL_TEST_VERBOSE");
  if (env->broker.log_path[0]) show_log(env->broker.log_path, verbose && *verbose);
  const char *keep = getenv("RUNNEL_TEST_KEEP");
  if (env->root && !(keep && *keep))
    rn_test_rmtree(env->root);
  else if (env->root)
    fprintf(stderr, "kept %s\n", env->root);
  free(env->root);
  env->root = NULL;
}

int rn_raw_cork(rn_raw_t *c, int on) {
  return setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on) == 0 ? 0 : -errno;
}
