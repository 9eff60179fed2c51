/*
 * config.h - the agent's settings: YAML file, then environment, then flags.
 *
 * config_resolve() is the one place that decides precedence: defaults, then
 * the file (--config or SONDE_CONFIG; yaml.c), then OTEL_* / SONDE_*
 * variables (env.c), then flags (flags.c). Every error names where the bad
 * value came from: FILE:LINE, the variable, or the flag. The result is plain
 * data, read-only after start-up.
 *
 * YAML schema (docs/configuration.md is the user-facing version):
 *
 *   services:                      # which processes to watch, and how
 *     - name: checkout             # service.name (default: executable name)
 *       open_ports: [8080, "9000-9010"]
 *       exe_path: "nginx$"         # POSIX extended regex on /proc/PID/exe
 *       pids: [1234]
 *       protocols: [http, redis]   # plugins enabled (default: all loaded)
 *       routes: ["/users/{id}"]    # http.route patterns (win over heuristic)
 *       plugins:                   # per-service plugin settings
 *         redis: { query_text: true }
 *   plugins:
 *     dirs: [/usr/local/lib/sonde/plugins]
 *     <name>: { key: value | [values] }   # global plugin settings
 *   capture:
 *     payload_cap: 4096
 *     ringbuf_bytes: 8388608
 *     shed_percent: 75             # ring fill where per-process shedding starts
 *     budget_bytes: 2097152        # a process's share per 100 ms under pressure
 *     max_connections: 65536       # the kernel's connection table
 *     tls_shared_uprobes: true     # false: TLS uprobes per process only
 *   export:
 *     print: json | text | none
 *     prometheus: { port: 9464, address: 127.0.0.1 }
 *     otlp:
 *       endpoint: http://localhost:4318
 *       traces_endpoint: ...       # full URL, overrides endpoint + /v1/traces
 *       metrics_endpoint: ...
 *       protocol: http/protobuf | http/json
 *       headers: { authorization: "Bearer x" }
 *       compression: gzip | none
 *       interval_ms: 60000         # metric export interval
 *       temporality: cumulative | delta
 *       timeout_ms: 10000
 *       queue_size: 2048           # spans held while the collector is away
 *   resource:
 *     attributes: { deployment.environment.name: prod }
 *   service_name: override         # same as OTEL_SERVICE_NAME
 */
#ifndef SONDE_CONFIG_H
#define SONDE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct port_range {
	uint16_t lo, hi; /* inclusive */
};

struct kv {
	char *key;
	char **values; /* n_values strings (a scalar gives 1) */
	size_t n_values;
};

struct plugin_settings {
	char *plugin;  /* plugin name */
	struct kv *kv;
	size_t n_kv;
};

struct service_cfg {
	char *name;                 /* NULL: from OTEL_SERVICE_NAME or exe name */
	struct port_range *ports;
	size_t n_ports;
	char *exe_path;             /* regex source, NULL if none */
	uint32_t *pids;
	size_t n_pids;
	char **protocols;           /* NULL/0: every loaded protocol */
	size_t n_protocols;
	char **routes;
	size_t n_routes;
	struct plugin_settings *plugins;
	size_t n_plugins;
	bool inject_traceparent;    /* insert traceparent into its HTTP/1 requests */
	int line;                   /* where it was declared (for messages) */
};

enum print_mode { PRINT_NONE = 0, PRINT_JSON, PRINT_TEXT };
enum otlp_proto { OTLP_PROTOBUF = 0, OTLP_JSON };
enum temporality { TEMP_CUMULATIVE = 0, TEMP_DELTA };

struct otlp_cfg {
	char *endpoint;          /* base URL; NULL = OTLP off */
	char *traces_endpoint;   /* full URL */
	char *metrics_endpoint;  /* full URL */
	enum otlp_proto protocol;
	struct kv *headers;      /* one value each */
	size_t n_headers;
	bool gzip;
	uint32_t interval_ms;    /* default 60000 */
	enum temporality temporality;
	uint32_t timeout_ms;     /* default 10000 */
	uint32_t queue_size;     /* default 2048 spans */
};

struct config {
	struct service_cfg *services;
	size_t n_services;
	char **plugin_dirs;
	size_t n_plugin_dirs;
	struct plugin_settings *plugins; /* global per-plugin settings */
	size_t n_plugins;
	uint32_t payload_cap;            /* 0 = default */
	uint32_t ringbuf_bytes;          /* 0 = default */
	uint32_t shed_percent;           /* 0 = default 75; 101 = never shed */
	uint32_t budget_bytes;           /* 0 = a quarter of the ring */
	uint32_t max_connections;        /* 0 = default 65536 */
	bool tls_per_process;            /* never share TLS uprobes (forking servers) */
	enum print_mode print;
	uint16_t prom_port;              /* 0 = off */
	char *prom_address;              /* default 127.0.0.1 */
	struct otlp_cfg otlp;
	struct kv *resource_attrs;       /* one value each */
	size_t n_resource_attrs;
	char *service_name;              /* global override (OTEL_SERVICE_NAME) */

	/* From the command line only (flags.c). */
	struct service_cfg cli_service;  /* --open-port/--exe-path/--pid/--protocols */
	bool have_cli_service;
	char **cli_plugin_dirs;          /* --plugin-dir, searched before plugin_dirs */
	size_t n_cli_plugin_dirs;
	char *config_path;               /* --config or SONDE_CONFIG */
	char *record_path, *replay_path; /* --record, --replay */
	double duration_s;               /* --duration; 0 = until signalled */
	bool list_plugins, features;     /* --list-plugins, --features */
	int verbose;                     /* -v count */
};

void config_init(struct config *c);   /* defaults */
void config_free(struct config *c);

/* Parse a YAML file into c (which config_init prepared). On error returns -1
 * and writes "FILE:LINE: problem" into err. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);
/* Same, from a string (tests); `name` is used in messages. */
int config_load_string(struct config *c, const char *yaml, size_t len, const char *name,
                       char *err, size_t errlen);

/* OTEL_* and SONDE_* variables override the file. Errors as above. */
int config_apply_env(struct config *c, char *err, size_t errlen);

/* The whole resolution for the command `sonde ARGS`: c from config_init(),
 * then file, environment and flags in that order. Returns 0 (run), 1 (a
 * flag such as --help or --version printed its answer: exit 0), or -1 with
 * one sentence in err. */
int config_resolve(struct config *c, int argc, char **argv, char *err, size_t errlen);
/* The usage text of the command. */
void config_usage(FILE *out);

/* "8080", "8000-8100", "80,443,8000-8100" -> appended ranges. -1 on error. */
int config_parse_ports(const char *s, struct port_range **out, size_t *n);

/* Find settings for a plugin key: service first (svc may be NULL), then
 * global. Returns the kv or NULL. */
const struct kv *config_plugin_get(const struct config *c, const struct service_cfg *svc,
                                   const char *plugin, const char *key);

/* Set (replace) a plugin setting programmatically, in a service (svc) or
 * globally (svc NULL). Strings are copied. 0, or -1 (out of memory). */
int config_plugin_set(struct config *c, struct service_cfg *svc, const char *plugin,
                      const char *key, const char *const *vals, size_t n);
/* The literal ending an exe_path regex forces on every path it matches
 * ("redis-cli" for "/redis-cli$", "bin/curl" for "^/usr/bin/curl$"), into out;
 * 1 if there is one, 0 if the pattern has none (not anchored at the end,
 * ends in a class or repetition, alternation at the top). Used to decide in
 * the kernel which new programs may match before user space can look. */
int config_exe_suffix(const char *re, char *out, size_t outlen);

/* Free what a service_cfg holds (not the struct itself). */
void config_service_free(struct service_cfg *s);

#endif
