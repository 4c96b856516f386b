/*
 * config.c — everything generated from RN_CONFIG_TABLE (config.h): defaults,
 * value parsing and bounds, the YAML loader (libyaml's document API), the
 * command-line parser, --help, the Markdown reference and the YAML dump.
 *
 * Invariants: every value that reaches an rn_config_t went through one
 * function, parse_value(), whether it came from the table's default, a YAML
 * file or a flag — so defaults obey the same bounds users do, and an error
 * message for a key has one shape wherever the value came from. A failed set
 * leaves the config unchanged. String fields are always heap-owned and
 * non-NULL after rn_config_init.
 */
#include "config.h"
#include "rn_base.h"

#include "runnel/units.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

typedef enum { T_STR, T_ADDR, T_ENUM, T_U32, T_SIZE32, T_SIZE64, T_DUR32, T_RETAIN, T_SECRET, T_OPTRET } cfg_type_t;

typedef struct cfg_entry {
  const char *name;
  cfg_type_t type;
  const char *dflt;
  uint64_t min, max;
  const char *choices;
  const char *flag;
  const char *doc;
  size_t offset;
} cfg_entry_t;

static const cfg_entry_t entries[] = {
#define RN__CFG_ENTRY(name, type, dflt, min, max, choices, flag, doc) \
  {#name, T_##type, dflt, (min), (max), choices, flag, doc, offsetof(rn_config_t, name)},
    RN_CONFIG_TABLE(RN__CFG_ENTRY)
#undef RN__CFG_ENTRY
};
#define NENTRIES (sizeof entries / sizeof entries[0])

/* A parsed value before it is stored. */
typedef struct cfg_value {
  char *s;    /* STR, ADDR: heap copy */
  int e;      /* ENUM index */
  uint64_t n; /* U32, SIZE32, SIZE64, DUR32 */
  int64_t r;  /* RETAIN, OPTRET: ms, -1 = forever (OPTRET: 0 = unset) */
} cfg_value_t;

static void fail(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *why, size_t whylen, const char *fmt, ...) {
  if (why == NULL || whylen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
}

static const cfg_entry_t *find_entry(const char *key) {
  for (size_t i = 0; i < NENTRIES; i++)
    if (strcmp(entries[i].name, key) == 0) return &entries[i];
  return NULL;
}

static const char *type_name(cfg_type_t t) {
  switch (t) {
  case T_STR: return "string";
  case T_ADDR: return "host:port";
  case T_ENUM: return "enum";
  case T_U32: return "integer";
  case T_SIZE32:
  case T_SIZE64: return "size";
  case T_DUR32: return "duration";
  case T_RETAIN: return "duration or `forever`";
  case T_SECRET: return "secret string";
  case T_OPTRET: return "duration, `forever`, or empty";
  }
  return "?";
}

/* ---- scalar parsing ------------------------------------------------------- */

/* Unsigned decimal; *end gets the first byte after the digits. False on no
 * digits or overflow. */
static bool parse_digits(const char *s, uint64_t *out, const char **end) {
  if (*s < '0' || *s > '9') return false;
  uint64_t v = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++) {
    uint64_t d = (uint64_t)(*p - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  *end = p;
  return true;
}

/* Unsigned decimal (U32 values, ports). False on syntax error or overflow. */
static bool parse_uint(const char *s, uint64_t *out) {
  uint64_t v;
  const char *p;
  if (!parse_digits(s, &v, &p) || *p != '\0') return false;
  *out = v;
  return true;
}

/* A duration in milliseconds: the one duration syntax (runnel/units.h:
 * "500ms", "30s", "1h30m"), or bare digits, which mean milliseconds here —
 * the unit every `*_ms` key had before durations took units. */
static bool parse_duration_ms(const char *s, uint64_t *out) {
  uint64_t v;
  const char *p;
  if (parse_digits(s, &v, &p) && *p == '\0') {
    *out = v;
    return true;
  }
  int64_t ms;
  if (rn_parse_duration_ms(s, &ms, NULL, 0) != 0) return false;
  *out = (uint64_t)ms;
  return true;
}

static void human_duration(uint64_t ms, char *buf, size_t len) { rn_format_duration_ms((int64_t)ms, buf, len); }

rn_err_t rn_config_split_addr(const char *addr, char *host, size_t hostlen, uint16_t *port) {
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || colon == addr) return RN_EINVAL;
  const char *h = addr;
  size_t hl = (size_t)(colon - addr);
  if (h[0] == '[') {
    if (hl < 3 || h[hl - 1] != ']') return RN_EINVAL;
    h++;
    hl -= 2;
  } else if (memchr(h, ':', hl) != NULL) {
    return RN_EINVAL; /* a bare IPv6 address is ambiguous: needs brackets */
  }
  for (size_t i = 0; i < hl; i++)
    if (h[i] == ' ' || h[i] == '\t' || h[i] == '[' || h[i] == ']' || h[i] == '/') return RN_EINVAL;
  uint64_t p;
  if (!parse_uint(colon + 1, &p) || p > 65535) return RN_EINVAL;
  if (hl + 1 > hostlen) return RN_EINVAL;
  memcpy(host, h, hl);
  host[hl] = '\0';
  *port = (uint16_t)p;
  return 0;
}

/* Format " (origin)" or "". */
static const char *origin_fmt(const char *origin, char *buf, size_t len) {
  if (origin == NULL || origin[0] == '\0') return "";
  snprintf(buf, len, " (%s)", origin);
  return buf;
}

/* Parse and validate text for entry e. On success fills *v (v->s heap-owned
 * for STR/ADDR). */
static rn_err_t parse_value(const cfg_entry_t *e, const char *text, const char *origin,
                            cfg_value_t *v, char *why, size_t whylen) {
  char ob[512];
  const char *o = origin_fmt(origin, ob, sizeof ob);
  memset(v, 0, sizeof *v);
  switch (e->type) {
  case T_STR:
  case T_SECRET: {
    size_t n = strlen(text);
    if (n < e->min || n > e->max) {
      if (e->min > 0 && n < e->min)
        fail(why, whylen, "config: %s: must not be empty%s", e->name, o);
      else
        fail(why, whylen, "config: %s: must be at most %" PRIu64 " bytes long, got %zu%s", e->name,
             e->max, n, o);
      return RN_EINVAL;
    }
    v->s = rn_xstrdup(text);
    return 0;
  }
  case T_ADDR: {
    char host[256];
    uint16_t port;
    if (rn_config_split_addr(text, host, sizeof host, &port) != 0) {
      fail(why, whylen,
           "config: %s: must be HOST:PORT (e.g. 127.0.0.1:7400 or [::1]:7400, port 0-65535), "
           "got '%s'%s",
           e->name, text, o);
      return RN_EINVAL;
    }
    v->s = rn_xstrdup(text);
    return 0;
  }
  case T_ENUM: {
    const char *c = e->choices;
    for (int i = 0;; i++) {
      const char *bar = strchr(c, '|');
      size_t n = bar ? (size_t)(bar - c) : strlen(c);
      if (strlen(text) == n && strncmp(text, c, n) == 0) {
        v->e = i;
        return 0;
      }
      if (bar == NULL) break;
      c = bar + 1;
    }
    fail(why, whylen, "config: %s: must be one of %s, got '%s'%s", e->name, e->choices, text, o);
    return RN_EINVAL;
  }
  case T_U32:
  case T_SIZE32:
  case T_SIZE64: {
    uint64_t n;
    if (e->type == T_U32) {
      if (!parse_uint(text, &n)) {
        fail(why, whylen, "config: %s: must be a non-negative integer, got '%s'%s", e->name, text, o);
        return RN_EINVAL;
      }
    } else {
      int64_t sz;
      char reason[160];
      if (rn_parse_size(text, &sz, reason, sizeof reason) != 0) {
        fail(why, whylen, "config: %s: must be a byte count (e.g. 1048576, 1MiB or 1M): %s%s", e->name, reason, o);
        return RN_EINVAL;
      }
      n = (uint64_t)sz;
    }
    if (n < e->min || n > e->max) {
      fail(why, whylen, "config: %s: must be between %" PRIu64 " and %" PRIu64 ", got %" PRIu64 "%s",
           e->name, e->min, e->max, n, o);
      return RN_EINVAL;
    }
    v->n = n;
    return 0;
  }
  case T_OPTRET:
    if (text[0] == '\0') {
      v->r = 0; /* unset */
      return 0;
    }
    /* otherwise a RETAIN */
    /* fall through */
  case T_DUR32:
  case T_RETAIN: {
    bool retain = e->type == T_RETAIN || e->type == T_OPTRET;
    if (retain && strcmp(text, "forever") == 0) {
      v->r = -1;
      return 0;
    }
    uint64_t n;
    if (!parse_duration_ms(text, &n)) {
      fail(why, whylen,
           "config: %s: must be a duration (e.g. 500ms, 30s, 5m, 24h, 7d%s), got '%s'%s", e->name,
           retain ? ", or forever" : "; a bare number is milliseconds", text, o);
      return RN_EINVAL;
    }
    if (retain && n == 0) {
      fail(why, whylen, "config: %s: 0 is not a retention (write `forever` to keep records forever)%s",
           e->name, o);
      return RN_EINVAL;
    }
    if (n < e->min || n > e->max) {
      char lo[32], hi[32];
      human_duration(e->min, lo, sizeof lo);
      human_duration(e->max, hi, sizeof hi);
      fail(why, whylen, "config: %s: must be between %s and %s, got '%s'%s", e->name,
           e->min == 0 ? "0" : lo, hi, text, o);
      return RN_EINVAL;
    }
    v->n = n;
    v->r = (int64_t)n;
    return 0;
  }
  }
  return RN_EINVAL;
}

/* Store v into cfg (taking ownership of v->s). */
static void store_value(rn_config_t *cfg, const cfg_entry_t *e, cfg_value_t *v) {
  void *field = (char *)cfg + e->offset;
  switch (e->type) {
  case T_STR:
  case T_SECRET:
  case T_ADDR: {
    char **sp = field;
    free(*sp);
    *sp = v->s;
    v->s = NULL;
    break;
  }
  case T_ENUM: *(int *)field = v->e; break;
  case T_U32:
  case T_SIZE32: *(uint32_t *)field = (uint32_t)v->n; break;
  case T_SIZE64: *(uint64_t *)field = v->n; break;
  case T_DUR32: *(uint32_t *)field = (uint32_t)v->n; break;
  case T_RETAIN:
  case T_OPTRET: *(int64_t *)field = v->r; break;
  }
}

/* "16MiB": the largest binary unit that divides n (runnel/units.h), the
 * form a user would type; parses back to n. */
static void human_size(uint64_t n, char *buf, size_t len) { rn_format_size((int64_t)n, buf, len); }

/* The value of e in cfg as text (what rn_config_print writes). */
static void format_value(const rn_config_t *cfg, const cfg_entry_t *e, char *buf, size_t len) {
  const void *field = (const char *)cfg + e->offset;
  switch (e->type) {
  case T_STR:
  case T_ADDR: snprintf(buf, len, "%s", *(char *const *)field); return;
  case T_SECRET: snprintf(buf, len, "%s", (*(char *const *)field)[0] ? "(set, not shown)" : ""); return;
  case T_DUR32: human_duration(*(const uint32_t *)field, buf, len); return;
  case T_RETAIN:
  case T_OPTRET: {
    int64_t r = *(const int64_t *)field;
    if (r == 0 && e->type == T_OPTRET)
      snprintf(buf, len, "%s", "");
    else if (r < 0)
      snprintf(buf, len, "forever");
    else
      human_duration((uint64_t)r, buf, len);
    return;
  }
  case T_ENUM: {
    int idx = *(const int *)field;
    const char *c = e->choices;
    for (int i = 0; i < idx && c != NULL; i++) {
      c = strchr(c, '|');
      if (c != NULL) c++;
    }
    if (c == NULL) {
      snprintf(buf, len, "?");
      return;
    }
    const char *bar = strchr(c, '|');
    int n = bar ? (int)(bar - c) : (int)strlen(c);
    snprintf(buf, len, "%.*s", n, c);
    return;
  }
  case T_U32: snprintf(buf, len, "%" PRIu32, *(const uint32_t *)field); return;
  case T_SIZE32: human_size(*(const uint32_t *)field, buf, len); return;
  case T_SIZE64: human_size(*(const uint64_t *)field, buf, len); return;
  }
}

/* ---- public: init, set, check --------------------------------------------- */

void rn_config_init(rn_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < NENTRIES; i++) {
    cfg_value_t v;
    char why[256];
    if (parse_value(&entries[i], entries[i].dflt, "table default", &v, why, sizeof why) != 0) {
      /* A default that fails its own bounds is a bug in RN_CONFIG_TABLE. */
      fprintf(stderr, "runneld: bad default in RN_CONFIG_TABLE: %s\n", why);
      abort();
    }
    store_value(cfg, &entries[i], &v);
  }
}

void rn_config_free(rn_config_t *cfg) {
  if (cfg == NULL) return;
  for (size_t i = 0; i < NENTRIES; i++) {
    if (entries[i].type == T_STR || entries[i].type == T_ADDR || entries[i].type == T_SECRET) {
      char **sp = (char **)((char *)cfg + entries[i].offset);
      if (entries[i].type == T_SECRET && *sp != NULL) explicit_bzero(*sp, strlen(*sp));
      free(*sp);
      *sp = NULL;
    }
  }
  memset(cfg, 0, sizeof *cfg);
}

/* Levenshtein distance, capped; for "did you mean" on unknown keys. */
static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 99;
  size_t prev[64], cur[64];
  for (size_t j = 0; j <= lb; j++) prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
      size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
      cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
    }
    memcpy(prev, cur, (lb + 1) * sizeof cur[0]);
  }
  return prev[lb];
}

static void unknown_key(const char *key, const char *origin, char *why, size_t whylen) {
  const char *best = NULL;
  size_t bestd = 3;
  for (size_t i = 0; i < NENTRIES; i++) {
    size_t d = edit_distance(key, entries[i].name);
    if (d < bestd) {
      bestd = d;
      best = entries[i].name;
    }
  }
  char ob[512];
  const char *o = origin_fmt(origin, ob, sizeof ob);
  if (best != NULL)
    fail(why, whylen, "config: unknown key '%s' (did you mean '%s'?)%s", key, best, o);
  else
    fail(why, whylen, "config: unknown key '%s' (runneld --help lists every key)%s", key, o);
}

rn_err_t rn_config_set(rn_config_t *cfg, const char *key, const char *value, const char *origin,
                       char *why, size_t whylen) {
  const cfg_entry_t *e = find_entry(key);
  if (e == NULL) {
    unknown_key(key, origin, why, whylen);
    return RN_ENOENT;
  }
  cfg_value_t v;
  rn_err_t rc = parse_value(e, value, origin, &v, why, whylen);
  if (rc != 0) return rc;
  store_value(cfg, e, &v);
  return 0;
}

rn_err_t rn_config_check(const rn_config_t *cfg, char *why, size_t whylen) {
  if ((cfg->http_tls_cert[0] == '\0') != (cfg->http_tls_key[0] == '\0')) {
    fail(why, whylen, "config: http_tls_cert and http_tls_key must be set together (TLS needs both)");
    return RN_EINVAL;
  }
  if (cfg->max_record_bytes > cfg->max_batch_bytes) {
    fail(why, whylen,
         "config: max_record_bytes (%" PRIu32 ") must not exceed max_batch_bytes (%" PRIu32 ")",
         cfg->max_record_bytes, cfg->max_batch_bytes);
    return RN_EINVAL;
  }
  if (cfg->s3_bucket[0] != '\0' && cfg->tier_dir[0] != '\0') {
    fail(why, whylen,
         "config: s3_bucket and tier_dir are exclusive: tiered storage uses one store, an S3 bucket or a local "
         "directory; set only one of them");
    return RN_EINVAL;
  }
  /* s3_endpoint, s3_ca_file, s3_credentials_file and s3_profile also serve
   * archive sinks (each names its bucket in its s3:// destination), so they
   * stand without s3_bucket; s3_prefix is tiering's alone. */
  if (cfg->s3_bucket[0] == '\0' && cfg->s3_prefix[0] != '\0') {
    fail(why, whylen, "config: s3_prefix is set but s3_bucket is not: the prefix is of tiering's bucket");
    return RN_EINVAL;
  }
  if (cfg->etcd[0] != '\0' && cfg->broker_id == 0) {
    fail(why, whylen, "config: etcd is set but broker_id is not: every cluster member needs its own --broker-id N (>= 1)");
    return RN_EINVAL;
  }
  if (cfg->etcd[0] == '\0' && (cfg->broker_id != 0 || cfg->advertise[0] != '\0')) {
    fail(why, whylen, "config: broker_id and advertise are for a cluster member: set etcd too (--etcd http://HOST:PORT)");
    return RN_EINVAL;
  }
  if (cfg->s3_prefix[0] == '/') {
    fail(why, whylen, "config: s3_prefix must not start with '/' (got '%s')", cfg->s3_prefix);
    return RN_EINVAL;
  }
  if (cfg->default_local_retention != 0 && cfg->s3_bucket[0] == '\0' && cfg->tier_dir[0] == '\0') {
    fail(why, whylen,
         "config: default_local_retention is set but there is no store to tier to: set s3_bucket or tier_dir too");
    return RN_EINVAL;
  }
  if ((uint64_t)cfg->tier_chunk_bytes > cfg->tier_cache_bytes) {
    fail(why, whylen,
         "config: tier_chunk_bytes (%" PRIu32 ") must not exceed tier_cache_bytes (%" PRIu64
         "): the cache holds whole chunks",
         cfg->tier_chunk_bytes, cfg->tier_cache_bytes);
    return RN_EINVAL;
  }
  if (cfg->max_batch_bytes >= cfg->max_frame_bytes) {
    fail(why, whylen,
         "config: max_batch_bytes (%" PRIu32 ") must be below max_frame_bytes (%" PRIu32
         "): a batch travels inside a request frame",
         cfg->max_batch_bytes, cfg->max_frame_bytes);
    return RN_EINVAL;
  }
  return 0;
}

/* ---- YAML ------------------------------------------------------------------ */

rn_err_t rn_config_load_yaml(rn_config_t *cfg, const char *text, size_t len, const char *name,
                             char *why, size_t whylen) {
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) {
    fail(why, whylen, "config: %s: out of memory", name);
    return RN_ENOMEM;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  if (!yaml_parser_load(&parser, &doc)) {
    fail(why, whylen, "config: %s:%zu:%zu: not valid YAML: %s", name,
         (size_t)parser.problem_mark.line + 1, (size_t)parser.problem_mark.column + 1,
         parser.problem ? parser.problem : "parse error");
    yaml_parser_delete(&parser);
    return RN_EFORMAT;
  }
  rn_err_t rc = 0;
  bool seen[NENTRIES];
  memset(seen, 0, sizeof seen);
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (root == NULL) goto out; /* empty file: nothing to set */
  if (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0) goto out;
  if (root->type != YAML_MAPPING_NODE) {
    fail(why, whylen, "config: %s:%zu: the top level must be a mapping of key: value", name,
         (size_t)root->start_mark.line + 1);
    rc = RN_EFORMAT;
    goto out;
  }
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(&doc, p->key);
    yaml_node_t *v = yaml_document_get_node(&doc, p->value);
    size_t line = (size_t)k->start_mark.line + 1;
    if (k->type != YAML_SCALAR_NODE) {
      fail(why, whylen, "config: %s:%zu: keys must be plain names", name, line);
      rc = RN_EFORMAT;
      goto out;
    }
    const char *key = (const char *)k->data.scalar.value;
    char origin[512];
    snprintf(origin, sizeof origin, "%s:%zu", name, line);
    const cfg_entry_t *e = find_entry(key);
    if (e == NULL) {
      unknown_key(key, origin, why, whylen);
      rc = RN_ENOENT;
      goto out;
    }
    size_t idx = (size_t)(e - entries);
    if (seen[idx]) {
      fail(why, whylen, "config: %s: set twice (%s)", key, origin);
      rc = RN_EINVAL;
      goto out;
    }
    seen[idx] = true;
    if (v->type != YAML_SCALAR_NODE) {
      fail(why, whylen, "config: %s: must be a single value, not a list or mapping (%s)", key, origin);
      rc = RN_EINVAL;
      goto out;
    }
    const char *val = (const char *)v->data.scalar.value;
    /* An unquoted empty / ~ / null value means "unset": allowed for strings
     * that may be empty (port_file), an error for anything else. */
    bool null = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                (val[0] == '\0' || strcmp(val, "~") == 0 || strcmp(val, "null") == 0);
    if (null) {
      if ((e->type == T_STR && e->min == 0) || e->type == T_OPTRET) {
        val = "";
      } else {
        fail(why, whylen, "config: %s: needs a value (%s)", key, origin);
        rc = RN_EINVAL;
        goto out;
      }
    }
    if (strlen(val) != v->data.scalar.length) {
      fail(why, whylen, "config: %s: value contains a NUL byte (%s)", key, origin);
      rc = RN_EINVAL;
      goto out;
    }
    rc = rn_config_set(cfg, key, val, origin, why, whylen);
    if (rc != 0) goto out;
  }
out:
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return rc;
}

rn_err_t rn_config_load_file(rn_config_t *cfg, const char *path, char *why, size_t whylen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    rn_err_t rc = -errno;
    fail(why, whylen, "config: cannot open %s: %s", path, strerror(errno));
    return rc;
  }
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (buf == NULL) {
    close(fd);
    return RN_ENOMEM;
  }
  for (;;) {
    if (len == cap) {
      if (cap >= (64u << 20)) {
        free(buf);
        close(fd);
        fail(why, whylen, "config: %s: larger than 64 MiB; not a config file?", path);
        return RN_ETOOLARGE;
      }
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        free(buf);
        close(fd);
        return RN_ENOMEM;
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      rn_err_t rc = -errno;
      fail(why, whylen, "config: cannot read %s: %s", path, strerror(errno));
      free(buf);
      close(fd);
      return rc;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  close(fd);
  rn_err_t rc = rn_config_load_yaml(cfg, buf, len, path, why, whylen);
  free(buf);
  return rc;
}

/* ---- command line ------------------------------------------------------------ */

/* If argv[*i] is --name or --name=VALUE, set *val (from the same or the next
 * argument, advancing *i) and return 1; return -1 when the value is missing;
 * 0 when argv[*i] is another option. */
static int match_opt(int argc, char *const argv[], int *i, const char *name, const char **val) {
  const char *a = argv[*i];
  if (a[0] != '-' || a[1] != '-') return 0;
  size_t n = strlen(name);
  if (strncmp(a + 2, name, n) != 0) return 0;
  if (a[2 + n] == '=') {
    *val = a + 3 + n;
    return 1;
  }
  if (a[2 + n] != '\0') return 0;
  if (*i + 1 >= argc) return -1;
  *val = argv[++*i];
  return 1;
}

static bool is_flag(const char *a, const char *name) { return a[0] == '-' && a[1] == '-' && strcmp(a + 2, name) == 0; }

rn_err_t rn_config_from_args(rn_config_t *cfg, int argc, char *const argv[],
                             rn_config_action_t *action, char *why, size_t whylen) {
  *action = RN_CONFIG_RUN;
  const char *config_file = NULL;
  /* Pass 1: actions that ignore everything else, and --config (applied
   * first so flags override the file whatever their order). */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val;
    if (is_flag(a, "help") || strcmp(a, "-h") == 0) {
      *action = RN_CONFIG_HELP;
      return 0;
    }
    if (is_flag(a, "version")) {
      *action = RN_CONFIG_VERSION;
      return 0;
    }
    if (is_flag(a, "print-config-reference")) {
      *action = RN_CONFIG_REFERENCE;
      return 0;
    }
    if (is_flag(a, "print-man")) {
      *action = RN_CONFIG_MAN;
      return 0;
    }
    int m = match_opt(argc, argv, &i, "config", &val);
    if (m < 0) {
      fail(why, whylen, "--config needs a FILE");
      return RN_EINVAL;
    }
    if (m > 0) {
      if (config_file != NULL) {
        fail(why, whylen, "--config given twice");
        return RN_EINVAL;
      }
      config_file = val;
    }
  }
  if (config_file != NULL) {
    rn_err_t rc = rn_config_load_file(cfg, config_file, why, whylen);
    if (rc != 0) return rc;
  }
  /* Pass 2: flags in order. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val;
    char origin[128];
    int m;
    if ((m = match_opt(argc, argv, &i, "config", &val)) != 0) continue;
    if (is_flag(a, "print-config")) {
      *action = RN_CONFIG_PRINT;
      continue;
    }
    if ((m = match_opt(argc, argv, &i, "set", &val)) != 0) {
      if (m < 0) {
        fail(why, whylen, "--set needs KEY=VALUE");
        return RN_EINVAL;
      }
      const char *eq = strchr(val, '=');
      if (eq == NULL || eq == val) {
        fail(why, whylen, "--set needs KEY=VALUE, got '%s'", val);
        return RN_EINVAL;
      }
      char key[128];
      size_t kl = (size_t)(eq - val);
      if (kl >= sizeof key) kl = sizeof key - 1;
      memcpy(key, val, kl);
      key[kl] = '\0';
      rn_err_t rc = rn_config_set(cfg, key, eq + 1, "from --set", why, whylen);
      if (rc != 0) return rc;
      continue;
    }
    bool matched = false;
    for (size_t k = 0; k < NENTRIES && !matched; k++) {
      if (entries[k].flag == NULL) continue;
      m = match_opt(argc, argv, &i, entries[k].flag, &val);
      if (m == 0) continue;
      if (m < 0) {
        fail(why, whylen, "--%s needs a value", entries[k].flag);
        return RN_EINVAL;
      }
      snprintf(origin, sizeof origin, "from --%s", entries[k].flag);
      rn_err_t rc = rn_config_set(cfg, entries[k].name, val, origin, why, whylen);
      if (rc != 0) return rc;
      matched = true;
    }
    if (matched) continue;
    if (a[0] == '-')
      fail(why, whylen, "unknown option '%s' (see --help)", a);
    else
      fail(why, whylen, "unexpected argument '%s' (see --help)", a);
    return RN_EINVAL;
  }
  return rn_config_check(cfg, why, whylen);
}

/* ---- help, reference, dump ----------------------------------------------------- */

static void default_text(const cfg_entry_t *e, char *buf, size_t len) {
  rn_config_t tmp;
  rn_config_init(&tmp);
  format_value(&tmp, e, buf, len);
  rn_config_free(&tmp);
}

static void range_text(const cfg_entry_t *e, char *buf, size_t len) {
  switch (e->type) {
  case T_SECRET:
  case T_STR:
    if (e->min > 0)
      snprintf(buf, len, "non-empty, at most %" PRIu64 " bytes", e->max);
    else
      snprintf(buf, len, "at most %" PRIu64 " bytes; may be empty", e->max);
    return;
  case T_ADDR: snprintf(buf, len, "`HOST:PORT`, port 0-65535"); return;
  case T_ENUM: {
    size_t off = 0;
    const char *c = e->choices;
    for (;;) {
      const char *bar = strchr(c, '|');
      int n = bar ? (int)(bar - c) : (int)strlen(c);
      off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s`%.*s`", c == e->choices ? "" : ", ", n, c);
      if (bar == NULL || off >= len) break;
      c = bar + 1;
    }
    return;
  }
  case T_U32:
  case T_SIZE32:
  case T_SIZE64: {
    char lo[64], hi[64];
    if (e->type == T_U32) {
      snprintf(lo, sizeof lo, "%" PRIu64, e->min);
      snprintf(hi, sizeof hi, "%" PRIu64, e->max);
    } else {
      human_size(e->min, lo, sizeof lo);
      human_size(e->max, hi, sizeof hi);
    }
    snprintf(buf, len, "%s to %s", lo, hi);
    return;
  }
  case T_DUR32:
  case T_RETAIN:
  case T_OPTRET: {
    char lo[32], hi[32];
    human_duration(e->min, lo, sizeof lo);
    human_duration(e->max, hi, sizeof hi);
    snprintf(buf, len, "%s to %s%s", e->min == 0 ? "0" : lo, hi,
             e->type == T_RETAIN ? ", or `forever`" : e->type == T_OPTRET ? ", `forever`, or empty (unset)" : "");
    return;
  }
  }
}

void rn_config_print_help(FILE *out, const char *prog) {
  fprintf(out,
          "usage: %s [--config FILE] [options] [--set KEY=VALUE ...]\n"
          "\n"
          "runneld is the runnel broker daemon: streams, shards, produce and fetch over the\n"
          "native protocol, plus an HTTP port. With no options it serves data in ./data on\n"
          "127.0.0.1:7400 (native) and 127.0.0.1:7480 (HTTP). SIGTERM or SIGINT shut it down\n"
          "cleanly (a second signal exits at once).\n"
          "\n"
          "options:\n"
          "  --config FILE            YAML file of KEY: VALUE lines (keys below)\n",
          prog);
  for (size_t i = 0; i < NENTRIES; i++) {
    const cfg_entry_t *e = &entries[i];
    if (e->flag == NULL) continue;
    char left[64];
    const char *meta = e->type == T_ADDR ? "HOST:PORT" : e->type == T_ENUM ? "LEVEL" : e->type == T_DUR32 ? "DURATION" : "VALUE";
    if (strcmp(e->name, "data_dir") == 0 || strcmp(e->name, "tier_dir") == 0) meta = "DIR";
    if (strcmp(e->name, "port_file") == 0) meta = "FILE";
    snprintf(left, sizeof left, "--%s %s", e->flag, meta);
    fprintf(out, "  %-24s sets %s\n", left, e->name);
  }
  fprintf(out,
          "  --set KEY=VALUE          sets any key below (repeatable)\n"
          "  --print-config           print the effective configuration as YAML and exit\n"
          "  --print-config-reference print the configuration reference (Markdown) and exit\n"
          "  --print-man              print the manual page (roff) and exit\n"
          "  --version                print the version and exit\n"
          "  -h, --help               this text\n"
          "\n"
          "Precedence: defaults < --config FILE < flags, in command-line order.\n"
          "Sizes accept binary suffixes KiB, MiB, GiB, TiB (also K, M, G, T: 16M = 16MiB).\n"
          "Durations accept ms, s, m, h, d (500ms, 30s, 24h); a bare number is milliseconds.\n"
          "\n"
          "keys (default):\n");
  for (size_t i = 0; i < NENTRIES; i++) {
    char d[128];
    default_text(&entries[i], d, sizeof d);
    fprintf(out, "  %-32s %s\n", entries[i].name, d[0] ? d : "(empty)");
  }
  fprintf(out, "\nSee docs/configuration.md for what each key does.\n");
}

void rn_config_print_reference(FILE *out) {
  fprintf(out,
          "# Configuration reference\n"
          "\n"
          "<!-- Generated by `runneld --print-config-reference` from RN_CONFIG_TABLE in\n"
          "     broker/config.h. Do not edit by hand: change the table and regenerate. -->\n"
          "\n"
          "`runneld` runs with no configuration at all. Every setting below can come from, in\n"
          "increasing precedence:\n"
          "\n"
          "1. its default;\n"
          "2. a YAML file given with `--config FILE`: a flat mapping of `key: value` lines\n"
          "   (unknown keys, duplicate keys and out-of-range values are errors that stop the\n"
          "   broker at startup with a one-line message naming the key);\n"
          "3. command-line flags, applied in order: `--set key=value` for any key, and the\n"
          "   shorthands listed in the table (`--data-dir DIR`, `--listen HOST:PORT`, ...).\n"
          "\n"
          "Sizes are byte counts and accept the binary suffixes `KiB`, `MiB`, `GiB` and `TiB`,\n"
          "also written `K`, `M`, `G`, `T` or `Ki`, `Mi`, `Gi`, `Ti` (all powers of 1024:\n"
          "`10G` = `10GiB`); decimal-looking units such as `MB` are refused. The same rule holds\n"
          "for `runnelctl`. Durations accept `ms`, `s`, `m`, `h`, `d` (`500ms`, `30s`, `24h`,\n"
          "`7d`); a bare number is milliseconds. `runneld --print-config` prints the effective\n"
          "configuration as a YAML file that `--config` accepts, with sizes and durations in\n"
          "units and secrets redacted (as comments).\n"
          "\n"
          "Example:\n"
          "\n"
          "```yaml\n"
          "data_dir: /var/lib/runnel\n"
          "listen: 127.0.0.1:7400\n"
          "http_listen: 127.0.0.1:7480\n"
          "log_level: info\n"
          "max_record_bytes: 1MiB\n"
          "```\n"
          "\n"
          "| key | type | default | allowed | flag |\n"
          "|---|---|---|---|---|\n");
  for (size_t i = 0; i < NENTRIES; i++) {
    const cfg_entry_t *e = &entries[i];
    char d[128], r[256], f[64];
    default_text(e, d, sizeof d);
    range_text(e, r, sizeof r);
    if (e->flag)
      snprintf(f, sizeof f, "`--%s`", e->flag);
    else
      snprintf(f, sizeof f, "`--set %s=...`", e->name);
    fprintf(out, "| [`%s`](#%s) | %s | %s%s%s | %s | %s |\n", e->name, e->name, type_name(e->type),
            d[0] ? "`" : "", d[0] ? d : "(empty)", d[0] ? "`" : "", r, f);
  }
  for (size_t i = 0; i < NENTRIES; i++) {
    const cfg_entry_t *e = &entries[i];
    char d[128], r[256];
    default_text(e, d, sizeof d);
    range_text(e, r, sizeof r);
    fprintf(out, "\n## %s\n\n%s\n\n", e->name, e->doc);
    fprintf(out, "- type: %s\n", type_name(e->type));
    fprintf(out, "- default: %s%s%s\n", d[0] ? "`" : "", d[0] ? d : "(empty)", d[0] ? "`" : "");
    fprintf(out, "- allowed: %s\n", r);
    if (e->flag) fprintf(out, "- flag: `--%s`\n", e->flag);
  }
}

/* roff-escape text for a man page: backslashes, leading dots/quotes, and
 * the Markdown backquotes of the docs dropped. */
static void man_text(FILE *out, const char *s) {
  bool bol = true;
  for (const char *p = s; *p; p++) {
    if (*p == '`') continue;
    if (bol && (*p == '.' || *p == '\'')) fputs("\\&", out);
    if (*p == '\\') fputs("\\e", out);
    else if (*p == '-') fputs("\\-", out);
    else fputc(*p, out);
    bol = *p == '\n';
  }
}

void rn_config_print_man(FILE *out, const char *version) {
  fprintf(out,
          ".\\\" Generated by `runneld --print-man` from RN_CONFIG_TABLE (broker/config.h).\n"
          ".TH RUNNELD 8 \"\" \"runnel %s\" \"runnel\"\n"
          ".SH NAME\nrunneld \\- the runnel streaming broker\n"
          ".SH SYNOPSIS\n.B runneld\n[\\fB\\-\\-config\\fR \\fIFILE\\fR] [\\fIoptions\\fR] "
          "[\\fB\\-\\-set\\fR \\fIKEY\\fR=\\fIVALUE\\fR ...]\n"
          ".SH DESCRIPTION\n"
          "runneld serves streams of records split into shards: the native protocol (port 7400), and on one HTTP\n"
          "port (7480) the Kinesis Data Streams API, REST ingest, /metrics, /healthz and /readyz. With no options it\n"
          "keeps its data in ./data and listens on 127.0.0.1 only. One runneld owns a data directory (a lock\n"
          "file, data_dir/LOCK, refuses a second). SIGTERM or SIGINT shut it down cleanly; a second signal exits\n"
          "at once (the next start recovers).\n"
          ".SH OPTIONS\n"
          ".TP\n\\fB\\-\\-config\\fR \\fIFILE\\fR\nYAML file of KEY: VALUE lines (the keys below).\n",
          version);
  for (size_t i = 0; i < NENTRIES; i++) {
    const cfg_entry_t *e = &entries[i];
    if (e->flag == NULL) continue;
    fprintf(out, ".TP\n\\fB\\-\\-");
    man_text(out, e->flag);
    fprintf(out, "\\fR \\fIVALUE\\fR\nSets \\fB%s\\fR.\n", e->name);
  }
  fprintf(out, ".TP\n\\fB\\-\\-set\\fR \\fIKEY\\fR=\\fIVALUE\\fR\nSets any key below (repeatable).\n"
               ".TP\n\\fB\\-\\-print\\-config\\fR\nPrint the effective configuration as YAML (secrets redacted) and exit.\n"
               ".TP\n\\fB\\-\\-print\\-config\\-reference\\fR\nPrint the configuration reference (Markdown) and exit.\n"
               ".TP\n\\fB\\-\\-print\\-man\\fR\nPrint this manual page and exit.\n"
               ".TP\n\\fB\\-\\-version\\fR\nPrint the version and exit.\n"
               ".SH CONFIGURATION\n"
               "Precedence, lowest first: defaults, \\-\\-config FILE, flags in command\\-line order.\n"
               "Sizes accept binary suffixes (KiB, MiB, GiB, TiB; also K, M, G, T). Durations accept ms, s, m, h, d;\n"
               "a bare number is milliseconds.\n");
  for (size_t i = 0; i < NENTRIES; i++) {
    const cfg_entry_t *e = &entries[i];
    char d[128], r[256];
    default_text(e, d, sizeof d);
    range_text(e, r, sizeof r);
    fprintf(out, ".TP\n\\fB%s\\fR (%s; default: ", e->name, type_name(e->type));
    man_text(out, d[0] ? d : "empty");
    fprintf(out, "; ");
    man_text(out, r);
    fprintf(out, ")\n");
    man_text(out, e->doc);
    fputc('\n', out);
  }
  fprintf(out, ".SH ENVIRONMENT\n"
               ".TP\n\\fBRUNNEL_KINESIS_CREDENTIALS\\fR, \\fBRUNNEL_REST_API_KEYS\\fR\n"
               "The secrets kinesis_credentials and rest_api_keys, when neither the key nor its *_file is set.\n"
               ".TP\n\\fBRUNNEL_IO_BACKEND\\fR\nuring or posix: overrides io_backend: auto.\n"
               ".SH EXIT STATUS\n0 after a clean shutdown; 1 when the broker could not start or close cleanly; 2 for a\n"
               "usage or configuration error.\n"
               ".SH SEE ALSO\n\\fBrunnelctl\\fR(1); docs/configuration.md, docs/broker.md in the source tree.\n");
}

void rn_config_print(FILE *out, const rn_config_t *cfg) {
  fprintf(out, "# runneld effective configuration\n");
  for (size_t i = 0; i < NENTRIES; i++) {
    char v[4200];
    format_value(cfg, &entries[i], v, sizeof v);
    if (entries[i].type == T_SECRET) {
      /* Never printed: a comment keeps the output a valid --config file
       * (which then leaves the secret to its *_file or the environment). */
      fprintf(out, "# %s: %s\n", entries[i].name, v[0] ? "(set; redacted)" : "(not set)");
      continue;
    }
    if (entries[i].type == T_STR || entries[i].type == T_ADDR || (entries[i].type == T_OPTRET && v[0] == '\0')) {
      /* Double-quoted YAML: escape backslash and quote. */
      fprintf(out, "%s: \"", entries[i].name);
      for (const char *p = v; *p; p++) {
        if (*p == '\n') {
          fputs("\\n", out);
          continue;
        }
        if (*p == '"' || *p == '\\') fputc('\\', out);
        fputc(*p, out);
      }
      fputs("\"\n", out);
    } else {
      fprintf(out, "%s: %s\n", entries[i].name, v);
    }
  }
}

/* ---- secrets ------------------------------------------------------------------ */

/* Read a secret file: refuse one that group or others may read or write, or
 * that is not a regular file; strip surrounding whitespace. */
static rn_err_t read_secret_file(const char *key, const char *path, char **out, char *why, size_t whylen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    rn_err_t rc = -errno;
    fail(why, whylen, "config: %s_file: cannot open %s: %s", key, path, strerror(errno));
    return rc;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    fail(why, whylen, "config: %s_file: %s is not a regular file", key, path);
    return RN_EINVAL;
  }
  if ((st.st_mode & 077) != 0) {
    close(fd);
    fail(why, whylen,
         "config: %s_file: %s has permissions %03o: a secret file must not be accessible by group or "
         "others (chmod 600 %s)",
         key, path, (unsigned)(st.st_mode & 0777), path);
    return RN_EINVAL;
  }
  if (st.st_size > 65536) {
    close(fd);
    fail(why, whylen, "config: %s_file: %s is larger than 64 KiB", key, path);
    return RN_ETOOLARGE;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  if (buf == NULL) {
    close(fd);
    return RN_ENOMEM;
  }
  size_t len = 0;
  while (len < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';
  size_t b = 0;
  while (b < len && (buf[b] == ' ' || buf[b] == '\t' || buf[b] == '\n' || buf[b] == '\r')) b++;
  while (len > b && (buf[len - 1] == ' ' || buf[len - 1] == '\t' || buf[len - 1] == '\n' || buf[len - 1] == '\r'))
    len--;
  memmove(buf, buf + b, len - b);
  buf[len - b] = '\0';
  *out = buf;
  return 0;
}

/* One secret: at most one of KEY, KEY_file and the environment variable. */
static rn_err_t resolve_secret(rn_config_t *cfg, const char *key, const char *env, char *why, size_t whylen) {
  char fkey[128];
  snprintf(fkey, sizeof fkey, "%s_file", key);
  const cfg_entry_t *e = find_entry(key), *fe = find_entry(fkey);
  char **val = (char **)((char *)cfg + e->offset);
  const char *file = *(char *const *)((const char *)cfg + fe->offset);
  const char *envval = getenv(env);
  int sources = ((*val)[0] != '\0') + (file[0] != '\0') + (envval != NULL && envval[0] != '\0');
  if (sources > 1) {
    char list[256] = "";
    size_t off = 0;
    if ((*val)[0] != '\0') off += (size_t)snprintf(list + off, sizeof list - off, "%s", key);
    if (file[0] != '\0') off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", off ? ", " : "", fkey);
    if (envval != NULL && envval[0] != '\0') snprintf(list + off, sizeof list - off, "%s$%s", off ? ", " : "", env);
    fail(why, whylen, "config: %s is given more than once (%s): set only one of them", key, list);
    return RN_EINVAL;
  }
  char *text = NULL;
  if (file[0] != '\0') {
    rn_err_t rc = read_secret_file(key, file, &text, why, whylen);
    if (rc != 0) return rc;
  } else if (envval != NULL && envval[0] != '\0') {
    text = rn_xstrdup(envval);
  } else {
    return 0;
  }
  char origin[160];
  snprintf(origin, sizeof origin, "from %s", file[0] ? fkey : env);
  rn_err_t rc = rn_config_set(cfg, key, text, origin, why, whylen);
  explicit_bzero(text, strlen(text));
  free(text);
  return rc;
}

rn_err_t rn_config_resolve_secrets(rn_config_t *cfg, char *why, size_t whylen) {
  rn_err_t rc = resolve_secret(cfg, "kinesis_credentials", "RUNNEL_KINESIS_CREDENTIALS", why, whylen);
  if (rc == 0) rc = resolve_secret(cfg, "rest_api_keys", "RUNNEL_REST_API_KEYS", why, whylen);
  return rc;
}
