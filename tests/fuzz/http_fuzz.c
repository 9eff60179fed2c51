/*
 * http_fuzz.c - libFuzzer harness for the HTTP/1.x parsers and the HTTP
 * plugin (driven through the test host).
 *
 * The one idea: one input exercises both layers. The whole input goes to
 * the stateless parsers, which must agree with themselves when cut (a
 * head's length parses to the same length, one byte less is -2; the
 * chunked decoder gives the same answer fed whole or in two pieces). Then
 * the input is read as a little script of chunks for one connection:
 *
 *   byte 0   mode: bits 0-1 role (0 unknown, 1 server, 2 client, 3 server),
 *            bit 2 TLS, bit 3 span limit of 2, bit 4 configured routes,
 *            bit 5 raw mode (below)
 *   byte 1   seed for split positions
 *   then records: [hdr][len lo][len hi][len bytes]
 *            hdr bit 0 direction (0 ingress, 1 egress), bit 1 GAP,
 *            bit 2 truncated: only the first len*(hdr>>3)/32 bytes are
 *            captured, orig_len = len; otherwise the bytes are fed in
 *            1 + (hdr>>3)%4 pieces cut at seed-derived positions.
 *   raw mode: the rest of the input is fed as ingress, cut at seed-derived
 *            positions, then again as egress.
 *
 * After conn_close the test host must show: no span left open, no use of
 * a dead handle, one metric record per ended span, and every ended span
 * carrying a status code (spans without a response are dropped).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testhost.h"
#include "http_parse.h"
#include "http_route.h"

const struct sonde_plugin *sonde_plugin_entry(void);

#define CHECK(cond)                                                                \
	do {                                                                       \
		if (!(cond))                                                       \
			__builtin_trap();                                          \
	} while (0)

static uint32_t rng_next(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

/* Parsers on the raw bytes. */
static void fuzz_parsers(const char *p, size_t n, uint8_t seed)
{
	struct http_request req, req2;
	struct http_response res, res2;
	struct http_chunked a, b;
	char route[HTTP_ROUTE_MAX];
	int r;

	r = http_parse_request(p, n, &req);
	CHECK(r == HTTP_PARSE_ERROR || r == HTTP_PARSE_INCOMPLETE || (r > 0 && (size_t)r <= n));
	if (r > 0) {
		struct http_framing f;
		CHECK(http_parse_request(p, (size_t)r, &req2) == r);
		CHECK(req2.n_headers == req.n_headers && req2.target_len == req.target_len);
		CHECK(http_parse_request(p, (size_t)r - 1, &req2) == HTTP_PARSE_INCOMPLETE);
		CHECK(http_parse_request_prefix(p, (size_t)r, &req2) == r);
		(void)http_request_framing(&req, &f);
		http_route_guess(req.target, req.target_len, route, sizeof(route));
		CHECK(strlen(route) < sizeof(route));
		(void)http_route_match("/users/{id}/x*", req.target, req.target_len);
	}
	r = http_parse_request_prefix(p, n, &req);
	CHECK(r < 0 || (size_t)r <= n);
	r = http_parse_response(p, n, &res);
	CHECK(r == HTTP_PARSE_ERROR || r == HTTP_PARSE_INCOMPLETE || (r > 0 && (size_t)r <= n));
	if (r > 0) {
		struct http_framing f;
		CHECK(http_parse_response(p, (size_t)r, &res2) == r);
		CHECK(res2.status == res.status && res2.n_headers == res.n_headers);
		CHECK(http_parse_response(p, (size_t)r - 1, &res2) == HTTP_PARSE_INCOMPLETE);
		CHECK(res.status >= 100 && res.status <= 999);
		(void)http_response_framing(&res, seed & 1, seed & 2, &f);
	}
	r = http_parse_response_prefix(p, n, &res);
	CHECK(r < 0 || (size_t)r <= n);
	(void)http_start_line_check(p, n, 1);
	(void)http_start_line_check(p, n, 0);

	/* Chunked: whole vs two pieces. */
	http_chunked_init(&a);
	http_chunked_init(&b);
	ssize_t whole = http_chunked_feed(&a, p, n);
	size_t cut = n ? seed % (n + 1) : 0;
	ssize_t k1 = http_chunked_feed(&b, p, cut), k2 = 0, split;
	if (k1 >= 0 && (size_t)k1 == cut && !http_chunked_done(&b))
		k2 = http_chunked_feed(&b, p + cut, n - cut);
	split = k1 < 0 || k2 < 0 ? -1 : k1 + k2;
	CHECK(whole == split);
	CHECK(http_chunked_done(&a) == http_chunked_done(&b));
}

static void feed_chunk(struct th_conn *c, int dir, uint64_t ts, const char *p, size_t len,
                       size_t orig_len, uint32_t flags)
{
	struct sonde_chunk ch = { 0 };

	ch.dir = dir ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
	ch.ts_unix_ns = ts;
	ch.data = (const uint8_t *)p;
	ch.len = len;
	ch.orig_len = orig_len;
	ch.flags = flags;
	ch.tid = 1;
	(void)th_conn_feed_chunk(c, &ch);
}

/* Feed p[0..n) in `pieces` chunks cut at seed-derived positions. */
static void feed_pieces(struct th_conn *c, int dir, uint64_t *ts, const char *p, size_t n,
                        unsigned pieces, uint32_t *rng, uint32_t first_flags)
{
	size_t off = 0;

	for (unsigned i = 1; i < pieces && off < n; i++) {
		size_t k = 1 + rng_next(rng) % (n - off);
		feed_chunk(c, dir, ++*ts, p + off, k, k, i == 1 ? first_flags : 0);
		first_flags = 0;
		off += k;
	}
	if (off < n || !n)
		feed_chunk(c, dir, ++*ts, p + off, n - off, n - off, first_flags);
}

static void check_host(struct th_host *h)
{
	CHECK(th_n_open(h) == 0);
	CHECK(th_misuse(h) == 0);
	CHECK(th_n_records(h) == th_n_ended(h));
	for (size_t i = 0; i < th_n_ended(h); i++) {
		const struct th_span *s = th_ended(h, i);
		int64_t st;
		const char *et = th_span_str(s, "error.type");

		/* A request whose answer never came ends as an error span
		 * without a status; every other span carries a valid one. */
		if (th_span_int(s, "http.response.status_code", &st) != 0)
			CHECK(et != NULL && strcmp(et, "no_response") == 0);
		else
			CHECK(st >= 100 && st <= 999);
		CHECK(s->name[0] != '\0');
		CHECK(th_span_str(s, "http.request.method") != NULL);
	}
}

static void fuzz_plugin(const uint8_t *data, size_t size)
{
	static const char *const routes[] = { "/users/{id}", "/static/*", "/a*", "x" };
	struct sonde_conn_info ci;
	struct th_host *h;
	struct th_conn *c;
	uint8_t mode = data[0];
	uint32_t rng = data[1];
	uint64_t ts = 0;
	size_t off = 2;
	static const enum sonde_role roles[4] = { SONDE_ROLE_UNKNOWN, SONDE_ROLE_SERVER,
	                                          SONDE_ROLE_CLIENT, SONDE_ROLE_SERVER };

	h = th_new();
	if (mode & 0x10)
		th_set_config(h, NULL, "routes", routes, 4);
	if (mode & 0x08)
		th_set_span_limit(h, 2);
	CHECK(th_load(h, sonde_plugin_entry(), "http") == SONDE_OK);
	th_conn_info_init(&ci, roles[mode & 3]);
	ci.tls = (mode >> 2) & 1;
	for (int dir = 0; dir < 2; dir++) {
		int d = th_detect(h, &ci, dir ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS,
		                         data + 2, size - 2);
		CHECK(d == SONDE_DETECT_NO || d == SONDE_DETECT_SURE || d == SONDE_DETECT_NEED_MORE);
	}
	c = th_conn_open(h, &ci);
	CHECK(c != NULL);
	if (mode & 0x20) {
		const char *p = (const char *)data + off;
		size_t n = size - off;
		feed_pieces(c, 0, &ts, p, n, 1 + (rng & 7), &rng, 0);
		feed_pieces(c, 1, &ts, p, n, 1 + ((rng >> 3) & 7), &rng, 0);
	}
	while (!(mode & 0x20) && off + 3 <= size) {
		uint8_t hdr = data[off];
		size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
		const char *p = (const char *)data + off + 3;
		uint32_t flags = hdr & 2 ? SONDE_CHUNK_GAP : 0;

		off += 3;
		if (len > size - off)
			len = size - off;
		off += len;
		if (hdr & 4) {
			size_t vis = len * (hdr >> 3) / 32;
			feed_chunk(c, hdr & 1, ++ts, p, vis, len, flags | SONDE_CHUNK_TRUNCATED);
		} else {
			feed_pieces(c, hdr & 1, &ts, p, len, 1 + (hdr >> 3) % 4, &rng, flags);
		}
	}
	th_conn_close(c, ++ts);
	check_host(h);
	th_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	fuzz_parsers((const char *)data, size, data[1]);
	fuzz_plugin(data, size);
	return 0;
}
