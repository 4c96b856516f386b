/*
 * test_admin_call.c — the reply path every HTTP application answers through
 * (rn_admin.h): Kinesis errors written from the error table only (body,
 * x-amzn-ErrorType, status) and counted by type, a value outside the table
 * answered as InternalFailure and counted as "Other", REST errors with
 * their extra headers, CORS headers when the request had an Origin, and
 * every answer counted once by operation. No engine, no sockets: the
 * transport's reply is a function that records what it got.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "rn_admin.h"
#include "testutil.h"

typedef struct answer {
  int status;
  int calls;
  char body[2048];
  char headers[16][2][128];
  size_t nheaders;
} answer_t;

static void record(void *ctx, int status, const rn_http_header_t *hs, size_t nh, const uint8_t *body, size_t len) {
  answer_t *a = ctx;
  a->calls++;
  a->status = status;
  snprintf(a->body, sizeof(a->body), "%.*s", (int)len, (const char *)body);
  a->nheaders = nh < 16 ? nh : 16;
  for (size_t i = 0; i < a->nheaders; i++) {
    snprintf(a->headers[i][0], sizeof(a->headers[i][0]), "%s", hs[i].name);
    snprintf(a->headers[i][1], sizeof(a->headers[i][1]), "%s", hs[i].value);
  }
}

static const char *hdr(const answer_t *a, const char *name) {
  for (size_t i = 0; i < a->nheaders; i++)
    if (strcmp(a->headers[i][0], name) == 0) return a->headers[i][1];
  return NULL;
}

typedef struct fx {
  char *dir;
  uv_loop_t loop;
  rn_admin_t *adm;
} fx_t;

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  f->dir = rn_test_tmpdir();
  assert_int_equal(uv_loop_init(&f->loop), 0);
  rn_admin_opts_t ao = {.data_dir = f->dir};
  /* The reply path never touches the engine. */
  assert_int_equal(rn_admin_new(&f->loop, NULL, &ao, "0.0.0-test", &f->adm), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  rn_admin_destroy(f->adm);
  uv_loop_close(&f->loop);
  rn_test_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static rn_admin_call_t *call(fx_t *f, answer_t *a, const rn_http_header_t *hs, size_t nh) {
  static rn_http_req_t req;
  memset(&req, 0, sizeof(req));
  req.method = "POST";
  req.path = "/";
  req.query = "";
  req.headers = hs;
  req.nheaders = nh;
  memset(a, 0, sizeof(*a));
  rn_admin_call_t *c = rn_admin_call_new(f->adm, &req, record, a);
  assert_non_null(c);
  return c;
}

static uint64_t answered(const rn_admin_counters_t *m, int hop) {
  uint64_t n = 0;
  for (int s = 0; s < RN__STATUS_SLOTS; s++) n += m->requests[hop][s];
  return n;
}

static void test_kerr(void **state) {
  fx_t *f = *state;
  answer_t a;
  rn_admin_call_t *c = call(f, &a, NULL, 0);
  c->hop = RN__KOP_DescribeStream;
  rn_admin_reply_kerr(c, RN_KERR_ResourceNotFoundException, "Stream %s not found.", "s");
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, 400);
  assert_string_equal(a.body, "{\"__type\":\"ResourceNotFoundException\",\"message\":\"Stream s not found.\"}");
  assert_string_equal(hdr(&a, "x-amzn-errortype"), "ResourceNotFoundException");
  assert_string_equal(hdr(&a, "content-type"), "application/x-amz-json-1.1");
  assert_null(hdr(&a, "access-control-allow-origin"));
  const rn_admin_counters_t *m = rn_admin_counters(f->adm);
  assert_int_equal(m->kinesis_errors[RN_KERR_ResourceNotFoundException], 1);
  assert_int_equal(answered(m, RN__KOP_DescribeStream), 1);
  assert_int_equal(m->dur[RN__KOP_DescribeStream].count, 1);

  /* The status comes from the table: 503 and 500 for the two 5xx types. */
  c = call(f, &a, NULL, 0);
  rn_admin_reply_kerr(c, RN_KERR_ServiceUnavailable, "later");
  assert_int_equal(a.status, 503);
  c = call(f, &a, NULL, 0);
  rn_admin_reply_kerr(c, RN_KERR_InternalFailure, "broken");
  assert_int_equal(a.status, 500);
  assert_string_equal(a.body, "{\"__type\":\"InternalFailure\",\"message\":\"broken\"}");
}

static void test_kerr_outside_table(void **state) {
  fx_t *f = *state;
  answer_t a;
  rn_admin_call_t *c = call(f, &a, NULL, 0);
  rn_admin_reply_kerr(c, RN_KERR_COUNT, "bug");
  assert_int_equal(a.status, 500);
  assert_string_equal(a.body, "{\"__type\":\"InternalFailure\",\"message\":\"bug\"}");
  assert_string_equal(hdr(&a, "x-amzn-errortype"), "InternalFailure");
  const rn_admin_counters_t *m = rn_admin_counters(f->adm);
  assert_int_equal(m->kinesis_errors[RN_KERR_NONE], 1); /* "Other" on /metrics */
  assert_int_equal(m->kinesis_errors[RN_KERR_InternalFailure], 0);
  c = call(f, &a, NULL, 0);
  rn_admin_reply_kerr(c, RN_KERR_NONE, "not an error");
  assert_int_equal(a.status, 500);
  assert_int_equal(m->kinesis_errors[RN_KERR_NONE], 2);
}

static void test_rest_error(void **state) {
  fx_t *f = *state;
  answer_t a;
  rn_admin_call_t *c = call(f, &a, NULL, 0);
  c->hop = RN__HOP_REST_BATCH;
  rn_admin_reply_error(c, 404, "no such stream: %s", "x");
  assert_int_equal(a.status, 404);
  assert_string_equal(a.body, "{\"__type\":\"NotFound\",\"error\":\"NotFound\",\"message\":\"no such stream: x\"}");
  assert_string_equal(hdr(&a, "content-type"), "application/json");
  assert_int_equal(answered(rn_admin_counters(f->adm), RN__HOP_REST_BATCH), 1);
  c = call(f, &a, NULL, 0);
  rn_admin_reply_error(c, 429, "slow down");
  assert_string_equal(hdr(&a, "retry-after"), "1");
  c = call(f, &a, NULL, 0);
  rn_admin_reply_error(c, 401, "who are you");
  assert_string_equal(hdr(&a, "www-authenticate"), "Bearer realm=\"runnel\"");
  c = call(f, &a, NULL, 0);
  rn_admin_reply_error(c, 405, "GET only");
  assert_string_equal(hdr(&a, "allow"), "GET, HEAD");
}

static void test_cors(void **state) {
  fx_t *f = *state;
  answer_t a;
  rn_http_header_t origin = {"origin", "https://app.example"};
  rn_admin_call_t *c = call(f, &a, &origin, 1);
  assert_true(c->cors);
  assert_int_equal(c->hop, RN__HOP_NOT_FOUND);
  rn_admin_reply(c, 200, "application/json", NULL, 0, "{}", 2);
  assert_int_equal(a.status, 200);
  assert_string_equal(a.body, "{}");
  assert_string_equal(hdr(&a, "access-control-allow-origin"), "*");
  assert_non_null(hdr(&a, "access-control-expose-headers"));
  assert_int_equal(answered(rn_admin_counters(f->adm), RN__HOP_NOT_FOUND), 1);
}

/* The transport's owned reply: what reply_owned receives, the body pointer
 * itself (taken, freed here as a transport would). */
static uint8_t *owned_body;
static void record_owned(void *ctx, int status, const rn_http_header_t *hs, size_t nh, uint8_t *body, size_t len) {
  record(ctx, status, hs, nh, body, len);
  owned_body = body;
  free(body);
}

/* rn_admin_reply_owned hands the buffer to the transport's reply_owned
 * (no copy), with the same headers and counting as rn_admin_reply; where
 * the transport has none it is copied by reply() and freed (ASan sees a
 * leak or a double free). */
static void test_reply_owned(void **state) {
  fx_t *f = *state;
  answer_t a;
  rn_http_header_t origin = {"origin", "https://app.example"};
  rn_admin_call_t *c = call(f, &a, &origin, 1);
  uint8_t *body = malloc(5);
  memcpy(body, "{\"a\"}", 5);
  rn_admin_reply_owned(c, 200, "application/json", NULL, 0, body, 5); /* req.reply_owned NULL: copied, freed */
  assert_int_equal(a.calls, 1);
  assert_string_equal(a.body, "{\"a\"}");
  assert_string_equal(hdr(&a, "content-type"), "application/json");
  assert_string_equal(hdr(&a, "access-control-allow-origin"), "*");

  c = call(f, &a, NULL, 0);
  ((rn_http_req_t *)(uintptr_t)c->req)->reply_owned = record_owned;
  body = malloc(3);
  memcpy(body, "xyz", 3);
  owned_body = NULL;
  rn_admin_reply_owned(c, 201, "text/plain", NULL, 0, body, 3);
  assert_ptr_equal(owned_body, body); /* the same buffer: not copied */
  assert_int_equal(a.status, 201);
  assert_string_equal(a.body, "xyz");

  c = call(f, &a, NULL, 0);
  rn_admin_reply_owned(c, 204, NULL, NULL, 0, NULL, 0); /* no body */
  assert_int_equal(a.status, 204);
  assert_string_equal(a.body, "");
  assert_int_equal(answered(rn_admin_counters(f->adm), RN__HOP_NOT_FOUND), 3);
}

static void test_req_header(void **state) {
  (void)state;
  rn_http_header_t hs[] = {{"origin", "o"}, {"x-amz-target", "Kinesis_20131202.ListStreams"}};
  rn_http_req_t req = {.method = "POST", .path = "/", .headers = hs, .nheaders = 2};
  assert_string_equal(rn_admin_req_header(&req, "x-amz-target"), "Kinesis_20131202.ListStreams");
  assert_null(rn_admin_req_header(&req, "content-type"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_kerr, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kerr_outside_table, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rest_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reply_owned, setup, teardown),
      cmocka_unit_test(test_req_header),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
