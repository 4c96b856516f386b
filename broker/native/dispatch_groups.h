/*
 * dispatch_groups.h — the native protocol's consumer-group operations
 * (dispatch_groups.c): rn_native_handle (dispatch.c) hands ops 30-36
 * (GroupHeartbeat ... GroupReset) here; they are translated to rn_groups.h
 * and the answers back. Private to broker/native. Loop thread only.
 */
#ifndef RN_NATIVE_DISPATCH_GROUPS_H
#define RN_NATIVE_DISPATCH_GROUPS_H

#include "dispatch.h"

/* As rn_native_handle, for a group op: cb runs exactly once, req is
 * borrowed for the call. The groups are rn_groups_of(core); when none were
 * opened the answer is RN_EUNKNOWNOP. */
void rn__native_handle_group(rn_core_t *core, const Runnel__Request *req, rn_native_reply_cb cb, void *ctx);

#endif
