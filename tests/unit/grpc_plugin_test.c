/*
 * grpc_plugin_test.c - the grpc plugin driven through the test host like
 * the core drives it: detection, gRPC unary and streaming calls with every
 * kind of ending, plain HTTP/2, both roles and an unknown role, many
 * interleaved streams, every split point, capture cuts and gaps, garbage,
 * a connection joined mid-way (stale dynamic-table entries never
 * attributed), privacy, and the metrics each span records.
 *
 * The one idea: a conversation is a list of writes by the client and the
 * server, built with real HPACK encoders (nghttp2's, or one that indexes
 * every field like gRPC's); the same list is fed as a server process sees
 * it or as a client process sees it, whole or cut anywhere.
 */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "testhost.h"
#include "test/h2_build.h"

/* SDK 1.1 checks read what the real host kept: span parents (a sink). */
#include <time.h>
#include "host/host.h"
#include "host/loader.h"
#include "telemetry/span.h"

const struct sonde_plugin *sonde_plugin_entry(void);

/* --- conversations --------------------------------------------------------------------- */

#define MAX_WRITES 4096

struct conv {
	struct h2b w[MAX_WRITES];
	bool from_client[MAX_WRITES];
	unsigned n;
	struct h2b cur;        /* bytes of the write being built */
	nghttp2_hd_deflater *dc, *ds;
	struct h2enc ec, es;   /* gRPC-like encoders */
	bool grpc_like;
};

static void conv_init(struct conv *c, bool grpc_like)
{
	memset(c, 0, sizeof(*c));
	nghttp2_hd_deflate_new(&c->dc, 4096);
	nghttp2_hd_deflate_new(&c->ds, 4096);
	h2e_init(&c->ec);
	h2e_init(&c->es);
	c->grpc_like = grpc_like;
}

static void conv_free(struct conv *c)
{
	for (unsigned i = 0; i < c->n; i++)
		h2b_free(&c->w[i]);
	h2b_free(&c->cur);
	nghttp2_hd_deflate_del(c->dc);
	nghttp2_hd_deflate_del(c->ds);
	h2e_free(&c->ec);
	h2e_free(&c->es);
}

/* The bytes built since the last flush become one write. */
static void flush(struct conv *c, bool from_client)
{
	ck_assert_uint_lt(c->n, MAX_WRITES);
	c->w[c->n] = c->cur;
	c->from_client[c->n] = from_client;
	c->n++;
	memset(&c->cur, 0, sizeof(c->cur));
}

static void start(struct conv *c)
{
	uint32_t kv[] = { H2_SET_MAX_CONCURRENT_STREAMS, 100, H2_SET_INITIAL_WINDOW_SIZE, 1 << 20 };

	h2b_settings(&c->cur, kv, 2);
	flush(c, false);
	h2b_preface(&c->cur);
	h2b_settings(&c->cur, kv, 1);
	h2b_window(&c->cur, 0, 1 << 20);
	flush(c, true);
	h2b_frame(&c->cur, H2_SETTINGS, H2_F_ACK, 0, NULL, 0);
	flush(c, false);
	h2b_frame(&c->cur, H2_SETTINGS, H2_F_ACK, 0, NULL, 0);
	flush(c, true);
}

#define REQ(c, sid, end, ...)                                                                  \
	do {                                                                                   \
		if ((c)->grpc_like)                                                            \
			h2e_headers(&(c)->ec, &(c)->cur, sid, end, __VA_ARGS__, NULL);         \
		else                                                                           \
			h2b_headers(&(c)->cur, (c)->dc, sid, end, __VA_ARGS__, NULL);          \
	} while (0)
#define RESP(c, sid, end, ...)                                                                 \
	do {                                                                                   \
		if ((c)->grpc_like)                                                            \
			h2e_headers(&(c)->es, &(c)->cur, sid, end, __VA_ARGS__, NULL);         \
		else                                                                           \
			h2b_headers(&(c)->cur, (c)->ds, sid, end, __VA_ARGS__, NULL);          \
	} while (0)

static void grpc_req(struct conv *c, uint32_t sid, const char *path)
{
	REQ(c, sid, 0, ":method", "POST", ":scheme", "http", ":path", path, ":authority",
	    "grpc.example:50051", "content-type", "application/grpc", "te", "trailers",
	    "authorization", "Bearer SECRET-TOKEN", "user-agent", "grpc-python/1.51.1");
}

/* A whole unary call as two client writes and two server writes. */
static void unary(struct conv *c, uint32_t sid, const char *path, int code)
{
	char cs[8];

	snprintf(cs, sizeof(cs), "%d", code);
	grpc_req(c, sid, path);
	h2b_grpc_msg(&c->cur, sid, 30, 1);
	flush(c, true);
	RESP(c, sid, 0, ":status", "200", "content-type", "application/grpc");
	h2b_grpc_msg(&c->cur, sid, 40, 0);
	flush(c, false);
	RESP(c, sid, 1, "grpc-status", cs, "grpc-message", code ? "user data: SECRET-MSG" : "");
	flush(c, false);
}

/* --- feeding ---------------------------------------------------------------------------- */

static enum sonde_dir dir_of(bool from_client, enum sonde_role role)
{
	if (role == SONDE_ROLE_CLIENT)
		return from_client ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
	return from_client ? SONDE_DIR_INGRESS : SONDE_DIR_EGRESS;
}

static uint64_t ts_of(unsigned i)
{
	return 1000000ull * (i + 1);
}

/* Feed writes [from, to) of c; split > 0 cuts each into chunks of that size. */
static void feed_range(struct th_conn *fc, const struct conv *c, enum sonde_role role,
                       unsigned from, unsigned to, size_t split)
{
	enum sonde_role r = role == SONDE_ROLE_UNKNOWN ? SONDE_ROLE_SERVER : role;

	for (unsigned i = from; i < to && i < c->n; i++) {
		size_t pos = 0, len = c->w[i].len;
		do {
			size_t k = len - pos;
			if (split && k > split)
				k = split;
			th_conn_feed(fc, dir_of(c->from_client[i], r), ts_of(i), c->w[i].p + pos, k);
			pos += k;
		} while (pos < len);
	}
}

struct run {
	struct th_host *h;
	struct th_conn *fc;
};

static void run_open(struct run *r, enum sonde_role role, int tls)
{
	struct sonde_conn_info ci;

	r->h = th_new();
	ck_assert_int_eq(th_load(r->h, sonde_plugin_entry(), "grpc"), SONDE_OK);
	th_conn_info_init(&ci, role);
	ci.tls = (uint8_t)tls;
	r->fc = th_conn_open(r->h, &ci);
	ck_assert_ptr_nonnull(r->fc);
}

static void run_close(struct run *r)
{
	th_conn_close(r->fc, 999000000000ull);
	ck_assert_uint_eq(th_n_open(r->h), 0);
	ck_assert_uint_eq(th_misuse(r->h), 0);
}

/* One line per ended span: name kind status attrs (sorted as set). */
static void summary(struct th_host *h, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = 0;
	for (size_t i = 0; i < th_n_ended(h); i++) {
		const struct th_span *s = th_ended(h, i);
		o += (size_t)snprintf(out + o, cap - o, "%s k%d st%d %llu-%llu", s->name, s->kind,
		                      s->status, (unsigned long long)s->start_ns,
		                      (unsigned long long)s->end_ns);
		for (size_t a = 0; a < s->n_attrs && o < cap; a++) {
			const struct th_attr *at = &s->attrs[a];
			if (at->type == TH_ATTR_STR)
				o += (size_t)snprintf(out + o, cap - o, " %s=%s", at->key, at->s);
			else if (at->type == TH_ATTR_INT)
				o += (size_t)snprintf(out + o, cap - o, " %s=%lld", at->key, (long long)at->i);
			else
				o += (size_t)snprintf(out + o, cap - o, " %s=b%d", at->key, at->b);
		}
		if (o < cap)
			o += (size_t)snprintf(out + o, cap - o, "\n");
		if (o >= cap)
			return;
	}
}

static int64_t iattr(const struct th_span *s, const char *k)
{
	int64_t v = -999;

	th_span_int(s, k, &v);
	return v;
}

/* --- detection ----------------------------------------------------------------------------- */

START_TEST(detect)
{
	struct th_host *h = th_new();
	struct sonde_conn_info ci;
	struct h2b b = { 0 };
	uint8_t rnd[64];

	ck_assert_int_eq(th_load(h, sonde_plugin_entry(), "grpc"), SONDE_OK);
	th_conn_info_init(&ci, SONDE_ROLE_SERVER);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS, H2_PREFACE, 24), 100);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS, "PRI * HTTP/2.0", 14),
	                 SONDE_DETECT_NEED_MORE);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS, "GET / HTTP/1.1\r\n\r\n", 18),
	                 SONDE_DETECT_NO);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_EGRESS, "HTTP/1.1 200 OK\r\n", 17),
	                 SONDE_DETECT_NO);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS, "*3\r\n$3\r\nSET\r\n", 13),
	                 SONDE_DETECT_NO);
	/* an open connection: a chain of frames, below HTTP/1's SURE */
	h2b_settings(&b, NULL, 0);
	h2b_window(&b, 0, 100);
	h2b_data(&b, 1, 10, 1, 0);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS, b.p, b.len), 80);
	ck_assert_int_lt(80, SONDE_DETECT_SURE);
	/* one frame whose payload is not all here yet */
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS, b.p + 26, 15),
	                 SONDE_DETECT_NEED_MORE);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS, b.p, 3), SONDE_DETECT_NEED_MORE);
	for (size_t i = 0; i < sizeof(rnd); i++)
		rnd[i] = (uint8_t)(i * 37 + 11);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS, rnd, sizeof(rnd)),
	                 SONDE_DETECT_NO);
	h2b_free(&b);
	th_free(h);
}
END_TEST

/* --- gRPC ------------------------------------------------------------------------------------- */

static void check_unary_span(const struct th_span *s, enum sonde_span_kind kind)
{
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(s->kind, kind);
	ck_assert_str_eq(th_span_str(s, "rpc.system"), "grpc");
	ck_assert_str_eq(th_span_str(s, "rpc.service"), "helloworld.Greeter");
	ck_assert_str_eq(th_span_str(s, "rpc.method"), "SayHello");
	ck_assert_str_eq(th_span_str(s, "server.address"), "grpc.example");
	ck_assert_int_eq(iattr(s, "server.port"), 50051);
	ck_assert_int_eq(iattr(s, "rpc.grpc.status_code"), 0);
	ck_assert_int_eq(s->status, SONDE_STATUS_UNSET);
	ck_assert_ptr_null(th_span_attr(s, "sonde.h2.headers_partial"));
	ck_assert_ptr_null(th_span_attr(s, "http.request.method"));
}

START_TEST(unary_server_and_client)
{
	struct conv c;

	conv_init(&c, _i);
	start(&c);
	unary(&c, 1, "/helloworld.Greeter/SayHello", 0);
	for (int role = SONDE_ROLE_SERVER; role <= SONDE_ROLE_CLIENT; role++) {
		struct run r;
		const struct th_span *s;
		const struct th_record *rec;

		run_open(&r, role, 0);
		feed_range(r.fc, &c, role, 0, c.n, 0);
		ck_assert_uint_eq(th_n_ended(r.h), 1);
		s = th_ended(r.h, 0);
		check_unary_span(s, role == SONDE_ROLE_SERVER ? SONDE_SPAN_SERVER : SONDE_SPAN_CLIENT);
		ck_assert_str_eq(s->name, "helloworld.Greeter/SayHello");
		ck_assert_uint_eq(s->start_ns, ts_of(4));
		ck_assert_uint_eq(s->end_ns, ts_of(6));
		if (role == SONDE_ROLE_SERVER)
			ck_assert_str_eq(th_span_str(s, "client.address"), "127.0.0.2");
		else
			ck_assert_ptr_null(th_span_attr(s, "client.address"));
		/* rpc.{server,client}.duration in ms, one point per call */
		ck_assert_uint_eq(th_n_records(r.h), 1);
		rec = th_record(r.h, 0);
		ck_assert_str_eq(rec->m->name, role == SONDE_ROLE_SERVER ? "rpc.server.duration"
		                                                         : "rpc.client.duration");
		ck_assert_str_eq(rec->m->unit, "ms");
		ck_assert(rec->value > 1.999 && rec->value < 2.001);
		ck_assert_str_eq(th_record_val(rec, "rpc.method"), "SayHello");
		ck_assert_str_eq(th_record_val(rec, "rpc.grpc.status_code"), "0");
		if (role == SONDE_ROLE_CLIENT)
			ck_assert_str_eq(th_record_val(rec, "server.port"), "50051");
		run_close(&r);
		th_free(r.h);
	}
	conv_free(&c);
}
END_TEST

/* semconv v1.27.0: which gRPC codes are errors differs by side. */
START_TEST(grpc_status_codes)
{
	struct conv c;
	static const int codes[] = { 0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16 };
	const size_t n = sizeof(codes) / sizeof(codes[0]);

	conv_init(&c, true);
	start(&c);
	for (size_t i = 0; i < n; i++)
		unary(&c, 1 + 2 * (uint32_t)i, "/pkg.Svc/Do", codes[i]);
	for (int role = SONDE_ROLE_SERVER; role <= SONDE_ROLE_CLIENT; role++) {
		struct run r;

		run_open(&r, role, 0);
		feed_range(r.fc, &c, role, 0, c.n, 0);
		ck_assert_uint_eq(th_n_ended(r.h), n);
		for (size_t i = 0; i < n; i++) {
			const struct th_span *s = th_ended(r.h, i);
			int code = codes[i];
			bool server_err = code == 2 || code == 4 || code == 12 || code == 13 ||
			                  code == 14 || code == 15;
			bool err = role == SONDE_ROLE_SERVER ? server_err : code != 0;
			ck_assert_int_eq(iattr(s, "rpc.grpc.status_code"), code);
			ck_assert_int_eq(s->status, err ? SONDE_STATUS_ERROR : SONDE_STATUS_UNSET);
			if (err)
				ck_assert_ptr_nonnull(th_span_str(s, "error.type"));
			else
				ck_assert_ptr_null(th_span_attr(s, "error.type"));
		}
		ck_assert_str_eq(th_span_str(th_ended(r.h, 9), "error.type"), "DATA_LOSS");
		run_close(&r);
		th_free(r.h);
	}
	conv_free(&c);
}
END_TEST

/* Trailers-only: :status, content-type and grpc-status in one block. */
START_TEST(trailers_only)
{
	struct conv c;
	struct run r;
	const struct th_span *s;

	conv_init(&c, false);
	start(&c);
	grpc_req(&c, 1, "/pkg.Svc/Missing");
	h2b_grpc_msg(&c.cur, 1, 3, 1);
	flush(&c, true);
	RESP(&c, 1, 1, ":status", "200", "content-type", "application/grpc", "grpc-status", "12",
	     "grpc-message", "Method not found!");
	flush(&c, false);
	run_open(&r, SONDE_ROLE_SERVER, 0);
	feed_range(r.fc, &c, SONDE_ROLE_SERVER, 0, c.n, 0);
	ck_assert_uint_eq(th_n_ended(r.h), 1);
	s = th_ended(r.h, 0);
	ck_assert_str_eq(s->name, "pkg.Svc/Missing");
	ck_assert_int_eq(iattr(s, "rpc.grpc.status_code"), 12);
	ck_assert_int_eq(s->status, SONDE_STATUS_ERROR);
	ck_assert_str_eq(th_span_str(s, "error.type"), "UNIMPLEMENTED");
	run_close(&r);
	th_free(r.h);
	conv_free(&c);
}
END_TEST

/* Server-streaming, client-streaming and bidi: one span each, from the
 * request's HEADERS to the trailers. */
START_TEST(streaming_calls)
{
	struct conv c;
	struct run r;

	conv_init(&c, true);
	start(&c);
	/* server streaming on 1: 20 responses */
	grpc_req(&c, 1, "/pkg.Svc/ServerStream");
	h2b_grpc_msg(&c.cur, 1, 10, 1);
	flush(&c, true);
	RESP(&c, 1, 0, ":status", "200", "content-type", "application/grpc");
	flush(&c, false);
	for (int i = 0; i < 20; i++) {
		h2b_grpc_msg(&c.cur, 1, 100, 0);
		flush(&c, false);
	}
	RESP(&c, 1, 1, "grpc-status", "0");
	flush(&c, false);
	/* client streaming on 3: 20 requests, then one answer */
	grpc_req(&c, 3, "/pkg.Svc/ClientStream");
	flush(&c, true);
	for (int i = 0; i < 20; i++) {
		h2b_grpc_msg(&c.cur, 3, 100, i == 19);
		flush(&c, true);
	}
	RESP(&c, 3, 0, ":status", "200", "content-type", "application/grpc");
	h2b_grpc_msg(&c.cur, 3, 10, 0);
	RESP(&c, 3, 1, "grpc-status", "0");
	flush(&c, false);
	/* bidi on 5 and 7 interleaved; 7 ends first */
	grpc_req(&c, 5, "/pkg.Svc/Bidi");
	grpc_req(&c, 7, "/pkg.Svc/Bidi");
	flush(&c, true);
	RESP(&c, 5, 0, ":status", "200", "content-type", "application/grpc");
	RESP(&c, 7, 0, ":status", "200", "content-type", "application/grpc");
	flush(&c, false);
	for (int i = 0; i < 10; i++) {
		h2b_grpc_msg(&c.cur, 5, 10, 0);
		h2b_grpc_msg(&c.cur, 7, 10, i == 9);
		flush(&c, true);
		h2b_grpc_msg(&c.cur, 7, 10, 0);
		h2b_grpc_msg(&c.cur, 5, 10, 0);
		flush(&c, false);
	}
	RESP(&c, 7, 1, "grpc-status", "0");
	flush(&c, false);
	h2b_grpc_msg(&c.cur, 5, 10, 1);
	flush(&c, true);
	RESP(&c, 5, 1, "grpc-status", "0");
	flush(&c, false);

	run_open(&r, SONDE_ROLE_CLIENT, 0);
	feed_range(r.fc, &c, SONDE_ROLE_CLIENT, 0, c.n, 0);
	ck_assert_uint_eq(th_n_ended(r.h), 4);
	ck_assert_str_eq(th_ended(r.h, 0)->name, "pkg.Svc/ServerStream");
	ck_assert_uint_eq(th_ended(r.h, 0)->end_ns, ts_of(26));
	ck_assert_str_eq(th_ended(r.h, 1)->name, "pkg.Svc/ClientStream");
	ck_assert_uint_eq(th_ended(r.h, 1)->start_ns, ts_of(27));
	ck_assert_str_eq(th_ended(r.h, 2)->name, "pkg.Svc/Bidi");
	ck_assert_int_eq(iattr(th_ended(r.h, 2), "rpc.grpc.status_code"), 0);
	ck_assert_str_eq(th_ended(r.h, 3)->name, "pkg.Svc/Bidi");
	ck_assert_uint_eq(th_n_records(r.h), 4);
	run_close(&r);
	th_free(r.h);
	conv_free(&c);
}
END_TEST

/* 60 concurrent streams on one connection, methods and codes varying,
 * answered in reverse order: each span has its own method and code. */
START_TEST(many_concurrent_streams)
{
	struct conv c;
	char path[64];
	const int n = 60;

	conv_init(&c, _i);
	start(&c);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/pkg.Svc/M%d", i % 7);
		grpc_req(&c, 1 + 2 * (uint32_t)i, path);
		h2b_grpc_msg(&c.cur, 1 + 2 * (uint32_t)i, 5, 1);
	}
	flush(&c, true);
	for (int i = n - 1; i >= 0; i--) {
		char code[8];
		snprintf(code, sizeof(code), "%d", i % 3);
		RESP(&c, 1 + 2 * (uint32_t)i, 0, ":status", "200", "content-type", "application/grpc");
		h2b_grpc_msg(&c.cur, 1 + 2 * (uint32_t)i, 5, 0);
		RESP(&c, 1 + 2 * (uint32_t)i, 1, "grpc-status", code);
		if (i % 5 == 0)
			flush(&c, false);
	}
	for (int role = SONDE_ROLE_SERVER; role <= SONDE_ROLE_CLIENT; role++) {
		struct run r;
		int per_code[3] = { 0 }, per_method[7] = { 0 };

		run_open(&r, role, 0);
		feed_range(r.fc, &c, role, 0, c.n, 0);
		ck_assert_uint_eq(th_n_ended(r.h), (size_t)n);
		for (int k = 0; k < n; k++) {
			const struct th_span *s = th_ended(r.h, (size_t)k);
			int i = n - 1 - k; /* ended in reverse order */
			snprintf(path, sizeof(path), "pkg.Svc/M%d", i % 7);
			ck_assert_str_eq(s->name, path);
			ck_assert_int_eq(iattr(s, "rpc.grpc.status_code"), i % 3);
			per_code[i % 3]++;
			per_method[i % 7]++;
		}
		ck_assert_int_eq(per_code[0] + per_code[1] + per_code[2], n);
		run_close(&r);
		th_free(r.h);
	}
	conv_free(&c);
}
END_TEST

/* --- plain HTTP/2 ----------------------------------------------------------------------------- */

START_TEST(http2_requests)
{
	struct conv c;
	static const char *const routes[] = { "/users/{id}" };

	conv_init(&c, false);
	start(&c);
	REQ(&c, 1, 1, ":method", "GET", ":scheme", "http", ":path", "/users/42?token=SECRET-Q",
	    ":authority", "api.example:8443", "cookie", "session=SECRET-COOKIE");
	flush(&c, true);
	RESP(&c, 1, 0, ":status", "200", "content-type", "application/json");
	h2b_data(&c.cur, 1, 100, 1, 0);
	flush(&c, false);
	REQ(&c, 3, 1, ":method", "DELETE", ":scheme", "http", ":path", "/x", ":authority",
	    "api.example:8443");
	REQ(&c, 5, 1, ":method", "BREW", ":scheme", "http", ":path", "/pot", ":authority",
	    "[::1]:8443");
	flush(&c, true);
	RESP(&c, 3, 1, ":status", "404");
	RESP(&c, 5, 0, ":status", "100");
	RESP(&c, 5, 1, ":status", "503");
	flush(&c, false);
	for (int role = SONDE_ROLE_SERVER; role <= SONDE_ROLE_CLIENT; role++) {
		struct run r;
		const struct th_span *s;
		bool server = role == SONDE_ROLE_SERVER;

		r.h = th_new();
		ck_assert_int_eq(th_load(r.h, sonde_plugin_entry(), "grpc"), SONDE_OK);
		th_set_config(r.h, NULL, "routes", routes, 1);
		{
			struct sonde_conn_info ci;
			th_conn_info_init(&ci, role);
			ci.tls = 1;
			r.fc = th_conn_open(r.h, &ci);
		}
		feed_range(r.fc, &c, role, 0, c.n, 0);
		ck_assert_uint_eq(th_n_ended(r.h), 3);
		s = th_ended(r.h, 0);
		ck_assert_str_eq(s->name, "GET /users/{id}");
		ck_assert_str_eq(th_span_str(s, "http.request.method"), "GET");
		ck_assert_str_eq(th_span_str(s, "url.path"), "/users/42");
		ck_assert_str_eq(th_span_str(s, server ? "http.route" : "url.template"), "/users/{id}");
		ck_assert_str_eq(th_span_str(s, "url.scheme"), "https");
		ck_assert_str_eq(th_span_str(s, "network.protocol.name"), "http");
		ck_assert_str_eq(th_span_str(s, "network.protocol.version"), "2");
		ck_assert_int_eq(iattr(s, "http.response.status_code"), 200);
		ck_assert_str_eq(th_span_str(s, "server.address"), "api.example");
		ck_assert_int_eq(iattr(s, "server.port"), 8443);
		ck_assert_int_eq(s->status, SONDE_STATUS_UNSET);
		ck_assert_ptr_null(th_span_attr(s, "rpc.system"));
		s = th_ended(r.h, 1);
		ck_assert_str_eq(s->name, "DELETE");
		ck_assert_int_eq(iattr(s, "http.response.status_code"), 404);
		ck_assert_int_eq(s->status, server ? SONDE_STATUS_UNSET : SONDE_STATUS_ERROR);
		s = th_ended(r.h, 2);
		ck_assert_str_eq(s->name, "HTTP");
		ck_assert_str_eq(th_span_str(s, "http.request.method"), "_OTHER");
		ck_assert_str_eq(th_span_str(s, "http.request.method_original"), "BREW");
		ck_assert_str_eq(th_span_str(s, "server.address"), "::1");
		ck_assert_int_eq(iattr(s, "http.response.status_code"), 503);
		ck_assert_int_eq(s->status, SONDE_STATUS_ERROR);
		ck_assert_str_eq(th_span_str(s, "error.type"), "503");
		/* the HTTP duration histogram, attached to each span */
		ck_assert_uint_eq(th_n_records(r.h), 3);
		ck_assert_str_eq(th_record(r.h, 0)->m->name,
		                 server ? "http.server.request.duration" : "http.client.request.duration");
		ck_assert_str_eq(th_record_val(th_record(r.h, 0), "network.protocol.version"),
		                 "2");
		run_close(&r);
		th_free(r.h);
	}
	conv_free(&c);
}
END_TEST

/* Nothing users type is exported: not authorization, cookie, query
 * strings nor grpc-message. */
START_TEST(privacy)
{
	struct conv c;
	struct run r;
	char sum[65536];

	conv_init(&c, false);
	start(&c);
	unary(&c, 1, "/pkg.Svc/Do", 5);
	REQ(&c, 3, 1, ":method", "GET", ":scheme", "http", ":path", "/a?q=SECRET-Q", "cookie",
	    "SECRET-COOKIE", "authorization", "SECRET-TOKEN");
	flush(&c, true);
	RESP(&c, 3, 1, ":status", "200", "set-cookie", "SECRET-SET");
	flush(&c, false);
	run_open(&r, SONDE_ROLE_SERVER, 0);
	feed_range(r.fc, &c, SONDE_ROLE_SERVER, 0, c.n, 0);
	ck_assert_uint_eq(th_n_ended(r.h), 2);
	summary(r.h, sum, sizeof(sum));
	ck_assert_ptr_null(strstr(sum, "SECRET"));
	for (size_t i = 0; i < th_n_ended(r.h); i++) {
		const struct th_span *s = th_ended(r.h, i);
		ck_assert(!s->status_desc || !strstr(s->status_desc, "SECRET"));
	}
	run_close(&r);
	th_free(r.h);
	conv_free(&c);
}
END_TEST

/* --- endings -------------------------------------------------------------------------------- */

START_TEST(reset_close_goaway)
{
	struct conv c;
	struct run r;
	const struct th_span *s;

	conv_init(&c, false);
	start(&c);
	grpc_req(&c, 1, "/pkg.Svc/Cancelled");
	flush(&c, true);
	h2b_rst(&c.cur, 1, H2_ERR_CANCEL);
	flush(&c, true);
	grpc_req(&c, 3, "/pkg.Svc/Refused");
	grpc_req(&c, 5, "/pkg.Svc/Refused");
	grpc_req(&c, 7, "/pkg.Svc/Open");
	flush(&c, true);
	h2b_goaway(&c.cur, 3, 0);
	flush(&c, false);
	run_open(&r, SONDE_ROLE_SERVER, 0);
	feed_range(r.fc, &c, SONDE_ROLE_SERVER, 0, c.n, 0);
	ck_assert_uint_eq(th_n_ended(r.h), 1);
	s = th_ended(r.h, 0);
	ck_assert_str_eq(s->name, "pkg.Svc/Cancelled");
	ck_assert_int_eq(s->status, SONDE_STATUS_ERROR);
	ck_assert_str_eq(th_span_str(s, "error.type"), "CANCEL");
	ck_assert_ptr_null(th_span_attr(s, "rpc.grpc.status_code"));
	/* 5 and 7 are above GOAWAY's last stream: never processed, dropped */
	ck_assert_uint_eq(th_n_dropped(r.h), 2);
	th_conn_close(r.fc, ts_of(50));
	/* 3 was in flight when the connection closed */
	ck_assert_uint_eq(th_n_ended(r.h), 2);
	s = th_ended(r.h, 1);
	ck_assert_str_eq(s->name, "pkg.Svc/Refused");
	ck_assert_int_eq(s->status, SONDE_STATUS_ERROR);
	ck_assert_str_eq(th_span_str(s, "error.type"), "connection_closed");
	ck_assert_uint_eq(s->end_ns, ts_of(50));
	ck_assert_uint_eq(th_n_open(r.h), 0);
	ck_assert_uint_eq(th_misuse(r.h), 0);
	th_free(r.h);
	conv_free(&c);
}
END_TEST

/* --- splits, roles ----------------------------------------------------------------------------- */

static void build_mixed(struct conv *c)
{
	start(c);
	unary(c, 1, "/helloworld.Greeter/SayHello", 0);
	grpc_req(c, 3, "/pkg.Svc/A");
	REQ(c, 5, 1, ":method", "GET", ":scheme", "http", ":path", "/", ":authority", "h");
	flush(c, true);
	RESP(c, 5, 1, ":status", "204");
	RESP(c, 3, 1, ":status", "200", "content-type", "application/grpc", "grpc-status", "14");
	flush(c, false);
}

START_TEST(every_split_same_spans)
{
	struct conv c;
	char want[8192], got[8192];
	size_t maxw = 0;

	conv_init(&c, _i);
	build_mixed(&c);
	for (unsigned i = 0; i < c.n; i++)
		if (c.w[i].len > maxw)
			maxw = c.w[i].len;
	for (int role = SONDE_ROLE_SERVER; role <= SONDE_ROLE_CLIENT; role++) {
		for (size_t split = 0; split <= maxw; split++) {
			struct run r;
			run_open(&r, role, 0);
			feed_range(r.fc, &c, role, 0, c.n, split);
			ck_assert_uint_eq(th_n_ended(r.h), 3);
			summary(r.h, split ? got : want, sizeof(got));
			if (split)
				ck_assert_str_eq(got, want);
			run_close(&r);
			th_free(r.h);
		}
	}
	conv_free(&c);
}
END_TEST

/* Role UNKNOWN: the preface says who is the client. */
START_TEST(unknown_role)
{
	struct conv c;
	struct run r;

	conv_init(&c, false);
	build_mixed(&c);
	run_open(&r, SONDE_ROLE_UNKNOWN, 0);
	/* fed as the client process sees it: its requests are egress */
	for (unsigned i = 0; i < c.n; i++)
		th_conn_feed(r.fc, c.from_client[i] ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS, ts_of(i),
		               c.w[i].p, c.w[i].len);
	ck_assert_uint_eq(th_n_ended(r.h), 3);
	ck_assert_int_eq(th_ended(r.h, 0)->kind, SONDE_SPAN_CLIENT);
	run_close(&r);
	th_free(r.h);

	/* joined mid-way, role unknown: the first request block decides */
	run_open(&r, SONDE_ROLE_UNKNOWN, 0);
	for (unsigned i = 4; i < c.n; i++)
		th_conn_feed(r.fc, c.from_client[i] ? SONDE_DIR_INGRESS : SONDE_DIR_EGRESS, ts_of(i),
		               c.w[i].p, c.w[i].len);
	ck_assert_uint_eq(th_n_ended(r.h), 3);
	ck_assert_int_eq(th_ended(r.h, 0)->kind, SONDE_SPAN_SERVER);
	run_close(&r);
	th_free(r.h);
	conv_free(&c);
}
END_TEST

/* --- joined mid-connection -------------------------------------------------------------------- */

/*
 * A gRPC channel used before the agent started (method A, status OK).
 * Afterwards: more A calls, then B calls (new :path, inserted now), then B
 * failing with a status never sent before (inserted now), then many calls
 * with a changing request id that churn both tables until the old entries
 * are evicted and re-inserted. Every call gives one span; no span ever
 * names the wrong method or status.
 */
START_TEST(midstream_join_never_misattributes)
{
	struct conv c;
	struct run r;
	unsigned join, sid = 1, calls_after = 0;
	int want_method[600], want_code[600];
	size_t n_known_method = 0, n_known_code = 0, n_partial = 0;

	conv_init(&c, true);
	start(&c);
	for (int i = 0; i < 5; i++, sid += 2)
		unary(&c, sid, "/pkg.Svc/A", 0);
	join = c.n;
	for (int i = 0; i < 5; i++, sid += 2, calls_after++) {
		unary(&c, sid, "/pkg.Svc/A", 0);
		want_method[calls_after] = 'A';
		want_code[calls_after] = 0;
	}
	for (int i = 0; i < 5; i++, sid += 2, calls_after++) {
		unary(&c, sid, "/pkg.Svc/B", i < 3 ? 0 : 5);
		want_method[calls_after] = 'B';
		want_code[calls_after] = i < 3 ? 0 : 5;
	}
	for (int i = 0; i < 150; i++, sid += 2, calls_after++) {
		char id[64], code[8];
		int m = i % 2 ? 'A' : 'B', k = i % 4 == 1 ? 5 : 0;
		snprintf(id, sizeof(id), "req-%08d-0123456789abcdef0123456789abcdef", i);
		snprintf(code, sizeof(code), "%d", k);
		REQ(&c, sid, 0, ":method", "POST", ":scheme", "http", ":path",
		    m == 'A' ? "/pkg.Svc/A" : "/pkg.Svc/B", ":authority", "grpc.example:50051",
		    "content-type", "application/grpc", "te", "trailers", "x-request-id", id);
		h2b_grpc_msg(&c.cur, sid, 30, 1);
		flush(&c, true);
		RESP(&c, sid, 0, ":status", "200", "content-type", "application/grpc", "x-request-id", id);
		h2b_grpc_msg(&c.cur, sid, 40, 0);
		RESP(&c, sid, 1, "grpc-status", code);
		flush(&c, false);
		want_method[calls_after] = m;
		want_code[calls_after] = k;
	}
	for (int role = SONDE_ROLE_SERVER; role <= SONDE_ROLE_CLIENT; role++) {
		run_open(&r, role, 0);
		feed_range(r.fc, &c, role, join, c.n, 0);
		ck_assert_uint_eq(th_n_ended(r.h), calls_after);
		n_known_method = n_known_code = n_partial = 0;
		for (unsigned i = 0; i < calls_after; i++) {
			const struct th_span *s = th_ended(r.h, i);
			const char *m = th_span_str(s, "rpc.method");
			const char *path = th_span_str(s, "url.path");
			int64_t code = iattr(s, "rpc.grpc.status_code");
			if (m) {
				ck_assert_int_eq(m[0], want_method[i]);
				ck_assert_int_eq(strlen(m), 1);
				n_known_method++;
			}
			if (path)
				ck_assert_int_eq(path[strlen(path) - 1], want_method[i]);
			if (code != -999) {
				ck_assert_int_eq(code, want_code[i]);
				n_known_code++;
			}
			if (th_span_attr(s, "sonde.h2.headers_partial"))
				n_partial++;
			else
				ck_assert(m && code != -999);
		}
		/* the first A calls after the join know nothing but POST */
		ck_assert_ptr_null(th_span_attr(th_ended(r.h, 0), "url.path"));
		ck_assert_str_eq(th_ended(r.h, 0)->name, "POST");
		/* the first B call: :path known (inserted now) */
		ck_assert_str_eq(th_span_str(th_ended(r.h, 5), "url.path"), "/pkg.Svc/B");
		/* B with status 5, first time: an RPC span */
		ck_assert_str_eq(th_ended(r.h, 8)->name, "pkg.Svc/B");
		/* the churn brings everything back */
		ck_assert_ptr_null(th_span_attr(th_ended(r.h, calls_after - 1),
		                                  "sonde.h2.headers_partial"));
		ck_assert_uint_gt(n_partial, 10);
		ck_assert_uint_gt(n_known_method, 100);
		ck_assert_uint_gt(n_known_code, 100);
		run_close(&r);
		th_free(r.h);
	}
	conv_free(&c);
}
END_TEST

/* --- losses ------------------------------------------------------------------------------------ */

/* A large request message in one write cut by the capture: the stream
 * still ends properly (DATA skipped by count, or found again). */
START_TEST(capture_cut_large_messages)
{
	struct conv c;
	struct run r;

	conv_init(&c, false);
	start(&c);
	grpc_req(&c, 1, "/pkg.Svc/Upload");
	flush(&c, true);
	for (int i = 0; i < 6; i++) /* 6 DATA frames of 16 KiB in one write */
		h2b_data(&c.cur, 1, 16384, i == 5, 0);
	flush(&c, true);
	RESP(&c, 1, 0, ":status", "200", "content-type", "application/grpc");
	h2b_grpc_msg(&c.cur, 1, 200000 - 5, 0);
	flush(&c, false);
	RESP(&c, 1, 1, "grpc-status", "0");
	flush(&c, false);
	unary(&c, 3, "/pkg.Svc/After", 0);
	for (int role = SONDE_ROLE_SERVER; role <= SONDE_ROLE_CLIENT; role++) {
		run_open(&r, role, 0);
		for (unsigned i = 0; i < c.n; i++) {
			struct sonde_chunk ch = { 0 };
			ch.dir = dir_of(c.from_client[i], role);
			ch.ts_unix_ns = ts_of(i);
			ch.data = c.w[i].p;
			ch.orig_len = c.w[i].len;
			ch.len = c.w[i].len < 4096 ? c.w[i].len : 4096;
			if (ch.len < ch.orig_len)
				ch.flags = SONDE_CHUNK_TRUNCATED;
			th_conn_feed_chunk(r.fc, &ch);
		}
		ck_assert_uint_eq(th_n_ended(r.h), 2);
		ck_assert_str_eq(th_ended(r.h, 0)->name, "pkg.Svc/Upload");
		ck_assert_int_eq(iattr(th_ended(r.h, 0), "rpc.grpc.status_code"), 0);
		ck_assert_str_eq(th_ended(r.h, 1)->name, "pkg.Svc/After");
		run_close(&r);
		th_free(r.h);
	}
	conv_free(&c);
}
END_TEST

/*
 * A gap in the responses: streams whose end is seen still end; the one
 * whose trailers were lost is dropped at close, never called an error; and
 * a later reference to an entry inserted in the lost bytes is unknown -
 * with a stale table it would read as the older "grpc-status: 14".
 */
START_TEST(gap_in_responses)
{
	struct conv c;
	struct run r;
	unsigned lost;

	conv_init(&c, true);
	start(&c);
	grpc_req(&c, 1, "/pkg.Svc/One");
	grpc_req(&c, 3, "/pkg.Svc/Two");
	grpc_req(&c, 5, "/pkg.Svc/Four");
	flush(&c, true);
	RESP(&c, 1, 0, ":status", "200", "content-type", "application/grpc");
	RESP(&c, 3, 0, ":status", "200", "content-type", "application/grpc");
	RESP(&c, 3, 1, "grpc-status", "14");
	RESP(&c, 5, 0, ":status", "200", "content-type", "application/grpc");
	flush(&c, false);
	lost = c.n;
	RESP(&c, 1, 1, "grpc-status", "0");
	flush(&c, false);
	RESP(&c, 5, 1, "grpc-status", "4");
	flush(&c, false);
	unary(&c, 7, "/pkg.Svc/Three", 0);
	for (int role = SONDE_ROLE_SERVER; role <= SONDE_ROLE_CLIENT; role++) {
		const struct th_span *s;
		run_open(&r, role, 0);
		feed_range(r.fc, &c, role, 0, lost, 0);
		{
			struct sonde_chunk ch = { 0 };
			ch.dir = dir_of(false, role);
			ch.ts_unix_ns = ts_of(lost + 1);
			ch.data = c.w[lost + 1].p;
			ch.len = ch.orig_len = c.w[lost + 1].len;
			ch.flags = SONDE_CHUNK_GAP;
			th_conn_feed_chunk(r.fc, &ch); /* write `lost` never arrived */
		}
		feed_range(r.fc, &c, role, lost + 2, c.n, 0);
		th_conn_close(r.fc, ts_of(100));
		ck_assert_uint_eq(th_n_ended(r.h), 3);
		s = th_ended(r.h, 0);
		ck_assert_str_eq(s->name, "pkg.Svc/Two");
		ck_assert_int_eq(iattr(s, "rpc.grpc.status_code"), 14);
		s = th_ended(r.h, 1);
		ck_assert_str_eq(s->name, "pkg.Svc/Four");
		ck_assert_int_eq(iattr(s, "rpc.grpc.status_code"), 4); /* a literal: known */
		s = th_ended(r.h, 2);
		ck_assert_str_eq(s->name, "pkg.Svc/Three");
		ck_assert_ptr_null(th_span_attr(s, "rpc.grpc.status_code"));
		ck_assert_ptr_nonnull(th_span_attr(s, "sonde.h2.headers_partial"));
		ck_assert_int_eq(s->status, SONDE_STATUS_UNSET);
		ck_assert_uint_eq(th_n_dropped(r.h), 1); /* One: its trailers were lost */
		ck_assert_uint_eq(th_n_open(r.h), 0);
		ck_assert_uint_eq(th_misuse(r.h), 0);
		th_free(r.h);
	}
	conv_free(&c);
}
END_TEST

/* Garbage: counted, never a crash; a connection that never shows a frame
 * boundary again is given up (SONDE_ERR_PROTO) with its spans dropped. */
START_TEST(garbage)
{
	struct conv c;
	struct run r;
	uint8_t junk[1000];
	uint64_t s = 42;

	conv_init(&c, false);
	start(&c);
	unary(&c, 1, "/pkg.Svc/Before", 0);
	grpc_req(&c, 3, "/pkg.Svc/Pending");
	flush(&c, true);
	run_open(&r, SONDE_ROLE_SERVER, 0);
	feed_range(r.fc, &c, SONDE_ROLE_SERVER, 0, c.n, 0);
	ck_assert_uint_eq(th_n_ended(r.h), 1);
	for (int i = 0; i < 400 && !th_conn_given_up(r.fc); i++) {
		for (size_t k = 0; k < sizeof(junk); k++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			junk[k] = (uint8_t)(s >> 56);
		}
		th_conn_feed(r.fc, i % 2 ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS, ts_of(100 + i), junk,
		               sizeof(junk));
	}
	ck_assert(th_conn_given_up(r.fc));
	ck_assert_uint_eq(th_n_ended(r.h), 1);
	ck_assert_uint_eq(th_n_dropped(r.h), 1);
	ck_assert_uint_eq(th_n_open(r.h), 0);
	ck_assert_uint_eq(th_misuse(r.h), 0);
	th_free(r.h);
	conv_free(&c);
}
END_TEST

/* The host refuses spans (its per-connection limit): no crash, no misuse. */
START_TEST(span_limit)
{
	struct conv c;
	struct run r;

	conv_init(&c, false);
	start(&c);
	for (uint32_t i = 0; i < 10; i++)
		grpc_req(&c, 1 + 2 * i, "/pkg.Svc/X");
	flush(&c, true);
	for (uint32_t i = 0; i < 10; i++)
		RESP(&c, 1 + 2 * i, 1, ":status", "200", "content-type", "application/grpc",
		     "grpc-status", "0");
	flush(&c, false);
	r.h = th_new();
	ck_assert_int_eq(th_load(r.h, sonde_plugin_entry(), "grpc"), SONDE_OK);
	th_set_span_limit(r.h, 4);
	{
		struct sonde_conn_info ci;
		th_conn_info_init(&ci, SONDE_ROLE_SERVER);
		r.fc = th_conn_open(r.h, &ci);
	}
	feed_range(r.fc, &c, SONDE_ROLE_SERVER, 0, c.n, 0);
	ck_assert_uint_eq(th_n_ended(r.h), 4);
	run_close(&r);
	th_free(r.h);
	conv_free(&c);
}
END_TEST

/* PUSH_PROMISE: decoded (HPACK stays in step), no span for the push. */
START_TEST(server_push)
{
	struct conv c;
	struct run r;
	uint8_t blk[256], pp[300];
	size_t n;

	conv_init(&c, false);
	start(&c);
	REQ(&c, 1, 1, ":method", "GET", ":scheme", "http", ":path", "/", ":authority", "h");
	flush(&c, true);
	n = h2b_hpack(c.ds, blk, sizeof(blk), ":method", "GET", ":scheme", "http", ":path",
	              "/style.css", ":authority", "h", NULL);
	memcpy(pp, "\x00\x00\x00\x02", 4);
	memcpy(pp + 4, blk, n);
	h2b_frame(&c.cur, H2_PUSH_PROMISE, H2_F_END_HEADERS, 1, pp, n + 4);
	RESP(&c, 1, 0, ":status", "200");
	h2b_data(&c.cur, 1, 10, 1, 0);
	RESP(&c, 2, 0, ":status", "200", "content-type", "text/css");
	h2b_data(&c.cur, 2, 10, 1, 0);
	flush(&c, false);
	REQ(&c, 3, 1, ":method", "GET", ":scheme", "http", ":path", "/style.css", ":authority", "h");
	flush(&c, true);
	RESP(&c, 3, 1, ":status", "304", "content-type", "text/css");
	flush(&c, false);
	run_open(&r, SONDE_ROLE_CLIENT, 0);
	feed_range(r.fc, &c, SONDE_ROLE_CLIENT, 0, c.n, 0);
	ck_assert_uint_eq(th_n_ended(r.h), 2);
	ck_assert_int_eq(iattr(th_ended(r.h, 1), "http.response.status_code"), 304);
	ck_assert_ptr_null(th_span_attr(th_ended(r.h, 1), "sonde.h2.headers_partial"));
	run_close(&r);
	th_free(r.h);
	conv_free(&c);
}
END_TEST

/* Request trailers, a late block for an ended stream, and a gRPC call that
 * got an HTTP error without a gRPC status. */
START_TEST(trailers_late_blocks_http_errors)
{
	struct conv c;
	struct run r;

	conv_init(&c, false);
	start(&c);
	REQ(&c, 1, 0, ":method", "POST", ":scheme", "http", ":path", "/upload");
	h2b_data(&c.cur, 1, 20, 0, 0);
	REQ(&c, 1, 1, "x-checksum", "abc"); /* request trailers */
	flush(&c, true);
	RESP(&c, 1, 1, ":status", "201");
	flush(&c, false);
	grpc_req(&c, 3, "/pkg.Svc/Behind");
	flush(&c, true);
	RESP(&c, 3, 1, ":status", "503", "content-type", "text/plain");
	flush(&c, false);
	REQ(&c, 3, 1, "x-late", "1"); /* after the stream ended */
	flush(&c, true);
	run_open(&r, SONDE_ROLE_SERVER, 0);
	feed_range(r.fc, &c, SONDE_ROLE_SERVER, 0, c.n, 0);
	th_conn_close(r.fc, ts_of(100));
	ck_assert_uint_eq(th_n_ended(r.h), 2);
	ck_assert_str_eq(th_ended(r.h, 0)->name, "POST");
	ck_assert_int_eq(iattr(th_ended(r.h, 0), "http.response.status_code"), 201);
	ck_assert_str_eq(th_ended(r.h, 1)->name, "pkg.Svc/Behind");
	ck_assert_int_eq(th_ended(r.h, 1)->status, SONDE_STATUS_ERROR);
	ck_assert_str_eq(th_span_str(th_ended(r.h, 1), "error.type"), "503");
	ck_assert_ptr_null(th_span_attr(th_ended(r.h, 1), "rpc.grpc.status_code"));
	ck_assert_uint_eq(th_n_open(r.h), 0);
	ck_assert_uint_eq(th_misuse(r.h), 0);
	th_free(r.h);
	conv_free(&c);
}
END_TEST

/* The preface says who the client is, whatever the role said. */
START_TEST(preface_overrides_role)
{
	struct conv c;
	struct run r;

	conv_init(&c, false);
	start(&c);
	unary(&c, 1, "/pkg.Svc/X", 0);
	run_open(&r, SONDE_ROLE_SERVER, 0);
	feed_range(r.fc, &c, SONDE_ROLE_CLIENT, 0, c.n, 0); /* really a client */
	ck_assert_uint_eq(th_n_ended(r.h), 1);
	ck_assert_int_eq(th_ended(r.h, 0)->kind, SONDE_SPAN_CLIENT);
	run_close(&r);
	th_free(r.h);
	conv_free(&c);
}
END_TEST

/* A long download read in large reads, each captured 4 KiB: no frame
 * boundary is in reach for a while, which is no reason to give up. */
START_TEST(bulk_transfer_not_given_up)
{
	struct conv c;
	struct run r;
	struct h2b big = { 0 };

	conv_init(&c, false);
	start(&c);
	REQ(&c, 1, 1, ":method", "GET", ":scheme", "http", ":path", "/big");
	flush(&c, true);
	for (int i = 0; i < 400; i++)
		h2b_data(&big, 1, 16384, 0, 0);
	run_open(&r, SONDE_ROLE_CLIENT, 0);
	feed_range(r.fc, &c, SONDE_ROLE_CLIENT, 0, c.n, 0);
	{
		struct h2b h = { 0 };
		h2b_headers(&h, c.ds, 1, 0, ":status", "200", NULL);
		th_conn_feed(r.fc, SONDE_DIR_INGRESS, ts_of(10), h.p, h.len);
		h2b_free(&h);
	}
	/* reads of 65536 bytes starting 1000 bytes into the stream */
	for (size_t off = 1000; off + 65536 <= big.len; off += 65536) {
		struct sonde_chunk ch = { 0 };
		ch.dir = SONDE_DIR_INGRESS;
		ch.ts_unix_ns = ts_of(11);
		ch.data = big.p + off;
		ch.len = 4096;
		ch.orig_len = 65536;
		ch.flags = off == 1000 ? SONDE_CHUNK_GAP : SONDE_CHUNK_TRUNCATED;
		th_conn_feed_chunk(r.fc, &ch);
	}
	ck_assert(!th_conn_given_up(r.fc));
	th_conn_close(r.fc, ts_of(20));
	ck_assert_uint_eq(th_n_ended(r.h), 0);  /* its end was never seen */
	ck_assert_uint_eq(th_n_dropped(r.h), 1); /* so it is dropped */
	ck_assert_uint_eq(th_misuse(r.h), 0);
	th_free(r.h);
	h2b_free(&big);
	conv_free(&c);
}
END_TEST


/* --- SDK 1.1 ------------------------------------------------------------------------------- */

/* v10: the plugin as a 1.0 host would run it (th_load_minor: the real
 * host's table cut to its 1.0 size, so no 1.1 member may be used). */
#define MINOR(v10) ((v10) ? 0u : SONDE_ABI_MINOR)

/* Ended spans as the host exports them (with their parents). */
#define MAX_SUNK 64
static struct span *sunk[MAX_SUNK];
static size_t n_sunk;

static void sink_emit(void *ctx, struct span *sp)
{
	(void)ctx;
	if (n_sunk < MAX_SUNK)
		sunk[n_sunk++] = span_ref(sp);
}

static struct span_sink parent_sink = { .name = "grpc_test", .emit = sink_emit };

static void sink_attach(struct th_host *h)
{
	n_sunk = 0;
	host_add_sink(th_self(h)->reg->owner, &parent_sink);
}

static void sink_release(void)
{
	for (size_t i = 0; i < n_sunk; i++)
		span_unref(sunk[i]);
	n_sunk = 0;
}

static const struct span *sunk_named(const char *name)
{
	for (size_t i = 0; i < n_sunk; i++)
		if (!strcmp(sunk[i]->name, name))
			return sunk[i];
	return NULL;
}

static bool is_root(const struct span *sp)
{
	static const uint8_t zero[8];

	return !memcmp(sp->parent_span_id, zero, 8);
}

static bool child_of(const struct span *c, const struct span *p)
{
	return !memcmp(c->trace_id, p->trace_id, 16) && !memcmp(c->parent_span_id, p->span_id, 8);
}

/* Writes [from, to) of c on thread tid, each chunk with runtime context ctx. */
static void feed_tid_ctx(struct th_conn *fc, const struct conv *c, enum sonde_role role,
                         unsigned from, unsigned to, uint32_t tid, uint64_t ctx)
{
	for (unsigned i = from; i < to && i < c->n; i++) {
		struct sonde_chunk ch = { 0 };

		ch.dir = dir_of(c->from_client[i], role);
		ch.ts_unix_ns = ts_of(i);
		ch.data = c->w[i].p;
		ch.len = ch.orig_len = c->w[i].len;
		ch.tid = tid;
		ch.context = ctx;
		th_conn_feed_chunk(fc, &ch);
	}
}

/* Writes [from, to) of c on thread tid. */
static void feed_tid(struct th_conn *fc, const struct conv *c, enum sonde_role role, unsigned from,
                     unsigned to, uint32_t tid)
{
	feed_tid_ctx(fc, c, role, from, to, tid, 0);
}

/* Sum of the points of a counter with (optionally) one attribute value. */
static double counted(struct th_host *h, const char *name, const char *key, const char *val)
{
	double sum = 0;

	for (size_t i = 0; i < th_n_records(h); i++) {
		const struct th_record *r = th_record(h, i);
		const char *v = key ? th_record_val(r, key) : NULL;

		if (!strcmp(r->m->name, name) && (!key || (v && !strcmp(v, val))))
			sum += r->value;
	}
	return sum;
}

/* One thread reads every stream of a multiplexed server connection: a
 * stream that starts while another is in flight is not made the thread's
 * active span, so a client call made on that thread is not given it as a
 * guessed parent. A stream alone on its connection is (the host's
 * default). */
START_TEST(v11_server_streams_not_active_when_multiplexed)
{
	struct conv sv, cl;
	unsigned req3, resp1;

	conv_init(&sv, false);
	start(&sv);
	grpc_req(&sv, 1, "/up.Front/One");
	flush(&sv, true);
	req3 = sv.n;
	grpc_req(&sv, 3, "/up.Front/Three");
	flush(&sv, true);
	resp1 = sv.n;
	RESP(&sv, 1, 0, ":status", "200", "content-type", "application/grpc");
	RESP(&sv, 1, 1, "grpc-status", "0");
	flush(&sv, false);
	RESP(&sv, 3, 0, ":status", "200", "content-type", "application/grpc");
	RESP(&sv, 3, 1, "grpc-status", "0");
	flush(&sv, false);
	conv_init(&cl, false);
	start(&cl);
	unary(&cl, 1, "/down.Back/Call", 0);

	for (int multiplexed = 0; multiplexed <= 1; multiplexed++) {
		struct th_host *h = th_new();
		struct sonde_conn_info ci;
		struct th_conn *a, *b;

		ck_assert_int_eq(th_load(h, sonde_plugin_entry(), "grpc"), SONDE_OK);
		sink_attach(h);
		th_conn_info_init(&ci, SONDE_ROLE_SERVER);
		a = th_conn_open(h, &ci);
		th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
		ci.conn_id = 2;
		b = th_conn_open(h, &ci);
		if (multiplexed) {
			/* stream 1 alone (active), stream 3 joins it (not active),
			 * stream 1 ends: the call made now is stream 3's or nobody's */
			feed_tid(a, &sv, SONDE_ROLE_SERVER, 0, resp1 + 1, 7);
			feed_tid(b, &cl, SONDE_ROLE_CLIENT, 0, cl.n, 7);
			feed_tid(a, &sv, SONDE_ROLE_SERVER, resp1 + 1, sv.n, 7);
		} else {
			feed_tid(a, &sv, SONDE_ROLE_SERVER, 0, req3, 7);
			feed_tid(b, &cl, SONDE_ROLE_CLIENT, 0, cl.n, 7);
			feed_tid(a, &sv, SONDE_ROLE_SERVER, req3, sv.n, 7);
		}
		th_conn_close(a, ts_of(90));
		th_conn_close(b, ts_of(90));
		ck_assert_uint_eq(n_sunk, 3);
		if (multiplexed)
			ck_assert(is_root(sunk_named("down.Back/Call")));
		else
			ck_assert(child_of(sunk_named("down.Back/Call"), sunk_named("up.Front/One")));
		ck_assert(is_root(sunk_named("up.Front/One")));
		ck_assert(is_root(sunk_named("up.Front/Three")));
		ck_assert_uint_eq(th_misuse(h), 0);
		th_free(h);
		sink_release();
	}
	conv_free(&sv);
	conv_free(&cl);
}
END_TEST

/* The largest capture cap is asked for each HTTP/2 connection (1.1 only). */
START_TEST(v11_capture_cap)
{
	for (int v10 = 0; v10 <= 1; v10++) {
		struct th_host *h = th_new();
		struct sonde_conn_info ci;
		struct sonde_capture_policy p;
		struct th_conn *fc;

		ck_assert_int_eq(th_load_minor(h, sonde_plugin_entry(), "grpc", MINOR(v10)),
		                 SONDE_OK);
		th_conn_info_init(&ci, SONDE_ROLE_SERVER);
		fc = th_conn_open(h, &ci);
		memset(&p, 0, sizeof(p));
		if (v10) {
			ck_assert_int_eq(th_conn_capture(fc, &p), 0);
		} else {
			ck_assert_int_eq(th_conn_capture(fc, &p), 1);
			ck_assert_uint_eq(p.cap, 16384);
			ck_assert_uint_eq(p.flags, 0);
			ck_assert_uint_eq(p.skip_to[0] | p.skip_to[1], 0);
		}
		th_free(h);
	}
}
END_TEST

/* The loss scenario of gap_in_responses, on a 1.1 host and on a 1.0 host:
 * the same spans; the 1.1 host also gets the counters. */
START_TEST(v11_counters_and_abi_1_0)
{
	struct conv c;
	unsigned lost;
	char want[8192], got[8192];

	conv_init(&c, true);
	start(&c);
	grpc_req(&c, 1, "/pkg.Svc/One");
	grpc_req(&c, 3, "/pkg.Svc/Two");
	flush(&c, true);
	RESP(&c, 1, 0, ":status", "200", "content-type", "application/grpc");
	RESP(&c, 3, 0, ":status", "200", "content-type", "application/grpc");
	flush(&c, false);
	lost = c.n;
	RESP(&c, 1, 1, "grpc-status", "0");
	flush(&c, false);
	RESP(&c, 3, 1, "grpc-status", "0");
	flush(&c, false);
	unary(&c, 5, "/pkg.Svc/Three", 0);
	want[0] = 0;
	for (int v10 = 0; v10 <= 1; v10++) {
		struct run r;
		struct sonde_chunk ch = { 0 };

		r.h = th_new();
		ck_assert_int_eq(th_load_minor(r.h, sonde_plugin_entry(), "grpc", MINOR(v10)),
		                 SONDE_OK);
		{
			struct sonde_conn_info ci;
			th_conn_info_init(&ci, SONDE_ROLE_SERVER);
			r.fc = th_conn_open(r.h, &ci);
		}
		feed_range(r.fc, &c, SONDE_ROLE_SERVER, 0, lost, 0);
		ch.dir = SONDE_DIR_EGRESS;
		ch.ts_unix_ns = ts_of(lost + 1);
		ch.data = c.w[lost + 1].p;
		ch.len = ch.orig_len = c.w[lost + 1].len;
		ch.flags = SONDE_CHUNK_GAP;
		th_conn_feed_chunk(r.fc, &ch);
		feed_range(r.fc, &c, SONDE_ROLE_SERVER, lost + 2, c.n, 0);
		run_close(&r);
		ck_assert_uint_eq(th_n_ended(r.h), 2); /* Two and Three; One's end was lost */
		ck_assert_uint_eq(th_n_dropped(r.h), 1);
		summary(r.h, v10 ? got : want, sizeof(want));
		if (v10) {
			ck_assert_str_eq(got, want);
			ck_assert_ptr_null(th_metric_by_name(r.h, "sonde.h2.dropped.streams"));
			ck_assert_ptr_null(th_metric_by_name(r.h, "sonde.h2.position.losses"));
			ck_assert_uint_eq(th_run_timers(r.h, ~0ull >> 1), 0); /* no timer */
		} else {
			struct th_metric *m = th_metric_by_name(r.h, "sonde.h2.dropped.streams");

			ck_assert_ptr_nonnull(m);
			ck_assert_str_eq(m->unit, "{stream}");
			ck_assert(counted(r.h, "sonde.h2.dropped.streams", "sonde.reason",
			                  "uncertain_at_close") == 1);
			ck_assert(counted(r.h, "sonde.h2.position.losses", "network.io.direction",
			                  "transmit") == 1);
			ck_assert(counted(r.h, "sonde.h2.position.losses", "network.io.direction",
			                  "receive") == 0);
			/* Three's grpc-status was indexed in bytes that were lost */
			ck_assert(counted(r.h, "sonde.h2.unknown.header_fields", NULL, NULL) >= 1);
		}
		th_free(r.h);
	}
	conv_free(&c);
}
END_TEST

static uint64_t wall_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* A stream made uncertain by lost bytes, and silent for a minute, is
 * dropped by the timer (its end may have been lost); a stream that goes on
 * after the loss, and one never touched by a loss, are kept. */
START_TEST(v11_uncertain_streams_expire)
{
	struct conv c;
	struct run r;
	struct sonde_chunk ch = { 0 };
	uint64_t t0 = wall_now();
	unsigned req5;

	conv_init(&c, false);
	start(&c);
	grpc_req(&c, 1, "/pkg.Svc/Silent");
	grpc_req(&c, 3, "/pkg.Svc/Talks");
	flush(&c, true);
	req5 = c.n;
	grpc_req(&c, 5, "/pkg.Svc/Later");
	flush(&c, true);
	h2b_grpc_msg(&c.cur, 3, 10, 0);
	flush(&c, true);
	run_open(&r, SONDE_ROLE_SERVER, 0);
	for (unsigned i = 0; i < req5; i++) {
		memset(&ch, 0, sizeof(ch));
		ch.dir = dir_of(c.from_client[i], SONDE_ROLE_SERVER);
		ch.ts_unix_ns = t0 + i;
		ch.data = c.w[i].p;
		ch.len = ch.orig_len = c.w[i].len;
		th_conn_feed_chunk(r.fc, &ch);
	}
	/* bytes lost: 1 and 3 are uncertain */
	memset(&ch, 0, sizeof(ch));
	ch.dir = SONDE_DIR_INGRESS;
	ch.ts_unix_ns = t0 + 30ull * 1000000000ull;
	ch.data = c.w[req5].p;
	ch.len = ch.orig_len = c.w[req5].len;
	ch.flags = SONDE_CHUNK_GAP;
	th_conn_feed_chunk(r.fc, &ch);
	/* 3 goes on at +50 s */
	ch.ts_unix_ns = t0 + 50ull * 1000000000ull;
	ch.data = c.w[req5 + 1].p;
	ch.len = ch.orig_len = c.w[req5 + 1].len;
	ch.flags = 0;
	th_conn_feed_chunk(r.fc, &ch);
	th_run_timers(r.h, t0 + 20ull * 1000000000ull);
	ck_assert_uint_eq(th_n_dropped(r.h), 0);
	th_run_timers(r.h, t0 + 65ull * 1000000000ull);
	ck_assert_uint_eq(th_n_dropped(r.h), 1); /* Silent: 65 s without a frame */
	ck_assert_str_eq(th_span(r.h, 0)->name, "HTTP");
	ck_assert_int_eq(th_span(r.h, 0)->state, TH_SPAN_DROPPED);
	ck_assert(counted(r.h, "sonde.h2.dropped.streams", "sonde.reason", "expired") == 1);
	th_run_timers(r.h, t0 + 200ull * 1000000000ull);
	ck_assert_uint_eq(th_n_dropped(r.h), 2); /* Talks: silent since +50 s */
	ck_assert_int_eq(th_span(r.h, 2)->state, TH_SPAN_OPEN); /* Later: no loss */
	th_run_timers(r.h, t0 + 5000ull * 1000000000ull);
	ck_assert_int_eq(th_span(r.h, 2)->state, TH_SPAN_OPEN);
	th_conn_close(r.fc, t0 + 5001ull * 1000000000ull);
	ck_assert_uint_eq(th_n_ended(r.h), 1); /* Later: connection_closed */
	ck_assert_uint_eq(th_n_open(r.h), 0);
	ck_assert_uint_eq(th_misuse(r.h), 0);
	th_free(r.h);
	conv_free(&c);
}
END_TEST


/* url.scheme from the source of the request's bytes (SDK 1.1 chunk->source):
 * TLS plaintext gives https even before conn_info.tls is set. */
START_TEST(v11_scheme_from_chunk_source)
{
	struct conv c;

	conv_init(&c, false);
	start(&c);
	REQ(&c, 1, 1, ":method", "GET", ":scheme", "http", ":path", "/a", ":authority", "x");
	flush(&c, true);
	RESP(&c, 1, 1, ":status", "200");
	flush(&c, false);
	for (int tls = 0; tls <= 1; tls++) {
		struct run r;

		run_open(&r, SONDE_ROLE_SERVER, 0);
		for (unsigned i = 0; i < c.n; i++) {
			struct sonde_chunk ch = { 0 };

			ch.dir = dir_of(c.from_client[i], SONDE_ROLE_SERVER);
			ch.ts_unix_ns = ts_of(i);
			ch.data = c.w[i].p;
			ch.len = ch.orig_len = c.w[i].len;
			ch.source = tls ? SONDE_SRC_TLS : SONDE_SRC_SOCKET;
			th_conn_feed_chunk(r.fc, &ch);
		}
		ck_assert_uint_eq(th_n_ended(r.h), 1);
		ck_assert_str_eq(th_span_str(th_ended(r.h, 0), "url.scheme"), tls ? "https" : "http");
		run_close(&r);
		th_free(r.h);
	}
	conv_free(&c);
}
END_TEST

/* --- same-host links: both ends of a connection watched by one host -------------------------- */

struct ends {
	struct th_host *h;
	struct th_conn *cl, *sv;
};

/* The client 127.0.0.2:cport and the server 127.0.0.1:50051 of one
 * connection in one host (v10: a 1.0 host, without span_set_pos). */
static void ends_open(struct ends *e, uint16_t cport, int v10)
{
	e->h = th_new();
	ck_assert_int_eq(th_load_minor(e->h, sonde_plugin_entry(), "grpc", MINOR(v10)), SONDE_OK);
	th_conn_pair(e->h, cport, 50051, &e->cl, &e->sv);
	ck_assert_ptr_nonnull(e->cl);
	ck_assert_ptr_nonnull(e->sv);
}

static void ends_close(struct ends *e)
{
	th_conn_close(e->cl, 999000000000ull);
	th_conn_close(e->sv, 999000000000ull);
	ck_assert_uint_eq(th_n_open(e->h), 0);
	ck_assert_uint_eq(th_misuse(e->h), 0);
	th_free(e->h);
}

/* Writes [from, to) of c seen by both ends: the writer's chunk whole, the
 * reader's cut in pieces of `split` bytes (0: whole); reader_first: the
 * reader's chunks come first (a read recorded before the write returns). */
static void feed_both(struct ends *e, const struct conv *c, unsigned from, unsigned to,
                      size_t split, bool reader_first)
{
	for (unsigned i = from; i < to && i < c->n; i++) {
		struct th_conn *w = c->from_client[i] ? e->cl : e->sv;
		struct th_conn *r = c->from_client[i] ? e->sv : e->cl;
		size_t pos = 0, len = c->w[i].len;

		if (!reader_first)
			th_conn_feed(w, SONDE_DIR_EGRESS, ts_of(i), c->w[i].p, len);
		do {
			size_t k = split && len - pos > split ? split : len - pos;

			th_conn_feed(r, SONDE_DIR_INGRESS, ts_of(i) + 1, c->w[i].p + pos, k);
			pos += k;
		} while (pos < len);
		if (reader_first)
			th_conn_feed(w, SONDE_DIR_EGRESS, ts_of(i), c->w[i].p, len);
	}
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

/* n streams on both ends, every server span the child of the client span
 * of the same stream (same name, same order). */
static void assert_all_linked(struct th_host *h, size_t n)
{
	ck_assert_uint_eq(n_kind(h, SONDE_SPAN_CLIENT), n);
	ck_assert_uint_eq(n_kind(h, SONDE_SPAN_SERVER), n);
	for (size_t i = 0; i < n; i++) {
		struct th_span *c = nth_kind(h, SONDE_SPAN_CLIENT, i);
		struct th_span *s = nth_kind(h, SONDE_SPAN_SERVER, i);

		ck_assert_str_eq(s->name, c->name);
		ck_assert_msg(th_span_child_of(s, c), "server span %zu (%s): parent %s, want %s", i,
		              s->name, s->parent_span_id, c->span_id);
	}
	ck_assert_uint_eq(th_n_links(h), n);
}

/* 60 streams in flight on one connection, their requests in one write the
 * server reads in pieces of any size, answered in reverse order, either
 * end first: each server span finds its own client span by where its
 * HEADERS frame starts. Then the mixed conversation (unary, plain HTTP/2). */
START_TEST(link_many_streams)
{
	bool grpc_like = _i & 1, reader_first = _i & 2;
	size_t split = (size_t)_i / 4 * 7; /* 0, 7, 14 ... */
	struct conv c;
	struct ends e;
	char path[64];
	const int n = 60;

	conv_init(&c, grpc_like);
	start(&c);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/pkg.Svc/M%d", i % 7);
		grpc_req(&c, 1 + 2 * (uint32_t)i, path);
		h2b_grpc_msg(&c.cur, 1 + 2 * (uint32_t)i, 5, 1);
	}
	flush(&c, true);
	for (int i = n - 1; i >= 0; i--) {
		RESP(&c, 1 + 2 * (uint32_t)i, 0, ":status", "200", "content-type", "application/grpc");
		h2b_grpc_msg(&c.cur, 1 + 2 * (uint32_t)i, 5, 0);
		RESP(&c, 1 + 2 * (uint32_t)i, 1, "grpc-status", "0");
		if (i % 5 == 0)
			flush(&c, false);
	}
	unary(&c, 1 + 2 * (uint32_t)n, "/helloworld.Greeter/SayHello", 0);
	grpc_req(&c, 3 + 2 * (uint32_t)n, "/pkg.Svc/A");
	REQ(&c, 5 + 2 * (uint32_t)n, 1, ":method", "GET", ":scheme", "http", ":path", "/",
	    ":authority", "h");
	flush(&c, true);
	RESP(&c, 5 + 2 * (uint32_t)n, 1, ":status", "204");
	RESP(&c, 3 + 2 * (uint32_t)n, 1, ":status", "200", "content-type", "application/grpc",
	     "grpc-status", "14");
	flush(&c, false);
	ends_open(&e, (uint16_t)(43000 + _i), 0);
	feed_both(&e, &c, 0, c.n, split, reader_first);
	assert_all_linked(e.h, (size_t)n + 3);
	ends_close(&e);
	conv_free(&c);
}
END_TEST

/* What must not link: streams after the server end lost bytes of the
 * requests (frames found again by a guess), and a 1.0 host. */
START_TEST(link_none_after_gap)
{
	struct conv c;
	struct ends e;
	unsigned lost;

	conv_init(&c, false);
	start(&c);
	unary(&c, 1, "/pkg.Svc/One", 0);
	lost = c.n;
	unary(&c, 3, "/pkg.Svc/Two", 0);
	unary(&c, 5, "/pkg.Svc/Three", 0);
	ends_open(&e, 43100, 0);
	feed_both(&e, &c, 0, lost, 0, false);
	/* the server end does not see stream 3's request write */
	th_conn_feed(e.cl, SONDE_DIR_EGRESS, ts_of(lost), c.w[lost].p, c.w[lost].len);
	feed_both(&e, &c, lost + 1, lost + 3, 0, false);
	th_conn_feed(e.cl, SONDE_DIR_EGRESS, ts_of(lost + 3), c.w[lost + 3].p, c.w[lost + 3].len);
	th_conn_feed_lossy(e.sv, SONDE_DIR_INGRESS, ts_of(lost + 3) + 1, c.w[lost].len,
	                   c.w[lost + 3].p, c.w[lost + 3].len, c.w[lost + 3].len);
	feed_both(&e, &c, lost + 4, c.n, 0, false);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_CLIENT), 3);
	ck_assert(th_span_child_of(nth_kind(e.h, SONDE_SPAN_SERVER, 0),
	                           nth_kind(e.h, SONDE_SPAN_CLIENT, 0)));
	for (size_t i = 1; i < n_kind(e.h, SONDE_SPAN_SERVER); i++)
		ck_assert_str_eq(nth_kind(e.h, SONDE_SPAN_SERVER, i)->parent_span_id, "");
	ck_assert_uint_eq(th_n_links(e.h), 1);
	ends_close(&e);

	ends_open(&e, 43101, 1);
	feed_both(&e, &c, 0, c.n, 0, false);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_SERVER), 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert_str_eq(nth_kind(e.h, SONDE_SPAN_SERVER, i)->parent_span_id, "");
	ck_assert_uint_eq(th_n_links(e.h), 0);
	ends_close(&e);
	conv_free(&c);
}
END_TEST

/* Writes [from, to) of c on thread 7, each chunk with runtime context ctx. */
static void feed_ctx(struct th_conn *fc, const struct conv *c, enum sonde_role role, unsigned from,
                     unsigned to, uint64_t ctx)
{
	feed_tid_ctx(fc, c, role, from, to, 7, ctx);
}

/* SDK 1.2: a runtime plugin says which context opened each stream of a
 * shared client connection (Node.js: one HTTP/2 session carries the calls
 * of many requests, written later by the session outside any request). The
 * CLIENT span of a stream takes that context, whatever the chunk says:
 * streams 1, 3, 5 interleaved on one connection go under three different
 * requests; stream 7 (no context given) keeps the host's default (the
 * chunk's context: none, or the session's own); a context given for stream
 * 9, which never appears, is not taken by stream 11. A SERVER stream given
 * a context is unaffected (it stays the active span of its chunk's
 * context). On a 1.0 host nothing changes. */
START_TEST(v12_client_streams_take_their_context)
{
	static const uint64_t keys[3] = { 10, 20, 30 };
	static const char *const up[3] = { "/up.Front/K10", "/up.Front/K20", "/up.Front/K30" };
	int variant = _i; /* 0: client chunks without context, 1: with key 10, 2: a 1.0 host */
	struct conv sv[3], cl;
	unsigned cl_reqs, sv_req[3];

	for (int k = 0; k < 3; k++) {
		conv_init(&sv[k], false);
		start(&sv[k]);
		grpc_req(&sv[k], 1, up[k]);
		flush(&sv[k], true);
		sv_req[k] = sv[k].n;
		RESP(&sv[k], 1, 0, ":status", "200", "content-type", "application/grpc");
		RESP(&sv[k], 1, 1, "grpc-status", "0");
		flush(&sv[k], false);
	}
	conv_init(&cl, true);
	start(&cl);
	for (uint32_t sid = 1; sid <= 7; sid += 2) {
		char path[32];

		snprintf(path, sizeof(path), "/down.Back/S%u", sid);
		grpc_req(&cl, sid, path);
		h2b_grpc_msg(&cl.cur, sid, 30, 1);
		flush(&cl, true);
	}
	cl_reqs = cl.n;
	for (uint32_t sid = 1; sid <= 7; sid += 2) {
		uint32_t r = (sid * 3) % 8 | 1; /* 3, 1, 7, 5: another order */

		RESP(&cl, r, 0, ":status", "200", "content-type", "application/grpc");
		h2b_grpc_msg(&cl.cur, r, 40, 0);
		flush(&cl, false);
		RESP(&cl, r, 1, "grpc-status", "0");
		flush(&cl, false);
	}
	unary(&cl, 11, "/down.Back/S11", 0);

	{
		struct th_host *h = th_new();
		struct sonde_conn_info ci;
		struct th_conn *a[3], *d;
		const struct span *u[3];

		if (variant == 2)
			ck_assert_int_eq(th_load_minor(h, sonde_plugin_entry(), "grpc", 0), SONDE_OK);
		else
			ck_assert_int_eq(th_load(h, sonde_plugin_entry(), "grpc"), SONDE_OK);
		sink_attach(h);
		for (int k = 0; k < 3; k++) {
			th_conn_info_init(&ci, SONDE_ROLE_SERVER);
			ci.conn_id = 10 + k;
			a[k] = th_conn_open(h, &ci);
		}
		th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
		ci.conn_id = 20;
		d = th_conn_open(h, &ci);
		/* the server stream of key 10 is told key 30: not taken */
		ck_assert_int_eq(th_conn_stream_context(a[0], 1, 30), SONDE_OK);
		for (int k = 0; k < 3; k++)
			feed_ctx(a[k], &sv[k], SONDE_ROLE_SERVER, 0, sv_req[k], keys[k]);
		ck_assert_int_eq(th_conn_stream_context(d, 1, 20), SONDE_OK);
		ck_assert_int_eq(th_conn_stream_context(d, 3, 30), SONDE_OK);
		ck_assert_int_eq(th_conn_stream_context(d, 5, 10), SONDE_OK);
		ck_assert_int_eq(th_conn_stream_context(d, 9, 20), SONDE_OK);
		feed_ctx(d, &cl, SONDE_ROLE_CLIENT, 0, cl_reqs, variant == 1 ? 10 : 0);
		feed_ctx(d, &cl, SONDE_ROLE_CLIENT, cl_reqs, cl.n, 0);
		for (int k = 0; k < 3; k++) {
			feed_ctx(a[k], &sv[k], SONDE_ROLE_SERVER, sv_req[k], sv[k].n, keys[k]);
			th_conn_close(a[k], ts_of(200));
		}
		th_conn_close(d, ts_of(200));
		ck_assert_uint_eq(n_sunk, 8);
		for (int k = 0; k < 3; k++) {
			u[k] = sunk_named(up[k] + 1);
			ck_assert_ptr_nonnull(u[k]);
			ck_assert(is_root(u[k]));
		}
		if (variant == 2) {
			ck_assert(is_root(sunk_named("down.Back/S1")));
			ck_assert(is_root(sunk_named("down.Back/S3")));
			ck_assert(is_root(sunk_named("down.Back/S5")));
		} else {
			ck_assert(child_of(sunk_named("down.Back/S1"), u[1]));
			ck_assert(child_of(sunk_named("down.Back/S3"), u[2]));
			ck_assert(child_of(sunk_named("down.Back/S5"), u[0]));
		}
		if (variant == 1)
			ck_assert(child_of(sunk_named("down.Back/S7"), u[0]));
		else
			ck_assert(is_root(sunk_named("down.Back/S7")));
		ck_assert(is_root(sunk_named("down.Back/S11")));
		ck_assert_uint_eq(th_misuse(h), 0);
		th_free(h);
		sink_release();
	}
	for (int k = 0; k < 3; k++)
		conv_free(&sv[k]);
	conv_free(&cl);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("grpc_plugin");
	TCase *t = tcase_create("grpc");

	tcase_set_timeout(t, 120);
	tcase_add_test(t, detect);
	tcase_add_loop_test(t, unary_server_and_client, 0, 2);
	tcase_add_test(t, grpc_status_codes);
	tcase_add_test(t, trailers_only);
	tcase_add_test(t, streaming_calls);
	tcase_add_loop_test(t, many_concurrent_streams, 0, 2);
	tcase_add_test(t, http2_requests);
	tcase_add_test(t, privacy);
	tcase_add_test(t, reset_close_goaway);
	tcase_add_loop_test(t, every_split_same_spans, 0, 2);
	tcase_add_test(t, unknown_role);
	tcase_add_test(t, midstream_join_never_misattributes);
	tcase_add_test(t, capture_cut_large_messages);
	tcase_add_test(t, gap_in_responses);
	tcase_add_test(t, garbage);
	tcase_add_test(t, span_limit);
	tcase_add_test(t, server_push);
	tcase_add_test(t, trailers_late_blocks_http_errors);
	tcase_add_test(t, preface_overrides_role);
	tcase_add_loop_test(t, v12_client_streams_take_their_context, 0, 3);
	tcase_add_test(t, bulk_transfer_not_given_up);
	tcase_add_test(t, v11_server_streams_not_active_when_multiplexed);
	tcase_add_test(t, v11_capture_cap);
	tcase_add_test(t, v11_counters_and_abi_1_0);
	tcase_add_test(t, v11_uncertain_streams_expire);
	tcase_add_test(t, v11_scheme_from_chunk_source);
	tcase_add_loop_test(t, link_many_streams, 0, 4 * 12);
	tcase_add_test(t, link_none_after_gap);
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
