/*
 * links.c - same-host links: the server span of a request that a watched
 * client on this host sent becomes the child of that client's span.
 *
 * The one idea: both ends of a TCP connection see one byte stream. The
 * request that starts at byte P of the client's outgoing stream is the
 * request that starts at byte P of the server's incoming stream, on the
 * connection with the same two endpoints. Plugins say where a span's
 * request starts (span_set_pos); the first end of the pair to arrive waits
 * in a table, keyed by (client endpoint, server endpoint, source, P), for
 * the other. Nothing is matched on anything weaker: a connection found
 * mid-stream (positions not counted from its first byte), a unix socket
 * (no endpoint pair), or a key collision gives no link.
 *
 * The two ends come from two processes through one ring buffer, and the
 * server's read can be recorded before the client's write returns. So a
 * server span may start before its client span: it waits, and is moved into
 * the client's trace when the client span arrives. Spans that copied the
 * server span's first trace id in between (its children) are moved at their
 * end through a small remap table; one that ends while its trace is still
 * waiting is parked, and leaves when the wait is over (link or not).
 *
 * The server span itself can end first too: the client's write returns
 * after the kernel has handed its bytes to the server, and a client thread
 * held up right there (preempted, an interrupt) lets the server read, answer
 * and end its span before the client's record is written. Such a span is
 * held, parked in its own entry, until its client span comes or the wait
 * runs out: HOLD_RECORDS_NS of record time past its end (the client's record
 * is behind it in the same ring) or HOLD_WALL_NS of clock time when no
 * records come, checked by a host timer every HOLD_TICK_NS.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "host/host_priv.h"

#define LINKS_MAX 65536   /* entries waiting; beyond, new ones are refused */
#define REMAP_MAX 1024    /* trace ids moved recently */
#define HOLD_RECORDS_NS 50000000ULL   /* 50 ms of later records */
#define HOLD_WALL_NS 1000000000ULL    /* 1 s of clock time */
#define HOLD_TICK_NS 100000000ULL     /* how often held spans are looked at */

struct link_key {
	uint16_t cport, sport;
	uint8_t source;
	uint8_t family;
	uint64_t pos;
	char caddr[48], saddr[48];
};

struct link {
	struct link_key k;
	bool server;                 /* a server span waiting for its client */
	struct sonde_span *span;     /* the span that owns the entry */
	struct span *held;           /* a server span that ended waiting (it is
	                                also parked[0]); span is then NULL */
	uint64_t held_end;           /* its end (unix ns) */
	uint8_t trace_id[16], span_id[8], trace_flags;
	struct span **parked;        /* ended spans of the waiting trace */
	size_t n_parked;
};

#define PARKED_MAX 64

struct remap {
	uint8_t from[16], to[16];
};

/* Server spans of a process by the traceparent they received, so a client
 * request of the same process that forwards it (a proxy) finds its parent. */
struct fwd {
	uint32_t pid;
	uint8_t trace_id[16], span_id[8];
	struct sonde_span *span;     /* the one open server span, or NULL */
	unsigned count;              /* open server spans that received it */
};

struct links {
	struct hmap by_hash;         /* hash(key) -> struct link */
	struct hmap fwd;             /* hash(pid, traceparent) -> struct fwd */
	struct hmap waiting;         /* first 8 bytes of trace id -> server link */
	struct hmap client_ports;    /* local port of watched CLIENT TCP
	                                connections -> how many (as a pointer) */
	size_t n;
	size_t n_held;               /* entries with a held server span */
	struct sonde_timer *hold_timer;
	struct remap remaps[REMAP_MAX];
	size_t n_remaps, next_remap;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

static uint64_t str_hash(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = mix(h, (uint8_t)*s);
	return h;
}

static uint64_t key_hash(const struct link_key *k)
{
	uint64_t h = mix(0, k->pos);

	h = mix(h, (uint64_t)k->cport << 32 | (uint64_t)k->sport << 16 | k->source << 8 | k->family);
	h = str_hash(h, k->caddr);
	h = str_hash(h, k->saddr);
	return h ? h : 1;
}

static bool key_eq(const struct link_key *a, const struct link_key *b)
{
	return a->pos == b->pos && a->cport == b->cport && a->sport == b->sport &&
	       a->source == b->source && a->family == b->family && !strcmp(a->caddr, b->caddr) &&
	       !strcmp(a->saddr, b->saddr);
}

/* The key of sp's request, oriented client -> server; false when the
 * connection cannot be linked. */
static bool span_key(const struct sonde_span *sp, bool server, uint8_t source, uint64_t pos,
                     struct link_key *k)
{
	const struct sonde_conn_info *ci = &sp->conn->info;

	if (ci->transport != SONDE_TRANSPORT_TCP || (ci->flags & SONDE_CONN_MIDSTREAM) ||
	    !ci->local_port || !ci->peer_port || !ci->local_addr[0] || !ci->peer_addr[0])
		return false;
	memset(k, 0, sizeof(*k));
	k->pos = pos;
	k->source = source;
	k->family = (uint8_t)ci->family;
	if (server) {
		k->cport = ci->peer_port;
		k->sport = ci->local_port;
		memcpy(k->caddr, ci->peer_addr, sizeof(k->caddr) - 1);
		memcpy(k->saddr, ci->local_addr, sizeof(k->saddr) - 1);
	} else {
		k->cport = ci->local_port;
		k->sport = ci->peer_port;
		memcpy(k->caddr, ci->local_addr, sizeof(k->caddr) - 1);
		memcpy(k->saddr, ci->peer_addr, sizeof(k->saddr) - 1);
	}
	return true;
}

static struct links *links_of(struct host *h)
{
	if (!h->links) {
		h->links = calloc(1, sizeof(*h->links));
		if (h->links) {
			hmap_init(&h->links->by_hash);
			hmap_init(&h->links->waiting);
			hmap_init(&h->links->fwd);
			hmap_init(&h->links->client_ports);
		}
	}
	return h->links;
}

static uint64_t trace_key(const uint8_t trace_id[16])
{
	uint64_t k;

	memcpy(&k, trace_id, 8);
	return k ? k : 1;
}

/* Parked spans leave, in the trace they have now. */
static void unpark(struct host *h, struct link *l)
{
	for (size_t i = 0; i < l->n_parked; i++) {
		links_remap(h, l->parked[i]);
		tracer_emit(h, l->parked[i]);
		span_unref(l->parked[i]);
	}
	free(l->parked);
	l->parked = NULL;
	l->n_parked = 0;
}

static void link_free(struct host *h, struct links *ls, uint64_t hash, struct link *l)
{
	if (l->held)
		ls->n_held--;
	if (l->server && hmap_get(&ls->waiting, trace_key(l->trace_id)) == l)
		hmap_del(&ls->waiting, trace_key(l->trace_id));
	unpark(h, l);
	hmap_del(&ls->by_hash, hash);
	if (l->span && l->span->link == l)
		l->span->link = NULL;
	free(l);
	ls->n--;
}

/* Spans that copied a trace id before it moved follow it at their end. */
static void remap_add(struct links *ls, const uint8_t from[16], const uint8_t to[16])
{
	struct remap *r = &ls->remaps[ls->next_remap];

	memcpy(r->from, from, 16);
	memcpy(r->to, to, 16);
	ls->next_remap = (ls->next_remap + 1) % REMAP_MAX;
	if (ls->n_remaps < REMAP_MAX)
		ls->n_remaps++;
}

void links_remap(struct host *h, struct span *s)
{
	struct links *ls = h->links;

	if (!ls || !ls->n_remaps)
		return;
	for (size_t i = 0; i < ls->n_remaps; i++) {
		const struct remap *r = &ls->remaps[i];

		if (!memcmp(r->from, s->trace_id, 16)) {
			memcpy(s->trace_id, r->to, 16);
			return;
		}
	}
}

/* The server span s is the child of the client context in l. */
static bool adopt_span(struct host *h, struct span *s, const struct link *l)
{
	/* A server span that continues an incoming traceparent of another
	 * trace keeps it: moving that trace would move what others built. */
	if (s->remote_parent && memcmp(s->trace_id, l->trace_id, 16)) {
		h->n.link_conflicts++;
		return false;
	}
	if (memcmp(s->trace_id, l->trace_id, 16)) {
		remap_add(h->links, s->trace_id, l->trace_id);
		memcpy(s->trace_id, l->trace_id, 16);
	}
	memcpy(s->parent_span_id, l->span_id, 8);
	s->trace_flags = l->trace_flags;
	s->remote_parent = false;
	h->n.links++;
	return true;
}

/* The same for a server span still open. */
static void adopt(struct host *h, struct sonde_span *srv, const struct link *l)
{
	if (!adopt_span(h, srv->s, l))
		return;
	srv->psrc = PARENT_LINK;
	tracer_serving(h, srv);
}

/* The ids a client entry stands for, as its span has them now (a client
 * span may find its parent after it registered). */
static struct link client_ids(const struct sonde_span *cl)
{
	struct link l = {.trace_flags = cl->s->trace_flags};

	memcpy(l.trace_id, cl->s->trace_id, 16);
	memcpy(l.span_id, cl->s->span_id, 8);
	return l;
}

static int add_entry(struct links *ls, uint64_t hash, const struct link_key *k,
                     struct sonde_span *sp, bool server)
{
	struct link *l;

	if (ls->n >= LINKS_MAX)
		return SONDE_ERR_LIMIT;
	l = calloc(1, sizeof(*l));
	if (!l)
		return SONDE_ERR_NOMEM;
	l->k = *k;
	l->server = server;
	l->span = sp;
	memcpy(l->trace_id, sp->s->trace_id, 16);
	memcpy(l->span_id, sp->s->span_id, 8);
	l->trace_flags = sp->s->trace_flags;
	if (hmap_put(&ls->by_hash, hash, l)) {
		free(l);
		return SONDE_ERR_NOMEM;
	}
	/* A waiting server's trace: its children ending meanwhile are parked. */
	if (server && !sp->s->remote_parent && !hmap_get(&ls->waiting, trace_key(l->trace_id)))
		hmap_put(&ls->waiting, trace_key(l->trace_id), l);
	ls->n++;
	sp->link = l;
	sp->link_hash = hash;
	return SONDE_OK;
}

/* The kernel put a traceparent into this client request: the span is what
 * went on the wire, whatever the host would have chosen. */
static bool take_injected(struct sonde_span *sp, uint8_t source, uint64_t pos)
{
	struct sonde_conn *c = sp->conn;
	struct span *s = sp->s;

	if (source != SONDE_SRC_SOCKET)
		return false;
	for (unsigned i = 0; i < c->n_inj; i++) {
		struct injected *in = &c->inj[i];

		if (in->pos != pos)
			continue;
		memcpy(s->trace_id, in->trace_id, 16);
		memcpy(s->span_id, in->span_id, 8);
		if (in->has_parent) {
			memcpy(s->parent_span_id, in->parent_id, 8);
			sp->psrc = PARENT_INJECTED;
		} else {
			memset(s->parent_span_id, 0, 8);
			sp->psrc = PARENT_NONE;
		}
		s->remote_parent = false;
		memmove(in, in + 1, (c->n_inj - i - 1) * sizeof(*in));
		c->n_inj--;
		sp->host->n.injected_matched++;
		return true;
	}
	return false;
}

/* Watched client connections by local port. A client's CONN_OPEN is
 * recorded at its connect, before it can write, so before the server can
 * read: when a server span starts, a watched client at the other end is
 * already counted here. A server span whose peer port is none of them
 * waits for no client (no entry, no allocation). */
static bool counts_client(const struct sonde_conn *c)
{
	return c->info.role == SONDE_ROLE_CLIENT && c->info.transport == SONDE_TRANSPORT_TCP &&
	       c->info.local_port && !(c->info.flags & SONDE_CONN_MIDSTREAM);
}

void links_conn_open(struct host *h, const struct sonde_conn *c)
{
	struct links *ls;
	uintptr_t n;

	if (!counts_client(c) || !(ls = links_of(h)))
		return;
	n = (uintptr_t)hmap_get(&ls->client_ports, c->info.local_port);
	hmap_put(&ls->client_ports, c->info.local_port, (void *)(n + 1));
}

void links_conn_close(struct host *h, const struct sonde_conn *c)
{
	struct links *ls = h->links;
	uintptr_t n;

	if (!ls || !counts_client(c))
		return;
	n = (uintptr_t)hmap_get(&ls->client_ports, c->info.local_port);
	if (n > 1)
		hmap_put(&ls->client_ports, c->info.local_port, (void *)(n - 1));
	else if (n)
		hmap_del(&ls->client_ports, c->info.local_port);
}

static bool client_may_be_watched(struct host *h, const struct sonde_conn *c)
{
	if (c->info.transport != SONDE_TRANSPORT_TCP)
		return true;
	return h->links && hmap_get(&h->links->client_ports, c->info.peer_port);
}

int links_span_pos(struct sonde_span *sp, uint8_t source, uint64_t pos)
{
	struct host *h = sp->host;
	enum sonde_span_kind kind = sp->s->kind;
	bool server = kind == SONDE_SPAN_SERVER || kind == SONDE_SPAN_CONSUMER;
	struct link_key k;
	struct links *ls;
	struct link *l;
	uint64_t hash;

	if (!server && kind != SONDE_SPAN_CLIENT && kind != SONDE_SPAN_PRODUCER)
		return SONDE_ERR_INVAL;
	if (!server && sp->conn->n_inj && take_injected(sp, source, pos))
		return SONDE_OK;
	/* Bytes were inserted on this connection: the peer's positions are
	 * ahead of ours, and its spans link through the header instead. */
	if (!server && sp->conn->injecting)
		return SONDE_OK;
	if (server && !client_may_be_watched(h, sp->conn))
		return SONDE_OK;
	if (sp->link || !span_key(sp, server, source, pos, &k))
		return SONDE_OK;
	if (!(ls = links_of(h)))
		return SONDE_ERR_NOMEM;
	hash = key_hash(&k);
	l = hmap_get(&ls->by_hash, hash);
	if (l && !key_eq(&l->k, &k)) {
		h->n.link_collisions++;
		return SONDE_OK; /* another pair hashes here: no link */
	}
	if (l && l->server != server) {
		/* The other end is here: link, and the entry has done its job. */
		struct link ids = client_ids(server ? l->span : sp);

		if (l->held)
			adopt_span(h, l->held, &ids);
		else
			adopt(h, server ? sp : l->span, &ids);
		link_free(h, ls, hash, l); /* a held span leaves with its parked */
		return SONDE_OK;
	}
	if (l) {
		/* The same end twice (a retransmitted request, a replay): the
		 * newer one waits. */
		link_free(h, ls, hash, l);
	}
	return add_entry(ls, hash, &k, sp, server);
}

/* Held server spans whose wait ran out leave unlinked. */
static void hold_tick(void *arg, uint64_t now)
{
	struct host *h = arg;
	struct links *ls = h->links;
	uint64_t key;
	void *val;

	if (!ls || !ls->n_held)
		return;
	for (size_t it = 0; ls->n_held && hmap_next(&ls->by_hash, &it, &key, &val);) {
		struct link *l = val;

		if (!l->held)
			continue;
		if (h->last_data_ns >= l->held_end + HOLD_RECORDS_NS ||
		    now >= l->held_end + HOLD_WALL_NS) {
			h->n.links_unmatched_held++;
			link_free(h, ls, key, l);
			it = 0; /* the map changed: start over (few entries are held) */
		}
	}
}

bool links_hold(struct host *h, struct sonde_span *sp)
{
	struct links *ls = h->links;
	struct link *l = sp->link;
	struct span **np;

	if (!ls || !l || !l->server || l->span != sp || l->n_parked >= PARKED_MAX ||
	    hmap_get(&ls->by_hash, sp->link_hash) != l)
		return false;
	if (!ls->hold_timer) {
		ls->hold_timer = runtime_timer_start(h, NULL, sp->s->end_unix_ns, HOLD_TICK_NS,
		                                     HOLD_TICK_NS, hold_tick, h);
		if (!ls->hold_timer)
			return false;
	}
	np = realloc(l->parked, (l->n_parked + 1) * sizeof(*np));
	if (!np)
		return false;
	l->parked = np;
	/* First out when the wait ends, before the children parked earlier. */
	memmove(np + 1, np, l->n_parked * sizeof(*np));
	np[0] = span_ref(sp->s);
	l->n_parked++;
	l->held = sp->s;
	l->held_end = sp->s->end_unix_ns;
	l->span = NULL;
	sp->link = NULL;
	ls->n_held++;
	return true;
}

bool links_park(struct host *h, struct span *s)
{
	struct links *ls = h->links;
	struct link *l;
	struct span **np;

	if (!ls || !ls->waiting.n)
		return false;
	l = hmap_get(&ls->waiting, trace_key(s->trace_id));
	if (!l || memcmp(l->trace_id, s->trace_id, 16) || l->n_parked >= PARKED_MAX)
		return false;
	np = realloc(l->parked, (l->n_parked + 1) * sizeof(*np));
	if (!np)
		return false;
	l->parked = np;
	l->parked[l->n_parked++] = span_ref(s);
	return true;
}

static uint64_t fwd_hash(uint32_t pid, const uint8_t trace_id[16], const uint8_t span_id[8])
{
	uint64_t h = mix(0, pid), a, b, c;

	memcpy(&a, trace_id, 8);
	memcpy(&b, trace_id + 8, 8);
	memcpy(&c, span_id, 8);
	h = mix(mix(mix(h, a), b), c);
	return h ? h : 1;
}

static void fwd_add(struct links *ls, struct sonde_span *sp)
{
	uint64_t k = fwd_hash(sp->conn->info.pid, sp->s->trace_id, sp->s->parent_span_id);
	struct fwd *f = hmap_get(&ls->fwd, k);

	if (f && (f->pid != sp->conn->info.pid || memcmp(f->trace_id, sp->s->trace_id, 16) ||
	          memcmp(f->span_id, sp->s->parent_span_id, 8)))
		return; /* a hash collision: this one is not indexed */
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f || hmap_put(&ls->fwd, k, f)) {
			free(f);
			return;
		}
		f->pid = sp->conn->info.pid;
		memcpy(f->trace_id, sp->s->trace_id, 16);
		memcpy(f->span_id, sp->s->parent_span_id, 8);
	}
	f->count++;
	f->span = f->count == 1 ? sp : NULL;
	sp->fwd_key = k;
}

static void fwd_del(struct links *ls, struct sonde_span *sp)
{
	struct fwd *f = hmap_get(&ls->fwd, sp->fwd_key);

	sp->fwd_key = 0;
	if (!f)
		return;
	if (f->span == sp)
		f->span = NULL;
	if (--f->count == 0) {
		hmap_del(&ls->fwd, fwd_hash(f->pid, f->trace_id, f->span_id));
		free(f);
	}
}

/* A SERVER span received this context. */
static void incoming(struct host *h, struct links *ls, struct sonde_span *sp,
                     const uint8_t tid[16], const uint8_t sid[8], uint8_t flags)
{
	struct span *s = sp->s;
	struct link *l = sp->link;

	if (sp->fwd_key)
		fwd_del(ls, sp);
	if (sp->psrc == PARENT_LINK && !memcmp(s->trace_id, tid, 16)) {
		/* Same trace: the link names the nearer parent (a proxy between
		 * forwards its caller's context unchanged). */
		fwd_add(ls, sp);
		return;
	}
	if (sp->psrc == PARENT_LINK)
		h->n.link_conflicts++;
	/* Still waiting for its client, with a trace of its own: whatever
	 * copied that trace follows it to the incoming one. */
	if (l && l->server && hmap_get(&ls->waiting, trace_key(l->trace_id)) == l) {
		hmap_del(&ls->waiting, trace_key(l->trace_id));
		if (memcmp(l->trace_id, tid, 16))
			remap_add(ls, l->trace_id, tid);
		memcpy(s->trace_id, tid, 16);
		unpark(h, l);
	}
	memcpy(s->trace_id, tid, 16);
	memcpy(s->parent_span_id, sid, 8);
	s->trace_flags = flags;
	s->remote_parent = true;
	sp->psrc = PARENT_HEADER;
	fwd_add(ls, sp);
	tracer_serving(h, sp);
}

/* A CLIENT request of this process carries this context: a proxy
 * forwarding what one of its server spans received. */
static void forwarded(struct links *ls, struct sonde_span *sp, const uint8_t tid[16],
                      const uint8_t sid[8])
{
	struct fwd *f;
	struct span *s = sp->s;

	if (sp->psrc == PARENT_EXPLICIT || sp->psrc == PARENT_CONTEXT)
		return;
	f = hmap_get(&ls->fwd, fwd_hash(sp->conn->info.pid, tid, sid));
	if (!f || f->pid != sp->conn->info.pid || memcmp(f->trace_id, tid, 16) ||
	    memcmp(f->span_id, sid, 8) || !f->span || f->span->state != SPAN_OPEN)
		return; /* none, or more than one received it: no parent from it */
	memcpy(s->trace_id, f->span->s->trace_id, 16);
	memcpy(s->parent_span_id, f->span->s->span_id, 8);
	s->trace_flags = f->span->s->trace_flags;
	s->remote_parent = false;
	sp->psrc = PARENT_FORWARDED;
}

int links_traceparent(struct sonde_span *sp, const uint8_t tid[16], const uint8_t sid[8],
                      uint8_t flags)
{
	struct host *h = sp->host;
	enum sonde_span_kind kind = sp->s->kind;
	struct links *ls = links_of(h);

	if (!ls)
		return SONDE_ERR_NOMEM;
	if (kind == SONDE_SPAN_SERVER || kind == SONDE_SPAN_CONSUMER)
		incoming(h, ls, sp, tid, sid, flags);
	else if (kind == SONDE_SPAN_CLIENT || kind == SONDE_SPAN_PRODUCER)
		forwarded(ls, sp, tid, sid);
	return SONDE_OK;
}

void links_span_gone(struct sonde_span *sp)
{
	struct links *ls = sp->host->links;
	struct link *l = sp->link;

	if (!ls)
		return;
	if (sp->fwd_key)
		fwd_del(ls, sp);
	if (!l)
		return;
	if (hmap_get(&ls->by_hash, sp->link_hash) == l)
		link_free(sp->host, ls, sp->link_hash, l);
	sp->link = NULL;
}

void links_free(struct host *h)
{
	struct links *ls = h->links;
	uint64_t key;
	void *val;

	if (!ls)
		return;
	for (size_t it = 0; hmap_next(&ls->by_hash, &it, &key, &val);) {
		struct link *l = val;

		if (l->span && l->span->link == l)
			l->span->link = NULL;
		unpark(h, l);
		free(l);
	}
	ls->n_held = 0; /* the host frees hold_timer with the other timers */
	for (size_t it = 0; hmap_next(&ls->fwd, &it, &key, &val);)
		free(val);
	hmap_free(&ls->by_hash);
	hmap_free(&ls->client_ports);
	hmap_free(&ls->waiting);
	hmap_free(&ls->fwd);
	free(ls);
	h->links = NULL;
}
