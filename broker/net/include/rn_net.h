/*
 * rn_net.h — runneld's connection base: listeners and accept, connection
 * limits with a rate-limited reject log, one connection struct (rn_conn_t)
 * that every protocol embeds, its reference count and close, the dead list
 * freed once per loop iteration, read/write plumbing with output-bytes
 * accounting, the order of deferred work in one loop iteration, and
 * shutdown sequencing. Protocols (broker/native, broker/http) plug in
 * through a table of operations (rn_net_proto_ops_t); nothing here knows a
 * wire format, the engine or the config file.
 *
 * Threading: everything runs on the thread that runs the loop given to
 * rn_net_new. No function here blocks after rn_net_start, except name
 * resolution in rn_net_listen (startup only).
 *
 * Lifetime: rn_net_new → rn_net_listen (each port) → rn_net_start →
 * (loop runs) → rn_net_shutdown → done callback → (uv_run returns) →
 * rn_net_destroy. A net that listened but never started is released with
 * rn_net_abandon.
 *
 * The memory rule every protocol follows: a connection is never freed
 * inside one of its own callbacks. Closing only starts uv_close on its two
 * handles; when both closed and no reference is left (rn_conn_ref: a
 * request at the engine, a write in flight) it moves to the dead list, and
 * the loop hooks free the dead list (step 4 of the order in net.c), calling
 * ops->on_free first.
 */
#ifndef RN_NET_H
#define RN_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rn_base.h"

typedef struct rn_net rn_net_t;
typedef struct rn_net_listener rn_net_listener_t;
typedef struct rn_conn rn_conn_t;
typedef struct rn_net_tls rn_net_tls_t;
typedef struct rn__tls_conn rn__tls_conn_t; /* a connection's TLS session (tls.c) */

/* One log line (msg has no newline), at a level of base's logger
 * (rn_base.h). component: "server", or a protocol's ops->name. net has no
 * logger of its own: it calls the one in rn_net_opts_t. */
typedef void (*rn_net_log_fn)(void *arg, rn_level_t level, const char *component, const char *msg);

/* ---- runneld's stderr logger (log.c) -------------------------------------------
 * An rn_net_log_fn writing base's stderr line (rn_base.h rn_logger_stderr,
 * "2026-11-22T02:40:00.123Z info server: ...") as component (arg unused).
 * Any thread. */
void rn_net_log_stderr(void *arg, rn_level_t level, const char *component, const char *msg);

/* ---- connections ------------------------------------------------------------
 *
 * The state of a connection, one enum. Transitions (nothing else happens):
 *
 *   (accepted) ──admitted──────────────→ RN_CONN_OPEN
 *   (accepted) ──refused (limit, fds)──→ RN_CONN_CLOSING   (id 0, never opened)
 *   RN_CONN_OPEN ──rn_conn_close───────→ RN_CONN_CLOSING   (ops->on_close ran)
 *   RN_CONN_CLOSING ──both handles closed and refs 0──→ RN_CONN_DEAD (dead list)
 *   RN_CONN_DEAD ──loop hook (step 4)──→ freed (ops->on_free, then the memory)
 */
typedef enum {
  RN_CONN_OPEN = 0,
  RN_CONN_CLOSING,
  RN_CONN_DEAD,
} rn_conn_state_t;

/* Why a connection was refused right after accept (per listener counters). */
typedef enum { RN_NET_REFUSE_LIMIT = 0, RN_NET_REFUSE_FDS = 1 } rn_net_refuse_t;

/* What a protocol plugs in. Every callback runs on the loop thread and may
 * call rn_conn_close on conn (never free it). NULL members are skipped. */
typedef struct rn_net_proto_ops {
  const char *name; /* log component of the protocol ("conn", "http") */
  size_t conn_size; /* bytes per connection; the protocol's struct starts with an rn_conn_t */
  /* Admitted: set up protocol state, start reading (rn_conn_read), arm the timer. */
  void (*on_open)(rn_conn_t *conn);
  /* Reading: like libuv's alloc and read callbacks (buf from on_alloc). */
  void (*on_alloc)(rn_conn_t *conn, size_t suggested, uv_buf_t *buf);
  void (*on_read)(rn_conn_t *conn, ssize_t nread, const uv_buf_t *buf);
  /* Deferred work queued with rn_conn_schedule (step 3 of the loop order). */
  void (*on_work)(rn_conn_t *conn);
  /* TLS only: the handshake completed (rn_conn_alpn tells what ALPN chose);
   * called before any plaintext of the connection is read. */
  void (*on_tls_ready)(rn_conn_t *conn);
  /* Shutdown began (the listeners are closed): stop taking requests. */
  void (*on_drain)(rn_conn_t *conn);
  /* Whether answers are still to be written: shutdown waits for false. */
  bool (*busy)(const rn_conn_t *conn);
  /* rn_conn_close: release what the protocol can release now (unsent
   * output, unfinished requests). The handles close after it returns. */
  void (*on_close)(rn_conn_t *conn, const char *why);
  /* The connection is dead: free what it owns, not conn itself. */
  void (*on_free)(rn_conn_t *conn);
} rn_net_proto_ops_t;

/* The connection base. Embedded as the FIRST member of each protocol's
 * connection struct, allocated (ops->conn_size, zeroed) and freed by net.
 * Protocols read the fields; they change them only through the functions
 * below. tcp.data and timer.data point to the connection. */
struct rn_conn {
  uv_tcp_t tcp;
  uv_timer_t timer; /* the protocol's to start and stop (idle, timeouts) */
  rn_net_t *net;
  rn_net_listener_t *lst;
  const rn_net_proto_ops_t *ops;
  void *proto; /* the listener's proto_arg */
  uint64_t id; /* 1, 2, ... per listener among admitted connections; 0 when refused */
  char peer[80]; /* "ip:port", "[ipv6]:port" or "?" */
  rn_conn_state_t state;
  bool extra;   /* admitted past max_conns, within the listener's extra allowance */
  bool reading; /* uv_read_start in effect */
  bool queued;  /* on the net's work list */
  /* refs: 1 while the handles are open, +1 per rn_conn_ref (a write in
   * flight holds one). handles_open: tcp + timer not yet closed. */
  unsigned refs, handles_open;
  /* Output accounting shared by the protocols: uv_write requests in flight
   * (rn_conn_write) and their bytes. */
  unsigned writes;
  size_t writing;
  uint64_t accepted_at; /* uv_now at accept */
  rn__tls_conn_t *tls;  /* NULL: cleartext */

  rn_conn_t *prev, *next; /* the listener's open connections */
  rn_conn_t *work_next;   /* net's work list */
  rn_conn_t *dead_next;   /* net's dead list */
};

/* Whether conn is closing or closed (no more input, output dropped). */
static inline bool rn_conn_closing(const rn_conn_t *conn) { return conn->state != RN_CONN_OPEN; }

/* Take and drop a reference: the memory stays valid while one is held. The
 * last unref after the close moves conn to the dead list. */
void rn_conn_ref(rn_conn_t *conn);
void rn_conn_unref(rn_conn_t *conn);

/* Start closing (idempotent): ops->on_close, then both handles close. why
 * goes to the debug log line of an admitted connection. conn stays valid
 * until the caller's callback returns (it is freed from the loop hook). */
void rn_conn_close(rn_conn_t *conn, const char *why);

/* Queue conn for ops->on_work in this iteration's step 3 (idempotent; a
 * closing connection is not queued). */
void rn_conn_schedule(rn_conn_t *conn);

/* Start (want) or stop reading. Returns 0 or a libuv error (reading stays
 * off; the caller closes). A closing connection never reads. */
int rn_conn_read(rn_conn_t *conn, bool want);

/* A write request: the caller's (typically the first member of a struct
 * that also owns the buffers); net fills it. No allocation per write. */
typedef struct rn_conn_wreq rn_conn_wreq_t;
typedef void (*rn_conn_write_cb)(rn_conn_t *conn, rn_conn_wreq_t *w, int status);
struct rn_conn_wreq {
  uv_write_t req; /* cleartext: the uv_write itself */
  rn_conn_t *conn;
  rn_conn_write_cb cb;
  size_t bytes;
};

/* One write of n buffers (bytes in total) on conn. w must stay valid
 * until cb ran. While in flight it holds a reference and
 * counts in conn->writes / conn->writing. cb runs once with the status
 * (UV_ECANCELED after a close); conn is still valid inside cb. On an error
 * return cb is never called and nothing was counted. Under TLS the bytes
 * are plaintext (encrypted now into one ciphertext write; UV_EPROTO before
 * the handshake completed) and bufs may be freed as soon as this returns. */
int rn_conn_write(rn_conn_t *conn, rn_conn_wreq_t *w, const uv_buf_t *bufs, unsigned n, size_t bytes,
                  rn_conn_write_cb cb);

/* rn_conn_write for the last bytes of the stream: under TLS the
 * close_notify alert follows them in the same write (one write, so a peer
 * that closes on reading them cannot make a second write fail with EPIPE).
 * Cleartext, or before the handshake completed: rn_conn_write. */
int rn_conn_write_last(rn_conn_t *conn, rn_conn_wreq_t *w, const uv_buf_t *bufs, unsigned n, size_t bytes,
                       rn_conn_write_cb cb);

/* uv_shutdown (FIN after the writes in flight) on conn, after writing what
 * TLS still has pending (an alert, close_notify). req is the caller's until
 * cb ran. Returns 0 or a libuv error (cb not called). */
int rn_conn_shutdown(rn_conn_t *conn, uv_shutdown_t *req, uv_shutdown_cb cb);

/* Log one line through the net's logger (rn_net_opts_t.log). */
void rn_net_logf(const rn_net_t *net, rn_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- TLS below the protocol ---------------------------------------------------
 *
 * A listener with a TLS context (rn_net_listen_opts_t.tls) runs TLS on each
 * connection before the protocol sees a byte: ops->on_read gets plaintext,
 * rn_conn_write takes plaintext, the handshake's flights and alerts are
 * written by net (in order with the protocol's writes: pending TLS bytes go
 * out with the next rn_conn_write or rn_conn_shutdown, or at the end of
 * step 3 after ops->on_work). The
 * SSL never blocks (memory BIOs). When the TLS session fails (handshake or
 * record error) ops->on_read gets RN_NET_ETLS: the alert, if any, is already
 * queued; the protocol finishes the connection gracefully (FIN after the
 * writes) rather than closing it hard. The peer's close_notify arrives as
 * UV_EOF. */
#define RN_NET_ETLS UV_EPROTO

/* A server TLS context: the certificate chain and key (PEM files, read now:
 * startup only), TLS 1.2 minimum, no renegotiation, and the ALPN protocols
 * offered in the server's order of preference (wire format, e.g.
 * "\x02h2\x08http/1.1"; copied; NULL/0: no ALPN). A client whose offer has
 * nothing in common goes on without ALPN. cert_what / key_what name the
 * files in errors (config keys). NULL with why on failure. */
rn_net_tls_t *rn_net_tls_new(const char *cert, const char *key, const unsigned char *alpn, size_t alpn_len,
                             const char *cert_what, const char *key_what, char *why, size_t whylen);
/* Free a context no listener uses any more (after rn_net_destroy). NULL ok. */
void rn_net_tls_free(rn_net_tls_t *tls);

/* Whether conn runs TLS; whether its handshake completed. */
static inline bool rn_conn_tls(const rn_conn_t *conn) { return conn->tls != NULL; }
bool rn_conn_tls_ready(const rn_conn_t *conn);
/* The protocol ALPN selected (not NUL-terminated; *len bytes), or NULL
 * with *len 0 (cleartext, handshake not done, or no ALPN). Valid while the
 * connection lives. */
const unsigned char *rn_conn_alpn(const rn_conn_t *conn, size_t *len);
/* Queue the TLS close_notify alert and write it now, after every write
 * already made (idempotent; no-op on cleartext or before the handshake).
 * With bytes still to write, rn_conn_write_last sends both in one write. */
void rn_conn_tls_close_notify(rn_conn_t *conn);
/* Whether close_notify was queued. */
bool rn_conn_tls_notified(const rn_conn_t *conn);

/* uv_now of conn's loop. */
uint64_t rn_conn_now(const rn_conn_t *conn);

/* Log one line for conn's protocol, "#id peer: " prefixed by the caller. */
void rn_conn_logf(const rn_conn_t *conn, rn_level_t level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "ip:port" or "[ipv6]:port" of sa (AF_INET, AF_INET6); "?" for anything
 * else. Always NUL-terminates a non-empty buf. */
void rn_net_format_addr(const struct sockaddr *sa, char *buf, size_t len);

/* Whether sa is a loopback address (127/8, ::1, ::ffff:127/104). */
bool rn_net_is_loopback(const struct sockaddr *sa);

/* ---- the rate-limited reject log ---------------------------------------------
 * One warning per interval however many connections are refused; the count
 * since the last warning goes in it. Pure (the clock is the caller's), so
 * it is tested alone. */
typedef struct rn_net_ratelog {
  uint64_t interval_ms; /* 1000 in the listeners */
  uint64_t suppressed;  /* events since the last line */
  uint64_t logged_at;   /* clock of the last line */
  bool logged;          /* a line was written (logged_at is valid) */
} rn_net_ratelog_t;

/* Count one event at now (ms); returns the number to report (>= 1) when a
 * line should be written now, else 0. */
uint64_t rn_net_ratelog_hit(rn_net_ratelog_t *rl, uint64_t now);

/* Whether a line that counts nothing may be written now; when true the
 * line counts as written (the interval starts again, the count stays). */
bool rn_net_ratelog_due(rn_net_ratelog_t *rl, uint64_t now);

/* ---- the network side ------------------------------------------------------- */

typedef struct rn_net_opts {
  /* Descriptors kept free under the open-file limit: a connection accepted
   * on a descriptor that leaves fewer is refused (storage needs them). */
  uint32_t fd_reserve;
  rn_net_log_fn log; /* NULL: nothing logged */
  void *log_arg;
  /* Shutdown's outside condition, asked in step 5 while draining: whether
   * nothing is in flight beyond the connections (the engine idle, nothing
   * at a router). NULL = always true. */
  bool (*quiet)(void *arg);
  void *quiet_arg;
} rn_net_opts_t;

/* New network side on loop (borrowed; must outlive it). opts is copied.
 * Reads the open-file limit. NULL on out of memory. */
rn_net_t *rn_net_new(uv_loop_t *loop, const rn_net_opts_t *opts);

typedef struct rn_net_listen_opts {
  const char *addr;       /* "HOST:PORT" as configured, for messages */
  const char *host;       /* its host (numeric, or a name resolved now) and port */
  uint16_t port;
  const char *name;       /* "native", "http": log lines and errors */
  const char *limit_name; /* the config key of max_conns, for the log line */
  uint32_t max_conns;     /* admitted connections at once */
  uint32_t extra;         /* past max_conns, this many more admitted as conn->extra */
  /* Whether the protocol authenticates its clients, and whether the
   * operator allows an open non-loopback listener (auth: none). A
   * non-loopback address needs one of them. */
  bool authenticated, allow_open;
  const char *refuse_hint; /* appended to the refusal message, e.g. ": the native protocol has no ..." */
  const rn_net_proto_ops_t *ops; /* static */
  void *proto_arg;               /* conn->proto of its connections */
  rn_net_tls_t *tls;             /* NULL: cleartext; borrowed, must outlive the net */
} rn_net_listen_opts_t;

/* Bind and listen. Connections wait in the backlog until the loop runs.
 * Blocking only for name resolution. On failure nothing is left open, why
 * holds one line and the return value is a libuv error (-errno) or
 * UV_EINVAL (a bad address, or non-loopback without authentication). */
int rn_net_listen(rn_net_t *net, const rn_net_listen_opts_t *lo, rn_net_listener_t **out, char *why, size_t whylen);

/* The bound port and "addr:port" text of a listener. */
uint16_t rn_net_listener_port(const rn_net_listener_t *lst);
const char *rn_net_listener_addr(const rn_net_listener_t *lst);
/* Admitted connections open now (extra ones not counted). */
uint32_t rn_net_listener_count(const rn_net_listener_t *lst);
/* Connections refused since start for reason; rn_net_listener_refuse
 * counts one more (a protocol refusing later, e.g. an extra connection
 * asking for more than health). */
uint64_t rn_net_listener_refused(const rn_net_listener_t *lst, rn_net_refuse_t reason);
void rn_net_listener_refuse(rn_net_listener_t *lst, rn_net_refuse_t reason);
/* The listener's open connections: first, then conn->next. */
rn_conn_t *rn_net_listener_conns(const rn_net_listener_t *lst);

/* Install the loop hooks (the deferred work of every iteration). */
void rn_net_start(rn_net_t *net);

/* The soft open-file limit read at rn_net_new; 0 = unlimited. */
uint64_t rn_net_fd_limit(const rn_net_t *net);

/* Raise the soft RLIMIT_NOFILE to the hard limit; one line to log. Never
 * fails (a limit that cannot be raised is logged and stays). */
void rn_net_raise_fd_limit(rn_net_log_fn log, void *log_arg);

/* Called once, on the loop thread, when shutdown finished: every handle of
 * the net closed. Must not destroy the net. */
typedef void (*rn_net_done_cb)(rn_net_t *net, void *arg);

/* Begin shutdown: close the listeners, ops->on_drain every connection;
 * then, from the loop hooks, once opts.quiet holds and no connection is
 * busy, close every connection and the hooks, and call done when the last
 * handle closed. Idempotent. */
void rn_net_shutdown(rn_net_t *net, rn_net_done_cb done, void *arg);
bool rn_net_draining(const rn_net_t *net);

/* Close the listeners of a net that never started, run the loop until they
 * closed, free it. NULL ok. */
void rn_net_abandon(rn_net_t *net);

/* Free the net after done ran and uv_run returned (or before start when
 * nothing listened). Frees dead connections left. NULL ok. */
void rn_net_destroy(rn_net_t *net);

#endif
