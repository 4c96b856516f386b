/*
 * etcd.h — the etcd v3 client of the cluster control plane (private to
 * broker/cluster/). The controller, membership and replication reach etcd
 * only through this header.
 *
 * How: etcd's v3 JSON gateway over HTTP/1.1 with libcurl (POST
 * /v3/kv/range|put|deleterange|txn, /v3/lease/grant|keepalive|revoke|
 * timetolive, /v3/watch as one long streaming answer per watch). Keys and
 * values travel base64, int64 fields as strings; the codec is etcd_json.h.
 *
 * Threading. Every function here is called on the loop thread of
 * rn_etcd_opts_t.loop, and every callback runs there. The client owns one
 * thread of its own (the curl thread) running a libcurl multi handle: a
 * call builds the request body, queues it under a mutex and wakes the curl
 * thread (curl_multi_wakeup); the curl thread sends it, decodes the answer
 * and queues the finished request back under the mutex, then uv_async_send
 * wakes the loop, which runs the callback. The loop thread never does I/O
 * and never waits for etcd (rn_etcd_close joins the curl thread, which
 * never blocks: see there). The logger is called from both threads.
 *
 * The asynchronous contract, one for every request below:
 *  - rn_etcd_<op>(e, ..., cb, arg) calls cb exactly once, on the loop
 *    thread, never before it returns (even an invalid argument is reported
 *    through cb, on a later loop iteration).
 *  - Arguments (keys, values, compare and op arrays) are borrowed for the
 *    duration of the call only: the request body is built before it returns.
 *  - The result and everything it points to (kvs, their keys and values,
 *    msg) is borrowed during the callback only.
 *  - arg belongs to the caller and must stay valid until cb ran.
 *  - r->err is 0 or an rn_err_t; r->msg is a one-line message when err != 0
 *    (NULL when 0). Errors:
 *      RN_ECONTROLPLANE  etcd unreachable: every endpoint failed to connect
 *                        (the message names each endpoint and curl's error);
 *                        an HTTP 5xx answer (endpoint, status, etcd's
 *                        message); the connection failed after a request
 *                        that changes state was sent (its outcome is
 *                        unknown: the message says so); a malformed answer
 *                        ("bad answer from etcd: ...")
 *      RN_ETIMEDOUT      no answer within timeout_ms of the call
 *      RN_ENOENT         the lease does not exist (keepalive, revoke, ttl,
 *                        a put naming it)
 *      RN_EINVAL         etcd refused the request as invalid (HTTP 400), or
 *                        the arguments are (an empty key, NULL cb is not
 *                        reported: it is a programming error and asserts)
 *      RN_EOFFSET        a revision that was compacted away
 *      RN_ENOMEM         out of memory for an answer
 *      RN_ETOOLARGE      an answer larger than RN__ETCD_ANSWER_MAX (64 MiB,
 *                        etcd_json.h), refused unread
 *      RN_ECANCELED      the client was closed first
 *    A txn whose compares failed is not an error: err 0, succeeded false.
 *
 * Endpoints and failover. opts.endpoints lists one or more members. Requests
 * go to the current endpoint; when it cannot be reached (connection
 * refused, connect timeout, name not resolved) the same request is tried
 * on the next one, each endpoint at most once per request, all within the
 * request's timeout, and the next working endpoint becomes the current one.
 * A read (range, lease ttl, keepalive) is also retried on the next endpoint
 * when the connection broke after it was sent; a request that changes state
 * (put, delete, txn, grant, revoke) is not (it may have been applied).
 * An endpoint that answered 5xx or did not answer in time is not retried
 * for that request, but the next request starts at the endpoint after it.
 *
 * Watches: see rn_etcd_watch. One watch holds one HTTP connection for as
 * long as it lives.
 *
 * Ownership: rn_etcd_new returns the client; rn_etcd_close releases it
 * (the memory itself once the loop has run the close of its uv_async
 * handle, as for any libuv handle: run the loop after closing).
 */
#ifndef RN_CLUSTER_ETCD_H
#define RN_CLUSTER_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rn_base.h"
#include "runnel/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rn_etcd rn_etcd_t;

typedef struct rn_etcd_opts {
  uv_loop_t *loop;             /* callbacks run on this loop's thread; borrowed, outlives the client */
  const char *endpoints;       /* "http://127.0.0.1:2379,http://...": http:// or https://, host[:port]
                                  only; tried in turn, failover on connection errors; copied */
  uint32_t timeout_ms;         /* per request, from the call to the callback; 0 = 5000 */
  uint32_t connect_timeout_ms; /* per connection attempt (an endpoint that drops SYNs costs this
                                  before the next is tried); 0 = 1000; capped by timeout_ms */
  rn_logger_t logger;          /* component "etcd"; called on the loop and the curl thread */
} rn_etcd_opts_t;

/* Parse the options, start the curl thread. Returns 0 and *out, or
 * RN_EINVAL (bad endpoints: why says which) / RN_ENOMEM / -errno, with why
 * filled (why may be NULL). Loop thread. */
rn_err_t rn_etcd_new(const rn_etcd_opts_t *o, rn_etcd_t **out, char *why, size_t whylen);

/* Stop the client. Before it returns: the curl thread is stopped and
 * joined (it is never blocked: only a DNS lookup of a host name endpoint
 * in progress can delay it, so prefer IP addresses), every request not yet
 * called back is called back here, in order: those etcd had already
 * answered with their result, the others with RN_ECANCELED; then every
 * watch not cancelled gets its final callback with RN_ECANCELED. Those
 * callbacks may call into e (requests made then are called back with
 * RN_ECANCELED before close returns; rn_etcd_watch_cancel is fine); after
 * close returns e must not be used. The struct is freed when the loop runs
 * the close of its uv_async handle. NULL: no-op. Loop thread; safe at
 * broker shutdown (nothing is left running; the loop need only run once
 * more, as for any handle being closed). */
void rn_etcd_close(rn_etcd_t *e);

/* One key-value pair as etcd stores it. key is key_len bytes, followed by a
 * NUL (not counted); value likewise (value_len 0 for a DELETE event).
 * lease 0 = none. */
typedef struct rn_etcd_kv {
  const char *key;
  size_t key_len;
  const uint8_t *value;
  size_t value_len;
  int64_t create_revision, mod_revision, version, lease;
} rn_etcd_kv_t;

typedef struct rn_etcd_result {
  rn_err_t err;
  const char *msg;             /* NULL when err == 0 */
  int64_t revision;            /* the answer's header revision (the store's revision then) */
  const rn_etcd_kv_t *kvs;     /* get: the keys, in key order; txn: the kvs of the first range op of
                                  the taken branch (none when it has no range op) */
  size_t nkvs;
  bool succeeded;              /* txn: the compares held and the then-branch ran */
  int64_t lease_id, ttl;       /* lease grant / keepalive / ttl: the lease and its TTL in seconds
                                  (keepalive, ttl: 0 when the lease is gone, with RN_ENOENT) */
  int64_t deleted;             /* delete (and a txn's first delete op): keys removed */
} rn_etcd_result_t;

/* r is borrowed during the callback only. */
typedef void (*rn_etcd_cb)(void *arg, const rn_etcd_result_t *r);

/* The value of key, or (prefix) every key starting with key ("" with
 * prefix: every key). Missing keys are not an error: nkvs 0. */
void rn_etcd_get(rn_etcd_t *e, const char *key, bool prefix, rn_etcd_cb cb, void *arg);

/* Set key to val[0, len) (val may be NULL when len is 0), attached to lease
 * (0 = none; a lease that does not exist: RN_ENOENT). r->revision is the
 * put's revision. */
void rn_etcd_put(rn_etcd_t *e, const char *key, const uint8_t *val, size_t len, int64_t lease, rn_etcd_cb cb,
                 void *arg);

/* Delete key, or (prefix) every key starting with it. r->deleted counts
 * them (0 is not an error). */
void rn_etcd_delete(rn_etcd_t *e, const char *key, bool prefix, rn_etcd_cb cb, void *arg);

/* ---- transactions --------------------------------------------------------------- */

typedef enum {
  RN_ETCD_CMP_VERSION, /* num: the key's version (0 = the key does not exist) */
  RN_ETCD_CMP_CREATE,  /* num: its create_revision (0 = does not exist) */
  RN_ETCD_CMP_MOD,     /* num: its mod_revision (0 = does not exist) */
  RN_ETCD_CMP_VALUE,   /* value[0, value_len): its value */
  RN_ETCD_CMP_LEASE,   /* num: its lease (0 = none) */
} rn_etcd_cmp_target_t;

typedef enum { RN_ETCD_EQUAL, RN_ETCD_NOT_EQUAL, RN_ETCD_GREATER, RN_ETCD_LESS } rn_etcd_cmp_op_t;

/* "key's target op num/value", e.g. {"k", RN_ETCD_CMP_MOD, RN_ETCD_EQUAL, 42}. */
typedef struct rn_etcd_cmp {
  const char *key;
  rn_etcd_cmp_target_t target;
  rn_etcd_cmp_op_t op;
  int64_t num;
  const uint8_t *value;
  size_t value_len;
} rn_etcd_cmp_t;

typedef enum { RN_ETCD_OP_PUT, RN_ETCD_OP_DELETE, RN_ETCD_OP_RANGE } rn_etcd_op_kind_t;

/* put: key = value[0, value_len) with lease; delete / range: key, or every
 * key under it (prefix). */
typedef struct rn_etcd_op {
  rn_etcd_op_kind_t kind;
  const char *key;
  const uint8_t *value;
  size_t value_len;
  int64_t lease;
  bool prefix;
} rn_etcd_op_t;

/* If every compare holds, run then_ops, else else_ops, atomically
 * (etcd's Txn). r->succeeded says which ran; r->kvs are the kvs of that
 * branch's first RN_ETCD_OP_RANGE, r->deleted its first delete's count.
 * The arrays (either may be NULL when its count is 0) are borrowed for the
 * call. etcd refuses more than 128 ops per branch (--max-txn-ops) and the
 * same key put twice in one branch: RN_EINVAL. */
void rn_etcd_txn(rn_etcd_t *e, const rn_etcd_cmp_t *cmp, size_t ncmp, const rn_etcd_op_t *then_ops, size_t nthen,
                 const rn_etcd_op_t *else_ops, size_t nelse, rn_etcd_cb cb, void *arg);

/* ---- leases ----------------------------------------------------------------------- */

/* A new lease of ttl_s seconds (etcd may raise it to its minimum, about
 * 1.5 election timeouts: r->ttl says what was granted): r->lease_id. */
void rn_etcd_lease_grant(rn_etcd_t *e, int64_t ttl_s, rn_etcd_cb cb, void *arg);

/* One keepalive (the caller schedules them, e.g. every ttl/3): r->ttl is
 * the renewed TTL; 0 = the lease is gone (expired or revoked), with
 * RN_ENOENT. */
void rn_etcd_lease_keepalive(rn_etcd_t *e, int64_t lease, rn_etcd_cb cb, void *arg);

/* Revoke lease: every key attached to it is deleted. RN_ENOENT when it
 * does not exist (any more). */
void rn_etcd_lease_revoke(rn_etcd_t *e, int64_t lease, rn_etcd_cb cb, void *arg);

/* The lease's remaining TTL in seconds (r->ttl; RN_ENOENT and 0 when it is
 * gone), without renewing it. (Not in the first API sketch: tests and the
 * controller's diagnostics use it.) */
void rn_etcd_lease_ttl(rn_etcd_t *e, int64_t lease, rn_etcd_cb cb, void *arg);

/* ---- watches ------------------------------------------------------------------------ */

typedef enum { RN_ETCD_EV_PUT, RN_ETCD_EV_DELETE } rn_etcd_ev_type_t;

/* A change: PUT with the new kv, or DELETE with the key and mod_revision
 * (the revision of the delete; no value, the other fields 0). */
typedef struct rn_etcd_event {
  rn_etcd_ev_type_t type;
  rn_etcd_kv_t kv;
} rn_etcd_event_t;

typedef struct rn_etcd_watch rn_etcd_watch_t;

/* Called on the loop thread with, each time, one of:
 *   err 0, nev > 0   events ev[0, nev) (borrowed during the call) in
 *                    revision order; revision = the mod_revision of the last
 *   err 0, nev 0     progress: every change under the prefix up to and
 *                    including revision has been delivered (etcd's progress
 *                    notifications; and once the watch is established when
 *                    it was asked to start "from now")
 *   err != 0         the end, once: the watch can no longer continue.
 *                    RN_EOFFSET: the revision to resume from was compacted
 *                    away (revision = etcd's compact revision: read the
 *                    state again with rn_etcd_get and watch from its
 *                    revision + 1); RN_ECANCELED: the client was closed;
 *                    RN_ECONTROLPLANE: etcd cancelled the watch or answered
 *                    something that cannot be read (lost events cannot be
 *                    ruled out); RN_ENOMEM. revision = the last revision
 *                    delivered (0 when none) except for RN_EOFFSET.
 *                    After this callback returns the watch is freed: do not
 *                    call rn_etcd_watch_cancel on it then (calling it from
 *                    within this callback is allowed and does nothing). */
typedef void (*rn_etcd_watch_cb)(void *arg, rn_err_t err, const rn_etcd_event_t *ev, size_t nev, int64_t revision);

/* Stream every change under prefix ("" = every key) from start_revision on
 * (<= 0: from the next change after the watch is established). Events are
 * delivered in revision order, each exactly once even across reconnects:
 * when the stream breaks (etcd restarted, connection lost, no "created"
 * answer within timeout_ms) the watch reconnects to the next endpoint,
 * with backoff from 100 ms doubling to 2 s (jittered), forever, resuming
 * from the last delivered revision + 1 (or a later progress revision), and
 * drops anything etcd sends again below that. A silent peer on an open
 * connection (paused process, partition without resets) is noticed by TCP
 * keepalive (idle 10 s, then every 5 s); a stopped process that continues
 * loses nothing. Returns the watch, or NULL only when e, prefix or cb is
 * NULL (then no callback). Loop thread. */
rn_etcd_watch_t *rn_etcd_watch(rn_etcd_t *e, const char *prefix, int64_t start_revision, rn_etcd_watch_cb cb,
                               void *arg);

/* Stop the watch: no callback after it returns (callbacks already queued
 * are dropped); its connection is closed on the curl thread and its memory
 * freed later. NULL: no-op. Also fine from within its own callback. Not
 * after its final (err != 0) callback has returned: it is gone then. Loop
 * thread. */
void rn_etcd_watch_cancel(rn_etcd_watch_t *w);

#ifdef __cplusplus
}
#endif
#endif
