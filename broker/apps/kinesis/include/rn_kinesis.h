/*
 * rn_kinesis.h — the Kinesis Data Streams application of runneld: its error
 * table, shared with every other HTTP application that answers in Kinesis'
 * words (REST ingest's proxy shapes, /metrics' error counters).
 *
 * RN_KINESIS_ERRORS() is the single source of truth for a Kinesis error: the
 * enum, the wire name that goes into "__type", "x-amzn-ErrorType" and a
 * PutRecords entry's "ErrorCode", the HTTP status it is answered with, and
 * whether a client may send the same request again unchanged (AWS SDKs retry
 * throttling and 5xx answers with backoff). Code passes the enum; the wire
 * name is produced from this table only, never compared as a string.
 * docs/kinesis.md, "Errors", is the user-facing list.
 */
#ifndef RN_KINESIS_H
#define RN_KINESIS_H

#include <stdbool.h>

/* X(wire name, HTTP status, retryable). The order is the order of the
 * runnel_kinesis_errors_total lines on /metrics: keep it sorted by name. */
#define RN_KINESIS_ERRORS(X)                                                                          \
  X(AccessDeniedException, 400, false)                                                                \
  X(ExpiredIteratorException, 400, false)                                                             \
  X(ExpiredNextTokenException, 400, false)                                                            \
  X(IncompleteSignatureException, 400, false)                                                         \
  X(InternalFailure, 500, true)                                                                       \
  X(InvalidArgumentException, 400, false)                                                             \
  X(InvalidSignatureException, 400, false)                                                            \
  X(LimitExceededException, 400, true)                                                                \
  X(MissingAuthenticationTokenException, 400, false)                                                  \
  X(ProvisionedThroughputExceededException, 400, true)                                                \
  X(ResourceInUseException, 400, false)                                                               \
  X(ResourceNotFoundException, 400, false)                                                            \
  X(SerializationException, 400, false)                                                               \
  X(ServiceUnavailable, 503, true)                                                                    \
  X(UnknownOperationException, 400, false)                                                            \
  X(UnrecognizedClientException, 400, false)                                                          \
  X(ValidationException, 400, false)

/* RN_KERR_NONE (0) is "no error", so a zeroed result means success. */
typedef enum {
  RN_KERR_NONE = 0,
#define RN__KERR_ENUM(name, status, retry) RN_KERR_##name,
  RN_KINESIS_ERRORS(RN__KERR_ENUM)
#undef RN__KERR_ENUM
  RN_KERR_COUNT
} rn_kinesis_err_t;

/* The wire name ("ResourceNotFoundException"); static storage. NULL for
 * RN_KERR_NONE and for values outside the table. */
const char *rn_kinesis_err_name(rn_kinesis_err_t e);

/* The HTTP status Kinesis answers e with (400, 500 or 503); 500 for values
 * outside the table (and RN_KERR_NONE, which is not an answer). */
int rn_kinesis_err_status(rn_kinesis_err_t e);

/* May a client send the same request again unchanged and expect it to
 * succeed later? false outside the table. */
bool rn_kinesis_err_retryable(rn_kinesis_err_t e);

#endif
