/*
 * runnel/error.h — the one error table of runnel.
 *
 * rn_err_t is an int: 0 is success, negative is failure. System errors travel
 * as -errno (so io_uring's cqe->res passes through untouched); runnel's own
 * errors live at -4000 and below so they never collide with an errno value.
 *
 * RN_ERRORS() is the single source of truth: it produces the enum, the names,
 * the human messages, the stable wire codes used by the native protocol and
 * whether a client may retry. Wire codes are stable forever; C values of the
 * errno-backed entries are platform values and must never go on the wire.
 */
#ifndef RUNNEL_ERROR_H
#define RUNNEL_ERROR_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int rn_err_t;

/* X(NAME, C value, wire code, retriable, message) */
#define RN_ERRORS(X)                                                                     \
  X(OK, 0, 0, false, "success")                                                         \
  X(EINVAL, -EINVAL, 1, false, "invalid argument")                                      \
  X(ENOMEM, -ENOMEM, 2, true, "out of memory")                                          \
  X(EIO, -EIO, 3, false, "input/output error")                                          \
  X(ENOSPC, -ENOSPC, 4, true, "no space left on device")                                \
  X(ENOENT, -ENOENT, 5, false, "no such file or directory")                             \
  X(EEXIST, -EEXIST, 6, false, "already exists")                                        \
  X(EAGAIN, -EAGAIN, 7, true, "resource temporarily unavailable")                       \
  X(EBUSY, -EBUSY, 8, true, "busy: operations in flight")                               \
  X(ECANCELED, -ECANCELED, 9, true, "operation canceled")                               \
  X(ENOTSUP, -ENOTSUP, 10, false, "operation not supported")                            \
  X(ETIMEDOUT, -ETIMEDOUT, 11, true, "timed out")                                       \
  X(EMFILE, -EMFILE, 12, true, "too many open files (process limit)")                 \
  X(ENFILE, -ENFILE, 13, true, "too many open files (system limit)")                  \
  X(ECORRUPT, -4001, 100, false, "data failed verification (checksum or structure)")    \
  X(EPARTIAL, -4002, 101, true, "incomplete input: more bytes needed")                  \
  X(ETOOLARGE, -4003, 102, false, "too large")                                          \
  X(EOFFSET, -4004, 103, false, "offset out of range")                                  \
  X(ELOGFAILED, -4005, 104, false, "log failed after a write or sync error; refusing appends") \
  X(ECLOSED, -4006, 105, false, "closed")                                               \
  X(EFORMAT, -4007, 106, false, "unsupported format version or codec")                 \
  X(ENOSTREAM, -4008, 107, false, "stream not found")                                   \
  X(ENOSHARD, -4009, 108, false, "shard not found")                                     \
  X(EBADREQUEST, -4010, 109, false, "malformed request")                                \
  X(EUNKNOWNOP, -4011, 110, false, "unknown operation")                                 \
  X(ESEQUENCE, -4012, 111, false, "producer sequence out of order")                     \
  X(EFENCED, -4013, 112, false, "fenced: a newer producer epoch or group member owns this") \
  X(ETHROTTLED, -4014, 113, true, "throughput limit exceeded")                          \
  X(ESHUTDOWN, -4015, 114, true, "broker shutting down")                                \
  X(ECONNECTION, -4016, 115, true, "connection to the broker failed or was lost")     \
  X(ENOGROUP, -4017, 116, false, "consumer group not found")                            \
  X(EUNKNOWNMEMBER, -4018, 117, false, "unknown group member (session expired or left): rejoin") \
  X(EGROUPACTIVE, -4019, 118, false, "consumer group has active members")                \
  X(EPROTOCOL, -4020, 119, false, "the peer does not speak runnel's native protocol") \
  X(EOBJSTORE, -4021, 120, true, "object store request failed")                        \
  X(EBACKLOG, -4022, 121, true, "local disk at its high-water mark while tiered uploads are behind: retry later") \
  X(ENOSINK, -4023, 122, false, "sink not found")                                       \
  X(ENOTLEADER, -4024, 123, true, "this broker does not lead the shard: refresh metadata and retry") \
  X(ENOTENOUGHREPLICAS, -4025, 124, true, "fewer replicas in sync than min-insync: not acknowledged") \
  X(ESTALEEPOCH, -4026, 125, true, "stale leader epoch: leadership changed, refresh and retry") \
  X(ECONTROLPLANE, -4027, 126, true, "cluster control plane (etcd) unreachable or refused the request") \
  X(ECONFLICT, -4028, 127, true, "compare-and-swap lost: the value changed underneath")

typedef enum {
#define RN__ERR_ENUM(name, value, wire, retry, msg) RN_##name = (value),
  RN_ERRORS(RN__ERR_ENUM)
#undef RN__ERR_ENUM
} rn_err_code_t;

/* Symbolic name ("ECORRUPT"); "EUNKNOWN" for values outside the table (an
 * errno not listed still gets a message from rn_strerror). Static storage. */
const char *rn_err_name(rn_err_t err);

/* Human message. For -errno values not in the table: strerror's text.
 * Returns static or thread-local storage; never NULL. */
const char *rn_strerror(rn_err_t err);

/* Stable protocol code; 3 (EIO) for unlisted errno values. */
uint32_t rn_err_to_wire(rn_err_t err);

/* Inverse of rn_err_to_wire; RN_EIO for unknown wire codes. */
rn_err_t rn_err_from_wire(uint32_t code);

/* Whether a client may retry the operation that failed with err. */
bool rn_err_retriable(rn_err_t err);

#ifdef __cplusplus
}
#endif
#endif
