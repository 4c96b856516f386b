/*
 * seqnum.h — Kinesis sequence numbers of runnel records (proto/seqnum.c):
 * a pure codec, so every part of the broker that names a record the way the
 * Kinesis API does (GetRecords, PutRecords' answers, the archive sinks'
 * sequence_number column) writes the same digits.
 *
 * A 56-digit decimal string holding a 186-bit number in the layout of real
 * Kinesis sequence numbers ("version 2"; docs/kinesis.md). Bits, from the
 * least significant:
 *     0..3    version, 2
 *     4..35   shard index (the KCL reads it here)
 *    36..71   sequence time, seconds (we store the stream's creation time)
 *    72..79   0
 *    80..143  the record's offset in the shard log (64 bits)
 *   144..147  shard index & 0xf
 *   148..183  stream creation time, seconds
 *   184..187  version, 2 (so the number is exactly 186 bits long)
 * Everything is a function of (stream creation time, shard, offset), so a
 * record has one sequence number whichever API reads it, numbers of one
 * shard compare like their offsets, and decoding is O(1).
 */
#ifndef RUNNEL_SEQNUM_H
#define RUNNEL_SEQNUM_H

#include <stddef.h>
#include <stdint.h>

#include "runnel/error.h"

#define RN_SEQNUM_BUFLEN 64

typedef struct rn_seqnum {
  int64_t created_s; /* stream creation time, epoch seconds (36 bits) */
  uint32_t shard;
  uint64_t offset;
} rn_seqnum_t;

/* Writes the NUL-terminated decimal into out; returns its length (56). */
size_t rn_seqnum_encode(int64_t created_ms, uint32_t shard, uint64_t offset, char out[RN_SEQNUM_BUFLEN]);
/* s[0, n) back to its parts: RN_EINVAL for anything rn_seqnum_encode cannot
 * have written (not digits, a leading zero, too long, wrong version bits,
 * the two shard fields disagreeing). */
rn_err_t rn_seqnum_decode(const char *s, size_t n, rn_seqnum_t *out);

#endif
