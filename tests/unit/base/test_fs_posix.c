/*
 * test_fs_posix.c — rn_fs_posix(): flags map to open(2) semantics, writes are
 * complete (many and empty iovecs), reads stop only at end of file, errors
 * come back as -errno, and the directory operations (mkdirs, rename, unlink,
 * sync_dir, list) behave as rn_fs.h says.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rn_fs.h"
#include "testutil.h"

typedef struct fx {
  char *dir;
  rn_fs_t *fs;
  char path[512];
} fx_t;

static int setup(void **state) {
  fx_t *fx = calloc(1, sizeof *fx);
  fx->dir = rn_test_tmpdir();
  fx->fs = rn_fs_posix();
  snprintf(fx->path, sizeof fx->path, "%s/file", fx->dir);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fx_t *fx = *state;
  rn_test_rmtree(fx->dir);
  free(fx->dir);
  free(fx);
  return 0;
}

static void join(char *out, size_t n, const char *dir, const char *name) {
  snprintf(out, n, "%s/%s", dir, name);
}

static void test_open_flags(void **state) {
  fx_t *fx = *state;
  rn_fs_t *fs = fx->fs;
  rn_file_t *f = (rn_file_t *)0x1;

  assert_string_equal(fs->name, "posix");
  assert_int_equal(fs->open(fs, fx->path, 0, &f), RN_ENOENT);
  assert_null(f);

  assert_int_equal(fs->open(fs, fx->path, RN_FS_CREATE | RN_FS_EXCL, &f), 0);
  assert_non_null(f);
  assert_ptr_equal(f->fs, fs);
  assert_true(f->fd >= 0);
  int fdflags = fcntl(f->fd, F_GETFD);
  assert_true(fdflags >= 0 && (fdflags & FD_CLOEXEC));
  struct iovec iov = {.iov_base = "hello", .iov_len = 5};
  assert_int_equal(fs->pwritev(f, &iov, 1, 0), 0);
  fs->close(f);

  rn_file_t *g = NULL;
  assert_int_equal(fs->open(fs, fx->path, RN_FS_CREATE | RN_FS_EXCL, &g), RN_EEXIST);
  assert_null(g);

  /* CREATE on an existing file keeps its bytes; TRUNC empties it. */
  uint64_t size = 0;
  assert_int_equal(fs->open(fs, fx->path, RN_FS_CREATE, &g), 0);
  assert_int_equal(fs->size(g, &size), 0);
  assert_int_equal(size, 5);
  fs->close(g);
  assert_int_equal(fs->open(fs, fx->path, RN_FS_TRUNC, &g), 0);
  assert_int_equal(fs->size(g, &size), 0);
  assert_int_equal(size, 0);
  fs->close(g);

  fs->close(NULL); /* accepted */
}

static void test_rdonly_write_fails(void **state) {
  fx_t *fx = *state;
  rn_fs_t *fs = fx->fs;
  rn_file_t *f = NULL;
  assert_int_equal(fs->open(fs, fx->path, RN_FS_CREATE, &f), 0);
  fs->close(f);
  assert_int_equal(fs->open(fs, fx->path, RN_FS_RDONLY, &f), 0);
  struct iovec iov = {.iov_base = "x", .iov_len = 1};
  assert_int_equal(fs->pwritev(f, &iov, 1, 0), -EBADF);
  assert_int_equal(fs->truncate(f, 10), -EINVAL); /* ftruncate on O_RDONLY */
  fs->close(f);
}

/* Many iovecs (more than IOV_MAX), some empty, at a non-zero offset. */
static void test_pwritev_many_iovecs(void **state) {
  fx_t *fx = *state;
  rn_fs_t *fs = fx->fs;
  enum { N = IOV_MAX * 2 + 77 };
  struct iovec *iov = calloc(N, sizeof *iov);
  uint8_t *src = malloc(N * 7);
  uint64_t seed = 42;
  size_t total = 0;
  for (int i = 0; i < N; i++) {
    size_t len = (i % 5 == 0) ? 0 : (size_t)rn_test_rand_below(&seed, 8);
    for (size_t j = 0; j < len; j++) src[total + j] = (uint8_t)rn_test_rand(&seed);
    iov[i].iov_base = src + total;
    iov[i].iov_len = len;
    total += len;
  }
  rn_file_t *f = NULL;
  assert_int_equal(fs->open(fs, fx->path, RN_FS_CREATE, &f), 0);
  assert_int_equal(fs->pwritev(f, iov, N, 1000), 0);
  assert_int_equal(fs->pwritev(f, iov, 0, 0), 0); /* nothing to write */

  uint8_t *back = malloc(total + 1000);
  size_t nread = 0;
  assert_int_equal(fs->pread(f, back, total + 1000, 0, &nread), 0);
  assert_int_equal(nread, total + 1000);
  for (int i = 0; i < 1000; i++) assert_int_equal(back[i], 0); /* the hole */
  assert_memory_equal(back + 1000, src, total);
  fs->close(f);
  free(back);
  free(src);
  free(iov);
}

static void test_pread_eof_and_truncate(void **state) {
  fx_t *fx = *state;
  rn_fs_t *fs = fx->fs;
  rn_file_t *f = NULL;
  assert_int_equal(fs->open(fs, fx->path, RN_FS_CREATE, &f), 0);
  char data[100];
  for (int i = 0; i < 100; i++) data[i] = (char)i;
  struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
  assert_int_equal(fs->pwritev(f, &iov, 1, 0), 0);
  assert_int_equal(fs->datasync(f), 0);

  char buf[64];
  size_t n = 0;
  assert_int_equal(fs->pread(f, buf, sizeof buf, 80, &n), 0);
  assert_int_equal(n, 20);
  assert_memory_equal(buf, data + 80, 20);
  assert_int_equal(fs->pread(f, buf, sizeof buf, 500, &n), 0);
  assert_int_equal(n, 0);

  uint64_t size = 0;
  assert_int_equal(fs->truncate(f, 30), 0);
  assert_int_equal(fs->size(f, &size), 0);
  assert_int_equal(size, 30);
  assert_int_equal(fs->truncate(f, 4096), 0);
  assert_int_equal(fs->size(f, &size), 0);
  assert_int_equal(size, 4096);
  assert_int_equal(fs->pread(f, buf, 10, 25, &n), 0);
  assert_int_equal(n, 10);
  assert_memory_equal(buf, data + 25, 5);
  for (int i = 5; i < 10; i++) assert_int_equal(buf[i], 0);
  assert_int_equal(fs->datasync(f), 0);
  fs->close(f);
}

static void test_rename_unlink(void **state) {
  fx_t *fx = *state;
  rn_fs_t *fs = fx->fs;
  char a[512], b[512];
  join(a, sizeof a, fx->dir, "a");
  join(b, sizeof b, fx->dir, "b");
  rn_file_t *f = NULL;
  assert_int_equal(fs->open(fs, a, RN_FS_CREATE, &f), 0);
  struct iovec iov = {.iov_base = "A", .iov_len = 1};
  assert_int_equal(fs->pwritev(f, &iov, 1, 0), 0);
  fs->close(f);
  assert_int_equal(fs->open(fs, b, RN_FS_CREATE, &f), 0);
  fs->close(f);

  assert_int_equal(fs->rename(fs, a, b), 0); /* replaces b */
  assert_int_equal(fs->open(fs, a, 0, &f), RN_ENOENT);
  assert_int_equal(fs->open(fs, b, RN_FS_RDONLY, &f), 0);
  char c = 0;
  size_t n = 0;
  assert_int_equal(fs->pread(f, &c, 1, 0, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(c, 'A');
  fs->close(f);
  assert_int_equal(fs->sync_dir(fs, fx->dir), 0);

  assert_int_equal(fs->rename(fs, a, b), RN_ENOENT);
  assert_int_equal(fs->unlink(fs, b), 0);
  assert_int_equal(fs->unlink(fs, b), RN_ENOENT);
  assert_int_equal(fs->sync_dir(fs, fx->dir), 0);
}

static void test_mkdirs_and_sync_dir(void **state) {
  fx_t *fx = *state;
  rn_fs_t *fs = fx->fs;
  char deep[512], plain[512], below[1024];
  snprintf(deep, sizeof deep, "%s/x//y/z/", fx->dir);
  assert_int_equal(fs->mkdirs(fs, deep), 0);
  assert_int_equal(fs->mkdirs(fs, deep), 0); /* existing is fine */
  struct stat st;
  snprintf(deep, sizeof deep, "%s/x/y/z", fx->dir);
  assert_int_equal(stat(deep, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(fs->sync_dir(fs, deep), 0);

  rn_file_t *f = NULL;
  join(plain, sizeof plain, fx->dir, "plain");
  assert_int_equal(fs->open(fs, plain, RN_FS_CREATE, &f), 0);
  fs->close(f);
  assert_int_equal(fs->mkdirs(fs, plain), -ENOTDIR);
  snprintf(below, sizeof below, "%s/sub/dir", plain);
  assert_int_equal(fs->mkdirs(fs, below), -ENOTDIR);

  assert_int_equal(fs->sync_dir(fs, plain), -ENOTDIR);
  join(below, sizeof below, fx->dir, "missing");
  assert_int_equal(fs->sync_dir(fs, below), RN_ENOENT);
}

typedef struct names {
  int count;
  int stop_after;
  unsigned seen_mask;
} names_t;

static int collect(void *arg, const char *name) {
  names_t *nm = arg;
  assert_true(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
  assert_int_equal(strlen(name), 2);
  assert_int_equal(name[0], 'n');
  nm->seen_mask |= 1u << (name[1] - '0');
  nm->count++;
  return nm->stop_after && nm->count >= nm->stop_after;
}

static void test_list(void **state) {
  fx_t *fx = *state;
  rn_fs_t *fs = fx->fs;
  for (int i = 0; i < 6; i++) {
    char p[512], name[8];
    snprintf(name, sizeof name, "n%d", i);
    join(p, sizeof p, fx->dir, name);
    rn_file_t *f = NULL;
    if (i == 5) {
      assert_int_equal(fs->mkdirs(fs, p), 0); /* directories are listed too */
    } else {
      assert_int_equal(fs->open(fs, p, RN_FS_CREATE, &f), 0);
      fs->close(f);
    }
  }
  names_t nm = {0};
  assert_int_equal(fs->list(fs, fx->dir, collect, &nm), 0);
  assert_int_equal(nm.count, 6);
  assert_int_equal(nm.seen_mask, 0x3f);

  names_t stop = {.stop_after = 2};
  assert_int_equal(fs->list(fs, fx->dir, collect, &stop), 0);
  assert_int_equal(stop.count, 2);

  char missing[512];
  join(missing, sizeof missing, fx->dir, "nope");
  assert_int_equal(fs->list(fs, missing, collect, &nm), RN_ENOENT);
}

/* Two threads write disjoint halves of one file through one rn_file_t. */
typedef struct half {
  rn_file_t *f;
  uint8_t byte;
  uint64_t off;
} half_t;

static void *write_half(void *p) {
  half_t *h = p;
  uint8_t buf[4096];
  memset(buf, h->byte, sizeof buf);
  for (int i = 0; i < 64; i++) {
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    if (h->f->fs->pwritev(h->f, &iov, 1, h->off + (uint64_t)i * sizeof buf) != 0) return p;
  }
  return NULL;
}

static void test_threads_share_file(void **state) {
  fx_t *fx = *state;
  rn_fs_t *fs = fx->fs;
  rn_file_t *f = NULL;
  assert_int_equal(fs->open(fs, fx->path, RN_FS_CREATE, &f), 0);
  half_t h[2] = {{f, 0xaa, 0}, {f, 0x55, 64 * 4096}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, write_half, &h[i]), 0);
  for (int i = 0; i < 2; i++) {
    void *ret = (void *)1;
    pthread_join(t[i], &ret);
    assert_null(ret);
  }
  uint8_t *back = malloc(128 * 4096);
  size_t n = 0;
  assert_int_equal(fs->pread(f, back, 128 * 4096, 0, &n), 0);
  assert_int_equal(n, 128 * 4096);
  for (size_t i = 0; i < n; i++) assert_int_equal(back[i], i < 64 * 4096 ? 0xaa : 0x55);
  free(back);
  fs->close(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_open_flags, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rdonly_write_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pwritev_many_iovecs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pread_eof_and_truncate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rename_unlink, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mkdirs_and_sync_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list, setup, teardown),
      cmocka_unit_test_setup_teardown(test_threads_share_file, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
