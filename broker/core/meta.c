/*
 * meta.c — core's metadata: the snapshot codec and the local file store.
 *
 * The snapshot is a BrokerMeta message (proto/runnel.proto; core's storage
 * format, private to core — nothing outside broker/core sees these types):
 * every ACTIVE stream with its configuration, uid and, per shard, its hash
 * range, state and parent/child shards; the uid and producer-id counters.
 * Files written before the shard entries existed (shard count only) decode
 * to the equal split of the key space with every shard OPEN, exactly the
 * ranges the broker derived then; files written before tiering decode as
 * untiered streams. One StreamMeta alone is also a tiered stream's
 * descriptor in its object store (rn__meta_stream_encode/decode): the same
 * codec, so a restore recreates exactly what the broker persisted.
 *
 * The file store keeps <dir>/broker.meta, read at open and replaced
 * atomically through rn_fs (rn_snapshot_write: temp, fdatasync, rename,
 * fsync dir) by the thread-pool job that saves a snapshot. It holds no
 * state besides its directory, so concurrent loads and saves are the
 * caller's to serialise (core's meta_mu).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"
#include "rn_fs.h"
#include "runnel/keys.h"
#include "runnel.pb-c.h"

/* ---- codec -------------------------------------------------------------------------- */

/* The protobuf messages of one stream, pointing into ms (borrowed) and into
 * sc/shm/shp (the caller's: ms->nshards entries each). */
static void fill_stream(const rn__meta_stream_t *ms, Runnel__StreamMeta *sm, Runnel__StreamConfig *sc,
                        Runnel__ShardMeta *shm, Runnel__ShardMeta **shp) {
  runnel__stream_meta__init(sm);
  runnel__stream_config__init(sc);
  sc->name = ms->name;
  sc->shard_count = ms->nshards;
  sc->retention_ms = ms->retention_ms;
  sc->retention_bytes = ms->retention_bytes;
  sc->durability = (Runnel__Durability)ms->durability;
  sc->tiered = ms->tiered;
  sc->local_retention_ms = ms->tiered ? ms->local_retention_ms : 0;
  sc->local_retention_bytes = ms->tiered ? ms->local_retention_bytes : 0;
  sc->dedup_key = (Runnel__DedupKey)ms->dedup_key;
  sc->dedup_field = ms->dedup_field ? ms->dedup_field : (char *)"";
  sc->dedup_window_ms = ms->dedup_window_ms;
  sm->config = sc;
  sm->created_ms = ms->created_ms;
  sm->uid = ms->uid;
  sm->n_shards = ms->nshards;
  sm->shards = shp;
  for (uint32_t s = 0; s < ms->nshards; s++) {
    rn__meta_shard_t *x = &ms->shards[s];
    runnel__shard_meta__init(&shm[s]);
    shm[s].hash_key_start.data = x->hk_start;
    shm[s].hash_key_start.len = 16;
    shm[s].hash_key_end.data = x->hk_end;
    shm[s].hash_key_end.len = 16;
    shm[s].state = x->state == RN_CORE_SHARD_CLOSED ? RUNNEL__SHARD_META_STATE__SHARD_META_CLOSED
                                                    : RUNNEL__SHARD_META_STATE__SHARD_META_OPEN;
    shm[s].n_parents = x->nparents;
    shm[s].parents = x->parents;
    shm[s].n_children = x->nchildren;
    shm[s].children = x->children;
    shp[s] = &shm[s];
  }
}

rn_err_t rn__meta_encode(const rn__meta_t *m, uint8_t **out, size_t *outlen) {
  *out = NULL;
  *outlen = 0;
  size_t nsh = 0;
  for (size_t i = 0; i < m->nstreams; i++) nsh += m->streams[i].nshards;
  Runnel__BrokerMeta bm = RUNNEL__BROKER_META__INIT;
  Runnel__StreamMeta *sm = calloc(m->nstreams + 1, sizeof(*sm));
  Runnel__StreamMeta **smp = calloc(m->nstreams + 1, sizeof(*smp));
  Runnel__StreamConfig *sc = calloc(m->nstreams + 1, sizeof(*sc));
  Runnel__ShardMeta *shm = calloc(nsh + 1, sizeof(*shm));
  Runnel__ShardMeta **shp = calloc(nsh + 1, sizeof(*shp));
  rn_err_t err = sm && smp && sc && shm && shp ? 0 : RN_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; !err && i < m->nstreams; i++) {
    fill_stream(&m->streams[i], &sm[i], &sc[i], &shm[k], &shp[k]);
    k += m->streams[i].nshards;
    smp[i] = &sm[i];
  }
  if (!err) {
    bm.n_streams = m->nstreams;
    bm.streams = smp;
    bm.next_uid = m->next_uid;
    bm.producer_id_limit = m->producer_id_limit;
    size_t len = runnel__broker_meta__get_packed_size(&bm);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
      err = RN_ENOMEM;
    } else {
      runnel__broker_meta__pack(&bm, buf);
      *out = buf;
      *outlen = len;
    }
  }
  free(sm);
  free(smp);
  free(sc);
  free(shm);
  free(shp);
  return err;
}

rn_err_t rn__meta_stream_encode(const rn__meta_stream_t *ms, uint8_t **out, size_t *outlen) {
  *out = NULL;
  *outlen = 0;
  Runnel__StreamMeta sm;
  Runnel__StreamConfig sc;
  Runnel__ShardMeta *shm = calloc(ms->nshards + 1, sizeof(*shm));
  Runnel__ShardMeta **shp = calloc(ms->nshards + 1, sizeof(*shp));
  rn_err_t err = shm && shp ? 0 : RN_ENOMEM;
  if (!err) {
    fill_stream(ms, &sm, &sc, shm, shp);
    size_t len = runnel__stream_meta__get_packed_size(&sm);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
      err = RN_ENOMEM;
    } else {
      runnel__stream_meta__pack(&sm, buf);
      *out = buf;
      *outlen = len;
    }
  }
  free(shm);
  free(shp);
  return err;
}

/* The stream name rule is proto's (runnel/keys.h), the same at every entry. */
static bool valid_name(const char *s) { return rn_name_check_stream(s, s ? strlen(s) : 0, NULL, 0) == 0; }

/* One shard entry into x; false when it is malformed. */
static bool decode_shard(const Runnel__ShardMeta *in, uint32_t nshards, rn__meta_shard_t *x) {
  if (in->hash_key_start.len != 16 || in->hash_key_end.len != 16) return false;
  if (memcmp(in->hash_key_start.data, in->hash_key_end.data, 16) > 0) return false;
  if (in->n_parents > RN__MAX_LINKS || in->n_children > RN__MAX_LINKS) return false;
  if ((unsigned)in->state > RUNNEL__SHARD_META_STATE__SHARD_META_CLOSED) return false;
  memcpy(x->hk_start, in->hash_key_start.data, 16);
  memcpy(x->hk_end, in->hash_key_end.data, 16);
  x->state = in->state == RUNNEL__SHARD_META_STATE__SHARD_META_CLOSED ? RN_CORE_SHARD_CLOSED : RN_CORE_SHARD_OPEN;
  x->nparents = (uint32_t)in->n_parents;
  for (uint32_t i = 0; i < x->nparents; i++) {
    if (in->parents[i] >= nshards) return false;
    x->parents[i] = in->parents[i];
  }
  x->nchildren = (uint32_t)in->n_children;
  for (uint32_t i = 0; i < x->nchildren; i++) {
    if (in->children[i] >= nshards) return false;
    x->children[i] = in->children[i];
  }
  return true;
}

/* One StreamMeta into *ms (zeroed first; on failure it holds nothing). */
static rn_err_t decode_stream(const Runnel__StreamMeta *sm, rn__meta_stream_t *ms, const char *what, size_t idx,
                              char *why, size_t whylen) {
  memset(ms, 0, sizeof(*ms));
  if (!sm->config || !valid_name(sm->config->name) || sm->config->shard_count == 0 ||
      (sm->n_shards != 0 && sm->n_shards != sm->config->shard_count)) {
    snprintf(why, whylen, "%s: stream entry %zu is invalid", what, idx);
    return RN_ECORRUPT;
  }
  uint32_t n = sm->config->shard_count;
  ms->name = strdup(sm->config->name);
  ms->shards = calloc(n, sizeof(*ms->shards));
  if (!ms->name || !ms->shards) {
    rn__meta_stream_free(ms);
    return RN_ENOMEM;
  }
  ms->uid = sm->uid;
  ms->nshards = n;
  ms->retention_ms = sm->config->retention_ms;
  ms->retention_bytes = sm->config->retention_bytes;
  ms->durability = (rn_durability_t)sm->config->durability;
  ms->created_ms = sm->created_ms;
  /* Files written before tiering existed have none of the three: untiered. */
  ms->tiered = sm->config->tiered;
  ms->local_retention_ms = ms->tiered ? sm->config->local_retention_ms : 0;
  ms->local_retention_bytes = ms->tiered ? sm->config->local_retention_bytes : 0;
  /* Files written before the dedup window existed: none. */
  if (sm->config->dedup_key != RUNNEL__DEDUP_KEY__DEDUP_NONE) {
    if ((unsigned)sm->config->dedup_key > RUNNEL__DEDUP_KEY__DEDUP_RECORD_ID || sm->config->dedup_window_ms <= 0 ||
        (sm->config->dedup_key == RUNNEL__DEDUP_KEY__DEDUP_FIELD &&
         (!sm->config->dedup_field || !sm->config->dedup_field[0]))) {
      snprintf(why, whylen, "%s: stream %s has an invalid dedup window", what, ms->name);
      rn__meta_stream_free(ms);
      return RN_ECORRUPT;
    }
    ms->dedup_key = (rn_core_dedup_key_t)sm->config->dedup_key;
    ms->dedup_window_ms = sm->config->dedup_window_ms;
    if (ms->dedup_key == RN_CORE_DEDUP_FIELD) {
      ms->dedup_field = strdup(sm->config->dedup_field);
      if (!ms->dedup_field) {
        rn__meta_stream_free(ms);
        return RN_ENOMEM;
      }
    }
  }
  for (uint32_t k = 0; k < n; k++) {
    rn__meta_shard_t *x = &ms->shards[k];
    if (sm->n_shards == 0) { /* written before shard entries existed */
      rn__shard_range(k, n, x->hk_start, x->hk_end);
      x->state = RN_CORE_SHARD_OPEN;
    } else if (!decode_shard(sm->shards[k], n, x)) {
      snprintf(why, whylen, "%s: stream %s shard %u entry is invalid", what, ms->name, k);
      rn__meta_stream_free(ms);
      return RN_ECORRUPT;
    }
  }
  return 0;
}

rn_err_t rn__meta_decode(const uint8_t *buf, size_t len, rn__meta_t *m, const char *what, char *why, size_t whylen) {
  memset(m, 0, sizeof(*m));
  Runnel__BrokerMeta *bm = runnel__broker_meta__unpack(NULL, len, buf);
  if (!bm) {
    snprintf(why, whylen, "%s is damaged (not a BrokerMeta message); refusing to start rather than forget streams", what);
    return RN_ECORRUPT;
  }
  rn_err_t err = 0;
  m->next_uid = bm->next_uid;
  m->producer_id_limit = bm->producer_id_limit;
  m->streams = calloc(bm->n_streams + 1, sizeof(*m->streams));
  if (!m->streams) err = RN_ENOMEM;
  for (size_t i = 0; !err && i < bm->n_streams; i++) {
    err = decode_stream(bm->streams[i], &m->streams[m->nstreams], what, i, why, whylen);
    if (!err) m->nstreams++;
  }
  runnel__broker_meta__free_unpacked(bm, NULL);
  if (err) rn__meta_free(m);
  return err;
}

rn_err_t rn__meta_stream_decode(const uint8_t *buf, size_t len, rn__meta_stream_t *ms, const char *what, char *why,
                                size_t whylen) {
  memset(ms, 0, sizeof(*ms));
  Runnel__StreamMeta *sm = runnel__stream_meta__unpack(NULL, len, buf);
  if (!sm) {
    snprintf(why, whylen, "%s is damaged (not a StreamMeta message)", what);
    return RN_ECORRUPT;
  }
  rn_err_t err = decode_stream(sm, ms, what, 0, why, whylen);
  runnel__stream_meta__free_unpacked(sm, NULL);
  return err;
}

void rn__meta_stream_free(rn__meta_stream_t *ms) {
  free(ms->name);
  free(ms->dedup_field);
  free(ms->shards);
  memset(ms, 0, sizeof(*ms));
}

void rn__meta_free(rn__meta_t *m) {
  for (size_t i = 0; i < m->nstreams; i++) rn__meta_stream_free(&m->streams[i]);
  free(m->streams);
  memset(m, 0, sizeof(*m));
}

/* ---- the local file store --------------------------------------------------------------- */

#define META_FILE "broker.meta"

typedef struct file_store {
  rn_core_meta_store_t base;
  rn_fs_t *fs;
  char *dir;
} file_store_t;

static rn_err_t file_load(rn_core_meta_store_t *ms, uint8_t **out, size_t *outlen) {
  file_store_t *s = (file_store_t *)ms;
  void *buf = NULL;
  *out = NULL;
  *outlen = 0;
  rn_err_t err = rn_snapshot_read(s->fs, s->dir, META_FILE, &buf, outlen); /* RN_ENOENT: nothing saved yet */
  if (!err) *out = buf;
  return err;
}

static rn_err_t file_save(rn_core_meta_store_t *ms, const uint8_t *buf, size_t len) {
  file_store_t *s = (file_store_t *)ms;
  return rn_snapshot_write(s->fs, s->dir, META_FILE, buf, len);
}

static void file_destroy(rn_core_meta_store_t *ms) {
  file_store_t *s = (file_store_t *)ms;
  free(s->dir);
  free(s);
}

static const rn_core_meta_store_ops_t file_ops = {file_load, file_save, file_destroy};

rn_core_meta_store_t *rn_core_meta_store_file(rn_fs_t *fs, const char *dir) {
  file_store_t *s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  s->base.ops = &file_ops;
  s->fs = fs ? fs : rn_fs_posix();
  s->dir = strdup(dir);
  if (!s->dir) {
    free(s);
    return NULL;
  }
  return &s->base;
}

void rn_core_meta_store_destroy(rn_core_meta_store_t *ms) {
  if (ms) ms->ops->destroy(ms);
}
