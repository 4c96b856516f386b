/*
 * test_http_server.c — the HTTP transport (broker/http_*.c) in process,
 * behind a test router installed with rn_server_set_http_router: the server
 * and its engine run on a libuv loop in a second thread; the test talks to
 * it over loopback with the blocking clients of httpclient.h.
 *
 * The router answers some requests at once (/echo, /big; /own hands its
 * body over with rn_http_reply_owned), some from a later loop
 * iteration (/later), some only when the test's shutdown releases them
 * (/hold), so the tests can check that answers given out of order still go
 * out in request order on an HTTP/1.1 connection, that HTTP/2 streams are
 * independent, that bodies (chunked, 100-continue, multi-megabyte over
 * HTTP/2 flow control) arrive intact, and that shutdown answers requests
 * in flight before closing. No sleeps: every wait is on a response, a
 * close, or the loop thread's end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rn_core.h"
#include "httpclient.h"
#include "server.h"
#include "testutil.h"

#define MAX_HELD 64
#define LOG_MAX 256

typedef struct held {
  rn_http_reply_fn reply;
  void *ctx;
  const rn_http_req_t *req; /* the transport's until the reply */
  char key[32];
} held_t;

typedef struct later {
  uv_timer_t timer;
  rn_http_reply_fn reply;
  void *ctx;
  struct later *next;
} later_t;

typedef struct fx {
  char *dir;
  rn_config_t cfg;
  uv_loop_t loop;
  rn_core_t *eng;
  rn_server_t *srv;
  uv_async_t async;
  uv_timer_t release_timer;
  pthread_t thread;
  uint16_t port;
  bool done;
  /* loop thread only while the loop runs; read by the test after the join */
  held_t held[MAX_HELD];
  int nheld;
  later_t *laters;
  char log[LOG_MAX][32]; /* the order in which the router answered */
  int nlog;
} fx_t;

static const rn_http_header_t k_text[] = {{"Content-Type", "text/plain"}};

static void log_answer(fx_t *fx, const char *what) {
  if (fx->nlog < LOG_MAX) snprintf(fx->log[fx->nlog++], sizeof fx->log[0], "%s", what);
}

static void reply_text(rn_http_reply_fn reply, void *ctx, int status, const char *text) {
  reply(ctx, status, k_text, 1, (const uint8_t *)text, strlen(text));
}

static void on_later(uv_timer_t *t) {
  later_t *l = (later_t *)t;
  fx_t *fx = t->data;
  log_answer(fx, "later");
  reply_text(l->reply, l->ctx, 200, "later");
  uv_close((uv_handle_t *)t, NULL); /* freed at the end (fx->laters) */
}

static void router(void *arg, const rn_http_req_t *req, rn_http_reply_fn reply, void *ctx) {
  fx_t *fx = arg;
  if (strcmp(req->path, "/echo") == 0) {
    char ver[8], n[24];
    snprintf(ver, sizeof ver, "%d", req->http_version);
    snprintf(n, sizeof n, "%zu", req->nheaders);
    const char *foo = rn_http_header(req, "x-foo");
    rn_http_header_t h[] = {
        {"Content-Type", "application/octet-stream"},
        {"x-method", req->method},
        {"x-path", req->path},
        {"x-query", req->query},
        {"x-version", ver},
        {"x-authority", req->authority},
        {"x-tls", req->tls ? "1" : "0"},
        {"x-foo", foo != NULL ? foo : "(none)"},
        {"x-nheaders", n},
    };
    log_answer(fx, "echo");
    reply(ctx, 200, h, sizeof h / sizeof h[0], req->body, req->body_len);
  } else if (strcmp(req->path, "/later") == 0 || strcmp(req->path, "/reserve") == 0) {
    if (req->path[1] == 'r') { /* the answer may be this large: routed one at a time */
      log_answer(fx, "reserve");
      rn_http_reserve(req, ctx, (size_t)strtoull(req->query, NULL, 10));
    }
    later_t *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->reply = reply;
    l->ctx = ctx;
    l->next = fx->laters;
    fx->laters = l;
    uv_timer_init(&fx->loop, &l->timer);
    l->timer.data = fx;
    uv_timer_start(&l->timer, on_later, 0, 0); /* the next loop iteration */
  } else if (strcmp(req->path, "/hold") == 0) {
    assert_true(fx->nheld < MAX_HELD);
    held_t *h = &fx->held[fx->nheld++];
    h->reply = reply;
    h->ctx = ctx;
    h->req = req;
    snprintf(h->key, sizeof h->key, "%s", req->query);
  } else if (strcmp(req->path, "/big") == 0) {
    size_t n = (size_t)strtoull(req->query, NULL, 10);
    uint8_t *b = malloc(n + 1);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(i % 251);
    reply(ctx, 200, NULL, 0, b, n);
    free(b);
  } else if (strcmp(req->path, "/own") == 0) { /* /big, the body handed over (rn_http_reply_owned) */
    assert_non_null(req->reply_owned);
    size_t n = (size_t)strtoull(req->query, NULL, 10);
    uint8_t *b = n ? malloc(n) : NULL;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(i % 251);
    rn_http_reply_owned(req, reply, ctx, 200, k_text, 1, b, n);
  } else if (strcmp(req->path, "/status") == 0) {
    reply_text(reply, ctx, atoi(req->query), "status");
  } else if (strcmp(req->path, "/apphdr") == 0) {
    rn_http_header_t h[] = {{"x-amzn-RequestId", "app-request-id"},
                            {"Connection", "close"},
                            {"Content-Length", "999"},
                            {"Bad\r\nName", "x"},
                            {"x-ok", "yes"}};
    reply(ctx, 200, h, sizeof h / sizeof h[0], (const uint8_t *)"app", 3);
  } else {
    rn_server_http_builtin_router(fx->srv, req, reply, ctx);
  }
}

/* ---- the loop thread --------------------------------------------------------------- */

static void on_done(rn_server_t *srv, void *arg) {
  (void)srv;
  fx_t *fx = arg;
  fx->done = true;
  uv_close((uv_handle_t *)&fx->async, NULL);
  uv_close((uv_handle_t *)&fx->release_timer, NULL);
  uv_stop(&fx->loop);
}

static void on_release(uv_timer_t *t) {
  fx_t *fx = t->data;
  for (int i = 0; i < fx->nheld; i++) {
    /* Handed over: a request whose client vanished frees it as well (ASan). */
    char *text = malloc(64);
    assert_non_null(text);
    int n = snprintf(text, 64, "held %s", fx->held[i].key);
    rn_http_reply_owned(fx->held[i].req, fx->held[i].reply, fx->held[i].ctx, 200, k_text, 1, (uint8_t *)text, (size_t)n);
  }
  fx->nheld = 0;
}

/* The test asked for shutdown: begin it, and answer the held requests a
 * little later, while the server drains. */
static void on_async(uv_async_t *a) {
  fx_t *fx = a->data;
  rn_server_shutdown(fx->srv, on_done, fx);
  uv_timer_start(&fx->release_timer, on_release, 20, 0);
}

static void *loop_main(void *arg) {
  fx_t *fx = arg;
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  return NULL;
}

static int start(void **state, const char *const *sets) {
  fx_t *fx = calloc(1, sizeof *fx);
  if (fx == NULL) return -1;
  fx->dir = rn_test_tmpdir();
  rn_config_init(&fx->cfg);
  char why[512];
  char data[600];
  snprintf(data, sizeof data, "%s/data", fx->dir);
  if (rn_config_set(&fx->cfg, "data_dir", data, NULL, why, sizeof why) ||
      rn_config_set(&fx->cfg, "listen", "127.0.0.1:0", NULL, why, sizeof why) ||
      rn_config_set(&fx->cfg, "http_listen", "127.0.0.1:0", NULL, why, sizeof why)) {
    fprintf(stderr, "%s\n", why);
    return -1;
  }
  for (int i = 0; sets && sets[i]; i += 2)
    if (rn_config_set(&fx->cfg, sets[i], sets[i + 1], NULL, why, sizeof why) != 0) {
      fprintf(stderr, "%s\n", why);
      return -1;
    }
  if (uv_loop_init(&fx->loop) != 0) return -1;
  rn_core_opts_t eo;
  rn_core_opts_default(&eo);
  eo.loop = &fx->loop;
  eo.data_dir = fx->cfg.data_dir;
  if (rn_server_open_engine(&eo, &fx->eng, why, sizeof why) != 0) {
    fprintf(stderr, "engine: %s\n", why);
    return -1;
  }
  if (rn_server_bind(&fx->loop, &fx->cfg, &fx->srv, why, sizeof why) != 0 ||
      rn_server_start(fx->srv, fx->eng, why, sizeof why) != 0) {
    fprintf(stderr, "server: %s\n", why);
    return -1;
  }
  rn_server_set_http_router(fx->srv, router, fx);
  fx->port = rn_server_http_port(fx->srv);
  uv_async_init(&fx->loop, &fx->async, on_async);
  fx->async.data = fx;
  uv_timer_init(&fx->loop, &fx->release_timer);
  fx->release_timer.data = fx;
  if (pthread_create(&fx->thread, NULL, loop_main, fx) != 0) return -1;
  *state = fx;
  return 0;
}

/* Shut the server down (answering held requests meanwhile) and wait. */
static void stop_server(fx_t *fx) {
  if (fx->srv == NULL) return;
  uv_async_send(&fx->async);
  pthread_join(fx->thread, NULL);
  assert_true(fx->done);
  rn_server_destroy(fx->srv);
  fx->srv = NULL;
  assert_int_equal(rn_core_close(fx->eng), 0);
  while (fx->laters != NULL) {
    later_t *l = fx->laters;
    fx->laters = l->next;
    free(l);
  }
  uv_run(&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(&fx->loop), 0);
}

static int setup(void **state) { return start(state, NULL); }

static int setup_small(void **state) {
  static const char *const sets[] = {"http_max_body_bytes",         "1MiB", "http_max_header_bytes", "4KiB",
                                     "max_inflight_per_connection", "4",    NULL};
  return start(state, sets);
}

/* TLS with a certificate made now by the openssl CLI (skipped without it). */
static int setup_tls(void **state) {
  if (!rn_hc_have("openssl") || !rn_hc_have("curl")) {
    *state = NULL;
    return 0;
  }
  char *dir = rn_test_tmpdir();
  char cert[600], key[600];
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  const char *const gen[] = {"openssl", "req",    "-x509", "-newkey", "ec",          "-pkeyopt", "ec_paramgen_curve:prime256v1",
                             "-nodes",  "-keyout", key,     "-out",    cert,          "-days",    "2",
                             "-subj",   "/CN=localhost", NULL};
  char out[4096];
  int rc = rn_hc_run(gen, out, sizeof out) == 0 ? 0 : -1;
  const char *const sets[] = {"http_tls_cert", cert, "http_tls_key", key, NULL};
  if (rc == 0) rc = start(state, sets); /* the server reads the PEM files here */
  rn_test_rmtree(dir);
  free(dir);
  return rc;
}

static int teardown(void **state) {
  fx_t *fx = *state;
  if (fx == NULL) return 0;
  stop_server(fx);
  rn_config_free(&fx->cfg);
  rn_test_rmtree(fx->dir);
  free(fx->dir);
  free(fx);
  return 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

static void read_ok(rn_hc_t *c, rn_hc_resp_t *r, int status) {
  assert_int_equal(rn_hc_read(c, r), 0);
  if (r->status != status) print_message("status %d, body %s\n", r->status, r->body ? (char *)r->body : "");
  assert_int_equal(r->status, status);
}

static void assert_transport_headers(const rn_hc_resp_t *r) {
  const char *rid = rn_hc_resp_header(r, "x-amzn-requestid");
  assert_non_null(rid);
  assert_int_equal(strlen(rid), 36);
  assert_int_equal(rid[14], '4'); /* version-4 shape */
  assert_non_null(rn_hc_resp_header(r, "date"));
  assert_non_null(strstr(rn_hc_resp_header(r, "date"), " GMT"));
}

/* ---- HTTP/1.1 ------------------------------------------------------------------------- */

/* Three requests in one write: the router answers the second and third at
 * once and the first a loop iteration later; the wire order is the request
 * order. */
static void test_h1_pipeline_order(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  assert_int_equal(rn_hc_sendf(&c,
                               "GET /later HTTP/1.1\r\nHost: a\r\n\r\n"
                               "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
                               "GET /echo?q=1 HTTP/1.1\r\nHost: b:99\r\nX-Foo:  bar  \r\n\r\n"),
                   0);
  rn_hc_resp_t r1, r2, r3;
  read_ok(&c, &r1, 200);
  assert_string_equal((char *)r1.body, "later");
  read_ok(&c, &r2, 200);
  assert_string_equal((char *)r2.body, "xyz");
  assert_string_equal(rn_hc_resp_header(&r2, "x-method"), "POST");
  assert_string_equal(rn_hc_resp_header(&r2, "x-version"), "11");
  read_ok(&c, &r3, 200);
  assert_int_equal(r3.body_len, 0);
  assert_string_equal(rn_hc_resp_header(&r3, "x-query"), "q=1");
  assert_string_equal(rn_hc_resp_header(&r3, "x-authority"), "b:99");
  assert_string_equal(rn_hc_resp_header(&r3, "x-foo"), "bar");
  assert_string_equal(rn_hc_resp_header(&r3, "x-tls"), "0");
  assert_true(r1.keep_alive && r2.keep_alive && r3.keep_alive);
  assert_transport_headers(&r1);
  assert_transport_headers(&r2);
  assert_string_not_equal(rn_hc_resp_header(&r1, "x-amzn-requestid"), rn_hc_resp_header(&r2, "x-amzn-requestid"));
  assert_string_not_equal(rn_hc_resp_header(&r2, "x-amzn-requestid"), rn_hc_resp_header(&r3, "x-amzn-requestid"));
  rn_hc_resp_free(&r1);
  rn_hc_resp_free(&r2);
  rn_hc_resp_free(&r3);
  rn_hc_close(&c);
  stop_server(fx);
  /* The router answered out of order: both echoes before the later. */
  assert_true(fx->nlog >= 3);
  assert_string_equal(fx->log[0], "echo");
  assert_string_equal(fx->log[1], "echo");
  assert_string_equal(fx->log[2], "later");
}

/* A chunked body split across writes, chunk extensions and a trailer; the
 * connection stays usable afterwards. */
static void test_h1_chunked(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  assert_int_equal(rn_hc_sendf(&c, "PUT /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"), 0);
  assert_int_equal(rn_hc_sendf(&c, "lo\r\n1;ext=1\r\n \r\n"), 0);
  assert_int_equal(rn_hc_sendf(&c, "6\r\nworld!\r\n0\r\nX-Trailer: t\r\n\r\n"), 0);
  rn_hc_resp_t r;
  read_ok(&c, &r, 200);
  assert_string_equal((char *)r.body, "hello world!");
  assert_string_equal(rn_hc_resp_header(&r, "content-length"), "12");
  rn_hc_resp_free(&r);
  /* A large chunked body: 3 MiB in 64 KiB chunks. */
  size_t total = 3u << 20, chunk = 65536;
  uint8_t *buf = malloc(chunk);
  assert_non_null(buf);
  assert_int_equal(rn_hc_sendf(&c, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
  for (size_t off = 0; off < total; off += chunk) {
    for (size_t i = 0; i < chunk; i++) buf[i] = (uint8_t)((off + i) % 253);
    assert_int_equal(rn_hc_sendf(&c, "%zx\r\n", chunk), 0);
    assert_int_equal(rn_hc_send(&c, buf, chunk), 0);
    assert_int_equal(rn_hc_send(&c, "\r\n", 2), 0);
  }
  assert_int_equal(rn_hc_sendf(&c, "0\r\n\r\n"), 0);
  read_ok(&c, &r, 200);
  assert_int_equal(r.body_len, total);
  for (size_t i = 0; i < total; i++)
    if (r.body[i] != (uint8_t)(i % 253)) fail_msg("byte %zu differs", i);
  rn_hc_resp_free(&r);
  free(buf);
  rn_hc_close(&c);
}

static void test_h1_expect_continue(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  assert_int_equal(rn_hc_sendf(&c, "PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"), 0);
  rn_hc_resp_t r;
  read_ok(&c, &r, 100);
  rn_hc_resp_free(&r);
  assert_int_equal(rn_hc_send(&c, "body", 4), 0);
  read_ok(&c, &r, 200);
  assert_string_equal((char *)r.body, "body");
  rn_hc_resp_free(&r);
  /* Behind a request still at the router, the 100 waits its turn. */
  assert_int_equal(rn_hc_sendf(&c,
                               "GET /later HTTP/1.1\r\nHost: a\r\n\r\n"
                               "PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
                   0);
  read_ok(&c, &r, 200);
  assert_string_equal((char *)r.body, "later");
  rn_hc_resp_free(&r);
  read_ok(&c, &r, 100);
  rn_hc_resp_free(&r);
  assert_int_equal(rn_hc_send(&c, "ok", 2), 0);
  read_ok(&c, &r, 200);
  assert_string_equal((char *)r.body, "ok");
  rn_hc_resp_free(&r);
  rn_hc_close(&c);
}

static void test_h1_versions_and_head(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  rn_hc_resp_t r;
  /* HTTP/1.0 without keep-alive: answered, then closed. */
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  assert_int_equal(rn_hc_sendf(&c, "GET /echo HTTP/1.0\r\n\r\n"), 0);
  read_ok(&c, &r, 200);
  assert_false(r.keep_alive);
  rn_hc_resp_free(&r);
  assert_true(rn_hc_wait_closed(&c));
  rn_hc_close(&c);
  /* HTTP/1.0 with keep-alive: two requests. */
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(rn_hc_sendf(&c, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0);
    read_ok(&c, &r, 200);
    assert_true(r.keep_alive);
    rn_hc_resp_free(&r);
  }
  /* Connection: close from an HTTP/1.1 client. */
  assert_int_equal(rn_hc_sendf(&c, "GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), 0);
  read_ok(&c, &r, 200);
  assert_false(r.keep_alive);
  rn_hc_resp_free(&r);
  assert_true(rn_hc_wait_closed(&c));
  rn_hc_close(&c);
  /* HEAD: the length of the body, no body; an absolute-form target. */
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  c.next_head = true;
  assert_int_equal(rn_hc_sendf(&c, "HEAD /big?1000 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
  read_ok(&c, &r, 200);
  assert_string_equal(rn_hc_resp_header(&r, "content-length"), "1000");
  assert_int_equal(r.body_len, 0);
  rn_hc_resp_free(&r);
  assert_int_equal(rn_hc_sendf(&c, "GET http://example.test:8080/echo?x=y HTTP/1.1\r\n\r\n"), 0);
  read_ok(&c, &r, 200);
  assert_string_equal(rn_hc_resp_header(&r, "x-path"), "/echo");
  assert_string_equal(rn_hc_resp_header(&r, "x-query"), "x=y");
  assert_string_equal(rn_hc_resp_header(&r, "x-authority"), "example.test:8080");
  rn_hc_resp_free(&r);
  /* 204 carries no Content-Length; a bad status from the router is a 500. */
  assert_int_equal(rn_hc_sendf(&c, "GET /status?204 HTTP/1.1\r\nHost: a\r\n\r\nGET /status?42 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
  read_ok(&c, &r, 204);
  assert_null(rn_hc_resp_header(&r, "content-length"));
  rn_hc_resp_free(&r);
  read_ok(&c, &r, 500);
  rn_hc_resp_free(&r);
  rn_hc_close(&c);
}

/* An owned reply (rn_http_reply_owned) over HTTP/1.1: a large body (its own
 * output chunk), a small one (inlined with the head), none, and HEAD; over
 * HTTP/2 in test_h2_concurrent, over TLS in test_tls_bodies. */
static void test_h1_owned_reply(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  rn_hc_resp_t r;
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  static const size_t sizes[] = {3000000, 100, 16384, 16385, 0};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    assert_int_equal(rn_hc_sendf(&c, "GET /own?%zu HTTP/1.1\r\nHost: a\r\n\r\n", sizes[k]), 0);
    read_ok(&c, &r, 200);
    assert_int_equal(r.body_len, sizes[k]);
    for (size_t i = 0; i < r.body_len; i++)
      if (r.body[i] != (uint8_t)(i % 251)) fail_msg("size %zu: byte %zu differs", sizes[k], i);
    assert_string_equal(rn_hc_resp_header(&r, "content-type"), "text/plain");
    rn_hc_resp_free(&r);
  }
  c.next_head = true;
  assert_int_equal(rn_hc_sendf(&c, "HEAD /own?50000 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
  read_ok(&c, &r, 200);
  assert_string_equal(rn_hc_resp_header(&r, "content-length"), "50000");
  assert_int_equal(r.body_len, 0);
  rn_hc_resp_free(&r);
  /* Still in step after HEAD. */
  assert_int_equal(rn_hc_sendf(&c, "GET /own?7 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
  read_ok(&c, &r, 200);
  assert_int_equal(r.body_len, 7);
  rn_hc_resp_free(&r);
  rn_hc_close(&c);
}

/* Headers the application sets: its request id replaces the transport's;
 * framing and hop-by-hop headers and malformed names are dropped. */
static void test_app_headers(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  rn_hc_resp_t r;
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(rn_hc_sendf(&c, "GET /apphdr HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    read_ok(&c, &r, 200);
    assert_true(r.keep_alive); /* the app's Connection: close is not the transport's */
    assert_string_equal(rn_hc_resp_header(&r, "content-length"), "3");
    assert_string_equal(rn_hc_resp_header(&r, "x-ok"), "yes");
    int rids = 0;
    for (size_t k = 0; k < r.nhdrs; k++)
      if (strcmp(r.hdrs[k].name, "x-amzn-requestid") == 0) rids++;
    assert_int_equal(rids, 1);
    assert_string_equal(rn_hc_resp_header(&r, "x-amzn-requestid"), "app-request-id");
    rn_hc_resp_free(&r);
  }
  rn_hc_close(&c);
}

/* More pipelined requests than max_inflight_per_connection (4 here): the
 * rest wait in the socket, and every answer still comes, in order. */
static void test_h1_pipeline_limit(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  char *reqs = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&reqs, &len);
  for (int i = 0; i < 60; i++)
    fprintf(m, "GET %s?%d HTTP/1.1\r\nHost: a\r\n\r\n", i % 2 ? "/echo" : "/later", i);
  fclose(m);
  assert_int_equal(rn_hc_send(&c, reqs, len), 0);
  free(reqs);
  for (int i = 0; i < 60; i++) {
    rn_hc_resp_t r;
    read_ok(&c, &r, 200);
    if (i % 2) {
      char q[8];
      snprintf(q, sizeof q, "%d", i);
      assert_string_equal(rn_hc_resp_header(&r, "x-query"), q);
    } else {
      assert_string_equal((char *)r.body, "later");
    }
    rn_hc_resp_free(&r);
  }
  rn_hc_close(&c);
}

/* Requests whose router reserves more than max_output_bytes_per_connection
 * (4 MiB) for the answer (rn_http_reserve, as GetRecords does): the next
 * pipelined request (HTTP/1.1) or stream (HTTP/2) is routed only after the
 * answer came, so the router's log alternates. Answers still arrive in
 * order and complete. */
static void check_reserve_log(fx_t *fx, int n) {
  assert_int_equal(fx->nlog, 2 * n);
  for (int i = 0; i < 2 * n; i++) assert_string_equal(fx->log[i], i % 2 ? "later" : "reserve");
}

static void test_h1_reserve(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  enum { N = 4 };
  for (int i = 0; i < N; i++) assert_int_equal(rn_hc_sendf(&c, "GET /reserve?8000000 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
  for (int i = 0; i < N; i++) {
    rn_hc_resp_t r;
    read_ok(&c, &r, 200);
    assert_string_equal((char *)r.body, "later");
    rn_hc_resp_free(&r);
  }
  rn_hc_close(&c);
  check_reserve_log(fx, N);
}

static void test_h2_reserve(void **state) {
  fx_t *fx = *state;
  rn_h2c_t *c = rn_h2c_connect(fx->port);
  assert_non_null(c);
  enum { N = 4 };
  int32_t ids[N];
  for (int i = 0; i < N; i++) ids[i] = rn_h2c_submit(c, "GET", "/reserve?8000000", NULL, 0, NULL, 0);
  assert_int_equal(rn_h2c_run(c), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(rn_h2c_resp(c, ids[i])->status, 200);
    assert_string_equal((char *)rn_h2c_resp(c, ids[i])->body, "later");
  }
  rn_h2c_free(c);
  check_reserve_log(fx, N);
}

/* A client that pipelines large answers and reads nothing until it has
 * sent everything: the server stops reading at max_output_bytes (4 MiB),
 * resumes as the client reads, and every byte arrives in order. */
static void test_h1_backpressure(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  enum { N = 24, SIZE = 1000000 };
  for (int i = 0; i < N; i++) assert_int_equal(rn_hc_sendf(&c, "GET /big?%d HTTP/1.1\r\nHost: a\r\n\r\n", SIZE + i), 0);
  for (int i = 0; i < N; i++) {
    rn_hc_resp_t r;
    read_ok(&c, &r, 200);
    assert_int_equal(r.body_len, (size_t)(SIZE + i));
    for (size_t k = 0; k < r.body_len; k += 997) assert_int_equal(r.body[k], (uint8_t)(k % 251));
    rn_hc_resp_free(&r);
  }
  rn_hc_close(&c);
}

/* ---- limits (small: 1 MiB body, 4 KiB head) ------------------------------------------------ */

static void test_h1_limits(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  rn_hc_resp_t r;
  /* 413 announced: answered before the body, instead of 100 Continue. */
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  assert_int_equal(rn_hc_sendf(&c, "PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: %u\r\n\r\n",
                               (2u << 20)),
                   0);
  read_ok(&c, &r, 413);
  assert_false(r.keep_alive);
  assert_non_null(strstr((char *)r.body, "\"__type\":\"RequestEntityTooLargeException\""));
  assert_transport_headers(&r);
  rn_hc_resp_free(&r);
  assert_true(rn_hc_wait_closed(&c));
  rn_hc_close(&c);
  /* 413 for a chunked body that grows too large, after a good request. */
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  assert_int_equal(rn_hc_sendf(&c, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n"),
                   0);
  static uint8_t chunk[65536];
  for (int i = 0; i < 17; i++) {
    if (rn_hc_sendf(&c, "%zx\r\n", sizeof chunk) != 0 || rn_hc_send(&c, chunk, sizeof chunk) != 0 ||
        rn_hc_send(&c, "\r\n", 2) != 0)
      break; /* the server may have closed already */
  }
  read_ok(&c, &r, 200);
  rn_hc_resp_free(&r);
  read_ok(&c, &r, 413);
  rn_hc_resp_free(&r);
  assert_true(rn_hc_wait_closed(&c));
  rn_hc_close(&c);
  /* 431 */
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  char big[6000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(rn_hc_sendf(&c, "GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: %s\r\n\r\n", big), 0);
  read_ok(&c, &r, 431);
  assert_non_null(strstr((char *)r.body, "RequestHeaderFieldsTooLargeException"));
  rn_hc_resp_free(&r);
  assert_true(rn_hc_wait_closed(&c));
  rn_hc_close(&c);
}

static void test_h2_limits(void **state) {
  fx_t *fx = *state;
  rn_h2c_t *c = rn_h2c_connect(fx->port);
  assert_non_null(c);
  char big[6000];
  memset(big, 'b', sizeof big - 1);
  big[sizeof big - 1] = 0;
  rn_hc_hdr_t hb[] = {{(char *)(uintptr_t) "x-big", big}};
  size_t blen = (2u << 20);
  uint8_t *body = calloc(1, blen);
  assert_non_null(body);
  int32_t ok1 = rn_h2c_submit(c, "GET", "/echo", NULL, 0, NULL, 0);
  int32_t s431 = rn_h2c_submit(c, "GET", "/echo", hb, 1, NULL, 0);
  int32_t s413 = rn_h2c_submit(c, "POST", "/echo", NULL, 0, body, blen);
  int32_t ok2 = rn_h2c_submit(c, "POST", "/echo", NULL, 0, "fine", 4);
  assert_int_equal(rn_h2c_run(c), 0);
  assert_int_equal(rn_h2c_resp(c, ok1)->status, 200);
  assert_int_equal(rn_h2c_resp(c, s431)->status, 431);
  assert_int_equal(rn_h2c_resp(c, s413)->status, 413);
  assert_non_null(strstr((char *)rn_h2c_resp(c, s413)->body, "RequestEntityTooLargeException"));
  assert_int_equal(rn_h2c_resp(c, ok2)->status, 200);
  assert_string_equal((char *)rn_h2c_resp(c, ok2)->body, "fine");
  /* The connection is still good. */
  int32_t again = rn_h2c_submit(c, "GET", "/echo?again", NULL, 0, NULL, 0);
  assert_int_equal(rn_h2c_run(c), 0);
  assert_int_equal(rn_h2c_resp(c, again)->status, 200);
  free(body);
  rn_h2c_free(c);
}

/* ---- HTTP/2 ------------------------------------------------------------------------------ */

/* Many concurrent streams on one connection: immediate, later and large
 * answers, and request bodies larger than the initial flow-control windows. */
static void test_h2_concurrent(void **state) {
  fx_t *fx = *state;
  rn_h2c_t *c = rn_h2c_connect(fx->port);
  assert_non_null(c);
  enum { N = 24 };
  int32_t ids[N];
  size_t upload = 3u << 20;
  uint8_t *up = malloc(upload);
  assert_non_null(up);
  for (size_t i = 0; i < upload; i++) up[i] = (uint8_t)(i * 7);
  rn_hc_hdr_t foo[] = {{(char *)(uintptr_t) "x-foo", (char *)(uintptr_t) "h2"}};
  for (int i = 0; i < N; i++) {
    switch (i % 4) {
    case 0: ids[i] = rn_h2c_submit(c, "GET", "/later", NULL, 0, NULL, 0); break;
    case 1: ids[i] = rn_h2c_submit(c, "POST", "/echo?k=v", foo, 1, "abc", 3); break;
    case 2: ids[i] = rn_h2c_submit(c, "GET", i % 8 == 2 ? "/big?2500000" : "/own?2500000", NULL, 0, NULL, 0); break;
    case 3: ids[i] = rn_h2c_submit(c, "PUT", "/echo", NULL, 0, up, upload); break;
    }
    assert_true(ids[i] > 0);
  }
  assert_int_equal(rn_h2c_run(c), 0);
  for (int i = 0; i < N; i++) {
    const rn_hc_resp_t *r = rn_h2c_resp(c, ids[i]);
    assert_int_equal(r->status, 200);
    assert_transport_headers(r);
    switch (i % 4) {
    case 0: assert_string_equal((char *)r->body, "later"); break;
    case 1:
      assert_string_equal((char *)r->body, "abc");
      assert_string_equal(rn_hc_resp_header(r, "x-version"), "20");
      assert_string_equal(rn_hc_resp_header(r, "x-query"), "k=v");
      assert_string_equal(rn_hc_resp_header(r, "x-foo"), "h2");
      assert_string_equal(rn_hc_resp_header(r, "x-authority"), "127.0.0.1");
      break;
    case 2:
      assert_int_equal(r->body_len, 2500000);
      for (size_t k = 0; k < r->body_len; k += 4999) assert_int_equal(r->body[k], (uint8_t)(k % 251));
      break;
    case 3:
      assert_int_equal(r->body_len, upload);
      assert_memory_equal(r->body, up, upload);
      break;
    }
  }
  free(up);
  rn_h2c_free(c);
}

/* HTTP/2 DATA frames point into the body instead of copying it: a stream
 * the client cancels while its body is partly out leaves the connection
 * and the next stream intact, and the body is freed once (ASan). */
static void test_h2_reset_while_sending(void **state) {
  fx_t *fx = *state;
  rn_h2c_t *c = rn_h2c_connect(fx->port);
  assert_non_null(c);
  int32_t big = rn_h2c_submit(c, "GET", "/own?8000000", NULL, 0, NULL, 0);
  int32_t small = rn_h2c_submit(c, "POST", "/echo", NULL, 0, "abc", 3);
  assert_true(big > 0 && small > 0);
  assert_int_equal(rn_h2c_run_until(c, small), 0);
  assert_string_equal((char *)rn_h2c_resp(c, small)->body, "abc");
  rn_h2c_reset(c, big);
  int32_t next = rn_h2c_submit(c, "GET", "/own?300000", NULL, 0, NULL, 0);
  assert_true(next > 0);
  assert_int_equal(rn_h2c_run_until(c, next), 0);
  const rn_hc_resp_t *r = rn_h2c_resp(c, next);
  assert_int_equal(r->status, 200);
  assert_int_equal(r->body_len, 300000);
  for (size_t k = 0; k < r->body_len; k++)
    if (r->body[k] != (uint8_t)(k % 251)) fail_msg("byte %zu differs", k);
  rn_h2c_free(c);
}

/* ---- shutdown ------------------------------------------------------------------------------- */

/* Requests at the router when shutdown begins are answered (HTTP/1.1 with
 * Connection: close, HTTP/2 after GOAWAY), then the connections close and
 * the server reports done. A request whose client vanished is dropped. */
static void test_drain_answers_in_flight(void **state) {
  fx_t *fx = *state;
  rn_hc_t c, idle, gone;
  assert_int_equal(rn_hc_connect(&c, fx->port), 0);
  assert_int_equal(rn_hc_connect(&idle, fx->port), 0);
  assert_int_equal(rn_hc_connect(&gone, fx->port), 0);
  rn_hc_resp_t r;
  /* Make sure every connection was accepted and routed before shutdown. */
  assert_int_equal(rn_hc_sendf(&idle, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
  read_ok(&idle, &r, 200);
  rn_hc_resp_free(&r);
  rn_h2c_t *h2 = rn_h2c_connect(fx->port);
  assert_non_null(h2);
  int32_t s0 = rn_h2c_submit(h2, "GET", "/echo", NULL, 0, NULL, 0);
  assert_int_equal(rn_h2c_run(h2), 0);
  assert_int_equal(rn_h2c_resp(h2, s0)->status, 200);
  /* Pipeline a held request behind an immediate one, so the held one is
   * known to be at the router once the first answer arrives. */
  assert_int_equal(rn_hc_sendf(&c, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /hold?h1 HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
  read_ok(&c, &r, 200);
  rn_hc_resp_free(&r);
  assert_int_equal(rn_hc_sendf(&gone, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /hold?gone HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
  read_ok(&gone, &r, 200);
  rn_hc_resp_free(&r);
  rn_hc_close(&gone); /* its held request is answered to nobody */
  int32_t s1 = rn_h2c_submit(h2, "GET", "/hold?h2", NULL, 0, NULL, 0);
  int32_t sr = rn_h2c_submit(h2, "GET", "/hold?reset", NULL, 0, NULL, 0);
  int32_t s2 = rn_h2c_submit(h2, "GET", "/echo", NULL, 0, NULL, 0);
  /* The echo was sent after the hold: once it is answered, the hold is at the router. */
  assert_int_equal(rn_h2c_run_until(h2, s2), 0);
  assert_int_equal(rn_h2c_resp(h2, s2)->status, 200);
  /* Cancel one held stream: its answer, when it comes, is dropped. */
  rn_h2c_reset(h2, sr);
  assert_int_equal(rn_h2c_run_until(h2, sr), 0);
  /* A round trip after the reset, so the server saw it before shutdown. */
  int32_t s3 = rn_h2c_submit(h2, "GET", "/echo", NULL, 0, NULL, 0);
  assert_int_equal(rn_h2c_run_until(h2, s3), 0);
  stop_server(fx); /* shutdown, held requests answered 20 ms into the drain */
  assert_int_equal(rn_hc_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal((char *)r.body, "held h1");
  assert_false(r.keep_alive); /* Connection: close while draining */
  rn_hc_resp_free(&r);
  assert_true(rn_hc_wait_closed(&c));
  assert_true(rn_hc_wait_closed(&idle));
  assert_int_equal(rn_h2c_run(h2), 0);
  assert_int_equal(rn_h2c_resp(h2, s1)->status, 200);
  assert_string_equal((char *)rn_h2c_resp(h2, s1)->body, "held h2");
  assert_int_equal(rn_h2c_resp(h2, sr)->status, 0);
  assert_true(rn_h2c_goaway(h2, NULL));
  rn_h2c_free(h2);
  rn_hc_close(&c);
  rn_hc_close(&idle);
}

/* ---- TLS ------------------------------------------------------------------------------------ */

static void curl_ok(const char *const argv[], const char *want) {
  char out[8192];
  assert_int_equal(rn_hc_run(argv, out, sizeof out), 0);
  if (strcmp(out, want) != 0) print_message("curl said: %s\n", out);
  assert_string_equal(out, want);
}

/* Multi-megabyte bodies both ways over TLS, with ALPN h2 and http/1.1. */
static void test_tls_bodies(void **state) {
  fx_t *fx = *state;
  if (fx == NULL) {
    print_message("openssl or curl not found: skipped\n");
    skip();
  }
  char url_big[128], url_own[128], url_echo[128], upload[700], data_arg[720];
  snprintf(url_big, sizeof url_big, "https://127.0.0.1:%u/big?5000000", (unsigned)fx->port);
  snprintf(url_own, sizeof url_own, "https://127.0.0.1:%u/own?5000000", (unsigned)fx->port);
  snprintf(url_echo, sizeof url_echo, "https://127.0.0.1:%u/echo", (unsigned)fx->port);
  snprintf(upload, sizeof upload, "%s/upload.bin", fx->dir);
  FILE *f = fopen(upload, "wb");
  assert_non_null(f);
  for (int i = 0; i < 3 * 1024 * 1024; i++) fputc(i * 13 % 256, f);
  fclose(f);
  snprintf(data_arg, sizeof data_arg, "@%s", upload);
  const char *w = "%{http_code} %{http_version} %{size_download} %{size_upload}";
  for (int v = 0; v < 2; v++) {
    const char *ver = v == 0 ? "--http2" : "--http1.1";
    const char *vname = v == 0 ? "2" : "1.1";
    char want[128];
    const char *const big[] = {"curl", "-sSk", ver, "-o", "/dev/null", "-w", w, url_big, NULL};
    snprintf(want, sizeof want, "200 %s 5000000 0", vname);
    curl_ok(big, want);
    const char *const own[] = {"curl", "-sSk", ver, "-o", "/dev/null", "-w", w, url_own, NULL};
    curl_ok(own, want);
    const char *const up[] = {"curl", "-sSk", ver, "-o", "/dev/null", "-w", w, "--data-binary", data_arg, url_echo, NULL};
    snprintf(want, sizeof want, "200 %s 3145728 3145728", vname);
    curl_ok(up, want);
  }
  /* The router sees tls=1. */
  const char *const hdr[] = {"curl", "-sSk", "--http2", "-D", "-", "-o", "/dev/null", url_echo, NULL};
  char out[8192];
  assert_int_equal(rn_hc_run(hdr, out, sizeof out), 0);
  assert_non_null(strstr(out, "x-tls: 1"));
  assert_non_null(strstr(out, "x-version: 20"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_h1_pipeline_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_h1_chunked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_h1_expect_continue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_h1_versions_and_head, setup, teardown),
      cmocka_unit_test_setup_teardown(test_app_headers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_h1_owned_reply, setup, teardown),
      cmocka_unit_test_setup_teardown(test_h1_pipeline_limit, setup_small, teardown),
      cmocka_unit_test_setup_teardown(test_h1_backpressure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_h1_reserve, setup, teardown),
      cmocka_unit_test_setup_teardown(test_h2_reserve, setup, teardown),
      cmocka_unit_test_setup_teardown(test_h1_limits, setup_small, teardown),
      cmocka_unit_test_setup_teardown(test_h2_limits, setup_small, teardown),
      cmocka_unit_test_setup_teardown(test_h2_concurrent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_h2_reset_while_sending, setup, teardown),
      cmocka_unit_test_setup_teardown(test_drain_answers_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tls_bodies, setup_tls, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
