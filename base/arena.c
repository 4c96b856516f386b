/*
 * arena.c — the bump allocator replies are built in (was rn__arena_* in
 * broker/core/engine.c). Blocks of at least 16 KiB are chained newest
 * first; an allocation larger than that gets a block of its own. Nothing is
 * freed before rn_arena_free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rn_base.h"

struct rn_arena_blk {
  struct rn_arena_blk *next;
  size_t used, cap;
  max_align_t data[];
};

void *rn_arena_alloc(rn_arena_t *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  struct rn_arena_blk *b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > 16384 ? n : 16384;
    b = rn_xmalloc(sizeof(*b) + cap);
    b->next = a->head;
    b->used = 0;
    b->cap = cap;
    a->head = b;
  }
  void *p = (char *)b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

char *rn_arena_printf(rn_arena_t *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  char *s = rn_arena_alloc(a, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

void rn_arena_free(rn_arena_t *a) {
  while (a->head) {
    struct rn_arena_blk *b = a->head;
    a->head = b->next;
    free(b);
  }
}
