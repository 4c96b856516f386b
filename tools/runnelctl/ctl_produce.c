/*
 * ctl_produce.c — `runnelctl produce STREAM`: one record per line of
 * standard input (or one file as one record), keyed at random, by --key,
 * by a JSON field or by a delimiter, with optional headers; through
 * librunnel's idempotent producer.
 *
 * Nothing is claimed that did not happen: the stream is described first (a
 * missing stream fails even with empty input), every record is counted only
 * when its delivery report says acknowledged, and the summary (stderr; with
 * --json a document on stdout) gives records, bytes, shards, failures and
 * the elapsed time. The delivery callback runs on librunnel's I/O thread:
 * it only counts, under atomics, and prints failures under err_mu.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl_int.h"
#include "runnel/units.h"

typedef struct {
  ctl_t *c;
  atomic_ulong ok, failed;
  atomic_ullong bytes;   /* data bytes acknowledged */
  atomic_uchar *touched; /* per shard: a record was acknowledged there */
  size_t nshards;
  pthread_mutex_t err_mu; /* one writer of error lines at a time */
} produce_state_t;

typedef struct {
  unsigned long line;
  size_t len;
} rec_tag_t;

static produce_state_t *g_produce;

static void on_produced(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  (void)offset;
  produce_state_t *ps = g_produce;
  rec_tag_t *tag = opaque;
  if (err == 0) {
    atomic_fetch_add(&ps->ok, 1);
    atomic_fetch_add(&ps->bytes, tag->len);
    if (shard < ps->nshards) atomic_store(&ps->touched[shard], 1);
  } else {
    atomic_fetch_add(&ps->failed, 1);
    pthread_mutex_lock(&ps->err_mu);
    fprintf(ps->c->err, "runnelctl: line %lu: %s (%s)\n", tag->line, rn_strerror(err), rn_err_name(err));
    pthread_mutex_unlock(&ps->err_mu);
  }
  free(tag);
}

static uint64_t rand_state(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
  return s ? s : 0x9e3779b97f4a7c15ULL;
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* The whole of path (or stdin for "-") into a malloc'd buffer. */
static int read_file(ctl_t *c, const char *path, char **buf, size_t *len) {
  FILE *f = strcmp(path, "-") == 0 ? c->in : fopen(path, "rb");
  if (f == NULL) return ctl_failf(c, "--file %s: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap);
  if (b == NULL) abort();
  size_t got;
  while ((got = fread(b + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      cap *= 2;
      b = realloc(b, cap);
      if (b == NULL) abort();
    }
  }
  int e = ferror(f) ? errno : 0;
  if (f != c->in) fclose(f);
  if (e) {
    free(b);
    return ctl_failf(c, "--file %s: %s", path, strerror(e));
  }
  *buf = b;
  *len = n;
  return 0;
}

static void progress(ctl_t *c, produce_state_t *ps, int64_t t0, bool final) {
  unsigned long ok = atomic_load(&ps->ok);
  char b[RN_UNITS_STRLEN];
  rn_format_size((int64_t)atomic_load(&ps->bytes), b, sizeof b);
  double secs = (double)(ctl_mono_ms() - t0) / 1000.0;
  if (final) {
    fprintf(c->err, "\r\033[K");
  } else {
    fprintf(c->err, "\r\033[K%lu records, %s, %.0f records/s", ok, b, secs > 0 ? (double)ok / secs : 0.0);
  }
  fflush(c->err);
}

int ctl_produce(ctl_t *c, const ctl_args_t *a) {
  const char *stream = a->pos[0], *key_opt = ctl_arg(a, "--key"), *field = ctl_arg(a, "--key-field"),
             *delim = ctl_arg(a, "--key-delimiter"), *file = ctl_arg(a, "--file");
  if (!!key_opt + !!field + !!delim > 1)
    return ctl_usage(c, "produce: --key, --key-field and --key-delimiter exclude each other");
  if (delim && delim[0] == '\0') return ctl_usage(c, "--key-delimiter: give a delimiter (like : or a tab)");
  if (delim && file) return ctl_usage(c, "produce: --key-delimiter reads lines; --file sends one record");
  size_t nh = ctl_arg_all(a, "--header", NULL, 0);
  const char **hv = calloc(nh + 1, sizeof *hv);
  rn_record_header_t *hs = calloc(nh + 1, sizeof *hs);
  if (hv == NULL || hs == NULL) abort();
  ctl_arg_all(a, "--header", hv, nh);
  for (size_t i = 0; i < nh; i++) {
    const char *eq = strchr(hv[i], '=');
    if (eq == NULL || eq == hv[i]) {
      int rc = ctl_usage(c, "-H: \"%s\" is not NAME=VALUE", hv[i]);
      free(hv);
      free(hs);
      return rc;
    }
    hs[i].key = (const uint8_t *)hv[i];
    hs[i].key_len = (size_t)(eq - hv[i]);
    hs[i].value = (const uint8_t *)eq + 1;
    hs[i].value_len = strlen(eq + 1);
  }
  int status = 0;
  rn_producer_t *p = NULL;
  rn_stream_desc_t *d = NULL;
  produce_state_t ps = {.c = c};
  char *line = NULL, *whole = NULL;
  if (ctl_client(c)) {
    status = CTL_EXIT_FAIL;
    goto out;
  }
  /* A stream that does not exist is a failure even when there is nothing
   * to send; the description also gives the shard count for the summary. */
  rn_err_t err = rn_stream_describe(c->cl, stream, &d);
  if (err) {
    status = ctl_fail(c, err, "stream \"%s\"", stream);
    goto out;
  }
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.delivery_timeout_ms = 30000;
  pc.close_timeout_ms = 60000;
  err = rn_producer_new(c->cl, &pc, &p);
  if (err) {
    status = ctl_fail(c, err, "produce to \"%s\"", stream);
    goto out;
  }
  atomic_init(&ps.ok, 0);
  atomic_init(&ps.failed, 0);
  atomic_init(&ps.bytes, 0);
  ps.nshards = d->shard_count;
  ps.touched = calloc(d->shard_count + 1, sizeof *ps.touched);
  if (ps.touched == NULL) abort();
  pthread_mutex_init(&ps.err_mu, NULL);
  g_produce = &ps;
  int64_t t0 = ctl_mono_ms(), last_progress = t0;
  uint64_t rs = rand_state();
  unsigned long line_no = 0, bad = 0;
  size_t cap = 0, wlen = 0;
  ssize_t n;
  bool once = file != NULL;
  if (once && (status = read_file(c, file, &whole, &wlen)) != 0) goto done;
  for (;;) {
    char *rec;
    size_t len;
    if (once) {
      if (line_no > 0) break;
      rec = whole;
      len = wlen;
    } else {
      if ((n = getline(&line, &cap, c->in)) < 0) break;
      if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
      if (n > 0 && line[n - 1] == '\r') line[--n] = '\0';
      rec = line;
      len = (size_t)n;
    }
    line_no++;
    if (len == 0 && !once) continue;
    char *key = NULL, rkey[17], why[200];
    size_t keylen = 0;
    const char *kp;
    if (field) {
      if (ctl_key_field(rec, len, field, &key, &keylen, why, sizeof why) != 0) {
        pthread_mutex_lock(&ps.err_mu);
        fprintf(c->err, "runnelctl: line %lu: %s\n", line_no, why);
        pthread_mutex_unlock(&ps.err_mu);
        bad++;
        continue;
      }
      kp = key;
    } else if (delim) {
      char *at = strstr(rec, delim);
      if (at == NULL) {
        pthread_mutex_lock(&ps.err_mu);
        fprintf(c->err, "runnelctl: line %lu: no key delimiter \"%s\"\n", line_no, delim);
        pthread_mutex_unlock(&ps.err_mu);
        bad++;
        continue;
      }
      kp = rec;
      keylen = (size_t)(at - rec);
      size_t skip = keylen + strlen(delim);
      rec += skip;
      len -= skip;
    } else if (key_opt) {
      kp = key_opt;
      keylen = strlen(key_opt);
    } else {
      snprintf(rkey, sizeof rkey, "%016" PRIx64, xorshift(&rs));
      kp = rkey;
      keylen = 16;
    }
    rec_tag_t *tag = malloc(sizeof *tag);
    if (tag == NULL) abort();
    tag->line = line_no;
    tag->len = len;
    rn_message_t m = {.stream = stream, .key = kp, .key_len = keylen, .data = rec, .data_len = len,
                      .headers = nh ? hs : NULL, .header_count = nh, .cb = on_produced, .opaque = tag};
    err = rn_producer_send_message(p, &m);
    free(key);
    if (err) {
      free(tag); /* the callback is never called for a failed send */
      if (err == RN_ENOSTREAM || err == RN_ECONNECTION || err == RN_ECLOSED || err == RN_EBADREQUEST) {
        status = ctl_fail(c, err, "stream \"%s\"", stream);
        break; /* every later line would fail the same way */
      }
      pthread_mutex_lock(&ps.err_mu);
      fprintf(c->err, "runnelctl: line %lu: %s (%s)\n", line_no, rn_strerror(err), rn_err_name(err));
      pthread_mutex_unlock(&ps.err_mu);
      bad++;
    }
    if (c->err_tty && ctl_mono_ms() - last_progress >= 500) {
      last_progress = ctl_mono_ms();
      pthread_mutex_lock(&ps.err_mu);
      progress(c, &ps, t0, false);
      pthread_mutex_unlock(&ps.err_mu);
    }
  }
  if (!once && ferror(c->in)) status = ctl_failf(c, "reading standard input: %s", strerror(errno));
done:
  rn_producer_destroy(p); /* flushes; every callback has run after this */
  p = NULL;
  g_produce = NULL;
  if (c->err_tty) progress(c, &ps, t0, true);
  {
    unsigned long ok = atomic_load(&ps.ok), failed = atomic_load(&ps.failed) + bad;
    size_t shards = 0;
    for (size_t i = 0; i < ps.nshards; i++) shards += atomic_load(&ps.touched[i]);
    int64_t elapsed = ctl_mono_ms() - t0;
    uint64_t bytes = atomic_load(&ps.bytes);
    if (c->json) {
      json_t *o = json_object();
      json_object_set_new(o, "stream", json_string(stream));
      json_object_set_new(o, "produced", json_integer((json_int_t)ok));
      json_object_set_new(o, "failed", json_integer((json_int_t)failed));
      json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
      json_object_set_new(o, "shard_count", json_integer((json_int_t)shards));
      json_object_set_new(o, "elapsed_ms", json_integer(elapsed));
      ctl_print_json(c, o);
    } else {
      char b[RN_UNITS_STRLEN];
      rn_format_size((int64_t)bytes, b, sizeof b);
      fprintf(c->err, "produced %lu record%s (%s) to %s: %zu shard%s, %lu failed, %.3fs\n", ok, ok == 1 ? "" : "s",
              b, stream, shards, shards == 1 ? "" : "s", failed, (double)elapsed / 1000.0);
    }
    if (failed && status == 0) status = CTL_EXIT_FAIL;
  }
  pthread_mutex_destroy(&ps.err_mu);
out:
  rn_producer_destroy(p);
  rn_stream_desc_free(d);
  free(ps.touched);
  free(line);
  free(whole);
  free(hv);
  free(hs);
  return status;
}
