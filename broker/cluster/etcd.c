/*
 * etcd.c — the etcd v3 client (etcd.h) on libcurl, one thread of its own.
 *
 * Two threads share this client. The loop thread builds request bodies
 * (etcd_json.c), queues requests and watch cancels on subq / cancelq and
 * wakes the curl thread (curl_multi_wakeup); the curl thread runs the
 * multi handle, decodes answers and watch lines, and queues what the loop
 * must see on doneq, then wakes the loop (uv_async_send), whose async
 * callback runs the callbacks. subq, cancelq, doneq, stopping and each
 * watch's ended / cancel_req are shared under mu; everything else of a
 * request belongs to whoever holds it (loop until queued on subq, curl
 * thread until queued on doneq, loop again after).
 *
 * A watch lives on both threads: the loop keeps it on e->watches until it
 * is released; the curl thread keeps it on its own list while it owns a
 * connection or a reconnect timer for it. The curl thread gives a watch up
 * exactly once, under mu, by queueing an END item (ended = true) after
 * which it never touches it: its final error, or the answer to a cancel
 * (err 0, no callback). The loop frees the watch when it takes that item,
 * so no queued item ever points to freed memory. Events are deduplicated
 * on the curl thread (next_rev: the first revision not yet queued), so a
 * reconnect that replays a revision delivers nothing twice.
 *
 * Endpoints: the curl thread owns cur_ep (where the next request starts).
 * Every attempt is a fresh easy handle; connections are reused through the
 * multi handle's cache.
 */
#include "etcd.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "etcd_json.h"

#define EP_MAX 16
#define WATCH_BACKOFF_MIN_MS 100
#define WATCH_BACKOFF_MAX_MS 2000
#define FAILS_MAX 900

typedef struct req req_t;
typedef struct witem witem_t;

/* A unary request. */
struct req {
  req_t *next;
  rn_etcd_t *e;
  rn__etcd_kind_t kind;
  rn_buf_t body;
  rn_etcd_cb cb;
  void *arg;
  uint64_t deadline_ns;
  bool done; /* a (decoded) result is in a: deliver it */
  /* curl thread */
  CURL *easy;
  unsigned ep, ntried;
  rn_buf_t resp;
  bool toolarge;
  char errbuf[CURL_ERROR_SIZE];
  char fails[FAILS_MAX]; /* "ep: error; ..." of the endpoints that failed to connect */
  /* result */
  rn__etcd_answer_t a;
};

/* What the curl thread hands a watch's owner. */
typedef enum { WI_EVENTS, WI_PROGRESS, WI_END } witem_kind_t;

struct witem {
  witem_t *next;
  rn_etcd_watch_t *w;
  witem_kind_t kind;
  rn_err_t err; /* WI_END: 0 = the answer to a cancel (no callback) */
  int64_t revision;
  rn__etcd_wmsg_t m; /* WI_EVENTS */
};

/* One entry of doneq: a request or a watch item. */
typedef struct done {
  struct done *next;
  req_t *req;
  witem_t *wi;
} done_t;

struct rn_etcd_watch {
  rn_etcd_t *e;
  rn_etcd_watch_t *lnext; /* loop: e->watches */
  uint8_t *prefix;
  size_t plen;
  rn_etcd_watch_cb cb;
  void *arg;
  int64_t start_revision;
  /* loop */
  bool cancelled, finished;
  /* under mu */
  bool ended, cancel_req, submitted;
  rn_etcd_watch_t *qnext; /* wsubq (the curl thread reads it after taking the list) */
  rn_etcd_watch_t *cqnext; /* cancelq: a separate link, so a cancel never writes a link the
                              curl thread may be reading outside mu */
  /* curl thread */
  rn_etcd_watch_t *cnext; /* the curl thread's list */
  CURL *easy;
  rn_buf_t body, line;
  int64_t next_rev;  /* first revision not yet delivered (0: from now, not yet known) */
  int64_t last_rev;  /* the last revision delivered */
  bool created;
  unsigned ep;
  unsigned backoff_ms;
  uint64_t retry_at_ns;    /* reconnect then (0: connected or connecting) */
  uint64_t created_by_ns;  /* no "created" by then: reconnect */
  rn_err_t fatal;          /* set by the write callback: end the watch with it */
  int64_t fatal_rev;
  char errbuf[CURL_ERROR_SIZE];
};

struct rn_etcd {
  uv_loop_t *loop;
  uv_async_t async;
  char *eps[EP_MAX];
  unsigned neps;
  uint64_t timeout_ns, connect_timeout_ms;
  rn_logger_t logger;

  CURLM *multi;
  pthread_t thr;
  bool thr_started;
  pthread_mutex_t mu;
  req_t *subq, **subq_tail;
  rn_etcd_watch_t *wsubq, *cancelq;
  done_t *doneq, **doneq_tail;
  bool stopping;

  /* curl thread */
  unsigned cur_ep;
  req_t *active; /* linked through next */
  rn_etcd_watch_t *cwatches;
  uint64_t rng;

  /* loop */
  bool closing;
  rn_etcd_watch_t *watches;
};

/* ---- helpers ------------------------------------------------------------------------------ */

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_msg(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_msg(char *dst, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, cap, fmt, ap);
  va_end(ap);
}

/* Fail r's answer with err and a message (any thread that holds r). */
static void req_fail(req_t *r, rn_err_t err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void req_fail(req_t *r, rn_err_t err, const char *fmt, ...) {
  rn__etcd_answer_free(&r->a);
  memset(&r->a.r, 0, sizeof r->a.r);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->a.msg, sizeof r->a.msg, fmt, ap);
  va_end(ap);
  r->a.r.err = err;
  r->a.r.msg = r->a.msg;
  r->done = true;
}

static void req_free(req_t *r) {
  rn_buf_free(&r->body);
  rn_buf_free(&r->resp);
  rn__etcd_answer_free(&r->a);
  free(r);
}

static uint64_t rnd(rn_etcd_t *e) {
  uint64_t x = e->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  e->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* Queue d on doneq and wake the loop. Any thread. */
static void push_done(rn_etcd_t *e, req_t *req, witem_t *wi) {
  done_t *d = calloc(1, sizeof *d);
  if (!d) abort(); /* a dozen bytes: nothing sensible is left to do */
  d->req = req;
  d->wi = wi;
  pthread_mutex_lock(&e->mu);
  *e->doneq_tail = d;
  e->doneq_tail = &d->next;
  pthread_mutex_unlock(&e->mu);
  uv_async_send(&e->async);
}

/* ---- the curl thread: unary requests -------------------------------------------------------- */

static size_t on_req_write(char *p, size_t sz, size_t n, void *ud) {
  req_t *r = ud;
  size_t len = sz * n;
  if (r->resp.len + len > RN__ETCD_ANSWER_MAX) {
    r->toolarge = true;
    return 0;
  }
  rn_buf_put(&r->resp, p, len);
  return r->resp.oom ? 0 : len;
}

static void common_opts(rn_etcd_t *e, CURL *c, const char *url, struct curl_slist *hdrs, char *errbuf) {
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 10L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 5L);
  (void)e;
}

/* The one header every request sends (curl only reads it). */
static char ct_hdr[] = "Content-Type: application/json";
static struct curl_slist ct_list = {ct_hdr, NULL};
static struct curl_slist *json_hdrs(void) { return &ct_list; }

static void req_start(rn_etcd_t *e, req_t *r);

static void req_finish(rn_etcd_t *e, req_t *r) {
  for (req_t **pp = &e->active; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  r->next = NULL;
  if (r->easy) {
    curl_multi_remove_handle(e->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
  }
  push_done(e, r, NULL);
}

/* Try the request on its next endpoint (r is not on active). */
static void req_start(rn_etcd_t *e, req_t *r) {
  uint64_t now = mono_ns();
  if (now >= r->deadline_ns) {
    req_fail(r, RN_ETIMEDOUT, "etcd %s: no answer within %" PRIu64 " ms", rn__etcd_kind_name(r->kind),
             e->timeout_ns / 1000000u);
    push_done(e, r, NULL);
    return;
  }
  long left_ms = (long)((r->deadline_ns - now + 999999u) / 1000000u);
  char url[600];
  snprintf(url, sizeof url, "%s%s", e->eps[r->ep], rn__etcd_kind_path(r->kind));
  r->resp.len = 0;
  r->toolarge = false;
  r->errbuf[0] = 0;
  r->easy = curl_easy_init();
  if (!r->easy) {
    req_fail(r, RN_ENOMEM, "etcd %s: out of memory for a connection", rn__etcd_kind_name(r->kind));
    push_done(e, r, NULL);
    return;
  }
  common_opts(e, r->easy, url, json_hdrs(), r->errbuf);
  curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
  curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
  curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body.p);
  curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.len);
  curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_req_write);
  curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, left_ms);
  long cto = (long)e->connect_timeout_ms < left_ms ? (long)e->connect_timeout_ms : left_ms;
  curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, cto);
  r->ntried++;
  r->next = e->active;
  e->active = r;
  if (curl_multi_add_handle(e->multi, r->easy) != CURLM_OK) {
    req_fail(r, RN_ENOMEM, "etcd %s: curl_multi_add_handle failed", rn__etcd_kind_name(r->kind));
    req_finish(e, r);
  }
}

static bool is_read(rn__etcd_kind_t k) { return k == RN__ETCD_RANGE || k == RN__ETCD_TTL || k == RN__ETCD_KEEPALIVE; }

static void add_fail(req_t *r, const char *ep, const char *what) {
  size_t n = strlen(r->fails);
  if (n + 4 < sizeof r->fails)
    snprintf(r->fails + n, sizeof r->fails - n, "%s%s: %s", n ? "; " : "", ep, what);
}

/* Try the next endpoint, or fail with what the attempts said. */
static void req_failover(rn_etcd_t *e, req_t *r) {
  if (r->ntried < e->neps && mono_ns() < r->deadline_ns) {
    r->ep = (r->ep + 1) % e->neps;
    req_start(e, r);
    return;
  }
  if (mono_ns() >= r->deadline_ns && r->ntried < e->neps)
    req_fail(r, RN_ETIMEDOUT, "etcd %s: no answer within %" PRIu64 " ms (%s)", rn__etcd_kind_name(r->kind),
             e->timeout_ns / 1000000u, r->fails);
  else
    req_fail(r, RN_ECONTROLPLANE, "etcd unreachable (%s): %s", rn__etcd_kind_name(r->kind), r->fails);
  push_done(e, r, NULL);
}

/* A transfer of r ended with cc. Curl thread. */
static void req_done(rn_etcd_t *e, req_t *r, CURLcode cc) {
  const char *ep = e->eps[r->ep];
  const char *kn = rn__etcd_kind_name(r->kind);
  long status = 0;
  curl_off_t connect_us = 0;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(r->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
  char cerr[CURL_ERROR_SIZE + 64];
  snprintf(cerr, sizeof cerr, "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc));
  for (req_t **pp = &e->active; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  r->next = NULL;
  curl_multi_remove_handle(e->multi, r->easy);
  curl_easy_cleanup(r->easy);
  r->easy = NULL;

  if (cc == CURLE_OK) {
    rn__etcd_decode(r->kind, status, r->resp.p, r->resp.len, &r->a);
    r->done = true;
    if (status >= 500) {
      char m[sizeof r->a.msg];
      set_msg(m, sizeof m, "etcd %s at %.150s: HTTP %ld: %.300s", kn, ep, status, r->a.msg);
      rn__etcd_answer_free(&r->a);
      req_fail(r, RN_ECONTROLPLANE, "%s", m);
      e->cur_ep = (r->ep + 1) % e->neps;
    } else {
      e->cur_ep = r->ep;
    }
    push_done(e, r, NULL);
    return;
  }
  if (r->toolarge) {
    req_fail(r, RN_ETOOLARGE, "etcd %s at %s: an answer of more than %u bytes", kn, ep, RN__ETCD_ANSWER_MAX);
    push_done(e, r, NULL);
    return;
  }
  if (r->resp.oom) {
    req_fail(r, RN_ENOMEM, "etcd %s at %s: out of memory for the answer", kn, ep);
    push_done(e, r, NULL);
    return;
  }
  /* A timeout before the request's deadline is the connect timeout (a
   * reused connection reports no connect time, so the deadline decides). */
  bool deadline_hit = mono_ns() + 2000000u >= r->deadline_ns;
  bool connected = connect_us > 0 || deadline_hit;
  if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
      (cc == CURLE_OPERATION_TIMEDOUT && !connected)) {
    add_fail(r, ep, cerr);
    req_failover(e, r);
    return;
  }
  if (cc == CURLE_OPERATION_TIMEDOUT) {
    e->cur_ep = (r->ep + 1) % e->neps;
    req_fail(r, RN_ETIMEDOUT, "etcd %s at %s: no answer within %" PRIu64 " ms", kn, ep, e->timeout_ns / 1000000u);
    push_done(e, r, NULL);
    return;
  }
  /* the connection broke after the request was (perhaps) sent */
  if (is_read(r->kind)) {
    add_fail(r, ep, cerr);
    req_failover(e, r);
    return;
  }
  e->cur_ep = (r->ep + 1) % e->neps;
  req_fail(r, RN_ECONTROLPLANE, "etcd %s at %s: the connection failed after the request was sent, its outcome is unknown: %s",
           kn, ep, cerr);
  push_done(e, r, NULL);
}

/* ---- the curl thread: watches -------------------------------------------------------------- */

static void witem_push(rn_etcd_t *e, rn_etcd_watch_t *w, witem_kind_t kind, rn_err_t err, int64_t rev,
                       rn__etcd_wmsg_t *m) {
  witem_t *wi = calloc(1, sizeof *wi);
  if (!wi) abort();
  wi->w = w;
  wi->kind = kind;
  wi->err = err;
  wi->revision = rev;
  if (m) {
    wi->m = *m;
    memset(m, 0, sizeof *m);
  }
  push_done(e, NULL, wi);
}

static void watch_drop_conn(rn_etcd_t *e, rn_etcd_watch_t *w) {
  if (w->easy) {
    curl_multi_remove_handle(e->multi, w->easy);
    curl_easy_cleanup(w->easy);
    w->easy = NULL;
  }
  rn_buf_free(&w->line);
  rn_buf_free(&w->body);
}

static void watch_unlist(rn_etcd_t *e, rn_etcd_watch_t *w) {
  for (rn_etcd_watch_t **pp = &e->cwatches; *pp; pp = &(*pp)->cnext)
    if (*pp == w) {
      *pp = w->cnext;
      break;
    }
  w->cnext = NULL;
}

/* The curl thread gives w up with its final error (unless a cancel got
 * there first: then the cancel's processing answers). */
static void watch_end(rn_etcd_t *e, rn_etcd_watch_t *w, rn_err_t err, int64_t rev) {
  watch_drop_conn(e, w);
  watch_unlist(e, w);
  pthread_mutex_lock(&e->mu);
  bool cancel = w->cancel_req;
  if (!cancel) w->ended = true;
  pthread_mutex_unlock(&e->mu);
  if (!cancel) witem_push(e, w, WI_END, err, rev, NULL);
}

/* Handle one line of w's stream. Returns false to stop the transfer
 * (w->fatal set when the watch must end; else it reconnects). */
static bool watch_line(rn_etcd_t *e, rn_etcd_watch_t *w, const char *line, size_t len) {
  while (len && (line[len - 1] == '\r' || line[len - 1] == ' ')) len--;
  if (!len) return true;
  rn__etcd_wmsg_t m;
  rn_err_t err = rn__etcd_decode_watch(line, len, &m);
  if (err) {
    rn_say(&e->logger, RN_LVL_WARN, "etcd watch: %s", m.msg);
    w->fatal = err;
    w->fatal_rev = w->last_rev;
    rn__etcd_wmsg_free(&m);
    return false;
  }
  bool go_on = true;
  switch (m.kind) {
  case RN__ETCD_W_CREATED:
    w->created = true;
    w->backoff_ms = WATCH_BACKOFF_MIN_MS;
    if (w->next_rev <= 0) {
      w->next_rev = m.revision + 1;
      w->last_rev = m.revision;
      witem_push(e, w, WI_PROGRESS, 0, m.revision, NULL);
    }
    break;
  case RN__ETCD_W_EVENTS: {
    size_t k = 0;
    for (size_t i = 0; i < m.nev; i++)
      if (m.ev[i].kv.mod_revision >= w->next_rev) m.ev[k++] = m.ev[i];
    m.nev = k;
    if (k) {
      int64_t rev = m.ev[k - 1].kv.mod_revision;
      w->last_rev = rev;
      w->next_rev = rev + 1;
      witem_push(e, w, WI_EVENTS, 0, rev, &m);
    }
    break;
  }
  case RN__ETCD_W_PROGRESS:
    if (w->created && m.revision >= w->next_rev) {
      w->next_rev = m.revision + 1;
      w->last_rev = m.revision;
      witem_push(e, w, WI_PROGRESS, 0, m.revision, NULL);
    }
    break;
  case RN__ETCD_W_CANCELED:
    rn_say(&e->logger, RN_LVL_WARN, "etcd watch ended by etcd: %s", m.msg);
    if (m.compact_revision > 0) {
      w->fatal = RN_EOFFSET;
      w->fatal_rev = m.compact_revision;
    } else {
      w->fatal = RN_ECONTROLPLANE;
      w->fatal_rev = w->last_rev;
    }
    go_on = false;
    break;
  case RN__ETCD_W_ERROR:
    rn_say(&e->logger, RN_LVL_INFO, "etcd watch stream failed, reconnecting: %s", m.msg);
    go_on = false;
    break;
  }
  rn__etcd_wmsg_free(&m);
  return go_on;
}

static size_t on_watch_write(char *p, size_t sz, size_t n, void *ud) {
  rn_etcd_watch_t *w = ud;
  rn_etcd_t *e = w->e;
  size_t len = sz * n;
  for (size_t i = 0; i < len;) {
    const char *nl = memchr(p + i, '\n', len - i);
    size_t take = nl ? (size_t)(nl - (p + i)) : len - i;
    if (w->line.len + take > RN__ETCD_ANSWER_MAX) {
      w->fatal = RN_ECONTROLPLANE;
      w->fatal_rev = w->last_rev;
      rn_say(&e->logger, RN_LVL_WARN, "etcd watch: a message of more than %u bytes", RN__ETCD_ANSWER_MAX);
      return 0;
    }
    rn_buf_put(&w->line, p + i, take);
    if (w->line.oom) {
      w->fatal = RN_ENOMEM;
      w->fatal_rev = w->last_rev;
      return 0;
    }
    i += take;
    if (nl) {
      i++;
      bool ok = watch_line(e, w, w->line.p ? w->line.p : "", w->line.len);
      w->line.len = 0;
      if (!ok) return 0;
    }
  }
  return len;
}

static void watch_schedule(rn_etcd_t *e, rn_etcd_watch_t *w) {
  watch_drop_conn(e, w);
  unsigned b = w->backoff_ms ? w->backoff_ms : WATCH_BACKOFF_MIN_MS;
  /* jitter: [b/2, b] */
  uint64_t d = b / 2 + rnd(e) % (b / 2 + 1);
  w->retry_at_ns = mono_ns() + d * 1000000u;
  w->backoff_ms = b * 2 > WATCH_BACKOFF_MAX_MS ? WATCH_BACKOFF_MAX_MS : b * 2;
  w->ep = (w->ep + 1) % e->neps;
  w->created = false;
}

static void watch_connect(rn_etcd_t *e, rn_etcd_watch_t *w) {
  w->retry_at_ns = 0;
  w->created = false;
  w->fatal = 0;
  rn_buf_free(&w->body);
  rn__etcd_body_watch(&w->body, w->prefix, w->plen, w->next_rev);
  char url[600];
  snprintf(url, sizeof url, "%s/v3/watch", e->eps[w->ep]);
  w->easy = w->body.oom ? NULL : curl_easy_init();
  if (!w->easy) {
    watch_end(e, w, RN_ENOMEM, w->last_rev);
    return;
  }
  common_opts(e, w->easy, url, json_hdrs(), w->errbuf);
  curl_easy_setopt(w->easy, CURLOPT_PRIVATE, NULL);
  curl_easy_setopt(w->easy, CURLOPT_POST, 1L);
  curl_easy_setopt(w->easy, CURLOPT_POSTFIELDS, w->body.p);
  curl_easy_setopt(w->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)w->body.len);
  curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, on_watch_write);
  curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
  curl_easy_setopt(w->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)e->connect_timeout_ms);
  w->created_by_ns = mono_ns() + e->timeout_ns;
  if (curl_multi_add_handle(e->multi, w->easy) != CURLM_OK) {
    curl_easy_cleanup(w->easy);
    w->easy = NULL;
    watch_end(e, w, RN_ENOMEM, w->last_rev);
  }
}

/* w's transfer ended. */
static void watch_done(rn_etcd_t *e, rn_etcd_watch_t *w, CURLcode cc) {
  if (w->fatal) {
    watch_end(e, w, w->fatal, w->fatal_rev);
    return;
  }
  rn_say(&e->logger, RN_LVL_INFO, "etcd watch on %s broke (%s), reconnecting from revision %" PRId64, e->eps[w->ep],
         w->errbuf[0] ? w->errbuf : cc == CURLE_OK ? "the stream ended" : curl_easy_strerror(cc), w->next_rev);
  watch_schedule(e, w);
}

/* ---- the curl thread -------------------------------------------------------------------------- */

static void *curl_main(void *arg) {
  rn_etcd_t *e = arg;
  for (;;) {
    pthread_mutex_lock(&e->mu);
    bool stop = e->stopping;
    req_t *sub = e->subq;
    e->subq = NULL;
    e->subq_tail = &e->subq;
    rn_etcd_watch_t *wsub = e->wsubq, *canc = e->cancelq;
    e->wsubq = e->cancelq = NULL;
    for (rn_etcd_watch_t *w = canc; w; w = w->cqnext) w->ended = true;
    for (rn_etcd_watch_t *w = wsub; w; w = w->qnext) w->submitted = true;
    pthread_mutex_unlock(&e->mu);
    /* new watches first, so a cancel in the same batch finds them listed */
    for (rn_etcd_watch_t *w = wsub, *nx; w; w = nx) {
      nx = w->qnext;
      w->qnext = NULL;
      w->ep = e->cur_ep;
      w->cnext = e->cwatches;
      e->cwatches = w;
      watch_connect(e, w);
    }
    for (rn_etcd_watch_t *w = canc, *nx; w; w = nx) {
      nx = w->cqnext;
      w->cqnext = NULL;
      watch_drop_conn(e, w);
      watch_unlist(e, w);
      witem_push(e, w, WI_END, 0, 0, NULL);
    }
    if (stop) {
      /* put the requests just taken back: close cancels them */
      pthread_mutex_lock(&e->mu);
      if (sub) {
        req_t *t = sub;
        while (t->next) t = t->next;
        t->next = e->subq;
        e->subq = sub;
        if (!t->next) e->subq_tail = &t->next;
      }
      pthread_mutex_unlock(&e->mu);
      break;
    }
    while (sub) {
      req_t *nx = sub->next;
      sub->next = NULL;
      sub->ep = e->cur_ep;
      req_start(e, sub);
      sub = nx;
    }
    int still = 0;
    curl_multi_perform(e->multi, &still);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(e->multi, &left))) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL *easy = m->easy_handle;
      CURLcode cc = m->data.result;
      char *priv = NULL;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
      if (priv) {
        req_done(e, (req_t *)priv, cc);
        continue;
      }
      for (rn_etcd_watch_t *w = e->cwatches; w; w = w->cnext)
        if (w->easy == easy) {
          watch_done(e, w, cc);
          break;
        }
    }
    /* watch timers: reconnects due, and streams without "created" in time */
    uint64_t now = mono_ns();
    int timeout_ms = 1000;
    for (rn_etcd_watch_t *w = e->cwatches, *nx; w; w = nx) {
      nx = w->cnext;
      uint64_t due = 0;
      if (w->retry_at_ns) {
        if (w->retry_at_ns <= now) {
          watch_connect(e, w);
          timeout_ms = 0;
          continue;
        }
        due = w->retry_at_ns;
      } else if (w->easy && !w->created) {
        if (w->created_by_ns <= now) {
          rn_say(&e->logger, RN_LVL_INFO, "etcd watch on %s: not established within %" PRIu64 " ms, reconnecting",
                 e->eps[w->ep], e->timeout_ns / 1000000u);
          watch_schedule(e, w);
          timeout_ms = 0;
          continue;
        }
        due = w->created_by_ns;
      }
      if (due) {
        uint64_t ms = (due - now + 999999u) / 1000000u;
        if (ms < (uint64_t)timeout_ms) timeout_ms = (int)ms;
      }
    }
    long ct = -1;
    curl_multi_timeout(e->multi, &ct);
    if (ct >= 0 && ct < timeout_ms) timeout_ms = (int)ct;
    curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL);
  }
  return NULL;
}

/* ---- the loop thread ---------------------------------------------------------------------------- */

static void watch_free(rn_etcd_watch_t *w) {
  rn_buf_free(&w->line);
  rn_buf_free(&w->body);
  free(w->prefix);
  free(w);
}

static void watch_unlink_loop(rn_etcd_t *e, rn_etcd_watch_t *w) {
  for (rn_etcd_watch_t **pp = &e->watches; *pp; pp = &(*pp)->lnext)
    if (*pp == w) {
      *pp = w->lnext;
      break;
    }
}

static void deliver_witem(rn_etcd_t *e, witem_t *wi) {
  rn_etcd_watch_t *w = wi->w;
  switch (wi->kind) {
  case WI_EVENTS:
    if (!w->cancelled && !w->finished) w->cb(w->arg, 0, wi->m.ev, wi->m.nev, wi->revision);
    break;
  case WI_PROGRESS:
    if (!w->cancelled && !w->finished) w->cb(w->arg, 0, NULL, 0, wi->revision);
    break;
  case WI_END:
    watch_unlink_loop(e, w);
    if (!w->cancelled && !w->finished && wi->err) {
      w->finished = true;
      w->cb(w->arg, wi->err, NULL, 0, wi->revision);
    }
    watch_free(w);
    break;
  }
  rn__etcd_wmsg_free(&wi->m);
  free(wi);
}

static void deliver_req(req_t *r) {
  if (!r->done) {
    req_fail(r, RN_ECANCELED, "etcd %s: the client was closed first", rn__etcd_kind_name(r->kind));
  }
  rn_etcd_cb cb = r->cb;
  void *arg = r->arg;
  rn_etcd_result_t res = r->a.r;
  cb(arg, &res);
  req_free(r);
}

/* Run what the curl thread finished, in the order it finished it. */
static void drain(rn_etcd_t *e) {
  for (;;) {
    pthread_mutex_lock(&e->mu);
    done_t *d = e->doneq;
    e->doneq = NULL;
    e->doneq_tail = &e->doneq;
    pthread_mutex_unlock(&e->mu);
    if (!d) return;
    while (d) {
      done_t *nx = d->next;
      if (d->req) deliver_req(d->req);
      if (d->wi) deliver_witem(e, d->wi);
      free(d);
      d = nx;
    }
  }
}

static void on_async(uv_async_t *h) { drain(h->data); }

/* Queue r for the curl thread; while closing (or already failed) it goes
 * to doneq instead, to be called back on a later iteration or by close. */
static void submit(rn_etcd_t *e, req_t *r) {
  if (r->done || e->closing) {
    if (!r->done) req_fail(r, RN_ECANCELED, "etcd %s: the client was closed first", rn__etcd_kind_name(r->kind));
    push_done(e, r, NULL);
    return;
  }
  r->deadline_ns = mono_ns() + e->timeout_ns;
  pthread_mutex_lock(&e->mu);
  r->next = NULL;
  *e->subq_tail = r;
  e->subq_tail = &r->next;
  pthread_mutex_unlock(&e->mu);
  curl_multi_wakeup(e->multi);
}

static req_t *req_new(rn_etcd_t *e, rn__etcd_kind_t kind, rn_etcd_cb cb, void *arg) {
  assert(e && cb);
  req_t *r = calloc(1, sizeof *r);
  if (!r) abort(); /* no way to report it later */
  r->e = e;
  r->kind = kind;
  r->cb = cb;
  r->arg = arg;
  return r;
}

/* The body was built: out of memory fails the request. */
static void body_check(req_t *r) {
  if (!r->done && r->body.oom) req_fail(r, RN_ENOMEM, "etcd %s: out of memory for the request", rn__etcd_kind_name(r->kind));
}

void rn_etcd_get(rn_etcd_t *e, const char *key, bool prefix, rn_etcd_cb cb, void *arg) {
  req_t *r = req_new(e, RN__ETCD_RANGE, cb, arg);
  if (!key || (!key[0] && !prefix))
    req_fail(r, RN_EINVAL, "etcd range: an empty key");
  else
    rn__etcd_body_range(&r->body, key, prefix);
  body_check(r);
  submit(e, r);
}

void rn_etcd_put(rn_etcd_t *e, const char *key, const uint8_t *val, size_t len, int64_t lease, rn_etcd_cb cb,
                 void *arg) {
  req_t *r = req_new(e, RN__ETCD_PUT, cb, arg);
  if (!key || !key[0])
    req_fail(r, RN_EINVAL, "etcd put: an empty key");
  else if (!val && len)
    req_fail(r, RN_EINVAL, "etcd put: no value but a length of %zu", len);
  else
    rn__etcd_body_put(&r->body, key, val, len, lease);
  body_check(r);
  submit(e, r);
}

void rn_etcd_delete(rn_etcd_t *e, const char *key, bool prefix, rn_etcd_cb cb, void *arg) {
  req_t *r = req_new(e, RN__ETCD_DELETE, cb, arg);
  if (!key || (!key[0] && !prefix))
    req_fail(r, RN_EINVAL, "etcd delete: an empty key");
  else
    rn__etcd_body_range(&r->body, key, prefix);
  body_check(r);
  submit(e, r);
}

static bool ops_ok(const rn_etcd_op_t *ops, size_t n, char *why, size_t cap, const char *branch) {
  if (n && !ops) {
    set_msg(why, cap, "etcd txn: %zu %s ops but no array", n, branch);
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    const rn_etcd_op_t *op = &ops[i];
    if ((unsigned)op->kind > RN_ETCD_OP_RANGE || !op->key || (!op->key[0] && (op->kind == RN_ETCD_OP_PUT || !op->prefix)) ||
        (op->kind == RN_ETCD_OP_PUT && !op->value && op->value_len)) {
      set_msg(why, cap, "etcd txn: %s op %zu is invalid (kind, empty key or value)", branch, i);
      return false;
    }
  }
  return true;
}

void rn_etcd_txn(rn_etcd_t *e, const rn_etcd_cmp_t *cmp, size_t ncmp, const rn_etcd_op_t *then_ops, size_t nthen,
                 const rn_etcd_op_t *else_ops, size_t nelse, rn_etcd_cb cb, void *arg) {
  req_t *r = req_new(e, RN__ETCD_TXN, cb, arg);
  char why[200] = "";
  bool ok = !(ncmp && !cmp);
  if (!ok) set_msg(why, sizeof why, "etcd txn: %zu compares but no array", ncmp);
  for (size_t i = 0; ok && i < ncmp; i++)
    if (!cmp[i].key || !cmp[i].key[0] || (unsigned)cmp[i].target > RN_ETCD_CMP_LEASE ||
        (unsigned)cmp[i].op > RN_ETCD_LESS || (cmp[i].target == RN_ETCD_CMP_VALUE && !cmp[i].value && cmp[i].value_len)) {
      set_msg(why, sizeof why, "etcd txn: compare %zu is invalid (empty key, target or op)", i);
      ok = false;
    }
  ok = ok && ops_ok(then_ops, nthen, why, sizeof why, "then") && ops_ok(else_ops, nelse, why, sizeof why, "else");
  if (!ok)
    req_fail(r, RN_EINVAL, "%s", why);
  else
    rn__etcd_body_txn(&r->body, cmp, ncmp, then_ops, nthen, else_ops, nelse);
  body_check(r);
  submit(e, r);
}

void rn_etcd_lease_grant(rn_etcd_t *e, int64_t ttl_s, rn_etcd_cb cb, void *arg) {
  req_t *r = req_new(e, RN__ETCD_GRANT, cb, arg);
  if (ttl_s <= 0)
    req_fail(r, RN_EINVAL, "etcd lease grant: a TTL of %" PRId64 " s", ttl_s);
  else
    rn__etcd_body_grant(&r->body, ttl_s);
  body_check(r);
  submit(e, r);
}

static void lease_req(rn_etcd_t *e, rn__etcd_kind_t kind, int64_t lease, rn_etcd_cb cb, void *arg) {
  req_t *r = req_new(e, kind, cb, arg);
  if (lease == 0)
    req_fail(r, RN_EINVAL, "etcd %s: lease 0", rn__etcd_kind_name(kind));
  else
    rn__etcd_body_lease(&r->body, lease);
  body_check(r);
  submit(e, r);
}

void rn_etcd_lease_keepalive(rn_etcd_t *e, int64_t lease, rn_etcd_cb cb, void *arg) {
  lease_req(e, RN__ETCD_KEEPALIVE, lease, cb, arg);
}
void rn_etcd_lease_revoke(rn_etcd_t *e, int64_t lease, rn_etcd_cb cb, void *arg) {
  lease_req(e, RN__ETCD_REVOKE, lease, cb, arg);
}
void rn_etcd_lease_ttl(rn_etcd_t *e, int64_t lease, rn_etcd_cb cb, void *arg) {
  lease_req(e, RN__ETCD_TTL, lease, cb, arg);
}

rn_etcd_watch_t *rn_etcd_watch(rn_etcd_t *e, const char *prefix, int64_t start_revision, rn_etcd_watch_cb cb,
                               void *arg) {
  if (!e || !prefix || !cb) return NULL;
  rn_etcd_watch_t *w = calloc(1, sizeof *w);
  size_t n = strlen(prefix);
  if (w) w->prefix = malloc(n ? n : 1);
  if (!w || !w->prefix) abort(); /* NULL means a programming error here; nothing to report through */
  memcpy(w->prefix, prefix, n);
  w->plen = n;
  w->e = e;
  w->cb = cb;
  w->arg = arg;
  w->start_revision = start_revision;
  w->next_rev = start_revision > 0 ? start_revision : 0;
  w->last_rev = 0;
  w->backoff_ms = WATCH_BACKOFF_MIN_MS;
  w->lnext = e->watches;
  e->watches = w;
  if (e->closing) {
    /* close ends it with RN_ECANCELED before it returns */
    return w;
  }
  pthread_mutex_lock(&e->mu);
  w->qnext = e->wsubq;
  e->wsubq = w;
  pthread_mutex_unlock(&e->mu);
  curl_multi_wakeup(e->multi);
  return w;
}

void rn_etcd_watch_cancel(rn_etcd_watch_t *w) {
  if (!w || w->cancelled || w->finished) return;
  rn_etcd_t *e = w->e;
  w->cancelled = true;
  if (e->closing) return; /* close frees it */
  pthread_mutex_lock(&e->mu);
  if (!w->ended) {
    w->cancel_req = true;
    if (w->submitted) {
      w->cqnext = e->cancelq;
      e->cancelq = w;
    } else {
      /* still on wsubq: take it off, and answer the cancel ourselves */
      for (rn_etcd_watch_t **pp = &e->wsubq; *pp; pp = &(*pp)->qnext)
        if (*pp == w) {
          *pp = w->qnext;
          break;
        }
      w->ended = true;
      pthread_mutex_unlock(&e->mu);
      witem_push(e, w, WI_END, 0, 0, NULL);
      return;
    }
  }
  pthread_mutex_unlock(&e->mu);
  curl_multi_wakeup(e->multi);
}

/* ---- new and close ------------------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ok;
static void curl_init_once(void) { curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }

#define WHY(...) (why && whylen ? (void)snprintf(why, whylen, __VA_ARGS__) : (void)0)

static void free_client(rn_etcd_t *e) {
  for (unsigned i = 0; i < e->neps; i++) free(e->eps[i]);
  if (e->multi) curl_multi_cleanup(e->multi);
  pthread_mutex_destroy(&e->mu);
  free(e);
}

static void on_async_closed(uv_handle_t *h) { free_client(h->data); }

/* Parse "http://h:p,https://h2" into e->eps (without a trailing '/'). */
static rn_err_t parse_endpoints(rn_etcd_t *e, const char *s, char *why, size_t whylen) {
  while (*s) {
    while (*s == ' ' || *s == ',') s++;
    if (!*s) break;
    const char *end = strchr(s, ',');
    size_t n = end ? (size_t)(end - s) : strlen(s);
    while (n && s[n - 1] == ' ') n--;
    if (n && s[n - 1] == '/') n--;
    size_t scheme = !strncmp(s, "http://", 7) ? 7 : !strncmp(s, "https://", 8) ? 8 : 0;
    if (!scheme || n <= scheme || memchr(s + scheme, '/', n - scheme) || n > 500) {
      WHY("etcd: endpoint \"%.*s\" is not http(s)://host[:port]", (int)(n > 200 ? 200 : n), s);
      return RN_EINVAL;
    }
    if (e->neps == EP_MAX) {
      WHY("etcd: more than %d endpoints", EP_MAX);
      return RN_EINVAL;
    }
    e->eps[e->neps] = strndup(s, n);
    if (!e->eps[e->neps]) return RN_ENOMEM;
    e->neps++;
    s += n;
    while (*s && *s != ',') s++;
  }
  if (!e->neps) {
    WHY("etcd: no endpoints");
    return RN_EINVAL;
  }
  return 0;
}

rn_err_t rn_etcd_new(const rn_etcd_opts_t *o, rn_etcd_t **out, char *why, size_t whylen) {
  if (why && whylen) why[0] = 0;
  if (!o || !out || !o->loop) {
    WHY("etcd: no options, loop or result pointer");
    return RN_EINVAL;
  }
  *out = NULL;
  pthread_once(&curl_once, curl_init_once);
  if (!curl_ok) {
    WHY("etcd: curl_global_init failed");
    return RN_ENOMEM;
  }
  rn_etcd_t *e = calloc(1, sizeof *e);
  if (!e) return RN_ENOMEM;
  pthread_mutex_init(&e->mu, NULL);
  e->subq_tail = &e->subq;
  e->doneq_tail = &e->doneq;
  e->loop = o->loop;
  e->logger = o->logger;
  e->timeout_ns = (uint64_t)(o->timeout_ms ? o->timeout_ms : 5000) * 1000000u;
  e->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 1000;
  if (e->connect_timeout_ms > e->timeout_ns / 1000000u) e->connect_timeout_ms = e->timeout_ns / 1000000u;
  e->rng = mono_ns() | 1;
  rn_err_t err = parse_endpoints(e, o->endpoints ? o->endpoints : "", why, whylen);
  if (err) {
    free_client(e);
    return err;
  }
  e->multi = curl_multi_init();
  if (!e->multi) {
    WHY("etcd: curl_multi_init failed");
    free_client(e);
    return RN_ENOMEM;
  }
  int rc = uv_async_init(o->loop, &e->async, on_async);
  if (rc) {
    WHY("etcd: uv_async_init: %s", uv_strerror(rc));
    free_client(e);
    return rc;
  }
  e->async.data = e;
  if (pthread_create(&e->thr, NULL, curl_main, e)) {
    WHY("etcd: cannot start the curl thread");
    uv_close((uv_handle_t *)&e->async, on_async_closed);
    return RN_ENOMEM;
  }
  e->thr_started = true;
  *out = e;
  return 0;
}

void rn_etcd_close(rn_etcd_t *e) {
  if (!e) return;
  e->closing = true;
  pthread_mutex_lock(&e->mu);
  e->stopping = true;
  pthread_mutex_unlock(&e->mu);
  curl_multi_wakeup(e->multi);
  pthread_join(e->thr, NULL);
  /* Nothing else runs now: every request is on active (begun), subq
   * (never begun) or doneq (answered). */
  drain(e); /* the answered ones with their results; cancels answered */
  for (req_t *r = e->active, *nx; r; r = nx) {
    nx = r->next;
    curl_multi_remove_handle(e->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    r->done = false;
    rn__etcd_answer_free(&r->a);
    deliver_req(r);
  }
  e->active = NULL;
  for (req_t *r = e->subq, *nx; r; r = nx) {
    nx = r->next;
    deliver_req(r);
  }
  e->subq = NULL;
  e->subq_tail = &e->subq;
  for (rn_etcd_watch_t *w = e->cwatches; w; w = w->cnext) watch_drop_conn(e, w);
  e->cwatches = NULL;
  e->wsubq = e->cancelq = NULL;
  /* requests made by those callbacks, on doneq now */
  drain(e);
  /* every watch left: its final callback, then gone */
  while (e->watches) {
    rn_etcd_watch_t *w = e->watches;
    e->watches = w->lnext;
    if (!w->cancelled && !w->finished) {
      w->finished = true;
      w->cb(w->arg, RN_ECANCELED, NULL, 0, w->last_rev);
    }
    watch_free(w);
    drain(e);
  }
  uv_close((uv_handle_t *)&e->async, on_async_closed);
}
