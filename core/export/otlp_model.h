/*
 * otlp_model.h - what the OTLP exporter sends, before it is encoded:
 * histogram points copied out of the registry (a batch the exporter thread
 * owns), delta-temporality state, and the grouping both encoders share
 * (by resource, then scope, then metric name), so the protobuf and JSON
 * bodies of one batch carry the same structure.
 *
 * Nothing here is part of the agent's API: otlp.h is. Tests include this
 * header to check each piece on its own.
 */
#ifndef SONDE_EXPORT_OTLP_MODEL_H
#define SONDE_EXPORT_OTLP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemetry/span.h"

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

/* One histogram data point, copied out of the registry. All strings and
 * arrays are owned by the batch. */
struct otlp_hpoint {
	int kind;               /* enum metric_kind: histogram, sum, up-down sum */
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
	struct attr_list **res; /* each allocated on its own */
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

/* Grouping shared by both encoders: a malloc'd permutation of 0..n-1
 * ordering spans by (resource, scope) and points by (resource, name),
 * first appearance first, stable inside a group. NULL on ENOMEM (or n 0). */
size_t *otlp_span_order(struct span *const *spans, size_t n);
size_t *otlp_point_order(const struct otlp_mbatch *b);

/* Span.flags as OTLP wants it: W3C trace flags in bits 0-7, and whether
 * the parent is remote in bits 8-9. */
uint32_t otlp_span_flags(const struct span *s);


/* The grouping keys themselves: same resource and scope (spans), same
 * resource and metric name (points). */
bool otlp_span_same_group(const struct span *a, const struct span *b);
bool otlp_point_same_group(const struct otlp_hpoint *a, const struct otlp_hpoint *b);

#endif
