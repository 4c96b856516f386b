/*
 * sigv4.c — AWS Signature Version 4 for S3 (sigv4.h): pure functions over
 * the request's parts; SHA-256 and the HMAC chain from proto (runnel/sigv4.h).
 *
 *   canonical request = METHOD \n encoded path \n canonical query \n
 *                       canonical headers (name:value\n each, sorted) \n
 *                       signed header names (;-joined) \n payload hash
 *   string to sign    = "AWS4-HMAC-SHA256" \n amz-date \n scope \n
 *                       hex(SHA256(canonical request))
 *   scope             = date/region/service/aws4_request
 *   signing key       = HMAC chain from "AWS4" + secret over date, region,
 *                       service, "aws4_request"
 *
 * The secret lives only in the HMAC chain's first key (a stack buffer,
 * cleansed after use); nothing here logs or formats it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runnel/sigv4.h"
#include "sigv4.h"

static const char hexu[] = "0123456789ABCDEF";

void rn__sha256_hex(const void *p, size_t n, char out[65]) { rn_sha256_hex(p, n, out); }

static bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

void rn__sigv4_uri_encode(rn_buf_t *b, const char *s, size_t n, bool keep_slash) {
  rn_buf_reserve(b, n * 3);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c) || (keep_slash && c == '/')) {
      rn_buf_put(b, &s[i], 1);
    } else {
      char e[3] = {'%', hexu[c >> 4], hexu[c & 15]};
      rn_buf_put(b, e, 3);
    }
  }
}

typedef struct enc_kv {
  rn_buf_t k, v;
} enc_kv_t;

static int buf_cmp(const rn_buf_t *x, const rn_buf_t *y) {
  size_t n = x->len < y->len ? x->len : y->len;
  int c = n ? memcmp(x->p, y->p, n) : 0;
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* By encoded name, then encoded value (what botocore sorts). */
static int kv_cmp(const void *a, const void *b) {
  const enc_kv_t *x = a, *y = b;
  int c = buf_cmp(&x->k, &y->k);
  return c ? c : buf_cmp(&x->v, &y->v);
}

typedef struct hdr {
  char name[64];
  rn_buf_t value;
} hdr_t;

static int hdr_cmp(const void *a, const void *b) { return strcmp(((const hdr_t *)a)->name, ((const hdr_t *)b)->name); }

/* Trim, and fold inner runs of blanks to one space (botocore's Trimall). */
static void trimall(rn_buf_t *b, const char *v) {
  bool space = false, any = false;
  for (const char *p = v; *p; p++) {
    if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
      space = any;
      continue;
    }
    if (space) rn_buf_put(b, " ", 1);
    space = false;
    any = true;
    rn_buf_put(b, p, 1);
  }
}

static bool add_hdr(hdr_t *h, size_t *n, const char *name, const char *value) {
  size_t len = strlen(name);
  if (len >= sizeof h[0].name) return false;
  for (size_t i = 0; i <= len; i++) {
    char c = name[i];
    h[*n].name[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  h[*n].value = (rn_buf_t){0};
  trimall(&h[*n].value, value);
  (*n)++;
  return true;
}

void rn__sigv4_out_free(rn__sigv4_out_t *out) {
  rn_buf_free(&out->path);
  rn_buf_free(&out->query);
  rn_buf_free(&out->canonical);
}

rn_err_t rn__sigv4_sign(const rn__sigv4_req_t *r, rn__sigv4_out_t *out) {
  memset(out, 0, sizeof *out);
  if (!r->path || r->path[0] != '/' || r->nquery > RN__SIGV4_MAX_KV || r->nheaders > RN__SIGV4_MAX_KV)
    return RN_EINVAL;
  rn_amz_date_format(r->time_s, out->amz_date);
  char date[9];
  memcpy(date, out->amz_date, 8);
  date[8] = 0;

  rn__sigv4_uri_encode(&out->path, r->path, strlen(r->path), true);

  enc_kv_t q[RN__SIGV4_MAX_KV];
  memset(q, 0, sizeof q);
  for (size_t i = 0; i < r->nquery; i++) {
    rn__sigv4_uri_encode(&q[i].k, r->query[i].name, strlen(r->query[i].name), false);
    rn__sigv4_uri_encode(&q[i].v, r->query[i].value, strlen(r->query[i].value), false);
  }
  qsort(q, r->nquery, sizeof q[0], kv_cmp);
  for (size_t i = 0; i < r->nquery; i++) {
    if (i) rn_buf_put(&out->query, "&", 1);
    rn_buf_put(&out->query, q[i].k.p, q[i].k.len);
    rn_buf_put(&out->query, "=", 1);
    rn_buf_put(&out->query, q[i].v.p, q[i].v.len);
    rn_buf_free(&q[i].k);
    rn_buf_free(&q[i].v);
  }

  hdr_t h[RN__SIGV4_MAX_KV + 4];
  size_t nh = 0;
  bool ok = add_hdr(h, &nh, "host", r->host) && add_hdr(h, &nh, "x-amz-content-sha256", r->payload_hash) &&
            add_hdr(h, &nh, "x-amz-date", out->amz_date);
  if (ok && r->session_token && r->session_token[0]) ok = add_hdr(h, &nh, "x-amz-security-token", r->session_token);
  for (size_t i = 0; ok && i < r->nheaders; i++) ok = add_hdr(h, &nh, r->headers[i].name, r->headers[i].value);
  if (!ok) {
    for (size_t i = 0; i < nh; i++) rn_buf_free(&h[i].value);
    return RN_EINVAL;
  }
  qsort(h, nh, sizeof h[0], hdr_cmp);

  rn_buf_t *c = &out->canonical;
  rn_buf_printf(c, "%s\n", r->method);
  rn_buf_put(c, out->path.p, out->path.len);
  rn_buf_put(c, "\n", 1);
  rn_buf_put(c, out->query.p, out->query.len);
  rn_buf_put(c, "\n", 1);
  for (size_t i = 0; i < nh; i++) {
    rn_buf_printf(c, "%s:", h[i].name);
    rn_buf_put(c, h[i].value.p, h[i].value.len);
    rn_buf_put(c, "\n", 1);
  }
  rn_buf_put(c, "\n", 1);
  char signed_names[RN__SIGV4_MAX_KV * 66 + 300];
  size_t sl = 0;
  for (size_t i = 0; i < nh; i++) {
    sl += (size_t)snprintf(signed_names + sl, sizeof signed_names - sl, "%s%s", i ? ";" : "", h[i].name);
    rn_buf_free(&h[i].value);
  }
  rn_buf_printf(c, "%s\n%s", signed_names, r->payload_hash);
  if (out->path.oom || out->query.oom || c->oom) return RN_ENOMEM;

  char creq_hash[65];
  rn__sha256_hex(c->p, c->len, creq_hash);
  char scope[200];
  snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", date, r->region, r->service);
  char sts[400];
  int stl = snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", out->amz_date, scope, creq_hash);

  /* the signing-key chain, shared with the Kinesis verifier (runnel/sigv4.h) */
  char sighex[65];
  rn_sigv4_signature(r->secret_key, date, r->region, r->service, sts, sighex);
  (void)stl;
  int n = snprintf(out->authorization, sizeof out->authorization,
                   "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s", r->access_key, scope,
                   signed_names, sighex);
  if (n < 0 || (size_t)n >= sizeof out->authorization) return RN_EINVAL;
  return 0;
}
