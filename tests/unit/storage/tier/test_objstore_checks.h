/*
 * test_objstore_checks.h — the object-store checks every backend must pass
 * (rn_tier.h's contract), shared by the unit test (localdir, faulty) and the
 * integration test against s3rver and MinIO. cmocka assertions; the helpers
 * wait only through rn_objstore_wait (poll(2) on rn_objstore_fd).
 */
#ifndef RN_TEST_OBJSTORE_CHECKS_H
#define RN_TEST_OBJSTORE_CHECKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_tier.h"

/* One test's store: os is made by the test's fixture; prefix is prepended to
 * every key the checks use (so tests sharing a bucket never collide); dir is
 * a temporary directory for put_file sources. */
typedef struct os_fx {
  rn_objstore_t *os;
  char prefix[96];
  char dir[512];
  void *user;
} os_fx_t;

/* What one callback saw. */
typedef struct os_res {
  int calls;
  rn_obj_result_t r;
  uint8_t *data; /* GET: owned by the test (free) */
  size_t len;
  char **keys;   /* LIST: copies */
  uint64_t *sizes;
  int64_t *mtimes;
  size_t n;
} os_res_t;

void os_res_free(os_res_t *x);
rn_obj_cb os_cb(void);
rn_obj_get_cb os_get_cb(void);
rn_obj_list_cb os_list_cb(void);
/* Poll until x->calls > 0 (fails the test after timeout_s seconds of no
 * progress). */
void os_wait(rn_objstore_t *os, os_res_t *x);
void os_wait_idle(rn_objstore_t *os);

/* Blocking conveniences (submit, wait, check the call count is one). */
rn_err_t os_put(os_fx_t *fx, const char *key, const void *data, size_t len, os_res_t *x);
rn_err_t os_put_file(os_fx_t *fx, const char *key, const char *path, uint64_t len, os_res_t *x);
rn_err_t os_get(os_fx_t *fx, const char *key, uint64_t off, uint64_t len, os_res_t *x);
rn_err_t os_head(os_fx_t *fx, const char *key, os_res_t *x);
rn_err_t os_list(os_fx_t *fx, const char *prefix, os_res_t *x);
rn_err_t os_del(os_fx_t *fx, const char *key, os_res_t *x);
/* prefix + key into a static buffer (one at a time). */
const char *os_key(os_fx_t *fx, const char *key);

/* The checks. Each takes the fixture with a fresh, empty-under-prefix store. */
void os_check_put_get_head(os_fx_t *fx);
void os_check_ranges(os_fx_t *fx);
void os_check_missing(os_fx_t *fx);
void os_check_overwrite_delete(os_fx_t *fx);
void os_check_list(os_fx_t *fx);
void os_check_special_keys(os_fx_t *fx);
void os_check_put_file(os_fx_t *fx, uint64_t bytes);
void os_check_async_contract(os_fx_t *fx);
void os_check_many_in_flight(os_fx_t *fx, int n);
void os_check_stats(os_fx_t *fx);
/* Submits n operations and destroys fx->os without polling: every callback
 * runs inside destroy, once, with RN_ECANCELED. fx->os is NULL after. */
void os_check_destroy_in_flight(os_fx_t *fx, int n);

#endif
