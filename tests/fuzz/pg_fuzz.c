/*
 * pg_fuzz.c - libFuzzer harness for the sql plugin's `postgresql` protocol:
 * the message decoder, the boundary checks and the whole protocol behind
 * the test host.
 *
 * The one idea: one input is read three ways. (1) The bytes go through the
 * decoder of each side whole and byte by byte; both must give the same
 * messages and the same verdict. (2) The boundary checks (header chain,
 * tail after rows) must stay inside the bytes. (3) The bytes are cut into
 * chunks of a connection: byte 0 picks the role and settings, then each
 * chunk is a 2-byte header (bit 0 direction, bit 1 GAP, bit 2 TRUNCATED,
 * bit 3 "TLS plaintext from now on", bits 4-7 how much was cut off; then a
 * length byte) and its data. After the connection closes no span may be
 * open, no host call misused, and no metric point without its span.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include "testhost.h"
#include "pg_wire.h"

const struct sonde_plugin *sonde_plugin_entry(void);

#define MAX_MSGS 512

struct run {
	int n, err;
	uint8_t type[MAX_MSGS];
	uint32_t len[MAX_MSGS], copied[MAX_MSGS], sum[MAX_MSGS];
};

static void decode(int side, int startup, const uint8_t *p, size_t n, size_t step, struct run *out)
{
	struct pg_stream s;
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	pg_stream_init(&s, side, 300);
	pg_stream_reset(&s, startup);
	while (off < n && !out->err) {
		size_t end = step && off + step < n ? off + step : n;

		while (off < end) {
			struct pg_msg m;
			int done;
			ssize_t r = pg_stream_feed(&s, p + off, end - off, 0, &m, &done);

			if (r < 0) {
				out->err = 1;
				break;
			}
			off += (size_t)r;
			if (done && out->n < MAX_MSGS) {
				uint32_t h = 0;

				if (m.copied > m.len)
					__builtin_trap();
				for (uint32_t i = 0; i < m.copied; i++)
					h = h * 31 + m.body[i];
				out->type[out->n] = m.type;
				out->len[out->n] = m.len;
				out->copied[out->n] = m.copied;
				out->sum[out->n] = h;
			}
			out->n += done;
		}
	}
	pg_stream_free(&s);
}

static void check_decoder(const uint8_t *p, size_t n)
{
	static struct run whole, bytes;
	int end;
	long t;

	for (int side = 0; side < 2; side++) {
		decode(side, side == PG_FE && n && p[0] == 0, p, n, 0, &whole);
		decode(side, side == PG_FE && n && p[0] == 0, p, n, 1, &bytes);
		if (whole.n != bytes.n || whole.err != bytes.err)
			__builtin_trap();
		for (int i = 0; i < whole.n && i < MAX_MSGS; i++)
			if (whole.type[i] != bytes.type[i] || whole.len[i] != bytes.len[i] ||
			    whole.copied[i] != bytes.copied[i] || whole.sum[i] != bytes.sum[i])
				__builtin_trap();
		pg_chain(side, p, n, &end);
	}
	t = pg_tail_after_rows(p, n);
	if (t >= (long)n)
		__builtin_trap();
}

/* Points of one metric (SDK 1.1 counters are points too, without a span). */
static size_t points_of(struct th_host *h, const char *metric)
{
	size_t n = 0;

	for (size_t i = 0; i < th_n_records(h); i++)
		n += !strcmp(th_record(h, i)->m->name, metric);
	return n;
}

static void run_plugin(const uint8_t *p, size_t n)
{
	struct th_host *h = th_new();
	struct sonde_conn_info ci;
	struct th_conn *c;
	uint64_t ts = 1000;
	size_t off = 1;
	uint8_t cfg = p[0];

	if (cfg & 4) {
		const char *v[] = { "false" };

		th_set_config(h, NULL, "query_text", v, 1);
	}
	if (cfg & 8)
		th_set_span_limit(h, 2);
	if (cfg & 16) {
		const char *v[] = { "256" };

		th_set_config(h, NULL, "max_query_bytes", v, 1);
	}
	if (cfg & 32) {
		const char *v[] = { "16" };

		th_set_config(h, NULL, "max_prepared", v, 1);
	}
	if (th_load(h, sonde_plugin_entry(), "postgresql") != SONDE_OK)
		__builtin_trap();
	th_conn_info_init(&ci, (enum sonde_role)(cfg % 3));
	th_detect(h, &ci, SONDE_DIR_EGRESS, p + 1, n - 1);
	th_detect(h, &ci, SONDE_DIR_INGRESS, p + 1, n - 1);
	c = th_conn_open(h, &ci);
	if (!c)
		__builtin_trap();
	while (off + 2 <= n && !th_conn_given_up(c)) {
		uint8_t fl = p[off];
		size_t len = p[off + 1];
		struct sonde_chunk ch = { 0 };

		off += 2;
		if (len > n - off)
			len = n - off;
		if (fl & 8)
			th_conn_set_tls(c);
		ch.dir = (fl & 1) ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
		ch.ts_unix_ns = ts;
		ch.data = p + off;
		ch.len = len;
		ch.orig_len = len;
		if (fl & 2)
			ch.flags |= SONDE_CHUNK_GAP;
		if (fl & 4) {
			ch.flags |= SONDE_CHUNK_TRUNCATED;
			ch.orig_len = len + 1 + (size_t)(fl >> 4) * 97;
		}
		ch.tid = 7;
		th_conn_feed_chunk(c, &ch);
		off += len;
		ts += 1 + (fl >> 5) * 1000;
	}
	/* SDK 1.1 timers (expiry of what waits too long): all due now */
	th_run_timers(h, (uint64_t)1 << 62);
	th_conn_close(c, ts);
	if (th_n_open(h) != 0 || th_misuse(h) != 0)
		__builtin_trap();
	if (points_of(h, "db.client.operation.duration") > th_n_ended(h))
		__builtin_trap();
	th_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_decoder(data, size);
	if (size > 0)
		run_plugin(data, size);
	return 0;
}
