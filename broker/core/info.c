/*
 * info.c — the BrokerInfo request (proto/runnel.proto): what a client or an
 * operator needs to know about the broker before using it — version, start
 * time, the data directory and its free space, the limits a request must
 * respect, stream and shard counts, and the shards whose log failed.
 *
 * The only part that touches the system is the data directory's free space:
 * statfs may block (a slow or hung file system), so it runs on the libuv
 * thread pool (uv_fs_statfs) and the reply is built in its completion, on
 * the loop thread. A request with skip_disk (librunnel's connection
 * handshake) is answered at once without it, so a thread pool busy with
 * reads never delays a new connection. The job counts in eng->pending_work, so shutdown waits
 * for it like for any other thread-pool job. Everything else is read from
 * the engine's state at that moment.
 *
 * Owns each info_job_t from the request until its completion ran.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

#ifndef RN_VERSION
#define RN_VERSION "dev"
#endif

typedef struct info_job {
  uv_fs_t fs;
  rn_engine_t *eng;
  rn_engine_reply_cb cb;
  void *ctx;
} info_job_t;

/* Build and send the answer. st: the data directory's statfs, or NULL with
 * statfs_err its failure (0: not asked). Loop thread. */
static void reply_info(rn_engine_t *eng, rn_engine_reply_cb cb, void *ctx, rn_err_t statfs_err,
                       const uv_statfs_t *st) {
  rn_arena_t a = {0};
  Runnel__Response resp = RUNNEL__RESPONSE__INIT;
  Runnel__BrokerInfoResponse *bi = rn_arena_alloc(&a, sizeof *bi);
  runnel__broker_info_response__init(bi);
  Runnel__BrokerLimits *lim = rn_arena_alloc(&a, sizeof *lim);
  runnel__broker_limits__init(lim);
  lim->max_record_bytes = eng->opts.max_record_bytes;
  lim->max_batch_bytes = eng->opts.max_batch_bytes;
  lim->max_frame_bytes = eng->opts.max_frame_bytes;
  lim->max_fetch_bytes = eng->opts.max_fetch_bytes;
  bi->limits = lim;
  bi->version = (char *)(uintptr_t)RN_VERSION;
  bi->start_ms = eng->started_ms;
  bi->data_dir = eng->data_dir;
  if (st != NULL) {
    bi->data_dir_free_bytes = st->f_bavail * st->f_bsize;
    bi->data_dir_total_bytes = st->f_blocks * st->f_bsize;
  } else if (statfs_err != 0) {
    rn__fill_error(&a, &bi->data_dir_error, statfs_err, "statfs %s: %s", eng->data_dir, rn_strerror(statfs_err));
  }

  size_t nfailed = 0, cap = 0;
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    const rn_stream_t *s = eng->streams[i];
    if (s->state != RN__STREAM_ACTIVE) continue;
    bi->stream_count++;
    bi->shard_count += s->nshards;
    for (uint32_t k = 0; k < s->nshards; k++) {
      const rn_shard_t *sh = &s->shards[k];
      rn_err_t ferr = sh->log ? rn_log_failure(sh->log) : RN_ELOGFAILED;
      if (ferr == 0) continue;
      if (nfailed == cap) {
        size_t ncap = cap ? cap * 2 : 8;
        Runnel__FailedShard **n = rn_arena_alloc(&a, ncap * sizeof *n);
        if (nfailed) memcpy(n, bi->failed_shards, nfailed * sizeof *n);
        bi->failed_shards = n;
        cap = ncap;
      }
      Runnel__FailedShard *fs = rn_arena_alloc(&a, sizeof *fs);
      runnel__failed_shard__init(fs);
      fs->stream = s->name;
      fs->shard = k;
      rn__fill_error(&a, &fs->error, ferr, "%s", sh->log ? "the shard's log failed after an I/O error; appends are refused"
                                                          : "the shard's log is not open");
      bi->failed_shards[nfailed++] = fs;
    }
  }
  bi->n_failed_shards = nfailed;
  bi->health = (char *)(uintptr_t)(nfailed ? "degraded" : "ok");
  resp.op_case = RUNNEL__RESPONSE__OP_BROKER_INFO;
  resp.broker_info = bi;
  cb(ctx, &resp);
  rn_arena_free(&a);
}

static void on_statfs(uv_fs_t *req) {
  info_job_t *j = req->data;
  rn_engine_t *eng = j->eng;
  eng->pending_work--;
  rn_err_t err = req->result < 0 ? (rn_err_t)req->result : 0; /* libuv errors are -errno */
  reply_info(eng, j->cb, j->ctx, err, err ? NULL : req->ptr);
  uv_fs_req_cleanup(req);
  free(j);
}

void rn__handle_broker_info(rn_engine_t *eng, const Runnel__BrokerInfoRequest *r, rn_engine_reply_cb cb, void *ctx) {
  if (r != NULL && r->skip_disk) {
    reply_info(eng, cb, ctx, 0, NULL);
    return;
  }
  info_job_t *j = calloc(1, sizeof *j);
  if (j == NULL) {
    reply_info(eng, cb, ctx, RN_ENOMEM, NULL);
    return;
  }
  j->eng = eng;
  j->cb = cb;
  j->ctx = ctx;
  j->fs.data = j;
  eng->pending_work++;
  int rc = uv_fs_statfs(eng->loop, &j->fs, eng->data_dir, on_statfs);
  if (rc < 0) {
    eng->pending_work--;
    free(j);
    reply_info(eng, cb, ctx, (rn_err_t)rc, NULL);
  }
}
