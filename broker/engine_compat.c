/*
 * engine_compat.c — TRANSITIONAL (issue 11; see core/engine.h): the old engine.s
 * open and close, as core plus the consumer groups. Compiled into
 * rn_broker, not rn_core: core never calls groups; groups hang off core's
 * subsystem listener (tick, stream deleted, close) like any subsystem.
 */
#include "engine.h"

static void groups_tick(void *arg) { rn__groups_tick(arg); }
static void groups_stream_deleting(void *arg, rn_core_stream_t *st) { rn__groups_stream_deleted(arg, st); }
static rn_err_t groups_close(void *arg) { return rn__groups_close(arg); }

rn_err_t rn_engine_open(const rn_engine_opts_t *opts, rn_engine_t **out, char *why, size_t whylen) {
  *out = NULL;
  rn_core_t *core;
  rn_err_t err = rn_core_open(opts, &core, why, whylen);
  if (err) return err;
  err = rn__groups_open(core, why, whylen);
  if (err) {
    rn__groups_close(core);
    rn_core_close(core);
    return err;
  }
  rn_core_listener_t l = {
      .stream_deleting = groups_stream_deleting,
      .tick = groups_tick,
      .close = groups_close,
      .arg = core,
  };
  rn_core_listen(core, RN_SUB_GROUPS, &l);
  *out = core;
  return 0;
}

rn_err_t rn_engine_close(rn_engine_t *eng) { return rn_core_close(eng); }
