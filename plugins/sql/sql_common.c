/*
 * sql_common.c - the parts of the sql plugin that do not depend on the
 * wire protocol: statements, the statement map, span building, counters
 * and settings.
 *
 * The one idea: an operation becomes a span through sql_op_start() when
 * its request is seen (so the host can parent a client span to the
 * request its thread is serving) and sql_op_end() when its response ends;
 * if the host refused the span at the start (its per-connection limit),
 * the span is started late, at the end, with the original start time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "sql_internal.h"

/* ---- counters ---------------------------------------------------------------- */

void sql_stats_add(struct sql_stats *to, const struct sql_stats *from)
{
	const uint64_t *f = (const uint64_t *)from;
	uint64_t *t = (uint64_t *)to;

	for (size_t i = 0; i < sizeof(*from) / sizeof(uint64_t); i++)
		t[i] += f[i];
}

/* ---- settings ------------------------------------------------------------------ */

int sql_config_bool(struct sql_plugin *pl, struct sonde_conn *conn, const char *key, int dflt)
{
	const char *const *v = NULL;
	size_t n = pl->host->config_get(pl->self, conn, key, &v);

	if (n == 0 || !v || !v[0])
		return dflt;
	if (!strcasecmp(v[0], "true") || !strcasecmp(v[0], "yes") || !strcasecmp(v[0], "on") ||
	    !strcmp(v[0], "1"))
		return 1;
	if (!strcasecmp(v[0], "false") || !strcasecmp(v[0], "no") || !strcasecmp(v[0], "off") ||
	    !strcmp(v[0], "0"))
		return 0;
	return dflt;
}

long sql_config_long(struct sql_plugin *pl, struct sonde_conn *conn, const char *key, long dflt,
                     long min, long max)
{
	const char *const *v = NULL;
	size_t n = pl->host->config_get(pl->self, conn, key, &v);
	char *end = NULL;
	long x;

	if (n == 0 || !v || !v[0])
		return dflt;
	x = strtol(v[0], &end, 10);
	if (!end || *end != '\0' || end == v[0])
		return dflt;
	return x < min ? min : x > max ? max : x;
}

void sql_settings_read(struct sql_plugin *pl, struct sonde_conn *conn, struct sql_settings *s)
{
	s->query_text = (uint8_t)sql_config_bool(pl, conn, "query_text", 1);
	s->query_max = (uint32_t)sql_config_long(pl, conn, "max_query_bytes", SQL_QUERY_DEFAULT,
	                                         SQL_QUERY_MIN, SQL_QUERY_MAX_CFG);
	s->prepared_max = (uint32_t)sql_config_long(pl, conn, "max_prepared",
	                                            SQL_PREPARED_DEFAULT, 16, 65536);
	s->dark_timeout_s = (uint32_t)sql_config_long(pl, conn, "dark_timeout",
	                                              SQL_DARK_TIMEOUT_DEFAULT, 0, 86400);
}

/* ---- statements -------------------------------------------------------------------- */

static uint64_t raw_hash(const char *in, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)in[i];
		h *= 1099511628211ull;
	}
	return h;
}

int sql_stmt_same(const struct sql_stmt *st, enum sql_backslash bs, const char *in, size_t n,
                  int complete)
{
	return st && st->raw_len == n && st->raw_complete == (complete != 0) && st->raw_bs == bs &&
	       st->raw_hash == raw_hash(in, n);
}

struct sql_stmt *sql_stmt_new(enum sql_dialect d, enum sql_backslash bs, const char *in,
                              size_t n, int complete, int with_text)
{
	struct sql_stmt *st = calloc(1, sizeof(*st));
	char *buf = NULL;
	size_t len;

	if (!st)
		return NULL;
	st->refs = 1;
	st->raw_hash = raw_hash(in, n);
	st->raw_len = (uint32_t)n;
	st->raw_complete = complete != 0;
	st->raw_bs = (uint8_t)bs;
	if (with_text) {
		buf = malloc(n + 1);
		if (!buf) {
			free(st);
			return NULL;
		}
	}
	len = sql_sanitize(d, bs, in, n, complete, buf, buf ? n + 1 : 0, &st->cls);
	if (buf && len > 0) {
		char *shrunk = realloc(buf, len + 1);

		st->text = shrunk ? shrunk : buf;
	} else {
		free(buf);
	}
	return st;
}

struct sql_stmt *sql_stmt_ref(struct sql_stmt *st)
{
	if (st)
		st->refs++;
	return st;
}

void sql_stmt_unref(struct sql_stmt *st)
{
	if (!st || --st->refs > 0)
		return;
	free(st->text);
	free(st);
}

/* ---- the statement map ----------------------------------------------------------------- */

static uint64_t key_hash(uint64_t id, const char *name, size_t len)
{
	uint64_t h = 1469598103934665603ull ^ id;

	for (size_t i = 0; name && i < len; i++) {
		h ^= (uint8_t)name[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h | 1; /* 0 marks an empty slot */
}

void sql_map_init(struct sql_map *m, uint32_t max)
{
	memset(m, 0, sizeof(*m));
	m->max = max;
}

static void ent_free(struct sql_map_ent *e)
{
	sql_stmt_unref(e->st);
	free(e->name);
	memset(e, 0, sizeof(*e));
}

void sql_map_clear(struct sql_map *m)
{
	for (uint32_t i = 0; i < m->cap; i++)
		if (m->e[i].hash)
			ent_free(&m->e[i]);
	m->n = 0;
}

void sql_map_free(struct sql_map *m)
{
	sql_map_clear(m);
	free(m->e);
	m->e = NULL;
	m->cap = 0;
}

static int ent_is(const struct sql_map_ent *e, uint64_t h, const char *name, size_t len)
{
	if (e->hash != h)
		return 0;
	if (!name)
		return e->name == NULL;
	return e->name && e->name_len == len && memcmp(e->name, name, len) == 0;
}

static struct sql_map_ent *find(struct sql_map *m, uint64_t h, const char *name, size_t len)
{
	if (!m->cap)
		return NULL;
	for (uint32_t i = (uint32_t)(h & (m->cap - 1));; i = (i + 1) & (m->cap - 1)) {
		struct sql_map_ent *e = &m->e[i];

		if (!e->hash)
			return NULL;
		if (ent_is(e, h, name, len))
			return e;
	}
}

/* Remove slot i and shift the following cluster back (no tombstones). */
static void remove_at(struct sql_map *m, uint32_t i)
{
	uint32_t mask = m->cap - 1, j = i;

	ent_free(&m->e[i]);
	m->n--;
	for (;;) {
		uint32_t home;

		j = (j + 1) & mask;
		if (!m->e[j].hash)
			return;
		home = (uint32_t)(m->e[j].hash & mask);
		/* may the entry at j move to the hole at i? */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			m->e[i] = m->e[j];
			memset(&m->e[j], 0, sizeof(m->e[j]));
			i = j;
		}
	}
}

static void insert_slot(struct sql_map *m, struct sql_map_ent *src)
{
	for (uint32_t i = (uint32_t)(src->hash & (m->cap - 1));; i = (i + 1) & (m->cap - 1)) {
		if (!m->e[i].hash) {
			m->e[i] = *src;
			return;
		}
	}
}

static int grow(struct sql_map *m)
{
	uint32_t cap = m->cap ? m->cap * 2 : 16;
	struct sql_map_ent *old = m->e, *ne = calloc(cap, sizeof(*ne));
	uint32_t oldcap = m->cap;

	if (!ne)
		return -1;
	m->e = ne;
	m->cap = cap;
	for (uint32_t i = 0; i < oldcap; i++)
		if (old[i].hash)
			insert_slot(m, &old[i]);
	free(old);
	return 0;
}

static void evict_lru(struct sql_map *m)
{
	uint32_t best = UINT32_MAX;

	for (uint32_t i = 0; i < m->cap; i++)
		if (m->e[i].hash && (best == UINT32_MAX || m->e[i].used < m->e[best].used))
			best = i;
	if (best != UINT32_MAX)
		remove_at(m, best);
}

int sql_map_put(struct sql_map *m, uint64_t id, const char *name, size_t name_len,
                struct sql_stmt *st)
{
	uint64_t h = key_hash(id, name, name_len);
	struct sql_map_ent *e = find(m, h, name, name_len), ne;
	int evicted = 0;

	if (e) {
		sql_stmt_unref(e->st);
		e->st = sql_stmt_ref(st);
		e->used = ++m->clock;
		return 0;
	}
	if (m->n >= m->max) {
		evict_lru(m);
		evicted = 1;
	}
	if ((m->n + 1) * 2 > m->cap && grow(m) < 0)
		return -1;
	memset(&ne, 0, sizeof(ne));
	ne.hash = h;
	if (name) {
		ne.name = malloc(name_len ? name_len : 1);
		if (!ne.name)
			return -1;
		memcpy(ne.name, name, name_len);
		ne.name_len = (uint32_t)name_len;
	}
	ne.used = ++m->clock;
	ne.st = sql_stmt_ref(st);
	insert_slot(m, &ne);
	m->n++;
	return evicted;
}

struct sql_stmt *sql_map_get(struct sql_map *m, uint64_t id, const char *name, size_t name_len)
{
	struct sql_map_ent *e = find(m, key_hash(id, name, name_len), name, name_len);

	if (!e)
		return NULL;
	e->used = ++m->clock;
	return e->st;
}

void sql_map_del(struct sql_map *m, uint64_t id, const char *name, size_t name_len)
{
	struct sql_map_ent *e = find(m, key_hash(id, name, name_len), name, name_len);

	if (e)
		remove_at(m, (uint32_t)(e - m->e));
}

/* ---- connections ------------------------------------------------------------------------- */

void sql_conn_init(struct sql_conn *sc, struct sql_plugin *pl, struct sonde_conn *conn,
                   const struct sonde_conn_info *ci, const char *system)
{
	memset(sc, 0, sizeof(*sc));
	sc->pl = pl;
	sc->conn = conn;
	sc->conn_id = ci->conn_id;
	sc->role = ci->role;
	sc->system = system;
	sc->family = ci->family;
	snprintf(sc->local_addr, sizeof(sc->local_addr), "%s", ci->local_addr);
	snprintf(sc->peer_addr, sizeof(sc->peer_addr), "%s", ci->peer_addr);
	sc->local_port = ci->local_port;
	sc->peer_port = ci->peer_port;
	/* ABI 1.1: a unix socket says so, with its whole path (the server
	 * end's: both the server address and the peer a client talks to). */
	if (SONDE_HAS_FIELD(ci, struct sonde_conn_info, unix_path) &&
	    ci->transport == SONDE_TRANSPORT_UNIX && ci->unix_path) {
		sc->family = AF_UNIX;
		snprintf(sc->local_addr, sizeof(sc->local_addr), "%s", ci->unix_path);
		snprintf(sc->peer_addr, sizeof(sc->peer_addr), "%s", ci->unix_path);
		sc->local_port = sc->peer_port = 0;
	}
	sql_settings_read(pl, conn, &sc->set);
	if (SONDE_HAS_FIELD(ci, struct sonde_conn_info, flags))
		sc->flags = ci->flags;
	sc->pol.struct_size = sizeof(sc->pol);
	sc->next = pl->conns;
	if (pl->conns)
		pl->conns->pprev = &sc->next;
	sc->pprev = &pl->conns;
	pl->conns = sc;
	sql_capture_role(sc);
}

void sql_conn_fini(struct sql_conn *sc)
{
	const struct sql_stats *s = &sc->st;

	sql_report_stats(sc);
	*sc->pprev = sc->next;
	if (sc->next)
		sc->next->pprev = sc->pprev;

	if (s->dropped || s->unmatched || s->sync_lost || s->span_limit || s->unknown_stmt)
		sc->pl->host->log(sc->pl->self, SONDE_LOG_DEBUG,
		                  "conn %llu (%s): %llu operations, %llu spans, %llu dropped, "
		                  "%llu unmatched responses, %llu sync losses, %llu unknown statements",
		                  (unsigned long long)sc->conn_id, sc->system,
		                  (unsigned long long)s->ops, (unsigned long long)s->spans,
		                  (unsigned long long)s->dropped, (unsigned long long)s->unmatched,
		                  (unsigned long long)s->sync_lost,
		                  (unsigned long long)s->unknown_stmt);
	sql_stats_add(&sc->pl->tot, s);
}

/* ---- SDK 1.1 ------------------------------------------------------------------------------ */

int sql_role_from_bytes(const struct sql_conn *sc)
{
	const struct sonde_host_api *h = sc->pl->host;

	if (h->abi_minor < 1 || sc->role == SONDE_ROLE_UNKNOWN)
		return 1;
	return (sc->flags & (SONDE_CONN_ROLE_INFERRED | SONDE_CONN_MIDSTREAM)) != 0;
}

void sql_track_chunk(struct sql_track *t, const struct sonde_chunk *c)
{
	if (!SONDE_HAS_FIELD(c, struct sonde_chunk, source)) {
		t->started = 1;
		t->exact = 0;
		return;
	}
	if (!t->started)
		t->exact = c->pos == 0 && !(c->flags & SONDE_CHUNK_GAP);
	else if (c->source != t->src || c->pos != t->next || (c->flags & SONDE_CHUNK_GAP))
		t->exact = 0;
	t->started = 1;
	t->src = c->source;
	t->next = c->pos + c->orig_len;
}

void sql_track_lost(struct sql_track *t)
{
	t->started = 1;
	t->exact = 0;
}

void sql_track_restart(struct sql_track *t)
{
	t->started = 0;
	t->exact = 0;
}

uint64_t sql_track_pos(const struct sql_track *t, const struct sonde_chunk *c, size_t off)
{
	return t->exact ? c->pos + off : SQL_NOPOS;
}

int sql_chunk_tls(const struct sql_conn *sc, const struct sonde_chunk *c)
{
	const struct sonde_conn_info *ci;

	/* The chunk says it (1.1); a socket chunk is still plaintext when the
	 * host says the connection is (a 1.0-style feeder: replays of old
	 * recordings, th_conn_set_tls). */
	if (SONDE_HAS_FIELD(c, struct sonde_chunk, source) && c->source != SONDE_SRC_SOCKET)
		return 1;
	ci = sc->pl->host->conn_info(sc->conn);
	return ci && ci->tls;
}

/* 1 when the kernel will obey (SONDE_ERR_UNSUPPORTED: no kernel, a replay
 * or the test host; a 1.0 host has no such call). */
static int push_policy(struct sql_conn *sc)
{
	const struct sonde_host_api *h = sc->pl->host;

	if (!SQL_HOST_HAS(h, conn_set_capture) || !sc->conn)
		return 0;
	return h->conn_set_capture(sc->conn, &sc->pol) == SONDE_OK;
}

void sql_capture_role(struct sql_conn *sc)
{
	uint32_t cap = sc->role == SONDE_ROLE_SERVER ? SQL_SERVER_CAP : 0;

	if (sc->pol.cap == cap || sc->muted)
		return;
	sc->pol.cap = cap;
	push_policy(sc);
}

int sql_capture_mute(struct sql_conn *sc)
{
	if (!sc->muted) {
		sc->pol.flags |= SONDE_CAPTURE_MUTE;
		sc->muted = (uint8_t)push_policy(sc);
	}
	return sc->muted;
}

void sql_capture_skip(struct sql_conn *sc, const struct sonde_chunk *c, uint64_t left)
{
	uint64_t to;
	int d = c->dir == SONDE_DIR_EGRESS;

	if (left < SQL_SKIP_MIN || sc->muted || !SONDE_HAS_FIELD(c, struct sonde_chunk, source) ||
	    c->source != SONDE_SRC_SOCKET)
		return;
	to = c->pos + c->orig_len + left;
	if (to <= sc->pol.skip_to[d])
		return;
	sc->pol.skip_to[d] = to;
	push_policy(sc);
}

/* sonde.event values, in the order of struct sql_stats. */
static const char *const event_names[] = {
	"operations",     "spans",          "errors",         "dropped",       "unmatched",
	"sync_lost",      "resyncs",        "dark_done",      "ended_unseen",  "unknown_stmt",
	"stmt_evicted",   "not_run",        "split_mismatch", "unanswered",    "tls",
	"compressed",     "given_up",       "span_limit",     "late_spans",    "cancels",
	"auth_failed",
};

void sql_report_stats(struct sql_conn *sc)
{
	const uint64_t *now = (const uint64_t *)&sc->st;
	uint64_t *was = (uint64_t *)&sc->reported;
	const char *vals[2] = { sc->system, NULL };

	_Static_assert(sizeof(event_names) / sizeof(event_names[0]) ==
	               sizeof(struct sql_stats) / sizeof(uint64_t), "one name per counter");
	if (!sc->pl->events)
		return;
	for (size_t i = 0; i < sizeof(event_names) / sizeof(event_names[0]); i++) {
		/* spans and errors are the spans themselves (and the histogram) */
		if (now[i] == was[i] || i == 1 || i == 2)
			continue;
		vals[1] = event_names[i];
		sc->pl->host->counter_add(sc->pl->events, sc->conn, (double)(now[i] - was[i]), vals);
		was[i] = now[i];
	}
}

/* ---- spans --------------------------------------------------------------------------------- */

void sql_result_init(struct sql_result *r)
{
	memset(r, 0, sizeof(*r));
	r->returned_rows = -1;
	r->affected_rows = -1;
}

static void span_name(const struct sql_conn *sc, const struct sql_stmt *st, const char *op,
                      char *out, size_t cap)
{
	const char *coll = st ? st->cls.coll : "";

	if (op[0] && coll[0])
		snprintf(out, cap, "%s %s", op, coll);
	else if (op[0])
		snprintf(out, cap, "%s", op);
	else if (sc->ns[0])
		snprintf(out, cap, "%s", sc->ns);
	else
		snprintf(out, cap, "%s", sc->system);
}

static void attr(const struct sonde_host_api *h, struct sonde_span *s, const char *k,
                 const char *v)
{
	h->span_attr_str(s, k, v, strlen(v));
}

static struct sonde_span *begin(struct sql_conn *sc, const struct sql_op *op)
{
	const struct sonde_host_api *h = sc->pl->host;
	const struct sql_stmt *st = op->st;
	int server = sc->role == SONDE_ROLE_SERVER;
	const char *saddr = server ? sc->local_addr : sc->peer_addr;
	uint16_t sport = server ? sc->local_port : sc->peer_port;
	char name[SQL_OP_MAX + SQL_COLL_MAX + 2];
	struct sonde_span *s;

	span_name(sc, st, st ? st->cls.op : "", name, sizeof(name));
	s = h->span_start(sc->conn, name, server ? SONDE_SPAN_SERVER : SONDE_SPAN_CLIENT,
	                  op->start_ns);
	if (!s)
		return NULL;
	/* Where its request starts: the host links the two ends of a
	 * connection it watches on both sides by it. */
	if (op->pos != SQL_NOPOS && SONDE_HAS_FIELD(h, struct sonde_host_api, span_set_pos) &&
	    h->span_set_pos)
		h->span_set_pos(s, op->src, op->pos);
	attr(h, s, "db.system", sc->system);
	if (sc->ns[0])
		attr(h, s, "db.namespace", sc->ns);
	if (st && st->cls.op[0])
		attr(h, s, "db.operation.name", st->cls.op);
	if (st && st->cls.coll[0])
		attr(h, s, "db.collection.name", st->cls.coll);
	if (st && st->text && sc->set.query_text)
		attr(h, s, "db.query.text", st->text);
	if (saddr[0])
		attr(h, s, "server.address", saddr);
	if (sc->family == AF_UNIX) {
		attr(h, s, "network.transport", "unix");
		if (sc->peer_addr[0])
			attr(h, s, "network.peer.address", sc->peer_addr);
	} else {
		if (sport)
			h->span_attr_int(s, "server.port", sport);
		if (sc->peer_addr[0])
			attr(h, s, "network.peer.address", sc->peer_addr);
		if (sc->peer_port)
			h->span_attr_int(s, "network.peer.port", sc->peer_port);
	}
	if (!server && sc->pl->duration)
		h->span_add_metric(s, sc->pl->duration);
	return s;
}

void sql_op_start(struct sql_conn *sc, struct sql_op *op, struct sql_stmt *st, uint64_t ts,
                  uint64_t pos)
{
	memset(op, 0, sizeof(*op));
	op->st = sql_stmt_ref(st);
	op->start_ns = ts;
	op->pos = pos;
	op->src = sc->req.src;
	op->active = 1;
	sc->st.ops++;
	op->span = begin(sc, op);
	if (!op->span) {
		sc->st.span_limit++;
		op->late = 1;
	}
}

static void release(struct sql_op *op)
{
	sql_stmt_unref(op->st);
	memset(op, 0, sizeof(*op));
}

void sql_op_drop(struct sql_conn *sc, struct sql_op *op)
{
	if (!op->active)
		return;
	if (op->span)
		sc->pl->host->span_drop(op->span);
	sc->st.dropped++;
	release(op);
}

void sql_op_end(struct sql_conn *sc, struct sql_op *op, uint64_t ts, const struct sql_result *r)
{
	const struct sonde_host_api *h = sc->pl->host;
	struct sonde_span *s;

	if (!op->active)
		return;
	if (op->late) {
		op->span = begin(sc, op);
		sc->st.late_spans += op->span != NULL;
	}
	s = op->span;
	if (!s) {
		sc->st.dropped++;
		release(op);
		return;
	}
	if (r && r->op && r->op[0] && op->st && strcmp(op->st->cls.op, "WITH") == 0) {
		char name[SQL_OP_MAX + 1];

		attr(h, s, "db.operation.name", r->op);
		snprintf(name, sizeof(name), "%s", r->op);
		h->span_set_name(s, name);
	}
	if (r && r->returned_rows >= 0)
		h->span_attr_int(s, "db.response.returned_rows", r->returned_rows);
	if (r && r->affected_rows >= 0)
		h->span_attr_int(s, "sonde.db.rows_affected", r->affected_rows);
	if (r && r->error_type) {
		attr(h, s, "error.type", r->error_type);
		if (r->status_code)
			attr(h, s, "db.response.status_code", r->status_code);
		h->span_set_status(s, SONDE_STATUS_ERROR, r->error_type);
		sc->st.errors++;
	}
	h->span_end(s, ts);
	sc->st.spans++;
	release(op);
}
