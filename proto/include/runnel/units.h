/*
 * runnel/units.h — the one syntax for sizes and durations, shared by
 * runnelctl and the broker's configuration (docs/client.md, "Sizes and
 * durations"). Pure functions over strings: no allocation, no locale.
 *
 * Sizes: plain bytes ("1048576") or an integer followed by a binary unit.
 * Every unit is a power of 1024 and the letters are case-sensitive:
 *   B (bytes), K Ki KiB (2^10), M Mi MiB (2^20), G Gi GiB (2^30),
 *   T Ti TiB (2^40).
 * So "10G", "10Gi" and "10GiB" are the same size. "10KB", "10kb", "10k"
 * are rejected (ambiguous between 1000 and 1024): the message says "write
 * 10KiB".
 *
 * Durations: one or more integer+unit parts, largest first or in any
 * order ("500ms", "30s", "90m", "24h", "7d", "1h30m"); units ms, s, m, h,
 * d. A bare integer is rejected (seconds or milliseconds? the message says
 * to add a unit). No sign, no fraction, no spaces.
 */
#ifndef RUNNEL_UNITS_H
#define RUNNEL_UNITS_H

#include <stddef.h>
#include <stdint.h>

#include "runnel/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parse a size into *out (bytes, >= 0). Returns 0, or RN_EINVAL with a
 * one-line reason in why[0, whylen) (why may be NULL when whylen is 0);
 * *out is untouched on failure. Overflow past INT64_MAX is RN_EINVAL. */
rn_err_t rn_parse_size(const char *s, int64_t *out, char *why, size_t whylen);

/* Parse a duration into *out (milliseconds, >= 0). Returns 0 or RN_EINVAL
 * with a reason, as rn_parse_size. */
rn_err_t rn_parse_duration_ms(const char *s, int64_t *out, char *why, size_t whylen);

/* Longest output of the formatters below, NUL included. */
#define RN_UNITS_STRLEN 32

/* Render bytes with the largest binary unit that divides it evenly
 * ("10GiB", "1536KiB", "1000B"); parses back to the same value. Negative
 * values render as plain numbers. buf gets at most n bytes (NUL included). */
void rn_format_size(int64_t bytes, char *buf, size_t n);

/* Render ms with the largest unit that divides it evenly ("1d", "90m",
 * "1500ms", "0ms"); parses back to the same value. */
void rn_format_duration_ms(int64_t ms, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
