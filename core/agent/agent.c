/*
 * agent.c - see agent.h: start-up in order (metrics -> host and plugins ->
 * sinks -> pipeline -> capture), the main loop, the agent's own metrics,
 * and shutdown in reverse.
 *
 * The one idea: main loop and housekeeping live here and only here. The
 * ring buffer feeds pipeline_handle(); twice a second the agent publishes
 * its counters and looks for new plugin files; every five seconds it
 * rescans /proc as a safety net for lost exec/listen records.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include <sonde/plugin.h>

#include "capture/capture.h"
#include "sonde_events.h"
#include "config/config.h"
#include "export/otlp.h"
#include "export/print.h"
#include "export/prom.h"
#include "host/host.h"
#include "pipeline/conns.h"
#include "pipeline/pipeline.h"
#include "pipeline/procs.h"
#include "telemetry/metrics.h"
#include "telemetry/span.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

struct agent {
	struct config *cfg;
	struct metrics *metrics;
	struct host *host;
	struct pipeline *pl;
	struct capture *cap;
	struct span_sink *print;
	struct otlp *otlp;
	struct prom *prom;
};

static uint64_t now_ns(clockid_t clk)
{
	struct timespec t;

	clock_gettime(clk, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static int64_t clock_offset(void)
{
	struct timespec m, r;

	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &r);
	return ((int64_t)r.tv_sec - m.tv_sec) * 1000000000LL + (r.tv_nsec - m.tv_nsec);
}

static void add_plugin_dirs(struct agent *a)
{
	struct plugin_registry *r = host_plugins(a->host);
	char exe[PATH_MAX], dir[PATH_MAX + 16];
	ssize_t l;

	for (size_t i = 0; i < a->cfg->n_cli_plugin_dirs; i++)
		plugins_add_dir(r, a->cfg->cli_plugin_dirs[i]);
	for (size_t i = 0; i < a->cfg->n_plugin_dirs; i++)
		plugins_add_dir(r, a->cfg->plugin_dirs[i]);
	/* Defaults: plugins/ beside the executable (build tree), then the
	 * installed directory. */
	l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (l > 0) {
		exe[l] = 0;
		snprintf(dir, sizeof(dir), "%s/plugins", dirname(exe));
		plugins_add_dir(r, dir);
	}
	plugins_add_dir(r, SONDE_DEFAULT_PLUGIN_DIR);
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
	printf("unix:        yes (stream sockets of watched processes)\n");
	printf("sendfile:    yes (sendfile and splice counted as byte counts)\n");
	printf("rdonly_cast: %s\n", f->rdonly_cast ? "yes (typed socket reads)" : "no (CO-RE reads)");
}

static void publish_self_metrics(struct agent *a)
{
	struct metrics *m = a->metrics;
	struct capture_stats cs = {0};
	const struct host_counters *hn = host_counters(a->host);
	const struct conns_counters *cn = conns_counters(pipeline_conns(a->pl));

	if (a->cap) {
		capture_stats(a->cap, &cs);
		/* Records the kernel dropped, per service. */
		procs_account_drops(pipeline_procs(a->pl));
	}
	metrics_counter_set(m, "sonde_events_total", "Records the kernel side wrote to the ring buffer.",
	                    a->cap ? cs.events : pipeline_counters(a->pl)->records);
	metrics_counter_set(m, "sonde_events_lost_total",
	                    "Records dropped in the kernel because the ring buffer was full.", cs.lost);
	metrics_counter_set(m, "sonde_payloads_truncated_total",
	                    "Reads and writes whose payload was cut at the capture cap.", cs.truncated);
	metrics_counter_set(m, "sonde_tls_records_total",
	                    "Plaintext records captured from TLS library uprobes.", cs.tls_records);
	metrics_counter_set(m, "sonde_tls_dropped_total",
	                    "TLS plaintext dropped because its socket was unknown.", cs.tls_dropped);
	metrics_counter_set(m, "sonde_preexisting_connections_total",
	                    "Connections first seen mid-life (opened before the agent watched them).",
	                    cs.preexisting);
	metrics_counter_set(m, "sonde_events_shed_total",
	                    "Records dropped on purpose under ring-buffer pressure (over budget).",
	                    cs.shed);
	metrics_counter_set(m, "sonde_events_muted_total",
	                    "Records the kernel did not send because no plugin wanted the connection.",
	                    cs.muted);
	metrics_counter_set(m, "sonde_payload_bytes_skipped_total",
	                    "Payload bytes not copied because a parser said it did not need them.",
	                    cs.skipped_bytes);
	metrics_counter_set(m, "sonde_nobuf_records_total",
	                    "sendfile/splice transfers counted by size only (no payload).",
	                    cs.nobuf);
	if (a->cap && capture_injecting(a->cap)) {
		metrics_counter_set(m, "sonde_traceparent_injected_total",
		                    "traceparent headers the kernel inserted into HTTP/1 requests.",
		                    cs.injected);
		metrics_counter_set(m, "sonde_traceparent_present_total",
		                    "Requests not injected: they already carried a traceparent.",
		                    cs.inj_present);
		metrics_counter_set(m, "sonde_traceparent_unsure_total",
		                    "Messages not injected: not exactly one whole HTTP/1 request "
		                    "(the connection is left alone from then on).",
		                    cs.inj_unsure);
		metrics_counter_set(m, "sonde_traceparent_no_context_total",
		                    "Requests of a serving thread not injected: the request it "
		                    "served was not known in time.",
		                    cs.inj_noctx);
		metrics_counter_set(m, "sonde_traceparent_matched_total",
		                    "Inserted traceparents whose client span took their ids.",
		                    hn->injected_matched);
	}
	metrics_counter_set(m, "sonde_spans_total", "Spans produced.", hn->spans);
	metrics_counter_set(m, "sonde_spans_dropped_total",
	                    "Spans abandoned (connection closed first, limits).", hn->spans_dropped);
	if (a->print)
		metrics_counter_set(m, "sonde_print_spans_dropped_total",
		                    "Spans not printed: the reader of the agent's standard output "
		                    "fell more than 64 MiB behind.",
		                    print_sink_dropped(a->print));
	metrics_counter_set(m, "sonde_stream_gaps_total",
	                    "Places where captured bytes were missing from a stream.", cn->gaps);
	metrics_counter_set(m, "sonde_connections_total", "Connections seen.", cn->opened);
	metrics_counter_set(m, "sonde_protocol_errors_total",
	                    "Connections a parser gave up on.", hn->proto_errors);
	metrics_counter_set(m, "sonde_stream_contexts_total",
	                    "Stream contexts runtime plugins gave for multiplexed "
	                    "connections (HTTP/2 streams).",
	                    hn->stream_ctx_given);
	metrics_counter_set(m, "sonde_stream_contexts_taken_total",
	                    "Stream contexts a protocol plugin's span took.", hn->stream_ctx_taken);
	metrics_counter_set(m, "sonde_stream_contexts_forgotten_total",
	                    "Stream contexts forgotten unused (too many per connection).",
	                    hn->stream_ctx_forgotten);
	metrics_counter_set(m, "sonde_trace_links_total",
	                    "Server spans made children of the client span that sent their "
	                    "request, both ends watched on this host.",
	                    hn->links);
	metrics_counter_set(m, "sonde_trace_link_conflicts_total",
	                    "Same-host links not made: the server span continued an incoming "
	                    "traceparent of another trace.",
	                    hn->link_conflicts);
	metrics_counter_set(m, "sonde_trace_link_waits_expired_total",
	                    "Server spans that ended before the client span of their "
	                    "request was read, waited for it in vain, and went out unlinked.",
	                    hn->links_unmatched_held);
	metrics_gauge_set(m, "sonde_instrumented_processes", "Processes being watched.",
	                  (double)procs_count(pipeline_procs(a->pl)));
	metrics_gauge_set(m, "sonde_open_connections", "Connections being tracked.",
	                  (double)conns_count(pipeline_conns(a->pl)));
}

/* --- what runtime plugins get from the host, provided here ------------------- */

static int rt_bpf_load(void *ctx, const char *name, const void *obj, size_t len, void **out,
                       char *err, size_t errlen)
{
	struct agent *a = ctx;

	return capture_obj_load(a->cap, name, obj, len, (struct capture_obj **)out, err, errlen);
}

static int rt_bpf_uprobe(void *ctx, void *obj, const struct sonde_uprobe_opts *o)
{
	(void)ctx;
	return capture_obj_uprobe(obj, o->pid, o->prog, o->path, o->symbol, o->offset,
	                          o->retprobe != 0, o->cookie);
}

static int rt_bpf_map_fd(void *ctx, void *obj, const char *map)
{
	(void)ctx;
	return capture_obj_map_fd(obj, map);
}

static void rt_bpf_detach_pid(void *ctx, void *obj, uint32_t pid)
{
	(void)ctx;
	capture_obj_detach_pid(obj, pid);
}

static void rt_bpf_free(void *ctx, void *obj)
{
	(void)ctx;
	capture_obj_free(obj);
}

static int rt_process_set(void *ctx, uint32_t pid, uint32_t flags)
{
	struct agent *a = ctx;

	if (!(flags & SONDE_PROCESS_CONTEXTS))
		return 0;
	return capture_pid_set(a->cap, pid, SONDE_PID_CONTEXTS, 0);
}

static struct sonde_conn *rt_conn_lookup(void *ctx, uint32_t pid, uint32_t fd)
{
	struct agent *a = ctx;

	return a->pl ? conns_lookup_fd(pipeline_conns(a->pl), pid, fd) : NULL;
}

static bool rt_injects(void *ctx, uint32_t pid)
{
	struct agent *a = ctx;

	return capture_injecting(a->cap) && (capture_pid_flags(a->cap, pid) & SONDE_PID_INJECT);
}

/* A server span of an injecting process started (or changed ids): the
 * kernel learns what thread tid serves, so the requests the thread sends
 * for it carry its trace. */
static void rt_serving(void *ctx, uint32_t pid, uint64_t conn_id, uint32_t tid,
                       const uint8_t trace_id[16], const uint8_t span_id[8])
{
	struct agent *a = ctx;
	struct sonde_trace_ctx t = {0};

	(void)pid;
	if (!a->pl || !conns_trace_ctx(pipeline_conns(a->pl), conn_id, &t))
		return;
	memcpy(t.trace_id, trace_id, 16);
	memcpy(t.span_id, span_id, 8);
	capture_trace_ctx(a->cap, tid, &t);
}

static void install_runtime(struct agent *a)
{
	struct host_runtime_ops ops = {.ctx = a, .conn_lookup = rt_conn_lookup};

	if (a->cap) {
		ops.bpf_load = rt_bpf_load;
		ops.bpf_uprobe = rt_bpf_uprobe;
		ops.bpf_map_fd = rt_bpf_map_fd;
		ops.bpf_detach_pid = rt_bpf_detach_pid;
		ops.bpf_free = rt_bpf_free;
		ops.process_set = rt_process_set;
		if (capture_injecting(a->cap)) {
			ops.injects = rt_injects;
			ops.serving = rt_serving;
		}
	}
	host_set_runtime(a->host, &ops);
}

static int on_record(void *ctx, const void *rec, size_t len)
{
	return pipeline_handle(ctx, rec, len);
}

/* Records per slice: about 0.3 ms of agent work at ~1 us a record. */
#define DRAIN_SLICE 256

static int run_live(struct agent *a)
{
	struct plugin_registry *plugins = host_plugins(a->host);
	uint64_t start = now_ns(CLOCK_MONOTONIC), last_pub = 0, last_scan = start, next_timer = 0;
	struct procs *procs = pipeline_procs(a->pl);

	procs_scan(procs);
	plugins_watch(plugins);
	fprintf(stderr, "sonde: ready: capturing (%zu processes watched, %zu protocols)\n",
	        procs_count(procs), plugins->n_protos);
	/* The agent shares cores with what it watches: it drains the ring in
	 * slices and gives the CPU back between them, so a burst of records
	 * never holds a watched server off its core for long. */
	capture_set_slice(a->cap, DRAIN_SLICE);
	while (!stop) {
		if (capture_more(a->cap))
			sched_yield();
		/* The slice's records lock the metrics registry once (from the
		 * first point recorded), not once per point. */
		host_batch_begin(a->host);
		int rc = capture_poll(a->cap, capture_more(a->cap) ? 0 : 100);
		host_batch_end(a->host);
		if (rc < 0 && rc != -EINTR) {
			fprintf(stderr, "sonde: ring buffer poll failed: %s\n", strerror(-rc));
			break;
		}
		uint64_t now = now_ns(CLOCK_MONOTONIC);
		uint64_t wall = now_ns(CLOCK_REALTIME);

		/* Printed spans go out once per drained slice. */
		if (a->print && a->print->flush)
			a->print->flush(a->print->ctx);

		if (next_timer && wall >= next_timer)
			next_timer = host_timers_run(a->host, wall);
		else if (!next_timer)
			next_timer = host_timers_run(a->host, wall);
		/* Housekeeping twice a second, not per wake-up: under load the
		 * ring buffer wakes us thousands of times a second. */
		if (now - last_pub > 500000000ULL) {
			if (plugins->inotify_fd >= 0) {
				struct pollfd p = {.fd = plugins->inotify_fd, .events = POLLIN};
				if (poll(&p, 1, 0) > 0)
					plugins_on_notify(plugins);
			}
			publish_self_metrics(a);
			last_pub = now;
		}
		/* A safety net for processes whose exec/listen/exit record was
		 * lost. */
		if (now - last_scan > 5000000000ULL) {
			procs_sweep(procs);
			procs_scan(procs);
			last_scan = now;
		}
		if (a->cfg->duration_s > 0 && (double)(now - start) / 1e9 >= a->cfg->duration_s)
			break;
	}
	/* Records the kernel wrote before the stop still become spans. */
	capture_set_slice(a->cap, 0);
	capture_poll(a->cap, 0);
	return 0;
}

/* The capture must exist before the pipeline (the process table feeds the
 * kernel filter), and the pipeline before the first record is delivered:
 * the callback is set once both exist (capture_set_callback), before the
 * first capture_poll. */
/* One exe_path selector: its literal ending into the kernel's table, or
 * (none) every new program is watched provisionally. */
static void add_exe_selector(const char *re, char suffixes[][64], const char **ptrs, size_t *n,
                             bool *all)
{
	if (!re)
		return;
	if (*n < 15 && config_exe_suffix(re, suffixes[*n], 57)) {
		ptrs[*n] = suffixes[*n];
		(*n)++;
		return;
	}
	if (!*all)
		fprintf(stderr, "sonde: warning: exe_path '%s' has no literal ending (like "
		        "'redis-cli$'): every new program is watched until it is matched, which "
		        "costs under heavy exec churn\n", re);
	*all = true;
}

static int start_capture(struct agent *a, char *err, size_t errlen)
{
	struct capture_opts co = {.struct_size = sizeof(co)};
	const struct config *cfg = a->cfg;
	char suffixes[15][64];
	const char *ptrs[15];
	size_t n = 0;
	bool all = false;

	co.payload_cap = cfg->payload_cap;
	co.ringbuf_bytes = cfg->ringbuf_bytes;
	co.shed_pct = cfg->shed_percent;
	co.budget_bytes = cfg->budget_bytes;
	co.max_connections = cfg->max_connections;
	co.tls_per_process = cfg->tls_per_process;
	for (size_t i = 0; i < cfg->n_services; i++)
		co.inject |= cfg->services[i].inject_traceparent;
	/* With an exe_path selector, new programs that may match are watched
	 * from their first instruction until discovery has matched them. */
	if (cfg->have_cli_service)
		add_exe_selector(cfg->cli_service.exe_path, suffixes, ptrs, &n, &all);
	for (size_t i = 0; i < cfg->n_services; i++)
		add_exe_selector(cfg->services[i].exe_path, suffixes, ptrs, &n, &all);
	co.exec_adopt = n || all;
	co.exec_adopt_all = all;
	co.exe_suffixes = ptrs;
	co.n_exe_suffixes = n;
	a->cap = capture_open(&co, NULL, NULL, err, errlen);
	return a->cap ? 0 : -1;
}

static bool has_selectors(const struct config *cfg)
{
	return cfg->have_cli_service || cfg->n_services;
}

static int start_sinks(struct agent *a, char *err, size_t errlen)
{
	if (a->cfg->print != PRINT_NONE) {
		a->print = a->cfg->replay_path
		                   ? print_sink_new_opts(stdout, a->cfg->print, PRINT_BUFFER_BYTES, true)
		                   : print_sink_new(stdout, a->cfg->print);
		host_add_sink(a->host, a->print);
	}
	a->otlp = otlp_start(&a->cfg->otlp, a->metrics, err, errlen);
	if (!a->otlp && err[0]) {
		char tmp[512];

		snprintf(tmp, sizeof(tmp), "OTLP: %s", err);
		snprintf(err, errlen, "%s", tmp);
		return -1;
	}
	if (a->otlp)
		host_add_sink(a->host, otlp_span_sink(a->otlp));
	if (a->cfg->prom_port) {
		a->prom = prom_start(a->metrics, a->cfg->prom_address, a->cfg->prom_port, err, errlen);
		if (!a->prom) {
			char tmp[512];

			snprintf(tmp, sizeof(tmp), "Prometheus endpoint: %s", err);
			snprintf(err, errlen, "%s", tmp);
			return -1;
		}
	}
	return 0;
}

static void shutdown_all(struct agent *a)
{
	if (a->prom)
		prom_stop(a->prom);
	if (a->cap) {
		if (a->pl)
			pipeline_set_capture(a->pl, NULL);
		/* Plugins' BPF objects go before the capture object they share
		 * maps with. */
		if (a->host) {
			host_clear_runtime_objects(a->host);
			host_set_runtime(a->host, NULL);
		}
		capture_close(a->cap);
		a->cap = NULL;
	}
	/* Finish open spans while the sinks still exist, then let OTLP send
	 * its last batch and metrics before the registry goes away. */
	if (a->pl)
		pipeline_close_all(a->pl, now_ns(CLOCK_REALTIME));
	/* Server spans still held for their client's span go out now. */
	if (a->host)
		host_links_flush(a->host);
	if (a->print && a->print->flush)
		a->print->flush(a->print->ctx);
	if (a->otlp)
		otlp_stop(a->otlp);
	if (a->host)
		host_clear_sinks(a->host);
	pipeline_free(a->pl);
	host_free(a->host);
	if (a->print)
		print_sink_free(a->print);
	metrics_free(a->metrics);
}

static int run(struct agent *a)
{
	struct config *cfg = a->cfg;
	struct pipeline_opts po = {.struct_size = sizeof(po)};
	struct host_opts ho = {.struct_size = sizeof(ho)};
	struct plugin_registry *plugins;
	char err[1024] = "";

	if (cfg->features) {
		struct capture_features f;

		capture_probe_features(&f);
		print_features(&f);
		return 0;
	}
	a->metrics = metrics_new();
	ho.cfg = cfg;
	ho.metrics = a->metrics;
	ho.verbose = cfg->verbose;
	a->host = a->metrics ? host_new(&ho) : NULL;
	if (!a->host) {
		fprintf(stderr, "sonde: out of memory\n");
		return 1;
	}
	plugins = host_plugins(a->host);
	add_plugin_dirs(a);
	plugins_scan(plugins, !cfg->list_plugins);
	if (cfg->list_plugins) {
		plugins_list(plugins, stdout);
		return 0;
	}
	if (!plugins->n_protos)
		fprintf(stderr, "sonde: warning: no protocol plugin loaded (searched:%s%s ...); "
		        "spans need one\n", plugins->n_dirs ? " " : "",
		        plugins->n_dirs ? plugins->dirs[0] : "");
	if (!cfg->replay_path && !has_selectors(cfg)) {
		fprintf(stderr, "sonde: nothing to watch: give --open-port, --exe-path or --pid, "
		        "or services in a config file (see --help)\n");
		return 1;
	}
	if (start_sinks(a, err, sizeof(err))) {
		fprintf(stderr, "sonde: %s\n", err);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (!cfg->replay_path && start_capture(a, err, sizeof(err))) {
		fprintf(stderr, "sonde: cannot start capture: %s\n", err);
		return 1;
	}
	po.cfg = cfg;
	po.host = a->host;
	po.cap = a->cap;
	po.replay = cfg->replay_path != NULL;
	po.mono_to_real = clock_offset();
	/* Runtime plugins' calls need the capture and the pipeline: install
	 * them before the pipeline announces the first process. */
	install_runtime(a);
	a->pl = pipeline_new(&po, err, sizeof(err));
	if (!a->pl) {
		fprintf(stderr, "sonde: %s\n", err);
		return 1;
	}
	if (a->cap)
		procs_set_drop_metric(
			pipeline_procs(a->pl),
			metrics_sum(a->metrics, "sonde.events.dropped", "{record}",
			            "Records of the service's processes the kernel dropped: ring buffer "
			            "full, or shed under pressure.",
			            true, NULL, 0),
			metrics_sum(a->metrics, "sonde.events.dropped.size", "By",
			            "Bytes of the records of the service's processes the kernel dropped "
			            "(record headers and payload).",
			            true, NULL, 0));
	if (cfg->replay_path) {
		if (pipeline_replay(a->pl, cfg->replay_path, err, sizeof(err))) {
			fprintf(stderr, "sonde: replay: %s\n", err);
			return 1;
		}
		publish_self_metrics(a);
		return 0;
	}
	if (cfg->record_path && pipeline_record_to(a->pl, cfg->record_path, err, sizeof(err))) {
		fprintf(stderr, "sonde: --record: %s\n", err);
		return 1;
	}
	capture_set_callback(a->cap, on_record, a->pl);
	run_live(a);
	publish_self_metrics(a);
	return 0;
}

int agent_run(struct config *cfg)
{
	struct agent a = {.cfg = cfg};
	int ret = run(&a);

	shutdown_all(&a);
	return ret;
}
