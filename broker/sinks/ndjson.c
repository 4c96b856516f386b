/*
 * ndjson.c — the bytes of an NDJSON(.gz) object: one record per line, each
 * line the record's JSON re-written compactly (json_text.c), so a
 * pretty-printed record never spans lines; error lines for records that
 * could not be delivered; and the object itself, plain or as one gzip
 * member (zlib deflate, windowBits 15 + 16), which gzip -d, DuckDB's
 * read_json and Athena read.
 *
 * Invariant: between calls, buf holds whole lines only ('\n'-terminated);
 * records counts them.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sinkfmt_int.h"

/* gzip level of NDJSON objects: 1. A sink's CPU is its limit on a small
 * broker (bench/sink.sh); on event JSON level 1 deflates 1.5x faster than
 * zlib's default 6 for about 7 % more bytes. */
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
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  int zr = deflateInit2(&zs, RN_SINK_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  if (zr != Z_OK) return zr == Z_MEM_ERROR ? RN_ENOMEM : RN_EIO;
  /* deflateBound is for one call's input of at most uLong; feed in chunks */
  size_t cap = 0, chunk = (size_t)1 << 30;
  for (size_t off = 0; off < n; off += chunk) cap += deflateBound(&zs, (uLong)(n - off < chunk ? n - off : chunk));
  cap += 64;
  uint8_t *buf = malloc(cap);
  if (buf == NULL) {
    deflateEnd(&zs);
    return RN_ENOMEM;
  }
  size_t off = 0, done = 0;
  do {
    size_t take = n - off < chunk ? n - off : chunk;
    zs.next_in = n > 0 ? (Bytef *)(uintptr_t)(in + off) : NULL; /* no arithmetic on a NULL in */
    zs.avail_in = (uInt)take;
    off += take;
    int flush = off == n ? Z_FINISH : Z_NO_FLUSH;
    do {
      size_t room = cap - done;
      zs.next_out = buf + done;
      zs.avail_out = (uInt)(room < chunk ? room : chunk);
      uInt had = zs.avail_out;
      zr = deflate(&zs, flush);
      done += had - zs.avail_out;
      if (zr == Z_STREAM_ERROR || (zs.avail_out == 0 && done == cap)) {
        free(buf);
        deflateEnd(&zs);
        return RN_EIO;
      }
    } while (zs.avail_in > 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
  } while (off < n);
  deflateEnd(&zs);
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
