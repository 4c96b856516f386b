/*
 * sinkfmt_int.h — what the files of rn_sinkfmt share and nobody else uses:
 * JSON text (json_text.c) and the timestamp rule (convert.c).
 */
#ifndef RN_SINKFMT_INT_H
#define RN_SINKFMT_INT_H

#include "sinkfmt.h"

/* Shortest text of a double that parses back to it, JSON style (always has
 * a '.', an 'e' or is "inf"/"nan"-free: jansson never holds those);
 * NUL-terminated in out[32]. Returns the length. */
size_t rn__sink_real_text(double d, char out[32]);

/* v as compact JSON appended to b (keys in order, UTF-8 as is, shortest
 * reals). Any value, also a bare string or number. Errors show in b->oom. */
void rn__sink_json_compact(rn_buf_t *b, const json_t *v);

/* s[0..n) as a JSON string literal (with the quotes) appended to b;
 * invalid UTF-8 becomes U+FFFD. */
void rn__sink_json_string(rn_buf_t *b, const char *s, size_t n);

/* A short printable rendering of v for error messages, NUL-terminated in
 * out[cap]: compact JSON cut at a UTF-8 boundary with "..." past ~40 bytes;
 * "missing" never (callers say that). */
void rn__sink_snippet(const json_t *v, char *out, size_t cap);

/* s[0..n) as a quoted JSON string for messages, cut as rn__sink_snippet. */
void rn__sink_quote(const char *s, size_t n, char *out, size_t cap);

/* A path's text for messages, NUL-terminated in out[cap]: cut at a UTF-8
 * boundary with "..." past 100 bytes (paths may be 1024 bytes long).
 * Returns out. */
#define RN__SINK_PATH_SHOWN 108
const char *rn__sink_path_shown(const rn_sink_path_t *p, char out[RN__SINK_PATH_SHOWN]);

/* The timestamp rule: v as ms since the epoch. On failure writes the
 * reason's tail ("\"x\" is not an ISO-8601 time") into why. */
rn_err_t rn__sink_timestamp(const json_t *v, rn_sink_unit_t unit, int64_t *ms, char *why, size_t whylen);

/* snprintf into why (when whylen > 0), never a newline. */
void rn__sink_fail(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
