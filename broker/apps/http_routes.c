/*
 * http_routes.c — the route table behind runneld's HTTP port (rn_apps.h):
 * which application answers a request. It owns one of each application
 * (admin: the reply path, counters, /metrics, /healthz, /readyz; kinesis;
 * rest) and makes a call per request (rn_admin_call_new), which the
 * application that answers takes.
 *
 * Dispatch, in order: GET /healthz, GET /readyz, GET /metrics; any request
 * with X-Amz-Target goes to the Kinesis API whatever its path (AWS ignores
 * the path too), as does POST / without one (answered
 * UnknownOperationException); PUT|POST /streams/{s}/record, PUT|POST
 * /streams/{s}/records and POST /v1/streams/{s}/records are REST ingest
 * (OPTIONS on them is a CORS preflight); anything else is 404.
 *
 * Invariant: every request reaches rn_admin_reply exactly once, which
 * counts it (operation, status, duration), adds CORS headers when the
 * request had an Origin, calls the transport's reply and frees the call.
 * Nothing touches the request after that.
 */
#include "rn_apps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rn_admin.h"
#include "rn_kinesis.h"
#include "rn_rest.h"
#include "rn_base.h" /* rn_sayf */

struct rn_http_routes {
  rn_admin_t *adm;
  rn_kinesis_t *kin;
  rn_rest_t *rest;
};

static void preflight(rn_admin_call_t *c) {
  const char *rh = rn_admin_req_header(c->req, "access-control-request-headers");
  rn_http_header_t hs[] = {
      {"access-control-allow-methods", "GET, PUT, POST, OPTIONS"},
      {"access-control-allow-headers",
       rh ? rh : "authorization, content-type, content-encoding, x-api-key, x-amz-date, x-amz-target, "
                 "x-amz-security-token, x-amz-user-agent"},
      {"access-control-max-age", "86400"},
  };
  c->cors = true;
  rn_admin_reply(c, 204, NULL, hs, 3, NULL, 0);
}

/* ---- dispatch -------------------------------------------------------------------------------- */

static int hexv(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Percent-decode one path segment s[0, n) into out[129]; false if too long
 * or malformed. */
static bool segment(const char *s, size_t n, char out[129]) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (ch == '%') {
      if (i + 2 >= n || hexv(s[i + 1]) < 0 || hexv(s[i + 2]) < 0) return false;
      ch = (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
      i += 2;
    }
    if (o >= 128) return false;
    out[o++] = ch;
  }
  out[o] = 0;
  return o > 0;
}

/* Match "/streams/{s}/record", "/streams/{s}/records" or
 * "/v1/streams/{s}/records" (one optional trailing slash); returns the hop
 * (RN__HOP_REST_*) or -1, with the raw segment in *seg, *seglen. */
static int rest_path(const char *path, const char **seg, size_t *seglen) {
  size_t n = strlen(path);
  if (n > 1 && path[n - 1] == '/') n--;
  bool v1 = false;
  const char *p = path;
  if (n > 3 && strncmp(p, "/v1/", 4) == 0) {
    v1 = true;
    p += 3;
    n -= 3;
  }
  if (n < 9 || strncmp(p, "/streams/", 9) != 0) return -1;
  const char *s = p + 9;
  const char *slash = memchr(s, '/', n - 9);
  if (!slash || slash == s) return -1;
  const char *tail = slash + 1;
  size_t tl = n - (size_t)(tail - p);
  *seg = s;
  *seglen = (size_t)(slash - s);
  if (tl == 7 && strncmp(tail, "records", 7) == 0) return v1 ? RN__HOP_REST_BATCH : RN__HOP_REST_RECORDS;
  if (!v1 && tl == 6 && strncmp(tail, "record", 6) == 0) return RN__HOP_REST_RECORD;
  return -1;
}

void rn_http_routes_router(void *arg, const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx) {
  rn_http_routes_t *r = arg;
  rn_admin_call_t *c = rn_admin_call_new(r->adm, req, reply, ctx);
  if (!c) {
    static const char oom[] = "{\"__type\":\"InternalFailure\",\"message\":\"out of memory\"}";
    reply(ctx, 500, NULL, 0, (const uint8_t *)oom, sizeof(oom) - 1);
    return;
  }
  const char *m = req->method ? req->method : "";
  const char *path = req->path && req->path[0] ? req->path : "/";
  bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
  const char *target = rn_admin_req_header(req, "x-amz-target");

  if (strcmp(path, "/healthz") == 0 && get) {
    c->hop = RN__HOP_HEALTHZ;
    return rn_admin_healthz(c);
  }
  if (strcmp(path, "/readyz") == 0 && get) {
    c->hop = RN__HOP_READYZ;
    return rn_admin_readyz(c);
  }
  if (strcmp(path, "/metrics") == 0 && get) {
    c->hop = RN__HOP_METRICS;
    return rn_admin_metrics(c);
  }
  if (strcmp(path, "/metrics") == 0 || strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
    c->hop = strcmp(path, "/metrics") == 0 ? RN__HOP_METRICS : path[1] == 'h' ? RN__HOP_HEALTHZ : RN__HOP_READYZ;
    return rn_admin_reply_error(c, 405, "%s answers GET and HEAD only, not %s", path, m);
  }
  if (target || (strcmp(m, "POST") == 0 && strcmp(path, "/") == 0)) return rn_kinesis_handle(r->kin, c, target);

  const char *seg = NULL;
  size_t seglen = 0;
  int hop = rest_path(path, &seg, &seglen);
  if (hop >= 0) {
    c->hop = hop;
    if (strcmp(m, "OPTIONS") == 0) return preflight(c);
    bool ok_method = hop == RN__HOP_REST_BATCH ? strcmp(m, "POST") == 0 : (strcmp(m, "PUT") == 0 || strcmp(m, "POST") == 0);
    if (!ok_method) {
      rn_http_header_t allow = {"allow", hop == RN__HOP_REST_BATCH ? "POST, OPTIONS" : "PUT, POST, OPTIONS"};
      rn_buf_t b = {0};
      rn_buf_printf(&b, "{\"__type\":\"MethodNotAllowed\",\"error\":\"MethodNotAllowed\",\"message\":\"%s is not allowed here\"}",
                     strcmp(m, "GET") == 0 ? "GET" : "this method");
      rn_admin_reply(c, 405, "application/json", &allow, 1, b.p, b.len);
      rn_buf_free(&b);
      return;
    }
    char stream[129];
    if (!segment(seg, seglen, stream) || !rn__valid_stream_name(stream, strlen(stream)))
      return rn_admin_reply_error(c, 404, "no such stream: stream names are 1-128 characters of A-Z a-z 0-9 _ . -");
    return rn_rest_handle(r->rest, c, hop, stream);
  }
  if (strcmp(m, "OPTIONS") == 0 && c->cors) {
    c->hop = RN__HOP_OPTIONS;
    return preflight(c);
  }
  rn_admin_reply_error(c, 404, "no such endpoint: %.100s %.200s (see docs/kinesis.md)", m, path);
}

/* ---- lifetime ---------------------------------------------------------------------------------- */

rn_err_t rn_http_routes_new(uv_loop_t *loop, rn_core_t *core, const rn_apps_opts_t *opts, rn_http_routes_t **out,
                            char *why, size_t whylen) {
  *out = NULL;
  if (whylen) why[0] = 0;
  rn_http_routes_t *r = calloc(1, sizeof(*r));
  if (!r) return RN_ENOMEM;
  rn_err_t err = rn_admin_new(loop, core, &opts->admin, RN_VERSION, &r->adm);
  if (!err) err = rn_kinesis_new(loop, core, r->adm, &opts->kinesis, &r->kin, why, whylen);
  if (!err) err = rn_rest_new(r->kin, r->adm, &opts->rest, &r->rest, why, whylen);
  if (err) {
    if (!why[0]) snprintf(why, whylen, "%s", rn_strerror(err));
    rn_http_routes_destroy(r);
    return err;
  }
  if (!opts->http_listen_loopback) {
    if (rn_kinesis_open(r->kin))
      rn_sayf(RN_LVL_WARN, "kinesis",
               "http_listen %s is not loopback and kinesis_credentials is empty: the Kinesis API accepts "
               "unsigned requests from anyone who can reach it",
               opts->http_listen);
    if (rn_rest_open(r->rest))
      rn_sayf(RN_LVL_WARN, "rest",
               "http_listen %s is not loopback and rest_api_keys is empty: REST ingest is open to anyone who "
               "can reach it",
               opts->http_listen);
  }
  *out = r;
  return 0;
}

rn_err_t rn_http_routes_add_metrics(rn_http_routes_t *r, rn_http_metrics_fn fn, void *arg) {
  return rn_admin_add_metrics(r->adm, fn, arg);
}

void rn_http_routes_set_clock(rn_http_routes_t *r, int64_t (*now_ms)(void *arg), void *arg) {
  rn_kinesis_set_clock(r->kin, now_ms, arg);
}

void rn_http_routes_destroy(rn_http_routes_t *r) {
  if (!r) return;
  rn_rest_destroy(r->rest);
  rn_kinesis_destroy(r->kin); /* waits for its writes of the tags file */
  rn_admin_destroy(r->adm);   /* waits for its statfs */
  free(r);
}
