/*
 * httpclient.h — small, blocking HTTP clients for the HTTP transport tests,
 * built on the same Debian libraries as the server but on their client
 * sides (http-parser in response mode; nghttp2's client session), never on
 * broker code.
 *
 *   rn_hc_*   HTTP/1.1 over one TCP connection: send raw bytes (so a test
 *             can pipeline, split or garble requests), read responses in
 *             order, wait for the server to close.
 *   rn_h2c_*  HTTP/2 with prior knowledge over one TCP connection: submit
 *             several requests, run until every stream closed.
 *   rn_hc_run A child process (curl) with its stdout captured.
 *
 * Reads block; a receive timeout (RN_HC_RECV_TIMEOUT_S) turns a server that
 * never answers into a test failure instead of a hang. It is a safety net,
 * never a synchronisation.
 */
#ifndef RN_TEST_HTTPCLIENT_H
#define RN_TEST_HTTPCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RN_HC_RECV_TIMEOUT_S 60

typedef struct rn_hc_hdr {
  char *name; /* lowercase */
  char *value;
} rn_hc_hdr_t;

/* One response. Owned by whoever filled it; rn_hc_resp_free. */
typedef struct rn_hc_resp {
  int status;         /* 0: none (stream reset, connection closed) */
  rn_hc_hdr_t *hdrs;
  size_t nhdrs;
  uint8_t *body;      /* NUL-terminated for convenience (not counted) */
  size_t body_len;
  bool keep_alive;    /* HTTP/1.1: the server did not announce a close */
  uint32_t rst_code;  /* HTTP/2: RST_STREAM error code, when reset */
} rn_hc_resp_t;

const char *rn_hc_resp_header(const rn_hc_resp_t *r, const char *lname);
void rn_hc_resp_free(rn_hc_resp_t *r);

/* ---- HTTP/1.1 ------------------------------------------------------------------ */

typedef struct rn_hc {
  int fd;
  uint8_t *in;
  size_t in_len, in_cap;
  void *parser; /* http_parser */
  rn_hc_resp_t *cur;
  bool done;      /* cur is complete */
  bool eof;
  bool next_head; /* the next response answers a HEAD request */
  char *field;    /* header name being assembled */
  bool in_value;
} rn_hc_t;

/* Connect to 127.0.0.1:port. 0 or -errno; c is safe to rn_hc_close either way. */
int rn_hc_connect(rn_hc_t *c, uint16_t port);
int rn_hc_send(rn_hc_t *c, const void *buf, size_t len);
int rn_hc_sendf(rn_hc_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Read the next response (an interim 100 Continue is a response too).
 * 0, or -1 when the connection closed or failed first (r->status 0). */
int rn_hc_read(rn_hc_t *c, rn_hc_resp_t *r);

/* GET /metrics on c and return the value of the sample line that starts
 * with name (labels included, e.g. "x_total{port=\"http\"}"): -1 when the
 * broker does not export it, -2 when the request failed or was not 200. */
long long rn_hc_metric(rn_hc_t *c, const char *name);
/* Read and drop until the server closes. True on EOF or reset; false on
 * the safety timeout. */
bool rn_hc_wait_closed(rn_hc_t *c);
void rn_hc_close(rn_hc_t *c);

/* ---- HTTP/2 (prior knowledge) ----------------------------------------------------- */

typedef struct rn_h2c rn_h2c_t;

/* Connect and send the preface and SETTINGS. NULL on failure. */
rn_h2c_t *rn_h2c_connect(uint16_t port);
/* Queue a request; extra headers may be NULL. body is copied. Returns the
 * stream id (> 0) or -1. */
int32_t rn_h2c_submit(rn_h2c_t *c, const char *method, const char *path, const rn_hc_hdr_t *extra, size_t nextra,
                      const void *body, size_t body_len);
/* Exchange frames until every submitted stream closed. 0, or -1 if the
 * connection failed or closed first. */
int rn_h2c_run(rn_h2c_t *c);
/* Exchange frames until stream_id closed. 0, or -1 as rn_h2c_run. */
int rn_h2c_run_until(rn_h2c_t *c, int32_t stream_id);
/* The response of a stream (NULL for an unknown id). Owned by c. */
const rn_hc_resp_t *rn_h2c_resp(const rn_h2c_t *c, int32_t stream_id);
/* Whether the server sent GOAWAY; its last stream id. */
bool rn_h2c_goaway(const rn_h2c_t *c, int32_t *last_stream_id);
/* Cancel a stream (RST_STREAM CANCEL), sent with the next run. */
void rn_h2c_reset(rn_h2c_t *c, int32_t stream_id);
/* Send raw bytes on the connection (to break the protocol). */
int rn_h2c_send_raw(rn_h2c_t *c, const void *buf, size_t len);
/* Read until the server closes; true on EOF or reset. */
bool rn_h2c_wait_closed(rn_h2c_t *c);
void rn_h2c_free(rn_h2c_t *c);

/* ---- child processes ---------------------------------------------------------------- */

/* Run argv (argv[0] looked up in PATH), stdin from /dev/null, stdout captured into out (NUL-
 * terminated, truncated to outlen-1), stderr to the test's stderr. Returns
 * the exit status, or -1 if it could not run or died of a signal. */
int rn_hc_run(const char *const argv[], char *out, size_t outlen);
/* Whether a program is on PATH. */
bool rn_hc_have(const char *prog);

#endif
