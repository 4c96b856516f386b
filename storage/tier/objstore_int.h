/*
 * objstore_int.h — private to storage/tier/: what the object-store backends
 * (localdir.c, faulty.c, s3.c) share, written once: the completion queue
 * their worker threads hand finished operations back through (an eventfd
 * the owner's loop waits on: rn_objstore_fd), the per-operation counters,
 * and the sorted array a LIST answers with.
 *
 * Threading: an rn__objq_t is pushed to from any thread and taken from on
 * the owner thread only; the counters and the entry array belong to the
 * owner thread.
 */
#ifndef RN_OBJSTORE_INT_H
#define RN_OBJSTORE_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "rn_tier.h"

/* ---- the completion queue ----------------------------------------------------
 * A FIFO of finished operations (anything starting with an rn__objq_node_t)
 * and the eventfd that is readable while it may be non-empty. A pusher
 * writes the eventfd after linking its node; the owner reads the eventfd
 * first and then takes the whole list, so a push racing with a take either
 * lands in this take or leaves the eventfd readable for the next poll. */
typedef struct rn__objq_node {
  struct rn__objq_node *next;
} rn__objq_node_t;

typedef struct rn__objq {
  pthread_mutex_t mu;
  rn__objq_node_t *head, **tail;
  int efd;
} rn__objq_t;

/* Returns 0 or -errno (eventfd). */
static inline rn_err_t rn__objq_init(rn__objq_t *q) {
  q->head = NULL;
  q->tail = &q->head;
  q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (q->efd < 0) return -errno;
  pthread_mutex_init(&q->mu, NULL);
  return 0;
}

/* Close the eventfd. The queue must be empty (taken) by now. */
static inline void rn__objq_fini(rn__objq_t *q) {
  if (q->efd >= 0) {
    close(q->efd);
    pthread_mutex_destroy(&q->mu);
  }
  q->efd = -1;
}

/* Any thread. */
static inline void rn__objq_push(rn__objq_t *q, rn__objq_node_t *n) {
  n->next = NULL;
  pthread_mutex_lock(&q->mu);
  *q->tail = n;
  q->tail = &n->next;
  pthread_mutex_unlock(&q->mu);
  uint64_t one = 1;
  while (write(q->efd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

/* Owner thread: every node queued so far, in push order (NULL when none). */
static inline rn__objq_node_t *rn__objq_take(rn__objq_t *q) {
  uint64_t v;
  while (read(q->efd, &v, sizeof v) < 0 && errno == EINTR) {
  }
  pthread_mutex_lock(&q->mu);
  rn__objq_node_t *n = q->head;
  q->head = NULL;
  q->tail = &q->head;
  pthread_mutex_unlock(&q->mu);
  return n;
}

/* Owner thread: take every node queued so far and hand each, in push
 * order, to deliver(owner, node, closing) (which frees it). Returns how
 * many. A backend's poll (closing false) and the end of its destroy
 * (closing true: callbacks see RN_ECANCELED where they were not done). */
static inline int rn__objq_deliver(rn__objq_t *q, void (*deliver)(void *owner, rn__objq_node_t *n, bool closing),
                                   void *owner, bool closing) {
  int count = 0;
  rn__objq_node_t *n = rn__objq_take(q);
  while (n) {
    rn__objq_node_t *next = n->next;
    deliver(owner, n, closing);
    count++;
    n = next;
  }
  return count;
}

/* ---- counters ----------------------------------------------------------------- */

static inline uint64_t rn__objstore_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Count one finished operation: attempts requests (attempts - 1 of them
 * retries), an error when err != 0, its bytes and its latency since
 * start_ns. Owner thread. */
static inline void rn__objstore_count(rn_objstore_stats_t *s, rn_obj_op_t op, rn_err_t err, unsigned attempts,
                                      uint64_t up, uint64_t down, uint64_t start_ns) {
  s->requests[op] += attempts;
  if (attempts > 1) s->retries[op] += attempts - 1;
  if (err) s->errors[op]++;
  s->bytes_up += up;
  s->bytes_down += down;
  uint64_t now = rn__objstore_mono_ns();
  double secs = now > start_ns ? (double)(now - start_ns) / 1e9 : 0.0;
  rn_hist_record(&s->seconds[op], rn_hist_latency_bounds, RN_HIST_BUCKETS, secs);
}

/* ---- LIST answers ----------------------------------------------------------------
 * A growable array of entries whose keys it owns. */
typedef struct rn__objlist {
  rn_obj_entry_t *e;
  size_t n, cap;
} rn__objlist_t;

/* Append a copy of key[0, keylen). Returns 0 or RN_ENOMEM. Any one thread. */
static inline rn_err_t rn__objlist_add(rn__objlist_t *l, const char *key, size_t keylen, uint64_t size,
                                       int64_t mtime_ms) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    rn_obj_entry_t *e = realloc(l->e, cap * sizeof *e);
    if (!e) return RN_ENOMEM;
    l->e = e;
    l->cap = cap;
  }
  char *k = malloc(keylen + 1);
  if (!k) return RN_ENOMEM;
  memcpy(k, key, keylen);
  k[keylen] = 0;
  l->e[l->n++] = (rn_obj_entry_t){.key = k, .size = size, .mtime_ms = mtime_ms};
  return 0;
}

static inline int rn__objlist_cmp(const void *a, const void *b) {
  return strcmp(((const rn_obj_entry_t *)a)->key, ((const rn_obj_entry_t *)b)->key);
}

/* Sort by key, bytewise (S3's order: UTF-8 binary). */
static inline void rn__objlist_sort(rn__objlist_t *l) {
  if (l->n > 1) qsort(l->e, l->n, sizeof *l->e, rn__objlist_cmp);
}

static inline void rn__objlist_free(rn__objlist_t *l) {
  /* the keys are this array's own copies (const only in the public type) */
  for (size_t i = 0; i < l->n; i++) free((void *)(uintptr_t)l->e[i].key);
  free(l->e);
  l->e = NULL;
  l->n = l->cap = 0;
}

#endif
