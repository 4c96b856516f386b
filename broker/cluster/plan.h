/*
 * plan.h — the pure decisions of runnel's cluster and the codec of its etcd
 * values and keys (private to broker/cluster/; library rn_cluster_plan).
 *
 * etcd holds the cluster's state: broker registrations on leases, one
 * controller, and per stream and shard the metadata below; every change is
 * a compare-and-swap. The etcd client and the controller/replication
 * runtime call what is here to decide what to write. Everything in this
 * header is a pure function over memory the caller owns: no I/O, no clock,
 * no globals, no event loop; safe on any thread. A `why` buffer, when
 * whylen > 0, receives a NUL-terminated one-line reason on failure
 * (RN_CL_WHY_MAX always holds it); why may be NULL when whylen is 0.
 *
 * Broker ids are >= 1; 0 means "none" wherever an id may be absent.
 *
 * ==== The rules, and why (docs/cluster.md, "Decisions: placement,
 *      election, ISR", says the same at more length) =====================
 *
 * Invariant I1: every member of a shard's ISR durably holds every record
 * the shard ever acknowledged. ("Durably" by the stream's durability: sync
 * = fdatasync'd; interval/none = written.) I2: the leader, when there is
 * one, is in the ISR. I3: the ISR is never empty.
 *
 * Acknowledgement. A produce is acknowledged when the high watermark (HW)
 * passes its batch, HW = min of the durable ends of the leader and of every
 * ISR follower, and while rn_cl_may_ack() holds (nisr >= min_insync). The
 * leader computes HW over the maximal ISR: the ISR in etcd plus a follower
 * it is adding whose CAS has not committed yet, minus nobody until a
 * shrink has committed. So at any ack every member of the ISR in etcd (and
 * of any ISR the controller may write from it) has the record: I1.
 *
 * The ISR changes only by compare-and-swap, in three ways, each keeping I1:
 *   - shrink (the leader, rn_cl_isr_shrink): drops followers, never the
 *     leader. A subset of a set that has every acked record still has them.
 *     It may shrink to the leader alone (as Kafka does); produce then fails
 *     fast with RN_ENOTENOUGHREPLICAS while nisr < min_insync, instead of
 *     waiting on a follower that is gone.
 *   - expand (the leader, rn_cl_isr_expand): adds a follower whose durable
 *     end reached the HW and the start of the current leader epoch: it holds
 *     every acked record (all are below HW) and has taken the current
 *     leader's history, so it holds no divergent tail (KIP-101/279).
 *   - election (the controller, rn_cl_elect): keeps only members that are
 *     alive and eligible. Again a subset.
 * An ineligible replica is one that may be missing records it held when
 * they counted towards the HW: it lost its tail in a crash (durability
 * none/interval), or found corruption below what it had reported durable.
 * Such a member already broke I1, so it is dropped, may not lead, and
 * rejoins only through expand after it has caught up (KIP-966; Jepsen's
 * NATS 2.12 findings: a replica that came back with a lost tail was elected
 * and the others truncated to it).
 *
 * No unclean election, ever: a leader is only ever chosen from the ISR.
 * When no ISR member is alive and eligible the shard goes offline (leader
 * 0) with its ISR and leader epoch unchanged, so the members that hold
 * everything stay the only candidates; it comes back when one of them
 * returns. A dead leader that was the only ISR member keeps the shard
 * offline until it returns.
 *
 * No ELR (KIP-966's eligible leader replicas): a follower dropped while
 * nisr < min_insync still holds every acked record (nothing is acked below
 * min_insync), but once dropped it is not a candidate. The price is
 * availability after a second failure, never a lost record; an ELR is a
 * new field (a "v":2 value) if operators need it.
 *
 * Epochs. leader_epoch rises by one with every change of leader (offline ->
 * online included) and never otherwise; the first leader of a shard has
 * epoch 1 (rn_cl_shard_init), so 0 never names a real leadership.
 * controller_epoch is the epoch of the controller that last wrote the value
 * (a leader's ISR write keeps it). A write is valid only over a current
 * value with the same or older epochs (rn_cl_shard_supersedes): a stale
 * controller or a deposed leader changes nothing. The etcd transaction is
 * still what fences (it compares the key's mod revision, and a
 * controller's also the controller key); this check refuses a write
 * computed from a stale view before it is sent, and a value older than the
 * cache when one arrives.
 *
 * ==== etcd keys (root configurable, default RN_CL_ROOT_DEFAULT) =========
 *
 *   <root>/brokers/<id, 10 digits>          rn_cl_broker_t, on the broker's lease
 *   <root>/controller                       rn_cl_controller_t, on the controller's lease
 *   <root>/controller_epoch                 rn_cl_controller_t, no lease: the last epoch
 *                                           handed out, so a new controller takes +1
 *                                           even after the leased key expired
 *   <root>/streams/<name>                   rn_cl_stream_t
 *   <root>/shards/<name>/<index, 10 digits> rn_cl_shard_t
 *   <root>/ineligible/<name>/<index, 10 digits>/<broker, 10 digits>
 *                                           rn_cl_ineligible_t: that broker's replica
 *                                           may not lead nor rejoin the ISR until it
 *                                           has caught up and deleted the key
 *
 * Numbers are zero-padded so etcd's byte order is numeric order. Stream
 * names are 1-128 of A-Z a-z 0-9 _ . - (proto's name rule), so a name never
 * contains '/' and "<root>/shards/<name>/" is the prefix of exactly that
 * stream's shards. Every value is compact JSON with "v":1.
 */
#ifndef RN_CLUSTER_PLAN_H
#define RN_CLUSTER_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runnel/error.h"
#include "runnel/keys.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RN_CL_MAX_REPLICAS 5   /* the largest replication factor */
#define RN_CL_WHY_MAX 256      /* a reason line, NUL included */
#define RN_CL_VALUE_MAX 4096   /* the longest encoded value (NUL included); decoders refuse longer input */
#define RN_CL_ROOT_DEFAULT "/runnel"
#define RN_CL_ROOT_MAX 128     /* the longest root, NUL excluded */
#define RN_CL_KEY_MAX 320      /* the longest key (any root, any stream), NUL included */

/* ==== placement ========================================================= */

/* A live broker as placement sees it. rack: NULL or "" = none; the caller
 * owns the string, read only during the call. */
typedef struct rn_cl_member {
  uint32_t id;
  const char *rack;
  bool draining; /* gets no new replicas */
} rn_cl_member_t;

/* Place nshards new shards of replication N = `replication` on `members`
 * (any order: the result depends on the set only). Fills out[i*N .. i*N+N)
 * with shard i's N distinct broker ids, the first its preferred leader.
 * `start` rotates the placement: the caller passes a different value per
 * stream (e.g. the number of streams created so far), so streams of few
 * shards do not all lead on one broker.
 *
 * Rules, in priority order:
 *   1. only members that are not draining are eligible; N <= their count;
 *   2. each shard spans as many distinct racks as possible, min(N, racks)
 *      (brokers without a rack count as one shared "unknown" rack: the
 *      worst case; without any racks rule 2 is void);
 *   3. preferred leaders spread evenly, then replicas: a shard's leader is
 *      the eligible broker that leads fewest so far (ties: fewest
 *      replicas), its followers those holding fewest replicas (ties: the
 *      broker that leads more, so those still owed a leadership keep room);
 *      last ties by ring order from the shard's rotation point in a
 *      rack-alternating order, as Kafka's rack-aware assignment. Without
 *      racks, or with racks of equal size, leader counts and replica counts
 *      each differ by at most 1 between brokers (tests check every prefix
 *      up to 1024 shards). With racks of unequal size rule 2 wins and the
 *      brokers of small racks carry more replicas.
 * Deterministic; the first k shards of a placement of K > k are the
 * placement of k.
 *
 * Returns 0; RN_EINVAL (replication outside 1..5, nshards 0, an id 0 or
 * listed twice, out NULL); RN_ENOTENOUGHREPLICAS "replication 3 needs 3
 * brokers, 2 are alive" (and how many drain); RN_ENOMEM. */
rn_err_t rn_cl_place(const rn_cl_member_t *members, size_t nmembers, uint32_t nshards, uint32_t replication,
                     uint32_t start, uint32_t *out, char *why, size_t whylen);

/* Decommission: pick the broker that replaces `away` among a shard's
 * replicas[0, nreplicas). Candidates are members not draining and not
 * already replicas; among them first those whose rack no staying replica
 * has (a staying replica that is not in members has no known rack), then
 * the least loaded (loads[i] is members[i]'s replica count; loads NULL =
 * all 0), then the lowest id. next[] receives the replicas with `away`
 * replaced in place, so the others keep their order (and the preferred
 * leader stays unless it is the one leaving), unused slots 0;
 * *replacement the new id.
 *
 * Returns 0; RN_EINVAL (replicas malformed, away not among them, a member
 * id 0 or listed twice); RN_ENOTENOUGHREPLICAS when no member can take the
 * replica. */
rn_err_t rn_cl_reassign(const rn_cl_member_t *members, size_t nmembers, const uint32_t *loads,
                        const uint32_t *replicas, size_t nreplicas, uint32_t away,
                        uint32_t next[RN_CL_MAX_REPLICAS], uint32_t *replacement, char *why, size_t whylen);

/* ==== shard state ======================================================= */

/* One shard's replication state: the value of <root>/shards/<name>/<index>. */
typedef struct rn_cl_shard {
  uint32_t replicas[RN_CL_MAX_REPLICAS]; /* distinct ids; [0] is the preferred leader */
  uint8_t nreplicas;                     /* 1..5 */
  uint32_t leader;                       /* 0 = none: the shard is offline */
  uint32_t leader_epoch;
  uint32_t isr[RN_CL_MAX_REPLICAS];      /* a non-empty subset of replicas, containing the leader */
  uint8_t nisr;                          /* 1..nreplicas */
  uint32_t min_insync;                   /* 1..nreplicas */
  uint32_t controller_epoch;             /* who wrote it */
} rn_cl_shard_t;

/* A new shard's first state: leader replicas[0] at leader epoch 1, every
 * replica in the ISR (their logs are all empty). Returns 0 or RN_EINVAL
 * (the state would not pass rn_cl_shard_check). */
rn_err_t rn_cl_shard_init(rn_cl_shard_t *sh, const uint32_t *replicas, size_t nreplicas, uint32_t min_insync,
                          uint32_t controller_epoch, char *why, size_t whylen);

/* Check the invariants listed with the fields. Returns 0 or RN_EINVAL. */
rn_err_t rn_cl_shard_check(const rn_cl_shard_t *sh, char *why, size_t whylen);

/* Whether two states say the same (the ISR compared as a set, unused slots
 * ignored): after a decision, equal means there is nothing to write. */
bool rn_cl_shard_equal(const rn_cl_shard_t *a, const rn_cl_shard_t *b);

bool rn_cl_shard_is_replica(const rn_cl_shard_t *sh, uint32_t id);
bool rn_cl_shard_in_isr(const rn_cl_shard_t *sh, uint32_t id);

/* ==== election and ISR ================================================== */

/* The controller's decision for a shard whenever brokers come or go.
 * alive[0, nalive): brokers with a live registration; ineligible[0, ninel):
 * brokers whose replica of this shard may not lead (an rn_cl_ineligible_t
 * exists for it). Either list may be NULL when its count is 0.
 *
 *   - The current leader stays when it is alive and eligible (no move, no
 *     epoch change: moving to the preferred replica is
 *     rn_cl_rebalance_plan's); the ISR loses its dead and ineligible
 *     followers.
 *   - Otherwise the new leader is the first replica in replica order that
 *     is in the ISR, alive and eligible; leader_epoch + 1; the ISR becomes
 *     its members that are alive and eligible (in replica order).
 *   - When there is none: *next = *cur with leader 0 (offline), leader
 *     epoch and ISR unchanged, and RN_ENOTENOUGHREPLICAS.
 * next->controller_epoch is cur's: the controller stamps its own before
 * the CAS. Write next when !rn_cl_shard_equal(cur, next). next may be cur.
 * Returns 0; RN_ENOTENOUGHREPLICAS (offline); RN_EINVAL (cur malformed, or
 * its leader epoch cannot grow; *next untouched). */
rn_err_t rn_cl_elect(const rn_cl_shard_t *cur, const uint32_t *alive, size_t nalive, const uint32_t *ineligible,
                     size_t ninel, rn_cl_shard_t *next);

/* What the leader knows of one follower, from its fetches in the current
 * leader epoch (accepted only after the follower's epoch-history check, so
 * its log is a prefix of the leader's). */
typedef struct rn_cl_follower {
  uint32_t id;
  uint64_t durable_end;  /* the follower holds [0, durable_end) durably (by the stream's durability) */
  int64_t caught_up_ms;  /* last time durable_end reached the leader's log end of that moment (a
                            follower new to this leader: the time the leadership began) */
  bool ineligible;       /* it reported a lost tail or corruption and has not caught up since */
} rn_cl_follower_t;

/* The leader's shrink. A follower in the ISR is dropped when it is
 * ineligible, or when durable_end < leader_end and now_ms - caught_up_ms >
 * lag_max_ms: it has not caught up within lag_max_ms (by its durable end,
 * as that is what the HW waits for). The leader is never dropped, so the
 * ISR may shrink to the leader alone. now_ms and caught_up_ms are on one
 * monotonic clock. followers[] must describe every ISR follower (an entry
 * for the leader is ignored). The ISR comes back in replica order.
 * Returns 0 (next may equal cur: nothing to write; next may be cur);
 * RN_ENOTLEADER (cur has no leader); RN_EINVAL (cur malformed, lag_max_ms
 * <= 0, an ISR follower without an entry, an entry that is no replica or
 * is listed twice). */
rn_err_t rn_cl_isr_shrink(const rn_cl_shard_t *cur, const rn_cl_follower_t *followers, size_t nfollowers,
                          uint64_t leader_end, int64_t now_ms, int64_t lag_max_ms, rn_cl_shard_t *next);

/* The leader's expand. A replica outside the ISR joins when it is not
 * ineligible and its durable_end >= hw and >= epoch_start (the offset at
 * which the current leader epoch began). Replicas without an entry stay
 * out. The ISR comes back in replica order.
 * Returns 0 (next may equal cur); RN_ENOTLEADER; RN_EINVAL as for shrink. */
rn_err_t rn_cl_isr_expand(const rn_cl_shard_t *cur, const rn_cl_follower_t *followers, size_t nfollowers,
                          uint64_t hw, uint64_t epoch_start, rn_cl_shard_t *next);

/* The high watermark: min of the leader's durable end and the durable ends
 * ends[0, n) of the ISR followers (the maximal ISR: the followers the
 * leader is adding count already; ends may be NULL when n is 0). The
 * caller keeps HW monotonic (max with the previous one): a follower whose
 * end went backwards is ineligible and about to be dropped. */
uint64_t rn_cl_high_watermark(uint64_t leader_end, const uint64_t *ends, size_t n);

/* Whether the shard may acknowledge produce: it has a leader and nisr >=
 * min_insync. Checked when a batch is appended and again when HW passes
 * it; when it fails the produce gets RN_ENOTENOUGHREPLICAS (retriable). */
bool rn_cl_may_ack(const rn_cl_shard_t *sh);

/* The min in-sync of a stream created without one: a majority of its
 * replicas from replication 3 up (3 -> 2, 4 -> 3, 5 -> 3), 1 below (with
 * 2 replicas a majority is both, and one broker down would stop writes).
 * A majority means an acknowledged record survives any minority's loss. */
uint32_t rn_cl_default_min_insync(uint32_t replication);

/* Whether `next` may replace `cur` (cur NULL: the key does not exist yet):
 * both are well formed, next's controller epoch and leader epoch are each
 * >= cur's, and a new leader (other than 0) comes with a higher leader
 * epoch. rn_cl_shard_transition says why not: RN_ESTALEEPOCH when the
 * writer's view is stale (an older controller or leader epoch, or another
 * leader at the same leader epoch: e.g. a deposed leader writing its ISR
 * over the offline state), RN_EINVAL for a malformed state. */
bool rn_cl_shard_supersedes(const rn_cl_shard_t *cur, const rn_cl_shard_t *next);
rn_err_t rn_cl_shard_transition(const rn_cl_shard_t *cur, const rn_cl_shard_t *next, char *why, size_t whylen);

/* Preferred-leader rebalance over shards[0, n): a shard moves when it has
 * a leader that is alive but not its preferred replica (replicas[0]), and
 * the preferred one is in the ISR, alive and eligible. For the k-th such
 * shard, moves[k] (moves NULL: only count) is its index and next[k] (NULL:
 * not wanted) its new state: leader = preferred, leader_epoch + 1, ISR
 * unchanged. Malformed states and shards whose epoch cannot grow are
 * skipped. moves and next have room for n. Returns the number of moves. */
size_t rn_cl_rebalance_plan(const rn_cl_shard_t *shards, size_t n, const uint32_t *alive, size_t nalive,
                            const uint32_t *ineligible, size_t ninel, size_t *moves, rn_cl_shard_t *next);

/* ==== the other records ================================================ */

/* <root>/brokers/<id>: a broker's registration, on its lease. */
typedef struct rn_cl_broker {
  uint32_t id;          /* >= 1 */
  char advertise[128];  /* host:port of the native port; host a name, IPv4, or [IPv6] */
  char http[128];       /* host:port of the HTTP port; "" = none */
  char rack[64];        /* "" = none; printable ASCII, no spaces */
  int64_t started_ms;   /* wall clock, >= 0 */
  bool draining;
} rn_cl_broker_t;

/* <root>/streams/<name>. */
typedef struct rn_cl_stream {
  char name[RN_NAME_MAX + 1]; /* proto's stream name rule */
  uint32_t nshards;           /* shard keys 0..nshards-1 exist (indexes only grow); 1..INT32_MAX */
  uint32_t replication;       /* 1..5 */
  uint32_t min_insync;        /* 1..replication */
  int64_t retention_ms;       /* -1 = forever, else >= 1 */
  int64_t retention_bytes;    /* per shard; -1 = unlimited, else >= 1 */
  uint8_t durability;         /* rn_durability_t; JSON: its name */
  uint64_t uid;               /* the incarnation; JSON: a decimal string (beyond 2^53) */
  int64_t created_ms;         /* >= 0 */
} rn_cl_stream_t;

/* <root>/controller and <root>/controller_epoch. */
typedef struct rn_cl_controller {
  uint32_t broker; /* >= 1 */
  uint32_t epoch;  /* >= 1 */
} rn_cl_controller_t;

/* <root>/ineligible/<name>/<index>/<broker>. Written by the broker before
 * it registers after a recovery that may have lost acknowledged records of
 * that shard; deleted by it once its durable end has reached a high
 * watermark it fetched in the current leader epoch. */
typedef enum {
  RN_CL_INEL_LOST_TAIL = 1, /* "lost_tail": a crash took records it had reported durable */
  RN_CL_INEL_CORRUPT = 2,   /* "corrupt": damage below what it had reported durable */
} rn_cl_inel_reason_t;

typedef struct rn_cl_ineligible {
  uint32_t broker;  /* >= 1 */
  uint8_t reason;   /* rn_cl_inel_reason_t */
  uint64_t log_end; /* its log end after recovery; JSON: a decimal string */
  int64_t since_ms; /* wall clock, >= 0 */
} rn_cl_ineligible_t;

/* ==== codecs ============================================================
 *
 * Encoders check the record (as the decoder would) and write compact JSON,
 * NUL-terminated, into buf[0, cap); *len (may be NULL) = its length without
 * the NUL. They return 0; RN_EINVAL (the record is malformed: the matching
 * _check says why); RN_ETOOLARGE when cap is too small (*len = the length
 * needed; RN_CL_VALUE_MAX is always enough); RN_ENOMEM.
 *
 * Decoders read exactly data[0, len) (no NUL needed), zero the output
 * first and fill it only on success. Strict: one JSON object, "v":1, every
 * field present once with its type and range, no other field (an older
 * broker that dropped a field it did not know would lose it on its next
 * compare-and-swap; a new field is a new version). They return 0;
 * RN_EINVAL with a reason ("shard: ..."); RN_ENOMEM. */
rn_err_t rn_cl_shard_encode(const rn_cl_shard_t *sh, char *buf, size_t cap, size_t *len);
rn_err_t rn_cl_shard_decode(const uint8_t *data, size_t len, rn_cl_shard_t *sh, char *why, size_t whylen);

rn_err_t rn_cl_broker_check(const rn_cl_broker_t *b, char *why, size_t whylen);
rn_err_t rn_cl_broker_encode(const rn_cl_broker_t *b, char *buf, size_t cap, size_t *len);
rn_err_t rn_cl_broker_decode(const uint8_t *data, size_t len, rn_cl_broker_t *b, char *why, size_t whylen);

rn_err_t rn_cl_stream_check(const rn_cl_stream_t *st, char *why, size_t whylen);
rn_err_t rn_cl_stream_encode(const rn_cl_stream_t *st, char *buf, size_t cap, size_t *len);
rn_err_t rn_cl_stream_decode(const uint8_t *data, size_t len, rn_cl_stream_t *st, char *why, size_t whylen);

rn_err_t rn_cl_controller_check(const rn_cl_controller_t *c, char *why, size_t whylen);
rn_err_t rn_cl_controller_encode(const rn_cl_controller_t *c, char *buf, size_t cap, size_t *len);
rn_err_t rn_cl_controller_decode(const uint8_t *data, size_t len, rn_cl_controller_t *c, char *why, size_t whylen);

rn_err_t rn_cl_ineligible_check(const rn_cl_ineligible_t *in, char *why, size_t whylen);
rn_err_t rn_cl_ineligible_encode(const rn_cl_ineligible_t *in, char *buf, size_t cap, size_t *len);
rn_err_t rn_cl_ineligible_decode(const uint8_t *data, size_t len, rn_cl_ineligible_t *in, char *why,
                                 size_t whylen);

/* ==== keys ============================================================== */

typedef enum {
  RN_CL_KEY_BROKER = 1,      /* uses broker */
  RN_CL_KEY_CONTROLLER,      /* no argument */
  RN_CL_KEY_CONTROLLER_EPOCH,
  RN_CL_KEY_STREAM,          /* uses stream */
  RN_CL_KEY_SHARD,           /* uses stream, shard */
  RN_CL_KEY_INELIGIBLE,      /* uses stream, shard, broker */
} rn_cl_key_kind_t;

typedef struct rn_cl_key {
  rn_cl_key_kind_t kind;
  uint32_t broker;
  char stream[RN_NAME_MAX + 1];
  uint32_t shard;
} rn_cl_key_t;

/* Check a root: 2..RN_CL_ROOT_MAX bytes, starting with '/', segments of
 * A-Z a-z 0-9 _ . - separated by single '/', none "." or "..", no trailing
 * '/'. Returns 0 or RN_EINVAL. */
rn_err_t rn_cl_root_check(const char *root, char *why, size_t whylen);

/* Write k's key under root (NULL = RN_CL_ROOT_DEFAULT) into buf[0, cap),
 * NUL-terminated, *len (may be NULL) its length. Returns 0; RN_EINVAL (bad
 * root, kind, stream name, broker 0); RN_ETOOLARGE (cap too small;
 * RN_CL_KEY_MAX always suffices). */
rn_err_t rn_cl_key_format(const char *root, const rn_cl_key_t *k, char *buf, size_t cap, size_t *len);

/* The prefix to range or watch every key of a kind: "<root>/brokers/",
 * "<root>/streams/", "<root>/shards/<stream>/", and
 * "<root>/ineligible/<stream>/<shard>/" (stream and shard are read only
 * for the kinds that have them). Controller kinds have no prefix
 * (RN_EINVAL). Returns as rn_cl_key_format. */
rn_err_t rn_cl_key_prefix(const char *root, rn_cl_key_kind_t kind, const char *stream, uint32_t shard, char *buf,
                          size_t cap, size_t *len);

/* Parse key[0, len) (e.g. from a watch event) under root (NULL = default)
 * into *out: exactly the forms rn_cl_key_format writes (10-digit numbers).
 * Returns 0 or RN_EINVAL (not a key of this layout; *out zeroed). */
rn_err_t rn_cl_key_parse(const char *root, const char *key, size_t len, rn_cl_key_t *out);

/* Internal to this library (plan.c, clmeta.c): format a reason into why
 * (when whylen > 0) and return err. */
rn_err_t rn__cl_reject(rn_err_t err, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#ifdef __cplusplus
}
#endif
#endif
