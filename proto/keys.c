/*
 * keys.c — hash keys and resource names (runnel/keys.h): the one parser of
 * decimal hash keys, its inverse, MD5 routing, and the name rules every
 * entry point applies. Pure functions over bytes; the only library call is
 * OpenSSL's MD5 (the one piece of process state: the fetched MD5 and a
 * context per thread, see rn_hash_key_for).
 *
 * Arithmetic is on the 16-byte big-endian array itself (multiply by ten
 * with carry, divide by ten with remainder), so the code needs no 128-bit
 * compiler type and the stored form is the computed form.
 */
#include "runnel/keys.h"

#include "proto_int.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- hash keys ---------------------------------------------------------------------------- */

/* MD5 is fetched from the default provider once per process: EVP_md5()
 * makes EVP_Digest fetch it again on every call (a lookup under a lock) and
 * EVP_Digest allocates and frees a context every time. The producer routes
 * every record, so both showed in its profile. Each thread keeps one
 * context, freed by the key's destructor when the thread ends. Everything
 * here is set up on first use (pthread_once): there is no init call to
 * forget, and the result is the same bytes as EVP_Digest(EVP_md5()). */
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;
static EVP_MD *md5_md;        /* fetched once; never freed (lives as long as the process) */
static pthread_key_t md5_key; /* per thread: its EVP_MD_CTX */
static bool md5_key_ok;

static void md5_ctx_free(void *ctx) { EVP_MD_CTX_free(ctx); }

static void md5_setup(void) {
  md5_md = EVP_MD_fetch(NULL, "MD5", NULL);
  md5_key_ok = pthread_key_create(&md5_key, md5_ctx_free) == 0;
}

/* The calling thread's context, created on its first call; NULL when out of
 * memory or keys. */
static EVP_MD_CTX *md5_ctx(void) {
  if (!md5_key_ok) return NULL;
  EVP_MD_CTX *ctx = pthread_getspecific(md5_key);
  if (ctx != NULL) return ctx;
  ctx = EVP_MD_CTX_new();
  if (ctx != NULL && pthread_setspecific(md5_key, ctx) != 0) {
    EVP_MD_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

void rn_hash_key_for(const void *key, size_t len, uint8_t out[RN_HASH_KEY_BYTES]) {
  static const uint8_t empty = 0;
  const void *data = len ? key : &empty;
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  int ok;
  pthread_once(&md5_once, md5_setup);
  EVP_MD_CTX *ctx = md5_md != NULL ? md5_ctx() : NULL;
  if (ctx != NULL)
    ok = EVP_DigestInit_ex2(ctx, md5_md, NULL) == 1 && EVP_DigestUpdate(ctx, data, len) == 1 &&
         EVP_DigestFinal_ex(ctx, md, &n) == 1;
  else
    ok = EVP_Digest(data, len, md, &n, EVP_md5(), NULL) == 1; /* the slow way still routes */
  /* MD5 from the default provider cannot fail short of memory exhaustion;
   * a silent wrong route would be worse than stopping. */
  if (!ok || n != RN_HASH_KEY_BYTES) abort();
  memcpy(out, md, RN_HASH_KEY_BYTES);
}

rn_err_t rn_hash_key_parse_n(const char *s, size_t len, uint8_t out[RN_HASH_KEY_BYTES]) {
  /* "0" | [1-9][0-9]{0,38}: 39 digits is the most 2^128-1 needs */
  if (s == NULL || len == 0 || len > RN_HASH_KEY_STRLEN - 1) return RN_EINVAL;
  if (len > 1 && s[0] == '0') return RN_EINVAL;
  uint8_t v[RN_HASH_KEY_BYTES] = {0};
  for (size_t k = 0; k < len; k++) {
    if (s[k] < '0' || s[k] > '9') return RN_EINVAL;
    /* v = v * 10 + digit, detecting a carry out of the top byte */
    unsigned carry = (unsigned)(s[k] - '0');
    for (int i = RN_HASH_KEY_BYTES - 1; i >= 0; i--) {
      unsigned x = (unsigned)v[i] * 10u + carry;
      v[i] = (uint8_t)x;
      carry = x >> 8;
    }
    if (carry) return RN_EINVAL;
  }
  memcpy(out, v, sizeof v);
  return 0;
}

rn_err_t rn_hash_key_parse(const char *decimal, uint8_t out[RN_HASH_KEY_BYTES]) {
  if (decimal == NULL) return RN_EINVAL;
  return rn_hash_key_parse_n(decimal, strlen(decimal), out);
}

void rn_hash_key_format(const uint8_t key[RN_HASH_KEY_BYTES], char out[RN_HASH_KEY_STRLEN]) {
  uint8_t v[RN_HASH_KEY_BYTES];
  char tmp[RN_HASH_KEY_STRLEN];
  size_t n = 0;
  memcpy(v, key, sizeof v);
  for (;;) {
    /* v, rem = divmod(v, 10) */
    unsigned rem = 0;
    int nonzero = 0;
    for (int i = 0; i < RN_HASH_KEY_BYTES; i++) {
      unsigned x = (rem << 8) | v[i];
      v[i] = (uint8_t)(x / 10u);
      rem = x % 10u;
      nonzero |= v[i];
    }
    tmp[n++] = (char)('0' + rem);
    if (!nonzero) break;
  }
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = '\0';
}

/* ---- names ------------------------------------------------------------------------------ */

typedef enum { NAME_OK, NAME_CHARS, NAME_DOTS } name_verdict_t;

static name_verdict_t name_verdict(const char *s, size_t len) {
  if (s == NULL || len == 0 || len > RN_NAME_MAX) return NAME_CHARS;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
          c == '.'))
      return NAME_CHARS;
  }
  /* "." and ".." would name the stream's parent or its own directory */
  if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) return NAME_DOTS;
  return NAME_OK;
}

/* The name as shown in a reason: at most 140 bytes, as the broker always
 * printed it. */
#define SHOWN(s, len) (int)((len) > 140 ? 140 : (len)), ((s) ? (s) : "")

rn_err_t rn_name_check_stream(const char *s, size_t len, char *why, size_t whylen) {
  switch (name_verdict(s, len)) {
  case NAME_OK:
    return 0;
  case NAME_DOTS:
    return rn__reject(why, whylen, "stream name \"%.*s\" is invalid: \".\" and \"..\" are reserved", SHOWN(s, len));
  case NAME_CHARS:
  default:
    return rn__reject(why, whylen, "stream name \"%.*s\" is invalid: 1-128 characters of A-Z a-z 0-9 _ . -",
                      SHOWN(s, len));
  }
}

rn_err_t rn_name_check_group(const char *s, size_t len, char *why, size_t whylen) {
  switch (name_verdict(s, len)) {
  case NAME_OK:
    return 0;
  case NAME_DOTS:
    return rn__reject(why, whylen, "invalid group name \"%.*s\": \".\" and \"..\" are reserved", SHOWN(s, len));
  case NAME_CHARS:
  default:
    return rn__reject(why, whylen, "invalid group name \"%.*s\": 1-128 characters of A-Z a-z 0-9 _ . -",
                      SHOWN(s, len));
  }
}
