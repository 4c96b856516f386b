/*
 * error.c — the lookups behind runnel/error.h.
 *
 * Everything here is generated from the RN_ERRORS() X-macro: each lookup is a
 * switch over the table, so a duplicate C value or wire code is a compile
 * error (duplicate case label) rather than a silent shadowing. Values outside
 * the table fall in two classes: an unlisted -errno (-1 .. -RN__ERRNO_MAX),
 * which keeps the C library's message and maps to the wire as EIO, and
 * anything else, which is "EUNKNOWN". The only mutable state is one small
 * thread-local buffer used to format messages for values outside the table;
 * every other returned string is static.
 */
/* strerror_r needs POSIX.1-2001 when the build does not ask for GNU. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "runnel/error.h"

#include <stdio.h>
#include <string.h>

/* Linux keeps errno values below 4096 (the kernel's MAX_ERRNO); runnel's own
 * codes start at -4001, so the two ranges never meet. */
#define RN__ERRNO_MAX 4095

/* Per-thread scratch for messages of values outside the table. Each call on a
 * thread overwrites the previous message of that thread. */
static _Thread_local char rn__errbuf[128];

const char *rn_err_name(rn_err_t err) {
  switch (err) {
#define RN__ERR_NAME(name, value, wire, retry, msg) \
  case (value):                                     \
    return #name;
    RN_ERRORS(RN__ERR_NAME)
#undef RN__ERR_NAME
  default:
    return "EUNKNOWN";
  }
}

/* Message of an errno not in the table, via strerror_r into the thread-local
 * buffer. glibc with _GNU_SOURCE has the GNU variant (returns the string it
 * chose, which may be static); everything else has the XSI one. */
static const char *errno_message(int errnum) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  const char *s = strerror_r(errnum, rn__errbuf, sizeof rn__errbuf);
  if (s != NULL && s[0] != '\0') return s;
#else
  if (strerror_r(errnum, rn__errbuf, sizeof rn__errbuf) == 0 && rn__errbuf[0] != '\0')
    return rn__errbuf;
#endif
  snprintf(rn__errbuf, sizeof rn__errbuf, "unknown system error %d", errnum);
  return rn__errbuf;
}

const char *rn_strerror(rn_err_t err) {
  switch (err) {
#define RN__ERR_MSG(name, value, wire, retry, msg) \
  case (value):                                    \
    return msg;
    RN_ERRORS(RN__ERR_MSG)
#undef RN__ERR_MSG
  default:
    break;
  }
  if (err < 0 && err >= -RN__ERRNO_MAX) return errno_message(-err);
  snprintf(rn__errbuf, sizeof rn__errbuf, "unknown error %d", err);
  return rn__errbuf;
}

uint32_t rn_err_to_wire(rn_err_t err) {
  switch (err) {
#define RN__ERR_TO_WIRE(name, value, wire, retry, msg) \
  case (value):                                        \
    return (wire);
    RN_ERRORS(RN__ERR_TO_WIRE)
#undef RN__ERR_TO_WIRE
  default:
    /* An unlisted errno (or a value that is not an error at all) is still a
     * failure the peer must see as one: report it as a generic I/O error. */
    return rn_err_to_wire(RN_EIO);
  }
}

rn_err_t rn_err_from_wire(uint32_t code) {
  switch (code) {
#define RN__ERR_FROM_WIRE(name, value, wire, retry, msg) \
  case (wire):                                           \
    return (value);
    RN_ERRORS(RN__ERR_FROM_WIRE)
#undef RN__ERR_FROM_WIRE
  default:
    return RN_EIO;
  }
}

bool rn_err_retriable(rn_err_t err) {
  switch (err) {
#define RN__ERR_RETRY(name, value, wire, retry, msg) \
  case (value):                                      \
    return (retry);
    RN_ERRORS(RN__ERR_RETRY)
#undef RN__ERR_RETRY
  default:
    return false;
  }
}
