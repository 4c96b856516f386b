/*
 * etcd_proc.h — a real etcd (/usr/bin/etcd) on 127.0.0.1 for a test:
 * client and peer ports chosen at run time, data in a directory of the
 * test's. Plain libc and POSIX. Stopped by PID only.
 */
#ifndef RN_TEST_ETCD_PROC_H
#define RN_TEST_ETCD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RN_ETCD_BIN "/usr/bin/etcd"

typedef struct rn_etcd_proc {
  pid_t pid;          /* 0 when not running */
  uint16_t port, peer_port;
  char dir[512];      /* data dir parent (etcd.log and data/ inside) */
  char url[64];       /* "http://127.0.0.1:port" */
} rn_etcd_proc_t;

/* Is /usr/bin/etcd there (else the test exits 77)? */
bool rn_etcd_proc_available(void);
/* Start etcd in dir (created; its ports chosen now when p->port is 0, else
 * reused: a restart on the same port and data). Waits until /health
 * answers 200, at most 30 s. Returns 0, or -1 with why. */
int rn_etcd_proc_start(rn_etcd_proc_t *p, const char *dir, char *why, size_t whylen);
/* Send sig to it; SIGSTOP and SIGCONT return once it is stopped / running. */
void rn_etcd_proc_signal(rn_etcd_proc_t *p, int sig);
/* SIGTERM (or SIGKILL when kill9) and reap. */
void rn_etcd_proc_stop(rn_etcd_proc_t *p, bool kill9);

#endif
