/*
 * client_int.h — librunnel's private interface between its parts:
 * client.c (the I/O thread, the connection, request pipelining), admin.c,
 * producer.c, consumer.c and routing.c. Never installed.
 *
 * A request travels: caller thread packs a Runnel__Request into a frame
 * (rn__client_submit) -> the submit queue (under cl->mu) -> the I/O thread
 * writes it and keeps it in flight by correlation id -> the Response (or a
 * transport error) is handed to the request's callback on the I/O thread.
 * The blocking API (rn__client_call) is a callback that signals a condvar.
 */
#ifndef RN_CLIENT_INT_H
#define RN_CLIENT_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "runnel.pb-c.h"
#include "runnel/runnel.h"

/* Internal functions are hidden even in a shared build (the library is
 * compiled with -fvisibility=hidden); this marks intent. */
#define RN__HIDDEN __attribute__((visibility("hidden")))

/* ---- time and errors ------------------------------------------------------ */

/* Monotonic milliseconds (CLOCK_MONOTONIC). Any thread. */
RN__HIDDEN int64_t rn__mono_ms(void);
/* Wall-clock milliseconds since the epoch. Any thread. */
RN__HIDDEN int64_t rn__wall_ms(void);

/* Set / clear this thread's rn_last_error_message(). */
RN__HIDDEN void rn__errmsg_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
RN__HIDDEN void rn__errmsg_clear(void);

/* The request-level error of a response (resp->error), 0 when none; copies
 * the broker's message into msg[0, n) when msg != NULL. */
RN__HIDDEN rn_err_t rn__pb_error(const Runnel__Error *e, char *msg, size_t n);

/* ---- requests ----------------------------------------------------------------- */

/* Outcome of one request, on the I/O thread (or, for requests cancelled by
 * rn_client_destroy, on the destroying thread). err != 0: transport failure
 * (RN_ECONNECTION, RN_ETIMEDOUT, RN_ECANCELED), resp is NULL and msg says
 * why. err == 0: resp is the broker's answer, owned by the callback (free
 * with runnel__response__free_unpacked(resp, NULL)); a request-level error
 * is inside it. Called exactly once per submitted request. */
typedef void (*rn__req_cb)(void *arg, rn_err_t err, const char *msg, Runnel__Response *resp);

/* Submit msg (its correlation_id is overwritten). The request fails with
 * RN_ETIMEDOUT after request_timeout_ms + extra_timeout_ms. Any thread,
 * including the I/O thread. Returns 0 (cb will run), RN_ENOMEM,
 * RN_ETOOLARGE or RN_ECANCELED (client shutting down); cb is not called
 * on error. */
RN__HIDDEN rn_err_t rn__client_submit(rn_client_t *cl, Runnel__Request *msg, uint32_t extra_timeout_ms,
                                      rn__req_cb cb, void *arg);

/* Called once the bytes a request referenced (rn__client_submit_ref) are
 * no longer read by anyone: its write completed or failed, or it was failed
 * before being written. Runs on the I/O thread (or on the thread destroying
 * the client), without cl->mu held, before or after the request's rn__req_cb. */
typedef void (*rn__release_cb)(void *rel_arg);

/* Byte fields at least this long are referenced by rn__client_submit_ref,
 * not copied into the frame. */
#define RN__REF_MIN ((size_t)4096)

/* rn__client_submit without copying the large byte fields of msg (a
 * produce request's batches) into the frame: the frame refers to them and
 * one writev sends them from where they are. The caller keeps those bytes
 * valid and unchanged until release(rel_arg) runs, which happens exactly
 * once when this returns 0 (never when it returns an error). Everything
 * else of msg is copied before this returns. */
RN__HIDDEN rn_err_t rn__client_submit_ref(rn_client_t *cl, Runnel__Request *msg, uint32_t extra_timeout_ms,
                                          rn__req_cb cb, void *arg, rn__release_cb release, void *rel_arg);

/* Submit and wait. Returns the transport error, or the request-level error
 * of the response (message in rn_last_error_message()), or 0 with *resp
 * owned by the caller. RN_EBUSY on the I/O thread. Blocking. */
RN__HIDDEN rn_err_t rn__client_call(rn_client_t *cl, Runnel__Request *msg, uint32_t extra_timeout_ms,
                                    Runnel__Response **resp);

/* rn__client_call, then check that the response is the one asked for
 * (want): RN_EBADREQUEST with a message otherwise (the response freed).
 * The blocking admin calls (group_admin.c, sink_admin.c) go through it. */
RN__HIDDEN rn_err_t rn__client_call_op(rn_client_t *cl, Runnel__Request *msg, Runnel__Response__OpCase want,
                                       Runnel__Response **resp);

/* True when the calling thread is cl's I/O thread or the I/O thread of
 * one of its pooled leader connections (rn__client_route): where no
 * librunnel call may block. */
RN__HIDDEN bool rn__client_on_io_thread(const rn_client_t *cl);

RN__HIDDEN const rn_client_conf_t *rn__client_conf(const rn_client_t *cl);

/* ---- brokers: the bootstrap list and the per-leader connections ------------ */

/* One broker address of a bootstrap list. */
typedef struct rn__addr {
  char *host; /* owned; without the [] of an IPv6 literal */
  char *port; /* owned; decimal 1..65535 */
  char *text; /* owned; "host:port" as written (for messages and pool keys) */
} rn__addr_t;

/* Parse a bootstrap list: one or more "host:port" / "[v6]:port" separated
 * by commas, blanks around each ignored. On success *out (n entries) is
 * owned by the caller (rn__addr_list_free). Returns 0, RN_EINVAL (an empty
 * or malformed entry; *out untouched) or RN_ENOMEM. Pure: any thread. */
RN__HIDDEN rn_err_t rn__addr_list_parse(const char *s, rn__addr_t **out, size_t *n);
/* Free what rn__addr_list_parse returned. NULL is a no-op. */
RN__HIDDEN void rn__addr_list_free(rn__addr_t *a, size_t n);

/* The client whose (single) connection goes to broker `address`, the
 * native "host:port" of a shard's leader from a stream description. NULL
 * or "" (a single broker: no leader), an address that is the bootstrap's
 * only one, or any failure to make a connection for it (ENOMEM, malformed
 * address: the bootstrap then answers, e.g. ENOTLEADER, and the caller
 * refreshes): cl itself. Otherwise a pooled client owned by cl, made on
 * first use with cl's configuration (timeouts, backoff) and destroyed by
 * rn_client_destroy(cl); the pointer stays valid until then. Its
 * callbacks run on its own I/O thread, which rn__client_on_io_thread(cl)
 * also counts as cl's. Any thread; never blocks on I/O. */
RN__HIDDEN rn_client_t *rn__client_route(rn_client_t *cl, const char *address);

/* True when target is not cl itself (a leader's pooled connection). */
RN__HIDDEN bool rn__client_is_peer(const rn_client_t *cl, const rn_client_t *target);

/* Errors after which the shard's leader may have moved: the placement in
 * the stream description is refreshed before the retry. */
RN__HIDDEN bool rn__err_moved(rn_err_t err);

/* ---- the broker's limits (learnt by the handshake: BrokerInfo) ------------------ */

typedef struct rn__limits {
  uint32_t max_record_bytes, max_batch_bytes, max_frame_bytes, max_fetch_bytes;
  bool from_broker; /* false: the defaults (no handshake yet, or an older broker) */
} rn__limits_t;

/* The RN_DEFAULT_MAX_* values. */
RN__HIDDEN void rn__limits_default(rn__limits_t *l);

/* The limits as of the latest handshake. Any thread. */
RN__HIDDEN void rn__client_limits(rn_client_t *cl, rn__limits_t *out);
/* Changes whenever the limits change (no lock: a caller that keeps a copy
 * re-reads it with rn__client_limits only when this moved; read this
 * first, then the limits). Any thread. */
RN__HIDDEN unsigned rn__client_limits_gen(rn_client_t *cl);

/* ---- agents: periodic work on the I/O thread (the producer) ---------------- */

typedef struct rn__agent rn__agent_t;
struct rn__agent {
  /* Runs on the I/O thread when woken or when its last returned deadline
   * (monotonic ms) passed; returns the next deadline, INT64_MAX for none. */
  int64_t (*run)(rn__agent_t *a, int64_t now_ms);
  /* Owned by client.c. */
  rn__agent_t *next;
  int64_t deadline;
};

/* Register a (zeroed apart from run) agent. Any thread. */
RN__HIDDEN void rn__client_agent_add(rn_client_t *cl, rn__agent_t *a);
/* Unregister; returns once the I/O thread will never run it again.
 * Blocking; not on the I/O thread. */
RN__HIDDEN void rn__client_agent_remove(rn_client_t *cl, rn__agent_t *a);
/* Ask for a run of every agent soon. Any thread. */
RN__HIDDEN void rn__client_wake(rn_client_t *cl);

/* ---- admin helpers shared with the producer ---------------------------------- */

/* Convert a protobuf description into a caller-owned one. NULL on ENOMEM. */
RN__HIDDEN rn_stream_desc_t *rn__desc_from_pb(const Runnel__StreamDescription *sd);

#endif
