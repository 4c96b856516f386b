/*
 * test_broker_dedup.c — the dedup window (docs/dedup.md) through the real
 * runneld on run-time loopback ports: `runnelctl stream create
 * --dedup-field` and describe (text and --json); librunnel's producer
 * reporting a duplicate at its original's shard and offset; Kinesis
 * PutRecords and REST ingest answering a duplicate with the original
 * ShardId and SequenceNumber; the runnel_dedup_* metrics; and a kill -9
 * of runneld, restart, resend: answered as duplicates with the original
 * offsets and not stored again. Synchronisation is by blocking calls and
 * replies only (no sleeps).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker_proc.h"
#include "httpclient.h"
#include "runnel/runnel.h"
#include "testutil.h"

#ifndef RN_TEST_RUNNELCTL
#define RN_TEST_RUNNELCTL "runnelctl"
#endif

typedef struct fx {
  char *tmp;
  char dir[600];
  rn_test_broker_t broker;
  rn_client_t *cl;
} fx_t;

static void connect_client(fx_t *f) {
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = f->broker.addr;
  assert_int_equal(rn_client_new(&conf, &f->cl), 0);
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  f->tmp = rn_test_tmpdir();
  snprintf(f->dir, sizeof(f->dir), "%s/data", f->tmp);
  assert_int_equal(rn_test_broker_start(&f->broker, f->dir, NULL), 0);
  connect_client(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  rn_client_destroy(f->cl);
  if (f->broker.pid) assert_int_equal(rn_test_broker_stop(&f->broker), 0);
  rn_test_rmtree(f->tmp);
  free(f->tmp);
  free(f);
  return 0;
}

static void ctl_ok(fx_t *f, const char *const *args, char **out) {
  char *o = NULL, *e = NULL;
  int rc = rn_test_ctl_run(RN_TEST_RUNNELCTL, f->broker.addr, args, f->tmp, &o, &e);
  if (rc != 0) fail_msg("runnelctl %s %s: exit %d: %s%s", args[0], args[1], rc, o, e);
  free(e);
  if (out) *out = o;
  else free(o);
}

/* ---- librunnel ---------------------------------------------------------------------- */

enum { NMSG = 8 };
typedef struct deliv {
  int done;
  rn_err_t err[NMSG];
  uint32_t shard[NMSG];
  uint64_t offset[NMSG];
} deliv_t;
typedef struct dctx {
  deliv_t *d;
  int i;
} dctx_t;

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  dctx_t *c = opaque;
  c->d->err[c->i] = err;
  c->d->shard[c->i] = shard;
  c->d->offset[c->i] = offset;
  c->d->done++;
}

/* Send n JSON events {"event_uuid": ids[i]} with partition keys keys[i]; flush. */
static void send_events(fx_t *f, const char *stream, const char *const *ids, const char *const *keys, int n,
                        deliv_t *d) {
  rn_producer_t *p = NULL;
  assert_int_equal(rn_producer_new(f->cl, NULL, &p), 0);
  memset(d, 0, sizeof(*d));
  dctx_t ctx[NMSG];
  for (int i = 0; i < n; i++) {
    char data[128];
    int len = snprintf(data, sizeof data, "{\"event_uuid\":\"%s\",\"i\":%d}", ids[i], i);
    ctx[i] = (dctx_t){d, i};
    assert_int_equal(rn_producer_send(p, stream, keys[i], strlen(keys[i]), data, (size_t)len, on_delivery, &ctx[i]), 0);
  }
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  rn_producer_destroy(p);
  assert_int_equal(d->done, n);
  for (int i = 0; i < n; i++) assert_int_equal(d->err[i], 0);
}

static uint64_t stored(fx_t *f, const char *stream) {
  rn_stream_desc_t *d = NULL;
  assert_int_equal(rn_stream_describe(f->cl, stream, &d), 0);
  uint64_t n = 0;
  for (size_t i = 0; i < d->shard_count; i++) n += d->shards[i].end_offset;
  rn_stream_desc_free(d);
  return n;
}

static void test_native_and_ctl(void **state) {
  fx_t *f = *state;
  const char *create[] = {"stream", "create", "events", "--shards", "2", "--dedup-field", "event_uuid",
                          "--dedup-window", "1h", NULL};
  ctl_ok(f, create, NULL);
  char *out = NULL;
  const char *desc[] = {"stream", "describe", "events", NULL};
  ctl_ok(f, desc, &out);
  assert_non_null(strstr(out, "dedup:            field event_uuid, window 1h"));
  free(out);
  const char *descj[] = {"--json", "stream", "describe", "events", NULL};
  ctl_ok(f, descj, &out);
  assert_non_null(strstr(out, "\"field\": \"event_uuid\""));
  assert_non_null(strstr(out, "\"window_ms\": 3600000"));
  free(out);
  /* Refused: a window longer than the retention. */
  char *o = NULL, *e = NULL;
  const char *bad[] = {"stream", "create", "x", "--shards", "1", "--retention", "1h", "--dedup-field", "id",
                       "--dedup-window", "2h", NULL};
  assert_int_not_equal(rn_test_ctl_run(RN_TEST_RUNNELCTL, f->broker.addr, bad, f->tmp, &o, &e), 0);
  assert_non_null(strstr(e, "longer than the retention"));
  free(o);
  free(e);

  /* Keys "a" and "b" route to different shards of two (MD5). */
  const char *ids1[] = {"u1", "u2", "u3"}, *keys1[] = {"a", "b", "a"};
  deliv_t d1, d2;
  send_events(f, "events", ids1, keys1, 3, &d1);
  assert_int_equal(stored(f, "events"), 3);
  /* Again, with other keys: every copy answers its original's place. */
  const char *ids2[] = {"u2", "u4", "u1", "u3"}, *keys2[] = {"a", "a", "b", "b"};
  send_events(f, "events", ids2, keys2, 4, &d2);
  assert_int_equal(stored(f, "events"), 4); /* only u4 was new */
  assert_int_equal(d2.shard[0], d1.shard[1]);
  assert_int_equal(d2.offset[0], d1.offset[1]);
  assert_int_equal(d2.shard[2], d1.shard[0]);
  assert_int_equal(d2.offset[2], d1.offset[0]);
  assert_int_equal(d2.shard[3], d1.shard[2]);
  assert_int_equal(d2.offset[3], d1.offset[2]);
  /* The metrics count them. */
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, f->broker.http_port), 0);
  assert_int_equal(rn_hc_metric(&c, "runnel_dedup_duplicates_total{stream=\"events\"}"), 3);
  assert_int_equal(rn_hc_metric(&c, "runnel_dedup_ids{stream=\"events\"}"), 4);
  assert_int_equal(rn_hc_metric(&c, "runnel_dedup_records_without_id_total{stream=\"events\"}"), 0);
  assert_true(rn_hc_metric(&c, "runnel_dedup_memory_bytes{stream=\"events\"}") > 0);
  rn_hc_close(&c);
}

/* ---- Kinesis and REST ----------------------------------------------------------------- */

static void b64(const char *s, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = strlen(s), o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
    if (i + 1 < n) v |= (uint32_t)(unsigned char)s[i + 1] << 8;
    if (i + 2 < n) v |= (unsigned char)s[i + 2];
    out[o++] = t[(v >> 18) & 63];
    out[o++] = t[(v >> 12) & 63];
    out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = 0;
}

static char *http_post(uint16_t port, const char *head, const char *body) {
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, port), 0);
  assert_int_equal(rn_hc_sendf(&c, "%sHost: x\r\nContent-Length: %zu\r\n\r\n%s", head, strlen(body), body), 0);
  rn_hc_resp_t r;
  assert_int_equal(rn_hc_read(&c, &r), 0);
  if (r.status != 200) fail_msg("HTTP %d: %s", r.status, (char *)r.body);
  char *out = strdup((char *)r.body);
  rn_hc_resp_free(&r);
  rn_hc_close(&c);
  return out;
}

static char *put_records(fx_t *f, const char *const *ids, const char *const *keys, int n) {
  char body[4096] = "{\"StreamName\":\"k\",\"Records\":[";
  for (int i = 0; i < n; i++) {
    char data[100], enc[160], one[300];
    snprintf(data, sizeof data, "{\"event_uuid\":\"%s\"}", ids[i]);
    b64(data, enc);
    snprintf(one, sizeof one, "%s{\"Data\":\"%s\",\"PartitionKey\":\"%s\"}", i ? "," : "", enc, keys[i]);
    strcat(body, one);
  }
  strcat(body, "]}");
  return http_post(f->broker.http_port,
                   "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\n"
                   "Content-Type: application/x-amz-json-1.1\r\n",
                   body);
}

/* The i-th record's sequence number (after seqkey) and shard id (after
 * shardkey, in the same record object: the Kinesis answer writes it after
 * the sequence number, REST ingest before it). */
static void nth(const char *body, const char *seqkey, const char *shardkey, int i, char *seq, char *shard) {
  const char *p = body;
  for (int k = 0; k <= i; k++) {
    p = strstr(p, seqkey);
    assert_non_null(p);
    p += strlen(seqkey);
  }
  assert_int_equal(sscanf(p, "\"%63[0-9]\"", seq), 1);
  const char *open = p, *close = strchr(p, '}');
  while (open > body && *open != '{') open--;
  assert_non_null(close);
  const char *s = strstr(open, shardkey);
  assert_true(s != NULL && s < close);
  assert_int_equal(sscanf(s + strlen(shardkey), "\"%31[^\"]\"", shard), 1);
}

static void test_kinesis_and_rest(void **state) {
  fx_t *f = *state;
  rn_stream_config_t sc = {.name = "k",
                           .shard_count = 2,
                           .dedup_key = RN_DEDUP_FIELD,
                           .dedup_field = "event_uuid",
                           .dedup_window_ms = 600000};
  assert_int_equal(rn_stream_create(f->cl, &sc, NULL), 0);
  const char *ids[] = {"e1", "e2"}, *keys[] = {"a", "b"};
  char *r1 = put_records(f, ids, keys, 2);
  assert_non_null(strstr(r1, "\"FailedRecordCount\":0"));
  /* Both again (other partition keys) and a new one. */
  const char *ids2[] = {"e2", "e1", "e3"}, *keys2[] = {"a", "b", "b"};
  char *r2 = put_records(f, ids2, keys2, 3);
  assert_non_null(strstr(r2, "\"FailedRecordCount\":0"));
  char s1[64], h1[32], s2[64], h2[32];
  memset(h1, 0, sizeof h1);
  memset(h2, 0, sizeof h2);
  for (int k = 0; k < 2; k++) {
    nth(r1, "\"SequenceNumber\":", "\"ShardId\":", k, s1, h1);
    nth(r2, "\"SequenceNumber\":", "\"ShardId\":", 1 - k, s2, h2);
    assert_string_equal(s1, s2);
    assert_string_equal(h1, h2);
  }
  assert_int_equal(stored(f, "k"), 3);
  /* REST ingest (NDJSON): e3 is a duplicate of the Kinesis record, e5 is
   * new, a line without the field is stored and counted. */
  char *r3 = http_post(f->broker.http_port,
                       "POST /v1/streams/k/records?partition_key=z HTTP/1.1\r\nContent-Type: application/x-ndjson\r\n",
                       "{\"event_uuid\":\"e3\"}\n{\"event_uuid\":\"e5\"}\n{\"no\":\"id\"}\n");
  assert_non_null(strstr(r3, "\"failed\": 0") ? strstr(r3, "\"failed\": 0") : strstr(r3, "\"failed\":0"));
  nth(r2, "\"SequenceNumber\":", "\"ShardId\":", 2, s1, h1);
  nth(r3, "\"sequence_number\":", "\"shard_id\":", 0, s2, h2);
  assert_string_equal(s1, s2);
  assert_string_equal(h1, h2);
  assert_int_equal(stored(f, "k"), 5);
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, f->broker.http_port), 0);
  assert_int_equal(rn_hc_metric(&c, "runnel_dedup_duplicates_total{stream=\"k\"}"), 3);
  assert_int_equal(rn_hc_metric(&c, "runnel_dedup_records_without_id_total{stream=\"k\"}"), 1);
  rn_hc_close(&c);
  free(r1);
  free(r2);
  free(r3);
}

/* ---- kill -9 and restart ------------------------------------------------------------------- */

static void test_restart_kill9(void **state) {
  fx_t *f = *state;
  rn_stream_config_t sc = {.name = "r",
                           .shard_count = 2,
                           .dedup_key = RN_DEDUP_FIELD,
                           .dedup_field = "event_uuid",
                           .dedup_window_ms = 3600000};
  assert_int_equal(rn_stream_create(f->cl, &sc, NULL), 0);
  const char *ids[] = {"p1", "p2", "p3", "p4"}, *keys[] = {"a", "b", "a", "b"};
  deliv_t d1, d2;
  send_events(f, "r", ids, keys, 4, &d1); /* acknowledged: durable (sync) */
  rn_client_destroy(f->cl);
  f->cl = NULL;
  rn_test_broker_kill(&f->broker);
  assert_int_equal(rn_test_broker_start(&f->broker, f->dir, NULL), 0);
  connect_client(f);
  /* Resent after the restart, routed differently: duplicates, original places. */
  const char *keys2[] = {"b", "a", "b", "a"};
  send_events(f, "r", ids, keys2, 4, &d2);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(d2.shard[i], d1.shard[i]);
    assert_int_equal(d2.offset[i], d1.offset[i]);
  }
  assert_int_equal(stored(f, "r"), 4);
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, f->broker.http_port), 0);
  assert_int_equal(rn_hc_metric(&c, "runnel_dedup_duplicates_total{stream=\"r\"}"), 4);
  rn_hc_close(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_native_and_ctl, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kinesis_and_rest, setup, teardown),
      cmocka_unit_test_setup_teardown(test_restart_kill9, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
