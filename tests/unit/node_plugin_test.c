/*
 * node_plugin_test.c - the Node.js runtime plugin through the real host
 * (the test host), with the real HTTP plugin (build/plugins/http.so):
 *
 *   - hosts that cannot run it, its record-type claim, its settings;
 *   - processes: not Node (nothing said), Node without a kernel (one line,
 *     no signal sent: the real node process started here keeps its
 *     inspector closed), Node with `inspector: false`;
 *   - records: bad ones and registrations nobody waits for are counted;
 *   - the contract with the host: chunks stamped with the keys the BPF
 *     programs copy from the script (one event-loop thread, many requests
 *     interleaved; a keep-alive connection re-keyed after each response; a
 *     call made after its request's response) parent every client span
 *     under its own request's server span, or under none, never another.
 *
 * The kernel side is not here (the test host has none: bpf_load answers
 * UNSUPPORTED); tests/live/test_node_ctx.py runs it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sonde/plugin.h>

#include "node_plugin.h"
#include "node_rec.h"
#include "testhost.h"

const struct sonde_plugin *sonde_plugin_entry(void); /* the Node plugin, linked in */

#define PID 5151
#define TID 5151 /* one event-loop thread serves everything */

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

/* The HTTP plugin owns the host's connections; the Node plugin runs in the
 * same host through the handle the host gave. */
struct pair {
	struct th_host *h;
	const struct sonde_plugin *node;
	void *state;
};

static void pair_open_with(struct pair *p, int inspector, const struct sonde_plugin *proto,
			   const char *name)
{
	p->h = th_new();
	if (!inspector) {
		const char *v[] = { "false" };

		ck_assert_int_eq(th_set_config(p->h, NULL, "inspector", v, 1), 0);
	}
	ck_assert_int_eq(th_load(p->h, proto, name), SONDE_OK);
	p->node = sonde_plugin_entry();
	ck_assert_int_eq(p->node->init(th_api(p->h), th_self(p->h), &p->state), SONDE_OK);
}

static void pair_open(struct pair *p, int inspector)
{
	pair_open_with(p, inspector, http_desc(), "http");
}

static void pair_close(struct pair *p)
{
	p->node->fini(p->state);
	ck_assert_uint_eq(th_misuse(p->h), 0);
	th_free(p->h);
}

/* --- hosts, claims, settings ------------------------------------------------------ */

START_TEST(refused_by_a_host_without_runtime_calls)
{
	struct th_host *h = th_new();
	struct sonde_host_api old;
	void *state = NULL;

	ck_assert_int_eq(th_load(h, http_desc(), "http"), SONDE_OK);
	memcpy(&old, th_api(h), sizeof(old));
	old.abi_minor = 0;
	old.struct_size = offsetof(struct sonde_host_api, span_start_v2);
	ck_assert_int_eq(sonde_plugin_entry()->init(&old, th_self(h), &state), SONDE_ERR_UNSUPPORTED);
	ck_assert_ptr_null(state);
	ck_assert_uint_eq(th_n_logs(h, SONDE_LOG_WARN), 1);
	th_free(h);
}
END_TEST

START_TEST(claims_its_record_type)
{
	struct pair p;

	pair_open(&p, 1);
	ck_assert_uint_ge(node_debug_rec_base(), SONDE_RECORD_PLUGIN_FIRST);
	ck_assert_ptr_nonnull(node_debug_counters());
	ck_assert_ptr_nonnull(strstr(node_script_text(), "SONDE-NODE-CTX1"));
	ck_assert_uint_eq(th_n_logs(p.h, SONDE_LOG_WARN), 0);
	pair_close(&p);
}
END_TEST

/* --- processes ---------------------------------------------------------------------- */

static int have_node(void)
{
	return system("node --version >/dev/null 2>&1") == 0;
}

/* A node server on a free port; its stderr into log. */
static pid_t node_server(const char *log)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	char port[16];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	pid_t pid;

	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	snprintf(port, sizeof(port), "%u", ntohs(a.sin_port));
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int o = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(o, 1);
		dup2(o, 2);
		execlp("node", "node", NODE_PEERS_DIR "/server.js", port, "1", "0", "1", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300; i++) {
		char buf[64] = "";
		FILE *f = fopen(log, "r");

		if (f && fgets(buf, sizeof(buf), f) && !strncmp(buf, "listening", 9)) {
			fclose(f);
			return pid;
		}
		if (f)
			fclose(f);
		usleep(50000);
	}
	ck_abort_msg("node did not start");
	return -1;
}

static void process_new(struct pair *p, uint32_t pid, const char *exe)
{
	struct sonde_process_info pi = { .struct_size = sizeof(pi), .pid = pid, .exe_path = exe,
					 .service_name = "svc" };

	ck_assert_int_ge(p->node->process_new(p->state, &pi), SONDE_ERR_NOENT);
}

START_TEST(a_process_that_is_not_node_says_nothing)
{
	struct pair p;

	pair_open(&p, 1);
	process_new(&p, (uint32_t)getpid(), "/proc/self/exe");
	ck_assert_uint_eq(th_run_timers(p.h, 1), 0); /* nothing queued */
	ck_assert_uint_eq(th_n_logs(p.h, SONDE_LOG_WARN), 0);
	ck_assert_uint_eq(th_n_logs(p.h, SONDE_LOG_INFO), 0);
	p.node->process_gone(p.state, (uint32_t)getpid());
	pair_close(&p);
}
END_TEST

START_TEST(node_without_a_kernel_gets_one_line_and_no_signal)
{
	char log[] = "/tmp/sonde-node-plugin-XXXXXX", text[4096] = "";
	struct pair p;
	pid_t pid;
	FILE *f;
	size_t n;

	ck_assert_msg(have_node(), "node (Debian's nodejs) is not installed");
	close(mkstemp(log));
	pid = node_server(log);
	pair_open(&p, 1);
	process_new(&p, (uint32_t)pid, "/usr/bin/node");
	ck_assert_uint_eq(th_n_logs(p.h, SONDE_LOG_WARN), 0); /* queued, said nothing yet */
	th_run_timers(p.h, 1ull << 62);
	/* one line about the BPF object (once for all), one for the process */
	ck_assert_uint_eq(th_n_logs(p.h, SONDE_LOG_INFO), 1);
	ck_assert_uint_eq(th_n_logs(p.h, SONDE_LOG_WARN), 1);
	ck_assert_uint_eq(node_debug_counters()->procs_refused, 1);
	ck_assert_uint_eq(node_debug_counters()->procs_ok, 0);
	/* nothing more to do: the timer is gone, a second process_new is quiet */
	ck_assert_uint_eq(th_run_timers(p.h, (1ull << 62) + 1), 0);
	process_new(&p, (uint32_t)pid, "/usr/bin/node");
	ck_assert_uint_eq(th_n_logs(p.h, SONDE_LOG_WARN), 1);
	p.node->process_gone(p.state, (uint32_t)pid);
	pair_close(&p);
	/* node never heard SIGUSR1: no inspector message, still running */
	usleep(200000);
	f = fopen(log, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = 0;
	fclose(f);
	ck_assert_ptr_null(strstr(text, "Debugger"));
	ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(log);
}
END_TEST

START_TEST(inspector_false_refuses_at_once)
{
	char log[] = "/tmp/sonde-node-plugin-XXXXXX";
	struct pair p;
	pid_t pid;

	ck_assert_msg(have_node(), "node (Debian's nodejs) is not installed");
	close(mkstemp(log));
	pid = node_server(log);
	pair_open(&p, 0);
	process_new(&p, (uint32_t)pid, "/usr/bin/node");
	ck_assert_uint_eq(th_n_logs(p.h, SONDE_LOG_WARN), 1);
	ck_assert_uint_eq(th_run_timers(p.h, 1), 0);
	ck_assert_uint_eq(node_debug_counters()->procs_refused, 1);
	pair_close(&p);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(log);
}
END_TEST

/* --- records ------------------------------------------------------------------------------ */

START_TEST(bad_and_stray_records_are_counted)
{
	struct pair p;
	struct node_rec_reg r;
	uint32_t base;

	pair_open(&p, 1);
	base = node_debug_rec_base();
	memset(&r, 0, sizeof(r));
	r.h.type = base + NODE_REC_REG;
	r.h.tgid = PID;
	r.h.tid = TID;
	r.slot = 0x7f0000001000;
	r.nonce = 42;
	r.nfd = 65536;
	p.node->record(p.state, &r, sizeof(r)); /* nobody waits for it */
	ck_assert_uint_eq(node_debug_counters()->regs_stray, 1);
	ck_assert_uint_eq(node_debug_counters()->regs, 0);
	p.node->record(p.state, &r, sizeof(r) - 1); /* short */
	r.nfd = NODE_NFD_MAX + 1;
	p.node->record(p.state, &r, sizeof(r)); /* a table too large */
	r.nfd = 1;
	r.slot = 0;
	p.node->record(p.state, &r, sizeof(r)); /* no buffer */
	r.h.type = base + NODE_REC_COUNT; /* not a type it claimed */
	p.node->record(p.state, &r, sizeof(r));
	p.node->record(p.state, &r, 4);
	ck_assert_uint_eq(node_debug_counters()->bad, 5);
	ck_assert_uint_eq(node_debug_counters()->regs_stray, 1);
	pair_close(&p);
}
END_TEST

/* An HTTP/2 client stream's key (SDK 1.2): given to the host for the
 * connection the process has on that fd, where the protocol plugin takes
 * it when the stream's span starts. Records of processes not followed,
 * for an fd the host does not know, short or with a zero stream or key are
 * counted and change nothing. */
START_TEST(h2_stream_records_reach_the_connection)
{
	const struct sonde_host_api *api;
	struct sonde_conn_info ci;
	struct node_rec_h2 r;
	struct th_conn *c;
	struct pair p;
	uint32_t base;

	pair_open(&p, 1);
	api = th_api(p.h);
	base = node_debug_rec_base();
	th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
	ci.pid = PID;
	c = th_conn_open(p.h, &ci);
	th_conn_set_fd(c, 23);
	memset(&r, 0, sizeof(r));
	r.h.type = base + NODE_REC_H2;
	r.h.tgid = PID;
	r.h.tid = TID;
	r.h.fd = 23;
	r.stream = 5;
	r.key = 77;
	p.node->record(p.state, &r, sizeof(r)); /* the process is not followed yet */
	ck_assert_uint_eq(node_debug_counters()->h2_stray, 1);
	ck_assert_uint_eq(api->conn_stream_context_take(th_conn_handle(c), 5), 0);
	ck_assert_int_eq(node_debug_set_active(PID), 0);
	p.node->record(p.state, &r, sizeof(r));
	r.stream = 7;
	r.key = 78;
	p.node->record(p.state, &r, sizeof(r));
	ck_assert_uint_eq(node_debug_counters()->h2_given, 2);
	r.h.fd = 24; /* no connection there */
	p.node->record(p.state, &r, sizeof(r));
	ck_assert_uint_eq(node_debug_counters()->h2_noconn, 1);
	r.h.fd = 23;
	r.stream = 0;
	p.node->record(p.state, &r, sizeof(r));
	r.stream = 9;
	r.key = 0;
	p.node->record(p.state, &r, sizeof(r));
	r.key = 1;
	r.stream = 0x80000001u; /* not a stream id */
	p.node->record(p.state, &r, sizeof(r));
	r.stream = 9;
	p.node->record(p.state, &r, sizeof(r) - 1);
	ck_assert_uint_eq(node_debug_counters()->bad, 4);
	ck_assert_uint_eq(node_debug_counters()->h2_given, 2);
	/* the connection has the two streams' keys, each taken once */
	ck_assert_uint_eq(api->conn_stream_context_take(th_conn_handle(c), 7), 78);
	ck_assert_uint_eq(api->conn_stream_context_take(th_conn_handle(c), 5), 77);
	ck_assert_uint_eq(api->conn_stream_context_take(th_conn_handle(c), 5), 0);
	ck_assert_uint_eq(api->conn_stream_context_take(th_conn_handle(c), 9), 0);
	pair_close(&p);
}
END_TEST

/* --- the keys on chunks -------------------------------------------------------------------- */

/* The test host shows no span's parent, so the key tests use a small
 * protocol plugin of their own, made like the HTTP plugin in what matters
 * here (span_start_v2 with no parent given: the host parents by the chunk's
 * key) and reading each span's trace id back through the SDK
 * (span_context). Only the host gives out trace ids: a client span is in
 * its request's trace exactly when the host made it that span's child,
 * and a span without a parent starts a trace of its own. */
#define KEYED_MAX 64

struct keyed_span {
	char label[64];
	enum sonde_span_kind kind;
	uint8_t trace[16];
};

static struct {
	const struct sonde_host_api *host;
	struct keyed_span spans[KEYED_MAX];
	size_t n;
} keyed;

struct keyed_conn {
	struct sonde_span *open;
	int server;
};

static int keyed_init(const struct sonde_host_api *h, struct sonde_plugin_handle *self,
		      void **state)
{
	(void)self;
	(void)state;
	memset(&keyed, 0, sizeof(keyed));
	keyed.host = h;
	return SONDE_OK;
}

static int keyed_detect(void *st, const struct sonde_conn_info *ci, const struct sonde_chunk *c)
{
	(void)st;
	(void)ci;
	(void)c;
	return SONDE_DETECT_SURE;
}

static int keyed_open(void *st, struct sonde_conn *conn, const struct sonde_conn_info *ci,
		      void **cs)
{
	struct keyed_conn *k = calloc(1, sizeof(*k));

	(void)st;
	(void)conn;
	if (!k)
		return SONDE_ERR_NOMEM;
	k->server = ci->role == SONDE_ROLE_SERVER;
	*cs = k;
	return SONDE_OK;
}

/* A request starts a span (its first line is the label); the answer ends it. */
static int keyed_data(void *cs, struct sonde_conn *conn, const struct sonde_chunk *c)
{
	struct keyed_conn *k = cs;
	int request = k->server ? c->dir == SONDE_DIR_INGRESS : c->dir == SONDE_DIR_EGRESS;
	struct sonde_span_opts o = { .struct_size = sizeof(o) };
	struct sonde_span_context ctx = { .struct_size = sizeof(ctx) };
	struct keyed_span *ks;

	if (!request) {
		if (k->open)
			keyed.host->span_end(k->open, c->ts_unix_ns);
		k->open = NULL;
		return SONDE_OK;
	}
	o.kind = k->server ? SONDE_SPAN_SERVER : SONDE_SPAN_CLIENT;
	o.name = "req";
	o.start_unix_ns = c->ts_unix_ns;
	k->open = keyed.host->span_start_v2(conn, &o);
	ck_assert_ptr_nonnull(k->open);
	ck_assert_int_eq(keyed.host->span_context(k->open, &ctx), SONDE_OK);
	ck_assert_uint_lt(keyed.n, KEYED_MAX);
	ks = &keyed.spans[keyed.n++];
	snprintf(ks->label, sizeof(ks->label), "%.*s", (int)strcspn((const char *)c->data, "\n"),
		 (const char *)c->data);
	ks->kind = o.kind;
	memcpy(ks->trace, ctx.trace_id, 16);
	return SONDE_OK;
}

static void keyed_close(void *cs, struct sonde_conn *conn, uint64_t ts)
{
	struct keyed_conn *k = cs;

	(void)conn;
	if (k->open)
		keyed.host->span_end(k->open, ts);
	free(k);
}

static const struct sonde_protocol keyed_proto = {
	.struct_size = sizeof(struct sonde_protocol),
	.name = "keyed",
	.detect = keyed_detect,
	.conn_open = keyed_open,
	.conn_data = keyed_data,
	.conn_close = keyed_close,
};
static const struct sonde_protocol *const keyed_protos[] = { &keyed_proto, NULL };
static const struct sonde_plugin keyed_desc = {
	.abi_major = SONDE_ABI_MAJOR,
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "keyed",
	.version = "0",
	.license = "Apache-2.0",
	.description = "test protocol",
	.init = keyed_init,
	.protocols = keyed_protos,
};

static struct th_conn *conn(struct pair *p, enum sonde_role role, uint16_t port)
{
	struct sonde_conn_info ci;
	struct th_conn *c;

	th_conn_info_init(&ci, role);
	ci.pid = PID;
	if (role == SONDE_ROLE_CLIENT) {
		ci.local_port = port;
		ci.peer_port = 9000;
	} else {
		ci.local_port = 8080;
		ci.peer_port = port;
	}
	c = th_conn_open(p->h, &ci);
	ck_assert_ptr_nonnull(c);
	return c;
}

/* One chunk on the event-loop thread with the key the kernel stamped. */
static void feed(struct th_conn *c, enum sonde_dir dir, uint64_t ts, const char *text, uint64_t key)
{
	struct sonde_chunk ch = { .struct_size = sizeof(ch) };

	ch.dir = dir;
	ch.ts_unix_ns = ts;
	ch.data = (const uint8_t *)text;
	ch.len = ch.orig_len = strlen(text);
	ch.tid = TID;
	ch.context = key;
	ck_assert_int_eq(th_conn_feed_chunk(c, &ch), SONDE_OK);
}

static const struct keyed_span *span_of(const char *label)
{
	for (size_t i = 0; i < keyed.n; i++)
		if (!strcmp(keyed.spans[i].label, label))
			return &keyed.spans[i];
	ck_abort_msg("no span %s", label);
	return NULL;
}

/* How many server spans share the client's trace (0: it has no parent). */
static int servers_in_trace_of(const struct keyed_span *c)
{
	int n = 0;

	for (size_t i = 0; i < keyed.n; i++)
		if (keyed.spans[i].kind == SONDE_SPAN_SERVER && !memcmp(keyed.spans[i].trace, c->trace, 16))
			n++;
	return n;
}

static int same_trace(const struct keyed_span *a, const struct keyed_span *b)
{
	return !memcmp(a->trace, b->trace, 16);
}

START_TEST(interleaved_requests_on_one_thread_parent_by_key)
{
	static const uint32_t order[6] = { 3, 0, 5, 1, 4, 2 }; /* the back-end calls' order */
	struct th_conn *srv[6], *cli[6];
	char buf[64], lab[64];
	uint64_t ts = 1000;
	struct pair p;

	pair_open_with(&p, 1, &keyed_desc, "keyed");
	/* six requests arrive, each read with its connection's key (the table) */
	for (int i = 0; i < 6; i++) {
		srv[i] = conn(&p, SONDE_ROLE_SERVER, (uint16_t)(40000 + i));
		snprintf(buf, sizeof(buf), "GET /req/%d\n", i);
		feed(srv[i], SONDE_DIR_INGRESS, ts++, buf, 100 + (uint64_t)i);
	}
	/* the timers fire in another order; each calls its back end under its key */
	for (int k = 0; k < 6; k++) {
		uint32_t i = order[k];

		cli[i] = conn(&p, SONDE_ROLE_CLIENT, (uint16_t)(50000 + i));
		snprintf(buf, sizeof(buf), "GET /backend/%u\n", i);
		feed(cli[i], SONDE_DIR_EGRESS, ts++, buf, 100 + i);
	}
	/* answers (a client socket read outside JavaScript has no key) */
	for (int k = 5; k >= 0; k--) {
		uint32_t i = order[k];

		feed(cli[i], SONDE_DIR_INGRESS, ts++, "200\n", 0);
		feed(srv[i], SONDE_DIR_EGRESS, ts++, "200\n", 100 + i);
	}
	ck_assert_uint_eq(keyed.n, 12);
	for (int i = 0; i < 6; i++) {
		const struct keyed_span *s, *c;

		snprintf(lab, sizeof(lab), "GET /req/%d", i);
		s = span_of(lab);
		snprintf(lab, sizeof(lab), "GET /backend/%d", i);
		c = span_of(lab);
		ck_assert_msg(same_trace(c, s), "request %d: its call is not in its trace", i);
		ck_assert_int_eq(servers_in_trace_of(c), 1);
	}
	pair_close(&p);
}
END_TEST

START_TEST(without_keys_the_calls_get_no_parent)
{
	struct th_conn *srv[3], *cli[3];
	char buf[64];
	uint64_t ts = 1000;
	struct pair p;

	/* The same interleaving with no key on any chunk (the generic layer):
	 * three server spans are open on the one thread, so the host's own
	 * guess refuses, and no call lands in any request's trace. */
	pair_open_with(&p, 1, &keyed_desc, "keyed");
	for (int i = 0; i < 3; i++) {
		srv[i] = conn(&p, SONDE_ROLE_SERVER, (uint16_t)(40000 + i));
		snprintf(buf, sizeof(buf), "GET /req/%d\n", i);
		feed(srv[i], SONDE_DIR_INGRESS, ts++, buf, 0);
	}
	for (int i = 2; i >= 0; i--) {
		cli[i] = conn(&p, SONDE_ROLE_CLIENT, (uint16_t)(50000 + i));
		snprintf(buf, sizeof(buf), "GET /backend/%d\n", i);
		feed(cli[i], SONDE_DIR_EGRESS, ts++, buf, 0);
		feed(cli[i], SONDE_DIR_INGRESS, ts++, "200\n", 0);
		feed(srv[i], SONDE_DIR_EGRESS, ts++, "200\n", 0);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(buf, sizeof(buf), "GET /backend/%d", i);
		ck_assert_int_eq(servers_in_trace_of(span_of(buf)), 0);
	}
	pair_close(&p);
}
END_TEST

START_TEST(keep_alive_requests_are_keyed_apart)
{
	struct th_conn *srv, *cli;
	struct pair p;
	uint64_t ts = 1000;

	pair_open_with(&p, 1, &keyed_desc, "keyed");
	srv = conn(&p, SONDE_ROLE_SERVER, 40001);
	cli = conn(&p, SONDE_ROLE_CLIENT, 50001);
	/* request 1 under key 7; its response; the connection is re-keyed (8) */
	feed(srv, SONDE_DIR_INGRESS, ts++, "GET /req/one\n", 7);
	feed(cli, SONDE_DIR_EGRESS, ts++, "GET /backend/one\n", 7);
	feed(cli, SONDE_DIR_INGRESS, ts++, "200\n", 0);
	feed(srv, SONDE_DIR_EGRESS, ts++, "200\n", 7);
	/* request 2 on the same connection, key 8 */
	feed(srv, SONDE_DIR_INGRESS, ts++, "GET /req/two\n", 8);
	/* request 1's code calls again after its response: still key 7 */
	feed(cli, SONDE_DIR_EGRESS, ts++, "GET /backend/late\n", 7);
	feed(cli, SONDE_DIR_INGRESS, ts++, "200\n", 0);
	feed(cli, SONDE_DIR_EGRESS, ts++, "GET /backend/two\n", 8);
	feed(cli, SONDE_DIR_INGRESS, ts++, "200\n", 0);
	feed(srv, SONDE_DIR_EGRESS, ts++, "200\n", 8);
	ck_assert(same_trace(span_of("GET /backend/one"), span_of("GET /req/one")));
	ck_assert(same_trace(span_of("GET /backend/two"), span_of("GET /req/two")));
	ck_assert(!same_trace(span_of("GET /req/one"), span_of("GET /req/two")));
	/* the late call: its request is over, so no parent, and never request 2 */
	ck_assert_int_eq(servers_in_trace_of(span_of("GET /backend/late")), 0);
	pair_close(&p);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("node_plugin");
	TCase *tc = tcase_create("all");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, refused_by_a_host_without_runtime_calls);
	tcase_add_test(tc, claims_its_record_type);
	tcase_add_test(tc, a_process_that_is_not_node_says_nothing);
	tcase_add_test(tc, node_without_a_kernel_gets_one_line_and_no_signal);
	tcase_add_test(tc, inspector_false_refuses_at_once);
	tcase_add_test(tc, bad_and_stray_records_are_counted);
	tcase_add_test(tc, h2_stream_records_reach_the_connection);
	tcase_add_test(tc, interleaved_requests_on_one_thread_parent_by_key);
	tcase_add_test(tc, without_keys_the_calls_get_no_parent);
	tcase_add_test(tc, keep_alive_requests_are_keyed_apart);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
