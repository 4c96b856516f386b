/*
 * test_sigv4.c — SigV4 verification (sigv4.c) against AWS's published
 * signature test suite (get-vanilla, get-vanilla-query-order-key-case) and
 * against vectors computed once with Debian's python3-botocore 1.29.27
 * (botocore.auth.SigV4Auth with the suite's credentials and a clock fixed
 * at 2015-08-30T12:36:00Z; the script is in the comment below), including
 * a Kinesis PutRecord request checked over HTTP/1.1 (Host) and HTTP/2
 * (:authority, no Host header), then every refusal with its AWS type.
 *
 *   req = AWSRequest(method, url, data=body, headers=headers)
 *   with mock.patch("botocore.auth.datetime") as d:
 *       d.datetime.utcnow.return_value = datetime.datetime(2015, 8, 30, 12, 36, 0)
 *       SigV4Auth(Credentials("AKIDEXAMPLE", SECRET), service, "us-east-1").add_auth(req)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "sigv4.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define NOW 1440938160 /* 2015-08-30T12:36:00Z */
#define SCOPE "Credential=AKIDEXAMPLE/20150830/us-east-1/"

static const rn_sigv4_key_t KEYS[] = {{"OTHERKEY", "other"}, {AKID, SECRET}};

typedef struct treq {
  rn_http_req_t req;
  rn_http_header_t h[8];
} treq_t;

static void add(treq_t *t, const char *name, const char *value) {
  t->h[t->req.nheaders].name = name;
  t->h[t->req.nheaders].value = value;
  t->req.nheaders++;
  t->req.headers = t->h;
}

static void init(treq_t *t, const char *method, const char *path, const char *query, const char *body) {
  memset(t, 0, sizeof(*t));
  t->req.method = method;
  t->req.path = path;
  t->req.query = query;
  t->req.body = (const uint8_t *)body;
  t->req.body_len = strlen(body);
  t->req.http_version = 11;
  t->req.authority = "";
}

static rn_sigv4_status_t verify(const treq_t *t, const char *service, int64_t now, rn_sigv4_result_t *res) {
  return rn_sigv4_verify(&t->req, KEYS, 2, service, now, 300, res);
}

/* AWS suite: get-vanilla. */
static void vanilla(treq_t *t, const char *auth) {
  init(t, "GET", "/", "", "");
  add(t, "host", "example.amazonaws.com");
  add(t, "x-amz-date", "20150830T123600Z");
  add(t, "authorization", auth);
}

static void test_aws_suite(void **state) {
  (void)state;
  treq_t t;
  rn_sigv4_result_t res;
  vanilla(&t, "AWS4-HMAC-SHA256 " SCOPE "service/aws4_request, SignedHeaders=host;x-amz-date, "
              "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  assert_int_equal(verify(&t, "service", NOW, &res), RN_SIGV4_OK);
  assert_string_equal(res.region, "us-east-1");
  assert_string_equal(res.akid, AKID);
  /* get-vanilla-query-order-key-case: parameters sorted before signing. */
  init(&t, "GET", "/", "Param2=value2&Param1=value1", "");
  add(&t, "host", "example.amazonaws.com");
  add(&t, "x-amz-date", "20150830T123600Z");
  add(&t, "authorization", "AWS4-HMAC-SHA256 " SCOPE "service/aws4_request, SignedHeaders=host;x-amz-date, "
                           "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  assert_int_equal(verify(&t, "service", NOW, &res), RN_SIGV4_OK);
}

static void kinesis_put(treq_t *t, int version) {
  init(t, "POST", "/", "", "{\"StreamName\":\"s1\",\"Data\":\"aGk=\",\"PartitionKey\":\"k\"}");
  add(t, "content-type", "application/x-amz-json-1.1");
  add(t, "x-amz-target", "Kinesis_20131202.PutRecord");
  add(t, "x-amz-date", "20150830T123600Z");
  add(t, "authorization", "AWS4-HMAC-SHA256 " SCOPE "kinesis/aws4_request, "
                          "SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
                          "Signature=817dffdd645489d892f0c3b21b34a74387e90e72f820c38c5244c40de3f4774a");
  t->req.http_version = version;
  if (version == 20) t->req.authority = "kinesis.us-east-1.amazonaws.com"; /* :authority, no Host */
  else add(t, "host", "kinesis.us-east-1.amazonaws.com");
}

static void test_botocore_kinesis(void **state) {
  (void)state;
  treq_t t;
  rn_sigv4_result_t res;
  kinesis_put(&t, 11);
  assert_int_equal(verify(&t, "kinesis", NOW, &res), RN_SIGV4_OK);
  kinesis_put(&t, 20);
  assert_int_equal(verify(&t, "kinesis", NOW, &res), RN_SIGV4_OK);
  /* Within the skew either way. */
  assert_int_equal(verify(&t, "kinesis", NOW + 299, &res), RN_SIGV4_OK);
  assert_int_equal(verify(&t, "kinesis", NOW - 299, &res), RN_SIGV4_OK);
  /* A changed body breaks the signature. */
  kinesis_put(&t, 11);
  t.req.body = (const uint8_t *)"{\"StreamName\":\"s2\",\"Data\":\"aGk=\",\"PartitionKey\":\"k\"}";
  assert_int_equal(verify(&t, "kinesis", NOW, &res), RN_SIGV4_INVALID);
  assert_string_equal(rn_kinesis_err_name(res.type), "InvalidSignatureException");
  assert_non_null(strstr(res.message, "does not match the signature you provided"));
  /* So does another Host. */
  kinesis_put(&t, 20);
  t.req.authority = "127.0.0.1:7480";
  assert_int_equal(verify(&t, "kinesis", NOW, &res), RN_SIGV4_INVALID);
}

static void test_botocore_path_query(void **state) {
  (void)state;
  /* GET https://example.amazonaws.com/foo%20bar/x?b=2&a=1&a=0&c=x%20y — the SDK
   * signs the encoding of its encoded path and sorts repeated keys by value. */
  treq_t t;
  rn_sigv4_result_t res;
  init(&t, "GET", "/foo%20bar/x", "b=2&a=1&a=0&c=x%20y", "");
  add(&t, "host", "example.amazonaws.com");
  add(&t, "x-amz-date", "20150830T123600Z");
  char cr[1024];
  rn_sigv4_canonical_request(&t.req, "host;x-amz-date",
                             "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", cr, sizeof(cr));
  assert_string_equal(cr, "GET\n/foo%2520bar/x\na=0&a=1&b=2&c=x%20y\nhost:example.amazonaws.com\n"
                          "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
                          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  add(&t, "authorization", "AWS4-HMAC-SHA256 " SCOPE "service/aws4_request, SignedHeaders=host;x-amz-date, "
                           "Signature=194dfc5980f038d9ef725a76e3694dd52482c9337e7636be944a81af973aa779");
  assert_int_equal(verify(&t, "service", NOW, &res), RN_SIGV4_OK);
}

static void test_refusals(void **state) {
  (void)state;
  treq_t t;
  rn_sigv4_result_t res;
  /* No Authorization at all. */
  init(&t, "POST", "/", "", "{}");
  add(&t, "host", "h");
  assert_int_equal(verify(&t, NULL, NOW, &res), RN_SIGV4_MISSING);
  assert_string_equal(rn_kinesis_err_name(res.type), "MissingAuthenticationTokenException");
  assert_string_equal(res.message, "Missing Authentication Token");
  /* Parts missing. */
  vanilla(&t, "AWS4-HMAC-SHA256 " SCOPE "service/aws4_request, SignedHeaders=host;x-amz-date");
  assert_int_equal(verify(&t, NULL, NOW, &res), RN_SIGV4_INCOMPLETE);
  assert_string_equal(rn_kinesis_err_name(res.type), "IncompleteSignatureException");
  assert_non_null(strstr(res.message, "Authorization header requires 'Signature' parameter."));
  /* Host not signed. */
  vanilla(&t, "AWS4-HMAC-SHA256 " SCOPE "service/aws4_request, SignedHeaders=x-amz-date, Signature=00");
  assert_int_equal(verify(&t, NULL, NOW, &res), RN_SIGV4_INCOMPLETE);
  assert_non_null(strstr(res.message, "'Host' or ':authority' must be a 'SignedHeader'"));
  /* An access key we do not know. */
  vanilla(&t, "AWS4-HMAC-SHA256 Credential=NOBODY/20150830/us-east-1/service/aws4_request, "
              "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  assert_int_equal(verify(&t, NULL, NOW, &res), RN_SIGV4_UNKNOWN_KEY);
  assert_string_equal(rn_kinesis_err_name(res.type), "UnrecognizedClientException");
  assert_string_equal(res.message, "The security token included in the request is invalid.");
  /* Another service's scope. */
  vanilla(&t, "AWS4-HMAC-SHA256 " SCOPE "service/aws4_request, SignedHeaders=host;x-amz-date, "
              "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  assert_int_equal(verify(&t, "kinesis", NOW, &res), RN_SIGV4_INVALID);
  assert_non_null(strstr(res.message, "Credential should be scoped to correct service: 'kinesis'"));
  /* Clock skew beyond 5 minutes, both ways. */
  assert_int_equal(verify(&t, "service", NOW + 301, &res), RN_SIGV4_INVALID);
  assert_string_equal(res.message,
                      "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T124101Z - 5 min.)");
  assert_int_equal(verify(&t, "service", NOW - 301, &res), RN_SIGV4_INVALID);
  assert_non_null(strstr(res.message, "Signature not yet current: 20150830T123600Z is still later than"));
  /* A wrong secret: another key's signature. */
  vanilla(&t, "AWS4-HMAC-SHA256 Credential=OTHERKEY/20150830/us-east-1/service/aws4_request, "
              "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  assert_int_equal(verify(&t, NULL, NOW, &res), RN_SIGV4_INVALID);
  /* Scope date differs from the request date. */
  vanilla(&t, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150831/us-east-1/service/aws4_request, "
              "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  assert_int_equal(verify(&t, NULL, NOW, &res), RN_SIGV4_INVALID);
  assert_non_null(strstr(res.message, "Date in Credential scope does not match"));
  /* x-amz-content-sha256 that is not the body's hash. */
  kinesis_put(&t, 11);
  add(&t, "x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert_int_equal(verify(&t, "kinesis", NOW, &res), RN_SIGV4_INVALID);
  assert_non_null(strstr(res.message, "x-amz-content-sha256"));
  /* Another algorithm. */
  vanilla(&t, "AWS4-HMAC-SHA1 " SCOPE "service/aws4_request, SignedHeaders=host;x-amz-date, Signature=00");
  assert_int_equal(verify(&t, NULL, NOW, &res), RN_SIGV4_INCOMPLETE);
}

static void sha256_hex(const char *s, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  assert_int_equal(EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL), 1);
  for (unsigned i = 0; i < len; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void test_date_header_and_scope(void **state) {
  (void)state;
  /* The RFC 1123 Date header instead of X-Amz-Date: sign it with the steps
   * exposed by sigv4.h and verify. */
  treq_t t;
  init(&t, "POST", "/", "", "{}");
  add(&t, "host", "localhost:7480");
  add(&t, "date", "Sun, 30 Aug 2015 12:36:00 GMT");
  char cr[1024];
  rn_sigv4_canonical_request(&t.req, "date;host",
                             "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", cr, sizeof(cr));
  assert_string_equal(cr, "POST\n/\n\ndate:Sun, 30 Aug 2015 12:36:00 GMT\nhost:localhost:7480\n\ndate;host\n"
                          "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  char sts[512], sig[65], auth[400], crh[65];
  sha256_hex(cr, crh);
  snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/eu-west-1/kinesis/aws4_request\n%s", crh);
  rn_sigv4_signature(SECRET, "20150830", "eu-west-1", "kinesis", sts, sig);
  snprintf(auth, sizeof(auth),
           "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/kinesis/aws4_request, SignedHeaders=date;host, "
           "Signature=%s",
           sig);
  add(&t, "authorization", auth);
  rn_sigv4_result_t res;
  assert_int_equal(verify(&t, "kinesis", NOW, &res), RN_SIGV4_OK);
  assert_string_equal(res.region, "eu-west-1");
  /* Scope only (no keys configured): the region for ARNs. */
  assert_int_equal(rn_sigv4_scope(&t.req, &res), 0);
  assert_string_equal(res.region, "eu-west-1");
  assert_string_equal(res.service, "kinesis");
  init(&t, "POST", "/", "", "{}");
  assert_int_equal(rn_sigv4_scope(&t.req, &res), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_aws_suite),      cmocka_unit_test(test_botocore_kinesis),
      cmocka_unit_test(test_botocore_path_query), cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_date_header_and_scope),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
