/*
 * test_cluster_kinesis.c — the Kinesis API (Debian's python3-boto3,
 * tests/conformance/cluster_kinesis.py) against a three-broker cluster
 * through a broker that does not lead the shard, across a kill -9 of the
 * leader: every acknowledged PutRecord is read back through that broker at
 * its sequence number after the failover. REST ingest through the other
 * follower first: its records are there too.
 *
 * etcd and the brokers: tests/support/clustertest.h. Skips (77) without
 * /usr/bin/etcd or python3-boto3.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clustertest.h"

#define STREAM "clicks"

static rn_ct_t g_ct;

static void test_kinesis_failover(void **state) {
  (void)state;
  rn_ct_start(&g_ct, 3);
  rn_ct_create(&g_ct, STREAM, 1, 3, 2);
  uint32_t leader = rn_ct_wait_leader(&g_ct, STREAM, 0, 0, 3);
  uint32_t via = leader % 3 + 1;
  char endpoint[64], pid[16];
  snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%u", (unsigned)g_ct.br[via].http_port);
  snprintf(pid, sizeof pid, "%ld", (long)g_ct.br[leader].pid);
  const char *argv[] = {"/usr/bin/python3", RN_TEST_CONFORMANCE_DIR "/cluster_kinesis.py",
                        "--endpoint", endpoint, "--stream", STREAM, "--count", "400", "--kill-after", "150",
                        "--kill-pid", pid, NULL};
  static char out[1 << 16];
  int rc = rn_test_run(argv, out, sizeof out);
  print_message("%s", out);
  rn_test_broker_kill(&g_ct.br[leader]); /* reap it: the script killed it */
  if (rc != 0) fail_msg("cluster_kinesis.py exited %d (leader %u, through broker %u)", rc, leader, via);
  rn_ct_stop(&g_ct);
}

static int teardown(void **state) {
  (void)state;
  rn_ct_kill_all(&g_ct);
  return 0;
}

int main(void) {
  if (!rn_etcd_proc_available()) {
    fprintf(stderr, "SKIP: %s is not installed (Debian etcd-server; tools/deps.sh installs it)\n", RN_ETCD_BIN);
    return 77;
  }
  const char *probe[] = {"/usr/bin/python3", "-c", "import boto3", NULL};
  char out[512];
  if (rn_test_run(probe, out, sizeof out) != 0) {
    fprintf(stderr, "SKIP: python3-boto3 is not installed (tools/deps.sh installs it): %s\n", out);
    return 77;
  }
  const struct CMUnitTest tests[] = {cmocka_unit_test_teardown(test_kinesis_failover, teardown)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
