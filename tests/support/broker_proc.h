/*
 * broker_proc.h — start the real runneld for integration tests, on loopback
 * ports chosen at run time, and stop it by PID.
 *
 * The broker runs with --listen 127.0.0.1:0 --http 127.0.0.1:0; the harness
 * learns the bound ports by reading the broker's stderr up to its
 * "listening native=... http=..." line (a blocking read: no sleeping or
 * polling), then copies the rest of stderr to <dir>/runneld.log from a
 * thread so the broker never blocks on a full pipe.
 */
#ifndef RN_TEST_BROKER_PROC_H
#define RN_TEST_BROKER_PROC_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct rn_test_broker {
  pid_t pid;          /* 0 when not running */
  uint16_t port;      /* native protocol */
  uint16_t http_port;
  char addr[32];      /* "127.0.0.1:<port>" */
  char data_dir[512];
  char log_path[600];
  int err_fd;
  pthread_t log_thread;
  int log_thread_started;
} rn_test_broker_t;

/* Path of the runneld binary under test (set by CMake). */
const char *rn_test_runneld_path(void);

/* Start runneld with data in data_dir (created if missing) and extra
 * arguments (NULL-terminated list, may be NULL). Returns 0 once it listens;
 * -1 if it exited or never listened (its log says why). */
int rn_test_broker_start(rn_test_broker_t *b, const char *data_dir, const char *const *extra);

/* From now on, start runneld with RLIMIT_NOFILE soft and hard (set in the
 * child before exec); 0, 0 = inherit the test's limits (the default). */
void rn_test_broker_set_nofile(unsigned long soft, unsigned long hard);

/* SIGTERM and wait; returns the exit status (0 = clean) or -1. */
int rn_test_broker_stop(rn_test_broker_t *b);

/* Wait for a broker that was told to stop some other way (e.g. the test
 * sent SIGTERM itself while requests were in flight); sends no signal, as a
 * second SIGTERM would make runneld exit at once. Returns the exit status
 * (0 = clean) or -1. */
int rn_test_broker_wait(rn_test_broker_t *b);

/* SIGKILL and wait. */
void rn_test_broker_kill(rn_test_broker_t *b);

/* Run runneld with exactly args (NULL-terminated, after argv[0]; no
 * --data-dir or ports are added, nothing is created) for a start that is
 * expected to be refused, or for an action such as --print-config. Collects
 * its stdout and stderr (truncated to cap - 1 bytes, NUL-terminated) until
 * it exits. Should it start serving instead (a "listening" line), it is
 * stopped with SIGTERM and *started is set to 1 (started may be NULL).
 * Returns its exit status, or -1 (fork failure, killed by a signal). */
int rn_test_runneld_run(const char *const *args, char *out, size_t cap, int *started);

/* Run argv[0] (a path) with argv[1..] (NULL-terminated), stdin /dev/null,
 * and collect its stdout and stderr (truncated to cap - 1 bytes,
 * NUL-terminated) until it exits; for probing what a tool supports
 * (`runneld --help`, `runnelctl --help`). Returns its exit status, or -1
 * (fork failure, killed by a signal, exec failure = 127). */
int rn_test_run(const char *const *argv, char *out, size_t cap);

/* Run `ctl_path --broker addr args...` (args NULL-terminated; ctl_path is
 * runnelctl, or $RUNNELCTL when set) to completion with stdin /dev/null;
 * its stdout and stderr go through files under scratch_dir (removed after)
 * into *out and *err (malloc'd, NUL-terminated; the caller frees). Returns
 * the exit status, 128 + the signal that ended it, or -1 (fork failed). */
int rn_test_ctl_run(const char *ctl_path, const char *addr, const char *const *args, const char *scratch_dir,
                    char **out, char **err);

/* ---- S3 stand-ins (s3rver, MinIO) for the tiered-storage tests -------------
 *
 * Installed by tests/support/s3peers-install.sh (into a cache; its path is
 * conf.install_script), started on 127.0.0.1 on a port free at start and a
 * data directory of the test's, with bucket "rnt" created (s3rver:
 * --configure-bucket; MinIO: conf.tier_s3_py mkbucket under conf.python),
 * stopped by PID. Readiness is a bounded poll of the port (a child starting
 * has no event to wait on), never a fixed sleep. */
typedef struct rn_test_s3peer_conf {
  const char *install_script; /* tests/support/s3peers-install.sh */
  const char *python;         /* /usr/bin/python3 (Debian's boto3) */
  const char *tier_s3_py;     /* tests/conformance/tier_s3.py */
} rn_test_s3peer_conf_t;

typedef struct rn_test_s3peer {
  rn_test_s3peer_conf_t conf;
  char kind[16];        /* "s3rver" | "minio" */
  pid_t pid;            /* 0 when not running */
  uint16_t port;
  char dir[700];        /* its data directory */
  char log_path[800];
  char bin[1024];       /* s3rver: the node_modules directory; minio: the binary */
  char endpoint[64];    /* "http://127.0.0.1:<port>" */
  char bucket[16];      /* "rnt" */
  char access_key[32], secret_key[32];
} rn_test_s3peer_t;

/* Install (once) and start kind in dir (created). Returns 0 running with
 * the bucket made; 77 with why when it cannot be installed here (the
 * caller skips); -1 with why when it was installed but did not run. */
int rn_test_s3peer_start(rn_test_s3peer_t *p, const rn_test_s3peer_conf_t *conf, const char *kind, const char *dir,
                         char *why, size_t whylen);
/* Start a stopped peer again on the same port and data directory (what it
 * stored is still there). 0 or -1 with why. */
int rn_test_s3peer_restart(rn_test_s3peer_t *p, char *why, size_t whylen);
/* SIGTERM by PID and wait (SIGKILL after that if needed is the caller's
 * choice: s3rver and MinIO both exit on SIGTERM). No-op when stopped. */
void rn_test_s3peer_stop(rn_test_s3peer_t *p);

#endif
