/*
 * runnelctl — the admin and produce/consume CLI, a thin layer over
 * librunnel:
 *
 *   runnelctl [--broker HOST:PORT] [--json] <noun> <verb> ...
 *
 * Output: aligned tables for people; with --json one JSON document per
 * command (consume: one JSON object per record, NDJSON). Failures: one line
 * on stderr ("runnelctl: stream \"x\": stream not found (ENOSTREAM)") and a
 * non-zero exit status (1 for a failed operation, 2 for a usage error).
 *
 * `consume STREAM --group NAME` is a consumer-group member (librunnel's
 * rn_group_consumer: the broker assigns the shards, librunnel checkpoints);
 * `group ...` administers groups (list, describe with lag, create, delete,
 * reset).
 *
 * The parsers (durations, sizes, positions, ISO 8601, shard ids, the JSON
 * key field) are pure functions so tests/unit/client/test_runnelctl.c can
 * check them; that test compiles this file with RUNNELCTL_NO_MAIN and also
 * drives rn_ctl_main() against the mock broker.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runnel/runnel.h"

#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 2

/* ==== pure parsers ========================================================== */

/* "90m", "24h", "7d", "1h30m", "500ms", "2w"; "none"/"forever"/"0" = 0
 * (keep forever). A number needs a unit. Returns 0 or -1. */
static int parse_duration_ms(const char *s, int64_t *out) {
  if (s == NULL || *s == '\0') return -1;
  if (strcmp(s, "none") == 0 || strcmp(s, "forever") == 0 || strcmp(s, "0") == 0) {
    *out = 0;
    return 0;
  }
  int64_t total = 0;
  const char *p = s;
  while (*p) {
    if (!isdigit((unsigned char)*p)) return -1;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(p, &end, 10);
    if (errno || end == p) return -1;
    p = end;
    int64_t mult;
    if (strncmp(p, "ms", 2) == 0) {
      mult = 1;
      p += 2;
    } else if (*p == 's') {
      mult = 1000;
      p++;
    } else if (*p == 'm') {
      mult = 60000;
      p++;
    } else if (*p == 'h') {
      mult = 3600000;
      p++;
    } else if (*p == 'd') {
      mult = 86400000;
      p++;
    } else if (*p == 'w') {
      mult = 7 * 86400000LL;
      p++;
    } else {
      return -1; /* missing or unknown unit */
    }
    if (n > (unsigned long long)(INT64_MAX / mult) || total > INT64_MAX - (int64_t)n * mult) return -1;
    total += (int64_t)n * mult;
  }
  *out = total;
  return 0;
}

/* "10G", "512MiB", "1024": an integer with an optional suffix B, K, M, G, T
 * or P (then optionally "B" or "iB"), case-insensitive, powers of 1024;
 * "none"/"unlimited" = 0 (unlimited). Returns 0 or -1. */
static int parse_size_bytes(const char *s, int64_t *out) {
  if (s == NULL || *s == '\0') return -1;
  if (strcmp(s, "none") == 0 || strcmp(s, "unlimited") == 0) {
    *out = 0;
    return 0;
  }
  if (!isdigit((unsigned char)*s)) return -1;
  errno = 0;
  char *end;
  unsigned long long n = strtoull(s, &end, 10);
  if (errno) return -1;
  int shift = 0;
  switch (toupper((unsigned char)*end)) {
    case '\0': break;
    case 'B': shift = 0; break;
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    case 'P': shift = 50; break;
    default: return -1;
  }
  if (*end) {
    const char *rest = end + 1;
    if (toupper((unsigned char)*end) == 'B') {
      if (*rest) return -1;
    } else if (!(*rest == '\0' || strcasecmp(rest, "B") == 0 || strcasecmp(rest, "iB") == 0)) {
      return -1;
    }
  }
  if (n > ((unsigned long long)INT64_MAX >> shift)) return -1;
  *out = (int64_t)(n << shift);
  return 0;
}

static int parse_durability(const char *s, rn_durability_t *out) {
  if (s == NULL) return -1;
  if (strcmp(s, "sync") == 0) {
    *out = RN_DURABILITY_SYNC;
  } else if (strcmp(s, "interval") == 0) {
    *out = RN_DURABILITY_INTERVAL;
  } else if (strcmp(s, "none") == 0) {
    *out = RN_DURABILITY_NONE;
  } else {
    return -1;
  }
  return 0;
}

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  /* Howard Hinnant's algorithm: days since 1970-01-01 */
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i])) return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return 0;
}

/* ISO 8601: YYYY-MM-DD, optionally followed by THH:MM[:SS[.fff...]] (also a
 * space instead of T) and Z or ±HH:MM / ±HHMM; no zone = UTC. */
static int parse_iso8601_ms(const char *s, int64_t *out) {
  const char *p = s;
  int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
  if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d)) return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return -1;
  int64_t off_min = 0;
  if (*p == 'T' || *p == 't' || *p == ' ') {
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi)) return -1;
    if (*p == ':') {
      p++;
      if (digits(&p, 2, &sec)) return -1;
      if (*p == '.' || *p == ',') {
        p++;
        int nd = 0;
        ms = 0;
        while (isdigit((unsigned char)*p)) {
          if (nd < 3) ms = ms * 10 + (*p - '0');
          nd++;
          p++;
        }
        if (nd == 0) return -1;
        for (; nd < 3; nd++) ms *= 10;
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return -1;
    if (*p == 'Z' || *p == 'z') {
      p++;
    } else if (*p == '+' || *p == '-') {
      int sign = *p++ == '-' ? -1 : 1, oh, om;
      if (digits(&p, 2, &oh)) return -1;
      if (*p == ':') p++;
      if (digits(&p, 2, &om)) return -1;
      off_min = sign * (oh * 60 + om);
    }
  }
  if (*p != '\0') return -1;
  int64_t days = days_from_civil(y, mo, d);
  *out = ((days * 24 + h) * 60 + mi) * 60000LL + sec * 1000LL + ms - off_min * 60000LL;
  return 0;
}

/* --from: "earliest", "latest", an OFFSET (plain integer), or a TIMESTAMP:
 * "@<ms since the epoch>" or ISO 8601. */
static int parse_from(const char *s, rn_pos_kind_t *kind, int64_t *value) {
  if (s == NULL || *s == '\0') return -1;
  if (strcmp(s, "earliest") == 0) {
    *kind = RN_POS_EARLIEST;
    *value = 0;
    return 0;
  }
  if (strcmp(s, "latest") == 0) {
    *kind = RN_POS_LATEST;
    *value = 0;
    return 0;
  }
  const char *num = s[0] == '@' ? s + 1 : s;
  bool all_digits = *num != '\0';
  for (const char *p = num; *p; p++)
    if (!isdigit((unsigned char)*p)) all_digits = false;
  if (all_digits) {
    errno = 0;
    long long v = strtoll(num, NULL, 10);
    if (errno) return -1;
    *kind = s[0] == '@' ? RN_POS_TIMESTAMP : RN_POS_OFFSET;
    *value = v;
    return 0;
  }
  if (s[0] == '@') return -1;
  if (parse_iso8601_ms(s, value) == 0) {
    *kind = RN_POS_TIMESTAMP;
    return 0;
  }
  return -1;
}

/* "3" or "shardId-000000000003". */
static int parse_shard(const char *s, uint32_t *out) {
  if (s == NULL) return -1;
  if (strncmp(s, "shardId-", 8) == 0) s += 8;
  if (*s == '\0' || strlen(s) > 12) return -1;
  uint64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (!isdigit((unsigned char)*p)) return -1;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (v > UINT32_MAX) return -1;
  *out = (uint32_t)v;
  return 0;
}

/* The partition key of a JSON line: the value of the top-level field
 * `field` — a string as is, a number/true/false as its JSON text. On
 * success *key is malloc'd (caller frees). On failure why says what is
 * wrong with the line. Returns 0 or -1. */
static int extract_key_field(const char *line, size_t len, const char *field, char **key, size_t *keylen,
                             char *why, size_t whylen) {
  json_error_t jerr;
  json_t *doc = json_loadb(line, len, 0, &jerr);
  if (doc == NULL) {
    snprintf(why, whylen, "not JSON: %s", jerr.text);
    return -1;
  }
  int rc = -1;
  if (!json_is_object(doc)) {
    snprintf(why, whylen, "not a JSON object");
  } else {
    json_t *v = json_object_get(doc, field);
    if (v == NULL) {
      snprintf(why, whylen, "no field \"%s\"", field);
    } else if (json_is_string(v)) {
      *keylen = json_string_length(v);
      *key = malloc(*keylen + 1);
      if (*key) {
        memcpy(*key, json_string_value(v), *keylen + 1);
        rc = 0;
      }
    } else if (json_is_number(v) || json_is_boolean(v)) {
      *key = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
      if (*key) {
        *keylen = strlen(*key);
        rc = 0;
      }
    } else {
      snprintf(why, whylen, "field \"%s\" is not a string, number or boolean", field);
    }
  }
  json_decref(doc);
  return rc;
}

/* Inverse-ish of parse_duration_ms for tables: the largest unit that
 * divides evenly; 0 = "forever". */
static void format_duration(int64_t ms, char *buf, size_t n) {
  static const struct {
    int64_t ms;
    const char *u;
  } units[] = {{7 * 86400000LL, "w"}, {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
  if (ms <= 0) {
    snprintf(buf, n, "forever");
    return;
  }
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (ms % units[i].ms == 0) {
      snprintf(buf, n, "%" PRId64 "%s", ms / units[i].ms, units[i].u);
      return;
    }
  }
}

static void format_bytes(int64_t b, char *buf, size_t n) {
  static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (b <= 0) {
    snprintf(buf, n, "unlimited");
    return;
  }
  int i = 0;
  while (i < 5 && b % 1024 == 0) {
    b /= 1024;
    i++;
  }
  snprintf(buf, n, "%" PRId64 "%s", b, u[i]);
}

static void format_time(int64_t ms, char *buf, size_t n) {
  if (ms <= 0) {
    snprintf(buf, n, "-");
    return;
  }
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char tmp[32];
  strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, n, "%s.%03dZ", tmp, (int)(ms % 1000));
}

/* ==== output helpers ===================================================== */

typedef struct ctl {
  const char *broker;
  bool json;
  FILE *in, *out, *err;
  rn_client_t *cl;
} ctl_t;

/* One-line error: "runnelctl: <context>: <message> (<NAME>)[: detail]". */
static int ctl_fail(ctl_t *c, rn_err_t err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ctl_fail(ctl_t *c, rn_err_t err, const char *fmt, ...) {
  char ctx[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx, sizeof ctx, fmt, ap);
  va_end(ap);
  const char *detail = rn_last_error_message();
  bool show = detail[0] != '\0' && err != RN_ENOSTREAM && err != RN_EEXIST && err != RN_ENOSHARD &&
              err != RN_ENOGROUP;
  fprintf(c->err, "runnelctl: %s: %s (%s)%s%s\n", ctx, rn_strerror(err), rn_err_name(err), show ? ": " : "",
          show ? detail : "");
  return CTL_EXIT_FAIL;
}

static int usage_error(ctl_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(ctl_t *c, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(c->err, "runnelctl: %s (see --help)\n", msg);
  return CTL_EXIT_USAGE;
}

static void print_json(ctl_t *c, json_t *doc) {
  char *s = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
  if (s) {
    fprintf(c->out, "%s\n", s);
    free(s);
  }
  json_decref(doc);
}

/* A table: rows of cells, printed with columns padded to their widest. */
typedef struct {
  size_t ncols, nrows, cap;
  char **cells; /* nrows * ncols */
} table_t;

static void table_init(table_t *t, size_t ncols) {
  memset(t, 0, sizeof *t);
  t->ncols = ncols;
}

static void table_row(table_t *t, ...) {
  if (t->nrows == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 16;
    t->cells = realloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
    if (t->cells == NULL) abort();
  }
  va_list ap;
  va_start(ap, t);
  for (size_t i = 0; i < t->ncols; i++) {
    const char *s = va_arg(ap, const char *);
    t->cells[t->nrows * t->ncols + i] = strdup(s ? s : "");
  }
  va_end(ap);
  t->nrows++;
}

static void table_free(table_t *t) {
  for (size_t k = 0; k < t->nrows * t->ncols; k++) free(t->cells[k]);
  free(t->cells);
  memset(t, 0, sizeof *t);
}

static void table_print(table_t *t, FILE *out) {
  size_t w[16] = {0};
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t i = 0; i < t->ncols; i++) {
      size_t l = strlen(t->cells[r * t->ncols + i]);
      if (l > w[i]) w[i] = l;
    }
  for (size_t r = 0; r < t->nrows; r++) {
    for (size_t i = 0; i < t->ncols; i++) {
      const char *s = t->cells[r * t->ncols + i];
      if (i + 1 == t->ncols) {
        fprintf(out, "%s\n", s);
      } else {
        fprintf(out, "%-*s  ", (int)w[i], s);
      }
    }
  }
  table_free(t);
}

/* ==== help ====================================================================== */

static const char HELP_MAIN[] =
    "usage: runnelctl [--broker HOST:PORT] [--json] <noun> <verb> ...\n"
    "\n"
    "Administer a runnel broker, produce and consume records.\n"
    "\n"
    "commands:\n"
    "  stream create NAME --shards N [--retention D] [--retention-bytes S] [--durability M]\n"
    "  stream list\n"
    "  stream describe NAME\n"
    "  stream delete NAME\n"
    "  stream set-retention NAME [--retention D] [--retention-bytes S]\n"
    "  produce STREAM [--key-field FIELD]        one record per line of standard input\n"
    "  consume STREAM [--shard ID] [--from POS] [--follow] [--max N]\n"
    "  consume STREAM --group NAME [--from POS] [--follow] [--session-timeout MS] [--max N]\n"
    "                                            read as a member of a consumer group\n"
    "  offsets STREAM                            start and end offset of every shard\n"
    "  group list STREAM                         the stream's consumer groups\n"
    "  group describe STREAM GROUP               members, assignment, checkpoints, lag\n"
    "  group create STREAM GROUP [--from POS]\n"
    "  group delete STREAM GROUP\n"
    "  group reset STREAM GROUP --to POS [--shard N ...]\n"
    "\n"
    "global options:\n"
    "  --broker HOST:PORT   broker to talk to (default: $RUNNEL_BROKER, else 127.0.0.1:7400)\n"
    "  --json               machine-readable output: one JSON document (consume: one per record)\n"
    "  -h, --help           help; also after any noun or verb (runnelctl stream create --help)\n"
    "\n"
    "Exit status: 0 success, 1 a failed operation, 2 a usage error.\n";

static const char HELP_STREAM[] =
    "usage: runnelctl stream <verb> ...\n"
    "\n"
    "verbs:\n"
    "  create NAME --shards N [--retention D] [--retention-bytes S] [--durability sync|interval|none]\n"
    "  list                        every stream with its settings\n"
    "  describe NAME               settings, and every shard with its hash-key range and offsets\n"
    "  delete NAME                 delete the stream and its data\n"
    "  set-retention NAME [--retention D] [--retention-bytes S]\n"
    "\n"
    "Run 'runnelctl stream <verb> --help' for a verb's options.\n";

static const char HELP_CREATE[] =
    "usage: runnelctl stream create NAME --shards N [--retention D] [--retention-bytes S]\n"
    "                               [--durability sync|interval|none]\n"
    "\n"
    "  NAME                  [A-Za-z0-9_.-], 1 to 128 characters\n"
    "  --shards N            number of shards (each owns an equal slice of the hash-key space)\n"
    "  --retention D         keep records this long: 90m, 24h, 7d, 2w, 1h30m, or none (forever;\n"
    "                        the default)\n"
    "  --retention-bytes S   and at most this much per shard: 512M, 10G, 1T (powers of 1024),\n"
    "                        or none (the default)\n"
    "  --durability M        sync (default): acknowledged after fdatasync; interval: fdatasync\n"
    "                        periodically; none: page cache only\n";

static const char HELP_LIST[] = "usage: runnelctl stream list\n\nEvery stream with its shard count, retention and durability.\n";
static const char HELP_DESCRIBE[] =
    "usage: runnelctl stream describe NAME\n\n"
    "The stream's settings, and every shard with its hash-key range (decimal, as Kinesis),\n"
    "start and end offset and the time of its newest record.\n";
static const char HELP_DELETE[] = "usage: runnelctl stream delete NAME\n\nDelete the stream and all its data.\n";
static const char HELP_SETRET[] =
    "usage: runnelctl stream set-retention NAME [--retention D] [--retention-bytes S]\n\n"
    "Change the retention; an option left out keeps its current value.\n"
    "  --retention D         90m, 24h, 7d, 2w, 1h30m, or none (forever)\n"
    "  --retention-bytes S   per shard: 512M, 10G, 1T, or none (unlimited)\n";
static const char HELP_PRODUCE[] =
    "usage: runnelctl produce STREAM [--key-field FIELD]\n"
    "\n"
    "Send each line of standard input as one record (empty lines are skipped) and print\n"
    "\"produced N records to STREAM (M failed)\". The partition key is random per line, or,\n"
    "with --key-field, the value of FIELD in the line parsed as a JSON object; a line that is\n"
    "not JSON or lacks the field is reported on stderr and counts as failed. Exit status 1 when\n"
    "any line failed.\n";
static const char HELP_CONSUME[] =
    "usage: runnelctl consume STREAM [--shard ID] [--from POS] [--follow] [--max N]\n"
    "       runnelctl consume STREAM --group NAME [--from POS] [--follow] [--session-timeout MS]\n"
    "                                [--max N]\n"
    "\n"
    "Print the data of each record, one per line.\n"
    "  --shard ID    only this shard: an index (3) or a shard id (shardId-000000000003);\n"
    "                default: every shard\n"
    "  --from POS    earliest (default), latest, an OFFSET (a plain number), or a TIMESTAMP:\n"
    "                ISO 8601 (2024-05-01T12:00:00Z) or @MS (milliseconds since the epoch)\n"
    "  --follow      keep waiting for new records (until interrupted); without it, stop at\n"
    "                the end of every shard as it was when the command started\n"
    "  --max N       stop after N records\n"
    "With --json each record is one JSON object per line: shard, offset, timestamp, key, data\n"
    "(data_base64 / key_base64 instead when not UTF-8).\n"
    "\n"
    "With --group NAME, join consumer group NAME as a member: print the records of the shards\n"
    "the broker assigns to this member, checkpoint them as they are printed (at least once:\n"
    "after a crash the records since the last checkpoint are delivered again), and on exit\n"
    "commit and leave the group so its shards go to the other members at once. Assignment\n"
    "changes are reported on stderr (\"assigned shards 0,3,5\", \"revoked shards 1\").\n"
    "  --from POS    where the group starts if this join creates it: latest (default),\n"
    "                earliest or a TIMESTAMP; an existing group continues from its checkpoints\n"
    "  --follow      keep reading until SIGINT/SIGTERM; without it, leave and exit once every\n"
    "                assigned shard has been read to its end\n"
    "  --session-timeout MS  the broker frees this member's shards when it has not heard from\n"
    "                it for MS milliseconds (default 10000)\n"
    "  --max N       stop (commit and leave) after N records\n";

static const char HELP_GROUP[] =
    "usage: runnelctl group <verb> ...\n"
    "\n"
    "Consumer groups: the broker assigns a stream's shards to a group's members and keeps a\n"
    "checkpoint per shard. Members join with 'runnelctl consume STREAM --group NAME' or librunnel.\n"
    "\n"
    "verbs:\n"
    "  list STREAM                        the stream's groups with members and total lag\n"
    "  describe STREAM GROUP              members, assignment, checkpoints and lag per shard\n"
    "  create STREAM GROUP [--from POS]   create a group without joining it\n"
    "  delete STREAM GROUP                delete a group (only while it has no members)\n"
    "  reset STREAM GROUP --to POS [--shard N ...]\n"
    "                                     move checkpoints (only while it has no members)\n"
    "\n"
    "Run 'runnelctl group <verb> --help' for a verb's options.\n";
static const char HELP_GROUP_LIST[] =
    "usage: runnelctl group list STREAM\n\n"
    "The stream's consumer groups, each with its number of members and its lag in records\n"
    "(the sum over its shards) and in ms (the largest of its shards).\n";
static const char HELP_GROUP_DESCRIBE[] =
    "usage: runnelctl group describe STREAM GROUP\n"
    "\n"
    "The group's members (id, client, epoch, shards held, pending shards, session timeout, ms\n"
    "since the last heartbeat) and its shards (owner, checkpoint = next offset to read, start\n"
    "and end offset, lag in records = end - checkpoint, lag in ms = age of the newest record\n"
    "minus age of the last checkpointed one, '-' when unknown, and the last commit's time).\n"
    "With --json every number is there: lag_records and lag_ms per shard, and totals\n"
    "(lag_records summed, lag_ms the largest known).\n";
static const char HELP_GROUP_CREATE[] =
    "usage: runnelctl group create STREAM GROUP [--from POS]\n"
    "\n"
    "Create a consumer group without joining it.\n"
    "  --from POS    where it starts: latest (default), earliest, or a TIMESTAMP: ISO 8601\n"
    "                (2026-11-22T10:00:00Z) or @MS (milliseconds since the epoch)\n";
static const char HELP_GROUP_DELETE[] =
    "usage: runnelctl group delete STREAM GROUP\n\n"
    "Delete a consumer group and its checkpoints; refused (EGROUPACTIVE) while it has members.\n";
static const char HELP_GROUP_RESET[] =
    "usage: runnelctl group reset STREAM GROUP --to POS [--shard N ...]\n"
    "\n"
    "Move the group's checkpoints; refused (EGROUPACTIVE) while the group has members.\n"
    "Creates the group when it does not exist. Prints the shards afterwards.\n"
    "  --to POS      earliest, latest, a TIMESTAMP or an OFFSET:\n"
    "                  TIMESTAMP  ISO 8601 (2026-11-22T10:00:00Z) or @MS (ms since the epoch):\n"
    "                             the first record at or after that time\n"
    "                  OFFSET     a bare integer (1500): the same offset in every chosen shard\n"
    "  --shard N     only this shard: an index or shardId-NNNNNNNNNNNN; repeat the option or\n"
    "                give a comma-separated list (--shard 0,3); default: every shard\n";
static const char HELP_OFFSETS[] = "usage: runnelctl offsets STREAM\n\nStart and end offset of every shard.\n";

static bool is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

/* ==== option parsing for one command ====================================== */

typedef struct {
  const char *name;   /* "--shards" */
  bool has_arg;
  const char **value; /* set to the argument (or "" for flags) */
} opt_t;

/* Split args into positionals and options. Returns 0, -1 after printing a
 * usage error, or 1 when --help was given (help printed). */
static int parse_opts(ctl_t *c, int argc, char **argv, const opt_t *opts, const char **pos, int maxpos, int *npos,
                      const char *help) {
  *npos = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (is_help(a)) {
      fputs(help, c->out);
      return 1;
    }
    if (strncmp(a, "--", 2) == 0) {
      const char *eq = strchr(a, '=');
      size_t nl = eq ? (size_t)(eq - a) : strlen(a);
      const opt_t *o = NULL;
      for (const opt_t *k = opts; k && k->name; k++)
        if (strlen(k->name) == nl && strncmp(k->name, a, nl) == 0) o = k;
      if (o == NULL) {
        usage_error(c, "unknown option %.*s", (int)nl, a);
        return -1;
      }
      if (o->has_arg) {
        if (eq) {
          *o->value = eq + 1;
        } else if (i + 1 < argc) {
          *o->value = argv[++i];
        } else {
          usage_error(c, "%s needs a value", o->name);
          return -1;
        }
      } else {
        if (eq) {
          usage_error(c, "%s takes no value", o->name);
          return -1;
        }
        *o->value = "";
      }
      continue;
    }
    if (*npos >= maxpos) {
      usage_error(c, "unexpected argument \"%s\"", a);
      return -1;
    }
    pos[(*npos)++] = a;
  }
  return 0;
}

static rn_err_t client(ctl_t *c) {
  if (c->cl) return 0;
  rn_client_conf_t conf;
  rn_client_conf_init(&conf);
  conf.broker = c->broker;
  conf.request_timeout_ms = 30000;
  rn_err_t err = rn_client_new(&conf, &c->cl);
  if (err) ctl_fail(c, err, "broker %s", c->broker);
  return err;
}

/* ==== stream ====================================================================== */

static json_t *desc_json(const rn_stream_desc_t *d, bool with_shards) {
  json_t *o = json_object();
  json_object_set_new(o, "name", json_string(d->name));
  json_object_set_new(o, "status", json_string(d->status));
  json_object_set_new(o, "shard_count", json_integer((json_int_t)d->shard_count));
  json_object_set_new(o, "retention_ms", json_integer(d->retention_ms));
  json_object_set_new(o, "retention_bytes", json_integer(d->retention_bytes));
  const char *dn = rn_durability_name(d->durability);
  json_object_set_new(o, "durability", json_string(dn ? dn : "unknown"));
  json_object_set_new(o, "created_ms", json_integer(d->created_ms));
  if (with_shards) {
    json_t *a = json_array();
    for (size_t i = 0; i < d->shard_count; i++) {
      const rn_shard_info_t *s = &d->shards[i];
      char ks[RN_HASH_KEY_STRLEN], ke[RN_HASH_KEY_STRLEN];
      rn_hash_key_format(s->hash_key_start, ks);
      rn_hash_key_format(s->hash_key_end, ke);
      json_t *so = json_object();
      json_object_set_new(so, "index", json_integer(s->index));
      json_object_set_new(so, "shard_id", json_string(s->shard_id));
      json_object_set_new(so, "hash_key_start", json_string(ks));
      json_object_set_new(so, "hash_key_end", json_string(ke));
      json_object_set_new(so, "start_offset", json_integer((json_int_t)s->start_offset));
      json_object_set_new(so, "end_offset", json_integer((json_int_t)s->end_offset));
      json_object_set_new(so, "last_append_ms", json_integer(s->last_append_ms));
      json_array_append_new(a, so);
    }
    json_object_set_new(o, "shards", a);
  }
  return o;
}

static void print_desc(ctl_t *c, const rn_stream_desc_t *d) {
  if (c->json) {
    print_json(c, desc_json(d, true));
    return;
  }
  char ret[32], retb[32], created[40];
  format_duration(d->retention_ms, ret, sizeof ret);
  format_bytes(d->retention_bytes, retb, sizeof retb);
  format_time(d->created_ms, created, sizeof created);
  const char *dn = rn_durability_name(d->durability);
  fprintf(c->out, "stream:           %s\n", d->name);
  fprintf(c->out, "status:           %s\n", d->status);
  fprintf(c->out, "shards:           %zu\n", d->shard_count);
  fprintf(c->out, "retention:        %s\n", ret);
  fprintf(c->out, "retention-bytes:  %s\n", retb);
  fprintf(c->out, "durability:       %s\n", dn ? dn : "unknown");
  fprintf(c->out, "created:          %s\n\n", created);
  table_t t;
  table_init(&t, 6);
  table_row(&t, "SHARD", "HASH-KEY-START", "HASH-KEY-END", "START", "END", "LAST-APPEND");
  for (size_t i = 0; i < d->shard_count; i++) {
    const rn_shard_info_t *s = &d->shards[i];
    char ks[RN_HASH_KEY_STRLEN], ke[RN_HASH_KEY_STRLEN], so[24], eo[24], la[40];
    rn_hash_key_format(s->hash_key_start, ks);
    rn_hash_key_format(s->hash_key_end, ke);
    snprintf(so, sizeof so, "%" PRIu64, s->start_offset);
    snprintf(eo, sizeof eo, "%" PRIu64, s->end_offset);
    format_time(s->last_append_ms, la, sizeof la);
    table_row(&t, s->shard_id, ks, ke, so, eo, la);
  }
  table_print(&t, c->out);
}

static int cmd_stream_create(ctl_t *c, int argc, char **argv) {
  const char *shards = NULL, *ret = NULL, *retb = NULL, *dur = NULL, *pos[1];
  int npos;
  const opt_t opts[] = {{"--shards", true, &shards},
                        {"--retention", true, &ret},
                        {"--retention-bytes", true, &retb},
                        {"--durability", true, &dur},
                        {NULL, false, NULL}};
  int rc = parse_opts(c, argc, argv, opts, pos, 1, &npos, HELP_CREATE);
  if (rc) return rc > 0 ? 0 : CTL_EXIT_USAGE;
  if (npos != 1) return usage_error(c, "stream create: NAME is required");
  rn_stream_config_t sc = {.name = pos[0], .durability = RN_DURABILITY_SYNC};
  if (shards == NULL) return usage_error(c, "stream create: --shards N is required");
  uint32_t n;
  if (parse_shard(shards, &n) != 0 || strncmp(shards, "shardId-", 8) == 0 || n == 0)
    return usage_error(c, "--shards: \"%s\" is not a positive number", shards);
  sc.shard_count = n;
  if (ret && parse_duration_ms(ret, &sc.retention_ms) != 0)
    return usage_error(c, "--retention: \"%s\" is not a duration (like 90m, 24h, 7d or none)", ret);
  if (retb && parse_size_bytes(retb, &sc.retention_bytes) != 0)
    return usage_error(c, "--retention-bytes: \"%s\" is not a size (like 512M, 10G or none)", retb);
  if (dur && parse_durability(dur, &sc.durability) != 0)
    return usage_error(c, "--durability: \"%s\" is not sync, interval or none", dur);
  if (client(c)) return CTL_EXIT_FAIL;
  rn_stream_desc_t *d = NULL;
  rn_err_t err = rn_stream_create(c->cl, &sc, &d);
  if (err) return ctl_fail(c, err, "stream \"%s\"", sc.name);
  if (c->json) {
    print_json(c, desc_json(d, true));
  } else {
    fprintf(c->out, "created stream \"%s\" with %zu shard%s\n", d->name, d->shard_count,
            d->shard_count == 1 ? "" : "s");
  }
  rn_stream_desc_free(d);
  return 0;
}

static int cmd_stream_list(ctl_t *c, int argc, char **argv) {
  const char *pos[1];
  int npos;
  int rc = parse_opts(c, argc, argv, NULL, pos, 0, &npos, HELP_LIST);
  if (rc) return rc > 0 ? 0 : CTL_EXIT_USAGE;
  if (client(c)) return CTL_EXIT_FAIL;
  rn_stream_names_t *names = NULL;
  rn_err_t err = rn_stream_list(c->cl, &names);
  if (err) return ctl_fail(c, err, "list streams");
  json_t *arr = c->json ? json_array() : NULL;
  table_t t;
  table_init(&t, 6);
  table_row(&t, "NAME", "SHARDS", "RETENTION", "RETENTION-BYTES", "DURABILITY", "STATUS");
  for (size_t i = 0; i < names->count; i++) {
    rn_stream_desc_t *d = NULL;
    err = rn_stream_describe(c->cl, names->names[i], &d);
    if (err == RN_ENOSTREAM) continue; /* deleted meanwhile */
    if (err) {
      ctl_fail(c, err, "stream \"%s\"", names->names[i]);
      table_free(&t);
      if (arr) json_decref(arr);
      rn_stream_names_free(names);
      return CTL_EXIT_FAIL;
    }
    if (arr) {
      json_array_append_new(arr, desc_json(d, false));
    } else {
      char sh[16], ret[32], retb[32];
      snprintf(sh, sizeof sh, "%zu", d->shard_count);
      format_duration(d->retention_ms, ret, sizeof ret);
      format_bytes(d->retention_bytes, retb, sizeof retb);
      const char *dn = rn_durability_name(d->durability);
      table_row(&t, d->name, sh, ret, retb, dn ? dn : "unknown", d->status);
    }
    rn_stream_desc_free(d);
  }
  rn_stream_names_free(names);
  if (arr) {
    json_t *o = json_object();
    json_object_set_new(o, "streams", arr);
    print_json(c, o);
    table_free(&t);
  } else if (t.nrows == 1) {
    table_free(&t);
    fprintf(c->out, "no streams\n");
  } else {
    table_print(&t, c->out);
  }
  return 0;
}

static int cmd_stream_describe(ctl_t *c, int argc, char **argv) {
  const char *pos[1];
  int npos;
  int rc = parse_opts(c, argc, argv, NULL, pos, 1, &npos, HELP_DESCRIBE);
  if (rc) return rc > 0 ? 0 : CTL_EXIT_USAGE;
  if (npos != 1) return usage_error(c, "stream describe: NAME is required");
  if (client(c)) return CTL_EXIT_FAIL;
  rn_stream_desc_t *d = NULL;
  rn_err_t err = rn_stream_describe(c->cl, pos[0], &d);
  if (err) return ctl_fail(c, err, "stream \"%s\"", pos[0]);
  print_desc(c, d);
  rn_stream_desc_free(d);
  return 0;
}

static int cmd_stream_delete(ctl_t *c, int argc, char **argv) {
  const char *pos[1];
  int npos;
  int rc = parse_opts(c, argc, argv, NULL, pos, 1, &npos, HELP_DELETE);
  if (rc) return rc > 0 ? 0 : CTL_EXIT_USAGE;
  if (npos != 1) return usage_error(c, "stream delete: NAME is required");
  if (client(c)) return CTL_EXIT_FAIL;
  rn_err_t err = rn_stream_delete(c->cl, pos[0]);
  if (err) return ctl_fail(c, err, "stream \"%s\"", pos[0]);
  if (c->json) {
    json_t *o = json_object();
    json_object_set_new(o, "deleted", json_string(pos[0]));
    print_json(c, o);
  } else {
    fprintf(c->out, "deleted stream \"%s\"\n", pos[0]);
  }
  return 0;
}

static int cmd_stream_set_retention(ctl_t *c, int argc, char **argv) {
  const char *ret = NULL, *retb = NULL, *pos[1];
  int npos;
  const opt_t opts[] = {{"--retention", true, &ret}, {"--retention-bytes", true, &retb}, {NULL, false, NULL}};
  int rc = parse_opts(c, argc, argv, opts, pos, 1, &npos, HELP_SETRET);
  if (rc) return rc > 0 ? 0 : CTL_EXIT_USAGE;
  if (npos != 1) return usage_error(c, "stream set-retention: NAME is required");
  if (ret == NULL && retb == NULL) return usage_error(c, "stream set-retention: give --retention and/or --retention-bytes");
  int64_t ms = 0, bytes = 0;
  if (ret && parse_duration_ms(ret, &ms) != 0)
    return usage_error(c, "--retention: \"%s\" is not a duration (like 90m, 24h, 7d or none)", ret);
  if (retb && parse_size_bytes(retb, &bytes) != 0)
    return usage_error(c, "--retention-bytes: \"%s\" is not a size (like 512M, 10G or none)", retb);
  if (client(c)) return CTL_EXIT_FAIL;
  if (ret == NULL || retb == NULL) { /* keep the other value */
    rn_stream_desc_t *cur = NULL;
    rn_err_t err = rn_stream_describe(c->cl, pos[0], &cur);
    if (err) return ctl_fail(c, err, "stream \"%s\"", pos[0]);
    if (ret == NULL) ms = cur->retention_ms;
    if (retb == NULL) bytes = cur->retention_bytes;
    rn_stream_desc_free(cur);
  }
  rn_stream_desc_t *d = NULL;
  rn_err_t err = rn_stream_set_retention(c->cl, pos[0], ms, bytes, &d);
  if (err) return ctl_fail(c, err, "stream \"%s\"", pos[0]);
  if (c->json) {
    print_json(c, desc_json(d, false));
  } else {
    char a[32], b[32];
    format_duration(d->retention_ms, a, sizeof a);
    format_bytes(d->retention_bytes, b, sizeof b);
    fprintf(c->out, "stream \"%s\": retention %s, retention-bytes %s\n", d->name, a, b);
  }
  rn_stream_desc_free(d);
  return 0;
}

static int cmd_stream(ctl_t *c, int argc, char **argv) {
  if (argc == 0) {
    fputs(HELP_STREAM, c->err);
    return CTL_EXIT_USAGE;
  }
  const char *verb = argv[0];
  if (is_help(verb)) {
    fputs(HELP_STREAM, c->out);
    return 0;
  }
  if (strcmp(verb, "create") == 0) return cmd_stream_create(c, argc - 1, argv + 1);
  if (strcmp(verb, "list") == 0 || strcmp(verb, "ls") == 0) return cmd_stream_list(c, argc - 1, argv + 1);
  if (strcmp(verb, "describe") == 0) return cmd_stream_describe(c, argc - 1, argv + 1);
  if (strcmp(verb, "delete") == 0) return cmd_stream_delete(c, argc - 1, argv + 1);
  if (strcmp(verb, "set-retention") == 0) return cmd_stream_set_retention(c, argc - 1, argv + 1);
  return usage_error(c, "unknown verb \"stream %s\"", verb);
}

/* ==== produce ===================================================================== */

typedef struct {
  ctl_t *c;
  atomic_ulong ok;
  atomic_ulong failed;
  pthread_mutex_t err_mu; /* one writer of error lines at a time */
} produce_state_t;

static produce_state_t *g_produce;

static void on_produced(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  (void)shard;
  (void)offset;
  produce_state_t *ps = g_produce;
  if (err == 0) {
    atomic_fetch_add(&ps->ok, 1);
    return;
  }
  atomic_fetch_add(&ps->failed, 1);
  pthread_mutex_lock(&ps->err_mu);
  fprintf(ps->c->err, "runnelctl: line %lu: %s (%s)\n", (unsigned long)(uintptr_t)opaque, rn_strerror(err),
          rn_err_name(err));
  pthread_mutex_unlock(&ps->err_mu);
}

static uint64_t rand_state(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
  return s ? s : 0x9e3779b97f4a7c15ULL;
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static int cmd_produce(ctl_t *c, int argc, char **argv) {
  const char *field = NULL, *pos[1];
  int npos;
  const opt_t opts[] = {{"--key-field", true, &field}, {NULL, false, NULL}};
  int rc = parse_opts(c, argc, argv, opts, pos, 1, &npos, HELP_PRODUCE);
  if (rc) return rc > 0 ? 0 : CTL_EXIT_USAGE;
  if (npos != 1) return usage_error(c, "produce: STREAM is required");
  const char *stream = pos[0];
  if (client(c)) return CTL_EXIT_FAIL;
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.delivery_timeout_ms = 30000;
  pc.close_timeout_ms = 60000;
  rn_producer_t *p = NULL;
  rn_err_t err = rn_producer_new(c->cl, &pc, &p);
  if (err) return ctl_fail(c, err, "produce to \"%s\"", stream);
  produce_state_t ps = {.c = c};
  atomic_init(&ps.ok, 0);
  atomic_init(&ps.failed, 0);
  pthread_mutex_init(&ps.err_mu, NULL);
  g_produce = &ps;
  uint64_t rs = rand_state();
  unsigned long line_no = 0, bad_lines = 0;
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int status = 0;
  while ((n = getline(&line, &cap, c->in)) >= 0) {
    line_no++;
    if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
    if (n > 0 && line[n - 1] == '\r') line[--n] = '\0';
    if (n == 0) continue;
    char *key = NULL;
    size_t keylen = 0;
    char rkey[17];
    if (field) {
      char why[200];
      if (extract_key_field(line, (size_t)n, field, &key, &keylen, why, sizeof why) != 0) {
        pthread_mutex_lock(&ps.err_mu);
        fprintf(c->err, "runnelctl: line %lu: %s\n", line_no, why);
        pthread_mutex_unlock(&ps.err_mu);
        bad_lines++;
        continue;
      }
    } else {
      snprintf(rkey, sizeof rkey, "%016" PRIx64, xorshift(&rs));
      key = rkey;
      keylen = 16;
    }
    err = rn_producer_send(p, stream, key, keylen, line, (size_t)n, on_produced, (void *)(uintptr_t)line_no);
    if (key != rkey) free(key);
    if (err) {
      if (err == RN_ENOSTREAM || err == RN_ECONNECTION || err == RN_ECLOSED || err == RN_EBADREQUEST) {
        ctl_fail(c, err, "stream \"%s\"", stream);
        status = CTL_EXIT_FAIL;
        break; /* every later line would fail the same way */
      }
      pthread_mutex_lock(&ps.err_mu);
      fprintf(c->err, "runnelctl: line %lu: %s (%s)\n", line_no, rn_strerror(err), rn_err_name(err));
      pthread_mutex_unlock(&ps.err_mu);
      bad_lines++;
    }
  }
  free(line);
  rn_producer_destroy(p); /* flushes; every callback has run after this */
  g_produce = NULL;
  pthread_mutex_destroy(&ps.err_mu);
  unsigned long ok = atomic_load(&ps.ok), failed = atomic_load(&ps.failed) + bad_lines;
  if (status == 0) {
    if (c->json) {
      json_t *o = json_object();
      json_object_set_new(o, "stream", json_string(stream));
      json_object_set_new(o, "produced", json_integer((json_int_t)ok));
      json_object_set_new(o, "failed", json_integer((json_int_t)failed));
      print_json(c, o);
    } else {
      fprintf(c->out, "produced %lu record%s to %s (%lu failed)\n", ok, ok == 1 ? "" : "s", stream, failed);
    }
  }
  if (failed) status = CTL_EXIT_FAIL;
  return status;
}

/* ==== consume ===================================================================== */

static volatile sig_atomic_t g_stop;
static void on_sigint(int sig) {
  (void)sig;
  g_stop = 1;
}

typedef struct {
  ctl_t *c;
  const char *stream;
  pthread_mutex_t out_mu;
  uint64_t max; /* 0 = no limit */
  atomic_ulong printed;
  atomic_bool done; /* max reached or a failure */
  bool follow;
  int status;
} consume_state_t;

typedef struct {
  consume_state_t *cs;
  uint32_t shard;
  uint64_t from; /* resolved start offset */
  uint64_t end;  /* stop here unless following */
  pthread_t th;
} shard_job_t;

static bool valid_utf8(const uint8_t *s, size_t n) {
  json_t *j = json_stringn((const char *)s, n);
  bool ok = j != NULL;
  json_decref(j);
  return ok;
}

static void b64(const uint8_t *s, size_t n, char **out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *o = malloc((n + 2) / 3 * 4 + 1), *p = o;
  if (o == NULL) abort();
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
    *p++ = tbl[v >> 18 & 63];
    *p++ = tbl[v >> 12 & 63];
    *p++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
    *p++ = i + 2 < n ? tbl[v & 63] : '=';
  }
  *p = '\0';
  *out = o;
}

static void json_bytes(json_t *o, const char *name, const uint8_t *s, size_t n) {
  if (valid_utf8(s, n)) {
    json_object_set_new(o, name, json_stringn((const char *)s, n));
  } else {
    char k[32], *v;
    snprintf(k, sizeof k, "%s_base64", name);
    b64(s, n, &v);
    json_object_set_new(o, k, json_string(v));
    free(v);
  }
}

/* Print one record; false when --max is reached. */
static bool emit(consume_state_t *cs, uint32_t shard, const rn_record_t *rec) {
  pthread_mutex_lock(&cs->out_mu);
  if (cs->max && atomic_load(&cs->printed) >= cs->max) {
    pthread_mutex_unlock(&cs->out_mu);
    return false;
  }
  if (cs->c->json) {
    json_t *o = json_object();
    json_object_set_new(o, "shard", json_integer(shard));
    json_object_set_new(o, "offset", json_integer((json_int_t)rec->offset));
    json_object_set_new(o, "timestamp", json_integer(rec->timestamp));
    json_bytes(o, "key", rec->key, rec->key_len);
    json_bytes(o, "data", rec->value, rec->value_len);
    char *s = json_dumps(o, JSON_COMPACT);
    fprintf(cs->c->out, "%s\n", s);
    free(s);
    json_decref(o);
  } else {
    fwrite(rec->value, 1, rec->value_len, cs->c->out);
    fputc('\n', cs->c->out);
  }
  if (cs->follow) fflush(cs->c->out);
  unsigned long n = atomic_fetch_add(&cs->printed, 1) + 1;
  pthread_mutex_unlock(&cs->out_mu);
  return !(cs->max && n >= cs->max);
}

static void *consume_shard(void *arg) {
  shard_job_t *j = arg;
  consume_state_t *cs = j->cs;
  rn_consumer_t *con;
  rn_err_t err = rn_consumer_new(cs->c->cl, cs->stream, j->shard, RN_POS_OFFSET, (int64_t)j->from, &con);
  int retries = 0;
  while (!err && !atomic_load(&cs->done) && !g_stop) {
    uint64_t pos = 0;
    if (!cs->follow && rn_consumer_position(con, &pos) && pos >= j->end) break;
    const rn_record_t *rec;
    err = rn_consumer_poll(con, cs->follow ? 500 : 1000, &rec);
    if (err == RN_EAGAIN) {
      err = 0;
      continue;
    }
    if (err && rn_err_retriable(err) && (cs->follow || retries < 5)) {
      retries++;
      err = 0;
      continue;
    }
    if (err) break;
    retries = 0;
    if (!cs->follow && rec->offset >= j->end) break;
    if (!emit(cs, j->shard, rec)) {
      atomic_store(&cs->done, true);
      break;
    }
  }
  if (err) {
    pthread_mutex_lock(&cs->out_mu);
    char shard_id[32];
    snprintf(shard_id, sizeof shard_id, "shardId-%012u", j->shard);
    ctl_fail(cs->c, err, "stream \"%s\" %s", cs->stream, shard_id);
    cs->status = CTL_EXIT_FAIL;
    pthread_mutex_unlock(&cs->out_mu);
    atomic_store(&cs->done, true);
  }
  rn_consumer_destroy(con);
  return NULL;
}

static int cmd_group_consume(ctl_t *c, const char *stream, const char *group, const char *from, bool follow,
                             uint64_t maxn, const char *session);

static int cmd_consume(ctl_t *c, int argc, char **argv) {
  const char *shard = NULL, *from = NULL, *follow = NULL, *max = NULL, *group = NULL, *session = NULL, *pos[1];
  int npos;
  const opt_t opts[] = {{"--shard", true, &shard},
                        {"--from", true, &from},
                        {"--follow", false, &follow},
                        {"--max", true, &max},
                        {"--group", true, &group},
                        {"--session-timeout", true, &session},
                        {NULL, false, NULL}};
  int rc = parse_opts(c, argc, argv, opts, pos, 1, &npos, HELP_CONSUME);
  if (rc) return rc > 0 ? 0 : CTL_EXIT_USAGE;
  if (npos != 1) return usage_error(c, "consume: STREAM is required");
  if (group == NULL && session)
    return usage_error(c, "consume: --session-timeout needs --group");
  if (group && shard)
    return usage_error(c, "consume: --shard and --group exclude each other (the group assigns the shards)");
  uint32_t only = 0;
  if (shard && parse_shard(shard, &only) != 0)
    return usage_error(c, "--shard: \"%s\" is not a shard index or shardId-NNNNNNNNNNNN", shard);
  rn_pos_kind_t kind = RN_POS_EARLIEST;
  int64_t value = 0;
  if (from && parse_from(from, &kind, &value) != 0)
    return usage_error(c, "--from: \"%s\" is not earliest, latest, an offset, @MS or an ISO 8601 time", from);
  uint64_t maxn = 0;
  if (max) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(max, &end, 10);
    if (errno || *end || !isdigit((unsigned char)max[0]) || v == 0)
      return usage_error(c, "--max: \"%s\" is not a positive number", max);
    maxn = v;
  }
  if (group) return cmd_group_consume(c, pos[0], group, from, follow != NULL, maxn, session);
  if (client(c)) return CTL_EXIT_FAIL;
  const char *stream = pos[0];
  /* where to start in each shard, and where "the end" is as of now; an
   * OFFSET applies to the chosen shard(s) as given */
  rn_offsets_t *offs = NULL;
  rn_err_t err = rn_stream_list_offsets(c->cl, stream, kind == RN_POS_OFFSET ? RN_POS_EARLIEST : kind, value, &offs);
  if (err) return ctl_fail(c, err, "stream \"%s\"", stream);
  consume_state_t cs = {.c = c, .stream = stream, .max = maxn, .follow = follow != NULL};
  atomic_init(&cs.printed, 0);
  atomic_init(&cs.done, false);
  pthread_mutex_init(&cs.out_mu, NULL);
  shard_job_t *jobs = calloc(offs->count ? offs->count : 1, sizeof *jobs);
  size_t njobs = 0;
  bool found = false;
  for (size_t i = 0; i < offs->count; i++) {
    const rn_shard_offsets_t *so = &offs->shards[i];
    if (shard && so->shard != only) continue;
    found = true;
    if (so->err) {
      rn_offsets_free(offs);
      free(jobs);
      pthread_mutex_destroy(&cs.out_mu);
      return ctl_fail(c, so->err, "stream \"%s\" shardId-%012u", stream, so->shard);
    }
    uint64_t start = kind == RN_POS_OFFSET ? (uint64_t)value : so->offset;
    if (!cs.follow && start >= so->end_offset) continue; /* nothing to read */
    jobs[njobs].cs = &cs;
    jobs[njobs].shard = so->shard;
    jobs[njobs].from = start;
    jobs[njobs].end = so->end_offset;
    njobs++;
  }
  rn_offsets_free(offs);
  if (shard && !found) {
    free(jobs);
    pthread_mutex_destroy(&cs.out_mu);
    fprintf(c->err, "runnelctl: stream \"%s\" shardId-%012u: %s (%s)\n", stream, only, rn_strerror(RN_ENOSHARD),
            rn_err_name(RN_ENOSHARD));
    return CTL_EXIT_FAIL;
  }
  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  g_stop = 0;
  if (cs.follow) {
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  if (cs.follow && njobs > 1) {
    for (size_t i = 0; i < njobs; i++) pthread_create(&jobs[i].th, NULL, consume_shard, &jobs[i]);
    for (size_t i = 0; i < njobs; i++) pthread_join(jobs[i].th, NULL);
  } else {
    for (size_t i = 0; i < njobs && !atomic_load(&cs.done); i++) consume_shard(&jobs[i]);
  }
  if (cs.follow) {
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
  }
  fflush(c->out);
  free(jobs);
  pthread_mutex_destroy(&cs.out_mu);
  return cs.status;
}

/* ==== consume --group ============================================================== */

/* "0,3,5" for assignment messages and tables; "-" for none. */
static void format_shard_list(const uint32_t *shards, size_t n, char *buf, size_t cap) {
  size_t at = 0;
  buf[0] = '\0';
  if (n == 0) {
    snprintf(buf, cap, "-");
    return;
  }
  for (size_t i = 0; i < n && at < cap; i++) {
    int w = snprintf(buf + at, cap - at, "%s%u", i ? "," : "", shards[i]);
    if (w < 0) break;
    at += (size_t)w;
  }
  if (at >= cap && cap > 4) snprintf(buf + cap - 4, 4, "...");
}

static void report_shards(ctl_t *c, const char *what, const uint32_t *shards, size_t n) {
  if (n == 0) return;
  char list[1024];
  format_shard_list(shards, n, list, sizeof list);
  fprintf(c->err, "%s shard%s %s\n", what, n == 1 ? "" : "s", list);
  fflush(c->err);
}

static void on_group_assigned(void *arg, const uint32_t *shards, size_t n) { report_shards(arg, "assigned", shards, n); }
static void on_group_revoked(void *arg, const uint32_t *shards, size_t n) { report_shards(arg, "revoked", shards, n); }

/* A session timeout: a bare number of milliseconds or a duration (10s). */
static int parse_session_ms(const char *s, uint32_t *out) {
  int64_t ms;
  bool plain = *s != '\0';
  for (const char *p = s; *p; p++)
    if (!isdigit((unsigned char)*p)) plain = false;
  if (plain) {
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno || v > UINT32_MAX) return -1;
    ms = (int64_t)v;
  } else if (parse_duration_ms(s, &ms) != 0 || ms > UINT32_MAX) {
    return -1;
  }
  if (ms <= 0) return -1;
  *out = (uint32_t)ms;
  return 0;
}

/* Join the group, print the assigned shards' records, commit as it goes
 * (librunnel's auto-commit), and close (commit + leave) at the end: once
 * drained without --follow, at SIGINT/SIGTERM with it, or after --max. */
static int cmd_group_consume(ctl_t *c, const char *stream, const char *group, const char *from, bool follow,
                             uint64_t maxn, const char *session) {
  rn_group_conf_t conf;
  rn_group_conf_init(&conf);
  if (from) {
    rn_pos_kind_t kind;
    int64_t value;
    if (parse_from(from, &kind, &value) != 0 || kind == RN_POS_OFFSET)
      return usage_error(c, "--from with --group: \"%s\" is not earliest, latest, @MS or an ISO 8601 time", from);
    conf.start_kind = kind;
    conf.start_value = value;
  }
  if (session && parse_session_ms(session, &conf.session_timeout_ms) != 0)
    return usage_error(c, "--session-timeout: \"%s\" is not a positive number of milliseconds", session);
  conf.client_id = "runnelctl";
  conf.on_assigned = on_group_assigned;
  conf.on_revoked = on_group_revoked;
  conf.cb_arg = c;
  if (client(c)) return CTL_EXIT_FAIL;
  /* Interrupted (also without --follow): commit what was printed and leave. */
  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  g_stop = 0;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  rn_group_consumer_t *gc = NULL;
  rn_err_t err = rn_group_consumer_new(c->cl, stream, group, &conf, &gc);
  if (err) {
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
  }
  consume_state_t cs = {.c = c, .stream = stream, .max = maxn, .follow = follow};
  atomic_init(&cs.printed, 0);
  atomic_init(&cs.done, false);
  pthread_mutex_init(&cs.out_mu, NULL);
  int retries = 0;
  while (!g_stop) {
    const rn_record_t *rec;
    uint32_t shard = 0;
    err = rn_group_poll(gc, follow ? 500 : 200, &rec, &shard);
    if (err == RN_EAGAIN) {
      err = 0;
      if (!follow && rn_group_drained(gc)) break;
      continue;
    }
    if (err && rn_err_retriable(err) && (follow || retries < 5)) {
      retries++;
      /* the broker is away: do not spin (a signal ends the wait early) */
      struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
      nanosleep(&ts, NULL);
      err = 0;
      continue;
    }
    if (err) break;
    retries = 0;
    if (!emit(&cs, shard, rec)) break; /* --max reached: close commits this record too */
  }
  fflush(c->out);
  int status = 0;
  if (err) status = ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
  rn_err_t cerr = rn_group_consumer_close(gc);
  if (cerr && status == 0) status = ctl_fail(c, cerr, "stream \"%s\" group \"%s\": commit and leave", stream, group);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  pthread_mutex_destroy(&cs.out_mu);
  return status;
}

/* ==== group ======================================================================= */

static const char *pos_kind_name(rn_pos_kind_t k) {
  switch (k) {
    case RN_POS_EARLIEST: return "earliest";
    case RN_POS_LATEST: return "latest";
    case RN_POS_TIMESTAMP: return "timestamp";
    case RN_POS_OFFSET: return "offset";
  }
  return "unknown";
}

/* Sum of lag_records and the largest known lag_ms (-1 when none is known). */
static void group_totals(const rn_group_desc_t *d, uint64_t *lag_records, int64_t *lag_ms) {
  *lag_records = 0;
  *lag_ms = -1;
  for (size_t i = 0; i < d->shard_count; i++) {
    *lag_records += d->shards[i].lag_records;
    if (d->shards[i].lag_ms > *lag_ms) *lag_ms = d->shards[i].lag_ms;
  }
}

static json_t *group_json(const rn_group_desc_t *d) {
  json_t *o = json_object();
  json_object_set_new(o, "stream", json_string(d->stream));
  json_object_set_new(o, "group", json_string(d->group));
  json_object_set_new(o, "start_kind", json_string(pos_kind_name(d->start_kind)));
  json_object_set_new(o, "start_value", json_integer(d->start_value));
  json_object_set_new(o, "created_ms", json_integer(d->created_ms));
  json_object_set_new(o, "member_count", json_integer((json_int_t)d->member_count));
  json_t *ma = json_array();
  for (size_t i = 0; i < d->member_count; i++) {
    const rn_group_member_info_t *m = &d->members[i];
    json_t *mo = json_object(), *sa = json_array();
    json_object_set_new(mo, "member_id", json_string(m->member_id));
    json_object_set_new(mo, "client_id", json_string(m->client_id ? m->client_id : ""));
    json_object_set_new(mo, "member_epoch", json_integer(m->member_epoch));
    json_object_set_new(mo, "session_timeout_ms", json_integer(m->session_timeout_ms));
    json_object_set_new(mo, "last_heartbeat_ms", json_integer(m->last_heartbeat_ms));
    for (size_t k = 0; k < m->shard_count; k++) json_array_append_new(sa, json_integer(m->shards[k]));
    json_object_set_new(mo, "shards", sa);
    json_object_set_new(mo, "pending", json_integer(m->pending));
    json_array_append_new(ma, mo);
  }
  json_object_set_new(o, "members", ma);
  json_t *sa = json_array();
  for (size_t i = 0; i < d->shard_count; i++) {
    const rn_group_shard_info_t *s = &d->shards[i];
    char id[32];
    snprintf(id, sizeof id, "shardId-%012u", s->shard);
    json_t *so = json_object();
    json_object_set_new(so, "shard", json_integer(s->shard));
    json_object_set_new(so, "shard_id", json_string(id));
    json_object_set_new(so, "owner", s->owner && s->owner[0] ? json_string(s->owner) : json_null());
    json_object_set_new(so, "has_checkpoint", json_boolean(s->has_checkpoint));
    json_object_set_new(so, "checkpoint", json_integer((json_int_t)s->checkpoint));
    json_object_set_new(so, "checkpoint_ms", json_integer(s->checkpoint_ms));
    json_object_set_new(so, "start_offset", json_integer((json_int_t)s->start_offset));
    json_object_set_new(so, "end_offset", json_integer((json_int_t)s->end_offset));
    json_object_set_new(so, "lag_records", json_integer((json_int_t)s->lag_records));
    json_object_set_new(so, "lag_ms", json_integer(s->lag_ms));
    json_array_append_new(sa, so);
  }
  json_object_set_new(o, "shards", sa);
  uint64_t lr;
  int64_t lm;
  group_totals(d, &lr, &lm);
  json_t *t = json_object();
  json_object_set_new(t, "lag_records", json_integer((json_int_t)lr));
  json_object_set_new(t, "lag_ms", json_integer(lm));
  json_object_set_new(o, "totals", t);
  return o;
}

static void print_group_shards(ctl_t *c, const rn_group_desc_t *d) {
  table_t t;
  table_init(&t, 8);
  table_row(&t, "SHARD", "OWNER", "CHECKPOINT", "START", "END", "LAG-RECORDS", "LAG-MS", "LAST-COMMIT");
  for (size_t i = 0; i < d->shard_count; i++) {
    const rn_group_shard_info_t *s = &d->shards[i];
    char id[32], ck[24], so[24], eo[24], lr[24], lm[24], lc[40];
    snprintf(id, sizeof id, "shardId-%012u", s->shard);
    if (s->has_checkpoint)
      snprintf(ck, sizeof ck, "%" PRIu64, s->checkpoint);
    else
      snprintf(ck, sizeof ck, "-");
    snprintf(so, sizeof so, "%" PRIu64, s->start_offset);
    snprintf(eo, sizeof eo, "%" PRIu64, s->end_offset);
    snprintf(lr, sizeof lr, "%" PRIu64, s->lag_records);
    if (s->lag_ms >= 0)
      snprintf(lm, sizeof lm, "%" PRId64, s->lag_ms);
    else
      snprintf(lm, sizeof lm, "-");
    format_time(s->checkpoint_ms, lc, sizeof lc);
    table_row(&t, id, s->owner && s->owner[0] ? s->owner : "-", ck, so, eo, lr, lm, lc);
  }
  table_print(&t, c->out);
}

static void print_group(ctl_t *c, const rn_group_desc_t *d) {
  if (c->json) {
    print_json(c, group_json(d));
    return;
  }
  char created[40], start[64];
  format_time(d->created_ms, created, sizeof created);
  if (d->start_kind == RN_POS_TIMESTAMP) {
    char ts[40];
    format_time(d->start_value, ts, sizeof ts);
    snprintf(start, sizeof start, "timestamp %s", ts);
  } else {
    snprintf(start, sizeof start, "%s", pos_kind_name(d->start_kind));
  }
  uint64_t lr;
  int64_t lm;
  group_totals(d, &lr, &lm);
  fprintf(c->out, "stream:           %s\n", d->stream);
  fprintf(c->out, "group:            %s\n", d->group);
  fprintf(c->out, "starts at:        %s\n", start);
  fprintf(c->out, "created:          %s\n", created);
  fprintf(c->out, "members:          %zu\n", d->member_count);
  if (lm >= 0)
    fprintf(c->out, "lag:              %" PRIu64 " records, %" PRId64 " ms\n\n", lr, lm);
  else
    fprintf(c->out, "lag:              %" PRIu64 " records\n\n", lr);
  if (d->member_count) {
    table_t t;
    table_init(&t, 7);
    table_row(&t, "MEMBER", "CLIENT", "EPOCH", "SHARDS", "PENDING", "SESSION-MS", "LAST-HEARTBEAT");
    for (size_t i = 0; i < d->member_count; i++) {
      const rn_group_member_info_t *m = &d->members[i];
      char ep[16], sh[1024], pe[16], se[16], hb[24];
      snprintf(ep, sizeof ep, "%u", m->member_epoch);
      format_shard_list(m->shards, m->shard_count, sh, sizeof sh);
      snprintf(pe, sizeof pe, "%u", m->pending);
      snprintf(se, sizeof se, "%u", m->session_timeout_ms);
      snprintf(hb, sizeof hb, "%" PRId64 "ms ago", m->last_heartbeat_ms);
      table_row(&t, m->member_id, m->client_id ? m->client_id : "", ep, sh, pe, se, hb);
    }
    table_print(&t, c->out);
    fputc('\n', c->out);
  }
  print_group_shards(c, d);
}

/* STREAM GROUP positionals shared by the verbs. */
static int group_args(ctl_t *c, int argc, char **argv, const opt_t *opts, const char *help, const char *verb,
                      const char **stream, const char **group) {
  const char *pos[2];
  int npos;
  int rc = parse_opts(c, argc, argv, opts, pos, 2, &npos, help);
  if (rc) return rc > 0 ? 1 : -1;
  if (npos != 2) {
    usage_error(c, "group %s: STREAM and GROUP are required", verb);
    return -1;
  }
  *stream = pos[0];
  *group = pos[1];
  return 0;
}

static int cmd_group_list(ctl_t *c, int argc, char **argv) {
  const char *pos[1];
  int npos;
  int rc = parse_opts(c, argc, argv, NULL, pos, 1, &npos, HELP_GROUP_LIST);
  if (rc) return rc > 0 ? 0 : CTL_EXIT_USAGE;
  if (npos != 1) return usage_error(c, "group list: STREAM is required");
  if (client(c)) return CTL_EXIT_FAIL;
  rn_stream_names_t *names = NULL;
  rn_err_t err = rn_group_list(c->cl, pos[0], &names);
  if (err) return ctl_fail(c, err, "stream \"%s\"", pos[0]);
  json_t *arr = c->json ? json_array() : NULL;
  table_t t;
  table_init(&t, 4);
  table_row(&t, "GROUP", "MEMBERS", "LAG-RECORDS", "LAG-MS");
  for (size_t i = 0; i < names->count; i++) {
    rn_group_desc_t *d = NULL;
    err = rn_group_describe(c->cl, pos[0], names->names[i], &d);
    if (err == RN_ENOGROUP) continue; /* deleted meanwhile */
    if (err) {
      ctl_fail(c, err, "stream \"%s\" group \"%s\"", pos[0], names->names[i]);
      table_free(&t);
      if (arr) json_decref(arr);
      rn_stream_names_free(names);
      return CTL_EXIT_FAIL;
    }
    uint64_t lr;
    int64_t lm;
    group_totals(d, &lr, &lm);
    if (arr) {
      json_t *o = json_object();
      json_object_set_new(o, "group", json_string(d->group));
      json_object_set_new(o, "member_count", json_integer((json_int_t)d->member_count));
      json_object_set_new(o, "lag_records", json_integer((json_int_t)lr));
      json_object_set_new(o, "lag_ms", json_integer(lm));
      json_array_append_new(arr, o);
    } else {
      char mc[16], a[24], b[24];
      snprintf(mc, sizeof mc, "%zu", d->member_count);
      snprintf(a, sizeof a, "%" PRIu64, lr);
      if (lm >= 0)
        snprintf(b, sizeof b, "%" PRId64, lm);
      else
        snprintf(b, sizeof b, "-");
      table_row(&t, d->group, mc, a, b);
    }
    rn_group_desc_free(d);
  }
  rn_stream_names_free(names);
  if (arr) {
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(pos[0]));
    json_object_set_new(o, "groups", arr);
    print_json(c, o);
    table_free(&t);
  } else if (t.nrows == 1) {
    table_free(&t);
    fprintf(c->out, "no groups\n");
  } else {
    table_print(&t, c->out);
  }
  return 0;
}

static int cmd_group_describe(ctl_t *c, int argc, char **argv) {
  const char *stream, *group;
  int rc = group_args(c, argc, argv, NULL, HELP_GROUP_DESCRIBE, "describe", &stream, &group);
  if (rc) return rc > 0 ? 0 : CTL_EXIT_USAGE;
  if (client(c)) return CTL_EXIT_FAIL;
  rn_group_desc_t *d = NULL;
  rn_err_t err = rn_group_describe(c->cl, stream, group, &d);
  if (err) return ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
  print_group(c, d);
  rn_group_desc_free(d);
  return 0;
}

static int cmd_group_create(ctl_t *c, int argc, char **argv) {
  const char *stream, *group, *from = NULL;
  const opt_t opts[] = {{"--from", true, &from}, {NULL, false, NULL}};
  int rc = group_args(c, argc, argv, opts, HELP_GROUP_CREATE, "create", &stream, &group);
  if (rc) return rc > 0 ? 0 : CTL_EXIT_USAGE;
  rn_pos_kind_t kind = RN_POS_LATEST;
  int64_t value = 0;
  if (from && (parse_from(from, &kind, &value) != 0 || kind == RN_POS_OFFSET))
    return usage_error(c, "--from: \"%s\" is not earliest, latest, @MS or an ISO 8601 time", from);
  if (client(c)) return CTL_EXIT_FAIL;
  rn_err_t err = rn_group_create(c->cl, stream, group, kind, value);
  if (err) return ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
  if (c->json) {
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(stream));
    json_object_set_new(o, "created", json_string(group));
    json_object_set_new(o, "start_kind", json_string(pos_kind_name(kind)));
    json_object_set_new(o, "start_value", json_integer(value));
    print_json(c, o);
  } else {
    fprintf(c->out, "created group \"%s\" on stream \"%s\" (starts at %s)\n", group, stream, pos_kind_name(kind));
  }
  return 0;
}

static int cmd_group_delete(ctl_t *c, int argc, char **argv) {
  const char *stream, *group;
  int rc = group_args(c, argc, argv, NULL, HELP_GROUP_DELETE, "delete", &stream, &group);
  if (rc) return rc > 0 ? 0 : CTL_EXIT_USAGE;
  if (client(c)) return CTL_EXIT_FAIL;
  rn_err_t err = rn_group_delete(c->cl, stream, group);
  if (err) return ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
  if (c->json) {
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(stream));
    json_object_set_new(o, "deleted", json_string(group));
    print_json(c, o);
  } else {
    fprintf(c->out, "deleted group \"%s\" of stream \"%s\"\n", group, stream);
  }
  return 0;
}

static int cmd_group_reset(ctl_t *c, int argc, char **argv) {
  /* --shard may repeat (and take comma-separated lists): collect it here and
   * hand the rest to parse_opts */
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  uint32_t *shards = calloc((size_t)argc + 1, sizeof *shards);
  size_t nshards = 0, shards_cap = (size_t)argc + 1;
  int nrest = 0, status = 0;
  if (rest == NULL || shards == NULL) abort();
  for (int i = 0; i < argc && status == 0; i++) {
    const char *v = NULL;
    if (strcmp(argv[i], "--shard") == 0) {
      if (i + 1 >= argc) {
        status = usage_error(c, "--shard needs a value");
        break;
      }
      v = argv[++i];
    } else if (strncmp(argv[i], "--shard=", 8) == 0) {
      v = argv[i] + 8;
    } else {
      rest[nrest++] = argv[i];
      continue;
    }
    char *copy = strdup(v), *save = NULL;
    if (copy == NULL) abort();
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
      uint32_t s;
      if (parse_shard(tok, &s) != 0) {
        status = usage_error(c, "--shard: \"%s\" is not a shard index or shardId-NNNNNNNNNNNN", tok);
        break;
      }
      if (nshards == shards_cap) {
        shards_cap *= 2;
        shards = realloc(shards, shards_cap * sizeof *shards);
        if (shards == NULL) abort();
      }
      shards[nshards++] = s;
    }
    free(copy);
  }
  const char *stream = NULL, *group = NULL, *to = NULL;
  const opt_t opts[] = {{"--to", true, &to}, {NULL, false, NULL}};
  if (status == 0) {
    int rc = group_args(c, nrest, rest, opts, HELP_GROUP_RESET, "reset", &stream, &group);
    if (rc) status = rc > 0 ? -1 : CTL_EXIT_USAGE;
  }
  rn_pos_kind_t kind = RN_POS_EARLIEST;
  int64_t value = 0;
  if (status == 0 && to == NULL) status = usage_error(c, "group reset: --to POS is required");
  if (status == 0 && parse_from(to, &kind, &value) != 0)
    status = usage_error(c, "--to: \"%s\" is not earliest, latest, an OFFSET, @MS or an ISO 8601 time", to);
  if (status == 0 && client(c)) status = CTL_EXIT_FAIL;
  if (status == 0) {
    rn_group_desc_t *d = NULL;
    rn_err_t err = rn_group_reset(c->cl, stream, group, kind, value, shards, nshards, &d);
    if (err) {
      status = ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
    } else if (d && c->json) {
      print_json(c, group_json(d));
    } else {
      fprintf(c->out, "reset group \"%s\" of stream \"%s\" to %s\n", group, stream, to);
      if (d) print_group_shards(c, d);
    }
    rn_group_desc_free(d);
  }
  free(rest);
  free(shards);
  return status < 0 ? 0 : status; /* -1: --help was printed */
}

static int cmd_group(ctl_t *c, int argc, char **argv) {
  if (argc == 0) {
    fputs(HELP_GROUP, c->err);
    return CTL_EXIT_USAGE;
  }
  const char *verb = argv[0];
  if (is_help(verb)) {
    fputs(HELP_GROUP, c->out);
    return 0;
  }
  if (strcmp(verb, "list") == 0 || strcmp(verb, "ls") == 0) return cmd_group_list(c, argc - 1, argv + 1);
  if (strcmp(verb, "describe") == 0) return cmd_group_describe(c, argc - 1, argv + 1);
  if (strcmp(verb, "create") == 0) return cmd_group_create(c, argc - 1, argv + 1);
  if (strcmp(verb, "delete") == 0) return cmd_group_delete(c, argc - 1, argv + 1);
  if (strcmp(verb, "reset") == 0) return cmd_group_reset(c, argc - 1, argv + 1);
  return usage_error(c, "unknown verb \"group %s\"", verb);
}

/* ==== offsets ===================================================================== */

static int cmd_offsets(ctl_t *c, int argc, char **argv) {
  const char *pos[1];
  int npos;
  int rc = parse_opts(c, argc, argv, NULL, pos, 1, &npos, HELP_OFFSETS);
  if (rc) return rc > 0 ? 0 : CTL_EXIT_USAGE;
  if (npos != 1) return usage_error(c, "offsets: STREAM is required");
  if (client(c)) return CTL_EXIT_FAIL;
  rn_offsets_t *offs = NULL;
  rn_err_t err = rn_stream_list_offsets(c->cl, pos[0], RN_POS_LATEST, 0, &offs);
  if (err) return ctl_fail(c, err, "stream \"%s\"", pos[0]);
  if (c->json) {
    json_t *o = json_object(), *a = json_array();
    json_object_set_new(o, "stream", json_string(pos[0]));
    for (size_t i = 0; i < offs->count; i++) {
      const rn_shard_offsets_t *so = &offs->shards[i];
      char id[32];
      snprintf(id, sizeof id, "shardId-%012u", so->shard);
      json_t *s = json_object();
      json_object_set_new(s, "shard", json_integer(so->shard));
      json_object_set_new(s, "shard_id", json_string(id));
      if (so->err) {
        json_object_set_new(s, "error", json_string(rn_err_name(so->err)));
      } else {
        json_object_set_new(s, "start_offset", json_integer((json_int_t)so->start_offset));
        json_object_set_new(s, "end_offset", json_integer((json_int_t)so->end_offset));
        json_object_set_new(s, "records", json_integer((json_int_t)(so->end_offset - so->start_offset)));
      }
      json_array_append_new(a, s);
    }
    json_object_set_new(o, "shards", a);
    print_json(c, o);
  } else {
    table_t t;
    table_init(&t, 4);
    table_row(&t, "SHARD", "START", "END", "RECORDS");
    for (size_t i = 0; i < offs->count; i++) {
      const rn_shard_offsets_t *so = &offs->shards[i];
      char id[32], a[24], b[24], n[24];
      snprintf(id, sizeof id, "shardId-%012u", so->shard);
      if (so->err) {
        table_row(&t, id, rn_err_name(so->err), "-", "-");
        continue;
      }
      snprintf(a, sizeof a, "%" PRIu64, so->start_offset);
      snprintf(b, sizeof b, "%" PRIu64, so->end_offset);
      snprintf(n, sizeof n, "%" PRIu64, so->end_offset - so->start_offset);
      table_row(&t, id, a, b, n);
    }
    table_print(&t, c->out);
  }
  rn_offsets_free(offs);
  return 0;
}

/* ==== main ========================================================================= */

/* The whole CLI; in/out/err are the three streams (tests pass memory
 * streams). Returns the exit status. */
static int rn_ctl_main(int argc, char **argv, FILE *in, FILE *out, FILE *err) {
  ctl_t c = {.in = in, .out = out, .err = err};
  const char *env = getenv("RUNNEL_BROKER");
  c.broker = env && *env ? env : RN_DEFAULT_BROKER;
  /* global options may appear anywhere before "--" */
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (rest == NULL) return CTL_EXIT_FAIL;
  int nrest = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--json") == 0) {
      c.json = true;
    } else if (strcmp(a, "--broker") == 0) {
      if (i + 1 >= argc) {
        free(rest);
        return usage_error(&c, "--broker needs HOST:PORT");
      }
      c.broker = argv[++i];
    } else if (strncmp(a, "--broker=", 9) == 0) {
      c.broker = a + 9;
    } else {
      rest[nrest++] = argv[i];
    }
  }
  int status;
  if (nrest == 0) {
    fputs(HELP_MAIN, err);
    status = CTL_EXIT_USAGE;
  } else if (is_help(rest[0]) || strcmp(rest[0], "help") == 0) {
    fputs(HELP_MAIN, out);
    status = 0;
  } else if (strcmp(rest[0], "stream") == 0 || strcmp(rest[0], "streams") == 0) {
    status = cmd_stream(&c, nrest - 1, rest + 1);
  } else if (strcmp(rest[0], "produce") == 0) {
    status = cmd_produce(&c, nrest - 1, rest + 1);
  } else if (strcmp(rest[0], "consume") == 0) {
    status = cmd_consume(&c, nrest - 1, rest + 1);
  } else if (strcmp(rest[0], "offsets") == 0) {
    status = cmd_offsets(&c, nrest - 1, rest + 1);
  } else if (strcmp(rest[0], "group") == 0 || strcmp(rest[0], "groups") == 0) {
    status = cmd_group(&c, nrest - 1, rest + 1);
  } else {
    status = usage_error(&c, "unknown command \"%s\"", rest[0]);
  }
  free(rest);
  rn_client_destroy(c.cl);
  fflush(out);
  return status;
}

#ifndef RUNNELCTL_NO_MAIN
int main(int argc, char **argv) { return rn_ctl_main(argc, argv, stdin, stdout, stderr); }
#endif
