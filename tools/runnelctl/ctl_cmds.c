/*
 * ctl_cmds.c — runnelctl's command table: every noun, verb, option and line
 * of help exists once, here. ctl_help.c generates --help, the man page and
 * the bash completion from it; ctl_main.c parses argv against it; the noun
 * files (ctl_stream.c, ctl_produce.c, ctl_consume.c, ctl_group.c,
 * ctl_status.c) only run commands.
 *
 * Help text conventions: docs are lines separated by '\n' (no trailing
 * newline); a line that starts with two spaces is an example or a list item
 * and is kept as is (.nf in the man page).
 */
#include <stddef.h>

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
    {"--tiered", 0, NULL,
     "tiered storage: sealed segments go to the broker's object store\n(its s3_bucket or tier_dir) and older records are read from\n"
     "there; --retention stays the total, local and remote"},
    {"--local-retention", 0, "D",
     "with --tiered: how long an uploaded segment stays on the broker's\ndisk (1h, 6h, 7d), or forever (every segment stays); default:\n"
     "the broker's default_local_retention, else forever"},
    {"--local-retention-bytes", 0, "S", "with --tiered: and at most this much per shard on the disk\n(64MiB, 10GiB), or unlimited (the default)"},
    {"--dedup-field", 0, "F",
     "keep a dedup window keyed by field F of each record's data read\nas a JSON object (event_uuid, or a dotted path meta.id): a record\n"
     "whose id was stored within the window is acknowledged with the\noriginal's shard and offset and not stored again"},
    {"--dedup-key", 0, "K", "record-id: key the dedup window by the record id instead of a\nfield (runnelctl produce sends none; librunnel's rn_message_t.id)"},
    {"--dedup-window", 0, "D", "how long ids are remembered, by arrival (1h, 30m; at most 7d and\nthe retention); default 1h with --dedup-field or --dedup-key"},
    {NULL, 0, NULL, NULL}};

static const ctl_opt_t opts_sink_create[] = {
    {"--stream", 0, "STREAM", "the stream to deliver (required)"},
    {"--to", 0, "DEST", "s3://BUCKET/PREFIX/ (the broker's S3 endpoint, region and\ncredentials: its s3_* settings) or file:///DIR/ (required)"},
    {"--format", 0, "F", "ndjson (default: one JSON record per line) or parquet (needs\n--schema)"},
    {"--schema", 0, "FILE", "Parquet: a YAML file of columns (name, type string|int64|double|\nboolean|timestamp, JSON path, nullable), metadata columns and\ncompression (docs/sink-formats.md)"},
    {"--compression", 0, "C", "ndjson: gzip (default) or none; parquet: snappy (default, or\nthe schema's), gzip, zstd or none"},
    {"--prefix", 0, "TEMPLATE", "object key prefix under DEST: literal text, !{timestamp:yyyy/MM/dd/HH}\nand !{field:PATH} (default !{timestamp:yyyy/MM/dd/HH}/); Hive style:\n  event_type=!{field:event_type}/year=!{timestamp:yyyy}/month=!{timestamp:MM}/"},
    {"--error-prefix", 0, "TEMPLATE", "where records that cannot be parsed or converted go, with the\nreason: !{error} and !{timestamp:...} (default\nerrors/!{error}/!{timestamp:yyyy/MM/dd}/)"},
    {"--event-time-field", 0, "PATH", "!{timestamp:...} from this JSON field (ISO 8601 or epoch ms)\ninstead of the arrival time"},
    {"--buffer-bytes", 0, "S", "write a shard's object once this much is buffered (default\n5MiB; 64KiB to 128MiB)"},
    {"--buffer-interval", 0, "D", "... or once its oldest record waited this long (default 300s;\n10ms to 1h)"},
    {"--start", 0, "POS", "earliest (default: archive what the stream holds) or latest"},
    {NULL, 0, NULL, NULL}};

static const ctl_opt_t opts_setret[] = {
    {"--retention", 0, "D", "500ms, 30s, 90m, 24h, 7d, or forever"},
    {"--retention-bytes", 0, "S", "per shard: 512MiB, 10GiB, 1TiB, or unlimited"},
    {"--local-retention", 0, "D", "tiered streams: what stays on the broker's disk: 1h, 7d, or\nforever"},
    {"--local-retention-bytes", 0, "S", "tiered streams: per shard on the disk: 10GiB, or unlimited"},
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
     "Create stream NAME ([A-Za-z0-9_.-], 1 to 128 characters).\n"
     "Duplicates: runnelctl stream create events --shards 4 --dedup-field event_uuid\n"
     "--dedup-window 1h drops a record whose event_uuid was stored within the last hour\n"
     "(see docs/dedup.md); records without the field are stored (and counted in /metrics).",
     opts_create, 1, 1, ctl_stream_create},
    {"stream", "list", "", "every stream with its settings",
     "Every stream with its shard count, retention and durability.", NULL, 0, 0, ctl_stream_list},
    {"stream", "describe", "NAME", "settings, shards, offsets and bytes stored",
     "The stream's settings, and every shard with its hash-key range (decimal, as Kinesis),\n"
     "start and end offset, the time of its newest record and the bytes it stores.\n"
     "A tiered stream also shows per shard where its records are: the local start (below it\n"
     "records are read from the store), the bytes and segments on the broker's disk and in\n"
     "the store, and the upload backlog (sealed segments not uploaded yet: bytes, segments\n"
     "and how long the oldest has waited).",
     NULL, 1, 1, ctl_stream_describe},
    {"stream", "delete", "NAME", "delete a stream and its data", "Delete the stream and all its data.", NULL, 1, 1,
     ctl_stream_delete},
    {"stream", "set-retention", "NAME", "change a stream's retention",
     "Change the retention; an option left out keeps its current value. --retention is the\n"
     "total; --local-retention and --local-retention-bytes apply to tiered streams only.",
     opts_setret, 1, 1, ctl_stream_set_retention},
    {"stream", "restore", "NAME", "recreate a tiered stream from the broker's store",
     "Recreate tiered stream NAME from the broker's object store on a broker that does not\n"
     "have it (an empty data directory, a lost disk): the same shards, hash-key ranges and\n"
     "retention, from the stream's descriptor and each shard's manifest in the store. Every\n"
     "record still in total retention is then served again (older ones from the store).\n"
     "Refused (EEXIST) when the stream exists on the broker.",
     NULL, 1, 1, ctl_stream_restore},
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
    {"sink", "create", "NAME", "deliver a stream to S3 as NDJSON or Parquet objects",
     "Create archive sink NAME: the broker reads every shard of --stream like a consumer\n"
     "group and writes the records to --to as objects of one shard's records in order,\n"
     "named <prefix><sink>-<shardId>-<first offset>-<last offset>.<ext>, buffered per shard\n"
     "by --buffer-bytes and --buffer-interval. Its checkpoint moves only after the PUT\n"
     "succeeded and a retry after a crash rewrites the same objects: every record lands in\n"
     "exactly one object. Records that are not JSON or do not convert go under\n"
     "--error-prefix with the reason. An unreachable store stalls the sink (its lag grows);\n"
     "nothing is lost. Example:\n"
     "  runnelctl sink create lake --stream events --to s3://bucket/raw/ --format parquet\n"
     "    --schema events.yaml --prefix 'event_type=!{field:event_type}/!{timestamp:yyyy/MM/dd/HH}/'\n"
     "    --buffer-bytes 5MiB --buffer-interval 300s",
     opts_sink_create, 1, 1, ctl_sink_create},
    {"sink", "list", "", "sinks with their stream, destination, lag and state",
     "Every sink of the broker: stream, format, destination, lag in records (summed over\n"
     "its shards), objects written since the broker started, state.",
     NULL, 0, 0, ctl_sink_list},
    {"sink", "describe", "NAME", "a sink's configuration and per-shard position and lag",
     "The sink's configuration, state, and per shard: checkpoint (every record below is in\n"
     "an object), end offset, lag in records and ms ('-' unknown; --json null), bytes\n"
     "buffered, objects written, state (reading, buffering, flushing, retrying, paused,\n"
     "stopped) and the last error.",
     NULL, 1, 1, ctl_sink_describe},
    {"sink", "pause", "NAME", "stop delivering; the sink keeps its position",
     "Pause the sink: a flush being written finishes, nothing new is read; records buffered\n"
     "but not written are read again on resume.", NULL, 1, 1, ctl_sink_pause},
    {"sink", "resume", "NAME", "deliver again from the checkpoint", "Resume a paused sink from its checkpoint.",
     NULL, 1, 1, ctl_sink_resume},
    {"sink", "delete", "NAME", "delete a sink (its objects stay)",
     "Delete the sink and its checkpoints. Objects already written stay in the store.", NULL, 1, 1,
     ctl_sink_delete},
    {"status", NULL, "", "the broker: version, uptime, data directory, streams, health",
     "The broker's version, uptime, data directory and its free space, the number of\n"
     "streams and shards, its limits (--json), failed shards and its health. Exit status 1\n"
     "while the broker is degraded (a shard failed).",
     opts_watch, 0, 0, ctl_status},
    {"tier", "status", "", "tiered storage: uploads, backlog, cache, errors",
     "The broker's tiered storage: its store, the uploader (uploads active, the backlog of\n"
     "sealed segments not uploaded yet and the age of the oldest), bytes uploaded and\n"
     "downloaded, what the store holds, the read cache (size, hits, misses, evictions),\n"
     "remote GETs in flight, orphans collected, remote deletes, corrupt objects, the data\n"
     "disk against tier_disk_high_water (back-pressure: produce to tiered streams answers\n"
     "EBACKLOG while it is on), the last error, and per store operation the requests,\n"
     "errors, retries and latency (p50 and p99 as histogram bucket bounds).",
     opts_watch, 0, 0, ctl_tier_status},
    {"completion", NULL, "SHELL", "print a shell completion script (bash)",
     "Print the completion script for SHELL (bash), generated from the command table:\n"
     "  source <(runnelctl completion bash)",
     NULL, 1, 1, ctl_completion},
};
const size_t ctl_ncmds = sizeof ctl_cmds / sizeof ctl_cmds[0];

const ctl_opt_t ctl_global_opts[] = {
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
