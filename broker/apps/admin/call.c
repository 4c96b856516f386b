/*
 * call.c — the reply path every HTTP application answers through
 * (rn_admin.h): one call per request, answered exactly once, counted by
 * operation, status and duration for /metrics, with CORS headers when the
 * request had an Origin. Kinesis errors are written from the error table
 * (rn_kinesis_codec.h) only.
 *
 * Invariant: every request reaches rn_admin_reply (or _owned) exactly once, which
 * counts it, calls the transport's reply and frees the call. Nothing
 * touches the request after that.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"

const char *rn_admin_req_header(const rn_http_req_t *req, const char *lname) {
  for (size_t i = 0; i < req->nheaders; i++)
    if (strcmp(req->headers[i].name, lname) == 0) return req->headers[i].value;
  return NULL;
}

rn_admin_call_t *rn_admin_call_new(rn_admin_t *adm, const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx) {
  rn_admin_call_t *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->adm = adm;
  c->req = req;
  c->reply = reply;
  c->ctx = ctx;
  c->t0_ns = uv_hrtime();
  c->hop = RN__HOP_NOT_FOUND;
  c->cors = rn_admin_req_header(req, "origin") != NULL;
  return c;
}

/* Both replies: headers, counters, free c, then the transport's reply;
 * owned != NULL: the body is handed over (rn_http_reply_owned). */
static void reply_any(rn_admin_call_t *c, int status, const char *content_type, const rn_http_header_t *extra,
                      size_t nextra, const void *body, uint8_t *owned, size_t len) {
  rn_admin_t *adm = c->adm;
  rn_http_header_t hs[12];
  size_t nh = 0;
  if (content_type) hs[nh++] = (rn_http_header_t){"content-type", content_type};
  if (c->cors) {
    hs[nh++] = (rn_http_header_t){"access-control-allow-origin", "*"};
    hs[nh++] = (rn_http_header_t){"access-control-expose-headers", "x-amzn-RequestId,x-amzn-ErrorType,retry-after"};
  }
  for (size_t i = 0; i < nextra && nh < sizeof(hs) / sizeof(hs[0]); i++) hs[nh++] = extra[i];
  /* Count before answering: the transport may free the request in reply(). */
  rn_admin_counters_t *m = &adm->m;
  int hop = c->hop >= 0 && c->hop < RN__HOP_COUNT ? c->hop : RN__HOP_NOT_FOUND;
  m->requests[hop][rn__status_slot(status)]++;
  rn_hist_record(&m->dur[hop], rn__dur_bounds, RN__DUR_BUCKETS, (double)(uv_hrtime() - c->t0_ns) / 1e9);
  rn_http_reply_fn reply = c->reply;
  void *ctx = c->ctx;
  const rn_http_req_t *req = c->req; /* still the transport's until the reply below */
  free(c);
  if (owned) rn_http_reply_owned(req, reply, ctx, status, hs, nh, owned, len);
  else reply(ctx, status, hs, nh, (const uint8_t *)(body ? body : ""), body ? len : 0);
}

void rn_admin_reply(rn_admin_call_t *c, int status, const char *content_type, const rn_http_header_t *extra, size_t nextra,
                    const void *body, size_t len) {
  reply_any(c, status, content_type, extra, nextra, body, NULL, len);
}

void rn_admin_reply_owned(rn_admin_call_t *c, int status, const char *content_type, const rn_http_header_t *extra,
                          size_t nextra, uint8_t *body, size_t len) {
  if (!body) return reply_any(c, status, content_type, extra, nextra, NULL, NULL, 0);
  reply_any(c, status, content_type, extra, nextra, NULL, body, len);
}

void rn_admin_reply_kerr(rn_admin_call_t *c, rn_kinesis_err_t type, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  rn__metrics_count_kerr(&c->adm->m, type);
  const char *name = rn_kinesis_err_name(type);
  if (!name) { /* not an error of the table: a bug of the caller, answered as one */
    type = RN_KERR_InternalFailure;
    name = rn_kinesis_err_name(type);
  }
  rn_buf_t b = {0};
  rn_buf_puts(&b, "{\"__type\":");
  rn__buf_json_str(&b, name, strlen(name));
  rn_buf_puts(&b, ",\"message\":");
  rn__buf_json_str(&b, msg, strlen(msg));
  rn_buf_puts(&b, "}");
  rn_http_header_t et = {"x-amzn-errortype", name};
  if (b.oom) rn_admin_reply(c, 500, NULL, NULL, 0, NULL, 0);
  else rn_admin_reply(c, rn_kinesis_err_status(type), "application/x-amz-json-1.1", &et, 1, b.p, b.len);
  rn_buf_free(&b);
}

static const char *status_name(int status) {
  switch (status) {
  case 400: return "BadRequest";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "NotFound";
  case 405: return "MethodNotAllowed";
  case 413: return "PayloadTooLarge";
  case 415: return "UnsupportedMediaType";
  case 429: return "TooManyRequests";
  case 500: return "InternalError";
  case 503: return "ServiceUnavailable";
  default: return "Error";
  }
}

void rn_admin_reply_error(rn_admin_call_t *c, int status, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  rn_buf_t b = {0};
  const char *name = status_name(status);
  rn_buf_puts(&b, "{\"__type\":"); /* what AWS SDKs and the Kinesis API read */
  rn__buf_json_str(&b, name, strlen(name));
  rn_buf_puts(&b, ",\"error\":");
  rn__buf_json_str(&b, name, strlen(name));
  rn_buf_puts(&b, ",\"message\":");
  rn__buf_json_str(&b, msg, strlen(msg));
  rn_buf_puts(&b, "}");
  rn_http_header_t extra[2];
  size_t ne = 0;
  if (status == 401) extra[ne++] = (rn_http_header_t){"www-authenticate", "Bearer realm=\"runnel\""};
  if (status == 429 || status == 503) extra[ne++] = (rn_http_header_t){"retry-after", "1"};
  if (status == 405) extra[ne++] = (rn_http_header_t){"allow", "GET, HEAD"};
  if (b.oom) rn_admin_reply(c, 500, NULL, NULL, 0, NULL, 0);
  else rn_admin_reply(c, status, "application/json", extra, ne, b.p, b.len);
  rn_buf_free(&b);
}
