/*
 * faulty.c — a fault-injecting object store around another (tests): failed
 * operations (the next N of a kind, or all while "down"), PUTs whose
 * response is lost after the inner store stored the object, truncated and
 * corrupted GETs.
 *
 * Operations that reach the inner store complete from its poll, through
 * wrapper callbacks that apply the faults. Operations failed without
 * reaching it are queued here and completed from this store's poll,
 * signalled through an eventfd; rn_objstore_fd is an epoll set holding both
 * descriptors, so one wait covers the two.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rn_tier.h"

typedef struct fq {
  rn_obj_op_t op;
  rn_obj_cb cb;
  rn_obj_get_cb gcb;
  rn_obj_list_cb lcb;
  void *arg;
  struct fq *next;
} fq_t;

typedef struct faulty {
  rn_objstore_t base;
  rn_objstore_t *inner;
  rn_faulty_opts_t o;
  int efd, ep;
  fq_t *head, *tail;       /* failed without reaching the inner store */
  unsigned queued;
  uint64_t injected[RN_OBJ_NOPS];
} faulty_t;

typedef struct wrap {
  faulty_t *f;
  rn_obj_op_t op;
  bool lose, truncate, corrupt;
  rn_obj_cb cb;
  rn_obj_get_cb gcb;
  rn_obj_list_cb lcb;
  void *arg;
} wrap_t;

static rn_err_t inject(faulty_t *f, rn_obj_op_t op, rn_obj_cb cb, rn_obj_get_cb gcb, rn_obj_list_cb lcb, void *arg,
                       bool *injected) {
  *injected = false;
  if (!f->o.down && f->o.fail_next[op] == 0) return 0;
  if (!f->o.down) f->o.fail_next[op]--;
  fq_t *q = calloc(1, sizeof(*q));
  if (!q) return RN_ENOMEM;
  *q = (fq_t){op, cb, gcb, lcb, arg, NULL};
  if (f->tail)
    f->tail->next = q;
  else
    f->head = q;
  f->tail = q;
  f->queued++;
  uint64_t one = 1;
  ssize_t w = write(f->efd, &one, sizeof(one));
  (void)w;
  *injected = true;
  return 0;
}

static void fail_result(rn_obj_result_t *r, rn_err_t err, const char *msg) {
  memset(r, 0, sizeof(*r));
  r->err = err;
  r->attempts = 1;
  snprintf(r->message, sizeof(r->message), "%s", msg);
}

static void w_cb(void *arg, const rn_obj_result_t *r) {
  wrap_t *w = arg;
  if (w->lose && !r->err) {
    rn_obj_result_t lost;
    fail_result(&lost, RN_EOBJSTORE, "injected: the response of a successful PUT was lost");
    w->f->injected[w->op]++;
    w->cb(w->arg, &lost);
  } else {
    w->cb(w->arg, r);
  }
  free(w);
}

static void w_gcb(void *arg, const rn_obj_result_t *r, uint8_t *data, size_t len) {
  wrap_t *w = arg;
  if (!r->err && data && len) {
    if (w->truncate) {
      len--;
      w->f->injected[RN_OBJ_GET]++;
    }
    if (w->corrupt && len) {
      data[len / 2] ^= 0x10;
      w->f->injected[RN_OBJ_GET]++;
    }
  }
  w->gcb(w->arg, r, data, len);
  free(w);
}

static void w_lcb(void *arg, const rn_obj_result_t *r, const rn_obj_entry_t *e, size_t n) {
  wrap_t *w = arg;
  w->lcb(w->arg, r, e, n);
  free(w);
}

static wrap_t *wrap(faulty_t *f, rn_obj_op_t op, rn_obj_cb cb, rn_obj_get_cb gcb, rn_obj_list_cb lcb, void *arg) {
  wrap_t *w = calloc(1, sizeof(*w));
  if (!w) return NULL;
  *w = (wrap_t){f, op, f->o.lose_put_response && op == RN_OBJ_PUT, f->o.truncate_gets && op == RN_OBJ_GET,
                f->o.corrupt_gets && op == RN_OBJ_GET, cb, gcb, lcb, arg};
  return w;
}

#define INJECT_OR_WRAP(op, cb, gcb, lcb)                                                                    \
  bool inj;                                                                                                  \
  rn_err_t e0 = inject(f, op, cb, gcb, lcb, arg, &inj);                                                      \
  if (e0 || inj) return e0;                                                                                  \
  wrap_t *w = wrap(f, op, cb, gcb, lcb, arg);                                                                \
  if (!w) return RN_ENOMEM;

static rn_err_t f_put_mem(rn_objstore_t *os, const char *key, const uint8_t *data, size_t len, rn_obj_cb cb,
                          void *arg) {
  faulty_t *f = (faulty_t *)os;
  INJECT_OR_WRAP(RN_OBJ_PUT, cb, NULL, NULL)
  rn_err_t err = rn_objstore_put_mem(f->inner, key, data, len, w_cb, w);
  if (err) free(w);
  return err;
}

static rn_err_t f_put_file(rn_objstore_t *os, const char *key, const char *path, uint64_t len, rn_obj_cb cb,
                           void *arg) {
  faulty_t *f = (faulty_t *)os;
  INJECT_OR_WRAP(RN_OBJ_PUT, cb, NULL, NULL)
  rn_err_t err = rn_objstore_put_file(f->inner, key, path, len, w_cb, w);
  if (err) free(w);
  return err;
}

static rn_err_t f_get(rn_objstore_t *os, const char *key, uint64_t off, uint64_t len, rn_obj_get_cb cb, void *arg) {
  faulty_t *f = (faulty_t *)os;
  INJECT_OR_WRAP(RN_OBJ_GET, NULL, cb, NULL)
  rn_err_t err = rn_objstore_get(f->inner, key, off, len, w_gcb, w);
  if (err) free(w);
  return err;
}

static rn_err_t f_head(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg) {
  faulty_t *f = (faulty_t *)os;
  INJECT_OR_WRAP(RN_OBJ_HEAD, cb, NULL, NULL)
  rn_err_t err = rn_objstore_head(f->inner, key, w_cb, w);
  if (err) free(w);
  return err;
}

static rn_err_t f_list(rn_objstore_t *os, const char *prefix, rn_obj_list_cb cb, void *arg) {
  faulty_t *f = (faulty_t *)os;
  INJECT_OR_WRAP(RN_OBJ_LIST, NULL, NULL, cb)
  rn_err_t err = rn_objstore_list(f->inner, prefix, w_lcb, w);
  if (err) free(w);
  return err;
}

static rn_err_t f_del(rn_objstore_t *os, const char *key, rn_obj_cb cb, void *arg) {
  faulty_t *f = (faulty_t *)os;
  INJECT_OR_WRAP(RN_OBJ_DELETE, cb, NULL, NULL)
  rn_err_t err = rn_objstore_delete(f->inner, key, w_cb, w);
  if (err) free(w);
  return err;
}

static int f_fd(const rn_objstore_t *os) { return ((const faulty_t *)os)->ep; }

static void run_queued(faulty_t *f, rn_err_t err, const char *msg) {
  fq_t *q = f->head;
  f->head = f->tail = NULL;
  while (q) {
    fq_t *nx = q->next;
    f->queued--;
    f->injected[q->op]++;
    rn_obj_result_t r;
    fail_result(&r, err, msg);
    if (q->op == RN_OBJ_GET)
      q->gcb(q->arg, &r, NULL, 0);
    else if (q->op == RN_OBJ_LIST)
      q->lcb(q->arg, &r, NULL, 0);
    else
      q->cb(q->arg, &r);
    free(q);
    q = nx;
  }
}

static int f_poll(rn_objstore_t *os) {
  faulty_t *f = (faulty_t *)os;
  uint64_t v;
  ssize_t rd = read(f->efd, &v, sizeof(v));
  (void)rd;
  int n = (int)f->queued;
  run_queued(f, RN_EOBJSTORE, "injected: the store is unreachable");
  return n + rn_objstore_poll(f->inner);
}

static unsigned f_inflight(const rn_objstore_t *os) {
  const faulty_t *f = (const faulty_t *)os;
  return f->queued + rn_objstore_inflight(f->inner);
}

static void f_stats(const rn_objstore_t *os, rn_objstore_stats_t *out) {
  const faulty_t *f = (const faulty_t *)os;
  rn_objstore_stats(f->inner, out);
  for (int i = 0; i < RN_OBJ_NOPS; i++) out->errors[i] += f->injected[i];
}

static void f_destroy(rn_objstore_t *os) {
  faulty_t *f = (faulty_t *)os;
  run_queued(f, RN_ECANCELED, "the store is closing");
  rn_objstore_destroy(f->inner); /* its callbacks (our wrappers) run here */
  close(f->efd);
  close(f->ep);
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
  *out = NULL;
  if (!inner) return RN_EINVAL;
  faulty_t *f = calloc(1, sizeof(*f));
  if (!f) return RN_ENOMEM;
  f->base.ops = &faulty_ops;
  f->inner = inner;
  if (o) f->o = *o;
  f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  f->ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  if (f->efd < 0 || f->ep < 0 || epoll_ctl(f->ep, EPOLL_CTL_ADD, f->efd, &ev) ||
      epoll_ctl(f->ep, EPOLL_CTL_ADD, rn_objstore_fd(inner), &ev)) {
    if (f->efd >= 0) close(f->efd);
    if (f->ep >= 0) close(f->ep);
    free(f);
    return RN_ENOMEM;
  }
  *out = &f->base;
  return 0;
}

void rn_faulty_set(rn_objstore_t *faulty, const rn_faulty_opts_t *o) { ((faulty_t *)faulty)->o = *o; }
