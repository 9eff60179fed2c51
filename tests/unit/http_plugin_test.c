/*
 * http_plugin_test.c - the HTTP/1.x plugin end to end through the real
 * host (tests/support/testhost.h): bytes in per direction, spans and metric records out.
 *
 * The one idea: every test plays one connection as a sequence of chunks
 * (direction, timestamp, bytes, maybe cut or after a gap), closes it, and
 * then reads what the test host recorded. Each test ends in finish(),
 * which also checks that no span was left open, that the plugin never used
 * a dead handle, and that there is exactly one metric record per span.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testhost.h"
/* SDK 1.1 checks read the capture policy the plugin asked for from the
 * real host (the test host has no getter for it). */
#include "host/host.h"
#include "http_route.h"

const struct sonde_plugin *sonde_plugin_entry(void);

static struct th_host *H;
static struct th_conn *C;
static enum sonde_dir REQ, RES; /* directions of requests and responses */

static void open_conn(struct th_host *h, enum sonde_role role, int tls, const char *service)
{
	struct sonde_conn_info ci;

	th_conn_info_init(&ci, role);
	ci.tls = (uint8_t)tls;
	if (service)
		ci.service_name = service;
	C = th_conn_open(h, &ci);
	ck_assert_ptr_nonnull(C);
	REQ = role == SONDE_ROLE_CLIENT ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
	RES = !REQ;
}

static void start(enum sonde_role role)
{
	H = th_new();
	ck_assert_int_eq(th_load(H, sonde_plugin_entry(), "http"), SONDE_OK);
	open_conn(H, role, 0, NULL);
}

static int feed_ex(enum sonde_dir dir, uint64_t ts, const char *s, size_t len, size_t orig_len,
                   uint32_t flags)
{
	struct sonde_chunk ch = { 0 };

	ch.dir = dir;
	ch.ts_unix_ns = ts;
	ch.data = (const uint8_t *)s;
	ch.len = len;
	ch.orig_len = orig_len;
	ch.flags = flags;
	ch.tid = 77;
	return th_conn_feed_chunk(C, &ch);
}

static void feed(enum sonde_dir dir, uint64_t ts, const char *s)
{
	ck_assert_int_eq(feed_ex(dir, ts, s, strlen(s), strlen(s), 0), SONDE_OK);
}

/* Close, check the invariants every test shares, free. */
static void finish(uint64_t close_ts)
{
	th_conn_close(C, close_ts);
	ck_assert_uint_eq(th_n_open(H), 0);
	ck_assert_uint_eq(th_misuse(H), 0);
	ck_assert_uint_eq(th_n_records(H), th_n_ended(H));
	th_free(H);
	H = NULL;
}

static struct th_span *ended(size_t i)
{
	struct th_span *s = th_ended(H, i);

	ck_assert_msg(s != NULL, "no span #%zu (have %zu)", i, th_n_ended(H));
	return s;
}

static int64_t status_of(const struct th_span *s)
{
	int64_t v = -1;

	ck_assert_int_eq(th_span_int(s, "http.response.status_code", &v), 0);
	return v;
}

static void assert_str_attr(const struct th_span *s, const char *key, const char *want)
{
	const char *v = th_span_str(s, key);

	ck_assert_msg(v != NULL, "%s missing", key);
	ck_assert_msg(!strcmp(v, want), "%s = %s, want %s", key, v, want);
}

#define RESP_OK_5 "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

START_TEST(keep_alive_sequence)
{
	const char *paths[] = { "/users/42", "/users/77", "/api/v1/items" };
	const char *routes[] = { "/users/*", "/users/*", "/api/v1/items" };
	char req[256];

	start(SONDE_ROLE_SERVER);
	for (int i = 0; i < 3; i++) {
		snprintf(req, sizeof(req),
		         "GET %s?secret=1 HTTP/1.1\r\nHost: example.com:9090\r\n"
		         "User-Agent: curl/8.5.0\r\n\r\n", paths[i]);
		feed(REQ, 1000 + i * 100, req);
		feed(RES, 1050 + i * 100, RESP_OK_5);
	}
	ck_assert_uint_eq(th_n_ended(H), 3);
	for (size_t i = 0; i < 3; i++) {
		struct th_span *s = ended(i);
		char name[64];
		int64_t port;

		snprintf(name, sizeof(name), "GET %s", routes[i]);
		ck_assert_str_eq(s->name, name);
		ck_assert_int_eq(s->kind, SONDE_SPAN_SERVER);
		ck_assert_uint_eq(s->start_ns, 1000 + i * 100);
		ck_assert_uint_eq(s->end_ns, 1050 + i * 100);
		ck_assert_uint_eq(s->tid, 77);
		ck_assert_int_eq(status_of(s), 200);
		ck_assert_int_eq(s->status, SONDE_STATUS_UNSET);
		assert_str_attr(s, "http.request.method", "GET");
		assert_str_attr(s, "url.path", paths[i]);
		assert_str_attr(s, "http.route", routes[i]);
		assert_str_attr(s, "url.scheme", "http");
		assert_str_attr(s, "server.address", "example.com");
		ck_assert_int_eq(th_span_int(s, "server.port", &port), 0);
		ck_assert_int_eq(port, 9090);
		assert_str_attr(s, "client.address", "127.0.0.2");
		assert_str_attr(s, "network.protocol.version", "1.1");
		assert_str_attr(s, "user_agent.original", "curl/8.5.0");
		ck_assert_ptr_null(th_span_attr(s, "error.type"));
		ck_assert_ptr_null(th_span_attr(s, "url.template"));
	}
	/* One histogram value per span, with the span's attributes. */
	ck_assert_uint_eq(th_n_records(H), 3);
	const struct th_record *r = th_record(H, 0);
	ck_assert_str_eq(r->m->name, "http.server.request.duration");
	ck_assert_str_eq(r->m->unit, "s");
	ck_assert_uint_eq(r->m->n_bounds, 14);
	ck_assert(r->m->bounds[0] == 0.005 && r->m->bounds[13] == 10);
	ck_assert_str_eq(th_record_val(r, "http.request.method"), "GET");
	ck_assert_str_eq(th_record_val(r, "http.response.status_code"), "200");
	ck_assert_str_eq(th_record_val(r, "http.route"), "/users/*");
	ck_assert_str_eq(th_record_val(r, "url.scheme"), "http");
	ck_assert_str_eq(th_record_val(r, "network.protocol.version"), "1.1");
	ck_assert_ptr_null(th_record_val(r, "error.type"));
	ck_assert(r->value > 0.0000000499 && r->value < 0.0000000501);
	finish(9999);
}
END_TEST

/* The route of a path seen before comes from the plugin's cache: it is the
 * same as the guess, for repeated paths, the same path with other queries,
 * paths that differ in one byte, a path too long to cache and the root. */
START_TEST(route_cache_same_as_guess)
{
	static const char *const paths[] = {
		"/users/42", "/users/42", "/users/42?page=2", "/users/43", "/users/4x",
		"/users/42", "/", "/?q=1", "/orders/2024-01-31/items",
		"/very/long/path/with/many/segments/that/does/not/fit/the/cache/12345",
		"/very/long/path/with/many/segments/that/does/not/fit/the/cache/12345",
		"/users/4x",
	};
	const size_t n = sizeof(paths) / sizeof(paths[0]);
	char req[256], want[HTTP_ROUTE_MAX];

	start(SONDE_ROLE_SERVER);
	for (size_t i = 0; i < n; i++) {
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", paths[i]);
		feed(REQ, 1000 + i * 100, req);
		feed(RES, 1050 + i * 100, RESP_OK_5);
	}
	ck_assert_uint_eq(th_n_ended(H), n);
	for (size_t i = 0; i < n; i++) {
		http_route_guess(paths[i], strlen(paths[i]), want, sizeof(want));
		assert_str_attr(ended(i), "http.route", want);
	}
}
END_TEST

START_TEST(pipelined_requests)
{
	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
	               "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
	               "GET /c HTTP/1.1\r\nHost: h\r\n\r\n");
	ck_assert_uint_eq(th_n_spans(H), 3);
	ck_assert_uint_eq(th_n_ended(H), 0);
	feed(RES, 200, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	               "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
	feed(RES, 300, "HTTP/1.1 503 Unavailable\r\nContent-Length: 4\r\n\r\nbusy");
	ck_assert_uint_eq(th_n_ended(H), 3);
	ck_assert_str_eq(ended(0)->name, "GET /a");
	ck_assert_str_eq(ended(1)->name, "POST /b");
	ck_assert_str_eq(ended(2)->name, "GET /c");
	ck_assert_int_eq(status_of(ended(0)), 200);
	ck_assert_int_eq(status_of(ended(1)), 404);
	ck_assert_int_eq(status_of(ended(2)), 503);
	ck_assert_uint_eq(ended(1)->end_ns, 200);
	ck_assert_uint_eq(ended(2)->end_ns, 300);
	/* Server: 404 is not an error, 503 is. */
	ck_assert_int_eq(ended(1)->status, SONDE_STATUS_UNSET);
	ck_assert_ptr_null(th_span_attr(ended(1), "error.type"));
	ck_assert_int_eq(ended(2)->status, SONDE_STATUS_ERROR);
	assert_str_attr(ended(2), "error.type", "503");
	ck_assert_str_eq(th_record_val(th_record(H, 2), "error.type"), "503");
	finish(400);
}
END_TEST

START_TEST(head_with_content_length)
{
	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "HEAD /file HTTP/1.1\r\nHost: h\r\n\r\n");
	feed(RES, 200, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
	feed(REQ, 300, "GET /file HTTP/1.1\r\nHost: h\r\n\r\n");
	feed(RES, 400, "HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n");
	feed(REQ, 500, "DELETE /file HTTP/1.1\r\nHost: h\r\n\r\n");
	feed(RES, 600, "HTTP/1.1 204 No Content\r\n\r\n");
	ck_assert_uint_eq(th_n_ended(H), 3);
	ck_assert_str_eq(ended(0)->name, "HEAD /file");
	ck_assert_uint_eq(ended(0)->end_ns, 200);
	ck_assert_int_eq(status_of(ended(1)), 304);
	ck_assert_uint_eq(ended(1)->end_ns, 400);
	ck_assert_int_eq(status_of(ended(2)), 204);
	finish(700);
}
END_TEST

START_TEST(interim_responses)
{
	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "POST /upload HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
	               "Content-Length: 10\r\n\r\n");
	feed(RES, 200, "HTTP/1.1 100 Continue\r\n\r\n");
	ck_assert_uint_eq(th_n_ended(H), 0);
	feed(REQ, 300, "0123456789");
	feed(RES, 400, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n");
	ck_assert_uint_eq(th_n_ended(H), 0);
	feed(RES, 500, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
	feed(REQ, 600, "GET /next HTTP/1.1\r\n\r\n");
	feed(RES, 700, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	ck_assert_uint_eq(th_n_ended(H), 2);
	ck_assert_int_eq(status_of(ended(0)), 201);
	ck_assert_uint_eq(ended(0)->start_ns, 100);
	ck_assert_uint_eq(ended(0)->end_ns, 500);
	ck_assert_str_eq(ended(1)->name, "GET /next");
	finish(800);
}
END_TEST

#define CHUNKED_RESP                                                               \
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"                     \
	"5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n"

/* The response cut in two at every index, then another exchange: the span
 * ends at the chunk carrying the last byte, and the stream stays in sync. */
START_TEST(chunked_response_every_split)
{
	const char *m = CHUNKED_RESP;
	size_t n = strlen(m);

	for (size_t i = 1; i < n; i++) {
		start(SONDE_ROLE_SERVER);
		feed(REQ, 100, "GET /stream HTTP/1.1\r\n\r\n");
		ck_assert_int_eq(feed_ex(RES, 200, m, i, i, 0), SONDE_OK);
		ck_assert_uint_eq(th_n_ended(H), 0);
		ck_assert_int_eq(feed_ex(RES, 300, m + i, n - i, n - i, 0), SONDE_OK);
		ck_assert_uint_eq(th_n_ended(H), 1);
		ck_assert_uint_eq(ended(0)->end_ns, 300);
		feed(REQ, 400, "GET /after HTTP/1.1\r\n\r\n");
		feed(RES, 500, RESP_OK_5);
		ck_assert_uint_eq(th_n_ended(H), 2);
		ck_assert_str_eq(ended(1)->name, "GET /after");
		finish(600);
	}
	/* Byte by byte. */
	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "GET /stream HTTP/1.1\r\n\r\n");
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(feed_ex(RES, 1000 + i, m + i, 1, 1, 0), SONDE_OK);
	ck_assert_uint_eq(th_n_ended(H), 1);
	ck_assert_uint_eq(ended(0)->end_ns, 1000 + n - 1);
	ck_assert_int_eq(status_of(ended(0)), 200);
	finish(99999);
}
END_TEST

/* Requests cut at every index, heads and chunked bodies alike. */
START_TEST(request_split_everywhere)
{
	const char *m = "POST /items HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	                "4\r\nabcd\r\n0\r\n\r\n"
	                "GET /items/9 HTTP/1.1\r\nHost: h\r\n\r\n";
	size_t n = strlen(m);

	for (size_t i = 1; i < n; i++) {
		start(SONDE_ROLE_SERVER);
		ck_assert_int_eq(feed_ex(REQ, 100, m, i, i, 0), SONDE_OK);
		ck_assert_int_eq(feed_ex(REQ, 200, m + i, n - i, n - i, 0), SONDE_OK);
		feed(RES, 300, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
		feed(RES, 400, RESP_OK_5);
		ck_assert_uint_eq(th_n_ended(H), 2);
		ck_assert_str_eq(ended(0)->name, "POST /items");
		ck_assert_uint_eq(ended(0)->start_ns, 100);
		ck_assert_str_eq(ended(1)->name, "GET /items/*");
		/* The second request starts in whichever chunk carries its first byte. */
		ck_assert_uint_eq(ended(1)->start_ns, i <= n - 34 ? 200 : 100);
		finish(500);
	}
}
END_TEST

START_TEST(close_mid_response)
{
	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "GET /big HTTP/1.1\r\n\r\n");
	feed(RES, 200, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-a-bit");
	feed(REQ, 300, "GET /never-answered HTTP/1.1\r\n\r\n");
	th_conn_close(C, 400);
	ck_assert_uint_eq(th_n_ended(H), 2);
	ck_assert_int_eq(ended(0)->status, SONDE_STATUS_ERROR);
	ck_assert_uint_eq(ended(0)->end_ns, 400);
	assert_str_attr(ended(0), "error.type", "incomplete_response");
	ck_assert_int_eq(status_of(ended(0)), 200);
	/* No response at all: still a request, failed, ended at the close. */
	ck_assert_str_eq(ended(1)->name, "GET /never-answered");
	ck_assert_int_eq(ended(1)->status, SONDE_STATUS_ERROR);
	ck_assert_uint_eq(ended(1)->start_ns, 300);
	ck_assert_uint_eq(ended(1)->end_ns, 400);
	assert_str_attr(ended(1), "error.type", "no_response");
	int64_t none;
	ck_assert_int_ne(th_span_int(ended(1), "http.response.status_code", &none), 0);
	ck_assert_uint_eq(th_n_dropped(H), 0);
	finish(400);
}
END_TEST

START_TEST(close_delimited_body)
{
	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "GET /old HTTP/1.0\r\n\r\n");
	feed(RES, 200, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body");
	feed(RES, 300, "HTTP/1.1 200 this is body too\r\n");
	ck_assert_uint_eq(th_n_ended(H), 0);
	th_conn_close(C, 900);
	ck_assert_uint_eq(th_n_ended(H), 1);
	ck_assert_uint_eq(ended(0)->end_ns, 300);
	ck_assert_int_eq(ended(0)->status, SONDE_STATUS_UNSET);
	assert_str_attr(ended(0), "network.protocol.version", "1.0");
	/* No Host header: the local address and port. */
	assert_str_attr(ended(0), "server.address", "127.0.0.1");
	finish(900);
}
END_TEST

/* orig_len > len: a Content-Length body mostly not captured; counting by
 * orig_len keeps the stream in sync for the next exchange. */
START_TEST(truncated_body_then_next)
{
	char resp[256];
	int hl = snprintf(resp, sizeof(resp),
	                  "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n%s", "0123456789");

	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "GET /download HTTP/1.1\r\n\r\n");
	ck_assert_int_eq(feed_ex(RES, 200, resp, (size_t)hl, (size_t)hl - 10 + 3000,
	                         SONDE_CHUNK_TRUNCATED), SONDE_OK);
	ck_assert_uint_eq(th_n_ended(H), 0);
	ck_assert_int_eq(feed_ex(RES, 300, "xxxx", 4, 2000, SONDE_CHUNK_TRUNCATED), SONDE_OK);
	ck_assert_uint_eq(th_n_ended(H), 1);
	ck_assert_uint_eq(ended(0)->end_ns, 300);
	feed(REQ, 400, "GET /next HTTP/1.1\r\n\r\n");
	feed(RES, 500, RESP_OK_5);
	ck_assert_uint_eq(th_n_ended(H), 2);
	ck_assert_str_eq(ended(1)->name, "GET /next");
	ck_assert_int_eq(status_of(ended(1)), 200);
	ck_assert_uint_eq(ended(1)->end_ns, 500);
	finish(600);
}
END_TEST

/* Heads cut by the capture: what the start line says is kept. */
START_TEST(truncated_heads)
{
	const char *req = "GET /users/5 HTTP/1.1\r\nHost: cut.example\r\nUser-Agent: very-long-";
	const char *res = "HTTP/1.1 502 Bad Gateway\r\nServer: x\r\nContent-Ty";

	start(SONDE_ROLE_SERVER);
	ck_assert_int_eq(feed_ex(REQ, 100, req, strlen(req), 900, SONDE_CHUNK_TRUNCATED), 0);
	ck_assert_int_eq(feed_ex(RES, 200, res, strlen(res), 4000, SONDE_CHUNK_TRUNCATED), 0);
	ck_assert_int_eq(feed_ex(RES, 250, "more body", 9, 9, 0), 0);
	ck_assert_uint_eq(th_n_ended(H), 0); /* end unknown until the next request */
	feed(REQ, 300, "GET /next HTTP/1.1\r\n\r\n");
	ck_assert_uint_eq(th_n_ended(H), 1);
	ck_assert_str_eq(ended(0)->name, "GET /users/*");
	assert_str_attr(ended(0), "server.address", "cut.example");
	ck_assert_int_eq(status_of(ended(0)), 502);
	ck_assert_uint_eq(ended(0)->end_ns, 250);
	feed(RES, 400, RESP_OK_5);
	ck_assert_uint_eq(th_n_ended(H), 2);
	ck_assert_int_eq(status_of(ended(1)), 200);
	/* A cut head of a response without a body ends in its own write. */
	const char *nc = "HTTP/1.1 204 No Content\r\nServer: ver";
	feed(REQ, 500, "DELETE /x HTTP/1.1\r\n\r\n");
	ck_assert_int_eq(feed_ex(RES, 600, nc, strlen(nc), 700, SONDE_CHUNK_TRUNCATED), 0);
	ck_assert_uint_eq(th_n_ended(H), 3);
	ck_assert_int_eq(status_of(ended(2)), 204);
	ck_assert_uint_eq(ended(2)->end_ns, 600);
	finish(700);
}
END_TEST

/* A chunked body with bytes not captured: framing lost, so the response is
 * finished at the next request, at the last response chunk's time. */
START_TEST(truncated_chunked_body)
{
	const char *res = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123";

	start(SONDE_ROLE_CLIENT);
	feed(REQ, 100, "GET /feed HTTP/1.1\r\nHost: api.example\r\n\r\n");
	ck_assert_int_eq(feed_ex(RES, 200, res, strlen(res), strlen(res) + 500,
	                         SONDE_CHUNK_TRUNCATED), 0);
	feed(RES, 300, "garbage-looking tail\r\n0\r\n\r\n");
	ck_assert_uint_eq(th_n_ended(H), 0);
	feed(REQ, 400, "GET /feed HTTP/1.1\r\nHost: api.example\r\n\r\n");
	ck_assert_uint_eq(th_n_ended(H), 1);
	ck_assert_uint_eq(ended(0)->end_ns, 300);
	ck_assert_int_eq(status_of(ended(0)), 200);
	feed(RES, 500, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	ck_assert_uint_eq(th_n_ended(H), 2);
	ck_assert_uint_eq(ended(1)->end_ns, 500);
	finish(600);
}
END_TEST

START_TEST(gap_in_response_direction)
{
	const char *after = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "GET /a HTTP/1.1\r\n\r\n");
	feed(RES, 200, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
	/* The rest of /a's body was lost; the client went on with /b. */
	feed(REQ, 300, "GET /b HTTP/1.1\r\n\r\n");
	ck_assert_int_eq(feed_ex(RES, 400, after, strlen(after), strlen(after), SONDE_CHUNK_GAP),
	                 SONDE_OK);
	ck_assert_uint_eq(th_n_ended(H), 1);
	ck_assert_str_eq(ended(0)->name, "GET /b");
	ck_assert_uint_eq(th_n_dropped(H), 1);
	/* A gap chunk that starts inside a body: resync at the next status line. */
	feed(REQ, 500, "GET /c HTTP/1.1\r\n\r\n");
	feed(RES, 550, "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n");
	const char *mid = "dy bytes\r\nmore body\r\nHTTP/1.1 418 Teapot\r\nContent-Length: 0\r\n\r\n";
	feed(REQ, 600, "GET /d HTTP/1.1\r\n\r\n");
	ck_assert_int_eq(feed_ex(RES, 700, mid, strlen(mid), strlen(mid), SONDE_CHUNK_GAP), 0);
	ck_assert_uint_eq(th_n_ended(H), 2);
	ck_assert_str_eq(ended(1)->name, "GET /d");
	ck_assert_int_eq(status_of(ended(1)), 418);
	feed(REQ, 800, "GET /e HTTP/1.1\r\n\r\n");
	feed(RES, 900, RESP_OK_5);
	ck_assert_uint_eq(th_n_ended(H), 3);
	ck_assert_str_eq(ended(2)->name, "GET /e");
	finish(1000);
}
END_TEST

/* The only response in progress is damaged by a gap: its transaction is
 * dropped, not reported as an incomplete response at close. */
START_TEST(gap_drops_damaged_response)
{
	const char *more = "more body bytes with no status line\r\n";

	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "GET /a HTTP/1.1\r\n\r\n");
	feed(RES, 200, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial");
	ck_assert_int_eq(feed_ex(RES, 300, more, strlen(more), strlen(more), SONDE_CHUNK_GAP), 0);
	th_conn_close(C, 400);
	ck_assert_uint_eq(th_n_ended(H), 0);
	ck_assert_uint_eq(th_n_dropped(H), 1);
	finish(400);

	/* Idle response side, one request waiting: a gap before its response
	 * keeps it (the lost bytes cannot have held its answer and another). */
	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "GET /b HTTP/1.1\r\n\r\n");
	ck_assert_int_eq(feed_ex(RES, 200, RESP_OK_5, strlen(RESP_OK_5), strlen(RESP_OK_5),
	                         SONDE_CHUNK_GAP), 0);
	ck_assert_uint_eq(th_n_ended(H), 1);
	ck_assert_str_eq(ended(0)->name, "GET /b");
	finish(300);
}
END_TEST

START_TEST(gap_in_request_direction)
{
	const char *b = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";

	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "GET /a HTTP/1.1\r\nHo");
	ck_assert_int_eq(feed_ex(REQ, 200, b, strlen(b), strlen(b), SONDE_CHUNK_GAP), SONDE_OK);
	feed(RES, 300, RESP_OK_5);
	ck_assert_uint_eq(th_n_ended(H), 1);
	ck_assert_str_eq(ended(0)->name, "GET /b");
	ck_assert_uint_eq(ended(0)->start_ns, 200);
	ck_assert_uint_eq(th_n_dropped(H), 1);
	/* Gap inside a request body: the request stays, its response is matched. */
	feed(REQ, 400, "PUT /c HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc");
	const char *tail = "...rest\r\nGET /d HTTP/1.1\r\n\r\n";
	ck_assert_int_eq(feed_ex(REQ, 500, tail, strlen(tail), strlen(tail), SONDE_CHUNK_GAP), 0);
	feed(RES, 600, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	feed(RES, 700, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
	ck_assert_uint_eq(th_n_ended(H), 3);
	ck_assert_str_eq(ended(1)->name, "PUT /c");
	ck_assert_str_eq(ended(2)->name, "GET /d");
	ck_assert_int_eq(status_of(ended(2)), 201);
	finish(800);
}
END_TEST

START_TEST(client_error_status)
{
	int64_t port;

	start(SONDE_ROLE_CLIENT);
	feed(REQ, 100, "GET /missing/123 HTTP/1.1\r\nHost: backend.internal\r\n"
	               "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n");
	feed(RES, 200, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
	ck_assert_uint_eq(th_n_ended(H), 1);
	struct th_span *s = ended(0);
	ck_assert_int_eq(s->kind, SONDE_SPAN_CLIENT);
	ck_assert_str_eq(s->name, "GET /missing/*");
	ck_assert_int_eq(s->status, SONDE_STATUS_ERROR);
	assert_str_attr(s, "error.type", "404");
	assert_str_attr(s, "url.template", "/missing/*");
	ck_assert_ptr_null(th_span_attr(s, "http.route"));
	ck_assert_ptr_null(th_span_attr(s, "client.address"));
	assert_str_attr(s, "server.address", "backend.internal");
	ck_assert_int_eq(th_span_int(s, "server.port", &port), 0);
	ck_assert_int_eq(port, 40000); /* no port in Host: the peer's */
	ck_assert_ptr_null(s->traceparent); /* client spans take their parent from the host */
	const struct th_record *r = th_record(H, 0);
	ck_assert_str_eq(r->m->name, "http.client.request.duration");
	ck_assert_str_eq(th_record_val(r, "server.address"), "backend.internal");
	ck_assert_str_eq(th_record_val(r, "server.port"), "40000");
	ck_assert_str_eq(th_record_val(r, "error.type"), "404");
	finish(300);
}
END_TEST

START_TEST(traceparent_honoured)
{
	const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
	char req[256];

	start(SONDE_ROLE_SERVER);
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nTraceParent:  %s \r\n\r\n", tp);
	feed(REQ, 100, req);
	feed(RES, 200, RESP_OK_5);
	feed(REQ, 300, "GET / HTTP/1.1\r\ntraceparent: 00-zz-b7ad6b7169203331-01\r\n\r\n");
	feed(RES, 400, RESP_OK_5);
	ck_assert_uint_eq(th_n_ended(H), 2);
	ck_assert_ptr_nonnull(ended(0)->traceparent);
	ck_assert_str_eq(ended(0)->traceparent, tp);
	ck_assert_ptr_null(ended(1)->traceparent);
	ck_assert_str_eq(ended(0)->name, "GET /");
	finish(500);
}
END_TEST

static int contains(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle) != NULL;
}

START_TEST(secrets_never_exported)
{
	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "POST /login?token=SECRETQ HTTP/1.1\r\nHost: h\r\n"
	               "Authorization: Bearer SECRET-TOKEN-123\r\n"
	               "Cookie: session=SECRETCOOKIE\r\nX-Api-Key: SECRETKEY\r\n"
	               "Content-Length: 15\r\n\r\npassword=SECRET");
	feed(RES, 200, "HTTP/1.1 500 Oops\r\nSet-Cookie: id=SECRETSET\r\n"
	               "Content-Length: 13\r\n\r\nSECRET-BODY!!");
	ck_assert_uint_eq(th_n_ended(H), 1);
	for (size_t i = 0; i < th_n_spans(H); i++) {
		const struct th_span *s = th_span(H, i);
		ck_assert(!contains(s->name, "SECRET"));
		ck_assert(!contains(s->status_desc, "SECRET"));
		for (size_t k = 0; k < s->n_attrs; k++) {
			ck_assert_msg(!contains(s->attrs[k].s, "SECRET"), "%s leaks",
			              s->attrs[k].key);
			ck_assert(!contains(s->attrs[k].key, "authorization"));
		}
	}
	for (size_t i = 0; i < th_n_records(H); i++) {
		const struct th_record *r = th_record(H, i);
		for (size_t k = 0; k < r->m->n_keys; k++)
			ck_assert(!contains(r->vals[k], "SECRET"));
	}
	assert_str_attr(ended(0), "url.path", "/login");
	finish(300);
}
END_TEST

START_TEST(span_count_equals_request_count)
{
	static const char *const reqs[] = {
		"GET /a HTTP/1.1\r\n\r\n",
		"POST /b HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody",
		"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"HEAD /d HTTP/1.1\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\n\r\n",
		"PURGE /cache HTTP/1.1\r\n\r\n",
	};
	static const char *const resps[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n",
		"HTTP/1.1 200 OK\r\nAllow: GET\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 500 Boom\r\nContent-Length: 3\r\n\r\nerr",
	};
	size_t n = sizeof(reqs) / sizeof(reqs[0]), rounds = 5;
	uint64_t ts = 0;

	start(SONDE_ROLE_SERVER);
	for (size_t r = 0; r < rounds; r++) {
		for (size_t i = 0; i < n; i++) {
			feed(REQ, ts += 10, reqs[i]);
			feed(RES, ts += 10, resps[i]);
		}
	}
	ck_assert_uint_eq(th_n_spans(H), n * rounds);
	ck_assert_uint_eq(th_n_ended(H), n * rounds);
	ck_assert_uint_eq(th_n_records(H), n * rounds);
	ck_assert_str_eq(ended(4)->name, "OPTIONS");
	ck_assert_ptr_null(th_span_attr(ended(4), "url.path"));
	ck_assert_str_eq(ended(5)->name, "HTTP /cache");
	assert_str_attr(ended(5), "http.request.method", "_OTHER");
	assert_str_attr(ended(5), "http.request.method_original", "PURGE");
	finish(ts + 10);
}
END_TEST

START_TEST(unknown_role_learns_direction)
{
	struct sonde_conn_info ci;

	H = th_new();
	ck_assert_int_eq(th_load(H, sonde_plugin_entry(), NULL), SONDE_OK);
	th_conn_info_init(&ci, SONDE_ROLE_UNKNOWN);
	C = th_conn_open(H, &ci);
	/* Joined mid-stream: the tail of a body, then a response: requests
	 * must flow the other way (this process is the server). */
	feed(SONDE_DIR_EGRESS, 100, "ail of a body\r\n");
	feed(SONDE_DIR_EGRESS, 150, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	feed(SONDE_DIR_INGRESS, 200, "GET /x HTTP/1.1\r\n\r\n");
	feed(SONDE_DIR_EGRESS, 300, RESP_OK_5);
	ck_assert_uint_eq(th_n_ended(H), 1);
	ck_assert_int_eq(ended(0)->kind, SONDE_SPAN_SERVER);
	finish(400);

	H = th_new();
	ck_assert_int_eq(th_load(H, sonde_plugin_entry(), NULL), SONDE_OK);
	C = th_conn_open(H, &ci);
	feed(SONDE_DIR_EGRESS, 100, "GET /y HTTP/1.1\r\n\r\n");
	feed(SONDE_DIR_INGRESS, 200, RESP_OK_5);
	ck_assert_uint_eq(th_n_ended(H), 1);
	ck_assert_int_eq(ended(0)->kind, SONDE_SPAN_CLIENT);
	finish(300);
}
END_TEST

START_TEST(configured_routes)
{
	const char *const pats[] = { "/users/{id}/orders/{order}", "/static/*", "bad-pattern" };
	struct th_conn *other;

	H = th_new();
	ck_assert_int_eq(th_set_config(H, "svc", "routes", pats, 3), 0);
	ck_assert_int_eq(th_load(H, sonde_plugin_entry(), "http"), SONDE_OK);
	open_conn(H, SONDE_ROLE_SERVER, 1, NULL);
	ck_assert_uint_eq(th_n_logs(H, SONDE_LOG_WARN), 1); /* "bad-pattern" */
	feed(REQ, 100, "GET /users/42/orders/abc?x HTTP/1.1\r\n\r\n");
	feed(RES, 200, RESP_OK_5);
	feed(REQ, 300, "GET /static/css/site.css HTTP/1.1\r\n\r\n");
	feed(RES, 400, RESP_OK_5);
	feed(REQ, 500, "GET /users/42 HTTP/1.1\r\n\r\n");
	feed(RES, 600, RESP_OK_5);
	th_conn_close(C, 700);
	ck_assert_str_eq(ended(0)->name, "GET /users/{id}/orders/{order}");
	assert_str_attr(ended(0), "http.route", "/users/{id}/orders/{order}");
	assert_str_attr(ended(0), "url.scheme", "https");
	assert_str_attr(ended(1), "http.route", "/static/*");
	assert_str_attr(ended(2), "http.route", "/users/*"); /* no pattern: heuristic */

	/* Another service has no patterns. */
	open_conn(H, SONDE_ROLE_SERVER, 0, "other");
	other = C;
	feed(REQ, 800, "GET /static/css/site.css HTTP/1.1\r\n\r\n");
	feed(RES, 900, RESP_OK_5);
	ck_assert_ptr_eq(C, other);
	assert_str_attr(ended(3), "http.route", "/static/css/site.css");
	ck_assert_uint_eq(th_n_logs(H, SONDE_LOG_WARN), 1);
	finish(1000);
}
END_TEST

START_TEST(connect_and_upgrade)
{
	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "CONNECT db.example:5432 HTTP/1.1\r\nHost: db.example:5432\r\n\r\n");
	feed(RES, 200, "HTTP/1.1 200 Connection Established\r\n\r\n");
	feed(REQ, 300, "\x16\x03\x01 binary tunnel bytes GET / HTTP/1.1\r\n\r\n");
	feed(RES, 400, "HTTP/1.1 200 OK\r\n\r\n");
	ck_assert_uint_eq(th_n_spans(H), 1);
	ck_assert_str_eq(ended(0)->name, "CONNECT");
	ck_assert_ptr_null(th_span_attr(ended(0), "url.path"));
	assert_str_attr(ended(0), "server.address", "db.example");
	finish(500);

	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
	feed(RES, 200, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
	feed(REQ, 300, "\x81\x85masked");
	ck_assert_uint_eq(th_n_ended(H), 1);
	ck_assert_int_eq(status_of(ended(0)), 101);
	ck_assert_uint_eq(ended(0)->end_ns, 200);
	finish(400);
}
END_TEST

START_TEST(head_too_long_gives_up)
{
	char *big = malloc(20000);

	start(SONDE_ROLE_SERVER);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	memset(big + 19, 'a', 20000 - 19);
	ck_assert_int_eq(feed_ex(REQ, 100, big, 1000, 1000, 0), SONDE_OK);
	ck_assert_int_eq(feed_ex(REQ, 200, big + 1000, 19000, 19000, 0), SONDE_ERR_PROTO);
	ck_assert(th_conn_given_up(C));
	ck_assert_uint_eq(th_n_ended(H), 0);
	ck_assert_uint_eq(th_n_dropped(H), 1);
	free(big);
	finish(300);
}
END_TEST

START_TEST(garbage_gives_up_eventually)
{
	const char *bad = "GET / HTTP/1.1\r\nBad Header\r\n\r\n";
	int rc = SONDE_OK;

	start(SONDE_ROLE_SERVER);
	for (int i = 0; i < 20 && rc == SONDE_OK; i++)
		rc = feed_ex(REQ, 100 + (uint64_t)i, bad, strlen(bad), strlen(bad), 0);
	ck_assert_int_eq(rc, SONDE_ERR_PROTO);
	ck_assert_uint_eq(th_n_ended(H), 0);
	finish(200);
}
END_TEST

START_TEST(span_limit_keeps_matching)
{
	start(SONDE_ROLE_SERVER);
	th_set_span_limit(H, 1);
	feed(REQ, 100, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
	feed(RES, 200, RESP_OK_5 RESP_OK_5);
	feed(REQ, 300, "GET /3 HTTP/1.1\r\n\r\n");
	feed(RES, 400, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
	ck_assert_uint_eq(th_n_ended(H), 2);
	ck_assert_str_eq(ended(0)->name, "GET /*");
	ck_assert_str_eq(ended(1)->name, "GET /*");
	ck_assert_int_eq(status_of(ended(1)), 201);
	finish(500);
}
END_TEST

START_TEST(detect_table)
{
	static const struct {
		const char *s;
		int want;
		size_t len; /* 0: strlen */
	} t[] = {
		{ "GET / HTTP/1.1\r\n", SONDE_DETECT_SURE },
		{ "POST /api/v1/x HTTP/1.0\r\nHost: a\r\n", SONDE_DETECT_SURE },
		{ "GET /", SONDE_DETECT_SURE },
		{ "HTTP/1.1 200 OK\r\n", SONDE_DETECT_SURE },
		{ "G", SONDE_DETECT_NEED_MORE },
		{ "HTTP/", SONDE_DETECT_NEED_MORE },
		{ "OPTIONS", SONDE_DETECT_NEED_MORE },
		{ "", SONDE_DETECT_NEED_MORE },
		{ "\x16\x03\x01\x02\x00", SONDE_DETECT_NO },
		{ "*1\r\n$4\r\nPING\r\n", SONDE_DETECT_NO },
		{ "+PONG\r\n", SONDE_DETECT_NO },
		{ "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", SONDE_DETECT_NO },
		{ "GET / HTTP/2.0\r\n", SONDE_DETECT_NO },
		{ "\x00\x00\x00\x08\x04\xd2\x16\x2f", SONDE_DETECT_NO, 8 },
		{ "SSH-2.0-OpenSSH_9.6\r\n", SONDE_DETECT_NO },
	};
	struct sonde_conn_info ci;

	H = th_new();
	ck_assert_int_eq(th_load(H, sonde_plugin_entry(), "http"), SONDE_OK);
	th_conn_info_init(&ci, SONDE_ROLE_SERVER);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t len = t[i].len ? t[i].len : strlen(t[i].s);
		ck_assert_msg(th_detect(H, &ci, SONDE_DIR_INGRESS, t[i].s, len) == t[i].want,
		              "case %zu", i);
	}
	th_free(H);
}
END_TEST

START_TEST(descriptor_and_metrics)
{
	const struct sonde_plugin *p = sonde_plugin_entry();
	struct th_metric *m;

	ck_assert_uint_eq(p->abi_major, SONDE_ABI_MAJOR);
	ck_assert_str_eq(p->name, "http");
	ck_assert_str_eq(p->protocols[0]->name, "http");
	ck_assert_ptr_null(p->protocols[1]);
	H = th_new();
	ck_assert_int_eq(th_load(H, p, NULL), SONDE_OK);
	ck_assert_uint_eq(th_n_metrics(H), 2);
	m = th_metric_by_name(H, "http.client.request.duration");
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m->n_keys, 7);
	ck_assert_str_eq(m->keys[5], "server.address");
	m = th_metric_by_name(H, "http.server.request.duration");
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(m->keys[2], "http.route");
	th_free(H);
}
END_TEST

/* --- same-host links: both ends of a connection watched by one host ------- */

static struct th_conn *open_end(struct th_host *h, enum sonde_role role, uint16_t cport,
                                uint32_t flags)
{
	struct sonde_conn_info ci;
	struct th_conn *c;

	th_conn_info_init(&ci, role);
	ci.flags = flags;
	if (role == SONDE_ROLE_CLIENT) {
		ci.local_port = cport;
		ci.peer_port = 8080;
		snprintf(ci.local_addr, sizeof(ci.local_addr), "127.0.0.2");
		snprintf(ci.peer_addr, sizeof(ci.peer_addr), "127.0.0.1");
	} else {
		ci.peer_port = cport;
	}
	c = th_conn_open(h, &ci);
	ck_assert_ptr_nonnull(c);
	return c;
}

static struct th_span *span_named(const char *name, enum sonde_span_kind kind)
{
	for (size_t i = 0; i < th_n_spans(H); i++) {
		struct th_span *s = th_span(H, i);

		if (!strcmp(s->name, name) && s->kind == kind)
			return s;
	}
	ck_abort_msg("no span %s", name);
	return NULL;
}

static void assert_child(const char *name)
{
	struct th_span *cl = span_named(name, SONDE_SPAN_CLIENT);
	struct th_span *sv = span_named(name, SONDE_SPAN_SERVER);

	ck_assert_str_eq(sv->parent_span_id, cl->span_id);
	ck_assert_str_eq(sv->trace_id, cl->trace_id);
}

#define R1 "GET /one HTTP/1.1\r\nHost: b\r\n\r\n"
#define R2 "GET /two HTTP/1.1\r\nHost: b\r\n\r\n"
#define OK0 "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

/* Keep-alive, both orders of arrival: the server's read is often recorded
 * before the client's write returns. */
START_TEST(same_host_link_keepalive)
{
	struct th_conn *cl, *sv;
	int server_first = _i;

	H = th_new();
	ck_assert_int_eq(th_load(H, sonde_plugin_entry(), "http"), SONDE_OK);
	cl = open_end(H, SONDE_ROLE_CLIENT, 40000, 0);
	sv = open_end(H, SONDE_ROLE_SERVER, 40000, 0);
	for (int k = 0; k < 2; k++) {
		const char *r = k ? R2 : R1;
		uint64_t t = 100 + 100 * (uint64_t)k;

		if (server_first) {
			th_conn_feed(sv, SONDE_DIR_INGRESS, t + 1, r, strlen(r));
			th_conn_feed(cl, SONDE_DIR_EGRESS, t, r, strlen(r));
		} else {
			th_conn_feed(cl, SONDE_DIR_EGRESS, t, r, strlen(r));
			th_conn_feed(sv, SONDE_DIR_INGRESS, t + 1, r, strlen(r));
		}
		th_conn_feed(sv, SONDE_DIR_EGRESS, t + 2, OK0, strlen(OK0));
		th_conn_feed(cl, SONDE_DIR_INGRESS, t + 3, OK0, strlen(OK0));
	}
	th_conn_close(cl, 500);
	th_conn_close(sv, 500);
	ck_assert_uint_eq(th_n_ended(H), 4);
	assert_child("GET /one");
	assert_child("GET /two");
	ck_assert_str_ne(span_named("GET /one", SONDE_SPAN_CLIENT)->trace_id,
	                 span_named("GET /two", SONDE_SPAN_CLIENT)->trace_id);
	th_free(H);
	H = NULL;
}
END_TEST

/* Pipelined: the client writes both requests at once, the server reads
 * them split anywhere; each server span still finds its own client span. */
START_TEST(same_host_link_pipelined_any_split)
{
	const char both[] = R1 R2;
	size_t n = strlen(both), cut = (size_t)_i;
	struct th_conn *cl, *sv;

	H = th_new();
	ck_assert_int_eq(th_load(H, sonde_plugin_entry(), "http"), SONDE_OK);
	cl = open_end(H, SONDE_ROLE_CLIENT, 40001, 0);
	sv = open_end(H, SONDE_ROLE_SERVER, 40001, 0);
	if (cut)
		th_conn_feed(sv, SONDE_DIR_INGRESS, 101, both, cut);
	th_conn_feed(cl, SONDE_DIR_EGRESS, 100, both, n);
	th_conn_feed(sv, SONDE_DIR_INGRESS, 102, both + cut, n - cut);
	th_conn_feed(sv, SONDE_DIR_EGRESS, 103, OK0 OK0, 2 * strlen(OK0));
	th_conn_feed(cl, SONDE_DIR_INGRESS, 104, OK0 OK0, 2 * strlen(OK0));
	th_conn_close(cl, 500);
	th_conn_close(sv, 500);
	ck_assert_uint_eq(th_n_ended(H), 4);
	assert_child("GET /one");
	assert_child("GET /two");
	th_free(H);
	H = NULL;
}
END_TEST

/* What must not link: another client port, a connection found mid-stream
 * (its positions do not count from the first byte). */
START_TEST(same_host_no_false_link)
{
	struct th_conn *cl, *sv, *mid;

	H = th_new();
	ck_assert_int_eq(th_load(H, sonde_plugin_entry(), "http"), SONDE_OK);
	cl = open_end(H, SONDE_ROLE_CLIENT, 40002, 0);
	sv = open_end(H, SONDE_ROLE_SERVER, 40003, 0);
	mid = open_end(H, SONDE_ROLE_SERVER, 40002, SONDE_CONN_MIDSTREAM);
	th_conn_feed(cl, SONDE_DIR_EGRESS, 100, R1, strlen(R1));
	th_conn_feed(sv, SONDE_DIR_INGRESS, 101, R1, strlen(R1));
	th_conn_feed(mid, SONDE_DIR_INGRESS, 102, R1, strlen(R1));
	for (size_t i = 0; i < th_n_spans(H); i++)
		if (th_span(H, i)->kind == SONDE_SPAN_SERVER)
			ck_assert_str_eq(th_span(H, i)->parent_span_id, "");
	th_conn_close(cl, 500);
	th_conn_close(sv, 500);
	th_conn_close(mid, 500);
	th_free(H);
	H = NULL;
}
END_TEST

/* The server span started before its client span arrived and already has
 * a child (a call to a back end): the child moves to the client's trace. */
START_TEST(same_host_late_link_moves_children)
{
	struct th_conn *cl, *sv, *back;
	struct sonde_conn_info ci;
	struct sonde_chunk ch = {0};
	const char breq[] = "GET /db HTTP/1.1\r\n\r\n";

	H = th_new();
	ck_assert_int_eq(th_load(H, sonde_plugin_entry(), "http"), SONDE_OK);
	cl = open_end(H, SONDE_ROLE_CLIENT, 40004, 0);
	sv = open_end(H, SONDE_ROLE_SERVER, 40004, 0);
	th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
	ci.local_port = 50000;
	ci.peer_port = 5432;
	back = th_conn_open(H, &ci);
	ch.dir = SONDE_DIR_INGRESS;
	ch.ts_unix_ns = 101;
	ch.data = (const uint8_t *)R1;
	ch.len = ch.orig_len = strlen(R1);
	ch.tid = 9;
	th_conn_feed_chunk(sv, &ch);
	ch.dir = SONDE_DIR_EGRESS;
	ch.ts_unix_ns = 102;
	ch.data = (const uint8_t *)breq;
	ch.len = ch.orig_len = strlen(breq);
	th_conn_feed_chunk(back, &ch);          /* child of the server span */
	th_conn_feed(back, SONDE_DIR_INGRESS, 103, OK0, strlen(OK0));
	th_conn_feed(cl, SONDE_DIR_EGRESS, 100, R1, strlen(R1)); /* recorded late */
	th_conn_feed(sv, SONDE_DIR_EGRESS, 104, OK0, strlen(OK0));
	th_conn_feed(cl, SONDE_DIR_INGRESS, 105, OK0, strlen(OK0));
	th_conn_close(cl, 500);
	th_conn_close(sv, 500);
	th_conn_close(back, 500);
	assert_child("GET /one");
	ck_assert_str_eq(span_named("GET /db", SONDE_SPAN_CLIENT)->trace_id,
	                 span_named("GET /one", SONDE_SPAN_CLIENT)->trace_id);
	ck_assert_str_eq(span_named("GET /db", SONDE_SPAN_CLIENT)->parent_span_id,
	                 span_named("GET /one", SONDE_SPAN_SERVER)->span_id);
	th_free(H);
	H = NULL;
}
END_TEST

#define TP_X "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
#define R_TP(path) "GET " path " HTTP/1.1\r\ntraceparent: " TP_X "\r\n\r\n"

/* A proxy: its upstream request forwards the traceparent its server span
 * received; the upstream client span is that server span's child - only
 * while exactly one open server span received it. */
START_TEST(forwarded_traceparent_finds_the_proxy_span)
{
	struct th_conn *in1, *in2, *up1, *up2;
	struct sonde_conn_info ci;
	struct th_span *srv, *cl;

	H = th_new();
	ck_assert_int_eq(th_load(H, sonde_plugin_entry(), "http"), SONDE_OK);
	in1 = open_end(H, SONDE_ROLE_SERVER, 41000, 0);
	th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
	ci.local_port = 51000;
	ci.peer_port = 9000;
	up1 = th_conn_open(H, &ci);
	th_conn_feed(in1, SONDE_DIR_INGRESS, 100, R_TP("/a"), strlen(R_TP("/a")));
	th_conn_feed(up1, SONDE_DIR_EGRESS, 101, R_TP("/up-a"), strlen(R_TP("/up-a")));
	srv = span_named("GET /a", SONDE_SPAN_SERVER);
	cl = span_named("GET /up-a", SONDE_SPAN_CLIENT);
	ck_assert_str_eq(srv->trace_id, "0af7651916cd43dd8448eb211c80319c");
	ck_assert_str_eq(srv->parent_span_id, "b7ad6b7169203331");
	ck_assert_str_eq(cl->trace_id, srv->trace_id);
	ck_assert_str_eq(cl->parent_span_id, srv->span_id);
	/* A second request with the same incoming context: ambiguous. */
	in2 = open_end(H, SONDE_ROLE_SERVER, 41001, 0);
	ci.local_port = 51001;
	up2 = th_conn_open(H, &ci);
	th_conn_feed(in2, SONDE_DIR_INGRESS, 102, R_TP("/b"), strlen(R_TP("/b")));
	th_conn_feed(up2, SONDE_DIR_EGRESS, 103, R_TP("/up-b"), strlen(R_TP("/up-b")));
	cl = span_named("GET /up-b", SONDE_SPAN_CLIENT);
	ck_assert_str_eq(cl->parent_span_id, "");
	ck_assert_str_ne(cl->trace_id, "0af7651916cd43dd8448eb211c80319c");
	th_conn_close(in1, 500);
	th_conn_close(in2, 500);
	th_conn_close(up1, 500);
	th_conn_close(up2, 500);
	th_free(H);
	H = NULL;
}
END_TEST

/* Header and same-host link together: in one trace the link names the
 * nearer parent; in another trace the header wins. */
/* Injection: the kernel put a traceparent into the requests that start at
 * byte 0 (a new trace) and at the second request (the serving request's
 * trace); the client spans are those ids, whatever the host would have
 * chosen. The third request was not injected and gets ids of its own. The
 * server end reads what was on the wire (the requests with the inserted
 * line), so it is the child of the injected ids through the header, and
 * no same-host link is made on a connection the kernel wrote into. */
START_TEST(injected_ids_win)
{
	static const uint8_t t1[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	static const uint8_t s1[8] = {0xa1, 2, 3, 4, 5, 6, 7, 8};
	static const uint8_t t2[16] = {0xee, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	static const uint8_t s2[8] = {0xb2, 2, 3, 4, 5, 6, 7, 8};
	static const uint8_t p2[8] = {0xc3, 2, 3, 4, 5, 6, 7, 8};
	static const char tp1[] = "traceparent: 00-0102030405060708090a0b0c0d0e0f10-a102030405060708-01\r\n";
	static const char tp2[] = "traceparent: 00-ee02030405060708090a0b0c0d0e0f10-b202030405060708-01\r\n";
	static const char r3[] = "GET /three HTTP/1.1\r\nHost: b\r\n\r\n";
	struct th_conn *cl, *sv;
	struct th_span *c1, *c2, *c3, *v1, *v2;
	char wire[256];
	const char *line = "GET /one HTTP/1.1\r\n";

	H = th_new();
	ck_assert_int_eq(th_load(H, sonde_plugin_entry(), "http"), SONDE_OK);
	cl = open_end(H, SONDE_ROLE_CLIENT, 43000, 0);
	sv = open_end(H, SONDE_ROLE_SERVER, 43000, 0);
	th_conn_injected(cl, 0, t1, s1, NULL);
	th_conn_injected(cl, strlen(R1), t2, s2, p2);
	th_conn_feed(cl, SONDE_DIR_EGRESS, 100, R1, strlen(R1));
	snprintf(wire, sizeof(wire), "%s%s%s", line, tp1, R1 + strlen(line));
	th_conn_feed(sv, SONDE_DIR_INGRESS, 101, wire, strlen(wire));
	th_conn_feed(sv, SONDE_DIR_EGRESS, 102, OK0, strlen(OK0));
	th_conn_feed(cl, SONDE_DIR_INGRESS, 103, OK0, strlen(OK0));
	th_conn_feed(cl, SONDE_DIR_EGRESS, 200, R2, strlen(R2));
	snprintf(wire, sizeof(wire), "GET /two HTTP/1.1\r\n%s%s", tp2, R2 + strlen("GET /two HTTP/1.1\r\n"));
	th_conn_feed(sv, SONDE_DIR_INGRESS, 201, wire, strlen(wire));
	th_conn_feed(sv, SONDE_DIR_EGRESS, 202, OK0, strlen(OK0));
	th_conn_feed(cl, SONDE_DIR_INGRESS, 203, OK0, strlen(OK0));
	th_conn_feed(cl, SONDE_DIR_EGRESS, 300, r3, strlen(r3));
	th_conn_feed(cl, SONDE_DIR_INGRESS, 303, OK0, strlen(OK0));
	th_conn_close(cl, 500);
	th_conn_close(sv, 500);
	c1 = span_named("GET /one", SONDE_SPAN_CLIENT);
	c2 = span_named("GET /two", SONDE_SPAN_CLIENT);
	c3 = span_named("GET /three", SONDE_SPAN_CLIENT);
	v1 = span_named("GET /one", SONDE_SPAN_SERVER);
	v2 = span_named("GET /two", SONDE_SPAN_SERVER);
	ck_assert_str_eq(c1->trace_id, "0102030405060708090a0b0c0d0e0f10");
	ck_assert_str_eq(c1->span_id, "a102030405060708");
	ck_assert_str_eq(c1->parent_span_id, "");
	ck_assert_str_eq(c2->trace_id, "ee02030405060708090a0b0c0d0e0f10");
	ck_assert_str_eq(c2->span_id, "b202030405060708");
	ck_assert_str_eq(c2->parent_span_id, "c302030405060708");
	ck_assert_str_ne(c3->span_id, "b202030405060708");
	ck_assert_str_ne(c3->trace_id, "ee02030405060708090a0b0c0d0e0f10");
	ck_assert_str_eq(v1->parent_span_id, c1->span_id);
	ck_assert_str_eq(v1->trace_id, c1->trace_id);
	ck_assert_str_eq(v2->parent_span_id, c2->span_id);
	ck_assert_uint_eq(th_n_links(H), 0);
	th_free(H);
	H = NULL;
}
END_TEST

START_TEST(link_and_header_precedence)
{
	struct th_conn *cl, *sv;
	char req[160];
	struct th_span *c, *s;
	int same = _i;

	H = th_new();
	ck_assert_int_eq(th_load(H, sonde_plugin_entry(), "http"), SONDE_OK);
	cl = open_end(H, SONDE_ROLE_CLIENT, 42000, 0);
	sv = open_end(H, SONDE_ROLE_SERVER, 42000, 0);
	th_conn_feed(cl, SONDE_DIR_EGRESS, 100, R1, strlen(R1)); /* sonde's client span */
	c = span_named("GET /one", SONDE_SPAN_CLIENT);
	snprintf(req, sizeof(req), "GET /one HTTP/1.1\r\ntraceparent: 00-%s-%s-01\r\n\r\n",
	         same ? c->trace_id : "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
	/* the server reads what the client "sent" (a header the client's own
	 * instrumentation added; positions are per connection end) */
	th_conn_feed(sv, SONDE_DIR_INGRESS, 101, req, strlen(req));
	s = span_named("GET /one", SONDE_SPAN_SERVER);
	c = span_named("GET /one", SONDE_SPAN_CLIENT);
	if (same) {
		ck_assert_str_eq(s->trace_id, c->trace_id);
		ck_assert_str_eq(s->parent_span_id, c->span_id);
	} else {
		ck_assert_str_eq(s->trace_id, "0af7651916cd43dd8448eb211c80319c");
		ck_assert_str_eq(s->parent_span_id, "b7ad6b7169203331");
	}
	th_conn_close(cl, 500);
	th_conn_close(sv, 500);
	th_free(H);
	H = NULL;
}
END_TEST

/* --- SDK 1.1 ---------------------------------------------------------------------- */

/* The plugin as a 1.0 host runs it: the real host's table cut to its 1.0
 * size (abi_minor 0), so no 1.1 member may be used. */
static struct sonde_host_api api10;
static struct sonde_plugin desc10;

static int init_as_10(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
                      void **st)
{
	api10 = *host;
	api10.abi_minor = 0;
	api10.struct_size = offsetof(struct sonde_host_api, histogram_record) +
	                    sizeof(api10.histogram_record);
	return sonde_plugin_entry()->init(&api10, self, st);
}

static void start_v(enum sonde_role role, int v10)
{
	H = th_new();
	desc10 = *sonde_plugin_entry();
	desc10.init = init_as_10;
	ck_assert_int_eq(th_load(H, v10 ? &desc10 : sonde_plugin_entry(), "http"), SONDE_OK);
	open_conn(H, role, 0, NULL);
}

/* A chunk at stream position pos; s == NULL: skipped by the kernel. */
static void feed_pos(enum sonde_dir dir, uint64_t ts, uint64_t pos, const char *s, size_t len,
                     size_t orig, uint8_t source)
{
	struct sonde_chunk ch = { 0 };

	ch.dir = dir;
	ch.ts_unix_ns = ts;
	ch.data = (const uint8_t *)s;
	ch.len = len;
	ch.orig_len = orig;
	ch.pos = pos;
	ch.source = source;
	ch.tid = 77;
	if (!s)
		ch.flags = SONDE_CHUNK_SKIPPED | SONDE_CHUNK_TRUNCATED;
	else if (orig > len)
		ch.flags = SONDE_CHUNK_TRUNCATED;
	ck_assert_int_eq(th_conn_feed_chunk(C, &ch), SONDE_OK);
}

/* A 1 MB download (client side): after the read holding the head, no
 * payload is needed up to the end of the body (skip_to on the read
 * direction); the reads the kernel skips end the exchange on time, and the
 * next exchange is followed. TLS chunks and a 1.0 host ask nothing. */
START_TEST(v11_skip_content_length_body)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
	static char first[4096];
	const size_t hl = sizeof(head) - 1;
	const uint64_t p0 = 300; /* the request's bytes came before, other direction */

	memcpy(first, head, hl);
	memset(first + hl, 'b', sizeof(first) - hl);
	for (int mode = 0; mode < 3; mode++) { /* 0: 1.1, 1: TLS chunks, 2: 1.0 host */
		struct sonde_capture_policy p;
		uint64_t end = p0 + hl + 1000000, off;

		start_v(SONDE_ROLE_CLIENT, mode == 2);
		feed(REQ, 1000, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
		feed_pos(RES, 2000, p0, first, sizeof(first), 65536, mode == 1 ? SONDE_SRC_TLS : 0);
		if (mode) {
			ck_assert_int_eq(host_conn_capture(th_conn_handle(C), &p), 0);
		} else {
			ck_assert_int_eq(host_conn_capture(th_conn_handle(C), &p), 1);
			ck_assert_uint_eq(p.skip_to[RES], end);
			ck_assert_uint_eq(p.skip_to[REQ], 0);
			ck_assert_uint_eq(p.flags, 0);
		}
		for (off = p0 + 65536; off + 65536 <= end; off += 65536)
			feed_pos(RES, 3000, off, NULL, 0, 65536, mode == 1 ? SONDE_SRC_TLS : 0);
		feed_pos(RES, 4000, off, NULL, 0, end - off, mode == 1 ? SONDE_SRC_TLS : 0);
		ck_assert_uint_eq(th_n_ended(H), 1);
		ck_assert_uint_eq(ended(0)->end_ns, 4000);
		ck_assert_int_eq(status_of(ended(0)), 200);
		feed(REQ, 5000, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n");
		feed_pos(RES, 6000, end, RESP_OK_5, strlen(RESP_OK_5), strlen(RESP_OK_5), 0);
		ck_assert_uint_eq(th_n_ended(H), 2);
		assert_str_attr(ended(1), "url.path", "/small");
		/* nothing more to skip: nothing asked again */
		ck_assert_int_eq(host_conn_capture(th_conn_handle(C), &p), 0);
		finish(7000);
	}
}
END_TEST

/* An upload in chunked coding: inside a chunk's data, no payload is needed
 * up to the chunk's end; the next size line is read. Below 4096 bytes left
 * nothing is asked. */
START_TEST(v11_skip_chunk_data)
{
	static const char head[] = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	                           "10000\r\n"; /* 65536 bytes of data */
	static char w1[1024];
	const size_t hl = sizeof(head) - 1;
	struct sonde_capture_policy p;
	const char *tail = "\r\n0\r\n\r\n";

	memcpy(w1, head, hl);
	memset(w1 + hl, 'u', sizeof(w1) - hl);
	start(SONDE_ROLE_SERVER);
	feed_pos(REQ, 1000, 0, w1, sizeof(w1), sizeof(w1), 0);
	ck_assert_int_eq(host_conn_capture(th_conn_handle(C), &p), 1);
	ck_assert_uint_eq(p.skip_to[REQ], hl + 65536);
	feed_pos(REQ, 1100, sizeof(w1), NULL, 0, hl + 65536 - 3000 - sizeof(w1), 0);
	{
		static char w3[3000 + 16];

		memset(w3, 'u', 3000);
		memcpy(w3 + 3000, tail, strlen(tail));
		feed_pos(REQ, 1200, hl + 65536 - 3000, w3, 3000 + strlen(tail), 3000 + strlen(tail), 0);
	}
	ck_assert_int_eq(host_conn_capture(th_conn_handle(C), &p), 0); /* 3000 < 4096 */
	feed(RES, 2000, RESP_OK_5);
	ck_assert_uint_eq(th_n_ended(H), 1);
	assert_str_attr(ended(0), "http.request.method", "POST");
	finish(3000);
}
END_TEST

/* After 101 Switching Protocols (a WebSocket) nothing is HTTP any more: the
 * connection is muted (1.1), its span ended first. */
START_TEST(v11_tunnel_muted)
{
	for (int v10 = 0; v10 <= 1; v10++) {
		struct sonde_capture_policy p;

		start_v(SONDE_ROLE_SERVER, v10);
		feed(REQ, 1000, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		                "Connection: Upgrade\r\n\r\n");
		ck_assert_int_eq(host_conn_capture(th_conn_handle(C), &p), 0);
		feed(RES, 2000, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		                "Connection: Upgrade\r\n\r\n");
		ck_assert_uint_eq(th_n_ended(H), 1);
		ck_assert_int_eq(host_conn_capture(th_conn_handle(C), &p), !v10);
		if (!v10)
			ck_assert_uint_eq(p.flags & SONDE_CAPTURE_MUTE, SONDE_CAPTURE_MUTE);
		feed(REQ, 3000, "\x81\x05hello");
		ck_assert_int_eq(host_conn_capture(th_conn_handle(C), &p), 0); /* once */
		finish(4000);
	}
}
END_TEST

/* The answer's bytes were lost (a hole at the end, reported at close): the
 * request cannot be called unanswered; it is dropped, not made an error. */
START_TEST(lost_answer_is_not_no_response)
{
	struct sonde_chunk ch = {0};

	start(SONDE_ROLE_SERVER);
	feed(REQ, 100, "GET /lost HTTP/1.1\r\n\r\n");
	ch.dir = RES;
	ch.ts_unix_ns = 200;
	ch.orig_len = 120;
	ch.flags = SONDE_CHUNK_GAP | SONDE_CHUNK_NOBUF | SONDE_CHUNK_TRUNCATED;
	ck_assert_int_eq(th_conn_feed_chunk(C, &ch), SONDE_OK);
	th_conn_close(C, 300);
	ck_assert_uint_eq(th_n_ended(H), 0);
	ck_assert_uint_eq(th_n_dropped(H), 1);
	finish(300);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("http_plugin");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, keep_alive_sequence);
	tcase_add_test(tc, route_cache_same_as_guess);
	tcase_add_test(tc, pipelined_requests);
	tcase_add_test(tc, head_with_content_length);
	tcase_add_test(tc, interim_responses);
	tcase_add_test(tc, chunked_response_every_split);
	tcase_add_test(tc, request_split_everywhere);
	tcase_add_test(tc, close_mid_response);
	tcase_add_test(tc, lost_answer_is_not_no_response);
	tcase_add_test(tc, close_delimited_body);
	tcase_add_test(tc, truncated_body_then_next);
	tcase_add_test(tc, truncated_heads);
	tcase_add_test(tc, truncated_chunked_body);
	tcase_add_test(tc, gap_in_response_direction);
	tcase_add_test(tc, gap_drops_damaged_response);
	tcase_add_test(tc, gap_in_request_direction);
	tcase_add_test(tc, client_error_status);
	tcase_add_test(tc, traceparent_honoured);
	tcase_add_test(tc, secrets_never_exported);
	tcase_add_test(tc, span_count_equals_request_count);
	tcase_add_test(tc, unknown_role_learns_direction);
	tcase_add_test(tc, configured_routes);
	tcase_add_test(tc, connect_and_upgrade);
	tcase_add_test(tc, head_too_long_gives_up);
	tcase_add_test(tc, garbage_gives_up_eventually);
	tcase_add_test(tc, span_limit_keeps_matching);
	tcase_add_test(tc, detect_table);
	tcase_add_test(tc, descriptor_and_metrics);
	tcase_add_loop_test(tc, same_host_link_keepalive, 0, 2);
	tcase_add_loop_test(tc, same_host_link_pipelined_any_split, 0, (int)strlen(R1 R2));
	tcase_add_test(tc, same_host_no_false_link);
	tcase_add_test(tc, same_host_late_link_moves_children);
	tcase_add_test(tc, forwarded_traceparent_finds_the_proxy_span);
	tcase_add_loop_test(tc, link_and_header_precedence, 0, 2);
	tcase_add_test(tc, injected_ids_win);
	tcase_add_test(tc, v11_skip_content_length_body);
	tcase_add_test(tc, v11_skip_chunk_data);
	tcase_add_test(tc, v11_tunnel_muted);
	suite_add_tcase(s, tc);
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
