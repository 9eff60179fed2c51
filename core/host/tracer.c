/*
 * tracer.c - the span builder behind the SDK: ids, parents, the active
 * server span of each thread, metrics recorded when a span ends, and the
 * hand-off of finished spans to the sinks.
 *
 * The one idea: the host, not the plugin, decides where a span sits in a
 * trace. A SERVER span starts a trace (or continues an incoming
 * traceparent) and becomes "active" on the thread that read its request;
 * a CLIENT span started on a thread with an active server span becomes its
 * child. Plugins only say what they saw and when.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/hex.h"
#include "host/host_priv.h"
#include "telemetry/metrics.h"

#define SPAN_POOL_KEEP 4096 /* recycled slots kept for reuse */

static uint64_t rng_next(struct host *h)
{
	/* splitmix64, seeded from getrandom(): ids need uniqueness, not secrecy */
	uint64_t z = (h->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rand_bytes(struct host *h, uint8_t *out, size_t n)
{
	while (n) {
		uint64_t v = rng_next(h);
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
	/* W3C trace context: lowercase hex only. */
	if (hex_decode(s, &ver, 1, true) || ver == 0xff)
		return -1;
	if (ver == 0 && len != 55)
		return -1;
	if (ver != 0 && len > 55 && s[55] != '-')
		return -1;
	if (hex_decode(s + 3, trace_id, 16, true) || hex_decode(s + 36, span_id, 8, true) ||
	    hex_decode(s + 53, flags, 1, true))
		return -1;
	if (all_zero(trace_id, 16) || all_zero(span_id, 8))
		return -1;
	return 0;
}

void tracer_init(struct host *h)
{
	uint64_t seed = 0;

	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	h->rng = seed;
}

void tracer_fini(struct host *h)
{
	uint64_t key;
	void *val;

	for (size_t it = 0; hmap_next(&h->active, &it, &key, &val);)
		free(val);
	struct sonde_span *sp = h->free_head, *n;

	for (; sp; sp = n) {
		n = sp->free_next;
		free(sp);
	}
	h->free_head = h->free_tail = NULL;
	h->n_free = 0;
}

/* --- span slots ------------------------------------------------------------ */

static struct sonde_span *slot_get(struct host *h)
{
	struct sonde_span *sp;

	/* Reuse only once the pool is deep, so a stale handle meets a DEAD
	 * slot for as long as possible. */
	if (h->n_free > SPAN_POOL_KEEP / 2) {
		sp = h->free_head;
		h->free_head = sp->free_next;
		if (!h->free_head)
			h->free_tail = NULL;
		h->n_free--;
		memset(sp, 0, sizeof(*sp));
		return sp;
	}
	return calloc(1, sizeof(*sp));
}

static void slot_put(struct host *h, struct sonde_span *sp)
{
	sp->state = SPAN_DEAD;
	sp->s = NULL;
	sp->conn = NULL;
	if (h->n_free >= SPAN_POOL_KEEP) {
		/* Pool full: free the oldest, keep this one. */
		struct sonde_span *old = h->free_head;

		h->free_head = old->free_next;
		if (!h->free_head)
			h->free_tail = NULL;
		h->n_free--;
		free(old);
	}
	sp->free_next = NULL;
	if (h->free_tail)
		h->free_tail->free_next = sp;
	else
		h->free_head = sp;
	h->free_tail = sp;
	h->n_free++;
}

struct sonde_span *tracer_live(struct sonde_span *sp)
{
	if (!sp)
		return NULL;
	if (sp->state != SPAN_OPEN) {
		sp->host->n.api_misuse++;
		return NULL;
	}
	return sp;
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

/* --- building ------------------------------------------------------------------ */

static void copy_parent(struct span *s, const struct span *p)
{
	memcpy(s->trace_id, p->trace_id, 16);
	memcpy(s->parent_span_id, p->span_id, 8);
	s->trace_flags = p->trace_flags;
}

/* The active span of a runtime context, or of the nearest one up its
 * links (a goroutine's creator, an async resource's trigger). */
static struct sonde_span *ctx_active(struct host *h, uint32_t pid, uint64_t key)
{
	for (int depth = 0; key && depth < 64; depth++) {
		struct ctx_entry *e = ctx_find(h, pid, key, false);

		if (!e)
			return NULL;
		if (e->active)
			return e->active;
		key = e->parent;
	}
	return NULL;
}

/* The host's own guess for a client span: the server span open on the
 * same thread, but only when it is the only one open there (a thread
 * serving several requests at once, an event loop, is ambiguous). */
static struct sonde_span *thread_parent(struct host *h, const struct sonde_span *sp)
{
	struct tid_state *ts = sp->tid ? hmap_get(&h->active, sp->tid) : NULL;

	/* In a process whose runtime contexts a plugin follows (goroutines on
	 * shared threads), the thread says nothing about the request. */
	if (ts && host_process_has_contexts(h, sp->conn->info.pid))
		return NULL;
	if (!ts || ts->n_open != 1 || !ts->span || ts->span->conn == sp->conn)
		return NULL;
	return ts->span;
}

/* The span's runtime context: the plugin's, else the chunk's being fed. */
static uint64_t span_ctx(const struct host *h, const struct sonde_span_opts *o)
{
	return o->context ? o->context : h->cur_ctx;
}

static void set_parent(struct host *h, struct sonde_span *sp, const struct sonde_span_opts *o)
{
	struct span *s = sp->s;
	uint64_t ctx = span_ctx(h, o);
	struct sonde_span *parent = NULL;
	bool child_kind = o->kind == SONDE_SPAN_CLIENT || o->kind == SONDE_SPAN_PRODUCER ||
	                  o->kind == SONDE_SPAN_INTERNAL;

	if (o->parent && o->parent->state == SPAN_OPEN && o->parent->host == h) {
		parent = o->parent;
		sp->psrc = PARENT_EXPLICIT;
	}
	if (!parent && o->parent_ctx) {
		memcpy(s->trace_id, o->parent_ctx->trace_id, 16);
		memcpy(s->parent_span_id, o->parent_ctx->span_id, 8);
		s->trace_flags = o->parent_ctx->trace_flags;
		s->remote_parent = o->parent_ctx->remote;
		sp->psrc = PARENT_EXPLICIT;
		return;
	}
	if (!parent && child_kind && ctx && (parent = ctx_active(h, sp->conn->info.pid, ctx)))
		sp->psrc = PARENT_CONTEXT;
	if (!parent && child_kind && !ctx && !(o->flags & SONDE_SPAN_NO_PARENT) &&
	    (parent = thread_parent(h, sp)))
		sp->psrc = PARENT_THREAD;
	if (parent)
		copy_parent(s, parent->s);
	else
		rand_bytes(h, s->trace_id, 16);
}

/* A server span becomes the active span of its runtime context, or of its
 * thread (counted among the thread's open server spans). */
static void make_active(struct host *h, struct sonde_span *sp, const struct sonde_span_opts *o)
{
	struct tid_state *ts;
	uint64_t ctx = span_ctx(h, o);

	if (o->kind != SONDE_SPAN_SERVER && o->kind != SONDE_SPAN_CONSUMER)
		return;
	if (ctx) {
		struct ctx_entry *e = ctx_find(h, sp->conn->info.pid, ctx, true);

		if (e) {
			e->active = sp;
			e->ended = false;
			sp->ctx_pid = sp->conn->info.pid;
			sp->ctx_key = ctx;
		}
		return;
	}
	if (!sp->tid || (o->flags & SONDE_SPAN_NOT_ACTIVE))
		return;
	ts = hmap_get(&h->active, sp->tid);
	if (!ts) {
		ts = calloc(1, sizeof(*ts));
		if (!ts || hmap_put(&h->active, sp->tid, ts)) {
			free(ts);
			return;
		}
	}
	ts->span = sp;
	ts->n_open++;
	sp->active = true;
	sp->counted = true;
}

void tracer_serving(struct host *h, struct sonde_span *sp)
{
	const struct sonde_conn *c = sp->conn;

	if (!h->rt.serving || !sp->active || !sp->tid || sp->state != SPAN_OPEN ||
	    !h->rt.injects(h->rt.ctx, c->info.pid))
		return;
	h->rt.serving(h->rt.ctx, c->info.pid, c->info.conn_id, sp->tid, sp->s->trace_id,
	              sp->s->span_id);
}

struct sonde_span *tracer_start(struct sonde_conn *c, const struct sonde_span_opts *o)
{
	struct host *h = c->host;
	struct sonde_span *sp;
	struct span *s;

	if (c->open_spans >= h->opts.max_open_spans) {
		h->n.spans_dropped++;
		return NULL;
	}
	sp = slot_get(h);
	s = span_new();
	if (!sp || !s)
		goto fail;
	span_set_name(s, o->name ? o->name : "");
	s->kind = o->kind;
	s->start_unix_ns = o->start_unix_ns;
	s->end_unix_ns = o->start_unix_ns;
	s->trace_flags = 1; /* sampled: sonde exports everything it sees */
	s->res = c->res ? resource_ref(c->res) : NULL;
	if (c->owner) {
		const char *pn = c->owner->plugin->desc->name;
		size_t n = strnlen(pn, sizeof(s->scope) - 1);

		memcpy(s->scope, pn, n);
		s->scope[n] = 0;
	}
	rand_bytes(h, s->span_id, 8);
	sp->host = h;
	sp->state = SPAN_OPEN;
	sp->s = s;
	sp->conn = c;
	sp->tid = h->cur_tid;
	s->tid = sp->tid;
	set_parent(h, sp, o);
	make_active(h, sp, o);
	list_add(sp);
	tracer_serving(h, sp);
	if (h->obs.span_started)
		h->obs.span_started(h->obs.ctx, s);
	return sp;
fail:
	span_unref(s);
	free(sp);
	h->n.spans_dropped++;
	return NULL;
}

static void detach(struct sonde_span *sp)
{
	struct host *h = sp->host;
	struct tid_state *ts;

	if (sp->counted && (ts = hmap_get(&h->active, sp->tid))) {
		if (ts->span == sp)
			ts->span = NULL;
		if (ts->n_open)
			ts->n_open--;
		if (!ts->n_open) {
			hmap_del(&h->active, sp->tid);
			free(ts);
		}
	}
	if (sp->ctx_key)
		ctx_forget_span(h, sp);
	if (sp->link || sp->fwd_key)
		links_span_gone(sp);
	list_del(sp);
}

/* Decimal text of v into buf (at least 21 bytes), without printf. */
static const char *int_text(int64_t v, char *buf, size_t n)
{
	char tmp[24];
	size_t k = 0, i = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		tmp[k++] = (char)('0' + u % 10);
		u /= 10;
	} while (u && k < sizeof(tmp));
	if (v < 0 && i + 1 < n)
		buf[i++] = '-';
	while (k && i + 1 < n)
		buf[i++] = tmp[--k];
	buf[i] = 0;
	return buf;
}

/* Attribute values as text for metric labels. */
static const char *attr_text(const struct attr *at, char *buf, size_t n)
{
	if (!at)
		return NULL;
	switch (at->type) {
	case ATTR_STR: return at->v.s;
	case ATTR_INT: return int_text(at->v.i, buf, n);
	case ATTR_DOUBLE: snprintf(buf, n, "%g", at->v.d); return buf;
	case ATTR_BOOL: return at->v.b ? "true" : "false";
	}
	return NULL;
}

static void record_metrics(struct sonde_span *sp)
{
	struct host *h = sp->host;
	struct span *s = sp->s;
	double secs = (double)(s->end_unix_ns - s->start_unix_ns) / 1e9;

	for (unsigned i = 0; i < sp->n_metrics; i++) {
		struct sonde_metric *m = sp->metrics[i];
		const char *vals[16] = {0};
		char bufs[16][32];
		size_t n = m->n_keys < 16 ? m->n_keys : 16;

		for (size_t k = 0; k < n; k++)
			vals[k] = attr_text(attr_find_interned(&s->attrs, m->keys[k]), bufs[k],
			                    sizeof(bufs[k]));
		metric_record_mapped(m, s->res, secs * m->scale, vals);
		if (h->obs.metric_point)
			h->obs.metric_point(h->obs.ctx, m->name, secs * m->scale, s, n,
			                    (const char *const *)m->keys, vals);
	}
}

void tracer_emit(struct host *h, struct span *s)
{
	for (size_t i = 0; i < h->n_sinks; i++)
		h->sinks[i]->emit(h->sinks[i]->ctx, s);
}

void tracer_end(struct sonde_span *sp, uint64_t end_unix_ns)
{
	struct host *h = sp->host;
	bool held;

	sp->s->end_unix_ns = end_unix_ns < sp->s->start_unix_ns ? sp->s->start_unix_ns : end_unix_ns;
	held = sp->link && links_hold(h, sp);
	detach(sp);
	links_remap(h, sp->s);
	record_metrics(sp);
	h->n.spans++;
	if (!held && !links_park(h, sp->s))
		tracer_emit(h, sp->s);
	span_unref(sp->s);
	slot_put(h, sp);
}

void tracer_drop(struct sonde_span *sp, bool by_host)
{
	struct host *h = sp->host;

	detach(sp);
	if (by_host)
		h->n.spans_dropped++;
	if (h->obs.span_dropped)
		h->obs.span_dropped(h->obs.ctx, sp->s);
	span_unref(sp->s);
	slot_put(h, sp);
}

void tracer_drop_conn_spans(struct sonde_conn *c)
{
	struct sonde_span *sp;

	while ((sp = c->spans))
		tracer_drop(sp, true);
}
