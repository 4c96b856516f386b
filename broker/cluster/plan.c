/*
 * plan.c — the cluster's pure decisions: placement of new shards and
 * replacement of a replica, election, the ISR's shrink and expand, the
 * high watermark, the epoch check of a write and the preferred-leader
 * rebalance (plan.h states each rule and why it keeps acknowledged
 * records).
 *
 * Invariants kept: every shard state returned with 0 passes
 * rn_cl_shard_check (a leader only from the ISR, an ISR never empty and
 * inside the replicas); every change of leader raises leader_epoch by
 * exactly one and nothing else raises it; ISRs this file builds are in
 * replica order. Placement depends on the set of members only, never on
 * the order they were listed in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

#define REJECT(...) rn__cl_reject(RN_EINVAL, why, whylen, __VA_ARGS__)

static bool in(const uint32_t *set, size_t n, uint32_t id) {
  for (size_t i = 0; i < n; i++)
    if (set[i] == id) return true;
  return false;
}

bool rn_cl_shard_is_replica(const rn_cl_shard_t *sh, uint32_t id) {
  return sh && id != 0 && in(sh->replicas, sh->nreplicas <= RN_CL_MAX_REPLICAS ? sh->nreplicas : 0, id);
}

bool rn_cl_shard_in_isr(const rn_cl_shard_t *sh, uint32_t id) {
  return sh && id != 0 && in(sh->isr, sh->nisr <= RN_CL_MAX_REPLICAS ? sh->nisr : 0, id);
}

bool rn_cl_shard_equal(const rn_cl_shard_t *a, const rn_cl_shard_t *b) {
  if (a == NULL || b == NULL) return a == b;
  if (a->nreplicas != b->nreplicas || a->nisr != b->nisr || a->leader != b->leader ||
      a->leader_epoch != b->leader_epoch || a->min_insync != b->min_insync ||
      a->controller_epoch != b->controller_epoch || a->nreplicas > RN_CL_MAX_REPLICAS || a->nisr > RN_CL_MAX_REPLICAS)
    return false;
  for (unsigned i = 0; i < a->nreplicas; i++)
    if (a->replicas[i] != b->replicas[i]) return false;
  for (unsigned i = 0; i < a->nisr; i++) /* the ISR is a set; no duplicates in well-formed states */
    if (!in(b->isr, b->nisr, a->isr[i])) return false;
  for (unsigned i = 0; i < b->nisr; i++)
    if (!in(a->isr, a->nisr, b->isr[i])) return false;
  return true;
}

rn_err_t rn_cl_shard_init(rn_cl_shard_t *sh, const uint32_t *replicas, size_t nreplicas, uint32_t min_insync,
                          uint32_t controller_epoch, char *why, size_t whylen) {
  if (sh == NULL) return REJECT("shard: no output");
  memset(sh, 0, sizeof *sh);
  if (replicas == NULL || nreplicas < 1 || nreplicas > RN_CL_MAX_REPLICAS)
    return REJECT("shard: %zu replicas (1..%d)", replicas ? nreplicas : 0, RN_CL_MAX_REPLICAS);
  rn_cl_shard_t s;
  memset(&s, 0, sizeof s);
  memcpy(s.replicas, replicas, nreplicas * sizeof *replicas);
  memcpy(s.isr, replicas, nreplicas * sizeof *replicas);
  s.nreplicas = s.nisr = (uint8_t)nreplicas;
  s.leader = replicas[0];
  s.leader_epoch = 1;
  s.min_insync = min_insync;
  s.controller_epoch = controller_epoch;
  rn_err_t rc = rn_cl_shard_check(&s, why, whylen);
  if (rc == 0) *sh = s;
  return rc;
}

/* ==== placement =========================================================== */

typedef struct {
  uint32_t id;
  const char *rack; /* never NULL: "" = none */
  uint32_t rackno;  /* index of its rack in rack-name order */
} slot_t;

static int by_rack_id(const void *a, const void *b) {
  const slot_t *x = a, *y = b;
  int c = strcmp(x->rack, y->rack);
  if (c) return c;
  return x->id < y->id ? -1 : x->id > y->id;
}

static int by_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Ids >= 1 and distinct. */
static rn_err_t check_members(const rn_cl_member_t *m, size_t n, char *why, size_t whylen) {
  if (n == 0) return 0;
  if (m == NULL) return REJECT("placement: no members");
  uint32_t *ids = malloc(n * sizeof *ids);
  if (ids == NULL) return rn__cl_reject(RN_ENOMEM, why, whylen, "placement: out of memory");
  for (size_t i = 0; i < n; i++) ids[i] = m[i].id;
  qsort(ids, n, sizeof *ids, by_u32);
  rn_err_t rc = 0;
  if (ids[0] == 0) rc = REJECT("placement: broker id 0 (ids are >= 1)");
  for (size_t i = 1; rc == 0 && i < n; i++)
    if (ids[i] == ids[i - 1]) rc = REJECT("placement: broker %u is listed twice", (unsigned)ids[i]);
  free(ids);
  return rc;
}

rn_err_t rn_cl_place(const rn_cl_member_t *members, size_t nmembers, uint32_t nshards, uint32_t replication,
                     uint32_t start, uint32_t *out, char *why, size_t whylen) {
  if (replication < 1 || replication > RN_CL_MAX_REPLICAS)
    return REJECT("placement: replication %u is outside 1..%d", (unsigned)replication, RN_CL_MAX_REPLICAS);
  if (nshards == 0) return REJECT("placement: no shards to place");
  if (out == NULL) return REJECT("placement: no output");
  rn_err_t rc = check_members(members, nmembers, why, whylen);
  if (rc) return rc;
  size_t ne = 0, ndrain = 0;
  for (size_t i = 0; i < nmembers; i++) members[i].draining ? ndrain++ : ne++;
  if (ne < replication) {
    char drain[64] = "";
    if (ndrain) snprintf(drain, sizeof drain, " and not draining (%zu more drain%s)", ndrain, ndrain == 1 ? "s" : "");
    return rn__cl_reject(RN_ENOTENOUGHREPLICAS, why, whylen, "replication %u needs %u broker%s, %zu %s alive%s",
                         (unsigned)replication, (unsigned)replication, replication == 1 ? "" : "s", ne,
                         ne == 1 ? "is" : "are", drain);
  }

  /* The ring: eligible brokers sorted by (rack, id), then dealt one rack at
   * a time (a1 b1 c1 a2 b2 c2 ...), so ring neighbours sit in different
   * racks where the racks allow it. */
  slot_t *sorted = malloc(ne * sizeof *sorted);
  slot_t *ring = malloc(ne * sizeof *ring);
  uint32_t *lead = calloc(ne, sizeof *lead), *rep = calloc(ne, sizeof *rep);
  size_t *first = malloc((ne + 1) * sizeof *first); /* rack r's members: sorted[first[r], first[r+1]) */
  if (!sorted || !ring || !lead || !rep || !first) {
    rc = rn__cl_reject(RN_ENOMEM, why, whylen, "placement: out of memory");
    goto done;
  }
  size_t k = 0;
  for (size_t i = 0; i < nmembers; i++) {
    if (members[i].draining) continue;
    sorted[k].id = members[i].id;
    sorted[k].rack = members[i].rack ? members[i].rack : "";
    k++;
  }
  qsort(sorted, ne, sizeof *sorted, by_rack_id);
  size_t nracks = 0;
  for (size_t i = 0; i < ne; i++) {
    if (i == 0 || strcmp(sorted[i].rack, sorted[i - 1].rack) != 0) first[nracks++] = i;
    sorted[i].rackno = (uint32_t)(nracks - 1);
  }
  first[nracks] = ne;
  k = 0;
  for (size_t round = 0; k < ne; round++)
    for (size_t r = 0; r < nracks; r++)
      if (first[r] + round < first[r + 1]) ring[k++] = sorted[first[r] + round];

  for (uint32_t s = 0; s < nshards; s++) {
    size_t g = (size_t)(((uint64_t)start + s) % ne); /* the shard's rotation point on the ring */
    size_t chosen[RN_CL_MAX_REPLICAS];
    /* the leader: fewest leaderships, then fewest replicas, then ring order */
    size_t best = ne;
    for (size_t d = 0; d < ne; d++) {
      size_t p = (g + d) % ne;
      if (best == ne || lead[p] < lead[best] || (lead[p] == lead[best] && rep[p] < rep[best])) best = p;
    }
    chosen[0] = best;
    for (uint32_t j = 1; j < replication; j++) {
      /* a rack the shard lacks, when a candidate has one */
      bool want_new_rack = false;
      for (size_t p = 0; p < ne && !want_new_rack; p++) {
        bool used = false, covered = false;
        for (uint32_t c = 0; c < j; c++) {
          used |= chosen[c] == p;
          covered |= ring[chosen[c]].rackno == ring[p].rackno;
        }
        want_new_rack = !used && !covered;
      }
      best = ne;
      for (size_t d = 0; d < ne; d++) {
        size_t p = (g + d) % ne;
        bool used = false, covered = false;
        for (uint32_t c = 0; c < j; c++) {
          used |= chosen[c] == p;
          covered |= ring[chosen[c]].rackno == ring[p].rackno;
        }
        if (used || (want_new_rack && covered)) continue;
        /* fewest replicas, then more leaderships (ring order last: d rises) */
        if (best == ne || rep[p] < rep[best] || (rep[p] == rep[best] && lead[p] > lead[best])) best = p;
      }
      chosen[j] = best;
    }
    lead[chosen[0]]++;
    for (uint32_t j = 0; j < replication; j++) {
      rep[chosen[j]]++;
      out[(size_t)s * replication + j] = ring[chosen[j]].id;
    }
  }
done:
  free(sorted);
  free(ring);
  free(lead);
  free(rep);
  free(first);
  return rc;
}

static const char *rack_of(const rn_cl_member_t *m) { return m->rack ? m->rack : ""; }

rn_err_t rn_cl_reassign(const rn_cl_member_t *members, size_t nmembers, const uint32_t *loads,
                        const uint32_t *replicas, size_t nreplicas, uint32_t away,
                        uint32_t next[RN_CL_MAX_REPLICAS], uint32_t *replacement, char *why, size_t whylen) {
  if (next == NULL || replacement == NULL) return REJECT("reassign: no output");
  if (replicas == NULL || nreplicas < 1 || nreplicas > RN_CL_MAX_REPLICAS)
    return REJECT("reassign: %zu replicas (1..%d)", replicas ? nreplicas : 0, RN_CL_MAX_REPLICAS);
  for (size_t i = 0; i < nreplicas; i++) {
    if (replicas[i] == 0) return REJECT("reassign: replica id 0 (ids are >= 1)");
    if (in(replicas, i, replicas[i]))
      return REJECT("reassign: broker %u is listed twice in the replicas", (unsigned)replicas[i]);
  }
  if (away == 0 || !in(replicas, nreplicas, away))
    return REJECT("reassign: broker %u holds no replica of this shard", (unsigned)away);
  rn_err_t rc = check_members(members, nmembers, why, whylen);
  if (rc) return rc;
  /* the racks of the staying replicas we know */
  const char *stay[RN_CL_MAX_REPLICAS];
  size_t nstay = 0;
  for (size_t i = 0; i < nreplicas; i++) {
    if (replicas[i] == away) continue;
    for (size_t m = 0; m < nmembers; m++)
      if (members[m].id == replicas[i]) stay[nstay++] = rack_of(&members[m]);
  }
  size_t best = nmembers;
  bool best_new = false;
  for (size_t m = 0; m < nmembers; m++) {
    if (members[m].draining || in(replicas, nreplicas, members[m].id)) continue;
    bool fresh = true;
    for (size_t s = 0; s < nstay; s++) fresh &= strcmp(stay[s], rack_of(&members[m])) != 0;
    uint32_t l = loads ? loads[m] : 0, bl = best < nmembers && loads ? loads[best] : 0;
    if (best == nmembers || (fresh && !best_new) ||
        (fresh == best_new && (l < bl || (l == bl && members[m].id < members[best].id)))) {
      best = m;
      best_new = fresh;
    }
  }
  if (best == nmembers)
    return rn__cl_reject(RN_ENOTENOUGHREPLICAS, why, whylen,
                         "reassign: no broker can take the replica of %u: every live broker that is not draining "
                         "holds one already",
                         (unsigned)away);
  memset(next, 0, RN_CL_MAX_REPLICAS * sizeof *next);
  for (size_t i = 0; i < nreplicas; i++) next[i] = replicas[i] == away ? members[best].id : replicas[i];
  *replacement = members[best].id;
  return 0;
}

/* ==== election and ISR ====================================================== */

rn_err_t rn_cl_elect(const rn_cl_shard_t *cur, const uint32_t *alive, size_t nalive, const uint32_t *ineligible,
                     size_t ninel, rn_cl_shard_t *next) {
  if (cur == NULL || next == NULL || rn_cl_shard_check(cur, NULL, 0) != 0) return RN_EINVAL;
  if ((alive == NULL && nalive) || (ineligible == NULL && ninel)) return RN_EINVAL;
  rn_cl_shard_t n = *cur;
  uint32_t isr[RN_CL_MAX_REPLICAS] = {0};
  uint8_t k = 0;
  for (unsigned i = 0; i < cur->nreplicas; i++) {
    uint32_t r = cur->replicas[i];
    if (rn_cl_shard_in_isr(cur, r) && in(alive, nalive, r) && !in(ineligible, ninel, r)) isr[k++] = r;
  }
  bool stays = cur->leader != 0 && in(isr, k, cur->leader);
  if (!stays && k == 0) { /* offline: keep the ISR, its members hold everything */
    n.leader = 0;
    *next = n;
    return RN_ENOTENOUGHREPLICAS;
  }
  if (!stays) {
    if (cur->leader_epoch == UINT32_MAX) return RN_EINVAL;
    n.leader = isr[0];
    n.leader_epoch = cur->leader_epoch + 1;
  }
  memcpy(n.isr, isr, sizeof isr);
  n.nisr = k;
  *next = n;
  return 0;
}

/* Follower entries: ids that are replicas, none twice. */
static rn_err_t check_followers(const rn_cl_shard_t *cur, const rn_cl_follower_t *f, size_t nf) {
  if (f == NULL && nf) return RN_EINVAL;
  for (size_t i = 0; i < nf; i++) {
    if (!rn_cl_shard_is_replica(cur, f[i].id)) return RN_EINVAL;
    for (size_t j = 0; j < i; j++)
      if (f[j].id == f[i].id) return RN_EINVAL;
  }
  return 0;
}

static const rn_cl_follower_t *find(const rn_cl_follower_t *f, size_t nf, uint32_t id) {
  for (size_t i = 0; i < nf; i++)
    if (f[i].id == id) return &f[i];
  return NULL;
}

rn_err_t rn_cl_isr_shrink(const rn_cl_shard_t *cur, const rn_cl_follower_t *followers, size_t nfollowers,
                          uint64_t leader_end, int64_t now_ms, int64_t lag_max_ms, rn_cl_shard_t *next) {
  if (cur == NULL || next == NULL || rn_cl_shard_check(cur, NULL, 0) != 0) return RN_EINVAL;
  if (cur->leader == 0) return RN_ENOTLEADER;
  if (lag_max_ms <= 0 || check_followers(cur, followers, nfollowers) != 0) return RN_EINVAL;
  rn_cl_shard_t n = *cur;
  uint32_t isr[RN_CL_MAX_REPLICAS] = {0};
  uint8_t k = 0;
  for (unsigned i = 0; i < cur->nreplicas; i++) {
    uint32_t r = cur->replicas[i];
    if (!rn_cl_shard_in_isr(cur, r)) continue;
    if (r != cur->leader) {
      const rn_cl_follower_t *f = find(followers, nfollowers, r);
      if (f == NULL) return RN_EINVAL;
      /* the unsigned difference is exact whenever now_ms >= caught_up_ms */
      bool late = f->durable_end < leader_end && now_ms > f->caught_up_ms &&
                  (uint64_t)now_ms - (uint64_t)f->caught_up_ms > (uint64_t)lag_max_ms;
      if (f->ineligible || late) continue;
    }
    isr[k++] = r;
  }
  memcpy(n.isr, isr, sizeof isr);
  n.nisr = k;
  *next = n;
  return 0;
}

rn_err_t rn_cl_isr_expand(const rn_cl_shard_t *cur, const rn_cl_follower_t *followers, size_t nfollowers,
                          uint64_t hw, uint64_t epoch_start, rn_cl_shard_t *next) {
  if (cur == NULL || next == NULL || rn_cl_shard_check(cur, NULL, 0) != 0) return RN_EINVAL;
  if (cur->leader == 0) return RN_ENOTLEADER;
  if (check_followers(cur, followers, nfollowers) != 0) return RN_EINVAL;
  rn_cl_shard_t n = *cur;
  uint32_t isr[RN_CL_MAX_REPLICAS] = {0};
  uint8_t k = 0;
  for (unsigned i = 0; i < cur->nreplicas; i++) {
    uint32_t r = cur->replicas[i];
    if (!rn_cl_shard_in_isr(cur, r)) {
      const rn_cl_follower_t *f = find(followers, nfollowers, r);
      if (f == NULL || f->ineligible || f->durable_end < hw || f->durable_end < epoch_start) continue;
    }
    isr[k++] = r;
  }
  memcpy(n.isr, isr, sizeof isr);
  n.nisr = k;
  *next = n;
  return 0;
}

uint64_t rn_cl_high_watermark(uint64_t leader_end, const uint64_t *ends, size_t n) {
  uint64_t hw = leader_end;
  for (size_t i = 0; ends && i < n; i++)
    if (ends[i] < hw) hw = ends[i];
  return hw;
}

bool rn_cl_may_ack(const rn_cl_shard_t *sh) { return sh && sh->leader != 0 && sh->nisr >= sh->min_insync; }

uint32_t rn_cl_default_min_insync(uint32_t replication) {
  if (replication < 3) return 1;
  return replication > RN_CL_MAX_REPLICAS ? RN_CL_MAX_REPLICAS / 2 + 1 : replication / 2 + 1;
}

rn_err_t rn_cl_shard_transition(const rn_cl_shard_t *cur, const rn_cl_shard_t *next, char *why, size_t whylen) {
  char w[RN_CL_WHY_MAX];
  if (rn_cl_shard_check(next, w, sizeof w) != 0) return REJECT("the new value: %s", w);
  if (cur == NULL) return 0;
  if (rn_cl_shard_check(cur, w, sizeof w) != 0) return REJECT("the current value: %s", w);
  if (next->controller_epoch < cur->controller_epoch)
    return rn__cl_reject(RN_ESTALEEPOCH, why, whylen,
                         "written by controller epoch %u over a value of controller epoch %u",
                         (unsigned)next->controller_epoch, (unsigned)cur->controller_epoch);
  if (next->leader_epoch < cur->leader_epoch)
    return rn__cl_reject(RN_ESTALEEPOCH, why, whylen, "leader epoch %u is older than the current %u",
                         (unsigned)next->leader_epoch, (unsigned)cur->leader_epoch);
  if (next->leader != 0 && next->leader != cur->leader && next->leader_epoch == cur->leader_epoch)
    return rn__cl_reject(RN_ESTALEEPOCH, why, whylen,
                         "leader %u at leader epoch %u over leader %u at the same epoch: a new leader needs a new "
                         "epoch",
                         (unsigned)next->leader, (unsigned)next->leader_epoch, (unsigned)cur->leader);
  return 0;
}

bool rn_cl_shard_supersedes(const rn_cl_shard_t *cur, const rn_cl_shard_t *next) {
  return rn_cl_shard_transition(cur, next, NULL, 0) == 0;
}

size_t rn_cl_rebalance_plan(const rn_cl_shard_t *shards, size_t n, const uint32_t *alive, size_t nalive,
                            const uint32_t *ineligible, size_t ninel, size_t *moves, rn_cl_shard_t *next) {
  if (shards == NULL || (alive == NULL && nalive) || (ineligible == NULL && ninel)) return 0;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const rn_cl_shard_t *s = &shards[i];
    if (rn_cl_shard_check(s, NULL, 0) != 0 || s->leader == 0) continue;
    uint32_t pref = s->replicas[0];
    if (s->leader == pref || !in(alive, nalive, s->leader) || !rn_cl_shard_in_isr(s, pref) ||
        !in(alive, nalive, pref) || in(ineligible, ninel, pref) || s->leader_epoch == UINT32_MAX)
      continue;
    if (moves) moves[k] = i;
    if (next) {
      next[k] = *s;
      next[k].leader = pref;
      next[k].leader_epoch = s->leader_epoch + 1;
    }
    k++;
  }
  return k;
}
