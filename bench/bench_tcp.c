/*
 * bench_tcp.c — `runnel-bench tcp`: loopback TCP bandwidth, the network side
 * of the physical limit the broker benchmarks are compared with. N client
 * threads each write --write-size buffers on their own connection to a
 * listener on 127.0.0.1:0 for --duration seconds; N receiver threads read
 * and discard. Bandwidth = bytes received / time from the start until every
 * receiver saw EOF. Owns its sockets and threads; nothing outlives the call.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"

int rn_bench_tcp(int argc, char **argv);

#define MAX_STREAMS 64

typedef struct tstream {
  int wfd, rfd;
  size_t write_size;
  int64_t end_ns;
  uint64_t received;
  int err;
  pthread_t wth, rth;
} tstream_t;

static void *writer_main(void *arg) {
  tstream_t *s = arg;
  char *buf = malloc(s->write_size);
  if (buf) {
    memset(buf, 'x', s->write_size);
    while (bench_now_ns() < s->end_ns) {
      size_t off = 0;
      while (off < s->write_size) {
        ssize_t n = write(s->wfd, buf + off, s->write_size - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          s->err = errno ? errno : EIO;
          goto done;
        }
        off += (size_t)n;
      }
    }
  } else {
    s->err = ENOMEM;
  }
done:
  free(buf);
  shutdown(s->wfd, SHUT_WR);
  return NULL;
}

static void *reader_main(void *arg) {
  tstream_t *s = arg;
  size_t cap = 256 * 1024;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  for (;;) {
    ssize_t n = read(s->rfd, buf, cap);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    s->received += (uint64_t)n;
  }
  free(buf);
  return NULL;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: runnel-bench tcp [options]\n"
          "\n"
          "Loopback TCP bandwidth: N connections on 127.0.0.1, writers and readers on their own\n"
          "threads (2N threads: on a 2-core machine one stream already takes both cores).\n"
          "\n"
          "  --streams N        connections (default 1)\n"
          "  --write-size N     bytes per write() (default 64K; K/M suffixes)\n"
          "  --duration SECS    (default 3)\n"
          "  --label TEXT       copied into the JSON row\n"
          "  --json             one JSON line instead of the summary\n");
}

int rn_bench_tcp(int argc, char **argv) {
  unsigned streams = 1;
  size_t write_size = 64 * 1024;
  double duration = 3;
  const char *label = "";
  int json = 0;
  static const struct option lo[] = {{"streams", required_argument, 0, 's'}, {"write-size", required_argument, 0, 'w'},
                                     {"duration", required_argument, 0, 't'}, {"label", required_argument, 0, 'L'},
                                     {"json", no_argument, 0, 'j'},          {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 's': streams = (unsigned)atoi(optarg); break;
    case 'w': write_size = (size_t)bench_parse_size(optarg); break;
    case 't': duration = atof(optarg); break;
    case 'L': label = optarg; break;
    case 'j': json = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!streams || streams > MAX_STREAMS || !write_size || duration <= 0) {
    fprintf(stderr, "runnel-bench tcp: invalid options (1 <= streams <= %d, write-size > 0, duration > 0)\n",
            MAX_STREAMS);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof(sa);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, (int)streams) ||
      getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
    fprintf(stderr, "runnel-bench tcp: listen on 127.0.0.1: %s\n", strerror(errno));
    if (lfd >= 0) close(lfd);
    return 1;
  }
  tstream_t st[MAX_STREAMS];
  memset(st, 0, sizeof(st));
  unsigned n = 0;
  int rc = 1;
  for (; n < streams; n++) {
    st[n].wfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (st[n].wfd < 0 || connect(st[n].wfd, (struct sockaddr *)&sa, sizeof(sa))) break;
    st[n].rfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (st[n].rfd < 0) {
      close(st[n].wfd);
      break;
    }
    st[n].write_size = write_size;
  }
  close(lfd);
  if (n < streams) {
    fprintf(stderr, "runnel-bench tcp: connect: %s\n", strerror(errno));
    goto out;
  }
  double load0 = bench_loadavg1();
  int64_t t0 = bench_now_ns();
  for (unsigned i = 0; i < n; i++) {
    st[i].end_ns = t0 + (int64_t)(duration * 1e9);
    pthread_create(&st[i].rth, NULL, reader_main, &st[i]);
    pthread_create(&st[i].wth, NULL, writer_main, &st[i]);
  }
  uint64_t total = 0;
  int err = 0;
  for (unsigned i = 0; i < n; i++) {
    pthread_join(st[i].wth, NULL);
    pthread_join(st[i].rth, NULL);
    total += st[i].received;
    if (st[i].err && !err) err = st[i].err;
  }
  double el = (double)(bench_now_ns() - t0) / 1e9;
  double mbps = (double)total / el / 1e6;
  if (json)
    printf("{\"bench\":\"tcp\",\"system\":\"loopback\",\"label\":\"%s\",\"streams\":%u,\"write_size\":%zu,"
           "\"duration_s\":%.1f,\"bytes\":%" PRIu64 ",\"seconds\":%.3f,\"mb_per_s\":%.1f,\"error\":\"%s\","
           "\"loadavg_start\":%.2f,\"loadavg_end\":%.2f}\n",
           label, streams, write_size, duration, total, el, mbps, err ? strerror(err) : "", load0, bench_loadavg1());
  else
    printf("runnel-bench tcp: %u stream(s) on 127.0.0.1, writes of %zu B: %.1f MB/s (%" PRIu64 " B in %.2f s)%s%s\n",
           streams, write_size, mbps, total, el, err ? "; error: " : "", err ? strerror(err) : "");
  rc = err ? 1 : 0;
out:
  for (unsigned i = 0; i < n; i++) {
    close(st[i].wfd);
    close(st[i].rfd);
  }
  return rc;
}
