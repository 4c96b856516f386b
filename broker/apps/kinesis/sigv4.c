/*
 * sigv4.c — AWS Signature Version 4 verification (sigv4.h).
 *
 * The canonical request is rebuilt from what arrived: method; the path as
 * sent, URI-encoded once more (which is what AWS's non-S3 services and the
 * SDKs do: the SDK signs the encoding of its already-encoded path); the
 * query parameters decoded, re-encoded strictly (RFC 3986 unreserved set)
 * and sorted; the signed headers in the order the client listed them, each
 * with its values trimmed, inner runs of spaces collapsed and repeated
 * headers joined by ','; the signed-header list; and the hex SHA-256 of the
 * body. Signatures are compared in constant time.
 */
#include "sigv4.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kinesis_int.h"
#include "rn_base.h"
#include "runnel/sigv4.h"

static void msg(rn_sigv4_result_t *res, rn_sigv4_status_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void msg(rn_sigv4_result_t *res, rn_sigv4_status_t st, const char *fmt, ...) {
  static const rn_kinesis_err_t types[] = {RN_KERR_NONE, RN_KERR_MissingAuthenticationTokenException,
                                           RN_KERR_IncompleteSignatureException, RN_KERR_UnrecognizedClientException,
                                           RN_KERR_InvalidSignatureException};
  res->status = st;
  res->type = types[st];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->message, sizeof(res->message), fmt, ap);
  va_end(ap);
}

static const char *header(const rn_http_req_t *req, const char *lname) {
  for (size_t i = 0; i < req->nheaders; i++)
    if (strcmp(req->headers[i].name, lname) == 0) return req->headers[i].value;
  return NULL;
}

static void sha256_hex(const void *p, size_t n, char out[65]) { rn_sha256_hex(p, n, out); }

/* ---- canonical request ------------------------------------------------------------- */

static bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

static void uri_encode(rn_buf_t *b, const char *s, size_t n, bool keep_slash) {
  static const char digits[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c) || (keep_slash && c == '/')) {
      rn_buf_put(b, &s[i], 1);
    } else {
      char e[3] = {'%', digits[c >> 4], digits[c & 15]};
      rn_buf_put(b, e, 3);
    }
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decode s[0, n) into out (n + 1 bytes); malformed escapes stay literal. */
static size_t pct_decode(const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = 0;
  return o;
}

typedef struct qparam {
  char *k, *v; /* encoded */
} qparam_t;

static int qparam_cmp(const void *a, const void *b) {
  const qparam_t *x = a, *y = b;
  int c = strcmp(x->k, y->k);
  return c ? c : strcmp(x->v, y->v);
}

static char *encode_dup(const char *raw, size_t n) {
  char *dec = rn_xmalloc(n + 1);
  size_t dl = pct_decode(raw, n, dec);
  rn_buf_t b = {0};
  uri_encode(&b, dec, dl, false);
  free(dec);
  if (b.oom) abort();
  if (!b.p) b.p = rn_xcalloc(1, 1);
  return b.p;
}

static void canonical_query(rn_buf_t *b, const char *q) {
  if (!q || !*q) return;
  size_t cap = 1;
  for (const char *c = q; *c; c++) cap += *c == '&';
  qparam_t *ps = rn_xcalloc(cap, sizeof(*ps));
  size_t np = 0;
  const char *p = q;
  while (*p) {
    const char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p);
    if (n) {
      const char *eq = memchr(p, '=', n);
      size_t kl = eq ? (size_t)(eq - p) : n;
      ps[np].k = encode_dup(p, kl);
      ps[np].v = eq ? encode_dup(eq + 1, n - kl - 1) : encode_dup("", 0);
      np++;
    }
    p += n + (amp ? 1 : 0);
  }
  qsort(ps, np, sizeof(*ps), qparam_cmp);
  for (size_t i = 0; i < np; i++) {
    if (i) rn_buf_put(b, "&", 1);
    rn_buf_puts(b, ps[i].k);
    rn_buf_put(b, "=", 1);
    rn_buf_puts(b, ps[i].v);
    free(ps[i].k);
    free(ps[i].v);
  }
  free(ps);
}

/* Value trimmed, runs of spaces collapsed to one. */
static void put_trimmed(rn_buf_t *b, const char *v) {
  while (*v == ' ' || *v == '\t') v++;
  size_t n = strlen(v);
  while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
  bool sp = false;
  for (size_t i = 0; i < n; i++) {
    if (v[i] == ' ' || v[i] == '\t') {
      sp = true;
      continue;
    }
    if (sp) rn_buf_put(b, " ", 1);
    sp = false;
    rn_buf_put(b, &v[i], 1);
  }
}

static const char *host_value(const rn_http_req_t *req) {
  const char *h = header(req, "host");
  const char *a = req->authority && req->authority[0] ? req->authority : NULL;
  if (req->http_version == 20) return a ? a : h;
  return h ? h : a;
}

/* Canonical headers of the ';'-separated list. Returns false when a signed
 * header is missing from the request. */
static bool canonical_headers(rn_buf_t *b, const rn_http_req_t *req, const char *signed_headers) {
  bool all = true;
  const char *p = signed_headers;
  while (*p) {
    const char *semi = strchr(p, ';');
    size_t n = semi ? (size_t)(semi - p) : strlen(p);
    char name[128];
    if (n >= sizeof(name)) n = sizeof(name) - 1;
    for (size_t i = 0; i < n; i++) name[i] = (char)tolower((unsigned char)p[i]);
    name[n] = 0;
    rn_buf_put(b, name, n);
    rn_buf_put(b, ":", 1);
    if (strcmp(name, "host") == 0 || strcmp(name, ":authority") == 0) {
      const char *h = strcmp(name, "host") == 0 ? host_value(req) : req->authority;
      if (h) put_trimmed(b, h);
      else all = false;
    } else {
      bool first = true;
      for (size_t i = 0; i < req->nheaders; i++) {
        if (strcmp(req->headers[i].name, name) != 0) continue;
        if (!first) rn_buf_put(b, ",", 1);
        put_trimmed(b, req->headers[i].value);
        first = false;
      }
      if (first) all = false;
    }
    rn_buf_put(b, "\n", 1);
    p += n + (semi ? 1 : 0);
  }
  return all;
}

static void canonical(rn_buf_t *b, const rn_http_req_t *req, const char *signed_headers, const char *payload_hash,
                      bool *all_present) {
  rn_buf_puts(b, req->method ? req->method : "");
  rn_buf_put(b, "\n", 1);
  const char *path = req->path && req->path[0] ? req->path : "/";
  uri_encode(b, path, strlen(path), true);
  rn_buf_put(b, "\n", 1);
  canonical_query(b, req->query);
  rn_buf_put(b, "\n", 1);
  bool all = canonical_headers(b, req, signed_headers);
  if (all_present) *all_present = all;
  rn_buf_put(b, "\n", 1);
  rn_buf_puts(b, signed_headers);
  rn_buf_put(b, "\n", 1);
  rn_buf_puts(b, payload_hash);
}

size_t rn_sigv4_canonical_request(const rn_http_req_t *req, const char *signed_headers, const char *payload_hash_hex,
                                  char *out, size_t outlen) {
  rn_buf_t b = {0};
  canonical(&b, req, signed_headers, payload_hash_hex, NULL);
  size_t n = b.len;
  if (outlen) {
    size_t k = n < outlen - 1 ? n : outlen - 1;
    if (k) memcpy(out, b.p, k);
    out[k] = 0;
  }
  rn_buf_free(&b);
  return n;
}

/* ---- Authorization header ---------------------------------------------------------------- */

typedef struct auth {
  char credential[512];
  char signed_headers[1024];
  char signature[129];
  bool has_cred, has_sh, has_sig;
} auth_t;

static void copy_val(char *dst, size_t cap, const char *v, size_t n) {
  if (n >= cap) n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = 0;
}

/* "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." */
static bool parse_auth(const char *h, auth_t *a) {
  memset(a, 0, sizeof(*a));
  while (*h == ' ') h++;
  static const char alg[] = "AWS4-HMAC-SHA256";
  if (strncmp(h, alg, sizeof(alg) - 1) != 0 || (h[sizeof(alg) - 1] != ' ' && h[sizeof(alg) - 1] != 0)) return false;
  const char *p = h + sizeof(alg) - 1;
  while (*p) {
    while (*p == ' ' || *p == ',') p++;
    const char *end = p;
    while (*end && *end != ',' && *end != ' ') end++;
    const char *eq = memchr(p, '=', (size_t)(end - p));
    if (eq) {
      size_t kl = (size_t)(eq - p), vl = (size_t)(end - eq - 1);
      if (kl == 10 && memcmp(p, "Credential", 10) == 0 && vl) {
        copy_val(a->credential, sizeof(a->credential), eq + 1, vl);
        a->has_cred = true;
      } else if (kl == 13 && memcmp(p, "SignedHeaders", 13) == 0 && vl) {
        copy_val(a->signed_headers, sizeof(a->signed_headers), eq + 1, vl);
        a->has_sh = true;
      } else if (kl == 9 && memcmp(p, "Signature", 9) == 0 && vl) {
        copy_val(a->signature, sizeof(a->signature), eq + 1, vl);
        a->has_sig = true;
      }
    }
    p = end;
  }
  return true;
}

/* "AKID/20150830/us-east-1/kinesis/aws4_request" */
static bool split_credential(const char *cred, rn_sigv4_result_t *res, char date8[16], char terminator[64]) {
  const char *parts[5];
  size_t lens[5];
  const char *p = cred;
  for (int i = 0; i < 5; i++) {
    const char *slash = i < 4 ? strchr(p, '/') : NULL;
    if (i < 4 && !slash) return false;
    parts[i] = p;
    lens[i] = slash ? (size_t)(slash - p) : strlen(p);
    p = slash ? slash + 1 : p + lens[i];
  }
  if (!lens[0] || lens[1] != 8 || lens[0] >= sizeof(res->akid) || lens[2] >= sizeof(res->region) ||
      lens[3] >= sizeof(res->service) || lens[4] >= 64)
    return false;
  copy_val(res->akid, sizeof(res->akid), parts[0], lens[0]);
  copy_val(date8, 16, parts[1], lens[1]);
  copy_val(res->region, sizeof(res->region), parts[2], lens[2]);
  copy_val(res->service, sizeof(res->service), parts[3], lens[3]);
  copy_val(terminator, 64, parts[4], lens[4]);
  return true;
}

int rn_sigv4_scope(const rn_http_req_t *req, rn_sigv4_result_t *res) {
  memset(res, 0, sizeof(*res));
  const char *h = header(req, "authorization");
  auth_t a;
  char date8[16], term[64];
  if (!h || !parse_auth(h, &a) || !a.has_cred || !split_credential(a.credential, res, date8, term)) return -1;
  return 0;
}

/* ---- dates ---------------------------------------------------------------------------------- */

static bool num(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

/* "20150830T123600Z" → epoch seconds. */
static bool parse_amz_date(const char *s, int64_t *t) { return rn_amz_date_parse(s, strlen(s), t) == 0; }

/* RFC 1123 "Sun, 30 Aug 2015 12:36:00 GMT" → epoch seconds. */
static bool parse_http_date(const char *s, int64_t *t) {
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  const char *c = strchr(s, ',');
  if (!c) return false;
  c++;
  while (*c == ' ') c++;
  int D, Y, h, m, sec;
  if (strlen(c) < 20 || !num(c, 2, &D) || c[2] != ' ' || c[6] != ' ' || !num(c + 7, 4, &Y) || c[11] != ' ' ||
      !num(c + 12, 2, &h) || c[14] != ':' || !num(c + 15, 2, &m) || c[17] != ':' || !num(c + 18, 2, &sec))
    return false;
  const char *mp = NULL;
  for (int i = 0; i < 12; i++)
    if (strncmp(months + 3 * i, c + 3, 3) == 0) mp = months + 3 * i;
  if (!mp) return false;
  unsigned M = (unsigned)((mp - months) / 3 + 1);
  *t = rn_days_from_civil(Y, M, (unsigned)D) * 86400 + h * 3600 + m * 60 + sec;
  return true;
}

static void fmt_amz_date(int64_t t, char out[17]) { rn_amz_date_format(t, out); }

/* ---- verify ----------------------------------------------------------------------------------- */

rn_sigv4_status_t rn_sigv4_verify(const rn_http_req_t *req, const rn_sigv4_key_t *keys, size_t nkeys,
                                  const char *service, int64_t now_s, int64_t max_skew_s, rn_sigv4_result_t *res) {
  memset(res, 0, sizeof(*res));
  const char *h = header(req, "authorization");
  if (!h) {
    msg(res, RN_SIGV4_MISSING, "Missing Authentication Token");
    return res->status;
  }
  auth_t a;
  if (!parse_auth(h, &a)) {
    msg(res, RN_SIGV4_INCOMPLETE, "Unsupported Authorization Type: only AWS4-HMAC-SHA256 is accepted");
    return res->status;
  }
  const char *amz = header(req, "x-amz-date");
  const char *date = header(req, "date");
  char missing[600] = "";
  size_t ml = 0;
  if (!a.has_cred) ml += (size_t)snprintf(missing + ml, sizeof(missing) - ml, "Authorization header requires 'Credential' parameter. ");
  if (!a.has_sig) ml += (size_t)snprintf(missing + ml, sizeof(missing) - ml, "Authorization header requires 'Signature' parameter. ");
  if (!a.has_sh && ml < sizeof(missing))
    ml += (size_t)snprintf(missing + ml, sizeof(missing) - ml, "Authorization header requires 'SignedHeaders' parameter. ");
  if (!amz && !date && ml < sizeof(missing))
    ml += (size_t)snprintf(missing + ml, sizeof(missing) - ml,
                           "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ");
  if (ml) {
    msg(res, RN_SIGV4_INCOMPLETE, "%sAuthorization=%.300s", missing, h);
    return res->status;
  }
  char date8[16], term[64];
  if (!split_credential(a.credential, res, date8, term)) {
    msg(res, RN_SIGV4_INCOMPLETE,
        "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%.200s'",
        a.credential);
    return res->status;
  }
  /* host (or :authority) must be signed. */
  bool host_signed = false;
  for (const char *p = a.signed_headers; *p;) {
    const char *semi = strchr(p, ';');
    size_t n = semi ? (size_t)(semi - p) : strlen(p);
    if ((n == 4 && strncasecmp(p, "host", 4) == 0) || (n == 10 && strncmp(p, ":authority", 10) == 0)) host_signed = true;
    p += n + (semi ? 1 : 0);
  }
  if (!host_signed) {
    msg(res, RN_SIGV4_INCOMPLETE, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
    return res->status;
  }
  const rn_sigv4_key_t *key = NULL;
  for (size_t i = 0; i < nkeys && !key; i++)
    if (strcmp(keys[i].akid, res->akid) == 0) key = &keys[i];
  if (!key) {
    msg(res, RN_SIGV4_UNKNOWN_KEY, "The security token included in the request is invalid.");
    return res->status;
  }
  if (strcmp(term, "aws4_request") != 0) {
    msg(res, RN_SIGV4_INVALID, "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'.", term);
    return res->status;
  }
  if (service && strcmp(res->service, service) != 0) {
    msg(res, RN_SIGV4_INVALID, "Credential should be scoped to correct service: '%s'. ", service);
    return res->status;
  }
  int64_t t;
  char amzbuf[17];
  if (amz) {
    if (!parse_amz_date(amz, &t)) {
      msg(res, RN_SIGV4_INCOMPLETE, "X-Amz-Date '%.40s' is not in ISO 8601 basic format (YYYYMMDD'T'HHMMSS'Z')", amz);
      return res->status;
    }
    copy_val(amzbuf, sizeof(amzbuf), amz, 16);
  } else {
    if (!parse_http_date(date, &t)) {
      msg(res, RN_SIGV4_INCOMPLETE, "Date '%.60s' is not an RFC 1123 date", date);
      return res->status;
    }
    fmt_amz_date(t, amzbuf);
  }
  if (strncmp(amzbuf, date8, 8) != 0) {
    msg(res, RN_SIGV4_INVALID,
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%.8s', from "
        "'%s'.",
        date8, amzbuf, amzbuf);
    return res->status;
  }
  char nowbuf[17], edge[17];
  if (t < now_s - max_skew_s) {
    fmt_amz_date(now_s, nowbuf);
    fmt_amz_date(now_s - max_skew_s, edge);
    msg(res, RN_SIGV4_INVALID, "Signature expired: %s is now earlier than %s (%s - %lld min.)", amzbuf, edge, nowbuf,
        (long long)(max_skew_s / 60));
    return res->status;
  }
  if (t > now_s + max_skew_s) {
    fmt_amz_date(now_s, nowbuf);
    fmt_amz_date(now_s + max_skew_s, edge);
    msg(res, RN_SIGV4_INVALID, "Signature not yet current: %s is still later than %s (%s + %lld min.)", amzbuf, edge,
        nowbuf, (long long)(max_skew_s / 60));
    return res->status;
  }
  char body_hash[65];
  sha256_hex(req->body, req->body_len, body_hash);
  const char *payload = body_hash;
  const char *sent = header(req, "x-amz-content-sha256");
  if (sent) {
    if (strcmp(sent, "UNSIGNED-PAYLOAD") == 0) {
      payload = "UNSIGNED-PAYLOAD";
    } else if (strcasecmp(sent, body_hash) != 0) {
      msg(res, RN_SIGV4_INVALID, "The provided 'x-amz-content-sha256' header does not match what was computed.");
      return res->status;
    }
  }
  rn_buf_t cr = {0};
  canonical(&cr, req, a.signed_headers, payload, NULL);
  if (cr.oom) abort();
  char cr_hash[65];
  sha256_hex(cr.p, cr.len, cr_hash);
  rn_buf_free(&cr);
  rn_buf_t sts = {0};
  rn_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amzbuf, date8, res->region, res->service,
                 cr_hash);
  if (sts.oom) abort();
  char want[65];
  rn_sigv4_signature(key->secret, date8, res->region, res->service, sts.p, want);
  rn_buf_free(&sts);
  if (strlen(a.signature) != 64 || CRYPTO_memcmp(want, a.signature, 64) != 0) {
    msg(res, RN_SIGV4_INVALID,
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
        "Key and signing method. Consult the service documentation for details.");
    return res->status;
  }
  res->status = RN_SIGV4_OK;
  res->type = RN_KERR_NONE;
  return RN_SIGV4_OK;
}
