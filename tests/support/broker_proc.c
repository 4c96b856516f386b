/* broker_proc.c — see broker_proc.h. */
#include "broker_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#ifndef RN_TEST_RUNNELD
#define RN_TEST_RUNNELD "runneld"
#endif

const char *rn_test_runneld_path(void) {
  const char *env = getenv("RUNNELD");
  return env && *env ? env : RN_TEST_RUNNELD;
}

static void *copy_log(void *arg) {
  rn_test_broker_t *b = arg;
  int out = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  char buf[4096];
  for (;;) {
    ssize_t n = read(b->err_fd, buf, sizeof(buf));
    if (n <= 0) break;
    if (out >= 0 && write(out, buf, (size_t)n) < 0) break;
  }
  if (out >= 0) close(out);
  return NULL;
}

static unsigned long nofile_soft, nofile_hard; /* rn_test_broker_set_nofile */

void rn_test_broker_set_nofile(unsigned long soft, unsigned long hard) {
  nofile_soft = soft;
  nofile_hard = hard;
}

int rn_test_broker_start(rn_test_broker_t *b, const char *data_dir, const char *const *extra) {
  memset(b, 0, sizeof(*b));
  snprintf(b->data_dir, sizeof(b->data_dir), "%s", data_dir);
  mkdir(data_dir, 0755);
  snprintf(b->log_path, sizeof(b->log_path), "%s/runneld.log", data_dir);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC)) return -1;
  const char *argv[64];
  int argc = 0;
  argv[argc++] = rn_test_runneld_path();
  argv[argc++] = "--data-dir";
  argv[argc++] = data_dir;
  argv[argc++] = "--listen";
  argv[argc++] = "127.0.0.1:0";
  argv[argc++] = "--http";
  argv[argc++] = "127.0.0.1:0";
  /* A small journal: every start preallocates it (extra may override). */
  argv[argc++] = "--journal-bytes";
  argv[argc++] = "40MiB";
  for (int i = 0; extra && extra[i] && argc < 62; i++) argv[argc++] = extra[i];
  argv[argc] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(fds[1], 2);
    if (nofile_hard) {
      struct rlimit rl = {.rlim_cur = nofile_soft, .rlim_max = nofile_hard};
      if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(126);
    }
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
    }
    execv(argv[0], (char *const *)(uintptr_t)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  b->pid = pid;
  b->err_fd = fds[0];
  /* Read stderr line by line until the listening line (or EOF). */
  FILE *log = fopen(b->log_path, "a");
  char line[1024];
  size_t len = 0;
  int found = 0;
  for (;;) {
    char c;
    ssize_t n = read(b->err_fd, &c, 1);
    if (n <= 0) break;
    if (c != '\n' && len + 1 < sizeof(line)) {
      line[len++] = c;
      continue;
    }
    line[len] = 0;
    if (log) fprintf(log, "%s\n", line);
    len = 0;
    const char *p = strstr(line, "listening native=");
    if (p) {
      unsigned a, bb, cc, d, port, ha, hb, hc, hd, hport;
      if (sscanf(p, "listening native=%u.%u.%u.%u:%u http=%u.%u.%u.%u:%u", &a, &bb, &cc, &d, &port, &ha, &hb, &hc,
                 &hd, &hport) == 10) {
        b->port = (uint16_t)port;
        b->http_port = (uint16_t)hport;
        snprintf(b->addr, sizeof(b->addr), "127.0.0.1:%u", port);
        found = 1;
        break;
      }
    }
  }
  if (log) fclose(log);
  if (!found) {
    int st;
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    close(b->err_fd);
    b->pid = 0;
    fprintf(stderr, "runneld did not start; see %s\n", b->log_path);
    return -1;
  }
  b->log_thread_started = pthread_create(&b->log_thread, NULL, copy_log, b) == 0;
  return 0;
}

static int reap(rn_test_broker_t *b) {
  int st = 0;
  pid_t r;
  do r = waitpid(b->pid, &st, 0);
  while (r < 0 && errno == EINTR);
  b->pid = 0;
  if (b->log_thread_started) pthread_join(b->log_thread, NULL);
  b->log_thread_started = 0;
  close(b->err_fd);
  if (r < 0) return -1;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return -1;
}

int rn_test_broker_stop(rn_test_broker_t *b) {
  if (!b->pid) return -1;
  kill(b->pid, SIGTERM);
  return reap(b);
}

int rn_test_broker_wait(rn_test_broker_t *b) {
  if (!b->pid) return -1;
  return reap(b);
}

void rn_test_broker_kill(rn_test_broker_t *b) {
  if (!b->pid) return;
  kill(b->pid, SIGKILL);
  reap(b);
}

int rn_test_runneld_run(const char *const *args, char *out, size_t cap, int *started) {
  if (started) *started = 0;
  if (cap > 0) out[0] = '\0';
  int fds[2];
  if (pipe2(fds, O_CLOEXEC)) return -1;
  const char *argv[64];
  int argc = 0;
  argv[argc++] = rn_test_runneld_path();
  for (int i = 0; args && args[i] && argc < 62; i++) argv[argc++] = args[i];
  argv[argc] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execv(argv[0], (char *const *)(uintptr_t)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  size_t len = 0;
  int signalled = 0;
  for (;;) {
    char buf[4096];
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t take = (size_t)n;
    if (cap > 0 && len + take > cap - 1) take = cap - 1 - len;
    memcpy(out + len, buf, take);
    len += take;
    if (cap > 0) out[len] = '\0';
    if (!signalled && cap > 0 && strstr(out, "listening native=") != NULL) {
      if (started) *started = 1;
      kill(pid, SIGTERM); /* it was meant to be refused: stop it; keep reading to EOF */
      signalled = 1;
    }
  }
  close(fds[0]);
  int st = 0;
  pid_t r;
  do r = waitpid(pid, &st, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

int rn_test_run(const char *const *argv, char *out, size_t cap) {
  if (cap > 0) out[0] = '\0';
  int fds[2];
  if (pipe2(fds, O_CLOEXEC)) return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execv(argv[0], (char *const *)(uintptr_t)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  size_t len = 0;
  for (;;) {
    char buf[4096];
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t take = (size_t)n;
    if (cap > 0 && len + take > cap - 1) take = cap - 1 - len;
    memcpy(out + len, buf, take);
    len += take;
    if (cap > 0) out[len] = '\0';
  }
  close(fds[0]);
  int st = 0;
  pid_t r;
  do r = waitpid(pid, &st, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

static char *slurp_file(const char *path) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (!buf) abort();
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  for (;;) {
    if (fd < 0) break;
    if (cap - len < 4096) {
      cap *= 2;
      buf = realloc(buf, cap);
      if (!buf) abort();
    }
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += (size_t)n;
  }
  if (fd >= 0) close(fd);
  buf[len] = '\0';
  return buf;
}

int rn_test_ctl_run(const char *ctl_path, const char *addr, const char *const *args, const char *scratch_dir,
                    char **out, char **err) {
  static unsigned seq;
  const char *env = getenv("RUNNELCTL");
  const char *argv[64];
  int argc = 0;
  argv[argc++] = env && *env ? env : ctl_path;
  argv[argc++] = "--broker";
  argv[argc++] = addr;
  for (int i = 0; args && args[i] && argc < 63; i++) argv[argc++] = args[i];
  argv[argc] = NULL;
  char op[700], ep[700];
  unsigned n = __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED);
  snprintf(op, sizeof op, "%s/ctl-%d-%u.out", scratch_dir, (int)getpid(), n);
  snprintf(ep, sizeof ep, "%s/ctl-%d-%u.err", scratch_dir, (int)getpid(), n);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int in = open("/dev/null", O_RDONLY);
    int o = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || o < 0 || e < 0) _exit(126);
    dup2(in, 0);
    dup2(o, 1);
    dup2(e, 2);
    execv(argv[0], (char *const *)(uintptr_t)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int st = 0;
  pid_t r;
  do r = waitpid(pid, &st, 0);
  while (r < 0 && errno == EINTR);
  *out = slurp_file(op);
  *err = slurp_file(ep);
  unlink(op);
  unlink(ep);
  if (r < 0) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- S3 stand-ins ---------------------------------------------------------------- */

static uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  uint16_t port = 0;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &al) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static int port_open(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static void pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void last_line(const char *text, char *out, size_t cap) {
  size_t n = strlen(text);
  while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ')) n--;
  size_t b = n;
  while (b > 0 && text[b - 1] != '\n') b--;
  snprintf(out, cap, "%.*s", (int)(n - b), text + b);
}

static int s3peer_spawn(rn_test_s3peer_t *p, char *why, size_t whylen) {
  char portarg[16], console[32], addr[32], script[1100];
  snprintf(portarg, sizeof portarg, "%u", p->port);
  snprintf(addr, sizeof addr, "127.0.0.1:%u", p->port);
  snprintf(console, sizeof console, "127.0.0.1:%u", free_port());
  snprintf(script, sizeof script, "%s/s3rver/bin/s3rver.js", p->bin);
  const char *s3rver[] = {"/usr/bin/node", script, "-d", p->dir, "-a", "127.0.0.1", "-p", portarg, "--silent",
                          "--configure-bucket", p->bucket, NULL};
  const char *minio[] = {p->bin, "server", p->dir, "--address", addr, "--console-address", console, "--quiet", NULL};
  const char *const *argv = strcmp(p->kind, "minio") == 0 ? minio : s3rver;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(why, whylen, "%s: fork: %s", p->kind, strerror(errno));
    return -1;
  }
  if (pid == 0) {
    int log = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (log < 0 || in < 0) _exit(126);
    dup2(in, 0);
    dup2(log, 1);
    dup2(log, 2);
    setenv("MINIO_ROOT_USER", p->access_key, 1);
    setenv("MINIO_ROOT_PASSWORD", p->secret_key, 1);
    setenv("MINIO_BROWSER", "off", 1);
    execv(argv[0], (char *const *)(uintptr_t)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  p->pid = pid;
  /* until it accepts connections: a bounded poll of a starting child */
  for (int i = 0; i < 1200; i++) {
    if (port_open(p->port)) return 0;
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      p->pid = 0;
      snprintf(why, whylen, "%s exited at start; see %s", p->kind, p->log_path);
      return -1;
    }
    pause_ms(50);
  }
  rn_test_s3peer_stop(p);
  snprintf(why, whylen, "%s did not listen on %s within 60 s; see %s", p->kind, addr, p->log_path);
  return -1;
}

static int s3peer_mkbucket(rn_test_s3peer_t *p, char *why, size_t whylen) {
  if (strcmp(p->kind, "minio") != 0) return 0; /* s3rver: --configure-bucket */
  const char *argv[] = {p->conf.python, p->conf.tier_s3_py, "--endpoint", p->endpoint, "--bucket", p->bucket,
                        "--access-key", p->access_key, "--secret-key", p->secret_key, "mkbucket", NULL};
  static char out[8192];
  for (int i = 0; i < 100; i++) { /* MinIO listens a moment before it serves */
    if (rn_test_run(argv, out, sizeof out) == 0) return 0;
    pause_ms(100);
  }
  char l[300];
  last_line(out, l, sizeof l);
  snprintf(why, whylen, "minio: cannot create bucket %s: %s", p->bucket, l);
  return -1;
}

int rn_test_s3peer_start(rn_test_s3peer_t *p, const rn_test_s3peer_conf_t *conf, const char *kind, const char *dir,
                         char *why, size_t whylen) {
  memset(p, 0, sizeof(*p));
  p->conf = *conf;
  snprintf(p->kind, sizeof p->kind, "%s", kind);
  snprintf(p->dir, sizeof p->dir, "%s", dir);
  snprintf(p->log_path, sizeof p->log_path, "%.690s.log", dir);
  snprintf(p->bucket, sizeof p->bucket, "rnt");
  int minio = strcmp(kind, "minio") == 0;
  snprintf(p->access_key, sizeof p->access_key, "%s", minio ? "rnkey" : "S3RVER");
  snprintf(p->secret_key, sizeof p->secret_key, "%s", minio ? "rnsecret123" : "S3RVER");
  const char *argv[] = {conf->install_script, kind, NULL};
  static char out[16384];
  int rc = rn_test_run(argv, out, sizeof out);
  char l[1100];
  last_line(out, l, sizeof l);
  if (rc != 0) {
    snprintf(why, whylen, "%s cannot be installed here: %s", kind, l);
    return 77;
  }
  snprintf(p->bin, sizeof p->bin, "%.1000s", l);
  mkdir(dir, 0755);
  p->port = free_port();
  snprintf(p->endpoint, sizeof p->endpoint, "http://127.0.0.1:%u", p->port);
  if (s3peer_spawn(p, why, whylen) != 0) return -1;
  if (s3peer_mkbucket(p, why, whylen) != 0) {
    rn_test_s3peer_stop(p);
    return -1;
  }
  return 0;
}

int rn_test_s3peer_restart(rn_test_s3peer_t *p, char *why, size_t whylen) {
  if (p->pid) return 0;
  return s3peer_spawn(p, why, whylen);
}

void rn_test_s3peer_stop(rn_test_s3peer_t *p) {
  if (!p->pid) return;
  kill(p->pid, SIGTERM);
  int st;
  pid_t r;
  do r = waitpid(p->pid, &st, 0);
  while (r < 0 && errno == EINTR);
  p->pid = 0;
}
