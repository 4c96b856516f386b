/*
 * fuzz_recovery.c — libFuzzer target for log recovery: the input becomes the
 * files of a shard directory (one or two segment files, optionally a
 * recovery point) on the in-memory crash-simulator file system; the log is
 * opened, every readable batch is decoded, one batch is appended and the log
 * closed. Recovery must never crash, hang, leak or serve a batch that fails
 * verification, whatever the bytes.
 *
 * Input: byte 0 = flags (bit 0: split into two segments at the offset in
 * bytes 1-2; bit 1: write a recovery point and log start derived from
 * byte 3), then
 * the segment bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "crashfs.h"
#include "rn_io.h"
#include "rn_log.h"
#include "runnel/batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(void *arg, rn_level_t level, const char *msg) {
  (void)arg;
  (void)level;
  (void)msg;
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void on_ack(void *arg, rn_err_t err, uint64_t base) {
  (void)err;
  (void)base;
  (*(int *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  uint8_t flags = data[0];
  size_t split = (size_t)data[1] | (size_t)data[2] << 8;
  uint8_t rpv = data[3];
  data += 4;
  size -= 4;
  crashfs_t *cfs = crashfs_new(1);
  if (flags & 1 && split < size) {
    crashfs_write_file(cfs, "/d/00000000000000000000.log", data, split);
    /* The second segment starts where a scan of the first would end; any
     * base is a valid fuzz input, pick one derived from the bytes. */
    char name[64];
    snprintf(name, sizeof(name), "/d/%020u.log", (unsigned)(split % 7));
    crashfs_write_file(cfs, name, data + split, size - split);
  } else {
    crashfs_write_file(cfs, "/d/00000000000000000000.log", data, size);
  }
  if (flags & 2) {
    /* recovery point and log start (storage/segment.c, state files) */
    uint8_t rp[32];
    put_u64(rp, 0x50524e52u | (uint64_t)1 << 32);
    put_u64(rp + 8, rpv % 8);
    put_u64(rp + 16, (rpv >> 3) % 8 <= rpv % 8 ? (rpv >> 3) % 8 : 0);
    put_u64(rp + 24, XXH3_64bits(rp, 24));
    crashfs_write_file(cfs, "/d/recovery-point", rp, sizeof(rp));
  }
  rn_io_opts_t io_opts;
  rn_io_opts_default(&io_opts);
  io_opts.backend = RN_IO_POSIX;
  io_opts.threads = 1;
  io_opts.fs = crashfs_fs(cfs);
  rn_io_t *io = NULL;
  if (rn_io_new(&io_opts, &io)) abort();
  rn_log_opts_t o;
  rn_log_opts_default(&o);
  o.logger.fn = quiet;
  o.index_interval = 64;
  rn_log_t *log = NULL;
  rn_log_recovery_t rec;
  if (rn_log_open(io, "/d", &o, &log, &rec) == 0) {
    static uint8_t buf[1 << 16];
    uint64_t off = rn_log_start(log);
    while (off < rn_log_end(log)) {
      size_t len = 0;
      rn_err_t err = rn_log_read(log, off, buf, sizeof(buf), &len);
      if (err || len == 0) break;
      size_t at = 0;
      uint64_t next = off;
      while (at < len) {
        rn_batch_iter_t it;
        if (rn_batch_iter_init(&it, buf + at, len - at)) abort(); /* served bytes verify */
        rn_record_t r;
        while (rn_batch_iter_next(&it, &r) == 0) {
        }
        next = rn_batch_last_offset(&it.hdr) + 1;
        at += it.hdr.batch_length;
        rn_batch_iter_free(&it);
      }
      if (next <= off) abort();
      off = next;
    }
    rn_batch_builder_t b;
    rn_batch_builder_init(&b);
    rn_record_t r = {.timestamp = 1, .value = (const uint8_t *)"x", .value_len = 1};
    const uint8_t *out;
    size_t out_len;
    int acked = 0;
    if (rn_batch_builder_add(&b, &r) == 0 && rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &out, &out_len) == 0 &&
        rn_log_append(log, out, out_len, 0, on_ack, &acked, NULL) == 0) {
      while (!acked) rn_io_wait(io, -1);
    }
    rn_batch_builder_free(&b);
    rn_log_close(log);
  }
  rn_io_destroy(io);
  crashfs_free(cfs);
  return 0;
}
