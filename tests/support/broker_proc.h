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

#endif
