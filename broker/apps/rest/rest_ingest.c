/*
 * rest_ingest.c — REST ingest for mobile and web apps (docs/kinesis.md):
 *
 *   PUT|POST /streams/{s}/record    {"Data": ..., "PartitionKey": "..."}
 *   PUT|POST /streams/{s}/records   {"records": [{"data": ..., "partition-key": "..."}]}
 *       the shapes of the usual API-Gateway-to-Kinesis proxy; answered with
 *       Kinesis' PutRecord / PutRecords output, so apps switch by base URL
 *   POST /v1/streams/{s}/records    NDJSON or a JSON array of events, each
 *       stored as sent; per-record results
 *
 * The batch endpoint's partition keys: ?key_field=F takes each event's
 * field F; an event without a usable F fails alone (a per-record error,
 * as PutRecords reports them) unless ?partition_key=P names a fallback;
 * without key_field, P or else a random key per record.
 *
 * Checks in order: API key (401 missing/unknown, 403 stream not allowed),
 * Content-Encoding (gzip/deflate inflated here, 415 others), size after
 * inflating (413), body shape (400), then the shared produce path
 * (kinesis.c: 404 unknown stream, 429 throttled, 503 draining). Error
 * bodies are {"error": "...", "message": "..."}.
 *
 * Ownership: rest_op_t owns the inflated body and the parsed batch, which
 * the produce path borrows until its callback; the request itself is
 * borrowed until the reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "rest_int.h"
#include "rn_base.h" /* rn_x* */
#include "rn_rest.h"

struct rn_rest {
  rn_kinesis_t *kin; /* the produce path */
  rn_admin_t *adm;
  rn__apikeys_t apikeys; /* rest_api_keys; none = open */
  uint32_t rest_max_body;
};

typedef struct rest_op {
  rn_admin_call_t *c;
  int hop;
  rn__rest_batch_t batch;
  uint8_t *inflated;
  char *keys; /* generated partition keys */
  /* key_field without a fallback: nokey[i] = event i has no usable key
   * field and fails alone; sent = the other records, in order (what the
   * produce path gets). NULL when every record has a key. */
  bool *nokey;
  size_t nmissing;
  rn__krec_t *sent;
  char key_field[129];
} rest_op_t;

static void rest_free(rest_op_t *o) {
  rn__rest_batch_free(&o->batch);
  free(o->inflated);
  free(o->keys);
  free(o->nokey);
  free(o->sent);
  free(o);
}

/* The per-record error of an event without a usable key field. */
static void nokey_error(rn_buf_t *b, const char *field) {
  char msg[300];
  snprintf(msg, sizeof(msg),
           "the event has no field \"%s\" with a non-empty string or integer value (key_field); give "
           "?partition_key=... for a fallback key",
           field);
  rn_buf_printf(b, "{\"error\":\"%s\",\"message\":", rn_kinesis_err_name(RN_KERR_InvalidArgumentException));
  rn__buf_json_str(b, msg, strlen(msg));
  rn_buf_put(b, "}", 1);
}

/* A Kinesis error type as a REST status. */
static int status_of(rn_kinesis_err_t type) {
  switch (type) {
  case RN_KERR_ResourceNotFoundException: return 404;
  case RN_KERR_ProvisionedThroughputExceededException: return 429;
  case RN_KERR_InvalidArgumentException:
  case RN_KERR_ValidationException: return 400;
  case RN_KERR_ServiceUnavailable: return 503;
  default: return 500;
  }
}

static void reply_buf(rest_op_t *o, int status, rn_buf_t *b) {
  if (b->oom) rn_admin_reply_error(o->c, 500, "out of memory building the response");
  else rn_admin_reply(o->c, status, "application/json", NULL, 0, b->p, b->len);
  rn_buf_free(b);
  rest_free(o);
}

static void produced(rn__produce_t *p, void *arg) {
  rest_op_t *o = arg;
  if (p->err_type) {
    int st = status_of(p->err_type);
    if (st == 400 && strstr(p->err_msg, "max_record_bytes")) st = 413;
    rn_admin_reply_error(o->c, st, "%s", p->err_msg);
    return rest_free(o);
  }
  rn_buf_t b = {0};
  char seq[RN__KSEQ_BUFLEN];
  if (o->hop == RN__HOP_REST_RECORD) {
    const rn__prod_result_t *res = &p->res[0];
    if (res->err_type) {
      rn_admin_reply_error(o->c, res->retry_later ? 503 : status_of(res->err_type), "%s", res->err_msg);
      return rest_free(o);
    }
    rn__kseq_encode(p->created_ms, res->shard, res->offset, seq);
    rn_buf_printf(&b, "{\"ShardId\":\"shardId-%012u\",\"SequenceNumber\":\"%s\",\"EncryptionType\":\"NONE\"}",
                   res->shard, seq);
    return reply_buf(o, 200, &b);
  }
  bool all_throttled = p->failed == p->n;
  for (size_t i = 0; i < p->n && all_throttled; i++)
    all_throttled = p->res[i].err_type == RN_KERR_ProvisionedThroughputExceededException;
  if (o->hop == RN__HOP_REST_BATCH && all_throttled && o->nmissing == 0) {
    rn_admin_reply_error(o->c, 429, "every record was refused by the shard throughput limits; retry later");
    return rest_free(o);
  }
  rn_buf_reserve(&b, 64 + p->n * 120 + o->nmissing * 200);
  if (o->hop == RN__HOP_REST_RECORDS)
    rn_buf_printf(&b, "{\"FailedRecordCount\":%zu,\"Records\":[", p->failed);
  else
    rn_buf_printf(&b, "{\"accepted\":%zu,\"failed\":%zu,\"records\":[", p->n - p->failed,
                   p->failed + o->nmissing);
  /* Results in the order of the request: the events that failed for their
   * key field in their places, the produce path's results for the rest. */
  size_t total = p->n + o->nmissing, next = 0;
  rn__kseq_cache_t sc;
  memset(sc.len, 0, sizeof(sc.len));
  for (size_t i = 0; i < total; i++) {
    if (i) rn_buf_put(&b, ",", 1);
    if (o->nokey && o->nokey[i]) {
      nokey_error(&b, o->key_field);
      continue;
    }
    const rn__prod_result_t *res = &p->res[next++];
    if (res->err_type) {
      rn_buf_printf(&b, o->hop == RN__HOP_REST_RECORDS ? "{\"ErrorCode\":\"%s\",\"ErrorMessage\":" : "{\"error\":\"%s\",\"message\":",
                     rn_kinesis_err_name(res->err_type));
      rn__buf_json_str(&b, res->err_msg, strlen(res->err_msg));
      rn_buf_put(&b, "}", 1);
      continue;
    }
    /* The hot loop: no printf. */
    const char *sq;
    size_t sl = rn__kseq_cached(&sc, p->created_ms, res->shard, res->offset, &sq);
    char sid[21] = "shardId-000000000000";
    for (uint32_t v = res->shard, d = 19; v && d >= 8; v /= 10, d--) sid[d] = (char)('0' + v % 10);
    if (o->hop == RN__HOP_REST_RECORDS) {
      rn_buf_put(&b, "{\"SequenceNumber\":\"", 19);
      rn_buf_put(&b, sq, sl);
      rn_buf_put(&b, "\",\"ShardId\":\"", 13);
      rn_buf_put(&b, sid, 20);
      rn_buf_put(&b, "\"}", 2);
    } else {
      char num[20];
      rn_buf_put(&b, "{\"shard_id\":\"", 13);
      rn_buf_put(&b, sid, 20);
      rn_buf_put(&b, "\",\"sequence_number\":\"", 21);
      rn_buf_put(&b, sq, sl);
      rn_buf_put(&b, "\",\"offset\":", 11);
      rn_buf_put(&b, num, rn__u64_dec(res->offset, num));
      rn_buf_put(&b, "}", 1);
    }
  }
  rn_buf_puts(&b, o->hop == RN__HOP_REST_RECORDS ? "],\"EncryptionType\":\"NONE\"}" : "]}");
  reply_buf(o, 200, &b);
}

/* The API key of the request: "Authorization: Bearer KEY" or "x-api-key: KEY". */
static const char *api_key(const rn_http_req_t *req, size_t *len) {
  const char *h = rn_admin_req_header(req, "authorization");
  if (h && strncasecmp(h, "Bearer ", 7) == 0) {
    h += 7;
    while (*h == ' ') h++;
    size_t n = strlen(h);
    while (n && h[n - 1] == ' ') n--;
    *len = n;
    return n ? h : NULL;
  }
  h = rn_admin_req_header(req, "x-api-key");
  if (h && *h) {
    *len = strlen(h);
    return h;
  }
  return NULL;
}

void rn_rest_handle(rn_rest_t *rest, rn_admin_call_t *c, int hop, const char *stream) {
  const rn_http_req_t *req = c->req;
  if (rest->apikeys.n) {
    size_t kl = 0;
    const char *key = api_key(req, &kl);
    if (!key) {
      rn_admin_counters(rest->adm)->auth_failures++;
      return rn_admin_reply_error(c, 401, "an API key is required: send \"Authorization: Bearer KEY\" or \"x-api-key: KEY\"");
    }
    int st = rn__apikeys_check(&rest->apikeys, key, kl, stream);
    if (st) {
      rn_admin_counters(rest->adm)->auth_failures++;
      if (st == 401) return rn_admin_reply_error(c, 401, "unknown API key");
      return rn_admin_reply_error(c, 403, "this API key may not write to stream %s", stream);
    }
  }
  rest_op_t *o = rn_xcalloc(1, sizeof(*o));
  o->c = c;
  o->hop = hop;
  const uint8_t *body = req->body;
  size_t len = req->body_len;
  const char *enc = rn_admin_req_header(req, "content-encoding");
  if (enc && *enc && strcasecmp(enc, "identity") != 0) {
    if (strcasecmp(enc, "gzip") != 0 && strcasecmp(enc, "x-gzip") != 0 && strcasecmp(enc, "deflate") != 0) {
      rest_free(o);
      return rn_admin_reply_error(c, 415, "Content-Encoding %.40s is not supported (gzip and deflate are)", enc);
    }
    size_t outlen = 0;
    rn_err_t err = rn__gunzip(body, len, rest->rest_max_body, &o->inflated, &outlen);
    if (err) {
      rest_free(o);
      if (err == RN_ETOOLARGE)
        return rn_admin_reply_error(c, 413, "the body inflates past %u bytes (rest_max_body_bytes)", rest->rest_max_body);
      if (err == RN_ENOMEM) return rn_admin_reply_error(c, 500, "out of memory inflating the body");
      return rn_admin_reply_error(c, 400, "the body is not valid %s data", enc);
    }
    body = o->inflated;
    len = outlen;
  }
  if (len > rest->rest_max_body) {
    rest_free(o);
    return rn_admin_reply_error(c, 413, "the body is %zu bytes; at most %u are accepted (rest_max_body_bytes)", len,
                               rest->rest_max_body);
  }
  char mode_s[16], key_field[129], fixed_key[257];
  rn__data_mode_t mode = RN__DATA_BASE64;
  int q = rn__query_param(req->query, "data", mode_s, sizeof(mode_s));
  if (q > 0) {
    if (strcmp(mode_s, "base64") == 0) mode = RN__DATA_BASE64;
    else if (strcmp(mode_s, "text") == 0) mode = RN__DATA_TEXT;
    else if (strcmp(mode_s, "json") == 0) mode = RN__DATA_JSON;
    else q = -1;
  }
  if (q < 0) {
    rest_free(o);
    return rn_admin_reply_error(c, 400, "query parameter data must be base64, text or json");
  }
  char why[512] = "";
  rn_err_t err;
  if (hop == RN__HOP_REST_RECORD) {
    err = rn__rest_parse_record(body, len, mode, &o->batch, why, sizeof(why));
  } else if (hop == RN__HOP_REST_RECORDS) {
    err = rn__rest_parse_records(body, len, mode, &o->batch, why, sizeof(why));
  } else {
    int kf = rn__query_param(req->query, "key_field", key_field, sizeof(key_field));
    int fk = rn__query_param(req->query, "partition_key", fixed_key, sizeof(fixed_key));
    if (kf < 0 || fk < 0) {
      rest_free(o);
      return rn_admin_reply_error(c, 400, "query parameters key_field / partition_key are malformed or too long");
    }
    err = rn__rest_parse_batch(body, len, kf > 0 ? key_field : NULL, 10000, &o->batch, why, sizeof(why));
    if (!err) {
      /* Records without a key: the fixed one; with key_field (and no fixed
       * one) a per-record error; else a random one each (spread over the
       * shards). */
      size_t missing = 0;
      for (size_t i = 0; i < o->batch.n; i++) missing += o->batch.recs[i].key == NULL;
      if (missing && kf > 0 && !(fk > 0 && fixed_key[0])) {
        snprintf(o->key_field, sizeof(o->key_field), "%s", key_field);
        o->nmissing = missing;
        /* (when none is left the produce path still checks the stream) */
        o->nokey = calloc(o->batch.n, sizeof(*o->nokey));
        o->sent = malloc((o->batch.n - missing + 1) * sizeof(*o->sent));
        if (!o->nokey || !o->sent) {
          rest_free(o);
          return rn_admin_reply_error(c, 500, "out of memory");
        }
        size_t k = 0;
        for (size_t i = 0; i < o->batch.n; i++) {
          if (o->batch.recs[i].key)
            o->sent[k++] = o->batch.recs[i];
          else
            o->nokey[i] = true;
        }
        missing = 0;
      }
      if (missing && fk > 0 && fixed_key[0]) {
        for (size_t i = 0; i < o->batch.n; i++)
          if (!o->batch.recs[i].key) {
            o->batch.recs[i].key = fixed_key;
            o->batch.recs[i].key_len = strlen(fixed_key);
          }
      } else if (missing) {
        uint8_t *rnd = malloc(missing * 16);
        o->keys = malloc(missing * 33);
        if (!rnd || !o->keys || RAND_bytes(rnd, (int)(missing * 16)) != 1) {
          free(rnd);
          rest_free(o);
          return rn_admin_reply_error(c, 500, "cannot generate partition keys");
        }
        size_t k = 0;
        for (size_t i = 0; i < o->batch.n; i++) {
          if (o->batch.recs[i].key) continue;
          char *dst = o->keys + 33 * k;
          for (int j = 0; j < 16; j++) snprintf(dst + 2 * j, 3, "%02x", rnd[16 * k + (size_t)j]);
          o->batch.recs[i].key = dst;
          o->batch.recs[i].key_len = 32;
          k++;
        }
        free(rnd);
      }
    }
  }
  if (err) {
    rest_free(o);
    if (err == RN_ENOMEM) return rn_admin_reply_error(c, 500, "out of memory parsing the body");
    return rn_admin_reply_error(c, err == RN_ETOOLARGE ? 413 : 400, "%s", why);
  }
  /* Kinesis' per-request limit applies to the proxy shapes too. */
  if (hop != RN__HOP_REST_BATCH) {
    for (size_t i = 0; i < o->batch.n; i++) {
      if (o->batch.recs[i].data_len > RN__KINESIS_MAX_RECORD_DATA) {
        rest_free(o);
        return rn_admin_reply_error(c, 413, "record %zu holds more than 1 MiB of data", i);
      }
    }
  }
  if (o->sent)
    rn_kinesis_produce(rest->kin, stream, o->sent, o->batch.n - o->nmissing, produced, o);
  else
    rn_kinesis_produce(rest->kin, stream, o->batch.recs, o->batch.n, produced, o);
}

rn_err_t rn_rest_new(rn_kinesis_t *kin, rn_admin_t *adm, const rn_rest_opts_t *opts, rn_rest_t **out, char *why,
                     size_t whylen) {
  *out = NULL;
  rn_rest_t *rest = calloc(1, sizeof(*rest));
  if (!rest) return RN_ENOMEM;
  rest->kin = kin;
  rest->adm = adm;
  rest->rest_max_body = opts->max_body_bytes;
  rn_err_t err = rn__apikeys_parse(opts->api_keys, &rest->apikeys, why, whylen);
  if (err) {
    rn_rest_destroy(rest);
    return err;
  }
  *out = rest;
  return 0;
}

bool rn_rest_open(const rn_rest_t *rest) { return rest->apikeys.n == 0; }

void rn_rest_destroy(rn_rest_t *rest) {
  if (!rest) return;
  rn__apikeys_free(&rest->apikeys);
  free(rest);
}
