/*
 * etcd_json.c — the etcd v3 JSON gateway's codec (etcd_json.h): base64,
 * prefix ranges, request bodies, and the decoders of unary answers and of
 * watch-stream lines.
 *
 * Pure: bytes in, structs out; no I/O, no globals. Bodies are printed
 * into an rn_buf_t directly (every string in them is base64 or a fixed
 * name, so nothing needs JSON escaping); answers are parsed with jansson
 * and then checked field by field, since they come from the network: a
 * field of the wrong type is a malformed answer (RN_ECONTROLPLANE "bad
 * answer from etcd: ..."), never a crash or a silently wrong value.
 * Decoded key-value pairs live in one block per answer, sized in a first
 * pass (base64 decodes to at most 3/4 of its length) and filled in a
 * second, so a callback gets a flat array with nothing to free.
 */
#include "etcd_json.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- base64 ----------------------------------------------------------------------------- */

static const char b64_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t rn__etcd_b64_len(size_t n) { return (n + 2) / 3 * 4; }

void rn__etcd_b64_put(rn_buf_t *b, const uint8_t *in, size_t n) {
  size_t need = rn__etcd_b64_len(n);
  rn_buf_reserve(b, need);
  if (b->oom) return;
  char *o = b->p + b->len;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    *o++ = b64_alpha[v >> 18];
    *o++ = b64_alpha[(v >> 12) & 63];
    *o++ = b64_alpha[(v >> 6) & 63];
    *o++ = b64_alpha[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    *o++ = b64_alpha[v >> 18];
    *o++ = b64_alpha[(v >> 12) & 63];
    *o++ = '=';
    *o++ = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    *o++ = b64_alpha[v >> 18];
    *o++ = b64_alpha[(v >> 12) & 63];
    *o++ = b64_alpha[(v >> 6) & 63];
    *o++ = '=';
  }
  b->len += need;
  b->p[b->len] = 0;
}

static int b64_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

rn_err_t rn__etcd_b64_decode(const char *in, size_t n, uint8_t *out, size_t *outlen) {
  if (n % 4) return RN_EINVAL;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      unsigned char c = (unsigned char)in[i + k];
      if (c == '=' && i + 4 == n && k >= 2) {
        v[k] = 0;
        pad++;
        continue;
      }
      if (pad) return RN_EINVAL; /* data after '=' */
      v[k] = b64_val(c);
      if (v[k] < 0) return RN_EINVAL;
    }
    uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    /* the bits a padded group leaves unused must be zero (canonical, as Go checks) */
    if ((pad == 2 && (x & 0xffff)) || (pad == 1 && (x & 0xff))) return RN_EINVAL;
    out[o++] = (uint8_t)(x >> 16);
    if (pad < 2) out[o++] = (uint8_t)(x >> 8);
    if (pad < 1) out[o++] = (uint8_t)x;
  }
  *outlen = o;
  return 0;
}

size_t rn__etcd_prefix_end(const uint8_t *key, size_t n, uint8_t *out) {
  while (n > 0 && key[n - 1] == 0xff) n--;
  if (n == 0) {
    out[0] = 0;
    return 1;
  }
  memcpy(out, key, n);
  out[n - 1]++;
  return n;
}

/* ---- request bodies ------------------------------------------------------------------------- */

static void put_key(rn_buf_t *b, const char *field, const uint8_t *k, size_t n) {
  rn_buf_printf(b, "\"%s\":\"", field);
  rn__etcd_b64_put(b, k, n);
  rn_buf_puts(b, "\"");
}

/* "key": ..., "range_end": ... of key (a C string), or of everything under it. */
static void put_range(rn_buf_t *b, const char *key, bool prefix) {
  size_t n = strlen(key);
  if (!prefix) {
    put_key(b, "key", (const uint8_t *)key, n);
    return;
  }
  static const uint8_t zero = 0;
  uint8_t *end = malloc(n ? n : 1);
  if (!end) {
    b->oom = true;
    return;
  }
  size_t el = rn__etcd_prefix_end((const uint8_t *)key, n, end);
  if (n)
    put_key(b, "key", (const uint8_t *)key, n);
  else
    put_key(b, "key", &zero, 1); /* "" under prefix: from "\0", i.e. every key */
  rn_buf_puts(b, ",");
  put_key(b, "range_end", end, el);
  free(end);
}

void rn__etcd_body_range(rn_buf_t *b, const char *key, bool prefix) {
  rn_buf_puts(b, "{");
  put_range(b, key, prefix);
  rn_buf_puts(b, "}");
}

static void put_put(rn_buf_t *b, const char *key, const uint8_t *val, size_t len, int64_t lease) {
  put_key(b, "key", (const uint8_t *)key, strlen(key));
  rn_buf_puts(b, ",");
  put_key(b, "value", val ? val : (const uint8_t *)"", val ? len : 0);
  if (lease) rn_buf_printf(b, ",\"lease\":\"%" PRId64 "\"", lease);
}

void rn__etcd_body_put(rn_buf_t *b, const char *key, const uint8_t *val, size_t len, int64_t lease) {
  rn_buf_puts(b, "{");
  put_put(b, key, val, len, lease);
  rn_buf_puts(b, "}");
}

static void put_ops(rn_buf_t *b, const char *name, const rn_etcd_op_t *ops, size_t n) {
  rn_buf_printf(b, "\"%s\":[", name);
  for (size_t i = 0; i < n; i++) {
    const rn_etcd_op_t *op = &ops[i];
    if (i) rn_buf_puts(b, ",");
    switch (op->kind) {
    case RN_ETCD_OP_PUT:
      rn_buf_puts(b, "{\"request_put\":{");
      put_put(b, op->key, op->value, op->value_len, op->lease);
      break;
    case RN_ETCD_OP_DELETE:
      rn_buf_puts(b, "{\"request_delete_range\":{");
      put_range(b, op->key, op->prefix);
      break;
    case RN_ETCD_OP_RANGE:
    default:
      rn_buf_puts(b, "{\"request_range\":{");
      put_range(b, op->key, op->prefix);
      break;
    }
    rn_buf_puts(b, "}}");
  }
  rn_buf_puts(b, "]");
}

void rn__etcd_body_txn(rn_buf_t *b, const rn_etcd_cmp_t *cmp, size_t ncmp, const rn_etcd_op_t *then_ops,
                       size_t nthen, const rn_etcd_op_t *else_ops, size_t nelse) {
  static const char *const targets[] = {"VERSION", "CREATE", "MOD", "VALUE", "LEASE"};
  static const char *const fields[] = {"version", "create_revision", "mod_revision", "value", "lease"};
  static const char *const results[] = {"EQUAL", "NOT_EQUAL", "GREATER", "LESS"};
  rn_buf_puts(b, "{\"compare\":[");
  for (size_t i = 0; i < ncmp; i++) {
    const rn_etcd_cmp_t *c = &cmp[i];
    unsigned t = (unsigned)c->target <= RN_ETCD_CMP_LEASE ? (unsigned)c->target : 0;
    unsigned r = (unsigned)c->op <= RN_ETCD_LESS ? (unsigned)c->op : 0;
    if (i) rn_buf_puts(b, ",");
    rn_buf_puts(b, "{");
    put_key(b, "key", (const uint8_t *)c->key, strlen(c->key));
    rn_buf_printf(b, ",\"target\":\"%s\",\"result\":\"%s\",", targets[t], results[r]);
    if (t == RN_ETCD_CMP_VALUE)
      put_key(b, "value", c->value ? c->value : (const uint8_t *)"", c->value ? c->value_len : 0);
    else
      rn_buf_printf(b, "\"%s\":\"%" PRId64 "\"", fields[t], c->num);
    rn_buf_puts(b, "}");
  }
  rn_buf_puts(b, "],");
  put_ops(b, "success", then_ops, nthen);
  rn_buf_puts(b, ",");
  put_ops(b, "failure", else_ops, nelse);
  rn_buf_puts(b, "}");
}

void rn__etcd_body_grant(rn_buf_t *b, int64_t ttl_s) { rn_buf_printf(b, "{\"TTL\":\"%" PRId64 "\"}", ttl_s); }

void rn__etcd_body_lease(rn_buf_t *b, int64_t lease) { rn_buf_printf(b, "{\"ID\":\"%" PRId64 "\"}", lease); }

void rn__etcd_body_watch(rn_buf_t *b, const uint8_t *prefix, size_t n, int64_t start_revision) {
  static const uint8_t zero = 0;
  uint8_t *end = malloc(n ? n : 1);
  if (!end) {
    b->oom = true;
    return;
  }
  size_t el = rn__etcd_prefix_end(prefix, n, end);
  rn_buf_puts(b, "{\"create_request\":{");
  if (n)
    put_key(b, "key", prefix, n);
  else
    put_key(b, "key", &zero, 1);
  rn_buf_puts(b, ",");
  put_key(b, "range_end", end, el);
  free(end);
  if (start_revision > 0) rn_buf_printf(b, ",\"start_revision\":\"%" PRId64 "\"", start_revision);
  rn_buf_puts(b, ",\"progress_notify\":true}}");
}

/* ---- reading answers ---------------------------------------------------------------------- */

static const char *const kind_names[RN__ETCD_NKINDS] = {"range", "put", "delete", "txn",
                                                         "lease grant", "lease keepalive", "lease revoke",
                                                         "lease ttl"};
static const char *const kind_paths[RN__ETCD_NKINDS] = {"/v3/kv/range",      "/v3/kv/put",
                                                         "/v3/kv/deleterange", "/v3/kv/txn",
                                                         "/v3/lease/grant",    "/v3/lease/keepalive",
                                                         "/v3/lease/revoke",   "/v3/lease/timetolive"};

const char *rn__etcd_kind_name(rn__etcd_kind_t kind) {
  return (unsigned)kind < RN__ETCD_NKINDS ? kind_names[kind] : "?";
}
const char *rn__etcd_kind_path(rn__etcd_kind_t kind) {
  return (unsigned)kind < RN__ETCD_NKINDS ? kind_paths[kind] : "/";
}

static void set_msg(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_msg(char *msg, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, cap, fmt, ap);
  va_end(ap);
}

/* The start of body as printable text (for a message): at most 100 bytes. */
static void excerpt(const char *body, size_t len, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < len && o + 4 < cap && i < 100; i++) {
    unsigned char c = (unsigned char)body[i];
    out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  if (len > 100 && o + 4 < cap) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = 0;
}

/* An int64 field: a string of decimal digits (the gateway's form) or a JSON
 * integer. Missing: 0. Returns false for anything else. */
static bool get_i64(const json_t *obj, const char *name, int64_t *out) {
  *out = 0;
  const json_t *v = json_object_get(obj, name);
  if (!v) return true;
  if (json_is_integer(v)) {
    *out = (int64_t)json_integer_value(v);
    return true;
  }
  if (!json_is_string(v)) return false;
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  size_t i = 0;
  bool neg = false;
  if (i < n && s[i] == '-') {
    neg = true;
    i++;
  }
  if (i == n || n - i > 19) return false;
  uint64_t x = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    x = x * 10 + (uint64_t)(s[i] - '0');
  }
  if (neg ? x > (uint64_t)INT64_MAX + 1 : x > (uint64_t)INT64_MAX) return false;
  *out = neg ? (int64_t)(0 - x) : (int64_t)x;
  return true;
}

static bool get_bool(const json_t *obj, const char *name, bool *out) {
  *out = false;
  const json_t *v = json_object_get(obj, name);
  if (!v) return true;
  if (!json_is_boolean(v)) return false;
  *out = json_is_true(v);
  return true;
}

/* A bytes field (base64 string). Missing: empty. */
static bool get_b64(const json_t *obj, const char *name, const char **s, size_t *n) {
  *s = "";
  *n = 0;
  const json_t *v = json_object_get(obj, name);
  if (!v) return true;
  if (!json_is_string(v)) return false;
  *s = json_string_value(v);
  *n = json_string_length(v);
  return true;
}

/* Decode the kv objects objs[0, n) into kvs[0, n) and one block *data.
 * Returns 0, RN_ENOMEM, or RN_ECONTROLPLANE with msg (what is wrong, naming
 * where). */
static rn_err_t decode_kvs(json_t *const *objs, size_t n, const char *where, rn_etcd_kv_t *kvs, uint8_t **data,
                           char *msg, size_t cap) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    const json_t *o = objs[i];
    const char *k, *v;
    size_t kl, vl;
    int64_t x;
    if (!json_is_object(o)) {
      set_msg(msg, cap, "bad answer from etcd: %s[%zu] is not an object", where, i);
      return RN_ECONTROLPLANE;
    }
    if (!json_object_get(o, "key") || !get_b64(o, "key", &k, &kl) || !get_b64(o, "value", &v, &vl)) {
      set_msg(msg, cap, "bad answer from etcd: %s[%zu] has no key or a key or value that is not a string", where,
              i);
      return RN_ECONTROLPLANE;
    }
    static const char *const nums[] = {"create_revision", "mod_revision", "version", "lease"};
    for (size_t j = 0; j < 4; j++)
      if (!get_i64(o, nums[j], &x)) {
        set_msg(msg, cap, "bad answer from etcd: %s[%zu].%s is not an int64", where, i, nums[j]);
        return RN_ECONTROLPLANE;
      }
    total += kl / 4 * 3 + vl / 4 * 3 + 2;
  }
  uint8_t *blk = malloc(total ? total : 1);
  if (!blk) {
    set_msg(msg, cap, "out of memory for an answer of %zu keys", n);
    return RN_ENOMEM;
  }
  size_t pos = 0;
  for (size_t i = 0; i < n; i++) {
    const json_t *o = objs[i];
    const char *k, *v;
    size_t kl, vl, dl;
    (void)get_b64(o, "key", &k, &kl);
    (void)get_b64(o, "value", &v, &vl);
    rn_etcd_kv_t *kv = &kvs[i];
    memset(kv, 0, sizeof *kv);
    if (rn__etcd_b64_decode(k, kl, blk + pos, &dl)) {
      free(blk);
      set_msg(msg, cap, "bad answer from etcd: %s[%zu].key is not base64", where, i);
      return RN_ECONTROLPLANE;
    }
    kv->key = (const char *)(blk + pos);
    kv->key_len = dl;
    pos += dl;
    blk[pos++] = 0;
    if (rn__etcd_b64_decode(v, vl, blk + pos, &dl)) {
      free(blk);
      set_msg(msg, cap, "bad answer from etcd: %s[%zu].value is not base64", where, i);
      return RN_ECONTROLPLANE;
    }
    kv->value = blk + pos;
    kv->value_len = dl;
    pos += dl;
    blk[pos++] = 0;
    (void)get_i64(o, "create_revision", &kv->create_revision);
    (void)get_i64(o, "mod_revision", &kv->mod_revision);
    (void)get_i64(o, "version", &kv->version);
    (void)get_i64(o, "lease", &kv->lease);
  }
  *data = blk;
  return 0;
}

/* kvs of a range answer object (its "kvs" array, missing = none) into a. */
static rn_err_t take_kvs(const json_t *resp, const char *where, rn__etcd_answer_t *a) {
  const json_t *arr = json_object_get(resp, "kvs");
  if (!arr) return 0;
  if (!json_is_array(arr)) {
    set_msg(a->msg, sizeof a->msg, "bad answer from etcd: %s is not an array", where);
    return RN_ECONTROLPLANE;
  }
  size_t n = json_array_size(arr);
  if (!n) return 0;
  json_t **objs = malloc(n * sizeof *objs);
  a->kvs = malloc(n * sizeof *a->kvs);
  if (!objs || !a->kvs) {
    free(objs);
    set_msg(a->msg, sizeof a->msg, "out of memory for an answer of %zu keys", n);
    return RN_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) objs[i] = json_array_get(arr, i);
  rn_err_t err = decode_kvs(objs, n, where, a->kvs, &a->data, a->msg, sizeof a->msg);
  free(objs);
  if (err) return err;
  a->r.kvs = a->kvs;
  a->r.nkvs = n;
  return 0;
}

/* An error answer: {"error": "...", "message": "...", "code": N} or the
 * streams' {"error": {"grpc_code": N, "http_code": S, "message": "..."}}. */
static rn_err_t error_answer(rn__etcd_kind_t kind, long status, const json_t *root, const json_t *ev, char *msg,
                             size_t cap) {
  const json_t *m = NULL, *c = NULL;
  if (json_is_object(ev)) {
    m = json_object_get(ev, "message");
    c = json_object_get(ev, "grpc_code");
  } else {
    m = json_object_get(root, "message");
    if (!json_is_string(m)) m = ev;
    c = json_object_get(root, "code");
  }
  const char *text = json_is_string(m) ? json_string_value(m) : "(no message)";
  long long code = json_is_integer(c) ? (long long)json_integer_value(c) : -1;
  set_msg(msg, cap, "etcd: %.300s (gRPC code %lld, HTTP %ld)", text, code, status);
  if (status >= 500) return RN_ECONTROLPLANE;
  switch (code) {
  case 3: return RN_EINVAL;
  case 4: return RN_ETIMEDOUT;
  case 5: return RN_ENOENT;
  case 11: return kind == RN__ETCD_GRANT ? RN_EINVAL : RN_EOFFSET;
  default: return RN_ECONTROLPLANE;
  }
}

static rn_err_t decode_body(rn__etcd_kind_t kind, long status, const json_t *root, rn__etcd_answer_t *a) {
  char *msg = a->msg;
  size_t cap = sizeof a->msg;
  const json_t *obj = root;
  const json_t *res = json_object_get(root, "result");
  if (kind == RN__ETCD_KEEPALIVE && res) {
    if (!json_is_object(res)) {
      set_msg(msg, cap, "bad answer from etcd: result is not an object");
      return RN_ECONTROLPLANE;
    }
    obj = res;
  }
  const json_t *ev = json_object_get(root, "error");
  if (!ev && obj != root) ev = json_object_get(obj, "error");
  if (ev && !(json_is_string(ev) && !json_string_length(ev)))
    return error_answer(kind, status, root, ev, msg, cap);
  if (status / 100 != 2) {
    set_msg(msg, cap, "%setcd answered HTTP %ld without an error", status >= 500 ? "" : "bad answer from etcd: ",
            status);
    return RN_ECONTROLPLANE;
  }
  const json_t *hdr = json_object_get(obj, "header");
  if (!json_is_object(hdr)) {
    set_msg(msg, cap, "bad answer from etcd: no header");
    return RN_ECONTROLPLANE;
  }
  if (!get_i64(hdr, "revision", &a->r.revision)) {
    set_msg(msg, cap, "bad answer from etcd: header.revision is not an int64");
    return RN_ECONTROLPLANE;
  }
  switch (kind) {
  case RN__ETCD_RANGE: return take_kvs(obj, "kvs", a);
  case RN__ETCD_PUT: return 0;
  case RN__ETCD_DELETE:
    if (!get_i64(obj, "deleted", &a->r.deleted)) {
      set_msg(msg, cap, "bad answer from etcd: deleted is not an int64");
      return RN_ECONTROLPLANE;
    }
    return 0;
  case RN__ETCD_TXN: {
    if (!get_bool(obj, "succeeded", &a->r.succeeded)) {
      set_msg(msg, cap, "bad answer from etcd: succeeded is not a boolean");
      return RN_ECONTROLPLANE;
    }
    const json_t *rs = json_object_get(obj, "responses");
    if (!rs) return 0;
    if (!json_is_array(rs)) {
      set_msg(msg, cap, "bad answer from etcd: responses is not an array");
      return RN_ECONTROLPLANE;
    }
    bool got_range = false, got_delete = false;
    for (size_t i = 0; i < json_array_size(rs); i++) {
      const json_t *one = json_array_get(rs, i);
      if (!json_is_object(one)) {
        set_msg(msg, cap, "bad answer from etcd: responses[%zu] is not an object", i);
        return RN_ECONTROLPLANE;
      }
      const json_t *rr = json_object_get(one, "response_range");
      const json_t *rd = json_object_get(one, "response_delete_range");
      if ((rr && !json_is_object(rr)) || (rd && !json_is_object(rd))) {
        set_msg(msg, cap, "bad answer from etcd: responses[%zu] holds a response that is not an object", i);
        return RN_ECONTROLPLANE;
      }
      if (rr && !got_range) {
        got_range = true;
        rn_err_t err = take_kvs(rr, "response_range.kvs", a);
        if (err) return err;
      }
      if (rd && !got_delete) {
        got_delete = true;
        if (!get_i64(rd, "deleted", &a->r.deleted)) {
          set_msg(msg, cap, "bad answer from etcd: response_delete_range.deleted is not an int64");
          return RN_ECONTROLPLANE;
        }
      }
    }
    return 0;
  }
  case RN__ETCD_GRANT:
  case RN__ETCD_KEEPALIVE:
  case RN__ETCD_TTL:
    if (!get_i64(obj, "ID", &a->r.lease_id) || !get_i64(obj, "TTL", &a->r.ttl)) {
      set_msg(msg, cap, "bad answer from etcd: ID or TTL is not an int64");
      return RN_ECONTROLPLANE;
    }
    if (kind == RN__ETCD_GRANT) {
      if (!a->r.lease_id || a->r.ttl <= 0) {
        set_msg(msg, cap, "bad answer from etcd: a lease grant without an ID or a TTL");
        return RN_ECONTROLPLANE;
      }
      return 0;
    }
    if (a->r.ttl <= 0) {
      a->r.ttl = 0;
      set_msg(msg, cap, "etcd: lease %" PRId64 " not found (expired or revoked)", a->r.lease_id);
      return RN_ENOENT;
    }
    return 0;
  case RN__ETCD_REVOKE: return 0;
  default: set_msg(msg, cap, "unknown request kind %d", (int)kind); return RN_EINVAL;
  }
}

rn_err_t rn__etcd_decode(rn__etcd_kind_t kind, long http_status, const char *body, size_t len,
                         rn__etcd_answer_t *a) {
  memset(a, 0, sizeof *a);
  rn_err_t err;
  if (len > RN__ETCD_ANSWER_MAX) {
    set_msg(a->msg, sizeof a->msg, "bad answer from etcd: %zu bytes, more than the %u allowed", len,
            RN__ETCD_ANSWER_MAX);
    err = RN_ECONTROLPLANE;
  } else {
    json_error_t je;
    json_t *root = json_loadb(body ? body : "", len, 0, &je);
    if (!json_is_object(root)) {
      char ex[128];
      excerpt(body ? body : "", len, ex, sizeof ex);
      if (http_status >= 500)
        set_msg(a->msg, sizeof a->msg, "etcd answered HTTP %ld: %s", http_status, ex);
      else if (http_status / 100 != 2)
        set_msg(a->msg, sizeof a->msg, "bad answer from etcd: HTTP %ld: %s", http_status, ex);
      else
        set_msg(a->msg, sizeof a->msg, "bad answer from etcd: %s: %s", root ? "not an object" : je.text, ex);
      err = RN_ECONTROLPLANE;
    } else {
      err = decode_body(kind, http_status, root, a);
    }
    json_decref(root);
  }
  if (err) {
    free(a->kvs);
    free(a->data);
    a->kvs = NULL;
    a->data = NULL;
    rn_etcd_result_t keep = a->r;
    memset(&a->r, 0, sizeof a->r);
    /* what a failed keepalive / ttl still says: which lease */
    a->r.lease_id = keep.lease_id;
    a->r.revision = keep.revision;
    a->r.err = err;
    a->r.msg = a->msg;
  }
  return err;
}

void rn__etcd_answer_free(rn__etcd_answer_t *a) {
  free(a->kvs);
  free(a->data);
  a->kvs = NULL;
  a->data = NULL;
}

/* ---- watch streams ------------------------------------------------------------------------ */

static rn_err_t decode_events(const json_t *arr, rn__etcd_wmsg_t *m) {
  size_t n = json_array_size(arr);
  json_t **objs = calloc(n ? n : 1, sizeof *objs);
  m->ev = calloc(n, sizeof *m->ev);
  rn_etcd_kv_t *kvs = malloc(n * sizeof *kvs);
  if (!objs || !m->ev || !kvs) {
    free(objs);
    free(kvs);
    set_msg(m->msg, sizeof m->msg, "out of memory for %zu watch events", n);
    return RN_ENOMEM;
  }
  rn_err_t err = 0;
  for (size_t i = 0; i < n && !err; i++) {
    const json_t *e = json_array_get(arr, i);
    const json_t *t = json_is_object(e) ? json_object_get(e, "type") : NULL;
    objs[i] = json_is_object(e) ? json_object_get(e, "kv") : NULL;
    if (!json_is_object(e) || !json_is_object(objs[i])) {
      set_msg(m->msg, sizeof m->msg, "bad answer from etcd: events[%zu] is not an object with a kv", i);
      err = RN_ECONTROLPLANE;
    } else if (!t || (json_is_string(t) && !strcmp(json_string_value(t), "PUT")) ||
               (json_is_integer(t) && json_integer_value(t) == 0)) {
      m->ev[i].type = RN_ETCD_EV_PUT;
    } else if ((json_is_string(t) && !strcmp(json_string_value(t), "DELETE")) ||
               (json_is_integer(t) && json_integer_value(t) == 1)) {
      m->ev[i].type = RN_ETCD_EV_DELETE;
    } else {
      set_msg(m->msg, sizeof m->msg, "bad answer from etcd: events[%zu].type is neither PUT nor DELETE", i);
      err = RN_ECONTROLPLANE;
    }
  }
  if (!err) err = decode_kvs(objs, n, "events.kv", kvs, &m->data, m->msg, sizeof m->msg);
  if (!err) {
    for (size_t i = 0; i < n; i++) m->ev[i].kv = kvs[i];
    m->nev = n;
  }
  free(objs);
  free(kvs);
  return err;
}

static rn_err_t decode_wline(const json_t *root, rn__etcd_wmsg_t *m) {
  char *msg = m->msg;
  size_t cap = sizeof m->msg;
  const json_t *ev = json_object_get(root, "error");
  if (ev) {
    const json_t *t = json_is_object(ev) ? json_object_get(ev, "message") : ev;
    const json_t *c = json_is_object(ev) ? json_object_get(ev, "grpc_code") : NULL;
    m->kind = RN__ETCD_W_ERROR;
    set_msg(msg, cap, "etcd: %.300s (gRPC code %lld)", json_is_string(t) ? json_string_value(t) : "(no message)",
            json_is_integer(c) ? (long long)json_integer_value(c) : -1LL);
    return 0;
  }
  const json_t *res = json_object_get(root, "result");
  if (!json_is_object(res)) {
    set_msg(msg, cap, "bad answer from etcd: a watch message without a result");
    return RN_ECONTROLPLANE;
  }
  const json_t *hdr = json_object_get(res, "header");
  if (hdr && !json_is_object(hdr)) {
    set_msg(msg, cap, "bad answer from etcd: header is not an object");
    return RN_ECONTROLPLANE;
  }
  bool created, canceled;
  if ((hdr && !get_i64(hdr, "revision", &m->revision)) || !get_i64(res, "compact_revision", &m->compact_revision) ||
      !get_bool(res, "created", &created) || !get_bool(res, "canceled", &canceled)) {
    set_msg(msg, cap, "bad answer from etcd: a watch message field of the wrong type");
    return RN_ECONTROLPLANE;
  }
  const json_t *evs = json_object_get(res, "events");
  if (evs && !json_is_array(evs)) {
    set_msg(msg, cap, "bad answer from etcd: events is not an array");
    return RN_ECONTROLPLANE;
  }
  if (canceled || m->compact_revision > 0) {
    m->kind = RN__ETCD_W_CANCELED;
    const json_t *why = json_object_get(res, "cancel_reason");
    if (m->compact_revision > 0)
      set_msg(msg, cap, "etcd: revisions up to %" PRId64 " were compacted", m->compact_revision);
    else
      set_msg(msg, cap, "etcd cancelled the watch: %.300s",
              json_is_string(why) && json_string_length(why) ? json_string_value(why) : "(no reason given)");
    return 0;
  }
  if (created) {
    m->kind = RN__ETCD_W_CREATED;
    return 0;
  }
  if (evs && json_array_size(evs)) {
    m->kind = RN__ETCD_W_EVENTS;
    return decode_events(evs, m);
  }
  if (!hdr) {
    set_msg(msg, cap, "bad answer from etcd: a progress notification without a header");
    return RN_ECONTROLPLANE;
  }
  m->kind = RN__ETCD_W_PROGRESS;
  return 0;
}

rn_err_t rn__etcd_decode_watch(const char *line, size_t len, rn__etcd_wmsg_t *m) {
  memset(m, 0, sizeof *m);
  rn_err_t err;
  if (len > RN__ETCD_ANSWER_MAX) {
    set_msg(m->msg, sizeof m->msg, "bad answer from etcd: a watch message of %zu bytes", len);
    err = RN_ECONTROLPLANE;
  } else {
    json_error_t je;
    json_t *root = json_loadb(line ? line : "", len, 0, &je);
    if (!json_is_object(root)) {
      char ex[128];
      excerpt(line ? line : "", len, ex, sizeof ex);
      set_msg(m->msg, sizeof m->msg, "bad answer from etcd: %s: %s", root ? "not an object" : je.text, ex);
      err = RN_ECONTROLPLANE;
    } else {
      err = decode_wline(root, m);
    }
    json_decref(root);
  }
  if (err) {
    rn__etcd_wmsg_free(m);
    m->nev = 0;
  }
  return err;
}

void rn__etcd_wmsg_free(rn__etcd_wmsg_t *m) {
  free(m->ev);
  free(m->data);
  m->ev = NULL;
  m->data = NULL;
  m->nev = 0;
}
