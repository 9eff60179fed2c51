/*
 * testhost.c - the test harness over the real host (see testhost.h).
 *
 * The one idea: the harness registers itself as the host's observer and as
 * a span sink, takes a reference on every span the moment the host creates
 * it, and builds the test-facing views (struct th_span, th_record,
 * th_metric) from the host's own data when a test asks. It never answers a
 * plugin call itself.
 */
#define _GNU_SOURCE
#include "testhost.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hex.h"
#include "base/hmap.h"
#include "config/config.h"
#include "host/host.h"
#include "telemetry/metrics.h"
#include "telemetry/span.h"

enum th_conn_state { TC_OPEN = 0, TC_CLOSED, TC_GIVEN_UP };

struct th_conn {
	struct th_host *h;
	struct sonde_conn *hc;
	uint32_t pid, fd;
	bool has_fd;
	char *service_name, *exe_name;
	uint64_t last_ts;
	uint64_t pos[2];           /* bytes fed so far per direction (th_conn_feed) */
	enum th_conn_state st;
};

/* Per-service settings live in a service_cfg the harness owns (stable). */
struct th_service {
	char *name;
	struct service_cfg cfg;
};

struct th_pending {
	char *service, *key;
	char **vals;
	size_t n;
};

struct th_entry {
	struct span *s;             /* our reference */
	enum th_span_state state;
	struct th_span *view;       /* rebuilt on every read */
};

struct th_host {
	struct config cfg;
	struct metrics *metrics;
	struct host *host;
	struct span_sink sink;
	const struct sonde_plugin *desc;
	const char *proto;
	bool loaded;
	/* th_load_minor: the plugin's descriptor with init wrapped, and the
	 * host table its init is given, cut to the older minor. */
	struct sonde_plugin desc_cut;
	const struct sonde_plugin *desc_orig;
	struct sonde_host_api api_cut;
	size_t api_cut_size;
	uint32_t api_cut_minor;
	size_t misuse_at_unload;
	struct th_entry *spans;
	size_t n_spans, cap_spans;
	struct hmap by_span;        /* struct span * -> index + 1 */
	size_t *ended;              /* indices, end order */
	size_t n_ended, cap_ended;
	size_t n_dropped;
	struct th_record *records;
	size_t n_records, cap_records;
	struct th_metric **metrics_v;
	size_t n_metrics;
	struct th_service **svcs;
	size_t n_svcs;
	struct th_pending *pending;
	size_t n_pending;
	struct th_conn **conns;
	size_t n_conns;
	size_t logs[4];
	int verbose;
};

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);

	if (!p) {
		fprintf(stderr, "testhost: out of memory\n");
		abort();
	}
	return p;
}

static char *xstrdup(const char *s)
{
	char *p;

	if (!s)
		return NULL;
	p = strdup(s);
	if (!p) {
		fprintf(stderr, "testhost: out of memory\n");
		abort();
	}
	return p;
}

static void grow(void **arr, size_t *cap, size_t n, size_t sz)
{
	void *p;

	if (n < *cap)
		return;
	*cap = *cap ? *cap * 2 : 16;
	p = realloc(*arr, *cap * sz);
	if (!p) {
		fprintf(stderr, "testhost: out of memory\n");
		abort();
	}
	*arr = p;
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* --- what the host shows us --------------------------------------------------- */

static void on_started(void *ctx, struct span *s)
{
	struct th_host *h = ctx;

	grow((void **)&h->spans, &h->cap_spans, h->n_spans, sizeof(*h->spans));
	h->spans[h->n_spans] = (struct th_entry){ .s = span_ref(s), .state = TH_SPAN_OPEN };
	h->n_spans++;
	hmap_put(&h->by_span, (uint64_t)(uintptr_t)s, (void *)(uintptr_t)h->n_spans);
}

static size_t index_of(const struct th_host *h, const struct span *s)
{
	uintptr_t v = (uintptr_t)hmap_get(&h->by_span, (uint64_t)(uintptr_t)s);

	return v ? v - 1 : SIZE_MAX;
}

static void on_ended(void *ctx, struct span *s)
{
	struct th_host *h = ctx;
	size_t i = index_of(h, s);

	if (i == SIZE_MAX)
		return;
	h->spans[i].state = TH_SPAN_ENDED;
	grow((void **)&h->ended, &h->cap_ended, h->n_ended, sizeof(*h->ended));
	h->ended[h->n_ended++] = i;
}

static void on_dropped(void *ctx, const struct span *s)
{
	struct th_host *h = ctx;
	size_t i = index_of(h, s);

	if (i == SIZE_MAX)
		return;
	h->spans[i].state = TH_SPAN_DROPPED;
	h->n_dropped++;
}

static void on_log(void *ctx, const char *plugin, enum sonde_log_level lvl, const char *msg)
{
	struct th_host *h = ctx;

	if ((unsigned)lvl < 4)
		h->logs[lvl]++;
	if (h->verbose)
		fprintf(stderr, "testhost log[%d] %s: %s\n", (int)lvl, plugin, msg);
}

static void add_desc(void *ctx, const struct hist_desc *d)
{
	struct th_host *h = ctx;
	struct th_metric *m;

	for (size_t i = 0; i < h->n_metrics; i++)
		if (!strcmp(h->metrics_v[i]->name, d->name))
			return;
	m = xcalloc(1, sizeof(*m));
	m->host = h;
	m->name = xstrdup(d->name);
	m->unit = xstrdup(d->unit ? d->unit : "");
	m->n_bounds = d->n_bounds;
	m->bounds = xcalloc(d->n_bounds, sizeof(double));
	if (d->n_bounds)
		memcpy(m->bounds, d->bounds, d->n_bounds * sizeof(double));
	m->n_keys = d->n_keys;
	m->keys = xcalloc(d->n_keys + 1, sizeof(char *));
	for (size_t i = 0; i < d->n_keys; i++)
		m->keys[i] = xstrdup(d->keys[i]);
	h->metrics_v = realloc(h->metrics_v, (h->n_metrics + 1) * sizeof(*h->metrics_v));
	if (!h->metrics_v)
		abort();
	h->metrics_v[h->n_metrics++] = m;
}

static struct th_span *view_of(const struct th_host *ch, size_t i);

static void refresh_metrics(const struct th_host *ch)
{
	struct th_host *h = (struct th_host *)ch;

	metrics_foreach_hist_desc(h->metrics, add_desc, h);
}

static void on_point(void *ctx, const char *name, double value, const struct span *from, size_t n,
                     const char *const *keys, const char *const *values)
{
	struct th_host *h = ctx;
	struct th_metric *m = th_metric_by_name(h, name);
	struct th_record *r;

	(void)keys;
	if (!m)
		return;
	grow((void **)&h->records, &h->cap_records, h->n_records, sizeof(*h->records));
	r = &h->records[h->n_records++];
	r->m = m;
	r->value = value;
	r->vals = xcalloc(m->n_keys + 1, sizeof(char *));
	for (size_t k = 0; values && k < n && k < m->n_keys; k++)
		r->vals[k] = xstrdup(values[k]);
	r->span = NULL;
	if (from && index_of(h, from) != SIZE_MAX)
		r->span = view_of(h, index_of(h, from));
}

/* --- lifetime ------------------------------------------------------------------- */

static struct sonde_conn *rt_lookup(void *ctx, uint32_t pid, uint32_t fd)
{
	struct th_host *h = ctx;

	for (size_t i = 0; i < h->n_conns; i++) {
		struct th_conn *c = h->conns[i];

		if (c->hc && c->has_fd && c->pid == pid && c->fd == fd)
			return c->hc;
	}
	return NULL;
}

struct th_host *th_new(void)
{
	struct th_host *h = xcalloc(1, sizeof(*h));
	struct host_opts o = {.struct_size = sizeof(o)};
	struct host_observer obs = {
		.span_started = on_started, .log = on_log, .span_dropped = on_dropped,
		.metric_point = on_point, .ctx = h,
	};

	config_init(&h->cfg);
	hmap_init(&h->by_span);
	h->metrics = metrics_new();
	o.cfg = &h->cfg;
	o.metrics = h->metrics;
	o.verbose = -1;
	o.max_open_spans = ~0u;
	h->host = h->metrics ? host_new(&o) : NULL;
	if (!h->host)
		abort();
	host_set_observer(h->host, &obs);
	host_set_runtime(h->host, &(struct host_runtime_ops){.ctx = h, .conn_lookup = rt_lookup});
	h->sink = (struct span_sink){.name = "testhost", .emit = on_ended, .ctx = h};
	host_add_sink(h->host, &h->sink);
	return h;
}

static void view_free(struct th_span *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n_attrs; i++) {
		free(v->attrs[i].key);
		free(v->attrs[i].s);
	}
	free(v->attrs);
	free(v->name);
	free(v->status_desc);
	free(v->traceparent);
	memset(v, 0, sizeof(*v));
}

void th_free(struct th_host *h)
{
	if (!h)
		return;
	th_unload(h);
	for (size_t i = 0; i < h->n_spans; i++) {
		view_free(h->spans[i].view);
		free(h->spans[i].view);
		span_unref(h->spans[i].s);
	}
	free(h->spans);
	free(h->ended);
	hmap_free(&h->by_span);
	for (size_t i = 0; i < h->n_records; i++)
		free_strv(h->records[i].vals, h->records[i].m->n_keys);
	free(h->records);
	for (size_t i = 0; i < h->n_metrics; i++) {
		struct th_metric *m = h->metrics_v[i];
		free(m->name);
		free(m->unit);
		free(m->bounds);
		free_strv(m->keys, m->n_keys);
		free(m);
	}
	free(h->metrics_v);
	for (size_t i = 0; i < h->n_conns; i++) {
		free(h->conns[i]->service_name);
		free(h->conns[i]->exe_name);
		free(h->conns[i]);
	}
	free(h->conns);
	for (size_t i = 0; i < h->n_svcs; i++) {
		free(h->svcs[i]->name);
		config_service_free(&h->svcs[i]->cfg);
		free(h->svcs[i]);
	}
	free(h->svcs);
	for (size_t i = 0; i < h->n_pending; i++) {
		free(h->pending[i].service);
		free(h->pending[i].key);
		free_strv(h->pending[i].vals, h->pending[i].n);
	}
	free(h->pending);
	metrics_free(h->metrics);
	config_free(&h->cfg);
	free(h);
}

const struct sonde_host_api *th_api(struct th_host *h)
{
	struct plugin_registry *r = h->host ? host_plugins(h->host) : NULL;

	return r ? r->host : NULL;
}

struct sonde_plugin_handle *th_self(struct th_host *h)
{
	struct plugin_registry *r = h->host ? host_plugins(h->host) : NULL;

	for (size_t i = 0; r && i < r->n_files; i++)
		if (r->files[i]->desc == h->desc)
			return r->files[i];
	return NULL;
}

static struct th_service *service_named(struct th_host *h, const char *name)
{
	struct th_service *s;

	for (size_t i = 0; i < h->n_svcs; i++)
		if (!strcmp(h->svcs[i]->name, name))
			return h->svcs[i];
	s = xcalloc(1, sizeof(*s));
	s->name = xstrdup(name);
	h->svcs = realloc(h->svcs, (h->n_svcs + 1) * sizeof(*h->svcs));
	if (!h->svcs)
		abort();
	h->svcs[h->n_svcs++] = s;
	return s;
}

static int apply_setting(struct th_host *h, const char *service, const char *key,
                         const char *const *vals, size_t n)
{
	struct service_cfg *svc = service ? &service_named(h, service)->cfg : NULL;

	return config_plugin_set(&h->cfg, svc, h->desc->name, key, vals, n);
}

int th_set_config(struct th_host *h, const char *service, const char *key,
                  const char *const *vals, size_t n)
{
	struct th_pending *p;

	if (h->loaded)
		return apply_setting(h, service, key, vals, n);
	p = realloc(h->pending, (h->n_pending + 1) * sizeof(*p));
	if (!p)
		return -1;
	h->pending = p;
	p = &h->pending[h->n_pending++];
	p->service = xstrdup(service);
	p->key = xstrdup(key);
	p->vals = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		p->vals[i] = xstrdup(vals[i]);
	p->n = n;
	return 0;
}

void th_set_span_limit(struct th_host *h, size_t max_open_per_conn)
{
	if (h->host)
		host_set_max_open_spans(h->host, (unsigned)max_open_per_conn);
}

void th_set_verbose(struct th_host *h, int verbose)
{
	h->verbose = verbose;
}

/* --- driving a plugin ------------------------------------------------------------ */

int th_load(struct th_host *h, const struct sonde_plugin *desc, const char *proto)
{
	char why[256];
	int rc;

	if (!desc || h->loaded || !h->host)
		return SONDE_ERR_INVAL;
	h->proto = NULL;
	for (size_t i = 0; desc->struct_size >= offsetof(struct sonde_plugin, process_new) &&
	                   desc->protocols && desc->protocols[i]; i++) {
		if (!proto || !strcmp(desc->protocols[i]->name, proto)) {
			h->proto = desc->protocols[i]->name;
			break;
		}
	}
	if (proto && !h->proto)
		return SONDE_ERR_NOENT;
	/* Settings given before the load: the plugin reads them in init(). */
	h->desc = desc;
	for (size_t i = 0; desc->name && i < h->n_pending; i++)
		if (apply_setting(h, h->pending[i].service, h->pending[i].key,
		                  (const char *const *)h->pending[i].vals, h->pending[i].n))
			return SONDE_ERR_NOMEM;
	rc = host_load_builtin(h->host, desc, desc->name, why, sizeof(why));
	if (rc) {
		if (h->verbose)
			fprintf(stderr, "testhost: refused: %s\n", why);
		h->desc = NULL;
		return rc;
	}
	h->loaded = true;
	return SONDE_OK;
}

/* The host being loaded by th_load_minor (the harness is not thread-safe). */
static struct th_host *loading_cut;

static int init_cut(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
                    void **state)
{
	struct th_host *h = loading_cut;

	h->api_cut = *host;
	h->api_cut.abi_minor = h->api_cut_minor;
	h->api_cut.struct_size = (uint32_t)h->api_cut_size;
	return h->desc_orig->init(&h->api_cut, self, state);
}

int th_load_minor(struct th_host *h, const struct sonde_plugin *desc, const char *proto,
                  uint32_t minor)
{
	int rc;

	if (!desc || h->loaded)
		return SONDE_ERR_INVAL;
	if (minor >= SONDE_ABI_MINOR)
		return th_load(h, desc, proto);
	if (minor != 0)
		return SONDE_ERR_INVAL;
	/* 1.0 ended with histogram_record. */
	h->api_cut_size = offsetof(struct sonde_host_api, histogram_record) +
	                  sizeof(((struct sonde_host_api *)0)->histogram_record);
	h->api_cut_minor = minor;
	h->desc_orig = desc;
	h->desc_cut = *desc;
	if (desc->init)
		h->desc_cut.init = init_cut;
	loading_cut = h;
	rc = th_load(h, &h->desc_cut, proto);
	loading_cut = NULL;
	return rc;
}

void th_unload(struct th_host *h)
{
	if (!h->host)
		return;
	for (size_t i = 0; i < h->n_conns; i++)
		th_conn_close(h->conns[i], h->conns[i]->last_ts);
	h->misuse_at_unload = host_counters(h->host)->api_misuse;
	host_free(h->host);
	h->host = NULL;
	h->loaded = false;
}

int th_detect(struct th_host *h, const struct sonde_conn_info *ci, enum sonde_dir dir,
              const void *data, size_t len)
{
	struct sonde_chunk ch = {0};

	if (!h->loaded || !h->proto)
		return SONDE_ERR_INVAL;
	ch.struct_size = sizeof(ch);
	ch.dir = dir;
	ch.data = data;
	ch.len = len;
	ch.orig_len = len;
	return host_detect(h->host, h->proto, ci, &ch);
}

void th_conn_info_init(struct sonde_conn_info *ci, enum sonde_role role)
{
	memset(ci, 0, sizeof(*ci));
	ci->struct_size = sizeof(*ci);
	ci->pid = 4242;
	ci->conn_id = 1;
	ci->role = role;
	ci->family = 2; /* AF_INET */
	ci->local_port = 8080;
	ci->peer_port = 40000;
	snprintf(ci->local_addr, sizeof(ci->local_addr), "127.0.0.1");
	snprintf(ci->peer_addr, sizeof(ci->peer_addr), "127.0.0.2");
	ci->service_name = "svc";
	ci->exe_name = "svc";
}

static struct resource *resource_named(const char *service)
{
	struct resource *r = xcalloc(1, sizeof(*r));

	r->refs = 1;
	r->service_name = xstrdup(service);
	attr_set_str(&r->attrs, "service.name", service, strlen(service));
	return r;
}

struct th_conn *th_conn_open(struct th_host *h, const struct sonde_conn_info *ci)
{
	struct host_conn_desc d;
	struct th_conn *c;
	const char *svc;

	if (!h->loaded || !h->proto || !ci)
		return NULL;
	svc = ci->service_name ? ci->service_name : "svc";
	c = xcalloc(1, sizeof(*c));
	c->h = h;
	c->pid = ci->pid;
	c->service_name = xstrdup(svc);
	c->exe_name = xstrdup(ci->exe_name ? ci->exe_name : svc);
	h->conns = realloc(h->conns, (h->n_conns + 1) * sizeof(*h->conns));
	if (!h->conns)
		abort();
	h->conns[h->n_conns++] = c;
	memset(&d, 0, sizeof(d));
	d.info = *ci;
	d.info.service_name = c->service_name;
	d.info.exe_name = c->exe_name;
	d.res = resource_named(svc);
	d.svc = &service_named(h, svc)->cfg;
	c->hc = host_conn_new(h->host, &d);
	resource_unref(d.res);
	if (!c->hc || host_conn_assign(c->hc, h->proto) != SONDE_OK) {
		host_conn_close(c->hc, 0);
		c->hc = NULL;
		c->st = TC_CLOSED;
		return NULL;
	}
	return c;
}

void th_conn_pair(struct th_host *h, uint16_t cport, uint16_t sport, struct th_conn **client,
                  struct th_conn **server)
{
	struct sonde_conn_info ci;

	th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
	ci.local_port = cport;
	ci.peer_port = sport;
	snprintf(ci.local_addr, sizeof(ci.local_addr), "127.0.0.2");
	snprintf(ci.peer_addr, sizeof(ci.peer_addr), "127.0.0.1");
	*client = th_conn_open(h, &ci);
	th_conn_info_init(&ci, SONDE_ROLE_SERVER);
	ci.pid = 4243;
	ci.conn_id = 2;
	ci.local_port = sport;
	ci.peer_port = cport;
	*server = th_conn_open(h, &ci);
}

int th_conn_feed_chunk(struct th_conn *c, const struct sonde_chunk *ch)
{
	struct sonde_chunk copy = *ch;
	int rc;

	if (c->st == TC_GIVEN_UP)
		return SONDE_ERR_PROTO;
	if (c->st != TC_OPEN)
		return SONDE_ERR_INVAL;
	copy.struct_size = sizeof(copy);
	if (copy.orig_len < copy.len)
		copy.orig_len = copy.len;
	c->last_ts = copy.ts_unix_ns;
	rc = host_conn_data(c->hc, &copy);
	if (host_conn_state(c->hc) == HOST_CONN_IGNORED)
		c->st = TC_GIVEN_UP;
	return rc;
}

int th_conn_feed(struct th_conn *c, enum sonde_dir dir, uint64_t ts, const void *data, size_t len)
{
	struct sonde_chunk ch = {0};

	ch.dir = dir;
	ch.ts_unix_ns = ts;
	ch.data = data;
	ch.len = len;
	ch.orig_len = len;
	/* Positions count from the connection's first byte, per direction,
	 * as the capture does. */
	ch.pos = c->pos[dir == SONDE_DIR_EGRESS];
	c->pos[dir == SONDE_DIR_EGRESS] += len;
	return th_conn_feed_chunk(c, &ch);
}

int th_conn_feed_lossy(struct th_conn *c, enum sonde_dir dir, uint64_t ts, uint64_t lost,
                       const void *data, size_t len, size_t orig_len)
{
	struct sonde_chunk ch = {0};
	uint64_t *pos = &c->pos[dir == SONDE_DIR_EGRESS];

	ch.dir = dir;
	ch.ts_unix_ns = ts;
	ch.data = data;
	ch.len = len;
	ch.orig_len = orig_len > len ? orig_len : len;
	if (lost)
		ch.flags |= SONDE_CHUNK_GAP;
	if (ch.orig_len > len)
		ch.flags |= SONDE_CHUNK_TRUNCATED;
	*pos += lost;
	ch.pos = *pos;
	*pos += ch.orig_len;
	return th_conn_feed_chunk(c, &ch);
}

void th_conn_close(struct th_conn *c, uint64_t ts)
{
	if (!c || !c->hc)
		return;
	host_conn_close(c->hc, ts);
	c->hc = NULL;
	c->st = TC_CLOSED;
}

int th_conn_given_up(const struct th_conn *c)
{
	return c->st == TC_GIVEN_UP;
}

int th_conn_capture(struct th_conn *c, struct sonde_capture_policy *out)
{
	return c && c->hc && out ? host_conn_capture(c->hc, out) : 0;
}

/* --- runtime plugins ---------------------------------------------------------- */

void th_conn_set_fd(struct th_conn *c, uint32_t fd)
{
	c->fd = fd;
	c->has_fd = true;
}

void th_conn_set_tls(struct th_conn *c)
{
	if (c->hc)
		host_conn_set_tls(c->hc);
}

struct sonde_conn *th_conn_handle(struct th_conn *c)
{
	return c->hc;
}

int th_plugin_record(struct th_host *h, const void *rec, size_t len)
{
	return h->host ? host_record(h->host, rec, len) : 0;
}

void th_process_new(struct th_host *h, uint32_t pid, const char *exe_path)
{
	struct sonde_process_info pi = {.struct_size = sizeof(pi), .pid = pid,
	                                .exe_path = exe_path, .service_name = "svc"};

	if (h->host)
		host_process_new(h->host, &pi);
}

void th_process_gone(struct th_host *h, uint32_t pid)
{
	if (h->host)
		host_process_gone(h->host, pid);
}

uint64_t th_run_timers(struct th_host *h, uint64_t now_unix_ns)
{
	return h->host ? host_timers_run(h->host, now_unix_ns) : 0;
}

/* --- reading back ------------------------------------------------------------------ */

static void view_attr(struct th_attr *o, const struct attr *a)
{
	char buf[64];

	o->key = xstrdup(a->key);
	switch (a->type) {
	case ATTR_STR:
		o->type = TH_ATTR_STR;
		o->s = xstrdup(a->v.s);
		o->len = strlen(a->v.s);
		break;
	case ATTR_INT:
		o->type = TH_ATTR_INT;
		o->i = a->v.i;
		break;
	case ATTR_DOUBLE:
		o->type = TH_ATTR_DOUBLE;
		o->d = a->v.d;
		break;
	case ATTR_BOOL:
		o->type = TH_ATTR_BOOL;
		o->b = a->v.b;
		break;
	}
	(void)buf;
}

static struct th_span *view_of(const struct th_host *ch, size_t i)
{
	struct th_host *h = (struct th_host *)ch;
	struct th_entry *e = &h->spans[i];
	const struct span *s = e->s;
	struct th_span *v;

	if (!e->view)
		e->view = xcalloc(1, sizeof(*e->view));
	v = e->view;
	view_free(v);
	v->host = h;
	v->index = i;
	v->name = xstrdup(s->name);
	v->kind = (enum sonde_span_kind)s->kind;
	v->start_ns = s->start_unix_ns;
	v->end_ns = s->end_unix_ns;
	v->tid = s->tid;
	v->state = e->state;
	v->status = (enum sonde_status)s->status;
	v->status_desc = xstrdup(s->status_msg);
	hex_encode(s->trace_id, 16, v->trace_id);
	hex_encode(s->span_id, 8, v->span_id);
	v->parent_span_id[0] = 0;
	for (size_t k = 0; k < 8; k++)
		if (s->parent_span_id[k]) {
			hex_encode(s->parent_span_id, 8, v->parent_span_id);
			break;
		}
	if (s->remote_parent) {
		char trace[33], parent[17];

		hex_encode(s->trace_id, 16, trace);
		hex_encode(s->parent_span_id, 8, parent);
		if (asprintf(&v->traceparent, "00-%s-%s-%02x", trace, parent, s->trace_flags) < 0)
			abort();
	}
	v->n_attrs = s->attrs.n;
	v->attrs = xcalloc(s->attrs.n, sizeof(*v->attrs));
	for (size_t k = 0; k < s->attrs.n; k++)
		view_attr(&v->attrs[k], &s->attrs.a[k]);
	return v;
}

size_t th_n_spans(const struct th_host *h)
{
	return h->n_spans;
}

struct th_span *th_span(const struct th_host *h, size_t i)
{
	return i < h->n_spans ? view_of(h, i) : NULL;
}

size_t th_n_ended(const struct th_host *h)
{
	return h->n_ended;
}

struct th_span *th_ended(const struct th_host *h, size_t i)
{
	return i < h->n_ended ? view_of(h, h->ended[i]) : NULL;
}

size_t th_n_open(const struct th_host *h)
{
	return h->n_spans - h->n_ended - h->n_dropped;
}

size_t th_n_dropped(const struct th_host *h)
{
	return h->n_dropped;
}

size_t th_n_records(const struct th_host *h)
{
	return h->n_records;
}

const struct th_record *th_record(const struct th_host *h, size_t i)
{
	return i < h->n_records ? &h->records[i] : NULL;
}

size_t th_n_metrics(const struct th_host *h)
{
	refresh_metrics(h);
	return h->n_metrics;
}

struct th_metric *th_metric(const struct th_host *h, size_t i)
{
	refresh_metrics(h);
	return i < h->n_metrics ? h->metrics_v[i] : NULL;
}

struct th_metric *th_metric_by_name(const struct th_host *h, const char *name)
{
	refresh_metrics(h);
	for (size_t i = 0; name && i < h->n_metrics; i++)
		if (!strcmp(h->metrics_v[i]->name, name))
			return h->metrics_v[i];
	return NULL;
}

void th_conn_injected(struct th_conn *c, uint64_t pos, const uint8_t trace_id[16],
                      const uint8_t span_id[8], const uint8_t *parent_id)
{
	if (c && c->hc)
		host_conn_injected(c->hc, pos, trace_id, span_id, parent_id);
}

int th_conn_stream_context(struct th_conn *c, uint64_t stream, uint64_t key)
{
	const struct sonde_host_api *api;

	if (!c || !c->hc)
		return SONDE_ERR_INVAL;
	api = th_api(c->h);
	return api->conn_stream_context_set(c->hc, stream, key);
}

uint64_t th_n_links(const struct th_host *h)
{
	return h->host ? host_counters(h->host)->links : 0;
}

size_t th_misuse(const struct th_host *h)
{
	return h->host ? host_counters(h->host)->api_misuse : h->misuse_at_unload;
}

size_t th_n_logs(const struct th_host *h, enum sonde_log_level lvl)
{
	return (unsigned)lvl < 4 ? h->logs[lvl] : 0;
}

struct th_span *th_span_find(const struct th_host *h, const char *name, enum sonde_span_kind kind,
                             size_t nth)
{
	for (size_t i = 0; name && i < h->n_spans; i++) {
		struct span *s = h->spans[i].s;

		if ((enum sonde_span_kind)s->kind == kind && s->name && !strcmp(s->name, name) &&
		    nth-- == 0)
			return view_of(h, i);
	}
	return NULL;
}

int th_span_child_of(const struct th_span *child, const struct th_span *parent)
{
	return child && parent && !strcmp(child->trace_id, parent->trace_id) &&
	       !strcmp(child->parent_span_id, parent->span_id);
}

const struct th_attr *th_span_attr(const struct th_span *s, const char *key)
{
	for (size_t i = 0; s && key && i < s->n_attrs; i++)
		if (!strcmp(s->attrs[i].key, key))
			return &s->attrs[i];
	return NULL;
}

const char *th_span_str(const struct th_span *s, const char *key)
{
	const struct th_attr *a = th_span_attr(s, key);

	return a && a->type == TH_ATTR_STR ? a->s : NULL;
}

int th_span_int(const struct th_span *s, const char *key, int64_t *out)
{
	const struct th_attr *a = th_span_attr(s, key);

	if (!a || a->type != TH_ATTR_INT)
		return -1;
	*out = a->i;
	return 0;
}

const char *th_record_val(const struct th_record *r, const char *key)
{
	for (size_t i = 0; r && key && i < r->m->n_keys; i++)
		if (!strcmp(r->m->keys[i], key))
			return r->vals[i];
	return NULL;
}
