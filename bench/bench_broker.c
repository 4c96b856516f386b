/*
 * bench_broker.c — `runnel-bench broker`: N producers and M consumers on one
 * stream of S shards, through librunnel and a real runneld, compared in the
 * same run with the raw limit of the data directory's file system.
 *
 * What it owns and the rules it keeps:
 *   - By default it starts its own runneld (fork/exec of the built binary,
 *     127.0.0.1:0, --port-file, data in a fresh directory under --dir) and
 *     stops it by PID at the end (SIGTERM, then SIGKILL after 30 s); with
 *     --broker HOST:PORT it uses that broker instead.
 *   - Each producer is one application thread with its own client (one TCP
 *     connection, one librunnel I/O thread). Each record carries, in its
 *     first bytes, its *intended* send time (CLOCK_MONOTONIC, ns since the
 *     start of the bench), the producer index, a "measured" flag and a
 *     sequence number. At a fixed --rate the sends follow a fixed timeline
 *     (record i of a producer is due at start + i / rate_per_producer); a
 *     producer that falls behind sends at once and the lag counts in the
 *     latency (coordinated omission is not hidden). At max rate the intended
 *     time is the moment send() is called (a send blocked by back-pressure
 *     counts).
 *   - Publish latency = delivery callback − intended time (recorded on the
 *     producer's I/O thread); end-to-end = the consumer's poll returning the
 *     record − intended time. Both in µs into log-linear histograms.
 *   - Consumers: one rn_consumer per shard, spread round-robin over M
 *     threads (each with its own client), positioned at LATEST (resolved by
 *     a first fetch) before any record is produced.
 *   - The run alternates --rounds times a raw slice (pwrite + fdatasync of
 *     --raw-write-size bytes in a loop on a file next to the broker's data,
 *     same duration) and a broker slice, so drift on a shared machine hits
 *     both alike. After each broker slice every producer flushes and the
 *     bench waits until the consumers have read every acknowledged record
 *     before the next raw slice starts.
 *   - Throughput counts record data bytes (record_size per acknowledged
 *     record; keys and batch overhead not counted) over the broker slices,
 *     from the slice start until the last producer's flush returned. MB is
 *     10^6 bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "hist.h"
#include "runnel/runnel.h"

#ifndef RN_BENCH_RUNNELD
#define RN_BENCH_RUNNELD "runneld"
#endif

int rn_bench_broker(int argc, char **argv);

/* The first bytes of every record's data. */
#define PAYLOAD_HEADER 24 /* u64 intended ns | u32 producer | u32 flags | u64 seq */
#define FLAG_MEASURED 1u
#define NKEYS 4096
#define MAX_ROUNDS 64

/* ---- options ---------------------------------------------------------------- */

typedef struct bopts {
  const char *broker; /* NULL: start our own */
  const char *runneld;
  const char *dir;
  unsigned producers, consumers, shards; /* consumers: UINT32_MAX until given */
  size_t record_size;
  double rate; /* records/s, all producers; 0 = max */
  double duration_s, warmup_s;
  unsigned rounds;
  rn_durability_t durability;
  uint32_t linger_ms;
  uint32_t batch_bytes;
  uint64_t buffer_bytes;
  size_t raw_write_size; /* 0: = batch_bytes */
  uint32_t tick_us;      /* fixed rate: sends are released on this tick */
  int json;
} bopts_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: runnel-bench broker [options]\n"
          "\n"
          "N producers and M consumers on one stream of S shards through librunnel; publish and\n"
          "end-to-end latency, throughput, and the raw pwrite+fdatasync limit of the same file\n"
          "system measured in alternating rounds of the same run.\n"
          "\n"
          "  --broker HOST:PORT   use this broker (default: start runneld on 127.0.0.1:0 with\n"
          "                       data under --dir, stop it at the end)\n"
          "  --runneld PATH       runneld binary to start (default: the one built with this\n"
          "                       bench, or $RUNNELD)\n"
          "  --dir DIR            working directory: broker data and the raw-limit file go in a\n"
          "                       fresh subdirectory, removed at the end (default ./data)\n"
          "  --producers N        producer threads, one client each (default 1)\n"
          "  --consumers M        consumer threads; the S shard consumers are spread over them\n"
          "                       (default S: one thread per shard; 0: no consumers, no e2e)\n"
          "  --shards S           shards of the benchmark stream (default 8)\n"
          "  --record-size N      bytes of data per record, >= %d (default 1024)\n"
          "  --rate R             records/s over all producers; 0 = as fast as possible (default 0)\n"
          "  --duration SECS      measured broker time in all, split over the rounds (default 20)\n"
          "  --warmup SECS        unmeasured broker time before the first round (default 1)\n"
          "  --rounds N           alternate a raw slice and a broker slice N times (default 4)\n"
          "  --durability D       sync | interval | none (default sync)\n"
          "  --linger-ms N        producer linger (default 1)\n"
          "  --batch-bytes N      producer max batch bytes (default 1M; K/M suffixes)\n"
          "  --buffer-bytes N     producer max buffered bytes (default 64M)\n"
          "  --raw-write-size N   bytes per pwrite+fdatasync of the raw loop (default: --batch-bytes)\n"
          "  --tick-us N          fixed rate: a producer wakes at most every N us and sends what is\n"
          "                       due; the wait counts in the latency (default 200; 0 = per record)\n"
          "  --json               one JSON line instead of the summary\n",
          PAYLOAD_HEADER);
}


/* ---- time ------------------------------------------------------------------- */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t) {
  struct timespec ts = {.tv_sec = (time_t)(t / 1000000000), .tv_nsec = (long)(t % 1000000000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

static void sleep_ms(unsigned ms) { sleep_until_ns(now_ns() + (int64_t)ms * 1000000); }

/* CPU seconds (user + system) a process has used, from /proc; -1 if unknown. */
static double proc_cpu_s(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return -1;
  unsigned long ut = 0, st = 0;
  /* after ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* 1-minute load average (the machine is shared: printed with the results). */
static double loadavg1(void) {
  double l = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = -1;
    fclose(f);
  }
  return l;
}

static double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- histograms ----------------------------------------------------------------- */

static void hist_merge(hist_t *into, const hist_t *h) {
  for (unsigned i = 0; i < HIST_POW * HIST_SUB; i++) into->b[i] += h->b[i];
  into->count += h->count;
  if (h->max > into->max) into->max = h->max;
}

/* ---- the broker process ----------------------------------------------------------- */

typedef struct bproc {
  pid_t pid;
  char addr[64];
} bproc_t;

/* Start runneld with data in datadir, stderr to logpath, bound ports written
 * to portfile. Waits (polling the port file: startup only) until it listens
 * or exits. Returns 0 or -1 (message printed). */
static int broker_start(bproc_t *bp, const char *runneld, const char *datadir, const char *portfile,
                        const char *logpath) {
  memset(bp, 0, sizeof(*bp));
  unlink(portfile);
  const char *argv[] = {runneld,       "--data-dir", datadir,     "--listen",    "127.0.0.1:0", "--http",
                        "127.0.0.1:0", "--port-file", portfile, "--log-level", "warn",        NULL};
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "runnel-bench broker: fork: %s\n", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) dup2(fd, 2);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
    }
    execv(runneld, (char *const *)(uintptr_t)argv);
    fprintf(stderr, "exec %s: %s\n", runneld, strerror(errno));
    _exit(127);
  }
  bp->pid = pid;
  for (int i = 0; i < 6000; i++) { /* 30 s */
    FILE *f = fopen(portfile, "r");
    if (f) {
      unsigned native = 0, http = 0;
      int ok = fscanf(f, "%u %u", &native, &http) == 2;
      fclose(f);
      if (ok && native) {
        snprintf(bp->addr, sizeof(bp->addr), "127.0.0.1:%u", native);
        return 0;
      }
    }
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      bp->pid = 0;
      fprintf(stderr, "runnel-bench broker: %s exited during startup; see %s\n", runneld, logpath);
      return -1;
    }
    sleep_ms(5);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  bp->pid = 0;
  fprintf(stderr, "runnel-bench broker: %s did not listen within 30 s; see %s\n", runneld, logpath);
  return -1;
}

/* SIGTERM (SIGKILL after 30 s) and reap. Returns the exit status or -1. */
static int broker_stop(bproc_t *bp) {
  if (!bp->pid) return -1;
  kill(bp->pid, SIGTERM);
  int st = 0;
  for (int i = 0; i < 3000; i++) {
    pid_t r = waitpid(bp->pid, &st, WNOHANG);
    if (r == bp->pid) {
      bp->pid = 0;
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    if (r < 0 && errno != EINTR) break;
    sleep_ms(10);
  }
  kill(bp->pid, SIGKILL);
  waitpid(bp->pid, &st, 0);
  bp->pid = 0;
  return -1;
}

/* Batches the broker stored: walk every segment (<20 digits>.log) under the
 * data directory and follow the batch_length fields. */
static uint64_t g_scan_batches, g_scan_bytes;

static int scan_file(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
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
    g_scan_batches++;
    g_scan_bytes += len;
    pos += len;
  }
  close(fd);
  return 0;
}

/* ---- the raw limit ------------------------------------------------------------------- */

/* pwrite(write_size) + fdatasync in a loop for `seconds`, appending to a file
 * that is truncated every 256 MiB (the broker's segment size). Adds to
 * *bytes and *secs. Returns 0 or -1. */
static int raw_slice(const char *path, size_t write_size, double seconds, double *bytes, double *secs) {
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  char *buf = malloc(write_size);
  if (!buf) {
    close(fd);
    return -1;
  }
  for (size_t i = 0; i < write_size; i++) buf[i] = (char)('a' + i % 26);
  int64_t t0 = now_ns(), end = t0 + (int64_t)(seconds * 1e9);
  uint64_t off = 0, total = 0;
  int err = 0;
  while (!err && now_ns() < end) {
    if (pwrite(fd, buf, write_size, (off_t)off) != (ssize_t)write_size || fdatasync(fd)) {
      err = 1;
      break;
    }
    off += write_size;
    total += write_size;
    if (off >= (256u << 20)) {
      if (ftruncate(fd, 0)) err = 1;
      off = 0;
    }
  }
  double el = (double)(now_ns() - t0) / 1e9;
  free(buf);
  close(fd);
  unlink(path);
  if (err) return -1;
  *bytes += (double)total;
  *secs += el;
  return 0;
}

/* ---- shared state --------------------------------------------------------------------- */

typedef struct bench bench_t;

typedef struct bproducer {
  bench_t *b;
  unsigned idx;
  pthread_t th;
  rn_client_t *cl;
  rn_producer_t *p;
  uint8_t *payload;
  uint64_t seq;
  /* producer thread */
  uint64_t sent;
  rn_err_t send_err;
  char send_msg[256];
  /* I/O thread (delivery callbacks); read by main after a flush */
  hist_t pub;
  uint64_t acked, acked_measured, failed;
  rn_err_t first_fail;
} bproducer_t;

typedef struct bconsumer {
  bench_t *b;
  pthread_t th;
  rn_client_t *cl;
  rn_consumer_t **cs;
  size_t n;
  hist_t e2e;
  _Atomic uint64_t consumed; /* every record (warmup too) */
  uint64_t consumed_measured;
  uint64_t bad; /* records without our header */
  rn_err_t err;
  char msg[256];
} bconsumer_t;

struct bench {
  bopts_t o;
  const char *stream;
  int64_t base_ns; /* time zero of the intended timestamps */
  bproducer_t *prods;
  bconsumer_t *cons;
  char keys[NKEYS][16];
  uint8_t keylen[NKEYS];
  /* slice control (mu) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned gen;
  bool quit;
  int64_t slice_start, slice_end; /* ns since base */
  bool measured;
  unsigned done;
  atomic_bool stop_consumers;
};

/* The bench (one per process): the delivery callback finds its producer
 * through the index packed into the opaque value. */
static bench_t *g_bench;

/* opaque: producer index (bits 63..48) | measured (bit 47) | intended ns
 * since base (bits 46..0, ~39 h). */
static void *pack_opaque(unsigned idx, bool measured, int64_t t) {
  uint64_t v = (uint64_t)idx << 48 | (uint64_t)measured << 47 | ((uint64_t)t & ((1ull << 47) - 1));
  return (void *)(uintptr_t)v;
}

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  (void)shard;
  (void)offset;
  int64_t now = now_ns() - g_bench->base_ns;
  uint64_t v = (uint64_t)(uintptr_t)opaque;
  bproducer_t *pr = &g_bench->prods[v >> 48];
  if (err) {
    if (!pr->failed++) pr->first_fail = err;
    return;
  }
  pr->acked++;
  if (v >> 47 & 1) {
    int64_t t = (int64_t)(v & ((1ull << 47) - 1));
    pr->acked_measured++;
    hist_add(&pr->pub, now > t ? (uint64_t)(now - t) / 1000 : 0);
  }
}

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

/* One slice of sending: until end (ns since base), at the fixed rate or as
 * fast as possible. Producer thread. */
static void produce_slice(bproducer_t *pr, int64_t start, int64_t end, bool measured) {
  bench_t *b = pr->b;
  double per = b->o.rate / b->o.producers;
  double interval = per > 0 ? 1e9 / per : 0;
  /* producers are staggered over one interval so they do not send in lockstep */
  double first = start + interval * pr->idx / b->o.producers;
  for (uint64_t i = 0;; i++) {
    int64_t now = now_ns() - b->base_ns, t;
    if (now >= end) break;
    if (interval > 0) {
      t = (int64_t)(first + interval * (double)i);
      if (t >= end) break;
      if (t > now) {
        /* one wake-up per tick, not per record (a sleep per record costs more
         * CPU than the broker at high rates); the delay is in the latency */
        int64_t tick = (int64_t)b->o.tick_us * 1000, wake = t;
        if (tick > 0) wake = (t + tick - 1) / tick * tick;
        sleep_until_ns(b->base_ns + wake);
      }
    } else {
      t = now;
    }
    uint64_t seq = pr->seq++;
    put_u64(pr->payload, (uint64_t)t);
    put_u32(pr->payload + 8, pr->idx);
    put_u32(pr->payload + 12, measured ? FLAG_MEASURED : 0);
    put_u64(pr->payload + 16, seq);
    unsigned k = (unsigned)((seq * 2654435761u + pr->idx) % NKEYS);
    rn_err_t err = rn_producer_send(pr->p, b->stream, b->keys[k], b->keylen[k], pr->payload, b->o.record_size,
                                    on_delivery, pack_opaque(pr->idx, measured, t));
    if (err) {
      if (!pr->send_err) {
        pr->send_err = err;
        snprintf(pr->send_msg, sizeof(pr->send_msg), "%s", rn_last_error_message());
      }
      if (!rn_err_retriable(err)) break;
      continue;
    }
    pr->sent++;
  }
}

static void *producer_main(void *arg) {
  bproducer_t *pr = arg;
  bench_t *b = pr->b;
  unsigned seen = 0;
  prctl(PR_SET_TIMERSLACK, 1UL); /* precise wake-ups for the fixed-rate timeline */
  for (;;) {
    pthread_mutex_lock(&b->mu);
    while (b->gen == seen && !b->quit) pthread_cond_wait(&b->cv, &b->mu);
    if (b->quit) {
      pthread_mutex_unlock(&b->mu);
      return NULL;
    }
    seen = b->gen;
    int64_t start = b->slice_start, end = b->slice_end;
    bool measured = b->measured;
    pthread_mutex_unlock(&b->mu);

    produce_slice(pr, start, end, measured);
    rn_err_t err = rn_producer_flush(pr->p, 300000);
    if (err && !pr->send_err) {
      pr->send_err = err;
      snprintf(pr->send_msg, sizeof(pr->send_msg), "flush: %s", rn_last_error_message());
    }
    pthread_mutex_lock(&b->mu);
    b->done++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
  }
}

static void consume_record(bconsumer_t *cs, const rn_record_t *rec) {
  int64_t now = now_ns() - cs->b->base_ns;
  atomic_fetch_add_explicit(&cs->consumed, 1, memory_order_release);
  if (rec->value_len < PAYLOAD_HEADER) {
    cs->bad++;
    return;
  }
  int64_t t = (int64_t)get_u64(rec->value);
  if (get_u32(rec->value + 12) & FLAG_MEASURED) {
    cs->consumed_measured++;
    hist_add(&cs->e2e, now > t ? (uint64_t)(now - t) / 1000 : 0);
  }
}

static void *consumer_main(void *arg) {
  bconsumer_t *cs = arg;
  bool idle = false;
  while (!atomic_load(&cs->b->stop_consumers)) {
    bool got = false;
    for (size_t k = 0; k < cs->n; k++) {
      /* one consumer: a long poll; several: drain each without waiting, and
       * wait 1 ms per consumer only after a pass that found nothing */
      uint32_t wait = cs->n == 1 ? 200 : idle ? 1 : 0;
      const rn_record_t *rec;
      rn_err_t err;
      while ((err = rn_consumer_poll(cs->cs[k], wait, &rec)) == 0) {
        consume_record(cs, rec);
        got = true;
        wait = 0;
      }
      if (err != RN_EAGAIN && !cs->err) {
        cs->err = err;
        snprintf(cs->msg, sizeof(cs->msg), "%s", rn_last_error_message());
      }
      if (err != RN_EAGAIN && !rn_err_retriable(err)) return NULL;
    }
    idle = !got;
  }
  return NULL;
}

/* Acknowledged records so far (all producers). Main thread, between slices. */
static uint64_t total_acked(const bench_t *b) {
  uint64_t n = 0;
  for (unsigned i = 0; i < b->o.producers; i++) n += b->prods[i].acked;
  return n;
}

static uint64_t total_consumed(bench_t *b) {
  uint64_t n = 0;
  for (unsigned i = 0; i < b->o.consumers; i++) n += atomic_load_explicit(&b->cons[i].consumed, memory_order_acquire);
  return n;
}

/* Run one broker slice of `seconds`; returns its length in seconds (start
 * to the last flush returned). Main thread. */
static double broker_slice(bench_t *b, double seconds, bool measured) {
  int64_t start = now_ns() - b->base_ns + 2000000; /* 2 ms for the threads to wake */
  pthread_mutex_lock(&b->mu);
  b->slice_start = start;
  b->slice_end = start + (int64_t)(seconds * 1e9);
  b->measured = measured;
  b->done = 0;
  b->gen++;
  pthread_cond_broadcast(&b->cv);
  while (b->done < b->o.producers) pthread_cond_wait(&b->cv, &b->mu);
  pthread_mutex_unlock(&b->mu);
  return (double)(now_ns() - b->base_ns - start) / 1e9;
}

/* Wait until the consumers have read every acknowledged record (at most
 * 60 s). Returns the number still missing. */
static uint64_t wait_consumers(bench_t *b) {
  if (!b->o.consumers) return 0;
  uint64_t want = total_acked(b);
  for (int i = 0; i < 6000; i++) {
    if (total_consumed(b) >= want) return 0;
    sleep_ms(10);
  }
  uint64_t got = total_consumed(b);
  return got >= want ? 0 : want - got;
}

int rn_bench_broker(int argc, char **argv) {
  bench_t *b = calloc(1, sizeof(*b));
  if (!b) return 1;
  bopts_t *o = &b->o;
  *o = (bopts_t){.dir = "./data", .producers = 1, .shards = 8, .consumers = UINT32_MAX, .record_size = 1024, .duration_s = 20,
                 .warmup_s = 1, .rounds = 4, .durability = RN_DURABILITY_SYNC, .linger_ms = 1,
                 .batch_bytes = 1u << 20, .buffer_bytes = 64ull << 20, .tick_us = 200};
  const char *env = getenv("RUNNELD");
  o->runneld = env && *env ? env : RN_BENCH_RUNNELD;
  static const struct option lo[] = {
      {"broker", required_argument, 0, 'B'},       {"runneld", required_argument, 0, 'X'},
      {"dir", required_argument, 0, 'd'},          {"producers", required_argument, 0, 'p'},
      {"consumers", required_argument, 0, 'c'},    {"shards", required_argument, 0, 's'},
      {"record-size", required_argument, 0, 'r'},  {"rate", required_argument, 0, 'R'},
      {"duration", required_argument, 0, 't'},     {"warmup", required_argument, 0, 'w'},
      {"rounds", required_argument, 0, 'n'},       {"durability", required_argument, 0, 'D'},
      {"linger-ms", required_argument, 0, 'l'},    {"batch-bytes", required_argument, 0, 'b'},
      {"buffer-bytes", required_argument, 0, 'u'}, {"raw-write-size", required_argument, 0, 'W'},
      {"tick-us", required_argument, 0, 'T'},
      {"json", no_argument, 0, 'j'},               {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 'B': o->broker = optarg; break;
    case 'X': o->runneld = optarg; break;
    case 'd': o->dir = optarg; break;
    case 'p': o->producers = (unsigned)atoi(optarg); break;
    case 'c': o->consumers = (unsigned)atoi(optarg); break;
    case 's': o->shards = (unsigned)atoi(optarg); break;
    case 'r': o->record_size = (size_t)bench_parse_size(optarg); break;
    case 'R': o->rate = atof(optarg); break;
    case 't': o->duration_s = atof(optarg); break;
    case 'w': o->warmup_s = atof(optarg); break;
    case 'n': o->rounds = (unsigned)atoi(optarg); break;
    case 'D':
      if (!strcmp(optarg, "sync")) o->durability = RN_DURABILITY_SYNC;
      else if (!strcmp(optarg, "interval")) o->durability = RN_DURABILITY_INTERVAL;
      else if (!strcmp(optarg, "none")) o->durability = RN_DURABILITY_NONE;
      else {
        fprintf(stderr, "runnel-bench broker: --durability must be sync, interval or none\n");
        return 2;
      }
      break;
    case 'l': o->linger_ms = (uint32_t)atoi(optarg); break;
    case 'b': o->batch_bytes = (uint32_t)bench_parse_size(optarg); break;
    case 'u': o->buffer_bytes = bench_parse_size(optarg); break;
    case 'W': o->raw_write_size = (size_t)bench_parse_size(optarg); break;
    case 'T': o->tick_us = (uint32_t)atoi(optarg); break;
    case 'j': o->json = 1; break;
    case 'h': usage(stdout); free(b); return 0;
    default: usage(stderr); free(b); return 2;
    }
  }
  if (o->consumers == UINT32_MAX) o->consumers = o->shards;
  if (!o->raw_write_size) o->raw_write_size = o->batch_bytes;
  if (!o->producers || o->producers > 1024 || !o->shards || o->consumers > o->shards ||
      o->record_size < PAYLOAD_HEADER || o->record_size > (1u << 20) || o->rate < 0 || o->duration_s <= 0 ||
      o->warmup_s < 0 || !o->rounds || o->rounds > MAX_ROUNDS || !o->batch_bytes || !o->buffer_bytes ||
      !o->raw_write_size) {
    fprintf(stderr, "runnel-bench broker: invalid options (consumers <= shards, record-size in [%d, 1M], "
                    "duration > 0, 1 <= rounds <= %d)\n", PAYLOAD_HEADER, MAX_ROUNDS);
    free(b);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  g_bench = b;
  b->base_ns = now_ns();
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->cv, NULL);
  for (unsigned k = 0; k < NKEYS; k++) b->keylen[k] = (uint8_t)snprintf(b->keys[k], sizeof(b->keys[k]), "key-%u", k);

  int rc = 1;
  double load0 = loadavg1();
  bproc_t bp = {0};
  rn_client_t *admin = NULL;
  bool stream_made = false;
  unsigned nprod = 0, ncons_started = 0;
  char stream[64];
  snprintf(stream, sizeof(stream), "bench-%d-%lld", (int)getpid(), (long long)time(NULL));
  b->stream = stream;

  /* A fresh working directory: broker data, its log, the raw-limit file. */
  mkdir(o->dir, 0755);
  char work[4096], datadir[4200], portfile[4200], logpath[4200], rawpath[4200];
  snprintf(work, sizeof(work), "%s/bench-broker-XXXXXX", o->dir);
  if (!mkdtemp(work)) {
    fprintf(stderr, "runnel-bench broker: cannot create a directory under %s: %s\n", o->dir, strerror(errno));
    free(b);
    return 1;
  }
  snprintf(datadir, sizeof(datadir), "%s/data", work);
  snprintf(portfile, sizeof(portfile), "%s/ports", work);
  snprintf(logpath, sizeof(logpath), "%s/runneld.log", work);
  snprintf(rawpath, sizeof(rawpath), "%s/raw.dat", work);

  const char *addr = o->broker;
  if (!addr) {
    if (broker_start(&bp, o->runneld, datadir, portfile, logpath)) goto out;
    addr = bp.addr;
  }

  rn_client_conf_t cc;
  rn_client_conf_init(&cc);
  cc.broker = addr;
  rn_err_t err = rn_client_new(&cc, &admin);
  if (!err) {
    rn_stream_config_t sc = {.name = stream, .shard_count = o->shards, .retention_ms = 0, .retention_bytes = 0,
                             .durability = o->durability};
    err = rn_stream_create(admin, &sc, NULL);
  }
  if (err) {
    fprintf(stderr, "runnel-bench broker: create stream on %s: %s (%s) %s\n", addr, rn_strerror(err),
                    rn_err_name(err), rn_last_error_message());
    goto out;
  }
  stream_made = true;

  /* Consumers: created and positioned at LATEST before anything is produced. */
  b->cons = calloc(o->consumers, sizeof(*b->cons));
  for (unsigned i = 0; i < o->consumers; i++) {
    bconsumer_t *cs = &b->cons[i];
    cs->b = b;
    cs->cs = calloc(o->shards, sizeof(*cs->cs));
    if (rn_client_new(&cc, &cs->cl)) goto out;
  }
  for (unsigned s = 0; s < o->shards && o->consumers; s++) {
    bconsumer_t *cs = &b->cons[s % o->consumers];
    rn_consumer_t *cn;
    if (rn_consumer_new(cs->cl, stream, s, RN_POS_LATEST, 0, &cn)) goto out;
    cs->cs[cs->n++] = cn;
    const rn_record_t *rec;
    uint64_t pos;
    err = rn_consumer_poll(cn, 0, &rec);
    if ((err && err != RN_EAGAIN) || !rn_consumer_position(cn, &pos)) {
      fprintf(stderr, "runnel-bench broker: consumer of shard %u: %s %s\n", s, rn_strerror(err),
              rn_last_error_message());
      goto out;
    }
  }
  for (unsigned i = 0; i < o->consumers; i++, ncons_started++)
    if (pthread_create(&b->cons[i].th, NULL, consumer_main, &b->cons[i])) goto out;

  /* Producers: one client each. */
  b->prods = calloc(o->producers, sizeof(*b->prods));
  for (unsigned i = 0; i < o->producers; i++) {
    bproducer_t *pr = &b->prods[i];
    pr->b = b;
    pr->idx = i;
    pr->payload = malloc(o->record_size);
    for (size_t x = 0; x < o->record_size; x++) pr->payload[x] = (uint8_t)(x * 131 + i * 7 + 17);
    rn_producer_conf_t pc;
    rn_producer_conf_init(&pc);
    pc.linger_ms = o->linger_ms;
    pc.max_batch_bytes = o->batch_bytes;
    pc.max_buffered_bytes = o->buffer_bytes;
    err = rn_client_new(&cc, &pr->cl);
    if (!err) err = rn_producer_new(pr->cl, &pc, &pr->p);
    if (err) {
      fprintf(stderr, "runnel-bench broker: producer: %s %s\n", rn_strerror(err), rn_last_error_message());
      rn_client_destroy(pr->cl);
      pr->cl = NULL;
      goto out;
    }
    if (pthread_create(&pr->th, NULL, producer_main, pr)) goto out;
    nprod++;
  }

  /* Warm-up (unmeasured): connections, stream descriptions, page cache. */
  uint64_t missing = 0;
  if (o->warmup_s > 0) {
    broker_slice(b, o->warmup_s, false);
    missing += wait_consumers(b);
  }

  /* The rounds: raw slice, broker slice. */
  double slice_s = o->duration_s / o->rounds;
  double raw_bytes = 0, raw_secs = 0, el = 0, broker_cpu = 0, self_cpu = 0;
  double ratios[MAX_ROUNDS], raws[MAX_ROUNDS], mbs[MAX_ROUNDS];
  uint64_t acked_before = 0;
  for (unsigned r = 0; r < o->rounds; r++) {
    double rb = 0, rs = 0;
    if (raw_slice(rawpath, o->raw_write_size, slice_s, &rb, &rs)) {
      fprintf(stderr, "runnel-bench broker: raw loop on %s: %s\n", rawpath, strerror(errno));
      goto out;
    }
    raw_bytes += rb;
    raw_secs += rs;
    raws[r] = rb / rs / 1e6;
    uint64_t m0 = 0;
    for (unsigned i = 0; i < o->producers; i++) m0 += b->prods[i].acked_measured;
    double bc0 = bp.pid ? proc_cpu_s(bp.pid) : 0, sc0 = self_cpu_s();
    double sel = broker_slice(b, slice_s, true);
    double bc1 = bp.pid ? proc_cpu_s(bp.pid) : 0, sc1 = self_cpu_s();
    broker_cpu += bc1 - bc0;
    self_cpu += sc1 - sc0;
    uint64_t m1 = 0;
    for (unsigned i = 0; i < o->producers; i++) m1 += b->prods[i].acked_measured;
    el += sel;
    mbs[r] = (double)(m1 - m0) * (double)o->record_size / sel / 1e6;
    ratios[r] = raws[r] > 0 ? mbs[r] / raws[r] : 0;
    acked_before = m1;
    missing += wait_consumers(b);
  }

  /* Stop the threads. */
  atomic_store(&b->stop_consumers, true);
  pthread_mutex_lock(&b->mu);
  b->quit = true;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
  for (unsigned i = 0; i < nprod; i++) pthread_join(b->prods[i].th, NULL);
  for (unsigned i = 0; i < ncons_started; i++) pthread_join(b->cons[i].th, NULL);
  nprod = ncons_started = 0;

  /* Results. */
  hist_t *pub = calloc(1, sizeof(hist_t)), *e2e = calloc(1, sizeof(hist_t));
  uint64_t sent = 0, acked = 0, failed = 0, consumed = 0, consumed_m = 0, bad = 0;
  rn_err_t first_err = 0;
  const char *first_msg = "";
  for (unsigned i = 0; i < o->producers; i++) {
    bproducer_t *pr = &b->prods[i];
    hist_merge(pub, &pr->pub);
    sent += pr->sent;
    acked += pr->acked;
    failed += pr->failed;
    if (!first_err && pr->send_err) first_err = pr->send_err, first_msg = pr->send_msg;
    if (!first_err && pr->first_fail) first_err = pr->first_fail;
  }
  for (unsigned i = 0; i < o->consumers; i++) {
    bconsumer_t *cs = &b->cons[i];
    hist_merge(e2e, &cs->e2e);
    consumed += atomic_load(&cs->consumed);
    consumed_m += cs->consumed_measured;
    bad += cs->bad;
    if (!first_err && cs->err) first_err = cs->err, first_msg = cs->msg;
  }
  g_scan_batches = g_scan_bytes = 0;
  if (bp.pid) nftw(datadir, scan_file, 16, FTW_PHYS);
  double mean_batch = g_scan_batches ? (double)g_scan_bytes / (double)g_scan_batches : 0;

  double load1 = loadavg1();
  double mbps = (double)acked_before * (double)o->record_size / el / 1e6;
  double rps = (double)acked_before / el;
  double raw = raw_secs > 0 ? raw_bytes / raw_secs / 1e6 : 0;
  double ratio = raw > 0 ? mbps / raw : 0;
  double rmed = bench_median(ratios, o->rounds);
  char jr[MAX_ROUNDS * 16], jraw[MAX_ROUNDS * 16], jmb[MAX_ROUNDS * 16];
  bench_json_list(jr, sizeof(jr), ratios, o->rounds, 3);
  bench_json_list(jraw, sizeof(jraw), raws, o->rounds, 1);
  bench_json_list(jmb, sizeof(jmb), mbs, o->rounds, 1);
  const char *dname = o->durability == RN_DURABILITY_SYNC ? "sync"
                      : o->durability == RN_DURABILITY_INTERVAL ? "interval" : "none";
  uint64_t q[2][5] = {{hist_quantile(pub, 0.5), hist_quantile(pub, 0.99), hist_quantile(pub, 0.999), pub->max, 0},
                      {hist_quantile(e2e, 0.5), hist_quantile(e2e, 0.99), hist_quantile(e2e, 0.999), e2e->max, 0}};
  if (o->json) {
    printf("{\"bench\":\"broker\",\"broker\":\"%s\",\"durability\":\"%s\",\"producers\":%u,\"consumers\":%u,"
           "\"shards\":%u,\"record_size\":%zu,\"rate\":%.0f,\"duration_s\":%.1f,\"rounds\":%u,\"linger_ms\":%u,"
           "\"batch_bytes\":%u,\"buffer_bytes\":%" PRIu64 ",\"raw_write_size\":%zu,\"tick_us\":%u,"
           "\"records\":%" PRIu64 ",\"seconds\":%.3f,\"mb_per_s\":%.1f,\"records_per_s\":%.0f,"
           "\"raw_mb_per_s\":%.1f,\"ratio_to_raw\":%.3f,\"ratio_median\":%.3f,\"round_ratios\":[%s],"
           "\"round_mb_per_s\":[%s],\"round_raw_mb_per_s\":[%s],"
           "\"pub_p50_us\":%" PRIu64 ",\"pub_p99_us\":%" PRIu64 ",\"pub_p999_us\":%" PRIu64 ",\"pub_max_us\":%" PRIu64
           ",\"e2e_p50_us\":%" PRIu64 ",\"e2e_p99_us\":%" PRIu64 ",\"e2e_p999_us\":%" PRIu64 ",\"e2e_max_us\":%" PRIu64
           ",\"e2e_records\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"failed\":%" PRIu64
           ",\"consumed\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"bad\":%" PRIu64 ",\"error\":\"%s\","
           "\"broker_batches\":%" PRIu64 ",\"mean_batch_bytes\":%.0f,\"broker_cpu\":%.2f,\"client_cpu\":%.2f,\"loadavg_start\":%.2f,\"loadavg_end\":%.2f}\n",
           o->broker ? o->broker : "own", dname, o->producers, o->consumers, o->shards, o->record_size, o->rate,
           o->duration_s, o->rounds, o->linger_ms, o->batch_bytes, o->buffer_bytes, o->raw_write_size, o->tick_us, acked_before,
           el, mbps, rps, raw, ratio, rmed, jr, jmb, jraw, q[0][0], q[0][1], q[0][2], q[0][3], q[1][0], q[1][1],
           q[1][2], q[1][3], consumed_m, sent, acked, failed, consumed, missing, bad,
           first_err ? rn_err_name(first_err) : "", g_scan_batches, mean_batch,
           bp.pid && el > 0 ? broker_cpu / el : -1, el > 0 ? self_cpu / el : 0, load0, load1);
  } else {
    printf("runnel-bench broker: %s durability, %u shards, %u producer(s), %u consumer thread(s), broker %s\n", dname,
           o->shards, o->producers, o->consumers, o->broker ? o->broker : addr);
    if (o->rate > 0)
      printf("  load       fixed rate %.0f records/s of %zu B (latency from the intended send time; %u us tick)\n",
             o->rate, o->record_size, o->tick_us);
    else
      printf("  load       max rate, records of %zu B\n", o->record_size);
    printf("  producer   linger %u ms, batch %u B, buffer %" PRIu64 " B\n", o->linger_ms, o->batch_bytes,
           o->buffer_bytes);
    printf("  measured   %" PRIu64 " records acknowledged in %.2f s (%u rounds)\n", acked_before, el, o->rounds);
    printf("  broker     %.1f MB/s, %.0f records/s (per round: %s MB/s)\n", mbps, rps, jmb);
    printf("  raw limit  %.1f MB/s (pwrite %zu B + fdatasync each; per round: %s)\n", raw, o->raw_write_size, jraw);
    printf("  ratio      %.3f of the raw limit overall; median of rounds %.3f (rounds: %s)\n", ratio, rmed, jr);
    printf("  publish    p50 %" PRIu64 " us, p99 %" PRIu64 " us, p99.9 %" PRIu64 " us, max %" PRIu64 " us\n", q[0][0],
           q[0][1], q[0][2], q[0][3]);
    printf("  end-to-end p50 %" PRIu64 " us, p99 %" PRIu64 " us, p99.9 %" PRIu64 " us, max %" PRIu64
           " us (%" PRIu64 " records)\n", q[1][0], q[1][1], q[1][2], q[1][3], consumed_m);
    printf("  records    sent %" PRIu64 ", acknowledged %" PRIu64 ", failed %" PRIu64 ", consumed %" PRIu64
           ", missing %" PRIu64 "%s%s%s%s\n", sent, acked, failed, consumed, missing, first_err ? "; first error " : "",
           first_err ? rn_err_name(first_err) : "", *first_msg ? ": " : "", first_msg);
    if (bp.pid)
      printf("  broker     %" PRIu64 " batches stored, mean %.0f B; CPU %.2f cores (broker) + %.2f (bench) "
             "during the broker slices\n", g_scan_batches, mean_batch, el > 0 ? broker_cpu / el : 0,
             el > 0 ? self_cpu / el : 0);
    printf("  machine    %ld CPUs, load average %.2f at the start, %.2f at the end\n", sysconf(_SC_NPROCESSORS_ONLN),
           load0, load1);
  }
  free(pub);
  free(e2e);
  rc = failed || missing || bad ? 1 : 0;

out:
  if (nprod || ncons_started) {
    atomic_store(&b->stop_consumers, true);
    pthread_mutex_lock(&b->mu);
    b->quit = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    for (unsigned i = 0; i < nprod; i++) pthread_join(b->prods[i].th, NULL);
    for (unsigned i = 0; i < ncons_started; i++) pthread_join(b->cons[i].th, NULL);
  }
  if (b->prods) {
    for (unsigned i = 0; i < o->producers; i++) {
      rn_producer_destroy(b->prods[i].p);
      rn_client_destroy(b->prods[i].cl);
      free(b->prods[i].payload);
    }
    free(b->prods);
  }
  if (b->cons) {
    for (unsigned i = 0; i < o->consumers; i++) {
      for (size_t k = 0; k < b->cons[i].n; k++) rn_consumer_destroy(b->cons[i].cs[k]);
      free(b->cons[i].cs);
      rn_client_destroy(b->cons[i].cl);
    }
    free(b->cons);
  }
  if (stream_made) {
    rn_err_t derr = rn_stream_delete(admin, stream);
    if (derr) fprintf(stderr, "runnel-bench broker: delete stream %s: %s\n", stream, rn_strerror(derr));
  }
  rn_client_destroy(admin);
  if (bp.pid) {
    int st = broker_stop(&bp);
    if (st != 0) {
      fprintf(stderr, "runnel-bench broker: runneld exited with status %d; see %s (kept)\n", st, logpath);
      rc = 1;
    }
  }
  if (rc == 0) {
    char cmd[4400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
    if (system(cmd) != 0) fprintf(stderr, "runnel-bench broker: could not remove %s\n", work);
  } else {
    fprintf(stderr, "runnel-bench broker: working directory kept: %s\n", work);
  }
  pthread_mutex_destroy(&b->mu);
  pthread_cond_destroy(&b->cv);
  free(b);
  return rc;
}
