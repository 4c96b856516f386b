/*
 * test_s3_objstore.c — the S3 object store (storage/tier/s3.c) against real
 * S3 implementations on loopback, and against failures.
 *
 *   test_s3_objstore s3rver   the shared object-store checks
 *                             (unit/storage/tier/test_objstore_checks.c)
 *                             against s3rver, path-style and virtual-hosted;
 *                             the peer stopped and restarted on its port
 *                             (operations fail, then work again)
 *   test_s3_objstore minio    the same against MinIO, which verifies every
 *                             signature and implements multipart: a 12 MiB
 *                             put_file with 5 MiB parts; a wrong secret key
 *                             -> RN_EOBJSTORE naming SignatureDoesNotMatch,
 *                             not retried; HTTPS with a CA file (a second
 *                             MinIO with a certificate made by openssl)
 *   test_s3_objstore faults   no peer: a closed port -> an error within the
 *                             deadline with the retries counted; a server
 *                             that never answers -> RN_ETIMEDOUT at the
 *                             deadline; a scripted stand-in for connection
 *                             reuse (60 requests, one connection), 503
 *                             SlowDown / 500 / 429 / RequestTimeout retries,
 *                             answers that are not retried, GET length and
 *                             Content-Range checks, LIST XML (entities,
 *                             pages), a failed multipart upload aborted,
 *                             and one in flight at destroy aborted too;
 *                             options and credentials
 *
 * The peers are started by tests/support/s3peer.c (port and data directory
 * chosen at run time, stopped by PID); when one cannot be installed or
 * started here the test exits 77 (skip) saying why. The store gets its own
 * key prefix ("it/"), so LIST also checks the prefix is stripped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <strings.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rn_tier.h"
#include "s3peer.h"
#include "test_objstore_checks.h"
#include "testutil.h"

static rn_s3peer_t g_peer;
static rn_s3peer_kind_t g_kind;
static char *g_tmp;
static bool g_vhost; /* the store under test uses virtual-hosted addressing */
static int g_seq;

static rn_err_t new_store(rn_objstore_t **os, const char *secret, bool vhost) {
  rn_s3_opts_t o;
  rn_s3_opts_default(&o);
  char ep[80];
  /* virtual-hosted: <bucket>.s3.localhost, which libcurl resolves to loopback itself */
  if (vhost)
    snprintf(ep, sizeof ep, "http://s3.localhost:%u", g_peer.port);
  else
    snprintf(ep, sizeof ep, "%s", g_peer.endpoint);
  o.endpoint = ep;
  o.bucket = g_peer.bucket;
  o.prefix = "it/";
  o.path_style = !vhost;
  o.access_key = g_peer.access_key;
  o.secret_key = secret ? secret : g_peer.secret_key;
  o.part_bytes = 5u << 20;
  o.request_timeout_ms = 60000;
  char why[256];
  rn_err_t err = rn_s3_new(&o, os, why, sizeof why);
  if (err) fprintf(stderr, "rn_s3_new: %s\n", why);
  return err;
}

static int setup(void **state) {
  os_fx_t *fx = calloc(1, sizeof *fx);
  if (new_store(&fx->os, NULL, g_vhost)) return -1;
  snprintf(fx->prefix, sizeof fx->prefix, "t%d-%d/", (int)getpid(), ++g_seq);
  snprintf(fx->dir, sizeof fx->dir, "%s", g_tmp);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  os_fx_t *fx = *state;
  rn_objstore_destroy(fx->os);
  free(fx);
  return 0;
}

#define FX ((os_fx_t *)*state)

static void t_put_get_head(void **state) { os_check_put_get_head(FX); }
static void t_ranges(void **state) { os_check_ranges(FX); }
static void t_missing(void **state) { os_check_missing(FX); }
static void t_overwrite_delete(void **state) { os_check_overwrite_delete(FX); }
static void t_list(void **state) { os_check_list(FX); }
static void t_special_keys(void **state) { os_check_special_keys(FX); }
static void t_put_file_small(void **state) {
  os_check_put_file(FX, 0);
  os_check_put_file(FX, 1000);
}
/* 12 MiB with 5 MiB parts: three parts, the last one short */
static void t_put_file_multipart(void **state) {
  os_fx_t *fx = *state;
  rn_objstore_stats_t a, b;
  rn_objstore_stats(fx->os, &a);
  os_check_put_file(fx, 12u << 20);
  rn_objstore_stats(fx->os, &b);
  /* initiate + 3 parts + complete, then HEAD and GETs: at least 5 PUT-side requests */
  assert_true(b.requests[RN_OBJ_PUT] - a.requests[RN_OBJ_PUT] >= 5);
  assert_true(b.bytes_up - a.bytes_up >= (12u << 20));
}
static void t_async_contract(void **state) { os_check_async_contract(FX); }
static void t_many_in_flight(void **state) { os_check_many_in_flight(FX, 60); }
static void t_stats(void **state) { os_check_stats(FX); }
static void t_destroy_in_flight(void **state) { os_check_destroy_in_flight(FX, 40); }

/* A listing of more than one page (1000 keys each): every key, in order. */
static void t_list_pages(void **state) {
  os_fx_t *fx = *state;
  os_res_t x = {0};
  int n = 1100;
  int done = 0, bad = 0;
  char k[64];
  os_res_t *rs = calloc((size_t)n, sizeof *rs);
  for (int i = 0; i < n; i++) {
    snprintf(k, sizeof k, "pages/%05d", i);
    assert_int_equal(rn_objstore_put_mem(fx->os, os_key(fx, k), (const uint8_t *)"x", 1, os_cb(), &rs[i]), 0);
  }
  os_wait_idle(fx->os);
  for (int i = 0; i < n; i++) {
    done += rs[i].calls;
    bad += rs[i].r.err != 0;
    if (rs[i].r.err && bad < 5) fprintf(stderr, "put %d: %s %s\n", i, rn_err_name(rs[i].r.err), rs[i].r.message);
  }
  free(rs);
  assert_int_equal(done, n);
  assert_int_equal(bad, 0);
  if (os_list(fx, "pages/", &x)) fail_msg("list: %s", x.r.message);
  assert_int_equal(x.n, (size_t)n);
  for (int i = 0; i < n; i++) {
    char kk[200];
    snprintf(kk, sizeof kk, "%spages/%05d", fx->prefix, i);
    assert_string_equal(x.keys[i], kk);
  }
  os_res_free(&x);
}


/* The peer stopped and started again on the same port (rn_s3peer_restart,
 * what the outage tests use): while it is down operations fail after their
 * retries, then the same store works again and the data is still there. */
static void t_outage(void **state) {
  os_fx_t *fx = *state;
  os_res_t x = {0};
  assert_int_equal(os_put(fx, "before", "kept", 4, &x), 0);
  rn_s3peer_stop(&g_peer);
  rn_s3_opts_t o;
  rn_s3_opts_default(&o);
  o.endpoint = g_peer.endpoint;
  o.bucket = g_peer.bucket;
  o.prefix = "it/";
  o.path_style = true;
  o.access_key = g_peer.access_key;
  o.secret_key = g_peer.secret_key;
  o.request_timeout_ms = 10000;
  o.max_retries = 2;
  o.backoff_ms = 10;
  rn_objstore_t *quick = NULL;
  char why[1024];
  assert_int_equal(rn_s3_new(&o, &quick, why, sizeof why), 0);
  os_fx_t q = *fx;
  q.os = quick;
  assert_int_equal(os_get(&q, "before", 0, 0, &x), RN_EOBJSTORE);
  assert_int_equal(x.r.attempts, 3);
  /* the long-lived store's pooled connection is dead too */
  if (rn_s3peer_restart(&g_peer, why, sizeof why)) fail_msg("restart: %s", why);
  assert_int_equal(os_get(fx, "before", 0, 0, &x), 0);
  assert_memory_equal(x.data, "kept", 4);
  assert_int_equal(os_get(&q, "before", 0, 0, &x), 0);
  assert_int_equal(os_put(fx, "after", "new", 3, &x), 0);
  os_res_free(&x);
  rn_objstore_destroy(quick);
}

static void t_wrong_secret(void **state) {
  (void)state;
  rn_objstore_t *os = NULL;
  assert_int_equal(new_store(&os, "not-the-secret", false), 0);
  os_fx_t fx = {.os = os};
  snprintf(fx.prefix, sizeof fx.prefix, "wrong/");
  os_res_t x = {0};
  assert_int_equal(os_put(&fx, "k", "v", 1, &x), RN_EOBJSTORE);
  if (!strstr(x.r.message, "SignatureDoesNotMatch")) fail_msg("message: %s", x.r.message);
  assert_true(strstr(x.r.message, "wrong/k") != NULL);
  assert_null(strstr(x.r.message, "not-the-secret"));
  assert_int_equal(x.r.http_status, 403);
  assert_int_equal(x.r.attempts, 1); /* an answer, not an outage: no retry */
  assert_int_equal(os_get(&fx, "k", 0, 0, &x), RN_EOBJSTORE);
  assert_true(strstr(x.r.message, "SignatureDoesNotMatch") != NULL);
  os_res_free(&x);
  rn_objstore_destroy(os);
}


/* HTTPS with a CA file: a second MinIO with a certificate made here. */
static void t_tls(void **state) {
  (void)state;
  char certs[700], dir[700], cmd[2400], why[1024];
  snprintf(certs, sizeof certs, "%s/certs", g_tmp);
  snprintf(dir, sizeof dir, "%s/tlspeer", g_tmp);
  snprintf(cmd, sizeof cmd,
           "mkdir -p '%s' && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
           "-addext subjectAltName=IP:127.0.0.1 -keyout '%s/private.key' -out '%s/public.crt' >'%s/openssl.log' 2>&1",
           certs, certs, certs, g_tmp);
  if (system(cmd) != 0) {
    print_message("no TLS check: openssl could not make a certificate (see %s/openssl.log)\n", g_tmp);
    skip();
  }
  rn_s3peer_t tp;
  if (rn_s3peer_start_tls(&tp, dir, certs, why, sizeof why)) fail_msg("MinIO with TLS: %s", why);
  assert_true(strncmp(tp.endpoint, "https://", 8) == 0);
  char ca[720];
  snprintf(ca, sizeof ca, "%s/public.crt", certs);
  for (int with_ca = 1; with_ca >= 0; with_ca--) {
    rn_s3_opts_t o;
    rn_s3_opts_default(&o);
    o.endpoint = tp.endpoint;
    o.bucket = tp.bucket;
    o.path_style = true;
    o.access_key = tp.access_key;
    o.secret_key = tp.secret_key;
    o.ca_file = with_ca ? ca : NULL;
    o.request_timeout_ms = 30000;
    rn_objstore_t *os = NULL;
    assert_int_equal(rn_s3_new(&o, &os, why, sizeof why), 0);
    os_fx_t fx = {.os = os};
    snprintf(fx.prefix, sizeof fx.prefix, "tls/");
    os_res_t x = {0};
    if (with_ca) {
      if (os_put(&fx, "k", "over tls", 8, &x)) fail_msg("put: %s", x.r.message);
      assert_int_equal(os_get(&fx, "k", 5, 0, &x), 0);
      assert_memory_equal(x.data, "tls", 3);
    } else {
      /* the system's CAs do not know it: refused, and not retried */
      assert_int_equal(os_get(&fx, "k", 0, 0, &x), RN_EOBJSTORE);
      assert_int_equal(x.r.attempts, 1);
    }
    os_res_free(&x);
    rn_objstore_destroy(os);
  }
  rn_s3peer_stop(&tp);
}

/* ---- faults, no peer ------------------------------------------------------------ */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int listen_socket(uint16_t *port, bool do_listen) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t al = sizeof a;
  assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
  *port = ntohs(a.sin_port);
  if (do_listen) assert_int_equal(listen(s, 16), 0);
  return s;
}

/* Options for a store of bucket "b" at 127.0.0.1:port (path-style, test
 * keys), every other option its default; ep (>= 64 bytes) holds the URL. */
static void fake_opts(rn_s3_opts_t *o, char *ep, uint16_t port) {
  rn_s3_opts_default(o);
  snprintf(ep, 64, "http://127.0.0.1:%u", port);
  o->endpoint = ep;
  o->bucket = "b";
  o->path_style = true;
  o->access_key = "AKID";
  o->secret_key = "SECRET";
}

static rn_objstore_t *s3_new_ok(const rn_s3_opts_t *o) {
  rn_objstore_t *os = NULL;
  char why[256];
  assert_int_equal(rn_s3_new(o, &os, why, sizeof why), 0);
  return os;
}

static rn_objstore_t *fault_store(uint16_t port, uint32_t timeout_ms, uint32_t retries) {
  rn_s3_opts_t o;
  char ep[64];
  fake_opts(&o, ep, port);
  o.request_timeout_ms = timeout_ms;
  o.max_retries = retries;
  o.backoff_ms = 20;
  return s3_new_ok(&o);
}

static void t_closed_port(void **state) {
  (void)state;
  uint16_t port;
  int s = listen_socket(&port, false); /* bound, never listening: connections are refused */
  /* backoff 20 ms: the three retries wait at most 20 + 40 + 80 ms, well
   * inside a 2 s deadline, so all four attempts must be made (a retry left
   * waiting for the thread's idle wake-up would run out of time) */
  rn_objstore_t *os = fault_store(port, 2000, 3);
  os_fx_t fx = {.os = os};
  os_res_t x = {0};
  uint64_t t0 = mono_ms();
  rn_err_t err = os_head(&fx, "k", &x);
  uint64_t took = mono_ms() - t0;
  if (err != RN_EOBJSTORE) fail_msg("%s: %s", rn_err_name(err), x.r.message);
  assert_true(strstr(x.r.message, "retries exhausted") != NULL);
  assert_int_equal(x.r.attempts, 4); /* the first and max_retries more */
  assert_true(strstr(x.r.message, "attempts") != NULL);
  assert_null(strstr(x.r.message, "SECRET"));
  /* the property under test: the operation ends by its deadline */
  assert_true(took <= 2000 + 2000);
  rn_objstore_stats_t st;
  rn_objstore_stats(os, &st);
  assert_int_equal(st.requests[RN_OBJ_HEAD], 4);
  assert_int_equal(st.retries[RN_OBJ_HEAD], 3);
  assert_int_equal(st.errors[RN_OBJ_HEAD], 1);
  os_res_free(&x);
  rn_objstore_destroy(os);
  close(s);
}

static void t_no_answer(void **state) {
  (void)state;
  uint16_t port;
  int s = listen_socket(&port, true); /* listening, never accepting: nothing answers */
  rn_objstore_t *os = fault_store(port, 1500, 10);
  os_fx_t fx = {.os = os};
  os_res_t x = {0};
  uint64_t t0 = mono_ms();
  assert_int_equal(os_get(&fx, "k", 0, 10, &x), RN_ETIMEDOUT);
  uint64_t took = mono_ms() - t0;
  assert_true(took >= 1400 && took <= 1500 + 2000);
  assert_true(x.r.attempts >= 1);
  assert_true(strstr(x.r.message, "deadline") != NULL);
  /* the store still works for the next operation (and destroy cancels it) */
  os_res_t y = {0};
  assert_int_equal(rn_objstore_head(os, "k2", os_cb(), &y), 0);
  rn_objstore_destroy(os);
  assert_int_equal(y.calls, 1);
  assert_int_equal(y.r.err, RN_ECANCELED);
  os_res_free(&x);
  close(s);
}


/* ---- a scripted S3 stand-in (in-process, one thread) ------------------------------
 * Answers each request with the next scripted response (then 200 with no
 * body), closing the connection after each unless keepalive; records every
 * request line and counts the connections accepted. */
typedef struct fake_resp {
  int status;
  const char *headers; /* extra header lines, each ending in \r\n */
  const char *body;
} fake_resp_t;

typedef struct fake {
  int lsock;
  uint16_t port;
  pthread_t thr;
  const fake_resp_t *script;
  int nscript, next;
  bool keepalive; /* answer without Connection: close, keep reading the connection */
  int accepts;
  char lines[64][1200];
  int nlines;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* a request line was recorded */
} fake_t;

/* Read one request from c and answer it; false when the connection ended. */
static bool fake_one(fake_t *f, int c) {
  char buf[16384];
  size_t n = 0;
  char *end = NULL;
  while (!end && n < sizeof buf - 1) {
    ssize_t r = read(c, buf + n, sizeof buf - 1 - n);
    if (r <= 0) break;
    n += (size_t)r;
    buf[n] = 0;
    end = strstr(buf, "\r\n\r\n");
  }
  if (!end) return false;
  pthread_mutex_lock(&f->mu);
  if (f->nlines < 64) snprintf(f->lines[f->nlines++], sizeof f->lines[0], "%.*s", (int)strcspn(buf, "\r"), buf);
  fake_resp_t rs = f->next < f->nscript ? f->script[f->next] : (fake_resp_t){200, NULL, NULL};
  f->next++;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  /* the body: Content-Length bytes, read and dropped (status 0: never
   * answer, read until the client gives up on the connection) */
  long long clen = 0;
  for (char *h = buf; h < end; h = strstr(h, "\r\n") + 2)
    if (!strncasecmp(h, "content-length:", 15)) clen = atoll(h + 15);
  long long have = (long long)(n - (size_t)(end + 4 - buf));
  while (have < clen || rs.status == 0) {
    char sink[65536];
    ssize_t r = read(c, sink, sizeof sink);
    if (r <= 0) return false;
    have += r;
  }
  bool head = !strncmp(buf, "HEAD ", 5);
  char out[8192];
  size_t blen = rs.body ? strlen(rs.body) : 0;
  int m = snprintf(out, sizeof out, "HTTP/1.1 %d X\r\n%sContent-Length: %zu\r\n%s\r\n%s", rs.status,
                   rs.headers ? rs.headers : "", blen, f->keepalive ? "" : "Connection: close\r\n",
                   head || !rs.body ? "" : rs.body);
  return write(c, out, (size_t)m) == m && f->keepalive;
}

static void *fake_main(void *arg) {
  fake_t *f = arg;
  for (;;) {
    int c = accept(f->lsock, NULL, NULL);
    if (c < 0) return NULL;
    pthread_mutex_lock(&f->mu);
    f->accepts++;
    pthread_mutex_unlock(&f->mu);
    while (fake_one(f, c)) {
    }
    close(c);
  }
}

static void fake_start(fake_t *f, const fake_resp_t *script, int n) {
  memset(f, 0, sizeof *f);
  f->lsock = listen_socket(&f->port, true);
  f->script = script;
  f->nscript = n;
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  assert_int_equal(pthread_create(&f->thr, NULL, fake_main, f), 0);
}

static void fake_stop(fake_t *f) {
  shutdown(f->lsock, SHUT_RDWR);
  pthread_join(f->thr, NULL);
  close(f->lsock);
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
}

static bool fake_saw(fake_t *f, const char *line_part) {
  pthread_mutex_lock(&f->mu);
  bool found = false;
  for (int i = 0; i < f->nlines && !found; i++) found = strstr(f->lines[i], line_part) != NULL;
  pthread_mutex_unlock(&f->mu);
  return found;
}

/* Wait (bounded: a minute) until a request line containing part arrives. */
static void fake_wait_for(fake_t *f, const char *part) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 60;
  pthread_mutex_lock(&f->mu);
  for (;;) {
    bool found = false;
    for (int i = 0; i < f->nlines && !found; i++) found = strstr(f->lines[i], part) != NULL;
    if (found) break;
    if (pthread_cond_timedwait(&f->cv, &f->mu, &ts)) {
      pthread_mutex_unlock(&f->mu);
      fail_msg("no request with %s within a minute", part);
    }
  }
  pthread_mutex_unlock(&f->mu);
}

#define SLOWDOWN "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"


/* Connection reuse: sequential requests of one store share one connection. */
static void t_connection_reuse(void **state) {
  (void)state;
  fake_t f;
  fake_start(&f, NULL, 0);
  pthread_mutex_lock(&f.mu);
  f.keepalive = true;
  pthread_mutex_unlock(&f.mu);
  rn_objstore_t *os = fault_store(f.port, 20000, 5);
  os_fx_t fx = {.os = os};
  os_res_t x = {0};
  for (int i = 0; i < 20; i++) {
    assert_int_equal(os_put(&fx, "k", "v", 1, &x), 0);
    assert_int_equal(os_head(&fx, "k", &x), 0);
    assert_int_equal(os_del(&fx, "k", &x), 0);
  }
  rn_objstore_destroy(os); /* closes its connections: the server's loop ends */
  fake_stop(&f);
  assert_int_equal(f.next, 60);
  assert_int_equal(f.accepts, 1);
  os_res_free(&x);
}

static void t_retry_statuses(void **state) {
  (void)state;
  static const fake_resp_t script[] = {
      {503, NULL, SLOWDOWN},
      {500, NULL, "<Error><Code>InternalError</Code><Message>oops</Message></Error>"},
      {429, NULL, NULL},
      {400, NULL, "<Error><Code>RequestTimeout</Code><Message>idle</Message></Error>"},
      {200, NULL, "12345"},
      {200, "Last-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n", "12345"},
  };
  fake_t f;
  fake_start(&f, script, 6);
  rn_objstore_t *os = fault_store(f.port, 20000, 5);
  os_fx_t fx = {.os = os};
  os_res_t x = {0};
  if (os_get(&fx, "k", 0, 0, &x)) fail_msg("get: %s", x.r.message);
  assert_int_equal(x.r.attempts, 5);
  assert_int_equal(x.len, 5);
  assert_memory_equal(x.data, "12345", 5);
  rn_objstore_stats_t st;
  rn_objstore_stats(os, &st);
  assert_int_equal(st.retries[RN_OBJ_GET], 4);
  assert_int_equal(st.requests[RN_OBJ_GET], 5);
  assert_int_equal(st.errors[RN_OBJ_GET], 0);
  assert_int_equal(st.bytes_down, 5);
  /* HEAD: size and Last-Modified from the headers */
  if (os_head(&fx, "k", &x)) fail_msg("head: %s", x.r.message);
  assert_int_equal(x.r.object_size, 5);
  assert_int_equal(x.r.mtime_ms, 1700000000000LL);
  assert_true(fake_saw(&f, "HEAD /b/k HTTP/1.1"));
  rn_objstore_destroy(os);
  fake_stop(&f);
  os_res_free(&x);
}


/* Many operations at once while every third answer is a 503: each is called
 * back once and succeeds, and the counters add up to what the server saw. */
static void t_many_with_503s(void **state) {
  (void)state;
  static fake_resp_t script[300];
  for (int i = 0; i < 300; i++)
    script[i] = (i % 3 == 2) ? (fake_resp_t){503, NULL, SLOWDOWN} : (fake_resp_t){200, NULL, NULL};
  fake_t f;
  fake_start(&f, script, 300);
  rn_objstore_t *os = fault_store(f.port, 60000, 30);
  enum { N = 50 };
  os_res_t r[N];
  memset(r, 0, sizeof r);
  char k[32];
  for (int i = 0; i < N; i++) {
    snprintf(k, sizeof k, "m/%d", i);
    assert_int_equal(rn_objstore_put_mem(os, k, (const uint8_t *)"v", 1, os_cb(), &r[i]), 0);
  }
  os_wait_idle(os);
  for (int i = 0; i < N; i++) {
    assert_int_equal(r[i].calls, 1);
    if (r[i].r.err) fail_msg("put %d: %s", i, r[i].r.message);
  }
  rn_objstore_stats_t st;
  rn_objstore_stats(os, &st);
  rn_objstore_destroy(os);
  fake_stop(&f);
  /* every request the server answered was counted, and every 503 was a retry */
  assert_int_equal(st.requests[RN_OBJ_PUT], (uint64_t)f.next);
  assert_int_equal(st.retries[RN_OBJ_PUT], (uint64_t)(f.next / 3));
  assert_int_equal(f.next - f.next / 3, N);
  assert_int_equal(st.errors[RN_OBJ_PUT], 0);
}

static void t_retries_exhausted(void **state) {
  (void)state;
  static const fake_resp_t script[] = {{503, NULL, SLOWDOWN}, {503, NULL, SLOWDOWN}, {503, NULL, SLOWDOWN}};
  fake_t f;
  fake_start(&f, script, 3);
  rn_objstore_t *os = fault_store(f.port, 20000, 2);
  os_fx_t fx = {.os = os};
  os_res_t x = {0};
  assert_int_equal(os_get(&fx, "k", 0, 0, &x), RN_EOBJSTORE);
  assert_int_equal(x.r.attempts, 3);
  assert_int_equal(x.r.http_status, 503);
  assert_true(strstr(x.r.message, "SlowDown: Please reduce your request rate.") != NULL);
  assert_true(strstr(x.r.message, "retries exhausted") != NULL);
  rn_objstore_destroy(os);
  fake_stop(&f);
  os_res_free(&x);
}

static void t_not_retried(void **state) {
  (void)state;
  static const fake_resp_t script[] = {
      {403, NULL, "<Error><Code>AccessDenied</Code><Message>Access &amp; more &lt;denied&gt;</Message></Error>"},
      {404, NULL, "<Error><Code>NoSuchBucket</Code><Message>no bucket</Message></Error>"},
      {404, NULL, "<Error><Code>NoSuchKey</Code><Message>no key</Message></Error>"},
      {204, NULL, NULL},
      {404, NULL, NULL},
      {404, NULL, "<Error><Code>NoSuchBucket</Code><Message>no bucket</Message></Error>"},
  };
  fake_t f;
  fake_start(&f, script, 6);
  rn_objstore_t *os = fault_store(f.port, 20000, 5);
  os_fx_t fx = {.os = os};
  os_res_t x = {0};
  assert_int_equal(os_put(&fx, "k", "v", 1, &x), RN_EOBJSTORE);
  assert_int_equal(x.r.attempts, 1);
  if (!strstr(x.r.message, "HTTP 403 AccessDenied: Access & more <denied>")) fail_msg("%s", x.r.message);
  assert_int_equal(os_get(&fx, "k", 0, 0, &x), RN_EOBJSTORE); /* the bucket is missing, not the key */
  assert_int_equal(os_get(&fx, "k", 0, 0, &x), RN_ENOENT);
  assert_int_equal(os_del(&fx, "k", &x), 0);                  /* 204 */
  assert_int_equal(os_del(&fx, "k", &x), 0);                  /* 404: already gone */
  assert_int_equal(os_del(&fx, "k", &x), RN_EOBJSTORE);       /* but not when the bucket is missing */
  assert_true(strstr(x.r.message, "NoSuchBucket") != NULL);
  rn_objstore_destroy(os);
  fake_stop(&f);
  os_res_free(&x);
}

static void t_get_checked(void **state) {
  (void)state;
  static const fake_resp_t script[] = {
      {206, "Content-Range: bytes 10-19/100\r\n", "0123456789"},    /* right */
      {206, "Content-Range: bytes 10-19/100\r\n", "012345678"},     /* one short of its own header */
      {206, "Content-Range: bytes 10-18/100\r\n", "012345678"},     /* one short of what was asked */
      {206, NULL, "0123456789"},                                    /* no Content-Range */
      {206, "Content-Range: bytes 4-9/10\r\n", "456789"},           /* from 5 (asked from 4): the end */
      {206, "Content-Range: bytes 9-9/10\r\n", "9"},                /* from 10 == size: empty */
      {416, "Content-Range: bytes */10\r\n", "<Error><Code>InvalidRange</Code></Error>"}, /* from 11 */
  };
  fake_t f;
  fake_start(&f, script, 7);
  rn_objstore_t *os = fault_store(f.port, 20000, 5);
  os_fx_t fx = {.os = os};
  os_res_t x = {0};
  assert_int_equal(os_get(&fx, "k", 10, 10, &x), 0);
  assert_int_equal(x.len, 10);
  assert_int_equal(x.r.object_size, 100);
  assert_true(fake_saw(&f, "GET /b/k HTTP/1.1"));
  assert_int_equal(os_get(&fx, "k", 10, 10, &x), RN_ECORRUPT);
  assert_int_equal(os_get(&fx, "k", 10, 10, &x), RN_ECORRUPT);
  assert_int_equal(os_get(&fx, "k", 10, 10, &x), RN_ECORRUPT);
  assert_int_equal(os_get(&fx, "k", 5, 0, &x), 0);
  assert_int_equal(x.len, 5);
  assert_memory_equal(x.data, "56789", 5);
  assert_int_equal(os_get(&fx, "k", 10, 0, &x), 0);
  assert_int_equal(x.len, 0);
  assert_int_equal(os_get(&fx, "k", 11, 0, &x), RN_ECORRUPT);
  rn_objstore_destroy(os);
  fake_stop(&f);
  os_res_free(&x);
}

static void t_list_parse(void **state) {
  (void)state;
  static const fake_resp_t script[] = {
      {200, NULL,
       "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
       "<Name>b</Name><Prefix>p/</Prefix><IsTruncated>true</IsTruncated>"
       "<NextContinuationToken>tok+/=&amp;1</NextContinuationToken>"
       "<Contents><Key>p/a&amp;b&lt;c&gt;&quot;&apos;</Key><LastModified>2023-11-14T22:13:20.000Z</LastModified>"
       "<ETag>&quot;x&quot;</ETag><Size>12</Size></Contents>"
       "<Contents><Key>p/&#233;t&#xE9;</Key><LastModified>2023-11-14T22:13:21.500Z</LastModified><Size>0</Size>"
       "</Contents></ListBucketResult>"},
      {200, NULL,
       "<ListBucketResult><IsTruncated>false</IsTruncated>"
       "<Contents><Key>p/z</Key><LastModified>2023-11-14T22:13:22Z</LastModified><Size>7</Size></Contents>"
       "</ListBucketResult>"},
  };
  fake_t f;
  fake_start(&f, script, 2);
  rn_objstore_t *os = fault_store(f.port, 20000, 5);
  os_fx_t fx = {.os = os};
  os_res_t x = {0};
  if (os_list(&fx, "p/", &x)) fail_msg("list: %s", x.r.message);
  assert_int_equal(x.n, 3);
  /* sorted bytewise: "p/a..." < "p/z" < "p/\xc3\xa9..." */
  assert_string_equal(x.keys[0], "p/a&b<c>\"'");
  assert_string_equal(x.keys[1], "p/z");
  assert_string_equal(x.keys[2], "p/\xc3\xa9t\xc3\xa9");
  assert_int_equal(x.sizes[0], 12);
  assert_int_equal(x.mtimes[0], 1700000000000LL);
  assert_int_equal(x.mtimes[2], 1700000001500LL);
  assert_int_equal(x.r.attempts, 2);
  assert_true(fake_saw(&f, "GET /b?list-type=2&prefix=p%2F HTTP/1.1"));
  assert_true(fake_saw(&f, "GET /b?continuation-token=tok%2B%2F%3D%261&list-type=2&prefix=p%2F HTTP/1.1"));
  rn_objstore_destroy(os);
  fake_stop(&f);
  os_res_free(&x);
}

static void t_multipart_abort(void **state) {
  (void)state;
  static const fake_resp_t script[] = {
      {200, NULL, "<InitiateMultipartUploadResult><UploadId>U-1/x</UploadId></InitiateMultipartUploadResult>"},
      {200, "ETag: \"e1\"\r\n", NULL},
      {400, NULL, "<Error><Code>EntityTooSmall</Code><Message>small</Message></Error>"},
      {204, NULL, NULL}, /* the abort */
  };
  fake_t f;
  fake_start(&f, script, 4);
  rn_s3_opts_t o;
  char ep[64];
  fake_opts(&o, ep, f.port);
  o.part_bytes = 5u << 20;
  rn_objstore_t *os = s3_new_ok(&o);
  char path[700];
  snprintf(path, sizeof path, "%s/mp", g_tmp);
  FILE *fp = fopen(path, "w");
  for (int i = 0; i < (11 << 20) / 4096; i++) {
    char blk[4096];
    memset(blk, 'a' + i % 26, sizeof blk);
    fwrite(blk, 1, sizeof blk, fp);
  }
  fclose(fp);
  os_fx_t fx = {.os = os};
  os_res_t x = {0};
  assert_int_equal(os_put_file(&fx, "big", path, 11u << 20, &x), RN_EOBJSTORE);
  assert_true(strstr(x.r.message, "EntityTooSmall") != NULL);
  assert_true(fake_saw(&f, "POST /b/big?uploads= HTTP/1.1"));
  assert_true(fake_saw(&f, "PUT /b/big?partNumber=1&uploadId=U-1%2Fx HTTP/1.1"));
  assert_true(fake_saw(&f, "PUT /b/big?partNumber=2&uploadId=U-1%2Fx HTTP/1.1"));
  assert_true(fake_saw(&f, "DELETE /b/big?uploadId=U-1%2Fx HTTP/1.1"));
  assert_false(fake_saw(&f, "partNumber=3"));
  rn_objstore_destroy(os);
  fake_stop(&f);
  os_res_free(&x);
}


/* Destroy while a multipart upload is in flight: the callback is canceled
 * and the upload is aborted on the store before destroy returns. */
static void t_destroy_aborts_multipart(void **state) {
  (void)state;
  static const fake_resp_t script[] = {
      {200, NULL, "<InitiateMultipartUploadResult><UploadId>U-2</UploadId></InitiateMultipartUploadResult>"},
      {0, NULL, NULL},   /* part 1: never answered */
      {204, NULL, NULL}, /* the abort */
  };
  fake_t f;
  fake_start(&f, script, 3);
  rn_s3_opts_t o;
  char ep[64];
  fake_opts(&o, ep, f.port);
  o.part_bytes = 5u << 20;
  rn_objstore_t *os = s3_new_ok(&o);
  char path[700];
  snprintf(path, sizeof path, "%s/mp2", g_tmp);
  FILE *fp = fopen(path, "w");
  static char blk[1 << 20];
  for (int i = 0; i < 11; i++) fwrite(blk, 1, sizeof blk, fp);
  fclose(fp);
  os_res_t x = {0};
  assert_int_equal(rn_objstore_put_file(os, "big2", path, 11u << 20, os_cb(), &x), 0);
  fake_wait_for(&f, "partNumber=1");
  rn_objstore_destroy(os);
  assert_int_equal(x.calls, 1);
  assert_int_equal(x.r.err, RN_ECANCELED);
  assert_true(fake_saw(&f, "DELETE /b/big2?uploadId=U-2 HTTP/1.1"));
  fake_stop(&f);
}

static void t_options(void **state) {
  (void)state;
  rn_s3_opts_t o;
  rn_s3_opts_default(&o);
  rn_objstore_t *os = NULL;
  char why[512];
  assert_int_equal(rn_s3_new(&o, &os, why, sizeof why), RN_EINVAL); /* no bucket */
  assert_true(strstr(why, "bucket") != NULL);
  o.bucket = "b";
  o.endpoint = "ftp://x";
  o.access_key = o.secret_key = "k";
  assert_int_equal(rn_s3_new(&o, &os, why, sizeof why), RN_EINVAL);
  o.endpoint = "http://127.0.0.1:1/path";
  assert_int_equal(rn_s3_new(&o, &os, why, sizeof why), RN_EINVAL);
  o.endpoint = "http://127.0.0.1:1";
  o.part_bytes = 1 << 20;
  assert_int_equal(rn_s3_new(&o, &os, why, sizeof why), RN_EINVAL);
  assert_true(strstr(why, "part") != NULL);
  o.part_bytes = 0;
  /* credentials: none anywhere -> refused, naming where it looked */
  o.access_key = o.secret_key = NULL;
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  char cred[700];
  snprintf(cred, sizeof cred, "%s/credentials", g_tmp);
  FILE *fp = fopen(cred, "w");
  fputs("[default]\naws_access_key_id = FROMFILE\n\n[other]\n aws_access_key_id=OTHERKEY\naws_secret_access_key = "
        "othersecret\naws_session_token=tok\n",
        fp);
  fclose(fp);
  o.credentials_file = cred;
  assert_int_equal(rn_s3_new(&o, &os, why, sizeof why), RN_EINVAL); /* [default] has no secret */
  assert_true(strstr(why, "credentials") != NULL);
  o.profile = "other";
  assert_int_equal(rn_s3_new(&o, &os, why, sizeof why), 0);
  rn_objstore_destroy(os);
  o.profile = "missing";
  assert_int_equal(rn_s3_new(&o, &os, why, sizeof why), RN_EINVAL);
  assert_null(strstr(why, "othersecret"));
  /* the environment comes before the file */
  setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
  assert_int_equal(rn_s3_new(&o, &os, why, sizeof why), 0);
  rn_objstore_destroy(os);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  g_tmp = rn_test_tmpdir();
  int rc;
  if (!strcmp(mode, "faults")) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_closed_port),
        cmocka_unit_test(t_no_answer),
        cmocka_unit_test(t_connection_reuse),
        cmocka_unit_test(t_retry_statuses),
        cmocka_unit_test(t_retries_exhausted),
        cmocka_unit_test(t_many_with_503s),
        cmocka_unit_test(t_not_retried),
        cmocka_unit_test(t_get_checked),
        cmocka_unit_test(t_list_parse),
        cmocka_unit_test(t_multipart_abort),
        cmocka_unit_test(t_destroy_aborts_multipart),
        cmocka_unit_test(t_options),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rn_test_rmtree(g_tmp);
    free(g_tmp);
    return rc;
  }
  if (strcmp(mode, "s3rver") && strcmp(mode, "minio")) {
    fprintf(stderr, "usage: test_s3_objstore s3rver|minio|faults\n");
    return 2;
  }
  g_kind = !strcmp(mode, "minio") ? RN_S3PEER_MINIO : RN_S3PEER_S3RVER;
  char dir[600], why[1024];
  snprintf(dir, sizeof dir, "%s/peer", g_tmp);
  if (rn_s3peer_start(&g_peer, g_kind, dir, why, sizeof why)) {
    printf("SKIP: %s\n", why);
    rn_test_rmtree(g_tmp);
    free(g_tmp);
    return 77;
  }
  const struct CMUnitTest tests[] = {
      T(t_put_get_head), T(t_ranges), T(t_missing), T(t_overwrite_delete), T(t_list), T(t_special_keys),
      T(t_put_file_small), T(t_put_file_multipart), T(t_async_contract), T(t_many_in_flight), T(t_stats),
      T(t_destroy_in_flight), T(t_list_pages), T(t_outage),
  };
  rc = cmocka_run_group_tests_name("path-style", tests, NULL, NULL);
  if (g_kind == RN_S3PEER_S3RVER) {
    /* s3rver also answers virtual-hosted requests (<bucket>.s3.localhost) */
    g_vhost = true;
    const struct CMUnitTest vh[] = {T(t_put_get_head), T(t_ranges), T(t_list), T(t_special_keys)};
    rc |= cmocka_run_group_tests_name("virtual-hosted", vh, NULL, NULL);
    g_vhost = false;
  } else {
    const struct CMUnitTest sig[] = {cmocka_unit_test(t_wrong_secret), cmocka_unit_test(t_tls)};
    rc |= cmocka_run_group_tests_name("signatures", sig, NULL, NULL);
  }
  rn_s3peer_stop(&g_peer);
  if (rc)
    fprintf(stderr, "kept %s (the peer's log: %s)\n", g_tmp, g_peer.log_path);
  else
    rn_test_rmtree(g_tmp);
  free(g_tmp);
  return rc;
}
