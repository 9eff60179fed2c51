/*
 * metrics_test.c - histogram buckets, series identity, the overflow series,
 * self-metrics, and the Prometheus text output (golden, exact lines), plus
 * the OpenTelemetry -> Prometheus name and label conversion.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export/prom_text.h"
#include "telemetry/metrics.h"
#include "telemetry/span.h"

static struct resource *mkres(const char *svc, uint32_t pid)
{
	struct resource *r = calloc(1, sizeof(*r));

	r->refs = 1;
	r->pid = pid;
	r->service_name = strdup(svc);
	attr_set_str(&r->attrs, "service.name", svc, strlen(svc));
	attr_set_int(&r->attrs, "process.pid", pid);
	return r;
}

/* Collects copies of every point the registry reports. */
struct pt {
	char name[64];
	const struct resource *res;
	size_t n_attrs;
	char keys[4][64];
	char vals[4][64]; /* "\x01" marks absent */
	size_t n_bounds;
	uint64_t buckets[16];
	uint64_t count;
	double sum, min, max;
	uint64_t start;
};

struct pts {
	struct pt p[2100];
	size_t n;
};

static void collect(void *ctx, const struct hist_point *p)
{
	struct pts *ps = ctx;
	struct pt *o = &ps->p[ps->n++];

	snprintf(o->name, sizeof(o->name), "%s", p->name);
	o->res = p->res;
	o->n_attrs = p->n_attrs;
	for (size_t i = 0; i < p->n_attrs && i < 4; i++) {
		snprintf(o->keys[i], sizeof(o->keys[i]), "%s", p->attr_keys[i]);
		snprintf(o->vals[i], sizeof(o->vals[i]), "%s",
		         p->attr_values[i] ? p->attr_values[i] : "\x01");
	}
	o->n_bounds = p->n_bounds;
	for (size_t i = 0; i <= p->n_bounds && i < 16; i++)
		o->buckets[i] = p->bucket_counts[i];
	o->count = p->count;
	o->sum = p->sum;
	o->min = p->min;
	o->max = p->max;
	o->start = p->start_unix_ns;
}

static struct pts *points(struct metrics *m)
{
	struct pts *ps = calloc(1, sizeof(*ps));

	metrics_foreach_hist(m, collect, ps);
	return ps;
}

START_TEST(duration_buckets)
{
	static const double want[] = { 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
	                               0.5,   0.75, 1,     2.5,  5,     7.5,  10 };

	ck_assert_uint_eq(METRICS_DURATION_BUCKETS_N, 14);
	for (size_t i = 0; i < 14; i++)
		ck_assert_double_eq(METRICS_DURATION_BUCKETS[i], want[i]);
}
END_TEST

START_TEST(bucket_boundaries_inclusive)
{
	static const double b[] = { 1, 2, 5 };
	struct metrics *m = metrics_new();
	struct metric_hist *h = metrics_hist(m, "t.dur", "s", "d", b, 3, NULL, 0);
	struct pts *ps;

	ck_assert_ptr_nonnull(h);
	metrics_hist_record(h, NULL, 1.0, NULL);        /* == bound 0 -> bucket 0 */
	metrics_hist_record(h, NULL, 0.0, NULL);        /* bucket 0 */
	metrics_hist_record(h, NULL, -3.0, NULL);       /* bucket 0 */
	metrics_hist_record(h, NULL, 1.0000001, NULL);  /* bucket 1 */
	metrics_hist_record(h, NULL, 2.0, NULL);        /* == bound 1 -> bucket 1 */
	metrics_hist_record(h, NULL, 5.0, NULL);        /* == bound 2 -> bucket 2 */
	metrics_hist_record(h, NULL, 5.5, NULL);        /* +Inf */
	metrics_hist_record(h, NULL, INFINITY, NULL);   /* +Inf */
	metrics_hist_record(h, NULL, NAN, NULL);        /* ignored */
	ps = points(m);
	ck_assert_uint_eq(ps->n, 1);
	ck_assert_uint_eq(ps->p[0].n_bounds, 3);
	ck_assert_uint_eq(ps->p[0].buckets[0], 3);
	ck_assert_uint_eq(ps->p[0].buckets[1], 2);
	ck_assert_uint_eq(ps->p[0].buckets[2], 1);
	ck_assert_uint_eq(ps->p[0].buckets[3], 2);
	ck_assert_uint_eq(ps->p[0].count, 8);
	ck_assert_double_eq(ps->p[0].min, -3.0);
	ck_assert(isinf(ps->p[0].max));
	ck_assert(isinf(ps->p[0].sum));
	ck_assert_ptr_null(ps->p[0].res);
	ck_assert_uint_eq(ps->p[0].n_attrs, 0);
	free(ps);
	metrics_free(m);
}
END_TEST

START_TEST(count_sum_min_max_start)
{
	static const double b[] = { 0.5 };
	struct metrics *m = metrics_new();
	struct metric_hist *h = metrics_hist(m, "t", "s", NULL, b, 1, NULL, 0);
	struct timespec ts;
	uint64_t before;
	struct pts *ps;

	clock_gettime(CLOCK_REALTIME, &ts);
	before = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	metrics_hist_record(h, NULL, 0.25, NULL);
	metrics_hist_record(h, NULL, 0.75, NULL);
	metrics_hist_record(h, NULL, 0.125, NULL);
	ps = points(m);
	ck_assert_uint_eq(ps->p[0].count, 3);
	ck_assert_double_eq(ps->p[0].sum, 1.125);
	ck_assert_double_eq(ps->p[0].min, 0.125);
	ck_assert_double_eq(ps->p[0].max, 0.75);
	ck_assert_uint_ge(ps->p[0].start, before);
	ck_assert_uint_lt(ps->p[0].start, before + 60ull * 1000000000ull);
	free(ps);
	metrics_free(m);
}
END_TEST

START_TEST(series_per_attribute_set)
{
	static const char *const keys[] = { "http.request.method", "http.route" };
	const char *get_a[] = { "GET", "/a" };
	const char *get_b[] = { "GET", "/b" };
	const char *get_absent[] = { "GET", NULL };
	const char *get_empty[] = { "GET", "" };
	struct metrics *m = metrics_new();
	struct metric_hist *h = metrics_hist(m, "t", "s", NULL, METRICS_DURATION_BUCKETS,
	                                     METRICS_DURATION_BUCKETS_N, keys, 2);
	struct pts *ps;
	char route[8] = "/a";
	const char *mutable_vals[] = { "GET", route };

	metrics_hist_record(h, NULL, 0.1, get_a);
	metrics_hist_record(h, NULL, 0.1, mutable_vals);  /* same set as get_a */
	route[1] = 'z';                                    /* values were copied */
	metrics_hist_record(h, NULL, 0.1, get_b);
	metrics_hist_record(h, NULL, 0.1, get_absent);
	metrics_hist_record(h, NULL, 0.1, get_empty);      /* "" differs from absent */
	metrics_hist_record(h, NULL, 0.1, get_a);          /* back to an earlier set */
	metrics_hist_record(h, NULL, 0.1, get_empty);
	ps = points(m);
	ck_assert_uint_eq(ps->n, 4);
	ck_assert_str_eq(ps->p[0].vals[1], "/a");
	ck_assert_uint_eq(ps->p[0].count, 3);
	ck_assert_uint_eq(ps->p[1].count, 1);
	ck_assert_uint_eq(ps->p[2].count, 1);
	ck_assert_uint_eq(ps->p[3].count, 2);
	ck_assert_str_eq(ps->p[1].vals[1], "/b");
	ck_assert_str_eq(ps->p[2].vals[1], "\x01");
	ck_assert_str_eq(ps->p[3].vals[1], "");
	ck_assert_str_eq(ps->p[0].keys[0], "http.request.method");
	free(ps);
	metrics_free(m);
}
END_TEST

START_TEST(series_per_service_not_pid)
{
	static const char *const keys[] = { "k" };
	const char *v[] = { "x" };
	struct resource *master = mkres("nginx", 100);
	struct resource *worker = mkres("nginx", 101);
	struct resource *other = mkres("redis", 200);
	struct metrics *m = metrics_new();
	struct metric_hist *h = metrics_hist(m, "t", "s", NULL, METRICS_DURATION_BUCKETS,
	                                     METRICS_DURATION_BUCKETS_N, keys, 1);
	struct pts *ps;

	metrics_hist_record(h, master, 0.1, v);
	metrics_hist_record(h, worker, 0.2, v);
	metrics_hist_record(h, other, 0.3, v);
	ps = points(m);
	ck_assert_uint_eq(ps->n, 2);
	ck_assert_ptr_eq(ps->p[0].res, master); /* the first resource seen */
	ck_assert_uint_eq(ps->p[0].count, 2);
	ck_assert_ptr_eq(ps->p[1].res, other);
	/* The registry holds its own reference on each series' resource. */
	ck_assert_int_eq(master->refs, 2);
	ck_assert_int_eq(worker->refs, 1);
	resource_unref(master);
	resource_unref(worker);
	resource_unref(other);
	/* Still readable after the owners let go. */
	free(ps);
	ps = points(m);
	ck_assert_str_eq(ps->p[0].res->service_name, "nginx");
	free(ps);
	metrics_free(m); /* drops the last references (LSan) */
}
END_TEST

START_TEST(overflow_series)
{
	static const char *const keys[] = { "http.route" };
	static const double b[] = { 1 };
	struct resource *r = mkres("api", 1);
	struct metrics *m = metrics_new();
	struct metric_hist *h = metrics_hist(m, "t", "s", NULL, b, 1, keys, 1);
	char route[32];
	const char *v[] = { route };
	struct pts *ps;
	size_t over = 0, regular_first = 0;

	for (int i = 0; i < 2005; i++) {
		snprintf(route, sizeof(route), "/r/%d", i);
		metrics_hist_record(h, r, 0.5, v);
	}
	snprintf(route, sizeof(route), "/r/0"); /* an existing set still has its series */
	metrics_hist_record(h, r, 0.5, v);
	ps = points(m);
	ck_assert_uint_eq(ps->n, 2001);
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->p[i].n_attrs == 1 && strcmp(ps->p[i].keys[0], "otel.metric.overflow") == 0) {
			over++;
			ck_assert_str_eq(ps->p[i].vals[0], "true");
			ck_assert_uint_eq(ps->p[i].count, 5);
			ck_assert_ptr_eq(ps->p[i].res, r);
		}
		if (strcmp(ps->p[i].vals[0], "/r/0") == 0)
			regular_first = ps->p[i].count;
	}
	ck_assert_uint_eq(over, 1);
	ck_assert_uint_eq(regular_first, 2);
	free(ps);
	resource_unref(r);
	metrics_free(m);
}
END_TEST

START_TEST(register_find_and_mismatch)
{
	static const double b1[] = { 1, 2 }, b2[] = { 1, 3 }, bad[] = { 2, 1 }, dup[] = { 1, 1 };
	static const char *const k1[] = { "a" }, *const k2[] = { "b" };
	struct metrics *m = metrics_new();
	struct metric_hist *h = metrics_hist(m, "x", "s", "one", b1, 2, k1, 1);

	ck_assert_ptr_nonnull(h);
	ck_assert_ptr_eq(metrics_hist(m, "x", "s", "other text", b1, 2, k1, 1), h);
	ck_assert_ptr_null(metrics_hist(m, "x", "s", NULL, b2, 2, k1, 1));
	ck_assert_ptr_null(metrics_hist(m, "x", "s", NULL, b1, 1, k1, 1));
	ck_assert_ptr_null(metrics_hist(m, "x", "ms", NULL, b1, 2, k1, 1));
	ck_assert_ptr_null(metrics_hist(m, "x", "s", NULL, b1, 2, k2, 1));
	ck_assert_ptr_null(metrics_hist(m, "x", "s", NULL, b1, 2, NULL, 0));
	ck_assert_ptr_null(metrics_hist(m, "y", "s", NULL, bad, 2, NULL, 0));
	ck_assert_ptr_null(metrics_hist(m, "y", "s", NULL, dup, 2, NULL, 0));
	ck_assert_ptr_null(metrics_hist(m, "", "s", NULL, b1, 2, NULL, 0));
	ck_assert_ptr_null(metrics_hist(m, NULL, "s", NULL, b1, 2, NULL, 0));
	ck_assert_ptr_nonnull(metrics_hist(m, "z", NULL, NULL, NULL, 0, NULL, 0));
	metrics_hist_record(NULL, NULL, 1, NULL); /* harmless */
	metrics_free(m);
}
END_TEST

static const char golden[] =
	"# HELP http_server_request_duration_seconds Duration of HTTP server requests.\n"
	"# TYPE http_server_request_duration_seconds histogram\n"
	"http_server_request_duration_seconds_bucket{service_name=\"cart\",http_request_method=\"POST\",le=\"0.125\"} 0\n"
	"http_server_request_duration_seconds_bucket{service_name=\"cart\",http_request_method=\"POST\",le=\"1\"} 0\n"
	"http_server_request_duration_seconds_bucket{service_name=\"cart\",http_request_method=\"POST\",le=\"+Inf\"} 1\n"
	"http_server_request_duration_seconds_sum{service_name=\"cart\",http_request_method=\"POST\"} 2\n"
	"http_server_request_duration_seconds_count{service_name=\"cart\",http_request_method=\"POST\"} 1\n"
	"http_server_request_duration_seconds_bucket{service_name=\"checkout\",http_request_method=\"GET\",http_response_status_code=\"200\",le=\"0.125\"} 2\n"
	"http_server_request_duration_seconds_bucket{service_name=\"checkout\",http_request_method=\"GET\",http_response_status_code=\"200\",le=\"1\"} 3\n"
	"http_server_request_duration_seconds_bucket{service_name=\"checkout\",http_request_method=\"GET\",http_response_status_code=\"200\",le=\"+Inf\"} 3\n"
	"http_server_request_duration_seconds_sum{service_name=\"checkout\",http_request_method=\"GET\",http_response_status_code=\"200\"} 0.6875\n"
	"http_server_request_duration_seconds_count{service_name=\"checkout\",http_request_method=\"GET\",http_response_status_code=\"200\"} 3\n"
	"# TYPE rpc_client_calls histogram\n"
	"rpc_client_calls_bucket{le=\"2.5\"} 1\n"
	"rpc_client_calls_bucket{le=\"+Inf\"} 1\n"
	"rpc_client_calls_sum 0.5\n"
	"rpc_client_calls_count 1\n"
	"# HELP sonde_connections Open connections.\n"
	"# TYPE sonde_connections gauge\n"
	"sonde_connections 3.5\n"
	"# HELP sonde_events_total Events read from the ring buffer.\n"
	"# TYPE sonde_events_total counter\n"
	"sonde_events_total 42\n";

START_TEST(prometheus_golden)
{
	static const double b[] = { 0.125, 1 }, b2[] = { 2.5 };
	static const char *const keys[] = { "http.request.method", "http.response.status_code" };
	const char *get200[] = { "GET", "200" };
	const char *post[] = { "POST", NULL };
	struct resource *a = mkres("checkout", 10), *b_ = mkres("checkout", 11);
	struct resource *c = mkres("cart", 12);
	struct metrics *m = metrics_new();
	struct metric_hist *h, *h2;
	char *text;

	/* Registered out of order on purpose: output is sorted by name. */
	metrics_counter_set(m, "sonde_events_total", "Events read from the ring buffer.", 7);
	h2 = metrics_hist(m, "rpc.client.calls", "{call}", "", b2, 1, NULL, 0);
	h = metrics_hist(m, "http.server.request.duration", "s",
	                 "Duration of HTTP server requests.", b, 2, keys, 2);
	metrics_gauge_set(m, "sonde_connections", "Open connections.", 3.5);
	metrics_counter_set(m, "sonde_events_total", "Events read from the ring buffer.", 42);
	metrics_hist_record(h, c, 2.0, post);
	metrics_hist_record(h, a, 0.0625, get200);
	metrics_hist_record(h, b_, 0.125, get200); /* on the bound: le="0.125" */
	metrics_hist_record(h, a, 0.5, get200);
	metrics_hist_record(h2, NULL, 0.5, NULL);
	text = prom_render(m);
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, golden);
	free(text);
	resource_unref(a);
	resource_unref(b_);
	resource_unref(c);
	metrics_free(m);
}
END_TEST

START_TEST(prometheus_duration_bucket_lines)
{
	struct metrics *m = metrics_new();
	struct metric_hist *h = metrics_hist(m, "db.client.operation.duration", "s", NULL,
	                                     METRICS_DURATION_BUCKETS,
	                                     METRICS_DURATION_BUCKETS_N, NULL, 0);
	char *text;

	metrics_hist_record(h, NULL, 0.1, NULL);
	text = prom_render(m);
	ck_assert_ptr_nonnull(strstr(text, "db_client_operation_duration_seconds_bucket{le=\"0.005\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "db_client_operation_duration_seconds_bucket{le=\"0.075\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "db_client_operation_duration_seconds_bucket{le=\"0.1\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "db_client_operation_duration_seconds_bucket{le=\"7.5\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "db_client_operation_duration_seconds_bucket{le=\"10\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "db_client_operation_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "db_client_operation_duration_seconds_sum 0.1\n"));
	ck_assert_ptr_null(strstr(text, "# HELP")); /* no description, no HELP */
	free(text);
	metrics_free(m);
}
END_TEST

START_TEST(prometheus_escaping)
{
	static const char *const keys[] = { "v" };
	static const double b[] = { 1 };
	const char *weird[] = { "a\\b\"c\nd" };
	const char *bad_utf8[] = { "x\xff" "y\xc3\xa9" };
	struct resource *r = mkres("q\"s", 1);
	struct metrics *m = metrics_new();
	struct metric_hist *h = metrics_hist(m, "t", NULL, "help \\ with\nnewline \"quoted\"",
	                                     b, 1, keys, 1);
	char *text;

	metrics_hist_record(h, r, 0.5, weird);
	metrics_hist_record(h, NULL, 0.5, bad_utf8);
	text = prom_render(m);
	ck_assert_ptr_nonnull(strstr(text, "# HELP t help \\\\ with\\nnewline \"quoted\"\n"));
	ck_assert_ptr_nonnull(strstr(text,
		"t_bucket{service_name=\"q\\\"s\",v=\"a\\\\b\\\"c\\nd\",le=\"1\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "t_count{v=\"x\xef\xbf\xbdy\xc3\xa9\"} 1\n"));
	free(text);
	resource_unref(r);
	metrics_free(m);
}
END_TEST

START_TEST(prometheus_overflow_and_empty)
{
	static const char *const keys[] = { "http.route" };
	static const double b[] = { 1 };
	struct metrics *m = metrics_new();
	struct metric_hist *h = metrics_hist(m, "t", "s", NULL, b, 1, keys, 1);
	char route[32], *text;
	const char *v[] = { route };

	text = prom_render(m); /* a histogram without series: nothing */
	ck_assert_str_eq(text, "");
	free(text);
	for (int i = 0; i < 2001; i++) {
		snprintf(route, sizeof(route), "/%d", i);
		metrics_hist_record(h, NULL, 0.5, v);
	}
	text = prom_render(m);
	ck_assert_ptr_nonnull(strstr(text, "t_seconds_count{otel_metric_overflow=\"true\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "t_seconds_count{http_route=\"/1999\"} 1\n"));
	ck_assert_ptr_null(strstr(text, "/2000"));
	free(text);
	metrics_free(m);
}
END_TEST

START_TEST(metric_names)
{
	static const struct {
		const char *name, *unit, *want;
	} cases[] = {
		{ "http.server.request.duration", "s", "http_server_request_duration_seconds" },
		{ "http.server.request.body.size", "By", "http_server_request_body_size_bytes" },
		{ "x.latency", "ms", "x_latency_milliseconds" },
		{ "rpc.server.requests", "{request}", "rpc_server_requests" },
		{ "net.io", "By/s", "net_io_bytes_per_second" },
		{ "net.packets", "{packet}/s", "net_packets_per_second" },
		{ "cpu.utilization", "1", "cpu_utilization" },
		{ "process.cpu.time_seconds", "s", "process_cpu_time_seconds" },
		{ "queue.size", "", "queue_size" },
		{ "queue.size", NULL, "queue_size" },
		{ "my-metric..name!", "packets", "my_metric_name_packets" },
		{ "(lambda).function.executions(#)", NULL, "lambda_function_executions" },
		{ "2xx.count", NULL, "_2xx_count" },
		{ "ns:thing", "KiBy", "ns:thing_kibibytes" },
		{ "seconds", "s", "seconds" },
	};
	char out[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_gt(prom_metric_name(cases[i].name, cases[i].unit, out, sizeof(out)), 0);
		ck_assert_msg(strcmp(out, cases[i].want) == 0, "%s [%s]: got %s want %s",
		              cases[i].name, cases[i].unit ? cases[i].unit : "(null)", out,
		              cases[i].want);
	}
	ck_assert_int_eq(prom_metric_name("...", NULL, out, sizeof(out)), -1);
	ck_assert_int_eq(prom_metric_name("http.server", "s", out, 8), 7); /* truncated */
	ck_assert_str_eq(out, "http_se");
}
END_TEST

START_TEST(label_names)
{
	char out[64];

	ck_assert_int_eq(prom_label_name("http.request.method", out, sizeof(out)), 19);
	ck_assert_str_eq(out, "http_request_method");
	prom_label_name("server.port", out, sizeof(out));
	ck_assert_str_eq(out, "server_port");
	prom_label_name("a-b/c..d", out, sizeof(out));
	ck_assert_str_eq(out, "a_b_c_d");
	prom_label_name("4xx", out, sizeof(out));
	ck_assert_str_eq(out, "key_4xx");
	prom_label_name("ns:x", out, sizeof(out)); /* ':' is not allowed in labels */
	ck_assert_str_eq(out, "ns_x");
	ck_assert_int_eq(prom_label_name("..", out, sizeof(out)), -1);
}
END_TEST

START_TEST(label_clashes_skipped)
{
	static const char *const keys[] = { "a.b", "a_b", "service.name", "le" };
	static const double b[] = { 1 };
	const char *v[] = { "1", "2", "3", "4" };
	struct metrics *m = metrics_new();
	struct metric_hist *h = metrics_hist(m, "t", NULL, NULL, b, 1, keys, 4);
	char *text;

	metrics_hist_record(h, NULL, 0.5, v);
	text = prom_render(m);
	ck_assert_ptr_nonnull(strstr(text, "t_count{a_b=\"1\"} 1\n"));
	free(text);
	metrics_free(m);
}
END_TEST

START_TEST(scalars)
{
	struct metrics *m = metrics_new();
	char *text;

	metrics_counter_set(m, "sonde_lost_events_total", NULL, 18446744073709551615ull);
	metrics_gauge_set(m, "sonde_ratio", "r", 0.1);
	metrics_gauge_set(m, "sonde_inf", "", INFINITY);
	text = prom_render(m);
	ck_assert_str_eq(text,
	                 "# TYPE sonde_inf gauge\n"
	                 "sonde_inf +Inf\n"
	                 "# TYPE sonde_lost_events_total counter\n"
	                 "sonde_lost_events_total 18446744073709551615\n"
	                 "# HELP sonde_ratio r\n"
	                 "# TYPE sonde_ratio gauge\n"
	                 "sonde_ratio 0.1\n");
	free(text);
	metrics_free(m);
}
END_TEST

#define REC_THREADS 4
#define REC_ROUNDS 5000

static void *rec_worker(void *arg)
{
	struct metric_hist *h = arg;
	const char *v[] = { "GET" };

	for (int i = 0; i < REC_ROUNDS; i++)
		metrics_hist_record(h, NULL, 0.001 * (i % 100), v);
	return NULL;
}

START_TEST(concurrent_records)
{
	static const char *const keys[] = { "m" };
	struct metrics *m = metrics_new();
	struct metric_hist *h = metrics_hist(m, "t", "s", NULL, METRICS_DURATION_BUCKETS,
	                                     METRICS_DURATION_BUCKETS_N, keys, 1);
	pthread_t t[REC_THREADS];
	struct pts *ps;
	char *text;

	for (int i = 0; i < REC_THREADS; i++)
		pthread_create(&t[i], NULL, rec_worker, h);
	text = prom_render(m); /* a concurrent reader */
	free(text);
	for (int i = 0; i < REC_THREADS; i++)
		pthread_join(t[i], NULL);
	ps = points(m);
	ck_assert_uint_eq(ps->n, 1);
	ck_assert_uint_eq(ps->p[0].count, REC_THREADS * REC_ROUNDS);
	free(ps);
	metrics_free(m);
}
END_TEST

/* A batch: the thread that began it records without taking the lock each
 * time, holding it from its first point to the batch's end; another thread
 * recording meanwhile waits for the end. Points of both are all counted. */
struct batch_arg {
	struct metric_hist *h;
	int done;
};

static void *batch_other(void *arg)
{
	struct batch_arg *a = arg;

	metrics_hist_record(a->h, NULL, 0.5, NULL);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

START_TEST(batch_holds_the_lock)
{
	static const double b[] = { 1.0 };
	struct metrics *m = metrics_new();
	struct batch_arg a = { metrics_hist(m, "t", "s", NULL, b, 1, NULL, 0), 0 };
	struct timespec nap = { 0, 50 * 1000000L };
	struct pts *ps;
	pthread_t t;

	metrics_batch_end(m); /* none begun: nothing happens */
	metrics_batch_begin(m);
	metrics_hist_record(a.h, NULL, 0.25, NULL);
	pthread_create(&t, NULL, batch_other, &a);
	for (int i = 0; i < 3; i++)
		metrics_hist_record(a.h, NULL, 0.25, NULL);
	nanosleep(&nap, NULL);
	ck_assert_int_eq(__atomic_load_n(&a.done, __ATOMIC_ACQUIRE), 0);
	metrics_batch_end(m);
	pthread_join(t, NULL);
	ck_assert_int_eq(a.done, 1);
	ps = points(m);
	ck_assert_uint_eq(ps->p[0].count, 5);
	free(ps);
	metrics_batch_begin(m); /* freed inside a batch: it ends first */
	metrics_hist_record(a.h, NULL, 0.25, NULL);
	metrics_free(m);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, duration_buckets);
	tcase_add_test(tc, bucket_boundaries_inclusive);
	tcase_add_test(tc, count_sum_min_max_start);
	tcase_add_test(tc, series_per_attribute_set);
	tcase_add_test(tc, series_per_service_not_pid);
	tcase_add_test(tc, overflow_series);
	tcase_add_test(tc, register_find_and_mismatch);
	tcase_add_test(tc, prometheus_golden);
	tcase_add_test(tc, prometheus_duration_bucket_lines);
	tcase_add_test(tc, prometheus_escaping);
	tcase_add_test(tc, prometheus_overflow_and_empty);
	tcase_add_test(tc, metric_names);
	tcase_add_test(tc, label_names);
	tcase_add_test(tc, label_clashes_skipped);
	tcase_add_test(tc, scalars);
	tcase_add_test(tc, concurrent_records);
	tcase_add_test(tc, batch_holds_the_lock);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(metrics_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
