/*
 * http_routes.c — the router behind runneld's HTTP port (http_routes.h):
 * which application answers a request, the applications' shared state
 * (credentials, API keys, the shard-iterator secret, the Kinesis tags file,
 * throughput buckets, metrics), the reply path every application uses, and
 * /healthz and /readyz.
 *
 * Dispatch, in order: GET /healthz, GET /readyz, GET /metrics; any request
 * with X-Amz-Target goes to the Kinesis API whatever its path (AWS ignores
 * the path too), as does POST / without one (answered
 * UnknownOperationException); PUT|POST /streams/{s}/record, PUT|POST
 * /streams/{s}/records and POST /v1/streams/{s}/records are REST ingest
 * (OPTIONS on them is a CORS preflight); anything else is 404.
 *
 * Invariant: every request reaches rn__call_reply exactly once, which
 * counts it (operation, status, duration), adds CORS headers when the
 * request had an Origin, calls the transport's reply and frees the call.
 * Nothing touches the request after that.
 */
#include "http_routes.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "apps_int.h"
#include "server.h"

/* ---- small helpers --------------------------------------------------------------- */

const char *rn__req_header(const rn_http_req_t *req, const char *lname) {
  for (size_t i = 0; i < req->nheaders; i++)
    if (strcmp(req->headers[i].name, lname) == 0) return req->headers[i].value;
  return NULL;
}

static int64_t wall_ms(void *arg) {
  (void)arg;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rn__routes_now_ms(const rn_http_routes_t *r) { return r->now_ms(r->now_arg); }

/* ---- replies ------------------------------------------------------------------------- */

void rn__call_reply(rn__call_t *c, int status, const char *content_type, const rn_http_header_t *extra, size_t nextra,
                    const void *body, size_t len) {
  rn_http_routes_t *r = c->r;
  rn_http_header_t hs[12];
  size_t nh = 0;
  if (content_type) hs[nh++] = (rn_http_header_t){"content-type", content_type};
  if (c->cors) {
    hs[nh++] = (rn_http_header_t){"access-control-allow-origin", "*"};
    hs[nh++] = (rn_http_header_t){"access-control-expose-headers", "x-amzn-RequestId,x-amzn-ErrorType,retry-after"};
  }
  for (size_t i = 0; i < nextra && nh < sizeof(hs) / sizeof(hs[0]); i++) hs[nh++] = extra[i];
  /* Count before answering: the transport may free the request in reply(). */
  rn__metrics_t *m = &r->m;
  int hop = c->hop >= 0 && c->hop < RN__HOP_COUNT ? c->hop : RN__HOP_NOT_FOUND;
  m->requests[hop][rn__status_slot(status)]++;
  double s = (double)(uv_hrtime() - c->t0_ns) / 1e9;
  unsigned b = 0;
  while (b < RN__DUR_BUCKETS && s > rn__dur_bounds[b]) b++;
  m->dur_buckets[hop][b]++;
  m->dur_sum[hop] += s;
  m->dur_count[hop]++;
  rn_http_reply_fn reply = c->reply;
  void *ctx = c->ctx;
  free(c);
  reply(ctx, status, hs, nh, (const uint8_t *)(body ? body : ""), body ? len : 0);
}

void rn__call_kerr(rn__call_t *c, rn_kinesis_err_t type, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  rn__metrics_count_kerr(&c->r->m, type);
  const char *name = rn_kinesis_err_name(type);
  if (!name) { /* not an error of the table: a bug of the caller, answered as one */
    type = RN_KERR_InternalFailure;
    name = rn_kinesis_err_name(type);
  }
  rn__buf_t b = {0};
  rn__buf_puts(&b, "{\"__type\":");
  rn__buf_json_str(&b, name, strlen(name));
  rn__buf_puts(&b, ",\"message\":");
  rn__buf_json_str(&b, msg, strlen(msg));
  rn__buf_puts(&b, "}");
  rn_http_header_t et = {"x-amzn-errortype", name};
  if (b.oom) rn__call_reply(c, 500, NULL, NULL, 0, NULL, 0);
  else rn__call_reply(c, rn_kinesis_err_status(type), "application/x-amz-json-1.1", &et, 1, b.p, b.len);
  rn__buf_free(&b);
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

void rn__call_rest_error(rn__call_t *c, int status, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  rn__buf_t b = {0};
  const char *name = status_name(status);
  rn__buf_puts(&b, "{\"__type\":"); /* what AWS SDKs and the Kinesis API read */
  rn__buf_json_str(&b, name, strlen(name));
  rn__buf_puts(&b, ",\"error\":");
  rn__buf_json_str(&b, name, strlen(name));
  rn__buf_puts(&b, ",\"message\":");
  rn__buf_json_str(&b, msg, strlen(msg));
  rn__buf_puts(&b, "}");
  rn_http_header_t extra[2];
  size_t ne = 0;
  if (status == 401) extra[ne++] = (rn_http_header_t){"www-authenticate", "Bearer realm=\"runnel\""};
  if (status == 429 || status == 503) extra[ne++] = (rn_http_header_t){"retry-after", "1"};
  if (status == 405) extra[ne++] = (rn_http_header_t){"allow", "GET, HEAD"};
  if (b.oom) rn__call_reply(c, 500, NULL, NULL, 0, NULL, 0);
  else rn__call_reply(c, status, "application/json", extra, ne, b.p, b.len);
  rn__buf_free(&b);
}

static void reply_json(rn__call_t *c, int status, const char *json) {
  rn__call_reply(c, status, "application/json", NULL, 0, json, strlen(json));
}

/* ---- health ---------------------------------------------------------------------------- */

/* GET /healthz: 200 while anything can be served — "ok" when every shard is
 * healthy, "degraded" with the shards that are not (a transient problem such
 * as a full disk, which the shard gets over by itself, or a failed log,
 * which needs a restart); 503 "failing" only when every shard's log has
 * failed, i.e. when only a restart can help. docs/kinesis.md, "Health". */
#define HEALTH_LIST_MAX 100

typedef struct health_acc {
  rn__buf_t *b;
  uint32_t shards, failed, degraded, listed;
} health_acc_t;

static void health_shard(void *arg, const rn_engine_shard_stats_t *s) {
  health_acc_t *h = arg;
  h->shards++;
  if (s->health_state == RN_LOG_HEALTHY) return;
  if (s->health_state == RN_LOG_FAILED)
    h->failed++;
  else
    h->degraded++;
  if (h->listed++ >= HEALTH_LIST_MAX) return;
  char reason[200];
  snprintf(reason, sizeof(reason), "%s failed: %s%s", s->health_what, rn_strerror(s->health_err),
           s->health_state == RN_LOG_FAILED ? "; appends are refused until the broker restarts"
                                           : "; appends fail with a retriable error and resume by themselves");
  rn__buf_puts(h->b, h->listed > 1 ? ",{\"stream\":" : "{\"stream\":");
  rn__buf_json_str(h->b, s->stream, strlen(s->stream));
  rn__buf_printf(h->b, ",\"shard\":\"shardId-%012u\",\"state\":\"%s\",\"error\":\"%s\",\"reason\":", s->shard,
                 s->health_state == RN_LOG_FAILED ? "failed" : "degraded", rn_err_name(s->health_err));
  rn__buf_json_str(h->b, reason, strlen(reason));
  rn__buf_puts(h->b, "}");
}

static void health(rn__call_t *c) {
  rn_engine_stats_t st;
  rn_engine_stats(c->r->eng, &st);
  rn__buf_t list = {0};
  health_acc_t h = {.b = &list};
  rn_engine_foreach_shard(c->r->eng, health_shard, &h);
  bool failing = h.shards > 0 && h.failed == h.shards;
  const char *status = failing ? "failing" : h.failed || h.degraded ? "degraded" : "ok";
  rn__buf_t b = {0};
  rn__buf_printf(&b, "{\"status\":\"%s\",\"streams\":%u,\"shards\":%u,\"failed_shards\":%u,\"degraded_shards\":%u,\"problems\":[",
                 status, st.streams, h.shards, h.failed, h.degraded);
  if (list.len) rn__buf_put(&b, list.p, list.len);
  rn__buf_printf(&b, "]%s}", h.listed > HEALTH_LIST_MAX ? ",\"problems_truncated\":true" : "");
  if (b.oom || list.oom) rn__call_reply(c, 500, NULL, NULL, 0, NULL, 0);
  else rn__call_reply(c, failing ? 503 : 200, "application/json", NULL, 0, b.p, b.len);
  rn__buf_free(&b);
  rn__buf_free(&list);
}

static void ready(rn__call_t *c) {
  if (rn_engine_draining(c->r->eng)) reply_json(c, 503, "{\"status\":\"draining\"}");
  else reply_json(c, 200, "{\"status\":\"ready\"}");
}

/* GET /metrics: statfs of the data directory first, on the thread pool (a
 * slow or hung file system must not stall the loop), then render. */
typedef struct metrics_job {
  uv_fs_t fs;
  rn__call_t *c;
} metrics_job_t;

static void metrics_render_reply(rn__call_t *c, const rn__disk_usage_t *disk) {
  rn__buf_t b = {0};
  rn__metrics_render(c->r, &b, disk);
  if (b.oom) rn__call_rest_error(c, 500, "out of memory rendering metrics");
  else rn__call_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, 0, b.p, b.len);
  rn__buf_free(&b);
}

static void on_metrics_statfs(uv_fs_t *req) {
  metrics_job_t *j = req->data;
  rn__disk_usage_t disk = {.err = req->result < 0 ? (rn_err_t)req->result : 0};
  if (disk.err == 0) {
    const uv_statfs_t *st = req->ptr;
    disk.free_bytes = (uint64_t)st->f_bavail * st->f_bsize;
    disk.total_bytes = (uint64_t)st->f_blocks * st->f_bsize;
  }
  rn__call_t *c = j->c;
  c->r->pending_jobs--;
  uv_fs_req_cleanup(req);
  free(j);
  metrics_render_reply(c, &disk);
}

static void metrics(rn__call_t *c) {
  metrics_job_t *j = calloc(1, sizeof *j);
  if (j != NULL) {
    j->c = c;
    j->fs.data = j;
    if (uv_fs_statfs(c->r->loop, &j->fs, c->r->data_dir, on_metrics_statfs) == 0) {
      c->r->pending_jobs++;
      return;
    }
    free(j);
  }
  rn__disk_usage_t unknown = {.err = RN_ENOMEM};
  metrics_render_reply(c, &unknown);
}

/* Epoch seconds at which this process started: its start time in clock
 * ticks after boot (/proc/self/stat field 22) plus the boot time. Startup
 * only (reads /proc); 0 when unknown. */
static double process_start_seconds(void) {
  double boot = 0, start_ticks = 0;
  FILE *f = fopen("/proc/stat", "r");
  if (f != NULL) {
    char line[256];
    while (fgets(line, sizeof line, f) != NULL)
      if (sscanf(line, "btime %lf", &boot) == 1) break;
    fclose(f);
  }
  f = fopen("/proc/self/stat", "r");
  if (f != NULL) {
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    int field = 2;
    for (; p != NULL && *p != '\0' && field < 22; p++)
      if (*p == ' ') field++;
    if (p != NULL && field == 22) start_ticks = strtod(p, NULL);
  }
  long hz = sysconf(_SC_CLK_TCK);
  if (boot <= 0 || start_ticks <= 0 || hz <= 0) return 0;
  return boot + start_ticks / (double)hz;
}

static void preflight(rn__call_t *c) {
  const char *rh = rn__req_header(c->req, "access-control-request-headers");
  rn_http_header_t hs[] = {
      {"access-control-allow-methods", "GET, PUT, POST, OPTIONS"},
      {"access-control-allow-headers",
       rh ? rh : "authorization, content-type, content-encoding, x-api-key, x-amz-date, x-amz-target, "
                 "x-amz-security-token, x-amz-user-agent"},
      {"access-control-max-age", "86400"},
  };
  c->cors = true;
  rn__call_reply(c, 204, NULL, hs, 3, NULL, 0);
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
  rn__call_t *c = calloc(1, sizeof(*c));
  if (!c) {
    static const char oom[] = "{\"__type\":\"InternalFailure\",\"message\":\"out of memory\"}";
    reply(ctx, 500, NULL, 0, (const uint8_t *)oom, sizeof(oom) - 1);
    return;
  }
  c->r = r;
  c->req = req;
  c->reply = reply;
  c->ctx = ctx;
  c->t0_ns = uv_hrtime();
  c->hop = RN__HOP_NOT_FOUND;
  c->cors = rn__req_header(req, "origin") != NULL;
  const char *m = req->method ? req->method : "";
  const char *path = req->path && req->path[0] ? req->path : "/";
  bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
  const char *target = rn__req_header(req, "x-amz-target");

  if (strcmp(path, "/healthz") == 0 && get) {
    c->hop = RN__HOP_HEALTHZ;
    return health(c);
  }
  if (strcmp(path, "/readyz") == 0 && get) {
    c->hop = RN__HOP_READYZ;
    return ready(c);
  }
  if (strcmp(path, "/metrics") == 0 && get) {
    c->hop = RN__HOP_METRICS;
    return metrics(c);
  }
  if (strcmp(path, "/metrics") == 0 || strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0) {
    c->hop = strcmp(path, "/metrics") == 0 ? RN__HOP_METRICS : path[1] == 'h' ? RN__HOP_HEALTHZ : RN__HOP_READYZ;
    return rn__call_rest_error(c, 405, "%s answers GET and HEAD only, not %s", path, m);
  }
  if (target || (strcmp(m, "POST") == 0 && strcmp(path, "/") == 0)) return rn__kinesis_handle(c, target);

  const char *seg = NULL;
  size_t seglen = 0;
  int hop = rest_path(path, &seg, &seglen);
  if (hop >= 0) {
    c->hop = hop;
    if (strcmp(m, "OPTIONS") == 0) return preflight(c);
    bool ok_method = hop == RN__HOP_REST_BATCH ? strcmp(m, "POST") == 0 : (strcmp(m, "PUT") == 0 || strcmp(m, "POST") == 0);
    if (!ok_method) {
      rn_http_header_t allow = {"allow", hop == RN__HOP_REST_BATCH ? "POST, OPTIONS" : "PUT, POST, OPTIONS"};
      rn__buf_t b = {0};
      rn__buf_printf(&b, "{\"__type\":\"MethodNotAllowed\",\"error\":\"MethodNotAllowed\",\"message\":\"%s is not allowed here\"}",
                     strcmp(m, "GET") == 0 ? "GET" : "this method");
      rn__call_reply(c, 405, "application/json", &allow, 1, b.p, b.len);
      rn__buf_free(&b);
      return;
    }
    char stream[129];
    if (!segment(seg, seglen, stream) || !rn__valid_stream_name(stream, strlen(stream)))
      return rn__call_rest_error(c, 404, "no such stream: stream names are 1-128 characters of A-Z a-z 0-9 _ . -");
    return rn__rest_handle(c, hop, stream);
  }
  if (strcmp(m, "OPTIONS") == 0 && c->cors) {
    c->hop = RN__HOP_OPTIONS;
    return preflight(c);
  }
  rn__call_rest_error(c, 404, "no such endpoint: %.100s %.200s (see docs/kinesis.md)", m, path);
}

/* ---- lifetime ---------------------------------------------------------------------------------- */

static rn_err_t parse_credentials(rn_http_routes_t *r, const char *spec, char *why, size_t whylen) {
  size_t n = 0;
  for (const char *p = spec; *p; p++) n += *p == ',';
  r->creds_buf = strdup(spec);
  r->creds = calloc(n + 1, sizeof(*r->creds));
  if (!r->creds_buf || !r->creds) return RN_ENOMEM;
  char *save = NULL;
  size_t idx = 0;
  for (char *tok = strtok_r(r->creds_buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    idx++;
    while (*tok == ' ' || *tok == '\t') tok++;
    char *end = tok + strlen(tok);
    while (end > tok && (end[-1] == ' ' || end[-1] == '\t')) *--end = 0;
    if (!*tok) continue;
    char *colon = strchr(tok, ':');
    if (!colon || colon == tok || !colon[1]) {
      snprintf(why, whylen, "kinesis_credentials: entry %zu must be ACCESS_KEY_ID:SECRET_ACCESS_KEY", idx);
      return RN_EINVAL;
    }
    *colon = 0;
    r->creds[r->ncreds].akid = tok;
    r->creds[r->ncreds].secret = colon + 1;
    r->ncreds++;
  }
  return 0;
}

static bool loopback_addr(const char *addr) {
  char host[256];
  uint16_t port;
  if (rn_config_split_addr(addr, host, sizeof(host), &port)) return false;
  return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0;
}

rn_err_t rn_http_routes_new(uv_loop_t *loop, rn_engine_t *eng, const rn_config_t *cfg, rn_http_routes_t **out,
                            char *why, size_t whylen) {
  *out = NULL;
  if (whylen) why[0] = 0;
  rn_http_routes_t *r = calloc(1, sizeof(*r));
  if (!r) return RN_ENOMEM;
  r->loop = loop;
  r->eng = eng;
  r->now_ms = wall_ms;
  r->started_ns = uv_hrtime();
  r->process_start_s = process_start_seconds();
  r->version = RN_VERSION;
  r->latency_per_shard = cfg->metrics_latency_detail == 1;
  r->data_dir = strdup(cfg->data_dir);
  r->max_record_bytes = cfg->max_record_bytes;
  r->max_batch_bytes = cfg->max_batch_bytes;
  r->max_shards = cfg->max_shards;
  r->rest_max_body = cfg->rest_max_body_bytes;
  r->throttle = cfg->kinesis_throughput_limits == 1;
  rn_err_t err = r->data_dir ? 0 : RN_ENOMEM;
  if (!err && RAND_bytes(r->iter_key, sizeof(r->iter_key)) != 1) {
    snprintf(why, whylen, "no randomness for the shard-iterator secret");
    err = RN_EIO;
  }
  if (!err) err = parse_credentials(r, cfg->kinesis_credentials, why, whylen);
  if (!err) err = rn__apikeys_parse(cfg->rest_api_keys, &r->apikeys, why, whylen);
  if (!err) err = rn__kmeta_load(&r->kmeta, cfg->data_dir, why, whylen);
  if (err) {
    if (!why[0]) snprintf(why, whylen, "%s", rn_strerror(err));
    rn_http_routes_destroy(r);
    return err;
  }
  if (!loopback_addr(cfg->http_listen)) {
    if (r->ncreds == 0)
      rn__logf(RN_LOG_WARN, "kinesis",
               "http_listen %s is not loopback and kinesis_credentials is empty: the Kinesis API accepts "
               "unsigned requests from anyone who can reach it",
               cfg->http_listen);
    if (r->apikeys.n == 0)
      rn__logf(RN_LOG_WARN, "rest",
               "http_listen %s is not loopback and rest_api_keys is empty: REST ingest is open to anyone who "
               "can reach it",
               cfg->http_listen);
  }
  *out = r;
  return 0;
}

rn_err_t rn_http_routes_add_metrics(rn_http_routes_t *r, rn_http_metrics_fn fn, void *arg) {
  if (r->nsources == RN__MAX_METRICS_SOURCES) return RN_ENOMEM;
  r->sources[r->nsources].fn = fn;
  r->sources[r->nsources].arg = arg;
  r->nsources++;
  return 0;
}

void rn_http_routes_destroy(rn_http_routes_t *r) {
  if (!r) return;
  /* The tags file's writes run on the thread pool; let them land. */
  while (r->pending_jobs) uv_run(r->loop, UV_RUN_ONCE);
  rn__kmeta_free(&r->kmeta);
  for (size_t i = 0; i < r->nlimits; i++) {
    free(r->limits[i].name);
    free(r->limits[i].b);
  }
  free(r->limits);
  rn__apikeys_free(&r->apikeys);
  free(r->creds);
  free(r->creds_buf);
  free(r->data_dir);
  OPENSSL_cleanse(r->iter_key, sizeof(r->iter_key));
  free(r);
}
