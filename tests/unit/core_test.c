/*
 * core_test.c - the core host without a kernel: plugin loading and refusal,
 * traceparent parsing, the hash map, and the record pipeline (dispatch,
 * per-service enablement, gaps, TLS ciphertext suppression, same-thread
 * parenting) driven by synthetic capture records.
 *
 * Fixture plugins come from tests/fixtures (built next to this test).
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/hmap.h"
#include "config/config.h"
#include "host/host.h"
#include "pipeline/conns.h"
#include "pipeline/pipeline.h"
#include "pipeline/procs.h"
#include "telemetry/metrics.h"
#include "telemetry/intern.h"
#include "telemetry/span.h"

/* ---------------------------------------------------------------- helpers */

static char tmpdir[256];

static void mk_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sonde-core-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void copy_file(const char *from, const char *to, long limit)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char buf[4096];
	size_t n;
	long total = 0;

	ck_assert_msg(in != NULL, "cannot open %s", from);
	ck_assert_ptr_nonnull(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
		if (limit >= 0 && total + (long)n > limit)
			n = (size_t)(limit - total);
		fwrite(buf, 1, n, out);
		total += (long)n;
		if (limit >= 0 && total >= limit)
			break;
	}
	fclose(in);
	fclose(out);
}

static void fixture(const char *name, const char *as)
{
	char from[512], to[512];
	snprintf(from, sizeof(from), "%s/%s.so", SONDE_FIXTURE_DIR, name);
	snprintf(to, sizeof(to), "%s/%s", tmpdir, as);
	copy_file(from, to, -1);
}

static const struct sonde_plugin_handle *file_named(const struct plugin_registry *r,
                                                    const char *base)
{
	for (size_t i = 0; i < r->n_files; i++) {
		const char *s = strrchr(r->files[i]->path, '/');
		if (s && !strcmp(s + 1, base))
			return r->files[i];
	}
	return NULL;
}

/* A host table for loader tests that do not need spans. */
static struct sonde_host_api test_host(void)
{
	struct sonde_host_api h;
	memset(&h, 0, sizeof(h));
	h.struct_size = sizeof(h);
	h.abi_major = SONDE_ABI_MAJOR;
	h.abi_minor = SONDE_ABI_MINOR;
	h.strerror = sonde_strerror;
	return h;
}

/* ----------------------------------------------------------- plugin loader */

START_TEST(loader_refuses_bad_files_and_keeps_good)
{
	struct sonde_host_api h = test_host();
	struct plugin_registry r;
	const struct sonde_plugin_handle *f;
	char path[512];
	FILE *fp;

	mk_tmpdir();
	fixture("good", "good.so");
	fixture("abi_major", "abi_major.so");
	fixture("abi_minor", "abi_minor.so");
	fixture("init_fails", "init_fails.so");
	fixture("good", "good_again.so"); /* same plugin name twice */
	snprintf(path, sizeof(path), "%s/good.so", SONDE_FIXTURE_DIR);
	char trunc[512];
	snprintf(trunc, sizeof(trunc), "%s/truncated.so", tmpdir);
	copy_file(path, trunc, 3000);
	snprintf(path, sizeof(path), "%s/notes.so", tmpdir);
	fp = fopen(path, "w");
	fputs("this is not a plugin\n", fp);
	fclose(fp);
	/* A real shared library that is not a sonde plugin. */
	const char *foreign = NULL;
	const char *cands[] = {"/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1",
	                       "/lib/aarch64-linux-gnu/libz.so.1"};
	for (size_t i = 0; i < 3; i++)
		if (!access(cands[i], R_OK))
			foreign = cands[i];
	ck_assert_msg(foreign != NULL, "no libz.so.1 to use as a foreign library");
	snprintf(path, sizeof(path), "%s/foreign.so", tmpdir);
	copy_file(foreign, path, -1);

	plugins_init(&r, &h);
	plugins_add_dir(&r, tmpdir);
	plugins_add_dir(&r, "/nonexistent/sonde/plugins");
	int loaded = plugins_scan(&r, false);
	ck_assert_int_eq(loaded, 1);
	ck_assert_uint_eq(r.n_files, 8);
	ck_assert_uint_eq(r.n_protos, 1);
	ck_assert_ptr_nonnull(plugins_find_proto(&r, "pingpong"));

	/* exactly one of good.so / good_again.so wins (readdir order) */
	const struct sonde_plugin_handle *g1 = file_named(&r, "good.so");
	const struct sonde_plugin_handle *g2 = file_named(&r, "good_again.so");
	ck_assert(g1->loaded != g2->loaded);
	ck_assert_ptr_nonnull(strstr((g1->loaded ? g2 : g1)->reason, "duplicate"));
	/* Loaded last, after libcurl, libbpf and the rest: the plugin's
	 * literals (here its name) are still known to be read-only, so the
	 * key cache trusts them without a compare. */
	ck_assert(intern_is_readonly((g1->loaded ? g1 : g2)->desc->name));

	f = file_named(&r, "abi_major.so");
	ck_assert(!f->loaded);
	ck_assert_msg(strstr(f->reason, "ABI mismatch") && strstr(f->reason, "2.0"), "%s", f->reason);
	f = file_named(&r, "abi_minor.so");
	ck_assert(!f->loaded);
	ck_assert_msg(strstr(f->reason, "ABI too new") && strstr(f->reason, "1.99"), "%s", f->reason);
	f = file_named(&r, "init_fails.so");
	ck_assert(!f->loaded);
	ck_assert_msg(strstr(f->reason, "init() failed"), "%s", f->reason);
	f = file_named(&r, "truncated.so");
	ck_assert(!f->loaded);
	ck_assert_msg(strstr(f->reason, "truncated") || strstr(f->reason, "damaged") ||
	              strstr(f->reason, "not a sonde plugin"), "%s", f->reason);
	f = file_named(&r, "notes.so");
	ck_assert(!f->loaded);
	ck_assert_msg(strstr(f->reason, "not an ELF"), "%s", f->reason);
	f = file_named(&r, "foreign.so");
	ck_assert(!f->loaded);
	ck_assert_msg(strstr(f->reason, "does not export sonde_plugin_entry"), "%s", f->reason);
	ck_assert_ptr_null(f->dl); /* never dlopen'ed */

	/* The listing names every file with its verdict. */
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	plugins_list(&r, mem);
	fclose(mem);
	ck_assert_ptr_nonnull(strstr(buf, "pingpong"));
	ck_assert_ptr_nonnull(strstr(buf, "loaded"));
	ck_assert_ptr_nonnull(strstr(buf, "refused"));
	ck_assert_ptr_nonnull(strstr(buf, "ABI mismatch"));
	free(buf);

	/* Rescanning loads nothing new; a dropped-in file is picked up. */
	ck_assert_int_eq(plugins_scan(&r, false), 0);
	plugins_free(&r);
	rm_tmpdir();
}
END_TEST

START_TEST(abi_check_rules)
{
	struct sonde_plugin d = {0};
	char why[256];

	ck_assert_int_ne(plugin_abi_check(NULL, why, sizeof(why)), 0);
	d.abi_major = SONDE_ABI_MAJOR;
	d.abi_minor = SONDE_ABI_MINOR;
	d.struct_size = sizeof(d);
	d.name = "ok_name-1";
	ck_assert_int_eq(plugin_abi_check(&d, why, sizeof(why)), 0);
	d.name = "Bad Name";
	ck_assert_int_ne(plugin_abi_check(&d, why, sizeof(why)), 0);
	d.name = "ok";
	d.struct_size = 8;
	ck_assert_int_ne(plugin_abi_check(&d, why, sizeof(why)), 0);
	ck_assert_ptr_nonnull(strstr(why, "too small"));
	d.struct_size = sizeof(d);
	d.abi_major = 0;
	ck_assert_int_ne(plugin_abi_check(&d, why, sizeof(why)), 0);
	/* An older minor is accepted. */
	d.abi_major = SONDE_ABI_MAJOR;
	d.abi_minor = 0;
	ck_assert_int_eq(plugin_abi_check(&d, why, sizeof(why)), 0);
}
END_TEST

/* ------------------------------------------------------------ traceparent */

START_TEST(traceparent_cases)
{
	uint8_t t[16], s[8], f;
	const char *good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

	ck_assert_int_eq(traceparent_parse(good, strlen(good), t, s, &f), 0);
	ck_assert_uint_eq(t[0], 0x0a);
	ck_assert_uint_eq(s[7], 0x31);
	ck_assert_uint_eq(f, 1);
	ck_assert_int_eq(traceparent_parse(" 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00 ", 57,
	                                   t, s, &f), 0);
	const char *bad[] = {
		"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", /* uppercase */
		"00-00000000000000000000000000000000-b7ad6b7169203331-01", /* zero trace */
		"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", /* zero span */
		"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", /* version ff */
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x", /* v00 extra */
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333",
		"garbage",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(traceparent_parse(bad[i], strlen(bad[i]), t, s, &f) != 0, "%s", bad[i]);
	const char *future = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-whatever";
	ck_assert_int_eq(traceparent_parse(future, strlen(future), t, s, &f), 0);
}
END_TEST

/* ------------------------------------------------------------------ hmap */

START_TEST(hmap_against_array)
{
	struct hmap m;
	static void *ref[5000];
	uint32_t x = 12345;

	hmap_init(&m);
	for (int round = 0; round < 200000; round++) {
		x = x * 1103515245u + 12345u;
		uint64_t k = (x >> 8) % 5000;
		void *v = (void *)(uintptr_t)(round + 1);
		if ((x >> 4) & 1) {
			ck_assert_int_eq(hmap_put(&m, k, v), 0);
			ref[k] = v;
		} else {
			ck_assert_ptr_eq(hmap_del(&m, k), ref[k]);
			ref[k] = NULL;
		}
		if (round % 997 == 0) {
			size_t n = 0;
			for (int i = 0; i < 5000; i++) {
				ck_assert_ptr_eq(hmap_get(&m, (uint64_t)i), ref[i]);
				n += ref[i] != NULL;
			}
			ck_assert_uint_eq(n, m.n);
		}
	}
	hmap_free(&m);
}
END_TEST

/* ------------------------------------------------------------- pipeline */

struct collected {
	struct span *s[64];
	int n;
};

static void collect(void *ctx, struct span *s)
{
	struct collected *c = ctx;
	if (c->n < 64)
		c->s[c->n++] = span_ref(s);
}

static struct config cfg;
static struct metrics *metrics;
static struct host *host;
static struct pipeline *pl;
static struct collected got;
static struct span_sink sink = {.name = "test", .emit = collect, .ctx = &got};

static void pipeline_setup(const char *yaml)
{
	struct host_opts ho = {.struct_size = sizeof(ho)};
	struct pipeline_opts po = {.struct_size = sizeof(po)};
	char err[256];

	config_init(&cfg);
	if (yaml)
		ck_assert_msg(config_load_string(&cfg, yaml, strlen(yaml), "t.yaml", err, sizeof(err)) == 0,
		              "%s", err);
	metrics = metrics_new();
	ck_assert_ptr_nonnull(metrics);
	ho.cfg = &cfg;
	ho.metrics = metrics;
	host = host_new(&ho);
	ck_assert_ptr_nonnull(host);
	plugins_add_dir(host_plugins(host), SONDE_FIXTURE_DIR);
	plugins_scan(host_plugins(host), false);
	ck_assert_ptr_nonnull(plugins_find_proto(host_plugins(host), "pingpong"));
	po.cfg = &cfg;
	po.host = host;
	po.replay = true; /* no /proc, no kernel */
	pl = pipeline_new(&po, err, sizeof(err));
	ck_assert_msg(pl != NULL, "%s", err);
	memset(&got, 0, sizeof(got));
	host_add_sink(host, &sink);
}

static void pipeline_teardown(void)
{
	pipeline_close_all(pl, 0);
	host_clear_sinks(host);
	pipeline_free(pl);
	host_free(host);
	metrics_free(metrics);
	config_free(&cfg);
	for (int i = 0; i < got.n; i++)
		span_unref(got.s[i]);
	got.n = 0;
}

/* What the old single agent struct exposed, now from the modules. */
static uint64_t gaps(void)
{
	return conns_counters(pipeline_conns(pl))->gaps;
}

static void watch_as_first_service(uint32_t tgid)
{
	struct procs *ps = pipeline_procs(pl);

	ck_assert_ptr_nonnull(procs_watch(ps, tgid, procs_service(ps, 0)));
}

static void ev_open(uint64_t gen, uint32_t tgid, uint8_t role, uint16_t lport, uint16_t rport)
{
	struct sonde_ev_conn ev;
	memset(&ev, 0, sizeof(ev));
	ev.h.type = SONDE_EV_CONN_OPEN;
	ev.h.tgid = tgid;
	ev.h.tid = tgid;
	ev.h.fd = 5;
	ev.h.ts_ns = 1000;
	ev.gen = gen;
	ev.role = role;
	ev.t.family = AF_INET;
	ev.t.lport = lport;
	ev.t.rport = rport;
	ev.t.laddr[10] = ev.t.laddr[11] = 0xff;
	ev.t.laddr[12] = 127;
	ev.t.laddr[15] = 1;
	memcpy(ev.t.raddr, ev.t.laddr, 16);
	pipeline_handle(pl, &ev, sizeof(ev));
}

static void ev_data(uint64_t gen, uint32_t tgid, uint32_t tid, uint8_t dir, uint8_t src,
                    uint64_t pos, const char *bytes, uint64_t ts)
{
	uint8_t buf[sizeof(struct sonde_ev_data) + 256];
	struct sonde_ev_data *ev = (void *)buf;
	size_t n = strlen(bytes);

	memset(buf, 0, sizeof(buf));
	ev->h.type = SONDE_EV_DATA;
	ev->h.tgid = tgid;
	ev->h.tid = tid;
	ev->h.ts_ns = ts;
	ev->gen = gen;
	ev->pos = pos;
	ev->len = ev->cap_len = (uint32_t)n;
	ev->dir = dir;
	ev->source = src;
	memcpy(ev->data, bytes, n);
	pipeline_handle(pl, buf, sizeof(*ev) + n);
}

/* A process found gone is forgotten at the next sweep, not at once: its
 * records may still be in the ring (a curl that exited during a burst). */
START_TEST(sweep_keeps_a_gone_process_one_round)
{
	struct config c;
	struct procs_opts o = {0};
	struct procs *ps;
	char err[256];
	pid_t child = fork();

	ck_assert_int_ge(child, 0);
	if (child == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(child, NULL, 0), child);
	config_init(&c);
	ck_assert_int_eq(config_load_string(&c, "services:\n  - name: s\n    open_ports: [1]\n",
	                                    strlen("services:\n  - name: s\n    open_ports: [1]\n"),
	                                    "t.yaml", err, sizeof(err)), 0);
	o.cfg = &c;
	ps = procs_new(&o, err, sizeof(err));
	ck_assert_ptr_nonnull(ps);
	ck_assert_ptr_nonnull(procs_watch(ps, (uint32_t)child, procs_service(ps, 0)));
	ck_assert_ptr_nonnull(procs_watch(ps, (uint32_t)getpid(), procs_service(ps, 0)));
	procs_sweep(ps);
	ck_assert_uint_eq(procs_count(ps), 2); /* gone, but kept one round */
	procs_sweep(ps);
	ck_assert_uint_eq(procs_count(ps), 1); /* still gone: forgotten */
	procs_sweep(ps);
	ck_assert_uint_eq(procs_count(ps), 1); /* the living one stays */
	procs_free(ps);
	config_free(&c);
}
END_TEST

START_TEST(pipeline_server_span)
{
	pipeline_setup(NULL);
	ev_open(1, 100, SONDE_EV_ROLE_SERVER, 7000, 40000);
	ev_data(1, 100, 100, SONDE_EV_DIR_INGRESS, 0, 0, "PING\n", 2000);
	ev_data(1, 100, 100, SONDE_EV_DIR_EGRESS, 0, 0, "PONG\n", 5000);
	ev_data(1, 100, 100, SONDE_EV_DIR_INGRESS, 0, 5, "PING\n", 6000);
	ev_data(1, 100, 100, SONDE_EV_DIR_EGRESS, 0, 5, "PONG\n", 9000);
	ck_assert_int_eq(got.n, 2);
	ck_assert_int_eq(got.s[0]->kind, SONDE_SPAN_SERVER);
	ck_assert_uint_eq(got.s[0]->end_unix_ns - got.s[0]->start_unix_ns, 3000);
	ck_assert_str_eq(got.s[0]->scope, "pingpong");
	const struct attr *a = attr_find(&got.s[0]->attrs, "fixture.peer");
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->v.s, "127.0.0.1");
	ck_assert_uint_eq(gaps(), 0);
	pipeline_teardown();
}
END_TEST

START_TEST(pipeline_gap_flag)
{
	pipeline_setup(NULL);
	ev_open(1, 100, SONDE_EV_ROLE_SERVER, 7000, 40000);
	ev_data(1, 100, 100, SONDE_EV_DIR_INGRESS, 0, 0, "PING\n", 2000);
	ev_data(1, 100, 100, SONDE_EV_DIR_INGRESS, 0, 50, "PING\n", 3000); /* 45 bytes lost */
	ck_assert_uint_eq(gaps(), 1);
	pipeline_teardown();
}
END_TEST

START_TEST(pipeline_service_enablement)
{
	/* pingpong is not enabled for this service: it must never see bytes. */
	pipeline_setup("services:\n  - name: web\n    pids: [100]\n    protocols: [http]\n");
	watch_as_first_service(100);
	ev_open(1, 100, SONDE_EV_ROLE_SERVER, 7000, 40000);
	ev_data(1, 100, 100, SONDE_EV_DIR_INGRESS, 0, 0, "PING\n", 2000);
	ev_data(1, 100, 100, SONDE_EV_DIR_EGRESS, 0, 0, "PONG\n", 3000);
	ck_assert_int_eq(got.n, 0);
	pipeline_teardown();

	pipeline_setup("services:\n  - name: web\n    pids: [100]\n    protocols: [http, pingpong]\n");
	watch_as_first_service(100);
	ev_open(1, 100, SONDE_EV_ROLE_SERVER, 7000, 40000);
	ev_data(1, 100, 100, SONDE_EV_DIR_INGRESS, 0, 0, "PING\n", 2000);
	ev_data(1, 100, 100, SONDE_EV_DIR_EGRESS, 0, 0, "PONG\n", 3000);
	ck_assert_int_eq(got.n, 1);
	ck_assert_str_eq(got.s[0]->res->service_name, "web");
	pipeline_teardown();
}
END_TEST

START_TEST(pipeline_tls_ciphertext_dropped)
{
	pipeline_setup(NULL);
	ev_open(1, 100, SONDE_EV_ROLE_SERVER, 7443, 40000);
	/* a TLS ClientHello on the socket, then plaintext from the uprobes */
	ev_data(1, 100, 100, SONDE_EV_DIR_INGRESS, 0, 0, "\x16\x03\x01\x02\x00", 1000);
	ev_data(1, 100, 100, SONDE_EV_DIR_INGRESS, 1, 0, "PING\n", 2000);
	ev_data(1, 100, 100, SONDE_EV_DIR_EGRESS, 0, 0, "\x17\x03\x03\x00\x20", 2500);
	ev_data(1, 100, 100, SONDE_EV_DIR_EGRESS, 1, 0, "PONG\n", 3000);
	ck_assert_int_eq(got.n, 1);
	ck_assert_uint_eq(gaps(), 0);
	pipeline_teardown();
}
END_TEST

START_TEST(pipeline_client_child_of_server_on_same_thread)
{
	pipeline_setup(NULL);
	ev_open(1, 100, SONDE_EV_ROLE_SERVER, 7000, 40000); /* incoming */
	ev_open(2, 100, SONDE_EV_ROLE_CLIENT, 41000, 7001); /* outgoing */
	ev_data(1, 100, 101, SONDE_EV_DIR_INGRESS, 0, 0, "PING\n", 1000);
	ev_data(2, 100, 101, SONDE_EV_DIR_EGRESS, 0, 0, "PING\n", 2000);
	ev_data(2, 100, 101, SONDE_EV_DIR_INGRESS, 0, 0, "PONG\n", 3000);
	ev_data(1, 100, 101, SONDE_EV_DIR_EGRESS, 0, 0, "PONG\n", 4000);
	ck_assert_int_eq(got.n, 2);
	struct span *client = got.s[0], *server = got.s[1];
	ck_assert_int_eq(client->kind, SONDE_SPAN_CLIENT);
	ck_assert_int_eq(server->kind, SONDE_SPAN_SERVER);
	ck_assert_mem_eq(client->trace_id, server->trace_id, 16);
	ck_assert_mem_eq(client->parent_span_id, server->span_id, 8);
	/* on another thread there is no parent */
	ev_data(2, 100, 555, SONDE_EV_DIR_EGRESS, 0, 5, "PING\n", 5000);
	ev_data(2, 100, 555, SONDE_EV_DIR_INGRESS, 0, 5, "PONG\n", 6000);
	ck_assert_int_eq(got.n, 3);
	static const uint8_t zero[8];
	ck_assert_mem_eq(got.s[2]->parent_span_id, zero, 8);
	pipeline_teardown();
}
END_TEST

START_TEST(pipeline_open_span_dropped_at_close)
{
	pipeline_setup(NULL);
	ev_open(1, 100, SONDE_EV_ROLE_SERVER, 7000, 40000);
	ev_data(1, 100, 100, SONDE_EV_DIR_INGRESS, 0, 0, "PING\n", 2000);
	struct sonde_ev_conn ev;
	memset(&ev, 0, sizeof(ev));
	ev.h.type = SONDE_EV_CONN_CLOSE;
	ev.h.tgid = 100;
	ev.gen = 1;
	pipeline_handle(pl, &ev, sizeof(ev));
	ck_assert_int_eq(got.n, 0);
	ck_assert_uint_eq(conns_count(pipeline_conns(pl)), 0);
	pipeline_teardown();
}
END_TEST

/* Regression: loading a plugin while connections are owned must not move
 * the protocol entries they point at (was a use-after-free on drop-in). */
START_TEST(pipeline_drop_in_while_owned)
{
	pipeline_setup(NULL);
	ev_open(1, 100, SONDE_EV_ROLE_SERVER, 7000, 40000);
	ev_data(1, 100, 100, SONDE_EV_DIR_INGRESS, 0, 0, "PING\n", 2000);
	plugins_add_dir(host_plugins(host), SONDE_FIXTURE_EXTRA_DIR);
	ck_assert_int_eq(plugins_scan(host_plugins(host), false), 1);
	ck_assert_ptr_nonnull(plugins_find_proto(host_plugins(host), "second"));
	ev_data(1, 100, 100, SONDE_EV_DIR_EGRESS, 0, 0, "PONG\n", 3000);
	ck_assert_int_eq(got.n, 1);
	ck_assert_str_eq(got.s[0]->scope, "pingpong");
	pipeline_teardown();
}
END_TEST

START_TEST(pipeline_garbage_records)
{
	uint8_t buf[512];
	uint32_t x = 99;

	pipeline_setup(NULL);
	ev_open(1, 100, SONDE_EV_ROLE_SERVER, 7000, 40000);
	for (int i = 0; i < 20000; i++) {
		size_t n = 0;
		x = x * 1664525u + 1013904223u;
		n = x % sizeof(buf);
		for (size_t k = 0; k < n; k++) {
			x = x * 1664525u + 1013904223u;
			buf[k] = (uint8_t)(x >> 24);
		}
		if (n >= 4)
			buf[0] = (uint8_t)(1 + (x % 7)), buf[1] = buf[2] = buf[3] = 0;
		pipeline_handle(pl, buf, n);
	}
	pipeline_teardown();
}
END_TEST

/* No global host: two hosts in one process keep their plugins, counters,
 * connections and spans apart. */
START_TEST(two_hosts_in_one_process)
{
	struct collected a = {0}, b = {0};
	struct span_sink sa = {.name = "a", .emit = collect, .ctx = &a};
	struct span_sink sb = {.name = "b", .emit = collect, .ctx = &b};
	struct metrics *ma = metrics_new(), *mb = metrics_new();
	struct host_opts oa = {.struct_size = sizeof(oa), .metrics = ma};
	struct host_opts ob = {.struct_size = sizeof(ob), .metrics = mb};
	struct host *ha = host_new(&oa), *hb = host_new(&ob);
	struct host_conn_desc d;
	struct sonde_chunk ch = {.struct_size = sizeof(ch)};

	ck_assert_ptr_nonnull(ha);
	ck_assert_ptr_nonnull(hb);
	plugins_add_dir(host_plugins(ha), SONDE_FIXTURE_DIR);
	plugins_add_dir(host_plugins(hb), SONDE_FIXTURE_DIR);
	ck_assert_int_eq(plugins_scan(host_plugins(ha), false), 1);
	ck_assert_int_eq(plugins_scan(host_plugins(hb), false), 1);
	host_add_sink(ha, &sa);
	host_add_sink(hb, &sb);
	memset(&d, 0, sizeof(d));
	d.info.struct_size = sizeof(d.info);
	d.info.role = SONDE_ROLE_SERVER;
	d.info.service_name = d.info.exe_name = "x";
	struct sonde_conn *ca = host_conn_new(ha, &d), *cb = host_conn_new(hb, &d);
	for (int i = 0; i < 3; i++) {
		ch.dir = SONDE_DIR_INGRESS;
		ch.data = (const uint8_t *)"PING\n";
		ch.len = ch.orig_len = 5;
		ch.ts_unix_ns = 1000 + i;
		host_conn_data(ca, &ch);
		if (i == 0)
			host_conn_data(cb, &ch);
		ch.dir = SONDE_DIR_EGRESS;
		ch.data = (const uint8_t *)"PONG\n";
		host_conn_data(ca, &ch);
		if (i == 0)
			host_conn_data(cb, &ch);
	}
	ck_assert_int_eq(a.n, 3);
	ck_assert_int_eq(b.n, 1);
	ck_assert_uint_eq(host_counters(ha)->spans, 3);
	ck_assert_uint_eq(host_counters(hb)->spans, 1);
	host_conn_close(ca, 0);
	host_conn_close(cb, 0);
	host_free(ha);
	host_free(hb);
	metrics_free(ma);
	metrics_free(mb);
	for (int i = 0; i < a.n; i++)
		span_unref(a.s[i]);
	for (int i = 0; i < b.n; i++)
		span_unref(b.s[i]);
}
END_TEST

Suite *core_suite(void)
{
	Suite *s = suite_create("core");
	TCase *t = tcase_create("loader");
	tcase_add_test(t, loader_refuses_bad_files_and_keeps_good);
	tcase_add_test(t, abi_check_rules);
	suite_add_tcase(s, t);
	t = tcase_create("trace");
	tcase_add_test(t, traceparent_cases);
	suite_add_tcase(s, t);
	t = tcase_create("hmap");
	tcase_add_test(t, hmap_against_array);
	suite_add_tcase(s, t);
	t = tcase_create("procs");
	tcase_add_test(t, sweep_keeps_a_gone_process_one_round);
	suite_add_tcase(s, t);
	t = tcase_create("pipeline");
	tcase_add_test(t, pipeline_server_span);
	tcase_add_test(t, pipeline_gap_flag);
	tcase_add_test(t, pipeline_service_enablement);
	tcase_add_test(t, pipeline_tls_ciphertext_dropped);
	tcase_add_test(t, pipeline_client_child_of_server_on_same_thread);
	tcase_add_test(t, pipeline_open_span_dropped_at_close);
	tcase_add_test(t, pipeline_drop_in_while_owned);
	tcase_add_test(t, pipeline_garbage_records);
	tcase_add_test(t, two_hosts_in_one_process);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(core_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
