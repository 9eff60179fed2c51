/*
 * parse_http.c - sonde's HTTP/1 parser (plugins/http/http_parse.c) against
 * nodejs http-parser (Debian libhttp-parser-dev), on the same corpus.
 *
 * The one idea: both parsers do the same job on the same bytes - find every
 * message in a keep-alive stream, locate the start line and every header
 * (name and value spans), work out the body framing and step over the body
 * - and both must find exactly the number of messages the corpus was built
 * with, or the benchmark fails instead of printing a figure.
 *
 *   ours: http_parse_request/response (fills a header array of spans), then
 *         http_request/response_framing, then skips a Content-Length body by
 *         count or walks a chunked one with http_chunked_feed (chunk data is
 *         skipped by count). This is what the plugin does per message.
 *   ref:  http_parser_execute over the whole stream with callbacks that
 *         record the URL span and each header name/value span into the same
 *         kind of array; no on_body callback (http-parser then steps over
 *         Content-Length data by count and walks chunk framing itself).
 *
 * The corpus is deterministic (seeded generator): browser-like GETs with
 * 13 headers and a cookie, API GETs with a bearer token and a
 * traceparent, API POSTs and PUTs with JSON bodies; responses with
 * Content-Length HTML bodies, chunked JSON bodies, 304s, 204s and small
 * 404s. Timing is CPU time of this thread (CLOCK_THREAD_CPUTIME_ID), so time
 * the machine spends elsewhere does not count; repetitions are interleaved
 * (ours, ref, ours, ref...) and medians are printed.
 *
 * usage: parse_http [seconds-per-measurement] [repetitions]
 */
#define _GNU_SOURCE
#include <http_parser.h>

#include "bench_util.h"
#include "http_parse.h"

#define N_MSGS 4000

struct corpus {
	struct bench_buf b;
	size_t msgs;
};

static const char *const paths[] = {
	"/", "/index.html", "/static/js/app.4f3c2a.js", "/static/css/main.css",
	"/images/logo.png", "/api/v1/users/1842", "/api/v1/orders?page=3&per_page=50",
	"/search?q=observability+ebpf&lang=en", "/products/7731/reviews",
	"/account/settings", "/favicon.ico", "/docs/getting-started#install",
};

static const char *const agents[] = {
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
	"Chrome/120.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like "
	"Gecko) Version/17.2 Safari/605.1.15",
};

static void browser_get(struct bench_buf *b, uint64_t *rs)
{
	bench_buf_fmt(b, "GET %s HTTP/1.1\r\n", paths[bench_rand(rs) % 12]);
	bench_buf_str(b, "Host: shop.example.com\r\n");
	bench_buf_fmt(b, "User-Agent: %s\r\n", agents[bench_rand(rs) % 3]);
	bench_buf_str(b, "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,"
	                 "image/avif,image/webp,*/*;q=0.8\r\n");
	bench_buf_str(b, "Accept-Language: en-US,en;q=0.5\r\n");
	bench_buf_str(b, "Accept-Encoding: gzip, deflate, br\r\n");
	bench_buf_str(b, "Connection: keep-alive\r\n");
	bench_buf_str(b, "Referer: https://shop.example.com/\r\n");
	bench_buf_str(b, "Cookie: session=");
	bench_buf_fill(b, bench_range(rs, 24, 96), rs);
	bench_buf_str(b, "; theme=dark; consent=1\r\n");
	bench_buf_str(b, "Upgrade-Insecure-Requests: 1\r\n");
	bench_buf_str(b, "Sec-Fetch-Dest: document\r\n");
	bench_buf_str(b, "Sec-Fetch-Mode: navigate\r\n");
	bench_buf_str(b, "Sec-Fetch-Site: same-origin\r\n");
	bench_buf_str(b, "If-None-Match: \"5f3a-1c2b\"\r\n\r\n");
}

static void api_get(struct bench_buf *b, uint64_t *rs)
{
	bench_buf_fmt(b, "GET /api/v1/items/%u?fields=id,name,price HTTP/1.1\r\n",
	              bench_range(rs, 1, 99999));
	bench_buf_str(b, "Host: api.internal:8080\r\n");
	bench_buf_str(b, "User-Agent: okhttp/4.12.0\r\n");
	bench_buf_str(b, "Accept: application/json\r\n");
	bench_buf_str(b, "Authorization: Bearer ");
	bench_buf_fill(b, 40, rs);
	bench_buf_str(b, "\r\n");
	bench_buf_fmt(b, "traceparent: 00-%016llx%016llx-%016llx-01\r\n",
	              (unsigned long long)bench_rand(rs), (unsigned long long)bench_rand(rs),
	              (unsigned long long)bench_rand(rs));
	bench_buf_str(b, "X-Request-Id: ");
	bench_buf_fill(b, 20, rs);
	bench_buf_str(b, "\r\n\r\n");
}

static void api_post(struct bench_buf *b, uint64_t *rs, const char *method)
{
	size_t n = bench_range(rs, 80, 2000);

	bench_buf_fmt(b, "%s /api/v1/orders HTTP/1.1\r\n", method);
	bench_buf_str(b, "Host: api.internal:8080\r\n");
	bench_buf_str(b, "User-Agent: python-requests/2.31.0\r\n");
	bench_buf_str(b, "Accept: application/json\r\n");
	bench_buf_str(b, "Content-Type: application/json\r\n");
	bench_buf_str(b, "Authorization: Bearer ");
	bench_buf_fill(b, 40, rs);
	bench_buf_str(b, "\r\n");
	bench_buf_fmt(b, "Content-Length: %zu\r\n\r\n", n);
	bench_buf_fill(b, n, rs);
}

static void build_requests(struct corpus *c)
{
	uint64_t rs = 0x5eed0001;

	for (int i = 0; i < N_MSGS; i++) {
		unsigned k = bench_range(&rs, 0, 99);
		if (k < 40)
			browser_get(&c->b, &rs);
		else if (k < 65)
			api_get(&c->b, &rs);
		else if (k < 95)
			api_post(&c->b, &rs, "POST");
		else
			api_post(&c->b, &rs, "PUT");
		c->msgs++;
	}
}

static void resp_common(struct bench_buf *b, const char *status)
{
	bench_buf_fmt(b, "HTTP/1.1 %s\r\n", status);
	bench_buf_str(b, "Server: nginx/1.22.1\r\n");
	bench_buf_str(b, "Date: Tue, 21 Nov 2023 19:25:02 GMT\r\n");
}

static void resp_html(struct bench_buf *b, uint64_t *rs)
{
	size_t n = bench_range(rs, 500, 8000);

	resp_common(b, "200 OK");
	bench_buf_str(b, "Content-Type: text/html; charset=utf-8\r\n");
	bench_buf_fmt(b, "Content-Length: %zu\r\n", n);
	bench_buf_str(b, "Last-Modified: Mon, 20 Nov 2023 08:00:00 GMT\r\n");
	bench_buf_str(b, "Connection: keep-alive\r\n");
	bench_buf_fmt(b, "ETag: \"%llx-%zx\"\r\n", (unsigned long long)(bench_rand(rs) >> 40), n);
	bench_buf_str(b, "Cache-Control: max-age=3600\r\n");
	bench_buf_str(b, "Accept-Ranges: bytes\r\n\r\n");
	bench_buf_fill(b, n, rs);
}

static void resp_chunked(struct bench_buf *b, uint64_t *rs)
{
	unsigned chunks = bench_range(rs, 2, 5);

	resp_common(b, "200 OK");
	bench_buf_str(b, "Content-Type: application/json\r\n");
	bench_buf_str(b, "Transfer-Encoding: chunked\r\n");
	bench_buf_str(b, "Connection: keep-alive\r\n");
	bench_buf_str(b, "Vary: Accept-Encoding\r\n");
	bench_buf_str(b, "X-Request-Id: ");
	bench_buf_fill(b, 20, rs);
	bench_buf_str(b, "\r\n\r\n");
	for (unsigned i = 0; i < chunks; i++) {
		size_t n = bench_range(rs, 100, 1000);
		bench_buf_fmt(b, "%zx\r\n", n);
		bench_buf_fill(b, n, rs);
		bench_buf_str(b, "\r\n");
	}
	bench_buf_str(b, "0\r\n\r\n");
}

static void resp_small(struct bench_buf *b, uint64_t *rs, unsigned k)
{
	if (k < 80) {
		resp_common(b, "304 Not Modified");
		bench_buf_str(b, "Connection: keep-alive\r\n");
		bench_buf_str(b, "ETag: \"5f3a-1c2b\"\r\n");
		bench_buf_str(b, "Cache-Control: max-age=3600\r\n\r\n");
	} else if (k < 90) {
		resp_common(b, "404 Not Found");
		bench_buf_str(b, "Content-Type: text/html\r\n");
		bench_buf_str(b, "Content-Length: 153\r\n");
		bench_buf_str(b, "Connection: keep-alive\r\n\r\n");
		bench_buf_fill(b, 153, rs);
	} else {
		resp_common(b, "204 No Content");
		bench_buf_str(b, "Connection: keep-alive\r\n");
		bench_buf_fmt(b, "traceresponse: 00-%016llx%016llx-%016llx-01\r\n\r\n",
		              (unsigned long long)bench_rand(rs), (unsigned long long)bench_rand(rs),
		              (unsigned long long)bench_rand(rs));
	}
}

static void build_responses(struct corpus *c)
{
	uint64_t rs = 0x5eed0002;

	for (int i = 0; i < N_MSGS; i++) {
		unsigned k = bench_range(&rs, 0, 99);
		if (k < 40)
			resp_html(&c->b, &rs);
		else if (k < 70)
			resp_chunked(&c->b, &rs);
		else
			resp_small(&c->b, &rs, k);
		c->msgs++;
	}
}

/* ---- ours ---------------------------------------------------------------- */

static volatile size_t sink;

/* Body after a head: skip by count, or walk chunked framing. Returns the
 * bytes the body took, or -1. */
static long ours_body(const struct http_framing *f, const char *p, size_t left)
{
	struct http_chunked d;
	ssize_t n;

	switch (f->kind) {
	case HTTP_BODY_NONE:
		return 0;
	case HTTP_BODY_LENGTH:
		return f->length <= left ? (long)f->length : -1;
	case HTTP_BODY_CHUNKED:
		http_chunked_init(&d);
		n = http_chunked_feed(&d, p, left);
		return n >= 0 && http_chunked_done(&d) ? (long)n : -1;
	default:
		return -1;
	}
}

static size_t ours_requests(const char *buf, size_t len)
{
	static struct http_request req;
	struct http_framing f;
	size_t off = 0, msgs = 0;

	while (off < len) {
		int r = http_parse_request(buf + off, len - off, &req);
		if (r <= 0 || http_request_framing(&req, &f))
			return 0;
		off += (size_t)r;
		long b = ours_body(&f, buf + off, len - off);
		if (b < 0)
			return 0;
		off += (size_t)b;
		sink += req.n_headers + req.target_len;
		msgs++;
	}
	return msgs;
}

static size_t ours_responses(const char *buf, size_t len)
{
	static struct http_response res;
	struct http_framing f;
	size_t off = 0, msgs = 0;

	while (off < len) {
		int r = http_parse_response(buf + off, len - off, &res);
		if (r <= 0 || http_response_framing(&res, 0, 0, &f))
			return 0;
		off += (size_t)r;
		long b = ours_body(&f, buf + off, len - off);
		if (b < 0)
			return 0;
		off += (size_t)b;
		sink += res.n_headers + (size_t)res.status;
		msgs++;
	}
	return msgs;
}

/* ---- http-parser ---------------------------------------------------------- */

struct hp_ctx {
	const char *url;
	size_t url_len;
	struct http_header h[HTTP_MAX_HEADERS];
	size_t nh;
	int in_value;
	size_t msgs;
};

static int hp_begin(http_parser *p)
{
	struct hp_ctx *c = p->data;

	c->nh = 0;
	c->in_value = 0;
	c->url_len = 0;
	return 0;
}

static int hp_url(http_parser *p, const char *at, size_t len)
{
	struct hp_ctx *c = p->data;

	if (!c->url_len)
		c->url = at;
	c->url_len += len;
	return 0;
}

static int hp_field(http_parser *p, const char *at, size_t len)
{
	struct hp_ctx *c = p->data;

	if (c->in_value || !c->nh) {
		if (c->nh == HTTP_MAX_HEADERS)
			return 1;
		c->h[c->nh].name = at;
		c->h[c->nh].name_len = 0;
		c->h[c->nh].value_len = 0;
		c->nh++;
		c->in_value = 0;
	}
	c->h[c->nh - 1].name_len += len;
	return 0;
}

static int hp_value(http_parser *p, const char *at, size_t len)
{
	struct hp_ctx *c = p->data;

	if (!c->nh)
		return 1;
	if (!c->in_value)
		c->h[c->nh - 1].value = at;
	c->in_value = 1;
	c->h[c->nh - 1].value_len += len;
	return 0;
}

static int hp_complete(http_parser *p)
{
	struct hp_ctx *c = p->data;

	sink += c->nh + c->url_len + p->status_code;
	c->msgs++;
	return 0;
}

static size_t ref_parse(const char *buf, size_t len, enum http_parser_type type)
{
	static http_parser_settings s;
	static struct hp_ctx ctx;
	http_parser p;

	http_parser_settings_init(&s);
	s.on_message_begin = hp_begin;
	s.on_url = hp_url;
	s.on_header_field = hp_field;
	s.on_header_value = hp_value;
	s.on_message_complete = hp_complete;
	http_parser_init(&p, type);
	ctx.msgs = 0;
	p.data = &ctx;
	if (http_parser_execute(&p, &s, buf, len) != len || HTTP_PARSER_ERRNO(&p) != HPE_OK)
		return 0;
	return ctx.msgs;
}

static size_t ref_requests(const char *buf, size_t len)
{
	return ref_parse(buf, len, HTTP_REQUEST);
}

static size_t ref_responses(const char *buf, size_t len)
{
	return ref_parse(buf, len, HTTP_RESPONSE);
}

/* ---- timing ---------------------------------------------------------------- */

typedef size_t (*parse_fn)(const char *, size_t);

/* Passes over the corpus until `secs` of CPU time went by. Writes MB/s and
 * messages/s; returns -1 if a pass did not find every message. */
static int measure(parse_fn fn, const struct corpus *c, double secs, double *mbps,
                   double *msgs)
{
	double t0 = bench_now(CLOCK_THREAD_CPUTIME_ID), t;
	size_t passes = 0;

	do {
		if (fn(c->b.p, c->b.len) != c->msgs)
			return -1;
		passes++;
		t = bench_now(CLOCK_THREAD_CPUTIME_ID) - t0;
	} while (t < secs);
	*mbps = (double)c->b.len * (double)passes / t / 1e6;
	*msgs = (double)c->msgs * (double)passes / t;
	return 0;
}

struct pair {
	const char *name;
	const struct corpus *c;
	parse_fn ours, ref;
	double o_mb[BENCH_MAX_REPS], o_msg[BENCH_MAX_REPS];
	double r_mb[BENCH_MAX_REPS], r_msg[BENCH_MAX_REPS];
	double ratio[BENCH_MAX_REPS];
};

static void report(const struct pair *p, int reps)
{
	char n[128];

	snprintf(n, sizeof(n), "parse_%s_ours_mbps", p->name);
	bench_print(n, p->o_mb, reps, "MB/s");
	snprintf(n, sizeof(n), "parse_%s_ours_msgs", p->name);
	bench_print(n, p->o_msg, reps, "msg/s");
	snprintf(n, sizeof(n), "parse_%s_ref_mbps", p->name);
	bench_print(n, p->r_mb, reps, "MB/s");
	snprintf(n, sizeof(n), "parse_%s_ref_msgs", p->name);
	bench_print(n, p->r_msg, reps, "msg/s");
	snprintf(n, sizeof(n), "parse_%s_ratio", p->name);
	bench_print(n, p->ratio, reps, "ours/ref");
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 0.5;
	int reps = argc > 2 ? atoi(argv[2]) : 3;
	struct corpus req = {0}, res = {0};
	struct pair pairs[2] = {
		{.name = "http_req", .c = &req, .ours = ours_requests, .ref = ref_requests},
		{.name = "http_resp", .c = &res, .ours = ours_responses, .ref = ref_responses},
	};

	if (secs <= 0 || reps < 1 || reps > BENCH_MAX_REPS) {
		fprintf(stderr, "usage: parse_http [seconds > 0] [repetitions 1..%d]\n",
		        BENCH_MAX_REPS);
		return 2;
	}
	build_requests(&req);
	build_responses(&res);
	printf("# http corpus: %zu requests in %zu bytes, %zu responses in %zu bytes; "
	       "http-parser %d.%d.%d\n", req.msgs, req.b.len, res.msgs, res.b.len,
	       HTTP_PARSER_VERSION_MAJOR, HTTP_PARSER_VERSION_MINOR, HTTP_PARSER_VERSION_PATCH);
	for (int r = 0; r < reps; r++) {
		for (int i = 0; i < 2; i++) {
			struct pair *p = &pairs[i];
			if (measure(p->ours, p->c, secs, &p->o_mb[r], &p->o_msg[r])) {
				fprintf(stderr, "parse_http: ours did not find %zu messages in %s\n",
				        p->c->msgs, p->name);
				return 1;
			}
			if (measure(p->ref, p->c, secs, &p->r_mb[r], &p->r_msg[r])) {
				fprintf(stderr, "parse_http: http-parser did not find %zu messages in %s\n",
				        p->c->msgs, p->name);
				return 1;
			}
			p->ratio[r] = p->o_msg[r] / p->r_msg[r];
		}
	}
	for (int i = 0; i < 2; i++)
		report(&pairs[i], reps);
	return 0;
}
