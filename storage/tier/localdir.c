/*
 * localdir.c — an object store in a local directory (rn_localdir_new): for
 * tests, and for tiering to a mounted network file system.
 *
 * A key is a path under root (its '/' make directories). A PUT writes
 * "<path>.tmp-<n>", fdatasyncs it, renames it over the path and syncs the
 * directory, so an object is whole or absent. LIST skips those temporary
 * files. The file work runs on two worker threads of the store's own; a
 * finished operation is queued and an eventfd made readable, and
 * rn_objstore_poll (owner thread) runs the callbacks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rn_tier.h"

#define NWORKERS 2
#define TMP_MARK ".tmp-"

typedef struct ld_req {
  rn_obj_op_t op;
  bool put_file;
  char *key;
  char *path;            /* put_file source */
  const uint8_t *data;   /* put_mem (borrowed) */
  uint64_t off, len;
  rn_obj_cb cb;
  rn_obj_get_cb gcb;
  rn_obj_list_cb lcb;
  void *arg;
  /* results */
  rn_obj_result_t res;
  uint8_t *out;
  size_t out_len;
  rn_obj_entry_t *entries;
  size_t nentries;
  uint64_t start_ns;
  struct ld_req *next;
} ld_req_t;

typedef struct localdir {
  rn_objstore_t base;
  char *root;
  int efd;
  pthread_t workers[NWORKERS];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  ld_req_t *todo_head, *todo_tail; /* submitted */
  ld_req_t *done_head, *done_tail; /* finished, for poll */
  bool stop;
  unsigned inflight;               /* owner thread */
  atomic_uint_fast64_t tmp_seq;
  rn_objstore_stats_t stats;       /* owner thread */
} localdir_t;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fail(ld_req_t *r, rn_err_t err, const char *what) {
  r->res.err = err;
  snprintf(r->res.message, sizeof(r->res.message), "%s %.180s: %s", what, r->key ? r->key : "", rn_strerror(err));
}

static char *obj_path(const localdir_t *ld, const char *key) {
  size_t n = strlen(ld->root) + strlen(key) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", ld->root, key);
  return p;
}

static rn_err_t mkdirs_for(const char *path) {
  char *tmp = strdup(path);
  if (!tmp) return RN_ENOMEM;
  for (char *s = tmp + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(tmp, 0755) && errno != EEXIST) {
      rn_err_t e = -errno;
      free(tmp);
      return e;
    }
    *s = '/';
  }
  free(tmp);
  return 0;
}

static rn_err_t sync_parent(const char *path) {
  char *d = strdup(path);
  if (!d) return RN_ENOMEM;
  char *slash = strrchr(d, '/');
  if (slash) *slash = '\0';
  int fd = open(d, O_RDONLY | O_DIRECTORY);
  free(d);
  if (fd < 0) return -errno;
  rn_err_t e = fsync(fd) ? -errno : 0;
  close(fd);
  return e;
}

static rn_err_t write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void do_put(localdir_t *ld, ld_req_t *r) {
  char *path = obj_path(ld, r->key);
  if (!path) return fail(r, RN_ENOMEM, "PUT");
  size_t tl = strlen(path) + 40;
  char *tmp = malloc(tl);
  if (!tmp) {
    free(path);
    return fail(r, RN_ENOMEM, "PUT");
  }
  snprintf(tmp, tl, "%s" TMP_MARK "%" PRIu64, path, (uint64_t)atomic_fetch_add(&ld->tmp_seq, 1));
  rn_err_t err = mkdirs_for(path);
  int fd = -1, src = -1;
  if (!err) {
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) err = -errno;
  }
  if (!err && !r->put_file) err = write_all(fd, r->data, r->len);
  if (!err && r->put_file) {
    src = open(r->path, O_RDONLY | O_CLOEXEC);
    if (src < 0) err = -errno;
    uint8_t *buf = err ? NULL : malloc(1 << 20);
    if (!err && !buf) err = RN_ENOMEM;
    uint64_t done = 0;
    while (!err && done < r->len) {
      size_t want = r->len - done < (1 << 20) ? (size_t)(r->len - done) : (1 << 20);
      ssize_t got = pread(src, buf, want, (off_t)done);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) err = -errno;
      else if (got == 0) {
        err = RN_EIO; /* the file is shorter than the caller said */
        snprintf(r->res.message, sizeof(r->res.message), "PUT %.100s: %.60s is shorter (%" PRIu64 " bytes) than %" PRIu64, r->key,
                 r->path, done, r->len);
        r->res.err = err;
      } else {
        err = write_all(fd, buf, (size_t)got);
        done += (uint64_t)got;
      }
    }
    free(buf);
  }
  if (!err && fdatasync(fd)) err = -errno;
  if (fd >= 0) close(fd);
  if (src >= 0) close(src);
  if (!err && rename(tmp, path)) err = -errno;
  if (!err) err = sync_parent(path);
  if (err) {
    unlink(tmp);
    if (!r->res.err) fail(r, err, "PUT");
  }
  free(tmp);
  free(path);
}

static void do_get(localdir_t *ld, ld_req_t *r) {
  char *path = obj_path(ld, r->key);
  if (!path) return fail(r, RN_ENOMEM, "GET");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  free(path);
  if (fd < 0) return fail(r, errno == ENOENT ? RN_ENOENT : -errno, "GET");
  struct stat st;
  if (fstat(fd, &st)) {
    fail(r, -errno, "GET");
    close(fd);
    return;
  }
  uint64_t size = (uint64_t)st.st_size;
  r->res.object_size = size;
  uint64_t len = r->len ? r->len : (r->off <= size ? size - r->off : 0);
  if (r->off > size || len > size - r->off) {
    r->res.err = RN_ECORRUPT;
    snprintf(r->res.message, sizeof(r->res.message),
             "GET %.150s: bytes %" PRIu64 "+%" PRIu64 " asked of an object of %" PRIu64, r->key, r->off, len, size);
    close(fd);
    return;
  }
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf) {
    close(fd);
    return fail(r, RN_ENOMEM, "GET");
  }
  uint64_t done = 0;
  while (done < len) {
    ssize_t got = pread(fd, buf + done, len - done, (off_t)(r->off + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    done += (uint64_t)got;
  }
  close(fd);
  if (done != len) {
    free(buf);
    r->res.err = RN_ECORRUPT;
    snprintf(r->res.message, sizeof(r->res.message), "GET %.150s: the object changed size while read", r->key);
    return;
  }
  r->out = buf;
  r->out_len = len;
}

static void do_head(localdir_t *ld, ld_req_t *r) {
  char *path = obj_path(ld, r->key);
  if (!path) return fail(r, RN_ENOMEM, "HEAD");
  struct stat st;
  int rc = stat(path, &st);
  free(path);
  if (rc) return fail(r, errno == ENOENT ? RN_ENOENT : -errno, "HEAD");
  r->res.object_size = (uint64_t)st.st_size;
  r->res.mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

static void do_del(localdir_t *ld, ld_req_t *r) {
  char *path = obj_path(ld, r->key);
  if (!path) return fail(r, RN_ENOMEM, "DELETE");
  rn_err_t err = unlink(path) && errno != ENOENT ? -errno : 0;
  if (!err) (void)sync_parent(path);
  free(path);
  if (err) fail(r, err, "DELETE");
}

typedef struct list_acc {
  rn_obj_entry_t *v;
  size_t n, cap;
  rn_err_t err;
} list_acc_t;

static void walk(list_acc_t *a, const char *dirpath, const char *keypfx, const char *want) {
  DIR *d = opendir(dirpath);
  if (!d) {
    if (errno != ENOENT && errno != ENOTDIR) a->err = -errno;
    return;
  }
  struct dirent *de;
  while (!a->err && (de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    size_t pl = strlen(dirpath) + strlen(de->d_name) + 2, kl = strlen(keypfx) + strlen(de->d_name) + 2;
    char *p = malloc(pl), *k = malloc(kl);
    if (!p || !k) {
      free(p);
      free(k);
      a->err = RN_ENOMEM;
      break;
    }
    snprintf(p, pl, "%s/%s", dirpath, de->d_name);
    snprintf(k, kl, "%s%s", keypfx, de->d_name);
    struct stat st;
    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
      size_t wl = strlen(k);
      k[wl] = '/';
      k[wl + 1] = '\0';
      /* descend only where the prefix can match */
      size_t m = strlen(want) < wl + 1 ? strlen(want) : wl + 1;
      if (strncmp(k, want, m) == 0) walk(a, p, k, want);
      free(k);
    } else if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && !strstr(de->d_name, TMP_MARK) &&
               strncmp(k, want, strlen(want)) == 0) {
      if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        rn_obj_entry_t *nv = realloc(a->v, nc * sizeof(*nv));
        if (!nv) {
          free(k);
          free(p);
          a->err = RN_ENOMEM;
          break;
        }
        a->v = nv;
        a->cap = nc;
      }
      a->v[a->n++] = (rn_obj_entry_t){k, (uint64_t)st.st_size,
                                      (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000};
    } else {
      free(k);
    }
    free(p);
  }
  closedir(d);
}

static int entry_cmp(const void *a, const void *b) {
  return strcmp(((const rn_obj_entry_t *)a)->key, ((const rn_obj_entry_t *)b)->key);
}

static void do_list(localdir_t *ld, ld_req_t *r) {
  list_acc_t a = {0};
  walk(&a, ld->root, "", r->key);
  if (a.err) {
    for (size_t i = 0; i < a.n; i++) free((void *)(uintptr_t)a.v[i].key);
    free(a.v);
    return fail(r, a.err, "LIST");
  }
  if (a.n) qsort(a.v, a.n, sizeof(*a.v), entry_cmp);
  r->entries = a.v;
  r->nentries = a.n;
}

static void *worker(void *arg) {
  localdir_t *ld = arg;
  pthread_mutex_lock(&ld->mu);
  for (;;) {
    while (!ld->stop && !ld->todo_head) pthread_cond_wait(&ld->cv, &ld->mu);
    if (ld->stop) break;
    ld_req_t *r = ld->todo_head;
    ld->todo_head = r->next;
    if (!ld->todo_head) ld->todo_tail = NULL;
    pthread_mutex_unlock(&ld->mu);
    switch (r->op) {
    case RN_OBJ_PUT: do_put(ld, r); break;
    case RN_OBJ_GET: do_get(ld, r); break;
    case RN_OBJ_HEAD: do_head(ld, r); break;
    case RN_OBJ_LIST: do_list(ld, r); break;
    case RN_OBJ_DELETE: do_del(ld, r); break;
    default: break;
    }
    pthread_mutex_lock(&ld->mu);
    r->next = NULL;
    if (ld->done_tail)
      ld->done_tail->next = r;
    else
      ld->done_head = r;
    ld->done_tail = r;
    uint64_t one = 1;
    ssize_t w = write(ld->efd, &one, sizeof(one));
    (void)w;
  }
  pthread_mutex_unlock(&ld->mu);
  return NULL;
}

static void req_free(ld_req_t *r) {
  free(r->key);
  free(r->path);
  free(r->out);
  for (size_t i = 0; i < r->nentries; i++) free((void *)(uintptr_t)r->entries[i].key);
  free(r->entries);
  free(r);
}

static void complete(localdir_t *ld, ld_req_t *r) {
  ld->inflight--;
  r->res.attempts = 1;
  rn_obj_op_t op = r->op;
  ld->stats.requests[op]++;
  if (r->res.err) ld->stats.errors[op]++;
  if (!r->res.err && op == RN_OBJ_PUT) ld->stats.bytes_up += r->len;
  if (!r->res.err && op == RN_OBJ_GET) ld->stats.bytes_down += r->out_len;
  rn_hist_record(&ld->stats.seconds[op], rn_hist_latency_bounds, RN_HIST_BUCKETS,
                 (double)(mono_ns() - r->start_ns) / 1e9);
  switch (op) {
  case RN_OBJ_GET: {
    uint8_t *out = r->res.err ? NULL : r->out;
    size_t len = r->res.err ? 0 : r->out_len;
    r->out = NULL;
    r->gcb(r->arg, &r->res, out, len);
    break;
  }
  case RN_OBJ_LIST: r->lcb(r->arg, &r->res, r->res.err ? NULL : r->entries, r->res.err ? 0 : r->nentries); break;
  default: r->cb(r->arg, &r->res); break;
  }
  req_free(r);
}

static rn_err_t submit(localdir_t *ld, ld_req_t *r) {
  r->start_ns = mono_ns();
  pthread_mutex_lock(&ld->mu);
  r->next = NULL;
  if (ld->todo_tail)
    ld->todo_tail->next = r;
  else
    ld->todo_head = r;
  ld->todo_tail = r;
  pthread_cond_signal(&ld->cv);
  pthread_mutex_unlock(&ld->mu);
  ld->inflight++;
  return 0;
}

static ld_req_t *req_new(rn_obj_op_t op, const char *key) {
  ld_req_t *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  r->op = op;
  r->key = strdup(key);
  if (!r->key) {
    free(r);
    return NULL;
  }
  return r;
}

static rn_err_t ld_put_mem(rn_objstore_t *os, const char *key, const uint8_t *data, size_t len, rn_obj_cb cb,
                           void *arg) {
  ld_req_t *r = req_new(RN_OBJ_PUT, key);
  if (!r) return RN_ENOMEM;
  r->data = data;
  r->len = len;
  r->cb = cb;
  r->arg = arg;
  return submit((localdir_t *)os, r);
}

static rn_err_t ld_put_file(rn_objstore_t *os, const char *key, const char *path, uint64_t len, rn_obj_cb cb,
                            void *arg) {
  ld_req_t *r = req_new(RN_OBJ_PUT, key);
  if (!r) return RN_ENOMEM;
  r->put_file = true;
  r->path = strdup(path);
  if (!r->path) {
    req_free(r);
    return RN_ENOMEM;
  }
  r->len = len;
  r->cb = cb;
  r->arg = arg;
  return submit((localdir_t *)os, r);
}

static rn_err_t ld_get(rn_objstore_t *os, const char *key, uint64_t off, uint64_t len, rn_obj_get_cb cb, void *arg) {
  ld_req_t *r = req_new(RN_OBJ_GET, key);
  if (!r) return RN_ENOMEM;
  r->off = off;
  r->len = len;
  r->gcb = cb;
  r->arg = arg;
  return submit((localdir_t *)os, r);
}

static rn_err_t ld_head(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg) {
  ld_req_t *r = req_new(RN_OBJ_HEAD, key);
  if (!r) return RN_ENOMEM;
  r->cb = cb;
  r->arg = arg;
  return submit((localdir_t *)os, r);
}

static rn_err_t ld_list(rn_objstore_t *os, const char *prefix, rn_obj_list_cb cb, void *arg) {
  ld_req_t *r = req_new(RN_OBJ_LIST, prefix);
  if (!r) return RN_ENOMEM;
  r->lcb = cb;
  r->arg = arg;
  return submit((localdir_t *)os, r);
}

static rn_err_t ld_del(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg) {
  ld_req_t *r = req_new(RN_OBJ_DELETE, key);
  if (!r) return RN_ENOMEM;
  r->cb = cb;
  r->arg = arg;
  return submit((localdir_t *)os, r);
}

static int ld_fd(const rn_objstore_t *os) { return ((const localdir_t *)os)->efd; }

static int ld_poll(rn_objstore_t *os) {
  localdir_t *ld = (localdir_t *)os;
  uint64_t v;
  ssize_t rd = read(ld->efd, &v, sizeof(v));
  (void)rd;
  pthread_mutex_lock(&ld->mu);
  ld_req_t *r = ld->done_head;
  ld->done_head = ld->done_tail = NULL;
  pthread_mutex_unlock(&ld->mu);
  int n = 0;
  while (r) {
    ld_req_t *nx = r->next;
    complete(ld, r);
    r = nx;
    n++;
  }
  return n;
}

static unsigned ld_inflight(const rn_objstore_t *os) { return ((const localdir_t *)os)->inflight; }

static void ld_stats(const rn_objstore_t *os, rn_objstore_stats_t *out) { *out = ((const localdir_t *)os)->stats; }

static void ld_destroy(rn_objstore_t *os) {
  localdir_t *ld = (localdir_t *)os;
  pthread_mutex_lock(&ld->mu);
  ld->stop = true;
  pthread_cond_broadcast(&ld->cv);
  pthread_mutex_unlock(&ld->mu);
  for (int i = 0; i < NWORKERS; i++) pthread_join(ld->workers[i], NULL);
  /* What finished is delivered; what never started is cancelled. */
  (void)ld_poll(os);
  for (ld_req_t *r = ld->todo_head, *nx; r; r = nx) {
    nx = r->next;
    r->res.err = RN_ECANCELED;
    snprintf(r->res.message, sizeof(r->res.message), "the store is closing");
    complete(ld, r);
  }
  close(ld->efd);
  pthread_mutex_destroy(&ld->mu);
  pthread_cond_destroy(&ld->cv);
  free(ld->root);
  free(ld);
}

static const rn_objstore_ops_t localdir_ops = {
    .name = "localdir",
    .put_mem = ld_put_mem,
    .put_file = ld_put_file,
    .get = ld_get,
    .head = ld_head,
    .list = ld_list,
    .del = ld_del,
    .fd = ld_fd,
    .poll = ld_poll,
    .inflight = ld_inflight,
    .stats = ld_stats,
    .destroy = ld_destroy,
};

rn_err_t rn_localdir_new(const char *root, rn_objstore_t **out, char *why, size_t whylen) {
  *out = NULL;
  if (!root || !*root) {
    snprintf(why, whylen, "no directory given");
    return RN_EINVAL;
  }
  localdir_t *ld = calloc(1, sizeof(*ld));
  if (!ld) return RN_ENOMEM;
  ld->base.ops = &localdir_ops;
  ld->root = strdup(root);
  size_t rl = ld->root ? strlen(ld->root) : 0;
  while (rl > 1 && ld->root[rl - 1] == '/') ld->root[--rl] = '\0';
  char probe[4096];
  snprintf(probe, sizeof(probe), "%s/x", root);
  rn_err_t err = ld->root ? mkdirs_for(probe) : RN_ENOMEM;
  struct stat st;
  if (!err && (stat(ld->root, &st) || !S_ISDIR(st.st_mode))) err = RN_EINVAL;
  if (err) {
    snprintf(why, whylen, "%s: %s", root, rn_strerror(err));
    free(ld->root);
    free(ld);
    return err == RN_ENOMEM ? err : RN_EINVAL;
  }
  ld->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  pthread_mutex_init(&ld->mu, NULL);
  pthread_cond_init(&ld->cv, NULL);
  int started = 0;
  for (; started < NWORKERS; started++)
    if (pthread_create(&ld->workers[started], NULL, worker, ld)) break;
  if (ld->efd < 0 || started < NWORKERS) {
    pthread_mutex_lock(&ld->mu);
    ld->stop = true;
    pthread_cond_broadcast(&ld->cv);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < started; i++) pthread_join(ld->workers[i], NULL);
    if (ld->efd >= 0) close(ld->efd);
    free(ld->root);
    free(ld);
    snprintf(why, whylen, "cannot start the store's threads");
    return RN_ENOMEM;
  }
  *out = &ld->base;
  return 0;
}
