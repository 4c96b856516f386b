/*
 * conn.c — one native protocol connection: accept, read, frame decoding
 * (runnel/frame.h), protobuf unpacking (produce requests without copying
 * their batches: runnel/produce_view.h), dispatch to rn_engine_handle, reply
 * packing, writes, back-pressure, idle timeout, close.
 *
 * Owns each rn__conn_t, its input buffer (received bytes not yet decoded),
 * its output buffer (replies packed but not yet handed to uv_write), the
 * buffers of its writes in flight, and the rn__req_t contexts it hands to
 * the engine.
 *
 * Invariants:
 *   - Requests are decoded and dispatched only while the connection may take
 *     more work: not closing, no framing error, server not draining, fewer
 *     than max_inflight_per_connection requests at the engine and fewer than
 *     max_output_bytes_per_connection reply bytes unwritten; a fetch also
 *     counts the bytes reserved by the fetches of the connection still at
 *     the engine (each reserves its max bytes until answered), so pipelined
 *     fetches are dispatched only as their answers fit, while other requests
 *     (produce, commits, heartbeats) still pass a parked long poll; the
 *     engine's fetch memory budget bounds all connections together.
 *     Otherwise the
 *     bytes stay in the input buffer and reading stops (so TCP pushes back
 *     on the client); reading resumes from run_deferred (server.c) once the reason is
 *     gone. Every other connection is unaffected.
 *   - Replies are only packed here (into the output buffer) when the engine
 *     answers; they go to the socket from run_deferred (rn__conn_work), one
 *     uv_write per connection per loop iteration, after the loop's I/O.
 *     A fetch's batches are not copied into the output: the engine keeps
 *     them (rn_engine_reply_hold), the output refers to them (orefs) and
 *     the write that carries them releases the hold when it completed, or
 *     the close does when it never started. They count against
 *     max_output_bytes_per_connection like copied bytes.
 *   - A reply for a connection that is closing is dropped; its request
 *     context still holds a reference, so the memory is valid when it comes.
 *   - A connection is freed only by run_deferred or rn_server_destroy,
 *     after both handles closed and no request or write refers to it.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runnel/frame.h"
#include "runnel/produce_view.h"
#include "server_int.h"

#define RN__READ_CHUNK ((size_t)64 * 1024)   /* free space offered per read */
#define RN__IN_KEEP ((size_t)256 * 1024)     /* larger input buffers are released when idle */
#define RN__SPARE_MAX ((size_t)256 * 1024)   /* largest output buffer kept for reuse */
#define RN__REQ_FREE_MAX 4096u               /* request contexts kept for reuse */

typedef struct conn_write {
  uv_write_t req;
  rn__conn_t *conn;
  uint8_t *buf;
  size_t len, cap;
  void **holds; /* engine holds released when the write completed */
  size_t nholds;
} conn_write_t;

/* Byte fields at least this long are referenced, not copied, when the
 * engine holds them (zero-copy fetch replies). */
#define RN__REF_MIN ((size_t)16 * 1024)

static void conn_ref(rn__conn_t *conn) { conn->refs++; }

static void conn_unref(rn__conn_t *conn) {
  assert(conn->refs > 0);
  if (--conn->refs > 0) return;
  assert(conn->closing && conn->handles_open == 0);
  rn_server_t *srv = conn->srv;
  conn->dead_next = srv->dead;
  srv->dead = conn;
}

void rn__conn_schedule(rn__conn_t *conn) {
  if (conn->queued || conn->closing) return;
  conn->queued = true;
  conn->work_next = conn->srv->work;
  conn->srv->work = conn;
}

bool rn__conn_unflushed(const rn__conn_t *conn) {
  return conn->out_len > 0 || conn->norefs > 0 || conn->writes > 0;
}

static void release_holds(void **holds, size_t n) {
  for (size_t i = 0; i < n; i++) rn_engine_reply_release(holds[i]);
}

/* ---- request contexts ---------------------------------------------------- */

static rn__req_t *req_get(rn_server_t *srv) {
  rn__req_t *r = srv->req_free;
  if (r != NULL) {
    srv->req_free = r->next_free;
    srv->req_free_n--;
    return r;
  }
  return malloc(sizeof *r);
}

static void req_put(rn_server_t *srv, rn__req_t *r) {
  if (srv->req_free_n >= RN__REQ_FREE_MAX) {
    free(r);
    return;
  }
  r->next_free = srv->req_free;
  srv->req_free = r;
  srv->req_free_n++;
}

/* ---- close ------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h) {
  rn__conn_t *conn = h->data;
  assert(conn->handles_open > 0);
  conn->handles_open--;
  rn__server_handle_closed(conn->srv);
  if (conn->handles_open == 0) conn_unref(conn); /* the handles' reference */
}

void rn__conn_close(rn__conn_t *conn, const char *why) {
  if (conn->closing) return;
  rn_server_t *srv = conn->srv;
  conn->closing = true;
  conn->reading = false;
  if (conn->prev != NULL)
    conn->prev->next = conn->next;
  else if (srv->conns == conn)
    srv->conns = conn->next;
  if (conn->next != NULL) conn->next->prev = conn->prev;
  conn->prev = conn->next = NULL;
  if (conn->counted) {
    srv->nconns--;
    conn->counted = false;
  }
  if (!conn->rejected)
    rn__logf(RN_LOG_DEBUG, "conn", "#%llu %s closed: %s (%llu requests)", (unsigned long long)conn->id,
             conn->peer, why, (unsigned long long)conn->requests);
  /* Unsent replies are dropped; writes in flight keep their own buffers and
   * complete with UV_ECANCELED. The input buffer stays until the free: a
   * close can happen while pump() is walking it. */
  free(conn->out);
  conn->out = NULL;
  conn->out_len = conn->out_cap = 0;
  release_holds(conn->holds, conn->nholds);
  conn->nholds = conn->norefs = conn->oref_bytes = 0;
  uv_close((uv_handle_t *)&conn->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&conn->idle, on_handle_closed);
}

void rn__conn_free(rn__conn_t *conn) {
  if (conn == NULL) return;
  assert(conn->refs == 0 && !conn->queued);
  free(conn->in);
  free(conn->out);
  free(conn->spare);
  release_holds(conn->holds, conn->nholds);
  free(conn->holds);
  free(conn->orefs);
  free(conn);
}

void rn__conn_stop_reading(rn__conn_t *conn) {
  if (conn->reading) {
    uv_read_stop((uv_stream_t *)&conn->tcp);
    conn->reading = false;
  }
}

/* ---- output ------------------------------------------------------------------ */

/* Make room for n more bytes in the output buffer. */
static bool out_reserve(rn__conn_t *conn, size_t n) {
  if (conn->out == NULL && conn->spare != NULL) {
    conn->out = conn->spare;
    conn->out_cap = conn->spare_cap;
    conn->spare = NULL;
    conn->spare_cap = 0;
  }
  size_t need = conn->out_len + n;
  if (need <= conn->out_cap) return true;
  size_t cap = conn->out_cap ? conn->out_cap * 2 : 4096;
  if (cap < need) cap = need;
  uint8_t *p = realloc(conn->out, cap);
  if (p == NULL) return false;
  conn->out = p;
  conn->out_cap = cap;
  return true;
}

/* Pack msg as one frame at the end of the output buffer. */
static void queue_frame(rn__conn_t *conn, const ProtobufCMessage *msg) {
  size_t n = rn_frame_encoded_len(msg);
  if (n - RN_FRAME_HEADER_BYTES > RN_FRAME_MAX_PAYLOAD) {
    /* Cannot happen with the configured fetch caps; answer instead of dying. */
    const Runnel__Response *big = (const Runnel__Response *)msg;
    Runnel__Response resp = RUNNEL__RESPONSE__INIT;
    Runnel__Error err;
    runnel__error__init(&err);
    rn_engine_error(&err, RN_ETOOLARGE, "response exceeds the 4 GiB frame limit");
    resp.correlation_id = big->correlation_id;
    resp.error = &err;
    rn__logf(RN_LOG_ERROR, "conn", "#%llu %s: response of %zu bytes too large for a frame",
             (unsigned long long)conn->id, conn->peer, n);
    queue_frame(conn, &resp.base);
    return;
  }
  if (!out_reserve(conn, n)) {
    rn__logf(RN_LOG_ERROR, "conn", "#%llu %s: out of memory for a %zu-byte reply; closing",
             (unsigned long long)conn->id, conn->peer, n);
    rn__conn_close(conn, "out of memory");
    return;
  }
  size_t w = 0;
  rn_err_t rc = rn_frame_encode(msg, conn->out + conn->out_len, conn->out_cap - conn->out_len, &w);
  assert(rc == 0 && w == n);
  (void)rc;
  conn->out_len += w;
}

/* Packing into the output with bulk byte fields referenced, not copied. */
typedef struct {
  ProtobufCBuffer base;
  rn__conn_t *conn;
  bool oom;
} refbuf_t;

static void refbuf_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
  refbuf_t *rb = (refbuf_t *)b;
  rn__conn_t *conn = rb->conn;
  if (rb->oom || len == 0) return;
  if (len >= RN__REF_MIN) {
    if (conn->norefs == conn->orefs_cap) {
      size_t cap = conn->orefs_cap ? conn->orefs_cap * 2 : 16;
      rn__oref_t *n = realloc(conn->orefs, cap * sizeof *n);
      if (n == NULL) {
        rb->oom = true;
        return;
      }
      conn->orefs = n;
      conn->orefs_cap = cap;
    }
    conn->orefs[conn->norefs++] = (rn__oref_t){.at = conn->out_len, .data = data, .len = len};
    conn->oref_bytes += len;
    return;
  }
  if (!out_reserve(conn, len)) {
    rb->oom = true;
    return;
  }
  memcpy(conn->out + conn->out_len, data, len);
  conn->out_len += len;
}

/* Pack msg as one frame whose large byte fields stay where they are: the
 * engine's hold keeps them valid until the write completed. Takes hold.
 * Falls back to a copying frame when memory for the bookkeeping is short. */
static void queue_frame_refs(rn__conn_t *conn, const ProtobufCMessage *msg, void *hold) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  bool room = n <= RN_FRAME_MAX_PAYLOAD;
  if (room && conn->nholds == conn->holds_cap) {
    size_t cap = conn->holds_cap ? conn->holds_cap * 2 : 8;
    void **nh = realloc(conn->holds, cap * sizeof *nh);
    if (nh != NULL) {
      conn->holds = nh;
      conn->holds_cap = cap;
    }
    room = nh != NULL;
  }
  if (!room) { /* the copying path answers (too large) or closes (no memory) */
    queue_frame(conn, msg);
    rn_engine_reply_release(hold);
    return;
  }
  size_t mark_len = conn->out_len, mark_refs = conn->norefs, mark_bytes = conn->oref_bytes;
  refbuf_t rb = {.base = {.append = refbuf_append}, .conn = conn};
  uint8_t hdr[RN_FRAME_HEADER_BYTES] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
  if (out_reserve(conn, sizeof hdr)) {
    memcpy(conn->out + conn->out_len, hdr, sizeof hdr);
    conn->out_len += sizeof hdr;
    protobuf_c_message_pack_to_buffer(msg, &rb.base);
  } else {
    rb.oom = true;
  }
  if (rb.oom) { /* undo, then the copying path (which closes on OOM) */
    conn->out_len = mark_len;
    conn->norefs = mark_refs;
    conn->oref_bytes = mark_bytes;
    queue_frame(conn, msg);
    rn_engine_reply_release(hold);
    return;
  }
  conn->holds[conn->nholds++] = hold;
}

/* An error reply built here rather than by the engine. msg is copied into
 * the frame before this returns. */
static void send_error(rn__conn_t *conn, uint64_t corr, rn_err_t code, const char *msg) {
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__Error err;
  runnel__error__init(&err);
  rn_engine_error(&err, code, msg);
  resp.correlation_id = corr;
  resp.error = &err;
  queue_frame(conn, &resp.base);
  rn__conn_schedule(conn);
}

static void on_write(uv_write_t *req, int status) {
  conn_write_t *wr = (conn_write_t *)req;
  rn__conn_t *conn = wr->conn;
  assert(conn->writes > 0 && conn->writing >= wr->len);
  conn->writes--;
  conn->writing -= wr->len;
  release_holds(wr->holds, wr->nholds);
  free(wr->holds);
  if (!conn->closing && conn->spare == NULL && wr->cap <= RN__SPARE_MAX) {
    conn->spare = wr->buf;
    conn->spare_cap = wr->cap;
  } else {
    free(wr->buf);
  }
  free(wr);
  if (status < 0) {
    if (status != UV_ECANCELED) rn__conn_close(conn, uv_strerror(status));
  } else {
    conn->last_active = uv_now(conn->srv->loop);
    rn__conn_schedule(conn); /* may resume reading, or finish a close */
  }
  conn_unref(conn);
}

/* Hand the output (copied bytes interleaved with referenced ones) to one
 * uv_write; the write owns the buffer and the holds until it completes. */
static void flush(rn__conn_t *conn) {
  if (conn->closing || (conn->out_len == 0 && conn->norefs == 0)) return;
  conn_write_t *wr = malloc(sizeof *wr);
  uv_buf_t one, *bufs = &one;
  size_t nb = 0;
  if (wr != NULL && conn->norefs > 0) bufs = malloc((2 * conn->norefs + 1) * sizeof *bufs);
  if (wr == NULL || bufs == NULL) {
    free(wr);
    rn__conn_close(conn, "out of memory");
    return;
  }
  size_t pos = 0;
  for (size_t i = 0; i < conn->norefs; i++) {
    const rn__oref_t *r = &conn->orefs[i];
    if (r->at > pos) bufs[nb++] = uv_buf_init((char *)conn->out + pos, (unsigned)(r->at - pos));
    bufs[nb++] = uv_buf_init((char *)(uintptr_t)r->data, (unsigned)r->len);
    pos = r->at;
  }
  if (conn->out_len > pos) bufs[nb++] = uv_buf_init((char *)conn->out + pos, (unsigned)(conn->out_len - pos));
  wr->conn = conn;
  wr->buf = conn->out;
  wr->len = conn->out_len + conn->oref_bytes;
  wr->cap = conn->out_cap;
  wr->holds = conn->holds; /* the write owns them now */
  wr->nholds = conn->nholds;
  conn->holds = NULL;
  conn->nholds = conn->holds_cap = 0;
  conn->out = NULL;
  conn->out_len = conn->out_cap = 0;
  conn->norefs = conn->oref_bytes = 0;
  conn->writing += wr->len;
  conn->writes++;
  conn_ref(conn);
  int rc = uv_write(&wr->req, (uv_stream_t *)&conn->tcp, bufs, (unsigned)nb, on_write); /* copies bufs */
  if (bufs != &one) free(bufs);
  if (rc != 0) {
    conn->writes--;
    conn->writing -= wr->len;
    release_holds(wr->holds, wr->nholds);
    free(wr->holds);
    free(wr->buf);
    free(wr);
    rn__conn_close(conn, uv_strerror(rc));
    conn_unref(conn);
  }
}

/* ---- requests ---------------------------------------------------------------- */

/* The engine's answer (rn_engine_reply_cb). */
static void on_reply(void *ctx, const Runnel__Response *resp) {
  rn__req_t *r = ctx;
  rn__conn_t *conn = r->conn;
  rn_server_t *srv = conn->srv;
  assert(resp != NULL && conn->inflight > 0 && srv->inflight > 0);
  conn->inflight--;
  srv->inflight--;
  assert(conn->reserved >= r->reserve);
  conn->reserved -= r->reserve;
  if (!conn->closing) {
    /* resp is the engine's; pack a shallow copy carrying our correlation id.
     * A fetch's batches are not copied: the engine keeps them for us. */
    Runnel__Response copy = *resp;
    copy.correlation_id = r->corr;
    void *hold = resp->op_case == RUNNEL__RESPONSE__OP_FETCH ? rn_engine_reply_hold(srv->eng) : NULL;
    if (hold != NULL)
      queue_frame_refs(conn, &copy.base, hold);
    else
      queue_frame(conn, &copy.base);
    rn__conn_schedule(conn);
  }
  req_put(srv, r);
  conn_unref(conn);
}

/* A request decoded either by the zero-copy produce decoder (batch bytes
 * borrowed from the input buffer: valid during rn_engine_handle only, which
 * is all the engine's contract promises anyway) or by protobuf-c. */
static void handle(rn__conn_t *conn, const Runnel__Request *req);

/* Reply bytes a request reserves while at the engine: a fetch's max bytes
 * (as the engine caps them), 0 for anything else. */
static size_t fetch_reserve(const rn__conn_t *conn, const Runnel__Request *req) {
  if (req->op_case != RUNNEL__REQUEST__OP_FETCH || req->fetch == NULL) return 0;
  uint32_t max = req->fetch->max_bytes ? req->fetch->max_bytes : RN_ENGINE_FETCH_DEFAULT_BYTES;
  return max < conn->srv->cfg->max_fetch_bytes ? max : conn->srv->cfg->max_fetch_bytes;
}

/* Returns false, dispatching nothing, for a fetch that must wait until the
 * connection's answers fit (the frame stays in the input). */
static bool dispatch(rn__conn_t *conn, const uint8_t *payload, size_t len) {
  rn_server_t *srv = conn->srv;
  conn->requests++;
  conn->last_active = uv_now(srv->loop);
  rn_produce_view_t view;
  if (rn_produce_view_decode(payload, len, &view)) {
    handle(conn, &view.req);
    return true;
  }
  Runnel__Request *req = runnel__request__unpack(NULL, len, payload);
  if (req == NULL) {
    rn__logf(RN_LOG_DEBUG, "conn", "#%llu %s: undecodable request of %zu bytes", (unsigned long long)conn->id,
             conn->peer, len);
    send_error(conn, 0, RN_EBADREQUEST, "frame does not decode as a runnel.Request message");
    return true;
  }
  if (req->op_case == RUNNEL__REQUEST__OP__NOT_SET) {
    send_error(conn, req->correlation_id, RN_EUNKNOWNOP,
               "request carries no operation this broker knows (newer client?)");
    runnel__request__free_unpacked(req, NULL);
    return true;
  }
  if (fetch_reserve(conn, req) > 0 && rn__conn_backpressured(conn)) {
    conn->requests--; /* decoded again when it fits */
    conn->fetch_blocked = true;
    runnel__request__free_unpacked(req, NULL);
    return false;
  }
  handle(conn, req);
  runnel__request__free_unpacked(req, NULL);
  return true;
}

static void handle(rn__conn_t *conn, const Runnel__Request *req) {
  rn_server_t *srv = conn->srv;
  rn__req_t *r = req_get(srv);
  if (r == NULL) {
    send_error(conn, req->correlation_id, RN_ENOMEM, "broker out of memory");
    return;
  }
  r->conn = conn;
  r->corr = req->correlation_id;
  r->reserve = fetch_reserve(conn, req);
  conn->reserved += r->reserve;
  conn_ref(conn);
  conn->inflight++;
  srv->inflight++;
  rn_native_handle(srv->eng, req, on_reply, r); /* dispatch.c; may reply before returning */
}

bool rn__conn_backpressured(const rn__conn_t *conn) {
  return conn->out_len + conn->oref_bytes + conn->writing + conn->reserved >=
         conn->srv->cfg->max_output_bytes_per_connection;
}

static bool may_dispatch(const rn__conn_t *conn) {
  const rn_server_t *srv = conn->srv;
  return !conn->closing && !conn->fatal && !srv->draining &&
         conn->inflight < srv->cfg->max_inflight_per_connection &&
         conn->out_len + conn->oref_bytes + conn->writing < srv->cfg->max_output_bytes_per_connection;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  rn__conn_t *conn = h->data;
  size_t want = conn->in_len + RN__READ_CHUNK;
  if (conn->in_need > want) want = conn->in_need; /* room for the whole frame */
  if (want > conn->in_cap) {
    size_t cap = conn->in_cap ? conn->in_cap * 2 : RN__READ_CHUNK;
    if (cap < want) cap = want;
    uint8_t *p = realloc(conn->in, cap);
    if (p == NULL) {
      *buf = uv_buf_init(NULL, 0); /* the read callback gets UV_ENOBUFS */
      return;
    }
    conn->in = p;
    conn->in_cap = cap;
  }
  *buf = uv_buf_init((char *)conn->in + conn->in_len, (unsigned)(conn->in_cap - conn->in_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void update_reading(rn__conn_t *conn) {
  bool want = may_dispatch(conn) && !conn->fetch_blocked && !conn->eof;
  if (want && !conn->reading) {
    int rc = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    if (rc != 0) {
      rn__conn_close(conn, uv_strerror(rc));
      return;
    }
    conn->reading = true;
  } else if (!want && conn->reading) {
    rn__conn_stop_reading(conn);
  }
}

static void framing_error(rn__conn_t *conn, size_t payload_len) {
  rn_server_t *srv = conn->srv;
  char msg[160];
  snprintf(msg, sizeof msg, "frame of %zu bytes exceeds max_frame_bytes (%u); closing the connection",
           payload_len, (unsigned)srv->cfg->max_frame_bytes);
  rn__logf(RN_LOG_WARN, "conn", "#%llu %s: %s", (unsigned long long)conn->id, conn->peer, msg);
  /* Correlation id 0 (the request was never read) and the sizes as fields,
   * so the client can tell which of its requests was refused. */
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__Error err;
  rn_engine_error(&err, RN_ETOOLARGE, msg);
  err.size = payload_len;
  err.limit = srv->cfg->max_frame_bytes;
  resp.error = &err;
  queue_frame(conn, &resp.base);
  rn__conn_schedule(conn);
  conn->fatal = true;
}

/* Decode and dispatch every whole frame in the input buffer while allowed,
 * then start or stop reading to match. */
static void pump(rn__conn_t *conn) {
  size_t pos = 0;
  conn->in_need = 0;
  conn->fetch_blocked = false;
  while (may_dispatch(conn) && pos < conn->in_len) {
    rn_frame_t f;
    size_t need = 0;
    rn_err_t rc = rn_frame_decode(conn->in + pos, conn->in_len - pos, conn->srv->cfg->max_frame_bytes, &f, &need);
    if (rc == RN_EPARTIAL) {
      conn->in_need = need;
      break;
    }
    if (rc == RN_ETOOLARGE) {
      framing_error(conn, need - RN_FRAME_HEADER_BYTES);
      pos = conn->in_len; /* the stream cannot be resynchronised */
      break;
    }
    assert(rc == 0);
    if (!dispatch(conn, f.payload, f.payload_len)) break; /* a fetch waits for its answers to fit */
    pos += f.frame_len;
  }
  if (pos > 0) {
    memmove(conn->in, conn->in + pos, conn->in_len - pos);
    conn->in_len -= pos;
  }
  /* A large input buffer is released only when the connection is idle: a
   * busy producer's next frame would fault in fresh pages again. */
  if (conn->in_len == 0 && conn->in_cap > RN__IN_KEEP && conn->inflight == 0) {
    free(conn->in);
    conn->in = NULL;
    conn->in_cap = 0;
  }
  if (!conn->closing) update_reading(conn);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  rn__conn_t *conn = s->data;
  if (conn->closing) return;
  if (nread > 0) {
    conn->in_len += (size_t)nread;
    pump(conn);
    return;
  }
  if (nread == 0) return; /* EAGAIN */
  if (nread == UV_EOF) {
    /* Half-close: answer what was asked, then close (rn__conn_work). */
    conn->eof = true;
    rn__conn_stop_reading(conn);
    rn__conn_schedule(conn);
    return;
  }
  if (nread == UV_ENOBUFS)
    rn__logf(RN_LOG_ERROR, "conn", "#%llu %s: out of memory for the read buffer; closing",
             (unsigned long long)conn->id, conn->peer);
  rn__conn_close(conn, uv_strerror((int)nread));
}

void rn__conn_work(rn__conn_t *conn) {
  if (conn->closing) return;
  pump(conn);
  flush(conn);
  if (conn->closing || rn__conn_unflushed(conn)) return;
  if (conn->fatal)
    rn__conn_close(conn, "framing error");
  else if (conn->eof && conn->inflight == 0)
    rn__conn_close(conn, "closed by peer");
}

/* ---- idle timeout -------------------------------------------------------------- */

/* How long a connection may be quiet: idle_timeout_ms, or while draining
 * the (shorter) drain_timeout_ms. 0 = no limit. */
static uint64_t quiet_limit(const rn__conn_t *conn) {
  const rn_server_t *srv = conn->srv;
  uint64_t idle = srv->cfg->idle_timeout_ms, drain = srv->cfg->drain_timeout_ms;
  if (srv->draining && drain > 0 && (idle == 0 || drain < idle)) return drain;
  return idle;
}

static void on_idle(uv_timer_t *t) {
  rn__conn_t *conn = t->data;
  if (conn->closing) return;
  uint64_t limit = quiet_limit(conn);
  if (limit == 0) return;
  uint64_t now = uv_now(conn->srv->loop);
  uint64_t quiet = now - conn->last_active;
  bool stalled = rn__conn_unflushed(conn); /* replies waiting on the peer */
  if (!stalled && conn->inflight > 0) {
    uv_timer_start(t, on_idle, limit, 0); /* busy (e.g. a long poll): not idle */
    return;
  }
  if (quiet < limit) {
    uv_timer_start(t, on_idle, limit - quiet, 0);
    return;
  }
  rn__logf(RN_LOG_INFO, "conn", "#%llu %s: %s for %llu ms; closing", (unsigned long long)conn->id, conn->peer,
           stalled ? "not reading its replies" : "idle", (unsigned long long)quiet);
  rn__conn_close(conn, stalled ? "write stalled" : "idle timeout");
}

/* Shutdown: requests already received but held back (the pipelining limit,
 * back-pressure) will never be dispatched now. Answer each with the
 * retriable ESHUTDOWN, so its client knows it was not executed and may retry
 * it elsewhere, instead of inferring "maybe executed" from a closed
 * connection. Only whole frames; a partial one is dropped with the
 * connection. */
static void refuse_held(rn__conn_t *conn) {
  size_t pos = 0;
  while (pos < conn->in_len) {
    rn_frame_t f;
    size_t need = 0;
    if (rn_frame_decode(conn->in + pos, conn->in_len - pos, conn->srv->cfg->max_frame_bytes, &f, &need) != 0) break;
    pos += f.frame_len;
    uint64_t corr = 0;
    rn_produce_view_t view;
    if (rn_produce_view_decode(f.payload, f.payload_len, &view)) {
      corr = view.req.correlation_id;
    } else {
      Runnel__Request *req = runnel__request__unpack(NULL, f.payload_len, f.payload);
      if (req == NULL) continue; /* undecodable: nobody to answer */
      corr = req->correlation_id;
      runnel__request__free_unpacked(req, NULL);
    }
    send_error(conn, corr, RN_ESHUTDOWN, "broker is shutting down: request received but not executed; retry it");
  }
  conn->in_len = 0;
}

void rn__conn_drain(rn__conn_t *conn) {
  rn__conn_stop_reading(conn);
  if (!conn->closing && !conn->fatal) refuse_held(conn);
  uint64_t limit = quiet_limit(conn);
  if (!conn->closing && limit > 0) uv_timer_start(&conn->idle, on_idle, limit, 0);
}

/* ---- accept ---------------------------------------------------------------------- */

static void format_peer(rn__conn_t *conn) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  snprintf(conn->peer, sizeof conn->peer, "?");
  if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&ss, &len) != 0) return;
  char ip[48]; /* INET6_ADDRSTRLEN */
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
    uv_ip4_name(a, ip, sizeof ip);
    snprintf(conn->peer, sizeof conn->peer, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
    uv_ip6_name(a, ip, sizeof ip);
    snprintf(conn->peer, sizeof conn->peer, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
  }
}

void rn__conn_accept(rn_server_t *srv) {
  rn__conn_t *conn = calloc(1, sizeof *conn);
  if (conn == NULL) {
    rn__logf(RN_LOG_ERROR, "conn", "out of memory accepting a connection");
    return; /* it stays in the backlog; the listener retries on the next event */
  }
  conn->srv = srv;
  conn->id = ++srv->next_conn_id;
  conn->refs = 1; /* the handles */
  if (uv_tcp_init(srv->loop, &conn->tcp) != 0) {
    free(conn);
    return;
  }
  rn__server_count_handle(srv);
  uv_timer_init(srv->loop, &conn->idle);
  rn__server_count_handle(srv);
  conn->handles_open = 2;
  conn->tcp.data = conn;
  conn->idle.data = conn;
  int rc = uv_accept((uv_stream_t *)&srv->native, (uv_stream_t *)&conn->tcp);
  if (rc != 0) {
    rn__logf(RN_LOG_WARN, "conn", "accept failed: %s", uv_strerror(rc));
    conn->rejected = true;
    rn__conn_close(conn, "accept failed");
    return;
  }
  format_peer(conn);
  uv_os_fd_t fd = -1;
  uv_fileno((uv_handle_t *)&conn->tcp, &fd);
  bool over = srv->draining || srv->nconns >= srv->cfg->max_connections;
  if (over || rn__server_fds_short(srv, fd)) {
    /* Refused: closed at once. Out of descriptors first, so that storage
     * keeps fd_reserve of them for segment rolls. */
    conn->rejected = true;
    srv->rejected++;
    srv->refused[RN__PORT_NATIVE][over ? RN__REFUSE_LIMIT : RN__REFUSE_FDS]++;
    uint64_t now = uv_now(srv->loop);
    if (srv->reject_logged_at == 0 || now - srv->reject_logged_at >= 1000) {
      if (over)
        rn__logf(RN_LOG_WARN, "server", "max_connections (%u) reached: refused %llu connection(s), latest from %s",
                 (unsigned)srv->cfg->max_connections, (unsigned long long)srv->rejected, conn->peer);
      else
        rn__logf(RN_LOG_WARN, "server",
                 "fewer than fd_reserve (%u) file descriptors left under the limit %llu: refused %llu "
                 "connection(s), latest from %s",
                 (unsigned)srv->cfg->fd_reserve, (unsigned long long)srv->fd_limit, (unsigned long long)srv->rejected,
                 conn->peer);
      srv->rejected = 0;
      srv->reject_logged_at = now ? now : 1;
    }
    rn__conn_close(conn, over ? "over max_connections" : "file descriptors short");
    return;
  }
  conn->counted = true;
  srv->nconns++;
  conn->next = srv->conns;
  if (srv->conns != NULL) srv->conns->prev = conn;
  srv->conns = conn;
  uv_tcp_nodelay(&conn->tcp, 1);
  conn->last_active = uv_now(srv->loop);
  if (srv->cfg->idle_timeout_ms > 0) uv_timer_start(&conn->idle, on_idle, srv->cfg->idle_timeout_ms, 0);
  rn__logf(RN_LOG_DEBUG, "conn", "#%llu %s accepted", (unsigned long long)conn->id, conn->peer);
  update_reading(conn);
}
