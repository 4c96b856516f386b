/*
 * dispatch_sinks.h — the native protocol's archive-sink operations
 * (dispatch_sinks.c): rn_native_handle (dispatch.c) hands ops 50-54
 * (SinkCreate ... SinkDelete) here; they are translated to rn_sinks.h and
 * the answers back. Private to broker/native. Loop thread only.
 */
#ifndef RN_NATIVE_DISPATCH_SINKS_H
#define RN_NATIVE_DISPATCH_SINKS_H

#include "dispatch.h"

/* As rn_native_handle, for a sink op: cb runs exactly once, req is
 * borrowed for the call. The sinks are rn_sinks_of(core); when none were
 * opened the answer is RN_EUNKNOWNOP. */
void rn__native_handle_sink(rn_core_t *core, const Runnel__Request *req, rn_native_reply_cb cb, void *ctx);

#endif
