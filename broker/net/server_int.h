/*
 * server_int.h — private structures of the network side (server.c: listeners,
 * the per-iteration deferred work, shutdown, logging; conn.c: native protocol
 * connections; http_*.c: the HTTP transport, whose own structures are in
 * http_int.h). Loop thread only.
 *
 * Memory rule shared by all these files: a connection is never freed inside
 * one of its own callbacks. Its close callbacks only move it to a dead list
 * (once nothing else references it); the server's prepare/check hooks free
 * the dead list (server.c run_deferred), and rn_server_destroy frees whatever is left.
 */
#ifndef RN_BROKER_SERVER_INT_H
#define RN_BROKER_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"
#include "server.h"

typedef struct rn__conn rn__conn_t;
typedef struct rn__req rn__req_t;
typedef struct rn__hsrv rn__hsrv_t; /* the HTTP transport's state (http_int.h) */

/* One request handed to the engine: the ctx of rn_engine_handle. Holds a
 * reference on its connection until the engine's reply callback ran, so a
 * reply for a connection closed meanwhile finds valid memory (and drops the
 * reply). Recycled through the server's free list. */
struct rn__req {
  rn__conn_t *conn;
  uint64_t corr;
  size_t reserve; /* reply bytes reserved on conn->reserved until the reply (a fetch: its max bytes) */
  rn__req_t *next_free;
};

/* A piece of output referenced, not copied (conn.c). */
typedef struct rn__oref {
  size_t at; /* position in the copied output it precedes */
  const uint8_t *data;
  size_t len;
} rn__oref_t;

/* A native protocol connection. */
struct rn__conn {
  uv_tcp_t tcp;
  uv_timer_t idle;
  rn_server_t *srv;
  uint64_t id;
  char peer[80]; /* "ip:port" or "[ipv6]:port" */

  /* refs: 1 while the handles are open (dropped when both close callbacks
   * ran), +1 per rn__req at the engine, +1 per uv_write in flight. At 0 the
   * connection goes to the dead list. */
  unsigned refs;
  unsigned handles_open; /* tcp + idle timer not yet closed */
  unsigned inflight;     /* requests at the engine */
  unsigned writes;       /* uv_write requests in flight */
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

  /* Output: frames packed and not yet handed to uv_write, out[0, out_len);
   * writing: bytes handed to uv_write and not yet completed. spare: a small
   * buffer kept from a finished write for reuse. */
  uint8_t *out;
  size_t out_len, out_cap, writing;
  uint8_t *spare;
  size_t spare_cap;
  /* Bulk bytes the output refers to instead of copying them (a fetch's
   * batches, kept valid by engine holds: rn_engine_reply_hold): refs[i]
   * goes on the wire right before out[refs[i].at]. holds: the tokens,
   * released when the write carrying them completed (or on close). */
  struct rn__oref *orefs;
  size_t norefs, orefs_cap, oref_bytes;
  void **holds;
  size_t nholds, holds_cap;

  bool reading;  /* uv_read_start is in effect */
  bool closing;  /* uv_close called (or about to be); replies are dropped */
  bool eof;      /* the peer half-closed: answer what is outstanding, then close */
  bool fatal;    /* framing error: flush the error reply, then close */
  bool rejected; /* over max_connections: closed right after accept */
  bool queued;   /* on the server's work list */
  bool counted;  /* counted in srv->nconns */

  rn__conn_t *prev, *next; /* srv->conns (all open connections) */
  rn__conn_t *work_next;   /* srv->work */
  rn__conn_t *dead_next;   /* srv->dead */
};

struct rn_server {
  uv_loop_t *loop;
  rn_engine_t *eng;
  const rn_config_t *cfg;

  uv_tcp_t native, http;
  uv_prepare_t prepare; /* run_deferred before poll (work queued by timers, writes) */
  uv_check_t check;     /* run_deferred after poll (work queued by I/O) */
  /* Every handle of the server not yet closed: listeners, the two hooks,
   * each connection's socket and timer. When finishing and this reaches 0,
   * done runs. */
  unsigned handles_open;
  uint16_t native_port, http_port;
  char native_addr[128], http_addr[128];

  rn__conn_t *conns;      /* every open native connection */
  uint32_t nconns;        /* accepted and not rejected */
  uint64_t next_conn_id;
  rn__conn_t *work;       /* connections with deferred work (pump, flush, close) */
  rn__conn_t *dead;       /* closed, unreferenced: freed by run_deferred */
  rn__req_t *req_free;    /* recycled request contexts */
  unsigned req_free_n;
  uint64_t inflight;      /* requests at the engine, all connections */

  rn__hsrv_t *hsrv;              /* HTTP transport (http_server.c) */
  rn_http_router_fn http_router; /* NULL: the built-in router */
  void *http_router_arg;

  uint64_t rejected;          /* connections refused since the last warning */
  uint64_t reject_logged_at;  /* uv_now of that warning */
  /* Connections refused since start, for /metrics:
   * [RN__PORT_NATIVE|RN__PORT_HTTP][RN__REFUSE_LIMIT|RN__REFUSE_FDS]. */
  uint64_t refused[2][2];
  uint64_t fd_limit;          /* soft RLIMIT_NOFILE at start; 0 = unlimited */

  bool draining;  /* rn_server_shutdown called */
  bool finishing; /* every handle is being closed; done runs when the last closes */
  bool done_called;
  rn_server_done_cb done;
  void *done_arg;

  char *port_file_written; /* path of the port file we wrote, to remove */
};

/* ---- conn.c ---- */

/* Accept a pending connection on srv->native (the listener's callback). */
void rn__conn_accept(rn_server_t *srv);

/* Deferred work of one connection, run by run_deferred: dispatch buffered
 * requests if allowed, update reading, hand packed replies to uv_write, and
 * close when a framing error or half-close says so. */
void rn__conn_work(rn__conn_t *conn);

/* Start closing conn (idempotent). why is logged at debug ("eof", ...). */
void rn__conn_close(rn__conn_t *conn, const char *why);

/* Queue conn on srv->work (idempotent). */
void rn__conn_schedule(rn__conn_t *conn);

/* Whether conn's unwritten and reserved reply bytes reach
 * max_output_bytes_per_connection (no request of it is dispatched). */
bool rn__conn_backpressured(const rn__conn_t *conn);

/* Whether conn has replies not yet fully written. */
bool rn__conn_unflushed(const rn__conn_t *conn);

/* Stop reading requests. */
void rn__conn_stop_reading(rn__conn_t *conn);

/* Shutdown began: stop reading, and from now on close the connection if
 * its replies make no write progress for drain_timeout_ms. */
void rn__conn_drain(rn__conn_t *conn);

/* Free a dead connection. */
void rn__conn_free(rn__conn_t *conn);

/* ---- http_server.c (the HTTP transport; details in http_int.h) ---- */

/* Set up the transport before the listener starts: TLS context when
 * configured (reads the PEM files: startup only), nghttp2 callbacks, the
 * request-id seed. On failure why holds one line and nothing is left. */
rn_err_t rn__http_init(rn_server_t *srv, char *why, size_t whylen);

/* Accept a pending connection on srv->http (the listener's callback). */
void rn__http_accept(rn_server_t *srv);

/* Step 3 of run_deferred: every HTTP connection with deferred work parses
 * what it held back, hands responses to the output in order, writes, and
 * closes when it should. */
void rn__http_work(rn_server_t *srv);

/* Step 4 of run_deferred: free closed, unreferenced HTTP connections. */
void rn__http_reap(rn_server_t *srv);

/* Shutdown began (the listener is closed): HTTP/1.1 connections stop
 * reading requests, HTTP/2 ones send GOAWAY; requests at the router are
 * still answered. */
void rn__http_drain(rn_server_t *srv);

/* No HTTP request at the router and every HTTP response written. */
bool rn__http_quiet(const rn_server_t *srv);

/* Number of open HTTP connections. */
uint32_t rn__http_count(const rn_server_t *srv);

/* Close every HTTP connection (shutdown's last step). */
void rn__http_close_all(rn_server_t *srv);

/* Free what is left (after every handle closed). NULL-safe on srv->hsrv. */
void rn__http_destroy(rn_server_t *srv);

/* ---- server.c ---- */

enum { RN__PORT_NATIVE = 0, RN__PORT_HTTP = 1 };
enum { RN__REFUSE_LIMIT = 0, RN__REFUSE_FDS = 1 };

/* Whether a connection just accepted on fd leaves fewer than fd_reserve
 * descriptors under the open-file limit. Descriptors are allocated lowest
 * first, so every fd below it is in use. */
bool rn__server_fds_short(const rn_server_t *srv, int fd);

/* Bookkeeping when a handle owned by the server (listener, hook,
 * connection handle) finished closing: when finishing and it was the last,
 * call the done callback. */
void rn__server_handle_closed(rn_server_t *srv);

/* Count one more open handle (call right after its uv_*_init). */
void rn__server_count_handle(rn_server_t *srv);

#endif
