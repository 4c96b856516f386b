/*
 * test_kinesis_api.c — the HTTP applications end to end, in process: the
 * route table (rn_apps.h) in front of a real engine on a temporary data
 * directory, driven with rn_http_req_t values on the test's own uv loop
 * (no sockets; the transport has its own tests). A fake wall clock makes
 * iterator expiry, SigV4 dates and throughput buckets deterministic.
 *
 * Covers: every supported Kinesis operation and its answer shape, all five
 * iterator types, sequence numbers that round-trip between PutRecord(s)
 * and GetRecords, records crossing APIs (Kinesis ↔ native), the error
 * types clients see, SigV4 refusal and acceptance (a botocore-signed
 * request), tags surviving a restart of the applications, throughput
 * limits, REST ingest (auth, shapes, gzip, batch), /metrics, /healthz and
 * /readyz.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <zlib.h>

#include "rn_core.h"
#include "rn_groups.h"
#include "native/dispatch.h" /* rn_native_handle: the wire translation */
#include "rn_apps.h"
#include "server.h" /* rn_server_apps_opts */
#include "rn_kinesis_codec.h"
#include "runnel/batch.h"
#include "testutil.h"

/* ---- fixture ------------------------------------------------------------------------- */

typedef struct fx {
  char *dir;
  uv_loop_t loop;
  rn_core_t *eng;
  rn_config_t cfg;
  rn_http_routes_t *routes;
  int64_t now_ms;
} fx_t;

static int64_t fake_now(void *arg) { return ((fx_t *)arg)->now_ms; }

static void routes_up(fx_t *f) {
  char why[256] = "";
  rn_apps_opts_t ao;
  rn_server_apps_opts(&f->cfg, &ao); /* as runneld does */
  rn_err_t rc = rn_http_routes_new(&f->loop, f->eng, &ao, &f->routes, why, sizeof(why));
  if (rc) fail_msg("rn_http_routes_new: %s", why);
  rn_http_routes_set_clock(f->routes, fake_now, f);
}

static int setup_with(void **state, const char *creds, const char *keys, int throttle) {
  fx_t *f = calloc(1, sizeof(*f));
  f->dir = rn_test_tmpdir();
  assert_int_equal(uv_loop_init(&f->loop), 0);
  rn_core_opts_t eo;
  rn_core_opts_default(&eo);
  eo.loop = &f->loop;
  eo.data_dir = f->dir;
  eo.journal_bytes = 8u << 20; /* sync streams through a (small) journal, as runneld runs them */
  eo.max_batch_bytes = 1u << 20;
  char why[256];
  assert_int_equal(rn_server_open_engine(&eo, &f->eng, why, sizeof(why)), 0);
  rn_config_init(&f->cfg);
  char *why2 = why;
  assert_int_equal(rn_config_set(&f->cfg, "data_dir", f->dir, NULL, why2, sizeof(why)), 0);
  assert_int_equal(rn_config_set(&f->cfg, "kinesis_credentials", creds, NULL, why2, sizeof(why)), 0);
  assert_int_equal(rn_config_set(&f->cfg, "rest_api_keys", keys, NULL, why2, sizeof(why)), 0);
  assert_int_equal(rn_config_set(&f->cfg, "kinesis_throughput_limits", throttle ? "kinesis" : "off", NULL, why2, sizeof(why)), 0);
  f->now_ms = 1700000000000;
  routes_up(f);
  *state = f;
  return 0;
}

static int setup(void **state) { return setup_with(state, "", "", 0); }
static int setup_auth(void **state) { return setup_with(state, "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "", 0); }
static int setup_rest(void **state) { return setup_with(state, "", "k1:ev|other,k2:*", 0); }
static int setup_throttle(void **state) { return setup_with(state, "", "", 1); }

static int teardown(void **state) {
  fx_t *f = *state;
  rn_http_routes_destroy(f->routes);
  assert_int_equal(rn_core_close(f->eng), 0);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  rn_config_free(&f->cfg);
  rn_test_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

/* ---- requests --------------------------------------------------------------------------- */

typedef struct answer {
  bool done;
  int status;
  char *body;
  size_t len;
  char ctype[128];
  char hdrs[512]; /* "name: value\n"... */
} answer_t;

static void on_reply(void *ctx, int status, const rn_http_header_t *h, size_t nh, const uint8_t *body, size_t len) {
  answer_t *a = ctx;
  assert_false(a->done); /* exactly once */
  a->done = true;
  a->status = status;
  a->body = malloc(len + 1);
  memcpy(a->body, body, len);
  a->body[len] = 0;
  a->len = len;
  size_t o = 0;
  for (size_t i = 0; i < nh; i++) {
    if (strcmp(h[i].name, "content-type") == 0) snprintf(a->ctype, sizeof(a->ctype), "%s", h[i].value);
    o += (size_t)snprintf(a->hdrs + o, o < sizeof(a->hdrs) ? sizeof(a->hdrs) - o : 0, "%s: %s\n", h[i].name, h[i].value);
  }
}

typedef struct hreq {
  const char *method, *path, *query;
  const rn_http_header_t *headers;
  size_t nheaders;
  const void *body;
  size_t len;
  int version;
  const char *authority;
} hreq_t;

static answer_t send_req(fx_t *f, const hreq_t *h) {
  rn_http_req_t req;
  memset(&req, 0, sizeof(req));
  req.method = h->method;
  req.path = h->path;
  req.query = h->query ? h->query : "";
  req.authority = h->authority ? h->authority : "127.0.0.1:7480";
  req.headers = h->headers;
  req.nheaders = h->nheaders;
  req.body = (const uint8_t *)(h->body ? h->body : "");
  req.body_len = h->body ? h->len : 0;
  req.http_version = h->version ? h->version : 11;
  req.peer = "127.0.0.1:5555";
  answer_t a;
  memset(&a, 0, sizeof(a));
  rn_http_routes_router(f->routes, &req, on_reply, &a);
  while (!a.done) uv_run(&f->loop, UV_RUN_ONCE);
  return a;
}

/* A Kinesis call: the answer's JSON (NULL for an empty body); *status set. */
static json_t *kin(fx_t *f, const char *op, int *status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static json_t *kin(fx_t *f, const char *op, int *status, const char *fmt, ...) {
  char target[96];
  snprintf(target, sizeof(target), "Kinesis_20131202.%s", op);
  rn_http_header_t hs[] = {{"content-type", "application/x-amz-json-1.1"}, {"x-amz-target", target}};
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *body = malloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(body, (size_t)n + 1, fmt, ap);
  va_end(ap);
  hreq_t h = {.method = "POST", .path = "/", .headers = hs, .nheaders = 2, .body = body, .len = (size_t)n};
  answer_t a = send_req(f, &h);
  free(body);
  *status = a.status;
  assert_string_equal(a.ctype, "application/x-amz-json-1.1");
  json_error_t e;
  json_t *j = json_loads(a.body, 0, &e);
  if (!j) fail_msg("%s answered %d with non-JSON: %s", op, a.status, a.body);
  free(a.body);
  return j;
}

/* Expect success; returns the answer. */
static json_t *ok(fx_t *f, const char *op, const char *body) {
  int st;
  json_t *j = kin(f, op, &st, "%s", body);
  if (st != 200) fail_msg("%s %s: %d %s", op, body, st, json_dumps(j, 0));
  return j;
}

/* Expect a Kinesis error of type (status 400 unless said). */
static void kerr(fx_t *f, const char *op, const char *body, const char *type, const char *msg_part) {
  int st;
  json_t *j = kin(f, op, &st, "%s", body);
  const char *t = json_string_value(json_object_get(j, "__type"));
  const char *m = json_string_value(json_object_get(j, "message"));
  if (!t || strcmp(t, type) != 0) fail_msg("%s %s: got %d %s, want %s", op, body, st, json_dumps(j, 0), type);
  int want = strcmp(type, "InternalFailure") == 0 ? 500 : strcmp(type, "ServiceUnavailable") == 0 ? 503 : 400;
  if (st != want) fail_msg("%s: status %d, want %d", op, st, want);
  if (msg_part && (!m || !strstr(m, msg_part))) fail_msg("%s: message '%s' lacks '%s'", op, m ? m : "", msg_part);
  json_decref(j);
}

static const char *jstr(const json_t *j, const char *path) {
  /* "A.B" of nested objects */
  char buf[128];
  snprintf(buf, sizeof(buf), "%s", path);
  const json_t *cur = j;
  for (char *tok = strtok(buf, "."); tok; tok = strtok(NULL, ".")) cur = json_object_get(cur, tok);
  return json_string_value(cur);
}

static void create(fx_t *f, const char *name, int shards) {
  char body[200];
  snprintf(body, sizeof(body), "{\"StreamName\":\"%s\",\"ShardCount\":%d}", name, shards);
  json_decref(ok(f, "CreateStream", body));
}

static char *iterator(fx_t *f, const char *stream, const char *shard, const char *type, const char *extra) {
  char body[400];
  snprintf(body, sizeof(body), "{\"StreamName\":\"%s\",\"ShardId\":\"%s\",\"ShardIteratorType\":\"%s\"%s}", stream, shard,
           type, extra ? extra : "");
  json_t *j = ok(f, "GetShardIterator", body);
  char *it = strdup(jstr(j, "ShardIterator"));
  json_decref(j);
  return it;
}

static json_t *get_records(fx_t *f, const char *it, int limit) {
  char body[800];
  if (limit) snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\",\"Limit\":%d}", it, limit);
  else snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\"}", it);
  return ok(f, "GetRecords", body);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_stream_lifecycle(void **state) {
  fx_t *f = *state;
  create(f, "clicks", 4);
  kerr(f, "CreateStream", "{\"StreamName\":\"clicks\",\"ShardCount\":1}", "ResourceInUseException",
       "Stream clicks under account 000000000000 already exists.");
  json_t *d = ok(f, "DescribeStream", "{\"StreamName\":\"clicks\"}");
  json_t *sd = json_object_get(d, "StreamDescription");
  assert_string_equal(jstr(sd, "StreamStatus"), "ACTIVE");
  assert_string_equal(jstr(sd, "StreamARN"), "arn:aws:kinesis:us-east-1:000000000000:stream/clicks");
  assert_int_equal(json_integer_value(json_object_get(sd, "RetentionPeriodHours")), 24);
  json_t *shards = json_object_get(sd, "Shards");
  assert_int_equal(json_array_size(shards), 4);
  assert_string_equal(jstr(json_array_get(shards, 0), "HashKeyRange.StartingHashKey"), "0");
  assert_string_equal(jstr(json_array_get(shards, 3), "HashKeyRange.EndingHashKey"),
                      "340282366920938463463374607431768211455");
  assert_string_equal(jstr(json_array_get(shards, 1), "HashKeyRange.StartingHashKey"),
                      "85070591730234615865843651857942052864");
  assert_true(json_is_false(json_object_get(sd, "HasMoreShards")));
  assert_true(json_is_real(json_object_get(sd, "StreamCreationTimestamp")) ||
              json_is_integer(json_object_get(sd, "StreamCreationTimestamp")));
  json_decref(d);
  d = ok(f, "DescribeStream", "{\"StreamName\":\"clicks\",\"Limit\":2,\"ExclusiveStartShardId\":\"shardId-000000000000\"}");
  shards = json_object_get(json_object_get(d, "StreamDescription"), "Shards");
  assert_int_equal(json_array_size(shards), 2);
  assert_string_equal(jstr(json_array_get(shards, 0), "ShardId"), "shardId-000000000001");
  assert_true(json_is_true(json_object_get(json_object_get(d, "StreamDescription"), "HasMoreShards")));
  json_decref(d);
  d = ok(f, "DescribeStreamSummary", "{\"StreamName\":\"clicks\"}");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "StreamDescriptionSummary"), "OpenShardCount")), 4);
  json_decref(d);
  create(f, "a-first", 1);
  json_t *l = ok(f, "ListStreams", "{\"Limit\":1}");
  assert_string_equal(json_string_value(json_array_get(json_object_get(l, "StreamNames"), 0)), "a-first");
  assert_true(json_is_true(json_object_get(l, "HasMoreStreams")));
  char body[300];
  snprintf(body, sizeof(body), "{\"NextToken\":\"%s\"}", jstr(l, "NextToken"));
  json_decref(l);
  l = ok(f, "ListStreams", body);
  assert_string_equal(json_string_value(json_array_get(json_object_get(l, "StreamNames"), 0)), "clicks");
  assert_true(json_is_false(json_object_get(l, "HasMoreStreams")));
  json_decref(l);
  /* ListShards: pages, filters. */
  l = ok(f, "ListShards", "{\"StreamName\":\"clicks\",\"MaxResults\":3}");
  assert_int_equal(json_array_size(json_object_get(l, "Shards")), 3);
  snprintf(body, sizeof(body), "{\"NextToken\":\"%s\"}", jstr(l, "NextToken"));
  json_decref(l);
  l = ok(f, "ListShards", body);
  assert_int_equal(json_array_size(json_object_get(l, "Shards")), 1);
  assert_null(json_object_get(l, "NextToken"));
  json_decref(l);
  l = ok(f, "ListShards", "{\"StreamName\":\"clicks\",\"ShardFilter\":{\"Type\":\"AFTER_SHARD_ID\",\"ShardId\":\"shardId-000000000002\"}}");
  assert_int_equal(json_array_size(json_object_get(l, "Shards")), 1);
  json_decref(l);
  kerr(f, "ListShards", "{\"NextToken\":\"bm9wZQ==\"}", "InvalidArgumentException", "Invalid NextToken.");
  json_t *lim = ok(f, "DescribeLimits", "{}");
  assert_int_equal(json_integer_value(json_object_get(lim, "OpenShardCount")), 5);
  json_decref(lim);
  json_decref(ok(f, "DeleteStream", "{\"StreamName\":\"clicks\"}"));
  kerr(f, "DescribeStream", "{\"StreamName\":\"clicks\"}", "ResourceNotFoundException",
       "Stream clicks under account 000000000000 not found.");
  kerr(f, "DeleteStream", "{\"StreamName\":\"clicks\"}", "ResourceNotFoundException", NULL);
  /* On demand: four shards. */
  json_decref(ok(f, "CreateStream", "{\"StreamName\":\"od\",\"StreamModeDetails\":{\"StreamMode\":\"ON_DEMAND\"}}"));
  d = ok(f, "DescribeStreamSummary", "{\"StreamName\":\"od\"}");
  assert_string_equal(jstr(d, "StreamDescriptionSummary.StreamModeDetails.StreamMode"), "ON_DEMAND");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "StreamDescriptionSummary"), "OpenShardCount")), 4);
  json_decref(d);
  kerr(f, "CreateStream", "{\"StreamName\":\"huge\",\"ShardCount\":5000}", "LimitExceededException", NULL);
}

static void test_put_and_get(void **state) {
  fx_t *f = *state;
  create(f, "s", 2);
  /* PutRecord: "hello" with an explicit hash key to shard 1. */
  json_t *p = ok(f, "PutRecord",
                 "{\"StreamName\":\"s\",\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"k\",\"ExplicitHashKey\":"
                 "\"340282366920938463463374607431768211455\"}");
  assert_string_equal(jstr(p, "ShardId"), "shardId-000000000001");
  char *seq0 = strdup(jstr(p, "SequenceNumber"));
  assert_int_equal(strlen(seq0), 56);
  json_decref(p);
  /* PutRecords: 3 records to shard 1. */
  const char *ehk = "340282366920938463463374607431768211455";
  char body[1024];
  snprintf(body, sizeof(body),
           "{\"StreamName\":\"s\",\"Records\":[{\"Data\":\"YQ==\",\"PartitionKey\":\"a\",\"ExplicitHashKey\":\"%s\"},"
           "{\"Data\":\"Yg==\",\"PartitionKey\":\"b\",\"ExplicitHashKey\":\"%s\"},{\"Data\":\"Yw==\",\"PartitionKey\":"
           "\"c\",\"ExplicitHashKey\":\"%s\"}]}",
           ehk, ehk, ehk);
  p = ok(f, "PutRecords", body);
  assert_int_equal(json_integer_value(json_object_get(p, "FailedRecordCount")), 0);
  json_t *recs = json_object_get(p, "Records");
  assert_int_equal(json_array_size(recs), 3);
  char *seq2 = strdup(jstr(json_array_get(recs, 1), "SequenceNumber"));
  assert_true(strcmp(seq0, seq2) < 0);
  json_decref(p);
  /* TRIM_HORIZON reads all four, in order, with the sequence numbers PutRecord(s) gave. */
  char *it = iterator(f, "s", "shardId-000000000001", "TRIM_HORIZON", NULL);
  json_t *g = get_records(f, it, 0);
  free(it);
  recs = json_object_get(g, "Records");
  assert_int_equal(json_array_size(recs), 4);
  assert_string_equal(jstr(json_array_get(recs, 0), "Data"), "aGVsbG8=");
  assert_string_equal(jstr(json_array_get(recs, 0), "PartitionKey"), "k");
  assert_string_equal(jstr(json_array_get(recs, 0), "SequenceNumber"), seq0);
  assert_string_equal(jstr(json_array_get(recs, 2), "SequenceNumber"), seq2);
  assert_true(json_is_number(json_object_get(json_array_get(recs, 0), "ApproximateArrivalTimestamp")));
  assert_int_equal(json_integer_value(json_object_get(g, "MillisBehindLatest")), 0);
  /* The next iterator is at the tip: nothing more, until a new put. */
  char *next = strdup(jstr(g, "NextShardIterator"));
  json_decref(g);
  g = get_records(f, next, 0);
  assert_int_equal(json_array_size(json_object_get(g, "Records")), 0);
  free(next);
  next = strdup(jstr(g, "NextShardIterator"));
  json_decref(g);
  snprintf(body, sizeof(body), "{\"StreamName\":\"s\",\"Data\":\"ZA==\",\"PartitionKey\":\"d\",\"ExplicitHashKey\":\"%s\"}", ehk);
  json_decref(ok(f, "PutRecord", body));
  g = get_records(f, next, 0);
  assert_int_equal(json_array_size(json_object_get(g, "Records")), 1);
  assert_string_equal(jstr(json_array_get(json_object_get(g, "Records"), 0), "Data"), "ZA==");
  json_decref(g);
  free(next);
  /* Limit and continuation. */
  it = iterator(f, "s", "shardId-000000000001", "TRIM_HORIZON", NULL);
  g = get_records(f, it, 2);
  free(it);
  assert_int_equal(json_array_size(json_object_get(g, "Records")), 2);
  assert_true(json_integer_value(json_object_get(g, "MillisBehindLatest")) >= 0);
  next = strdup(jstr(g, "NextShardIterator"));
  json_decref(g);
  g = get_records(f, next, 0);
  free(next);
  assert_int_equal(json_array_size(json_object_get(g, "Records")), 3);
  assert_string_equal(jstr(json_array_get(json_object_get(g, "Records"), 0), "SequenceNumber"), seq2);
  json_decref(g);
  /* AT_ and AFTER_SEQUENCE_NUMBER. */
  char extra[200];
  snprintf(extra, sizeof(extra), ",\"StartingSequenceNumber\":\"%s\"", seq2);
  it = iterator(f, "s", "shardId-000000000001", "AT_SEQUENCE_NUMBER", extra);
  g = get_records(f, it, 1);
  assert_string_equal(jstr(json_array_get(json_object_get(g, "Records"), 0), "Data"), "Yg==");
  json_decref(g);
  free(it);
  it = iterator(f, "s", "shardId-000000000001", "AFTER_SEQUENCE_NUMBER", extra);
  g = get_records(f, it, 1);
  assert_string_equal(jstr(json_array_get(json_object_get(g, "Records"), 0), "Data"), "Yw==");
  json_decref(g);
  free(it);
  /* LATEST: only what comes after. */
  it = iterator(f, "s", "shardId-000000000001", "LATEST", NULL);
  g = get_records(f, it, 0);
  assert_int_equal(json_array_size(json_object_get(g, "Records")), 0);
  json_decref(g);
  free(it);
  /* AT_TIMESTAMP: records carry their arrival time (the fake clock). */
  f->now_ms += 60000;
  snprintf(body, sizeof(body), "{\"StreamName\":\"s\",\"Data\":\"ZQ==\",\"PartitionKey\":\"e\",\"ExplicitHashKey\":\"%s\"}", ehk);
  json_decref(ok(f, "PutRecord", body));
  snprintf(extra, sizeof(extra), ",\"Timestamp\":%lld.5", (long long)(f->now_ms / 1000 - 30));
  it = iterator(f, "s", "shardId-000000000001", "AT_TIMESTAMP", extra);
  g = get_records(f, it, 0);
  assert_int_equal(json_array_size(json_object_get(g, "Records")), 1);
  assert_string_equal(jstr(json_array_get(json_object_get(g, "Records"), 0), "Data"), "ZQ==");
  json_decref(g);
  free(it);
  /* In the future: refused, as AWS does. */
  snprintf(extra, sizeof(extra), ",\"Timestamp\":%lld", (long long)(f->now_ms / 1000 + 3600));
  snprintf(body, sizeof(body), "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000001\",\"ShardIteratorType\":\"AT_TIMESTAMP\"%s}", extra);
  kerr(f, "GetShardIterator", body, "InvalidArgumentException", "cannot be greater than the currentTimestampInMillis");
  /* Sequence-number misuse. */
  snprintf(body, sizeof(body),
           "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000000\",\"ShardIteratorType\":\"AT_SEQUENCE_NUMBER\","
           "\"StartingSequenceNumber\":\"%s\"}",
           seq2);
  kerr(f, "GetShardIterator", body, "InvalidArgumentException", "It encodes shardId-000000000001");
  kerr(f, "GetShardIterator",
       "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000000\",\"ShardIteratorType\":\"AT_SEQUENCE_NUMBER\","
       "\"StartingSequenceNumber\":\"12345\"}",
       "InvalidArgumentException", "is invalid");
  kerr(f, "GetShardIterator", "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000007\",\"ShardIteratorType\":\"LATEST\"}",
       "ResourceNotFoundException", "Shard shardId-000000000007 in stream s under account 000000000000 does not exist");
  free(seq0);
  free(seq2);
}

static void test_iterator_errors(void **state) {
  fx_t *f = *state;
  create(f, "s", 1);
  char *it = iterator(f, "s", "shardId-000000000000", "TRIM_HORIZON", NULL);
  char body[800];
  /* Tampered. */
  char *bad = strdup(it);
  bad[10] = bad[10] == 'A' ? 'B' : 'A';
  snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\"}", bad);
  kerr(f, "GetRecords", body, "InvalidArgumentException", "Invalid ShardIterator.");
  free(bad);
  kerr(f, "GetRecords", "{\"ShardIterator\":\"garbage\"}", "InvalidArgumentException", "Invalid ShardIterator.");
  /* Expired after 300 s. */
  f->now_ms += 300000;
  json_decref(get_records(f, it, 0));
  f->now_ms += 1;
  snprintf(body, sizeof(body), "{\"ShardIterator\":\"%s\"}", it);
  kerr(f, "GetRecords", body, "ExpiredIteratorException", "tolerated delay of 300000 milliseconds");
  /* The stream deleted, or deleted and recreated: not found. */
  f->now_ms -= 300001;
  json_decref(ok(f, "DeleteStream", "{\"StreamName\":\"s\"}"));
  kerr(f, "GetRecords", body, "ResourceNotFoundException", NULL);
  f->now_ms += 2000; /* another creation second */
  create(f, "s", 1);
  kerr(f, "GetRecords", body, "ResourceNotFoundException", NULL);
  free(it);
}

static void test_errors(void **state) {
  fx_t *f = *state;
  kerr(f, "Bogus", "{}", "UnknownOperationException", NULL);
  kerr(f, "SplitShard", "{}", "InvalidArgumentException", "not supported");
  kerr(f, "SubscribeToShard", "{}", "InvalidArgumentException", "enhanced fan-out");
  kerr(f, "DescribeStream", "{nope", "SerializationException", NULL);
  kerr(f, "PutRecord", "{\"StreamName\":\"missing\",\"Data\":\"\",\"PartitionKey\":\"k\"}", "ResourceNotFoundException",
       "Stream missing under account 000000000000 not found.");
  kerr(f, "IncreaseStreamRetentionPeriod", "{\"StreamName\":\"missing\",\"RetentionPeriodHours\":48}",
       "ResourceNotFoundException", NULL);
  /* No target on POST /: unknown operation. */
  rn_http_header_t hs[] = {{"content-type", "application/x-amz-json-1.1"}};
  hreq_t h = {.method = "POST", .path = "/", .headers = hs, .nheaders = 1, .body = "{}", .len = 2};
  answer_t a = send_req(f, &h);
  assert_int_equal(a.status, 400);
  assert_non_null(strstr(a.body, "UnknownOperationException"));
  free(a.body);
  /* CBOR clients get a clear JSON answer. */
  rn_http_header_t cb[] = {{"content-type", "application/x-amz-cbor-1.1"}, {"x-amz-target", "Kinesis_20131202.ListStreams"}};
  h.headers = cb;
  h.nheaders = 2;
  a = send_req(f, &h);
  assert_int_equal(a.status, 400);
  assert_non_null(strstr(a.body, "CBOR"));
  free(a.body);
  /* Retention. */
  create(f, "r", 1);
  kerr(f, "IncreaseStreamRetentionPeriod", "{\"StreamName\":\"r\",\"RetentionPeriodHours\":12}", "InvalidArgumentException",
       "Minimum allowed retention period is 24 hours.");
  kerr(f, "IncreaseStreamRetentionPeriod", "{\"StreamName\":\"r\",\"RetentionPeriodHours\":9000}",
       "InvalidArgumentException", "Maximum allowed retention period is 8760 hours.");
  json_decref(ok(f, "IncreaseStreamRetentionPeriod", "{\"StreamName\":\"r\",\"RetentionPeriodHours\":48}"));
  kerr(f, "IncreaseStreamRetentionPeriod", "{\"StreamName\":\"r\",\"RetentionPeriodHours\":36}", "InvalidArgumentException",
       "can not be shorter than existing retention period (48 hours)");
  kerr(f, "DecreaseStreamRetentionPeriod", "{\"StreamName\":\"r\",\"RetentionPeriodHours\":72}", "InvalidArgumentException",
       "can not be longer than existing retention period (48 hours)");
  json_decref(ok(f, "DecreaseStreamRetentionPeriod", "{\"StreamName\":\"r\",\"RetentionPeriodHours\":30}"));
  json_t *d = ok(f, "DescribeStreamSummary", "{\"StreamName\":\"r\"}");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "StreamDescriptionSummary"), "RetentionPeriodHours")), 30);
  json_decref(d);
  /* Unknown paths. */
  hreq_t g = {.method = "GET", .path = "/nope"};
  a = send_req(f, &g);
  assert_int_equal(a.status, 404);
  free(a.body);
}

/* A native request to the engine, waited for on the loop; returns the
 * request-level error's wire code. */
static void on_engine_reply(void *ctx, const Runnel__Response *resp) {
  int *code = ctx;
  *code = resp->error ? (int)resp->error->code : 0;
}

static int engine_call(fx_t *f, const Runnel__Request *req) {
  int code = -1;
  rn_native_handle(f->eng, req, on_engine_reply, &code);
  while (code == -1) uv_run(&f->loop, UV_RUN_ONCE);
  return code;
}

/* Produce a batch natively; returns the base offset. */
typedef struct native_done {
  bool done;
  uint64_t base;
  bool ok;
  size_t fetched_records;
  char key[32], value[32];
} native_done_t;

static void on_native(void *ctx, const Runnel__Response *resp) {
  native_done_t *n = ctx;
  n->done = true;
  if (resp->op_case == RUNNEL__RESPONSE__OP_PRODUCE && !resp->error && resp->produce->n_results == 1 &&
      !resp->produce->results[0]->error) {
    n->ok = true;
    n->base = resp->produce->results[0]->base_offset;
  }
  if (resp->op_case == RUNNEL__RESPONSE__OP_FETCH && !resp->error && resp->fetch->n_results == 1) {
    const Runnel__ShardFetchResult *r = resp->fetch->results[0];
    rn_batch_iter_t it;
    if (!r->error && r->batches.len && rn_batch_iter_init(&it, r->batches.data, r->batches.len) == 0) {
      rn_record_t rec;
      while (rn_batch_iter_next(&it, &rec) == 0) {
        if (n->fetched_records == 0) {
          snprintf(n->key, sizeof(n->key), "%.*s", (int)rec.key_len, (const char *)rec.key);
          snprintf(n->value, sizeof(n->value), "%.*s", (int)rec.value_len, (const char *)rec.value);
        }
        n->fetched_records++;
      }
      n->ok = true;
    }
    rn_batch_iter_free(&it);
  }
}

static void test_cross_api(void **state) {
  fx_t *f = *state;
  create(f, "x", 1);
  /* Native produce (LZ4) → GetRecords. */
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  for (int i = 0; i < 3; i++) {
    char v[16];
    snprintf(v, sizeof(v), "native-%d", i);
    rn_record_t r = {.timestamp = f->now_ms, .key = (const uint8_t *)"nk", .key_len = 2, .value = (const uint8_t *)v,
                     .value_len = strlen(v)};
    assert_int_equal(rn_batch_builder_add(&b, &r), 0);
  }
  const uint8_t *bytes;
  size_t len;
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_LZ4, NULL, &bytes, &len), 0);
  Runnel__Request req;
  runnel__request__init(&req);
  Runnel__ProduceRequest pr;
  runnel__produce_request__init(&pr);
  Runnel__ShardBatch sb;
  runnel__shard_batch__init(&sb);
  Runnel__ShardBatch *sbp = &sb;
  sb.shard = 0;
  sb.batch.data = (uint8_t *)(uintptr_t)bytes;
  sb.batch.len = len;
  pr.stream = (char *)"x";
  pr.n_batches = 1;
  pr.batches = &sbp;
  req.op_case = RUNNEL__REQUEST__OP_PRODUCE;
  req.produce = &pr;
  native_done_t nd = {0};
  rn_native_handle(f->eng, &req, on_native, &nd);
  while (!nd.done) uv_run(&f->loop, UV_RUN_ONCE);
  assert_true(nd.ok);
  rn_batch_builder_free(&b);
  char *it = iterator(f, "x", "shardId-000000000000", "TRIM_HORIZON", NULL);
  json_t *g = get_records(f, it, 0);
  free(it);
  json_t *recs = json_object_get(g, "Records");
  assert_int_equal(json_array_size(recs), 3);
  assert_string_equal(jstr(json_array_get(recs, 2), "Data"), "bmF0aXZlLTI="); /* "native-2" */
  assert_string_equal(jstr(json_array_get(recs, 2), "PartitionKey"), "nk");
  json_decref(g);
  /* PutRecord → native fetch. */
  json_t *p = ok(f, "PutRecord", "{\"StreamName\":\"x\",\"Data\":\"a2luZXNpcw==\",\"PartitionKey\":\"pk\"}");
  rn__kseq_t q;
  assert_int_equal(rn__kseq_decode(jstr(p, "SequenceNumber"), 56, &q), 0);
  assert_int_equal(q.offset, 3);
  json_decref(p);
  Runnel__FetchRequest fr;
  runnel__fetch_request__init(&fr);
  Runnel__ShardFetch sf;
  runnel__shard_fetch__init(&sf);
  Runnel__ShardFetch *sfp = &sf;
  sf.kind = RUNNEL__POSITION_KIND__POSITION_OFFSET;
  sf.value = 3;
  fr.stream = (char *)"x";
  fr.n_shards = 1;
  fr.shards = &sfp;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_FETCH;
  req.fetch = &fr;
  memset(&nd, 0, sizeof(nd));
  rn_native_handle(f->eng, &req, on_native, &nd);
  while (!nd.done) uv_run(&f->loop, UV_RUN_ONCE);
  assert_true(nd.ok);
  assert_int_equal(nd.fetched_records, 1);
  assert_string_equal(nd.key, "pk");
  assert_string_equal(nd.value, "kinesis");
}

static void test_tags(void **state) {
  fx_t *f = *state;
  create(f, "t", 1);
  json_decref(ok(f, "AddTagsToStream", "{\"StreamName\":\"t\",\"Tags\":{\"team\":\"data\",\"env\":\"dev\",\"a\":\"1\"}}"));
  json_decref(ok(f, "RemoveTagsFromStream", "{\"StreamName\":\"t\",\"TagKeys\":[\"a\"]}"));
  json_t *l = ok(f, "ListTagsForStream", "{\"StreamName\":\"t\",\"Limit\":1}");
  json_t *tags = json_object_get(l, "Tags");
  assert_int_equal(json_array_size(tags), 1);
  assert_string_equal(jstr(json_array_get(tags, 0), "Key"), "env");
  assert_true(json_is_true(json_object_get(l, "HasMoreTags")));
  json_decref(l);
  /* The tags survive a restart of the applications (the file under meta/). */
  rn_http_routes_destroy(f->routes);
  routes_up(f);
  l = ok(f, "ListTagsForStream", "{\"StreamName\":\"t\",\"ExclusiveStartTagKey\":\"env\"}");
  tags = json_object_get(l, "Tags");
  assert_int_equal(json_array_size(tags), 1);
  assert_string_equal(jstr(json_array_get(tags, 0), "Value"), "data");
  assert_true(json_is_false(json_object_get(l, "HasMoreTags")));
  json_decref(l);
  /* Too many. */
  char body[4096];
  size_t o = (size_t)snprintf(body, sizeof(body), "{\"StreamName\":\"t\",\"Tags\":{");
  for (int i = 0; i < 50; i++) o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"k%d\":\"v\"", i ? "," : "", i);
  snprintf(body + o, sizeof(body) - o, "}}");
  kerr(f, "AddTagsToStream", body, "InvalidArgumentException", "more than 50 tags");
  /* A recreated stream starts without tags. */
  json_decref(ok(f, "DeleteStream", "{\"StreamName\":\"t\"}"));
  f->now_ms += 1000;
  json_decref(ok(f, "CreateStream", "{\"StreamName\":\"t\",\"ShardCount\":1,\"Tags\":{\"fresh\":\"yes\"}}"));
  l = ok(f, "ListTagsForStream", "{\"StreamName\":\"t\"}");
  assert_int_equal(json_array_size(json_object_get(l, "Tags")), 1);
  json_decref(l);
}

/* botocore-signed PutRecord (see test_sigv4.c for how it was computed). */
static void test_sigv4(void **state) {
  fx_t *f = *state;
  /* The stream through the engine directly (the Kinesis API wants a signature). */
  Runnel__Request req;
  runnel__request__init(&req);
  Runnel__CreateStreamRequest cr;
  runnel__create_stream_request__init(&cr);
  Runnel__StreamConfig sc;
  runnel__stream_config__init(&sc);
  sc.name = (char *)"s1";
  sc.shard_count = 1;
  cr.config = &sc;
  req.op_case = RUNNEL__REQUEST__OP_CREATE_STREAM;
  req.create_stream = &cr;
  assert_int_equal(engine_call(f, &req), 0);
  /* Unsigned: refused. */
  kerr(f, "ListStreams", "{}", "MissingAuthenticationTokenException", "Missing Authentication Token");
  const char *body = "{\"StreamName\":\"s1\",\"Data\":\"aGk=\",\"PartitionKey\":\"k\"}";
  rn_http_header_t hs[] = {
      {"content-type", "application/x-amz-json-1.1"},
      {"x-amz-target", "Kinesis_20131202.PutRecord"},
      {"x-amz-date", "20150830T123600Z"},
      {"authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kinesis/aws4_request, "
                        "SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
                        "Signature=817dffdd645489d892f0c3b21b34a74387e90e72f820c38c5244c40de3f4774a"},
  };
  hreq_t h = {.method = "POST", .path = "/", .headers = hs, .nheaders = 4, .body = body, .len = strlen(body),
              .version = 20, .authority = "kinesis.us-east-1.amazonaws.com"};
  /* Now is far from the signature's date: expired. */
  answer_t a = send_req(f, &h);
  assert_int_equal(a.status, 400);
  assert_non_null(strstr(a.body, "Signature expired"));
  free(a.body);
  f->now_ms = 1440938160000 + 1000; /* 2015-08-30T12:36:01Z */
  a = send_req(f, &h);
  if (a.status != 200) fail_msg("signed PutRecord: %d %s", a.status, a.body);
  assert_non_null(strstr(a.body, "\"ShardId\":\"shardId-000000000000\""));
  free(a.body);
  /* Another body under the same signature. */
  h.body = "{\"StreamName\":\"s1\",\"Data\":\"aGk=\",\"PartitionKey\":\"K\"}";
  a = send_req(f, &h);
  assert_int_equal(a.status, 400);
  assert_non_null(strstr(a.body, "InvalidSignatureException"));
  free(a.body);
}

static answer_t rest(fx_t *f, const char *method, const char *path, const char *query, const char *auth,
                     const char *enc, const void *body, size_t len) {
  rn_http_header_t hs[3];
  size_t n = 0;
  if (auth) hs[n++] = (rn_http_header_t){"authorization", auth};
  if (enc) hs[n++] = (rn_http_header_t){"content-encoding", enc};
  hreq_t h = {.method = method, .path = path, .query = query, .headers = hs, .nheaders = n, .body = body, .len = len};
  return send_req(f, &h);
}

static void expect_status(answer_t a, int status, const char *part) {
  if (a.status != status || (part && !strstr(a.body, part))) fail_msg("got %d %s, want %d ~%s", a.status, a.body, status, part ? part : "");
  free(a.body);
}

/* Records stored in shard 0 of stream. */
static size_t stored_records(fx_t *f, const char *stream) {
  char *it = iterator(f, stream, "shardId-000000000000", "TRIM_HORIZON", NULL);
  json_t *g = get_records(f, it, 0);
  free(it);
  size_t n = json_array_size(json_object_get(g, "Records"));
  json_decref(g);
  return n;
}

/* ?key_field=F: an event without a usable F fails alone with a per-record
 * error (the others are written), instead of silently getting a random
 * key; ?partition_key=P is the fallback when given. */
static void test_rest_key_field_missing(void **state) {
  fx_t *f = *state;
  create(f, "kf", 1);
  const char *nd = "{\"user\":\"u1\",\"e\":1}\n"
                   "{\"e\":2}\n"
                   "{\"user\":7,\"e\":3}\n"
                   "{\"user\":{\"id\":1},\"e\":4}\n"
                   "{\"user\":\"\",\"e\":5}\n"
                   "[1,2]\n";
  answer_t a = rest(f, "POST", "/v1/streams/kf/records", "key_field=user", "Bearer k2", NULL, nd, strlen(nd));
  assert_int_equal(a.status, 200);
  json_error_t jerr;
  json_t *doc = json_loads(a.body, 0, &jerr);
  assert_non_null(doc);
  assert_int_equal(json_integer_value(json_object_get(doc, "accepted")), 2);
  assert_int_equal(json_integer_value(json_object_get(doc, "failed")), 4);
  json_t *recs = json_object_get(doc, "records");
  assert_int_equal(json_array_size(recs), 6);
  const bool ok_at[6] = {true, false, true, false, false, false};
  for (size_t i = 0; i < 6; i++) {
    json_t *r = json_array_get(recs, i);
    if (ok_at[i]) {
      assert_non_null(json_object_get(r, "shard_id"));
      assert_null(json_object_get(r, "error"));
    } else {
      assert_string_equal(jstr(r, "error"), "InvalidArgumentException");
      assert_non_null(strstr(jstr(r, "message"), "no field \"user\""));
      assert_non_null(strstr(jstr(r, "message"), "key_field"));
    }
  }
  assert_int_equal(json_integer_value(json_object_get(json_array_get(recs, 0), "offset")), 0);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(recs, 2), "offset")), 1);
  json_decref(doc);
  free(a.body);
  assert_int_equal(stored_records(f, "kf"), 2);

  /* With a fallback key every event is written. */
  a = rest(f, "POST", "/v1/streams/kf/records", "key_field=user&partition_key=anon", "Bearer k2", NULL, nd, strlen(nd));
  assert_int_equal(a.status, 200);
  assert_non_null(strstr(a.body, "\"accepted\":6,\"failed\":0"));
  free(a.body);
  assert_int_equal(stored_records(f, "kf"), 8);

  /* None has the field: each fails, nothing is written; an unknown stream
   * is still 404. */
  const char *none = "{\"e\":1}\n{\"e\":2}\n";
  a = rest(f, "POST", "/v1/streams/kf/records", "key_field=user", "Bearer k2", NULL, none, strlen(none));
  assert_int_equal(a.status, 200);
  assert_non_null(strstr(a.body, "\"accepted\":0,\"failed\":2"));
  free(a.body);
  assert_int_equal(stored_records(f, "kf"), 8);
  expect_status(rest(f, "POST", "/v1/streams/nope/records", "key_field=user", "Bearer k2", NULL, none, strlen(none)),
                404, NULL);
}

static void test_rest(void **state) {
  fx_t *f = *state;
  create(f, "ev", 2);
  create(f, "priv", 1);
  const char *one = "{\"Data\":{\"user\":\"u1\",\"n\":1.50},\"PartitionKey\":\"u1\"}";
  expect_status(rest(f, "PUT", "/streams/ev/record", "", NULL, NULL, one, strlen(one)), 401, "API key");
  expect_status(rest(f, "PUT", "/streams/ev/record", "", "Bearer nope", NULL, one, strlen(one)), 401, "unknown API key");
  expect_status(rest(f, "PUT", "/streams/priv/record", "", "Bearer k1", NULL, one, strlen(one)), 403, "may not write");
  expect_status(rest(f, "PUT", "/streams/other/record", "", "Bearer k1", NULL, one, strlen(one)), 404, "not found");
  expect_status(rest(f, "PUT", "/streams/ev/record", "", "Bearer k1", NULL, one, strlen(one)), 200, "\"SequenceNumber\"");
  expect_status(rest(f, "PUT", "/streams/priv/record", "", "Bearer k2", NULL, one, strlen(one)), 200, "\"ShardId\"");
  expect_status(rest(f, "PUT", "/streams/ev/record", "", "Bearer k1", NULL, "{\"Data\":", 8), 400, "malformed JSON");
  expect_status(rest(f, "GET", "/streams/ev/record", "", "Bearer k1", NULL, NULL, 0), 405, NULL);
  expect_status(rest(f, "PUT", "/streams/ev/record", "data=bogus", "Bearer k1", NULL, one, strlen(one)), 400, "data must be");
  const char *many = "{\"records\":[{\"data\":\"text here\",\"partition-key\":\"a\"},{\"data\":[1],\"partition-key\":\"b\"}]}";
  expect_status(rest(f, "PUT", "/streams/ev/records", "data=text", "Bearer k1", NULL, many, strlen(many)), 200,
                "\"FailedRecordCount\":0");
  /* The batch endpoint, gzip'd NDJSON with keys from a field. */
  const char *nd = "{\"user\":\"u1\",\"e\":\"tap\"}\n{\"user\":\"u2\",\"e\":\"buy\"}\n";
  uint8_t comp[512];
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (Bytef *)(uintptr_t)nd;
  z.avail_in = (uInt)strlen(nd);
  z.next_out = comp;
  z.avail_out = sizeof(comp);
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  size_t cl = sizeof(comp) - z.avail_out;
  deflateEnd(&z);
  answer_t a = rest(f, "POST", "/v1/streams/ev/records", "key_field=user", "Bearer k1", "gzip", comp, cl);
  assert_int_equal(a.status, 200);
  assert_non_null(strstr(a.body, "\"accepted\":2,\"failed\":0"));
  free(a.body);
  expect_status(rest(f, "POST", "/v1/streams/ev/records", "", "Bearer k1", "br", nd, strlen(nd)), 415, NULL);
  expect_status(rest(f, "POST", "/v1/streams/ev/records", "", "Bearer k1", "gzip", nd, strlen(nd)), 400, "gzip");
  /* Too large after inflating. */
  size_t big = f->cfg.rest_max_body_bytes + 10;
  char *zeros = malloc(big);
  memset(zeros, ' ', big);
  expect_status(rest(f, "POST", "/v1/streams/ev/records", "", "Bearer k1", NULL, zeros, big), 413, NULL);
  free(zeros);
  /* Everything landed, with the event bytes as sent. */
  int found = 0;
  for (int s = 0; s < 2; s++) {
    char shard[32];
    snprintf(shard, sizeof(shard), "shardId-%012d", s);
    char *it = iterator(f, "ev", shard, "TRIM_HORIZON", NULL);
    json_t *g = get_records(f, it, 0);
    free(it);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(g, "Records"), i, r) {
      uint8_t raw[256];
      size_t rl = 0;
      const char *d = jstr(r, "Data");
      assert_int_equal(rn__b64_decode(d, strlen(d), raw, &rl), 0);
      raw[rl] = 0;
      if (strcmp((char *)raw, "{\"user\":\"u1\",\"n\":1.50}") == 0 || strcmp((char *)raw, "text here") == 0 ||
          strcmp((char *)raw, "{\"user\":\"u2\",\"e\":\"buy\"}") == 0)
        found++;
    }
    json_decref(g);
  }
  assert_int_equal(found, 3);
  /* CORS preflight. */
  rn_http_header_t oh[] = {{"origin", "https://app.example"}};
  hreq_t h = {.method = "OPTIONS", .path = "/streams/ev/record", .headers = oh, .nheaders = 1};
  a = send_req(f, &h);
  assert_int_equal(a.status, 204);
  assert_non_null(strstr(a.hdrs, "access-control-allow-origin: *"));
  free(a.body);
}

static void test_throttle(void **state) {
  fx_t *f = *state;
  create(f, "hot", 1);
  /* 1000 records/s per shard: two full PutRecords pass, a third fails per record. */
  size_t cap = 500 * 48 + 100;
  char *body = malloc(cap);
  size_t o = (size_t)snprintf(body, cap, "{\"StreamName\":\"hot\",\"Records\":[");
  for (int i = 0; i < 500; i++) o += (size_t)snprintf(body + o, cap - o, "%s{\"Data\":\"eA==\",\"PartitionKey\":\"k\"}", i ? "," : "");
  snprintf(body + o, cap - o, "]}");
  for (int round = 0; round < 3; round++) {
    json_t *p = ok(f, "PutRecords", body);
    json_int_t failed = json_integer_value(json_object_get(p, "FailedRecordCount"));
    if (round < 2) assert_int_equal(failed, 0);
    else {
      assert_int_equal(failed, 500);
      assert_string_equal(jstr(json_array_get(json_object_get(p, "Records"), 0), "ErrorCode"),
                          "ProvisionedThroughputExceededException");
    }
    json_decref(p);
  }
  kerr(f, "PutRecord", "{\"StreamName\":\"hot\",\"Data\":\"eA==\",\"PartitionKey\":\"k\"}",
       "ProvisionedThroughputExceededException", "Rate exceeded for shard shardId-000000000000 in stream hot");
  /* A second later the bucket is full again. */
  f->now_ms += 1000;
  json_decref(ok(f, "PutRecord", "{\"StreamName\":\"hot\",\"Data\":\"eA==\",\"PartitionKey\":\"k\"}"));
  free(body);
  /* Reads: 5 calls per second. */
  char *it = iterator(f, "hot", "shardId-000000000000", "LATEST", NULL);
  char req[800];
  snprintf(req, sizeof(req), "{\"ShardIterator\":\"%s\"}", it);
  for (int i = 0; i < 5; i++) json_decref(get_records(f, it, 1));
  kerr(f, "GetRecords", req, "ProvisionedThroughputExceededException", NULL);
  free(it);
}

static void group_create(fx_t *f, const char *stream, const char *group, Runnel__PositionKind kind, int64_t value) {
  Runnel__GroupCreateRequest cr;
  runnel__group_create_request__init(&cr);
  cr.stream = (char *)(uintptr_t)stream;
  cr.group = (char *)(uintptr_t)group;
  cr.start_kind = kind;
  cr.start_value = value;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_CREATE;
  req.group_create = &cr;
  assert_int_equal(engine_call(f, &req), 0);
}

static void group_describe(fx_t *f, const char *stream, const char *group) {
  Runnel__GroupDescribeRequest dr;
  runnel__group_describe_request__init(&dr);
  dr.stream = (char *)(uintptr_t)stream;
  dr.group = (char *)(uintptr_t)group;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_DESCRIBE;
  req.group_describe = &dr;
  assert_int_equal(engine_call(f, &req), 0);
}

static void test_health_and_metrics(void **state) {
  fx_t *f = *state;
  create(f, "m", 1);
  json_decref(ok(f, "PutRecord", "{\"StreamName\":\"m\",\"Data\":\"eA==\",\"PartitionKey\":\"k\"}"));
  kerr(f, "DescribeStream", "{\"StreamName\":\"none\"}", "ResourceNotFoundException", NULL);
  /* Consumer groups: one with a checkpoint (its start; the describe reads
   * the arrival time of the record there), one whose timestamp start has
   * no offset yet: its lag in time is unknown, so that series is absent. */
  group_create(f, "m", "early", RUNNEL__POSITION_KIND__POSITION_EARLIEST, 0);
  group_create(f, "m", "later", RUNNEL__POSITION_KIND__POSITION_TIMESTAMP, 4102444800000);
  group_describe(f, "m", "early");
  hreq_t h = {.method = "GET", .path = "/healthz"};
  answer_t a = send_req(f, &h);
  assert_int_equal(a.status, 200);
  assert_non_null(strstr(a.body, "\"status\":\"ok\""));
  free(a.body);
  h.path = "/readyz";
  a = send_req(f, &h);
  assert_int_equal(a.status, 200);
  free(a.body);
  h.path = "/metrics";
  a = send_req(f, &h);
  assert_int_equal(a.status, 200);
  assert_non_null(strstr(a.ctype, "text/plain"));
  const char *want[] = {
      "runnel_shard_records_in_total{stream=\"m\",shard=\"shardId-000000000000\"} 1",
      /* per stream by default (metrics_latency_detail: stream) */
      "runnel_shard_append_latency_seconds_bucket{stream=\"m\",le=\"+Inf\"} 1",
      "runnel_shard_append_latency_seconds_count{stream=\"m\"} 1",
      "runnel_shard_segments{stream=\"m\",shard=\"shardId-000000000000\"} 1",
      "runnel_shard_retention_deleted_records_total{stream=\"m\",shard=\"shardId-000000000000\"} 0",
      "# TYPE runnel_shard_stored_bytes gauge",
      "runnel_build_info{version=\"",
      "# TYPE process_resident_memory_bytes gauge",
      "# TYPE process_open_fds gauge",
      "# TYPE process_cpu_seconds_total counter",
      "# TYPE process_start_time_seconds gauge",
      "# TYPE runnel_data_dir_free_bytes gauge",
      "runnel_http_requests_total{operation=\"PutRecord\",status=\"200\"} 1",
      "runnel_http_requests_total{operation=\"DescribeStream\",status=\"400\"} 1",
      "runnel_kinesis_errors_total{code=\"ResourceNotFoundException\"} 1",
      "runnel_put_records_total{result=\"ok\"} 1",
      "# TYPE runnel_http_request_duration_seconds histogram",
      "runnel_streams 1",
      "runnel_journal_records_total 1\n",
      "runnel_journal_size_bytes 8388608\n",
      "runnel_journal_round_seconds_count 1\n",
      "# TYPE runnel_group_lag_seconds gauge",
      "runnel_group_lag_records{stream=\"m\",group=\"early\",shard=\"shardId-000000000000\"} 1\n",
      "runnel_group_lag_seconds{stream=\"m\",group=\"early\",shard=\"shardId-000000000000\"} ",
      "runnel_group_checkpoint_known{stream=\"m\",group=\"early\",shard=\"shardId-000000000000\"} 1\n",
      "runnel_group_checkpoint_known{stream=\"m\",group=\"later\",shard=\"shardId-000000000000\"} 0\n",
  };
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
    if (!strstr(a.body, want[i])) fail_msg("/metrics lacks: %s", want[i]);
  if (strstr(a.body, "runnel_group_lag_seconds{stream=\"m\",group=\"later\""))
    fail_msg("/metrics has a lag in time for a group without a checkpoint");
  if (strstr(a.body, "runnel_group_lag_milliseconds")) fail_msg("/metrics still has the milliseconds series");
  /* The Kinesis error family: every type of the table in its order, then
   * the slot for values outside it, one contiguous block. */
  const char *errs = strstr(a.body, "# TYPE runnel_kinesis_errors_total counter\n");
  assert_non_null(errs);
  errs = strchr(errs, '\n') + 1;
  const char *first = "runnel_kinesis_errors_total{code=\"AccessDeniedException\"} 0\n";
  assert_true(strncmp(errs, first, strlen(first)) == 0);
  const char *last = strstr(errs, "runnel_kinesis_errors_total{code=\"ValidationException\"} 0\n"
                                  "runnel_kinesis_errors_total{code=\"Other\"} 0\n# ");
  assert_non_null(last);
  size_t lines = 0;
  for (const char *q = errs; q < last; q++) lines += *q == '\n';
  assert_int_equal(lines, 16); /* the 16 types before ValidationException */
  /* No per-shard latency series unless asked for: bounded cardinality. */
  assert_null(strstr(a.body, "runnel_shard_append_latency_seconds_bucket{stream=\"m\",shard="));
  assert_null(strstr(a.body, "runnel_shard_fdatasync_seconds_count{stream=\"m\",shard="));
  free(a.body);
  /* Scraping is GET; anything else is 405 with Allow. */
  hreq_t post = {.method = "POST", .path = "/metrics"};
  a = send_req(f, &post);
  assert_int_equal(a.status, 405);
  assert_non_null(strstr(a.body, "GET and HEAD only"));
  free(a.body);
  post.path = "/healthz";
  a = send_req(f, &post);
  assert_int_equal(a.status, 405);
  free(a.body);
  /* Draining: not ready any more, and produce refuses with ServiceUnavailable. */
  rn_core_drain(f->eng);
  h.path = "/readyz";
  a = send_req(f, &h);
  assert_int_equal(a.status, 503);
  free(a.body);
  kerr(f, "PutRecord", "{\"StreamName\":\"m\",\"Data\":\"eA==\",\"PartitionKey\":\"k\"}", "ServiceUnavailable", NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_stream_lifecycle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_put_and_get, setup, teardown),
      cmocka_unit_test_setup_teardown(test_iterator_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cross_api, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tags, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sigv4, setup_auth, teardown),
      cmocka_unit_test_setup_teardown(test_rest, setup_rest, teardown),
      cmocka_unit_test_setup_teardown(test_rest_key_field_missing, setup_rest, teardown),
      cmocka_unit_test_setup_teardown(test_throttle, setup_throttle, teardown),
      cmocka_unit_test_setup_teardown(test_health_and_metrics, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
