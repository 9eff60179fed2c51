/*
 * fake_host.h - a fake sonde host for plugin unit tests and fuzz harnesses.
 *
 * The one idea: a plugin only ever sees struct sonde_host_api, so a test can
 * hand it a table whose functions simply record what they are told. This
 * fake records every span (name, kind, times, status, attributes,
 * traceparent, attached metrics), every metric value and every log line
 * into arrays the test reads back. Handles are never freed before
 * fake_host_free(), so misuse - touching a span after span_end/span_drop,
 * or leaving spans open after conn_close - is counted, not a crash.
 *
 * It also drives a plugin the way the core does: load (ABI check + init),
 * detect, conn_open, conn_data per chunk (a SONDE_ERR_PROTO answer makes it
 * call conn_close at once and ignore the connection afterwards, like
 * core/conn.c), conn_close, unload (fini).
 *
 * Typical use:
 *
 *	struct fake_host *h = fake_host_new();
 *	fake_host_load(h, sonde_plugin_entry(), "redis");
 *	struct sonde_conn_info ci;
 *	fake_conn_info_init(&ci, SONDE_ROLE_SERVER);
 *	struct fake_conn *c = fake_conn_open(h, &ci);
 *	fake_conn_feed(c, SONDE_DIR_INGRESS, 1000, "PING\r\n", 6);
 *	fake_conn_feed(c, SONDE_DIR_EGRESS, 2000, "+PONG\r\n", 7);
 *	fake_conn_close(c, 3000);
 *	ck_assert_uint_eq(fake_host_n_ended(h), 1);
 *	ck_assert_str_eq(fake_host_ended(h, 0)->name, "PING");
 *	ck_assert_uint_eq(fake_host_n_open(h), 0);
 *	fake_host_free(h);  // unloads the plugin too
 *
 * Ownership: everything returned by the fake_* getters is owned by the
 * fake host and valid until fake_host_free(). Not thread-safe.
 */
#ifndef SONDE_FAKE_HOST_H
#define SONDE_FAKE_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <sonde/plugin.h>

struct fake_host;
struct fake_conn;

enum fake_attr_type {
	FAKE_ATTR_STR = 1,
	FAKE_ATTR_INT,
	FAKE_ATTR_DOUBLE,
	FAKE_ATTR_BOOL,
};

struct fake_attr {
	char *key;
	enum fake_attr_type type;
	char *s;          /* FAKE_ATTR_STR: NUL-terminated copy of the value */
	size_t len;       /* FAKE_ATTR_STR: value length as passed */
	int64_t i;
	double d;
	int b;
};

enum fake_span_state {
	FAKE_SPAN_OPEN = 0,
	FAKE_SPAN_ENDED,
	FAKE_SPAN_DROPPED,
};

#define FAKE_MAX_SPAN_METRICS 8

struct fake_metric;

struct fake_span {
	struct fake_host *host;
	struct fake_conn *conn;
	size_t index;               /* position in start order */
	char *name;
	enum sonde_span_kind kind;
	uint64_t start_ns, end_ns;  /* end_ns is clamped to start_ns, like the core */
	uint32_t tid;               /* tid of the chunk being fed at span_start */
	enum fake_span_state state;
	enum sonde_status status;
	char *status_desc;
	char *traceparent;          /* last value accepted by span_set_traceparent */
	struct fake_attr *attrs;
	size_t n_attrs;
	struct fake_metric *metrics[FAKE_MAX_SPAN_METRICS];
	size_t n_metrics;
};

struct fake_metric {
	struct fake_host *host;
	char *name;
	char *unit;
	double *bounds;
	size_t n_bounds;
	char **keys;
	size_t n_keys;
};

/* One histogram value: from span_end (attached metrics) or histogram_record. */
struct fake_record {
	struct fake_metric *m;
	double value;
	char **vals;                /* n_keys entries, NULL = absent */
	struct fake_span *span;     /* NULL for histogram_record */
};

/* --- Lifetime and set-up ------------------------------------------------ */

struct fake_host *fake_host_new(void);
/* Calls the plugin's fini (if loaded and not unloaded) and frees everything. */
void fake_host_free(struct fake_host *h);

const struct sonde_host_api *fake_host_api(struct fake_host *h);
struct sonde_plugin_handle *fake_host_self(struct fake_host *h);

/* Config for config_get: values for `key`, for connections of `service`
 * (NULL: the plugin's global section). Strings are copied. Setting a key
 * again replaces it. Returns 0 or -1 (out of memory). */
int fake_host_set_config(struct fake_host *h, const char *service, const char *key,
                         const char *const *vals, size_t n);

/* Like the core's per-connection cap: span_start returns NULL once this
 * many spans of one connection are open (0 = no limit, the default). */
void fake_host_set_span_limit(struct fake_host *h, size_t max_open_per_conn);

/* Print log lines to stderr (default: only counted). */
void fake_host_set_verbose(struct fake_host *h, int verbose);

/* --- Driving a plugin ----------------------------------------------------- */

/* ABI check and init(). `proto` picks the protocol by name (NULL: the
 * first). Returns SONDE_OK or a negative sonde_err. */
int fake_host_load(struct fake_host *h, const struct sonde_plugin *desc, const char *proto);
/* fini(); connections still open are closed first (at their last ts). */
void fake_host_unload(struct fake_host *h);

/* detect() on one chunk of `dir`. */
int fake_host_detect(struct fake_host *h, const struct sonde_conn_info *ci,
                     enum sonde_dir dir, const void *data, size_t len);

/* A plausible conn_info: IPv4, local 127.0.0.1:8080, peer 127.0.0.2:40000,
 * service "svc", no TLS. Tests change fields afterwards. */
void fake_conn_info_init(struct sonde_conn_info *ci, enum sonde_role role);

/* conn_open(). Returns NULL when the plugin refused (or out of memory);
 * the connection is owned by h. */
struct fake_conn *fake_conn_open(struct fake_host *h, const struct sonde_conn_info *ci);

/* conn_data() with a chunk of len captured bytes (orig_len = len). */
int fake_conn_feed(struct fake_conn *c, enum sonde_dir dir, uint64_t ts, const void *data,
                   size_t len);
/* conn_data() with a chunk the test built (struct_size is filled in). */
int fake_conn_feed_chunk(struct fake_conn *c, const struct sonde_chunk *ch);
/* conn_close(); a no-op on a connection already closed or given up. */
void fake_conn_close(struct fake_conn *c, uint64_t ts);
/* 1 after the plugin answered SONDE_ERR_PROTO (the connection was given up). */
int fake_conn_given_up(const struct fake_conn *c);

/* --- Reading back ----------------------------------------------------------- */

size_t fake_host_n_spans(const struct fake_host *h);          /* all, start order */
struct fake_span *fake_host_span(const struct fake_host *h, size_t i);
size_t fake_host_n_ended(const struct fake_host *h);          /* ended, end order */
struct fake_span *fake_host_ended(const struct fake_host *h, size_t i);
size_t fake_host_n_open(const struct fake_host *h);           /* neither ended nor dropped */
size_t fake_host_n_dropped(const struct fake_host *h);
size_t fake_host_n_records(const struct fake_host *h);
const struct fake_record *fake_host_record(const struct fake_host *h, size_t i);
size_t fake_host_n_metrics(const struct fake_host *h);
struct fake_metric *fake_host_metric(const struct fake_host *h, size_t i);
struct fake_metric *fake_host_metric_by_name(const struct fake_host *h, const char *name);
/* Calls on dead handles or with invalid arguments (see fake_host.c). */
size_t fake_host_misuse(const struct fake_host *h);
size_t fake_host_n_logs(const struct fake_host *h, enum sonde_log_level lvl);

const struct fake_attr *fake_span_attr(const struct fake_span *s, const char *key);
/* The string value of `key`, or NULL when absent or not a string. */
const char *fake_span_str(const struct fake_span *s, const char *key);
/* The int value of `key` in *out; returns 0, or -1 when absent or not an int. */
int fake_span_int(const struct fake_span *s, const char *key, int64_t *out);
/* The value of `key` in record r, or NULL. */
const char *fake_record_val(const struct fake_record *r, const char *key);

#endif /* SONDE_FAKE_HOST_H */
