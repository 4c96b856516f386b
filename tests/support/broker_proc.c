/* broker_proc.c — see broker_proc.h. */
#include "broker_proc.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

static int reap(rn_test_broker_t *b, bool killed) {
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
  /* -1 to the caller; say which signal, as that is what a flake report needs */
  if (WIFSIGNALED(st) && !killed)
    fprintf(stderr, "runneld (%s) was killed by signal %d (%s)%s\n", b->log_path, WTERMSIG(st), strsignal(WTERMSIG(st)),
            WCOREDUMP(st) ? ", core dumped" : "");
  return -1;
}

int rn_test_broker_stop(rn_test_broker_t *b) {
  if (!b->pid) return -1;
  kill(b->pid, SIGTERM);
  return reap(b, false);
}

int rn_test_broker_wait(rn_test_broker_t *b) {
  if (!b->pid) return -1;
  return reap(b, false);
}

void rn_test_broker_kill(rn_test_broker_t *b) {
  if (!b->pid) return;
  kill(b->pid, SIGKILL);
  reap(b, true);
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
