/*
 * test_http.c — the HTTP port of the real runneld (built-in router:
 * /healthz, /readyz, 404 JSON for the rest), started on run-time ports:
 * HTTP/1.1 keep-alive and pipelining, chunked bodies and 100-continue, the
 * limits (431, 413, 408 — the timeouts set small with --set, and each test
 * waits for the answer and the close, not for a clock), HTTP/2 with prior
 * knowledge and many concurrent streams (nghttp2's client, and curl),
 * misbehaving clients (garbage, slowloris, broken HTTP/2) while a good
 * client keeps being served, http_max_connections, a thousand idle
 * keep-alive connections, idle timeouts, TLS with ALPN h2 and http/1.1
 * (curl and openssl s_client against a certificate made at test time with
 * the openssl CLI), and SIGTERM with connections open.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "broker_proc.h"
#include "httpclient.h"
#include "testutil.h"

typedef struct fx {
  char *dir;
  rn_test_broker_t b;
} fx_t;

static int start_with(void **state, const char *const *extra) {
  fx_t *fx = calloc(1, sizeof *fx);
  if (fx == NULL) return -1;
  fx->dir = rn_test_tmpdir();
  if (rn_test_broker_start(&fx->b, fx->dir, extra) != 0) return -1;
  *state = fx;
  return 0;
}

static int setup(void **state) {
  static const char *const args[] = {"--set", "http_header_timeout_ms=400", "--set", "http_body_timeout_ms=400",
                                     "--set", "http_max_body_bytes=64KiB",   NULL};
  return start_with(state, args);
}

static int setup_maxconn(void **state) {
  static const char *const args[] = {"--set", "http_max_connections=3", NULL};
  return start_with(state, args);
}

static int setup_plain(void **state) { return start_with(state, NULL); }

static int setup_idle(void **state) {
  static const char *const args[] = {"--set", "http_idle_timeout_ms=300", NULL};
  return start_with(state, args);
}

static int teardown(void **state) {
  fx_t *fx = *state;
  if (fx == NULL) return 0;
  if (fx->b.pid) assert_int_equal(rn_test_broker_stop(&fx->b), 0);
  rn_test_rmtree(fx->dir);
  free(fx->dir);
  free(fx);
  return 0;
}

static void read_status(rn_hc_t *c, int status) {
  rn_hc_resp_t r;
  assert_int_equal(rn_hc_read(c, &r), 0);
  if (r.status != status) print_message("status %d body %s\n", r.status, r.body ? (char *)r.body : "");
  assert_int_equal(r.status, status);
  rn_hc_resp_free(&r);
}

/* A good client: one request on its own keep-alive connection. */
static void good_request(uint16_t port, rn_hc_t *keep) {
  rn_hc_t c, *cp = keep;
  if (cp == NULL) {
    assert_int_equal(rn_hc_connect(&c, port), 0);
    cp = &c;
  }
  assert_int_equal(rn_hc_sendf(cp, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  rn_hc_resp_t r;
  assert_int_equal(rn_hc_read(cp, &r), 0);
  assert_int_equal(r.status, 200);
  assert_true(strncmp((char *)r.body, "{\"status\":\"ok\"", 14) == 0); /* health body may carry counts */
  rn_hc_resp_free(&r);
  if (cp == &c) rn_hc_close(&c);
}

/* ---- HTTP/1.1 ----------------------------------------------------------------------- */

static void test_keepalive_pipelining(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, fx->b.http_port), 0);
  /* Three pipelined requests in one write, then more one by one. */
  assert_int_equal(rn_hc_sendf(&c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /nope?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
                   0);
  rn_hc_resp_t r[3];
  for (int i = 0; i < 3; i++) assert_int_equal(rn_hc_read(&c, &r[i]), 0);
  assert_int_equal(r[0].status, 200);
  assert_true(strncmp((char *)r[0].body, "{\"status\":\"ok\"", 14) == 0); /* health body may carry counts */
  assert_int_equal(r[1].status, 200);
  assert_true(strncmp((char *)r[1].body, "{\"status\":\"ready\"", 17) == 0);
  assert_int_equal(r[2].status, 404);
  assert_non_null(strstr((char *)r[2].body, "no such endpoint: GET /nope"));
  assert_string_equal(rn_hc_resp_header(&r[2], "content-type"), "application/json");
  for (int i = 0; i < 3; i++) {
    assert_true(r[i].keep_alive);
    assert_non_null(rn_hc_resp_header(&r[i], "x-amzn-requestid"));
    assert_non_null(rn_hc_resp_header(&r[i], "date"));
    for (int k = 0; k < i; k++)
      assert_string_not_equal(rn_hc_resp_header(&r[i], "x-amzn-requestid"), rn_hc_resp_header(&r[k], "x-amzn-requestid"));
  }
  for (int i = 0; i < 3; i++) rn_hc_resp_free(&r[i]);
  /* A request split byte by byte still parses. */
  const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  for (const char *p = req; *p; p++) assert_int_equal(rn_hc_send(&c, p, 1), 0);
  read_status(&c, 200);
  for (int i = 0; i < 50; i++) good_request(0, &c);
  rn_hc_close(&c);
}

static void test_chunked_and_continue(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, fx->b.http_port), 0);
  assert_int_equal(rn_hc_sendf(&c, "POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"),
                   0);
  read_status(&c, 404);
  assert_int_equal(rn_hc_sendf(&c, "PUT /nope HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"), 0);
  read_status(&c, 100);
  assert_int_equal(rn_hc_send(&c, "0123456789", 10), 0);
  read_status(&c, 404);
  good_request(0, &c);
  rn_hc_close(&c);
}

static void assert_error_then_close(rn_hc_t *c, int status, const char *type) {
  rn_hc_resp_t r;
  assert_int_equal(rn_hc_read(c, &r), 0);
  if (r.status != status) print_message("status %d body %s\n", r.status, r.body ? (char *)r.body : "");
  assert_int_equal(r.status, status);
  char want[128];
  snprintf(want, sizeof want, "{\"__type\":\"%s\",\"message\":\"", type);
  assert_non_null(r.body);
  assert_memory_equal(r.body, want, strlen(want));
  assert_string_equal(rn_hc_resp_header(&r, "content-type"), "application/json");
  assert_non_null(rn_hc_resp_header(&r, "x-amzn-requestid"));
  assert_false(r.keep_alive);
  rn_hc_resp_free(&r);
  assert_true(rn_hc_wait_closed(c));
}

static void test_limits(void **state) {
  fx_t *fx = *state;
  uint16_t port = fx->b.http_port;
  rn_hc_t c;
  /* 431: a head over 16 KiB. */
  assert_int_equal(rn_hc_connect(&c, port), 0);
  char *big = malloc(20000);
  assert_non_null(big);
  memset(big, 'h', 19999);
  big[19999] = 0;
  assert_int_equal(rn_hc_sendf(&c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", big), 0);
  assert_error_then_close(&c, 431, "RequestHeaderFieldsTooLargeException");
  rn_hc_close(&c);
  free(big);
  good_request(port, NULL);
  /* 413: announced length over http_max_body_bytes (64 KiB here): no body read. */
  assert_int_equal(rn_hc_connect(&c, port), 0);
  assert_int_equal(rn_hc_sendf(&c, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n"), 0);
  assert_error_then_close(&c, 413, "RequestEntityTooLargeException");
  rn_hc_close(&c);
  /* 408: a head that never completes (http_header_timeout_ms=400). */
  assert_int_equal(rn_hc_connect(&c, port), 0);
  assert_int_equal(rn_hc_sendf(&c, "GET /healthz HTTP/1.1\r\nHost: x\r\n"), 0);
  assert_error_then_close(&c, 408, "RequestTimeoutException");
  rn_hc_close(&c);
  /* 408: a body that stops coming (http_body_timeout_ms=400). */
  assert_int_equal(rn_hc_connect(&c, port), 0);
  assert_int_equal(rn_hc_sendf(&c, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-this"), 0);
  assert_error_then_close(&c, 408, "RequestTimeoutException");
  rn_hc_close(&c);
  /* 400: not HTTP. */
  assert_int_equal(rn_hc_connect(&c, port), 0);
  assert_int_equal(rn_hc_sendf(&c, "HELLO\x01\x02 what\r\n\r\n"), 0);
  assert_error_then_close(&c, 400, "BadRequestException");
  rn_hc_close(&c);
  /* A connection that never sends anything is closed (no response). */
  assert_int_equal(rn_hc_connect(&c, port), 0);
  assert_true(rn_hc_wait_closed(&c));
  rn_hc_close(&c);
  good_request(port, NULL);
}

/* Misbehaving clients on their own connections while a good client, on a
 * keep-alive connection opened first, keeps getting answers. */
static void test_bad_clients_good_client(void **state) {
  fx_t *fx = *state;
  uint16_t port = fx->b.http_port;
  rn_hc_t good, loris, garbage, partial;
  assert_int_equal(rn_hc_connect(&good, port), 0);
  good_request(0, &good);
  /* slowloris: a head that trickles and never ends */
  assert_int_equal(rn_hc_connect(&loris, port), 0);
  assert_int_equal(rn_hc_sendf(&loris, "GET /healthz HTTP/1.1\r\n"), 0);
  good_request(0, &good);
  assert_int_equal(rn_hc_sendf(&loris, "X-A: 1\r\n"), 0);
  good_request(0, &good);
  /* garbage bytes, including NULs */
  assert_int_equal(rn_hc_connect(&garbage, port), 0);
  static const uint8_t junk[] = {0, 1, 2, 0xff, 'x', '\r', '\n', '\r', '\n', 0x16, 0x03, 0x01};
  assert_int_equal(rn_hc_send(&garbage, junk, sizeof junk), 0);
  good_request(0, &good);
  /* a prefix of the HTTP/2 preface, then nothing */
  assert_int_equal(rn_hc_connect(&partial, port), 0);
  assert_int_equal(rn_hc_sendf(&partial, "PRI * HTTP/2.0\r\n"), 0);
  good_request(0, &good);
  /* a broken HTTP/2 connection: preface, then a frame of garbage */
  rn_h2c_t *h2 = rn_h2c_connect(port);
  assert_non_null(h2);
  static const uint8_t badframe[] = {0, 0, 4, 0xEE, 0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4,
                                     0, 0, 8, 0x0, 0, 0, 0, 0, 1, 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'};
  assert_int_equal(rn_h2c_send_raw(h2, badframe, sizeof badframe), 0);
  good_request(0, &good);
  assert_true(rn_h2c_wait_closed(h2));
  assert_true(rn_h2c_goaway(h2, NULL));
  rn_h2c_free(h2);

  assert_error_then_close(&garbage, 400, "BadRequestException");
  assert_error_then_close(&loris, 408, "RequestTimeoutException");
  assert_true(rn_hc_wait_closed(&partial));
  good_request(0, &good);
  good_request(port, NULL);
  rn_hc_close(&good);
  rn_hc_close(&loris);
  rn_hc_close(&garbage);
  rn_hc_close(&partial);
}

/* ---- HTTP/2 ------------------------------------------------------------------------- */

static void test_h2c_concurrent_streams(void **state) {
  fx_t *fx = *state;
  rn_h2c_t *c = rn_h2c_connect(fx->b.http_port);
  assert_non_null(c);
  enum { N = 40 };
  int32_t ids[N];
  for (int i = 0; i < N; i++) {
    const char *path = i % 3 == 0 ? "/healthz" : i % 3 == 1 ? "/readyz" : "/missing?x=1";
    ids[i] = i % 5 == 4 ? rn_h2c_submit(c, "POST", path, NULL, 0, "body", 4) : rn_h2c_submit(c, "GET", path, NULL, 0, NULL, 0);
    assert_true(ids[i] > 0);
  }
  assert_int_equal(rn_h2c_run(c), 0);
  for (int i = 0; i < N; i++) {
    const rn_hc_resp_t *r = rn_h2c_resp(c, ids[i]);
    bool get = i % 5 != 4;
    int want = i % 3 == 2 ? 404 : !get ? 405 : 200; /* POST to a health path: 405 */
    assert_int_equal(r->status, want);
    assert_non_null(rn_hc_resp_header(r, "x-amzn-requestid"));
    assert_non_null(rn_hc_resp_header(r, "date"));
    if (i % 3 == 0 && get) assert_true(strncmp((char *)r->body, "{\"status\":\"ok\"", 14) == 0); /* health body may carry counts */
    for (int k = 0; k < i; k++)
      assert_string_not_equal(rn_hc_resp_header(r, "x-amzn-requestid"),
                              rn_hc_resp_header(rn_h2c_resp(c, ids[k]), "x-amzn-requestid"));
  }
  /* The same connection takes another round. */
  int32_t again = rn_h2c_submit(c, "GET", "/healthz", NULL, 0, NULL, 0);
  assert_int_equal(rn_h2c_run(c), 0);
  assert_int_equal(rn_h2c_resp(c, again)->status, 200);
  rn_h2c_free(c);
}

static bool have_curl_http2(void) {
  if (!rn_hc_have("curl")) return false;
  static const char *const argv[] = {"curl", "-V", NULL};
  char out[4096];
  return rn_hc_run(argv, out, sizeof out) == 0 && strstr(out, "HTTP2") != NULL;
}

static void test_curl_h2c_prior_knowledge(void **state) {
  fx_t *fx = *state;
  if (!have_curl_http2()) {
    print_message("curl with HTTP/2 not found: skipped\n");
    skip();
  }
  char url[128], out[4096];
  snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", (unsigned)fx->b.http_port);
  const char *const argv[] = {"curl", "-sS", "--http2-prior-knowledge", "-w", " %{http_code} %{http_version}", url, NULL};
  assert_int_equal(rn_hc_run(argv, out, sizeof out), 0);
  assert_true(strncmp(out, "{\"status\":\"ok\"", 14) == 0 && strlen(out) > 6 && strcmp(out + strlen(out) - 6, " 200 2") == 0);
  const char *const argv11[] = {"curl", "-sS", "--http1.1", "-w", " %{http_code} %{http_version}", url, NULL};
  assert_int_equal(rn_hc_run(argv11, out, sizeof out), 0);
  assert_true(strncmp(out, "{\"status\":\"ok\"", 14) == 0 && strlen(out) > 8 && strcmp(out + strlen(out) - 8, " 200 1.1") == 0);
}

/* ---- connections ------------------------------------------------------------------------ */

static void test_max_connections(void **state) {
  fx_t *fx = *state;
  uint16_t port = fx->b.http_port;
  rn_hc_t c[3], extra;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(rn_hc_connect(&c[i], port), 0);
    good_request(0, &c[i]); /* accepted and counted */
  }
  /* Past the limit a request is answered 503 with a JSON body, then the
   * connection closes (it used to be closed without a word). */
  assert_int_equal(rn_hc_connect(&extra, port), 0);
  assert_int_equal(rn_hc_sendf(&extra, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"), 0);
  assert_error_then_close(&extra, 503, "ServiceUnavailable");
  rn_hc_close(&extra);
  /* The health endpoints stay reachable past the limit (one request each). */
  assert_int_equal(rn_hc_connect(&extra, port), 0);
  good_request(0, &extra);
  assert_true(rn_hc_wait_closed(&extra));
  rn_hc_close(&extra);
  /* ... and /metrics counts the refusal. */
  assert_int_equal(rn_hc_connect(&extra, port), 0);
  assert_int_equal(rn_hc_sendf(&extra, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  rn_hc_resp_t r;
  assert_int_equal(rn_hc_read(&extra, &r), 0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr((char *)r.body, "runnel_connections_refused_total{port=\"http\",reason=\"limit\"} 1\n"));
  assert_non_null(strstr((char *)r.body, "runnel_connections_refused_total{port=\"native\",reason=\"limit\"} 0\n"));
  rn_hc_resp_free(&r);
  rn_hc_close(&extra);
  for (int i = 0; i < 3; i++) good_request(0, &c[i]);
  for (int i = 0; i < 3; i++) rn_hc_close(&c[i]);
}

/* RFC 9112 strictness and error bodies: HTTP/1.1 without Host (or with two)
 * is 400, as is a head with bare-LF line ends; a body that claims a
 * Content-Encoding it does not have is 400; every 404 carries __type. */
static void test_strict_requests(void **state) {
  fx_t *fx = *state;
  uint16_t port = fx->b.http_port;
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, port), 0);
  assert_int_equal(rn_hc_sendf(&c, "GET /healthz HTTP/1.1\r\n\r\n"), 0);
  assert_error_then_close(&c, 400, "BadRequestException");
  rn_hc_close(&c);
  assert_int_equal(rn_hc_connect(&c, port), 0);
  assert_int_equal(rn_hc_sendf(&c, "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 0);
  assert_error_then_close(&c, 400, "BadRequestException");
  rn_hc_close(&c);
  /* HTTP/1.0 may omit Host. */
  assert_int_equal(rn_hc_connect(&c, port), 0);
  assert_int_equal(rn_hc_sendf(&c, "GET /healthz HTTP/1.0\r\n\r\n"), 0);
  read_status(&c, 200);
  rn_hc_close(&c);
  /* Bare LF ending a header line, and ending the head. */
  assert_int_equal(rn_hc_connect(&c, port), 0);
  assert_int_equal(rn_hc_sendf(&c, "GET /healthz HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n"), 0);
  assert_error_then_close(&c, 400, "BadRequestException");
  rn_hc_close(&c);
  assert_int_equal(rn_hc_connect(&c, port), 0);
  assert_int_equal(rn_hc_sendf(&c, "GET /healthz HTTP/1.1\nHost: x\n\n"), 0);
  assert_error_then_close(&c, 400, "BadRequestException");
  rn_hc_close(&c);
  /* A body with a bare LF in it is fine (only the head is checked). */
  assert_int_equal(rn_hc_connect(&c, port), 0);
  assert_int_equal(rn_hc_sendf(&c, "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na\nb"), 0);
  read_status(&c, 404);
  /* Content-Encoding: gzip over plain bytes (the Kinesis API does not
   * inflate; REST ingest does and says so too). */
  assert_int_equal(rn_hc_sendf(&c, "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n"
                                   "Content-Type: application/x-amz-json-1.1\r\nContent-Encoding: gzip\r\n"
                                   "Content-Length: 2\r\n\r\n{}"),
                   0);
  rn_hc_resp_t r;
  assert_int_equal(rn_hc_read(&c, &r), 0);
  assert_int_equal(r.status, 400);
  assert_non_null(strstr((char *)r.body, "\"__type\":\"BadRequestException\""));
  assert_non_null(strstr((char *)r.body, "not gzip data"));
  rn_hc_resp_free(&r);
  /* 404s of the application router carry __type. */
  assert_int_equal(rn_hc_sendf(&c, "GET /no/such/thing HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  assert_int_equal(rn_hc_read(&c, &r), 0);
  assert_int_equal(r.status, 404);
  assert_non_null(strstr((char *)r.body, "\"__type\":\"NotFound\""));
  rn_hc_resp_free(&r);
  rn_hc_close(&c);
  good_request(port, NULL);
}

static void test_many_idle_connections(void **state) {
  fx_t *fx = *state;
  uint16_t port = fx->b.http_port;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  size_t n = 1000;
  if (rl.rlim_cur < n + 64) {
    if (rl.rlim_max < n + 64) n = rl.rlim_max > 128 ? rl.rlim_max - 64 : 64;
    rl.rlim_cur = n + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  rn_hc_t *c = calloc(n, sizeof *c);
  assert_non_null(c);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(rn_hc_connect(&c[i], port), 0);
    good_request(0, &c[i]);
  }
  /* A new client and an HTTP/2 one are served while they all sit idle. */
  good_request(port, NULL);
  rn_h2c_t *h2 = rn_h2c_connect(port);
  assert_non_null(h2);
  int32_t id = rn_h2c_submit(h2, "GET", "/healthz", NULL, 0, NULL, 0);
  assert_int_equal(rn_h2c_run(h2), 0);
  assert_int_equal(rn_h2c_resp(h2, id)->status, 200);
  rn_h2c_free(h2);
  /* Every idle connection is still open and usable. */
  for (size_t i = 0; i < n; i++) good_request(0, &c[i]);
  for (size_t i = 0; i < n; i++) rn_hc_close(&c[i]);
  free(c);
}

/* http_idle_timeout_ms (300 here): a keep-alive connection with nothing in
 * progress is closed without a response; an HTTP/2 one gets GOAWAY first. */
static void test_idle_timeout(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, fx->b.http_port), 0);
  good_request(0, &c);
  rn_h2c_t *h2 = rn_h2c_connect(fx->b.http_port);
  assert_non_null(h2);
  int32_t id = rn_h2c_submit(h2, "GET", "/healthz", NULL, 0, NULL, 0);
  assert_int_equal(rn_h2c_run(h2), 0);
  assert_int_equal(rn_h2c_resp(h2, id)->status, 200);
  rn_hc_resp_t r;
  assert_int_equal(rn_hc_read(&c, &r), -1); /* closed, nothing sent */
  assert_true(rn_h2c_wait_closed(h2));
  int32_t last = -1;
  assert_true(rn_h2c_goaway(h2, &last));
  assert_int_equal(last, id);
  rn_h2c_free(h2);
  rn_hc_close(&c);
  good_request(fx->b.http_port, NULL);
}

/* SIGTERM with an idle HTTP/1.1 and an idle HTTP/2 connection open: the
 * broker closes them and exits 0. */
static void test_sigterm_with_connections(void **state) {
  fx_t *fx = *state;
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, fx->b.http_port), 0);
  good_request(0, &c);
  rn_h2c_t *h2 = rn_h2c_connect(fx->b.http_port);
  assert_non_null(h2);
  int32_t id = rn_h2c_submit(h2, "GET", "/readyz", NULL, 0, NULL, 0);
  assert_int_equal(rn_h2c_run(h2), 0);
  assert_int_equal(rn_h2c_resp(h2, id)->status, 200);
  assert_int_equal(rn_test_broker_stop(&fx->b), 0);
  assert_true(rn_hc_wait_closed(&c));
  assert_true(rn_h2c_wait_closed(h2));
  assert_true(rn_h2c_goaway(h2, NULL));
  rn_h2c_free(h2);
  rn_hc_close(&c);
}

/* ---- TLS ------------------------------------------------------------------------------- */

static void test_tls_alpn(void **state) {
  (void)state;
  if (!have_curl_http2() || !rn_hc_have("openssl")) {
    print_message("curl with HTTP/2 or openssl not found: skipped\n");
    skip();
  }
  char *dir = rn_test_tmpdir();
  char cert[600], key[600], setc[700], setk[700], out[8192];
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  const char *const gen[] = {"openssl", "req",  "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                             "-nodes",  "-keyout", key,  "-out",    cert, "-days",    "2",
                             "-subj",   "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", NULL};
  assert_int_equal(rn_hc_run(gen, out, sizeof out), 0);
  snprintf(setc, sizeof setc, "http_tls_cert=%s", cert);
  snprintf(setk, sizeof setk, "http_tls_key=%s", key);
  const char *const args[] = {"--set", setc, "--set", setk, "--set", "http_header_timeout_ms=500", NULL};
  char data[600];
  snprintf(data, sizeof data, "%s/data", dir);
  rn_test_broker_t b;
  assert_int_equal(rn_test_broker_start(&b, data, args), 0);
  char url[128], url2[128];
  snprintf(url, sizeof url, "https://127.0.0.1:%u/healthz", (unsigned)b.http_port);
  snprintf(url2, sizeof url2, "https://127.0.0.1:%u/readyz", (unsigned)b.http_port);
  /* ALPN h2, two requests on one connection (verified against the cert). */
  const char *const h2[] = {"curl", "-sS", "--cacert", cert, "--http2", "-w", " %{http_code} %{http_version}\n",
                            url, url2, NULL};
  assert_int_equal(rn_hc_run(h2, out, sizeof out), 0);
  assert_true(strstr(out, "{\"status\":\"ok\"") == out && strstr(out, "} 200 2\n{\"status\":\"ready\"") != NULL &&
              strcmp(out + strlen(out) - 8, "} 200 2\n") == 0);
  /* ALPN http/1.1, keep-alive across two requests. */
  const char *const h1[] = {"curl", "-sS", "-k", "--http1.1", "-w", " %{http_code} %{http_version}\n", url, url2, NULL};
  assert_int_equal(rn_hc_run(h1, out, sizeof out), 0);
  assert_true(strstr(out, "{\"status\":\"ok\"") == out && strstr(out, "} 200 1.1\n{\"status\":\"ready\"") != NULL &&
              strcmp(out + strlen(out) - 10, "} 200 1.1\n") == 0);
  /* Headers over TLS include the request id. */
  const char *const hd[] = {"curl", "-sS", "-k", "--http2", "-D", "-", "-o", "/dev/null", url, NULL};
  assert_int_equal(rn_hc_run(hd, out, sizeof out), 0);
  assert_non_null(strstr(out, "x-amzn-requestid: "));
  /* Cleartext on the TLS port gets no HTTP answer. */
  rn_hc_t c;
  assert_int_equal(rn_hc_connect(&c, b.http_port), 0);
  rn_hc_sendf(&c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  rn_hc_resp_t r;
  assert_int_equal(rn_hc_read(&c, &r), -1);
  rn_hc_close(&c);
  /* A TLS client that completes the handshake (ALPN h2, then http/1.1) and
   * then sends nothing is closed after http_header_timeout_ms (500 here):
   * s_client -ign_eof returns only when the server closes. */
  char connect_to[64];
  snprintf(connect_to, sizeof connect_to, "127.0.0.1:%u", (unsigned)b.http_port);
  const char *alpns[] = {"h2", "http/1.1"};
  for (int i = 0; i < 2; i++) {
    const char *const sc[] = {"openssl", "s_client", "-connect", connect_to, "-alpn", alpns[i], "-ign_eof", NULL};
    assert_int_equal(rn_hc_run(sc, out, sizeof out), 0);
    char want[64];
    snprintf(want, sizeof want, "ALPN protocol: %s", alpns[i]);
    assert_non_null(strstr(out, want));
  }
  /* And TLS still works after it. */
  assert_int_equal(rn_hc_run(h2, out, sizeof out), 0);
  assert_true(strstr(out, "{\"status\":\"ok\"") == out && strstr(out, "} 200 2\n{\"status\":\"ready\"") != NULL &&
              strcmp(out + strlen(out) - 8, "} 200 2\n") == 0);
  assert_int_equal(rn_test_broker_stop(&b), 0);
  rn_test_rmtree(dir);
  free(dir);
}

/* A key that does not match the certificate stops the broker at startup. */
static void test_tls_bad_config(void **state) {
  (void)state;
  char *dir = rn_test_tmpdir();
  char data[600], setc[700];
  snprintf(data, sizeof data, "%s/data", dir);
  snprintf(setc, sizeof setc, "http_tls_cert=%s/missing.pem", dir);
  const char *const only_cert[] = {"--set", setc, NULL};
  rn_test_broker_t b;
  assert_int_equal(rn_test_broker_start(&b, data, only_cert), -1);
  char setk[700];
  snprintf(setk, sizeof setk, "http_tls_key=%s/missing-key.pem", dir);
  const char *const missing[] = {"--set", setc, "--set", setk, NULL};
  assert_int_equal(rn_test_broker_start(&b, data, missing), -1);
  rn_test_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_keepalive_pipelining, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chunked_and_continue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_clients_good_client, setup, teardown),
      cmocka_unit_test_setup_teardown(test_h2c_concurrent_streams, setup, teardown),
      cmocka_unit_test_setup_teardown(test_curl_h2c_prior_knowledge, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_connections, setup_maxconn, teardown),
      cmocka_unit_test_setup_teardown(test_strict_requests, setup_plain, teardown),
      cmocka_unit_test_setup_teardown(test_many_idle_connections, setup_plain, teardown),
      cmocka_unit_test_setup_teardown(test_idle_timeout, setup_idle, teardown),
      cmocka_unit_test_setup_teardown(test_sigterm_with_connections, setup_plain, teardown),
      cmocka_unit_test(test_tls_alpn),
      cmocka_unit_test(test_tls_bad_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
