/*
 * sdk_test.c - the SDK 1.1 and 1.2 host calls, through the real host (core/host),
 * with the test itself as the plugin: a descriptor whose protocol records
 * the chunks it is fed and hands its host table and handle to the tests.
 *
 * The one idea: every 1.1 call is exercised the way a plugin makes it
 * (through struct sonde_host_api), and checked through what the host
 * exports (spans to a sink, metrics in the registry, Prometheus text),
 * never through the host's insides. Also here: a plugin built against the
 * frozen 1.0 header still loads and works, and a 1.0-sized histogram
 * description is accepted.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include "config/config.h"
#include "export/prom_text.h"
#include "host/host.h"
#include "telemetry/metrics.h"
#include "telemetry/span.h"

/* --- the plugin under test: the test itself ---------------------------------------- */

#define MAX_SEEN 64
static const struct sonde_host_api *H;
static struct sonde_plugin_handle *SELF;
static struct sonde_chunk seen[MAX_SEEN];
static int n_seen, n_records, n_timer, n_proc_new, n_proc_gone;
static uint32_t last_proc;

static int p_init(const struct sonde_host_api *host, struct sonde_plugin_handle *self, void **st)
{
	H = host;
	SELF = self;
	*st = NULL;
	return SONDE_OK;
}

static int p_detect(void *ps, const struct sonde_conn_info *ci, const struct sonde_chunk *c)
{
	return SONDE_DETECT_SURE;
}

static int p_open(void *ps, struct sonde_conn *conn, const struct sonde_conn_info *ci, void **cs)
{
	*cs = conn;
	return SONDE_OK;
}

static int p_data(void *cs, struct sonde_conn *conn, const struct sonde_chunk *c)
{
	if (n_seen < MAX_SEEN)
		seen[n_seen++] = *c;
	return SONDE_OK;
}

static void p_close(void *cs, struct sonde_conn *conn, uint64_t ts)
{
}

static int p_proc_new(void *ps, const struct sonde_process_info *pi)
{
	n_proc_new++;
	last_proc = pi->pid;
	return SONDE_OK;
}

static void p_proc_gone(void *ps, uint32_t pid)
{
	n_proc_gone++;
}

static void p_record(void *ps, const void *rec, size_t len)
{
	n_records++;
}

static const struct sonde_protocol probe_proto = {
	.struct_size = sizeof(struct sonde_protocol),
	.name = "probe",
	.detect = p_detect,
	.conn_open = p_open,
	.conn_data = p_data,
	.conn_close = p_close,
};
static const struct sonde_protocol *const probe_protos[] = {&probe_proto, NULL};

static const struct sonde_plugin probe_plugin = {
	.abi_major = SONDE_ABI_MAJOR,
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "probe",
	.version = "1",
	.license = "MIT",
	.init = p_init,
	.protocols = probe_protos,
	.process_new = p_proc_new,
	.process_gone = p_proc_gone,
	.record = p_record,
};

/* --- a host with a sink ---------------------------------------------------------------- */

static struct span *got[64];
static int n_got;

static void collect(void *ctx, struct span *s)
{
	if (n_got < 64)
		got[n_got++] = span_ref(s);
}

static struct span_sink sink = {.name = "t", .emit = collect};
static struct config cfg;
static struct metrics *reg;
static struct host *host;

static void setup(void)
{
	struct host_opts o = {.struct_size = sizeof(o)};
	char why[256];

	config_init(&cfg);
	reg = metrics_new();
	o.cfg = &cfg;
	o.metrics = reg;
	o.verbose = -1;
	host = host_new(&o);
	ck_assert_ptr_nonnull(host);
	host_add_sink(host, &sink);
	n_seen = n_records = n_timer = n_proc_new = n_proc_gone = n_got = 0;
	ck_assert_int_eq(host_load_builtin(host, &probe_plugin, "sdk_test", why, sizeof(why)),
	                 SONDE_OK);
	ck_assert_uint_eq(H->abi_minor, SONDE_ABI_MINOR);
}

static void teardown(void)
{
	host_clear_sinks(host);
	host_free(host);
	metrics_free(reg);
	config_free(&cfg);
	for (int i = 0; i < n_got; i++)
		span_unref(got[i]);
}

static struct sonde_conn *conn(uint32_t pid, enum sonde_role role)
{
	struct host_conn_desc d;
	struct sonde_conn *c;

	memset(&d, 0, sizeof(d));
	d.info.struct_size = sizeof(d.info);
	d.info.pid = pid;
	d.info.role = role;
	d.info.service_name = d.info.exe_name = "svc";
	c = host_conn_new(host, &d);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(host_conn_assign(c, "probe"), SONDE_OK);
	return c;
}

static void feed(struct sonde_conn *c, uint32_t tid, const char *s)
{
	struct sonde_chunk ch = {.struct_size = sizeof(ch)};

	ch.data = (const uint8_t *)s;
	ch.len = ch.orig_len = strlen(s);
	ch.tid = tid;
	host_conn_data(c, &ch);
}

/* Start a span from inside conn_data of a chunk on thread tid (the host
 * takes the thread from the chunk being dispatched). */
static struct sonde_span *start_on(struct sonde_conn *c, uint32_t tid, enum sonde_span_kind kind,
                                   uint32_t flags, uint64_t context)
{
	struct sonde_span_opts o = {.struct_size = sizeof(o), .kind = kind, .name = "x",
	                            .start_unix_ns = 1000, .flags = flags, .context = context};

	feed(c, tid, "."); /* sets the host's current thread */
	return H->span_start_v2(c, &o);
}

static const struct span *ended_named(const char *name)
{
	for (int i = 0; i < n_got; i++)
		if (!strcmp(got[i]->name, name))
			return got[i];
	return NULL;
}

static int is_child_of(const struct span *c, const struct span *p)
{
	return !memcmp(c->trace_id, p->trace_id, 16) && !memcmp(c->parent_span_id, p->span_id, 8);
}

static int is_root(const struct span *s)
{
	static const uint8_t zero[8];

	return !memcmp(s->parent_span_id, zero, 8);
}

/* --- tests ------------------------------------------------------------------------------ */

START_TEST(parent_from_thread_only_when_unambiguous)
{
	setup();
	struct sonde_conn *in1 = conn(1, SONDE_ROLE_SERVER), *in2 = conn(1, SONDE_ROLE_SERVER);
	struct sonde_conn *out = conn(1, SONDE_ROLE_CLIENT);
	struct sonde_span *srv = start_on(in1, 7, SONDE_SPAN_SERVER, 0, 0);
	struct sonde_span *cli = start_on(out, 7, SONDE_SPAN_CLIENT, 0, 0);

	H->span_set_name(srv, "server1");
	H->span_set_name(cli, "client1");
	H->span_end(cli, 2000);
	/* A second request open on the same thread: an event loop. */
	struct sonde_span *srv2 = start_on(in2, 7, SONDE_SPAN_SERVER, 0, 0);
	struct sonde_span *cli2 = start_on(out, 7, SONDE_SPAN_CLIENT, 0, 0);

	H->span_set_name(cli2, "client2");
	H->span_end(cli2, 2000);
	H->span_end(srv2, 3000);
	H->span_end(srv, 3000);
	ck_assert(is_child_of(ended_named("client1"), ended_named("server1")));
	ck_assert(is_root(ended_named("client2"))); /* two open: no guess */
	/* NO_PARENT is obeyed even when unambiguous. */
	srv = start_on(in1, 9, SONDE_SPAN_SERVER, 0, 0);
	cli = start_on(out, 9, SONDE_SPAN_CLIENT, SONDE_SPAN_NO_PARENT, 0);
	H->span_set_name(cli, "client3");
	H->span_end(cli, 2000);
	H->span_end(srv, 3000);
	ck_assert(is_root(ended_named("client3")));
	host_conn_close(in1, 0);
	host_conn_close(in2, 0);
	host_conn_close(out, 0);
	teardown();
}
END_TEST

START_TEST(parent_explicit_context_and_links)
{
	setup();
	struct sonde_conn *in = conn(1, SONDE_ROLE_SERVER), *out = conn(1, SONDE_ROLE_CLIENT);
	struct sonde_span *srv = start_on(in, 7, SONDE_SPAN_SERVER, SONDE_SPAN_NOT_ACTIVE, 0);
	struct sonde_span_opts o = {.struct_size = sizeof(o), .kind = SONDE_SPAN_CLIENT,
	                            .name = "explicit", .start_unix_ns = 1};
	struct sonde_span_context ctx = {.struct_size = sizeof(ctx)};

	H->span_set_name(srv, "server");
	o.parent = srv;
	H->span_end(H->span_start_v2(out, &o), 2);
	/* NOT_ACTIVE: the thread has no active server span. */
	H->span_end(start_on(out, 7, SONDE_SPAN_CLIENT, 0, 0), 3);
	ck_assert_int_eq(H->span_context(srv, &ctx), SONDE_OK);
	o.parent = NULL;
	o.parent_ctx = &ctx;
	o.name = "from_ctx";
	struct sonde_span *c2 = H->span_start_v2(out, &o);
	ck_assert_int_eq(H->span_add_link(c2, &ctx), SONDE_OK);
	H->span_end(c2, 3);
	H->span_end(srv, 4);
	ck_assert(is_child_of(ended_named("explicit"), ended_named("server")));
	ck_assert(is_child_of(ended_named("from_ctx"), ended_named("server")));
	ck_assert_uint_eq(ended_named("from_ctx")->n_links, 1);
	ck_assert_mem_eq(ended_named("from_ctx")->links[0].span_id, ctx.span_id, 8);
	ck_assert(is_root(ended_named("x")));
	host_conn_close(in, 0);
	host_conn_close(out, 0);
	teardown();
}
END_TEST

/* Goroutine-style contexts: the request's context serves the server span;
 * a context started from it (linked) finds it as its parent, whatever
 * thread it runs on. */
START_TEST(parent_through_runtime_contexts)
{
	setup();
	struct sonde_conn *in = conn(42, SONDE_ROLE_SERVER), *out = conn(42, SONDE_ROLE_CLIENT);
	struct sonde_span *a = start_on(in, 7, SONDE_SPAN_SERVER, 0, 100);
	struct sonde_span *b = start_on(in, 7, SONDE_SPAN_SERVER, 0, 200);

	H->span_set_name(a, "req_a");
	H->span_set_name(b, "req_b");
	H->context_link(SELF, 42, 101, 100); /* 100 started 101 */
	H->context_link(SELF, 42, 102, 101); /* and 101 started 102 */
	struct sonde_span *ca = start_on(out, 8, SONDE_SPAN_CLIENT, 0, 102);
	struct sonde_span *cb = start_on(out, 7, SONDE_SPAN_CLIENT, 0, 200);
	struct sonde_span *cx = start_on(out, 7, SONDE_SPAN_CLIENT, 0, 999); /* unknown */

	H->span_set_name(ca, "call_a");
	H->span_set_name(cb, "call_b");
	H->span_set_name(cx, "call_x");
	H->span_end(ca, 2);
	H->span_end(cb, 2);
	H->span_end(cx, 2);
	H->span_end(a, 3);
	H->span_end(b, 3);
	ck_assert(is_child_of(ended_named("call_a"), ended_named("req_a")));
	ck_assert(is_child_of(ended_named("call_b"), ended_named("req_b")));
	ck_assert(is_root(ended_named("call_x"))); /* a context: never the thread's guess */
	H->context_end(SELF, 42, 102);
	host_conn_close(in, 0);
	host_conn_close(out, 0);
	teardown();
}
END_TEST

/* 1.2 stream contexts: what a runtime plugin gives per stream is taken
 * once, by stream, whatever order streams are given and taken in; a
 * stream nobody gave has none; the oldest goes when the list is full. */
START_TEST(stream_contexts_given_and_taken)
{
	setup();
	struct sonde_conn *c = conn(42, SONDE_ROLE_CLIENT);

	ck_assert_uint_eq(H->abi_minor, 2);
	ck_assert(SONDE_HAS_FIELD(H, struct sonde_host_api, conn_stream_context_take));
	ck_assert_int_eq(H->conn_stream_context_set(NULL, 1, 5), SONDE_ERR_INVAL);
	ck_assert_uint_eq(H->conn_stream_context_take(NULL, 1), 0);
	ck_assert_uint_eq(H->conn_stream_context_take(c, 1), 0); /* nothing given yet */
	ck_assert_int_eq(H->conn_stream_context_set(c, 1, 100), SONDE_OK);
	ck_assert_int_eq(H->conn_stream_context_set(c, 3, 300), SONDE_OK);
	ck_assert_int_eq(H->conn_stream_context_set(c, 5, 500), SONDE_OK);
	ck_assert_int_eq(H->conn_stream_context_set(c, 5, 0), SONDE_OK); /* forget 5 */
	ck_assert_int_eq(H->conn_stream_context_set(c, 1, 111), SONDE_OK); /* later wins */
	ck_assert_uint_eq(H->conn_stream_context_take(c, 3), 300);
	ck_assert_uint_eq(H->conn_stream_context_take(c, 3), 0); /* taken once */
	ck_assert_uint_eq(H->conn_stream_context_take(c, 5), 0);
	ck_assert_uint_eq(H->conn_stream_context_take(c, 1), 111);
	for (uint64_t s = 1; s <= SONDE_STREAM_CTX_MAX + 2; s++)
		ck_assert_int_eq(H->conn_stream_context_set(c, s * 2 + 1, 1000 + s), SONDE_OK);
	ck_assert_uint_eq(H->conn_stream_context_take(c, 3), 0); /* pushed out */
	ck_assert_uint_eq(H->conn_stream_context_take(c, 5), 0);
	ck_assert_uint_eq(H->conn_stream_context_take(c, 7), 1003);
	ck_assert_uint_eq(H->conn_stream_context_take(c, (SONDE_STREAM_CTX_MAX + 2) * 2 + 1),
	                  1000 + SONDE_STREAM_CTX_MAX + 2);
	ck_assert_uint_eq(host_counters(host)->stream_ctx_forgotten, 2);
	ck_assert_uint_eq(host_counters(host)->stream_ctx_taken, 4);

	/* A span started with the taken key finds that context's server span. */
	struct sonde_conn *in = conn(42, SONDE_ROLE_SERVER);
	struct sonde_span *a = start_on(in, 7, SONDE_SPAN_SERVER, 0, 100);
	struct sonde_span *b = start_on(in, 7, SONDE_SPAN_SERVER, 0, 200);

	H->span_set_name(a, "req_a");
	H->span_set_name(b, "req_b");
	H->conn_stream_context_set(c, 101, 200);
	H->conn_stream_context_set(c, 103, 100);
	struct sonde_span *s103 = start_on(c, 9, SONDE_SPAN_CLIENT, 0, H->conn_stream_context_take(c, 103));
	struct sonde_span *s101 = start_on(c, 9, SONDE_SPAN_CLIENT, 0, H->conn_stream_context_take(c, 101));

	H->span_set_name(s103, "call_103");
	H->span_set_name(s101, "call_101");
	H->span_end(s103, 2);
	H->span_end(s101, 2);
	H->span_end(a, 3);
	H->span_end(b, 3);
	ck_assert(is_child_of(ended_named("call_103"), ended_named("req_a")));
	ck_assert(is_child_of(ended_named("call_101"), ended_named("req_b")));
	host_conn_close(in, 0);
	host_conn_close(c, 0); /* frees what is left */
	teardown();
}
END_TEST

START_TEST(counters_timers_records_processes)
{
	static const char *const keys[] = {"messaging.destination.name"};
	struct sonde_counter_desc d = {.struct_size = sizeof(d), .name = "messaging.client.sent.messages",
	                               .unit = "{message}", .attr_keys = keys, .n_attr_keys = 1};
	const char *vals[] = {"orders"};
	struct sonde_process_info pi = {.struct_size = sizeof(pi), .pid = 77, .exe_path = "/bin/x",
	                                .service_name = "x"};
	uint8_t rec[32] = {0};
	uint32_t type = SONDE_RECORD_PLUGIN_FIRST + 5;
	char *text;

	setup();
	struct sonde_metric *m = H->counter_register(SELF, &d);
	ck_assert_ptr_nonnull(m);
	H->counter_add(m, NULL, 3, vals);
	H->counter_add(m, NULL, 4, vals);
	H->counter_add(m, NULL, -1, vals); /* a counter never goes down: refused */
	ck_assert_uint_eq(host_counters(host)->api_misuse, 1);
	text = prom_render(reg);
	ck_assert_msg(strstr(text, "messaging_client_sent_messages_total{messaging_destination_name=\"orders\"} 7"),
	              "%s", text);
	ck_assert_ptr_nonnull(strstr(text, "# TYPE messaging_client_sent_messages_total counter"));
	free(text);

	/* timers run when due, periodic ones again */
	struct sonde_timer *t = H->timer_start(SELF, 100, 50, (sonde_timer_fn)(void (*)(void))0, NULL);
	ck_assert_ptr_null(t); /* no function: refused */
	extern void tick(void *, uint64_t);
	t = H->timer_start(SELF, 0, 1000000000ull, tick, NULL);
	ck_assert_ptr_nonnull(t);
	uint64_t next = host_timers_run(host, (uint64_t)1 << 62);
	ck_assert_int_eq(n_timer, 1);
	ck_assert_uint_gt(next, (uint64_t)1 << 62);
	host_timers_run(host, next - 1);
	ck_assert_int_eq(n_timer, 1);
	host_timers_run(host, next);
	ck_assert_int_eq(n_timer, 2);
	H->timer_stop(t);
	ck_assert_uint_eq(host_timers_run(host, next * 2), 0);
	ck_assert_int_eq(n_timer, 2);

	/* claimed records come back; others do not; one claim per range */
	memcpy(rec, &type, 4);
	ck_assert_int_eq(host_record(host, rec, sizeof(rec)), 0);
	ck_assert_int_eq(H->records_claim(SELF, 10, 4), SONDE_ERR_INVAL);
	ck_assert_int_eq(H->records_claim(SELF, SONDE_RECORD_PLUGIN_FIRST, 8), SONDE_OK);
	ck_assert_int_eq(host_record(host, rec, sizeof(rec)), 1);
	ck_assert_int_eq(n_records, 1);

	/* processes: announced, and to a plugin loaded later too */
	host_process_new(host, &pi);
	ck_assert_int_eq(n_proc_new, 1);
	ck_assert_uint_eq(last_proc, 77);
	host_process_gone(host, 77);
	ck_assert_int_eq(n_proc_gone, 1);
	teardown();
}
END_TEST

void tick(void *arg, uint64_t now)
{
	n_timer++;
}

START_TEST(capture_policy_and_inject)
{
	struct sonde_capture_policy p = {.struct_size = sizeof(p), .flags = 0, .cap = 99999,
	                                 .skip_to = {0, 5000}};
	struct sonde_capture_policy got_p;
	struct sonde_chunk ch = {.struct_size = sizeof(ch)};

	setup();
	struct sonde_conn *c = conn(5, SONDE_ROLE_SERVER);
	ck_assert_int_eq(host_conn_capture(c, &got_p), 0);
	ck_assert_int_eq(H->conn_set_capture(c, &p), SONDE_ERR_UNSUPPORTED); /* no kernel */
	ck_assert_int_eq(host_conn_capture(c, &got_p), 1);
	ck_assert_uint_eq(got_p.cap, 16384); /* clamped */
	ck_assert_uint_eq(got_p.skip_to[1], 5000);
	ck_assert_int_eq(host_conn_capture(c, &got_p), 0); /* reported once */

	/* injected plaintext reaches the owner as a RUNTIME chunk */
	ch.data = (const uint8_t *)"hello";
	ch.len = 5;
	ch.pos = 10;
	ck_assert_int_eq(H->conn_inject(c, &ch), SONDE_OK);
	ck_assert_int_eq(n_seen, 1);
	ck_assert_uint_eq(seen[0].source, SONDE_SRC_RUNTIME);
	ck_assert_uint_eq(seen[0].pos, 10);
	ck_assert_uint_eq(seen[0].orig_len, 5);
	ck_assert_int_eq(H->conn_info(c)->tls, 1);
	/* a 1.0-sized chunk (no pos/source) is accepted too */
	ch.struct_size = offsetof(struct sonde_chunk, pos);
	ck_assert_int_eq(H->conn_inject(c, &ch), SONDE_OK);
	ck_assert_uint_eq(seen[1].pos, 0);
	/* without a kernel, no BPF, no lookups */
	struct sonde_bpf *b = NULL;
	struct sonde_bpf_opts bo = {.struct_size = sizeof(bo), .obj = "x", .obj_len = 1};
	ck_assert_int_eq(H->bpf_load(SELF, &bo, &b), SONDE_ERR_UNSUPPORTED);
	ck_assert_ptr_null(H->conn_lookup(SELF, 5, 3));
	ck_assert_int_eq(H->process_set(SELF, 5, SONDE_PROCESS_CONTEXTS), SONDE_ERR_UNSUPPORTED);
	host_conn_close(c, 0);
	teardown();
}
END_TEST

/* Two plugins, one semantic-convention histogram, different attribute keys:
 * the metric's keys are the union and each point keeps its own values. */
static const struct sonde_host_api *H2;
static struct sonde_plugin_handle *SELF2;

static int p2_init(const struct sonde_host_api *host, struct sonde_plugin_handle *self, void **st)
{
	H2 = host;
	SELF2 = self;
	return SONDE_OK;
}

static const struct sonde_plugin other_plugin = {
	.abi_major = SONDE_ABI_MAJOR,
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "other",
	.init = p2_init,
};

START_TEST(histogram_shared_by_two_plugins)
{
	static const double b[] = {0.1, 1};
	static const char *const k1[] = {"db.system.name", "db.operation.name"};
	static const char *const k2[] = {"db.system", "db.operation.name", "db.collection.name"};
	struct sonde_histogram_desc d = {.struct_size = sizeof(d), .name = "db.client.operation.duration",
	                                 .unit = "s", .bounds = b, .n_bounds = 2};
	const char *v1[] = {"redis", "GET"}, *v2[] = {"postgresql", "SELECT", "items"};
	char why[128], *text;

	setup();
	ck_assert_int_eq(host_load_builtin(host, &other_plugin, "other", why, sizeof(why)), SONDE_OK);
	d.attr_keys = k1;
	d.n_attr_keys = 2;
	struct sonde_metric *m1 = H->histogram_register(SELF, &d);
	H->histogram_record(m1, NULL, 0.05, v1);
	d.attr_keys = k2;
	d.n_attr_keys = 3;
	struct sonde_metric *m2 = H2->histogram_register(SELF2, &d);
	ck_assert_ptr_nonnull(m2);
	ck_assert_ptr_ne(m1, m2);
	H2->histogram_record(m2, NULL, 0.5, v2);
	H->histogram_record(m1, NULL, 0.05, v1);
	text = prom_render(reg);
	ck_assert_msg(strstr(text, "db_client_operation_duration_seconds_count{db_system_name=\"redis\","
	                           "db_operation_name=\"GET\"} 2"), "%s", text);
	ck_assert_msg(strstr(text, "db_client_operation_duration_seconds_count{db_operation_name=\"SELECT\","
	                           "db_system=\"postgresql\",db_collection_name=\"items\"} 1"), "%s", text);
	free(text);
	/* another unit for the same name is refused, not mixed in */
	d.unit = "ms";
	d.name = "db.client.operation.duration";
	ck_assert_ptr_eq(H2->histogram_register(SELF2, &d), m2); /* the plugin's own handle */
	teardown();
}
END_TEST

/* A 1.0 histogram description (ending after n_attr_keys) is accepted. */
START_TEST(histogram_desc_of_an_older_minor)
{
	static const double b[] = {0.1, 1};
	struct sonde_histogram_desc d = {.name = "x.duration", .unit = "s", .bounds = b,
	                                 .n_bounds = 2};

	setup();
	d.struct_size = offsetof(struct sonde_histogram_desc, n_attr_keys) + sizeof(size_t);
	ck_assert_ptr_nonnull(H->histogram_register(SELF, &d));
	d.name = "y.duration";
	d.struct_size = 8; /* too small to hold the 1.0 fields */
	ck_assert_ptr_null(H->histogram_register(SELF, &d));
	teardown();
}
END_TEST

/* The fixture plugin compiled against the frozen 1.0 header loads in this
 * host and answers PING with a span. */
START_TEST(plugin_built_for_abi_1_0_loads)
{
	struct host_opts o = {.struct_size = sizeof(o)};
	struct metrics *m = metrics_new();
	struct host *h2;

	n_got = 0;
	o.metrics = m;
	o.verbose = -1;
	h2 = host_new(&o);
	host_add_sink(h2, &sink);
	plugins_add_dir(host_plugins(h2), SONDE_FIXTURE_ABI10_DIR);
	ck_assert_int_eq(plugins_scan(host_plugins(h2), false), 1);
	ck_assert_uint_eq(host_plugins(h2)->files[0]->desc->abi_minor, 0);
	struct host_conn_desc d;
	memset(&d, 0, sizeof(d));
	d.info.struct_size = sizeof(d.info);
	d.info.role = SONDE_ROLE_SERVER;
	d.info.service_name = d.info.exe_name = "x";
	struct sonde_conn *c = host_conn_new(h2, &d);
	struct sonde_chunk ch = {.struct_size = sizeof(ch), .data = (const uint8_t *)"PING\n",
	                         .len = 5, .orig_len = 5};
	host_conn_data(c, &ch);
	ch.dir = SONDE_DIR_EGRESS;
	ch.data = (const uint8_t *)"PONG\n";
	host_conn_data(c, &ch);
	ck_assert_int_eq(n_got, 1);
	host_conn_close(c, 0);
	host_clear_sinks(h2);
	host_free(h2);
	metrics_free(m);
	span_unref(got[0]);
	n_got = 0;
}
END_TEST

static Suite *sdk_suite(void)
{
	Suite *s = suite_create("sdk");
	TCase *t = tcase_create("v1_1");

	tcase_add_test(t, parent_from_thread_only_when_unambiguous);
	tcase_add_test(t, parent_explicit_context_and_links);
	tcase_add_test(t, parent_through_runtime_contexts);
	tcase_add_test(t, stream_contexts_given_and_taken);
	tcase_add_test(t, counters_timers_records_processes);
	tcase_add_test(t, capture_policy_and_inject);
	tcase_add_test(t, histogram_desc_of_an_older_minor);
	tcase_add_test(t, histogram_shared_by_two_plugins);
	tcase_add_test(t, plugin_built_for_abi_1_0_loads);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sdk_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
