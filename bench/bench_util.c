/* bench_util.c — see bench_util.h. Nothing here keeps state. */
#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_parse_size(const char *s) {
  char *end;
  double v = strtod(s, &end);
  switch (*end) {
  case 'k': case 'K': v *= 1024; break;
  case 'm': case 'M': v *= 1024 * 1024; break;
  case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
  case '\0': break;
  default: return 0;
  }
  return v > 0 ? (uint64_t)v : 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double bench_median(const double *v, unsigned n) {
  double *s = malloc(n * sizeof(double));
  if (!s) return 0;
  memcpy(s, v, n * sizeof(double));
  qsort(s, n, sizeof(double), cmp_double);
  double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  free(s);
  return m;
}

void bench_json_list(char *out, size_t cap, const double *v, unsigned n, int decimals) {
  size_t l = 0;
  out[0] = 0;
  for (unsigned i = 0; i < n && l < cap; i++) {
    int w = snprintf(out + l, cap - l, "%s%.*f", i ? "," : "", decimals, v[i]);
    if (w < 0) break;
    l += (size_t)w;
  }
}

/* ---- time, CPU, load ---------------------------------------------------- */

int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sleep_until_ns(int64_t t) {
  struct timespec ts = {.tv_sec = (time_t)(t / 1000000000), .tv_nsec = (long)(t % 1000000000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

void bench_sleep_ms(unsigned ms) { bench_sleep_until_ns(bench_now_ns() + (int64_t)ms * 1000000); }

double bench_proc_cpu_s(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return -1;
  unsigned long ut = 0, st = 0;
  /* after ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double bench_self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

double bench_loadavg1(void) {
  double l = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = -1;
    fclose(f);
  }
  return l;
}

/* ---- the raw limit -------------------------------------------------------- */

int bench_raw_slice(const char *path, size_t write_size, double seconds, double *bytes, double *secs) {
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  char *buf = malloc(write_size);
  if (!buf) {
    close(fd);
    errno = ENOMEM;
    return -1;
  }
  for (size_t i = 0; i < write_size; i++) buf[i] = (char)('a' + i % 26);
  int64_t t0 = bench_now_ns(), end = t0 + (int64_t)(seconds * 1e9);
  uint64_t off = 0, total = 0;
  int err = 0;
  while (bench_now_ns() < end) {
    if (pwrite(fd, buf, write_size, (off_t)off) != (ssize_t)write_size || fdatasync(fd)) {
      err = errno ? errno : EIO;
      break;
    }
    off += write_size;
    total += write_size;
    if (off >= (256u << 20)) {
      if (ftruncate(fd, 0)) {
        err = errno;
        break;
      }
      off = 0;
    }
  }
  double el = (double)(bench_now_ns() - t0) / 1e9;
  free(buf);
  close(fd);
  unlink(path);
  if (err) {
    errno = err;
    return -1;
  }
  *bytes += (double)total;
  *secs += el;
  return 0;
}

/* ---- child server processes ------------------------------------------------ */

pid_t bench_proc_spawn(const char *who, const char *const *argv, const char *logpath) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "%s: fork: %s\n", who, strerror(errno));
    return -1;
  }
  if (pid == 0) {
    if (logpath) {
      int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) dup2(fd, 2);
    }
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
    }
    execvp(argv[0], (char *const *)(uintptr_t)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  return pid;
}

bool bench_proc_alive(pid_t pid, int *status) {
  int st = 0;
  pid_t r = waitpid(pid, &st, WNOHANG);
  if (r == pid || (r < 0 && errno == ECHILD)) {
    if (status) *status = st;
    return false;
  }
  return true;
}

int bench_proc_stop(pid_t pid, double grace_s) {
  if (pid <= 0) return -1;
  kill(pid, SIGTERM);
  int st = 0;
  int64_t end = bench_now_ns() + (int64_t)(grace_s * 1e9);
  while (bench_now_ns() < end) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (r < 0 && errno != EINTR) return -1;
    bench_sleep_ms(10); /* shutdown only: waitpid has no timeout */
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

unsigned bench_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof(sa);
  unsigned port = 0;
  if (!bind(fd, (struct sockaddr *)&sa, sizeof(sa)) && !getsockname(fd, (struct sockaddr *)&sa, &sl))
    port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  return (flag == FTW_DP ? rmdir(path) : unlink(path)) ? -1 : 0;
}

int bench_rm_rf(const char *dir) { return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

void bench_cmd_line(const char *cmd, char *out, size_t cap) {
  out[0] = 0;
  FILE *p = popen(cmd, "r");
  if (!p) return;
  if (fgets(out, (int)cap, p)) out[strcspn(out, "\r\n")] = 0;
  else out[0] = 0;
  pclose(p);
}
