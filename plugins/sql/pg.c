/*
 * pg.c - the `postgresql` protocol of the sql plugin: PostgreSQL v3
 * frontend/backend messages in, one span per executed statement out.
 *
 * The one idea: the server answers the frontend's messages in order, so a
 * connection keeps a FIFO of the frontend messages still awaiting their
 * answer (Parse -> ParseComplete, Bind -> BindComplete, Execute ->
 * CommandComplete, Sync -> ReadyForQuery, Query -> ... ReadyForQuery), and
 * each backend message answers the head. Spans come from Execute messages
 * (named from the statement their portal was bound to, itself from the
 * Parse that prepared it) and from simple Query messages (one span per
 * statement of the query string when it can be split at its semicolons and
 * the CommandCompletes line up; one span per Query message otherwise).
 *
 * ReadyForQuery ends a "cycle" (a Query, or the extended messages up to a
 * Sync) and is the anchor for everything that goes wrong: after an
 * ErrorResponse the server skips to the Sync; after lost bytes in the
 * middle of a big result (the capture keeps only the first bytes of each
 * read or write) the cycle is finished from the tail of the chunk that
 * ends in ReadyForQuery (found by chaining headers backwards), or, failing
 * that, when the client sends its next request. Lost frontend bytes drop
 * what is pending; both directions then wait for a chunk that starts with
 * a valid chain of headers.
 *
 * Nothing of a value is kept: bodies are copied only for the messages read
 * (query texts, statement and portal names, command tags, the SQLSTATE of
 * errors); passwords, parameters, rows and COPY data are skipped by count.
 *
 * SDK 1.1 (when the host has it, see sql_common.c): the rest of a message
 * body nobody reads is not even copied by the kernel (skip_to), the server
 * side asks for a 16 KiB capture, a connection given up (GSS encryption,
 * replication) is muted instead of answered SONDE_ERR_PROTO, TLS plaintext
 * is told by the chunk's source, and a timer ends a dark cycle whose tail
 * may have been in a cut chunk once the server is silent (dark_timeout).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_wire.h"
#include "sql_internal.h"

/* A connection whose plaintext never comes after 'S' (TLS not hooked). */
#define PG_MAX_TLS_WAIT_CHUNKS 256
/* A connection with no startup and no clean start in this many chunks. */
#define PG_MAX_UNSYNCED_CHUNKS 256

enum pg_kind {
	PK_STARTUP = 0, PK_QUERY, PK_FUNC, PK_SYNC, /* cycles: end at ReadyForQuery */
	PK_PARSE, PK_BIND, PK_DESC_S, PK_DESC_P, PK_EXECUTE, PK_CLOSE,
};

enum pg_phase {
	PH_INIT = 0,    /* nothing seen yet */
	PH_SSL_ANSWER,  /* SSLRequest sent: one byte 'S' or 'N' comes back */
	PH_GSS_ANSWER,  /* GSSENCRequest sent: 'G' or 'N' */
	PH_TLS_WAIT,    /* 'S': ciphertext until the TLS plaintext arrives */
	PH_RUN,         /* messages */
	PH_DONE,        /* CancelRequest: nothing more to follow */
};

struct pg_pend {
	uint8_t kind;
	uint8_t got_t;           /* DESC_S: ParameterDescription came */
	uint8_t whole;           /* QUERY: one span for the whole string */
	uint8_t err;             /* QUERY whole: an error came */
	uint8_t empty;           /* QUERY: empty query string */
	uint8_t dark;            /* QUERY whole: some completions were lost */
	uint8_t single;          /* QUERY whole: the string holds one statement */
	uint16_t n_parts, cur;   /* QUERY split: statements, the one running */
	uint16_t n_done;         /* QUERY whole: completions seen */
	uint64_t start_ns;
	uint64_t pos;            /* where the message starts (SQL_NOPOS: unknown) */
	int64_t rows;            /* QUERY whole: rows of its one completion */
	char sqlstate[6];        /* QUERY whole: the first error */
	char tag_op[SQL_OP_MAX]; /* QUERY whole: verb of its one completion */
	struct sql_op op;        /* EXECUTE; QUERY: the running statement */
	struct sql_stmt *st;     /* PARSE: its statement (for an error span) */
	struct sql_stmt **parts; /* QUERY split */
	uint32_t *part_off;      /* QUERY split: where each statement's text starts
	                            in the message */
};

struct pg_conn {
	struct sql_conn sc;
	enum pg_phase phase;
	int fe_dir;              /* enum sonde_dir of frontend messages */
	struct pg_stream fe, be;
	uint8_t fe_sync, be_sync, ever_synced;
	uint8_t be_dark;         /* lost bytes inside the head cycle's response */
	uint8_t from_start;      /* the startup packet was seen */
	uint8_t giving_up;       /* GSS encryption, replication: not followed */
	uint8_t last_be_cut;     /* the last backend chunk was cut by the capture */
	enum sql_backslash bs;
	uint32_t unsynced_chunks, tls_wait_chunks;
	uint64_t last_be_ts;
	uint64_t msg_pos;        /* where the frontend message being read starts
	                            (SQL_NOPOS: unknown) */
	struct pg_pend *q;       /* ring: q_len entries from q_head */
	size_t q_head, q_len, q_cap;
	uint32_t cycles;         /* cycle entries pending */
	uint8_t err_skip;        /* an error: the server skips to the Sync */
	uint8_t copy_in;         /* COPY FROM STDIN running: the client sends data */
	struct sql_map stmts, portals;
	struct sql_stmt *unnamed_stmt, *unnamed_portal;
};

/* ---- the FIFO --------------------------------------------------------------------- */

static int is_cycle(uint8_t kind)
{
	return kind <= PK_SYNC;
}

static struct pg_pend *q_at(struct pg_conn *pc, size_t i)
{
	return &pc->q[(pc->q_head + i) % pc->q_cap];
}

static struct pg_pend *q_peek(struct pg_conn *pc)
{
	return pc->q_len ? q_at(pc, 0) : NULL;
}

static void pend_free(struct pg_conn *pc, struct pg_pend *p)
{
	sql_op_drop(&pc->sc, &p->op); /* a no-op once it ended */
	sql_stmt_unref(p->st);
	for (uint16_t i = 0; p->parts && i < p->n_parts; i++)
		sql_stmt_unref(p->parts[i]);
	free(p->parts);
	free(p->part_off);
	memset(p, 0, sizeof(*p));
}

static void q_pop(struct pg_conn *pc)
{
	struct pg_pend *p = q_peek(pc);

	if (!p)
		return;
	if (is_cycle(p->kind) && pc->cycles)
		pc->cycles--;
	pend_free(pc, p);
	pc->q_head = (pc->q_head + 1) % pc->q_cap;
	pc->q_len--;
}

static void drop_all(struct pg_conn *pc)
{
	while (pc->q_len)
		q_pop(pc);
	pc->err_skip = 0;
	pc->be_dark = 0;
	pc->copy_in = 0;
}

static struct pg_pend *q_push(struct pg_conn *pc, uint8_t kind, uint64_t ts)
{
	struct pg_pend *p;

	if (pc->q_len == pc->q_cap) {
		size_t cap = pc->q_cap ? pc->q_cap * 2 : 16;
		struct pg_pend *n;

		if (pc->q_len >= SQL_MAX_PENDING)
			return NULL;
		if (cap > SQL_MAX_PENDING)
			cap = SQL_MAX_PENDING;
		n = malloc(cap * sizeof(*n));
		if (!n)
			return NULL;
		for (size_t i = 0; i < pc->q_len; i++)
			n[i] = *q_at(pc, i);
		free(pc->q);
		pc->q = n;
		pc->q_cap = cap;
		pc->q_head = 0;
	}
	p = &pc->q[(pc->q_head + pc->q_len) % pc->q_cap];
	pc->q_len++;
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	p->start_ns = ts;
	p->pos = pc->msg_pos;
	p->rows = -1;
	if (is_cycle(kind))
		pc->cycles++;
	return p;
}

/* ---- losing and finding our place ------------------------------------------------------- */

static void log_dbg(struct pg_conn *pc, const char *what)
{
	pc->sc.pl->host->log(pc->sc.pl->self, SONDE_LOG_DEBUG, "conn %llu: %s",
	                     (unsigned long long)pc->sc.conn_id, what);
}

static void lose_fe(struct pg_conn *pc, const char *why)
{
	pc->sc.st.sync_lost++;
	sql_track_lost(&pc->sc.req); /* a place found again is a guess */
	log_dbg(pc, why);
	if (pc->copy_in && pc->q_len) {
		/* Lost COPY data: the client sends nothing that is answered
		 * until CopyDone, so what is pending still matches. */
		pc->fe_sync = 0;
		pg_stream_reset(&pc->fe, 0);
		return;
	}
	drop_all(pc);
	pc->fe_sync = 0;
	pc->be_sync = 0;
	pg_stream_reset(&pc->fe, 0);
	pg_stream_reset(&pc->be, 0);
}

/* Backend bytes lost. With one cycle pending its answer can still be
 * finished from its tail; with more, nothing pending can be matched. */
static void lose_be(struct pg_conn *pc, const char *why)
{
	pc->sc.st.sync_lost++;
	log_dbg(pc, why);
	pc->be_sync = 0;
	pg_stream_reset(&pc->be, 0);
	if (pc->cycles == 1 && pc->q_len > 0 && is_cycle(q_at(pc, pc->q_len - 1)->kind)) {
		pc->be_dark = 1;
		return;
	}
	drop_all(pc);
}

/* A chunk that starts with a chain of valid headers (at least one whole). */
static int clean_start(int side, const struct sonde_chunk *c)
{
	int end = 0, n = pg_chain(side, c->data, c->len, &end);

	return n >= 1 || (side == PG_FE && n == 0 && end == 1 && c->len >= 5 &&
	                  (c->data[0] == 'Q' || c->data[0] == 'P'));
}

static void resynced(struct pg_conn *pc)
{
	if (pc->ever_synced)
		pc->sc.st.resyncs++;
	pc->ever_synced = 1;
}

/* ---- statements ---------------------------------------------------------------------------- */

static struct sql_stmt *stmt_new(struct pg_conn *pc, const char *text, size_t n, int complete)
{
	return sql_stmt_new(SQL_DIALECT_PG, pc->bs, text, n, complete, pc->sc.set.query_text);
}

/* A NUL-terminated name at body[*off]: 1 with (*s, *n), or 0. */
static int name_at(const struct pg_msg *m, size_t *off, const char **s, size_t *n)
{
	size_t start = *off;
	long len = pg_cstr(m->body, m->copied, off);

	if (len < 0)
		return 0;
	*s = (const char *)m->body + start;
	*n = (size_t)len;
	return 1;
}

static struct sql_stmt *stmt_named(struct pg_conn *pc, const char *name, size_t n)
{
	if (n == 0)
		return pc->unnamed_stmt;
	return sql_map_get(&pc->stmts, 0, name, n);
}

static struct sql_stmt *portal_named(struct pg_conn *pc, const char *name, size_t n)
{
	if (n == 0)
		return pc->unnamed_portal;
	return sql_map_get(&pc->portals, 0, name, n);
}

static void set_unnamed(struct sql_stmt **slot, struct sql_stmt *st)
{
	sql_stmt_unref(*slot);
	*slot = sql_stmt_ref(st);
}

/* ---- frontend messages --------------------------------------------------------------------- */

static void fe_startup(struct pg_conn *pc, const struct pg_msg *m)
{
	uint32_t code = m->copied >= 4 ? pg_be32(m->body) : 0;
	const uint8_t *v;
	size_t vn;

	pc->from_start = 1;
	if (code == PG_CODE_SSL) {
		pc->phase = PH_SSL_ANSWER;
		return;
	}
	if (code == PG_CODE_GSSENC) {
		pc->phase = PH_GSS_ANSWER;
		return;
	}
	if (code == PG_CODE_CANCEL) {
		pc->sc.st.cancels++;
		pc->phase = PH_DONE;
		return;
	}
	pc->phase = PH_RUN;
	/* db.namespace: the database asked for. The user name is never read
	 * (without a database parameter the server uses the user name as the
	 * database: then db.namespace stays unknown). */
	if (pg_startup_param(m->body, m->copied, "database", &v, &vn) && vn > 0 &&
	    vn < sizeof(pc->sc.ns)) {
		memcpy(pc->sc.ns, v, vn);
		pc->sc.ns[vn] = '\0';
	}
	q_push(pc, PK_STARTUP, m->start_ts);
}

static void fe_query(struct pg_conn *pc, const struct pg_msg *m)
{
	const char *text = (const char *)m->body;
	const uint8_t *nul = memchr(m->body, 0, m->copied);
	size_t n = nul ? (size_t)(nul - m->body) : m->copied;
	int complete = nul != NULL && !m->partial;
	struct sql_range r[SQL_MAX_PARTS];
	size_t k = complete ? sql_split(SQL_DIALECT_PG, pc->bs, text, n, 1, r, SQL_MAX_PARTS) : 0;
	struct pg_pend *p = q_push(pc, PK_QUERY, m->start_ts);
	struct sql_stmt *st;

	if (!p) {
		lose_fe(pc, "too many pending messages");
		return;
	}
	/* a simple Query destroys the unnamed statement and portal */
	set_unnamed(&pc->unnamed_stmt, NULL);
	set_unnamed(&pc->unnamed_portal, NULL);
	if (k >= 2) {
		p->parts = calloc(k, sizeof(*p->parts));
		p->part_off = calloc(k, sizeof(*p->part_off));
		for (size_t i = 0; p->parts && p->part_off && i < k; i++) {
			p->part_off[i] = 5 + (uint32_t)r[i].start; /* type, length, text */
			p->parts[i] = stmt_new(pc, text + r[i].start, r[i].end - r[i].start, 1);
			if (!p->parts[i]) {
				for (size_t j = 0; j < i; j++)
					sql_stmt_unref(p->parts[j]);
				free(p->parts);
				p->parts = NULL;
			}
		}
		if (!p->parts || !p->part_off) {
			free(p->parts);
			free(p->part_off);
			p->parts = NULL;
			p->part_off = NULL;
		}
	}
	if (p->parts) {
		p->n_parts = (uint16_t)k;
		/* The first statement's request is the message; the others
		 * start at their text, in the middle of it. */
		sql_op_start(&pc->sc, &p->op, p->parts[0], m->start_ts, p->pos);
		return;
	}
	p->whole = 1;
	p->single = k == 1;
	if (complete && sql_is_blank(SQL_DIALECT_PG, text, n)) {
		p->empty = 1; /* the server answers EmptyQueryResponse: no span */
		return;
	}
	st = stmt_new(pc, text, n, complete);
	sql_op_start(&pc->sc, &p->op, st, m->start_ts, p->pos);
	sql_stmt_unref(st);
}

static void fe_parse(struct pg_conn *pc, const struct pg_msg *m)
{
	size_t off = 0, qoff;
	const char *name;
	size_t nlen;
	struct sql_stmt *st = NULL;
	struct pg_pend *p;

	if (name_at(m, &off, &name, &nlen)) {
		const uint8_t *nul;
		const char *q;
		size_t qn;
		int complete;

		qoff = off;
		nul = qoff < m->copied ? memchr(m->body + qoff, 0, m->copied - qoff) : NULL;
		q = (const char *)m->body + qoff;
		qn = nul ? (size_t)(nul - (m->body + qoff)) : m->copied - qoff;
		complete = nul != NULL && !m->partial;
		/* drivers re-parse the same text into the unnamed statement for
		 * every execution: sanitise it once */
		if (nlen == 0 && sql_stmt_same(pc->unnamed_stmt, pc->bs, q, qn, complete))
			st = sql_stmt_ref(pc->unnamed_stmt);
		else
			st = stmt_new(pc, q, qn, complete);
		if (nlen == 0)
			set_unnamed(&pc->unnamed_stmt, st);
		else if (st && sql_map_put(&pc->stmts, 0, name, nlen, st) == 1)
			pc->sc.st.stmt_evicted++;
	}
	p = q_push(pc, PK_PARSE, m->start_ts);
	if (!p) {
		sql_stmt_unref(st);
		lose_fe(pc, "too many pending messages");
		return;
	}
	p->st = st;
}

static void fe_bind(struct pg_conn *pc, const struct pg_msg *m)
{
	size_t off = 0;
	const char *portal, *stmt;
	size_t pn, sn;

	if (name_at(m, &off, &portal, &pn) && name_at(m, &off, &stmt, &sn)) {
		struct sql_stmt *st = stmt_named(pc, stmt, sn);

		if (pn == 0)
			set_unnamed(&pc->unnamed_portal, st);
		else if (st)
			sql_map_put(&pc->portals, 0, portal, pn, st);
		else
			sql_map_del(&pc->portals, 0, portal, pn);
	}
	if (!q_push(pc, PK_BIND, m->start_ts))
		lose_fe(pc, "too many pending messages");
}

static void fe_execute(struct pg_conn *pc, const struct pg_msg *m)
{
	size_t off = 0;
	const char *portal;
	size_t pn;
	struct sql_stmt *st = NULL;
	struct pg_pend *p;

	if (name_at(m, &off, &portal, &pn))
		st = portal_named(pc, portal, pn);
	if (!st)
		pc->sc.st.unknown_stmt++;
	p = q_push(pc, PK_EXECUTE, m->start_ts);
	if (!p) {
		lose_fe(pc, "too many pending messages");
		return;
	}
	sql_op_start(&pc->sc, &p->op, st, m->start_ts, p->pos);
}

static void fe_close(struct pg_conn *pc, const struct pg_msg *m)
{
	size_t off = 1;
	const char *name;
	size_t n;

	if (m->copied >= 1 && name_at(m, &off, &name, &n)) {
		if (m->body[0] == 'S' && n == 0)
			set_unnamed(&pc->unnamed_stmt, NULL);
		else if (m->body[0] == 'S')
			sql_map_del(&pc->stmts, 0, name, n);
		else if (m->body[0] == 'P' && n == 0)
			set_unnamed(&pc->unnamed_portal, NULL);
		else if (m->body[0] == 'P')
			sql_map_del(&pc->portals, 0, name, n);
	}
	if (!q_push(pc, PK_CLOSE, m->start_ts))
		lose_fe(pc, "too many pending messages");
}

/* A new cycle while the previous one's answer is still in the dark: that
 * answer ended before this request (at the last backend bytes seen). */
static void end_dark_cycle(struct pg_conn *pc)
{
	while (pc->q_len) {
		struct pg_pend *p = q_peek(pc);
		int last = is_cycle(p->kind);

		if (p->op.active) {
			pc->sc.st.ended_unseen++;
			sql_op_end(&pc->sc, &p->op, pc->last_be_ts, NULL);
		}
		q_pop(pc);
		if (last)
			break;
	}
	pc->be_dark = 0;
	pc->err_skip = 0;
}

static void on_fe(struct pg_conn *pc, const struct pg_msg *m)
{
	uint8_t kind = 0;

	if (m->type == 0) {
		fe_startup(pc, m);
		return;
	}
	if (pc->be_dark && (m->type == 'Q' || m->type == 'P' || m->type == 'B' ||
	                    m->type == 'E' || m->type == 'F' || m->type == 'X'))
		end_dark_cycle(pc);
	switch (m->type) {
	case 'Q': fe_query(pc, m); return;
	case 'P': fe_parse(pc, m); return;
	case 'B': fe_bind(pc, m); return;
	case 'E': fe_execute(pc, m); return;
	case 'C': fe_close(pc, m); return;
	case 'D': kind = m->copied >= 1 && m->body[0] == 'S' ? PK_DESC_S : PK_DESC_P; break;
	case 'S': kind = PK_SYNC; break;
	case 'F': kind = PK_FUNC; break;
	default: return; /* Flush, Terminate, CopyData/Done/Fail, passwords */
	}
	if (!q_push(pc, kind, m->start_ts))
		lose_fe(pc, "too many pending messages");
}

/* ---- backend messages ------------------------------------------------------------------------- */

/* The SQLSTATE field of an ErrorResponse, or "" (then error.type _OTHER). */
static void error_code(const struct pg_msg *m, char out[6])
{
	size_t off = 0;

	out[0] = '\0';
	while (off < m->copied && m->body[off] != 0) {
		uint8_t field = m->body[off++];
		size_t vs = off;
		long vl = pg_cstr(m->body, m->copied, &off);

		if (vl < 0)
			return;
		if (field == 'C' && vl == 5) {
			for (int i = 0; i < 5; i++) {
				char ch = (char)m->body[vs + (size_t)i];

				if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z'))) {
					out[0] = '\0'; /* not a SQLSTATE: none */
					return;
				}
				out[i] = ch;
			}
			out[5] = '\0';
			return;
		}
	}
}

static void result_error(struct sql_result *r, const char *code)
{
	r->error_type = code[0] ? code : "_OTHER";
	r->status_code = code[0] ? code : NULL;
}

static void tag_result(const struct pg_msg *m, struct sql_result *r, char op[SQL_OP_MAX])
{
	const uint8_t *nul = memchr(m->body, 0, m->copied);
	size_t n = nul ? (size_t)(nul - m->body) : m->copied;
	int64_t rows = sql_pg_tag((const char *)m->body, n, op);

	if (rows < 0)
		return;
	if (!strcmp(op, "SELECT") || !strcmp(op, "FETCH"))
		r->returned_rows = rows;
	else if (strcmp(op, "MOVE") != 0)
		r->affected_rows = rows;
	r->op = op;
}

/* The next statement of a split query string starts where one ended. */
static void next_part(struct pg_conn *pc, struct pg_pend *p, uint64_t ts)
{
	if (++p->cur < p->n_parts)
		sql_op_start(&pc->sc, &p->op, p->parts[p->cur], ts,
		             p->pos == SQL_NOPOS ? SQL_NOPOS : p->pos + p->part_off[p->cur]);
}

static void be_complete(struct pg_conn *pc, const struct pg_msg *m, uint64_t ts)
{
	struct pg_pend *p = q_peek(pc);
	struct sql_result r;
	char op[SQL_OP_MAX];

	if (!p || (p->kind != PK_EXECUTE && p->kind != PK_QUERY)) {
		pc->sc.st.unmatched++;
		return;
	}
	sql_result_init(&r);
	tag_result(m, &r, op);
	if (p->kind == PK_EXECUTE) {
		sql_op_end(&pc->sc, &p->op, ts, &r);
		q_pop(pc);
		return;
	}
	if (!p->whole) {
		if (p->op.active) {
			sql_op_end(&pc->sc, &p->op, ts, &r);
			next_part(pc, p, ts);
		} else {
			pc->sc.st.split_mismatch++;
		}
		return;
	}
	if (p->n_done++ == 0) {
		p->rows = r.returned_rows >= 0 ? r.returned_rows : r.affected_rows;
		snprintf(p->tag_op, sizeof(p->tag_op), "%s", r.op ? r.op : "");
	}
}

/* An execution whose statement came to nothing ('I' EmptyQuery). */
static void be_empty(struct pg_conn *pc, uint64_t ts)
{
	struct pg_pend *p = q_peek(pc);

	if (!p || (p->kind != PK_EXECUTE && p->kind != PK_QUERY)) {
		pc->sc.st.unmatched++;
		return;
	}
	if (p->kind == PK_EXECUTE) {
		sql_op_end(&pc->sc, &p->op, ts, NULL);
		q_pop(pc);
		return;
	}
	if (p->whole) {
		p->n_done++;
		return;
	}
	if (p->op.active) {
		sql_op_end(&pc->sc, &p->op, ts, NULL);
		next_part(pc, p, ts);
	}
}

/* The error belongs to the statement the application ran: the head if it
 * executes, else the next Execute of the same cycle (its Parse or Bind
 * failed), else a span for the failed Parse itself. */
static void be_error(struct pg_conn *pc, const struct pg_msg *m, uint64_t ts)
{
	struct pg_pend *p = q_peek(pc);
	struct sql_result r;
	char code[6];

	error_code(m, code);
	sql_result_init(&r);
	result_error(&r, code);
	if (!p || p->kind == PK_SYNC || p->kind == PK_FUNC) {
		pc->sc.st.unmatched++;
		return;
	}
	if (p->kind == PK_STARTUP) {
		pc->sc.st.auth_failed++;
		return;
	}
	if (p->kind == PK_QUERY) {
		if (p->whole) {
			if (!p->err)
				memcpy(p->sqlstate, code, sizeof(code));
			p->err = 1;
		} else if (p->op.active) {
			sql_op_end(&pc->sc, &p->op, ts, &r);
			/* the rest of the string is not run */
			pc->sc.st.not_run += (uint64_t)(p->n_parts - p->cur - 1);
			p->cur = p->n_parts;
		}
		return;
	}
	pc->err_skip = 1;
	if (p->kind != PK_EXECUTE) {
		for (size_t i = 1; i < pc->q_len; i++) {
			struct pg_pend *e = q_at(pc, i);

			if (is_cycle(e->kind))
				break;
			if (e->kind == PK_EXECUTE && e->op.active) {
				sql_op_end(&pc->sc, &e->op, ts, &r);
				q_pop(pc);
				return;
			}
		}
		if (p->kind == PK_PARSE && p->st) {
			struct sql_op op;

			sql_op_start(&pc->sc, &op, p->st, p->start_ns, p->pos);
			sql_op_end(&pc->sc, &op, ts, &r);
		}
		q_pop(pc);
		return;
	}
	sql_op_end(&pc->sc, &p->op, ts, &r);
	q_pop(pc);
}

/* ReadyForQuery: the head cycle is over. */
static void be_ready(struct pg_conn *pc, uint64_t ts)
{
	while (pc->q_len) {
		struct pg_pend *p = q_peek(pc);

		if (!is_cycle(p->kind)) {
			/* skipped after an error (or never answered) */
			if (p->op.active) {
				if (pc->err_skip)
					pc->sc.st.not_run++;
				else
					pc->sc.st.unanswered++;
			}
			q_pop(pc);
			continue;
		}
		if (p->kind == PK_QUERY && p->whole && p->op.active) {
			struct sql_result r;

			sql_result_init(&r);
			if (p->err) {
				result_error(&r, p->sqlstate);
			} else if (p->n_done == 1 && p->rows >= 0 && (!p->dark || p->single)) {
				if (!strcmp(p->tag_op, "SELECT") || !strcmp(p->tag_op, "FETCH"))
					r.returned_rows = p->rows;
				else if (strcmp(p->tag_op, "MOVE") != 0)
					r.affected_rows = p->rows;
			}
			if (p->n_done == 1 && p->tag_op[0] && (!p->dark || p->single))
				r.op = p->tag_op;
			sql_op_end(&pc->sc, &p->op, ts, &r);
		} else if (p->kind == PK_QUERY && p->op.active) {
			pc->sc.st.split_mismatch++;
		}
		q_pop(pc);
		pc->err_skip = 0;
		return;
	}
	pc->sc.st.unmatched++;
}

static void be_param_status(struct pg_conn *pc, const struct pg_msg *m)
{
	size_t off = 0, voff;
	long kl = pg_cstr(m->body, m->copied, &off), vl;

	if (kl != 27 || memcmp(m->body, "standard_conforming_strings", 27) != 0)
		return;
	voff = off;
	vl = pg_cstr(m->body, m->copied, &off);
	if (vl == 2 && !memcmp(m->body + voff, "on", 2))
		pc->bs = SQL_BS_PLAIN;
	else if (vl == 3 && !memcmp(m->body + voff, "off", 3))
		pc->bs = SQL_BS_ESCAPE;
}

static void pop_if(struct pg_conn *pc, uint8_t kind, uint8_t kind2)
{
	struct pg_pend *p = q_peek(pc);

	if (p && (p->kind == kind || p->kind == kind2))
		q_pop(pc);
	else
		pc->sc.st.unmatched++;
}

/* Returns SONDE_ERR_PROTO when the connection cannot be followed. */
static int on_be(struct pg_conn *pc, const struct pg_msg *m, uint64_t ts)
{
	struct pg_pend *p = q_peek(pc);

	if (m->type == 'Z' || m->type == 'C' || m->type == 'E')
		pc->copy_in = 0;
	switch (m->type) {
	case 'Z': be_ready(pc, ts); break;
	case 'C': be_complete(pc, m, ts); break;
	case 'E': be_error(pc, m, ts); break;
	case 'I': be_empty(pc, ts); break;
	case 's': /* PortalSuspended: this Execute is done, the portal is not */
		if (p && p->kind == PK_EXECUTE) {
			sql_op_end(&pc->sc, &p->op, ts, NULL);
			q_pop(pc);
		} else {
			pc->sc.st.unmatched++;
		}
		break;
	case '1': pop_if(pc, PK_PARSE, PK_PARSE); break;
	case '2': pop_if(pc, PK_BIND, PK_BIND); break;
	case '3': pop_if(pc, PK_CLOSE, PK_CLOSE); break;
	case 't':
		if (p && p->kind == PK_DESC_S)
			p->got_t = 1;
		else
			pc->sc.st.unmatched++;
		break;
	case 'n':
		pop_if(pc, PK_DESC_S, PK_DESC_P);
		break;
	case 'T':
		/* Describe's answer; otherwise a result set's header */
		if (p && (p->kind == PK_DESC_P || (p->kind == PK_DESC_S && p->got_t)))
			q_pop(pc);
		break;
	case 'S': be_param_status(pc, m); break;
	case 'G': pc->copy_in = p && (p->kind == PK_EXECUTE || p->kind == PK_QUERY); break;
	case 'W':
		pc->sc.st.given_up++;
		pc->giving_up = 1;
		log_dbg(pc, "CopyBoth (replication): not followed");
		return SONDE_ERR_PROTO;
	default: break; /* rows, notices, notifications, auth, keys, COPY data */
	}
	return SONDE_OK;
}

/* ---- the dark: finishing a cycle from its tail ----------------------------------------------- */

/* The head cycle's answer lost its middle; the chunk c ends with its
 * ReadyForQuery and its tail (after the last row) starts at off. Whatever
 * finished in the lost middle is dropped (its end is unknown); the tail's
 * messages then answer what is left, as usual. */
static int dark_finish(struct pg_conn *pc, const struct sonde_chunk *c, size_t off)
{
	size_t last_exec = SIZE_MAX, completions = 0, i;
	int end = 0;
	struct pg_pend *head = q_peek(pc);

	if (!head || pg_chain(PG_BE, c->data + off, c->len - off, &end) < 1 || end != 0)
		return -1;
	for (i = off; i < c->len; i += 1 + (size_t)pg_be32(c->data + i + 1))
		if (c->data[i] == 'C' || c->data[i] == 'E' || c->data[i] == 'I' || c->data[i] == 's')
			completions++;
	for (i = 0; i < pc->q_len && !is_cycle(q_at(pc, i)->kind); i++)
		if (q_at(pc, i)->kind == PK_EXECUTE)
			last_exec = i;
	if (head->kind == PK_QUERY && head->whole) {
		head->dark = 1;
	} else if (head->kind == PK_QUERY) {
		/* the running statement must be the first one of the tail: the
		 * start of any later one is unknown */
		if (head->cur + completions != head->n_parts) {
			pc->sc.st.dropped += (uint64_t)(head->n_parts - head->cur - 1);
			sql_op_drop(&pc->sc, &head->op);
			head->cur = head->n_parts;
			head->whole = 1;
			head->dark = 1;
		}
	} else if (completions == 0 || last_exec == SIZE_MAX) {
		while (pc->q_len && !is_cycle(q_peek(pc)->kind))
			q_pop(pc);
	} else {
		for (i = 0; i < last_exec; i++)
			q_pop(pc);
	}
	pc->be_dark = 0;
	pc->be_sync = 1;
	pc->err_skip = 0;
	pc->sc.st.dark_done++;
	pg_stream_reset(&pc->be, 0);
	return 0;
}

/* ---- bytes in --------------------------------------------------------------------------------- */

/* Decode c's captured bytes from off on. */
static int feed(struct pg_conn *pc, struct pg_stream *s, int side, const struct sonde_chunk *c,
                size_t off)
{
	const uint8_t *p = c->data ? c->data + off : NULL; /* NULL: nothing captured */
	size_t n = c->data ? c->len - off : 0;
	uint64_t ts = c->ts_unix_ns;

	while (n > 0 && (side == PG_FE ? pc->fe_sync : pc->be_sync)) {
		struct pg_msg m;
		int done;
		ssize_t r;

		if (side == PG_FE && !pg_stream_in_msg(s))
			pc->msg_pos = sql_track_pos(&pc->sc.req, c, (size_t)(p - c->data));
		r = pg_stream_feed(s, p, n, ts, &m, &done);

		if (r < 0) {
			if (side == PG_FE)
				lose_fe(pc, "not a frontend message");
			else
				lose_be(pc, "not a backend message");
			return SONDE_OK;
		}
		p += r;
		n -= (size_t)r;
		if (!done)
			continue;
		if (side == PG_FE) {
			on_fe(pc, &m);
			if (pc->phase != PH_RUN && pc->phase != PH_INIT)
				return SONDE_OK; /* nothing more follows the request */
		} else if (on_be(pc, &m, ts) != SONDE_OK) {
			return SONDE_ERR_PROTO;
		}
	}
	return SONDE_OK;
}

static int skip_uncaptured(struct pg_conn *pc, struct pg_stream *s, int side,
                           const struct sonde_chunk *c)
{
	uint64_t miss = c->orig_len - c->len;

	while (miss > 0 && (side == PG_FE ? pc->fe_sync : pc->be_sync)) {
		struct pg_msg m;
		int done;
		uint64_t k = pg_stream_skip(s, miss, &m, &done);

		miss -= k;
		if (done) {
			if (side == PG_FE)
				on_fe(pc, &m);
			else if (on_be(pc, &m, c->ts_unix_ns) != SONDE_OK)
				return SONDE_ERR_PROTO;
		}
		if (miss > 0 && !done && k == 0) {
			if (side == PG_FE)
				lose_fe(pc, "truncated inside frontend structure");
			else
				lose_be(pc, "truncated inside backend structure");
		}
	}
	return SONDE_OK;
}

/* The one-byte answer to SSLRequest / GSSENCRequest. */
static int answer(struct pg_conn *pc, const struct sonde_chunk *c)
{
	uint8_t a = c->data[0];

	if (a == 'N') {
		pc->phase = PH_INIT;
		pg_stream_reset(&pc->fe, 1);
		return 1;
	}
	if (a == 'S' && pc->phase == PH_SSL_ANSWER) {
		pc->phase = PH_TLS_WAIT;
		pc->sc.st.tls++;
		return 1;
	}
	if (a == 'G' && pc->phase == PH_GSS_ANSWER) {
		pc->sc.st.given_up++;
		log_dbg(pc, "GSSAPI encryption: not followed");
		return -1;
	}
	/* an old server's ErrorResponse: read it as a message */
	pc->phase = PH_RUN;
	return 0;
}

static int be_chunk(struct pg_conn *pc, const struct sonde_chunk *c)
{
	long off;

	pc->last_be_ts = c->ts_unix_ns;
	pc->last_be_cut = c->orig_len > c->len;
	if (c->flags & SONDE_CHUNK_GAP && (pc->be_sync || pc->q_len))
		lose_be(pc, "gap in backend bytes");
	if (pc->be_dark) {
		off = c->len == c->orig_len ? pg_tail_after_rows(c->data, c->len) : -1;
		if (off < 0 || dark_finish(pc, c, (size_t)off) < 0)
			return SONDE_OK;
		return feed(pc, &pc->be, PG_BE, c, (size_t)off);
	}
	if (!pc->be_sync) {
		struct pg_pend *head = q_peek(pc);

		if (!head || !pc->fe_sync || c->ts_unix_ns < head->start_ns ||
		    !clean_start(PG_BE, c))
			return SONDE_OK;
		pg_stream_reset(&pc->be, 0);
		pc->be_sync = 1;
		resynced(pc);
	}
	if (feed(pc, &pc->be, PG_BE, c, 0) != SONDE_OK)
		return SONDE_ERR_PROTO;
	if (c->orig_len > c->len && skip_uncaptured(pc, &pc->be, PG_BE, c) != SONDE_OK)
		return SONDE_ERR_PROTO;
	if (pc->be_sync)
		sql_capture_skip(&pc->sc, c, pg_stream_skippable(&pc->be));
	return SONDE_OK;
}

static int fe_chunk(struct pg_conn *pc, const struct sonde_chunk *c)
{
	sql_track_chunk(&pc->sc.req, c);
	if (c->flags & SONDE_CHUNK_GAP && (pc->fe_sync || pc->q_len))
		lose_fe(pc, "gap in frontend bytes");
	if (!pc->fe_sync) {
		if (!clean_start(PG_FE, c)) {
			sql_track_lost(&pc->sc.req); /* bytes not decoded */
			if (++pc->unsynced_chunks > PG_MAX_UNSYNCED_CHUNKS && !pc->ever_synced)
				return SONDE_ERR_PROTO;
			return SONDE_OK;
		}
		pg_stream_reset(&pc->fe, 0);
		pc->fe_sync = 1;
		pc->unsynced_chunks = 0;
		resynced(pc);
	}
	feed(pc, &pc->fe, PG_FE, c, 0);
	if (c->orig_len > c->len)
		skip_uncaptured(pc, &pc->fe, PG_FE, c);
	if (pc->fe_sync)
		sql_capture_skip(&pc->sc, c, pg_stream_skippable(&pc->fe));
	return SONDE_OK;
}

/* A startup-phase packet: length then a protocol code we know. */
static int startup_packet(const uint8_t *p, size_t n)
{
	uint32_t len, code;

	if (n < 8)
		return 0;
	len = pg_be32(p);
	code = pg_be32(p + 4);
	if ((code == PG_CODE_SSL || code == PG_CODE_GSSENC) && len == 8)
		return 1;
	if (code == PG_CODE_CANCEL && len == 16)
		return 1;
	return (code >> 16) == 3 && len > 8 && len <= PG_MAX_STARTUP;
}

/* The start of a startup packet: no message of the protocol begins with
 * a zero byte, and its length field is small. */
static int startup_prefix(const uint8_t *p, size_t n)
{
	if (n >= 8)
		return startup_packet(p, n);
	if (n == 0 || p[0] != 0)
		return 0;
	if (n >= 4)
		return pg_be32(p) >= 8 && pg_be32(p) <= PG_MAX_STARTUP;
	return n < 2 || p[1] == 0;
}

/* The first chunk tells whether we see the connection from its start,
 * and which direction the frontend writes (whatever the role guessed). */
static void set_fe_dir(struct pg_conn *pc, int dir)
{
	pc->fe_dir = dir;
	pc->sc.role = dir == SONDE_DIR_EGRESS ? SONDE_ROLE_CLIENT : SONDE_ROLE_SERVER;
}

static void first_chunk(struct pg_conn *pc, const struct sonde_chunk *c)
{
	int side;

	pc->phase = PH_RUN;
	if (startup_prefix(c->data, c->len)) {
		set_fe_dir(pc, (int)c->dir);
		sql_capture_role(&pc->sc);
		pg_stream_reset(&pc->fe, 1);
		pc->fe_sync = pc->be_sync = 1;
		pc->ever_synced = 1;
		return;
	}
	/* Picked up mid-stream: the message types say who writes what (a
	 * forked server process that did not accept the socket looks like a
	 * client to the core), unless the host saw the connection accepted
	 * or connected (SDK 1.1). */
	if (!sql_role_from_bytes(&pc->sc))
		return;
	side = pg_side_of(c->data, c->len);
	if (side == PG_FE)
		set_fe_dir(pc, (int)c->dir);
	else if (side == PG_BE)
		set_fe_dir(pc, c->dir == SONDE_DIR_EGRESS ? SONDE_DIR_INGRESS : SONDE_DIR_EGRESS);
	sql_capture_role(&pc->sc);
}

/* GSS encryption or replication: nothing more is followed. The kernel is
 * told to send nothing more (1.1); a 1.0 host is answered SONDE_ERR_PROTO. */
static int give_up(struct pg_conn *pc)
{
	drop_all(pc);
	pc->phase = PH_DONE;
	return sql_capture_mute(&pc->sc) ? SONDE_OK : SONDE_ERR_PROTO;
}

/* SDK 1.1 timer: a dark cycle (its answer's middle lost) whose last backend
 * chunk was cut by the capture may have ended inside it: once the server
 * has been silent for dark_timeout, the cycle ends at its last bytes, as
 * the client's next request would have ended it. A last chunk captured
 * whole and not ending with ReadyForQuery says the answer goes on: never
 * ended by the timer. */
static void pg_tick(struct sql_conn *sc, uint64_t now)
{
	struct pg_conn *pc = (struct pg_conn *)sc;
	uint64_t quiet = (uint64_t)sc->set.dark_timeout_s * 1000000000ull;

	if (pc->be_dark && pc->last_be_cut && quiet && now > pc->last_be_ts &&
	    now - pc->last_be_ts >= quiet)
		end_dark_cycle(pc);
}

static int pg_conn_data(void *state, struct sonde_conn *conn, const struct sonde_chunk *c)
{
	struct pg_conn *pc = state;
	int rc;

	pc->sc.conn = conn;
	if (c->len == 0 && c->orig_len == 0)
		return SONDE_OK;
	switch (pc->phase) {
	case PH_DONE:
		return SONDE_OK;
	case PH_TLS_WAIT:
		if (!sql_chunk_tls(&pc->sc, c)) {
			/* ciphertext of the handshake */
			return ++pc->tls_wait_chunks > PG_MAX_TLS_WAIT_CHUNKS ? SONDE_ERR_PROTO
			                                                       : SONDE_OK;
		}
		/* The TLS plaintext starts with the StartupMessage, unless the
		 * TLS hooks came late (a process that connected the moment it
		 * started): then it is picked up mid-stream. */
		pc->phase = PH_INIT;
		pg_stream_reset(&pc->be, 0);
		if ((int)c->dir == pc->fe_dir && startup_prefix(c->data, c->len)) {
			/* positions of the plaintext count from its own start */
			sql_track_restart(&pc->sc.req);
			pg_stream_reset(&pc->fe, 1);
			break;
		}
		sql_track_lost(&pc->sc.req);
		pc->phase = PH_RUN;
		pg_stream_reset(&pc->fe, 0);
		pc->fe_sync = pc->be_sync = 0;
		drop_all(pc);
		break;
	case PH_SSL_ANSWER:
	case PH_GSS_ANSWER:
		if ((int)c->dir != pc->fe_dir && c->len > 0) {
			int a = answer(pc, c);

			if (a < 0)
				return give_up(pc);
			if (a > 0)
				return SONDE_OK;
		}
		break;
	case PH_INIT:
		if (!pc->from_start && !pc->fe_sync && !pc->be_sync && !pc->ever_synced)
			first_chunk(pc, c);
		break;
	default:
		break;
	}
	rc = (int)c->dir == pc->fe_dir ? fe_chunk(pc, c) : be_chunk(pc, c);
	if (rc == SONDE_ERR_PROTO && pc->giving_up)
		return give_up(pc);
	return rc;
}

/* ---- lifecycle ---------------------------------------------------------------------------------- */

static int pg_conn_open(void *plugin_state, struct sonde_conn *conn,
                        const struct sonde_conn_info *ci, void **conn_state)
{
	struct pg_conn *pc = calloc(1, sizeof(*pc));

	if (!pc)
		return SONDE_ERR_NOMEM;
	sql_conn_init(&pc->sc, plugin_state, conn, ci, "postgresql");
	pc->sc.tick = pg_tick;
	pc->fe_dir = ci->role == SONDE_ROLE_SERVER ? SONDE_DIR_INGRESS : SONDE_DIR_EGRESS;
	pc->bs = SQL_BS_UNKNOWN;
	pg_stream_init(&pc->fe, PG_FE, pc->sc.set.query_max);
	pg_stream_init(&pc->be, PG_BE, pc->sc.set.query_max);
	sql_map_init(&pc->stmts, pc->sc.set.prepared_max);
	sql_map_init(&pc->portals, pc->sc.set.prepared_max);
	*conn_state = pc;
	return SONDE_OK;
}

static void pg_conn_close(void *state, struct sonde_conn *conn, uint64_t ts)
{
	struct pg_conn *pc = state;

	(void)ts;
	pc->sc.conn = conn;
	if (pc->be_dark)
		end_dark_cycle(pc);
	drop_all(pc);
	free(pc->q);
	sql_map_free(&pc->stmts);
	sql_map_free(&pc->portals);
	sql_stmt_unref(pc->unnamed_stmt);
	sql_stmt_unref(pc->unnamed_portal);
	pg_stream_free(&pc->fe);
	pg_stream_free(&pc->be);
	sql_conn_fini(&pc->sc);
	free(pc);
}

/* ---- detection -------------------------------------------------------------------------------------- */

/* A frontend message chain seen first (a connection older than us). */
static int detect_midstream_fe(const uint8_t *p, size_t n)
{
	int end = 0, k = pg_chain(PG_FE, p, n, &end);

	if (k < 0)
		return SONDE_DETECT_NO;
	if (k == 0)
		return n < 5 || (end == 1 && (p[0] == 'Q' || p[0] == 'P')) ? SONDE_DETECT_NEED_MORE
		                                                         : SONDE_DETECT_NO;
	if (p[0] == 'Q') {
		uint32_t len = pg_be32(p + 1);

		/* a query string ends with its NUL */
		if (p[len] != 0)
			return SONDE_DETECT_NO;
		return 80;
	}
	if (p[0] == 'P' || p[0] == 'B')
		return 70;
	return k >= 2 ? 60 : SONDE_DETECT_NO;
}

static int pg_detect(void *plugin_state, const struct sonde_conn_info *ci,
                     const struct sonde_chunk *c)
{
	const uint8_t *p = c->data;
	size_t n = c->len;
	int fe_side = ci->role == SONDE_ROLE_UNKNOWN ||
	              (ci->role == SONDE_ROLE_CLIENT && c->dir == SONDE_DIR_EGRESS) ||
	              (ci->role == SONDE_ROLE_SERVER && c->dir == SONDE_DIR_INGRESS);
	int end = 0;

	(void)plugin_state;
	if (n == 0)
		return SONDE_DETECT_NEED_MORE;
	/* A startup packet, in whichever direction (the role may be a guess). */
	if (startup_packet(p, n))
		return SONDE_DETECT_SURE;
	if (n < 8 && p[0] == 0 && (n < 2 || p[1] == 0))
		return SONDE_DETECT_NEED_MORE;
	if (fe_side) {
		int r = detect_midstream_fe(p, n);

		if (r != SONDE_DETECT_NO || ci->role != SONDE_ROLE_UNKNOWN)
			return r;
	}
	/* Frontend messages where the role says answers: the role is a guess
	 * (a forked server); the plugin follows the bytes. */
	if (!fe_side && pg_side_of(p, n) == PG_FE)
		return detect_midstream_fe(p, n);
	/* A response seen first: wait for a request. */
	if (pg_chain(PG_BE, p, n, &end) >= 1)
		return SONDE_DETECT_NEED_MORE;
	return SONDE_DETECT_NO;
}

const struct sonde_protocol sql_pg_protocol = {
	.struct_size = sizeof(struct sonde_protocol),
	.name = "postgresql",
	.detect = pg_detect,
	.conn_open = pg_conn_open,
	.conn_data = pg_conn_data,
	.conn_close = pg_conn_close,
};
