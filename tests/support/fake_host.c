/*
 * fake_host.c - the recording fake of struct sonde_host_api (see
 * fake_host.h).
 *
 * The one idea: the opaque handles the plugin gets are pointers to this
 * file's own records (struct fake_host for the plugin handle, fake_conn for
 * the connection, fake_span, fake_metric), so every callback finds its way
 * back to the host without globals, and since records live until
 * fake_host_free() a stale handle is detected by its state, not by a crash.
 *
 * Misuse counted by fake_host_misuse(): any call on a span that was already
 * ended or dropped; an attribute with a NULL key or value; span_start on a
 * connection that is closed; span_add_metric with a NULL metric; more than
 * FAKE_MAX_SPAN_METRICS metrics on one span. NULL span handles are accepted
 * silently, like the core does (span_start may return NULL).
 */
#include "fake_host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum fake_conn_state { FC_OPEN = 0, FC_CLOSED, FC_GIVEN_UP };

struct fake_conn {
	struct fake_host *host;
	struct sonde_conn_info info;
	char *service_name;
	char *exe_name;
	void *state;
	enum fake_conn_state st;
	size_t open_spans;
	uint64_t last_ts;
};

struct fake_config {
	char *service;       /* NULL: global */
	char *key;
	char **vals;
	size_t n;
};

struct fake_host {
	struct sonde_host_api api;
	const struct sonde_plugin *desc;
	const struct sonde_protocol *proto;
	void *plugin_state;
	int loaded;

	struct fake_span **spans;
	size_t n_spans, cap_spans;
	struct fake_span **ended;
	size_t n_ended, cap_ended;
	struct fake_record *records;
	size_t n_records, cap_records;
	struct fake_metric **metrics;
	size_t n_metrics, cap_metrics;
	struct fake_conn **conns;
	size_t n_conns, cap_conns;
	struct fake_config *config;
	size_t n_config;

	size_t misuse;
	size_t n_dropped;
	size_t logs[4];
	size_t span_limit;
	int verbose;
	uint32_t cur_tid;
};

/* --- small helpers ------------------------------------------------------- */

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n, sz);

	if (!p) {
		fprintf(stderr, "fake_host: out of memory\n");
		abort();
	}
	return p;
}

static char *xstrndup(const char *s, size_t n)
{
	char *d = xcalloc(1, n + 1);

	memcpy(d, s, n);
	return d;
}

static char *xstrdup(const char *s)
{
	return s ? xstrndup(s, strlen(s)) : NULL;
}

/* Append p to a growing pointer array. */
static void push_ptr(void ***arr, size_t *n, size_t *cap, void *p)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		void **na = realloc(*arr, nc * sizeof(**arr));
		if (!na) {
			fprintf(stderr, "fake_host: out of memory\n");
			abort();
		}
		*arr = na;
		*cap = nc;
	}
	(*arr)[(*n)++] = p;
}

static struct fake_host *host_of(struct sonde_plugin_handle *self)
{
	return (struct fake_host *)self;
}

/* A span handle that may still be used, or NULL (counting misuse). */
static struct fake_span *live_span(struct sonde_span *sp)
{
	struct fake_span *s = (struct fake_span *)sp;

	if (!s)
		return NULL;
	if (s->state != FAKE_SPAN_OPEN) {
		s->host->misuse++;
		return NULL;
	}
	return s;
}

/* --- host API: log, strerror, config, conn_info ------------------------ */

static void h_log(struct sonde_plugin_handle *self, enum sonde_log_level lvl,
                  const char *fmt, ...)
{
	struct fake_host *h = host_of(self);
	va_list ap;

	if ((unsigned)lvl < 4)
		h->logs[lvl]++;
	if (!h->verbose)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "fake_host log[%d]: ", (int)lvl);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static const char *h_strerror(int err)
{
	switch (err) {
	case SONDE_OK: return "ok";
	case SONDE_ERR_NOMEM: return "out of memory";
	case SONDE_ERR_INVAL: return "invalid argument";
	case SONDE_ERR_PROTO: return "protocol error";
	case SONDE_ERR_AGAIN: return "need more data";
	case SONDE_ERR_UNSUPPORTED: return "unsupported";
	case SONDE_ERR_ABI: return "ABI mismatch";
	case SONDE_ERR_NOENT: return "not found";
	case SONDE_ERR_IO: return "I/O error";
	case SONDE_ERR_LIMIT: return "limit reached";
	}
	return "unknown error";
}

static const struct fake_config *config_lookup(const struct fake_host *h, const char *service,
                                               const char *key)
{
	for (size_t i = 0; i < h->n_config; i++) {
		const struct fake_config *c = &h->config[i];
		if (strcmp(c->key, key))
			continue;
		if ((!service && !c->service) || (service && c->service && !strcmp(service, c->service)))
			return c;
	}
	return NULL;
}

static size_t h_config_get(struct sonde_plugin_handle *self, struct sonde_conn *conn,
                           const char *key, const char *const **values)
{
	struct fake_host *h = host_of(self);
	struct fake_conn *c = (struct fake_conn *)conn;
	const struct fake_config *cfg = NULL;

	if (!key || !values) {
		h->misuse++;
		return 0;
	}
	if (c && c->service_name)
		cfg = config_lookup(h, c->service_name, key);
	if (!cfg)
		cfg = config_lookup(h, NULL, key);
	if (!cfg) {
		*values = NULL;
		return 0;
	}
	*values = (const char *const *)cfg->vals;
	return cfg->n;
}

static const struct sonde_conn_info *h_conn_info(struct sonde_conn *conn)
{
	struct fake_conn *c = (struct fake_conn *)conn;

	return c ? &c->info : NULL;
}

/* --- host API: spans ------------------------------------------------------ */

static struct sonde_span *h_span_start(struct sonde_conn *conn, const char *name,
                                       enum sonde_span_kind kind, uint64_t start_unix_ns)
{
	struct fake_conn *c = (struct fake_conn *)conn;
	struct fake_host *h;
	struct fake_span *s;

	if (!c)
		return NULL;
	h = c->host;
	if (c->st != FC_OPEN) {
		h->misuse++;
		return NULL;
	}
	if (h->span_limit && c->open_spans >= h->span_limit)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->host = h;
	s->conn = c;
	s->index = h->n_spans;
	s->name = xstrdup(name ? name : "");
	s->kind = kind;
	s->start_ns = start_unix_ns;
	s->end_ns = start_unix_ns;
	s->tid = h->cur_tid;
	push_ptr((void ***)&h->spans, &h->n_spans, &h->cap_spans, s);
	c->open_spans++;
	return (struct sonde_span *)s;
}

static void h_span_set_name(struct sonde_span *sp, const char *name)
{
	struct fake_span *s = live_span(sp);

	if (!s)
		return;
	if (!name) {
		s->host->misuse++;
		return;
	}
	free(s->name);
	s->name = xstrdup(name);
}

/* The attribute slot for key: existing (cleared) or new. */
static struct fake_attr *attr_slot(struct fake_span *s, const char *key)
{
	struct fake_attr *a;

	for (size_t i = 0; i < s->n_attrs; i++) {
		if (!strcmp(s->attrs[i].key, key)) {
			a = &s->attrs[i];
			free(a->s);
			a->s = NULL;
			return a;
		}
	}
	a = realloc(s->attrs, (s->n_attrs + 1) * sizeof(*a));
	if (!a) {
		fprintf(stderr, "fake_host: out of memory\n");
		abort();
	}
	s->attrs = a;
	a = &s->attrs[s->n_attrs++];
	memset(a, 0, sizeof(*a));
	a->key = xstrdup(key);
	return a;
}

static struct fake_span *attr_target(struct sonde_span *sp, const char *key)
{
	struct fake_span *s = live_span(sp);

	if (s && !key) {
		s->host->misuse++;
		return NULL;
	}
	return s;
}

static void h_attr_str(struct sonde_span *sp, const char *key, const char *val, size_t len)
{
	struct fake_span *s = attr_target(sp, key);
	struct fake_attr *a;

	if (!s)
		return;
	if (!val) {
		s->host->misuse++;
		return;
	}
	a = attr_slot(s, key);
	a->type = FAKE_ATTR_STR;
	a->s = xstrndup(val, len);
	a->len = len;
}

static void h_attr_int(struct sonde_span *sp, const char *key, int64_t v)
{
	struct fake_span *s = attr_target(sp, key);
	struct fake_attr *a;

	if (!s)
		return;
	a = attr_slot(s, key);
	a->type = FAKE_ATTR_INT;
	a->i = v;
}

static void h_attr_double(struct sonde_span *sp, const char *key, double v)
{
	struct fake_span *s = attr_target(sp, key);
	struct fake_attr *a;

	if (!s)
		return;
	a = attr_slot(s, key);
	a->type = FAKE_ATTR_DOUBLE;
	a->d = v;
}

static void h_attr_bool(struct sonde_span *sp, const char *key, int v)
{
	struct fake_span *s = attr_target(sp, key);
	struct fake_attr *a;

	if (!s)
		return;
	a = attr_slot(s, key);
	a->type = FAKE_ATTR_BOOL;
	a->b = v != 0;
}

static int is_lower_hex(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

static int all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != '0')
			return 0;
	return 1;
}

/* W3C trace-context: 2-32-16-2 lower-case hex, version != ff, ids != 0;
 * version 00 has exactly 55 characters. */
static int traceparent_ok(const char *v, size_t len)
{
	if (len < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
		return 0;
	if (len > 55 && v[55] != '-')
		return 0;
	if (!is_lower_hex(v, 2) || !is_lower_hex(v + 3, 32) || !is_lower_hex(v + 36, 16) ||
	    !is_lower_hex(v + 53, 2))
		return 0;
	if (!memcmp(v, "ff", 2) || (!memcmp(v, "00", 2) && len != 55))
		return 0;
	return !all_zero(v + 3, 32) && !all_zero(v + 36, 16);
}

static int h_set_traceparent(struct sonde_span *sp, const char *val, size_t len)
{
	struct fake_span *s = live_span(sp);

	if (!s || !val)
		return SONDE_ERR_INVAL;
	if (!traceparent_ok(val, len))
		return SONDE_ERR_INVAL;
	free(s->traceparent);
	s->traceparent = xstrndup(val, len);
	return SONDE_OK;
}

static void h_set_status(struct sonde_span *sp, enum sonde_status st, const char *desc)
{
	struct fake_span *s = live_span(sp);

	if (!s)
		return;
	s->status = st;
	free(s->status_desc);
	s->status_desc = desc ? xstrdup(desc) : NULL;
}

static void h_add_metric(struct sonde_span *sp, struct sonde_metric *m)
{
	struct fake_span *s = live_span(sp);
	struct fake_metric *fm = (struct fake_metric *)m;

	if (!s)
		return;
	if (!fm || s->n_metrics >= FAKE_MAX_SPAN_METRICS) {
		s->host->misuse++;
		return;
	}
	for (size_t i = 0; i < s->n_metrics; i++)
		if (s->metrics[i] == fm)
			return;
	s->metrics[s->n_metrics++] = fm;
}

static char *attr_text(const struct fake_attr *a)
{
	char buf[64];

	if (!a)
		return NULL;
	switch (a->type) {
	case FAKE_ATTR_STR: return xstrdup(a->s);
	case FAKE_ATTR_INT: snprintf(buf, sizeof(buf), "%lld", (long long)a->i); break;
	case FAKE_ATTR_DOUBLE: snprintf(buf, sizeof(buf), "%g", a->d); break;
	case FAKE_ATTR_BOOL: snprintf(buf, sizeof(buf), "%s", a->b ? "true" : "false"); break;
	}
	return xstrdup(buf);
}

static void add_record(struct fake_host *h, struct fake_metric *m, double v, char **vals,
                       struct fake_span *span)
{
	if (h->n_records == h->cap_records) {
		size_t nc = h->cap_records ? h->cap_records * 2 : 16;
		struct fake_record *nr = realloc(h->records, nc * sizeof(*nr));
		if (!nr) {
			fprintf(stderr, "fake_host: out of memory\n");
			abort();
		}
		h->records = nr;
		h->cap_records = nc;
	}
	h->records[h->n_records++] = (struct fake_record){ m, v, vals, span };
}

static void close_span(struct fake_span *s, enum fake_span_state st)
{
	s->state = st;
	if (s->conn->open_spans)
		s->conn->open_spans--;
}

static void h_span_end(struct sonde_span *sp, uint64_t end_unix_ns)
{
	struct fake_span *s = live_span(sp);
	struct fake_host *h;

	if (!s)
		return;
	h = s->host;
	s->end_ns = end_unix_ns < s->start_ns ? s->start_ns : end_unix_ns;
	close_span(s, FAKE_SPAN_ENDED);
	push_ptr((void ***)&h->ended, &h->n_ended, &h->cap_ended, s);
	for (size_t i = 0; i < s->n_metrics; i++) {
		struct fake_metric *m = s->metrics[i];
		char **vals = xcalloc(m->n_keys + 1, sizeof(char *));
		for (size_t k = 0; k < m->n_keys; k++)
			vals[k] = attr_text(fake_span_attr(s, m->keys[k]));
		add_record(h, m, (double)(s->end_ns - s->start_ns) / 1e9, vals, s);
	}
}

static void h_span_drop(struct sonde_span *sp)
{
	struct fake_span *s = live_span(sp);

	if (!s)
		return;
	close_span(s, FAKE_SPAN_DROPPED);
	s->host->n_dropped++;
}

/* --- host API: metrics ------------------------------------------------------ */

static struct sonde_metric *h_hist_register(struct sonde_plugin_handle *self,
                                            const struct sonde_histogram_desc *d)
{
	struct fake_host *h = host_of(self);
	struct fake_metric *m;

	if (!d || d->struct_size < sizeof(*d) || !d->name || d->n_attr_keys > 16 ||
	    (d->n_bounds && !d->bounds) || (d->n_attr_keys && !d->attr_keys)) {
		h->misuse++;
		return NULL;
	}
	for (size_t i = 1; i < d->n_bounds; i++) {
		if (!(d->bounds[i - 1] < d->bounds[i])) {
			h->misuse++;
			return NULL;
		}
	}
	m = fake_host_metric_by_name(h, d->name);
	if (m)
		return (struct sonde_metric *)m;
	m = xcalloc(1, sizeof(*m));
	m->host = h;
	m->name = xstrdup(d->name);
	m->unit = xstrdup(d->unit ? d->unit : "");
	m->n_bounds = d->n_bounds;
	m->bounds = xcalloc(d->n_bounds + 1, sizeof(double));
	memcpy(m->bounds, d->bounds, d->n_bounds * sizeof(double));
	m->n_keys = d->n_attr_keys;
	m->keys = xcalloc(d->n_attr_keys + 1, sizeof(char *));
	for (size_t i = 0; i < d->n_attr_keys; i++)
		m->keys[i] = xstrdup(d->attr_keys[i]);
	push_ptr((void ***)&h->metrics, &h->n_metrics, &h->cap_metrics, m);
	return (struct sonde_metric *)m;
}

static void h_hist_record(struct sonde_metric *mm, struct sonde_conn *conn, double value,
                          const char *const *attr_values)
{
	struct fake_metric *m = (struct fake_metric *)mm;
	char **vals;

	if (!m)
		return;
	vals = xcalloc(m->n_keys + 1, sizeof(char *));
	for (size_t k = 0; attr_values && k < m->n_keys; k++)
		vals[k] = xstrdup(attr_values[k]);
	add_record(m->host, m, value, vals, NULL);
}

/* --- lifetime ---------------------------------------------------------------- */

struct fake_host *fake_host_new(void)
{
	struct fake_host *h = xcalloc(1, sizeof(*h));
	struct sonde_host_api *a = &h->api;

	a->struct_size = sizeof(*a);
	a->abi_major = SONDE_ABI_MAJOR;
	a->abi_minor = SONDE_ABI_MINOR;
	a->log = h_log;
	a->strerror = h_strerror;
	a->config_get = h_config_get;
	a->conn_info = h_conn_info;
	a->span_start = h_span_start;
	a->span_set_name = h_span_set_name;
	a->span_attr_str = h_attr_str;
	a->span_attr_int = h_attr_int;
	a->span_attr_double = h_attr_double;
	a->span_attr_bool = h_attr_bool;
	a->span_set_traceparent = h_set_traceparent;
	a->span_set_status = h_set_status;
	a->span_add_metric = h_add_metric;
	a->span_end = h_span_end;
	a->span_drop = h_span_drop;
	a->histogram_register = h_hist_register;
	a->histogram_record = h_hist_record;
	return h;
}

static void free_span(struct fake_span *s)
{
	for (size_t i = 0; i < s->n_attrs; i++) {
		free(s->attrs[i].key);
		free(s->attrs[i].s);
	}
	free(s->attrs);
	free(s->name);
	free(s->status_desc);
	free(s->traceparent);
	free(s);
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void fake_host_free(struct fake_host *h)
{
	if (!h)
		return;
	fake_host_unload(h);
	for (size_t i = 0; i < h->n_spans; i++)
		free_span(h->spans[i]);
	free(h->spans);
	free(h->ended);
	for (size_t i = 0; i < h->n_records; i++)
		free_strv(h->records[i].vals, h->records[i].m->n_keys);
	free(h->records);
	for (size_t i = 0; i < h->n_metrics; i++) {
		struct fake_metric *m = h->metrics[i];
		free(m->name);
		free(m->unit);
		free(m->bounds);
		free_strv(m->keys, m->n_keys);
		free(m);
	}
	free(h->metrics);
	for (size_t i = 0; i < h->n_conns; i++) {
		free(h->conns[i]->service_name);
		free(h->conns[i]->exe_name);
		free(h->conns[i]);
	}
	free(h->conns);
	for (size_t i = 0; i < h->n_config; i++) {
		free(h->config[i].service);
		free(h->config[i].key);
		free_strv(h->config[i].vals, h->config[i].n);
	}
	free(h->config);
	free(h);
}

const struct sonde_host_api *fake_host_api(struct fake_host *h)
{
	return &h->api;
}

struct sonde_plugin_handle *fake_host_self(struct fake_host *h)
{
	return (struct sonde_plugin_handle *)h;
}

int fake_host_set_config(struct fake_host *h, const char *service, const char *key,
                         const char *const *vals, size_t n)
{
	struct fake_config *c = (struct fake_config *)config_lookup(h, service, key);

	if (!c) {
		struct fake_config *nc = realloc(h->config, (h->n_config + 1) * sizeof(*nc));
		if (!nc)
			return -1;
		h->config = nc;
		c = &h->config[h->n_config++];
		c->service = xstrdup(service);
		c->key = xstrdup(key);
	} else {
		free_strv(c->vals, c->n);
	}
	c->vals = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		c->vals[i] = xstrdup(vals[i]);
	c->n = n;
	return 0;
}

void fake_host_set_span_limit(struct fake_host *h, size_t max_open_per_conn)
{
	h->span_limit = max_open_per_conn;
}

void fake_host_set_verbose(struct fake_host *h, int verbose)
{
	h->verbose = verbose;
}

/* --- driving a plugin -------------------------------------------------------- */

int fake_host_load(struct fake_host *h, const struct sonde_plugin *desc, const char *proto)
{
	int rc;

	if (!desc || h->loaded)
		return SONDE_ERR_INVAL;
	if (desc->abi_major != SONDE_ABI_MAJOR || desc->abi_minor > SONDE_ABI_MINOR ||
	    desc->struct_size < offsetof(struct sonde_plugin, process_gone) +
	                            sizeof(desc->process_gone))
		return SONDE_ERR_ABI;
	h->proto = NULL;
	for (size_t i = 0; desc->protocols && desc->protocols[i]; i++) {
		if (!proto || !strcmp(desc->protocols[i]->name, proto)) {
			h->proto = desc->protocols[i];
			break;
		}
	}
	if (proto && !h->proto)
		return SONDE_ERR_NOENT;
	h->desc = desc;
	h->plugin_state = NULL;
	if (desc->init) {
		rc = desc->init(&h->api, fake_host_self(h), &h->plugin_state);
		if (rc)
			return rc;
	}
	h->loaded = 1;
	return SONDE_OK;
}

void fake_host_unload(struct fake_host *h)
{
	if (!h->loaded)
		return;
	for (size_t i = 0; i < h->n_conns; i++)
		fake_conn_close(h->conns[i], h->conns[i]->last_ts);
	if (h->desc->fini)
		h->desc->fini(h->plugin_state);
	h->loaded = 0;
}

int fake_host_detect(struct fake_host *h, const struct sonde_conn_info *ci,
                     enum sonde_dir dir, const void *data, size_t len)
{
	struct sonde_chunk ch = { 0 };

	if (!h->loaded || !h->proto)
		return SONDE_ERR_INVAL;
	ch.struct_size = sizeof(ch);
	ch.dir = dir;
	ch.data = data;
	ch.len = len;
	ch.orig_len = len;
	return h->proto->detect(h->plugin_state, ci, &ch);
}

void fake_conn_info_init(struct sonde_conn_info *ci, enum sonde_role role)
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

struct fake_conn *fake_conn_open(struct fake_host *h, const struct sonde_conn_info *ci)
{
	struct fake_conn *c;
	int rc;

	if (!h->loaded || !h->proto || !ci)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->host = h;
	c->info = *ci;
	c->info.struct_size = sizeof(c->info);
	c->service_name = xstrdup(ci->service_name);
	c->exe_name = xstrdup(ci->exe_name);
	c->info.service_name = c->service_name;
	c->info.exe_name = c->exe_name;
	push_ptr((void ***)&h->conns, &h->n_conns, &h->cap_conns, c);
	rc = h->proto->conn_open(h->plugin_state, (struct sonde_conn *)c, &c->info, &c->state);
	if (rc) {
		c->st = FC_CLOSED;
		return NULL;
	}
	return c;
}

int fake_conn_feed_chunk(struct fake_conn *c, const struct sonde_chunk *ch)
{
	struct fake_host *h = c->host;
	struct sonde_chunk copy = *ch;
	int rc;

	if (c->st == FC_GIVEN_UP)
		return SONDE_ERR_PROTO;
	if (c->st != FC_OPEN)
		return SONDE_ERR_INVAL;
	copy.struct_size = sizeof(copy);
	if (copy.orig_len < copy.len)
		copy.orig_len = copy.len;
	c->last_ts = copy.ts_unix_ns;
	h->cur_tid = copy.tid;
	rc = h->proto->conn_data(c->state, (struct sonde_conn *)c, &copy);
	h->cur_tid = 0;
	if (rc == SONDE_ERR_PROTO) {
		h->proto->conn_close(c->state, (struct sonde_conn *)c, copy.ts_unix_ns);
		c->state = NULL;
		c->st = FC_GIVEN_UP;
	}
	return rc;
}

int fake_conn_feed(struct fake_conn *c, enum sonde_dir dir, uint64_t ts, const void *data,
                   size_t len)
{
	struct sonde_chunk ch = { 0 };

	ch.dir = dir;
	ch.ts_unix_ns = ts;
	ch.data = data;
	ch.len = len;
	ch.orig_len = len;
	ch.tid = 1000 + (uint32_t)dir;
	return fake_conn_feed_chunk(c, &ch);
}

void fake_conn_close(struct fake_conn *c, uint64_t ts)
{
	if (!c || c->st != FC_OPEN)
		return;
	c->host->proto->conn_close(c->state, (struct sonde_conn *)c, ts);
	c->state = NULL;
	c->st = FC_CLOSED;
}

int fake_conn_given_up(const struct fake_conn *c)
{
	return c->st == FC_GIVEN_UP;
}

/* --- reading back ------------------------------------------------------------ */

size_t fake_host_n_spans(const struct fake_host *h)
{
	return h->n_spans;
}

struct fake_span *fake_host_span(const struct fake_host *h, size_t i)
{
	return i < h->n_spans ? h->spans[i] : NULL;
}

size_t fake_host_n_ended(const struct fake_host *h)
{
	return h->n_ended;
}

struct fake_span *fake_host_ended(const struct fake_host *h, size_t i)
{
	return i < h->n_ended ? h->ended[i] : NULL;
}

size_t fake_host_n_open(const struct fake_host *h)
{
	size_t n = 0;

	for (size_t i = 0; i < h->n_spans; i++)
		n += h->spans[i]->state == FAKE_SPAN_OPEN;
	return n;
}

size_t fake_host_n_dropped(const struct fake_host *h)
{
	return h->n_dropped;
}

size_t fake_host_n_records(const struct fake_host *h)
{
	return h->n_records;
}

const struct fake_record *fake_host_record(const struct fake_host *h, size_t i)
{
	return i < h->n_records ? &h->records[i] : NULL;
}

size_t fake_host_n_metrics(const struct fake_host *h)
{
	return h->n_metrics;
}

struct fake_metric *fake_host_metric(const struct fake_host *h, size_t i)
{
	return i < h->n_metrics ? h->metrics[i] : NULL;
}

struct fake_metric *fake_host_metric_by_name(const struct fake_host *h, const char *name)
{
	for (size_t i = 0; i < h->n_metrics; i++)
		if (!strcmp(h->metrics[i]->name, name))
			return h->metrics[i];
	return NULL;
}

size_t fake_host_misuse(const struct fake_host *h)
{
	return h->misuse;
}

size_t fake_host_n_logs(const struct fake_host *h, enum sonde_log_level lvl)
{
	return (unsigned)lvl < 4 ? h->logs[lvl] : 0;
}

const struct fake_attr *fake_span_attr(const struct fake_span *s, const char *key)
{
	for (size_t i = 0; s && i < s->n_attrs; i++)
		if (!strcmp(s->attrs[i].key, key))
			return &s->attrs[i];
	return NULL;
}

const char *fake_span_str(const struct fake_span *s, const char *key)
{
	const struct fake_attr *a = fake_span_attr(s, key);

	return a && a->type == FAKE_ATTR_STR ? a->s : NULL;
}

int fake_span_int(const struct fake_span *s, const char *key, int64_t *out)
{
	const struct fake_attr *a = fake_span_attr(s, key);

	if (!a || a->type != FAKE_ATTR_INT)
		return -1;
	*out = a->i;
	return 0;
}

const char *fake_record_val(const struct fake_record *r, const char *key)
{
	for (size_t i = 0; i < r->m->n_keys; i++)
		if (!strcmp(r->m->keys[i], key))
			return r->vals[i];
	return NULL;
}
