/*
 * rn_cluster.h — a runnel broker as a member of a replicated cluster
 * (docs/cluster.md): membership and the controller through etcd, and per
 * shard the leader/follower data plane on top of core's roles
 * (rn_core.h, "replication").
 *
 * What a member does:
 *  - registers /runnel/brokers/<id> under an etcd lease it keeps alive;
 *  - campaigns for /runnel/controller; the controller elects shard leaders
 *    from the in-sync replicas when a leader's lease goes (never an unclean
 *    election), each change a compare-and-swap that also checks it is still
 *    the controller;
 *  - watches the streams and shards and gives each local shard its role:
 *    LEADER (computes the committed end from its followers' fetch
 *    positions, shrinks and grows the in-sync set by compare-and-swap),
 *    FOLLOWER (truncates to the divergence point the leader's epoch history
 *    gives, then fetches from the leader) or NONE;
 *  - creates and deletes streams for users: a create writes the stream and
 *    its shard placement to etcd in one transaction and is answered once
 *    this broker's copy exists.
 *
 * Threading: everything on core's loop thread; etcd is reached off it
 * (the etcd client's own thread). Ownership: rn_cluster_open borrows core
 * (it must outlive the cluster) and installs core's replication hooks;
 * rn_cluster_close removes them.
 */
#ifndef RN_CLUSTER_H
#define RN_CLUSTER_H
#include <stdbool.h>
#include <stdint.h>

#include "rn_core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rn_cluster rn_cluster_t;

typedef struct rn_cluster_opts {
  rn_core_t *core;            /* opened with opts.cluster; borrowed */
  const char *etcd;           /* "http://127.0.0.1:2379[,...]" */
  const char *root;           /* key prefix; default "/runnel" */
  uint32_t broker_id;         /* >= 1, unique in the cluster */
  const char *advertise;      /* host:port other brokers and clients reach this broker's native port at */
  const char *http;           /* host:port of this broker's HTTP port, for descriptions; NULL/"" = none */
  const char *rack;           /* "" = none */
  int64_t default_retention_ms; /* what a create without retention gets, resolved once for every replica
                                   (core's default_retention_ms; < 0 = forever) */
  uint32_t lease_ms;          /* broker liveness: the etcd lease TTL (rounded up to seconds); default 3000 */
  uint32_t replica_lag_ms;    /* a follower not caught up for this long leaves the in-sync set; default 2000 */
  uint32_t fetch_wait_ms;     /* a follower's replica fetch long poll; default 500 */
  uint32_t max_fetch_bytes;   /* per replica fetch; default 4 MiB */
  rn_logger_t logger;
} rn_cluster_opts_t;

void rn_cluster_opts_default(rn_cluster_opts_t *o);
/* Start membership (asynchronously: the broker serves meanwhile; shards
 * stay NONE until the first view of etcd arrived). RN_EINVAL with why for
 * bad options. */
rn_err_t rn_cluster_open(const rn_cluster_opts_t *o, rn_cluster_t **out, char *why, size_t whylen);
/* Stop: shards keep their roles, the lease is not revoked (a restart within
 * its TTL takes the id back). Loop thread; the loop must run once more to
 * free handles. NULL ok. */
void rn_cluster_close(rn_cluster_t *c);

typedef struct rn_cluster_stats {
  bool registered;            /* our broker key is in etcd under a live lease */
  bool controller;            /* this broker is the controller */
  uint32_t controller_id;     /* 0 = none known */
  uint32_t brokers_alive;
  uint32_t shards_led, shards_followed;
  uint32_t under_replicated;  /* led here with fewer in sync than replicas */
  uint32_t unwritable;        /* led here with fewer in sync than min-insync */
  uint64_t elections;         /* leader changes this broker wrote as controller */
  uint64_t isr_shrinks, isr_expands;
  uint64_t truncations;       /* follower truncations to a divergence point */
  uint64_t etcd_errors;
  uint64_t forwarded;         /* produce batches relayed to their shard's leader */
  uint64_t forwarded_fetches; /* consumer fetches relayed to their shards' leader */
  int64_t last_etcd_ok_ms;
} rn_cluster_stats_t;
void rn_cluster_stats(const rn_cluster_t *c, rn_cluster_stats_t *out);

/* Prometheus lines for /metrics (an rn_http_metrics_fn: arg is the
 * cluster; writes at most cap bytes, returns the length it needed):
 * runnel_cluster_* gauges and counters, and per shard led here the
 * in-sync set's size and every follower's lag in records and seconds. */
size_t rn_cluster_metrics(void *arg, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
