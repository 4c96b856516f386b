/*
 * test_engine_clock.c — the engine and the consumer groups read wall time
 * through rn_core_opts_t.clock (rn_base.h's rn_clock_t): a stream's and a
 * group's creation times are the injected clock's, and move when it moves;
 * a zeroed clock is the system's. Nothing here sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "coretest.h"
#include "native/dispatch.h" /* rn_native_handle: the wire translation */
#include "rn_core.h"
#include "server.h" /* rn_server_open_engine: core + groups as runneld opens them */

typedef struct fx {
  ct_t ct; /* first, so ct_teardown frees the fixture: the loop, the directory, core (ct.core) */
  int64_t now; /* the injected wall clock */
  unsigned reads;
} fx_t;

static int64_t fake_wall(void *arg) {
  fx_t *f = arg;
  f->reads++;
  return f->now;
}

static void open_engine(fx_t *f, bool inject) {
  rn_core_opts_t eo;
  ct_opts(&f->ct, &eo);
  if (inject) {
    eo.clock.wall_ms = fake_wall;
    eo.clock.arg = f;
  }
  char why[512];
  if (rn_server_open_engine(&eo, &f->ct.core, why, sizeof(why)) != 0) fail_msg("rn_server_open_engine: %s", why);
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  ct_init(&f->ct);
  f->now = 1234567890123ll; /* 2009-02-13T23:31:30.123Z */
  *state = f;
  return 0;
}

static Runnel__Response *call(fx_t *f, Runnel__Request *req) {
  Runnel__Response *r = ct_call(&f->ct, rn_native_handle, req);
  assert_null(r->error);
  return r;
}

static void create_stream(fx_t *f, const char *name) { ct_call_create(&f->ct, rn_native_handle, name, 1); }

static int64_t stream_created(fx_t *f, const char *name) {
  Runnel__DescribeStreamRequest dr;
  runnel__describe_stream_request__init(&dr);
  dr.name = (char *)(uintptr_t)name;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_DESCRIBE_STREAM;
  req.describe_stream = &dr;
  Runnel__Response *r = call(f, &req);
  int64_t t = r->describe_stream->stream->created_ms;
  runnel__response__free_unpacked(r, NULL);
  return t;
}

static int64_t group_created(fx_t *f, const char *stream, const char *group) {
  Runnel__GroupCreateRequest gc;
  runnel__group_create_request__init(&gc);
  gc.stream = (char *)(uintptr_t)stream;
  gc.group = (char *)(uintptr_t)group;
  gc.start_kind = RUNNEL__POSITION_KIND__POSITION_EARLIEST;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_CREATE;
  req.group_create = &gc;
  runnel__response__free_unpacked(call(f, &req), NULL);
  Runnel__GroupDescribeRequest gd;
  runnel__group_describe_request__init(&gd);
  gd.stream = gc.stream;
  gd.group = gc.group;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_GROUP_DESCRIBE;
  req.group_describe = &gd;
  Runnel__Response *r = call(f, &req);
  int64_t t = r->group_describe->group->created_ms;
  runnel__response__free_unpacked(r, NULL);
  return t;
}

static void test_injected_clock(void **state) {
  fx_t *f = *state;
  open_engine(f, true);
  create_stream(f, "clocked");
  assert_int_equal(stream_created(f, "clocked"), 1234567890123ll);
  assert_int_equal(group_created(f, "clocked", "g1"), 1234567890123ll);
  f->now += 86400000ll * 365;
  create_stream(f, "later");
  assert_int_equal(stream_created(f, "later"), 1234567890123ll + 86400000ll * 365);
  assert_int_equal(group_created(f, "later", "g2"), 1234567890123ll + 86400000ll * 365);
  assert_int_equal(stream_created(f, "clocked"), 1234567890123ll); /* unchanged */
  assert_true(f->reads >= 4);
}

static void test_system_clock_by_default(void **state) {
  fx_t *f = *state;
  open_engine(f, false);
  int64_t before = rn_clock_wall_ms(NULL);
  create_stream(f, "real");
  int64_t created = stream_created(f, "real");
  assert_true(created >= before && created <= rn_clock_wall_ms(NULL));
  assert_int_equal(f->reads, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_injected_clock, setup, ct_teardown),
      cmocka_unit_test_setup_teardown(test_system_clock_by_default, setup, ct_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
