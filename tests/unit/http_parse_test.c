/*
 * http_parse_test.c - the HTTP/1.x head parser and chunked decoder from
 * byte vectors.
 *
 * The one idea: besides checking fields of known vectors, every vector is
 * also parsed at every cut point, because the parser's whole contract is
 * "-2 until the head is whole, then exactly the uncut answer".
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define REQ_GET                                                                     \
	"GET /users/42?x=1 HTTP/1.1\r\n"                                            \
	"Host: example.com:8080\r\n"                                                \
	"User-Agent: curl/8.0\r\n"                                                  \
	"Accept: */*\r\n"                                                           \
	"\r\n"

#define RES_OK                                                                      \
	"HTTP/1.1 200 OK\r\n"                                                       \
	"Content-Type: text/plain\r\n"                                              \
	"Content-Length: 5\r\n"                                                     \
	"\r\n"

static int hdr_is(const struct http_header *h, const char *name, const char *val)
{
	return h->name_len == strlen(name) && !memcmp(h->name, name, h->name_len) &&
	       h->value_len == strlen(val) && !memcmp(h->value, val, h->value_len);
}

static int str_is(const char *p, size_t n, const char *s)
{
	return n == strlen(s) && !memcmp(p, s, n);
}

/* Same head, field by field (pointers compared as offsets). */
static void assert_same_request(const struct http_request *a, const char *abuf,
                                const struct http_request *b, const char *bbuf)
{
	ck_assert_uint_eq(a->method_len, b->method_len);
	ck_assert_int_eq(a->method - abuf, b->method - bbuf);
	ck_assert_int_eq(a->target - abuf, b->target - bbuf);
	ck_assert_uint_eq(a->target_len, b->target_len);
	ck_assert_int_eq(a->minor_version, b->minor_version);
	ck_assert_uint_eq(a->n_headers, b->n_headers);
	for (size_t i = 0; i < a->n_headers; i++) {
		ck_assert_int_eq(a->headers[i].value - abuf, b->headers[i].value - bbuf);
		ck_assert_uint_eq(a->headers[i].value_len, b->headers[i].value_len);
		ck_assert_uint_eq(a->headers[i].name_len, b->headers[i].name_len);
	}
}

/* Every prefix of a valid head is -2; the whole head parses to its length,
 * with or without bytes after it, and the fields match the uncut parse. */
static void check_request_cuts(const char *msg, size_t head_len)
{
	size_t n = strlen(msg);
	struct http_request full, part;
	char *copy;

	ck_assert_int_eq(http_parse_request(msg, n, &full), (int)head_len);
	for (size_t i = 0; i < head_len; i++) {
		/* A fresh heap copy of exactly i bytes, so ASan sees any overread. */
		copy = malloc(i ? i : 1);
		memcpy(copy, msg, i);
		ck_assert_msg(http_parse_request(copy, i, &part) == HTTP_PARSE_INCOMPLETE,
		              "cut at %zu of %zu", i, head_len);
		free(copy);
	}
	for (size_t i = head_len; i <= n; i++) {
		copy = malloc(i);
		memcpy(copy, msg, i);
		ck_assert_int_eq(http_parse_request(copy, i, &part), (int)head_len);
		assert_same_request(&full, msg, &part, copy);
		free(copy);
	}
}

static void check_response_cuts(const char *msg, size_t head_len)
{
	size_t n = strlen(msg);
	struct http_response full, part;
	char *copy;

	ck_assert_int_eq(http_parse_response(msg, n, &full), (int)head_len);
	for (size_t i = 0; i < head_len; i++) {
		copy = malloc(i ? i : 1);
		memcpy(copy, msg, i);
		ck_assert_msg(http_parse_response(copy, i, &part) == HTTP_PARSE_INCOMPLETE,
		              "cut at %zu of %zu", i, head_len);
		free(copy);
	}
	for (size_t i = head_len; i <= n; i++) {
		copy = malloc(i);
		memcpy(copy, msg, i);
		ck_assert_int_eq(http_parse_response(copy, i, &part), (int)head_len);
		ck_assert_int_eq(part.status, full.status);
		ck_assert_int_eq(part.minor_version, full.minor_version);
		ck_assert_uint_eq(part.n_headers, full.n_headers);
		ck_assert_uint_eq(part.reason_len, full.reason_len);
		free(copy);
	}
}

/* Garbage: the answer is -2 for a while, then -1 for every longer prefix. */
static void check_garbage_request(const char *msg, size_t n)
{
	struct http_request req;
	int seen_error = 0;

	for (size_t i = 0; i <= n; i++) {
		char *copy = malloc(i ? i : 1);
		int r;

		memcpy(copy, msg, i);
		r = http_parse_request(copy, i, &req);
		free(copy);
		ck_assert_msg(r == HTTP_PARSE_INCOMPLETE || r == HTTP_PARSE_ERROR,
		              "prefix %zu gave %d", i, r);
		if (seen_error)
			ck_assert_int_eq(r, HTTP_PARSE_ERROR);
		seen_error |= r == HTTP_PARSE_ERROR;
	}
	ck_assert_msg(seen_error, "\"%.*s\" was not rejected", (int)n, msg);
}

START_TEST(request_fields)
{
	struct http_request req;
	const char *m = REQ_GET;
	int r = http_parse_request(m, strlen(m), &req);

	ck_assert_int_eq(r, (int)strlen(m));
	ck_assert(str_is(req.method, req.method_len, "GET"));
	ck_assert(str_is(req.target, req.target_len, "/users/42?x=1"));
	ck_assert_int_eq(req.minor_version, 1);
	ck_assert_uint_eq(req.n_headers, 3);
	ck_assert(hdr_is(&req.headers[0], "Host", "example.com:8080"));
	ck_assert(hdr_is(&req.headers[1], "User-Agent", "curl/8.0"));
	ck_assert(hdr_is(&req.headers[2], "Accept", "*/*"));
}
END_TEST

START_TEST(request_variants)
{
	struct http_request req;
	const char *lf = "POST /a HTTP/1.0\nContent-Length: 3\n\nabc";
	const char *lead = "\r\nGET / HTTP/1.1\r\n\r\n";
	const char *ws = "GET / HTTP/1.1\r\nX-A:   padded \t \r\nX-B:\r\n\r\n";
	const char *fold = "GET / HTTP/1.1\r\nX-A: one\r\n  two\r\n\r\n";
	const char *star = "OPTIONS * HTTP/1.1\r\n\r\n";
	const char *abs = "GET http://h.example/p?q HTTP/1.1\r\n\r\n";

	ck_assert_int_eq(http_parse_request(lf, strlen(lf), &req), (int)strlen(lf) - 3);
	ck_assert_int_eq(req.minor_version, 0);
	ck_assert(hdr_is(&req.headers[0], "Content-Length", "3"));

	ck_assert_int_eq(http_parse_request(lead, strlen(lead), &req), (int)strlen(lead));
	ck_assert(str_is(req.method, req.method_len, "GET"));

	ck_assert_int_eq(http_parse_request(ws, strlen(ws), &req), (int)strlen(ws));
	ck_assert(hdr_is(&req.headers[0], "X-A", "padded"));
	ck_assert(hdr_is(&req.headers[1], "X-B", ""));

	ck_assert_int_eq(http_parse_request(fold, strlen(fold), &req), (int)strlen(fold));
	ck_assert_uint_eq(req.n_headers, 2);
	ck_assert_ptr_null(req.headers[1].name);
	ck_assert(str_is(req.headers[1].value, req.headers[1].value_len, "two"));

	ck_assert_int_eq(http_parse_request(star, strlen(star), &req), (int)strlen(star));
	ck_assert(str_is(req.target, req.target_len, "*"));
	ck_assert_int_eq(http_parse_request(abs, strlen(abs), &req), (int)strlen(abs));
	ck_assert(str_is(req.target, req.target_len, "http://h.example/p?q"));
}
END_TEST

START_TEST(response_fields)
{
	struct http_response res;
	const char *m = RES_OK "hello";
	const char *noreason = "HTTP/1.1 204\r\n\r\n";
	const char *nf = "HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\n";

	ck_assert_int_eq(http_parse_response(m, strlen(m), &res), (int)strlen(RES_OK));
	ck_assert_int_eq(res.status, 200);
	ck_assert_int_eq(res.minor_version, 1);
	ck_assert(str_is(res.reason, res.reason_len, "OK"));
	ck_assert_uint_eq(res.n_headers, 2);
	ck_assert(hdr_is(&res.headers[1], "Content-Length", "5"));

	ck_assert_int_eq(http_parse_response(noreason, strlen(noreason), &res),
	                 (int)strlen(noreason));
	ck_assert_int_eq(res.status, 204);
	ck_assert_uint_eq(res.reason_len, 0);

	ck_assert_int_eq(http_parse_response(nf, strlen(nf), &res), (int)strlen(nf));
	ck_assert_int_eq(res.status, 404);
	ck_assert_int_eq(res.minor_version, 0);
	ck_assert(str_is(res.reason, res.reason_len, "Not Found"));
}
END_TEST

START_TEST(every_cut_point)
{
	const char *with_body = "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody";
	const char *lf_only = "GET / HTTP/1.1\nHost: h\n\n";

	check_request_cuts(REQ_GET, strlen(REQ_GET));
	check_request_cuts(with_body, strlen(with_body) - 4);
	check_request_cuts(lf_only, strlen(lf_only));
	check_request_cuts("\r\nGET / HTTP/1.0\r\n\r\n", 20);
	check_response_cuts(RES_OK "hello", strlen(RES_OK));
	check_response_cuts("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 25);
	check_response_cuts("HTTP/1.1 304\r\nETag: \"x\"\r\n\r\n", 27);
}
END_TEST

START_TEST(pipelined_three)
{
	const char *m = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
	                "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
	                "DELETE /c/1 HTTP/1.1\r\n\r\n";
	const char *expect[] = { "/a", "/b", "/c/1" };
	size_t off = 0, n = strlen(m);
	struct http_request req;

	for (int i = 0; i < 3; i++) {
		int r = http_parse_request(m + off, n - off, &req);
		struct http_framing f;

		ck_assert_int_gt(r, 0);
		ck_assert(str_is(req.target, req.target_len, expect[i]));
		ck_assert_int_eq(http_request_framing(&req, &f), 0);
		off += (size_t)r;
		if (f.kind == HTTP_BODY_LENGTH)
			off += f.length;
	}
	ck_assert_uint_eq(off, n);
}
END_TEST

START_TEST(garbage)
{
	static const char *const bad[] = {
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  /* TLS ClientHello */
		"*3\r\n$3\r\nSET\r\n",                            /* RESP */
		"GET  / HTTP/1.1\r\n\r\n",                        /* empty target */
		"GET / HTTP/1.1\rX\r\n\r\n",                      /* bare CR */
		"GET / HTTP/1.1\r\nHost\r\n\r\n",                 /* no colon */
		"GET / HTTP/1.1\r\nHost : x\r\n\r\n",             /* space before colon */
		"GET / HTTP/1.1\r\n folded-first\r\n\r\n",        /* continuation first */
		"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",            /* control byte */
		"G(T / HTTP/1.1\r\n\r\n",                         /* not a token */
		"GET /a\x7f HTTP/1.1\r\n\r\n",                    /* DEL in target */
	};
	static const char *const bad_versions[] = {
		"GET / HTTP/2.0\r\n\r\n", "GET / HTTP/1.x\r\n\r\n", "GET / HTTP/1.10\r\n\r\n",
		"GET / http/1.1\r\n\r\n", "GET / HTTP/1.1 \r\n\r\n", "GET / HTTP/0.9\r\n\r\n",
	};
	static const char *const bad_res[] = {
		"HTTP/1.1 20x OK\r\n\r\n", "HTTP/1.1 099 X\r\n\r\n", "HTTP/2 200\r\n\r\n",
		"HTTP/1.1  200 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "SSH-2.0-OpenSSH\r\n",
	};
	struct http_response res;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_garbage_request(bad[i], strlen(bad[i]));
	for (size_t i = 0; i < sizeof(bad_versions) / sizeof(bad_versions[0]); i++)
		check_garbage_request(bad_versions[i], strlen(bad_versions[i]));
	for (size_t i = 0; i < sizeof(bad_res) / sizeof(bad_res[0]); i++)
		ck_assert_msg(http_parse_response(bad_res[i], strlen(bad_res[i]), &res) ==
		                      HTTP_PARSE_ERROR, "%s", bad_res[i]);
}
END_TEST

static char *many_headers(int n)
{
	size_t cap = 64 + (size_t)n * 16;
	char *m = malloc(cap);
	size_t o = (size_t)snprintf(m, cap, "GET / HTTP/1.1\r\n");

	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(m + o, cap - o, "X-%d: v\r\n", i);
	snprintf(m + o, cap - o, "\r\n");
	return m;
}

START_TEST(too_many_headers)
{
	struct http_request req;
	char *ok = many_headers(HTTP_MAX_HEADERS);
	char *bad = many_headers(HTTP_MAX_HEADERS + 1);

	ck_assert_int_eq(http_parse_request(ok, strlen(ok), &req), (int)strlen(ok));
	ck_assert_uint_eq(req.n_headers, HTTP_MAX_HEADERS);
	ck_assert_int_eq(http_parse_request(bad, strlen(bad), &req), HTTP_PARSE_ERROR);
	free(ok);
	free(bad);
}
END_TEST

START_TEST(huge_header_line)
{
	size_t vlen = 64 * 1024;
	char *m = malloc(vlen + 64);
	struct http_request req;
	size_t o = (size_t)sprintf(m, "GET / HTTP/1.1\r\nCookie: ");

	memset(m + o, 'a', vlen);
	o += vlen;
	memcpy(m + o, "\r\n\r\n", 4);
	o += 4;
	ck_assert_int_eq(http_parse_request(m, o, &req), (int)o);
	ck_assert_uint_eq(req.headers[0].value_len, vlen);
	/* Cut inside the value: incomplete, not an error. */
	ck_assert_int_eq(http_parse_request(m, o - 1000, &req), HTTP_PARSE_INCOMPLETE);
	free(m);
}
END_TEST

START_TEST(prefix_parse)
{
	const char *m = "GET /x HTTP/1.1\r\nHost: a\r\nUser-Ag";
	const char *line = "GET /x HTT";
	const char *r = "HTTP/1.1 500 Oops\r\nContent-Len";
	struct http_request req;
	struct http_response res;

	ck_assert_int_eq(http_parse_request_prefix(m, strlen(m), &req), 26);
	ck_assert_uint_eq(req.n_headers, 1);
	ck_assert(hdr_is(&req.headers[0], "Host", "a"));
	ck_assert_int_eq(http_parse_request_prefix(line, strlen(line), &req),
	                 HTTP_PARSE_INCOMPLETE);
	ck_assert_int_eq(http_parse_request_prefix(REQ_GET, strlen(REQ_GET), &req),
	                 (int)strlen(REQ_GET));
	ck_assert_int_eq(http_parse_response_prefix(r, strlen(r), &res), 19);
	ck_assert_int_eq(res.status, 500);
	ck_assert_uint_eq(res.n_headers, 0);
	ck_assert_int_eq(http_parse_request_prefix("\x16\x03\x01", 3, &req), HTTP_PARSE_ERROR);
}
END_TEST

START_TEST(start_line_check)
{
	static const struct {
		const char *s;
		int req, want;
	} v[] = {
		{ "GET / HTTP/1.1\r\n", 1, 1 },
		{ "GET /", 1, 1 },
		{ "GE", 1, 0 },
		{ "", 1, 0 },
		{ "DELETE", 1, 0 },
		{ "M-SEARCH * HTTP/1.1\r\n", 1, 1 },
		{ "CONNECT example.com:443 HTTP/1.1\r\n", 1, 1 },
		{ "GET http://x/ HTTP/1.1\r\n", 1, 1 },
		{ "GET htt", 1, 0 },
		{ "GET hello HTTP/1.1\r\n", 1, -1 },
		{ "PRI * HTTP/2.0\r\n", 1, -1 },
		{ "GET / HTTP/2.0\r\n", 1, -1 },
		{ "GET / RTSP/1.0\r\n", 1, -1 },
		{ "FOO / HTTP/1.1\r\n", 1, -1 },
		{ "get / HTTP/1.1\r\n", 1, -1 },
		{ "\x16\x03\x01", 1, -1 },
		{ "*3\r\n", 1, -1 },
		{ "VERYLONGTOKENWITHOUTSPACE", 1, -1 },
		{ "HTTP/1.1 200 OK\r\n", 0, 1 },
		{ "HTTP/1.0 404", 0, 1 },
		{ "HTTP/1.", 0, 0 },
		{ "H", 0, 0 },
		{ "HTTP/2 200", 0, -1 },
		{ "HTTP/1.1 099", 0, -1 },
		{ "+OK\r\n", 0, -1 },
		{ "GET / HTTP/1.1\r\n", 0, -1 },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		ck_assert_msg(http_start_line_check(v[i].s, strlen(v[i].s), v[i].req) == v[i].want,
		              "\"%s\" (req %d): want %d", v[i].s, v[i].req, v[i].want);
}
END_TEST

static struct http_request req_of(const char *m)
{
	struct http_request req;

	ck_assert_int_gt(http_parse_request(m, strlen(m), &req), 0);
	return req;
}

static struct http_response res_of(const char *m)
{
	struct http_response res;

	ck_assert_int_gt(http_parse_response(m, strlen(m), &res), 0);
	return res;
}

START_TEST(framing)
{
	struct http_framing f;
	struct http_request rq;
	struct http_response rs;

	rq = req_of("GET / HTTP/1.1\r\n\r\n");
	ck_assert_int_eq(http_request_framing(&rq, &f), 0);
	ck_assert_int_eq(f.kind, HTTP_BODY_NONE);
	rq = req_of("POST / HTTP/1.1\r\ncontent-length: 12\r\n\r\n");
	ck_assert_int_eq(http_request_framing(&rq, &f), 0);
	ck_assert_int_eq(f.kind, HTTP_BODY_LENGTH);
	ck_assert_uint_eq(f.length, 12);
	rq = req_of("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n");
	ck_assert_int_eq(http_request_framing(&rq, &f), 0);
	ck_assert_uint_eq(f.length, 5);
	rq = req_of("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
	ck_assert_int_eq(http_request_framing(&rq, &f), -1);
	rq = req_of("POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n");
	ck_assert_int_eq(http_request_framing(&rq, &f), -1);
	rq = req_of("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
	ck_assert_int_eq(http_request_framing(&rq, &f), 0);
	ck_assert_int_eq(f.kind, HTTP_BODY_CHUNKED);
	rq = req_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
	ck_assert_int_eq(http_request_framing(&rq, &f), -1);

	rs = res_of("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
	ck_assert_int_eq(http_response_framing(&rs, 1, 0, &f), 0);
	ck_assert_int_eq(f.kind, HTTP_BODY_NONE); /* response to HEAD */
	ck_assert_int_eq(http_response_framing(&rs, 0, 0, &f), 0);
	ck_assert_int_eq(f.kind, HTTP_BODY_LENGTH);
	rs = res_of("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n");
	ck_assert_int_eq(http_response_framing(&rs, 0, 0, &f), 0);
	ck_assert_int_eq(f.kind, HTTP_BODY_NONE);
	rs = res_of("HTTP/1.1 304 Not Modified\r\n\r\n");
	ck_assert_int_eq(http_response_framing(&rs, 0, 0, &f), 0);
	ck_assert_int_eq(f.kind, HTTP_BODY_NONE);
	rs = res_of("HTTP/1.0 200 OK\r\n\r\n");
	ck_assert_int_eq(http_response_framing(&rs, 0, 0, &f), 0);
	ck_assert_int_eq(f.kind, HTTP_BODY_CLOSE);
	rs = res_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
	ck_assert_int_eq(http_response_framing(&rs, 0, 0, &f), 0);
	ck_assert_int_eq(f.kind, HTTP_BODY_CLOSE);
	rs = res_of("HTTP/1.1 200 Connection established\r\n\r\n");
	ck_assert_int_eq(http_response_framing(&rs, 0, 1, &f), 0);
	ck_assert_int_eq(f.kind, HTTP_BODY_NONE); /* CONNECT 2xx */
	rs = res_of("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	ck_assert_int_eq(http_response_framing(&rs, 0, 0, &f), 0);
	ck_assert_int_eq(f.kind, HTTP_BODY_NONE);
}
END_TEST

START_TEST(header_helpers)
{
	struct http_request rq = req_of("GET / HTTP/1.1\r\nCONNECTION: keep-alive, Upgrade\r\n"
	                                "Transfer-Encoding: gzip;q=1 , chunked ,\r\n\r\n");
	const struct http_header *h = http_header_find(rq.headers, rq.n_headers, "connection");
	uint64_t v;

	ck_assert_ptr_nonnull(h);
	ck_assert(http_value_has_token(h->value, h->value_len, "upgrade"));
	ck_assert(http_value_has_token(h->value, h->value_len, "Keep-Alive"));
	ck_assert(!http_value_has_token(h->value, h->value_len, "close"));
	ck_assert(!http_value_has_token(h->value, h->value_len, "keep"));
	ck_assert_ptr_null(http_header_find(rq.headers, rq.n_headers, "connectio"));
	h = http_header_find(rq.headers, rq.n_headers, "transfer-encoding");
	ck_assert(http_value_last_token_is(h->value, h->value_len, "chunked"));
	ck_assert(!http_value_last_token_is(h->value, h->value_len, "gzip"));
	ck_assert(http_value_has_token(h->value, h->value_len, "gzip"));

	ck_assert_int_eq(http_parse_content_length("0", 1, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(http_parse_content_length("123456789012345678", 18, &v), 0);
	ck_assert_uint_eq(v, 123456789012345678ull);
	ck_assert_int_eq(http_parse_content_length("1234567890123456789", 19, &v), -1);
	ck_assert_int_eq(http_parse_content_length("", 0, &v), -1);
	ck_assert_int_eq(http_parse_content_length("+1", 2, &v), -1);
	ck_assert_int_eq(http_parse_content_length("1 2", 3, &v), -1);
}
END_TEST

#define CHUNKED_BODY                                                               \
	"5;name=val;x\r\nhello\r\n"                                                \
	"1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"                                     \
	"0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"

/* Feed in pieces; returns bytes consumed until done (or -1). */
static ssize_t chunked_split(const char *m, size_t n, const size_t *cuts, size_t n_cuts)
{
	struct http_chunked d;
	size_t off = 0, total = 0;

	http_chunked_init(&d);
	for (size_t i = 0; i <= n_cuts; i++) {
		size_t end = i < n_cuts ? cuts[i] : n;
		char *piece = malloc(end - off + 1);
		ssize_t k;

		memcpy(piece, m + off, end - off);
		k = http_chunked_feed(&d, piece, end - off);
		free(piece);
		if (k < 0)
			return -1;
		total += (size_t)k;
		if (http_chunked_done(&d))
			return (ssize_t)total;
		off = end;
	}
	return http_chunked_done(&d) ? (ssize_t)total : -2;
}

START_TEST(chunked_whole_and_split)
{
	const char *m = CHUNKED_BODY "GET /next";
	size_t body = strlen(CHUNKED_BODY), n = strlen(m);
	size_t cuts[1];
	size_t *each = malloc(n * sizeof(*each));

	ck_assert_int_eq(chunked_split(m, n, NULL, 0), (ssize_t)body);
	for (size_t i = 1; i < n; i++) {
		cuts[0] = i;
		ck_assert_msg(chunked_split(m, n, cuts, 1) == (ssize_t)body, "cut at %zu", i);
	}
	for (size_t i = 0; i + 1 < n; i++)
		each[i] = i + 1;
	ck_assert_int_eq(chunked_split(m, n, each, n - 1), (ssize_t)body); /* byte by byte */
	free(each);
}
END_TEST

START_TEST(chunked_variants)
{
	const char *lf = "3\nabc\n0\n\n";
	const char *ext_ws = "3 ; a=\"q\"\r\nabc\r\n0\r\n\r\n";
	const char *upper = "A\r\n0123456789\r\n0\r\n\r\n";
	const char *bad[] = {
		"zz\r\n", "\r\n", "3\r\nabcX\r\n", "3\r\nabc\r\r", "1234567890abcdef0\r\n",
		"3\rx", "0\r\n\x01\r\n", "3\r\nabc\r\n0\r\n\rX",
	};

	ck_assert_int_eq(chunked_split(lf, strlen(lf), NULL, 0), (ssize_t)strlen(lf));
	ck_assert_int_eq(chunked_split(ext_ws, strlen(ext_ws), NULL, 0), (ssize_t)strlen(ext_ws));
	ck_assert_int_eq(chunked_split(upper, strlen(upper), NULL, 0), (ssize_t)strlen(upper));
	ck_assert_int_eq(chunked_split("3\r\nab", 5, NULL, 0), -2);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(chunked_split(bad[i], strlen(bad[i]), NULL, 0) == -1, "%s", bad[i]);
}
END_TEST

START_TEST(chunked_skip)
{
	struct http_chunked d;

	http_chunked_init(&d);
	ck_assert_int_eq(http_chunked_feed(&d, "a\r\n", 3), 3);
	ck_assert_int_eq(http_chunked_skip(&d, 4), 0);
	ck_assert_int_eq(http_chunked_skip(&d, 6), 0); /* exactly the rest of the data */
	ck_assert_int_eq(http_chunked_feed(&d, "\r\n0\r\n\r\n", 7), 7);
	ck_assert(http_chunked_done(&d));

	http_chunked_init(&d);
	ck_assert_int_eq(http_chunked_feed(&d, "4\r\nab", 5), 5);
	ck_assert_int_eq(http_chunked_skip(&d, 3), -1); /* runs past the chunk */
	http_chunked_init(&d);
	ck_assert_int_eq(http_chunked_skip(&d, 1), -1); /* not in data at all */
	ck_assert_int_eq(http_chunked_skip(&d, 0), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("http_parse");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, request_fields);
	tcase_add_test(tc, request_variants);
	tcase_add_test(tc, response_fields);
	tcase_add_test(tc, every_cut_point);
	tcase_add_test(tc, pipelined_three);
	tcase_add_test(tc, garbage);
	tcase_add_test(tc, too_many_headers);
	tcase_add_test(tc, huge_header_line);
	tcase_add_test(tc, prefix_parse);
	tcase_add_test(tc, start_line_check);
	tcase_add_test(tc, framing);
	tcase_add_test(tc, header_helpers);
	tcase_add_test(tc, chunked_whole_and_split);
	tcase_add_test(tc, chunked_variants);
	tcase_add_test(tc, chunked_skip);
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
