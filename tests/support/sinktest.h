/*
 * sinktest.h — what the archive-sink tests against the real runneld
 * (integration/test_sink_pipeline, fault/test_sink_kill9, fault/test_sink_faults)
 * share: the fixture (a temporary directory, runneld with the S3 settings of
 * an s3rver on loopback when the test wants one), `runnelctl sink ...`,
 * describe polled with a deadline, the delivered objects as files (a
 * file:// destination directly, a bucket through tests/conformance/tier_s3.py
 * mirror) checked against the naming rule
 *   <prefix><sink>-shardId-<12 digits>-<first, 20 digits>-<last, 20 digits>.<ext>
 * and their NDJSON(.gz) lines, a librunnel producer that checks every
 * acknowledgement, and the peers that may be missing (node readers).
 *
 * Every function fails the running cmocka test (fail_msg) on an error it
 * cannot recover from; none sleeps to synchronise (waits poll a condition
 * and the deadline only bounds a failure).
 */
#ifndef RN_TEST_SINKTEST_H
#define RN_TEST_SINKTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "broker_proc.h"
#include "runnel/runnel.h"
#include "s3peer.h"

#define RN_SF_DEADLINE_MS 180000 /* failure bound of every wait */

typedef struct rn_sinkfx {
  char *tmp;            /* the test's directory (removed at the end unless RUNNEL_TEST_KEEP) */
  char data_dir[600];   /* runneld's */
  rn_test_broker_t br;
  rn_client_t *cl;      /* librunnel, connected while the broker runs */
  bool s3;              /* an s3rver runs: peer */
  rn_s3peer_t peer;
  char sets[8][800];    /* runneld --set values (S3 settings, extra ones) */
  int nset;
  unsigned starts;      /* broker starts so far (logs of earlier ones are kept aside) */
} rn_sinkfx_t;

/* Make the temporary directory, isolate boto3 from ~/.aws and, when s3,
 * start s3rver (its bucket peer.bucket exists) and point runneld's s3_*
 * settings and AWS_* credentials at it. Returns 0; 77 with why when s3rver
 * cannot be installed or started here (the caller skips). */
int rn_sf_init(rn_sinkfx_t *f, bool s3, char *why, size_t whylen);

/* Add a runneld --set KEY=VALUE for the next starts (at most 8 in all). */
void rn_sf_set(rn_sinkfx_t *f, const char *kv);

/* Start runneld on f->data_dir (run-time ports) and connect f->cl. */
void rn_sf_broker_start(rn_sinkfx_t *f);
/* SIGTERM; fails unless it exits 0 (a clean shutdown). */
void rn_sf_broker_stop(rn_sinkfx_t *f);
/* SIGKILL and reap (the client is destroyed first). */
void rn_sf_broker_kill(rn_sinkfx_t *f);

/* At the end of main: stop what runs, print sanitizer reports of runneld's
 * logs, stop s3rver, remove the directory. failed: the tests failed (the
 * client is then left alone: a producer may still hang off it). Returns the
 * number of problems found (a broker that did not exit 0, a sanitizer report). */
int rn_sf_finish(rn_sinkfx_t *f, int failed);

/* `runnelctl --broker ADDR args...` (NULL-terminated): fails unless exit 0.
 * Returns its stdout (malloc'd; the caller frees) or NULL when out is NULL. */
char *rn_sf_ctl(rn_sinkfx_t *f, const char *const *args);
/* The same, --json, parsed (json_decref it). */
json_t *rn_sf_ctl_json(rn_sinkfx_t *f, const char *const *args);
/* Run it and return the exit status, its stdout and stderr in *out, *err
 * (malloc'd, either may be NULL to drop it). */
int rn_sf_ctl_rc(rn_sinkfx_t *f, const char *const *args, char **out, char **err);

/* True when `runnelctl <sub> <cmd> --help` mentions flag (probing options
 * another branch adds, e.g. stream create --dedup-field). */
bool rn_sf_ctl_has_flag(const char *sub, const char *cmd, const char *flag);

/* A sink's describe, summed over its shards. */
typedef struct rn_sf_view {
  uint64_t lag, objects, records, error_records, end, checkpoint;
  unsigned nshards;
  bool retrying;          /* some shard's state is "retrying" */
  bool all_paused;        /* every shard's state is "paused" */
  char state[128];        /* the sink's state ("running", "paused", ...) */
  char shard_states[128]; /* each shard's, space-separated */
  char last_error[300];   /* the first shard's non-null last_error, or "" */
} rn_sf_view_t;

/* `sink describe NAME --json` into v; the document itself when doc (json_decref it). */
void rn_sf_describe(rn_sinkfx_t *f, const char *sink, rn_sf_view_t *v, json_t **doc);

/* Poll describe until lag_records is 0 and the shards' end offsets add up to
 * at least min_end (records the test knows were acknowledged), failing with
 * the last describe at the deadline. */
void rn_sf_wait_caught_up(rn_sinkfx_t *f, const char *sink, uint64_t min_end);

/* ---- objects ------------------------------------------------------------------ */

typedef struct rn_sf_obj {
  char *key;      /* relative to the root walked: "raw/event_type=x/.../s-shardId-...parquet" */
  char *path;     /* the file */
  char *prefix;   /* key up to and including the last '/' ("" at the root) */
  uint32_t shard;
  uint64_t first, last;
  char ext[24];   /* "parquet", "ndjson.gz", "ndjson" */
} rn_sf_obj_t;

typedef struct rn_sf_objs {
  rn_sf_obj_t *v;
  size_t n;
  size_t temps;           /* temporary files (dot files, ".rn-tmp-"): interrupted writes */
  char temp_example[512];
} rn_sf_objs_t;

/* Every file under root/sub (sub may be "") whose name is an object of
 * sink: keys relative to root. Files of other sinks are ignored; a file
 * named after sink that breaks the naming rule fails the test; temporary
 * files (an interrupted write's) are counted in temps, not listed. Sorted by (shard, first, key). */
void rn_sf_objs_load(const char *root, const char *sub, const char *sink, uint32_t nshards, rn_sf_objs_t *o);
void rn_sf_objs_free(rn_sf_objs_t *o);

/* The naming rule's ranges: first <= last, and per (shard, prefix) the
 * objects' [first, last] ranges never overlap. Fails naming the two objects. */
void rn_sf_objs_check_ranges(const rn_sf_objs_t *o);

/* Mirror the bucket's objects under prefix into dir/<key> (tier_s3.py mirror;
 * s3rver fails a LIST of more than 1000 keys, so callers mirror small prefixes). */
void rn_sf_mirror(rn_sinkfx_t *f, const char *prefix, const char *dir);

/* Call fn for every line (without its '\n') of an NDJSON object, gzip'd or
 * not; fails if the file cannot be read or its last line is unterminated.
 * Returns the number of lines. */
uint64_t rn_sf_lines(const char *path, void (*fn)(void *arg, const char *line, size_t len), void *arg);

/* ---- producing ---------------------------------------------------------------- */

/* Produce n records to stream through librunnel (key and value from make,
 * which writes the value into buf (cap bytes) and returns its length, and
 * the key into key (32 bytes)), flush, and fail unless every one was
 * acknowledged. */
void rn_sf_produce(rn_sinkfx_t *f, const char *stream, uint32_t n,
                   size_t (*make)(void *arg, uint32_t i, char *key, char *buf, size_t cap), void *arg);

/* ---- peers -------------------------------------------------------------------- */

/* The node_modules directory holding @duckdb/node-api and hyparquet
 * (tests/support/sinkpeers-install.sh node) in out; false with why when it
 * cannot be installed here (the caller skips). */
bool rn_sf_node_path(char *out, size_t cap, char *why, size_t whylen);

/* Run `/usr/bin/python3 tests/conformance/sink/pipeline.py args...` (or any
 * argv) and print its output; returns its exit status. */
int rn_sf_run_print(const char *const *argv);

/* The tests' source paths (set by CMake). */
const char *rn_sf_conformance_dir(void);
const char *rn_sf_support_dir(void);
const char *rn_sf_python(void);

#endif
