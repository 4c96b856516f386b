/*
 * test_client_e2e.c — librunnel and runnelctl against the real runneld:
 * records produced through the library (batched, idempotent, several
 * shards) come back byte-exact through the consumer, on the shard the
 * client's own routing says, in per-key order; a consumer waiting at the end
 * is answered by a later append; runnelctl's produce/consume round-trips
 * stdin lines and reports errors with a non-zero exit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker_proc.h"
#include "runnel/runnel.h"
#include "testutil.h"

#ifndef RN_TEST_RUNNELCTL
#define RN_TEST_RUNNELCTL "runnelctl"
#endif

typedef struct fx {
  char *tmp;
  rn_test_broker_t broker;
  rn_client_t *cl;
} fx_t;

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  f->tmp = rn_test_tmpdir();
  char dir[600];
  snprintf(dir, sizeof(dir), "%s/data", f->tmp);
  assert_int_equal(rn_test_broker_start(&f->broker, dir, NULL), 0);
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = f->broker.addr;
  assert_int_equal(rn_client_new(&conf, &f->cl), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  rn_client_destroy(f->cl);
  assert_int_equal(rn_test_broker_stop(&f->broker), 0);
  rn_test_rmtree(f->tmp);
  free(f->tmp);
  free(f);
  return 0;
}

static void create(fx_t *f, const char *name, uint32_t shards, rn_stream_desc_t **desc) {
  rn_stream_config_t c = {.name = name, .shard_count = shards, .durability = RN_DURABILITY_SYNC};
  rn_err_t err = rn_stream_create(f->cl, &c, desc);
  if (err) fail_msg("create %s: %s: %s", name, rn_err_name(err), rn_last_error_message());
}

/* ---- library round trip -------------------------------------------------- */

enum { NREC = 2000, NKEYS = 50 };

typedef struct delivery {
  pthread_mutex_t mu;
  int done, failed;
  uint32_t shard[NREC];
  uint64_t offset[NREC];
  rn_err_t err[NREC];
} delivery_t;

typedef struct dctx {
  delivery_t *d;
  int i;
} dctx_t;

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  dctx_t *c = opaque;
  pthread_mutex_lock(&c->d->mu);
  c->d->shard[c->i] = shard;
  c->d->offset[c->i] = offset;
  c->d->err[c->i] = err;
  c->d->done++;
  if (err) c->d->failed++;
  pthread_mutex_unlock(&c->d->mu);
}

static void test_library_round_trip(void **state) {
  fx_t *f = *state;
  rn_stream_desc_t *desc;
  create(f, "events", 4, &desc);
  assert_int_equal(desc->shard_count, 4);
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  static delivery_t d;
  memset(&d, 0, sizeof(d));
  pthread_mutex_init(&d.mu, NULL);
  static dctx_t ctx[NREC];
  char key[32], val[64];
  for (int i = 0; i < NREC; i++) {
    ctx[i] = (dctx_t){.d = &d, .i = i};
    snprintf(key, sizeof(key), "user-%d", i % NKEYS);
    int vl = snprintf(val, sizeof(val), "event %d of user-%d", i, i % NKEYS);
    rn_err_t err = rn_producer_send(p, "events", key, strlen(key), val, (size_t)vl, on_delivery, &ctx[i]);
    assert_int_equal(err, 0);
  }
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  rn_producer_destroy(p);
  assert_int_equal(d.done, NREC);
  assert_int_equal(d.failed, 0);

  /* Routing: the shard is the one whose range holds MD5(key). */
  for (int i = 0; i < NREC; i++) {
    snprintf(key, sizeof(key), "user-%d", i % NKEYS);
    uint8_t hk[RN_HASH_KEY_BYTES];
    rn_hash_key_for(key, strlen(key), hk);
    size_t pos;
    assert_int_equal(rn_shard_for_hash(desc->shards, desc->shard_count, hk, &pos), 0);
    assert_int_equal(desc->shards[pos].index, d.shard[i]);
  }

  /* Read every shard back from the earliest record to the high watermark. */
  int seen = 0;
  int last_i_of_key[NKEYS];
  for (int k = 0; k < NKEYS; k++) last_i_of_key[k] = -1;
  for (uint32_t s = 0; s < 4; s++) {
    rn_consumer_t *c;
    assert_int_equal(rn_consumer_new(f->cl, "events", s, RN_POS_EARLIEST, 0, &c), 0);
    for (;;) {
      const rn_record_t *r;
      rn_err_t err = rn_consumer_poll(c, 0, &r);
      if (err == RN_EAGAIN) break; /* nothing more at the end */
      assert_int_equal(err, 0);
      int i, k;
      assert_int_equal(sscanf((const char *)r->value, "event %d of user-%d", &i, &k), 2);
      assert_true(i >= 0 && i < NREC);
      snprintf(val, sizeof(val), "event %d of user-%d", i, k);
      assert_int_equal(r->value_len, strlen(val));
      assert_memory_equal(r->value, val, r->value_len);
      assert_int_equal(d.shard[i], s);
      assert_int_equal(d.offset[i], r->offset);
      /* Per-key order: a key's records appear in send order. */
      assert_true(i > last_i_of_key[k]);
      last_i_of_key[k] = i;
      seen++;
    }
    uint64_t pos, hw;
    assert_true(rn_consumer_position(c, &pos));
    assert_true(rn_consumer_high_watermark(c, &hw));
    assert_int_equal(pos, hw);
    rn_consumer_destroy(c);
  }
  assert_int_equal(seen, NREC);
  rn_stream_desc_free(desc);
}

/* ---- long poll through the library ---------------------------------------- */

typedef struct waiter {
  rn_client_t *cl;
  uint64_t from;
  rn_err_t err;
  char got[64];
} waiter_t;

static void *wait_one(void *arg) {
  waiter_t *w = arg;
  rn_consumer_t *c;
  w->err = rn_consumer_new(w->cl, "tail", 0, RN_POS_OFFSET, (int64_t)w->from, &c);
  if (w->err) return NULL;
  const rn_record_t *r;
  w->err = rn_consumer_poll(c, 30000, &r);
  if (!w->err) snprintf(w->got, sizeof(w->got), "%.*s", (int)r->value_len, (const char *)r->value);
  rn_consumer_destroy(c);
  return NULL;
}

static void test_consumer_woken_by_append(void **state) {
  fx_t *f = *state;
  rn_stream_desc_t *desc;
  create(f, "tail", 1, &desc);
  rn_stream_desc_free(desc);
  /* The waiter reads from the current end (offset 0), so whatever is
   * appended next is what it must get: ordering, not timing. */
  waiter_t w = {.from = 0};
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = f->broker.addr;
  assert_int_equal(rn_client_new(&conf, &w.cl), 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, wait_one, &w), 0);
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  assert_int_equal(rn_producer_send(p, "tail", "k", 1, "wake up", 7, NULL, NULL), 0);
  assert_int_equal(rn_producer_flush(p, 30000), 0);
  rn_producer_destroy(p);
  pthread_join(t, NULL);
  assert_int_equal(w.err, 0);
  assert_string_equal(w.got, "wake up");
  rn_client_destroy(w.cl);
}

/* ---- runnelctl ---------------------------------------------------------------- */

/* Run runnelctl with args, feeding in (may be NULL); capture stdout and
 * stderr into malloc'd strings. Returns the exit status. */
static int ctl(fx_t *f, const char *in, char **out, char **err, ...) {
  const char *argv[32];
  int argc = 0;
  argv[argc++] = RN_TEST_RUNNELCTL;
  argv[argc++] = "--broker";
  argv[argc++] = f->broker.addr;
  va_list ap;
  va_start(ap, err);
  const char *a;
  while ((a = va_arg(ap, const char *)) && argc < 31) argv[argc++] = a;
  va_end(ap);
  argv[argc] = NULL;
  char inpath[700], outpath[700], errpath[700];
  snprintf(inpath, sizeof(inpath), "%s/ctl.in", f->tmp);
  snprintf(outpath, sizeof(outpath), "%s/ctl.out", f->tmp);
  snprintf(errpath, sizeof(errpath), "%s/ctl.err", f->tmp);
  FILE *fp = fopen(inpath, "w");
  if (in) fputs(in, fp);
  fclose(fp);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (!freopen(inpath, "r", stdin) || !freopen(outpath, "w", stdout) || !freopen(errpath, "w", stderr)) _exit(126);
    execv(argv[0], (char *const *)(uintptr_t)argv);
    _exit(127);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  for (int k = 0; k < 2; k++) {
    FILE *r = fopen(k ? errpath : outpath, "r");
    char *buf = calloc(1, 1 << 20);
    size_t n = r ? fread(buf, 1, (1 << 20) - 1, r) : 0;
    buf[n] = 0;
    if (r) fclose(r);
    if (k)
      *err = buf;
    else
      *out = buf;
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_runnelctl_round_trip(void **state) {
  fx_t *f = *state;
  char *out, *err;
  assert_int_equal(ctl(f, NULL, &out, &err, "stream", "create", "cli", "--shards", "3", "--retention", "24h", NULL), 0);
  free(out);
  free(err);
  /* 300 JSON lines keyed by user. */
  size_t cap = 64 * 300;
  char *in = calloc(1, cap);
  char **want = calloc(300, sizeof(char *));
  for (int i = 0; i < 300; i++) {
    char line[64];
    snprintf(line, sizeof(line), "{\"user\":\"u%d\",\"n\":%d}", i % 7, i);
    want[i] = strdup(line);
    strcat(in, line);
    strcat(in, "\n");
  }
  assert_int_equal(ctl(f, in, &out, &err, "produce", "cli", "--key-field", "user", NULL), 0);
  assert_non_null(strstr(err, "produced 300 records")); /* the summary goes to stderr */
  free(out);
  free(err);
  assert_int_equal(ctl(f, NULL, &out, &err, "consume", "cli", NULL), 0);
  char **got = calloc(301, sizeof(char *));
  int n = 0;
  for (char *save, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    assert_true(n < 300);
    got[n++] = line;
  }
  assert_int_equal(n, 300);
  qsort(got, 300, sizeof(char *), cmp_str);
  qsort(want, 300, sizeof(char *), cmp_str);
  for (int i = 0; i < 300; i++) assert_string_equal(got[i], want[i]);
  free(out);
  free(err);
  /* Offsets add up. */
  assert_int_equal(ctl(f, NULL, &out, &err, "--json", "offsets", "cli", NULL), 0);
  assert_non_null(strstr(out, "\"end_offset\""));
  free(out);
  free(err);
  /* A one-line error and a non-zero exit for an unknown stream. */
  assert_true(ctl(f, NULL, &out, &err, "stream", "describe", "nope", NULL) != 0);
  assert_non_null(strstr(err, "ENOSTREAM"));
  int lines = 0;
  for (const char *c = err; *c; c++) lines += *c == '\n';
  assert_int_equal(lines, 1);
  free(out);
  free(err);
  for (int i = 0; i < 300; i++) free(want[i]);
  free(want);
  free(got);
  free(in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_library_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_consumer_woken_by_append, setup, teardown),
      cmocka_unit_test_setup_teardown(test_runnelctl_round_trip, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
