/*
 * grpc_fuzz.c - libFuzzer harness for the HTTP/2 / gRPC plugin: the HPACK
 * layer, the incremental frame reader and the whole plugin behind the test
 * host, both roles (and UNKNOWN), both directions.
 *
 * The one idea: one input is read three ways. (1) The bytes after the
 * first are one header block for hpack_decode, whole and cut, in a fresh
 * decoder and in one that lost its table. (2) In raw mode they are one
 * direction's byte stream for h2_conn, fed whole and byte by byte: when
 * neither run lost its place, both must report exactly the same events.
 * (3) They are cut into chunks for a connection of the plugin: byte 0
 * picks the role and settings, then each chunk is a 3-byte header (bit 0
 * direction, bit 1 GAP, bit 2 TRUNCATED, bits 3-7 hidden bytes / 64; then
 * a 16-bit length) followed by its data. After the connection closes no
 * span may be left open and no host call misused.
 *
 * Input format, byte 0: bits 0-1 role (0/3 unknown, 1 server, 2 client),
 * bit 2 raw mode, bit 3 span limit, bit 4 routes configured, bit 5 TLS,
 * bit 6 raw direction.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include "testhost.h"
#include "h2_conn.h"
#include "hpack.h"

const struct sonde_plugin *sonde_plugin_entry(void);

/* --- (1) HPACK -------------------------------------------------------------------------- */

static void field_nop(void *ctx, unsigned pos, const uint8_t *n, size_t nl, const uint8_t *v,
                      size_t vl)
{
	size_t *sum = ctx;

	*sum += nl + vl + pos;
	if (nl && !n)
		__builtin_trap();
	if (vl && !v)
		__builtin_trap();
}

static void fuzz_hpack(const uint8_t *p, size_t n)
{
	struct hpack_dec *d = hpack_dec_new();
	struct hpack_result r;
	size_t sum = 0;

	if (!d)
		return;
	hpack_decode(d, p, n, 1, field_nop, &sum, &r);
	hpack_dec_reset(d);
	hpack_decode(d, p, n, 1, field_nop, &sum, &r);
	hpack_decode(d, p, n / 2, 0, field_nop, &sum, &r);
	if (!r.cut && !r.error)
		__builtin_trap();
	hpack_dec_free(d);
}

/* --- (2) the reader, whole vs byte by byte ----------------------------------------------- */

struct evlog {
	uint8_t buf[1 << 16];
	size_t n;
	uint32_t hash;
};

static void put(struct evlog *l, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		l->hash = (l->hash ^ b[i]) * 16777619u;
	l->n += n;
}

static void ev_pre(void *c, int dir)
{
	put(c, "P", 1);
	put(c, &dir, sizeof(dir));
}

static void ev_begin(void *c, int dir, uint32_t sid, uint8_t type, bool es, uint64_t ts)
{
	put(c, "B", 1);
	put(c, &dir, sizeof(dir));
	put(c, &sid, sizeof(sid));
	put(c, &type, 1);
	put(c, &es, 1);
}

static void ev_field(void *c, const uint8_t *n, size_t nl, const uint8_t *v, size_t vl)
{
	put(c, "F", 1);
	put(c, n, nl);
	put(c, ":", 1);
	put(c, v, vl);
}

static void ev_end(void *c, const struct hpack_result *r)
{
	put(c, "E", 1);
	put(c, &r->unknown, sizeof(r->unknown));
	put(c, &r->cut, 1);
	put(c, &r->error, 1);
}

static void ev_data(void *c, int dir, uint32_t sid, uint32_t len, bool es, uint64_t ts)
{
	put(c, "D", 1);
	put(c, &sid, sizeof(sid));
	put(c, &len, sizeof(len));
	put(c, &es, 1);
}

static void ev_rst(void *c, int dir, uint32_t sid, uint32_t code, uint64_t ts)
{
	put(c, "R", 1);
	put(c, &sid, sizeof(sid));
	put(c, &code, sizeof(code));
}

static void ev_goaway(void *c, int dir, uint32_t last, bool known, uint32_t code, uint64_t ts)
{
	put(c, "G", 1);
	put(c, &last, sizeof(last));
	put(c, &code, sizeof(code));
}

static void ev_loss(void *c, int dir, uint64_t ts)
{
	put(c, "L", 1);
}

static const struct h2_events evs = {
	.preface = ev_pre, .block_begin = ev_begin, .field = ev_field, .block_end = ev_end,
	.data = ev_data,   .rst = ev_rst,           .goaway = ev_goaway, .loss = ev_loss,
};

static void fuzz_reader(const uint8_t *p, size_t n, int dir, int req_dir)
{
	static struct evlog whole, bytes;
	struct h2_conn *a, *b;
	const struct h2_stats *sa, *sb;

	memset(&whole, 0, sizeof(whole));
	memset(&bytes, 0, sizeof(bytes));
	a = h2_conn_new(req_dir, &evs, &whole);
	b = h2_conn_new(req_dir, &evs, &bytes);
	if (!a || !b)
		goto out;
	h2_conn_feed(a, dir, p, n, n, 0, 1);
	for (size_t i = 0; i < n; i++)
		h2_conn_feed(b, dir, p + i, 1, 1, 0, 1);
	sa = h2_conn_stats(a);
	sb = h2_conn_stats(b);
	if (!sa->losses && !sb->losses && !sa->resyncs && !sb->resyncs &&
	    (whole.hash != bytes.hash || whole.n != bytes.n))
		__builtin_trap();
out:
	h2_conn_free(a);
	h2_conn_free(b);
}

/* --- (3) the plugin --------------------------------------------------------------------------- */

static void fuzz_plugin(const uint8_t *p, size_t n, uint8_t cfg)
{
	struct th_host *h = th_new();
	struct sonde_conn_info ci;
	struct th_conn *c;
	uint64_t ts = 1000;
	size_t off = 0;
	int role = cfg & 3;

	if (cfg & 16) {
		const char *v[] = { "/pkg.Svc/{m}", "/users/{id}", "/static/*" };
		th_set_config(h, NULL, "routes", v, 3);
	}
	if (cfg & 8)
		th_set_span_limit(h, 3);
	if (th_load(h, sonde_plugin_entry(), "grpc") != SONDE_OK)
		__builtin_trap();
	th_conn_info_init(&ci, role == 3 ? SONDE_ROLE_UNKNOWN : (enum sonde_role)role);
	ci.tls = (cfg & 32) ? 1 : 0;
	th_detect(h, &ci, SONDE_DIR_EGRESS, p, n);
	th_detect(h, &ci, SONDE_DIR_INGRESS, p, n);
	c = th_conn_open(h, &ci);
	if (!c)
		__builtin_trap();
	while (off + 3 <= n && !th_conn_given_up(c)) {
		uint8_t fl = p[off];
		size_t len = (size_t)p[off + 1] << 8 | p[off + 2];
		struct sonde_chunk ch = { 0 };

		off += 3;
		if (len > n - off)
			len = n - off;
		ch.dir = (fl & 1) ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
		ch.ts_unix_ns = ts;
		ch.data = p + off;
		ch.len = len;
		ch.orig_len = len;
		if (fl & 2)
			ch.flags |= SONDE_CHUNK_GAP;
		if (fl & 4) {
			ch.flags |= SONDE_CHUNK_TRUNCATED;
			ch.orig_len = len + 1 + (size_t)(fl >> 3) * 64;
		}
		th_conn_feed_chunk(c, &ch);
		off += len;
		ts += 1000;
	}
	/* SDK 1.1 timers (expiry of uncertain streams): all due now */
	th_run_timers(h, (uint64_t)1 << 62);
	th_conn_close(c, ts);
	if (th_n_open(h) || th_misuse(h))
		__builtin_trap();
	for (size_t i = 0; i < th_n_ended(h); i++) {
		const struct th_span *s = th_ended(h, i);
		if (!s->name || s->end_ns < s->start_ns)
			__builtin_trap();
	}
	th_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t cfg;

	if (size < 1)
		return 0;
	cfg = data[0];
	fuzz_hpack(data + 1, size - 1);
	if (cfg & 4) {
		int dir = (cfg >> 6) & 1;
		int role = cfg & 3;
		fuzz_reader(data + 1, size - 1, dir, role == 1 ? 0 : role == 2 ? 1 : -1);
	} else {
		fuzz_plugin(data + 1, size - 1, cfg);
	}
	return 0;
}
