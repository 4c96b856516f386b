/*
 * test_broker_kill9.c — kill -9 of the real runneld under a `sync` producer.
 *
 * Each round starts runneld on the same data directory (a fresh run-time
 * port), first checks everything acknowledged in earlier rounds, then runs a
 * librunnel producer that sends records without pause from its own thread
 * while the delivery callbacks (on librunnel's I/O thread, under g.mu)
 * record every acknowledged (shard, offset). Once the round's randomly drawn
 * number of acknowledgements K has arrived, the broker is SIGKILLed — so the
 * kill point is decided by acks, not by time, and lands while batches are in
 * every stage (queued, on the wire, written, being synced, acked).
 *
 * The check, after every restart, reads every shard from EARLIEST to its end:
 *   - every acknowledged record is at its acknowledged (shard, offset),
 *     byte-exact (key and data);
 *   - every record present is one send() accepted (data carry round and
 *     sequence, and are regenerated and compared byte by byte), none twice,
 *     in send order per shard, offsets dense from 0;
 *   - records not acknowledged may or may not be present.
 *
 * Nothing waits on time: the sender paces itself on its own count of
 * unreported records (so librunnel's buffer never fills and send() never
 * blocks), main waits on a condition variable for the K-th ack, and after the
 * kill the producer is destroyed with close_timeout_ms = 0 (what is queued is
 * cancelled with RN_ECANCELED; requests on the dead connection fail with
 * RN_ECONNECTION).
 *
 * Usage: test_broker_kill9 [rounds] [seed].
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_proc.h"
#include "runnel/runnel.h"
#include "testutil.h"

#define STREAM "k9"
#define SHARDS 4
#define MAX_PER_ROUND (1u << 16) /* sends per round at most */
#define HDR 10                   /* "K9" | u32 round | u32 seq */
#define MAX_EXTRA 1500           /* random data after the header */
#define PACE 256                 /* unreported records a sender allows itself */
#define NPROD 3                  /* producers (clients, sender threads) */

static unsigned g_rounds = 12;
static uint64_t g_seed = 1;

typedef enum { REC_PENDING = 1, REC_REJECTED, REC_ACKED, REC_FAILED } rec_state_t;

typedef struct rec {
  uint8_t state;    /* 0: never sent */
  uint8_t seen;     /* found by the current check */
  uint8_t producer; /* which sender */
  uint32_t shard;
  uint64_t offset;
  rn_err_t err;
} rec_t;

typedef struct round {
  uint32_t n; /* records handed to send() */
  rec_t *recs;
} round_t;

/* Shared between main, the sender thread and librunnel's I/O thread. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  round_t rounds[256];
  uint64_t acked, failed, rejected; /* this round */
  uint64_t unreported[NPROD];       /* accepted by send(), callback not run yet */
  unsigned senders_done;
  bool stop;
  uint64_t kill_at; /* the K-th ack SIGKILLs broker_pid (from the callback) */
  pid_t broker_pid;
  bool killed;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* ---- deterministic records ------------------------------------------------------- */

static uint64_t rec_state0(uint32_t r, uint32_t q) {
  uint64_t st = (g_seed * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)r << 40) ^ ((uint64_t)q * 0xD1B54A32D192ED03ull);
  st |= 1;
  (void)rn_test_rand(&st);
  return st;
}

/* Data of record (r, q) into buf (HDR + MAX_EXTRA bytes); returns its length. */
static size_t make_data(uint32_t r, uint32_t q, uint8_t *buf) {
  uint64_t st = rec_state0(r, q);
  size_t len = HDR + (size_t)rn_test_rand_below(&st, MAX_EXTRA + 1);
  buf[0] = 'K';
  buf[1] = '9';
  memcpy(buf + 2, &r, 4);
  memcpy(buf + 6, &q, 4);
  for (size_t i = HDR; i < len; i++) buf[i] = (uint8_t)(rn_test_rand(&st) >> 56);
  return len;
}

static size_t make_key(uint32_t r, uint32_t q, char *key, size_t cap) {
  return (size_t)snprintf(key, cap, "user-%u", (unsigned)((q * 7u + r) % 61u));
}

/* ---- producer side ---------------------------------------------------------------- */

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  rec_t *rec = opaque;
  pthread_mutex_lock(&g.mu);
  if (err) {
    rec->state = REC_FAILED;
    rec->err = err;
    g.failed++;
  } else {
    rec->state = REC_ACKED;
    rec->shard = shard;
    rec->offset = offset;
    if (++g.acked >= g.kill_at && !g.killed) {
      /* at once, on the I/O thread, while the other producers' requests are
       * wherever they are; main reaps the process */
      kill(g.broker_pid, SIGKILL);
      g.killed = true;
    }
  }
  g.unreported[rec->producer]--;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
}

typedef struct sender_arg {
  rn_producer_t *p;
  uint32_t round;
  uint8_t idx;
  pthread_t th;
} sender_arg_t;

/* Sends records (round, 0..) until told to stop; never blocks in send(). */
static void *sender_main(void *arg) {
  sender_arg_t *a = arg;
  round_t *rd = &g.rounds[a->round];
  uint8_t *buf = malloc(HDR + MAX_EXTRA);
  while (buf) {
    pthread_mutex_lock(&g.mu);
    while (!g.stop && g.unreported[a->idx] >= PACE) pthread_cond_wait(&g.cv, &g.mu);
    if (g.stop || rd->n == MAX_PER_ROUND) {
      pthread_mutex_unlock(&g.mu);
      break;
    }
    uint32_t q = rd->n++;
    rec_t *rec = &rd->recs[q];
    rec->state = REC_PENDING;
    rec->producer = a->idx;
    g.unreported[a->idx]++;
    pthread_mutex_unlock(&g.mu);

    char key[32];
    size_t klen = make_key(a->round, q, key, sizeof(key));
    size_t len = make_data(a->round, q, buf);
    rn_err_t err = rn_producer_send(a->p, STREAM, key, klen, buf, len, on_delivery, rec);
    if (err) { /* not accepted: the callback will never run */
      pthread_mutex_lock(&g.mu);
      rec->state = REC_REJECTED;
      rec->err = err;
      g.rejected++;
      g.unreported[a->idx]--;
      pthread_cond_broadcast(&g.cv);
      pthread_mutex_unlock(&g.mu);
    }
  }
  free(buf);
  pthread_mutex_lock(&g.mu);
  g.senders_done++;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  return NULL;
}

/* ---- the check -------------------------------------------------------------------- */

typedef struct check_stats {
  uint64_t present, acked, unacked_present;
} check_stats_t;

/* Read every shard from EARLIEST to its end and check it against rounds
 * [0, upto). */
static void check_log(rn_client_t *cl, uint32_t upto, check_stats_t *cs) {
  memset(cs, 0, sizeof(*cs));
  for (uint32_t r = 0; r < upto; r++)
    for (uint32_t q = 0; q < g.rounds[r].n; q++) g.rounds[r].recs[q].seen = 0;

  rn_offsets_t *offs = NULL;
  rn_err_t err = rn_stream_list_offsets(cl, STREAM, RN_POS_EARLIEST, 0, &offs);
  if (err) print_message("list offsets: %s %s\n", rn_strerror(err), rn_last_error_message());
  assert_int_equal(err, 0);
  assert_int_equal(offs->count, SHARDS);
  uint8_t *want = malloc(HDR + MAX_EXTRA);
  assert_non_null(want);
  for (size_t i = 0; i < offs->count; i++) {
    const rn_shard_offsets_t *so = &offs->shards[i];
    assert_int_equal(so->err, 0);
    assert_int_equal(so->start_offset, 0); /* no retention: the log starts at 0 */
    rn_consumer_t *c;
    assert_int_equal(rn_consumer_new(cl, STREAM, so->shard, RN_POS_EARLIEST, 0, &c), 0);
    uint64_t next = 0;
    /* per producer (round, sender): the last sequence seen in this shard + 1 */
    uint32_t *last = calloc((size_t)upto * NPROD + 1, sizeof(uint32_t));
    assert_non_null(last);
    while (next < so->end_offset) {
      const rn_record_t *rec;
      err = rn_consumer_poll(c, 1000, &rec);
      if (err == RN_EAGAIN) continue;
      if (err) print_message("shard %u poll at %" PRIu64 ": %s %s\n", so->shard, next, rn_strerror(err),
                             rn_last_error_message());
      assert_int_equal(err, 0);
      assert_int_equal(rec->offset, next); /* dense */
      next++;
      cs->present++;
      /* a record send() accepted, byte-exact */
      assert_true(rec->value_len >= HDR);
      assert_memory_equal(rec->value, "K9", 2);
      uint32_t r, q;
      memcpy(&r, rec->value + 2, 4);
      memcpy(&q, rec->value + 6, 4);
      if (r >= upto || q >= g.rounds[r].n)
        print_message("shard %u offset %" PRIu64 ": unknown record (round %u, seq %u)\n", so->shard, rec->offset,
                      r, q);
      assert_true(r < upto);
      assert_true(q < g.rounds[r].n);
      rec_t *sent = &g.rounds[r].recs[q];
      assert_true(sent->state == REC_ACKED || sent->state == REC_FAILED); /* accepted, reported */
      size_t len = make_data(r, q, want);
      assert_int_equal(rec->value_len, len);
      assert_memory_equal(rec->value, want, len);
      char key[32];
      size_t klen = make_key(r, q, key, sizeof(key));
      assert_int_equal(rec->key_len, klen);
      assert_memory_equal(rec->key, key, klen);
      /* once, in send order per producer */
      assert_int_equal(sent->seen, 0);
      sent->seen = 1;
      uint32_t *lp = &last[(size_t)r * NPROD + sent->producer];
      if (q < *lp)
        print_message("shard %u offset %" PRIu64 ": (round %u, seq %u) after seq %u of the same producer\n", so->shard,
                      rec->offset, r, q, *lp - 1);
      assert_true(q >= *lp);
      *lp = q + 1;
      if (sent->state == REC_ACKED) {
        if (sent->shard != so->shard || sent->offset != rec->offset)
          print_message("record (round %u, seq %u) acked at shard %u offset %" PRIu64 ", found at %u/%" PRIu64 "\n",
                        r, q, sent->shard, sent->offset, so->shard, rec->offset);
        assert_int_equal(sent->shard, so->shard);
        assert_int_equal(sent->offset, rec->offset);
      } else {
        cs->unacked_present++;
      }
    }
    rn_consumer_destroy(c);
    free(last);
  }
  free(want);
  rn_offsets_free(offs);
  /* every acknowledged record was found (at its position, checked above) */
  for (uint32_t r = 0; r < upto; r++) {
    for (uint32_t q = 0; q < g.rounds[r].n; q++) {
      const rec_t *sent = &g.rounds[r].recs[q];
      if (sent->state != REC_ACKED) continue;
      cs->acked++;
      if (!sent->seen)
        print_message("acknowledged record (round %u, seq %u) at shard %u offset %" PRIu64 " is missing\n", r, q,
                      sent->shard, sent->offset);
      assert_true(sent->seen);
    }
  }
}

/* ---- one round ---------------------------------------------------------------------- */

static rn_client_t *client_for(const rn_test_broker_t *br) {
  rn_client_conf_t cc;
  rn_client_conf_init(&cc);
  cc.broker = br->addr;
  cc.reconnect_backoff_ms = 10;
  cc.reconnect_backoff_max_ms = 50;
  rn_client_t *cl = NULL;
  assert_int_equal(rn_client_new(&cc, &cl), 0);
  return cl;
}

/* Produce from NPROD producers until K acks, SIGKILL the broker (from the
 * K-th delivery callback), tear the producers down. */
static void produce_and_kill(rn_test_broker_t *br, uint32_t round, uint64_t *rng) {
  round_t *rd = &g.rounds[round];
  rd->recs = calloc(MAX_PER_ROUND, sizeof(rec_t));
  assert_non_null(rd->recs);
  /* the kill point: sometimes right after the start, mostly later */
  uint64_t k = rn_test_rand_below(rng, 4) == 0 ? 1 + rn_test_rand_below(rng, 20) : 20 + rn_test_rand_below(rng, 4000);
  static const uint32_t lingers[] = {0, 1, 2, 5};
  static const uint32_t batches[] = {1024, 4096, 16384, 65536, 262144};
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.linger_ms = lingers[rn_test_rand_below(rng, 4)];
  pc.max_batch_bytes = batches[rn_test_rand_below(rng, 5)];
  pc.codec = rn_test_rand_below(rng, 2) ? RN_CODEC_LZ4 : RN_CODEC_NONE;
  pc.max_buffered_bytes = 16u << 20; /* >> 2 * PACE records: send() never waits for space */
  pc.close_timeout_ms = 0;           /* destroy cancels at once */
  pc.retry_backoff_ms = 10;
  pc.retry_backoff_max_ms = 50;

  pthread_mutex_lock(&g.mu);
  g.acked = g.failed = g.rejected = 0;
  memset(g.unreported, 0, sizeof(g.unreported));
  g.senders_done = 0;
  g.stop = g.killed = false;
  g.kill_at = k;
  g.broker_pid = br->pid;
  pthread_mutex_unlock(&g.mu);

  rn_client_t *cls[NPROD];
  sender_arg_t sa[NPROD];
  for (unsigned i = 0; i < NPROD; i++) {
    cls[i] = client_for(br);
    sa[i] = (sender_arg_t){.round = round, .idx = (uint8_t)i};
    rn_err_t err = rn_producer_new(cls[i], &pc, &sa[i].p);
    if (err) print_message("producer: %s %s\n", rn_strerror(err), rn_last_error_message());
    assert_int_equal(err, 0);
  }
  for (unsigned i = 0; i < NPROD; i++) assert_int_equal(pthread_create(&sa[i].th, NULL, sender_main, &sa[i]), 0);

  pthread_mutex_lock(&g.mu);
  while (!g.killed && g.senders_done < NPROD && g.failed == 0 && g.rejected == 0) pthread_cond_wait(&g.cv, &g.mu);
  uint64_t acked = g.acked, failed = g.failed, rejected = g.rejected;
  bool killed = g.killed;
  g.stop = true;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);

  rn_test_broker_kill(br); /* SIGKILL (again, if the callback did) + reap */
  for (unsigned i = 0; i < NPROD; i++) pthread_join(sa[i].th, NULL);
  for (unsigned i = 0; i < NPROD; i++) {
    rn_producer_destroy(sa[i].p); /* reports what is left (ECANCELED, ECONNECTION) */
    rn_client_destroy(cls[i]);
  }

  pthread_mutex_lock(&g.mu);
  uint64_t unreported = 0;
  for (unsigned i = 0; i < NPROD; i++) unreported += g.unreported[i];
  uint64_t acked_all = g.acked, failed_all = g.failed;
  pthread_mutex_unlock(&g.mu);
  print_message("round %2u: kill at ack %" PRIu64 " (linger %u ms, batch %u B, %s); sent %u, acked %" PRIu64
                ", failed %" PRIu64 "\n",
                round, acked, pc.linger_ms, pc.max_batch_bytes, pc.codec == RN_CODEC_LZ4 ? "lz4" : "none", rd->n,
                acked_all, failed_all);
  assert_int_equal(unreported, 0); /* every accepted record was reported */
  /* before the kill the broker was healthy: nothing failed or was refused */
  assert_int_equal(failed, 0);
  assert_int_equal(rejected, 0);
  assert_true(killed);
  assert_true(acked >= k);
}

static void test_kill9_rounds(void **state) {
  (void)state;
  char *dir = rn_test_tmpdir();
  assert_non_null(dir);
  char data[600];
  snprintf(data, sizeof(data), "%s/data", dir);
  static const char *const extra[] = {"--set", "segment_bytes=262144", NULL};
  uint64_t rng = g_seed * 0x2545F4914F6CDD1Dull | 1;
  uint64_t unacked_seen = 0;
  print_message("seed %" PRIu64 ", %u rounds, data in %s\n", g_seed, g_rounds, data);

  for (uint32_t round = 0; round <= g_rounds; round++) {
    rn_test_broker_t br;
    assert_int_equal(rn_test_broker_start(&br, data, extra), 0);
    rn_client_t *cl = client_for(&br);
    if (round == 0) {
      rn_stream_config_t sc = {.name = STREAM, .shard_count = SHARDS, .durability = RN_DURABILITY_SYNC};
      rn_err_t err = rn_stream_create(cl, &sc, NULL);
      if (err) print_message("create: %s %s\n", rn_strerror(err), rn_last_error_message());
      assert_int_equal(err, 0);
    }
    check_stats_t cs;
    check_log(cl, round, &cs);
    unacked_seen = cs.unacked_present;
    if (round > 0)
      print_message("  restart %2u: %" PRIu64 " records present, all %" PRIu64 " acknowledged found, "
                    "%" PRIu64 " not acknowledged\n",
                    round, cs.present, cs.acked, cs.unacked_present);
    if (round == g_rounds) {
      rn_client_destroy(cl);
      assert_int_equal(rn_test_broker_stop(&br), 0); /* clean shutdown after all that */
      break;
    }
    rn_client_destroy(cl);
    produce_and_kill(&br, round, &rng);
  }
  print_message("%" PRIu64 " records stored without an acknowledgement (allowed)\n", unacked_seen);
  for (uint32_t r = 0; r < g_rounds; r++) free(g.rounds[r].recs);
  rn_test_rmtree(dir);
  free(dir);
}

int main(int argc, char **argv) {
  if (argc > 1) g_rounds = (unsigned)strtoul(argv[1], NULL, 10);
  if (argc > 2) g_seed = strtoull(argv[2], NULL, 10);
  if (g_rounds < 1 || g_rounds > 255) {
    fprintf(stderr, "usage: test_broker_kill9 [rounds 1..255] [seed]\n");
    return 2;
  }
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill9_rounds)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
