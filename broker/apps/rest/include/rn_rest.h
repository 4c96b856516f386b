/*
 * rn_rest.h — REST ingest, the HTTP application for mobile and web apps
 * (docs/kinesis.md, "REST ingest"): PUT|POST /streams/{s}/record and
 * /streams/{s}/records in the shapes of the usual API-Gateway-to-Kinesis
 * proxy, and POST /v1/streams/{s}/records (NDJSON or a JSON array).
 * Library rn_rest, above rn_kinesis (it stores through the Kinesis produce
 * path) and rn_admin (it answers through rn_admin_reply*).
 *
 * Threading: the loop thread that runs the engine, for everything here.
 */
#ifndef RN_REST_H
#define RN_REST_H

#include <stdbool.h>
#include <stddef.h>

#include "rn_admin.h"
#include "rn_kinesis.h"
#include "runnel/error.h"

typedef struct rn_rest rn_rest_t;

/* REST ingest's options (runneld fills them from its config:
 * rn_server_apps_opts, server.h). Strings are borrowed for the call only. */
typedef struct rn_rest_opts {
  const char *api_keys;    /* rest_api_keys: "key:stream|stream,key:*"; "" = open */
  uint32_t max_body_bytes; /* rest_max_body_bytes: the most a gzip body may inflate to */
} rn_rest_opts_t;

/* Create from opts. kin and adm are
 * borrowed and must outlive the result. Returns 0 with *out owned by the
 * caller, or RN_EINVAL (a bad API key list; why says which entry),
 * RN_ENOMEM. */
rn_err_t rn_rest_new(rn_kinesis_t *kin, rn_admin_t *adm, const rn_rest_opts_t *opts, rn_rest_t **out, char *why,
                     size_t whylen);

/* Free; no request may be in flight. NULL ok. */
void rn_rest_destroy(rn_rest_t *rest);

/* true when no API keys are configured: REST ingest is open. */
bool rn_rest_open(const rn_rest_t *rest);

/* Answer PUT/POST /streams/{s}/record(s) or POST /v1/streams/{s}/records;
 * hop is RN__HOP_REST_RECORD, _RECORDS or _BATCH, stream the decoded {s}.
 * Takes c. */
void rn_rest_handle(rn_rest_t *rest, rn_admin_call_t *c, int hop, const char *stream);

#endif
