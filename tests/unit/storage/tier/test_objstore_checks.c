/*
 * test_objstore_checks.c — the backend-independent object-store checks
 * (test_objstore_checks.h): every operation, ranges, missing keys, LIST
 * order and prefixes, overwrite, keys that need escaping, put_file, the
 * async contract (an error return means no callback; otherwise exactly
 * one), many operations in flight, the counters, destroy with operations in
 * flight. Waiting is rn_objstore_wait only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_objstore_checks.h"
#include "testutil.h"

#define WAIT_ROUNDS 600 /* rn_objstore_wait calls of 100 ms without progress: a minute */

void os_res_free(os_res_t *x) {
  free(x->data);
  for (size_t i = 0; i < x->n; i++) free(x->keys[i]);
  free(x->keys);
  free(x->sizes);
  free(x->mtimes);
  memset(x, 0, sizeof *x);
}

static void cb_plain(void *arg, const rn_obj_result_t *r) {
  os_res_t *x = arg;
  x->calls++;
  x->r = *r;
}

static void cb_get(void *arg, const rn_obj_result_t *r, uint8_t *data, size_t len) {
  os_res_t *x = arg;
  x->calls++;
  x->r = *r;
  if (r->err) assert_null(data);
  free(x->data);
  x->data = data;
  x->len = len;
}

static void cb_list(void *arg, const rn_obj_result_t *r, const rn_obj_entry_t *e, size_t n) {
  os_res_t *x = arg;
  x->calls++;
  x->r = *r;
  x->keys = calloc(n + 1, sizeof *x->keys);
  x->sizes = calloc(n + 1, sizeof *x->sizes);
  x->mtimes = calloc(n + 1, sizeof *x->mtimes);
  for (size_t i = 0; i < n; i++) {
    x->keys[i] = strdup(e[i].key);
    x->sizes[i] = e[i].size;
    x->mtimes[i] = e[i].mtime_ms;
  }
  x->n = n;
}

rn_obj_cb os_cb(void) { return cb_plain; }
rn_obj_get_cb os_get_cb(void) { return cb_get; }
rn_obj_list_cb os_list_cb(void) { return cb_list; }

void os_wait(rn_objstore_t *os, os_res_t *x) {
  int idle = 0;
  while (x->calls == 0) {
    if (rn_objstore_wait(os, 100) > 0)
      idle = 0;
    else if (++idle > WAIT_ROUNDS)
      fail_msg("no completion within a minute (%u in flight)", rn_objstore_inflight(os));
  }
}

void os_wait_idle(rn_objstore_t *os) {
  int idle = 0;
  while (rn_objstore_inflight(os)) {
    if (rn_objstore_wait(os, 100) > 0)
      idle = 0;
    else if (++idle > WAIT_ROUNDS)
      fail_msg("no completion within a minute (%u in flight)", rn_objstore_inflight(os));
  }
}

const char *os_key(os_fx_t *fx, const char *key) {
  static char buf[1100];
  snprintf(buf, sizeof buf, "%s%s", fx->prefix, key);
  return buf;
}

static rn_err_t finish(os_fx_t *fx, os_res_t *x, rn_err_t submit) {
  if (submit) {
    assert_int_equal(x->calls, 0);
    return submit;
  }
  os_wait(fx->os, x);
  /* exactly one: nothing else arrives for it */
  while (rn_objstore_poll(fx->os) > 0) {
  }
  assert_int_equal(x->calls, 1);
  return x->r.err;
}

rn_err_t os_put(os_fx_t *fx, const char *key, const void *data, size_t len, os_res_t *x) {
  os_res_free(x);
  return finish(fx, x, rn_objstore_put_mem(fx->os, os_key(fx, key), data, len, cb_plain, x));
}

rn_err_t os_put_file(os_fx_t *fx, const char *key, const char *path, uint64_t len, os_res_t *x) {
  os_res_free(x);
  return finish(fx, x, rn_objstore_put_file(fx->os, os_key(fx, key), path, len, cb_plain, x));
}

rn_err_t os_get(os_fx_t *fx, const char *key, uint64_t off, uint64_t len, os_res_t *x) {
  os_res_free(x);
  return finish(fx, x, rn_objstore_get(fx->os, os_key(fx, key), off, len, cb_get, x));
}

rn_err_t os_head(os_fx_t *fx, const char *key, os_res_t *x) {
  os_res_free(x);
  return finish(fx, x, rn_objstore_head(fx->os, os_key(fx, key), cb_plain, x));
}

rn_err_t os_list(os_fx_t *fx, const char *prefix, os_res_t *x) {
  os_res_free(x);
  return finish(fx, x, rn_objstore_list(fx->os, os_key(fx, prefix), cb_list, x));
}

rn_err_t os_del(os_fx_t *fx, const char *key, os_res_t *x) {
  os_res_free(x);
  return finish(fx, x, rn_objstore_delete(fx->os, os_key(fx, key), cb_plain, x));
}

static uint8_t *pattern(size_t len, uint64_t seed) {
  uint8_t *p = malloc(len ? len : 1);
  uint64_t s = seed | 1;
  for (size_t i = 0; i < len; i++) p[i] = (uint8_t)rn_test_rand(&s);
  return p;
}

#define OK(expr)                                                                                       \
  do {                                                                                                 \
    rn_err_t e_ = (expr);                                                                              \
    if (e_) fail_msg("%s: %s (%s) %s", #expr, rn_err_name(e_), rn_strerror(e_), x.r.message);           \
  } while (0)

void os_check_put_get_head(os_fx_t *fx) {
  os_res_t x = {0};
  size_t len = 100000;
  uint8_t *d = pattern(len, 1);
  OK(os_put(fx, "obj", d, len, &x));
  assert_true(x.r.attempts >= 1);
  OK(os_get(fx, "obj", 0, 0, &x));
  assert_int_equal(x.len, len);
  assert_memory_equal(x.data, d, len);
  assert_int_equal(x.r.object_size, len);
  OK(os_head(fx, "obj", &x));
  assert_int_equal(x.r.object_size, len);
  assert_true(x.r.mtime_ms > 1600000000000LL); /* a real time, in ms */
  /* an empty object */
  OK(os_put(fx, "empty", d, 0, &x));
  OK(os_head(fx, "empty", &x));
  assert_int_equal(x.r.object_size, 0);
  OK(os_get(fx, "empty", 0, 0, &x));
  assert_int_equal(x.len, 0);
  assert_non_null(x.data);
  os_res_free(&x);
  free(d);
}

void os_check_ranges(os_fx_t *fx) {
  os_res_t x = {0};
  size_t len = 70001;
  uint8_t *d = pattern(len, 2);
  OK(os_put(fx, "r", d, len, &x));
  const struct {
    uint64_t off, len;
  } cases[] = {{0, 1}, {0, 4096}, {1, 1}, {12345, 5000}, {len - 1, 1}, {len - 10, 10}, {0, len}, {500, 0}, {len - 1, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    OK(os_get(fx, "r", cases[i].off, cases[i].len, &x));
    uint64_t want = cases[i].len ? cases[i].len : len - cases[i].off;
    assert_int_equal(x.len, want);
    assert_memory_equal(x.data, d + cases[i].off, (size_t)want);
    assert_int_equal(x.r.object_size, len);
  }
  /* at the very end, to the end: nothing, successfully */
  OK(os_get(fx, "r", len, 0, &x));
  assert_int_equal(x.len, 0);
  /* a range reaching past the end: the object is not what the caller knew */
  assert_int_equal(os_get(fx, "r", len - 5, 10, &x), RN_ECORRUPT);
  assert_null(x.data);
  assert_int_equal(os_get(fx, "r", len + 1, 0, &x), RN_ECORRUPT);
  assert_int_equal(os_get(fx, "r", len + 100, 5, &x), RN_ECORRUPT);
  assert_true(strlen(x.r.message) > 0);
  os_res_free(&x);
  free(d);
}

void os_check_missing(os_fx_t *fx) {
  os_res_t x = {0};
  assert_int_equal(os_get(fx, "nope", 0, 0, &x), RN_ENOENT);
  assert_null(x.data);
  assert_true(strstr(x.r.message, "nope") != NULL);
  assert_int_equal(os_get(fx, "nope/deeper", 10, 10, &x), RN_ENOENT);
  assert_int_equal(os_head(fx, "nope", &x), RN_ENOENT);
  OK(os_del(fx, "nope", &x)); /* idempotent */
  OK(os_list(fx, "nothing-here/", &x));
  assert_int_equal(x.n, 0);
  os_res_free(&x);
}

void os_check_overwrite_delete(os_fx_t *fx) {
  os_res_t x = {0};
  OK(os_put(fx, "k", "first version", 13, &x));
  OK(os_put(fx, "k", "second", 6, &x));
  OK(os_get(fx, "k", 0, 0, &x));
  assert_int_equal(x.len, 6);
  assert_memory_equal(x.data, "second", 6);
  OK(os_head(fx, "k", &x));
  assert_int_equal(x.r.object_size, 6);
  OK(os_del(fx, "k", &x));
  assert_int_equal(os_head(fx, "k", &x), RN_ENOENT);
  assert_int_equal(os_get(fx, "k", 0, 0, &x), RN_ENOENT);
  OK(os_del(fx, "k", &x)); /* again */
  os_res_free(&x);
}

void os_check_list(os_fx_t *fx) {
  os_res_t x = {0};
  const char *keys[] = {"l/b/d", "l/a", "l/ba", "l/b/c", "l/b/e/f", "m/x", "l/c0", "l/c"};
  size_t nk = sizeof keys / sizeof keys[0];
  for (size_t i = 0; i < nk; i++) OK(os_put(fx, keys[i], keys[i], strlen(keys[i]) + 1, &x));
  const struct {
    const char *prefix;
    const char *want[8];
  } cases[] = {
      {"l/", {"l/a", "l/b/c", "l/b/d", "l/b/e/f", "l/ba", "l/c", "l/c0"}},
      {"l/b", {"l/b/c", "l/b/d", "l/b/e/f", "l/ba"}},
      {"l/b/", {"l/b/c", "l/b/d", "l/b/e/f"}},
      {"l/c", {"l/c", "l/c0"}},
      {"m", {"m/x"}},
      {"l/z", {NULL}},
  };
  size_t pl = strlen(fx->prefix);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    OK(os_list(fx, cases[c].prefix, &x));
    size_t nw = 0;
    while (nw < 8 && cases[c].want[nw]) nw++;
    if (x.n != nw) fail_msg("list %s: %zu keys, want %zu", cases[c].prefix, x.n, nw);
    for (size_t i = 0; i < nw; i++) {
      assert_true(strncmp(x.keys[i], fx->prefix, pl) == 0);
      assert_string_equal(x.keys[i] + pl, cases[c].want[i]);
      assert_int_equal(x.sizes[i], strlen(cases[c].want[i]) + 1);
      assert_true(x.mtimes[i] > 1600000000000LL);
    }
  }
  /* deleting leaves the others listed */
  OK(os_del(fx, "l/b/c", &x));
  OK(os_del(fx, "l/b/d", &x));
  OK(os_list(fx, "l/b", &x));
  assert_int_equal(x.n, 2);
  assert_string_equal(x.keys[0] + pl, "l/b/e/f");
  assert_string_equal(x.keys[1] + pl, "l/ba");
  os_res_free(&x);
}

void os_check_special_keys(os_fx_t *fx) {
  os_res_t x = {0};
  /* characters SigV4's canonical URI escapes, an XML entity, UTF-8 */
  const char *keys[] = {"sp ace/a+b=c&d", "x/<tag>'\"", "u/\xc3\xa9t\xc3\xa9~_-.!*()", "p/%41%2F"};
  size_t nk = sizeof keys / sizeof keys[0];
  for (size_t i = 0; i < nk; i++) {
    OK(os_put(fx, keys[i], keys[i], strlen(keys[i]), &x));
    OK(os_get(fx, keys[i], 0, 0, &x));
    assert_int_equal(x.len, strlen(keys[i]));
    assert_memory_equal(x.data, keys[i], x.len);
    OK(os_head(fx, keys[i], &x));
  }
  size_t pl = strlen(fx->prefix);
  for (size_t i = 0; i < nk; i++) {
    char pre[8];
    snprintf(pre, sizeof pre, "%.2s", keys[i]);
    OK(os_list(fx, pre, &x));
    assert_int_equal(x.n, 1);
    assert_string_equal(x.keys[0] + pl, keys[i]);
  }
  for (size_t i = 0; i < nk; i++) {
    OK(os_del(fx, keys[i], &x));
    assert_int_equal(os_head(fx, keys[i], &x), RN_ENOENT);
  }
  os_res_free(&x);
}

void os_check_put_file(os_fx_t *fx, uint64_t bytes) {
  os_res_t x = {0};
  char path[700];
  snprintf(path, sizeof path, "%s/src-%" PRIu64, fx->dir, bytes);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(fd >= 0);
  /* the file is longer than what is put: only the first bytes go */
  size_t chunk = 1 << 20;
  uint64_t written = 0, seed = 3;
  uint8_t *buf = malloc(chunk);
  while (written < bytes + 777) {
    for (size_t i = 0; i < chunk; i++) buf[i] = (uint8_t)rn_test_rand(&seed);
    size_t n = bytes + 777 - written < chunk ? (size_t)(bytes + 777 - written) : chunk;
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    written += n;
  }
  close(fd);
  free(buf);
  OK(os_put_file(fx, "file.log", path, bytes, &x));
  OK(os_head(fx, "file.log", &x));
  assert_int_equal(x.r.object_size, bytes);
  OK(os_get(fx, "file.log", 0, 0, &x));
  assert_int_equal(x.len, bytes);
  size_t flen = 0;
  uint8_t *want = rn_test_read_file(path, &flen);
  assert_non_null(want);
  assert_memory_equal(x.data, want, (size_t)bytes);
  /* a range across what would be part boundaries */
  if (bytes > 10) {
    uint64_t off = bytes / 2 - 3;
    OK(os_get(fx, "file.log", off, 7, &x));
    assert_memory_equal(x.data, want + off, 7);
  }
  free(want);
  /* a source that is missing: an error, called back once */
  snprintf(path, sizeof path, "%s/no-such-source", fx->dir);
  assert_int_not_equal(os_put_file(fx, "file2.log", path, 10, &x), 0);
  os_res_free(&x);
}

void os_check_async_contract(os_fx_t *fx) {
  os_res_t x = {0};
  /* refused at submission: never called back */
  assert_int_equal(rn_objstore_put_mem(fx->os, "", (const uint8_t *)"a", 1, cb_plain, &x), RN_EINVAL);
  assert_int_equal(rn_objstore_put_mem(fx->os, "/abs", (const uint8_t *)"a", 1, cb_plain, &x), RN_EINVAL);
  assert_int_equal(rn_objstore_get(fx->os, "", 0, 0, cb_get, &x), RN_EINVAL);
  assert_int_equal(rn_objstore_head(fx->os, NULL, cb_plain, &x), RN_EINVAL);
  assert_int_equal(rn_objstore_list(fx->os, NULL, cb_list, &x), RN_EINVAL);
  assert_int_equal(rn_objstore_delete(fx->os, "k", NULL, &x), RN_EINVAL);
  assert_int_equal(rn_objstore_put_file(fx->os, "k", NULL, 1, cb_plain, &x), RN_EINVAL);
  assert_int_equal(rn_objstore_inflight(fx->os), 0);
  assert_int_equal(rn_objstore_poll(fx->os), 0);
  assert_int_equal(x.calls, 0);
  /* accepted: counted in flight until its callback, exactly once */
  assert_int_equal(rn_objstore_put_mem(fx->os, os_key(fx, "c"), (const uint8_t *)"abc", 3, cb_plain, &x), 0);
  assert_int_equal(rn_objstore_inflight(fx->os), 1);
  assert_int_equal(x.calls, 0); /* never from inside the submit */
  os_wait(fx->os, &x);
  assert_int_equal(rn_objstore_inflight(fx->os), 0);
  assert_int_equal(rn_objstore_poll(fx->os), 0);
  assert_int_equal(x.calls, 1);
  os_res_free(&x);
}

typedef struct chain {
  os_fx_t *fx;
  int puts_done, gets_done, bad;
  int n;
  uint8_t *data;
} chain_t;

typedef struct link {
  chain_t *c;
  int i;
} link_t;

static void chain_get_cb(void *arg, const rn_obj_result_t *r, uint8_t *data, size_t len) {
  link_t *l = arg;
  chain_t *c = l->c;
  c->gets_done++;
  if (r->err || len != 64 || memcmp(data, c->data, 64)) {
    c->bad++;
    fprintf(stderr, "get %d: %s %s (%zu bytes)\n", l->i, rn_err_name(r->err), r->message, len);
  }
  free(data);
}

/* A callback that submits: each finished put starts a get of its key. */
static void chain_put_cb(void *arg, const rn_obj_result_t *r) {
  link_t *l = arg;
  chain_t *c = l->c;
  c->puts_done++;
  if (r->err) {
    c->bad++;
    fprintf(stderr, "put %d: %s %s\n", l->i, rn_err_name(r->err), r->message);
    return;
  }
  char k[64];
  snprintf(k, sizeof k, "many/%d", l->i);
  if (rn_objstore_get(c->fx->os, os_key(c->fx, k), 0, 64, chain_get_cb, l)) c->bad++;
}

void os_check_many_in_flight(os_fx_t *fx, int n) {
  chain_t c = {.fx = fx, .n = n};
  c.data = pattern(64, 9);
  link_t *links = calloc((size_t)n, sizeof *links);
  for (int i = 0; i < n; i++) {
    char k[64];
    snprintf(k, sizeof k, "many/%d", i);
    links[i] = (link_t){&c, i};
    assert_int_equal(rn_objstore_put_mem(fx->os, os_key(fx, k), c.data, 64, chain_put_cb, &links[i]), 0);
  }
  assert_int_equal(rn_objstore_inflight(fx->os), (unsigned)n);
  os_wait_idle(fx->os);
  assert_int_equal(c.puts_done, n);
  assert_int_equal(c.gets_done, n);
  assert_int_equal(c.bad, 0);
  free(links);
  free(c.data);
}

void os_check_stats(os_fx_t *fx) {
  os_res_t x = {0};
  rn_objstore_stats_t a, b;
  rn_objstore_stats(fx->os, &a);
  OK(os_put(fx, "s", "12345", 5, &x));
  OK(os_get(fx, "s", 1, 3, &x));
  assert_int_equal(os_head(fx, "s-missing", &x), RN_ENOENT);
  OK(os_list(fx, "s", &x));
  OK(os_del(fx, "s", &x));
  rn_objstore_stats(fx->os, &b);
  for (int op = 0; op < RN_OBJ_NOPS; op++) {
    assert_true(b.requests[op] >= a.requests[op] + 1);
    assert_int_equal(b.seconds[op].count, a.seconds[op].count + 1);
  }
  assert_int_equal(b.errors[RN_OBJ_HEAD], a.errors[RN_OBJ_HEAD] + 1);
  assert_int_equal(b.errors[RN_OBJ_PUT], a.errors[RN_OBJ_PUT]);
  assert_true(b.bytes_up >= a.bytes_up + 5);
  assert_true(b.bytes_down >= a.bytes_down + 3);
  os_res_free(&x);
}

typedef struct cancel_count {
  int calls, canceled, other;
} cancel_count_t;

static void cancel_cb(void *arg, const rn_obj_result_t *r) {
  cancel_count_t *c = arg;
  c->calls++;
  if (r->err == RN_ECANCELED)
    c->canceled++;
  else
    c->other++;
}

static void cancel_get_cb(void *arg, const rn_obj_result_t *r, uint8_t *data, size_t len) {
  cancel_cb(arg, r);
  if (r->err) assert_null(data);
  free(data);
}

static void cancel_list_cb(void *arg, const rn_obj_result_t *r, const rn_obj_entry_t *e, size_t n) {
  cancel_cb(arg, r);
}

void os_check_destroy_in_flight(os_fx_t *fx, int n) {
  os_res_t x = {0};
  OK(os_put(fx, "d/base", "base", 4, &x));
  os_res_free(&x);
  cancel_count_t c = {0};
  static uint8_t blob[4096];
  int submitted = 0;
  for (int i = 0; i < n; i++) {
    char k[64];
    snprintf(k, sizeof k, "d/%d", i);
    rn_err_t e;
    switch (i % 5) {
    case 0: e = rn_objstore_put_mem(fx->os, os_key(fx, k), blob, sizeof blob, cancel_cb, &c); break;
    case 1: e = rn_objstore_get(fx->os, os_key(fx, "d/base"), 0, 0, cancel_get_cb, &c); break;
    case 2: e = rn_objstore_head(fx->os, os_key(fx, "d/base"), cancel_cb, &c); break;
    case 3: e = rn_objstore_list(fx->os, os_key(fx, "d/"), cancel_list_cb, &c); break;
    default: e = rn_objstore_delete(fx->os, os_key(fx, k), cancel_cb, &c); break;
    }
    assert_int_equal(e, 0);
    submitted++;
  }
  assert_int_equal(c.calls, 0);
  rn_objstore_destroy(fx->os);
  fx->os = NULL;
  /* never polled: nothing was delivered, so everything is canceled, once */
  assert_int_equal(c.calls, submitted);
  assert_int_equal(c.canceled, submitted);
}
