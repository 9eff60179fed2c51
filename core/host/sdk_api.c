/*
 * sdk_api.c - the struct sonde_host_api table a plugin calls: logging,
 * settings, connection info, the span builder (tracer.c) and histograms.
 *
 * The one idea: each entry finds its host through the handle it is given,
 * checks the handle and the arguments, and refuses (counting api_misuse)
 * rather than trusting a plugin. Memory rules are those of
 * sdk/include/sonde/plugin.h: the host copies what it keeps.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>

#include "config/config.h"
#include "host/host_priv.h"
#include "telemetry/intern.h"
#include "telemetry/metrics.h"

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

static struct host *host_of(struct sonde_plugin_handle *self)
{
	return self && self->reg ? self->reg->owner : NULL;
}

static const char *plugin_name(struct sonde_plugin_handle *self)
{
	return self && self->desc ? self->desc->name : "plugin";
}

static void host_vlog(struct host *h, const char *plugin, enum sonde_log_level lvl,
                      const char *fmt, va_list ap)
{
	static const char *names[] = {"error", "warn", "info", "debug"};
	char msg[1024];

	if (lvl > SONDE_LOG_DEBUG)
		lvl = SONDE_LOG_DEBUG;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (h && h->obs.log)
		h->obs.log(h->obs.ctx, plugin, lvl, msg);
	if (h && h->opts.verbose < 0)
		return;
	if (lvl > SONDE_LOG_INFO && (!h || h->opts.verbose < 2))
		return;
	if (lvl == SONDE_LOG_INFO && (!h || h->opts.verbose < 1))
		return;
	fprintf(stderr, "sonde: [%s] %s: %s\n", plugin, names[lvl], msg);
}

void host_log(struct host *h, const char *plugin, enum sonde_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	host_vlog(h, plugin, lvl, fmt, ap);
	va_end(ap);
}

static void h_log(struct sonde_plugin_handle *self, enum sonde_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (!fmt)
		return;
	va_start(ap, fmt);
	host_vlog(host_of(self), plugin_name(self), lvl, fmt, ap);
	va_end(ap);
}

static size_t h_config_get(struct sonde_plugin_handle *self, struct sonde_conn *conn,
                           const char *key, const char *const **values)
{
	struct host *h = host_of(self);
	const struct service_cfg *svc = conn ? conn->svc : NULL;
	const struct kv *kv, *global;

	if (!values)
		return 0;
	*values = NULL;
	if (!h || !self->desc || !key) {
		if (h)
			h->n.api_misuse++;
		return 0;
	}
	/* Precedence: services[].plugins.<name>.<key>, then the first-class
	 * services[].routes (for key "routes"), then plugins.<name>.<key>. */
	kv = config_plugin_get(h->opts.cfg, svc, self->desc->name, key);
	global = config_plugin_get(h->opts.cfg, NULL, self->desc->name, key);
	if ((!kv || kv == global) && svc && svc->n_routes && !strcmp(key, "routes")) {
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

/* --- spans ------------------------------------------------------------------- */

static struct sonde_span *h_span_start(struct sonde_conn *conn, const char *name,
                                       enum sonde_span_kind kind, uint64_t start_unix_ns)
{
	struct sonde_span_opts o = {.struct_size = sizeof(o), .kind = kind, .name = name,
	                            .start_unix_ns = start_unix_ns};

	if (!conn)
		return NULL;
	return tracer_start(conn, &o);
}

/* 1.1: options read up to the caller's struct_size. */
static struct sonde_span *h_span_start_v2(struct sonde_conn *conn, const struct sonde_span_opts *uo)
{
	struct sonde_span_opts o = {0};

	if (!conn || !uo || uo->struct_size < offsetof(struct sonde_span_opts, flags)) {
		if (conn)
			conn->host->n.api_misuse++;
		return NULL;
	}
	memcpy(&o, uo, uo->struct_size < sizeof(o) ? uo->struct_size : sizeof(o));
	o.struct_size = sizeof(o);
	return tracer_start(conn, &o);
}

static int h_span_context(struct sonde_span *sp, struct sonde_span_context *out)
{
	if (!(sp = tracer_live(sp)) || !out || out->struct_size < sizeof(*out))
		return SONDE_ERR_INVAL;
	memcpy(out->trace_id, sp->s->trace_id, 16);
	memcpy(out->span_id, sp->s->span_id, 8);
	out->trace_flags = sp->s->trace_flags;
	out->remote = 0;
	return SONDE_OK;
}

static int h_span_add_link(struct sonde_span *sp, const struct sonde_span_context *ctx)
{
	struct span_link l = {0};

	if (!(sp = tracer_live(sp)))
		return SONDE_ERR_INVAL;
	if (!ctx || ctx->struct_size < offsetof(struct sonde_span_context, reserved)) {
		sp->host->n.api_misuse++;
		return SONDE_ERR_INVAL;
	}
	memcpy(l.trace_id, ctx->trace_id, 16);
	memcpy(l.span_id, ctx->span_id, 8);
	l.trace_flags = ctx->trace_flags;
	l.remote = ctx->remote != 0;
	return span_add_link(sp->s, &l) ? SONDE_ERR_LIMIT : SONDE_OK;
}

static void h_span_set_name(struct sonde_span *sp, const char *name)
{
	if (!(sp = tracer_live(sp)))
		return;
	if (!name) {
		sp->host->n.api_misuse++;
		return;
	}
	span_set_name(sp->s, name);
}

/* A live span and a usable key, else NULL (counting misuse). */
static struct sonde_span *attr_target(struct sonde_span *sp, const char *key)
{
	if (!(sp = tracer_live(sp)))
		return NULL;
	if (!key) {
		sp->host->n.api_misuse++;
		return NULL;
	}
	return sp;
}

static void h_attr_str(struct sonde_span *sp, const char *key, const char *val, size_t len)
{
	if (!(sp = attr_target(sp, key)))
		return;
	if (!val) {
		sp->host->n.api_misuse++;
		return;
	}
	attr_set_str(&sp->s->attrs, key, val, len);
}

static void h_attr_int(struct sonde_span *sp, const char *key, int64_t v)
{
	if ((sp = attr_target(sp, key)))
		attr_set_int(&sp->s->attrs, key, v);
}

static void h_attr_double(struct sonde_span *sp, const char *key, double v)
{
	if ((sp = attr_target(sp, key)))
		attr_set_double(&sp->s->attrs, key, v);
}

static void h_attr_bool(struct sonde_span *sp, const char *key, int v)
{
	if ((sp = attr_target(sp, key)))
		attr_set_bool(&sp->s->attrs, key, v != 0);
}

static int h_set_traceparent(struct sonde_span *sp, const char *val, size_t len)
{
	uint8_t tid[16], sid[8], flags;

	if (!(sp = tracer_live(sp)) || !val || traceparent_parse(val, len, tid, sid, &flags))
		return SONDE_ERR_INVAL;
	return links_traceparent(sp, tid, sid, flags);
}

static void h_set_status(struct sonde_span *sp, enum sonde_status st, const char *desc)
{
	if (!(sp = tracer_live(sp)))
		return;
	sp->s->status = st;
	span_set_status_msg(sp->s, desc && st == SONDE_STATUS_ERROR ? desc : NULL);
}

static void h_add_metric(struct sonde_span *sp, struct sonde_metric *m)
{
	if (!(sp = tracer_live(sp)))
		return;
	if (!m || sp->n_metrics >= HOST_SPAN_MAX_METRICS) {
		sp->host->n.api_misuse++;
		return;
	}
	for (unsigned i = 0; i < sp->n_metrics; i++)
		if (sp->metrics[i] == m)
			return;
	sp->metrics[sp->n_metrics++] = m;
}

static void h_span_end(struct sonde_span *sp, uint64_t end_unix_ns)
{
	if ((sp = tracer_live(sp)))
		tracer_end(sp, end_unix_ns);
}

static void h_span_drop(struct sonde_span *sp)
{
	if ((sp = tracer_live(sp)))
		tracer_drop(sp, false);
}

/* --- histograms ---------------------------------------------------------------- */

static bool desc_valid(const struct sonde_histogram_desc *d)
{
	/* A 1.0 description ends after n_attr_keys: later minors may append. */
	if (!d || !d->name ||
	    d->struct_size < offsetof(struct sonde_histogram_desc, n_attr_keys) + sizeof(size_t) ||
	    d->n_attr_keys > 16 ||
	    (d->n_bounds && !d->bounds) || (d->n_attr_keys && !d->attr_keys))
		return false;
	for (size_t i = 1; i < d->n_bounds; i++)
		if (!(d->bounds[i - 1] < d->bounds[i]))
			return false;
	return true;
}

/* span_add_metric records a span's duration: in the histogram's own time
 * unit (UCUM), seconds for anything else. */
static double unit_scale(const char *unit)
{
	if (!unit)
		return 1;
	if (!strcmp(unit, "ms"))
		return 1e3;
	if (!strcmp(unit, "us"))
		return 1e6;
	if (!strcmp(unit, "ns"))
		return 1e9;
	if (!strcmp(unit, "min"))
		return 1.0 / 60;
	return 1;
}

static void metric_free(struct sonde_metric *m)
{
	if (!m)
		return;
	free(m->keys); /* the keys themselves are interned */
	free(m->pos);
	free(m->name);
	free(m);
}

static struct sonde_metric *h_hist_register(struct sonde_plugin_handle *self,
                                            const struct sonde_histogram_desc *d)
{
	struct host *h = host_of(self);
	struct sonde_metric *m;

	if (!h)
		return NULL;
	if (!desc_valid(d)) {
		h->n.api_misuse++;
		return NULL;
	}
	/* One handle per plugin and name: two plugins may record the same
	 * semantic-convention histogram with different attribute keys (their
	 * union is the metric's). */
	for (m = h->metrics; m; m = m->next)
		if (m->owner == self && !strcmp(m->name, d->name))
			return m;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->host = h;
	m->pos = calloc(d->n_attr_keys + 1, sizeof(size_t));
	if (!m->pos)
		goto fail;
	m->h = metrics_hist_shared(h->opts.metrics, METRIC_HISTOGRAM, d->name,
	                           d->unit ? d->unit : "", d->description, d->bounds, d->n_bounds,
	                           d->attr_keys, d->n_attr_keys, m->pos, &m->n_union);
	m->name = strdup(d->name);
	m->keys = calloc(d->n_attr_keys + 1, sizeof(char *));
	if (!m->h || !m->name || !m->keys) {
		if (!m->h)
			host_log(h, self->desc ? self->desc->name : "plugin", SONDE_LOG_WARN,
			         "histogram %s exists with another unit or other bounds: not recorded",
			         d->name);
		goto fail;
	}
	for (size_t i = 0; i < d->n_attr_keys; i++) {
		/* Interned: the tracer finds a span's value by pointer. */
		if (!(m->keys[i] = (char *)intern(d->attr_keys[i])))
			goto fail;
		m->n_keys = i + 1;
	}
	m->scale = unit_scale(d->unit);
	m->owner = self;
	m->next = h->metrics;
	h->metrics = m;
	return m;
fail:
	metric_free(m);
	return NULL;
}

/* Values in the plugin's key order, placed at the metric's (shared) key
 * positions; keys other plugins added are absent. */
void metric_record_mapped(struct sonde_metric *m, const struct resource *res, double value,
                          const char *const *vals)
{
	const char *all[32] = {0};
	size_t n = metrics_hist_n_keys(m->h);

	if (n > 32)
		n = 32;
	for (size_t i = 0; vals && i < m->n_keys; i++)
		if (m->pos[i] < n)
			all[m->pos[i]] = vals[i];
	metrics_hist_record(m->h, res, value, all);
}

static void h_hist_record(struct sonde_metric *m, struct sonde_conn *conn, double value,
                          const char *const *attr_values)
{
	struct host *h;

	if (!m)
		return;
	h = m->host;
	metric_record_mapped(m, conn ? conn->res : NULL, value, attr_values);
	if (h->obs.metric_point)
		h->obs.metric_point(h->obs.ctx, m->name, value, NULL, m->n_keys,
		                    (const char *const *)m->keys, attr_values);
}

/* --- 1.1: counters -------------------------------------------------------------- */

static struct sonde_metric *h_counter_register(struct sonde_plugin_handle *self,
                                               const struct sonde_counter_desc *d)
{
	struct host *h = host_of(self);
	struct sonde_metric *m;

	if (!h)
		return NULL;
	if (!d || !d->name || d->struct_size < offsetof(struct sonde_counter_desc, n_attr_keys) +
	                                            sizeof(size_t) ||
	    d->n_attr_keys > 16 || (d->n_attr_keys && !d->attr_keys)) {
		h->n.api_misuse++;
		return NULL;
	}
	for (m = h->metrics; m; m = m->next)
		if (m->owner == self && !strcmp(m->name, d->name))
			return m;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->host = h;
	m->pos = calloc(d->n_attr_keys + 1, sizeof(size_t));
	if (!m->pos)
		goto fail;
	m->h = metrics_hist_shared(h->opts.metrics, d->up_down ? METRIC_UPDOWN : METRIC_SUM,
	                           d->name, d->unit ? d->unit : "", d->description, NULL, 0,
	                           d->attr_keys, d->n_attr_keys, m->pos, &m->n_union);
	m->name = strdup(d->name);
	m->keys = calloc(d->n_attr_keys + 1, sizeof(char *));
	if (!m->h || !m->name || !m->keys)
		goto fail;
	for (size_t i = 0; i < d->n_attr_keys; i++) {
		if (!(m->keys[i] = (char *)intern(d->attr_keys[i])))
			goto fail;
		m->n_keys = i + 1;
	}
	m->scale = 1;
	m->monotonic = !d->up_down;
	m->owner = self;
	m->next = h->metrics;
	h->metrics = m;
	return m;
fail:
	metric_free(m);
	return NULL;
}

static void h_counter_add(struct sonde_metric *m, struct sonde_conn *conn, double value,
                          const char *const *attr_values)
{
	if (!m)
		return;
	if (m->monotonic && value < 0) {
		m->host->n.api_misuse++;
		return;
	}
	h_hist_record(m, conn, value, attr_values);
}

/* --- 1.1: timers, capture policy, runtime plugins ------------------------------- */

static uint64_t wall_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static struct sonde_timer *h_timer_start(struct sonde_plugin_handle *self, uint64_t delay_ns,
                                         uint64_t period_ns, sonde_timer_fn fn, void *arg)
{
	struct host *h = host_of(self);

	if (!h || !fn) {
		if (h)
			h->n.api_misuse++;
		return NULL;
	}
	return runtime_timer_start(h, self, wall_ns(), delay_ns, period_ns, fn, arg);
}

static void h_timer_stop(struct sonde_timer *t)
{
	if (t && t->owner && t->owner->reg)
		runtime_timer_stop(t->owner->reg->owner, t);
}

static int h_conn_set_capture(struct sonde_conn *c, const struct sonde_capture_policy *p)
{
	struct sonde_capture_policy n = {0};

	if (!c || !p || p->struct_size < offsetof(struct sonde_capture_policy, skip_to) +
	                                      sizeof(p->skip_to)) {
		if (c)
			c->host->n.api_misuse++;
		return SONDE_ERR_INVAL;
	}
	memcpy(&n, p, sizeof(n));
	n.struct_size = sizeof(n);
	if (n.cap > 16384)
		n.cap = 16384;
	c->policy = n;
	c->policy_dirty = true;
	/* Without a kernel side (replays) the policy changes nothing. */
	return c->host->rt.bpf_load ? SONDE_OK : SONDE_ERR_UNSUPPORTED;
}

static struct sonde_conn *h_conn_lookup(struct sonde_plugin_handle *self, uint32_t pid,
                                        uint32_t fd)
{
	struct host *h = host_of(self);

	return h && h->rt.conn_lookup ? h->rt.conn_lookup(h->rt.ctx, pid, fd) : NULL;
}

static int h_conn_inject(struct sonde_conn *c, const struct sonde_chunk *in)
{
	struct sonde_chunk ch = {0};

	if (!c || !in || in->struct_size < offsetof(struct sonde_chunk, tid) + sizeof(in->tid) ||
	    (in->len && !in->data)) {
		if (c)
			c->host->n.api_misuse++;
		return SONDE_ERR_INVAL;
	}
	memcpy(&ch, in, in->struct_size < sizeof(ch) ? in->struct_size : sizeof(ch));
	ch.struct_size = sizeof(ch);
	if (ch.orig_len < ch.len)
		ch.orig_len = ch.len;
	if (!SONDE_HAS_FIELD(in, struct sonde_chunk, source) || in->source == SONDE_SRC_SOCKET)
		ch.source = SONDE_SRC_RUNTIME;
	/* A 1.0 owner only knows conn_info.tls for "this is plaintext of an
	 * encrypted connection". */
	c->info.tls = 1;
	host_conn_data(c, &ch);
	return SONDE_OK;
}

static int h_bpf_load(struct sonde_plugin_handle *self, const struct sonde_bpf_opts *o,
                      struct sonde_bpf **out)
{
	struct host *h = host_of(self);

	if (!h || !o || !out || o->struct_size < offsetof(struct sonde_bpf_opts, obj_len) +
	                                         sizeof(size_t) || !o->obj) {
		if (h)
			h->n.api_misuse++;
		return SONDE_ERR_INVAL;
	}
	return runtime_bpf_load(h, self, o, out);
}

static int h_bpf_uprobe(struct sonde_bpf *b, const struct sonde_uprobe_opts *uo)
{
	struct sonde_uprobe_opts o = {0};
	int rc;

	if (!b || !uo || uo->struct_size < offsetof(struct sonde_uprobe_opts, reserved))
		return SONDE_ERR_INVAL;
	memcpy(&o, uo, uo->struct_size < sizeof(o) ? uo->struct_size : sizeof(o));
	if (!b->host->rt.bpf_uprobe)
		return SONDE_ERR_UNSUPPORTED;
	rc = b->host->rt.bpf_uprobe(b->host->rt.ctx, b->obj, &o);
	return rc ? (rc == -ENOENT ? SONDE_ERR_NOENT : SONDE_ERR_IO) : SONDE_OK;
}

static int h_bpf_map_fd(struct sonde_bpf *b, const char *map)
{
	int fd;

	if (!b || !map)
		return SONDE_ERR_INVAL;
	if (!b->host->rt.bpf_map_fd)
		return SONDE_ERR_UNSUPPORTED;
	fd = b->host->rt.bpf_map_fd(b->host->rt.ctx, b->obj, map);
	return fd >= 0 ? fd : SONDE_ERR_NOENT;
}

static int h_records_claim(struct sonde_plugin_handle *self, uint32_t first, uint32_t count)
{
	struct host *h = host_of(self);

	return h ? runtime_claim(h, self, first, count) : SONDE_ERR_INVAL;
}

static void h_context_link(struct sonde_plugin_handle *self, uint32_t pid, uint64_t child,
                           uint64_t parent)
{
	struct host *h = host_of(self);
	struct ctx_entry *e;

	if (!h || !child || child == parent)
		return;
	e = ctx_find(h, pid, child, true);
	if (e)
		e->parent = parent;
}

static void h_context_end(struct sonde_plugin_handle *self, uint32_t pid, uint64_t key)
{
	struct host *h = host_of(self);
	struct ctx_entry *e = h ? ctx_find(h, pid, key, false) : NULL;

	/* A context that still serves a request keeps its entry until the
	 * span ends; only its link goes. */
	if (e && !e->active) {
		runtime_ctx_del(h, e);
	} else if (e) {
		e->parent = 0;
		e->ended = true;
	}
}

static int h_span_set_pos(struct sonde_span *sp, uint8_t source, uint64_t pos)
{
	if (!(sp = tracer_live(sp)))
		return SONDE_ERR_INVAL;
	return links_span_pos(sp, source, pos);
}

/* Stream contexts (1.2): a short list per connection, oldest first. A
 * stream given twice keeps the later key; key 0 removes the entry. */
static struct stream_ctx *sctx_find(struct sonde_conn *c, uint64_t stream)
{
	for (unsigned i = 0; i < c->n_sctx; i++)
		if (c->sctx[i].stream == stream)
			return &c->sctx[i];
	return NULL;
}

static void sctx_remove(struct sonde_conn *c, struct stream_ctx *e)
{
	size_t i = (size_t)(e - c->sctx);

	memmove(e, e + 1, (c->n_sctx - i - 1) * sizeof(*e));
	c->n_sctx--;
}

static int h_conn_stream_context_set(struct sonde_conn *c, uint64_t stream, uint64_t key)
{
	struct stream_ctx *e;

	if (!c)
		return SONDE_ERR_INVAL;
	if ((e = c->sctx ? sctx_find(c, stream) : NULL))
		sctx_remove(c, e);
	if (!key)
		return SONDE_OK;
	if (!c->sctx && !(c->sctx = calloc(SONDE_STREAM_CTX_MAX, sizeof(*c->sctx))))
		return SONDE_ERR_NOMEM;
	if (c->n_sctx == SONDE_STREAM_CTX_MAX) {
		sctx_remove(c, &c->sctx[0]);
		c->host->n.stream_ctx_forgotten++;
	}
	c->sctx[c->n_sctx++] = (struct stream_ctx){.stream = stream, .key = key};
	c->host->n.stream_ctx_given++;
	return SONDE_OK;
}

static uint64_t h_conn_stream_context_take(struct sonde_conn *c, uint64_t stream)
{
	struct stream_ctx *e = c && c->sctx ? sctx_find(c, stream) : NULL;
	uint64_t key;

	if (!e)
		return 0;
	key = e->key;
	sctx_remove(c, e);
	c->host->n.stream_ctx_taken++;
	return key;
}

static int h_process_set(struct sonde_plugin_handle *self, uint32_t pid, uint32_t flags)
{
	struct host *h = host_of(self);

	if (!h)
		return SONDE_ERR_INVAL;
	if (!h->rt.process_set)
		return SONDE_ERR_UNSUPPORTED;
	if (h->rt.process_set(h->rt.ctx, pid, flags))
		return SONDE_ERR_IO;
	host_process_flags(h, pid, flags);
	return SONDE_OK;
}

void sdk_api_init(struct host *h, struct sonde_host_api *api)
{
	(void)h;
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
	/* 1.1 */
	api->span_start_v2 = h_span_start_v2;
	api->span_context = h_span_context;
	api->span_add_link = h_span_add_link;
	api->counter_register = h_counter_register;
	api->counter_add = h_counter_add;
	api->timer_start = h_timer_start;
	api->timer_stop = h_timer_stop;
	api->conn_set_capture = h_conn_set_capture;
	api->conn_lookup = h_conn_lookup;
	api->conn_inject = h_conn_inject;
	api->bpf_load = h_bpf_load;
	api->bpf_uprobe = h_bpf_uprobe;
	api->bpf_map_fd = h_bpf_map_fd;
	api->records_claim = h_records_claim;
	api->context_link = h_context_link;
	api->context_end = h_context_end;
	api->process_set = h_process_set;
	api->span_set_pos = h_span_set_pos;
	/* 1.2 */
	api->conn_stream_context_set = h_conn_stream_context_set;
	api->conn_stream_context_take = h_conn_stream_context_take;
}

void sdk_api_fini(struct host *h)
{
	struct sonde_metric *m = h->metrics, *n;

	for (; m; m = n) {
		n = m->next;
		metric_free(m);
	}
	h->metrics = NULL;
}
