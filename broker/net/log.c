/*
 * log.c — net's log function on base's stderr logger (rn_base.h): the one
 * line format of the tree, written by rn_logger_stderr.
 */
#include <stdint.h>

#include "rn_base.h"
#include "rn_net.h"

void rn_net_log_stderr(void *arg, rn_level_t level, const char *component, const char *msg) {
  (void)arg;
  rn_logger_stderr((void *)(uintptr_t)component, level, msg);
}
