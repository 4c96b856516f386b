/*
 * tls.c — TLS below any protocol, with OpenSSL (Debian's libssl) driven
 * through memory BIOs so the libuv socket stays the only I/O: ciphertext
 * read by libuv is written into the SSL's read BIO and the plaintext goes
 * to the protocol's on_read; what the SSL writes to its write BIO
 * (handshake flights, alerts, records) collects in the connection's pending
 * ciphertext and is written by net (rn__tls_flush), in order with the
 * protocol's own writes.
 *
 * Owns each rn_net_tls_t (SSL_CTX: certificate chain, key, ALPN offer) and
 * each connection's SSL object and pending ciphertext.
 *
 * ALPN: the server offers its list in its own order of preference; the
 * protocol reads the choice (rn_conn_alpn) in ops->on_tls_ready and decides
 * what to speak. TLS 1.2 is the minimum; renegotiation is off.
 *
 * Invariants: the SSL never blocks (memory BIOs: reads return WANT_READ
 * when the read BIO is empty; writes always fit); after every SSL call that
 * can produce bytes the write BIO is drained into the pending ciphertext,
 * and pending ciphertext is written before anything the protocol writes
 * later and at the latest in the next step 3 (the connection is
 * scheduled), so nothing waits in OpenSSL for a write that will not come.
 */
#include <assert.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_int.h"

struct rn_net_tls {
  SSL_CTX *ctx;
  unsigned char alpn[256];
  size_t alpn_len;
};

struct rn__tls_conn {
  SSL *ssl;
  bool ready;    /* handshake done */
  bool notified; /* close_notify queued */
  uint8_t *out;  /* pending ciphertext, out[0, out_len) */
  size_t out_len, out_cap;
};

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  (void)ssl;
  rn_net_tls_t *tls = arg;
  unsigned char *sel = NULL;
  if (tls->alpn_len == 0 ||
      SSL_select_next_proto(&sel, outlen, tls->alpn, (unsigned)tls->alpn_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK; /* no common protocol: go on without ALPN */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static void ssl_error_text(char *buf, size_t len) {
  unsigned long e = ERR_get_error();
  if (e == 0)
    snprintf(buf, len, "unknown error");
  else
    ERR_error_string_n(e, buf, len);
  ERR_clear_error();
}

rn_net_tls_t *rn_net_tls_new(const char *cert, const char *key, const unsigned char *alpn, size_t alpn_len,
                             const char *cert_what, const char *key_what, char *why, size_t whylen) {
  char err[256];
  rn_net_tls_t *tls = calloc(1, sizeof *tls);
  if (tls == NULL || alpn_len > sizeof tls->alpn) {
    snprintf(why, whylen, "tls: %s", tls == NULL ? "out of memory" : "ALPN list too long");
    free(tls);
    return NULL;
  }
  if (alpn_len > 0) memcpy(tls->alpn, alpn, alpn_len);
  tls->alpn_len = alpn_len;
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    ssl_error_text(err, sizeof err);
    snprintf(why, whylen, "tls: cannot create a TLS context: %s", err);
    free(tls);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle connections keep no record buffers */
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    ssl_error_text(err, sizeof err);
    snprintf(why, whylen, "%s %s: %s", cert_what, cert, err);
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    ssl_error_text(err, sizeof err);
    snprintf(why, whylen, "%s %s: %s", key_what, key, err);
    goto fail;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ssl_error_text(err, sizeof err);
    snprintf(why, whylen, "%s %s does not match %s %s: %s", key_what, key, cert_what, cert, err);
    goto fail;
  }
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, tls);
  tls->ctx = ctx;
  return tls;
fail:
  SSL_CTX_free(ctx);
  free(tls);
  return NULL;
}

void rn_net_tls_free(rn_net_tls_t *tls) {
  if (tls == NULL) return;
  SSL_CTX_free(tls->ctx);
  free(tls);
}

bool rn__tls_conn_start(rn_conn_t *conn, rn_net_tls_t *tls) {
  rn__tls_conn_t *t = calloc(1, sizeof *t);
  SSL *ssl = SSL_new(tls->ctx);
  BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
  if (t == NULL || ssl == NULL || rbio == NULL || wbio == NULL) {
    free(t);
    SSL_free(ssl);
    BIO_free(rbio);
    BIO_free(wbio);
    ERR_clear_error();
    return false;
  }
  BIO_set_mem_eof_return(rbio, -1); /* empty = "try again", not EOF */
  BIO_set_mem_eof_return(wbio, -1);
  SSL_set_bio(ssl, rbio, wbio); /* the SSL owns both */
  SSL_set_accept_state(ssl);
  t->ssl = ssl;
  conn->tls = t;
  return true;
}

void rn__tls_conn_free(rn_conn_t *conn) {
  rn__tls_conn_t *t = conn->tls;
  if (t == NULL) return;
  SSL_free(t->ssl);
  free(t->out);
  free(t);
  conn->tls = NULL;
}

bool rn_conn_tls_ready(const rn_conn_t *conn) { return conn->tls != NULL && conn->tls->ready; }
bool rn_conn_tls_notified(const rn_conn_t *conn) { return conn->tls != NULL && conn->tls->notified; }

const unsigned char *rn_conn_alpn(const rn_conn_t *conn, size_t *len) {
  *len = 0;
  if (conn->tls == NULL || !conn->tls->ready) return NULL;
  const unsigned char *alpn = NULL;
  unsigned int alen = 0;
  SSL_get0_alpn_selected(conn->tls->ssl, &alpn, &alen);
  *len = alen;
  return alen > 0 ? alpn : NULL;
}

/* Move everything the SSL wrote to the pending ciphertext. */
static bool drain(rn_conn_t *conn) {
  rn__tls_conn_t *t = conn->tls;
  BIO *w = SSL_get_wbio(t->ssl);
  size_t pending;
  while ((pending = BIO_ctrl_pending(w)) > 0) {
    if (t->out_cap - t->out_len < pending) {
      size_t cap = t->out_cap ? t->out_cap * 2 : 16384;
      while (cap - t->out_len < pending) cap *= 2;
      uint8_t *p = realloc(t->out, cap);
      if (p == NULL) return false;
      t->out = p;
      t->out_cap = cap;
    }
    size_t room = t->out_cap - t->out_len;
    int n = BIO_read(w, t->out + t->out_len, room > INT_MAX ? INT_MAX : (int)room);
    if (n <= 0) break;
    t->out_len += (size_t)n;
  }
  if (t->out_len > 0) rn_conn_schedule(conn); /* written in step 3 at the latest */
  return true;
}

static void fail(rn_conn_t *conn, const char *what) {
  char err[256];
  ssl_error_text(err, sizeof err);
  rn_conn_logf(conn, RN_LVL_DEBUG, "#%llu %s: TLS %s failed: %s", (unsigned long long)conn->id, conn->peer, what,
               err);
  drain(conn); /* the alert, if any */
  conn->ops->on_read(conn, RN_NET_ETLS, NULL);
}

void rn__tls_on_read(rn_conn_t *conn, const uint8_t *data, size_t len) {
  rn__tls_conn_t *t = conn->tls;
  ERR_clear_error();
  if (len > INT_MAX || BIO_write(SSL_get_rbio(t->ssl), data, (int)len) != (int)len) {
    fail(conn, "read");
    return;
  }
  if (!t->ready) {
    int rc = SSL_do_handshake(t->ssl);
    if (rc != 1) {
      int e = SSL_get_error(t->ssl, rc);
      if (e == SSL_ERROR_WANT_READ) {
        if (!drain(conn)) rn_conn_close(conn, "out of memory");
        return;
      }
      fail(conn, "handshake");
      return;
    }
    t->ready = true;
    if (!drain(conn)) {
      rn_conn_close(conn, "out of memory");
      return;
    }
    size_t alen;
    const unsigned char *alpn = rn_conn_alpn(conn, &alen);
    rn_conn_logf(conn, RN_LVL_DEBUG, "#%llu %s: TLS %s, ALPN %.*s", (unsigned long long)conn->id, conn->peer,
                 SSL_get_version(t->ssl), alen ? (int)alen : 4, alen ? (const char *)alpn : "none");
    if (conn->ops->on_tls_ready != NULL) conn->ops->on_tls_ready(conn);
    if (rn_conn_closing(conn)) return;
  }
  for (;;) {
    uv_buf_t buf = uv_buf_init(NULL, 0);
    conn->ops->on_alloc(conn, 16384, &buf);
    if (buf.base == NULL || buf.len == 0) {
      conn->ops->on_read(conn, UV_ENOBUFS, &buf);
      return;
    }
    int n = SSL_read(t->ssl, buf.base, buf.len > INT_MAX ? INT_MAX : (int)buf.len);
    if (n > 0) {
      conn->ops->on_read(conn, n, &buf);
      if (rn_conn_closing(conn)) return;
      continue;
    }
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify: the peer is done sending */
      conn->ops->on_read(conn, UV_EOF, &buf);
      if (rn_conn_closing(conn)) return;
      break;
    }
    fail(conn, "read");
    return;
  }
  if (!drain(conn)) rn_conn_close(conn, "out of memory"); /* session tickets, key updates */
}

static bool queue_close_notify(rn_conn_t *conn) {
  rn__tls_conn_t *t = conn->tls;
  t->notified = true;
  ERR_clear_error();
  SSL_shutdown(t->ssl);
  ERR_clear_error();
  return drain(conn);
}

int rn__tls_encrypt(rn_conn_t *conn, const uv_buf_t *bufs, unsigned n, bool last) {
  rn__tls_conn_t *t = conn->tls;
  if (!t->ready) return UV_EPROTO;
  ERR_clear_error();
  for (unsigned i = 0; i < n; i++) {
    const char *p = bufs[i].base;
    size_t len = bufs[i].len;
    while (len > 0) {
      int chunk = len > (size_t)INT_MAX ? INT_MAX : (int)len;
      int w = SSL_write(t->ssl, p, chunk);
      if (w <= 0) {
        ERR_clear_error();
        return UV_EPROTO;
      }
      p += w;
      len -= (size_t)w;
      if (!drain(conn)) return UV_ENOMEM;
    }
  }
  if (last && !t->notified && !queue_close_notify(conn)) return UV_ENOMEM;
  return 0;
}

typedef struct tls_write {
  uv_write_t req;
  rn_conn_t *conn;
  uint8_t *buf;
  rn_conn_wreq_t *user;
  rn_conn_write_cb cb;
  size_t bytes;
} tls_write_t;

static void on_tls_write(uv_write_t *req, int status) {
  tls_write_t *tw = (tls_write_t *)req;
  rn_conn_t *conn = tw->conn;
  assert(conn->writes > 0 && conn->writing >= tw->bytes);
  conn->writes--;
  conn->writing -= tw->bytes;
  free(tw->buf);
  if (tw->user != NULL) {
    tw->user->conn = conn;
    tw->user->bytes = tw->bytes;
    tw->user->cb = tw->cb;
    tw->cb(conn, tw->user, status);
  } else if (status < 0 && status != UV_ECANCELED) {
    rn_conn_close(conn, uv_strerror(status)); /* net's own bytes (handshake, alerts) */
  }
  free(tw);
  rn_conn_unref(conn);
}

int rn__tls_flush(rn_conn_t *conn, rn_conn_wreq_t *user, size_t bytes, rn_conn_write_cb cb) {
  rn__tls_conn_t *t = conn->tls;
  if (t == NULL || t->out_len == 0) return user == NULL ? 0 : UV_EPROTO;
  if (rn_conn_closing(conn)) return UV_ECANCELED;
  tls_write_t *tw = malloc(sizeof *tw);
  if (tw == NULL) return UV_ENOMEM;
  *tw = (tls_write_t){.conn = conn, .buf = t->out, .user = user, .cb = cb, .bytes = bytes};
  uv_buf_t b = uv_buf_init((char *)t->out, (unsigned)t->out_len);
  int rc = uv_write(&tw->req, (uv_stream_t *)&conn->tcp, &b, 1, on_tls_write);
  if (rc != 0) {
    free(tw);
    return rc;
  }
  t->out = NULL; /* the write owns it now */
  t->out_len = t->out_cap = 0;
  conn->writes++;
  conn->writing += bytes;
  rn_conn_ref(conn);
  return 0;
}

void rn_conn_tls_close_notify(rn_conn_t *conn) {
  rn__tls_conn_t *t = conn->tls;
  if (t == NULL || !t->ready || t->notified || rn_conn_closing(conn)) return;
  if (!queue_close_notify(conn)) {
    rn_conn_close(conn, "out of memory");
    return;
  }
  int rc = rn__tls_flush(conn, NULL, 0, NULL);
  if (rc != 0) rn_conn_close(conn, uv_strerror(rc));
}
