/*
 * otlp_pb.c - the OTLP data model (metric snapshots, delta state, the
 * grouping of spans and points) and a hand-written protobuf encoder for the
 * few OTLP messages the agent sends.
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

#include "metrics.h"
#include "otlp_pb.h"
#include "utf8.h"

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

/* ---- grouping ------------------------------------------------------- */

/* Each element is tagged with the first index of its resource (outer) and
 * of its group (inner: same resource and scope, or same resource and
 * metric name). Sorting by (outer, inner, idx) puts each resource's groups
 * together, in first-appearance order, and keeps a group's members in
 * input order. The scan is quadratic in the number of distinct groups,
 * which is small (services x plugins, services x metric names). */
struct order_item {
	size_t outer, inner, idx;
};

static int order_cmp(const void *a, const void *b)
{
	const struct order_item *x = a, *y = b;

	if (x->outer != y->outer)
		return x->outer < y->outer ? -1 : 1;
	if (x->inner != y->inner)
		return x->inner < y->inner ? -1 : 1;
	return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static bool span_same_group(const struct span *a, const struct span *b)
{
	return a->res == b->res && strncmp(a->scope, b->scope, sizeof(a->scope)) == 0;
}

static bool point_same_group(const struct otlp_hpoint *a, const struct otlp_hpoint *b)
{
	return a->res == b->res && strcmp(a->name, b->name) == 0;
}

typedef bool (*same_fn)(const void *set, size_t i, size_t j);

static bool spans_same_res(const void *set, size_t i, size_t j)
{
	struct span *const *s = set;

	return s[i]->res == s[j]->res;
}

static bool spans_same_group(const void *set, size_t i, size_t j)
{
	struct span *const *s = set;

	return span_same_group(s[i], s[j]);
}

static bool points_same_res(const void *set, size_t i, size_t j)
{
	const struct otlp_hpoint *p = set;

	return p[i].res == p[j].res;
}

static bool points_same_group(const void *set, size_t i, size_t j)
{
	const struct otlp_hpoint *p = set;

	return point_same_group(&p[i], &p[j]);
}

/* First index k <= i with same(k, i), using the list of firsts so far. */
static size_t first_of(const void *set, size_t i, same_fn same, size_t *firsts, size_t *n)
{
	for (size_t g = 0; g < *n; g++) {
		if (same(set, firsts[g], i))
			return firsts[g];
	}
	firsts[(*n)++] = i;
	return i;
}

static size_t *order(const void *set, size_t n, same_fn same_outer, same_fn same_inner)
{
	struct order_item *it = calloc(n ? n : 1, sizeof(*it));
	size_t *fo = calloc(n ? n : 1, sizeof(*fo));
	size_t *fi = calloc(n ? n : 1, sizeof(*fi));
	size_t *perm = malloc((n ? n : 1) * sizeof(*perm));
	size_t n_fo = 0, n_fi = 0;

	if (!n || !it || !fo || !fi || !perm) {
		free(perm);
		perm = NULL;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		it[i].idx = i;
		it[i].outer = first_of(set, i, same_outer, fo, &n_fo);
		it[i].inner = first_of(set, i, same_inner, fi, &n_fi);
	}
	qsort(it, n, sizeof(*it), order_cmp);
	for (size_t i = 0; i < n; i++)
		perm[i] = it[i].idx;
out:
	free(it);
	free(fo);
	free(fi);
	return perm;
}

size_t *otlp_span_order(struct span *const *spans, size_t n)
{
	return order(spans, n, spans_same_res, spans_same_group);
}

size_t *otlp_point_order(const struct otlp_mbatch *b)
{
	return order(b->pts, b->n_pts, points_same_res, points_same_group);
}

uint32_t otlp_span_flags(const struct span *s)
{
	uint32_t f = s->trace_flags | OTLP_SPAN_FLAGS_HAS_IS_REMOTE;

	if (s->remote_parent)
		f |= OTLP_SPAN_FLAGS_IS_REMOTE;
	return f;
}

/* ---- metric snapshots ----------------------------------------------- */

void otlp_mbatch_free(struct otlp_mbatch *b)
{
	for (size_t i = 0; i < b->n_res; i++)
		attr_list_free(&b->res[i]);
	for (size_t i = 0; i < b->n_pts; i++) {
		struct otlp_hpoint *p = &b->pts[i];

		free(p->name);
		free(p->unit);
		free(p->description);
		for (size_t k = 0; k < p->n_attrs; k++) {
			free(p->keys[k]);
			free(p->values[k]);
		}
		free(p->keys);
		free(p->values);
		free(p->bounds);
		free(p->counts);
	}
	free(b->res);
	free(b->res_key);
	free(b->pts);
	memset(b, 0, sizeof(*b));
}

static int copy_attrs(struct attr_list *dst, const struct attr_list *src)
{
	for (size_t i = 0; i < src->n; i++) {
		const struct attr *a = &src->a[i];
		int rc = -EINVAL;

		switch (a->type) {
		case ATTR_STR:
			rc = attr_set_str(dst, a->key, a->v.s, a->v.s ? strlen(a->v.s) : 0);
			break;
		case ATTR_INT:
			rc = attr_set_int(dst, a->key, a->v.i);
			break;
		case ATTR_DOUBLE:
			rc = attr_set_double(dst, a->key, a->v.d);
			break;
		case ATTR_BOOL:
			rc = attr_set_bool(dst, a->key, a->v.b);
			break;
		}
		if (rc == -ENOMEM)
			return rc;
	}
	return 0;
}

/* Index of res in b, copying its attributes on first sight. A resource
 * without a service.name attribute gets one from service_name. */
static long batch_resource(struct otlp_mbatch *b, const struct resource *res)
{
	struct attr_list *l;

	for (size_t i = 0; i < b->n_res; i++) {
		if (b->res_key[i] == res)
			return (long)i;
	}
	if (b->n_res == b->cap_res) {
		size_t ncap = b->cap_res ? b->cap_res * 2 : 4;
		struct attr_list *nl = realloc(b->res, ncap * sizeof(*nl));
		const void **nk;

		if (!nl)
			return -ENOMEM;
		b->res = nl;
		nk = realloc(b->res_key, ncap * sizeof(*nk));
		if (!nk)
			return -ENOMEM;
		b->res_key = nk;
		b->cap_res = ncap;
	}
	l = &b->res[b->n_res];
	memset(l, 0, sizeof(*l));
	b->res_key[b->n_res] = res;
	b->n_res++;
	if (!res)
		return (long)(b->n_res - 1);
	if (copy_attrs(l, &res->attrs) < 0)
		return -ENOMEM;
	if (res->service_name && !attr_find(l, "service.name") &&
	    attr_set_str(l, "service.name", res->service_name, strlen(res->service_name)) < 0)
		return -ENOMEM;
	return (long)(b->n_res - 1);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int point_copy(struct otlp_hpoint *d, const struct hist_point *p, uint64_t now_ns)
{
	size_t nb = p->n_bounds;

	d->name = strdup(p->name ? p->name : "");
	d->unit = dup_or_null(p->unit);
	d->description = dup_or_null(p->description);
	d->keys = calloc(p->n_attrs ? p->n_attrs : 1, sizeof(char *));
	d->values = calloc(p->n_attrs ? p->n_attrs : 1, sizeof(char *));
	d->bounds = calloc(nb ? nb : 1, sizeof(double));
	d->counts = calloc(nb + 1, sizeof(uint64_t));
	if (!d->name || (p->unit && !d->unit) || (p->description && !d->description) ||
	    !d->keys || !d->values || !d->bounds || !d->counts)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_attrs; i++) {
		if (!p->attr_values[i] || !p->attr_keys[i])
			continue;
		d->keys[d->n_attrs] = strdup(p->attr_keys[i]);
		d->values[d->n_attrs] = strdup(p->attr_values[i]);
		d->n_attrs++;
		if (!d->keys[d->n_attrs - 1] || !d->values[d->n_attrs - 1])
			return -ENOMEM;
	}
	d->n_bounds = nb;
	if (nb)
		memcpy(d->bounds, p->bounds, nb * sizeof(double));
	memcpy(d->counts, p->bucket_counts, (nb + 1) * sizeof(uint64_t));
	d->count = p->count;
	d->sum = p->sum;
	d->min = p->min;
	d->max = p->max;
	d->has_min_max = p->count > 0;
	d->start_ns = p->start_unix_ns;
	d->time_ns = now_ns;
	return 0;
}

/* ---- delta state ---------------------------------------------------- */

#define DELTA_BUCKETS 1024

struct delta_entry {
	struct delta_entry *next;
	uint64_t hash;
	char *key;
	size_t key_len;
	size_t n_counts;
	uint64_t *counts;
	uint64_t count;
	double sum;
	uint64_t time_ns;
	uint64_t round;  /* last collect that saw the series */
};

struct otlp_delta {
	struct delta_entry *table[DELTA_BUCKETS];
	uint64_t round;
};

struct otlp_delta *otlp_delta_new(void)
{
	return calloc(1, sizeof(struct otlp_delta));
}

static void delta_entry_free(struct delta_entry *e)
{
	free(e->key);
	free(e->counts);
	free(e);
}

void otlp_delta_free(struct otlp_delta *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < DELTA_BUCKETS; i++) {
		struct delta_entry *e = d->table[i], *next;

		for (; e; e = next) {
			next = e->next;
			delta_entry_free(e);
		}
	}
	free(d);
}

/* A series is the metric name, the service and the attribute values
 * (the registry's own identity), joined with separators that cannot occur
 * in them. Returns a malloc'd key of *len bytes. */
static char *series_key(const struct hist_point *p, size_t *len)
{
	struct otlp_buf b = { 0 };
	const char *svc = p->res && p->res->service_name ? p->res->service_name : "";

	put_raw(&b, p->name ? p->name : "", p->name ? strlen(p->name) : 0);
	put_raw(&b, "\x1f", 1);
	put_raw(&b, svc, strlen(svc));
	for (size_t i = 0; i < p->n_attrs; i++) {
		const char *v = p->attr_values[i];

		put_raw(&b, "\x1e", 1);
		put_raw(&b, p->attr_keys[i], strlen(p->attr_keys[i]));
		if (v) {
			put_raw(&b, "=", 1);
			put_raw(&b, v, strlen(v));
		}
	}
	if (b.oom || !b.len) {
		otlp_buf_free(&b);
		return NULL;
	}
	*len = b.len;
	return (char *)b.p;
}

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static struct delta_entry *delta_get(struct otlp_delta *d, char *key, size_t len, bool *fresh)
{
	uint64_t h = fnv1a(key, len);
	struct delta_entry **slot = &d->table[h % DELTA_BUCKETS], *e;

	for (e = *slot; e; e = e->next) {
		if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) {
			free(key);
			*fresh = false;
			return e;
		}
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		free(key);
		return NULL;
	}
	e->hash = h;
	e->key = key;
	e->key_len = len;
	e->next = *slot;
	*slot = e;
	*fresh = true;
	return e;
}

/* Forget series the registry no longer reports. */
static void delta_sweep(struct otlp_delta *d)
{
	for (size_t i = 0; i < DELTA_BUCKETS; i++) {
		struct delta_entry **pp = &d->table[i];

		while (*pp) {
			struct delta_entry *e = *pp;

			if (e->round == d->round) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			delta_entry_free(e);
		}
	}
}

/* Turn the cumulative point pt (just copied from p) into the delta since
 * the previous collect, and remember p's cumulative values. Returns 1 to
 * keep the point, 0 to leave it out (nothing new), -ENOMEM. */
static int delta_apply(struct otlp_delta *d, const struct hist_point *p, struct otlp_hpoint *pt)
{
	size_t len, nc = p->n_bounds + 1;
	char *key = series_key(p, &len);
	struct delta_entry *e;
	bool fresh = false, reset;

	if (!key)
		return -ENOMEM;
	e = delta_get(d, key, len, &fresh);
	if (!e)
		return -ENOMEM;
	e->round = d->round;
	/* A series whose counts went down (or whose layout changed) restarted:
	 * its cumulative values are the delta. */
	reset = fresh || e->n_counts != nc || p->count < e->count;
	for (size_t i = 0; !reset && i < nc; i++)
		reset = p->bucket_counts[i] < e->counts[i];
	if (!reset) {
		for (size_t i = 0; i < nc; i++)
			pt->counts[i] -= e->counts[i];
		pt->count -= e->count;
		pt->sum -= e->sum;
		pt->start_ns = e->time_ns;
		pt->has_min_max = e->count == 0 && pt->count > 0;
	}
	if (e->n_counts != nc) {
		uint64_t *c = realloc(e->counts, nc * sizeof(*c));

		if (!c)
			return -ENOMEM;
		e->counts = c;
		e->n_counts = nc;
	}
	memcpy(e->counts, p->bucket_counts, nc * sizeof(uint64_t));
	e->count = p->count;
	e->sum = p->sum;
	e->time_ns = pt->time_ns;
	return pt->count > 0;
}

struct collect_ctx {
	struct otlp_mbatch *b;
	struct otlp_delta *d;
	uint64_t now_ns;
	int err;
};

static void point_free(struct otlp_hpoint *pt)
{
	struct otlp_mbatch one = { .pts = pt, .n_pts = 1 };

	otlp_mbatch_free(&one); /* frees pt's members and pt itself */
}

static void collect_cb(void *arg, const struct hist_point *p)
{
	struct collect_ctx *c = arg;
	struct otlp_mbatch *b = c->b;
	struct otlp_hpoint *pt;
	long ri;
	int keep = 1;

	if (c->err)
		return;
	pt = calloc(1, sizeof(*pt));
	if (!pt || point_copy(pt, p, c->now_ns) < 0)
		goto oom;
	if (c->d) {
		keep = delta_apply(c->d, p, pt);
		if (keep < 0)
			goto oom;
	}
	if (!keep) {
		point_free(pt);
		return;
	}
	ri = batch_resource(b, p->res);
	if (ri < 0)
		goto oom;
	pt->res = (size_t)ri;
	if (b->n_pts == b->cap_pts) {
		size_t ncap = b->cap_pts ? b->cap_pts * 2 : 16;
		struct otlp_hpoint *np = realloc(b->pts, ncap * sizeof(*np));

		if (!np)
			goto oom;
		b->pts = np;
		b->cap_pts = ncap;
	}
	b->pts[b->n_pts++] = *pt;
	free(pt);
	return;
oom:
	if (pt)
		point_free(pt);
	c->err = -ENOMEM;
}

int otlp_mbatch_collect(struct metrics *m, struct otlp_delta *d, uint64_t now_ns,
                        struct otlp_mbatch *out)
{
	struct collect_ctx c = { .b = out, .d = d, .now_ns = now_ns };

	out->temporality = d ? OTLP_TEMPORALITY_DELTA : OTLP_TEMPORALITY_CUMULATIVE;
	if (d)
		d->round++;
	metrics_foreach_hist(m, collect_cb, &c);
	if (d && !c.err)
		delta_sweep(d);
	return c.err;
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
			for (; i < n && span_same_group(spans[ord[i]], head); i++)
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

/* ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1 }
 * ResourceMetrics { resource = 1; repeated ScopeMetrics scope_metrics = 2;
 *                   schema_url = 3 }
 * ScopeMetrics { scope = 1; repeated Metric metrics = 2; schema_url = 3 }
 * Metric { name = 1; description = 2; unit = 3; Histogram histogram = 9 }
 * Histogram { repeated HistogramDataPoint data_points = 1;
 *             aggregation_temporality = 2 } */
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

		pb_resource(out, 1, &b->res[res], NULL);
		sm = msg_begin(out, 2);
		pb_scope(out, 1, OTLP_METRICS_SCOPE, SONDE_VERSION);
		while (i < n && b->pts[ord[i]].res == res) {
			const struct otlp_hpoint *head = &b->pts[ord[i]];
			size_t mm = msg_begin(out, 2), h;

			put_string(out, 1, head->name);
			put_string(out, 2, head->description);
			put_string(out, 3, head->unit);
			h = msg_begin(out, 9);
			for (; i < n && point_same_group(&b->pts[ord[i]], head); i++)
				pb_hpoint(out, &b->pts[ord[i]]);
			put_uvarint_field(out, 2, (uint64_t)b->temporality);
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
