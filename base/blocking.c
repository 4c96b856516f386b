/*
 * blocking.c — the blocking check: a thread-local "this is an event-loop
 * thread" mark, and the assertion every blocking file operation makes.
 *
 * Owns: one thread-local flag per thread. Compiled without RN_BLOCKING_CHECK
 * both functions are empty (production builds pay nothing); with it, a
 * blocking operation on a marked thread prints one line naming the
 * operation and aborts, so a test that reaches one fails loudly with the
 * culprit in its log (and a core dump with the stack).
 */
#include "rn_fs.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef RN_BLOCKING_CHECK
static _Thread_local bool on_loop_thread;

void rn_thread_mark_loop(void) { on_loop_thread = true; }

void rn_thread_unmark_loop(void) { on_loop_thread = false; }

void rn_assert_may_block(const char *what) {
  if (!on_loop_thread) return;
  fprintf(stderr, "runnel: blocking operation %s on the loop thread\n", what ? what : "(unnamed)");
  fflush(stderr);
  abort();
}
#else
void rn_thread_mark_loop(void) {}

void rn_thread_unmark_loop(void) {}

void rn_assert_may_block(const char *what) { (void)what; }
#endif
