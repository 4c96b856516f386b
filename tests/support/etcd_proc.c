/*
 * etcd_proc.c — start and stop a real etcd for tests (etcd_proc.h).
 * Readiness is GET /health over a raw socket, retried every 50 ms while the
 * process lives, for at most 30 s; stop is by PID with waitpid.
 */
#include "etcd_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_MS 30000

bool rn_etcd_proc_available(void) { return access(RN_ETCD_BIN, X_OK) == 0; }

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint16_t free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return 0;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  uint16_t port = 0;
  if (!bind(s, (struct sockaddr *)&a, sizeof a) && !getsockname(s, (struct sockaddr *)&a, &al)) port = ntohs(a.sin_port);
  close(s);
  return port;
}

/* GET /health: true on HTTP 200. */
static bool healthy(uint16_t port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  struct timeval tv = {.tv_sec = 1};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = false;
  if (!connect(s, (struct sockaddr *)&a, sizeof a)) {
    char req[160], resp[64];
    int n = snprintf(req, sizeof req, "GET /health HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n", port);
    if (write(s, req, (size_t)n) == n) {
      ssize_t r = read(s, resp, sizeof resp - 1);
      ok = r > 12 && !strncmp(resp, "HTTP/1.1 200", 12);
    }
  }
  close(s);
  return ok;
}

int rn_etcd_proc_start(rn_etcd_proc_t *p, const char *dir, char *why, size_t whylen) {
  if (!p->port) {
    p->port = free_port();
    p->peer_port = free_port();
    snprintf(p->dir, sizeof p->dir, "%s", dir);
  }
  if (!p->port || !p->peer_port) {
    snprintf(why, whylen, "etcd: no free port");
    return -1;
  }
  mkdir(p->dir, 0755);
  snprintf(p->url, sizeof p->url, "http://127.0.0.1:%u", p->port);
  char data[600], logf[600], curl[80], purl[80], cluster[120];
  snprintf(data, sizeof data, "%s/data", p->dir);
  snprintf(logf, sizeof logf, "%s/etcd.log", p->dir);
  snprintf(curl, sizeof curl, "http://127.0.0.1:%u", p->port);
  snprintf(purl, sizeof purl, "http://127.0.0.1:%u", p->peer_port);
  snprintf(cluster, sizeof cluster, "t=%s", purl);
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(why, whylen, "etcd: fork: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execl(RN_ETCD_BIN, "etcd", "--name", "t", "--data-dir", data, "--listen-client-urls", curl,
          "--advertise-client-urls", curl, "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
          "--initial-cluster", cluster, "--logger", "zap", "--log-level", "warn", (char *)NULL);
    _exit(127);
  }
  p->pid = pid;
  int64_t deadline = now_ms() + READY_MS;
  while (now_ms() < deadline) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      p->pid = 0;
      snprintf(why, whylen, "etcd exited (status %d) before answering; see %s", st, logf);
      return -1;
    }
    if (healthy(p->port)) return 0;
    struct timespec ts = {0, 50 * 1000000L}; /* readiness poll pacing, bounded by the deadline */
    nanosleep(&ts, NULL);
  }
  snprintf(why, whylen, "etcd did not answer /health within %d ms; see %s", READY_MS, logf);
  rn_etcd_proc_stop(p, true);
  return -1;
}

void rn_etcd_proc_signal(rn_etcd_proc_t *p, int sig) {
  if (p->pid <= 0) return;
  kill(p->pid, sig);
  /* kill only queues the signal: wait until the stop (or continue) took effect */
  int st, flags = sig == SIGSTOP ? WUNTRACED : sig == SIGCONT ? WCONTINUED : -1;
  if (flags < 0) return;
  for (;;) {
    pid_t r = waitpid(p->pid, &st, flags);
    if (r < 0 && errno == EINTR) continue;
    if (r != p->pid) return;
    if ((sig == SIGSTOP && WIFSTOPPED(st)) || (sig == SIGCONT && WIFCONTINUED(st))) return;
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      p->pid = 0;
      return;
    }
  }
}

void rn_etcd_proc_stop(rn_etcd_proc_t *p, bool kill9) {
  if (p->pid <= 0) return;
  kill(p->pid, SIGCONT);
  kill(p->pid, kill9 ? SIGKILL : SIGTERM);
  int st;
  while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
  }
  p->pid = 0;
}
