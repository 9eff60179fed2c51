/*
 * java_fuzz.c - libFuzzer harness for the Java plugin's readers of
 * untrusted bytes. The first byte picks what the rest is:
 *   0  agent messages ([u16 length][message]...), each wrapped in a record
 *      as java.bpf.c writes it, the socket fd of DATA forced to one of two
 *      host connections (a server's and a client's), BEGIN/END left as they
 *      are and their task key made the records' context until the END,
 *      through the plugin and the real host (context links) into the real
 *      HTTP plugin (build/plugins/http.so);
 *   1  records as they are (the BPF record header too), types forced into
 *      the plugin's claimed range;
 *   2  a HotSpot performance data file;
 *   3  an attach answer, /proc/PID/status text, maps lines and a
 *      NUL-separated command line.
 * Seeds: tests/fuzz/corpus/java/ (messages of a real HTTPS exchange as the
 * agent wrote them, a real JVM's performance data file, answers).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include "java_attach.h"
#include "java_msg.h"
#include "java_perf.h"
#include "java_plugin.h"
#include "java_proc.h"
#include "java_rec.h"
#include "testhost.h"

const struct sonde_plugin *sonde_plugin_entry(void);

static const struct sonde_plugin *http;
static _Alignas(8) uint8_t rec[sizeof(struct java_rec) + JAVA_MSG_MAX + 64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	void *dl = dlopen(HTTP_PLUGIN_SO, RTLD_NOW | RTLD_LOCAL);
	sonde_plugin_entry_fn fn = dl ? (sonde_plugin_entry_fn)dlsym(dl, SONDE_PLUGIN_ENTRY_SYMBOL)
				      : NULL;

	(void)argc;
	(void)argv;
	if (!fn) {
		fprintf(stderr, "java_fuzz: cannot load %s\n", HTTP_PLUGIN_SO);
		abort();
	}
	http = fn();
	return 0;
}

static void fuzz_stream(const uint8_t *d, size_t n, int raw)
{
	struct th_host *h = th_new();
	const struct sonde_plugin *java = sonde_plugin_entry();
	struct java_rec *r = (struct java_rec *)rec;
	struct sonde_conn_info ci;
	struct th_conn *c;
	void *st = NULL;
	uint32_t base;
	uint64_t ctx = 0;

	if (th_load(h, http, "http") != SONDE_OK || java->init(th_api(h), th_self(h), &st) != SONDE_OK)
		abort();
	base = java_debug_rec_base();
	for (int i = 0; i < 2; i++) {
		th_conn_info_init(&ci, i ? SONDE_ROLE_CLIENT : SONDE_ROLE_SERVER);
		ci.pid = 4242;
		c = th_conn_open(h, &ci);
		if (c)
			th_conn_set_fd(c, 5 + (uint32_t)i);
	}
	while (n >= 2) {
		size_t len = (size_t)d[0] | (size_t)d[1] << 8;
		uint8_t *m = raw ? rec : r->data;
		size_t room = raw ? sizeof(rec) : JAVA_MSG_MAX;

		d += 2;
		n -= 2;
		if (len > n)
			len = n;
		if (len > room)
			len = room;
		memcpy(m, d, len);
		if (raw) {
			if (len >= sizeof(struct java_rec_hdr)) {
				r->h.type = base + r->h.type % (JAVA_REC_COUNT + 1);
				r->h.tgid = 4242;
			}
			java->record(st, rec, len);
		} else {
			/* DATA: the socket forced to a known one; BEGIN/END keep fd -1
			 * and make the "kernel" context the task's, as java.bpf.c does. */
			if (len >= 24 && (m[6] == JAVA_MSG_BEGIN || m[6] == JAVA_MSG_END))
				memcpy(&ctx, m + JAVA_MSG_OFF_KEY, 8), ctx = m[6] == JAVA_MSG_END ? 0 : ctx;
			else if (len >= 12)
				m[8] = (uint8_t)(5 + m[8] % 3), m[9] = m[10] = m[11] = 0;
			memset(&r->h, 0, sizeof(r->h));
			r->ctx = ctx;
			r->h.type = base + JAVA_REC_MSG;
			r->h.tgid = 4242;
			r->h.tid = 4243;
			r->h.ts_ns = 1000u * (uint32_t)n;
			r->len = r->cap_len = (uint32_t)len;
			java->record(st, rec, sizeof(*r) + len);
		}
		d += len;
		n -= len;
	}
	java->fini(st);
	th_free(h);
}

static void fuzz_perf(const uint8_t *d, size_t n)
{
	struct java_perf p;

	if (java_perf_parse(d, n, &p) == 0 &&
	    (strlen(p.version) >= sizeof(p.version) || strlen(p.vm_name) >= sizeof(p.vm_name)))
		abort();
}

static void fuzz_text(const uint8_t *d, size_t n)
{
	struct java_attach_res res;
	struct java_proc p;
	char *s = malloc(n + 1);

	if (java_attach_parse((const char *)d, n, &res) == 0 && strlen(res.text) >= sizeof(res.text))
		abort();
	if (!s)
		return;
	memcpy(s, d, n);
	s[n] = 0;
	memset(&p, 0, sizeof(p));
	java_proc_parse_status(s, &p);
	java_proc_parse_maps_line(s, &p);
	if (strlen(p.libc) >= sizeof(p.libc))
		abort();
	java_proc_no_attach((const char *)d, n, 0);
	java_proc_no_attach((const char *)d, n, 1);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	if (n < 1)
		return 0;
	switch (d[0] & 3) {
	case 0:
		fuzz_stream(d + 1, n - 1, 0);
		break;
	case 1:
		fuzz_stream(d + 1, n - 1, 1);
		break;
	case 2:
		fuzz_perf(d + 1, n - 1);
		break;
	case 3:
		fuzz_text(d + 1, n - 1);
		break;
	}
	return 0;
}
