/*
 * host.c - the host's lifecycle, and its connections: detection, the
 * sticky owner, and feeding chunks to it.
 *
 * The one idea: a connection is undecided until a protocol enabled for its
 * service claims it through detect(); from then on that protocol is its
 * sticky owner and sees every chunk in order. Chunks seen while undecided
 * are held (bounded) and replayed to the owner, so the first request is
 * never lost to detection.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "host/host_priv.h"
#include "telemetry/metrics.h"

#define DETECT_MAX_CHUNKS 8   /* give up detection after this many chunks */
#define DEFAULT_MAX_OPEN_SPANS 1024

/* --- the host -------------------------------------------------------------- */

struct host *host_new(const struct host_opts *o)
{
	struct host *h;

	if (!o || !o->metrics)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	memcpy(&h->opts, o, o->struct_size < sizeof(h->opts) ? o->struct_size : sizeof(h->opts));
	h->opts.struct_size = sizeof(h->opts);
	if (!h->opts.max_open_spans)
		h->opts.max_open_spans = DEFAULT_MAX_OPEN_SPANS;
	hmap_init(&h->active);
	hmap_init(&h->procs);
	tracer_init(h);
	sdk_api_init(h, &h->api);
	plugins_init(&h->plugins, &h->api);
	h->plugins.owner = h;
	return h;
}

void host_free(struct host *h)
{
	if (!h)
		return;
	plugins_free(&h->plugins);
	runtime_free(h);
	sdk_api_fini(h);
	tracer_fini(h);
	links_free(h);
	hmap_free(&h->active);
	free(h);
}

struct plugin_registry *host_plugins(struct host *h)
{
	return &h->plugins;
}

int host_load_builtin(struct host *h, const struct sonde_plugin *desc, const char *origin,
                      char *why, size_t whylen)
{
	return plugins_load_builtin(&h->plugins, desc, origin, why, whylen);
}

void host_add_sink(struct host *h, struct span_sink *s)
{
	if (s && h->n_sinks < HOST_MAX_SINKS)
		h->sinks[h->n_sinks++] = s;
}

void host_clear_sinks(struct host *h)
{
	h->n_sinks = 0;
}

const struct host_counters *host_counters(const struct host *h)
{
	return &h->n;
}

void host_set_observer(struct host *h, const struct host_observer *o)
{
	if (o)
		h->obs = *o;
	else
		memset(&h->obs, 0, sizeof(h->obs));
}

void host_set_max_open_spans(struct host *h, unsigned n)
{
	h->opts.max_open_spans = n ? n : ~0u;
}

void host_set_verbose(struct host *h, int verbose)
{
	h->opts.verbose = verbose;
}

/* --- connections -------------------------------------------------------------- */

static bool service_enables(const struct service_cfg *svc, const char *proto)
{
	if (!svc || !svc->n_protocols)
		return true;
	for (size_t i = 0; i < svc->n_protocols; i++)
		if (!strcmp(svc->protocols[i], proto))
			return true;
	return false;
}

struct sonde_conn *host_conn_new(struct host *h, const struct host_conn_desc *d)
{
	struct sonde_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->host = h;
	c->info = d->info;
	c->info.struct_size = sizeof(c->info);
	c->unix_path = strdup(d->info.unix_path ? d->info.unix_path : "");
	if (!c->unix_path) {
		free(c);
		return NULL;
	}
	c->info.unix_path = c->unix_path;
	c->res = d->res ? resource_ref(d->res) : NULL;
	c->svc = d->svc;
	c->held_tail = &c->held;
	links_conn_open(h, c);
	return c;
}

static void free_held(struct sonde_conn *c)
{
	struct held_chunk *h = c->held, *n;

	for (; h; h = n) {
		n = h->next;
		free(h);
	}
	c->held = NULL;
	c->held_tail = &c->held;
	c->held_bytes = 0;
}

/* The owner's conn_close, then whatever spans it left open are dropped. */
static void owner_close(struct sonde_conn *c, uint64_t ts)
{
	if (c->state != HOST_CONN_OWNED)
		return;
	c->host->cur_tid = 0;
	c->host->cur_ctx = 0;
	c->owner->proto->conn_close(c->owner_state, c, ts);
	tracer_drop_conn_spans(c);
}

static void give_up(struct sonde_conn *c, uint64_t ts)
{
	owner_close(c, ts);
	c->state = HOST_CONN_IGNORED;
	c->owner = NULL;
	c->owner_state = NULL;
	free_held(c);
}

void host_conn_close(struct sonde_conn *c, uint64_t ts_unix_ns)
{
	if (!c)
		return;
	links_conn_close(c->host, c);
	owner_close(c, ts_unix_ns);
	free_held(c);
	resource_unref(c->res);
	free(c->unix_path);
	free(c->inj);
	free(c->sctx);
	free(c);
}

void host_conn_injected(struct sonde_conn *c, uint64_t pos, const uint8_t trace_id[16],
                        const uint8_t span_id[8], const uint8_t *parent_id)
{
	struct injected *in;

	c->injecting = true;
	if (!c->inj && !(c->inj = calloc(HOST_INJ_MAX, sizeof(*c->inj))))
		return;
	if (c->n_inj == HOST_INJ_MAX) { /* never matched: forget the oldest */
		memmove(c->inj, c->inj + 1, (HOST_INJ_MAX - 1) * sizeof(*c->inj));
		c->n_inj--;
	}
	in = &c->inj[c->n_inj++];
	in->pos = pos;
	memcpy(in->trace_id, trace_id, 16);
	memcpy(in->span_id, span_id, 8);
	in->has_parent = parent_id != NULL;
	if (parent_id)
		memcpy(in->parent_id, parent_id, 8);
	c->host->n.injected++;
}

int host_conn_capture(struct sonde_conn *c, struct sonde_capture_policy *out)
{
	if (!c->policy_dirty)
		return 0;
	*out = c->policy;
	c->policy_dirty = false;
	return 1;
}

void host_set_runtime(struct host *h, const struct host_runtime_ops *ops)
{
	if (ops)
		h->rt = *ops;
	else
		memset(&h->rt, 0, sizeof(h->rt));
}

void host_conn_set_identity(struct sonde_conn *c, const char *service_name, const char *exe_name,
                            struct resource *res)
{
	c->info.service_name = service_name;
	c->info.exe_name = exe_name;
	if (res && res != c->res) {
		resource_unref(c->res);
		c->res = resource_ref(res);
	}
}

void host_conn_set_tls(struct sonde_conn *c)
{
	c->info.tls = 1;
}

enum host_conn_state host_conn_state(const struct sonde_conn *c)
{
	return c->state;
}

static int feed(struct sonde_conn *c, const struct sonde_chunk *ch)
{
	int rc;

	c->host->cur_tid = ch->tid;
	c->host->cur_ctx = SONDE_HAS_FIELD(ch, struct sonde_chunk, context) ? ch->context : 0;
	rc = c->owner->proto->conn_data(c->owner_state, c, ch);
	c->host->cur_ctx = 0;
	if (rc == SONDE_ERR_PROTO) {
		c->host->n.proto_errors++;
		give_up(c, ch->ts_unix_ns);
	}
	return rc;
}

static int hold(struct sonde_conn *c, const struct sonde_chunk *ch)
{
	struct held_chunk *h = malloc(sizeof(*h) + ch->len);

	if (!h)
		return -1;
	h->next = NULL;
	h->c = *ch;
	memcpy(h->data, ch->data, ch->len);
	h->c.data = h->data;
	*c->held_tail = h;
	c->held_tail = &h->next;
	c->held_bytes += ch->len;
	return 0;
}

/* The held bytes of one direction, concatenated (bounded), for detect(). */
static size_t held_view(const struct sonde_conn *c, enum sonde_dir dir, uint8_t *buf, size_t cap,
                        struct sonde_chunk *view)
{
	size_t n = 0;
	const struct held_chunk *first = NULL;

	for (const struct held_chunk *h = c->held; h; h = h->next) {
		if (h->c.dir != dir)
			continue;
		if (!first)
			first = h;
		size_t k = h->c.len < cap - n ? h->c.len : cap - n;
		memcpy(buf + n, h->c.data, k);
		n += k;
		if (h->c.len < h->c.orig_len) /* bytes after a cut are unknown */
			break;
	}
	if (first) {
		*view = first->c;
		view->data = buf;
		view->len = n;
		view->orig_len = n;
	}
	return n;
}

/* Make pe the owner and replay the held chunks to it. */
static int take_owner(struct sonde_conn *c, const struct proto_entry *pe, uint64_t ts)
{
	struct held_chunk *h;
	int rc;

	c->owner = pe;
	c->info.service_name = c->res ? c->res->service_name : "";
	rc = pe->proto->conn_open(pe->plugin->state, c, &c->info, &c->owner_state);
	if (rc) {
		c->owner = NULL;
		c->host->n.conns_ignored++;
		give_up(c, ts);
		return rc;
	}
	c->state = HOST_CONN_OWNED;
	c->host->n.conns_owned++;
	h = c->held;
	c->held = NULL;
	c->held_tail = &c->held;
	c->held_bytes = 0;
	while (h) {
		struct held_chunk *n = h->next;

		if (c->state == HOST_CONN_OWNED)
			feed(c, &h->c);
		free(h);
		h = n;
	}
	return SONDE_OK;
}

static void detect(struct sonde_conn *c, const struct sonde_chunk *ch)
{
	uint8_t *buf = c->host->detect_buf;
	const struct plugin_registry *r = &c->host->plugins;
	const struct proto_entry *best = NULL;
	struct sonde_chunk view;
	int best_score = 0, need_more = 0;

	if (hold(c, ch)) {
		give_up(c, ch->ts_unix_ns);
		return;
	}
	c->detect_tries++;
	if (!held_view(c, ch->dir, buf, HOST_HOLD_MAX_BYTES, &view))
		return;
	for (size_t i = 0; i < r->n_protos; i++) {
		const struct proto_entry *pe = r->protos[i];
		int s;

		if (!service_enables(c->svc, pe->proto->name))
			continue;
		s = pe->proto->detect(pe->plugin->state, &c->info, &view);
		if (s == SONDE_DETECT_NEED_MORE)
			need_more = 1;
		else if (s > best_score) {
			best_score = s;
			best = pe;
		}
	}
	if (best) {
		host_log(c->host, "detect", SONDE_LOG_DEBUG,
		         "conn %llu (pid %u, role %d): %s claims it (confidence %d)",
		         (unsigned long long)c->info.conn_id, c->info.pid, c->info.role,
		         best->proto->name, best_score);
		take_owner(c, best, ch->ts_unix_ns);
		return;
	}
	if ((!need_more && c->detect_tries >= 2) || c->detect_tries >= DETECT_MAX_CHUNKS ||
	    c->held_bytes >= HOST_HOLD_MAX_BYTES) {
		c->host->n.conns_ignored++;
		host_log(c->host, "detect", SONDE_LOG_DEBUG,
		         "conn %llu (pid %u, role %d): no protocol claimed it after %u chunks, %zu "
		         "bytes", (unsigned long long)c->info.conn_id, c->info.pid, c->info.role,
		         c->detect_tries, c->held_bytes);
		give_up(c, ch->ts_unix_ns);
	}
}

int host_conn_data(struct sonde_conn *c, const struct sonde_chunk *ch)
{
	if (ch->ts_unix_ns > c->host->last_data_ns)
		c->host->last_data_ns = ch->ts_unix_ns;
	if (c->state == HOST_CONN_OWNED)
		return feed(c, ch);
	if (c->state == HOST_CONN_DETECTING)
		detect(c, ch);
	return SONDE_OK;
}

unsigned host_conn_open_spans(const struct sonde_conn *c)
{
	return c->open_spans;
}

int host_conn_assign(struct sonde_conn *c, const char *proto)
{
	const struct proto_entry *pe = plugins_find_proto(&c->host->plugins, proto);

	if (!pe || c->state != HOST_CONN_DETECTING)
		return SONDE_ERR_NOENT;
	return take_owner(c, pe, 0);
}

int host_detect(struct host *h, const char *proto, const struct sonde_conn_info *ci,
                const struct sonde_chunk *ch)
{
	const struct proto_entry *pe = plugins_find_proto(&h->plugins, proto);

	if (!pe)
		return SONDE_ERR_NOENT;
	return pe->proto->detect(pe->plugin->state, ci, ch);
}

void host_batch_begin(struct host *h)
{
	if (h)
		metrics_batch_begin(h->opts.metrics);
}

void host_batch_end(struct host *h)
{
	if (h)
		metrics_batch_end(h->opts.metrics);
}

void host_links_flush(struct host *h)
{
	if (h)
		links_free(h);
}
