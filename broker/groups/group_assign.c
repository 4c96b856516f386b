/*
 * group_assign.c — see group_assign.h for the rules. O(shards * members),
 * fine for the shard counts of one stream (<= max_shards_per_stream).
 */
#include "group_assign.h"

static bool eligible(const rn_ga_shard_t *shards, size_t n, size_t i) {
  if (shards[i].finished) return false;
  for (uint32_t k = 0; k < shards[i].nparents && k < RN_GA_MAX_PARENTS; k++) {
    uint32_t p = shards[i].parents[k];
    if (p < n && !shards[p].finished) return false;
  }
  return true;
}

void rn_group_assign(const rn_ga_shard_t *shards, size_t nshards, size_t nmembers, int32_t *target,
                     double *scratch) {
  double *count = scratch, *load = scratch + nmembers;
  size_t e = 0;
  for (size_t i = 0; i < nshards; i++) {
    target[i] = -1;
    if (eligible(shards, nshards, i)) e++;
  }
  if (nmembers == 0 || e == 0) return;
  for (size_t m = 0; m < nmembers; m++) count[m] = load[m] = 0;
  size_t base = e / nmembers, extra = e % nmembers, at_ceil = 0;

  /* A member may take one more shard when it is below base, or at base
   * while fewer than `extra` members have base + 1. */
#define ROOM(m) (count[m] < (double)base || (count[m] == (double)base && at_ceil < extra))
#define TAKE(i, m)                                   \
  do {                                               \
    if (count[m] == (double)base) at_ceil++;         \
    count[m] += 1;                                   \
    load[m] += shards[i].weight;                     \
    target[i] = (int32_t)(m);                        \
  } while (0)

  /* Sticky: first up to base each, then the ceil slots, in shard order. */
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < nshards; i++) {
      int32_t p = shards[i].prefer;
      if (target[i] >= 0 || p < 0 || (size_t)p >= nmembers || !eligible(shards, nshards, i)) continue;
      size_t m = (size_t)p;
      if (pass == 0 ? count[m] < (double)base : ROOM(m)) TAKE(i, m);
    }

  /* The rest, heaviest first. */
  for (;;) {
    size_t best = nshards;
    for (size_t i = 0; i < nshards; i++) {
      if (target[i] >= 0 || !eligible(shards, nshards, i)) continue;
      if (best == nshards || shards[i].weight > shards[best].weight) best = i;
    }
    if (best == nshards) break;
    size_t pick = nmembers;
    for (size_t m = 0; m < nmembers; m++) {
      if (!ROOM(m)) continue;
      if (pick == nmembers || count[m] < count[pick] || (count[m] == count[pick] && load[m] < load[pick])) pick = m;
    }
    if (pick == nmembers) break; /* cannot happen: total room == e */
    TAKE(best, pick);
  }
#undef ROOM
#undef TAKE
}
