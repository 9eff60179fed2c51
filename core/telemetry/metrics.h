/*
 * metrics.h - the in-memory metric registry: RED histograms keyed by
 * semantic-convention attributes, plus the agent's own counters.
 *
 * Writers (the capture thread, through the host API) and readers (the
 * Prometheus endpoint thread, the OTLP exporter thread) meet here; a single
 * mutex per registry guards it. Names are kept in OpenTelemetry form
 * ("http.server.request.duration", unit "s"); the Prometheus renderer turns
 * them into "http_server_request_duration_seconds" with underscore labels
 * (export/prom_text.c); the registry itself renders nothing.
 */
#ifndef SONDE_METRICS_H
#define SONDE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct metrics;
struct metric_hist;
struct resource;

/* A metric is a histogram, or a sum of the values added (a counter): the
 * same series machinery, a different aggregation. */
enum metric_kind {
	METRIC_HISTOGRAM = 0,
	METRIC_SUM = 1,     /* monotonic counter */
	METRIC_UPDOWN = 2,  /* up-down counter */
};

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
/* A batch on the calling thread: from the first point it records until
 * metrics_batch_end, the registry stays locked for it (other threads, a
 * scrape, wait for the end). Begin before draining a slice of records, end
 * before anything that may block. Ending a batch not begun does nothing. */
void metrics_batch_begin(struct metrics *m);
void metrics_batch_end(struct metrics *m);

/* Register, or find by name, a histogram. Copies all arguments. Returns NULL
 * when the name exists with different bounds/keys/unit. */
struct metric_hist *metrics_hist(struct metrics *m, const char *name, const char *unit,
                                 const char *description, const double *bounds,
                                 size_t n_bounds, const char *const *attr_keys,
                                 size_t n_attr_keys);

/* Register, or find by name and share, a metric whose users may record
 * different attribute keys: the metric's keys become the union (series
 * recorded before get "absent" for the new ones), and pos[i] tells where
 * attr_keys[i] sits among the metric's *n_keys keys. NULL when the name
 * exists with another kind, unit or bounds. */
struct metric_hist *metrics_hist_shared(struct metrics *m, enum metric_kind kind, const char *name,
                                        const char *unit, const char *description,
                                        const double *bounds, size_t n_bounds,
                                        const char *const *attr_keys, size_t n_attr_keys,
                                        size_t *pos, size_t *n_keys_out);
/* The metric's current number of keys (it grows when shared). */
size_t metrics_hist_n_keys(struct metric_hist *h);

/* Register, or find by name, a counter (monotonic) or up-down counter.
 * Recorded with metrics_hist_record: each value is added to the series' sum
 * (count counts the additions). */
struct metric_hist *metrics_sum(struct metrics *m, const char *name, const char *unit,
                                const char *description, bool monotonic,
                                const char *const *attr_keys, size_t n_attr_keys);

/* Record one value. attr_values[i] belongs to attr_keys[i] (NULL = absent).
 * `res` (may be NULL) is the resource the point belongs to. Series are kept
 * per service name (res->service_name) and attribute values, so an nginx
 * master and its workers add into one series; the registry takes a
 * reference on the first resource seen for a series and keeps it for the
 * series' lifetime (hist_point.res reports that one). */
void metrics_hist_record(struct metric_hist *h, const struct resource *res,
                         double value, const char *const *attr_values);

/* Agent self-metrics: monotonic counters and gauges by Prometheus name
 * (e.g. "sonde_events_total"), set absolutely by the owner. */
void metrics_counter_set(struct metrics *m, const char *name, const char *help, uint64_t v);
void metrics_gauge_set(struct metrics *m, const char *name, const char *help, double v);

/* Walk every histogram series (for OTLP). The callback runs under the
 * registry lock and must not call back into metrics. Counts are cumulative
 * since start_unix_ns ("cumulative" is the time window); the exporter
 * computes deltas if configured. */
struct hist_point {
	const char *name, *unit, *description;
	const struct resource *res;
	size_t n_attrs;
	const char *const *attr_keys;
	const char *const *attr_values; /* NULL entries are absent */
	size_t n_bounds;
	const double *bounds;
	const uint64_t *bucket_counts;  /* n_bounds + 1, per bucket (OTLP layout),
	                                   not summed across buckets */
	uint64_t count;
	double sum, min, max;
	uint64_t start_unix_ns;
	const char *service;            /* the series' service name (NULL: none) */
	bool overflow;                  /* the cardinality-overflow series */
	size_t hist_index;              /* which histogram, in registration order */
	enum metric_kind kind;          /* sums: only sum (and count) mean anything */
};
void metrics_foreach_hist(struct metrics *m,
                          void (*cb)(void *ctx, const struct hist_point *p), void *ctx);

/* Walk every registered histogram's description (series or not), in
 * registration order, under the registry lock. */
struct hist_desc {
	enum metric_kind kind;
	const char *name, *unit, *description;
	size_t n_bounds;
	const double *bounds;
	size_t n_keys;
	const char *const *keys;
};
void metrics_foreach_hist_desc(struct metrics *m,
                               void (*cb)(void *ctx, const struct hist_desc *d), void *ctx);

/* Walk the agent's counters and gauges, in registration order, under the
 * registry lock (same rules as metrics_foreach_hist). */
struct scalar_point {
	const char *name, *help;
	bool counter;
	uint64_t u;  /* counter value */
	double d;    /* gauge value */
};
void metrics_foreach_scalar(struct metrics *m,
                            void (*cb)(void *ctx, const struct scalar_point *p), void *ctx);

/* Semantic-convention bucket boundaries for HTTP and DB durations (seconds). */
extern const double METRICS_DURATION_BUCKETS[];
extern const size_t METRICS_DURATION_BUCKETS_N;

#endif
