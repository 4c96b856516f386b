/*
 * test_objstore.c — the local-directory object store (localdir.c) and the
 * fault-injecting wrapper (faulty.c) against rn_tier.h's contract: the
 * shared checks (test_objstore_checks.c) on both, then what is particular
 * to each: localdir's files (temporary files never listed, keys that would
 * leave the root refused, empty directories removed), and every fault of
 * rn_faulty_opts_t. Synchronisation only through rn_objstore_wait / poll(2)
 * on rn_objstore_fd; the latency check asserts only a lower bound that the
 * wrapper guarantees by construction.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rn_tier.h"
#include "test_objstore_checks.h"
#include "testutil.h"

typedef struct fx {
  os_fx_t o;
  char *tmp;
  char root[600];
  bool faulty;
} fx_t;

static int setup_common(void **state, bool faulty) {
  fx_t *fx = calloc(1, sizeof *fx);
  fx->tmp = rn_test_tmpdir();
  snprintf(fx->root, sizeof fx->root, "%s/store/root", fx->tmp);
  snprintf(fx->o.dir, sizeof fx->o.dir, "%s", fx->tmp);
  snprintf(fx->o.prefix, sizeof fx->o.prefix, "pre/");
  char why[256];
  rn_objstore_t *ld = NULL;
  if (rn_localdir_new(fx->root, &ld, why, sizeof why)) {
    fprintf(stderr, "rn_localdir_new: %s\n", why);
    return -1;
  }
  fx->o.os = ld;
  if (faulty) {
    rn_faulty_opts_t fo = {0};
    if (rn_faulty_new(ld, &fo, &fx->o.os)) return -1;
    fx->faulty = true;
  }
  *state = fx;
  return 0;
}

static int setup_ld(void **state) { return setup_common(state, false); }
static int setup_faulty(void **state) { return setup_common(state, true); }

static int teardown(void **state) {
  fx_t *fx = *state;
  rn_objstore_destroy(fx->o.os);
  rn_test_rmtree(fx->tmp);
  free(fx->tmp);
  free(fx);
  return 0;
}

#define FX ((fx_t *)*state)

static void t_put_get_head(void **state) { os_check_put_get_head(&FX->o); }
static void t_ranges(void **state) { os_check_ranges(&FX->o); }
static void t_missing(void **state) { os_check_missing(&FX->o); }
static void t_overwrite_delete(void **state) { os_check_overwrite_delete(&FX->o); }
static void t_list(void **state) { os_check_list(&FX->o); }
static void t_special_keys(void **state) { os_check_special_keys(&FX->o); }
static void t_put_file(void **state) {
  os_check_put_file(&FX->o, 0);
  os_check_put_file(&FX->o, 1);
  os_check_put_file(&FX->o, 3 * 1024 * 1024 + 5);
}
static void t_async_contract(void **state) { os_check_async_contract(&FX->o); }
static void t_many_in_flight(void **state) { os_check_many_in_flight(&FX->o, 200); }
static void t_stats(void **state) { os_check_stats(&FX->o); }
static void t_destroy_in_flight(void **state) { os_check_destroy_in_flight(&FX->o, 300); }

/* ---- localdir's own --------------------------------------------------------------- */

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
  closedir(d);
  return n;
}

static void t_ld_files(void **state) {
  fx_t *fx = *state;
  os_res_t x = {0};
  assert_int_equal(os_put(&fx->o, "a/b/obj", "hello", 5, &x), 0);
  char path[800];
  snprintf(path, sizeof path, "%s/pre/a/b/obj", fx->root);
  size_t len = 0;
  uint8_t *got = rn_test_read_file(path, &len);
  assert_non_null(got);
  assert_int_equal(len, 5);
  assert_memory_equal(got, "hello", 5);
  free(got);
  /* nothing but the object in its directory: the temporary file was renamed */
  snprintf(path, sizeof path, "%s/pre/a/b", fx->root);
  assert_int_equal(count_entries(path), 1);
  /* a stray temporary file (a crash mid-put) is never listed */
  snprintf(path, sizeof path, "%s/pre/a/b/.rn-tmp-obj2.7", fx->root);
  FILE *fp = fopen(path, "w");
  fputs("partial", fp);
  fclose(fp);
  assert_int_equal(os_list(&fx->o, "", &x), 0);
  assert_int_equal(x.n, 1);
  assert_string_equal(x.keys[0], "pre/a/b/obj");
  /* and no key may name one */
  assert_int_equal(os_put(&fx->o, "a/b/.rn-tmp-obj2.7", "x", 1, &x), RN_EINVAL);
  unlink(path);
  /* a delete removes the directories it emptied, not the root */
  assert_int_equal(os_del(&fx->o, "a/b/obj", &x), 0);
  snprintf(path, sizeof path, "%s/pre", fx->root);
  struct stat st;
  assert_int_not_equal(stat(path, &st), 0);
  assert_int_equal(stat(fx->root, &st), 0);
  os_res_free(&x);
}

static void touch(const char *path, time_t mtime) {
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fputs("partial", fp);
  fclose(fp);
  if (mtime) {
    struct timespec ts[2] = {{.tv_sec = mtime}, {.tv_sec = mtime}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
  }
}

/* Temporary files of PUTs that died with their process (kill -9) do not
 * pile up: opening the store removes this host's whose process is gone and
 * anyone's a day old; a live process's (this one's) and another host's
 * recent ones stay. */
static void t_ld_stale_temps(void **state) {
  (void)state;
  char *tmp = rn_test_tmpdir();
  char work[600], why[256], host[256] = "localhost";
  snprintf(work, sizeof work, "%s/.rn-tmp-work", tmp);
  assert_int_equal(mkdir(work, 0755), 0);
  if (gethostname(host, sizeof host - 1) || !host[0]) snprintf(host, sizeof host, "localhost");
  for (char *c = host; *c; c++)
    if (*c == '.' || *c == '/') *c = '_';
  pid_t dead = fork();
  assert_true(dead >= 0);
  if (dead == 0) _exit(0);
  int wst;
  assert_int_equal(waitpid(dead, &wst, 0), dead);
  char p_dead[900], p_mine[900], p_other[900], p_old[900];
  snprintf(p_dead, sizeof p_dead, "%s/%s.%ld.1", work, host, (long)dead);
  snprintf(p_mine, sizeof p_mine, "%s/%s.%ld.2", work, host, (long)getpid());
  snprintf(p_other, sizeof p_other, "%s/elsewhere.%ld.3", work, (long)dead);
  snprintf(p_old, sizeof p_old, "%s/elsewhere.%ld.4", work, (long)dead);
  touch(p_dead, 0);
  touch(p_mine, 0);
  touch(p_other, 0);
  touch(p_old, time(NULL) - 2 * 24 * 3600);
  rn_objstore_t *os = NULL;
  assert_int_equal(rn_localdir_new(tmp, &os, why, sizeof why), 0);
  struct stat st;
  assert_int_not_equal(stat(p_dead, &st), 0);
  assert_int_equal(stat(p_mine, &st), 0);
  assert_int_equal(stat(p_other, &st), 0);
  assert_int_not_equal(stat(p_old, &st), 0);
  /* the work directory is never listed, and a PUT leaves nothing in it */
  os_fx_t o = {.os = os};
  snprintf(o.dir, sizeof o.dir, "%s", tmp);
  os_res_t x = {0};
  assert_int_equal(os_put(&o, "k", "v", 1, &x), 0);
  assert_int_equal(os_list(&o, "", &x), 0);
  assert_int_equal(x.n, 1);
  assert_string_equal(x.keys[0], "k");
  assert_int_equal(count_entries(work), 2);
  os_res_free(&x);
  rn_objstore_destroy(os);
  rn_test_rmtree(tmp);
  free(tmp);
}

static void t_ld_bad_keys(void **state) {
  fx_t *fx = *state;
  os_res_t x = {0};
  const char *bad[] = {"a/../b", "..", "a/./b", "a//b", "a/", "./a"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(rn_objstore_put_mem(fx->o.os, bad[i], (const uint8_t *)"x", 1, os_cb(), &x), RN_EINVAL);
    assert_int_equal(rn_objstore_get(fx->o.os, bad[i], 0, 0, os_get_cb(), &x), RN_EINVAL);
  }
  assert_int_equal(rn_objstore_list(fx->o.os, "../", os_list_cb(), &x), RN_EINVAL);
  assert_int_equal(x.calls, 0);
  assert_int_equal(rn_objstore_inflight(fx->o.os), 0);
  /* a key below an object's name cannot be a file: an error, called back */
  assert_int_equal(os_put(&fx->o, "f", "1", 1, &x), 0);
  assert_int_equal(os_put(&fx->o, "f/g", "2", 1, &x), RN_EOBJSTORE);
  assert_true(strstr(x.r.message, "f/g") != NULL);
  assert_int_equal(os_get(&fx->o, "f/g", 0, 0, &x), RN_ENOENT);
  /* a directory is not an object */
  assert_int_equal(os_put(&fx->o, "dir/obj", "2", 1, &x), 0);
  assert_int_equal(os_head(&fx->o, "dir", &x), RN_ENOENT);
  assert_int_equal(os_get(&fx->o, "dir", 0, 0, &x), RN_ENOENT);
  assert_int_equal(os_del(&fx->o, "dir", &x), 0);
  assert_int_equal(os_head(&fx->o, "dir/obj", &x), 0);
  os_res_free(&x);
}

static void t_ld_bad_root(void **state) {
  (void)state;
  char *tmp = rn_test_tmpdir();
  char path[600], why[256];
  snprintf(path, sizeof path, "%s/file", tmp);
  FILE *fp = fopen(path, "w");
  fclose(fp);
  rn_objstore_t *os = NULL;
  assert_int_equal(rn_localdir_new(path, &os, why, sizeof why), RN_EINVAL);
  assert_null(os);
  assert_true(strstr(why, path) != NULL);
  assert_int_equal(rn_localdir_new("", &os, why, sizeof why), RN_EINVAL);
  rn_objstore_destroy(NULL);
  rn_test_rmtree(tmp);
  free(tmp);
}

static void t_fd_readable(void **state) {
  fx_t *fx = *state;
  os_res_t x = {0};
  int fd = rn_objstore_fd(fx->o.os);
  assert_true(fd >= 0);
  assert_int_equal(rn_objstore_put_mem(fx->o.os, "fdcheck", (const uint8_t *)"z", 1, os_cb(), &x), 0);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  /* the fd alone says when to poll: wait on it, with no other wake-up */
  int idle = 0;
  while (x.calls == 0) {
    int rc = poll(&p, 1, 1000);
    if (rc == 1) {
      assert_true(p.revents & POLLIN);
      rn_objstore_poll(fx->o.os);
    } else if (++idle > 60) {
      fail_msg("fd never readable");
    }
  }
  assert_int_equal(x.r.err, 0);
  os_res_free(&x);
}

/* ---- faulty's faults ------------------------------------------------------------------ */

static rn_objstore_t *inner_of(fx_t *fx, rn_objstore_t **ld) {
  /* the inner store is the localdir at fx->root: a second view of it */
  char why[256];
  assert_int_equal(rn_localdir_new(fx->root, ld, why, sizeof why), 0);
  return *ld;
}

static void t_faulty_fail_next(void **state) {
  fx_t *fx = *state;
  os_res_t x = {0};
  rn_faulty_opts_t fo = {0};
  fo.fail_next[RN_OBJ_PUT] = 2;
  fo.fail_next[RN_OBJ_GET] = 1;
  fo.fail_next[RN_OBJ_HEAD] = 1;
  fo.fail_next[RN_OBJ_LIST] = 1;
  fo.fail_next[RN_OBJ_DELETE] = 1;
  rn_faulty_set(fx->o.os, &fo);
  assert_int_equal(os_put(&fx->o, "k", "v", 1, &x), RN_EOBJSTORE);
  assert_true(strstr(x.r.message, "injected") != NULL);
  assert_int_equal(os_put(&fx->o, "k", "v", 1, &x), RN_EOBJSTORE);
  /* the failures never reached the store */
  rn_objstore_t *ld = NULL;
  os_fx_t view = fx->o;
  view.os = inner_of(fx, &ld);
  assert_int_equal(os_head(&view, "k", &x), RN_ENOENT);
  /* the third behaves */
  assert_int_equal(os_put(&fx->o, "k", "v", 1, &x), 0);
  assert_int_equal(os_head(&view, "k", &x), 0);
  rn_objstore_destroy(ld);
  assert_int_equal(os_get(&fx->o, "k", 0, 0, &x), RN_EOBJSTORE);
  assert_int_equal(os_get(&fx->o, "k", 0, 0, &x), 0);
  assert_int_equal(os_head(&fx->o, "k", &x), RN_EOBJSTORE);
  assert_int_equal(os_head(&fx->o, "k", &x), 0);
  assert_int_equal(os_list(&fx->o, "", &x), RN_EOBJSTORE);
  assert_int_equal(x.n, 0);
  assert_int_equal(os_list(&fx->o, "", &x), 0);
  assert_int_equal(x.n, 1);
  assert_int_equal(os_del(&fx->o, "k", &x), RN_EOBJSTORE);
  assert_int_equal(os_head(&fx->o, "k", &x), 0);
  assert_int_equal(os_del(&fx->o, "k", &x), 0);
  assert_int_equal(os_head(&fx->o, "k", &x), RN_ENOENT);
  rn_objstore_stats_t s;
  rn_objstore_stats(fx->o.os, &s);
  assert_int_equal(s.errors[RN_OBJ_PUT], 2);
  assert_int_equal(s.errors[RN_OBJ_LIST], 1);
  os_res_free(&x);
}

static void t_faulty_down(void **state) {
  fx_t *fx = *state;
  os_res_t x = {0};
  assert_int_equal(os_put(&fx->o, "k", "v", 1, &x), 0);
  rn_faulty_opts_t fo = {.down = true};
  rn_faulty_set(fx->o.os, &fo);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(os_put(&fx->o, "k2", "v", 1, &x), RN_EOBJSTORE);
    assert_true(strstr(x.r.message, "down") != NULL);
    assert_int_equal(os_get(&fx->o, "k", 0, 0, &x), RN_EOBJSTORE);
    assert_int_equal(os_head(&fx->o, "k", &x), RN_EOBJSTORE);
    assert_int_equal(os_list(&fx->o, "", &x), RN_EOBJSTORE);
    assert_int_equal(os_del(&fx->o, "k", &x), RN_EOBJSTORE);
  }
  fo.down = false;
  rn_faulty_set(fx->o.os, &fo);
  assert_int_equal(os_get(&fx->o, "k", 0, 0, &x), 0);
  assert_int_equal(os_head(&fx->o, "k2", &x), RN_ENOENT);
  assert_int_equal(os_put(&fx->o, "k2", "v", 1, &x), 0);
  os_res_free(&x);
}

static void t_faulty_lose_put_response(void **state) {
  fx_t *fx = *state;
  os_res_t x = {0};
  rn_faulty_opts_t fo = {.lose_put_response = true};
  rn_faulty_set(fx->o.os, &fo);
  assert_int_equal(os_put(&fx->o, "lost", "stored anyway", 13, &x), RN_EOBJSTORE);
  assert_true(strstr(x.r.message, "lost") != NULL);
  char path[700];
  snprintf(path, sizeof path, "%s/src", fx->tmp);
  FILE *fp = fopen(path, "w");
  fputs("from a file", fp);
  fclose(fp);
  assert_int_equal(os_put_file(&fx->o, "lost2", path, 11, &x), RN_EOBJSTORE);
  /* other operations are untouched, and the objects are there */
  assert_int_equal(os_get(&fx->o, "lost", 0, 0, &x), 0);
  assert_int_equal(x.len, 13);
  assert_memory_equal(x.data, "stored anyway", 13);
  assert_int_equal(os_get(&fx->o, "lost2", 0, 0, &x), 0);
  assert_memory_equal(x.data, "from a file", 11);
  os_res_free(&x);
}

static void t_faulty_gets(void **state) {
  fx_t *fx = *state;
  os_res_t x = {0};
  uint8_t d[1000];
  for (size_t i = 0; i < sizeof d; i++) d[i] = (uint8_t)(i * 7);
  assert_int_equal(os_put(&fx->o, "g", d, sizeof d, &x), 0);
  rn_faulty_opts_t fo = {.truncate_gets = true};
  rn_faulty_set(fx->o.os, &fo);
  assert_int_equal(os_get(&fx->o, "g", 100, 200, &x), 0);
  assert_int_equal(x.len, 199);
  assert_memory_equal(x.data, d + 100, 199);
  assert_int_equal(os_get(&fx->o, "g", 0, 0, &x), 0);
  assert_int_equal(x.len, sizeof d - 1);
  fo = (rn_faulty_opts_t){.corrupt_gets = true};
  rn_faulty_set(fx->o.os, &fo);
  assert_int_equal(os_get(&fx->o, "g", 0, 0, &x), 0);
  assert_int_equal(x.len, sizeof d);
  int diff_bits = 0;
  for (size_t i = 0; i < sizeof d; i++) diff_bits += __builtin_popcount((unsigned)(x.data[i] ^ d[i]));
  assert_int_equal(diff_bits, 1);
  /* both at once: one byte short and one bit flipped */
  fo.truncate_gets = true;
  rn_faulty_set(fx->o.os, &fo);
  assert_int_equal(os_get(&fx->o, "g", 0, 10, &x), 0);
  assert_int_equal(x.len, 9);
  assert_memory_not_equal(x.data, d, 9);
  /* the faults apply to operations submitted after the change only */
  os_res_t y = {0};
  assert_int_equal(rn_objstore_get(fx->o.os, "pre/g", 0, 0, os_get_cb(), &y), 0);
  rn_faulty_set(fx->o.os, &(rn_faulty_opts_t){0});
  os_wait(fx->o.os, &y);
  assert_int_equal(y.len, sizeof d - 1);
  assert_int_equal(os_get(&fx->o, "g", 0, 0, &x), 0);
  assert_int_equal(x.len, sizeof d);
  assert_memory_equal(x.data, d, sizeof d);
  os_res_free(&x);
  os_res_free(&y);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void t_faulty_latency(void **state) {
  fx_t *fx = *state;
  os_res_t x = {0};
  rn_faulty_opts_t fo = {.latency_ms = 150};
  rn_faulty_set(fx->o.os, &fo);
  uint64_t t0 = now_ns();
  assert_int_equal(os_put(&fx->o, "slow", "v", 1, &x), 0);
  /* a lower bound the wrapper guarantees: it holds every completion this long */
  assert_true(now_ns() - t0 >= 150u * 1000000u);
  /* several at once, each delayed, each called back once */
  os_res_t r[5] = {{0}};
  t0 = now_ns();
  for (int i = 0; i < 5; i++) assert_int_equal(rn_objstore_get(fx->o.os, "pre/slow", 0, 0, os_get_cb(), &r[i]), 0);
  /* an injected failure is delayed too */
  fo.fail_next[RN_OBJ_HEAD] = 1;
  rn_faulty_set(fx->o.os, &fo);
  assert_int_equal(os_head(&fx->o, "slow", &x), RN_EOBJSTORE);
  os_wait_idle(fx->o.os);
  assert_true(now_ns() - t0 >= 150u * 1000000u);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].len, 1);
    os_res_free(&r[i]);
  }
  rn_objstore_stats_t s;
  rn_objstore_stats(fx->o.os, &s);
  assert_true(s.seconds[RN_OBJ_GET].sum >= 5 * 0.15);
  os_res_free(&x);
}

static void t_faulty_destroy_delayed(void **state) {
  fx_t *fx = *state;
  os_res_t x = {0};
  assert_int_equal(os_put(&fx->o, "dl", "v", 1, &x), 0);
  rn_faulty_opts_t fo = {.latency_ms = 60000}; /* held far longer than the test */
  rn_faulty_set(fx->o.os, &fo);
  os_res_t r[4] = {{0}};
  for (int i = 0; i < 4; i++) assert_int_equal(rn_objstore_get(fx->o.os, "pre/dl", 0, 0, os_get_cb(), &r[i]), 0);
  /* whether the inner store finished them (they sit in the delay) or not,
   * destroy cancels them */
  assert_int_equal(rn_objstore_inflight(fx->o.os), 4);
  /* and injected failures waiting for their due time too */
  fo.down = true;
  rn_faulty_set(fx->o.os, &fo);
  os_res_t h = {0};
  assert_int_equal(rn_objstore_head(fx->o.os, "pre/dl", os_cb(), &h), 0);
  rn_objstore_destroy(fx->o.os);
  fx->o.os = NULL;
  for (int i = 0; i < 4; i++) {
    assert_int_equal(r[i].calls, 1);
    assert_int_equal(r[i].r.err, RN_ECANCELED);
    assert_null(r[i].data);
  }
  assert_int_equal(h.calls, 1);
  assert_int_equal(h.r.err, RN_ECANCELED);
  os_res_free(&x);
}

static void t_faulty_set_others(void **state) {
  (void)state;
  /* rn_faulty_set on a store that is not a wrapper does nothing */
  char *tmp = rn_test_tmpdir();
  rn_objstore_t *ld = NULL;
  char why[128];
  assert_int_equal(rn_localdir_new(tmp, &ld, why, sizeof why), 0);
  rn_faulty_opts_t fo = {.down = true};
  rn_faulty_set(ld, &fo);
  rn_faulty_set(NULL, &fo);
  assert_int_equal(rn_faulty_new(NULL, &fo, &ld), RN_EINVAL);
  rn_objstore_destroy(ld);
  rn_test_rmtree(tmp);
  free(tmp);
}

#define BOTH(t) cmocka_unit_test_setup_teardown(t, setup_ld, teardown), cmocka_unit_test_setup_teardown(t, setup_faulty, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      BOTH(t_put_get_head),
      BOTH(t_ranges),
      BOTH(t_missing),
      BOTH(t_overwrite_delete),
      BOTH(t_list),
      BOTH(t_special_keys),
      BOTH(t_put_file),
      BOTH(t_async_contract),
      BOTH(t_many_in_flight),
      BOTH(t_stats),
      BOTH(t_destroy_in_flight),
      BOTH(t_fd_readable),
      cmocka_unit_test_setup_teardown(t_ld_files, setup_ld, teardown),
      cmocka_unit_test(t_ld_stale_temps),
      cmocka_unit_test_setup_teardown(t_ld_bad_keys, setup_ld, teardown),
      cmocka_unit_test(t_ld_bad_root),
      cmocka_unit_test_setup_teardown(t_faulty_fail_next, setup_faulty, teardown),
      cmocka_unit_test_setup_teardown(t_faulty_down, setup_faulty, teardown),
      cmocka_unit_test_setup_teardown(t_faulty_lose_put_response, setup_faulty, teardown),
      cmocka_unit_test_setup_teardown(t_faulty_gets, setup_faulty, teardown),
      cmocka_unit_test_setup_teardown(t_faulty_latency, setup_faulty, teardown),
      cmocka_unit_test_setup_teardown(t_faulty_destroy_delayed, setup_faulty, teardown),
      cmocka_unit_test(t_faulty_set_others),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
