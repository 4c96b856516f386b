/*
 * test_kill9.c — real-process crashes. A child process appends to a log in
 * sync mode on the real file system and reports, through a pipe, every batch
 * before it appends it (intent) and every acknowledgement. The parent
 * SIGKILLs it after a random number of acknowledgements, reopens the log and
 * checks: every acknowledged record is present, byte-exact, in order; every
 * record present is one the child appended at that offset; nothing else.
 *
 * Usage: test_kill9 [rounds] [seed]. Runs on the backend RUNNEL_IO_BACKEND
 * names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "logtest.h"
#include "testutil.h"

static int g_rounds = 20;
static uint64_t g_seed = 7;

typedef struct msg {
  uint32_t type; /* 1 intent, 2 ack */
  uint32_t n;
  uint64_t base;
  uint64_t tag;
  uint64_t vlen;
} msg_t;

static void write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w <= 0) _exit(3);
    c += w;
    n -= (size_t)w;
  }
}

typedef struct child_ack {
  int fd;
  uint64_t base;
  int *outstanding;
} child_ack_t;

static void child_on_ack(void *arg, rn_err_t err, uint64_t base) {
  child_ack_t *a = arg;
  if (err) _exit(4);
  msg_t m = {.type = 2, .base = base};
  write_all(a->fd, &m, sizeof(m));
  (*a->outstanding)--;
  free(a);
}

/* The child: append forever, a few batches in flight, until killed. */
static void child_main(const char *dir, int fd, uint64_t seed) {
  rn_io_t *io = NULL;
  if (rn_io_new(NULL, &io)) _exit(5);
  rn_log_opts_t o;
  rn_log_opts_default(&o);
  o.segment_bytes = 64 * 1024; /* many rolls */
  o.logger.fn = NULL;
  rn_log_t *log;
  rn_log_recovery_t rec;
  if (rn_log_open(io, dir, &o, &log, &rec)) {
    fprintf(stderr, "child open: %s\n", rec.message);
    _exit(6);
  }
  uint64_t rng = seed | 1;
  int outstanding = 0;
  for (uint64_t k = 0;; k++) {
    while (outstanding >= 8) rn_io_wait(io, -1);
    uint64_t tag = seed * 100000 + k;
    int n = 1 + (int)rn_test_rand_below(&rng, 20);
    size_t vlen = (size_t)rn_test_rand_below(&rng, 2000);
    size_t len;
    uint8_t *b = lt_batch(tag, n, vlen, (int64_t)k, RN_CODEC_NONE, &len);
    msg_t m = {.type = 1, .n = (uint32_t)n, .base = rn_log_next_offset(log), .tag = tag, .vlen = vlen};
    write_all(fd, &m, sizeof(m));
    child_ack_t *a = malloc(sizeof(*a));
    a->fd = fd;
    a->outstanding = &outstanding;
    uint64_t base;
    if (rn_log_append(log, b, len, 1, child_on_ack, a, &base) || base != m.base) _exit(7);
    outstanding++;
    free(b);
    rn_io_poll(io);
  }
}

typedef struct spec {
  uint64_t first, tag, vlen;
  uint32_t n;
} spec_t;

typedef struct parent {
  spec_t *specs;
  size_t nspecs, cap;
  uint64_t acked_end;
  size_t bi;
  uint8_t buf[4096];
} parent_t;

static void check_rec(void *arg, const rn_record_t *r) {
  parent_t *p = arg;
  while (p->bi + 1 < p->nspecs && p->specs[p->bi + 1].first <= r->offset) p->bi++;
  assert_true(p->nspecs > 0);
  spec_t *s = &p->specs[p->bi];
  assert_true(r->offset >= s->first && r->offset < s->first + s->n);
  int i = (int)(r->offset - s->first);
  int pre = snprintf((char *)p->buf, 64, "%" PRIu64 ":%d:", s->tag, i);
  size_t vl = s->vlen > (size_t)pre ? s->vlen : (size_t)pre;
  for (size_t k = (size_t)pre; k < vl; k++) p->buf[k] = (uint8_t)('a' + (s->tag + k) % 26);
  assert_int_equal(r->value_len, vl);
  assert_memory_equal(r->value, p->buf, vl);
}

static void test_kill9_rounds(void **state) {
  (void)state;
  char *tmp = rn_test_tmpdir();
  char dir[600];
  snprintf(dir, sizeof(dir), "%s/shard", tmp);
  parent_t p = {0};
  uint64_t rng = g_seed;
  uint64_t total_acked = 0;
  for (int round = 0; round < g_rounds; round++) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      child_main(dir, fds[1], g_seed * 1000 + (uint64_t)round);
      _exit(0);
    }
    close(fds[1]);
    uint64_t kill_after = rn_test_rand_below(&rng, 400);
    uint64_t acks = 0;
    bool killed = false;
    /* Read until the kill point, kill, then drain what the child wrote
     * before it died: intents and acks sent before the kill are real. */
    for (;;) {
      if (!killed && acks >= kill_after) {
        assert_int_equal(kill(pid, SIGKILL), 0);
        killed = true;
      }
      msg_t m;
      size_t got = 0;
      while (got < sizeof(m)) {
        ssize_t r = read(fds[0], (char *)&m + got, sizeof(m) - got);
        if (r <= 0) break;
        got += (size_t)r;
      }
      if (got < sizeof(m)) {
        if (!killed) fail_msg("child died early (round %d)", round);
        break; /* EOF after the kill (a torn message is ignored) */
      }
      if (m.type == 1) {
        /* Offsets from m.base on were lost in an earlier crash (or are new). */
        while (p.nspecs && p.specs[p.nspecs - 1].first >= m.base) p.nspecs--;
        if (p.nspecs == p.cap) {
          p.cap = p.cap ? p.cap * 2 : 256;
          p.specs = realloc(p.specs, p.cap * sizeof(*p.specs));
        }
        p.specs[p.nspecs++] = (spec_t){.first = m.base, .tag = m.tag, .vlen = m.vlen, .n = m.n};
      } else {
        acks++;
        assert_true(p.nspecs > 0);
        for (size_t i = p.nspecs; i-- > 0;)
          if (p.specs[i].first == m.base) {
            uint64_t end = m.base + p.specs[i].n;
            if (end > p.acked_end) p.acked_end = end;
            break;
          }
      }
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    close(fds[0]);
    total_acked += acks;

    rn_io_t *io = lt_io(NULL);
    rn_log_t *log;
    rn_log_recovery_t rec;
    rn_err_t err = rn_log_open(io, dir, NULL, &log, &rec);
    if (err) fail_msg("round %d: reopen: %s", round, rec.message);
    p.bi = 0;
    uint64_t count;
    assert_int_equal(lt_read_all(log, 0, check_rec, &p, &count), 0);
    uint64_t end = rn_log_end(log);
    if (end < p.acked_end)
      fail_msg("round %d: acknowledged records lost: end %" PRIu64 " < acked %" PRIu64, round, end, p.acked_end);
    /* Nothing beyond what the child announced. */
    uint64_t announced = p.nspecs ? p.specs[p.nspecs - 1].first + p.specs[p.nspecs - 1].n : 0;
    assert_true(end <= announced);
    assert_int_equal(count, end);
    /* The parent's view is now the truth for the next round. */
    while (p.nspecs && p.specs[p.nspecs - 1].first >= end) p.nspecs--;
    assert_int_equal(rn_log_close(log), 0);
    rn_io_destroy(io);
  }
  printf("kill -9 rounds: %d, acknowledgements checked: %" PRIu64 ", records at the end: %" PRIu64 "\n",
         g_rounds, total_acked, p.acked_end);
  free(p.specs);
  rn_test_rmtree(tmp);
  free(tmp);
}

int main(int argc, char **argv) {
  if (argc > 1) g_rounds = atoi(argv[1]);
  if (argc > 2) g_seed = strtoull(argv[2], NULL, 10);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill9_rounds)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
