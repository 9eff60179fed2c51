/*
 * kafka_plugin_test.c - the Kafka plugin (plugins/kafka) driven through its
 * descriptor by the test host (tests/support/testhost.h, the real host), chunk by chunk,
 * the way the agent drives it.
 *
 * The one idea: two kinds of byte vectors. Recorded connections (kcat 1.7.1
 * and librdkafka 2.0.2's mock broker, one chunk per system call, made by
 * tests/live/kafka_peers/strace2corpus.py; they are also the fuzz seeds in
 * tests/fuzz/corpus/kafka/) give spans that are checked against what kcat
 * itself logged (-d protocol: every ProduceRequest and FetchResponse with
 * its correlation id). Frames built from the protocol schemas
 * (kafka_build.h) cover the versions, errors and losses a recording cannot.
 * Counters that do not show up as spans are read from kafka_debug_totals().
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include <time.h>

#include "testhost.h"
#include "kafka_build.h"
#include "kafka_internal.h"
#include "kafka_stream.h"

const struct sonde_plugin *sonde_plugin_entry(void);

#define EG SONDE_DIR_EGRESS
#define IN SONDE_DIR_INGRESS

#ifndef KAFKA_CORPUS_DIR
#error "KAFKA_CORPUS_DIR must point to tests/fuzz/corpus/kafka"
#endif

/* ---- helpers ------------------------------------------------------------ */

struct t {
	struct th_host *h;
	struct th_conn *c;
};

static struct t setup_cfg(enum sonde_role role, const char *key, const char *val)
{
	struct t t;
	struct sonde_conn_info ci;

	t.h = th_new();
	if (key) {
		const char *v[] = { val };

		th_set_config(t.h, NULL, key, v, 1);
	}
	ck_assert_int_eq(th_load(t.h, sonde_plugin_entry(), "kafka"), SONDE_OK);
	th_conn_info_init(&ci, role);
	ci.local_port = 9092;
	ci.peer_port = 51000;
	snprintf(ci.peer_addr, sizeof(ci.peer_addr), "127.0.0.9");
	if (role == SONDE_ROLE_CLIENT) {
		ci.local_port = 51000;
		ci.peer_port = 9092;
	}
	t.c = th_conn_open(t.h, &ci);
	ck_assert_ptr_nonnull(t.c);
	return t;
}

static struct t setup(enum sonde_role role)
{
	return setup_cfg(role, NULL, NULL);
}

static void done(struct t *t)
{
	th_conn_close(t->c, 999999);
	ck_assert_uint_eq(th_n_open(t->h), 0);
	ck_assert_uint_eq(th_misuse(t->h), 0);
	th_free(t->h);
}

static void feed(struct t *t, enum sonde_dir d, uint64_t ts, const struct kb *k)
{
	ck_assert_int_eq(th_conn_feed(t->c, d, ts, k->b, k->n), SONDE_OK);
}

static void feed_chunk(struct t *t, enum sonde_dir d, uint64_t ts, const void *p, size_t len,
                       size_t orig, uint32_t flags)
{
	struct sonde_chunk ch = { 0 };

	ch.dir = d;
	ch.ts_unix_ns = ts;
	ch.data = p;
	ch.len = len;
	ch.orig_len = orig;
	ch.flags = flags | (orig > len ? SONDE_CHUNK_TRUNCATED : 0);
	ch.tid = 3;
	th_conn_feed_chunk(t->c, &ch);
}

/* Points of one metric: the duration histogram's, or a counter's (SDK 1.1
 * counters are recorded by the host like histogram values). */
static size_t n_points(struct th_host *h, const char *metric)
{
	size_t n = 0;

	for (size_t i = 0; i < th_n_records(h); i++)
		n += !strcmp(th_record(h, i)->m->name, metric);
	return n;
}

static const struct th_record *point(struct th_host *h, const char *metric, size_t k)
{
	for (size_t i = 0; i < th_n_records(h); i++)
		if (!strcmp(th_record(h, i)->m->name, metric) && k-- == 0)
			return th_record(h, i);
	return NULL;
}

/* Sum of a counter's points whose `key` is `val` (key NULL: all). */
static double counted(struct th_host *h, const char *metric, const char *key, const char *val)
{
	double sum = 0;

	for (size_t i = 0; i < th_n_records(h); i++) {
		const struct th_record *r = th_record(h, i);
		const char *v = key ? th_record_val(r, key) : NULL;

		if (!strcmp(r->m->name, metric) && (!key || (val ? v && !strcmp(v, val) : !v)))
			sum += r->value;
	}
	return sum;
}

#define DURATION "messaging.client.operation.duration"

static const char *sattr(const struct th_span *s, const char *k)
{
	return th_span_str(s, k);
}

static int64_t iattr(const struct th_span *s, const char *k)
{
	int64_t v = -12345;

	th_span_int(s, k, &v);
	return v;
}

/* A recorded connection (fuzz corpus format). */
struct recording {
	uint8_t *buf;
	size_t n;
};

static struct recording load(const char *name)
{
	char path[512];
	struct recording r = { 0 };
	FILE *f;
	long sz;

	snprintf(path, sizeof(path), "%s/%s", KAFKA_CORPUS_DIR, name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	r.buf = malloc((size_t)sz);
	r.n = fread(r.buf, 1, (size_t)sz, f);
	fclose(f);
	ck_assert_uint_eq(r.n, (size_t)sz);
	return r;
}

/* Replay: every chunk, optionally cut in two at `cut` bytes (0: whole) or
 * into single bytes (cut == SIZE_MAX), from chunk `first` on. */
static void replay(struct t *t, const struct recording *r, size_t cut, size_t first)
{
	size_t off = 1, i = 0;
	uint64_t ts = 1000;

	while (off + 3 <= r->n) {
		enum sonde_dir d = (r->buf[off] & 1) ? EG : IN;
		size_t len = ((size_t)r->buf[off + 1] << 8) | r->buf[off + 2];
		const uint8_t *p = r->buf + off + 3;

		off += 3 + len;
		ts += 1000;
		if (i++ < first)
			continue;
		if (cut == SIZE_MAX) {
			for (size_t j = 0; j < len; j++)
				th_conn_feed(t->c, d, ts, p + j, 1);
		} else if (cut && cut < len) {
			th_conn_feed(t->c, d, ts, p, cut);
			th_conn_feed(t->c, d, ts, p + cut, len - cut);
		} else {
			th_conn_feed(t->c, d, ts, p, len);
		}
	}
}

/* Everything a span says, in one string, to compare runs. */
static void span_text(const struct th_span *s, char *buf, size_t size)
{
	size_t off = (size_t)snprintf(buf, size, "%s|%d|%d|%llu-%llu", s->name, s->kind, s->status,
	                              (unsigned long long)s->start_ns,
	                              (unsigned long long)s->end_ns);

	for (size_t i = 0; i < s->n_attrs && off < size; i++) {
		const struct th_attr *a = &s->attrs[i];

		if (a->type == TH_ATTR_STR)
			off += (size_t)snprintf(buf + off, size - off, "|%s=%s", a->key, a->s);
		else
			off += (size_t)snprintf(buf + off, size - off, "|%s=%lld", a->key, (long long)a->i);
	}
}

static char *all_spans(struct th_host *h)
{
	size_t n = th_n_ended(h), off = 0;
	char *out = calloc(n + 1, 2048);

	for (size_t i = 0; i < n; i++) {
		span_text(th_ended(h, i), out + off, 2046);
		off += strlen(out + off);
		out[off++] = '\n';
	}
	return out;
}

/* ---- recorded connections ------------------------------------------------------ */

/* kcat -P -t orders -X linger.ms=20 -X batch.num.messages=7, 20 messages,
 * the broker answering the first two ProduceRequests with
 * NOT_LEADER_OR_FOLLOWER (-e 0:2:6). kcat logged: ProduceRequest v7 CorrId
 * 4, 5, 6, 7, 8; all answered. */
START_TEST(test_rec_kcat_produce)
{
	struct recording r = load("rec-kcat-produce-1");
	struct t t = setup(SONDE_ROLE_CLIENT);
	static const int64_t counts[] = { 7, 7, 7, 7, 6 };

	replay(&t, &r, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 5);
	for (size_t i = 0; i < 5; i++) {
		const struct th_span *s = th_ended(t.h, i);

		ck_assert_str_eq(s->name, "send orders");
		ck_assert_int_eq(s->kind, SONDE_SPAN_PRODUCER);
		ck_assert_str_eq(sattr(s, "messaging.system"), "kafka");
		ck_assert_str_eq(sattr(s, "messaging.operation.name"), "send");
		ck_assert_str_eq(sattr(s, "messaging.operation.type"), "send");
		ck_assert_str_eq(sattr(s, "messaging.destination.name"), "orders");
		ck_assert_str_eq(sattr(s, "messaging.destination.partition.id"), "0");
		ck_assert_str_eq(sattr(s, "messaging.client.id"), "rdkafka");
		ck_assert_int_eq(iattr(s, "messaging.batch.message_count"), counts[i]);
		ck_assert_str_eq(sattr(s, "server.address"), "127.0.0.9");
		ck_assert_int_eq(iattr(s, "server.port"), 9092);
		ck_assert_uint_lt(s->start_ns, s->end_ns);
		if (i < 2) {
			ck_assert_int_eq(s->status, SONDE_STATUS_ERROR);
			ck_assert_str_eq(sattr(s, "error.type"), "NOT_LEADER_OR_FOLLOWER");
		} else {
			ck_assert_int_eq(s->status, SONDE_STATUS_UNSET);
			ck_assert_ptr_null(sattr(s, "error.type"));
		}
	}
	/* one duration point per span, labelled like it */
	ck_assert_uint_eq(n_points(t.h, DURATION), 5);
	ck_assert_str_eq(th_record_val(point(t.h, DURATION, 0), "error.type"),
	                 "NOT_LEADER_OR_FOLLOWER");
	ck_assert_str_eq(th_record_val(point(t.h, DURATION, 4), "messaging.destination.name"),
	                 "orders");
	ck_assert_ptr_null(th_record_val(point(t.h, DURATION, 4), "error.type"));
	/* SDK 1.1: the messages of every answered Produce, failed ones too */
	ck_assert(counted(t.h, "messaging.client.sent.messages", NULL, NULL) == 34);
	ck_assert(counted(t.h, "messaging.client.sent.messages", "error.type",
	                  "NOT_LEADER_OR_FOLLOWER") == 14);
	ck_assert(counted(t.h, "messaging.client.sent.messages", "messaging.destination.name",
	                  "orders") == 34);
	ck_assert(counted(t.h, "messaging.client.sent.messages", "server.port", "9092") == 34);
	ck_assert_uint_eq(n_points(t.h, "messaging.client.consumed.messages"), 0);
	done(&t);
	ck_assert_uint_eq(kafka_debug_totals()->requests, 8);
	ck_assert_uint_eq(kafka_debug_totals()->by_api[KFK_API_PRODUCE], 5);
	ck_assert_uint_eq(kafka_debug_totals()->by_api[KFK_API_API_VERSIONS], 2);
	ck_assert_uint_eq(kafka_debug_totals()->by_api[KFK_API_METADATA], 1);
	ck_assert_uint_eq(kafka_debug_totals()->responses, 8);
	ck_assert_uint_eq(kafka_debug_totals()->sync_lost, 0);
	free(r.buf);
}
END_TEST

/* The same connection seen by the broker (the mock reads 12 header bytes,
 * then the rest): SERVER spans, no metric. */
START_TEST(test_rec_broker)
{
	struct recording r1 = load("rec-broker-1"), r2 = load("rec-broker-2"), r3 = load("rec-broker-3");
	struct t t = setup(SONDE_ROLE_SERVER);
	size_t n;

	replay(&t, &r1, 0, 0);
	n = th_n_ended(t.h);
	ck_assert_uint_eq(n, 5);
	for (size_t i = 0; i < n; i++) {
		const struct th_span *s = th_ended(t.h, i);

		ck_assert_str_eq(s->name, "send orders");
		ck_assert_int_eq(s->kind, SONDE_SPAN_SERVER);
		ck_assert_str_eq(sattr(s, "server.address"), "127.0.0.1");
		ck_assert_int_eq(iattr(s, "server.port"), 9092);
		ck_assert_int_eq(s->status, i < 2 ? SONDE_STATUS_ERROR : SONDE_STATUS_UNSET);
	}
	ck_assert_uint_eq(th_n_records(t.h), 0); /* the broker side: no metric, no counter */
	done(&t);

	/* acks=0: the span ends with the request */
	t = setup(SONDE_ROLE_SERVER);
	replay(&t, &r2, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "send audit");
	ck_assert_str_eq(sattr(th_ended(t.h, 0), "messaging.destination.partition.id"), "1");
	ck_assert_int_eq(iattr(th_ended(t.h, 0), "messaging.batch.message_count"), 10);
	done(&t);
	ck_assert_uint_eq(kafka_debug_totals()->acks0, 1);
	ck_assert_uint_eq(kafka_debug_totals()->closed_pending, 0);

	/* the consumer's connection: three fetches returned records */
	t = setup(SONDE_ROLE_SERVER);
	replay(&t, &r3, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 3);
	{
		int64_t sum = 0;

		for (size_t i = 0; i < 3; i++) {
			const struct th_span *s = th_ended(t.h, i);

			ck_assert_str_eq(s->name, "receive orders");
			ck_assert_int_eq(s->kind, SONDE_SPAN_SERVER);
			sum += iattr(s, "messaging.batch.message_count");
		}
		ck_assert_int_eq(sum, 20);
	}
	done(&t);
	ck_assert_uint_eq(kafka_debug_totals()->fetch_empty, 1);
	free(r1.buf);
	free(r2.buf);
	free(r3.buf);
}
END_TEST

/* kcat -C -t orders -o beginning -e: FetchResponse CorrId 6, 7, 8 carried
 * the 20 messages, 9 came back empty after the long poll, 10 was still
 * waiting when kcat exited. */
START_TEST(test_rec_kcat_fetch)
{
	struct recording r = load("rec-kcat-fetch-1");
	struct t t = setup(SONDE_ROLE_CLIENT);
	int64_t sum = 0;

	replay(&t, &r, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 3);
	for (size_t i = 0; i < 3; i++) {
		const struct th_span *s = th_ended(t.h, i);

		ck_assert_str_eq(s->name, "receive orders");
		ck_assert_int_eq(s->kind, SONDE_SPAN_CONSUMER);
		ck_assert_str_eq(sattr(s, "messaging.operation.type"), "receive");
		ck_assert_str_eq(sattr(s, "messaging.destination.partition.id"), "0");
		sum += iattr(s, "messaging.batch.message_count");
	}
	ck_assert_int_eq(sum, 20);
	ck_assert_uint_eq(n_points(t.h, DURATION), 3);
	/* SDK 1.1: the 20 messages delivered */
	ck_assert(counted(t.h, "messaging.client.consumed.messages", "messaging.destination.name",
	                  "orders") == 20);
	ck_assert(counted(t.h, "messaging.client.consumed.messages", "messaging.operation.name",
	                  "receive") == 20);
	ck_assert_uint_eq(n_points(t.h, "messaging.client.sent.messages"), 0);
	done(&t);
	ck_assert_uint_eq(kafka_debug_totals()->fetch_empty, 1);
	ck_assert_uint_eq(kafka_debug_totals()->closed_pending, 1);
	ck_assert_uint_eq(kafka_debug_totals()->by_api[KFK_API_LIST_OFFSETS], 1);
	free(r.buf);
}
END_TEST

/* Every chunk of every recording cut at every byte, and byte by byte: the
 * same spans. */
START_TEST(test_rec_every_split)
{
	static const char *const names[] = { "rec-kcat-produce-1", "rec-kcat-fetch-1",
		                             "rec-broker-1", "rec-broker-3" };

	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		struct recording r = load(names[k]);
		enum sonde_role role = r.buf[0] == 1 ? SONDE_ROLE_SERVER : SONDE_ROLE_CLIENT;
		struct t t = setup(role);
		char *want, *got;

		replay(&t, &r, 0, 0);
		want = all_spans(t.h);
		done(&t);
		for (size_t cut = 1; cut <= 200; cut++) {
			t = setup(role);
			replay(&t, &r, cut, 0);
			got = all_spans(t.h);
			if (strcmp(want, got))
				ck_abort_msg("%s cut at %zu: other spans", names[k], cut);
			free(got);
			done(&t);
		}
		t = setup(role);
		replay(&t, &r, SIZE_MAX, 0);
		got = all_spans(t.h);
		ck_assert_str_eq(want, got);
		free(got);
		done(&t);
		free(want);
		free(r.buf);
	}
}
END_TEST

/* Picked up mid-stream: from every chunk on, never a wrong span: each one is
 * a span of the whole run. */
START_TEST(test_rec_mid_stream)
{
	struct recording r = load("rec-kcat-produce-1");
	struct t t = setup(SONDE_ROLE_CLIENT);
	char *whole;

	replay(&t, &r, 0, 0);
	whole = all_spans(t.h);
	done(&t);
	for (size_t first = 1; first < 24; first++) {
		size_t n;

		t = setup(SONDE_ROLE_CLIENT);
		replay(&t, &r, 0, first);
		n = th_n_ended(t.h);
		for (size_t i = 0; i < n; i++) {
			char one[2048];

			span_text(th_ended(t.h, i), one, sizeof(one));
			if (!strstr(whole, one))
				ck_abort_msg("from chunk %zu: span %s not in the whole run:\n%s", first, one, whole);
		}
		done(&t);
	}
	free(whole);
	free(r.buf);
}
END_TEST

/* ---- built frames ----------------------------------------------------------------- */

static const struct kb_topic orders_topic = {
	"orders", 1, { { .index = 0, .nbatches = 1, .recs = { 5 } } }
};

START_TEST(test_flexible_versions)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct kb a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	struct kb_topic pt = { "payments.v1", 1, { { .index = 3, .nbatches = 1, .recs = { 12 } } } };
	struct kb_topic ft = { "payments.v1", 1, { { .index = 2, .nbatches = 2, .recs = { 4, 5 } } } };

	kb_other_req(&a, KFK_API_API_VERSIONS, 3, 1, "svc-a", 30);
	kb_other_resp(&b, KFK_API_API_VERSIONS, 3, 1, 300);
	feed(&t, EG, 100, &a);
	feed(&t, IN, 200, &b);
	kb_free(&a);
	kb_free(&b);
	kb_produce_req(&a, 9, 2, "svc-a", -1, &pt, 1);
	pt.parts[0].err = 56;  /* KAFKA_STORAGE_ERROR */
	kb_produce_resp(&b, 11, 2, &pt, 1); /* (the layout of v9 and v11 is the same) */
	kb_fetch_req(&c, 12, 3, "svc-a", "payments.v1", 1);
	kb_fetch_resp(&d, 12, 3, 0, &ft, 1);
	feed(&t, EG, 300, &a);
	feed(&t, EG, 310, &c);
	feed(&t, IN, 400, &b);
	feed(&t, IN, 500, &d);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	{
		const struct th_span *s = th_ended(t.h, 0);

		ck_assert_str_eq(s->name, "send payments.v1");
		ck_assert_uint_eq(s->start_ns, 300);
		ck_assert_uint_eq(s->end_ns, 400);
		ck_assert_str_eq(sattr(s, "messaging.destination.partition.id"), "3");
		ck_assert_int_eq(iattr(s, "messaging.batch.message_count"), 12);
		ck_assert_str_eq(sattr(s, "error.type"), "KAFKA_STORAGE_ERROR");
		ck_assert_str_eq(s->status_desc, "KAFKA_STORAGE_ERROR");
		ck_assert_str_eq(sattr(s, "messaging.client.id"), "svc-a");
		s = th_ended(t.h, 1);
		ck_assert_str_eq(s->name, "receive payments.v1");
		ck_assert_uint_eq(s->start_ns, 310);
		ck_assert_uint_eq(s->end_ns, 500);
		ck_assert_int_eq(iattr(s, "messaging.batch.message_count"), 9);
		ck_assert_str_eq(sattr(s, "messaging.destination.partition.id"), "2");
	}
	kb_free(&a);
	kb_free(&b);
	kb_free(&c);
	kb_free(&d);
	done(&t);
}
END_TEST

/* Several topics or partitions in one request: one span, the destination
 * left out (never guessed); several partitions of one topic: topic kept,
 * partition left out. */
START_TEST(test_ambiguous_destination)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct kb q = { 0 }, r = { 0 };
	struct kb_topic two[2] = {
		{ "a", 1, { { .index = 0, .nbatches = 1, .recs = { 1 } } } },
		{ "b", 1, { { .index = 0, .nbatches = 1, .recs = { 2 } } } },
	};
	struct kb_topic parts = { "a", 2, { { .index = 0, .nbatches = 1, .recs = { 1 } },
	                                    { .index = 1, .nbatches = 1, .recs = { 1 } } } };

	kb_produce_req(&q, 7, 1, "x", 1, two, 2);
	kb_produce_resp(&r, 7, 1, two, 2);
	kb_produce_req(&q, 7, 2, "x", 1, &parts, 1);
	kb_produce_resp(&r, 7, 2, &parts, 1);
	feed(&t, EG, 10, &q);
	feed(&t, IN, 20, &r);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "send");
	ck_assert_ptr_null(sattr(th_ended(t.h, 0), "messaging.destination.name"));
	ck_assert_ptr_null(sattr(th_ended(t.h, 0), "messaging.destination.partition.id"));
	ck_assert_int_eq(iattr(th_ended(t.h, 0), "messaging.batch.message_count"), 3);
	ck_assert_str_eq(th_ended(t.h, 1)->name, "send a");
	ck_assert_ptr_null(sattr(th_ended(t.h, 1), "messaging.destination.partition.id"));
	ck_assert_int_eq(iattr(th_ended(t.h, 1), "messaging.batch.message_count"), 2);
	kb_free(&q);
	kb_free(&r);
	done(&t);
}
END_TEST

/* 500 Produce requests in flight on one connection, each to its own
 * partition, then the 500 answers: every span gets its own request's
 * partition and its own answer's error. */
START_TEST(test_many_in_flight)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct kb q = { 0 }, r = { 0 };

	for (int i = 0; i < 500; i++) {
		struct kb_topic tp = { "t", 1, { { .index = i, .nbatches = 1, .recs = { 1 + i % 4 } } } };

		kb_produce_req(&q, 7, 1000 + i, "x", -1, &tp, 1);
		tp.parts[0].err = i % 10 == 0 ? 7 : 0;
		kb_produce_resp(&r, 7, 1000 + i, &tp, 1);
	}
	feed(&t, EG, 10, &q);
	feed(&t, IN, 20, &r);
	ck_assert_uint_eq(th_n_ended(t.h), 500);
	for (int i = 0; i < 500; i++) {
		const struct th_span *s = th_ended(t.h, (size_t)i);
		char part[16];

		snprintf(part, sizeof(part), "%d", i);
		if (strcmp(sattr(s, "messaging.destination.partition.id"), part) ||
		    iattr(s, "messaging.batch.message_count") != 1 + i % 4 ||
		    (s->status == SONDE_STATUS_ERROR) != (i % 10 == 0))
			ck_abort_msg("span %d", i);
	}
	kb_free(&q);
	kb_free(&r);
	done(&t);
}
END_TEST

/* Bounds: max_in_flight evicts the oldest (its answer is then ignored); a
 * host that refuses spans is counted, matching stays right. */
START_TEST(test_bounds)
{
	struct t t = setup_cfg(SONDE_ROLE_CLIENT, "max_in_flight", "4");
	struct kb q = { 0 }, r = { 0 };

	for (int i = 0; i < 6; i++) {
		struct kb_topic tp = { "t", 1, { { .index = i, .nbatches = 1, .recs = { 1 } } } };

		kb_produce_req(&q, 7, i, "x", -1, &tp, 1);
		kb_produce_resp(&r, 7, i, &tp, 1);
	}
	feed(&t, EG, 10, &q);
	feed(&t, IN, 20, &r);
	ck_assert_uint_eq(th_n_ended(t.h), 4);
	ck_assert_str_eq(sattr(th_ended(t.h, 0), "messaging.destination.partition.id"), "2");
	ck_assert_uint_eq(th_n_dropped(t.h), 2);
	done(&t);
	ck_assert_uint_eq(kafka_debug_totals()->evicted, 2);
	ck_assert_uint_eq(kafka_debug_totals()->unmatched, 2);

	t = setup(SONDE_ROLE_CLIENT);
	th_set_span_limit(t.h, 3);
	feed(&t, EG, 10, &q);
	feed(&t, IN, 20, &r);
	ck_assert_uint_eq(th_n_ended(t.h), 3);
	ck_assert_str_eq(sattr(th_ended(t.h, 2), "messaging.destination.partition.id"), "2");
	done(&t);
	ck_assert_uint_eq(kafka_debug_totals()->span_refused, 3);
	ck_assert_uint_eq(kafka_debug_totals()->responses, 6);
	kb_free(&q);
	kb_free(&r);
}
END_TEST

START_TEST(test_acks0_and_unknown_error)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct kb q = { 0 }, r = { 0 };
	struct kb_topic tp = { "t", 1, { { .index = 0, .nbatches = 1, .recs = { 3 } } } };

	kb_produce_req(&q, 8, 1, "x", 0, &tp, 1);
	feed(&t, EG, 10, &q);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_uint_eq(th_ended(t.h, 0)->end_ns, 10);
	kb_free(&q);
	kb_produce_req(&q, 8, 2, "x", 1, &tp, 1);
	tp.parts[0].err = 999;
	kb_produce_resp(&r, 8, 2, &tp, 1);
	feed(&t, EG, 30, &q);
	feed(&t, IN, 40, &r);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_str_eq(sattr(th_ended(t.h, 1), "error.type"), "_OTHER");
	ck_assert_str_eq(th_ended(t.h, 1)->status_desc, "kafka error code 999");
	kb_free(&q);
	kb_free(&r);
	done(&t);
	ck_assert_uint_eq(kafka_debug_totals()->unanswered, 0);
}
END_TEST

/* The broker sends fetched records with sendfile: the response header is
 * written, the records go by as a payload-less chunk. The client reads more
 * than the capture cap. Neither loses the place; the count is then left
 * out (batch headers not seen), never guessed. */
START_TEST(test_sendfile_and_cap)
{
	struct kb q = { 0 }, r = { 0 };
	struct kb_topic tp = { "orders", 1, { { .index = 0, .nbatches = 2, .recs = { 50, 50 },
	                                        .body = 6000 } } };
	struct t t = setup(SONDE_ROLE_SERVER);
	size_t hdr;

	kb_fetch_req(&q, 11, 1, "c", "orders", 1);
	kb_fetch_req(&q, 11, 2, "c", "orders", 1);
	kb_fetch_resp(&r, 11, 1, 0, &tp, 1);
	kb_fetch_resp(&r, 11, 2, 0, &tp, 1);
	feed(&t, IN, 10, &q);
	/* header and partition fields written, records by sendfile, twice */
	hdr = 8 + 4 + 2 + 4 + 4 + 2 + 6 + 4 + 4 + 2 + 8 + 8 + 8 + 4 + 4 + 4;
	feed_chunk(&t, EG, 20, r.b, hdr, hdr, 0);
	feed_chunk(&t, EG, 21, NULL, 0, r.n / 2 - hdr, 0);
	feed_chunk(&t, EG, 30, r.b + r.n / 2, hdr, hdr, 0);
	feed_chunk(&t, EG, 31, NULL, 0, r.n / 2 - hdr, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	for (int i = 0; i < 2; i++) {
		const struct th_span *s = th_ended(t.h, (size_t)i);

		ck_assert_str_eq(s->name, "receive orders");
		ck_assert_int_eq(iattr(s, "messaging.batch.message_count"), -12345); /* absent */
		ck_assert_uint_eq(s->end_ns, i ? 31 : 21);
	}
	done(&t);

	/* the client: the first 4096 bytes of each read captured */
	t = setup(SONDE_ROLE_CLIENT);
	feed(&t, EG, 10, &q);
	feed_chunk(&t, IN, 20, r.b, 4096, r.n / 2, 0);
	feed_chunk(&t, IN, 30, r.b + r.n / 2, r.n / 2, r.n / 2, 0); /* whole */
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_int_eq(iattr(th_ended(t.h, 0), "messaging.batch.message_count"), -12345);
	ck_assert_int_eq(iattr(th_ended(t.h, 1), "messaging.batch.message_count"), 100);
	done(&t);
	ck_assert_uint_eq(kafka_debug_totals()->sync_lost, 0);
	kb_free(&q);
	kb_free(&r);
}
END_TEST

/* A gap in the responses: the answers after it are matched by correlation
 * id; the request whose answer was lost is dropped when a later answer comes
 * (Kafka answers in order), counted, never ended with a wrong time. */
START_TEST(test_gap)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct kb q = { 0 }, r[3] = { { 0 } };
	struct kb_topic tp = orders_topic;

	for (int i = 0; i < 3; i++) {
		kb_produce_req(&q, 7, 10 + i, "x", -1, &tp, 1);
		kb_produce_resp(&r[i], 7, 10 + i, &tp, 1);
	}
	feed(&t, EG, 10, &q);
	feed_chunk(&t, IN, 20, r[0].b, 8, 8, 0);
	feed_chunk(&t, IN, 30, r[1].b, r[1].n, r[1].n, SONDE_CHUNK_GAP);
	feed(&t, IN, 40, &r[2]);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_uint_eq(th_ended(t.h, 0)->end_ns, 30);
	ck_assert_uint_eq(th_ended(t.h, 1)->end_ns, 40);
	ck_assert_uint_eq(th_n_dropped(t.h), 1);
	done(&t);
	ck_assert_uint_eq(kafka_debug_totals()->unanswered, 1);
	ck_assert_uint_eq(kafka_debug_totals()->sync_lost, 1);
	kb_free(&q);
	for (int i = 0; i < 3; i++)
		kb_free(&r[i]);
}
END_TEST

START_TEST(test_garbage_gives_up)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	uint8_t junk[300];
	uint32_t x = 99;
	int rc = SONDE_OK;

	for (size_t i = 0; i < sizeof(junk); i++) {
		x = x * 1103515245u + 12345u;
		junk[i] = (uint8_t)(x >> 16) | 0x80; /* no plausible size prefix */
	}
	for (int i = 0; i < 1000 && rc == SONDE_OK; i++)
		rc = th_conn_feed(t.c, i % 2 ? IN : EG, (uint64_t)i, junk + i % 200, 100);
	ck_assert_int_eq(rc, SONDE_ERR_PROTO);
	ck_assert(th_conn_given_up(t.c));
	ck_assert_uint_eq(th_n_spans(t.h), 0);
	done(&t);
}
END_TEST

START_TEST(test_detect)
{
	struct th_host *h = th_new();
	struct sonde_conn_info cl, sv, un;
	struct kb q = { 0 };
	static const char pg[] = "\0\0\0\x29\0\3\0\0user\0postgres\0database\0x\0\0";

	ck_assert_int_eq(th_load(h, sonde_plugin_entry(), "kafka"), SONDE_OK);
	th_conn_info_init(&cl, SONDE_ROLE_CLIENT);
	th_conn_info_init(&sv, SONDE_ROLE_SERVER);
	th_conn_info_init(&un, SONDE_ROLE_UNKNOWN);
	kb_other_req(&q, KFK_API_API_VERSIONS, 3, 1, "rdkafka", 20);
	ck_assert_int_eq(th_detect(h, &cl, EG, q.b, q.n), SONDE_DETECT_SURE);
	ck_assert_int_eq(th_detect(h, &sv, IN, q.b, q.n), SONDE_DETECT_SURE);
	ck_assert_int_eq(th_detect(h, &un, IN, q.b, q.n), SONDE_DETECT_SURE);
	ck_assert_int_eq(th_detect(h, &sv, IN, q.b, 12), SONDE_DETECT_NEED_MORE);
	ck_assert_int_eq(th_detect(h, &sv, IN, q.b, q.n - 3), 75);
	/* the answer direction waits for the request */
	ck_assert_int_eq(th_detect(h, &cl, IN, "\0\0\0\x11\0\0\0\1", 8), SONDE_DETECT_NEED_MORE);
	ck_assert_int_eq(th_detect(h, &cl, EG, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27),
	                 SONDE_DETECT_NO);
	ck_assert_int_eq(th_detect(h, &cl, IN, "HTTP/1.1 200 OK\r\n", 17), SONDE_DETECT_NO);
	ck_assert_int_eq(th_detect(h, &cl, EG, "*1\r\n$4\r\nPING\r\n", 14), SONDE_DETECT_NO);
	ck_assert_int_eq(th_detect(h, &cl, EG, pg, sizeof(pg) - 1), SONDE_DETECT_NO);
	ck_assert_int_eq(th_detect(h, &cl, EG, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc", 9),
	                 SONDE_DETECT_NO);
	kb_free(&q);
	th_free(h);
}
END_TEST

/* Role unknown: a direction is the request direction once the other one
 * answered one of its requests; an early answer that also reads as a
 * request (Produce response, correlation id 5: "api 0 version 5") does not
 * decide it. Here the watched process reads the requests: the broker. */
START_TEST(test_role_unknown)
{
	struct t t = setup(SONDE_ROLE_UNKNOWN);
	struct kb q = { 0 }, r = { 0 }, q2 = { 0 }, r2 = { 0 };
	struct kb_topic tp = orders_topic;

	kb_produce_req(&q, 7, 5, "x", -1, &tp, 1);
	kb_produce_resp(&r, 7, 5, &tp, 1);
	kb_produce_req(&q2, 7, 6, "x", -1, &tp, 1);
	kb_produce_resp(&r2, 7, 6, &tp, 1);
	ck_assert_int_ge(kfk_check_request(r.b, r.n, r.n), KFK_START_HEADER); /* the trap */
	feed(&t, EG, 5, &r);  /* an answer to a request never seen */
	feed(&t, IN, 10, &q);
	feed(&t, EG, 20, &r); /* answers the candidate: requests are ingress */
	feed(&t, IN, 30, &q2);
	feed(&t, EG, 40, &r2);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_int_eq(th_ended(t.h, 0)->kind, SONDE_SPAN_SERVER);
	ck_assert_uint_eq(th_ended(t.h, 0)->start_ns, 30);
	done(&t);
	ck_assert_uint_eq(kafka_debug_totals()->chunks_unassigned, 2);
	kb_free(&q);
	kb_free(&r);
	kb_free(&q2);
	kb_free(&r2);
}
END_TEST

START_TEST(test_empty_fetch_spans)
{
	struct t t = setup_cfg(SONDE_ROLE_CLIENT, "empty_fetch_spans", "true");
	struct kb q = { 0 }, r = { 0 };
	struct kb_topic empty = { "orders", 1, { { .index = 0 } } };

	kb_fetch_req(&q, 11, 1, "c", "orders", 1);
	kb_fetch_resp(&r, 11, 1, 0, &empty, 1);
	feed(&t, EG, 10, &q);
	feed(&t, IN, 20, &r);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "receive");
	ck_assert_int_eq(iattr(th_ended(t.h, 0), "messaging.batch.message_count"), 0);
	done(&t);

	t = setup(SONDE_ROLE_CLIENT); /* default: no span */
	feed(&t, EG, 10, &q);
	feed(&t, IN, 20, &r);
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	done(&t);
	ck_assert_uint_eq(kafka_debug_totals()->fetch_empty, 1);
	kb_free(&q);
	kb_free(&r);
}
END_TEST

/* Keys, values and headers of records never reach a span, a metric or a
 * log line. */
START_TEST(test_privacy)
{
	static const char secret[] = "key=card-4111;value=SECRET-PAYLOAD;hdr=Bearer abc";
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct kb q = { 0 }, r = { 0 };
	struct kb_topic tp = { "t", 1, { { .index = 0, .nbatches = 1, .recs = { 1 },
	                                   .body = sizeof(secret) - 1 } } };
	char *all;

	kb_produce_req(&q, 7, 1, "x", -1, &tp, 1);
	memcpy(q.b + q.n - (sizeof(secret) - 1), secret, sizeof(secret) - 1);
	kb_produce_resp(&r, 7, 1, &tp, 1);
	feed(&t, EG, 10, &q);
	feed(&t, IN, 20, &r);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	all = all_spans(t.h);
	ck_assert_ptr_null(strstr(all, "SECRET"));
	ck_assert_ptr_null(strstr(all, "card"));
	ck_assert_ptr_null(strstr(all, "Bearer"));
	free(all);
	kb_free(&q);
	kb_free(&r);
	done(&t);
}
END_TEST

/* ---- SDK 1.1 ------------------------------------------------------------------------ */


static struct t setup_v(enum sonde_role role, int v10, uint32_t flags, const char *key,
                        const char *val)
{
	struct t t;
	struct sonde_conn_info ci;

	t.h = th_new();
	if (key) {
		const char *v[] = { val };

		th_set_config(t.h, NULL, key, v, 1);
	}
	/* v10: the real host's table cut to its 1.0 size (no 1.1 member used) */
	ck_assert_int_eq(th_load_minor(t.h, sonde_plugin_entry(), "kafka", v10 ? 0 : SONDE_ABI_MINOR),
	                 SONDE_OK);
	th_conn_info_init(&ci, role);
	ci.local_port = role == SONDE_ROLE_CLIENT ? 51000 : 9092;
	ci.peer_port = role == SONDE_ROLE_CLIENT ? 9092 : 51000;
	snprintf(ci.peer_addr, sizeof(ci.peer_addr), "127.0.0.9");
	ci.flags = flags;
	t.c = th_conn_open(t.h, &ci);
	ck_assert_ptr_nonnull(t.c);
	return t;
}

static void feed_at(struct t *t, enum sonde_dir d, uint64_t ts, uint64_t pos, const void *p,
                    size_t len, size_t orig)
{
	struct sonde_chunk ch = { 0 };

	ch.dir = d;
	ch.ts_unix_ns = ts;
	ch.data = p;
	ch.len = len;
	ch.orig_len = orig;
	ch.pos = pos;
	if (!p)
		ch.flags = SONDE_CHUNK_SKIPPED | SONDE_CHUNK_TRUNCATED;
	else if (orig > len)
		ch.flags = SONDE_CHUNK_TRUNCATED;
	th_conn_feed_chunk(t->c, &ch);
}

/* A Produce request of two 60,000-byte record batches written in pieces:
 * after the piece holding a batch header, no payload is needed up to the
 * next batch header (skip_to, in stream positions); the pieces the kernel
 * then skips are walked by count, the second header is read, and the
 * message count stays exact. A 1.0 host is asked nothing. */
START_TEST(v11_skip_records)
{
	struct kb_topic tp = { "bulk", 1, { { .index = 0, .nbatches = 2, .recs = { 500, 400 },
	                                      .body = 60000 } } };

	for (int v10 = 0; v10 <= 1; v10++) {
		struct t t = setup_v(SONDE_ROLE_CLIENT, v10, 0, NULL, NULL);
		struct kb q = { 0 }, r = { 0 };
		struct sonde_capture_policy p;
		const uint64_t pos = 700;
		size_t hdr1, off, next;

		kb_produce_req(&q, 8, 1, "bulker", 1, &tp, 1);
		kb_produce_resp(&r, 8, 1, &tp, 1);
		/* the first batch header ends 61 bytes into the records */
		hdr1 = q.n - 2 * (61 + 60000) + 61;
		feed_at(&t, EG, 10, pos, q.b, hdr1 + 3000, hdr1 + 3000);
		if (v10) {
			ck_assert_int_eq(th_conn_capture(t.c, &p), 0);
		} else {
			ck_assert_int_eq(th_conn_capture(t.c, &p), 1);
			ck_assert_uint_eq(p.skip_to[SONDE_DIR_EGRESS], pos + hdr1 + 60000);
			ck_assert_uint_eq(p.skip_to[SONDE_DIR_INGRESS], 0);
		}
		/* skipped writes inside batch 1, then one holding batch 2's header */
		off = hdr1 + 3000;
		next = hdr1 + 60000;
		for (; off + 20000 <= next; off += 20000)
			feed_at(&t, EG, 11, pos + off, NULL, 0, 20000);
		feed_at(&t, EG, 12, pos + off, q.b + off, (next - off) + 61 + 100, (next - off) + 61 + 100);
		off = next + 61 + 100;
		if (!v10) {
			ck_assert_int_eq(th_conn_capture(t.c, &p), 1);
			ck_assert_uint_eq(p.skip_to[SONDE_DIR_EGRESS], pos + q.n);
		}
		feed_at(&t, EG, 13, pos + off, NULL, 0, q.n - off);
		feed(&t, IN, 20, &r);
		ck_assert_uint_eq(th_n_ended(t.h), 1);
		ck_assert_int_eq(iattr(th_ended(t.h, 0), "messaging.batch.message_count"), 900);
		if (!v10)
			ck_assert(counted(t.h, "messaging.client.sent.messages", "messaging.destination.name",
			                  "bulk") == 900);
		else
			ck_assert_uint_eq(n_points(t.h, "messaging.client.sent.messages"), 0);
		done(&t);
		ck_assert_uint_eq(kafka_debug_totals()->sync_lost, 0);
		kb_free(&q);
		kb_free(&r);
	}
}
END_TEST

/* A connection the host met mid-stream (SDK 1.1 SONDE_CONN_MIDSTREAM)
 * whose first write is the middle of a frame: both directions start
 * unsynced and find their place at the next request, with no loss
 * counted; the same bytes on a connection seen from its start are a loss
 * in each direction. */
START_TEST(v11_midstream_starts_unsynced)
{
	struct kb q = { 0 }, r = { 0 };
	struct kb_topic tp = orders_topic;

	kb_produce_req(&q, 8, 1, "c", 1, &tp, 1);
	kb_produce_resp(&r, 8, 1, &tp, 1);
	for (int mid = 0; mid <= 1; mid++) {
		struct t t = setup_v(SONDE_ROLE_CLIENT, 0, mid ? SONDE_CONN_MIDSTREAM : 0, NULL, NULL);

		feed_chunk(&t, EG, 5, q.b + 20, q.n - 20, q.n - 20, 0); /* the tail of a frame */
		feed_chunk(&t, IN, 6, r.b + 9, r.n - 9, r.n - 9, 0);
		feed(&t, EG, 10, &q);
		feed(&t, IN, 20, &r);
		ck_assert_uint_eq(th_n_ended(t.h), 1);
		ck_assert_str_eq(th_ended(t.h, 0)->name, "send orders");
		done(&t);
		ck_assert_uint_eq(kafka_debug_totals()->sync_lost, (mid ? 0 : 2)); /* both directions */
	}
	kb_free(&q);
	kb_free(&r);
}
END_TEST

/* A request whose answer never comes: the timer drops it (and its span)
 * once it has waited longer than request_timeout (300 s by default),
 * counted as expired; request_timeout 0 keeps it until close. */
START_TEST(v11_request_timeout)
{
	struct kb q = { 0 };
	struct kb_topic tp = orders_topic;
	struct timespec now;
	uint64_t t0;

	clock_gettime(CLOCK_REALTIME, &now);
	t0 = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	kb_produce_req(&q, 8, 1, "c", 1, &tp, 1);
	for (int off = 0; off <= 1; off++) {
		struct t t = setup_v(SONDE_ROLE_CLIENT, 0, 0, off ? "request_timeout" : NULL, "0");

		feed(&t, EG, t0, &q);
		th_run_timers(t.h, t0 + 200ull * 1000000000ull);
		ck_assert_uint_eq(th_n_dropped(t.h), 0);
		th_run_timers(t.h, t0 + 301ull * 1000000000ull);
		ck_assert_uint_eq(th_n_dropped(t.h), off ? 0 : 1);
		if (!off)
			ck_assert(counted(t.h, "sonde.kafka.dropped.requests", "sonde.reason",
			                  "expired") == 1);
		done(&t);
		ck_assert_uint_eq(kafka_debug_totals()->expired, off ? 0 : 1);
		ck_assert_uint_eq(kafka_debug_totals()->closed_pending, off ? 1 : 0);
	}
	kb_free(&q);
}
END_TEST


/* A Produce answer cut by the capture before its error codes: the span
 * ends, but the sent-messages counter adds nothing (whether it failed is
 * not known, and a count without error.type would say it did not). */
START_TEST(v11_sent_needs_a_known_outcome)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct kb q = { 0 }, r = { 0 };
	struct kb_topic tp = orders_topic;

	kb_produce_req(&q, 8, 1, "c", 1, &tp, 1);
	kb_produce_resp(&r, 8, 1, &tp, 1);
	feed(&t, EG, 10, &q);
	feed_chunk(&t, IN, 20, r.b, 8, r.n, 0); /* size and correlation id only */
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_uint_eq(n_points(t.h, "messaging.client.sent.messages"), 0);
	feed(&t, EG, 30, &q);
	feed(&t, IN, 40, &r);
	ck_assert(counted(t.h, "messaging.client.sent.messages", NULL, NULL) > 0);
	done(&t);
	kb_free(&q);
	kb_free(&r);
}
END_TEST

/* ---- same-host links: both ends of a connection watched by one host ---- */

struct ends {
	struct th_host *h;
	struct th_conn *cl, *sv;
};

/* The client 127.0.0.2:cport and the broker 127.0.0.1:9092 of one
 * connection in one host (v10: a 1.0 host, without span_set_pos). */
static struct ends ends_open(uint16_t cport, int v10)
{
	struct ends e;

	e.h = th_new();
	ck_assert_int_eq(th_load_minor(e.h, sonde_plugin_entry(), "kafka", v10 ? 0 : SONDE_ABI_MINOR),
	                 SONDE_OK);
	th_conn_pair(e.h, cport, 9092, &e.cl, &e.sv);
	ck_assert_ptr_nonnull(e.cl);
	ck_assert_ptr_nonnull(e.sv);
	return e;
}

static void ends_close(struct ends *e)
{
	th_conn_close(e->cl, 999999999);
	th_conn_close(e->sv, 999999999);
	/* Server spans still held for a client span that will not come leave
	 * when the wait runs out (links.c). */
	th_run_timers(e->h, 4000000000ULL);
	ck_assert_uint_eq(th_n_open(e->h), 0);
	ck_assert_uint_eq(th_misuse(e->h), 0);
	th_free(e->h);
}

/* Bytes written by one end (from_client: the client) and read by the
 * other, in pieces of `split` bytes (0: whole); reader_first: the reader's
 * chunks come first. */
static void both(struct ends *e, int from_client, uint64_t ts, const void *b, size_t n,
                 size_t split, int reader_first)
{
	struct th_conn *w = from_client ? e->cl : e->sv, *r = from_client ? e->sv : e->cl;
	const uint8_t *p = b;
	size_t off = 0;

	if (!reader_first)
		th_conn_feed(w, EG, ts, p, n);
	do {
		size_t k = split && n - off > split ? split : n - off;

		th_conn_feed(r, IN, ts + 1, p + off, k);
		off += k;
	} while (off < n);
	if (reader_first)
		th_conn_feed(w, EG, ts, p, n);
}

/* The nth span of that kind, in start order. */
static struct th_span *nth_kind(struct th_host *h, enum sonde_span_kind kind, size_t nth)
{
	for (size_t i = 0; i < th_n_spans(h); i++) {
		struct th_span *s = th_span(h, i);

		if (s->kind == kind && nth-- == 0)
			return s;
	}
	return NULL;
}

static size_t n_kind(struct th_host *h, enum sonde_span_kind kind)
{
	size_t n = 0;

	while (nth_kind(h, kind, n))
		n++;
	return n;
}

/* n Produce requests: every broker span is the child of its producer span. */
static void assert_produce_linked(struct th_host *h, size_t n)
{
	ck_assert_uint_eq(n_kind(h, SONDE_SPAN_PRODUCER), n);
	for (size_t i = 0; i < n; i++) {
		struct th_span *c = nth_kind(h, SONDE_SPAN_PRODUCER, i);
		struct th_span *s = nth_kind(h, SONDE_SPAN_SERVER, i);

		ck_assert_ptr_nonnull(s);
		ck_assert_str_eq(s->name, c->name);
		ck_assert_msg(th_span_child_of(s, c), "broker span %zu: parent %s, want %s", i,
		              s->parent_span_id, c->span_id);
	}
}

/* A recorded kcat producer connection (ApiVersions, Metadata, five
 * Produce requests) seen by both ends, either first: five links. */
START_TEST(link_rec_kcat_produce)
{
	struct recording r = load("rec-kcat-produce-1");
	struct ends e = ends_open((uint16_t)(44000 + _i), 0);
	size_t off = 1;
	uint64_t ts = 1000;

	while (off + 3 <= r.n) {
		int egress = r.buf[off] & 1;
		size_t len = ((size_t)r.buf[off + 1] << 8) | r.buf[off + 2];

		both(&e, egress, ts += 1000, r.buf + off + 3, len, 0, _i);
		off += 3 + len;
	}
	assert_produce_linked(e.h, 5);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_SERVER), 5);
	ck_assert_uint_eq(th_n_links(e.h), 5);
	ends_close(&e);
	free(r.buf);
}
END_TEST

/* 200 Produce requests pipelined in one write the broker reads in pieces
 * of any size, either end first: each links by where its size prefix
 * starts. Then a Fetch with records: its spans start and end at its
 * response on each end (whether it makes a span is only known there). The
 * broker's ended SERVER span is held for a client span, but the other end's
 * is a CONSUMER span, which waits for a parent itself: no link. */
START_TEST(link_produce_pipelined_any_split)
{
	struct ends e = ends_open((uint16_t)(44100 + _i), 0);
	struct kb q = { 0 }, r = { 0 }, fq = { 0 }, fr = { 0 };
	size_t split = (size_t)_i / 2 * 5;
	struct kb_topic ft = orders_topic;

	for (int i = 0; i < 200; i++) {
		struct kb_topic tp = { "t", 1, { { .index = i, .nbatches = 1, .recs = { 1 } } } };

		kb_produce_req(&q, 7, 1000 + i, "x", -1, &tp, 1);
		kb_produce_resp(&r, 7, 1000 + i, &tp, 1);
	}
	kb_fetch_req(&fq, 11, 5000, "x", "orders", 1);
	kb_fetch_resp(&fr, 11, 5000, 0, &ft, 1);
	both(&e, 1, 10, q.b, q.n, split, _i % 2);
	both(&e, 0, 20, r.b, r.n, 0, _i % 2);
	both(&e, 1, 30, fq.b, fq.n, split, _i % 2);
	both(&e, 0, 40, fr.b, fr.n, 0, _i % 2);
	assert_produce_linked(e.h, 200);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_CONSUMER), 1);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_SERVER), 201);
	ck_assert_str_eq(nth_kind(e.h, SONDE_SPAN_SERVER, 200)->parent_span_id, "");
	ck_assert_uint_eq(th_n_links(e.h), 200);
	ends_close(&e);
	kb_free(&q);
	kb_free(&r);
	kb_free(&fq);
	kb_free(&fr);
}
END_TEST

/* What must not link: requests after the broker end lost bytes (its place
 * is found again by a guess), and a 1.0 host. */
START_TEST(link_none_after_gap)
{
	struct ends e = ends_open(44200, 0);
	struct kb q[3] = { { 0 } }, r[3] = { { 0 } };
	struct kb_topic tp = orders_topic;

	for (int i = 0; i < 3; i++) {
		kb_produce_req(&q[i], 7, 10 + i, "x", -1, &tp, 1);
		kb_produce_resp(&r[i], 7, 10 + i, &tp, 1);
	}
	both(&e, 1, 100, q[0].b, q[0].n, 0, 0);
	both(&e, 0, 200, r[0].b, r[0].n, 0, 0);
	/* the broker end does not see the second request */
	th_conn_feed(e.cl, EG, 300, q[1].b, q[1].n);
	th_conn_feed(e.cl, EG, 400, q[2].b, q[2].n);
	th_conn_feed_lossy(e.sv, IN, 401, q[1].n, q[2].b, q[2].n, q[2].n);
	th_conn_feed(e.sv, EG, 500, r[2].b, r[2].n);
	th_conn_feed(e.cl, IN, 501, r[1].b, r[1].n);
	th_conn_feed(e.cl, IN, 502, r[2].b, r[2].n);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_PRODUCER), 3);
	ck_assert(th_span_child_of(nth_kind(e.h, SONDE_SPAN_SERVER, 0),
	                           nth_kind(e.h, SONDE_SPAN_PRODUCER, 0)));
	for (size_t i = 1; i < n_kind(e.h, SONDE_SPAN_SERVER); i++)
		ck_assert_str_eq(nth_kind(e.h, SONDE_SPAN_SERVER, i)->parent_span_id, "");
	ck_assert_uint_eq(th_n_links(e.h), 1);
	ends_close(&e);

	e = ends_open(44201, 1);
	both(&e, 1, 100, q[0].b, q[0].n, 0, 0);
	both(&e, 0, 200, r[0].b, r[0].n, 0, 0);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_SERVER), 1);
	ck_assert_str_eq(nth_kind(e.h, SONDE_SPAN_SERVER, 0)->parent_span_id, "");
	ck_assert_uint_eq(th_n_links(e.h), 0);
	ends_close(&e);
	for (int i = 0; i < 3; i++) {
		kb_free(&q[i]);
		kb_free(&r[i]);
	}
}
END_TEST

static Suite *kafka_suite(void)
{
	Suite *s = suite_create("kafka_plugin");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_rec_kcat_produce);
	tcase_add_test(tc, test_rec_broker);
	tcase_add_test(tc, test_rec_kcat_fetch);
	tcase_add_test(tc, test_rec_every_split);
	tcase_add_test(tc, test_rec_mid_stream);
	tcase_add_test(tc, test_flexible_versions);
	tcase_add_test(tc, test_ambiguous_destination);
	tcase_add_test(tc, test_many_in_flight);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_acks0_and_unknown_error);
	tcase_add_test(tc, test_sendfile_and_cap);
	tcase_add_test(tc, test_gap);
	tcase_add_test(tc, test_garbage_gives_up);
	tcase_add_test(tc, test_detect);
	tcase_add_test(tc, test_role_unknown);
	tcase_add_test(tc, test_empty_fetch_spans);
	tcase_add_test(tc, test_privacy);
	tcase_add_test(tc, v11_skip_records);
	tcase_add_test(tc, v11_midstream_starts_unsynced);
	tcase_add_test(tc, v11_request_timeout);
	tcase_add_test(tc, v11_sent_needs_a_known_outcome);
	tcase_add_loop_test(tc, link_rec_kcat_produce, 0, 2);
	tcase_add_loop_test(tc, link_produce_pipelined_any_split, 0, 2 * 40);
	tcase_add_test(tc, link_none_after_gap);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(kafka_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
