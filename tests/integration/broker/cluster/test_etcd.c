/*
 * test_etcd.c — the etcd client (broker/cluster/etcd.h) on a real uv loop
 * against a real etcd (support/etcd_proc.c): kv, txn, leases, watches,
 * failover, unreachable endpoints, timeouts, close with work in flight,
 * and a watch that survives etcd being killed and restarted. Exits 77 when
 * /usr/bin/etcd is not installed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etcd.h"
#include "etcd_proc.h"
#include "rn_fs.h"
#include "testutil.h"

static rn_etcd_proc_t g_etcd;
static char *g_dir;
static uv_loop_t g_loop;

/* ---- one answer, waited for on the loop ---- */

typedef struct {
  int calls;
  rn_err_t err;
  char msg[600];
  int64_t revision, lease_id, ttl, deleted;
  bool succeeded;
  size_t nkvs;
  char keys[8][64];
  char vals[8][64];
  int64_t mod[8];
} ans_t;

static void on_ans(void *arg, const rn_etcd_result_t *r) {
  ans_t *a = arg;
  a->calls++;
  a->err = r->err;
  snprintf(a->msg, sizeof a->msg, "%s", r->msg ? r->msg : "");
  if (r->err == 0) assert_null(r->msg);
  else assert_non_null(r->msg);
  a->revision = r->revision;
  a->lease_id = r->lease_id;
  a->ttl = r->ttl;
  a->deleted = r->deleted;
  a->succeeded = r->succeeded;
  a->nkvs = r->nkvs;
  for (size_t i = 0; i < r->nkvs && i < 8; i++) {
    snprintf(a->keys[i], 64, "%.*s", (int)r->kvs[i].key_len, r->kvs[i].key);
    snprintf(a->vals[i], 64, "%.*s", (int)r->kvs[i].value_len, (const char *)r->kvs[i].value);
    a->mod[i] = r->kvs[i].mod_revision;
  }
}

static void wait_ans(ans_t *a) {
  while (a->calls == 0) uv_run(&g_loop, UV_RUN_ONCE);
  assert_int_equal(a->calls, 1);
}

static rn_etcd_t *client(const char *eps, uint32_t timeout_ms) {
  rn_etcd_opts_t o = {.loop = &g_loop, .endpoints = eps, .timeout_ms = timeout_ms, .connect_timeout_ms = 500,
                      .logger = rn_logger_stderr_as("etcd")};
  rn_etcd_t *e = NULL;
  char why[256];
  rn_err_t err = rn_etcd_new(&o, &e, why, sizeof why);
  if (err) fprintf(stderr, "rn_etcd_new: %s\n", why);
  assert_int_equal(err, 0);
  return e;
}

static void close_client(rn_etcd_t *e) {
  rn_etcd_close(e);
  uv_run(&g_loop, UV_RUN_NOWAIT);
}

static void put(rn_etcd_t *e, const char *k, const char *v, int64_t lease, ans_t *a) {
  memset(a, 0, sizeof *a);
  rn_etcd_put(e, k, (const uint8_t *)v, strlen(v), lease, on_ans, a);
  wait_ans(a);
}
static void get(rn_etcd_t *e, const char *k, bool prefix, ans_t *a) {
  memset(a, 0, sizeof *a);
  rn_etcd_get(e, k, prefix, on_ans, a);
  wait_ans(a);
}

/* ---- kv ---- */

static void test_kv(void **state) {
  rn_etcd_t *e = client(g_etcd.url, 5000);
  ans_t a, b;
  put(e, "/kv/a", "1", 0, &a);
  assert_int_equal(a.err, 0);
  assert_true(a.revision > 0);
  put(e, "/kv/b", "2", 0, &b);
  assert_int_equal(b.revision, a.revision + 1);
  put(e, "/kvx", "other", 0, &b);
  get(e, "/kv/a", false, &a);
  assert_int_equal(a.err, 0);
  assert_int_equal(a.nkvs, 1);
  assert_string_equal(a.keys[0], "/kv/a");
  assert_string_equal(a.vals[0], "1");
  get(e, "/kv/", true, &a);
  assert_int_equal(a.nkvs, 2);
  assert_string_equal(a.keys[0], "/kv/a");
  assert_string_equal(a.keys[1], "/kv/b");
  assert_string_equal(a.vals[1], "2");
  get(e, "/kv/none", false, &a);
  assert_int_equal(a.err, 0);
  assert_int_equal(a.nkvs, 0);
  memset(&a, 0, sizeof a);
  rn_etcd_delete(e, "/kv/", true, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, 0);
  assert_int_equal(a.deleted, 2);
  get(e, "/kv/", true, &a);
  assert_int_equal(a.nkvs, 0);
  get(e, "/kvx", false, &a);
  assert_int_equal(a.nkvs, 1);
  /* invalid arguments: through the callback, never before the call returns */
  memset(&a, 0, sizeof a);
  rn_etcd_put(e, "", (const uint8_t *)"x", 1, 0, on_ans, &a);
  assert_int_equal(a.calls, 0);
  wait_ans(&a);
  assert_int_equal(a.err, RN_EINVAL);
  close_client(e);
}

/* ---- txn ---- */

static void test_txn(void **state) {
  rn_etcd_t *e = client(g_etcd.url, 5000);
  ans_t a;
  put(e, "/tx/k", "v1", 0, &a);
  int64_t rev = a.revision;
  rn_etcd_cmp_t cmp = {.key = "/tx/k", .target = RN_ETCD_CMP_MOD, .op = RN_ETCD_EQUAL, .num = rev};
  rn_etcd_op_t then_ops[2] = {{.kind = RN_ETCD_OP_PUT, .key = "/tx/k", .value = (const uint8_t *)"v2", .value_len = 2},
                              {.kind = RN_ETCD_OP_RANGE, .key = "/tx/", .prefix = true}};
  rn_etcd_op_t else_ops[1] = {{.kind = RN_ETCD_OP_RANGE, .key = "/tx/k"}};
  memset(&a, 0, sizeof a);
  rn_etcd_txn(e, &cmp, 1, then_ops, 2, else_ops, 1, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, 0);
  assert_true(a.succeeded);
  assert_int_equal(a.nkvs, 1);
  assert_string_equal(a.vals[0], "v2"); /* the range after the put, in the same txn */
  /* the same compare fails now: the else branch's range */
  memset(&a, 0, sizeof a);
  rn_etcd_txn(e, &cmp, 1, then_ops, 2, else_ops, 1, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, 0);
  assert_false(a.succeeded);
  assert_int_equal(a.nkvs, 1);
  assert_string_equal(a.vals[0], "v2");
  assert_true(a.mod[0] > rev);
  /* value compares */
  rn_etcd_cmp_t vc = {.key = "/tx/k", .target = RN_ETCD_CMP_VALUE, .op = RN_ETCD_EQUAL,
                      .value = (const uint8_t *)"v2", .value_len = 2};
  rn_etcd_op_t del = {.kind = RN_ETCD_OP_DELETE, .key = "/tx/k"};
  memset(&a, 0, sizeof a);
  rn_etcd_txn(e, &vc, 1, &del, 1, NULL, 0, on_ans, &a);
  wait_ans(&a);
  assert_true(a.succeeded);
  assert_int_equal(a.deleted, 1);
  /* create-if-absent: version 0 */
  rn_etcd_cmp_t absent = {.key = "/tx/k", .target = RN_ETCD_CMP_VERSION, .op = RN_ETCD_EQUAL, .num = 0};
  memset(&a, 0, sizeof a);
  rn_etcd_txn(e, &absent, 1, then_ops, 1, NULL, 0, on_ans, &a);
  wait_ans(&a);
  assert_true(a.succeeded);
  memset(&a, 0, sizeof a);
  rn_etcd_txn(e, &absent, 1, then_ops, 1, NULL, 0, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, 0);
  assert_false(a.succeeded);
  /* the same key put twice in one branch: etcd refuses it */
  rn_etcd_op_t twice[2] = {then_ops[0], then_ops[0]};
  memset(&a, 0, sizeof a);
  rn_etcd_txn(e, NULL, 0, twice, 2, NULL, 0, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, RN_EINVAL);
  close_client(e);
}

/* ---- leases ---- */

static void test_lease(void **state) {
  rn_etcd_t *e = client(g_etcd.url, 5000);
  ans_t a;
  memset(&a, 0, sizeof a);
  rn_etcd_lease_grant(e, 60, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, 0);
  int64_t id = a.lease_id;
  assert_true(id != 0);
  assert_true(a.ttl >= 60);
  put(e, "/ls/k", "x", id, &a);
  assert_int_equal(a.err, 0);
  memset(&a, 0, sizeof a);
  rn_etcd_lease_keepalive(e, id, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, 0);
  assert_true(a.ttl >= 60);
  memset(&a, 0, sizeof a);
  rn_etcd_lease_ttl(e, id, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, 0);
  assert_true(a.ttl > 0 && a.ttl <= 60);
  memset(&a, 0, sizeof a);
  rn_etcd_lease_revoke(e, id, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, 0);
  get(e, "/ls/k", false, &a);
  assert_int_equal(a.nkvs, 0); /* gone with its lease */
  put(e, "/ls/k2", "x", id, &a);
  assert_int_equal(a.err, RN_ENOENT);
  memset(&a, 0, sizeof a);
  rn_etcd_lease_keepalive(e, id, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, RN_ENOENT);
  assert_int_equal(a.ttl, 0);
  memset(&a, 0, sizeof a);
  rn_etcd_lease_ttl(e, id, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, RN_ENOENT);
  memset(&a, 0, sizeof a);
  rn_etcd_lease_revoke(e, id, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, RN_ENOENT);
  close_client(e);
}

/* ---- watches ---- */

typedef struct wrec wrec_t;
static void on_watch(void *arg, rn_err_t err, const rn_etcd_event_t *ev, size_t nev, int64_t revision);
static void wait_events(wrec_t *w, size_t n);


struct wrec {
  int calls, ends, progress;
  rn_err_t end_err;
  int64_t last_rev;
  size_t n;
  char keys[64][32];
  int types[64];
  int64_t revs[64];
};

static void on_watch(void *arg, rn_err_t err, const rn_etcd_event_t *ev, size_t nev, int64_t revision) {
  wrec_t *w = arg;
  w->calls++;
  assert_int_equal(w->ends, 0); /* nothing after the final callback */
  if (err) {
    w->ends++;
    w->end_err = err;
    return;
  }
  if (!nev) {
    w->progress++;
    return;
  }
  for (size_t i = 0; i < nev && w->n < 64; i++, w->n++) {
    snprintf(w->keys[w->n], 32, "%.*s", (int)ev[i].kv.key_len, ev[i].kv.key);
    w->types[w->n] = ev[i].type;
    w->revs[w->n] = ev[i].kv.mod_revision;
    if (w->n) assert_true(w->revs[w->n] > w->revs[w->n - 1]); /* in order, nothing twice */
  }
  assert_int_equal(revision, ev[nev - 1].kv.mod_revision);
  w->last_rev = revision;
}

static void wait_events(wrec_t *w, size_t n) {
  while (w->n < n) uv_run(&g_loop, UV_RUN_ONCE);
}

static void test_watch(void **state) {
  rn_etcd_t *e = client(g_etcd.url, 5000);
  ans_t a;
  wrec_t w = {0};
  rn_etcd_watch_t *wt = rn_etcd_watch(e, "/w/", 0, on_watch, &w);
  assert_non_null(wt);
  while (!w.progress) uv_run(&g_loop, UV_RUN_ONCE); /* established ("from now") */
  put(e, "/w/a", "1", 0, &a);
  int64_t r1 = a.revision;
  put(e, "/other", "x", 0, &a);
  put(e, "/w/b", "2", 0, &a);
  memset(&a, 0, sizeof a);
  rn_etcd_delete(e, "/w/a", false, on_ans, &a);
  wait_ans(&a);
  int64_t r3 = a.revision;
  wait_events(&w, 3);
  assert_string_equal(w.keys[0], "/w/a");
  assert_int_equal(w.types[0], RN_ETCD_EV_PUT);
  assert_int_equal(w.revs[0], r1);
  assert_string_equal(w.keys[1], "/w/b");
  assert_string_equal(w.keys[2], "/w/a");
  assert_int_equal(w.types[2], RN_ETCD_EV_DELETE);
  assert_int_equal(w.revs[2], r3);
  /* a second watch from a past revision replays the same */
  wrec_t w2 = {0};
  rn_etcd_watch_t *wt2 = rn_etcd_watch(e, "/w/", r1, on_watch, &w2);
  wait_events(&w2, 3);
  for (int i = 0; i < 3; i++) {
    assert_string_equal(w2.keys[i], w.keys[i]);
    assert_int_equal(w2.revs[i], w.revs[i]);
  }
  /* cancel: no callback after it returns */
  rn_etcd_watch_cancel(wt2);
  int calls2 = w2.calls;
  rn_etcd_watch_cancel(wt);
  int calls = w.calls;
  put(e, "/w/c", "3", 0, &a);
  get(e, "/w/c", false, &a); /* a round trip after the put */
  assert_int_equal(w.calls, calls);
  assert_int_equal(w2.calls, calls2);
  /* cancelled before the curl thread took it: still no callback */
  wrec_t w4 = {0};
  rn_etcd_watch_cancel(rn_etcd_watch(e, "/w/", r1, on_watch, &w4));
  put(e, "/w/d", "4", 0, &a);
  get(e, "/w/d", false, &a);
  assert_int_equal(w4.calls, 0);
  /* a watch not cancelled: its final callback, RN_ECANCELED once, at close */
  wrec_t w3 = {0};
  (void)rn_etcd_watch(e, "/w/", r1, on_watch, &w3);
  wait_events(&w3, 4);
  close_client(e);
  assert_int_equal(w3.ends, 1);
  assert_int_equal(w3.end_err, RN_ECANCELED);
}

/* ---- endpoints ---- */

static uint16_t closed_port(void) {
  /* a port nobody listens on: etcd's own peer port + a fresh one is racy;
   * use port 1 on loopback, which refuses */
  return 1;
}

static void test_failover(void **state) {
  char eps[200];
  snprintf(eps, sizeof eps, "http://127.0.0.1:%u,%s", closed_port(), g_etcd.url);
  rn_etcd_t *e = client(eps, 5000);
  ans_t a;
  put(e, "/fo/k", "v", 0, &a);
  assert_int_equal(a.err, 0);
  get(e, "/fo/k", false, &a);
  assert_int_equal(a.err, 0);
  assert_int_equal(a.nkvs, 1);
  /* a watch fails over too */
  wrec_t w = {0};
  rn_etcd_watch_t *wt = rn_etcd_watch(e, "/fo/", 0, on_watch, &w);
  while (!w.progress) uv_run(&g_loop, UV_RUN_ONCE);
  put(e, "/fo/k", "v2", 0, &a);
  wait_events(&w, 1);
  rn_etcd_watch_cancel(wt);
  close_client(e);

  rn_etcd_t *dead = client("http://127.0.0.1:1,http://127.0.0.2:1", 5000);
  memset(&a, 0, sizeof a);
  rn_etcd_get(dead, "/fo/k", false, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, RN_ECONTROLPLANE);
  assert_non_null(strstr(a.msg, "http://127.0.0.1:1"));
  assert_non_null(strstr(a.msg, "http://127.0.0.2:1"));
  close_client(dead);

  rn_etcd_t *bad = NULL;
  rn_etcd_opts_t o = {.loop = &g_loop, .endpoints = "ftp://x"};
  char why[200];
  assert_int_equal(rn_etcd_new(&o, &bad, why, sizeof why), RN_EINVAL);
  assert_non_null(strstr(why, "ftp://x"));
}

/* ---- timeouts and close with work in flight (etcd stopped) ---- */

static void test_timeout_and_close(void **state) {
  rn_etcd_t *e = client(g_etcd.url, 300);
  ans_t a;
  put(e, "/to/k", "v", 0, &a); /* connected */
  assert_int_equal(a.err, 0);
  rn_etcd_proc_signal(&g_etcd, SIGSTOP);
  get(e, "/to/k", false, &a);
  if (a.err != RN_ETIMEDOUT) rn_etcd_proc_signal(&g_etcd, SIGCONT);
  assert_int_equal(a.err, RN_ETIMEDOUT);
  assert_non_null(strstr(a.msg, g_etcd.url));
  /* in flight, then closed: each once, RN_ECANCELED */
  ans_t f[4];
  memset(f, 0, sizeof f);
  rn_etcd_get(e, "/to/k", false, on_ans, &f[0]);
  rn_etcd_put(e, "/to/k", (const uint8_t *)"x", 1, 0, on_ans, &f[1]);
  rn_etcd_lease_grant(e, 10, on_ans, &f[2]);
  rn_etcd_delete(e, "/to/", true, on_ans, &f[3]);
  uv_run(&g_loop, UV_RUN_NOWAIT);
  rn_etcd_close(e);
  rn_etcd_proc_signal(&g_etcd, SIGCONT);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(f[i].calls, 1);
    assert_int_equal(f[i].err, RN_ECANCELED);
  }
  uv_run(&g_loop, UV_RUN_NOWAIT);
}

/* ---- a watch across etcd killed and restarted ---- */

static void test_watch_restart(void **state) {
  rn_etcd_t *e = client(g_etcd.url, 3000);
  ans_t a;
  wrec_t w = {0};
  rn_etcd_watch_t *wt = rn_etcd_watch(e, "/rs/", 0, on_watch, &w);
  while (!w.progress) uv_run(&g_loop, UV_RUN_ONCE);
  put(e, "/rs/1", "a", 0, &a);
  wait_events(&w, 1);
  rn_etcd_proc_stop(&g_etcd, true);
  char why[300];
  if (rn_etcd_proc_start(&g_etcd, g_dir, why, sizeof why)) fail_msg("%s", why);
  /* a write on a connection that broke under it reports so (outcome
   * unknown) and is tried again here; reads are retried by the client */
  int64_t revs[4];
  size_t nrevs = 0;
  bool unknown = false;
  put(e, "/rs/2", "b", 0, &a);
  if (a.err) {
    unknown = true;
    assert_int_equal(a.err, RN_ECONTROLPLANE);
    put(e, "/rs/2", "b", 0, &a);
  }
  assert_int_equal(a.err, 0);
  revs[nrevs++] = a.revision;
  put(e, "/rs/3", "c", 0, &a);
  assert_int_equal(a.err, 0);
  revs[nrevs++] = a.revision;
  while (w.last_rev < a.revision) uv_run(&g_loop, UV_RUN_ONCE);
  assert_int_equal(w.ends, 0);
  /* no loss and no duplicates: /rs/1, then exactly the later puts (on_watch
   * asserts strictly increasing revisions) */
  assert_string_equal(w.keys[0], "/rs/1");
  assert_int_equal(w.n, 1 + nrevs + (unknown && w.n == 2 + nrevs ? 1 : 0));
  assert_int_equal(w.revs[w.n - 1], revs[nrevs - 1]);
  assert_int_equal(w.revs[w.n - 2], revs[nrevs - 2]);
  assert_string_equal(w.keys[w.n - 1], "/rs/3");
  rn_etcd_watch_cancel(wt);
  close_client(e);
}

/* A key on a lease nobody keeps alive disappears when it expires: the
 * watch's DELETE event is the synchronisation, not a sleep. */
static void test_lease_expiry(void **state) {
  rn_etcd_t *e = client(g_etcd.url, 5000);
  ans_t a;
  memset(&a, 0, sizeof a);
  rn_etcd_lease_grant(e, 1, on_ans, &a); /* etcd may raise it to its minimum */
  wait_ans(&a);
  assert_int_equal(a.err, 0);
  int64_t id = a.lease_id;
  wrec_t w = {0};
  rn_etcd_watch_t *wt = rn_etcd_watch(e, "/ex/", 0, on_watch, &w);
  while (!w.progress) uv_run(&g_loop, UV_RUN_ONCE);
  put(e, "/ex/k", "x", id, &a);
  assert_int_equal(a.err, 0);
  wait_events(&w, 2);
  assert_int_equal(w.types[0], RN_ETCD_EV_PUT);
  assert_int_equal(w.types[1], RN_ETCD_EV_DELETE);
  assert_string_equal(w.keys[1], "/ex/k");
  get(e, "/ex/k", false, &a);
  assert_int_equal(a.nkvs, 0);
  memset(&a, 0, sizeof a);
  rn_etcd_lease_keepalive(e, id, on_ans, &a);
  wait_ans(&a);
  assert_int_equal(a.err, RN_ENOENT);
  rn_etcd_watch_cancel(wt);
  close_client(e);
}

/* ---- a member that answers 503 (an in-process stand-in: etcd cannot be
 * made to) ---- */

typedef struct {
  int lfd;
  int served;
} fake_t;

static void *fake_main(void *arg) {
  fake_t *f = arg;
  int c = accept(f->lfd, NULL, NULL);
  if (c < 0) return NULL;
  char buf[8192];
  size_t n = 0;
  for (;;) { /* headers, then Content-Length bytes */
    ssize_t r = read(c, buf + n, sizeof buf - 1 - n);
    if (r <= 0) break;
    n += (size_t)r;
    buf[n] = 0;
    char *end = strstr(buf, "\r\n\r\n");
    char *cl = strcasestr(buf, "content-length:");
    if (end && cl && n >= (size_t)(end + 4 - buf) + (size_t)atoi(cl + 15)) break;
  }
  const char *body = "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\",\"code\":14}";
  char resp[512];
  int m = snprintf(resp, sizeof resp,
                   "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s",
                   strlen(body), body);
  if (write(c, resp, (size_t)m) == m) f->served++;
  close(c);
  return NULL;
}

static void test_http_5xx(void **state) {
  fake_t f = {.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  assert_int_equal(bind(f.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(f.lfd, 4), 0);
  assert_int_equal(getsockname(f.lfd, (struct sockaddr *)&sa, &sl), 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, fake_main, &f), 0);
  char eps[200];
  snprintf(eps, sizeof eps, "http://127.0.0.1:%u,%s", ntohs(sa.sin_port), g_etcd.url);
  rn_etcd_t *e = client(eps, 5000);
  ans_t a;
  get(e, "/5xx", false, &a); /* a 5xx is not retried on the next member... */
  pthread_join(t, NULL);
  close(f.lfd);
  assert_int_equal(f.served, 1);
  assert_int_equal(a.err, RN_ECONTROLPLANE);
  assert_non_null(strstr(a.msg, "no leader"));
  assert_non_null(strstr(a.msg, "503"));
  char ep[64];
  snprintf(ep, sizeof ep, "http://127.0.0.1:%u", ntohs(sa.sin_port));
  assert_non_null(strstr(a.msg, ep));
  get(e, "/5xx", false, &a); /* ...but the next request starts at the next one */
  assert_int_equal(a.err, 0);
  close_client(e);
}

int main(void) {
  if (!rn_etcd_proc_available()) {
    fprintf(stderr, "SKIP: %s is not installed (apt-get install etcd-server)\n", RN_ETCD_BIN);
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  g_dir = rn_test_tmpdir();
  char why[300];
  if (rn_etcd_proc_start(&g_etcd, g_dir, why, sizeof why)) {
    fprintf(stderr, "%s\n", why);
    return 1;
  }
  uv_loop_init(&g_loop);
  rn_thread_mark_loop();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kv),        cmocka_unit_test(test_txn),
      cmocka_unit_test(test_lease),     cmocka_unit_test(test_lease_expiry), cmocka_unit_test(test_watch),
      cmocka_unit_test(test_failover),  cmocka_unit_test(test_http_5xx),  cmocka_unit_test(test_timeout_and_close),
      cmocka_unit_test(test_watch_restart),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  rn_thread_unmark_loop();
  uv_run(&g_loop, UV_RUN_NOWAIT);
  uv_loop_close(&g_loop);
  rn_etcd_proc_stop(&g_etcd, false);
  rn_test_rmtree(g_dir);
  free(g_dir);
  return rc;
}
