/*
 * bench_load.h — the load generator shared by `runnel-bench broker`, `redis`
 * and `nats`: one design, several systems, so the rows are comparable.
 *
 * The driver owns the threads, the send timeline, the rounds and the results;
 * a backend (a table of functions, below) owns one system's client calls and
 * server process. Every record's data starts with a 24-byte header: the
 * *intended* send time (ns since the bench's time zero, CLOCK_MONOTONIC), the
 * producer index, flags (measured) and a sequence number. Publish latency =
 * acknowledgement − intended time; end-to-end = a consumer receiving the
 * record − intended time. At a fixed --rate record i of a producer is due at
 * start + i / rate_per_producer (producers staggered); a producer that falls
 * behind sends at once and the lag counts (coordinated omission is not
 * hidden). At max rate the intended time is when the send is issued, so
 * time blocked on back-pressure counts.
 *
 * The run alternates --rounds times a raw slice (pwrite + fdatasync of
 * --raw-write-size bytes in a loop, next to the server's data) and a system
 * slice of --duration / --rounds seconds. After each system slice every
 * producer flushes and the driver waits until every consumer group has read
 * every acknowledged record. With --backlog SIZE the run is a catch-up read
 * instead: fill SIZE bytes with no consumer running, then start the
 * consumers and time how long they take to read it all.
 *
 * Threads: producer i runs on its own thread with its own client; the
 * backend reports completions with bench_prod_acked()/bench_prod_failed()
 * from one thread per producer (its I/O thread, or the producer thread
 * itself). Consumer thread j of group g reads shards j, j+M, j+2M, ... with
 * its own client and reports records with bench_cons_record().
 */
#ifndef RN_BENCH_LOAD_H
#define RN_BENCH_LOAD_H

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "hist.h"

#define BENCH_PAYLOAD_HEADER 24 /* u64 intended ns | u32 producer | u32 flags | u64 seq */
#define BENCH_FLAG_MEASURED 1u
#define BENCH_NKEYS 4096
#define BENCH_MAX_ROUNDS 64

typedef struct bench_load bench_load_t;

/* Options every load subcommand takes (same names, same meaning). */
typedef struct bench_load_opts {
  const char *dir;       /* working directory (server data, raw-limit file) */
  const char *server;    /* HOST:PORT of a running server; NULL: start our own */
  unsigned producers, consumers, shards, groups;
  size_t record_size;
  double rate; /* records/s over all producers; 0 = max */
  double duration_s, warmup_s;
  unsigned rounds;
  size_t raw_write_size; /* 0: the backend's default */
  uint32_t tick_us;
  uint32_t inflight;      /* peers: max unacknowledged records per producer */
  uint64_t backlog_bytes; /* > 0: catch-up read of a backlog of this size */
  const char *label;      /* free text copied into the JSON row */
  int json;
} bench_load_opts_t;

typedef struct bench_prod {
  bench_load_t *L;
  unsigned idx;
  void *ctx; /* the backend's; prod_close frees it */
  pthread_t th;
  uint8_t *payload;
  uint64_t seq;
  /* producer thread */
  uint64_t sent;
  char err_name[48], err_msg[256]; /* first send/flush error */
  /* completion thread (one per producer); read by main after a flush */
  hist_t pub;
  uint64_t acked, acked_measured, failed;
  char fail_name[48];
} bench_prod_t;

typedef struct bench_cons {
  bench_load_t *L;
  unsigned idx, group;
  void *ctx; /* the backend's; cons_close frees it */
  pthread_t th;
  hist_t e2e;
  _Atomic uint64_t consumed; /* every record (warm-up too) */
  _Atomic int64_t last_ns;   /* when the last record arrived (ns since base) */
  uint64_t consumed_measured;
  uint64_t bad; /* records without our header */
  char err_name[48], err_msg[256];
} bench_cons_t;

/* What a send did. */
enum { BENCH_SEND_OK = 0, BENCH_SEND_RETRY = 1, BENCH_SEND_FATAL = -1 };
/* What a poll did: > 0 records delivered. */
enum { BENCH_POLL_EMPTY = 0, BENCH_POLL_RETRY = -1, BENCH_POLL_FATAL = -2 };

/* One system. Functions marked "main" run on the main thread; prod_* on the
 * producer's thread (after prod_open on main), cons_* on the consumer's
 * thread (after cons_open on main). Errors are recorded with
 * bench_prod_error()/bench_cons_error() before returning. */
typedef struct bench_backend {
  const char *name;              /* the JSON "bench" field */
  /* main: start the server (unless L->o.server), create the streams. 0/-1. */
  int (*setup)(bench_load_t *L);
  /* main: delete what setup made, stop the server; sets *rc = 1 on failure. */
  void (*teardown)(bench_load_t *L, int *rc);
  int (*prod_open)(bench_prod_t *pr); /* main; 0/-1 */
  /* Send one record asynchronously (data[len], key index in [0, NKEYS));
   * the completion calls bench_prod_acked/failed with t and measured. */
  int (*prod_send)(bench_prod_t *pr, unsigned key, const uint8_t *data, size_t len, int64_t t, bool measured);
  /* Wait until CLOCK_MONOTONIC reaches `until` (ns), handling completions
   * meanwhile; NULL: plain sleep (completions on another thread). */
  void (*prod_wait)(bench_prod_t *pr, int64_t until);
  int (*prod_flush)(bench_prod_t *pr); /* every sent record completed; 0/-1 */
  void (*prod_close)(bench_prod_t *pr); /* main; accepts a failed open */
  /* main: create the consumers of shards[0, n) for cs->group, positioned at
   * the end of the stream before anything is produced. 0/-1. */
  int (*cons_open)(bench_cons_t *cs, const unsigned *shards, unsigned n);
  /* Read what is there (waiting a little when `idle`: the previous call
   * found nothing); call bench_cons_record() per record. */
  int (*cons_poll)(bench_cons_t *cs, bool idle);
  void (*cons_close)(bench_cons_t *cs); /* main; accepts a failed open */
  /* Extra JSON fields (",\"k\":v" ...) and summary lines; may be NULL. */
  void (*json_extra)(bench_load_t *L, FILE *out);
  void (*text_extra)(bench_load_t *L, FILE *out);
} bench_backend_t;

struct bench_load {
  bench_load_opts_t o;
  const bench_backend_t *be;
  void *be_state;          /* the backend's, owned by it */
  const char *system;      /* "runnel", "redis", "nats" */
  const char *durability;  /* the system's own name for the mode */
  bool durable;            /* acknowledged only after fdatasync/fsync */
  const char *note;        /* "" or what differs from the workload's letter */
  pid_t server_pid;        /* own server (0: none): its CPU is measured */
  char server_addr[128];   /* HOST:PORT the clients use */
  char work[4096];         /* fresh working directory under o.dir */
  char server_version[128];
  int64_t base_ns;         /* time zero of the intended timestamps */
  char keys[BENCH_NKEYS][16];
  uint8_t keylen[BENCH_NKEYS];
  /* driver state */
  bench_prod_t *prods;
  bench_cons_t *cons; /* groups * consumers */
  unsigned ncons;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned gen;
  bool quit;
  int64_t slice_start, slice_end; /* ns since base */
  uint64_t slice_records;         /* per producer; 0 = unlimited */
  bool measured;
  unsigned done;
  atomic_bool stop_consumers;
  bool no_e2e; /* catch-up: the records' age is not a latency */
};

/* Initialise L with the defaults (and the backend); argv parsing follows. */
void bench_load_init(bench_load_t *L, const bench_backend_t *be);
/* Parse the common options plus `extra` (handled by on_opt, which returns 0,
 * or 2 for a bad value). usage(out) prints the whole help. Returns 0 to run,
 * 1 after --help, 2 on a usage error (message printed). */
int bench_load_parse(bench_load_t *L, int argc, char **argv, const struct option *extra,
                     int (*on_opt)(bench_load_t *L, int c, const char *arg), void (*usage)(FILE *out));
/* Help text of the common options. */
void bench_load_usage_common(FILE *out);
/* Run the benchmark and print the results; returns the exit status (0: every
 * record acknowledged and consumed; 1: not; the working directory is kept
 * on failure; 3: the backend could not run this configuration, message
 * printed). Frees nothing of L itself. */
int bench_load_run(bench_load_t *L);

/* ---- for backends ---------------------------------------------------------- */

/* ns since L->base_ns. */
int64_t bench_load_now(const bench_load_t *L);
/* Completion of a record sent with (t, measured). Completion thread. */
void bench_prod_acked(bench_prod_t *pr, int64_t t, bool measured);
void bench_prod_failed(bench_prod_t *pr, const char *err_name);
/* First error of a producer / consumer (later ones are dropped). */
void bench_prod_error(bench_prod_t *pr, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void bench_cons_error(bench_cons_t *cs, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A record arrived at a consumer. Consumer thread. */
void bench_cons_record(bench_cons_t *cs, const uint8_t *data, size_t len);
/* Read the header fields of a record's data (len >= BENCH_PAYLOAD_HEADER). */
int64_t bench_payload_time(const uint8_t *data);
bool bench_payload_measured(const uint8_t *data);

#endif
