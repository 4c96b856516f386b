/*
 * info.c — rn_core_broker_info (the native BrokerInfo request): what a client or an
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
 * core's state at that moment.
 *
 * Owns each info_job_t from the request until its completion ran.
 */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

#ifndef RN_VERSION
#define RN_VERSION "dev"
#endif

typedef struct info_job {
  uv_fs_t fs;
  rn_engine_t *eng;
  rn_core_info_cb cb;
  void *ctx;
} info_job_t;

/* Build and send the answer. st: the data directory's statfs, or NULL with
 * statfs_err its failure (0: not asked). Loop thread. */
static void reply_info(rn_engine_t *eng, rn_core_info_cb cb, void *ctx, rn_err_t statfs_err, const uv_statfs_t *st) {
  rn_arena_t a = {0};
  rn_core_info_result_t r = {0};
  r.max_record_bytes = eng->opts.max_record_bytes;
  r.max_batch_bytes = eng->opts.max_batch_bytes;
  r.max_frame_bytes = eng->opts.max_frame_bytes;
  r.max_fetch_bytes = eng->opts.max_fetch_bytes;
  r.version = RN_VERSION;
  r.start_ms = eng->started_ms;
  r.data_dir = eng->data_dir;
  if (st != NULL) {
    r.data_dir_free_bytes = st->f_bavail * st->f_bsize;
    r.data_dir_total_bytes = st->f_blocks * st->f_bsize;
  } else if (statfs_err != 0) {
    r.data_dir_err = statfs_err;
    r.data_dir_msg = rn_arena_printf(&a, "statfs %s: %s", eng->data_dir, rn_strerror(statfs_err));
  } else {
    r.data_dir_skipped = true;
  }

  size_t nfailed = 0, cap = 0;
  rn_core_failed_shard_t *failed = NULL;
  for (uint32_t i = 0; i < eng->nstreams; i++) {
    const rn_stream_t *s = eng->streams[i];
    if (s->state != RN__STREAM_ACTIVE) continue;
    r.stream_count++;
    r.shard_count += s->nshards;
    for (uint32_t k = 0; k < s->nshards; k++) {
      const rn_shard_t *sh = &s->shards[k];
      rn_err_t ferr = sh->log ? rn_log_failure(sh->log) : RN_ELOGFAILED;
      if (ferr == 0) continue;
      if (nfailed == cap) {
        size_t ncap = cap ? cap * 2 : 8;
        rn_core_failed_shard_t *n = rn_arena_alloc(&a, ncap * sizeof *n);
        if (nfailed) memcpy(n, failed, nfailed * sizeof *n);
        failed = n;
        cap = ncap;
      }
      rn_core_failed_shard_t *fs = &failed[nfailed++];
      fs->stream = s->name;
      fs->shard = k;
      fs->err = ferr;
      fs->msg = sh->log ? "the shard's log failed after an I/O error; appends are refused" : "the shard's log is not open";
    }
  }
  r.failed = failed;
  r.nfailed = nfailed;
  r.degraded = nfailed != 0;
  cb(ctx, &r);
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

void rn_core_broker_info(rn_core_t *eng, const rn_core_info_req_t *r, rn_core_info_cb cb, void *ctx) {
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
