/*
 * nettest.h — shared by the broker/net unit tests: run a loop until a
 * condition holds, without sleeping. A repeating guard timer keeps each
 * uv_run(UV_RUN_ONCE) from blocking forever when nothing else is pending;
 * after max_iter iterations without the condition the test fails instead
 * of hanging.
 */
#ifndef RN_NETTEST_H
#define RN_NETTEST_H

#include <uv.h>

static inline void rn_nettest_on_guard(uv_timer_t *t) { (void)t; }

#define RN_RUN_UNTIL(loop, cond, max_iter)                                        \
  do {                                                                            \
    uv_timer_t guard_;                                                            \
    uv_timer_init((loop), &guard_);                                               \
    uv_timer_start(&guard_, rn_nettest_on_guard, 20, 20);                         \
    int it_ = 0;                                                                  \
    while (!(cond) && it_++ < (max_iter)) uv_run((loop), UV_RUN_ONCE);            \
    uv_close((uv_handle_t *)&guard_, NULL);                                       \
    uv_run((loop), UV_RUN_NOWAIT);                                                \
    assert_true(cond);                                                            \
  } while (0)

#endif
