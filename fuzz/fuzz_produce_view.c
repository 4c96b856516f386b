/*
 * fuzz_produce_view.c — libFuzzer target for the broker's zero-copy produce
 * decoder (proto/produce_view.c): whatever it accepts, protobuf-c must
 * decode to the same request, and every borrowed batch must lie inside the
 * input (tests/unit/proto/produce_view_check.h). A violation aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "produce_view_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int accepted;
  const char *why = produce_view_check(data, size, &accepted);
  if (why != NULL) {
    fprintf(stderr, "produce_view: %s\n", why);
    abort();
  }
  return 0;
}
