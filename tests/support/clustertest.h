/*
 * clustertest.h — a cluster on loopback for integration tests: a real etcd
 * (etcd_proc.h) and NB real runneld started with --etcd (broker_proc.h),
 * every port chosen at run time, everything stopped by PID. Waiting is on
 * described conditions with deadlines that only bound a failure.
 */
#ifndef RN_TEST_CLUSTERTEST_H
#define RN_TEST_CLUSTERTEST_H

#include <stdbool.h>
#include <stdint.h>

#include "broker_proc.h"
#include "etcd_proc.h"
#include "runnel/runnel.h"

#define RN_CT_MAX 5

typedef struct rn_ct {
  char *tmp;
  unsigned n;                      /* brokers 1..n */
  rn_etcd_proc_t etcd;
  rn_test_broker_t br[RN_CT_MAX + 1]; /* by broker id */
  char dir[RN_CT_MAX + 1][600];
} rn_ct_t;

uint64_t rn_ct_now_ms(void);
/* Between two checks of a condition (never a synchronisation by itself). */
void rn_ct_pause(void);
/* etcd and n brokers (--cluster_lease 2s, --replica_lag 2s). fail_msg on failure. */
void rn_ct_start(rn_ct_t *ct, unsigned n);
void rn_ct_start_broker(rn_ct_t *ct, uint32_t id);
/* A client of broker id (short reconnect backoff); the caller destroys it. */
rn_client_t *rn_ct_client(rn_ct_t *ct, uint32_t id);
/* Create a stream through broker 1, retried while the cluster forms. */
void rn_ct_create(rn_ct_t *ct, const char *stream, uint32_t shards, uint32_t replication, uint32_t min_insync);
/* Shard `shard` of stream as broker id describes it (zeroed when it cannot). */
rn_shard_info_t rn_ct_describe(rn_ct_t *ct, uint32_t id, const char *stream, uint32_t shard);
/* Wait until every running broker names the same live leader of the shard,
 * other than `not`, with at least isr in sync; returns it. */
uint32_t rn_ct_wait_leader(rn_ct_t *ct, const char *stream, uint32_t shard, uint32_t not, uint32_t isr);
/* SIGTERM every running broker (each must exit 0) and etcd; remove the
 * directory unless RUNNEL_TEST_KEEP is set. */
void rn_ct_stop(rn_ct_t *ct);
/* After a failure: SIGKILL whatever still runs. Safe to call twice. */
void rn_ct_kill_all(rn_ct_t *ct);

#endif
