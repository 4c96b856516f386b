/*
 * faulty.c — a fault-injecting wrapper around another object store, for
 * tests: rn_faulty_new / rn_faulty_set.
 *
 * Every operation goes through an fop_t that remembers the faults in force
 * when it was submitted (rn_faulty_set applies to later operations only).
 * An operation either fails at once without reaching the inner store
 * (fail_next, down) or is forwarded; the inner's completion then has the
 * faults applied (lose_put_response, truncate_gets, corrupt_gets). Either
 * way the finished fop_t waits in faulty's own queue until its due time
 * (latency_ms after it finished, held by a timer thread) and is called back
 * from rn_objstore_poll(faulty), never from inside a submit.
 *
 * The fd: rn_objstore_fd(faulty) is an epoll descriptor holding both the
 * inner store's fd and faulty's own eventfd, so a loop waiting on it wakes
 * for either; rn_objstore_poll(faulty) polls the inner store (its
 * completions come back into faulty's callbacks here) and then runs what is
 * due in faulty's queue.
 *
 * Counters (rn_objstore_stats of faulty) are what faulty's callers saw:
 * requests the inner store reports sending (attempts), or one for an
 * injected failure; errors as delivered; bytes as delivered.
 *
 * Destroy: the timer thread stops, the inner store is destroyed (its
 * callbacks here run with RN_ECANCELED and are delivered at once), then
 * every fop_t still queued or delayed is called back with RN_ECANCELED.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "objstore_int.h"
#include "rn_tier.h"

typedef struct faulty faulty_t;

typedef struct fop {
  rn__objq_node_t node; /* first: the ready queue links it */
  struct fop *dnext;    /* the delayed list */
  faulty_t *f;
  rn_obj_op_t op;
  union {
    rn_obj_cb cb;
    rn_obj_get_cb get_cb;
    rn_obj_list_cb list_cb;
  } u;
  void *arg;
  rn_faulty_opts_t o;   /* the faults when it was submitted */
  uint64_t start_ns, due_ns;
  uint64_t bytes_up;
  rn_obj_result_t r;
  uint8_t *data;        /* GET: owned until delivered */
  size_t len;
  rn__objlist_t list;   /* LIST: a copy of the inner's answer */
  char key[64];         /* for messages (truncated) */
} fop_t;

struct faulty {
  rn_objstore_t base;   /* first */
  rn_objstore_t *inner; /* owned */
  rn_faulty_opts_t o;   /* owner thread */
  rn__objq_t ready;
  int epfd;
  pthread_t timer;
  bool timer_started;
  pthread_mutex_t mu;   /* the delayed list and stopping */
  pthread_cond_t cv;
  fop_t *delayed;
  bool stopping;
  bool closing;         /* owner: destroy has begun: deliver at once */
  unsigned inflight;
  rn_objstore_stats_t stats;
};

static void fop_free(fop_t *p) {
  free(p->data);
  rn__objlist_free(&p->list);
  free(p);
}

/* Deliver p's result now and free it. Owner thread. */
static void fop_deliver(fop_t *p, bool cancel) {
  faulty_t *f = p->f;
  if (cancel && p->r.err != RN_ECANCELED) {
    free(p->data);
    p->data = NULL;
    p->len = 0;
    rn__objlist_free(&p->list);
    p->r.err = RN_ECANCELED;
    snprintf(p->r.message, sizeof p->r.message, "faulty %s %s: the store is closing", rn_obj_op_name(p->op), p->key);
  }
  rn__objstore_count(&f->stats, p->op, p->r.err, p->r.attempts ? p->r.attempts : 1, p->r.err ? 0 : p->bytes_up,
                     p->r.err ? 0 : p->len, p->start_ns);
  f->inflight--;
  switch (p->op) {
  case RN_OBJ_GET:
    p->u.get_cb(p->arg, &p->r, p->r.err ? NULL : p->data, p->r.err ? 0 : p->len);
    if (!p->r.err) p->data = NULL; /* handed over */
    break;
  case RN_OBJ_LIST: p->u.list_cb(p->arg, &p->r, p->list.e, p->r.err ? 0 : p->list.n); break;
  default: p->u.cb(p->arg, &p->r); break;
  }
  fop_free(p);
}

/* p has finished (injected or from the inner store): queue it for its due
 * time. Owner thread. */
static void fop_finished(fop_t *p) {
  faulty_t *f = p->f;
  if (f->closing) return fop_deliver(p, true);
  if (!p->o.latency_ms) return rn__objq_push(&f->ready, &p->node);
  p->due_ns = rn__objstore_mono_ns() + (uint64_t)p->o.latency_ms * 1000000u;
  pthread_mutex_lock(&f->mu);
  fop_t **pp = &f->delayed; /* sorted by due time */
  while (*pp && (*pp)->due_ns <= p->due_ns) pp = &(*pp)->dnext;
  p->dnext = *pp;
  *pp = p;
  pthread_cond_signal(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

/* The timer thread: moves delayed operations to the ready queue when due. */
static void *timer_main(void *arg) {
  faulty_t *f = arg;
  pthread_mutex_lock(&f->mu);
  while (!f->stopping) {
    uint64_t now = rn__objstore_mono_ns();
    while (f->delayed && f->delayed->due_ns <= now) {
      fop_t *p = f->delayed;
      f->delayed = p->dnext;
      rn__objq_push(&f->ready, &p->node);
    }
    if (!f->delayed) {
      pthread_cond_wait(&f->cv, &f->mu);
    } else {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      uint64_t wait = f->delayed->due_ns - now;
      uint64_t ns = (uint64_t)ts.tv_nsec + wait % 1000000000u;
      ts.tv_sec += (time_t)(wait / 1000000000u + ns / 1000000000u);
      ts.tv_nsec = (long)(ns % 1000000000u);
      pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    }
  }
  pthread_mutex_unlock(&f->mu);
  return NULL;
}

static fop_t *fop_new(faulty_t *f, rn_obj_op_t op, const char *key) {
  fop_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->f = f;
  p->op = op;
  p->o = f->o;
  p->start_ns = rn__objstore_mono_ns();
  snprintf(p->key, sizeof p->key, "%s", key);
  return p;
}

/* Whether p fails at once (an outage, or one of the next n of its kind);
 * when it does, it is queued with the failure. */
static bool inject(fop_t *p) {
  faulty_t *f = p->f;
  const char *why = NULL;
  if (f->o.down) {
    why = "the store is down (injected)";
  } else if (f->o.fail_next[p->op]) {
    f->o.fail_next[p->op]--;
    why = "injected failure";
  }
  if (!why) return false;
  p->r.err = RN_EOBJSTORE;
  p->r.attempts = 1;
  snprintf(p->r.message, sizeof p->r.message, "faulty %s %s: %s", rn_obj_op_name(p->op), p->key, why);
  f->inflight++;
  fop_finished(p);
  return true;
}

static void copy_result(fop_t *p, const rn_obj_result_t *r) { p->r = *r; }

static void inner_cb(void *arg, const rn_obj_result_t *r) {
  fop_t *p = arg;
  copy_result(p, r);
  if (p->op == RN_OBJ_PUT && p->o.lose_put_response && !r->err) {
    p->r.err = RN_EOBJSTORE;
    snprintf(p->r.message, sizeof p->r.message, "faulty put %s: the response was lost (injected; the object was stored)",
             p->key);
  }
  fop_finished(p);
}

static void inner_get_cb(void *arg, const rn_obj_result_t *r, uint8_t *data, size_t len) {
  fop_t *p = arg;
  copy_result(p, r);
  p->data = data;
  p->len = len;
  if (!r->err && len) {
    if (p->o.truncate_gets) p->len = len - 1;
    if (p->o.corrupt_gets) p->data[p->len / 2] ^= 0x10;
  }
  fop_finished(p);
}

static void inner_list_cb(void *arg, const rn_obj_result_t *r, const rn_obj_entry_t *e, size_t n) {
  fop_t *p = arg;
  copy_result(p, r);
  for (size_t i = 0; !p->r.err && i < n; i++) {
    if (rn__objlist_add(&p->list, e[i].key, strlen(e[i].key), e[i].size, e[i].mtime_ms)) {
      rn__objlist_free(&p->list);
      p->r.err = RN_ENOMEM;
      snprintf(p->r.message, sizeof p->r.message, "faulty list %s: out of memory copying the answer", p->key);
    }
  }
  fop_finished(p);
}

/* Forward p with fwd's result: the inner's error return is ours (p freed). */
static rn_err_t forwarded(fop_t *p, rn_err_t err) {
  if (err) {
    free(p);
    return err;
  }
  p->f->inflight++;
  return 0;
}

static rn_err_t f_put_mem(rn_objstore_t *os, const char *key, const uint8_t *data, size_t len, rn_obj_cb cb,
                          void *arg) {
  faulty_t *f = (faulty_t *)os;
  if (f->closing) return RN_ECANCELED;
  fop_t *p = fop_new(f, RN_OBJ_PUT, key);
  if (!p) return RN_ENOMEM;
  p->u.cb = cb;
  p->arg = arg;
  p->bytes_up = len;
  if (inject(p)) return 0;
  return forwarded(p, rn_objstore_put_mem(f->inner, key, data, len, inner_cb, p));
}

static rn_err_t f_put_file(rn_objstore_t *os, const char *key, const char *path, uint64_t len, rn_obj_cb cb,
                           void *arg) {
  faulty_t *f = (faulty_t *)os;
  if (f->closing) return RN_ECANCELED;
  fop_t *p = fop_new(f, RN_OBJ_PUT, key);
  if (!p) return RN_ENOMEM;
  p->u.cb = cb;
  p->arg = arg;
  p->bytes_up = len;
  if (inject(p)) return 0;
  return forwarded(p, rn_objstore_put_file(f->inner, key, path, len, inner_cb, p));
}

static rn_err_t f_get(rn_objstore_t *os, const char *key, uint64_t off, uint64_t len, rn_obj_get_cb cb,
                      void *arg) {
  faulty_t *f = (faulty_t *)os;
  if (f->closing) return RN_ECANCELED;
  fop_t *p = fop_new(f, RN_OBJ_GET, key);
  if (!p) return RN_ENOMEM;
  p->u.get_cb = cb;
  p->arg = arg;
  if (inject(p)) return 0;
  return forwarded(p, rn_objstore_get(f->inner, key, off, len, inner_get_cb, p));
}

static rn_err_t f_head(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg) {
  faulty_t *f = (faulty_t *)os;
  if (f->closing) return RN_ECANCELED;
  fop_t *p = fop_new(f, RN_OBJ_HEAD, key);
  if (!p) return RN_ENOMEM;
  p->u.cb = cb;
  p->arg = arg;
  if (inject(p)) return 0;
  return forwarded(p, rn_objstore_head(f->inner, key, inner_cb, p));
}

static rn_err_t f_list(rn_objstore_t *os, const char *prefix, rn_obj_list_cb cb, void *arg) {
  faulty_t *f = (faulty_t *)os;
  if (f->closing) return RN_ECANCELED;
  fop_t *p = fop_new(f, RN_OBJ_LIST, prefix);
  if (!p) return RN_ENOMEM;
  p->u.list_cb = cb;
  p->arg = arg;
  if (inject(p)) return 0;
  return forwarded(p, rn_objstore_list(f->inner, prefix, inner_list_cb, p));
}

static rn_err_t f_del(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg) {
  faulty_t *f = (faulty_t *)os;
  if (f->closing) return RN_ECANCELED;
  fop_t *p = fop_new(f, RN_OBJ_DELETE, key);
  if (!p) return RN_ENOMEM;
  p->u.cb = cb;
  p->arg = arg;
  if (inject(p)) return 0;
  return forwarded(p, rn_objstore_delete(f->inner, key, inner_cb, p));
}

static void fop_deliver_node(void *owner, rn__objq_node_t *n, bool closing) {
  (void)owner;
  fop_deliver((fop_t *)n, closing);
}

static int f_poll(rn_objstore_t *os) {
  faulty_t *f = (faulty_t *)os;
  (void)rn_objstore_poll(f->inner); /* its completions land in our queue */
  return rn__objq_deliver(&f->ready, fop_deliver_node, NULL, false);
}

static int f_fd(const rn_objstore_t *os) { return ((const faulty_t *)os)->epfd; }
static unsigned f_inflight(const rn_objstore_t *os) { return ((const faulty_t *)os)->inflight; }
static void f_stats(const rn_objstore_t *os, rn_objstore_stats_t *out) { *out = ((const faulty_t *)os)->stats; }

static void f_destroy(rn_objstore_t *os) {
  faulty_t *f = (faulty_t *)os;
  f->closing = true;
  if (f->timer_started) {
    pthread_mutex_lock(&f->mu);
    f->stopping = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->timer, NULL);
  }
  rn_objstore_destroy(f->inner); /* its callbacks deliver at once (closing) */
  fop_t *d = f->delayed;
  f->delayed = NULL;
  while (d) {
    fop_t *next = d->dnext;
    fop_deliver(d, true);
    d = next;
  }
  (void)rn__objq_deliver(&f->ready, fop_deliver_node, NULL, true);
  if (f->epfd >= 0) close(f->epfd);
  rn__objq_fini(&f->ready);
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

static const rn_objstore_ops_t faulty_ops = {
    .name = "faulty",
    .put_mem = f_put_mem,
    .put_file = f_put_file,
    .get = f_get,
    .head = f_head,
    .list = f_list,
    .del = f_del,
    .fd = f_fd,
    .poll = f_poll,
    .inflight = f_inflight,
    .stats = f_stats,
    .destroy = f_destroy,
};

rn_err_t rn_faulty_new(rn_objstore_t *inner, const rn_faulty_opts_t *o, rn_objstore_t **out) {
  if (!inner || !out) return RN_EINVAL;
  faulty_t *f = calloc(1, sizeof *f);
  if (!f) return RN_ENOMEM;
  f->base.ops = &faulty_ops;
  f->inner = inner;
  f->epfd = -1;
  if (o) f->o = *o;
  pthread_mutex_init(&f->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&f->cv, &ca);
  pthread_condattr_destroy(&ca);
  rn_err_t err = rn__objq_init(&f->ready);
  if (err) goto fail;
  f->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (f->epfd < 0) {
    err = -errno;
    goto fail;
  }
  struct epoll_event ev = {.events = EPOLLIN};
  if (epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->ready.efd, &ev) ||
      epoll_ctl(f->epfd, EPOLL_CTL_ADD, rn_objstore_fd(inner), &ev)) {
    err = -errno;
    goto fail;
  }
  if (pthread_create(&f->timer, NULL, timer_main, f)) {
    err = RN_ENOMEM;
    goto fail;
  }
  f->timer_started = true;
  *out = &f->base;
  return 0;
fail:
  if (f->epfd >= 0) close(f->epfd);
  rn__objq_fini(&f->ready);
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  free(f);
  return err;
}

void rn_faulty_set(rn_objstore_t *faulty, const rn_faulty_opts_t *o) {
  if (!faulty || faulty->ops != &faulty_ops) return;
  faulty_t *f = (faulty_t *)faulty;
  f->o = o ? *o : (rn_faulty_opts_t){0};
}
