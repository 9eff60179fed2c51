/*
 * runtime.c - what the host does for runtime plugins (SDK 1.1): the
 * process list behind process_new/process_gone, records claimed by a
 * plugin's BPF programs, BPF objects and uprobes (through the runtime ops
 * the agent installs), runtime contexts and their links, and timers.
 *
 * The one idea: the host owns every resource a plugin asks for (objects,
 * links, timers, claims, contexts) and keys it by the plugin's handle, so
 * whatever a plugin forgets is released when it unloads, and a process
 * that goes takes its links and contexts with it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "host/host_priv.h"

/* --- runtime contexts --------------------------------------------------------- */

static size_t ctx_slot(uint32_t pid, uint64_t key, size_t cap)
{
	uint64_t h = fnv1a(FNV_OFFSET, &pid, sizeof(pid));

	return fnv1a(h, &key, sizeof(key)) & (cap - 1);
}

static int ctx_grow(struct host *h)
{
	size_t ncap = h->cap_ctxs ? h->cap_ctxs * 2 : 1024;
	struct ctx_entry *n = calloc(ncap, sizeof(*n));

	if (!n)
		return -1;
	for (size_t i = 0; i < h->cap_ctxs; i++) {
		struct ctx_entry *e = &h->ctxs[i];
		size_t j;

		if (!e->used)
			continue;
		j = ctx_slot(e->pid, e->key, ncap);
		while (n[j].used)
			j = (j + 1) & (ncap - 1);
		n[j] = *e;
		if (e->active)
			e->active->ctx_pid = e->pid; /* unchanged; keeps the link by key */
	}
	free(h->ctxs);
	h->ctxs = n;
	h->cap_ctxs = ncap;
	return 0;
}

struct ctx_entry *ctx_find(struct host *h, uint32_t pid, uint64_t key, bool create)
{
	size_t j;

	if (!key)
		return NULL;
	if (create && (h->n_ctxs + 1) * 2 > h->cap_ctxs && ctx_grow(h))
		return NULL;
	if (!h->cap_ctxs)
		return NULL;
	for (j = ctx_slot(pid, key, h->cap_ctxs); h->ctxs[j].used; j = (j + 1) & (h->cap_ctxs - 1))
		if (h->ctxs[j].pid == pid && h->ctxs[j].key == key)
			return &h->ctxs[j];
	if (!create)
		return NULL;
	h->ctxs[j] = (struct ctx_entry){.pid = pid, .used = 1, .key = key};
	h->n_ctxs++;
	return &h->ctxs[j];
}

/* Remove one entry, shifting the run after it back (no tombstones). */
void runtime_ctx_del(struct host *h, struct ctx_entry *e)
{
	size_t i = (size_t)(e - h->ctxs), j = i;

	for (;;) {
		size_t k;

		j = (j + 1) & (h->cap_ctxs - 1);
		if (!h->ctxs[j].used)
			break;
		k = ctx_slot(h->ctxs[j].pid, h->ctxs[j].key, h->cap_ctxs);
		if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
			h->ctxs[i] = h->ctxs[j];
			i = j;
		}
	}
	memset(&h->ctxs[i], 0, sizeof(h->ctxs[i]));
	h->n_ctxs--;
}

void ctx_forget_span(struct host *h, struct sonde_span *sp)
{
	struct ctx_entry *e = ctx_find(h, sp->ctx_pid, sp->ctx_key, false);

	if (e && e->active == sp) {
		e->active = NULL;
		if (e->ended)
			runtime_ctx_del(h, e);
	}
	sp->ctx_key = 0;
}

static void ctx_drop_pid(struct host *h, uint32_t pid)
{
	for (size_t i = 0; i < h->cap_ctxs;) {
		if (h->ctxs[i].used && h->ctxs[i].pid == pid && !h->ctxs[i].active)
			runtime_ctx_del(h, &h->ctxs[i]); /* the slot now holds a shifted entry */
		else
			i++;
	}
}

/* --- processes ------------------------------------------------------------------ */

static void call_process_new(struct sonde_plugin_handle *p, const struct sonde_process_info *pi)
{
	int rc;

	if (!p->loaded || !p->desc->process_new)
		return;
	rc = p->desc->process_new(p->state, pi);
	if (rc && rc != SONDE_ERR_NOENT)
		host_log(p->reg->owner, p->desc->name, SONDE_LOG_INFO,
		         "pid %u stays with the generic capture: %s", pi->pid, sonde_strerror(rc));
}

void host_process_new(struct host *h, const struct sonde_process_info *pi)
{
	struct host_proc *hp;
	struct plugin_registry *r = &h->plugins;

	if (!pi || hmap_get(&h->procs, pi->pid))
		return;
	hp = calloc(1, sizeof(*hp));
	if (!hp)
		return;
	hp->pi = *pi;
	hp->pi.struct_size = sizeof(hp->pi);
	hp->exe_path = strdup(pi->exe_path ? pi->exe_path : "");
	hp->service_name = strdup(pi->service_name ? pi->service_name : "");
	hp->pi.exe_path = hp->exe_path;
	hp->pi.service_name = hp->service_name;
	if (!hp->exe_path || !hp->service_name || hmap_put(&h->procs, pi->pid, hp)) {
		free(hp->exe_path);
		free(hp->service_name);
		free(hp);
		return;
	}
	for (size_t i = 0; i < r->n_files; i++)
		call_process_new(r->files[i], &hp->pi);
}

void host_process_flags(struct host *h, uint32_t pid, uint32_t flags)
{
	struct host_proc *hp = hmap_get(&h->procs, pid);

	if (hp)
		hp->flags = flags;
}

bool host_process_has_contexts(const struct host *h, uint32_t pid)
{
	const struct host_proc *hp = hmap_get(&h->procs, pid);

	return hp && (hp->flags & SONDE_PROCESS_CONTEXTS);
}

void host_process_gone(struct host *h, uint32_t pid)
{
	struct host_proc *hp = hmap_del(&h->procs, pid);
	struct plugin_registry *r = &h->plugins;

	if (!hp)
		return;
	for (size_t i = 0; i < r->n_files; i++) {
		struct sonde_plugin_handle *p = r->files[i];

		if (p->loaded && p->desc->process_gone)
			p->desc->process_gone(p->state, pid);
	}
	for (struct sonde_bpf *b = h->bpfs; b; b = b->next)
		if (h->rt.bpf_detach_pid)
			h->rt.bpf_detach_pid(h->rt.ctx, b->obj, pid);
	ctx_drop_pid(h, pid);
	free(hp->exe_path);
	free(hp->service_name);
	free(hp);
}

/* A plugin loaded while processes are watched hears about each of them. */
void runtime_plugin_loaded(struct host *h, struct sonde_plugin_handle *p)
{
	uint64_t key;
	void *val;

	for (size_t it = 0; hmap_next(&h->procs, &it, &key, &val);) {
		struct sonde_process_info pi = ((struct host_proc *)val)->pi;

		pi.flags |= SONDE_PROC_EXISTED;
		call_process_new(p, &pi);
	}
}

/* --- timers ----------------------------------------------------------------------- */

static void timer_insert(struct host *h, struct sonde_timer *t)
{
	struct sonde_timer **pp = &h->timers;

	while (*pp && (*pp)->due <= t->due)
		pp = &(*pp)->next;
	t->next = *pp;
	*pp = t;
}

struct sonde_timer *runtime_timer_start(struct host *h, struct sonde_plugin_handle *owner,
                                        uint64_t now, uint64_t delay, uint64_t period,
                                        sonde_timer_fn fn, void *arg)
{
	struct sonde_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->owner = owner;
	t->due = now + delay;
	t->period = period;
	t->fn = fn;
	t->arg = arg;
	timer_insert(h, t);
	return t;
}

static void timer_unlink(struct host *h, struct sonde_timer *t)
{
	for (struct sonde_timer **pp = &h->timers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			return;
		}
	}
}

void runtime_timer_stop(struct host *h, struct sonde_timer *t)
{
	if (h->timers_running) {
		t->dead = true; /* freed by the run loop */
		return;
	}
	timer_unlink(h, t);
	free(t);
}

uint64_t host_timers_run(struct host *h, uint64_t now)
{
	struct sonde_timer *due = NULL, **tail = &due, *t;

	/* Take what is due off the list first: a callback may start or stop
	 * timers. */
	while (h->timers && h->timers->due <= now) {
		t = h->timers;
		h->timers = t->next;
		t->next = NULL;
		*tail = t;
		tail = &t->next;
	}
	h->timers_running = true;
	for (t = due; t; t = t->next) {
		if (!t->dead) {
			h->cur_tid = 0;
			t->fn(t->arg, now);
		}
	}
	h->timers_running = false;
	while ((t = due)) {
		due = t->next;
		if (t->dead || !t->period) {
			free(t);
			continue;
		}
		t->due = now + t->period;
		timer_insert(h, t);
	}
	for (t = h->timers; t;) {
		struct sonde_timer *n = t->next;

		if (t->dead) {
			timer_unlink(h, t);
			free(t);
		}
		t = n;
	}
	return h->timers ? h->timers->due : 0;
}

/* --- records claimed by plugins ----------------------------------------------------- */

int runtime_claim(struct host *h, struct sonde_plugin_handle *owner, uint32_t first,
                  uint32_t count)
{
	if (first < SONDE_RECORD_PLUGIN_FIRST || !count || first + count < first)
		return SONDE_ERR_INVAL;
	for (size_t i = 0; i < h->n_claims; i++) {
		const struct record_claim *c = &h->claims[i];

		if (first < c->first + c->count && c->first < first + count)
			return c->owner == owner ? SONDE_OK : SONDE_ERR_LIMIT;
	}
	if (h->n_claims == sizeof(h->claims) / sizeof(h->claims[0]))
		return SONDE_ERR_LIMIT;
	h->claims[h->n_claims++] = (struct record_claim){first, count, owner};
	return SONDE_OK;
}

int host_record(struct host *h, const void *rec, size_t len)
{
	const struct sonde_plugin *d;
	uint32_t type;

	if (len < 8)
		return 0;
	memcpy(&type, rec, sizeof(type));
	for (size_t i = 0; i < h->n_claims; i++) {
		const struct record_claim *c = &h->claims[i];

		if (type < c->first || type >= c->first + c->count)
			continue;
		d = c->owner->desc;
		if (!c->owner->loaded || !SONDE_HAS_FIELD(d, struct sonde_plugin, record) ||
		    !d->record)
			return 0;
		h->cur_tid = 0;
		d->record(c->owner->state, rec, len);
		return 1;
	}
	return 0;
}

/* --- BPF objects ------------------------------------------------------------------ */

int runtime_bpf_load(struct host *h, struct sonde_plugin_handle *owner,
                     const struct sonde_bpf_opts *o, struct sonde_bpf **out)
{
	struct sonde_bpf *b;
	char err[256] = "";
	void *obj = NULL;
	int rc;

	if (!h->rt.bpf_load)
		return SONDE_ERR_UNSUPPORTED;
	b = calloc(1, sizeof(*b));
	if (!b)
		return SONDE_ERR_NOMEM;
	rc = h->rt.bpf_load(h->rt.ctx, o->name ? o->name : owner->desc->name, o->obj, o->obj_len,
	                    &obj, err, sizeof(err));
	if (rc) {
		host_log(h, owner->desc->name, SONDE_LOG_WARN, "BPF object %s: %s",
		         o->name ? o->name : "", err);
		free(b);
		return rc == -ENOTSUP ? SONDE_ERR_UNSUPPORTED : SONDE_ERR_INVAL;
	}
	b->host = h;
	b->owner = owner;
	b->obj = obj;
	b->next = h->bpfs;
	h->bpfs = b;
	*out = b;
	return SONDE_OK;
}

void runtime_plugin_unloading(struct host *h, struct sonde_plugin_handle *p)
{
	struct sonde_bpf **bp = &h->bpfs;
	struct sonde_timer **tp = &h->timers;
	size_t j = 0;

	while (*bp) {
		struct sonde_bpf *b = *bp;

		if (b->owner != p) {
			bp = &b->next;
			continue;
		}
		*bp = b->next;
		if (h->rt.bpf_free)
			h->rt.bpf_free(h->rt.ctx, b->obj);
		free(b);
	}
	while (*tp) {
		struct sonde_timer *t = *tp;

		if (t->owner != p) {
			tp = &t->next;
			continue;
		}
		*tp = t->next;
		free(t);
	}
	for (size_t i = 0; i < h->n_claims; i++)
		if (h->claims[i].owner != p)
			h->claims[j++] = h->claims[i];
	h->n_claims = j;
}

void host_clear_runtime_objects(struct host *h)
{
	while (h->bpfs) {
		struct sonde_bpf *b = h->bpfs;

		h->bpfs = b->next;
		if (h->rt.bpf_free)
			h->rt.bpf_free(h->rt.ctx, b->obj);
		free(b);
	}
}

void runtime_free(struct host *h)
{
	uint64_t key;
	void *val;

	for (size_t it = 0; hmap_next(&h->procs, &it, &key, &val);) {
		struct host_proc *hp = val;

		free(hp->exe_path);
		free(hp->service_name);
		free(hp);
	}
	hmap_free(&h->procs);
	while (h->bpfs) {
		struct sonde_bpf *b = h->bpfs;

		h->bpfs = b->next;
		if (h->rt.bpf_free)
			h->rt.bpf_free(h->rt.ctx, b->obj);
		free(b);
	}
	while (h->timers) {
		struct sonde_timer *t = h->timers;

		h->timers = t->next;
		free(t);
	}
	free(h->ctxs);
	h->ctxs = NULL;
	h->cap_ctxs = h->n_ctxs = 0;
}
