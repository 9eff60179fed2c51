/*
 * host_priv.h - inside the host module only: the host itself, its
 * connections and spans, shared by host.c (lifecycle and dispatch),
 * sdk_api.c (the function table) and tracer.c (span building).
 *
 * The one idea: every handle a plugin holds leads back to its host in one
 * pointer step (conn->host, span->host, metric->host, handle->reg->owner),
 * which is what lets the SDK table work without a global.
 */
#ifndef SONDE_HOST_PRIV_H
#define SONDE_HOST_PRIV_H

#include "base/hmap.h"
#include "host/host.h"
#include "telemetry/span.h"

#define HOST_MAX_SINKS 8
#define HOST_SPAN_MAX_METRICS 8
#define HOST_HOLD_MAX_BYTES 8192   /* undecided bytes kept per connection */

/* Chunks held while a connection's protocol is not decided yet. */
struct held_chunk {
	struct held_chunk *next;
	struct sonde_chunk c;
	uint8_t data[];
};

struct sonde_conn {
	struct host *host;
	struct sonde_conn_info info;
	struct resource *res;
	const struct service_cfg *svc;
	enum host_conn_state state;
	const struct proto_entry *owner;
	void *owner_state;
	struct held_chunk *held, **held_tail;
	size_t held_bytes;
	unsigned detect_tries;
	unsigned open_spans;
	struct sonde_span *spans;  /* open spans, a list */
};

enum span_slot_state { SPAN_FREE = 0, SPAN_OPEN, SPAN_DEAD };

/* A span being built. Slots are pooled and recycled oldest-first, so a
 * plugin that touches a span after span_end/span_drop hits a DEAD slot and
 * is counted (api_misuse) instead of corrupting another span. */
struct sonde_span {
	struct host *host;
	enum span_slot_state state;
	struct span *s;
	struct sonde_conn *conn;
	struct sonde_span *prev, *next;   /* the connection's open spans */
	struct sonde_span *free_next;     /* the free list */
	struct sonde_metric *metrics[HOST_SPAN_MAX_METRICS];
	unsigned n_metrics;
	uint32_t tid;
	bool active;                      /* registered in host->active */
};

struct sonde_metric {
	struct sonde_metric *next;
	struct host *host;
	struct metric_hist *h;
	struct sonde_plugin_handle *owner;
	char *name;
	char **keys;
	size_t n_keys;
	double scale;          /* seconds -> the histogram's unit (1, 1e3 for ms, ...) */
};

struct host {
	struct host_opts opts;
	struct plugin_registry plugins;
	struct sonde_host_api api;
	struct span_sink *sinks[HOST_MAX_SINKS];
	size_t n_sinks;
	struct host_counters n;
	struct host_observer obs;
	struct sonde_metric *metrics;      /* registered histograms */
	struct hmap active;                /* tid -> struct sonde_span (server span) */
	uint32_t cur_tid;                  /* thread of the chunk being dispatched */
	uint64_t rng;                      /* splitmix64 state for ids */
	struct sonde_span *free_head, *free_tail; /* recycled span slots */
	size_t n_free;
	uint8_t detect_buf[HOST_HOLD_MAX_BYTES]; /* held bytes, joined for detect() */
};

/* tracer.c */
void tracer_init(struct host *h);
void tracer_fini(struct host *h);
struct sonde_span *tracer_start(struct sonde_conn *c, const char *name, enum sonde_span_kind kind,
                                uint64_t start_unix_ns);
void tracer_end(struct sonde_span *sp, uint64_t end_unix_ns);
/* by_host: the host abandons it (counted in spans_dropped); else the
 * plugin asked (span_drop). */
void tracer_drop(struct sonde_span *sp, bool by_host);
/* A live span handle, or NULL (counted when the handle is dead). */
struct sonde_span *tracer_live(struct sonde_span *sp);
/* Spans a plugin left open on a closing connection. */
void tracer_drop_conn_spans(struct sonde_conn *c);

/* sdk_api.c */
void sdk_api_init(struct host *h, struct sonde_host_api *api);
void sdk_api_fini(struct host *h);
void host_log(struct host *h, const char *plugin, enum sonde_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
