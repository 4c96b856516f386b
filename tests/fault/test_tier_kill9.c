/*
 * test_tier_kill9.c — kill -9 of the real runneld at random points of the
 * upload cycle of a tiered stream (issue 13, "What it must show" 3):
 *
 *   test_tier_kill9 [rounds] [seed] [dir|s3rver]
 *
 * The stream has 2 shards of tiny segments (64 KiB), a 1 s local retention
 * and no total retention, so segments seal, upload, get their UPLOADED
 * record and leave the local disk all the time. Each round starts runneld
 * on the same data directory and the same store, checks everything, then
 * produces and SIGKILLs the broker at a point drawn from the seeded RNG
 * (the seed and every round's draw are printed), in one of three ways:
 *
 *   ack     at the K-th acknowledgement, from the delivery callback, while
 *           the producer keeps sending (rolls, uploads and deletes racing
 *           appends);
 *   delay   M records produced and flushed, then a random delay of 0-2.5 s
 *           while uploads, manifest writes and local deletes run on their
 *           own (a delay drawn from the RNG decides the kill point; it
 *           synchronises nothing);
 *   upload  M records flushed, then /metrics polled until
 *           runnel_tier_uploaded_bytes_total moved or an upload is active
 *           (or 3 s passed without either: then everything was uploaded),
 *           and the kill follows at once.
 *
 * While the broker is dead (nothing moves), the crash state is checked:
 * for every shard, each offset below the acknowledged end is held by a
 * local segment file or by a complete remote segment (.log, .index and
 * .timeindex, the .log decoding into verified batches) — no segment is
 * ever both absent locally and absent remotely. After each restart every
 * shard is read from EARLIEST (offset 0, below the local start: from the
 * store) to its end: offsets dense, every record one that send() accepted,
 * byte-exact, each once, in order; every acknowledged record at its
 * acknowledged (shard, offset).
 *
 * At the end (broker running, nothing produced): the upload backlog drains
 * to 0; two orphans are planted in a shard prefix (a segment key with an
 * epoch never used and a stray key), old enough for tier_gc_grace; the test
 * polls until the collector removed them and the store holds exactly what
 * the manifest references — per shard one complete triple per remote
 * segment, as many as `stream describe` counts remote_segments, contiguous
 * from offset 0 up to at least the local start, plus the manifest, and no
 * temporary file of a write a kill interrupted left in a tier_dir — and
 * runnel_tier_orphans_collected_total counted them; a last full read
 * shows GC removed nothing still needed.
 *
 * The s3rver variant installs s3rver with tests/support/s3peers-install.sh
 * (skips with exit 77 where it cannot) and starts it on a run-time port
 * (rn_s3peer_start, tests/support/s3peer.h); it lists the bucket with tests/conformance/tier_s3.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "broker_proc.h"
#include "s3peer.h"
#include "tiertest.h"
#include "httpclient.h"
#include "runnel/batch.h"
#include "runnel/runnel.h"
#include "testutil.h"

#include <xxhash.h>

#ifndef RN_TEST_RUNNELCTL
#define RN_TEST_RUNNELCTL "runnelctl"
#endif
#ifndef RN_TEST_PYTHON
#define RN_TEST_PYTHON "/usr/bin/python3"
#endif
#ifndef RN_TEST_CONFORMANCE_DIR
#define RN_TEST_CONFORMANCE_DIR "tests/conformance"
#endif


#define STREAM "tk9"
#define SHARDS 2
#define MAX_PER_ROUND 20000u
#define HDR 10        /* "T9" | u32 round | u32 seq */
#define MAX_EXTRA 700 /* random bytes after the header */
#define PACE 256      /* unreported records the sender allows itself */
#define DEADLINE_MS 180000
#define MAX_ROUNDS 255

static unsigned g_rounds = 20;
static uint64_t g_seed = 1;

/* ---- the store ------------------------------------------------------------------------ */

typedef enum { ST_DIR, ST_S3RVER } store_kind_t;

typedef struct store {
  store_kind_t kind;
  char dir[700]; /* ST_DIR: tier_dir; S3: the peer's data directory */
  char mirror[700];
  rn_s3peer_t peer;
  char set[8][800];
  int nset;
  const char *data_dir; /* the broker's: the stream's uid is in its directory name */
} store_t;

static int store_start(store_t *st, store_kind_t kind, const char *tmp, char *why, size_t whylen) {
  memset(st, 0, sizeof(*st));
  st->kind = kind;
  snprintf(st->dir, sizeof st->dir, "%s/store", tmp);
  snprintf(st->mirror, sizeof st->mirror, "%s/mirror", tmp);
  if (kind == ST_DIR) {
    snprintf(st->set[st->nset++], sizeof st->set[0], "tier_dir=%s", st->dir);
    return 0;
  }
  int rc = rn_s3peer_start(&st->peer, RN_S3PEER_S3RVER, st->dir, why, whylen) ? 77 : 0;
  if (rc != 0) return rc;
  snprintf(st->set[st->nset++], sizeof st->set[0], "s3_endpoint=%s", st->peer.endpoint);
  snprintf(st->set[st->nset++], sizeof st->set[0], "s3_bucket=%s", st->peer.bucket);
  snprintf(st->set[st->nset++], sizeof st->set[0], "s3_path_style=true");
  setenv("AWS_ACCESS_KEY_ID", st->peer.access_key, 1);
  setenv("AWS_SECRET_ACCESS_KEY", st->peer.secret_key, 1);
  return 0;
}

static void store_stop(store_t *st) {
  if (st->kind != ST_DIR) rn_s3peer_stop(&st->peer);
}

/* The key prefix of shard s (docs/tiering.md: "<hash8>/<cluster>/<stream>-<uid>/<shard>/",
 * hash8 = XXH3 of the rest, cluster "local" by default); the uid comes from
 * the stream's directory in the data directory. False before it exists. */
static bool shard_prefix(const char *data_dir, uint32_t s, char *out, size_t cap) {
  char streams[700];
  snprintf(streams, sizeof streams, "%s/streams", data_dir);
  DIR *d = opendir(streams);
  if (!d) return false;
  struct dirent *e;
  unsigned long long uid = 0;
  bool found = false;
  while ((e = readdir(d)))
    if (strncmp(e->d_name, STREAM "-", strlen(STREAM) + 1) == 0) {
      uid = strtoull(e->d_name + strlen(STREAM) + 1, NULL, 10);
      found = true;
    }
  closedir(d);
  if (!found) return false;
  char rest[300];
  snprintf(rest, sizeof rest, "local/%s-%llu/%u/", STREAM, uid, s);
  snprintf(out, cap, "%08x/%s", (unsigned)(XXH3_64bits(rest, strlen(rest)) & 0xffffffffu), rest);
  return true;
}

/* The directory that holds the store's objects as files: tier_dir itself,
 * or a fresh mirror of the bucket (tier_s3.py mirror). */
static const char *store_files(store_t *st) {
  if (st->kind == ST_DIR) return st->dir;
  rn_test_rmtree(st->mirror);
  mkdir(st->mirror, 0755);
  /* shard by shard: s3rver 3.7 answers InternalError to a LIST matching
   * more than 1000 keys, so the whole bucket cannot be listed at once */
  for (uint32_t s = 0; s < SHARDS; s++) {
    char prefix[600];
    if (!shard_prefix(st->data_dir, s, prefix, sizeof prefix)) continue;
    char script[600];
    snprintf(script, sizeof script, "%s/tier_s3.py", RN_TEST_CONFORMANCE_DIR);
    const char *argv[] = {RN_TEST_PYTHON, script, "--endpoint", st->peer.endpoint, "--bucket", st->peer.bucket,
                          "mirror", prefix, st->mirror, NULL};
    char out[4096];
    int rc = rn_test_run(argv, out, sizeof out);
    if (rc != 0) fail_msg("tier_s3.py mirror %s: exit %d: %s", prefix, rc, out);
  }
  return st->mirror;
}

/* Put an object (an orphan) at key; its mtime two hours back where the
 * store lets a test set it (a directory). */
static void store_plant(store_t *st, const char *key, const void *data, size_t len) {
  char path[1200];
  if (st->kind == ST_DIR) {
    snprintf(path, sizeof path, "%s/%s", st->dir, key);
  } else {
    snprintf(path, sizeof path, "%s/planted.bin", st->mirror);
  }
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
  if (st->kind == ST_DIR) {
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= 7200;
    tv[1] = tv[0];
    assert_int_equal(utimes(path, tv), 0);
    return;
  }
  char script[600];
  snprintf(script, sizeof script, "%s/tier_s3.py", RN_TEST_CONFORMANCE_DIR);
  const char *argv[] = {RN_TEST_PYTHON, script, "--endpoint", st->peer.endpoint, "--bucket", st->peer.bucket,
                        "put", key, path, NULL};
  char out[4096];
  int rc = rn_test_run(argv, out, sizeof out);
  if (rc != 0) fail_msg("tier_s3.py put %s: exit %d: %s", key, rc, out);
}

/* ---- what the store and the data directory hold ------------------------------------- */

typedef struct rseg {
  uint64_t base, next; /* next: after the last record of the .log (0 until decoded) */
  uint32_t epoch;
  bool log, index, tindex;
  bool log_ok; /* the .log decoded into verified batches from base */
  char log_path[1200];
} rseg_t;

typedef struct rshard {
  char prefix[1100]; /* key prefix of the shard ("" until seen) */
  rseg_t *v;
  size_t n, cap;
  bool manifest;
  char **unknown; /* keys in the prefix that are no segment object */
  size_t nunknown;
} rshard_t;

typedef struct rview {
  rshard_t sh[SHARDS];
  size_t temps; /* temporary files (interrupted writes) */
  char temp_example[1100];
  size_t objects;
} rview_t;

static rview_t *g_rv; /* filled by the nftw callback */
static const char *g_rv_root;

static void rview_free(rview_t *rv) {
  for (int s = 0; s < SHARDS; s++) {
    free(rv->sh[s].v);
    for (size_t i = 0; i < rv->sh[s].nunknown; i++) free(rv->sh[s].unknown[i]);
    free(rv->sh[s].unknown);
  }
  memset(rv, 0, sizeof(*rv));
}

static rseg_t *rseg_get(rshard_t *sh, uint64_t base, uint32_t epoch) {
  for (size_t i = 0; i < sh->n; i++)
    if (sh->v[i].base == base && sh->v[i].epoch == epoch) return &sh->v[i];
  if (sh->n == sh->cap) {
    sh->cap = sh->cap ? 2 * sh->cap : 64;
    sh->v = realloc(sh->v, sh->cap * sizeof(*sh->v));
    assert_non_null(sh->v);
  }
  rseg_t *r = &sh->v[sh->n++];
  memset(r, 0, sizeof(*r));
  r->base = base;
  r->epoch = epoch;
  return r;
}

/* Key layout (docs/tiering.md): <hash8>/<cluster>/<stream>-<uid>/<shard>/<file>. */
static int rview_walk(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)ftw;
  if (flag != FTW_F) return 0;
  (void)sb;
  const char *key = path + strlen(g_rv_root);
  while (*key == '/') key++;
  const char *file = strrchr(key, '/');
  file = file ? file + 1 : key;
  /* localdir writes into root/.rn-tmp-work/ and renames into place */
  if (strstr(file, ".tmp") || file[0] == '.' || strncmp(key, ".rn-tmp-", 8) == 0 || strstr(key, "/.rn-tmp-")) {
    if (!g_rv->temps++) snprintf(g_rv->temp_example, sizeof g_rv->temp_example, "%s", key);
    return 0;
  }
  g_rv->objects++;
  char comp[5][256];
  int nc = 0;
  const char *p = key;
  while (*p && nc < 5) {
    const char *q = strchr(p, '/');
    size_t l = q ? (size_t)(q - p) : strlen(p);
    snprintf(comp[nc++], sizeof comp[0], "%.*s", (int)(l < 255 ? l : 255), p);
    if (!q) break;
    p = q + 1;
  }
  if (nc != 5 || strncmp(comp[2], STREAM "-", strlen(STREAM) + 1) != 0) return 0; /* descriptors, other streams */
  const char *d = comp[3];
  while (*d && (*d < '0' || *d > '9')) d++;
  unsigned shard = (unsigned)strtoul(d, NULL, 10);
  if (shard >= SHARDS) fail_msg("object %s: shard %u of a %d-shard stream", key, shard, SHARDS);
  rshard_t *sh = &g_rv->sh[shard];
  snprintf(sh->prefix, sizeof sh->prefix, "%s/%s/%s/%s/", comp[0], comp[1], comp[2], comp[3]);
  if (strcmp(file, "manifest") == 0) {
    sh->manifest = true;
    return 0;
  }
  unsigned long long base;
  unsigned epoch;
  char ext[32];
  int used = 0;
  if (strlen(file) > 21 && file[20] == '-' && sscanf(file, "%20llu-%u.%31[a-z]%n", &base, &epoch, ext, &used) == 3 &&
      file[used] == '\0') {
    rseg_t *r = rseg_get(sh, base, epoch);
    if (strcmp(ext, "log") == 0) {
      r->log = true;
      snprintf(r->log_path, sizeof r->log_path, "%s", path);
      return 0;
    }
    if (strcmp(ext, "index") == 0) {
      r->index = true;
      return 0;
    }
    if (strcmp(ext, "timeindex") == 0) {
      r->tindex = true;
      return 0;
    }
  }
  sh->unknown = realloc(sh->unknown, (sh->nunknown + 1) * sizeof(char *));
  assert_non_null(sh->unknown);
  sh->unknown[sh->nunknown++] = strdup(key);
  return 0;
}

/* Decode a remote .log: batches back to back from base, every one verified. */
static void rseg_decode(rseg_t *r) {
  int fd = open(r->log_path, O_RDONLY);
  if (fd < 0) return;
  struct stat sb;
  if (fstat(fd, &sb) != 0 || sb.st_size == 0) {
    close(fd);
    return;
  }
  uint8_t *buf = malloc((size_t)sb.st_size);
  assert_non_null(buf);
  ssize_t got = pread(fd, buf, (size_t)sb.st_size, 0);
  close(fd);
  size_t len = got > 0 ? (size_t)got : 0, pos = 0;
  uint64_t next = r->base;
  bool ok = len == (size_t)sb.st_size;
  while (ok && pos < len) {
    rn_batch_header_t h;
    size_t need = 0;
    if (rn_batch_verify(buf + pos, len - pos, &h, &need) != 0 || h.base_offset != next) {
      ok = false;
      break;
    }
    next = rn_batch_last_offset(&h) + 1;
    pos += need;
  }
  free(buf);
  r->log_ok = ok && next > r->base;
  r->next = next;
}

static int rseg_cmp(const void *a, const void *b) {
  const rseg_t *x = a, *y = b;
  if (x->base != y->base) return x->base < y->base ? -1 : 1;
  return x->epoch < y->epoch ? -1 : x->epoch > y->epoch;
}

static void rview_load(store_t *st, rview_t *rv) {
  memset(rv, 0, sizeof(*rv));
  g_rv = rv;
  g_rv_root = store_files(st);
  nftw(g_rv_root, rview_walk, 16, FTW_PHYS);
  for (int s = 0; s < SHARDS; s++) {
    rshard_t *sh = &rv->sh[s];
    for (size_t i = 0; i < sh->n; i++)
      if (sh->v[i].log) rseg_decode(&sh->v[i]);
    if (sh->n) qsort(sh->v, sh->n, sizeof(*sh->v), rseg_cmp);
  }
}

/* Bases of the local segment files of shard s, sorted. */
static size_t local_bases(const char *data_dir, uint32_t s, uint64_t *out, size_t cap) {
  char streams[700];
  snprintf(streams, sizeof streams, "%s/streams", data_dir);
  DIR *d = opendir(streams);
  if (!d) return 0;
  char sdir[1400] = "";
  struct dirent *e;
  while ((e = readdir(d)))
    if (strncmp(e->d_name, STREAM "-", strlen(STREAM) + 1) == 0)
      snprintf(sdir, sizeof sdir, "%s/%s/shardId-%012u", streams, e->d_name, s);
  closedir(d);
  size_t n = 0;
  d = sdir[0] ? opendir(sdir) : NULL;
  if (!d) return 0;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l == 24 && strcmp(e->d_name + 20, ".log") == 0 && n < cap) out[n++] = strtoull(e->d_name, NULL, 10);
  }
  closedir(d);
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
      uint64_t t = out[j];
      out[j] = out[j - 1];
      out[j - 1] = t;
    }
  return n;
}

/* ---- records ---------------------------------------------------------------------------- */

typedef enum { REC_PENDING = 1, REC_REJECTED, REC_ACKED, REC_FAILED } rec_state_t;

typedef struct rec {
  uint8_t state, seen;
  uint32_t shard;
  uint64_t offset;
} rec_t;

typedef struct round {
  uint32_t n;
  rec_t *recs;
} round_t;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  round_t rounds[MAX_ROUNDS + 1];
  uint64_t acked, failed, unreported;
  uint64_t kill_at; /* 0: never from the callback */
  pid_t broker_pid;
  bool killed;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static size_t make_data(uint32_t r, uint32_t q, uint8_t *buf) {
  uint64_t st = (g_seed * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)r << 40) ^ ((uint64_t)q * 0xD1B54A32D192ED03ull);
  st |= 1;
  (void)rn_test_rand(&st);
  size_t len = HDR + (size_t)rn_test_rand_below(&st, MAX_EXTRA + 1);
  buf[0] = 'T';
  buf[1] = '9';
  memcpy(buf + 2, &r, 4);
  memcpy(buf + 6, &q, 4);
  for (size_t i = HDR; i < len; i++) buf[i] = (uint8_t)(rn_test_rand(&st) >> 56);
  return len;
}

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  rec_t *rec = opaque;
  pthread_mutex_lock(&g.mu);
  if (err) {
    rec->state = REC_FAILED;
    g.failed++;
  } else {
    rec->state = REC_ACKED;
    rec->shard = shard;
    rec->offset = offset;
    if (++g.acked == g.kill_at && !g.killed) {
      kill(g.broker_pid, SIGKILL);
      g.killed = true;
    }
  }
  g.unreported--;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
}

/* ---- the fixture ------------------------------------------------------------------------- */

typedef struct fx {
  char *tmp;
  char data_dir[600];
  store_t st;
  rn_test_broker_t br;
  rn_client_t *cl;
  uint64_t acked_end[SHARDS]; /* one past the highest acknowledged offset */
} fx_t;

static fx_t g_fx;

static void broker_start(fx_t *f) {
  const char *args[40];
  int n = 0;
  static const char *const common[] = {
      "segment_bytes=64KiB",
      "tier_gc_grace=1s",       /* the collector may remove an unknown object a second old */
      "tier_gc_interval=1s",
      "tier_disk_high_water=100", /* this test is about crashes, not back-pressure */
  };
  for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
    args[n++] = "--set";
    args[n++] = common[i];
  }
  for (int i = 0; i < f->st.nset; i++) {
    args[n++] = "--set";
    args[n++] = f->st.set[i];
  }
  args[n] = NULL;
  if (rn_test_broker_start(&f->br, f->data_dir, args) != 0) fail_msg("runneld did not start; see %s", f->br.log_path);
  rn_client_conf_t cc;
  rn_client_conf_init(&cc);
  cc.broker = f->br.addr;
  cc.reconnect_backoff_ms = 10;
  cc.reconnect_backoff_max_ms = 50;
  assert_int_equal(rn_client_new(&cc, &f->cl), 0);
}

static long long metric(const fx_t *f, const char *name) {
  rn_hc_t c;
  if (rn_hc_connect(&c, f->br.http_port) != 0) {
    rn_hc_close(&c);
    return -2;
  }
  long long v = rn_hc_metric(&c, name);
  rn_hc_close(&c);
  return v;
}

static json_t *ctl_json(fx_t *f, const char *const *args) {
  return rn_tt_ctl_json(RN_TEST_RUNNELCTL, f->br.addr, f->tmp, args);
}

typedef struct shard_view {
  uint64_t remote_segments, local_segments, backlog_segments, local_start, start, end;
} shard_view_t;

static void describe(fx_t *f, shard_view_t *v) {
  static const char *const args[] = {"stream", "describe", STREAM, NULL};
  json_t *d = ctl_json(f, args);
  json_t *shards = json_object_get(d, "shards");
  assert_int_equal(json_array_size(shards), SHARDS);
  for (size_t i = 0; i < SHARDS; i++) {
    json_t *so = json_array_get(shards, i);
    uint32_t s = (uint32_t)rn_tt_jint(so, "shard");
    assert_true(s < SHARDS);
    v[s].remote_segments = (uint64_t)rn_tt_jint(so, "remote_segments");
    v[s].local_segments = (uint64_t)rn_tt_jint(so, "local_segments");
    v[s].backlog_segments = (uint64_t)rn_tt_jint(so, "upload_backlog_segments");
    v[s].local_start = (uint64_t)rn_tt_jint(so, "local_start_offset");
    v[s].start = (uint64_t)rn_tt_jint(so, "start_offset");
    v[s].end = (uint64_t)rn_tt_jint(so, "end_offset");
  }
  json_decref(d);
}

/* ---- the checks -------------------------------------------------------------------------- */

/* Broker dead: every offset below the acknowledged end of each shard is in a
 * local segment file or a complete, verified remote segment. */
static void check_crash_state(fx_t *f, uint32_t round) {
  rview_t rv;
  rview_load(&f->st, &rv);
  static uint64_t bases[1 << 14];
  for (uint32_t s = 0; s < SHARDS; s++) {
    size_t nl = local_bases(f->data_dir, s, bases, sizeof bases / sizeof bases[0]);
    rshard_t *sh = &rv.sh[s];
    uint64_t pos = 0, end = f->acked_end[s];
    unsigned via_remote = 0, via_local = 0;
    while (pos < end) {
      /* a local segment holding pos: the last local base <= pos */
      bool found = false;
      for (size_t i = nl; i-- > 0;)
        if (bases[i] <= pos) { /* it holds [bases[i], bases[i+1]); the last one everything after */
          pos = i + 1 == nl ? end : bases[i + 1];
          found = true;
          via_local++;
          break;
        }
      if (found) continue;
      for (size_t i = 0; i < sh->n && !found; i++) {
        const rseg_t *r = &sh->v[i];
        if (r->log && r->index && r->tindex && r->log_ok && r->base <= pos && pos < r->next) {
          pos = r->next;
          found = true;
          via_remote++;
        }
      }
      if (!found) {
        print_message("shard %u: local bases:", s);
        for (size_t i = 0; i < nl; i++) print_message(" %" PRIu64, bases[i]);
        print_message("\nshard %u: remote segments:", s);
        for (size_t i = 0; i < sh->n; i++)
          print_message(" [%" PRIu64 ",%" PRIu64 ")e%u%s%s%s%s", sh->v[i].base, sh->v[i].next, sh->v[i].epoch,
                        sh->v[i].log ? "L" : "-", sh->v[i].index ? "I" : "-", sh->v[i].tindex ? "T" : "-",
                        sh->v[i].log_ok ? "" : "(bad)");
        print_message("\n");
        fail_msg("round %u, after the kill: shard %u offset %" PRIu64 " (acknowledged end %" PRIu64
                 ") is neither in a local segment nor in a complete remote one",
                 round, s, pos, end);
      }
    }
    print_message("  crash state %2u: shard %u [0, %" PRIu64 ") covered: %u remote segments, then %u local (of %zu "
                  "local files; %zu remote bases)\n",
                  round, s, end, via_remote, via_local, nl, sh->n);
  }
  rview_free(&rv);
}

/* Read every shard from EARLIEST to its end; check against rounds [0, upto).
 * Returns how many acknowledged records there are (all were found). */
static uint64_t check_log(fx_t *f, uint32_t upto) {
  for (uint32_t r = 0; r < upto; r++)
    for (uint32_t q = 0; q < g.rounds[r].n; q++) g.rounds[r].recs[q].seen = 0;
  rn_offsets_t *offs = NULL;
  rn_err_t err = rn_stream_list_offsets(f->cl, STREAM, RN_POS_EARLIEST, 0, &offs);
  if (err) fail_msg("list offsets: %s %s", rn_strerror(err), rn_last_error_message());
  assert_int_equal(offs->count, SHARDS);
  uint8_t want[HDR + MAX_EXTRA];
  uint64_t present = 0;
  for (size_t i = 0; i < offs->count; i++) {
    const rn_shard_offsets_t *so = &offs->shards[i];
    assert_int_equal(so->err, 0);
    if (so->start_offset != 0) fail_msg("shard %u starts at %" PRIu64 ": no retention, so 0 (the store)", so->shard,
                                        so->start_offset);
    rn_consumer_t *c;
    assert_int_equal(rn_consumer_new(f->cl, STREAM, so->shard, RN_POS_EARLIEST, 0, &c), 0);
    uint64_t next = 0, deadline = rn_tt_now_ms() + DEADLINE_MS;
    uint32_t *last = calloc((size_t)upto + 1, sizeof(uint32_t));
    assert_non_null(last);
    while (next < so->end_offset) {
      const rn_record_t *rec;
      err = rn_consumer_poll(c, 1000, &rec);
      if (err == RN_EAGAIN) {
        if (rn_tt_now_ms() > deadline) fail_msg("shard %u: stuck at %" PRIu64 " of %" PRIu64, so->shard, next, so->end_offset);
        continue;
      }
      if (err) fail_msg("shard %u poll at %" PRIu64 ": %s %s", so->shard, next, rn_strerror(err), rn_last_error_message());
      if (rec->offset != next) fail_msg("shard %u: offset %" PRIu64 " where %" PRIu64 " was next", so->shard, rec->offset, next);
      next++;
      present++;
      assert_true(rec->value_len >= HDR);
      assert_memory_equal(rec->value, "T9", 2);
      uint32_t r, q;
      memcpy(&r, rec->value + 2, 4);
      memcpy(&q, rec->value + 6, 4);
      if (r >= upto || q >= g.rounds[r].n)
        fail_msg("shard %u offset %" PRIu64 ": unknown record (round %u, seq %u)", so->shard, rec->offset, r, q);
      rec_t *sent = &g.rounds[r].recs[q];
      assert_true(sent->state == REC_ACKED || sent->state == REC_FAILED);
      size_t len = make_data(r, q, want);
      assert_int_equal(rec->value_len, len);
      assert_memory_equal(rec->value, want, len);
      if (sent->seen) fail_msg("record (round %u, seq %u) twice (shard %u offset %" PRIu64 ")", r, q, so->shard, rec->offset);
      sent->seen = 1;
      if (q < last[r]) fail_msg("shard %u offset %" PRIu64 ": (round %u, seq %u) after seq %u", so->shard, rec->offset,
                                r, q, last[r] - 1);
      last[r] = q + 1;
      if (sent->state == REC_ACKED && (sent->shard != so->shard || sent->offset != rec->offset))
        fail_msg("record (round %u, seq %u) acknowledged at %u/%" PRIu64 ", found at %u/%" PRIu64, r, q, sent->shard,
                 sent->offset, so->shard, rec->offset);
    }
    free(last);
    rn_consumer_destroy(c);
  }
  rn_offsets_free(offs);
  uint64_t acked = 0;
  for (uint32_t r = 0; r < upto; r++)
    for (uint32_t q = 0; q < g.rounds[r].n; q++) {
      const rec_t *sent = &g.rounds[r].recs[q];
      if (sent->state != REC_ACKED) continue;
      acked++;
      if (!sent->seen)
        fail_msg("acknowledged record (round %u, seq %u) at shard %u offset %" PRIu64 " is missing", r, q, sent->shard,
                 sent->offset);
    }
  print_message("  read %" PRIu64 " records from offset 0 of every shard, %" PRIu64 " of them acknowledged\n", present,
                acked);
  return acked;
}

/* ---- one round ---------------------------------------------------------------------------- */

typedef enum { KILL_ACK, KILL_DELAY, KILL_UPLOAD } kill_mode_t;

static void produce_and_kill(fx_t *f, uint32_t round, uint64_t *rng) {
  round_t *rd = &g.rounds[round];
  rd->recs = calloc(MAX_PER_ROUND, sizeof(rec_t));
  assert_non_null(rd->recs);
  kill_mode_t mode = (kill_mode_t)rn_test_rand_below(rng, 3);
  uint64_t k = 0, m = 0, delay_ms = 0;
  if (mode == KILL_ACK)
    k = 50 + rn_test_rand_below(rng, 6000);
  else
    m = 500 + rn_test_rand_below(rng, 4000);
  if (mode == KILL_DELAY) delay_ms = rn_test_rand_below(rng, 2500);

  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.linger_ms = (uint32_t)rn_test_rand_below(rng, 3);
  pc.max_batch_bytes = 16384;
  pc.close_timeout_ms = 0;
  pc.retry_backoff_ms = 10;
  pc.retry_backoff_max_ms = 50;
  rn_producer_t *p;
  rn_err_t err = rn_producer_new(f->cl, &pc, &p);
  if (err) fail_msg("producer: %s %s", rn_strerror(err), rn_last_error_message());

  pthread_mutex_lock(&g.mu);
  g.acked = g.failed = g.unreported = 0;
  g.killed = false;
  g.kill_at = k;
  g.broker_pid = f->br.pid;
  pthread_mutex_unlock(&g.mu);

  uint8_t buf[HDR + MAX_EXTRA];
  uint32_t limit = mode == KILL_ACK ? MAX_PER_ROUND : (uint32_t)m;
  for (uint32_t q = 0; q < limit; q++) {
    pthread_mutex_lock(&g.mu);
    while (!g.killed && g.unreported >= PACE) pthread_cond_wait(&g.cv, &g.mu);
    bool stop = g.killed || g.failed;
    if (!stop) {
      rd->recs[q].state = REC_PENDING;
      rd->n = q + 1;
      g.unreported++;
    }
    pthread_mutex_unlock(&g.mu);
    if (stop) break;
    char key[16];
    int kl = snprintf(key, sizeof key, "u%u", (q * 7u + round) % 61u);
    size_t len = make_data(round, q, buf);
    err = rn_producer_send(p, STREAM, key, (size_t)kl, buf, len, on_delivery, &rd->recs[q]);
    if (err) {
      pthread_mutex_lock(&g.mu);
      rd->recs[q].state = REC_REJECTED;
      g.unreported--;
      pthread_mutex_unlock(&g.mu);
      if (!g.killed) fail_msg("send %u: %s %s", q, rn_strerror(err), rn_last_error_message());
      break;
    }
  }
  long long up0 = 0, seen_up = 0, seen_active = 0;
  unsigned polls = 0;
  if (mode != KILL_ACK) {
    err = rn_producer_flush(p, 120000);
    if (err) fail_msg("flush: %s %s", rn_strerror(err), rn_last_error_message());
    if (mode == KILL_DELAY) {
      struct timespec ts = {(time_t)(delay_ms / 1000), (long)(delay_ms % 1000) * 1000000L};
      nanosleep(&ts, NULL); /* the kill point itself, drawn from the RNG */
    } else {
      up0 = metric(f, "runnel_tier_uploaded_bytes_total");
      if (up0 < 0) fail_msg("no runnel_tier_uploaded_bytes_total in /metrics (%lld)", up0);
      /* the next upload activity picks the kill point; when none comes
       * within a few seconds (everything sealed was uploaded already) the
       * kill happens then: the bound only picks a point, it asserts nothing */
      uint64_t until = rn_tt_now_ms() + 3000;
      for (;;) {
        polls++;
        seen_active = metric(f, "runnel_tier_uploads_active");
        seen_up = metric(f, "runnel_tier_uploaded_bytes_total");
        if (seen_active > 0 || seen_up > up0 || rn_tt_now_ms() > until) break;
        rn_tt_pause(50);
      }
    }
  }
  pthread_mutex_lock(&g.mu);
  uint64_t acked = g.acked, failed = g.failed;
  bool killed = g.killed;
  pthread_mutex_unlock(&g.mu);
  rn_test_broker_kill(&f->br); /* SIGKILL (again, if the callback did) and reap */
  rn_producer_destroy(p);      /* the rest: ECANCELED / ECONNECTION */
  pthread_mutex_lock(&g.mu);
  uint64_t unreported = g.unreported, acked_all = g.acked;
  pthread_mutex_unlock(&g.mu);
  assert_int_equal(unreported, 0);
  if (failed) fail_msg("round %u: %" PRIu64 " records failed before the kill", round, failed);
  if (mode == KILL_ACK) {
    if (!killed || acked < k) fail_msg("round %u: sent %u without reaching ack %" PRIu64, round, rd->n, k);
    print_message("round %2u: kill at ack %" PRIu64 " (mode ack, linger %u); sent %u, acked %" PRIu64 "\n", round, k,
                  pc.linger_ms, rd->n, acked_all);
  } else if (mode == KILL_DELAY) {
    print_message("round %2u: kill %" PRIu64 " ms after %u records were flushed (mode delay)\n", round, delay_ms,
                  rd->n);
  } else {
    print_message("round %2u: kill after %u records flushed, at upload activity (uploads_active %lld, uploaded "
                  "bytes %lld -> %lld; %u polls) (mode upload)\n",
                  round, rd->n, seen_active, up0, seen_up, polls);
  }
  for (uint32_t q = 0; q < rd->n; q++) {
    const rec_t *r = &rd->recs[q];
    if (r->state == REC_ACKED && r->offset + 1 > f->acked_end[r->shard]) f->acked_end[r->shard] = r->offset + 1;
  }
}

/* ---- the end: drain, plant orphans, collect them, compare with the manifest ----------------- */

static bool store_matches_manifest(fx_t *f, const shard_view_t *v, char *why, size_t whylen) {
  rview_t rv;
  rview_load(&f->st, &rv);
  bool ok = true;
  why[0] = '\0';
  for (uint32_t s = 0; s < SHARDS && ok; s++) {
    rshard_t *sh = &rv.sh[s];
    if (sh->nunknown) {
      snprintf(why, whylen, "shard %u: %zu unknown object(s) left, e.g. %s", s, sh->nunknown, sh->unknown[0]);
      ok = false;
      break;
    }
    if (!sh->manifest) {
      snprintf(why, whylen, "shard %u: no mirrored manifest object", s);
      ok = false;
      break;
    }
    uint64_t pos = 0;
    for (size_t i = 0; i < sh->n; i++) {
      const rseg_t *r = &sh->v[i];
      if (!(r->log && r->index && r->tindex && r->log_ok)) {
        snprintf(why, whylen, "shard %u: segment %" PRIu64 " epoch %u incomplete or corrupt (%s%s%s%s)", s, r->base,
                 r->epoch, r->log ? "L" : "-", r->index ? "I" : "-", r->tindex ? "T" : "-", r->log_ok ? "" : " bad");
        ok = false;
        break;
      }
      if (r->base != pos) {
        snprintf(why, whylen, "shard %u: remote segment at %" PRIu64 " epoch %u where %" PRIu64
                 " was next (an orphan, a duplicate or a gap)", s, r->base, r->epoch, pos);
        ok = false;
        break;
      }
      pos = r->next;
    }
    if (!ok) break;
    if (sh->n != v[s].remote_segments) {
      snprintf(why, whylen, "shard %u: %zu remote segments in the store, the manifest (describe) says %" PRIu64, s,
               sh->n, v[s].remote_segments);
      ok = false;
    } else if (pos < v[s].local_start) {
      snprintf(why, whylen, "shard %u: remote segments end at %" PRIu64 ", the local log starts at %" PRIu64, s, pos,
               v[s].local_start);
      ok = false;
    }
  }
  /* bytes of PUTs a kill interrupted are garbage too, like an incomplete
   * multipart upload on S3: the collector (or the store at open) must
   * remove them, or a tier_dir on NFS fills with them crash after crash */
  if (ok && rv.temps) {
    snprintf(why, whylen, "%zu temporary files of interrupted writes are left under tier_dir (e.g. %.300s): nothing "
             "removes them", rv.temps, rv.temp_example);
    ok = false;
  }
  rview_free(&rv);
  return ok;
}

static void final_gc_check(fx_t *f) {
  shard_view_t v[SHARDS];
  uint64_t deadline = rn_tt_now_ms() + DEADLINE_MS;
  for (;;) { /* the backlog drains: nothing left to upload */
    describe(f, v);
    bool drained = true;
    for (int s = 0; s < SHARDS; s++) drained &= v[s].backlog_segments == 0 && v[s].local_start > 0;
    if (drained) break;
    if (rn_tt_now_ms() > deadline) fail_msg("the upload backlog did not drain (see %s)", f->br.log_path);
    rn_tt_pause(50);
  }
  /* two orphans in shard 0's prefix: a segment of an epoch never used, a stray key */
  rview_t rv;
  rview_load(&f->st, &rv);
  char prefix[1100];
  snprintf(prefix, sizeof prefix, "%s", rv.sh[0].prefix);
  rview_free(&rv);
  assert_true(prefix[0] != '\0');
  char k1[1200], k2[1200];
  snprintf(k1, sizeof k1, "%s%020" PRIu64 "-999.log", prefix, (uint64_t)0);
  snprintf(k2, sizeof k2, "%sleftover-from-a-crash", prefix);
  static const char junk[] = "not a segment";
  store_plant(&f->st, k1, junk, sizeof junk);
  store_plant(&f->st, k2, junk, sizeof junk);
  long long collected0 = metric(f, "runnel_tier_orphans_collected_total");
  print_message("planted orphans %s and %s (runnel_tier_orphans_collected_total %lld)\n", k1, k2, collected0);

  char why[1200] = "";
  unsigned polls = 0;
  deadline = rn_tt_now_ms() + DEADLINE_MS;
  for (;;) {
    polls++;
    describe(f, v);
    if (store_matches_manifest(f, v, why, sizeof why)) break;
    if (rn_tt_now_ms() > deadline) fail_msg("after %u polls the store still differs from the manifest: %s", polls, why);
    rn_tt_pause(50);
  }
  long long collected = metric(f, "runnel_tier_orphans_collected_total");
  if (collected < 2) fail_msg("runnel_tier_orphans_collected_total is %lld after collecting the two planted orphans",
                              collected);
  print_message("after %u polls the store holds exactly what the manifest references; orphans collected: %lld\n",
                polls, collected);
}

/* ---- the test ---------------------------------------------------------------------------- */

static void test_tier_kill9_rounds(void **state) {
  (void)state;
  fx_t *f = &g_fx;
  uint64_t rng = g_seed * 0x2545F4914F6CDD1Dull | 1;
  print_message("seed %" PRIu64 ", %u rounds, store %s, work in %s\n", g_seed, g_rounds,
                f->st.kind == ST_DIR ? "dir" : "s3rver", f->tmp);
  for (uint32_t round = 0; round <= g_rounds; round++) {
    broker_start(f);
    if (round == 0) {
      static const char *const args[] = {"stream", "create", STREAM, "--shards", "2", "--tiered", "--local-retention",
                                         "1s", "--retention", "forever", NULL};
      char *out, *err;
      int rc = rn_test_ctl_run(RN_TEST_RUNNELCTL, f->br.addr, args, f->tmp, &out, &err);
      if (rc != 0) fail_msg("stream create --tiered: exit %d\n%s%s", rc, out, err);
      free(out);
      free(err);
    }
    uint64_t acked = check_log(f, round);
    if (round > 0) print_message("  restart %2u: all %" PRIu64 " acknowledged records read back from offset 0\n", round, acked);
    if (round == g_rounds) {
      final_gc_check(f);
      check_log(f, round);
      rn_client_destroy(f->cl);
      f->cl = NULL;
      int rc = rn_test_broker_stop(&f->br);
      if (rc != 0) fail_msg("runneld exited with status %d after the last round (want 0)", rc);
      break;
    }
    rn_client_destroy(f->cl);
    f->cl = NULL;
    /* a client per round: the old one's connection dies with the broker */
    rn_client_conf_t cc;
    rn_client_conf_init(&cc);
    cc.broker = f->br.addr;
    cc.reconnect_backoff_ms = 10;
    cc.reconnect_backoff_max_ms = 50;
    assert_int_equal(rn_client_new(&cc, &f->cl), 0);
    produce_and_kill(f, round, &rng);
    rn_client_destroy(f->cl);
    f->cl = NULL;
    check_crash_state(f, round);
  }
}

/* 0 when runneld and runnelctl have tiering; 77 with why otherwise. */
static int probe_tiering(char *why, size_t whylen) {
  static char out[1 << 16];
  const char *rd[] = {rn_test_runneld_path(), "--help", NULL};
  if (rn_test_run(rd, out, sizeof out) != 0 || !strstr(out, "tier_dir")) {
    snprintf(why, whylen, "this runneld (%s) has no tiering yet: no tier_dir key in --help (branch i13-broker)", rd[0]);
    return 77;
  }
  const char *env = getenv("RUNNELCTL");
  const char *rc[] = {env && *env ? env : RN_TEST_RUNNELCTL, "--help", NULL};
  if (rn_test_run(rc, out, sizeof out) != 0 || !strstr(out, "tier")) {
    snprintf(why, whylen, "this runnelctl (%s) has no tiering yet (branch i13-broker)", rc[0]);
    return 77;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1) g_rounds = (unsigned)strtoul(argv[1], NULL, 10);
  if (argc > 2) g_seed = strtoull(argv[2], NULL, 10);
  store_kind_t kind = ST_DIR;
  if (argc > 3) {
    if (strcmp(argv[3], "s3rver") == 0)
      kind = ST_S3RVER;
    else if (strcmp(argv[3], "dir") != 0)
      g_rounds = 0;
  }
  if (g_rounds < 1 || g_rounds > MAX_ROUNDS) {
    fprintf(stderr, "usage: test_tier_kill9 [rounds 1..%d] [seed] [dir|s3rver]\n", MAX_ROUNDS);
    return 2;
  }
  char why[512];
  if (probe_tiering(why, sizeof why) != 0) {
    printf("SKIP: %s\n", why);
    return 77;
  }
  fx_t *f = &g_fx;
  f->tmp = rn_test_tmpdir();
  snprintf(f->data_dir, sizeof f->data_dir, "%s/data", f->tmp);
  char cfg[700];
  snprintf(cfg, sizeof cfg, "%s/aws-config", f->tmp);
  fclose(fopen(cfg, "w"));
  setenv("AWS_CONFIG_FILE", cfg, 1);
  setenv("AWS_SHARED_CREDENTIALS_FILE", cfg, 1);
  int src = store_start(&f->st, kind, f->tmp, why, sizeof why);
  f->st.data_dir = f->data_dir;
  if (src != 0) {
    printf("%s: %s\n", src == 77 ? "SKIP" : "FAIL", why);
    rn_test_rmtree(f->tmp);
    return src == 77 ? 77 : 1;
  }
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_tier_kill9_rounds)};
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  /* after a failed assertion a producer or consumer may still hang off the
   * client (the test jumped out of its scope): leave it to the exit */
  if (!failed) rn_client_destroy(f->cl);
  if (f->br.pid) rn_test_broker_kill(&f->br);
  store_stop(&f->st);
  const char *keep = getenv("RUNNEL_TEST_KEEP");
  if (failed || (keep && *keep))
    fprintf(stderr, "kept %s (runneld.log in its data directory)\n", f->tmp);
  else
    rn_test_rmtree(f->tmp);
  free(f->tmp);
  for (unsigned r = 0; r <= MAX_ROUNDS; r++) free(g.rounds[r].recs);
  return failed ? 1 : 0;
}
