/*
 * buf.c — the growable output buffer (was rn__buf_* in
 * broker/apps/kinesis/kinesis_seq.c). Capacity doubles from 256 bytes;
 * one byte is always kept for the NUL after len. Out of memory (or a size
 * that would overflow) sets oom once and turns every later append into a
 * no-op, so writers need not check each call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rn_base.h"

void rn_buf_free(rn_buf_t *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

void rn_buf_reserve(rn_buf_t *b, size_t more) {
  if (b->oom) return;
  if (b->cap - b->len > more) return; /* keep one byte for a NUL */
  size_t nc = b->cap ? b->cap : 256;
  while (nc - b->len <= more) {
    if (nc > SIZE_MAX / 2) {
      b->oom = true;
      return;
    }
    nc *= 2;
  }
  char *np = realloc(b->p, nc);
  if (!np) {
    b->oom = true;
    return;
  }
  b->p = np;
  b->cap = nc;
}

void rn_buf_put(rn_buf_t *b, const void *p, size_t n) {
  rn_buf_reserve(b, n);
  if (b->oom || n == 0) return;
  memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = 0;
}

void rn_buf_puts(rn_buf_t *b, const char *s) { rn_buf_put(b, s, strlen(s)); }

void rn_buf_printf(rn_buf_t *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof(small)) {
    rn_buf_put(b, small, (size_t)n);
    return;
  }
  rn_buf_reserve(b, (size_t)n + 1);
  if (b->oom) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

size_t rn_utf8_put(uint8_t *out, uint32_t v) {
  if (v < 0x80) {
    out[0] = (uint8_t)v;
    return 1;
  }
  if (v < 0x800) {
    out[0] = (uint8_t)(0xc0 | v >> 6);
    out[1] = (uint8_t)(0x80 | (v & 0x3f));
    return 2;
  }
  if (v < 0x10000) {
    out[0] = (uint8_t)(0xe0 | v >> 12);
    out[1] = (uint8_t)(0x80 | ((v >> 6) & 0x3f));
    out[2] = (uint8_t)(0x80 | (v & 0x3f));
    return 3;
  }
  out[0] = (uint8_t)(0xf0 | v >> 18);
  out[1] = (uint8_t)(0x80 | ((v >> 12) & 0x3f));
  out[2] = (uint8_t)(0x80 | ((v >> 6) & 0x3f));
  out[3] = (uint8_t)(0x80 | (v & 0x3f));
  return 4;
}
