/*
 * mysql.c - the `mysql` protocol of the sql plugin: MySQL and MariaDB
 * client/server packets in, one span per executed statement out.
 *
 * The one idea: the client sends a command (sequence id 0) and the server
 * answers it with packets numbered 1, 2, ...; a small state machine per
 * connection follows the answer to the command at the head of a FIFO
 * (first packet: OK, ERR, EOF, LOCAL INFILE or a column count; then column
 * definitions, an EOF unless CLIENT_DEPRECATE_EOF, rows until EOF/OK/ERR;
 * again while SERVER_MORE_RESULTS_EXISTS). Rows are counted, never read.
 * Spans come from COM_QUERY (one per statement of a multi-statement string
 * when it can be split, else one per command) and from COM_STMT_EXECUTE
 * (named from the text COM_STMT_PREPARE gave the statement id).
 *
 * Where the protocol leaves a choice, the packet itself decides, so a
 * connection picked up mid-stream (capabilities unknown) is still parsed:
 * an EOF is exactly 5 bytes and an OK with a 0xfe header at least 7; a
 * column count packet one byte longer than its integer carries the
 * "metadata follows" flag.
 *
 * When bytes of an answer are lost (the capture keeps only the first bytes
 * of each read or write, and a big result set is written in big chunks),
 * the answer is finished from the chunk that ends with its last packet
 * (found by chaining headers backwards), or when the client sends its next
 * command. Compressed connections are not followed (said once, counted).
 *
 * SDK 1.1 (when the host has it, see sql_common.c): the rest of a packet
 * nobody reads (a big row, LOCAL INFILE data) is not even copied by the
 * kernel (skip_to), the server side asks for a 16 KiB capture, compressed
 * and replication connections are muted, TLS plaintext is told by the
 * chunk's source, and a timer ends a dark answer whose tail may have been
 * in a cut chunk once the server is silent (dark_timeout).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mysql_wire.h"
#include "sql_internal.h"

#define MY_MAX_TLS_WAIT_CHUNKS 256
#define MY_MAX_UNSYNCED_CHUNKS 256
#define MY_HANDSHAKE_COPY 1024u  /* client handshake: up to the database name */
#define MY_SERVER_COPY 512u      /* first packets of an answer (OK with session state) */

enum my_phase {
	MP_INIT = 0, /* nothing seen */
	MP_GREETED,  /* greeting seen: the client's handshake response comes next */
	MP_TLS_WAIT, /* SSL request: ciphertext until the TLS plaintext arrives */
	MP_AUTH,     /* authentication exchange: until OK or ERR */
	MP_CMD,      /* commands */
	MP_DONE,
};

enum my_rs {
	RS_FIRST = 0,       /* the first packet of a result */
	RS_COLS,            /* column definitions */
	RS_COLS_EOF,        /* maybe an EOF after them */
	RS_ROWS,            /* rows until EOF / OK / ERR */
	RS_PREP_PARAMS,     /* COM_STMT_PREPARE: parameter definitions */
	RS_PREP_PARAMS_EOF,
	RS_PREP_COLS,       /* COM_STMT_PREPARE: column definitions */
	RS_PREP_COLS_EOF,
	RS_INFILE,          /* LOAD DATA LOCAL: the client sends the file */
	RS_FIELDS,          /* COM_FIELD_LIST: definitions until EOF */
};

struct my_pend {
	uint8_t cmd;
	uint8_t whole;            /* one span for the whole string */
	uint8_t err;              /* whole: an error came */
	uint8_t cursor;           /* execute that opens a cursor */
	uint8_t set_option;       /* COM_SET_OPTION's value */
	uint16_t n_parts, cur;
	uint16_t n_results;
	int64_t rows, affected;   /* whole: of its one result */
	uint64_t start_ns;
	uint64_t pos;             /* where the command packet starts (SQL_NOPOS: unknown) */
	char sqlstate[6];
	char code[8];
	char db[SQL_COLL_MAX];    /* COM_INIT_DB */
	struct sql_op op;
	struct sql_stmt *st;      /* COM_STMT_PREPARE's statement */
	struct sql_stmt **parts;
	uint32_t *part_off;       /* split: where each statement's text starts in
	                             the packet */
};

struct my_conn {
	struct sql_conn sc;
	enum my_phase phase;
	int cl_dir;               /* enum sonde_dir of client packets */
	struct my_stream cl, sv;
	uint8_t cl_sync, sv_sync, ever_synced, sv_dark, from_start;
	uint8_t caps_known;
	uint32_t srv_caps, cli_caps;
	enum sql_backslash bs;
	uint8_t multi;            /* multi-statements: 1 on, 0 off */
	enum my_rs rs;
	uint64_t rs_left;
	uint16_t prep_cols;
	uint8_t expect;           /* next server sequence id */
	int64_t rows;             /* rows of the current result set */
	uint8_t rows_exact;
	struct my_pend *q;
	size_t q_head, q_len, q_cap;
	struct sql_map stmts;
	struct sql_stmt *last_prepared;
	char change_db[SQL_COLL_MAX];
	uint64_t last_sv_ts;
	uint64_t pkt_pos;         /* where the client packet being read starts
	                             (SQL_NOPOS: unknown) */
	uint32_t unsynced_chunks, tls_wait_chunks;
	uint8_t cl_hdr[4];        /* unsynced: a chunk that was exactly a command's header */
	uint8_t cl_hdr_ok;
	uint64_t cl_hdr_ts;
	uint8_t giving_up;        /* compression, replication: not followed */
	uint8_t last_sv_cut;      /* the last server chunk was cut by the capture */
	uint8_t exe_mariadbd;     /* the watched process is MariaDB's server */
};

/* ---- the FIFO ------------------------------------------------------------------ */

static struct my_pend *q_at(struct my_conn *mc, size_t i)
{
	return &mc->q[(mc->q_head + i) % mc->q_cap];
}

static struct my_pend *q_peek(struct my_conn *mc)
{
	return mc->q_len ? q_at(mc, 0) : NULL;
}

static void pend_free(struct my_conn *mc, struct my_pend *p)
{
	sql_op_drop(&mc->sc, &p->op);
	sql_stmt_unref(p->st);
	for (uint16_t i = 0; p->parts && i < p->n_parts; i++)
		sql_stmt_unref(p->parts[i]);
	free(p->parts);
	free(p->part_off);
	memset(p, 0, sizeof(*p));
}

/* Ready for the answer to the command now at the head (COM_STMT_FETCH is
 * answered with rows straight away). */
static void next_answer(struct my_conn *mc)
{
	const struct my_pend *head = q_peek(mc);

	mc->rs = head && head->cmd == MY_COM_STMT_FETCH ? RS_ROWS : RS_FIRST;
	mc->expect = 1;
	mc->rows = 0;
	mc->rows_exact = 1;
}

static void q_pop(struct my_conn *mc)
{
	if (!mc->q_len)
		return;
	pend_free(mc, q_peek(mc));
	mc->q_head = (mc->q_head + 1) % mc->q_cap;
	mc->q_len--;
	next_answer(mc);
}

static void drop_all(struct my_conn *mc)
{
	while (mc->q_len)
		q_pop(mc);
	mc->sv_dark = 0;
}

static struct my_pend *q_push(struct my_conn *mc, uint8_t cmd, uint64_t ts)
{
	struct my_pend *p;

	if (mc->q_len == mc->q_cap) {
		size_t cap = mc->q_cap ? mc->q_cap * 2 : 4;
		struct my_pend *n;

		if (mc->q_len >= SQL_MAX_PENDING)
			return NULL;
		if (cap > SQL_MAX_PENDING)
			cap = SQL_MAX_PENDING;
		n = malloc(cap * sizeof(*n));
		if (!n)
			return NULL;
		for (size_t i = 0; i < mc->q_len; i++)
			n[i] = *q_at(mc, i);
		free(mc->q);
		mc->q = n;
		mc->q_cap = cap;
		mc->q_head = 0;
	}
	p = &mc->q[(mc->q_head + mc->q_len) % mc->q_cap];
	mc->q_len++;
	memset(p, 0, sizeof(*p));
	p->cmd = cmd;
	p->start_ns = ts;
	p->pos = mc->pkt_pos;
	p->rows = -1;
	p->affected = -1;
	if (mc->q_len == 1)
		next_answer(mc);
	return p;
}

/* ---- losing and finding our place ------------------------------------------------- */

static void log_dbg(struct my_conn *mc, const char *what)
{
	mc->sc.pl->host->log(mc->sc.pl->self, SONDE_LOG_DEBUG, "conn %llu: %s",
	                     (unsigned long long)mc->sc.conn_id, what);
}

static void lose_cl(struct my_conn *mc, const char *why)
{
	mc->sc.st.sync_lost++;
	sql_track_lost(&mc->sc.req); /* a place found again is a guess */
	log_dbg(mc, why);
	drop_all(mc);
	mc->cl_sync = 0;
	mc->sv_sync = 0;
	my_stream_reset(&mc->cl);
	my_stream_reset(&mc->sv);
}

/* Server bytes lost. The one command pending can still be finished from
 * the end of its answer; with more, nothing can be matched. */
static void lose_sv(struct my_conn *mc, const char *why)
{
	mc->sc.st.sync_lost++;
	log_dbg(mc, why);
	mc->sv_sync = 0;
	mc->rows_exact = 0;
	my_stream_reset(&mc->sv);
	if (mc->q_len == 1 && mc->phase == MP_CMD && mc->rs != RS_INFILE) {
		mc->sv_dark = 1;
		return;
	}
	drop_all(mc);
}

static void resynced(struct my_conn *mc)
{
	if (mc->ever_synced)
		mc->sc.st.resyncs++;
	mc->ever_synced = 1;
}

static int known_cmd(uint8_t c)
{
	return (c >= MY_COM_QUIT && c <= MY_COM_RESET_CONNECTION && c != 0x05 && c != 0x06 &&
	        c != 0x0b && c != 0x0f && c != 0x10 && c != 0x13 && c != 0x14 && c != 0x1d) ||
	       c == MY_COM_STMT_BULK_EXECUTE;
}

/* A client chunk that starts with a command packet. */
static int cl_clean_start(const struct sonde_chunk *c)
{
	int end = 0, n = my_chain(c->data, c->len, &end);

	if (n < 0 || c->len < 5 || c->data[3] != 0 || !known_cmd(c->data[4]))
		return 0;
	return n >= 1 || (end == 1 && (c->data[4] == MY_COM_QUERY ||
	                               c->data[4] == MY_COM_STMT_PREPARE ||
	                               c->data[4] == MY_COM_STMT_EXECUTE));
}

/* A server chunk that starts an answer. */
static int sv_clean_start(const struct sonde_chunk *c)
{
	int end = 0;

	return c->len >= 5 && c->data[3] == 1 && my_chain(c->data, c->len, &end) >= 1;
}

/* ---- statements and spans ---------------------------------------------------------- */

static struct sql_stmt *stmt_new(struct my_conn *mc, const char *text, size_t n, int complete)
{
	return sql_stmt_new(SQL_DIALECT_MYSQL, mc->bs, text, n, complete, mc->sc.set.query_text);
}

/* The text of COM_QUERY / COM_STMT_PREPARE (after the command byte).
 * With query attributes (MySQL 8) the text follows their count; with
 * attributes present it is not read at all. */
static int cmd_text(struct my_conn *mc, const struct my_pkt *k, const char **t, size_t *n)
{
	size_t off = 1;
	uint64_t count, sets;
	int attrs = k->body[0] == MY_COM_QUERY &&
	            (mc->caps_known ? (mc->cli_caps & mc->srv_caps & MY_CLIENT_QUERY_ATTRIBUTES) != 0
	                            : k->copied >= 3 && k->body[1] < 0x09);

	if (attrs) {
		if (my_lenenc(k->body, k->copied, &off, &count) < 0 ||
		    my_lenenc(k->body, k->copied, &off, &sets) < 0 || count != 0)
			return 0;
	}
	*t = (const char *)k->body + off;
	*n = k->copied - off;
	return 1;
}

static void cl_query(struct my_conn *mc, const struct my_pkt *k)
{
	const char *text = NULL;
	size_t n = 0, parts = 0;
	int complete = !k->partial && k->copied == k->len;
	struct sql_range r[SQL_MAX_PARTS];
	struct my_pend *p = q_push(mc, MY_COM_QUERY, k->start_ts);
	struct sql_stmt *st = NULL;

	if (!p) {
		lose_cl(mc, "too many pending commands");
		return;
	}
	if (!cmd_text(mc, k, &text, &n)) {
		p->whole = 1;
		sql_op_start(&mc->sc, &p->op, NULL, k->start_ts, p->pos);
		return;
	}
	if (complete && mc->multi)
		parts = sql_split(SQL_DIALECT_MYSQL, mc->bs, text, n, 1, r, SQL_MAX_PARTS);
	if (parts >= 2) {
		p->parts = calloc(parts, sizeof(*p->parts));
		p->part_off = calloc(parts, sizeof(*p->part_off));
		if (!p->part_off) {
			free(p->parts);
			p->parts = NULL;
		}
		for (size_t i = 0; p->parts && i < parts; i++) {
			/* header, then the text in the body */
			p->part_off[i] = 4 + (uint32_t)(text - (const char *)k->body) +
			                 (uint32_t)r[i].start;
			p->parts[i] = stmt_new(mc, text + r[i].start, r[i].end - r[i].start, 1);
			/* a CALL answers with result sets of its own: no split */
			if (!p->parts[i] || !strcmp(p->parts[i]->cls.op, "CALL")) {
				for (size_t j = 0; j <= i; j++)
					sql_stmt_unref(p->parts[j]);
				free(p->parts);
				p->parts = NULL;
			}
		}
	}
	if (p->parts) {
		/* The first statement's request is the packet; the others
		 * start at their text, in the middle of it. */
		p->n_parts = (uint16_t)parts;
		sql_op_start(&mc->sc, &p->op, p->parts[0], k->start_ts, p->pos);
		return;
	}
	free(p->part_off);
	p->part_off = NULL;
	p->whole = 1;
	st = stmt_new(mc, text, n, complete);
	sql_op_start(&mc->sc, &p->op, st, k->start_ts, p->pos);
	sql_stmt_unref(st);
}

static void cl_prepare(struct my_conn *mc, const struct my_pkt *k)
{
	const char *text = NULL;
	size_t n = 0;
	struct my_pend *p = q_push(mc, MY_COM_STMT_PREPARE, k->start_ts);

	if (!p) {
		lose_cl(mc, "too many pending commands");
		return;
	}
	if (cmd_text(mc, k, &text, &n))
		p->st = stmt_new(mc, text, n, !k->partial && k->copied == k->len);
	/* MariaDB's direct execute refers to "the statement just prepared" */
	sql_stmt_unref(mc->last_prepared);
	mc->last_prepared = sql_stmt_ref(p->st);
}

static void cl_execute(struct my_conn *mc, const struct my_pkt *k)
{
	uint32_t id = k->copied >= 5 ? my_le32(k->body + 1) : 0;
	struct sql_stmt *st = NULL;
	struct my_pend *p;

	if (k->copied >= 5)
		st = id == 0xffffffffu ? mc->last_prepared : sql_map_get(&mc->stmts, id, NULL, 0);
	if (!st)
		mc->sc.st.unknown_stmt++;
	p = q_push(mc, k->body[0], k->start_ts);
	if (!p) {
		lose_cl(mc, "too many pending commands");
		return;
	}
	p->whole = 1;
	p->cursor = k->body[0] == MY_COM_STMT_EXECUTE && k->copied >= 6 && (k->body[5] & 0x0f);
	sql_op_start(&mc->sc, &p->op, st, k->start_ts, p->pos);
}

static void copy_name(char *dst, size_t cap, const uint8_t *s, size_t n)
{
	if (n == 0 || n >= cap || memchr(s, 0, n)) {
		dst[0] = '\0';
		return;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* COM_CHANGE_USER: authentication starts again; the database it names
 * becomes db.namespace once the server says OK. */
static void cl_change_user(struct my_conn *mc, const struct my_pkt *k)
{
	const uint8_t *b = k->body, *nul;
	size_t off = 1, n = k->copied;

	mc->change_db[0] = '\0';
	nul = n > off ? memchr(b + off, 0, n - off) : NULL; /* user: skipped */
	if (nul) {
		off = (size_t)(nul - b) + 1;
		if (mc->cli_caps & MY_CLIENT_SECURE_CONNECTION) {
			off = off < n ? off + 1 + b[off] : n;
		} else {
			nul = off < n ? memchr(b + off, 0, n - off) : NULL;
			off = nul ? (size_t)(nul - b) + 1 : n;
		}
		nul = off < n ? memchr(b + off, 0, n - off) : NULL;
		if (nul)
			copy_name(mc->change_db, sizeof(mc->change_db), b + off,
			          (size_t)(nul - (b + off)));
	}
	sql_map_clear(&mc->stmts);
	mc->phase = MP_AUTH;
}

/* A new command while the previous answer is still in the dark: that
 * answer ended before it, at the last server bytes seen. */
static void end_dark(struct my_conn *mc)
{
	struct my_pend *p = q_peek(mc);

	if (p && p->op.active) {
		mc->sc.st.ended_unseen++;
		sql_op_end(&mc->sc, &p->op, mc->last_sv_ts, NULL);
	}
	q_pop(mc);
	mc->sv_dark = 0;
}

static void on_cl_cmd(struct my_conn *mc, const struct my_pkt *k)
{
	struct my_pend *head = q_peek(mc);
	struct my_pend *p;
	uint8_t cmd;

	if (head && mc->rs == RS_INFILE && k->seq != 0) {
		/* LOAD DATA LOCAL: file contents until an empty packet */
		mc->expect = (uint8_t)(k->seq + 1);
		if (k->len == 0)
			mc->rs = RS_FIRST;
		return;
	}
	if (k->cont)
		return;
	if (k->seq != 0 || k->copied == 0) {
		lose_cl(mc, "not a command");
		return;
	}
	if (mc->sv_dark)
		end_dark(mc);
	cmd = k->body[0];
	switch (cmd) {
	case MY_COM_QUERY: cl_query(mc, k); return;
	case MY_COM_STMT_PREPARE: cl_prepare(mc, k); return;
	case MY_COM_STMT_EXECUTE:
	case MY_COM_STMT_BULK_EXECUTE: cl_execute(mc, k); return;
	case MY_COM_STMT_CLOSE:
		if (k->copied >= 5)
			sql_map_del(&mc->stmts, my_le32(k->body + 1), NULL, 0);
		return;
	case MY_COM_STMT_SEND_LONG_DATA:
		return; /* no answer */
	case MY_COM_QUIT:
		mc->phase = MP_DONE;
		return;
	case MY_COM_CHANGE_USER:
		cl_change_user(mc, k);
		return;
	case MY_COM_BINLOG_DUMP:
	case MY_COM_BINLOG_DUMP_GTID:
	case MY_COM_REGISTER_SLAVE:
		mc->phase = MP_DONE; /* replication stream: not followed */
		mc->sc.st.given_up++;
		mc->giving_up = 1;
		return;
	default:
		break;
	}
	p = q_push(mc, cmd, k->start_ts);
	if (!p) {
		lose_cl(mc, "too many pending commands");
		return;
	}
	if (cmd == MY_COM_INIT_DB)
		copy_name(p->db, sizeof(p->db), k->body + 1, k->copied - 1);
	if (cmd == MY_COM_SET_OPTION && k->copied >= 3)
		p->set_option = (uint8_t)(my_le16(k->body + 1) + 1);
}

/* ---- answers ------------------------------------------------------------------------------ */

struct my_end {
	int error;
	uint16_t code;
	char sqlstate[6];
	uint16_t status;
	uint8_t status_known;
	int64_t affected;
	const uint8_t *schema;
	size_t schema_len;
};

static void end_error(struct my_end *e, const struct my_pkt *k)
{
	memset(e, 0, sizeof(*e));
	e->affected = -1;
	e->error = 1;
	my_parse_err(k->body, k->copied, &e->code, e->sqlstate);
}

static void end_ok(struct my_conn *mc, struct my_end *e, const struct my_pkt *k)
{
	struct my_ok ok;
	int session = mc->caps_known && (mc->cli_caps & mc->srv_caps & MY_CLIENT_SESSION_TRACK);

	memset(e, 0, sizeof(*e));
	e->affected = -1;
	if (my_is_eof(k)) {
		if (k->len == 5 && k->copied >= 5) {
			e->status = my_le16(k->body + 3);
			e->status_known = 1;
		}
		return;
	}
	if (my_parse_ok(k->body, k->copied, session, &ok) == 0) {
		e->status = ok.status;
		e->status_known = 1;
		e->affected = (int64_t)ok.affected;
		e->schema = ok.schema;
		e->schema_len = ok.schema_len;
	}
}

static void fill_result(struct my_conn *mc, const struct my_end *e, struct sql_result *r,
                        char code[8], int result_set)
{
	sql_result_init(r);
	if (e->error) {
		snprintf(code, 8, "%u", e->code);
		r->status_code = code;
		r->error_type = e->sqlstate[0] ? e->sqlstate : code;
		return;
	}
	if (result_set && mc->rows_exact)
		r->returned_rows = mc->rows;
	if (!result_set && e->affected >= 0)
		r->affected_rows = e->affected;
}

/* One result of the head command ended (OK, EOF, ERR, or end of rows). */
static void result_end(struct my_conn *mc, const struct my_end *e, uint64_t ts, int result_set)
{
	struct my_pend *p = q_peek(mc);
	int more = !e->error && e->status_known && (e->status & MY_STATUS_MORE_RESULTS);
	struct sql_result r;
	char code[8];

	if (e->status_known)
		mc->bs = e->status & MY_STATUS_NO_BACKSLASH_ESCAPES ? SQL_BS_PLAIN : SQL_BS_ESCAPE;
	if (e->schema)
		copy_name(mc->sc.ns, sizeof(mc->sc.ns), e->schema, e->schema_len);
	else if (!e->error && p->op.active && p->op.st && p->op.st->cls.use_db[0])
		snprintf(mc->sc.ns, sizeof(mc->sc.ns), "%s", p->op.st->cls.use_db);
	fill_result(mc, e, &r, code, result_set);
	switch (p->cmd) {
	case MY_COM_QUERY:
	case MY_COM_STMT_EXECUTE:
	case MY_COM_STMT_BULK_EXECUTE:
		if (!p->whole) {
			sql_op_end(&mc->sc, &p->op, ts, &r);
			if (more && ++p->cur < p->n_parts)
				sql_op_start(&mc->sc, &p->op, p->parts[p->cur], ts,
				             p->pos == SQL_NOPOS ? SQL_NOPOS
				                                 : p->pos + p->part_off[p->cur]);
			else if (more)
				mc->sc.st.split_mismatch++;
			else if (e->error)
				mc->sc.st.not_run += (uint64_t)(p->n_parts - p->cur - 1);
			else if (p->cur + 1 < p->n_parts)
				mc->sc.st.split_mismatch++;
		} else {
			p->n_results++;
			if (e->error && !p->err) {
				p->err = 1;
				snprintf(p->code, sizeof(p->code), "%s", code);
				memcpy(p->sqlstate, e->sqlstate, sizeof(p->sqlstate));
			}
			p->rows = r.returned_rows;
			p->affected = r.affected_rows;
			if (!more) {
				sql_result_init(&r);
				if (p->err) {
					r.status_code = p->code;
					r.error_type = p->sqlstate[0] ? p->sqlstate : p->code;
				} else if (p->n_results == 1) {
					r.returned_rows = p->rows;
					r.affected_rows = p->affected;
				}
				sql_op_end(&mc->sc, &p->op, ts, &r);
			}
		}
		break;
	case MY_COM_STMT_PREPARE:
		if (e->error && p->st) {
			struct sql_op op;

			sql_op_start(&mc->sc, &op, p->st, p->start_ns, p->pos);
			sql_op_end(&mc->sc, &op, ts, &r);
		}
		break;
	case MY_COM_INIT_DB:
		if (!e->error && p->db[0] && !e->schema)
			snprintf(mc->sc.ns, sizeof(mc->sc.ns), "%s", p->db);
		break;
	case MY_COM_SET_OPTION:
		if (!e->error && p->set_option)
			mc->multi = p->set_option == 1;
		break;
	case MY_COM_RESET_CONNECTION:
		if (!e->error)
			sql_map_clear(&mc->stmts);
		break;
	default:
		break;
	}
	if (more) {
		mc->rs = RS_FIRST;
		mc->rows = 0;
		mc->rows_exact = 1;
		return;
	}
	q_pop(mc);
}

static void prepare_ok(struct my_conn *mc, const struct my_pkt *k)
{
	struct my_pend *p = q_peek(mc);
	uint32_t id;
	uint16_t cols, params;

	if (k->copied < 9) {
		q_pop(mc);
		return;
	}
	id = my_le32(k->body + 1);
	cols = my_le16(k->body + 5);
	params = my_le16(k->body + 7);
	if (p->st) {
		int r = sql_map_put(&mc->stmts, id, NULL, 0, p->st);

		if (r == 1)
			mc->sc.st.stmt_evicted++;
	}
	mc->prep_cols = cols;
	if (params) {
		mc->rs = RS_PREP_PARAMS;
		mc->rs_left = params;
	} else if (cols) {
		mc->rs = RS_PREP_COLS;
		mc->rs_left = cols;
	} else {
		q_pop(mc);
	}
}

/* A column count, with the "metadata follows" byte when the packet is one
 * byte longer than the integer. */
static void column_count(struct my_conn *mc, const struct my_pkt *k)
{
	size_t off = 0;
	uint64_t n = 0;

	if (my_lenenc(k->body, k->copied, &off, &n) < 0 || n == 0) {
		lose_sv(mc, "bad column count");
		return;
	}
	mc->rows = 0;
	mc->rows_exact = 1;
	if (k->len == off + 1 && k->copied > off && k->body[off] == 0) {
		mc->rs = RS_COLS_EOF; /* metadata skipped */
		return;
	}
	mc->rs = RS_COLS;
	mc->rs_left = n;
}

static int deprecate_eof(const struct my_conn *mc)
{
	return mc->caps_known && (mc->cli_caps & mc->srv_caps & MY_CLIENT_DEPRECATE_EOF);
}

static void first_packet(struct my_conn *mc, const struct my_pkt *k, uint64_t ts)
{
	struct my_pend *p = q_peek(mc);
	struct my_end e;
	uint8_t b = k->copied ? k->body[0] : 0;

	if (p->cmd == MY_COM_STATISTICS) {
		q_pop(mc); /* one string packet */
		return;
	}
	if (b == 0xff) {
		uint16_t code = k->copied >= 3 ? my_le16(k->body + 1) : 0;

		if (code == 0xffff)
			return; /* MariaDB progress report */
		end_error(&e, k);
		result_end(mc, &e, ts, 0);
		return;
	}
	if (b == 0x00 && p->cmd == MY_COM_STMT_PREPARE) {
		prepare_ok(mc, k);
		return;
	}
	if (b == 0x00 || my_is_eof(k)) {
		end_ok(mc, &e, k);
		result_end(mc, &e, ts, 0);
		return;
	}
	if (b == 0xfb && p->cmd == MY_COM_QUERY) {
		mc->rs = RS_INFILE;
		return;
	}
	if (p->cmd == MY_COM_FIELD_LIST) {
		mc->rs = RS_FIELDS;
		return;
	}
	column_count(mc, k);
}

static void row_packet(struct my_conn *mc, const struct my_pkt *k, uint64_t ts)
{
	struct my_end e;
	uint8_t b;

	if (k->cont)
		return;
	b = k->copied ? k->body[0] : 0;
	if (b == 0xfe && k->len < MY_MAX_PAYLOAD) {
		end_ok(mc, &e, k);
		result_end(mc, &e, ts, 1);
		return;
	}
	if (b == 0xff && k->copied >= 3 && my_le16(k->body + 1) != 0xffff) {
		end_error(&e, k);
		result_end(mc, &e, ts, 1);
		return;
	}
	mc->rows++;
}

static void prep_cols_phase(struct my_conn *mc)
{
	if (mc->prep_cols) {
		mc->rs = RS_PREP_COLS;
		mc->rs_left = mc->prep_cols;
	} else {
		q_pop(mc);
	}
}

/* The last definition came: an EOF follows unless CLIENT_DEPRECATE_EOF
 * (when the capabilities are not known, the next packet decides). */
static void after_definitions(struct my_conn *mc)
{
	int no_eof = deprecate_eof(mc);

	switch (mc->rs) {
	case RS_COLS:
		mc->rs = no_eof ? RS_ROWS : RS_COLS_EOF;
		break;
	case RS_PREP_PARAMS:
		mc->rs = RS_PREP_PARAMS_EOF;
		if (no_eof)
			prep_cols_phase(mc);
		break;
	case RS_PREP_COLS:
		mc->rs = RS_PREP_COLS_EOF;
		if (no_eof)
			q_pop(mc);
		break;
	default:
		break;
	}
}

/* The packet where an EOF may be: consumed (1) or left for the state it
 * moved to (0). */
static int maybe_eof(struct my_conn *mc, const struct my_pkt *k, uint64_t ts)
{
	struct my_pend *p = q_peek(mc);
	int eof = k && my_is_eof(k) && k->seq == mc->expect;
	struct my_end e;

	switch (mc->rs) {
	case RS_COLS_EOF:
		mc->rs = RS_ROWS;
		if (!eof)
			return 0;
		end_ok(mc, &e, k);
		if (p->cursor && e.status_known && (e.status & MY_STATUS_CURSOR_EXISTS)) {
			mc->rows_exact = 0; /* the rows come with COM_STMT_FETCH */
			result_end(mc, &e, ts, 1);
		}
		return 1;
	case RS_PREP_PARAMS_EOF:
		prep_cols_phase(mc);
		return eof;
	case RS_PREP_COLS_EOF:
		q_pop(mc);
		return eof;
	default:
		return 0;
	}
}

/* One server packet for the head command. Returns 1 when it was consumed. */
static int step(struct my_conn *mc, const struct my_pkt *k, uint64_t ts)
{
	switch (mc->rs) {
	case RS_FIRST:
		mc->expect++;
		first_packet(mc, k, ts);
		return 1;
	case RS_ROWS:
		mc->expect++;
		row_packet(mc, k, ts);
		return 1;
	case RS_FIELDS:
		mc->expect++;
		if (my_is_eof(k) || (k->copied && k->body[0] == 0xff))
			q_pop(mc);
		return 1;
	case RS_COLS:
	case RS_PREP_PARAMS:
	case RS_PREP_COLS:
		mc->expect++;
		if (!k->cont && --mc->rs_left == 0)
			after_definitions(mc);
		return 1;
	case RS_COLS_EOF:
	case RS_PREP_PARAMS_EOF:
	case RS_PREP_COLS_EOF: {
		const struct my_pend *head = q_peek(mc);

		if (!maybe_eof(mc, k, ts))
			return 0;
		if (q_peek(mc) == head)
			mc->expect++; /* same answer goes on (a pop reset it) */
		return 1;
	}
	default:
		lose_sv(mc, "server packet during LOCAL INFILE");
		return 1;
	}
}

static int on_sv_cmd(struct my_conn *mc, const struct my_pkt *k, uint64_t ts)
{
	for (int round = 0; round < 4; round++) {
		if (!q_peek(mc)) {
			mc->sc.st.unmatched++;
			return 0;
		}
		if (k->seq != mc->expect && mc->rs != RS_COLS_EOF && mc->rs != RS_PREP_PARAMS_EOF &&
		    mc->rs != RS_PREP_COLS_EOF) {
			if (mc->rs == RS_FIRST)
				mc->sc.st.unmatched++; /* the rest of an answer given up on */
			else
				lose_sv(mc, "sequence id out of order");
			return 0;
		}
		if (step(mc, k, ts))
			return 0;
	}
	return 0;
}

/* ---- the handshake ------------------------------------------------------------------------- */

/* Which MySQL-protocol product a server was greeted by: a connection
 * picked up mid-stream to the same server reuses it (the protocol alone
 * does not tell MariaDB from MySQL). */
static void server_key(const struct my_conn *mc, const char **addr, uint16_t *port)
{
	int server = mc->sc.role == SONDE_ROLE_SERVER;

	*addr = server ? mc->sc.local_addr : mc->sc.peer_addr;
	*port = server ? mc->sc.local_port : mc->sc.peer_port;
}

static void remember_system(const struct my_conn *mc, int mariadb)
{
	struct sql_plugin *pl = mc->sc.pl;
	const char *addr;
	uint16_t port;
	unsigned i;

	server_key(mc, &addr, &port);
	for (i = 0; i < SQL_SERVERS; i++)
		if (pl->servers[i].port == port && !strcmp(pl->servers[i].addr, addr))
			break;
	if (i == SQL_SERVERS)
		i = pl->servers_next++ % SQL_SERVERS;
	snprintf(pl->servers[i].addr, sizeof(pl->servers[i].addr), "%s", addr);
	pl->servers[i].port = port;
	pl->servers[i].mariadb = (uint8_t)mariadb;
}

static const char *recall_system(const struct my_conn *mc)
{
	const struct sql_plugin *pl = mc->sc.pl;
	const char *addr;
	uint16_t port;

	server_key(mc, &addr, &port);
	for (unsigned i = 0; i < SQL_SERVERS; i++)
		if (pl->servers[i].port == port && port && !strcmp(pl->servers[i].addr, addr))
			return pl->servers[i].mariadb ? "mariadb" : "mysql";
	/* Never greeted: the server process itself may say (MariaDB's server
	 * is mariadbd); otherwise the protocol's name, as a MySQL client
	 * library would report it. */
	if (mc->sc.role == SONDE_ROLE_SERVER && mc->exe_mariadbd)
		return "mariadb";
	return "mysql";
}

static void on_greeting(struct my_conn *mc, const struct my_pkt *k)
{
	struct my_greeting g;

	if (k->copied && k->body[0] == 0xff) {
		mc->sc.st.auth_failed++;
		mc->phase = MP_DONE;
		return;
	}
	if (my_parse_greeting(k->body, k->copied, &g) < 0) {
		mc->phase = MP_DONE;
		return;
	}
	mc->sc.system = g.mariadb ? "mariadb" : "mysql";
	remember_system(mc, g.mariadb);
	mc->srv_caps = g.caps;
	mc->bs = g.status & MY_STATUS_NO_BACKSLASH_ESCAPES ? SQL_BS_PLAIN : SQL_BS_ESCAPE;
	mc->phase = MP_GREETED;
	mc->cl.next_want = MY_HANDSHAKE_COPY;
	mc->cl.by_cmd = 0;
}

static void on_handshake(struct my_conn *mc, const struct my_pkt *k)
{
	struct my_handshake h;

	if (my_parse_handshake(k->body, k->copied, k->partial, &h) < 0) {
		mc->phase = MP_AUTH;
		return;
	}
	if (h.caps & MY_CLIENT_SSL && k->len == 32) {
		mc->phase = MP_TLS_WAIT;
		mc->sc.st.tls++;
		return;
	}
	mc->cli_caps = h.caps;
	mc->caps_known = 1;
	mc->multi = (h.caps & MY_CLIENT_MULTI_STATEMENTS) != 0;
	if (h.db)
		copy_name(mc->sc.ns, sizeof(mc->sc.ns), h.db, h.db_len);
	mc->phase = MP_AUTH;
	mc->cl.next_want = 0; /* authentication data: never copied */
}

static void enter_commands(struct my_conn *mc)
{
	mc->phase = MP_CMD;
	mc->cl.by_cmd = 1;
	mc->cl.next_want = 16;
	mc->cl.text_want = mc->sc.set.query_max + 16;
	mc->sv.next_want = MY_SERVER_COPY;
	next_answer(mc);
}

/* Returns SONDE_ERR_PROTO when the connection is not followed further. */
static int on_auth_reply(struct my_conn *mc, const struct my_pkt *k)
{
	uint8_t b = k->copied ? k->body[0] : 0;

	if (b == 0xff) {
		mc->sc.st.auth_failed++;
		mc->phase = MP_DONE;
		return SONDE_OK;
	}
	if (b != 0x00 || k->len < 7)
		return SONDE_OK; /* auth switch, more data */
	if (mc->change_db[0]) {
		snprintf(mc->sc.ns, sizeof(mc->sc.ns), "%s", mc->change_db);
		mc->change_db[0] = '\0';
	}
	if (mc->cli_caps & mc->srv_caps & (MY_CLIENT_COMPRESS | MY_CLIENT_ZSTD)) {
		mc->sc.st.compressed++;
		if (!mc->sc.pl->logged_compress) {
			mc->sc.pl->logged_compress = 1;
			mc->sc.pl->host->log(mc->sc.pl->self, SONDE_LOG_INFO,
			                     "a %s connection uses protocol compression: not "
			                     "followed (counted; said once)",
			                     mc->sc.system);
		}
		mc->phase = MP_DONE;
		mc->giving_up = 1;
		return SONDE_ERR_PROTO;
	}
	enter_commands(mc);
	return SONDE_OK;
}

/* ---- bytes in ------------------------------------------------------------------------------- */

static int on_packet(struct my_conn *mc, int client, const struct my_pkt *k, uint64_t ts)
{
	if (client) {
		if (mc->phase == MP_GREETED && !k->cont && k->seq == 0 && k->copied &&
		    known_cmd(k->body[0])) {
			/* TLS plaintext that starts with a command: the TLS hooks
			 * came after the handshake (picked up mid-stream) */
			sql_track_lost(&mc->sc.req);
			mc->pkt_pos = SQL_NOPOS;
			enter_commands(mc);
			on_cl_cmd(mc, k);
		} else if (mc->phase == MP_GREETED && !k->cont) {
			on_handshake(mc, k);
		} else if (mc->phase == MP_CMD) {
			on_cl_cmd(mc, k);
		}
		return SONDE_OK;
	}
	switch (mc->phase) {
	case MP_INIT:
		if (k->seq == 0)
			on_greeting(mc, k);
		return SONDE_OK;
	case MP_AUTH:
		return on_auth_reply(mc, k);
	case MP_CMD:
		return on_sv_cmd(mc, k, ts);
	default:
		return SONDE_OK;
	}
}

/* Decode p[0..n); at: where p[0] is in the stream (SQL_NOPOS: unknown). */
static int feed(struct my_conn *mc, int client, const uint8_t *p, size_t n, uint64_t ts,
                uint64_t at)
{
	struct my_stream *s = client ? &mc->cl : &mc->sv;
	const uint8_t *p0 = p;

	while (n > 0 && (client ? mc->cl_sync : mc->sv_sync) && mc->phase != MP_DONE &&
	       mc->phase != MP_TLS_WAIT) {
		struct my_pkt k;
		int done;
		size_t r;

		if (client && !my_stream_in_pkt(s))
			mc->pkt_pos = at == SQL_NOPOS ? SQL_NOPOS : at + (uint64_t)(p - p0);
		r = my_stream_feed(s, p, n, ts, &k, &done);

		p += r;
		n -= r;
		if (done && on_packet(mc, client, &k, ts) != SONDE_OK)
			return SONDE_ERR_PROTO;
	}
	return SONDE_OK;
}

static int skip_uncaptured(struct my_conn *mc, int client, const struct sonde_chunk *c)
{
	struct my_stream *s = client ? &mc->cl : &mc->sv;
	uint64_t miss = c->orig_len - c->len;

	while (miss > 0 && (client ? mc->cl_sync : mc->sv_sync)) {
		struct my_pkt k;
		int done;
		uint64_t used = my_stream_skip(s, miss, &k, &done);

		miss -= used;
		if (done && on_packet(mc, client, &k, c->ts_unix_ns) != SONDE_OK)
			return SONDE_ERR_PROTO;
		if (miss > 0 && !done && used == 0) {
			if (client)
				lose_cl(mc, "truncated inside client structure");
			else
				lose_sv(mc, "truncated inside server structure");
		}
	}
	return SONDE_OK;
}

/* The end of an answer whose middle was lost. */
static void dark_finish(struct my_conn *mc, const struct sonde_chunk *c, size_t at)
{
	struct my_pend *p = q_peek(mc);
	struct my_pkt k;
	struct my_end e;

	memset(&k, 0, sizeof(k));
	k.len = my_le24(c->data + at);
	k.seq = c->data[at + 3];
	k.body = c->data + at + 4;
	k.copied = k.len;
	if (k.body[0] == 0xff)
		end_error(&e, &k);
	else
		end_ok(mc, &e, &k);
	e.status &= (uint16_t)~MY_STATUS_MORE_RESULTS;
	mc->sc.st.dark_done++;
	if (p->n_parts && p->cur + 1 < p->n_parts) {
		/* statements ended in the lost bytes: their times are unknown */
		mc->sc.st.dropped += (uint64_t)(p->n_parts - p->cur - 1);
		sql_op_drop(&mc->sc, &p->op);
		q_pop(mc);
	} else if (p->cmd == MY_COM_STMT_PREPARE) {
		q_pop(mc); /* the statement id was in the lost bytes */
	} else {
		mc->rows_exact = 0;
		result_end(mc, &e, c->ts_unix_ns, 1);
	}
	mc->sv_dark = 0;
	mc->sv_sync = 1;
	my_stream_reset(&mc->sv);
	next_answer(mc);
}

static int sv_chunk(struct my_conn *mc, const struct sonde_chunk *c)
{
	mc->last_sv_ts = c->ts_unix_ns;
	mc->last_sv_cut = c->orig_len > c->len;
	if (c->flags & SONDE_CHUNK_GAP && (mc->sv_sync || mc->q_len))
		lose_sv(mc, "gap in server bytes");
	if (mc->sv_dark) {
		long at = c->len == c->orig_len ? my_tail_end(c->data, c->len) : -1;

		if (at >= 0 && q_peek(mc))
			dark_finish(mc, c, (size_t)at);
		return SONDE_OK;
	}
	if (!mc->sv_sync) {
		struct my_pend *head = q_peek(mc);

		if (!head || !mc->cl_sync || c->ts_unix_ns < head->start_ns || !sv_clean_start(c))
			return SONDE_OK;
		my_stream_reset(&mc->sv);
		mc->sv_sync = 1;
		next_answer(mc);
		resynced(mc);
	}
	if (feed(mc, 0, c->data, c->len, c->ts_unix_ns, SQL_NOPOS) != SONDE_OK)
		return SONDE_ERR_PROTO;
	if (c->orig_len > c->len && skip_uncaptured(mc, 0, c) != SONDE_OK)
		return SONDE_ERR_PROTO;
	if (mc->sv_sync)
		sql_capture_skip(&mc->sc, c, my_stream_skippable(&mc->sv));
	return SONDE_OK;
}

/* A chunk that is exactly the header of a command packet (sequence id 0).
 * The servers (mariadbd, mysqld) read a packet's 4-byte header, then its
 * payload, in two reads: on the server side a clean start is split. */
static int cl_header_only(const struct sonde_chunk *c)
{
	return c->len == 4 && c->orig_len == 4 && c->data[3] == 0 && my_le24(c->data) > 0;
}

/* The chunk after a header-only chunk: the payload of that packet when it
 * starts with a known command and is exactly as long as the header says
 * (a payload read in pieces is not taken: the next command will be). */
static int cl_split_start(const struct my_conn *mc, const struct sonde_chunk *c)
{
	return mc->cl_hdr_ok && c->len > 0 && !(c->flags & SONDE_CHUNK_GAP) &&
	       c->orig_len == my_le24(mc->cl_hdr) && known_cmd(c->data[0]);
}

static int cl_chunk(struct my_conn *mc, const struct sonde_chunk *c)
{
	sql_track_chunk(&mc->sc.req, c);
	if (c->flags & SONDE_CHUNK_GAP && (mc->cl_sync || mc->q_len))
		lose_cl(mc, "gap in client bytes");
	if (!mc->cl_sync) {
		int split = cl_split_start(mc, c);

		if (!split && !cl_clean_start(c)) {
			mc->cl_hdr_ok = cl_header_only(c);
			if (mc->cl_hdr_ok) {
				memcpy(mc->cl_hdr, c->data, 4);
				mc->cl_hdr_ts = c->ts_unix_ns;
			}
			sql_track_lost(&mc->sc.req); /* bytes not decoded */
			if (++mc->unsynced_chunks > MY_MAX_UNSYNCED_CHUNKS && !mc->ever_synced)
				return SONDE_ERR_PROTO;
			return SONDE_OK;
		}
		my_stream_reset(&mc->cl);
		mc->cl_sync = 1;
		mc->cl_hdr_ok = 0;
		mc->unsynced_chunks = 0;
		resynced(mc);
		if (split && feed(mc, 1, mc->cl_hdr, 4, mc->cl_hdr_ts, SQL_NOPOS) != SONDE_OK)
			return SONDE_ERR_PROTO;
	}
	if (feed(mc, 1, c->data, c->len, c->ts_unix_ns, sql_track_pos(&mc->sc.req, c, 0)) !=
	    SONDE_OK)
		return SONDE_ERR_PROTO;
	if (c->orig_len > c->len && skip_uncaptured(mc, 1, c) != SONDE_OK)
		return SONDE_ERR_PROTO;
	if (mc->cl_sync)
		sql_capture_skip(&mc->sc, c, my_stream_skippable(&mc->cl));
	return SONDE_OK;
}

/* A server greeting: protocol 10, a printable version, NUL. */
static int greeting(const uint8_t *p, size_t n)
{
	uint32_t len;
	size_t i;

	if (n < 5)
		return 0;
	len = my_le24(p);
	if (p[3] != 0 || p[4] != 0x0a || len < 20 || len > 1024)
		return 0;
	for (i = 5; i < n && i < 5 + 64 && p[i] != 0; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return 0;
	return i < n && p[i] == 0 && i > 5 && p[5] >= '0' && p[5] <= '9';
}

/* The first bytes of a greeting, when it arrives in pieces. */
static int greeting_prefix(const uint8_t *p, size_t n)
{
	if (n == 0 || (n >= 3 && p[2] != 0) || (n >= 4 && p[3] != 0) || (n >= 5 && p[4] != 0x0a))
		return 0;
	for (size_t i = 5; i < n; i++) {
		if (p[i] == 0)
			return greeting(p, n);
		if (p[i] < 0x20 || p[i] > 0x7e)
			return 0;
	}
	return 1;
}

static void set_cl_dir(struct my_conn *mc, int dir)
{
	mc->cl_dir = dir;
	mc->sc.role = dir == SONDE_DIR_EGRESS ? SONDE_ROLE_CLIENT : SONDE_ROLE_SERVER;
	sql_capture_role(&mc->sc);
}

static void first_chunk(struct my_conn *mc, const struct sonde_chunk *c)
{
	if (greeting(c->data, c->len) ||
	    ((int)c->dir != mc->cl_dir && greeting_prefix(c->data, c->len))) {
		mc->from_start = 1;
		mc->cl_dir = c->dir == SONDE_DIR_EGRESS ? SONDE_DIR_INGRESS : SONDE_DIR_EGRESS;
		mc->sc.role = c->dir == SONDE_DIR_EGRESS ? SONDE_ROLE_SERVER : SONDE_ROLE_CLIENT;
		mc->cl_sync = mc->sv_sync = 1;
		mc->ever_synced = 1;
		mc->sv.next_want = MY_SERVER_COPY;
		return;
	}
	/* Picked up mid-stream: a command (sequence id 0) or an answer (1 and
	 * on) says who is the client, whatever the role guessed (not when the
	 * host saw the connection accepted or connected, SDK 1.1). */
	if (!sql_role_from_bytes(&mc->sc))
		;
	else if (cl_clean_start(c))
		set_cl_dir(mc, (int)c->dir);
	else if (c->len >= 4 && c->data[3] != 0 && sv_clean_start(c))
		set_cl_dir(mc, c->dir == SONDE_DIR_EGRESS ? SONDE_DIR_INGRESS : SONDE_DIR_EGRESS);
	mc->sc.system = recall_system(mc);
	mc->multi = 1;
	enter_commands(mc);
}

/* Compression or replication: nothing more is followed. The kernel is
 * told to send nothing more (1.1); on a 1.0 host the answer the code gave
 * stands (SONDE_ERR_PROTO for compression, ignoring for replication). */
static int give_up(struct my_conn *mc, int rc)
{
	mc->giving_up = 0;
	drop_all(mc);
	mc->phase = MP_DONE;
	return sql_capture_mute(&mc->sc) ? SONDE_OK : rc;
}

/* SDK 1.1 timer: a dark answer (its middle lost) whose last server chunk
 * was cut by the capture may have ended inside it: once the server has
 * been silent for dark_timeout, it ends at its last bytes, as the client's
 * next command would have ended it. */
static void my_tick(struct sql_conn *sc, uint64_t now)
{
	struct my_conn *mc = (struct my_conn *)sc;
	uint64_t quiet = (uint64_t)sc->set.dark_timeout_s * 1000000000ull;

	if (mc->sv_dark && mc->last_sv_cut && quiet && now > mc->last_sv_ts &&
	    now - mc->last_sv_ts >= quiet)
		end_dark(mc);
}

static int my_conn_data(void *state, struct sonde_conn *conn, const struct sonde_chunk *c)
{
	struct my_conn *mc = state;
	int rc;

	mc->sc.conn = conn;
	if (c->len == 0 && c->orig_len == 0)
		return SONDE_OK;
	if (mc->phase == MP_DONE)
		return SONDE_OK;
	if (mc->phase == MP_INIT && !mc->from_start && !mc->ever_synced)
		first_chunk(mc, c);
	if (mc->phase == MP_TLS_WAIT) {
		if (!sql_chunk_tls(&mc->sc, c))
			return ++mc->tls_wait_chunks > MY_MAX_TLS_WAIT_CHUNKS ? SONDE_ERR_PROTO
			                                                       : SONDE_OK;
		/* the TLS plaintext starts with the handshake response; its
		 * positions count from its own start */
		sql_track_restart(&mc->sc.req);
		my_stream_reset(&mc->cl);
		my_stream_reset(&mc->sv);
		mc->phase = MP_GREETED;
	}
	rc = (int)c->dir == mc->cl_dir ? cl_chunk(mc, c) : sv_chunk(mc, c);
	if (mc->giving_up)
		return give_up(mc, rc);
	return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static int my_conn_open(void *plugin_state, struct sonde_conn *conn,
                        const struct sonde_conn_info *ci, void **conn_state)
{
	struct my_conn *mc = calloc(1, sizeof(*mc));

	if (!mc)
		return SONDE_ERR_NOMEM;
	sql_conn_init(&mc->sc, plugin_state, conn, ci, "mysql");
	mc->sc.tick = my_tick;
	mc->cl_dir = ci->role == SONDE_ROLE_SERVER ? SONDE_DIR_INGRESS : SONDE_DIR_EGRESS;
	mc->bs = SQL_BS_UNKNOWN;
	mc->multi = 1;
	mc->exe_mariadbd = ci->exe_name && !strcmp(ci->exe_name, "mariadbd");
	my_stream_init(&mc->cl);
	my_stream_init(&mc->sv);
	sql_map_init(&mc->stmts, mc->sc.set.prepared_max);
	*conn_state = mc;
	return SONDE_OK;
}

static void my_conn_close(void *state, struct sonde_conn *conn, uint64_t ts)
{
	struct my_conn *mc = state;

	(void)ts;
	mc->sc.conn = conn;
	if (mc->sv_dark)
		end_dark(mc);
	drop_all(mc);
	free(mc->q);
	sql_map_free(&mc->stmts);
	sql_stmt_unref(mc->last_prepared);
	my_stream_free(&mc->cl);
	my_stream_free(&mc->sv);
	sql_conn_fini(&mc->sc);
	free(mc);
}

/* ---- detection -------------------------------------------------------------------------------- */

static int detect_command(const uint8_t *p, size_t n)
{
	int end = 0, k = my_chain(p, n, &end);
	uint32_t len;
	uint8_t cmd;
	size_t i;

	if (n < 5)
		return n >= 4 && p[3] != 0 ? SONDE_DETECT_NO : SONDE_DETECT_NEED_MORE;
	len = my_le24(p);
	cmd = p[4];
	if (k < 0 || p[3] != 0 || len == 0 || !known_cmd(cmd))
		return SONDE_DETECT_NO;
	if (k >= 1 && end != 0)
		return SONDE_DETECT_NO; /* a command is answered before the next */
	if (cmd == MY_COM_QUERY || cmd == MY_COM_STMT_PREPARE) {
		/* SQL text: the first word is a statement verb */
		for (i = 5; i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\t' || p[i] == '('); i++)
			;
		size_t w = i;

		while (w < n && ((p[w] | 0x20) >= 'a' && (p[w] | 0x20) <= 'z'))
			w++;
		if (w == n && k == 0)
			return SONDE_DETECT_NEED_MORE;
		return sql_is_verb((const char *)p + i, w - i) ? 70 : SONDE_DETECT_NO;
	}
	if (k == 0)
		return SONDE_DETECT_NO;
	if ((cmd == MY_COM_STMT_EXECUTE && len >= 10) || (cmd == MY_COM_PING && len == 1) ||
	    ((cmd == MY_COM_STMT_CLOSE || cmd == MY_COM_STMT_RESET) && len == 5) ||
	    (cmd == MY_COM_STMT_FETCH && len == 9))
		return 40;
	return SONDE_DETECT_NO;
}

static int my_detect(void *plugin_state, const struct sonde_conn_info *ci,
                     const struct sonde_chunk *c)
{
	const uint8_t *p = c->data;
	size_t n = c->len;
	int cl_side = ci->role == SONDE_ROLE_UNKNOWN ||
	              (ci->role == SONDE_ROLE_CLIENT && c->dir == SONDE_DIR_EGRESS) ||
	              (ci->role == SONDE_ROLE_SERVER && c->dir == SONDE_DIR_INGRESS);
	int end = 0;

	(void)plugin_state;
	if (n == 0)
		return SONDE_DETECT_NEED_MORE;
	if (greeting(p, n))
		return SONDE_DETECT_SURE;
	/* a greeting still arriving */
	if (n < 6 && (n < 4 || p[3] == 0) && (n < 5 || p[4] == 0x0a) && (n < 3 || p[2] == 0) &&
	    !cl_side)
		return SONDE_DETECT_NEED_MORE;
	if (cl_side) {
		int r = detect_command(p, n);

		if (r != SONDE_DETECT_NO || ci->role != SONDE_ROLE_UNKNOWN)
			return r;
	} else if (n >= 5 && p[3] == 0 && detect_command(p, n) > 0) {
		return detect_command(p, n); /* the role was a guess */
	}
	/* an answer seen first: wait for a command */
	if (n >= 5 && p[3] == 1 && my_chain(p, n, &end) >= 1 && end == 0)
		return SONDE_DETECT_NEED_MORE;
	return SONDE_DETECT_NO;
}

const struct sonde_protocol sql_mysql_protocol = {
	.struct_size = sizeof(struct sonde_protocol),
	.name = "mysql",
	.detect = my_detect,
	.conn_open = my_conn_open,
	.conn_data = my_conn_data,
	.conn_close = my_conn_close,
};
