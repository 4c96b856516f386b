/*
 * s3peer.h — S3 stand-ins for the tests: s3rver (npm; does not check
 * signatures) and MinIO (Go; verifies SigV4, implements multipart), started
 * on 127.0.0.1 with a port chosen at run time and a data directory of the
 * test's, stopped by PID.
 *
 * rn_s3peer_start installs the tool when missing (tests/support/
 * s3peers-install.sh, cached under ~/.cache/runnel or RUNNEL_S3PEERS_CACHE;
 * the first MinIO install builds it and takes minutes), creates the bucket
 * (s3rver: configureBuckets; MinIO: the bucket's directory made before it
 * starts), starts the server and returns once it answers HTTP requests
 * (the readiness check is a request: GET /minio/health/live, or any answer
 * from s3rver after its "ready" line; between tries it waits on the
 * server's output with a bound, never a fixed sleep). Its output goes to
 * "<dir>.log". When the tool cannot be installed or does not start, start
 * returns -1 with why saying so: callers skip (exit 77) with that reason.
 */
#ifndef RN_TEST_S3PEER_H
#define RN_TEST_S3PEER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum { RN_S3PEER_S3RVER = 0, RN_S3PEER_MINIO = 1 } rn_s3peer_kind_t;

typedef struct rn_s3peer {
  rn_s3peer_kind_t kind;
  pid_t pid;            /* 0 when not running */
  uint16_t port;
  char endpoint[64];    /* "http://127.0.0.1:<port>" */
  char bucket[32];      /* created before start returns */
  char access_key[32];  /* the peer's key pair (test credentials) */
  char secret_key[64];
  char dir[600];        /* its data */
  char log_path[620];   /* "<dir>.log" */
  char tool[700];       /* s3rver's node_modules directory, or the minio binary */
  int out_fd;           /* the server's stdout+stderr, copied to the log by a thread */
  pthread_t copier;
  bool copier_started;
} rn_s3peer_t;

/* "s3rver", "minio". */
const char *rn_s3peer_name(rn_s3peer_kind_t kind);

/* Start kind with its data in dir (created when missing). Returns 0 once it
 * answers, or -1 with why filled (the tool could not be installed or
 * started: the caller skips). Blocking (may install first). */
int rn_s3peer_start(rn_s3peer_t *p, rn_s3peer_kind_t kind, const char *dir, char *why, size_t whylen);

/* Stop it by PID (SIGTERM; SIGKILL when it has not exited within 10 s) and
 * wait. The data stays. No-op when not running. */
void rn_s3peer_stop(rn_s3peer_t *p);

/* Start it again on the same port with the same data (after stop; stops it
 * first when running). Returns 0 once it answers, or -1 with why. */
int rn_s3peer_restart(rn_s3peer_t *p, char *why, size_t whylen);

#endif
