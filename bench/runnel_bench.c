/*
 * runnel_bench.c — entry point of runnel-bench: dispatches subcommands.
 * Each subcommand prints a readable summary, or one JSON line with --json.
 */
#include <stdio.h>
#include <string.h>

int rn_bench_storage(int argc, char **argv);
int rn_bench_broker(int argc, char **argv);

static void usage(FILE *out) {
  fprintf(out,
          "usage: runnel-bench <command> [options]\n"
          "\n"
          "commands:\n"
          "  storage   append to a log on local disk and compare with the raw\n"
          "            write+fdatasync limit of the same file system, in one run\n"
          "  broker    N producers and M consumers through runneld: throughput, publish\n"
          "            and end-to-end latency, and the raw limit of the same file system\n"
          "\n"
          "Run 'runnel-bench <command> --help' for its options.\n");
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "storage")) return rn_bench_storage(argc - 1, argv + 1);
  if (!strcmp(argv[1], "broker")) return rn_bench_broker(argc - 1, argv + 1);
  fprintf(stderr, "runnel-bench: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
