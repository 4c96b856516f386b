/*
 * consumer.c — a reader of one shard. It keeps the last Fetch response and
 * iterates the batches in it with the batch iterator (which verifies both
 * checksums before a record is returned); when they are used up, the next
 * poll sends a long-polling Fetch from the next position.
 *
 * Invariants: `pos` is the offset of the next record poll may return (every
 * record below it was returned or skipped); the records handed out point
 * into `resp` (or the iterator's scratch for LZ4) and stay valid until the
 * next poll/seek/destroy, which are the only places that release them.
 * Single-threaded by contract: no locks.
 *
 * Routing (a cluster): fetches go to the shard's leader (`leader`, from the
 * stream's description; "" = the bootstrap connection, as on a single
 * broker, where nothing else ever happens). A fetch answered ENOTLEADER /
 * ENOTENOUGHREPLICAS / ESTALEEPOCH, or failing on a leader's connection,
 * changes nothing of the position: the consumer describes the stream
 * (bootstrap), takes the new leader and fetches again from the same `pos`,
 * up to RN__ROUTE_TRIES times per poll with the client's reconnect backoff
 * between tries that found no new leader.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_int.h"

/* Per-fetch response size cap. */
#define RN__FETCH_MAX_BYTES (4u << 20)
/* Fetch attempts per poll when the leader moved. */
#define RN__ROUTE_TRIES 4u

struct rn_consumer {
  rn_client_t *cl;
  char *stream;
  uint32_t shard;
  char leader[96]; /* the shard's leader address as last described; "" = none known */
  rn_pos_kind_t kind; /* starting position until resolved */
  int64_t value;
  bool resolved;
  uint64_t pos;
  bool have_hwm;
  uint64_t hwm;
  Runnel__Response *resp; /* the batches being iterated */
  const uint8_t *bp, *bend;
  uint64_t resp_next; /* the response's next_offset */
  rn_batch_iter_t it;
  bool it_live;
  rn_record_t rec;
};

rn_err_t rn_consumer_new(rn_client_t *cl, const char *stream, uint32_t shard, rn_pos_kind_t kind, int64_t value,
                         rn_consumer_t **out) {
  rn__errmsg_clear();
  if (cl == NULL || stream == NULL || out == NULL || (unsigned)kind > RN_POS_TIMESTAMP) return RN_EINVAL;
  if (kind == RN_POS_OFFSET && value < 0) return RN_EINVAL;
  rn_consumer_t *c = calloc(1, sizeof *c);
  if (c == NULL) return RN_ENOMEM;
  c->stream = strdup(stream);
  if (c->stream == NULL) {
    free(c);
    return RN_ENOMEM;
  }
  c->cl = cl;
  c->shard = shard;
  c->kind = kind;
  c->value = value;
  if (kind == RN_POS_OFFSET) {
    c->resolved = true;
    c->pos = (uint64_t)value;
  }
  *out = c;
  return 0;
}

static void drop_buffer(rn_consumer_t *c) {
  if (c->it_live) rn_batch_iter_free(&c->it);
  c->it_live = false;
  if (c->resp) runnel__response__free_unpacked(c->resp, NULL);
  c->resp = NULL;
  c->bp = c->bend = NULL;
}

rn_err_t rn_consumer_seek(rn_consumer_t *c, rn_pos_kind_t kind, int64_t value) {
  if (c == NULL || (unsigned)kind > RN_POS_TIMESTAMP || (kind == RN_POS_OFFSET && value < 0)) return RN_EINVAL;
  drop_buffer(c);
  c->kind = kind;
  c->value = value;
  c->resolved = kind == RN_POS_OFFSET;
  c->pos = kind == RN_POS_OFFSET ? (uint64_t)value : 0;
  return 0;
}

bool rn_consumer_position(const rn_consumer_t *c, uint64_t *offset) {
  if (!c->resolved) return false;
  *offset = c->pos;
  return true;
}

bool rn_consumer_high_watermark(const rn_consumer_t *c, uint64_t *end_offset) {
  if (!c->have_hwm) return false;
  *end_offset = c->hwm;
  return true;
}

void rn_consumer_destroy(rn_consumer_t *c) {
  if (c == NULL) return;
  drop_buffer(c);
  free(c->stream);
  free(c);
}

/* One long-polling Fetch; on success the response's batches become the
 * buffer. */
static rn_err_t fetch(rn_consumer_t *c, rn_client_t *target, uint32_t max_wait_ms) {
  Runnel__ShardFetch sf;
  runnel__shard_fetch__init(&sf);
  sf.shard = c->shard;
  if (c->resolved) {
    sf.kind = RUNNEL__POSITION_KIND__POSITION_OFFSET;
    sf.value = (int64_t)c->pos;
  } else {
    sf.kind = (Runnel__PositionKind)c->kind;
    sf.value = c->value;
  }
  Runnel__ShardFetch *sfs[1] = {&sf};
  Runnel__FetchRequest fr;
  runnel__fetch_request__init(&fr);
  fr.stream = c->stream;
  fr.n_shards = 1;
  fr.shards = sfs;
  fr.max_wait_ms = max_wait_ms;
  fr.max_bytes = RN__FETCH_MAX_BYTES;
  Runnel__Request req;
  runnel__request__init(&req);
  req.op_case = RUNNEL__REQUEST__OP_FETCH;
  req.fetch = &fr;
  Runnel__Response *resp;
  rn_err_t err = rn__client_call(target, &req, max_wait_ms, &resp);
  if (err) return err;
  const Runnel__ShardFetchResult *r = NULL;
  if (resp->op_case == RUNNEL__RESPONSE__OP_FETCH) {
    for (size_t i = 0; i < resp->fetch->n_results; i++)
      if (resp->fetch->results[i]->shard == c->shard) r = resp->fetch->results[i];
  }
  if (r == NULL) {
    rn__errmsg_set("fetch response without a result for shard %u", c->shard);
    runnel__response__free_unpacked(resp, NULL);
    return RN_EBADREQUEST;
  }
  char msg[300];
  err = rn__pb_error(r->error, msg, sizeof msg);
  if (err) {
    rn__errmsg_set("%s", msg);
    runnel__response__free_unpacked(resp, NULL);
    return err;
  }
  if (!c->resolved) {
    c->resolved = true;
    c->pos = r->offset;
  }
  c->have_hwm = true;
  c->hwm = r->end_offset;
  c->resp = resp;
  c->bp = r->batches.data;
  c->bend = r->batches.data + r->batches.len;
  c->resp_next = r->next_offset;
  return 0;
}

/* Learn the shard's leader (blocking describe on the bootstrap). Whether
 * the address changed. */
static bool locate(rn_consumer_t *c) {
  rn_stream_desc_t *desc;
  if (rn_stream_describe(c->cl, c->stream, &desc) != 0) return false;
  bool changed = false;
  for (size_t i = 0; i < desc->shard_count; i++) {
    if (desc->shards[i].index != c->shard) continue;
    changed = strcmp(c->leader, desc->shards[i].leader_address) != 0;
    snprintf(c->leader, sizeof c->leader, "%s", desc->shards[i].leader_address);
  }
  rn_stream_desc_free(desc);
  return changed;
}

/* fetch() at the shard's leader, following it when it moved. */
static rn_err_t fetch_routed(rn_consumer_t *c, uint32_t max_wait_ms) {
  const rn_client_conf_t *conf = rn__client_conf(c->cl);
  uint64_t pause = conf->reconnect_backoff_ms;
  for (unsigned attempt = 1;; attempt++) {
    rn_client_t *t = rn__client_route(c->cl, c->leader);
    rn_err_t err = fetch(c, t, max_wait_ms);
    bool moved = rn__err_moved(err) || ((err == RN_ECONNECTION || err == RN_ETIMEDOUT) && rn__client_is_peer(c->cl, t));
    if (!moved || attempt >= RN__ROUTE_TRIES) return err;
    char why[512];
    snprintf(why, sizeof why, "%s", rn_last_error_message());
    if (!locate(c) && pause > 0) {
      /* no new leader yet (an election under way, or the bootstrap is
       * down): wait before asking again */
      struct timespec ts = {.tv_sec = (time_t)(pause / 1000), .tv_nsec = (long)(pause % 1000) * 1000000L};
      nanosleep(&ts, NULL);
      pause = pause * 2 > conf->reconnect_backoff_max_ms ? conf->reconnect_backoff_max_ms : pause * 2;
    }
    rn__errmsg_set("%s", why);
  }
}

rn_err_t rn_consumer_poll(rn_consumer_t *c, uint32_t max_wait_ms, const rn_record_t **rec) {
  rn__errmsg_clear();
  if (c == NULL || rec == NULL) return RN_EINVAL;
  *rec = NULL;
  bool fetched = false;
  for (;;) {
    if (c->it_live) {
      rn_err_t err = rn_batch_iter_next(&c->it, &c->rec);
      if (err == 0) {
        if (c->rec.offset < c->pos) continue; /* below the requested position */
        c->pos = c->rec.offset + 1;
        *rec = &c->rec;
        return 0;
      }
      rn_batch_iter_free(&c->it);
      c->it_live = false;
      if (err != RN_EOFFSET) {
        drop_buffer(c);
        rn__errmsg_set("shard %u: a fetched batch failed verification near offset %llu", c->shard,
                       (unsigned long long)c->pos);
        return err;
      }
      continue;
    }
    if (c->bp != NULL && c->bp < c->bend) {
      rn_err_t err = rn_batch_iter_init(&c->it, c->bp, (size_t)(c->bend - c->bp));
      if (err) {
        drop_buffer(c);
        rn__errmsg_set("shard %u: a fetched batch failed verification at offset %llu", c->shard,
                       (unsigned long long)c->pos);
        return err == RN_EPARTIAL ? RN_ECORRUPT : err;
      }
      c->it_live = true;
      c->bp += c->it.hdr.batch_length;
      continue;
    }
    /* buffer used up: everything below the response's next_offset was seen */
    if (c->resp != NULL && c->resp_next > c->pos) c->pos = c->resp_next;
    drop_buffer(c);
    if (fetched) return RN_EAGAIN; /* the broker answered without records */
    rn_err_t err = fetch_routed(c, max_wait_ms);
    if (err) return err;
    fetched = true;
  }
}
