/*
 * test_broker_disk_full.c — the real runneld with its streams on a tiny file
 * system (a 4 MiB tmpfs mounted on <data>/streams for the test, so metadata
 * and the broker's log stay on the ordinary disk; skipped with the reason
 * when mount fails, e.g. without root) that the test fills until the
 * shard's next write hits ENOSPC, then frees again:
 *   - the append fails with the retriable ENOSPC, never ELOGFAILED;
 *   - /healthz answers 200 "degraded" naming the stream and shard;
 *   - the Kinesis API answers PutRecord with 503 ServiceUnavailable;
 *   - an idempotent producer's retry of the failed batch meets ENOSPC again
 *     (not "duplicate of a batch still being written"), and once space is
 *     back the same retry is stored — once — without a broker restart;
 *   - every acknowledged record is read back, nothing else, and SIGTERM
 *     exits 0.
 * Ordering is proven by the answers themselves; nothing sleeps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpclient.h"
#include "itest.h"
#include "testutil.h"

typedef struct fx {
  rn_raw_env_t env;
  char mnt[700];
  char filler[800];
  bool mounted;
} fx_t;

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  if (!f) return -1;
  f->env.c.fd = -1;
  f->env.root = rn_test_tmpdir();
  snprintf(f->env.data_dir, sizeof(f->env.data_dir), "%s/data", f->env.root);
  snprintf(f->mnt, sizeof(f->mnt), "%s/streams", f->env.data_dir);
  snprintf(f->filler, sizeof(f->filler), "%s/filler", f->mnt);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  rn_raw_close(&f->env.c);
  if (f->env.broker.pid) rn_test_broker_kill(&f->env.broker);
  if (f->mounted) umount2(f->mnt, MNT_DETACH);
  rn_raw_env_destroy(&f->env);
  free(f);
  return 0;
}

/* Write the filler file until the file system is full, then give back
 * `leave` bytes. */
static void fill_disk(fx_t *f, off_t leave) {
  int fd = open(f->filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(fd >= 0);
  static char block[65536];
  memset(block, 'x', sizeof(block));
  off_t size = 0;
  for (;;) {
    ssize_t n = write(fd, block, sizeof(block));
    if (n < 0) {
      assert_int_equal(errno, ENOSPC);
      break;
    }
    size += n;
  }
  assert_int_equal(ftruncate(fd, size > leave ? size - leave : 0), 0);
  close(fd);
}

/* Take whatever room is left, to the last page. */
static void fill_rest(fx_t *f) {
  int fd = open(f->filler, O_WRONLY | O_APPEND);
  assert_true(fd >= 0);
  static char block[4096];
  while (write(fd, block, sizeof(block)) > 0) {
  }
  while (write(fd, block, 1) > 0) {
  }
  assert_int_equal(errno, ENOSPC);
  close(fd);
}

static void free_disk(fx_t *f) { assert_int_equal(unlink(f->filler), 0); }

/* A batch of 8 records of 4 KiB from (id, seq): "<tag>-<i>-xxxx...". */
static uint8_t *big_batch(uint64_t id, int32_t seq, int tag, size_t *len) {
  static char vals[8][4096];
  const char *vp[8];
  for (int i = 0; i < 8; i++) {
    memset(vals[i], 'v', sizeof(vals[i]) - 1);
    vals[i][sizeof(vals[i]) - 1] = '\0';
    int n = snprintf(vals[i], 32, "%d-%d-", tag, i);
    vals[i][n] = 'v';
    vp[i] = vals[i];
  }
  rn_batch_producer_t p = {.producer_id = id, .producer_epoch = 0, .base_sequence = seq};
  uint8_t *b = rn_raw_batch_strings(vp, 8, (int64_t)time(NULL) * 1000 + tag, &p, len);
  assert_non_null(b);
  return b;
}

typedef struct outcome {
  uint32_t code;
  uint64_t base;
  bool duplicate;
  char message[300];
} outcome_t;

static outcome_t attempt(rn_raw_t *c, const uint8_t *b, size_t len) {
  Runnel__Response *r = rn_raw_produce1(c, "full", 0, b, len);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_PRODUCE);
  const Runnel__ShardBatchResult *res = rn_raw_produce_result(r);
  assert_non_null(res);
  outcome_t o = {rn_raw_code(res->error), res->base_offset, res->duplicate, ""};
  if (res->error) snprintf(o.message, sizeof(o.message), "%s: %s", res->error->name, res->error->message);
  rn_raw_free(r);
  return o;
}

static void http_get(uint16_t port, const char *path, rn_hc_resp_t *resp) {
  rn_hc_t hc;
  assert_int_equal(rn_hc_connect(&hc, port), 0);
  assert_int_equal(rn_hc_sendf(&hc, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path), 0);
  assert_int_equal(rn_hc_read(&hc, resp), 0);
  rn_hc_close(&hc);
}

/* PutRecord of 12 KiB (more than the slack of the segment's last page). */
static void put_record(uint16_t port, rn_hc_resp_t *resp) {
  static char body[20000];
  int n = snprintf(body, sizeof(body), "{\"StreamName\":\"full\",\"PartitionKey\":\"k\",\"Data\":\"");
  for (int i = 0; i < 16384; i++) body[n++] = 'A'; /* base64 of 12 KiB of zeros */
  snprintf(body + n, sizeof(body) - (size_t)n, "\"}");
  rn_hc_t hc;
  assert_int_equal(rn_hc_connect(&hc, port), 0);
  assert_int_equal(rn_hc_sendf(&hc,
                               "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.PutRecord\r\n"
                               "Content-Type: application/x-amz-json-1.1\r\nContent-Length: %zu\r\n\r\n%s",
                               strlen(body), body),
                   0);
  assert_int_equal(rn_hc_read(&hc, resp), 0);
  rn_hc_close(&hc);
}

static void test_disk_full_then_freed(void **state) {
  fx_t *f = *state;
  assert_int_equal(mkdir(f->env.data_dir, 0755), 0);
  assert_int_equal(mkdir(f->mnt, 0755), 0);
  if (mount("tmpfs", f->mnt, "tmpfs", 0, "size=4m") != 0) {
    char why[200];
    snprintf(why, sizeof(why), "cannot mount a 4 MiB tmpfs (%s): needs root / CAP_SYS_ADMIN", strerror(errno));
    print_message("skipped: %s\n", why);
    skip();
  }
  f->mounted = true;
  assert_int_equal(rn_test_broker_start(&f->env.broker, f->env.data_dir, NULL), 0);
  assert_int_equal(rn_raw_connect(&f->env.c, f->env.broker.port), 0);
  rn_raw_t *c = &f->env.c;
  itest_create(c, "full", 1, RUNNEL__DURABILITY__DURABILITY_SYNC);
  Runnel__Response *r = rn_raw_init_producer(c);
  assert_rn_ok(r, RUNNEL__RESPONSE__OP_INIT_PRODUCER);
  uint64_t pid = r->init_producer->producer_id;
  rn_raw_free(r);

  /* Room for a few batches (8 records, ~33 KiB each), then none. */
  fill_disk(f, 160 << 10);
  int32_t seq = 0;
  int tag = 0;
  uint64_t acked = 0;
  outcome_t o;
  size_t len;
  uint8_t *b;
  for (;;) {
    b = big_batch(pid, seq, tag, &len);
    o = attempt(c, b, len);
    if (o.code) break;
    assert_false(o.duplicate);
    assert_int_equal(o.base, acked);
    acked += 8;
    seq += 8;
    tag++;
    free(b);
    assert_true(tag < 100); /* the disk must fill long before */
  }
  print_message("  disk full after %d batch(es): %s\n", tag, o.message);
  assert_int_equal(o.code, rn_raw_wire(RN_ENOSPC));
  assert_true(rn_err_retriable(rn_err_from_wire(o.code)));
  fill_rest(f); /* the failed write was cut back: take that room too */

  /* The node is up and says which shard is degraded and why. */
  rn_hc_resp_t h = {0};
  http_get(f->env.broker.http_port, "/healthz", &h);
  print_message("  /healthz: %d %s\n", h.status, (const char *)h.body);
  assert_int_equal(h.status, 200);
  assert_non_null(strstr((const char *)h.body, "\"status\":\"degraded\""));
  assert_non_null(strstr((const char *)h.body, "\"stream\":\"full\""));
  assert_non_null(strstr((const char *)h.body, "\"shard\":\"shardId-000000000000\""));
  assert_non_null(strstr((const char *)h.body, "\"error\":\"ENOSPC\""));
  rn_hc_resp_free(&h);

  /* Kinesis: a retriable 503 a stock SDK backs off on, not a 500. */
  rn_hc_resp_t k = {0};
  put_record(f->env.broker.http_port, &k);
  print_message("  PutRecord: %d %s\n", k.status, (const char *)k.body);
  assert_int_equal(k.status, 503);
  assert_non_null(strstr((const char *)k.body, "ServiceUnavailable"));
  rn_hc_resp_free(&k);

  /* The retry of the failed batch meets the real error again, not
   * "duplicate of a batch still being written". */
  outcome_t again = attempt(c, b, len);
  print_message("  retry while full: %s\n", again.message);
  assert_int_equal(again.code, rn_raw_wire(RN_ENOSPC));

  /* Space comes back: the same retry is stored, once, at the next offset. */
  free_disk(f);
  again = attempt(c, b, len);
  if (again.code) print_message("  retry after freeing: %s\n", again.message);
  assert_int_equal(again.code, 0);
  assert_false(again.duplicate);
  assert_int_equal(again.base, acked);
  acked += 8;
  /* ...and a second retry of it is a duplicate with the same offset. */
  outcome_t dup = attempt(c, b, len);
  assert_int_equal(dup.code, 0);
  assert_true(dup.duplicate);
  assert_int_equal(dup.base, acked - 8);
  free(b);
  seq += 8;
  tag++;
  b = big_batch(pid, seq, tag, &len);
  o = attempt(c, b, len);
  free(b);
  assert_int_equal(o.code, 0);
  assert_int_equal(o.base, acked);
  acked += 8;

  http_get(f->env.broker.http_port, "/healthz", &h);
  assert_int_equal(h.status, 200);
  assert_non_null(strstr((const char *)h.body, "\"status\":\"ok\""));
  rn_hc_resp_free(&h);

  /* Exactly the acknowledged records, in order, each batch once. */
  rn_raw_records_t recs = {0};
  assert_int_equal(rn_raw_fetch_all(c, "full", 0, &recs), 0);
  assert_int_equal(recs.n, acked);
  for (size_t i = 0; i < recs.n; i++) {
    char want[32];
    snprintf(want, sizeof(want), "%zu-%zu-", i / 8, i % 8);
    assert_int_equal(recs.v[i].offset, i);
    assert_memory_equal(recs.v[i].value, want, strlen(want));
  }
  rn_raw_records_free(&recs);

  /* A clean shutdown: nothing failed. */
  rn_raw_close(c);
  assert_int_equal(rn_test_broker_stop(&f->env.broker), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_disk_full_then_freed, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
