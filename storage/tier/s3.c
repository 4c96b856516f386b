/*
 * s3.c — the S3 object store on libcurl: rn_s3_new.
 *
 * One thread of the store's own runs a libcurl multi handle (one handle:
 * its connection cache gives connection reuse; easy handles are pooled and
 * reused too). The owner submits an operation by queueing it under a mutex
 * and calling curl_multi_wakeup; the curl thread starts it, drives its HTTP
 * requests, and hands it back finished through the completion queue
 * (objstore_int.h), whose eventfd is rn_objstore_fd. The owner never does
 * I/O: put_file's file is opened and read (pread, CURLOPT_READFUNCTION) on
 * the curl thread.
 *
 * An operation is one or more HTTP requests, each retried on its own:
 *   PUT (put_mem, or put_file up to part_bytes)   PUT /key
 *   PUT (put_file above part_bytes)               POST ?uploads, PUT ?partNumber&uploadId per part
 *                                                 (in order), POST ?uploadId with the part list;
 *                                                 on failure DELETE ?uploadId (abort)
 *   GET                                           GET /key, Range when not the whole object
 *   HEAD                                          HEAD /key
 *   LIST                                          GET ?list-type=2&prefix, every page
 *                                                 (continuation-token)
 *   DELETE                                        DELETE /key (204 and 404 both success)
 *
 * Retries: connection errors, timeouts, HTTP 5xx (SlowDown/503 included),
 * 429 and 400 RequestTimeout are retried after exponential backoff with full
 * jitter (a delay uniform in [0, backoff_ms * 2^(n-1)], capped at 20 s), at
 * most max_retries times per request, and all of it within the operation's
 * deadline (request_timeout_ms from submission): each attempt's
 * CURLOPT_TIMEOUT_MS is what is left. Out of time: RN_ETIMEDOUT; out of
 * retries or a non-retriable answer: RN_EOBJSTORE with the status, S3's
 * error Code and Message, the operation and the key (never a credential).
 *
 * Signing is our own SigV4 (sigv4.c; why there: sigv4.h). Payloads: put_mem
 * bodies are hashed (x-amz-content-sha256 = their SHA-256), file bodies are
 * sent as UNSIGNED-PAYLOAD (hashing them would read each part twice).
 *
 * Threads: s3_t's owner fields (inflight, closing, stats) belong to the
 * owner; the op lists and the easy-handle pool to the curl thread; subq and
 * stopping are shared under mu. An op belongs to the owner until queued,
 * then to the curl thread until pushed to the completion queue.
 */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "objstore_int.h"
#include "rn_tier.h"
#include "sigv4.h"

#define S3_BACKOFF_CAP_MS 20000
#define S3_MIN_PART (5u << 20)
#define S3_ERRBODY_MAX 65536 /* what is kept of an error answer's body */
#define S3_KEY_MAX 1100

typedef enum {
  ST_SINGLE = 0, /* put, get, head, delete: one request */
  ST_LIST,       /* list pages */
  ST_MP_CREATE,  /* multipart: initiate */
  ST_MP_PART,    /* multipart: a part */
  ST_MP_COMPLETE,
  ST_MP_ABORT,   /* after a failure: abort, then report the failure */
} s3_stage_t;

typedef struct s3 s3_t;

typedef struct s3_op {
  rn__objq_node_t node; /* first: the completion queue links it */
  struct s3_op *next;   /* subq, then the curl thread's waiting list */
  struct s3_op *aprev, *anext; /* curl thread: every op begun and not finished */
  s3_t *s3;
  rn_obj_op_t op;
  bool from_file;
  char *key;            /* the user's key (or list prefix) */
  char *full;           /* prefix + key */
  const uint8_t *data;  /* put_mem: borrowed until the callback */
  char *src;            /* put_file */
  int fd;               /* put_file: opened on the curl thread; -1 */
  uint64_t off, len;
  union {
    rn_obj_cb cb;
    rn_obj_get_cb get_cb;
    rn_obj_list_cb list_cb;
  } u;
  void *arg;
  uint64_t start_ns, deadline_ns;

  /* curl thread */
  s3_stage_t stage;
  CURL *easy;
  struct curl_slist *hdrs;
  unsigned tries;       /* attempts of the current request */
  uint64_t retry_at_ns; /* waiting for a retry when non-zero */
  uint64_t retries;
  uint8_t *body;        /* what the request sends (XML), or NULL */
  size_t body_len, body_pos;
  uint64_t up_off, up_len, up_pos; /* file range the request sends */
  rn_buf_t resp;        /* the response body (GET data, XML, error) */
  long status;
  char errbuf[CURL_ERROR_SIZE];
  char etag[128];
  char content_range[128];
  int64_t last_modified_ms;
  int64_t content_length;
  char token[1024];     /* LIST: continuation token */
  char upload_id[512];
  unsigned part, nparts;
  char (*etags)[128];
  rn_err_t fail_err;    /* the failure an abort reports */
  char fail_msg[256];

  /* results */
  rn_obj_result_t r;
  uint8_t *out;
  size_t out_len;
  rn__objlist_t list;
  uint64_t bytes_up;
} s3_op_t;

struct s3 {
  rn_objstore_t base; /* first */
  /* configuration (copied) */
  bool https;
  char *host;         /* "host[:port]" of the endpoint */
  char *bucket, *region, *prefix, *ca_file;
  bool path_style;
  char *ak, *sk, *token;
  uint64_t timeout_ns;
  uint32_t max_retries, backoff_ms, max_conns;
  uint64_t part_bytes;
  rn_logger_t logger;

  CURLM *multi;
  pthread_t thr;
  bool thr_started;
  pthread_mutex_t mu; /* subq, stopping */
  bool mu_init;
  s3_op_t *subq, **subq_tail;
  bool stopping;
  rn__objq_t done;

  /* curl thread */
  s3_op_t *waiting;   /* backing off before a retry */
  s3_op_t *active;    /* begun, not finished */
  unsigned running;
  CURL *pool[64];
  unsigned npool;
  uint64_t rng;

  /* owner */
  unsigned inflight;
  bool closing;
  rn_objstore_stats_t stats;
};

static void op_finish(s3_op_t *o);

/* ---- small helpers -------------------------------------------------------------------- */

static char *xstrdup0(const char *s) { return s ? strdup(s) : NULL; }

static uint64_t rnd(s3_t *s3) {
  uint64_t x = s3->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  s3->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* snprintf that may cut (messages are bounded on purpose). */
static void set_msg(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_msg(char *dst, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, cap, fmt, ap);
  va_end(ap);
}

static void op_fail(s3_op_t *o, rn_err_t err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void op_fail(s3_op_t *o, rn_err_t err, const char *fmt, ...) {
  o->r.err = err;
  int n = snprintf(o->r.message, sizeof o->r.message, "s3 %s %.180s: ", rn_obj_op_name(o->op), o->key);
  if (n < 0 || (size_t)n >= sizeof o->r.message) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->r.message + n, sizeof o->r.message - (size_t)n, fmt, ap);
  va_end(ap);
}

/* The text of <tag>...</tag> in x[0, n) from *pos on, XML entities decoded,
 * into out (cap bytes; longer is cut). Returns whether found; *pos moves
 * past it. */
static bool xml_text(const char *x, size_t n, size_t *pos, const char *tag, const char *limit, char *out,
                     size_t cap) {
  char open[64], close[64];
  snprintf(open, sizeof open, "<%s>", tag);
  snprintf(close, sizeof close, "</%s>", tag);
  const char *end = limit ? limit : x + n;
  const char *s = memmem(x + *pos, (size_t)(end - (x + *pos)), open, strlen(open));
  if (!s) return false;
  s += strlen(open);
  const char *e = memmem(s, (size_t)(end - s), close, strlen(close));
  if (!e) return false;
  *pos = (size_t)(e + strlen(close) - x);
  size_t o = 0;
  for (const char *p = s; p < e && o + 4 < cap;) {
    if (*p != '&') {
      out[o++] = *p++;
      continue;
    }
    const char *semi = memchr(p, ';', (size_t)(e - p));
    if (!semi || semi - p > 10) {
      out[o++] = *p++;
      continue;
    }
    size_t el = (size_t)(semi - p - 1);
    const char *ent = p + 1;
    uint32_t cp = 0;
    bool ok = true;
    if (el == 3 && !memcmp(ent, "amp", 3))
      cp = '&';
    else if (el == 2 && !memcmp(ent, "lt", 2))
      cp = '<';
    else if (el == 2 && !memcmp(ent, "gt", 2))
      cp = '>';
    else if (el == 4 && !memcmp(ent, "quot", 4))
      cp = '"';
    else if (el == 4 && !memcmp(ent, "apos", 4))
      cp = '\'';
    else if (el >= 2 && ent[0] == '#') {
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      for (size_t i = hex ? 2 : 1; i < el && ok; i++) {
        int c = (unsigned char)ent[i];
        int d = isdigit(c) ? c - '0' : hex && isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
        if (d < 0 || cp > 0x10FFFF) ok = false;
        cp = cp * (hex ? 16u : 10u) + (uint32_t)d;
      }
      if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || el == (hex ? 2u : 1u)) ok = false;
    } else {
      ok = false;
    }
    if (!ok) {
      out[o++] = *p++;
      continue;
    }
    o += rn_utf8_put((uint8_t *)out + o, cp);
    p = semi + 1;
  }
  out[o] = 0;
  return true;
}

/* ---- requests (curl thread) --------------------------------------------------------------- */

static size_t on_write(char *p, size_t sz, size_t n, void *arg) {
  s3_op_t *o = arg;
  size_t len = sz * n;
  bool data = o->op == RN_OBJ_GET && o->status / 100 == 2;
  if (!data && o->resp.len + len > S3_ERRBODY_MAX && o->stage != ST_LIST) return len; /* keep the start */
  rn_buf_put(&o->resp, p, len);
  return o->resp.oom ? 0 : len;
}

static bool hdr_is(const char *p, size_t n, const char *name, const char **val, size_t *vlen) {
  size_t nl = strlen(name);
  if (n <= nl || strncasecmp(p, name, nl) || p[nl] != ':') return false;
  const char *v = p + nl + 1, *e = p + n;
  while (v < e && (*v == ' ' || *v == '\t')) v++;
  while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ')) e--;
  *val = v;
  *vlen = (size_t)(e - v);
  return true;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg) {
  s3_op_t *o = arg;
  size_t len = sz * n;
  const char *v;
  size_t vl;
  if (len > 5 && !strncmp(p, "HTTP/", 5)) { /* a new response (after 100 Continue, say) */
    o->status = 0;
    const char *sp = memchr(p, ' ', len);
    if (sp) o->status = strtol(sp + 1, NULL, 10);
    o->etag[0] = o->content_range[0] = 0;
    o->content_length = -1;
    o->last_modified_ms = 0;
  } else if (hdr_is(p, len, "etag", &v, &vl)) {
    snprintf(o->etag, sizeof o->etag, "%.*s", (int)vl, v);
  } else if (hdr_is(p, len, "content-range", &v, &vl)) {
    snprintf(o->content_range, sizeof o->content_range, "%.*s", (int)vl, v);
  } else if (hdr_is(p, len, "content-length", &v, &vl)) {
    char b[32];
    snprintf(b, sizeof b, "%.*s", (int)vl, v);
    o->content_length = strtoll(b, NULL, 10);
  } else if (hdr_is(p, len, "last-modified", &v, &vl)) {
    char b[64];
    snprintf(b, sizeof b, "%.*s", (int)vl, v);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(b, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end) o->last_modified_ms = (int64_t)timegm(&tm) * 1000;
  }
  return len;
}

static size_t on_read(char *p, size_t sz, size_t n, void *arg) {
  s3_op_t *o = arg;
  size_t want = sz * n;
  if (o->body) {
    size_t left = o->body_len - o->body_pos;
    if (want > left) want = left;
    memcpy(p, o->body + o->body_pos, want);
    o->body_pos += want;
    return want;
  }
  if (o->data) { /* put_mem */
    uint64_t left = o->up_len - o->up_pos;
    if (want > left) want = (size_t)left;
    memcpy(p, o->data + o->up_pos, want);
    o->up_pos += want;
    return want;
  }
  uint64_t left = o->up_len - o->up_pos;
  if (want > left) want = (size_t)left;
  if (!want) return 0;
  ssize_t r;
  do r = pread(o->fd, p, want, (off_t)(o->up_off + o->up_pos));
  while (r < 0 && errno == EINTR);
  if (r <= 0) return CURL_READFUNC_ABORT; /* the file shrank or failed: the request fails */
  o->up_pos += (uint64_t)r;
  return (size_t)r;
}

static int on_seek(void *arg, curl_off_t off, int origin) {
  s3_op_t *o = arg;
  if (origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
  if (o->body)
    o->body_pos = (size_t)off;
  else
    o->up_pos = (uint64_t)off;
  return CURL_SEEKFUNC_OK;
}

static CURL *easy_get(s3_t *s3) {
  CURL *e = s3->npool ? s3->pool[--s3->npool] : curl_easy_init();
  return e;
}

static void easy_put(s3_t *s3, CURL *e) {
  curl_multi_remove_handle(s3->multi, e);
  if (s3->npool < sizeof s3->pool / sizeof s3->pool[0]) {
    curl_easy_reset(e);
    s3->pool[s3->npool++] = e;
  } else {
    curl_easy_cleanup(e);
  }
}

/* Build and start the op's current request. Returns false (op failed, r
 * set) when it could not be started. */
static bool req_start(s3_op_t *o) {
  s3_t *s3 = o->s3;
  uint64_t now = rn__objstore_mono_ns();
  if (now >= o->deadline_ns) {
    op_fail(o, RN_ETIMEDOUT, "deadline of %" PRIu64 " ms passed after %u attempts", s3->timeout_ns / 1000000,
            o->r.attempts);
    return false;
  }
  const char *method = "GET";
  rn__sigv4_kv_t q[8], h[4];
  size_t nq = 0, nh = 0;
  char range[80], partno[16];
  const char *payload = RN__SIGV4_EMPTY_SHA256;
  char payload_hex[65];
  bool upload = false, post = false;
  const char *key = o->full;
  o->up_pos = 0;
  o->body_pos = 0;
  o->up_len = 0;
  switch (o->stage) {
  case ST_SINGLE:
    if (o->op == RN_OBJ_PUT) {
      method = "PUT";
      upload = true;
      o->up_off = 0;
      o->up_len = o->len;
      if (o->from_file) {
        payload = RN__SIGV4_UNSIGNED;
      } else {
        rn__sha256_hex(o->data, (size_t)o->len, payload_hex);
        payload = payload_hex;
      }
    } else if (o->op == RN_OBJ_GET) {
      if (o->off || o->len) {
        /* to the end from off: ask from off - 1, so that off == size is a
         * one-byte answer naming the size rather than a 416 that may not
         * (MinIO's does not); that byte is dropped */
        if (o->len)
          snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, o->off, o->off + o->len - 1);
        else
          snprintf(range, sizeof range, "bytes=%" PRIu64 "-", o->off - 1);
        h[nh++] = (rn__sigv4_kv_t){"range", range};
      }
    } else if (o->op == RN_OBJ_HEAD) {
      method = "HEAD";
    } else {
      method = "DELETE";
    }
    break;
  case ST_LIST:
    key = NULL;
    q[nq++] = (rn__sigv4_kv_t){"list-type", "2"};
    q[nq++] = (rn__sigv4_kv_t){"prefix", o->full};
    if (o->token[0]) q[nq++] = (rn__sigv4_kv_t){"continuation-token", o->token};
    break;
  case ST_MP_CREATE:
    method = "POST";
    post = true;
    q[nq++] = (rn__sigv4_kv_t){"uploads", ""};
    break;
  case ST_MP_PART:
    method = "PUT";
    upload = true;
    snprintf(partno, sizeof partno, "%u", o->part + 1);
    q[nq++] = (rn__sigv4_kv_t){"partNumber", partno};
    q[nq++] = (rn__sigv4_kv_t){"uploadId", o->upload_id};
    o->up_off = (uint64_t)o->part * s3->part_bytes;
    o->up_len = o->len - o->up_off < s3->part_bytes ? o->len - o->up_off : s3->part_bytes;
    payload = RN__SIGV4_UNSIGNED;
    break;
  case ST_MP_COMPLETE:
    method = "POST";
    post = true;
    q[nq++] = (rn__sigv4_kv_t){"uploadId", o->upload_id};
    rn__sha256_hex(o->body, o->body_len, payload_hex);
    payload = payload_hex;
    h[nh++] = (rn__sigv4_kv_t){"content-type", "application/xml"};
    break;
  case ST_MP_ABORT:
    method = "DELETE";
    q[nq++] = (rn__sigv4_kv_t){"uploadId", o->upload_id};
    break;
  }
  char path[S3_KEY_MAX + 300];
  if (s3->path_style)
    snprintf(path, sizeof path, "/%s%s%s", s3->bucket, key ? "/" : "", key ? key : "");
  else
    snprintf(path, sizeof path, "/%s", key ? key : "");
  char host[600];
  if (s3->path_style)
    snprintf(host, sizeof host, "%s", s3->host);
  else
    snprintf(host, sizeof host, "%s.%s", s3->bucket, s3->host);
  rn__sigv4_req_t sr = {.method = method,
                        .host = host,
                        .path = path,
                        .query = q,
                        .nquery = nq,
                        .headers = h,
                        .nheaders = nh,
                        .payload_hash = payload,
                        .region = s3->region,
                        .service = "s3",
                        .access_key = s3->ak,
                        .secret_key = s3->sk,
                        .session_token = s3->token,
                        .time_s = (int64_t)time(NULL)};
  rn__sigv4_out_t so;
  rn_err_t err = rn__sigv4_sign(&sr, &so);
  if (err) {
    rn__sigv4_out_free(&so);
    op_fail(o, err, "cannot sign the request");
    return false;
  }
  rn_buf_t url = {0};
  rn_buf_printf(&url, "%s://%s", s3->https ? "https" : "http", host);
  rn_buf_put(&url, so.path.p, so.path.len);
  if (so.query.len) {
    rn_buf_put(&url, "?", 1);
    rn_buf_put(&url, so.query.p, so.query.len);
  }
  struct curl_slist *hl = NULL;
  rn_buf_t line = {0};
#define ADDH(...)                                 \
  do {                                            \
    line.len = 0;                                 \
    rn_buf_printf(&line, __VA_ARGS__);            \
    if (!line.oom) hl = curl_slist_append(hl, line.p); \
  } while (0)
  ADDH("Host: %s", host);
  ADDH("x-amz-date: %s", so.amz_date);
  ADDH("x-amz-content-sha256: %s", payload);
  if (s3->token && s3->token[0]) ADDH("x-amz-security-token: %s", s3->token);
  for (size_t i = 0; i < nh; i++) ADDH("%s: %s", h[i].name, h[i].value);
  ADDH("Authorization: %s", so.authorization);
  hl = curl_slist_append(hl, "Expect:");
  if (!upload && !post) hl = curl_slist_append(hl, "Content-Type:");
#undef ADDH
  rn_buf_free(&line);
  memset(so.authorization, 0, sizeof so.authorization);
  rn__sigv4_out_free(&so);

  CURL *e = easy_get(s3);
  if (!e || url.oom || !hl) {
    rn_buf_free(&url);
    curl_slist_free_all(hl);
    if (e) easy_put(s3, e);
    op_fail(o, RN_ENOMEM, "cannot build the request");
    return false;
  }
  curl_easy_setopt(e, CURLOPT_URL, url.p);
  rn_buf_free(&url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, o);
  o->errbuf[0] = 0;
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, o->errbuf);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, o);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, o);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, s3->https ? "https" : "http");
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  if (s3->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, s3->ca_file);
  uint64_t left_ms = (o->deadline_ns - now) / 1000000u;
  if (left_ms < 1) left_ms = 1;
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)left_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(left_ms < 10000 ? left_ms : 10000));
  if (!strcmp(method, "HEAD")) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (upload) {
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)o->up_len);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, o);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, o);
  } else if (post) {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body ? (const char *)o->body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(o->body ? o->body_len : 0));
  } else if (strcmp(method, "GET")) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  }
  o->easy = e;
  o->hdrs = hl;
  o->status = 0;
  o->content_length = -1;
  o->resp.len = 0;
  o->resp.oom = false;
  if (o->op == RN_OBJ_GET && o->len && o->len < ((uint64_t)1 << 32)) rn_buf_reserve(&o->resp, (size_t)o->len + 1);
  o->etag[0] = o->content_range[0] = 0;
  o->tries++;
  o->r.attempts++;
  if (curl_multi_add_handle(s3->multi, e) != CURLM_OK) {
    o->easy = NULL;
    curl_slist_free_all(hl);
    o->hdrs = NULL;
    easy_put(s3, e);
    op_fail(o, RN_ENOMEM, "curl_multi_add_handle failed");
    return false;
  }
  s3->running++;
  return true;
}

/* An S3 error answer's Code and Message as "HTTP 403 SignatureDoesNotMatch: ...". */
static void describe_error(s3_op_t *o, char *out, size_t cap, char *code, size_t codecap) {
  char msg[200] = "";
  code[0] = 0;
  size_t pos = 0;
  if (o->resp.len) {
    xml_text(o->resp.p, o->resp.len, &pos, "Code", NULL, code, codecap);
    pos = 0;
    xml_text(o->resp.p, o->resp.len, &pos, "Message", NULL, msg, sizeof msg);
  }
  if (code[0])
    snprintf(out, cap, "HTTP %ld %s%s%s", o->status, code, msg[0] ? ": " : "", msg);
  else
    snprintf(out, cap, "HTTP %ld", o->status);
}

/* Whether the answer (or failure) of the finished request is worth a retry. */
static bool retriable(CURLcode cc, long status, const char *code) {
  switch (cc) {
  case CURLE_OK: break;
  /* ours or the configuration's: a retry would fail the same way */
  case CURLE_ABORTED_BY_CALLBACK:
  case CURLE_READ_ERROR: /* put_file's file shrank or failed */
  case CURLE_OUT_OF_MEMORY:
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_LOGIN_DENIED: return false;
  default: return true; /* connection refused or reset, timeouts, DNS, TLS handshakes, ... */
  }
  if (status >= 500 || status == 429) return true;
  return status == 400 && !strcmp(code, "RequestTimeout");
}

static void req_cleanup(s3_op_t *o) {
  if (o->easy) {
    easy_put(o->s3, o->easy);
    o->easy = NULL;
    o->s3->running--;
  }
  curl_slist_free_all(o->hdrs);
  o->hdrs = NULL;
}

/* Move on to the next stage (or finish). Returns whether a request runs. */
static void op_step(s3_op_t *o);

static void mp_abort(s3_op_t *o, rn_err_t err, const char *msg) {
  o->fail_err = err;
  set_msg(o->fail_msg, sizeof o->fail_msg, "%s", msg);
  o->stage = ST_MP_ABORT;
  o->tries = 0;
  /* the abort gets time of its own: the upload must not be left behind */
  uint64_t now = rn__objstore_mono_ns();
  if (o->deadline_ns < now + 5000000000ull) o->deadline_ns = now + 5000000000ull;
  free(o->body);
  o->body = NULL;
  if (!req_start(o)) {
    o->r.err = o->fail_err;
    set_msg(o->r.message, sizeof o->r.message, "%s (the multipart upload could not be aborted)", o->fail_msg);
    op_finish(o);
  }
}

static void build_complete(s3_op_t *o) {
  rn_buf_t b = {0};
  rn_buf_puts(&b, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
  for (unsigned i = 0; i < o->nparts; i++)
    rn_buf_printf(&b, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>", i + 1, o->etags[i]);
  rn_buf_puts(&b, "</CompleteMultipartUpload>");
  free(o->body);
  o->body = (uint8_t *)b.p;
  o->body_len = b.oom ? 0 : b.len;
}

/* The request of o finished with cc and o->status. */
static void req_done(s3_op_t *o, CURLcode cc, const char *curl_err) {
  s3_t *s3 = o->s3;
  req_cleanup(o);
  char code[64] = "", what[256];
  long st = o->status;
  bool ok = cc == CURLE_OK && st / 100 == 2;
  if (cc == CURLE_OK && !ok) describe_error(o, what, sizeof what, code, sizeof code);
  /* HTTP 200 with an error body: CompleteMultipartUpload can do that */
  if (ok && o->stage == ST_MP_COMPLETE && o->resp.len && memmem(o->resp.p, o->resp.len, "<Error>", 7)) {
    describe_error(o, what, sizeof what, code, sizeof code);
    ok = false;
    st = 500;
  }
  /* 404 is "no such key" (DELETE: done already) unless the bucket is what
   * is missing (a HEAD's 404 has no body to tell) */
  bool is_404 = cc == CURLE_OK && st == 404 && strcmp(code, "NoSuchBucket");
  if (!ok && !(is_404 && (o->op == RN_OBJ_DELETE || o->op == RN_OBJ_GET || o->op == RN_OBJ_HEAD)) &&
      !(o->op == RN_OBJ_GET && st == 416)) {
    if (cc != CURLE_OK) snprintf(what, sizeof what, "%s", curl_err[0] ? curl_err : curl_easy_strerror(cc));
    uint64_t now = rn__objstore_mono_ns();
    if (retriable(cc, st, code) && o->tries <= s3->max_retries) {
      uint64_t cap = (uint64_t)s3->backoff_ms << (o->tries - 1 < 20 ? o->tries - 1 : 20);
      if (cap > S3_BACKOFF_CAP_MS) cap = S3_BACKOFF_CAP_MS;
      uint64_t delay_ns = cap ? (rnd(s3) % (cap * 1000000u + 1)) : 0;
      if (now + delay_ns < o->deadline_ns) {
        rn_say(&s3->logger, RN_LVL_DEBUG, "s3 %s %s: %s; retry %u in %" PRIu64 " ms", rn_obj_op_name(o->op), o->key,
               what, o->tries, delay_ns / 1000000u);
        o->retries++;
        o->retry_at_ns = now + delay_ns;
        o->next = s3->waiting;
        s3->waiting = o;
        return;
      }
    }
    rn_err_t err = RN_EOBJSTORE;
    const char *how = "";
    if (cc == CURLE_OPERATION_TIMEDOUT || now >= o->deadline_ns) {
      err = RN_ETIMEDOUT;
      how = "deadline passed; ";
    } else if (retriable(cc, st, code)) {
      how = o->tries > s3->max_retries ? "retries exhausted; " : "no time left for a retry; ";
    }
    char msg[256];
    set_msg(msg, sizeof msg, "s3 %s %s: %s%s (%u attempts)", rn_obj_op_name(o->op), o->key, how, what,
             o->r.attempts);
    o->r.http_status = (int)st;
    if (o->stage == ST_MP_PART || o->stage == ST_MP_COMPLETE) return mp_abort(o, err, msg);
    if (o->stage == ST_MP_ABORT) {
      o->r.err = o->fail_err;
      set_msg(o->r.message, sizeof o->r.message, "%.200s (abort failed too)", o->fail_msg);
      return op_finish(o);
    }
    o->r.err = err;
    set_msg(o->r.message, sizeof o->r.message, "%s", msg);
    return op_finish(o);
  }
  o->r.http_status = (int)st;
  o->tries = 0;
  switch (o->stage) {
  case ST_SINGLE:
    if (o->op == RN_OBJ_PUT) {
      o->bytes_up = o->len;
    } else if (o->op == RN_OBJ_HEAD) {
      if (is_404) {
        op_fail(o, RN_ENOENT, "no such key");
        break;
      }
      o->r.object_size = o->content_length > 0 ? (uint64_t)o->content_length : 0;
      o->r.mtime_ms = o->last_modified_ms;
    } else if (o->op == RN_OBJ_GET) {
      uint64_t total = 0;
      const char *slash = strchr(o->content_range, '/');
      bool have_total = slash && slash[1] != '*';
      if (have_total) total = strtoull(slash + 1, NULL, 10);
      if (is_404) {
        describe_error(o, what, sizeof what, code, sizeof code);
        if (!strcmp(code, "NoSuchBucket"))
          op_fail(o, RN_EOBJSTORE, "%s", what);
        else
          op_fail(o, RN_ENOENT, "no such key");
        break;
      }
      if (st == 416) {
        /* nothing at off: fine only when off is the end and the rest was asked */
        o->r.object_size = total;
        if (!o->len && have_total && o->off == total) {
          o->out = malloc(1);
          o->out_len = 0;
          if (!o->out) op_fail(o, RN_ENOMEM, "no memory");
        } else {
          op_fail(o, RN_ECORRUPT, "range [%" PRIu64 ", +%" PRIu64 ") beyond the object%s%.0" PRIu64, o->off,
                  o->len, have_total ? "'s bytes: " : "", have_total ? total : 0);
        }
        break;
      }
      /* what the body holds: [a, a + resp.len) of an object of total bytes */
      uint64_t a = 0, b = 0;
      if (st == 200) {
        total = o->resp.len;
      } else if (sscanf(o->content_range, "bytes %" SCNu64 "-%" SCNu64, &a, &b) != 2 || !have_total || b < a ||
                 b - a + 1 != o->resp.len) {
        op_fail(o, RN_ECORRUPT, "a 206 answer of %zu bytes with Content-Range '%s'", o->resp.len, o->content_range);
        break;
      }
      o->r.object_size = total;
      if (o->off > total || (o->len && o->len > total - o->off)) {
        op_fail(o, RN_ECORRUPT, "range [%" PRIu64 ", +%" PRIu64 ") beyond the object's %" PRIu64 " bytes", o->off,
                o->len, total);
        break;
      }
      uint64_t want = o->len ? o->len : total - o->off;
      /* the asked range within what came (a server may send more than
       * asked: the whole object when it ignores Range, s3rver for bytes=0-0;
       * and a range from off was asked from off - 1) */
      if (o->off < a || o->off + want > a + o->resp.len) {
        op_fail(o, RN_ECORRUPT, "got bytes [%" PRIu64 ", +%zu) for [%" PRIu64 ", +%" PRIu64 ") (object %" PRIu64 " bytes)",
                a, o->resp.len, o->off, want, total);
        break;
      }
      if (o->off > a) memmove(o->resp.p, o->resp.p + (o->off - a), (size_t)want);
      o->resp.len = (size_t)want;
      /* hand the body over */
      if (o->resp.len) {
        o->out = (uint8_t *)o->resp.p;
        o->out_len = o->resp.len;
        o->resp = (rn_buf_t){0};
      } else {
        o->out = malloc(1);
        o->out_len = 0;
        if (!o->out) op_fail(o, RN_ENOMEM, "no memory");
      }
    }
    break;
  case ST_LIST: {
    size_t pos = 0, plen = strlen(s3->prefix);
    const char *x = o->resp.p;
    size_t n = o->resp.len;
    for (;;) {
      const char *c = x ? memmem(x + pos, n - pos, "<Contents>", 10) : NULL;
      if (!c) break;
      const char *ce = memmem(c, (size_t)(x + n - c), "</Contents>", 11);
      if (!ce) break;
      size_t p2 = (size_t)(c - x);
      char k[S3_KEY_MAX + 8], size[32] = "0", lm[64] = "";
      if (xml_text(x, n, &p2, "Key", ce, k, sizeof k)) {
        p2 = (size_t)(c - x);
        xml_text(x, n, &p2, "Size", ce, size, sizeof size);
        p2 = (size_t)(c - x);
        xml_text(x, n, &p2, "LastModified", ce, lm, sizeof lm);
        int64_t ms = 0;
        (void)rn_iso8601_parse(lm, strlen(lm), 0, &ms);
        size_t kl = strlen(k);
        if (kl >= plen && !strncmp(k, s3->prefix, plen)) {
          if (rn__objlist_add(&o->list, k + plen, kl - plen, strtoull(size, NULL, 10), ms)) {
            op_fail(o, RN_ENOMEM, "no memory for the listing");
            break;
          }
        }
      }
      pos = (size_t)(ce + 11 - x);
    }
    if (o->r.err) break;
    char trunc[16] = "";
    pos = 0;
    if (x) xml_text(x, n, &pos, "IsTruncated", NULL, trunc, sizeof trunc);
    if (!strcmp(trunc, "true")) {
      pos = 0;
      if (!xml_text(x, n, &pos, "NextContinuationToken", NULL, o->token, sizeof o->token) || !o->token[0]) {
        op_fail(o, RN_EOBJSTORE, "a truncated listing without a continuation token");
        break;
      }
      return op_step(o);
    }
    rn__objlist_sort(&o->list);
    break;
  }
  case ST_MP_CREATE: {
    size_t pos = 0;
    if (!o->resp.len || !xml_text(o->resp.p, o->resp.len, &pos, "UploadId", NULL, o->upload_id, sizeof o->upload_id) ||
        !o->upload_id[0]) {
      op_fail(o, RN_EOBJSTORE, "CreateMultipartUpload answered no UploadId");
      break;
    }
    o->stage = ST_MP_PART;
    o->part = 0;
    return op_step(o);
  }
  case ST_MP_PART:
    if (!o->etag[0]) {
      char msg[256];
      set_msg(msg, sizeof msg, "s3 put %s: part %u answered no ETag", o->key, o->part + 1);
      return mp_abort(o, RN_EOBJSTORE, msg);
    }
    snprintf(o->etags[o->part], sizeof o->etags[0], "%s", o->etag);
    o->bytes_up += o->up_len;
    if (++o->part < o->nparts) return op_step(o);
    o->stage = ST_MP_COMPLETE;
    build_complete(o);
    return op_step(o);
  case ST_MP_COMPLETE:
    break;
  case ST_MP_ABORT:
    o->r.err = o->fail_err;
    set_msg(o->r.message, sizeof o->r.message, "%s", o->fail_msg);
    break;
  }
  op_finish(o);
}

static void op_step(s3_op_t *o) {
  if (!req_start(o)) {
    if (o->stage == ST_MP_PART || o->stage == ST_MP_COMPLETE) {
      char msg[256];
      set_msg(msg, sizeof msg, "%s", o->r.message);
      o->r.err = 0;
      return mp_abort(o, RN_ETIMEDOUT, msg);
    }
    op_finish(o);
  }
}

/* First step of a newly submitted op, on the curl thread. */
static void op_begin(s3_op_t *o) {
  s3_t *s3 = o->s3;
  o->aprev = NULL;
  o->anext = s3->active;
  if (s3->active) s3->active->aprev = o;
  s3->active = o;
  if (o->op == RN_OBJ_PUT && o->from_file) {
    o->fd = open(o->src, O_RDONLY | O_CLOEXEC);
    if (o->fd < 0) {
      int e = errno;
      op_fail(o, -e, "opening %s: %s", o->src, strerror(e));
      return op_finish(o);
    }
    /* never start a PUT the file cannot fill: a body broken off midway may
     * be kept by a store that does not check Content-Length (s3rver) */
    struct stat st;
    if (fstat(o->fd, &st) || (uint64_t)st.st_size < o->len) {
      op_fail(o, RN_EIO, "%s holds %lld bytes, fewer than the %" PRIu64 " to put", o->src,
              (long long)st.st_size, o->len);
      return op_finish(o);
    }
    if (o->len > s3->part_bytes) {
      o->nparts = (unsigned)((o->len + s3->part_bytes - 1) / s3->part_bytes);
      if (o->nparts > 10000) {
        op_fail(o, RN_EINVAL, "%" PRIu64 " bytes need more than 10000 parts of %" PRIu64, o->len, s3->part_bytes);
        return op_finish(o);
      }
      o->etags = calloc(o->nparts, sizeof *o->etags);
      if (!o->etags) {
        op_fail(o, RN_ENOMEM, "no memory");
        return op_finish(o);
      }
      o->stage = ST_MP_CREATE;
    }
  }
  if (o->op == RN_OBJ_LIST) o->stage = ST_LIST;
  op_step(o);
}

/* Hand o back to the owner. Curl thread (or destroy, after it stopped). */
static void op_finish(s3_op_t *o) {
  s3_t *s3 = o->s3;
  if (o->aprev)
    o->aprev->anext = o->anext;
  else if (s3->active == o)
    s3->active = o->anext;
  if (o->anext) o->anext->aprev = o->aprev;
  o->aprev = o->anext = NULL;
  if (o->fd >= 0) {
    close(o->fd);
    o->fd = -1;
  }
  rn__objq_push(&o->s3->done, &o->node);
}

static void *curl_main(void *arg) {
  s3_t *s3 = arg;
  for (;;) {
    pthread_mutex_lock(&s3->mu);
    bool stop = s3->stopping;
    s3_op_t *sub = s3->subq;
    s3->subq = NULL;
    s3->subq_tail = &s3->subq;
    pthread_mutex_unlock(&s3->mu);
    if (stop) {
      /* put what was just taken back: destroy cancels it */
      pthread_mutex_lock(&s3->mu);
      if (sub) {
        s3_op_t *t = sub;
        while (t->next) t = t->next;
        t->next = s3->subq;
        s3->subq = sub;
      }
      pthread_mutex_unlock(&s3->mu);
      break;
    }
    while (sub) {
      s3_op_t *next = sub->next;
      sub->next = NULL;
      op_begin(sub);
      sub = next;
    }
    int still = 0;
    curl_multi_perform(s3->multi, &still);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s3->multi, &left))) {
      if (m->msg != CURLMSG_DONE) continue;
      s3_op_t *o = NULL;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&o);
      CURLcode cc = m->data.result;
      long code = 0;
      curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
      if (code) o->status = code;
      req_done(o, cc, o->errbuf);
    }
    /* retries whose backoff is over (including ones just scheduled), and
     * how long until the next one is due */
    uint64_t now = rn__objstore_mono_ns();
    int timeout_ms = 1000;
    s3_op_t **pp = &s3->waiting;
    while (*pp) {
      s3_op_t *o = *pp;
      if (o->retry_at_ns <= now) {
        *pp = o->next;
        o->next = NULL;
        o->retry_at_ns = 0;
        op_step(o);
        timeout_ms = 0; /* a request was added: drive it at once */
      } else {
        uint64_t w = (o->retry_at_ns - now + 999999u) / 1000000u;
        if (w < (uint64_t)timeout_ms) timeout_ms = (int)w;
        pp = &o->next;
      }
    }
    long ct = -1;
    curl_multi_timeout(s3->multi, &ct);
    if (ct >= 0 && ct < timeout_ms) timeout_ms = (int)ct;
    curl_multi_poll(s3->multi, NULL, 0, timeout_ms, NULL);
  }
  return NULL;
}

/* ---- the owner's side ----------------------------------------------------------------------- */

static rn_err_t s3_submit(s3_t *s3, rn_obj_op_t op, const char *key, s3_op_t **out) {
  if (s3->closing) return RN_ECANCELED;
  size_t kl = strlen(key), pl = strlen(s3->prefix);
  if (kl + pl > S3_KEY_MAX) return RN_EINVAL;
  s3_op_t *o = calloc(1, sizeof *o);
  if (!o) return RN_ENOMEM;
  o->s3 = s3;
  o->op = op;
  o->fd = -1;
  o->key = strdup(key);
  o->full = malloc(kl + pl + 1);
  if (!o->key || !o->full) {
    free(o->key);
    free(o->full);
    free(o);
    return RN_ENOMEM;
  }
  memcpy(o->full, s3->prefix, pl);
  memcpy(o->full + pl, key, kl + 1);
  o->start_ns = rn__objstore_mono_ns();
  o->deadline_ns = o->start_ns + s3->timeout_ns;
  *out = o;
  return 0;
}

static void s3_enqueue(s3_t *s3, s3_op_t *o) {
  s3->inflight++;
  pthread_mutex_lock(&s3->mu);
  o->next = NULL;
  *s3->subq_tail = o;
  s3->subq_tail = &o->next;
  pthread_mutex_unlock(&s3->mu);
  curl_multi_wakeup(s3->multi);
}

static rn_err_t s3_put_mem(rn_objstore_t *os, const char *key, const uint8_t *data, size_t len, rn_obj_cb cb,
                           void *arg) {
  s3_t *s3 = (s3_t *)os;
  s3_op_t *o;
  rn_err_t err = s3_submit(s3, RN_OBJ_PUT, key, &o);
  if (err) return err;
  o->data = data ? data : (const uint8_t *)"";
  o->len = len;
  o->u.cb = cb;
  o->arg = arg;
  s3_enqueue(s3, o);
  return 0;
}

static rn_err_t s3_put_file(rn_objstore_t *os, const char *key, const char *path, uint64_t len, rn_obj_cb cb,
                            void *arg) {
  s3_t *s3 = (s3_t *)os;
  s3_op_t *o;
  rn_err_t err = s3_submit(s3, RN_OBJ_PUT, key, &o);
  if (err) return err;
  if (!(o->src = strdup(path))) {
    free(o->key);
    free(o->full);
    free(o);
    return RN_ENOMEM;
  }
  o->from_file = true;
  o->len = len;
  o->u.cb = cb;
  o->arg = arg;
  s3_enqueue(s3, o);
  return 0;
}

static rn_err_t s3_get(rn_objstore_t *os, const char *key, uint64_t off, uint64_t len, rn_obj_get_cb cb,
                       void *arg) {
  s3_t *s3 = (s3_t *)os;
  if (len > UINT64_MAX - off) return RN_EINVAL;
  s3_op_t *o;
  rn_err_t err = s3_submit(s3, RN_OBJ_GET, key, &o);
  if (err) return err;
  o->off = off;
  o->len = len;
  o->u.get_cb = cb;
  o->arg = arg;
  s3_enqueue(s3, o);
  return 0;
}

static rn_err_t s3_simple(rn_objstore_t *os, rn_obj_op_t op, const char *key, rn_obj_cb cb, void *arg) {
  s3_t *s3 = (s3_t *)os;
  s3_op_t *o;
  rn_err_t err = s3_submit(s3, op, key, &o);
  if (err) return err;
  o->u.cb = cb;
  o->arg = arg;
  s3_enqueue(s3, o);
  return 0;
}

static rn_err_t s3_head(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg) {
  return s3_simple(os, RN_OBJ_HEAD, key, cb, arg);
}
static rn_err_t s3_del(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg) {
  return s3_simple(os, RN_OBJ_DELETE, key, cb, arg);
}
static rn_err_t s3_list(rn_objstore_t *os, const char *prefix, rn_obj_list_cb cb, void *arg) {
  s3_t *s3 = (s3_t *)os;
  s3_op_t *o;
  rn_err_t err = s3_submit(s3, RN_OBJ_LIST, prefix, &o);
  if (err) return err;
  o->u.list_cb = cb;
  o->arg = arg;
  s3_enqueue(s3, o);
  return 0;
}

static void op_free(s3_op_t *o) {
  if (o->fd >= 0) close(o->fd);
  free(o->key);
  free(o->full);
  free(o->src);
  free(o->body);
  free(o->etags);
  free(o->out);
  rn_buf_free(&o->resp);
  rn__objlist_free(&o->list);
  free(o);
}

/* Owner thread: call o back and free it. */
static void op_deliver(s3_t *s3, s3_op_t *o, bool cancel) {
  if (cancel && o->r.err != RN_ECANCELED) {
    free(o->out);
    o->out = NULL;
    o->out_len = 0;
    rn__objlist_free(&o->list);
    o->r.err = RN_ECANCELED;
    set_msg(o->r.message, sizeof o->r.message, "s3 %s %s: the store is closing", rn_obj_op_name(o->op), o->key);
  }
  rn_err_t err = o->r.err;
  s3->stats.requests[o->op] += o->r.attempts;
  s3->stats.retries[o->op] += o->retries;
  if (err) s3->stats.errors[o->op]++;
  if (!err) {
    s3->stats.bytes_up += o->bytes_up;
    s3->stats.bytes_down += o->out_len;
  }
  uint64_t now = rn__objstore_mono_ns();
  rn_hist_record(&s3->stats.seconds[o->op], rn_hist_latency_bounds, RN_HIST_BUCKETS,
                 (double)(now - o->start_ns) / 1e9);
  s3->inflight--;
  switch (o->op) {
  case RN_OBJ_GET:
    o->u.get_cb(o->arg, &o->r, err ? NULL : o->out, err ? 0 : o->out_len);
    if (!err) o->out = NULL;
    break;
  case RN_OBJ_LIST: o->u.list_cb(o->arg, &o->r, o->list.e, err ? 0 : o->list.n); break;
  default: o->u.cb(o->arg, &o->r); break;
  }
  op_free(o);
}

static void op_deliver_node(void *owner, rn__objq_node_t *n, bool closing) {
  op_deliver(owner, (s3_op_t *)n, closing);
}

static int s3_poll(rn_objstore_t *os) {
  s3_t *s3 = (s3_t *)os;
  return rn__objq_deliver(&s3->done, op_deliver_node, s3, false);
}

static int s3_fd(const rn_objstore_t *os) { return ((const s3_t *)os)->done.efd; }
static unsigned s3_inflight(const rn_objstore_t *os) { return ((const s3_t *)os)->inflight; }
static void s3_stats(const rn_objstore_t *os, rn_objstore_stats_t *out) { *out = ((const s3_t *)os)->stats; }

/* After the curl thread stopped: abort the multipart uploads it left
 * started (blocking, a short deadline each), so none is left behind. */
static void abort_leftover(s3_t *s3, s3_op_t *o) {
  if (!o->upload_id[0] || o->stage == ST_MP_ABORT) return;
  o->stage = ST_MP_ABORT;
  o->tries = 0;
  o->deadline_ns = rn__objstore_mono_ns() + 2000000000ull;
  free(o->body);
  o->body = NULL;
  if (!req_start(o)) return;
  curl_multi_remove_handle(s3->multi, o->easy);
  curl_easy_perform(o->easy);
  req_cleanup(o);
}

static void s3_free_config(s3_t *s3) {
  free(s3->host);
  free(s3->bucket);
  free(s3->region);
  free(s3->prefix);
  free(s3->ca_file);
  if (s3->sk) OPENSSL_cleanse(s3->sk, strlen(s3->sk));
  if (s3->token) OPENSSL_cleanse(s3->token, strlen(s3->token));
  free(s3->ak);
  free(s3->sk);
  free(s3->token);
  free(s3);
}

static void s3_destroy(rn_objstore_t *os) {
  s3_t *s3 = (s3_t *)os;
  s3->closing = true;
  if (s3->thr_started) {
    pthread_mutex_lock(&s3->mu);
    s3->stopping = true;
    pthread_mutex_unlock(&s3->mu);
    curl_multi_wakeup(s3->multi);
    pthread_join(s3->thr, NULL);
  }
  /* Nothing runs now. Every op the curl thread had begun: its transfer
   * removed, a multipart upload it started aborted; then it joins the
   * completion queue with what was submitted and never begun. */
  while (s3->active) {
    s3_op_t *o = s3->active;
    req_cleanup(o);
    abort_leftover(s3, o);
    op_finish(o); /* unlinks it from active */
  }
  s3->waiting = NULL;
  for (s3_op_t *o = s3->subq, *next; o; o = next) { /* only ever non-empty when done is set up */
    next = o->next;
    rn__objq_push(&s3->done, &o->node);
  }
  s3->subq = NULL;
  if (s3->done.efd >= 0) (void)rn__objq_deliver(&s3->done, op_deliver_node, s3, true);
  for (unsigned i = 0; i < s3->npool; i++) curl_easy_cleanup(s3->pool[i]);
  if (s3->multi) curl_multi_cleanup(s3->multi);
  rn__objq_fini(&s3->done);
  if (s3->mu_init) pthread_mutex_destroy(&s3->mu);
  s3_free_config(s3);
}

static const rn_objstore_ops_t s3_ops = {
    .name = "s3",
    .put_mem = s3_put_mem,
    .put_file = s3_put_file,
    .get = s3_get,
    .head = s3_head,
    .list = s3_list,
    .del = s3_del,
    .fd = s3_fd,
    .poll = s3_poll,
    .inflight = s3_inflight,
    .stats = s3_stats,
    .destroy = s3_destroy,
};

/* ---- creation ------------------------------------------------------------------------------ */

void rn_s3_opts_default(rn_s3_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->region = "us-east-1";
  o->prefix = "";
  o->path_style = false;
  o->request_timeout_ms = 30000;
  o->max_retries = 5;
  o->backoff_ms = 100;
  o->part_bytes = 16u << 20;
  o->max_connections = 16;
}

/* Read aws_access_key_id, aws_secret_access_key and aws_session_token of
 * [profile] from an AWS credentials file. Blocking (rn_s3_new, at start).
 * Returns 0, RN_ENOENT (no file, or no such profile) or RN_EINVAL. */
static rn_err_t read_credentials(const char *path, const char *profile, char **ak, char **sk, char **tok) {
  rn_assert_may_block("s3: reading the credentials file");
  FILE *fp = fopen(path, "r");
  if (!fp) return RN_ENOENT;
  char line[2048];
  bool in = false, found = false;
  while (fgets(line, sizeof line, fp)) {
    char *p = line;
    while (isspace((unsigned char)*p)) p++;
    char *e = p + strlen(p);
    while (e > p && isspace((unsigned char)e[-1])) *--e = 0;
    if (!*p || *p == '#' || *p == ';') continue;
    if (*p == '[') {
      char *close = strchr(p, ']');
      if (!close) continue;
      *close = 0;
      char *name = p + 1;
      while (isspace((unsigned char)*name)) name++;
      char *ne = name + strlen(name);
      while (ne > name && isspace((unsigned char)ne[-1])) *--ne = 0;
      in = !strcmp(name, profile);
      found |= in;
      continue;
    }
    if (!in) continue;
    char *eq = strchr(p, '=');
    if (!eq) continue;
    char *ke = eq;
    while (ke > p && isspace((unsigned char)ke[-1])) ke--;
    *ke = 0;
    char *v = eq + 1;
    while (isspace((unsigned char)*v)) v++;
    char **dst = !strcmp(p, "aws_access_key_id") ? ak : !strcmp(p, "aws_secret_access_key") ? sk
               : !strcmp(p, "aws_session_token")   ? tok
                                                   : NULL;
    if (dst) {
      free(*dst);
      *dst = strdup(v);
    }
  }
  OPENSSL_cleanse(line, sizeof line);
  fclose(fp);
  return found ? 0 : RN_ENOENT;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ok;
static void curl_init_once(void) { curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }

#define WHY(...) (why && whylen ? (void)snprintf(why, whylen, __VA_ARGS__) : (void)0)

rn_err_t rn_s3_new(const rn_s3_opts_t *o, rn_objstore_t **out, char *why, size_t whylen) {
  if (why && whylen) why[0] = 0;
  rn_s3_opts_t d;
  rn_s3_opts_default(&d);
  if (!o || !out) return RN_EINVAL;
  if (!o->bucket || !o->bucket[0]) {
    WHY("s3: no bucket");
    return RN_EINVAL;
  }
  s3_t *s3 = calloc(1, sizeof *s3);
  if (!s3) return RN_ENOMEM;
  s3->base.ops = &s3_ops;
  s3->done.efd = -1;
  const char *region = o->region && o->region[0] ? o->region : d.region;
  char defep[300];
  const char *ep = o->endpoint;
  if (!ep || !ep[0]) {
    snprintf(defep, sizeof defep, "https://s3.%s.amazonaws.com", region);
    ep = defep;
  }
  const char *hp;
  if (!strncmp(ep, "https://", 8)) {
    s3->https = true;
    hp = ep + 8;
  } else if (!strncmp(ep, "http://", 7)) {
    hp = ep + 7;
  } else {
    WHY("s3: endpoint %s: not http:// or https://", ep);
    s3_free_config(s3);
    return RN_EINVAL;
  }
  size_t hl = strcspn(hp, "/?#");
  if (!hl || hp[hl + (hp[hl] == '/')] || strchr(hp, '@')) {
    WHY("s3: endpoint %s: only scheme://host[:port] is accepted", ep);
    s3_free_config(s3);
    return RN_EINVAL;
  }
  s3->host = strndup(hp, hl);
  s3->bucket = strdup(o->bucket);
  s3->region = strdup(region);
  const char *prefix = o->prefix ? o->prefix : "";
  if (prefix[0] == '/') {
    WHY("s3: prefix %s: no leading '/'", prefix);
    s3_free_config(s3);
    return RN_EINVAL;
  }
  s3->prefix = strdup(prefix);
  s3->ca_file = xstrdup0(o->ca_file);
  s3->path_style = o->path_style;
  if (!s3->host || !s3->bucket || !s3->region || !s3->prefix || (o->ca_file && !s3->ca_file)) {
    s3_free_config(s3);
    return RN_ENOMEM;
  }
  /* credentials: the options, else the environment, else the file */
  const char *src = "options";
  if (o->access_key && o->secret_key) {
    s3->ak = strdup(o->access_key);
    s3->sk = strdup(o->secret_key);
    s3->token = xstrdup0(o->session_token);
  } else if (getenv("AWS_ACCESS_KEY_ID") && getenv("AWS_SECRET_ACCESS_KEY")) {
    src = "environment";
    s3->ak = strdup(getenv("AWS_ACCESS_KEY_ID"));
    s3->sk = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
    s3->token = xstrdup0(getenv("AWS_SESSION_TOKEN"));
  } else {
    src = "credentials file";
    char def[PATH_MAX];
    const char *file = o->credentials_file ? o->credentials_file : getenv("AWS_SHARED_CREDENTIALS_FILE");
    if (!file && getenv("HOME")) {
      snprintf(def, sizeof def, "%s/.aws/credentials", getenv("HOME"));
      file = def;
    }
    const char *profile = o->profile ? o->profile : getenv("AWS_PROFILE") ? getenv("AWS_PROFILE") : "default";
    rn_err_t e = file ? read_credentials(file, profile, &s3->ak, &s3->sk, &s3->token) : RN_ENOENT;
    if (e || !s3->ak || !s3->sk) {
      WHY("s3: no credentials: none in the options, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unset, and %s%s has no "
          "profile [%s] with aws_access_key_id and aws_secret_access_key",
          file ? file : "no credentials file", "", profile);
      s3_free_config(s3);
      return RN_EINVAL;
    }
  }
  if (!s3->ak || !s3->sk || !s3->ak[0] || !s3->sk[0]) {
    WHY("s3: empty credentials from the %s", src);
    s3_free_config(s3);
    return RN_EINVAL;
  }
  s3->timeout_ns = (uint64_t)(o->request_timeout_ms ? o->request_timeout_ms : d.request_timeout_ms) * 1000000u;
  s3->max_retries = o->max_retries;
  s3->backoff_ms = o->backoff_ms ? o->backoff_ms : d.backoff_ms;
  s3->part_bytes = o->part_bytes ? o->part_bytes : d.part_bytes;
  if (s3->part_bytes < S3_MIN_PART) {
    WHY("s3: part_bytes %" PRIu64 " below S3's minimum of 5 MiB", s3->part_bytes);
    s3_free_config(s3);
    return RN_EINVAL;
  }
  s3->max_conns = o->max_connections ? o->max_connections : d.max_connections;
  s3->logger = o->logger;
  s3->rng = rn__objstore_mono_ns() | 1;
  pthread_once(&curl_once, curl_init_once);
  if (!curl_ok) {
    WHY("s3: curl_global_init failed");
    s3_free_config(s3);
    return RN_ENOMEM;
  }
  pthread_mutex_init(&s3->mu, NULL);
  s3->mu_init = true;
  s3->subq_tail = &s3->subq;
  rn_err_t err = rn__objq_init(&s3->done);
  s3->multi = err ? NULL : curl_multi_init();
  if (err || !s3->multi) {
    WHY("s3: cannot set up curl's multi handle or the eventfd");
    s3->thr_started = false;
    s3_destroy(&s3->base);
    return err ? err : RN_ENOMEM;
  }
  curl_multi_setopt(s3->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)s3->max_conns);
  curl_multi_setopt(s3->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)s3->max_conns);
  if (pthread_create(&s3->thr, NULL, curl_main, s3)) {
    WHY("s3: cannot start its thread");
    s3_destroy(&s3->base);
    return RN_ENOMEM;
  }
  s3->thr_started = true;
  *out = &s3->base;
  return 0;
}
