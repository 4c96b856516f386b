/*
 * bench_syncprobe.c — `runnel-bench syncprobe`: what one broker-wide durable
 * round costs when N shard files each took one write (issue 12, the
 * measurement before choosing a design). One round = N writes of
 * --write-bytes, then the flush; four ways of flushing:
 *   seq      each file appended at its end, fdatasync one file after another
 *   parallel each file appended at its end, every fdatasync submitted at once
 *            (io_uring IORING_OP_FSYNC + IORING_FSYNC_DATASYNC; a thread per
 *            file when io_uring cannot be set up)
 *   one      the same N writes appended to ONE file, one fdatasync
 *   journal  like one, but the file was preallocated (fallocate, zero-filled
 *            and flushed once) and is overwritten in place, wrapping
 * and, as the raw limit of the same file system in the same run, the loop
 * pwrite(N x write-bytes) + fdatasync (bench_raw_slice). The run alternates
 * --rounds times raw, seq, parallel, one, journal for duration/rounds seconds
 * each, so drift on a shared machine hits every mode alike. Per mode: round
 * latency p50/p99, rounds/s and the median of the per-slice ratios of its
 * rounds/s to the raw loop's writes/s.
 *
 * Files live in a fresh subdirectory of --dir, removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_util.h"
#include "hist.h"

int rn_bench_syncprobe(int argc, char **argv);

enum { M_SEQ, M_PAR, M_ONE, M_JOURNAL, M_COUNT };
static const char *const mode_name[M_COUNT] = {"seq", "parallel", "one", "journal"};

#define SEG_BYTES (256ull << 20) /* appended files restart at the broker's segment size */

typedef struct probe {
  unsigned files;
  size_t wb;
  char *buf;
  int *fds;      /* the N shard files */
  uint64_t *off; /* their append offsets */
  int one_fd;
  uint64_t one_off;
  int jfd;
  uint64_t joff, jsize;
  struct io_uring ring;
  int have_ring;
  pthread_t *th;
} probe_t;

static void usage(FILE *out) {
  fprintf(out,
          "usage: runnel-bench syncprobe [options]\n"
          "\n"
          "One round: N files each get one write at their end, then the flush, four ways:\n"
          "  seq (fdatasync one after another), parallel (all at once: io_uring, or a thread\n"
          "  per file), one (the N writes appended to one file, one fdatasync), journal (like\n"
          "  one, into a preallocated file overwritten in place).\n"
          "\n"
          "  --dir DIR            where to write (a fresh subdirectory, removed after; default ./data)\n"
          "  --files N            shard files per round (default 16)\n"
          "  --write-bytes N      bytes written per file per round (default 4K; K/M suffixes)\n"
          "  --duration S         seconds per mode in all (default 4)\n"
          "  --rounds N           alternate the modes and the raw loop N times (default 4)\n"
          "  --journal-bytes N    size of the preallocated journal (default 64M)\n"
          "  --json               one JSON line instead of the summary\n");
}

static int fail(const char *what) {
  fprintf(stderr, "runnel-bench syncprobe: %s: %s\n", what, strerror(errno));
  return -1;
}

static void *sync_thread(void *arg) {
  int fd = (int)(intptr_t)arg;
  return fdatasync(fd) ? (void *)1 : NULL;
}

static int write_all(int fd, const char *buf, size_t n, uint64_t off) {
  return pwrite(fd, buf, n, (off_t)off) == (ssize_t)n ? 0 : -1;
}

/* One round of `mode`. 0, or -1 with a message. */
static int round_once(probe_t *p, int mode) {
  unsigned n = p->files;
  switch (mode) {
  case M_SEQ:
  case M_PAR:
    for (unsigned i = 0; i < n; i++) {
      if (p->off[i] + p->wb > SEG_BYTES) {
        if (ftruncate(p->fds[i], 0)) return fail("ftruncate");
        p->off[i] = 0;
      }
      if (write_all(p->fds[i], p->buf, p->wb, p->off[i])) return fail("pwrite");
      p->off[i] += p->wb;
    }
    if (mode == M_SEQ) {
      for (unsigned i = 0; i < n; i++)
        if (fdatasync(p->fds[i])) return fail("fdatasync");
    } else if (p->have_ring) {
      for (unsigned i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);
        io_uring_prep_fsync(sqe, p->fds[i], IORING_FSYNC_DATASYNC);
      }
      int r = io_uring_submit_and_wait(&p->ring, n);
      if (r < 0) {
        errno = -r;
        return fail("io_uring_submit_and_wait");
      }
      for (unsigned i = 0; i < n; i++) {
        struct io_uring_cqe *cqe;
        r = io_uring_wait_cqe(&p->ring, &cqe);
        if (r < 0 || cqe->res < 0) {
          errno = r < 0 ? -r : -cqe->res;
          return fail("fdatasync (io_uring)");
        }
        io_uring_cqe_seen(&p->ring, cqe);
      }
    } else {
      int err = 0;
      for (unsigned i = 0; i < n; i++)
        if (pthread_create(&p->th[i], NULL, sync_thread, (void *)(intptr_t)p->fds[i])) return fail("pthread_create");
      for (unsigned i = 0; i < n; i++) {
        void *res;
        pthread_join(p->th[i], &res);
        if (res) err = 1;
      }
      if (err) {
        errno = EIO;
        return fail("fdatasync (thread)");
      }
    }
    return 0;
  case M_ONE:
    if (p->one_off + n * p->wb > SEG_BYTES) {
      if (ftruncate(p->one_fd, 0)) return fail("ftruncate");
      p->one_off = 0;
    }
    for (unsigned i = 0; i < n; i++, p->one_off += p->wb)
      if (write_all(p->one_fd, p->buf, p->wb, p->one_off)) return fail("pwrite");
    return fdatasync(p->one_fd) ? fail("fdatasync") : 0;
  default: /* M_JOURNAL */
    if (p->joff + n * p->wb > p->jsize) p->joff = 0;
    for (unsigned i = 0; i < n; i++, p->joff += p->wb)
      if (write_all(p->jfd, p->buf, p->wb, p->joff)) return fail("pwrite");
    return fdatasync(p->jfd) ? fail("fdatasync") : 0;
  }
}

/* The preallocated journal: fallocate, zero-fill, flush (data and metadata). */
static int journal_open(probe_t *p, const char *path) {
  p->jfd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
  if (p->jfd < 0) return fail("open journal");
  int r = posix_fallocate(p->jfd, 0, (off_t)p->jsize);
  if (r) {
    errno = r;
    return fail("posix_fallocate");
  }
  size_t chunk = 1u << 20;
  char *z = calloc(1, chunk);
  if (!z) return fail("calloc");
  for (uint64_t o = 0; o < p->jsize; o += chunk) {
    size_t len = p->jsize - o < chunk ? (size_t)(p->jsize - o) : chunk;
    if (write_all(p->jfd, z, len, o)) {
      free(z);
      return fail("zero-fill journal");
    }
  }
  free(z);
  return fsync(p->jfd) ? fail("fsync journal") : 0;
}

int rn_bench_syncprobe(int argc, char **argv) {
  const char *dir = "./data";
  unsigned files = 16, rounds = 4;
  uint64_t wb = 4096, jbytes = 64ull << 20;
  double duration = 4;
  int json = 0;
  static const struct option lo[] = {
      {"dir", required_argument, 0, 'd'},      {"files", required_argument, 0, 'f'},
      {"write-bytes", required_argument, 0, 'w'}, {"duration", required_argument, 0, 'D'},
      {"rounds", required_argument, 0, 'R'},   {"journal-bytes", required_argument, 0, 'J'},
      {"json", no_argument, 0, 'j'},           {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
    case 'd': dir = optarg; break;
    case 'f': files = (unsigned)atoi(optarg); break;
    case 'w': wb = bench_parse_size(optarg); break;
    case 'D': duration = atof(optarg); break;
    case 'R': rounds = (unsigned)atoi(optarg); break;
    case 'J': jbytes = bench_parse_size(optarg); break;
    case 'j': json = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!files || files > 4096 || !wb || wb > (16u << 20) || !(duration > 0) || !rounds || rounds > 64 ||
      jbytes < files * wb) {
    fprintf(stderr, "runnel-bench syncprobe: invalid options (1 <= files <= 4096, 0 < write-bytes <= 16M, "
                    "duration > 0, 1 <= rounds <= 64, journal-bytes >= files x write-bytes)\n");
    return 2;
  }

  mkdir(dir, 0755);
  char work[4096];
  snprintf(work, sizeof(work), "%s/bench-syncprobe-XXXXXX", dir);
  if (!mkdtemp(work)) {
    fprintf(stderr, "runnel-bench syncprobe: cannot create a directory under %s: %s\n", dir, strerror(errno));
    return 1;
  }

  probe_t p = {.files = files, .wb = (size_t)wb, .jsize = jbytes / wb * wb, .one_fd = -1, .jfd = -1};
  p.buf = malloc(p.wb);
  p.fds = calloc(files, sizeof(int));
  p.off = calloc(files, sizeof(uint64_t));
  p.th = calloc(files, sizeof(pthread_t));
  hist_t *lat = calloc(M_COUNT, sizeof(hist_t));
  int rc = 1;
  if (!p.buf || !p.fds || !p.off || !p.th || !lat) {
    fprintf(stderr, "runnel-bench syncprobe: out of memory\n");
    goto out;
  }
  for (size_t i = 0; i < p.wb; i++) p.buf[i] = (char)('a' + i % 26);
  for (unsigned i = 0; i < files; i++) p.fds[i] = -1;
  char path[4200];
  for (unsigned i = 0; i < files; i++) {
    snprintf(path, sizeof(path), "%s/shard-%04u.log", work, i);
    if ((p.fds[i] = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644)) < 0) {
      fail("open shard file");
      goto out;
    }
  }
  snprintf(path, sizeof(path), "%s/one.log", work);
  if ((p.one_fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644)) < 0) {
    fail("open one file");
    goto out;
  }
  snprintf(path, sizeof(path), "%s/journal", work);
  if (journal_open(&p, path)) goto out;
  p.have_ring = io_uring_queue_init(files, &p.ring, 0) == 0;

  double slice = duration / rounds;
  double rcount[M_COUNT] = {0}, msecs[M_COUNT] = {0};
  double ratios[M_COUNT][64], raws[64];
  double raw_bytes = 0, raw_secs = 0;
  snprintf(path, sizeof(path), "%s/raw.dat", work);
  for (unsigned r = 0; r < rounds; r++) {
    double rb = 0, rs = 0;
    if (bench_raw_slice(path, files * p.wb, slice, &rb, &rs)) {
      fail("raw loop");
      goto out;
    }
    raw_bytes += rb;
    raw_secs += rs;
    raws[r] = rs > 0 ? rb / (double)(files * p.wb) / rs : 0; /* write+fdatasync per second */
    for (int m = 0; m < M_COUNT; m++) {
      int64_t t0 = bench_now_ns(), end = t0 + (int64_t)(slice * 1e9), t = t0;
      unsigned done = 0;
      while (t < end) {
        if (round_once(&p, m)) goto out;
        int64_t t1 = bench_now_ns();
        hist_add(&lat[m], (uint64_t)(t1 - t) / 1000u);
        t = t1;
        done++;
      }
      double el = (double)(t - t0) / 1e9;
      rcount[m] += done;
      msecs[m] += el;
      ratios[m][r] = raws[r] > 0 ? (double)done / el / raws[r] : 0;
    }
  }
  double raw_rps = raw_secs > 0 ? raw_bytes / (double)(files * p.wb) / raw_secs : 0;
  const char *par_how = p.have_ring ? "io_uring" : "threads";
  char raws_json[64 * 24];
  bench_json_list(raws_json, sizeof(raws_json), raws, rounds, 1);
  if (json) {
    printf("{\"bench\":\"syncprobe\",\"files\":%u,\"write_bytes\":%zu,\"duration_s\":%.2f,\"rounds\":%u,"
           "\"parallel_via\":\"%s\",\"raw_rounds_per_s\":%.1f,\"round_raw_rounds_per_s\":[%s]",
           files, p.wb, duration, rounds, par_how, raw_rps, raws_json);
    for (int m = 0; m < M_COUNT; m++) {
      char rj[64 * 24];
      bench_json_list(rj, sizeof(rj), ratios[m], rounds, 3);
      printf(",\"%s\":{\"rounds\":%.0f,\"rounds_per_s\":%.1f,\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64
             ",\"max_us\":%" PRIu64 ",\"ratio_median\":%.3f,\"round_ratios\":[%s]}",
             mode_name[m], rcount[m], rcount[m] / msecs[m], hist_quantile(&lat[m], 0.5),
             hist_quantile(&lat[m], 0.99), lat[m].max, bench_median(ratios[m], rounds), rj);
    }
    printf("}\n");
  } else {
    printf("runnel-bench syncprobe: %u files, %zu B each per round, %.1f s per mode in %u slices (parallel via %s)\n",
           files, p.wb, duration, rounds, par_how);
    printf("  raw limit  %.1f rounds/s (pwrite %zu B + fdatasync; per slice: %s)\n", raw_rps, files * p.wb,
           raws_json);
    printf("  %-9s %10s %10s %12s %14s\n", "mode", "p50 us", "p99 us", "rounds/s", "x raw (median)");
    for (int m = 0; m < M_COUNT; m++)
      printf("  %-9s %10" PRIu64 " %10" PRIu64 " %12.1f %14.3f\n", mode_name[m], hist_quantile(&lat[m], 0.5),
             hist_quantile(&lat[m], 0.99), rcount[m] / msecs[m], bench_median(ratios[m], rounds));
  }
  rc = 0;
out:
  if (p.have_ring) io_uring_queue_exit(&p.ring);
  if (p.fds)
    for (unsigned i = 0; i < files; i++)
      if (p.fds[i] >= 0) close(p.fds[i]);
  if (p.one_fd >= 0) close(p.one_fd);
  if (p.jfd >= 0) close(p.jfd);
  if (bench_rm_rf(work)) fprintf(stderr, "runnel-bench syncprobe: could not remove %s\n", work);
  free(p.buf);
  free(p.fds);
  free(p.off);
  free(p.th);
  free(lat);
  return rc;
}
