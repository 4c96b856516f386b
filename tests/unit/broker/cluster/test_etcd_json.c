/*
 * test_etcd_json.c — the etcd v3 gateway codec (broker/cluster/etcd_json.h):
 * the exact request bodies, and the decoding of answers as etcd 3.4's
 * gateway writes them (success, error, streamed, malformed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "etcd_json.h"

static void body_is(rn_buf_t *b, const char *want) {
  assert_false(b->oom);
  assert_string_equal(b->p, want);
  rn_buf_free(b);
}

static void test_bodies(void **state) {
  rn_buf_t b = {0};
  rn__etcd_body_range(&b, "foo", false);
  body_is(&b, "{\"key\":\"Zm9v\"}");
  rn__etcd_body_range(&b, "foo", true);
  body_is(&b, "{\"key\":\"Zm9v\",\"range_end\":\"Zm9w\"}");
  rn__etcd_body_range(&b, "", true);
  body_is(&b, "{\"key\":\"AA==\",\"range_end\":\"AA==\"}");
  rn__etcd_body_put(&b, "k", (const uint8_t *)"v", 1, 7);
  body_is(&b, "{\"key\":\"aw==\",\"value\":\"dg==\",\"lease\":\"7\"}");
  rn__etcd_body_put(&b, "k", NULL, 0, 0);
  body_is(&b, "{\"key\":\"aw==\",\"value\":\"\"}");
  rn__etcd_body_grant(&b, 10);
  body_is(&b, "{\"TTL\":\"10\"}");
  rn__etcd_body_lease(&b, 694);
  body_is(&b, "{\"ID\":\"694\"}");
  rn__etcd_body_watch(&b, (const uint8_t *)"a/", 2, 5);
  body_is(&b, "{\"create_request\":{\"key\":\"YS8=\",\"range_end\":\"YTA=\",\"start_revision\":\"5\","
              "\"progress_notify\":true}}");
  rn_etcd_cmp_t c[2] = {{.key = "k", .target = RN_ETCD_CMP_MOD, .op = RN_ETCD_EQUAL, .num = 3},
                        {.key = "k", .target = RN_ETCD_CMP_VALUE, .op = RN_ETCD_NOT_EQUAL,
                         .value = (const uint8_t *)"v", .value_len = 1}};
  rn_etcd_op_t t[2] = {{.kind = RN_ETCD_OP_PUT, .key = "k", .value = (const uint8_t *)"v", .value_len = 1},
                       {.kind = RN_ETCD_OP_RANGE, .key = "k"}};
  rn_etcd_op_t f[1] = {{.kind = RN_ETCD_OP_DELETE, .key = "k", .prefix = true}};
  rn__etcd_body_txn(&b, c, 2, t, 2, f, 1);
  body_is(&b, "{\"compare\":[{\"key\":\"aw==\",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":\"3\"},"
              "{\"key\":\"aw==\",\"target\":\"VALUE\",\"result\":\"NOT_EQUAL\",\"value\":\"dg==\"}],"
              "\"success\":[{\"request_put\":{\"key\":\"aw==\",\"value\":\"dg==\"}},{\"request_range\":{\"key\":\"aw==\"}}],"
              "\"failure\":[{\"request_delete_range\":{\"key\":\"aw==\",\"range_end\":\"bA==\"}}]}");
}

static rn_err_t dec(rn__etcd_kind_t k, long st, const char *s, rn__etcd_answer_t *a) {
  return rn__etcd_decode(k, st, s, strlen(s), a);
}

static void test_answers(void **state) {
  rn__etcd_answer_t a;
  const char *range = "{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"9\",\"raft_term\":\"2\"},"
                      "\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"9\",\"version\":\"3\","
                      "\"value\":\"YmFy\"}],\"count\":\"1\"}";
  assert_int_equal(dec(RN__ETCD_RANGE, 200, range, &a), 0);
  assert_int_equal(a.r.revision, 9);
  assert_int_equal(a.r.nkvs, 1);
  assert_int_equal(a.r.kvs[0].key_len, 3);
  assert_memory_equal(a.r.kvs[0].key, "foo", 4); /* NUL after */
  assert_memory_equal(a.r.kvs[0].value, "bar", 3);
  assert_int_equal(a.r.kvs[0].mod_revision, 9);
  assert_int_equal(a.r.kvs[0].version, 3);
  assert_null(a.r.msg);
  rn__etcd_answer_free(&a);

  assert_int_equal(dec(RN__ETCD_RANGE, 200, "{\"header\":{\"revision\":\"4\"}}", &a), 0);
  assert_int_equal(a.r.nkvs, 0);
  rn__etcd_answer_free(&a);

  const char *txn = "{\"header\":{\"revision\":\"12\"},\"succeeded\":true,\"responses\":[{\"response_put\":"
                    "{\"header\":{\"revision\":\"12\"}}},{\"response_delete_range\":{\"header\":{},\"deleted\":\"2\"}},"
                    "{\"response_range\":{\"header\":{},\"kvs\":[{\"key\":\"aw==\",\"value\":\"dg==\"}]}}]}";
  assert_int_equal(dec(RN__ETCD_TXN, 200, txn, &a), 0);
  assert_true(a.r.succeeded);
  assert_int_equal(a.r.deleted, 2);
  assert_int_equal(a.r.nkvs, 1);
  rn__etcd_answer_free(&a);

  /* errors as the 3.4 gateway writes them */
  assert_int_equal(dec(RN__ETCD_PUT, 404,
                       "{\"error\":\"etcdserver: requested lease not found\",\"message\":\"etcdserver: requested "
                       "lease not found\",\"code\":5}",
                       &a),
                   RN_ENOENT);
  assert_non_null(strstr(a.r.msg, "requested lease not found"));
  rn__etcd_answer_free(&a);
  assert_int_equal(dec(RN__ETCD_TXN, 400,
                       "{\"error\":\"etcdserver: duplicate key given in txn request\",\"message\":\"etcdserver: "
                       "duplicate key given in txn request\",\"code\":3}",
                       &a),
                   RN_EINVAL);
  rn__etcd_answer_free(&a);
  assert_int_equal(dec(RN__ETCD_RANGE, 400,
                       "{\"error\":\"etcdserver: mvcc: required revision has been compacted\",\"code\":11}", &a),
                   RN_EOFFSET);
  rn__etcd_answer_free(&a);
  assert_int_equal(dec(RN__ETCD_RANGE, 503, "{\"error\":\"etcdserver: no leader\",\"code\":14}", &a),
                   RN_ECONTROLPLANE);
  rn__etcd_answer_free(&a);
  assert_int_equal(dec(RN__ETCD_RANGE, 502, "Bad Gateway", &a), RN_ECONTROLPLANE);
  rn__etcd_answer_free(&a);
  assert_int_equal(dec(RN__ETCD_RANGE, 200, "{\"header\":{\"revision\":\"x\"}}", &a), RN_ECONTROLPLANE);
  assert_non_null(strstr(a.r.msg, "bad answer from etcd: "));
  rn__etcd_answer_free(&a);
  assert_int_equal(dec(RN__ETCD_RANGE, 200, "{\"header\":{},\"kvs\":[{\"key\":\"!!\"}]}", &a), RN_ECONTROLPLANE);
  rn__etcd_answer_free(&a);

  /* leases: keepalive is streamed ({"result": ...}); a gone lease has no TTL */
  assert_int_equal(dec(RN__ETCD_GRANT, 200, "{\"header\":{\"revision\":\"3\"},\"ID\":\"77\",\"TTL\":\"60\"}", &a), 0);
  assert_int_equal(a.r.lease_id, 77);
  assert_int_equal(a.r.ttl, 60);
  rn__etcd_answer_free(&a);
  assert_int_equal(dec(RN__ETCD_KEEPALIVE, 200, "{\"result\":{\"header\":{\"revision\":\"3\"},\"ID\":\"77\",\"TTL\":\"60\"}}\n", &a), 0);
  assert_int_equal(a.r.ttl, 60);
  rn__etcd_answer_free(&a);
  assert_int_equal(dec(RN__ETCD_KEEPALIVE, 200, "{\"result\":{\"header\":{\"revision\":\"3\"},\"ID\":\"77\"}}\n", &a),
                   RN_ENOENT);
  assert_int_equal(a.r.ttl, 0);
  assert_int_equal(a.r.lease_id, 77);
  rn__etcd_answer_free(&a);
}

static void test_watch_lines(void **state) {
  rn__etcd_wmsg_t m;
  const char *created = "{\"result\":{\"header\":{\"revision\":\"5\"},\"created\":true}}";
  assert_int_equal(rn__etcd_decode_watch(created, strlen(created), &m), 0);
  assert_int_equal(m.kind, RN__ETCD_W_CREATED);
  assert_int_equal(m.revision, 5);
  rn__etcd_wmsg_free(&m);
  const char *evs = "{\"result\":{\"header\":{\"revision\":\"7\"},\"events\":[{\"kv\":{\"key\":\"YQ==\",\"create_revision\":"
                    "\"6\",\"mod_revision\":\"6\",\"version\":\"1\",\"value\":\"MQ==\"}},{\"type\":\"DELETE\",\"kv\":"
                    "{\"key\":\"YQ==\",\"mod_revision\":\"7\"}}]}}";
  assert_int_equal(rn__etcd_decode_watch(evs, strlen(evs), &m), 0);
  assert_int_equal(m.kind, RN__ETCD_W_EVENTS);
  assert_int_equal(m.nev, 2);
  assert_int_equal(m.ev[0].type, RN_ETCD_EV_PUT);
  assert_memory_equal(m.ev[0].kv.value, "1", 1);
  assert_int_equal(m.ev[1].type, RN_ETCD_EV_DELETE);
  assert_int_equal(m.ev[1].kv.mod_revision, 7);
  assert_int_equal(m.ev[1].kv.value_len, 0);
  rn__etcd_wmsg_free(&m);
  const char *prog = "{\"result\":{\"header\":{\"revision\":\"9\"}}}";
  assert_int_equal(rn__etcd_decode_watch(prog, strlen(prog), &m), 0);
  assert_int_equal(m.kind, RN__ETCD_W_PROGRESS);
  assert_int_equal(m.revision, 9);
  rn__etcd_wmsg_free(&m);
  const char *comp = "{\"result\":{\"header\":{\"revision\":\"9\"},\"canceled\":true,\"compact_revision\":\"4\"}}";
  assert_int_equal(rn__etcd_decode_watch(comp, strlen(comp), &m), 0);
  assert_int_equal(m.kind, RN__ETCD_W_CANCELED);
  assert_int_equal(m.compact_revision, 4);
  rn__etcd_wmsg_free(&m);
  const char *err = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"transport is closing\"}}";
  assert_int_equal(rn__etcd_decode_watch(err, strlen(err), &m), 0);
  assert_int_equal(m.kind, RN__ETCD_W_ERROR);
  assert_non_null(strstr(m.msg, "transport is closing"));
  rn__etcd_wmsg_free(&m);
  assert_int_equal(rn__etcd_decode_watch("{\"result\":", 10, &m), RN_ECONTROLPLANE);
  rn__etcd_wmsg_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_bodies), cmocka_unit_test(test_answers),
                                     cmocka_unit_test(test_watch_lines)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
