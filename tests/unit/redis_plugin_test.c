/*
 * redis_plugin_test.c - the Redis plugin (plugins/redis) driven through its
 * descriptor by the test host (tests/support/testhost.h, the real host), chunk by chunk,
 * the way the agent drives it.
 *
 * The one idea: a test writes what a client wrote and what the server
 * answered (most byte strings recorded from redis-server 7.0.15), with
 * timestamps, and then reads back the spans, attributes and metric records
 * the plugin produced. Counters that do not show up as spans (drops,
 * pushes, resyncs) are read from redis_debug_totals() after the connection
 * closed.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include "testhost.h"
#include "redis_cmd.h"
#include "redis_internal.h"

const struct sonde_plugin *sonde_plugin_entry(void);

#define EG SONDE_DIR_EGRESS
#define IN SONDE_DIR_INGRESS

/* ---- helpers ------------------------------------------------------------ */

struct t {
	struct th_host *h;
	struct th_conn *c;
};

static struct t setup(enum sonde_role role, const char *query_text)
{
	struct t t;
	struct sonde_conn_info ci;

	t.h = th_new();
	if (query_text) {
		const char *v[] = { query_text };

		ck_assert_int_eq(th_set_config(t.h, NULL, "query_text", v, 1), 0);
	}
	ck_assert_int_eq(th_load(t.h, sonde_plugin_entry(), "redis"), SONDE_OK);
	th_conn_info_init(&ci, role);
	if (role == SONDE_ROLE_CLIENT) {
		ci.local_port = 51000;
		ci.peer_port = 6379;
		snprintf(ci.peer_addr, sizeof(ci.peer_addr), "10.0.0.7");
	} else {
		ci.local_port = 6379;
	}
	t.c = th_conn_open(t.h, &ci);
	ck_assert_ptr_nonnull(t.c);
	return t;
}

/* Close, check nothing leaked or was misused, and return the counters. */
static struct redis_stats teardown(struct t *t, uint64_t ts)
{
	struct redis_stats st;

	th_conn_close(t->c, ts);
	st = *redis_debug_totals();
	ck_assert_uint_eq(th_n_open(t->h), 0);
	ck_assert_uint_eq(th_misuse(t->h), 0);
	th_free(t->h);
	return st;
}

/* Append one command in RESP array form; the argument list ends with NULL. */
static size_t cmd(char *out, size_t cap, ...)
{
	const char *argv[64];
	size_t argc = 0, off;
	va_list ap;

	va_start(ap, cap);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL;)
		argv[argc++] = a;
	va_end(ap);
	off = (size_t)snprintf(out, cap, "*%zu\r\n", argc);
	for (size_t i = 0; i < argc; i++)
		off += (size_t)snprintf(out + off, cap - off, "$%zu\r\n%s\r\n", strlen(argv[i]),
		                        argv[i]);
	return off;
}

static int feed(struct t *t, enum sonde_dir dir, uint64_t ts, const char *s)
{
	return th_conn_feed(t->c, dir, ts, s, strlen(s));
}

static int feed_n(struct t *t, enum sonde_dir dir, uint64_t ts, const char *s, size_t n)
{
	return th_conn_feed(t->c, dir, ts, s, n);
}

/* A chunk with flags and an orig_len larger than what was captured. */
static int feed_chunk(struct t *t, enum sonde_dir dir, uint64_t ts, const void *p, size_t len,
                      size_t orig_len, uint32_t flags)
{
	struct sonde_chunk ch = { 0 };

	ch.dir = dir;
	ch.ts_unix_ns = ts;
	ch.data = p;
	ch.len = len;
	ch.orig_len = orig_len;
	ch.flags = flags;
	ch.tid = 77;
	return th_conn_feed_chunk(t->c, &ch);
}

static struct th_span *ended(struct t *t, size_t i)
{
	ck_assert_uint_gt(th_n_ended(t->h), i);
	return th_ended(t->h, i);
}

static void assert_str(const struct th_span *s, const char *key, const char *want)
{
	const char *got = th_span_str(s, key);

	ck_assert_msg(got != NULL, "span %s: no %s", s->name, key);
	ck_assert_msg(strcmp(got, want) == 0, "span %s: %s = '%s', want '%s'", s->name, key, got,
	              want);
}

static void assert_int(const struct th_span *s, const char *key, int64_t want)
{
	int64_t v;

	ck_assert_msg(th_span_int(s, key, &v) == 0, "span %s: no int %s", s->name, key);
	ck_assert_int_eq(v, want);
}

/* ---- basic client spans ----------------------------------------------------- */

START_TEST(test_get_client_span)
{
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	struct th_span *s;
	const struct th_record *r;
	struct redis_stats st;

	ck_assert_int_eq(feed(&t, EG, 1000, "*2\r\n$3\r\nget\r\n$9\r\nuser:1000\r\n"), SONDE_OK);
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	ck_assert_uint_eq(th_n_open(t.h), 1);
	ck_assert_int_eq(feed(&t, IN, 251000, "$5\r\nhello\r\n"), SONDE_OK);

	s = ended(&t, 0);
	ck_assert_str_eq(s->name, "GET");
	ck_assert_int_eq(s->kind, SONDE_SPAN_CLIENT);
	ck_assert_uint_eq(s->start_ns, 1000);
	ck_assert_uint_eq(s->end_ns, 251000);
	ck_assert_int_eq(s->status, SONDE_STATUS_UNSET);
	assert_str(s, "db.system.name", "redis");
	assert_str(s, "db.operation.name", "GET");
	assert_str(s, "server.address", "10.0.0.7");
	assert_int(s, "server.port", 6379);
	assert_str(s, "network.peer.address", "10.0.0.7");
	assert_int(s, "network.peer.port", 6379);
	ck_assert_ptr_null(th_span_attr(s, "db.namespace")); /* no SELECT seen */
	ck_assert_ptr_null(th_span_attr(s, "error.type"));
	ck_assert_ptr_null(th_span_attr(s, "db.query.text")); /* opt-in only */

	/* The metric: registered as asked, one record for the span. */
	{
		struct th_metric *m = th_metric_by_name(t.h, "db.client.operation.duration");
		static const double want[] = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10 };

		ck_assert_ptr_nonnull(m);
		ck_assert_str_eq(m->unit, "s");
		ck_assert_uint_eq(m->n_bounds, 9);
		for (size_t i = 0; i < 9; i++)
			ck_assert_double_eq(m->bounds[i], want[i]);
		ck_assert_uint_eq(m->n_keys, 6);
		ck_assert_str_eq(m->keys[0], "db.system.name");
		ck_assert_str_eq(m->keys[5], "error.type");
	}
	ck_assert_uint_eq(th_n_records(t.h), 1);
	r = th_record(t.h, 0);
	ck_assert_double_eq_tol(r->value, 250e-6, 1e-12);
	ck_assert_str_eq(th_record_val(r, "db.operation.name"), "GET");
	ck_assert_str_eq(th_record_val(r, "server.port"), "6379");
	ck_assert_ptr_null(th_record_val(r, "error.type"));

	st = teardown(&t, 300000);
	ck_assert_uint_eq(st.commands, 1);
	ck_assert_uint_eq(st.spans, 1);
	ck_assert_uint_eq(st.dropped, 0);
}
END_TEST

START_TEST(test_pipeline_16)
{
	/* redis-benchmark -P 16 -t set, recorded: 16 commands in one write. */
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	char req[16 * 64], rep[16 * 8];
	size_t rl = 0, pl = 0;
	struct redis_stats st;

	for (int i = 0; i < 16; i++) {
		rl += cmd(req + rl, sizeof(req) - rl, "SET", "key:__rand_int__", "VXK", NULL);
		pl += (size_t)snprintf(rep + pl, sizeof(rep) - pl, "+OK\r\n");
	}
	feed_n(&t, EG, 5000, req, rl);
	ck_assert_uint_eq(th_n_open(t.h), 16);
	/* Replies arrive in three reads, cut mid-line. */
	feed_n(&t, IN, 6000, rep, 13);
	feed_n(&t, IN, 7000, rep + 13, 40);
	feed_n(&t, IN, 8000, rep + 53, pl - 53);
	ck_assert_uint_eq(th_n_ended(t.h), 16);
	for (size_t i = 0; i < 16; i++) {
		struct th_span *s = ended(&t, i);

		ck_assert_uint_eq(s->index, i); /* ended in the order they started */
		ck_assert_str_eq(s->name, "SET");
		ck_assert_uint_eq(s->start_ns, 5000);
		/* reply i ends at byte 5*i+5 */
		ck_assert_uint_eq(s->end_ns, (5 * i + 5 <= 13) ? 6000 : (5 * i + 5 <= 53) ? 7000 : 8000);
	}
	ck_assert_uint_eq(th_n_records(t.h), 16);
	st = teardown(&t, 9000);
	ck_assert_uint_eq(st.spans, 16);
	ck_assert_uint_eq(st.sync_lost, 0);
}
END_TEST

START_TEST(test_pipeline_byte_by_byte)
{
	/* The same 16-deep pipeline, every byte its own chunk, both ways. */
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	char req[16 * 64];
	size_t rl = 0;
	const char *rep = "$3\r\nVXK\r\n";
	uint64_t ts = 100;

	for (int i = 0; i < 16; i++)
		rl += cmd(req + rl, sizeof(req) - rl, "GET", "key:__rand_int__", NULL);
	for (size_t i = 0; i < rl; i++)
		feed_n(&t, EG, ts++, req + i, 1);
	ck_assert_uint_eq(th_n_open(t.h), 16);
	for (int k = 0; k < 16; k++)
		for (size_t i = 0; i < strlen(rep); i++)
			feed_n(&t, IN, ts++, rep + i, 1);
	ck_assert_uint_eq(th_n_ended(t.h), 16);
	for (size_t i = 0; i < 16; i++) {
		struct th_span *s = ended(&t, i);

		ck_assert_uint_eq(s->index, i);
		ck_assert_str_eq(s->name, "GET");
		/* start: the chunk holding the command's first byte ('*') */
		ck_assert_uint_eq(s->start_ns, 100 + i * (rl / 16));
	}
	teardown(&t, ts);
}
END_TEST

/* ---- transactions, pub/sub, monitor ------------------------------------------ */

START_TEST(test_multi_exec)
{
	/* Recorded: redis-cli with MULTI / SET a 1 / INCR a / EXEC. */
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	static const char *const names[] = { "MULTI", "SET", "INCR", "EXEC" };
	struct redis_stats st;

	feed(&t, EG, 10, "*1\r\n$5\r\nMULTI\r\n");
	feed(&t, IN, 11, "+OK\r\n");
	feed(&t, EG, 20, "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n");
	feed(&t, IN, 21, "+QUEUED\r\n");
	feed(&t, EG, 30, "*2\r\n$4\r\nINCR\r\n$1\r\na\r\n");
	feed(&t, IN, 31, "+QUEUED\r\n");
	feed(&t, EG, 40, "*1\r\n$4\r\nEXEC\r\n");
	feed(&t, IN, 45, "*2\r\n+OK\r\n:2\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 4);
	for (size_t i = 0; i < 4; i++) {
		struct th_span *s = ended(&t, i);

		ck_assert_str_eq(s->name, names[i]);
		ck_assert_uint_eq(s->start_ns, 10 * (i + 1));
		ck_assert_uint_eq(s->end_ns, i == 3 ? 45 : 10 * (i + 1) + 1);
		ck_assert_int_eq(s->status, SONDE_STATUS_UNSET);
	}

	/* Pipelined: all five commands, then all five replies; an aborted one. */
	feed(&t, EG, 100, "*1\r\n$5\r\nMULTI\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
	                  "*1\r\n$3\r\nFOO\r\n*1\r\n$4\r\nEXEC\r\n*1\r\n$4\r\nPING\r\n");
	feed(&t, IN, 110, "+OK\r\n+QUEUED\r\n-ERR unknown command 'FOO'\r\n"
	                  "-EXECABORT Transaction discarded because of previous errors.\r\n"
	                  "+PONG\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 9);
	ck_assert_str_eq(ended(&t, 6)->name, "UNKNOWN");
	assert_str(ended(&t, 6), "error.type", "ERR");
	ck_assert_str_eq(ended(&t, 7)->name, "EXEC");
	assert_str(ended(&t, 7), "error.type", "EXECABORT");
	ck_assert_int_eq(ended(&t, 7)->status, SONDE_STATUS_ERROR);
	ck_assert_str_eq(ended(&t, 8)->name, "PING");
	st = teardown(&t, 200);
	ck_assert_uint_eq(st.spans, 9);
	ck_assert_uint_eq(st.dropped, 0);
}
END_TEST

START_TEST(test_subscribe_resp2)
{
	/* Recorded: SUBSCRIBE ch1 ch2 ch3, then two PUBLISHes from elsewhere. */
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	struct redis_stats st;

	feed(&t, EG, 1000, "*4\r\n$9\r\nsubscribe\r\n$3\r\nch1\r\n$3\r\nch2\r\n$3\r\nch3\r\n");
	/* First confirmation alone: the command is not complete yet. */
	feed(&t, IN, 1100, "*3\r\n$9\r\nsubscribe\r\n$3\r\nch1\r\n:1\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	feed(&t, IN, 1200, "*3\r\n$9\r\nsubscribe\r\n$3\r\nch2\r\n:2\r\n"
	                   "*3\r\n$9\r\nsubscribe\r\n$3\r\nch3\r\n:3\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(ended(&t, 0)->name, "SUBSCRIBE");
	ck_assert_uint_eq(ended(&t, 0)->end_ns, 1200);

	/* Messages: not replies, no spans. */
	feed(&t, IN, 5000, "*3\r\n$7\r\nmessage\r\n$3\r\nch1\r\n$2\r\nhi\r\n");
	feed(&t, IN, 6000, "*3\r\n$7\r\nmessage\r\n$3\r\nch2\r\n$2\r\nyo\r\n");
	ck_assert_uint_eq(th_n_spans(t.h), 1);

	/* PING in subscribed mode is answered with an array; a message can
	 * arrive between the PING and its answer. */
	feed(&t, EG, 7000, "*1\r\n$4\r\nPING\r\n");
	feed(&t, IN, 7100, "*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$3\r\nch3\r\n$1\r\nx\r\n"
	                   "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_str_eq(ended(&t, 1)->name, "PING");

	/* UNSUBSCRIBE without channels: one confirmation per subscription. */
	feed(&t, EG, 8000, "*1\r\n$11\r\nUNSUBSCRIBE\r\n");
	feed(&t, IN, 8100, "*3\r\n$11\r\nunsubscribe\r\n$3\r\nch3\r\n:2\r\n"
	                   "*3\r\n$11\r\nunsubscribe\r\n$3\r\nch1\r\n:1\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	feed(&t, IN, 8200, "*3\r\n$11\r\nunsubscribe\r\n$3\r\nch2\r\n:0\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 3);
	ck_assert_str_eq(ended(&t, 2)->name, "UNSUBSCRIBE");
	ck_assert_uint_eq(ended(&t, 2)->end_ns, 8200);

	/* Out of pub/sub mode, a reply starting with "message" is a reply. */
	feed(&t, EG, 9000, "*4\r\n$6\r\nLRANGE\r\n$1\r\nl\r\n$1\r\n0\r\n$2\r\n-1\r\n");
	feed(&t, IN, 9100, "*1\r\n$7\r\nmessage\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 4);
	ck_assert_str_eq(ended(&t, 3)->name, "LRANGE");

	st = teardown(&t, 10000);
	ck_assert_uint_eq(st.pushes, 3);
	ck_assert_uint_eq(st.spans, 4);
	ck_assert_uint_eq(st.unmatched, 0);
}
END_TEST

START_TEST(test_subscribe_mixed_unsubscribe)
{
	/* Recorded: SUBSCRIBE a b; PSUBSCRIBE p*; PING; UNSUBSCRIBE;
	 * PUNSUBSCRIBE, pipelined; then UNSUBSCRIBE with nothing subscribed. */
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	static const char *const names[] = { "SUBSCRIBE", "PSUBSCRIBE", "PING", "UNSUBSCRIBE",
		                             "PUNSUBSCRIBE", "UNSUBSCRIBE" };
	struct redis_stats st;

	feed(&t, EG, 100, "*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$10\r\nPSUBSCRIBE"
	                  "\r\n$2\r\np*\r\n*1\r\n$4\r\nPING\r\n*1\r\n$11\r\nUNSUBSCRIBE\r\n*1\r\n"
	                  "$12\r\nPUNSUBSCRIBE\r\n");
	feed(&t, IN, 200, "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1"
	                  "\r\nb\r\n:2\r\n*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:3\r\n*2\r\n$4\r\n"
	                  "pong\r\n$0\r\n\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n"
	                  "$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$12\r\npunsubscribe\r\n"
	                  "$2\r\np*\r\n:0\r\n");
	feed(&t, EG, 300, "*1\r\n$11\r\nUNSUBSCRIBE\r\n");
	feed(&t, IN, 400, "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 6);
	for (size_t i = 0; i < 6; i++)
		ck_assert_str_eq(ended(&t, i)->name, names[i]);
	st = teardown(&t, 500);
	ck_assert_uint_eq(st.pushes, 0);
	ck_assert_uint_eq(st.unmatched, 0);
}
END_TEST

START_TEST(test_resp3_pushes)
{
	/* Recorded RESP3 session: HELLO 3, client tracking invalidation push,
	 * SUBSCRIBE confirmations and messages as > pushes. */
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	static const char *const names[] = { "HELLO", "GET",    "CLIENT",      "GET", "PING",
		                             "SUBSCRIBE", "PING", "LRANGE", "UNSUBSCRIBE", "GET" };
	struct redis_stats st;

	feed(&t, EG, 1, "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n");
	feed(&t, IN, 2, "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n"
	                "$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:28\r\n$4\r\nmode\r\n$10\r\nstandalone"
	                "\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n");
	feed(&t, EG, 3, "*2\r\n$3\r\nGET\r\n$5\r\nnokey\r\n");
	feed(&t, IN, 4, "_\r\n");
	feed(&t, EG, 5, "*3\r\n$6\r\nCLIENT\r\n$8\r\nTRACKING\r\n$2\r\non\r\n*2\r\n$3\r\nGET\r\n"
	                "$7\r\ntracked\r\n");
	feed(&t, IN, 6, "+OK\r\n_\r\n");
	feed(&t, IN, 7, ">2\r\n$10\r\ninvalidate\r\n*1\r\n$7\r\ntracked\r\n");
	feed(&t, EG, 8, "*1\r\n$4\r\nPING\r\n");
	feed(&t, IN, 9, "+PONG\r\n");
	feed(&t, EG, 10, "*3\r\n$9\r\nSUBSCRIBE\r\n$2\r\nc1\r\n$2\r\nc2\r\n");
	feed(&t, IN, 11, ">3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:1\r\n>3\r\n$9\r\nsubscribe\r\n"
	                 "$2\r\nc2\r\n:2\r\n");
	feed(&t, IN, 12, ">3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$2\r\nm1\r\n");
	feed(&t, EG, 13, "*1\r\n$4\r\nPING\r\n");
	feed(&t, IN, 14, "+PONG\r\n");
	/* Subscribed, but RESP3: an array starting with "message" is a reply. */
	feed(&t, EG, 14, "*4\r\n$6\r\nLRANGE\r\n$1\r\nl\r\n$1\r\n0\r\n$2\r\n-1\r\n");
	feed(&t, IN, 14, "*3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$2\r\nm1\r\n");
	feed(&t, EG, 15, "*1\r\n$11\r\nUNSUBSCRIBE\r\n");
	feed(&t, IN, 16, ">3\r\n$11\r\nunsubscribe\r\n$2\r\nc1\r\n:1\r\n>3\r\n$11\r\nunsubscribe"
	                 "\r\n$2\r\nc2\r\n:0\r\n");
	/* An attribute in front of a reply does not make it two replies. */
	feed(&t, EG, 17, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
	feed(&t, IN, 18, "|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 10);
	for (size_t i = 0; i < 10; i++)
		ck_assert_str_eq(ended(&t, i)->name, names[i]);
	ck_assert_uint_eq(ended(&t, 5)->end_ns, 11);
	ck_assert_uint_eq(ended(&t, 8)->end_ns, 16);
	st = teardown(&t, 20);
	ck_assert_uint_eq(st.pushes, 2); /* invalidate + message */
	ck_assert_uint_eq(st.unmatched, 0);
}
END_TEST

START_TEST(test_monitor_reset)
{
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	struct redis_stats st;

	feed(&t, EG, 1, "*1\r\n$7\r\nMONITOR\r\n");
	feed(&t, IN, 2, "+OK\r\n");
	feed(&t, IN, 3, "+1795288824.188430 [0 127.0.0.1:52856] \"GET\" \"x\"\r\n");
	feed(&t, IN, 4, "+1795288824.198430 [0 127.0.0.1:52856] \"SET\" \"x\" \"y\"\r\n");
	feed(&t, EG, 5, "*1\r\n$5\r\nRESET\r\n");
	feed(&t, IN, 6, "+RESET\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_str_eq(ended(&t, 0)->name, "MONITOR");
	ck_assert_str_eq(ended(&t, 1)->name, "RESET");
	ck_assert_uint_eq(ended(&t, 1)->end_ns, 6);
	st = teardown(&t, 7);
	ck_assert_uint_eq(st.pushes, 2);
}
END_TEST

START_TEST(test_client_reply)
{
	/* Recorded: CLIENT REPLY SKIP, PING, PING -> one +PONG. */
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	struct redis_stats st;

	feed(&t, EG, 1, "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$4\r\nSKIP\r\n*1\r\n$4\r\nPING\r\n"
	                "*1\r\n$4\r\nPING\r\n");
	feed(&t, IN, 2, "+PONG\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(ended(&t, 0)->name, "PING");
	/* OFF: nothing answered until ON (which is). */
	feed(&t, EG, 3, "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n*2\r\n$3\r\nGET\r\n"
	                "$1\r\nk\r\n*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$2\r\nON\r\n"
	                "*1\r\n$4\r\nPING\r\n");
	feed(&t, IN, 4, "+OK\r\n+PONG\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 3);
	ck_assert_str_eq(ended(&t, 1)->name, "CLIENT");
	ck_assert_str_eq(ended(&t, 2)->name, "PING");
	st = teardown(&t, 5);
	ck_assert_uint_eq(st.noreply, 4);
	ck_assert_uint_eq(st.unmatched, 0);
}
END_TEST

/* ---- errors, namespace ------------------------------------------------------- */

START_TEST(test_error_reply)
{
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	const struct th_record *r;
	char b[128];

	feed(&t, EG, 1, "*2\r\n$3\r\nget\r\n$1\r\nl\r\n");
	feed(&t, IN, 2, "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	feed(&t, EG, 3, "*2\r\n$3\r\nfoo\r\n$3\r\nbar\r\n");
	feed(&t, IN, 4, "-ERR unknown command 'foo', with args beginning with: 'bar' \r\n");
	feed_n(&t, EG, 5, b, cmd(b, sizeof(b), "EVAL", "return redis.error_reply('My error!!')", "0",
	                         NULL));
	feed(&t, IN, 6, "-My error!!\r\n");
	feed(&t, EG, 7, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
	feed(&t, IN, 8, "!21\r\nSYNTAX invalid syntax\r\n");

	ck_assert_uint_eq(th_n_ended(t.h), 4);
	ck_assert_int_eq(ended(&t, 0)->status, SONDE_STATUS_ERROR);
	assert_str(ended(&t, 0), "error.type", "WRONGTYPE");
	ck_assert_str_eq(ended(&t, 0)->status_desc, "WRONGTYPE");
	ck_assert_str_eq(ended(&t, 1)->name, "UNKNOWN"); /* not a command, not a module's */
	assert_str(ended(&t, 1), "error.type", "ERR");
	ck_assert_str_eq(ended(&t, 2)->name, "EVAL");
	assert_str(ended(&t, 2), "error.type", "_OTHER"); /* not a code: no message text */
	assert_str(ended(&t, 3), "error.type", "SYNTAX");
	r = th_record(t.h, 0);
	ck_assert_str_eq(th_record_val(r, "error.type"), "WRONGTYPE");
	teardown(&t, 9);
}
END_TEST

START_TEST(test_select_namespace)
{
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);

	feed(&t, EG, 1, "*2\r\n$6\r\nselect\r\n$1\r\n3\r\n");
	feed(&t, IN, 2, "+OK\r\n");
	feed(&t, EG, 3, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
	feed(&t, IN, 4, "$-1\r\n");
	/* A failed SELECT changes nothing. */
	feed(&t, EG, 5, "*2\r\n$6\r\nSELECT\r\n$2\r\n99\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
	feed(&t, IN, 6, "-ERR DB index is out of range\r\n$-1\r\n");
	/* Pipelined: GET sent before SELECT's +OK still runs in the new db. */
	feed(&t, EG, 7, "*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
	feed(&t, IN, 8, "+OK\r\n$-1\r\n");
	/* SELECT inside MULTI: unknown after EXEC. */
	feed(&t, EG, 9, "*1\r\n$5\r\nMULTI\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n5\r\n*1\r\n$4\r\nEXEC"
	                "\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
	feed(&t, IN, 10, "+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n$-1\r\n");

	ck_assert_uint_eq(th_n_ended(t.h), 10);
	ck_assert_ptr_null(th_span_attr(ended(&t, 0), "db.namespace")); /* SELECT 3 itself */
	assert_str(ended(&t, 1), "db.namespace", "3");
	assert_str(ended(&t, 2), "db.namespace", "3"); /* SELECT 99 ran in db 3 */
	assert_str(ended(&t, 3), "db.namespace", "3");
	assert_str(ended(&t, 5), "db.namespace", "2");
	ck_assert_str_eq(ended(&t, 9)->name, "GET");
	ck_assert_ptr_null(th_span_attr(ended(&t, 9), "db.namespace"));
	ck_assert_str_eq(th_record_val(th_record(t.h, 1), "db.namespace"), "3");
	teardown(&t, 11);
}
END_TEST

/* ---- truncation, gaps, resync ------------------------------------------------- */

static char *big_set(size_t vlen, size_t *len)
{
	char *b = malloc(vlen + 128);
	int hl = sprintf(b, "*3\r\n$3\r\nSET\r\n$7\r\nbig:key\r\n$%zu\r\n", vlen);

	memset(b + hl, 'v', vlen);
	memcpy(b + hl + vlen, "\r\n", 2);
	*len = (size_t)hl + vlen + 2;
	return b;
}

START_TEST(test_truncated_set_then_get)
{
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	size_t len;
	char *b = big_set(1 << 20, &len);
	struct redis_stats st;

	/* 1 MiB write, 4 KiB captured. */
	feed_chunk(&t, EG, 1000, b, 4096, len, SONDE_CHUNK_TRUNCATED);
	ck_assert_uint_eq(th_n_open(t.h), 1);
	feed(&t, IN, 2000, "+OK\r\n");
	feed(&t, EG, 3000, "*2\r\n$3\r\nGET\r\n$7\r\nbig:key\r\n");
	/* The reply is truncated too, and split. */
	{
		char *r = malloc(len);
		int hl = sprintf(r, "$%d\r\n", 1 << 20);

		memset(r + hl, 'v', 1 << 20);
		memcpy(r + hl + (1 << 20), "\r\n", 2);
		feed_chunk(&t, IN, 4000, r, 4096, 16384, SONDE_CHUNK_TRUNCATED);
		ck_assert_uint_eq(th_n_ended(t.h), 1);
		feed_chunk(&t, IN, 5000, r + 16384, 4096, (size_t)hl + (1 << 20) + 2 - 16384,
		           SONDE_CHUNK_TRUNCATED);
		free(r);
	}
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_str_eq(ended(&t, 0)->name, "SET");
	ck_assert_uint_eq(ended(&t, 0)->end_ns, 2000);
	ck_assert_str_eq(ended(&t, 1)->name, "GET");
	ck_assert_uint_eq(ended(&t, 1)->end_ns, 5000);
	st = teardown(&t, 6000);
	ck_assert_uint_eq(st.sync_lost, 0);
	ck_assert_uint_eq(st.dropped, 0);
	free(b);
}
END_TEST

START_TEST(test_truncated_into_structure)
{
	/* SET big + GET in one write, cut inside the value: the GET is lost,
	 * so the FIFO is dropped and both directions wait for a clean start. */
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	size_t len;
	char *b = big_set(100000, &len);
	const char *get = "*2\r\n$3\r\nGET\r\n$1\r\nx\r\n";
	struct redis_stats st;

	feed_chunk(&t, EG, 1000, b, 4096, len + strlen(get), SONDE_CHUNK_TRUNCATED);
	ck_assert_uint_eq(th_n_open(t.h), 0);
	ck_assert_uint_eq(th_n_dropped(t.h), 1); /* the SET */
	/* Replies of the lost commands (older than anything queued): ignored. */
	feed(&t, IN, 2000, "+OK\r\n$1\r\nv\r\n");
	/* A chunk that starts mid-command is no place to resume. */
	feed(&t, EG, 2500, "$3\r\nGET\r\n$1\r\ny\r\n");
	ck_assert_uint_eq(th_n_spans(t.h), 1);
	/* A clean command is. */
	feed(&t, EG, 3000, "*2\r\n$3\r\nGET\r\n$1\r\ny\r\n");
	/* A reply read before that command was sent (delivered late, from
	 * another CPU) cannot be its answer. */
	feed(&t, IN, 2900, "$1\r\nv\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	feed(&t, IN, 3500, "$1\r\nw\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(ended(&t, 0)->name, "GET");
	ck_assert_uint_eq(ended(&t, 0)->start_ns, 3000);
	ck_assert_uint_eq(ended(&t, 0)->end_ns, 3500);
	st = teardown(&t, 4000);
	ck_assert_uint_eq(st.sync_lost, 1);
	ck_assert_uint_eq(st.dropped, 1);
	ck_assert_uint_eq(st.resyncs, 1); /* commands; replies had never been in sync */
	free(b);
}
END_TEST

START_TEST(test_gap_resync)
{
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	struct redis_stats st;
	const char *three = "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n"
	                    "*2\r\n$3\r\nGET\r\n$1\r\nc\r\n";

	feed(&t, EG, 100, three);
	feed(&t, IN, 200, "$1\r\n1\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	/* Reply bytes were lost: the other two commands cannot be matched. */
	feed_chunk(&t, IN, 300, "$1\r\n3\r\n", 7, 7, SONDE_CHUNK_GAP);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_uint_eq(th_n_dropped(t.h), 2);
	ck_assert_uint_eq(th_n_open(t.h), 0);
	/* The next command and its reply are matched again. */
	feed(&t, EG, 400, "*1\r\n$4\r\nPING\r\n");
	feed(&t, IN, 500, "+PONG\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_str_eq(ended(&t, 1)->name, "PING");

	/* Command bytes lost: the chunk after the gap starts mid-command. */
	feed(&t, EG, 600, "*2\r\n$3\r\nGET\r\n$1\r\nd\r\n");
	feed_chunk(&t, EG, 700, "\r\n*2\r\n$3\r\nGET\r\n$1\r\ne\r\n", 24, 24, SONDE_CHUNK_GAP);
	feed(&t, IN, 800, "$1\r\nd\r\n$1\r\ne\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	feed(&t, EG, 900, "*2\r\n$3\r\nGET\r\n$1\r\nf\r\n");
	feed(&t, IN, 1000, "$1\r\nf\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 3);
	ck_assert_uint_eq(ended(&t, 2)->start_ns, 900);

	/* A gap that lands on a clean command start resumes at once. */
	feed_chunk(&t, EG, 1100, "*1\r\n$4\r\nPING\r\n", 14, 14, SONDE_CHUNK_GAP);
	feed(&t, IN, 1200, "+PONG\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 4);
	st = teardown(&t, 2000);
	ck_assert_uint_eq(st.sync_lost, 3);
	ck_assert_uint_eq(st.dropped, 3);
}
END_TEST

START_TEST(test_garbage_then_resync)
{
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	struct redis_stats st;

	feed(&t, EG, 1, "*1\r\n$4\r\nPING\r\n");
	feed(&t, IN, 2, "+PONG\r\n");
	/* Not RESP in the reply direction. */
	feed(&t, EG, 3, "*1\r\n$4\r\nPING\r\n");
	ck_assert_int_eq(feed(&t, IN, 4, "\x01\x02garbage\r\n"), SONDE_OK);
	ck_assert_uint_eq(th_n_dropped(t.h), 1);
	feed(&t, EG, 5, "*1\r\n$4\r\nPING\r\n");
	feed(&t, IN, 6, "+PONG\r\n");
	/* Not RESP in the command direction (an array of integers). */
	feed(&t, EG, 7, "*1\r\n:1\r\n");
	feed(&t, IN, 8, "-ERR Protocol error: expected '$', got ':'\r\n");
	feed(&t, EG, 9, "*1\r\n$4\r\nPING\r\n");
	feed(&t, IN, 10, "+PONG\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 3);
	st = teardown(&t, 11);
	ck_assert_uint_eq(st.sync_lost, 2);
	ck_assert_uint_eq(st.unmatched, 0);
}
END_TEST

START_TEST(test_unsupported_gives_up)
{
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	struct redis_stats st;

	feed(&t, EG, 1, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
	ck_assert_int_eq(feed(&t, IN, 2, "$?\r\n;4\r\nHell\r\n;0\r\n"), SONDE_ERR_PROTO);
	ck_assert(th_conn_given_up(t.c));
	ck_assert_uint_eq(th_n_dropped(t.h), 1);
	st = teardown(&t, 3);
	ck_assert_uint_eq(st.dropped, 1);
}
END_TEST

START_TEST(test_not_redis_gives_up)
{
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	int rc = SONDE_OK;

	for (int i = 0; i < 1000 && rc == SONDE_OK; i++)
		rc = feed(&t, EG, (uint64_t)i, "GARBAGE / HTTP/1.1\r\n\r\n");
	ck_assert_int_eq(rc, SONDE_ERR_PROTO);
	ck_assert(th_conn_given_up(t.c));
	teardown(&t, 2000);
}
END_TEST

/* ---- bounds ------------------------------------------------------------------- */

START_TEST(test_overflow_keeps_alignment)
{
	/* 5000 commands outstanding, one per chunk; replies one per chunk.
	 * The oldest 904 are dropped at the FIFO bound, their replies skipped
	 * by count: every surviving span ends at its own reply. */
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	const int n = 5000, lost = 5000 - REDIS_MAX_PENDING;
	struct redis_stats st;

	for (int i = 0; i < n; i++)
		feed(&t, EG, 1000 + (uint64_t)i, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
	ck_assert_uint_eq(th_n_open(t.h), REDIS_MAX_PENDING);
	for (int i = 0; i < n; i++)
		feed(&t, IN, 1000000 + (uint64_t)i, "$1\r\nv\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), REDIS_MAX_PENDING);
	for (size_t i = 0; i < REDIS_MAX_PENDING; i++) {
		struct th_span *s = ended(&t, i);

		ck_assert_uint_eq(s->start_ns, 1000 + lost + i);
		ck_assert_uint_eq(s->end_ns - s->start_ns, 1000000 - 1000);
	}
	st = teardown(&t, 2000000);
	ck_assert_uint_eq(st.overflow, (uint64_t)lost);
	ck_assert_uint_eq(st.dropped, (uint64_t)lost);
	ck_assert_uint_eq(st.unmatched, 0);
	ck_assert_uint_eq(st.sync_lost, 0);
}
END_TEST

START_TEST(test_span_limit)
{
	/* The host refuses spans beyond 4 open (the core's limit is 1024, less
	 * than the FIFO's 4096): the refused ones are started late, at their
	 * reply, with the command's start time; matching is unaffected. */
	struct t t = setup(SONDE_ROLE_CLIENT, "true");
	char req[8 * 32];
	size_t rl = 0;
	struct redis_stats st;

	th_set_span_limit(t.h, 4);
	for (int i = 0; i < 8; i++)
		rl += cmd(req + rl, sizeof(req) - rl, "INCR", "n:1", NULL);
	feed_n(&t, EG, 1, req, rl);
	ck_assert_uint_eq(th_n_spans(t.h), 4);
	feed(&t, IN, 2, ":1\r\n:2\r\n:3\r\n:4\r\n");
	feed(&t, EG, 3, "*1\r\n$4\r\nPING\r\n");
	feed(&t, IN, 4, ":5\r\n:6\r\n:7\r\n:8\r\n+PONG\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 9);
	for (size_t i = 0; i < 8; i++) {
		struct th_span *s = ended(&t, i);

		ck_assert_str_eq(s->name, "INCR");
		ck_assert_uint_eq(s->start_ns, 1);
		ck_assert_uint_eq(s->end_ns, i < 4 ? 2 : 4);
		assert_str(s, "db.query.text", "INCR n:*");
		assert_str(s, "db.system.name", "redis");
	}
	ck_assert_str_eq(ended(&t, 8)->name, "PING");
	ck_assert_uint_eq(ended(&t, 8)->end_ns, 4);
	ck_assert_uint_eq(th_n_records(t.h), 9);

	/* Pending at close, with a span or refused one: all dropped. */
	feed_n(&t, EG, 5, req, rl);
	st = teardown(&t, 6);
	ck_assert_uint_eq(st.span_limit, 8);
	ck_assert_uint_eq(st.late_spans, 4);
	ck_assert_uint_eq(st.dropped, 8);
}
END_TEST

START_TEST(test_close_drops_pending)
{
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	struct redis_stats st;

	feed(&t, EG, 1, "*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n");
	ck_assert_uint_eq(th_n_open(t.h), 1);
	st = teardown(&t, 2); /* asserts nothing left open */
	ck_assert_uint_eq(st.dropped, 1);
}
END_TEST

/* ---- roles ---------------------------------------------------------------------- */

START_TEST(test_server_role)
{
	/* Watching redis-server: commands are read (ingress), replies written. */
	struct t t = setup(SONDE_ROLE_SERVER, NULL);
	struct th_span *s;

	feed(&t, IN, 10, "*3\r\n$3\r\nSET\r\n$9\r\nuser:1000\r\n$5\r\nhello\r\n");
	feed(&t, EG, 30, "+OK\r\n");
	feed(&t, IN, 40, "PING\r\n"); /* inline, as telnet sends it */
	feed(&t, EG, 50, "+PONG\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	s = ended(&t, 0);
	ck_assert_str_eq(s->name, "SET");
	ck_assert_int_eq(s->kind, SONDE_SPAN_SERVER);
	assert_str(s, "server.address", "127.0.0.1");
	assert_int(s, "server.port", 6379);
	assert_str(s, "network.peer.address", "127.0.0.2");
	assert_int(s, "network.peer.port", 40000);
	ck_assert_str_eq(ended(&t, 1)->name, "PING");
	/* Server spans carry no client metric. */
	ck_assert_uint_eq(th_n_records(t.h), 0);
	teardown(&t, 60);
}
END_TEST

START_TEST(test_unknown_role)
{
	struct t t = setup(SONDE_ROLE_UNKNOWN, NULL);

	/* Arrays of bulk strings flow out: this process is the client. */
	feed(&t, EG, 1, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
	feed(&t, IN, 2, "$1\r\nv\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_int_eq(ended(&t, 0)->kind, SONDE_SPAN_CLIENT);
	assert_str(ended(&t, 0), "server.address", "127.0.0.2");
	teardown(&t, 3);

	/* A reply flows out first: this process is the server. */
	t = setup(SONDE_ROLE_UNKNOWN, NULL);
	feed(&t, EG, 1, "+OK\r\n");
	feed(&t, IN, 2, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
	feed(&t, EG, 3, "$1\r\nv\r\n");
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_int_eq(ended(&t, 0)->kind, SONDE_SPAN_SERVER);
	assert_str(ended(&t, 0), "server.address", "127.0.0.1");
	ck_assert_uint_eq(teardown(&t, 4).unmatched, 0);
}
END_TEST

/* ---- detection ------------------------------------------------------------------- */

START_TEST(test_detect)
{
	struct th_host *h = th_new();
	struct sonde_conn_info cli, srv, unk;
	static const struct {
		const char *in;
		int dir;
		int role;
		int want;
	} v[] = {
		{ "*1\r\n$4\r\nPING\r\n", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_SURE },
		{ "*3\r\n$3\r\nSET\r\n", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_SURE },
		{ "*2\r\n$3\r\nGET\r\n", IN, SONDE_ROLE_SERVER, SONDE_DETECT_SURE },
		{ "*2\r\n$3\r\nGET\r\n", IN, SONDE_ROLE_UNKNOWN, SONDE_DETECT_SURE },
		{ "*", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NEED_MORE },
		{ "*12", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NEED_MORE },
		{ "*1\r", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NEED_MORE },
		{ "*1\r\n", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NEED_MORE },
		{ "*0\r\n$", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NO },
		{ "*99999999\r\n$", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NO },
		{ "*1\r\n:1\r\n", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NO },
		{ "PING\r\n", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_MAYBE },
		{ "ping\n", IN, SONDE_ROLE_SERVER, SONDE_DETECT_MAYBE },
		{ "SET k \"a b\"\r\n", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_MAYBE },
		{ "PI", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NEED_MORE },
		{ "GET / HTTP", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NEED_MORE },
		{ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NO },
		{ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", IN, SONDE_ROLE_SERVER, SONDE_DETECT_NO },
		{ "POST /api HTTP/1.1\r\n", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NO },
		{ "HELLO world\r\n", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_MAYBE },
		{ "HELO mail.example.com\r\n", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NO },
		{ "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", EG, SONDE_ROLE_CLIENT,
		  SONDE_DETECT_NO },
		{ "SSH-2.0-OpenSSH_9.2\r\n", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NO },
		{ "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NO },
		/* Reply direction: a reply seen first waits for a command. */
		{ "+OK\r\n", IN, SONDE_ROLE_CLIENT, SONDE_DETECT_NEED_MORE },
		{ "HTTP/1.1 200 OK\r\n", IN, SONDE_ROLE_CLIENT, SONDE_DETECT_NO },
		{ "*1\r\n$4\r\nPING\r\n", IN, SONDE_ROLE_CLIENT, SONDE_DETECT_NEED_MORE },
		{ "", EG, SONDE_ROLE_CLIENT, SONDE_DETECT_NEED_MORE },
	};

	ck_assert_int_eq(th_load(h, sonde_plugin_entry(), "redis"), SONDE_OK);
	th_conn_info_init(&cli, SONDE_ROLE_CLIENT);
	th_conn_info_init(&srv, SONDE_ROLE_SERVER);
	th_conn_info_init(&unk, SONDE_ROLE_UNKNOWN);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		const struct sonde_conn_info *ci = v[i].role == SONDE_ROLE_CLIENT   ? &cli
		                                   : v[i].role == SONDE_ROLE_SERVER ? &srv
		                                                                    : &unk;
		size_t len = strlen(v[i].in);
		int got;

		if (v[i].in[0] == '\x16')
			len = 11;
		got = th_detect(h, ci, v[i].dir, v[i].in, len);
		ck_assert_msg(got == v[i].want, "detect[%zu] '%s': %d, want %d", i, v[i].in, got,
		              v[i].want);
	}
	th_free(h);
}
END_TEST

/* ---- privacy ---------------------------------------------------------------------- */

static const char *const secrets[] = { "s3cr3t-value", "hunter2", "alice", "1000",
	                               "ab12cd34", "p4ss", "bar" };

static void send_sensitive(struct t *t)
{
	char b[512];

	feed_n(t, EG, 1, b, cmd(b, sizeof(b), "SET", "user:1000", "s3cr3t-value", NULL));
	feed(t, IN, 2, "+OK\r\n");
	feed_n(t, EG, 3, b, cmd(b, sizeof(b), "AUTH", "alice", "hunter2", NULL));
	feed(t, IN, 4, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
	feed_n(t, EG, 5, b, cmd(b, sizeof(b), "HELLO", "3", "AUTH", "alice", "p4ss", NULL));
	feed(t, IN, 6, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
	feed_n(t, EG, 7, b, cmd(b, sizeof(b), "GET", "session:ab12cd34", NULL));
	feed(t, IN, 8, "$-1\r\n");
	feed_n(t, EG, 9, b, cmd(b, sizeof(b), "foo", "bar", NULL));
	feed(t, IN, 10, "-ERR unknown command 'foo', with args beginning with: 'bar' \r\n");
	feed_n(t, EG, 11, b, cmd(b, sizeof(b), "hunter2", NULL)); /* a password typed as a command */
	feed(t, IN, 12, "-ERR unknown command 'hunter2', with args beginning with: \r\n");
	feed(t, EG, 13, "SET user:1000 s3cr3t-value\r\n");
	feed(t, IN, 14, "+OK\r\n");
}

static void assert_no_secret(const char *what, const char *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		ck_assert_msg(strstr(s, secrets[i]) == NULL, "%s '%s' contains '%s'", what, s,
		              secrets[i]);
}

static void assert_nothing_leaks(struct t *t)
{
	for (size_t i = 0; i < th_n_spans(t->h); i++) {
		struct th_span *s = th_span(t->h, i);

		assert_no_secret("span name", s->name);
		assert_no_secret("status", s->status_desc);
		for (size_t a = 0; a < s->n_attrs; a++)
			if (s->attrs[a].type == TH_ATTR_STR)
				assert_no_secret(s->attrs[a].key, s->attrs[a].s);
	}
	for (size_t r = 0; r < th_n_records(t->h); r++) {
		const struct th_record *rec = th_record(t->h, r);

		for (size_t k = 0; k < rec->m->n_keys; k++)
			assert_no_secret("metric attribute", rec->vals[k]);
	}
}

START_TEST(test_privacy_default)
{
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);

	send_sensitive(&t);
	ck_assert_uint_eq(th_n_ended(t.h), 7);
	assert_nothing_leaks(&t);
	for (size_t i = 0; i < 7; i++)
		ck_assert_ptr_null(th_span_attr(ended(&t, i), "db.query.text"));
	ck_assert_str_eq(ended(&t, 5)->name, "UNKNOWN"); /* "hunter2" is no command name */
	teardown(&t, 20);
}
END_TEST

START_TEST(test_privacy_query_text)
{
	struct t t = setup(SONDE_ROLE_CLIENT, "true");

	send_sensitive(&t);
	ck_assert_uint_eq(th_n_ended(t.h), 7);
	assert_nothing_leaks(&t);
	assert_str(ended(&t, 0), "db.query.text", "SET user:* ?");
	assert_str(ended(&t, 1), "db.query.text", "AUTH");
	assert_str(ended(&t, 2), "db.query.text", "HELLO");
	assert_str(ended(&t, 3), "db.query.text", "GET session:*");
	assert_str(ended(&t, 4), "db.query.text", "UNKNOWN ?");
	assert_str(ended(&t, 5), "db.query.text", "UNKNOWN");
	assert_str(ended(&t, 6), "db.query.text", "SET user:* ?"); /* inline */
	teardown(&t, 20);

	/* Any other value keeps it off. */
	t = setup(SONDE_ROLE_CLIENT, "no");
	send_sensitive(&t);
	ck_assert_ptr_null(th_span_attr(ended(&t, 0), "db.query.text"));
	teardown(&t, 20);
}
END_TEST

static void query_of(const char *out_want, int argc, const char **argv)
{
	char b[2048], q[REDIS_QUERY_MAX], name[REDIS_NAME_MAX];
	struct resp_stream s;
	struct resp_summary m;
	size_t off = (size_t)sprintf(b, "*%d\r\n", argc);
	int done;

	for (int i = 0; i < argc; i++)
		off += (size_t)sprintf(b + off, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
	resp_stream_init(&s, 1);
	ck_assert_int_eq(resp_stream_feed(&s, (uint8_t *)b, off, &m, &done), (ssize_t)off);
	ck_assert(done);
	redis_cmd_name(m.args[0].buf, m.args[0].len, name);
	redis_query_text(&m, name, redis_cmd_lookup(m.args[0].buf, m.args[0].len), q);
	ck_assert_msg(strcmp(q, out_want) == 0, "'%s', want '%s'", q, out_want);
}

START_TEST(test_query_text_rules)
{
	char longkey[200];

	query_of("SET user:* ?", 3, (const char *[]){ "set", "user:1000", "v" });
	query_of("GET user:*:profile", 2, (const char *[]){ "GET", "user:1000:profile" });
	query_of("GET cache", 2, (const char *[]){ "GET", "cache" });
	query_of("GET a:b_c:d-e", 2, (const char *[]){ "GET", "a:b_c:d-e" });
	query_of("GET *:*", 2, (const char *[]){ "GET", "{user}:1" });
	query_of("GET *", 2, (const char *[]){ "GET", "v2" });
	query_of("GET *", 2, (const char *[]){ "GET", "550e8400-e29b-41d4-a716-446655440000" });
	query_of("GET a::*", 2, (const char *[]){ "GET", "a::9" });
	query_of("GET *", 2, (const char *[]){ "GET", "" });
	query_of("MSET a:* ? ? ?", 5, (const char *[]){ "MSET", "a:1", "x", "b:2", "y" });
	query_of("CONFIG GET ?", 3, (const char *[]){ "config", "get", "maxmemory" });
	query_of("CLIENT ?", 2, (const char *[]){ "CLIENT", "x1" });
	query_of("EVAL ? ?", 3, (const char *[]){ "EVAL", "return 1", "0" });
	query_of("PING", 1, (const char *[]){ "PING" });
	query_of("MIGRATE", 3, (const char *[]){ "MIGRATE", "h", "AUTH" });
	query_of("FT.SEARCH ? ?", 3, (const char *[]){ "ft.search", "idx", "q" });
	query_of("UNKNOWN ?", 2, (const char *[]){ "x y", "z" });
	{
		const char *argv[40] = { "RPUSH", "list:9" };

		for (int i = 2; i < 40; i++)
			argv[i] = "e";
		query_of("RPUSH list:* ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ? ...", 40, argv);
	}
	/* A key longer than what is copied: its cut tail is never shown. */
	memset(longkey, 'a', sizeof(longkey));
	memcpy(longkey, "prefix:", 7);
	longkey[sizeof(longkey) - 1] = '\0';
	query_of("GET prefix:*", 2, (const char *[]){ "GET", longkey });
}
END_TEST

START_TEST(test_names_and_error_types)
{
	char out[REDIS_NAME_MAX], e[REDIS_ERRTYPE_MAX];
	static const char *const nv[][2] = {
		{ "get", "GET" },     { "zrangebyscore", "ZRANGEBYSCORE" }, { "FT.SEARCH", "FT.SEARCH" },
		{ "json.get", "JSON.GET" }, { "bf.add", "BF.ADD" },       { "x y", "UNKNOWN" },
		{ "1abc", "UNKNOWN" }, { "", "UNKNOWN" },                  { "foo", "UNKNOWN" },
		{ "hunter2", "UNKNOWN" }, { "ab1.x", "UNKNOWN" },         { "ft.", "UNKNOWN" },
		{ ".x", "UNKNOWN" },  { "ft.se arch", "UNKNOWN" },
		{ "averyverylongmodule.cmd", "UNKNOWN" },
		{ "a_b", "UNKNOWN" }, { "evalsha_ro", "EVALSHA_RO" },
	};
	static const char *const ev[][2] = {
		{ "ERR unknown command", "ERR" },  { "WRONGTYPE Operation", "WRONGTYPE" },
		{ "MOVED 3999 127.0.0.1:6381", "MOVED" }, { "NOSCRIPT", "NOSCRIPT" },
		{ "Error: lowercase", "_OTHER" },  { "", "_OTHER" },
		{ "ERR_X2 y", "ERR_X2" },          { "ERR:x y", "_OTHER" },
	};

	ck_assert_int_eq(redis_cmd_table_check(), 0);
	for (size_t i = 0; i < sizeof(nv) / sizeof(nv[0]); i++) {
		redis_cmd_name(nv[i][0], strlen(nv[i][0]), out);
		ck_assert_msg(strcmp(out, nv[i][1]) == 0, "%s -> %s", nv[i][0], out);
	}
	for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
		redis_error_type(ev[i][0], strlen(ev[i][0]), e);
		ck_assert_msg(strcmp(e, ev[i][1]) == 0, "%s -> %s", ev[i][0], e);
	}
	ck_assert_ptr_nonnull(redis_cmd_lookup("hgetall", 7));
	ck_assert_ptr_null(redis_cmd_lookup("hgetal", 6));
	ck_assert(redis_cmd_is_prefix("hgeta", 5));
	ck_assert(!redis_cmd_is_prefix("hgetx", 5));
}
END_TEST

/* ---- metrics ----------------------------------------------------------------------- */

START_TEST(test_metric_count_equals_span_count)
{
	struct t t = setup(SONDE_ROLE_CLIENT, NULL);
	char req[4096];
	size_t rl = 0;

	send_sensitive(&t);
	for (int i = 0; i < 10; i++)
		rl += cmd(req + rl, sizeof(req) - rl, "GET", "x", NULL);
	feed_n(&t, EG, 100, req, rl);
	feed(&t, IN, 101, "$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n");
	feed(&t, EG, 102, "*1\r\n$4\r\nPING\r\n"); /* never answered: dropped, no record */
	th_conn_close(t.c, 103);
	ck_assert_uint_eq(th_n_ended(t.h), 17);
	ck_assert_uint_eq(th_n_records(t.h), th_n_ended(t.h));
	for (size_t i = 0; i < th_n_records(t.h); i++) {
		const struct th_record *r = th_record(t.h, i);

		ck_assert_str_eq(r->m->name, "db.client.operation.duration");
		ck_assert_ptr_eq(r->span, ended(&t, i));
		ck_assert_str_eq(th_record_val(r, "db.system.name"), "redis");
		ck_assert_str_eq(th_record_val(r, "server.address"), "10.0.0.7");
	}
	ck_assert_uint_eq(th_n_dropped(t.h), 1);
	teardown(&t, 104);
}
END_TEST

/* ---- SDK 1.1 ------------------------------------------------------------------ */


static void feed_pos(struct t *t, enum sonde_dir dir, uint64_t ts, uint64_t pos, const void *p,
                     size_t len, size_t orig, uint8_t source)
{
	struct sonde_chunk ch = { 0 };

	ch.dir = dir;
	ch.ts_unix_ns = ts;
	ch.data = p;
	ch.len = len;
	ch.orig_len = orig;
	ch.pos = pos;
	ch.source = source;
	if (!p)
		ch.flags = SONDE_CHUNK_SKIPPED | SONDE_CHUNK_TRUNCATED;
	else if (orig > len)
		ch.flags = SONDE_CHUNK_TRUNCATED;
	ck_assert_int_eq(th_conn_feed_chunk(t->c, &ch), SONDE_OK);
}

/* SET of a 1 MB value written in pieces: after the piece holding the
 * value's start, no payload is needed up to its CRLF (skip_to); the pieces
 * the kernel skips are counted through, the next command is followed. TLS
 * chunks and a 1.0 host ask nothing. */
START_TEST(v11_skip_big_value)
{
	static char w1[8192];
	const size_t big = 1000000;
	const uint64_t p0 = 50;

	for (int mode = 0; mode < 3; mode++) { /* 0: 1.1, 1: TLS chunks, 2: 1.0 host */
		struct t t = setup(SONDE_ROLE_CLIENT, NULL);
		struct sonde_capture_policy p;
		int hl;
		uint64_t end, off;
		char get[64];

		if (mode == 2) {
			th_free(t.h);
			t.h = th_new();
			/* the real host's table cut to its 1.0 size */
			ck_assert_int_eq(th_load_minor(t.h, sonde_plugin_entry(), "redis", 0),
			                 SONDE_OK);
			{
				struct sonde_conn_info ci;
				th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
				t.c = th_conn_open(t.h, &ci);
			}
		}
		hl = snprintf(w1, sizeof(w1), "*3\r\n$3\r\nSET\r\n$5\r\nphoto\r\n$%zu\r\n", big);
		memset(w1 + hl, 'v', sizeof(w1) - (size_t)hl);
		end = p0 + (uint64_t)hl + big; /* the CRLF follows */
		feed_pos(&t, EG, 1000, p0, w1, sizeof(w1), sizeof(w1), mode == 1 ? SONDE_SRC_TLS : 0);
		if (mode) {
			ck_assert_int_eq(th_conn_capture(t.c, &p), 0);
		} else {
			ck_assert_int_eq(th_conn_capture(t.c, &p), 1);
			ck_assert_uint_eq(p.skip_to[EG], end);
			ck_assert_uint_eq(p.skip_to[IN], 0);
		}
		for (off = p0 + sizeof(w1); off + 100000 <= end; off += 100000)
			feed_pos(&t, EG, 1100, off, NULL, 0, 100000, mode == 1 ? SONDE_SRC_TLS : 0);
		feed_pos(&t, EG, 1200, off, NULL, 0, end - off, mode == 1 ? SONDE_SRC_TLS : 0);
		feed_pos(&t, EG, 1300, end, "\r\n", 2, 2, mode == 1 ? SONDE_SRC_TLS : 0);
		feed(&t, IN, 2000, "+OK\r\n");
		ck_assert_uint_eq(th_n_ended(t.h), 1);
		ck_assert_str_eq(ended(&t, 0)->name, "SET");
		ck_assert_uint_eq(ended(&t, 0)->end_ns, 2000);
		cmd(get, sizeof(get), "GET", "photo", NULL);
		feed_pos(&t, EG, 3000, end + 2, get, strlen(get), strlen(get), 0);
		feed(&t, IN, 4000, "$1\r\nx\r\n");
		ck_assert_uint_eq(th_n_ended(t.h), 2);
		ck_assert_str_eq(ended(&t, 1)->name, "GET");
		ck_assert_uint_eq(teardown(&t, 5000).sync_lost, 0);
	}
}
END_TEST

/* ---- same-host links: both ends of a connection watched by one host ---- */

/* The client 127.0.0.2:cport and the server 127.0.0.1:6379 of one
 * connection, in one host (v10: a 1.0 host, which has no span_set_pos). */
static struct th_host *pair(uint16_t cport, int v10, struct th_conn **cl, struct th_conn **sv)
{
	struct th_host *h = th_new();

	ck_assert_int_eq(th_load_minor(h, sonde_plugin_entry(), "redis", v10 ? 0 : SONDE_ABI_MINOR),
	                 SONDE_OK);
	th_conn_pair(h, cport, 6379, cl, sv);
	ck_assert_ptr_nonnull(*cl);
	ck_assert_ptr_nonnull(*sv);
	return h;
}

/* The nth server span named name is the child of the nth client one. */
static void assert_linked(struct th_host *h, const char *name, size_t nth)
{
	struct th_span *c = th_span_find(h, name, SONDE_SPAN_CLIENT, nth);
	struct th_span *s = th_span_find(h, name, SONDE_SPAN_SERVER, nth);

	ck_assert_msg(c && s, "no client/server pair for %s #%zu", name, nth);
	ck_assert_msg(th_span_child_of(s, c), "server %s #%zu: parent %s, want %s", name, nth,
	              s->parent_span_id, c->span_id);
}

static void assert_no_server_parent(struct th_host *h)
{
	for (size_t i = 0; i < th_n_spans(h); i++) {
		struct th_span *s = th_span(h, i);

		if (s->kind == SONDE_SPAN_SERVER)
			ck_assert_str_eq(s->parent_span_id, "");
	}
}

static void close_pair(struct th_host *h, struct th_conn *cl, struct th_conn *sv, uint64_t ts)
{
	th_conn_close(cl, ts);
	th_conn_close(sv, ts);
	/* Server spans still held for a client span that will not come leave
	 * when the wait runs out (links.c). */
	th_run_timers(h, ts + 3000000000ULL);
	ck_assert_uint_eq(th_n_open(h), 0);
	ck_assert_uint_eq(th_misuse(h), 0);
	th_free(h);
}

/* One command at a time on a kept connection, both orders of arrival (the
 * server's read is often recorded before the client's write returns). */
START_TEST(same_host_link_keepalive)
{
	static const char *const cmds[] = { "*2\r\n$3\r\nGET\r\n$1\r\na\r\n",
		                            "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n" };
	static const char *const reps[] = { "$-1\r\n", "+OK\r\n" };
	int server_first = _i;
	struct th_conn *cl, *sv;
	struct th_host *h = pair(40000, 0, &cl, &sv);

	for (int k = 0; k < 2; k++) {
		uint64_t t = 100 + 100 * (uint64_t)k;

		if (server_first) {
			th_conn_feed(sv, IN, t + 1, cmds[k], strlen(cmds[k]));
			th_conn_feed(cl, EG, t, cmds[k], strlen(cmds[k]));
		} else {
			th_conn_feed(cl, EG, t, cmds[k], strlen(cmds[k]));
			th_conn_feed(sv, IN, t + 1, cmds[k], strlen(cmds[k]));
		}
		th_conn_feed(sv, EG, t + 2, reps[k], strlen(reps[k]));
		th_conn_feed(cl, IN, t + 3, reps[k], strlen(reps[k]));
	}
	ck_assert_uint_eq(th_n_ended(h), 4);
	assert_linked(h, "GET", 0);
	assert_linked(h, "SET", 0);
	ck_assert_str_ne(th_span_find(h, "GET", SONDE_SPAN_CLIENT, 0)->trace_id,
	                 th_span_find(h, "SET", SONDE_SPAN_CLIENT, 0)->trace_id);
	ck_assert_uint_eq(th_n_links(h), 2);
	close_pair(h, cl, sv, 500);
}
END_TEST

/* The server reads, answers and ends its span before the client's write
 * is recorded (the client thread was held up between handing the bytes to
 * the kernel and its syscall's return): the ended server span is held and
 * still becomes the child of the client span when that comes. */
START_TEST(same_host_link_server_ends_first)
{
	const char get[] = "*2\r\n$3\r\nGET\r\n$1\r\na\r\n";
	struct th_conn *cl, *sv;
	struct th_host *h = pair(40010, 0, &cl, &sv);

	th_conn_feed(sv, IN, 101, get, strlen(get));
	th_conn_feed(sv, EG, 102, "$-1\r\n", 5);
	ck_assert_uint_eq(th_n_ended(h), 0); /* held, not sent */
	th_conn_feed(cl, EG, 100, get, strlen(get));
	th_conn_feed(cl, IN, 103, "$-1\r\n", 5);
	ck_assert_uint_eq(th_n_ended(h), 2);
	assert_linked(h, "GET", 0);
	ck_assert_uint_eq(th_n_links(h), 1);
	close_pair(h, cl, sv, 500);
}
END_TEST

/* A held server span whose client span never comes goes out unlinked: after
 * 50 ms of later records, or after 1 s of clock time with no records. */
START_TEST(same_host_link_wait_runs_out)
{
	const char get[] = "*2\r\n$3\r\nGET\r\n$1\r\na\r\n";
	const uint64_t ms = 1000000, t0 = 1000 * ms;
	int by_records = _i;
	struct th_conn *cl, *sv;
	struct th_host *h = pair(40011, 0, &cl, &sv);

	th_conn_feed(sv, IN, t0, get, strlen(get));
	th_conn_feed(sv, EG, t0 + 1, "$-1\r\n", 5);
	th_run_timers(h, t0 + 500 * ms);
	ck_assert_uint_eq(th_n_ended(h), 0); /* still waiting */
	if (by_records) {
		/* The client's next command, 60 ms later: its first one was
		 * never recorded (lost). */
		th_conn_feed_lossy(cl, EG, t0 + 60 * ms, strlen(get), get, strlen(get), strlen(get));
		th_run_timers(h, t0 + 600 * ms);
	} else {
		th_run_timers(h, t0 + 1100 * ms);
	}
	ck_assert_uint_ge(th_n_ended(h), 1);
	ck_assert_str_eq(th_span_find(h, "GET", SONDE_SPAN_SERVER, 0)->parent_span_id, "");
	ck_assert_uint_eq(th_n_links(h), 0);
	th_conn_close(cl, t0 + 2000 * ms);
	th_conn_close(sv, t0 + 2000 * ms);
	ck_assert_uint_eq(th_misuse(h), 0);
	th_free(h);
}
END_TEST

/* Four commands in one write (an inline one after an empty line among
 * them); one end reads or writes them cut at any byte, and its chunk comes
 * first: every server span finds its own client span. */
#define PIPE "*2\r\n$3\r\nGET\r\n$1\r\na\r\n" "\r\nPING\r\n" \
	     "*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n1\r\n" "INCR c\r\n"
#define PIPE_REPLIES "$-1\r\n+PONG\r\n+OK\r\n:1\r\n"

START_TEST(same_host_link_pipelined_any_split)
{
	const char p[] = PIPE, r[] = PIPE_REPLIES;
	size_t n = strlen(p), cut = (size_t)_i % (n + 1);
	int client_cut = _i > (int)n;
	struct th_conn *cl, *sv;
	struct th_host *h = pair(40001, 0, &cl, &sv);
	struct th_conn *cut_end = client_cut ? cl : sv, *whole = client_cut ? sv : cl;
	enum sonde_dir cut_dir = client_cut ? EG : IN;

	if (cut)
		th_conn_feed(cut_end, cut_dir, 101, p, cut);
	th_conn_feed(whole, client_cut ? IN : EG, 100, p, n);
	if (cut < n)
		th_conn_feed(cut_end, cut_dir, 102, p + cut, n - cut);
	th_conn_feed(sv, EG, 103, r, strlen(r));
	th_conn_feed(cl, IN, 104, r, strlen(r));
	ck_assert_uint_eq(th_n_ended(h), 8);
	assert_linked(h, "GET", 0);
	assert_linked(h, "PING", 0);
	assert_linked(h, "SET", 0);
	assert_linked(h, "INCR", 0);
	ck_assert_uint_eq(th_n_links(h), 4);
	close_pair(h, cl, sv, 500);
}
END_TEST

/* A 1 MiB SET captured in part on both ends (4 KiB of each write), read by
 * the server in other pieces than the client wrote: positions count the
 * bytes not captured, so the GET after it links too. */
START_TEST(same_host_link_truncated_value)
{
	size_t len, hl;
	char *b = big_set(1 << 20, &len);
	const char get[] = "*2\r\n$3\r\nGET\r\n$1\r\na\r\n";
	struct th_conn *cl, *sv;
	struct th_host *h = pair(40002, 0, &cl, &sv);

	hl = strlen("*3\r\n$3\r\nSET\r\n$7\r\nbig:key\r\n$1048576\r\n");
	th_conn_feed_lossy(cl, EG, 100, 0, b, 4096, len);
	for (size_t off = 0; off < len; off += 65536) {
		size_t orig = len - off < 65536 ? len - off : 65536;

		th_conn_feed_lossy(sv, IN, 101 + off, 0, b + off, orig < 4096 ? orig : 4096, orig);
	}
	ck_assert_uint_gt(len, hl);
	th_conn_feed(sv, EG, 2000000, "+OK\r\n", 5);
	th_conn_feed(cl, IN, 2000001, "+OK\r\n", 5);
	th_conn_feed(sv, IN, 2000002, get, strlen(get));
	th_conn_feed(cl, EG, 2000003, get, strlen(get));
	th_conn_feed(sv, EG, 2000004, "$-1\r\n", 5);
	th_conn_feed(cl, IN, 2000005, "$-1\r\n", 5);
	ck_assert_uint_eq(th_n_ended(h), 4);
	assert_linked(h, "SET", 0);
	assert_linked(h, "GET", 0);
	ck_assert_uint_eq(th_n_links(h), 2);
	close_pair(h, cl, sv, 3000000);
	free(b);
}
END_TEST

/* A span the host refused at the command (its limit of open spans) starts
 * late, at the reply, and still carries the command's position: it links
 * when the other end's span is open then. (A late span starts and ends at
 * once, so two late ends never meet: no link, and no wrong one.) */
START_TEST(same_host_link_late_spans)
{
	char req[3 * 32];
	size_t rl = 0, r2;
	struct th_conn *cl, *sv;
	struct th_host *h = pair(40003, 0, &cl, &sv);

	th_set_span_limit(h, 2);
	rl += cmd(req + rl, sizeof(req) - rl, "INCR", "n", NULL);
	rl += cmd(req + rl, sizeof(req) - rl, "INCR", "n", NULL);
	r2 = rl;
	rl += cmd(req + rl, sizeof(req) - rl, "INCR", "n", NULL);
	th_conn_feed(cl, EG, 1, req, rl);         /* the third one is refused */
	ck_assert_uint_eq(th_n_spans(h), 2);
	th_conn_feed(sv, IN, 2, req, r2);
	th_conn_feed(sv, EG, 3, ":1\r\n:2\r\n", 8);
	th_conn_feed(sv, IN, 4, req + r2, rl - r2); /* a span at once */
	th_conn_feed(cl, IN, 5, ":1\r\n:2\r\n:3\r\n", 12); /* the late one */
	th_conn_feed(sv, EG, 6, ":3\r\n", 4);
	ck_assert_uint_eq(th_n_ended(h), 6);
	ck_assert_uint_eq(th_span_find(h, "INCR", SONDE_SPAN_CLIENT, 2)->start_ns, 1);
	for (size_t i = 0; i < 3; i++)
		assert_linked(h, "INCR", i);
	ck_assert_uint_eq(th_n_links(h), 3);
	close_pair(h, cl, sv, 7);
}
END_TEST

/* What must not link: another client port, a connection found mid-stream,
 * a command after the server end lost bytes (its place is found again by
 * a guess), bytes that were not RESP on both ends, and a 1.0 host. */
START_TEST(same_host_no_false_link)
{
	const char a[] = "*2\r\n$3\r\nGET\r\n$1\r\na\r\n", bb[] = "*2\r\n$3\r\nGET\r\n$1\r\nb\r\n";
	struct th_conn *cl, *sv, *other, *mid;
	struct th_host *h;
	struct sonde_conn_info ci;

	/* Other port, mid-stream. */
	h = pair(40004, 0, &cl, &sv);
	th_conn_info_init(&ci, SONDE_ROLE_SERVER);
	ci.local_port = 6379;
	ci.peer_port = 40005;
	other = th_conn_open(h, &ci);
	ci.peer_port = 40004;
	ci.flags = SONDE_CONN_MIDSTREAM;
	mid = th_conn_open(h, &ci);
	th_conn_feed(cl, EG, 100, a, strlen(a));
	th_conn_feed(other, IN, 101, a, strlen(a));
	th_conn_feed(mid, IN, 102, a, strlen(a));
	ck_assert_uint_eq(th_n_links(h), 0);
	assert_no_server_parent(h);
	th_conn_close(other, 200);
	th_conn_close(mid, 200);
	close_pair(h, cl, sv, 200);

	/* The server end lost bytes before the second command: it finds its
	 * place again at a chunk that looks like a command, a guess. */
	h = pair(40006, 0, &cl, &sv);
	th_conn_feed(cl, EG, 100, a, strlen(a));
	th_conn_feed(sv, IN, 101, a, strlen(a));
	th_conn_feed(sv, EG, 102, "$-1\r\n", 5);
	th_conn_feed(cl, IN, 103, "$-1\r\n", 5);
	th_conn_feed(cl, EG, 104, "*1\r\n$4\r\nPING\r\n", 14);
	th_conn_feed(cl, EG, 105, bb, strlen(bb));
	th_conn_feed_lossy(sv, IN, 106, 14, bb, strlen(bb), strlen(bb));
	th_conn_feed(sv, EG, 107, "+PONG\r\n$-1\r\n", 12);
	th_conn_feed(cl, IN, 108, "+PONG\r\n$-1\r\n", 12);
	ck_assert_uint_eq(th_n_links(h), 1);
	assert_linked(h, "GET", 0);
	ck_assert_str_eq(th_span_find(h, "GET", SONDE_SPAN_SERVER, 1)->parent_span_id, "");
	close_pair(h, cl, sv, 200);

	/* Not RESP on both ends: both lose their place, both guess it again. */
	h = pair(40007, 0, &cl, &sv);
	th_conn_feed(cl, EG, 100, "*1\r\n$4\r\nPING\r\n*1\r\nx\r\n", 21);
	th_conn_feed(sv, IN, 101, "*1\r\n$4\r\nPING\r\n*1\r\nx\r\n", 21);
	th_conn_feed(cl, EG, 102, a, strlen(a));
	th_conn_feed(sv, IN, 103, a, strlen(a));
	th_conn_feed(sv, EG, 104, "$-1\r\n", 5);
	th_conn_feed(cl, IN, 105, "$-1\r\n", 5);
	ck_assert_ptr_nonnull(th_span_find(h, "GET", SONDE_SPAN_SERVER, 0));
	ck_assert_ptr_nonnull(th_span_find(h, "GET", SONDE_SPAN_CLIENT, 0));
	ck_assert_uint_eq(th_n_links(h), 0);
	assert_no_server_parent(h);
	close_pair(h, cl, sv, 200);

	/* A 1.0 host: no span_set_pos, no link, the same spans. */
	h = pair(40008, 1, &cl, &sv);
	th_conn_feed(cl, EG, 100, a, strlen(a));
	th_conn_feed(sv, IN, 101, a, strlen(a));
	th_conn_feed(sv, EG, 102, "$-1\r\n", 5);
	th_conn_feed(cl, IN, 103, "$-1\r\n", 5);
	ck_assert_uint_eq(th_n_ended(h), 2);
	ck_assert_uint_eq(th_n_links(h), 0);
	assert_no_server_parent(h);
	close_pair(h, cl, sv, 200);
}
END_TEST

static Suite *redis_suite(void)
{
	Suite *s = suite_create("redis_plugin");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_get_client_span);
	tcase_add_test(tc, test_pipeline_16);
	tcase_add_test(tc, test_pipeline_byte_by_byte);
	tcase_add_test(tc, test_multi_exec);
	tcase_add_test(tc, test_subscribe_resp2);
	tcase_add_test(tc, test_subscribe_mixed_unsubscribe);
	tcase_add_test(tc, test_resp3_pushes);
	tcase_add_test(tc, test_monitor_reset);
	tcase_add_test(tc, test_client_reply);
	tcase_add_test(tc, test_error_reply);
	tcase_add_test(tc, test_select_namespace);
	tcase_add_test(tc, test_truncated_set_then_get);
	tcase_add_test(tc, test_truncated_into_structure);
	tcase_add_test(tc, test_gap_resync);
	tcase_add_test(tc, test_garbage_then_resync);
	tcase_add_test(tc, test_unsupported_gives_up);
	tcase_add_test(tc, test_not_redis_gives_up);
	tcase_add_test(tc, test_overflow_keeps_alignment);
	tcase_add_test(tc, test_span_limit);
	tcase_add_test(tc, test_close_drops_pending);
	tcase_add_test(tc, test_server_role);
	tcase_add_test(tc, test_unknown_role);
	tcase_add_test(tc, test_detect);
	tcase_add_test(tc, test_privacy_default);
	tcase_add_test(tc, test_privacy_query_text);
	tcase_add_test(tc, test_query_text_rules);
	tcase_add_test(tc, test_names_and_error_types);
	tcase_add_test(tc, test_metric_count_equals_span_count);
	tcase_add_test(tc, v11_skip_big_value);
	tcase_add_loop_test(tc, same_host_link_keepalive, 0, 2);
	tcase_add_test(tc, same_host_link_server_ends_first);
	tcase_add_loop_test(tc, same_host_link_wait_runs_out, 0, 2);
	tcase_add_loop_test(tc, same_host_link_pipelined_any_split, 0, 2 * (int)(strlen(PIPE) + 1));
	tcase_add_test(tc, same_host_link_truncated_value);
	tcase_add_test(tc, same_host_link_late_spans);
	tcase_add_test(tc, same_host_no_false_link);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(redis_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
