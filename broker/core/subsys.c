/*
 * subsys.c — what subsystems (groups now; tiering, sinks and replication
 * later) read of core beyond rn_core.h's first subsystem section: a lookup
 * that also sees streams being created, a shard's log for reads off the
 * loop, a shard's throughput, the listener a subsystem registered, and
 * the growing log read a replay walks a log with (the shards' producer
 * state and the groups' checkpoint log). Declared at the end of rn_core.h's
 * "for subsystems" section.
 *
 * Loop thread only; nothing here allocates or blocks but rn_core_log_read
 * (the caller's buffer, and the disk, as rn_log_read).
 */
#include <stdlib.h>

#include "core_int.h"

rn_core_stream_t *rn_core_stream_lookup(rn_core_t *core, const char *name) {
  return name ? rn__stream_find(core, name) : NULL;
}

rn_log_t *rn_core_shard_log(const rn_core_shard_t *sh) { return sh ? sh->log : NULL; }

rn_err_t rn_core_log_read(rn_log_t *log, uint64_t from, uint8_t **buf, size_t *cap, size_t *len) {
  for (;;) {
    *len = 0;
    rn_err_t err = rn_log_read(log, from, *buf, *cap, len);
    if (err != RN_ETOOLARGE) return err;
    uint8_t *nb = realloc(*buf, *len);
    if (!nb) return RN_ENOMEM;
    *buf = nb;
    *cap = *len;
  }
}

uint64_t rn_core_shard_bytes_in(const rn_core_shard_t *sh) { return sh->metrics.bytes_in; }

void *rn_core_listener_arg(const rn_core_t *core, rn_core_sub_t sub) {
  if ((unsigned)sub >= RN_SUB__COUNT || !core->listening[sub]) return NULL;
  return core->listeners[sub].arg;
}

int64_t rn_core_stream_created_ms(const rn_core_stream_t *st) { return st->created_ms; }
