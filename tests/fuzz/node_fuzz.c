/*
 * node_fuzz.c - libFuzzer harness for the Node.js plugin's readers of
 * untrusted bytes. The first byte picks what the rest is:
 *   0  an HTTP response head (the inspector's /json/list, its upgrade);
 *   1  WebSocket server frames, one after the other, assembled into
 *      messages in a bounded buffer;
 *   2  /json/list JSON;
 *   3  a Runtime.evaluate answer, and the script's answer in it;
 *   4  /proc/PID/status text;
 *   5  a command line and an environment (NUL-separated, split at the
 *      first 0xff byte), Node's options;
 *   6  lines of /proc/PID/maps and /proc/net/tcp;
 *   7  an ELF image;
 *   8  records as the BPF programs write them ([u16 length][record]...),
 *      types forced into the plugin's claimed range, through the plugin on
 *      the real host.
 * Every parser is also checked against its own promises (a consumed length
 * never beyond the buffer, strings NUL-terminated within their arrays).
 * Seeds: tests/fuzz/corpus/node/.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include "node_cdp.h"
#include "node_elf.h"
#include "node_plugin.h"
#include "node_proc.h"
#include "node_rec.h"
#include "node_ws.h"
#include "testhost.h"

const struct sonde_plugin *sonde_plugin_entry(void);

static void fuzz_head(const uint8_t *d, size_t n)
{
	struct node_http_resp r;
	int k = node_http_head(d, n, &r);

	if (k > 0 && ((size_t)k > n || r.status < 100 || r.status > 999 ||
		      strnlen(r.accept, sizeof(r.accept)) == sizeof(r.accept)))
		abort();
	if (k == 0 || k < NODE_NEED_MORE)
		abort();
}

static void fuzz_frames(const uint8_t *d, size_t n)
{
	uint8_t store[4096];
	struct node_ws_msg m = { .buf = store, .cap = sizeof(store) };
	size_t off = 0;

	while (off < n) {
		struct node_ws_frame f;
		int k = node_ws_frame_parse(d + off, n - off, 8192, &f);

		if (k < 0)
			return;
		if ((size_t)k > n - off || f.len > 8192 || f.payload < d + off ||
		    f.payload + f.len > d + off + (size_t)k)
			abort();
		off += (size_t)k;
		if (f.opcode >= NODE_WS_CLOSE)
			continue;
		if (node_ws_msg_add(&m, &f) == 1) {
			if (m.len > m.cap)
				abort();
			node_ws_msg_reset(&m);
		}
	}
}

static void fuzz_list(const uint8_t *d, size_t n)
{
	char path[160];

	if (node_cdp_ws_path((const char *)d, n, path, sizeof(path)) == 0 &&
	    (path[0] != '/' || strnlen(path, sizeof(path)) == sizeof(path)))
		abort();
}

static void fuzz_eval(const uint8_t *d, size_t n)
{
	char value[1024], err[256];
	struct node_script_result r;

	if (node_cdp_eval_response((const char *)d, n, 1, value, sizeof(value), err, sizeof(err)) ==
	    1)
		node_script_result_parse(value, strlen(value), &r);
	node_script_result_parse((const char *)d, n, &r);
	if (strnlen(r.why, sizeof(r.why)) == sizeof(r.why) ||
	    strnlen(r.node, sizeof(r.node)) == sizeof(r.node))
		abort();
}

static void fuzz_status(const uint8_t *d, size_t n)
{
	struct node_sigmasks m;

	node_status_parse((const char *)d, n, &m);
}

static void fuzz_opts(const uint8_t *d, size_t n)
{
	const uint8_t *cut = memchr(d, 0xff, n);
	size_t a = cut ? (size_t)(cut - d) : n;

	node_opts_scan((const char *)d, a, cut ? (const char *)cut + 1 : NULL, cut ? n - a - 1 : 0);
}

static void fuzz_lines(const uint8_t *d, size_t n)
{
	size_t i = 0;

	while (i < n) {
		const uint8_t *e = memchr(d + i, '\n', n - i);
		size_t l = e ? (size_t)(e - (d + i)) : n - i;
		struct node_map m;
		struct node_sock s;

		if (node_maps_line((const char *)d + i, l, &m) == 0 &&
		    (m.hi < m.lo || m.path < (const char *)d + i ||
		     m.path + m.path_len > (const char *)d + i + l))
			abort();
		if (node_net_line((const char *)d + i, l, &s) == 0)
			node_sock_local(&s);
		i += l + 1;
	}
}

static void fuzz_elf(const uint8_t *d, size_t n)
{
	struct node_image im;

	if (node_elf_inspect_mem(d, n, &im) == 0 && im.ntext > NODE_TEXT_MAX)
		abort();
}

static void fuzz_records(const uint8_t *d, size_t n)
{
	struct th_host *h = th_new();
	const struct sonde_plugin *node = sonde_plugin_entry();
	void *state = NULL;
	uint32_t base;
	size_t off = 0;

	if (node->init(th_api(h), th_self(h), &state) != SONDE_OK) {
		th_free(h);
		return;
	}
	base = node_debug_rec_base();
	while (off + 2 <= n) {
		size_t len = (size_t)d[off] | (size_t)d[off + 1] << 8;
		uint8_t rec[512];

		off += 2;
		if (len > n - off || len > sizeof(rec))
			len = n - off < sizeof(rec) ? n - off : sizeof(rec);
		memcpy(rec, d + off, len);
		if (len >= 4) {
			uint32_t t = base + (rec[0] % (NODE_REC_COUNT + 1));

			memcpy(rec, &t, 4);
		}
		node->record(state, rec, len);
		off += len;
	}
	node->fini(state);
	th_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	uint8_t *copy;

	if (n < 1)
		return 0;
	/* a copy of exactly the input's size, so ASan sees any read past it */
	copy = malloc(n - 1 ? n - 1 : 1);
	if (!copy)
		return 0;
	memcpy(copy, d + 1, n - 1);
	switch (d[0] % 9) {
	case 0: fuzz_head(copy, n - 1); break;
	case 1: fuzz_frames(copy, n - 1); break;
	case 2: fuzz_list(copy, n - 1); break;
	case 3: fuzz_eval(copy, n - 1); break;
	case 4: fuzz_status(copy, n - 1); break;
	case 5: fuzz_opts(copy, n - 1); break;
	case 6: fuzz_lines(copy, n - 1); break;
	case 7: fuzz_elf(copy, n - 1); break;
	case 8: fuzz_records(copy, n - 1); break;
	}
	free(copy);
	return 0;
}
