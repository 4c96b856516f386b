/*
 * rn_admin_codec.h — the tables every HTTP application answers with (pure,
 * library rn_admin_codec: no event loop, no engine): the Kinesis error
 * table, the Kinesis operation table and the JSON string writer. They sit
 * in broker/apps/admin because the admin application's reply path
 * (rn_admin.h) turns an error into its body, header and status and counts
 * it on /metrics by type and operation, and both the Kinesis and the REST
 * applications answer through it; rn_kinesis_codec.h includes this header.
 *
 * Names keep the rn__ prefix: this is runneld's inside, not a client API.
 *
 * Kinesis errors: RN_KINESIS_ERRORS() is the single source of truth — the
 * enum, the wire name that goes into "__type", "x-amzn-ErrorType", a
 * PutRecords entry's "ErrorCode" and REST's "error", the HTTP status it is
 * answered with, and whether a client may send the same request again
 * unchanged (AWS SDKs retry throttling and 5xx answers with backoff). Code
 * passes the enum; the wire name is produced from this table only, never
 * compared as a string. docs/kinesis.md, "Errors", is the user-facing list.
 */
#ifndef RN_ADMIN_CODEC_H
#define RN_ADMIN_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rn_base.h" /* rn_buf_t */

/* ---- Kinesis errors ------------------------------------------------------------------ */

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

/* ---- operations ------------------------------------------------------------------------ */

/* Every operation of Kinesis_20131202 we know by name: X(name, supported). */
#define RN__KINESIS_OPS(X)                                                                           \
  X(AddTagsToStream, 1)                                                                              \
  X(CreateStream, 1)                                                                                 \
  X(DecreaseStreamRetentionPeriod, 1)                                                                \
  X(DeleteStream, 1)                                                                                 \
  X(DescribeLimits, 1)                                                                               \
  X(DescribeStream, 1)                                                                               \
  X(DescribeStreamSummary, 1)                                                                        \
  X(GetRecords, 1)                                                                                   \
  X(GetShardIterator, 1)                                                                             \
  X(IncreaseStreamRetentionPeriod, 1)                                                                \
  X(ListShards, 1)                                                                                   \
  X(ListStreams, 1)                                                                                  \
  X(ListTagsForStream, 1)                                                                            \
  X(PutRecord, 1)                                                                                    \
  X(PutRecords, 1)                                                                                   \
  X(RemoveTagsFromStream, 1)                                                                         \
  X(DeleteResourcePolicy, 0)                                                                         \
  X(DeregisterStreamConsumer, 0)                                                                     \
  X(DescribeStreamConsumer, 0)                                                                       \
  X(DisableEnhancedMonitoring, 0)                                                                    \
  X(EnableEnhancedMonitoring, 0)                                                                     \
  X(GetResourcePolicy, 0)                                                                            \
  X(ListStreamConsumers, 0)                                                                          \
  X(MergeShards, 0)                                                                                  \
  X(PutResourcePolicy, 0)                                                                            \
  X(RegisterStreamConsumer, 0)                                                                       \
  X(SplitShard, 0)                                                                                   \
  X(StartStreamEncryption, 0)                                                                        \
  X(StopStreamEncryption, 0)                                                                         \
  X(SubscribeToShard, 0)                                                                             \
  X(UpdateShardCount, 0)                                                                             \
  X(UpdateStreamMode, 0)

typedef enum {
#define RN__KOP_ENUM(name, supported) RN__KOP_##name,
  RN__KINESIS_OPS(RN__KOP_ENUM)
#undef RN__KOP_ENUM
  RN__KOP_COUNT
} rn__kop_t;

/* "PutRecord" → RN__KOP_PutRecord; RN__KOP_COUNT when unknown. */
rn__kop_t rn__kop_from_name(const char *s, size_t n);
const char *rn__kop_name(rn__kop_t op);
bool rn__kop_supported(rn__kop_t op);

/* ---- JSON strings into an rn_buf_t (rn_base.h: the growable buffer) -------- */
/* A JSON string literal (quotes included). Control characters are escaped;
 * bytes that are not valid UTF-8 become U+FFFD, so the output is always
 * valid JSON whatever s holds (native producers may write binary keys). */
void rn__buf_json_str(rn_buf_t *b, const char *s, size_t n);

#endif
