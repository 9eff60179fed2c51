/*
 * env.c - OTEL_* and SONDE_* environment variables, applied over the file.
 *
 * The one idea: one table maps each variable to a setter that uses the same
 * checks as the file (values.h); a bad value names the variable.
 */
#define _GNU_SOURCE
#include "config/values.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>


/* ---------------------------------------------------------------------- */
/* Environment                                                             */

static int env_str(char **dst, const char *v, char *why, size_t wn)
{
	if (cfg_str_set(dst, v) < 0) {
		snprintf(why, wn, "out of memory");
		return -1;
	}
	return 0;
}

static int env_service_name(struct config *c, const char *v, char *why, size_t wn)
{
	return env_str(&c->service_name, v, why, wn);
}

static int env_url(char **dst, const char *v, char *why, size_t wn)
{
	if (cfg_check_url(v, why, wn) < 0)
		return -1;
	return env_str(dst, v, why, wn);
}

static int env_endpoint(struct config *c, const char *v, char *why, size_t wn)
{
	return env_url(&c->otlp.endpoint, v, why, wn);
}

static int env_traces_endpoint(struct config *c, const char *v, char *why, size_t wn)
{
	return env_url(&c->otlp.traces_endpoint, v, why, wn);
}

static int env_metrics_endpoint(struct config *c, const char *v, char *why, size_t wn)
{
	return env_url(&c->otlp.metrics_endpoint, v, why, wn);
}

static int env_protocol(struct config *c, const char *v, char *why, size_t wn)
{
	int val;

	if (cfg_parse_protocol(v, &val, why, wn) < 0)
		return -1;
	c->otlp.protocol = (enum otlp_proto)val;
	return 0;
}

static int env_headers(struct config *c, const char *v, char *why, size_t wn)
{
	return cfg_parse_pairs(v, &c->otlp.headers, &c->otlp.n_headers, true, why, wn);
}

static int env_compression(struct config *c, const char *v, char *why, size_t wn)
{
	int val;

	if (cfg_parse_enum(v, cfg_compressions, true, &val, why, wn) < 0)
		return -1;
	c->otlp.gzip = val;
	return 0;
}

static int env_timeout(struct config *c, const char *v, char *why, size_t wn)
{
	return cfg_parse_duration(v, &c->otlp.timeout_ms, why, wn);
}

static int env_interval(struct config *c, const char *v, char *why, size_t wn)
{
	return cfg_parse_duration(v, &c->otlp.interval_ms, why, wn);
}

static int env_temporality(struct config *c, const char *v, char *why, size_t wn)
{
	int val;

	if (cfg_parse_enum(v, cfg_temporalities, true, &val, why, wn) < 0)
		return -1;
	c->otlp.temporality = (enum temporality)val;
	return 0;
}

static int env_resource(struct config *c, const char *v, char *why, size_t wn)
{
	return cfg_parse_pairs(v, &c->resource_attrs, &c->n_resource_attrs, false, why, wn);
}

static int env_payload_cap(struct config *c, const char *v, char *why, size_t wn)
{
	uint64_t n;

	if (cfg_parse_uint(v, CFG_PAYLOAD_MIN, CFG_PAYLOAD_MAX, &n, why, wn) < 0)
		return -1;
	c->payload_cap = (uint32_t)n;
	return 0;
}

static int env_prom_port(struct config *c, const char *v, char *why, size_t wn)
{
	uint64_t n;

	if (cfg_parse_uint(v, 0, 65535, &n, why, wn) < 0)
		return -1;
	c->prom_port = (uint16_t)n;
	return 0;
}

static int env_print(struct config *c, const char *v, char *why, size_t wn)
{
	int val;

	if (cfg_parse_enum(v, cfg_print_modes, false, &val, why, wn) < 0)
		return -1;
	c->print = (enum print_mode)val;
	return 0;
}

static int env_plugin_dirs(struct config *c, const char *v, char *why, size_t wn)
{
	while (*v) {
		const char *end = strchr(v, ':');
		size_t len = end ? (size_t)(end - v) : strlen(v);

		if (len && cfg_str_push(&c->plugin_dirs, &c->n_plugin_dirs, v, len) < 0) {
			snprintf(why, wn, "out of memory");
			return -1;
		}
		v += len + (end ? 1 : 0);
	}
	return 0;
}

struct env_var {
	const char *name;
	int (*apply)(struct config *c, const char *v, char *why, size_t wn);
};

static const struct env_var env_vars[] = {
	{ "OTEL_SERVICE_NAME", env_service_name },
	{ "OTEL_EXPORTER_OTLP_ENDPOINT", env_endpoint },
	{ "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env_traces_endpoint },
	{ "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", env_metrics_endpoint },
	{ "OTEL_EXPORTER_OTLP_PROTOCOL", env_protocol },
	{ "OTEL_EXPORTER_OTLP_HEADERS", env_headers },
	{ "OTEL_EXPORTER_OTLP_COMPRESSION", env_compression },
	{ "OTEL_EXPORTER_OTLP_TIMEOUT", env_timeout },
	{ "OTEL_METRIC_EXPORT_INTERVAL", env_interval },
	{ "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", env_temporality },
	{ "OTEL_RESOURCE_ATTRIBUTES", env_resource },
	{ "SONDE_PAYLOAD_CAP", env_payload_cap },
	{ "SONDE_PROMETHEUS_PORT", env_prom_port },
	{ "SONDE_PRINT", env_print },
	{ "SONDE_PLUGIN_DIRS", env_plugin_dirs },
	{ NULL, NULL },
};

/* An empty variable counts as unset (OTel SDK environment rules). Stops at
 * the first bad variable, leaving the earlier ones applied. */
int config_apply_env(struct config *c, char *err, size_t errlen)
{
	char why[WHY];
	size_t i;

	if (err && errlen)
		err[0] = '\0';
	for (i = 0; env_vars[i].name; i++) {
		const char *v = getenv(env_vars[i].name);

		if (!v || !*v)
			continue;
		if (env_vars[i].apply(c, v, why, sizeof(why)) < 0) {
			if (err && errlen)
				snprintf(err, errlen, "%s%s%s", env_vars[i].name, cfg_sep_for(why), why);
			return -1;
		}
	}
	return 0;
}

