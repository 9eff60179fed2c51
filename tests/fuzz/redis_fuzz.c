/*
 * redis_fuzz.c - libFuzzer harness for the Redis plugin: the stateless RESP
 * parser, the stream decoder and the whole plugin behind the test host.
 *
 * The one idea: one input is read three ways. (1) The raw bytes go through
 * resp_parse / resp_parse_request / resp_parse_hdr. (2) The raw bytes go
 * through the stream decoder once whole and once byte by byte, and the two
 * must produce the same messages and the same verdict - the property the
 * plugin's chunk handling rests on. (3) The bytes are cut into chunks for a
 * connection: byte 0 picks the role and the settings, then each chunk is a
 * 2-byte header (bit 0 direction, bit 1 GAP, bit 2 TRUNCATED, bits 3-7 how
 * much was cut off; then a length byte) followed by its data. After the
 * connection closes, no span may be left open and no host call misused.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include "testhost.h"
#include "resp.h"

const struct sonde_plugin *sonde_plugin_entry(void);

#define MAX_MSGS 512

struct run {
	int n;
	int err;
	struct resp_summary m[MAX_MSGS];
};

static void stream_run(int request, const uint8_t *p, size_t n, size_t step, struct run *out)
{
	struct resp_stream s;
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	resp_stream_init(&s, request);
	while (off < n) {
		size_t end = step && off + step < n ? off + step : n;

		while (off < end) {
			struct resp_summary m;
			int done;
			ssize_t r = resp_stream_feed(&s, p + off, end - off, &m, &done);

			if (r < 0) {
				out->err = (int)r;
				return;
			}
			off += (size_t)r;
			if (done && out->n < MAX_MSGS)
				out->m[out->n] = m;
			out->n += done;
		}
	}
}

static void check_parsers(const uint8_t *p, size_t n)
{
	static struct run whole, bytes;
	struct resp_msg m;
	struct resp_hdr h;
	ssize_t r;

	resp_parse_hdr(p, n, &h);
	r = resp_parse(p, n, &m);
	if (r > (ssize_t)n)
		__builtin_trap();
	r = resp_parse_request(p, n, &m);
	if (r > (ssize_t)n)
		__builtin_trap();
	for (int request = 0; request < 2; request++) {
		stream_run(request, p, n, 0, &whole);
		stream_run(request, p, n, 1, &bytes);
		if (whole.n != bytes.n || whole.err != bytes.err)
			__builtin_trap();
		for (int i = 0; i < whole.n && i < MAX_MSGS; i++)
			if (!resp_summary_eq(&whole.m[i], &bytes.m[i]))
				__builtin_trap();
	}
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
		const char *v[] = { "true" };

		th_set_config(h, NULL, "query_text", v, 1);
	}
	if (cfg & 8)
		th_set_span_limit(h, 3);
	if (th_load(h, sonde_plugin_entry(), "redis") != SONDE_OK)
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
		ch.dir = (fl & 1) ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
		ch.ts_unix_ns = ts;
		ch.data = p + off;
		ch.len = len;
		ch.orig_len = len;
		if (fl & 2)
			ch.flags |= SONDE_CHUNK_GAP;
		if (fl & 4) {
			ch.flags |= SONDE_CHUNK_TRUNCATED;
			ch.orig_len = len + 1 + (size_t)(fl >> 3) * 97;
		}
		ch.tid = 7;
		th_conn_feed_chunk(c, &ch);
		off += len;
		ts += 1 + (fl >> 5) * 1000;
	}
	th_conn_close(c, ts);
	if (th_n_open(h) != 0 || th_misuse(h) != 0)
		__builtin_trap();
	if (th_n_records(h) > th_n_ended(h))
		__builtin_trap();
	th_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_parsers(data, size);
	if (size > 0)
		run_plugin(data, size);
	return 0;
}
