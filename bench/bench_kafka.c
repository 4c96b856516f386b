/*
 * bench_kafka.c — `runnel-bench kafka`: the bench_load.c design against
 * Apache Kafka through librdkafka (Debian librdkafka-dev), so the row is
 * comparable with `broker`, `redis` and `nats`.
 *
 *   - Server: by default its own single Kafka broker in KRaft mode (one JVM,
 *     process.roles=broker,controller, node 1, a static one-voter quorum) on
 *     127.0.0.1 with two ports found free at run time (client, controller;
 *     retried on the rare race). The classpath is a directory of jars
 *     (--kafka-libs, default $RUNNEL_KAFKA_LIBS; bench/peers/kafka.sh
 *     fills one from Maven Central). The bench writes server.properties and
 *     a log4j2 config into the run's fresh directory, formats the log
 *     directory with kafka.tools.StorageTool (`format -t <random id> -c`),
 *     starts `java kafka.Kafka server.properties` (the JVM options of
 *     kafka-server-start.sh), waits for the client port and for the topic's
 *     leaders, and stops the JVM by PID (SIGTERM: Kafka shuts down cleanly
 *     and the JVM exits 143).
 *   - Durability: `--flush always` sets log.flush.interval.messages=1: the
 *     broker fsyncs a partition's log after every append, in the request
 *     handler, before it answers the produce request. `--flush default`
 *     keeps Kafka's defaults: acknowledged from the page cache, the OS
 *     writes back (Kafka's durability is replication; one broker has none).
 *   - Shards are the S partitions of one topic (replication factor 1). A
 *     producer (its own rd_kafka_t) sends to partition key % S with the key
 *     (like the other backends), acks=all, no compression, and the
 *     buffering of runnel's own producer (`runnel-bench broker` defaults):
 *     linger.ms=1, batches up to --batch-bytes (1 MiB), at most
 *     --buffer-bytes (64 MiB) queued or unacknowledged
 *     (queue.buffering.max.kbytes; when it is full the send polls until
 *     there is room, and that wait counts in the latency). librdkafka is a
 *     buffering client like librunnel, not a pipelining one like the Redis
 *     and NATS backends, so --inflight does not apply: measured here, a
 *     1024-record window held Kafka to ~8k records/s with ~0.5 s acks where
 *     the 64 MiB buffer reached ~180k (4 producers, 16 partitions).
 *     socket.nagle.disable=true on every client (librdkafka 2.0 leaves
 *     Nagle on; the Java clients and librunnel set TCP_NODELAY): with it
 *     on, small produce requests waited for delayed ACKs (p99 145 ms
 *     against 15 ms at 5k records/s on one partition).
 *     Delivery reports run on the producer's own thread (rd_kafka_poll in
 *     prod_wait/prod_send/flush) and read the intended time from the record.
 *   - Consumers: group g is the Kafka consumer group "g<g>-<pid>" and its M
 *     consumer threads are its members (subscribe; the group coordinator
 *     assigns the partitions, the classic protocol, librdkafka's default
 *     range assignor; offsets auto-committed every second: a checkpoint,
 *     not a per-record ack). The topic is new, so auto.offset.reset=earliest
 *     is its end before anything is produced; the last member's open waits
 *     until the group has settled (every partition assigned) so no
 *     rebalance falls into a measured slice.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_load.h"
#include "bench_util.h"

int rn_bench_kafka(int argc, char **argv);

#define POLL_BATCH 1000

typedef struct rkafka {
  const char *libs;  /* directory of the broker's jars */
  const char *java;  /* java binary */
  const char *flush; /* always | default */
  const char *heap;  /* -Xmx / -Xms */
  uint64_t buffer_bytes, batch_bytes; /* producer buffering, as runnel-bench broker */
  char bootstrap[64];
  char topic[64];
  char logpath[4200];
  rd_kafka_t *admin; /* a producer handle used for the admin calls */
} rkafka_t;

typedef struct rkprod {
  rd_kafka_t *rk;
  rd_kafka_topic_t *rkt;
} rkprod_t;

typedef struct rkcons {
  rd_kafka_t *rk;
} rkcons_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: runnel-bench kafka [options]\n"
          "\n"
          "The runnel-bench broker load against Apache Kafka through librdkafka: N producers over\n"
          "one topic of S partitions (acks=all, linger.ms=1), M members per consumer group;\n"
          "publish and end-to-end latency from the intended send time, throughput, and the raw\n"
          "limit. Starts its own single KRaft broker (broker+controller in one JVM).\n"
          "\n"
          "  --flush MODE         always (durable: log.flush.interval.messages=1, fsync per append\n"
          "                       before the ack) | default (Kafka's defaults: page cache) (default always)\n"
          "  --kafka-libs DIR     directory of the broker's jars (default $RUNNEL_KAFKA_LIBS;\n"
          "                       bench/peers/kafka.sh install prints one)\n"
          "  --java PATH          java binary (default: java on PATH)\n"
          "  --heap SIZE          broker JVM heap, -Xms and -Xmx (default 1G, as kafka-server-start.sh)\n"
          "  --batch-bytes N      producer batch.size (default 1M, as runnel-bench broker)\n"
          "  --buffer-bytes N     producer queue.buffering.max.kbytes in bytes (default 64M, as runnel-bench\n"
          "                       broker); --inflight does not apply to this backend\n"
          "  (--server HOST:PORT uses a running Kafka broker: its flush settings are its own)\n");
  bench_load_usage_common(out);
}

/* ---- librdkafka configuration ---------------------------------------------------- */

/* Set key=value pairs (NULL-terminated list) on conf; 0 or -1 (printed). */
static int conf_set(rd_kafka_conf_t *conf, const char *const *kv) {
  char err[512];
  for (; kv[0]; kv += 2)
    if (rd_kafka_conf_set(conf, kv[0], kv[1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      fprintf(stderr, "runnel-bench kafka: %s=%s: %s\n", kv[0], kv[1], err);
      return -1;
    }
  return 0;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *err, size_t cap) {
  rd_kafka_t *rk = rd_kafka_new(type, conf, err, cap);
  if (!rk) rd_kafka_conf_destroy(conf); /* rd_kafka_new owns conf only on success */
  return rk;
}

/* ---- server -------------------------------------------------------------------------- */

static bool port_open(unsigned port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

/* "kafka X" from the kafka_2.13-X.jar in the libs directory. */
static void libs_version(const char *libs, char *out, size_t cap) {
  DIR *d = opendir(libs);
  struct dirent *e;
  *out = 0;
  while (d && (e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (!strncmp(e->d_name, "kafka_2.13-", 11) && n > 15 && !strcmp(e->d_name + n - 4, ".jar") &&
        !strstr(e->d_name, "-test")) {
      snprintf(out, cap, "kafka %.*s (kafka_2.13, KRaft)", (int)(n - 15), e->d_name + 11);
      break;
    }
  }
  if (d) closedir(d);
}

/* A random cluster id: 16 bytes in URL-safe base64 without padding. */
static void cluster_id(char out[23]) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint8_t b[18] = {0};
  FILE *f = fopen("/dev/urandom", "rb");
  if (!f || fread(b, 1, 16, f) != 16)
    for (int i = 0; i < 16; i++) b[i] = (uint8_t)(bench_now_ns() >> (i % 8 * 8)) ^ (uint8_t)(i * 37 + getpid());
  if (f) fclose(f);
  for (int i = 0, o = 0; i < 18 && o < 22; i += 3) {
    uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
    for (int k = 3; k >= 0 && o < 22; k--) out[o++] = b64[(v >> (6 * k)) & 63];
  }
  out[22] = 0;
}

static int write_configs(bench_load_t *L, rkafka_t *rk, unsigned port, unsigned cport, char *props, size_t pcap,
                         char *log4j, size_t lcap) {
  snprintf(props, pcap, "%s/server.properties", L->work);
  snprintf(log4j, lcap, "%s/log4j2.properties", L->work);
  FILE *f = fopen(props, "w");
  if (!f) return -1;
  fprintf(f,
          "# written by runnel-bench kafka: one broker+controller on 127.0.0.1\n"
          "process.roles=broker,controller\nnode.id=1\n"
          "controller.quorum.voters=1@127.0.0.1:%u\n"
          "listeners=PLAINTEXT://127.0.0.1:%u,CONTROLLER://127.0.0.1:%u\n"
          "advertised.listeners=PLAINTEXT://127.0.0.1:%u\n"
          "controller.listener.names=CONTROLLER\n"
          "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
          "inter.broker.listener.name=PLAINTEXT\n"
          "log.dirs=%s/kafka-logs\n"
          "offsets.topic.replication.factor=1\ntransaction.state.log.replication.factor=1\n"
          "transaction.state.log.min.isr=1\nshare.coordinator.state.topic.replication.factor=1\n"
          "share.coordinator.state.topic.min.isr=1\n"
          "group.initial.rebalance.delay.ms=0\nauto.create.topics.enable=false\n"
          "%s",
          cport, port, cport, port, L->work,
          !strcmp(rk->flush, "always") ? "# durable row: fsync the partition's log after every append, before the ack\n"
                                         "log.flush.interval.messages=1\n"
                                       : "# relaxed row: Kafka's default flush policy (the OS writes back)\n");
  if (fclose(f)) return -1;
  f = fopen(log4j, "w");
  if (!f) return -1;
  fprintf(f, "status = warn\nappender.e.type = Console\nappender.e.name = E\nappender.e.target = SYSTEM_ERR\n"
             "appender.e.layout.type = PatternLayout\nappender.e.layout.pattern = [%%d] %%p %%m (%%c)%%n\n"
             "rootLogger.level = WARN\nrootLogger.appenderRef.e.ref = E\n"
             "logger.started.name = kafka.server.KafkaRaftServer\nlogger.started.level = INFO\n");
  return fclose(f) ? -1 : 0;
}

/* Run a command to completion (startup only, main thread); its exit status or -1. */
static int run_wait(const char *const *argv, const char *logpath) {
  pid_t pid = bench_proc_spawn("runnel-bench kafka", argv, logpath);
  if (pid < 0) return -1;
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int server_start(bench_load_t *L, rkafka_t *rk) {
  char props[4200], log4j[4200], cp[4200], l4[4300], heap_x[64], heap_s[64], cid[23];
  snprintf(rk->logpath, sizeof(rk->logpath), "%s/kafka.log", L->work);
  snprintf(cp, sizeof(cp), "%s/*", rk->libs);
  snprintf(heap_x, sizeof(heap_x), "-Xmx%s", rk->heap);
  snprintf(heap_s, sizeof(heap_s), "-Xms%s", rk->heap);
  for (int attempt = 0; attempt < 3; attempt++) {
    unsigned port = bench_free_port(), cport = bench_free_port();
    if (!port || !cport || port == cport) continue;
    if (write_configs(L, rk, port, cport, props, sizeof(props), log4j, sizeof(log4j))) return -1;
    snprintf(l4, sizeof(l4), "-Dlog4j2.configurationFile=%s", log4j);
    cluster_id(cid);
    char logs[4300];
    snprintf(logs, sizeof(logs), "%s/kafka-logs", L->work);
    bench_rm_rf(logs); /* a failed attempt's state; the format starts afresh */
    const char *fmt[] = {rk->java, l4, "-cp", cp, "kafka.tools.StorageTool", "format", "-t", cid, "-c", props, NULL};
    int st = run_wait(fmt, rk->logpath);
    if (st != 0) {
      fprintf(stderr, "runnel-bench kafka: StorageTool format exited with status %d; see %s\n", st, rk->logpath);
      return -1;
    }
    const char *argv[] = {rk->java, heap_x, heap_s, "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                          "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                          "-Djava.awt.headless=true", l4, "-cp", cp, "kafka.Kafka", props, NULL};
    pid_t pid = bench_proc_spawn("runnel-bench kafka", argv, rk->logpath);
    if (pid < 0) return -1;
    for (int i = 0; i < 2400; i++) { /* 120 s: a JVM on a loaded 2-core machine; startup only */
      if (port_open(port)) {
        L->server_pid = pid;
        snprintf(rk->bootstrap, sizeof(rk->bootstrap), "127.0.0.1:%u", port);
        snprintf(L->server_addr, sizeof(L->server_addr), "127.0.0.1:%u", port);
        return 0;
      }
      if (!bench_proc_alive(pid, NULL)) break;
      bench_sleep_ms(50);
    }
    if (bench_proc_alive(pid, NULL)) bench_proc_stop(pid, 10);
    fprintf(stderr, "runnel-bench kafka: the broker on port %u did not start; see %s%s\n", port, rk->logpath,
            attempt < 2 ? " (retrying on other ports)" : "");
  }
  return -1;
}

/* Create the topic (S partitions, replication 1) and wait for its leaders. */
static int make_topic(bench_load_t *L, rkafka_t *rk) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const char *kv[] = {"bootstrap.servers", rk->bootstrap, "client.id", "runnel-bench-admin", NULL};
  if (conf_set(conf, kv)) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  rk->admin = client_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (!rk->admin) {
    fprintf(stderr, "runnel-bench kafka: admin client: %s\n", err);
    return -1;
  }
  rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(rk->topic, (int)L->o.shards, 1, err, sizeof(err));
  if (!nt) {
    fprintf(stderr, "runnel-bench kafka: new topic: %s\n", err);
    return -1;
  }
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk->admin);
  rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk->admin, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(ao, 60000, err, sizeof(err));
  rd_kafka_CreateTopics(rk->admin, &nt, 1, ao, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 90000);
  int rc = -1;
  const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
  if (!ev) {
    fprintf(stderr, "runnel-bench kafka: create topic %s: no answer in 90 s\n", rk->topic);
  } else if (rd_kafka_event_error(ev)) {
    fprintf(stderr, "runnel-bench kafka: create topic %s: %s\n", rk->topic, rd_kafka_event_error_string(ev));
  } else if (res) {
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
    if (n == 1 && rd_kafka_topic_result_error(tr[0]) == RD_KAFKA_RESP_ERR_NO_ERROR) rc = 0;
    else
      fprintf(stderr, "runnel-bench kafka: create topic %s: %s\n", rk->topic,
              n ? rd_kafka_topic_result_error_string(tr[0]) : "no result");
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(ao);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  if (rc) return -1;
  /* every partition has a leader (polling metadata: setup only) */
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk->admin, rk->topic, NULL);
  for (int i = 0; i < 600; i++) {
    const struct rd_kafka_metadata *md = NULL;
    bool ready = false;
    if (rd_kafka_metadata(rk->admin, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 &&
        md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt == (int)L->o.shards) {
      ready = true;
      for (int p = 0; p < md->topics[0].partition_cnt; p++)
        if (md->topics[0].partitions[p].leader < 0 || md->topics[0].partitions[p].err) ready = false;
    }
    if (md) rd_kafka_metadata_destroy(md);
    if (ready) {
      rd_kafka_topic_destroy(rkt);
      return 0;
    }
    bench_sleep_ms(100);
  }
  rd_kafka_topic_destroy(rkt);
  fprintf(stderr, "runnel-bench kafka: topic %s has no leader for every partition after 60 s\n", rk->topic);
  return -1;
}

static int be_setup(bench_load_t *L) {
  rkafka_t *rk = L->be_state;
  snprintf(rk->topic, sizeof(rk->topic), "bench-%d-%lld", (int)getpid(), (long long)time(NULL));
  if (L->o.server) {
    snprintf(rk->bootstrap, sizeof(rk->bootstrap), "%s", L->o.server);
    snprintf(L->server_addr, sizeof(L->server_addr), "%s", L->o.server);
    snprintf(L->server_version, sizeof(L->server_version), "kafka (running broker)");
  } else {
    if (!rk->libs || !*rk->libs) {
      fprintf(stderr, "runnel-bench kafka: BLOCKED: no broker classpath: pass --kafka-libs DIR or set "
                      "RUNNEL_KAFKA_LIBS (bench/peers/kafka.sh install fetches one from Maven Central)\n");
      return 3;
    }
    libs_version(rk->libs, L->server_version, sizeof(L->server_version));
    if (!*L->server_version) {
      fprintf(stderr, "runnel-bench kafka: BLOCKED: no kafka_2.13-*.jar in %s\n", rk->libs);
      return 3;
    }
    if (server_start(L, rk)) return -1;
  }
  return make_topic(L, rk);
}

static void be_teardown(bench_load_t *L, int *rc) {
  rkafka_t *rk = L->be_state;
  if (rk->admin && L->o.server) { /* a running broker: delete our topic */
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(rk->topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk->admin);
    rd_kafka_DeleteTopics(rk->admin, &dt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy(dt);
  }
  if (rk->admin) {
    rd_kafka_destroy(rk->admin);
    rk->admin = NULL;
  }
  if (L->server_pid) {
    int st = bench_proc_stop(L->server_pid, 60);
    L->server_pid = 0;
    if (st != 0 && st != 143) { /* the JVM exits 128+SIGTERM after Kafka's clean shutdown */
      fprintf(stderr, "runnel-bench kafka: the broker exited with status %d; see %s\n", st, rk->logpath);
      *rc = 1;
    }
  }
}

/* ---- producers ----------------------------------------------------------------------------- */

/* Delivery report: on the thread that calls rd_kafka_poll/flush, i.e. the
 * producer's own. The payload (copied at produce) is still ours here. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  bench_prod_t *pr = opaque;
  if (!m->err && m->payload && m->len >= BENCH_PAYLOAD_HEADER) {
    bench_prod_acked(pr, bench_payload_time(m->payload), bench_payload_measured(m->payload));
  } else {
    bench_prod_failed(pr, m->err ? rd_kafka_err2name(m->err) : "KAFKA_BAD_REPORT");
    if (m->err) bench_prod_error(pr, rd_kafka_err2name(m->err), "delivery: %s", rd_kafka_err2str(m->err));
  }
}

static int be_prod_open(bench_prod_t *pr) {
  rkafka_t *rk = pr->L->be_state;
  rkprod_t *rp = calloc(1, sizeof(*rp));
  if (!rp) return -1;
  pr->ctx = rp;
  char kbytes[24], msgs[24], batch[24], id[32], err[512];
  uint64_t m = rk->buffer_bytes / pr->L->o.record_size + 1;
  snprintf(kbytes, sizeof(kbytes), "%" PRIu64, (rk->buffer_bytes + 1023) / 1024);
  snprintf(msgs, sizeof(msgs), "%" PRIu64, m > 10000000 ? 10000000 : m); /* the byte limit binds */
  snprintf(batch, sizeof(batch), "%" PRIu64, rk->batch_bytes);
  snprintf(id, sizeof(id), "runnel-bench-p%u", pr->idx);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const char *kv[] = {"bootstrap.servers", rk->bootstrap, "client.id", id, "acks", "all", "linger.ms", "1",
                      "compression.type", "none", "queue.buffering.max.kbytes", kbytes,
                      "queue.buffering.max.messages", msgs, "batch.size", batch, "socket.nagle.disable", "true",
                      "message.timeout.ms", "300000", NULL};
  if (conf_set(conf, kv)) {
    rd_kafka_conf_destroy(conf);
    bench_prod_error(pr, "KAFKA_CONF", "producer configuration");
    return -1;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, pr);
  rp->rk = client_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (!rp->rk) {
    bench_prod_error(pr, "KAFKA_CLIENT", "%s", err);
    return -1;
  }
  rp->rkt = rd_kafka_topic_new(rp->rk, rk->topic, NULL);
  if (!rp->rkt) {
    bench_prod_error(pr, rd_kafka_err2name(rd_kafka_last_error()), "topic handle");
    return -1;
  }
  return 0;
}

static int be_prod_send(bench_prod_t *pr, unsigned key, const uint8_t *data, size_t len, int64_t t, bool measured) {
  (void)t;
  (void)measured; /* both travel in the record's header */
  bench_load_t *L = pr->L;
  rkprod_t *rp = pr->ctx;
  int32_t part = (int32_t)(key % L->o.shards);
  while (rd_kafka_produce(rp->rkt, part, RD_KAFKA_MSG_F_COPY, (void *)(uintptr_t)data, len /* copied, not written */, L->keys[key], L->keylen[key],
                          NULL) == -1) {
    rd_kafka_resp_err_t e = rd_kafka_last_error();
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      bench_prod_error(pr, rd_kafka_err2name(e), "produce: %s", rd_kafka_err2str(e));
      return BENCH_SEND_FATAL;
    }
    rd_kafka_poll(rp->rk, 1); /* back-pressure: --buffer-bytes outstanding */
  }
  rd_kafka_poll(rp->rk, 0);
  return BENCH_SEND_OK;
}

static void be_prod_wait(bench_prod_t *pr, int64_t until) {
  rkprod_t *rp = pr->ctx;
  for (;;) {
    int64_t left = until - bench_now_ns();
    if (left <= 0) return;
    if (left < 1000000) { /* rd_kafka_poll waits in whole milliseconds */
      rd_kafka_poll(rp->rk, 0);
      bench_sleep_until_ns(until);
      return;
    }
    rd_kafka_poll(rp->rk, (int)(left / 1000000));
  }
}

static int be_prod_flush(bench_prod_t *pr) {
  rkprod_t *rp = pr->ctx;
  rd_kafka_resp_err_t e = rd_kafka_flush(rp->rk, 300000);
  if (e) bench_prod_error(pr, rd_kafka_err2name(e), "flush: %s", rd_kafka_err2str(e));
  return e ? -1 : 0;
}

static void be_prod_close(bench_prod_t *pr) {
  rkprod_t *rp = pr->ctx;
  if (!rp) return;
  if (rp->rkt) rd_kafka_topic_destroy(rp->rkt);
  if (rp->rk) rd_kafka_destroy(rp->rk);
  free(rp);
  pr->ctx = NULL;
}

/* ---- consumers ------------------------------------------------------------------------------ */

/* Partitions currently assigned to a member; -1 on error. */
static int assigned(rd_kafka_t *rk) {
  rd_kafka_topic_partition_list_t *pl = NULL;
  if (rd_kafka_assignment(rk, &pl) || !pl) return -1;
  int n = pl->cnt;
  rd_kafka_topic_partition_list_destroy(pl);
  return n;
}

/* Poll the members of one group (main thread, before their threads start)
 * until their assignments cover every partition. Nothing has been produced
 * yet, so no record can arrive here. */
static int settle_group(bench_cons_t *first, unsigned n, unsigned shards) {
  for (int i = 0; i < 1200; i++) { /* 60 s */
    int total = 0;
    bool all = true;
    for (unsigned k = 0; k < n; k++) {
      rkcons_t *rc = first[k].ctx;
      rd_kafka_message_t *m = rd_kafka_consumer_poll(rc->rk, 50 / (int)n + 1);
      if (m) {
        if (!m->err) bench_cons_record(&first[k], m->payload, m->len);
        rd_kafka_message_destroy(m);
      }
      int a = assigned(rc->rk);
      if (a <= 0) all = false;
      else total += a;
    }
    if (all && total == (int)shards) return 0;
  }
  return -1;
}

static int be_cons_open(bench_cons_t *cs, const unsigned *shards, unsigned n) {
  (void)shards;
  (void)n; /* the group coordinator assigns the partitions */
  bench_load_t *L = cs->L;
  rkafka_t *rk = L->be_state;
  rkcons_t *rc = calloc(1, sizeof(*rc));
  if (!rc) return -1;
  cs->ctx = rc;
  char group[32], id[48], err[512];
  snprintf(group, sizeof(group), "g%u-%d", cs->group, (int)getpid());
  snprintf(id, sizeof(id), "runnel-bench-g%u-c%u", cs->group, cs->idx);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  const char *kv[] = {"bootstrap.servers", rk->bootstrap, "client.id", id, "group.id", group,
                      "auto.offset.reset", "earliest", "enable.auto.commit", "true",
                      "auto.commit.interval.ms", "1000", "session.timeout.ms", "10000",
                      "heartbeat.interval.ms", "1000", "enable.partition.eof", "false",
                      "socket.nagle.disable", "true", NULL};
  if (conf_set(conf, kv)) {
    rd_kafka_conf_destroy(conf);
    bench_cons_error(cs, "KAFKA_CONF", "consumer configuration");
    return -1;
  }
  rc->rk = client_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!rc->rk) {
    bench_cons_error(cs, "KAFKA_CLIENT", "%s", err);
    return -1;
  }
  rd_kafka_poll_set_consumer(rc->rk);
  rd_kafka_topic_partition_list_t *pl = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(pl, rk->topic, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(rc->rk, pl);
  rd_kafka_topic_partition_list_destroy(pl);
  if (e) {
    bench_cons_error(cs, rd_kafka_err2name(e), "subscribe: %s", rd_kafka_err2str(e));
    return -1;
  }
  if (cs->idx + 1 == L->o.consumers && settle_group(cs - cs->idx, L->o.consumers, L->o.shards)) {
    bench_cons_error(cs, "KAFKA_GROUP", "group %s did not assign all %u partitions within 60 s", group,
                     L->o.shards);
    return -1;
  }
  return 0;
}

static int be_cons_poll(bench_cons_t *cs, bool idle) {
  (void)idle; /* the first poll of a call waits up to 100 ms: a long poll */
  rkcons_t *rc = cs->ctx;
  int got = 0;
  for (int i = 0; i < POLL_BATCH; i++) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rc->rk, i == 0 ? 100 : 0);
    if (!m) break;
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        bench_cons_error(cs, rd_kafka_err2name(m->err), "poll: %s", rd_kafka_message_errstr(m));
    } else {
      bench_cons_record(cs, m->payload, m->len);
      got++;
    }
    rd_kafka_message_destroy(m);
  }
  return got;
}

static void be_cons_close(bench_cons_t *cs) {
  rkcons_t *rc = cs->ctx;
  if (!rc) return;
  if (rc->rk) {
    rd_kafka_consumer_close(rc->rk);
    rd_kafka_destroy(rc->rk);
  }
  free(rc);
  cs->ctx = NULL;
}

static void be_json(bench_load_t *L, FILE *out) {
  rkafka_t *rk = L->be_state;
  fprintf(out, ",\"acks\":\"all\",\"linger_ms\":1,\"batch_bytes\":%" PRIu64 ",\"buffer_bytes\":%" PRIu64
               ",\"librdkafka\":\"%s\"", rk->batch_bytes, rk->buffer_bytes, rd_kafka_version_str());
}

static void be_text(bench_load_t *L, FILE *out) {
  rkafka_t *rk = L->be_state;
  fprintf(out, "  producer   librdkafka %s, acks=all, linger.ms=1, batches <= %" PRIu64 " B, <= %" PRIu64
               " B queued/unacknowledged; consumer group members, auto-commit every 1 s\n", rd_kafka_version_str(),
          rk->batch_bytes, rk->buffer_bytes);
}

static const bench_backend_t k_backend = {
    .name = "kafka",
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

enum { OPT_FLUSH = 1, OPT_LIBS, OPT_JAVA, OPT_HEAP, OPT_BATCH, OPT_BUFFER };

static int on_opt(bench_load_t *L, int c, const char *arg) {
  rkafka_t *rk = L->be_state;
  switch (c) {
  case OPT_FLUSH:
    if (strcmp(arg, "always") && strcmp(arg, "default")) {
      fprintf(stderr, "runnel-bench kafka: --flush must be always or default\n");
      return 2;
    }
    rk->flush = arg;
    break;
  case OPT_LIBS: rk->libs = arg; break;
  case OPT_JAVA: rk->java = arg; break;
  case OPT_HEAP: rk->heap = arg; break;
  case OPT_BATCH:
  case OPT_BUFFER: {
    uint64_t v = bench_parse_size(arg);
    if (!v || v > (1ull << 40)) {
      fprintf(stderr, "runnel-bench kafka: bad size for --%s\n", c == OPT_BATCH ? "batch-bytes" : "buffer-bytes");
      return 2;
    }
    if (c == OPT_BATCH) rk->batch_bytes = v;
    else rk->buffer_bytes = v;
    break;
  }
  default: return 2;
  }
  return 0;
}

int rn_bench_kafka(int argc, char **argv) {
  static const struct option lo[] = {{"flush", required_argument, 0, OPT_FLUSH},
                                     {"kafka-libs", required_argument, 0, OPT_LIBS},
                                     {"java", required_argument, 0, OPT_JAVA},
                                     {"heap", required_argument, 0, OPT_HEAP},
                                     {"batch-bytes", required_argument, 0, OPT_BATCH},
                                     {"buffer-bytes", required_argument, 0, OPT_BUFFER},
                                     {0, 0, 0, 0}};
  bench_load_t *L = calloc(1, sizeof(*L));
  rkafka_t *rk = calloc(1, sizeof(*rk));
  if (!L || !rk) {
    free(L);
    free(rk);
    return 1;
  }
  bench_load_init(L, &k_backend);
  L->be_state = rk;
  L->system = "kafka";
  rk->java = "java";
  rk->flush = "always";
  rk->heap = "1G";
  rk->batch_bytes = 1u << 20;
  rk->buffer_bytes = 64u << 20;
  rk->libs = getenv("RUNNEL_KAFKA_LIBS");
  int rc = bench_load_parse(L, argc, argv, lo, on_opt, usage);
  if (!rc) {
    bool always = !strcmp(rk->flush, "always");
    L->durability = L->o.server ? "server's own" : always ? "flush_every_message" : "default";
    L->durable = !L->o.server && always;
    L->note = always ? "log.flush.interval.messages=1: fsync per partition append before the ack; one broker, "
                       "no replication"
                     : "Kafka defaults: acknowledged from the page cache, no fsync (durability is replication; "
                       "one broker has none)";
    if (L->o.groups > 1)
      L->note = always ? "log.flush.interval.messages=1; one Kafka consumer group per group"
                       : "Kafka defaults (page cache, no fsync); one Kafka consumer group per group";
    rc = bench_load_run(L);
  } else {
    rc = rc == 1 ? 0 : 2;
  }
  free(rk);
  free(L);
  return rc;
}
