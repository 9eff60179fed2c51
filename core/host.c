/*
 * host.c - the host side of the plugin SDK: the function table plugins call,
 * and the span builder behind it.
 *
 * The one idea: the host, not the plugin, decides where a span sits in a
 * trace. A SERVER span starts a trace (or continues an incoming
 * traceparent) and becomes "active" on the thread that read its request;
 * a CLIENT span started on a thread with an active server span becomes its
 * child. Plugins only say what they saw and when.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "metrics.h"

#define MAX_OPEN_SPANS_PER_CONN 1024

struct sonde_metric {
	struct sonde_metric *next;
	struct metric_hist *h;
	struct sonde_plugin_handle *owner;
	char *name;
	char **keys;
	size_t n_keys;
};

struct sonde_span {
	struct span *s;
	struct sonde_conn *conn;
	struct sonde_span *prev, *next;   /* the connection's open spans */
	struct sonde_metric *metrics[8];
	unsigned n_metrics;
	uint32_t tid;
	bool active;                      /* registered in agent->active */
};

static struct agent *g_agent;
static struct sonde_metric *g_metrics;
static uint64_t rng_state;

static uint64_t rng_next(void)
{
	/* splitmix64, seeded from getrandom(): ids need uniqueness, not secrecy */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rand_bytes(uint8_t *out, size_t n)
{
	while (n) {
		uint64_t v = rng_next();
		size_t k = n < 8 ? n : 8;
		memcpy(out, &v, k);
		out += k;
		n -= k;
	}
}

static int all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

const char *sonde_strerror(int err)
{
	switch (err) {
	case SONDE_OK: return "success";
	case SONDE_ERR_NOMEM: return "out of memory";
	case SONDE_ERR_INVAL: return "invalid argument";
	case SONDE_ERR_PROTO: return "protocol error";
	case SONDE_ERR_AGAIN: return "need more data";
	case SONDE_ERR_UNSUPPORTED: return "unsupported";
	case SONDE_ERR_ABI: return "ABI mismatch";
	case SONDE_ERR_NOENT: return "not found";
	case SONDE_ERR_IO: return "I/O error";
	case SONDE_ERR_LIMIT: return "limit reached";
	default: return "unknown error";
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* W3C: lowercase only */
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int traceparent_parse(const char *s, size_t len, uint8_t trace_id[16], uint8_t span_id[8],
                      uint8_t *flags)
{
	uint8_t ver;

	while (len && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
		return -1;
	if (unhex(s, &ver, 1) || ver == 0xff)
		return -1;
	if (ver == 0 && len != 55)
		return -1;
	if (ver != 0 && len > 55 && s[55] != '-')
		return -1;
	if (unhex(s + 3, trace_id, 16) || unhex(s + 36, span_id, 8) || unhex(s + 53, flags, 1))
		return -1;
	if (all_zero(trace_id, 16) || all_zero(span_id, 8))
		return -1;
	return 0;
}

static void h_log(struct sonde_plugin_handle *self, enum sonde_log_level lvl, const char *fmt, ...)
{
	static const char *names[] = {"error", "warn", "info", "debug"};
	va_list ap;

	if (lvl > SONDE_LOG_INFO && (!g_agent || g_agent->verbose < 2))
		return;
	if (lvl == SONDE_LOG_INFO && (!g_agent || g_agent->verbose < 1))
		return;
	fprintf(stderr, "sonde: [%s] %s: ", self && self->desc ? self->desc->name : "plugin",
	        names[lvl <= SONDE_LOG_DEBUG ? lvl : SONDE_LOG_DEBUG]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static size_t h_config_get(struct sonde_plugin_handle *self, struct sonde_conn *conn,
                           const char *key, const char *const **values)
{
	const struct service_cfg *svc = NULL;
	const struct kv *kv;

	*values = NULL;
	if (!g_agent || !self || !self->desc || !key)
		return 0;
	if (conn && conn->proc && conn->proc->svc)
		svc = conn->proc->svc->cfg;
	/* Precedence: services[].plugins.<name>.<key>, then the first-class
	 * services[].routes (for key "routes"), then plugins.<name>.<key>. */
	kv = config_plugin_get(g_agent->cfg, svc, self->desc->name, key);
	bool from_service = kv && kv != config_plugin_get(g_agent->cfg, NULL, self->desc->name, key);
	if (!from_service && svc && svc->n_routes && !strcmp(key, "routes")) {
		*values = (const char *const *)svc->routes;
		return svc->n_routes;
	}
	if (!kv)
		return 0;
	*values = (const char *const *)kv->values;
	return kv->n_values;
}

static const struct sonde_conn_info *h_conn_info(struct sonde_conn *conn)
{
	return conn ? &conn->info : NULL;
}

/* A connection's open spans: a list headed by conn->spans. */
static void list_add(struct sonde_span *sp)
{
	struct sonde_span *head = sp->conn->spans;

	sp->prev = NULL;
	sp->next = head;
	if (head)
		head->prev = sp;
	sp->conn->spans = sp;
	sp->conn->open_spans++;
}

static void list_del(struct sonde_span *sp)
{
	if (sp->prev)
		sp->prev->next = sp->next;
	else
		sp->conn->spans = sp->next;
	if (sp->next)
		sp->next->prev = sp->prev;
	sp->conn->open_spans--;
}

static struct sonde_span *h_span_start(struct sonde_conn *conn, const char *name,
                                       enum sonde_span_kind kind, uint64_t start_unix_ns)
{
	struct sonde_span *sp;
	struct span *s;

	if (!conn || !g_agent || conn->open_spans >= MAX_OPEN_SPANS_PER_CONN) {
		if (g_agent)
			g_agent->n.spans_dropped++;
		return NULL;
	}
	sp = calloc(1, sizeof(*sp));
	s = calloc(1, sizeof(*s));
	if (!sp || !s)
		goto fail;
	s->refs = 1;
	s->name = strdup(name ? name : "");
	if (!s->name)
		goto fail;
	s->kind = kind;
	s->start_unix_ns = start_unix_ns;
	s->end_unix_ns = start_unix_ns;
	s->trace_flags = 1; /* sampled: sonde exports everything it sees */
	s->res = conn->proc ? resource_ref(conn->proc->res) : NULL;
	if (conn->owner)
		snprintf(s->scope, sizeof(s->scope), "%s", conn->owner->plugin->desc->name);
	rand_bytes(s->span_id, 8);
	sp->s = s;
	sp->conn = conn;
	sp->tid = g_agent->cur_tid;

	struct sonde_span *parent = NULL;
	if (kind == SONDE_SPAN_CLIENT || kind == SONDE_SPAN_PRODUCER || kind == SONDE_SPAN_INTERNAL) {
		parent = hmap_get(&g_agent->active, sp->tid);
		if (parent && parent->conn == conn)
			parent = NULL;
	}
	if (parent) {
		memcpy(s->trace_id, parent->s->trace_id, 16);
		memcpy(s->parent_span_id, parent->s->span_id, 8);
		s->trace_flags = parent->s->trace_flags;
	} else {
		rand_bytes(s->trace_id, 16);
	}
	if ((kind == SONDE_SPAN_SERVER || kind == SONDE_SPAN_CONSUMER) && sp->tid) {
		hmap_put(&g_agent->active, sp->tid, sp);
		sp->active = true;
	}
	list_add(sp);
	return sp;
fail:
	if (s)
		free(s->name);
	free(s);
	free(sp);
	g_agent->n.spans_dropped++;
	return NULL;
}

static void h_span_set_name(struct sonde_span *sp, const char *name)
{
	char *n;

	if (!sp || !name || !(n = strdup(name)))
		return;
	free(sp->s->name);
	sp->s->name = n;
}

static void h_attr_str(struct sonde_span *sp, const char *key, const char *val, size_t len)
{
	if (sp && key && val)
		attr_set_str(&sp->s->attrs, key, val, len);
}

static void h_attr_int(struct sonde_span *sp, const char *key, int64_t v)
{
	if (sp && key)
		attr_set_int(&sp->s->attrs, key, v);
}

static void h_attr_double(struct sonde_span *sp, const char *key, double v)
{
	if (sp && key)
		attr_set_double(&sp->s->attrs, key, v);
}

static void h_attr_bool(struct sonde_span *sp, const char *key, int v)
{
	if (sp && key)
		attr_set_bool(&sp->s->attrs, key, v != 0);
}

static int h_set_traceparent(struct sonde_span *sp, const char *val, size_t len)
{
	uint8_t tid[16], sid[8], flags;

	if (!sp || !val || traceparent_parse(val, len, tid, sid, &flags))
		return SONDE_ERR_INVAL;
	memcpy(sp->s->trace_id, tid, 16);
	memcpy(sp->s->parent_span_id, sid, 8);
	sp->s->trace_flags = flags;
	sp->s->remote_parent = true;
	return SONDE_OK;
}

static void h_set_status(struct sonde_span *sp, enum sonde_status st, const char *desc)
{
	if (!sp)
		return;
	sp->s->status = st;
	free(sp->s->status_msg);
	sp->s->status_msg = desc && st == SONDE_STATUS_ERROR ? strdup(desc) : NULL;
}

static void h_add_metric(struct sonde_span *sp, struct sonde_metric *m)
{
	if (!sp || !m || sp->n_metrics >= sizeof(sp->metrics) / sizeof(sp->metrics[0]))
		return;
	for (unsigned i = 0; i < sp->n_metrics; i++)
		if (sp->metrics[i] == m)
			return;
	sp->metrics[sp->n_metrics++] = m;
}

static void detach(struct sonde_span *sp)
{
	if (sp->active && hmap_get(&g_agent->active, sp->tid) == sp)
		hmap_del(&g_agent->active, sp->tid);
	list_del(sp);
}

/* Attribute values as text for metric labels. */
static const char *attr_text(const struct attr *at, char *buf, size_t n)
{
	if (!at)
		return NULL;
	switch (at->type) {
	case ATTR_STR: return at->v.s;
	case ATTR_INT: snprintf(buf, n, "%lld", (long long)at->v.i); return buf;
	case ATTR_DOUBLE: snprintf(buf, n, "%g", at->v.d); return buf;
	case ATTR_BOOL: return at->v.b ? "true" : "false";
	}
	return NULL;
}

static void record_metrics(struct sonde_span *sp)
{
	struct span *s = sp->s;
	double secs = (double)(s->end_unix_ns - s->start_unix_ns) / 1e9;

	for (unsigned i = 0; i < sp->n_metrics; i++) {
		struct sonde_metric *m = sp->metrics[i];
		const char *vals[16] = {0};
		char bufs[16][32];
		size_t n = m->n_keys < 16 ? m->n_keys : 16;

		for (size_t k = 0; k < n; k++)
			vals[k] = attr_text(attr_find(&s->attrs, m->keys[k]), bufs[k], sizeof(bufs[k]));
		metrics_hist_record(m->h, s->res, secs, vals);
	}
}

static void h_span_end(struct sonde_span *sp, uint64_t end_unix_ns)
{
	if (!sp)
		return;
	detach(sp);
	sp->s->end_unix_ns = end_unix_ns < sp->s->start_unix_ns ? sp->s->start_unix_ns : end_unix_ns;
	record_metrics(sp);
	g_agent->n.spans++;
	for (size_t i = 0; i < g_agent->n_sinks; i++)
		g_agent->sinks[i]->emit(g_agent->sinks[i]->ctx, sp->s);
	span_unref(sp->s);
	free(sp);
}

static void h_span_drop(struct sonde_span *sp)
{
	if (!sp)
		return;
	detach(sp);
	span_unref(sp->s);
	free(sp);
}

/* Called by conn.c after the owner's conn_close: spans a plugin forgot. */
void host_drop_conn_spans(struct sonde_conn *conn)
{
	struct sonde_span *sp;

	while ((sp = conn->spans)) {
		g_agent->n.spans_dropped++;
		h_span_drop(sp);
	}
}

static struct sonde_metric *h_hist_register(struct sonde_plugin_handle *self,
                                            const struct sonde_histogram_desc *d)
{
	struct sonde_metric *m;

	if (!g_agent || !d || !d->name || d->struct_size < sizeof(*d) ||
	    d->n_attr_keys > 16)
		return NULL;
	for (m = g_metrics; m; m = m->next)
		if (!strcmp(m->name, d->name))
			return m;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->h = metrics_hist(g_agent->metrics, d->name, d->unit ? d->unit : "", d->description,
	                    d->bounds, d->n_bounds, d->attr_keys, d->n_attr_keys);
	m->name = strdup(d->name);
	m->keys = calloc(d->n_attr_keys + 1, sizeof(char *));
	if (!m->h || !m->name || !m->keys)
		goto fail;
	for (size_t i = 0; i < d->n_attr_keys; i++)
		if (!(m->keys[i] = strdup(d->attr_keys[i])))
			goto fail;
	m->n_keys = d->n_attr_keys;
	m->owner = self;
	m->next = g_metrics;
	g_metrics = m;
	return m;
fail:
	if (m->keys)
		for (size_t i = 0; i < d->n_attr_keys; i++)
			free(m->keys[i]);
	free(m->keys);
	free(m->name);
	free(m);
	return NULL;
}

static void h_hist_record(struct sonde_metric *m, struct sonde_conn *conn, double value,
                          const char *const *attr_values)
{
	if (!m)
		return;
	metrics_hist_record(m->h, conn && conn->proc ? conn->proc->res : NULL, value, attr_values);
}

void host_api_init(struct agent *a, struct sonde_host_api *api)
{
	uint64_t seed = 0;

	g_agent = a;
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	rng_state = seed;

	memset(api, 0, sizeof(*api));
	api->struct_size = sizeof(*api);
	api->abi_major = SONDE_ABI_MAJOR;
	api->abi_minor = SONDE_ABI_MINOR;
	api->log = h_log;
	api->strerror = sonde_strerror;
	api->config_get = h_config_get;
	api->conn_info = h_conn_info;
	api->span_start = h_span_start;
	api->span_set_name = h_span_set_name;
	api->span_attr_str = h_attr_str;
	api->span_attr_int = h_attr_int;
	api->span_attr_double = h_attr_double;
	api->span_attr_bool = h_attr_bool;
	api->span_set_traceparent = h_set_traceparent;
	api->span_set_status = h_set_status;
	api->span_add_metric = h_add_metric;
	api->span_end = h_span_end;
	api->span_drop = h_span_drop;
	api->histogram_register = h_hist_register;
	api->histogram_record = h_hist_record;
}

void host_api_fini(void)
{
	struct sonde_metric *m = g_metrics, *n;

	for (; m; m = n) {
		n = m->next;
		for (size_t i = 0; i < m->n_keys; i++)
			free(m->keys[i]);
		free(m->keys);
		free(m->name);
		free(m);
	}
	g_metrics = NULL;
	g_agent = NULL;
}
