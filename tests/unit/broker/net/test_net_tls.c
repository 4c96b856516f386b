/*
 * test_net_tls.c — TLS below the protocol (broker/net/tls.c) under a
 * trivial echo protocol: the protocol sees only plaintext, learns the ALPN
 * choice in on_tls_ready before any plaintext, its writes are encrypted;
 * the peer's close_notify arrives as UV_EOF; a client that speaks no TLS
 * makes the handshake fail, reported as RN_NET_ETLS.
 *
 * The certificate is made in process (OpenSSL); the client is a blocking
 * OpenSSL client on its own thread; the loop runs on the test's thread
 * until a condition holds (no sleeps).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nettest.h"
#include "rn_net.h"
#include "testutil.h"

/* ---- an echo protocol ------------------------------------------------------------- */

typedef struct econn {
  rn_conn_t base;
  char rbuf[4096];
  char pending[4096];
  size_t npending;
} econn_t;

typedef struct ewrite {
  rn_conn_wreq_t req; /* first */
  char data[4096];
} ewrite_t;

static struct {
  atomic_int tls_ready, plaintext_before_ready, eof, etls, freed;
  char alpn[32];
  char got[64];
  size_t ngot;
} S;

static void e_tls_ready(rn_conn_t *conn) {
  size_t len;
  const unsigned char *a = rn_conn_alpn(conn, &len);
  snprintf(S.alpn, sizeof S.alpn, "%.*s", (int)len, a != NULL ? (const char *)a : "");
  assert_true(rn_conn_tls_ready(conn));
  S.tls_ready = 1;
}

static void e_alloc(rn_conn_t *base, size_t suggested, uv_buf_t *buf) {
  econn_t *c = (econn_t *)base;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void e_read(rn_conn_t *base, ssize_t nread, const uv_buf_t *buf) {
  econn_t *c = (econn_t *)base;
  if (nread == RN_NET_ETLS) {
    S.etls = 1;
    rn_conn_close(base, "tls failed");
    return;
  }
  if (nread < 0) {
    if (nread == UV_EOF) S.eof = 1;
    rn_conn_close(base, "eof");
    return;
  }
  if (!S.tls_ready) S.plaintext_before_ready = 1;
  size_t n = (size_t)nread;
  if (S.ngot + n <= sizeof S.got) {
    memcpy(S.got + S.ngot, buf->base, n);
    S.ngot += n;
  }
  if (c->npending + n <= sizeof c->pending) {
    memcpy(c->pending + c->npending, buf->base, n);
    c->npending += n;
  }
  rn_conn_schedule(base); /* echoed in step 3 */
}

static void e_written(rn_conn_t *conn, rn_conn_wreq_t *w, int status) { free(w); }

static void e_work(rn_conn_t *base) {
  econn_t *c = (econn_t *)base;
  if (c->npending == 0) return;
  ewrite_t *w = malloc(sizeof *w);
  assert_non_null(w);
  memcpy(w->data, c->pending, c->npending);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)c->npending);
  int rc = rn_conn_write(base, &w->req, &b, 1, c->npending, e_written);
  assert_int_equal(rc, 0);
  c->npending = 0;
}

static void e_open(rn_conn_t *base) {
  assert_true(rn_conn_tls(base));
  assert_false(rn_conn_tls_ready(base));
  assert_int_equal(rn_conn_read(base, true), 0);
}

static void e_free(rn_conn_t *base) { S.freed++; }

static const rn_net_proto_ops_t e_ops = {
    .name = "echo",
    .conn_size = sizeof(econn_t),
    .on_open = e_open,
    .on_alloc = e_alloc,
    .on_read = e_read,
    .on_work = e_work,
    .on_tls_ready = e_tls_ready,
    .on_free = e_free,
};

/* ---- a certificate ------------------------------------------------------------------ */

static void make_cert(const char *cert_path, const char *key_path) {
  EVP_PKEY *pkey = EVP_EC_gen("prime256v1");
  assert_non_null(pkey);
  X509 *x = X509_new();
  assert_non_null(x);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, pkey);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, name);
  assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
  FILE *f = fopen(cert_path, "w");
  assert_non_null(f);
  assert_int_equal(PEM_write_X509(f, x), 1);
  fclose(f);
  f = fopen(key_path, "w");
  assert_non_null(f);
  assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
  fclose(f);
  X509_free(x);
  EVP_PKEY_free(pkey);
}

/* ---- clients (blocking, on their own thread) ------------------------------------------ */

typedef struct client {
  uint16_t port;
  bool speak_tls; /* false: send a plaintext HTTP request to the TLS port */
  atomic_int done;
  bool ok;
  char alpn[32];
  char echo[16];
} client_t;

static int dial(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
  return fd;
}

static void *client_main(void *arg) {
  client_t *cl = arg;
  int fd = dial(cl->port);
  if (fd < 0) goto out;
  if (!cl->speak_tls) {
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
      char b[256];
      while (read(fd, b, sizeof b) > 0) {
      } /* the alert, then EOF */
      cl->ok = true;
    }
    close(fd);
    goto out;
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  static const unsigned char protos[] = "\x07x-other\x06x-test";
  SSL_CTX_set_alpn_protos(ctx, protos, sizeof protos - 1);
  SSL *s = SSL_new(ctx);
  SSL_set_fd(s, fd);
  if (SSL_connect(s) == 1) {
    const unsigned char *a = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(s, &a, &alen);
    snprintf(cl->alpn, sizeof cl->alpn, "%.*s", (int)alen, a != NULL ? (const char *)a : "");
    if (SSL_write(s, "ping", 4) == 4) {
      size_t got = 0;
      while (got < 4) {
        int n = SSL_read(s, cl->echo + got, (int)(4 - got));
        if (n <= 0) break;
        got += (size_t)n;
      }
      cl->ok = got == 4;
    }
    SSL_shutdown(s); /* close_notify */
    char b[64];
    while (SSL_read(s, b, sizeof b) > 0) {
    }
  }
  SSL_free(s);
  SSL_CTX_free(ctx);
  close(fd);
out:
  cl->done = 1;
  return NULL;
}

/* ---- fixture ------------------------------------------------------------------------- */

typedef struct fixture {
  uv_loop_t loop;
  rn_net_t *net;
  rn_net_tls_t *tls;
  rn_net_listener_t *lst;
  char *dir;
  bool done;
} fixture_t;

#define RUN_UNTIL(fx, cond) RN_RUN_UNTIL(&(fx)->loop, cond, 2000)

static int setup(void **state) {
  memset(&S, 0, sizeof S);
  fixture_t *fx = calloc(1, sizeof *fx);
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  fx->dir = rn_test_tmpdir();
  char cert[512], key[512], why[512] = "";
  snprintf(cert, sizeof cert, "%s/cert.pem", fx->dir);
  snprintf(key, sizeof key, "%s/key.pem", fx->dir);
  make_cert(cert, key);
  static const unsigned char alpn[] = "\x06x-test\x08http/1.1";
  fx->tls = rn_net_tls_new(cert, key, alpn, sizeof alpn - 1, "cert", "key", why, sizeof why);
  if (fx->tls == NULL) print_error("%s\n", why);
  assert_non_null(fx->tls);
  rn_net_opts_t no = {0};
  fx->net = rn_net_new(&fx->loop, &no);
  rn_net_listen_opts_t lo = {.addr = "test", .host = "127.0.0.1", .name = "tls", .max_conns = 4, .ops = &e_ops,
                             .tls = fx->tls};
  assert_int_equal(rn_net_listen(fx->net, &lo, &fx->lst, why, sizeof why), 0);
  rn_net_start(fx->net);
  *state = fx;
  return 0;
}

static void on_done(rn_net_t *net, void *arg) { ((fixture_t *)arg)->done = true; }

static int teardown(void **state) {
  fixture_t *fx = *state;
  rn_net_shutdown(fx->net, on_done, fx);
  RUN_UNTIL(fx, fx->done);
  while (uv_run(&fx->loop, UV_RUN_NOWAIT) != 0) {
  }
  rn_net_destroy(fx->net);
  rn_net_tls_free(fx->tls);
  assert_int_equal(uv_loop_close(&fx->loop), 0);
  rn_test_rmtree(fx->dir);
  free(fx->dir);
  free(fx);
  return 0;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_plaintext_above_tls(void **state) {
  fixture_t *fx = *state;
  client_t cl = {.port = rn_net_listener_port(fx->lst), .speak_tls = true};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, client_main, &cl), 0);
  RUN_UNTIL(fx, cl.done && S.freed == 1);
  pthread_join(th, NULL);
  assert_true(cl.ok);
  assert_true(S.tls_ready);
  assert_false(S.plaintext_before_ready);
  assert_string_equal(S.alpn, "x-test"); /* the server's preference among the client's offers */
  assert_string_equal(cl.alpn, "x-test");
  assert_int_equal(S.ngot, 4);
  assert_memory_equal(S.got, "ping", 4); /* the protocol saw plaintext */
  assert_memory_equal(cl.echo, "ping", 4); /* and its write went out encrypted */
  assert_true(S.eof);                      /* close_notify → UV_EOF */
  assert_false(S.etls);
}

static void test_handshake_failure(void **state) {
  fixture_t *fx = *state;
  client_t cl = {.port = rn_net_listener_port(fx->lst), .speak_tls = false};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, client_main, &cl), 0);
  RUN_UNTIL(fx, cl.done && S.freed == 1);
  pthread_join(th, NULL);
  assert_true(cl.ok);
  assert_true(S.etls);
  assert_false(S.tls_ready);
  assert_int_equal(S.ngot, 0);
}

static void test_bad_key(void **state) {
  char why[512] = "";
  rn_net_tls_t *tls = rn_net_tls_new("/nonexistent/cert.pem", "/nonexistent/key.pem", NULL, 0, "my_cert", "my_key",
                                     why, sizeof why);
  assert_null(tls);
  assert_true(strncmp(why, "my_cert /nonexistent/cert.pem: ", 31) == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_plaintext_above_tls, setup, teardown),
      cmocka_unit_test_setup_teardown(test_handshake_failure, setup, teardown),
      cmocka_unit_test(test_bad_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
