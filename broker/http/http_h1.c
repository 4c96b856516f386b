/*
 * http_h1.c — HTTP/1.1 on one connection of the HTTP port, with
 * http-parser (Debian's libhttp-parser): keep-alive, pipelining, chunked
 * request bodies, Expect: 100-continue, the head and body limits.
 *
 * Owns the parser state in rn__hconn_t (h1p, h1cur, h1err, h1_stop) and the
 * order of responses on the wire.
 *
 * Invariants:
 *   - The parser pauses at the end of every request, so each complete
 *     request is dispatched outside parser callbacks, one at a time, and
 *     parsing resumes only while the connection may take more work (fewer
 *     than max_inflight_per_connection requests queued, output and held
 *     answers under max_output_bytes_per_connection, not draining). Bytes not parsed stay
 *     in conn->in and reading stops: TCP pushes back on the client.
 *   - conn->reqs is the pipeline in request order: a request joins it when
 *     its head is complete; responses leave from the front only, so answers
 *     that the router gives out of order still go out in request order. A
 *     100 Continue is sent only when its request is at the front.
 *   - After a response that closes (the client asked, HTTP/1.0 without
 *     keep-alive, an error the stream cannot recover from, shutdown) nothing
 *     more is parsed; the connection finishes (flush, FIN, linger).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"

static bool h1_may_parse(const rn__hconn_t *conn);

static rn__hconn_t *conn_of(http_parser *p) { return p->data; }

static bool h1_start(rn__hconn_t *conn) {
  http_parser_init(&conn->h1p, HTTP_REQUEST);
  conn->h1p.data = conn;
  return true;
}

/* ---- header assembly (strings arrive in pieces) ------------------------------- */

/* End the string being assembled (URL, name or value). */
static bool end_piece(rn__hreq_t *req) {
  if (req->h1_hstate == 0) return true;
  if (req->h1_hstate == 2) {
    /* Trim the value's trailing whitespace (http-parser keeps it). */
    uint32_t v = req->hoff[2 * (req->nh - 1) + 1];
    while (req->arena_len > v && (req->arena[req->arena_len - 1] == ' ' || req->arena[req->arena_len - 1] == '\t'))
      req->arena_len--;
  }
  bool name_only = req->h1_hstate == 1;
  req->h1_hstate = 0;
  if (rn__hreq_put(req, "", 0, true) == RN__NOOFF) return false;
  if (name_only) {
    /* A header with an empty value: its value is a fresh "". */
    uint32_t v = rn__hreq_put(req, "", 0, true);
    if (v == RN__NOOFF) return false;
    req->hoff[2 * (req->nh - 1) + 1] = v;
  }
  return true;
}

static int on_message_begin(http_parser *p) {
  rn__hconn_t *conn = conn_of(p);
  if (rn_conn_closing(&conn->base)) return -1;
  rn__hreq_t *req = rn__hreq_new(conn);
  if (req == NULL) {
    conn->h1err = 500;
    return -1;
  }
  req->version = 11;
  conn->h1cur = req;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  rn__hconn_t *conn = conn_of(p);
  rn__hreq_t *req = conn->h1cur;
  if (rn_conn_closing(&conn->base) || req == NULL) return -1;
  if (req->url == RN__NOOFF) {
    req->url = rn__hreq_put(req, "", 0, false);
    req->h1_hstate = 3; /* in the URL */
  }
  if (req->url == RN__NOOFF || !rn__hreq_more(req, at, len, false)) {
    conn->h1err = 500;
    return -1;
  }
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  rn__hconn_t *conn = conn_of(p);
  rn__hreq_t *req = conn->h1cur;
  if (rn_conn_closing(&conn->base) || req == NULL) return -1;
  if ((req->rx >= RN__RQ_BODY)) return 0; /* trailers after a chunked body: not kept */
  if (req->h1_hstate != 1) {
    if (!end_piece(req)) goto oom;
    uint32_t name = rn__hreq_put(req, "", 0, false);
    if (name == RN__NOOFF || !rn__hreq_add_header(req, name, RN__NOOFF)) goto oom;
    req->h1_hstate = 1;
  }
  if (!rn__hreq_more(req, at, len, true)) goto oom;
  return 0;
oom:
  conn->h1err = 500;
  return -1;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  rn__hconn_t *conn = conn_of(p);
  rn__hreq_t *req = conn->h1cur;
  if (rn_conn_closing(&conn->base) || req == NULL) return -1;
  if ((req->rx >= RN__RQ_BODY)) return 0;
  if (req->h1_hstate != 2) {
    if (req->h1_hstate != 1) return 0; /* cannot happen: a value follows a name */
    if (rn__hreq_put(req, "", 0, true) == RN__NOOFF) goto oom; /* end the name */
    uint32_t v = rn__hreq_put(req, "", 0, false);
    if (v == RN__NOOFF) goto oom;
    req->hoff[2 * (req->nh - 1) + 1] = v;
    req->h1_hstate = 2;
  }
  if (!rn__hreq_more(req, at, len, false)) goto oom;
  return 0;
oom:
  conn->h1err = 500;
  return -1;
}

static bool put_piece(rn__hreq_t *req, const char *src, size_t len, uint32_t *out) {
  uint32_t off = rn__hreq_put(req, src, len, true);
  if (off == RN__NOOFF) return false;
  *out = off;
  return true;
}

/* Split the request target into path, query and (absolute form) authority. */
static bool split_target(rn__hreq_t *req, bool connect) {
  const char *target = rn__hreq_str(req, req->url);
  size_t ulen = strlen(target);
  if (strcmp(target, "*") == 0) {
    req->path = req->url;
    return true;
  }
  if (ulen == 0 || ulen > UINT16_MAX) return false; /* http_parser_url offsets are 16-bit */
  /* A copy: the arena may move while the pieces are appended to it. */
  char *url = malloc(ulen + 1);
  if (url == NULL) return false;
  memcpy(url, target, ulen + 1);
  struct http_parser_url u;
  http_parser_url_init(&u);
  bool ok = http_parser_parse_url(url, ulen, connect, &u) == 0;
  if (ok && (u.field_set & (1 << UF_PATH)))
    ok = put_piece(req, url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len, &req->path);
  if (ok && (u.field_set & (1 << UF_QUERY)))
    ok = put_piece(req, url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len, &req->query);
  if (ok && (u.field_set & (1 << UF_HOST)) && rn__hreq_header(req, "host") == NULL) {
    /* Absolute form without Host: host[:port] from the target. */
    size_t hoff = u.field_data[UF_HOST].off, hlen = u.field_data[UF_HOST].len;
    if (u.field_set & (1 << UF_PORT)) hlen = u.field_data[UF_PORT].off + u.field_data[UF_PORT].len - hoff;
    ok = put_piece(req, url + hoff, hlen, &req->authority);
  }
  free(url);
  return ok;
}

static int on_headers_complete(http_parser *p) {
  rn__hconn_t *conn = conn_of(p);
  rn__hreq_t *req = conn->h1cur;
  const rn_http_opts_t *cfg = conn->hs->cfg;
  if (rn_conn_closing(&conn->base) || req == NULL) return -1;
  if (!end_piece(req)) {
    conn->h1err = 500;
    return -1;
  }
  if (req->rx < RN__RQ_BODY) req->rx = RN__RQ_BODY;
  req->version = p->http_major == 1 && p->http_minor == 0 ? 10 : 11;
  const char *m = http_method_str((enum http_method)p->method);
  req->method = rn__hreq_put(req, m, strlen(m), true);
  if (req->method == RN__NOOFF) {
    conn->h1err = 500;
    return -1;
  }
  rn__hreq_link(req); /* in pipeline order from now on; errors below answer in order */
  if (p->method == HTTP_CONNECT) {
    conn->h1err = 405;
    return -1;
  }
  if (!split_target(req, false)) {
    conn->h1err = 400;
    return -1;
  }
  req->keep_alive = http_should_keep_alive(p) != 0;
  if (p->upgrade) req->keep_alive = false; /* no protocol switch here: answer, then close */
  req->is_head = p->method == HTTP_HEAD;
  bool chunked = (p->flags & F_CHUNKED) != 0;
  if (!chunked && p->content_length != ULLONG_MAX) req->content_length = p->content_length;
  if (req->content_length != UINT64_MAX && req->content_length > cfg->http_max_body_bytes) {
    conn->h1err = 413;
    return -1;
  }
  const char *expect = rn__hreq_header(req, "expect");
  if (expect != NULL) {
    if (strcasecmp(expect, "100-continue") != 0) {
      conn->h1err = 417;
      return -1;
    }
    if (req->version >= 11 && (chunked || (req->content_length != UINT64_MAX && req->content_length > 0)))
      req->expect_continue = true;
  }
  /* Pause here too, so h1_input knows where the head ends (the bare-LF
   * check covers head bytes only). */
  conn->h1_head_pause = true;
  http_parser_pause(p, 1);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  rn__hconn_t *conn = conn_of(p);
  rn__hreq_t *req = conn->h1cur;
  if (rn_conn_closing(&conn->base) || req == NULL) return -1;
  req->expect_continue = false; /* the client did not wait for it */
  if (req->body_len + len > conn->hs->cfg->http_max_body_bytes) {
    conn->h1err = 413;
    return -1;
  }
  if (!rn__hreq_body(req, (const uint8_t *)at, len)) {
    conn->h1err = 500;
    return -1;
  }
  return 0;
}

static int on_message_complete(http_parser *p) {
  rn__hconn_t *conn = conn_of(p);
  if (rn_conn_closing(&conn->base) || conn->h1cur == NULL) return -1;
  http_parser_pause(p, 1); /* dispatch outside the parser (h1_input) */
  return 0;
}

void rn__h1_settings(http_parser_settings *s) {
  memset(s, 0, sizeof *s);
  s->on_message_begin = on_message_begin;
  s->on_url = on_url;
  s->on_header_field = on_header_field;
  s->on_header_value = on_header_value;
  s->on_headers_complete = on_headers_complete;
  s->on_body = on_body;
  s->on_message_complete = on_message_complete;
}

/* ---- errors ------------------------------------------------------------------------- */

/* Answer the request in progress (or a fresh one) with status and close
 * after it: the byte stream cannot be trusted any more. */
static void fail(rn__hconn_t *conn, int status, const char *type, const char *msg) {
  rn__hreq_t *req = conn->h1cur;
  conn->h1cur = NULL;
  if (req == NULL) {
    req = rn__hreq_new(conn);
    if (req == NULL) {
      rn__hconn_close(conn, "out of memory");
      return;
    }
  }
  if (!req->linked) rn__hreq_link(req);
  req->rx = RN__RQ_DONE;
  req->close_after = true;
  req->expect_continue = false;
  conn->h1_stop = true;
  rn__hreq_error(req, status, type, msg);
}

static void parse_error(rn__hconn_t *conn, enum http_errno e) {
  const rn_http_opts_t *cfg = conn->hs->cfg;
  char msg[200];
  int status = conn->h1err;
  conn->h1err = 0;
  if (e == HPE_HEADER_OVERFLOW) {
    snprintf(msg, sizeof msg, "request head exceeds %u bytes (http_max_header_bytes)", (unsigned)cfg->http_max_header_bytes);
    fail(conn, 431, "RequestHeaderFieldsTooLargeException", msg);
    return;
  }
  switch (status) {
  case 413:
    snprintf(msg, sizeof msg, "request body exceeds %u bytes (http_max_body_bytes)", (unsigned)cfg->http_max_body_bytes);
    fail(conn, 413, "RequestEntityTooLargeException", msg);
    return;
  case 417: fail(conn, 417, "ExpectationFailedException", "only Expect: 100-continue is supported"); return;
  case 405: fail(conn, 405, "MethodNotAllowedException", "CONNECT is not supported"); return;
  case 500: fail(conn, 500, "InternalFailure", "out of memory"); return;
  case 400: fail(conn, 400, "BadRequestException", "malformed request target"); return;
  default: break;
  }
  snprintf(msg, sizeof msg, "malformed HTTP/1.1 request: %s", http_errno_description(e));
  fail(conn, 400, "BadRequestException", msg);
}

/* ---- input --------------------------------------------------------------------------- */

/* HTTP/1.1 requires exactly one non-empty Host (RFC 9112 3.2); HTTP/1.0
 * may omit it, and so may an absolute-form target, which names the
 * authority itself (3.2.2). NULL when fine, else the message. */
static const char *host_problem(const rn__hreq_t *req) {
  size_t n = 0;
  const char *value = NULL;
  for (size_t i = 0; i < req->nh; i++)
    if (strcmp(req->arena + req->hoff[2 * i], "host") == 0) {
      n++;
      value = rn__hreq_str(req, req->hoff[2 * i + 1]);
    }
  if (n == 0)
    return req->version >= 11 && req->authority == RN__NOOFF
               ? "HTTP/1.1 request without a Host header (RFC 9112 section 3.2)"
               : NULL;
  if (n > 1) return "more than one Host header (RFC 9112 section 3.2)";
  if (value[0] == '\0' && req->authority == RN__NOOFF) return "empty Host header (RFC 9112 section 3.2)";
  return NULL;
}

static bool h1_may_parse(const rn__hconn_t *conn) {
  const rn_http_t *hs = conn->hs;
  return !rn_conn_closing(&conn->base) && !conn->h1_stop && (conn->end < RN__HE_FINISH) && !rn_net_draining(hs->net) &&
         conn->nreqs < hs->cfg->max_inflight_per_connection && rn__hconn_budget_ok(conn);
}

/* Whether bytes of a request head hold a line feed not preceded by a
 * carriage return (RFC 9112 2.2: http-parser accepts them; a server that
 * does opens the door to request smuggling behind a stricter proxy).
 * conn->h1_prev carries the last byte across calls. */
static bool bare_lf(rn__hconn_t *conn, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\n' && conn->h1_prev != '\r') return true;
    conn->h1_prev = p[i];
  }
  return false;
}

static void h1_input(rn__hconn_t *conn) {
  size_t pos = 0;
  while (pos < conn->in_len && h1_may_parse(conn)) {
    size_t left = conn->in_len - pos;
    bool in_head = conn->h1cur == NULL || (conn->h1cur->rx < RN__RQ_BODY);
    size_t n = http_parser_execute(&conn->h1p, &conn->hs->h1settings, (const char *)conn->in + pos, left);
    if (rn_conn_closing(&conn->base)) return;
    enum http_errno e = HTTP_PARSER_ERRNO(&conn->h1p);
    if (in_head && e != HPE_OK && e != HPE_PAUSED) in_head = false; /* the parse error is answered below */
    if (in_head) {
      /* Paused at the end of a head, the parser has not consumed the head's
       * last LF yet (it reads it again on resume): check it too. */
      size_t end = pos + n;
      if (e == HPE_PAUSED && conn->h1_head_pause && end < conn->in_len) end++;
      if (bare_lf(conn, conn->in + pos, end - pos)) {
        conn->h1_head_pause = false;
        fail(conn, 400, "BadRequestException",
             "bare LF in the request head: header lines must end with CRLF (RFC 9112 section 2.2)");
        pos = conn->in_len;
        break;
      }
    }
    pos += n;
    if (e == HPE_PAUSED && conn->h1_head_pause) {
      conn->h1_head_pause = false; /* the head is whole: on to the body */
      http_parser_pause(&conn->h1p, 0);
      continue;
    }
    if (e == HPE_PAUSED) {
      http_parser_pause(&conn->h1p, 0);
      rn__hreq_t *req = conn->h1cur;
      conn->h1cur = NULL;
      assert(req != NULL && req->linked);
      if (!req->keep_alive) conn->h1_stop = true;
      const char *bad = host_problem(req);
      if (bad != NULL) {
        /* RFC 9112 3.2: 400 for a missing, repeated or empty Host; then
         * close, as for any request the stream cannot vouch for. */
        req->rx = RN__RQ_DONE;
        req->close_after = true;
        conn->h1_stop = true;
        rn__hreq_error(req, 400, "BadRequestException", bad);
        pos = conn->in_len;
        break;
      }
      rn__hreq_dispatch(req); /* may answer at once: that only schedules work */
      if (rn_conn_closing(&conn->base)) return;
      continue;
    }
    if (e != HPE_OK) {
      parse_error(conn, e);
      pos = conn->in_len; /* the rest of the stream cannot be trusted */
      break;
    }
    if (n < left) { /* the parser stopped without saying why: stop too */
      conn->h1_stop = true;
      pos = conn->in_len;
    }
  }
  if (rn_conn_closing(&conn->base)) return;
  if (pos > 0) {
    memmove(conn->in, conn->in + pos, conn->in_len - pos);
    conn->in_len -= pos;
  }
  if (conn->h1_stop) conn->in_len = 0; /* nothing more will be parsed */
}

/* ---- output ----------------------------------------------------------------------------- */

/* Hand req's response to the output. close: announce Connection: close. */
static void emit(rn__hconn_t *conn, rn__hreq_t *req, bool close) {
  rn_http_t *hs = conn->hs;
  bool has_body = rn__http_status_has_body(req->status);
  size_t cap = 512; /* status line, request id, Date, Content-Length, Connection */
  for (size_t i = 0; i < req->nrh; i++) cap += strlen(req->rh[i].name) + strlen(req->rh[i].value) + 4;
  bool inline_body = has_body && !req->is_head && req->rbody_len <= 16384;
  if (inline_body) cap += req->rbody_len;
  char *buf = malloc(cap);
  if (buf == NULL) {
    rn__hconn_close(conn, "out of memory");
    return;
  }
  size_t n = (size_t)snprintf(buf, cap, "HTTP/1.1 %d %s\r\n", req->status, rn__http_reason(req->status));
  for (size_t i = 0; i < req->nrh; i++)
    n += (size_t)snprintf(buf + n, cap - n, "%s: %s\r\n", req->rh[i].name, req->rh[i].value);
  if (!req->app_rid) n += (size_t)snprintf(buf + n, cap - n, "x-amzn-RequestId: %s\r\n", req->rid);
  if (!req->app_date) n += (size_t)snprintf(buf + n, cap - n, "Date: %s\r\n", rn__http_date(hs));
  if (has_body) n += (size_t)snprintf(buf + n, cap - n, "Content-Length: %zu\r\n", req->rbody_len);
  if (close)
    n += (size_t)snprintf(buf + n, cap - n, "Connection: close\r\n");
  else if (req->version == 10)
    n += (size_t)snprintf(buf + n, cap - n, "Connection: keep-alive\r\n");
  n += (size_t)snprintf(buf + n, cap - n, "\r\n");
  assert(n < cap);
  if (inline_body) {
    if (req->rbody_len > 0) memcpy(buf + n, req->rbody, req->rbody_len);
    n += req->rbody_len;
    rn__hconn_send_owned(conn, (uint8_t *)buf, n);
  } else {
    rn__hconn_send_owned(conn, (uint8_t *)buf, n);
    if (has_body && !req->is_head && req->rbody_len > 0 && !rn_conn_closing(&conn->base)) {
      rn__hconn_send_owned(conn, req->rbody, req->rbody_len);
      req->rbody = NULL;
    }
  }
}

static void h1_answered(rn__hreq_t *req) { rn__hconn_schedule(req->conn); }

static void h1_work(rn__hconn_t *conn) {
  const rn_http_t *hs = conn->hs;
  bool draining = rn_net_draining(hs->net);
  /* A request cut short by the peer's EOF will never complete. */
  if (conn->eof && conn->h1cur != NULL && (conn->in_len == 0 || !h1_may_parse(conn))) {
    rn__hreq_t *cur = conn->h1cur;
    conn->h1cur = NULL;
    rn__hreq_unlink(cur);
    rn__hreq_free(cur);
  }
  rn__hreq_t *req;
  while ((req = conn->reqs) != NULL && !rn_conn_closing(&conn->base)) {
    if ((req->tx == RN__TX_ANSWERED)) {
      if (conn->out_bytes + conn->base.writing >= hs->cfg->max_output_bytes_per_connection) break;
      bool last = req->close_after || !req->keep_alive || (conn->h1_stop && req->next == NULL) ||
                  (draining && (req->next == NULL || (req->next->rx != RN__RQ_DONE)));
      emit(conn, req, last);
      if (rn_conn_closing(&conn->base)) return;
      rn__hreq_unlink(req);
      assert(conn->answered > 0);
      conn->answered--;
      rn__hreq_free(req);
      conn->last_active = rn__hconn_now(conn);
      if (last) {
        conn->h1_stop = true;
        rn__hconn_finish(conn);
        return;
      }
      continue;
    }
    if (req->expect_continue && (req->rx != RN__RQ_DONE)) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      rn__hconn_send(conn, cont, sizeof cont - 1);
      req->expect_continue = false;
    }
    break;
  }
  if (rn_conn_closing(&conn->base) || (conn->end >= RN__HE_FINISH)) return;
  /* Nothing left that will be answered: close. */
  bool nothing = conn->reqs == NULL || (conn->reqs->rx != RN__RQ_DONE);
  if (nothing && (draining || (conn->h1_stop && conn->reqs == NULL))) rn__hconn_finish(conn);
}

static void h1_timeout(rn__hconn_t *conn) {
  const rn_http_opts_t *cfg = conn->hs->cfg;
  rn__hreq_t *cur = conn->h1cur;
  if (cur == NULL) {
    rn__hconn_finish(conn);
    return;
  }
  char msg[160];
  if ((cur->rx < RN__RQ_BODY))
    snprintf(msg, sizeof msg, "request head not received within %u ms (http_header_timeout_ms)",
             (unsigned)cfg->http_header_timeout_ms);
  else
    snprintf(msg, sizeof msg, "request body stalled for %u ms (http_body_timeout_ms)", (unsigned)cfg->http_body_timeout_ms);
  fail(conn, 408, "RequestTimeoutException", msg);
  conn->in_len = 0;
}

static void h1_drain(rn__hconn_t *conn) { rn__hconn_schedule(conn); }

/* ---- the table --------------------------------------------------------------------- */

static bool h1_may_read(const rn__hconn_t *conn) { return rn__hconn_budget_ok(conn) && h1_may_parse(conn); }

static rn__rx_t h1_receiving(const rn__hconn_t *conn, uint64_t *since) {
  const rn__hreq_t *cur = conn->h1cur;
  if (cur == NULL) return RN__RX_NONE;
  if ((cur->rx < RN__RQ_BODY)) {
    *since = cur->started;
    return RN__RX_HEAD;
  }
  *since = conn->last_read;
  return RN__RX_BODY;
}

static void h1_stop(rn__hconn_t *conn) { conn->h1_stop = true; }
static bool h1_pending_output(const rn__hconn_t *conn) { return false; }
static bool h1_input_done(const rn__hconn_t *conn) { return conn->in_len == 0 || !h1_may_parse(conn); }

const rn_http_proto_ops_t rn__h1_ops = {
    .name = "HTTP/1.1",
    .version = 11,
    .start = h1_start,
    .input = h1_input,
    .work = h1_work,
    .answered = h1_answered,
    .may_read = h1_may_read,
    .receiving = h1_receiving,
    .timeout = h1_timeout,
    .idle = rn__hconn_finish,
    .stop = h1_stop,
    .drain = h1_drain,
    .pending_output = h1_pending_output,
    .input_done = h1_input_done,
};
