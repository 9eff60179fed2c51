/*
 * kafka_fuzz.c - libFuzzer harness for the Kafka plugin: the request start
 * check, the stream decoder (frames and body walks) and the whole plugin
 * behind the test host.
 *
 * The one idea: one input is a recorded connection, read three ways.
 * Format: byte 0 is the configuration (bits 0-1 role: 0 unknown, 1 server,
 * 2 client; bit 2 empty_fetch_spans; bit 3 a host that refuses spans beyond
 * 3 open; bit 4 max_in_flight 4), then chunks: a flags byte (bit 0 egress,
 * bit 1 GAP, bit 2 TRUNCATED: 1 + (flags >> 3) * 997 more bytes went by
 * uncaptured), a 2-byte big-endian length, the captured bytes. The seeds in
 * tests/fuzz/corpus/kafka/rec-* are real kcat and mock-broker connections
 * (tests/live/kafka_peers/strace2corpus.py).
 * (1) kfk_check_request() on every chunk must never claim more than it saw.
 * (2) The two stream decoders are fed every chunk once whole and once cut
 *     into single bytes; both must give the same frames, byte for byte of
 *     their summaries - the property chunk handling rests on.
 * (3) The plugin gets the chunks; after close no span may be left open, no
 *     host call misused, and no metric point exist without a span.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include "testhost.h"
#include "kafka_stream.h"

const struct sonde_plugin *sonde_plugin_entry(void);

struct chunk {
	uint8_t flags;
	const uint8_t *data;
	size_t len, missing;
};

#define MAX_CHUNKS 2048

static size_t split(const uint8_t *p, size_t n, struct chunk *out)
{
	size_t off = 1, k = 0;

	while (off + 3 <= n && k < MAX_CHUNKS) {
		uint8_t fl = p[off];
		size_t len = ((size_t)p[off + 1] << 8) | p[off + 2];

		off += 3;
		if (len > n - off)
			len = n - off;
		out[k].flags = fl;
		out[k].data = p + off;
		out[k].len = len;
		out[k].missing = (fl & 4) ? 1 + (size_t)(fl >> 3) * 997 : 0;
		k++;
		off += len;
	}
	return k;
}

/* ---- (2) stream decoders, whole and byte by byte ------------------------------ */

#define MAX_FRAMES 256
#define MAX_PEND 64

struct rec_frame {
	uint8_t request, matched, body;
	int16_t api, ver;
	int32_t corr;
	uint32_t size;
	uint64_t ts_start, ts_end;
	struct kfk_sum sum;
};

struct run {
	struct kfk_stream s[2];
	struct { int32_t corr; int16_t api, ver; } pend[MAX_PEND];
	size_t n_pend;
	size_t n;
	struct rec_frame f[MAX_FRAMES];
};

static int lookup(void *ctx, int32_t corr, int16_t *api, int16_t *ver)
{
	struct run *r = ctx;

	for (size_t i = 0; i < r->n_pend; i++) {
		if (r->pend[i].corr == corr) {
			*api = r->pend[i].api;
			*ver = r->pend[i].ver;
			return 1;
		}
	}
	return 0;
}

static void on_frame(void *ctx, const struct kfk_frame *f)
{
	struct run *r = ctx;

	if (f->request) {
		size_t i = r->n_pend < MAX_PEND ? r->n_pend++ : (size_t)(f->corr & (MAX_PEND - 1));

		r->pend[i].corr = f->corr;
		r->pend[i].api = f->api_key;
		r->pend[i].ver = f->api_version;
	}
	if (getenv("KAFKA_FUZZ_VERBOSE"))
		fprintf(stderr, "frame req=%d api=%d v=%d corr=%d size=%u client=%u/%u\n", f->request,
		        f->api_key, f->api_version, f->corr, f->size, f->sum->client_id_state,
		        f->sum->client_id_len);
	if (r->n < MAX_FRAMES) {
		struct rec_frame *o = &r->f[r->n];

		memset(o, 0, sizeof(*o));
		o->request = f->request;
		o->matched = f->matched;
		o->body = f->body;
		o->api = f->api_key;
		o->ver = f->api_version;
		o->corr = f->corr;
		o->size = f->size;
		o->ts_start = f->ts_start;
		o->ts_end = f->ts_end;
		o->sum = *f->sum;
	}
	r->n++;
}

static void stream_run(struct run *r, int req_egress, const struct chunk *c, size_t nc,
                       int bytewise)
{
	struct kfk_stream_cb cb = { .ctx = r, .lookup = lookup, .frame = on_frame };

	memset(r, 0, sizeof(*r));
	kfk_stream_init(&r->s[0], 1, &cb);
	kfk_stream_init(&r->s[1], 0, &cb);
	for (size_t i = 0; i < nc; i++) {
		int egress = c[i].flags & 1;
		struct kfk_stream *s = &r->s[egress == req_egress ? 0 : 1];
		uint64_t ts = 1000 + i;

		if (c[i].flags & 2)
			kfk_stream_gap(s);
		kfk_stream_begin(s, c[i].data, c[i].len, c[i].len + c[i].missing);
		if (!bytewise) {
			kfk_stream_take(s, c[i].data, c[i].len, ts, 7);
			kfk_stream_take(s, NULL, c[i].missing, ts, 7);
			continue;
		}
		for (size_t j = 0; j < c[i].len; j++)
			kfk_stream_take(s, c[i].data + j, 1, ts, 7);
		for (size_t j = 0; j < c[i].missing; j += 131)
			kfk_stream_take(s, NULL, c[i].missing - j < 131 ? c[i].missing - j : 131, ts, 7);
	}
}

static void check_streams(const struct chunk *c, size_t nc)
{
	static struct run whole, bytes;

	for (int req_egress = 0; req_egress < 2; req_egress++) {
		stream_run(&whole, req_egress, c, nc, 0);
		stream_run(&bytes, req_egress, c, nc, 1);
		if (whole.n != bytes.n)
			__builtin_trap();
		for (size_t i = 0; i < whole.n && i < MAX_FRAMES; i++) {
			const uint8_t *a = (const uint8_t *)&whole.f[i], *b = (const uint8_t *)&bytes.f[i];

			for (size_t k = 0; k < sizeof(whole.f[i]); k++) {
				if (a[k] == b[k])
					continue;
				fprintf(stderr, "frame %zu differs at byte %zu of %zu (client id %u/%u %u/%u)\n", i, k,
				        sizeof(whole.f[i]), whole.f[i].sum.client_id_len, bytes.f[i].sum.client_id_len,
				        whole.f[i].sum.client_id_state, bytes.f[i].sum.client_id_state);
				__builtin_trap();
			}
		}
		for (int d = 0; d < 2; d++) {
			const uint64_t *a = (const uint64_t *)&whole.s[d].st;
			const uint64_t *b = (const uint64_t *)&bytes.s[d].st;

			for (size_t k = 0; k < sizeof(whole.s[d].st) / sizeof(uint64_t); k++) {
				if (a[k] == b[k])
					continue;
				fprintf(stderr, "stream %d stat %zu: whole %llu, bytewise %llu\n", d, k,
				        (unsigned long long)a[k], (unsigned long long)b[k]);
				__builtin_trap();
			}
		}
	}
}

/* ---- (3) the plugin ---------------------------------------------------------------- */

/* Points of one metric (SDK 1.1 counters are points too, without a span). */
static size_t points_of(struct th_host *h, const char *metric)
{
	size_t n = 0;

	for (size_t i = 0; i < th_n_records(h); i++)
		n += !strcmp(th_record(h, i)->m->name, metric);
	return n;
}

static void run_plugin(uint8_t cfg, const struct chunk *c, size_t nc)
{
	struct th_host *h = th_new();
	struct sonde_conn_info ci;
	struct th_conn *fc;

	if (cfg & 4) {
		const char *v[] = { "true" };

		th_set_config(h, NULL, "empty_fetch_spans", v, 1);
	}
	if (cfg & 8)
		th_set_span_limit(h, 3);
	if (cfg & 16) {
		const char *v[] = { "4" };

		th_set_config(h, NULL, "max_in_flight", v, 1);
	}
	if (th_load(h, sonde_plugin_entry(), "kafka") != SONDE_OK)
		__builtin_trap();
	th_conn_info_init(&ci, (enum sonde_role)(cfg % 3));
	if (nc) {
		th_detect(h, &ci, SONDE_DIR_EGRESS, c[0].data, c[0].len);
		th_detect(h, &ci, SONDE_DIR_INGRESS, c[0].data, c[0].len);
	}
	fc = th_conn_open(h, &ci);
	if (!fc)
		__builtin_trap();
	for (size_t i = 0; i < nc && !th_conn_given_up(fc); i++) {
		struct sonde_chunk ch = { 0 };

		ch.dir = (c[i].flags & 1) ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
		ch.ts_unix_ns = 1000 + i * 10;
		ch.data = c[i].data;
		ch.len = c[i].len;
		ch.orig_len = c[i].len + c[i].missing;
		if (c[i].flags & 2)
			ch.flags |= SONDE_CHUNK_GAP;
		if (c[i].missing)
			ch.flags |= SONDE_CHUNK_TRUNCATED;
		ch.tid = 7;
		th_conn_feed_chunk(fc, &ch);
	}
	/* SDK 1.1 timers (expiry of what waits too long): all due now */
	th_run_timers(h, (uint64_t)1 << 62);
	th_conn_close(fc, 1000 + nc * 10 + 10);
	if (th_n_open(h) != 0 || th_misuse(h) != 0)
		__builtin_trap();
	if (points_of(h, "messaging.client.operation.duration") > th_n_ended(h))
		__builtin_trap();
	th_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct chunk c[MAX_CHUNKS];
	size_t nc;

	if (size < 1)
		return 0;
	nc = split(data, size, c);
	for (size_t i = 0; i < nc; i++) {
		int r = kfk_check_request(c[i].data, c[i].len, c[i].len + c[i].missing);

		if (r < KFK_START_NO || r > KFK_START_FRAMES)
			__builtin_trap();
	}
	check_streams(c, nc);
	run_plugin(data[0], c, nc);
	return 0;
}
