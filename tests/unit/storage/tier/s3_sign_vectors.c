/*
 * s3_sign_vectors.c — prints the Authorization header storage/tier/s3.c's
 * signer produces for a fixed set of S3 requests, one per line:
 *   method|host|path|query|amz_date|region|akid|secret|token|authorization
 * test_s3_sign.py computes the same with botocore and compares.
 */
#include <stdio.h>

#include "../../../../storage/tier/s3_int.h"

int main(void) {
  static const char *const v[][9] = {
      {"PUT", "127.0.0.1:9000", "/bucket/t/0a1b2c3d/local/clicks-42/3/00000000000000000000-0.log", "",
       "20261203T075000Z", "us-east-1", "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL},
      {"GET", "bucket.s3.eu-west-1.amazonaws.com", "/t/key%20with%20space%2Bplus", "", "20261203T075000Z",
       "eu-west-1", "AKIDEXAMPLE", "secret", NULL},
      {"GET", "s3.eu-west-1.amazonaws.com", "/bucket",
       "continuation-token=1%2Fabc%3D%3D&list-type=2&prefix=t%2F0a1b2c3d%2Flocal%2F", "20261203T075000Z", "eu-west-1",
       "AKIDEXAMPLE", "secret", NULL},
      {"POST", "127.0.0.1:9000", "/bucket/big/obj", "uploads=", "20261203T075000Z", "us-east-1", "AK", "SK", NULL},
      {"PUT", "127.0.0.1:9000", "/bucket/big/obj", "partNumber=2&uploadId=abc-123%2B%2F", "20261203T075000Z",
       "us-east-1", "AK", "SK", "FQoGZXIvYXdzEXAMPLETOKEN//////////"},
      {"DELETE", "s3.amazonaws.com", "/bucket/k", "", "20261231T235959Z", "us-east-1", "AK", "SK", NULL},
      {"HEAD", "s3.amazonaws.com", "/bucket/%E2%82%AC/x", "", "20261203T000000Z", "ap-south-1", "AK", "SK", NULL},
  };
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    char auth[1024];
    rn__s3_authorization(v[i][0], v[i][1], v[i][2], v[i][3], v[i][4], v[i][5], v[i][6], v[i][7], v[i][8], auth,
                         sizeof(auth));
    printf("%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n", v[i][0], v[i][1], v[i][2], v[i][3], v[i][4], v[i][5], v[i][6],
           v[i][7], v[i][8] ? v[i][8] : "", auth);
  }
  return 0;
}
