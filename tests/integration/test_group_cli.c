/*
 * test_group_cli.c — lag and the `runnelctl group` verbs against the real
 * runneld:
 *
 *   - lag: N records on a 4-shard stream, a librunnel member consumes
 *     exactly M and closes (commit + leave); `runnelctl --json group
 *     describe` reports lag_records = end_offset - checkpoint per shard,
 *     summing to N - M (also in totals), lag_ms >= 0 where a commit is known;
 *   - the admin verbs: create (EEXIST the second time), list, describe
 *     (ENOGROUP), reset --to OFFSET/--shard/latest/earliest/ISO time, and
 *     reset/delete refused with EGROUPACTIVE while a member is joined,
 *     accepted once it left; usage errors exit 2, failures exit 1 with one
 *     line on stderr.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grouptest.h"

#define N 200
#define M 70

static json_t *parse_json(const char *text) {
  json_error_t jerr;
  json_t *doc = json_loads(text, 0, &jerr);
  if (!doc) fail_msg("runnelctl --json printed no JSON (%s):\n%s", jerr.text, text);
  return doc;
}

static json_int_t jint(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  if (!json_is_integer(v)) fail_msg("no integer \"%s\"", key);
  return json_integer_value(v);
}

/* An integer, or `unknown` when the field is JSON null (unknown is never 0). */
static json_int_t jint_or_null(json_t *o, const char *key, json_int_t unknown) {
  json_t *v = json_object_get(o, key);
  if (json_is_null(v)) return unknown;
  if (!json_is_integer(v)) fail_msg("no integer or null \"%s\"", key);
  return json_integer_value(v);
}

static size_t lines(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static void test_lag_after_consuming_m_of_n(void **state) {
  rn_gt_t *g = *state;
  rn_gt_create_stream(g, "lag", 4);
  rn_gt_produced_t p = {0};
  rn_gt_produce(g, "lag", "l", N, &p);

  rn_group_conf_t conf;
  rn_group_conf_init(&conf);
  conf.start_kind = RN_POS_EARLIEST;
  rn_group_consumer_t *gc = NULL;
  rn_err_t err = rn_group_consumer_new(g->cl, "lag", "G", &conf, &gc);
  if (err) fail_msg("join: %s: %s", rn_err_name(err), rn_last_error_message());
  size_t got = 0;
  uint64_t deadline = rn_gt_now_ms() + 30000;
  while (got < M) {
    if (rn_gt_now_ms() > deadline) fail_msg("consumed only %zu records", got);
    const rn_record_t *rec;
    err = rn_group_poll(gc, 500, &rec, NULL);
    if (err == RN_EAGAIN) continue;
    if (err) fail_msg("poll: %s: %s", rn_err_name(err), rn_last_error_message());
    got++;
  }
  /* close commits the M records (the last one included) and leaves */
  assert_int_equal(rn_group_consumer_close(gc), 0);

  char *out, *errs;
  assert_int_equal(rn_gt_ctl(g, &out, &errs, "--json", "group", "describe", "lag", "G", NULL), 0);
  json_t *doc = parse_json(out);
  assert_int_equal(jint(doc, "member_count"), 0);
  json_t *shards = json_object_get(doc, "shards");
  assert_true(json_is_array(shards));
  assert_int_equal(json_array_size(shards), 4);
  json_int_t sum = 0, consumed = 0, max_ms = -1;
  size_t i;
  json_t *s;
  json_array_foreach(shards, i, s) {
    json_int_t lag = jint(s, "lag_records"), end = jint(s, "end_offset"), ck = jint(s, "checkpoint");
    json_int_t start = jint(s, "start_offset"), lag_ms = jint_or_null(s, "lag_ms", -1),
               ck_ms = jint_or_null(s, "checkpoint_ms", 0);
    assert_int_equal(lag, end - ck);
    sum += lag;
    consumed += ck - start;
    if (ck_ms > 0) assert_true(lag_ms >= 0); /* committed: known */
    if (lag == 0 && ck_ms > 0) assert_int_equal(lag_ms, 0); /* caught up */
    assert_true(lag_ms >= -1);
    if (ck_ms == 0) assert_true(json_is_null(json_object_get(s, "lag_ms"))); /* never committed: unknown */
    if (lag_ms > max_ms) max_ms = lag_ms;
  }
  assert_int_equal(sum, N - M);
  assert_int_equal(consumed, M);
  json_t *totals = json_object_get(doc, "totals");
  assert_true(json_is_object(totals));
  assert_int_equal(jint(totals, "lag_records"), N - M);
  assert_int_equal(jint(totals, "lag_ms"), max_ms);
  assert_true(jint(totals, "lag_ms") >= 0);
  json_decref(doc);
  free(out);
  free(errs);

  /* The table says the same. */
  assert_int_equal(rn_gt_ctl(g, &out, &errs, "group", "describe", "lag", "G", NULL), 0);
  char want[64];
  snprintf(want, sizeof(want), "%d records", N - M);
  assert_non_null(strstr(out, want));
  assert_non_null(strstr(out, "LAG-RECORDS"));
  assert_non_null(strstr(out, "shardId-000000000003"));
  free(out);
  free(errs);
  rn_gt_produced_free(&p);
}

static bool one_member(const rn_group_desc_t *d, const void *arg) {
  (void)arg;
  return d->member_count == 1;
}

static bool one_member_caught_up(const rn_group_desc_t *d, const void *arg) {
  return one_member(d, arg) && rn_gt_caught_up(d, arg);
}

static void test_group_admin_verbs(void **state) {
  rn_gt_t *g = *state;
  char *out, *err;
  rn_group_desc_t *d;
  rn_gt_create_stream(g, "adm", 4);
  rn_gt_produced_t p = {0};
  rn_gt_produce(g, "adm", "c", 40, &p);
  uint64_t end[4] = {0};
  for (size_t i = 0; i < p.n; i++) end[p.shard[i]]++;
  assert_true(end[0] >= 2 && end[1] >= 2); /* deterministic keys: a fixed spread */

  /* create; a second create is a one-line failure */
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "create", "adm", "G1", "--from", "earliest", NULL), 0);
  assert_non_null(strstr(out, "created group"));
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "create", "adm", "G1", NULL), 1);
  assert_non_null(strstr(err, "EEXIST"));
  assert_int_equal(lines(err), 1);
  free(out);
  free(err);

  /* list */
  assert_int_equal(rn_gt_ctl(g, &out, &err, "--json", "group", "list", "adm", NULL), 0);
  json_t *doc = parse_json(out);
  json_t *groups = json_object_get(doc, "groups");
  assert_int_equal(json_array_size(groups), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(groups, 0), "group")), "G1");
  assert_int_equal(jint(json_array_get(groups, 0), "lag_records"), 40);
  json_decref(doc);
  free(out);
  free(err);

  /* describe of a missing group */
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "describe", "adm", "nope", NULL), 1);
  assert_non_null(strstr(err, "ENOGROUP"));
  assert_int_equal(lines(err), 1);
  free(out);
  free(err);

  /* reset: an OFFSET in two shards, then latest, earliest, an ISO time */
  /* without --execute: the plan, nothing changed */
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "reset", "adm", "G1", "--to", "2", "--shard", "0", "--shard",
                             "shardId-000000000001", NULL),
                   0);
  assert_non_null(strstr(out, "plan to reset group \"G1\" of stream \"adm\" --to 2 --shard 0,1:\n"));
  assert_non_null(strstr(out, "SHARD                 CHECKPOINT  NEW\n"));
  assert_non_null(strstr(out, "nothing changed: add --execute to apply\n"));
  free(out);
  free(err);
  d = rn_gt_describe(g, "adm", "G1");
  assert_int_equal(rn_gt_total_lag(d), 40);
  rn_group_desc_free(d);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "reset", "adm", "G1", "--to", "2", "--shard", "0", "--shard",
                             "shardId-000000000001", "--execute", NULL),
                   0);
  assert_non_null(strstr(out, "reset group \"G1\" of stream \"adm\" --to 2 --shard 0,1:\n"));
  free(out);
  free(err);
  d = rn_gt_describe(g, "adm", "G1");
  for (size_t s = 0; s < d->shard_count; s++) {
    uint32_t sh = d->shards[s].shard;
    assert_int_equal(d->shards[s].end_offset, end[sh]);
    assert_int_equal(d->shards[s].checkpoint, sh <= 1 ? 2 : 0);
  }
  assert_int_equal(rn_gt_total_lag(d), 40 - 4);
  rn_group_desc_free(d);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "--json", "group", "reset", "adm", "G1", "--to", "latest", "--execute", NULL),
                   0);
  doc = parse_json(out);
  assert_int_equal(jint(json_object_get(doc, "totals"), "lag_records"), 0);
  json_decref(doc);
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "reset", "adm", "G1", "--to", "earliest", "--shard", "2,3", "--execute",
                             NULL),
                   0);
  free(out);
  free(err);
  d = rn_gt_describe(g, "adm", "G1");
  assert_int_equal(rn_gt_total_lag(d), end[2] + end[3]);
  rn_group_desc_free(d);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "reset", "adm", "G1", "--to", "2000-01-01T00:00:00Z", "--execute", NULL),
                   0);
  free(out);
  free(err);
  d = rn_gt_describe(g, "adm", "G1");
  assert_int_equal(rn_gt_total_lag(d), 40); /* every record is younger */
  rn_group_desc_free(d);

  /* usage errors: exit 2 */
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "reset", "adm", "G1", NULL), 2);
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "reset", "adm", "G1", "--to", "soon", NULL), 2);
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "consume", "adm", "--group", "G1", "--shard", "1", NULL), 2);
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "--help", NULL), 0);
  assert_true(strncmp(out, "usage: runnelctl group", 22) == 0);
  free(out);
  free(err);

  /* With a member: reset and delete are refused. */
  pid_t member = rn_gt_spawn_ctl(g, "member", "consume", "adm", "--group", "G1", "--follow", NULL);
  d = rn_gt_wait(g, "adm", "G1", one_member, NULL, 30000, "the member joined");
  rn_group_desc_free(d);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "reset", "adm", "G1", "--to", "earliest", "--execute", NULL), 1);
  assert_non_null(strstr(err, "EGROUPACTIVE"));
  assert_int_equal(lines(err), 1);
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "delete", "adm", "G1", NULL), 1);
  assert_non_null(strstr(err, "EGROUPACTIVE"));
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "describe", "adm", "G1", NULL), 0);
  assert_non_null(strstr(out, "runnelctl")); /* the member's client id */
  free(out);
  free(err);
  /* It reads (and commits) the 40 records from the ISO-time reset, then
   * stops cleanly. */
  d = rn_gt_wait(g, "adm", "G1", one_member_caught_up, NULL, 30000, "the member read everything");
  rn_group_desc_free(d);
  assert_int_equal(rn_gt_signal(g, member, SIGTERM), 0);
  out = rn_gt_slurp(g, "member", "out");
  assert_int_equal(lines(out), 40);
  free(out);

  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "delete", "adm", "G1", NULL), 0);
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "list", "adm", NULL), 0);
  assert_string_equal(out, "no groups\n");
  free(out);
  free(err);
  rn_gt_produced_free(&p);
}

/* reset refuses a group that does not exist (a misspelt name must not
 * become a new group) unless --create; --shift-by moves by N and clamps. */
static void test_reset_create_and_shift(void **state) {
  rn_gt_t *g = *state;
  char *out, *err;
  rn_gt_create_stream(g, "rs", 2);
  rn_gt_produced_t p = {0};
  rn_gt_produce(g, "rs", "r", 20, &p);
  uint64_t end[2] = {0};
  for (size_t i = 0; i < p.n; i++) end[p.shard[i]]++;

  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "reset", "rs", "typo", "--to", "earliest", "--execute", NULL), 1);
  assert_string_equal(err, "runnelctl: stream \"rs\" group \"typo\": consumer group not found (ENOGROUP); give "
                           "--create to create it\n");
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "list", "rs", NULL), 0);
  assert_string_equal(out, "no groups\n"); /* not created */
  free(out);
  free(err);

  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "reset", "rs", "G", "--to", "latest", "--create", "--execute",
                             NULL),
                   0);
  assert_non_null(strstr(out, "(creating the group)"));
  free(out);
  free(err);
  rn_group_desc_t *d = rn_gt_describe(g, "rs", "G");
  assert_int_equal(rn_gt_total_lag(d), 0);
  rn_group_desc_free(d);

  /* back by 3 in shard 0 only; clamped at the start in a plan for both */
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "reset", "rs", "G", "--shift-by", "-3", "--shard", "0",
                             "--execute", NULL),
                   0);
  free(out);
  free(err);
  d = rn_gt_describe(g, "rs", "G");
  for (size_t i = 0; i < d->shard_count; i++)
    assert_int_equal(d->shards[i].checkpoint, d->shards[i].shard == 0 ? end[0] - 3 : end[1]);
  rn_group_desc_free(d);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "--json", "group", "reset", "rs", "G", "--shift-by", "-1000", NULL), 0);
  json_t *doc = parse_json(out);
  assert_false(json_is_true(json_object_get(doc, "executed")));
  json_t *plan = json_object_get(doc, "plan");
  assert_int_equal(json_array_size(plan), 2);
  for (size_t i = 0; i < 2; i++) assert_int_equal(jint(json_array_get(plan, i), "new_checkpoint"), 0);
  json_decref(doc);
  free(out);
  free(err);
  /* an offset past every shard's end: refused, with the @MS hint for a ms-looking number */
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "reset", "rs", "G", "--to", "1714564800000", "--execute", NULL), 1);
  assert_non_null(strstr(err, "offset 1714564800000 is past the end of every chosen shard (end offsets: 0:"));
  assert_non_null(strstr(err, "write @1714564800000 for a time\n"));
  assert_int_equal(lines(err), 1);
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "reset", "rs", "G", "--to", "1", "--shift-by", "1", NULL), 2);
  free(out);
  free(err);
  rn_gt_produced_free(&p);
}

/* group list without a stream lists the groups of every stream. */
static void test_list_every_stream(void **state) {
  rn_gt_t *g = *state;
  char *out, *err;
  rn_gt_create_stream(g, "a1", 1);
  rn_gt_create_stream(g, "b2", 2);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "create", "a1", "ga", NULL), 0);
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "create", "b2", "gb", NULL), 0);
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "--json", "group", "list", NULL), 0);
  json_t *doc = parse_json(out);
  json_t *groups = json_object_get(doc, "groups");
  assert_int_equal(json_array_size(groups), 2);
  bool seen_a = false, seen_b = false;
  for (size_t i = 0; i < 2; i++) {
    json_t *o = json_array_get(groups, i);
    const char *st = json_string_value(json_object_get(o, "stream")), *gr = json_string_value(json_object_get(o, "group"));
    seen_a |= strcmp(st, "a1") == 0 && strcmp(gr, "ga") == 0;
    seen_b |= strcmp(st, "b2") == 0 && strcmp(gr, "gb") == 0;
    json_t *lm = json_object_get(o, "lag_ms");
    assert_true(json_is_null(lm) || json_integer_value(lm) >= 0); /* unknown is null, never -1 */
  }
  assert_true(seen_a && seen_b);
  json_decref(doc);
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "list", NULL), 0);
  assert_non_null(strstr(out, "STREAM  GROUP  MEMBERS  LAG-RECORDS  LAG-MS\n"));
  assert_non_null(strstr(out, "a1      ga     0        0  "));
  free(out);
  free(err);
}

static bool two_prints(rn_gt_t *g) {
  char *o = rn_gt_slurp(g, "watch", "out");
  const char *first = strstr(o, "group:            W\n");
  bool two = first && strstr(first + 1, "group:            W\n");
  free(o);
  return two;
}

/* describe --watch on a non-terminal prints again and again until SIGINT. */
static void test_describe_watch(void **state) {
  rn_gt_t *g = *state;
  char *out, *err;
  rn_gt_create_stream(g, "wt", 1);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "group", "create", "wt", "W", NULL), 0);
  free(out);
  free(err);
  pid_t pid = rn_gt_spawn_ctl(g, "watch", "group", "describe", "wt", "W", "--watch", "--interval", "100ms", NULL);
  uint64_t deadline = rn_gt_now_ms() + 30000;
  while (!two_prints(g)) {
    if (rn_gt_now_ms() > deadline) fail_msg("describe --watch did not print twice");
    struct timespec ts = {0, 20 * 1000000L}; /* polling a file for a condition, not timing anything */
    nanosleep(&ts, NULL);
  }
  assert_int_equal(rn_gt_signal(g, pid, SIGINT), 0);
  out = rn_gt_slurp(g, "watch", "out");
  assert_null(strstr(out, "\033[")); /* no screen control codes into a file */
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_lag_after_consuming_m_of_n, rn_gt_setup, rn_gt_teardown),
      cmocka_unit_test_setup_teardown(test_group_admin_verbs, rn_gt_setup, rn_gt_teardown),
      cmocka_unit_test_setup_teardown(test_reset_create_and_shift, rn_gt_setup, rn_gt_teardown),
      cmocka_unit_test_setup_teardown(test_list_every_stream, rn_gt_setup, rn_gt_teardown),
      cmocka_unit_test_setup_teardown(test_describe_watch, rn_gt_setup, rn_gt_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
