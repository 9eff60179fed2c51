/*
 * otlp_json.c - the OTLP/HTTP JSON encoding of spans and histograms.
 *
 * The one idea: OTLP JSON is the proto3 JSON mapping of the same messages
 * otlp_pb.c writes, with OTLP's own exceptions, so the two encoders walk
 * the same grouping (otlp_span_order / otlp_point_order) and differ only
 * in spelling. The mapping rules that matter:
 *   - field names are lowerCamelCase (traceId, startTimeUnixNano);
 *   - trace and span ids are lowercase hex strings, not base64;
 *   - enums (kind, status code, aggregationTemporality) are integers;
 *   - 64-bit integers (times, counts, intValue) are decimal strings;
 *   - doubles are numbers, except NaN and the infinities, which proto3
 *     JSON spells "NaN", "Infinity", "-Infinity";
 *   - fields at their default value are left out.
 * The document is built with jansson and dumped compactly.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "export/otlp_pb.h"
#include "telemetry/metrics.h"
#include "base/hex.h"
#include "base/utf8.h"

#ifndef SONDE_VERSION
#define SONDE_VERSION "unknown"
#endif

/* json_object_set_new that tolerates a NULL value (allocation failure):
 * the caller checks the whole document once, at the end, through
 * `ok`. */
static void set(json_t *obj, const char *key, json_t *v, bool *ok)
{
	if (!obj || !v || json_object_set_new(obj, key, v) < 0) {
		json_decref(v);
		*ok = false;
	}
}

static void push(json_t *arr, json_t *v, bool *ok)
{
	if (!arr || !v || json_array_append_new(arr, v) < 0) {
		json_decref(v);
		*ok = false;
	}
}

static json_t *u64_str(uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

static json_t *i64_str(int64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return json_string(buf);
}

static json_t *dbl(double d)
{
	if (isnan(d))
		return json_string("NaN");
	if (isinf(d))
		return json_string(d > 0 ? "Infinity" : "-Infinity");
	return json_real(d);
}

static json_t *hex_id(const uint8_t *id, size_t n)
{
	char buf[2 * 16 + 1];

	hex_encode(id, n, buf);
	return json_string(buf);
}

/* jansson refuses invalid UTF-8: repair it rather than lose the value. */
static json_t *str(const char *s)
{
	bool oom = false;
	char *fixed;
	json_t *v;

	if (!s)
		s = "";
	fixed = utf8_repair(s, &oom);
	if (oom)
		return NULL;
	v = json_string(fixed ? fixed : s);
	free(fixed);
	return v;
}

/* {"key": k, "value": {"stringValue"|"boolValue"|"intValue"|"doubleValue": v}} */
static json_t *attr_json(const struct attr *a, bool *ok)
{
	json_t *kv = json_object(), *val = json_object();

	set(kv, "key", str(a->key), ok);
	switch (a->type) {
	case ATTR_STR:
		set(val, "stringValue", str(a->v.s), ok);
		break;
	case ATTR_BOOL:
		set(val, "boolValue", json_boolean(a->v.b), ok);
		break;
	case ATTR_INT:
		set(val, "intValue", i64_str(a->v.i), ok);
		break;
	case ATTR_DOUBLE:
		set(val, "doubleValue", dbl(a->v.d), ok);
		break;
	}
	set(kv, "value", val, ok);
	return kv;
}

static json_t *str_attr_json(const char *key, const char *value, bool *ok)
{
	struct attr a = { .key = (char *)key, .type = ATTR_STR, .v.s = (char *)value };

	return attr_json(&a, ok);
}

static json_t *attrs_json(const struct attr_list *l, bool *ok)
{
	json_t *arr = json_array();

	for (size_t i = 0; l && i < l->n; i++)
		push(arr, attr_json(&l->a[i], ok), ok);
	return arr;
}

static json_t *resource_json(const struct attr_list *attrs, const char *service_name, bool *ok)
{
	json_t *r = json_object(), *arr = attrs_json(attrs, ok);

	if (service_name && !attr_find(attrs, "service.name"))
		push(arr, str_attr_json("service.name", service_name, ok), ok);
	set(r, "attributes", arr, ok);
	return r;
}

static json_t *scope_json(const char *name, const char *version, bool *ok)
{
	json_t *s = json_object();

	if (name && *name)
		set(s, "name", str(name), ok);
	if (version && *version)
		set(s, "version", str(version), ok);
	return s;
}

/* ---- traces --------------------------------------------------------- */

static bool id_is_zero(const uint8_t *id, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (id[i])
			return false;
	}
	return true;
}

static json_t *span_json(const struct span *s, bool *ok)
{
	json_t *j = json_object(), *st;

	set(j, "traceId", hex_id(s->trace_id, sizeof(s->trace_id)), ok);
	set(j, "spanId", hex_id(s->span_id, sizeof(s->span_id)), ok);
	if (!id_is_zero(s->parent_span_id, sizeof(s->parent_span_id)))
		set(j, "parentSpanId", hex_id(s->parent_span_id, sizeof(s->parent_span_id)), ok);
	set(j, "flags", json_integer(otlp_span_flags(s)), ok);
	if (s->name && *s->name)
		set(j, "name", str(s->name), ok);
	if (s->kind > 0)
		set(j, "kind", json_integer(s->kind), ok);
	if (s->start_unix_ns)
		set(j, "startTimeUnixNano", u64_str(s->start_unix_ns), ok);
	if (s->end_unix_ns)
		set(j, "endTimeUnixNano", u64_str(s->end_unix_ns), ok);
	if (s->attrs.n)
		set(j, "attributes", attrs_json(&s->attrs, ok), ok);
	if (s->n_links) {
		json_t *links = json_array();

		for (uint32_t i = 0; i < s->n_links; i++) {
			json_t *l = json_object();

			set(l, "traceId", hex_id(s->links[i].trace_id, 16), ok);
			set(l, "spanId", hex_id(s->links[i].span_id, 8), ok);
			set(l, "flags", json_integer(s->links[i].trace_flags |
			                             OTLP_SPAN_FLAGS_HAS_IS_REMOTE |
			                             (s->links[i].remote ? OTLP_SPAN_FLAGS_IS_REMOTE : 0)),
			    ok);
			push(links, l, ok);
		}
		set(j, "links", links, ok);
	}
	if (s->status > 0 || (s->status_msg && *s->status_msg)) {
		st = json_object();
		if (s->status_msg && *s->status_msg)
			set(st, "message", str(s->status_msg), ok);
		if (s->status > 0)
			set(st, "code", json_integer(s->status), ok);
		set(j, "status", st, ok);
	}
	return j;
}

static char *dump(json_t *root, bool ok)
{
	char *out = ok ? json_dumps(root, JSON_COMPACT) : NULL;

	json_decref(root);
	return out;
}

char *otlp_json_traces(struct span *const *spans, size_t n)
{
	json_t *root = json_object(), *rss = json_array();
	size_t *ord = n ? otlp_span_order(spans, n) : NULL;
	bool ok = root && rss && (!n || ord);
	size_t i = 0;

	while (ok && i < n) {
		const struct resource *res = spans[ord[i]]->res;
		json_t *rs = json_object(), *sss = json_array();

		set(rs, "resource", resource_json(res ? &res->attrs : NULL,
		                                  res ? res->service_name : NULL, &ok), &ok);
		while (i < n && spans[ord[i]]->res == res) {
			const struct span *head = spans[ord[i]];
			char scope[sizeof(head->scope) + 1];
			json_t *ss = json_object(), *arr = json_array();
			size_t len = strnlen(head->scope, sizeof(head->scope));

			memcpy(scope, head->scope, len);
			scope[len] = '\0';
			set(ss, "scope", scope_json(scope, NULL, &ok), &ok);
			for (; i < n && spans[ord[i]]->res == res &&
			       strncmp(spans[ord[i]]->scope, head->scope, sizeof(head->scope)) == 0;
			     i++)
				push(arr, span_json(spans[ord[i]], &ok), &ok);
			set(ss, "spans", arr, &ok);
			set(ss, "schemaUrl", json_string(OTLP_SCHEMA_URL), &ok);
			push(sss, ss, &ok);
		}
		set(rs, "scopeSpans", sss, &ok);
		set(rs, "schemaUrl", json_string(OTLP_SCHEMA_URL), &ok);
		push(rss, rs, &ok);
	}
	free(ord);
	set(root, "resourceSpans", rss, &ok);
	return dump(root, ok);
}

/* ---- metrics -------------------------------------------------------- */

static json_t *hpoint_json(const struct otlp_hpoint *p, bool *ok)
{
	json_t *j = json_object(), *counts = json_array(), *bounds = json_array();
	json_t *attrs = json_array();

	for (size_t i = 0; i < p->n_attrs; i++)
		push(attrs, str_attr_json(p->keys[i], p->values[i], ok), ok);
	if (p->n_attrs)
		set(j, "attributes", attrs, ok);
	else
		json_decref(attrs);
	if (p->start_ns)
		set(j, "startTimeUnixNano", u64_str(p->start_ns), ok);
	if (p->time_ns)
		set(j, "timeUnixNano", u64_str(p->time_ns), ok);
	if (p->count)
		set(j, "count", u64_str(p->count), ok);
	set(j, "sum", dbl(p->sum), ok);
	for (size_t i = 0; i <= p->n_bounds; i++)
		push(counts, u64_str(p->counts[i]), ok);
	set(j, "bucketCounts", counts, ok);
	for (size_t i = 0; i < p->n_bounds; i++)
		push(bounds, dbl(p->bounds[i]), ok);
	if (p->n_bounds)
		set(j, "explicitBounds", bounds, ok);
	else
		json_decref(bounds);
	if (p->has_min_max) {
		set(j, "min", dbl(p->min), ok);
		set(j, "max", dbl(p->max), ok);
	}
	return j;
}

static json_t *npoint_json(const struct otlp_hpoint *p, bool *ok)
{
	json_t *j = json_object(), *attrs = json_array();

	for (size_t i = 0; i < p->n_attrs; i++)
		push(attrs, str_attr_json(p->keys[i], p->values[i], ok), ok);
	if (p->n_attrs)
		set(j, "attributes", attrs, ok);
	else
		json_decref(attrs);
	if (p->start_ns)
		set(j, "startTimeUnixNano", u64_str(p->start_ns), ok);
	if (p->time_ns)
		set(j, "timeUnixNano", u64_str(p->time_ns), ok);
	set(j, "asDouble", dbl(p->sum), ok);
	return j;
}

char *otlp_json_metrics(const struct otlp_mbatch *b)
{
	json_t *root = json_object(), *rms = json_array();
	size_t *ord = b->n_pts ? otlp_point_order(b) : NULL;
	size_t i = 0, n = b->n_pts;
	bool ok = root && rms && (!n || ord);

	while (ok && i < n) {
		size_t res = b->pts[ord[i]].res;
		json_t *rm = json_object(), *sms = json_array(), *sm = json_object();
		json_t *metrics = json_array();

		set(rm, "resource", resource_json(b->res[res], NULL, &ok), &ok);
		set(sm, "scope", scope_json(OTLP_METRICS_SCOPE, SONDE_VERSION, &ok), &ok);
		while (i < n && b->pts[ord[i]].res == res) {
			const struct otlp_hpoint *head = &b->pts[ord[i]];
			json_t *m = json_object(), *h = json_object(), *dps = json_array();

			set(m, "name", str(head->name), &ok);
			if (head->description && *head->description)
				set(m, "description", str(head->description), &ok);
			if (head->unit && *head->unit)
				set(m, "unit", str(head->unit), &ok);
			for (; i < n && b->pts[ord[i]].res == res &&
			       strcmp(b->pts[ord[i]].name, head->name) == 0;
			     i++)
				push(dps, head->kind == METRIC_HISTOGRAM ? hpoint_json(&b->pts[ord[i]], &ok)
				                                         : npoint_json(&b->pts[ord[i]], &ok),
				     &ok);
			set(h, "dataPoints", dps, &ok);
			set(h, "aggregationTemporality",
			    json_integer(head->kind == METRIC_UPDOWN ? OTLP_TEMPORALITY_CUMULATIVE
			                                             : b->temporality),
			    &ok);
			if (head->kind == METRIC_SUM)
				set(h, "isMonotonic", json_true(), &ok);
			set(m, head->kind == METRIC_HISTOGRAM ? "histogram" : "sum", h, &ok);
			push(metrics, m, &ok);
		}
		set(sm, "metrics", metrics, &ok);
		set(sm, "schemaUrl", json_string(OTLP_SCHEMA_URL), &ok);
		push(sms, sm, &ok);
		set(rm, "scopeMetrics", sms, &ok);
		set(rm, "schemaUrl", json_string(OTLP_SCHEMA_URL), &ok);
		push(rms, rm, &ok);
	}
	free(ord);
	set(root, "resourceMetrics", rms, &ok);
	return dump(root, ok);
}
