/*
 * java_plugin_test.c - the Java runtime plugin through the real host (the
 * test host): on a host without the runtime-plugin calls, with processes
 * (real JVMs started here: one that can be attached to, one that refuses
 * attach, and this test program, which is no JVM), and with the records its
 * BPF program writes: the agent's plaintext injected into the host's
 * connection for (pid, fd) and parsed by the real HTTP plugin
 * (build/plugins/http.so), splits, keep-alive and interleaved streams,
 * truncation, gaps, unknown sockets, the agent's text messages, and bad
 * records.
 *
 * The kernel side is not here (the test host has none: bpf_load answers
 * UNSUPPORTED); java_agent_test.c runs the agent in real JVMs, and
 * tests/live/test_java.py runs everything.
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

#include "java_msg.h"
#include "java_plugin.h"
#include "java_rec.h"
#include "java_test_util.h"
#include "testhost.h"

const struct sonde_plugin *sonde_plugin_entry(void); /* the Java plugin, linked in */

#define PID 4242
#define FD 7
#define TID 4243

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

/* The HTTP plugin owns the host's connections; the Java plugin runs in
 * the same host through the handle the host gave, fed records directly. */
struct pair {
	struct th_host *h;
	const struct sonde_plugin *java;
	void *state;
	uint32_t base;
	_Alignas(8) uint8_t rec[sizeof(struct java_rec) + JAVA_MSG_MAX];
	uint8_t msg[JAVA_MSG_MAX];
};

static struct pair *pair_open(void)
{
	struct pair *p = calloc(1, sizeof(*p));

	ck_assert_ptr_nonnull(p);
	p->h = th_new();
	ck_assert_int_eq(th_load(p->h, http_desc(), "http"), SONDE_OK);
	p->java = sonde_plugin_entry();
	ck_assert_int_eq(p->java->init(th_api(p->h), th_self(p->h), &p->state), SONDE_OK);
	p->base = java_debug_rec_base();
	ck_assert_uint_ge(p->base, SONDE_RECORD_PLUGIN_FIRST);
	return p;
}

static void pair_close(struct pair *p)
{
	p->java->fini(p->state);
	ck_assert_uint_eq(th_misuse(p->h), 0);
	th_free(p->h);
	free(p);
}

static struct th_conn *conn_port(struct pair *p, enum sonde_role role, uint32_t fd,
				 uint16_t client_port)
{
	struct sonde_conn_info ci;
	struct th_conn *c;

	th_conn_info_init(&ci, role);
	ci.pid = PID;
	ci.local_port = role == SONDE_ROLE_SERVER ? 8443 : client_port;
	ci.peer_port = role == SONDE_ROLE_SERVER ? client_port : 8443;
	c = th_conn_open(p->h, &ci);
	ck_assert_ptr_nonnull(c);
	th_conn_set_fd(c, fd);
	return c;
}

static struct th_conn *conn(struct pair *p, enum sonde_role role, uint32_t fd)
{
	return conn_port(p, role, fd, 40000);
}

/* One DATA message of stream `stream` as a record, to the plugin. */
static void data(struct pair *p, uint64_t ts, int dir, int32_t fd, uint64_t stream, uint64_t pos,
		 const void *bytes, uint32_t cap, uint32_t len)
{
	size_t m = jt_msg(p->msg, JAVA_MSG_DATA, dir, fd, len, stream, pos, 0, bytes, cap);
	size_t n = jt_rec(p->rec, p->base + JAVA_REC_MSG, PID, TID, ts, p->msg, m);

	p->java->record(p->state, p->rec, n);
}

static void text(struct pair *p, int kind, const char *s)
{
	size_t m = jt_msg(p->msg, kind, 0, -1, (uint32_t)strlen(s), 0, 0, 0, s, (uint32_t)strlen(s));
	size_t n = jt_rec(p->rec, p->base + JAVA_REC_MSG, PID, TID, 1, p->msg, m);

	p->java->record(p->state, p->rec, n);
}

static const char req[] = "GET /req/17 HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\n\r\n";
static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
#define REQ_LEN ((uint32_t)sizeof(req) - 1)
#define RESP_LEN ((uint32_t)sizeof(resp) - 1)

/* --- hosts ------------------------------------------------------------------------ */

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

START_TEST(loads_and_claims_its_record_type)
{
	struct th_host *h = th_new();
	uint8_t msg[64];
	_Alignas(8) uint8_t rec[sizeof(struct java_rec) + 64];
	size_t m, n;

	ck_assert_int_eq(th_load(h, sonde_plugin_entry(), NULL), SONDE_OK);
	ck_assert_uint_ge(java_debug_rec_base(), SONDE_RECORD_PLUGIN_FIRST);
	m = jt_msg(msg, JAVA_MSG_NOTE, 0, -1, 2, 0, 0, 0, "hi", 2);
	n = jt_rec(rec, java_debug_rec_base() + JAVA_REC_MSG, PID, TID, 1, msg, m);
	ck_assert_int_eq(th_plugin_record(h, rec, n), 1);
	ck_assert_uint_eq(java_debug_counters()->msgs, 1);
	/* The next type is not claimed. */
	((struct java_rec *)rec)->h.type++;
	ck_assert_int_eq(th_plugin_record(h, rec, n), 0);
	th_free(h);
	ck_assert_ptr_null(java_debug_counters());
}
END_TEST

/* --- plaintext ------------------------------------------------------------------------ */

START_TEST(plaintext_becomes_an_https_server_span)
{
	struct pair *p = pair_open();
	const struct th_span *s;
	int64_t status;

	conn(p, SONDE_ROLE_SERVER, FD);
	data(p, 1000000, 0, FD, 1, 0, req, REQ_LEN, REQ_LEN);
	data(p, 3000000, 1, FD, 1, 0, resp, RESP_LEN, RESP_LEN);
	ck_assert_uint_eq(th_n_ended(p->h), 1);
	s = th_ended(p->h, 0);
	ck_assert_int_eq(s->kind, SONDE_SPAN_SERVER);
	ck_assert_str_eq(th_span_str(s, "url.path"), "/req/17");
	ck_assert_str_eq(th_span_str(s, "url.scheme"), "https");
	ck_assert_int_eq(th_span_int(s, "http.response.status_code", &status), 0);
	ck_assert_int_eq(status, 200);
	ck_assert_uint_eq(s->end_ns - s->start_ns, 2000000); /* the records' own times */
	ck_assert_uint_eq(s->tid, TID);                     /* the thread that did the TLS call */
	ck_assert_uint_eq(java_debug_counters()->injected, 2);
	ck_assert_uint_eq(java_debug_counters()->gaps, 0);
	pair_close(p);
}
END_TEST

START_TEST(plaintext_becomes_an_https_client_span)
{
	struct pair *p = pair_open();
	const struct th_span *s;

	conn(p, SONDE_ROLE_CLIENT, FD);
	data(p, 1000, 1, FD, 9, 0, req, REQ_LEN, REQ_LEN);
	data(p, 5000, 0, FD, 9, 0, resp, RESP_LEN, RESP_LEN);
	ck_assert_uint_eq(th_n_ended(p->h), 1);
	s = th_ended(p->h, 0);
	ck_assert_int_eq(s->kind, SONDE_SPAN_CLIENT);
	ck_assert_str_eq(th_span_str(s, "url.scheme"), "https");
	pair_close(p);
}
END_TEST

/* A task message (BEGIN / END) from thread tid, as the agent writes it. */
static void task_msg(struct pair *p, int kind, uint32_t tid, uint64_t key, uint64_t other)
{
	size_t m = jt_msg(p->msg, kind, 0, -1, 0, key, other, 0, NULL, 0);
	size_t n = jt_rec(p->rec, p->base + JAVA_REC_MSG, PID, tid, 1, p->msg, m);

	p->java->record(p->state, p->rec, n);
}

/* DATA with the thread's context the kernel put in the record. */
static void data_ctx(struct pair *p, uint64_t ts, int dir, int32_t fd, uint64_t stream,
		     const void *bytes, uint32_t len, uint32_t tid, uint64_t ctx)
{
	size_t m = jt_msg(p->msg, JAVA_MSG_DATA, dir, fd, len, stream, 0, 0, bytes, len);
	size_t n = jt_rec(p->rec, p->base + JAVA_REC_MSG, PID, tid, ts, p->msg, m);

	((struct java_rec *)p->rec)->ctx = ctx;
	p->java->record(p->state, p->rec, n);
}

/* A socket chunk of the server connection, stamped with a context. */
static void socket_ctx(struct th_conn *c, enum sonde_dir dir, uint64_t ts, const char *bytes,
		       size_t len, uint32_t tid, uint64_t ctx)
{
	struct sonde_chunk ch = {0};

	ch.dir = dir;
	ch.ts_unix_ns = ts;
	ch.data = (const uint8_t *)bytes;
	ch.len = ch.orig_len = len;
	ch.tid = tid;
	ch.context = ctx;
	ch.source = SONDE_SRC_SOCKET;
	ck_assert_int_eq(th_conn_feed_chunk(c, &ch), SONDE_OK);
}

/* A request served on thread 100 (its own key) hands its call to a pool
 * thread 200: BEGIN links the task's key to the server thread's, so the
 * call (TLS plaintext stamped with the task's key) is the request's child;
 * a task whose submitter was unknown gets no parent, never a wrong one. */
START_TEST(hand_off_parents_the_call_under_its_request)
{
	static const char sreq[] = "GET /req/a HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char sresp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	const uint64_t thr = JAVA_KEY_THREAD | 100, task = JAVA_KEY_TASK | 1,
		       orphan = JAVA_KEY_TASK | 2;
	struct pair *p = pair_open();
	struct th_conn *srv = conn(p, SONDE_ROLE_SERVER, 6);
	const struct th_span *server, *client, *lone;

	/* Calls to a back end, not the other end of srv (whose server span
	 * would then wait for that end's client span). */
	conn_port(p, SONDE_ROLE_CLIENT, FD, 40001);
	conn_port(p, SONDE_ROLE_CLIENT, FD + 1, 40002);
	socket_ctx(srv, SONDE_DIR_INGRESS, 1000, sreq, sizeof(sreq) - 1, 100, thr);
	task_msg(p, JAVA_MSG_BEGIN, 200, task, thr);
	data_ctx(p, 2000, 1, FD, 9, req, REQ_LEN, 200, task);
	data_ctx(p, 3000, 0, FD, 9, resp, RESP_LEN, 200, task);
	task_msg(p, JAVA_MSG_END, 200, task, 0);
	task_msg(p, JAVA_MSG_BEGIN, 201, orphan, 0);
	data_ctx(p, 3500, 1, FD + 1, 10, req, REQ_LEN, 201, orphan);
	data_ctx(p, 3600, 0, FD + 1, 10, resp, RESP_LEN, 201, orphan);
	task_msg(p, JAVA_MSG_END, 201, orphan, 0);
	socket_ctx(srv, SONDE_DIR_EGRESS, 4000, sresp, sizeof(sresp) - 1, 100, thr);
	ck_assert_uint_eq(th_n_ended(p->h), 3);
	server = th_ended(p->h, 2);
	client = th_ended(p->h, 0);
	lone = th_ended(p->h, 1);
	if (client->tid != 200) { /* the end order is the HTTP plugin's business */
		lone = client;
		client = th_ended(p->h, 1);
	}
	ck_assert_uint_eq(client->tid, 200);
	ck_assert_uint_eq(lone->tid, 201);
	ck_assert_int_eq(server->kind, SONDE_SPAN_SERVER);
	ck_assert_int_eq(client->kind, SONDE_SPAN_CLIENT);
	ck_assert_int_eq(lone->kind, SONDE_SPAN_CLIENT);
	ck_assert(th_span_child_of(client, server));
	ck_assert(!th_span_child_of(lone, server));
	ck_assert_uint_eq(java_debug_counters()->begins, 2);
	ck_assert_uint_eq(java_debug_counters()->begins_orphan, 1);
	ck_assert_uint_eq(java_debug_counters()->ends, 2);
	ck_assert_uint_eq(java_debug_counters()->bad, 0);
	pair_close(p);
}
END_TEST

/* Virtual threads: a request served on a virtual thread (key vt1, started
 * by the dispatcher thread 100) and one on vt2, both mounted on carrier
 * 300 in turn: the kernel stamps each chunk with the key in the carrier's
 * word. vt1's handler starts vt3 (VSTART links it to vt1), which calls
 * from carrier 301: that call is vt1's request's child through the link.
 * Each call is the child of its own request; VEND ends the keys. */
START_TEST(virtual_threads_parent_their_calls)
{
	static const char r1[] = "GET /req/1 HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char r2[] = "GET /req/2 HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char sresp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	const uint64_t disp = JAVA_KEY_THREAD | 100, vt1 = JAVA_KEY_VT | 41, vt2 = JAVA_KEY_VT | 42,
		       vt3 = JAVA_KEY_VT | 43;
	struct pair *p = pair_open();
	struct th_conn *s1 = conn_port(p, SONDE_ROLE_SERVER, 5, 41001),
		       *s2 = conn_port(p, SONDE_ROLE_SERVER, 6, 41002);
	const struct th_span *srv1 = NULL, *srv2 = NULL, *c1 = NULL, *c2 = NULL, *c3 = NULL;

	conn_port(p, SONDE_ROLE_CLIENT, FD, 42001);
	conn_port(p, SONDE_ROLE_CLIENT, FD + 1, 42002);
	conn_port(p, SONDE_ROLE_CLIENT, FD + 2, 42003);
	task_msg(p, JAVA_MSG_SLOT, 300, 0x7f0000001000ull, 0);
	task_msg(p, JAVA_MSG_VSTART, 100, vt1, disp);
	task_msg(p, JAVA_MSG_VSTART, 100, vt2, disp);
	socket_ctx(s1, SONDE_DIR_INGRESS, 1000, r1, sizeof(r1) - 1, 300, vt1);
	socket_ctx(s2, SONDE_DIR_INGRESS, 1100, r2, sizeof(r2) - 1, 300, vt2);
	task_msg(p, JAVA_MSG_VSTART, 300, vt3, vt1);
	data_ctx(p, 2000, 1, FD + 1, 10, req, REQ_LEN, 300, vt2);
	data_ctx(p, 2100, 1, FD, 9, req, REQ_LEN, 300, vt1);
	data_ctx(p, 2200, 1, FD + 2, 11, req, REQ_LEN, 301, vt3);
	data_ctx(p, 3000, 0, FD + 1, 10, resp, RESP_LEN, 300, vt2);
	data_ctx(p, 3100, 0, FD, 9, resp, RESP_LEN, 300, vt1);
	data_ctx(p, 3200, 0, FD + 2, 11, resp, RESP_LEN, 301, vt3);
	task_msg(p, JAVA_MSG_VEND, 301, vt3, 0);
	socket_ctx(s1, SONDE_DIR_EGRESS, 4000, sresp, sizeof(sresp) - 1, 300, vt1);
	socket_ctx(s2, SONDE_DIR_EGRESS, 4100, sresp, sizeof(sresp) - 1, 300, vt2);
	task_msg(p, JAVA_MSG_VEND, 300, vt1, 0);
	task_msg(p, JAVA_MSG_VEND, 300, vt2, 0);
	ck_assert_uint_eq(th_n_ended(p->h), 5);
	for (size_t i = 0; i < 5; i++) {
		const struct th_span *s = th_ended(p->h, i);

		if (s->kind == SONDE_SPAN_SERVER && s->start_ns == 1000)
			srv1 = s;
		else if (s->kind == SONDE_SPAN_SERVER)
			srv2 = s;
		else if (s->tid == 301)
			c3 = s;
		else if (!c2)
			c2 = s; /* the requests went vt2's first: so do the answers */
		else
			c1 = s;
	}
	ck_assert(srv1 && srv2 && c1 && c2 && c3);
	ck_assert(th_span_child_of(c1, srv1));
	ck_assert(th_span_child_of(c2, srv2));
	ck_assert(th_span_child_of(c3, srv1));
	ck_assert_uint_eq(java_debug_counters()->slots, 1);
	ck_assert_uint_eq(java_debug_counters()->vstarts, 3);
	ck_assert_uint_eq(java_debug_counters()->vends, 3);
	ck_assert_uint_eq(java_debug_counters()->bad, 0);
	pair_close(p);
}
END_TEST

/* JSSE hands plaintext out in any size: split at every byte, both ways. */
START_TEST(plaintext_split_at_every_byte)
{
	for (uint32_t k = 1; k < REQ_LEN; k++) {
		struct pair *p = pair_open();

		conn(p, SONDE_ROLE_SERVER, FD);
		data(p, 1000, 0, FD, 1, 0, req, k, k);
		data(p, 2000, 0, FD, 1, k, req + k, REQ_LEN - k, REQ_LEN - k);
		for (uint32_t r = 0; r < RESP_LEN; r++)
			data(p, 3000 + r, 1, FD, 1, r, resp + r, 1, 1);
		ck_assert_msg(th_n_ended(p->h) == 1, "split at %u", k);
		ck_assert_str_eq(th_span_str(th_ended(p->h, 0), "url.path"), "/req/17");
		ck_assert_uint_eq(java_debug_counters()->gaps, 0);
		pair_close(p);
	}
}
END_TEST

/* Keep-alive requests on one stream, and two streams interleaved. */
START_TEST(many_requests_and_streams_interleaved)
{
	struct pair *p = pair_open();
	uint64_t pin[2] = {0, 0}, pout[2] = {0, 0};

	conn(p, SONDE_ROLE_SERVER, FD);
	conn(p, SONDE_ROLE_SERVER, FD + 1);
	for (int i = 0; i < 20; i++) {
		int k = i % 2;

		data(p, 1000 * (uint64_t)i + 1, 0, FD + k, 100 + (uint64_t)k, pin[k], req, REQ_LEN, REQ_LEN);
		pin[k] += REQ_LEN;
	}
	for (int i = 0; i < 20; i++) {
		int k = i % 2;

		data(p, 100000 + 1000 * (uint64_t)i, 1, FD + k, 100 + (uint64_t)k, pout[k], resp, RESP_LEN,
		     RESP_LEN);
		pout[k] += RESP_LEN;
	}
	ck_assert_uint_eq(th_n_ended(p->h), 20);
	ck_assert_uint_eq(java_debug_counters()->gaps, 0);
	ck_assert_uint_eq(java_debug_counters()->injected, 40);
	pair_close(p);
}
END_TEST

/* A body larger than the payload cap arrives truncated (len > cap): the
 * HTTP plugin skips it by count and the next request still parses. */
START_TEST(truncated_plaintext_keeps_the_stream)
{
	static char big[600];
	const char *hdr = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
	uint32_t hl = (uint32_t)strlen(hdr);
	struct pair *p = pair_open();

	conn(p, SONDE_ROLE_SERVER, FD);
	data(p, 1000, 0, FD, 1, 0, req, REQ_LEN, REQ_LEN);
	memset(big, 'x', sizeof(big));
	memcpy(big, hdr, hl);
	data(p, 2000, 1, FD, 1, 0, big, sizeof(big), hl + 100000);
	ck_assert_uint_eq(th_n_ended(p->h), 1);
	data(p, 3000, 0, FD, 1, REQ_LEN, req, REQ_LEN, REQ_LEN);
	data(p, 4000, 1, FD, 1, hl + 100000, resp, RESP_LEN, RESP_LEN);
	ck_assert_uint_eq(th_n_ended(p->h), 2);
	ck_assert_uint_eq(java_debug_counters()->gaps, 0);
	pair_close(p);
}
END_TEST

/* A message lost on the way (ring full, or the agent could not write): the
 * next one of that stream and direction starts later than the last ended,
 * so it carries GAP, and the HTTP plugin does not pair a response with a
 * request it did not see whole. A stream first seen mid-way (the JVM
 * served it before the agent came) starts with a gap too. */
START_TEST(missing_plaintext_is_a_gap)
{
	struct pair *p = pair_open();

	conn(p, SONDE_ROLE_SERVER, FD);
	data(p, 1000, 0, FD, 1, 0, req, 10, 10);
	data(p, 3000, 1, FD, 1, 0, resp, RESP_LEN, RESP_LEN);
	/* the rest of the request never came; the next request is whole */
	data(p, 4000, 0, FD, 1, 100, req, REQ_LEN, REQ_LEN);
	ck_assert_uint_eq(java_debug_counters()->gaps, 1);
	data(p, 5000, 1, FD, 1, RESP_LEN, resp, RESP_LEN, RESP_LEN);
	ck_assert_uint_eq(th_n_ended(p->h), 1);
	ck_assert_uint_eq(th_ended(p->h, 0)->start_ns + 1000, th_ended(p->h, 0)->end_ns);
	/* A new stream whose first bytes are at 500: a gap, then followed. */
	conn(p, SONDE_ROLE_SERVER, FD + 1);
	data(p, 6000, 0, FD + 1, 2, 500, req, REQ_LEN, REQ_LEN);
	data(p, 7000, 1, FD + 1, 2, 900, resp, RESP_LEN, RESP_LEN);
	ck_assert_uint_eq(java_debug_counters()->gaps, 3);
	data(p, 8000, 0, FD + 1, 2, 500 + REQ_LEN, req, REQ_LEN, REQ_LEN);
	data(p, 9000, 1, FD + 1, 2, 900 + RESP_LEN, resp, RESP_LEN, RESP_LEN);
	ck_assert_uint_eq(java_debug_counters()->gaps, 3);
	ck_assert_uint_ge(th_n_ended(p->h), 2);
	pair_close(p);
}
END_TEST

/* The agent did not know the socket (fd -1), or the host does not know the
 * fd: counted, nothing injected, nothing guessed. */
START_TEST(plaintext_without_a_known_socket_is_counted)
{
	struct pair *p = pair_open();

	conn(p, SONDE_ROLE_SERVER, FD);
	data(p, 1000, 0, -1, 1, 0, NULL, 0, REQ_LEN);
	data(p, 1000, 0, FD + 1, 2, 0, req, REQ_LEN, REQ_LEN);
	ck_assert_uint_eq(java_debug_counters()->no_socket, 1);
	ck_assert_uint_eq(java_debug_counters()->no_conn, 1);
	ck_assert_uint_eq(java_debug_counters()->injected, 0);
	ck_assert_uint_eq(th_n_spans(p->h), 0);
	pair_close(p);
}
END_TEST

/* HELLO and NOTE are logged; FAIL of a process the plugin does not follow
 * changes nothing. */
START_TEST(agent_text_is_logged)
{
	struct pair *p = pair_open();
	size_t info = th_n_logs(p->h, SONDE_LOG_INFO);

	text(p, JAVA_MSG_HELLO, "java 17 (test), hooks: SSLSocket read on");
	text(p, JAVA_MSG_NOTE, "class loaded: SSLEngine wrap on\x01");
	ck_assert_uint_eq(th_n_logs(p->h, SONDE_LOG_INFO), info + 2);
	text(p, JAVA_MSG_FAIL, "java 17: nobody holds the lock");
	ck_assert_uint_eq(th_n_logs(p->h, SONDE_LOG_WARN), 0);
	ck_assert_uint_eq(java_debug_counters()->msgs, 3);
	ck_assert_uint_eq(java_debug_counters()->procs_attached, 0);
	pair_close(p);
}
END_TEST

START_TEST(bad_records_are_counted_and_ignored)
{
	struct pair *p = pair_open();
	struct java_rec *r = (struct java_rec *)p->rec;
	size_t m, n, bad = 0;

	conn(p, SONDE_ROLE_SERVER, FD);
	m = jt_msg(p->msg, JAVA_MSG_DATA, 0, FD, REQ_LEN, 1, 0, 0, req, REQ_LEN);
	n = jt_rec(p->rec, p->base + JAVA_REC_MSG, PID, TID, 1, p->msg, m);
	/* Cut records: no header, header only, payload short. */
	p->java->record(p->state, p->rec, 10), bad++;
	p->java->record(p->state, p->rec, sizeof(struct java_rec) - 1), bad++;
	p->java->record(p->state, p->rec, n - 1), bad++;
	p->java->record(p->state, NULL, 0), bad++;
	/* cap_len != len (the kernel could not read the buffer), or hostile. */
	r->cap_len = 0;
	p->java->record(p->state, p->rec, n), bad++;
	r->cap_len = r->len = JAVA_MSG_MAX + 1;
	p->java->record(p->state, p->rec, n), bad++;
	/* Messages: every field out of range, one at a time. */
	for (int f = 0; f < 8; f++) {
		m = jt_msg(p->msg, JAVA_MSG_DATA, 0, FD, REQ_LEN, 1, 0, 0, req, REQ_LEN);
		switch (f) {
		case 0: p->msg[0] ^= 1; break;                 /* magic */
		case 1: p->msg[4] = 39; break;                 /* header length */
		case 2: p->msg[4] = 0xff; p->msg[5] = 0xff; break;
		case 3: p->msg[6] = 9; break;                  /* kind */
		case 4: p->msg[7] = 2; break;                  /* dir */
		case 5: jt_le(p->msg + 36, REQ_LEN + 1, 4); break; /* payload > bytes present */
		case 6: jt_le(p->msg + 12, 1, 4); break;       /* payload > bytes moved */
		case 7: jt_le(p->msg + 8, (uint32_t)-5, 4); break; /* fd */
		}
		n = jt_rec(p->rec, p->base + JAVA_REC_MSG, PID, TID, 1, p->msg, m);
		p->java->record(p->state, p->rec, n), bad++;
	}
	/* A position that would wrap. */
	m = jt_msg(p->msg, JAVA_MSG_DATA, 0, FD, REQ_LEN, 1, UINT64_MAX - 3, 0, req, REQ_LEN);
	n = jt_rec(p->rec, p->base + JAVA_REC_MSG, PID, TID, 1, p->msg, m);
	p->java->record(p->state, p->rec, n), bad++;
	ck_assert_uint_eq(java_debug_counters()->bad, bad);
	ck_assert_uint_eq(java_debug_counters()->injected, 0);
	ck_assert_uint_eq(th_n_spans(p->h), 0);
	/* Good ones still work after all that. */
	data(p, 1000, 0, FD, 1, 0, req, REQ_LEN, REQ_LEN);
	data(p, 2000, 1, FD, 1, 0, resp, RESP_LEN, RESP_LEN);
	ck_assert_uint_eq(th_n_ended(p->h), 1);
	pair_close(p);
}
END_TEST

/* --- processes --------------------------------------------------------------------------- */

/* Run the host's timers (the plugin looks at starting JVMs from one) until
 * the plugin said what it wanted to say about pid, or 40 s. */
static void settle(struct th_host *h, size_t warns)
{
	uint64_t t = 1000000000ull, end = jt_now_ms() + 40000;

	while (th_n_logs(h, SONDE_LOG_WARN) < warns && jt_now_ms() < end) {
		usleep(100000);
		th_run_timers(h, t += 250000000ull);
	}
}

START_TEST(processes_each_get_one_verdict)
{
	static const char *const no_attach[] = {"-XX:+DisableAttachMechanism", NULL};
	struct th_host *h = th_new();
	struct jt_jvm a, b;
	char exe[64];

	ck_assert_int_eq(th_load(h, sonde_plugin_entry(), NULL), SONDE_OK);
	/* This test program is no JVM: nothing said, nothing counted. */
	th_process_new(h, (uint32_t)getpid(), "/proc/self/exe");
	ck_assert_uint_eq(th_n_logs(h, SONDE_LOG_WARN), 0);
	ck_assert_uint_eq(th_n_logs(h, SONDE_LOG_INFO), 0);
	/* A JVM that refuses attach: one line saying so, and never a SIGQUIT
	 * (which would print a thread dump on its stdout). */
	ck_assert_int_eq(jt_jvm_start(&a, "java", no_attach, "http", jt_free_port()), 0);
	ck_assert_int_eq(jt_jvm_wait_err(&a, "listening", 30000), 0);
	snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)a.pid);
	th_process_new(h, (uint32_t)a.pid, exe);
	settle(h, 1);
	ck_assert_uint_eq(th_n_logs(h, SONDE_LOG_WARN), 1);
	ck_assert_uint_eq(java_debug_counters()->procs_refused, 1);
	{
		char ans[64];

		ck_assert_int_eq(jt_jvm_cmd(&a, "ping", ans, sizeof(ans), 10000), 0);
		ck_assert_str_eq(ans, "pong"); /* no thread dump came before it */
	}
	/* A JVM that could be attached to, on a host without a kernel: the
	 * object cannot load, the process is refused with that reason. */
	ck_assert_int_eq(jt_jvm_start(&b, "java", NULL, "http", jt_free_port()), 0);
	ck_assert_int_eq(jt_jvm_wait_err(&b, "listening", 30000), 0);
	snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)b.pid);
	th_process_new(h, (uint32_t)b.pid, exe);
	settle(h, 2);
	ck_assert_uint_eq(th_n_logs(h, SONDE_LOG_WARN), 2);
	ck_assert_uint_eq(java_debug_counters()->procs_refused, 2);
	ck_assert_uint_eq(java_debug_counters()->procs_attached, 0);
	th_process_gone(h, (uint32_t)a.pid);
	th_process_gone(h, (uint32_t)b.pid);
	jt_jvm_stop(&a);
	jt_jvm_stop(&b);
	th_free(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("java_plugin");
	TCase *tc = tcase_create("plugin");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, refused_by_a_host_without_runtime_calls);
	tcase_add_test(tc, loads_and_claims_its_record_type);
	tcase_add_test(tc, plaintext_becomes_an_https_server_span);
	tcase_add_test(tc, plaintext_becomes_an_https_client_span);
	tcase_add_test(tc, plaintext_split_at_every_byte);
	tcase_add_test(tc, many_requests_and_streams_interleaved);
	tcase_add_test(tc, truncated_plaintext_keeps_the_stream);
	tcase_add_test(tc, missing_plaintext_is_a_gap);
	tcase_add_test(tc, plaintext_without_a_known_socket_is_counted);
	tcase_add_test(tc, agent_text_is_logged);
	tcase_add_test(tc, hand_off_parents_the_call_under_its_request);
	tcase_add_test(tc, virtual_threads_parent_their_calls);
	tcase_add_test(tc, bad_records_are_counted_and_ignored);
	tcase_add_test(tc, processes_each_get_one_verdict);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
