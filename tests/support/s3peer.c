/*
 * s3peer.c — start s3rver or MinIO on loopback for a test (s3peer.h).
 *
 * Plain libc and POSIX only (tests link it without the S3 client): the
 * installer runs as a child whose stdout names the tool; the server runs as
 * a child in a process group of its own with stdout and stderr on a pipe;
 * readiness is an HTTP request over a raw socket, retried while the server
 * is alive, paced by poll(2) on that pipe (new output, or 200 ms) and
 * bounded by a minute; after that a thread copies the pipe to the log so
 * the server never blocks on it. Stop waits for the exit on a pidfd.
 */
#include "s3peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_MS 60000

const char *rn_s3peer_name(rn_s3peer_kind_t kind) { return kind == RN_S3PEER_MINIO ? "minio" : "s3rver"; }

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void mkdirs(const char *path) {
  char tmp[700];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *s = tmp + 1; (s = strchr(s, '/')); s++) {
    *s = 0;
    mkdir(tmp, 0755);
    *s = '/';
  }
  mkdir(tmp, 0755);
}

/* The installer's path: RUNNEL_S3PEERS_INSTALL, else next to this file. */
static void installer_path(char *out, size_t cap) {
  const char *env = getenv("RUNNEL_S3PEERS_INSTALL");
  if (env && *env) {
    snprintf(out, cap, "%s", env);
    return;
  }
  const char *file = __FILE__;
  const char *slash = strrchr(file, '/');
  snprintf(out, cap, "%.*s/s3peers-install.sh", slash ? (int)(slash - file) : 1, slash ? file : ".");
}

/* Run the installer for kind: its last stdout line into tool. */
static int install(rn_s3peer_t *p, char *why, size_t whylen) {
  char script[700], errlog[700];
  installer_path(script, sizeof script);
  snprintf(errlog, sizeof errlog, "%s.install.log", p->dir);
  int fds[2];
  if (pipe(fds)) {
    snprintf(why, whylen, "%s: pipe: %s", rn_s3peer_name(p->kind), strerror(errno));
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(why, whylen, "%s: fork: %s", rn_s3peer_name(p->kind), strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(fds[1], 1);
    int e = open(errlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (e >= 0) dup2(e, 2);
    close(fds[0]);
    close(fds[1]);
    execl("/bin/bash", "bash", script, rn_s3peer_name(p->kind), (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  char out[4096];
  size_t n = 0;
  ssize_t r;
  while ((r = read(fds[0], out + n, sizeof out - 1 - n)) > 0 || (r < 0 && errno == EINTR))
    if (r > 0) n += (size_t)r;
  out[n] = 0;
  close(fds[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  while (n && (out[n - 1] == '\n' || out[n - 1] == '\r')) out[--n] = 0;
  const char *last = strrchr(out, '\n');
  last = last ? last + 1 : out;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !*last) {
    char msg[512] = "";
    FILE *fp = fopen(errlog, "r");
    if (fp) { /* its last line says why */
      char line[512];
      while (fgets(line, sizeof line, fp)) snprintf(msg, sizeof msg, "%s", line);
      fclose(fp);
      msg[strcspn(msg, "\n")] = 0;
    }
    snprintf(why, whylen, "%s cannot be installed here: %s", rn_s3peer_name(p->kind),
             msg[0] ? msg : "s3peers-install.sh failed");
    return -1;
  }
  snprintf(p->tool, sizeof p->tool, "%.690s", last);
  return 0;
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

/* One HTTP/1.1 request to 127.0.0.1:port; the status, or -1 (no answer). */
static int http_status(uint16_t port, const char *method, const char *path) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct timeval tv = {.tv_sec = 5};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int status = -1;
  if (!connect(s, (struct sockaddr *)&a, sizeof a)) {
    char req[256], resp[64];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n", method,
                     path, port);
    if (write(s, req, (size_t)n) == n) {
      ssize_t r = read(s, resp, sizeof resp - 1);
      if (r > 12 && !strncmp(resp, "HTTP/1.", 7)) {
        resp[r] = 0;
        status = atoi(resp + 9);
      }
    }
  }
  close(s);
  return status;
}

static void *copier_main(void *arg) {
  rn_s3peer_t *p = arg;
  int log = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  char buf[4096];
  ssize_t r;
  while ((r = read(p->out_fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
    if (r > 0 && log >= 0 && write(log, buf, (size_t)r) < 0) break;
  if (log >= 0) close(log);
  return NULL;
}

static int launch(rn_s3peer_t *p, char *why, size_t whylen) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC)) {
    snprintf(why, whylen, "%s: pipe: %s", rn_s3peer_name(p->kind), strerror(errno));
    return -1;
  }
  char addr[64], console[64], script[1200];
  snprintf(addr, sizeof addr, "127.0.0.1:%u", p->port);
  uint16_t cport = free_port();
  snprintf(console, sizeof console, "127.0.0.1:%u", cport);
  snprintf(script, sizeof script,
           "const S3rver = require('s3rver');"
           "new S3rver({port: %u, address: '127.0.0.1', directory: process.argv[1], silent: true,"
           " serviceEndpoint: 'localhost', configureBuckets: [{name: '%s'}]}).run().then(() => console.log('ready'),"
           " e => { console.error(e); process.exit(1); });",
           p->port, p->bucket);
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(why, whylen, "%s: fork: %s", rn_s3peer_name(p->kind), strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    setpgid(0, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    if (p->kind == RN_S3PEER_S3RVER) {
      setenv("NODE_PATH", p->tool, 1);
      /* s3rver's continuation tokens use DES, which Node's OpenSSL 3 keeps
       * in its legacy provider: without it a listing of more than one page
       * answers 500 InternalError */
      execlp("node", "node", "--openssl-legacy-provider", "-e", script, p->dir, (char *)NULL);
    } else {
      setenv("MINIO_ROOT_USER", p->access_key, 1);
      setenv("MINIO_ROOT_PASSWORD", p->secret_key, 1);
      setenv("MINIO_BROWSER", "off", 1);
      setenv("MINIO_UPDATE", "off", 1);
      execl(p->tool, "minio", "server", p->dir, "--address", addr, "--console-address", console, "--quiet",
            (char *)NULL);
    }
    _exit(127);
  }
  close(fds[1]);
  p->pid = pid;
  p->out_fd = fds[0];
  int log = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  /* until it answers: a request each round, paced by its output */
  int64_t deadline = now_ms() + READY_MS;
  bool said_ready = p->kind != RN_S3PEER_S3RVER, ready = false, exited = false;
  char tail[512] = "";
  while (!ready && now_ms() < deadline) {
    if (said_ready) {
      int st = p->kind == RN_S3PEER_MINIO ? http_status(p->port, "GET", "/minio/health/live")
                                          : http_status(p->port, "GET", "/");
      if (st == 200 || (p->kind == RN_S3PEER_S3RVER && st > 0)) {
        ready = true;
        break;
      }
    }
    int wst;
    if (waitpid(pid, &wst, WNOHANG) == pid) {
      exited = true;
      break;
    }
    struct pollfd pf = {.fd = fds[0], .events = POLLIN};
    if (poll(&pf, 1, 200) == 1) {
      char buf[2048];
      ssize_t r = read(fds[0], buf, sizeof buf - 1);
      if (r > 0) {
        buf[r] = 0;
        if (log >= 0 && write(log, buf, (size_t)r) < 0) {
        }
        snprintf(tail, sizeof tail, "%.500s", buf);
        if (strstr(buf, "ready")) said_ready = true;
      } else if (r == 0) { /* it closed its output: it is exiting */
        while (waitpid(pid, &wst, 0) < 0 && errno == EINTR) {
        }
        exited = true;
        break;
      }
    }
  }
  if (log >= 0) close(log);
  if (!ready) {
    if (!exited) {
      kill(pid, SIGKILL);
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
      }
    }
    p->pid = 0;
    close(fds[0]);
    p->out_fd = -1;
    tail[strcspn(tail, "\n")] = 0;
    snprintf(why, whylen, "%s did not start on %s (%s): %s (log: %s)", rn_s3peer_name(p->kind), addr,
             exited ? "it exited" : "no answer within a minute", tail, p->log_path);
    return -1;
  }
  p->copier_started = pthread_create(&p->copier, NULL, copier_main, p) == 0;
  return 0;
}

int rn_s3peer_start(rn_s3peer_t *p, rn_s3peer_kind_t kind, const char *dir, char *why, size_t whylen) {
  memset(p, 0, sizeof *p);
  p->kind = kind;
  p->out_fd = -1;
  snprintf(p->dir, sizeof p->dir, "%s", dir);
  snprintf(p->log_path, sizeof p->log_path, "%s.log", dir);
  snprintf(p->bucket, sizeof p->bucket, "runnel-test");
  if (kind == RN_S3PEER_S3RVER) {
    snprintf(p->access_key, sizeof p->access_key, "S3RVER"); /* s3rver's stock key pair */
    snprintf(p->secret_key, sizeof p->secret_key, "S3RVER");
  } else {
    snprintf(p->access_key, sizeof p->access_key, "runneltest");
    snprintf(p->secret_key, sizeof p->secret_key, "runneltest-secret-key");
  }
  mkdirs(dir);
  if (install(p, why, whylen)) return -1;
  if (kind == RN_S3PEER_MINIO) { /* MinIO takes a top-level directory of its drive as a bucket */
    char b[700];
    snprintf(b, sizeof b, "%s/%s", dir, p->bucket);
    mkdirs(b);
  }
  p->port = free_port();
  if (!p->port) {
    snprintf(why, whylen, "%s: no free loopback port", rn_s3peer_name(kind));
    return -1;
  }
  snprintf(p->endpoint, sizeof p->endpoint, "http://127.0.0.1:%u", p->port);
  return launch(p, why, whylen);
}

void rn_s3peer_stop(rn_s3peer_t *p) {
  if (!p->pid) return;
  int pfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
  kill(p->pid, SIGTERM);
  bool gone = false;
  if (pfd >= 0) {
    struct pollfd pf = {.fd = pfd, .events = POLLIN};
    gone = poll(&pf, 1, 10000) == 1;
    close(pfd);
  }
  if (!gone) kill(p->pid, SIGKILL);
  while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
  }
  p->pid = 0;
  if (p->copier_started) pthread_join(p->copier, NULL); /* the pipe closed with the server */
  p->copier_started = false;
  if (p->out_fd >= 0) close(p->out_fd);
  p->out_fd = -1;
}

int rn_s3peer_restart(rn_s3peer_t *p, char *why, size_t whylen) {
  rn_s3peer_stop(p);
  return launch(p, why, whylen);
}
