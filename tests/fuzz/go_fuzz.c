/*
 * go_fuzz.c - libFuzzer harness for the Go plugin's readers of untrusted
 * bytes. The first byte picks what the rest is:
 *   0  machine code: the length decoder and the RET finder (every RET
 *      offset must be an instruction start inside the code);
 *   1  a build-information blob, and a version string;
 *   2  records as the BPF programs write them ([u16 length][record]...),
 *      types forced into the plugin's claimed range, through the plugin
 *      and the real host into the real HTTP plugin (build/plugins/http.so);
 *   3  an executable image: ELF, symbols, DWARF, the whole inspection.
 * Seeds: tests/fuzz/corpus/go/ (a real Go function's code, real record
 * sequences, a tiny static ELF that carries Go build information).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include "go_elf.h"
#include "go_inspect.h"
#include "go_plugin.h"
#include "go_rec.h"
#include "go_x86.h"
#include "testhost.h"

const struct sonde_plugin *sonde_plugin_entry(void);

static const struct sonde_plugin *http;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	void *dl = dlopen(HTTP_PLUGIN_SO, RTLD_NOW | RTLD_LOCAL);
	sonde_plugin_entry_fn fn = dl ? (sonde_plugin_entry_fn)dlsym(dl, SONDE_PLUGIN_ENTRY_SYMBOL)
				      : NULL;

	(void)argc;
	(void)argv;
	if (!fn) {
		fprintf(stderr, "go_fuzz: cannot load %s\n", HTTP_PLUGIN_SO);
		abort();
	}
	http = fn();
	return 0;
}

static void fuzz_code(const uint8_t *d, size_t n)
{
	uint32_t rets[256];
	int nr = go_x86_ret_sites(d, n, rets, 256);
	size_t pos = 0, k = 0;

	if (nr < 0)
		return;
	/* Every RET found is an instruction start, in order, inside the code. */
	while (pos < n && k < (size_t)nr && k < 256) {
		int len = go_x86_insn_len(d + pos, n - pos);

		if (len < 0)
			break;
		if (rets[k] == pos)
			k++;
		else if (rets[k] < pos)
			abort();
		pos += (size_t)len;
	}
	if (k != (size_t)(nr < 256 ? nr : 256))
		abort();
}

static void fuzz_buildinfo(const uint8_t *d, size_t n)
{
	char out[64], *s = malloc(n + 1);
	int a, b;

	if (go_buildinfo_version(NULL, d, n, out, sizeof(out)) == 0 && strlen(out) >= sizeof(out))
		abort();
	if (!s)
		return;
	memcpy(s, d, n);
	s[n] = 0;
	go_version_parse(s, &a, &b);
	free(s);
}

static void fuzz_records(const uint8_t *d, size_t n)
{
	struct th_host *h = th_new();
	const struct sonde_plugin *go = sonde_plugin_entry();
	struct sonde_conn_info ci;
	struct th_conn *c;
	void *st = NULL;
	uint8_t buf[sizeof(struct go_rec_data) + 4096];
	uint32_t base;

	if (th_load(h, http, "http") != SONDE_OK || go->init(th_api(h), th_self(h), &st) != SONDE_OK)
		abort();
	base = go_debug_rec_base();
	th_conn_info_init(&ci, SONDE_ROLE_SERVER);
	ci.pid = 4242;
	c = th_conn_open(h, &ci);
	if (c)
		th_conn_set_fd(c, 7);
	while (n >= 2) {
		size_t len = (size_t)d[0] | (size_t)d[1] << 8;

		d += 2;
		n -= 2;
		if (len > n)
			len = n;
		if (len > sizeof(buf))
			len = sizeof(buf);
		memcpy(buf, d, len);
		if (len >= sizeof(struct go_rec_hdr)) {
			struct go_rec_hdr *hd = (struct go_rec_hdr *)buf;

			hd->type = base + hd->type % (GO_REC_COUNT + 1);
			hd->tgid = 4242;
			hd->fd = hd->fd % 9;
		}
		go->record(st, buf, len);
		d += len;
		n -= len;
	}
	go->fini(st);
	th_free(h);
}

static void fuzz_elf(const uint8_t *d, size_t n)
{
	static struct go_target t;

	if (go_inspect_mem(d, n, &t) == 0 && t.nprobes > GO_MAX_PROBES)
		abort();
	for (size_t i = 0; i < t.nprobes; i++)
		if (t.probes[i].offset >= n)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	if (n < 1)
		return 0;
	switch (d[0] & 3) {
	case 0:
		fuzz_code(d + 1, n - 1);
		break;
	case 1:
		fuzz_buildinfo(d + 1, n - 1);
		break;
	case 2:
		fuzz_records(d + 1, n - 1);
		break;
	case 3:
		fuzz_elf(d + 1, n - 1);
		break;
	}
	return 0;
}
