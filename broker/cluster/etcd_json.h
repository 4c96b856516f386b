/*
 * etcd_json.h — the etcd v3 JSON gateway's codec (etcd_json.c), private to
 * broker/cluster/: request bodies out, answers in. Pure functions over
 * bytes (no sockets, no threads, no clock), so they are unit-tested without
 * etcd and fuzzed (fuzz/fuzz_etcd_json.c).
 *
 * The gateway's conventions: bytes fields (keys, values) are standard
 * base64 with padding; int64 fields are JSON strings of decimal digits
 * (numbers are accepted too); fields at their zero value are left out
 * (a missing "type" is PUT, a missing "kvs" is none, a missing "TTL" is 0);
 * errors are {"error": "...", "message": "...", "code": <gRPC code>} with
 * an HTTP status from the code; streamed answers (keepalive, watch) are
 * wrapped in {"result": ...} one per line, and a stream that fails ends
 * with {"error": {"grpc_code": N, "http_code": S, "message": "..."}}.
 */
#ifndef RN_CLUSTER_ETCD_JSON_H
#define RN_CLUSTER_ETCD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd.h"
#include "rn_base.h"
#include "runnel/error.h"

/* An answer larger than this is refused (RN_ETOOLARGE from the client's
 * reader; a watch line too). */
#define RN__ETCD_ANSWER_MAX (64u << 20)

/* ---- base64 and key ranges ------------------------------------------------------- */

/* Bytes of the base64 of n bytes (no NUL). */
size_t rn__etcd_b64_len(size_t n);
/* Append the base64 of in[0, n) to b. */
void rn__etcd_b64_put(rn_buf_t *b, const uint8_t *in, size_t n);
/* Decode in[0, n) (standard alphabet, padding required as Go writes it;
 * no whitespace) into out, which has room for n / 4 * 3 bytes. Returns 0
 * and *outlen, or RN_EINVAL. */
rn_err_t rn__etcd_b64_decode(const char *in, size_t n, uint8_t *out, size_t *outlen);

/* The range_end that makes [key, range_end) every key starting with
 * key[0, n): key with its last byte below 0xff incremented and what follows
 * dropped; "\0" (every key >= key) when there is none such (empty, or all
 * 0xff). Writes to out (room for n bytes, at least 1) and returns its
 * length. */
size_t rn__etcd_prefix_end(const uint8_t *key, size_t n, uint8_t *out);

/* ---- request bodies --------------------------------------------------------------
 * Each appends one JSON object to b (check b->oom after). */

/* {"key": ..., ["range_end": ...]} for range and deleterange. */
void rn__etcd_body_range(rn_buf_t *b, const char *key, bool prefix);
/* {"key": ..., "value": ..., ["lease": "N"]} */
void rn__etcd_body_put(rn_buf_t *b, const char *key, const uint8_t *val, size_t len, int64_t lease);
/* {"compare": [...], "success": [...], "failure": [...]}. */
void rn__etcd_body_txn(rn_buf_t *b, const rn_etcd_cmp_t *cmp, size_t ncmp, const rn_etcd_op_t *then_ops,
                       size_t nthen, const rn_etcd_op_t *else_ops, size_t nelse);
/* {"TTL": "N"} */
void rn__etcd_body_grant(rn_buf_t *b, int64_t ttl_s);
/* {"ID": "N"} (keepalive, revoke, timetolive) */
void rn__etcd_body_lease(rn_buf_t *b, int64_t lease);
/* {"create_request": {"key": ..., "range_end": ..., "start_revision": "N",
 * "progress_notify": true}}: every change under prefix[0, n) from
 * start_revision (0: from now). */
void rn__etcd_body_watch(rn_buf_t *b, const uint8_t *prefix, size_t n, int64_t start_revision);

/* ---- answers ----------------------------------------------------------------------- */

typedef enum {
  RN__ETCD_RANGE = 0,
  RN__ETCD_PUT,
  RN__ETCD_DELETE,
  RN__ETCD_TXN,
  RN__ETCD_GRANT,
  RN__ETCD_KEEPALIVE,
  RN__ETCD_REVOKE,
  RN__ETCD_TTL,
  RN__ETCD_NKINDS
} rn__etcd_kind_t;

/* "range", "put", ... (for messages); "?" outside the enum. */
const char *rn__etcd_kind_name(rn__etcd_kind_t kind);
/* The gateway path of kind: "/v3/kv/range", ... */
const char *rn__etcd_kind_path(rn__etcd_kind_t kind);

/* A decoded answer: r as the callback sees it, and the memory behind it
 * (kvs and one block holding every key and value, NUL after each). */
typedef struct rn__etcd_answer {
  rn_etcd_result_t r;
  rn_etcd_kv_t *kvs;
  uint8_t *data;
  char msg[512];
} rn__etcd_answer_t;

/* Decode the answer of a kind request: HTTP status and body[0, len) (not
 * NUL-terminated). Fills a (zeroed first; free with rn__etcd_answer_free
 * in every case) and returns a->r.err:
 *   0                  a success answer
 *   RN_ENOENT          keepalive / ttl: the lease is gone (ttl 0); an error
 *                      answer with gRPC code 5 (lease not found)
 *   RN_EINVAL          gRPC code 3 (invalid argument); 11 for a grant (TTL
 *                      too large)
 *   RN_EOFFSET         gRPC code 11 otherwise (compacted / future revision)
 *   RN_ETIMEDOUT       gRPC code 4
 *   RN_ECONTROLPLANE   any other error answer (etcd's message in msg), an
 *                      HTTP 5xx, or a malformed answer: msg starts "bad
 *                      answer from etcd: "
 *   RN_ENOMEM
 * On error a->r.msg points to a->msg. */
rn_err_t rn__etcd_decode(rn__etcd_kind_t kind, long http_status, const char *body, size_t len,
                         rn__etcd_answer_t *a);
void rn__etcd_answer_free(rn__etcd_answer_t *a);

/* One line of a watch stream. */
typedef enum {
  RN__ETCD_W_CREATED = 0, /* the watch is established; revision = the store's then */
  RN__ETCD_W_EVENTS,      /* ev[0, nev), revision = the header's */
  RN__ETCD_W_PROGRESS,    /* no events: every change up to revision was sent */
  RN__ETCD_W_CANCELED,    /* etcd ended the watch: compact_revision > 0 when compacted; msg: the reason */
  RN__ETCD_W_ERROR,       /* the stream failed ({"error": {...}}): msg; worth reconnecting */
} rn__etcd_wkind_t;

typedef struct rn__etcd_wmsg {
  rn__etcd_wkind_t kind;
  int64_t revision;
  int64_t compact_revision;
  rn_etcd_event_t *ev;
  size_t nev;
  uint8_t *data; /* every key and value of ev, NUL after each */
  char msg[512];
} rn__etcd_wmsg_t;

/* Decode one line (without its '\n') of a watch stream into m (zeroed
 * first; free with rn__etcd_wmsg_free in every case). Returns 0, or
 * RN_ECONTROLPLANE with m->msg "bad answer from etcd: ..." (malformed), or
 * RN_ENOMEM. Events come out in the order sent (etcd's: revision order). */
rn_err_t rn__etcd_decode_watch(const char *line, size_t len, rn__etcd_wmsg_t *m);
void rn__etcd_wmsg_free(rn__etcd_wmsg_t *m);

#endif
