/*
 * test_net_conn.c — the connection base (broker/net, rn_net.h) under a
 * trivial protocol, in process on loopback ports chosen by the kernel:
 * connection limits and the extra allowance, refusals counted and logged
 * through the rate-limited reject log, close ordering and the reference
 * count (a connection is never freed inside one of its own callbacks, nor
 * while a reference is held), shutdown waiting for busy connections, and
 * peer names for IPv4 and IPv6.
 *
 * The loop is run until a condition holds (no sleeps); a guard timer fails
 * the test instead of hanging.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nettest.h"
#include "rn_net.h"

/* ---- a trivial protocol -------------------------------------------------------- */

typedef struct fixture fixture_t;

typedef struct tconn {
  rn_conn_t base;
  fixture_t *fx;
  bool in_cb;    /* inside one of its own callbacks */
  bool hold;     /* take a reference at open (dropped by the test) */
  bool busy;     /* shutdown waits while set */
  char buf[256];
} tconn_t;

#define MAX_EVENTS 64
struct fixture {
  uv_loop_t loop;
  rn_net_t *net;
  rn_net_listener_t *lst;
  uint32_t max_conns, extra;
  bool hold_next; /* the next connection opened takes a reference */
  size_t big_write; /* the next connection opened writes this many bytes at once */
  int write_status; /* what the write callback saw */
  bool write_done;
  bool quiet;     /* opts.quiet's answer */
  /* What happened, in order. */
  char events[MAX_EVENTS][48];
  int nevents;
  tconn_t *opened[16];
  int nopened, nclosed, nfreed;
  int freed_in_cb; /* frees that happened inside a callback of that connection */
  char logs[16][512];
  int nlogs;
  bool done;
};

static void event(fixture_t *fx, const char *what, uint64_t id) {
  if (fx->nevents < MAX_EVENTS) snprintf(fx->events[fx->nevents++], sizeof fx->events[0], "%s#%llu", what, (unsigned long long)id);
}

typedef struct twrite {
  rn_conn_wreq_t req; /* first */
  uint8_t *buf;
} twrite_t;

/* The write's callback: the connection is still valid (not dead) here. */
static void t_written(rn_conn_t *base, rn_conn_wreq_t *w, int status) {
  tconn_t *c = (tconn_t *)base;
  twrite_t *tw = (twrite_t *)w;
  assert_int_not_equal(base->state, RN_CONN_DEAD);
  assert_true(base->refs >= 1);
  c->fx->write_status = status;
  c->fx->write_done = true;
  event(c->fx, "written", base->id);
  free(tw->buf);
  free(tw);
}

static void t_open(rn_conn_t *base) {
  tconn_t *c = (tconn_t *)base;
  fixture_t *fx = base->proto;
  c->fx = fx;
  c->in_cb = true;
  if (fx->nopened < 16) fx->opened[fx->nopened] = c;
  fx->nopened++;
  event(fx, "open", base->id);
  if (fx->hold_next) {
    c->hold = true;
    rn_conn_ref(base);
    fx->hold_next = false;
  }
  assert_int_equal(rn_conn_read(base, true), 0);
  if (fx->big_write > 0) {
    twrite_t *tw = malloc(sizeof *tw);
    assert_non_null(tw);
    tw->buf = calloc(1, fx->big_write);
    assert_non_null(tw->buf);
    uv_buf_t b = uv_buf_init((char *)tw->buf, (unsigned)fx->big_write);
    assert_int_equal(rn_conn_write(base, &tw->req, &b, 1, fx->big_write, t_written), 0);
    assert_int_equal(base->writes, 1);
    assert_int_equal(base->writing, fx->big_write);
    fx->big_write = 0;
  }
  c->in_cb = false;
}

static void t_alloc(rn_conn_t *base, size_t suggested, uv_buf_t *buf) {
  tconn_t *c = (tconn_t *)base;
  *buf = uv_buf_init(c->buf, sizeof c->buf);
}

/* EOF from the client: close from inside the read callback, then touch the
 * connection after the close (it must still be valid). */
static void t_read(rn_conn_t *base, ssize_t nread, const uv_buf_t *buf) {
  tconn_t *c = (tconn_t *)base;
  if (nread >= 0) return;
  c->in_cb = true;
  rn_conn_close(base, "eof");
  event(c->fx, "closed-in-read", base->id);
  assert_true(rn_conn_closing(base));
  c->in_cb = false;
}

static bool t_busy(const rn_conn_t *base) { return ((const tconn_t *)base)->busy; }

static void t_close(rn_conn_t *base, const char *why) {
  tconn_t *c = (tconn_t *)base;
  c->fx->nclosed++;
  event(c->fx, "on_close", base->id);
}

static void t_free(rn_conn_t *base) {
  tconn_t *c = (tconn_t *)base;
  fixture_t *fx = c->fx;
  if (c->in_cb) fx->freed_in_cb++;
  assert_int_equal(base->state, RN_CONN_DEAD);
  assert_int_equal(base->refs, 0);
  for (int i = 0; i < fx->nopened && i < 16; i++)
    if (fx->opened[i] == c) fx->opened[i] = NULL;
  fx->nfreed++;
  event(fx, "free", base->id);
}

static const rn_net_proto_ops_t t_ops = {
    .name = "test",
    .conn_size = sizeof(tconn_t),
    .on_open = t_open,
    .on_alloc = t_alloc,
    .on_read = t_read,
    .busy = t_busy,
    .on_close = t_close,
    .on_free = t_free,
};

static void t_log(void *arg, rn_level_t level, const char *component, const char *msg) {
  fixture_t *fx = arg;
  if (fx->nlogs < 16) snprintf(fx->logs[fx->nlogs++], sizeof fx->logs[0], "%d %s: %s", level, component, msg);
}

static bool t_quiet(void *arg) { return ((fixture_t *)arg)->quiet; }

static int count_logs(const fixture_t *fx, const char *needle) {
  int n = 0;
  for (int i = 0; i < fx->nlogs; i++) n += strstr(fx->logs[i], needle) != NULL;
  return n;
}

/* ---- clients (on the same loop) ------------------------------------------------- */

typedef struct client {
  uv_tcp_t tcp;
  uv_connect_t creq;
  bool connected, eof, closed;
  char buf[64];
} client_t;

static void c_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
  client_t *cl = h->data;
  *b = uv_buf_init(cl->buf, sizeof cl->buf);
}
static void c_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  client_t *cl = s->data;
  if (n < 0) {
    cl->eof = true;
    uv_read_stop(s);
  }
}
static void c_connected(uv_connect_t *r, int status) {
  client_t *cl = r->data;
  assert_int_equal(status, 0);
  cl->connected = true;
  uv_read_start((uv_stream_t *)&cl->tcp, c_alloc, c_read);
}
static void c_closed(uv_handle_t *h) { ((client_t *)h->data)->closed = true; }

static void client_connect(fixture_t *fx, client_t *cl, const char *ip, bool v6) {
  memset(cl, 0, sizeof *cl);
  struct sockaddr_storage ss;
  if (v6)
    assert_int_equal(uv_ip6_addr(ip, rn_net_listener_port(fx->lst), (struct sockaddr_in6 *)&ss), 0);
  else
    assert_int_equal(uv_ip4_addr(ip, rn_net_listener_port(fx->lst), (struct sockaddr_in *)&ss), 0);
  assert_int_equal(uv_tcp_init(&fx->loop, &cl->tcp), 0);
  cl->tcp.data = cl;
  cl->creq.data = cl;
  assert_int_equal(uv_tcp_connect(&cl->creq, &cl->tcp, (struct sockaddr *)&ss, c_connected), 0);
}

static void client_close(client_t *cl) { uv_close((uv_handle_t *)&cl->tcp, c_closed); }

#define RUN_UNTIL(fx, cond) RN_RUN_UNTIL(&(fx)->loop, cond, 1000)

/* ---- fixture ------------------------------------------------------------------ */

static fixture_t *fixture_new(const char *host, uint32_t max_conns, uint32_t extra) {
  fixture_t *fx = calloc(1, sizeof *fx);
  assert_non_null(fx);
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  fx->quiet = true;
  rn_net_opts_t no = {.fd_reserve = 0, .log = t_log, .log_arg = fx, .quiet = t_quiet, .quiet_arg = fx};
  fx->net = rn_net_new(&fx->loop, &no);
  assert_non_null(fx->net);
  rn_net_listen_opts_t lo = {.addr = "test", .host = host, .port = 0, .name = "test", .limit_name = "test_max",
                             .max_conns = max_conns, .extra = extra, .ops = &t_ops, .proto_arg = fx};
  char why[256] = "";
  int rc = rn_net_listen(fx->net, &lo, &fx->lst, why, sizeof why);
  if (rc != 0) print_error("listen: %s\n", why);
  assert_int_equal(rc, 0);
  rn_net_start(fx->net);
  return fx;
}

static void on_done(rn_net_t *net, void *arg) { ((fixture_t *)arg)->done = true; }

static void fixture_free(fixture_t *fx) {
  rn_net_shutdown(fx->net, on_done, fx);
  RUN_UNTIL(fx, fx->done);
  while (uv_run(&fx->loop, UV_RUN_NOWAIT) != 0) {
  }
  rn_net_destroy(fx->net);
  assert_int_equal(uv_loop_close(&fx->loop), 0);
  assert_int_equal(fx->freed_in_cb, 0);
  free(fx);
}

/* ---- tests ------------------------------------------------------------------- */

/* max_conns admitted; the next ones refused (closed at once, counted, one
 * warning naming the limit); extra ones admitted and flagged. */
static void test_limits(void **state) {
  fixture_t *fx = fixture_new("127.0.0.1", 2, 1);
  client_t cl[5];
  for (int i = 0; i < 5; i++) client_connect(fx, &cl[i], "127.0.0.1", false);
  /* Which two are refused depends on the accept order: count, not name. */
#define NEOF() (cl[0].eof + cl[1].eof + cl[2].eof + cl[3].eof + cl[4].eof)
  RUN_UNTIL(fx, fx->nopened == 3 && NEOF() == 2);
  assert_int_equal(rn_net_listener_count(fx->lst), 2);
  assert_int_equal(rn_net_listener_refused(fx->lst, RN_NET_REFUSE_LIMIT), 2);
  assert_int_equal(rn_net_listener_refused(fx->lst, RN_NET_REFUSE_FDS), 0);
  int extra = 0;
  for (rn_conn_t *c = rn_net_listener_conns(fx->lst); c != NULL; c = c->next) extra += c->extra;
  assert_int_equal(extra, 1);
  /* One line for the admitted extra, the refusals within the interval
   * counted in it or suppressed: never one line per refusal. */
  assert_true(count_logs(fx, "test_max (2) reached") >= 1);
  assert_true(count_logs(fx, "test_max (2) reached") < 3);
  /* The refused ones never opened: no on_close, no free callback. */
  assert_int_equal(fx->nclosed, 0);
  /* A slot frees when an admitted (non-extra) client leaves. */
  int admitted = -1;
  for (int i = 0; i < 5 && admitted < 0; i++) {
    if (cl[i].eof) continue;
    admitted = i;
  }
  assert_true(admitted >= 0);
  /* Close a non-extra one: find which connection is extra by its peer port. */
  rn_conn_t *plain = NULL;
  for (rn_conn_t *c = rn_net_listener_conns(fx->lst); c != NULL; c = c->next)
    if (!c->extra) plain = c;
  assert_non_null(plain);
  for (int i = 0; i < 5; i++) {
    if (cl[i].eof) continue;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char name[80];
    uv_tcp_getsockname(&cl[i].tcp, (struct sockaddr *)&ss, &len);
    rn_net_format_addr((struct sockaddr *)&ss, name, sizeof name);
    if (strcmp(name, plain->peer) == 0) admitted = i;
  }
  client_close(&cl[admitted]);
  RUN_UNTIL(fx, fx->nfreed == 1);
  assert_int_equal(rn_net_listener_count(fx->lst), 1);
  client_t again;
  client_connect(fx, &again, "127.0.0.1", false);
  RUN_UNTIL(fx, fx->nopened == 4);
  assert_int_equal(rn_net_listener_count(fx->lst), 2);
  for (int i = 0; i < 5; i++)
    if (i != admitted) client_close(&cl[i]);
  client_close(&again);
  RUN_UNTIL(fx, fx->nfreed == 4);
  fixture_free(fx);
}

/* The reject log: one line per interval, carrying the count since the last. */
static void test_ratelog(void **state) {
  rn_net_ratelog_t rl = {.interval_ms = 1000};
  assert_int_equal(rn_net_ratelog_hit(&rl, 0), 1); /* the first at clock 0 still logs */
  assert_int_equal(rn_net_ratelog_hit(&rl, 10), 0);
  assert_int_equal(rn_net_ratelog_hit(&rl, 999), 0);
  assert_int_equal(rn_net_ratelog_hit(&rl, 1000), 3); /* 10, 999 and this one */
  assert_int_equal(rn_net_ratelog_hit(&rl, 1500), 0);
  assert_false(rn_net_ratelog_due(&rl, 1999));
  assert_true(rn_net_ratelog_due(&rl, 2000)); /* due: the count stays */
  assert_int_equal(rn_net_ratelog_hit(&rl, 2001), 0);
  assert_int_equal(rn_net_ratelog_hit(&rl, 3000), 3);
}

/* Closed inside its own read callback: on_close at once, the free only
 * after the callback returned (from the loop hook), once. */
static void test_close_in_callback(void **state) {
  fixture_t *fx = fixture_new("127.0.0.1", 4, 0);
  client_t cl;
  client_connect(fx, &cl, "127.0.0.1", false);
  RUN_UNTIL(fx, fx->nopened == 1);
  client_close(&cl);
  RUN_UNTIL(fx, fx->nfreed == 1);
  assert_int_equal(fx->nevents, 4);
  assert_string_equal(fx->events[0], "open#1");
  assert_string_equal(fx->events[1], "on_close#1");
  assert_string_equal(fx->events[2], "closed-in-read#1");
  assert_string_equal(fx->events[3], "free#1");
  assert_int_equal(fx->freed_in_cb, 0);
  fixture_free(fx);
}

/* A reference keeps a closed connection's memory: dead only at the last
 * unref, freed by the next hook (never by the unref itself). */
static void test_ref_keeps_memory(void **state) {
  fixture_t *fx = fixture_new("127.0.0.1", 4, 0);
  fx->hold_next = true;
  client_t cl;
  client_connect(fx, &cl, "127.0.0.1", false);
  RUN_UNTIL(fx, fx->nopened == 1);
  tconn_t *c = fx->opened[0];
  client_close(&cl);
  RUN_UNTIL(fx, c->base.state == RN_CONN_CLOSING && c->base.handles_open == 0);
  /* Several more iterations: the held connection is not freed. */
  for (int i = 0; i < 3; i++) uv_run(&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal(fx->nfreed, 0);
  assert_int_equal(c->base.refs, 1);
  c->in_cb = true; /* as if inside a reply callback */
  rn_conn_unref(&c->base);
  assert_int_equal(c->base.state, RN_CONN_DEAD);
  assert_int_equal(fx->nfreed, 0);
  c->in_cb = false;
  RUN_UNTIL(fx, fx->nfreed == 1);
  fixture_free(fx);
}

/* A write in flight counts in writes/writing and holds a reference: closed
 * meanwhile, its callback still runs (UV_ECANCELED) on valid memory, and
 * the connection is freed only after it. */
static void test_write_in_flight_at_close(void **state) {
  fixture_t *fx = fixture_new("127.0.0.1", 4, 0);
  fx->big_write = (size_t)64 << 20; /* more than loopback buffers take: the peer reads nothing */
  client_t cl;
  client_connect(fx, &cl, "127.0.0.1", false);
  RUN_UNTIL(fx, fx->nopened == 1);
  tconn_t *c = fx->opened[0];
  uv_read_stop((uv_stream_t *)&cl.tcp); /* the client never reads */
  for (int i = 0; i < 3; i++) uv_run(&fx->loop, UV_RUN_NOWAIT);
  assert_false(fx->write_done);
  assert_int_equal(c->base.refs, 2); /* the handles + the write */
  rn_conn_close(&c->base, "test");
  RUN_UNTIL(fx, fx->nfreed == 1);
  assert_true(fx->write_done);
  assert_int_equal(fx->write_status, UV_ECANCELED);
  int written = -1, freed = -1;
  for (int i = 0; i < fx->nevents; i++) {
    if (strcmp(fx->events[i], "written#1") == 0) written = i;
    if (strcmp(fx->events[i], "free#1") == 0) freed = i;
  }
  assert_true(written >= 0 && freed > written);
  client_close(&cl);
  fixture_free(fx);
}

/* Shutdown waits while a connection is busy or opts.quiet says no, then
 * closes every connection and calls done once every handle closed. */
static void test_shutdown_waits(void **state) {
  fixture_t *fx = fixture_new("127.0.0.1", 4, 0);
  client_t cl;
  client_connect(fx, &cl, "127.0.0.1", false);
  RUN_UNTIL(fx, fx->nopened == 1 && cl.connected);
  tconn_t *c = fx->opened[0];
  c->busy = true;
  fx->quiet = false;
  rn_net_shutdown(fx->net, on_done, fx);
  assert_true(rn_net_draining(fx->net));
  for (int i = 0; i < 3; i++) uv_run(&fx->loop, UV_RUN_NOWAIT);
  assert_false(fx->done);
  assert_int_equal(fx->nclosed, 0);
  fx->quiet = true; /* still busy */
  for (int i = 0; i < 3; i++) uv_run(&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal(fx->nclosed, 0);
  c->busy = false;
  RUN_UNTIL(fx, fx->done);
  assert_int_equal(fx->nclosed, 1);
  assert_int_equal(fx->nfreed, 0); /* the hooks are closed: destroy frees it */
  client_close(&cl);
  while (uv_run(&fx->loop, UV_RUN_NOWAIT) != 0) {
  }
  rn_net_destroy(fx->net);
  assert_int_equal(fx->nfreed, 1);
  assert_int_equal(uv_loop_close(&fx->loop), 0);
  free(fx);
}

/* Peer names: "ip:port" for IPv4, "[ip]:port" for IPv6. */
static void test_peer_names(void **state) {
  char buf[80];
  struct sockaddr_in a4;
  struct sockaddr_in6 a6;
  assert_int_equal(uv_ip4_addr("10.1.2.3", 7400, &a4), 0);
  rn_net_format_addr((struct sockaddr *)&a4, buf, sizeof buf);
  assert_string_equal(buf, "10.1.2.3:7400");
  assert_int_equal(uv_ip6_addr("2001:db8::1", 443, &a6), 0);
  rn_net_format_addr((struct sockaddr *)&a6, buf, sizeof buf);
  assert_string_equal(buf, "[2001:db8::1]:443");
  rn_net_format_addr(NULL, buf, sizeof buf);
  assert_string_equal(buf, "?");
  assert_true(rn_net_is_loopback((struct sockaddr *)&(struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)}));
  assert_false(rn_net_is_loopback((struct sockaddr *)&a4));
  assert_false(rn_net_is_loopback((struct sockaddr *)&a6));
  assert_int_equal(uv_ip6_addr("::1", 1, &a6), 0);
  assert_true(rn_net_is_loopback((struct sockaddr *)&a6));
  assert_int_equal(uv_ip6_addr("::ffff:127.0.0.1", 1, &a6), 0);
  assert_true(rn_net_is_loopback((struct sockaddr *)&a6));

  /* On real connections. */
  fixture_t *fx = fixture_new("127.0.0.1", 4, 0);
  client_t cl;
  client_connect(fx, &cl, "127.0.0.1", false);
  RUN_UNTIL(fx, fx->nopened == 1);
  assert_true(strncmp(fx->opened[0]->base.peer, "127.0.0.1:", 10) == 0);
  client_close(&cl);
  RUN_UNTIL(fx, fx->nfreed == 1);
  fixture_free(fx);

  fx = fixture_new("::1", 4, 0);
  client_connect(fx, &cl, "::1", true);
  RUN_UNTIL(fx, fx->nopened == 1);
  assert_true(strncmp(fx->opened[0]->base.peer, "[::1]:", 6) == 0);
  client_close(&cl);
  RUN_UNTIL(fx, fx->nfreed == 1);
  fixture_free(fx);
}

/* A non-loopback address is refused without authentication or allow_open,
 * before anything is bound. */
static void test_refuse_open_listener(void **state) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  rn_net_opts_t no = {0};
  rn_net_t *net = rn_net_new(&loop, &no);
  rn_net_listen_opts_t lo = {.addr = "0.0.0.0:0", .host = "0.0.0.0", .port = 0, .name = "test", .max_conns = 1,
                             .refuse_hint = ": hint", .ops = &t_ops};
  rn_net_listener_t *lst = NULL;
  char why[256] = "";
  assert_int_equal(rn_net_listen(net, &lo, &lst, why, sizeof why), UV_EINVAL);
  assert_null(lst);
  assert_string_equal(why, "refusing to listen on the non-loopback address 0.0.0.0:0 (test): hint");
  rn_net_abandon(net);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* A second listener whose port is taken fails cleanly while the first
 * stays open (its own close completes; nothing hangs), and abandon closes
 * the rest. */
static void test_port_in_use(void **state) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  rn_net_opts_t no = {0};
  rn_net_t *net = rn_net_new(&loop, &no);
  rn_net_listen_opts_t lo = {.addr = "first", .host = "127.0.0.1", .port = 0, .name = "first", .max_conns = 1,
                             .ops = &t_ops};
  rn_net_listener_t *a = NULL, *b = NULL;
  char why[256] = "";
  assert_int_equal(rn_net_listen(net, &lo, &a, why, sizeof why), 0);
  lo.name = "second";
  lo.addr = "127.0.0.1:taken";
  lo.port = rn_net_listener_port(a);
  assert_int_equal(rn_net_listen(net, &lo, &b, why, sizeof why), UV_EADDRINUSE);
  assert_null(b);
  assert_non_null(strstr(why, "cannot listen on 127.0.0.1:taken (second)"));
  rn_net_abandon(net);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_ratelog),
      cmocka_unit_test(test_close_in_callback),
      cmocka_unit_test(test_ref_keeps_memory),
      cmocka_unit_test(test_write_in_flight_at_close),
      cmocka_unit_test(test_shutdown_waits),
      cmocka_unit_test(test_peer_names),
      cmocka_unit_test(test_refuse_open_listener),
      cmocka_unit_test(test_port_in_use),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
