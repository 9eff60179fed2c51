/*
 * gen_fuzz_corpus.c - writes the seed corpus of tests/fuzz/grpc_fuzz.c
 * (format described there) into a directory.
 *
 *   cc -I plugins/grpc -o /tmp/gen plugins/grpc/test/gen_fuzz_corpus.c -lnghttp2
 *   /tmp/gen tests/fuzz/corpus/grpc
 *
 * The one idea: the seeds are real conversations (gRPC unary, streaming,
 * errors, resets, HTTP/2 requests, a connection joined mid-way, capture
 * cuts and gaps) laid out as the harness's chunk records, so the fuzzer
 * starts from deep states instead of having to discover the preface and
 * HPACK by itself.
 */
#include <stdbool.h>

#include "test/h2_build.h"

struct seed {
	struct h2b out;
	struct h2b cur;
	bool client_is_egress; /* the watched process is the client */
};

static void seed_begin(struct seed *s, uint8_t cfg)
{
	memset(s, 0, sizeof(*s));
	h2b_add(&s->out, &cfg, 1);
	s->client_is_egress = (cfg & 3) == 2;
}

/* The bytes built so far become one chunk (flags: GAP 2, TRUNC 4 | cut << 3). */
static void chunk(struct seed *s, bool from_client, uint8_t flags, size_t keep)
{
	bool egress = from_client == s->client_is_egress;
	size_t n = keep && keep < s->cur.len ? keep : s->cur.len;
	uint8_t h[3] = { (uint8_t)((egress ? 1 : 0) | flags), (uint8_t)(n >> 8), (uint8_t)n };

	h2b_add(&s->out, h, 3);
	h2b_add(&s->out, s->cur.p, n);
	h2b_free(&s->cur);
}

static void save(struct seed *s, const char *dir, const char *name)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(s->out.p, 1, s->out.len, f) != s->out.len) {
		perror(path);
		exit(1);
	}
	fclose(f);
	h2b_free(&s->out);
	h2b_free(&s->cur);
}

static void hello(struct seed *s)
{
	uint32_t kv[] = { H2_SET_MAX_CONCURRENT_STREAMS, 100, H2_SET_HEADER_TABLE_SIZE, 8192 };

	h2b_settings(&s->cur, kv, 1);
	chunk(s, false, 0, 0);
	h2b_preface(&s->cur);
	h2b_settings(&s->cur, kv, 2);
	h2b_window(&s->cur, 0, 1 << 20);
	chunk(s, true, 0, 0);
	h2b_frame(&s->cur, H2_SETTINGS, H2_F_ACK, 0, NULL, 0);
	chunk(s, false, 0, 0);
}

static void grpc_call(struct seed *s, nghttp2_hd_deflater *dc, nghttp2_hd_deflater *ds,
                      uint32_t sid, const char *path, const char *code, int msgs)
{
	h2b_headers(&s->cur, dc, sid, 0, ":method", "POST", ":scheme", "http", ":path", path,
	            ":authority", "localhost:50051", "content-type", "application/grpc", "te",
	            "trailers", NULL);
	for (int i = 0; i < msgs; i++)
		h2b_grpc_msg(&s->cur, sid, 12, i == msgs - 1);
	chunk(s, true, 0, 0);
	h2b_headers(&s->cur, ds, sid, 0, ":status", "200", "content-type", "application/grpc", NULL);
	for (int i = 0; i < msgs; i++)
		h2b_grpc_msg(&s->cur, sid, 20, 0);
	h2b_headers(&s->cur, ds, sid, 1, "grpc-status", code, "grpc-message", "msg", NULL);
	chunk(s, false, 0, 0);
}

static void conversation(const char *dir, const char *name, uint8_t cfg, int kind)
{
	struct seed s;
	struct h2enc ec, es;
	nghttp2_hd_deflater *dc, *ds;

	nghttp2_hd_deflate_new(&dc, 4096);
	nghttp2_hd_deflate_new(&ds, 4096);
	h2e_init(&ec);
	h2e_init(&es);
	seed_begin(&s, cfg);
	switch (kind) {
	case 0: /* unary OK, unary error, trailers-only */
		hello(&s);
		grpc_call(&s, dc, ds, 1, "/helloworld.Greeter/SayHello", "0", 1);
		grpc_call(&s, dc, ds, 3, "/helloworld.Greeter/SayHello", "14", 1);
		h2b_headers(&s.cur, dc, 5, 1, ":method", "POST", ":path", "/pkg.Svc/Nope",
		            "content-type", "application/grpc", NULL);
		chunk(&s, true, 0, 0);
		h2b_headers(&s.cur, ds, 5, 1, ":status", "200", "grpc-status", "12", NULL);
		chunk(&s, false, 0, 0);
		break;
	case 1: /* streaming, interleaved, a reset, GOAWAY */
		hello(&s);
		grpc_call(&s, dc, ds, 1, "/pkg.Svc/Stream", "0", 5);
		h2b_headers(&s.cur, dc, 3, 0, ":method", "POST", ":path", "/pkg.Svc/Bidi",
		            "content-type", "application/grpc", NULL);
		h2b_headers(&s.cur, dc, 5, 0, ":method", "POST", ":path", "/pkg.Svc/Bidi",
		            "content-type", "application/grpc", NULL);
		h2b_grpc_msg(&s.cur, 5, 3, 0);
		h2b_grpc_msg(&s.cur, 3, 3, 0);
		chunk(&s, true, 0, 0);
		h2b_rst(&s.cur, 3, H2_ERR_CANCEL);
		chunk(&s, true, 0, 0);
		h2b_headers(&s.cur, ds, 5, 1, ":status", "200", "content-type", "application/grpc",
		            "grpc-status", "0", NULL);
		h2b_ping(&s.cur, 0);
		h2b_goaway(&s.cur, 5, 0);
		chunk(&s, false, 0, 0);
		break;
	case 2: { /* plain HTTP/2 with CONTINUATION and padding */
		uint8_t blk[512];
		size_t n;
		hello(&s);
		n = h2b_hpack(dc, blk, sizeof(blk), ":method", "GET", ":scheme", "https", ":path",
		              "/users/42?x=1", ":authority", "example.org", "user-agent", "curl/7.88",
		              "accept", "*/*", NULL);
		h2b_block(&s.cur, 1, blk, n, 1, 16, 3);
		chunk(&s, true, 0, 0);
		h2b_headers(&s.cur, ds, 1, 0, ":status", "100", NULL);
		h2b_headers(&s.cur, ds, 1, 0, ":status", "404", "content-type", "text/html", NULL);
		h2b_data(&s.cur, 1, 50, 1, 9);
		chunk(&s, false, 0, 0);
		break;
	}
	case 3: /* joined mid-way: an indexing encoder used before */
		for (uint32_t sid = 1; sid < 9; sid += 2)
			h2e_headers(&ec, &s.cur, sid, 1, ":method", "POST", ":path", "/pkg.Svc/A",
			            "content-type", "application/grpc", NULL);
		h2b_free(&s.cur);
		for (uint32_t sid = 9; sid < 15; sid += 2) {
			h2e_headers(&ec, &s.cur, sid, 1, ":method", "POST", ":path",
			            sid > 11 ? "/pkg.Svc/B" : "/pkg.Svc/A", "content-type",
			            "application/grpc", NULL);
			chunk(&s, true, 0, 0);
			h2e_headers(&es, &s.cur, sid, 1, ":status", "200", "grpc-status",
			            sid > 11 ? "5" : "0", NULL);
			chunk(&s, false, 0, 0);
		}
		break;
	case 4: /* capture cut and a gap */
		hello(&s);
		h2b_headers(&s.cur, dc, 1, 0, ":method", "POST", ":path", "/pkg.Svc/Up",
		            "content-type", "application/grpc", NULL);
		h2b_data(&s.cur, 1, 1000, 0, 0);
		h2b_data(&s.cur, 1, 1000, 1, 0);
		chunk(&s, true, 4 | (8 << 3), 300);
		h2b_headers(&s.cur, ds, 1, 0, ":status", "200", "content-type", "application/grpc",
		            NULL);
		chunk(&s, false, 0, 0);
		grpc_call(&s, dc, ds, 3, "/pkg.Svc/After", "0", 1);
		h2b_headers(&s.cur, ds, 1, 1, "grpc-status", "0", NULL);
		chunk(&s, false, 2, 0);
		break;
	}
	save(&s, dir, name);
	nghttp2_hd_deflate_del(dc);
	nghttp2_hd_deflate_del(ds);
	h2e_free(&ec);
	h2e_free(&es);
}

static void raw(const char *dir, const char *name, uint8_t cfg, const char *hex, int client)
{
	struct seed s;
	nghttp2_hd_deflater *d;
	uint8_t blk[1024];
	size_t n;

	seed_begin(&s, cfg);
	if (hex) {
		n = h2b_unhex(hex, blk, sizeof(blk));
		h2b_add(&s.out, blk, n);
		save(&s, dir, name);
		return;
	}
	nghttp2_hd_deflate_new(&d, 4096);
	if (client)
		h2b_preface(&s.out);
	h2b_settings(&s.out, NULL, 0);
	for (uint32_t sid = 1; sid < 8; sid += 2) {
		if (client)
			h2b_headers(&s.out, d, sid, 0, ":method", "POST", ":path", "/a.B/C",
			            "content-type", "application/grpc", NULL);
		else
			h2b_headers(&s.out, d, sid, 0, ":status", "200", "content-type",
			            "application/grpc", NULL);
		h2b_grpc_msg(&s.out, sid, 7, client);
		if (!client)
			h2b_headers(&s.out, d, sid, 1, "grpc-status", "0", NULL);
	}
	save(&s, dir, name);
	nghttp2_hd_deflate_del(d);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";

	conversation(dir, "unary-server", 1, 0);
	conversation(dir, "unary-client", 2, 0);
	conversation(dir, "unary-unknown-role", 0, 0);
	conversation(dir, "streaming-server", 1, 1);
	conversation(dir, "streaming-client-limit", 2 | 8, 1);
	conversation(dir, "http2-routes-tls", 1 | 16 | 32, 2);
	conversation(dir, "http2-client", 2, 2);
	conversation(dir, "midstream-server", 1, 3);
	conversation(dir, "midstream-unknown", 0, 3);
	conversation(dir, "cut-and-gap-server", 1, 4);
	conversation(dir, "cut-and-gap-client", 2, 4);
	raw(dir, "raw-client-stream", 4 | 1, NULL, 1);
	raw(dir, "raw-server-stream", 4 | 64 | 2, NULL, 0);
	raw(dir, "hpack-rfc-c4-3", 4, "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", 0);
	raw(dir, "hpack-rfc-c6-1", 4,
	    "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b "
	    "ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3", 0);
	return 0;
}
