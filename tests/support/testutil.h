/*
 * testutil.h — small helpers shared by the C tests: temporary directories
 * removed at exit of the test, and a deterministic PRNG.
 */
#ifndef RN_TEST_UTIL_H
#define RN_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Create a fresh directory under $TMPDIR (or /tmp) named runnel-test-XXXXXX
 * and return its path (static storage per call, malloc'd; caller frees). */
char *rn_test_tmpdir(void);
/* Remove a directory tree (best effort). */
void rn_test_rmtree(const char *path);
/* A whole file, malloc'd (caller frees), its size in *len; NULL when it
 * cannot be read. */
uint8_t *rn_test_read_file(const char *path, size_t *len);

/* xorshift64* PRNG; state must be non-zero. */
static inline uint64_t rn_test_rand(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}
/* Uniform in [0, n). n > 0. */
static inline uint64_t rn_test_rand_below(uint64_t *state, uint64_t n) { return rn_test_rand(state) % n; }

#endif
