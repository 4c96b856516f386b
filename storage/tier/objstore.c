/*
 * objstore.c — the object-store interface: dispatch through a backend's
 * rn_objstore_ops_t table, and what every backend shares.
 *
 * A backend (s3.c, localdir.c, faulty.c) embeds struct rn_objstore first in
 * its own struct and fills ops; everything else about it is private. The
 * functions here only check arguments and forward, so the async contract
 * (an error return means no callback; otherwise exactly one) is each
 * backend's to keep, and its tests'.
 */
#include <poll.h>
#include <string.h>

#include "rn_tier.h"

static const char *const op_names[RN_OBJ_NOPS] = {"put", "get", "head", "list", "delete"};

const char *rn_obj_op_name(rn_obj_op_t op) { return op >= 0 && op < RN_OBJ_NOPS ? op_names[op] : "unknown"; }

static bool key_ok(const char *key) { return key && key[0] && key[0] != '/' && strlen(key) <= 1024; }

rn_err_t rn_objstore_put_mem(rn_objstore_t *os, const char *key, const uint8_t *data, size_t len, rn_obj_cb cb,
                             void *arg) {
  if (!os || !key_ok(key) || (!data && len) || !cb) return RN_EINVAL;
  return os->ops->put_mem(os, key, data, len, cb, arg);
}

rn_err_t rn_objstore_put_file(rn_objstore_t *os, const char *key, const char *path, uint64_t len, rn_obj_cb cb,
                              void *arg) {
  if (!os || !key_ok(key) || !path || !cb) return RN_EINVAL;
  return os->ops->put_file(os, key, path, len, cb, arg);
}

rn_err_t rn_objstore_get(rn_objstore_t *os, const char *key, uint64_t off, uint64_t len, rn_obj_get_cb cb, void *arg) {
  if (!os || !key_ok(key) || !cb) return RN_EINVAL;
  return os->ops->get(os, key, off, len, cb, arg);
}

rn_err_t rn_objstore_head(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg) {
  if (!os || !key_ok(key) || !cb) return RN_EINVAL;
  return os->ops->head(os, key, cb, arg);
}

rn_err_t rn_objstore_list(rn_objstore_t *os, const char *prefix, rn_obj_list_cb cb, void *arg) {
  if (!os || !prefix || !cb) return RN_EINVAL;
  return os->ops->list(os, prefix, cb, arg);
}

rn_err_t rn_objstore_delete(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg) {
  if (!os || !key_ok(key) || !cb) return RN_EINVAL;
  return os->ops->del(os, key, cb, arg);
}

int rn_objstore_fd(const rn_objstore_t *os) { return os->ops->fd(os); }
int rn_objstore_poll(rn_objstore_t *os) { return os->ops->poll(os); }
unsigned rn_objstore_inflight(const rn_objstore_t *os) { return os->ops->inflight(os); }

void rn_objstore_destroy(rn_objstore_t *os) {
  if (os) os->ops->destroy(os);
}

int rn_objstore_wait(rn_objstore_t *os, int timeout_ms) {
  rn_assert_may_block("rn_objstore_wait");
  int n = rn_objstore_poll(os);
  if (n || !rn_objstore_inflight(os)) return n;
  struct pollfd p = {.fd = rn_objstore_fd(os), .events = POLLIN};
  (void)poll(&p, 1, timeout_ms);
  return rn_objstore_poll(os);
}

void rn_objstore_stats(const rn_objstore_t *os, rn_objstore_stats_t *out) {
  memset(out, 0, sizeof(*out));
  if (os && os->ops->stats) os->ops->stats(os, out);
}
