/*
 * test_ctl_output.c — runnelctl never claims output it could not write
 * (issue 10, defect 2), against the real runneld:
 *
 *   - `consume S --group G` with stdout on /dev/full, and with stdout on a
 *     pipe whose reader has gone (EPIPE; runnelctl ignores SIGPIPE), exits 1
 *     with one line saying why, and leaves every checkpoint where it was:
 *     `group describe` still shows all N records as lag and no commit. (The
 *     old code exited 0 and checkpointed every shard at its end, or died of
 *     SIGPIPE.)
 *   - plain `consume S` into a closed pipe: exit 1 with the reason;
 *   - `stream describe` reports the bytes each shard stores (ShardInfo
 *     stored_bytes, filled by the broker from its log);
 *   - `status` reports the broker (BrokerInfo); pointed at the HTTP port,
 *     runnelctl prints librunnel's message as it is, in one line.
 *
 * runnelctl runs as a child process (fork/exec) with its stdout set up by
 * the test; it is waited for by PID. No timing: the child ends by itself at
 * its first write.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "grouptest.h"

#define N 50

/* Run runnelctl --broker <addr> args... with stdout on out_fd (closed in
 * the parent after fork) and stderr into *err. Returns the exit status, or
 * 128 + the signal that killed it. */
static int run_with_stdout(rn_gt_t *g, int out_fd, char **err, ...) {
  const char *argv[32];
  int argc = 0;
  argv[argc++] = rn_gt_runnelctl_path();
  argv[argc++] = "--broker";
  argv[argc++] = g->broker.addr;
  va_list ap;
  va_start(ap, err);
  const char *a;
  while ((a = va_arg(ap, const char *)) && argc < 31) argv[argc++] = a;
  va_end(ap);
  argv[argc] = NULL;
  char errpath[700];
  snprintf(errpath, sizeof errpath, "%s/ctl-output.err", g->tmp);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int e = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (e < 0 || in < 0 || dup2(out_fd, 1) < 0 || dup2(e, 2) < 0 || dup2(in, 0) < 0) _exit(126);
    signal(SIGPIPE, SIG_DFL); /* as a shell would start it: runnelctl itself must ignore it */
    execv(argv[0], (char *const *)(uintptr_t)argv);
    _exit(127);
  }
  close(out_fd);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  FILE *r = fopen(errpath, "r");
  char *buf = calloc(1, 1 << 16);
  size_t n = r ? fread(buf, 1, (1 << 16) - 1, r) : 0;
  buf[n] = '\0';
  if (r) fclose(r);
  *err = buf;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static size_t lines(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

/* Nothing committed: every record still counts as lag, no shard has a
 * commit time, and the member left. */
static void assert_nothing_committed(rn_gt_t *g, const char *stream, const char *group) {
  rn_group_desc_t *d = rn_gt_describe(g, stream, group);
  if (rn_gt_total_lag(d) != N) {
    rn_gt_print_desc(d);
    fail_msg("lag %llu, want %d: a checkpoint moved past records that were never written",
             (unsigned long long)rn_gt_total_lag(d), N);
  }
  for (size_t i = 0; i < d->shard_count; i++) assert_true(d->shards[i].checkpoint_ms <= 0);
  assert_int_equal(d->member_count, 0);
  rn_group_desc_free(d);
}

static void test_group_consume_into_dev_full(void **state) {
  rn_gt_t *g = *state;
  rn_gt_create_stream(g, "full", 4);
  rn_gt_produced_t p = {0};
  rn_gt_produce(g, "full", "f", N, &p);
  int fd = open("/dev/full", O_WRONLY);
  assert_true(fd >= 0);
  char *err;
  int rc = run_with_stdout(g, fd, &err, "consume", "full", "--group", "G", "--from", "earliest", NULL);
  if (rc != 1) fail_msg("exit %d (want 1); stderr:\n%s", rc, err);
  assert_non_null(strstr(err, "runnelctl: write to standard output failed: No space left on device\n"));
  /* the "assigned shards" line, then the one failure line */
  assert_null(strstr(strstr(err, "write to standard output failed") + 1, "write to standard output failed"));
  free(err);
  assert_nothing_committed(g, "full", "G");
  rn_gt_produced_free(&p);
}

static void test_group_consume_into_closed_pipe(void **state) {
  rn_gt_t *g = *state;
  rn_gt_create_stream(g, "pipe", 4);
  rn_gt_produced_t p = {0};
  rn_gt_produce(g, "pipe", "p", N, &p);
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  close(pfd[0]); /* the reader is gone before the first write */
  char *err;
  int rc = run_with_stdout(g, pfd[1], &err, "--json", "consume", "pipe", "--group", "G", "--from", "earliest", NULL);
  if (rc != 1) fail_msg("exit %d (want 1, not killed by SIGPIPE); stderr:\n%s", rc, err);
  assert_non_null(strstr(err, "runnelctl: write to standard output failed: Broken pipe\n"));
  free(err);
  assert_nothing_committed(g, "pipe", "G");

  /* plain consume into a closed pipe: the same one-line failure */
  assert_int_equal(pipe(pfd), 0);
  close(pfd[0]);
  rc = run_with_stdout(g, pfd[1], &err, "consume", "pipe", NULL);
  if (rc != 1) fail_msg("exit %d (want 1); stderr:\n%s", rc, err);
  assert_string_equal(err, "runnelctl: write to standard output failed: Broken pipe\n");
  assert_int_equal(lines(err), 1);
  free(err);
  rn_gt_produced_free(&p);
}

static void test_describe_stored_bytes(void **state) {
  rn_gt_t *g = *state;
  rn_gt_create_stream(g, "sz", 2);
  rn_gt_produced_t p = {0};
  rn_gt_produce(g, "sz", "some-longer-value", N, &p);
  char *out, *err;
  assert_int_equal(rn_gt_ctl(g, &out, &err, "--json", "stream", "describe", "sz", NULL), 0);
  json_error_t je;
  json_t *doc = json_loads(out, 0, &je);
  assert_non_null(doc);
  json_t *shards = json_object_get(doc, "shards");
  assert_int_equal(json_array_size(shards), 2);
  json_int_t total = 0;
  for (size_t i = 0; i < 2; i++) {
    json_t *sh = json_array_get(shards, i);
    json_int_t bytes = json_integer_value(json_object_get(sh, "stored_bytes"));
    json_int_t records = json_integer_value(json_object_get(sh, "end_offset"));
    if (records > 0) assert_true(bytes >= records * 17); /* at least the values */
    total += bytes;
  }
  assert_true(total > 0);
  json_decref(doc);
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "stream", "describe", "sz", NULL), 0);
  assert_non_null(strstr(out, "LAST-APPEND               BYTES\n"));
  free(out);
  free(err);
  rn_gt_produced_free(&p);
}

static void test_status_and_wrong_port(void **state) {
  rn_gt_t *g = *state;
  rn_gt_create_stream(g, "st", 3);
  char *out, *err;
  assert_int_equal(rn_gt_ctl(g, &out, &err, "status", NULL), 0);
  assert_non_null(strstr(out, "version:          "));
  assert_non_null(strstr(out, "uptime:           "));
  assert_non_null(strstr(out, "free space:       "));
  assert_non_null(strstr(out, "streams:          1\n"));
  assert_non_null(strstr(out, "shards:           3\n"));
  assert_non_null(strstr(out, "failed shards:    0\n"));
  assert_non_null(strstr(out, "health:           ok\n"));
  free(out);
  free(err);
  assert_int_equal(rn_gt_ctl(g, &out, &err, "--json", "status", NULL), 0);
  json_error_t je;
  json_t *doc = json_loads(out, 0, &je);
  assert_non_null(doc);
  assert_int_equal(json_integer_value(json_object_get(doc, "shard_count")), 3);
  assert_true(json_integer_value(json_object_get(doc, "data_dir_total_bytes")) > 0);
  assert_true(json_integer_value(json_object_get(doc, "start_ms")) > 0);
  assert_int_equal(json_array_size(json_object_get(doc, "failed_shards")), 0);
  assert_string_equal(json_string_value(json_object_get(doc, "health")), "ok");
  json_decref(doc);
  free(out);
  free(err);

  /* the HTTP port: librunnel's own words, once */
  char http[64];
  snprintf(http, sizeof http, "127.0.0.1:%u", g->broker.http_port);
  int st = rn_gt_ctl(g, &out, &err, "--broker", http, "stream", "list", NULL);
  assert_int_equal(st, 1);
  assert_non_null(strstr(err, "(EPROTOCOL): "));
  assert_non_null(strstr(err, "answered in HTTP: that is runneld's HTTP port"));
  assert_int_equal(lines(err), 1);
  free(out);
  free(err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_group_consume_into_dev_full, rn_gt_setup, rn_gt_teardown),
      cmocka_unit_test_setup_teardown(test_group_consume_into_closed_pipe, rn_gt_setup, rn_gt_teardown),
      cmocka_unit_test_setup_teardown(test_describe_stored_bytes, rn_gt_setup, rn_gt_teardown),
      cmocka_unit_test_setup_teardown(test_status_and_wrong_port, rn_gt_setup, rn_gt_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
