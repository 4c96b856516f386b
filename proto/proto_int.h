/*
 * proto_int.h — private to proto/: helpers the codecs share. Not installed,
 * not included from any other folder.
 */
#ifndef RN_PROTO_INT_H
#define RN_PROTO_INT_H

#include <stddef.h>

#include "runnel/error.h"

/* Format the reason into why[whylen] (when why is non-NULL and whylen > 0;
 * always NUL-terminated) and return RN_EINVAL: the one way a parser or a
 * name rule in proto/ rejects its input. Defined in units.c. */
rn_err_t rn__reject(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
