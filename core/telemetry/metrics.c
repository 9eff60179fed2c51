/*
 * metrics.c - the metric registry: explicit-bucket histograms with one
 * series per (service, attribute values), the agent's own counters and
 * gauges. Rendering lives with the exporters (export/prom_text.c, export/otlp*).
 *
 * The one idea: a series is identified by the resource's service_name plus
 * the attribute values, never by the resource pointer or the pid, so an
 * nginx master and its workers (one resource each) feed one series. The
 * series keeps a reference on the first resource it saw; that resource is
 * what metrics_foreach_hist reports to the OTLP exporter.
 *
 * Bucket counts are stored per bucket (OTLP's layout: bucket i counts
 * values in (bounds[i-1], bounds[i]], the last one (bounds[n-1], +Inf)); the
 * Prometheus renderer accumulates them into `le` buckets. A histogram holds
 * at most METRICS_MAX_SERIES attribute sets; later new sets fall into one
 * overflow series per service carrying only otel.metric.overflow="true",
 * as the OpenTelemetry SDK's cardinality limit does.
 *
 * Locking: one mutex per registry, taken by every public function.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "base/hash.h"
#include "telemetry/metrics.h"
#include "telemetry/span.h"

#define METRICS_MAX_SERIES 2000
#define METRICS_NAME_MAX 256

const double METRICS_DURATION_BUCKETS[] = {
	0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
};
const size_t METRICS_DURATION_BUCKETS_N =
	sizeof(METRICS_DURATION_BUCKETS) / sizeof(METRICS_DURATION_BUCKETS[0]);

static const char *const overflow_keys[] = { "otel.metric.overflow" };
static const char *const overflow_values[] = { "true" };

struct series {
	struct series *next;   /* hash chain */
	uint64_t hash;
	char *service;         /* key part: copy of res->service_name, or NULL */
	struct resource *res;  /* one reference: the first resource seen */
	char **values;         /* n_keys entries, NULL = absent */
	bool overflow;
	uint64_t *buckets;     /* n_bounds + 1, per bucket */
	uint64_t count;
	double sum, min, max;
	uint64_t start_ns;
};

struct metric_hist {
	struct metrics *m;
	enum metric_kind kind;
	char *name, *unit, *description;
	double *bounds;
	size_t n_bounds;
	char **keys;
	size_t n_keys;
	struct series **table;  /* hash table, table_size a power of two */
	size_t table_size;
	struct series **all;    /* creation order */
	size_t n_all, cap_all;
	size_t n_regular;       /* non-overflow series, capped */
	struct series *last;    /* the series found last: tried first, without
	                           hashing (series live as long as the metric) */
};

struct scalar {
	char *name, *help;
	bool counter;
	uint64_t u;
	double d;
};

struct metrics {
	pthread_mutex_t lock;
	struct metric_hist **hists;
	size_t n_hists, cap_hists;
	struct scalar *scalars;
	size_t n_scalars, cap_scalars;
};

/* The registry's lock, or nothing inside this thread's batch (below): the
 * pipeline thread records a few points per span, and taking the lock once
 * per drained slice instead of once per point is most of their cost. */
static __thread struct metrics *batch_m;
static __thread bool batch_locked;

static void mlock(struct metrics *m)
{
	if (batch_m == m) {
		if (!batch_locked) {
			pthread_mutex_lock(&m->lock);
			batch_locked = true;
		}
		return;
	}
	pthread_mutex_lock(&m->lock);
}

static void munlock(struct metrics *m)
{
	if (batch_m != m)
		pthread_mutex_unlock(&m->lock);
}

void metrics_batch_begin(struct metrics *m)
{
	metrics_batch_end(batch_m);
	batch_m = m;
	batch_locked = false;
}

void metrics_batch_end(struct metrics *m)
{
	if (!m || batch_m != m)
		return;
	if (batch_locked)
		pthread_mutex_unlock(&m->lock);
	batch_m = NULL;
	batch_locked = false;
}

/* ---- helpers -------------------------------------------------------- */

static uint64_t now_unix_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool str_eq_null(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Hash of a possibly absent string: a tag byte tells absent from "". */
static uint64_t hash_str(uint64_t h, const char *s)
{
	unsigned char tag = s ? 2 : 1;

	h = fnv1a(h, &tag, 1);
	if (s)
		h = fnv1a(h, s, strlen(s) + 1);
	return h;
}

static uint64_t series_hash(const char *service, const char *const *values, size_t n,
                            bool overflow)
{
	uint64_t h = FNV_OFFSET;
	unsigned char o = overflow;

	h = hash_str(h, service);
	h = fnv1a(h, &o, 1);
	for (size_t i = 0; i < n; i++)
		h = hash_str(h, values ? values[i] : NULL);
	return h;
}

/* ---- registry ------------------------------------------------------- */

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

static void series_free(struct series *s, size_t n_keys)
{
	if (!s)
		return;
	for (size_t i = 0; s->values && i < n_keys; i++)
		free(s->values[i]);
	free(s->values);
	free(s->buckets);
	free(s->service);
	resource_unref(s->res);
	free(s);
}

static void hist_free(struct metric_hist *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n_all; i++)
		series_free(h->all[i], h->n_keys);
	for (size_t i = 0; h->keys && i < h->n_keys; i++)
		free(h->keys[i]);
	free(h->keys);
	free(h->all);
	free(h->table);
	free(h->bounds);
	free(h->name);
	free(h->unit);
	free(h->description);
	free(h);
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	metrics_batch_end(m);
	for (size_t i = 0; i < m->n_hists; i++)
		hist_free(m->hists[i]);
	free(m->hists);
	for (size_t i = 0; i < m->n_scalars; i++) {
		free(m->scalars[i].name);
		free(m->scalars[i].help);
	}
	free(m->scalars);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static bool hist_same_kind(const struct metric_hist *h, enum metric_kind kind)
{
	return h->kind == kind;
}

static bool hist_same_shape(const struct metric_hist *h, const char *unit,
                            const double *bounds, size_t n_bounds,
                            const char *const *keys, size_t n_keys)
{
	if (strcmp(h->unit, unit ? unit : "") != 0)
		return false;
	if (h->n_bounds != n_bounds || h->n_keys != n_keys)
		return false;
	for (size_t i = 0; i < n_bounds; i++) {
		if (h->bounds[i] != bounds[i])
			return false;
	}
	for (size_t i = 0; i < n_keys; i++) {
		if (strcmp(h->keys[i], keys[i]) != 0)
			return false;
	}
	return true;
}

static bool hist_args_valid(const char *name, const double *bounds, size_t n_bounds,
                            const char *const *keys, size_t n_keys)
{
	if (!name || !*name || (n_bounds && !bounds) || (n_keys && !keys))
		return false;
	for (size_t i = 0; i < n_bounds; i++) {
		if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
			return false;
	}
	for (size_t i = 0; i < n_keys; i++) {
		if (!keys[i] || !*keys[i])
			return false;
	}
	return true;
}

static struct metric_hist *hist_create(struct metrics *m, const char *name, const char *unit,
                                       const char *description, const double *bounds,
                                       size_t n_bounds, const char *const *keys,
                                       size_t n_keys)
{
	struct metric_hist *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->m = m;
	h->name = strdup(name);
	h->unit = strdup(unit ? unit : "");
	h->description = strdup(description ? description : "");
	h->bounds = malloc((n_bounds ? n_bounds : 1) * sizeof(double));
	h->keys = calloc(n_keys ? n_keys : 1, sizeof(char *));
	h->table_size = 64;
	h->table = calloc(h->table_size, sizeof(*h->table));
	if (!h->name || !h->unit || !h->description || !h->bounds || !h->keys || !h->table)
		goto fail;
	if (n_bounds)
		memcpy(h->bounds, bounds, n_bounds * sizeof(double));
	h->n_bounds = n_bounds;
	h->n_keys = n_keys;
	for (size_t i = 0; i < n_keys; i++) {
		h->keys[i] = strdup(keys[i]);
		if (!h->keys[i])
			goto fail;
	}
	return h;
fail:
	hist_free(h);
	return NULL;
}

static struct metric_hist *metric_get(struct metrics *m, enum metric_kind kind, const char *name,
                                      const char *unit, const char *description,
                                      const double *bounds, size_t n_bounds,
                                      const char *const *attr_keys, size_t n_attr_keys)
{
	struct metric_hist *h = NULL, **grown;

	if (!m || !hist_args_valid(name, bounds, n_bounds, attr_keys, n_attr_keys))
		return NULL;
	mlock(m);
	for (size_t i = 0; i < m->n_hists; i++) {
		if (strcmp(m->hists[i]->name, name) != 0)
			continue;
		if (hist_same_kind(m->hists[i], kind) &&
		    hist_same_shape(m->hists[i], unit, bounds, n_bounds, attr_keys, n_attr_keys))
			h = m->hists[i];
		goto out;
	}
	if (m->n_hists == m->cap_hists) {
		size_t ncap = m->cap_hists ? m->cap_hists * 2 : 16;

		grown = realloc(m->hists, ncap * sizeof(*grown));
		if (!grown)
			goto out;
		m->hists = grown;
		m->cap_hists = ncap;
	}
	h = hist_create(m, name, unit, description, bounds, n_bounds, attr_keys, n_attr_keys);
	if (h) {
		h->kind = kind;
		m->hists[m->n_hists++] = h;
	}
out:
	munlock(m);
	return h;
}

struct metric_hist *metrics_hist(struct metrics *m, const char *name, const char *unit,
                                 const char *description, const double *bounds,
                                 size_t n_bounds, const char *const *attr_keys,
                                 size_t n_attr_keys)
{
	return metric_get(m, METRIC_HISTOGRAM, name, unit, description, bounds, n_bounds, attr_keys,
	                  n_attr_keys);
}

static void hist_rebuild(struct metric_hist *h, size_t nsize);

/* Add the keys h lacks (existing series get "absent" for them) and tell
 * where each of keys sits. Under the lock. false when out of memory. */
static bool hist_extend_keys(struct metric_hist *h, const char *const *keys, size_t n,
                             size_t *pos)
{
	for (size_t i = 0; i < n; i++) {
		size_t k;

		for (k = 0; k < h->n_keys && strcmp(h->keys[k], keys[i]); k++)
			;
		if (k == h->n_keys) {
			char **nk = realloc(h->keys, (h->n_keys + 1) * sizeof(*nk));
			char *dup = strdup(keys[i]);

			if (nk)
				h->keys = nk;
			if (!nk || !dup) {
				free(dup);
				return false;
			}
			for (size_t j = 0; j < h->n_all; j++) {
				struct series *se = h->all[j];
				char **nv = realloc(se->values, (h->n_keys + 1) * sizeof(*nv));

				if (!nv) {
					free(dup);
					return false;
				}
				nv[h->n_keys] = NULL;
				se->values = nv;
			}
			h->keys[h->n_keys++] = dup;
			/* The identity of a series covers every key: rehash. */
			for (size_t j = 0; j < h->n_all; j++) {
				struct series *se = h->all[j];

				se->hash = series_hash(se->service, se->overflow ? NULL
				                                                 : (const char *const *)se->values,
				                       h->n_keys, se->overflow);
			}
			hist_rebuild(h, h->table_size);
		}
		pos[i] = k;
	}
	return true;
}

struct metric_hist *metrics_hist_shared(struct metrics *m, enum metric_kind kind, const char *name,
                                        const char *unit, const char *description,
                                        const double *bounds, size_t n_bounds,
                                        const char *const *attr_keys, size_t n_attr_keys,
                                        size_t *pos, size_t *n_keys_out)
{
	struct metric_hist *h = NULL;

	if (!m || !hist_args_valid(name, bounds, n_bounds, attr_keys, n_attr_keys))
		return NULL;
	mlock(m);
	for (size_t i = 0; i < m->n_hists; i++) {
		struct metric_hist *c = m->hists[i];

		if (strcmp(c->name, name))
			continue;
		if (c->kind == kind && c->n_bounds == n_bounds &&
		    (!n_bounds || !memcmp(c->bounds, bounds, n_bounds * sizeof(double))) &&
		    !strcmp(c->unit, unit ? unit : "") && hist_extend_keys(c, attr_keys, n_attr_keys, pos))
			h = c;
		goto out;
	}
	munlock(m);
	h = metric_get(m, kind, name, unit, description, bounds, n_bounds, attr_keys, n_attr_keys);
	for (size_t i = 0; h && i < n_attr_keys; i++)
		pos[i] = i;
	mlock(m);
out:
	if (h)
		*n_keys_out = h->n_keys;
	munlock(m);
	return h;
}

size_t metrics_hist_n_keys(struct metric_hist *h)
{
	size_t n;

	mlock(h->m);
	n = h->n_keys;
	munlock(h->m);
	return n;
}

struct metric_hist *metrics_sum(struct metrics *m, const char *name, const char *unit,
                                const char *description, bool monotonic,
                                const char *const *attr_keys, size_t n_attr_keys)
{
	return metric_get(m, monotonic ? METRIC_SUM : METRIC_UPDOWN, name, unit, description, NULL, 0,
	                  attr_keys, n_attr_keys);
}

/* ---- series --------------------------------------------------------- */

static bool series_matches(const struct series *s, uint64_t hash, const char *service,
                           const char *const *values, size_t n_keys, bool overflow)
{
	if (s->hash != hash || s->overflow != overflow || !str_eq_null(s->service, service))
		return false;
	for (size_t i = 0; i < n_keys; i++) {
		if (!str_eq_null(s->values[i], values ? values[i] : NULL))
			return false;
	}
	return true;
}

static struct series *series_find(struct metric_hist *h, uint64_t hash, const char *service,
                                  const char *const *values, bool overflow)
{
	struct series *s = h->table[hash & (h->table_size - 1)];

	for (; s; s = s->next) {
		if (series_matches(s, hash, service, values, h->n_keys, overflow))
			return s;
	}
	return NULL;
}

/* Double the hash table when it is as full as it is wide. Failure is fine:
 * chains just get longer. */
static void hist_maybe_grow(struct metric_hist *h)
{
	if (h->n_all < h->table_size)
		return;
	hist_rebuild(h, h->table_size * 2);
}

static void hist_rebuild(struct metric_hist *h, size_t nsize)
{
	struct series **t;

	t = calloc(nsize, sizeof(*t));
	if (!t)
		return;
	for (size_t i = 0; i < h->n_all; i++) {
		struct series *s = h->all[i];
		size_t b = s->hash & (nsize - 1);

		s->next = t[b];
		t[b] = s;
	}
	free(h->table);
	h->table = t;
	h->table_size = nsize;
}

static struct series *series_alloc(const struct metric_hist *h, const struct resource *res,
                                   const char *const *values, bool overflow)
{
	struct series *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->values = calloc(h->n_keys ? h->n_keys : 1, sizeof(char *));
	s->buckets = calloc(h->n_bounds + 1, sizeof(uint64_t));
	if (!s->values || !s->buckets)
		goto fail;
	if (res && res->service_name) {
		s->service = strdup(res->service_name);
		if (!s->service)
			goto fail;
	}
	for (size_t i = 0; !overflow && values && i < h->n_keys; i++) {
		if (values[i] && !(s->values[i] = strdup(values[i])))
			goto fail;
	}
	s->overflow = overflow;
	s->start_ns = now_unix_ns();
	/* The registry holds the resource for as long as the series lives.
	 * Taking a reference changes only the counter, never the resource. */
	s->res = resource_ref((struct resource *)res);
	return s;
fail:
	series_free(s, h->n_keys);
	return NULL;
}

static struct series *series_get(struct metric_hist *h, const struct resource *res,
                                 const char *const *values)
{
	const char *service = res ? res->service_name : NULL;
	bool overflow = false;
	uint64_t hash;
	struct series *s = h->last, **grown;

	/* A busy service records the same labels again and again: comparing
	 * them with the last series is cheaper than hashing them. */
	if (s && series_matches(s, s->hash, service, values, h->n_keys, false))
		return s;
	hash = series_hash(service, values, h->n_keys, false);
	if ((s = series_find(h, hash, service, values, false)))
		return h->last = s;
	if (h->n_regular >= METRICS_MAX_SERIES) {
		overflow = true;
		values = NULL;
		hash = series_hash(service, NULL, h->n_keys, true);
		s = series_find(h, hash, service, NULL, true);
		if (s)
			return h->last = s;
	}
	if (h->n_all == h->cap_all) {
		size_t ncap = h->cap_all ? h->cap_all * 2 : 16;

		grown = realloc(h->all, ncap * sizeof(*grown));
		if (!grown)
			return NULL;
		h->all = grown;
		h->cap_all = ncap;
	}
	s = series_alloc(h, res, values, overflow);
	if (!s)
		return NULL;
	s->hash = hash;
	h->all[h->n_all++] = s;
	if (!overflow)
		h->n_regular++;
	s->next = h->table[hash & (h->table_size - 1)];
	h->table[hash & (h->table_size - 1)] = s;
	hist_maybe_grow(h);
	return h->last = s;
}

/* Index of the bucket for v: the first i with v <= bounds[i] (le is
 * inclusive), or n_bounds for the +Inf bucket. */
static size_t bucket_index(const double *bounds, size_t n, double v)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v <= bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

void metrics_hist_record(struct metric_hist *h, const struct resource *res,
                         double value, const char *const *attr_values)
{
	struct series *s;

	if (!h || isnan(value))
		return;
	mlock(h->m);
	s = series_get(h, res, attr_values);
	if (!s)
		goto out; /* out of memory: the point is lost */
	if (h->kind != METRIC_HISTOGRAM) {
		s->count++;
		s->sum += value;
		goto out;
	}
	s->buckets[bucket_index(h->bounds, h->n_bounds, value)]++;
	if (!s->count || value < s->min)
		s->min = value;
	if (!s->count || value > s->max)
		s->max = value;
	s->count++;
	s->sum += value;
out:
	munlock(h->m);
}

/* ---- self-metrics --------------------------------------------------- */

static struct scalar *scalar_get(struct metrics *m, const char *name, const char *help)
{
	const char *pname = name;
	struct scalar *s;

	for (size_t i = 0; i < m->n_scalars; i++) {
		if (strcmp(m->scalars[i].name, pname) == 0)
			return &m->scalars[i];
	}
	if (m->n_scalars == m->cap_scalars) {
		size_t ncap = m->cap_scalars ? m->cap_scalars * 2 : 16;

		s = realloc(m->scalars, ncap * sizeof(*s));
		if (!s)
			return NULL;
		m->scalars = s;
		m->cap_scalars = ncap;
	}
	s = &m->scalars[m->n_scalars];
	memset(s, 0, sizeof(*s));
	s->name = strdup(pname);
	s->help = strdup(help ? help : "");
	if (!s->name || !s->help) {
		free(s->name);
		free(s->help);
		return NULL;
	}
	m->n_scalars++;
	return s;
}

void metrics_counter_set(struct metrics *m, const char *name, const char *help, uint64_t v)
{
	struct scalar *s;

	if (!m || !name)
		return;
	mlock(m);
	s = scalar_get(m, name, help);
	if (s) {
		s->counter = true;
		s->u = v;
	}
	munlock(m);
}

void metrics_gauge_set(struct metrics *m, const char *name, const char *help, double v)
{
	struct scalar *s;

	if (!m || !name)
		return;
	mlock(m);
	s = scalar_get(m, name, help);
	if (s) {
		s->counter = false;
		s->d = v;
	}
	munlock(m);
}

/* ---- OTLP walk ------------------------------------------------------ */

void metrics_foreach_hist(struct metrics *m,
                          void (*cb)(void *ctx, const struct hist_point *p), void *ctx)
{
	if (!m || !cb)
		return;
	mlock(m);
	for (size_t i = 0; i < m->n_hists; i++) {
		const struct metric_hist *h = m->hists[i];

		for (size_t j = 0; j < h->n_all; j++) {
			const struct series *s = h->all[j];
			struct hist_point p = {
				.name = h->name,
				.unit = h->unit,
				.description = h->description,
				.res = s->res,
				.n_attrs = s->overflow ? 1 : h->n_keys,
				.attr_keys = s->overflow ? overflow_keys
				                         : (const char *const *)h->keys,
				.attr_values = s->overflow ? overflow_values
				                           : (const char *const *)s->values,
				.n_bounds = h->n_bounds,
				.bounds = h->bounds,
				.bucket_counts = s->buckets,
				.count = s->count,
				.sum = s->sum,
				.min = s->min,
				.max = s->max,
				.start_unix_ns = s->start_ns,
				.service = s->service,
				.overflow = s->overflow,
				.hist_index = i,
				.kind = h->kind,
			};
			cb(ctx, &p);
		}
	}
	munlock(m);
}


void metrics_foreach_scalar(struct metrics *m,
                            void (*cb)(void *ctx, const struct scalar_point *p), void *ctx)
{
	if (!m || !cb)
		return;
	mlock(m);
	for (size_t i = 0; i < m->n_scalars; i++) {
		const struct scalar *s = &m->scalars[i];
		struct scalar_point p = {
			.name = s->name, .help = s->help, .counter = s->counter, .u = s->u, .d = s->d,
		};

		cb(ctx, &p);
	}
	munlock(m);
}

void metrics_foreach_hist_desc(struct metrics *m,
                               void (*cb)(void *ctx, const struct hist_desc *d), void *ctx)
{
	if (!m || !cb)
		return;
	mlock(m);
	for (size_t i = 0; i < m->n_hists; i++) {
		const struct metric_hist *h = m->hists[i];
		struct hist_desc d = {
			.kind = h->kind,
			.name = h->name, .unit = h->unit, .description = h->description,
			.n_bounds = h->n_bounds, .bounds = h->bounds,
			.n_keys = h->n_keys, .keys = (const char *const *)h->keys,
		};

		cb(ctx, &d);
	}
	munlock(m);
}
