/*
 * test_clmeta.c — the etcd values of the cluster and its key layout
 * (broker/cluster/plan.h, "codecs" and "keys"): the exact JSON of each
 * record, round trips at the edges of every range, every rejection with its
 * reason, the encoders' size contract, keys and prefixes under the default
 * and a custom root, the key parser's rejections, and seeded properties:
 * random valid records survive encode -> decode unchanged, and random
 * damage to encoded values is rejected or decodes to a well-formed record.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "runnel/durability.h"
#include "testutil.h"

#define U8(s) ((const uint8_t *)(s)), strlen(s)

static rn_cl_shard_t sample_shard(void) {
  rn_cl_shard_t s;
  memset(&s, 0, sizeof s);
  s.replicas[0] = 1;
  s.replicas[1] = 2;
  s.replicas[2] = 3;
  s.nreplicas = 3;
  s.leader = 1;
  s.leader_epoch = 4;
  s.isr[0] = 1;
  s.isr[1] = 2;
  s.nisr = 2;
  s.min_insync = 2;
  s.controller_epoch = 7;
  return s;
}

static rn_cl_broker_t sample_broker(void) {
  rn_cl_broker_t b;
  memset(&b, 0, sizeof b);
  b.id = 3;
  strcpy(b.advertise, "10.0.0.3:7400");
  strcpy(b.http, "broker-3.internal:7480");
  strcpy(b.rack, "eu-west-1a");
  b.started_ms = 1796187781000;
  b.draining = false;
  return b;
}

static rn_cl_stream_t sample_stream(void) {
  rn_cl_stream_t st;
  memset(&st, 0, sizeof st);
  strcpy(st.name, "clicks.v2");
  st.nshards = 4;
  st.replication = 3;
  st.min_insync = 2;
  st.retention_ms = 86400000;
  st.retention_bytes = 1073741824;
  st.durability = RN_DURABILITY_SYNC;
  st.uid = 18446744073709551615ULL;
  st.created_ms = 1796187781000;
  return st;
}

/* ---- exact encodings --------------------------------------------------------- */

static void test_encode_exact(void **state) {
  (void)state;
  char buf[RN_CL_VALUE_MAX];
  size_t len = 0;
  rn_cl_shard_t sh = sample_shard();
  assert_int_equal(rn_cl_shard_encode(&sh, buf, sizeof buf, &len), 0);
  assert_string_equal(buf, "{\"v\":1,\"replicas\":[1,2,3],\"leader\":1,\"leader_epoch\":4,\"isr\":[1,2],"
                           "\"min_insync\":2,\"controller_epoch\":7}");
  assert_int_equal(len, strlen(buf));
  rn_cl_broker_t b = sample_broker();
  assert_int_equal(rn_cl_broker_encode(&b, buf, sizeof buf, &len), 0);
  assert_string_equal(buf, "{\"v\":1,\"id\":3,\"advertise\":\"10.0.0.3:7400\",\"http\":\"broker-3.internal:7480\","
                           "\"rack\":\"eu-west-1a\",\"started_ms\":1796187781000,\"draining\":false}");
  rn_cl_stream_t st = sample_stream();
  assert_int_equal(rn_cl_stream_encode(&st, buf, sizeof buf, &len), 0);
  assert_string_equal(buf, "{\"v\":1,\"name\":\"clicks.v2\",\"nshards\":4,\"replication\":3,\"min_insync\":2,"
                           "\"retention_ms\":86400000,\"retention_bytes\":1073741824,\"durability\":\"sync\",\"uid\":\"18446744073709551615\","
                           "\"created_ms\":1796187781000}");
  rn_cl_controller_t c = {5, 12};
  assert_int_equal(rn_cl_controller_encode(&c, buf, sizeof buf, &len), 0);
  assert_string_equal(buf, "{\"v\":1,\"broker\":5,\"epoch\":12}");
  rn_cl_ineligible_t in = {2, RN_CL_INEL_LOST_TAIL, 1234, 1796187781000};
  assert_int_equal(rn_cl_ineligible_encode(&in, buf, sizeof buf, &len), 0);
  assert_string_equal(buf, "{\"v\":1,\"broker\":2,\"reason\":\"lost_tail\",\"log_end\":\"1234\",\"since_ms\":1796187781000}");
  in.reason = RN_CL_INEL_CORRUPT;
  assert_int_equal(rn_cl_ineligible_encode(&in, buf, sizeof buf, NULL), 0);
  assert_non_null(strstr(buf, "\"reason\":\"corrupt\""));
}

static void test_encode_size_and_invalid(void **state) {
  (void)state;
  rn_cl_shard_t sh = sample_shard();
  char full[RN_CL_VALUE_MAX], buf[RN_CL_VALUE_MAX];
  size_t len = 0, need = 0;
  assert_int_equal(rn_cl_shard_encode(&sh, full, sizeof full, &len), 0);
  /* too small: RN_ETOOLARGE and the length needed; exactly len + 1 is enough */
  assert_int_equal(rn_cl_shard_encode(&sh, buf, len, &need), RN_ETOOLARGE);
  assert_int_equal(need, len);
  assert_int_equal(rn_cl_shard_encode(&sh, NULL, 0, &need), RN_ETOOLARGE);
  assert_int_equal(need, len);
  assert_int_equal(rn_cl_shard_encode(&sh, buf, len + 1, &need), 0);
  assert_string_equal(buf, full);
  /* a malformed record is not encoded */
  sh.leader = 3; /* not in the ISR */
  assert_int_equal(rn_cl_shard_encode(&sh, buf, sizeof buf, &len), RN_EINVAL);
  rn_cl_broker_t b = sample_broker();
  b.advertise[0] = '\0';
  assert_int_equal(rn_cl_broker_encode(&b, buf, sizeof buf, &len), RN_EINVAL);
  rn_cl_stream_t st = sample_stream();
  st.min_insync = 4;
  assert_int_equal(rn_cl_stream_encode(&st, buf, sizeof buf, &len), RN_EINVAL);
  rn_cl_controller_t c = {0, 1};
  assert_int_equal(rn_cl_controller_encode(&c, buf, sizeof buf, &len), RN_EINVAL);
  rn_cl_ineligible_t in = {1, 9, 0, 0};
  assert_int_equal(rn_cl_ineligible_encode(&in, buf, sizeof buf, &len), RN_EINVAL);
  assert_int_equal(rn_cl_shard_encode(NULL, buf, sizeof buf, &len), RN_EINVAL);
  /* the largest broker record (every string at its limit, all escaped
   * where escaping is possible) fits RN_CL_VALUE_MAX */
  rn_cl_broker_t big;
  memset(&big, 0, sizeof big);
  big.id = UINT32_MAX;
  memset(big.advertise, 'a', 121);
  strcpy(big.advertise + 121, ":65535");
  memcpy(big.http, big.advertise, sizeof big.http);
  memset(big.rack, '"', 63);
  big.started_ms = INT64_MAX;
  assert_int_equal(rn_cl_broker_encode(&big, buf, sizeof buf, &len), 0);
  assert_true(len < RN_CL_VALUE_MAX);
  rn_cl_broker_t back;
  char why[RN_CL_WHY_MAX];
  assert_int_equal(rn_cl_broker_decode((const uint8_t *)buf, len, &back, why, sizeof why), 0);
  assert_memory_equal(&back, &big, sizeof big);
}

/* ---- round trips at the edges ------------------------------------------------ */

static void test_round_trips(void **state) {
  (void)state;
  char buf[RN_CL_VALUE_MAX], why[RN_CL_WHY_MAX];
  size_t len;
  /* shard: the largest ids and epochs, five replicas, offline */
  rn_cl_shard_t sh;
  memset(&sh, 0, sizeof sh);
  for (int i = 0; i < 5; i++) sh.replicas[i] = sh.isr[i] = UINT32_MAX - (uint32_t)i;
  sh.nreplicas = sh.nisr = 5;
  sh.leader = 0;
  sh.leader_epoch = UINT32_MAX;
  sh.min_insync = 5;
  sh.controller_epoch = UINT32_MAX;
  rn_cl_shard_t sb;
  assert_int_equal(rn_cl_shard_encode(&sh, buf, sizeof buf, &len), 0);
  assert_int_equal(rn_cl_shard_decode((const uint8_t *)buf, len, &sb, why, sizeof why), 0);
  assert_true(rn_cl_shard_equal(&sh, &sb));
  assert_memory_equal(&sh, &sb, sizeof sh);
  /* broker: IPv6 with a zone, no HTTP, no rack, draining */
  rn_cl_broker_t b = sample_broker(), bb;
  strcpy(b.advertise, "[fe80::1%eth0]:7400");
  memset(b.http, 0, sizeof b.http); /* whole arrays: the decoder zeroes what follows the NUL */
  memset(b.rack, 0, sizeof b.rack);
  b.draining = true;
  b.started_ms = 0;
  assert_int_equal(rn_cl_broker_encode(&b, buf, sizeof buf, &len), 0);
  assert_int_equal(rn_cl_broker_decode((const uint8_t *)buf, len, &bb, why, sizeof why), 0);
  assert_memory_equal(&b, &bb, sizeof b);
  /* stream: a 128-byte name, forever, durability none, uid 0 */
  rn_cl_stream_t st = sample_stream(), sb2;
  memset(st.name, 'x', 128);
  st.name[128] = '\0';
  st.retention_ms = -1;
  st.durability = RN_DURABILITY_NONE;
  st.uid = 0;
  st.nshards = INT32_MAX;
  st.replication = st.min_insync = 5;
  assert_int_equal(rn_cl_stream_encode(&st, buf, sizeof buf, &len), 0);
  assert_int_equal(rn_cl_stream_decode((const uint8_t *)buf, len, &sb2, why, sizeof why), 0);
  assert_memory_equal(&st, &sb2, sizeof st);
  st.durability = RN_DURABILITY_INTERVAL;
  assert_int_equal(rn_cl_stream_encode(&st, buf, sizeof buf, &len), 0);
  assert_int_equal(rn_cl_stream_decode((const uint8_t *)buf, len, &sb2, why, sizeof why), 0);
  assert_int_equal(sb2.durability, RN_DURABILITY_INTERVAL);
  /* controller, ineligible */
  rn_cl_controller_t c = {UINT32_MAX, UINT32_MAX}, cb;
  assert_int_equal(rn_cl_controller_encode(&c, buf, sizeof buf, &len), 0);
  assert_int_equal(rn_cl_controller_decode((const uint8_t *)buf, len, &cb, why, sizeof why), 0);
  assert_memory_equal(&c, &cb, sizeof c);
  rn_cl_ineligible_t in, ib;
  memset(&in, 0, sizeof in); /* padding after reason: the decoder zeroes it */
  in.broker = 9;
  in.reason = RN_CL_INEL_CORRUPT;
  in.log_end = UINT64_MAX;
  in.since_ms = INT64_MAX;
  assert_int_equal(rn_cl_ineligible_encode(&in, buf, sizeof buf, &len), 0);
  assert_int_equal(rn_cl_ineligible_decode((const uint8_t *)buf, len, &ib, why, sizeof why), 0);
  assert_memory_equal(&in, &ib, sizeof in);
  /* other key order and whitespace decode the same; the input need not be
   * NUL-terminated */
  const char *text = " { \"isr\" : [2, 1], \"controller_epoch\":7, \"v\":1,\"leader\":1,\"min_insync\":2,"
                     "\"replicas\":[1,2,3],\"leader_epoch\":4 }\n";
  size_t tl = strlen(text);
  uint8_t *copy = malloc(tl);
  memcpy(copy, text, tl);
  assert_int_equal(rn_cl_shard_decode(copy, tl, &sb, why, sizeof why), 0);
  free(copy);
  rn_cl_shard_t want = sample_shard();
  assert_true(rn_cl_shard_equal(&want, &sb));
  assert_int_equal(sb.isr[0], 2); /* the order as written */
}

/* ---- rejections ------------------------------------------------------------------ */

typedef struct {
  const char *json, *why;
} bad_t;

static const char shard_ok_tail[] = "\"leader_epoch\":4,\"min_insync\":2,\"controller_epoch\":7";

static void expect_shard_bad(const char *json, const char *want) {
  rn_cl_shard_t sh;
  memset(&sh, 0x5a, sizeof sh);
  char why[RN_CL_WHY_MAX];
  memset(why, 'x', sizeof why);
  rn_err_t rc = rn_cl_shard_decode(U8(json), &sh, why, sizeof why);
  if (rc != RN_EINVAL) fail_msg("%s: %d, want RN_EINVAL", json, rc);
  if (strstr(why, want) == NULL) fail_msg("%s: \"%s\", want \"%s\"", json, why, want);
  if (strncmp(why, "shard: ", 7) != 0) fail_msg("%s: \"%s\" does not name the record", json, why);
  rn_cl_shard_t zero;
  memset(&zero, 0, sizeof zero);
  assert_memory_equal(&sh, &zero, sizeof sh); /* zeroed, not half-filled */
}

static void test_shard_rejections(void **state) {
  (void)state;
  char j[512];
#define SH(fmt) (snprintf(j, sizeof j, "{\"v\":1," fmt ",%s}", shard_ok_tail), j)
  expect_shard_bad(SH("\"replicas\":[1,2,2],\"isr\":[1],\"leader\":1"), "broker 2 is listed twice in the replicas");
  expect_shard_bad(SH("\"replicas\":[1,2,3],\"isr\":[1,4],\"leader\":1"), "ISR member 4 is not a replica");
  expect_shard_bad(SH("\"replicas\":[1,2,3],\"isr\":[1,1],\"leader\":1"), "broker 1 is listed twice in the ISR");
  expect_shard_bad(SH("\"replicas\":[1,2,3],\"isr\":[1,2],\"leader\":3"), "leader 3 is not in the ISR");
  expect_shard_bad(SH("\"replicas\":[],\"isr\":[1],\"leader\":1"), "0 replicas (1..5)");
  expect_shard_bad(SH("\"replicas\":[1,2,3,4,5,6],\"isr\":[1],\"leader\":1"), "\"replicas\" has 6 entries (at most 5)");
  expect_shard_bad(SH("\"replicas\":[1,2,3],\"isr\":[],\"leader\":0"), "the ISR is empty");
  expect_shard_bad(SH("\"replicas\":[1,2],\"isr\":[1,2,3],\"leader\":1"), "3 ISR members for 2 replicas");
  expect_shard_bad(SH("\"replicas\":[0,2],\"isr\":[2],\"leader\":2"), "\"replicas\"[0] must be a broker id");
  expect_shard_bad(SH("\"replicas\":[1,2.0],\"isr\":[1],\"leader\":1"), "\"replicas\"[1] must be a broker id");
  expect_shard_bad(SH("\"replicas\":[1,4294967296],\"isr\":[1],\"leader\":1"), "\"replicas\"[1] must be a broker id");
  expect_shard_bad(SH("\"replicas\":{\"a\":1},\"isr\":[1],\"leader\":1"), "\"replicas\" must be an array of broker ids");
  expect_shard_bad(SH("\"replicas\":[1],\"isr\":[1],\"leader\":-1"), "\"leader\" must be an integer in 0..4294967295");
  expect_shard_bad(SH("\"replicas\":[1],\"isr\":[1],\"leader\":\"1\""), "\"leader\" must be an integer");
  expect_shard_bad(SH("\"replicas\":[1],\"isr\":[1],\"leader\":true"), "\"leader\" must be an integer");
  expect_shard_bad(SH("\"replicas\":[1],\"isr\":[1],\"leader\":1,\"extra\":0"), "unknown field \"extra\"");
  expect_shard_bad(SH("\"replicas\":[1],\"isr\":[1],\"leader\":1,\"leader\":1"), "not JSON: duplicate object key");
  /* min_insync out of range */
  expect_shard_bad("{\"v\":1,\"replicas\":[1,2],\"isr\":[1],\"leader\":1,\"leader_epoch\":1,\"min_insync\":3,"
                   "\"controller_epoch\":1}",
                   "min_insync 3 is outside 1..2 (the replica count)");
  expect_shard_bad("{\"v\":1,\"replicas\":[1,2],\"isr\":[1],\"leader\":1,\"leader_epoch\":1,\"min_insync\":0,"
                   "\"controller_epoch\":1}",
                   "min_insync 0 is outside 1..2");
  /* a missing field */
  expect_shard_bad("{\"v\":1,\"replicas\":[1],\"isr\":[1],\"leader\":1,\"leader_epoch\":1,\"min_insync\":1}",
                   "no \"controller_epoch\"");
  /* the version */
  expect_shard_bad("{\"v\":2,\"replicas\":[1],\"isr\":[1],\"leader\":1,\"leader_epoch\":1,\"min_insync\":1,"
                   "\"controller_epoch\":1}",
                   "unknown version 2 (this broker reads 1)");
  expect_shard_bad("{\"replicas\":[1],\"isr\":[1],\"leader\":1,\"leader_epoch\":1,\"min_insync\":1,"
                   "\"controller_epoch\":1}",
                   "no \"v\" (the version)");
  expect_shard_bad("{\"v\":\"1\"}", "\"v\" must be an integer");
  expect_shard_bad("{\"v\":1.0}", "\"v\" must be an integer");
  /* not JSON, not an object, trailing bytes, empty */
  expect_shard_bad("{\"v\":1", "not JSON");
  expect_shard_bad("[1,2]", "not a JSON object");
  expect_shard_bad("{\"v\":1} {}", "not JSON");
  expect_shard_bad("\"v\"", "not JSON");
  expect_shard_bad("", "empty value");
  expect_shard_bad("{\"v\":1,\"k\\u0000\":1}", "not JSON");
  /* a key with control bytes is shown without them: one line */
  {
    rn_cl_shard_t sh;
    char why[RN_CL_WHY_MAX];
    assert_int_equal(rn_cl_shard_decode(U8("{\"v\":1,\"a\\nb\":1}"), &sh, why, sizeof why), RN_EINVAL);
    assert_string_equal(why, "shard: unknown field \"a?b\"");
  }
  /* too long */
  {
    size_t n = RN_CL_VALUE_MAX;
    uint8_t *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    rn_cl_shard_t sh;
    char why[RN_CL_WHY_MAX];
    assert_int_equal(rn_cl_shard_decode(big, n, &sh, why, sizeof why), RN_EINVAL);
    assert_string_equal(why, "shard: value of 4096 bytes (at most 4095)");
    free(big);
  }
  /* NULL data, NULL output; a tiny why buffer is still terminated */
  rn_cl_shard_t sh;
  char why[8];
  assert_int_equal(rn_cl_shard_decode(NULL, 3, &sh, why, sizeof why), RN_EINVAL);
  assert_int_equal(strlen(why), 7);
  assert_int_equal(rn_cl_shard_decode(U8("{}"), NULL, NULL, 0), RN_EINVAL);
#undef SH
}

static void expect_bad(rn_err_t (*dec)(const uint8_t *, size_t, void *, char *, size_t), const char *json,
                       const char *want) {
  uint8_t out[1024];
  char why[RN_CL_WHY_MAX] = "";
  rn_err_t rc = dec(U8(json), out, why, sizeof why);
  if (rc != RN_EINVAL) fail_msg("%s: %d, want RN_EINVAL", json, rc);
  if (strstr(why, want) == NULL) fail_msg("%s: \"%s\", want \"%s\"", json, why, want);
}

static rn_err_t dec_broker(const uint8_t *d, size_t n, void *o, char *w, size_t l) { return rn_cl_broker_decode(d, n, o, w, l); }
static rn_err_t dec_stream(const uint8_t *d, size_t n, void *o, char *w, size_t l) { return rn_cl_stream_decode(d, n, o, w, l); }
static rn_err_t dec_ctl(const uint8_t *d, size_t n, void *o, char *w, size_t l) { return rn_cl_controller_decode(d, n, o, w, l); }
static rn_err_t dec_inel(const uint8_t *d, size_t n, void *o, char *w, size_t l) { return rn_cl_ineligible_decode(d, n, o, w, l); }

static void test_other_rejections(void **state) {
  (void)state;
  char j[700];
#define BR(adv, http, rack, rest) \
  (snprintf(j, sizeof j, "{\"v\":1,\"id\":3,\"advertise\":\"%s\",\"http\":\"%s\",\"rack\":\"%s\",%s}", adv, http, rack, rest), j)
  const char *okrest = "\"started_ms\":1,\"draining\":false";
  uint8_t out[1024];
  assert_int_equal(rn_cl_broker_decode(U8(BR("h:1", "", "", okrest)), (rn_cl_broker_t *)out, NULL, 0), 0);
  expect_bad(dec_broker, BR("", "", "", okrest), "advertise \"\" is not host:port");
  expect_bad(dec_broker, BR("host", "", "", okrest), "is not host:port");
  expect_bad(dec_broker, BR(":7400", "", "", okrest), "is not host:port");
  expect_bad(dec_broker, BR("h:0", "", "", okrest), "is not host:port");
  expect_bad(dec_broker, BR("h:65536", "", "", okrest), "is not host:port");
  expect_bad(dec_broker, BR("h:07400", "", "", okrest), "is not host:port");
  expect_bad(dec_broker, BR("h:74a0", "", "", okrest), "is not host:port");
  expect_bad(dec_broker, BR("h h:7400", "", "", okrest), "is not host:port");
  expect_bad(dec_broker, BR("[::1:7400", "", "", okrest), "is not host:port");
  expect_bad(dec_broker, BR("[xyz]:7400", "", "", okrest), "is not host:port");
  expect_bad(dec_broker, BR("h:1", "nope", "", okrest), "http \"nope\" is not host:port (port 1..65535) nor empty");
  expect_bad(dec_broker, BR("h:1", "", "a b", okrest), "rack \"a b\" has a byte that is not printable ASCII");
  expect_bad(dec_broker, BR("h:1", "", "\\u00e9", okrest), "has a byte that is not printable ASCII");
  expect_bad(dec_broker, BR("h:1", "", "", "\"started_ms\":-1,\"draining\":false"), "started_ms -1 is negative");
  expect_bad(dec_broker, BR("h:1", "", "", "\"started_ms\":1,\"draining\":0"), "\"draining\" must be true or false");
  expect_bad(dec_broker, BR("h:1", "", "", "\"started_ms\":1.5,\"draining\":false"), "\"started_ms\" must be an integer");
  expect_bad(dec_broker, BR("h:1", "", "", "\"started_ms\":1,\"draining\":false,\"zone\":\"a\""), "unknown field \"zone\"");
  expect_bad(dec_broker, BR("h:1", "", "", "\"started_ms\":1"), "broker: no \"draining\"");
  char longrack[80];
  memset(longrack, 'r', 64);
  longrack[64] = '\0';
  expect_bad(dec_broker, BR("h:1", "", longrack, okrest), "\"rack\" is 64 bytes long (at most 63)");
  expect_bad(dec_broker, "{\"v\":1,\"id\":0,\"advertise\":\"h:1\",\"http\":\"\",\"rack\":\"\",\"started_ms\":1,\"draining\":false}",
             "broker: id 0 (broker ids are >= 1)");
#undef BR

#define ST(name, rest) (snprintf(j, sizeof j, "{\"v\":1,\"name\":\"%s\",%s}", name, rest), j)
  const char *base = "\"nshards\":4,\"replication\":3,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":\"sync\","
                     "\"uid\":\"7\",\"created_ms\":0";
  assert_int_equal(rn_cl_stream_decode(U8(ST("s", base)), (rn_cl_stream_t *)out, NULL, 0), 0);
  expect_bad(dec_stream, ST("a/b", base), "stream: name \"a/b\" breaks the name rule");
  expect_bad(dec_stream, ST("..", base), "breaks the name rule");
  expect_bad(dec_stream, ST("", base), "breaks the name rule");
  static const struct {
    const char *rest, *why;
  } sbad[] = {
      {"\"nshards\":0,\"replication\":3,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":\"sync\",\"uid\":\"7\",\"created_ms\":0",
       "nshards 0 is outside 1..2147483647"},
      {"\"nshards\":2147483648,\"replication\":3,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":\"sync\",\"uid\":\"7\",\"created_ms\":0",
       "nshards 2147483648 is outside"},
      {"\"nshards\":4,\"replication\":6,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":\"sync\",\"uid\":\"7\",\"created_ms\":0",
       "replication 6 is outside 1..5"},
      {"\"nshards\":4,\"replication\":3,\"min_insync\":4,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":\"sync\",\"uid\":\"7\",\"created_ms\":0",
       "min_insync 4 is outside 1..3 (the replication)"},
      {"\"nshards\":4,\"replication\":3,\"min_insync\":2,\"retention_ms\":0,\"retention_bytes\":-1,\"durability\":\"sync\",\"uid\":\"7\",\"created_ms\":0",
       "retention_ms 0 is neither -1 (forever) nor >= 1"},
      {"\"nshards\":4,\"replication\":3,\"min_insync\":2,\"retention_ms\":-2,\"retention_bytes\":-1,\"durability\":\"sync\",\"uid\":\"7\",\"created_ms\":0",
       "retention_ms -2 is neither"},
      {"\"nshards\":4,\"replication\":3,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":0,\"durability\":\"sync\",\"uid\":\"7\",\"created_ms\":0",
       "retention_bytes 0 is neither -1 (unlimited) nor >= 1"},
      {"\"nshards\":4,\"replication\":3,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":\"fast\",\"uid\":\"7\",\"created_ms\":0",
       "\"durability\" must be \"sync\", \"interval\" or \"none\""},
      {"\"nshards\":4,\"replication\":3,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":0,\"uid\":\"7\",\"created_ms\":0",
       "\"durability\" must be"},
      {"\"nshards\":4,\"replication\":3,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":\"sync\",\"uid\":7,\"created_ms\":0",
       "\"uid\" must be a decimal string"},
      {"\"nshards\":4,\"replication\":3,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":\"sync\",\"uid\":\"07\",\"created_ms\":0",
       "\"uid\" must be a decimal string"},
      {"\"nshards\":4,\"replication\":3,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":\"sync\",\"uid\":\"-7\",\"created_ms\":0",
       "\"uid\" must be a decimal string"},
      {"\"nshards\":4,\"replication\":3,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":\"sync\",\"uid\":\"\",\"created_ms\":0",
       "\"uid\" must be a decimal string"},
      {"\"nshards\":4,\"replication\":3,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":\"sync\",\"uid\":\"18446744073709551616\",\"created_ms\":0",
       "\"uid\" must be a decimal string"},
      {"\"nshards\":4,\"replication\":3,\"min_insync\":2,\"retention_ms\":-1,\"retention_bytes\":-1,\"durability\":\"sync\",\"uid\":\"7\",\"created_ms\":-5",
       "created_ms -5 is negative"},
  };
  for (size_t i = 0; i < sizeof sbad / sizeof sbad[0]; i++) expect_bad(dec_stream, ST("s", sbad[i].rest), sbad[i].why);
  char longname[200];
  memset(longname, 'n', 129);
  longname[129] = '\0';
  expect_bad(dec_stream, ST(longname, base), "\"name\" is 129 bytes long (at most 128)");
#undef ST

  expect_bad(dec_ctl, "{\"v\":1,\"broker\":0,\"epoch\":1}", "controller: broker 0 (broker ids are >= 1)");
  expect_bad(dec_ctl, "{\"v\":1,\"broker\":1,\"epoch\":0}", "controller: epoch 0 (epochs start at 1)");
  expect_bad(dec_ctl, "{\"v\":1,\"broker\":1}", "controller: no \"epoch\"");
  expect_bad(dec_ctl, "{\"v\":3,\"broker\":1,\"epoch\":1}", "controller: unknown version 3");
  expect_bad(dec_inel, "{\"v\":1,\"broker\":1,\"reason\":\"tired\",\"log_end\":\"0\",\"since_ms\":0}",
             "\"reason\" must be \"lost_tail\" or \"corrupt\"");
  expect_bad(dec_inel, "{\"v\":1,\"broker\":1,\"reason\":1,\"log_end\":\"0\",\"since_ms\":0}", "\"reason\" must be");
  expect_bad(dec_inel, "{\"v\":1,\"broker\":0,\"reason\":\"corrupt\",\"log_end\":\"0\",\"since_ms\":0}", "broker 0");
  expect_bad(dec_inel, "{\"v\":1,\"broker\":1,\"reason\":\"corrupt\",\"log_end\":\"0\",\"since_ms\":-1}",
             "since_ms -1 is negative");
}

/* ---- keys ------------------------------------------------------------------------- */

static void key_is(const char *root, rn_cl_key_t k, const char *want) {
  char buf[RN_CL_KEY_MAX];
  size_t len = 0;
  assert_int_equal(rn_cl_key_format(root, &k, buf, sizeof buf, &len), 0);
  assert_string_equal(buf, want);
  assert_int_equal(len, strlen(want));
  rn_cl_key_t back;
  assert_int_equal(rn_cl_key_parse(root, buf, len, &back), 0);
  assert_int_equal(back.kind, k.kind);
  assert_int_equal(back.broker, k.kind == RN_CL_KEY_BROKER || k.kind == RN_CL_KEY_INELIGIBLE ? k.broker : 0);
  assert_int_equal(back.shard, k.kind == RN_CL_KEY_SHARD || k.kind == RN_CL_KEY_INELIGIBLE ? k.shard : 0);
  if (k.kind >= RN_CL_KEY_STREAM) assert_string_equal(back.stream, k.stream);
}

static rn_cl_key_t key(rn_cl_key_kind_t kind, uint32_t broker, const char *stream, uint32_t shard) {
  rn_cl_key_t k;
  memset(&k, 0, sizeof k);
  k.kind = kind;
  k.broker = broker;
  if (stream) snprintf(k.stream, sizeof k.stream, "%s", stream);
  k.shard = shard;
  return k;
}

static void test_keys(void **state) {
  (void)state;
  key_is(NULL, key(RN_CL_KEY_BROKER, 7, NULL, 0), "/runnel/brokers/0000000007");
  key_is(NULL, key(RN_CL_KEY_CONTROLLER, 0, NULL, 0), "/runnel/controller");
  key_is(NULL, key(RN_CL_KEY_CONTROLLER_EPOCH, 0, NULL, 0), "/runnel/controller_epoch");
  key_is(NULL, key(RN_CL_KEY_STREAM, 0, "clicks", 0), "/runnel/streams/clicks");
  key_is(NULL, key(RN_CL_KEY_SHARD, 0, "clicks", 3), "/runnel/shards/clicks/0000000003");
  key_is(NULL, key(RN_CL_KEY_INELIGIBLE, 2, "clicks", 3), "/runnel/ineligible/clicks/0000000003/0000000002");
  key_is("/prod/eu-1", key(RN_CL_KEY_SHARD, 0, "a.b-c_d", UINT32_MAX), "/prod/eu-1/shards/a.b-c_d/4294967295");
  key_is("/x", key(RN_CL_KEY_BROKER, UINT32_MAX, NULL, 0), "/x/brokers/4294967295");
  /* the longest key fits RN_CL_KEY_MAX */
  char root[RN_CL_ROOT_MAX + 1], name[RN_NAME_MAX + 1], buf[RN_CL_KEY_MAX];
  memset(root, 'r', RN_CL_ROOT_MAX);
  root[0] = '/';
  root[RN_CL_ROOT_MAX] = '\0';
  memset(name, 'n', RN_NAME_MAX);
  name[RN_NAME_MAX] = '\0';
  size_t len;
  rn_cl_key_t k = key(RN_CL_KEY_INELIGIBLE, UINT32_MAX, name, UINT32_MAX);
  assert_int_equal(rn_cl_key_format(root, &k, buf, sizeof buf, &len), 0);
  assert_int_equal(rn_cl_key_format(root, &k, buf, len, &len), RN_ETOOLARGE);
  assert_int_equal(rn_cl_key_format(root, &k, buf, len + 1, &len), 0);
  /* prefixes */
  char p[RN_CL_KEY_MAX];
  assert_int_equal(rn_cl_key_prefix(NULL, RN_CL_KEY_BROKER, NULL, 0, p, sizeof p, &len), 0);
  assert_string_equal(p, "/runnel/brokers/");
  assert_int_equal(rn_cl_key_prefix(NULL, RN_CL_KEY_STREAM, NULL, 0, p, sizeof p, &len), 0);
  assert_string_equal(p, "/runnel/streams/");
  assert_int_equal(rn_cl_key_prefix("/r", RN_CL_KEY_SHARD, "s1", 0, p, sizeof p, &len), 0);
  assert_string_equal(p, "/r/shards/s1/");
  assert_int_equal(rn_cl_key_prefix("/r", RN_CL_KEY_INELIGIBLE, "s1", 12, p, sizeof p, &len), 0);
  assert_string_equal(p, "/r/ineligible/s1/0000000012/");
  assert_int_equal(len, strlen(p));
  assert_int_equal(rn_cl_key_prefix("/r", RN_CL_KEY_CONTROLLER, NULL, 0, p, sizeof p, &len), RN_EINVAL);
  assert_int_equal(rn_cl_key_prefix("/r", RN_CL_KEY_SHARD, "a/b", 0, p, sizeof p, &len), RN_EINVAL);
  assert_int_equal(rn_cl_key_prefix("/r", RN_CL_KEY_SHARD, NULL, 0, p, sizeof p, &len), RN_EINVAL);
  assert_int_equal(rn_cl_key_prefix("/r", RN_CL_KEY_BROKER, NULL, 0, p, 10, &len), RN_ETOOLARGE);
  /* a prefix of one stream is no prefix of another */
  char ka[RN_CL_KEY_MAX];
  k = key(RN_CL_KEY_SHARD, 0, "a.b", 0);
  assert_int_equal(rn_cl_key_format(NULL, &k, ka, sizeof ka, NULL), 0);
  assert_int_equal(rn_cl_key_prefix(NULL, RN_CL_KEY_SHARD, "a", 0, p, sizeof p, &len), 0);
  assert_int_not_equal(strncmp(ka, p, len), 0);
  /* format rejections */
  k = key(RN_CL_KEY_BROKER, 0, NULL, 0);
  assert_int_equal(rn_cl_key_format(NULL, &k, buf, sizeof buf, NULL), RN_EINVAL);
  k = key(RN_CL_KEY_STREAM, 0, "bad name", 0);
  assert_int_equal(rn_cl_key_format(NULL, &k, buf, sizeof buf, NULL), RN_EINVAL);
  k = key((rn_cl_key_kind_t)99, 0, NULL, 0);
  assert_int_equal(rn_cl_key_format(NULL, &k, buf, sizeof buf, NULL), RN_EINVAL);
  k = key(RN_CL_KEY_CONTROLLER, 0, NULL, 0);
  assert_int_equal(rn_cl_key_format("runnel", &k, buf, sizeof buf, NULL), RN_EINVAL);
  assert_int_equal(rn_cl_key_format(NULL, NULL, buf, sizeof buf, NULL), RN_EINVAL);
}

static void test_key_parse_rejections(void **state) {
  (void)state;
  static const char *const bad[] = {
      "/runnel",
      "/runnel/",
      "/runnelx/controller",
      "/other/controller",
      "/runnel/controller/",
      "/runnel/controller/x",
      "/runnel/controllers",
      "/runnel/brokers",
      "/runnel/brokers/",
      "/runnel/brokers/7",
      "/runnel/brokers/0000000000",
      "/runnel/brokers/4294967296",
      "/runnel/brokers/000000000a",
      "/runnel/brokers/0000000007/",
      "/runnel/streams/",
      "/runnel/streams/a b",
      "/runnel/streams/..",
      "/runnel/streams/a/",
      "/runnel/shards/a",
      "/runnel/shards/a/",
      "/runnel/shards/a/1",
      "/runnel/shards/a/00000000001",
      "/runnel/shards/a/0000000001/x",
      "/runnel/ineligible/a/0000000001",
      "/runnel/ineligible/a/0000000001/",
      "/runnel/ineligible/a/0000000001/0000000000",
      "/runnel/ineligible/a/0000000001/0000000002/",
      "/runnel/unknown/a",
      "runnel/controller",
      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rn_cl_key_t k;
    memset(&k, 0x11, sizeof k);
    if (rn_cl_key_parse(NULL, bad[i], strlen(bad[i]), &k) != RN_EINVAL) fail_msg("\"%s\" parsed", bad[i]);
    assert_int_equal(k.kind, 0);
  }
  rn_cl_key_t k;
  /* a NUL inside; a key parsed under the wrong root; a bad root */
  assert_int_equal(rn_cl_key_parse(NULL, "/runnel/controller\0x", 20, &k), RN_EINVAL);
  assert_int_equal(rn_cl_key_parse("/a", "/runnel/controller", 18, &k), RN_EINVAL);
  assert_int_equal(rn_cl_key_parse("/a/", "/a//controller", 14, &k), RN_EINVAL);
  assert_int_equal(rn_cl_key_parse(NULL, NULL, 0, &k), RN_EINVAL);
  /* only len bytes are read */
  assert_int_equal(rn_cl_key_parse(NULL, "/runnel/controllerXYZ", 18, &k), 0);
  assert_int_equal(k.kind, RN_CL_KEY_CONTROLLER);
}

static void test_root_check(void **state) {
  (void)state;
  char why[RN_CL_WHY_MAX];
  assert_int_equal(rn_cl_root_check("/runnel", why, sizeof why), 0);
  assert_int_equal(rn_cl_root_check("/a/b.c/d-e_f", why, sizeof why), 0);
  static const struct {
    const char *root, *why;
  } bad[] = {
      {"", "cluster root \"\": 2..128 bytes, like /runnel"},
      {"/", "cluster root \"/\": 2..128 bytes, like /runnel"},
      {"runnel", "cluster root \"runnel\" must start with '/'"},
      {"/runnel/", "cluster root \"/runnel/\" has an empty segment (\"//\" or a trailing '/')"},
      {"/a//b", "has an empty segment"},
      {"/a/./b", "cluster root \"/a/./b\" has a \".\" or \"..\" segment"},
      {"/..", "has a \".\" or \"..\" segment"},
      {"/a b", "cluster root \"/a b\": segments of A-Z a-z 0-9 _ . - only"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(rn_cl_root_check(bad[i].root, why, sizeof why), RN_EINVAL);
    if (strcmp(why, bad[i].why) != 0 && strstr(why, bad[i].why) == NULL)
      fail_msg("\"%s\": \"%s\", want \"%s\"", bad[i].root, why, bad[i].why);
  }
  char longroot[RN_CL_ROOT_MAX + 2];
  memset(longroot, 'r', sizeof longroot - 1);
  longroot[0] = '/';
  longroot[sizeof longroot - 1] = '\0';
  assert_int_equal(rn_cl_root_check(longroot, why, sizeof why), RN_EINVAL);
  longroot[RN_CL_ROOT_MAX] = '\0';
  assert_int_equal(rn_cl_root_check(longroot, why, sizeof why), 0);
  assert_int_equal(rn_cl_root_check(NULL, why, sizeof why), RN_EINVAL);
}

/* ---- properties ------------------------------------------------------------------- */

static rn_cl_shard_t random_valid_shard(uint64_t *seed) {
  rn_cl_shard_t s;
  memset(&s, 0, sizeof s);
  s.nreplicas = (uint8_t)(1 + rn_test_rand_below(seed, RN_CL_MAX_REPLICAS));
  for (unsigned i = 0; i < s.nreplicas; i++) {
    uint32_t id;
    bool dup;
    do {
      id = rn_test_rand_below(seed, 2) ? (uint32_t)(1 + rn_test_rand_below(seed, 9))
                                      : (uint32_t)(1 + rn_test_rand_below(seed, UINT32_MAX));
      dup = false;
      for (unsigned j = 0; j < i; j++) dup |= s.replicas[j] == id;
    } while (dup);
    s.replicas[i] = id;
  }
  /* the ISR: a random non-empty subset in random order */
  for (unsigned i = 0; i < s.nreplicas; i++)
    if (rn_test_rand_below(seed, 2)) s.isr[s.nisr++] = s.replicas[i];
  if (s.nisr == 0) s.isr[s.nisr++] = s.replicas[0];
  for (unsigned i = s.nisr; i > 1; i--) {
    unsigned j = (unsigned)rn_test_rand_below(seed, i);
    uint32_t t = s.isr[i - 1];
    s.isr[i - 1] = s.isr[j];
    s.isr[j] = t;
  }
  s.leader = rn_test_rand_below(seed, 5) == 0 ? 0 : s.isr[rn_test_rand_below(seed, s.nisr)];
  s.leader_epoch = (uint32_t)rn_test_rand(seed);
  s.min_insync = (uint32_t)(1 + rn_test_rand_below(seed, s.nreplicas));
  s.controller_epoch = (uint32_t)rn_test_rand(seed);
  return s;
}

static void test_property_round_trip(void **state) {
  (void)state;
  uint64_t seed = 0xc1a5u;
  char buf[RN_CL_VALUE_MAX], why[RN_CL_WHY_MAX];
  size_t len;
  for (int iter = 0; iter < 20000; iter++) {
    rn_cl_shard_t s = random_valid_shard(&seed), back;
    assert_int_equal(rn_cl_shard_check(&s, why, sizeof why), 0);
    assert_int_equal(rn_cl_shard_encode(&s, buf, sizeof buf, &len), 0);
    if (rn_cl_shard_decode((const uint8_t *)buf, len, &back, why, sizeof why) != 0) fail_msg("%s: %s", buf, why);
    assert_memory_equal(&s, &back, sizeof s); /* identity, order and zeroed slots included */

    rn_cl_broker_t b, bb;
    memset(&b, 0, sizeof b);
    b.id = (uint32_t)(1 + rn_test_rand_below(&seed, UINT32_MAX));
    snprintf(b.advertise, sizeof b.advertise, "h%u.example:%u", (unsigned)rn_test_rand_below(&seed, 1000),
             (unsigned)(1 + rn_test_rand_below(&seed, 65535)));
    if (rn_test_rand_below(&seed, 2))
      snprintf(b.http, sizeof b.http, "[::%x]:%u", (unsigned)rn_test_rand_below(&seed, 65536),
               (unsigned)(1 + rn_test_rand_below(&seed, 65535)));
    for (size_t i = 0, n = rn_test_rand_below(&seed, 64); i < n; i++)
      b.rack[i] = (char)(0x21 + rn_test_rand_below(&seed, 0x7e - 0x21 + 1)); /* '"' and '\\' included */
    b.started_ms = (int64_t)(rn_test_rand(&seed) >> 1);
    b.draining = rn_test_rand_below(&seed, 2);
    assert_int_equal(rn_cl_broker_encode(&b, buf, sizeof buf, &len), 0);
    if (rn_cl_broker_decode((const uint8_t *)buf, len, &bb, why, sizeof why) != 0) fail_msg("%s: %s", buf, why);
    assert_memory_equal(&b, &bb, sizeof b);

    rn_cl_stream_t st, sb;
    memset(&st, 0, sizeof st);
    static const char nc[] = "abcXYZ019_.-";
    size_t nl = 1 + rn_test_rand_below(&seed, RN_NAME_MAX);
    for (size_t i = 0; i < nl; i++) st.name[i] = nc[rn_test_rand_below(&seed, sizeof nc - 1)];
    if (strcmp(st.name, ".") == 0 || strcmp(st.name, "..") == 0) st.name[0] = 'a';
    st.nshards = (uint32_t)(1 + rn_test_rand_below(&seed, INT32_MAX));
    st.replication = (uint32_t)(1 + rn_test_rand_below(&seed, 5));
    st.min_insync = (uint32_t)(1 + rn_test_rand_below(&seed, st.replication));
    st.retention_ms = rn_test_rand_below(&seed, 4) == 0 ? -1 : (int64_t)(1 + (rn_test_rand(&seed) >> 2));
    st.retention_bytes = rn_test_rand_below(&seed, 4) == 0 ? -1 : (int64_t)(1 + (rn_test_rand(&seed) >> 2));
    st.durability = (uint8_t)rn_test_rand_below(&seed, 3);
    st.uid = rn_test_rand(&seed);
    st.created_ms = (int64_t)(rn_test_rand(&seed) >> 1);
    assert_int_equal(rn_cl_stream_encode(&st, buf, sizeof buf, &len), 0);
    if (rn_cl_stream_decode((const uint8_t *)buf, len, &sb, why, sizeof why) != 0) fail_msg("%s: %s", buf, why);
    assert_memory_equal(&st, &sb, sizeof st);
  }
}

/* Damaged values: flip, insert, delete bytes of an encoding. Every result
 * is either rejected with a one-line reason naming the record, or decodes
 * to a record that passes its check and encodes back to something that
 * decodes to the same record. */
static void test_property_damage(void **state) {
  (void)state;
  uint64_t seed = 0xdead15u;
  char enc[RN_CL_VALUE_MAX], buf[RN_CL_VALUE_MAX + 16], re[RN_CL_VALUE_MAX], why[RN_CL_WHY_MAX];
  static const char alphabet[] = "{}[],:\"0123456789-.e vtrufalsn\\";
  size_t accepted = 0;
  for (int iter = 0; iter < 30000; iter++) {
    rn_cl_shard_t s = random_valid_shard(&seed), d, d2;
    size_t len;
    assert_int_equal(rn_cl_shard_encode(&s, enc, sizeof enc, &len), 0);
    memcpy(buf, enc, len);
    for (int m = 0, nm = 1 + (int)rn_test_rand_below(&seed, 3); m < nm; m++) {
      size_t at = (size_t)rn_test_rand_below(&seed, len + 1);
      char c = alphabet[rn_test_rand_below(&seed, sizeof alphabet - 1)];
      switch (rn_test_rand_below(&seed, 3)) {
      case 0:
        if (at < len) buf[at] = c;
        break;
      case 1:
        memmove(buf + at + 1, buf + at, len - at);
        buf[at] = c;
        len++;
        break;
      default:
        if (at < len) {
          memmove(buf + at, buf + at + 1, len - at - 1);
          len--;
        }
      }
    }
    memset(why, 'x', sizeof why);
    rn_err_t rc = rn_cl_shard_decode((const uint8_t *)buf, len, &d, why, sizeof why);
    if (rc != 0) {
      assert_int_equal(rc, RN_EINVAL);
      assert_non_null(memchr(why, '\0', sizeof why));
      assert_null(strchr(why, '\n'));
      assert_int_equal(strncmp(why, "shard: ", 7), 0);
      continue;
    }
    accepted++;
    assert_int_equal(rn_cl_shard_check(&d, NULL, 0), 0);
    size_t rl;
    assert_int_equal(rn_cl_shard_encode(&d, re, sizeof re, &rl), 0);
    assert_int_equal(rn_cl_shard_decode((const uint8_t *)re, rl, &d2, why, sizeof why), 0);
    assert_memory_equal(&d, &d2, sizeof d);
  }
  assert_true(accepted > 100); /* some damage is harmless (a digit changed) */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encode_exact),        cmocka_unit_test(test_encode_size_and_invalid),
      cmocka_unit_test(test_round_trips),         cmocka_unit_test(test_shard_rejections),
      cmocka_unit_test(test_other_rejections),    cmocka_unit_test(test_keys),
      cmocka_unit_test(test_key_parse_rejections), cmocka_unit_test(test_root_check),
      cmocka_unit_test(test_property_round_trip), cmocka_unit_test(test_property_damage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
