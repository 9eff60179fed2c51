/*
 * otlp_pb.c - a hand-written protobuf encoder for the few OTLP messages
 * the agent sends (the data it encodes comes from otlp_model.c).
 *
 * The one idea: protobuf needs each nested message's length before its
 * bytes. msg_begin() writes the tag and reserves one length byte;
 * msg_end() measures the body and, when the length needs more than one
 * varint byte, shifts the body right. Bodies stay canonical (minimal
 * varints) and the whole request is built in one buffer in one pass.
 *
 * Field numbers follow opentelemetry-proto v1.4.0, the version the tests
 * decode with (every field used here is unchanged since v1.1.0, which added
 * Span.flags; docs/exporting.md lists them). proto3 defaults (0, "", empty) are not
 * written, except for fields with explicit presence (HistogramDataPoint
 * sum, min, max), which are written when known.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "export/otlp_model.h"
#include "export/otlp_pb.h"
#include "telemetry/metrics.h"

#ifndef SONDE_VERSION
#define SONDE_VERSION "unknown"
#endif

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* ---- byte buffer ---------------------------------------------------- */

void otlp_buf_free(struct otlp_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static bool buf_reserve(struct otlp_buf *b, size_t more)
{
	size_t ncap;
	uint8_t *p;

	if (b->oom)
		return false;
	if (b->len + more <= b->cap)
		return true;
	ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + more)
		ncap *= 2;
	p = realloc(b->p, ncap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = ncap;
	return true;
}

static void put_raw(struct otlp_buf *b, const void *p, size_t n)
{
	if (!n || !buf_reserve(b, n))
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void put_varint(struct otlp_buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	while (v >= 0x80) {
		tmp[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	tmp[n++] = (uint8_t)v;
	put_raw(b, tmp, n);
}

static void put_tag(struct otlp_buf *b, uint32_t field, int wt)
{
	put_varint(b, ((uint64_t)field << 3) | (uint64_t)wt);
}

static void put_le64(struct otlp_buf *b, uint64_t v)
{
	uint8_t tmp[8];

	for (int i = 0; i < 8; i++)
		tmp[i] = (uint8_t)(v >> (8 * i));
	put_raw(b, tmp, 8);
}

static uint64_t double_bits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}


/* A string field, always written (even empty), made valid UTF-8. */
static void put_string_always(struct otlp_buf *b, uint32_t field, const char *s)
{
	bool oom = false;
	char *fixed = s ? utf8_repair(s, &oom) : NULL;
	size_t n;

	if (oom) {
		b->oom = true;
		return;
	}
	if (fixed)
		s = fixed;
	n = s ? strlen(s) : 0;
	put_tag(b, field, WT_LEN);
	put_varint(b, n);
	put_raw(b, s, n);
	free(fixed);
}

/* Skipped when s is NULL or empty (proto3 default). */
static void put_string(struct otlp_buf *b, uint32_t field, const char *s)
{
	if (!s || !*s)
		return;
	put_string_always(b, field, s);
}

static void put_bytes(struct otlp_buf *b, uint32_t field, const uint8_t *p, size_t n)
{
	put_tag(b, field, WT_LEN);
	put_varint(b, n);
	put_raw(b, p, n);
}

static void put_uvarint_field(struct otlp_buf *b, uint32_t field, uint64_t v)
{
	if (!v)
		return;
	put_tag(b, field, WT_VARINT);
	put_varint(b, v);
}

static void put_fixed64(struct otlp_buf *b, uint32_t field, uint64_t v)
{
	if (!v)
		return;
	put_tag(b, field, WT_I64);
	put_le64(b, v);
}

static void put_fixed32(struct otlp_buf *b, uint32_t field, uint32_t v)
{
	uint8_t tmp[4];

	if (!v)
		return;
	for (int i = 0; i < 4; i++)
		tmp[i] = (uint8_t)(v >> (8 * i));
	put_tag(b, field, WT_I32);
	put_raw(b, tmp, 4);
}

/* Always written: used for doubles with explicit presence and for
 * AnyValue.double_value, where 0.0 is a value. */
static void put_double(struct otlp_buf *b, uint32_t field, double d)
{
	put_tag(b, field, WT_I64);
	put_le64(b, double_bits(d));
}

/* Returns where the body starts; pair with msg_end. */
static size_t msg_begin(struct otlp_buf *b, uint32_t field)
{
	put_tag(b, field, WT_LEN);
	put_raw(b, "", 1); /* one length byte, fixed up in msg_end */
	return b->len;
}

static void msg_end(struct otlp_buf *b, size_t start)
{
	size_t len, need;

	if (b->oom)
		return;
	len = b->len - start;
	need = varint_size(len);
	if (need > 1) {
		if (!buf_reserve(b, need - 1))
			return;
		memmove(b->p + start + need - 1, b->p + start, len);
		b->len += need - 1;
	}
	for (size_t i = 0; i < need; i++) {
		uint8_t byte = (uint8_t)(len & 0x7f);

		len >>= 7;
		b->p[start - 1 + i] = byte | (i + 1 < need ? 0x80 : 0);
	}
}

/* ---- protobuf: common messages -------------------------------------- */

/* KeyValue { key = 1; AnyValue value = 2 }
 * AnyValue { string_value = 1; bool_value = 2; int_value = 3;
 *            double_value = 4 } */
static void pb_attr(struct otlp_buf *b, uint32_t field, const struct attr *a)
{
	size_t kv = msg_begin(b, field), av;

	put_string(b, 1, a->key);
	av = msg_begin(b, 2);
	switch (a->type) {
	case ATTR_STR:
		/* An empty string is still a string value: write it. */
		put_string_always(b, 1, a->v.s);
		break;
	case ATTR_BOOL:
		put_tag(b, 2, WT_VARINT);
		put_varint(b, a->v.b ? 1 : 0);
		break;
	case ATTR_INT:
		put_tag(b, 3, WT_VARINT);
		put_varint(b, (uint64_t)a->v.i); /* int64: two's complement */
		break;
	case ATTR_DOUBLE:
		put_double(b, 4, a->v.d);
		break;
	}
	msg_end(b, av);
	msg_end(b, kv);
}

static void pb_str_attr(struct otlp_buf *b, uint32_t field, const char *key, const char *val)
{
	struct attr a = { .key = (char *)key, .type = ATTR_STR, .v.s = (char *)val };

	pb_attr(b, field, &a);
}

static void pb_attrs(struct otlp_buf *b, uint32_t field, const struct attr_list *l)
{
	for (size_t i = 0; l && i < l->n; i++)
		pb_attr(b, field, &l->a[i]);
}

/* Resource { repeated KeyValue attributes = 1 } */
static void pb_resource(struct otlp_buf *b, uint32_t field, const struct attr_list *attrs,
                        const char *service_name)
{
	size_t m = msg_begin(b, field);

	pb_attrs(b, 1, attrs);
	if (service_name && !attr_find(attrs, "service.name"))
		pb_str_attr(b, 1, "service.name", service_name);
	msg_end(b, m);
}

/* InstrumentationScope { name = 1; version = 2 } */
static void pb_scope(struct otlp_buf *b, uint32_t field, const char *name, const char *version)
{
	size_t m = msg_begin(b, field);

	put_string(b, 1, name);
	put_string(b, 2, version);
	msg_end(b, m);
}

/* ---- protobuf: traces ----------------------------------------------- */

static bool id_is_zero(const uint8_t *id, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (id[i])
			return false;
	}
	return true;
}

/* Span { trace_id = 1; span_id = 2; parent_span_id = 4; name = 5;
 *        kind = 6; start_time_unix_nano = 7; end_time_unix_nano = 8;
 *        attributes = 9; status = 15; flags = 16 }
 * Status { message = 2; code = 3 } */
static void pb_span(struct otlp_buf *b, const struct span *s)
{
	size_t m = msg_begin(b, 2), st;

	put_bytes(b, 1, s->trace_id, sizeof(s->trace_id));
	put_bytes(b, 2, s->span_id, sizeof(s->span_id));
	if (!id_is_zero(s->parent_span_id, sizeof(s->parent_span_id)))
		put_bytes(b, 4, s->parent_span_id, sizeof(s->parent_span_id));
	put_string(b, 5, s->name);
	put_uvarint_field(b, 6, (uint64_t)(s->kind > 0 ? s->kind : 0));
	put_fixed64(b, 7, s->start_unix_ns);
	put_fixed64(b, 8, s->end_unix_ns);
	pb_attrs(b, 9, &s->attrs);
	/* Link { trace_id = 1; span_id = 2; flags = 6 } */
	for (uint32_t i = 0; i < s->n_links; i++) {
		const struct span_link *l = &s->links[i];
		size_t lm = msg_begin(b, 13);

		put_bytes(b, 1, l->trace_id, sizeof(l->trace_id));
		put_bytes(b, 2, l->span_id, sizeof(l->span_id));
		put_fixed32(b, 6, l->trace_flags | OTLP_SPAN_FLAGS_HAS_IS_REMOTE |
		                      (l->remote ? OTLP_SPAN_FLAGS_IS_REMOTE : 0));
		msg_end(b, lm);
	}
	if (s->status > 0 || (s->status_msg && *s->status_msg)) {
		st = msg_begin(b, 15);
		put_string(b, 2, s->status_msg);
		put_uvarint_field(b, 3, (uint64_t)(s->status > 0 ? s->status : 0));
		msg_end(b, st);
	}
	put_fixed32(b, 16, otlp_span_flags(s));
	msg_end(b, m);
}

static void scope_name(const struct span *s, char *out, size_t n)
{
	size_t len = strnlen(s->scope, sizeof(s->scope));

	if (len >= n)
		len = n - 1;
	memcpy(out, s->scope, len);
	out[len] = '\0';
}

/* ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 }
 * ResourceSpans { resource = 1; repeated ScopeSpans scope_spans = 2;
 *                 schema_url = 3 }
 * ScopeSpans { scope = 1; repeated Span spans = 2; schema_url = 3 } */
int otlp_pb_traces(struct span *const *spans, size_t n, struct otlp_buf *out)
{
	size_t *ord = otlp_span_order(spans, n);
	size_t i = 0;

	if (!n)
		return 0;
	if (!ord)
		return -ENOMEM;
	while (i < n) {
		const struct span *first = spans[ord[i]];
		const struct resource *res = first->res;
		size_t rs = msg_begin(out, 1);

		pb_resource(out, 1, res ? &res->attrs : NULL, res ? res->service_name : NULL);
		while (i < n && spans[ord[i]]->res == res) {
			const struct span *head = spans[ord[i]];
			char scope[sizeof(head->scope) + 1];
			size_t ss = msg_begin(out, 2);

			scope_name(head, scope, sizeof(scope));
			pb_scope(out, 1, scope, NULL);
			for (; i < n && otlp_span_same_group(spans[ord[i]], head); i++)
				pb_span(out, spans[ord[i]]);
			put_string(out, 3, OTLP_SCHEMA_URL);
			msg_end(out, ss);
		}
		put_string(out, 3, OTLP_SCHEMA_URL);
		msg_end(out, rs);
	}
	free(ord);
	return out->oom ? -ENOMEM : 0;
}

/* ---- protobuf: metrics ---------------------------------------------- */

/* HistogramDataPoint { start_time_unix_nano = 2; time_unix_nano = 3;
 *   count = 4; sum = 5; bucket_counts = 6 (packed fixed64);
 *   explicit_bounds = 7 (packed double); attributes = 9; min = 11;
 *   max = 12 } */
static void pb_hpoint(struct otlp_buf *b, const struct otlp_hpoint *p)
{
	size_t m = msg_begin(b, 1), packed;

	put_fixed64(b, 2, p->start_ns);
	put_fixed64(b, 3, p->time_ns);
	put_fixed64(b, 4, p->count);
	put_double(b, 5, p->sum);
	packed = msg_begin(b, 6);
	for (size_t i = 0; i <= p->n_bounds; i++)
		put_le64(b, p->counts[i]);
	msg_end(b, packed);
	if (p->n_bounds) {
		packed = msg_begin(b, 7);
		for (size_t i = 0; i < p->n_bounds; i++)
			put_le64(b, double_bits(p->bounds[i]));
		msg_end(b, packed);
	}
	for (size_t i = 0; i < p->n_attrs; i++)
		pb_str_attr(b, 9, p->keys[i], p->values[i]);
	if (p->has_min_max) {
		put_double(b, 11, p->min);
		put_double(b, 12, p->max);
	}
	msg_end(b, m);
}

/* NumberDataPoint { attributes = 7; start_time_unix_nano = 2;
 *                   time_unix_nano = 3; as_double = 4 } */
static void pb_npoint(struct otlp_buf *b, const struct otlp_hpoint *p)
{
	size_t m = msg_begin(b, 1);

	put_fixed64(b, 2, p->start_ns);
	put_fixed64(b, 3, p->time_ns);
	put_double(b, 4, p->sum);
	for (size_t i = 0; i < p->n_attrs; i++)
		pb_str_attr(b, 7, p->keys[i], p->values[i]);
	msg_end(b, m);
}

/* ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1 }
 * ResourceMetrics { resource = 1; repeated ScopeMetrics scope_metrics = 2;
 *                   schema_url = 3 }
 * ScopeMetrics { scope = 1; repeated Metric metrics = 2; schema_url = 3 }
 * Metric { name = 1; description = 2; unit = 3; Sum sum = 7;
 *          Histogram histogram = 9 }
 * Histogram { repeated HistogramDataPoint data_points = 1;
 *             aggregation_temporality = 2 }
 * Sum { repeated NumberDataPoint data_points = 1; aggregation_temporality = 2;
 *       is_monotonic = 3 } */
int otlp_pb_metrics(const struct otlp_mbatch *b, struct otlp_buf *out)
{
	size_t *ord = otlp_point_order(b);
	size_t i = 0, n = b->n_pts;

	if (!n)
		return 0;
	if (!ord)
		return -ENOMEM;
	while (i < n) {
		size_t res = b->pts[ord[i]].res;
		size_t rm = msg_begin(out, 1), sm;

		pb_resource(out, 1, b->res[res], NULL);
		sm = msg_begin(out, 2);
		pb_scope(out, 1, OTLP_METRICS_SCOPE, SONDE_VERSION);
		while (i < n && b->pts[ord[i]].res == res) {
			const struct otlp_hpoint *head = &b->pts[ord[i]];
			size_t mm = msg_begin(out, 2), h;

			put_string(out, 1, head->name);
			put_string(out, 2, head->description);
			put_string(out, 3, head->unit);
			h = msg_begin(out, head->kind == METRIC_HISTOGRAM ? 9 : 7);
			for (; i < n && otlp_point_same_group(&b->pts[ord[i]], head); i++) {
				if (head->kind == METRIC_HISTOGRAM)
					pb_hpoint(out, &b->pts[ord[i]]);
				else
					pb_npoint(out, &b->pts[ord[i]]);
			}
			put_uvarint_field(out, 2, head->kind == METRIC_UPDOWN
			                                  ? (uint64_t)OTLP_TEMPORALITY_CUMULATIVE
			                                  : (uint64_t)b->temporality);
			if (head->kind == METRIC_SUM)
				put_uvarint_field(out, 3, 1);
			msg_end(out, h);
			msg_end(out, mm);
		}
		put_string(out, 3, OTLP_SCHEMA_URL);
		msg_end(out, sm);
		put_string(out, 3, OTLP_SCHEMA_URL);
		msg_end(out, rm);
	}
	free(ord);
	return out->oom ? -ENOMEM : 0;
}
