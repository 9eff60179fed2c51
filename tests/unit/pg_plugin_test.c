/*
 * pg_plugin_test.c - the `postgresql` protocol of the sql plugin
 * (plugins/sql/pg.c) driven through the test host (tests/support), chunk by
 * chunk, the way the agent drives it.
 *
 * The one idea: sessions recorded from PostgreSQL 15 (psql, pgbench -M
 * extended, pgbench -M prepared; through a logging TCP proxy) and messages
 * built here for what a recording cannot show (pipelines, errors in the
 * extended protocol, lost bytes, TLS) are fed in, whole, split at every
 * byte, and byte by byte; the spans, their attributes and the counters are
 * read back. Every test ends with nothing open and no misuse of the host.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include <time.h>

#include "testhost.h"
#include "sql_internal.h"

const struct sonde_plugin *sonde_plugin_entry(void);

/* A plugin loaded with th_load_minor(..., V10) runs as a 1.0 host runs it:
 * the real host's table cut to its 1.0 size, so no 1.1 member may be used. */
#define V10 0u
#define V11 SONDE_ABI_MINOR

static uint64_t wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sum of the points of sonde.sql.events{sonde.event=ev}. */
static double events(struct th_host *h, const char *ev, const char *system)
{
	double sum = 0;

	for (size_t i = 0; i < th_n_records(h); i++) {
		const struct th_record *r = th_record(h, i);
		const char *e = th_record_val(r, "sonde.event");
		const char *sys = th_record_val(r, "db.system");

		if (!strcmp(r->m->name, "sonde.sql.events") && e && !strcmp(e, ev) && sys &&
		    !strcmp(sys, system))
			sum += r->value;
	}
	return sum;
}

#define FE 0
#define BE 1

struct vec {
	int side;
	size_t len;
	const char *data;
};

/* ---- recorded sessions (PostgreSQL 15.18, Debian 12) ---------------------- */

/* pg_psql: 10 chunks */
static const struct vec pg_psql[] = {
	{ FE, 8, "\x00\x00\x00\x08\x04\xd2\x16/" },
	{ BE, 1, "N" },
	{ FE, 63, "\x00\x00\x00?\x00\x03\x00\x00user\x00postgres\x00""database\x00postgres\x00""applicatio"
	  "n_name\x00psql\x00\x00" },
	{ BE, 414, "R\x00\x00\x00\x08\x00\x00\x00\x00S\x00\x00\x00\x1a""application_name\x00psql\x00S\x00\x00"
	  "\x00\x19""client_encoding\x00UTF8\x00S\x00\x00\x00\x17""DateStyle\x00ISO, MDY\x00S\x00"
	  "\x00\x00&default_transaction_read_only\x00off\x00S\x00\x00\x00\x17in_hot_standby\x00"
	  "off\x00S\x00\x00\x00\x19integer_datetimes\x00on\x00S\x00\x00\x00\x1bIntervalStyle\x00"
	  "postgres\x00S\x00\x00\x00\x14is_superuser\x00on\x00S\x00\x00\x00\x19server_encoding\x00"
	  "UTF8\x00S\x00\x00\x00""2server_version\x00""15.18 (Debian 15.18-0+deb12u1)\x00S\x00\x00"
	  "\x00#session_authorization\x00postgres\x00S\x00\x00\x00#standard_conforming_strings\x00"
	  "on\x00S\x00\x00\x00\x15TimeZone\x00""Etc/UTC\x00K\x00\x00\x00\x0c\x00\x00\x1f\x8c\xa2"
	  "\x0a\x87\xa7Z\x00\x00\x00\x05I" },
	{ FE, 41, "Q\x00\x00\x00(SELECT name FROM users WHERE id = 1\x00" },
	{ BE, 66, "T\x00\x00\x00\x1d\x00\x01name\x00\x00\x00@\x00\x00\x02\x00\x00\x00\x19\xff\xff\xff\xff\xff"
	  "\xff\x00\x00""D\x00\x00\x00\x0f\x00\x01\x00\x00\x00\x05""aliceC\x00\x00\x00\x0dSELEC"
	  "T 1\x00Z\x00\x00\x00\x05I" },
	{ FE, 26, "Q\x00\x00\x00\x19SELECT * FROM nosuch\x00" },
	{ BE, 106, "E\x00\x00\x00iSERROR\x00VERROR\x00""C42P01\x00Mrelation \"nosuch\" does not exist\x00P1"
	  "5\x00""Fparse_relation.c\x00L1392\x00RparserOpenTable\x00\x00" },
	{ BE, 6, "Z\x00\x00\x00\x05I" },
	{ FE, 5, "X\x00\x00\x00\x04" },
};

/* pg_extended: 9 chunks */
static const struct vec pg_extended[] = {
	{ FE, 8, "\x00\x00\x00\x08\x04\xd2\x16/" },
	{ BE, 1, "N" },
	{ FE, 66, "\x00\x00\x00""B\x00\x03\x00\x00user\x00postgres\x00""database\x00postgres\x00""applicat"
	  "ion_name\x00pgbench\x00\x00" },
	{ BE, 417, "R\x00\x00\x00\x08\x00\x00\x00\x00S\x00\x00\x00\x1d""application_name\x00pgbench\x00S\x00"
	  "\x00\x00\x19""client_encoding\x00UTF8\x00S\x00\x00\x00\x17""DateStyle\x00ISO, MDY\x00"
	  "S\x00\x00\x00&default_transaction_read_only\x00off\x00S\x00\x00\x00\x17in_hot_standb"
	  "y\x00off\x00S\x00\x00\x00\x19integer_datetimes\x00on\x00S\x00\x00\x00\x1bIntervalSty"
	  "le\x00postgres\x00S\x00\x00\x00\x14is_superuser\x00on\x00S\x00\x00\x00\x19server_enc"
	  "oding\x00UTF8\x00S\x00\x00\x00""2server_version\x00""15.18 (Debian 15.18-0+deb12u1)\x00"
	  "S\x00\x00\x00#session_authorization\x00postgres\x00S\x00\x00\x00#standard_conforming"
	  "_strings\x00on\x00S\x00\x00\x00\x15TimeZone\x00""Etc/UTC\x00K\x00\x00\x00\x0c\x00\x00"
	  "\x1f\x9dn\xf8\\,Z\x00\x00\x00\x05I" },
	{ FE, 108, "P\x00\x00\x00=\x00SELECT abalance FROM pgbench_accounts WHERE aid = $1;\x00\x00\x00""B\x00"
	  "\x00\x00\x17\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05""40855\x00\x01\x00\x00""D\x00\x00"
	  "\x00\x06P\x00""E\x00\x00\x00\x09\x00\x00\x00\x00\x00S\x00\x00\x00\x04" },
	{ BE, 76, "1\x00\x00\x00\x04""2\x00\x00\x00\x04T\x00\x00\x00!\x00\x01""abalance\x00\x00\x00@\x0d\x00"
	  "\x03\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00""D\x00\x00\x00\x0b\x00\x01\x00\x00"
	  "\x00\x01""0C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I" },
	{ FE, 108, "P\x00\x00\x00=\x00SELECT abalance FROM pgbench_accounts WHERE aid = $1;\x00\x00\x00""B\x00"
	  "\x00\x00\x17\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05""74381\x00\x01\x00\x00""D\x00\x00"
	  "\x00\x06P\x00""E\x00\x00\x00\x09\x00\x00\x00\x00\x00S\x00\x00\x00\x04" },
	{ BE, 76, "1\x00\x00\x00\x04""2\x00\x00\x00\x04T\x00\x00\x00!\x00\x01""abalance\x00\x00\x00@\x0d\x00"
	  "\x03\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00""D\x00\x00\x00\x0b\x00\x01\x00\x00"
	  "\x00\x01""0C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I" },
	{ FE, 5, "X\x00\x00\x00\x04" },
};

/* pg_prepared: 11 chunks */
static const struct vec pg_prepared[] = {
	{ FE, 8, "\x00\x00\x00\x08\x04\xd2\x16/" },
	{ BE, 1, "N" },
	{ FE, 66, "\x00\x00\x00""B\x00\x03\x00\x00user\x00postgres\x00""database\x00postgres\x00""applicat"
	  "ion_name\x00pgbench\x00\x00" },
	{ BE, 417, "R\x00\x00\x00\x08\x00\x00\x00\x00S\x00\x00\x00\x1d""application_name\x00pgbench\x00S\x00"
	  "\x00\x00\x19""client_encoding\x00UTF8\x00S\x00\x00\x00\x17""DateStyle\x00ISO, MDY\x00"
	  "S\x00\x00\x00&default_transaction_read_only\x00off\x00S\x00\x00\x00\x17in_hot_standb"
	  "y\x00off\x00S\x00\x00\x00\x19integer_datetimes\x00on\x00S\x00\x00\x00\x1bIntervalSty"
	  "le\x00postgres\x00S\x00\x00\x00\x14is_superuser\x00on\x00S\x00\x00\x00\x19server_enc"
	  "oding\x00UTF8\x00S\x00\x00\x00""2server_version\x00""15.18 (Debian 15.18-0+deb12u1)\x00"
	  "S\x00\x00\x00#session_authorization\x00postgres\x00S\x00\x00\x00#standard_conforming"
	  "_strings\x00on\x00S\x00\x00\x00\x15TimeZone\x00""Etc/UTC\x00K\x00\x00\x00\x0c\x00\x00"
	  "\x1f\xa6\xfd. jZ\x00\x00\x00\x05I" },
	{ FE, 70, "P\x00\x00\x00@P_0\x00SELECT abalance FROM pgbench_accounts WHERE aid = $1;\x00\x00\x00S"
	  "\x00\x00\x00\x04" },
	{ BE, 11, "1\x00\x00\x00\x04Z\x00\x00\x00\x05I" },
	{ FE, 49, "B\x00\x00\x00\x1a\x00P_0\x00\x00\x00\x00\x01\x00\x00\x00\x05""30548\x00\x01\x00\x00""D\x00"
	  "\x00\x00\x06P\x00""E\x00\x00\x00\x09\x00\x00\x00\x00\x00S\x00\x00\x00\x04" },
	{ BE, 71, "2\x00\x00\x00\x04T\x00\x00\x00!\x00\x01""abalance\x00\x00\x00@\x0d\x00\x03\x00\x00\x00\x17"
	  "\x00\x04\xff\xff\xff\xff\x00\x00""D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x01""0C\x00\x00"
	  "\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I" },
	{ FE, 49, "B\x00\x00\x00\x1a\x00P_0\x00\x00\x00\x00\x01\x00\x00\x00\x05""51564\x00\x01\x00\x00""D\x00"
	  "\x00\x00\x06P\x00""E\x00\x00\x00\x09\x00\x00\x00\x00\x00S\x00\x00\x00\x04" },
	{ BE, 71, "2\x00\x00\x00\x04T\x00\x00\x00!\x00\x01""abalance\x00\x00\x00@\x0d\x00\x03\x00\x00\x00\x17"
	  "\x00\x04\xff\xff\xff\xff\x00\x00""D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x01""0C\x00\x00"
	  "\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I" },
	{ FE, 5, "X\x00\x00\x00\x04" },
};


#define NV(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------------ */

struct t {
	struct th_host *h;
	struct th_conn *c;
	enum sonde_role role;
	uint64_t ts;
};

static struct t setup_ex(enum sonde_role role, const char *key, const char *val, uint32_t flags,
                         uint32_t minor)
{
	struct t t;
	struct sonde_conn_info ci;

	memset(&t, 0, sizeof(t));
	t.h = th_new();
	if (key) {
		const char *v[] = { val };

		ck_assert_int_eq(th_set_config(t.h, NULL, key, v, 1), 0);
	}
	ck_assert_int_eq(th_load_minor(t.h, sonde_plugin_entry(), "postgresql", minor), SONDE_OK);
	th_conn_info_init(&ci, role);
	if (role == SONDE_ROLE_CLIENT) {
		ci.local_port = 51000;
		ci.peer_port = 5432;
		snprintf(ci.peer_addr, sizeof(ci.peer_addr), "10.0.0.7");
	} else {
		ci.local_port = 5432;
		snprintf(ci.local_addr, sizeof(ci.local_addr), "10.0.0.9");
	}
	ci.flags = flags;
	t.c = th_conn_open(t.h, &ci);
	ck_assert_ptr_nonnull(t.c);
	t.role = role;
	t.ts = 1000000;
	return t;
}

static struct t setup_cfg(enum sonde_role role, const char *key, const char *val)
{
	return setup_ex(role, key, val, 0, V11);
}

static struct t setup(enum sonde_role role)
{
	return setup_cfg(role, NULL, NULL);
}

static enum sonde_dir dir_of(const struct t *t, int side)
{
	int egress = (t->role == SONDE_ROLE_SERVER) == (side == BE);

	return egress ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
}

/* One chunk; ts moves on by 1000 ns per chunk. */
static void chunk(struct t *t, int side, const void *p, size_t n)
{
	t->ts += 1000;
	th_conn_feed(t->c, dir_of(t, side), t->ts, p, n);
}

/* A chunk of which only `cap` bytes were captured. */
static void chunk_cut(struct t *t, int side, const void *p, size_t n, size_t cap, uint32_t flags)
{
	struct sonde_chunk ch = { 0 };

	t->ts += 1000;
	ch.dir = dir_of(t, side);
	ch.ts_unix_ns = t->ts;
	ch.data = p;
	ch.len = n < cap ? n : cap;
	ch.orig_len = n;
	ch.flags = flags | (ch.len < n ? SONDE_CHUNK_TRUNCATED : 0);
	th_conn_feed_chunk(t->c, &ch);
}

/* Feed a recorded session. split_at: chunk `which` is cut in two at that
 * byte (0: not cut); step: every chunk is fed in pieces of step bytes. */
static void play(struct t *t, const struct vec *v, size_t n, size_t which, size_t split_at,
                 size_t step)
{
	for (size_t i = 0; i < n; i++) {
		const char *p = v[i].data;
		size_t len = v[i].len;

		if (i == which && split_at > 0 && split_at < len) {
			chunk(t, v[i].side, p, split_at);
			chunk(t, v[i].side, p + split_at, len - split_at);
			continue;
		}
		if (step) {
			for (size_t off = 0; off < len; off += step)
				chunk(t, v[i].side, p + off, len - off < step ? len - off : step);
			continue;
		}
		chunk(t, v[i].side, p, len);
	}
}

static struct sql_stats teardown(struct t *t)
{
	struct sql_stats st;

	th_conn_close(t->c, t->ts + 1000);
	st = *sql_debug_totals();
	ck_assert_uint_eq(th_n_open(t->h), 0);
	ck_assert_uint_eq(th_misuse(t->h), 0);
	th_free(t->h);
	return st;
}

static const char *str(const struct th_span *s, const char *k)
{
	const char *v = th_span_str(s, k);

	return v ? v : "";
}

static int64_t num(const struct th_span *s, const char *k)
{
	int64_t v;

	return th_span_int(s, k, &v) == 0 ? v : -1;
}

/* What a session produced, as one comparable string. */
static void summary(struct th_host *h, char *out, size_t cap)
{
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < th_n_ended(h) && off < cap; i++) {
		const struct th_span *s = th_ended(h, i);

		off += (size_t)snprintf(out + off, cap - off, "%s|%d|%s|%s|%s|%lld;", s->name, s->kind,
		                        str(s, "db.query.text"), str(s, "error.type"),
		                        str(s, "db.namespace"),
		                        (long long)num(s, "db.response.returned_rows"));
	}
}

/* ---- message builders --------------------------------------------------------- */

struct msgbuf {
	uint8_t b[8192];
	size_t n;
};

static void put_msg(struct msgbuf *m, char type, const void *body, size_t n)
{
	uint32_t len = (uint32_t)n + 4;

	m->b[m->n++] = (uint8_t)type;
	m->b[m->n++] = (uint8_t)(len >> 24);
	m->b[m->n++] = (uint8_t)(len >> 16);
	m->b[m->n++] = (uint8_t)(len >> 8);
	m->b[m->n++] = (uint8_t)len;
	if (n)
		memcpy(m->b + m->n, body, n);
	m->n += n;
}

/* body made of NUL-terminated strings, then raw bytes */
static void put_strs(struct msgbuf *m, char type, int nstr, ...)
{
	uint8_t body[4096];
	size_t n = 0;
	va_list ap;

	va_start(ap, nstr);
	for (int i = 0; i < nstr; i++) {
		const char *s = va_arg(ap, const char *);
		size_t l = strlen(s) + 1;

		memcpy(body + n, s, l);
		n += l;
	}
	va_end(ap);
	put_msg(m, type, body, n);
}

static void put_query(struct msgbuf *m, const char *q)
{
	put_strs(m, 'Q', 1, q);
}

static void put_parse(struct msgbuf *m, const char *name, const char *q)
{
	uint8_t body[4096];
	size_t a = strlen(name) + 1, b = strlen(q) + 1;

	memcpy(body, name, a);
	memcpy(body + a, q, b);
	body[a + b] = 0;
	body[a + b + 1] = 0; /* no parameter types */
	put_msg(m, 'P', body, a + b + 2);
}

/* Bind with one text parameter value. */
static void put_bind(struct msgbuf *m, const char *portal, const char *stmt, const char *param)
{
	uint8_t body[4096];
	size_t n = 0, pl = strlen(param);

	memcpy(body + n, portal, strlen(portal) + 1);
	n += strlen(portal) + 1;
	memcpy(body + n, stmt, strlen(stmt) + 1);
	n += strlen(stmt) + 1;
	memcpy(body + n, "\0\0\0\1\0\0\0", 7); /* 0 formats, 1 param, length */
	n += 7;
	body[n++] = (uint8_t)pl;
	memcpy(body + n, param, pl);
	n += pl;
	memcpy(body + n, "\0\0", 2); /* 0 result formats */
	n += 2;
	put_msg(m, 'B', body, n);
}

static void put_execute(struct msgbuf *m, const char *portal)
{
	uint8_t body[300];
	size_t l = strlen(portal) + 1;

	memcpy(body, portal, l);
	memset(body + l, 0, 4);
	put_msg(m, 'E', body, l + 4);
}

static void put_empty(struct msgbuf *m, char type)
{
	put_msg(m, type, NULL, 0);
}

static void put_ready(struct msgbuf *m)
{
	put_msg(m, 'Z', "I", 1);
}

static void put_error(struct msgbuf *m, const char *sqlstate, const char *text)
{
	uint8_t body[1024];
	size_t n = 0;

	n += (size_t)snprintf((char *)body + n, sizeof(body) - n, "SERROR") + 1;
	n += (size_t)snprintf((char *)body + n, sizeof(body) - n, "VERROR") + 1;
	n += (size_t)snprintf((char *)body + n, sizeof(body) - n, "C%s", sqlstate) + 1;
	n += (size_t)snprintf((char *)body + n, sizeof(body) - n, "M%s", text) + 1;
	body[n++] = 0;
	put_msg(m, 'E', body, n);
}

static void put_row(struct msgbuf *m, const char *val)
{
	uint8_t body[1024];
	size_t l = strlen(val);

	body[0] = 0;
	body[1] = 1;
	body[2] = body[3] = body[4] = 0;
	body[5] = (uint8_t)l;
	memcpy(body + 6, val, l);
	put_msg(m, 'D', body, 6 + l);
}

/* A startup exchange: StartupMessage, and AuthenticationOk...ReadyForQuery. */
static void startup(struct t *t, const char *db)
{
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	uint8_t body[256];
	size_t n = 0;

	memcpy(body, "\0\3\0\0", 4);
	n = 4;
	n += (size_t)snprintf((char *)body + n, sizeof(body) - n, "user") + 1;
	n += (size_t)snprintf((char *)body + n, sizeof(body) - n, "alice") + 1;
	if (db) {
		n += (size_t)snprintf((char *)body + n, sizeof(body) - n, "database") + 1;
		n += (size_t)snprintf((char *)body + n, sizeof(body) - n, "%s", db) + 1;
	}
	body[n++] = 0;
	fe.b[0] = 0;
	fe.b[1] = 0;
	fe.b[2] = (uint8_t)((n + 4) >> 8);
	fe.b[3] = (uint8_t)(n + 4);
	memcpy(fe.b + 4, body, n);
	fe.n = n + 4;
	chunk(t, FE, fe.b, fe.n);
	put_msg(&be, 'R', "\0\0\0\0", 4);
	put_strs(&be, 'S', 2, "standard_conforming_strings", "on");
	put_msg(&be, 'K', "\0\0\0\1\0\0\0\2", 8);
	put_ready(&be);
	chunk(t, BE, be.b, be.n);
}

/* ---- recorded sessions ----------------------------------------------------------- */

START_TEST(test_psql_session)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	const struct th_span *a, *b;
	struct sql_stats st;

	play(&t, pg_psql, NV(pg_psql), SIZE_MAX, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	a = th_ended(t.h, 0);
	b = th_ended(t.h, 1);
	ck_assert_str_eq(a->name, "SELECT users");
	ck_assert_int_eq(a->kind, SONDE_SPAN_CLIENT);
	ck_assert_str_eq(str(a, "db.system"), "postgresql");
	ck_assert_str_eq(str(a, "db.namespace"), "postgres");
	ck_assert_str_eq(str(a, "db.operation.name"), "SELECT");
	ck_assert_str_eq(str(a, "db.collection.name"), "users");
	ck_assert_str_eq(str(a, "db.query.text"), "SELECT name FROM users WHERE id = ?");
	ck_assert_str_eq(str(a, "server.address"), "10.0.0.7");
	ck_assert_int_eq(num(a, "server.port"), 5432);
	ck_assert_str_eq(str(a, "network.peer.address"), "10.0.0.7");
	ck_assert_int_eq(num(a, "db.response.returned_rows"), 1);
	ck_assert_ptr_null(th_span_attr(a, "error.type"));
	ck_assert_int_eq(a->status, SONDE_STATUS_UNSET);
	ck_assert_str_eq(b->name, "SELECT nosuch");
	ck_assert_str_eq(str(b, "error.type"), "42P01");
	ck_assert_str_eq(str(b, "db.response.status_code"), "42P01");
	ck_assert_int_eq(b->status, SONDE_STATUS_ERROR);
	/* the span ends with ReadyForQuery's chunk, not the ErrorResponse's:
	 * the error is the end of the statement */
	ck_assert_uint_lt(b->start_ns, b->end_ns);
	/* one metric point per client span, with the span's attributes */
	ck_assert_uint_eq(th_n_records(t.h), 2);
	ck_assert_str_eq(th_record_val(th_record(t.h, 1), "error.type"), "42P01");
	ck_assert_str_eq(th_record_val(th_record(t.h, 0), "db.collection.name"), "users");
	ck_assert_ptr_null(th_record_val(th_record(t.h, 0), "error.type"));
	st = teardown(&t);
	ck_assert_uint_eq(st.spans, 2);
	ck_assert_uint_eq(st.errors, 1);
	ck_assert_uint_eq(st.dropped, 0);
	ck_assert_uint_eq(st.unmatched, 0);
}
END_TEST

START_TEST(test_pgbench_extended)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct sql_stats st;

	play(&t, pg_extended, NV(pg_extended), SIZE_MAX, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	for (size_t i = 0; i < 2; i++) {
		const struct th_span *s = th_ended(t.h, i);

		ck_assert_str_eq(s->name, "SELECT pgbench_accounts");
		ck_assert_str_eq(str(s, "db.query.text"),
		                 "SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
		ck_assert_int_eq(num(s, "db.response.returned_rows"), 1);
	}
	st = teardown(&t);
	ck_assert_uint_eq(st.unmatched, 0);
	ck_assert_uint_eq(st.unknown_stmt, 0);
}
END_TEST

START_TEST(test_pgbench_prepared)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct sql_stats st;

	play(&t, pg_prepared, NV(pg_prepared), SIZE_MAX, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	for (size_t i = 0; i < 2; i++)
		ck_assert_str_eq(str(th_ended(t.h, i), "db.query.text"),
		                 "SELECT abalance FROM pgbench_accounts WHERE aid = $1;");
	st = teardown(&t);
	ck_assert_uint_eq(st.unknown_stmt, 0);
	ck_assert_uint_eq(st.unmatched, 0);
}
END_TEST

/* The same bytes seen from postgres itself: SERVER spans, the server's own
 * address, and no client metric. */
START_TEST(test_server_side)
{
	struct t t = setup(SONDE_ROLE_SERVER);

	play(&t, pg_psql, NV(pg_psql), SIZE_MAX, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_int_eq(th_ended(t.h, 0)->kind, SONDE_SPAN_SERVER);
	ck_assert_str_eq(str(th_ended(t.h, 0), "server.address"), "10.0.0.9");
	ck_assert_int_eq(num(th_ended(t.h, 0), "server.port"), 5432);
	ck_assert_uint_eq(th_n_records(t.h), 0);
	teardown(&t);
}
END_TEST

/* The core's role guess may be wrong (a forked backend that did not
 * accept the socket): the startup packet's direction decides. */
START_TEST(test_role_from_startup)
{
	struct t t = setup(SONDE_ROLE_CLIENT);

	t.role = SONDE_ROLE_SERVER; /* the bytes flow the other way */
	play(&t, pg_psql, NV(pg_psql), SIZE_MAX, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_int_eq(th_ended(t.h, 0)->kind, SONDE_SPAN_SERVER);
	teardown(&t);
}
END_TEST

static void reference(const struct vec *v, size_t n, char *out, size_t cap)
{
	struct t t = setup(SONDE_ROLE_CLIENT);

	play(&t, v, n, SIZE_MAX, 0, 0);
	summary(t.h, out, cap);
	teardown(&t);
}

/* Every chunk cut at every byte, and everything byte by byte, gives what
 * the whole chunks gave. */
START_TEST(test_every_split_point)
{
	static const struct {
		const struct vec *v;
		size_t n;
	} sessions[] = { { pg_psql, NV(pg_psql) },
		         { pg_extended, NV(pg_extended) },
		         { pg_prepared, NV(pg_prepared) } };
	char want[4096], got[4096];
	size_t runs = 0;

	for (size_t k = 0; k < NV(sessions); k++) {
		reference(sessions[k].v, sessions[k].n, want, sizeof(want));
		ck_assert_uint_gt(strlen(want), 10);
		for (size_t i = 0; i < sessions[k].n; i++) {
			for (size_t cut = 1; cut < sessions[k].v[i].len; cut++) {
				struct t t = setup(SONDE_ROLE_CLIENT);

				play(&t, sessions[k].v, sessions[k].n, i, cut, 0);
				summary(t.h, got, sizeof(got));
				ck_assert_msg(!strcmp(want, got), "session %zu chunk %zu cut %zu:\n%s\n%s",
				              k, i, cut, want, got);
				teardown(&t);
				runs++;
			}
		}
		{
			struct t t = setup(SONDE_ROLE_CLIENT);

			play(&t, sessions[k].v, sessions[k].n, SIZE_MAX, 0, 1);
			summary(t.h, got, sizeof(got));
			ck_assert_str_eq(want, got);
			teardown(&t);
		}
	}
	ck_assert_uint_gt(runs, 1000);
}
END_TEST

/* An ErrorResponse whose code field is five characters but not a SQLSTATE
 * (the fuzzer's find: the code was copied up to the bad character and left
 * unterminated): the span's error.type is _OTHER, with no status code. */
START_TEST(test_error_code_not_sqlstate)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	const struct th_span *s;

	startup(&t, "shop");
	put_query(&fe, "SELECT 1");
	chunk(&t, FE, fe.b, fe.n);
	put_error(&be, "42x01", "bad");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	s = th_ended(t.h, 0);
	ck_assert_str_eq(str(s, "error.type"), "_OTHER");
	ck_assert_ptr_null(th_span_attr(s, "db.response.status_code"));
	teardown(&t);
}
END_TEST

/* ---- the extended protocol --------------------------------------------------------- */

/* Three cycles pipelined in one write, answered in one write: each Execute
 * gets the text of its own statement; the second one's Parse fails, so its
 * Execute carries the error and its Bind is never answered. */
START_TEST(test_pipelined_extended)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	const struct th_span *s;
	struct sql_stats st;

	startup(&t, "shop");
	put_parse(&fe, "s1", "SELECT * FROM orders WHERE id = $1");
	put_bind(&fe, "", "s1", "41");
	put_strs(&fe, 'D', 1, "P");
	put_execute(&fe, "");
	put_empty(&fe, 'S');
	put_parse(&fe, "", "SELEC broken $1");
	put_bind(&fe, "", "", "42");
	put_execute(&fe, "");
	put_empty(&fe, 'S');
	put_bind(&fe, "p2", "s1", "43");
	put_execute(&fe, "p2");
	put_strs(&fe, 'C', 1, "Pp2");
	put_empty(&fe, 'S');
	chunk(&t, FE, fe.b, fe.n);

	put_empty(&be, '1');
	put_empty(&be, '2');
	put_empty(&be, 'n');
	put_strs(&be, 'C', 1, "SELECT 0");
	put_ready(&be);
	put_error(&be, "42601", "syntax error at or near \"SELEC\"");
	put_ready(&be);
	put_empty(&be, '2');
	put_row(&be, "x");
	put_strs(&be, 'C', 1, "SELECT 1");
	put_empty(&be, '3');
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);

	ck_assert_uint_eq(th_n_ended(t.h), 3);
	s = th_ended(t.h, 0);
	ck_assert_str_eq(s->name, "SELECT orders");
	ck_assert_str_eq(str(s, "db.query.text"), "SELECT * FROM orders WHERE id = $1");
	ck_assert_int_eq(num(s, "db.response.returned_rows"), 0);
	s = th_ended(t.h, 1);
	ck_assert_str_eq(str(s, "error.type"), "42601");
	ck_assert_str_eq(str(s, "db.query.text"), "SELEC broken $1");
	ck_assert_str_eq(s->name, "shop"); /* no operation known: the namespace */
	s = th_ended(t.h, 2);
	ck_assert_str_eq(s->name, "SELECT orders");
	ck_assert_int_eq(num(s, "db.response.returned_rows"), 1);
	ck_assert_str_eq(str(s, "db.namespace"), "shop");
	st = teardown(&t);
	ck_assert_uint_eq(st.unmatched, 0);
	ck_assert_uint_eq(st.dropped, 0);
}
END_TEST

/* A statement prepared 1000 times... executed 1000 times: 1000 spans named
 * from its prepared text. */
START_TEST(test_prepared_1000)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	size_t n_named = 0;

	startup(&t, "bench");
	put_parse(&fe, "P_0", "UPDATE accounts SET balance = balance + $1 WHERE id = $2");
	put_empty(&fe, 'S');
	chunk(&t, FE, fe.b, fe.n);
	put_empty(&be, '1');
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	for (int i = 0; i < 1000; i++) {
		char v[16];

		fe.n = be.n = 0;
		snprintf(v, sizeof(v), "%d", i);
		put_bind(&fe, "", "P_0", v);
		put_execute(&fe, "");
		put_empty(&fe, 'S');
		chunk(&t, FE, fe.b, fe.n);
		put_empty(&be, '2');
		put_strs(&be, 'C', 1, "UPDATE 1");
		put_ready(&be);
		chunk(&t, BE, be.b, be.n);
	}
	ck_assert_uint_eq(th_n_ended(t.h), 1000);
	for (size_t i = 0; i < 1000; i++) {
		const struct th_span *s = th_ended(t.h, i);

		n_named += !strcmp(s->name, "UPDATE accounts") && num(s, "sonde.db.rows_affected") == 1;
	}
	ck_assert_uint_eq(n_named, 1000);
	ck_assert_uint_eq(th_n_records(t.h), 1000);
	teardown(&t);
}
END_TEST

/* PQprepare of a bad statement: no Execute in the cycle, but the error is
 * not lost. */
START_TEST(test_parse_error_alone)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };

	startup(&t, "db");
	put_parse(&fe, "bad", "SELECT nope FROM t WHERE a = 'v'");
	put_empty(&fe, 'S');
	chunk(&t, FE, fe.b, fe.n);
	put_error(&be, "42703", "column \"nope\" does not exist");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "SELECT t");
	ck_assert_str_eq(str(th_ended(t.h, 0), "error.type"), "42703");
	teardown(&t);
}
END_TEST

/* A host that refuses spans at the start (its per-connection limit): the
 * spans are started late, at their end, with the original start time. */
START_TEST(test_span_limit)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	struct sql_stats st;

	th_set_span_limit(t.h, 1);
	startup(&t, "db");
	put_parse(&fe, "", "SELECT 1");
	for (int i = 0; i < 3; i++) {
		put_bind(&fe, "", "", "1");
		put_execute(&fe, "");
	}
	put_empty(&fe, 'S');
	chunk(&t, FE, fe.b, fe.n);
	put_empty(&be, '1');
	for (int i = 0; i < 3; i++) {
		put_empty(&be, '2');
		put_strs(&be, 'C', 1, "SELECT 1");
	}
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 3);
	ck_assert_uint_eq(th_ended(t.h, 2)->start_ns, th_ended(t.h, 0)->start_ns);
	st = teardown(&t);
	ck_assert_uint_eq(st.span_limit, 2);
	ck_assert_uint_eq(st.late_spans, 2);
}
END_TEST

/* ---- the simple protocol ------------------------------------------------------------------ */

START_TEST(test_multi_statement)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	const char *names[] = { "BEGIN", "SELECT", "UPDATE users", "COMMIT" };
	uint64_t prev_end = 0;

	startup(&t, "db");
	put_query(&fe, "BEGIN; SELECT 1; UPDATE users SET name = 'TOPSECRET' WHERE id = 2; COMMIT");
	chunk(&t, FE, fe.b, fe.n);
	put_strs(&be, 'C', 1, "BEGIN");
	chunk(&t, BE, be.b, be.n);
	be.n = 0;
	put_row(&be, "1");
	put_strs(&be, 'C', 1, "SELECT 1");
	chunk(&t, BE, be.b, be.n);
	be.n = 0;
	put_strs(&be, 'C', 1, "UPDATE 1");
	put_strs(&be, 'C', 1, "COMMIT");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 4);
	for (size_t i = 0; i < 4; i++) {
		const struct th_span *s = th_ended(t.h, i);

		ck_assert_str_eq(s->name, names[i]);
		ck_assert(strstr(str(s, "db.query.text"), "TOPSECRET") == NULL);
		/* each statement starts where the one before it ended */
		if (i > 0)
			ck_assert_uint_eq(s->start_ns, prev_end);
		prev_end = s->end_ns;
	}
	ck_assert_str_eq(str(th_ended(t.h, 2), "db.query.text"),
	                 "UPDATE users SET name = ? WHERE id = ?");
	ck_assert_int_eq(num(th_ended(t.h, 2), "sonde.db.rows_affected"), 1);
	teardown(&t);
}
END_TEST

/* An error in the middle of a query string: the rest is not run. */
START_TEST(test_multi_statement_error)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	struct sql_stats st;

	startup(&t, "db");
	put_query(&fe, "INSERT INTO a VALUES (1); INSERT INTO b VALUES (2); SELECT 3");
	chunk(&t, FE, fe.b, fe.n);
	put_strs(&be, 'C', 1, "INSERT 0 1");
	put_error(&be, "23505", "duplicate key value violates unique constraint");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "INSERT a");
	ck_assert_str_eq(th_ended(t.h, 1)->name, "INSERT b");
	ck_assert_str_eq(str(th_ended(t.h, 1), "error.type"), "23505");
	st = teardown(&t);
	ck_assert_uint_eq(st.not_run, 1);
}
END_TEST

/* A string that cannot be split (a function body) is one span, ending at
 * ReadyForQuery; an empty query string is no span at all. */
START_TEST(test_unsplit_and_empty)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };

	startup(&t, "db");
	put_query(&fe, "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END");
	put_query(&fe, "  -- nothing\n");
	chunk(&t, FE, fe.b, fe.n);
	put_strs(&be, 'C', 1, "CREATE FUNCTION");
	put_ready(&be);
	put_empty(&be, 'I');
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "CREATE");
	teardown(&t);
}
END_TEST

/* A WITH whose main verb lies beyond the copied text: the verb comes from
 * the command tag. */
START_TEST(test_with_from_tag)
{
	struct t t = setup_cfg(SONDE_ROLE_CLIENT, "max_query_bytes", "256");
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	char q[1024];
	int n = snprintf(q, sizeof(q), "WITH x AS (SELECT ");

	while (n < 600)
		n += snprintf(q + n, sizeof(q) - (size_t)n, "a, ");
	snprintf(q + n, sizeof(q) - (size_t)n, "b FROM t) DELETE FROM u WHERE id IN (SELECT a FROM x)");
	startup(&t, "db");
	put_query(&fe, q);
	chunk(&t, FE, fe.b, fe.n);
	put_strs(&be, 'C', 1, "DELETE 7");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "DELETE");
	ck_assert_str_eq(str(th_ended(t.h, 0), "db.operation.name"), "DELETE");
	ck_assert_int_eq(num(th_ended(t.h, 0), "sonde.db.rows_affected"), 7);
	ck_assert_uint_le(strlen(str(th_ended(t.h, 0), "db.query.text")), 256);
	teardown(&t);
}
END_TEST

/* standard_conforming_strings=off: a backslash escapes a quote. */
START_TEST(test_backslash_mode)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };

	startup(&t, "db");
	put_strs(&be, 'S', 2, "standard_conforming_strings", "off");
	chunk(&t, BE, be.b, be.n);
	put_query(&fe, "SELECT 'a\\' , TOPSECRET' FROM t");
	chunk(&t, FE, fe.b, fe.n);
	be.n = 0;
	put_strs(&be, 'C', 1, "SELECT 0");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_str_eq(str(th_ended(t.h, 0), "db.query.text"), "SELECT ? FROM t");
	teardown(&t);
}
END_TEST

/* ---- COPY ------------------------------------------------------------------------------------ */

START_TEST(test_copy_in_truncated)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	static uint8_t data[20000];
	size_t n = 0;
	struct sql_stats st;

	startup(&t, "db");
	put_query(&fe, "COPY items (id, name) FROM STDIN");
	chunk(&t, FE, fe.b, fe.n);
	put_msg(&be, 'G', "\0\0\2\0\0\0\0", 7);
	chunk(&t, BE, be.b, be.n);
	/* 1000 CopyData messages in one write, of which 4096 bytes captured */
	for (int i = 0; i < 1000; i++) {
		char row[32];
		int l = snprintf(row, sizeof(row), "%d\tsecret%d\n", i, i);
		uint32_t len = (uint32_t)l + 4;

		data[n++] = 'd';
		data[n++] = 0;
		data[n++] = 0;
		data[n++] = (uint8_t)(len >> 8);
		data[n++] = (uint8_t)len;
		memcpy(data + n, row, (size_t)l);
		n += (size_t)l;
	}
	chunk_cut(&t, FE, data, n, 4096, 0);
	fe.n = 0;
	put_empty(&fe, 'c');
	chunk(&t, FE, fe.b, fe.n);
	be.n = 0;
	put_strs(&be, 'C', 1, "COPY 1000");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "COPY items");
	ck_assert_int_eq(num(th_ended(t.h, 0), "sonde.db.rows_affected"), 1000);
	st = teardown(&t);
	ck_assert_uint_eq(st.dropped, 0);
}
END_TEST

/* ---- lost bytes ---------------------------------------------------------------------------------- */

/* A big result: rows skipped by count while only bodies are cut; a cut
 * through headers loses the place, and the chunk ending in ReadyForQuery
 * finishes the statement from its tail (CommandComplete gives the rows). */
static void big_result(struct t *t, int last_cut)
{
	static struct msgbuf be;
	struct msgbuf fe = { .n = 0 };
	char big[3000];

	startup(t, "db");
	put_query(&fe, "SELECT * FROM big");
	chunk(t, FE, fe.b, fe.n);
	be.n = 0;
	put_msg(&be, 'T', "\0\1x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put_row(&be, "1");
	chunk_cut(t, BE, be.b, be.n, 4096, 0);
	/* one DataRow bigger than the capture: skipped by count */
	be.n = 0;
	{
		uint8_t body[2100];

		memset(body, 'v', sizeof(body));
		body[0] = 0;
		body[1] = 1;
		put_msg(&be, 'D', body, sizeof(body));
	}
	chunk_cut(t, BE, be.b, be.n, 100, 0);
	/* many rows in a write cut at 64 bytes: the place is lost */
	be.n = 0;
	for (int i = 0; i < 100; i++)
		put_row(&be, "row-value-0123456789");
	chunk_cut(t, BE, be.b, be.n, 64, 0);
	/* the last write: rows, CommandComplete, ReadyForQuery */
	be.n = 0;
	for (int i = 0; i < 5; i++)
		put_row(&be, "row-value-0123456789");
	put_strs(&be, 'C', 1, "SELECT 107");
	put_ready(&be);
	chunk_cut(t, BE, be.b + 7, be.n - 7, last_cut ? 40 : 4096, 0);
}

START_TEST(test_dark_tail)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct sql_stats st;

	big_result(&t, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_int_eq(num(th_ended(t.h, 0), "db.response.returned_rows"), 107);
	ck_assert_uint_eq(th_ended(t.h, 0)->end_ns, t.ts);
	st = teardown(&t);
	ck_assert_uint_eq(st.sync_lost, 1);
	ck_assert_uint_eq(st.dark_done, 1);
}
END_TEST

/* The last write is cut too: the statement ended before the client's next
 * request, at the last backend bytes seen; the next one is followed. */
START_TEST(test_dark_next_request)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	uint64_t last_be;
	struct sql_stats st;

	big_result(&t, 1);
	last_be = t.ts;
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	put_query(&fe, "SELECT 1");
	chunk(&t, FE, fe.b, fe.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_uint_eq(th_ended(t.h, 0)->end_ns, last_be);
	ck_assert_ptr_null(th_span_attr(th_ended(t.h, 0), "db.response.returned_rows"));
	put_row(&be, "1");
	put_strs(&be, 'C', 1, "SELECT 1");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	st = teardown(&t);
	ck_assert_uint_eq(st.ended_unseen, 1);
	ck_assert_uint_eq(st.resyncs, 1);
}
END_TEST

/* Frontend bytes lost: what was pending cannot be matched any more. */
START_TEST(test_gap_frontend)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	struct sql_stats st;

	startup(&t, "db");
	put_query(&fe, "SELECT 1");
	chunk(&t, FE, fe.b, fe.n);
	chunk_cut(&t, FE, fe.b, fe.n, fe.n, SONDE_CHUNK_GAP);
	put_strs(&be, 'C', 1, "SELECT 1");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1); /* the one after the gap */
	st = teardown(&t);
	ck_assert_uint_eq(st.dropped, 1);
	ck_assert_uint_eq(st.sync_lost, 1);
}
END_TEST

/* ---- picked up mid-stream -------------------------------------------------------------------------- */

START_TEST(test_midstream)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	struct sql_stats st;

	/* an answer to something we never saw: ignored */
	put_strs(&be, 'C', 1, "SELECT 1");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	/* a statement prepared before we joined */
	put_bind(&fe, "", "S_1", "5");
	put_execute(&fe, "");
	put_empty(&fe, 'S');
	chunk(&t, FE, fe.b, fe.n);
	be.n = 0;
	put_empty(&be, '2');
	put_strs(&be, 'C', 1, "UPDATE 3");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	fe.n = be.n = 0;
	put_query(&fe, "SELECT 2");
	chunk(&t, FE, fe.b, fe.n);
	put_strs(&be, 'C', 1, "SELECT 1");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	/* no text, no operation: the span is named after the system */
	ck_assert_str_eq(th_ended(t.h, 0)->name, "postgresql");
	ck_assert_ptr_null(th_span_attr(th_ended(t.h, 0), "db.query.text"));
	ck_assert_ptr_null(th_span_attr(th_ended(t.h, 0), "db.namespace"));
	ck_assert_int_eq(num(th_ended(t.h, 0), "sonde.db.rows_affected"), 3);
	ck_assert_str_eq(th_ended(t.h, 1)->name, "SELECT");
	st = teardown(&t);
	ck_assert_uint_eq(st.unknown_stmt, 1);
}
END_TEST

/* A forked server process picked up mid-stream: the core guessed CLIENT
 * (it does not listen), the bytes say it reads frontend messages. A 1.1
 * core says so (SONDE_CONN_MIDSTREAM | SONDE_CONN_ROLE_INFERRED); a 1.0
 * core cannot, and the bytes decide too (see v11_role_seen_is_kept). */
START_TEST(test_midstream_role_from_bytes)
{
	struct t t = setup_ex(SONDE_ROLE_CLIENT, NULL, NULL,
	                      _i ? 0 : SONDE_CONN_MIDSTREAM | SONDE_CONN_ROLE_INFERRED,
	                      _i ? V10 : V11);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };

	t.role = SONDE_ROLE_SERVER;
	put_bind(&fe, "", "S_1", "5");
	put_execute(&fe, "");
	put_empty(&fe, 'S');
	chunk(&t, FE, fe.b, fe.n);
	put_empty(&be, '2');
	put_row(&be, "1");
	put_strs(&be, 'C', 1, "SELECT 1");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_int_eq(th_ended(t.h, 0)->kind, SONDE_SPAN_SERVER);
	ck_assert_str_eq(str(th_ended(t.h, 0), "server.address"), "127.0.0.1");
	teardown(&t);
}
END_TEST

/* A Unix domain socket (once the core captures them): no ports, the
 * socket path as the address, network.transport=unix. */
START_TEST(test_unix_socket)
{
	struct th_host *h = th_new();
	struct sonde_conn_info ci;
	struct th_conn *c;
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	const struct th_span *s;

	ck_assert_int_eq(th_load(h, sonde_plugin_entry(), "postgresql"), SONDE_OK);
	th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
	ci.family = 1; /* AF_UNIX */
	ci.local_port = ci.peer_port = 0;
	ci.local_addr[0] = '\0';
	snprintf(ci.peer_addr, sizeof(ci.peer_addr), "/run/postgresql/.s.PGSQL.5432");
	c = th_conn_open(h, &ci);
	put_query(&fe, "SELECT 1");
	th_conn_feed(c, SONDE_DIR_EGRESS, 1000, fe.b, fe.n);
	put_strs(&be, 'C', 1, "SELECT 1");
	put_ready(&be);
	th_conn_feed(c, SONDE_DIR_INGRESS, 2000, be.b, be.n);
	th_conn_close(c, 3000);
	ck_assert_uint_eq(th_n_ended(h), 1);
	s = th_ended(h, 0);
	ck_assert_str_eq(str(s, "network.transport"), "unix");
	ck_assert_str_eq(str(s, "server.address"), "/run/postgresql/.s.PGSQL.5432");
	ck_assert_str_eq(str(s, "network.peer.address"), "/run/postgresql/.s.PGSQL.5432");
	ck_assert_ptr_null(th_span_attr(s, "server.port"));
	ck_assert_ptr_null(th_span_attr(s, "network.peer.port"));
	ck_assert_uint_eq(th_n_open(h), 0);
	th_free(h);
}
END_TEST

/* ---- TLS and the other start-up requests ------------------------------------------------------------- */

START_TEST(test_tls)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	static const uint8_t ssl_req[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5 };
	struct sql_stats st;

	chunk(&t, FE, ssl_req, sizeof(ssl_req));
	chunk(&t, BE, "S", 1);
	chunk(&t, FE, hello, sizeof(hello)); /* ciphertext: ignored */
	chunk(&t, BE, hello, sizeof(hello));
	/* from here on the core hands the TLS library's plaintext */
	th_conn_set_tls(t.c);
	startup(&t, "secure");
	put_query(&fe, "SELECT 1");
	chunk(&t, FE, fe.b, fe.n);
	put_strs(&be, 'C', 1, "SELECT 1");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(str(th_ended(t.h, 0), "db.namespace"), "secure");
	st = teardown(&t);
	ck_assert_uint_eq(st.tls, 1);
	ck_assert_uint_eq(st.sync_lost, 0);
}
END_TEST

/* The TLS hooks came after the start-up (a client that connected the
 * moment it started): the plaintext is picked up mid-stream. */
START_TEST(test_tls_late)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	static const uint8_t ssl_req[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };

	chunk(&t, FE, ssl_req, sizeof(ssl_req));
	chunk(&t, BE, "S", 1);
	th_conn_set_tls(t.c);
	put_query(&fe, "SELECT 1 FROM t");
	chunk(&t, FE, fe.b, fe.n);
	put_strs(&be, 'C', 1, "SELECT 1");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "SELECT t");
	teardown(&t);
}
END_TEST

START_TEST(test_gss_encryption_given_up)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	static const uint8_t gss_req[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30 };

	chunk(&t, FE, gss_req, sizeof(gss_req));
	chunk(&t, BE, "G", 1);
	ck_assert_int_eq(th_conn_given_up(t.c), 1);
	teardown(&t);
}
END_TEST

START_TEST(test_cancel_request)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	static const uint8_t cancel[] = { 0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1, 0, 0, 0, 2 };
	struct sql_stats st;

	chunk(&t, FE, cancel, sizeof(cancel));
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	st = teardown(&t);
	ck_assert_uint_eq(st.cancels, 1);
}
END_TEST

START_TEST(test_auth_failure)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf be = { .n = 0 };
	struct sql_stats st;

	startup(&t, "db"); /* its answer says ok; a second start-up fails */
	th_conn_close(t.c, t.ts);
	{
		struct sonde_conn_info ci;

		th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
		t.c = th_conn_open(t.h, &ci);
	}
	{
		static const uint8_t su[] = "\0\0\0\x12\0\3\0\0user\0bob\0\0";

		chunk(&t, FE, su, 0x12);
	}
	put_error(&be, "28P01", "password authentication failed for user \"bob\"");
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	st = teardown(&t);
	ck_assert_uint_eq(st.auth_failed, 1);
}
END_TEST

/* ---- privacy and garbage ---------------------------------------------------------------------------------- */

static int attr_has(const struct th_span *s, const char *needle)
{
	if (strstr(s->name, needle) || (s->status_desc && strstr(s->status_desc, needle)))
		return 1;
	for (size_t i = 0; i < s->n_attrs; i++)
		if (s->attrs[i].type == TH_ATTR_STR && strstr(s->attrs[i].s, needle))
			return 1;
	return 0;
}

START_TEST(test_nothing_of_a_value_leaves)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };

	startup(&t, "db");
	put_query(&fe, "SELECT * FROM users WHERE pw = 'TOPSECRET1' AND n = 4242424242");
	put_parse(&fe, "", "SELECT * FROM users WHERE pw = $1");
	put_bind(&fe, "", "", "TOPSECRET2");
	put_execute(&fe, "");
	put_empty(&fe, 'S');
	chunk(&t, FE, fe.b, fe.n);
	put_error(&be, "22P02", "invalid input syntax: \"TOPSECRET1\" 4242424242");
	put_ready(&be);
	put_empty(&be, '1');
	put_empty(&be, '2');
	put_row(&be, "TOPSECRET3");
	put_strs(&be, 'C', 1, "SELECT 1");
	put_ready(&be);
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	for (size_t i = 0; i < th_n_spans(t.h); i++) {
		ck_assert(!attr_has(th_span(t.h, i), "TOPSECRET"));
		ck_assert(!attr_has(th_span(t.h, i), "4242"));
		ck_assert(!attr_has(th_span(t.h, i), "alice")); /* the user name */
	}
	for (size_t i = 0; i < th_n_records(t.h); i++)
		for (size_t k = 0; k < th_record(t.h, i)->m->n_keys; k++) {
			const char *v = th_record(t.h, i)->vals[k];

			ck_assert(!v || !strstr(v, "TOPSECRET"));
		}
	teardown(&t);
}
END_TEST

START_TEST(test_garbage)
{
	unsigned seed = 7;

	for (int round = 0; round < 300; round++) {
		struct t t = setup(round % 2 ? SONDE_ROLE_CLIENT : SONDE_ROLE_SERVER);
		uint8_t buf[512];

		if (round % 3 == 0)
			startup(&t, "db");
		for (int k = 0; k < 40 && !th_conn_given_up(t.c); k++) {
			size_t n = 1 + (seed = seed * 1103515245u + 12345u) % sizeof(buf);

			for (size_t i = 0; i < n; i++) {
				seed = seed * 1103515245u + 12345u;
				buf[i] = (uint8_t)(seed >> 16);
				/* now and then something that looks like a header */
				if ((seed >> 8) % 17 == 0 && i + 5 < n) {
					buf[i] = "QPBESDCZTt123IsnEG"[(seed >> 20) % 18];
					buf[i + 1] = buf[i + 2] = 0;
					buf[i + 3] = 0;
					buf[i + 4] = (uint8_t)(4 + (seed >> 24) % 40);
					i += 4;
				}
			}
			chunk_cut(&t, (seed >> 4) & 1, buf, n + ((seed >> 9) % 3 == 0 ? 300 : 0), n,
			          (seed >> 11) % 13 == 0 ? SONDE_CHUNK_GAP : 0);
		}
		teardown(&t);
	}
}
END_TEST

/* ---- detection ---------------------------------------------------------------------------------------------- */

START_TEST(test_detect)
{
	struct th_host *h = th_new();
	struct sonde_conn_info ci;
	struct msgbuf m = { .n = 0 };

	ck_assert_int_eq(th_load(h, sonde_plugin_entry(), "postgresql"), SONDE_OK);
	th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_EGRESS, pg_psql[0].data, 8),
	                 SONDE_DETECT_SURE);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_EGRESS, pg_psql[2].data, 63),
	                 SONDE_DETECT_SURE);
	/* a startup packet in the "wrong" direction still says PostgreSQL */
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS, pg_psql[2].data, 63),
	                 SONDE_DETECT_SURE);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_EGRESS, pg_psql[2].data, 3),
	                 SONDE_DETECT_NEED_MORE);
	put_query(&m, "SELECT 1");
	ck_assert_int_gt(th_detect(h, &ci, SONDE_DIR_EGRESS, m.b, m.n), 50);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_EGRESS, "GET / HTTP/1.1\r\n\r\n", 18),
	                 SONDE_DETECT_NO);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_EGRESS, "*1\r\n$4\r\nPING\r\n", 14),
	                 SONDE_DETECT_NO);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_EGRESS, "POST /x HTTP/1.1\r\n", 18),
	                 SONDE_DETECT_NO);
	/* frontend messages where the role says answers (a forked server) */
	m.n = 0;
	put_bind(&m, "", "S_1", "5");
	put_execute(&m, "");
	put_empty(&m, 'S');
	ck_assert_int_gt(th_detect(h, &ci, SONDE_DIR_INGRESS, m.b, m.n), 50);
	/* a MySQL greeting */
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS,
	                                  "d\0\0\0\x0a""5.5.5-10.11.6-MariaDB\0", 27),
	                 SONDE_DETECT_NO);
	/* an answer seen first: wait for a request */
	m.n = 0;
	put_strs(&m, 'C', 1, "SELECT 1");
	put_ready(&m);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS, m.b, m.n),
	                 SONDE_DETECT_NEED_MORE);
	th_free(h);
}
END_TEST

/* ---- SDK 1.1 ---------------------------------------------------------------------------------- */

/* A 1.1 host that saw the connection connected (no MIDSTREAM, no
 * ROLE_INFERRED): its role is kept, whatever a first chunk looks like. */
START_TEST(v11_role_seen_is_kept)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 };
	struct sql_stats st;

	/* frontend messages read by a process the host saw connect */
	t.role = SONDE_ROLE_SERVER;
	put_query(&fe, "SELECT 1");
	chunk(&t, FE, fe.b, fe.n);
	chunk(&t, FE, fe.b, fe.n);
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	st = teardown(&t);
	ck_assert_uint_eq(st.ops, 0); /* read as answers, never as queries */
}
END_TEST

/* The server side asks for a 16 KiB capture; the client side keeps the
 * agent's; a 1.0 host is asked nothing. A forked server picked up
 * mid-stream asks once the bytes said it is the server. */
START_TEST(v11_capture_cap_server_side)
{
	struct sonde_capture_policy p;

	for (int v10 = 0; v10 <= 1; v10++) {
		uint32_t d = v10 ? V10 : V11;
		struct t srv = setup_ex(SONDE_ROLE_SERVER, NULL, NULL, 0, d);

		ck_assert_int_eq(th_conn_capture(srv.c, &p), !v10);
		if (!v10)
			ck_assert_uint_eq(p.cap, 16384);
		teardown(&srv);
		struct t cli = setup_ex(SONDE_ROLE_CLIENT, NULL, NULL, 0, d);
		ck_assert_int_eq(th_conn_capture(cli.c, &p), 0);
		teardown(&cli);
	}
	{
		struct t t = setup_ex(SONDE_ROLE_CLIENT, NULL, NULL,
		                      SONDE_CONN_MIDSTREAM | SONDE_CONN_ROLE_INFERRED, V11);
		struct msgbuf fe = { .n = 0 };

		ck_assert_int_eq(th_conn_capture(t.c, &p), 0);
		t.role = SONDE_ROLE_SERVER;
		put_query(&fe, "SELECT 1");
		chunk(&t, FE, fe.b, fe.n);
		ck_assert_int_eq(th_conn_capture(t.c, &p), 1);
		ck_assert_uint_eq(p.cap, 16384);
		teardown(&t);
	}
}
END_TEST

/* One read chunk of the test (no payload when skipped). */
static void read_at(struct t *t, uint64_t pos, const void *p, size_t len, size_t orig, int tls)
{
	struct sonde_chunk ch = { 0 };

	ch.dir = SONDE_DIR_INGRESS;
	ch.ts_unix_ns = t->ts += 1000;
	ch.data = p;
	ch.len = len;
	ch.orig_len = orig;
	ch.pos = pos;
	ch.source = tls ? SONDE_SRC_TLS : SONDE_SRC_SOCKET;
	if (!p)
		ch.flags = SONDE_CHUNK_SKIPPED | SONDE_CHUNK_TRUNCATED;
	th_conn_feed_chunk(t->c, &ch);
}

/* A DataRow of 100,000 bytes read in pieces: after the first piece no
 * payload is needed up to the end of the row (skip_to on the read
 * direction, in stream positions); the pieces the kernel then skips
 * (SKIPPED, no payload) are walked by count and the statement ends with
 * its exact row count. Chunks from a TLS library set nothing (their
 * positions are not the socket's). */
START_TEST(v11_skip_big_datarow)
{
	static struct {
		uint8_t b[20000];
		size_t n;
	} be;
	const uint32_t body = 100000;
	const uint64_t pos = 1000;
	const size_t first = 8000;

	for (int tls = 0; tls <= 1; tls++) {
		struct t t = setup(SONDE_ROLE_CLIENT);
		struct msgbuf fe = { .n = 0 };
		struct sonde_capture_policy p;
		uint64_t off, end;

		startup(&t, "db");
		put_query(&fe, "SELECT img FROM pics");
		chunk(&t, FE, fe.b, fe.n);
		be.n = 0;
		{
			struct msgbuf m = { .n = 0 };

			put_msg(&m, 'T', "\0\1x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
			memcpy(be.b, m.b, m.n);
			be.n = m.n;
		}
		be.b[be.n++] = 'D';
		be.b[be.n++] = (uint8_t)((body + 4) >> 24);
		be.b[be.n++] = (uint8_t)((body + 4) >> 16);
		be.b[be.n++] = (uint8_t)((body + 4) >> 8);
		be.b[be.n++] = (uint8_t)(body + 4);
		end = pos + be.n + body;
		memset(be.b + be.n, 'v', first);
		read_at(&t, pos, be.b, be.n + first, be.n + first, tls);
		off = be.n + first;
		if (tls) {
			ck_assert_int_eq(th_conn_capture(t.c, &p), 0);
		} else {
			ck_assert_int_eq(th_conn_capture(t.c, &p), 1);
			ck_assert_uint_eq(p.skip_to[SONDE_DIR_INGRESS], end);
			ck_assert_uint_eq(p.skip_to[SONDE_DIR_EGRESS], 0);
			ck_assert_uint_eq(p.cap, 0);
		}
		/* two reads the kernel skipped, then the rest with the tail */
		for (int i = 0; i < 2; i++, off += 40000)
			read_at(&t, pos + off, NULL, 0, 40000, tls);
		be.n = (size_t)(end - pos - off);
		memset(be.b, 'v', be.n);
		{
			struct msgbuf m = { .n = 0 };

			put_strs(&m, 'C', 1, "SELECT 1");
			put_ready(&m);
			memcpy(be.b + be.n, m.b, m.n);
			be.n += m.n;
		}
		read_at(&t, pos + off, be.b, be.n, be.n, tls);
		ck_assert_uint_eq(th_n_ended(t.h), 1);
		ck_assert_int_eq(num(th_ended(t.h, 0), "db.response.returned_rows"), 1);
		ck_assert_uint_eq(sql_debug_totals()->sync_lost, 0);
		/* nothing more to skip: nothing asked again */
		ck_assert_int_eq(th_conn_capture(t.c, &p), 0);
		teardown(&t);
	}
}
END_TEST

/* GSS encryption: the kernel is asked to mute the connection; the test
 * host has no kernel (SONDE_ERR_UNSUPPORTED), so the connection is also
 * given up the 1.0 way. A 1.0 host is asked nothing. */
START_TEST(v11_gss_muted)
{
	static const uint8_t gss_req[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30 };

	for (int v10 = 0; v10 <= 1; v10++) {
		struct t t = setup_ex(SONDE_ROLE_CLIENT, NULL, NULL, 0,
		                      v10 ? V10 : V11);
		struct sonde_capture_policy p;

		chunk(&t, FE, gss_req, sizeof(gss_req));
		chunk(&t, BE, "G", 1);
		ck_assert_int_eq(th_conn_given_up(t.c), 1);
		ck_assert_int_eq(th_conn_capture(t.c, &p), !v10);
		if (!v10)
			ck_assert_uint_eq(p.flags & SONDE_CAPTURE_MUTE, SONDE_CAPTURE_MUTE);
		teardown(&t);
	}
}
END_TEST

/* TLS plaintext told by the chunk's source, without conn_info.tls. */
START_TEST(v11_tls_from_chunk_source)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };
	static const uint8_t ssl_req[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5 };
	struct sonde_chunk ch = { 0 };

	chunk(&t, FE, ssl_req, sizeof(ssl_req));
	chunk(&t, BE, "S", 1);
	chunk(&t, FE, hello, sizeof(hello)); /* ciphertext, from the socket */
	put_query(&fe, "SELECT 1 FROM t");
	ch.dir = SONDE_DIR_EGRESS;
	ch.ts_unix_ns = t.ts += 1000;
	ch.data = fe.b;
	ch.len = ch.orig_len = fe.n;
	ch.source = SONDE_SRC_TLS;
	th_conn_feed_chunk(t.c, &ch);
	put_strs(&be, 'C', 1, "SELECT 1");
	put_ready(&be);
	ch.dir = SONDE_DIR_INGRESS;
	ch.ts_unix_ns = t.ts += 1000;
	ch.data = be.b;
	ch.len = ch.orig_len = be.n;
	th_conn_feed_chunk(t.c, &ch);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "SELECT t");
	teardown(&t);
}
END_TEST

/* The dark cycle of test_dark_next_request, with no next request: the
 * timer ends it at its last backend bytes once the server has been silent
 * for dark_timeout (30 s), not before; counted as ended_unseen. With
 * dark_timeout 0 the timer never ends it. */
START_TEST(v11_dark_cycle_ended_by_timer)
{
	struct t t = _i ? setup_cfg(SONDE_ROLE_CLIENT, "dark_timeout", "0")
	                : setup(SONDE_ROLE_CLIENT);
	uint64_t last_be;

	t.ts = wall_now();
	big_result(&t, 1);
	last_be = t.ts;
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	th_run_timers(t.h, last_be + 29ull * 1000000000ull);
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	th_run_timers(t.h, last_be + 35ull * 1000000000ull); /* (the tick is every 5 s) */
	if (_i) {
		ck_assert_uint_eq(th_n_ended(t.h), 0);
		teardown(&t); /* ended at close, as before */
		return;
	}
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_uint_eq(th_ended(t.h, 0)->end_ns, last_be);
	ck_assert_ptr_null(th_span_attr(th_ended(t.h, 0), "db.response.returned_rows"));
	th_run_timers(t.h, last_be + 41ull * 1000000000ull); /* counters of the tick */
	ck_assert(events(t.h, "ended_unseen", "postgresql") == 1);
	teardown(&t);
}
END_TEST

/* Rows arriving slowly after a loss: the last chunk was whole and did not
 * end the answer, so however long the silence, the timer leaves it; the
 * tail that comes later finishes it. */
START_TEST(v11_dark_cycle_going_on_is_kept)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };

	t.ts = wall_now();
	startup(&t, "db");
	put_query(&fe, "SELECT * FROM slow");
	chunk(&t, FE, fe.b, fe.n);
	put_msg(&be, 'T', "\0\1x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
	for (int i = 0; i < 50; i++)
		put_row(&be, "row-value-0123456789");
	chunk_cut(&t, BE, be.b, be.n, 64, 0); /* the place is lost */
	be.n = 0;
	for (int i = 0; i < 5; i++)
		put_row(&be, "row-value-0123456789");
	chunk(&t, BE, be.b, be.n);            /* whole, no ReadyForQuery */
	th_run_timers(t.h, t.ts + 3600ull * 1000000000ull);
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	be.n = 0;
	put_row(&be, "row-value-0123456789");
	put_strs(&be, 'C', 1, "SELECT 56");
	put_ready(&be);
	t.ts += 3600ull * 1000000000ull;
	chunk(&t, BE, be.b, be.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_int_eq(num(th_ended(t.h, 0), "db.response.returned_rows"), 56);
	teardown(&t);
}
END_TEST

/* A connection's counters reach sonde.sql.events at the timer's tick and
 * at close, each event once; a 1.0 host has no such counter. */
START_TEST(v11_counters)
{
	for (int v10 = 0; v10 <= 1; v10++) {
		struct t t = setup_ex(SONDE_ROLE_CLIENT, NULL, NULL, 0,
		                      v10 ? V10 : V11);
		struct msgbuf fe = { .n = 0 }, be = { .n = 0 };

		t.ts = wall_now();
		startup(&t, "db");
		put_query(&fe, "SELECT 1");
		chunk(&t, FE, fe.b, fe.n);
		put_strs(&be, 'C', 1, "SELECT 1");
		put_ready(&be);
		chunk(&t, BE, be.b, be.n);
		th_run_timers(t.h, t.ts + 6ull * 1000000000ull);
		if (!v10)
			ck_assert(events(t.h, "operations", "postgresql") == 1);
		/* a second query, then frontend bytes lost before a third */
		chunk(&t, FE, fe.b, fe.n);
		chunk_cut(&t, FE, fe.b, fe.n, fe.n, SONDE_CHUNK_GAP);
		th_conn_close(t.c, t.ts + 1000);
		if (v10) {
			ck_assert_ptr_null(th_metric_by_name(t.h, "sonde.sql.events"));
		} else {
			/* the query in the chunk after the gap is followed again,
			 * and dropped at close with no answer */
			ck_assert(events(t.h, "operations", "postgresql") == 3);
			ck_assert(events(t.h, "sync_lost", "postgresql") == 1);
			ck_assert(events(t.h, "dropped", "postgresql") == 2);
			ck_assert(events(t.h, "spans", "postgresql") == 0); /* not a counter */
			ck_assert_str_eq(th_metric_by_name(t.h, "sonde.sql.events")->unit, "{event}");
		}
		ck_assert_uint_eq(th_n_open(t.h), 0);
		ck_assert_uint_eq(th_misuse(t.h), 0);
		th_free(t.h);
	}
}
END_TEST

/* ---- same-host links: both ends of a connection watched by one host ------------------------- */

struct ends {
	struct th_host *h;
	struct th_conn *cl, *sv;
	uint64_t ts;
};

/* The client 127.0.0.2:cport and the server 127.0.0.1:5432 of one
 * connection, in one host of ABI minor `minor`. */
static struct ends ends_new(uint16_t cport, uint32_t minor)
{
	struct ends e = { .ts = 1000000 };

	e.h = th_new();
	ck_assert_int_eq(th_load_minor(e.h, sonde_plugin_entry(), "postgresql", minor), SONDE_OK);
	th_conn_pair(e.h, cport, 5432, &e.cl, &e.sv);
	ck_assert_ptr_nonnull(e.cl);
	ck_assert_ptr_nonnull(e.sv);
	return e;
}

/* The same bytes seen by both ends: side FE is written by the client and
 * read by the server, BE the other way. reader_first: the reading end's
 * chunk comes first (the server's read is often recorded before the
 * client's write returns). cut (0 < cut < n): the reader reads it in two
 * pieces. */
static void both(struct ends *e, int side, const void *b, size_t n, int reader_first, size_t cut)
{
	struct th_conn *w = side == FE ? e->cl : e->sv, *r = side == FE ? e->sv : e->cl;
	const char *p = b;

	e->ts += 1000;
	if (!reader_first)
		th_conn_feed(w, SONDE_DIR_EGRESS, e->ts, p, n);
	if (cut > 0 && cut < n) {
		th_conn_feed(r, SONDE_DIR_INGRESS, e->ts + 1, p, cut);
		th_conn_feed(r, SONDE_DIR_INGRESS, e->ts + 2, p + cut, n - cut);
	} else {
		th_conn_feed(r, SONDE_DIR_INGRESS, e->ts + 1, p, n);
	}
	if (reader_first)
		th_conn_feed(w, SONDE_DIR_EGRESS, e->ts, p, n);
}

static void both_startup(struct ends *e)
{
	static const uint8_t su[] = "\0\0\0\x14\0\3\0\0user\0alice\0\0";
	struct msgbuf be = { .n = 0 };

	both(e, FE, su, sizeof(su) - 1, 0, 0);
	put_msg(&be, 'R', "\0\0\0\0", 4);
	put_ready(&be);
	both(e, BE, be.b, be.n, 0, 0);
}

/* The nth span of that kind, in start order. */
static struct th_span *nth_kind(struct th_host *h, enum sonde_span_kind kind, size_t nth)
{
	for (size_t i = 0; i < th_n_spans(h); i++) {
		struct th_span *s = th_span(h, i);

		if (s->kind == kind && nth-- == 0)
			return s;
	}
	return NULL;
}

static size_t n_kind(struct th_host *h, enum sonde_span_kind kind)
{
	size_t n = 0;

	while (nth_kind(h, kind, n))
		n++;
	return n;
}

/* n requests on both ends; the server span of request i is the child of
 * the client span of request i (same name, same order) when bit i of
 * `linked` is set, and has no parent otherwise. */
static void assert_linked_mask(struct th_host *h, size_t n, uint32_t linked)
{
	size_t links = 0;

	ck_assert_uint_eq(n_kind(h, SONDE_SPAN_CLIENT), n);
	ck_assert_uint_eq(n_kind(h, SONDE_SPAN_SERVER), n);
	for (size_t i = 0; i < n; i++) {
		struct th_span *c = nth_kind(h, SONDE_SPAN_CLIENT, i);
		struct th_span *s = nth_kind(h, SONDE_SPAN_SERVER, i);

		ck_assert_str_eq(s->name, c->name);
		if (!(linked & (1u << i))) {
			ck_assert_str_eq(s->parent_span_id, "");
			continue;
		}
		links++;
		ck_assert_msg(th_span_child_of(s, c), "server span %zu (%s): parent %s, want %s", i,
		              s->name, s->parent_span_id, c->span_id);
	}
	ck_assert_uint_eq(th_n_links(h), links);
}

static void assert_all_linked(struct th_host *h, size_t n)
{
	assert_linked_mask(h, n, (1u << n) - 1);
}

static void ends_free(struct ends *e)
{
	th_conn_close(e->cl, e->ts + 1000);
	th_conn_close(e->sv, e->ts + 1000);
	/* Server spans still held for a client span that will not come leave
	 * when the wait runs out (links.c). */
	th_run_timers(e->h, e->ts + 3000000000ULL);
	ck_assert_uint_eq(th_n_open(e->h), 0);
	ck_assert_uint_eq(th_misuse(e->h), 0);
	th_free(e->h);
}

/* The recorded sessions (simple queries, pgbench extended and prepared),
 * each with either end's chunk first: every statement links. */
START_TEST(link_recorded_sessions)
{
	static const struct {
		const struct vec *v;
		size_t n, spans;
	} ss[] = { { pg_psql, NV(pg_psql), 2 },
		   { pg_extended, NV(pg_extended), 2 },
		   { pg_prepared, NV(pg_prepared), 2 } };
	size_t k = (size_t)_i / 2;
	struct ends e = ends_new((uint16_t)(41000 + _i), V11);

	for (size_t i = 0; i < ss[k].n; i++)
		both(&e, ss[k].v[i].side, ss[k].v[i].data, ss[k].v[i].len, _i % 2, 0);
	assert_all_linked(e.h, ss[k].spans);
	ends_free(&e);
}
END_TEST

/* Three extended-protocol cycles (one with a failing Parse) and a
 * four-statement simple Query, all pipelined in one write the server reads
 * cut at any byte: each Execute is keyed by where its Execute message
 * starts, each statement of the Query by where its text starts. The
 * answers come in one write read at once: the Query's later statements
 * start and end inside that one chunk on each end. The server's chunk comes
 * first, so its ended spans are held until the client's come: all link. */
START_TEST(link_pipelined_any_split)
{
	struct ends e = ends_new(41100, V11);
	struct msgbuf fe = { .n = 0 }, be = { .n = 0 };

	both_startup(&e);
	put_parse(&fe, "s1", "SELECT * FROM orders WHERE id = $1");
	put_bind(&fe, "", "s1", "41");
	put_execute(&fe, "");
	put_empty(&fe, 'S');
	put_parse(&fe, "", "SELEC broken $1");
	put_bind(&fe, "", "", "42");
	put_execute(&fe, "");
	put_empty(&fe, 'S');
	put_bind(&fe, "p2", "s1", "43");
	put_execute(&fe, "p2");
	put_empty(&fe, 'S');
	put_query(&fe, "BEGIN; SELECT 1; UPDATE users SET n = 2; COMMIT");
	both(&e, FE, fe.b, fe.n, _i % 2, (size_t)_i / 2);

	put_empty(&be, '1');
	put_empty(&be, '2');
	put_strs(&be, 'C', 1, "SELECT 0");
	put_ready(&be);
	put_error(&be, "42601", "syntax error");
	put_ready(&be);
	put_empty(&be, '2');
	put_row(&be, "x");
	put_strs(&be, 'C', 1, "SELECT 1");
	put_ready(&be);
	put_strs(&be, 'C', 1, "BEGIN");
	put_row(&be, "1");
	put_strs(&be, 'C', 1, "SELECT 1");
	put_strs(&be, 'C', 1, "UPDATE 1");
	put_strs(&be, 'C', 1, "COMMIT");
	put_ready(&be);
	both(&e, BE, be.b, be.n, 0, 0);
	assert_linked_mask(e.h, 7, 0x7f);
	ends_free(&e);
}
END_TEST

/* A multi-statement Query whose completions come one write at a time, each
 * read before the next is written: every statement links, by where its
 * text starts in the Query message. */
START_TEST(link_multi_statement_stepwise)
{
	static const char *const tags[] = { "BEGIN", "SELECT 1", "UPDATE 1", "COMMIT" };
	struct ends e = ends_new(41150, V11);
	struct msgbuf fe = { .n = 0 };

	both_startup(&e);
	put_query(&fe, "BEGIN; SELECT 1; UPDATE users SET n = 2; COMMIT");
	both(&e, FE, fe.b, fe.n, _i, 0);
	for (size_t i = 0; i < 4; i++) {
		struct msgbuf be = { .n = 0 };

		put_strs(&be, 'C', 1, tags[i]);
		if (i == 3)
			put_ready(&be);
		both(&e, BE, be.b, be.n, _i, 0);
	}
	assert_all_linked(e.h, 4);
	ends_free(&e);
}
END_TEST

/* What must not link: a request after the server end lost bytes (its
 * place is found again by a guess), and a 1.0 host (no span_set_pos). */
START_TEST(link_none_after_gap)
{
	struct ends e = ends_new(41200, V11);
	struct msgbuf q1 = { .n = 0 }, q2 = { .n = 0 }, q3 = { .n = 0 }, be = { .n = 0 };

	both_startup(&e);
	put_query(&q1, "SELECT 1");
	put_query(&q2, "SELECT 2");
	put_query(&q3, "SELECT 3");
	put_strs(&be, 'C', 1, "SELECT 1");
	put_ready(&be);
	both(&e, FE, q1.b, q1.n, 0, 0);
	both(&e, BE, be.b, be.n, 0, 0);
	/* the server end does not see q2: its next chunk (q3) says so */
	th_conn_feed(e.cl, SONDE_DIR_EGRESS, e.ts + 10, q2.b, q2.n);
	th_conn_feed(e.cl, SONDE_DIR_INGRESS, e.ts + 11, be.b, be.n);
	th_conn_feed(e.sv, SONDE_DIR_EGRESS, e.ts + 12, be.b, be.n);
	e.ts += 100;
	th_conn_feed(e.cl, SONDE_DIR_EGRESS, e.ts, q3.b, q3.n);
	th_conn_feed_lossy(e.sv, SONDE_DIR_INGRESS, e.ts + 1, q2.n, q3.b, q3.n, q3.n);
	both(&e, BE, be.b, be.n, 0, 0);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_CLIENT), 3);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_SERVER), 2); /* q1, q3 */
	ck_assert(th_span_child_of(nth_kind(e.h, SONDE_SPAN_SERVER, 0),
	                           nth_kind(e.h, SONDE_SPAN_CLIENT, 0)));
	ck_assert_str_eq(nth_kind(e.h, SONDE_SPAN_SERVER, 1)->parent_span_id, "");
	ck_assert_uint_eq(th_n_links(e.h), 1);
	ends_free(&e);

	/* A 1.0 host: the same spans, no link. */
	e = ends_new(41201, V10);
	both_startup(&e);
	both(&e, FE, q1.b, q1.n, 0, 0);
	both(&e, BE, be.b, be.n, 0, 0);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_SERVER), 1);
	ck_assert_str_eq(nth_kind(e.h, SONDE_SPAN_SERVER, 0)->parent_span_id, "");
	ck_assert_uint_eq(th_n_links(e.h), 0);
	ends_free(&e);
}
END_TEST

Suite *pg_suite(void)
{
	Suite *s = suite_create("pg_plugin");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_psql_session);
	tcase_add_test(tc, test_pgbench_extended);
	tcase_add_test(tc, test_pgbench_prepared);
	tcase_add_test(tc, test_server_side);
	tcase_add_test(tc, test_role_from_startup);
	tcase_add_test(tc, test_every_split_point);
	tcase_add_test(tc, test_error_code_not_sqlstate);
	tcase_add_test(tc, test_pipelined_extended);
	tcase_add_test(tc, test_prepared_1000);
	tcase_add_test(tc, test_parse_error_alone);
	tcase_add_test(tc, test_span_limit);
	tcase_add_test(tc, test_multi_statement);
	tcase_add_test(tc, test_multi_statement_error);
	tcase_add_test(tc, test_unsplit_and_empty);
	tcase_add_test(tc, test_with_from_tag);
	tcase_add_test(tc, test_backslash_mode);
	tcase_add_test(tc, test_copy_in_truncated);
	tcase_add_test(tc, test_dark_tail);
	tcase_add_test(tc, test_dark_next_request);
	tcase_add_test(tc, test_gap_frontend);
	tcase_add_test(tc, test_midstream);
	tcase_add_loop_test(tc, test_midstream_role_from_bytes, 0, 2);
	tcase_add_test(tc, test_unix_socket);
	tcase_add_test(tc, test_tls);
	tcase_add_test(tc, test_tls_late);
	tcase_add_test(tc, test_gss_encryption_given_up);
	tcase_add_test(tc, test_cancel_request);
	tcase_add_test(tc, test_auth_failure);
	tcase_add_test(tc, test_nothing_of_a_value_leaves);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_detect);
	tcase_add_test(tc, v11_role_seen_is_kept);
	tcase_add_test(tc, v11_capture_cap_server_side);
	tcase_add_test(tc, v11_skip_big_datarow);
	tcase_add_test(tc, v11_gss_muted);
	tcase_add_test(tc, v11_tls_from_chunk_source);
	tcase_add_loop_test(tc, v11_dark_cycle_ended_by_timer, 0, 2);
	tcase_add_test(tc, v11_dark_cycle_going_on_is_kept);
	tcase_add_test(tc, v11_counters);
	tcase_add_loop_test(tc, link_recorded_sessions, 0, 6);
	tcase_add_loop_test(tc, link_pipelined_any_split, 0, 2 * 400);
	tcase_add_loop_test(tc, link_multi_statement_stepwise, 0, 2);
	tcase_add_test(tc, link_none_after_gap);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
