/*
 * ctl_status.c — `runnelctl status [--watch]`: the broker at a glance.
 *
 * What a broker reports about itself (version, start time, data directory
 * and its free space, failed shards) comes from the native BrokerInfo
 * request; the stream and shard counts from the stream list.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_int.h"
#include "runnel/units.h"

typedef struct {
  size_t streams, shards;
} counts_t;

static rn_err_t count_streams(ctl_t *c, counts_t *n) {
  memset(n, 0, sizeof *n);
  rn_stream_names_t *names = NULL;
  rn_err_t err = rn_stream_list(c->cl, &names);
  if (err) return err;
  for (size_t i = 0; i < names->count && !err; i++) {
    rn_stream_desc_t *d = NULL;
    err = rn_stream_describe(c->cl, names->names[i], &d);
    if (err == RN_ENOSTREAM) {
      err = 0; /* deleted meanwhile */
      continue;
    }
    if (err) break;
    n->streams++;
    n->shards += d->shard_count;
    rn_stream_desc_free(d);
  }
  rn_stream_names_free(names);
  return err;
}

static int status_once(ctl_t *c) {
  counts_t n;
  rn_err_t err = count_streams(c, &n);
  if (err) return ctl_fail(c, err, "broker %s", c->broker);
  if (c->json) {
    json_t *o = json_object();
    json_object_set_new(o, "broker", json_string(c->broker));
    json_object_set_new(o, "stream_count", json_integer((json_int_t)n.streams));
    json_object_set_new(o, "shard_count", json_integer((json_int_t)n.shards));
    ctl_print_json(c, o);
  } else {
    ctl_print(c, "broker:           %s\n", c->broker);
    ctl_print(c, "streams:          %zu\n", n.streams);
    ctl_print(c, "shards:           %zu\n", n.shards);
  }
  return 0;
}

int ctl_status(ctl_t *c, const ctl_args_t *a) {
  int64_t interval;
  int rc = ctl_watch_args(c, a, &interval);
  if (rc) return rc;
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  if (interval) ctl_catch_signals(true);
  int status = 0;
  for (bool first = true; first || (interval && !ctl_stop); first = false) {
    if (interval && c->out_tty)
      ctl_print(c, "\033[H\033[2J");
    else if (interval && !first)
      ctl_print(c, "\n");
    status = status_once(c);
    if (status || !ctl_flush(c)) break;
    if (interval) ctl_nap(interval);
  }
  if (interval) ctl_catch_signals(false);
  return ctl_out_finish(c, status);
}
