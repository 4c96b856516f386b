/*
 * localdir.c — an object store in a local directory (tests; tiering to an
 * NFS mount): rn_localdir_new.
 *
 * Keys map to files under root ("a/b/c" is root/a/b/c; subdirectories are
 * created as needed, and removed again when a delete empties them). The
 * owner thread never touches the disk: every operation is a job run by one
 * of LD_WORKERS threads of the store's own, and finished jobs come back
 * through the completion queue (objstore_int.h), whose eventfd is
 * rn_objstore_fd. rn_objstore_poll runs their callbacks on the owner.
 *
 * Invariants:
 *   - An object is whole or absent: a put writes a temporary file in the
 *     store's work directory (root/.rn-tmp-work/<host>.<pid>.<n>),
 *     fdatasyncs it, renames it over the key and fsyncs the key's
 *     directory. Keys may not contain a component starting with ".rn-tmp-"
 *     (nor "." / ".." / empty ones), so LIST never sees the work directory.
 *   - A crash leaves at most stray temporary files, all in that one
 *     directory: opening the store removes those of this host whose process
 *     is gone, and anyone's older than LD_TMP_STALE_S (a PUT never takes
 *     that long; other hosts may share an NFS root). A reused pid keeps its
 *     dead predecessor's files until they are that old.
 *   - GET of [off, off + len) (len 0: to the end) succeeds only with exactly
 *     those bytes: a range reaching past the object's end is RN_ECORRUPT
 *     ("the object changed size": the caller asked for bytes it knew were
 *     there). off == size with len 0 is an empty success.
 *   - Errors: RN_ENOENT for a GET/HEAD of a missing key; RN_EOBJSTORE for
 *     the directory's I/O errors (message: op, key, strerror); errors of
 *     put_file's source file as -errno (RN_EIO when it holds fewer than len
 *     bytes); RN_ECANCELED for everything undelivered when the store is
 *     destroyed. DELETE of a missing key succeeds.
 *   - inflight counts operations submitted and not yet called back; a job is
 *     queued, running on a worker, or done and waiting in the completion
 *     queue. Destroy stops the workers after their current job, then calls
 *     every job back with RN_ECANCELED.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "objstore_int.h"
#include "rn_tier.h"

#define LD_WORKERS 2
#define LD_TMP_MARK ".rn-tmp-"
#define LD_TMP_DIR LD_TMP_MARK "work"
#define LD_TMP_STALE_S (24 * 3600)
#define LD_COPY_BUF (256 * 1024)

typedef struct ld_job {
  rn__objq_node_t node; /* first: the completion queue links it */
  struct ld_job *qnext; /* the work queue */
  rn_obj_op_t op;
  bool from_file;       /* put_file */
  char *key;
  char *src;            /* put_file: the source path */
  const uint8_t *data;  /* put_mem: borrowed until the callback */
  uint64_t off, len;
  union {
    rn_obj_cb cb;
    rn_obj_get_cb get_cb;
    rn_obj_list_cb list_cb;
  } u;
  void *arg;
  uint64_t start_ns;
  /* results, written by the worker */
  rn_obj_result_t r;
  uint8_t *out;         /* GET: owned until handed to the callback */
  size_t out_len;
  rn__objlist_t list;
  uint64_t bytes_up;
} ld_job_t;

typedef struct ld {
  rn_objstore_t base; /* first: rn_objstore_t * is an ld_t * */
  char *root;
  pthread_t workers[LD_WORKERS];
  unsigned nworkers;
  pthread_mutex_t mu; /* guards the work queue, stopping and tmp_seq */
  pthread_cond_t cv;
  ld_job_t *qhead, **qtail;
  bool stopping;
  uint64_t tmp_seq;
  char tmp_dir[PATH_MAX];  /* root/.rn-tmp-work */
  char tmp_owner[300];     /* "<host>.<pid>": this store's temporary files */
  rn__objq_t done;
  unsigned inflight;    /* owner thread */
  bool closing;         /* owner thread: destroy has begun */
  rn_objstore_stats_t stats;
} ld_t;

static void ld_fail(ld_job_t *j, rn_err_t err, const char *what, int sys) {
  j->r.err = err;
  snprintf(j->r.message, sizeof j->r.message, "localdir %s %s: %s%s%s", rn_obj_op_name(j->op), j->key, what,
           sys ? ": " : "", sys ? strerror(sys) : "");
}

/* ---- paths ---------------------------------------------------------------------- */

/* Whether key (or, with prefix true, a list prefix) names a place inside root. */
static bool ld_key_ok(const char *key, bool prefix) {
  const char *p = key;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 && (slash || !prefix)) return false; /* "a//b", "/a", "a/" */
    if (!slash && prefix) return true;              /* the last piece of a prefix is only a name's start */
    if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return false;
    if (n >= sizeof LD_TMP_MARK - 1 && memcmp(p, LD_TMP_MARK, sizeof LD_TMP_MARK - 1) == 0) return false;
    if (!slash) return true;
    p = slash + 1;
  }
}

static bool ld_path(const ld_t *ld, const char *key, char *out, size_t cap) {
  int n = snprintf(out, cap, "%s/%s", ld->root, key);
  return n > 0 && (size_t)n < cap;
}

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int rc = fsync(fd) ? errno : 0;
  close(fd);
  return rc;
}

/* mkdir -p of path's parent directories below root, each new one made
 * durable in its parent. Returns 0 or an errno. */
static int ld_mkdirs(const ld_t *ld, char *path) {
  size_t rl = strlen(ld->root);
  for (char *s = path + rl + 1; (s = strchr(s, '/')); s++) {
    *s = 0;
    int rc = 0;
    if (mkdir(path, 0755) == 0) {
      char *up = strrchr(path, '/');
      *up = 0;
      rc = fsync_dir(path);
      *up = '/';
    } else if (errno != EEXIST) {
      rc = errno;
    }
    *s = '/';
    if (rc) return rc;
  }
  return 0;
}

/* ---- the jobs, on a worker thread ----------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Copy the first len bytes of src into fd. Returns 0, or sets the job's error. */
static bool copy_source(ld_job_t *j, int fd) {
  int in = open(j->src, O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    int e = errno;
    ld_fail(j, -e, "opening the source file", e);
    return false;
  }
  uint8_t *buf = malloc(LD_COPY_BUF);
  bool ok = buf != NULL;
  if (!ok) ld_fail(j, RN_ENOMEM, "copy buffer", 0);
  uint64_t done = 0;
  while (ok && done < j->len) {
    size_t want = j->len - done < LD_COPY_BUF ? (size_t)(j->len - done) : LD_COPY_BUF;
    ssize_t r = pread(in, buf, want, (off_t)done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      ld_fail(j, -e, "reading the source file", e);
      ok = false;
    } else if (r == 0) {
      ld_fail(j, RN_EIO, "the source file is shorter than the length to put", 0);
      ok = false;
    } else {
      int e = write_all(fd, buf, (size_t)r);
      if (e) {
        ld_fail(j, RN_EOBJSTORE, "writing", e);
        ok = false;
      }
      done += (uint64_t)r;
    }
  }
  free(buf);
  close(in);
  return ok;
}

static void job_put(ld_t *ld, ld_job_t *j) {
  char path[PATH_MAX], tmp[sizeof(((ld_t *)0)->tmp_dir) + sizeof(((ld_t *)0)->tmp_owner) + 24];
  if (!ld_path(ld, j->key, path, sizeof path)) return ld_fail(j, RN_EINVAL, "path too long", 0);
  char *slash = strrchr(path, '/');
  pthread_mutex_lock(&ld->mu);
  uint64_t seq = ++ld->tmp_seq;
  pthread_mutex_unlock(&ld->mu);
  snprintf(tmp, sizeof tmp, "%s/%s.%" PRIu64, ld->tmp_dir, ld->tmp_owner, seq);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ld_fail(j, RN_EOBJSTORE, "creating a temporary file", errno);
  j->r.attempts = 1;
  int e = 0;
  bool ok = true;
  if (j->from_file) {
    ok = copy_source(j, fd);
  } else if ((e = write_all(fd, j->data, (size_t)j->len))) {
    ld_fail(j, RN_EOBJSTORE, "writing", e);
    ok = false;
  }
  if (ok && fdatasync(fd)) {
    ld_fail(j, RN_EOBJSTORE, "fdatasync", errno);
    ok = false;
  }
  close(fd);
  /* A delete emptying the key's directory may rmdir it between our mkdir
   * and our rename: create it again (a bounded number of times). */
  for (int tries = 0; ok; tries++) {
    if ((e = ld_mkdirs(ld, path))) {
      ld_fail(j, RN_EOBJSTORE, "creating its directory", e);
      ok = false;
    } else if (rename(tmp, path) == 0) {
      break;
    } else if (errno != ENOENT || tries == 8) {
      ld_fail(j, RN_EOBJSTORE, "rename", errno);
      ok = false;
    }
  }
  if (!ok) {
    unlink(tmp);
    return;
  }
  *slash = 0;
  e = fsync_dir(path);
  *slash = '/';
  if (e) return ld_fail(j, RN_EOBJSTORE, "fsync of its directory", e);
  j->bytes_up = j->len;
}

static void job_get(ld_t *ld, ld_job_t *j) {
  char path[PATH_MAX];
  if (!ld_path(ld, j->key, path, sizeof path)) return ld_fail(j, RN_EINVAL, "path too long", 0);
  j->r.attempts = 1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR) return ld_fail(j, RN_ENOENT, "no such key", 0);
    return ld_fail(j, RN_EOBJSTORE, "open", e);
  }
  struct stat st;
  if (fstat(fd, &st)) {
    ld_fail(j, RN_EOBJSTORE, "fstat", errno);
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    ld_fail(j, RN_ENOENT, "no such key", 0);
    goto out;
  }
  uint64_t size = (uint64_t)st.st_size;
  j->r.object_size = size;
  if (j->off > size || (j->len && j->len > size - j->off)) {
    char what[160];
    snprintf(what, sizeof what, "range [%" PRIu64 ", +%" PRIu64 ") beyond the object's %" PRIu64 " bytes", j->off,
             j->len, size);
    ld_fail(j, RN_ECORRUPT, what, 0);
    goto out;
  }
  uint64_t want = j->len ? j->len : size - j->off;
  if (want > SIZE_MAX - 1) {
    ld_fail(j, RN_ENOMEM, "range too large", 0);
    goto out;
  }
  j->out = malloc(want ? (size_t)want : 1);
  if (!j->out) {
    ld_fail(j, RN_ENOMEM, "read buffer", 0);
    goto out;
  }
  uint64_t got = 0;
  while (got < want) {
    ssize_t r = pread(fd, j->out + got, (size_t)(want - got), (off_t)(j->off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r < 0)
        ld_fail(j, RN_EOBJSTORE, "pread", errno);
      else
        ld_fail(j, RN_ECORRUPT, "the object shrank while it was read", 0);
      free(j->out);
      j->out = NULL;
      goto out;
    }
    got += (uint64_t)r;
  }
  j->out_len = (size_t)want;
out:
  close(fd);
}

static int64_t st_mtime_ms(const struct stat *st) {
  return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

static void job_head(ld_t *ld, ld_job_t *j) {
  char path[PATH_MAX];
  if (!ld_path(ld, j->key, path, sizeof path)) return ld_fail(j, RN_EINVAL, "path too long", 0);
  j->r.attempts = 1;
  struct stat st;
  if (stat(path, &st)) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR) return ld_fail(j, RN_ENOENT, "no such key", 0);
    return ld_fail(j, RN_EOBJSTORE, "stat", e);
  }
  if (!S_ISREG(st.st_mode)) return ld_fail(j, RN_ENOENT, "no such key", 0);
  j->r.object_size = (uint64_t)st.st_size;
  j->r.mtime_ms = st_mtime_ms(&st);
}

static void job_del(ld_t *ld, ld_job_t *j) {
  char path[PATH_MAX];
  if (!ld_path(ld, j->key, path, sizeof path)) return ld_fail(j, RN_EINVAL, "path too long", 0);
  j->r.attempts = 1;
  if (unlink(path)) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR || e == EISDIR) return; /* no such object: done */
    return ld_fail(j, RN_EOBJSTORE, "unlink", e);
  }
  char *slash = strrchr(path, '/');
  *slash = 0;
  int e = fsync_dir(path);
  if (e) return ld_fail(j, RN_EOBJSTORE, "fsync of its directory", e);
  /* Remove the directories this emptied, up to (not including) root; a
   * directory that is not empty (or gained a file meanwhile) stays. */
  size_t rl = strlen(ld->root);
  while (strlen(path) > rl && rmdir(path) == 0) {
    slash = strrchr(path, '/');
    *slash = 0;
    (void)fsync_dir(path);
  }
}

/* Walk dir (root-relative rel, of rl bytes) collecting keys that start with
 * prefix; at the top level only names starting with first. */
static int ld_walk(ld_job_t *j, char *path, size_t plen, size_t rootlen, const char *first) {
  DIR *d = opendir(path);
  if (!d) return errno == ENOENT || errno == ENOTDIR ? 0 : errno;
  int rc = 0;
  struct dirent *de;
  size_t flen = first ? strlen(first) : 0;
  while (!rc && (errno = 0, de = readdir(d))) {
    const char *nm = de->d_name;
    if (!strcmp(nm, ".") || !strcmp(nm, "..") || !strncmp(nm, LD_TMP_MARK, sizeof LD_TMP_MARK - 1)) continue;
    if (first && strncmp(nm, first, flen)) continue;
    size_t nl = strlen(nm);
    if (plen + 1 + nl >= PATH_MAX) continue;
    path[plen] = '/';
    memcpy(path + plen + 1, nm, nl + 1);
    struct stat st;
    if (lstat(path, &st)) {
      if (errno != ENOENT) rc = errno; /* vanished meanwhile: not listed */
    } else if (S_ISDIR(st.st_mode)) {
      rc = ld_walk(j, path, plen + 1 + nl, rootlen, NULL);
    } else if (S_ISREG(st.st_mode)) {
      const char *key = path + rootlen + 1;
      if (rn__objlist_add(&j->list, key, strlen(key), (uint64_t)st.st_size, st_mtime_ms(&st))) rc = ENOMEM;
    }
    path[plen] = 0;
  }
  if (!rc && errno) rc = errno;
  closedir(d);
  return rc;
}

static void job_list(ld_t *ld, ld_job_t *j) {
  char path[PATH_MAX];
  j->r.attempts = 1;
  /* prefix "a/b/c": walk root/a/b, names starting with "c" at its top */
  const char *last = strrchr(j->key, '/');
  size_t dirlen = last ? (size_t)(last - j->key) : 0;
  int n = dirlen ? snprintf(path, sizeof path, "%s/%.*s", ld->root, (int)dirlen, j->key)
                 : snprintf(path, sizeof path, "%s", ld->root);
  if (n < 0 || (size_t)n >= sizeof path) return ld_fail(j, RN_EINVAL, "path too long", 0);
  const char *first = last ? last + 1 : j->key;
  int e = ld_walk(j, path, (size_t)n, strlen(ld->root), *first ? first : NULL);
  if (e) {
    rn__objlist_free(&j->list);
    return ld_fail(j, e == ENOMEM ? RN_ENOMEM : RN_EOBJSTORE, "listing", e);
  }
  rn__objlist_sort(&j->list);
}

static void *ld_worker(void *p) {
  ld_t *ld = p;
  pthread_mutex_lock(&ld->mu);
  for (;;) {
    while (!ld->qhead && !ld->stopping) pthread_cond_wait(&ld->cv, &ld->mu);
    if (ld->stopping) break; /* what is still queued is canceled by destroy */
    ld_job_t *j = ld->qhead;
    ld->qhead = j->qnext;
    if (!ld->qhead) ld->qtail = &ld->qhead;
    pthread_mutex_unlock(&ld->mu);
    switch (j->op) {
    case RN_OBJ_PUT: job_put(ld, j); break;
    case RN_OBJ_GET: job_get(ld, j); break;
    case RN_OBJ_HEAD: job_head(ld, j); break;
    case RN_OBJ_LIST: job_list(ld, j); break;
    case RN_OBJ_DELETE: job_del(ld, j); break;
    default: break;
    }
    rn__objq_push(&ld->done, &j->node);
    pthread_mutex_lock(&ld->mu);
  }
  pthread_mutex_unlock(&ld->mu);
  return NULL;
}

/* ---- the owner's side ------------------------------------------------------------ */

static rn_err_t ld_submit(ld_t *ld, rn_obj_op_t op, const char *key, bool prefix, ld_job_t **out) {
  if (ld->closing) return RN_ECANCELED;
  if (!ld_key_ok(key, prefix)) return RN_EINVAL;
  ld_job_t *j = calloc(1, sizeof *j);
  if (!j || !(j->key = strdup(key))) {
    free(j);
    return RN_ENOMEM;
  }
  j->op = op;
  j->start_ns = rn__objstore_mono_ns();
  *out = j;
  return 0;
}

static void ld_enqueue(ld_t *ld, ld_job_t *j) {
  ld->inflight++;
  pthread_mutex_lock(&ld->mu);
  j->qnext = NULL;
  *ld->qtail = j;
  ld->qtail = &j->qnext;
  pthread_cond_signal(&ld->cv);
  pthread_mutex_unlock(&ld->mu);
}

static rn_err_t ld_put_mem(rn_objstore_t *os, const char *key, const uint8_t *data, size_t len, rn_obj_cb cb,
                           void *arg) {
  ld_t *ld = (ld_t *)os;
  ld_job_t *j;
  rn_err_t err = ld_submit(ld, RN_OBJ_PUT, key, false, &j);
  if (err) return err;
  j->data = data;
  j->len = len;
  j->u.cb = cb;
  j->arg = arg;
  ld_enqueue(ld, j);
  return 0;
}

static rn_err_t ld_put_file(rn_objstore_t *os, const char *key, const char *path, uint64_t len, rn_obj_cb cb,
                            void *arg) {
  ld_t *ld = (ld_t *)os;
  ld_job_t *j;
  rn_err_t err = ld_submit(ld, RN_OBJ_PUT, key, false, &j);
  if (err) return err;
  if (!(j->src = strdup(path))) {
    free(j->key);
    free(j);
    return RN_ENOMEM;
  }
  j->from_file = true;
  j->len = len;
  j->u.cb = cb;
  j->arg = arg;
  ld_enqueue(ld, j);
  return 0;
}

static rn_err_t ld_get(rn_objstore_t *os, const char *key, uint64_t off, uint64_t len, rn_obj_get_cb cb,
                       void *arg) {
  ld_t *ld = (ld_t *)os;
  ld_job_t *j;
  if (len > UINT64_MAX - off) return RN_EINVAL;
  rn_err_t err = ld_submit(ld, RN_OBJ_GET, key, false, &j);
  if (err) return err;
  j->off = off;
  j->len = len;
  j->u.get_cb = cb;
  j->arg = arg;
  ld_enqueue(ld, j);
  return 0;
}

static rn_err_t ld_simple(rn_objstore_t *os, rn_obj_op_t op, const char *key, rn_obj_cb cb, void *arg) {
  ld_t *ld = (ld_t *)os;
  ld_job_t *j;
  rn_err_t err = ld_submit(ld, op, key, false, &j);
  if (err) return err;
  j->u.cb = cb;
  j->arg = arg;
  ld_enqueue(ld, j);
  return 0;
}

static rn_err_t ld_head(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg) {
  return ld_simple(os, RN_OBJ_HEAD, key, cb, arg);
}

static rn_err_t ld_del(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg) {
  return ld_simple(os, RN_OBJ_DELETE, key, cb, arg);
}

static rn_err_t ld_list(rn_objstore_t *os, const char *prefix, rn_obj_list_cb cb, void *arg) {
  ld_t *ld = (ld_t *)os;
  ld_job_t *j;
  rn_err_t err = ld_submit(ld, RN_OBJ_LIST, prefix, true, &j);
  if (err) return err;
  j->u.list_cb = cb;
  j->arg = arg;
  ld_enqueue(ld, j);
  return 0;
}

/* Call j back (with RN_ECANCELED when cancel) and free it. Owner thread. */
static void ld_finish(ld_t *ld, ld_job_t *j, bool cancel) {
  if (cancel && j->r.err != RN_ECANCELED) {
    free(j->out);
    j->out = NULL;
    j->out_len = 0;
    rn__objlist_free(&j->list);
    j->r.err = RN_ECANCELED;
    snprintf(j->r.message, sizeof j->r.message, "localdir %s %s: the store is closing", rn_obj_op_name(j->op),
             j->key);
  }
  rn__objstore_count(&ld->stats, j->op, j->r.err, j->r.attempts, j->r.err ? 0 : j->bytes_up,
                     j->r.err ? 0 : j->out_len, j->start_ns);
  ld->inflight--;
  switch (j->op) {
  case RN_OBJ_GET:
    j->u.get_cb(j->arg, &j->r, j->r.err ? NULL : j->out, j->r.err ? 0 : j->out_len);
    if (j->r.err) free(j->out);
    break;
  case RN_OBJ_LIST: j->u.list_cb(j->arg, &j->r, j->list.e, j->r.err ? 0 : j->list.n); break;
  default: j->u.cb(j->arg, &j->r); break;
  }
  rn__objlist_free(&j->list);
  free(j->key);
  free(j->src);
  free(j);
}

static void ld_finish_node(void *owner, rn__objq_node_t *n, bool closing) {
  ld_finish(owner, (ld_job_t *)n, closing);
}

static int ld_poll(rn_objstore_t *os) {
  ld_t *ld = (ld_t *)os;
  return rn__objq_deliver(&ld->done, ld_finish_node, ld, false);
}

static int ld_fd(const rn_objstore_t *os) { return ((const ld_t *)os)->done.efd; }
static unsigned ld_inflight(const rn_objstore_t *os) { return ((const ld_t *)os)->inflight; }

static void ld_stats(const rn_objstore_t *os, rn_objstore_stats_t *out) { *out = ((const ld_t *)os)->stats; }

static void ld_destroy(rn_objstore_t *os) {
  ld_t *ld = (ld_t *)os;
  ld->closing = true;
  pthread_mutex_lock(&ld->mu);
  ld->stopping = true;
  pthread_cond_broadcast(&ld->cv);
  pthread_mutex_unlock(&ld->mu);
  for (unsigned i = 0; i < ld->nworkers; i++) pthread_join(ld->workers[i], NULL);
  /* Nothing runs now: what was queued and never started, then what finished
   * and was never delivered, is called back as canceled. */
  ld_job_t *q = ld->qhead;
  ld->qhead = NULL;
  ld->qtail = &ld->qhead;
  while (q) {
    ld_job_t *next = q->qnext;
    ld_finish(ld, q, true);
    q = next;
  }
  (void)rn__objq_deliver(&ld->done, ld_finish_node, ld, true);
  rn__objq_fini(&ld->done);
  pthread_cond_destroy(&ld->cv);
  pthread_mutex_destroy(&ld->mu);
  free(ld->root);
  free(ld);
}

static const rn_objstore_ops_t ld_ops = {
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

/* Whether a temporary file named "<host>.<pid>.<n>" (mtime mtime_s) may
 * still be written by a PUT in progress. */
static bool tmp_live(const char *name, time_t mtime_s, const char *host) {
  if (time(NULL) - mtime_s > LD_TMP_STALE_S) return false;
  const char *seq = strrchr(name, '.');
  if (!seq || seq == name) return true;
  const char *pid_at = seq - 1;
  while (pid_at > name && pid_at[-1] != '.') pid_at--;
  if (pid_at == name) return true; /* not ours to judge: wait for the age */
  size_t hl = (size_t)(pid_at - 1 - name);
  if (hl != strlen(host) || memcmp(name, host, hl) != 0) return true; /* another host's */
  long pid = strtol(pid_at, NULL, 10);
  if (pid <= 0) return true;
  if (pid == (long)getpid()) return true; /* another store of this process, on the same root */
  return !(kill((pid_t)pid, 0) != 0 && errno == ESRCH);
}

/* Blocking, on rn_localdir_new's thread: the work directory made (durable
 * in root) and the temporary files of PUTs that died with their process
 * removed. Returns 0 or an errno. */
static int tmp_dir_open(ld_t *ld) {
  char host[256] = "localhost";
  if (gethostname(host, sizeof host - 1) || !host[0]) snprintf(host, sizeof host, "localhost");
  for (char *c = host; *c; c++)
    if (*c == '/' || *c == '.') *c = '_'; /* the name's separators */
  snprintf(ld->tmp_owner, sizeof ld->tmp_owner, "%s.%ld", host, (long)getpid());
  int n = snprintf(ld->tmp_dir, sizeof ld->tmp_dir, "%s/%s", ld->root, LD_TMP_DIR);
  if (n < 0 || (size_t)n >= sizeof ld->tmp_dir) return ENAMETOOLONG;
  if (mkdir(ld->tmp_dir, 0755) == 0) {
    int e = fsync_dir(ld->root);
    if (e) return e;
  } else if (errno != EEXIST) {
    return errno;
  }
  DIR *d = opendir(ld->tmp_dir);
  if (!d) return errno;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    struct stat st;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode)) continue;
    if (!tmp_live(de->d_name, st.st_mtime, host)) (void)unlinkat(dirfd(d), de->d_name, 0);
  }
  closedir(d);
  return 0;
}

rn_err_t rn_localdir_new(const char *root, rn_objstore_t **out, char *why, size_t whylen) {
  if (why && whylen) why[0] = 0;
  if (!root || !root[0] || !out) {
    if (why && whylen) snprintf(why, whylen, "localdir: no root directory");
    return RN_EINVAL;
  }
  /* Blocking, once, on the caller's thread: the root must exist (created
   * with its parents) before any job runs. */
  rn_assert_may_block("localdir: creating its root");
  ld_t *ld = calloc(1, sizeof *ld);
  if (!ld || !(ld->root = strdup(root))) {
    free(ld);
    return RN_ENOMEM;
  }
  size_t rl = strlen(ld->root);
  while (rl > 1 && ld->root[rl - 1] == '/') ld->root[--rl] = 0;
  for (char *s = ld->root + 1; (s = strchr(s, '/')); s++) {
    *s = 0;
    (void)mkdir(ld->root, 0755);
    *s = '/';
  }
  struct stat st;
  int e = 0;
  if (mkdir(ld->root, 0755) && errno != EEXIST)
    e = errno;
  else if (stat(ld->root, &st))
    e = errno;
  else if (!S_ISDIR(st.st_mode))
    e = ENOTDIR;
  if (e) {
    if (why && whylen) snprintf(why, whylen, "localdir: %s is not a usable directory: %s", ld->root, strerror(e));
    free(ld->root);
    free(ld);
    return RN_EINVAL;
  }
  if ((e = tmp_dir_open(ld))) {
    if (why && whylen) snprintf(why, whylen, "localdir: %s/%s: %s", ld->root, LD_TMP_DIR, strerror(e));
    free(ld->root);
    free(ld);
    return RN_EOBJSTORE;
  }
  ld->base.ops = &ld_ops;
  ld->qtail = &ld->qhead;
  rn_err_t err = rn__objq_init(&ld->done);
  if (err) {
    if (why && whylen) snprintf(why, whylen, "localdir: eventfd: %s", strerror(-err));
    free(ld->root);
    free(ld);
    return err;
  }
  pthread_mutex_init(&ld->mu, NULL);
  pthread_cond_init(&ld->cv, NULL);
  for (unsigned i = 0; i < LD_WORKERS; i++) {
    if (pthread_create(&ld->workers[i], NULL, ld_worker, ld)) break;
    ld->nworkers++;
  }
  if (!ld->nworkers) {
    if (why && whylen) snprintf(why, whylen, "localdir: cannot start a worker thread");
    ld_destroy(&ld->base);
    return RN_ENOMEM;
  }
  *out = &ld->base;
  return 0;
}
