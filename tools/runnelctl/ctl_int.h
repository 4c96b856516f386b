/*
 * ctl_int.h — runnelctl's private header (tools/runnelctl/): the state every
 * command gets, the command table (ctl_cmds.c: the one source of --help, the
 * man page and the bash completion, which ctl_help.c generates), the driver
 * and shared runtime (ctl_main.c: argv, the lazy client, clocks, signals),
 * the one output layer (ctl_out.c), the pure parsers (ctl_parse.c) and the
 * command entry points, one file per noun (ctl_stream.c, ctl_produce.c,
 * ctl_consume.c, ctl_group.c, ctl_status.c, ctl_tier.c).
 *
 * runnelctl is an executable, not a library: its cross-file names use the
 * prefix ctl_ and never leave the binary (the unit test links them from the
 * rn_ctl static library). It uses librunnel (runnel/runnel.h) and proto's
 * public headers only.
 *
 * Output rule: nothing writes to c->out except through ctl_out.c, which
 * remembers the first failed write or flush (ENOSPC, EPIPE with SIGPIPE
 * ignored, ...). A command that has seen a failed write stops, reports it in
 * one line and exits 1; a consumer-group member commits only records whose
 * output was written and flushed (ctl_consume.c).
 */
#ifndef RN_CTL_INT_H
#define RN_CTL_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runnel/runnel.h"

#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 2

/* The version runnelctl --version prints (CMake passes the project's). */
#ifndef RN_CTL_VERSION
#define RN_CTL_VERSION "0.0.0"
#endif

typedef struct ctl {
  const char *broker;   /* HOST:PORT; borrowed from argv or the environment */
  bool json;            /* --json */
  FILE *in, *out, *err; /* borrowed; tests pass memory streams */
  bool out_tty, err_tty;
  rn_client_t *cl;      /* made lazily by ctl_client(); destroyed by ctl_main */
  int out_errno;        /* first failed write/flush to out (errno value); 0 = none */
  bool out_reported;    /* the failure's one line has been printed */
} ctl_t;

/* ==== the command table (ctl_cmds.c), the driver (ctl_main.c) ============ */

typedef struct ctl_opt {
  const char *name;    /* "--shards" */
  char short_name;     /* 'H' for -H, 0 = none */
  const char *metavar; /* "N"; NULL = a flag without value */
  const char *doc;     /* lines separated by '\n' */
} ctl_opt_t;

#define CTL_MAXPOS 4

typedef struct ctl_cmd ctl_cmd_t;

/* The parsed arguments of one command. vals lists every option given, in
 * order (an option may repeat). */
typedef struct ctl_args {
  const ctl_cmd_t *cmd;
  const char *pos[CTL_MAXPOS];
  int npos;
  size_t nvals;
  struct {
    const ctl_opt_t *opt;
    const char *val; /* "" for a flag */
  } *vals;           /* owned; freed by ctl_main */
} ctl_args_t;

typedef int (*ctl_run_fn)(ctl_t *c, const ctl_args_t *a);

struct ctl_cmd {
  const char *noun;     /* "stream" */
  const char *verb;     /* "create"; NULL for a noun that is a command */
  const char *args;     /* positional synopsis: "NAME" */
  const char *summary;  /* one line for lists */
  const char *doc;      /* paragraphs, lines separated by '\n' */
  const ctl_opt_t *opts;/* NULL-name terminated; may be NULL */
  int min_pos, max_pos;
  ctl_run_fn run;
};

extern const ctl_cmd_t ctl_cmds[];
extern const size_t ctl_ncmds;
/* --broker, --json, --version, --print-man, --help (NULL-name terminated);
 * ctl_main parses them anywhere on the line. */
extern const ctl_opt_t ctl_global_opts[];

/* The last value of option name ("" for a flag), NULL when absent. */
const char *ctl_arg(const ctl_args_t *a, const char *name);
/* Every value of option name, in order: up to cap into vals; returns how
 * many were given. */
size_t ctl_arg_all(const ctl_args_t *a, const char *name, const char **vals, size_t cap);

/* The whole CLI (argv[0] is ignored). Returns the exit status. */
int ctl_main(int argc, char **argv, FILE *in, FILE *out, FILE *err);

/* Generated from the table (ctl_help.c): --help of one command, of a noun, of everything;
 * the man page (roff) and the bash completion script. */
void ctl_help_cmd(ctl_t *c, const ctl_cmd_t *cmd);
void ctl_help_noun(ctl_t *c, const char *noun);
void ctl_help_main(ctl_t *c, FILE *f);
void ctl_print_man(ctl_t *c);
void ctl_print_completion_bash(ctl_t *c);

/* ==== checked output (ctl_out.c) ========================================== */

/* Write to c->out. Each returns false once any write or flush to c->out
 * has failed (then nothing more is written). */
bool ctl_print(ctl_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool ctl_write(ctl_t *c, const void *p, size_t n);
bool ctl_flush(ctl_t *c);
/* true while no write to c->out has failed. */
bool ctl_out_ok(const ctl_t *c);
/* Print the failed write's one line on c->err (once). */
void ctl_out_report(ctl_t *c);
/* A command's final status: flushes c->out; when a write failed, reports
 * it and turns status 0 into CTL_EXIT_FAIL. */
int ctl_out_finish(ctl_t *c, int status);

/* "runnelctl: <context>: <message> (<NAME>)[: detail]" on c->err, where
 * detail is rn_last_error_message() as librunnel gave it. Returns
 * CTL_EXIT_FAIL. */
int ctl_fail(ctl_t *c, rn_err_t err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "runnelctl: <message> (see --help)". Returns CTL_EXIT_USAGE. */
int ctl_usage(ctl_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "runnelctl: <message>" — a failure that is not a librunnel error.
 * Returns CTL_EXIT_FAIL. */
int ctl_failf(ctl_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print doc (pretty, sorted keys) and release it. */
bool ctl_print_json(ctl_t *c, json_t *doc);

/* Tables: "2026-11-22T10:00:00.000Z", "-" for 0. */
void ctl_format_time(int64_t ms, char *buf, size_t n);
/* Retention for tables: "forever" (< 0), "broker default" (0), else 24h. */
void ctl_format_retention(int64_t ms, char *buf, size_t n);
/* Retention bytes: "unlimited" (<= 0), else 10GiB. */
void ctl_format_retention_bytes(int64_t b, char *buf, size_t n);
/* A byte count for people: 0B, 512B, 12.3KiB, 4.0GiB. */
void ctl_format_bytes(uint64_t b, char *buf, size_t n);
/* A length of time for people: 0s, 850ms, 4.2s, 3m12s, 2h5m, 3d4h. */
void ctl_format_age(int64_t ms, char *buf, size_t n);

/* JSON helpers: a string field, or name_base64 when the bytes are not
 * UTF-8; an integer or null. */
void ctl_json_bytes(json_t *o, const char *name, const uint8_t *s, size_t n);
/* Base64 of s[0, n) into a malloc'd string. */
char *ctl_base64(const uint8_t *s, size_t n);

/* A table: rows of cells, printed with columns padded to their widest. */
typedef struct ctl_table {
  size_t ncols, nrows, cap;
  char **cells; /* nrows * ncols, owned */
} ctl_table_t;
void ctl_table_init(ctl_table_t *t, size_t ncols);
void ctl_table_row(ctl_table_t *t, ...); /* ncols const char * (NULL = "") */
void ctl_table_free(ctl_table_t *t);
bool ctl_table_print(ctl_t *c, ctl_table_t *t); /* prints and frees */

/* ==== parsers (ctl_parse.c; pure) ========================================= */

/* A time: ISO 8601 (YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|±HH:MM]), "@MS" (epoch
 * ms) or a relative time "-DURATION" (now_ms minus it). Returns 0 or -1. */
int ctl_parse_iso8601_ms(const char *s, int64_t *out);
int ctl_parse_time(const char *s, int64_t now_ms, int64_t *out);

/* A position: earliest, latest, an OFFSET (a plain integer) or a time
 * (ctl_parse_time). Returns 0 or -1 with why set. */
int ctl_parse_pos(const char *s, int64_t now_ms, rn_pos_kind_t *kind, int64_t *value, char *why, size_t whylen);

/* An OFFSET the user gave that is past the end of every shard and at least
 * this large was almost certainly meant as a millisecond timestamp
 * (1973-03-03 and later): the message then says to write @MS. A real
 * offset that large still works where the shard has that many records. */
#define CTL_TS_LOOKS_LIKE_MS 100000000000LL
/* "; it looks like a time in ms: write @N" for such a value, else "". */
const char *ctl_ms_hint(int64_t offset, char *buf, size_t n);

/* "3" or "shardId-000000000003". Returns 0 or -1. */
int ctl_parse_shard(const char *s, uint32_t *out);
/* A positive decimal count (1..UINT64_MAX). Returns 0 or -1. */
int ctl_parse_count(const char *s, uint64_t *out);

/* The partition key of a JSON line (the top-level field `field`: a string
 * as is, a number/boolean as its JSON text). On success *key is malloc'd
 * (caller frees). Returns 0, or -1 with why set. */
int ctl_key_field(const char *line, size_t len, const char *field, char **key, size_t *keylen, char *why,
                  size_t whylen);

/* ==== runtime shared by the nouns (ctl_main.c) ============================ */

/* Wall clock, epoch ms. */
int64_t ctl_now_ms(void);
/* Monotonic ms (elapsed times, --idle-exit, --watch). */
int64_t ctl_mono_ms(void);

/* Connect lazily (once). Prints the failure; returns 0 or the error. */
rn_err_t ctl_client(ctl_t *c);

/* --watch / --interval (group describe, status): *interval_ms = 0 without
 * --watch. Returns 0 or a usage error. */
int ctl_watch_args(ctl_t *c, const ctl_args_t *a, int64_t *interval_ms);

/* SIGINT/SIGTERM as a flag for --follow and --watch loops. */
extern volatile int ctl_stop;
void ctl_catch_signals(bool on);
/* Sleep up to ms, returning early on SIGINT/SIGTERM. */
void ctl_nap(int64_t ms);

/* ==== commands ============================================================ */

int ctl_stream_create(ctl_t *c, const ctl_args_t *a);
int ctl_stream_list(ctl_t *c, const ctl_args_t *a);
int ctl_stream_describe(ctl_t *c, const ctl_args_t *a);
int ctl_stream_delete(ctl_t *c, const ctl_args_t *a);
int ctl_stream_set_retention(ctl_t *c, const ctl_args_t *a);
int ctl_stream_restore(ctl_t *c, const ctl_args_t *a);
int ctl_tier_status(ctl_t *c, const ctl_args_t *a);
int ctl_offsets(ctl_t *c, const ctl_args_t *a);
int ctl_produce(ctl_t *c, const ctl_args_t *a);
int ctl_consume(ctl_t *c, const ctl_args_t *a);
int ctl_group_list(ctl_t *c, const ctl_args_t *a);
int ctl_group_describe(ctl_t *c, const ctl_args_t *a);
int ctl_group_create(ctl_t *c, const ctl_args_t *a);
int ctl_group_delete(ctl_t *c, const ctl_args_t *a);
int ctl_group_reset(ctl_t *c, const ctl_args_t *a);
int ctl_sink_create(ctl_t *c, const ctl_args_t *a);
int ctl_sink_list(ctl_t *c, const ctl_args_t *a);
int ctl_sink_describe(ctl_t *c, const ctl_args_t *a);
int ctl_sink_pause(ctl_t *c, const ctl_args_t *a);
int ctl_sink_resume(ctl_t *c, const ctl_args_t *a);
int ctl_sink_delete(ctl_t *c, const ctl_args_t *a);
int ctl_status(ctl_t *c, const ctl_args_t *a);
int ctl_completion(ctl_t *c, const ctl_args_t *a);

#endif
