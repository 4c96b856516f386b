/* logtest.c — see logtest.h. */
#include "logtest.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

void lt_ack_cb(void *arg, rn_err_t err, uint64_t base) {
  lt_ack_t *a = arg;
  a->done++;
  a->err = err;
  a->base = base;
}

uint8_t *lt_batch(uint64_t tag, int n, size_t value_len, int64_t ts, rn_codec_t codec, size_t *len) {
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  char key[32];
  snprintf(key, sizeof(key), "k%llu", (unsigned long long)tag);
  uint8_t *val = malloc(value_len + 64);
  assert_non_null(val);
  for (int i = 0; i < n; i++) {
    int pre = snprintf((char *)val, 64, "%llu:%d:", (unsigned long long)tag, i);
    size_t vl = value_len > (size_t)pre ? value_len : (size_t)pre;
    for (size_t k = (size_t)pre; k < vl; k++) val[k] = (uint8_t)('a' + (tag + k) % 26);
    rn_record_t r = {.timestamp = ts + i, .key = (const uint8_t *)key, .key_len = strlen(key),
                     .value = val, .value_len = vl};
    assert_int_equal(rn_batch_builder_add(&b, &r), 0);
  }
  const uint8_t *out;
  size_t out_len;
  assert_int_equal(rn_batch_builder_finish(&b, codec, NULL, &out, &out_len), 0);
  uint8_t *copy = malloc(out_len);
  assert_non_null(copy);
  memcpy(copy, out, out_len);
  *len = out_len;
  rn_batch_builder_free(&b);
  free(val);
  return copy;
}

void lt_wait(rn_io_t *io, lt_ack_t *a) {
  while (!a->done) {
    assert_true(rn_io_inflight(io) > 0);
    rn_io_wait(io, -1);
  }
}

void lt_drain(rn_io_t *io) {
  while (rn_io_inflight(io) > 0) rn_io_wait(io, -1);
}

rn_err_t lt_read_all(rn_log_t *log, uint64_t from, lt_record_fn fn, void *arg, uint64_t *count) {
  size_t cap = 1 << 20;
  uint8_t *buf = malloc(cap);
  assert_non_null(buf);
  uint64_t want = from, n = 0;
  rn_err_t err = 0;
  while (want < rn_log_end(log)) {
    size_t len = 0;
    err = rn_log_read(log, want, buf, cap, &len);
    if (err == RN_ETOOLARGE) {
      cap = len;
      buf = realloc(buf, cap);
      assert_non_null(buf);
      continue;
    }
    if (err) break;
    assert_true(len > 0);
    size_t at = 0;
    while (at < len) {
      rn_batch_iter_t it;
      err = rn_batch_iter_init(&it, buf + at, len - at);
      if (err) break;
      rn_record_t r;
      while ((err = rn_batch_iter_next(&it, &r)) == 0) {
        if (r.offset < want) continue; /* first batch may start before */
        assert_int_equal(r.offset, want);
        want++;
        n++;
        if (fn) fn(arg, &r);
      }
      at += it.hdr.batch_length;
      rn_batch_iter_free(&it);
      if (err != RN_EOFFSET) break;
      err = 0;
    }
    if (err) break;
  }
  free(buf);
  if (count) *count = n;
  return err;
}

rn_io_t *lt_io(rn_fs_t *fs) {
  rn_io_opts_t o;
  rn_io_opts_default(&o);
  if (fs) o.fs = fs;
  rn_io_t *io = NULL;
  rn_err_t err = rn_io_new(&o, &io);
  if (err) fprintf(stderr, "rn_io_new: %s\n", rn_strerror(err));
  assert_int_equal(err, 0);
  const char *want = getenv("RUNNEL_IO_BACKEND");
  if (want && *want && (!fs || fs == rn_fs_posix()))
    assert_string_equal(rn_io_backend_name(rn_io_backend(io)), want);
  return io;
}

rn_log_t *lt_open(rn_io_t *io, const char *dir, const rn_log_opts_t *opts) {
  rn_log_t *log = NULL;
  rn_log_recovery_t rec;
  rn_err_t err = rn_log_open(io, dir, opts, &log, &rec);
  if (err) fprintf(stderr, "open: %s: %s\n", rn_err_name(err), rec.message);
  assert_int_equal(err, 0);
  return log;
}

rn_err_t lt_submit(lt_sent_t *s, rn_log_t *log, uint64_t tag, int n, size_t vlen) {
  assert_true(s->n < LT_SENT_MAX);
  size_t len;
  uint8_t *b = lt_batch(tag, n, vlen, 1000 + (int64_t)tag, RN_CODEC_NONE, &len);
  s->ack[s->n] = (lt_ack_t){0};
  rn_err_t err = rn_log_append(log, b, len, 0, lt_ack_cb, &s->ack[s->n], NULL);
  free(b);
  if (err == 0) {
    s->tag[s->n] = tag;
    s->nrec[s->n] = n;
    s->n++;
  }
  return err;
}

/* The tag of every record in the log ("<tag>:<i>:"), in order. */
#define LT_SEEN_MAX 8192
typedef struct seen {
  uint64_t tags[LT_SEEN_MAX];
  uint64_t n;
} seen_t;

static void on_record(void *arg, const rn_record_t *r) {
  seen_t *s = arg;
  assert_true(s->n < LT_SEEN_MAX);
  s->tags[s->n++] = strtoull((const char *)r->value, NULL, 10);
}

static seen_t *read_tags(rn_log_t *log) {
  seen_t *s = calloc(1, sizeof(*s));
  assert_non_null(s);
  uint64_t count = 0;
  assert_int_equal(lt_read_all(log, rn_log_start(log), on_record, s, &count), 0);
  assert_int_equal(count, rn_log_end(log) - rn_log_start(log));
  return s;
}

void lt_expect_exactly_acked(const lt_sent_t *sent, rn_log_t *log) {
  seen_t *s = read_tags(log);
  uint64_t at = 0;
  for (size_t i = 0; i < sent->n; i++) {
    assert_true(sent->ack[i].done);
    if (sent->ack[i].err != 0) continue;
    for (int k = 0; k < sent->nrec[i]; k++) {
      assert_true(at < s->n);
      assert_int_equal(s->tags[at], sent->tag[i]);
      at++;
    }
  }
  assert_int_equal(at, s->n);
  free(s);
}

size_t lt_expect_prefix(const lt_sent_t *sent, rn_log_t *log) {
  seen_t *s = read_tags(log);
  uint64_t at = 0;
  size_t i = 0;
  for (; i < sent->n && at < s->n; i++)
    for (int k = 0; k < sent->nrec[i]; k++) {
      assert_true(at < s->n);
      assert_int_equal(s->tags[at], sent->tag[i]);
      at++;
    }
  assert_int_equal(at, s->n);
  free(s);
  return i;
}

uint8_t *lt_read_bytes(rn_log_t *log, uint64_t from, size_t *len) {
  size_t cap = 1 << 16, have = 0;
  uint8_t *out = NULL;
  uint8_t *buf = malloc(cap);
  assert_non_null(buf);
  uint64_t want = from;
  while (want < rn_log_end(log)) {
    size_t got = 0;
    rn_err_t err = rn_log_read(log, want, buf, cap, &got);
    if (err == RN_ETOOLARGE) {
      cap = got;
      buf = realloc(buf, cap);
      assert_non_null(buf);
      continue;
    }
    assert_int_equal(err, 0);
    assert_true(got > 0);
    out = realloc(out, have + got);
    assert_non_null(out);
    memcpy(out + have, buf, got);
    have += got;
    /* The next offset after the last batch read. */
    size_t at = 0;
    while (at < got) {
      rn_batch_header_t h;
      assert_int_equal(rn_batch_header_decode(buf + at, got - at, &h), 0);
      want = h.base_offset + h.record_count;
      at += h.batch_length;
    }
  }
  free(buf);
  *len = have;
  return out;
}

bool lt_epochs_ok(rn_log_t *log, char *why, size_t cap) {
  uint32_t n = rn_log_epochs(log, NULL, 0);
  rn_log_epoch_t *h = calloc(n ? n : 1, sizeof(*h));
  assert_non_null(h);
  rn_log_epochs(log, h, n);
  bool ok = true;
  uint64_t start = rn_log_start(log), next = rn_log_next_offset(log);
  for (uint32_t i = 0; ok && i < n; i++) {
    if (h[i].start_offset >= next) {
      snprintf(why, cap, "entry %u (epoch %u) starts at %llu, at or past the log end %llu", i, h[i].epoch,
               (unsigned long long)h[i].start_offset, (unsigned long long)next);
      ok = false;
    } else if (i && (h[i].epoch <= h[i - 1].epoch || h[i].start_offset <= h[i - 1].start_offset)) {
      snprintf(why, cap, "entry %u does not increase", i);
      ok = false;
    }
  }
  if (ok && next > start && (n == 0 || h[0].start_offset > start)) {
    snprintf(why, cap, "no entry covers the log start %llu", (unsigned long long)start);
    ok = false;
  }
  size_t len = 0;
  uint8_t *b = ok ? lt_read_bytes(log, start, &len) : NULL;
  size_t at = 0;
  uint32_t k = 0;
  while (ok && at < len) {
    rn_batch_header_t hdr;
    assert_int_equal(rn_batch_header_decode(b + at, len - at, &hdr), 0);
    while (k + 1 < n && h[k + 1].start_offset <= hdr.base_offset) k++;
    if (hdr.leader_epoch != h[k].epoch) {
      snprintf(why, cap, "batch at offset %llu has epoch %u, its entry (start %llu) says %u",
               (unsigned long long)hdr.base_offset, hdr.leader_epoch, (unsigned long long)h[k].start_offset,
               h[k].epoch);
      ok = false;
    }
    at += hdr.batch_length;
  }
  free(b);
  free(h);
  return ok;
}
