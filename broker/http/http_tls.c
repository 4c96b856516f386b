/*
 * http_tls.c — TLS on the HTTP port with OpenSSL (Debian's libssl), driven
 * through memory BIOs so the libuv socket stays the only I/O: ciphertext
 * read by libuv is written into the SSL's read BIO; what the SSL writes to
 * its write BIO (handshake flights, alerts, records) is moved to the
 * connection's output and written by the connection like any other bytes.
 *
 * Owns the SSL_CTX (certificate chain, key, ALPN selection) and each
 * connection's SSL object.
 *
 * ALPN: the server offers h2, then http/1.1, in its own order of
 * preference; "h2" starts HTTP/2 at once, "http/1.1" HTTP/1.1, and a
 * client that sends no ALPN is served like a cleartext one (the first bytes
 * decide). TLS 1.2 is the minimum; renegotiation is off.
 *
 * Invariants: the SSL never blocks (memory BIOs: reads return WANT_READ
 * when the read BIO is empty; writes always fit); after every SSL call
 * that can produce bytes the write BIO is drained into the output, so
 * nothing waits in OpenSSL for a write that will not come.
 */
#include <limits.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

#include "http_int.h"

static const unsigned char alpn_protos[] = "\x02h2\x08http/1.1";

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  (void)ssl;
  (void)arg;
  unsigned char *sel = NULL;
  if (SSL_select_next_proto(&sel, outlen, alpn_protos, sizeof alpn_protos - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
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

SSL_CTX *rn__tls_ctx_new(const char *cert, const char *key, char *why, size_t whylen) {
  char err[256];
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    ssl_error_text(err, sizeof err);
    snprintf(why, whylen, "http: cannot create a TLS context: %s", err);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* idle connections keep no record buffers */
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    ssl_error_text(err, sizeof err);
    snprintf(why, whylen, "http_tls_cert %s: %s", cert, err);
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    ssl_error_text(err, sizeof err);
    snprintf(why, whylen, "http_tls_key %s: %s", key, err);
    goto fail;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ssl_error_text(err, sizeof err);
    snprintf(why, whylen, "http_tls_key %s does not match http_tls_cert %s: %s", key, cert, err);
    goto fail;
  }
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

bool rn__tls_conn_init(rn__hconn_t *conn) {
  SSL *ssl = SSL_new(conn->hs->tls);
  BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
  if (ssl == NULL || rbio == NULL || wbio == NULL) {
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
  conn->ssl = ssl;
  return true;
}

/* Move everything the SSL wrote to the connection's output. */
static bool drain(rn__hconn_t *conn) {
  BIO *w = SSL_get_wbio(conn->ssl);
  size_t pending;
  while ((pending = BIO_ctrl_pending(w)) > 0) {
    size_t want = pending < 65536 ? pending : 65536, room;
    uint8_t *p = rn__hconn_out_reserve(conn, want, &room);
    if (p == NULL) return false;
    int n = BIO_read(w, p, room > INT_MAX ? INT_MAX : (int)room);
    if (n <= 0) break;
    rn__hconn_out_commit(conn, (size_t)n);
  }
  return true;
}

bool rn__tls_recv(rn__hconn_t *conn, const uint8_t *data, size_t len) {
  char err[256];
  ERR_clear_error();
  if (BIO_write(SSL_get_rbio(conn->ssl), data, (int)len) != (int)len) return false;
  if (!conn->tls_ready) {
    int rc = SSL_do_handshake(conn->ssl);
    if (rc != 1) {
      int e = SSL_get_error(conn->ssl, rc);
      if (!drain(conn)) return false;
      if (e == SSL_ERROR_WANT_READ) return true;
      ssl_error_text(err, sizeof err);
      rn__hlogf(conn, RN_NET_LOG_DEBUG, "#%llu %s: TLS handshake failed: %s", (unsigned long long)conn->base.id, conn->base.peer,
               err);
      return false;
    }
    conn->tls_ready = true;
    if (!drain(conn)) return false;
    const unsigned char *alpn = NULL;
    unsigned int alen = 0;
    SSL_get0_alpn_selected(conn->ssl, &alpn, &alen);
    rn__hlogf(conn, RN_NET_LOG_DEBUG, "#%llu %s: TLS %s, ALPN %.*s", (unsigned long long)conn->base.id, conn->base.peer,
             SSL_get_version(conn->ssl), alen ? (int)alen : 4, alen ? (const char *)alpn : "none");
    /* Only recorded: the transport chooses the protocol (choose_protocol). */
    if (alen == 2 && memcmp(alpn, "h2", 2) == 0)
      conn->alpn = RN__ALPN_H2;
    else if (alen == 8 && memcmp(alpn, "http/1.1", 8) == 0)
      conn->alpn = RN__ALPN_H1;
  }
  for (;;) {
    size_t room;
    uint8_t *p = rn__hconn_in_room(conn, 16384, &room);
    if (p == NULL) return false;
    int n = SSL_read(conn->ssl, p, room > INT_MAX ? INT_MAX : (int)room);
    if (n > 0) {
      conn->in_len += (size_t)n;
      continue;
    }
    int e = SSL_get_error(conn->ssl, n);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify: the peer is done sending */
      conn->eof = true;
      break;
    }
    ssl_error_text(err, sizeof err);
    rn__hlogf(conn, RN_NET_LOG_DEBUG, "#%llu %s: TLS read failed: %s", (unsigned long long)conn->base.id, conn->base.peer, err);
    drain(conn);
    return false;
  }
  return drain(conn); /* session tickets, key updates */
}

bool rn__tls_send(rn__hconn_t *conn, const void *data, size_t len) {
  if (!conn->tls_ready) return false;
  ERR_clear_error();
  const uint8_t *p = data;
  while (len > 0) {
    int chunk = len > (size_t)INT_MAX ? INT_MAX : (int)len;
    int n = SSL_write(conn->ssl, p, chunk);
    if (n <= 0) {
      ERR_clear_error();
      return false;
    }
    p += n;
    len -= (size_t)n;
    if (!drain(conn)) return false;
  }
  return true;
}

void rn__tls_close_notify(rn__hconn_t *conn) {
  ERR_clear_error();
  SSL_shutdown(conn->ssl);
  ERR_clear_error();
  drain(conn);
}
