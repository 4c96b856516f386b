/*
 * mock_broker.h — a tiny in-process broker for librunnel's unit tests (in
 * the spirit of librdkafka's mock cluster): one thread serving the native
 * protocol on a loopback port chosen at run time, with in-memory streams,
 * idempotent produce, long-polling fetch, and fault injection.
 *
 * Every function here is thread-safe; the mock thread holds the mock's lock
 * while it handles a request, so observations are consistent.
 */
#ifndef RN_TEST_MOCK_BROKER_H
#define RN_TEST_MOCK_BROKER_H

#include <stdint.h>

#include "runnel.pb-c.h"
#include "runnel/error.h"

typedef struct mock_broker mock_broker_t;

/* Start listening on 127.0.0.1:<ephemeral>. Aborts on failure. */
mock_broker_t *mock_broker_start(void);
/* "127.0.0.1:PORT" (static per broker). */
const char *mock_broker_addr(const mock_broker_t *mb);
/* Stop the thread, close every connection, free. */
void mock_broker_stop(mock_broker_t *mb);

/* Create a stream directly (shards split the hash space equally). */
void mock_create_stream(mock_broker_t *mb, const char *name, uint32_t shards);

/* The placement DescribeStream reports for a shard from now on, as a
 * cluster member would (leader id, epoch, native address; NULL or "" with
 * 0: a single broker's none). The mock itself serves every shard anyway:
 * point the address at another mock to play the leader. */
void mock_set_leader(mock_broker_t *mb, const char *stream, uint32_t shard, uint32_t leader, uint32_t epoch,
                     const char *address);

typedef enum {
  MOCK_ERR,         /* answer with a request-level error `err`, do nothing */
  MOCK_SHARD_ERR,   /* produce/fetch: answer every shard with error `err`, do nothing */
  MOCK_DROP_BEFORE, /* close the connection without handling the request */
  MOCK_DROP_AFTER,  /* handle the request, then close instead of answering */
  MOCK_FRAME_ERROR, /* do nothing; answer as a framing error (correlation id 0,
                       ETOOLARGE, size = the request's size, limit = size - 1), close */
} mock_action_t;

/* The next `count` requests of kind op (0 = any) get `action`. Rules are
 * consumed in the order they were added. */
void mock_inject(mock_broker_t *mb, Runnel__Request__OpCase op, mock_action_t action, rn_err_t err, int count);

/* The limits BrokerInfo reports from now on (the client asks once per
 * connection). Default: record 16 MiB, batch 64 MiB, frame 128 MiB, fetch
 * 16 MiB. All 0: BrokerInfo is answered EUNKNOWNOP, as by a broker older
 * than it. */
void mock_set_limits(mock_broker_t *mb, uint32_t record, uint32_t batch, uint32_t frame, uint32_t fetch);

/* Forget every injection rule. */
void mock_clear_rules(mock_broker_t *mb);

/* Hold the next n responses and send them in reverse order once all n are
 * ready (shows that the client matches responses by correlation id). */
void mock_reorder_next(mock_broker_t *mb, unsigned n);

/* Observations. */
unsigned mock_count(mock_broker_t *mb, Runnel__Request__OpCase op); /* requests received */
unsigned mock_connections(mock_broker_t *mb);                      /* accepted so far */
uint64_t mock_end_offset(mock_broker_t *mb, const char *stream, uint32_t shard);
unsigned mock_duplicates(mock_broker_t *mb);       /* produce batches answered duplicate=true */
unsigned mock_batches(mock_broker_t *mb);          /* batches appended, all streams */
/* Header of the i-th batch appended (over all streams), as stored. */
void mock_batch_info(mock_broker_t *mb, unsigned i, uint32_t *shard, uint32_t *count, uint8_t *codec,
                     uint64_t *producer_id, int32_t *base_sequence);
/* Flip one byte of the records section of the i-th stored batch of a shard
 * (so its payload checksum no longer matches). */
void mock_corrupt(mock_broker_t *mb, const char *stream, uint32_t shard, unsigned i);
/* Block until at least n fetches are parked waiting for data. */
void mock_wait_parked(mock_broker_t *mb, unsigned n);

#endif
