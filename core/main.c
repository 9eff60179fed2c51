/*
 * main.c - the sonde command: flags, configuration, start-up, main loop.
 *
 * The one idea: main only wires modules together in order (config ->
 * plugins -> sinks -> discovery -> capture -> loop) and turns every failure
 * into one sentence on stderr and a non-zero exit. All the work happens in
 * agent_handle_record(), called from capture_poll() or replay_run().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "capture.h"
#include "metrics.h"
#include "otlp.h"
#include "print.h"
#include "prom.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *out)
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

struct opts {
	const char *config, *record, *replay;
	const char *plugin_dirs[16];
	int n_plugin_dirs;
	bool list_plugins, features;
	double duration;
	int verbose;
};

static int add_pid(struct service_cfg *s, const char *arg)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);
	uint32_t *n;

	if (!*arg || *end || !v || v > 4194304) {
		fprintf(stderr, "sonde: --pid: '%s' is not a process id\n", arg);
		return -1;
	}
	n = realloc(s->pids, (s->n_pids + 1) * sizeof(*n));
	if (!n)
		return -1;
	s->pids = n;
	s->pids[s->n_pids++] = (uint32_t)v;
	return 0;
}

static int add_protocols(struct service_cfg *s, const char *arg)
{
	char *dup = strdup(arg), *save = NULL;

	if (!dup)
		return -1;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char **n = realloc(s->protocols, (s->n_protocols + 1) * sizeof(*n));
		if (!n)
			break;
		s->protocols = n;
		s->protocols[s->n_protocols++] = strdup(t);
	}
	free(dup);
	return 0;
}

static int parse_uint(const char *flag, const char *arg, unsigned long lo, unsigned long hi,
                      unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || !*arg || *end || v < lo || v > hi) {
		fprintf(stderr, "sonde: %s: '%s' is not a number from %lu to %lu\n", flag, arg, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
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

static void replace_str(char **dst, const char *src)
{
	free(*dst);
	*dst = strdup(src);
}

/* Flags are read twice: first for --config (the file is the lowest layer),
 * then for everything else, applied over file + environment. */
static int parse_flags(int argc, char **argv, struct opts *o, struct config *cfg,
                       struct agent *a, bool apply)
{
	struct service_cfg *cli = &a->cli_service;
	unsigned long v;
	int c;

	optind = 1;
	opterr = apply;
	while ((c = getopt_long(argc, argv, "vh", long_opts, NULL)) != -1) {
		if (!apply) {
			if (c == O_CONFIG)
				o->config = optarg;
			continue;
		}
		switch (c) {
		case O_OPEN_PORT:
			if (config_parse_ports(optarg, &cli->ports, &cli->n_ports)) {
				fprintf(stderr, "sonde: --open-port: '%s' is not a port, list or range "
				        "(like 8080, 80,443 or 8000-8100)\n", optarg);
				return -1;
			}
			a->have_cli_service = true;
			break;
		case O_EXE_PATH: {
			regex_t re;
			if (regcomp(&re, optarg, REG_EXTENDED | REG_NOSUB)) {
				fprintf(stderr, "sonde: --exe-path: '%s' is not a valid regular expression\n",
				        optarg);
				return -1;
			}
			regfree(&re);
			replace_str(&cli->exe_path, optarg);
			a->have_cli_service = true;
			break;
		}
		case O_PID:
			if (add_pid(cli, optarg))
				return -1;
			a->have_cli_service = true;
			break;
		case O_PROTOCOLS:
			add_protocols(cli, optarg);
			break;
		case O_PRINT:
			if (!strcmp(optarg, "json"))
				cfg->print = PRINT_JSON;
			else if (!strcmp(optarg, "text"))
				cfg->print = PRINT_TEXT;
			else if (!strcmp(optarg, "none"))
				cfg->print = PRINT_NONE;
			else {
				fprintf(stderr, "sonde: --print: '%s' must be json, text or none\n", optarg);
				return -1;
			}
			break;
		case O_PROM:
			if (parse_uint("--prometheus-port", optarg, 1, 65535, &v))
				return -1;
			cfg->prom_port = (uint16_t)v;
			break;
		case O_OTLP:
			replace_str(&cfg->otlp.endpoint, optarg);
			break;
		case O_SVC:
			replace_str(&cfg->service_name, optarg);
			break;
		case O_PLUGIN_DIR:
			if (o->n_plugin_dirs < 16)
				o->plugin_dirs[o->n_plugin_dirs++] = optarg;
			break;
		case O_LIST:
			o->list_plugins = true;
			break;
		case O_CONFIG:
			break;
		case O_CAP:
			if (parse_uint("--payload-cap", optarg, 64, SONDE_MAX_PAYLOAD, &v))
				return -1;
			cfg->payload_cap = (uint32_t)v;
			break;
		case O_RECORD:
			o->record = optarg;
			break;
		case O_REPLAY:
			o->replay = optarg;
			break;
		case O_DURATION: {
			char *end;
			o->duration = strtod(optarg, &end);
			if (*end || o->duration <= 0) {
				fprintf(stderr, "sonde: --duration: '%s' is not a number of seconds\n", optarg);
				return -1;
			}
			break;
		}
		case O_FEATURES:
			o->features = true;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case O_VERSION:
			printf("sonde %s (plugin ABI %d.%d)\n", SONDE_VERSION, SONDE_ABI_MAJOR,
			       SONDE_ABI_MINOR);
			exit(0);
		default:
			fprintf(stderr, "sonde: try 'sonde --help'\n");
			return -1;
		}
	}
	if (apply && optind < argc) {
		fprintf(stderr, "sonde: unexpected argument '%s' (try 'sonde --help')\n", argv[optind]);
		return -1;
	}
	return 0;
}

static void add_plugin_dirs(struct agent *a, const struct opts *o)
{
	char exe[PATH_MAX], dir[PATH_MAX + 16];
	ssize_t l;

	for (int i = 0; i < o->n_plugin_dirs; i++)
		plugins_add_dir(&a->plugins, o->plugin_dirs[i]);
	for (size_t i = 0; i < a->cfg->n_plugin_dirs; i++)
		plugins_add_dir(&a->plugins, a->cfg->plugin_dirs[i]);
	/* Defaults: plugins/ beside the executable (build tree), then the
	 * installed directory. */
	l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (l > 0) {
		exe[l] = 0;
		snprintf(dir, sizeof(dir), "%s/plugins", dirname(exe));
		plugins_add_dir(&a->plugins, dir);
	}
	plugins_add_dir(&a->plugins, SONDE_DEFAULT_PLUGIN_DIR);
}

static void free_cli_service(struct service_cfg *s)
{
	free(s->ports);
	free(s->exe_path);
	free(s->pids);
	for (size_t i = 0; i < s->n_protocols; i++)
		free(s->protocols[i]);
	free(s->protocols);
}

static bool has_selectors(const struct agent *a)
{
	return a->have_cli_service || a->cfg->n_services;
}

static void print_features(const struct capture_features *f)
{
	printf("btf:         %s\n", f->btf ? "yes (/sys/kernel/btf/vmlinux)" : "no");
	printf("tracefs:     %s\n", f->tracefs[0] ? f->tracefs : "not mounted (sonde mounts it)");
	printf("tracepoints: %s\n", f->tracepoints ? "yes" : "no");
	printf("raw_tp:      %s\n", f->raw_tp ? "yes" : "no");
	printf("ringbuf:     %s\n", f->ringbuf ? "yes" : "no");
	printf("uprobes:     %s\n", f->uprobes ? "yes" : "no");
	printf("kprobes:     %s\n", f->kprobes ? "yes (optional, unused)" : "no (not needed)");
	printf("fentry:      %s\n", f->fentry ? "yes (optional, unused)" : "no (not needed)");
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec t;

	clock_gettime(clk, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static int on_record(void *ctx, const void *rec, size_t len)
{
	return agent_handle_record(ctx, rec, len);
}

static int run_live(struct agent *a, const struct opts *o)
{
	struct capture_opts co = {.struct_size = sizeof(co)};
	char err[512] = "";
	uint64_t start = now_ns(CLOCK_MONOTONIC), last_pub = 0, last_scan = start;

	co.payload_cap = a->cfg->payload_cap;
	co.ringbuf_bytes = a->cfg->ringbuf_bytes;
	/* With an exe_path selector, new programs are watched from their first
	 * instruction until discovery has matched them. */
	for (size_t i = 0; i < a->n_services; i++)
		co.exec_adopt |= a->services[i].has_re;
	a->cap = capture_open(&co, on_record, a, err, sizeof(err));
	if (!a->cap) {
		fprintf(stderr, "sonde: cannot start capture: %s\n", err);
		return 1;
	}
	discovery_scan(a);
	plugins_watch(&a->plugins);
	fprintf(stderr, "sonde: ready: capturing (%zu processes watched, %zu protocols)\n",
	        a->procs.n, a->plugins.n_protos);
	while (!stop) {
		int rc = capture_poll(a->cap, 100);
		if (rc < 0 && rc != -EINTR) {
			fprintf(stderr, "sonde: ring buffer poll failed: %s\n", strerror(-rc));
			break;
		}
		uint64_t now = now_ns(CLOCK_MONOTONIC);
		/* Housekeeping twice a second, not per wake-up: under load the
		 * ring buffer wakes us thousands of times a second. */
		if (now - last_pub > 500000000ULL) {
			if (a->plugins.inotify_fd >= 0) {
				struct pollfd p = {.fd = a->plugins.inotify_fd, .events = POLLIN};
				if (poll(&p, 1, 0) > 0)
					plugins_on_notify(&a->plugins);
			}
			agent_publish_self_metrics(a);
			last_pub = now;
		}
		/* A safety net for processes whose exec/listen record was lost. */
		if (now - last_scan > 5000000000ULL) {
			discovery_scan(a);
			last_scan = now;
		}
		if (o->duration > 0 && (double)(now - start) / 1e9 >= o->duration)
			break;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct config cfg;
	static struct agent a;
	struct opts o = {0};
	struct span_sink *print = NULL;
	struct prom *prom = NULL;
	struct otlp *otlp = NULL;
	char err[1024] = "";
	int ret = 1;

	signal(SIGPIPE, SIG_IGN);
	config_init(&cfg);
	if (agent_init(&a, &cfg)) {
		fprintf(stderr, "sonde: out of memory\n");
		return 1;
	}
	if (parse_flags(argc, argv, &o, &cfg, &a, false))
		goto out;
	if (!o.config)
		o.config = getenv("SONDE_CONFIG");
	if (o.config && config_load_file(&cfg, o.config, err, sizeof(err))) {
		fprintf(stderr, "sonde: %s\n", err);
		goto out;
	}
	if (config_apply_env(&cfg, err, sizeof(err))) {
		fprintf(stderr, "sonde: %s\n", err);
		goto out;
	}
	if (parse_flags(argc, argv, &o, &cfg, &a, true))
		goto out;
	a.verbose = o.verbose;

	if (o.features) {
		struct capture_features f;
		capture_probe_features(&f);
		print_features(&f);
		ret = 0;
		goto out;
	}

	add_plugin_dirs(&a, &o);
	plugins_scan(&a.plugins, !o.list_plugins);
	if (o.list_plugins) {
		plugins_list(&a.plugins, stdout);
		ret = 0;
		goto out;
	}
	if (!a.plugins.n_protos)
		fprintf(stderr, "sonde: warning: no protocol plugin loaded (searched:%s%s ...); "
		        "spans need one\n", a.plugins.n_dirs ? " " : "",
		        a.plugins.n_dirs ? a.plugins.dirs[0] : "");

	if (!o.replay && !has_selectors(&a)) {
		fprintf(stderr, "sonde: nothing to watch: give --open-port, --exe-path or --pid, "
		        "or services in a config file (see --help)\n");
		goto out;
	}
	if (discovery_init(&a))
		goto out;

	if (cfg.print != PRINT_NONE) {
		print = print_sink_new(stdout, cfg.print);
		agent_add_sink(&a, print);
	}
	otlp = otlp_start(&cfg.otlp, a.metrics, err, sizeof(err));
	if (!otlp && err[0]) {
		fprintf(stderr, "sonde: OTLP: %s\n", err);
		goto out;
	}
	if (otlp)
		agent_add_sink(&a, otlp_span_sink(otlp));
	if (cfg.prom_port) {
		prom = prom_start(a.metrics, cfg.prom_address, cfg.prom_port, err, sizeof(err));
		if (!prom) {
			fprintf(stderr, "sonde: Prometheus endpoint: %s\n", err);
			goto out;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	if (o.replay) {
		if (replay_run(&a, o.replay, err, sizeof(err))) {
			fprintf(stderr, "sonde: replay: %s\n", err);
			goto out;
		}
		ret = 0;
	} else {
		if (o.record && record_open(&a, o.record, err, sizeof(err))) {
			fprintf(stderr, "sonde: --record: %s\n", err);
			goto out;
		}
		ret = run_live(&a, &o);
	}
	agent_publish_self_metrics(&a);
out:
	if (prom)
		prom_stop(prom);
	if (a.cap) {
		capture_close(a.cap);
		a.cap = NULL;
	}
	/* Finish open spans while the sinks still exist, then let OTLP send
	 * its last batch and metrics before the registry goes away. */
	agent_close_all(&a, now_ns(CLOCK_REALTIME));
	if (print && print->flush)
		print->flush(print->ctx);
	if (otlp)
		otlp_stop(otlp);
	a.n_sinks = 0;
	agent_fini(&a);
	if (print)
		print_sink_free(print);
	free_cli_service(&a.cli_service);
	config_free(&cfg);
	fflush(stdout);
	return ret;
}
