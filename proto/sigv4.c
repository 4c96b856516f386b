/* sigv4.c — runnel/sigv4.h: the signing-key chain and SHA-256 of SigV4. */
#include "runnel/sigv4.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static void hex(const uint8_t *p, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = 0;
}

void rn_sha256_hex(const void *p, size_t n, char out[65]) {
  static const char empty = 0;
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (EVP_Digest(n ? p : &empty, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32) abort();
  hex(md, 32, out);
}

static void hmac(const void *key, size_t klen, const void *data, size_t dlen, uint8_t out[32]) {
  unsigned len = 0;
  if (!HMAC(EVP_sha256(), key, (int)klen, data, dlen, out, &len) || len != 32) abort();
}

void rn_sigv4_signature(const char *secret, const char *date8, const char *region, const char *service,
                        const char *string_to_sign, char out[65]) {
  size_t sl = strlen(secret);
  char *k = malloc(sl + 5);
  if (!k) abort();
  memcpy(k, "AWS4", 4);
  memcpy(k + 4, secret, sl + 1);
  uint8_t kd[32], kr[32], ks[32], kf[32], sig[32];
  hmac(k, sl + 4, date8, strlen(date8), kd);
  OPENSSL_cleanse(k, sl + 4);
  free(k);
  hmac(kd, 32, region, strlen(region), kr);
  hmac(kr, 32, service, strlen(service), ks);
  hmac(ks, 32, "aws4_request", 12, kf);
  hmac(kf, 32, string_to_sign, strlen(string_to_sign), sig);
  OPENSSL_cleanse(kd, 32);
  OPENSSL_cleanse(kr, 32);
  OPENSSL_cleanse(ks, 32);
  OPENSSL_cleanse(kf, 32);
  hex(sig, 32, out);
}
