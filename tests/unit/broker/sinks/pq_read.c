/*
 * tests/unit/broker/sinks/pq_read.c — the tests' own minimal Parquet reader
 * (pq_read.h). Written from parquet.thrift and Thrift's compact protocol
 * spec, sharing no code with broker/sinks, so a mistake in the writer's
 * encoder is not mirrored here. Bounds-checked throughout: the fuzz target
 * runs it on whatever the writer produced.
 */
#include "pq_read.h"

#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

typedef struct rd {
  const uint8_t *p;
  size_t n, at;
} rd_t;

static rn_err_t uvar(rd_t *r, uint64_t *v) {
  uint64_t x = 0;
  for (int s = 0; s < 70; s += 7) {
    if (r->at >= r->n) return RN_EPARTIAL;
    uint8_t b = r->p[r->at++];
    if (s == 63 && b > 1) return RN_ECORRUPT;
    x |= (uint64_t)(b & 0x7F) << s;
    if (!(b & 0x80)) {
      *v = x;
      return RN_OK;
    }
  }
  return RN_ECORRUPT;
}

static rn_err_t svar(rd_t *r, int64_t *v) {
  uint64_t u;
  rn_err_t err = uvar(r, &u);
  if (err) return err;
  *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
  return RN_OK;
}

static rn_err_t value(rd_t *r, uint8_t type, pqr_val_t *v, int depth);

static rn_err_t add_kid(pqr_val_t *v, size_t *cap, pqr_val_t **kid) {
  if (v->n == *cap) {
    size_t c = *cap ? *cap * 2 : 4;
    pqr_val_t *k = realloc(v->kids, c * sizeof *k);
    if (!k) return RN_ENOMEM;
    v->kids = k;
    if (v->kind == PQR_STRUCT) {
      int16_t *ids = realloc(v->ids, c * sizeof *ids);
      if (!ids) return RN_ENOMEM;
      v->ids = ids;
    }
    *cap = c;
  }
  *kid = &v->kids[v->n];
  memset(*kid, 0, sizeof **kid);
  v->n++;
  return RN_OK;
}

static rn_err_t struct_body(rd_t *r, pqr_val_t *v, int depth) {
  v->kind = PQR_STRUCT;
  v->wire = 12;
  if (depth > 32) return RN_ECORRUPT;
  size_t cap = 0;
  int16_t last = 0;
  for (;;) {
    if (r->at >= r->n) return RN_EPARTIAL;
    uint8_t h = r->p[r->at++];
    if (h == 0) return RN_OK;
    uint8_t type = h & 0x0F;
    int64_t id;
    if (h >> 4) {
      id = last + (h >> 4);
    } else {
      rn_err_t err = svar(r, &id);
      if (err) return err;
    }
    if (id < INT16_MIN || id > INT16_MAX) return RN_ECORRUPT;
    last = (int16_t)id;
    pqr_val_t *kid;
    rn_err_t err = add_kid(v, &cap, &kid);
    if (err) return err;
    v->ids[v->n - 1] = (int16_t)id;
    if (type == 1 || type == 2) { /* a bool field carries its value in the type */
      kid->kind = PQR_BOOL;
      kid->wire = 1;
      kid->b = type == 1;
      continue;
    }
    err = value(r, type, kid, depth + 1);
    if (err) return err;
  }
}

static rn_err_t value(rd_t *r, uint8_t type, pqr_val_t *v, int depth) {
  v->wire = type;
  switch (type) {
  case 1:
  case 2: /* a bool list element: one byte, 1 true */
    if (r->at >= r->n) return RN_EPARTIAL;
    v->kind = PQR_BOOL;
    v->b = r->p[r->at++] == 1;
    return RN_OK;
  case 3:
    if (r->at >= r->n) return RN_EPARTIAL;
    v->kind = PQR_INT;
    v->i = (int8_t)r->p[r->at++];
    return RN_OK;
  case 4:
  case 5:
  case 6:
    v->kind = PQR_INT;
    return svar(r, &v->i);
  case 7: {
    if (r->n - r->at < 8) return RN_EPARTIAL;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u |= (uint64_t)r->p[r->at + (size_t)i] << (8 * i);
    r->at += 8;
    memcpy(&v->d, &u, 8);
    v->kind = PQR_DOUBLE;
    return RN_OK;
  }
  case 8: {
    uint64_t len;
    rn_err_t err = uvar(r, &len);
    if (err) return err;
    if (len > r->n - r->at) return RN_EPARTIAL;
    v->kind = PQR_BINARY;
    v->bin = r->p + r->at;
    v->len = (size_t)len;
    r->at += (size_t)len;
    return RN_OK;
  }
  case 9:
  case 10: {
    if (r->at >= r->n) return RN_EPARTIAL;
    if (depth > 32) return RN_ECORRUPT;
    uint8_t h = r->p[r->at++];
    uint64_t size = h >> 4;
    uint8_t et = h & 0x0F;
    if (size == 15) {
      rn_err_t err = uvar(r, &size);
      if (err) return err;
    }
    if (size > r->n - r->at) return RN_EPARTIAL; /* every element takes a byte at least */
    v->kind = PQR_LIST;
    v->wire = et;
    size_t cap = 0;
    for (uint64_t i = 0; i < size; i++) {
      pqr_val_t *kid;
      rn_err_t err = add_kid(v, &cap, &kid);
      if (err) return err;
      err = value(r, et, kid, depth + 1);
      if (err) return err;
    }
    return RN_OK;
  }
  case 12: return struct_body(r, v, depth);
  default: return RN_ECORRUPT; /* maps and unknown types: never written */
  }
}

void pqr_free(pqr_val_t *v) {
  if (!v) return;
  for (size_t i = 0; i < v->n; i++) pqr_free(&v->kids[i]);
  free(v->kids);
  free(v->ids);
  memset(v, 0, sizeof *v);
}

rn_err_t pqr_struct(const uint8_t *p, size_t n, pqr_val_t *out, size_t *used) {
  memset(out, 0, sizeof *out);
  rd_t r = {p, n, 0};
  rn_err_t err = struct_body(&r, out, 0);
  if (err) {
    pqr_free(out);
    return err;
  }
  *used = r.at;
  return RN_OK;
}

const pqr_val_t *pqr_f(const pqr_val_t *v, int16_t id) {
  if (!v || v->kind != PQR_STRUCT) return NULL;
  for (size_t i = 0; i < v->n; i++)
    if (v->ids[i] == id) return &v->kids[i];
  return NULL;
}

int64_t pqr_i(const pqr_val_t *v, int16_t id, int64_t dflt) {
  const pqr_val_t *f = pqr_f(v, id);
  return f && f->kind == PQR_INT ? f->i : dflt;
}

rn_err_t pqr_footer(const uint8_t *file, size_t len, pqr_val_t *fmd) {
  memset(fmd, 0, sizeof *fmd);
  if (len < 12 || memcmp(file, "PAR1", 4) != 0 || memcmp(file + len - 4, "PAR1", 4) != 0) return RN_ECORRUPT;
  const uint8_t *l = file + len - 8;
  size_t flen = (size_t)l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
  if (flen > len - 12) return RN_ECORRUPT;
  size_t used;
  rn_err_t err = pqr_struct(file + len - 8 - flen, flen, fmd, &used);
  if (err) return err;
  if (used != flen) {
    pqr_free(fmd);
    return RN_ECORRUPT;
  }
  return RN_OK;
}

rn_err_t pqr_page_header(const uint8_t *file, size_t len, size_t off, pqr_val_t *hdr, size_t *hdr_len) {
  if (off >= len) return RN_ECORRUPT;
  return pqr_struct(file + off, len - off, hdr, hdr_len);
}

rn_err_t pqr_decompress(int codec, const uint8_t *src, size_t n, size_t want, uint8_t **out) {
  *out = NULL;
  uint8_t *dst = malloc(want ? want : 1);
  if (!dst) return RN_ENOMEM;
  rn_err_t err = RN_OK;
  switch (codec) {
  case 0:
    if (n != want) err = RN_ECORRUPT;
    else memcpy(dst, src, n);
    break;
  case 1: {
    size_t ulen;
    if (snappy_uncompressed_length((const char *)src, n, &ulen) != SNAPPY_OK || ulen != want) {
      err = RN_ECORRUPT;
      break;
    }
    size_t got = want;
    if (snappy_uncompress((const char *)src, n, (char *)dst, &got) != SNAPPY_OK || got != want) err = RN_ECORRUPT;
    break;
  }
  case 2: {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + 15) != Z_OK) { /* gzip only */
      err = RN_ENOMEM;
      break;
    }
    zs.next_in = (Bytef *)(uintptr_t)src;
    zs.avail_in = (uInt)n;
    zs.next_out = dst;
    zs.avail_out = (uInt)want;
    int rc = inflate(&zs, Z_FINISH);
    if (rc != Z_STREAM_END || zs.total_out != want || zs.avail_in != 0) err = RN_ECORRUPT;
    inflateEnd(&zs);
    break;
  }
  case 6: {
    unsigned long long fs = ZSTD_getFrameContentSize(src, n);
    size_t got = ZSTD_decompress(dst, want, src, n);
    if (ZSTD_isError(got) || got != want || fs != want) err = RN_ECORRUPT;
    break;
  }
  default: err = RN_EFORMAT;
  }
  if (err) {
    free(dst);
    return err;
  }
  *out = dst;
  return RN_OK;
}

rn_err_t pqr_rle_decode(const uint8_t *p, size_t len, int bit_width, uint32_t *out, size_t n, size_t *used) {
  rd_t r = {p, len, 0};
  size_t got = 0;
  size_t vbytes = (size_t)(bit_width + 7) / 8;
  while (got < n) {
    uint64_t h;
    rn_err_t err = uvar(&r, &h);
    if (err) return err;
    if (h & 1) { /* bit-packed: (h >> 1) groups of 8 */
      uint64_t groups = h >> 1;
      if (groups == 0 || (bit_width && groups > (len - r.at) / (size_t)bit_width)) return RN_ECORRUPT;
      size_t count = (size_t)groups * 8;
      size_t bit = r.at * 8;
      for (size_t i = 0; i < count; i++) {
        uint32_t v = 0;
        for (int b = 0; b < bit_width; b++, bit++)
          if (p[bit / 8] >> (bit % 8) & 1) v |= 1u << b;
        if (got < n) out[got++] = v;
      }
      r.at += (size_t)groups * (size_t)bit_width;
    } else {
      uint64_t count = h >> 1;
      if (count == 0 || vbytes > len - r.at) return RN_ECORRUPT;
      uint32_t v = 0;
      for (size_t i = 0; i < vbytes; i++) v |= (uint32_t)p[r.at + i] << (8 * i);
      r.at += vbytes;
      if (bit_width < 32 && v >> bit_width) return RN_ECORRUPT;
      for (uint64_t i = 0; i < count && got < n; i++) out[got++] = v;
    }
  }
  *used = r.at;
  return RN_OK;
}

/* ---- the whole-file check ------------------------------------------------------ */

#define WHY(s)                                                                                               \
  do {                                                                                                       \
    *why = (s);                                                                                              \
    err = RN_ECORRUPT;                                                                                       \
    goto out;                                                                                                \
  } while (0)

static bool is_int(const pqr_val_t *v, int16_t id) {
  const pqr_val_t *f = pqr_f(v, id);
  return f && f->kind == PQR_INT;
}

static rn_err_t check_chunk(const uint8_t *file, size_t len, const pqr_val_t *cc, const char **why) {
  rn_err_t err = RN_OK;
  const pqr_val_t *md = pqr_f(cc, 3);
  if (!md || md->kind != PQR_STRUCT) WHY("ColumnChunk without meta_data");
  if (!is_int(cc, 2)) WHY("ColumnChunk without file_offset");
  for (int16_t id = 1; id <= 9; id++) {
    if (id == 8) continue;
    if (!pqr_f(md, id)) WHY("ColumnMetaData lacks a required field");
  }
  int codec = (int)pqr_i(md, 4, -1);
  int64_t num_values = pqr_i(md, 5, -1), unc = pqr_i(md, 6, -1), comp = pqr_i(md, 7, -1);
  int64_t dpo = pqr_i(md, 9, -1), dict = pqr_i(md, 11, -1);
  int64_t start = dict >= 0 ? dict : dpo;
  if (start < 4 || (uint64_t)start >= len) WHY("column chunk offset outside the file");
  if (pqr_i(cc, 2, -1) != start) WHY("file_offset is not the chunk's first page");
  if (dict >= 0 && dict >= dpo) WHY("dictionary page not before the data pages");
  size_t off = (size_t)start;
  int64_t sum_c = 0, sum_u = 0, values = 0;
  bool first = true, seen_data = false;
  while (sum_c < comp) {
    pqr_val_t h;
    size_t hl;
    if (pqr_page_header(file, len, off, &h, &hl)) WHY("page header does not decode");
    int64_t type = pqr_i(&h, 1, -1), us = pqr_i(&h, 2, -1), cs = pqr_i(&h, 3, -1);
    if (us < 0 || cs < 0 || (uint64_t)cs > len - off - hl) {
      pqr_free(&h);
      WHY("page sizes out of range");
    }
    if (type == 2) {
      if (!first || dict < 0 || (int64_t)off != dict || !pqr_f(&h, 7)) {
        pqr_free(&h);
        WHY("dictionary page misplaced");
      }
    } else if (type == 0) {
      const pqr_val_t *dph = pqr_f(&h, 5);
      if (!dph || !is_int(dph, 1) || !is_int(dph, 2) || !is_int(dph, 3) || !is_int(dph, 4)) {
        pqr_free(&h);
        WHY("DataPageHeader incomplete");
      }
      if (!seen_data && (int64_t)off != dpo) {
        pqr_free(&h);
        WHY("data_page_offset is not the first data page");
      }
      seen_data = true;
      values += pqr_i(dph, 1, 0);
    } else {
      pqr_free(&h);
      WHY("unexpected page type");
    }
    pqr_free(&h);
    uint8_t *raw;
    if (pqr_decompress(codec, file + off + hl, (size_t)cs, (size_t)us, &raw)) WHY("page does not decompress to its size");
    free(raw);
    sum_c += (int64_t)hl + cs;
    sum_u += (int64_t)hl + us;
    off += hl + (size_t)cs;
    first = false;
  }
  if (sum_c != comp) WHY("total_compressed_size is not the pages' sum");
  if (sum_u != unc) WHY("total_uncompressed_size is not the pages' sum");
  if (values != num_values) WHY("page num_values do not add up to num_values");
out:
  return err;
}

rn_err_t pqr_check_file(const uint8_t *file, size_t len, const char **why) {
  *why = "ok";
  pqr_val_t fmd;
  rn_err_t err = pqr_footer(file, len, &fmd);
  if (err) {
    *why = "footer does not decode";
    return err;
  }
  const pqr_val_t *schema = pqr_f(&fmd, 2), *rgs = pqr_f(&fmd, 4);
  if (!is_int(&fmd, 1) || !is_int(&fmd, 3) || !schema || schema->kind != PQR_LIST || !rgs || rgs->kind != PQR_LIST)
    WHY("FileMetaData lacks a required field");
  if (schema->n < 2) WHY("schema without leaves");
  size_t ncols = (size_t)pqr_i(&schema->kids[0], 5, -1);
  if (ncols != schema->n - 1) WHY("root num_children is not the leaf count");
  for (size_t i = 1; i < schema->n; i++) {
    const pqr_val_t *el = &schema->kids[i];
    const pqr_val_t *name = pqr_f(el, 4);
    if (!name || name->kind != PQR_BINARY || !is_int(el, 1) || !is_int(el, 3) || pqr_f(el, 5))
      WHY("leaf SchemaElement incomplete");
  }
  int64_t rows = 0;
  for (size_t g = 0; g < rgs->n; g++) {
    const pqr_val_t *rg = &rgs->kids[g];
    const pqr_val_t *cols = pqr_f(rg, 1);
    if (!cols || cols->kind != PQR_LIST || cols->n != ncols || !is_int(rg, 2) || !is_int(rg, 3))
      WHY("RowGroup incomplete");
    int64_t nr = pqr_i(rg, 3, 0), tbs = 0;
    for (size_t c = 0; c < ncols; c++) {
      err = check_chunk(file, len, &cols->kids[c], why);
      if (err) goto out;
      const pqr_val_t *md = pqr_f(&cols->kids[c], 3);
      if (pqr_i(md, 5, -1) != nr) WHY("flat column num_values is not the row group's num_rows");
      tbs += pqr_i(md, 6, 0);
    }
    if (pqr_i(rg, 2, -1) != tbs) WHY("total_byte_size is not the columns' uncompressed sum");
    rows += nr;
  }
  if (pqr_i(&fmd, 3, -1) != rows) WHY("num_rows is not the row groups' sum");
out:
  pqr_free(&fmd);
  return err;
}
