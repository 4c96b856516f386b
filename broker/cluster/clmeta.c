/*
 * clmeta.c — the etcd values of the cluster as JSON, and its key layout
 * (plan.h, "codecs" and "keys").
 *
 * Each record is described once, by a field table (name, type, where it
 * lives in the struct); one encoder and one decoder walk the tables, and a
 * _check per record holds the rules that tie fields together. The decoder
 * is strict on purpose: the values are read-modify-written under
 * compare-and-swap, so a field this code did not understand would be lost
 * on the next write, and a malformed state (a leader outside the ISR)
 * would be acted on. Every rejection is RN_EINVAL with one printable line
 * that starts with the record's name ("shard: ...").
 *
 * Pure: jansson's allocator is the only side effect; no globals.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "plan.h"
#include "runnel/durability.h"

rn_err_t rn__cl_reject(rn_err_t err, char *why, size_t whylen, const char *fmt, ...) {
  if (why && whylen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
  }
  return err;
}

#define REJECT(...) rn__cl_reject(RN_EINVAL, why, whylen, __VA_ARGS__)

/* A string from the input as a reason may show it: at most 40 bytes,
 * anything but printable ASCII as '?', so the reason stays one line. */
static const char *shown(const char *s, char out[48]) {
  size_t i = 0;
  for (; s[i] && i < 40; i++) out[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
  if (s[i]) {
    memcpy(out + i, "...", 3);
    i += 3;
  }
  out[i] = '\0';
  return out;
}

/* ==== field tables ======================================================= */

typedef enum {
  F_U32,    /* uint32_t, a JSON integer 0..UINT32_MAX */
  F_I64,    /* int64_t, a JSON integer */
  F_BOOL,   /* bool */
  F_STR,    /* char[aux], a JSON string shorter than aux bytes */
  F_IDS,    /* uint32_t[RN_CL_MAX_REPLICAS] with its uint8_t count at offset aux */
  F_U64S,   /* uint64_t, a decimal string (JSON integers stop at 2^63, JavaScript's at 2^53) */
  F_DUR,    /* uint8_t rn_durability_t, its name */
  F_REASON, /* uint8_t rn_cl_inel_reason_t, its name */
} ftype_t;

typedef struct {
  const char *name;
  ftype_t type;
  size_t off;
  size_t aux;
} field_t;

typedef struct {
  const char *what; /* "shard" */
  const field_t *fields;
  size_t nfields;
  size_t size; /* of the struct */
  rn_err_t (*check)(const void *rec, char *why, size_t whylen);
} record_t;

#define FIELD(T, f, type, aux) {#f, type, offsetof(T, f), aux}

static const field_t shard_fields[] = {
    {"replicas", F_IDS, offsetof(rn_cl_shard_t, replicas), offsetof(rn_cl_shard_t, nreplicas)},
    FIELD(rn_cl_shard_t, leader, F_U32, 0),
    FIELD(rn_cl_shard_t, leader_epoch, F_U32, 0),
    {"isr", F_IDS, offsetof(rn_cl_shard_t, isr), offsetof(rn_cl_shard_t, nisr)},
    FIELD(rn_cl_shard_t, min_insync, F_U32, 0),
    FIELD(rn_cl_shard_t, controller_epoch, F_U32, 0),
};

static const field_t broker_fields[] = {
    FIELD(rn_cl_broker_t, id, F_U32, 0),
    FIELD(rn_cl_broker_t, advertise, F_STR, sizeof(((rn_cl_broker_t *)0)->advertise)),
    FIELD(rn_cl_broker_t, http, F_STR, sizeof(((rn_cl_broker_t *)0)->http)),
    FIELD(rn_cl_broker_t, rack, F_STR, sizeof(((rn_cl_broker_t *)0)->rack)),
    FIELD(rn_cl_broker_t, started_ms, F_I64, 0),
    FIELD(rn_cl_broker_t, draining, F_BOOL, 0),
};

static const field_t stream_fields[] = {
    FIELD(rn_cl_stream_t, name, F_STR, sizeof(((rn_cl_stream_t *)0)->name)),
    FIELD(rn_cl_stream_t, nshards, F_U32, 0),
    FIELD(rn_cl_stream_t, replication, F_U32, 0),
    FIELD(rn_cl_stream_t, min_insync, F_U32, 0),
    FIELD(rn_cl_stream_t, retention_ms, F_I64, 0),
    FIELD(rn_cl_stream_t, retention_bytes, F_I64, 0),
    FIELD(rn_cl_stream_t, durability, F_DUR, 0),
    FIELD(rn_cl_stream_t, uid, F_U64S, 0),
    FIELD(rn_cl_stream_t, created_ms, F_I64, 0),
};

static const field_t controller_fields[] = {
    FIELD(rn_cl_controller_t, broker, F_U32, 0),
    FIELD(rn_cl_controller_t, epoch, F_U32, 0),
};

static const field_t ineligible_fields[] = {
    FIELD(rn_cl_ineligible_t, broker, F_U32, 0),
    FIELD(rn_cl_ineligible_t, reason, F_REASON, 0),
    FIELD(rn_cl_ineligible_t, log_end, F_U64S, 0),
    FIELD(rn_cl_ineligible_t, since_ms, F_I64, 0),
};

static const char *reason_name(uint8_t r) {
  return r == RN_CL_INEL_LOST_TAIL ? "lost_tail" : r == RN_CL_INEL_CORRUPT ? "corrupt" : NULL;
}

/* ==== record checks ====================================================== */

static bool has_nul(const char *s, size_t cap) { return memchr(s, '\0', cap) != NULL; }

rn_err_t rn_cl_shard_check(const rn_cl_shard_t *sh, char *why, size_t whylen) {
  if (sh == NULL) return REJECT("shard: no state");
  if (sh->nreplicas < 1 || sh->nreplicas > RN_CL_MAX_REPLICAS)
    return REJECT("shard: %u replicas (1..%d)", (unsigned)sh->nreplicas, RN_CL_MAX_REPLICAS);
  for (unsigned i = 0; i < sh->nreplicas; i++) {
    if (sh->replicas[i] == 0) return REJECT("shard: replica id 0 (broker ids are >= 1)");
    for (unsigned j = 0; j < i; j++)
      if (sh->replicas[j] == sh->replicas[i])
        return REJECT("shard: broker %" PRIu32 " is listed twice in the replicas", sh->replicas[i]);
  }
  if (sh->nisr < 1) return REJECT("shard: the ISR is empty");
  if (sh->nisr > sh->nreplicas)
    return REJECT("shard: %u ISR members for %u replicas", (unsigned)sh->nisr, (unsigned)sh->nreplicas);
  for (unsigned i = 0; i < sh->nisr; i++) {
    bool found = false;
    for (unsigned j = 0; j < sh->nreplicas; j++) found |= sh->replicas[j] == sh->isr[i];
    if (!found) return REJECT("shard: ISR member %" PRIu32 " is not a replica", sh->isr[i]);
    for (unsigned j = 0; j < i; j++)
      if (sh->isr[j] == sh->isr[i]) return REJECT("shard: broker %" PRIu32 " is listed twice in the ISR", sh->isr[i]);
  }
  if (sh->leader != 0 && !rn_cl_shard_in_isr(sh, sh->leader))
    return REJECT("shard: leader %" PRIu32 " is not in the ISR", sh->leader);
  if (sh->min_insync < 1 || sh->min_insync > sh->nreplicas)
    return REJECT("shard: min_insync %" PRIu32 " is outside 1..%u (the replica count)", sh->min_insync,
                  (unsigned)sh->nreplicas);
  return 0;
}

/* host:port with a non-empty host (a name or IPv4 of A-Z a-z 0-9 . - _, or
 * [IPv6] of hex digits, ':' and '.', optionally %zone) and a port 1..65535
 * without leading zeros. */
static bool hostport_ok(const char *s) {
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s) return false;
  const char *p = colon + 1;
  if (*p == '\0' || *p == '0' || strlen(p) > 5) return false;
  unsigned port = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    port = port * 10 + (unsigned)(*p - '0');
  }
  if (port < 1 || port > 65535) return false;
  size_t hl = (size_t)(colon - s);
  if (s[0] == '[') {
    if (hl < 3 || s[hl - 1] != ']') return false;
    bool zone = false;
    for (size_t i = 1; i < hl - 1; i++) {
      char c = s[i];
      if (c == '%' && !zone && i > 1) {
        zone = true;
        continue;
      }
      bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
      bool zch = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                 c == '.';
      if (zone ? !zch : !hex) return false;
    }
    return true;
  }
  for (size_t i = 0; i < hl; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
          c == '_'))
      return false;
  }
  return true;
}

rn_err_t rn_cl_broker_check(const rn_cl_broker_t *b, char *why, size_t whylen) {
  char sh[48];
  if (b == NULL) return REJECT("broker: no record");
  if (b->id == 0) return REJECT("broker: id 0 (broker ids are >= 1)");
  if (!has_nul(b->advertise, sizeof b->advertise)) return REJECT("broker: advertise is not NUL-terminated");
  if (!hostport_ok(b->advertise))
    return REJECT("broker: advertise \"%s\" is not host:port (port 1..65535)", shown(b->advertise, sh));
  if (!has_nul(b->http, sizeof b->http)) return REJECT("broker: http is not NUL-terminated");
  if (b->http[0] != '\0' && !hostport_ok(b->http))
    return REJECT("broker: http \"%s\" is not host:port (port 1..65535) nor empty", shown(b->http, sh));
  if (!has_nul(b->rack, sizeof b->rack)) return REJECT("broker: rack is not NUL-terminated");
  for (const char *p = b->rack; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f)
      return REJECT("broker: rack \"%s\" has a byte that is not printable ASCII (or a space)", shown(b->rack, sh));
  if (b->started_ms < 0) return REJECT("broker: started_ms %" PRId64 " is negative", b->started_ms);
  return 0;
}

rn_err_t rn_cl_stream_check(const rn_cl_stream_t *st, char *why, size_t whylen) {
  if (st == NULL) return REJECT("stream: no record");
  if (!has_nul(st->name, sizeof st->name)) return REJECT("stream: name is not NUL-terminated");
  char nwhy[RN_CL_WHY_MAX - 8];
  if (rn_name_check_stream(st->name, strlen(st->name), nwhy, sizeof nwhy) != 0) {
    char sh[48];
    return REJECT("stream: name \"%s\" breaks the name rule (1-128 of A-Z a-z 0-9 _ . -, not . or ..)",
                  shown(st->name, sh));
  }
  if (st->nshards < 1 || st->nshards > INT32_MAX)
    return REJECT("stream: nshards %" PRIu32 " is outside 1..%d", st->nshards, INT32_MAX);
  if (st->replication < 1 || st->replication > RN_CL_MAX_REPLICAS)
    return REJECT("stream: replication %" PRIu32 " is outside 1..%d", st->replication, RN_CL_MAX_REPLICAS);
  if (st->min_insync < 1 || st->min_insync > st->replication)
    return REJECT("stream: min_insync %" PRIu32 " is outside 1..%" PRIu32 " (the replication)", st->min_insync,
                  st->replication);
  if (st->retention_ms != -1 && st->retention_ms < 1)
    return REJECT("stream: retention_ms %" PRId64 " is neither -1 (forever) nor >= 1", st->retention_ms);
  if (st->retention_bytes != -1 && st->retention_bytes < 1)
    return REJECT("stream: retention_bytes %" PRId64 " is neither -1 (unlimited) nor >= 1", st->retention_bytes);
  if (st->durability > RN_DURABILITY_NONE)
    return REJECT("stream: durability %u is none of sync, interval, none", (unsigned)st->durability);
  if (st->created_ms < 0) return REJECT("stream: created_ms %" PRId64 " is negative", st->created_ms);
  return 0;
}

rn_err_t rn_cl_controller_check(const rn_cl_controller_t *c, char *why, size_t whylen) {
  if (c == NULL) return REJECT("controller: no record");
  if (c->broker == 0) return REJECT("controller: broker 0 (broker ids are >= 1)");
  if (c->epoch == 0) return REJECT("controller: epoch 0 (epochs start at 1)");
  return 0;
}

rn_err_t rn_cl_ineligible_check(const rn_cl_ineligible_t *in, char *why, size_t whylen) {
  if (in == NULL) return REJECT("ineligible: no record");
  if (in->broker == 0) return REJECT("ineligible: broker 0 (broker ids are >= 1)");
  if (reason_name(in->reason) == NULL)
    return REJECT("ineligible: reason %u is neither lost_tail nor corrupt", (unsigned)in->reason);
  if (in->since_ms < 0) return REJECT("ineligible: since_ms %" PRId64 " is negative", in->since_ms);
  return 0;
}

static rn_err_t check_shard(const void *r, char *w, size_t l) { return rn_cl_shard_check(r, w, l); }
static rn_err_t check_broker(const void *r, char *w, size_t l) { return rn_cl_broker_check(r, w, l); }
static rn_err_t check_stream(const void *r, char *w, size_t l) { return rn_cl_stream_check(r, w, l); }
static rn_err_t check_controller(const void *r, char *w, size_t l) { return rn_cl_controller_check(r, w, l); }
static rn_err_t check_ineligible(const void *r, char *w, size_t l) { return rn_cl_ineligible_check(r, w, l); }

#define RECORD(what, T, fields, check) {what, fields, sizeof fields / sizeof fields[0], sizeof(T), check}
static const record_t rec_shard = RECORD("shard", rn_cl_shard_t, shard_fields, check_shard);
static const record_t rec_broker = RECORD("broker", rn_cl_broker_t, broker_fields, check_broker);
static const record_t rec_stream = RECORD("stream", rn_cl_stream_t, stream_fields, check_stream);
static const record_t rec_controller = RECORD("controller", rn_cl_controller_t, controller_fields, check_controller);
static const record_t rec_ineligible = RECORD("ineligible", rn_cl_ineligible_t, ineligible_fields, check_ineligible);

/* ==== encode ============================================================= */

static json_t *field_json(const field_t *f, const unsigned char *base) {
  const void *p = base + f->off;
  switch (f->type) {
  case F_U32: {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return json_integer((json_int_t)v);
  }
  case F_I64: {
    int64_t v;
    memcpy(&v, p, sizeof v);
    return json_integer((json_int_t)v);
  }
  case F_BOOL:
    return json_boolean(*(const bool *)p);
  case F_STR:
    return json_string((const char *)p);
  case F_IDS: {
    uint8_t n = *(const uint8_t *)(base + f->aux);
    json_t *a = json_array();
    for (unsigned i = 0; a && i < n && i < RN_CL_MAX_REPLICAS; i++) {
      uint32_t v;
      memcpy(&v, (const unsigned char *)p + i * sizeof v, sizeof v);
      if (json_array_append_new(a, json_integer((json_int_t)v)) != 0) {
        json_decref(a);
        return NULL;
      }
    }
    return a;
  }
  case F_U64S: {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    return json_string(s);
  }
  case F_DUR:
    return json_string(rn_durability_name((rn_durability_t) * (const uint8_t *)p));
  case F_REASON:
    return json_string(reason_name(*(const uint8_t *)p));
  }
  return NULL;
}

static rn_err_t encode(const record_t *r, const void *rec, char *buf, size_t cap, size_t *len) {
  if (len) *len = 0;
  if (r->check(rec, NULL, 0) != 0) return RN_EINVAL;
  json_t *o = json_object();
  if (o == NULL || json_object_set_new(o, "v", json_integer(1)) != 0) {
    json_decref(o);
    return RN_ENOMEM;
  }
  for (size_t i = 0; i < r->nfields; i++) {
    json_t *v = field_json(&r->fields[i], rec);
    if (v == NULL || json_object_set_new(o, r->fields[i].name, v) != 0) {
      json_decref(o);
      return RN_ENOMEM;
    }
  }
  size_t need = json_dumpb(o, NULL, 0, JSON_COMPACT);
  if (need == 0) {
    json_decref(o);
    return RN_ENOMEM;
  }
  if (len) *len = need;
  if (buf == NULL || cap < need + 1) {
    json_decref(o);
    return RN_ETOOLARGE;
  }
  size_t got = json_dumpb(o, buf, cap, JSON_COMPACT);
  json_decref(o);
  if (got != need) return RN_ENOMEM;
  buf[need] = '\0';
  return 0;
}

rn_err_t rn_cl_shard_encode(const rn_cl_shard_t *sh, char *buf, size_t cap, size_t *len) {
  return encode(&rec_shard, sh, buf, cap, len);
}
rn_err_t rn_cl_broker_encode(const rn_cl_broker_t *b, char *buf, size_t cap, size_t *len) {
  return encode(&rec_broker, b, buf, cap, len);
}
rn_err_t rn_cl_stream_encode(const rn_cl_stream_t *st, char *buf, size_t cap, size_t *len) {
  return encode(&rec_stream, st, buf, cap, len);
}
rn_err_t rn_cl_controller_encode(const rn_cl_controller_t *c, char *buf, size_t cap, size_t *len) {
  return encode(&rec_controller, c, buf, cap, len);
}
rn_err_t rn_cl_ineligible_encode(const rn_cl_ineligible_t *in, char *buf, size_t cap, size_t *len) {
  return encode(&rec_ineligible, in, buf, cap, len);
}

/* ==== decode ============================================================= */

/* A decimal uint64 without sign, leading zeros or anything else. */
static bool parse_u64(const char *s, size_t n, uint64_t *out) {
  if (n == 0 || n > 20 || (n > 1 && s[0] == '0')) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

static rn_err_t field_set(const record_t *r, const field_t *f, json_t *v, unsigned char *base, char *why,
                          size_t whylen) {
  void *p = base + f->off;
  const char *w = r->what, *n = f->name;
  switch (f->type) {
  case F_U32: {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (json_int_t)UINT32_MAX)
      return REJECT("%s: \"%s\" must be an integer in 0..4294967295", w, n);
    uint32_t x = (uint32_t)json_integer_value(v);
    memcpy(p, &x, sizeof x);
    return 0;
  }
  case F_I64: {
    if (!json_is_integer(v)) return REJECT("%s: \"%s\" must be an integer", w, n);
    int64_t x = (int64_t)json_integer_value(v);
    memcpy(p, &x, sizeof x);
    return 0;
  }
  case F_BOOL:
    if (!json_is_boolean(v)) return REJECT("%s: \"%s\" must be true or false", w, n);
    *(bool *)p = json_is_true(v);
    return 0;
  case F_STR: {
    if (!json_is_string(v)) return REJECT("%s: \"%s\" must be a string", w, n);
    size_t sl = json_string_length(v);
    if (sl >= f->aux) return REJECT("%s: \"%s\" is %zu bytes long (at most %zu)", w, n, sl, f->aux - 1);
    /* jansson refuses \u0000 unless asked (JSON_ALLOW_NUL is not passed) */
    memcpy(p, json_string_value(v), sl + 1);
    return 0;
  }
  case F_IDS: {
    if (!json_is_array(v)) return REJECT("%s: \"%s\" must be an array of broker ids", w, n);
    size_t cnt = json_array_size(v);
    if (cnt > RN_CL_MAX_REPLICAS) return REJECT("%s: \"%s\" has %zu entries (at most %d)", w, n, cnt, RN_CL_MAX_REPLICAS);
    for (size_t i = 0; i < cnt; i++) {
      json_t *e = json_array_get(v, i);
      if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > (json_int_t)UINT32_MAX)
        return REJECT("%s: \"%s\"[%zu] must be a broker id (an integer in 1..4294967295)", w, n, i);
      uint32_t x = (uint32_t)json_integer_value(e);
      memcpy((unsigned char *)p + i * sizeof x, &x, sizeof x);
    }
    *(uint8_t *)(base + f->aux) = (uint8_t)cnt;
    return 0;
  }
  case F_U64S: {
    uint64_t x;
    if (!json_is_string(v) || !parse_u64(json_string_value(v), json_string_length(v), &x))
      return REJECT("%s: \"%s\" must be a decimal string 0..18446744073709551615 (no sign, no leading zeros)", w, n);
    memcpy(p, &x, sizeof x);
    return 0;
  }
  case F_DUR: {
    rn_durability_t d;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
        rn_durability_parse(json_string_value(v), &d) != 0)
      return REJECT("%s: \"%s\" must be \"sync\", \"interval\" or \"none\"", w, n);
    *(uint8_t *)p = (uint8_t)d;
    return 0;
  }
  case F_REASON: {
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    uint8_t x = strcmp(s, "lost_tail") == 0 ? RN_CL_INEL_LOST_TAIL : strcmp(s, "corrupt") == 0 ? RN_CL_INEL_CORRUPT : 0;
    if (x == 0) return REJECT("%s: \"%s\" must be \"lost_tail\" or \"corrupt\"", w, n);
    *(uint8_t *)p = x;
    return 0;
  }
  }
  return REJECT("%s: \"%s\": unknown field type", w, n);
}

/* Decode into tmp (r->size bytes, zeroed by the caller), then check. */
static rn_err_t decode(const record_t *r, const uint8_t *data, size_t len, void *tmp, char *why, size_t whylen) {
  const char *w = r->what;
  if (data == NULL && len > 0) return REJECT("%s: no value", w);
  if (len == 0) return REJECT("%s: empty value", w);
  if (len >= RN_CL_VALUE_MAX) return REJECT("%s: value of %zu bytes (at most %d)", w, len, RN_CL_VALUE_MAX - 1);
  json_error_t jerr;
  json_t *o = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
  if (o == NULL) {
    if (json_error_code(&jerr) == json_error_out_of_memory) return rn__cl_reject(RN_ENOMEM, why, whylen, "%s: out of memory", w);
    char sh[48];
    return REJECT("%s: not JSON: %s (at byte %d)", w, shown(jerr.text, sh), jerr.position);
  }
  rn_err_t rc = 0;
  char sh[48];
  json_t *ver = json_object_get(o, "v");
  if (!json_is_object(o)) {
    rc = REJECT("%s: not a JSON object", w);
  } else if (ver == NULL) {
    rc = REJECT("%s: no \"v\" (the version)", w);
  } else if (!json_is_integer(ver)) {
    rc = REJECT("%s: \"v\" must be an integer", w);
  } else if (json_integer_value(ver) != 1) {
    rc = REJECT("%s: unknown version %lld (this broker reads 1)", w, (long long)json_integer_value(ver));
  }
  const char *key;
  json_t *val;
  if (rc == 0) {
    json_object_foreach(o, key, val) {
      if (strcmp(key, "v") == 0) continue;
      size_t i = 0;
      while (i < r->nfields && strcmp(r->fields[i].name, key) != 0) i++;
      if (i == r->nfields) {
        rc = REJECT("%s: unknown field \"%s\"", w, shown(key, sh));
        break;
      }
    }
  }
  for (size_t i = 0; rc == 0 && i < r->nfields; i++) {
    json_t *v = json_object_get(o, r->fields[i].name);
    if (v == NULL)
      rc = REJECT("%s: no \"%s\"", w, r->fields[i].name);
    else
      rc = field_set(r, &r->fields[i], v, tmp, why, whylen);
  }
  json_decref(o);
  if (rc == 0) rc = r->check(tmp, why, whylen);
  return rc;
}

#define DECODER(fn, T, rec)                                                                \
  rn_err_t fn(const uint8_t *data, size_t len, T *out, char *why, size_t whylen) {         \
    if (out == NULL) return REJECT("%s: no output", rec.what);                             \
    memset(out, 0, sizeof *out);                                                           \
    T tmp;                                                                                 \
    memset(&tmp, 0, sizeof tmp);                                                           \
    rn_err_t rc = decode(&rec, data, len, &tmp, why, whylen);                              \
    if (rc == 0) *out = tmp;                                                               \
    return rc;                                                                             \
  }

DECODER(rn_cl_shard_decode, rn_cl_shard_t, rec_shard)
DECODER(rn_cl_broker_decode, rn_cl_broker_t, rec_broker)
DECODER(rn_cl_stream_decode, rn_cl_stream_t, rec_stream)
DECODER(rn_cl_controller_decode, rn_cl_controller_t, rec_controller)
DECODER(rn_cl_ineligible_decode, rn_cl_ineligible_t, rec_ineligible)

/* ==== keys ================================================================ */

static bool seg_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-';
}

rn_err_t rn_cl_root_check(const char *root, char *why, size_t whylen) {
  if (root == NULL) return REJECT("cluster root: none");
  size_t n = strnlen(root, RN_CL_ROOT_MAX + 1);
  char sh[48];
  if (n < 2 || n > RN_CL_ROOT_MAX)
    return REJECT("cluster root \"%s\": 2..%d bytes, like /runnel", shown(root, sh), RN_CL_ROOT_MAX);
  if (root[0] != '/') return REJECT("cluster root \"%s\" must start with '/'", shown(root, sh));
  size_t seg = 1;
  for (size_t i = 1; i <= n; i++) {
    if (i == n || root[i] == '/') {
      size_t sl = i - seg;
      if (sl == 0) return REJECT("cluster root \"%s\" has an empty segment (\"//\" or a trailing '/')", shown(root, sh));
      if ((sl == 1 && root[seg] == '.') || (sl == 2 && root[seg] == '.' && root[seg + 1] == '.'))
        return REJECT("cluster root \"%s\" has a \".\" or \"..\" segment", shown(root, sh));
      seg = i + 1;
    } else if (!seg_char(root[i])) {
      return REJECT("cluster root \"%s\": segments of A-Z a-z 0-9 _ . - only", shown(root, sh));
    }
  }
  return 0;
}

static rn_err_t put(char *buf, size_t cap, size_t *len, int n) {
  if (len) *len = n < 0 ? 0 : (size_t)n;
  if (n < 0) return RN_EINVAL;
  if ((size_t)n >= cap) return RN_ETOOLARGE;
  return 0;
}

static bool stream_ok(const char *s) { return s && rn_name_check_stream(s, strnlen(s, RN_NAME_MAX + 1), NULL, 0) == 0; }

rn_err_t rn_cl_key_format(const char *root, const rn_cl_key_t *k, char *buf, size_t cap, size_t *len) {
  if (len) *len = 0;
  if (root == NULL) root = RN_CL_ROOT_DEFAULT;
  if (k == NULL || rn_cl_root_check(root, NULL, 0) != 0) return RN_EINVAL;
  if (buf == NULL) cap = 0;
  char tmp[RN_CL_KEY_MAX];
  int n;
  switch (k->kind) {
  case RN_CL_KEY_BROKER:
    if (k->broker == 0) return RN_EINVAL;
    n = snprintf(tmp, sizeof tmp, "%s/brokers/%010" PRIu32, root, k->broker);
    break;
  case RN_CL_KEY_CONTROLLER:
    n = snprintf(tmp, sizeof tmp, "%s/controller", root);
    break;
  case RN_CL_KEY_CONTROLLER_EPOCH:
    n = snprintf(tmp, sizeof tmp, "%s/controller_epoch", root);
    break;
  case RN_CL_KEY_STREAM:
    if (!stream_ok(k->stream)) return RN_EINVAL;
    n = snprintf(tmp, sizeof tmp, "%s/streams/%s", root, k->stream);
    break;
  case RN_CL_KEY_SHARD:
    if (!stream_ok(k->stream)) return RN_EINVAL;
    n = snprintf(tmp, sizeof tmp, "%s/shards/%s/%010" PRIu32, root, k->stream, k->shard);
    break;
  case RN_CL_KEY_INELIGIBLE:
    if (!stream_ok(k->stream) || k->broker == 0) return RN_EINVAL;
    n = snprintf(tmp, sizeof tmp, "%s/ineligible/%s/%010" PRIu32 "/%010" PRIu32, root, k->stream, k->shard,
                 k->broker);
    break;
  default:
    return RN_EINVAL;
  }
  rn_err_t rc = put(buf, cap, len, n);
  if (rc == 0) memcpy(buf, tmp, (size_t)n + 1);
  return rc;
}

rn_err_t rn_cl_key_prefix(const char *root, rn_cl_key_kind_t kind, const char *stream, uint32_t shard, char *buf,
                          size_t cap, size_t *len) {
  if (len) *len = 0;
  if (root == NULL) root = RN_CL_ROOT_DEFAULT;
  if (rn_cl_root_check(root, NULL, 0) != 0) return RN_EINVAL;
  if (buf == NULL) cap = 0;
  char tmp[RN_CL_KEY_MAX];
  int n;
  switch (kind) {
  case RN_CL_KEY_BROKER:
    n = snprintf(tmp, sizeof tmp, "%s/brokers/", root);
    break;
  case RN_CL_KEY_STREAM:
    n = snprintf(tmp, sizeof tmp, "%s/streams/", root);
    break;
  case RN_CL_KEY_SHARD:
    if (!stream_ok(stream)) return RN_EINVAL;
    n = snprintf(tmp, sizeof tmp, "%s/shards/%s/", root, stream);
    break;
  case RN_CL_KEY_INELIGIBLE:
    if (!stream_ok(stream)) return RN_EINVAL;
    n = snprintf(tmp, sizeof tmp, "%s/ineligible/%s/%010" PRIu32 "/", root, stream, shard);
    break;
  default:
    return RN_EINVAL;
  }
  rn_err_t rc = put(buf, cap, len, n);
  if (rc == 0) memcpy(buf, tmp, (size_t)n + 1);
  return rc;
}

/* Exactly 10 decimal digits at s[0, n) naming a uint32. */
static bool parse_id10(const char *s, size_t n, uint32_t *out) {
  if (n != 10) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < 10; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v > UINT32_MAX) return false;
  *out = (uint32_t)v;
  return true;
}

/* The next '/'-free segment of [*p, end): its start and length; *p moves
 * past it and past one '/' when there is one (*slash says whether). */
static void next_seg(const char **p, const char *end, const char **s, size_t *n, bool *slash) {
  const char *q = *p;
  while (q < end && *q != '/') q++;
  *s = *p;
  *n = (size_t)(q - *p);
  *slash = q < end;
  *p = q < end ? q + 1 : q;
}

rn_err_t rn_cl_key_parse(const char *root, const char *key, size_t len, rn_cl_key_t *out) {
  if (out == NULL) return RN_EINVAL;
  memset(out, 0, sizeof *out);
  if (root == NULL) root = RN_CL_ROOT_DEFAULT;
  if (key == NULL || rn_cl_root_check(root, NULL, 0) != 0) return RN_EINVAL;
  size_t rl = strlen(root);
  if (len <= rl + 1 || memcmp(key, root, rl) != 0 || key[rl] != '/' || memchr(key, '\0', len)) return RN_EINVAL;
  const char *p = key + rl + 1, *end = key + len, *s;
  size_t n;
  bool slash;
  rn_cl_key_t k;
  memset(&k, 0, sizeof k);
  next_seg(&p, end, &s, &n, &slash);
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(s, lit, n) == 0)
  if (IS("controller") || IS("controller_epoch")) {
    if (slash) return RN_EINVAL;
    k.kind = IS("controller") ? RN_CL_KEY_CONTROLLER : RN_CL_KEY_CONTROLLER_EPOCH;
  } else if (IS("brokers")) {
    if (!slash) return RN_EINVAL;
    next_seg(&p, end, &s, &n, &slash);
    if (slash || !parse_id10(s, n, &k.broker) || k.broker == 0) return RN_EINVAL;
    k.kind = RN_CL_KEY_BROKER;
  } else if (IS("streams") || IS("shards") || IS("ineligible")) {
    k.kind = IS("streams") ? RN_CL_KEY_STREAM : IS("shards") ? RN_CL_KEY_SHARD : RN_CL_KEY_INELIGIBLE;
    if (!slash) return RN_EINVAL;
    next_seg(&p, end, &s, &n, &slash);
    if (rn_name_check_stream(s, n, NULL, 0) != 0) return RN_EINVAL;
    memcpy(k.stream, s, n);
    k.stream[n] = '\0';
    if (k.kind == RN_CL_KEY_STREAM) {
      if (slash) return RN_EINVAL;
    } else {
      if (!slash) return RN_EINVAL;
      next_seg(&p, end, &s, &n, &slash);
      if (!parse_id10(s, n, &k.shard)) return RN_EINVAL;
      if (k.kind == RN_CL_KEY_SHARD) {
        if (slash) return RN_EINVAL;
      } else {
        if (!slash) return RN_EINVAL;
        next_seg(&p, end, &s, &n, &slash);
        if (slash || !parse_id10(s, n, &k.broker) || k.broker == 0) return RN_EINVAL;
      }
    }
  } else {
    return RN_EINVAL;
  }
#undef IS
  *out = k;
  return 0;
}
