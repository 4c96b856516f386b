/*
 * bench_redis.c — `runnel-bench redis`: the bench_load.c design against
 * Redis Streams through hiredis, so the row is comparable with `broker`.
 *
 *   - Server: by default its own redis-server on 127.0.0.1 (a port found
 *     free at run time; retried on the rare race), data in the run's fresh
 *     directory, `--appendonly yes --appendfsync always|everysec --save ''`,
 *     stopped by PID (SIGTERM: Redis fsyncs the AOF and exits 0).
 *   - Shards are S stream keys. A producer (its own connection, used only by
 *     its thread) pipelines `XADD key * d <record>`: commands are written in
 *     chunks of up to 64, at most --inflight are unanswered (then it blocks
 *     reading replies: that wait counts in the latency), and replies are
 *     read in order, so the reply at the head of the ring acknowledges the
 *     oldest pending record. While it waits for the next send time it
 *     polls the socket, so acknowledgements are timed when they arrive.
 *     With appendfsync always Redis writes and fsyncs the AOF before it
 *     replies to the commands of one event-loop pass: pipelining is its
 *     group commit.
 *   - Consumers: group g is a Redis consumer group "g<g>" on every key,
 *     created at `$` (the end) before anything is produced; a consumer thread
 *     reads its keys with one `XREADGROUP ... COUNT 1000 BLOCK 200 NOACK
 *     STREAMS k... > ...`. NOACK: no per-entry XACK (runnel's consumers do
 *     not acknowledge per record either; the group's last-delivered id is
 *     its checkpoint).
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_load.h"
#include "bench_util.h"

int rn_bench_redis(int argc, char **argv);

#define PIPE_CHUNK 64

typedef struct rredis {
  const char *bin;  /* redis-server */
  const char *fsync; /* always | everysec */
  char host[64];
  int port;
  char logpath[4200];
  char (*key)[48]; /* per shard */
} rredis_t;

typedef struct rpend {
  int64_t t;
  bool measured;
} rpend_t;

typedef struct rprod {
  redisContext *c;
  rpend_t *ring;
  uint32_t cap, head, n, unsent;
} rprod_t;

typedef struct rcons {
  redisContext *c;
  int argc;
  const char **argv;
  size_t *argvlen;
  char group[16], name[32];
} rcons_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: runnel-bench redis [options]\n"
          "\n"
          "The runnel-bench broker load against Redis Streams through hiredis: N producers\n"
          "pipelining XADD over S stream keys, M consumers per group with XREADGROUP; publish and\n"
          "end-to-end latency from the intended send time, throughput, and the raw limit.\n"
          "\n"
          "  --fsync MODE         always (durable: appendfsync always) | everysec (default always);\n"
          "                       both with appendonly yes and RDB snapshots off\n"
          "  --redis-server PATH  binary to start (default: redis-server on PATH)\n"
          "  (--server HOST:PORT uses a running Redis: its persistence settings are its own)\n");
  bench_load_usage_common(out);
}

static redisContext *connect_to(const rredis_t *rr) {
  struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
  return redisConnectWithTimeout(rr->host, rr->port, tv);
}

/* A command whose reply we only check for errors; 0 or -1 with msg set. */
static int simple(redisContext *c, char *msg, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  if (!r) {
    snprintf(msg, cap, "%s", c->errstr);
    return -1;
  }
  int rc = 0;
  if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9)) {
    snprintf(msg, cap, "%s", r->str);
    rc = -1;
  }
  freeReplyObject(r);
  return rc;
}

/* ---- server ---------------------------------------------------------------------- */

/* Start redis-server on a free port; wait (polling a connection: startup
 * only) until it answers PING. 0 or -1 (message printed). */
static int server_start(bench_load_t *L, rredis_t *rr) {
  char datadir[4200], port[16];
  snprintf(datadir, sizeof(datadir), "%s/redis", L->work);
  snprintf(rr->logpath, sizeof(rr->logpath), "%s/redis.log", L->work);
  if (mkdir(datadir, 0755) && errno != EEXIST) return -1;
  for (int attempt = 0; attempt < 3; attempt++) {
    rr->port = (int)bench_free_port();
    snprintf(port, sizeof(port), "%d", rr->port);
    const char *argv[] = {rr->bin, "--bind", "127.0.0.1", "--port", port, "--dir", datadir, "--save", "",
                          "--appendonly", "yes", "--appendfsync", rr->fsync, "--daemonize", "no",
                          "--logfile", rr->logpath, NULL};
    pid_t pid = bench_proc_spawn("runnel-bench redis", argv, rr->logpath);
    if (pid < 0) return -1;
    for (int i = 0; i < 3000; i++) { /* 15 s */
      redisContext *c = connect_to(rr);
      if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        redisFree(c);
        if (ok) {
          L->server_pid = pid;
          snprintf(L->server_addr, sizeof(L->server_addr), "127.0.0.1:%d", rr->port);
          return 0;
        }
      } else if (c) {
        redisFree(c);
      }
      if (!bench_proc_alive(pid, NULL)) break;
      bench_sleep_ms(5);
    }
    if (bench_proc_alive(pid, NULL)) bench_proc_stop(pid, 5);
    fprintf(stderr, "runnel-bench redis: redis-server on port %d did not start; see %s%s\n", rr->port,
            rr->logpath, attempt < 2 ? " (retrying on another port)" : "");
  }
  return -1;
}

static int be_setup(bench_load_t *L) {
  rredis_t *rr = L->be_state;
  if (L->o.server) {
    const char *colon = strrchr(L->o.server, ':');
    if (!colon || (size_t)(colon - L->o.server) >= sizeof(rr->host)) {
      fprintf(stderr, "runnel-bench redis: --server must be HOST:PORT\n");
      return -1;
    }
    memcpy(rr->host, L->o.server, (size_t)(colon - L->o.server));
    rr->host[colon - L->o.server] = 0;
    rr->port = atoi(colon + 1);
    snprintf(L->server_addr, sizeof(L->server_addr), "%s", L->o.server);
  } else {
    snprintf(rr->host, sizeof(rr->host), "127.0.0.1");
    if (server_start(L, rr)) return -1;
  }
  rr->key = calloc(L->o.shards, sizeof(*rr->key));
  if (!rr->key) return -1;
  for (unsigned s = 0; s < L->o.shards; s++)
    snprintf(rr->key[s], sizeof(rr->key[s]), "bench-%d-%lld:%u", (int)getpid(), (long long)time(NULL), s);
  redisContext *c = connect_to(rr);
  if (!c || c->err) {
    fprintf(stderr, "runnel-bench redis: connect %s: %s\n", L->server_addr, c ? c->errstr : "out of memory");
    redisFree(c);
    return -1;
  }
  redisReply *r = redisCommand(c, "INFO server");
  if (r && r->type == REDIS_REPLY_STRING) {
    const char *v = strstr(r->str, "redis_version:");
    if (v) snprintf(L->server_version, sizeof(L->server_version), "redis %.*s", (int)strcspn(v + 14, "\r\n"), v + 14);
  }
  freeReplyObject(r);
  redisFree(c);
  return 0;
}

static void be_teardown(bench_load_t *L, int *rc) {
  rredis_t *rr = L->be_state;
  if (L->o.server && rr->key) {
    redisContext *c = connect_to(rr);
    char msg[256];
    for (unsigned s = 0; c && !c->err && s < L->o.shards; s++) simple(c, msg, sizeof(msg), "DEL %s", rr->key[s]);
    redisFree(c);
  }
  if (L->server_pid) {
    int st = bench_proc_stop(L->server_pid, 60);
    L->server_pid = 0;
    if (st != 0) {
      fprintf(stderr, "runnel-bench redis: redis-server exited with status %d; see %s\n", st, rr->logpath);
      *rc = 1;
    }
  }
}

/* ---- producers ------------------------------------------------------------------------ */

static int be_prod_open(bench_prod_t *pr) {
  rredis_t *rr = pr->L->be_state;
  rprod_t *rp = calloc(1, sizeof(*rp));
  if (!rp) return -1;
  pr->ctx = rp;
  rp->cap = pr->L->o.inflight;
  rp->ring = calloc(rp->cap, sizeof(*rp->ring));
  rp->c = connect_to(rr);
  if (!rp->ring || !rp->c || rp->c->err) {
    bench_prod_error(pr, "REDIS_CONNECT", "%s", rp->c ? rp->c->errstr : "out of memory");
    return -1;
  }
  return 0;
}

/* Complete every reply already parsed or buffered. Producer thread. */
static int complete_buffered(bench_prod_t *pr) {
  rprod_t *rp = pr->ctx;
  for (;;) {
    void *v = NULL;
    if (redisGetReplyFromReader(rp->c, &v) != REDIS_OK) {
      bench_prod_error(pr, "REDIS_PROTOCOL", "%s", rp->c->errstr);
      return -1;
    }
    if (!v) return 0;
    redisReply *r = v;
    if (!rp->n) { /* a reply nobody asked for: protocol out of step */
      freeReplyObject(r);
      bench_prod_error(pr, "REDIS_PROTOCOL", "unexpected reply");
      return -1;
    }
    rpend_t p = rp->ring[rp->head];
    rp->head = (rp->head + 1) % rp->cap;
    rp->n--;
    if (r->type == REDIS_REPLY_ERROR) {
      bench_prod_failed(pr, "REDIS_ERR");
      bench_prod_error(pr, "REDIS_ERR", "%s", r->str);
    } else {
      bench_prod_acked(pr, p.t, p.measured);
    }
    freeReplyObject(r);
  }
}

/* Write every appended command. */
static int write_out(bench_prod_t *pr) {
  rprod_t *rp = pr->ctx;
  int done = 0;
  while (!done)
    if (redisBufferWrite(rp->c, &done) != REDIS_OK) {
      bench_prod_error(pr, "REDIS_IO", "write: %s", rp->c->errstr);
      return -1;
    }
  rp->unsent = 0;
  return 0;
}

/* Wait for replies until `until` (CLOCK_MONOTONIC ns; < 0: until one
 * arrives, 0: do not wait) and complete them. */
static int read_replies(bench_prod_t *pr, int64_t until) {
  rprod_t *rp = pr->ctx;
  struct pollfd pfd = {.fd = rp->c->fd, .events = POLLIN};
  for (;;) {
    struct timespec ts = {0, 0}, *tp = &ts;
    if (until < 0) {
      tp = NULL;
    } else if (until > 0) {
      int64_t left = until - bench_now_ns();
      if (left < 0) left = 0;
      ts.tv_sec = (time_t)(left / 1000000000);
      ts.tv_nsec = (long)(left % 1000000000);
    }
    int n = ppoll(&pfd, 1, tp, NULL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0; /* deadline */
    if (redisBufferRead(rp->c) != REDIS_OK) {
      bench_prod_error(pr, "REDIS_IO", "read: %s", rp->c->errstr);
      return -1;
    }
    if (complete_buffered(pr)) return -1;
    if (until < 0 || until == 0 || !rp->n) return 0;
  }
}

static int be_prod_send(bench_prod_t *pr, unsigned key, const uint8_t *data, size_t len, int64_t t, bool measured) {
  bench_load_t *L = pr->L;
  rredis_t *rr = L->be_state;
  rprod_t *rp = pr->ctx;
  if (rp->n == rp->cap) { /* back-pressure: the window is full */
    if (rp->unsent && write_out(pr)) return BENCH_SEND_FATAL;
    while (rp->n == rp->cap)
      if (read_replies(pr, -1)) return BENCH_SEND_FATAL;
  }
  if (redisAppendCommand(rp->c, "XADD %s * d %b", rr->key[key % L->o.shards], data, len) != REDIS_OK) {
    bench_prod_error(pr, "REDIS_IO", "%s", rp->c->errstr);
    return BENCH_SEND_FATAL;
  }
  rp->ring[(rp->head + rp->n) % rp->cap] = (rpend_t){.t = t, .measured = measured};
  rp->n++;
  if (++rp->unsent >= PIPE_CHUNK || L->o.rate > 0) {
    if (write_out(pr) || read_replies(pr, 0)) return BENCH_SEND_FATAL;
  }
  return BENCH_SEND_OK;
}

static void be_prod_wait(bench_prod_t *pr, int64_t until) {
  rprod_t *rp = pr->ctx;
  if (rp->unsent && write_out(pr)) return;
  while (rp->n && bench_now_ns() < until)
    if (read_replies(pr, until)) return;
  bench_sleep_until_ns(until);
}

static int be_prod_flush(bench_prod_t *pr) {
  rprod_t *rp = pr->ctx;
  if (rp->unsent && write_out(pr)) return -1;
  while (rp->n)
    if (read_replies(pr, -1)) return -1;
  return 0;
}

static void be_prod_close(bench_prod_t *pr) {
  rprod_t *rp = pr->ctx;
  if (!rp) return;
  if (rp->c) redisFree(rp->c);
  free(rp->ring);
  free(rp);
  pr->ctx = NULL;
}

/* ---- consumers ------------------------------------------------------------------------ */

static int be_cons_open(bench_cons_t *cs, const unsigned *shards, unsigned n) {
  rredis_t *rr = cs->L->be_state;
  rcons_t *rc = calloc(1, sizeof(*rc));
  if (!rc) return -1;
  cs->ctx = rc;
  snprintf(rc->group, sizeof(rc->group), "g%u", cs->group);
  snprintf(rc->name, sizeof(rc->name), "c%u", cs->idx);
  rc->c = connect_to(rr);
  if (!rc->c || rc->c->err) {
    bench_cons_error(cs, "REDIS_CONNECT", "%s", rc->c ? rc->c->errstr : "out of memory");
    return -1;
  }
  char msg[256];
  for (unsigned i = 0; i < n; i++)
    if (simple(rc->c, msg, sizeof(msg), "XGROUP CREATE %s %s $ MKSTREAM", rr->key[shards[i]], rc->group)) {
      bench_cons_error(cs, "REDIS_ERR", "XGROUP CREATE: %s", msg);
      return -1;
    }
  /* XREADGROUP GROUP g c COUNT 1000 BLOCK 200 NOACK STREAMS k1..kn >..> */
  rc->argc = 10 + 2 * (int)n;
  rc->argv = calloc((size_t)rc->argc, sizeof(char *));
  rc->argvlen = calloc((size_t)rc->argc, sizeof(size_t));
  if (!rc->argv || !rc->argvlen) return -1;
  const char *head[] = {"XREADGROUP", "GROUP", rc->group, rc->name, "COUNT", "1000", "BLOCK", "200", "NOACK",
                        "STREAMS"};
  for (int i = 0; i < 10; i++) rc->argv[i] = head[i];
  for (unsigned i = 0; i < n; i++) {
    rc->argv[10 + i] = rr->key[shards[i]];
    rc->argv[10 + n + i] = ">";
  }
  for (int i = 0; i < rc->argc; i++) rc->argvlen[i] = strlen(rc->argv[i]);
  return 0;
}

static int be_cons_poll(bench_cons_t *cs, bool idle) {
  (void)idle; /* one blocking call covers every key of the thread */
  rcons_t *rc = cs->ctx;
  redisReply *r = redisCommandArgv(rc->c, rc->argc, rc->argv, rc->argvlen);
  if (!r) {
    bench_cons_error(cs, "REDIS_IO", "%s", rc->c->errstr);
    return BENCH_POLL_FATAL;
  }
  int got = 0;
  if (r->type == REDIS_REPLY_ERROR) {
    bench_cons_error(cs, "REDIS_ERR", "%s", r->str);
    got = BENCH_POLL_RETRY;
  } else if (r->type == REDIS_REPLY_ARRAY) {
    /* [[key, [[id, [field, value]], ...]], ...] */
    for (size_t s = 0; s < r->elements; s++) {
      redisReply *st = r->element[s];
      if (st->type != REDIS_REPLY_ARRAY || st->elements != 2) continue;
      redisReply *ents = st->element[1];
      for (size_t e = 0; ents->type == REDIS_REPLY_ARRAY && e < ents->elements; e++) {
        redisReply *ent = ents->element[e];
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 || ent->element[1]->type != REDIS_REPLY_ARRAY ||
            ent->element[1]->elements != 2) {
          bench_cons_record(cs, (const uint8_t *)"", 0); /* counted as bad */
          continue;
        }
        redisReply *v = ent->element[1]->element[1];
        bench_cons_record(cs, (const uint8_t *)v->str, v->len);
        got++;
      }
    }
  }
  freeReplyObject(r);
  return got;
}

static void be_cons_close(bench_cons_t *cs) {
  rcons_t *rc = cs->ctx;
  if (!rc) return;
  if (rc->c) redisFree(rc->c);
  free(rc->argv);
  free(rc->argvlen);
  free(rc);
  cs->ctx = NULL;
}

static void be_json(bench_load_t *L, FILE *out) {
  fprintf(out, ",\"inflight\":%u,\"pipeline_chunk\":%d", L->o.inflight, PIPE_CHUNK);
}

static void be_text(bench_load_t *L, FILE *out) {
  fprintf(out, "  producer   pipelined XADD, chunks of %d, at most %u unanswered\n", PIPE_CHUNK, L->o.inflight);
}

static const bench_backend_t k_backend = {
    .name = "redis",
    .setup = be_setup,
    .teardown = be_teardown,
    .prod_open = be_prod_open,
    .prod_send = be_prod_send,
    .prod_wait = be_prod_wait,
    .prod_flush = be_prod_flush,
    .prod_close = be_prod_close,
    .cons_open = be_cons_open,
    .cons_poll = be_cons_poll,
    .cons_close = be_cons_close,
    .json_extra = be_json,
    .text_extra = be_text,
};

enum { OPT_FSYNC = 1, OPT_BIN };

static int on_opt(bench_load_t *L, int c, const char *arg) {
  rredis_t *rr = L->be_state;
  switch (c) {
  case OPT_FSYNC:
    if (strcmp(arg, "always") && strcmp(arg, "everysec")) {
      fprintf(stderr, "runnel-bench redis: --fsync must be always or everysec\n");
      return 2;
    }
    rr->fsync = arg;
    break;
  case OPT_BIN: rr->bin = arg; break;
  default: return 2;
  }
  return 0;
}

int rn_bench_redis(int argc, char **argv) {
  static const struct option lo[] = {{"fsync", required_argument, 0, OPT_FSYNC},
                                     {"redis-server", required_argument, 0, OPT_BIN},
                                     {0, 0, 0, 0}};
  bench_load_t *L = calloc(1, sizeof(*L));
  rredis_t *rr = calloc(1, sizeof(*rr));
  if (!L || !rr) {
    free(L);
    free(rr);
    return 1;
  }
  bench_load_init(L, &k_backend);
  L->be_state = rr;
  L->system = "redis";
  rr->bin = "redis-server";
  rr->fsync = "always";
  int rc = bench_load_parse(L, argc, argv, lo, on_opt, usage);
  if (!rc) {
    L->durability = L->o.server ? "server's own" : rr->fsync;
    L->durable = !L->o.server && !strcmp(rr->fsync, "always");
    if (L->o.groups > 1) L->note = "one Redis consumer group per group, each reading every key";
    rc = bench_load_run(L);
  } else {
    rc = rc == 1 ? 0 : 2;
  }
  free(rr->key);
  free(rr);
  free(L);
  return rc;
}
