/*
 * otlp_model.c - the OTLP data model: histogram points copied out of the
 * registry into a batch the exporter thread owns, the previous values that
 * delta temporality subtracts, and the grouping of spans and points by
 * resource and scope that both encoders share.
 *
 * The one idea: a batch is a snapshot. It is copied under the registry lock
 * and afterwards nothing in it refers back to the registry, so encoding and
 * retries never hold a lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "export/otlp_model.h"
#include "telemetry/metrics.h"

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

bool otlp_span_same_group(const struct span *a, const struct span *b)
{
	return a->res == b->res && strncmp(a->scope, b->scope, sizeof(a->scope)) == 0;
}

bool otlp_point_same_group(const struct otlp_hpoint *a, const struct otlp_hpoint *b)
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

	return otlp_span_same_group(s[i], s[j]);
}

static bool points_same_res(const void *set, size_t i, size_t j)
{
	const struct otlp_hpoint *p = set;

	return p[i].res == p[j].res;
}

static bool points_same_group(const void *set, size_t i, size_t j)
{
	const struct otlp_hpoint *p = set;

	return otlp_point_same_group(&p[i], &p[j]);
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
	for (size_t i = 0; i < b->n_res; i++) {
		attr_list_free(b->res[i]);
		free(b->res[i]);
	}
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
		struct attr_list **nl = realloc(b->res, ncap * sizeof(*nl));
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
	/* Each list on its own: an attr_list must not move. */
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	b->res[b->n_res] = l;
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

	d->kind = p->kind;
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
	const char *svc = p->res && p->res->service_name ? p->res->service_name : "";
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	if (!f)
		return NULL;
	fputs(p->name ? p->name : "", f);
	fputc('\x1f', f);
	fputs(svc, f);
	for (size_t i = 0; i < p->n_attrs; i++) {
		fputc('\x1e', f);
		fputs(p->attr_keys[i], f);
		if (p->attr_values[i]) {
			fputc('=', f);
			fputs(p->attr_values[i], f);
		}
	}
	if (fclose(f) != 0 || !n) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

static struct delta_entry *delta_get(struct otlp_delta *d, char *key, size_t len, bool *fresh)
{
	uint64_t h = fnv1a(FNV_OFFSET, key, len);
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
	/* An up-down counter stays cumulative under a delta preference, as
	 * the OpenTelemetry SDKs do (its value, not its changes, is the point). */
	if (p->kind == METRIC_UPDOWN) {
		free(key);
		return 1;
	}
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

