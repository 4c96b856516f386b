/*
 * conn.c — the native protocol session on one connection (the connection
 * base, rn_net.h, accepts, limits, closes and frees it): read, frame decoding
 * (runnel/frame.h), protobuf unpacking (produce requests without copying
 * their batches: runnel/produce_view.h), dispatch to rn_native_handle, reply
 * packing, writes, back-pressure, idle timeout, close.
 *
 * Owns the protocol part of each rn__conn_t (its rn_conn_t base is net's), its input buffer (received bytes not yet decoded),
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
 *     on the client); reading resumes from the deferred work (rn__conn_work,
 *     step 3 of the loop order in broker/net/net.c) once the reason is
 *     gone. Every other connection is unaffected.
 *   - Replies are only packed here (into the output buffer) when the engine
 *     answers; they go to the socket from the deferred work (rn__conn_work, step 3), one
 *     uv_write per connection per loop iteration, after the loop's I/O.
 *     A fetch's batches are not copied into the output: the engine keeps
 *     them (rn_core_fetch_hold), the output refers to them (orefs) and
 *     the write that carries them releases the hold when it completed, or
 *     the close does when it never started. They count against
 *     max_output_bytes_per_connection like copied bytes.
 *   - A reply for a connection that is closing is dropped; its request
 *     context still holds a reference, so the memory is valid when it comes.
 *   - A connection is freed only by the connection base (broker/net), from
 *     the loop hook after both handles closed and no request or write
 *     refers to it (every rn__req holds a reference).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h" /* rn_native_handle */
#include "rn_native.h"
#include "runnel/frame.h"
#include "runnel/produce_view.h"

#define RN__READ_CHUNK ((size_t)64 * 1024)   /* free space offered per read */
#define RN__IN_KEEP ((size_t)256 * 1024)     /* larger input buffers are released when idle */
#define RN__SPARE_MAX ((size_t)256 * 1024)   /* largest output buffer kept for reuse */
#define RN__REQ_FREE_MAX 4096u               /* request contexts kept for reuse */


typedef struct rn__conn rn__conn_t;
typedef struct rn__req rn__req_t;

/* The session state shared by the connections of one listener. */
struct rn_native {
  rn_native_opts_t opts;
  rn_core_t *eng;
  rn__req_t *req_free; /* recycled request contexts */
  unsigned req_free_n;
  uint64_t inflight; /* requests at the engine, all connections */
};

/* One request handed to the engine: the ctx of rn_native_handle. Holds a
 * reference on its connection until the engine's reply callback ran, so a
 * reply for a connection closed meanwhile finds valid memory (and drops the
 * reply). Recycled through the session's free list. */
struct rn__req {
  rn__conn_t *conn;
  uint64_t corr;
  size_t reserve; /* reply bytes reserved on conn->reserved until the reply (a fetch: its max bytes) */
  rn__req_t *next_free;
};

/* A piece of output referenced, not copied. */
typedef struct rn__oref {
  size_t at; /* position in the copied output it precedes */
  const uint8_t *data;
  size_t len;
} rn__oref_t;

/* Where a session stands, one enum. Transitions:
 *   SERVING ──EOF from the peer──→ EOF      (answer what is outstanding, then close)
 *   SERVING ──framing error──────→ FATAL    (flush the error reply, then close)
 * Both end in rn_conn_close from rn__conn_work once the output is flushed
 * (EOF: and nothing is at the engine). Closing itself is the base's state. */
typedef enum { RN__NS_SERVING = 0, RN__NS_EOF, RN__NS_FATAL } rn__nstate_t;

/* A native protocol connection. */
struct rn__conn {
  rn_conn_t base; /* first: net allocates and frees the whole struct */
  rn_native_t *nat;
  rn__nstate_t st;

  /* The base's refs also count +1 per rn__req at the engine. */
  unsigned inflight;     /* requests at the engine */
  uint64_t last_active;  /* uv_now of the last request or write progress */
  uint64_t requests;     /* decoded frames, for the close log line */
  /* Reply bytes reserved by requests at the engine (a fetch reserves its
   * max bytes when dispatched); counted with the unwritten output against
   * max_output_bytes_per_connection. */
  size_t reserved;
  bool fetch_blocked; /* the next frame is a fetch that does not fit: not read further */

  /* Input: received bytes not yet decoded, in[0, in_len). in_need: bytes
   * the frame at in[0] needs in total (a hint for the buffer size). */
  uint8_t *in;
  size_t in_len, in_cap, in_need;

  /* Output: frames packed and not yet handed to a write, out[0, out_len);
   * bytes in flight are the base's writing. spare: a small buffer kept
   * from a finished write for reuse. */
  uint8_t *out;
  size_t out_len, out_cap;
  uint8_t *spare;
  size_t spare_cap;
  /* Bulk bytes the output refers to instead of copying them (a fetch's
   * batches, kept valid by engine holds: rn_core_fetch_hold): refs[i]
   * goes on the wire right before out[refs[i].at]. holds: the tokens,
   * released when the write carrying them completed (or on close). */
  struct rn__oref *orefs;
  size_t norefs, orefs_cap, oref_bytes;
  void **holds;
  size_t nholds, holds_cap;
};

typedef struct conn_write {
  rn_conn_wreq_t req; /* first */
  rn__conn_t *conn;
  uint8_t *buf;
  size_t len, cap;
  void **holds; /* engine holds released when the write completed */
  size_t nholds;
} conn_write_t;

/* Byte fields at least this long are referenced, not copied, when the
 * engine holds them (zero-copy fetch replies). */
#define RN__REF_MIN ((size_t)16 * 1024)

static bool closing(const rn__conn_t *conn) { return rn_conn_closing(&conn->base); }
static const rn_native_opts_t *cfg_of(const rn__conn_t *conn) { return &conn->nat->opts; }
static bool draining(const rn__conn_t *conn) { return rn_net_draining(conn->base.net); }

static bool rn__conn_backpressured(const rn__conn_t *conn);

static bool rn__conn_unflushed(const rn__conn_t *conn) {
  return conn->out_len > 0 || conn->norefs > 0 || conn->base.writes > 0;
}

static void release_holds(void **holds, size_t n) {
  for (size_t i = 0; i < n; i++) rn_core_fetch_release(holds[i]);
}

/* ---- request contexts ---------------------------------------------------- */

static rn__req_t *req_get(rn_native_t *nat) {
  rn__req_t *r = nat->req_free;
  if (r != NULL) {
    nat->req_free = r->next_free;
    nat->req_free_n--;
    return r;
  }
  return malloc(sizeof *r);
}

static void req_put(rn_native_t *nat, rn__req_t *r) {
  if (nat->req_free_n >= RN__REQ_FREE_MAX) {
    free(r);
    return;
  }
  r->next_free = nat->req_free;
  nat->req_free = r;
  nat->req_free_n++;
}

/* ---- close ------------------------------------------------------------------ */

/* ops->on_close: the base is closing the connection. */
static void native_on_close(rn_conn_t *base, const char *why) {
  rn__conn_t *conn = (rn__conn_t *)base;
  rn_conn_logf(base, RN_LVL_DEBUG, "#%llu %s closed: %s (%llu requests)", (unsigned long long)base->id,
               base->peer, why, (unsigned long long)conn->requests);
  /* Unsent replies are dropped; writes in flight keep their own buffers and
   * complete with UV_ECANCELED. The input buffer stays until the free: a
   * close can happen while pump() is walking it. */
  free(conn->out);
  conn->out = NULL;
  conn->out_len = conn->out_cap = 0;
  release_holds(conn->holds, conn->nholds);
  conn->nholds = conn->norefs = conn->oref_bytes = 0;
}

/* ops->on_free: the connection is dead. */
static void native_on_free(rn_conn_t *base) {
  rn__conn_t *conn = (rn__conn_t *)base;
  free(conn->in);
  free(conn->out);
  free(conn->spare);
  release_holds(conn->holds, conn->nholds);
  free(conn->holds);
  free(conn->orefs);
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
    rn_native_error(&err, RN_ETOOLARGE, "response exceeds the 4 GiB frame limit");
    resp.correlation_id = big->correlation_id;
    resp.error = &err;
    rn_conn_logf(&conn->base, RN_LVL_ERROR, "#%llu %s: response of %zu bytes too large for a frame",
                 (unsigned long long)conn->base.id, conn->base.peer, n);
    queue_frame(conn, &resp.base);
    return;
  }
  if (!out_reserve(conn, n)) {
    rn_conn_logf(&conn->base, RN_LVL_ERROR, "#%llu %s: out of memory for a %zu-byte reply; closing",
                 (unsigned long long)conn->base.id, conn->base.peer, n);
    rn_conn_close(&conn->base, "out of memory");
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
    rn_core_fetch_release(hold);
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
    rn_core_fetch_release(hold);
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
  rn_native_error(&err, code, msg);
  resp.correlation_id = corr;
  resp.error = &err;
  queue_frame(conn, &resp.base);
  rn_conn_schedule(&conn->base);
}

static void on_write(rn_conn_t *base, rn_conn_wreq_t *req, int status) {
  conn_write_t *wr = (conn_write_t *)req;
  rn__conn_t *conn = (rn__conn_t *)base;
  release_holds(wr->holds, wr->nholds);
  free(wr->holds);
  if (!closing(conn) && conn->spare == NULL && wr->cap <= RN__SPARE_MAX) {
    conn->spare = wr->buf;
    conn->spare_cap = wr->cap;
  } else {
    free(wr->buf);
  }
  free(wr);
  if (status < 0) {
    if (status != UV_ECANCELED) rn_conn_close(&conn->base, uv_strerror(status));
  } else {
    conn->last_active = rn_conn_now(base);
    rn_conn_schedule(&conn->base); /* may resume reading, or finish a close */
  }
}

/* Hand the output (copied bytes interleaved with referenced ones) to one
 * write; the write owns the buffer and the holds until it completes. */
static void flush(rn__conn_t *conn) {
  if (closing(conn) || (conn->out_len == 0 && conn->norefs == 0)) return;
  conn_write_t *wr = malloc(sizeof *wr);
  uv_buf_t one, *bufs = &one;
  size_t nb = 0;
  if (wr != NULL && conn->norefs > 0) bufs = malloc((2 * conn->norefs + 1) * sizeof *bufs);
  if (wr == NULL || bufs == NULL) {
    free(wr);
    rn_conn_close(&conn->base, "out of memory");
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
  int rc = rn_conn_write(&conn->base, &wr->req, bufs, (unsigned)nb, wr->len, on_write);
  if (bufs != &one) free(bufs);
  if (rc != 0) {
    release_holds(wr->holds, wr->nholds);
    free(wr->holds);
    free(wr->buf);
    free(wr);
    rn_conn_close(&conn->base, uv_strerror(rc));
  }
}

/* ---- requests ---------------------------------------------------------------- */

/* The engine's answer (rn_native_reply_cb). */
static void on_reply(void *ctx, const Runnel__Response *resp) {
  rn__req_t *r = ctx;
  rn__conn_t *conn = r->conn;
  rn_native_t *nat = conn->nat;
  assert(resp != NULL && conn->inflight > 0 && nat->inflight > 0);
  conn->inflight--;
  nat->inflight--;
  assert(conn->reserved >= r->reserve);
  conn->reserved -= r->reserve;
  if (!closing(conn)) {
    /* resp is the engine's; pack a shallow copy carrying our correlation id.
     * A fetch's batches are not copied: the engine keeps them for us. */
    Runnel__Response copy = *resp;
    copy.correlation_id = r->corr;
    void *hold = resp->op_case == RUNNEL__RESPONSE__OP_FETCH ? rn_core_fetch_hold(nat->eng) : NULL;
    if (hold != NULL)
      queue_frame_refs(conn, &copy.base, hold);
    else
      queue_frame(conn, &copy.base);
    rn_conn_schedule(&conn->base);
  }
  req_put(nat, r);
  rn_conn_unref(&conn->base);
}

/* A request decoded either by the zero-copy produce decoder (batch bytes
 * borrowed from the input buffer: valid during rn_native_handle only, which
 * is all the engine's contract promises anyway) or by protobuf-c. */
static void handle(rn__conn_t *conn, const Runnel__Request *req);

/* Reply bytes a request reserves while at the engine: a fetch's max bytes
 * (as the engine caps them), 0 for anything else. */
static size_t fetch_reserve(const rn__conn_t *conn, const Runnel__Request *req) {
  if (req->op_case != RUNNEL__REQUEST__OP_FETCH || req->fetch == NULL) return 0;
  uint32_t max = req->fetch->max_bytes ? req->fetch->max_bytes : RN_CORE_FETCH_DEFAULT_BYTES;
  return max < cfg_of(conn)->max_fetch_bytes ? max : cfg_of(conn)->max_fetch_bytes;
}

/* Returns false, dispatching nothing, for a fetch that must wait until the
 * connection's answers fit (the frame stays in the input). */
static bool dispatch(rn__conn_t *conn, const uint8_t *payload, size_t len) {
  conn->requests++;
  conn->last_active = rn_conn_now(&conn->base);
  rn_produce_view_t view;
  if (rn_produce_view_decode(payload, len, &view)) {
    handle(conn, &view.req);
    return true;
  }
  Runnel__Request *req = runnel__request__unpack(NULL, len, payload);
  if (req == NULL) {
    rn_conn_logf(&conn->base, RN_LVL_DEBUG, "#%llu %s: undecodable request of %zu bytes", (unsigned long long)conn->base.id,
             conn->base.peer, len);
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
  rn_native_t *nat = conn->nat;
  rn__req_t *r = req_get(nat);
  if (r == NULL) {
    send_error(conn, req->correlation_id, RN_ENOMEM, "broker out of memory");
    return;
  }
  r->conn = conn;
  r->corr = req->correlation_id;
  r->reserve = fetch_reserve(conn, req);
  conn->reserved += r->reserve;
  rn_conn_ref(&conn->base);
  conn->inflight++;
  nat->inflight++;
  rn_native_handle(nat->eng, req, on_reply, r); /* dispatch.c; may reply before returning */
}

static bool rn__conn_backpressured(const rn__conn_t *conn) {
  return conn->out_len + conn->oref_bytes + conn->base.writing + conn->reserved >=
         cfg_of(conn)->max_output_bytes_per_connection;
}

static bool may_dispatch(const rn__conn_t *conn) {
  return !closing(conn) && conn->st != RN__NS_FATAL && !draining(conn) &&
         conn->inflight < cfg_of(conn)->max_inflight_per_connection &&
         conn->out_len + conn->oref_bytes + conn->base.writing < cfg_of(conn)->max_output_bytes_per_connection;
}

static void on_alloc(rn_conn_t *base, size_t suggested, uv_buf_t *buf) {
  rn__conn_t *conn = (rn__conn_t *)base;
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
  size_t room = conn->in_cap - conn->in_len;
  /* A large frame is read up to its end and no further: the read that
   * completes it then leaves no part of the next frame behind, which pump()
   * would have to move to the front of the buffer (a copy of up to a frame
   * per read). Small frames keep sharing reads. */
  if (conn->in_need >= RN__IN_KEEP && conn->in_need > conn->in_len && conn->in_need - conn->in_len < room)
    room = conn->in_need - conn->in_len;
  *buf = uv_buf_init((char *)conn->in + conn->in_len, (unsigned)room);
}

static void update_reading(rn__conn_t *conn) {
  bool want = may_dispatch(conn) && !conn->fetch_blocked && conn->st != RN__NS_EOF;
  int rc = rn_conn_read(&conn->base, want);
  if (rc != 0) rn_conn_close(&conn->base, uv_strerror(rc));
}

static void framing_error(rn__conn_t *conn, size_t payload_len) {
  char msg[160];
  snprintf(msg, sizeof msg, "frame of %zu bytes exceeds max_frame_bytes (%u); closing the connection",
           payload_len, (unsigned)cfg_of(conn)->max_frame_bytes);
  rn_conn_logf(&conn->base, RN_LVL_WARN, "#%llu %s: %s", (unsigned long long)conn->base.id, conn->base.peer, msg);
  /* Correlation id 0 (the request was never read) and the sizes as fields,
   * so the client can tell which of its requests was refused. */
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__Error err;
  rn_native_error(&err, RN_ETOOLARGE, msg);
  err.size = payload_len;
  err.limit = cfg_of(conn)->max_frame_bytes;
  resp.error = &err;
  queue_frame(conn, &resp.base);
  rn_conn_schedule(&conn->base);
  conn->st = RN__NS_FATAL;
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
    rn_err_t rc = rn_frame_decode(conn->in + pos, conn->in_len - pos, cfg_of(conn)->max_frame_bytes, &f, &need);
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
  if (!closing(conn)) update_reading(conn);
}

static void on_read(rn_conn_t *base, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  rn__conn_t *conn = (rn__conn_t *)base;
  if (closing(conn)) return;
  if (nread > 0) {
    conn->in_len += (size_t)nread;
    pump(conn);
    return;
  }
  if (nread == 0) return; /* EAGAIN */
  if (nread == UV_EOF) {
    /* Half-close: answer what was asked, then close (rn__conn_work). */
    conn->st = RN__NS_EOF;
    (void)rn_conn_read(&conn->base, false);
    rn_conn_schedule(&conn->base);
    return;
  }
  if (nread == UV_ENOBUFS)
    rn_conn_logf(&conn->base, RN_LVL_ERROR, "#%llu %s: out of memory for the read buffer; closing",
             (unsigned long long)conn->base.id, conn->base.peer);
  rn_conn_close(&conn->base, uv_strerror((int)nread));
}

static void rn__conn_work(rn_conn_t *base) {
  rn__conn_t *conn = (rn__conn_t *)base;
  if (closing(conn)) return;
  pump(conn);
  flush(conn);
  if (closing(conn) || rn__conn_unflushed(conn)) return;
  if (conn->st == RN__NS_FATAL)
    rn_conn_close(&conn->base, "framing error");
  else if (conn->st == RN__NS_EOF && conn->inflight == 0)
    rn_conn_close(&conn->base, "closed by peer");
}

/* ---- idle timeout -------------------------------------------------------------- */

/* How long a connection may be quiet: idle_timeout_ms, or while draining
 * the (shorter) drain_timeout_ms. 0 = no limit. */
static uint64_t quiet_limit(const rn__conn_t *conn) {
  uint64_t idle = cfg_of(conn)->idle_timeout_ms, drain = cfg_of(conn)->drain_timeout_ms;
  if (draining(conn) && drain > 0 && (idle == 0 || drain < idle)) return drain;
  return idle;
}

static void on_idle(uv_timer_t *t) {
  rn__conn_t *conn = t->data; /* the base's timer: data is the connection */
  if (closing(conn)) return;
  uint64_t limit = quiet_limit(conn);
  if (limit == 0) return;
  uint64_t now = rn_conn_now(&conn->base);
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
  rn_conn_logf(&conn->base, RN_LVL_INFO, "#%llu %s: %s for %llu ms; closing", (unsigned long long)conn->base.id, conn->base.peer,
           stalled ? "not reading its replies" : "idle", (unsigned long long)quiet);
  rn_conn_close(&conn->base, stalled ? "write stalled" : "idle timeout");
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
    if (rn_frame_decode(conn->in + pos, conn->in_len - pos, cfg_of(conn)->max_frame_bytes, &f, &need) != 0) break;
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

static void rn__conn_drain(rn_conn_t *base) {
  rn__conn_t *conn = (rn__conn_t *)base;
  (void)rn_conn_read(&conn->base, false);
  if (!closing(conn) && conn->st != RN__NS_FATAL) refuse_held(conn);
  uint64_t limit = quiet_limit(conn);
  if (!closing(conn) && limit > 0) uv_timer_start(&conn->base.timer, on_idle, limit, 0);
}

/* ---- the session on a new connection ------------------------------------------ */

static void native_on_open(rn_conn_t *base) {
  rn__conn_t *conn = (rn__conn_t *)base;
  conn->nat = base->proto;
  conn->last_active = rn_conn_now(base);
  if (cfg_of(conn)->idle_timeout_ms > 0) uv_timer_start(&base->timer, on_idle, cfg_of(conn)->idle_timeout_ms, 0);
  rn_conn_logf(base, RN_LVL_DEBUG, "#%llu %s accepted", (unsigned long long)base->id, base->peer);
  update_reading(conn);
}

static bool native_busy(const rn_conn_t *base) { return rn__conn_unflushed((const rn__conn_t *)base); }

static const rn_net_proto_ops_t native_ops = {
    .name = "conn",
    .conn_size = sizeof(rn__conn_t),
    .on_open = native_on_open,
    .on_alloc = on_alloc,
    .on_read = on_read,
    .on_work = rn__conn_work,
    .on_drain = rn__conn_drain,
    .busy = native_busy,
    .on_close = native_on_close,
    .on_free = native_on_free,
};

const rn_net_proto_ops_t *rn_native_ops(void) { return &native_ops; }

rn_native_t *rn_native_new(const rn_native_opts_t *opts) {
  rn_native_t *nat = calloc(1, sizeof *nat);
  if (nat != NULL) nat->opts = *opts;
  return nat;
}

void rn_native_set_engine(rn_native_t *nat, rn_core_t *eng) { nat->eng = eng; }

uint64_t rn_native_inflight(const rn_native_t *nat) { return nat->inflight; }

unsigned rn_native_backpressured(const rn_net_listener_t *lst) {
  unsigned n = 0;
  for (const rn_conn_t *c = rn_net_listener_conns(lst); c != NULL; c = c->next)
    n += rn__conn_backpressured((const rn__conn_t *)c);
  return n;
}

void rn_native_free(rn_native_t *nat) {
  if (nat == NULL) return;
  while (nat->req_free != NULL) {
    rn__req_t *r = nat->req_free;
    nat->req_free = r->next_free;
    free(r);
  }
  free(nat);
}
