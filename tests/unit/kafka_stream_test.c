/*
 * kafka_stream_test.c - the Kafka decoder (plugins/kafka: kafka_walk.c,
 * kafka_stream.c) from byte vectors, without any host.
 *
 * The one idea: frames are built byte-exact from the protocol schemas
 * (kafka_build.h), in non-flexible and flexible versions, and fed to the two
 * stream decoders of a connection through a tiny table of awaited requests;
 * the test reads back the frames the decoder reported and what their
 * summaries say (topics, partitions, record counts, error codes). Then the
 * same bytes are cut at every byte, left uncaptured (truncation, sendfile),
 * lost (gaps), or replaced by garbage and hostile lengths.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_build.h"
#include "kafka_stream.h"

#define MAXF 2048

struct rec {
	uint8_t request, matched, body;
	int16_t api, ver;
	int32_t corr;
	uint64_t ts_start, ts_end;
	struct kfk_sum sum;
};

struct col {
	struct kfk_stream req, resp;
	struct { int32_t corr; int16_t api, ver; } pend[MAXF];
	size_t n_pend;
	size_t n;
	struct rec f[MAXF];
};

static int lookup(void *ctx, int32_t corr, int16_t *api, int16_t *ver)
{
	struct col *c = ctx;

	for (size_t i = 0; i < c->n_pend; i++) {
		if (c->pend[i].corr == corr) {
			*api = c->pend[i].api;
			*ver = c->pend[i].ver;
			return 1;
		}
	}
	return 0;
}

static void on_frame(void *ctx, const struct kfk_frame *f)
{
	struct col *c = ctx;
	struct rec *r;

	if (f->request && c->n_pend < MAXF) {
		c->pend[c->n_pend].corr = f->corr;
		c->pend[c->n_pend].api = f->api_key;
		c->pend[c->n_pend].ver = f->api_version;
		c->n_pend++;
	}
	if (c->n >= MAXF)
		ck_abort_msg("too many frames");
	r = &c->f[c->n++];
	memset(r, 0, sizeof(*r));
	r->request = f->request;
	r->matched = f->matched;
	r->body = f->body;
	r->api = f->api_key;
	r->ver = f->api_version;
	r->corr = f->corr;
	r->ts_start = f->ts_start;
	r->ts_end = f->ts_end;
	r->sum = *f->sum;
}

static void col_reset(struct col *c)
{
	struct kfk_stream_cb cb = { .ctx = c, .lookup = lookup, .frame = on_frame };

	c->n = 0;
	c->n_pend = 0;
	kfk_stream_init(&c->req, 1, &cb);
	kfk_stream_init(&c->resp, 0, &cb);
}

static struct col *col_new(void)
{
	struct col *c = calloc(1, sizeof(*c));

	col_reset(c);
	return c;
}

static void feed(struct kfk_stream *s, const struct kb *k, uint64_t ts)
{
	kfk_stream_feed(s, k->b, k->n, 0, ts, 1);
}

static const struct kb_topic orders1 = {
	"orders", 1, { { .index = 0, .nbatches = 1, .recs = { 5 } } }
};

/* ---- start check ----------------------------------------------------------- */

START_TEST(test_check_request)
{
	struct kb k = { 0 };
	static const uint8_t apiv3_rdkafka[] = { /* recorded: kcat 1.7.1 ApiVersions v3 */
		0x00, 0x00, 0x00, 0x24, 0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x07,
		'r',  'd',  'k',  'a',  'f',  'k',  'a',  0x00, 0x0b, 'l',  'i',  'b',  'r',  'd',
		'k',  'a',  'f',  'k',  'a',  0x06, '2',  '.',  '0',  '.',  '2',  0x00,
	};
	static const uint8_t pg_startup[] = { 0, 0, 0, 0x29, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0,
		                              'p', 'o', 's', 't', 'g', 'r', 'e', 's', 0, 'd', 'a',
		                              't', 'a', 'b', 'a', 's', 'e', 0, 'x', 0, 0 };
	static const uint8_t tls_hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc };

	ck_assert_int_eq(kfk_check_request(apiv3_rdkafka, sizeof(apiv3_rdkafka), sizeof(apiv3_rdkafka)),
	                 KFK_START_FRAMES);
	for (size_t i = 1; i < 14 + 7; i++)
		ck_assert_int_eq(kfk_check_request(apiv3_rdkafka, i, i), KFK_START_PARTIAL);
	ck_assert_int_eq(kfk_check_request(apiv3_rdkafka, 30, 30), KFK_START_HEADER);
	/* cut by the capture, not by the protocol: still a whole frame */
	ck_assert_int_eq(kfk_check_request(apiv3_rdkafka, 30, 40), KFK_START_FRAMES);
	ck_assert_int_eq(kfk_check_request((const uint8_t *)"GET / HTTP/1.1\r\n", 16, 16), KFK_START_NO);
	ck_assert_int_eq(kfk_check_request((const uint8_t *)"*1\r\n$4\r\nPING\r\n", 14, 14), KFK_START_NO);
	ck_assert_int_eq(kfk_check_request(pg_startup, sizeof(pg_startup), sizeof(pg_startup)),
	                 KFK_START_NO);
	ck_assert_int_eq(kfk_check_request(tls_hello, sizeof(tls_hello), sizeof(tls_hello)), KFK_START_NO);
	/* two frames, the second one garbage after a right-looking first */
	kb_produce_req(&k, 7, 4, "kcat", -1, &orders1, 1);
	kb_other_req(&k, KFK_API_METADATA, 2, 5, "kcat", 4);
	ck_assert_int_eq(kfk_check_request(k.b, k.n, k.n), KFK_START_FRAMES);
	k.b[k.n - 18] = 0x7f; /* api key of the second frame */
	ck_assert_int_eq(kfk_check_request(k.b, k.n, k.n), KFK_START_NO);
	kb_free(&k);
}
END_TEST

/* ---- walks -------------------------------------------------------------------- */

START_TEST(test_produce_v7_roundtrip)
{
	struct col *c = col_new();
	struct kb rq = { 0 }, rs = { 0 };
	struct kb_topic t = orders1;

	kb_produce_req(&rq, 7, 4, "rdkafka", -1, &t, 1);
	t.parts[0].err = 6;
	kb_produce_resp(&rs, 7, 4, &t, 1);
	feed(&c->req, &rq, 100);
	feed(&c->resp, &rs, 200);
	ck_assert_uint_eq(c->n, 2);
	ck_assert(c->f[0].request && c->f[0].body == KFK_BODY_PRODUCE_REQ);
	ck_assert_int_eq(c->f[0].corr, 4);
	ck_assert(c->f[0].sum.complete);
	ck_assert_int_eq(c->f[0].sum.client_id_state, 2);
	ck_assert_str_eq(c->f[0].sum.client_id, "rdkafka");
	ck_assert(c->f[0].sum.acks_known && c->f[0].sum.acks == -1);
	ck_assert_int_eq(c->f[0].sum.topic_n, KFK_N_ONE);
	ck_assert_str_eq(c->f[0].sum.topic, "orders");
	ck_assert_uint_eq(c->f[0].sum.n_parts, 1);
	ck_assert_int_eq(c->f[0].sum.part, 0);
	ck_assert_uint_eq(c->f[0].sum.records, 5);
	ck_assert(!c->f[0].sum.records_unknown);
	ck_assert(c->f[1].matched && c->f[1].body == KFK_BODY_PRODUCE_RESP);
	ck_assert(c->f[1].sum.complete);
	ck_assert_int_eq(c->f[1].sum.error, 6);
	ck_assert_uint_eq(c->f[1].ts_start, 200);
	kb_free(&rq);
	kb_free(&rs);
	free(c);
}
END_TEST

/* Every Produce version the plugin reads, non-flexible and flexible, two
 * topics (ambiguous destination) and several batches. */
START_TEST(test_produce_all_versions)
{
	for (int v = 3; v <= 13; v++) {
		struct col *c = col_new();
		struct kb rq = { 0 }, rs = { 0 };
		struct kb_topic t[2] = {
			{ "orders", 2, { { .index = 0, .nbatches = 1, .recs = { 3 } },
			                 { .index = 1, .nbatches = 1, .recs = { 4 } } } },
			{ "audit", 1, { { .index = 0, .nbatches = 1, .recs = { 2 } } } },
		};

		kb_produce_req(&rq, v, 10 + v, "app", 1, t, 2);
		t[1].parts[0].err = 19;
		kb_produce_resp(&rs, v, 10 + v, t, 2);
		feed(&c->req, &rq, 1);
		feed(&c->resp, &rs, 2);
		ck_assert_uint_eq(c->n, 2);
		ck_assert_msg(c->f[0].sum.complete && c->f[1].sum.complete, "v%d", v);
		ck_assert_uint_eq(c->f[0].sum.records, 9);
		ck_assert_uint_eq(c->f[0].sum.n_parts, 3);
		if (v < 13) {
			ck_assert_int_eq(c->f[0].sum.topic_n, KFK_N_MANY);
			ck_assert(!c->f[0].sum.topic_unknown);
		} else {
			ck_assert(c->f[0].sum.topic_unknown); /* topic ids: names unknown */
		}
		ck_assert_int_eq(c->f[1].sum.error, 19);
		ck_assert(!c->f[1].sum.error_unknown);
		kb_free(&rq);
		kb_free(&rs);
		free(c);
	}
}
END_TEST

START_TEST(test_fetch_all_versions)
{
	for (int v = 4; v <= 17; v++) {
		struct col *c = col_new();
		struct kb rq = { 0 }, rs = { 0 };
		struct kb_topic t = { "orders", 2, {
			{ .index = 0, .nbatches = 3, .recs = { 4, 1, 6 }, .attr = { 0, 0x20, 0 } },
			{ .index = 1, .nbatches = 0 },
		} };

		kb_fetch_req(&rq, v, 3, "consumer-1", "orders", 2);
		kb_fetch_resp(&rs, v, 3, 0, &t, 1);
		feed(&c->req, &rq, 1);
		feed(&c->resp, &rs, 2);
		ck_assert_uint_eq(c->n, 2);
		ck_assert_int_eq(c->f[0].body, KFK_BODY_NONE);
		ck_assert_str_eq(c->f[0].sum.client_id, "consumer-1");
		ck_assert_msg(c->f[1].sum.complete, "v%d", v);
		ck_assert_int_eq(c->f[1].body, KFK_BODY_FETCH_RESP);
		ck_assert_uint_eq(c->f[1].sum.records, 10); /* the control batch carries none */
		ck_assert_uint_eq(c->f[1].sum.batches, 2);
		ck_assert_uint_eq(c->f[1].sum.n_parts, 1);  /* partition 1 returned nothing */
		ck_assert_int_eq(c->f[1].sum.part, 0);
		if (v < 13)
			ck_assert_str_eq(c->f[1].sum.topic, "orders");
		else
			ck_assert(c->f[1].sum.topic_unknown);
		ck_assert_int_eq(c->f[1].sum.error, 0);
		kb_free(&rq);
		kb_free(&rs);
		free(c);
	}
}
END_TEST

START_TEST(test_fetch_partial_tail_legacy_errors)
{
	struct col *c = col_new();
	struct kb rq = { 0 }, rs = { 0 };
	struct kb_topic t = { "orders", 3, {
		{ .index = 0, .nbatches = 1, .recs = { 2 }, .partial_tail = 40 },
		{ .index = 1, .err = 1 },                     /* OFFSET_OUT_OF_RANGE */
		{ .index = 2, .nbatches = 2, .legacy = 1 },
	} };

	kb_fetch_req(&rq, 4, 9, "c", "orders", 3);
	kb_fetch_resp(&rs, 4, 9, 0, &t, 1);
	feed(&c->req, &rq, 1);
	feed(&c->resp, &rs, 2);
	ck_assert_uint_eq(c->n, 2);
	ck_assert(c->f[1].sum.complete);
	ck_assert_uint_eq(c->f[1].sum.records, 2);   /* the cut batch is nobody's */
	ck_assert(c->f[1].sum.records_unknown);      /* legacy messages are not counted */
	ck_assert_int_eq(c->f[1].sum.error, 1);
	ck_assert_uint_eq(c->f[1].sum.n_parts, 3);
	free(c);
	kb_free(&rq);
	kb_free(&rs);

	/* a fetch with a top-level error and no topic */
	c = col_new();
	kb_fetch_req(&rq, 12, 9, "c", "orders", 1);
	kb_fetch_resp(&rs, 12, 9, 70, NULL, 0); /* FETCH_SESSION_ID_NOT_FOUND */
	feed(&c->req, &rq, 1);
	feed(&c->resp, &rs, 2);
	ck_assert_uint_eq(c->n, 2);
	ck_assert(c->f[1].sum.complete);
	ck_assert_int_eq(c->f[1].sum.error, 70);
	ck_assert_uint_eq(c->f[1].sum.n_parts, 0);
	kb_free(&rq);
	kb_free(&rs);
	free(c);
}
END_TEST

/* The header alone: ApiVersions v3 (request header v2 with tagged fields,
 * response header v0 although the version is flexible), Metadata v9. */
START_TEST(test_headers_flexible)
{
	struct col *c = col_new();
	struct kb k = { 0 }, r = { 0 };

	kb_other_req(&k, KFK_API_API_VERSIONS, 3, 1, "kafkajs", 20);
	kb_other_req(&k, KFK_API_METADATA, 9, 2, NULL, 7);
	kb_other_req(&k, KFK_API_CONTROLLED_SHUTDOWN, 0, 3, NULL, 4); /* header v0 */
	kb_other_resp(&r, KFK_API_API_VERSIONS, 3, 1, 30);
	kb_other_resp(&r, KFK_API_METADATA, 9, 2, 30);
	kb_other_resp(&r, KFK_API_CONTROLLED_SHUTDOWN, 0, 3, 2);
	feed(&c->req, &k, 1);
	feed(&c->resp, &r, 2);
	ck_assert_uint_eq(c->n, 6);
	ck_assert_str_eq(c->f[0].sum.client_id, "kafkajs");
	ck_assert_int_eq(c->f[1].sum.client_id_state, 1);
	ck_assert(c->f[1].sum.hdr_done);
	ck_assert(c->f[2].sum.hdr_done);
	for (int i = 3; i < 6; i++) {
		ck_assert(c->f[i].matched);
		ck_assert(c->f[i].sum.hdr_done);
	}
	ck_assert_int_eq(c->f[4].api, KFK_API_METADATA);
	ck_assert_uint_eq(c->req.st.sync_lost + c->resp.st.sync_lost, 0);
	kb_free(&k);
	kb_free(&r);
	free(c);
}
END_TEST

/* ---- splits, pipelines ------------------------------------------------------------- */

/* A conversation: many requests in flight, then their responses. */
static void conversation(struct kb *rq, struct kb *rs, int n)
{
	kb_other_req(rq, KFK_API_API_VERSIONS, 3, 0, "app", 12);
	kb_other_resp(rs, KFK_API_API_VERSIONS, 3, 0, 40);
	for (int i = 1; i <= n; i++) {
		struct kb_topic t = { "orders", 1, { { .index = i % 7, .nbatches = 1, .recs = { 1 + i % 9 } } } };
		int v = 3 + i % 11;

		if (i % 3) {
			kb_produce_req(rq, v, i, "app", -1, &t, 1);
			if (i % 5 == 0)
				t.parts[0].err = 6;
			kb_produce_resp(rs, v, i, &t, 1);
		} else {
			kb_fetch_req(rq, 4 + i % 14, i, "app", "orders", 1);
			kb_fetch_resp(rs, 4 + i % 14, i, 0, &t, 1);
		}
	}
}

/* (check records every assertion: one per comparison, not per frame) */
static int same_frames(const struct col *a, const struct col *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->f[i].corr != b->f[i].corr || a->f[i].request != b->f[i].request ||
		    memcmp(&a->f[i].sum, &b->f[i].sum, sizeof(a->f[i].sum)))
			return 0;
	return 1;
}

START_TEST(test_every_split_point)
{
	struct kb rq = { 0 }, rs = { 0 };
	struct col *whole = col_new();

	conversation(&rq, &rs, 40);
	feed(&whole->req, &rq, 1);
	feed(&whole->resp, &rs, 2);
	ck_assert_uint_eq(whole->n, 82);
	for (size_t i = 0; i < whole->n; i++)
		if (!whole->f[i].sum.complete && whole->f[i].body != KFK_BODY_NONE)
			ck_abort_msg("frame %zu not walked to its end", i);
	/* two chunks, cut at every byte, both directions */
	struct col *c = col_new();

	for (size_t cut = 1; cut < rq.n; cut += 1) {
		col_reset(c);
		kfk_stream_feed(&c->req, rq.b, cut, 0, 1, 1);
		kfk_stream_feed(&c->req, rq.b + cut, rq.n - cut, 0, 1, 1);
		kfk_stream_feed(&c->resp, rs.b, cut < rs.n ? cut : rs.n, 0, 2, 1);
		if (cut < rs.n)
			kfk_stream_feed(&c->resp, rs.b + cut, rs.n - cut, 0, 2, 1);
		if (!same_frames(whole, c))
			ck_abort_msg("split at %zu gives other frames", cut);
	}
	/* one byte per chunk */
	{
		col_reset(c);
		for (size_t i = 0; i < rq.n; i++)
			kfk_stream_feed(&c->req, rq.b + i, 1, 0, 1, 1);
		for (size_t i = 0; i < rs.n; i++)
			kfk_stream_feed(&c->resp, rs.b + i, 1, 0, 2, 1);
		ck_assert(same_frames(whole, c));
	}
	free(c);
	kb_free(&rq);
	kb_free(&rs);
	free(whole);
}
END_TEST

START_TEST(test_many_in_flight)
{
	struct kb rq = { 0 }, rs = { 0 };
	struct col *c = col_new();
	size_t matched = 0;

	conversation(&rq, &rs, 600);
	feed(&c->req, &rq, 1);
	feed(&c->resp, &rs, 2);
	ck_assert_uint_eq(c->n, 1202);
	for (size_t i = 0; i < c->n; i++)
		matched += c->f[i].matched;
	ck_assert_uint_eq(matched, 601);
	kb_free(&rq);
	kb_free(&rs);
	free(c);
}
END_TEST

/* ---- bytes not captured ------------------------------------------------------------- */

/* Records not captured (payload cap) or sent with sendfile (payload-less
 * chunks): skipped by count, the next frame is read. */
START_TEST(test_truncated_records_keep_sync)
{
	struct kb rq = { 0 }, rs = { 0 };
	struct kb_topic t = { "orders", 1, { { .index = 0, .nbatches = 3, .recs = { 100, 100, 100 },
	                                      .body = 5000 } } };
	struct col *c = col_new();
	size_t first, cut;

	kb_fetch_req(&rq, 11, 1, "c", "orders", 1);
	kb_fetch_req(&rq, 11, 2, "c", "orders", 1);
	kb_fetch_req(&rq, 11, 3, "c", "orders", 1);
	feed(&c->req, &rq, 1);
	kb_fetch_resp(&rs, 11, 1, 0, &t, 1);
	first = rs.n;
	kb_fetch_resp(&rs, 11, 2, 0, &t, 1);
	kb_fetch_resp(&rs, 11, 3, 0, &t, 1);

	/* response 1: a 4096-byte capture of a bigger read */
	kfk_stream_feed(&c->resp, rs.b, 4096, first - 4096, 10, 1);
	/* response 2: header captured, then the records went by with sendfile */
	cut = 200;
	kfk_stream_feed(&c->resp, rs.b + first, cut, 0, 11, 1);
	kfk_stream_feed(&c->resp, NULL, 0, (rs.n - first) / 2 - cut, 12, 1);
	/* response 3 whole */
	kfk_stream_feed(&c->resp, rs.b + first + (rs.n - first) / 2, (rs.n - first) / 2, 0, 13, 1);
	ck_assert_uint_eq(c->n, 6);
	ck_assert(c->f[3].matched && c->f[4].matched && c->f[5].matched);
	ck_assert(c->f[3].sum.complete);
	ck_assert(c->f[3].sum.records_unknown);        /* batches 2 and 3 not seen */
	ck_assert_uint_eq(c->f[3].sum.records, 100);   /* the first one was */
	ck_assert(c->f[3].sum.has_record_bytes);
	ck_assert(c->f[4].sum.complete && c->f[4].sum.records_unknown);
	ck_assert_uint_eq(c->f[4].ts_end, 12);
	ck_assert(c->f[5].sum.complete && !c->f[5].sum.records_unknown);
	ck_assert_uint_eq(c->f[5].sum.records, 300);
	ck_assert_uint_eq(c->resp.st.sync_lost, 0);
	kb_free(&rq);
	kb_free(&rs);
	free(c);
}
END_TEST

/* A count lost in the uncaptured bytes: the frame's details are unknown, the
 * frame is still skipped by its size. A size prefix lost: the place is lost
 * and found again at the next chunk that starts a frame. */
START_TEST(test_truncated_structure)
{
	struct kb rq = { 0 }, a = { 0 }, b = { 0 };
	struct kb_topic t = orders1;
	struct col *c = col_new();

	kb_produce_req(&a, 7, 1, "x", -1, &t, 1);
	kb_produce_req(&b, 7, 2, "x", -1, &t, 1);
	/* the topic array count of frame 1 is not captured */
	kfk_stream_feed(&c->req, a.b, 20, a.n - 20, 1, 1);
	feed(&c->req, &b, 2);
	ck_assert_uint_eq(c->n, 2);
	ck_assert(c->f[0].sum.failed && !c->f[0].sum.complete);
	ck_assert(c->f[0].sum.acks_known);
	ck_assert(c->f[1].sum.complete);
	ck_assert_uint_eq(c->req.st.walk_failed, 1);
	ck_assert_uint_eq(c->req.st.sync_lost, 0);

	/* two frames in one write, the second one's size beyond the capture */
	kb_put(&rq, a.b, a.n);
	kb_put(&rq, b.b, b.n);
	kfk_stream_feed(&c->req, rq.b, a.n + 2, b.n - 2, 3, 1);
	ck_assert_uint_eq(c->n, 3);
	ck_assert_uint_eq(c->req.st.sync_lost, 1);
	ck_assert(!kfk_stream_synced(&c->req));
	feed(&c->req, &b, 4); /* a chunk that starts with a frame */
	ck_assert_uint_eq(c->n, 4);
	ck_assert_int_eq(c->f[3].corr, 2);
	ck_assert_uint_eq(c->req.st.resyncs, 1);
	kb_free(&rq);
	kb_free(&a);
	kb_free(&b);
	free(c);
}
END_TEST

/* ---- loss and mid-stream ------------------------------------------------------------ */

START_TEST(test_gap_and_response_resync)
{
	struct kb rq = { 0 }, r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
	struct kb_topic t = orders1;
	struct col *c = col_new();
	struct kb both = { 0 };

	kb_produce_req(&rq, 7, 1, "x", -1, &t, 1);
	kb_produce_req(&rq, 7, 2, "x", -1, &t, 1);
	kb_produce_req(&rq, 7, 3, "x", -1, &t, 1);
	feed(&c->req, &rq, 1);
	kb_produce_resp(&r1, 7, 1, &t, 1);
	kb_produce_resp(&r2, 7, 2, &t, 1);
	kb_produce_resp(&r3, 7, 3, &t, 1);
	/* the first response's body is lost in a gap */
	kfk_stream_feed(&c->resp, r1.b, 8, 0, 2, 1);
	kfk_stream_gap(&c->resp);
	/* a chunk starting mid-frame: refused */
	kfk_stream_feed(&c->resp, r1.b + 20, r1.n - 20, 0, 3, 1);
	ck_assert(!kfk_stream_synced(&c->resp));
	/* a chunk with a response nobody waits for, then response 2: accepted */
	kb_other_resp(&both, KFK_API_METADATA, 2, 999, 10);
	kb_put(&both, r2.b, r2.n);
	kfk_stream_feed(&c->resp, both.b, both.n, 0, 4, 1);
	feed(&c->resp, &r3, 5);
	ck_assert_uint_eq(c->n, 3 + 3);
	ck_assert(!c->f[3].matched);
	ck_assert(c->f[4].matched && c->f[4].corr == 2);
	ck_assert(c->f[5].matched && c->f[5].corr == 3);
	ck_assert_uint_eq(c->resp.st.sync_lost, 1);
	ck_assert_uint_eq(c->resp.st.unmatched, 1);
	kb_free(&rq);
	kb_free(&r1);
	kb_free(&r2);
	kb_free(&r3);
	kb_free(&both);
	free(c);
}
END_TEST

/* A connection picked up mid-stream: its first chunks are the middle of a
 * frame; requests resume at the next frame start, and responses to requests
 * never seen are ignored. */
START_TEST(test_mid_stream)
{
	struct kb rq = { 0 }, rs = { 0 };
	struct col *c = col_new();
	struct col *whole = col_new();
	size_t qa = 0, sa = 0, qcut, scut;

	conversation(&rq, &rs, 10);
	feed(&whole->req, &rq, 1);
	feed(&whole->resp, &rs, 2);
	/* frame boundaries after the 4th request / 4th response */
	for (int i = 0; i < 4; i++) {
		qa += 4 + ((size_t)rq.b[qa + 2] << 8 | rq.b[qa + 3]);
		sa += 4 + ((size_t)rs.b[sa + 2] << 8 | rs.b[sa + 3]);
	}
	qcut = qa - 9; /* inside the 4th request */
	scut = sa - 5;
	kfk_stream_feed(&c->req, rq.b + qcut, qa - qcut, 0, 1, 1);
	kfk_stream_feed(&c->req, rq.b + qa, rq.n - qa, 0, 1, 1);
	kfk_stream_feed(&c->resp, rs.b + scut, sa - scut, 0, 2, 1);
	kfk_stream_feed(&c->resp, rs.b + sa, rs.n - sa, 0, 2, 1);
	/* 7 requests seen (4..10), their 7 responses; none before */
	ck_assert_uint_eq(c->n, 14);
	for (size_t i = 0; i < c->n; i++) {
		ck_assert_int_ge(c->f[i].corr, 4);
		if (!c->f[i].request)
			ck_assert(c->f[i].matched);
	}
	kb_free(&rq);
	kb_free(&rs);
	free(c);
	free(whole);
}
END_TEST

/* ---- garbage and hostile lengths ----------------------------------------------------- */

START_TEST(test_garbage)
{
	struct col *c = col_new();
	uint8_t junk[4096];
	uint32_t x = 12345;
	struct kb ok = { 0 };

	for (size_t i = 0; i < sizeof(junk); i++) {
		x = x * 1103515245u + 12345u;
		junk[i] = (uint8_t)(x >> 16);
	}
	for (size_t off = 0; off + 64 <= sizeof(junk); off += 64) {
		kfk_stream_feed(&c->req, junk + off, 64, off % 3 ? 0 : 1000, 1, 1);
		kfk_stream_feed(&c->resp, junk + off, 64, 0, 1, 1);
	}
	ck_assert_uint_eq(c->n, 0);
	ck_assert(!kfk_stream_synced(&c->req));
	/* after all that, a real request starts a chunk: found */
	kb_produce_req(&ok, 7, 1, "x", -1, &orders1, 1);
	feed(&c->req, &ok, 2);
	ck_assert_uint_eq(c->n, 1);
	ck_assert(c->f[0].sum.complete);
	kb_free(&ok);
	free(c);
}
END_TEST

START_TEST(test_hostile_lengths)
{
	struct col *c = col_new();
	struct kb k = { 0 };
	size_t at;

	/* Produce v7 whose topic array claims 2^31-1 entries */
	at = kb_frame_begin(&k);
	kb_req_header(&k, KFK_API_PRODUCE, 7, 1, "x");
	kb_str(&k, NULL, 0);
	kb_i16(&k, 1);
	kb_i32(&k, 1000);
	kb_i32(&k, 0x7fffffff);
	kb_put(&k, NULL, 100);
	kb_frame_end(&k, at);
	/* Produce v9 (flexible) with a varint longer than 5 bytes */
	at = kb_frame_begin(&k);
	kb_req_header(&k, KFK_API_PRODUCE, 9, 2, "x");
	kb_put(&k, "\xff\xff\xff\xff\xff\xff\x01", 7);
	kb_frame_end(&k, at);
	/* Produce v7 whose records claim 1 GiB */
	at = kb_frame_begin(&k);
	kb_req_header(&k, KFK_API_PRODUCE, 7, 3, "x");
	kb_str(&k, NULL, 0);
	kb_i16(&k, 1);
	kb_i32(&k, 1000);
	kb_i32(&k, 1);
	kb_str(&k, "t", 0);
	kb_i32(&k, 1);
	kb_i32(&k, 0);
	kb_i32(&k, 1 << 30);
	kb_frame_end(&k, at);
	/* a batch whose record count is negative, one whose length is < 49 */
	at = kb_frame_begin(&k);
	kb_req_header(&k, KFK_API_PRODUCE, 7, 4, "x");
	kb_str(&k, NULL, 0);
	kb_i16(&k, 1);
	kb_i32(&k, 1000);
	kb_i32(&k, 1);
	kb_str(&k, "t", 0);
	kb_i32(&k, 1);
	kb_i32(&k, 0);
	{
		struct kb r = { 0 };

		kb_batch(&r, 0, -5, 0, 0);
		kb_count(&k, (int64_t)r.n, 0);
		kb_put(&k, r.b, r.n);
		kb_free(&r);
	}
	kb_frame_end(&k, at);
	feed(&c->req, &k, 1);
	ck_assert_uint_eq(c->n, 4);
	ck_assert(c->f[0].sum.failed);
	ck_assert(c->f[1].sum.failed);
	ck_assert(c->f[2].sum.failed);
	ck_assert(c->f[3].sum.complete && c->f[3].sum.records_unknown);
	ck_assert_uint_eq(c->req.st.sync_lost, 0);
	/* a size beyond any frame: the place is lost */
	kfk_stream_feed(&c->req, (const uint8_t *)"\x7f\xff\xff\xff\x00\x00\x00\x07", 8, 0, 2, 1);
	ck_assert(!kfk_stream_synced(&c->req));
	kb_free(&k);
	free(c);
}
END_TEST

/* A frame longer than its fields (a newer version's extra bytes): the
 * fields are read, the rest skipped by the frame's size, the next frame
 * read. */
START_TEST(test_trailing_bytes)
{
	struct col *c = col_new();
	struct kb k = { 0 }, b = { 0 };

	kb_produce_req(&k, 7, 1, "x", -1, &orders1, 1);
	kb_put(&k, "extra", 5);
	k.b[3] = (uint8_t)(k.b[3] + 5); /* the size covers them */
	kb_produce_req(&b, 7, 2, "x", -1, &orders1, 1);
	kb_put(&k, b.b, b.n);
	feed(&c->req, &k, 1);
	ck_assert_uint_eq(c->n, 2);
	ck_assert(c->f[0].sum.complete && c->f[0].sum.trailing);
	ck_assert_uint_eq(c->f[0].sum.records, 5);
	ck_assert(c->f[1].sum.complete && !c->f[1].sum.trailing);
	ck_assert_uint_eq(c->req.st.trailing, 1);
	kb_free(&k);
	kb_free(&b);
	free(c);
}
END_TEST

static Suite *kafka_suite(void)
{
	Suite *s = suite_create("kafka_stream");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_check_request);
	tcase_add_test(tc, test_produce_v7_roundtrip);
	tcase_add_test(tc, test_produce_all_versions);
	tcase_add_test(tc, test_fetch_all_versions);
	tcase_add_test(tc, test_fetch_partial_tail_legacy_errors);
	tcase_add_test(tc, test_headers_flexible);
	tcase_add_test(tc, test_every_split_point);
	tcase_add_test(tc, test_many_in_flight);
	tcase_add_test(tc, test_truncated_records_keep_sync);
	tcase_add_test(tc, test_truncated_structure);
	tcase_add_test(tc, test_gap_and_response_resync);
	tcase_add_test(tc, test_mid_stream);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_hostile_lengths);
	tcase_add_test(tc, test_trailing_bytes);
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
