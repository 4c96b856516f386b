/*
 * ctl_cmds.c — runnelctl's command table and what is generated from it:
 * argument parsing, --help at every level, the man page (--print-man) and
 * the bash completion (runnelctl completion bash). A command, an option or a
 * line of help exists once, here; the noun files only run commands.
 *
 * Help text conventions: docs are lines separated by '\n' (no trailing
 * newline); a line that starts with two spaces is an example or a list item
 * and is kept as is (.nf in the man page).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_int.h"

/* ==== the table =========================================================== */

#define DOC_RETENTION                                                 \
  "keep records this long: 500ms, 30s, 90m, 24h, 7d, 1h30m (units ms,\n" \
  "s, m, h, d), or forever; without the option the broker's default\n"  \
  "retention applies (its default_retention setting); 0 is refused"
#define DOC_RETENTION_BYTES                                             \
  "and at most this much per shard: bytes, or 512KiB, 64MiB, 10GiB,\n" \
  "1TiB (binary: 10G = 10GiB; KB/MB are refused), or unlimited\n"      \
  "(the default)"
#define DOC_POS_TIME                                                  \
  "a TIME is ISO 8601 (2026-11-22T10:00:00Z, 2026-11-22 10:00),\n"    \
  "@MS (milliseconds since the epoch) or -DURATION (that long ago:\n" \
  "-1h, -30m, -7d); a plain number is an OFFSET"

static const ctl_opt_t opts_create[] = {
    {"--shards", 0, "N", "number of shards, each owning an equal slice of the hash-key\nspace (required)"},
    {"--retention", 0, "D", DOC_RETENTION},
    {"--retention-bytes", 0, "S", DOC_RETENTION_BYTES},
    {"--durability", 0, "M", "sync (default): acknowledged after fdatasync; interval:\nfdatasync periodically; none: page cache only"},
    {NULL, 0, NULL, NULL}};

static const ctl_opt_t opts_setret[] = {
    {"--retention", 0, "D", "500ms, 30s, 90m, 24h, 7d, or forever"},
    {"--retention-bytes", 0, "S", "per shard: 512MiB, 10GiB, 1TiB, or unlimited"},
    {NULL, 0, NULL, NULL}};

static const ctl_opt_t opts_produce[] = {
    {"--key", 0, "K", "partition key of every record (default: random per record)"},
    {"--key-field", 0, "FIELD", "partition key = the value of FIELD in the line parsed as a JSON\nobject"},
    {"--key-delimiter", 0, "C", "each line is KEY<C>VALUE: the text before the first C is the\nkey"},
    {"--header", 'H', "NAME=VALUE", "add a header to every record (repeat for more)"},
    {"--file", 0, "F", "send the whole of file F (- = standard input) as one record\ninstead of reading lines"},
    {NULL, 0, NULL, NULL}};

static const ctl_opt_t opts_consume[] = {
    {"--shard", 0, "ID", "only this shard: an index (3) or a shard id\n(shardId-000000000003); default: every shard"},
    {"--from", 0, "POS", "where to start: earliest (default), latest, an OFFSET or a TIME;\n" DOC_POS_TIME},
    {"--to", 0, "POS", "stop before this position (an OFFSET, or a TIME: only records\nbefore it)"},
    {"--tail", 0, "N", "the last N records of each shard"},
    {"--follow", 0, NULL, "keep waiting for new records (until interrupted); without it,\nstop at the end of every shard as it was when the command started"},
    {"--idle-exit", 0, "D", "with --follow: exit 0 after no record arrived for D (30s, 5m)"},
    {"--max", 0, "N", "stop after N records"},
    {"--format", 0, "FMT",
     "print each record by a template: %k key, %v value, %s shard,\n"
     "%o offset, %t timestamp (epoch ms), %T timestamp (ISO 8601),\n"
     "%h headers (name=value,...), %% a %; \\n newline, \\t tab,\n"
     "\\\\ backslash. Default: %v\\n"},
    {"--group", 0, "NAME", "read as a member of consumer group NAME (see below)"},
    {"--session-timeout", 0, "D", "with --group: the broker frees this member's shards when it has\nnot heard from it for D (500ms to 10m; default 10s)"},
    {NULL, 0, NULL, NULL}};

static const ctl_opt_t opts_watch[] = {
    {"--watch", 0, NULL, "print again every --interval until interrupted (a terminal is\ncleared between prints)"},
    {"--interval", 0, "D", "with --watch: time between prints (default 2s)"},
    {NULL, 0, NULL, NULL}};

static const ctl_opt_t opts_group_create[] = {
    {"--from", 0, "POS", "where the group starts: latest (default), earliest or a TIME;\n" DOC_POS_TIME},
    {NULL, 0, NULL, NULL}};

static const ctl_opt_t opts_group_reset[] = {
    {"--to", 0, "POS", "earliest, latest, an OFFSET (the same in every chosen shard) or\na TIME (the first record at or after it);\n" DOC_POS_TIME},
    {"--shift-by", 0, "N", "move every chosen checkpoint by N records (negative: back),\nclamped to what the shard stores"},
    {"--shard", 0, "ID", "only this shard (repeat, or a comma-separated list:\n--shard 0,3); default: every shard"},
    {"--execute", 0, NULL, "apply the plan (without it the plan is only printed)"},
    {"--create", 0, NULL, "create the group when it does not exist (otherwise refused)"},
    {NULL, 0, NULL, NULL}};

const ctl_cmd_t ctl_cmds[] = {
    {"stream", "create", "NAME", "create a stream",
     "Create stream NAME ([A-Za-z0-9_.-], 1 to 128 characters).", opts_create, 1, 1, ctl_stream_create},
    {"stream", "list", "", "every stream with its settings",
     "Every stream with its shard count, retention and durability.", NULL, 0, 0, ctl_stream_list},
    {"stream", "describe", "NAME", "settings, shards, offsets and bytes stored",
     "The stream's settings, and every shard with its hash-key range (decimal, as Kinesis),\n"
     "start and end offset, the time of its newest record and the bytes it stores.",
     NULL, 1, 1, ctl_stream_describe},
    {"stream", "delete", "NAME", "delete a stream and its data", "Delete the stream and all its data.", NULL, 1, 1,
     ctl_stream_delete},
    {"stream", "set-retention", "NAME", "change a stream's retention",
     "Change the retention; an option left out keeps its current value.", opts_setret, 1, 1,
     ctl_stream_set_retention},
    {"produce", NULL, "STREAM", "send records from standard input or a file",
     "Send each line of standard input as one record (empty lines are skipped), or with --file\n"
     "one file as one record. A line that cannot be sent (not JSON or no FIELD with\n"
     "--key-field, no delimiter with --key-delimiter) is reported on stderr and counts as\n"
     "failed. While standard error is a terminal a progress line shows records/s and bytes;\n"
     "at the end a summary (records, bytes, shards, failed, elapsed) goes to stderr (with\n"
     "--json a JSON document to stdout). Producing to a stream that does not exist fails,\n"
     "also with empty input. Exit status 1 when any record failed.",
     opts_produce, 1, 1, ctl_produce},
    {"consume", NULL, "STREAM", "print records (of shards, or as a group member)",
     "Print each record (by default its value and a newline). With --json each record is\n"
     "one JSON object per line: shard, shard_id, offset, timestamp_ms, key, data, headers\n"
     "(key_base64 / data_base64 instead when not UTF-8).\n"
     "An OFFSET past the end of every shard fails with the shards' end offsets (and, when\n"
     "it looks like a millisecond timestamp, says to write @MS) instead of printing\n"
     "nothing.\n"
     "With --group NAME, join consumer group NAME as a member: print the records of the\n"
     "shards the broker assigns, and checkpoint only records whose output was written and\n"
     "flushed (at least once: after a crash the records since the last checkpoint come\n"
     "again). A failed write (a full disk, a closed pipe) stops the member without\n"
     "checkpointing that record, and runnelctl exits 1 with the reason. Without --follow the\n"
     "member leaves once every assigned shard is read to its end; on exit it commits and\n"
     "leaves so its shards go to the other members at once. --from then says where a group\n"
     "created by this join starts (latest by default); assignment changes are reported on\n"
     "stderr (\"assigned shards 0,3,5\").",
     opts_consume, 1, 1, ctl_consume},
    {"offsets", NULL, "STREAM", "start and end offset of every shard", "Start and end offset of every shard.", NULL,
     1, 1, ctl_offsets},
    {"group", "list", "[STREAM]", "consumer groups with members and lag",
     "The stream's consumer groups (every group of the broker without STREAM), each with its\n"
     "number of members and its lag in records (summed over its shards) and in ms (the\n"
     "largest of its shards; - when no shard's lag is known).",
     NULL, 0, 1, ctl_group_list},
    {"group", "describe", "STREAM GROUP", "members, assignment, checkpoints and lag",
     "The group's members (id, client, epoch, shards held, pending shards, session timeout,\n"
     "last heartbeat) and its shards (owner, checkpoint = next offset to read, start and end\n"
     "offset, lag in records = end - checkpoint, lag in ms = how far the oldest unread record\n"
     "is behind, '-' when unknown, and the last commit's time). With --json unknown lag is\n"
     "null, never 0.",
     opts_watch, 2, 2, ctl_group_describe},
    {"group", "create", "STREAM GROUP", "create a group without joining it", "Create a consumer group without joining it.",
     opts_group_create, 2, 2, ctl_group_create},
    {"group", "delete", "STREAM GROUP", "delete a group without members",
     "Delete a consumer group and its checkpoints; refused (EGROUPACTIVE) while it has members.", NULL, 2, 2,
     ctl_group_delete},
    {"group", "reset", "STREAM GROUP", "move checkpoints (prints the plan; --execute applies it)",
     "Print the plan (per shard: current checkpoint -> new) and, with --execute, apply it.\n"
     "Give --to POS or --shift-by N. Refused (EGROUPACTIVE) while the group has members, and\n"
     "(ENOGROUP) when the group does not exist unless --create is given.",
     opts_group_reset, 2, 2, ctl_group_reset},
    {"status", NULL, "", "the broker: version, uptime, data directory, streams, health",
     "The broker's version, uptime, data directory and its free space, the number of\n"
     "streams and shards, its limits (--json), failed shards and its health. Exit status 1\n"
     "while the broker is degraded (a shard failed).",
     opts_watch, 0, 0, ctl_status},
    {"completion", NULL, "SHELL", "print a shell completion script (bash)",
     "Print the completion script for SHELL (bash), generated from the command table:\n"
     "  source <(runnelctl completion bash)",
     NULL, 1, 1, ctl_completion},
};
const size_t ctl_ncmds = sizeof ctl_cmds / sizeof ctl_cmds[0];

static const ctl_opt_t global_opts[] = {
    {"--broker", 0, "HOST:PORT", "broker to talk to (default: $RUNNEL_BROKER, else\n127.0.0.1:7400)"},
    {"--json", 0, NULL, "machine-readable output: one JSON document (consume: one per\n"
     "record). Field names are the same in every command (shard,\n"
     "shard_id, start_offset, ...); a field ending in _ms is in\n"
     "milliseconds: a time (created_ms, checkpoint_ms, timestamp_ms) is\n"
     "epoch ms, a length (retention_ms, lag_ms) a duration; unknown is null"},
    {"--version", 0, NULL, "print runnelctl's version"},
    {"--print-man", 0, NULL, "print the man page (roff) generated from this help"},
    {"--help", 'h', NULL, "help; also after any noun or verb (runnelctl stream create\n--help)"},
    {NULL, 0, NULL, NULL}};

/* ==== arguments ========================================================== */

const char *ctl_arg(const ctl_args_t *a, const char *name) {
  const char *v = NULL;
  for (size_t i = 0; i < a->nvals; i++)
    if (strcmp(a->vals[i].opt->name, name) == 0) v = a->vals[i].val;
  return v;
}

size_t ctl_arg_all(const ctl_args_t *a, const char *name, const char **vals, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < a->nvals; i++)
    if (strcmp(a->vals[i].opt->name, name) == 0) {
      if (n < cap) vals[n] = a->vals[i].val;
      n++;
    }
  return n;
}

static bool is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

/* Parse argv[0, argc) for cmd into *a. Returns 0, 1 when --help was given
 * (printed), or CTL_EXIT_USAGE after printing the usage error. */
static int parse_args(ctl_t *c, const ctl_cmd_t *cmd, int argc, char **argv, ctl_args_t *a) {
  memset(a, 0, sizeof *a);
  a->cmd = cmd;
  a->vals = calloc((size_t)argc + 1, sizeof *a->vals);
  if (a->vals == NULL) abort();
  char what[64];
  snprintf(what, sizeof what, "%s%s%s", cmd->noun, cmd->verb ? " " : "", cmd->verb ? cmd->verb : "");
  for (int i = 0; i < argc; i++) {
    const char *s = argv[i];
    if (is_help(s)) {
      ctl_help_cmd(c, cmd);
      return 1;
    }
    const ctl_opt_t *o = NULL;
    const char *val = NULL;
    if (strncmp(s, "--", 2) == 0 && s[2] != '\0') {
      const char *eq = strchr(s, '=');
      size_t nl = eq ? (size_t)(eq - s) : strlen(s);
      for (const ctl_opt_t *k = cmd->opts; k && k->name; k++)
        if (strlen(k->name) == nl && strncmp(k->name, s, nl) == 0) o = k;
      if (o == NULL) return ctl_usage(c, "%s: unknown option %.*s", what, (int)nl, s);
      if (eq) {
        if (o->metavar == NULL) return ctl_usage(c, "%s takes no value", o->name);
        val = eq + 1;
      }
    } else if (s[0] == '-' && s[1] != '\0' && !isdigit((unsigned char)s[1])) {
      for (const ctl_opt_t *k = cmd->opts; k && k->name; k++)
        if (k->short_name && k->short_name == s[1]) o = k;
      if (o == NULL) return ctl_usage(c, "%s: unknown option -%c", what, s[1]);
      if (s[2] != '\0') {
        if (o->metavar == NULL) return ctl_usage(c, "-%c takes no value", s[1]);
        val = s + 2;
      }
    } else {
      if (a->npos >= cmd->max_pos || a->npos >= CTL_MAXPOS) return ctl_usage(c, "%s: unexpected argument \"%s\"", what, s);
      a->pos[a->npos++] = s;
      continue;
    }
    if (o->metavar && val == NULL) {
      if (i + 1 >= argc) return ctl_usage(c, "%s needs a value (%s)", o->name, o->metavar);
      val = argv[++i];
    }
    a->vals[a->nvals].opt = o;
    a->vals[a->nvals].val = val ? val : "";
    a->nvals++;
  }
  if (a->npos < cmd->min_pos)
    return ctl_usage(c, "%s: %s %s required", what, cmd->args, strchr(cmd->args, ' ') ? "are" : "is");
  return 0;
}

/* ==== help ================================================================ */

static void print_doc(FILE *f, const char *doc, int indent, int first_indent) {
  const char *p = doc;
  bool first = true;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    fprintf(f, "%*s%.*s\n", first ? first_indent : indent, "", (int)n, p);
    first = false;
    p += n;
    if (*p == '\n') p++;
  }
}

static void print_opts(FILE *f, const ctl_opt_t *opts) {
  for (const ctl_opt_t *o = opts; o && o->name; o++) {
    char head[64];
    if (o->short_name)
      snprintf(head, sizeof head, "-%c, %s%s%s", o->short_name, o->name, o->metavar ? " " : "",
               o->metavar ? o->metavar : "");
    else
      snprintf(head, sizeof head, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
    size_t hl = strlen(head);
    if (hl <= 20) {
      fprintf(f, "  %-20s  ", head);
      print_doc(f, o->doc, 24, 0);
    } else {
      fprintf(f, "  %s\n", head);
      print_doc(f, o->doc, 24, 24);
    }
  }
}

static void synopsis(const ctl_cmd_t *cmd, char *buf, size_t n) {
  snprintf(buf, n, "%s%s%s%s%s%s", cmd->noun, cmd->verb ? " " : "", cmd->verb ? cmd->verb : "",
           cmd->args[0] ? " " : "", cmd->args, cmd->opts ? " [options]" : "");
}

void ctl_help_cmd(ctl_t *c, const ctl_cmd_t *cmd) {
  char syn[128];
  synopsis(cmd, syn, sizeof syn);
  fprintf(c->out, "usage: runnelctl %s\n\n", syn);
  print_doc(c->out, cmd->doc, 0, 0);
  if (cmd->opts) {
    fprintf(c->out, "\noptions:\n");
    print_opts(c->out, cmd->opts);
  }
}

void ctl_help_noun(ctl_t *c, const char *noun) {
  fprintf(c->out, "usage: runnelctl %s <verb> ...\n\nverbs:\n", noun);
  for (size_t i = 0; i < ctl_ncmds; i++) {
    const ctl_cmd_t *cmd = &ctl_cmds[i];
    if (strcmp(cmd->noun, noun) != 0 || cmd->verb == NULL) continue;
    char head[64];
    snprintf(head, sizeof head, "%s %s", cmd->verb, cmd->args);
    fprintf(c->out, "  %-26s  %s\n", head, cmd->summary);
  }
  fprintf(c->out, "\nRun 'runnelctl %s <verb> --help' for a verb's options.\n", noun);
}

void ctl_help_main(ctl_t *c, FILE *f) {
  (void)c;
  fprintf(f, "usage: runnelctl [--broker HOST:PORT] [--json] <noun> [<verb>] ...\n\n"
             "Administer a runnel broker, produce and consume records.\n\ncommands:\n");
  for (size_t i = 0; i < ctl_ncmds; i++) {
    const ctl_cmd_t *cmd = &ctl_cmds[i];
    char head[64];
    snprintf(head, sizeof head, "%s%s%s %s", cmd->noun, cmd->verb ? " " : "", cmd->verb ? cmd->verb : "", cmd->args);
    fprintf(f, "  %-30s  %s\n", head, cmd->summary);
  }
  fprintf(f, "\nglobal options:\n");
  print_opts(f, global_opts);
  fprintf(f, "\nSizes are binary (10G = 10GiB = 10 x 2^30 bytes; KB/MB are refused); durations need a\n"
             "unit (500ms, 30s, 90m, 24h, 7d).\n"
             "Exit status: 0 success, 1 a failed operation (also a failed write to standard\n"
             "output), 2 a usage error.\n");
}

/* ==== man page ============================================================= */

/* roff-escape one line: backslashes, hyphens (as \-), a leading dot. */
static void man_text(FILE *f, const char *s, size_t n) {
  if (n > 0 && (s[0] == '.' || s[0] == '\'')) fputs("\\&", f);
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '\\')
      fputs("\\e", f);
    else if (s[i] == '-')
      fputs("\\-", f);
    else
      fputc(s[i], f);
  }
}

static void man_doc(FILE *f, const char *doc) {
  const char *p = doc;
  bool in_nf = false;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    bool literal = n >= 2 && p[0] == ' ' && p[1] == ' ';
    if (literal && !in_nf) fputs(".nf\n", f);
    if (!literal && in_nf) fputs(".fi\n", f);
    in_nf = literal;
    man_text(f, p, n);
    fputc('\n', f);
    p += n;
    if (*p == '\n') p++;
  }
  if (in_nf) fputs(".fi\n", f);
}

static void man_opts(FILE *f, const ctl_opt_t *opts) {
  for (const ctl_opt_t *o = opts; o && o->name; o++) {
    fputs(".TP\n", f);
    if (o->short_name) fprintf(f, "\\fB\\-%c\\fR, ", o->short_name);
    fputs("\\fB", f);
    man_text(f, o->name, strlen(o->name));
    fputs("\\fR", f);
    if (o->metavar) {
      fputs(" \\fI", f);
      man_text(f, o->metavar, strlen(o->metavar));
      fputs("\\fR", f);
    }
    fputc('\n', f);
    man_doc(f, o->doc);
  }
}

void ctl_print_man(ctl_t *c) {
  FILE *f = c->out;
  fprintf(f, ".\\\" Generated by runnelctl --print-man from its command table; do not edit.\n");
  fprintf(f, ".TH RUNNELCTL 1 \"\" \"runnelctl %s\" \"runnel manual\"\n", RN_CTL_VERSION);
  fputs(".SH NAME\nrunnelctl \\- administer a runnel broker, produce and consume records\n", f);
  fputs(".SH SYNOPSIS\n.B runnelctl\n[\\fB\\-\\-broker\\fR \\fIHOST:PORT\\fR] [\\fB\\-\\-json\\fR] \\fInoun\\fR "
        "[\\fIverb\\fR] [\\fIargs\\fR] [\\fIoptions\\fR]\n",
        f);
  fputs(".SH DESCRIPTION\nrunnelctl talks to one runneld over the native protocol (librunnel). Output is\n"
        "aligned tables for people, or with \\fB\\-\\-json\\fR one JSON document per command.\n"
        "Failures print one line on standard error.\n",
        f);
  fputs(".SH GLOBAL OPTIONS\n", f);
  man_opts(f, global_opts);
  fputs(".SH COMMANDS\n", f);
  for (size_t i = 0; i < ctl_ncmds; i++) {
    const ctl_cmd_t *cmd = &ctl_cmds[i];
    char syn[128];
    synopsis(cmd, syn, sizeof syn);
    fputs(".SS \"", f);
    man_text(f, syn, strlen(syn));
    fputs("\"\n", f);
    man_doc(f, cmd->doc);
    man_opts(f, cmd->opts);
  }
  fputs(".SH UNITS\nSizes are bytes or an integer with a binary unit: K, Ki, KiB, M, Mi, MiB, G, Gi, GiB,\n"
        "T, Ti, TiB (10G = 10GiB); KB and MB are refused. Durations are integers with a unit:\n"
        "ms, s, m, h, d (1h30m); a bare number is refused.\n",
        f);
  fputs(".SH EXIT STATUS\n0 success, 1 a failed operation (also a failed write to standard output), 2 a usage\n"
        "error.\n",
        f);
  fputs(".SH ENVIRONMENT\n.TP\n.B RUNNEL_BROKER\nthe broker when \\fB\\-\\-broker\\fR is not given.\n", f);
  fputs(".SH SEE ALSO\n.BR runneld (8)\n", f);
}

/* ==== bash completion ======================================================= */

static void words_of(FILE *f, const ctl_opt_t *opts) {
  for (const ctl_opt_t *o = opts; o && o->name; o++) {
    fprintf(f, " %s", o->name);
    if (o->short_name) fprintf(f, " -%c", o->short_name);
  }
}

void ctl_print_completion_bash(ctl_t *c) {
  FILE *f = c->out;
  fputs("# bash completion for runnelctl, generated by `runnelctl completion bash`.\n"
        "_runnelctl() {\n"
        "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" noun= verb= i w\n"
        "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
        "    w=\"${COMP_WORDS[i]}\"\n"
        "    case \"$w\" in\n"
        "      --broker) ((i++)) ;;\n"
        "      -*) ;;\n"
        "      *) if [[ -z $noun ]]; then noun=$w; elif [[ -z $verb ]]; then verb=$w; fi ;;\n"
        "    esac\n"
        "  done\n"
        "  local words=\n"
        "  case \"$noun\" in\n",
        f);
  /* nouns */
  fputs("    \"\") words=\"", f);
  for (size_t i = 0; i < ctl_ncmds; i++)
    if (i == 0 || strcmp(ctl_cmds[i].noun, ctl_cmds[i - 1].noun) != 0) fprintf(f, " %s", ctl_cmds[i].noun);
  words_of(f, global_opts);
  fputs("\" ;;\n", f);
  for (size_t i = 0; i < ctl_ncmds; i++) {
    const ctl_cmd_t *cmd = &ctl_cmds[i];
    if (i > 0 && strcmp(cmd->noun, ctl_cmds[i - 1].noun) == 0) continue;
    fprintf(f, "    %s)\n      case \"$verb\" in\n", cmd->noun);
    if (cmd->verb) {
      fputs("        \"\") words=\"", f);
      for (size_t k = i; k < ctl_ncmds && strcmp(ctl_cmds[k].noun, cmd->noun) == 0; k++)
        fprintf(f, " %s", ctl_cmds[k].verb);
      fputs(" --help\" ;;\n", f);
      for (size_t k = i; k < ctl_ncmds && strcmp(ctl_cmds[k].noun, cmd->noun) == 0; k++) {
        fprintf(f, "        %s) words=\"", ctl_cmds[k].verb);
        words_of(f, ctl_cmds[k].opts);
        fputs(" --help\" ;;\n", f);
      }
    } else if (strcmp(cmd->noun, "completion") == 0) {
      fputs("        \"\") words=\"bash\" ;;\n", f);
    } else {
      fputs("        *) words=\"", f);
      words_of(f, cmd->opts);
      fputs(" --help\" ;;\n", f);
    }
    fputs("      esac ;;\n", f);
  }
  fputs("  esac\n"
        "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
        "}\n"
        "complete -F _runnelctl runnelctl\n",
        f);
}

int ctl_completion(ctl_t *c, const ctl_args_t *a) {
  if (strcmp(a->pos[0], "bash") != 0)
    return ctl_usage(c, "completion: \"%s\" is not a supported shell (bash)", a->pos[0]);
  ctl_print_completion_bash(c);
  return 0;
}

/* ==== main ================================================================ */

int ctl_main(int argc, char **argv, FILE *in, FILE *out, FILE *err) {
  ctl_t c = {.in = in, .out = out, .err = err};
  c.out_tty = isatty(fileno(out)) == 1;
  c.err_tty = isatty(fileno(err)) == 1;
  const char *env = getenv("RUNNEL_BROKER");
  c.broker = env && *env ? env : RN_DEFAULT_BROKER;
  /* global options may appear anywhere */
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (rest == NULL) return CTL_EXIT_FAIL;
  int nrest = 0, status = -1;
  bool version = false, man = false;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    if (strcmp(s, "--json") == 0) {
      c.json = true;
    } else if (strcmp(s, "--version") == 0) {
      version = true;
    } else if (strcmp(s, "--print-man") == 0) {
      man = true;
    } else if (strcmp(s, "--broker") == 0) {
      if (i + 1 >= argc) {
        status = ctl_usage(&c, "--broker needs HOST:PORT");
        break;
      }
      c.broker = argv[++i];
    } else if (strncmp(s, "--broker=", 9) == 0) {
      c.broker = s + 9;
    } else {
      rest[nrest++] = argv[i];
    }
  }
  if (status >= 0) {
    /* usage error printed */
  } else if (version) {
    if (c.json) {
      json_t *o = json_object();
      json_object_set_new(o, "version", json_string(RN_CTL_VERSION));
      ctl_print_json(&c, o);
    } else {
      ctl_print(&c, "runnelctl %s\n", RN_CTL_VERSION);
    }
    status = 0;
  } else if (man) {
    ctl_print_man(&c);
    status = 0;
  } else if (nrest == 0) {
    ctl_help_main(&c, err);
    status = CTL_EXIT_USAGE;
  } else if (is_help(rest[0]) || strcmp(rest[0], "help") == 0) {
    ctl_help_main(&c, out);
    status = 0;
  } else {
    const char *noun = rest[0];
    if (strcmp(noun, "streams") == 0) noun = "stream";
    if (strcmp(noun, "groups") == 0) noun = "group";
    const ctl_cmd_t *cmd = NULL;
    bool noun_known = false, has_verbs = false;
    for (size_t i = 0; i < ctl_ncmds; i++) {
      if (strcmp(ctl_cmds[i].noun, noun) != 0) continue;
      noun_known = true;
      if (ctl_cmds[i].verb == NULL) {
        cmd = &ctl_cmds[i];
        break;
      }
      has_verbs = true;
    }
    int skip = 1;
    if (!noun_known) {
      status = ctl_usage(&c, "unknown command \"%s\"", rest[0]);
    } else if (has_verbs) {
      if (nrest < 2) {
        c.out = err;
        ctl_help_noun(&c, noun);
        c.out = out;
        status = CTL_EXIT_USAGE;
      } else if (is_help(rest[1])) {
        ctl_help_noun(&c, noun);
        status = 0;
      } else {
        const char *verb = strcmp(rest[1], "ls") == 0 ? "list" : rest[1];
        for (size_t i = 0; i < ctl_ncmds && !cmd; i++)
          if (strcmp(ctl_cmds[i].noun, noun) == 0 && strcmp(ctl_cmds[i].verb, verb) == 0) cmd = &ctl_cmds[i];
        if (cmd == NULL) status = ctl_usage(&c, "unknown verb \"%s %s\"", noun, rest[1]);
        skip = 2;
      }
    }
    if (cmd && status < 0) {
      ctl_args_t a;
      int rc = parse_args(&c, cmd, nrest - skip, rest + skip, &a);
      if (rc == 1)
        status = 0;
      else if (rc)
        status = rc;
      else
        status = cmd->run(&c, &a);
      free(a.vals);
    }
  }
  free(rest);
  rn_client_destroy(c.cl);
  return ctl_out_finish(&c, status);
}
