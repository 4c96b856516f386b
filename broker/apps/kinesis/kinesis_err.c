/*
 * kinesis_err.c — lookups into the Kinesis error table (rn_kinesis_codec.h). Pure:
 * part of the codec library, used by the decoders, SigV4, the Kinesis and
 * REST applications and /metrics.
 */
#include "rn_kinesis_codec.h"

#include <stddef.h>

typedef struct {
  const char *name;
  int status;
  bool retry;
} kerr_entry_t;

static const kerr_entry_t kerr_table[RN_KERR_COUNT] = {
    [RN_KERR_NONE] = {NULL, 500, false},
#define RN__KERR_ENTRY(name, status, retry) [RN_KERR_##name] = {#name, (status), (retry)},
    RN_KINESIS_ERRORS(RN__KERR_ENTRY)
#undef RN__KERR_ENTRY
};

static const kerr_entry_t *entry(rn_kinesis_err_t e) {
  return (int)e > RN_KERR_NONE && (int)e < RN_KERR_COUNT ? &kerr_table[e] : NULL;
}

const char *rn_kinesis_err_name(rn_kinesis_err_t e) {
  const kerr_entry_t *t = entry(e);
  return t ? t->name : NULL;
}

int rn_kinesis_err_status(rn_kinesis_err_t e) {
  const kerr_entry_t *t = entry(e);
  return t ? t->status : 500;
}

bool rn_kinesis_err_retryable(rn_kinesis_err_t e) {
  const kerr_entry_t *t = entry(e);
  return t ? t->retry : false;
}
