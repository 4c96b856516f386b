/*
 * kinesis_json.c — decoding and validation of Kinesis_20131202 requests
 * (kinesis_int.h): JSON text in, one rn__kreq_t out, or the error an AWS
 * client expects. Pure: no engine, no clock (expiry and existence are the
 * glue's checks, kinesis.c).
 *
 * Error classes follow the service: malformed JSON, a body that is not an
 * object and a member of the wrong JSON type are SerializationException;
 * a violated constraint of the API model (length, range, pattern, enum,
 * required) is ValidationException, reported all at once in AWS's words
 * ("2 validation errors detected: Value 'x' at 'streamName' failed to
 * satisfy constraint: ..."); a well-formed but unusable combination is
 * InvalidArgumentException.
 *
 * Ownership: every string in the result points into out->root (the parsed
 * document) or into out itself; decoded record data lives in out->data_buf.
 * All of it is freed by rn__kreq_free.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis_int.h"
#include "rn_base.h" /* rn_x* */


void rn__kerr_set(rn__kerr_t *e, rn_kinesis_err_t type, const char *fmt, ...) {
  e->type = type;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
  va_end(ap);
}

/* Kinesis's StreamName pattern plus the broker's path safety: proto's one
 * rule (runnel/keys.h). */
bool rn__valid_stream_name(const char *s, size_t n) { return rn_name_check_stream(s, n, NULL, 0) == 0; }

rn_err_t rn__stream_arn_name(const char *arn, char name[129]) {
  /* arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME */
  if (strncmp(arn, "arn:", 4) != 0) return RN_EINVAL;
  const char *p = arn;
  for (int colons = 0; colons < 5; colons++) {
    p = strchr(p, ':');
    if (!p) return RN_EINVAL;
    p++;
  }
  if (strncmp(arn + 4, "aws", 3) != 0 || !strstr(arn, ":kinesis:")) return RN_EINVAL;
  if (strncmp(p, "stream/", 7) != 0) return RN_EINVAL;
  p += 7;
  size_t n = strlen(p);
  if (!rn__valid_stream_name(p, n)) return RN_EINVAL;
  memcpy(name, p, n + 1);
  return 0;
}

/* ---- validation context -------------------------------------------------------------- */

typedef struct vctx {
  rn__kerr_t *err;
  bool ser;      /* a SerializationException was set: stop */
  int nval;      /* validation errors collected */
  char val[900]; /* "Value ... failed ...; Value ..." */
  size_t vlen;
} vctx_t;

static void vfail(vctx_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vfail(vctx_t *v, const char *fmt, ...) {
  v->nval++;
  if (v->vlen >= sizeof(v->val) - 1) return;
  if (v->vlen) v->vlen += (size_t)snprintf(v->val + v->vlen, sizeof(v->val) - v->vlen, "; ");
  if (v->vlen >= sizeof(v->val) - 1) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(v->val + v->vlen, sizeof(v->val) - v->vlen, fmt, ap);
  va_end(ap);
  if (n > 0) v->vlen += (size_t)n;
  if (v->vlen > sizeof(v->val) - 1) v->vlen = sizeof(v->val) - 1;
}

static void serfail(vctx_t *v, const char *member, const char *expected) {
  if (v->ser) return;
  v->ser = true;
  rn__kerr_set(v->err, RN_KERR_SerializationException, "Unexpected JSON type for %s: expected %s", member, expected);
}

/* Print at most 60 characters of a value for a message. */
static void shorten(const char *s, size_t n, char *out, size_t outlen) {
  size_t k = n < 60 ? n : 60;
  if (k > outlen - 4) k = outlen - 4;
  size_t o = 0;
  for (size_t i = 0; i < k; i++) out[o++] = (s[i] >= 0x20 && s[i] != '\'' && s[i] != 0x7f) ? s[i] : '?';
  if (n > k) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = 0;
}

/* Unicode code points of valid UTF-8 text (jansson validated it). */
static size_t u8_chars(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xc0) != 0x80) c++;
  return c;
}

typedef bool (*pattern_fn)(const char *s, size_t n);

static bool pat_name(const char *s, size_t n) { return rn__valid_stream_name(s, n); }

static bool pat_decimal(const char *s, size_t n) {
  if (n == 0 || (n > 1 && s[0] == '0')) return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

/* A string member. Returns true when present and valid (*out set). */
static bool get_str(vctx_t *v, const json_t *obj, const char *member, const char *path, bool required, size_t minlen,
                    size_t maxlen, pattern_fn pat, const char *pat_text, const char **out, size_t *outlen) {
  const json_t *j = json_object_get(obj, member);
  if (!j || json_is_null(j)) {
    if (required) vfail(v, "Value null at '%s' failed to satisfy constraint: Member must not be null", path);
    return false;
  }
  if (!json_is_string(j)) {
    serfail(v, member, "a string");
    return false;
  }
  const char *s = json_string_value(j);
  size_t n = json_string_length(j);
  size_t chars = u8_chars(s, n);
  char shown[80];
  shorten(s, n, shown, sizeof(shown));
  bool ok = true;
  if (chars < minlen) {
    vfail(v, "Value '%s' at '%s' failed to satisfy constraint: Member must have length greater than or equal to %zu",
          shown, path, minlen);
    ok = false;
  } else if (chars > maxlen) {
    vfail(v, "Value '%s' at '%s' failed to satisfy constraint: Member must have length less than or equal to %zu",
          shown, path, maxlen);
    ok = false;
  }
  if (ok && pat && !pat(s, n)) {
    vfail(v, "Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: %s",
          shown, path, pat_text);
    ok = false;
  }
  if (ok) {
    *out = s;
    if (outlen) *outlen = n;
  }
  return ok;
}

/* An integer member in [min, max]. */
static bool get_int(vctx_t *v, const json_t *obj, const char *member, const char *path, bool required, int64_t min,
                    int64_t max, int64_t *out) {
  const json_t *j = json_object_get(obj, member);
  if (!j || json_is_null(j)) {
    if (required) vfail(v, "Value null at '%s' failed to satisfy constraint: Member must not be null", path);
    return false;
  }
  if (!json_is_integer(j)) {
    if (!json_is_real(j)) {
      serfail(v, member, "an integer");
      return false;
    }
    /* 2.0 is an integer to the Java services; 2.5 is not. */
    double d = json_real_value(j);
    if (d >= (double)min && d <= (double)max && d == floor(d)) {
      *out = (int64_t)d;
      return true;
    }
    vfail(v, "Value '%g' at '%s' failed to satisfy constraint: Member must be an integer between %lld and %lld", d, path,
          (long long)min, (long long)max);
    return false;
  }
  json_int_t x = json_integer_value(j);
  if (x < min) {
    vfail(v, "Value '%lld' at '%s' failed to satisfy constraint: Member must have value greater than or equal to %lld",
          (long long)x, path, (long long)min);
    return false;
  }
  if (x > max) {
    vfail(v, "Value '%lld' at '%s' failed to satisfy constraint: Member must have value less than or equal to %lld",
          (long long)x, path, (long long)max);
    return false;
  }
  *out = (int64_t)x;
  return true;
}

/* An enum member: returns its index in names, or -1. */
static int get_enum(vctx_t *v, const json_t *obj, const char *member, const char *path, bool required,
                    const char *const *names, size_t nnames) {
  const char *s = NULL;
  size_t n = 0;
  if (!get_str(v, obj, member, path, required, 0, SIZE_MAX, NULL, NULL, &s, &n)) return -1;
  for (size_t i = 0; i < nnames; i++)
    if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) return (int)i;
  char set[300] = "", shown[80];
  size_t o = 0;
  for (size_t i = 0; i < nnames && o < sizeof(set); i++)
    o += (size_t)snprintf(set + o, sizeof(set) - o, "%s%s", i ? ", " : "", names[i]);
  shorten(s, n, shown, sizeof(shown));
  vfail(v, "Value '%s' at '%s' failed to satisfy constraint: Member must satisfy enum value set: [%s]", shown, path, set);
  return -1;
}

static bool get_timestamp(vctx_t *v, const json_t *obj, const char *member, int64_t *ms) {
  const json_t *j = json_object_get(obj, member);
  if (!j || json_is_null(j)) return false;
  if (!json_is_number(j) && !json_is_string(j)) {
    serfail(v, member, "a timestamp (epoch seconds)");
    return false;
  }
  if (rn__timestamp_from_json(j, ms)) {
    if (!v->ser) {
      v->ser = true;
      rn__kerr_set(v->err, RN_KERR_SerializationException, "%s is not a valid timestamp (epoch seconds or ISO 8601)", member);
    }
    return false;
  }
  return true;
}

static bool get_bool(vctx_t *v, const json_t *obj, const char *member) {
  const json_t *j = json_object_get(obj, member);
  if (!j || json_is_null(j)) return false;
  if (!json_is_boolean(j)) {
    serfail(v, member, "a boolean");
    return false;
  }
  return json_is_true(j);
}

/* StreamName, or the name inside StreamARN. */
static void get_stream(vctx_t *v, const json_t *root, rn__kreq_t *r, bool required) {
  const char *s = NULL, *arn = NULL;
  size_t n = 0;
  bool has_name = json_object_get(root, "StreamName") && !json_is_null(json_object_get(root, "StreamName"));
  bool has_arn = json_object_get(root, "StreamARN") && !json_is_null(json_object_get(root, "StreamARN"));
  if (has_name || !has_arn) {
    if (get_str(v, root, "StreamName", "streamName", required, 1, 128, pat_name, "[a-zA-Z0-9_.-]+", &s, &n)) {
      memcpy(r->stream, s, n);
      r->stream[n] = 0;
      r->has_stream = true;
    }
    return;
  }
  if (get_str(v, root, "StreamARN", "streamARN", required, 1, 2048, NULL, NULL, &arn, NULL)) {
    if (rn__stream_arn_name(arn, r->stream) == 0) {
      r->has_stream = true;
    } else {
      char shown[80];
      shorten(arn, strlen(arn), shown, sizeof(shown));
      vfail(v,
            "Value '%s' at 'streamARN' failed to satisfy constraint: Member must satisfy regular expression pattern: "
            "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+",
            shown);
    }
  }
}

/* ---- per operation ----------------------------------------------------------------------- */

static void dec_tags_map(vctx_t *v, const json_t *root, rn__kreq_t *r, bool required) {
  const json_t *t = json_object_get(root, "Tags");
  if (!t || json_is_null(t)) {
    if (required) vfail(v, "Value null at 'tags' failed to satisfy constraint: Member must not be null");
    return;
  }
  if (!json_is_object(t)) {
    serfail(v, "Tags", "an object of key: value");
    return;
  }
  size_t n = json_object_size(t);
  if (n < 1 || n > 200) {
    vfail(v, "Value '{...%zu tags}' at 'tags' failed to satisfy constraint: Member must have %s", n,
          n < 1 ? "length greater than or equal to 1" : "length less than or equal to 200");
    return;
  }
  r->tags = rn_xcalloc(n, sizeof(*r->tags));
  const char *k;
  const json_t *val;
  json_object_foreach((json_t *)(uintptr_t)t, k, val) {
    if (!json_is_string(val)) {
      serfail(v, "Tags", "string values");
      return;
    }
    size_t kl = u8_chars(k, strlen(k));
    if (kl < 1 || kl > 128) {
      vfail(v, "Value '%.60s' at 'tags' failed to satisfy constraint: Map keys must have length between 1 and 128", k);
      continue;
    }
    if (u8_chars(json_string_value(val), json_string_length(val)) > 256) {
      vfail(v, "Value for key '%.60s' at 'tags' failed to satisfy constraint: Map values must have length less than or "
               "equal to 256", k);
      continue;
    }
    r->tags[r->ntags].key = k;
    r->tags[r->ntags].value = json_string_value(val);
    r->ntags++;
  }
}

static void dec_tag_keys(vctx_t *v, const json_t *root, rn__kreq_t *r) {
  const json_t *t = json_object_get(root, "TagKeys");
  if (!t || json_is_null(t)) {
    vfail(v, "Value null at 'tagKeys' failed to satisfy constraint: Member must not be null");
    return;
  }
  if (!json_is_array(t)) {
    serfail(v, "TagKeys", "a list of strings");
    return;
  }
  size_t n = json_array_size(t);
  if (n < 1 || n > 50) {
    vfail(v, "Value '[...%zu keys]' at 'tagKeys' failed to satisfy constraint: Member must have %s", n,
          n < 1 ? "length greater than or equal to 1" : "length less than or equal to 50");
    return;
  }
  r->tag_keys = rn_xcalloc(n, sizeof(*r->tag_keys));
  for (size_t i = 0; i < n; i++) {
    const json_t *k = json_array_get(t, i);
    if (!json_is_string(k)) {
      serfail(v, "TagKeys", "a list of strings");
      return;
    }
    size_t kl = u8_chars(json_string_value(k), json_string_length(k));
    if (kl < 1 || kl > 128) {
      vfail(v, "Value '%.60s' at 'tagKeys.%zu.member' failed to satisfy constraint: Member must have length between 1 "
               "and 128", json_string_value(k), i + 1);
      continue;
    }
    r->tag_keys[r->ntag_keys++] = json_string_value(k);
  }
}

/* One record object of PutRecord (the root) or PutRecords (an element).
 * path: "" or "records.N.member." for messages. data_at: where its
 * decoded bytes go (the caller sized data_buf). */
static bool dec_record(vctx_t *v, const json_t *obj, const char *path, rn__krec_t *rec, uint8_t *data_at, rn__kerr_t *e) {
  char p[96];
  const char *data = NULL, *key = NULL, *ehk = NULL, *ord = NULL;
  size_t dl = 0, kl = 0, el = 0;
  snprintf(p, sizeof(p), "%sdata", path);
  const json_t *dj = json_object_get(obj, "Data");
  bool have_data = false;
  if (!dj || json_is_null(dj)) {
    vfail(v, "Value null at '%s' failed to satisfy constraint: Member must not be null", p);
  } else if (!json_is_string(dj)) {
    serfail(v, "Data", "a base64 string");
  } else {
    data = json_string_value(dj);
    dl = json_string_length(dj);
    have_data = true;
  }
  snprintf(p, sizeof(p), "%spartitionKey", path);
  get_str(v, obj, "PartitionKey", p, true, 1, 256, NULL, NULL, &key, &kl);
  snprintf(p, sizeof(p), "%sexplicitHashKey", path);
  bool have_ehk = get_str(v, obj, "ExplicitHashKey", p, false, 0, SIZE_MAX, pat_decimal, "0|([1-9]\\d{0,38})", &ehk, &el);
  if (!*path) get_str(v, obj, "SequenceNumberForOrdering", "sequenceNumberForOrdering", false, 0, SIZE_MAX, pat_decimal,
                      "0|([1-9]\\d{0,128})", &ord, NULL);
  if (have_data) {
    size_t out = 0;
    if (rn__b64_decode(data, dl, data_at, &out) != 0) {
      if (!v->ser) {
        v->ser = true;
        rn__kerr_set(e, RN_KERR_SerializationException, "Base64 encoded data at '%sdata' is not valid base64", path);
      }
      return false;
    }
    if (out > RN__KINESIS_MAX_RECORD_DATA) {
      snprintf(p, sizeof(p), "%sdata", path);
      vfail(v, "Value 'java.nio.HeapByteBuffer[pos=0 lim=%zu cap=%zu]' at '%s' failed to satisfy constraint: Member must "
               "have length less than or equal to %u", out, out, p, RN__KINESIS_MAX_RECORD_DATA);
    }
    rec->data = data_at;
    rec->data_len = out;
  }
  if (key) {
    rec->key = key;
    rec->key_len = kl;
  }
  if (have_ehk) {
    rn_err_t err = rn_hash_key_parse_n(ehk, el, rec->hash);
    if (err) {
      char shown[80];
      shorten(ehk, el, shown, sizeof(shown));
      if (!v->ser && v->nval == 0)
        rn__kerr_set(e, RN_KERR_InvalidArgumentException,
                     "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was %s",
                     shown);
      return false;
    }
    rec->has_hash = true;
  }
  return true;
}

static rn_err_t dec_put_record(vctx_t *v, const json_t *root, rn__kreq_t *r) {
  get_stream(v, root, r, true);
  const json_t *dj = json_object_get(root, "Data");
  size_t cap = json_is_string(dj) ? rn__b64_decoded_max(json_string_length(dj)) : 0;
  r->data_buf = rn_xmalloc(cap ? cap : 1);
  r->recs = rn_xcalloc(1, sizeof(*r->recs));
  r->nrecs = 1;
  if (!dec_record(v, root, "", &r->recs[0], r->data_buf, v->err) && !v->ser && v->nval == 0) return RN_EINVAL;
  return 0;
}

static rn_err_t dec_put_records(vctx_t *v, const json_t *root, rn__kreq_t *r) {
  get_stream(v, root, r, true);
  const json_t *arr = json_object_get(root, "Records");
  if (!arr || json_is_null(arr)) {
    vfail(v, "Value null at 'records' failed to satisfy constraint: Member must not be null");
    return 0;
  }
  if (!json_is_array(arr)) {
    serfail(v, "Records", "a list");
    return 0;
  }
  size_t n = json_array_size(arr);
  if (n < 1 || n > RN__KINESIS_MAX_PUT_RECORDS) {
    vfail(v, "Value '[...%zu records]' at 'records' failed to satisfy constraint: Member must have length %s", n,
          n < 1 ? "greater than or equal to 1" : "less than or equal to 500");
    return 0;
  }
  /* Pass 1: size the data buffer. */
  size_t cap = 0;
  for (size_t i = 0; i < n; i++) {
    const json_t *e = json_array_get(arr, i);
    if (!json_is_object(e)) {
      serfail(v, "Records", "a list of objects");
      return 0;
    }
    const json_t *dj = json_object_get(e, "Data");
    if (json_is_string(dj)) cap += rn__b64_decoded_max(json_string_length(dj));
  }
  r->data_buf = rn_xmalloc(cap ? cap : 1);
  r->recs = rn_xcalloc(n, sizeof(*r->recs));
  r->nrecs = n;
  size_t at = 0, total = 0;
  for (size_t i = 0; i < n; i++) {
    const json_t *e = json_array_get(arr, i);
    char path[48];
    snprintf(path, sizeof(path), "records.%zu.member.", i + 1);
    if (!dec_record(v, e, path, &r->recs[i], r->data_buf + at, v->err)) {
      if (v->ser || v->nval) continue;
      return RN_EINVAL; /* InvalidArgumentException already set */
    }
    at += r->recs[i].data_len;
    total += r->recs[i].data_len + r->recs[i].key_len;
  }
  if (!v->ser && v->nval == 0 && total > RN__KINESIS_MAX_PUT_BYTES) {
    rn__kerr_set(v->err, RN_KERR_InvalidArgumentException,
                 "Records size exceeds 5 MB limit: the request holds %zu bytes of data and partition keys", total);
    return RN_EINVAL;
  }
  return 0;
}

static rn_err_t dec_get_shard_iterator(vctx_t *v, const json_t *root, rn__kreq_t *r) {
  static const char *const types[] = {"AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST",
                                      "AT_TIMESTAMP"};
  get_stream(v, root, r, true);
  const char *sid = NULL;
  size_t sl = 0;
  if (get_str(v, root, "ShardId", "shardId", true, 1, 128, pat_name, "[a-zA-Z0-9_.-]+", &sid, &sl)) {
    r->shard_id = sid;
    if (rn__shard_id_parse(sid, sl, &r->shard)) r->shard = UINT32_MAX; /* no such shard */
  }
  r->iter_type = get_enum(v, root, "ShardIteratorType", "shardIteratorType", true, types, 5);
  get_str(v, root, "StartingSequenceNumber", "startingSequenceNumber", false, 0, SIZE_MAX, pat_decimal,
          "0|([1-9]\\d{0,128})", &r->start_seq, NULL);
  r->has_ts = get_timestamp(v, root, "Timestamp", &r->ts_ms);
  if (v->ser || v->nval) return 0;
  if ((r->iter_type == RN__ITER_AT_SEQUENCE_NUMBER || r->iter_type == RN__ITER_AFTER_SEQUENCE_NUMBER) && !r->start_seq) {
    rn__kerr_set(v->err, RN_KERR_InvalidArgumentException,
                 "StartingSequenceNumber must be specified for ShardIteratorType %s", types[r->iter_type]);
    return RN_EINVAL;
  }
  if (r->iter_type == RN__ITER_AT_TIMESTAMP && !r->has_ts) {
    rn__kerr_set(v->err, RN_KERR_InvalidArgumentException,
                 "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no "
                 "timestamp parameter.");
    return RN_EINVAL;
  }
  return 0;
}

static rn_err_t dec_list_shards(vctx_t *v, const json_t *root, rn__kreq_t *r) {
  static const char *const types[] = {"AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON",
                                      "AT_LATEST", "AT_TIMESTAMP", "FROM_TIMESTAMP"};
  get_stream(v, root, r, false);
  get_str(v, root, "NextToken", "nextToken", false, 1, 1048576, NULL, NULL, &r->next_token, NULL);
  get_str(v, root, "ExclusiveStartShardId", "exclusiveStartShardId", false, 1, 128, pat_name, "[a-zA-Z0-9_.-]+",
          &r->exclusive_start, NULL);
  int64_t lim = 0;
  if (get_int(v, root, "MaxResults", "maxResults", false, 1, 10000, &lim)) r->limit = (uint32_t)lim;
  get_timestamp(v, root, "StreamCreationTimestamp", &r->stream_created_ms);
  const json_t *f = json_object_get(root, "ShardFilter");
  if (f && !json_is_null(f)) {
    if (!json_is_object(f)) {
      serfail(v, "ShardFilter", "an object");
      return 0;
    }
    int t = get_enum(v, f, "Type", "shardFilter.type", true, types, 6);
    if (t >= 0) r->shard_filter = t + 1;
    const char *sid = NULL;
    size_t sl = 0;
    bool has_sid = get_str(v, f, "ShardId", "shardFilter.shardId", false, 1, 128, pat_name, "[a-zA-Z0-9_.-]+", &sid, &sl);
    bool has_ts = get_timestamp(v, f, "Timestamp", &r->filter_ts_ms);
    if (v->ser || v->nval) return 0;
    if (r->shard_filter == RN__SHARDS_AFTER_SHARD_ID) {
      if (!has_sid) {
        rn__kerr_set(v->err, RN_KERR_InvalidArgumentException, "ShardId must be provided for ShardFilter type AFTER_SHARD_ID");
        return RN_EINVAL;
      }
      if (rn__shard_id_parse(sid, sl, &r->filter_shard)) r->filter_shard = UINT32_MAX;
    }
    if ((r->shard_filter == RN__SHARDS_AT_TIMESTAMP || r->shard_filter == RN__SHARDS_FROM_TIMESTAMP) && !has_ts) {
      rn__kerr_set(v->err, RN_KERR_InvalidArgumentException, "Timestamp must be provided for ShardFilter type %s",
                   types[r->shard_filter - 1]);
      return RN_EINVAL;
    }
  }
  if (v->ser || v->nval) return 0;
  if (r->next_token && r->has_stream) {
    rn__kerr_set(v->err, RN_KERR_InvalidArgumentException, "NextToken and StreamName cannot be provided together.");
    return RN_EINVAL;
  }
  if (!r->next_token && !r->has_stream) {
    rn__kerr_set(v->err, RN_KERR_InvalidArgumentException, "Either NextToken or StreamName should be provided.");
    return RN_EINVAL;
  }
  return 0;
}

static rn_err_t dec_op(vctx_t *v, const json_t *root, rn__kreq_t *r) {
  int64_t x = 0;
  switch (r->op) {
  case RN__KOP_CreateStream: {
    static const char *const modes[] = {"PROVISIONED", "ON_DEMAND"};
    get_stream(v, root, r, true);
    if (get_int(v, root, "ShardCount", "shardCount", false, 1, 100000, &x)) {
      r->shard_count = (uint32_t)x;
      r->has_shard_count = true;
    }
    const json_t *md = json_object_get(root, "StreamModeDetails");
    if (md && !json_is_null(md)) {
      if (!json_is_object(md)) {
        serfail(v, "StreamModeDetails", "an object");
        return 0;
      }
      r->on_demand = get_enum(v, md, "StreamMode", "streamModeDetails.streamMode", true, modes, 2) == 1;
    }
    if (json_object_get(root, "Tags")) dec_tags_map(v, root, r, false);
    if (!r->has_shard_count && !r->on_demand && !v->ser && !json_object_get(root, "ShardCount"))
      vfail(v, "Value null at 'shardCount' failed to satisfy constraint: Member must not be null");
    return 0;
  }
  case RN__KOP_DeleteStream:
    get_stream(v, root, r, true);
    get_bool(v, root, "EnforceConsumerDeletion");
    return 0;
  case RN__KOP_DescribeStream:
    get_stream(v, root, r, true);
    if (get_int(v, root, "Limit", "limit", false, 1, 10000, &x)) r->limit = (uint32_t)x;
    get_str(v, root, "ExclusiveStartShardId", "exclusiveStartShardId", false, 1, 128, pat_name, "[a-zA-Z0-9_.-]+",
            &r->exclusive_start, NULL);
    return 0;
  case RN__KOP_DescribeStreamSummary: get_stream(v, root, r, true); return 0;
  case RN__KOP_ListStreams:
    if (get_int(v, root, "Limit", "limit", false, 1, 10000, &x)) r->limit = (uint32_t)x;
    get_str(v, root, "ExclusiveStartStreamName", "exclusiveStartStreamName", false, 1, 128, pat_name,
            "[a-zA-Z0-9_.-]+", &r->exclusive_start, NULL);
    get_str(v, root, "NextToken", "nextToken", false, 1, 1048576, NULL, NULL, &r->next_token, NULL);
    return 0;
  case RN__KOP_ListShards: return dec_list_shards(v, root, r);
  case RN__KOP_PutRecord: return dec_put_record(v, root, r);
  case RN__KOP_PutRecords: return dec_put_records(v, root, r);
  case RN__KOP_GetShardIterator: return dec_get_shard_iterator(v, root, r);
  case RN__KOP_GetRecords: {
    const char *arn = NULL; /* accepted and ignored: the iterator names the stream */
    get_str(v, root, "ShardIterator", "shardIterator", true, 1, RN__KITER_MAXLEN, NULL, NULL, &r->iterator,
            &r->iterator_len);
    if (get_int(v, root, "Limit", "limit", false, 1, 10000, &x)) r->limit = (uint32_t)x;
    get_str(v, root, "StreamARN", "streamARN", false, 1, 2048, NULL, NULL, &arn, NULL);
    return 0;
  }
  case RN__KOP_IncreaseStreamRetentionPeriod:
  case RN__KOP_DecreaseStreamRetentionPeriod:
    get_stream(v, root, r, true);
    if (get_int(v, root, "RetentionPeriodHours", "retentionPeriodHours", true, 1, 1000000, &x)) r->retention_hours = x;
    return 0;
  case RN__KOP_AddTagsToStream:
    get_stream(v, root, r, true);
    dec_tags_map(v, root, r, true);
    return 0;
  case RN__KOP_RemoveTagsFromStream:
    get_stream(v, root, r, true);
    dec_tag_keys(v, root, r);
    return 0;
  case RN__KOP_ListTagsForStream:
    get_stream(v, root, r, true);
    get_str(v, root, "ExclusiveStartTagKey", "exclusiveStartTagKey", false, 1, 128, NULL, NULL, &r->exclusive_start, NULL);
    if (get_int(v, root, "Limit", "limit", false, 1, 50, &x)) r->limit = (uint32_t)x;
    return 0;
  case RN__KOP_DescribeLimits: return 0;
  default:
    rn__kerr_set(v->err, RN_KERR_InvalidArgumentException, "%s is not supported", rn__kop_name(r->op));
    return RN_ENOTSUP;
  }
}

/* ---- the PutRecords fast path ---------------------------------------------------------
 * PutRecords is the hot operation (500 records, up to 5 MiB of JSON) and a
 * general DOM parser spends most of the broker's CPU on it. This scanner
 * accepts exactly the shape the SDKs send — {"StreamName": "...",
 * "Records": [{"Data": "<base64>", "PartitionKey": "...",
 * "ExplicitHashKey": "..."}, ...]} in any member order — validating the
 * JSON as it goes and decoding base64 straight into the data buffer. On
 * anything else (another member, a null, a non-ASCII byte, a duplicate
 * member, a violated constraint, malformed JSON) it gives up and the
 * general path decodes the body, so errors and edge cases are answered by
 * one implementation. */

typedef struct fp {
  const unsigned char *s;
  size_t n, i;
} fp_t;

static void fp_ws(fp_t *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static bool fp_ch(fp_t *p, char c) {
  fp_ws(p);
  if (p->i < p->n && p->s[p->i] == (unsigned char)c) {
    p->i++;
    return true;
  }
  return false;
}

/* A string of printable ASCII without escapes: [*a, *a + *len). */
static bool fp_plain(fp_t *p, const char **a, size_t *len) {
  fp_ws(p);
  if (p->i >= p->n || p->s[p->i] != '"') return false;
  size_t start = ++p->i;
  while (p->i < p->n) {
    unsigned char c = p->s[p->i];
    if (c == '"') {
      *a = (const char *)p->s + start;
      *len = p->i - start;
      p->i++;
      return true;
    }
    if (c < 0x20 || c >= 0x7f || c == '\\') return false;
    p->i++;
  }
  return false;
}

/* The raw span of a string whose content the caller validates completely
 * (base64: any quote, backslash, control or non-ASCII byte fails there). */
static bool fp_span(fp_t *p, const char **a, size_t *len) {
  fp_ws(p);
  if (p->i >= p->n || p->s[p->i] != '"') return false;
  const unsigned char *q = memchr(p->s + p->i + 1, '"', p->n - p->i - 1);
  if (!q) return false;
  *a = (const char *)p->s + p->i + 1;
  *len = (size_t)(q - (p->s + p->i + 1));
  p->i = (size_t)(q - p->s) + 1;
  return true;
}

static int fp_hex4(const unsigned char *h) {
  int v = 0;
  for (int k = 0; k < 4; k++) {
    int d = h[k] >= '0' && h[k] <= '9' ? h[k] - '0' : h[k] >= 'a' && h[k] <= 'f' ? h[k] - 'a' + 10
          : h[k] >= 'A' && h[k] <= 'F' ? h[k] - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/* A string with escapes (ASCII input), unescaped as UTF-8 into out (at most
 * its encoded length). *chars: code points. */
static bool fp_text(fp_t *p, uint8_t *out, size_t *outlen, size_t *chars) {
  fp_ws(p);
  if (p->i >= p->n || p->s[p->i] != '"') return false;
  p->i++;
  size_t o = 0, cp = 0;
  while (p->i < p->n) {
    unsigned char c = p->s[p->i++];
    if (c == '"') {
      *outlen = o;
      *chars = cp;
      return true;
    }
    if (c < 0x20 || c >= 0x7f) return false;
    cp++;
    if (c != '\\') {
      out[o++] = c;
      continue;
    }
    if (p->i >= p->n) return false;
    c = p->s[p->i++];
    switch (c) {
    case '"': case '\\': case '/': out[o++] = c; break;
    case 'b': out[o++] = '\b'; break;
    case 'f': out[o++] = '\f'; break;
    case 'n': out[o++] = '\n'; break;
    case 'r': out[o++] = '\r'; break;
    case 't': out[o++] = '\t'; break;
    case 'u': {
      if (p->n - p->i < 4) return false;
      int u = fp_hex4(p->s + p->i);
      p->i += 4;
      if (u < 0) return false;
      uint32_t v = (uint32_t)u;
      if (v >= 0xd800 && v <= 0xdbff) {
        if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') return false;
        int lo = fp_hex4(p->s + p->i + 2);
        if (lo < 0xdc00 || lo > 0xdfff) return false;
        p->i += 6;
        v = 0x10000 + ((v - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
      } else if (v >= 0xdc00 && v <= 0xdfff) {
        return false;
      }
      /* 6 or 12 input bytes always cover the at most 4 output bytes. */
      o += rn_utf8_put(out + o, v);
      break;
    }
    default: return false;
    }
  }
  return false;
}

static bool fp_member(fp_t *p, const char **k, size_t *kl) {
  return fp_plain(p, k, kl) && fp_ch(p, ':');
}

#define FP_IS(k, kl, lit) ((kl) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

/* Returns 0 with *out filled, or -1: use the general path. */
static int fast_put_records(const uint8_t *body, size_t len, rn__kreq_t *out) {
  fp_t p = {body, len, 0};
  /* Decoded data and unescaped keys are never longer than their encoding. */
  uint8_t *buf = malloc(len ? len : 1);
  rn__krec_t *recs = calloc(RN__KINESIS_MAX_PUT_RECORDS, sizeof(*recs));
  if (!buf || !recs) goto fail;
  size_t at = 0, n = 0, total = 0;
  bool seen_name = false, seen_recs = false;
  if (!fp_ch(&p, '{')) goto fail;
  if (fp_ch(&p, '}')) goto fail;
  do {
    const char *k;
    size_t kl;
    if (!fp_member(&p, &k, &kl)) goto fail;
    if (FP_IS(k, kl, "StreamName") && !seen_name) {
      const char *v;
      size_t vl;
      if (!fp_plain(&p, &v, &vl) || !rn__valid_stream_name(v, vl)) goto fail;
      memcpy(out->stream, v, vl);
      out->stream[vl] = 0;
      seen_name = true;
    } else if (FP_IS(k, kl, "Records") && !seen_recs) {
      seen_recs = true;
      if (!fp_ch(&p, '[') || fp_ch(&p, ']')) goto fail;
      do {
        if (n == RN__KINESIS_MAX_PUT_RECORDS || !fp_ch(&p, '{')) goto fail;
        rn__krec_t *r = &recs[n];
        bool d = false, pk = false, eh = false;
        do {
          const char *rk;
          size_t rkl;
          if (!fp_member(&p, &rk, &rkl)) goto fail;
          if (FP_IS(rk, rkl, "Data") && !d) {
            const char *v;
            size_t vl, dl = 0;
            if (!fp_span(&p, &v, &vl) || rn__b64_decode(v, vl, buf + at, &dl) || dl > RN__KINESIS_MAX_RECORD_DATA)
              goto fail;
            r->data = buf + at;
            r->data_len = dl;
            at += dl;
            d = true;
          } else if (FP_IS(rk, rkl, "PartitionKey") && !pk) {
            size_t kout = 0, chars = 0;
            if (!fp_text(&p, buf + at, &kout, &chars) || chars < 1 || chars > 256) goto fail;
            r->key = (const char *)buf + at;
            r->key_len = kout;
            at += kout;
            pk = true;
          } else if (FP_IS(rk, rkl, "ExplicitHashKey") && !eh) {
            const char *v;
            size_t vl;
            if (!fp_plain(&p, &v, &vl) || !pat_decimal(v, vl) || rn_hash_key_parse_n(v, vl, r->hash)) goto fail;
            r->has_hash = eh = true;
          } else {
            goto fail;
          }
        } while (fp_ch(&p, ','));
        if (!fp_ch(&p, '}') || !d || !pk) goto fail;
        total += r->data_len + r->key_len;
        n++;
      } while (fp_ch(&p, ','));
      if (!fp_ch(&p, ']')) goto fail;
    } else {
      goto fail;
    }
  } while (fp_ch(&p, ','));
  if (!fp_ch(&p, '}')) goto fail;
  fp_ws(&p);
  if (p.i != p.n || !seen_name || !seen_recs || total > RN__KINESIS_MAX_PUT_BYTES) goto fail;
  out->has_stream = true;
  out->recs = recs;
  out->nrecs = n;
  out->data_buf = buf;
  return 0;
fail:
  free(buf);
  free(recs);
  out->stream[0] = 0;
  return -1;
}

void rn__kreq_free(rn__kreq_t *r) {
  if (!r) return;
  if (r->root) json_decref(r->root);
  free(r->tags);
  free(r->tag_keys);
  free(r->recs);
  free(r->data_buf);
  memset(r, 0, sizeof(*r));
}

rn_err_t rn__kreq_decode(rn__kop_t op, const uint8_t *body, size_t len, rn__kreq_t *out, rn__kerr_t *err) {
  if (op == RN__KOP_PutRecords && len > 0) {
    memset(out, 0, sizeof(*out));
    out->op = op;
    if (fast_put_records(body, len, out) == 0) return 0;
  }
  return rn__kreq_decode_general(op, body, len, out, err);
}

rn_err_t rn__kreq_decode_general(rn__kop_t op, const uint8_t *body, size_t len, rn__kreq_t *out, rn__kerr_t *err) {
  memset(out, 0, sizeof(*out));
  out->op = op;
  err->type = RN_KERR_NONE;
  err->msg[0] = 0;
  if (len == 0) {
    rn__kerr_set(err, RN_KERR_SerializationException, "The request body is empty; %s expects a JSON object",
                 rn__kop_name(op));
    return RN_EINVAL;
  }
  json_error_t jerr;
  json_t *root = json_loadb((const char *)body, len, JSON_ALLOW_NUL, &jerr);
  if (!root) {
    rn__kerr_set(err, RN_KERR_SerializationException, "Malformed JSON at line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
    return RN_EINVAL;
  }
  if (!json_is_object(root)) {
    json_decref(root);
    rn__kerr_set(err, RN_KERR_SerializationException, "Start of structure or map expected: the body must be a JSON object");
    return RN_EINVAL;
  }
  out->root = root;
  vctx_t v;
  memset(&v, 0, sizeof(v));
  v.err = err;
  rn_err_t rc = dec_op(&v, root, out);
  if (v.ser) rc = RN_EINVAL;
  else if (v.nval) {
    rn__kerr_set(err, RN_KERR_ValidationException, "%d validation error%s detected: %s", v.nval, v.nval == 1 ? "" : "s", v.val);
    rc = RN_EINVAL;
  }
  if (rc) rn__kreq_free(out);
  return rc;
}
