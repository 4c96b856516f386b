/*
 * test_kinesis_json.c — decoding and validation of Kinesis requests
 * (kinesis_json.c): the error class and AWS-style message of every kind of
 * bad input, each operation's fields, StreamARN, timestamps, and that the
 * PutRecords fast path decodes exactly what the general path decodes
 * (escapes, explicit hash keys, member order), falling back on anything else.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis_int.h"

static rn_err_t dec(rn__kop_t op, const char *body, rn__kreq_t *r, rn__kerr_t *e) {
  return rn__kreq_decode(op, (const uint8_t *)body, strlen(body), r, e);
}

static void expect_err(rn__kop_t op, const char *body, const char *type, const char *msg_part) {
  rn__kreq_t r;
  rn__kerr_t e;
  if (dec(op, body, &r, &e) == 0) fail_msg("%s: %s was accepted", rn__kop_name(op), body);
  const char *got = rn_kinesis_err_name(e.type);
  if (!got || strcmp(got, type) != 0) fail_msg("%s: type %s, want %s (%s)", body, got ? got : "(none)", type, e.msg);
  if (msg_part && !strstr(e.msg, msg_part)) fail_msg("%s: message '%s' lacks '%s'", body, e.msg, msg_part);
}

static void test_ops_table(void **state) {
  (void)state;
  assert_int_equal(rn__kop_from_name("PutRecords", 10), RN__KOP_PutRecords);
  assert_int_equal(rn__kop_from_name("PutRecord", 9), RN__KOP_PutRecord);
  assert_int_equal(rn__kop_from_name("Put", 3), RN__KOP_COUNT);
  assert_true(rn__kop_supported(RN__KOP_GetRecords));
  assert_false(rn__kop_supported(RN__KOP_SplitShard));
  assert_false(rn__kop_supported(RN__KOP_SubscribeToShard));
  assert_string_equal(rn__kop_name(RN__KOP_ListShards), "ListShards");
}

static void test_serialization_errors(void **state) {
  (void)state;
  expect_err(RN__KOP_ListStreams, "", "SerializationException", "empty");
  expect_err(RN__KOP_ListStreams, "{", "SerializationException", "Malformed JSON");
  expect_err(RN__KOP_ListStreams, "[1]", "SerializationException", "JSON object");
  expect_err(RN__KOP_DescribeStream, "{\"StreamName\": 5}", "SerializationException", "StreamName");
  expect_err(RN__KOP_ListStreams, "{\"Limit\": \"ten\"}", "SerializationException", "Limit");
  expect_err(RN__KOP_PutRecord, "{\"StreamName\":\"s\",\"Data\":\"!!!\",\"PartitionKey\":\"k\"}", "SerializationException",
             "base64");
}

static void test_validation_errors(void **state) {
  (void)state;
  expect_err(RN__KOP_DescribeStream, "{}", "ValidationException",
             "1 validation error detected: Value null at 'streamName' failed to satisfy constraint: Member must not be null");
  expect_err(RN__KOP_DescribeStream, "{\"StreamName\": \"bad name!\"}", "ValidationException",
             "Value 'bad name!' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression "
             "pattern: [a-zA-Z0-9_.-]+");
  /* "." and ".." match the pattern but are refused everywhere (runnel/keys.h: a stream name is a directory) */
  expect_err(RN__KOP_DescribeStream, "{\"StreamName\": \"..\"}", "ValidationException", "at 'streamName'");
  expect_err(RN__KOP_CreateStream, "{\"StreamName\": \".\", \"ShardCount\": 1}", "ValidationException", "at 'streamName'");
  expect_err(RN__KOP_CreateStream, "{\"StreamName\": \"\", \"ShardCount\": 0}", "ValidationException",
             "2 validation errors detected");
  expect_err(RN__KOP_ListStreams, "{\"Limit\": 10001}", "ValidationException",
             "Member must have value less than or equal to 10000");
  expect_err(RN__KOP_GetShardIterator, "{\"StreamName\":\"s\",\"ShardId\":\"shardId-0\",\"ShardIteratorType\":\"OLDEST\"}",
             "ValidationException",
             "Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, "
             "AT_TIMESTAMP]");
  expect_err(RN__KOP_PutRecord, "{\"StreamName\":\"s\",\"Data\":\"\",\"PartitionKey\":\"\"}", "ValidationException",
             "at 'partitionKey' failed to satisfy constraint: Member must have length greater than or equal to 1");
  expect_err(RN__KOP_PutRecords, "{\"StreamName\":\"s\",\"Records\":[]}", "ValidationException",
             "at 'records' failed to satisfy constraint");
  expect_err(RN__KOP_PutRecords, "{\"StreamName\":\"s\",\"Records\":[{\"Data\":\"\"}]}", "ValidationException",
             "Value null at 'records.1.member.partitionKey'");
  expect_err(RN__KOP_IncreaseStreamRetentionPeriod, "{\"StreamName\":\"s\"}", "ValidationException",
             "Value null at 'retentionPeriodHours'");
  expect_err(RN__KOP_CreateStream, "{\"StreamName\":\"s\"}", "ValidationException", "Value null at 'shardCount'");
}

static void test_invalid_arguments(void **state) {
  (void)state;
  expect_err(RN__KOP_GetShardIterator,
             "{\"StreamName\":\"s\",\"ShardId\":\"shardId-0\",\"ShardIteratorType\":\"AT_SEQUENCE_NUMBER\"}",
             "InvalidArgumentException", "StartingSequenceNumber must be specified");
  expect_err(RN__KOP_GetShardIterator, "{\"StreamName\":\"s\",\"ShardId\":\"shardId-0\",\"ShardIteratorType\":\"AT_TIMESTAMP\"}",
             "InvalidArgumentException", "Must specify timestampInMillis parameter");
  expect_err(RN__KOP_ListShards, "{\"StreamName\":\"s\",\"NextToken\":\"abc\"}", "InvalidArgumentException",
             "NextToken and StreamName cannot be provided together.");
  expect_err(RN__KOP_ListShards, "{}", "InvalidArgumentException", "Either NextToken or StreamName");
  expect_err(RN__KOP_ListShards, "{\"StreamName\":\"s\",\"ShardFilter\":{\"Type\":\"AFTER_SHARD_ID\"}}",
             "InvalidArgumentException", "ShardId must be provided");
  expect_err(RN__KOP_PutRecord,
             "{\"StreamName\":\"s\",\"Data\":\"\",\"PartitionKey\":\"k\",\"ExplicitHashKey\":"
             "\"340282366920938463463374607431768211456\"}",
             "InvalidArgumentException", "ExplicitHashKey must be in the range: [0, 2^128-1]");
}

static void test_fields(void **state) {
  (void)state;
  rn__kreq_t r;
  rn__kerr_t e;
  assert_int_equal(dec(RN__KOP_CreateStream, "{\"StreamName\":\"a.b-c_d\",\"ShardCount\":3,\"Tags\":{\"t\":\"v\"}}", &r, &e), 0);
  assert_string_equal(r.stream, "a.b-c_d");
  assert_int_equal(r.shard_count, 3);
  assert_int_equal(r.ntags, 1);
  assert_string_equal(r.tags[0].key, "t");
  rn__kreq_free(&r);
  assert_int_equal(dec(RN__KOP_CreateStream, "{\"StreamName\":\"od\",\"StreamModeDetails\":{\"StreamMode\":\"ON_DEMAND\"}}", &r, &e), 0);
  assert_true(r.on_demand);
  assert_false(r.has_shard_count);
  rn__kreq_free(&r);
  /* StreamARN in place of StreamName. */
  assert_int_equal(dec(RN__KOP_DescribeStreamSummary, "{\"StreamARN\":\"arn:aws:kinesis:eu-west-1:123456789012:stream/clicks\"}",
                       &r, &e), 0);
  assert_string_equal(r.stream, "clicks");
  rn__kreq_free(&r);
  expect_err(RN__KOP_DescribeStreamSummary, "{\"StreamARN\":\"arn:aws:s3:::bucket\"}", "ValidationException", "streamARN");
  /* GetShardIterator with a JS-style decimal timestamp. */
  assert_int_equal(dec(RN__KOP_GetShardIterator,
                       "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000002\",\"ShardIteratorType\":\"AT_TIMESTAMP\","
                       "\"Timestamp\":1.700000000123E9}",
                       &r, &e), 0);
  assert_int_equal(r.shard, 2);
  assert_int_equal(r.iter_type, RN__ITER_AT_TIMESTAMP);
  assert_true(r.has_ts);
  assert_int_equal(r.ts_ms, 1700000000123);
  rn__kreq_free(&r);
  /* A shard id that cannot exist is kept for a ResourceNotFoundException later. */
  assert_int_equal(dec(RN__KOP_GetShardIterator, "{\"StreamName\":\"s\",\"ShardId\":\"nope\",\"ShardIteratorType\":\"LATEST\"}",
                       &r, &e), 0);
  assert_int_equal(r.shard, UINT32_MAX);
  rn__kreq_free(&r);
  assert_int_equal(dec(RN__KOP_ListShards,
                       "{\"StreamName\":\"s\",\"MaxResults\":2,\"ShardFilter\":{\"Type\":\"AFTER_SHARD_ID\",\"ShardId\":"
                       "\"shardId-000000000001\"}}",
                       &r, &e), 0);
  assert_int_equal(r.limit, 2);
  assert_int_equal(r.shard_filter, RN__SHARDS_AFTER_SHARD_ID);
  assert_int_equal(r.filter_shard, 1);
  rn__kreq_free(&r);
  assert_int_equal(dec(RN__KOP_RemoveTagsFromStream, "{\"StreamName\":\"s\",\"TagKeys\":[\"a\",\"b\"]}", &r, &e), 0);
  assert_int_equal(r.ntag_keys, 2);
  rn__kreq_free(&r);
  assert_int_equal(dec(RN__KOP_GetRecords, "{\"ShardIterator\":\"AAAA\",\"Limit\":25}", &r, &e), 0);
  assert_int_equal(r.limit, 25);
  assert_int_equal(r.iterator_len, 4);
  rn__kreq_free(&r);
  assert_int_equal(dec(RN__KOP_DescribeLimits, "{}", &r, &e), 0);
  rn__kreq_free(&r);
}

/* Two decodes of PutRecords bodies hold the same records. */
static void same_records(const rn__kreq_t *a, const rn__kreq_t *b) {
  assert_string_equal(a->stream, b->stream);
  assert_int_equal(a->nrecs, b->nrecs);
  for (size_t i = 0; i < a->nrecs; i++) {
    assert_int_equal(a->recs[i].key_len, b->recs[i].key_len);
    assert_memory_equal(a->recs[i].key, b->recs[i].key, a->recs[i].key_len);
    assert_int_equal(a->recs[i].data_len, b->recs[i].data_len);
    if (a->recs[i].data_len) assert_memory_equal(a->recs[i].data, b->recs[i].data, a->recs[i].data_len);
    assert_int_equal(a->recs[i].has_hash, b->recs[i].has_hash);
    if (a->recs[i].has_hash) assert_memory_equal(a->recs[i].hash, b->recs[i].hash, 16);
  }
}

static void test_put_records_fast_path(void **state) {
  (void)state;
  /* The fast path takes the first body; the unknown member sends the second
   * through the general path. Both must decode the same. */
  const char *records =
      "[{\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"k1\"},"
      " {\"PartitionKey\":\"caf\\u00e9 \\\"q\\\" \\n \\ud83d\\ude00\", \"Data\":\"\"},"
      " {\"Data\":\"AAECAwQ=\",\"PartitionKey\":\"x\",\"ExplicitHashKey\":\"170141183460469231731687303715884105728\"}]";
  char fast[1024], slow[1024];
  snprintf(fast, sizeof(fast), " { \"StreamName\" : \"s1\" , \"Records\" : %s } ", records);
  snprintf(slow, sizeof(slow), "{\"Records\":%s,\"StreamName\":\"s1\",\"Unknown\":1}", records);
  rn__kreq_t a, b;
  rn__kerr_t e;
  assert_int_equal(dec(RN__KOP_PutRecords, fast, &a, &e), 0);
  assert_null(a.root); /* the fast path builds no DOM */
  assert_int_equal(dec(RN__KOP_PutRecords, slow, &b, &e), 0);
  assert_non_null(b.root);
  assert_int_equal(a.nrecs, 3);
  same_records(&a, &b);
  rn__kreq_free(&b);
  assert_int_equal(rn__kreq_decode_general(RN__KOP_PutRecords, (const uint8_t *)fast, strlen(fast), &b, &e), 0);
  same_records(&a, &b);
  assert_int_equal(a.recs[0].data_len, 5);
  assert_memory_equal(a.recs[0].data, "hello", 5);
  assert_int_equal(a.recs[1].key_len, strlen("caf\xc3\xa9 \"q\" \n \xf0\x9f\x98\x80"));
  assert_memory_equal(a.recs[1].key, "caf\xc3\xa9 \"q\" \n \xf0\x9f\x98\x80", a.recs[1].key_len);
  assert_true(a.recs[2].has_hash);
  assert_int_equal(a.recs[2].hash[0], 0x80);
  rn__kreq_free(&a);
  rn__kreq_free(&b);
  /* Invalid inputs are refused identically whichever path sees them first. */
  expect_err(RN__KOP_PutRecords, "{\"StreamName\":\"s1\",\"Records\":[{\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"\"}]}",
             "ValidationException", "records.1.member.partitionKey");
  expect_err(RN__KOP_PutRecords, "{\"StreamName\":\"s1\",\"Records\":[{\"Data\":\"aGVsbG8\\u003d\",\"PartitionKey\":\"k\"}], }",
             "SerializationException", NULL);
  expect_err(RN__KOP_PutRecords, "{\"StreamName\":\"s1\",\"Records\":[{\"Data\":\"a!==\",\"PartitionKey\":\"k\"}]}",
             "SerializationException", "base64");
  /* A data string with an escape still decodes (through the general path). */
  assert_int_equal(dec(RN__KOP_PutRecords, "{\"StreamName\":\"s1\",\"Records\":[{\"Data\":\"aGVsbG8\\u003d\",\"PartitionKey\":\"k\"}]}",
                       &a, &e), 0);
  assert_int_equal(a.recs[0].data_len, 5);
  rn__kreq_free(&a);
  /* 501 records: a validation error. */
  size_t cap = 501 * 40 + 100;
  char *big = malloc(cap);
  size_t o = (size_t)snprintf(big, cap, "{\"StreamName\":\"s\",\"Records\":[");
  for (int i = 0; i < 501; i++) o += (size_t)snprintf(big + o, cap - o, "%s{\"Data\":\"\",\"PartitionKey\":\"k\"}", i ? "," : "");
  snprintf(big + o, cap - o, "]}");
  expect_err(RN__KOP_PutRecords, big, "ValidationException", "less than or equal to 500");
  free(big);
}

static void test_record_size_limit(void **state) {
  (void)state;
  size_t n = ((1u << 20) + 3) / 3 * 4; /* base64 of just over 1 MiB */
  char *body = malloc(n + 100);
  int o = snprintf(body, 100, "{\"StreamName\":\"s\",\"PartitionKey\":\"k\",\"Data\":\"");
  memset(body + o, 'A', n);
  snprintf(body + o + n, 100, "\"}");
  expect_err(RN__KOP_PutRecord, body, "ValidationException",
             "at 'data' failed to satisfy constraint: Member must have length less than or equal to 1048576");
  free(body);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ops_table),      cmocka_unit_test(test_serialization_errors),
      cmocka_unit_test(test_validation_errors), cmocka_unit_test(test_invalid_arguments),
      cmocka_unit_test(test_fields),         cmocka_unit_test(test_put_records_fast_path),
      cmocka_unit_test(test_record_size_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
