/*
 * testhost.h - drive a plugin through sonde's real host, without a kernel:
 * for plugin unit tests and fuzz harnesses, in the tree and out of it.
 *
 * The one idea: nothing here implements the SDK. A struct th_host wraps one
 * real struct host (core/host): the plugin is loaded with the same ABI
 * checks as a file, its connections are real host connections, its spans
 * come out of the real tracer, its histograms go into the real metric
 * registry. The harness only watches (the host's observer hooks and a span
 * sink) and keeps what it saw, so a test can read it back. What the test
 * reads is therefore what the agent would export.
 *
 * Typical use:
 *
 *	struct th_host *h = th_new();
 *	th_load(h, sonde_plugin_entry(), "redis");
 *	struct sonde_conn_info ci;
 *	th_conn_info_init(&ci, SONDE_ROLE_SERVER);
 *	struct th_conn *c = th_conn_open(h, &ci);
 *	th_conn_feed(c, SONDE_DIR_INGRESS, 1000, "PING\r\n", 6);
 *	th_conn_feed(c, SONDE_DIR_EGRESS, 2000, "+PONG\r\n", 7);
 *	th_conn_close(c, 3000);
 *	ck_assert_uint_eq(th_n_ended(h), 1);
 *	ck_assert_str_eq(th_ended(h, 0)->name, "PING");
 *	ck_assert_uint_eq(th_n_open(h), 0);
 *	th_free(h);  // unloads the plugin too
 *
 * Misuse (th_misuse) is the host's own count of SDK calls it refused: a
 * call on a span already ended or dropped, a NULL key or value, a NULL
 * metric, too many metrics on a span, a bad histogram description.
 *
 * Ownership: everything returned by the th_* getters is owned by the
 * harness and valid until th_free(). A span view returned by th_span or
 * th_ended shows the span as it is at the time of the call. Not
 * thread-safe.
 */
#ifndef SONDE_TESTHOST_H
#define SONDE_TESTHOST_H

#include <stddef.h>
#include <stdint.h>

#include <sonde/plugin.h>

struct th_host;
struct th_conn;

enum th_attr_type {
	TH_ATTR_STR = 1,
	TH_ATTR_INT,
	TH_ATTR_DOUBLE,
	TH_ATTR_BOOL,
};

struct th_attr {
	char *key;
	enum th_attr_type type;
	char *s;          /* TH_ATTR_STR: NUL-terminated copy of the value */
	size_t len;       /* TH_ATTR_STR: value length */
	int64_t i;
	double d;
	int b;
};

enum th_span_state {
	TH_SPAN_OPEN = 0,
	TH_SPAN_ENDED,
	TH_SPAN_DROPPED,
};

struct th_span {
	struct th_host *host;
	size_t index;               /* position in start order */
	char *name;
	enum sonde_span_kind kind;
	uint64_t start_ns, end_ns;  /* end_ns is clamped to start_ns by the host */
	uint32_t tid;               /* tid of the chunk being fed at span_start */
	enum th_span_state state;
	enum sonde_status status;
	char *status_desc;
	char *traceparent;          /* the incoming parent the span continues, as
	                               W3C text, or NULL */
	char trace_id[33];          /* ids as lowercase hex; parent "" for a root */
	char span_id[17];
	char parent_span_id[17];
	struct th_attr *attrs;
	size_t n_attrs;
};

struct th_metric {
	struct th_host *host;
	char *name;
	char *unit;
	double *bounds;
	size_t n_bounds;
	char **keys;
	size_t n_keys;
};

/* One histogram value: from span_end (attached metrics) or histogram_record. */
struct th_record {
	struct th_metric *m;
	double value;
	char **vals;                /* n_keys entries, NULL = absent */
	struct th_span *span;       /* the span it came from; NULL for histogram_record */
};

/* --- Lifetime and set-up ------------------------------------------------ */

struct th_host *th_new(void);
/* Closes connections still open, unloads the plugin, frees everything. */
void th_free(struct th_host *h);

/* The host's function table, and the plugin's handle (after th_load). */
const struct sonde_host_api *th_api(struct th_host *h);
struct sonde_plugin_handle *th_self(struct th_host *h);

/* A plugin setting for `key`, for connections of `service` (NULL: the
 * plugin's global section). Strings are copied. Setting a key again
 * replaces it. May be called before or after th_load. 0, or -1 (OOM). */
int th_set_config(struct th_host *h, const char *service, const char *key,
                  const char *const *vals, size_t n);

/* The host's per-connection cap: span_start returns NULL once this many
 * spans of one connection are open (0 = no limit, the default here). */
void th_set_span_limit(struct th_host *h, size_t max_open_per_conn);

/* Print the plugin's log lines to stderr (default: only counted). */
void th_set_verbose(struct th_host *h, int verbose);

/* --- Driving a plugin ----------------------------------------------------- */

/* The host's checks (ABI, name) and init(). `proto` picks the protocol
 * connections go to (NULL: the first). SONDE_OK, SONDE_ERR_ABI (refused),
 * SONDE_ERR_NOENT (no such protocol) or init()'s error. */
int th_load(struct th_host *h, const struct sonde_plugin *desc, const char *proto);
/* th_load behind the host's table cut to an older ABI minor (abi_minor
 * and struct_size as that host has them), so a plugin can be run as an
 * older host runs it: 0 (1.0, the table ends at histogram_record), or the
 * current minor (th_load itself). Other minors: SONDE_ERR_INVAL. */
int th_load_minor(struct th_host *h, const struct sonde_plugin *desc, const char *proto,
                  uint32_t minor);
/* Closes open connections (at their last timestamp), then fini(). */
void th_unload(struct th_host *h);

/* The protocol's detect() on one chunk of `dir`. */
int th_detect(struct th_host *h, const struct sonde_conn_info *ci, enum sonde_dir dir,
              const void *data, size_t len);

/* A plausible conn_info: IPv4, local 127.0.0.1:8080, peer 127.0.0.2:40000,
 * service "svc", no TLS. Tests change fields afterwards. */
void th_conn_info_init(struct sonde_conn_info *ci, enum sonde_role role);

/* A host connection owned by the protocol (detection skipped). NULL when
 * the plugin refused it; the connection is owned by h. */
struct th_conn *th_conn_open(struct th_host *h, const struct sonde_conn_info *ci);

/* Both ends of one TCP connection, as one agent watching both processes
 * sees them: the client 127.0.0.2:cport (pid 4242) connected to the server
 * 127.0.0.1:sport (pid 4243). Either may come back NULL (refused). */
void th_conn_pair(struct th_host *h, uint16_t cport, uint16_t sport, struct th_conn **client,
                  struct th_conn **server);

/* conn_data() with a chunk of len captured bytes (orig_len = len), at the
 * next position of its direction (chunk->pos counts what was fed). */
int th_conn_feed(struct th_conn *c, enum sonde_dir dir, uint64_t ts, const void *data,
                 size_t len);
/* th_conn_feed for a capture that lost bytes: `lost` bytes of the
 * direction went by unseen before this chunk (SONDE_CHUNK_GAP when lost >
 * 0), and only len of its orig_len bytes were captured
 * (SONDE_CHUNK_TRUNCATED when orig_len > len). Positions advance by lost +
 * orig_len, as the capture's do. */
int th_conn_feed_lossy(struct th_conn *c, enum sonde_dir dir, uint64_t ts, uint64_t lost,
                       const void *data, size_t len, size_t orig_len);
/* conn_data() with a chunk the test built (struct_size is filled in). */
int th_conn_feed_chunk(struct th_conn *c, const struct sonde_chunk *ch);
/* conn_close(); a no-op on a connection already closed. */
void th_conn_close(struct th_conn *c, uint64_t ts);
/* 1 after the plugin answered SONDE_ERR_PROTO (the host gave it up). */
int th_conn_given_up(const struct th_conn *c);
/* The capture policy the plugin last asked for (conn_set_capture) in *out:
 * 1 when it asked since the previous call, 0 when it did not (or the
 * connection is closed), as the pipeline reads it. */
int th_conn_capture(struct th_conn *c, struct sonde_capture_policy *out);

/* --- Runtime plugins (SDK 1.1) ------------------------------------------------
 * The harness plays the pipeline's part: it knows which fd a connection is
 * on (for host->conn_lookup), passes records a plugin's BPF programs would
 * write (to the plugin that claimed their type), announces processes, and
 * runs timers on the clock the test gives. There is no kernel: bpf_load and
 * process_set answer SONDE_ERR_UNSUPPORTED. */
void th_conn_set_fd(struct th_conn *c, uint32_t fd);
/* Plaintext from a TLS library from now on (what the core does when the
 * uprobes deliver: conn_info.tls = 1). */
void th_conn_set_tls(struct th_conn *c);
/* The host's handle of the connection (what the plugin was given). */
struct sonde_conn *th_conn_handle(struct th_conn *c);
/* 1 if a plugin claimed the record's type. */
int th_plugin_record(struct th_host *h, const void *rec, size_t len);
void th_process_new(struct th_host *h, uint32_t pid, const char *exe_path);
void th_process_gone(struct th_host *h, uint32_t pid);
/* Run the timers due at now; returns when the next is due (0: none). */
uint64_t th_run_timers(struct th_host *h, uint64_t now_unix_ns);

/* --- Reading back ----------------------------------------------------------- */

size_t th_n_spans(const struct th_host *h);           /* all, start order */
struct th_span *th_span(const struct th_host *h, size_t i);
size_t th_n_ended(const struct th_host *h);           /* ended, end order */
struct th_span *th_ended(const struct th_host *h, size_t i);
size_t th_n_open(const struct th_host *h);            /* neither ended nor dropped */
size_t th_n_dropped(const struct th_host *h);
size_t th_n_records(const struct th_host *h);
const struct th_record *th_record(const struct th_host *h, size_t i);
size_t th_n_metrics(const struct th_host *h);
struct th_metric *th_metric(const struct th_host *h, size_t i);
struct th_metric *th_metric_by_name(const struct th_host *h, const char *name);
size_t th_misuse(const struct th_host *h);
/* The kernel inserted a traceparent (ids raw, parent NULL for a new trace)
 * into the request starting at byte pos of c's outgoing stream (what the
 * agent does on an INJECT record). */
void th_conn_injected(struct th_conn *c, uint64_t pos, const uint8_t trace_id[16],
                      const uint8_t span_id[8], const uint8_t *parent_id);
/* What a runtime plugin says through host->conn_stream_context_set (SDK
 * 1.2): stream `stream` of c was opened by context key. */
int th_conn_stream_context(struct th_conn *c, uint64_t stream, uint64_t key);

/* Server spans the host linked to a client span it watched (same-host
 * links; the agent's sonde_trace_links_total). */
uint64_t th_n_links(const struct th_host *h);
size_t th_n_logs(const struct th_host *h, enum sonde_log_level lvl);

/* The nth (0-based, start order) span named name of that kind, or NULL. */
struct th_span *th_span_find(const struct th_host *h, const char *name, enum sonde_span_kind kind,
                             size_t nth);
/* 1 when child is in parent's trace with parent as its parent span. */
int th_span_child_of(const struct th_span *child, const struct th_span *parent);

const struct th_attr *th_span_attr(const struct th_span *s, const char *key);
/* The string value of `key`, or NULL when absent or not a string. */
const char *th_span_str(const struct th_span *s, const char *key);
/* The int value of `key` in *out; returns 0, or -1 when absent or not an int. */
int th_span_int(const struct th_span *s, const char *key, int64_t *out);
/* The value of `key` in record r, or NULL. */
const char *th_record_val(const struct th_record *r, const char *key);

#endif /* SONDE_TESTHOST_H */
