/*
 * net_int.h — private structures of broker/net (net.c, conn_base.c).
 * Loop thread only.
 */
#ifndef RN_NET_INT_H
#define RN_NET_INT_H

#include "rn_net.h"

struct rn_net_listener {
  rn_net_t *net;
  uv_tcp_t tcp;
  bool open;   /* tcp initialised and uv_close not called */
  bool closed; /* its close callback ran */
  rn_net_listen_opts_t lo; /* strings copied below */
  char name[16], limit_name[40];
  uint16_t port;
  char addr[128];
  uint32_t nconns, nextra;
  uint64_t next_id;
  uint64_t refused[2];   /* [rn_net_refuse_t] */
  rn_net_ratelog_t rejects;
  rn_conn_t *conns;
  rn_net_listener_t *next;
};

struct rn_net {
  uv_loop_t *loop;
  rn_net_opts_t opts;
  uint64_t fd_limit;
  uv_prepare_t prepare;
  uv_check_t check;
  bool started;
  /* Every handle of the net not yet closed: listeners, the two hooks, each
   * connection's socket and timer. When finishing and this reaches 0, done runs. */
  unsigned handles_open;
  rn_net_listener_t *listeners;
  rn_conn_t *work; /* connections with deferred work */
  rn_conn_t *dead; /* closed, unreferenced: freed in step 4 */
  uint8_t tls_rbuf[64 * 1024]; /* ciphertext reads of every TLS connection, one at a time */

  /* Shutdown: RUNNING → DRAINING (rn_net_shutdown) → FINISHING (every
   * connection and hook closing) → DONE (the last handle closed, done ran). */
  enum { RN__NET_RUNNING, RN__NET_DRAINING, RN__NET_FINISHING, RN__NET_DONE } phase;
  rn_net_done_cb done;
  void *done_arg;
};

void rn__net_count_handle(rn_net_t *net);
void rn__net_handle_closed(rn_net_t *net);
/* Accept one pending connection on lst (conn_base.c). */
void rn__net_accept(rn_net_listener_t *lst);
/* Step 3 for one queued, open connection: pending TLS bytes, then ops->on_work. */
void rn__conn_work(rn_conn_t *conn);
/* Free a dead connection (conn_base.c). */
void rn__conn_free(rn_conn_t *conn);

/* ---- tls.c ---- */
/* Start TLS on a just admitted connection; false on out of memory. */
bool rn__tls_conn_start(rn_conn_t *conn, rn_net_tls_t *tls);
void rn__tls_conn_free(rn_conn_t *conn);
/* Ciphertext read from the socket: handshake, then plaintext to
 * ops->on_read (RN_NET_ETLS on failure, UV_EOF on close_notify). */
void rn__tls_on_read(rn_conn_t *conn, const uint8_t *data, size_t len);
/* Encrypt n plaintext buffers into the pending ciphertext, then (last) the
 * close_notify alert. 0 or an error. */
int rn__tls_encrypt(rn_conn_t *conn, const uv_buf_t *bufs, unsigned n, bool last);
/* Write the pending ciphertext now (no-op when none). user/cb: the
 * protocol's write whose bytes it carries (NULL: net's own bytes). */
int rn__tls_flush(rn_conn_t *conn, rn_conn_wreq_t *user, size_t bytes, rn_conn_write_cb cb);

#endif
