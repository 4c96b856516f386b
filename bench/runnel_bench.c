/*
 * runnel_bench.c — entry point of runnel-bench: dispatches subcommands.
 * Each subcommand prints a readable summary, or one JSON line with --json.
 */
#include <stdio.h>
#include <string.h>

int rn_bench_storage(int argc, char **argv);
int rn_bench_broker(int argc, char **argv);
int rn_bench_dedup(int argc, char **argv);
int rn_bench_tcp(int argc, char **argv);
int rn_bench_syncprobe(int argc, char **argv);
int rn_bench_http(int argc, char **argv);
#ifdef RN_BENCH_HAVE_REDIS
int rn_bench_redis(int argc, char **argv);
#endif
#ifdef RN_BENCH_HAVE_NATS
int rn_bench_nats(int argc, char **argv);
#endif
#ifdef RN_BENCH_HAVE_KAFKA
int rn_bench_kafka(int argc, char **argv);
#endif

static void usage(FILE *out) {
  fprintf(out,
          "usage: runnel-bench <command> [options]\n"
          "\n"
          "commands:\n"
          "  storage   append to a log on local disk and compare with the raw\n"
          "            write+fdatasync limit of the same file system, in one run\n"
          "  broker    N producers and M consumers through runneld: throughput, publish\n"
          "            and end-to-end latency, and the raw limit of the same file system\n"
          "  dedup     the cost of a stream's dedup window on produce: the same load to a\n"
          "            stream without and with one, alternating rounds; the ratio\n"
          "  redis     the same load against Redis Streams (hiredis: XADD, XREADGROUP)%s\n"
          "  nats      the same load against NATS JetStream (libnats: async publish, pull)%s\n"
          "  kafka     the same load against Apache Kafka, one KRaft broker (librdkafka)%s\n"
          "  http      the HTTP APIs' server CPU per record (PutRecords, REST) and GetRecords\n"
          "            catch-up against native consumption, in one run\n"
          "  tcp       loopback TCP bandwidth (the network side of the physical limit)\n"
          "  syncprobe the cost of one durable round over N files: fdatasync one after\n"
          "            another, in parallel, or one file / a preallocated journal\n"
          "\n"
          "Run 'runnel-bench <command> --help' for its options.\n",
#ifdef RN_BENCH_HAVE_REDIS
          "",
#else
          "\n            [not built: libhiredis-dev was not found]",
#endif
#ifdef RN_BENCH_HAVE_NATS
          "",
#else
          "\n            [not built: libnats-dev was not found]",
#endif
#ifdef RN_BENCH_HAVE_KAFKA
          ""
#else
          "\n            [not built: librdkafka-dev was not found]"
#endif
  );
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "storage")) return rn_bench_storage(argc - 1, argv + 1);
  if (!strcmp(argv[1], "broker")) return rn_bench_broker(argc - 1, argv + 1);
  if (!strcmp(argv[1], "dedup")) return rn_bench_dedup(argc - 1, argv + 1);
  if (!strcmp(argv[1], "http")) return rn_bench_http(argc - 1, argv + 1);
  if (!strcmp(argv[1], "tcp")) return rn_bench_tcp(argc - 1, argv + 1);
  if (!strcmp(argv[1], "syncprobe")) return rn_bench_syncprobe(argc - 1, argv + 1);
#ifdef RN_BENCH_HAVE_REDIS
  if (!strcmp(argv[1], "redis")) return rn_bench_redis(argc - 1, argv + 1);
#endif
#ifdef RN_BENCH_HAVE_NATS
  if (!strcmp(argv[1], "nats")) return rn_bench_nats(argc - 1, argv + 1);
#endif
#ifdef RN_BENCH_HAVE_KAFKA
  if (!strcmp(argv[1], "kafka")) return rn_bench_kafka(argc - 1, argv + 1);
#endif
  if (!strcmp(argv[1], "redis") || !strcmp(argv[1], "nats") || !strcmp(argv[1], "kafka")) {
    fprintf(stderr, "runnel-bench: '%s' was not built: its C client library (%s) was not found at "
                    "configure time; install it and re-run cmake\n", argv[1],
            !strcmp(argv[1], "redis")  ? "Debian libhiredis-dev"
            : !strcmp(argv[1], "nats") ? "Debian libnats-dev"
                                       : "Debian librdkafka-dev");
    return 2;
  }
  fprintf(stderr, "runnel-bench: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
