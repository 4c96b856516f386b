/*
 * log.c — net's log function on base's stderr logger (rn_base.h): the one
 * line format of the tree, written by rn_logger_stderr.
 */
#include <stdint.h>

#include "rn_base.h"
#include "rn_net.h"

_Static_assert((int)RN_NET_LOG_DEBUG == (int)RN_LVL_DEBUG && (int)RN_NET_LOG_INFO == (int)RN_LVL_INFO &&
                   (int)RN_NET_LOG_WARN == (int)RN_LVL_WARN && (int)RN_NET_LOG_ERROR == (int)RN_LVL_ERROR,
               "net's levels are base's");

void rn_net_log_stderr(void *arg, int level, const char *component, const char *msg) {
  (void)arg;
  rn_logger_stderr((void *)(uintptr_t)component, (rn_level_t)level, msg);
}
