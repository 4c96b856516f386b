/*
 * tiertest.h — what the tiered-storage tests against the real runneld
 * (test_tier_s3, test_tier_kill9, test_tier_faults) share: a monotonic
 * clock for their deadlines, the pause between two polls of a condition,
 * and `runnelctl --json` parsed (failing the cmocka test on any error).
 */
#ifndef RN_TEST_TIERTEST_H
#define RN_TEST_TIERTEST_H

#include <stdint.h>

#include <jansson.h>

/* CLOCK_MONOTONIC in ms: for failure deadlines only, never asserted. */
uint64_t rn_tt_now_ms(void);

/* Between two polls of a condition (never instead of one). */
void rn_tt_pause(unsigned ms);

/* Run `ctl --broker addr --json args...` (args NULL-terminated, at most 38)
 * with its output through files under scratch; fails the test unless it
 * exits 0 with a JSON document, which is returned (json_decref it). */
json_t *rn_tt_ctl_json(const char *ctl, const char *addr, const char *scratch, const char *const *args);

/* An integer field of o, or fail the test naming the field and the object. */
int64_t rn_tt_jint(json_t *o, const char *name);

#endif
