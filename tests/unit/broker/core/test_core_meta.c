/*
 * test_core_meta.c — core's metadata: streams, hash ranges and shard states
 * survive a close/reopen; a file written by the broker before shard entries
 * existed (shard count only, built here with the protobuf messages) loads
 * with the ranges derived exactly as before (the equal split); entries
 * with ranges, a CLOSED state and parent/child links load as written; a
 * damaged file refuses to open; and a caller's meta store (the interface)
 * is used instead of the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "coretest.h"
#include "runnel.pb-c.h"

static int setup(void **state) {
  ct_t *t = calloc(1, sizeof(*t));
  ct_init(t);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  ct_t *t = *state;
  ct_fini(t);
  free(t);
  return 0;
}

static void write_meta(ct_t *t, const Runnel__BrokerMeta *m) {
  char path[512];
  snprintf(path, sizeof path, "%s/meta", t->dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/meta/broker.meta", t->dir);
  size_t len = runnel__broker_meta__get_packed_size(m);
  uint8_t *buf = malloc(len + 1);
  runnel__broker_meta__pack(m, buf);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(buf, 1, len, f), len);
  fclose(f);
  free(buf);
}

static void test_round_trip(void **state) {
  ct_t *t = *state;
  ct_open(t);
  assert_int_equal(ct_create(t, "a", 3), 0);
  assert_int_equal(ct_create(t, "b", 1), 0);
  assert_int_equal(ct_produce(t, "a", 1, 2, 1000, NULL), 0);
  ct_desc_t before;
  ct_describe(t, "a", &before);
  ct_close(t);
  ct_open(t);
  ct_desc_t after;
  ct_describe(t, "a", &after);
  assert_int_equal(after.err, 0);
  assert_int_equal(after.nshards, 3);
  for (int i = 0; i < 3; i++) {
    assert_memory_equal(after.shards[i].hash_start, before.shards[i].hash_start, 16);
    assert_memory_equal(after.shards[i].hash_end, before.shards[i].hash_end, 16);
    assert_int_equal(after.shards[i].state, RN_CORE_SHARD_OPEN);
  }
  assert_int_equal(after.shards[1].end_offset, 2);
  ct_describe(t, "b", &after);
  assert_int_equal(after.err, 0);
}

/* A broker before issue 11 wrote shard_count only: the ranges are derived
 * as they always were (the equal split), byte for byte. */
static void test_old_format_loads(void **state) {
  ct_t *t = *state;
  /* The reference: what a new stream of 5 shards gets. */
  ct_open(t);
  assert_int_equal(ct_create(t, "ref", 5), 0);
  ct_desc_t ref;
  ct_describe(t, "ref", &ref);
  ct_close(t);

  Runnel__StreamConfig c = RUNNEL__STREAM_CONFIG__INIT;
  c.name = (char *)(uintptr_t)"old";
  c.shard_count = 5;
  c.retention_ms = 3600000;
  Runnel__StreamMeta sm = RUNNEL__STREAM_META__INIT;
  sm.config = &c;
  sm.created_ms = 1700000000000;
  sm.uid = 77;
  Runnel__StreamMeta *smp = &sm;
  Runnel__BrokerMeta m = RUNNEL__BROKER_META__INIT;
  m.n_streams = 1;
  m.streams = &smp;
  m.next_uid = 78;
  m.producer_id_limit = 1;
  write_meta(t, &m);

  ct_open(t);
  ct_desc_t d;
  ct_describe(t, "old", &d);
  assert_int_equal(d.err, 0);
  assert_int_equal(d.nshards, 5);
  assert_int_equal(d.retention_ms, 3600000);
  for (int i = 0; i < 5; i++) {
    assert_memory_equal(d.shards[i].hash_start, ref.shards[i].hash_start, 16);
    assert_memory_equal(d.shards[i].hash_end, ref.shards[i].hash_end, 16);
    assert_int_equal(d.shards[i].state, RN_CORE_SHARD_OPEN);
  }
  /* "ref" is gone: the file above replaced the metadata. */
  ct_describe(t, "ref", &d);
  assert_int_equal(d.err, RN_ENOSTREAM);
  /* Rewritten in the new format on open; a second open reads that. */
  ct_close(t);
  ct_open(t);
  ct_describe(t, "old", &d);
  assert_int_equal(d.err, 0);
  assert_memory_equal(d.shards[4].hash_end, ref.shards[4].hash_end, 16);
}

/* Shard entries as a resharded stream would have them. */
static void test_ranges_and_states_load(void **state) {
  ct_t *t = *state;
  uint8_t lo0[16] = {0}, hi0[16], lo1[16] = {0}, hi1[16], lo2[16] = {0x80}, hi2[16];
  memset(hi0, 0xff, 16);
  memset(hi1, 0xff, 16);
  hi1[0] = 0x7f;
  memset(hi2, 0xff, 16);
  uint32_t p0[1] = {0}, ch[2] = {1, 2};
  Runnel__ShardMeta s[3];
  Runnel__ShardMeta *sp[3];
  for (int i = 0; i < 3; i++) {
    runnel__shard_meta__init(&s[i]);
    sp[i] = &s[i];
  }
  s[0].hash_key_start = (ProtobufCBinaryData){16, lo0};
  s[0].hash_key_end = (ProtobufCBinaryData){16, hi0};
  s[0].state = RUNNEL__SHARD_META_STATE__SHARD_META_CLOSED;
  s[0].n_children = 2;
  s[0].children = ch;
  s[1].hash_key_start = (ProtobufCBinaryData){16, lo1};
  s[1].hash_key_end = (ProtobufCBinaryData){16, hi1};
  s[1].n_parents = 1;
  s[1].parents = p0;
  s[2].hash_key_start = (ProtobufCBinaryData){16, lo2};
  s[2].hash_key_end = (ProtobufCBinaryData){16, hi2};
  s[2].n_parents = 1;
  s[2].parents = p0;
  Runnel__StreamConfig c = RUNNEL__STREAM_CONFIG__INIT;
  c.name = (char *)(uintptr_t)"split";
  c.shard_count = 3;
  Runnel__StreamMeta sm = RUNNEL__STREAM_META__INIT;
  sm.config = &c;
  sm.uid = 5;
  sm.n_shards = 3;
  sm.shards = sp;
  Runnel__StreamMeta *smp = &sm;
  Runnel__BrokerMeta m = RUNNEL__BROKER_META__INIT;
  m.n_streams = 1;
  m.streams = &smp;
  m.next_uid = 6;
  write_meta(t, &m);

  ct_open(t);
  for (int round = 0; round < 2; round++) { /* as written, then as core rewrote it */
    ct_desc_t d;
    ct_describe(t, "split", &d);
    assert_int_equal(d.err, 0);
    assert_int_equal(d.shards[0].state, RN_CORE_SHARD_CLOSED);
    assert_int_equal(d.shards[0].nchildren, 2);
    assert_int_equal(d.children[0][0], 1);
    assert_int_equal(d.children[0][1], 2);
    assert_int_equal(d.shards[1].state, RN_CORE_SHARD_OPEN);
    assert_int_equal(d.shards[1].nparents, 1);
    assert_int_equal(d.parents[1][0], 0);
    assert_memory_equal(d.shards[1].hash_end, hi1, 16);
    assert_memory_equal(d.shards[2].hash_start, lo2, 16);
    ct_close(t);
    ct_open(t);
  }
}

static void test_damaged_file_refuses(void **state) {
  ct_t *t = *state;
  char path[512];
  snprintf(path, sizeof path, "%s/meta", t->dir);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/meta/broker.meta", t->dir);
  FILE *f = fopen(path, "wb");
  fwrite("\xff\xff\xff", 1, 3, f);
  fclose(f);
  rn_core_opts_t o;
  rn_core_opts_default(&o);
  o.loop = &t->loop;
  o.data_dir = t->dir;
  rn_core_t *core = NULL;
  char why[512];
  assert_int_equal(rn_core_open(&o, &core, why, sizeof why), RN_ECORRUPT);
  assert_null(core);
  assert_non_null(strstr(why, "is damaged"));
}

/* ---- the store interface ------------------------------------------------------------- */

typedef struct mem_store {
  rn_core_meta_store_t base;
  uint8_t *buf;
  size_t len;
  int loads, saves;
} mem_store_t;

static rn_err_t mem_load(rn_core_meta_store_t *ms, uint8_t **buf, size_t *len) {
  mem_store_t *m = (mem_store_t *)ms;
  m->loads++;
  if (!m->buf) return RN_ENOENT;
  *buf = malloc(m->len + 1);
  memcpy(*buf, m->buf, m->len);
  *len = m->len;
  return 0;
}

static rn_err_t mem_save(rn_core_meta_store_t *ms, const uint8_t *buf, size_t len) {
  mem_store_t *m = (mem_store_t *)ms; /* one save at a time (core's contract) */
  free(m->buf);
  m->buf = malloc(len + 1);
  memcpy(m->buf, buf, len);
  m->len = len;
  m->saves++;
  return 0;
}

static void mem_destroy(rn_core_meta_store_t *ms) { (void)ms; }

static const rn_core_meta_store_ops_t mem_ops = {mem_load, mem_save, mem_destroy};

static void test_custom_store(void **state) {
  ct_t *t = *state;
  mem_store_t ms = {.base = {&mem_ops}};
  t->meta = &ms.base;
  ct_open(t);
  assert_int_equal(ms.loads, 1);
  int saves = ms.saves;
  assert_int_equal(ct_create(t, "m", 2), 0);
  assert_true(ms.saves > saves);
  ct_close(t);
  /* Nothing went to the file store. */
  char path[512];
  snprintf(path, sizeof path, "%s/meta/broker.meta", t->dir);
  struct stat sb;
  assert_int_not_equal(stat(path, &sb), 0);
  ct_open(t);
  ct_desc_t d;
  ct_describe(t, "m", &d);
  assert_int_equal(d.err, 0);
  assert_int_equal(d.nshards, 2);
  ct_close(t);
  free(ms.buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_old_format_loads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ranges_and_states_load, setup, teardown),
      cmocka_unit_test_setup_teardown(test_damaged_file_refuses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_custom_store, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
