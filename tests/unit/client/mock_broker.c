/*
 * mock_broker.c — see mock_broker.h. One thread, poll() over the listening
 * socket, a wake pipe and the connections; requests are handled in arrival
 * order under mb->mu; a fetch with nothing to return and max_wait_ms > 0 is
 * parked and answered by the next append to its shard (or by its deadline).
 * Deliberately simple: no retention, offsets start at 0, blocking writes.
 */
#include "mock_broker.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "runnel/batch.h"
#include "runnel/frame.h"

#define MAX_CONNS 16
#define MAX_STREAMS 16
#define MAX_RULES 32
#define MAX_PARKED 64

typedef struct {
  uint8_t *data;
  size_t len;
  uint64_t base;
  uint32_t count;
  int64_t max_ts;
} mbatch_t;

typedef struct {
  uint64_t pid;
  int32_t next_seq;
  struct {
    int32_t seq;
    uint64_t base;
  } hist[256];
  unsigned nhist;
} mprod_t;

typedef struct {
  mbatch_t *batches;
  size_t n, cap;
  uint64_t end;
  mprod_t prods[8];
  unsigned nprods;
  uint32_t leader, leader_epoch; /* described placement (mock_set_leader) */
  char leader_address[96];
} mshard_t;

typedef struct {
  char name[64];
  uint32_t nshards;
  int64_t retention_ms, retention_bytes;
  Runnel__Durability durability;
  mshard_t *shards;
} mstream_t;

typedef struct {
  int fd;
  uint8_t *rbuf;
  size_t rlen, rcap;
} mconn_t;

typedef struct {
  bool used;
  int fd;
  Runnel__Request *req;
  int64_t deadline;
} mparked_t;

typedef struct {
  Runnel__Request__OpCase op;
  mock_action_t action;
  rn_err_t err;
  int left;
} mrule_t;

typedef struct {
  int fd;
  uint8_t *frame;
  size_t len;
} mheld_t;

typedef struct {
  uint32_t shard, count;
  uint8_t codec;
  uint64_t pid;
  int32_t seq;
} minfo_t;

struct mock_broker {
  pthread_t thread;
  int lfd;
  int wake[2];
  char addr[64];
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool stop;
  mconn_t conns[MAX_CONNS];
  mstream_t streams[MAX_STREAMS];
  unsigned nstreams;
  mrule_t rules[MAX_RULES];
  unsigned nrules;
  mparked_t parked[MAX_PARKED];
  unsigned counts[64];
  unsigned connections, duplicates;
  uint64_t next_pid;
  unsigned reorder_n;
  mheld_t held[32];
  unsigned nheld;
  minfo_t *infos;
  unsigned ninfos, capinfos;
  uint32_t limits[4]; /* BrokerInfo: record, batch, frame, fetch; all 0 = EUNKNOWNOP */
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- streams ------------------------------------------------------------------ */

static mstream_t *find_stream(mock_broker_t *mb, const char *name) {
  for (unsigned i = 0; i < mb->nstreams; i++)
    if (strcmp(mb->streams[i].name, name) == 0) return &mb->streams[i];
  return NULL;
}

static void range_of(uint32_t i, uint32_t n, uint8_t start[16], uint8_t end[16]) {
  unsigned __int128 max = ~(unsigned __int128)0;
  unsigned __int128 step = max / n + (max % n == n - 1 ? 1 : 0); /* floor(2^128 / n), as Kinesis */
  unsigned __int128 s = step * i, e = (i + 1 == n) ? max : step * (i + 1) - 1;
  for (int k = 15; k >= 0; k--) {
    start[k] = (uint8_t)s;
    end[k] = (uint8_t)e;
    s >>= 8;
    e >>= 8;
  }
}

static mstream_t *add_stream(mock_broker_t *mb, const char *name, uint32_t shards) {
  assert(mb->nstreams < MAX_STREAMS);
  mstream_t *st = &mb->streams[mb->nstreams++];
  memset(st, 0, sizeof *st);
  snprintf(st->name, sizeof st->name, "%s", name);
  st->nshards = shards;
  st->shards = calloc(shards, sizeof *st->shards);
  return st;
}

static void free_stream(mstream_t *st) {
  for (uint32_t i = 0; i < st->nshards; i++) {
    for (size_t k = 0; k < st->shards[i].n; k++) free(st->shards[i].batches[k].data);
    free(st->shards[i].batches);
  }
  free(st->shards);
}

void mock_create_stream(mock_broker_t *mb, const char *name, uint32_t shards) {
  pthread_mutex_lock(&mb->mu);
  add_stream(mb, name, shards);
  pthread_mutex_unlock(&mb->mu);
}

void mock_set_leader(mock_broker_t *mb, const char *stream, uint32_t shard, uint32_t leader, uint32_t epoch,
                     const char *address) {
  pthread_mutex_lock(&mb->mu);
  mstream_t *st = find_stream(mb, stream);
  assert(st != NULL && shard < st->nshards);
  st->shards[shard].leader = leader;
  st->shards[shard].leader_epoch = epoch;
  snprintf(st->shards[shard].leader_address, sizeof st->shards[shard].leader_address, "%s", address ? address : "");
  pthread_mutex_unlock(&mb->mu);
}

/* ---- response helpers -------------------------------------------------------------- */

/* A message arena: everything a response points to is freed together. */
typedef struct {
  void *ptrs[1024];
  unsigned n;
} arena_t;

static void *aalloc(arena_t *a, size_t n) {
  assert(a->n < 1024);
  void *p = calloc(1, n ? n : 1);
  assert(p);
  a->ptrs[a->n++] = p;
  return p;
}
static void afree(arena_t *a) {
  for (unsigned i = 0; i < a->n; i++) free(a->ptrs[i]);
  a->n = 0;
}

static Runnel__Error *mk_error(arena_t *a, rn_err_t err, const char *msg) {
  Runnel__Error *e = aalloc(a, sizeof *e);
  runnel__error__init(e);
  e->code = rn_err_to_wire(err);
  e->name = (char *)(uintptr_t)rn_err_name(err);
  e->message = (char *)(uintptr_t)msg;
  e->retriable = rn_err_retriable(err);
  return e;
}

static Runnel__StreamDescription *mk_desc(arena_t *a, mstream_t *st) {
  Runnel__StreamDescription *d = aalloc(a, sizeof *d);
  runnel__stream_description__init(d);
  Runnel__StreamConfig *c = aalloc(a, sizeof *c);
  runnel__stream_config__init(c);
  c->name = st->name;
  c->shard_count = st->nshards;
  c->retention_ms = st->retention_ms;
  c->retention_bytes = st->retention_bytes;
  c->durability = st->durability;
  d->config = c;
  d->status = (char *)(uintptr_t)"ACTIVE";
  d->n_shards = st->nshards;
  d->shards = aalloc(a, st->nshards * sizeof *d->shards);
  for (uint32_t i = 0; i < st->nshards; i++) {
    Runnel__ShardInfo *si = aalloc(a, sizeof *si);
    runnel__shard_info__init(si);
    si->index = i;
    si->shard_id = aalloc(a, 32);
    snprintf(si->shard_id, 32, "shardId-%012u", i);
    uint8_t *ks = aalloc(a, 16), *ke = aalloc(a, 16);
    range_of(i, st->nshards, ks, ke);
    si->hash_key_start.data = ks;
    si->hash_key_start.len = 16;
    si->hash_key_end.data = ke;
    si->hash_key_end.len = 16;
    si->end_offset = st->shards[i].end;
    si->leader = st->shards[i].leader;
    si->leader_epoch = st->shards[i].leader_epoch;
    if (st->shards[i].leader_address[0]) si->leader_address = st->shards[i].leader_address;
    d->shards[i] = si;
  }
  return d;
}

static void write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return; /* peer gone: the poll loop notices */
    }
    p += w;
    n -= (size_t)w;
  }
}

static void send_response(mock_broker_t *mb, int fd, Runnel__Response *resp) {
  size_t n = rn_frame_encoded_len(&resp->base);
  uint8_t *buf = malloc(n);
  size_t len;
  assert(rn_frame_encode(&resp->base, buf, n, &len) == 0);
  if (mb->reorder_n > 0) {
    mb->held[mb->nheld].fd = fd;
    mb->held[mb->nheld].frame = buf;
    mb->held[mb->nheld].len = len;
    mb->nheld++;
    if (mb->nheld == mb->reorder_n) {
      for (unsigned i = mb->nheld; i-- > 0;) {
        write_all(mb->held[i].fd, mb->held[i].frame, mb->held[i].len);
        free(mb->held[i].frame);
      }
      mb->nheld = 0;
      mb->reorder_n = 0;
    }
    return;
  }
  write_all(fd, buf, len);
  free(buf);
}

/* ---- handlers ------------------------------------------------------------------------ */

static mprod_t *prod_state(mshard_t *sh, uint64_t pid) {
  for (unsigned i = 0; i < sh->nprods; i++)
    if (sh->prods[i].pid == pid) return &sh->prods[i];
  assert(sh->nprods < 8);
  mprod_t *p = &sh->prods[sh->nprods++];
  memset(p, 0, sizeof *p);
  p->pid = pid;
  return p;
}

static void handle_produce(mock_broker_t *mb, const Runnel__ProduceRequest *r, Runnel__Response *resp, arena_t *a,
                           rn_err_t shard_err) {
  Runnel__ProduceResponse *pr = aalloc(a, sizeof *pr);
  runnel__produce_response__init(pr);
  resp->op_case = RUNNEL__RESPONSE__OP_PRODUCE;
  resp->produce = pr;
  mstream_t *st = find_stream(mb, r->stream);
  if (st == NULL) {
    resp->error = mk_error(a, RN_ENOSTREAM, "stream not found");
    return;
  }
  pr->n_results = r->n_batches;
  pr->results = aalloc(a, r->n_batches * sizeof *pr->results);
  for (size_t i = 0; i < r->n_batches; i++) {
    Runnel__ShardBatchResult *res = aalloc(a, sizeof *res);
    runnel__shard_batch_result__init(res);
    pr->results[i] = res;
    const Runnel__ShardBatch *b = r->batches[i];
    res->shard = b->shard;
    if (shard_err) {
      res->error = mk_error(a, shard_err, "injected");
      continue;
    }
    if (b->shard >= st->nshards) {
      res->error = mk_error(a, RN_ENOSHARD, "no such shard");
      continue;
    }
    rn_batch_header_t h;
    if (rn_batch_verify(b->batch.data, b->batch.len, &h, NULL) != 0 || h.batch_length != b->batch.len) {
      res->error = mk_error(a, RN_ECORRUPT, "batch failed verification");
      continue;
    }
    mshard_t *sh = &st->shards[b->shard];
    mprod_t *ps = NULL;
    if (h.producer_id != 0) {
      ps = prod_state(sh, h.producer_id);
      if (h.base_sequence < ps->next_seq) {
        bool found = false;
        for (unsigned k = 0; k < ps->nhist; k++) {
          if (ps->hist[k].seq == h.base_sequence) {
            res->base_offset = ps->hist[k].base;
            res->duplicate = true;
            mb->duplicates++;
            found = true;
          }
        }
        if (!found) res->error = mk_error(a, RN_ESEQUENCE, "old sequence");
        continue;
      }
      if (h.base_sequence > ps->next_seq) {
        res->error = mk_error(a, RN_ESEQUENCE, "sequence gap");
        continue;
      }
    }
    if (sh->n == sh->cap) {
      sh->cap = sh->cap ? sh->cap * 2 : 16;
      sh->batches = realloc(sh->batches, sh->cap * sizeof *sh->batches);
    }
    mbatch_t *mbt = &sh->batches[sh->n++];
    mbt->data = malloc(b->batch.len);
    memcpy(mbt->data, b->batch.data, b->batch.len);
    mbt->len = b->batch.len;
    mbt->base = sh->end;
    mbt->count = h.record_count;
    mbt->max_ts = h.max_timestamp;
    rn_batch_stamp(mbt->data, sh->end, 0, wall_ms());
    res->base_offset = sh->end;
    sh->end += h.record_count;
    if (ps) {
      assert(ps->nhist < 256);
      ps->hist[ps->nhist].seq = h.base_sequence;
      ps->hist[ps->nhist].base = res->base_offset;
      ps->nhist++;
      ps->next_seq = h.base_sequence + (int32_t)h.record_count;
    }
    if (mb->ninfos == mb->capinfos) {
      mb->capinfos = mb->capinfos ? mb->capinfos * 2 : 64;
      mb->infos = realloc(mb->infos, mb->capinfos * sizeof *mb->infos);
    }
    minfo_t *inf = &mb->infos[mb->ninfos++];
    inf->shard = b->shard;
    inf->count = h.record_count;
    inf->codec = h.codec;
    inf->pid = h.producer_id;
    inf->seq = h.base_sequence;
  }
}

/* Resolve a position to an offset; -1 = out of range. */
static int64_t resolve(mshard_t *sh, Runnel__PositionKind kind, int64_t value) {
  switch (kind) {
    case RUNNEL__POSITION_KIND__POSITION_EARLIEST: return 0;
    case RUNNEL__POSITION_KIND__POSITION_LATEST: return (int64_t)sh->end;
    case RUNNEL__POSITION_KIND__POSITION_TIMESTAMP:
      for (size_t i = 0; i < sh->n; i++) {
        if (sh->batches[i].max_ts < value) continue;
        rn_batch_iter_t it;
        rn_record_t rec;
        int64_t off = -1;
        if (rn_batch_iter_init(&it, sh->batches[i].data, sh->batches[i].len) == 0) {
          while (rn_batch_iter_next(&it, &rec) == 0) {
            if (rec.timestamp >= value) {
              off = (int64_t)rec.offset;
              break;
            }
          }
        }
        rn_batch_iter_free(&it);
        if (off >= 0) return off;
      }
      return (int64_t)sh->end;
    default:
      return (value < 0 || (uint64_t)value > sh->end) ? -1 : value;
  }
}

/* Answer a fetch if it has data or `force`; false when it should park. */
static bool handle_fetch(mock_broker_t *mb, const Runnel__FetchRequest *r, Runnel__Response *resp, arena_t *a,
                         bool force, rn_err_t shard_err) {
  Runnel__FetchResponse *fr = aalloc(a, sizeof *fr);
  runnel__fetch_response__init(fr);
  resp->op_case = RUNNEL__RESPONSE__OP_FETCH;
  resp->fetch = fr;
  mstream_t *st = find_stream(mb, r->stream);
  if (st == NULL) {
    resp->error = mk_error(a, RN_ENOSTREAM, "stream not found");
    return true;
  }
  bool any = false;
  fr->n_results = r->n_shards;
  fr->results = aalloc(a, r->n_shards * sizeof *fr->results);
  for (size_t i = 0; i < r->n_shards; i++) {
    const Runnel__ShardFetch *sf = r->shards[i];
    Runnel__ShardFetchResult *res = aalloc(a, sizeof *res);
    runnel__shard_fetch_result__init(res);
    fr->results[i] = res;
    res->shard = sf->shard;
    if (shard_err) {
      res->error = mk_error(a, shard_err, "injected");
      any = true;
      continue;
    }
    if (sf->shard >= st->nshards) {
      res->error = mk_error(a, RN_ENOSHARD, "no such shard");
      any = true;
      continue;
    }
    mshard_t *sh = &st->shards[sf->shard];
    int64_t pos = resolve(sh, sf->kind, sf->value);
    if (pos < 0) {
      res->error = mk_error(a, RN_EOFFSET, "offset out of range");
      any = true;
      continue;
    }
    res->offset = (uint64_t)pos;
    res->end_offset = sh->end;
    res->next_offset = (uint64_t)pos;
    size_t total = 0, first = sh->n;
    for (size_t k = 0; k < sh->n; k++) {
      if (sh->batches[k].base + sh->batches[k].count > (uint64_t)pos) {
        first = k;
        break;
      }
    }
    size_t last = first;
    uint32_t maxb = r->max_bytes ? r->max_bytes : (4u << 20);
    while (last < sh->n && (last == first || total + sh->batches[last].len <= maxb)) total += sh->batches[last++].len;
    if (last > first) {
      uint8_t *buf = aalloc(a, total);
      size_t off = 0;
      for (size_t k = first; k < last; k++) {
        memcpy(buf + off, sh->batches[k].data, sh->batches[k].len);
        off += sh->batches[k].len;
      }
      res->batches.data = buf;
      res->batches.len = total;
      res->next_offset = sh->batches[last - 1].base + sh->batches[last - 1].count;
      any = true;
    }
  }
  return any || force || r->max_wait_ms == 0;
}

static void handle_list_offsets(mock_broker_t *mb, const Runnel__ListOffsetsRequest *r, Runnel__Response *resp,
                                arena_t *a) {
  Runnel__ListOffsetsResponse *lr = aalloc(a, sizeof *lr);
  runnel__list_offsets_response__init(lr);
  resp->op_case = RUNNEL__RESPONSE__OP_LIST_OFFSETS;
  resp->list_offsets = lr;
  mstream_t *st = find_stream(mb, r->stream);
  if (st == NULL) {
    resp->error = mk_error(a, RN_ENOSTREAM, "stream not found");
    return;
  }
  size_t n = r->n_shards ? r->n_shards : st->nshards;
  lr->n_shards = n;
  lr->shards = aalloc(a, n * sizeof *lr->shards);
  for (size_t i = 0; i < n; i++) {
    Runnel__ShardOffsets *so = aalloc(a, sizeof *so);
    runnel__shard_offsets__init(so);
    lr->shards[i] = so;
    uint32_t idx = r->n_shards ? r->shards[i]->shard : (uint32_t)i;
    so->shard = idx;
    if (idx >= st->nshards) {
      so->error = mk_error(a, RN_ENOSHARD, "no such shard");
      continue;
    }
    mshard_t *sh = &st->shards[idx];
    int64_t pos = r->n_shards ? resolve(sh, r->shards[i]->kind, r->shards[i]->value) : (int64_t)sh->end;
    if (pos < 0) {
      so->error = mk_error(a, RN_EOFFSET, "offset out of range");
      continue;
    }
    so->offset = (uint64_t)pos;
    so->start_offset = 0;
    so->end_offset = sh->end;
  }
}

/* Handle one request; returns false when the connection must be closed. */
static bool handle(mock_broker_t *mb, int fd, Runnel__Request *req, bool *keep_req) {
  arena_t a = {.n = 0};
  Runnel__Response resp;
  runnel__response__init(&resp);
  resp.correlation_id = req->correlation_id;
  mb->counts[req->op_case < 64 ? req->op_case : 0]++;
  mb->counts[0]++;
  *keep_req = false;

  mrule_t *rule = NULL;
  for (unsigned i = 0; i < mb->nrules; i++) {
    if (mb->rules[i].left > 0 && (mb->rules[i].op == 0 || mb->rules[i].op == req->op_case)) {
      rule = &mb->rules[i];
      rule->left--;
      break;
    }
  }
  if (rule && rule->action == MOCK_DROP_BEFORE) return false;
  if (rule && rule->action == MOCK_FRAME_ERROR) {
    /* as runneld answers a frame above its max_frame_bytes: correlation id
     * 0, ETOOLARGE with the sizes, then the connection closes */
    uint64_t size = runnel__request__get_packed_size(req);
    resp.correlation_id = 0;
    resp.error = mk_error(&a, RN_ETOOLARGE, "frame exceeds max_frame_bytes; closing the connection");
    resp.error->size = size;
    resp.error->limit = size - 1;
    send_response(mb, fd, &resp);
    afree(&a);
    return false;
  }
  if (rule && rule->action == MOCK_ERR) {
    resp.error = mk_error(&a, rule->err, "injected error");
    send_response(mb, fd, &resp);
    afree(&a);
    return true;
  }
  rn_err_t shard_err = (rule && rule->action == MOCK_SHARD_ERR) ? rule->err : 0;

  switch (req->op_case) {
    case RUNNEL__REQUEST__OP_CREATE_STREAM: {
      const Runnel__StreamConfig *c = req->create_stream->config;
      Runnel__CreateStreamResponse *cr = aalloc(&a, sizeof *cr);
      runnel__create_stream_response__init(cr);
      resp.op_case = RUNNEL__RESPONSE__OP_CREATE_STREAM;
      resp.create_stream = cr;
      if (c == NULL || c->shard_count == 0 || c->name[0] == '\0') {
        resp.error = mk_error(&a, RN_EINVAL, "bad config");
      } else if (find_stream(mb, c->name)) {
        resp.error = mk_error(&a, RN_EEXIST, "stream exists");
      } else {
        mstream_t *st = add_stream(mb, c->name, c->shard_count);
        st->retention_ms = c->retention_ms;
        st->retention_bytes = c->retention_bytes;
        st->durability = c->durability;
        cr->stream = mk_desc(&a, st);
      }
      break;
    }
    case RUNNEL__REQUEST__OP_DELETE_STREAM: {
      Runnel__DeleteStreamResponse *dr = aalloc(&a, sizeof *dr);
      runnel__delete_stream_response__init(dr);
      resp.op_case = RUNNEL__RESPONSE__OP_DELETE_STREAM;
      resp.delete_stream = dr;
      mstream_t *st = find_stream(mb, req->delete_stream->name);
      if (st == NULL) {
        resp.error = mk_error(&a, RN_ENOSTREAM, "stream not found");
      } else {
        free_stream(st);
        *st = mb->streams[--mb->nstreams];
      }
      break;
    }
    case RUNNEL__REQUEST__OP_LIST_STREAMS: {
      Runnel__ListStreamsResponse *lr = aalloc(&a, sizeof *lr);
      runnel__list_streams_response__init(lr);
      resp.op_case = RUNNEL__RESPONSE__OP_LIST_STREAMS;
      resp.list_streams = lr;
      lr->n_names = mb->nstreams;
      lr->names = aalloc(&a, mb->nstreams * sizeof(char *));
      for (unsigned i = 0; i < mb->nstreams; i++) lr->names[i] = mb->streams[i].name;
      break;
    }
    case RUNNEL__REQUEST__OP_DESCRIBE_STREAM: {
      Runnel__DescribeStreamResponse *dr = aalloc(&a, sizeof *dr);
      runnel__describe_stream_response__init(dr);
      resp.op_case = RUNNEL__RESPONSE__OP_DESCRIBE_STREAM;
      resp.describe_stream = dr;
      mstream_t *st = find_stream(mb, req->describe_stream->name);
      if (st == NULL) {
        resp.error = mk_error(&a, RN_ENOSTREAM, "stream not found");
      } else {
        dr->stream = mk_desc(&a, st);
      }
      break;
    }
    case RUNNEL__REQUEST__OP_SET_RETENTION: {
      Runnel__SetRetentionResponse *sr = aalloc(&a, sizeof *sr);
      runnel__set_retention_response__init(sr);
      resp.op_case = RUNNEL__RESPONSE__OP_SET_RETENTION;
      resp.set_retention = sr;
      mstream_t *st = find_stream(mb, req->set_retention->name);
      if (st == NULL) {
        resp.error = mk_error(&a, RN_ENOSTREAM, "stream not found");
      } else {
        st->retention_ms = req->set_retention->retention_ms;
        st->retention_bytes = req->set_retention->retention_bytes;
        sr->stream = mk_desc(&a, st);
      }
      break;
    }
    case RUNNEL__REQUEST__OP_INIT_PRODUCER: {
      Runnel__InitProducerResponse *ir = aalloc(&a, sizeof *ir);
      runnel__init_producer_response__init(ir);
      resp.op_case = RUNNEL__RESPONSE__OP_INIT_PRODUCER;
      resp.init_producer = ir;
      ir->producer_id = ++mb->next_pid;
      break;
    }
    case RUNNEL__REQUEST__OP_PRODUCE:
      handle_produce(mb, req->produce, &resp, &a, shard_err);
      break;
    case RUNNEL__REQUEST__OP_FETCH:
      if (!handle_fetch(mb, req->fetch, &resp, &a, false, shard_err)) {
        /* park it, with its positions resolved now (LATEST means the end
         * as of the request's arrival) */
        for (size_t k = 0; k < req->fetch->n_shards && k < resp.fetch->n_results; k++) {
          req->fetch->shards[k]->kind = RUNNEL__POSITION_KIND__POSITION_OFFSET;
          req->fetch->shards[k]->value = (int64_t)resp.fetch->results[k]->offset;
        }
        unsigned i = 0;
        while (i < MAX_PARKED && mb->parked[i].used) i++;
        assert(i < MAX_PARKED);
        mb->parked[i].used = true;
        mb->parked[i].fd = fd;
        mb->parked[i].req = req;
        mb->parked[i].deadline = now_ms() + req->fetch->max_wait_ms;
        *keep_req = true;
        pthread_cond_broadcast(&mb->cond);
        afree(&a);
        return true;
      }
      break;
    case RUNNEL__REQUEST__OP_LIST_OFFSETS:
      handle_list_offsets(mb, req->list_offsets, &resp, &a);
      break;
    case RUNNEL__REQUEST__OP_BROKER_INFO: {
      if (mb->limits[0] == 0 && mb->limits[1] == 0 && mb->limits[2] == 0 && mb->limits[3] == 0) {
        resp.error = mk_error(&a, RN_EUNKNOWNOP, "unknown operation"); /* as a broker older than BrokerInfo */
        break;
      }
      Runnel__BrokerInfoResponse *bi = aalloc(&a, sizeof *bi);
      runnel__broker_info_response__init(bi);
      Runnel__BrokerLimits *bl = aalloc(&a, sizeof *bl);
      runnel__broker_limits__init(bl);
      bl->max_record_bytes = mb->limits[0];
      bl->max_batch_bytes = mb->limits[1];
      bl->max_frame_bytes = mb->limits[2];
      bl->max_fetch_bytes = mb->limits[3];
      bi->limits = bl;
      bi->version = (char *)"mock";
      bi->data_dir = (char *)"";
      bi->health = (char *)"ok";
      bi->stream_count = mb->nstreams;
      resp.op_case = RUNNEL__RESPONSE__OP_BROKER_INFO;
      resp.broker_info = bi;
      break;
    }
    default:
      resp.error = mk_error(&a, RN_EUNKNOWNOP, "unknown operation");
      break;
  }
  if (rule && rule->action == MOCK_DROP_AFTER) {
    afree(&a);
    return false;
  }
  send_response(mb, fd, &resp);
  afree(&a);
  return true;
}

/* Answer parked fetches that have data now or whose wait expired. */
static void serve_parked(mock_broker_t *mb, int64_t *timeout) {
  int64_t now = now_ms();
  for (unsigned i = 0; i < MAX_PARKED; i++) {
    mparked_t *pk = &mb->parked[i];
    if (!pk->used) continue;
    arena_t a = {.n = 0};
    Runnel__Response resp;
    runnel__response__init(&resp);
    resp.correlation_id = pk->req->correlation_id;
    if (handle_fetch(mb, pk->req->fetch, &resp, &a, now >= pk->deadline, 0)) {
      send_response(mb, pk->fd, &resp);
      runnel__request__free_unpacked(pk->req, NULL);
      pk->used = false;
      pthread_cond_broadcast(&mb->cond);
    } else if (*timeout < 0 || pk->deadline - now < *timeout) {
      *timeout = pk->deadline - now;
    }
    afree(&a);
  }
}

static void drop_parked_of(mock_broker_t *mb, int fd) {
  for (unsigned i = 0; i < MAX_PARKED; i++) {
    if (mb->parked[i].used && mb->parked[i].fd == fd) {
      runnel__request__free_unpacked(mb->parked[i].req, NULL);
      mb->parked[i].used = false;
    }
  }
}

static void conn_close(mock_broker_t *mb, mconn_t *c) {
  drop_parked_of(mb, c->fd);
  close(c->fd);
  free(c->rbuf);
  memset(c, 0, sizeof *c);
  c->fd = -1;
}

/* Read what is there and handle every whole frame. */
static void conn_readable(mock_broker_t *mb, mconn_t *c) {
  if (c->rcap - c->rlen < 65536) {
    c->rcap = c->rcap ? c->rcap * 2 : 131072;
    c->rbuf = realloc(c->rbuf, c->rcap);
  }
  ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
  if (n <= 0) {
    if (n < 0 && errno == EINTR) return;
    conn_close(mb, c);
    return;
  }
  c->rlen += (size_t)n;
  size_t pos = 0;
  for (;;) {
    rn_frame_t fr;
    rn_err_t err = rn_frame_decode(c->rbuf + pos, c->rlen - pos, 64u << 20, &fr, NULL);
    if (err == RN_EPARTIAL) break;
    if (err) {
      conn_close(mb, c);
      return;
    }
    Runnel__Request *req = runnel__request__unpack(NULL, fr.payload_len, fr.payload);
    pos += fr.frame_len;
    if (req == NULL) {
      conn_close(mb, c);
      return;
    }
    bool keep = false;
    bool ok = handle(mb, c->fd, req, &keep);
    if (!keep) runnel__request__free_unpacked(req, NULL);
    if (!ok) {
      conn_close(mb, c);
      return;
    }
  }
  memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
  c->rlen -= pos;
}

static void *mock_thread(void *arg) {
  mock_broker_t *mb = arg;
  for (;;) {
    struct pollfd pfds[MAX_CONNS + 2];
    mconn_t *owners[MAX_CONNS + 2];
    nfds_t n = 0;
    int64_t timeout = -1;
    pthread_mutex_lock(&mb->mu);
    if (mb->stop) {
      pthread_mutex_unlock(&mb->mu);
      break;
    }
    serve_parked(mb, &timeout);
    pfds[n].fd = mb->lfd;
    pfds[n].events = POLLIN;
    owners[n++] = NULL;
    pfds[n].fd = mb->wake[0];
    pfds[n].events = POLLIN;
    owners[n++] = NULL;
    for (int i = 0; i < MAX_CONNS; i++) {
      if (mb->conns[i].fd < 0) continue;
      pfds[n].fd = mb->conns[i].fd;
      pfds[n].events = POLLIN;
      owners[n++] = &mb->conns[i];
    }
    pthread_mutex_unlock(&mb->mu);
    int rc = poll(pfds, n, timeout < 0 ? -1 : (int)(timeout + 1));
    if (rc < 0) continue;
    pthread_mutex_lock(&mb->mu);
    if (pfds[1].revents) {
      char buf[64];
      (void)!read(mb->wake[0], buf, sizeof buf);
    }
    if (pfds[0].revents & POLLIN) {
      int fd = accept(mb->lfd, NULL, NULL);
      if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int i = 0;
        while (i < MAX_CONNS && mb->conns[i].fd >= 0) i++;
        if (i == MAX_CONNS) {
          close(fd);
        } else {
          mb->conns[i].fd = fd;
          mb->connections++;
          pthread_cond_broadcast(&mb->cond);
        }
      }
    }
    for (nfds_t k = 2; k < n; k++) {
      if (pfds[k].revents && owners[k]->fd == pfds[k].fd) conn_readable(mb, owners[k]);
    }
    pthread_mutex_unlock(&mb->mu);
  }
  return NULL;
}

/* ---- public ---------------------------------------------------------------------- */

mock_broker_t *mock_broker_start(void) {
  mock_broker_t *mb = calloc(1, sizeof *mb);
  assert(mb);
  for (int i = 0; i < MAX_CONNS; i++) mb->conns[i].fd = -1;
  pthread_mutex_init(&mb->mu, NULL);
  pthread_cond_init(&mb->cond, NULL);
  mb->next_pid = 1000;
  /* Generous limits by default, so tests of batching are not bound by them. */
  mb->limits[0] = 16u << 20;
  mb->limits[1] = 64u << 20;
  mb->limits[2] = 128u << 20;
  mb->limits[3] = 16u << 20;
  mb->lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert(mb->lfd >= 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  assert(bind(mb->lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
  assert(listen(mb->lfd, 16) == 0);
  socklen_t sl = sizeof sa;
  assert(getsockname(mb->lfd, (struct sockaddr *)&sa, &sl) == 0);
  snprintf(mb->addr, sizeof mb->addr, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
  assert(pipe(mb->wake) == 0);
  assert(pthread_create(&mb->thread, NULL, mock_thread, mb) == 0);
  return mb;
}

const char *mock_broker_addr(const mock_broker_t *mb) { return mb->addr; }

static void poke(mock_broker_t *mb) { (void)!write(mb->wake[1], "x", 1); }

void mock_broker_stop(mock_broker_t *mb) {
  pthread_mutex_lock(&mb->mu);
  mb->stop = true;
  pthread_mutex_unlock(&mb->mu);
  poke(mb);
  pthread_join(mb->thread, NULL);
  for (int i = 0; i < MAX_CONNS; i++)
    if (mb->conns[i].fd >= 0) conn_close(mb, &mb->conns[i]);
  for (unsigned i = 0; i < mb->nstreams; i++) free_stream(&mb->streams[i]);
  for (unsigned i = 0; i < mb->nheld; i++) free(mb->held[i].frame);
  close(mb->lfd);
  close(mb->wake[0]);
  close(mb->wake[1]);
  free(mb->infos);
  pthread_mutex_destroy(&mb->mu);
  pthread_cond_destroy(&mb->cond);
  free(mb);
}

void mock_inject(mock_broker_t *mb, Runnel__Request__OpCase op, mock_action_t action, rn_err_t err, int count) {
  pthread_mutex_lock(&mb->mu);
  assert(mb->nrules < MAX_RULES);
  mb->rules[mb->nrules++] = (mrule_t){op, action, err, count};
  pthread_mutex_unlock(&mb->mu);
}

void mock_clear_rules(mock_broker_t *mb) {
  pthread_mutex_lock(&mb->mu);
  mb->nrules = 0;
  pthread_mutex_unlock(&mb->mu);
}

void mock_reorder_next(mock_broker_t *mb, unsigned n) {
  pthread_mutex_lock(&mb->mu);
  assert(n <= 32);
  mb->reorder_n = n;
  pthread_mutex_unlock(&mb->mu);
}

unsigned mock_count(mock_broker_t *mb, Runnel__Request__OpCase op) {
  pthread_mutex_lock(&mb->mu);
  unsigned n = mb->counts[op];
  pthread_mutex_unlock(&mb->mu);
  return n;
}

unsigned mock_connections(mock_broker_t *mb) {
  pthread_mutex_lock(&mb->mu);
  unsigned n = mb->connections;
  pthread_mutex_unlock(&mb->mu);
  return n;
}

uint64_t mock_end_offset(mock_broker_t *mb, const char *stream, uint32_t shard) {
  pthread_mutex_lock(&mb->mu);
  mstream_t *st = find_stream(mb, stream);
  uint64_t e = (st && shard < st->nshards) ? st->shards[shard].end : 0;
  pthread_mutex_unlock(&mb->mu);
  return e;
}

unsigned mock_duplicates(mock_broker_t *mb) {
  pthread_mutex_lock(&mb->mu);
  unsigned n = mb->duplicates;
  pthread_mutex_unlock(&mb->mu);
  return n;
}

unsigned mock_batches(mock_broker_t *mb) {
  pthread_mutex_lock(&mb->mu);
  unsigned n = mb->ninfos;
  pthread_mutex_unlock(&mb->mu);
  return n;
}

void mock_batch_info(mock_broker_t *mb, unsigned i, uint32_t *shard, uint32_t *count, uint8_t *codec,
                     uint64_t *producer_id, int32_t *base_sequence) {
  pthread_mutex_lock(&mb->mu);
  assert(i < mb->ninfos);
  minfo_t *inf = &mb->infos[i];
  if (shard) *shard = inf->shard;
  if (count) *count = inf->count;
  if (codec) *codec = inf->codec;
  if (producer_id) *producer_id = inf->pid;
  if (base_sequence) *base_sequence = inf->seq;
  pthread_mutex_unlock(&mb->mu);
}

void mock_wait_parked(mock_broker_t *mb, unsigned n) {
  pthread_mutex_lock(&mb->mu);
  for (;;) {
    unsigned k = 0;
    for (unsigned i = 0; i < MAX_PARKED; i++) k += mb->parked[i].used;
    if (k >= n) break;
    pthread_cond_wait(&mb->cond, &mb->mu);
  }
  pthread_mutex_unlock(&mb->mu);
}

void mock_corrupt(mock_broker_t *mb, const char *stream, uint32_t shard, unsigned i) {
  pthread_mutex_lock(&mb->mu);
  mstream_t *st = find_stream(mb, stream);
  assert(st && shard < st->nshards && i < st->shards[shard].n);
  mbatch_t *b = &st->shards[shard].batches[i];
  b->data[b->len - 1] ^= 0x5a;
  pthread_mutex_unlock(&mb->mu);
}

void mock_set_limits(mock_broker_t *mb, uint32_t record, uint32_t batch, uint32_t frame, uint32_t fetch) {
  pthread_mutex_lock(&mb->mu);
  mb->limits[0] = record;
  mb->limits[1] = batch;
  mb->limits[2] = frame;
  mb->limits[3] = fetch;
  pthread_mutex_unlock(&mb->mu);
}
