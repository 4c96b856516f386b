/*
 * rn_native.h — the native protocol session (length-prefixed protobuf
 * frames, runnel/frame.h) on top of the connection base (rn_net.h):
 * framing, decoding, dispatch to the engine, reply packing with zero-copy
 * references to fetched batches, back-pressure and fetch reservations,
 * idle and drain timeouts, and at shutdown an ESHUTDOWN answer for every
 * request received but not executed (refuse_held).
 *
 * Threading: loop thread only.
 *
 * Lifetime: rn_native_new → rn_net_listen with rn_native_ops() and the
 * rn_native_t as proto_arg → rn_native_set_engine before the loop runs →
 * ... → (the net destroyed) → rn_native_free. The engine is borrowed and
 * must outlive it.
 */
#ifndef RN_NATIVE_H
#define RN_NATIVE_H

#include <stdint.h>

#include "engine.h"
#include "rn_net.h"

typedef struct rn_native rn_native_t;

/* The limits a session keeps (runneld fills them from its config keys of
 * the same names, docs/configuration.md). */
typedef struct rn_native_opts {
  uint32_t max_frame_bytes;                 /* a larger frame is refused and the connection closed */
  uint32_t max_fetch_bytes;                 /* cap of a fetch's max bytes (its reservation) */
  uint32_t max_inflight_per_connection;     /* requests at the engine per connection */
  uint64_t max_output_bytes_per_connection; /* unwritten + reserved reply bytes before back-pressure */
  uint32_t idle_timeout_ms;                 /* 0 = none */
  uint32_t drain_timeout_ms;                /* while draining, if shorter; 0 = none */
} rn_native_opts_t;

/* A new session state for one listener; opts is copied. NULL on out of
 * memory. */
rn_native_t *rn_native_new(const rn_native_opts_t *opts);

/* The engine requests go to (borrowed). Set before any connection opens. */
void rn_native_set_engine(rn_native_t *nat, rn_engine_t *eng);

/* The operations to listen with (static). */
const rn_net_proto_ops_t *rn_native_ops(void);

/* Requests at the engine, all connections. */
uint64_t rn_native_inflight(const rn_native_t *nat);

/* Open connections of lst (a native listener) whose unwritten and
 * reserved reply bytes reach max_output_bytes_per_connection. */
unsigned rn_native_backpressured(const rn_net_listener_t *lst);

/* Free the session state (recycled request contexts). Every connection
 * must be freed already (the net destroyed). NULL ok. */
void rn_native_free(rn_native_t *nat);

#endif
