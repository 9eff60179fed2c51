/*
 * flags.c - the command line, and config_resolve(): the one place that
 * decides which setting wins.
 *
 * The one idea: flags are read twice. The first pass only looks for
 * --config (the file is the lowest layer); then the file is loaded, the
 * environment applied, and the second pass applies every other flag over
 * both. Precedence therefore lives in the order of four calls in
 * config_resolve(), not in the modules that read each layer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include "config/values.h"

#ifndef SONDE_VERSION
#define SONDE_VERSION "unknown"
#endif

void config_usage(FILE *out)
{
	fprintf(out,
"usage: sonde [options]\n"
"\n"
"Watch processes with eBPF and turn their traffic into OpenTelemetry spans\n"
"and RED metrics, without changing them.\n"
"\n"
"Choosing processes (any of, repeatable; or services in the config file):\n"
"  --open-port PORTS     processes listening on PORTS (8080, 80,443, 8000-8100)\n"
"  --exe-path REGEX      processes whose executable path matches REGEX\n"
"  --pid PID             this process\n"
"  --protocols LIST      plugins enabled for the processes above (default: all)\n"
"Output:\n"
"  --print json|text     one line per span on stdout\n"
"  --prometheus-port N   serve /metrics on 127.0.0.1:N\n"
"  --otlp-endpoint URL   send OTLP/HTTP to URL (e.g. http://localhost:4318)\n"
"  --service-name NAME   service.name for every watched process\n"
"Plugins:\n"
"  --plugin-dir DIR      load plugins from DIR (repeatable; before the defaults)\n"
"  --list-plugins        list the plugins found, loaded or refused, and exit\n"
"Other:\n"
"  --config FILE         YAML configuration (or SONDE_CONFIG)\n"
"  --payload-cap N       bytes captured per read/write (64..16384, default 4096)\n"
"  --record FILE         also write every captured record to FILE\n"
"  --replay FILE         run a recording through the plugins (no root needed)\n"
"  --duration SECONDS    stop after SECONDS\n"
"  --features            print the kernel features sonde found and exit\n"
"  -v, --verbose         more messages (twice: debug)\n"
"  -h, --help            this text\n"
"  --version             print the version\n");
}

enum {
	O_OPEN_PORT = 256, O_EXE_PATH, O_PID, O_PROTOCOLS, O_PRINT, O_PROM, O_OTLP, O_SVC,
	O_PLUGIN_DIR, O_LIST, O_CONFIG, O_CAP, O_RECORD, O_REPLAY, O_DURATION, O_FEATURES,
	O_VERSION,
};

static const struct option long_opts[] = {
	{"open-port", required_argument, 0, O_OPEN_PORT},
	{"exe-path", required_argument, 0, O_EXE_PATH},
	{"pid", required_argument, 0, O_PID},
	{"protocols", required_argument, 0, O_PROTOCOLS},
	{"print", required_argument, 0, O_PRINT},
	{"prometheus-port", required_argument, 0, O_PROM},
	{"otlp-endpoint", required_argument, 0, O_OTLP},
	{"service-name", required_argument, 0, O_SVC},
	{"plugin-dir", required_argument, 0, O_PLUGIN_DIR},
	{"list-plugins", no_argument, 0, O_LIST},
	{"config", required_argument, 0, O_CONFIG},
	{"payload-cap", required_argument, 0, O_CAP},
	{"record", required_argument, 0, O_RECORD},
	{"replay", required_argument, 0, O_REPLAY},
	{"duration", required_argument, 0, O_DURATION},
	{"features", no_argument, 0, O_FEATURES},
	{"verbose", no_argument, 0, 'v'},
	{"help", no_argument, 0, 'h'},
	{"version", no_argument, 0, O_VERSION},
	{0, 0, 0, 0},
};

struct flag_err {
	char *buf;
	size_t len;
};

static int refuse(struct flag_err *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->buf, e->len, fmt, ap);
	va_end(ap);
	return -1;
}

static int add_pid(struct service_cfg *s, const char *arg, struct flag_err *e)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);
	uint32_t *n;

	if (!*arg || *end || !v || v > CFG_PID_MAX)
		return refuse(e, "--pid: '%s' is not a process id", arg);
	n = realloc(s->pids, (s->n_pids + 1) * sizeof(*n));
	if (!n)
		return refuse(e, "out of memory");
	s->pids = n;
	s->pids[s->n_pids++] = (uint32_t)v;
	return 0;
}

static int add_protocols(struct service_cfg *s, const char *arg, struct flag_err *e)
{
	char *dup = strdup(arg), *save = NULL;

	if (!dup)
		return refuse(e, "out of memory");
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (cfg_str_push(&s->protocols, &s->n_protocols, t, strlen(t))) {
			free(dup);
			return refuse(e, "out of memory");
		}
	}
	free(dup);
	return 0;
}

static int flag_uint(const char *flag, const char *arg, unsigned long lo, unsigned long hi,
                     unsigned long *out, struct flag_err *e)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || !*arg || *end || v < lo || v > hi)
		return refuse(e, "%s: '%s' is not a number from %lu to %lu", flag, arg, lo, hi);
	*out = v;
	return 0;
}

static int set_str(char **dst, const char *src, struct flag_err *e)
{
	return cfg_str_set(dst, src) ? refuse(e, "out of memory") : 0;
}

/* One flag of the second pass. 1: --help/--version answered. */
static int apply_flag(struct config *c, int opt, const char *arg, struct flag_err *e)
{
	struct service_cfg *cli = &c->cli_service;
	unsigned long v;
	char why[WHY];

	switch (opt) {
	case O_OPEN_PORT:
		if (cfg_parse_ports(arg, &cli->ports, &cli->n_ports, why, sizeof(why)))
			return refuse(e, "--open-port: '%s' is not a port, list or range "
			              "(like 8080, 80,443 or 8000-8100)", arg);
		c->have_cli_service = true;
		return 0;
	case O_EXE_PATH: {
		regex_t re;

		if (regcomp(&re, arg, REG_EXTENDED | REG_NOSUB))
			return refuse(e, "--exe-path: '%s' is not a valid regular expression", arg);
		regfree(&re);
		c->have_cli_service = true;
		return set_str(&cli->exe_path, arg, e);
	}
	case O_PID:
		c->have_cli_service = true;
		return add_pid(cli, arg, e);
	case O_PROTOCOLS:
		return add_protocols(cli, arg, e);
	case O_PRINT: {
		int mode;

		if (cfg_parse_enum(arg, cfg_print_modes, false, &mode, why, sizeof(why)))
			return refuse(e, "--print: '%s' must be json, text or none", arg);
		c->print = (enum print_mode)mode;
		return 0;
	}
	case O_PROM:
		if (flag_uint("--prometheus-port", arg, 1, 65535, &v, e))
			return -1;
		c->prom_port = (uint16_t)v;
		return 0;
	case O_OTLP:
		return set_str(&c->otlp.endpoint, arg, e);
	case O_SVC:
		return set_str(&c->service_name, arg, e);
	case O_PLUGIN_DIR:
		if (cfg_str_push(&c->cli_plugin_dirs, &c->n_cli_plugin_dirs, arg, strlen(arg)))
			return refuse(e, "out of memory");
		return 0;
	case O_LIST:
		c->list_plugins = true;
		return 0;
	case O_CONFIG:
		return 0; /* first pass */
	case O_CAP:
		if (flag_uint("--payload-cap", arg, CFG_PAYLOAD_MIN, CFG_PAYLOAD_MAX, &v, e))
			return -1;
		c->payload_cap = (uint32_t)v;
		return 0;
	case O_RECORD:
		return set_str(&c->record_path, arg, e);
	case O_REPLAY:
		return set_str(&c->replay_path, arg, e);
	case O_DURATION: {
		char *end;

		c->duration_s = strtod(arg, &end);
		if (*end || !*arg || c->duration_s <= 0)
			return refuse(e, "--duration: '%s' is not a number of seconds", arg);
		return 0;
	}
	case O_FEATURES:
		c->features = true;
		return 0;
	case 'v':
		c->verbose++;
		return 0;
	case 'h':
		config_usage(stdout);
		return 1;
	case O_VERSION:
		printf("sonde %s (plugin ABI %d.%d)\n", SONDE_VERSION, SONDE_ABI_MAJOR,
		       SONDE_ABI_MINOR);
		return 1;
	default:
		return refuse(e, "try 'sonde --help'");
	}
}

/* First pass: only --config. */
static int find_config_flag(struct config *c, int argc, char **argv, struct flag_err *e)
{
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "vh", long_opts, NULL)) != -1)
		if (opt == O_CONFIG && set_str(&c->config_path, optarg, e))
			return -1;
	return 0;
}

static int apply_flags(struct config *c, int argc, char **argv, struct flag_err *e)
{
	int opt, rc;

	optind = 1;
	opterr = 1;
	while ((opt = getopt_long(argc, argv, "vh", long_opts, NULL)) != -1) {
		rc = apply_flag(c, opt, optarg, e);
		if (rc)
			return rc;
	}
	if (optind < argc)
		return refuse(e, "unexpected argument '%s' (try 'sonde --help')", argv[optind]);
	return 0;
}

int config_resolve(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
	struct flag_err e = {.buf = err, .len = errlen};
	const char *env_path;

	/* 1. defaults: config_init() by the caller. 2. the file. */
	if (find_config_flag(c, argc, argv, &e))
		return -1;
	env_path = getenv("SONDE_CONFIG");
	if (!c->config_path && env_path && *env_path && set_str(&c->config_path, env_path, &e))
		return -1;
	if (c->config_path && config_load_file(c, c->config_path, err, errlen))
		return -1;
	/* 3. the environment. */
	if (config_apply_env(c, err, errlen))
		return -1;
	/* 4. flags. */
	return apply_flags(c, argc, argv, &e);
}
