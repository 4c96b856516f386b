/* grouptest.c — see grouptest.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "grouptest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#ifndef RN_TEST_RUNNELCTL
#define RN_TEST_RUNNELCTL "runnelctl"
#endif

const char *rn_gt_runnelctl_path(void) {
  const char *env = getenv("RUNNELCTL");
  return env && *env ? env : RN_TEST_RUNNELCTL;
}

uint64_t rn_gt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- fixture ------------------------------------------------------------------ */

static void connect_client(rn_gt_t *g) {
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = g->broker.addr;
  assert_int_equal(rn_client_new(&conf, &g->cl), 0);
}

int rn_gt_setup(void **state) {
  rn_gt_t *g = calloc(1, sizeof(*g));
  if (!g) return -1;
  g->tmp = rn_test_tmpdir();
  snprintf(g->data_dir, sizeof(g->data_dir), "%s/data", g->tmp);
  if (rn_test_broker_start(&g->broker, g->data_dir, NULL)) {
    rn_test_rmtree(g->tmp);
    free(g->tmp);
    free(g);
    return -1;
  }
  connect_client(g);
  *state = g;
  return 0;
}

/* Copy sanitizer reports from the broker's log (all of it when verbose). */
static void show_log(const char *path) {
  const char *verbose = getenv("RUNNEL_TEST_VERBOSE");
  bool on = verbose && *verbose;
  FILE *f = fopen(path, "r");
  if (!f) return;
  char line[1024];
  while (fgets(line, sizeof(line), f)) {
    if (!on && (strstr(line, "ERROR: AddressSanitizer") || strstr(line, "ERROR: LeakSanitizer") ||
                strstr(line, "runtime error:") || strstr(line, "Assertion"))) {
      on = true;
      fprintf(stderr, "---- runneld reported (%s) ----\n", path);
    }
    if (on) fputs(line, stderr);
  }
  fclose(f);
}

int rn_gt_teardown(void **state) {
  rn_gt_t *g = *state;
  if (!g) return 0;
  for (int i = 0; i < RN_GT_MAX_CHILDREN; i++) {
    if (!g->children[i]) continue;
    int st;
    kill(g->children[i], SIGKILL);
    waitpid(g->children[i], &st, 0);
    g->children[i] = 0;
  }
  rn_client_destroy(g->cl);
  int rc = 0;
  if (g->broker.pid) rc = rn_test_broker_stop(&g->broker);
  show_log(g->broker.log_path);
  const char *keep = getenv("RUNNEL_TEST_KEEP");
  if (keep && *keep)
    fprintf(stderr, "kept %s\n", g->tmp);
  else
    rn_test_rmtree(g->tmp);
  free(g->tmp);
  free(g);
  *state = NULL;
  return rc == 0 ? 0 : -1; /* a broker that does not exit cleanly fails the test */
}

void rn_gt_restart(rn_gt_t *g) {
  rn_client_destroy(g->cl);
  g->cl = NULL;
  assert_int_equal(rn_test_broker_stop(&g->broker), 0);
  assert_int_equal(rn_test_broker_start(&g->broker, g->data_dir, NULL), 0);
  connect_client(g);
}

void rn_gt_create_stream(rn_gt_t *g, const char *stream, uint32_t shards) {
  rn_stream_config_t c = {.name = stream, .shard_count = shards, .durability = RN_DURABILITY_SYNC};
  rn_err_t err = rn_stream_create(g->cl, &c, NULL);
  if (err) fail_msg("create %s: %s: %s", stream, rn_err_name(err), rn_last_error_message());
}

/* ---- producing ------------------------------------------------------------------- */

typedef struct prod_ctx {
  pthread_mutex_t mu;
  rn_gt_produced_t *out;
  size_t base;
  size_t failed;
} prod_ctx_t;

typedef struct prod_one {
  prod_ctx_t *ctx;
  size_t i;
} prod_one_t;

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  prod_one_t *one = opaque;
  prod_ctx_t *ctx = one->ctx;
  pthread_mutex_lock(&ctx->mu);
  if (err) {
    ctx->failed++;
  } else {
    ctx->out->shard[ctx->base + one->i] = shard;
    ctx->out->offset[ctx->base + one->i] = offset;
  }
  pthread_mutex_unlock(&ctx->mu);
}

void rn_gt_produce(rn_gt_t *g, const char *stream, const char *prefix, size_t n, rn_gt_produced_t *out) {
  if (out->n + n > out->cap) {
    out->cap = (out->n + n) * 2;
    out->shard = realloc(out->shard, out->cap * sizeof(*out->shard));
    out->offset = realloc(out->offset, out->cap * sizeof(*out->offset));
    out->value = realloc(out->value, out->cap * sizeof(*out->value));
    assert_non_null(out->shard);
    assert_non_null(out->offset);
    assert_non_null(out->value);
  }
  prod_ctx_t ctx = {.out = out, .base = out->n};
  pthread_mutex_init(&ctx.mu, NULL);
  prod_one_t *ones = calloc(n ? n : 1, sizeof(*ones));
  assert_non_null(ones);
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(g->cl, &pc, &p), 0);
  for (size_t i = 0; i < n; i++) {
    char val[128];
    int vl = snprintf(val, sizeof(val), "%s-%zu", prefix, i);
    out->value[out->n + i] = strdup(val);
    out->shard[out->n + i] = UINT32_MAX;
    ones[i] = (prod_one_t){.ctx = &ctx, .i = i};
    rn_err_t err = rn_producer_send(p, stream, val, (size_t)vl, val, (size_t)vl, on_delivery, &ones[i]);
    if (err) fail_msg("send to %s: %s: %s", stream, rn_err_name(err), rn_last_error_message());
  }
  assert_int_equal(rn_producer_flush(p, 60000), 0);
  rn_producer_destroy(p);
  assert_int_equal(ctx.failed, 0);
  for (size_t i = 0; i < n; i++) assert_int_not_equal(out->shard[out->n + i], UINT32_MAX);
  out->n += n;
  pthread_mutex_destroy(&ctx.mu);
  free(ones);
}

void rn_gt_produced_free(rn_gt_produced_t *p) {
  for (size_t i = 0; i < p->n; i++) free(p->value[i]);
  free(p->shard);
  free(p->offset);
  free(p->value);
  memset(p, 0, sizeof(*p));
}

/* ---- describe ------------------------------------------------------------------------ */

rn_group_desc_t *rn_gt_describe(rn_gt_t *g, const char *stream, const char *group) {
  rn_group_desc_t *d = NULL;
  rn_err_t err = rn_group_describe(g->cl, stream, group, &d);
  if (err) fail_msg("describe %s/%s: %s: %s", stream, group, rn_err_name(err), rn_last_error_message());
  return d;
}

void rn_gt_print_desc(const rn_group_desc_t *d) {
  if (!d) {
    print_message("  (no description)\n");
    return;
  }
  print_message("  group %s/%s: %zu member(s)\n", d->stream, d->group, d->member_count);
  for (size_t i = 0; i < d->member_count; i++) {
    const rn_group_member_info_t *m = &d->members[i];
    char list[256] = "";
    size_t at = 0;
    for (size_t k = 0; k < m->shard_count && at < sizeof(list) - 12; k++)
      at += (size_t)snprintf(list + at, sizeof(list) - at, "%s%u", k ? "," : "", m->shards[k]);
    print_message("    member %s epoch %u shards [%s] pending %u heartbeat %" PRId64 " ms ago\n", m->member_id,
                  m->member_epoch, list, m->pending, m->last_heartbeat_ms);
  }
  for (size_t i = 0; i < d->shard_count; i++) {
    const rn_group_shard_info_t *s = &d->shards[i];
    print_message("    shard %u owner %s checkpoint %" PRIu64 " end %" PRIu64 " lag %" PRIu64 " records %" PRId64
                  " ms\n",
                  s->shard, s->owner && s->owner[0] ? s->owner : "-", s->checkpoint, s->end_offset, s->lag_records,
                  s->lag_ms);
  }
}

rn_group_desc_t *rn_gt_wait(rn_gt_t *g, const char *stream, const char *group, rn_gt_pred_t pred, const void *arg,
                            uint32_t deadline_ms, const char *what) {
  uint64_t until = rn_gt_now_ms() + deadline_ms;
  rn_group_desc_t *last = NULL;
  for (;;) {
    rn_group_desc_t *d = NULL;
    rn_err_t err = rn_group_describe(g->cl, stream, group, &d);
    if (err && err != RN_ENOGROUP && !rn_err_retriable(err))
      fail_msg("describe %s/%s: %s: %s", stream, group, rn_err_name(err), rn_last_error_message());
    if (d && pred(d, arg)) {
      rn_group_desc_free(last);
      return d;
    }
    if (d) {
      rn_group_desc_free(last);
      last = d;
    }
    if (rn_gt_now_ms() > until) {
      print_message("gave up waiting (%u ms) for: %s; last description:\n", deadline_ms, what);
      rn_gt_print_desc(last);
      rn_group_desc_free(last);
      fail_msg("condition not reached: %s", what);
    }
    /* polling interval between two looks (the condition, not this pause,
     * is what the test waits for) */
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
}

bool rn_gt_balanced(const rn_group_desc_t *d, const void *arg) {
  uint32_t want = *(const uint32_t *)arg;
  if (d->member_count != want) return false;
  size_t lo = SIZE_MAX, hi = 0, held = 0;
  for (size_t i = 0; i < d->member_count; i++) {
    const rn_group_member_info_t *m = &d->members[i];
    if (m->pending) return false;
    if (m->shard_count < lo) lo = m->shard_count;
    if (m->shard_count > hi) hi = m->shard_count;
    held += m->shard_count;
  }
  if (held != d->shard_count || (want && hi - lo > 1)) return false;
  for (size_t i = 0; i < d->shard_count; i++) {
    const char *o = d->shards[i].owner;
    if (!o || !o[0] || !rn_gt_member(d, o)) return false;
  }
  return true;
}

uint64_t rn_gt_total_lag(const rn_group_desc_t *d) {
  uint64_t t = 0;
  for (size_t i = 0; i < d->shard_count; i++) t += d->shards[i].lag_records;
  return t;
}

bool rn_gt_caught_up(const rn_group_desc_t *d, const void *arg) {
  (void)arg;
  return rn_gt_total_lag(d) == 0;
}

bool rn_gt_balanced_caught_up(const rn_group_desc_t *d, const void *arg) {
  return rn_gt_balanced(d, arg) && rn_gt_caught_up(d, arg);
}

const rn_group_member_info_t *rn_gt_member(const rn_group_desc_t *d, const char *member_id) {
  for (size_t i = 0; i < d->member_count; i++)
    if (strcmp(d->members[i].member_id, member_id) == 0) return &d->members[i];
  return NULL;
}

/* ---- child processes ----------------------------------------------------------------------- */

static void track(rn_gt_t *g, pid_t pid) {
  for (int i = 0; i < RN_GT_MAX_CHILDREN; i++) {
    if (!g->children[i]) {
      g->children[i] = pid;
      return;
    }
  }
  kill(pid, SIGKILL);
  fail_msg("too many children");
}

static void untrack(rn_gt_t *g, pid_t pid) {
  for (int i = 0; i < RN_GT_MAX_CHILDREN; i++)
    if (g->children[i] == pid) g->children[i] = 0;
}

/* fork/exec runnelctl with args; stdin from in_path (or /dev/null). */
static pid_t spawn(rn_gt_t *g, const char *in_path, const char *out_path, const char *err_path, va_list ap) {
  const char *argv[40];
  int argc = 0;
  argv[argc++] = rn_gt_runnelctl_path();
  argv[argc++] = "--broker";
  argv[argc++] = g->broker.addr;
  const char *a;
  while ((a = va_arg(ap, const char *)) && argc < 39) argv[argc++] = a;
  argv[argc] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(argv[0], (char *const *)(uintptr_t)argv);
    _exit(127);
  }
  track(g, pid);
  return pid;
}

pid_t rn_gt_spawn_ctl(rn_gt_t *g, const char *tag, ...) {
  char out[700], err[700];
  snprintf(out, sizeof(out), "%s/%s.out", g->tmp, tag);
  snprintf(err, sizeof(err), "%s/%s.err", g->tmp, tag);
  va_list ap;
  va_start(ap, tag);
  pid_t pid = spawn(g, NULL, out, err, ap);
  va_end(ap);
  return pid;
}

int rn_gt_wait_pid(rn_gt_t *g, pid_t pid) {
  int st = 0;
  pid_t r;
  do r = waitpid(pid, &st, 0);
  while (r < 0 && errno == EINTR);
  assert_int_equal(r, pid);
  untrack(g, pid);
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

int rn_gt_signal(rn_gt_t *g, pid_t pid, int sig) {
  assert_int_equal(kill(pid, sig), 0);
  return rn_gt_wait_pid(g, pid);
}

static char *slurp_path(const char *path) {
  FILE *f = fopen(path, "r");
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  if (f) {
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
      n += r;
      if (cap - n - 1 == 0) {
        cap *= 2;
        buf = realloc(buf, cap);
        assert_non_null(buf);
      }
    }
    fclose(f);
  }
  buf[n] = '\0';
  return buf;
}

char *rn_gt_slurp(rn_gt_t *g, const char *tag, const char *ext) {
  char path[700];
  snprintf(path, sizeof(path), "%s/%s.%s", g->tmp, tag, ext);
  return slurp_path(path);
}

int rn_gt_ctl(rn_gt_t *g, char **out, char **err, ...) {
  static unsigned seq;
  char tag[32], out_path[700], err_path[700];
  snprintf(tag, sizeof(tag), "ctl%u", seq++);
  snprintf(out_path, sizeof(out_path), "%s/%s.out", g->tmp, tag);
  snprintf(err_path, sizeof(err_path), "%s/%s.err", g->tmp, tag);
  va_list ap;
  va_start(ap, err);
  pid_t pid = spawn(g, NULL, out_path, err_path, ap);
  va_end(ap);
  int rc = rn_gt_wait_pid(g, pid);
  *out = slurp_path(out_path);
  *err = slurp_path(err_path);
  return rc;
}

/* ---- consume output ------------------------------------------------------------------------ */

void rn_gt_parse_records(const char *text, rn_gt_seen_list_t *out) {
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (len > 0) {
      json_error_t jerr;
      json_t *o = json_loadb(p, len, 0, &jerr);
      if (!o) {
        if (nl) fail_msg("consume output line is not JSON: %.*s", (int)len, p);
        break; /* the last, unterminated line of a killed member */
      }
      json_t *s = json_object_get(o, "shard"), *off = json_object_get(o, "offset"), *d = json_object_get(o, "data");
      if (!json_is_integer(s) || !json_is_integer(off) || !json_is_string(d))
        fail_msg("consume output line lacks shard/offset/data: %.*s", (int)len, p);
      if (out->n == out->cap) {
        out->cap = out->cap ? 2 * out->cap : 256;
        out->v = realloc(out->v, out->cap * sizeof(*out->v));
        assert_non_null(out->v);
      }
      out->v[out->n++] = (rn_gt_seen_t){.shard = (uint32_t)json_integer_value(s),
                                        .offset = (uint64_t)json_integer_value(off),
                                        .data = strdup(json_string_value(d))};
      json_decref(o);
    }
    if (!nl) break;
    p = nl + 1;
  }
}

void rn_gt_seen_free(rn_gt_seen_list_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i].data);
  free(l->v);
  memset(l, 0, sizeof(*l));
}

size_t rn_gt_seen_count(const rn_gt_seen_list_t *l, uint32_t shard, uint64_t offset) {
  size_t c = 0;
  for (size_t i = 0; i < l->n; i++) c += l->v[i].shard == shard && l->v[i].offset == offset;
  return c;
}
