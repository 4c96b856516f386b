/*
 * dispatch.h — the native protocol's face of broker/core: translates one
 * decoded Runnel__Request (proto/runnel.proto) into the rn_core.h call it
 * names and the C result back into a Runnel__Response, byte for byte what
 * the broker answered before core had a C API. Consumer-group operations
 * (GroupHeartbeat ... GroupReset) go to the groups' handler unchanged.
 *
 * Used by the native connection (conn.c) only; the Kinesis and REST
 * applications call rn_core.h directly. Loop thread only.
 */
#ifndef RN_NATIVE_DISPATCH_H
#define RN_NATIVE_DISPATCH_H

#include "rn_core.h"
#include "runnel.pb-c.h"

/* The answer to one request. resp and everything it points to are
 * borrowed during the call only: pack it (or copy what you keep) before
 * returning. Its correlation_id is 0: the caller sets its own. A fetch's
 * batch bytes may be kept past the call with rn_core_fetch_hold(core),
 * called from inside this callback. */
typedef void (*rn_native_reply_cb)(void *ctx, const Runnel__Response *resp);

/* Handle one decoded request. req is borrowed for the duration of the call
 * (produce batches may point into the caller's input buffer). cb runs
 * exactly once, possibly before rn_native_handle returns, on the loop
 * thread; ctx must stay valid until then. */
void rn_native_handle(rn_core_t *core, const Runnel__Request *req, rn_native_reply_cb cb, void *ctx);

/* Fill an Error message for err: code, name and retriable from the error
 * table; message points to msg (which must outlive the packing; NULL = the
 * table's generic text). name points to static storage. */
void rn_native_error(Runnel__Error *e, rn_err_t err, const char *msg);

/* Answer with a request-level error only: cb(ctx, resp) with resp.error
 * filled by rn_native_error(err, msg). msg is borrowed for the call. */
void rn_native_reply_error(rn_native_reply_cb cb, void *ctx, rn_err_t err, const char *msg);

#endif
