/*
 * cluster.c — a broker as a cluster member (rn_cluster.h, docs/cluster.md).
 *
 * The view: one etcd range of <root>/ at start, then a watch from the next
 * revision, applied in revision order to brokers, the controller, streams
 * and shards. Every decision is taken from the view and written back by
 * compare-and-swap; nothing here trusts its own writes until etcd took
 * them (a change is applied when its transaction succeeded, with the
 * revision etcd gave it).
 *
 * Invariants (the reasons are in docs/cluster.md, "Guarantees"):
 *  1. A LEADER acknowledges a produce only when every member of the shard's
 *     in-sync set, as etcd holds it, has it durably (the committed end is
 *     the minimum over the in-sync set of the positions its followers
 *     fetched from, and of the leader's own durable end), and only while
 *     its lease is valid and the in-sync set has min-insync members.
 *  2. The in-sync set shrinks only by a compare-and-swap on the shard's
 *     value, so a leader elected from it has every acknowledged record.
 *  3. The controller elects only from the in-sync set (never an unclean
 *     election); every election bumps the leader epoch and is a
 *     compare-and-swap that also checks the controller key is still ours.
 *  4. A replica becoming a follower truncates to the end of its last epoch
 *     in the leader's history (KIP-101/279) before it fetches; it fetches
 *     at its log end, so the leader learns exactly what it holds durably.
 *
 * Lifetimes: asynchronous completions (etcd, peers, core) name the shard by
 * (stream, uid, index, generation) through a ticket and look it up again;
 * a shard whose role changed meanwhile (generation bumped) ignores them.
 * The cluster struct itself lives until the last core completion returned
 * after rn_cluster_close (core_ops).
 */
#include "rn_cluster.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "peer.h"
#include "plan.h"
#include "rn_base.h"

#define TICK_MS 100
#define RETRY_MS 200
#define MAX_TXN_SHARDS 120 /* etcd's default --max-txn-ops is 128 */

typedef enum { F_IDLE = 0, F_EPOCH, F_TRUNC, F_FETCH, F_APPEND } fstate_t;

typedef struct cl_stream cl_stream_t;

typedef struct cl_shard {
  cl_stream_t *cs;
  uint32_t index;
  bool have;         /* st is etcd's value */
  rn_cl_shard_t st;
  int64_t mod_rev;
  rn_core_role_t role; /* applied to core */
  uint32_t role_epoch;
  uint32_t gen;        /* bumped on every role change */
  /* LEADER: per follower its last fetch position (everything below is
   * durable there) and when it last reached our log end */
  rn_cl_follower_t fol[RN_CL_MAX_REPLICAS];
  unsigned nfol;
  uint64_t epoch_start; /* our log end when this leadership began */
  bool cas_inflight;
  /* FOLLOWER */
  fstate_t fstate;
  bool busy;           /* a request or core op in flight */
  int64_t retry_ms;
} cl_shard_t;

typedef struct waiter {
  rn_core_create_cb ccb;
  rn_core_delete_cb dcb;
  void *ctx;
  struct waiter *next;
} waiter_t;

struct cl_stream {
  char name[129];
  bool have;           /* meta is etcd's */
  bool seen;           /* in the last full sync */
  rn_cl_stream_t meta;
  cl_shard_t *shards;  /* meta.nshards */
  uint32_t nshards;
  bool local_busy;     /* a local create or delete in flight */
  bool local_ready;    /* core has this incarnation (uid) */
  waiter_t *creates, *deletes;
  cl_stream_t *next;
};

typedef struct cl_broker {
  bool alive;
  rn_cl_broker_t info;
  rn_peer_t *peer;
} cl_broker_t;

struct rn_cluster {
  rn_cluster_opts_t o;
  char root[RN_CL_ROOT_MAX + 1], etcd_eps[512], advertise[128], http[128], rack[64];
  rn_core_t *core;
  uv_loop_t *loop;
  rn_etcd_t *etcd;
  rn_etcd_watch_t *watch;
  uv_timer_t tick;
  bool closed;
  unsigned core_ops;   /* core completions outstanding (the struct waits for them) */
  /* membership */
  int64_t lease;
  bool registered, granting, keepalive_inflight;
  int64_t lease_ok_ms;  /* last keepalive (or grant) etcd answered */
  int64_t next_keepalive_ms;
  /* the view */
  bool synced, syncing;
  int64_t revision;
  cl_broker_t *brokers; /* indexed by id, nbrokers = max id + 1 */
  uint32_t nbrokers;
  uint32_t controller_id;
  int64_t ctl_create_rev; /* ours while we are the controller */
  uint32_t ctl_epoch;     /* the controller epoch we hold (as controller) or last saw */
  uint32_t campaign_epoch; /* the epoch a campaign in flight asks for */
  int64_t ctl_epoch_mod;  /* <root>/controller_epoch's mod revision (0: absent) */
  bool campaigning;
  cl_stream_t *streams;
  rn_cluster_stats_t stats;
};

/* ---- small things ------------------------------------------------------------------------- */

/* Leases, lags and retries on the loop's monotonic clock; wall time
 * (core's clock) only for the values written into etcd. */
static int64_t now_ms(const rn_cluster_t *c) { return (int64_t)uv_now(c->loop); }
static int64_t wall_ms(const rn_cluster_t *c) { return rn_core_now_ms(c->core); }

static void say(const rn_cluster_t *c, rn_level_t lvl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(const rn_cluster_t *c, rn_level_t lvl, const char *fmt, ...) {
  char m[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m, sizeof m, fmt, ap);
  va_end(ap);
  rn_core_log(c->core, lvl, "cluster: %s", m);
}

static bool lease_valid(const rn_cluster_t *c) {
  return c->registered && now_ms(c) - c->lease_ok_ms < (int64_t)c->o.lease_ms;
}

static cl_broker_t *broker(rn_cluster_t *c, uint32_t id) {
  if (id == 0 || id >= c->nbrokers) return NULL;
  return &c->brokers[id];
}

static cl_broker_t *broker_grow(rn_cluster_t *c, uint32_t id) {
  if (id >= c->nbrokers) {
    uint32_t n = id + 1;
    c->brokers = rn_xrealloc(c->brokers, n * sizeof *c->brokers);
    memset(c->brokers + c->nbrokers, 0, (n - c->nbrokers) * sizeof *c->brokers);
    c->nbrokers = n;
  }
  return &c->brokers[id];
}

/* The live brokers' ids (malloc'd, the caller frees; *n of them): taken
 * once per pass over the shards, not per shard. */
static uint32_t *alive_ids(rn_cluster_t *c, size_t *n) {
  uint32_t *out = rn_xmalloc((c->nbrokers ? c->nbrokers : 1) * sizeof *out);
  *n = 0;
  for (uint32_t i = 1; i < c->nbrokers; i++)
    if (c->brokers[i].alive) out[(*n)++] = i;
  return out;
}

static cl_stream_t *stream_find(rn_cluster_t *c, const char *name) {
  for (cl_stream_t *s = c->streams; s; s = s->next)
    if (strcmp(s->name, name) == 0) return s;
  return NULL;
}

static cl_stream_t *stream_get(rn_cluster_t *c, const char *name) {
  cl_stream_t *s = stream_find(c, name);
  if (s) return s;
  s = rn_xcalloc(1, sizeof *s);
  snprintf(s->name, sizeof s->name, "%s", name);
  s->next = c->streams;
  c->streams = s;
  return s;
}

static void stream_size(cl_stream_t *s, uint32_t n) {
  if (s->nshards == n) return;
  free(s->shards);
  s->shards = rn_xcalloc(n ? n : 1, sizeof *s->shards);
  s->nshards = n;
  for (uint32_t i = 0; i < n; i++) {
    s->shards[i].cs = s;
    s->shards[i].index = i;
  }
}

static void stream_unlink(rn_cluster_t *c, cl_stream_t *s) {
  for (cl_stream_t **pp = &c->streams; *pp; pp = &(*pp)->next) {
    if (*pp != s) continue;
    *pp = s->next;
    break;
  }
  free(s->shards);
  free(s);
}

static rn_core_shard_t *core_shard(const rn_cluster_t *c, const cl_shard_t *x) {
  if (!x->cs->local_ready) return NULL;
  rn_core_stream_t *st = rn_core_stream_find(c->core, x->cs->name);
  if (!st || rn_core_stream_uid(st) != x->cs->meta.uid || x->index >= rn_core_stream_nshards(st)) return NULL;
  return rn_core_stream_shard(st, x->index);
}

/* Keys (rn_cl_key_format never fails for a checked root, a valid stream
 * name and a buffer of RN_CL_KEY_MAX). */
static void key_of(const rn_cluster_t *c, rn_cl_key_kind_t kind, const char *stream, uint32_t shard, uint32_t brk,
                   char out[RN_CL_KEY_MAX]) {
  rn_cl_key_t k = {.kind = kind, .broker = brk, .shard = shard};
  if (stream) snprintf(k.stream, sizeof k.stream, "%s", stream);
  if (rn_cl_key_format(c->root, &k, out, RN_CL_KEY_MAX, NULL)) out[0] = '\0';
}

/* A completion's way back to its shard. */
typedef struct ticket {
  rn_cluster_t *c;
  char name[129];
  uint64_t uid;
  uint32_t index;
  uint32_t gen;
  rn_cl_shard_t next; /* a CAS: the value written */
  uint64_t committed; /* a replica append: the leader's committed end it came with */
} ticket_t;

static ticket_t *ticket_new(rn_cluster_t *c, cl_shard_t *x) {
  ticket_t *t = rn_xcalloc(1, sizeof *t);
  t->c = c;
  snprintf(t->name, sizeof t->name, "%s", x->cs->name);
  t->uid = x->cs->meta.uid;
  t->index = x->index;
  t->gen = x->gen;
  return t;
}

/* The shard a ticket names, if it is still the same incarnation and role. */
static cl_shard_t *ticket_shard(ticket_t *t, bool same_gen) {
  if (t->c->closed) return NULL;
  cl_stream_t *s = stream_find(t->c, t->name);
  if (!s || !s->have || s->meta.uid != t->uid || t->index >= s->nshards) return NULL;
  cl_shard_t *x = &s->shards[t->index];
  if (same_gen && x->gen != t->gen) return NULL;
  return x;
}

static void maybe_free(rn_cluster_t *c);
static void rn__cluster_apply(rn_cluster_t *c, cl_shard_t *x);

/* ---- leader: committed end, writability, in-sync set --------------------------------------- */

static rn_cl_follower_t *fol_find(cl_shard_t *x, uint32_t id) {
  for (unsigned i = 0; i < x->nfol; i++)
    if (x->fol[i].id == id) return &x->fol[i];
  return NULL;
}

static void leader_update(rn_cluster_t *c, cl_shard_t *x) {
  rn_core_shard_t *sh = core_shard(c, x);
  if (!sh || x->role != RN_CORE_ROLE_LEADER) return;
  /* HW over the in-sync followers etcd has (an expand counts once its CAS
   * took: until then the follower is not waited for, and not needed). */
  uint64_t ends[RN_CL_MAX_REPLICAS];
  size_t n = 0;
  for (unsigned i = 0; i < x->nfol; i++)
    if (rn_cl_shard_in_isr(&x->st, x->fol[i].id)) ends[n++] = x->fol[i].durable_end;
  char why[160];
  if (!lease_valid(c)) {
    /* Nothing is acknowledged without a lease: a controller may already
     * have elected another leader. */
    snprintf(why, sizeof why, "this leader lost contact with etcd (its lease may have expired)");
    rn_core_shard_set_writable(sh, false, why);
    return;
  }
  if (!rn_cl_may_ack(&x->st)) {
    snprintf(why, sizeof why, "%u of %u replicas in sync, min-insync is %u", x->st.nisr, x->st.nreplicas,
             x->st.min_insync);
    rn_core_shard_set_writable(sh, false, why);
    return;
  }
  rn_core_shard_commit(c->core, sh, rn_cl_high_watermark(rn_core_shard_durable_end(sh), ends, n));
  rn_core_shard_set_writable(sh, true, NULL);
}

static void on_shard_cas(void *arg, const rn_etcd_result_t *r) {
  ticket_t *t = arg;
  rn_cluster_t *c = t->c;
  cl_shard_t *x = ticket_shard(t, false);
  if (x) x->cas_inflight = false;
  if (r->err) {
    if (!c->closed) {
      c->stats.etcd_errors++;
      say(c, RN_LVL_WARN, "stream %s shard %u: writing its state to etcd failed: %s", t->name, t->index,
          r->msg ? r->msg : rn_strerror(r->err));
    }
  } else if (r->succeeded && x && r->revision > x->mod_rev) {
    /* etcd took it: apply it now (the watch brings the same revision). */
    x->st = t->next;
    x->mod_rev = r->revision;
  }
  free(t);
  if (!c->closed && x) rn__cluster_apply(c, x);
}

/* Write next over x's current value (compare-and-swap on its revision; as
 * controller, also on the controller key still being ours). */
static void shard_cas(rn_cluster_t *c, cl_shard_t *x, const rn_cl_shard_t *next_in, bool as_controller) {
  if (x->cas_inflight) return;
  rn_cl_shard_t next = *next_in;
  if (as_controller) next.controller_epoch = c->ctl_epoch; /* a leader's ISR write keeps the controller's */
  char why[RN_CL_WHY_MAX];
  if (rn_cl_shard_transition(x->have ? &x->st : NULL, &next, why, sizeof why)) {
    /* computed from a stale view: the watch brings the current value */
    say(c, RN_LVL_DEBUG, "stream %s shard %u: not writing its state: %s", x->cs->name, x->index, why);
    return;
  }
  char key[RN_CL_KEY_MAX], val[RN_CL_VALUE_MAX], ckey[RN_CL_KEY_MAX];
  size_t len = 0;
  key_of(c, RN_CL_KEY_SHARD, x->cs->name, x->index, 0, key);
  if (!key[0] || rn_cl_shard_encode(&next, val, sizeof val, &len)) return;
  key_of(c, RN_CL_KEY_CONTROLLER, NULL, 0, 0, ckey);
  rn_etcd_cmp_t cmp[2] = {
      {.key = key, .target = RN_ETCD_CMP_MOD, .op = RN_ETCD_EQUAL, .num = x->mod_rev},
      {.key = ckey, .target = RN_ETCD_CMP_CREATE, .op = RN_ETCD_EQUAL, .num = c->ctl_create_rev},
  };
  rn_etcd_op_t put = {.kind = RN_ETCD_OP_PUT, .key = key, .value = (const uint8_t *)val, .value_len = len};
  ticket_t *t = ticket_new(c, x);
  t->next = next;
  x->cas_inflight = true;
  rn_etcd_txn(c->etcd, cmp, as_controller ? 2 : 1, &put, 1, NULL, 0, on_shard_cas, t);
}

/* Leader tick: followers that fell behind leave the in-sync set. */
static void leader_tick(rn_cluster_t *c, cl_shard_t *x) {
  rn_core_shard_t *sh = core_shard(c, x);
  if (sh && !x->cas_inflight && lease_valid(c)) {
    rn_cl_shard_t next;
    int64_t now = now_ms(c);
    if (rn_cl_isr_shrink(&x->st, x->fol, x->nfol, rn_core_shard_log_end(sh), now, (int64_t)c->o.replica_lag_ms,
                         &next) == 0 &&
        !rn_cl_shard_equal(&x->st, &next)) {
      for (unsigned i = 0; i < x->st.nisr; i++)
        if (!rn_cl_shard_in_isr(&next, x->st.isr[i])) {
          rn_cl_follower_t *f = fol_find(x, x->st.isr[i]);
          say(c, RN_LVL_WARN,
              "stream %s shard %u: broker %u has not caught up for %" PRId64 " ms: out of the in-sync set",
              x->cs->name, x->index, x->st.isr[i], f ? now - f->caught_up_ms : 0);
        }
      c->stats.isr_shrinks++;
      shard_cas(c, x, &next, false);
    }
  }
  leader_update(c, x);
}

static rn_err_t hook_replica_fetch(void *arg, rn_core_shard_t *sh, uint32_t replica, uint32_t epoch, uint64_t offset) {
  rn_cluster_t *c = arg;
  cl_shard_t *x = rn_core_shard_slot(sh, RN_SUB_REPL);
  if (!x || x->role != RN_CORE_ROLE_LEADER) return RN_ENOTLEADER;
  if (epoch < x->st.leader_epoch) return RN_ESTALEEPOCH;
  if (epoch > x->st.leader_epoch) return RN_ENOTLEADER; /* we are behind etcd: the watch will tell */
  rn_cl_follower_t *f = fol_find(x, replica);
  if (!f) return RN_EINVAL;
  /* It fetches at its log end, after its last append was durable: it
   * holds [0, offset) durably. Never backwards within a leadership (it
   * truncated only before its first fetch of this epoch). */
  if (offset > f->durable_end) f->durable_end = offset;
  uint64_t end = rn_core_shard_log_end(sh);
  if (offset >= end) f->caught_up_ms = now_ms(c);
  if (!rn_cl_shard_in_isr(&x->st, replica) && !x->cas_inflight && lease_valid(c)) {
    rn_cl_shard_t next;
    if (rn_cl_isr_expand(&x->st, x->fol, x->nfol, rn_core_shard_committed(sh), x->epoch_start, &next) == 0 &&
        !rn_cl_shard_equal(&x->st, &next)) {
      say(c, RN_LVL_INFO, "stream %s shard %u: broker %u caught up: back in the in-sync set", x->cs->name, x->index,
          replica);
      c->stats.isr_expands++;
      shard_cas(c, x, &next, false);
    }
  }
  leader_update(c, x);
  return 0;
}

static void hook_local_durable(void *arg, rn_core_shard_t *sh, uint64_t end) {
  (void)end;
  cl_shard_t *x = rn_core_shard_slot(sh, RN_SUB_REPL);
  if (x) leader_update(arg, x);
}

/* ---- forwarding: a produce for a shard led elsewhere ---------------------------------------- */

static rn_peer_t *leader_peer(rn_cluster_t *c, cl_shard_t *x);

typedef struct fwd {
  rn_cluster_t *c;
  void (*done)(void *ctx, const rn_core_batch_result_t *r);
  void *ctx;
  uint32_t leader;
} fwd_t;

static void on_forwarded(void *arg, rn_err_t err, const Runnel__Response *resp) {
  fwd_t *f = arg;
  rn_core_batch_result_t r = {0};
  char m[300];
  const Runnel__ShardBatchResult *br =
      !err && resp && !resp->error && resp->produce && resp->produce->n_results == 1 ? resp->produce->results[0] : NULL;
  rn_core_dedup_hit_t hits[64];
  if (br && br->error) {
    r.err = rn_err_from_wire(br->error->code);
    snprintf(m, sizeof m, "%s", br->error->message ? br->error->message : rn_strerror(r.err));
    r.msg = m;
  } else if (br) {
    r.base_offset = br->base_offset;
    r.duplicate = br->duplicate;
    r.stored_count = br->stored_count;
    if (br->n_dedup_hits > sizeof hits / sizeof hits[0]) {
      r.err = RN_ENOTSUP; /* not reached: the leader's window answers few hits per batch */
      snprintf(m, sizeof m, "the leader reported %zu dedup hits in one batch; at most %zu are relayed", br->n_dedup_hits,
               sizeof hits / sizeof hits[0]);
      r.msg = m;
    } else {
      for (size_t i = 0; i < br->n_dedup_hits; i++)
        hits[i] = (rn_core_dedup_hit_t){.index = br->dedup_hits[i]->index, .shard = br->dedup_hits[i]->shard,
                                        .offset = br->dedup_hits[i]->offset};
      r.hits = hits;
      r.nhits = (uint32_t)br->n_dedup_hits;
    }
  } else {
    /* The leader's answer did not arrive: the batch may or may not be
     * stored there; a retry (idempotent: no duplicate) settles it. */
    r.err = err == RN_ECANCELED ? RN_ESHUTDOWN : RN_ENOTLEADER;
    snprintf(m, sizeof m, "forwarding to the shard's leader (broker %u) failed: %s; retry", f->leader,
             err ? rn_strerror(err)
                 : resp && resp->error && resp->error->message ? resp->error->message : "a malformed answer");
    r.msg = m;
  }
  if (!f->c->closed) f->c->stats.forwarded++;
  f->done(f->ctx, &r);
  free(f);
}

static bool hook_forward_produce(void *arg, rn_core_shard_t *sh, const uint8_t *batch, size_t len,
                                 void (*done)(void *ctx, const rn_core_batch_result_t *r), void *ctx) {
  rn_cluster_t *c = arg;
  cl_shard_t *x = rn_core_shard_slot(sh, RN_SUB_REPL);
  if (c->closed || !x || !x->have || x->st.leader == 0 || x->st.leader == c->o.broker_id) return false;
  rn_peer_t *p = leader_peer(c, x);
  if (!p) return false;
  Runnel__ShardBatch sb;
  runnel__shard_batch__init(&sb);
  sb.shard = x->index;
  sb.batch.data = (uint8_t *)(uintptr_t)batch; /* packed before rn_peer_call returns */
  sb.batch.len = len;
  Runnel__ShardBatch *sbs[1] = {&sb};
  Runnel__ProduceRequest pr;
  runnel__produce_request__init(&pr);
  pr.stream = x->cs->name;
  pr.n_batches = 1;
  pr.batches = sbs;
  pr.forwarded = true;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_PRODUCE;
  req.produce = &pr;
  fwd_t *f = rn_xmalloc(sizeof *f);
  *f = (fwd_t){.c = c, .done = done, .ctx = ctx, .leader = x->st.leader};
  rn_peer_call(p, &req, on_forwarded, f);
  return true;
}

/* A consumer's fetch of shards one other broker leads. */
typedef struct fwd_fetch {
  rn_cluster_t *c;
  rn_core_fetch_cb cb;
  void *ctx;
  uint32_t leader;
} fwd_fetch_t;

static void on_fetch_forwarded(void *arg, rn_err_t err, const Runnel__Response *resp) {
  fwd_fetch_t *f = arg;
  char m[300];
  rn_core_fetch_result_t r = {0};
  if (err || !resp || resp->error || !resp->fetch) {
    r.err = err == RN_ECANCELED ? RN_ESHUTDOWN : resp && resp->error ? rn_err_from_wire(resp->error->code) : RN_ENOTLEADER;
    snprintf(m, sizeof m, "forwarding the fetch to the shard's leader (broker %u) failed: %s; retry", f->leader,
             err ? rn_strerror(err) : resp && resp->error && resp->error->message ? resp->error->message
                                                                               : "a malformed answer");
    r.msg = m;
    f->cb(f->ctx, &r);
    free(f);
    return;
  }
  const Runnel__FetchResponse *fr = resp->fetch;
  rn_core_fetch_shard_result_t *res = rn_xcalloc(fr->n_results + 1, sizeof *res);
  for (size_t i = 0; i < fr->n_results; i++) {
    const Runnel__ShardFetchResult *s = fr->results[i];
    res[i] = (rn_core_fetch_shard_result_t){.shard = s->shard,
                                            .offset = s->offset,
                                            .batches = s->batches.data,
                                            .batches_len = s->batches.len,
                                            .start_offset = s->start_offset,
                                            .end_offset = s->end_offset,
                                            .next_offset = s->next_offset,
                                            .committed = s->committed,
                                            .leader_epoch = s->leader_epoch};
    if (s->error) {
      res[i].err = rn_err_from_wire(s->error->code);
      res[i].msg = s->error->message;
    }
  }
  r.results = res;
  r.nresults = fr->n_results;
  if (!f->c->closed) f->c->stats.forwarded_fetches++;
  f->cb(f->ctx, &r);
  free(res);
  free(f);
}

static bool hook_forward_fetch(void *arg, rn_core_stream_t *st, const rn_core_fetch_req_t *req, rn_core_fetch_cb cb,
                               void *ctx) {
  rn_cluster_t *c = arg;
  if (c->closed || req->nshards > 64) return false;
  uint32_t leader = 0;
  cl_shard_t *x0 = NULL;
  for (size_t i = 0; i < req->nshards; i++) {
    rn_core_shard_t *sh = rn_core_stream_shard(st, req->shards[i].shard);
    cl_shard_t *x = sh ? rn_core_shard_slot(sh, RN_SUB_REPL) : NULL;
    if (!x || !x->have || x->st.leader == 0 || x->st.leader == c->o.broker_id || (leader && x->st.leader != leader))
      return false;
    leader = x->st.leader;
    x0 = x;
  }
  rn_peer_t *p = leader_peer(c, x0);
  if (!p) return false;
  Runnel__ShardFetch sfs[64], *sfp[64];
  for (size_t i = 0; i < req->nshards; i++) {
    runnel__shard_fetch__init(&sfs[i]);
    sfs[i].shard = req->shards[i].shard;
    sfs[i].kind = (Runnel__PositionKind)req->shards[i].kind;
    sfs[i].value = req->shards[i].value;
    sfs[i].max_bytes = req->shards[i].max_bytes;
    sfp[i] = &sfs[i];
  }
  Runnel__FetchRequest fr;
  runnel__fetch_request__init(&fr);
  fr.stream = (char *)(uintptr_t)rn_core_stream_name(st);
  fr.n_shards = req->nshards;
  fr.shards = sfp;
  fr.max_wait_ms = req->max_wait_ms;
  fr.max_bytes = req->max_bytes;
  fr.stream_uid = req->stream_uid;
  fr.forwarded = true;
  Runnel__Request rq;
  runnel__request__init(&rq);
  rq.op_case = RUNNEL__REQUEST__OP_FETCH;
  rq.fetch = &fr;
  fwd_fetch_t *f = rn_xmalloc(sizeof *f);
  *f = (fwd_fetch_t){.c = c, .cb = cb, .ctx = ctx, .leader = leader};
  rn_peer_call(p, &rq, on_fetch_forwarded, f);
  return true;
}

/* ---- follower: truncate by epoch, then fetch ---------------------------------------------- */

static void follower_step(rn_cluster_t *c, cl_shard_t *x);

static void follower_backoff(rn_cluster_t *c, cl_shard_t *x, fstate_t st) {
  x->busy = false;
  x->fstate = st;
  x->retry_ms = now_ms(c) + RETRY_MS;
}

static rn_peer_t *leader_peer(rn_cluster_t *c, cl_shard_t *x) {
  cl_broker_t *b = broker(c, x->st.leader);
  if (!b || !b->alive || !b->info.advertise[0]) return NULL;
  if (!b->peer) b->peer = rn_peer_new(c->loop, x->st.leader, b->info.advertise, 0);
  return b->peer;
}

static void on_core_truncated(void *ctx, rn_err_t err, const char *msg) {
  ticket_t *t = ctx;
  rn_cluster_t *c = t->c;
  c->core_ops--;
  cl_shard_t *x = ticket_shard(t, true);
  free(t);
  if (c->closed) return maybe_free(c);
  if (!x) return;
  if (err) {
    say(c, RN_LVL_WARN, "%s", msg ? msg : rn_strerror(err));
    return follower_backoff(c, x, F_EPOCH);
  }
  c->stats.truncations++;
  x->busy = false;
  x->fstate = F_FETCH;
  follower_step(c, x);
}

static void on_epoch_end(void *arg, rn_err_t err, const Runnel__Response *resp) {
  ticket_t *t = arg;
  rn_cluster_t *c = t->c;
  cl_shard_t *x = ticket_shard(t, true);
  if (!x) return free(t);
  if (err || resp->error || !resp->epoch_end) {
    free(t);
    return follower_backoff(c, x, F_EPOCH);
  }
  rn_core_shard_t *sh = core_shard(c, x);
  if (!sh) {
    free(t);
    return follower_backoff(c, x, F_EPOCH);
  }
  uint64_t mine = rn_core_shard_log_end(sh);
  uint32_t last = rn_log_last_epoch(rn_core_shard_log(sh));
  uint32_t found = resp->epoch_end->epoch;
  uint64_t end = resp->epoch_end->end_offset;
  uint64_t to = end;
  if (found != RN_LOG_EPOCH_NONE && found != last) {
    /* The leader never had our last epoch: our copy of `found` ends where
     * our next epoch began. */
    uint32_t f2 = 0;
    uint64_t my_found_end = mine;
    if (rn_core_shard_epoch_end(sh, found, &f2, &my_found_end) == 0 && my_found_end < to) to = my_found_end;
  }
  if (to >= mine) {
    free(t);
    x->busy = false;
    x->fstate = F_FETCH;
    return follower_step(c, x);
  }
  say(c, RN_LVL_INFO,
      "stream %s shard %u: our log (end %" PRIu64 ", last epoch %u) diverges from leader %u's at %" PRIu64
      " (its epoch %u ends there): truncating",
      x->cs->name, x->index, mine, last, x->st.leader, to, found);
  x->fstate = F_TRUNC;
  c->core_ops++;
  rn_core_shard_truncate(c->core, sh, to, on_core_truncated, t);
}

static void on_replicated(void *ctx, rn_err_t err, const char *msg) {
  ticket_t *t = ctx;
  rn_cluster_t *c = t->c;
  c->core_ops--;
  cl_shard_t *x = ticket_shard(t, true);
  uint64_t hw = t->committed;
  free(t);
  if (c->closed) return maybe_free(c);
  if (!x) return;
  if (err) {
    say(c, RN_LVL_WARN, "%s", msg ? msg : rn_strerror(err));
    return follower_backoff(c, x, F_EPOCH);
  }
  rn_core_shard_t *sh = core_shard(c, x);
  if (sh) rn_core_shard_commit(c->core, sh, hw);
  x->busy = false;
  x->fstate = F_FETCH;
  follower_step(c, x);
}

static void on_replica_fetch(void *arg, rn_err_t err, const Runnel__Response *resp) {
  ticket_t *t = arg;
  rn_cluster_t *c = t->c;
  cl_shard_t *x = ticket_shard(t, true);
  if (!x) return free(t);
  const Runnel__ShardFetchResult *r =
      !err && !resp->error && resp->fetch && resp->fetch->n_results == 1 ? resp->fetch->results[0] : NULL;
  if (!r) {
    free(t);
    return follower_backoff(c, x, F_FETCH);
  }
  if (r->error) {
    rn_err_t e = rn_err_from_wire(r->error->code);
    free(t);
    /* EOFFSET: we hold what the leader does not (or it lost its start):
     * ask where our epoch ends again. */
    return follower_backoff(c, x, e == RN_EOFFSET ? F_EPOCH : F_FETCH);
  }
  rn_core_shard_t *sh = core_shard(c, x);
  if (!sh) {
    free(t);
    return follower_backoff(c, x, F_FETCH);
  }
  if (r->batches.len == 0) {
    rn_core_shard_commit(c->core, sh, r->committed);
    free(t);
    x->busy = false;
    return follower_step(c, x);
  }
  x->fstate = F_APPEND;
  t->committed = r->committed;
  c->core_ops++;
  rn_core_shard_replicate(c->core, sh, r->batches.data, r->batches.len, on_replicated, t);
}

static void follower_step(rn_cluster_t *c, cl_shard_t *x) {
  if (c->closed || x->busy || x->role != RN_CORE_ROLE_FOLLOWER) return;
  if (now_ms(c) < x->retry_ms) return;
  rn_core_shard_t *sh = core_shard(c, x);
  rn_peer_t *p = leader_peer(c, x);
  if (!sh || !p) return follower_backoff(c, x, x->fstate == F_IDLE ? F_EPOCH : x->fstate);
  if (x->fstate == F_IDLE) x->fstate = F_EPOCH;
  uint64_t end = rn_core_shard_log_end(sh);
  if (x->fstate == F_EPOCH && end == rn_log_start(rn_core_shard_log(sh))) x->fstate = F_FETCH; /* empty */
  Runnel__Request req = RUNNEL__REQUEST__INIT;
  ticket_t *t = ticket_new(c, x);
  x->busy = true;
  if (x->fstate == F_EPOCH) {
    Runnel__EpochEndRequest er;
    runnel__epoch_end_request__init(&er);
    er.stream = x->cs->name;
    er.stream_uid = x->cs->meta.uid;
    er.shard = x->index;
    er.replica_id = c->o.broker_id;
    er.leader_epoch = x->st.leader_epoch;
    er.epoch = rn_log_last_epoch(rn_core_shard_log(sh));
    req.op_case = RUNNEL__REQUEST__OP_EPOCH_END;
    req.epoch_end = &er;
    rn_peer_call(p, &req, on_epoch_end, t);
    return;
  }
  x->fstate = F_FETCH;
  Runnel__ShardFetch sf = RUNNEL__SHARD_FETCH__INIT;
  sf.shard = x->index;
  sf.kind = RUNNEL__POSITION_KIND__POSITION_OFFSET;
  sf.value = (int64_t)end;
  Runnel__ShardFetch *sfs[1] = {&sf};
  Runnel__FetchRequest fr;
  runnel__fetch_request__init(&fr);
  fr.stream = x->cs->name;
  fr.n_shards = 1;
  fr.shards = sfs;
  fr.max_wait_ms = c->o.fetch_wait_ms;
  fr.max_bytes = c->o.max_fetch_bytes;
  fr.replica_id = c->o.broker_id;
  fr.leader_epoch = x->st.leader_epoch;
  fr.stream_uid = x->cs->meta.uid;
  req.op_case = RUNNEL__REQUEST__OP_FETCH;
  req.fetch = &fr;
  rn_peer_call(p, &req, on_replica_fetch, t);
}

/* ---- roles ----------------------------------------------------------------------------------- */

static void rn__cluster_apply(rn_cluster_t *c, cl_shard_t *x) {
  rn_core_shard_t *sh = core_shard(c, x);
  if (!sh || !x->have) return;
  rn_core_shard_set_slot(sh, RN_SUB_REPL, x);
  uint32_t me = c->o.broker_id;
  rn_core_role_t want = RN_CORE_ROLE_NONE;
  if (x->st.leader == me)
    want = RN_CORE_ROLE_LEADER;
  else if (x->st.leader != 0 && rn_cl_shard_is_replica(&x->st, me))
    want = RN_CORE_ROLE_FOLLOWER;
  /* The placement descriptions show. */
  rn_core_placement_t pl = {.leader = x->st.leader, .leader_epoch = x->st.leader_epoch};
  cl_broker_t *lb = broker(c, x->st.leader);
  if (lb) snprintf(pl.leader_address, sizeof pl.leader_address, "%.95s", lb->info.advertise); /* open() keeps ours < 96 */
  for (unsigned i = 0; i < x->st.nreplicas; i++) pl.replicas[pl.nreplicas++] = x->st.replicas[i];
  for (unsigned i = 0; i < x->st.nisr; i++) pl.isr[pl.nisr++] = x->st.isr[i];
  rn_core_shard_set_placement(sh, &pl);
  if (want != x->role || x->st.leader_epoch != x->role_epoch) {
    rn_core_role_t was = x->role;
    x->role = want;
    x->role_epoch = x->st.leader_epoch;
    x->gen++;
    x->busy = false;
    x->fstate = F_IDLE;
    x->retry_ms = 0;
    rn_core_shard_set_role(c->core, sh, want, x->st.leader_epoch, x->st.leader);
    if (want == RN_CORE_ROLE_LEADER) {
      x->nfol = 0;
      x->epoch_start = rn_core_shard_log_end(sh);
      int64_t now = now_ms(c);
      for (unsigned i = 0; i < x->st.nreplicas; i++) {
        if (x->st.replicas[i] == me) continue;
        x->fol[x->nfol++] = (rn_cl_follower_t){.id = x->st.replicas[i], .caught_up_ms = now};
      }
    }
    if (was != want || want != RN_CORE_ROLE_NONE)
      say(c, RN_LVL_INFO, "stream %s shard %u: %s at leader epoch %u (leader %u, %u of %u in sync)", x->cs->name,
          x->index, rn_core_role_name(want), x->st.leader_epoch, x->st.leader, x->st.nisr, x->st.nreplicas);
  }
  if (want == RN_CORE_ROLE_LEADER) leader_update(c, x);
  if (want == RN_CORE_ROLE_FOLLOWER) follower_step(c, x);
}

/* ---- the controller --------------------------------------------------------------------------- */

/* The controller's pass over a shard: a dead leader is replaced from the
 * in-sync set (or the shard goes offline), dead followers leave it. */
static void controller_check(rn_cluster_t *c, cl_shard_t *x, const uint32_t *ids, size_t n) {
  if (!x->have || x->cas_inflight) return;
  rn_cl_shard_t next;
  rn_err_t err = rn_cl_elect(&x->st, ids, n, NULL, 0, &next);
  if (err == RN_EINVAL || rn_cl_shard_equal(&x->st, &next)) return; /* nothing to write (offline stays offline) */
  if (next.leader != x->st.leader) {
    c->stats.elections++;
    if (err)
      say(c, RN_LVL_WARN, "stream %s shard %u: leader %u is gone and no in-sync replica is alive: offline",
          x->cs->name, x->index, x->st.leader);
    else
      say(c, RN_LVL_INFO, "stream %s shard %u: leader %u is gone: broker %u leads at epoch %u", x->cs->name,
          x->index, x->st.leader, next.leader, next.leader_epoch);
  } else {
    c->stats.isr_shrinks++;
    say(c, RN_LVL_INFO, "stream %s shard %u: %u of %u in sync (brokers gone)", x->cs->name, x->index, next.nisr,
        x->st.nisr);
  }
  shard_cas(c, x, &next, true);
}

static bool is_controller(const rn_cluster_t *c) {
  return c->controller_id == c->o.broker_id && c->ctl_create_rev != 0 && lease_valid(c);
}

/* ---- local copies of streams ------------------------------------------------------------------ */

static void answer_creates(rn_cluster_t *c, cl_stream_t *s, const rn_core_create_result_t *r) {
  (void)c;
  waiter_t *w = s->creates;
  s->creates = NULL;
  while (w) {
    waiter_t *nx = w->next;
    w->ccb(w->ctx, r);
    free(w);
    w = nx;
  }
}

static void answer_deletes(cl_stream_t *s, rn_err_t err, const char *msg) {
  waiter_t *w = s->deletes;
  s->deletes = NULL;
  while (w) {
    waiter_t *nx = w->next;
    rn_core_delete_result_t r = {.err = err, .msg = err ? msg : NULL};
    w->dcb(w->ctx, &r);
    free(w);
    w = nx;
  }
}

typedef struct local_job {
  rn_cluster_t *c;
  char name[129];
  uint64_t uid;
} local_job_t;

static void reconcile_stream(rn_cluster_t *c, cl_stream_t *s);

/* A local create or delete finished: free its job and return the stream
 * it was for, no longer busy (NULL: closing, or the stream is gone). */
static cl_stream_t *local_job_done(local_job_t *j) {
  rn_cluster_t *c = j->c;
  c->core_ops--;
  cl_stream_t *s = c->closed ? NULL : stream_find(c, j->name);
  free(j);
  if (c->closed) maybe_free(c);
  if (s) s->local_busy = false;
  return s;
}

/* Core has this incarnation: descriptions get its replication, shards their roles. */
static void local_now_ready(rn_cluster_t *c, cl_stream_t *s, rn_core_stream_t *st) {
  s->local_ready = true;
  if (st) rn_core_stream_set_replication(st, s->meta.replication, s->meta.min_insync);
  for (uint32_t i = 0; i < s->nshards; i++) rn__cluster_apply(c, &s->shards[i]);
}

static void on_local_created(void *ctx, const rn_core_create_result_t *r) {
  local_job_t *j = ctx;
  rn_cluster_t *c = j->c;
  cl_stream_t *s = local_job_done(j);
  if (!s) return;
  if (r->err) {
    say(c, RN_LVL_ERROR, "stream %s: creating this broker's copy failed: %s", s->name, r->msg);
    answer_creates(c, s, r);
    return;
  }
  local_now_ready(c, s, rn_core_stream_find(c->core, s->name));
  /* Answer with a description that has the placement in it. */
  answer_creates(c, s, r);
}

static void on_local_deleted(void *ctx, const rn_core_delete_result_t *r) {
  local_job_t *j = ctx;
  rn_cluster_t *c = j->c;
  cl_stream_t *s = local_job_done(j);
  if (!s) return;
  if (r->err && r->err != RN_ENOSTREAM)
    say(c, RN_LVL_ERROR, "stream %s: deleting this broker's copy failed: %s", s->name, r->msg);
  answer_deletes(s, r->err == RN_ENOSTREAM ? 0 : r->err, r->msg);
  reconcile_stream(c, s);
}

static void local_delete(rn_cluster_t *c, cl_stream_t *s) {
  local_job_t *j = rn_xcalloc(1, sizeof *j);
  j->c = c;
  snprintf(j->name, sizeof j->name, "%s", s->name);
  s->local_busy = true;
  s->local_ready = false;
  c->core_ops++;
  rn_core_delete_req_t dr = {.name = s->name, .local = true};
  rn_core_delete_stream(c->core, &dr, on_local_deleted, j);
}

/* Make core's copy match etcd's: create it, replace an older incarnation,
 * delete it when etcd no longer has it (a deletion the watch reported). */
static void reconcile_stream(rn_cluster_t *c, cl_stream_t *s) {
  if (s->local_busy) return;
  rn_core_stream_t *st = rn_core_stream_lookup(c->core, s->name);
  if (!s->have) {
    if (st) return local_delete(c, s);
    answer_deletes(s, 0, NULL);
    if (!s->creates && !s->deletes) stream_unlink(c, s);
    return;
  }
  if (st && rn_core_stream_uid(st) != s->meta.uid) return local_delete(c, s); /* an older incarnation */
  if (st) {
    if (!s->local_ready && rn_core_stream_state(st) == RN_CORE_STREAM_ACTIVE)
      local_now_ready(c, s, st);
    else if (s->local_ready)
      for (uint32_t i = 0; i < s->nshards; i++) rn__cluster_apply(c, &s->shards[i]);
    return;
  }
  local_job_t *j = rn_xcalloc(1, sizeof *j);
  j->c = c;
  snprintf(j->name, sizeof j->name, "%s", s->name);
  j->uid = s->meta.uid;
  s->local_busy = true;
  c->core_ops++;
  rn_core_create_req_t cr = {
      .name = s->name,
      .shard_count = s->meta.nshards,
      .retention_ms = s->meta.retention_ms,
      .retention_bytes = s->meta.retention_bytes,
      .durability = (rn_durability_t)s->meta.durability,
      .uid = s->meta.uid,
      .replication = s->meta.replication,
      .min_insync = s->meta.min_insync,
      .local = true,
  };
  rn_core_create_stream(c->core, &cr, on_local_created, j);
}

/* ---- the view: applying etcd's keys ---------------------------------------------------------- */

/* The kind of an etcd key of ours (0: some other key). */
static rn_cl_key_kind_t key_kind(const rn_cluster_t *c, const rn_etcd_kv_t *kv, rn_cl_key_t *k) {
  if (rn_cl_key_parse(c->root, kv->key, kv->key_len, k)) return 0;
  return k->kind;
}

static void apply_kv(rn_cluster_t *c, const rn_etcd_kv_t *kv, bool del) {
  rn_cl_key_t k;
  char why[RN_CL_WHY_MAX];
  rn_cl_key_kind_t kind = key_kind(c, kv, &k);
  uint32_t id = kind == RN_CL_KEY_SHARD ? k.shard : k.broker;
  const char *name = k.stream;
  switch (kind) {
  case RN_CL_KEY_BROKER: {
    cl_broker_t *b = broker_grow(c, id);
    if (del) {
      if (b->alive) say(c, RN_LVL_INFO, "broker %u left (its lease ended)", id);
      b->alive = false;
      return;
    }
    rn_cl_broker_t info;
    if (rn_cl_broker_decode(kv->value, kv->value_len, &info, why, sizeof why)) {
      say(c, RN_LVL_WARN, "etcd key %.*s: %s", (int)kv->key_len, kv->key, why);
      return;
    }
    if (!b->alive) say(c, RN_LVL_INFO, "broker %u (%s) is alive", id, info.advertise);
    b->alive = true;
    b->info = info;
    if (b->peer) rn_peer_set_address(b->peer, info.advertise);
    return;
  }
  case RN_CL_KEY_CONTROLLER: {
    rn_cl_controller_t ct;
    if (del || rn_cl_controller_decode(kv->value, kv->value_len, &ct, why, sizeof why)) {
      if (!del) say(c, RN_LVL_WARN, "etcd key %.*s: %s", (int)kv->key_len, kv->key, why);
      c->controller_id = 0;
      c->ctl_create_rev = 0;
      return;
    }
    c->controller_id = ct.broker;
    if (ct.epoch > c->ctl_epoch) c->ctl_epoch = ct.epoch;
    c->ctl_create_rev = ct.broker == c->o.broker_id ? kv->create_revision : 0;
    return;
  }
  case RN_CL_KEY_CONTROLLER_EPOCH: {
    rn_cl_controller_t ct;
    if (del || rn_cl_controller_decode(kv->value, kv->value_len, &ct, why, sizeof why)) {
      c->ctl_epoch_mod = del ? 0 : kv->mod_revision;
      return;
    }
    c->ctl_epoch_mod = kv->mod_revision;
    if (ct.epoch > c->ctl_epoch && c->controller_id != c->o.broker_id) c->ctl_epoch = ct.epoch;
    return;
  }
  case RN_CL_KEY_STREAM: {
    cl_stream_t *s = del ? stream_find(c, name) : stream_get(c, name);
    if (!s) return;
    s->seen = !del;
    if (del) {
      s->have = false;
      return;
    }
    rn_cl_stream_t m;
    if (rn_cl_stream_decode(kv->value, kv->value_len, &m, why, sizeof why)) {
      say(c, RN_LVL_WARN, "etcd key %.*s: %s", (int)kv->key_len, kv->key, why);
      return;
    }
    if (s->have && s->meta.uid != m.uid) s->local_ready = false; /* re-created */
    if (!s->have || s->meta.uid != m.uid) {
      uint32_t keep = s->nshards == m.nshards ? 1 : 0; /* shard keys may have arrived first */
      if (!keep) stream_size(s, m.nshards);
    }
    s->meta = m;
    s->have = true;
    return;
  }
  case RN_CL_KEY_SHARD: {
    if (del) return; /* shard keys go with their stream */
    cl_stream_t *s = stream_get(c, name);
    if (id >= s->nshards) stream_size(s, id + 1 > (s->have ? s->meta.nshards : 0) ? id + 1 : s->meta.nshards);
    cl_shard_t *x = &s->shards[id];
    if (kv->mod_revision <= x->mod_rev) return;
    rn_cl_shard_t st;
    if (rn_cl_shard_decode(kv->value, kv->value_len, &st, why, sizeof why)) {
      say(c, RN_LVL_WARN, "etcd key %.*s: %s", (int)kv->key_len, kv->key, why);
      return;
    }
    x->st = st;
    x->mod_rev = kv->mod_revision;
    x->have = true;
    return;
  }
  default: return;
  }
}

static void reconcile_all(rn_cluster_t *c) {
  for (cl_stream_t *s = c->streams, *nx; s; s = nx) {
    nx = s->next;
    reconcile_stream(c, s);
  }
  if (!is_controller(c)) return;
  size_t n;
  uint32_t *ids = alive_ids(c, &n);
  for (cl_stream_t *s = c->streams; s; s = s->next)
    if (s->have && s->local_ready)
      for (uint32_t i = 0; i < s->nshards; i++) controller_check(c, &s->shards[i], ids, n);
  free(ids);
}

static void campaign(rn_cluster_t *c);
static void full_sync(rn_cluster_t *c);

static void on_watch(void *arg, rn_err_t err, const rn_etcd_event_t *ev, size_t nev, int64_t revision) {
  rn_cluster_t *c = arg;
  if (c->closed) return;
  if (err) {
    c->watch = NULL; /* its final callback */
    c->stats.etcd_errors++;
    say(c, RN_LVL_WARN, "etcd watch ended (%s): reading the whole view again", rn_strerror(err));
    c->synced = false;
    return; /* the tick resyncs */
  }
  bool ctl_gone = false;
  for (size_t i = 0; i < nev; i++) {
    apply_kv(c, &ev[i].kv, ev[i].type == RN_ETCD_EV_DELETE);
    rn_cl_key_t k;
    if (ev[i].type == RN_ETCD_EV_DELETE && key_kind(c, &ev[i].kv, &k) == RN_CL_KEY_CONTROLLER) ctl_gone = true;
  }
  if (revision > c->revision) c->revision = revision;
  c->stats.last_etcd_ok_ms = now_ms(c);
  if (ctl_gone) campaign(c);
  reconcile_all(c);
}

static void on_sync(void *arg, const rn_etcd_result_t *r) {
  rn_cluster_t *c = arg;
  if (c->closed) return;
  c->syncing = false;
  if (r->err) {
    c->stats.etcd_errors++;
    say(c, RN_LVL_WARN, "reading the cluster view from etcd failed: %s", r->msg ? r->msg : rn_strerror(r->err));
    return; /* the tick tries again */
  }
  for (uint32_t i = 1; i < c->nbrokers; i++) c->brokers[i].alive = false;
  for (cl_stream_t *s = c->streams; s; s = s->next) s->seen = false;
  bool ctl = false;
  for (size_t i = 0; i < r->nkvs; i++) {
    apply_kv(c, &r->kvs[i], false);
    rn_cl_key_t k;
    if (key_kind(c, &r->kvs[i], &k) == RN_CL_KEY_CONTROLLER) ctl = true;
  }
  if (!ctl) {
    c->controller_id = 0;
    c->ctl_create_rev = 0;
  }
  /* A stream we knew that etcd no longer has was deleted while the watch was down. */
  for (cl_stream_t *s = c->streams; s; s = s->next)
    if (s->have && !s->seen) s->have = false;
  c->revision = r->revision;
  c->synced = true;
  c->stats.last_etcd_ok_ms = now_ms(c);
  char prefix[160];
  snprintf(prefix, sizeof prefix, "%s/", c->root);
  c->watch = rn_etcd_watch(c->etcd, prefix, r->revision + 1, on_watch, c);
  if (!ctl) campaign(c);
  reconcile_all(c);
}

static void full_sync(rn_cluster_t *c) {
  if (c->syncing || c->closed) return;
  if (c->watch) {
    rn_etcd_watch_cancel(c->watch);
    c->watch = NULL;
  }
  c->syncing = true;
  char prefix[160];
  snprintf(prefix, sizeof prefix, "%s/", c->root);
  rn_etcd_get(c->etcd, prefix, true, on_sync, c);
}

/* ---- membership and the controller election ------------------------------------------------------ */

static void on_campaign(void *arg, const rn_etcd_result_t *r) {
  rn_cluster_t *c = arg;
  if (c->closed) return;
  c->campaigning = false;
  if (r->err) {
    c->stats.etcd_errors++;
    return;
  }
  if (r->succeeded) {
    c->controller_id = c->o.broker_id;
    c->ctl_create_rev = r->revision;
    c->ctl_epoch = c->campaign_epoch;
    c->ctl_epoch_mod = r->revision;
    say(c, RN_LVL_INFO, "this broker is the controller (epoch %u, revision %" PRId64 ")", c->ctl_epoch, r->revision);
    reconcile_all(c);
  }
}

static void campaign(rn_cluster_t *c) {
  if (c->campaigning || !c->registered || c->controller_id || c->closed) return;
  /* One transaction: the leased controller key does not exist, and the
   * last epoch handed out is still the one we saw; then both take +1. A
   * stale view fails the compare and the watch corrects it. */
  char key[RN_CL_KEY_MAX], ekey[RN_CL_KEY_MAX], val[RN_CL_VALUE_MAX];
  size_t n = 0;
  key_of(c, RN_CL_KEY_CONTROLLER, NULL, 0, 0, key);
  key_of(c, RN_CL_KEY_CONTROLLER_EPOCH, NULL, 0, 0, ekey);
  rn_cl_controller_t ct = {.broker = c->o.broker_id, .epoch = c->ctl_epoch + 1};
  if (rn_cl_controller_encode(&ct, val, sizeof val, &n)) return;
  rn_etcd_cmp_t cmp[2] = {
      {.key = key, .target = RN_ETCD_CMP_CREATE, .op = RN_ETCD_EQUAL, .num = 0},
      {.key = ekey, .target = RN_ETCD_CMP_MOD, .op = RN_ETCD_EQUAL, .num = c->ctl_epoch_mod},
  };
  rn_etcd_op_t put[2] = {
      {.kind = RN_ETCD_OP_PUT, .key = key, .value = (const uint8_t *)val, .value_len = n, .lease = c->lease},
      {.kind = RN_ETCD_OP_PUT, .key = ekey, .value = (const uint8_t *)val, .value_len = n},
  };
  c->campaigning = true;
  c->campaign_epoch = ct.epoch;
  rn_etcd_txn(c->etcd, cmp, 2, put, 2, NULL, 0, on_campaign, c);
}

static void on_registered(void *arg, const rn_etcd_result_t *r) {
  rn_cluster_t *c = arg;
  if (c->closed) return;
  c->granting = false;
  if (r->err) {
    c->stats.etcd_errors++;
    say(c, RN_LVL_WARN, "registering broker %u in etcd failed: %s", c->o.broker_id,
        r->msg ? r->msg : rn_strerror(r->err));
    return;
  }
  c->registered = true;
  c->lease_ok_ms = now_ms(c);
  c->stats.last_etcd_ok_ms = c->lease_ok_ms;
  say(c, RN_LVL_INFO, "broker %u registered (lease %" PRId64 ", %u ms)", c->o.broker_id, c->lease, c->o.lease_ms);
  if (!c->synced) full_sync(c);
  else campaign(c);
}

static void on_granted(void *arg, const rn_etcd_result_t *r) {
  rn_cluster_t *c = arg;
  if (c->closed) return;
  if (r->err) {
    c->granting = false;
    c->stats.etcd_errors++;
    say(c, RN_LVL_WARN, "etcd lease grant failed: %s", r->msg ? r->msg : rn_strerror(r->err));
    return;
  }
  c->lease = r->lease_id;
  c->lease_ok_ms = now_ms(c);
  char key[RN_CL_KEY_MAX], val[RN_CL_VALUE_MAX];
  size_t len = 0;
  rn_cl_broker_t b = {.id = c->o.broker_id, .started_ms = wall_ms(c)};
  snprintf(b.advertise, sizeof b.advertise, "%s", c->advertise);
  snprintf(b.http, sizeof b.http, "%s", c->http);
  snprintf(b.rack, sizeof b.rack, "%s", c->rack);
  key_of(c, RN_CL_KEY_BROKER, NULL, 0, c->o.broker_id, key);
  if (rn_cl_broker_encode(&b, val, sizeof val, &len)) {
    c->granting = false;
    return;
  }
  rn_etcd_put(c->etcd, key, (const uint8_t *)val, len, c->lease, on_registered, c);
}

static void register_broker(rn_cluster_t *c) {
  if (c->granting || c->closed) return;
  c->granting = true;
  c->registered = false;
  int64_t ttl = (c->o.lease_ms + 999) / 1000;
  rn_etcd_lease_grant(c->etcd, ttl < 1 ? 1 : ttl, on_granted, c);
}

static void on_keepalive(void *arg, const rn_etcd_result_t *r) {
  rn_cluster_t *c = arg;
  if (c->closed) return;
  c->keepalive_inflight = false;
  if (r->err == RN_ENOENT || (!r->err && r->ttl <= 0)) {
    say(c, RN_LVL_WARN, "broker %u: its etcd lease expired: registering again", c->o.broker_id);
    c->registered = false;
    c->controller_id = c->controller_id == c->o.broker_id ? 0 : c->controller_id;
    c->ctl_create_rev = 0;
    return register_broker(c);
  }
  if (r->err) {
    c->stats.etcd_errors++;
    return;
  }
  c->lease_ok_ms = now_ms(c);
  c->stats.last_etcd_ok_ms = c->lease_ok_ms;
}

static void on_tick(uv_timer_t *t) {
  rn_cluster_t *c = t->data;
  if (c->closed) return;
  int64_t now = now_ms(c);
  if (!c->registered && !c->granting) register_broker(c);
  if (c->registered && !c->keepalive_inflight && now >= c->next_keepalive_ms) {
    c->keepalive_inflight = true;
    c->next_keepalive_ms = now + c->o.lease_ms / 3;
    rn_etcd_lease_keepalive(c->etcd, c->lease, on_keepalive, c);
  }
  if (c->registered && !c->synced) full_sync(c);
  if (c->synced && c->registered && c->controller_id == 0) campaign(c);
  size_t nalive = 0;
  uint32_t *ids = is_controller(c) ? alive_ids(c, &nalive) : NULL;
  for (cl_stream_t *s = c->streams; s; s = s->next) {
    if (!s->have || !s->local_ready) continue;
    for (uint32_t i = 0; i < s->nshards; i++) {
      cl_shard_t *x = &s->shards[i];
      if (x->role == RN_CORE_ROLE_LEADER) leader_tick(c, x);
      if (x->role == RN_CORE_ROLE_FOLLOWER && !x->busy) follower_step(c, x);
      if (ids) controller_check(c, x, ids, nalive);
    }
  }
  free(ids);
}

/* ---- user requests: create and delete ------------------------------------------------------- */

/* A user's create or delete: its etcd transaction, then (once it took)
 * a wait on the stream for this broker's copy to follow. */
typedef struct user_job {
  rn_cluster_t *c;
  char name[129];
  bool del;
  waiter_t w; /* ccb (create) or dcb (delete), ctx */
} user_job_t;

static user_job_t *user_job_new(rn_cluster_t *c, const char *name, bool del, rn_core_create_cb ccb,
                                rn_core_delete_cb dcb, void *ctx) {
  user_job_t *j = rn_xcalloc(1, sizeof *j);
  j->c = c;
  snprintf(j->name, sizeof j->name, "%s", name ? name : "");
  j->del = del;
  j->w = (waiter_t){.ccb = ccb, .dcb = dcb, .ctx = ctx};
  return j;
}

static void on_user_txn(void *arg, const rn_etcd_result_t *r) {
  user_job_t *j = arg;
  rn_cluster_t *c = j->c;
  if (r->err || !r->succeeded || c->closed) {
    /* Compares failed: a create found the stream, a delete did not. */
    rn_err_t e = c->closed ? RN_ESHUTDOWN : r->err ? RN_ECONTROLPLANE : j->del ? RN_ENOSTREAM : RN_EEXIST;
    char m[300];
    if (r->err)
      snprintf(m, sizeof m, "stream %s: writing the %s to etcd failed: %s", j->name, j->del ? "delete" : "create",
               r->msg ? r->msg : rn_strerror(r->err));
    else
      snprintf(m, sizeof m, "stream %s %s", j->name, j->del ? "not found" : "already exists");
    if (j->del) {
      rn_core_delete_result_t res = {.err = e, .msg = m};
      j->w.dcb(j->w.ctx, &res);
    } else {
      rn_core_create_result_t res = {.err = e, .msg = m};
      j->w.ccb(j->w.ctx, &res);
    }
    free(j);
    return;
  }
  /* Answered once this broker's copy exists, or is gone (the watch brings it). */
  cl_stream_t *st = stream_get(c, j->name);
  waiter_t *w = rn_xmalloc(sizeof *w);
  *w = j->w;
  waiter_t **list = j->del ? &st->deletes : &st->creates;
  w->next = *list;
  *list = w;
  free(j);
}

static void hook_create(void *arg, const rn_core_create_req_t *req, rn_core_create_cb cb, void *ctx) {
  rn_cluster_t *c = arg;
  char m[300], why[RN_CL_WHY_MAX];
  rn_core_create_result_t fail = {.msg = m};
  if (!c->synced || !lease_valid(c)) {
    fail.err = RN_ECONTROLPLANE;
    snprintf(m, sizeof m, "stream %s: this broker has no current view of the cluster (etcd unreachable?): retry",
             req->name);
    return cb(ctx, &fail);
  }
  if (req->shard_count > MAX_TXN_SHARDS) {
    fail.err = RN_ENOTSUP;
    snprintf(m, sizeof m, "stream %s: a cluster creates streams of up to %u shards in one etcd transaction for now",
             req->name, MAX_TXN_SHARDS);
    return cb(ctx, &fail);
  }
  size_t nb = 0;
  rn_cl_member_t *ms = rn_xcalloc(c->nbrokers ? c->nbrokers : 1, sizeof *ms);
  for (uint32_t i = 1; i < c->nbrokers; i++)
    if (c->brokers[i].alive)
      ms[nb++] = (rn_cl_member_t){.id = i, .rack = c->brokers[i].info.rack, .draining = c->brokers[i].info.draining};
  /* Default replication: 3, or every broker when there are fewer. */
  uint32_t rf = req->replication ? req->replication : (nb >= 3 ? 3 : nb ? (uint32_t)nb : 1);
  uint32_t mi = req->min_insync ? req->min_insync : rn_cl_default_min_insync(rf);
  if (mi > rf) {
    free(ms);
    fail.err = RN_EINVAL;
    snprintf(m, sizeof m, "stream %s: min-insync %u is more than its replication %u", req->name, mi, rf);
    return cb(ctx, &fail);
  }
  uint32_t *place = rn_xcalloc((size_t)req->shard_count * rf, sizeof *place);
  uint32_t start = 0; /* spreads the first leaders of different streams */
  for (const char *p = req->name; *p; p++) start = start * 31 + (uint8_t)*p;
  rn_err_t err = rn_cl_place(ms, nb, req->shard_count, rf, start, place, why, sizeof why);
  free(ms);
  if (err) {
    free(place);
    fail.err = err;
    snprintf(m, sizeof m, "stream %s: %s", req->name, why);
    return cb(ctx, &fail);
  }
  int64_t ret = req->retention_ms ? req->retention_ms : c->o.default_retention_ms;
  rn_cl_stream_t meta = {.uid = ((uint64_t)wall_ms(c) << 12) | (c->o.broker_id & 0xfff),
                         .nshards = req->shard_count,
                         .replication = rf,
                         .min_insync = mi,
                         .retention_ms = ret > 0 ? ret : -1,
                         .retention_bytes = req->retention_bytes > 0 ? req->retention_bytes : -1,
                         .durability = (uint8_t)req->durability,
                         .created_ms = wall_ms(c)};
  snprintf(meta.name, sizeof meta.name, "%s", req->name);
  size_t nops = 1 + req->shard_count;
  rn_etcd_op_t *ops = rn_xcalloc(nops, sizeof *ops);
  char *keys = rn_xcalloc(nops, RN_CL_KEY_MAX);
  char *vals = rn_xcalloc(nops, RN_CL_VALUE_MAX);
  size_t len = 0;
  key_of(c, RN_CL_KEY_STREAM, req->name, 0, 0, keys);
  err = rn_cl_stream_encode(&meta, vals, RN_CL_VALUE_MAX, &len);
  ops[0] = (rn_etcd_op_t){.kind = RN_ETCD_OP_PUT, .key = keys, .value = (const uint8_t *)vals, .value_len = len};
  for (uint32_t i = 0; i < req->shard_count && !err; i++) {
    rn_cl_shard_t sh;
    char *k = keys + (size_t)(i + 1) * RN_CL_KEY_MAX, *v = vals + (size_t)(i + 1) * RN_CL_VALUE_MAX;
    err = rn_cl_shard_init(&sh, place + (size_t)i * rf, rf, mi, c->ctl_epoch, why, sizeof why);
    if (!err) err = rn_cl_shard_encode(&sh, v, RN_CL_VALUE_MAX, &len);
    key_of(c, RN_CL_KEY_SHARD, req->name, i, 0, k);
    ops[i + 1] = (rn_etcd_op_t){.kind = RN_ETCD_OP_PUT, .key = k, .value = (const uint8_t *)v, .value_len = len};
  }
  free(place);
  if (err || !keys[0]) {
    free(ops);
    free(keys);
    free(vals);
    fail.err = err ? err : RN_EINVAL;
    snprintf(m, sizeof m, "stream %s: its cluster metadata is invalid: %s", req->name,
             err == RN_EINVAL ? why : rn_strerror(fail.err));
    return cb(ctx, &fail);
  }
  rn_etcd_cmp_t cmp = {.key = keys, .target = RN_ETCD_CMP_CREATE, .op = RN_ETCD_EQUAL, .num = 0};
  user_job_t *j = user_job_new(c, req->name, false, cb, NULL, ctx);
  rn_etcd_txn(c->etcd, &cmp, 1, ops, nops, NULL, 0, on_user_txn, j);
  free(ops);
  free(keys);
  free(vals);
}

static void hook_delete(void *arg, const rn_core_delete_req_t *req, rn_core_delete_cb cb, void *ctx) {
  rn_cluster_t *c = arg;
  const char *name = req->name ? req->name : "";
  char key[RN_CL_KEY_MAX], shards[RN_CL_KEY_MAX], inel[RN_CL_KEY_MAX];
  key_of(c, RN_CL_KEY_STREAM, name, 0, 0, key);
  if (!key[0] || rn_cl_key_prefix(c->root, RN_CL_KEY_SHARD, name, 0, shards, sizeof shards, NULL)) {
    rn_core_delete_result_t r = {.err = RN_ENOSTREAM, .msg = "no such stream (the name is not a valid one)"};
    return cb(ctx, &r);
  }
  /* Every shard's ineligible entries: the prefix of shard 0's,
   * "<root>/ineligible/<name>/0000000000/", less its 10-digit index and '/'. */
  size_t il = 0;
  if (rn_cl_key_prefix(c->root, RN_CL_KEY_INELIGIBLE, name, 0, inel, sizeof inel, &il) == 0 && il > 11)
    inel[il - 11] = '\0';
  else
    inel[0] = '\0';
  rn_etcd_cmp_t cmp = {.key = key, .target = RN_ETCD_CMP_CREATE, .op = RN_ETCD_NOT_EQUAL, .num = 0};
  rn_etcd_op_t ops[3] = {{.kind = RN_ETCD_OP_DELETE, .key = key},
                         {.kind = RN_ETCD_OP_DELETE, .key = shards, .prefix = true},
                         {.kind = RN_ETCD_OP_DELETE, .key = inel, .prefix = true}};
  user_job_t *j = user_job_new(c, name, true, NULL, cb, ctx);
  rn_etcd_txn(c->etcd, &cmp, 1, ops, inel[0] ? 3 : 2, NULL, 0, on_user_txn, j);
}

/* ---- open and close ----------------------------------------------------------------------------- */

void rn_cluster_opts_default(rn_cluster_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->root = RN_CL_ROOT_DEFAULT;
  o->lease_ms = 3000;
  o->default_retention_ms = 24 * 3600 * 1000;
  o->replica_lag_ms = 2000;
  o->fetch_wait_ms = 500;
  o->max_fetch_bytes = 4u << 20;
}

rn_err_t rn_cluster_open(const rn_cluster_opts_t *o, rn_cluster_t **out, char *why, size_t whylen) {
  if (!o->core || !o->etcd || !o->etcd[0] || o->broker_id == 0 || !o->advertise || !o->advertise[0]) {
    snprintf(why, whylen, "a cluster member needs etcd endpoints, a broker id >= 1 and an advertised address");
    return RN_EINVAL;
  }
  if (strlen(o->advertise) >= sizeof(((rn_core_placement_t *)0)->leader_address)) {
    snprintf(why, whylen, "advertise %s: longer than %zu bytes", o->advertise,
             sizeof(((rn_core_placement_t *)0)->leader_address) - 1);
    return RN_EINVAL;
  }
  if (!strchr(o->advertise, ':')) {
    snprintf(why, whylen, "advertise %s: expected host:port", o->advertise);
    return RN_EINVAL;
  }
  char root[RN_CL_ROOT_MAX + 2];
  snprintf(root, sizeof root, "%s", o->root && o->root[0] ? o->root : RN_CL_ROOT_DEFAULT);
  size_t rl = strlen(root);
  if (rl > 1 && root[rl - 1] == '/') root[rl - 1] = '\0'; /* "/runnel/" means "/runnel" */
  char w[RN_CL_WHY_MAX];
  if (rn_cl_root_check(root, w, sizeof w)) {
    snprintf(why, whylen, "cluster root %s: %s", root, w);
    return RN_EINVAL;
  }
  rn_cl_broker_t self = {.id = o->broker_id};
  snprintf(self.advertise, sizeof self.advertise, "%s", o->advertise);
  snprintf(self.http, sizeof self.http, "%s", o->http ? o->http : "");
  snprintf(self.rack, sizeof self.rack, "%s", o->rack ? o->rack : "");
  if (strlen(o->advertise) >= sizeof self.advertise || (o->rack && strlen(o->rack) >= sizeof self.rack) ||
      (o->http && strlen(o->http) >= sizeof self.http) || rn_cl_broker_check(&self, w, sizeof w)) {
    snprintf(why, whylen, "this broker's registration would be invalid: %s",
             strlen(o->advertise) >= sizeof self.advertise ? "advertise is too long" : w);
    return RN_EINVAL;
  }
  rn_cluster_t *c = rn_xcalloc(1, sizeof *c);
  c->o = *o;
  snprintf(c->root, sizeof c->root, "%s", root);
  snprintf(c->etcd_eps, sizeof c->etcd_eps, "%s", o->etcd);
  snprintf(c->advertise, sizeof c->advertise, "%s", self.advertise);
  snprintf(c->http, sizeof c->http, "%s", self.http);
  snprintf(c->rack, sizeof c->rack, "%s", self.rack);
  if (!c->o.default_retention_ms) c->o.default_retention_ms = 24 * 3600 * 1000;
  if (!c->o.lease_ms) c->o.lease_ms = 3000;
  if (!c->o.replica_lag_ms) c->o.replica_lag_ms = 2000;
  if (!c->o.fetch_wait_ms) c->o.fetch_wait_ms = 500;
  if (!c->o.max_fetch_bytes) c->o.max_fetch_bytes = 4u << 20;
  c->core = o->core;
  c->loop = rn_core_loop(o->core);
  rn_etcd_opts_t eo = {.loop = c->loop, .endpoints = c->etcd_eps, .timeout_ms = c->o.lease_ms, .logger = o->logger};
  rn_err_t err = rn_etcd_new(&eo, &c->etcd, why, whylen);
  if (err) {
    free(c);
    return err;
  }
  rn_core_repl_hooks_t h = {.replica_fetch = hook_replica_fetch,
                            .local_durable = hook_local_durable,
                            .forward_produce = hook_forward_produce,
                            .forward_fetch = hook_forward_fetch,
                            .create_stream = hook_create,
                            .delete_stream = hook_delete,
                            .arg = c};
  rn_core_set_repl_hooks(c->core, &h);
  uv_timer_init(c->loop, &c->tick);
  c->tick.data = c;
  uv_timer_start(&c->tick, on_tick, 0, TICK_MS);
  *out = c;
  return 0;
}

static void maybe_free(rn_cluster_t *c) {
  if (!c->closed || c->core_ops || c->tick.data) return;
  for (cl_stream_t *s = c->streams, *nx; s; s = nx) {
    nx = s->next;
    rn_core_create_result_t r = {.err = RN_ESHUTDOWN, .msg = "broker is shutting down"};
    answer_creates(c, s, &r);
    answer_deletes(s, RN_ESHUTDOWN, "broker is shutting down");
    free(s->shards);
    free(s);
  }
  free(c->brokers);
  free(c);
}

static void on_tick_closed(uv_handle_t *h) {
  rn_cluster_t *c = h->data;
  c->tick.data = NULL;
  maybe_free(c);
}

void rn_cluster_close(rn_cluster_t *c) {
  if (!c) return;
  c->closed = true;
  rn_core_set_repl_hooks(c->core, NULL);
  if (c->watch) rn_etcd_watch_cancel(c->watch);
  c->watch = NULL;
  rn_etcd_close(c->etcd); /* pending etcd callbacks run now and see closed */
  c->etcd = NULL;
  for (uint32_t i = 1; i < c->nbrokers; i++) {
    rn_peer_close(c->brokers[i].peer); /* pending calls: RN_ECANCELED, their tickets freed */
    c->brokers[i].peer = NULL;
  }
  uv_close((uv_handle_t *)&c->tick, on_tick_closed);
}

void rn_cluster_stats(const rn_cluster_t *c, rn_cluster_stats_t *out) {
  *out = c->stats;
  out->registered = c->registered;
  out->controller = is_controller(c);
  out->controller_id = c->controller_id;
  out->brokers_alive = 0;
  for (uint32_t i = 1; i < c->nbrokers; i++) out->brokers_alive += c->brokers[i].alive;
  out->shards_led = out->shards_followed = out->under_replicated = out->unwritable = 0;
  for (const cl_stream_t *s = c->streams; s; s = s->next) {
    for (uint32_t i = 0; i < s->nshards; i++) {
      const cl_shard_t *x = &s->shards[i];
      if (x->role == RN_CORE_ROLE_FOLLOWER) out->shards_followed++;
      if (x->role != RN_CORE_ROLE_LEADER) continue;
      out->shards_led++;
      if (x->st.nisr < x->st.nreplicas) out->under_replicated++;
      if (!rn_cl_may_ack(&x->st)) out->unwritable++;
    }
  }
}

/* ---- /metrics ------------------------------------------------------------------------------- */

/* snprintf into out[*n, cap) and advance *n by what it needed (the
 * rn_http_metrics_fn contract: the caller retries with the total). */
static void put(char *out, size_t cap, size_t *n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *out, size_t cap, size_t *n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(*n < cap ? out + *n : NULL, *n < cap ? cap - *n : 0, fmt, ap);
  va_end(ap);
  if (k > 0) *n += (size_t)k;
}

size_t rn_cluster_metrics(void *arg, char *out, size_t cap) {
  const rn_cluster_t *c = arg;
  rn_cluster_stats_t st;
  rn_cluster_stats(c, &st);
  size_t n = 0;
  put(out, cap, &n,
      "# HELP runnel_cluster_registered 1 while this broker's registration is in etcd under a live lease.\n"
      "# TYPE runnel_cluster_registered gauge\nrunnel_cluster_registered %d\n"
      "# HELP runnel_cluster_controller 1 while this broker is the cluster's controller.\n"
      "# TYPE runnel_cluster_controller gauge\nrunnel_cluster_controller %d\n"
      "# HELP runnel_cluster_brokers_alive Brokers with a live registration, as this broker sees etcd.\n"
      "# TYPE runnel_cluster_brokers_alive gauge\nrunnel_cluster_brokers_alive %u\n"
      "# HELP runnel_cluster_shards Shards this broker leads or follows.\n"
      "# TYPE runnel_cluster_shards gauge\nrunnel_cluster_shards{role=\"leader\"} %u\n"
      "runnel_cluster_shards{role=\"follower\"} %u\n"
      "# HELP runnel_cluster_under_replicated_shards Shards led here with fewer replicas in sync than they have.\n"
      "# TYPE runnel_cluster_under_replicated_shards gauge\nrunnel_cluster_under_replicated_shards %u\n"
      "# HELP runnel_cluster_unwritable_shards Shards led here that refuse produce (fewer in sync than min-insync, "
      "or no etcd lease).\n"
      "# TYPE runnel_cluster_unwritable_shards gauge\nrunnel_cluster_unwritable_shards %u\n"
      "# HELP runnel_cluster_leader_elections_total Leader changes this broker wrote as the controller.\n"
      "# TYPE runnel_cluster_leader_elections_total counter\nrunnel_cluster_leader_elections_total %llu\n"
      "# HELP runnel_cluster_isr_changes_total In-sync set changes this broker wrote.\n"
      "# TYPE runnel_cluster_isr_changes_total counter\nrunnel_cluster_isr_changes_total{change=\"shrink\"} %llu\n"
      "runnel_cluster_isr_changes_total{change=\"expand\"} %llu\n"
      "# HELP runnel_cluster_truncations_total Follower truncations to the point where its log diverged from the "
      "leader's.\n"
      "# TYPE runnel_cluster_truncations_total counter\nrunnel_cluster_truncations_total %llu\n"
      "# HELP runnel_cluster_etcd_errors_total etcd requests that failed.\n"
      "# TYPE runnel_cluster_etcd_errors_total counter\nrunnel_cluster_etcd_errors_total %llu\n",
      st.registered, st.controller, st.brokers_alive, st.shards_led, st.shards_followed, st.under_replicated,
      st.unwritable, (unsigned long long)st.elections, (unsigned long long)st.isr_shrinks,
      (unsigned long long)st.isr_expands, (unsigned long long)st.truncations, (unsigned long long)st.etcd_errors);
  /* Per shard led here: the in-sync set's size and each follower's lag. */
  put(out, cap, &n,
      "# HELP runnel_cluster_isr_size Replicas in the in-sync set of a shard led here.\n"
      "# TYPE runnel_cluster_isr_size gauge\n");
  for (const cl_stream_t *s = c->streams; s; s = s->next)
    for (uint32_t i = 0; i < s->nshards; i++)
      if (s->shards[i].role == RN_CORE_ROLE_LEADER)
        put(out, cap, &n, "runnel_cluster_isr_size{stream=\"%s\",shard=\"%u\"} %u\n", s->name, i,
            s->shards[i].st.nisr);
  put(out, cap, &n,
      "# HELP runnel_cluster_follower_lag_records Records a follower of a shard led here has not made durable yet.\n"
      "# TYPE runnel_cluster_follower_lag_records gauge\n"
      "# HELP runnel_cluster_follower_lag_seconds How long since a follower of a shard led here last caught up.\n"
      "# TYPE runnel_cluster_follower_lag_seconds gauge\n");
  int64_t now = now_ms(c);
  for (const cl_stream_t *s = c->streams; s; s = s->next)
    for (uint32_t i = 0; i < s->nshards; i++) {
      const cl_shard_t *x = &s->shards[i];
      if (x->role != RN_CORE_ROLE_LEADER) continue;
      rn_core_shard_t *sh = core_shard(c, x);
      uint64_t end = sh ? rn_core_shard_log_end(sh) : 0;
      for (unsigned f = 0; f < x->nfol; f++) {
        const rn_cl_follower_t *fo = &x->fol[f];
        uint64_t lag = end > fo->durable_end ? end - fo->durable_end : 0;
        double secs = lag ? (double)(now - fo->caught_up_ms) / 1000.0 : 0.0;
        put(out, cap, &n,
            "runnel_cluster_follower_lag_records{stream=\"%s\",shard=\"%u\",broker=\"%u\"} %llu\n"
            "runnel_cluster_follower_lag_seconds{stream=\"%s\",shard=\"%u\",broker=\"%u\"} %.3f\n",
            s->name, i, fo->id, (unsigned long long)lag, s->name, i, fo->id, secs);
      }
    }
  return n;
}
