/*
 * otlp_pb.h - the OTLP exporter's insides: its data model, the two wire
 * encoders (protobuf in otlp_pb.c, JSON in otlp_json.c) and the pure
 * policies (retry delay, gzip, delta temporality) that otlp.c drives.
 *
 * The one idea: encoding is a pure function of a finished batch. Spans
 * are encoded straight from the shared, immutable struct span; histogram
 * points are first copied out of the registry (under its lock) into an
 * otlp_mbatch that the exporter thread owns, so neither encoder ever
 * touches a lock. Both encoders group their input the same way (by
 * resource, then scope, then metric name), through otlp_span_order and
 * otlp_point_order, so the protobuf and JSON bodies of one batch carry the
 * same structure.
 *
 * Nothing here is part of the agent's API: otlp.h is. Tests include this
 * header to check each piece on its own.
 */
#ifndef SONDE_OTLP_PB_H
#define SONDE_OTLP_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "span.h"

struct metrics;

/* OpenTelemetry semantic conventions the agent's names follow. */
#define OTLP_SCHEMA_URL "https://opentelemetry.io/schemas/1.27.0"
/* Instrumentation scope of the agent's histograms. */
#define OTLP_METRICS_SCOPE "sonde"

/* OTLP enum values (opentelemetry.proto.metrics.v1.AggregationTemporality). */
#define OTLP_TEMPORALITY_DELTA 1
#define OTLP_TEMPORALITY_CUMULATIVE 2

/* Span.flags bits (opentelemetry.proto.trace.v1.SpanFlags). */
#define OTLP_SPAN_FLAGS_HAS_IS_REMOTE 0x100u
#define OTLP_SPAN_FLAGS_IS_REMOTE 0x200u

/* A growable byte buffer. oom latches: after a failed allocation every
 * append is ignored and the encoder reports -ENOMEM once at the end. */
struct otlp_buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};
void otlp_buf_free(struct otlp_buf *b);

/* One histogram data point, copied out of the registry. All strings and
 * arrays are owned by the batch. */
struct otlp_hpoint {
	char *name, *unit, *description;
	size_t res;             /* index into otlp_mbatch.res */
	size_t n_attrs;         /* present attributes only */
	char **keys, **values;
	size_t n_bounds;
	double *bounds;
	uint64_t *counts;       /* n_bounds + 1 */
	uint64_t count;
	double sum, min, max;
	bool has_min_max;
	uint64_t start_ns, time_ns;
};

/* A metric export: distinct resources (attribute copies) and the points
 * that refer to them. Zero-initialise, fill, otlp_mbatch_free. */
struct otlp_mbatch {
	struct attr_list *res;
	const void **res_key;   /* identity of each resource in the registry */
	size_t n_res, cap_res;
	struct otlp_hpoint *pts;
	size_t n_pts, cap_pts;
	int temporality;        /* OTLP_TEMPORALITY_* */
};
void otlp_mbatch_free(struct otlp_mbatch *b);

/* Previous cumulative values per series, for delta temporality. */
struct otlp_delta;
struct otlp_delta *otlp_delta_new(void);
void otlp_delta_free(struct otlp_delta *d);

/*
 * Copy every histogram series of m into out (zeroed by the caller), stamped
 * with now_ns. d == NULL: cumulative points since each series' start.
 * d != NULL: delta points against the previous call with the same d (start
 * time = that call's time; a series seen for the first time starts at its
 * own start time); series with nothing new are left out, and min/max are
 * only sent when the window holds the series' first values. Returns 0 or
 * -ENOMEM (out is then partially filled; free it).
 */
int otlp_mbatch_collect(struct metrics *m, struct otlp_delta *d, uint64_t now_ns,
                        struct otlp_mbatch *out);

/* Encoders. 0 or -ENOMEM; out is appended to. JSON returns a malloc'd,
 * NUL-terminated string (NULL on ENOMEM). spans[i] are borrowed. */
int otlp_pb_traces(struct span *const *spans, size_t n, struct otlp_buf *out);
int otlp_pb_metrics(const struct otlp_mbatch *b, struct otlp_buf *out);
char *otlp_json_traces(struct span *const *spans, size_t n);
char *otlp_json_metrics(const struct otlp_mbatch *b);

/* Grouping shared by both encoders: a malloc'd permutation of 0..n-1
 * ordering spans by (resource, scope) and points by (resource, name),
 * first appearance first, stable inside a group. NULL on ENOMEM (or n 0). */
size_t *otlp_span_order(struct span *const *spans, size_t n);
size_t *otlp_point_order(const struct otlp_mbatch *b);

/* Span.flags as OTLP wants it: W3C trace flags in bits 0-7, and whether
 * the parent is remote in bits 8-9. */
uint32_t otlp_span_flags(const struct span *s);


/* gzip (RFC 1952) of in into out (appended). 0 or -ENOMEM/-EIO. */
int otlp_gzip(const uint8_t *in, size_t n, struct otlp_buf *out);

/*
 * The retry policy. status: HTTP status (0 when the request never got an
 * answer); net: what went wrong in transport. retry_after: the response's
 * Retry-After header value or NULL. attempt: 0 for the first retry.
 * jitter: a number in [0, 1). Returns the delay in ms before the next try,
 * 0 for success (2xx), or -1 to give the batch up.
 */
enum otlp_net { OTLP_NET_OK = 0, OTLP_NET_RETRYABLE, OTLP_NET_FATAL };
#define OTLP_BACKOFF_INITIAL_MS 1000
#define OTLP_BACKOFF_MAX_MS 30000
#define OTLP_RETRY_AFTER_MAX_MS 300000
long otlp_retry_delay_ms(long status, enum otlp_net net, const char *retry_after,
                         unsigned attempt, double jitter);

/* The bounded span queue: a ring of span references. push takes a
 * reference or, when full, counts a drop and returns -ENOSPC. pop hands
 * the caller the queue's reference. Not locked: otlp.c holds its mutex. */
struct otlp_queue {
	struct span **ring;
	size_t cap, head, len;
	uint64_t dropped;
};
int otlp_queue_init(struct otlp_queue *q, size_t cap);
int otlp_queue_push(struct otlp_queue *q, struct span *s);
size_t otlp_queue_pop(struct otlp_queue *q, struct span **out, size_t max);
void otlp_queue_free(struct otlp_queue *q);   /* unrefs what is left */

#endif
