/*
 * go_plugin_test.c - the Go runtime plugin through the real host (the test
 * host): what it does on a host without the runtime-plugin calls, with
 * processes (Go or not, stripped or not: real processes started here), and
 * with the records its BPF programs write: plaintext injected into the
 * host's connection for (pid, fd) and parsed by the real HTTP plugin
 * (build/plugins/http.so), goroutine links, and bad records.
 *
 * The kernel side is not here (the test host has none: bpf_load answers
 * UNSUPPORTED); tests/live/test_go.py runs it.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sonde/plugin.h>

#include "go_plugin.h"
#include "go_rec.h"
#include "go_test_util.h"
#include "testhost.h"

const struct sonde_plugin *sonde_plugin_entry(void); /* the Go plugin, linked in */

#define PID 4242
#define FD 7

/* --- helpers ------------------------------------------------------------------ */

static const struct sonde_plugin *http_desc(void)
{
	static void *dl;
	sonde_plugin_entry_fn fn;

	if (!dl)
		dl = dlopen(HTTP_PLUGIN_SO, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(dl != NULL, "%s: %s", HTTP_PLUGIN_SO, dlerror());
	fn = (sonde_plugin_entry_fn)dlsym(dl, SONDE_PLUGIN_ENTRY_SYMBOL);
	ck_assert_ptr_nonnull(fn);
	return fn();
}

/* A plaintext record as go.bpf.c writes it. */
static size_t data_rec(uint8_t *buf, uint32_t base, uint32_t fd, uint64_t ts, int dir,
		       const char *bytes, uint32_t cap_len, uint32_t len, uint64_t ctx, uint64_t pos,
		       uint8_t flags)
{
	struct go_rec_data *r = (struct go_rec_data *)buf;

	memset(r, 0, sizeof(*r));
	r->h.type = base + GO_REC_DATA;
	r->h.tgid = PID;
	r->h.tid = PID + 1;
	r->h.fd = fd;
	r->h.ts_ns = ts;
	r->goid = ctx;
	r->ctx = ctx;
	r->conn = 0xc000100000ull;
	r->pos = pos;
	r->len = len;
	r->cap_len = cap_len;
	r->dir = (uint8_t)dir;
	r->flags = flags;
	memcpy(r->data, bytes, cap_len);
	return sizeof(*r) + cap_len;
}

static size_t go_rec(uint8_t *buf, uint32_t type, uint64_t goid, uint64_t parent)
{
	struct go_rec_go *r = (struct go_rec_go *)buf;

	memset(r, 0, sizeof(*r));
	r->h.type = type;
	r->h.tgid = PID;
	r->goid = goid;
	r->parent = parent;
	return sizeof(*r);
}

/* The HTTP plugin owns the host's connections; the Go plugin runs in the
 * same host through the plugin handle the host gave (so its conn_lookup
 * and conn_inject reach those connections), fed records directly. */
struct pair {
	struct th_host *h;
	const struct sonde_plugin *go;
	void *go_state;
	uint32_t base;
};

static void pair_open(struct pair *p)
{
	p->h = th_new();
	ck_assert_int_eq(th_load(p->h, http_desc(), "http"), SONDE_OK);
	p->go = sonde_plugin_entry();
	ck_assert_int_eq(p->go->init(th_api(p->h), th_self(p->h), &p->go_state), SONDE_OK);
	p->base = go_debug_rec_base();
	ck_assert_uint_ge(p->base, SONDE_RECORD_PLUGIN_FIRST);
}

static void pair_close(struct pair *p)
{
	p->go->fini(p->go_state);
	ck_assert_uint_eq(th_misuse(p->h), 0);
	th_free(p->h);
}

static struct th_conn *server_conn(struct pair *p, uint32_t fd)
{
	struct sonde_conn_info ci;
	struct th_conn *c;

	th_conn_info_init(&ci, SONDE_ROLE_SERVER);
	ci.pid = PID;
	ci.local_port = 8443;
	c = th_conn_open(p->h, &ci);
	ck_assert_ptr_nonnull(c);
	th_conn_set_fd(c, fd);
	return c;
}

static void feed(struct pair *p, const uint8_t *rec, size_t len)
{
	p->go->record(p->go_state, rec, len);
}

static const char req[] = "GET /req/17 HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\n\r\n";
static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

/* --- hosts that cannot run it ---------------------------------------------------- */

START_TEST(refused_by_a_host_without_runtime_calls)
{
	struct th_host *h = th_new();
	struct sonde_host_api old;
	void *state = NULL;

	ck_assert_int_eq(th_load(h, http_desc(), "http"), SONDE_OK);
	/* A 1.0 host: the table ends before the 1.1 calls. */
	memcpy(&old, th_api(h), sizeof(old));
	old.abi_minor = 0;
	old.struct_size = offsetof(struct sonde_host_api, span_start_v2);
	ck_assert_int_eq(sonde_plugin_entry()->init(&old, th_self(h), &state), SONDE_ERR_UNSUPPORTED);
	ck_assert_ptr_null(state);
	ck_assert_uint_eq(th_n_logs(h, SONDE_LOG_WARN), 1);
	th_free(h);
}
END_TEST

START_TEST(loads_on_the_test_host)
{
	struct th_host *h = th_new();

	ck_assert_int_eq(th_load(h, sonde_plugin_entry(), NULL), SONDE_OK);
	ck_assert_uint_ge(go_debug_rec_base(), SONDE_RECORD_PLUGIN_FIRST);
	/* The types are claimed: a record of them reaches the plugin. */
	{
		uint8_t buf[64];
		size_t n = go_rec(buf, go_debug_rec_base() + GO_REC_GO_NEW, 5, 1);

		ck_assert_int_eq(th_plugin_record(h, buf, n), 1);
		ck_assert_uint_eq(go_debug_counters()->links, 1);
		n = go_rec(buf, go_debug_rec_base() + GO_REC_COUNT, 5, 1);
		ck_assert_int_eq(th_plugin_record(h, buf, n), 0);
	}
	th_free(h);
	ck_assert_ptr_null(go_debug_counters());
}
END_TEST

/* --- processes ---------------------------------------------------------------------- */

static pid_t spawn(const char *path)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execl(path, path, "127.0.0.1:0", (char *)NULL);
		_exit(127);
	}
	usleep(200000); /* exec'd: /proc/PID/exe is the Go binary */
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

START_TEST(processes_each_get_one_verdict)
{
	struct th_host *h = th_new();
	const char *plain = gt_binary("plain", ""), *stripped = gt_binary("tlsserver_stripped", "");
	pid_t a, b;

	ck_assert_ptr_nonnull(plain);
	ck_assert_ptr_nonnull(stripped);
	ck_assert_int_eq(th_load(h, sonde_plugin_entry(), NULL), SONDE_OK);
	/* Not Go (this test program): nothing said, nothing counted. */
	th_process_new(h, (uint32_t)getpid(), "/proc/self/exe");
	ck_assert_uint_eq(th_n_logs(h, SONDE_LOG_WARN), 0);
	ck_assert_uint_eq(th_n_logs(h, SONDE_LOG_INFO), 0);
	ck_assert_uint_eq(go_debug_counters()->procs_refused, 0);
	/* A stripped Go program: one warning, with the reason. */
	a = spawn(stripped);
	th_process_new(h, (uint32_t)a, stripped);
	ck_assert_uint_eq(th_n_logs(h, SONDE_LOG_WARN), 1);
	ck_assert_uint_eq(th_n_logs(h, SONDE_LOG_INFO), 0); /* the host adds nothing */
	ck_assert_uint_eq(go_debug_counters()->procs_refused, 1);
	/* A Go program that could be instrumented, on a host without a kernel:
	 * the object cannot load (said once), the process is refused. */
	b = spawn(plain);
	th_process_new(h, (uint32_t)b, plain);
	ck_assert_uint_eq(go_debug_counters()->procs_refused, 2);
	ck_assert_uint_eq(go_debug_counters()->procs_ok, 0);
	ck_assert_uint_eq(th_n_logs(h, SONDE_LOG_WARN), 2);
	th_process_gone(h, (uint32_t)a);
	th_process_gone(h, (uint32_t)b);
	reap(a);
	reap(b);
	th_free(h);
}
END_TEST

/* --- records -------------------------------------------------------------------------- */

START_TEST(plaintext_becomes_an_https_server_span)
{
	struct pair p;
	uint8_t buf[sizeof(struct go_rec_data) + 256];
	const struct th_span *s;
	int64_t status;

	pair_open(&p);
	server_conn(&p, FD);
	feed(&p, buf, data_rec(buf, p.base, FD, 1000000, 0, req, sizeof(req) - 1, sizeof(req) - 1, 19, 0, 0));
	feed(&p, buf, data_rec(buf, p.base, FD, 3000000, 1, resp, sizeof(resp) - 1, sizeof(resp) - 1, 19, 0, 0));
	ck_assert_uint_eq(th_n_ended(p.h), 1);
	s = th_ended(p.h, 0);
	ck_assert_int_eq(s->kind, SONDE_SPAN_SERVER);
	ck_assert_str_eq(th_span_str(s, "url.path"), "/req/17");
	ck_assert_str_eq(th_span_str(s, "url.scheme"), "https");
	ck_assert_int_eq(th_span_int(s, "http.response.status_code", &status), 0);
	ck_assert_int_eq(status, 200);
	/* Kernel time + the clock offset: the duration is the records'. */
	ck_assert_uint_eq(s->end_ns - s->start_ns, 2000000);
	ck_assert_uint_eq(s->tid, PID + 1);
	ck_assert_uint_eq(go_debug_counters()->injected, 2);
	ck_assert_uint_eq(go_debug_counters()->no_conn, 0);
	pair_close(&p);
}
END_TEST

/* Go may return a request in any number of Read calls: split at every byte. */
START_TEST(plaintext_split_at_every_byte)
{
	const size_t n = sizeof(req) - 1;

	for (size_t k = 1; k < n; k++) {
		struct pair p;
		uint8_t buf[sizeof(struct go_rec_data) + 256];

		pair_open(&p);
		server_conn(&p, FD);
		feed(&p, buf, data_rec(buf, p.base, FD, 1000, 0, req, (uint32_t)k, (uint32_t)k, 19, 0, 0));
		feed(&p, buf, data_rec(buf, p.base, FD, 2000, 0, req + k, (uint32_t)(n - k),
				       (uint32_t)(n - k), 19, k, 0));
		for (size_t r = 0; r < sizeof(resp) - 1; r++) /* and the answer byte by byte */
			feed(&p, buf, data_rec(buf, p.base, FD, 3000 + r, 1, resp + r, 1, 1, 19, r, 0));
		ck_assert_msg(th_n_ended(p.h) == 1, "split at %zu", k);
		ck_assert_str_eq(th_span_str(th_ended(p.h, 0), "url.path"), "/req/17");
		pair_close(&p);
	}
}
END_TEST

/* A body larger than the copy cap arrives truncated (len > cap_len): the
 * HTTP plugin skips it by count and the next request still parses. */
START_TEST(truncated_plaintext_keeps_the_stream)
{
	static char big[600];
	struct pair p;
	uint8_t buf[sizeof(struct go_rec_data) + 1024];
	const char *hdr = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";

	pair_open(&p);
	server_conn(&p, FD);
	feed(&p, buf, data_rec(buf, p.base, FD, 1000, 0, req, sizeof(req) - 1, sizeof(req) - 1, 19, 0, 0));
	memset(big, 'x', sizeof(big));
	memcpy(big, hdr, strlen(hdr));
	feed(&p, buf, data_rec(buf, p.base, FD, 2000, 1, big, sizeof(big),
			       (uint32_t)(strlen(hdr) + 100000), 19, 0, 0));
	ck_assert_uint_eq(th_n_ended(p.h), 1);
	feed(&p, buf, data_rec(buf, p.base, FD, 3000, 0, req, sizeof(req) - 1, sizeof(req) - 1, 19,
			       sizeof(req) - 1, 0));
	feed(&p, buf, data_rec(buf, p.base, FD, 4000, 1, resp, sizeof(resp) - 1, sizeof(resp) - 1, 19,
			       strlen(hdr) + 100000, 0));
	ck_assert_uint_eq(th_n_ended(p.h), 2);
	pair_close(&p);
}
END_TEST

/* Records lost in the kernel: the next one says so (GAP), and the HTTP
 * plugin does not pair a response with a request it did not see whole. */
START_TEST(lost_plaintext_is_a_gap)
{
	struct pair p;
	uint8_t buf[sizeof(struct go_rec_data) + 256];

	pair_open(&p);
	server_conn(&p, FD);
	/* The first half of a request, then a loss. */
	feed(&p, buf, data_rec(buf, p.base, FD, 1000, 0, req, 10, 10, 19, 0, 0));
	feed(&p, buf, data_rec(buf, p.base, FD, 3000, 1, resp, sizeof(resp) - 1, sizeof(resp) - 1, 19,
			       0, GO_RECF_GAP));
	ck_assert_uint_eq(th_n_ended(p.h), 0);
	/* A clean request/response afterwards is followed again. */
	feed(&p, buf, data_rec(buf, p.base, FD, 4000, 0, req, sizeof(req) - 1, sizeof(req) - 1, 19,
			       100, GO_RECF_GAP));
	feed(&p, buf, data_rec(buf, p.base, FD, 5000, 1, resp, sizeof(resp) - 1, sizeof(resp) - 1, 19,
			       200, 0));
	ck_assert_uint_eq(th_n_ended(p.h), 1);
	ck_assert_uint_eq(th_ended(p.h, 0)->start_ns + 1000, th_ended(p.h, 0)->end_ns);
	pair_close(&p);
}
END_TEST

START_TEST(plaintext_of_an_unknown_socket_is_counted)
{
	struct pair p;
	uint8_t buf[sizeof(struct go_rec_data) + 256];

	pair_open(&p);
	server_conn(&p, FD);
	feed(&p, buf, data_rec(buf, p.base, FD + 1, 1000, 0, req, sizeof(req) - 1, sizeof(req) - 1,
			       19, 0, 0));
	ck_assert_uint_eq(go_debug_counters()->no_conn, 1);
	ck_assert_uint_eq(go_debug_counters()->injected, 0);
	ck_assert_uint_eq(th_n_spans(p.h), 0);
	pair_close(&p);
}
END_TEST

START_TEST(bad_records_are_counted_and_ignored)
{
	struct pair p;
	uint8_t buf[sizeof(struct go_rec_data) + 256];
	size_t n;

	pair_open(&p);
	server_conn(&p, FD);
	/* Shorter than its header, than its payload, cap_len > len, a bad
	 * direction, a cap_len beyond the maximum, an unknown type. */
	n = data_rec(buf, p.base, FD, 1000, 0, req, 20, 20, 19, 0, 0);
	feed(&p, buf, 10);
	feed(&p, buf, sizeof(struct go_rec_data) - 1);
	feed(&p, buf, n - 1);
	n = data_rec(buf, p.base, FD, 1000, 0, req, 20, 10, 19, 0, 0);
	feed(&p, buf, n);
	n = data_rec(buf, p.base, FD, 1000, 2, req, 20, 20, 19, 0, 0);
	feed(&p, buf, n);
	((struct go_rec_data *)buf)->dir = 0;
	((struct go_rec_data *)buf)->cap_len = GO_MAX_PAYLOAD + 1;
	((struct go_rec_data *)buf)->len = GO_MAX_PAYLOAD + 1;
	feed(&p, buf, n);
	n = go_rec(buf, p.base + GO_REC_COUNT, 1, 2);
	feed(&p, buf, n);
	/* Goroutine records: zero ids, a goroutine its own parent, short. */
	feed(&p, buf, go_rec(buf, p.base + GO_REC_GO_NEW, 0, 1));
	feed(&p, buf, go_rec(buf, p.base + GO_REC_GO_NEW, 3, 0));
	feed(&p, buf, go_rec(buf, p.base + GO_REC_GO_NEW, 3, 3));
	feed(&p, buf, go_rec(buf, p.base + GO_REC_GO_END, 0, 0));
	n = go_rec(buf, p.base + GO_REC_GO_NEW, 3, 1);
	feed(&p, buf, n - 1);
	feed(&p, NULL, 0);
	ck_assert_uint_eq(go_debug_counters()->bad, 13);
	ck_assert_uint_eq(go_debug_counters()->injected, 0);
	ck_assert_uint_eq(go_debug_counters()->links, 0);
	ck_assert_uint_eq(th_n_spans(p.h), 0);
	/* Good ones still work after all that. */
	feed(&p, buf, go_rec(buf, p.base + GO_REC_GO_NEW, 3, 1));
	feed(&p, buf, go_rec(buf, p.base + GO_REC_GO_END, 3, 0));
	ck_assert_uint_eq(go_debug_counters()->links, 1);
	ck_assert_uint_eq(go_debug_counters()->ends, 1);
	pair_close(&p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("go_plugin");
	TCase *tc = tcase_create("plugin");
	SRunner *sr;
	int failed;

	gt_setup();
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, refused_by_a_host_without_runtime_calls);
	tcase_add_test(tc, loads_on_the_test_host);
	tcase_add_test(tc, processes_each_get_one_verdict);
	tcase_add_test(tc, plaintext_becomes_an_https_server_span);
	tcase_add_test(tc, plaintext_split_at_every_byte);
	tcase_add_test(tc, truncated_plaintext_keeps_the_stream);
	tcase_add_test(tc, lost_plaintext_is_a_gap);
	tcase_add_test(tc, plaintext_of_an_unknown_socket_is_counted);
	tcase_add_test(tc, bad_records_are_counted_and_ignored);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
