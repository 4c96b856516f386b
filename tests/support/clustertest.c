/* clustertest.c — see clustertest.h. */
#include "clustertest.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#define CT_DEADLINE_MS 60000

uint64_t rn_ct_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void rn_ct_pause(void) {
  struct timespec ts = {0, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
}

void rn_ct_start_broker(rn_ct_t *ct, uint32_t id) {
  char idbuf[16];
  snprintf(idbuf, sizeof idbuf, "%u", id);
  const char *args[] = {"--etcd", ct->etcd.url, "--broker-id", idbuf, "--set", "cluster_lease=2s",
                        "--set", "replica_lag=2s", NULL};
  if (rn_test_broker_start(&ct->br[id], ct->dir[id], args) != 0)
    fail_msg("broker %u did not start; see %s", id, ct->br[id].log_path);
}

void rn_ct_start(rn_ct_t *ct, unsigned n) {
  memset(ct, 0, sizeof *ct);
  if (n > RN_CT_MAX) fail_msg("at most %d brokers", RN_CT_MAX);
  ct->n = n;
  ct->tmp = rn_test_tmpdir();
  char why[256], dir[700];
  snprintf(dir, sizeof dir, "%s/etcd", ct->tmp);
  if (rn_etcd_proc_start(&ct->etcd, dir, why, sizeof why)) fail_msg("etcd: %s", why);
  for (uint32_t id = 1; id <= n; id++) {
    snprintf(ct->dir[id], sizeof ct->dir[id], "%s/b%u", ct->tmp, id);
    rn_ct_start_broker(ct, id);
  }
}

rn_client_t *rn_ct_client(rn_ct_t *ct, uint32_t id) {
  rn_client_conf_t cc;
  rn_client_conf_init(&cc);
  cc.broker = ct->br[id].addr;
  cc.request_timeout_ms = 10000;
  cc.reconnect_backoff_ms = 10;
  cc.reconnect_backoff_max_ms = 100;
  rn_client_t *cl;
  rn_err_t err = rn_client_new(&cc, &cl);
  if (err) fail_msg("client for broker %u: %s %s", id, rn_err_name(err), rn_last_error_message());
  return cl;
}

void rn_ct_create(rn_ct_t *ct, const char *stream, uint32_t shards, uint32_t replication, uint32_t min_insync) {
  uint64_t deadline = rn_ct_now_ms() + CT_DEADLINE_MS;
  rn_client_t *cl = rn_ct_client(ct, 1);
  for (;;) {
    rn_stream_config_t sc = {.name = stream, .shard_count = shards, .replication = replication,
                             .min_insync = min_insync, .durability = RN_DURABILITY_SYNC};
    rn_err_t err = rn_stream_create(cl, &sc, NULL);
    if (err == 0) break;
    /* retriable while the brokers register: ECONTROLPLANE, ENOTENOUGHREPLICAS */
    if (!rn_err_retriable(err) || rn_ct_now_ms() > deadline)
      fail_msg("create %s: %s %s", stream, rn_err_name(err), rn_last_error_message());
    rn_ct_pause();
  }
  rn_client_destroy(cl);
}

rn_shard_info_t rn_ct_describe(rn_ct_t *ct, uint32_t id, const char *stream, uint32_t shard) {
  rn_shard_info_t si;
  memset(&si, 0, sizeof si);
  rn_client_t *cl = rn_ct_client(ct, id);
  rn_stream_desc_t *d = NULL;
  if (rn_stream_describe(cl, stream, &d) == 0 && shard < d->shard_count) si = d->shards[shard];
  rn_stream_desc_free(d);
  rn_client_destroy(cl);
  return si;
}

uint32_t rn_ct_wait_leader(rn_ct_t *ct, const char *stream, uint32_t shard, uint32_t not, uint32_t isr) {
  uint64_t deadline = rn_ct_now_ms() + CT_DEADLINE_MS;
  for (;;) {
    uint32_t leader = 0;
    bool agree = true;
    for (uint32_t id = 1; id <= ct->n && agree; id++) {
      if (!ct->br[id].pid) continue;
      rn_shard_info_t si = rn_ct_describe(ct, id, stream, shard);
      if (si.leader == 0 || si.leader == not || si.leader > ct->n || si.isr_count < isr ||
          !ct->br[si.leader].pid || (leader && si.leader != leader))
        agree = false;
      leader = si.leader;
    }
    if (agree && leader) return leader;
    if (rn_ct_now_ms() > deadline)
      fail_msg("%s shard %u: no agreed leader (other than %u, %u in sync) within %d ms", stream, shard, not, isr,
               CT_DEADLINE_MS);
    rn_ct_pause();
  }
}

void rn_ct_stop(rn_ct_t *ct) {
  for (uint32_t id = 1; id <= ct->n; id++)
    if (ct->br[id].pid) {
      int rc = rn_test_broker_stop(&ct->br[id]);
      if (rc != 0) fail_msg("broker %u exited with status %d (want 0); see %s", id, rc, ct->br[id].log_path);
    }
  rn_etcd_proc_stop(&ct->etcd, false);
  const char *keep = getenv("RUNNEL_TEST_KEEP");
  if (keep && *keep)
    fprintf(stderr, "kept %s\n", ct->tmp);
  else
    rn_test_rmtree(ct->tmp);
  free(ct->tmp);
  ct->tmp = NULL;
}

void rn_ct_kill_all(rn_ct_t *ct) {
  for (uint32_t id = 1; id <= ct->n; id++) rn_test_broker_kill(&ct->br[id]);
  if (ct->etcd.pid) rn_etcd_proc_stop(&ct->etcd, true);
}
