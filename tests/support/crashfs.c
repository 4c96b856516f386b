/*
 * crashfs.c — the in-memory crash simulator specified in crashfs.h.
 *
 * What it owns: every file object ("node", the inode) with its durable bytes,
 * its volatile bytes and the pending writes/truncates between them; two
 * namespaces mapping names to nodes (volatile: what a running machine sees;
 * durable: what survives a crash) and the journal of create/rename/unlink
 * operations that leads from the durable namespace to the volatile one.
 *
 * Invariants, kept under the one mutex:
 *   - Replaying the whole journal on the durable namespace yields the
 *     volatile namespace. sync_dir() replays all of it; a crash a random
 *     prefix. (crashfs_write_file flushes the journal first to keep this.)
 *   - For every node, applying its pending ops in order to its durable bytes
 *     yields its volatile bytes.
 *   - A node lives while the volatile or durable namespace, the journal or an
 *     open handle refers to it; so an unlinked file keeps its content until a
 *     sync_dir (or crash) decides it is really gone, and a rename moves the
 *     node itself, so open handles follow it.
 *   - Every mutating operation validates and allocates first, then passes the
 *     crash gate, then commits without any failure path: an operation that
 *     returns an error had no effect. Validation errors (RN_ENOENT,
 *     RN_EEXIST, RN_EINVAL, -EBADF, -EFBIG) are reported as such even while
 *     down and do not count towards crashfs_arm()'s n nor crashfs_ops(), so
 *     "arm(n) for n in 1..crashfs_ops()" visits every successful operation.
 *   - Handles remember the generation they were opened in; a crash bumps it,
 *     after which old handles answer RN_EIO to everything except close.
 *
 * Random choices come from one xorshift64* stream seeded by crashfs_new and
 * consumed only by crashfs_crash, in namespace order, so an equal sequence of
 * calls with an equal seed gives byte-identical results.
 *
 * Injected faults (crashfs_fail_open, crashfs_set_space) are checked after
 * validation and before the gate, so a refused call changes nothing and is
 * not counted; a short write under a space limit passes the gate with the
 * bytes that fit and then reports RN_ENOSPC.
 */
#include "crashfs.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Largest simulated file; keeps a stray offset from asking for terabytes. */
#define CFS_MAX_FILE ((uint64_t)1 << 30)

typedef enum { CFS_OP_WRITE, CFS_OP_TRUNC } cfs_op_kind_t;

typedef struct {
  cfs_op_kind_t kind;
  uint64_t off;  /* write offset, or the new size of a truncate */
  uint8_t *data; /* write bytes (owned); NULL for truncate */
  size_t len;
} cfs_op_t;

typedef struct cfs_node {
  struct cfs_node *next; /* crashfs.nodes list */
  uint8_t *dur;          /* durable bytes (owned) */
  size_t dur_len;
  uint8_t *vol; /* volatile bytes (owned), capacity vol_cap */
  size_t vol_len, vol_cap;
  cfs_op_t *ops; /* pending since the last datasync, in issue order */
  size_t nops, ops_cap;
  unsigned nopen; /* open handles, stale ones included */
  bool mark;      /* scratch for cfs_gc */
} cfs_node_t;

typedef struct {
  char *name; /* owned */
  cfs_node_t *node;
} cfs_ent_t;

/* A namespace: insertion-ordered array (order matters for determinism). */
typedef struct {
  cfs_ent_t *v;
  size_t n, cap;
} cfs_ns_t;

typedef enum { CFS_J_CREATE, CFS_J_RENAME, CFS_J_UNLINK } cfs_jkind_t;

typedef struct {
  cfs_jkind_t kind;
  char *name;       /* owned: created/unlinked name, or rename source */
  char *to;         /* owned: rename target; NULL otherwise */
  cfs_node_t *node; /* CREATE only */
} cfs_jent_t;

typedef struct {
  rn_file_t base; /* first: the rn_file_t* handed out is a cfs_file_t* */
  crashfs_t *cfs;
  cfs_node_t *node; /* kept alive by node->nopen */
  uint64_t gen;     /* crashfs.gen at open; mismatch = stale */
  bool rdonly;
} cfs_file_t;

struct crashfs {
  rn_fs_t fs; /* first: container of the rn_fs_t view */
  pthread_mutex_t mu;
  uint64_t rng;
  cfs_ns_t vol_ns, dur_ns;
  cfs_jent_t *journal;
  size_t njournal, journal_cap;
  cfs_node_t *nodes;
  size_t nfiles; /* open handles */
  uint64_t gen;
  uint64_t countdown; /* mutating ops until the crash point; 0 = disarmed */
  rn_err_t open_err;  /* crashfs_fail_open; 0 = off */
  uint64_t space;     /* crashfs_set_space; UINT64_MAX = no limit */
  atomic_bool down;
  atomic_uint_least64_t ops;
};

static crashfs_t *cfs_of(rn_fs_t *fs) { return (crashfs_t *)((char *)fs - offsetof(crashfs_t, fs)); }

static void *cfs_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "crashfs: out of memory during crash resolution\n");
    abort();
  }
  return p;
}

static char *cfs_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(cfs_xmalloc(n), s, n);
}

static void *cfs_memdup(const void *p, size_t n) {
  void *q = malloc(n ? n : 1);
  if (q && n) memcpy(q, p, n);
  return q;
}

/* Grow *v (elements of size sz) to hold at least want; 0 or RN_ENOMEM. */
static rn_err_t cfs_reserve(void **v, size_t *cap, size_t sz, size_t want) {
  if (want <= *cap) return 0;
  size_t ncap = *cap ? *cap : 8;
  while (ncap < want) ncap *= 2;
  void *nv = realloc(*v, ncap * sz);
  if (!nv) return RN_ENOMEM;
  *v = nv;
  *cap = ncap;
  return 0;
}

/* ---- namespaces ----------------------------------------------------------- */

static ptrdiff_t ns_find(const cfs_ns_t *ns, const char *name) {
  for (size_t i = 0; i < ns->n; i++)
    if (strcmp(ns->v[i].name, name) == 0) return (ptrdiff_t)i;
  return -1;
}

static rn_err_t ns_reserve(cfs_ns_t *ns, size_t extra) {
  return cfs_reserve((void **)&ns->v, &ns->cap, sizeof(ns->v[0]), ns->n + extra);
}

/* name -> node, replacing an existing entry. Takes ownership of name. Needs one
 * reserved slot when the name is new. */
static void ns_put(cfs_ns_t *ns, char *name, cfs_node_t *node) {
  ptrdiff_t i = ns_find(ns, name);
  if (i >= 0) {
    free(name);
    ns->v[i].node = node;
    return;
  }
  assert(ns->n < ns->cap);
  ns->v[ns->n].name = name;
  ns->v[ns->n].node = node;
  ns->n++;
}

static void ns_del_at(cfs_ns_t *ns, size_t i) {
  free(ns->v[i].name);
  memmove(&ns->v[i], &ns->v[i + 1], (ns->n - i - 1) * sizeof(ns->v[0]));
  ns->n--;
}

static void ns_del(cfs_ns_t *ns, const char *name) {
  ptrdiff_t i = ns_find(ns, name);
  assert(i >= 0 && "crashfs: journal out of step with the namespace");
  ns_del_at(ns, (size_t)i);
}

/* from's node takes the name to (ownership of to taken), replacing whatever
 * to named. from must exist. */
static void ns_move(cfs_ns_t *ns, const char *from, char *to) {
  ptrdiff_t i = ns_find(ns, from);
  assert(i >= 0 && "crashfs: journal out of step with the namespace");
  cfs_node_t *node = ns->v[i].node;
  ptrdiff_t j = ns_find(ns, to);
  if (j >= 0) {
    /* Replace the target in place; drop the source entry. */
    free(to);
    ns->v[j].node = node;
    ns_del(ns, from);
  } else {
    free(ns->v[i].name);
    ns->v[i].name = to;
  }
}

static void ns_clear(cfs_ns_t *ns) {
  for (size_t i = 0; i < ns->n; i++) free(ns->v[i].name);
  free(ns->v);
  ns->v = NULL;
  ns->n = ns->cap = 0;
}

/* A copy of src with room for extra more entries; 0 or RN_ENOMEM. */
static rn_err_t ns_clone(const cfs_ns_t *src, size_t extra, cfs_ns_t *out) {
  cfs_ns_t ns = {0};
  if (ns_reserve(&ns, src->n + extra) != 0) return RN_ENOMEM;
  for (size_t i = 0; i < src->n; i++) {
    char *name = cfs_memdup(src->v[i].name, strlen(src->v[i].name) + 1);
    if (!name) {
      ns_clear(&ns);
      return RN_ENOMEM;
    }
    ns.v[ns.n].name = name;
    ns.v[ns.n].node = src->v[i].node;
    ns.n++;
  }
  *out = ns;
  return 0;
}

/* Apply one journal entry to ns (used on the durable namespace). */
static void ns_apply(cfs_ns_t *ns, const cfs_jent_t *e) {
  switch (e->kind) {
  case CFS_J_CREATE:
    if (ns_find(ns, e->name) < 0 && ns_reserve(ns, 1) != 0) abort();
    ns_put(ns, cfs_xstrdup(e->name), e->node);
    break;
  case CFS_J_RENAME:
    ns_move(ns, e->name, cfs_xstrdup(e->to));
    break;
  case CFS_J_UNLINK:
    ns_del(ns, e->name);
    break;
  }
}

/* ---- journal -------------------------------------------------------------- */

static rn_err_t journal_reserve(crashfs_t *cfs) {
  return cfs_reserve((void **)&cfs->journal, &cfs->journal_cap, sizeof(cfs->journal[0]), cfs->njournal + 1);
}

static void journal_clear(crashfs_t *cfs) {
  for (size_t i = 0; i < cfs->njournal; i++) {
    free(cfs->journal[i].name);
    free(cfs->journal[i].to);
  }
  cfs->njournal = 0;
}

/* ---- nodes ---------------------------------------------------------------- */

static void node_free(cfs_node_t *node) {
  for (size_t i = 0; i < node->nops; i++) free(node->ops[i].data);
  free(node->ops);
  free(node->dur);
  free(node->vol);
  free(node);
}

static void node_drop_ops(cfs_node_t *node) {
  for (size_t i = 0; i < node->nops; i++) free(node->ops[i].data);
  node->nops = 0;
}

/* New node whose durable and volatile bytes are data[0..len), linked into cfs.
 * NULL on allocation failure. */
static cfs_node_t *node_new(crashfs_t *cfs, const uint8_t *data, size_t len) {
  cfs_node_t *node = calloc(1, sizeof(*node));
  if (!node) return NULL;
  node->dur = cfs_memdup(data, len);
  node->vol = cfs_memdup(data, len);
  if (!node->dur || !node->vol) {
    node_free(node);
    return NULL;
  }
  node->dur_len = node->vol_len = node->vol_cap = len;
  node->next = cfs->nodes;
  cfs->nodes = node;
  return node;
}

static void node_unlink_free(crashfs_t *cfs, cfs_node_t *node) {
  for (cfs_node_t **p = &cfs->nodes; *p; p = &(*p)->next) {
    if (*p == node) {
      *p = node->next;
      node_free(node);
      return;
    }
  }
  assert(false && "crashfs: node not in list");
}

/* Room for the volatile bytes to reach size and for one more pending op. */
static rn_err_t node_prepare(cfs_node_t *node, uint64_t size) {
  if (cfs_reserve((void **)&node->ops, &node->ops_cap, sizeof(node->ops[0]), node->nops + 1) != 0) return RN_ENOMEM;
  if (size > node->vol_cap) {
    size_t ncap = node->vol_cap ? node->vol_cap : 64;
    while (ncap < size) ncap *= 2;
    uint8_t *nv = realloc(node->vol, ncap);
    if (!nv) return RN_ENOMEM;
    node->vol = nv;
    node->vol_cap = ncap;
  }
  return 0;
}

/* Set buf's length to size, zero-filling growth. buf has capacity >= size. */
static void bytes_resize(uint8_t *buf, size_t *len, size_t size) {
  if (size > *len) memset(buf + *len, 0, size - *len);
  *len = size;
}

static void bytes_write(uint8_t *buf, size_t *len, uint64_t off, const uint8_t *data, size_t n) {
  if (n == 0) return;
  if (off > *len) bytes_resize(buf, len, off);
  memcpy(buf + off, data, n);
  if (off + n > *len) *len = off + n;
}

/* Remove unreachable nodes: in neither namespace, not in the journal, not
 * open. */
static void cfs_gc(crashfs_t *cfs) {
  for (cfs_node_t *n = cfs->nodes; n; n = n->next) n->mark = n->nopen > 0;
  for (size_t i = 0; i < cfs->vol_ns.n; i++) cfs->vol_ns.v[i].node->mark = true;
  for (size_t i = 0; i < cfs->dur_ns.n; i++) cfs->dur_ns.v[i].node->mark = true;
  for (size_t i = 0; i < cfs->njournal; i++)
    if (cfs->journal[i].node) cfs->journal[i].node->mark = true;
  cfs_node_t **p = &cfs->nodes;
  while (*p) {
    cfs_node_t *n = *p;
    if (n->mark) {
      p = &n->next;
    } else {
      *p = n->next;
      node_free(n);
    }
  }
}

/* Bytes of file data held: the volatile sizes of every live node. */
static uint64_t cfs_used_locked(const crashfs_t *cfs) {
  uint64_t n = 0;
  for (const cfs_node_t *node = cfs->nodes; node; node = node->next) n += node->vol_len;
  return n;
}

/* ---- the crash gate ------------------------------------------------------- */

/* Called by every mutating operation after validation and allocation, right
 * before it commits. RN_EIO means: do nothing, the machine is down. */
static rn_err_t cfs_gate(crashfs_t *cfs) {
  if (atomic_load(&cfs->down)) return RN_EIO;
  if (cfs->countdown && --cfs->countdown == 0) {
    atomic_store(&cfs->down, true);
    return RN_EIO;
  }
  atomic_fetch_add(&cfs->ops, 1);
  return 0;
}

/* ---- rn_fs_t operations --------------------------------------------------- */

static void cfs_lock(crashfs_t *cfs) { pthread_mutex_lock(&cfs->mu); }
static void cfs_unlock(crashfs_t *cfs) { pthread_mutex_unlock(&cfs->mu); }

/* The handle's node, or NULL when the handle predates the last crash. */
static cfs_node_t *file_node(const cfs_file_t *f) { return f->gen == f->cfs->gen ? f->node : NULL; }

static rn_err_t cfs_open(rn_fs_t *fs, const char *path, int flags, rn_file_t **out) {
  crashfs_t *cfs = cfs_of(fs);
  if (!path || !*path || !out) return RN_EINVAL;
  bool rdonly = (flags & RN_FS_RDONLY) != 0;
  if (rdonly && (flags & RN_FS_TRUNC)) return RN_EINVAL;

  cfs_file_t *f = calloc(1, sizeof(*f));
  if (!f) return RN_ENOMEM;
  f->base.fs = fs;
  f->base.fd = -1;
  f->cfs = cfs;
  f->rdonly = rdonly;

  rn_err_t err = 0;
  cfs_lock(cfs);
  ptrdiff_t i = ns_find(&cfs->vol_ns, path);
  cfs_node_t *node = NULL;
  if (cfs->open_err) {
    err = cfs->open_err;
  } else if (i >= 0) {
    node = cfs->vol_ns.v[i].node;
    if ((flags & RN_FS_CREATE) && (flags & RN_FS_EXCL)) {
      err = RN_EEXIST;
    } else if (flags & RN_FS_TRUNC) {
      /* O_TRUNC on an existing file is a truncate op like any other. */
      if ((err = node_prepare(node, 0)) == 0 && (err = cfs_gate(cfs)) == 0) {
        node->ops[node->nops++] = (cfs_op_t){.kind = CFS_OP_TRUNC, .off = 0};
        node->vol_len = 0;
      }
    }
  } else if (!(flags & RN_FS_CREATE)) {
    err = RN_ENOENT;
  } else {
    char *jname = cfs_memdup(path, strlen(path) + 1);
    char *vname = cfs_memdup(path, strlen(path) + 1);
    node = node_new(cfs, NULL, 0);
    if (!jname || !vname || !node) {
      err = RN_ENOMEM;
    } else if ((err = journal_reserve(cfs)) == 0 && (err = ns_reserve(&cfs->vol_ns, 1)) == 0) {
      err = cfs_gate(cfs);
    }
    if (err == 0) {
      cfs->journal[cfs->njournal++] = (cfs_jent_t){.kind = CFS_J_CREATE, .name = jname, .node = node};
      ns_put(&cfs->vol_ns, vname, node);
    } else {
      free(jname);
      free(vname);
      if (node) node_unlink_free(cfs, node);
    }
  }
  if (err == 0) {
    f->node = node;
    f->gen = cfs->gen;
    node->nopen++;
    cfs->nfiles++;
    *out = &f->base;
  }
  cfs_unlock(cfs);
  if (err != 0) free(f);
  return err;
}

static void cfs_close(rn_file_t *file) {
  if (!file) return;
  cfs_file_t *f = (cfs_file_t *)file;
  crashfs_t *cfs = f->cfs;
  cfs_lock(cfs);
  assert(f->node->nopen > 0 && cfs->nfiles > 0);
  f->node->nopen--;
  cfs->nfiles--;
  if (f->node->nopen == 0) cfs_gc(cfs);
  cfs_unlock(cfs);
  free(f);
}

static rn_err_t cfs_pwritev(rn_file_t *file, const struct iovec *iov, int iovcnt, uint64_t off) {
  cfs_file_t *f = (cfs_file_t *)file;
  crashfs_t *cfs = f->cfs;
  if (iovcnt < 0 || (iovcnt > 0 && !iov)) return RN_EINVAL;
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > CFS_MAX_FILE) return -EFBIG;
    if (iov[i].iov_len && !iov[i].iov_base) return RN_EINVAL;
    total += iov[i].iov_len;
    if (total > CFS_MAX_FILE) return -EFBIG;
  }
  if (off > CFS_MAX_FILE || total > CFS_MAX_FILE - off) return -EFBIG;

  uint8_t *data = NULL;
  if (total) {
    data = malloc(total);
    if (!data) return RN_ENOMEM;
    size_t at = 0;
    for (int i = 0; i < iovcnt; i++) {
      if (iov[i].iov_len) memcpy(data + at, iov[i].iov_base, iov[i].iov_len);
      at += iov[i].iov_len;
    }
  }

  rn_err_t err;
  rn_err_t short_err = 0; /* RN_ENOSPC after a short write */
  cfs_lock(cfs);
  cfs_node_t *node = file_node(f);
  if (node && !f->rdonly && total && cfs->space != UINT64_MAX) {
    /* Growth beyond the current size must fit in what is left. */
    uint64_t used = cfs_used_locked(cfs);
    uint64_t room = used < cfs->space ? cfs->space - used : 0;
    uint64_t end_max = (uint64_t)node->vol_len + room;
    if (off + total > end_max) {
      total = off < end_max ? (size_t)(end_max - off) : 0;
      short_err = RN_ENOSPC;
    }
  }
  if (!node) {
    err = RN_EIO;
  } else if (f->rdonly) {
    err = -EBADF;
  } else if (short_err && total == 0) {
    err = short_err; /* nothing fits: no effect */
  } else if ((err = node_prepare(node, total ? off + total : 0)) == 0 && (err = cfs_gate(cfs)) == 0) {
    if (total) {
      bytes_write(node->vol, &node->vol_len, off, data, total);
      node->ops[node->nops++] = (cfs_op_t){.kind = CFS_OP_WRITE, .off = off, .data = data, .len = total};
      data = NULL; /* owned by the op now */
    }
    err = short_err;
  }
  cfs_unlock(cfs);
  free(data);
  return err;
}

static rn_err_t cfs_pread(rn_file_t *file, void *buf, size_t len, uint64_t off, size_t *nread) {
  cfs_file_t *f = (cfs_file_t *)file;
  crashfs_t *cfs = f->cfs;
  if (!nread || (len && !buf)) return RN_EINVAL;
  rn_err_t err = 0;
  cfs_lock(cfs);
  cfs_node_t *node = file_node(f);
  if (!node) {
    err = RN_EIO;
  } else if (off >= node->vol_len) {
    *nread = 0;
  } else {
    size_t n = node->vol_len - (size_t)off;
    if (n > len) n = len;
    memcpy(buf, node->vol + off, n);
    *nread = n;
  }
  cfs_unlock(cfs);
  return err;
}

static rn_err_t cfs_datasync(rn_file_t *file) {
  cfs_file_t *f = (cfs_file_t *)file;
  crashfs_t *cfs = f->cfs;
  rn_err_t err;
  cfs_lock(cfs);
  cfs_node_t *node = file_node(f);
  if (!node) {
    err = RN_EIO;
  } else {
    uint8_t *dur = cfs_memdup(node->vol, node->vol_len);
    if (!dur) {
      err = RN_ENOMEM;
    } else if ((err = cfs_gate(cfs)) != 0) {
      free(dur);
    } else {
      free(node->dur);
      node->dur = dur;
      node->dur_len = node->vol_len;
      node_drop_ops(node);
    }
  }
  cfs_unlock(cfs);
  return err;
}

static rn_err_t cfs_truncate(rn_file_t *file, uint64_t size) {
  cfs_file_t *f = (cfs_file_t *)file;
  crashfs_t *cfs = f->cfs;
  rn_err_t err;
  cfs_lock(cfs);
  cfs_node_t *node = file_node(f);
  if (!node) {
    err = RN_EIO;
  } else if (f->rdonly) {
    err = RN_EINVAL; /* what ftruncate(2) says for an fd not open for writing */
  } else if (size > CFS_MAX_FILE) {
    err = -EFBIG;
  } else if ((err = node_prepare(node, size)) == 0 && (err = cfs_gate(cfs)) == 0) {
    bytes_resize(node->vol, &node->vol_len, (size_t)size);
    node->ops[node->nops++] = (cfs_op_t){.kind = CFS_OP_TRUNC, .off = size};
  }
  cfs_unlock(cfs);
  return err;
}

static rn_err_t cfs_size(rn_file_t *file, uint64_t *size) {
  cfs_file_t *f = (cfs_file_t *)file;
  crashfs_t *cfs = f->cfs;
  if (!size) return RN_EINVAL;
  rn_err_t err = 0;
  cfs_lock(cfs);
  cfs_node_t *node = file_node(f);
  if (!node)
    err = RN_EIO;
  else
    *size = node->vol_len;
  cfs_unlock(cfs);
  return err;
}

static rn_err_t cfs_rename(rn_fs_t *fs, const char *from, const char *to) {
  crashfs_t *cfs = cfs_of(fs);
  if (!from || !to || !*from || !*to) return RN_EINVAL;
  char *jfrom = cfs_memdup(from, strlen(from) + 1);
  char *jto = cfs_memdup(to, strlen(to) + 1);
  char *vto = cfs_memdup(to, strlen(to) + 1);
  rn_err_t err;
  cfs_lock(cfs);
  if (!jfrom || !jto || !vto) {
    err = RN_ENOMEM;
  } else if (ns_find(&cfs->vol_ns, from) < 0) {
    err = RN_ENOENT;
  } else if (strcmp(from, to) == 0) {
    err = cfs_gate(cfs); /* rename(2) of a name onto itself: success, no change */
  } else if ((err = journal_reserve(cfs)) == 0 && (err = cfs_gate(cfs)) == 0) {
    ns_move(&cfs->vol_ns, from, vto);
    cfs->journal[cfs->njournal++] = (cfs_jent_t){.kind = CFS_J_RENAME, .name = jfrom, .to = jto};
    jfrom = jto = vto = NULL;
  }
  cfs_unlock(cfs);
  free(jfrom);
  free(jto);
  free(vto);
  return err;
}

static rn_err_t cfs_unlink(rn_fs_t *fs, const char *path) {
  crashfs_t *cfs = cfs_of(fs);
  if (!path || !*path) return RN_EINVAL;
  char *jname = cfs_memdup(path, strlen(path) + 1);
  rn_err_t err;
  cfs_lock(cfs);
  if (!jname) {
    err = RN_ENOMEM;
  } else if (ns_find(&cfs->vol_ns, path) < 0) {
    err = RN_ENOENT;
  } else if ((err = journal_reserve(cfs)) == 0 && (err = cfs_gate(cfs)) == 0) {
    /* The node stays alive through the durable namespace until a sync_dir or
     * crash settles whether the unlink happened. */
    ns_del(&cfs->vol_ns, path);
    cfs->journal[cfs->njournal++] = (cfs_jent_t){.kind = CFS_J_UNLINK, .name = jname};
    jname = NULL;
  }
  cfs_unlock(cfs);
  free(jname);
  return err;
}

static rn_err_t cfs_mkdirs(rn_fs_t *fs, const char *path) {
  (void)fs;
  return path ? 0 : RN_EINVAL; /* directories are implicit */
}

static rn_err_t cfs_sync_dir(rn_fs_t *fs, const char *path) {
  crashfs_t *cfs = cfs_of(fs);
  if (!path) return RN_EINVAL;
  cfs_ns_t dur;
  rn_err_t err;
  cfs_lock(cfs);
  /* Like ext4's single journal: one directory sync commits every namespace
   * operation issued so far, whichever directory it touched. */
  if ((err = ns_clone(&cfs->vol_ns, 0, &dur)) == 0) {
    if ((err = cfs_gate(cfs)) != 0) {
      ns_clear(&dur);
    } else {
      ns_clear(&cfs->dur_ns);
      cfs->dur_ns = dur;
      journal_clear(cfs);
      cfs_gc(cfs);
    }
  }
  cfs_unlock(cfs);
  return err;
}

static rn_err_t cfs_list(rn_fs_t *fs, const char *path, rn_fs_list_cb cb, void *arg) {
  crashfs_t *cfs = cfs_of(fs);
  if (!path || !cb) return RN_EINVAL;
  /* Directory "d" (or "d/") holds the names starting with "d/"; "/" the
   * absolute names; "" the relative names without a directory. */
  size_t plen = strlen(path);
  while (plen > 0 && path[plen - 1] == '/') plen--;
  bool abs_root = plen == 0 && path[0] == '/';

  /* Snapshot the names, then call back without the lock so cb may use fs. */
  char **names = NULL;
  size_t n = 0, cap = 0;
  rn_err_t err = 0;
  cfs_lock(cfs);
  for (size_t i = 0; i < cfs->vol_ns.n && err == 0; i++) {
    const char *name = cfs->vol_ns.v[i].name;
    const char *rest;
    if (plen > 0) {
      if (strncmp(name, path, plen) != 0 || name[plen] != '/') continue;
      rest = name + plen + 1;
    } else if (abs_root) {
      if (name[0] != '/') continue;
      rest = name + 1;
    } else {
      if (name[0] == '/') continue;
      rest = name;
    }
    const char *slash = strchr(rest, '/');
    size_t rlen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (rlen == 0) continue;
    bool seen = false; /* a subdirectory shows up once */
    for (size_t k = 0; k < n && !seen; k++) seen = strncmp(names[k], rest, rlen) == 0 && names[k][rlen] == '\0';
    if (seen) continue;
    char *copy = malloc(rlen + 1);
    if (!copy || cfs_reserve((void **)&names, &cap, sizeof(names[0]), n + 1) != 0) {
      free(copy);
      err = RN_ENOMEM;
      break;
    }
    memcpy(copy, rest, rlen);
    copy[rlen] = '\0';
    names[n++] = copy;
  }
  cfs_unlock(cfs);
  size_t k = 0;
  for (; k < n && err == 0; k++)
    if (cb(arg, names[k]) != 0) break;
  for (k = 0; k < n; k++) free(names[k]);
  free(names);
  return err;
}

/* ---- crash resolution ----------------------------------------------------- */

static void fill_random(crashfs_t *cfs, uint8_t *p, size_t n) {
  while (n) {
    uint64_t r = rn_test_rand(&cfs->rng);
    size_t k = n < sizeof(r) ? n : sizeof(r);
    memcpy(p, &r, k);
    p += k;
    n -= k;
  }
}

/* Decide the fate of each pending op of node; the result becomes its durable
 * and volatile bytes. */
static void node_resolve(crashfs_t *cfs, cfs_node_t *node) {
  size_t cap = node->dur_len;
  for (size_t i = 0; i < node->nops; i++) {
    const cfs_op_t *op = &node->ops[i];
    size_t end = op->kind == CFS_OP_WRITE ? (size_t)op->off + op->len : (size_t)op->off;
    if (end > cap) cap = end;
  }
  uint8_t *buf = cfs_xmalloc(cap);
  size_t len = node->dur_len;
  if (len) memcpy(buf, node->dur, len);
  uint8_t *garbage = NULL;
  for (size_t i = 0; i < node->nops; i++) {
    const cfs_op_t *op = &node->ops[i];
    if (op->kind == CFS_OP_TRUNC) {
      if (rn_test_rand_below(&cfs->rng, 2)) bytes_resize(buf, &len, (size_t)op->off);
      continue;
    }
    switch (rn_test_rand_below(&cfs->rng, 4)) {
    case 0: /* dropped */
      break;
    case 1: /* kept */
      bytes_write(buf, &len, op->off, op->data, op->len);
      break;
    case 2: /* torn: a prefix made it */
      bytes_write(buf, &len, op->off, op->data, (size_t)rn_test_rand_below(&cfs->rng, op->len));
      break;
    case 3: /* garbled: the range was written, with the wrong bytes */
      garbage = cfs_xmalloc(op->len);
      fill_random(cfs, garbage, op->len);
      bytes_write(buf, &len, op->off, garbage, op->len);
      free(garbage);
      break;
    }
  }
  node_drop_ops(node);
  free(node->dur);
  free(node->vol);
  node->dur = buf;
  node->dur_len = len;
  node->vol = cfs_xmalloc(cap);
  if (len) memcpy(node->vol, buf, len);
  node->vol_len = len;
  node->vol_cap = cap ? cap : 1;
}

void crashfs_crash(crashfs_t *cfs) {
  cfs_lock(cfs);
  /* Namespace: a prefix of the unsynced journal became durable. */
  size_t keep = (size_t)rn_test_rand_below(&cfs->rng, (uint64_t)cfs->njournal + 1);
  for (size_t i = 0; i < keep; i++) ns_apply(&cfs->dur_ns, &cfs->journal[i]);
  journal_clear(cfs);

  /* Contents of the files that exist after the crash. */
  for (cfs_node_t *n = cfs->nodes; n; n = n->next) n->mark = false;
  for (size_t i = 0; i < cfs->dur_ns.n; i++) {
    cfs_node_t *node = cfs->dur_ns.v[i].node;
    if (node->mark) continue;
    node->mark = true;
    node_resolve(cfs, node);
  }

  /* Back up, fully synced, with every earlier handle stale. */
  cfs_ns_t vol;
  if (ns_clone(&cfs->dur_ns, 0, &vol) != 0) {
    fprintf(stderr, "crashfs: out of memory during crash resolution\n");
    abort();
  }
  ns_clear(&cfs->vol_ns);
  cfs->vol_ns = vol;
  cfs->gen++;
  cfs->countdown = 0;
  atomic_store(&cfs->down, false);
  cfs_gc(cfs);
  cfs_unlock(cfs);
}

/* ---- crashfs_t ------------------------------------------------------------ */

crashfs_t *crashfs_new(uint64_t seed) {
  crashfs_t *cfs = calloc(1, sizeof(*cfs));
  if (!cfs) return NULL;
  if (pthread_mutex_init(&cfs->mu, NULL) != 0) {
    free(cfs);
    return NULL;
  }
  cfs->fs = (rn_fs_t){
      .name = "crashfs",
      .open = cfs_open,
      .close = cfs_close,
      .pwritev = cfs_pwritev,
      .pread = cfs_pread,
      .datasync = cfs_datasync,
      .truncate = cfs_truncate,
      .size = cfs_size,
      .rename = cfs_rename,
      .unlink = cfs_unlink,
      .mkdirs = cfs_mkdirs,
      .sync_dir = cfs_sync_dir,
      .list = cfs_list,
  };
  /* splitmix64 so that neighbouring seeds give unrelated streams, and the
   * xorshift state is never zero. */
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  cfs->rng = z ? z : 0x9E3779B97F4A7C15ULL;
  atomic_init(&cfs->down, false);
  atomic_init(&cfs->ops, 0);
  cfs->space = UINT64_MAX;
  return cfs;
}

void crashfs_free(crashfs_t *cfs) {
  if (!cfs) return;
  assert(cfs->nfiles == 0 && "crashfs_free: files still open");
  ns_clear(&cfs->vol_ns);
  ns_clear(&cfs->dur_ns);
  journal_clear(cfs);
  free(cfs->journal);
  while (cfs->nodes) {
    cfs_node_t *n = cfs->nodes;
    cfs->nodes = n->next;
    node_free(n);
  }
  pthread_mutex_destroy(&cfs->mu);
  free(cfs);
}

rn_fs_t *crashfs_fs(crashfs_t *cfs) { return &cfs->fs; }

void crashfs_arm(crashfs_t *cfs, uint64_t n) {
  cfs_lock(cfs);
  cfs->countdown = n; /* 0 disarms; a machine already down stays down */
  cfs_unlock(cfs);
}

bool crashfs_is_down(const crashfs_t *cfs) { return atomic_load(&cfs->down); }

void crashfs_fail_open(crashfs_t *cfs, rn_err_t err) {
  cfs_lock(cfs);
  cfs->open_err = err;
  cfs_unlock(cfs);
}

void crashfs_set_space(crashfs_t *cfs, uint64_t bytes) {
  cfs_lock(cfs);
  cfs->space = bytes;
  cfs_unlock(cfs);
}

uint64_t crashfs_used(crashfs_t *cfs) {
  cfs_lock(cfs);
  uint64_t n = cfs_used_locked(cfs);
  cfs_unlock(cfs);
  return n;
}

uint64_t crashfs_ops(const crashfs_t *cfs) { return atomic_load(&cfs->ops); }

rn_err_t crashfs_read_file(crashfs_t *cfs, const char *path, uint8_t **data, size_t *len) {
  if (!path || !data || !len) return RN_EINVAL;
  rn_err_t err = 0;
  cfs_lock(cfs);
  ptrdiff_t i = ns_find(&cfs->vol_ns, path);
  if (i < 0) {
    err = RN_ENOENT;
  } else {
    const cfs_node_t *node = cfs->vol_ns.v[i].node;
    uint8_t *copy = cfs_memdup(node->vol, node->vol_len);
    if (!copy) {
      err = RN_ENOMEM;
    } else {
      *data = copy;
      *len = node->vol_len;
    }
  }
  cfs_unlock(cfs);
  return err;
}

rn_err_t crashfs_write_file(crashfs_t *cfs, const char *path, const uint8_t *data, size_t len) {
  if (!path || !*path || (len && !data)) return RN_EINVAL;
  if (len > CFS_MAX_FILE) return -EFBIG;
  char *vname = cfs_memdup(path, strlen(path) + 1);
  char *dname = cfs_memdup(path, strlen(path) + 1);
  rn_err_t err;
  cfs_lock(cfs);
  cfs_ns_t dur;
  cfs_node_t *node = NULL;
  /* Planting a durable name on top of an unsynced journal could be undone by
   * replaying it (an earlier unlink of the same name), so the journal is made
   * durable first, as if sync_dir had been called. Not counted as an op and
   * allowed while down: this is the test's hand, not the program's. */
  if (!vname || !dname) {
    err = RN_ENOMEM;
  } else if ((err = ns_clone(&cfs->vol_ns, 1, &dur)) == 0) {
    if ((err = ns_reserve(&cfs->vol_ns, 1)) != 0 || !(node = node_new(cfs, data, len))) {
      if (!err) err = RN_ENOMEM;
      ns_clear(&dur);
    } else {
      ns_clear(&cfs->dur_ns);
      cfs->dur_ns = dur;
      journal_clear(cfs);
      /* A fresh node, like write-temp-then-rename: open handles on a
       * replaced file keep the old object. */
      ns_put(&cfs->dur_ns, dname, node);
      ns_put(&cfs->vol_ns, vname, node);
      vname = dname = NULL;
      cfs_gc(cfs);
    }
  }
  cfs_unlock(cfs);
  free(vname);
  free(dname);
  return err;
}
