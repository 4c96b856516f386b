/*
 * runnel/durability.h — a stream's durability mode, shared by the storage
 * layer, the broker and librunnel (one definition, one set of names).
 */
#ifndef RUNNEL_DURABILITY_H
#define RUNNEL_DURABILITY_H

#include "runnel/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  RN_DURABILITY_SYNC = 0,     /* ack after fdatasync (group commit); the default */
  RN_DURABILITY_INTERVAL = 1, /* ack from the page cache; fdatasync every interval */
  RN_DURABILITY_NONE = 2,     /* page cache only; durability from replication */
} rn_durability_t;

/* "sync", "interval", "none"; "unknown" for other values. Static storage. */
const char *rn_durability_name(rn_durability_t d);

/* Parse "sync" | "interval" | "none" into *out. Returns 0 or RN_EINVAL. */
rn_err_t rn_durability_parse(const char *s, rn_durability_t *out);

#ifdef __cplusplus
}
#endif
#endif
