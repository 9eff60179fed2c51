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
struct link;
struct links;

struct held_chunk {
	struct held_chunk *next;
	struct sonde_chunk c;
	uint8_t data[];
};

struct sonde_conn {
	struct host *host;
	struct sonde_conn_info info;
	char *unix_path;           /* info.unix_path's storage */
	struct sonde_capture_policy policy;
	bool policy_dirty;
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
	struct injected *inj;      /* traceparents inserted, not yet matched */
	unsigned n_inj;
	bool injecting;            /* the kernel inserts bytes: positions on the
	                              peer's side no longer match ours */
	struct stream_ctx *sctx;   /* stream -> context given by a runtime plugin
	                              (SDK 1.2), oldest first; NULL until one is */
	unsigned n_sctx;
};

struct stream_ctx {
	uint64_t stream, key;
};

#define HOST_INJ_MAX 16
struct injected {
	uint64_t pos;
	uint8_t trace_id[16], span_id[8], parent_id[8];
	bool has_parent;
};

enum span_slot_state { SPAN_FREE = 0, SPAN_OPEN, SPAN_DEAD };

/* Where a span's parent came from, strongest first (docs/architecture.md,
 * "Trace context"). */
enum parent_src {
	PARENT_NONE = 0,
	PARENT_EXPLICIT,   /* the plugin named it (span_start_v2 parent/parent_ctx) */
	PARENT_LINK,       /* same-host link: the client span that sent the request */
	PARENT_HEADER,     /* an incoming traceparent */
	PARENT_CONTEXT,    /* a runtime context (goroutine, async id) */
	PARENT_FORWARDED,  /* the server span that received the traceparent this
	                      client request forwards */
	PARENT_THREAD,     /* the only server span open on the thread */
	PARENT_INJECTED,   /* the request the kernel inserted a traceparent for */
};

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
	bool counted;                     /* counted in its thread's open servers */
	uint32_t ctx_pid;                 /* the runtime context it is active for */
	uint64_t ctx_key;
	struct link *link;                /* its entry in the same-host link table */
	uint64_t link_hash;
	enum parent_src psrc;             /* where its parent came from */
	uint64_t fwd_key;                 /* SERVER with a traceparent: its key in
	                                     the forwarded index (0: none) */
};

struct sonde_metric {
	struct sonde_metric *next;
	struct host *host;
	struct metric_hist *h;
	struct sonde_plugin_handle *owner;
	char *name;
	char **keys;
	size_t n_keys;
	size_t *pos;           /* keys[i] is the registry metric's key pos[i] */
	size_t n_union;        /* the registry metric's keys when registered */
	double scale;          /* seconds -> the histogram's unit (1, 1e3 for ms, ...) */
	bool monotonic;        /* a counter: values must be >= 0 */
};

/* A thread's open server spans: the latest, and how many are open. */
struct tid_state {
	struct sonde_span *span;
	unsigned n_open;
};

/* A runtime context (pid, key): where it came from and its active span. */
struct ctx_entry {
	uint32_t pid;
	uint32_t used;
	uint64_t key;
	uint64_t parent;           /* 0: none */
	struct sonde_span *active; /* the server span it serves, or NULL */
	bool ended;                /* the plugin ended it while it served: the
	                              entry goes with the span */
};

struct host_proc {
	struct sonde_process_info pi;
	char *exe_path, *service_name;
	uint32_t flags;   /* SONDE_PROCESS_* a runtime plugin set */
};

struct sonde_timer {
	struct sonde_timer *next;
	struct sonde_plugin_handle *owner;
	uint64_t due, period;
	sonde_timer_fn fn;
	void *arg;
	bool dead;
};

struct sonde_bpf {
	struct sonde_bpf *next;
	struct host *host;
	struct sonde_plugin_handle *owner;
	void *obj;                 /* the runtime ops' object */
};

struct record_claim {
	uint32_t first, count;
	struct sonde_plugin_handle *owner;
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
	uint64_t cur_ctx;                  /* its runtime context (0: none) */
	struct links *links;               /* same-host links (links.c) */
	uint64_t rng;                      /* splitmix64 state for ids */
	struct sonde_span *free_head, *free_tail; /* recycled span slots */
	size_t n_free;
	uint8_t detect_buf[HOST_HOLD_MAX_BYTES]; /* held bytes, joined for detect() */
	struct host_runtime_ops rt;
	struct hmap procs;                 /* pid -> struct host_proc */
	struct ctx_entry *ctxs;            /* open addressing on (pid, key) */
	size_t n_ctxs, cap_ctxs;
	struct sonde_timer *timers;        /* sorted by due */
	uint64_t last_data_ns;             /* latest data chunk's time (unix ns) */
	bool timers_running;
	struct sonde_bpf *bpfs;
	struct record_claim claims[32];
	size_t n_claims;
};

/* runtime.c */
void runtime_plugin_loaded(struct host *h, struct sonde_plugin_handle *p);
void runtime_plugin_unloading(struct host *h, struct sonde_plugin_handle *p);
void runtime_free(struct host *h);
struct ctx_entry *ctx_find(struct host *h, uint32_t pid, uint64_t key, bool create);
void ctx_forget_span(struct host *h, struct sonde_span *sp);
void runtime_ctx_del(struct host *h, struct ctx_entry *e);
/* SONDE_PROCESS_* flags a runtime plugin set on a process (process_set). */
void host_process_flags(struct host *h, uint32_t pid, uint32_t flags);
/* A runtime plugin tells this process's contexts: no thread guesses. */
bool host_process_has_contexts(const struct host *h, uint32_t pid);
struct sonde_timer *runtime_timer_start(struct host *h, struct sonde_plugin_handle *owner,
                                        uint64_t now, uint64_t delay, uint64_t period,
                                        sonde_timer_fn fn, void *arg);
void runtime_timer_stop(struct host *h, struct sonde_timer *t);
int runtime_claim(struct host *h, struct sonde_plugin_handle *owner, uint32_t first,
                  uint32_t count);
int runtime_bpf_load(struct host *h, struct sonde_plugin_handle *owner,
                     const struct sonde_bpf_opts *o, struct sonde_bpf **out);

/* tracer.c */
/* Same-host links (links.c). */
int links_span_pos(struct sonde_span *sp, uint8_t source, uint64_t pos);
void links_span_gone(struct sonde_span *sp);
/* Connections opening and closing (watched clients by local port). */
void links_conn_open(struct host *h, const struct sonde_conn *c);
void links_conn_close(struct host *h, const struct sonde_conn *c);
void links_remap(struct host *h, struct span *s);
/* True when s belongs to a trace waiting for its link: kept (a reference
 * taken) and emitted when the wait ends. */
bool links_park(struct host *h, struct span *s);
/* A server span ends still waiting for its client span: hold it (it leaves
 * with the link, or unlinked when the wait runs out). True if held. */
bool links_hold(struct host *h, struct sonde_span *sp);
/* An incoming (SERVER) or forwarded (CLIENT) traceparent, parsed. */
int links_traceparent(struct sonde_span *sp, const uint8_t trace_id[16],
                      const uint8_t span_id[8], uint8_t flags);
/* Hand an ended span to the sinks. */
void tracer_emit(struct host *h, struct span *s);
void links_free(struct host *h);

void tracer_init(struct host *h);
void tracer_fini(struct host *h);
struct sonde_span *tracer_start(struct sonde_conn *c, const struct sonde_span_opts *o);
void tracer_end(struct sonde_span *sp, uint64_t end_unix_ns);
/* by_host: the host abandons it (counted in spans_dropped); else the
 * plugin asked (span_drop). */
void tracer_drop(struct sonde_span *sp, bool by_host);
/* A live span handle, or NULL (counted when the handle is dead). */
struct sonde_span *tracer_live(struct sonde_span *sp);
/* Spans a plugin left open on a closing connection. */
void tracer_drop_conn_spans(struct sonde_conn *c);
/* sp is the thread's active server span (new, or its ids changed): a
 * process that injects traceparent learns what the thread serves. */
void tracer_serving(struct host *h, struct sonde_span *sp);

/* sdk_api.c */
void metric_record_mapped(struct sonde_metric *m, const struct resource *res, double value,
                          const char *const *vals);
void sdk_api_init(struct host *h, struct sonde_host_api *api);
void sdk_api_fini(struct host *h);
void host_log(struct host *h, const char *plugin, enum sonde_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
