/*
 * peer.h — one outbound native-protocol connection to another broker of the
 * cluster (private to broker/cluster). Followers fetch and ask epoch ends
 * through it.
 *
 * Threading: everything on the loop thread given to rn_peer_new; callbacks
 * run there. Ownership: the peer owns its socket, buffers and the pending
 * calls; a call's request is packed before rn_peer_call returns (borrowed),
 * the response a callback sees is borrowed during the callback only.
 *
 * Connection: made on the first call, and again on the next call after a
 * failure (no retry loop here: the caller decides when to call again). When
 * the connection fails or closes, every pending call completes with
 * RN_ECONNECTION, in the order they were made.
 */
#ifndef RN_CLUSTER_PEER_H
#define RN_CLUSTER_PEER_H
#include <stdint.h>
#include <uv.h>

#include "runnel.pb-c.h"
#include "runnel/error.h"

typedef struct rn_peer rn_peer_t;

/* err 0: resp is the broker's answer (its own error field may be set);
 * else resp is NULL (RN_ECONNECTION, RN_ECANCELED at close, RN_ENOMEM). */
typedef void (*rn_peer_cb)(void *arg, rn_err_t err, const Runnel__Response *resp);

/* address "host:port" (an IP literal or a name, resolved off the loop).
 * max_frame: the largest answer accepted. */
rn_peer_t *rn_peer_new(uv_loop_t *loop, uint32_t broker_id, const char *address, uint32_t max_frame);
/* Point the peer at a new address (the broker re-registered): the current
 * connection closes (its calls fail) when the address differs. */
void rn_peer_set_address(rn_peer_t *p, const char *address);
const char *rn_peer_address(const rn_peer_t *p);
uint32_t rn_peer_broker(const rn_peer_t *p);
/* Send req (its correlation_id is set here). Always calls cb once, maybe
 * before returning (an encoding failure). */
void rn_peer_call(rn_peer_t *p, Runnel__Request *req, rn_peer_cb cb, void *arg);
/* Fail every pending call with RN_ECANCELED and free the peer once its
 * handles closed. NULL ok. */
void rn_peer_close(rn_peer_t *p);

#endif
