/*
 * agent.c - the pipeline: one kernel record in, tables updated, bytes
 * dispatched, spans out.
 *
 * The one idea: agent_handle_record() is the only entry point for captured
 * data, live or replayed, so whatever a recording shows is what the live
 * agent does.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "capture.h"
#include "metrics.h"

static int64_t clock_offset(void)
{
	struct timespec m, r;

	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &r);
	return ((int64_t)r.tv_sec - m.tv_sec) * 1000000000LL + (r.tv_nsec - m.tv_nsec);
}

int agent_init(struct agent *a, struct config *cfg)
{
	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
	hmap_init(&a->procs);
	hmap_init(&a->conns);
	hmap_init(&a->active);
	a->mono_to_real = clock_offset();
	if (gethostname(a->hostname, sizeof(a->hostname) - 1))
		snprintf(a->hostname, sizeof(a->hostname), "localhost");
	a->metrics = metrics_new();
	if (!a->metrics)
		return -1;
	host_api_init(a, &a->host);
	plugins_init(&a->plugins, &a->host);
	return 0;
}

void agent_add_sink(struct agent *a, struct span_sink *s)
{
	if (s && a->n_sinks < sizeof(a->sinks) / sizeof(a->sinks[0]))
		a->sinks[a->n_sinks++] = s;
}

void agent_close_all(struct agent *a, uint64_t ts_unix_ns)
{
	uint64_t key;
	void *val;

	for (;;) {
		size_t it = 0;
		if (!hmap_next(&a->conns, &it, &key, &val))
			break;
		conn_close(a, val, ts_unix_ns);
	}
}

void agent_fini(struct agent *a)
{
	uint64_t key;
	void *val;
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	agent_close_all(a, (uint64_t)now.tv_sec * 1000000000ULL + now.tv_nsec);
	for (;;) {
		size_t it = 0;
		if (!hmap_next(&a->procs, &it, &key, &val))
			break;
		proc_forget(a, (uint32_t)key);
	}
	for (size_t i = 0; i < a->n_sinks; i++)
		if (a->sinks[i]->flush)
			a->sinks[i]->flush(a->sinks[i]->ctx);
	plugins_free(&a->plugins);
	host_api_fini();
	for (size_t i = 0; i < a->n_services; i++)
		if (a->services[i].has_re)
			regfree(&a->services[i].exe_re);
	free(a->services);
	hmap_free(&a->procs);
	hmap_free(&a->conns);
	hmap_free(&a->active);
	if (a->record)
		fclose(a->record);
	metrics_free(a->metrics);
}

static void on_data(struct agent *a, const struct sonde_ev_data *ev, size_t len)
{
	struct sonde_conn *c;

	if (len < sizeof(*ev) || ev->cap_len > len - sizeof(*ev) || ev->cap_len > ev->len)
		return;
	c = hmap_get(&a->conns, ev->gen);
	if (!c) {
		/* The kernel always sends CONN_OPEN first; a miss means the open
		 * record was lost (ring buffer full) or the process is gone. */
		a->n.unknown_conn_data++;
		return;
	}
	conn_data(a, c, ev, ev->h.ts_ns + a->mono_to_real);
}

int agent_handle_record(struct agent *a, const void *rec, size_t len)
{
	const struct sonde_ev_hdr *h = rec;

	if (len < sizeof(*h))
		return 0;
	a->n.records++;
	record_write(a, rec, len);
	switch (h->type) {
	case SONDE_EV_DATA:
		on_data(a, rec, len);
		break;
	case SONDE_EV_CONN_OPEN:
		if (len >= sizeof(struct sonde_ev_conn))
			conn_open(a, rec);
		break;
	case SONDE_EV_CONN_CLOSE:
		if (len >= sizeof(struct sonde_ev_conn)) {
			const struct sonde_ev_conn *ev = rec;
			struct sonde_conn *c = hmap_get(&a->conns, ev->gen);
			if (c)
				conn_close(a, c, ev->h.ts_ns + a->mono_to_real);
		}
		break;
	case SONDE_EV_PROC_EXEC:
		if (len >= sizeof(struct sonde_ev_exec) && !a->replay)
			discovery_on_exec(a, rec);
		break;
	case SONDE_EV_PROC_FORK:
		if (len >= sizeof(struct sonde_ev_proc) && !a->replay)
			discovery_on_fork(a, rec);
		break;
	case SONDE_EV_PROC_EXIT:
		if (len >= sizeof(struct sonde_ev_proc))
			discovery_on_exit(a, rec);
		break;
	case SONDE_EV_LISTEN:
		if (len >= sizeof(struct sonde_ev_conn) && !a->replay)
			discovery_on_listen(a, rec);
		break;
	default:
		break;
	}
	return 0;
}

void agent_publish_self_metrics(struct agent *a)
{
	struct metrics *m = a->metrics;
	struct capture_stats cs = {0};

	if (a->cap)
		capture_stats(a->cap, &cs);
	metrics_counter_set(m, "sonde_events_total", "Records the kernel side wrote to the ring buffer.",
	                    a->cap ? cs.events : a->n.records);
	metrics_counter_set(m, "sonde_events_lost_total",
	                    "Records dropped in the kernel because the ring buffer was full.", cs.lost);
	metrics_counter_set(m, "sonde_payloads_truncated_total",
	                    "Reads and writes whose payload was cut at the capture cap.", cs.truncated);
	metrics_counter_set(m, "sonde_tls_records_total",
	                    "Plaintext records captured from TLS library uprobes.", cs.tls_records);
	metrics_counter_set(m, "sonde_tls_dropped_total",
	                    "TLS plaintext dropped because its socket was unknown.", cs.tls_dropped);
	metrics_counter_set(m, "sonde_syscalls_recovered_total",
	                    "Reads/writes already in progress at attach, recovered from registers.",
	                    cs.recovered);
	metrics_counter_set(m, "sonde_spans_total", "Spans produced.", a->n.spans);
	metrics_counter_set(m, "sonde_spans_dropped_total",
	                    "Spans abandoned (connection closed first, limits).", a->n.spans_dropped);
	metrics_counter_set(m, "sonde_stream_gaps_total",
	                    "Places where captured bytes were missing from a stream.", a->n.gaps);
	metrics_counter_set(m, "sonde_connections_total", "Connections seen.", a->n.conns_opened);
	metrics_counter_set(m, "sonde_protocol_errors_total",
	                    "Connections a parser gave up on.", a->n.proto_errors);
	metrics_gauge_set(m, "sonde_instrumented_processes", "Processes being watched.",
	                  (double)a->procs.n);
	metrics_gauge_set(m, "sonde_open_connections", "Connections being tracked.",
	                  (double)a->conns.n);
}
