/*
 * engine_compat.c — TRANSITIONAL (issue 11; see core/engine.h): the old engine.s
 * open and close, as core plus the consumer groups. Compiled into
 * rn_broker, not rn_core: core never calls groups; groups hang off core's
 * subsystem listener (tick, stream deleted, close) like any subsystem.
 */
#include "engine.h"
#include "rn_groups.h"

rn_err_t rn_engine_open(const rn_engine_opts_t *opts, rn_engine_t **out, char *why, size_t whylen) {
  *out = NULL;
  rn_core_t *core;
  rn_err_t err = rn_core_open(opts, &core, why, whylen);
  if (err) return err;
  rn_groups_t *gs; /* core's from here on (its listener): closed by rn_core_close */
  rn_groups_opts_t go = {.clock = opts->clock}; /* the engine's one clock, as before */
  err = rn_groups_open(core, &go, &gs, why, whylen);
  if (err) {
    rn_core_close(core);
    return err;
  }
  *out = core;
  return 0;
}

rn_err_t rn_engine_close(rn_engine_t *eng) { return rn_core_close(eng); }

typedef struct group_stats_pass {
  rn_engine_group_stats_fn fn;
  void *arg;
} group_stats_pass_t;

static void group_stats_row(void *arg, const rn_groups_shard_stats_t *s) {
  group_stats_pass_t *p = arg;
  rn_engine_group_stats_t es = {s->stream,      s->group,  s->shard, s->members, s->checkpoint,
                                s->lag_records, s->lag_ms, s->checkpoint_known};
  p->fn(p->arg, &es);
}

void rn_engine_foreach_group_shard(const rn_engine_t *eng, rn_engine_group_stats_fn fn, void *arg) {
  group_stats_pass_t p = {fn, arg};
  rn_groups_foreach_shard(rn_groups_of(eng), group_stats_row, &p);
}
