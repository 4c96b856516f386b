/*
 * runnelctl — the admin and produce/consume CLI, a thin layer over
 * librunnel:
 *
 *   runnelctl [--broker HOST:PORT] [--json] <noun> [<verb>] ...
 *
 * The commands live in tools/runnelctl/ctl_*.c, one file per noun, behind
 * the command table in ctl_cmds.c (ctl_int.h explains the split). This file
 * is only the
 * process entry: SIGPIPE is ignored so a closed pipe shows up as a failed
 * write (EPIPE) that runnelctl reports, and the final close of standard
 * output is checked like every write before it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "ctl_int.h"

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  int status = ctl_main(argc, argv, stdin, stdout, stderr);
  errno = 0;
  if (fclose(stdout) != 0) {
    /* ctl_main flushed; only a late error (e.g. on a network filesystem) is left */
    fprintf(stderr, "runnelctl: write to standard output failed: %s\n", strerror(errno ? errno : EIO));
    if (status == 0) status = CTL_EXIT_FAIL;
  }
  return status;
}
