/*
 * kinesis_seq.c — pure codecs of the HTTP applications: base64, timestamps,
 * Kinesis sequence numbers and shard iterators (kinesis_int.h).
 *
 * Invariants: every decoder takes a byte span and a length, never reads
 * past it and never trusts a NUL terminator; every encoder's output is a
 * function of its inputs only (sequence numbers in particular are derived
 * from (stream creation time, shard, offset), so a record has exactly one
 * sequence number). The shard-iterator HMAC is compared in constant time.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>
#include <stdatomic.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kinesis_int.h"
#include "runnel/seqnum.h"
#include "rn_base.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Two output characters per 12 input bits: B64_PAIR[v] = B64[v >> 6], B64[v & 63],
 * built by the preprocessor (B64_CH is B64[] as a constant expression). */
#define B64_CH(v) ((char)((v) < 26 ? 'A' + (v) : (v) < 52 ? 'a' + (v) - 26 : (v) < 62 ? '0' + (v) - 52 : (v) == 62 ? '+' : '/'))
#define B64_P1(i) {B64_CH((i) >> 6), B64_CH((i) & 63)}
#define B64_P4(i) B64_P1(i), B64_P1((i) + 1), B64_P1((i) + 2), B64_P1((i) + 3)
#define B64_P16(i) B64_P4(i), B64_P4((i) + 4), B64_P4((i) + 8), B64_P4((i) + 12)
#define B64_P64(i) B64_P16(i), B64_P16((i) + 16), B64_P16((i) + 32), B64_P16((i) + 48)
#define B64_P256(i) B64_P64(i), B64_P64((i) + 64), B64_P64((i) + 128), B64_P64((i) + 192)
#define B64_P1024(i) B64_P256(i), B64_P256((i) + 256), B64_P256((i) + 512), B64_P256((i) + 768)
static const char B64_PAIR[4096][2] = {B64_P1024(0), B64_P1024(1024), B64_P1024(2048), B64_P1024(3072)};
#undef B64_P1024
#undef B64_P256
#undef B64_P64
#undef B64_P16
#undef B64_P4
#undef B64_P1
#undef B64_CH

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <stdatomic.h>
#define B64_HAVE_SSSE3 1

/* Twelve bytes → sixteen characters per step with SSSE3, while 16 bytes
 * can be loaded (the last four of each load are not used). Each group of 3
 * bytes a, b, c is spread over a 32-bit lane as b a c b; two multiplies
 * move the four 6-bit fields to the four bytes of the lane; the character
 * is the field plus an offset picked per range (A-Z, a-z, 0-9, '+', '/').
 * Returns the input bytes consumed (a multiple of 12). */
__attribute__((target("ssse3"))) static size_t b64_encode_ssse3(const uint8_t *p, size_t n, char *out) {
  const __m128i spread = _mm_set_epi8(10, 11, 9, 10, 7, 8, 6, 7, 4, 5, 3, 4, 1, 2, 0, 1);
  const __m128i shift_lut = _mm_setr_epi8(71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 65, 0, 0);
  size_t i = 0, o = 0;
  for (; i + 16 <= n; i += 12, o += 16) {
    __m128i in = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + i)), spread);
    __m128i t0 = _mm_mulhi_epu16(_mm_and_si128(in, _mm_set1_epi32(0x0fc0fc00)), _mm_set1_epi32(0x04000040));
    __m128i t1 = _mm_mullo_epi16(_mm_and_si128(in, _mm_set1_epi32(0x003f03f0)), _mm_set1_epi32(0x01000010));
    __m128i idx = _mm_or_si128(t0, t1);
    __m128i r = _mm_subs_epu8(idx, _mm_set1_epi8(51));
    r = _mm_or_si128(r, _mm_and_si128(_mm_cmpgt_epi8(_mm_set1_epi8(26), idx), _mm_set1_epi8(13)));
    _mm_storeu_si128((__m128i *)(void *)(out + o), _mm_add_epi8(idx, _mm_shuffle_epi8(shift_lut, r)));
  }
  return i;
}

/* The same with AVX2: 24 bytes → 32 characters per step, one 12-byte group
 * per 128-bit lane, while 28 bytes can be read. */
__attribute__((target("avx2"))) static size_t b64_encode_avx2(const uint8_t *p, size_t n, char *out) {
  const __m256i spread = _mm256_set_epi8(10, 11, 9, 10, 7, 8, 6, 7, 4, 5, 3, 4, 1, 2, 0, 1, 10, 11, 9, 10, 7, 8, 6, 7,
                                         4, 5, 3, 4, 1, 2, 0, 1);
  const __m256i shift_lut = _mm256_setr_epi8(71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 65, 0, 0, 71, -4, -4,
                                             -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 65, 0, 0);
  size_t i = 0, o = 0;
  for (; i + 28 <= n; i += 24, o += 32) {
    __m128i lo = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
    __m128i hi = _mm_loadu_si128((const __m128i *)(const void *)(p + i + 12));
    __m256i in = _mm256_shuffle_epi8(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1), spread);
    __m256i t0 = _mm256_mulhi_epu16(_mm256_and_si256(in, _mm256_set1_epi32(0x0fc0fc00)), _mm256_set1_epi32(0x04000040));
    __m256i t1 = _mm256_mullo_epi16(_mm256_and_si256(in, _mm256_set1_epi32(0x003f03f0)), _mm256_set1_epi32(0x01000010));
    __m256i idx = _mm256_or_si256(t0, t1);
    __m256i r = _mm256_subs_epu8(idx, _mm256_set1_epi8(51));
    r = _mm256_or_si256(r, _mm256_and_si256(_mm256_cmpgt_epi8(_mm256_set1_epi8(26), idx), _mm256_set1_epi8(13)));
    _mm256_storeu_si256((__m256i *)(void *)(out + o), _mm256_add_epi8(idx, _mm256_shuffle_epi8(shift_lut, r)));
  }
  return i;
}

/* With AVX-512 VBMI: 48 bytes → 64 characters per step, three
 * instructions (the method of Muła and Lemire, "Base64 encoding and
 * decoding at almost the speed of a memory copy"): a byte permutation
 * spreads each 3-byte group a, b, c over a 32-bit lane as b a c b, one
 * multishift picks the four 6-bit fields out of each lane (bit offsets 10,
 * 4, 22 and 16), and a second permutation, which reads only the low six
 * bits of each index, looks the characters up in the 64-byte alphabet.
 * The load is masked to the 48 bytes consumed, so nothing past the input
 * is read. About three times the AVX2 loop on GetRecords' 1 KiB records;
 * GetRecords spends more time here than anywhere else of its own. */
#define B64_LANE(k) (int)((3u * (k) + 1) | (3u * (k)) << 8 | (3u * (k) + 2) << 16 | (3u * (k) + 1) << 24)
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) static size_t b64_encode_vbmi(const uint8_t *p, size_t n, char *out) {
  const __m512i spread = _mm512_setr_epi32(B64_LANE(0), B64_LANE(1), B64_LANE(2), B64_LANE(3), B64_LANE(4), B64_LANE(5),
                                           B64_LANE(6), B64_LANE(7), B64_LANE(8), B64_LANE(9), B64_LANE(10), B64_LANE(11),
                                           B64_LANE(12), B64_LANE(13), B64_LANE(14), B64_LANE(15));
  const __m512i shifts = _mm512_set1_epi64(0x3036242a1016040all);
  const __m512i alphabet = _mm512_loadu_si512((const void *)B64);
  size_t i = 0, o = 0;
  for (; i + 48 <= n; i += 48, o += 64) {
    __m512i in = _mm512_maskz_loadu_epi8(0x0000ffffffffffffull, p + i);
    __m512i idx = _mm512_multishift_epi64_epi8(shifts, _mm512_permutexvar_epi8(spread, in));
    _mm512_storeu_si512((void *)(out + o), _mm512_permutexvar_epi8(idx, alphabet));
  }
  return i;
}
#undef B64_LANE
#endif

size_t rn__b64_encode_raw(const uint8_t *p, size_t n, char *out) {
  size_t o = 0, i = 0;
#ifdef B64_HAVE_SSSE3
  /* 0 unknown, 1 table only, 2 SSSE3, 3 AVX2, 4 AVX-512 VBMI; every thread computes the same. */
  static _Atomic int have = 0;
  int h = atomic_load_explicit(&have, memory_order_relaxed);
  if (!h) {
    h = __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bw") ? 4
        : __builtin_cpu_supports("avx2")                                          ? 3
        : __builtin_cpu_supports("ssse3")                                         ? 2
                                                                                  : 1;
    atomic_store_explicit(&have, h, memory_order_relaxed);
  }
  if (h == 4 && n >= 48) i = b64_encode_vbmi(p, n, out);
  if (h >= 3 && n - i >= 28) i += b64_encode_avx2(p + i, n - i, out + i / 3 * 4);
  if (h >= 2 && n - i >= 16) i += b64_encode_ssse3(p + i, n - i, out + i / 3 * 4);
  o = i / 3 * 4;
#endif
  /* Six bytes (48 bits) per step from one 8-byte load: four pair lookups. */
  for (; i + 8 <= n; i += 6) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    v = __builtin_bswap64(v);
    memcpy(out + o, B64_PAIR[v >> 52], 2);
    memcpy(out + o + 2, B64_PAIR[(v >> 40) & 4095], 2);
    memcpy(out + o + 4, B64_PAIR[(v >> 28) & 4095], 2);
    memcpy(out + o + 6, B64_PAIR[(v >> 16) & 4095], 2);
    o += 8;
  }
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    memcpy(out + o, B64_PAIR[v >> 12], 2);
    memcpy(out + o + 2, B64_PAIR[v & 4095], 2);
    o += 4;
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)p[i] << 16;
    out[o++] = B64[v >> 18];
    out[o++] = B64[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
    out[o++] = B64[v >> 18];
    out[o++] = B64[(v >> 12) & 63];
    out[o++] = B64[(v >> 6) & 63];
    out[o++] = '=';
  }
  return o;
}

void rn__b64_encode(const uint8_t *p, size_t n, char *out) { out[rn__b64_encode_raw(p, n, out)] = 0; }

void rn__buf_b64(rn_buf_t *b, const uint8_t *p, size_t n) {
  size_t el = rn__b64_encoded_len(n);
  rn_buf_reserve(b, el + 1);
  if (b->oom) return;
  rn__b64_encode(p, n, b->p + b->len);
  b->len += el;
}

/* Decoding table: 0..63 for the alphabet, 64 for anything else. */
static const uint8_t B64_DEC[256] = {
#define X64 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64
    X64, X64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 62, 64, 64, 64, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 64, 64, 64,
    64, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 64,
    64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64,
    X64, X64, X64, X64, X64, X64, X64, X64,
#undef X64
};

rn_err_t rn__b64_decode(const char *str, size_t n, uint8_t *out, size_t *outlen) {
  const unsigned char *s = (const unsigned char *)str;
  /* Padding: either none, or exactly enough to make a multiple of 4. */
  size_t pad = 0;
  while (pad < 2 && n > pad && s[n - 1 - pad] == '=') pad++;
  if (pad && n % 4 != 0) return RN_EINVAL;
  size_t m = n - pad; /* significant characters */
  if (m % 4 == 1) return RN_EINVAL;
  size_t o = 0, i = 0;
  /* Four characters → three bytes; a 64 anywhere sets bit 6 of the OR. */
  for (; i + 4 <= m; i += 4) {
    uint32_t a = B64_DEC[s[i]], b = B64_DEC[s[i + 1]], c = B64_DEC[s[i + 2]], d = B64_DEC[s[i + 3]];
    if ((a | b | c | d) & 64) return RN_EINVAL;
    uint32_t v = a << 18 | b << 12 | c << 6 | d;
    out[o] = (uint8_t)(v >> 16);
    out[o + 1] = (uint8_t)(v >> 8);
    out[o + 2] = (uint8_t)v;
    o += 3;
  }
  size_t rest = m - i; /* 0, 2 or 3 */
  if (rest) {
    uint32_t a = B64_DEC[s[i]], b = B64_DEC[s[i + 1]], c = rest == 3 ? B64_DEC[s[i + 2]] : 0;
    if ((a | b | c) & 64) return RN_EINVAL;
    uint32_t v = a << 18 | b << 12 | c << 6;
    out[o++] = (uint8_t)(v >> 16);
    if (rest == 3) out[o++] = (uint8_t)(v >> 8);
    /* Bits below the last byte must be zero (one encoding per value). */
    if (rest == 2 ? (v & 0xffff) : (v & 0xff)) return RN_EINVAL;
  }
  *outlen = o;
  return 0;
}

/* ---- timestamps ---------------------------------------------------------------------- */

size_t rn__u64_dec(uint64_t v, char *out) {
  static const char D2[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                           "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                           "8081828384858687888990919293949596979899";
  char tmp[20];
  size_t n = sizeof(tmp);
  while (v >= 100) {
    n -= 2;
    memcpy(tmp + n, D2 + 2 * (v % 100), 2);
    v /= 100;
  }
  if (v >= 10) {
    n -= 2;
    memcpy(tmp + n, D2 + 2 * v, 2);
  } else {
    tmp[--n] = (char)('0' + v);
  }
  memcpy(out, tmp + n, sizeof(tmp) - n);
  return sizeof(tmp) - n;
}

size_t rn__timestamp_fmt(int64_t ms, char *out) {
  if (ms < 0) ms = 0;
  size_t n = rn__u64_dec((uint64_t)ms / 1000, out);
  unsigned f = (unsigned)((uint64_t)ms % 1000);
  out[n] = '.';
  out[n + 1] = (char)('0' + f / 100);
  out[n + 2] = (char)('0' + f / 10 % 10);
  out[n + 3] = (char)('0' + f % 10);
  return n + 4;
}

void rn__buf_timestamp(rn_buf_t *b, int64_t ms) {
  char t[RN__TIMESTAMP_BUFLEN];
  rn_buf_put(b, t, rn__timestamp_fmt(ms, t));
}

/* RFC 3339 with seconds and a zone (rn_base.h), not before 1970. */
static rn_err_t parse_iso8601(const char *s, size_t n, int64_t *ms) {
  int64_t t;
  if (rn_iso8601_parse(s, n, 0, &t) != 0 || t < 0) return RN_EINVAL;
  *ms = t;
  return 0;
}

/* Largest ms we accept: year 9999. */
#define MAX_TS_MS 253402300799999LL

rn_err_t rn__timestamp_parse(const char *s, size_t n, int64_t *ms) {
  while (n > 0 && (s[0] == ' ' || s[0] == '\t')) s++, n--;
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  if (n == 0) return RN_EINVAL;
  if (n >= 10 && s[4] == '-') return parse_iso8601(s, n, ms);
  /* Decimal: [+]digits[.digits][e[+-]digits], kept exact: up to 19
   * significant digits in a u64 mantissa, the rest only move the exponent. */
  size_t i = 0;
  if (s[i] == '+') i++;
  uint64_t mant = 0;
  int sig = 0;        /* significant digits taken into mant */
  int64_t exp10 = 0;  /* value = mant * 10^exp10 seconds */
  bool any = false;
  for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
    any = true;
    if (sig < 19) {
      if (mant || s[i] != '0') {
        mant = mant * 10 + (uint64_t)(s[i] - '0');
        sig += mant != 0;
      }
    } else {
      exp10++; /* a digit past the 19th only scales */
    }
  }
  if (i < n && s[i] == '.') {
    i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
      any = true;
      if (sig < 19) {
        mant = mant * 10 + (uint64_t)(s[i] - '0');
        if (mant) sig++;
        exp10--;
      }
    }
  }
  if (!any) return RN_EINVAL;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    int esign = 1;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
      esign = s[i] == '-' ? -1 : 1;
      i++;
    }
    int64_t e = 0;
    size_t start = i;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
      if (e < 100000) e = e * 10 + (s[i] - '0');
    }
    if (i == start) return RN_EINVAL;
    exp10 += esign * e;
  }
  if (i != n) return RN_EINVAL;
  /* To milliseconds. */
  exp10 += 3;
  uint64_t v = mant;
  if (exp10 >= 0) {
    for (int64_t k = 0; k < exp10 && v; k++) {
      if (v > (uint64_t)MAX_TS_MS) return RN_EINVAL;
      v *= 10;
    }
  } else {
    int round_digit = 0;
    for (int64_t k = 0; k < -exp10 && v; k++) {
      round_digit = (int)(v % 10);
      v /= 10;
      if (k > 40) {
        v = 0;
        break;
      }
    }
    if (round_digit >= 5) v++;
  }
  if (v > (uint64_t)MAX_TS_MS) return RN_EINVAL;
  *ms = (int64_t)v;
  return 0;
}

rn_err_t rn__timestamp_from_json(const json_t *v, int64_t *ms) {
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > MAX_TS_MS / 1000) return RN_EINVAL;
    *ms = (int64_t)x * 1000;
    return 0;
  }
  if (json_is_real(v)) {
    double d = json_real_value(v);
    if (!isfinite(d) || d < 0 || d * 1000.0 > (double)MAX_TS_MS) return RN_EINVAL;
    *ms = (int64_t)llround(d * 1000.0);
    return 0;
  }
  if (json_is_string(v)) return rn__timestamp_parse(json_string_value(v), json_string_length(v), ms);
  return RN_EINVAL;
}

/* Hash keys (MD5 routing, decimal parse/format) are proto's: runnel/keys.h. */


/* ---- sequence numbers ------------------------------------------------------------------------ */

size_t rn__kseq_encode(int64_t created_ms, uint32_t shard, uint64_t offset, char out[RN__KSEQ_BUFLEN]) {
  return rn_seqnum_encode(created_ms, shard, offset, out);
}

/* 2^80, the weight of the offset's lowest bit, in decimal. */
static const char KSEQ_STEP[] = "1208925819614629174706176";

/* Eight decimal digits (ASCII) at s as one word, the first digit in the top
 * byte, each byte 0..9; and back. */
static inline uint64_t dig8_load(const char *s) {
  uint64_t v;
  memcpy(&v, s, 8);
  return __builtin_bswap64(v) - 0x3030303030303030ull;
}
static inline void dig8_store(char *s, uint64_t v) {
  v = __builtin_bswap64(v + 0x3030303030303030ull);
  memcpy(s, &v, 8);
}

/* 2^80 as four words of eight digits (dig8_load's layout), least
 * significant first: 74706176, 96146291, 20892581, 00000001. */
static const uint64_t KSEQ_STEP_WORDS[4] = {0x0704070006010706ull, 0x0906010406020901ull, 0x0200080902050801ull, 0x0000000000000001ull};

void rn__kseq_next(char *seq, size_t len) {
  /* Add 2^80 from the right; the sum keeps its length, as bits 184..187
   * (the top version nibble) do not change. Eight digits per step: each
   * byte gets digit + digit + carry + 0xf6, so a byte whose sum reaches 10
   * overflows into the next byte (the decimal carry) and keeps sum - 10,
   * and a byte that did not overflow has its top bit set and gives back the
   * 0xf6. */
  if (len % 8 == 0 && len >= 32) {
    unsigned carry = 0;
    for (size_t k = 0; k < len / 8 && (k < 4 || carry); k++) {
      char *at = seq + len - 8 * (k + 1);
      unsigned __int128 t = (unsigned __int128)dig8_load(at) + (k < 4 ? KSEQ_STEP_WORDS[k] : 0) +
                            0xf6f6f6f6f6f6f6f6ull + carry;
      uint64_t w = (uint64_t)t;
      carry = (unsigned)(t >> 64);
      w -= ((w & 0x8080808080808080ull) >> 7) * 0xf6;
      dig8_store(at, w);
    }
    return;
  }
  size_t sl = sizeof(KSEQ_STEP) - 1;
  unsigned carry = 0;
  for (size_t k = 0; k < len && (k < sl || carry); k++) {
    char *d = &seq[len - 1 - k];
    unsigned v = (unsigned)(*d - '0') + carry + (k < sl ? (unsigned)(KSEQ_STEP[sl - 1 - k] - '0') : 0u);
    carry = v >= 10;
    *d = (char)('0' + (carry ? v - 10 : v));
  }
}

size_t rn__kseq_cached(rn__kseq_cache_t *c, int64_t created_ms, uint32_t shard, uint64_t offset, const char **out) {
  unsigned k = shard & 15;
  if (c->len[k] && c->shard[k] == shard && c->offset[k] + 1 == offset) {
    rn__kseq_next(c->seq[k], c->len[k]);
  } else if (!c->len[k] || c->shard[k] != shard || c->offset[k] != offset) {
    c->len[k] = (uint8_t)rn__kseq_encode(created_ms, shard, offset, c->seq[k]);
    c->shard[k] = shard;
  }
  c->offset[k] = offset;
  *out = c->seq[k];
  return c->len[k];
}

rn_err_t rn__kseq_decode(const char *s, size_t n, rn__kseq_t *out) {
  rn_seqnum_t q;
  rn_err_t rc = rn_seqnum_decode(s, n, &q);
  if (rc == 0) *out = (rn__kseq_t){.created_s = q.created_s, .shard = q.shard, .offset = q.offset};
  return rc;
}

/* ---- shard iterators ----------------------------------------------------------------------------- */

#define KITER_VERSION 1
#define KITER_FIXED 30 /* bytes before the name */
#define KITER_MAC 32

static void wr_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t rd_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static uint64_t rd_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static void kiter_mac(const uint8_t key[RN__KITER_KEYLEN], const uint8_t *p, size_t n, uint8_t mac[KITER_MAC]) {
  unsigned len = 0;
  if (!HMAC(EVP_sha256(), key, RN__KITER_KEYLEN, p, n, mac, &len) || len != KITER_MAC) abort();
}

size_t rn__kiter_encode(const uint8_t key[RN__KITER_KEYLEN], const rn__kiter_t *it, char *out) {
  uint8_t raw[KITER_FIXED + 128 + KITER_MAC];
  size_t nl = strnlen(it->stream, 128);
  raw[0] = KITER_VERSION;
  raw[1] = (uint8_t)nl;
  wr_u32(raw + 2, it->shard);
  wr_u64(raw + 6, it->offset);
  wr_u64(raw + 14, (uint64_t)it->created_ms);
  wr_u64(raw + 22, (uint64_t)it->issued_ms);
  memcpy(raw + KITER_FIXED, it->stream, nl);
  kiter_mac(key, raw, KITER_FIXED + nl, raw + KITER_FIXED + nl);
  size_t total = KITER_FIXED + nl + KITER_MAC;
  rn__b64_encode(raw, total, out);
  return rn__b64_encoded_len(total);
}

rn_err_t rn__kiter_decode(const uint8_t key[RN__KITER_KEYLEN], const char *s, size_t n, rn__kiter_t *out) {
  uint8_t raw[KITER_FIXED + 128 + KITER_MAC + 8];
  if (n == 0 || n > RN__KITER_MAXLEN || rn__b64_decoded_max(n) > sizeof(raw)) return RN_EINVAL;
  size_t len = 0;
  if (rn__b64_decode(s, n, raw, &len)) return RN_EINVAL;
  if (len < KITER_FIXED + KITER_MAC || raw[0] != KITER_VERSION) return RN_EINVAL;
  size_t nl = raw[1];
  if (nl == 0 || nl > 128 || len != KITER_FIXED + nl + KITER_MAC) return RN_EINVAL;
  uint8_t mac[KITER_MAC];
  kiter_mac(key, raw, KITER_FIXED + nl, mac);
  if (CRYPTO_memcmp(mac, raw + KITER_FIXED + nl, KITER_MAC) != 0) return RN_EINVAL;
  memcpy(out->stream, raw + KITER_FIXED, nl);
  out->stream[nl] = 0;
  out->shard = rd_u32(raw + 2);
  out->offset = rd_u64(raw + 6);
  out->created_ms = (int64_t)rd_u64(raw + 14);
  out->issued_ms = (int64_t)rd_u64(raw + 22);
  return 0;
}

/* ---- shard ids ------------------------------------------------------------------------------------ */

rn_err_t rn__shard_id_parse(const char *s, size_t n, uint32_t *index) {
  static const char prefix[] = "shardId-";
  if (n >= sizeof(prefix) - 1 && memcmp(s, prefix, sizeof(prefix) - 1) == 0) {
    s += sizeof(prefix) - 1;
    n -= sizeof(prefix) - 1;
  }
  if (n == 0 || n > 20) return RN_EINVAL;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return RN_EINVAL;
    v = v * 10 + (uint64_t)(s[i] - '0');
    if (v > UINT32_MAX) return RN_EINVAL;
  }
  *index = (uint32_t)v;
  return 0;
}
