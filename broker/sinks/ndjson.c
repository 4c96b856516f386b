/*
 * ndjson.c — the bytes of an NDJSON(.gz) object: one record per line, each
 * line the record's JSON re-written compactly (json_text.c), so a
 * pretty-printed record never spans lines; error lines for records that
 * could not be delivered; and the object itself, plain or as one gzip
 * member (libdeflate), which gzip -d, DuckDB's
 * read_json and Athena read.
 *
 * Invariant: between calls, buf holds whole lines only ('\n'-terminated);
 * records counts them.
 */
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>

#include "sinkfmt_int.h"

/* NDJSON objects are gzipped by libdeflate (one gzip member, readable by
 * gzip -d), at level 1. A sink's CPU is its limit on a small broker
 * (bench/sink.sh); on event JSON libdeflate's level 1 runs 2.6x as fast as
 * zlib's level 1 (148 against 57 MB/s here) and its output is smaller than
 * zlib's default level 6. */
#define RN_SINK_GZIP_LEVEL 1

rn_err_t rn_sink_ndjson_append(rn_sink_ndjson_t *nd, const json_t *rec) {
  size_t before = nd->buf.len;
  rn__sink_json_compact(&nd->buf, rec);
  rn_buf_put(&nd->buf, "\n", 1);
  if (nd->buf.oom) {
    nd->buf.len = before < nd->buf.len ? before : nd->buf.len;
    return RN_ENOMEM;
  }
  nd->records++;
  return 0;
}

static void base64(rn_buf_t *b, const uint8_t *p, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  rn_buf_reserve(b, (n + 2) / 3 * 4);
  char q[4];
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    q[0] = tab[v >> 18], q[1] = tab[(v >> 12) & 63], q[2] = tab[(v >> 6) & 63], q[3] = tab[v & 63];
    rn_buf_put(b, q, 4);
  }
  if (i < n) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
    q[0] = tab[v >> 18], q[1] = tab[(v >> 12) & 63];
    q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    q[3] = '=';
    rn_buf_put(b, q, 4);
  }
}

rn_err_t rn_sink_ndjson_append_error(rn_sink_ndjson_t *nd, const rn_sink_meta_t *meta, const char *reason,
                                     const void *data, size_t len) {
  size_t before = nd->buf.len;
  rn_buf_t *b = &nd->buf;
  char iso[RN_ISO8601_MAX];
  rn_iso8601_format_ms(meta->arrival_ms, iso);
  const char *seq = meta->sequence_number ? meta->sequence_number : "";
  rn_buf_printf(b, "{\"shard\":\"shardId-%012u\",\"offset\":%llu,\"sequence_number\":", (unsigned)meta->shard,
                (unsigned long long)meta->offset);
  rn__sink_json_string(b, seq, strlen(seq));
  rn_buf_printf(b, ",\"arrival_time\":\"%s\",\"reason\":", iso);
  rn__sink_json_string(b, reason ? reason : "", reason ? strlen(reason) : 0);
  rn_buf_puts(b, ",\"data_base64\":\"");
  base64(b, data, len);
  rn_buf_puts(b, "\"}\n");
  if (b->oom) {
    b->len = before < b->len ? before : b->len;
    return RN_ENOMEM;
  }
  nd->records++;
  return 0;
}

static rn_err_t gzip_bytes(const uint8_t *in, size_t n, uint8_t **out, size_t *outlen) {
  struct libdeflate_compressor *c = libdeflate_alloc_compressor(RN_SINK_GZIP_LEVEL);
  if (c == NULL) return RN_ENOMEM;
  size_t cap = libdeflate_gzip_compress_bound(c, n);
  uint8_t *buf = malloc(cap ? cap : 1);
  if (buf == NULL) {
    libdeflate_free_compressor(c);
    return RN_ENOMEM;
  }
  static const uint8_t empty[1];
  size_t done = libdeflate_gzip_compress(c, n > 0 ? in : empty, n, buf, cap);
  libdeflate_free_compressor(c);
  if (done == 0) { /* the bound was not enough: cannot happen */
    free(buf);
    return RN_EIO;
  }
  *out = buf;
  *outlen = done;
  return 0;
}

rn_err_t rn_sink_ndjson_finish(rn_sink_ndjson_t *nd, bool gzip, uint8_t **out, size_t *outlen) {
  *out = NULL;
  *outlen = 0;
  if (gzip) {
    rn_err_t rc = gzip_bytes((const uint8_t *)nd->buf.p, nd->buf.len, out, outlen);
    if (rc != 0) return rc;
    rn_sink_ndjson_free(nd);
    return 0;
  }
  if (nd->buf.p == NULL) {
    if ((*out = malloc(1)) == NULL) return RN_ENOMEM;
    return 0;
  }
  *out = (uint8_t *)nd->buf.p; /* hand the buffer over */
  *outlen = nd->buf.len;
  memset(nd, 0, sizeof *nd);
  return 0;
}

void rn_sink_ndjson_free(rn_sink_ndjson_t *nd) {
  if (nd == NULL) return;
  rn_buf_free(&nd->buf);
  memset(nd, 0, sizeof *nd);
}
