/*
 * http_h2.c — HTTP/2 on one connection of the HTTP port, with nghttp2
 * (Debian's libnghttp2): cleartext with prior knowledge (the preface
 * decided it, http_server.c) or ALPN h2 under TLS.
 *
 * Owns the nghttp2 session of a connection and the mapping stream → request
 * (the stream's user data is its rn__hreq_t). nghttp2 does the framing,
 * HPACK, flow control (WINDOW_UPDATEs are automatic once a callback has
 * taken the data) and the stream state machine; this file turns streams
 * into requests and responses into nghttp2_submit_response with a data
 * provider reading the response body.
 *
 * Invariants:
 *   - Input is fed with nghttp2_session_mem_recv; output is pulled with
 *     nghttp2_session_mem_send only from the deferred work (h2_work),
 *     while the connection's unwritten output is under
 *     max_output_bytes_per_connection, so a client that does not read
 *     stops costing memory.
 *   - Callbacks check rn_conn_closing(&conn->base) first: a connection closed inside one
 *     (out of memory) has freed its requests.
 *   - A complete request is routed at once while the connection's output
 *     budget (unwritten output + held answers, rn__hconn_budget_ok) allows;
 *     otherwise it waits as "deferred" and h2_work routes it, in
 *     arrival order, once answers went out. Reading goes on (only unwritten
 *     output stops it): the client's WINDOW_UPDATEs are what lets held
 *     answers drain.
 *   - A request lives until both its stream closed and the router answered;
 *     whichever comes last frees it. An answer for a stream the client
 *     reset is dropped.
 *   - A response sent before its request ended (413, 431, 408) is followed
 *     by RST_STREAM(NO_ERROR), so the client stops sending the body.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"

static void h2_work(rn__hconn_t *conn);

/* nghttp2_nv takes non-const pointers; with NGHTTP2_NV_FLAG_NONE it copies. */
#define NV(n, v, nl, vl) \
  ((nghttp2_nv){(uint8_t *)(uintptr_t)(n), (uint8_t *)(uintptr_t)(v), (nl), (vl), NGHTTP2_NV_FLAG_NONE})

static rn__hreq_t *stream_req(nghttp2_session *s, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(s, stream_id);
}

static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *source, void *user_data) {
  (void)s;
  (void)stream_id;
  (void)user_data;
  rn__hreq_t *req = source->ptr;
  size_t left = req->rbody_len - req->rbody_off;
  size_t n = left < length ? left : length;
  if (n == left) *flags |= NGHTTP2_DATA_FLAG_EOF;
  if (rn_conn_tls(&req->conn->base)) {
    /* Encryption copies anyway, one record per output chunk: whole frames
     * in the output's 16 KiB chunks make fewer, fuller records than a
     * 9-byte header chunk before every body chunk would. */
    if (n > 0) memcpy(buf, req->rbody + req->rbody_off, n);
    req->rbody_off += n;
    rn__hreq_body_sent(req, n);
    return (ssize_t)n;
  }
  /* Cleartext: no copy into nghttp2's frame buffer; send_body puts the
   * frame header and a chunk pointing into the body on the output (a
   * GetRecords answer is 10+ MiB), written with one writev. */
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  return (ssize_t)n;
}

/* The DATA frame read_body announced (NGHTTP2_DATA_FLAG_NO_COPY): its
 * 9-byte header, then length bytes of the body from where the last frame
 * ended. No padding: the session never asks for it (no select_padding
 * callback). Called from nghttp2_session_mem_send after everything
 * serialized before this frame was returned and put on the output, so
 * the order on the wire holds. */
static int send_body(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
                     nghttp2_data_source *source, void *user_data) {
  (void)s;
  rn__hconn_t *conn = user_data;
  rn__hreq_t *req = source->ptr;
  if (frame->data.padlen > 0 || length > req->rbody_len - req->rbody_off) return NGHTTP2_ERR_CALLBACK_FAILURE;
  rn__hconn_send(conn, framehd, 9);
  rn__hconn_send_body(conn, req, req->rbody_off, length);
  if (rn_conn_closing(&conn->base)) return NGHTTP2_ERR_CALLBACK_FAILURE;
  req->rbody_off += length;
  rn__hreq_body_sent(req, length);
  return 0;
}

/* The transport answers before the request ended (limits, timeout). */
static void early(rn__hreq_t *req, int status) {
  const rn_http_opts_t *cfg = req->conn->hs->cfg;
  char msg[160];
  req->early = true;
  req->err = status;
  switch (status) {
  case 431:
    snprintf(msg, sizeof msg, "request header list exceeds %u bytes (http_max_header_bytes)",
             (unsigned)cfg->http_max_header_bytes);
    rn__hreq_error(req, 431, "RequestHeaderFieldsTooLargeException", msg);
    break;
  case 413:
    snprintf(msg, sizeof msg, "request body exceeds %u bytes (http_max_body_bytes)", (unsigned)cfg->http_max_body_bytes);
    rn__hreq_error(req, 413, "RequestEntityTooLargeException", msg);
    break;
  case 417: rn__hreq_error(req, 417, "ExpectationFailedException", "only Expect: 100-continue is supported"); break;
  case 408:
    snprintf(msg, sizeof msg, "request body stalled for %u ms (http_body_timeout_ms)", (unsigned)cfg->http_body_timeout_ms);
    rn__hreq_error(req, 408, "RequestTimeoutException", msg);
    break;
  default: rn__hreq_error(req, 400, "BadRequestException", "malformed request"); break;
  }
}

/* The whole request arrived (END_STREAM). */
static void request_done(rn__hreq_t *req) {
  rn__hconn_t *conn = req->conn;
  if ((req->rx == RN__RQ_DONE)) return;
  req->rx = RN__RQ_DONE;
  assert(conn->h2_receiving > 0);
  conn->h2_receiving--;
  if ((req->tx == RN__TX_ANSWERED) || req->early) return; /* answered early; the rest was dropped */
  if (!rn__hconn_budget_ok(conn)) {
    req->tx = RN__TX_DEFERRED; /* h2_work routes it once the answers fit */
    conn->h2_deferred++;
    return;
  }
  rn__hreq_dispatch(req);
}

/* Route deferred streams, in arrival order, while the budget allows. */
static void route_deferred(rn__hconn_t *conn) {
  rn__hreq_t *next;
  for (rn__hreq_t *req = conn->reqs; req != NULL && conn->h2_deferred > 0 && !rn_conn_closing(&conn->base); req = next) {
    next = req->next;
    if ((req->tx != RN__TX_DEFERRED)) continue;
    if (!rn__hconn_budget_ok(conn)) break;
    req->tx = RN__TX_NONE;
    conn->h2_deferred--;
    rn__hreq_dispatch(req);
  }
}

/* ---- callbacks ------------------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *user_data) {
  rn__hconn_t *conn = user_data;
  if (rn_conn_closing(&conn->base)) return NGHTTP2_ERR_CALLBACK_FAILURE;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  rn__hreq_t *req = rn__hreq_new(conn);
  if (req == NULL) return NGHTTP2_ERR_CALLBACK_FAILURE;
  req->stream_id = frame->hd.stream_id;
  req->version = 20;
  req->h2_open = true;
  if (nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, req) != 0) {
    rn__hreq_free(req);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  rn__hreq_link(req);
  conn->h2_receiving++;
  return 0;
}

static bool put_kv(rn__hreq_t *req, const uint8_t *name, size_t namelen, const uint8_t *value, size_t valuelen) {
  uint32_t n = rn__hreq_put(req, (const char *)name, namelen, true);
  uint32_t v = n != RN__NOOFF ? rn__hreq_put(req, (const char *)value, valuelen, true) : RN__NOOFF;
  return v != RN__NOOFF && rn__hreq_add_header(req, n, v);
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
  (void)flags;
  rn__hconn_t *conn = user_data;
  if (rn_conn_closing(&conn->base)) return NGHTTP2_ERR_CALLBACK_FAILURE;
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  rn__hreq_t *req = stream_req(s, frame->hd.stream_id);
  if (req == NULL || (req->rx >= RN__RQ_BODY)) return 0; /* trailers are not kept */
  req->head_bytes += namelen + valuelen + 32;
  if (req->err != 0) return 0;
  if (req->head_bytes > conn->hs->cfg->http_max_header_bytes) {
    req->err = 431; /* answered when the header block ends */
    return 0;
  }
  bool ok = true;
  if (namelen > 0 && name[0] == ':') {
    uint32_t *field = NULL;
    if (namelen == 7 && memcmp(name, ":method", 7) == 0)
      field = &req->method;
    else if (namelen == 10 && memcmp(name, ":authority", 10) == 0)
      field = &req->authority;
    else if (namelen == 7 && memcmp(name, ":scheme", 7) == 0)
      field = &req->scheme;
    if (field != NULL) {
      *field = rn__hreq_put(req, (const char *)value, valuelen, true);
      ok = *field != RN__NOOFF;
    } else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
      const uint8_t *q = memchr(value, '?', valuelen);
      size_t plen = q != NULL ? (size_t)(q - value) : valuelen;
      req->path = rn__hreq_put(req, (const char *)value, plen, true);
      ok = req->path != RN__NOOFF;
      if (ok && q != NULL) {
        req->query = rn__hreq_put(req, (const char *)q + 1, valuelen - plen - 1, true);
        ok = req->query != RN__NOOFF;
      }
    }
  } else {
    ok = put_kv(req, name, namelen, value, valuelen);
  }
  return ok ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  (void)flags;
  rn__hconn_t *conn = user_data;
  if (rn_conn_closing(&conn->base)) return NGHTTP2_ERR_CALLBACK_FAILURE;
  rn__hreq_t *req = stream_req(s, stream_id);
  if (req == NULL || req->early || (req->tx == RN__TX_ANSWERED) || (req->rx == RN__RQ_DONE)) return 0;
  if (req->body_len + len > conn->hs->cfg->http_max_body_bytes) {
    early(req, 413);
    return 0;
  }
  return rn__hreq_body(req, data, len) ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user_data) {
  rn__hconn_t *conn = user_data;
  if (rn_conn_closing(&conn->base)) return NGHTTP2_ERR_CALLBACK_FAILURE;
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  rn__hreq_t *req = stream_req(s, frame->hd.stream_id);
  if (req == NULL) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (req->rx < RN__RQ_BODY) req->rx = RN__RQ_BODY;
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (req->err == 0) {
      const char *cl = rn__hreq_header(req, "content-length");
      if (cl != NULL) {
        char *endp;
        unsigned long long v = strtoull(cl, &endp, 10);
        if (*cl != '\0' && *endp == '\0') req->content_length = v;
        if (req->content_length != UINT64_MAX && req->content_length > conn->hs->cfg->http_max_body_bytes)
          req->err = 413;
      }
      const char *expect = rn__hreq_header(req, "expect");
      if (req->err == 0 && expect != NULL) {
        if (strcasecmp(expect, "100-continue") != 0) {
          req->err = 417;
        } else if (!end) {
          nghttp2_nv nv = NV(":status", "100", 7, 3);
          nghttp2_submit_headers(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NULL, &nv, 1, NULL);
        }
      }
    }
    if (req->err != 0) early(req, req->err);
    if (rn_conn_closing(&conn->base)) return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) request_done(req);
  return rn_conn_closing(&conn->base) ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *user_data) {
  rn__hconn_t *conn = user_data;
  if (rn_conn_closing(&conn->base)) return NGHTTP2_ERR_CALLBACK_FAILURE;
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    rn__hreq_t *req = stream_req(s, frame->hd.stream_id);
    if (req != NULL && req->early && (req->rx != RN__RQ_DONE))
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
  }
  return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *user_data) {
  (void)error_code;
  rn__hconn_t *conn = user_data;
  if (rn_conn_closing(&conn->base)) return 0;
  rn__hreq_t *req = stream_req(s, stream_id);
  if (req == NULL) return 0;
  req->h2_open = false;
  if ((req->rx != RN__RQ_DONE)) {
    req->rx = RN__RQ_DONE;
    assert(conn->h2_receiving > 0);
    conn->h2_receiving--;
  }
  if ((req->tx == RN__TX_ANSWERED)) {
    req->tx = RN__TX_NONE;
    assert(conn->answered > 0);
    conn->answered--;
  }
  conn->last_active = rn__hconn_now(conn);
  if (req->tx != RN__TX_ROUTING) {
    rn__hreq_unlink(req);
    rn__hreq_free(req);
  }
  /* else: the reply callback finds h2_open false and frees it */
  return 0;
}

static int on_error(nghttp2_session *s, int lib_error_code, const char *msg, size_t len, void *user_data) {
  (void)s;
  (void)lib_error_code;
  rn__hconn_t *conn = user_data;
  rn__hlogf(conn, RN_LVL_DEBUG, "#%llu %s: HTTP/2: %.*s", (unsigned long long)conn->base.id, conn->base.peer, (int)len, msg);
  return 0;
}

/* ---- setup ------------------------------------------------------------------------- */

rn_err_t rn__h2_global_init(rn_http_t *hs) {
  if (nghttp2_session_callbacks_new(&hs->h2cb) != 0) return RN_ENOMEM;
  nghttp2_session_callbacks_set_on_begin_headers_callback(hs->h2cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(hs->h2cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(hs->h2cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(hs->h2cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(hs->h2cb, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(hs->h2cb, on_stream_close);
  nghttp2_session_callbacks_set_send_data_callback(hs->h2cb, send_body);
  nghttp2_session_callbacks_set_error_callback2(hs->h2cb, on_error);
  if (nghttp2_option_new(&hs->h2opt) != 0) {
    nghttp2_session_callbacks_del(hs->h2cb);
    hs->h2cb = NULL;
    return RN_ENOMEM;
  }
  /* Our own SETTINGS advertise the limit; nghttp2 enforces it on peers. */
  nghttp2_option_set_max_send_header_block_length(hs->h2opt, 64 * 1024);
  return 0;
}

void rn__h2_global_free(rn_http_t *hs) {
  if (hs->h2opt != NULL) nghttp2_option_del(hs->h2opt);
  if (hs->h2cb != NULL) nghttp2_session_callbacks_del(hs->h2cb);
  hs->h2opt = NULL;
  hs->h2cb = NULL;
}

static bool h2_start(rn__hconn_t *conn) {
  rn_http_t *hs = conn->hs;
  if (nghttp2_session_server_new2(&conn->h2, hs->h2cb, conn, hs->h2opt) != 0) return false;
  uint32_t streams = hs->cfg->max_inflight_per_connection < RN__H2_MAX_STREAMS ? hs->cfg->max_inflight_per_connection
                                                                                : RN__H2_MAX_STREAMS;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, RN__H2_STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, hs->cfg->http_max_header_bytes},
  };
  if (nghttp2_submit_settings(conn->h2, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0) return false;
  if (nghttp2_session_set_local_window_size(conn->h2, NGHTTP2_FLAG_NONE, 0, (int32_t)RN__H2_CONN_WINDOW) != 0)
    return false;
  rn__hlogf(conn, RN_LVL_DEBUG, "#%llu %s: HTTP/2", (unsigned long long)conn->base.id, conn->base.peer);
  return true;
}

/* ---- input, output ------------------------------------------------------------------- */

static void h2_input(rn__hconn_t *conn) {
  if (conn->in_len == 0 || conn->h2 == NULL) return;
  ssize_t rv = nghttp2_session_mem_recv(conn->h2, conn->in, conn->in_len);
  if (rn_conn_closing(&conn->base)) return;
  conn->in_len = 0; /* nghttp2 takes everything (or fails) */
  if (rv < 0) {
    rn__hlogf(conn, RN_LVL_DEBUG, "#%llu %s: HTTP/2 session error: %s", (unsigned long long)conn->base.id, conn->base.peer,
             nghttp2_strerror((int)rv));
    /* Whatever nghttp2 queued (GOAWAY with the error) goes out first. */
    h2_work(conn);
    rn__hconn_finish(conn);
  }
  rn__hconn_schedule(conn);
}

static void h2_work(rn__hconn_t *conn) {
  if (conn->h2 == NULL || rn_conn_closing(&conn->base) || (conn->end >= RN__HE_FIN_SENT)) return;
  const rn_http_opts_t *cfg = conn->hs->cfg;
  if (conn->h2_deferred > 0) route_deferred(conn);
  if (rn_conn_closing(&conn->base)) return;
  while (conn->out_bytes + conn->base.writing < cfg->max_output_bytes_per_connection) {
    const uint8_t *p;
    ssize_t n = nghttp2_session_mem_send(conn->h2, &p);
    if (n < 0) {
      rn__hlogf(conn, RN_LVL_WARN, "#%llu %s: HTTP/2 send failed: %s", (unsigned long long)conn->base.id, conn->base.peer,
               nghttp2_strerror((int)n));
      rn__hconn_close(conn, "HTTP/2 send failed");
      return;
    }
    if (n == 0) break;
    rn__hconn_send(conn, p, (size_t)n);
    if (rn_conn_closing(&conn->base)) return;
  }
  if ((conn->end < RN__HE_FINISH) && !nghttp2_session_want_read(conn->h2) && !nghttp2_session_want_write(conn->h2))
    rn__hconn_finish(conn); /* GOAWAY exchanged and no stream left */
}

static void h2_answered(rn__hreq_t *req) {
  rn__hconn_t *conn = req->conn;
  if (!req->h2_open) { /* the client reset the stream meanwhile */
    req->tx = RN__TX_NONE;
    assert(conn->answered > 0);
    conn->answered--;
    rn__hreq_unlink(req);
    rn__hreq_free(req);
    return;
  }
  char status[8], clen[24];
  snprintf(status, sizeof status, "%d", req->status);
  bool has_body = rn__http_status_has_body(req->status);
  size_t max = req->nrh + 4, n = 0;
  nghttp2_nv small[16], *nv = max <= 16 ? small : malloc(max * sizeof *nv);
  if (nv == NULL) {
    rn__hconn_close(conn, "out of memory");
    return;
  }
  nv[n++] = NV(":status", status, 7, strlen(status));
  for (size_t i = 0; i < req->nrh; i++)
    nv[n++] = NV(req->rh[i].name, req->rh[i].value, strlen(req->rh[i].name), strlen(req->rh[i].value));
  if (!req->app_rid) nv[n++] = NV("x-amzn-requestid", req->rid, 16, strlen(req->rid));
  if (!req->app_date) {
    const char *d = rn__http_date(conn->hs);
    nv[n++] = NV("date", d, 4, strlen(d));
  }
  if (has_body) {
    snprintf(clen, sizeof clen, "%zu", req->rbody_len);
    nv[n++] = NV("content-length", clen, 14, strlen(clen));
  }
  nghttp2_data_provider prd;
  prd.source.ptr = req;
  prd.read_callback = read_body;
  bool data = has_body && !req->is_head && req->rbody_len > 0;
  int rv = nghttp2_submit_response(conn->h2, req->stream_id, nv, n, data ? &prd : NULL);
  if (nv != small) free(nv);
  if (rv != 0) {
    rn__hlogf(conn, RN_LVL_WARN, "#%llu %s: cannot submit an HTTP/2 response: %s", (unsigned long long)conn->base.id,
             conn->base.peer, nghttp2_strerror(rv));
    nghttp2_submit_rst_stream(conn->h2, NGHTTP2_FLAG_NONE, req->stream_id, NGHTTP2_INTERNAL_ERROR);
  }
  rn__hconn_schedule(conn);
}

static void h2_timeout(rn__hconn_t *conn) {
  /* 408 on every stream still receiving; the connection stays for the others. */
  for (rn__hreq_t *req = conn->reqs; req != NULL && !rn_conn_closing(&conn->base); req = req->next)
    if ((req->rx != RN__RQ_DONE) && (req->tx != RN__TX_ANSWERED) && !req->early) early(req, 408);
  conn->last_read = rn__hconn_now(conn); /* the streams are answered; do not fire again at once */
  rn__hconn_schedule(conn);
}

static void goaway(rn__hconn_t *conn) {
  if (conn->goaway || conn->h2 == NULL) return;
  conn->goaway = true;
  nghttp2_submit_goaway(conn->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(conn->h2),
                        NGHTTP2_NO_ERROR, NULL, 0);
  rn__hconn_schedule(conn);
}

static void h2_idle(rn__hconn_t *conn) {
  goaway(conn);
  rn__hconn_finish(conn);
}

static void h2_drain(rn__hconn_t *conn) { goaway(conn); }

/* ---- the table --------------------------------------------------------------------- */

static bool h2_may_read(const rn__hconn_t *conn) {
  return true; /* HTTP/2 keeps reading past held answers: the client's WINDOW_UPDATEs drain them */
}

static rn__rx_t h2_receiving(const rn__hconn_t *conn, uint64_t *since) {
  if (conn->h2_receiving == 0) return RN__RX_NONE;
  *since = conn->last_read;
  return RN__RX_BODY;
}

static bool h2_pending_output(const rn__hconn_t *conn) {
  return conn->h2 != NULL && nghttp2_session_want_write(conn->h2);
}

static bool h2_input_done(const rn__hconn_t *conn) { return true; }

const rn_http_proto_ops_t rn__h2_ops = {
    .name = "HTTP/2",
    .version = 20,
    .start = h2_start,
    .input = h2_input,
    .work = h2_work,
    .answered = h2_answered,
    .may_read = h2_may_read,
    .receiving = h2_receiving,
    .timeout = h2_timeout,
    .idle = h2_idle,
    .stop = goaway,
    .drain = h2_drain,
    .pending_output = h2_pending_output,
    .input_done = h2_input_done,
};
