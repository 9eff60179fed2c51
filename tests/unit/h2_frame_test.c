/*
 * h2_frame_test.c - plugins/grpc/h2_frame.c and h2_conn.c from byte
 * vectors: frame header rules, the preface, chains and resync; then the
 * incremental reader on whole conversations fed at once, at every split
 * point and byte by byte (the event log must not change), with padding,
 * CONTINUATION, interleaved streams, truncation by count, gaps, garbage
 * and connections joined mid-way.
 *
 * The one idea: the reader's events are written to a text log, so "same
 * behaviour" is a string comparison and every test states the exact
 * events it expects.
 */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "h2_conn.h"
#include "test/h2_build.h"

/* --- frame headers -------------------------------------------------------------------- */

static int check_hdr(uint32_t len, uint8_t type, uint8_t flags, uint32_t sid)
{
	struct h2b b = { 0 };
	struct h2_frame_hdr h;
	int r;

	h2b_hdr(&b, len, type, flags, sid);
	h2_frame_hdr_parse(b.p, &h);
	r = h2_frame_hdr_check(&h, H2_MAX_FRAME_LEN);
	h2b_free(&b);
	return r;
}

START_TEST(frame_header_rules)
{
	struct h2_frame_hdr h;
	uint8_t raw[9] = { 0x01, 0x02, 0x03, 0x01, 0x25, 0x80, 0x00, 0x00, 0x05 };

	h2_frame_hdr_parse(raw, &h);
	ck_assert_uint_eq(h.len, 0x010203);
	ck_assert_uint_eq(h.type, H2_HEADERS);
	ck_assert_uint_eq(h.flags, 0x25);
	ck_assert_uint_eq(h.r, 1);
	ck_assert_uint_eq(h.sid, 5);
	ck_assert_int_eq(h2_frame_hdr_check(&h, H2_MAX_FRAME_LEN), -1); /* reserved bit */

	ck_assert_int_eq(check_hdr(10, H2_DATA, H2_F_END_STREAM | H2_F_PADDED, 1), 0);
	ck_assert_int_eq(check_hdr(10, H2_DATA, 0, 0), -1);              /* stream 0 */
	ck_assert_int_eq(check_hdr(10, H2_DATA, 0x2, 1), -1);            /* undefined flag */
	ck_assert_int_eq(check_hdr(0, H2_DATA, H2_F_PADDED, 1), -1);     /* no pad length */
	ck_assert_int_eq(check_hdr(5, H2_HEADERS, H2_F_PRIORITY, 3), 0);
	ck_assert_int_eq(check_hdr(5, H2_HEADERS, H2_F_PRIORITY | H2_F_PADDED, 3), -1);
	ck_assert_int_eq(check_hdr(5, H2_PRIORITY, 0, 3), 0);
	ck_assert_int_eq(check_hdr(4, H2_PRIORITY, 0, 3), -1);
	ck_assert_int_eq(check_hdr(4, H2_RST_STREAM, 0, 3), 0);
	ck_assert_int_eq(check_hdr(4, H2_RST_STREAM, 0, 0), -1);
	ck_assert_int_eq(check_hdr(12, H2_SETTINGS, 0, 0), 0);
	ck_assert_int_eq(check_hdr(13, H2_SETTINGS, 0, 0), -1);
	ck_assert_int_eq(check_hdr(6, H2_SETTINGS, H2_F_ACK, 0), -1);
	ck_assert_int_eq(check_hdr(0, H2_SETTINGS, H2_F_ACK, 0), 0);
	ck_assert_int_eq(check_hdr(0, H2_SETTINGS, 0, 1), -1);
	ck_assert_int_eq(check_hdr(8, H2_PING, H2_F_ACK, 0), 0);
	ck_assert_int_eq(check_hdr(9, H2_PING, 0, 0), -1);
	ck_assert_int_eq(check_hdr(8, H2_GOAWAY, 0, 0), 0);
	ck_assert_int_eq(check_hdr(7, H2_GOAWAY, 0, 0), -1);
	ck_assert_int_eq(check_hdr(4, H2_WINDOW_UPDATE, 0, 0), 0);
	ck_assert_int_eq(check_hdr(4, H2_WINDOW_UPDATE, 0, 7), 0);
	ck_assert_int_eq(check_hdr(3, H2_PUSH_PROMISE, H2_F_END_HEADERS, 2), -1);
	ck_assert_int_eq(check_hdr(4, H2_PUSH_PROMISE, H2_F_END_HEADERS, 2), 0);
	ck_assert_int_eq(check_hdr(1, H2_CONTINUATION, H2_F_END_HEADERS, 1), 0);
	ck_assert_int_eq(check_hdr(1, H2_CONTINUATION, H2_F_END_STREAM, 1), -1);
	ck_assert_int_eq(check_hdr(1, 0x0b, 0, 1), -1); /* unknown type */
	ck_assert_int_eq(h2_frame_hdr_check(&(struct h2_frame_hdr){ .len = 20000, .type = 0, .sid = 1 },
	                                    H2_DEFAULT_MAX_FRAME), -1);
	ck_assert_str_eq(h2_error_name(8), "CANCEL");
	ck_assert_ptr_null(h2_error_name(99));
}
END_TEST

START_TEST(preface_check)
{
	ck_assert_int_eq(h2_preface_check((const uint8_t *)H2_PREFACE, 24), 1);
	ck_assert_int_eq(h2_preface_check((const uint8_t *)H2_PREFACE "xyz", 27), 1);
	ck_assert_int_eq(h2_preface_check((const uint8_t *)"PRI * HTTP/2", 12), 0);
	ck_assert_int_eq(h2_preface_check((const uint8_t *)"", 0), 0);
	ck_assert_int_eq(h2_preface_check((const uint8_t *)"GET / HTTP/1.1\r\n", 16), -1);
	ck_assert_int_eq(h2_preface_check((const uint8_t *)"PRI * HTTP/1.1\r\n", 16), -1);
}
END_TEST

START_TEST(chain_and_resync)
{
	struct h2b b = { 0 };
	uint32_t kv[] = { H2_SET_MAX_CONCURRENT_STREAMS, 100 };
	size_t end;
	long off;

	h2b_add(&b, "\x17\x42garbage-bytes!", 16);
	h2b_settings(&b, kv, 1);
	h2b_window(&b, 0, 1000);
	h2b_data(&b, 1, 40, 0, 0);
	ck_assert_int_eq(h2_chain_walk(b.p + 16, b.len - 16, H2_MAX_FRAME_LEN, 64, &end), 3);
	ck_assert_uint_eq(end, b.len - 16);
	ck_assert_int_eq(h2_chain_walk(b.p, b.len, H2_MAX_FRAME_LEN, 64, &end), -1);
	off = h2_resync_find(b.p, b.len, 0, 1 << 16);
	ck_assert_int_eq(off, 16);
	/* one frame only: accepted at offset 0 when it ends inside the bytes */
	ck_assert_int_eq(h2_resync_find(b.p + 16, 15, 0, 1 << 16), 0);
	ck_assert_int_eq(h2_resync_find(b.p + 16, 20, 0, 1 << 16), 0);
	ck_assert_int_eq(h2_resync_find(b.p + 16, 14, 0, 1 << 16), -1);
	ck_assert_int_eq(h2_resync_find(b.p + 17, 14, 0, 1 << 16), -1);
	/* a transfer cut by the capture: the frame ends within its total size */
	ck_assert_int_eq(h2_resync_find(b.p + 16, 12, 15, 1 << 16), 0);
	ck_assert_int_eq(h2_resync_find(b.p + 16, 12, 14, 1 << 16), -1);
	/* HTTP/1 text never looks like frames */
	ck_assert_int_eq(h2_resync_find((const uint8_t *)"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27,
	                                27, 1 << 16), -1);
	h2b_free(&b);
}
END_TEST

/* Random bytes: no false frame boundary in 4 MB. */
START_TEST(resync_random_bytes)
{
	uint64_t s = 0x1234567;
	uint8_t buf[4096];
	int found = 0;

	for (int round = 0; round < 1000; round++) {
		for (size_t i = 0; i < sizeof(buf); i++) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			buf[i] = (uint8_t)s;
		}
		found += h2_resync_find(buf, sizeof(buf), 0, sizeof(buf)) >= 0;
		found += h2_resync_find(buf, sizeof(buf), 1 << 16, sizeof(buf)) >= 0;
	}
	ck_assert_int_eq(found, 0);
}
END_TEST

/* --- the reader --------------------------------------------------------------------------- */

struct log {
	char s[65536];
	size_t n;
};

static void lg(struct log *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lg(struct log *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (l->n < sizeof(l->s))
		l->n += (size_t)vsnprintf(l->s + l->n, sizeof(l->s) - l->n, fmt, ap);
	va_end(ap);
	if (l->n > sizeof(l->s))
		l->n = sizeof(l->s);
}

static void e_preface(void *c, int dir)
{
	lg(c, "P%d\n", dir);
}

static void e_begin(void *c, int dir, uint32_t sid, uint8_t type, bool es, uint64_t ts)
{
	lg(c, "B%d s%u t%u%s ts%llu:", dir, sid, type, es ? " ES" : "", (unsigned long long)ts);
}

static void e_field(void *c, const uint8_t *n, size_t nl, const uint8_t *v, size_t vl)
{
	lg(c, " %.*s=%.*s", (int)nl, (const char *)n, (int)vl, (const char *)v);
}

static void e_end(void *c, const struct hpack_result *r)
{
	lg(c, " |%s%s%s\n", r->unknown ? " unknown" : "", r->cut ? " cut" : "",
	   r->error ? " error" : "");
}

static void e_data(void *c, int dir, uint32_t sid, uint32_t len, bool es, uint64_t ts)
{
	lg(c, "D%d s%u %u%s\n", dir, sid, len, es ? " ES" : "");
}

static void e_rst(void *c, int dir, uint32_t sid, uint32_t code, uint64_t ts)
{
	lg(c, "R%d s%u %u\n", dir, sid, code);
}

static void e_goaway(void *c, int dir, uint32_t last, bool known, uint32_t code, uint64_t ts)
{
	lg(c, "G%d %u%s %u\n", dir, last, known ? "" : "?", code);
}

static void e_loss(void *c, int dir, uint64_t ts)
{
	lg(c, "L%d\n", dir);
}

static const struct h2_events evs = {
	.preface = e_preface,
	.block_begin = e_begin,
	.field = e_field,
	.block_end = e_end,
	.data = e_data,
	.rst = e_rst,
	.goaway = e_goaway,
	.loss = e_loss,
};

/* One direction's bytes, and the places where one write ends. */
struct side {
	struct h2b b;
	size_t marks[64];
	unsigned n_marks;
};

static void mark(struct side *s)
{
	s->marks[s->n_marks++] = s->b.len;
}

/*
 * A unary gRPC call and an HTTP/2 GET on one connection, seen by a
 * server: ingress = client bytes (preface, SETTINGS, requests), egress =
 * server bytes. Streams 1 and 3 interleave and end in the other order.
 */
static void conversation(struct side *cl, struct side *sv)
{
	nghttp2_hd_deflater *dc, *ds;
	uint32_t kv[] = { H2_SET_MAX_CONCURRENT_STREAMS, 100, H2_SET_INITIAL_WINDOW_SIZE, 65535 };
	uint8_t blk[512];
	size_t n;

	nghttp2_hd_deflate_new(&dc, 4096);
	nghttp2_hd_deflate_new(&ds, 4096);
	memset(cl, 0, sizeof(*cl));
	memset(sv, 0, sizeof(*sv));
	h2b_settings(&sv->b, kv, 2);
	mark(sv);
	h2b_preface(&cl->b);
	h2b_settings(&cl->b, kv, 1);
	h2b_window(&cl->b, 0, 1 << 20);
	mark(cl);
	h2b_frame(&sv->b, H2_SETTINGS, H2_F_ACK, 0, NULL, 0);
	mark(sv);
	/* stream 1: gRPC, headers split in HEADERS(padded) + 2 CONTINUATIONs */
	n = h2b_hpack(dc, blk, sizeof(blk), ":method", "POST", ":scheme", "http", ":path",
	              "/helloworld.Greeter/SayHello", ":authority", "localhost:50051", "content-type",
	              "application/grpc", "te", "trailers", "grpc-timeout", "5S", NULL);
	h2b_block(&cl->b, 1, blk, n, 0, 20, 7);
	h2b_grpc_msg(&cl->b, 1, 12, 1);
	mark(cl);
	/* stream 3: GET, with PRIORITY and END_STREAM on HEADERS */
	n = h2b_hpack(dc, blk, sizeof(blk), ":method", "GET", ":scheme", "http", ":path",
	              "/index.html?q=1", ":authority", "localhost:50051", NULL);
	{
		uint8_t p[256];
		memcpy(p, "\x80\x00\x00\x01\x10", 5);
		memcpy(p + 5, blk, n);
		h2b_frame(&cl->b, H2_HEADERS, H2_F_END_STREAM | H2_F_END_HEADERS | H2_F_PRIORITY, 3, p,
		          n + 5);
	}
	h2b_ping(&cl->b, 0);
	mark(cl);
	/* the server answers stream 3 first, then 1 with trailers */
	h2b_headers(&sv->b, ds, 3, 0, ":status", "200", "content-type", "text/html", NULL);
	h2b_data(&sv->b, 3, 100, 0, 10);
	h2b_headers(&sv->b, ds, 1, 0, ":status", "200", "content-type", "application/grpc", NULL);
	mark(sv);
	h2b_data(&sv->b, 3, 0, 1, 0);
	h2b_grpc_msg(&sv->b, 1, 20, 0);
	h2b_headers(&sv->b, ds, 1, 1, "grpc-status", "0", "grpc-message", "", NULL);
	h2b_ping(&sv->b, 1);
	h2b_goaway(&sv->b, 3, 0);
	mark(sv);
	nghttp2_hd_deflate_del(dc);
	nghttp2_hd_deflate_del(ds);
}

static const char conv_log[] =
	"P0\n"
	"B0 s1 t1 ts4: :method=POST :scheme=http :path=/helloworld.Greeter/SayHello "
	":authority=localhost:50051 content-type=application/grpc te=trailers grpc-timeout=5S |\n"
	"D0 s1 17 ES\n"
	"B0 s3 t1 ES ts5: :method=GET :scheme=http :path=/index.html?q=1 "
	":authority=localhost:50051 |\n"
	"B1 s3 t1 ts6: :status=200 content-type=text/html |\n"
	"D1 s3 111\n"
	"B1 s1 t1 ts6: :status=200 content-type=application/grpc |\n"
	"D1 s3 0 ES\n"
	"D1 s1 25\n"
	"B1 s1 t1 ES ts7: grpc-status=0 grpc-message= |\n"
	"G1 3 0\n";

/* Feed both sides, interleaved write by write as a server sees them
 * (timestamps: the write's number). split: also cut every write at that
 * many bytes into separate chunks (0: whole writes). */
static void run(struct h2_conn *h, struct side *cl, struct side *sv, size_t split)
{
	static const int order[] = { 1, 0, 1, 0, 0, 1, 1 }; /* 1 = server write */
	size_t pos[2] = { 0, 0 };
	unsigned mi[2] = { 0, 0 };
	uint64_t ts = 0;

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		struct side *s = order[i] ? sv : cl;
		int dir = order[i] ? 1 : 0; /* server: egress = 1 */
		size_t end = s->marks[mi[dir]++];

		ts++;
		while (pos[dir] < end) {
			size_t k = end - pos[dir];
			if (split && k > split)
				k = split;
			ck_assert_int_eq(h2_conn_feed(h, dir, s->b.p + pos[dir], k, k, 0, ts), 0);
			pos[dir] += k;
		}
	}
}

START_TEST(conversation_whole_and_every_split)
{
	struct side cl, sv;
	size_t max = 0;

	conversation(&cl, &sv);
	max = cl.b.len > sv.b.len ? cl.b.len : sv.b.len;
	for (size_t split = 0; split <= max; split++) {
		struct log l = { .n = 0 };
		struct h2_conn *h = h2_conn_new(0, &evs, &l);
		run(h, &cl, &sv, split);
		ck_assert_msg(!strcmp(l.s, conv_log), "split %zu:\n%s", split, l.s);
		ck_assert_int_eq(h2_conn_mode(h), H2_MODE_FROM_START);
		ck_assert_uint_eq(h2_conn_stats(h)->losses, 0);
		ck_assert_uint_eq(h2_conn_stats(h)->unknown_fields, 0);
		h2_conn_free(h);
	}
	h2b_free(&cl.b);
	h2b_free(&sv.b);
}
END_TEST

/* Role unknown: the preface tells which direction carries requests. */
START_TEST(role_from_preface)
{
	struct side cl, sv;
	struct log l = { .n = 0 };
	struct h2_conn *h;

	conversation(&cl, &sv);
	h = h2_conn_new(-1, &evs, &l);
	run(h, &cl, &sv, 0);
	ck_assert_int_eq(h2_conn_req_dir(h), 0);
	ck_assert_str_eq(l.s, conv_log);
	h2_conn_free(h);
	h2b_free(&cl.b);
	h2b_free(&sv.b);
}
END_TEST

/*
 * The client side's bytes truncated (orig_len > len) at every possible
 * capture size, one write at a time: cuts inside DATA are followed by
 * count; cuts inside a header block cut that block only; a cut frame
 * header loses the position until the next write, where frames are found
 * again. Never an event that is not in the full log.
 */
START_TEST(truncation_at_every_cap)
{
	struct side cl, sv;

	conversation(&cl, &sv);
	for (size_t cap = 1; cap < 200; cap++) {
		struct log l = { .n = 0 };
		struct h2_conn *h = h2_conn_new(0, &evs, &l);
		size_t pos = 0;
		for (unsigned m = 0; m < cl.n_marks; m++) {
			size_t end = cl.marks[m], n = end - pos;
			h2_conn_feed(h, 0, cl.b.p + pos, n < cap ? n : cap, n, 0, m + 1);
			pos = end;
		}
		/* The GET on stream 3 (its own write) is decoded whenever its
		 * HEADERS frame fits under the cap. */
		if (cap >= cl.marks[2] - cl.marks[1] - 17) {
			ck_assert_ptr_nonnull(strstr(l.s, "B0 s3 t1 ES"));
		}
		ck_assert_ptr_null(strstr(l.s, " error"));
		h2_conn_free(h);
	}
	h2b_free(&cl.b);
	h2b_free(&sv.b);
}
END_TEST

/* DATA bigger than the capture: skipped by count, nothing lost. */
START_TEST(big_data_skipped_by_count)
{
	struct h2b b = { 0 };
	nghttp2_hd_deflater *dc;
	struct log l = { .n = 0 };
	struct h2_conn *h = h2_conn_new(1, &evs, &l);
	size_t a, c;

	nghttp2_hd_deflate_new(&dc, 4096);
	h2b_preface(&b);
	h2b_headers(&b, dc, 1, 0, ":method", "POST", ":path", "/up", NULL);
	a = b.len;
	h2b_data(&b, 1, 16000, 0, 0);
	c = b.len;
	h2_conn_feed(h, 1, b.p, a, a, 0, 1);
	h2_conn_feed(h, 1, b.p + a, 4096, c - a, 0, 2); /* one write, 4 KiB captured */
	a = b.len;
	h2b_data(&b, 1, 16000, 1, 200);
	c = b.len;
	h2_conn_feed(h, 1, b.p + a, 4096, c - a, 0, 2);
	a = b.len;
	h2b_headers(&b, dc, 3, 1, ":method", "GET", ":path", "/next", NULL);
	h2_conn_feed(h, 1, b.p + a, b.len - a, b.len - a, 0, 3);
	ck_assert_str_eq(l.s, "P1\nB1 s1 t1 ts1: :method=POST :path=/up |\nD1 s1 16000\n"
	                      "D1 s1 16201 ES\nB1 s3 t1 ES ts3: :method=GET :path=/next |\n");
	ck_assert_uint_eq(h2_conn_stats(h)->losses, 0);
	h2_conn_free(h);
	h2b_free(&b);
	nghttp2_hd_deflate_del(dc);
}
END_TEST

/* A header block bigger than the capture: decoded up to the cut, then
 * the table is unknown; a later reference to a field inserted in the
 * lost part is not attributed. */
START_TEST(header_block_cut)
{
	struct h2b b = { 0 };
	nghttp2_hd_deflater *dc;
	struct log l = { .n = 0 };
	struct h2_conn *h = h2_conn_new(1, &evs, &l);
	char big[3000];
	size_t a;

	memset(big, 'c', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	nghttp2_hd_deflate_new(&dc, 4096);
	h2b_preface(&b);
	h2_conn_feed(h, 1, b.p, b.len, b.len, 0, 1);
	a = b.len;
	h2b_headers(&b, dc, 1, 1, ":method", "GET", ":path", "/a", "cookie", big, "x-after", "1",
	            NULL);
	h2_conn_feed(h, 1, b.p + a, 100, b.len - a, 0, 2);
	a = b.len;
	h2b_headers(&b, dc, 3, 1, ":method", "GET", ":path", "/a", "x-after", "1", NULL);
	h2_conn_feed(h, 1, b.p + a, b.len - a, b.len - a, 0, 3);
	ck_assert_str_eq(l.s, "P1\nB1 s1 t1 ES ts2: :method=GET :path=/a | cut\n"
	                      "B1 s3 t1 ES ts3: :method=GET :path=/a | unknown\n");
	ck_assert_uint_eq(h2_conn_stats(h)->losses, 0);
	h2_conn_free(h);
	h2b_free(&b);
	nghttp2_hd_deflate_del(dc);
}
END_TEST

/* A gap: the position is lost; frames are found again in the next chunk,
 * and the table of that direction is unknown from then on. */
START_TEST(gap_then_resync)
{
	struct h2b b = { 0 };
	nghttp2_hd_deflater *dc;
	struct log l = { .n = 0 };
	struct h2_conn *h = h2_conn_new(0, &evs, &l);
	size_t a, c;

	nghttp2_hd_deflate_new(&dc, 4096);
	h2b_preface(&b);
	h2b_headers(&b, dc, 1, 1, ":method", "GET", ":path", "/one", "x-k", "v1", NULL);
	h2_conn_feed(h, 0, b.p, b.len, b.len, 0, 1);
	a = b.len;
	h2b_headers(&b, dc, 3, 1, ":method", "GET", ":path", "/two", "x-k", "v2", NULL);
	c = b.len;
	h2b_headers(&b, dc, 5, 1, ":method", "GET", ":path", "/two", "x-k", "v2", NULL);
	h2b_ping(&b, 0);
	/* stream 3's write is lost; the next write starts mid-way of nothing */
	h2_conn_feed(h, 0, b.p + c, b.len - c, b.len - c, H2_IN_GAP, 3);
	ck_assert_str_eq(l.s, "P0\nB0 s1 t1 ES ts1: :method=GET :path=/one x-k=v1 |\nL0\n"
	                      "B0 s5 t1 ES ts3: :method=GET :path=/two | unknown\n");
	ck_assert_uint_eq(h2_conn_stats(h)->resyncs, 1);
	(void)a;
	h2_conn_free(h);
	h2b_free(&b);
	nghttp2_hd_deflate_del(dc);
}
END_TEST

/* Garbage in the middle: counted, lost, found again after it. */
START_TEST(garbage_then_resync)
{
	struct h2b b = { 0 };
	nghttp2_hd_deflater *dc;
	struct log l = { .n = 0 };
	struct h2_conn *h = h2_conn_new(0, &evs, &l);

	nghttp2_hd_deflate_new(&dc, 4096);
	h2b_preface(&b);
	h2b_headers(&b, dc, 1, 1, ":method", "GET", ":path", "/one", NULL);
	h2b_add(&b, "\xff\xff\xff\xffjunk-junk-junk", 18);
	h2b_window(&b, 0, 5);
	h2b_headers(&b, dc, 3, 1, ":method", "GET", ":path", "/one", NULL);
	for (size_t i = 0; i < b.len; i++) /* byte by byte */
		h2_conn_feed(h, 0, b.p + i, 1, 1, 0, 1);
	ck_assert_uint_eq(h2_conn_stats(h)->garbage, 1);
	ck_assert_ptr_nonnull(strstr(l.s, "L0\n"));
	ck_assert_uint_eq(h2_conn_stats(h)->losses, 1);
	h2_conn_free(h);

	/* the same in one chunk: found again within the chunk */
	memset(&l, 0, sizeof(l));
	h = h2_conn_new(0, &evs, &l);
	h2_conn_feed(h, 0, b.p, b.len, b.len, 0, 1);
	ck_assert_str_eq(l.s, "P0\nB0 s1 t1 ES ts1: :method=GET :path=/one |\nL0\n"
	                      "B0 s3 t1 ES ts1: :method=GET :path=/one |\n");
	h2_conn_free(h);
	h2b_free(&b);
	nghttp2_hd_deflate_del(dc);
}
END_TEST

/*
 * Joined mid-connection: the client's encoder has been running for a
 * while (nghttp2's encoder never indexes :path, so :path stays known; the
 * plugin tests use an encoder that indexes everything, like gRPC's). Fields it refers to by dynamic index are unknown, fields it
 * inserts from now on are known, and nothing is ever attributed wrongly.
 */
START_TEST(midstream_join)
{
	struct h2b before = { 0 }, after = { 0 };
	nghttp2_hd_deflater *dc;
	struct log l = { .n = 0 };
	struct h2_conn *h = h2_conn_new(0, &evs, &l);

	nghttp2_hd_deflate_new(&dc, 4096);
	h2b_headers(&before, dc, 1, 1, ":method", "POST", ":path", "/pkg.Svc/A", "content-type",
	            "application/grpc", NULL);
	h2b_headers(&after, dc, 3, 1, ":method", "POST", ":path", "/pkg.Svc/A", "content-type",
	            "application/grpc", NULL);
	h2b_headers(&after, dc, 5, 1, ":method", "POST", ":path", "/pkg.Svc/B", "content-type",
	            "application/grpc", NULL);
	h2b_headers(&after, dc, 7, 1, ":method", "POST", ":path", "/pkg.Svc/B", NULL);
	h2_conn_feed(h, 0, after.p, after.len, after.len, 0, 9);
	ck_assert_int_eq(h2_conn_mode(h), H2_MODE_MIDSTREAM);
	ck_assert_str_eq(l.s, "B0 s3 t1 ES ts9: :method=POST :path=/pkg.Svc/A | unknown\n"
	                      "B0 s5 t1 ES ts9: :method=POST :path=/pkg.Svc/B | unknown\n"
	                      "B0 s7 t1 ES ts9: :method=POST :path=/pkg.Svc/B |\n");
	h2_conn_free(h);
	h2b_free(&before);
	h2b_free(&after);
	nghttp2_hd_deflate_del(dc);
}
END_TEST

/* A response direction whose first header block comes before any preface
 * is mid-connection too (role known as client here: ingress = responses). */
START_TEST(midstream_response_first)
{
	struct h2b b = { 0 };
	nghttp2_hd_deflater *ds;
	struct log l = { .n = 0 };
	struct h2_conn *h = h2_conn_new(1, &evs, &l);

	nghttp2_hd_deflate_new(&ds, 4096);
	h2b_headers(&b, ds, 1, 0, ":status", "200", "content-type", "application/grpc", NULL);
	h2b_headers(&b, ds, 3, 0, ":status", "200", "content-type", "application/grpc", NULL);
	h2_conn_feed(h, 0, b.p, b.len, b.len, 0, 1);
	ck_assert_int_eq(h2_conn_mode(h), H2_MODE_MIDSTREAM);
	/* The first block was decoded with a reset table: its literals are
	 * known; the second refers to them (exact, inserted after the reset). */
	ck_assert_str_eq(l.s, "B0 s1 t1 ts1: :status=200 content-type=application/grpc |\n"
	                      "B0 s3 t1 ts1: :status=200 content-type=application/grpc |\n");
	h2_conn_free(h);
	h2b_free(&b);
	nghttp2_hd_deflate_del(ds);
}
END_TEST

/* CONTINUATION whose HEADERS was lost: skipped, the table reset after. */
START_TEST(orphan_continuation)
{
	struct h2b b = { 0 };
	nghttp2_hd_deflater *dc;
	uint8_t blk[512];
	size_t n, cut;
	struct log l = { .n = 0 };
	struct h2_conn *h = h2_conn_new(0, &evs, &l);

	nghttp2_hd_deflate_new(&dc, 4096);
	h2b_preface(&b);
	h2_conn_feed(h, 0, b.p, b.len, b.len, 0, 1);
	n = h2b_hpack(dc, blk, sizeof(blk), ":method", "GET", ":path", "/x", "x-long",
	              "0123456789012345678901234567890123456789", NULL);
	h2b_block(&b, 1, blk, n, 1, 10, 0);
	cut = b.len;
	h2b_headers(&b, dc, 3, 1, ":method", "GET", ":path", "/x", "x-long",
	            "0123456789012345678901234567890123456789", NULL);
	/* lose the HEADERS frame (first 19 bytes after the preface), keep the rest */
	h2_conn_feed(h, 0, b.p + 24 + 19, cut - 24 - 19, cut - 24 - 19, H2_IN_GAP, 2);
	h2_conn_feed(h, 0, b.p + cut, b.len - cut, b.len - cut, 0, 3);
	ck_assert_str_eq(l.s, "P0\nL0\nB0 s3 t1 ES ts3: :method=GET :path=/x | unknown\n");
	h2_conn_free(h);
	h2b_free(&b);
	nghttp2_hd_deflate_del(dc);
}
END_TEST

/* SETTINGS_HEADER_TABLE_SIZE lets the other side's encoder grow its table
 * beyond what we accept by default. */
START_TEST(settings_header_table_size)
{
	for (int with_settings = 0; with_settings < 2; with_settings++) {
		struct h2b c = { 0 }, s = { 0 };
		nghttp2_hd_deflater *ds, *dc;
		uint32_t kv[] = { H2_SET_HEADER_TABLE_SIZE, 200000 };
		struct log l = { .n = 0 };
		struct h2_conn *h = h2_conn_new(0, &evs, &l);

		nghttp2_hd_deflate_new(&dc, 4096);
		nghttp2_hd_deflate_new(&ds, 200000);
		nghttp2_hd_deflate_change_table_size(ds, 200000);
		h2b_preface(&c);
		if (with_settings)
			h2b_settings(&c, kv, 1);
		h2b_headers(&c, dc, 1, 1, ":method", "GET", NULL);
		h2_conn_feed(h, 0, c.p, c.len, c.len, 0, 1);
		h2b_headers(&s, ds, 1, 1, ":status", "204", NULL);
		h2_conn_feed(h, 1, s.p, s.len, s.len, 0, 2);
		ck_assert_uint_eq(h2_conn_stats(h)->hpack_errors, with_settings ? 0 : 1);
		h2_conn_free(h);
		h2b_free(&c);
		h2b_free(&s);
		nghttp2_hd_deflate_del(ds);
		nghttp2_hd_deflate_del(dc);
	}
}
END_TEST

/* RST_STREAM, GOAWAY and PUSH_PROMISE, with their payloads cut or not. */
START_TEST(control_frames)
{
	struct h2b b = { 0 };
	nghttp2_hd_deflater *ds;
	uint8_t blk[128], pp[256];
	size_t n;
	struct log l = { .n = 0 };
	struct h2_conn *h = h2_conn_new(0, &evs, &l);

	nghttp2_hd_deflate_new(&ds, 4096);
	h2b_settings(&b, NULL, 0);
	n = h2b_hpack(ds, blk, sizeof(blk), ":method", "GET", ":path", "/pushed.css", NULL);
	ck_assert_uint_le(n, sizeof(blk));
	n = n < sizeof(blk) ? n : sizeof(blk); /* for -O3's bounds warnings */
	memcpy(pp, "\x00\x00\x00\x02", 4);
	memcpy(pp + 4, blk, n);
	h2b_frame(&b, H2_PUSH_PROMISE, H2_F_END_HEADERS, 1, pp, n + 4);
	h2b_rst(&b, 1, 8);
	h2b_rst(&b, 3, 2);
	h2_conn_feed(h, 1, b.p, b.len - 2, b.len, 0, 1); /* last RST's code cut */
	ck_assert_str_eq(l.s, "B1 s1 t5 ts1: :method=GET :path=/pushed.css |\nR1 s1 8\n"
	                      "R1 s3 4294967295\n");
	h2_conn_free(h);
	h2b_free(&b);
	nghttp2_hd_deflate_del(ds);
}
END_TEST

/* A header block larger than H2_BLOCK_MAX is cut, not buffered whole. */
START_TEST(huge_block_cut)
{
	struct h2b b = { 0 };
	struct log l = { .n = 0 };
	struct h2_conn *h = h2_conn_new(0, &evs, &l);
	uint8_t frag[16384];
	/* one literal field whose value (98000 bytes) runs through all frames */
	static const uint8_t head[] = { 0x00, 0x01, 'a', 0x7f, 0xd1, 0xfc, 0x05 };

	memset(frag, 'b', sizeof(frag));
	memcpy(frag, head, sizeof(head));
	h2b_preface(&b);
	h2b_frame(&b, H2_HEADERS, 0, 1, frag, sizeof(frag));
	for (int i = 0; i < 5; i++)
		h2b_frame(&b, H2_CONTINUATION, i == 4 ? H2_F_END_HEADERS : 0, 1, frag + 16,
		          sizeof(frag) - 16);
	h2_conn_feed(h, 0, b.p, b.len, b.len, 0, 1);
	ck_assert_uint_eq(h2_conn_stats(h)->blocks_cut, 1);
	ck_assert_ptr_nonnull(strstr(l.s, " | cut\n"));
	h2_conn_free(h);
	h2b_free(&b);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("h2");
	TCase *t = tcase_create("h2");

	tcase_set_timeout(t, 120);
	tcase_add_test(t, frame_header_rules);
	tcase_add_test(t, preface_check);
	tcase_add_test(t, chain_and_resync);
	tcase_add_test(t, resync_random_bytes);
	tcase_add_test(t, conversation_whole_and_every_split);
	tcase_add_test(t, role_from_preface);
	tcase_add_test(t, truncation_at_every_cap);
	tcase_add_test(t, big_data_skipped_by_count);
	tcase_add_test(t, header_block_cut);
	tcase_add_test(t, gap_then_resync);
	tcase_add_test(t, garbage_then_resync);
	tcase_add_test(t, midstream_join);
	tcase_add_test(t, midstream_response_first);
	tcase_add_test(t, orphan_continuation);
	tcase_add_test(t, settings_header_table_size);
	tcase_add_test(t, control_frames);
	tcase_add_test(t, huge_block_cut);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
