/*
 * test_sigv4_print.c — prints, as one JSON object per line, fixed S3
 * requests (their raw parts) and the Authorization header sigv4.c computes
 * for each; test_sigv4.py recomputes every one with botocore's
 * S3SigV4Auth and asserts they are equal. Before printing it checks AWS's
 * own published example (the S3 SigV4 documentation's GET /test.txt with a
 * Range header), so a run without botocore still checks something.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

static void json_str(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if (*p < 0x20)
      printf("\\u%04x", *p);
    else
      putchar(*p); /* UTF-8 passes through */
  }
  putchar('"');
}

typedef struct tcase {
  const char *name, *method, *host, *path;
  rn__sigv4_kv_t q[6];
  size_t nq;
  rn__sigv4_kv_t h[4];
  size_t nh;
  const char *body;     /* hashed when payload is NULL */
  const char *payload;  /* "UNSIGNED-PAYLOAD" or NULL */
  const char *region, *token;
  int64_t t;
} tcase_t;

static const char AK[] = "AKIAIOSFODNN7EXAMPLE";
static const char SK[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

int main(void) {
  /* AWS's example: GET /test.txt, Range bytes=0-9, 20130524T000000Z */
  rn__sigv4_kv_t range = {"Range", "bytes=0-9"};
  rn__sigv4_req_t ex = {.method = "GET", .host = "examplebucket.s3.amazonaws.com", .path = "/test.txt",
                        .headers = &range, .nheaders = 1, .payload_hash = RN__SIGV4_EMPTY_SHA256,
                        .region = "us-east-1", .service = "s3", .access_key = AK, .secret_key = SK,
                        .time_s = 1369353600};
  rn__sigv4_out_t o;
  if (rn__sigv4_sign(&ex, &o) || !strstr(o.authorization,
      "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")) {
    fprintf(stderr, "AWS's published example signs differently: %s\n", o.authorization);
    return 1;
  }
  rn__sigv4_out_free(&o);

  static const tcase_t cases[] = {
      {"get-range", "GET", "127.0.0.1:9000", "/bucket/a/b/00000000000000000000-1.log", {{0}}, 0,
       {{"range", "bytes=4194304-8388607"}}, 1, "", NULL, "us-east-1", NULL, 1700000000},
      {"get-key-escapes", "GET", "127.0.0.1:9000", "/bucket/sp ace/a+b=c&d/\xc3\xa9t\xc3\xa9~_-.!*()'%41", {{0}}, 0,
       {{0}}, 0, "", NULL, "eu-west-1", NULL, 1700000001},
      {"put-hashed", "PUT", "bucket.s3.eu-central-1.amazonaws.com", "/p/manifest", {{0}}, 0, {{0}}, 0,
       "manifest bytes \x01\x02", NULL, "eu-central-1", NULL, 1700000002},
      {"put-unsigned", "PUT", "s3.amazonaws.com", "/bucket/seg.log", {{0}}, 0, {{0}}, 0, "ignored",
       RN__SIGV4_UNSIGNED, "us-east-1", NULL, 1700000003},
      {"list-pages", "GET", "127.0.0.1:4568", "/bucket",
       {{"list-type", "2"}, {"prefix", "ab12cd34/local/s-1/0/"}, {"continuation-token", "1/abc+def==&x y"}}, 3,
       {{0}}, 0, "", NULL, "us-east-1", NULL, 1700000004},
      {"multipart-create", "POST", "127.0.0.1:9000", "/bucket/big.log", {{"uploads", ""}}, 1, {{0}}, 0, "", NULL,
       "us-east-1", NULL, 1700000005},
      {"multipart-part", "PUT", "127.0.0.1:9000", "/bucket/big.log",
       {{"uploadId", "ZjE2MmJm-Y2M0LTQ3/Mzc+x=="}, {"partNumber", "12"}}, 2, {{0}}, 0, "", RN__SIGV4_UNSIGNED,
       "us-east-1", NULL, 1700000006},
      {"multipart-complete", "POST", "127.0.0.1:9000", "/bucket/big.log", {{"uploadId", "abc"}}, 1,
       {{"content-type", "application/xml"}}, 1, "<CompleteMultipartUpload></CompleteMultipartUpload>", NULL,
       "us-east-1", NULL, 1700000007},
      {"session-token", "HEAD", "bucket.s3.us-west-2.amazonaws.com", "/k", {{0}}, 0, {{0}}, 0, "", NULL,
       "us-west-2", "IQoJb3JpZ2luX2VjEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+token/with=chars", 1700000008},
      {"delete", "DELETE", "127.0.0.1:9000", "/bucket/x/y", {{0}}, 0, {{0}}, 0, "", NULL, "us-east-1", NULL,
       1700000009},
      {"header-trim", "GET", "127.0.0.1:9000", "/bucket/k", {{0}}, 0, {{"X-Amz-Meta-Note", "  two   spaces  "}}, 1,
       "", NULL, "us-east-1", NULL, 1700000010},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const tcase_t *c = &cases[i];
    char hash[65];
    if (c->payload)
      snprintf(hash, sizeof hash, "%s", c->payload);
    else
      rn__sha256_hex(c->body, strlen(c->body), hash);
    rn__sigv4_req_t r = {.method = c->method, .host = c->host, .path = c->path, .query = c->q, .nquery = c->nq,
                         .headers = c->h, .nheaders = c->nh, .payload_hash = hash, .region = c->region,
                         .service = "s3", .access_key = AK, .secret_key = SK, .session_token = c->token,
                         .time_s = c->t};
    if (rn__sigv4_sign(&r, &o)) {
      fprintf(stderr, "%s: rn__sigv4_sign failed\n", c->name);
      return 1;
    }
    printf("{\"name\":");
    json_str(c->name);
    printf(",\"method\":");
    json_str(c->method);
    printf(",\"host\":");
    json_str(c->host);
    printf(",\"path\":");
    json_str(c->path);
    printf(",\"query\":[");
    for (size_t k = 0; k < c->nq; k++) {
      printf("%s[", k ? "," : "");
      json_str(c->q[k].name);
      putchar(',');
      json_str(c->q[k].value);
      putchar(']');
    }
    printf("],\"headers\":[");
    for (size_t k = 0; k < c->nh; k++) {
      printf("%s[", k ? "," : "");
      json_str(c->h[k].name);
      putchar(',');
      json_str(c->h[k].value);
      putchar(']');
    }
    printf("],\"body\":");
    json_str(c->body);
    printf(",\"unsigned\":%s,\"region\":", c->payload ? "true" : "false");
    json_str(c->region);
    printf(",\"token\":");
    if (c->token)
      json_str(c->token);
    else
      printf("null");
    printf(",\"time\":%lld,\"amz_date\":", (long long)c->t);
    json_str(o.amz_date);
    printf(",\"url_path\":");
    json_str(o.path.p ? o.path.p : "");
    printf(",\"url_query\":");
    json_str(o.query.p ? o.query.p : "");
    printf(",\"authorization\":");
    json_str(o.authorization);
    printf("}\n");
    rn__sigv4_out_free(&o);
  }
  return 0;
}
