/*
 * ctl_consume.c — `runnelctl consume STREAM`: read shards directly (one
 * rn_consumer per shard; a thread per shard with --follow), or with --group
 * as a member of a consumer group (rn_group_consumer).
 *
 * Invariants:
 *   - every record goes out through ctl_out.c; the first failed write ends
 *     the command with exit 1 and one line saying why;
 *   - a group member commits only what was written and flushed: each record
 *     is flushed before the next rn_group_poll (which is what marks the
 *     previous record processed, and a revocation or auto-commit inside
 *     that poll may commit it). When the write or flush of a record fails,
 *     the record is nacked (so it is not processed), and the member closes:
 *     the commit covers only the records before it;
 *   - a position that reads nothing is explained (an offset past the end of
 *     every shard fails with the shards' ends; a plain number that looks
 *     like a ms timestamp is refused with the @MS spelling).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_int.h"
#include "runnel/units.h"

#define MIN_SESSION_MS 500
#define MAX_SESSION_MS 600000

typedef struct {
  ctl_t *c;
  const char *stream;
  const char *format; /* --format template or NULL */
  pthread_mutex_t out_mu;
  uint64_t max; /* 0 = no limit */
  atomic_ulong printed;
  atomic_bool done; /* max reached, idle, or a failure */
  bool follow, group;
  int64_t idle_ms;        /* --idle-exit; 0 = off */
  atomic_llong last_rec;  /* monotonic ms of the last record (or the start) */
  int status;
} consume_state_t;

typedef struct {
  consume_state_t *cs;
  uint32_t shard;
  uint64_t from; /* resolved start offset */
  uint64_t end;  /* stop here (exclusive) unless following without --to */
  bool has_to;   /* end comes from --to: also ends --follow */
  int64_t to_ts; /* --to TIME: stop at the first record at or after it; 0 = none */
  pthread_t th;
} shard_job_t;

/* ---- one record out ------------------------------------------------------------- */

static bool put_bytes(ctl_t *c, const uint8_t *s, size_t n) { return ctl_write(c, s, n); }

static bool put_headers(ctl_t *c, const rn_record_t *rec) {
  size_t pos = 0;
  rn_record_header_t h;
  bool first = true, ok = true;
  while (ok && rn_record_header_next(rec, &pos, &h) == 0) {
    ok = (first || ctl_write(c, ",", 1)) && put_bytes(c, h.key, h.key_len) && ctl_write(c, "=", 1) &&
         put_bytes(c, h.value, h.value_len);
    first = false;
  }
  return ok;
}

/* Print rec by the --format template. */
static bool put_format(ctl_t *c, const char *fmt, uint32_t shard, const rn_record_t *rec) {
  bool ok = true;
  char num[48];
  for (const char *p = fmt; *p && ok; p++) {
    if (*p == '\\' && p[1]) {
      p++;
      char ch = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p == 'r' ? '\r' : *p == '0' ? '\0' : *p;
      ok = ctl_write(c, &ch, 1);
    } else if (*p == '%' && p[1]) {
      p++;
      switch (*p) {
        case 'k': ok = put_bytes(c, rec->key, rec->key_len); break;
        case 'v': ok = put_bytes(c, rec->value, rec->value_len); break;
        case 's': ok = ctl_print(c, "%u", shard); break;
        case 'o': ok = ctl_print(c, "%" PRIu64, rec->offset); break;
        case 't': ok = ctl_print(c, "%" PRId64, rec->timestamp); break;
        case 'T':
          ctl_format_time(rec->timestamp, num, sizeof num);
          ok = ctl_print(c, "%s", num);
          break;
        case 'h': ok = put_headers(c, rec); break;
        case '%': ok = ctl_write(c, "%", 1); break;
        default: ok = ctl_write(c, p - 1, 2); break; /* unknown: as written */
      }
    } else {
      ok = ctl_write(c, p, 1);
    }
  }
  return ok;
}

static bool put_json(ctl_t *c, uint32_t shard, const rn_record_t *rec) {
  json_t *o = json_object();
  char id[32];
  snprintf(id, sizeof id, "shardId-%012u", shard);
  json_object_set_new(o, "shard", json_integer(shard));
  json_object_set_new(o, "shard_id", json_string(id));
  json_object_set_new(o, "offset", json_integer((json_int_t)rec->offset));
  json_object_set_new(o, "timestamp_ms", json_integer(rec->timestamp));
  ctl_json_bytes(o, "key", rec->key, rec->key_len);
  ctl_json_bytes(o, "data", rec->value, rec->value_len);
  if (rec->header_count) {
    json_t *h = json_object();
    size_t pos = 0;
    rn_record_header_t rh;
    while (rn_record_header_next(rec, &pos, &rh) == 0) {
      char name[256];
      snprintf(name, sizeof name, "%.*s", (int)(rh.key_len < 255 ? rh.key_len : 255), (const char *)rh.key);
      json_t *v = json_stringn((const char *)rh.value, rh.value_len);
      if (v == NULL) {
        char *b = ctl_base64(rh.value, rh.value_len);
        v = json_pack("{s:s}", "base64", b);
        free(b);
      }
      json_object_set_new(h, name, v);
    }
    json_object_set_new(o, "headers", h);
  }
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  bool ok = s && ctl_print(c, "%s\n", s);
  free(s);
  return ok;
}

typedef enum { EMIT_OK, EMIT_LAST, EMIT_FULL, EMIT_WRITE_FAILED } emit_t;

/* Print one record (and flush when following or in a group). EMIT_LAST: it
 * was printed and --max is reached; EMIT_FULL: --max was reached before. */
static emit_t emit(consume_state_t *cs, uint32_t shard, const rn_record_t *rec) {
  ctl_t *c = cs->c;
  pthread_mutex_lock(&cs->out_mu);
  if (cs->max && atomic_load(&cs->printed) >= cs->max) {
    pthread_mutex_unlock(&cs->out_mu);
    return EMIT_FULL;
  }
  bool ok;
  if (c->json)
    ok = put_json(c, shard, rec);
  else if (cs->format)
    ok = put_format(c, cs->format, shard, rec);
  else
    ok = put_bytes(c, rec->value, rec->value_len) && ctl_write(c, "\n", 1);
  if (ok && (cs->follow || cs->group)) ok = ctl_flush(c);
  unsigned long n = atomic_fetch_add(&cs->printed, 1) + 1;
  atomic_store(&cs->last_rec, ctl_mono_ms());
  pthread_mutex_unlock(&cs->out_mu);
  if (!ok) return EMIT_WRITE_FAILED;
  return cs->max && n >= cs->max ? EMIT_LAST : EMIT_OK;
}

static bool idle_expired(consume_state_t *cs) {
  return cs->idle_ms > 0 && ctl_mono_ms() - atomic_load(&cs->last_rec) >= cs->idle_ms;
}

/* ---- shards directly ------------------------------------------------------------- */

static void *consume_shard(void *arg) {
  shard_job_t *j = arg;
  consume_state_t *cs = j->cs;
  bool bounded = !cs->follow || j->has_to;
  rn_consumer_t *con;
  rn_err_t err = rn_consumer_new(cs->c->cl, cs->stream, j->shard, RN_POS_OFFSET, (int64_t)j->from, &con);
  int retries = 0;
  while (!err && !atomic_load(&cs->done) && !ctl_stop) {
    uint64_t pos = 0;
    if (bounded && rn_consumer_position(con, &pos) && pos >= j->end) break;
    if (cs->follow && idle_expired(cs)) {
      atomic_store(&cs->done, true);
      break;
    }
    const rn_record_t *rec;
    err = rn_consumer_poll(con, cs->follow ? 500 : 1000, &rec);
    if (err == RN_EAGAIN) {
      err = 0;
      continue;
    }
    if (err && rn_err_retriable(err) && (cs->follow || retries < 5)) {
      retries++;
      err = 0;
      continue;
    }
    if (err) break;
    retries = 0;
    if (bounded && rec->offset >= j->end) break;
    if (j->to_ts && rec->timestamp >= j->to_ts) break;
    emit_t e = emit(cs, j->shard, rec);
    if (e == EMIT_WRITE_FAILED) {
      pthread_mutex_lock(&cs->out_mu);
      cs->status = CTL_EXIT_FAIL;
      pthread_mutex_unlock(&cs->out_mu);
    }
    if (e != EMIT_OK) {
      atomic_store(&cs->done, true);
      break;
    }
  }
  if (err) {
    pthread_mutex_lock(&cs->out_mu);
    ctl_fail(cs->c, err, "stream \"%s\" shardId-%012u", cs->stream, j->shard);
    cs->status = CTL_EXIT_FAIL;
    pthread_mutex_unlock(&cs->out_mu);
    atomic_store(&cs->done, true);
  }
  rn_consumer_destroy(con);
  return NULL;
}

/* "0:120, 1:98, ..." — each chosen shard's end offset, for messages. */
static void ends_list(const rn_offsets_t *offs, bool one, uint32_t only, char *buf, size_t cap) {
  size_t at = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < offs->count && at + 1 < cap; i++) {
    const rn_shard_offsets_t *so = &offs->shards[i];
    if (one && so->shard != only) continue;
    int w = snprintf(buf + at, cap - at, "%s%u:%" PRIu64, at ? ", " : "", so->shard, so->end_offset);
    if (w < 0) break;
    at += (size_t)w;
  }
  if (at >= cap && cap > 4) snprintf(buf + cap - 4, 4, "...");
}

static int cmd_group_consume(ctl_t *c, const ctl_args_t *a, consume_state_t *cs);

int ctl_consume(ctl_t *c, const ctl_args_t *a) {
  const char *stream = a->pos[0], *shard = ctl_arg(a, "--shard"), *from = ctl_arg(a, "--from"),
             *to = ctl_arg(a, "--to"), *tail = ctl_arg(a, "--tail"), *max = ctl_arg(a, "--max"),
             *group = ctl_arg(a, "--group"), *session = ctl_arg(a, "--session-timeout"),
             *idle = ctl_arg(a, "--idle-exit");
  bool follow = ctl_arg(a, "--follow") != NULL;
  char why[256];
  consume_state_t cs = {.c = c, .stream = stream, .follow = follow, .format = ctl_arg(a, "--format")};
  if (cs.format && c->json) return ctl_usage(c, "consume: --format and --json exclude each other");
  if (group == NULL && session) return ctl_usage(c, "consume: --session-timeout needs --group");
  if (group && (shard || to || tail))
    return ctl_usage(c, "consume: --group assigns the shards and keeps the positions (no --shard, --to or --tail)");
  if (tail && from) return ctl_usage(c, "consume: --tail and --from exclude each other");
  if (idle && !follow) return ctl_usage(c, "consume: --idle-exit needs --follow (without it consume stops at the end)");
  if (idle) {
    if (rn_parse_duration_ms(idle, &cs.idle_ms, why, sizeof why) != 0) return ctl_usage(c, "--idle-exit: %s", why);
    if (cs.idle_ms <= 0) return ctl_usage(c, "--idle-exit: give a duration above 0 (like 30s)");
  }
  if (max && ctl_parse_count(max, &cs.max) != 0) return ctl_usage(c, "--max: \"%s\" is not a positive number", max);
  uint64_t tail_n = 0;
  if (tail && ctl_parse_count(tail, &tail_n) != 0) return ctl_usage(c, "--tail: \"%s\" is not a positive number", tail);
  uint32_t only = 0;
  if (shard && ctl_parse_shard(shard, &only) != 0)
    return ctl_usage(c, "--shard: \"%s\" is not a shard index or shardId-NNNNNNNNNNNN", shard);
  int64_t now = ctl_now_ms();
  rn_pos_kind_t kind = RN_POS_EARLIEST, to_kind = RN_POS_LATEST;
  int64_t value = 0, to_value = 0;
  if (from && ctl_parse_pos(from, now, &kind, &value, why, sizeof why) != 0) return ctl_usage(c, "--from: %s", why);
  if (to) {
    if (ctl_parse_pos(to, now, &to_kind, &to_value, why, sizeof why) != 0) return ctl_usage(c, "--to: %s", why);
    if (to_kind == RN_POS_EARLIEST) return ctl_usage(c, "--to: earliest would read nothing");
  }
  atomic_init(&cs.printed, 0);
  atomic_init(&cs.done, false);
  atomic_init(&cs.last_rec, ctl_mono_ms());
  pthread_mutex_init(&cs.out_mu, NULL);
  if (group) {
    cs.group = true;
    int rc = cmd_group_consume(c, a, &cs);
    pthread_mutex_destroy(&cs.out_mu);
    return rc;
  }
  int status = 0;
  rn_offsets_t *offs = NULL, *to_offs = NULL;
  shard_job_t *jobs = NULL;
  if (ctl_client(c)) {
    status = CTL_EXIT_FAIL;
    goto out;
  }
  /* where to start in each shard, and where "the end" is as of now; an
   * OFFSET applies to the chosen shard(s) as given */
  rn_err_t err = rn_stream_list_offsets(c->cl, stream, kind == RN_POS_OFFSET ? RN_POS_EARLIEST : kind, value, &offs);
  if (err) {
    status = ctl_fail(c, err, "stream \"%s\"", stream);
    goto out;
  }
  if (to && to_kind == RN_POS_TIMESTAMP) {
    err = rn_stream_list_offsets(c->cl, stream, RN_POS_TIMESTAMP, to_value, &to_offs);
    if (err) {
      status = ctl_fail(c, err, "stream \"%s\"", stream);
      goto out;
    }
  }
  jobs = calloc(offs->count + 1, sizeof *jobs);
  if (jobs == NULL) abort();
  size_t njobs = 0, chosen = 0, past_end = 0;
  for (size_t i = 0; i < offs->count; i++) {
    const rn_shard_offsets_t *so = &offs->shards[i];
    if (shard && so->shard != only) continue;
    chosen++;
    if (so->err) {
      status = ctl_fail(c, so->err, "stream \"%s\" shardId-%012u", stream, so->shard);
      goto out;
    }
    uint64_t start = kind == RN_POS_OFFSET ? (uint64_t)value : so->offset;
    if (tail_n) start = so->end_offset - so->start_offset > tail_n ? so->end_offset - tail_n : so->start_offset;
    uint64_t end = so->end_offset;
    bool has_to = false;
    if (to && to_kind == RN_POS_OFFSET) {
      end = (uint64_t)to_value;
      has_to = true;
    } else if (to_offs && i < to_offs->count && to_value <= now) {
      end = to_offs->shards[i].offset;
      has_to = true;
    }
    if (!follow && has_to && end > so->end_offset) end = so->end_offset;
    if (kind == RN_POS_OFFSET && (follow ? start > so->end_offset : start >= so->end_offset)) past_end++;
    if ((!follow || has_to) && start >= end) continue; /* nothing to read */
    jobs[njobs].cs = &cs;
    jobs[njobs].shard = so->shard;
    jobs[njobs].from = start;
    jobs[njobs].end = end;
    jobs[njobs].has_to = has_to;
    /* a --to TIME still ahead: bounded by the records' times (with --follow
     * the records up to it have not arrived yet) */
    jobs[njobs].to_ts = to && to_kind == RN_POS_TIMESTAMP ? to_value : 0;
    njobs++;
  }
  if (shard && chosen == 0) {
    status = ctl_fail(c, RN_ENOSHARD, "stream \"%s\" shardId-%012u", stream, only);
    goto out;
  }
  if (kind == RN_POS_OFFSET && chosen > 0 && past_end == chosen) {
    char ends[512], hint[96];
    ends_list(offs, shard != NULL, only, ends, sizeof ends);
    status = ctl_failf(c, "stream \"%s\": offset %" PRId64 " is past the end of %s (end offsets: %s)%s", stream,
                       value, shard ? "the shard" : "every shard", ends, ctl_ms_hint(value, hint, sizeof hint));
    goto out;
  }
  if (from && kind == RN_POS_TIMESTAMP && njobs == 0 && !follow) {
    char t[40];
    ctl_format_time(value, t, sizeof t);
    fprintf(c->err, "runnelctl: stream \"%s\": no record at or after %s\n", stream, t);
  }
  if (follow) ctl_catch_signals(true);
  if (follow && njobs > 1) {
    for (size_t i = 0; i < njobs; i++) pthread_create(&jobs[i].th, NULL, consume_shard, &jobs[i]);
    for (size_t i = 0; i < njobs; i++) pthread_join(jobs[i].th, NULL);
  } else {
    for (size_t i = 0; i < njobs && !atomic_load(&cs.done); i++) consume_shard(&jobs[i]);
  }
  if (follow) ctl_catch_signals(false);
  status = cs.status;
out:
  free(jobs);
  rn_offsets_free(offs);
  rn_offsets_free(to_offs);
  pthread_mutex_destroy(&cs.out_mu);
  return ctl_out_finish(c, status);
}

/* ---- as a group member ------------------------------------------------------------- */

static void format_shard_list(const uint32_t *shards, size_t n, char *buf, size_t cap) {
  size_t at = 0;
  buf[0] = '\0';
  if (n == 0) {
    snprintf(buf, cap, "-");
    return;
  }
  for (size_t i = 0; i < n && at < cap; i++) {
    int w = snprintf(buf + at, cap - at, "%s%u", i ? "," : "", shards[i]);
    if (w < 0) break;
    at += (size_t)w;
  }
  if (at >= cap && cap > 4) snprintf(buf + cap - 4, 4, "...");
}

static void report_shards(ctl_t *c, const char *what, const uint32_t *shards, size_t n) {
  if (n == 0) return;
  char list[1024];
  format_shard_list(shards, n, list, sizeof list);
  fprintf(c->err, "%s shard%s %s\n", what, n == 1 ? "" : "s", list);
  fflush(c->err);
}

static void on_group_assigned(void *arg, const uint32_t *shards, size_t n) { report_shards(arg, "assigned", shards, n); }
static void on_group_revoked(void *arg, const uint32_t *shards, size_t n) { report_shards(arg, "revoked", shards, n); }

/* Join, print the assigned shards' records (each flushed before the next
 * poll marks it processed), and close (commit + leave) at the end: once
 * drained without --follow, at SIGINT/SIGTERM, after --max, or at the first
 * failed write (then the failed record is nacked: not committed). */
static int cmd_group_consume(ctl_t *c, const ctl_args_t *a, consume_state_t *cs) {
  const char *stream = cs->stream, *group = ctl_arg(a, "--group"), *from = ctl_arg(a, "--from"),
             *session = ctl_arg(a, "--session-timeout");
  char why[256];
  rn_group_conf_t conf;
  rn_group_conf_init(&conf);
  if (from) {
    rn_pos_kind_t kind;
    int64_t value;
    if (ctl_parse_pos(from, ctl_now_ms(), &kind, &value, why, sizeof why) != 0)
      return ctl_usage(c, "--from: %s", why);
    char hint[96];
    if (kind == RN_POS_OFFSET)
      return ctl_usage(c, "--from with --group: an offset differs per shard; give earliest, latest or a TIME "
                          "(or move the group with 'group reset')%s",
                       ctl_ms_hint(value, hint, sizeof hint));
    conf.start_kind = kind;
    conf.start_value = value;
  }
  if (session) {
    int64_t ms;
    if (rn_parse_duration_ms(session, &ms, why, sizeof why) != 0) return ctl_usage(c, "--session-timeout: %s", why);
    if (ms < MIN_SESSION_MS || ms > MAX_SESSION_MS)
      return ctl_usage(c, "--session-timeout: %s is outside the range the broker accepts (500ms to 10m)", session);
    conf.session_timeout_ms = (uint32_t)ms;
  }
  conf.client_id = "runnelctl";
  conf.on_assigned = on_group_assigned;
  conf.on_revoked = on_group_revoked;
  conf.cb_arg = c;
  if (ctl_client(c)) return CTL_EXIT_FAIL;
  /* Interrupted (also without --follow): commit what was printed and leave. */
  ctl_catch_signals(true);
  rn_group_consumer_t *gc = NULL;
  rn_err_t err = rn_group_consumer_new(c->cl, stream, group, &conf, &gc);
  if (err) {
    ctl_catch_signals(false);
    return ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
  }
  int retries = 0, status = 0;
  while (!ctl_stop) {
    if (cs->follow && idle_expired(cs)) break;
    const rn_record_t *rec;
    uint32_t shard = 0;
    err = rn_group_poll(gc, cs->follow ? 500 : 200, &rec, &shard);
    if (err == RN_EAGAIN) {
      err = 0;
      if (!cs->follow && rn_group_drained(gc)) break;
      continue;
    }
    if (err && rn_err_retriable(err) && (cs->follow || retries < 5)) {
      retries++;
      ctl_nap(200); /* the broker is away: do not spin (a signal ends the wait early) */
      err = 0;
      continue;
    }
    if (err) break;
    retries = 0;
    emit_t e = emit(cs, shard, rec);
    if (e == EMIT_WRITE_FAILED) {
      /* not written: must not count as processed, so close does not commit it */
      rn_group_nack(gc, "runnelctl: write to standard output failed");
      status = CTL_EXIT_FAIL;
      break;
    }
    if (e != EMIT_OK) break; /* --max reached: close commits this record too */
  }
  if (err) status = ctl_fail(c, err, "stream \"%s\" group \"%s\"", stream, group);
  ctl_out_report(c);
  rn_err_t cerr = rn_group_consumer_close(gc);
  if (cerr && status == 0) status = ctl_fail(c, cerr, "stream \"%s\" group \"%s\": commit and leave", stream, group);
  ctl_catch_signals(false);
  return ctl_out_finish(c, status);
}
