/*
 * group_assign.h — the consumer-group assignment: which member should hold
 * which shard. Pure: no I/O, no clock, no allocation beyond the caller's
 * arrays; the broker (group.c) feeds it the group's current state and
 * applies the answer with revoke-before-reassign (a shard moves only after
 * its holder released it or its session expired, which is group.c's job).
 *
 * Rules, in order:
 *   1. Eligible shards: not finished (a closed shard checkpointed at its
 *      end), and every parent finished — a child after a split or merge is
 *      handed out only after its parents were read to their end, so per-key
 *      order survives resharding.
 *   2. Balanced by count: with E eligible shards and M members, every member
 *      gets floor(E/M) or ceil(E/M) shards.
 *   3. Sticky: a shard stays with its preferred member (its holder, or the
 *      previous target) while that keeps the count balanced.
 *   4. The rest go, heaviest first (weight: recent throughput, 0 when
 *      unknown), to a member with the fewest shards, then the least weight,
 *      then the lowest index.
 */
#ifndef RN_BROKER_GROUP_ASSIGN_H
#define RN_BROKER_GROUP_ASSIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RN_GA_MAX_PARENTS 2

typedef struct rn_ga_shard {
  uint32_t parents[RN_GA_MAX_PARENTS]; /* positions in the same array */
  uint32_t nparents;
  bool finished;    /* closed and checkpointed at its end: nobody needs it */
  int32_t prefer;   /* member position that should keep it, -1 = none */
  double weight;    /* throughput, 0 = unknown */
} rn_ga_shard_t;

/* target[i] = member position (0 .. nmembers-1) for shard i, or -1 when the
 * shard is not to be held (finished, waiting for its parents, or no
 * members). `scratch` holds 2 * nmembers entries. Deterministic. */
void rn_group_assign(const rn_ga_shard_t *shards, size_t nshards, size_t nmembers, int32_t *target,
                     double *scratch);

#endif
