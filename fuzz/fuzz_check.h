/*
 * fuzz_check.h — what every libFuzzer target here shares: the entry point's
 * prototype and CHECK, an assertion that holds in release builds too (a
 * failed property aborts, which libFuzzer reports as a crash with the input).
 */
#ifndef RN_FUZZ_CHECK_H
#define RN_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#endif
