/*
 * parse_h2.c - sonde's HTTP/2 reader (plugins/grpc/h2_conn.c: frames and
 * HPACK, with the mid-connection safety layer of hpack.c) against
 * libnghttp2's own server session, on the same corpus.
 *
 * The one idea: both sides read the same client-to-server byte stream (the
 * preface, SETTINGS, then requests), fed in the same 16 KiB pieces, and
 * both must find exactly the number of requests the corpus was built with,
 * or the benchmark fails instead of printing a figure.
 *
 *   ours: h2_conn_feed with a consumer that looks at every decoded field
 *         (what the plugin's field callback does) and counts header blocks.
 *   ref:  nghttp2_session_mem_recv on a server session with an on_header
 *         and an on_frame_recv callback: framing, HPACK (the same inflater
 *         ours uses underneath), header validation, stream states and flow
 *         control - what a real HTTP/2 server does on receipt.
 *
 * Two corpora: "h2_grpc" (unary gRPC calls: POST, gRPC headers, one small
 * message each, 8 methods) and "h2_get" (browser-like GETs with a dozen
 * headers). Header blocks come from nghttp2's deflater, so later requests
 * refer to its dynamic table as real clients do. Timing is thread CPU time;
 * repetitions are interleaved and medians printed, as BENCH lines:
 *   parse_<corpus>_{ours,ref}_{mbps,msgs}, parse_<corpus>_ratio (ours/ref).
 *
 * usage: parse_h2 [seconds-per-measurement] [repetitions]
 * build: cc -O2 -I plugins/grpc -I bench -o parse_h2 bench/parse_h2.c \
 *          plugins/grpc/h2_frame.c plugins/grpc/hpack.c plugins/grpc/h2_conn.c -lnghttp2
 */
#define _GNU_SOURCE
#include <nghttp2/nghttp2.h>

#include "bench_util.h"
#include "h2_conn.h"
#include "test/h2_build.h"

#define N_REQ 20000
#define FEED 16384

struct corpus {
	struct h2b b;
	size_t msgs;
};

static void build_grpc(struct corpus *c, uint64_t *rs)
{
	static const char *const methods[] = {
		"/helloworld.Greeter/SayHello", "/shop.Cart/Add",     "/shop.Cart/Get",
		"/shop.Catalog/List",           "/auth.Tokens/Check", "/shop.Orders/Place",
		"/shop.Orders/Get",             "/metrics.Push/Send",
	};
	nghttp2_hd_deflater *d;
	uint32_t kv[] = { H2_SET_INITIAL_WINDOW_SIZE, 1 << 20, H2_SET_MAX_HEADER_LIST_SIZE, 16384 };
	char tmo[16];

	nghttp2_hd_deflate_new(&d, 4096);
	h2b_preface(&c->b);
	h2b_settings(&c->b, kv, 2);
	for (uint32_t i = 0; i < N_REQ; i++) {
		uint32_t sid = 1 + 2 * i;
		snprintf(tmo, sizeof(tmo), "%uS", 1 + (unsigned)(bench_rand(rs) % 30));
		h2b_headers(&c->b, d, sid, 0, ":method", "POST", ":scheme", "http", ":path",
		            methods[bench_rand(rs) % 8], ":authority", "backend.internal:50051",
		            "content-type", "application/grpc", "te", "trailers", "grpc-timeout", tmo,
		            "user-agent", "grpc-c++/1.51.1 grpc-c/29.0.0 (linux; chttp2)",
		            "grpc-accept-encoding", "identity,deflate,gzip", NULL);
		h2b_grpc_msg(&c->b, sid, bench_range(rs, 10, 200), 1);
	}
	c->msgs = N_REQ;
	nghttp2_hd_deflate_del(d);
}

static void build_get(struct corpus *c, uint64_t *rs)
{
	nghttp2_hd_deflater *d;
	char path[64], cookie[96];

	nghttp2_hd_deflate_new(&d, 4096);
	h2b_preface(&c->b);
	h2b_settings(&c->b, NULL, 0);
	for (uint32_t i = 0; i < N_REQ; i++) {
		snprintf(path, sizeof(path), "/products/%u?ref=list&page=%u",
		         bench_range(rs, 1, 99999), bench_range(rs, 1, 20));
		snprintf(cookie, sizeof(cookie), "session=%016llx; theme=dark",
		         (unsigned long long)bench_rand(rs));
		h2b_headers(&c->b, d, 1 + 2 * i, 1, ":method", "GET", ":scheme", "https", ":path", path,
		            ":authority", "shop.example.com", "user-agent",
		            "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
		            "accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		            "accept-language", "en-US,en;q=0.5", "accept-encoding", "gzip, deflate, br",
		            "referer", "https://shop.example.com/", "cookie", cookie, "sec-fetch-dest",
		            "document", "sec-fetch-mode", "navigate", "upgrade-insecure-requests", "1",
		            NULL);
	}
	c->msgs = N_REQ;
	nghttp2_hd_deflate_del(d);
}

/* ---- ours ---------------------------------------------------------------- */

static volatile size_t sink;
static size_t blocks;

static void o_field(void *ctx, const uint8_t *n, size_t nl, const uint8_t *v, size_t vl)
{
	sink += nl + vl + (nl ? n[0] : 0);
}

static void o_end(void *ctx, const struct hpack_result *r)
{
	blocks += !r->error && !r->cut;
}

static const struct h2_events o_ev = { .field = o_field, .block_end = o_end };

static size_t ours(const struct corpus *c)
{
	struct h2_conn *h = h2_conn_new(0, &o_ev, NULL);
	size_t off = 0;

	if (!h)
		return 0;
	blocks = 0;
	while (off < c->b.len) {
		size_t n = c->b.len - off < FEED ? c->b.len - off : FEED;
		h2_conn_feed(h, 0, c->b.p + off, n, n, 0, 1);
		off += n;
	}
	if (h2_conn_stats(h)->losses)
		blocks = 0;
	h2_conn_free(h);
	return blocks;
}

/* ---- nghttp2 server session -------------------------------------------------- */

static size_t ref_reqs;

static int r_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                    const uint8_t *v, size_t vl, uint8_t flags, void *ud)
{
	sink += nl + vl + (nl ? n[0] : 0);
	return 0;
}

static int r_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
		ref_reqs++;
	return 0;
}

static size_t ref(const struct corpus *c)
{
	nghttp2_session_callbacks *cb;
	nghttp2_session *s;
	size_t off = 0;

	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, r_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, r_frame);
	if (nghttp2_session_server_new(&s, cb, NULL)) {
		nghttp2_session_callbacks_del(cb);
		return 0;
	}
	nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, 1 << 30);
	ref_reqs = 0;
	while (off < c->b.len) {
		size_t n = c->b.len - off < FEED ? c->b.len - off : FEED;
		ssize_t r = nghttp2_session_mem_recv(s, c->b.p + off, n);
		if (r < 0 || (size_t)r != n) {
			fprintf(stderr, "parse_h2: nghttp2: %s\n", nghttp2_strerror((int)r));
			ref_reqs = 0;
			break;
		}
		off += n;
	}
	nghttp2_session_del(s);
	nghttp2_session_callbacks_del(cb);
	return ref_reqs;
}

/* ---- timing ---------------------------------------------------------------- */

typedef size_t (*parse_fn)(const struct corpus *);

static int measure(parse_fn fn, const struct corpus *c, double secs, double *mbps, double *msgs)
{
	double t0 = bench_now(CLOCK_THREAD_CPUTIME_ID), t;
	size_t passes = 0;

	do {
		if (fn(c) != c->msgs)
			return -1;
		passes++;
		t = bench_now(CLOCK_THREAD_CPUTIME_ID) - t0;
	} while (t < secs);
	*mbps = (double)c->b.len * (double)passes / t / 1e6;
	*msgs = (double)c->msgs * (double)passes / t;
	return 0;
}

struct set {
	const char *name;
	struct corpus c;
	double mb[2][BENCH_MAX_REPS], msg[2][BENCH_MAX_REPS], ratio[BENCH_MAX_REPS];
};

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 0.5;
	int reps = argc > 2 ? atoi(argv[2]) : 3;
	static struct set sets[2] = { { .name = "h2_grpc" }, { .name = "h2_get" } };
	static const char *const vn[2] = { "ours", "ref" };
	parse_fn fns[2] = { ours, ref };
	uint64_t rs = 0x5eed;
	char n[128];

	if (secs <= 0 || reps < 1 || reps > BENCH_MAX_REPS) {
		fprintf(stderr, "usage: parse_h2 [seconds > 0] [repetitions 1..%d]\n", BENCH_MAX_REPS);
		return 2;
	}
	build_grpc(&sets[0].c, &rs);
	build_get(&sets[1].c, &rs);
	printf("# h2 corpora: %zu gRPC requests in %zu bytes, %zu GETs in %zu bytes; "
	       "libnghttp2 %s\n", sets[0].c.msgs, sets[0].c.b.len, sets[1].c.msgs, sets[1].c.b.len,
	       nghttp2_version(0)->version_str);
	for (int r = 0; r < reps; r++) {
		for (int i = 0; i < 2; i++) {
			struct set *s = &sets[i];
			for (int v = 0; v < 2; v++) {
				if (measure(fns[v], &s->c, secs, &s->mb[v][r], &s->msg[v][r])) {
					fprintf(stderr, "parse_h2: %s did not find %zu requests in %s\n", vn[v],
					        s->c.msgs, s->name);
					return 1;
				}
			}
			s->ratio[r] = s->msg[0][r] / s->msg[1][r];
		}
	}
	for (int i = 0; i < 2; i++) {
		for (int v = 0; v < 2; v++) {
			snprintf(n, sizeof(n), "parse_%s_%s_mbps", sets[i].name, vn[v]);
			bench_print(n, sets[i].mb[v], reps, "MB/s");
			snprintf(n, sizeof(n), "parse_%s_%s_msgs", sets[i].name, vn[v]);
			bench_print(n, sets[i].msg[v], reps, "msg/s");
		}
		snprintf(n, sizeof(n), "parse_%s_ratio", sets[i].name);
		bench_print(n, sets[i].ratio, reps, "ours/ref");
	}
	return 0;
}
