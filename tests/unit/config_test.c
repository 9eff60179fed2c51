/*
 * config_test.c - core/config.c: YAML schema, error messages, environment.
 *
 * Every error test asserts the exact "sonde.yaml:LINE: " prefix and a
 * substring of the message, because the line is the part users rely on.
 * Environment tests clear every variable config_apply_env() reads first, so
 * the result does not depend on the shell that runs the suite.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

static const char *const env_names[] = {
	"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TIMEOUT",
	"OTEL_METRIC_EXPORT_INTERVAL", "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
	"OTEL_RESOURCE_ATTRIBUTES", "SONDE_PAYLOAD_CAP", "SONDE_PROMETHEUS_PORT", "SONDE_PRINT",
	"SONDE_PLUGIN_DIRS", NULL,
};

static void clear_env(void)
{
	size_t i;

	for (i = 0; env_names[i]; i++)
		unsetenv(env_names[i]);
}

static int load(struct config *c, const char *yaml, char *err, size_t errlen)
{
	config_init(c);
	return config_load_string(c, yaml, strlen(yaml), "sonde.yaml", err, errlen);
}

/* The load fails, at `line`, with `sub` somewhere in the message. */
static void expect_error(const char *yaml, int line, const char *sub)
{
	struct config c;
	char err[512], prefix[64];
	int rc = load(&c, yaml, err, sizeof(err));

	snprintf(prefix, sizeof(prefix), "sonde.yaml:%d: ", line);
	ck_assert_msg(rc == -1, "accepted:\n%s", yaml);
	ck_assert_msg(!strncmp(err, prefix, strlen(prefix)), "want prefix '%s', got '%s'", prefix,
		      err);
	ck_assert_msg(strstr(err, sub), "want '%s' in '%s'", sub, err);
	config_free(&c);
}

static void expect_exact(const char *yaml, const char *msg)
{
	struct config c;
	char err[512];

	ck_assert_int_eq(load(&c, yaml, err, sizeof(err)), -1);
	ck_assert_str_eq(err, msg);
	config_free(&c);
}

static void expect_ok(struct config *c, const char *yaml)
{
	char err[512] = "";

	ck_assert_msg(load(c, yaml, err, sizeof(err)) == 0, "rejected: %s", err);
}

static const char *kv1(const struct kv *a, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!strcmp(a[i].key, key)) {
			ck_assert_uint_eq(a[i].n_values, 1);
			return a[i].values[0];
		}
	}
	return NULL;
}

START_TEST(test_defaults)
{
	struct config c;

	config_init(&c);
	ck_assert_int_eq(c.print, PRINT_NONE);
	ck_assert_str_eq(c.prom_address, "127.0.0.1");
	ck_assert_uint_eq(c.prom_port, 0);
	ck_assert_int_eq(c.otlp.protocol, OTLP_PROTOBUF);
	ck_assert_uint_eq(c.otlp.interval_ms, 60000);
	ck_assert_uint_eq(c.otlp.timeout_ms, 10000);
	ck_assert_uint_eq(c.otlp.queue_size, 2048);
	ck_assert_int_eq(c.otlp.temporality, TEMP_CUMULATIVE);
	ck_assert_uint_eq(c.payload_cap, 0);
	ck_assert_ptr_null(c.otlp.endpoint);
	ck_assert(!c.otlp.gzip);
	config_free(&c);
	config_free(&c); /* idempotent: config_free leaves a zeroed struct */
}
END_TEST

static const char full_yaml[] =
	"# every key of the schema\n"
	"services:\n"
	"  - name: checkout\n"
	"    open_ports: [8080, \"9000-9010\", \"80,443\"]\n"
	"    exe_path: \"nginx$\"\n"
	"    pids: [1234, 42]\n"
	"    protocols: [http, redis]\n"
	"    routes: [\"/users/{id}\", \"/orders/{id}/items\"]\n"
	"    plugins:\n"
	"      redis: { query_text: true }\n"
	"      http: { headers: [x-request-id, x-tenant] }\n"
	"  - exe_path: ^/usr/bin/redis-server$\n"
	"    open_ports: 6379\n"
	"    pids: 7\n"
	"    protocols: redis\n"
	"    routes: /only\n"
	"plugins:\n"
	"  dirs: [/usr/local/lib/sonde/plugins, ./build/plugins]\n"
	"  redis: { query_text: false, max_args: 3 }\n"
	"  sql:\n"
	"    drivers: [postgres, mysql]\n"
	"    empty:\n"
	"capture:\n"
	"  payload_cap: 4096\n"
	"  ringbuf_bytes: 8388608\n"
	"  shed_percent: 60\n"
	"  budget_bytes: 1048576\n"
	"  max_connections: 131072\n"
	"  tls_shared_uprobes: false\n"
	"export:\n"
	"  print: json\n"
	"  prometheus: { port: 9464, address: 0.0.0.0 }\n"
	"  otlp:\n"
	"    endpoint: http://localhost:4318\n"
	"    traces_endpoint: https://traces.example:4318/v1/traces\n"
	"    metrics_endpoint: https://metrics.example/v1/metrics\n"
	"    protocol: http/json\n"
	"    headers: { authorization: \"Bearer x\", X-Tenant: acme }\n"
	"    compression: gzip\n"
	"    interval_ms: 30s\n"
	"    temporality: delta\n"
	"    timeout_ms: 500ms\n"
	"    queue_size: 4096\n"
	"resource:\n"
	"  attributes: { deployment.environment.name: prod, team: core }\n"
	"service_name: override\n";

START_TEST(test_full_round_trip)
{
	struct config c;
	const struct service_cfg *s;
	const struct kv *kv;

	expect_ok(&c, full_yaml);
	ck_assert_uint_eq(c.n_services, 2);
	s = &c.services[0];
	ck_assert_str_eq(s->name, "checkout");
	ck_assert_int_eq(s->line, 3);
	ck_assert_uint_eq(s->n_ports, 4);
	ck_assert_uint_eq(s->ports[0].lo, 8080);
	ck_assert_uint_eq(s->ports[0].hi, 8080);
	ck_assert_uint_eq(s->ports[1].lo, 9000);
	ck_assert_uint_eq(s->ports[1].hi, 9010);
	ck_assert_uint_eq(s->ports[2].lo, 80);
	ck_assert_uint_eq(s->ports[3].lo, 443);
	ck_assert_str_eq(s->exe_path, "nginx$");
	ck_assert_uint_eq(s->n_pids, 2);
	ck_assert_uint_eq(s->pids[0], 1234);
	ck_assert_uint_eq(s->pids[1], 42);
	ck_assert_uint_eq(s->n_protocols, 2);
	ck_assert_str_eq(s->protocols[0], "http");
	ck_assert_str_eq(s->protocols[1], "redis");
	ck_assert_uint_eq(s->n_routes, 2);
	ck_assert_str_eq(s->routes[0], "/users/{id}");
	ck_assert_str_eq(s->routes[1], "/orders/{id}/items");
	ck_assert_uint_eq(s->n_plugins, 2);
	ck_assert_str_eq(s->plugins[0].plugin, "redis");
	ck_assert_str_eq(s->plugins[1].plugin, "http");
	ck_assert_uint_eq(s->plugins[1].kv[0].n_values, 2);
	ck_assert_str_eq(s->plugins[1].kv[0].values[1], "x-tenant");

	s = &c.services[1];
	ck_assert_ptr_null(s->name);
	ck_assert_int_eq(s->line, 12);
	ck_assert_uint_eq(s->n_ports, 1);
	ck_assert_uint_eq(s->ports[0].lo, 6379);
	ck_assert_uint_eq(s->n_pids, 1);
	ck_assert_uint_eq(s->pids[0], 7);
	ck_assert_str_eq(s->protocols[0], "redis");
	ck_assert_str_eq(s->routes[0], "/only");

	ck_assert_uint_eq(c.n_plugin_dirs, 2);
	ck_assert_str_eq(c.plugin_dirs[0], "/usr/local/lib/sonde/plugins");
	ck_assert_str_eq(c.plugin_dirs[1], "./build/plugins");
	ck_assert_uint_eq(c.n_plugins, 2);
	ck_assert_str_eq(c.plugins[1].plugin, "sql");
	ck_assert_uint_eq(c.plugins[1].n_kv, 2);
	ck_assert_str_eq(c.plugins[1].kv[0].values[0], "postgres");
	ck_assert_str_eq(c.plugins[1].kv[0].values[1], "mysql");
	ck_assert_str_eq(c.plugins[1].kv[1].key, "empty");
	ck_assert_uint_eq(c.plugins[1].kv[1].n_values, 0);

	ck_assert_uint_eq(c.payload_cap, 4096);
	ck_assert_uint_eq(c.ringbuf_bytes, 8388608);
	ck_assert_uint_eq(c.shed_percent, 60);
	ck_assert_uint_eq(c.budget_bytes, 1048576);
	ck_assert_uint_eq(c.max_connections, 131072);
	ck_assert(c.tls_per_process);
	ck_assert_int_eq(c.print, PRINT_JSON);
	ck_assert_uint_eq(c.prom_port, 9464);
	ck_assert_str_eq(c.prom_address, "0.0.0.0");
	ck_assert_str_eq(c.otlp.endpoint, "http://localhost:4318");
	ck_assert_str_eq(c.otlp.traces_endpoint, "https://traces.example:4318/v1/traces");
	ck_assert_str_eq(c.otlp.metrics_endpoint, "https://metrics.example/v1/metrics");
	ck_assert_int_eq(c.otlp.protocol, OTLP_JSON);
	ck_assert_uint_eq(c.otlp.n_headers, 2);
	ck_assert_str_eq(kv1(c.otlp.headers, c.otlp.n_headers, "authorization"), "Bearer x");
	ck_assert_str_eq(kv1(c.otlp.headers, c.otlp.n_headers, "X-Tenant"), "acme");
	ck_assert(c.otlp.gzip);
	ck_assert_uint_eq(c.otlp.interval_ms, 30000);
	ck_assert_int_eq(c.otlp.temporality, TEMP_DELTA);
	ck_assert_uint_eq(c.otlp.timeout_ms, 500);
	ck_assert_uint_eq(c.otlp.queue_size, 4096);
	ck_assert_uint_eq(c.n_resource_attrs, 2);
	ck_assert_str_eq(kv1(c.resource_attrs, c.n_resource_attrs, "deployment.environment.name"),
			 "prod");
	ck_assert_str_eq(c.service_name, "override");

	/* service settings first, then global */
	kv = config_plugin_get(&c, &c.services[0], "redis", "query_text");
	ck_assert_ptr_nonnull(kv);
	ck_assert_str_eq(kv->values[0], "true");
	kv = config_plugin_get(&c, &c.services[0], "redis", "max_args");
	ck_assert_ptr_nonnull(kv);
	ck_assert_str_eq(kv->values[0], "3");
	kv = config_plugin_get(&c, NULL, "redis", "query_text");
	ck_assert_str_eq(kv->values[0], "false");
	kv = config_plugin_get(&c, &c.services[1], "redis", "query_text");
	ck_assert_str_eq(kv->values[0], "false");
	ck_assert_ptr_null(config_plugin_get(&c, &c.services[0], "redis", "nope"));
	ck_assert_ptr_null(config_plugin_get(&c, &c.services[0], "kafka", "x"));
	ck_assert_ptr_null(config_plugin_get(NULL, NULL, "redis", "x"));
	config_free(&c);
}
END_TEST

START_TEST(test_file_round_trip)
{
	char path[] = "/tmp/sonde_config_testXXXXXX";
	struct config c;
	char err[512];
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, full_yaml, strlen(full_yaml)), (int)strlen(full_yaml));
	close(fd);
	config_init(&c);
	ck_assert_msg(config_load_file(&c, path, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(c.n_services, 2);
	ck_assert_str_eq(c.service_name, "override");
	config_free(&c);

	/* errors name the path given */
	fd = open(path, O_WRONLY | O_TRUNC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "a: 1\n", 5), 5);
	close(fd);
	config_init(&c);
	ck_assert_int_eq(config_load_file(&c, path, err, sizeof(err)), -1);
	ck_assert_msg(!strncmp(err, path, strlen(path)) && !strncmp(err + strlen(path), ":1: ", 4),
		      "%s", err);
	config_free(&c);
	unlink(path);
}
END_TEST

START_TEST(test_missing_file)
{
	struct config c;
	char err[512];

	config_init(&c);
	ck_assert_int_eq(config_load_file(&c, "/nonexistent/sonde.yaml", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/nonexistent/sonde.yaml: No such file or directory");
	ck_assert_int_eq(config_load_file(&c, "/", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/: Is a directory");
	config_free(&c);
}
END_TEST

START_TEST(test_empty_files)
{
	static const char *const empties[] = { "", "\n\n", "# only a comment\n", "---\n", "~\n",
					       "---\n...\n" };
	struct config c;
	size_t i;

	for (i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
		expect_ok(&c, empties[i]);
		ck_assert_uint_eq(c.n_services, 0);
		ck_assert_uint_eq(c.otlp.interval_ms, 60000);
		ck_assert_str_eq(c.prom_address, "127.0.0.1");
		config_free(&c);
	}
	/* keys present without values keep the defaults */
	expect_ok(&c, "services:\nplugins:\nexport:\n  print:\n  otlp:\n    interval_ms:\n");
	ck_assert_int_eq(c.print, PRINT_NONE);
	ck_assert_uint_eq(c.otlp.interval_ms, 60000);
	config_free(&c);
}
END_TEST

START_TEST(test_unknown_keys)
{
	expect_exact("# sonde\n\nservics:\n  - name: x\n",
		     "sonde.yaml:3: unknown key 'servics' (expected: services, plugins, capture, "
		     "export, resource, service_name); did you mean 'services'?");
	expect_error("services:\n  - name: a\n    pids: [1]\n    protcols: [http]\n", 4,
		     "services[0]: unknown key 'protcols' (expected: name, open_ports, exe_path, pids, "
		     "protocols, routes, plugins, inject_traceparent); did you mean 'protocols'?");
	expect_error("export:\n  otlp:\n    endpiont: http://x\n", 3,
		     "did you mean 'endpoint'?");
	/* nothing close: no suggestion */
	expect_error("zzzzzzzz: 1\n", 1, "unknown key 'zzzzzzzz' (expected: services,");
	{
		struct config c;
		char err[512];

		load(&c, "zzzzzzzz: 1\n", err, sizeof(err));
		ck_assert_ptr_null(strstr(err, "did you mean"));
		config_free(&c);
	}
	expect_error("capture:\n  payload: 100\n", 2, "did you mean 'payload_cap'?");
	expect_error("export:\n  prometheus:\n    prot: 1\n", 3, "export.prometheus: unknown key 'prot'");
	expect_error("resource:\n  attrs: {}\n", 2, "resource: unknown key 'attrs'");
	expect_error("services: []\nservices: []\n", 2, "duplicate key 'services' (first at line 1)");
	expect_error("export:\n  otlp:\n    headers:\n      a: 1\n      b: 2\n      a: 3\n", 6,
		     "export.otlp.headers: duplicate key 'a' (first at line 4)");
	expect_error("? [a, b]\n: 1\n", 1, "keys must be plain strings, not a list");
	expect_error("services:\n  - name: a\n    pids: [1]\n    inject_traceparent: maybe\n", 4,
		     "services[0].inject_traceparent");
}
END_TEST

START_TEST(test_type_errors)
{
	expect_error("services:\n  name: x\n  pids: [1]\n", 1,
		     "services must be a list, not a map (start each entry with '- ')");
	expect_error("services:\n  - just-a-name\n", 2, "services[0] must be a map");
	expect_error("services:\n  - name: [a]\n    pids: 1\n", 2,
		     "services[0].name must be a string, not a list");
	expect_error("services:\n  - pids: {a: 1}\n", 2, "services[0].pids must be a list, not a map");
	expect_error("services:\n  - pids: [[1]]\n", 2,
		     "services[0].pids must be process ids, not a list");
	expect_error("services:\n  - pids: [0]\n", 2, "services[0].pids must be between 1 and 4194304");
	expect_error("services:\n  - pids: [-4]\n", 2, "services[0].pids must not be negative");
	expect_error("services:\n  - pids: [12abc]\n", 2, "\"12abc\" is not a number");
	expect_error("services:\n  - name: x\n", 2,
		     "services[0] selects no process: give it open_ports, exe_path or pids");
	expect_error("services:\n  - name: \"\"\n    pids: 1\n", 2, "services[0].name must not be empty");
	expect_error("services:\n  - pids: 1\n    routes: [users]\n", 3,
		     "\"users\" is not a route pattern");
	expect_error("services:\n  - pids: 1\n    protocols: [\"ht tp\"]\n", 3,
		     "\"ht tp\" is not a plugin name");
	expect_error("services:\n  - pids: 1\n    plugins:\n      dirs: [/x]\n", 4,
		     "plugin directories are global");
	expect_error("plugins:\n  redis:\n    opts: { a: 1 }\n", 3,
		     "plugins.redis.opts must be a value or a list of values, not a map");
	expect_error("plugins:\n  redis:\n    opts: [a, [b]]\n", 3,
		     "plugins.redis.opts entries must be single values, not a list");
	expect_error("plugins:\n  redis: 1\n", 2, "plugins.redis must be a map of settings");
	expect_error("plugins: [a]\n", 1, "plugins must be a map of plugin names, not a list");
	expect_error("plugins:\n  dirs: {a: b}\n", 2, "plugins.dirs must be a list, not a map");
	expect_error("export: json\n", 1, "export must be a map, not a single value");
	expect_error("export:\n  prometheus:\n    port: -1\n", 3,
		     "export.prometheus.port must not be negative");
	expect_error("export:\n  prometheus:\n    port: 65536\n", 3,
		     "export.prometheus.port must be between 0 and 65535 (got \"65536\")");
	expect_error("export:\n  prometheus:\n    address: \"0.0.0.0/8\"\n", 3, "is not an address");
	expect_error("resource:\n  attributes: [a=b]\n", 2,
		     "resource.attributes must be a map (key: value), not a list");
	expect_error("resource:\n  attributes:\n    a: [1, 2]\n", 3,
		     "resource.attributes.a must be a single value, not a list");
	expect_error("service_name: {a: b}\n", 1, "service_name must be a string, not a map");
	expect_error("service_name: \"a\\0b\"\n", 1, "service_name contains a NUL byte");
	expect_error("services:\n  - pids: 1\n    exe_path: \"(x\"\n", 3,
		     "services[0].exe_path: \"(x\" is not a valid regular expression");
	{
		/* a 300-byte plugin name: the path in the message is cut, not overflowed */
		char y[512], name[301];

		memset(name, 'p', 300);
		name[300] = '\0';
		snprintf(y, sizeof(y), "plugins:\n  %s:\n    k: {a: 1}\n", name);
		expect_error(y, 3, "ppp... must be a value or a list of values, not a map");
	}
}
END_TEST

START_TEST(test_enum_and_value_errors)
{
	static const char print_yaml[] =
		"services:\n  - pids: 1\n\n\n\n\n\n\n\n\nexport:\n  print: xml\n";

	expect_exact(print_yaml,
		     "sonde.yaml:12: export.print must be one of json, text, none (got \"xml\")");
	expect_error("export:\n  otlp:\n    protocol: grpc\n", 3,
		     "export.otlp.protocol: \"grpc\" is not supported (use http/protobuf or http/json)");
	expect_error("export:\n  otlp:\n    protocol: http\n", 3,
		     "export.otlp.protocol must be one of http/protobuf, http/json (got \"http\")");
	expect_error("export:\n  otlp:\n    compression: zstd\n", 3,
		     "export.otlp.compression must be one of gzip, none");
	expect_error("export:\n  otlp:\n    temporality: sometimes\n", 3,
		     "must be one of cumulative, delta, lowmemory");
	expect_error("export:\n  otlp:\n    endpoint: localhost:4318\n", 3,
		     "export.otlp.endpoint: \"localhost:4318\" is not an http:// or https:// URL");
	expect_error("export:\n  otlp:\n    traces_endpoint: \"http://a b\"\n", 3,
		     "contains a space");
	expect_error("export:\n  otlp:\n    interval_ms: 30x\n", 3,
		     "export.otlp.interval_ms: \"30x\" is not a duration");
	expect_error("export:\n  otlp:\n    timeout_ms: 0\n", 3,
		     "export.otlp.timeout_ms must be longer than 0");
	expect_error("export:\n  otlp:\n    timeout_ms: 5000000000\n", 3, "is too long");
	expect_error("export:\n  otlp:\n    queue_size: 0\n", 3,
		     "export.otlp.queue_size must be between 1 and 1048576");
	expect_error("export:\n  otlp:\n    headers:\n      \"bad header\": x\n", 4,
		     "'bad header' is not a valid HTTP header name");
	expect_error("export:\n  otlp:\n    headers:\n      x-a: \"v\\r\\nInjected: 1\"\n", 4,
		     "export.otlp.headers.x-a contains a control character");
	expect_error("capture:\n  payload_cap: 16385\n", 2,
		     "capture.payload_cap must be between 64 and 16384 (got \"16385\")");
	expect_error("capture:\n  payload_cap: 63\n", 2, "must be between 64 and 16384");
	expect_error("capture:\n  payload_cap: 0\n", 2, "must be between 64 and 16384");
	expect_error("capture:\n  payload_cap: 4k\n", 2, "\"4k\" is not a number");
	expect_error("capture:\n  ringbuf_bytes: 5000000\n", 2,
		     "capture.ringbuf_bytes must be a power of two");
	expect_error("capture:\n  ringbuf_bytes: 1024\n", 2, "must be between 4096 and");
	expect_error("capture:\n  shed_percent: 5\n", 2,
		     "capture.shed_percent must be between 10 and 101");
	expect_error("capture:\n  max_connections: 10\n", 2,
		     "capture.max_connections must be between 1024 and");
	expect_error("capture:\n  budget_bytes: -1\n", 2, "capture.budget_bytes");
	expect_error("capture:\n  tls_shared_uprobes: sometimes\n", 2,
		     "capture.tls_shared_uprobes");
}
END_TEST

START_TEST(test_durations)
{
	static const struct { const char *text; uint32_t ms; } ok[] = {
		{ "250", 250 }, { "500ms", 500 }, { "30s", 30000 }, { "1m", 60000 },
		{ "2h", 7200000 }, { "\"45 s\"", 45000 }, { "4294967295", 4294967295u },
	};
	char yaml[128];
	struct config c;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(yaml, sizeof(yaml), "export:\n  otlp:\n    interval_ms: %s\n", ok[i].text);
		expect_ok(&c, yaml);
		ck_assert_uint_eq(c.otlp.interval_ms, ok[i].ms);
		config_free(&c);
	}
	expect_error("export:\n  otlp:\n    interval_ms: 1.5s\n", 3, "is not a duration");
	expect_error("export:\n  otlp:\n    interval_ms: s\n", 3, "is not a duration");
	expect_error("export:\n  otlp:\n    interval_ms: -5\n", 3, "is not a duration");
	expect_error("export:\n  otlp:\n    interval_ms: 50d\n", 3, "is not a duration");
	expect_error("export:\n  otlp:\n    interval_ms: 4294967296\n", 3, "is too long");
	expect_error("export:\n  otlp:\n    interval_ms: 1194h\n", 3, "is too long");
}
END_TEST

START_TEST(test_ports_in_yaml)
{
	struct config c;

	expect_exact("# ports\n"
		     "services:\n"
		     "  - name: web\n"
		     "    open_ports:\n"
		     "      - 80\n"
		     "      - 443\n"
		     "      - \"80-x\"\n",
		     "sonde.yaml:7: services[0].open_ports: \"80-x\" is not a port or a range "
		     "(like 8000-8100)");
	expect_error("services:\n  - open_ports: [-80]\n", 2,
		     "services[0].open_ports: \"-80\" is negative: ports are 1-65535");
	expect_error("services:\n  - open_ports: 65536\n", 2,
		     "services[0].open_ports: \"65536\" is out of range: ports are 1-65535");
	expect_error("services:\n  - open_ports: 0\n", 2, "\"0\" is out of range");
	expect_error("services:\n  - open_ports: \"9000-8000\"\n", 2,
		     "\"9000-8000\" is not a range: 9000 is above 8000");
	expect_error("services:\n  - open_ports: \"80,,443\"\n", 2, "empty entry in a port list");
	expect_error("services:\n  - open_ports: {http: 80}\n", 2,
		     "services[0].open_ports must be a list, not a map");
	expect_error("services:\n  - open_ports: [[80]]\n", 2,
		     "services[0].open_ports must be ports or ranges, not a list");
	/* the second service's error names index 1 and its own line */
	expect_error("services:\n  - pids: 1\n  - name: b\n    open_ports:\n      - 1-2-3\n", 5,
		     "services[1].open_ports: \"1-2-3\" is not a port or a range");

	expect_ok(&c, "services:\n  - open_ports: 80, 443 ,8000 - 8100\n");
	ck_assert_uint_eq(c.services[0].n_ports, 3);
	ck_assert_uint_eq(c.services[0].ports[1].lo, 443);
	ck_assert_uint_eq(c.services[0].ports[2].lo, 8000);
	ck_assert_uint_eq(c.services[0].ports[2].hi, 8100);
	config_free(&c);
}
END_TEST

START_TEST(test_parse_ports)
{
	struct port_range *r = NULL;
	size_t n = 0;

	ck_assert_int_eq(config_parse_ports("8080", &r, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(r[0].lo, 8080);
	ck_assert_uint_eq(r[0].hi, 8080);
	ck_assert_int_eq(config_parse_ports("1,65535,8000-8100,7-7", &r, &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_uint_eq(r[1].lo, 1);
	ck_assert_uint_eq(r[2].lo, 65535);
	ck_assert_uint_eq(r[3].lo, 8000);
	ck_assert_uint_eq(r[3].hi, 8100);
	ck_assert_uint_eq(r[4].lo, 7);
	ck_assert_uint_eq(r[4].hi, 7);

	/* errors append nothing, even after a valid prefix */
	ck_assert_int_eq(config_parse_ports("80,x", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports(",", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("80,", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("0", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("65536", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("99999999999999999999999", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("-1", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("10-", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("-", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("20-10", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("1-2-3", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("+80", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("0x50", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports("80 443", &r, &n), -1);
	ck_assert_int_eq(config_parse_ports(NULL, &r, &n), -1);
	ck_assert_uint_eq(n, 5);
	free(r);
}
END_TEST

START_TEST(test_regex)
{
	struct config c;

	expect_ok(&c, "services:\n  - exe_path: \"^/usr/(s)?bin/(nginx|redis-server)$\"\n");
	ck_assert_str_eq(c.services[0].exe_path, "^/usr/(s)?bin/(nginx|redis-server)$");
	config_free(&c);
	expect_error("services:\n  - name: a\n    exe_path: \"nginx(\"\n", 3,
		     "services[0].exe_path: \"nginx(\" is not a valid regular expression: ");
	expect_error("services:\n  - exe_path: \"[a-\"\n", 2, "is not a valid regular expression");
	expect_error("services:\n  - exe_path: \"(a{100}){100}{100}\"\n", 2, "repeats too much");
	/* Found by the config fuzzer: stacked '+' double glibc's tree each time. */
	expect_error("services:\n  - exe_path: \"in++++++++++++++++++++++++++++++++++++\"\n", 2,
		     "repeats too much");
	expect_error("services:\n  - exe_path: \"(((((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+\"\n",
		     2, "repeats too much");
	expect_error("services:\n  - exe_path: \"((a{9}){9}){9}{99}\"\n", 2, "repeats too much");
	/* Long but flat patterns stay fine. */
	expect_ok(&c, "services:\n  - exe_path: \"^/(a+|b+|c+|d+|e+|f+|g+|h+|i+|j+|k+|l+|m+|n+|o+|p+)/[a-z0-9_-]+$\"\n");
	config_free(&c);
}
END_TEST

START_TEST(test_duplicate_services)
{
	expect_error("services:\n"
		     "  - name: api\n"
		     "    pids: 1\n"
		     "  - name: web\n"
		     "    pids: 2\n"
		     "  - name: api\n"
		     "    pids: 3\n",
		     6, "services[2].name: duplicate service name \"api\" (first at line 2)");
}
END_TEST

START_TEST(test_yaml_syntax)
{
	/* tabs: libyaml refuses them; we add the hint */
	expect_error("services:\n\t- pids: 1\n", 2, "YAML syntax error: found character that cannot "
		     "start any token");
	expect_error("services:\n\t- pids: 1\n", 2, "tabs are not allowed");
	expect_error("export:\n  print: json\n  otlp: [\n", 4, "YAML syntax error");
	expect_error("a: b: c\n", 1, "mapping values are not allowed");
	expect_error("services:\n  - pids: 1\n x: 1\n", 3, "YAML syntax error");
	expect_error("a: *nope\n", 1, "YAML syntax error");
	expect_error("- a\n- b\n", 1, "the top level must be a map of settings");
	expect_error("just a string\n", 1, "the top level must be a map of settings");
	expect_error("service_name: a\n---\nservice_name: b\n", 3, "only one YAML document");
	expect_error("service_name: a\n---\n]\n", 3, "YAML syntax error");
	expect_error("service_name: \"\xff\xfe\"\n", 1, "YAML:");
	expect_error("# c\n\nservice_name: \"ok\"\nx: \"\xc3\x28\"\n", 4, "invalid");
}
END_TEST

START_TEST(test_deep_nesting)
{
	size_t depth = 200000, i, o = 0;
	char *y = malloc(depth * 2 + 64);
	struct config c;
	char err[512];

	ck_assert_ptr_nonnull(y);
	o += (size_t)sprintf(y, "services: ");
	for (i = 0; i < depth; i++)
		y[o++] = '[';
	for (i = 0; i < depth; i++)
		y[o++] = ']';
	y[o] = '\0';
	config_init(&c);
	ck_assert_int_eq(config_load_string(&c, y, o, "sonde.yaml", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "sonde.yaml:1: nesting deeper than 64 levels");
	config_free(&c);

	/* unbalanced: a syntax error, not a crash */
	y[depth] = '\0';
	config_init(&c);
	ck_assert_int_eq(config_load_string(&c, y, strlen(y), "sonde.yaml", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "sonde.yaml:1: nesting deeper than 64 levels");
	config_free(&c);

	/* deep block maps: 10 levels reach the schema check, 500 do not */
	o = (size_t)sprintf(y, "plugins:\n  p:\n    k:\n");
	for (i = 0; i < 10; i++)
		o += (size_t)sprintf(y + o, "%*sk:\n", (int)(6 + 2 * i), "");
	config_init(&c);
	ck_assert_int_eq(config_load_string(&c, y, o, "sonde.yaml", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "sonde.yaml:3: plugins.p.k must be a value or a list of values, "
			 "not a map");
	config_free(&c);
	for (; i < 500; i++)
		o += (size_t)sprintf(y + o, "%*sk:\n", (int)(6 + 2 * i), "");
	config_init(&c);
	ck_assert_int_eq(config_load_string(&c, y, o, "sonde.yaml", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "sonde.yaml:65: nesting deeper than 64 levels");
	config_free(&c);

	/* exactly 64 levels is allowed by the first pass */
	o = (size_t)sprintf(y, "services: ");
	for (i = 0; i < 63; i++)
		y[o++] = '[';
	for (i = 0; i < 63; i++)
		y[o++] = ']';
	config_init(&c);
	ck_assert_int_eq(config_load_string(&c, y, o, "sonde.yaml", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "sonde.yaml:1: services[0] must be a map (name:, open_ports:, ...), "
			 "not a list");
	config_free(&c);
	free(y);
}
END_TEST

START_TEST(test_alias_budget)
{
	size_t cap = 1 << 20, o = 0, i;
	char *y = malloc(cap);
	struct config c;
	char err[512];

	ck_assert_ptr_nonnull(y);
	o += (size_t)sprintf(y + o, "plugins:\n  p:\n    k0: &a [");
	for (i = 0; i < 1000; i++)
		o += (size_t)sprintf(y + o, "%sx", i ? "," : "");
	o += (size_t)sprintf(y + o, "]\n");
	for (i = 1; i < 1000; i++)
		o += (size_t)sprintf(y + o, "    k%zu: *a\n", i);
	config_init(&c);
	ck_assert_int_eq(config_load_string(&c, y, o, "sonde.yaml", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "too many values: aliases expand"), "%s", err);
	config_free(&c);

	/* a few aliases are fine */
	expect_ok(&c, "plugins:\n  p: { a: &x [1, 2], b: *x }\n");
	ck_assert_uint_eq(c.plugins[0].kv[1].n_values, 2);
	config_free(&c);
	free(y);
}
END_TEST

START_TEST(test_garbage)
{
	size_t len = 1 << 20, i;
	char *g = malloc(len);
	static const char punct[] = "ab: -[]{},\n\"'&*!|>#%@`?";
	unsigned int seed = 12345;
	struct config c;
	char err[512];
	int round;

	ck_assert_ptr_nonnull(g);
	for (round = 0; round < 3; round++) {
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			if (round == 0)
				g[i] = (char)(seed >> 16);           /* any byte */
			else if (round == 1)
				g[i] = (char)(32 + (seed >> 16) % 95); /* printable */
			else
				g[i] = punct[(seed >> 16) % (sizeof(punct) - 1)];
		}
		err[0] = '\0';
		config_init(&c);
		ck_assert_int_eq(config_load_string(&c, g, len, "sonde.yaml", err, sizeof(err)), -1);
		ck_assert_msg(!strncmp(err, "sonde.yaml:", 11) && strlen(err) > 14, "round %d: %s",
			      round, err);
		config_free(&c);
	}
	free(g);
}
END_TEST

/* A 1 MB valid file loads in linear time: a quadratic walk (appending one
 * element at a time, or looking every key up in the whole list) takes
 * minutes here and trips the test timeout. */
START_TEST(test_big_valid_file)
{
	size_t cap = 2 << 20, o = 0, i;
	char *y = malloc(cap);
	struct config c;
	char err[512];

	ck_assert_ptr_nonnull(y);
	o += (size_t)sprintf(y + o, "services:\n  - open_ports:\n");
	for (i = 0; i < 50000; i++)
		o += (size_t)sprintf(y + o, "      - %zu\n", i % 65535 + 1);
	o += (size_t)sprintf(y + o, "plugins:\n  p:\n");
	for (i = 0; i < 50000; i++)
		o += (size_t)sprintf(y + o, "    key%zu: [a, b]\n", i);
	ck_assert_uint_gt(o, 1000000);
	config_init(&c);
	ck_assert_msg(config_load_string(&c, y, o, "sonde.yaml", err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(c.services[0].n_ports, 50000);
	ck_assert_uint_eq(c.services[0].ports[49999].lo, 50000);
	ck_assert_uint_eq(c.plugins[0].n_kv, 50000);
	ck_assert_str_eq(c.plugins[0].kv[49999].key, "key49999");
	ck_assert_str_eq(config_plugin_get(&c, NULL, "p", "key49999")->values[1], "b");
	config_free(&c);

	/* headers are few by nature */
	o = (size_t)sprintf(y, "export:\n  otlp:\n    headers:\n");
	for (i = 0; i < 257; i++)
		o += (size_t)sprintf(y + o, "      h%zu: v\n", i);
	config_init(&c);
	ck_assert_int_eq(config_load_string(&c, y, o, "sonde.yaml", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "sonde.yaml:3: export.otlp.headers: more than 256 headers");
	config_free(&c);
	free(y);
}
END_TEST

START_TEST(test_small_err_buffer)
{
	struct config c;
	char err[8];

	memset(err, 'x', sizeof(err));
	config_init(&c);
	ck_assert_int_eq(config_load_string(&c, "servics: 1\n", 11, "sonde.yaml", err, sizeof(err)),
			 -1);
	ck_assert_str_eq(err, "sonde.y");
	ck_assert_int_eq(config_load_string(&c, "servics: 1\n", 11, "sonde.yaml", NULL, 0), -1);
	config_free(&c);
}
END_TEST

/* Environment */

static void apply_env_ok(struct config *c)
{
	char err[512] = "";

	ck_assert_msg(config_apply_env(c, err, sizeof(err)) == 0, "%s", err);
}

static void expect_env_error(const char *var, const char *val, const char *msg)
{
	struct config c;
	char err[512];

	clear_env();
	setenv(var, val, 1);
	config_init(&c);
	ck_assert_int_eq(config_apply_env(&c, err, sizeof(err)), -1);
	ck_assert_str_eq(err, msg);
	config_free(&c);
	unsetenv(var);
}

START_TEST(test_env_overrides_file)
{
	struct config c;

	clear_env();
	expect_ok(&c, full_yaml);
	setenv("OTEL_SERVICE_NAME", "from-env", 1);
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318", 1);
	setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t/v1/traces", 1);
	setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m/v1/metrics", 1);
	setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", 1);
	setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "none", 1);
	setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500", 1);
	setenv("OTEL_METRIC_EXPORT_INTERVAL", "15000", 1);
	setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Cumulative", 1);
	setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging,k8s.pod.name=p%2C1",
	       1);
	setenv("SONDE_PAYLOAD_CAP", "128", 1);
	setenv("SONDE_PROMETHEUS_PORT", "9999", 1);
	setenv("SONDE_PRINT", "text", 1);
	setenv("SONDE_PLUGIN_DIRS", "/opt/a::/opt/b:", 1);
	apply_env_ok(&c);
	ck_assert_str_eq(c.service_name, "from-env");
	ck_assert_str_eq(c.otlp.endpoint, "https://collector:4318");
	ck_assert_str_eq(c.otlp.traces_endpoint, "http://t/v1/traces");
	ck_assert_str_eq(c.otlp.metrics_endpoint, "http://m/v1/metrics");
	ck_assert_int_eq(c.otlp.protocol, OTLP_PROTOBUF);
	ck_assert(!c.otlp.gzip);
	ck_assert_uint_eq(c.otlp.timeout_ms, 2500);
	ck_assert_uint_eq(c.otlp.interval_ms, 15000);
	ck_assert_int_eq(c.otlp.temporality, TEMP_CUMULATIVE);
	ck_assert_uint_eq(c.n_resource_attrs, 3);
	ck_assert_str_eq(kv1(c.resource_attrs, c.n_resource_attrs, "deployment.environment.name"),
			 "staging");
	ck_assert_str_eq(kv1(c.resource_attrs, c.n_resource_attrs, "team"), "core");
	ck_assert_str_eq(kv1(c.resource_attrs, c.n_resource_attrs, "k8s.pod.name"), "p,1");
	ck_assert_uint_eq(c.payload_cap, 128);
	ck_assert_uint_eq(c.prom_port, 9999);
	ck_assert_int_eq(c.print, PRINT_TEXT);
	ck_assert_uint_eq(c.n_plugin_dirs, 4);
	ck_assert_str_eq(c.plugin_dirs[2], "/opt/a");
	ck_assert_str_eq(c.plugin_dirs[3], "/opt/b");
	config_free(&c);

	/* lowmemory is delta; empty variables are unset */
	clear_env();
	setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "lowmemory", 1);
	setenv("OTEL_SERVICE_NAME", "", 1);
	setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP", 1);
	expect_ok(&c, "service_name: file\n");
	apply_env_ok(&c);
	ck_assert_int_eq(c.otlp.temporality, TEMP_DELTA);
	ck_assert_str_eq(c.service_name, "file");
	ck_assert(c.otlp.gzip);
	config_free(&c);
	clear_env();
}
END_TEST

START_TEST(test_env_headers)
{
	struct config c;

	clear_env();
	expect_ok(&c, "export:\n  otlp:\n    headers:\n      Authorization: from-file\n      keep: 1\n"
		  "      KEEP: 2\n");
	/* within the file too, the later spelling of a header name wins */
	ck_assert_uint_eq(c.otlp.n_headers, 2);
	ck_assert_str_eq(kv1(c.otlp.headers, c.otlp.n_headers, "keep"), "2");
	setenv("OTEL_EXPORTER_OTLP_HEADERS",
	       " authorization = Bearer%20abc%2Bdef%3D%3D , api-key=k%2C1=2,x-plus=a+b,,x-empty=", 1);
	apply_env_ok(&c);
	ck_assert_uint_eq(c.otlp.n_headers, 5);
	/* header names compare case-insensitively: the file's entry is replaced */
	ck_assert_str_eq(kv1(c.otlp.headers, c.otlp.n_headers, "Authorization"), "Bearer abc+def==");
	ck_assert_str_eq(kv1(c.otlp.headers, c.otlp.n_headers, "keep"), "2");
	ck_assert_str_eq(kv1(c.otlp.headers, c.otlp.n_headers, "api-key"), "k,1=2");
	ck_assert_str_eq(kv1(c.otlp.headers, c.otlp.n_headers, "x-plus"), "a+b");
	ck_assert_str_eq(kv1(c.otlp.headers, c.otlp.n_headers, "x-empty"), "");
	config_free(&c);

	expect_env_error("OTEL_EXPORTER_OTLP_HEADERS", "a=1,novalue",
			 "OTEL_EXPORTER_OTLP_HEADERS: \"novalue\" has no '=' (expected "
			 "key=value,key2=value2)");
	expect_env_error("OTEL_EXPORTER_OTLP_HEADERS", "a=%zz",
			 "OTEL_EXPORTER_OTLP_HEADERS: \"%zz\" has a bad percent escape (use %XX, "
			 "two hex digits)");
	expect_env_error("OTEL_EXPORTER_OTLP_HEADERS", "a=%4",
			 "OTEL_EXPORTER_OTLP_HEADERS: \"%4\" has a bad percent escape (use %XX, "
			 "two hex digits)");
	expect_env_error("OTEL_EXPORTER_OTLP_HEADERS", "a=x%0D%0AEvil: 1",
			 "OTEL_EXPORTER_OTLP_HEADERS: the value of \"a\" contains a control "
			 "character");
	expect_env_error("OTEL_EXPORTER_OTLP_HEADERS", "=v",
			 "OTEL_EXPORTER_OTLP_HEADERS: \"=v\" has an empty key");
	expect_env_error("OTEL_EXPORTER_OTLP_HEADERS", "bad%20name=v",
			 "OTEL_EXPORTER_OTLP_HEADERS: \"bad name\" is not a valid HTTP header name");
	expect_env_error("OTEL_RESOURCE_ATTRIBUTES", "a=%00",
			 "OTEL_RESOURCE_ATTRIBUTES: \"%00\" decodes to a NUL byte");
}
END_TEST

START_TEST(test_env_errors)
{
	expect_env_error("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc",
			 "OTEL_EXPORTER_OTLP_PROTOCOL: \"grpc\" is not supported (use http/protobuf "
			 "or http/json)");
	expect_env_error("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml",
			 "OTEL_EXPORTER_OTLP_PROTOCOL must be one of http/protobuf, http/json (got "
			 "\"http/xml\")");
	expect_env_error("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318",
			 "OTEL_EXPORTER_OTLP_ENDPOINT: \"collector:4318\" is not an http:// or "
			 "https:// URL");
	expect_env_error("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x",
			 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: \"ftp://x\" is not an http:// or "
			 "https:// URL");
	expect_env_error("OTEL_EXPORTER_OTLP_COMPRESSION", "br",
			 "OTEL_EXPORTER_OTLP_COMPRESSION must be one of gzip, none (got \"br\")");
	expect_env_error("OTEL_EXPORTER_OTLP_TIMEOUT", "soon",
			 "OTEL_EXPORTER_OTLP_TIMEOUT: \"soon\" is not a duration (milliseconds, or "
			 "like 500ms, 30s, 1m)");
	expect_env_error("OTEL_METRIC_EXPORT_INTERVAL", "0",
			 "OTEL_METRIC_EXPORT_INTERVAL must be longer than 0 (got \"0\")");
	expect_env_error("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "often",
			 "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE must be one of "
			 "cumulative, delta, lowmemory (got \"often\")");
	expect_env_error("SONDE_PAYLOAD_CAP", "100000",
			 "SONDE_PAYLOAD_CAP must be between 64 and 16384 (got \"100000\")");
	expect_env_error("SONDE_PROMETHEUS_PORT", "-1",
			 "SONDE_PROMETHEUS_PORT must not be negative (got \"-1\")");
	expect_env_error("SONDE_PROMETHEUS_PORT", "70000",
			 "SONDE_PROMETHEUS_PORT must be between 0 and 65535 (got \"70000\")");
	expect_env_error("SONDE_PRINT", "yaml",
			 "SONDE_PRINT must be one of json, text, none (got \"yaml\")");
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_full_round_trip);
	tcase_add_test(tc, test_file_round_trip);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_empty_files);
	tcase_add_test(tc, test_unknown_keys);
	tcase_add_test(tc, test_type_errors);
	tcase_add_test(tc, test_enum_and_value_errors);
	tcase_add_test(tc, test_durations);
	tcase_add_test(tc, test_ports_in_yaml);
	tcase_add_test(tc, test_parse_ports);
	tcase_add_test(tc, test_regex);
	tcase_add_test(tc, test_duplicate_services);
	tcase_add_test(tc, test_yaml_syntax);
	tcase_add_test(tc, test_deep_nesting);
	tcase_add_test(tc, test_alias_budget);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_big_valid_file);
	tcase_add_test(tc, test_small_err_buffer);
	tcase_add_test(tc, test_env_overrides_file);
	tcase_add_test(tc, test_env_headers);
	tcase_add_test(tc, test_env_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
