/*
 * host.h - the plugin host: the loaded plugins, the SDK function table they
 * call, the connections they are fed, and the tracer that turns what they
 * report into spans.
 *
 * The one idea: everything a plugin can see belongs to one struct host, and
 * every SDK call finds its host from the handle it is given (the plugin
 * handle, the connection, the span or the metric). There is no global host:
 * a test process can run two, and the agent, the replay tool and the plugin
 * unit tests all run this same code.
 *
 * The pipeline (core/pipeline) creates a host connection for every captured
 * connection and pushes chunks into it; the host detects which protocol
 * owns it, feeds the owner, and hands finished spans to its sinks. The host
 * never sees kernel records and never calls the pipeline.
 */
#ifndef SONDE_HOST_H
#define SONDE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sonde/plugin.h>

#include "host/loader.h"

struct config;
struct metrics;
struct resource;
struct service_cfg;
struct span;
struct span_sink;
struct host;

struct host_opts {
	size_t struct_size;
	const struct config *cfg;    /* plugin settings for config_get; may be NULL */
	struct metrics *metrics;     /* where plugin histograms live; required */
	int verbose;                 /* plugin log lines shown: -1 none, 0 warn+,
	                                1 info+, 2 debug+ */
	unsigned max_open_spans;     /* per connection; 0 = 1024 */
};

/* What the host counts; read with host_counters(). */
struct host_counters {
	uint64_t spans;          /* spans ended and handed to the sinks */
	uint64_t spans_dropped;  /* abandoned by the host: left open at close, limits */
	uint64_t conns_owned;    /* connections a protocol claimed */
	uint64_t conns_ignored;  /* connections no protocol claimed */
	uint64_t proto_errors;   /* connections a parser gave up on */
	uint64_t api_misuse;     /* SDK calls refused: dead handle, bad argument */
	uint64_t links;          /* server spans linked to a client span on this host */
	uint64_t link_collisions; /* links not made: two requests' keys collided */
	uint64_t link_conflicts;  /* links not made: an incoming traceparent of
	                             another trace came first */
	uint64_t links_unmatched_held; /* server spans held for a client span that
	                                  did not come in time (sent unlinked) */
	uint64_t injected;        /* traceparents the kernel inserted */
	uint64_t injected_matched; /* ... whose client span took their ids */
	uint64_t stream_ctx_given;     /* stream contexts runtime plugins gave (1.2) */
	uint64_t stream_ctx_taken;     /* ... taken by a protocol plugin's span */
	uint64_t stream_ctx_forgotten; /* ... pushed out unused (SONDE_STREAM_CTX_MAX) */
};

struct host *host_new(const struct host_opts *o);
/* Unloads the plugins. Close every connection first. NULL is a no-op. */
void host_free(struct host *h);

struct plugin_registry *host_plugins(struct host *h);
/* Load a plugin linked into the calling program (tests, static builds),
 * with the same checks as a file. `origin` names it in listings. */
int host_load_builtin(struct host *h, const struct sonde_plugin *desc, const char *origin,
                      char *why, size_t whylen);

/* Sinks receive every ended span; at most 8, borrowed until removed. */
void host_add_sink(struct host *h, struct span_sink *s);
void host_clear_sinks(struct host *h);
const struct host_counters *host_counters(const struct host *h);
const char *sonde_strerror(int err);

/* Observation points for tests and tools: each is optional and called on
 * the host's thread. A started span is shown as it is created (take a
 * reference to keep watching it fill in); a dropped span before it is
 * freed; a metric point as recorded (attribute values as text, NULL =
 * absent). */
struct host_observer {
	void (*span_started)(void *ctx, struct span *s);
	void (*log)(void *ctx, const char *plugin, enum sonde_log_level lvl, const char *msg);
	void (*span_dropped)(void *ctx, const struct span *s);
	void (*metric_point)(void *ctx, const char *name, double value, const struct span *from,
	                     size_t n, const char *const *keys, const char *const *values);
	void *ctx;
};
void host_set_observer(struct host *h, const struct host_observer *o);
/* Change options after creation (tests): 0 = no limit on open spans. */
void host_set_max_open_spans(struct host *h, unsigned n);
void host_set_verbose(struct host *h, int verbose);
/* Open spans of a connection. */
unsigned host_conn_open_spans(const struct sonde_conn *c);

/* --- connections (the struct sonde_conn plugins see) ----------------------- */

struct host_conn_desc {
	struct sonde_conn_info info;     /* copied; service_name and exe_name must
	                                    stay valid while the connection lives
	                                    (or until host_conn_set_identity
	                                    replaces them); unix_path is copied */
	struct resource *res;            /* referenced; may be NULL */
	const struct service_cfg *svc;   /* enablement and settings; NULL = all */
};

enum host_conn_state { HOST_CONN_DETECTING = 0, HOST_CONN_OWNED, HOST_CONN_IGNORED };

struct sonde_conn *host_conn_new(struct host *h, const struct host_conn_desc *d);
/* One chunk, in order. The chunk's data is borrowed for the call. Returns
 * what the owner's conn_data said (SONDE_OK while detecting or ignored). */
int host_conn_data(struct sonde_conn *c, const struct sonde_chunk *ch);
/* The owner's conn_close, spans it left open dropped, then freed. */
void host_conn_close(struct sonde_conn *c, uint64_t ts_unix_ns);
/* The process became another program: new names and resource. */
void host_conn_set_identity(struct sonde_conn *c, const char *service_name,
                            const char *exe_name, struct resource *res);
/* Plaintext arrives from a TLS library from now on (conn_info.tls = 1). */
void host_conn_set_tls(struct sonde_conn *c);
/* The kernel inserted a traceparent (trace_id, span_id; parent_id the
 * serving request's span or NULL for a new trace) into the request that
 * starts at byte pos of c's outgoing stream: the client span of that
 * request takes those ids. */
void host_conn_injected(struct sonde_conn *c, uint64_t pos, const uint8_t trace_id[16],
                        const uint8_t span_id[8], const uint8_t *parent_id);
enum host_conn_state host_conn_state(const struct sonde_conn *c);
/* Skip detection: make `proto` the owner now (tests). SONDE_OK, or
 * SONDE_ERR_NOENT / the plugin's conn_open error. */
int host_conn_assign(struct sonde_conn *c, const char *proto);
/* One protocol's detect() answer for a chunk (tests). */
int host_detect(struct host *h, const char *proto, const struct sonde_conn_info *ci,
                const struct sonde_chunk *ch);

/* The capture policy the owner asked for with conn_set_capture, if it
 * changed since the last call (1), else 0. */
int host_conn_capture(struct sonde_conn *c, struct sonde_capture_policy *out);

/* --- what the host needs from around it ------------------------------------
 * Runtime plugins load BPF objects, attach uprobes, flag processes and find
 * connections by (pid, fd): things only the layers around the host can do.
 * The agent installs these; without them (replays, tests) the calls answer
 * SONDE_ERR_UNSUPPORTED or NULL. */
struct host_runtime_ops {
	void *ctx;
	int (*bpf_load)(void *ctx, const char *name, const void *obj, size_t len, void **out,
	                char *err, size_t errlen);
	int (*bpf_uprobe)(void *ctx, void *obj, const struct sonde_uprobe_opts *o);
	int (*bpf_map_fd)(void *ctx, void *obj, const char *map);
	void (*bpf_detach_pid)(void *ctx, void *obj, uint32_t pid);
	void (*bpf_free)(void *ctx, void *obj);
	int (*process_set)(void *ctx, uint32_t pid, uint32_t flags);
	struct sonde_conn *(*conn_lookup)(void *ctx, uint32_t pid, uint32_t fd);
	/* Traceparent injection: thread tid of pid now serves the request of
	 * server span (trace_id, span_id) read on connection conn_id. Called
	 * only for processes that inject (injects() true). */
	bool (*injects)(void *ctx, uint32_t pid);
	void (*serving)(void *ctx, uint32_t pid, uint64_t conn_id, uint32_t tid,
	                const uint8_t trace_id[16], const uint8_t span_id[8]);
};
void host_set_runtime(struct host *h, const struct host_runtime_ops *ops);
/* Free the plugins' BPF objects now (before the capture they share maps
 * with goes away). */
void host_clear_runtime_objects(struct host *h);

/* Processes (runtime plugins' process_new / process_gone). The host keeps
 * the list so a plugin loaded later hears about processes already there. */
void host_process_new(struct host *h, const struct sonde_process_info *pi);
void host_process_gone(struct host *h, uint32_t pid);

/* A record of a type >= SONDE_RECORD_PLUGIN_FIRST: to the plugin that
 * claimed it. 1 if one did. */
int host_record(struct host *h, const void *rec, size_t len);

/* Send the spans same-host links still hold (server spans waiting for
 * their client's span): at shutdown, while the sinks exist. */
void host_links_flush(struct host *h);

/* Records are handled in slices: between begin and end the metrics
 * registry is locked once, for the calling thread (metrics_batch_begin). */
void host_batch_begin(struct host *h);
void host_batch_end(struct host *h);

/* Run the plugins' timers that are due at now; returns when the next one
 * is due (unix ns), 0 when none. */
uint64_t host_timers_run(struct host *h, uint64_t now_unix_ns);

/* Parse a W3C traceparent; 0 on success. Exposed for tests. */
int traceparent_parse(const char *s, size_t len, uint8_t trace_id[16], uint8_t span_id[8],
                      uint8_t *flags);

#endif
