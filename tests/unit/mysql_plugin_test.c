/*
 * mysql_plugin_test.c - the `mysql` protocol of the sql plugin
 * (plugins/sql/mysql.c; MySQL and MariaDB) driven through the test host
 * (tests/support), chunk by chunk, the way the agent drives it.
 *
 * The one idea: sessions recorded from MariaDB 10.11 (the mariadb client,
 * and node mysql2's prepared statements; through a logging TCP proxy) and
 * packets built here for what a recording cannot show (multi-statements,
 * big results cut by the capture, 16 MiB packets, compression, TLS, lost
 * bytes) are fed in, whole, split at every byte and byte by byte; the
 * spans, their attributes and the counters are read back. Every test ends
 * with nothing open and no misuse of the host.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sonde/plugin.h>

#include <time.h>

#include "testhost.h"
#include "mysql_wire.h"
#include "sql_internal.h"

const struct sonde_plugin *sonde_plugin_entry(void);

#define CL 0 /* client to server */
#define SV 1 /* server to client */

struct vec {
	int side;
	size_t len;
	const char *data;
};

/* ---- recorded sessions (MariaDB 10.11.19, Debian 12) --------------------------- */

/* my_cli: 8 chunks */
static const struct vec my_cli[] = {
	{ SV, 104, "d\x00\x00\x00\x0a""5.5.5-10.11.19-MariaDB-0+deb12u1\x00\x12\x00\x00\x00`$/ay]F%\x00\xfe"
	  "\xf7-\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00&.R5OmWM]iyF\x00mys"
	  "ql_native_password\x00" },
	{ CL, 215, "\xd3\x00\x00\x01\x8c\xa2\xbf\x00\x00\x00\x10\x00!\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	  "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00""app\x00\x14#\xe2\xed\xf7Nz,\xb2"
	  "\xc3\xbf\xae\"2\xea+\x17)\x1c$\x1cshop\x00mysql_native_password\x00~\x03_os\x05Linux"
	  "\x0c_client_name\x0alibmariadb\x04_pid\x04""8329\x0f_client_version\x06""3.3.20\x09_"
	  "platform\x06x86_64\x0cprogram_name\x05mysql\x0c_server_host\x09""127.0.0.1" },
	{ SV, 20, "\x10\x00\x00\x02\x00\x00\x00\x02@\x00\x00\x00\x07\x01\x05\x04shop" },
	{ CL, 45, ")\x00\x00\x00\x03SELECT name FROM items WHERE id IN (1,2)" },
	{ SV, 85, "\x02\x00\x00\x01\x01\x01-\x00\x00\x02\x03""def\x04shop\x05items\x05items\x04name\x04nam"
	  "e\x00\x0c!\x00x\x00\x00\x00\xfd\x00\x00\x00\x00\x00\x05\x00\x00\x03\xfe\x00\x00\x02\x00"
	  "\x02\x00\x00\x04\x01""b\x02\x00\x00\x05\x01""c\x05\x00\x00\x06\xfe\x00\x00\x02\x00" },
	{ CL, 25, "\x15\x00\x00\x00\x03SELECT * FROM nosuch" },
	{ SV, 46, "*\x00\x00\x01\xffz\x04#42S02Table 'shop.nosuch' doesn't exist" },
	{ CL, 5, "\x01\x00\x00\x00\x01" },
};

/* my_use: 12 chunks */
static const struct vec my_use[] = {
	{ SV, 104, "d\x00\x00\x00\x0a""5.5.5-10.11.19-MariaDB-0+deb12u1\x00\x13\x00\x00\x00~Cq1?(Iv\x00\xfe"
	  "\xf7-\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00""8Qo]bSZLLx;X\x00m"
	  "ysql_native_password\x00" },
	{ CL, 210, "\xce\x00\x00\x01\x84\xa2\xbf\x00\x00\x00\x10\x00!\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	  "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00""app\x00\x14S\xabJ\x13\xb6\xe3\x9c"
	  "\xbf""c\xb1\x9d\xe4?C\x01\x8cv|\xa0\xe0mysql_native_password\x00~\x03_os\x05Linux\x0c"
	  "_client_name\x0alibmariadb\x04_pid\x04""8331\x0f_client_version\x06""3.3.20\x09_plat"
	  "form\x06x86_64\x0cprogram_name\x05mysql\x0c_server_host\x09""127.0.0.1" },
	{ SV, 11, "\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00" },
	{ CL, 22, "\x12\x00\x00\x00\x03SELECT DATABASE()" },
	{ SV, 66, "\x02\x00\x00\x01\x01\x01!\x00\x00\x02\x03""def\x00\x00\x00\x0a""DATABASE()\x00\x00\x0c!"
	  "\x00\xc0\x00\x00\x00\xfd\x00\x00'\x00\x00\x05\x00\x00\x03\xfe\x00\x00\x02\x00\x01\x00"
	  "\x00\x04\xfb\x05\x00\x00\x05\xfe\x00\x00\x02\x00" },
	{ CL, 9, "\x05\x00\x00\x00\x02shop" },
	{ SV, 20, "\x10\x00\x00\x01\x00\x00\x00\x02@\x00\x00\x00\x07\x01\x05\x04shop" },
	{ CL, 13, "\x09\x00\x00\x00\x03SELECT 1" },
	{ SV, 58, "\x02\x00\x00\x01\x01\x01\x18\x00\x00\x02\x03""def\x00\x00\x00\x01""1\x00\x00\x0c?\x00\x01"
	  "\x00\x00\x00\x03\x81\x00\x00\x00\x00\x05\x00\x00\x03\xfe\x00\x00\x02\x00\x02\x00\x00"
	  "\x04\x01""1\x05\x00\x00\x05\xfe\x00\x00\x02\x00" },
	{ CL, 13, "\x09\x00\x00\x00\x03SELECT 2" },
	{ SV, 58, "\x02\x00\x00\x01\x01\x01\x18\x00\x00\x02\x03""def\x00\x00\x00\x01""2\x00\x00\x0c?\x00\x01"
	  "\x00\x00\x00\x03\x81\x00\x00\x00\x00\x05\x00\x00\x03\xfe\x00\x00\x02\x00\x02\x00\x00"
	  "\x04\x01""2\x05\x00\x00\x05\xfe\x00\x00\x02\x00" },
	{ CL, 5, "\x01\x00\x00\x00\x01" },
};

/* my_prepared: 24 chunks */
static const struct vec my_prepared[] = {
	{ SV, 104, "d\x00\x00\x00\x0a""5.5.5-10.11.19-MariaDB-0+deb12u1\x00\x14\x00\x00\x00~d\\\"0h@E\x00\xfe"
	  "\xf7-\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x1d\x00\x00\x00xPe.R3HQ>#1k\x00mys"
	  "ql_native_password\x00" },
	{ CL, 138, "\x86\x00\x00\x01\xcf\xf3\xba\x00\x00\x00\x00\x00\xe0\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	  "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00""app\x00\x14\xd8\x04Z\xb6:\x7f"
	  "\xd4JS\xa6\xdcy\xd8\x07\xee\xa6""2\xed\xc1Jshop\x00mysql_native_password\x00""1\x0c_"
	  "client_name\x0cNode-MySQL-2\x0f_client_version\x06""3.11.5" },
	{ SV, 20, "\x10\x00\x00\x02\x00\x00\x00\x02@\x00\x00\x00\x07\x01\x05\x04shop" },
	{ CL, 40, "$\x00\x00\x00\x16SELECT name FROM items WHERE id = ?" },
	{ SV, 109, "\x0c\x00\x00\x01\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00\x17\x00\x00\x02\x03""d"
	  "ef\x00\x00\x00\x01?\x00\x0c?\x00\x00\x00\x00\x00\x06\x80\x00\x00\x00\x00\x05\x00\x00"
	  "\x03\xfe\x00\x00\x02\x00,\x00\x00\x04\x03""def\x04shop\x05items\x05items\x04name\x04"
	  "name\x0c\xe0\x00\xa0\x00\x00\x00\xfd\x00\x00\x00\x00\x00\x05\x00\x00\x05\xfe\x00\x00"
	  "\x02\x00" },
	{ CL, 26, "\x16\x00\x00\x00\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x05\x00\x00\x00\x00\x00"
	  "\x00\x00\x00\x00" },
	{ SV, 79, "\x01\x00\x00\x01\x01,\x00\x00\x02\x03""def\x04shop\x05items\x05items\x04name\x04name\x0c"
	  "\xe0\x00\xa0\x00\x00\x00\xfd\x00\x00\x00\x00\x00\x05\x00\x00\x03\xfe\x00\x00\x02\x00"
	  "\x04\x00\x00\x04\x00\x00\x01""a\x05\x00\x00\x05\xfe\x00\x00\x02\x00" },
	{ CL, 26, "\x16\x00\x00\x00\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x05\x00\x00\x00\x00\x00"
	  "\x00\x00\xf0?" },
	{ SV, 79, "\x01\x00\x00\x01\x01,\x00\x00\x02\x03""def\x04shop\x05items\x05items\x04name\x04name\x0c"
	  "\xe0\x00\xa0\x00\x00\x00\xfd\x00\x00\x00\x00\x00\x05\x00\x00\x03\xfe\x00\x00\x02\x00"
	  "\x04\x00\x00\x04\x00\x00\x01""b\x05\x00\x00\x05\xfe\x00\x00\x02\x00" },
	{ CL, 47, "+\x00\x00\x00\x16INSERT INTO items (id, name) VALUES (?, ?)" },
	{ SV, 79, "\x0c\x00\x00\x01\x00\x02\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x17\x00\x00\x02\x03""d"
	  "ef\x00\x00\x00\x01?\x00\x0c?\x00\x00\x00\x00\x00\x06\x80\x00\x00\x00\x00\x17\x00\x00"
	  "\x03\x03""def\x00\x00\x00\x01?\x00\x0c?\x00\x00\x00\x00\x00\x06\x80\x00\x00\x00\x00\x05"
	  "\x00\x00\x04\xfe\x00\x00\x02\x00" },
	{ CL, 37, "!\x00\x00\x00\x17\x02\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x05\x00\xfd\x00\x00\x00\x00"
	  "\x00\x00X\xbb@\x08secret-0" },
	{ SV, 11, "\x07\x00\x00\x01\x00\x01\x00\x02\x00\x00\x00" },
	{ CL, 37, "!\x00\x00\x00\x17\x02\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x05\x00\xfd\x00\x00\x00\x00"
	  "\x00\x00Y\xbb@\x08secret-1" },
	{ SV, 11, "\x07\x00\x00\x01\x00\x01\x00\x02\x00\x00\x00" },
	{ CL, 37, "!\x00\x00\x00\x17\x02\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x05\x00\xfd\x00\x00\x00\x00"
	  "\x00\x00Z\xbb@\x08secret-2" },
	{ SV, 11, "\x07\x00\x00\x01\x00\x01\x00\x02\x00\x00\x00" },
	{ CL, 37, "!\x00\x00\x00\x17\x02\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x05\x00\xfd\x00\x00\x00\x00"
	  "\x00\x00[\xbb@\x08secret-3" },
	{ SV, 11, "\x07\x00\x00\x01\x00\x01\x00\x02\x00\x00\x00" },
	{ CL, 37, "!\x00\x00\x00\x17\x02\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x05\x00\xfd\x00\x00\x00\x00"
	  "\x00\x00\\\xbb@\x08secret-4" },
	{ SV, 11, "\x07\x00\x00\x01\x00\x01\x00\x02\x00\x00\x00" },
	{ CL, 40, "$\x00\x00\x00\x16SELECT nope FROM items WHERE id = ?" },
	{ SV, 46, "*\x00\x00\x01\xff\x1e\x04#42S22Unknown column 'nope' in 'SELECT'" },
	{ CL, 5, "\x01\x00\x00\x00\x01" },
};


#define NV(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------------------ */

struct t {
	struct th_host *h;
	struct th_conn *c;
	enum sonde_role role;
	uint64_t ts;
};

static struct t setup(enum sonde_role role)
{
	struct t t;
	struct sonde_conn_info ci;

	memset(&t, 0, sizeof(t));
	t.h = th_new();
	ck_assert_int_eq(th_load(t.h, sonde_plugin_entry(), "mysql"), SONDE_OK);
	th_conn_info_init(&ci, role);
	if (role == SONDE_ROLE_CLIENT) {
		ci.local_port = 51000;
		ci.peer_port = 3306;
		snprintf(ci.peer_addr, sizeof(ci.peer_addr), "10.0.0.8");
	} else {
		ci.local_port = 3306;
	}
	t.c = th_conn_open(t.h, &ci);
	ck_assert_ptr_nonnull(t.c);
	t.role = role;
	t.ts = 1000000;
	return t;
}

static enum sonde_dir dir_of(const struct t *t, int side)
{
	int egress = (t->role == SONDE_ROLE_SERVER) == (side == SV);

	return egress ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
}

static void chunk(struct t *t, int side, const void *p, size_t n)
{
	t->ts += 1000;
	th_conn_feed(t->c, dir_of(t, side), t->ts, p, n);
}

static void chunk_cut(struct t *t, int side, const void *p, size_t n, size_t orig, uint32_t flags)
{
	struct sonde_chunk ch = { 0 };

	t->ts += 1000;
	ch.dir = dir_of(t, side);
	ch.ts_unix_ns = t->ts;
	ch.data = p;
	ch.len = n;
	ch.orig_len = orig;
	ch.flags = flags | (orig > n ? SONDE_CHUNK_TRUNCATED : 0);
	th_conn_feed_chunk(t->c, &ch);
}

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

static void summary(struct th_host *h, char *out, size_t cap)
{
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < th_n_ended(h) && off < cap; i++) {
		const struct th_span *s = th_ended(h, i);

		off += (size_t)snprintf(out + off, cap - off, "%s|%d|%s|%s|%s|%s|%lld|%lld;", s->name,
		                        s->kind, str(s, "db.query.text"), str(s, "error.type"),
		                        str(s, "db.namespace"), str(s, "db.system"),
		                        (long long)num(s, "db.response.returned_rows"),
		                        (long long)num(s, "sonde.db.rows_affected"));
	}
}

/* ---- packet builders ------------------------------------------------------------------ */

struct pk {
	uint8_t b[70000];
	size_t n;
};

static void pkt(struct pk *m, uint8_t seq, const void *payload, size_t n)
{
	m->b[m->n++] = (uint8_t)n;
	m->b[m->n++] = (uint8_t)(n >> 8);
	m->b[m->n++] = (uint8_t)(n >> 16);
	m->b[m->n++] = seq;
	if (n)
		memcpy(m->b + m->n, payload, n);
	m->n += n;
}

static void query(struct pk *m, uint8_t cmd, const char *q)
{
	uint8_t p[4096];
	size_t n = strlen(q);

	p[0] = cmd;
	memcpy(p + 1, q, n);
	pkt(m, 0, p, n + 1);
}

static void ok(struct pk *m, uint8_t seq, uint8_t affected, uint16_t status)
{
	uint8_t p[] = { 0x00, affected, 0, (uint8_t)status, (uint8_t)(status >> 8), 0, 0 };

	pkt(m, seq, p, sizeof(p));
}

static void eof(struct pk *m, uint8_t seq, uint16_t status)
{
	uint8_t p[] = { 0xfe, 0, 0, (uint8_t)status, (uint8_t)(status >> 8) };

	pkt(m, seq, p, sizeof(p));
}

static void err(struct pk *m, uint8_t seq, uint16_t code, const char *state, const char *msg)
{
	uint8_t p[512];
	size_t n = 0;

	p[n++] = 0xff;
	p[n++] = (uint8_t)code;
	p[n++] = (uint8_t)(code >> 8);
	p[n++] = '#';
	memcpy(p + n, state, 5);
	n += 5;
	memcpy(p + n, msg, strlen(msg));
	n += strlen(msg);
	pkt(m, seq, p, n);
}

static void coldef(struct pk *m, uint8_t seq)
{
	static const uint8_t d[] = "\x03""def\x00\x00\x00\x01x\x00\x0c?\x00\x01\x00\x00\x00\x03\x81\x00\x00\x00\x00";

	pkt(m, seq, d, sizeof(d) - 1);
}

static void row(struct pk *m, uint8_t seq, const char *v)
{
	uint8_t p[300];
	size_t n = strlen(v);

	p[0] = (uint8_t)n;
	memcpy(p + 1, v, n);
	pkt(m, seq, p, n + 1);
}

/* A result set of one column and n rows, from sequence id seq. Returns the
 * next sequence id. */
static uint8_t result(struct pk *m, uint8_t seq, int rows, uint16_t final_status)
{
	uint8_t cc = 1;

	pkt(m, seq++, &cc, 1);
	coldef(m, seq++);
	eof(m, seq++, 0x0002);
	for (int i = 0; i < rows; i++)
		row(m, seq++, "value");
	eof(m, seq++, final_status);
	return seq;
}

static void greeting(struct t *t, int mariadb, uint32_t caps)
{
	struct pk m = { .n = 0 };
	uint8_t p[128];
	size_t n = 0;
	const char *ver = mariadb ? "5.5.5-10.11.6-MariaDB-0+deb12u1" : "8.0.36";

	p[n++] = 0x0a;
	memcpy(p + n, ver, strlen(ver) + 1);
	n += strlen(ver) + 1;
	memcpy(p + n, "\1\0\0\0abcdefgh\0", 13);
	n += 13;
	p[n++] = (uint8_t)caps;
	p[n++] = (uint8_t)(caps >> 8);
	p[n++] = 0x21;
	p[n++] = 0x02; /* status: autocommit */
	p[n++] = 0;
	p[n++] = (uint8_t)(caps >> 16);
	p[n++] = (uint8_t)(caps >> 24);
	p[n++] = 21;
	memset(p + n, 0, 10);
	n += 10;
	memcpy(p + n, "ijklmnopqrst\0mysql_native_password\0", 35);
	n += 35;
	pkt(&m, 0, p, n);
	chunk(t, SV, m.b, m.n);
}

static void handshake(struct t *t, uint32_t caps, const char *db, uint8_t seq)
{
	struct pk m = { .n = 0 };
	uint8_t p[256];
	size_t n = 0;

	memset(p, 0, sizeof(p));
	p[0] = (uint8_t)caps;
	p[1] = (uint8_t)(caps >> 8);
	p[2] = (uint8_t)(caps >> 16);
	p[3] = (uint8_t)(caps >> 24);
	p[8] = 0x21;
	n = 32;
	memcpy(p + n, "alice\0", 6);
	n += 6;
	p[n++] = 4;
	memcpy(p + n, "\x11\x22\x33\x44", 4);
	n += 4;
	if (db) {
		memcpy(p + n, db, strlen(db) + 1);
		n += strlen(db) + 1;
	}
	pkt(&m, seq, p, n);
	chunk(t, CL, m.b, m.n);
}

#define CAPS_BASE (MY_CLIENT_PROTOCOL_41 | MY_CLIENT_SECURE_CONNECTION | MY_CLIENT_CONNECT_WITH_DB | \
                   MY_CLIENT_MULTI_STATEMENTS | (1u << 17))

static void connect_db(struct t *t, int mariadb, uint32_t caps, const char *db)
{
	struct pk m = { .n = 0 };

	greeting(t, mariadb, caps | (mariadb ? 0 : MY_CLIENT_MYSQL));
	handshake(t, caps, db, 1);
	ok(&m, 2, 0, 0x0002);
	chunk(t, SV, m.b, m.n);
}

/* A command and its answer, each in one chunk. */
static void exchange(struct t *t, const struct pk *c, const struct pk *s)
{
	chunk(t, CL, c->b, c->n);
	chunk(t, SV, s->b, s->n);
}

/* ---- recorded sessions ----------------------------------------------------------------- */

START_TEST(test_mariadb_client)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	const struct th_span *a, *b;
	struct sql_stats st;

	play(&t, my_cli, NV(my_cli), SIZE_MAX, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	a = th_ended(t.h, 0);
	b = th_ended(t.h, 1);
	ck_assert_str_eq(a->name, "SELECT items");
	ck_assert_str_eq(str(a, "db.system"), "mariadb");
	ck_assert_str_eq(str(a, "db.namespace"), "shop");
	ck_assert_str_eq(str(a, "db.query.text"), "SELECT name FROM items WHERE id IN (?)");
	ck_assert_str_eq(str(a, "db.collection.name"), "items");
	ck_assert_int_eq(num(a, "db.response.returned_rows"), 2);
	ck_assert_str_eq(str(a, "server.address"), "10.0.0.8");
	ck_assert_int_eq(num(a, "server.port"), 3306);
	ck_assert_str_eq(b->name, "SELECT nosuch");
	ck_assert_str_eq(str(b, "error.type"), "42S02");
	ck_assert_str_eq(str(b, "db.response.status_code"), "1146");
	ck_assert_int_eq(b->status, SONDE_STATUS_ERROR);
	ck_assert_uint_eq(th_n_records(t.h), 2);
	ck_assert_str_eq(th_record_val(th_record(t.h, 1), "db.response.status_code"), "1146");
	st = teardown(&t);
	ck_assert_uint_eq(st.unmatched, 0);
	ck_assert_uint_eq(st.dropped, 0);
}
END_TEST

/* Connected without a database, then `USE shop` (COM_INIT_DB): the
 * namespace is unknown before and "shop" after. */
START_TEST(test_use_database)
{
	struct t t = setup(SONDE_ROLE_CLIENT);

	play(&t, my_use, NV(my_use), SIZE_MAX, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 3);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "SELECT");
	ck_assert_ptr_null(th_span_attr(th_ended(t.h, 0), "db.namespace"));
	ck_assert_str_eq(str(th_ended(t.h, 1), "db.namespace"), "shop");
	ck_assert_str_eq(str(th_ended(t.h, 2), "db.query.text"), "SELECT ?");
	teardown(&t);
}
END_TEST

/* mysql2: COM_STMT_PREPARE once, COM_STMT_EXECUTE n times; then a prepare
 * that fails. Spans are named from the prepared text; parameters (the
 * inserted names "secret-N") never appear. */
START_TEST(test_mysql2_prepared)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	size_t selects = 0, inserts = 0;
	const struct th_span *last;

	play(&t, my_prepared, NV(my_prepared), SIZE_MAX, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 8);
	for (size_t i = 0; i < th_n_ended(t.h); i++) {
		const struct th_span *s = th_ended(t.h, i);

		selects += !strcmp(s->name, "SELECT items") && num(s, "db.response.returned_rows") == 1;
		inserts += !strcmp(s->name, "INSERT items") && num(s, "sonde.db.rows_affected") == 1;
		for (size_t k = 0; k < s->n_attrs; k++)
			ck_assert(s->attrs[k].type != TH_ATTR_STR || !strstr(s->attrs[k].s, "secret"));
	}
	ck_assert_uint_eq(selects, 2);
	ck_assert_uint_eq(inserts, 5);
	last = th_ended(t.h, 7);
	ck_assert_str_eq(str(last, "error.type"), "42S22");
	ck_assert_str_eq(str(last, "db.response.status_code"), "1054");
	ck_assert_str_eq(str(last, "db.query.text"), "SELECT nope FROM items WHERE id = ?");
	teardown(&t);
}
END_TEST

START_TEST(test_server_side)
{
	struct t t = setup(SONDE_ROLE_SERVER);

	play(&t, my_cli, NV(my_cli), SIZE_MAX, 0, 0);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_int_eq(th_ended(t.h, 0)->kind, SONDE_SPAN_SERVER);
	ck_assert_str_eq(str(th_ended(t.h, 0), "server.address"), "127.0.0.1");
	ck_assert_uint_eq(th_n_records(t.h), 0);
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

START_TEST(test_every_split_point)
{
	static const struct {
		const struct vec *v;
		size_t n;
	} sessions[] = { { my_cli, NV(my_cli) }, { my_use, NV(my_use) },
		         { my_prepared, NV(my_prepared) } };
	char want[8192], got[8192];
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

/* ---- results ---------------------------------------------------------------------------- */

/* Multi-statements: one span per statement, each ending with its own
 * result (SERVER_MORE_RESULTS_EXISTS until the last). */
START_TEST(test_multi_statement)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	uint8_t seq;

	connect_db(&t, 1, CAPS_BASE, "shop");
	query(&c, MY_COM_QUERY, "SELECT a FROM t1; UPDATE t2 SET x = 'TOPSECRET'; SELECT 1");
	seq = result(&s, 1, 3, 0x000a);
	ok(&s, seq++, 4, 0x000a);
	result(&s, seq, 1, 0x0002);
	exchange(&t, &c, &s);
	ck_assert_uint_eq(th_n_ended(t.h), 3);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "SELECT t1");
	ck_assert_int_eq(num(th_ended(t.h, 0), "db.response.returned_rows"), 3);
	ck_assert_str_eq(th_ended(t.h, 1)->name, "UPDATE t2");
	ck_assert_str_eq(str(th_ended(t.h, 1), "db.query.text"), "UPDATE t2 SET x = ?");
	ck_assert_int_eq(num(th_ended(t.h, 1), "sonde.db.rows_affected"), 4);
	ck_assert_str_eq(th_ended(t.h, 2)->name, "SELECT");
	ck_assert_int_eq(num(th_ended(t.h, 2), "db.response.returned_rows"), 1);
	teardown(&t);
}
END_TEST

/* A CALL answers with several result sets: not split, one span. */
START_TEST(test_call_results)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	uint8_t seq;

	connect_db(&t, 1, CAPS_BASE, "shop");
	query(&c, MY_COM_QUERY, "CALL p(1); SELECT 2");
	seq = result(&s, 1, 2, 0x000a);
	seq = result(&s, seq, 2, 0x000a);
	ok(&s, seq++, 0, 0x000a);
	result(&s, seq, 1, 0x0002);
	exchange(&t, &c, &s);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "CALL");
	teardown(&t);
}
END_TEST

/* An error in the second statement: the third is not run. */
START_TEST(test_multi_statement_error)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	struct sql_stats st;

	connect_db(&t, 0, CAPS_BASE, "shop");
	query(&c, MY_COM_QUERY, "INSERT INTO a VALUES (1); INSERT INTO b VALUES (1); SELECT 3");
	ok(&s, 1, 1, 0x000a);
	err(&s, 2, 1062, "23000", "Duplicate entry '1' for key 'PRIMARY'");
	exchange(&t, &c, &s);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_str_eq(str(th_ended(t.h, 0), "db.system"), "mysql");
	ck_assert_str_eq(str(th_ended(t.h, 1), "error.type"), "23000");
	ck_assert_str_eq(str(th_ended(t.h, 1), "db.response.status_code"), "1062");
	st = teardown(&t);
	ck_assert_uint_eq(st.not_run, 1);
}
END_TEST

/* CLIENT_DEPRECATE_EOF: no EOF after the columns, an OK with a 0xfe header
 * at the end; a metadata-skipped result (MariaDB cache metadata); MariaDB
 * progress reports are no answers. */
START_TEST(test_deprecate_eof_and_metadata)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	uint8_t two[] = { 2, 0 }, fe_ok[] = { 0xfe, 0, 0, 0x02, 0, 0, 0 };
	uint8_t progress[] = { 0xff, 0xff, 0xff, 1, 1, 0, 0, 0, 0 };

	connect_db(&t, 1, CAPS_BASE | MY_CLIENT_DEPRECATE_EOF, "shop");
	query(&c, MY_COM_QUERY, "SELECT a, b FROM t");
	pkt(&s, 1, two, 1);
	coldef(&s, 2);
	coldef(&s, 3);
	row(&s, 4, "x");
	row(&s, 5, "y");
	pkt(&s, 6, fe_ok, sizeof(fe_ok));
	exchange(&t, &c, &s);
	c.n = s.n = 0;
	query(&c, MY_COM_QUERY, "SELECT a, b FROM t");
	pkt(&s, 1, progress, sizeof(progress));
	pkt(&s, 2, two, 2); /* metadata follows: 0 */
	row(&s, 3, "x");
	pkt(&s, 4, fe_ok, sizeof(fe_ok));
	exchange(&t, &c, &s);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_int_eq(num(th_ended(t.h, 0), "db.response.returned_rows"), 2);
	ck_assert_int_eq(num(th_ended(t.h, 1), "db.response.returned_rows"), 1);
	teardown(&t);
}
END_TEST

/* A prepared statement executed 1000 times gives 1000 spans named from
 * its prepared text; closing the statement forgets it. */
START_TEST(test_prepared_1000)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	uint8_t prep_ok[] = { 0, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0 };
	uint8_t exec[] = { MY_COM_STMT_EXECUTE, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 0, 42, 0 };
	uint8_t close[] = { MY_COM_STMT_CLOSE, 7, 0, 0, 0 };
	size_t named = 0;
	struct sql_stats st;

	connect_db(&t, 1, CAPS_BASE, "shop");
	query(&c, MY_COM_STMT_PREPARE, "DELETE FROM sessions WHERE id = ?");
	pkt(&s, 1, prep_ok, sizeof(prep_ok));
	coldef(&s, 2);
	eof(&s, 3, 0x0002);
	exchange(&t, &c, &s);
	for (int i = 0; i < 1000; i++) {
		c.n = s.n = 0;
		pkt(&c, 0, exec, sizeof(exec));
		ok(&s, 1, 1, 0x0002);
		exchange(&t, &c, &s);
	}
	c.n = 0;
	pkt(&c, 0, close, sizeof(close));
	pkt(&c, 0, exec, sizeof(exec));
	chunk(&t, CL, c.b, c.n);
	s.n = 0;
	ok(&s, 1, 1, 0x0002);
	chunk(&t, SV, s.b, s.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1001);
	for (size_t i = 0; i < 1000; i++)
		named += !strcmp(th_ended(t.h, i)->name, "DELETE sessions");
	ck_assert_uint_eq(named, 1000);
	ck_assert_str_eq(th_ended(t.h, 1000)->name, "shop"); /* closed: unknown */
	st = teardown(&t);
	ck_assert_uint_eq(st.unknown_stmt, 1);
}
END_TEST

/* A cursor: the execute's answer ends at its column EOF (CURSOR_EXISTS);
 * rows come with COM_STMT_FETCH, which is no span. */
START_TEST(test_cursor_fetch)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	uint8_t prep_ok[] = { 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0 };
	uint8_t exec[] = { MY_COM_STMT_EXECUTE, 9, 0, 0, 0, 1, 1, 0, 0, 0 };
	uint8_t fetch[] = { MY_COM_STMT_FETCH, 9, 0, 0, 0, 10, 0, 0, 0 };
	uint8_t one = 1, brow[] = { 0, 0, 1, 'z' };

	connect_db(&t, 0, CAPS_BASE, "shop");
	query(&c, MY_COM_STMT_PREPARE, "SELECT name FROM big");
	pkt(&s, 1, prep_ok, sizeof(prep_ok));
	coldef(&s, 2);
	eof(&s, 3, 0x0002);
	exchange(&t, &c, &s);
	c.n = s.n = 0;
	pkt(&c, 0, exec, sizeof(exec));
	pkt(&s, 1, &one, 1);
	coldef(&s, 2);
	eof(&s, 3, 0x0042);
	exchange(&t, &c, &s);
	c.n = s.n = 0;
	pkt(&c, 0, fetch, sizeof(fetch));
	pkt(&s, 1, brow, sizeof(brow));
	eof(&s, 2, 0x0082);
	exchange(&t, &c, &s);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "SELECT big");
	ck_assert_ptr_null(th_span_attr(th_ended(t.h, 0), "db.response.returned_rows"));
	teardown(&t);
}
END_TEST

/* LOAD DATA LOCAL: the client sends the file, then the server says OK. */
START_TEST(test_local_infile)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	uint8_t req[] = { 0xfb, '/', 'f' };

	connect_db(&t, 1, CAPS_BASE, "shop");
	query(&c, MY_COM_QUERY, "LOAD DATA LOCAL INFILE '/f' INTO TABLE t");
	pkt(&s, 1, req, sizeof(req));
	exchange(&t, &c, &s);
	c.n = s.n = 0;
	pkt(&c, 2, "1,TOPSECRET\n", 12);
	pkt(&c, 3, NULL, 0);
	ok(&s, 4, 1, 0x0002);
	exchange(&t, &c, &s);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "LOAD");
	ck_assert_str_eq(str(th_ended(t.h, 0), "db.query.text"),
	                 "LOAD DATA LOCAL INFILE ? INTO TABLE t");
	teardown(&t);
}
END_TEST

/* ---- lost bytes and big packets ----------------------------------------------------------- */

static uint8_t big_answer(struct pk *s, int rows)
{
	uint8_t seq = 1, cc = 2;

	pkt(s, seq++, &cc, 1);
	coldef(s, seq++);
	coldef(s, seq++);
	eof(s, seq++, 0x0002);
	for (int i = 0; i < rows; i++)
		row(s, seq++, "intcol-0123456789-charcol-abcdefghijklmnopqrstuvwxyz");
	eof(s, seq++, 0x0002);
	return seq;
}

/* A big result written in 16 KiB chunks of which 4 KiB were captured: the
 * place is lost in the first, and the last (captured whole) finishes the
 * statement from its final EOF. */
START_TEST(test_dark_tail)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	static struct pk c, s;
	struct sql_stats st;
	size_t off;

	c.n = s.n = 0;
	connect_db(&t, 1, CAPS_BASE, "shop");
	query(&c, MY_COM_QUERY, "SELECT intcol1,charcol1 FROM t1");
	chunk(&t, CL, c.b, c.n);
	big_answer(&s, 600);
	for (off = 0; off + 16384 < s.n; off += 16384)
		chunk_cut(&t, SV, s.b + off, 4096, 16384, 0);
	ck_assert_uint_le(s.n - off, 4096);
	chunk(&t, SV, s.b + off, s.n - off);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_uint_eq(th_ended(t.h, 0)->end_ns, t.ts);
	ck_assert_ptr_null(th_span_attr(th_ended(t.h, 0), "db.response.returned_rows"));
	/* the next command is followed as usual */
	c.n = s.n = 0;
	query(&c, MY_COM_QUERY, "SELECT 1");
	result(&s, 1, 1, 0x0002);
	exchange(&t, &c, &s);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_int_eq(num(th_ended(t.h, 1), "db.response.returned_rows"), 1);
	st = teardown(&t);
	ck_assert_uint_eq(st.dark_done, 1);
	ck_assert_uint_eq(st.sync_lost, 1);
}
END_TEST

/* The last chunk is cut too: the statement ended before the next command,
 * at the last server bytes seen. */
START_TEST(test_dark_next_command)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	static struct pk c, s;
	struct sql_stats st;
	uint64_t last;

	c.n = s.n = 0;
	connect_db(&t, 1, CAPS_BASE, "shop");
	query(&c, MY_COM_QUERY, "SELECT intcol1,charcol1 FROM t1");
	chunk(&t, CL, c.b, c.n);
	big_answer(&s, 600);
	for (size_t off = 0; off < s.n; off += 16384)
		chunk_cut(&t, SV, s.b + off, 4096, s.n - off < 16384 ? s.n - off : 16384, 0);
	last = t.ts;
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	c.n = s.n = 0;
	query(&c, MY_COM_QUERY, "SELECT 1");
	result(&s, 1, 1, 0x0002);
	exchange(&t, &c, &s);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_uint_eq(th_ended(t.h, 0)->end_ns, last);
	st = teardown(&t);
	ck_assert_uint_eq(st.ended_unseen, 1);
}
END_TEST

/* A row bigger than the capture is skipped by its length; a 16 MiB packet
 * and its continuation are one row, and a 16 MiB query one command. */
START_TEST(test_big_packets)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	uint8_t hdr[4 + 64], one = 1;
	struct sql_stats st;

	connect_db(&t, 1, CAPS_BASE, "shop");
	/* a 16 MiB INSERT: 0xffffff bytes, then 100 more */
	hdr[0] = hdr[1] = hdr[2] = 0xff;
	hdr[3] = 0;
	hdr[4] = MY_COM_QUERY;
	memcpy(hdr + 5, "INSERT INTO blobs VALUES ('", 27);
	memset(hdr + 32, 'A', 36);
	chunk_cut(&t, CL, hdr, sizeof(hdr), 4 + 0xffffff, 0);
	pkt(&c, 1, "AAAA')", 6);
	chunk(&t, CL, c.b, c.n);
	ok(&s, 1, 1, 0x0002);
	chunk(&t, SV, s.b, s.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "INSERT blobs");
	ck_assert_str_eq(str(th_ended(t.h, 0), "db.query.text"), "INSERT INTO blobs VALUES (?");
	/* a result with one 16 MiB row (continued) and one 5000-byte row */
	c.n = s.n = 0;
	query(&c, MY_COM_QUERY, "SELECT data FROM blobs");
	chunk(&t, CL, c.b, c.n);
	pkt(&s, 1, &one, 1);
	coldef(&s, 2);
	eof(&s, 3, 0x0002);
	chunk(&t, SV, s.b, s.n);
	hdr[3] = 4;
	hdr[4] = 0xfe; /* a row starting with 0xfe: an 8-byte length */
	chunk_cut(&t, SV, hdr, sizeof(hdr), 4 + 0xffffff, 0);
	s.n = 0;
	pkt(&s, 5, "tail", 4);
	s.b[s.n++] = 0x88;
	s.b[s.n++] = 0x13;
	s.b[s.n++] = 0;
	s.b[s.n++] = 6; /* 5000 bytes, seq 6 */
	chunk_cut(&t, SV, s.b, s.n, s.n + 5000, 0);
	s.n = 0;
	eof(&s, 7, 0x0002);
	chunk(&t, SV, s.b, s.n);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_int_eq(num(th_ended(t.h, 1), "db.response.returned_rows"), 2);
	st = teardown(&t);
	ck_assert_uint_eq(st.sync_lost, 0);
}
END_TEST

START_TEST(test_gap_client)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	struct sql_stats st;

	connect_db(&t, 1, CAPS_BASE, "shop");
	query(&c, MY_COM_QUERY, "SELECT 1");
	result(&s, 1, 1, 0x0002);
	chunk(&t, CL, c.b, c.n);
	chunk_cut(&t, CL, c.b, c.n, c.n, SONDE_CHUNK_GAP);
	chunk(&t, SV, s.b, s.n);
	chunk(&t, SV, s.b, s.n);
	exchange(&t, &c, &s);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	st = teardown(&t);
	ck_assert_uint_eq(st.dropped, 1);
}
END_TEST

/* ---- start-up ---------------------------------------------------------------------------------- */

START_TEST(test_midstream)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	uint8_t exec[] = { MY_COM_STMT_EXECUTE, 3, 0, 0, 0, 0, 1, 0, 0, 0 };
	struct sql_stats st;

	/* the rest of an answer, then an execute of a statement we never saw
	 * prepared, then a query (its result with DEPRECATE_EOF unknown) */
	row(&s, 7, "old");
	eof(&s, 8, 0x0002);
	chunk(&t, SV, s.b, s.n);
	pkt(&c, 0, exec, sizeof(exec));
	s.n = 0;
	ok(&s, 1, 2, 0x0002);
	exchange(&t, &c, &s);
	c.n = s.n = 0;
	query(&c, MY_COM_QUERY, "SELECT a FROM t");
	result(&s, 1, 2, 0x0002);
	exchange(&t, &c, &s);
	ck_assert_uint_eq(th_n_ended(t.h), 2);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "mysql");
	ck_assert_ptr_null(th_span_attr(th_ended(t.h, 0), "db.query.text"));
	ck_assert_int_eq(num(th_ended(t.h, 0), "sonde.db.rows_affected"), 2);
	ck_assert_str_eq(th_ended(t.h, 1)->name, "SELECT t");
	ck_assert_int_eq(num(th_ended(t.h, 1), "db.response.returned_rows"), 2);
	st = teardown(&t);
	ck_assert_uint_eq(st.unknown_stmt, 1);
}
END_TEST

/* The server side of a connection older than the agent: mariadbd reads
 * each packet's 4-byte header, then its payload (two reads, as recorded
 * with strace on MariaDB 10.11), and answers in one write. The executions
 * of a statement prepared before the agent give one span each. */
START_TEST(test_midstream_server_split_reads)
{
	struct t t = setup(SONDE_ROLE_SERVER);
	struct pk c = { .n = 0 }, s = { .n = 0 }, junk = { .n = 0 };
	uint8_t exec[] = { MY_COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 5, 0, 0, 0, 0,
	                   0, 0, 0, 0, 0 };
	struct sql_stats st;

	pkt(&c, 0, exec, sizeof(exec));
	result(&s, 1, 1, 0x0002);
	/* a header-only chunk followed by bytes that are not its payload
	 * (wrong length) is not a start */
	pkt(&junk, 0, "\x03SELECT", 7);
	chunk(&t, CL, c.b, 4);
	chunk(&t, CL, junk.b + 4, 5);
	chunk(&t, SV, s.b, s.n);
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	for (int i = 0; i < 3; i++) {
		chunk(&t, CL, c.b, 4);
		chunk(&t, CL, c.b + 4, c.n - 4);
		chunk(&t, SV, s.b, s.n);
	}
	ck_assert_uint_eq(th_n_ended(t.h), 3);
	for (int i = 0; i < 3; i++) {
		const struct th_span *sp = th_ended(t.h, (size_t)i);

		ck_assert_int_eq(sp->kind, SONDE_SPAN_SERVER);
		ck_assert_str_eq(sp->name, "mysql");
		ck_assert_int_eq(num(sp, "db.response.returned_rows"), 1);
		/* from the header's read (the request's first byte) */
		ck_assert_uint_eq(sp->end_ns - sp->start_ns, 2000);
	}
	st = teardown(&t);
	ck_assert_uint_eq(st.unknown_stmt, 3);
	ck_assert_uint_eq(st.dropped, 0);
}
END_TEST

/* A MariaDB server greeted on one connection is known as MariaDB to a
 * connection to it picked up mid-stream. */
START_TEST(test_midstream_system_remembered)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct sonde_conn_info ci;
	struct pk c = { .n = 0 }, s = { .n = 0 };

	connect_db(&t, 1, CAPS_BASE, "shop");
	th_conn_close(t.c, t.ts);
	th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
	ci.peer_port = 3306;
	snprintf(ci.peer_addr, sizeof(ci.peer_addr), "10.0.0.8");
	t.c = th_conn_open(t.h, &ci);
	query(&c, MY_COM_QUERY, "SELECT 1");
	result(&s, 1, 1, 0x0002);
	exchange(&t, &c, &s);
	ck_assert_str_eq(str(th_ended(t.h, 0), "db.system"), "mariadb");
	teardown(&t);
}
END_TEST

START_TEST(test_tls)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	uint8_t ssl[32] = { 0 };
	uint32_t caps = CAPS_BASE | MY_CLIENT_SSL;
	struct sql_stats st;

	greeting(&t, 1, caps);
	memcpy(ssl, &caps, 4);
	pkt(&c, 1, ssl, sizeof(ssl));
	chunk(&t, CL, c.b, c.n);
	chunk(&t, CL, "\x16\x03\x01\x00\x01\x01", 6); /* ciphertext: ignored */
	chunk(&t, SV, "\x16\x03\x03\x00\x01\x02", 6);
	th_conn_set_tls(t.c);
	handshake(&t, CAPS_BASE, "vault", 2);
	ok(&s, 3, 0, 0x0002);
	chunk(&t, SV, s.b, s.n);
	c.n = s.n = 0;
	query(&c, MY_COM_QUERY, "SELECT 1");
	result(&s, 1, 1, 0x0002);
	exchange(&t, &c, &s);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(str(th_ended(t.h, 0), "db.namespace"), "vault");
	st = teardown(&t);
	ck_assert_uint_eq(st.tls, 1);
}
END_TEST

/* The TLS hooks came after the handshake: the plaintext starts with a
 * command, picked up mid-stream. */
START_TEST(test_tls_late)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	uint8_t ssl[32] = { 0 };
	uint32_t caps = CAPS_BASE | MY_CLIENT_SSL;

	greeting(&t, 1, caps);
	memcpy(ssl, &caps, 4);
	pkt(&c, 1, ssl, sizeof(ssl));
	chunk(&t, CL, c.b, c.n);
	th_conn_set_tls(t.c);
	c.n = 0;
	query(&c, MY_COM_QUERY, "SELECT a FROM t");
	result(&s, 1, 2, 0x0002);
	exchange(&t, &c, &s);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "SELECT t");
	ck_assert_str_eq(str(th_ended(t.h, 0), "db.system"), "mariadb");
	teardown(&t);
}
END_TEST

/* Compression: said once per plugin, counted per connection, not
 * followed. */
START_TEST(test_compression)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct sonde_conn_info ci;
	struct sql_stats st;

	connect_db(&t, 1, CAPS_BASE | MY_CLIENT_COMPRESS, "shop");
	ck_assert_int_eq(th_conn_given_up(t.c), 1);
	th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
	t.c = th_conn_open(t.h, &ci);
	connect_db(&t, 1, CAPS_BASE | MY_CLIENT_COMPRESS, "shop");
	ck_assert_int_eq(th_conn_given_up(t.c), 1);
	ck_assert_uint_eq(th_n_logs(t.h, SONDE_LOG_INFO), 1);
	st = teardown(&t);
	ck_assert_uint_eq(st.compressed, 2);
}
END_TEST

START_TEST(test_auth_failed)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk s = { .n = 0 };
	struct sql_stats st;

	greeting(&t, 1, CAPS_BASE);
	handshake(&t, CAPS_BASE, "shop", 1);
	err(&s, 2, 1045, "28000", "Access denied for user 'alice'@'localhost'");
	chunk(&t, SV, s.b, s.n);
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	st = teardown(&t);
	ck_assert_uint_eq(st.auth_failed, 1);
}
END_TEST

/* ---- privacy and garbage ------------------------------------------------------------------------ */

START_TEST(test_nothing_of_a_value_leaves)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };

	connect_db(&t, 1, CAPS_BASE, "shop");
	query(&c, MY_COM_QUERY, "SELECT * FROM users WHERE pw = \"TOPSECRET1\" AND n = 4242424242");
	err(&s, 1, 1054, "42S22", "Unknown column 'TOPSECRET1' 4242424242");
	exchange(&t, &c, &s);
	for (size_t i = 0; i < th_n_spans(t.h); i++) {
		const struct th_span *sp = th_span(t.h, i);

		ck_assert(!strstr(sp->name, "TOPSECRET"));
		for (size_t k = 0; k < sp->n_attrs; k++)
			ck_assert(sp->attrs[k].type != TH_ATTR_STR ||
			          (!strstr(sp->attrs[k].s, "TOPSECRET") && !strstr(sp->attrs[k].s, "4242") &&
			           !strstr(sp->attrs[k].s, "alice")));
	}
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	teardown(&t);
}
END_TEST

START_TEST(test_garbage)
{
	unsigned seed = 11;

	for (int round = 0; round < 300; round++) {
		struct t t = setup(round % 2 ? SONDE_ROLE_CLIENT : SONDE_ROLE_SERVER);
		uint8_t buf[600];

		if (round % 3 == 0)
			connect_db(&t, round % 2, CAPS_BASE | (round % 5 ? 0 : MY_CLIENT_DEPRECATE_EOF), "x");
		for (int k = 0; k < 40 && !th_conn_given_up(t.c); k++) {
			size_t n = 1 + (seed = seed * 1103515245u + 12345u) % sizeof(buf);

			for (size_t i = 0; i < n; i++) {
				seed = seed * 1103515245u + 12345u;
				buf[i] = (uint8_t)(seed >> 16);
				if ((seed >> 8) % 13 == 0 && i + 5 < n) {
					buf[i] = (uint8_t)((seed >> 20) % 30);
					buf[i + 1] = buf[i + 2] = 0;
					buf[i + 3] = (uint8_t)((seed >> 12) % 4);
					buf[i + 4] = "\x00\xfe\xff\x03\x16\x17\x01\xfb"[(seed >> 24) % 8];
					i += 4;
				}
			}
			chunk_cut(&t, (seed >> 4) & 1, buf, n, n + ((seed >> 9) % 3 == 0 ? 300 : 0),
			          (seed >> 11) % 13 == 0 ? SONDE_CHUNK_GAP : 0);
		}
		teardown(&t);
	}
}
END_TEST

START_TEST(test_detect)
{
	struct th_host *h = th_new();
	struct sonde_conn_info ci;
	struct pk m = { .n = 0 };

	ck_assert_int_eq(th_load(h, sonde_plugin_entry(), "mysql"), SONDE_OK);
	th_conn_info_init(&ci, SONDE_ROLE_CLIENT);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS, my_cli[0].data, my_cli[0].len),
	                 SONDE_DETECT_SURE);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_EGRESS, my_cli[0].data, my_cli[0].len),
	                 SONDE_DETECT_SURE);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_INGRESS, my_cli[0].data, 3),
	                 SONDE_DETECT_NEED_MORE);
	query(&m, MY_COM_QUERY, "SELECT 1");
	ck_assert_int_gt(th_detect(h, &ci, SONDE_DIR_EGRESS, m.b, m.n), 50);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_EGRESS, "GET / HTTP/1.1\r\n\r\n", 18),
	                 SONDE_DETECT_NO);
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_EGRESS, "*1\r\n$4\r\nPING\r\n", 14),
	                 SONDE_DETECT_NO);
	/* a PostgreSQL startup packet */
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_EGRESS, "\0\0\0\x08\x04\xd2\x16/", 8),
	                 SONDE_DETECT_NO);
	m.n = 0;
	query(&m, MY_COM_QUERY, "hello there");
	ck_assert_int_eq(th_detect(h, &ci, SONDE_DIR_EGRESS, m.b, m.n), SONDE_DETECT_NO);
	th_free(h);
}
END_TEST

/* ---- SDK 1.1 ---------------------------------------------------------------------------------- */

/* v10: the plugin as a 1.0 host runs it (th_load_minor: the real host's
 * table cut to its 1.0 size, so no 1.1 member may be used). */

static struct t setup_10(enum sonde_role role, int v10)
{
	struct t t;
	struct sonde_conn_info ci;

	memset(&t, 0, sizeof(t));
	t.h = th_new();
	ck_assert_int_eq(th_load_minor(t.h, sonde_plugin_entry(), "mysql",
	                               v10 ? 0 : SONDE_ABI_MINOR),
	                 SONDE_OK);
	th_conn_info_init(&ci, role);
	ci.local_port = role == SONDE_ROLE_SERVER ? 3306 : 51000;
	ci.peer_port = role == SONDE_ROLE_SERVER ? 40000 : 3306;
	t.c = th_conn_open(t.h, &ci);
	t.role = role;
	t.ts = 1000000;
	return t;
}

static uint64_t wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The server side (mariadbd) asks for a 16 KiB capture; a client does not;
 * a 1.0 host is asked nothing. */
START_TEST(v11_capture_cap_server_side)
{
	struct sonde_capture_policy p;

	for (int v10 = 0; v10 <= 1; v10++) {
		struct t srv = setup_10(SONDE_ROLE_SERVER, v10);

		ck_assert_int_eq(th_conn_capture(srv.c, &p), !v10);
		if (!v10)
			ck_assert_uint_eq(p.cap, 16384);
		teardown(&srv);
		struct t cli = setup_10(SONDE_ROLE_CLIENT, v10);
		ck_assert_int_eq(th_conn_capture(cli.c, &p), 0);
		teardown(&cli);
	}
}
END_TEST

/* Compression: the kernel is asked to mute the connection (the test host
 * has no kernel, so it is also given up the 1.0 way); a replication
 * stream (COM_BINLOG_DUMP) is muted too. A 1.0 host is asked nothing. */
START_TEST(v11_given_up_muted)
{
	for (int v10 = 0; v10 <= 1; v10++) {
		struct t t = setup_10(SONDE_ROLE_CLIENT, v10);
		struct sonde_capture_policy p;
		struct pk c = { .n = 0 };
		uint8_t dump[] = { MY_COM_BINLOG_DUMP, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0 };

		connect_db(&t, 1, CAPS_BASE | MY_CLIENT_COMPRESS, "shop");
		ck_assert_int_eq(th_conn_given_up(t.c), 1);
		ck_assert_int_eq(th_conn_capture(t.c, &p), !v10);
		if (!v10)
			ck_assert_uint_eq(p.flags & SONDE_CAPTURE_MUTE, SONDE_CAPTURE_MUTE);
		teardown(&t);
		t = setup_10(SONDE_ROLE_CLIENT, v10);
		connect_db(&t, 1, CAPS_BASE, "shop");
		pkt(&c, 0, dump, sizeof(dump));
		chunk(&t, CL, c.b, c.n);
		ck_assert_int_eq(th_conn_capture(t.c, &p), !v10);
		if (!v10)
			ck_assert_uint_eq(p.flags & SONDE_CAPTURE_MUTE, SONDE_CAPTURE_MUTE);
		ck_assert_uint_eq(teardown(&t).given_up, 1);
	}
}
END_TEST

/* One read of the test's client process (no payload when skipped). */
static void read_at(struct t *t, uint64_t pos, const void *p, size_t len, size_t orig)
{
	struct sonde_chunk ch = { 0 };

	ch.dir = SONDE_DIR_INGRESS;
	ch.ts_unix_ns = t->ts += 1000;
	ch.data = p;
	ch.len = len;
	ch.orig_len = orig;
	ch.pos = pos;
	if (!p)
		ch.flags = SONDE_CHUNK_SKIPPED | SONDE_CHUNK_TRUNCATED;
	th_conn_feed_chunk(t->c, &ch);
}

/* A row of 200,000 bytes: after the read holding its start, no payload is
 * needed up to its end (skip_to); the reads the kernel skipped are walked
 * by count and the row count stays exact. */
START_TEST(v11_skip_big_row)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	static struct pk c, s;
	struct sonde_capture_policy p;
	const uint32_t big = 200000;
	uint64_t pos = 5000, off, end;
	uint8_t seq = 1, cc = 1;

	c.n = s.n = 0;
	connect_db(&t, 1, CAPS_BASE, "shop");
	query(&c, MY_COM_QUERY, "SELECT doc FROM blobs");
	chunk(&t, CL, c.b, c.n);
	pkt(&s, seq++, &cc, 1);
	coldef(&s, seq++);
	eof(&s, seq++, 0x0002);
	/* the row's header and its first 6000 bytes */
	s.b[s.n++] = (uint8_t)big;
	s.b[s.n++] = (uint8_t)(big >> 8);
	s.b[s.n++] = (uint8_t)(big >> 16);
	s.b[s.n++] = seq++;
	end = pos + s.n + big;
	memset(s.b + s.n, 'r', 6000);
	read_at(&t, pos, s.b, s.n + 6000, s.n + 6000);
	off = s.n + 6000;
	ck_assert_int_eq(th_conn_capture(t.c, &p), 1);
	ck_assert_uint_eq(p.skip_to[SONDE_DIR_INGRESS], end);
	for (; end - (pos + off) > 60000; off += 60000)
		read_at(&t, pos + off, NULL, 0, 60000);
	s.n = (size_t)(end - pos - off);
	memset(s.b, 'r', s.n);
	eof(&s, seq++, 0x0002);
	read_at(&t, pos + off, s.b, s.n, s.n);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_int_eq(num(th_ended(t.h, 0), "db.response.returned_rows"), 1);
	ck_assert_uint_eq(teardown(&t).sync_lost, 0);
}
END_TEST

/* TLS plaintext told by the chunk's source, without conn_info.tls. */
START_TEST(v11_tls_from_chunk_source)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	struct pk c = { .n = 0 }, s = { .n = 0 };
	uint8_t ssl[32] = { 0 };
	uint32_t caps = CAPS_BASE | MY_CLIENT_SSL;
	struct sonde_chunk ch = { 0 };

	greeting(&t, 1, caps);
	memcpy(ssl, &caps, 4);
	pkt(&c, 1, ssl, sizeof(ssl));
	chunk(&t, CL, c.b, c.n);
	chunk(&t, CL, "\x16\x03\x01\x00\x01\x01", 6); /* ciphertext, from the socket */
	c.n = 0;
	query(&c, MY_COM_QUERY, "SELECT 1 FROM t");
	ch.dir = SONDE_DIR_EGRESS;
	ch.ts_unix_ns = t.ts += 1000;
	ch.data = c.b;
	ch.len = ch.orig_len = c.n;
	ch.source = SONDE_SRC_TLS;
	th_conn_feed_chunk(t.c, &ch);
	result(&s, 1, 1, 0x0002);
	ch.dir = SONDE_DIR_INGRESS;
	ch.ts_unix_ns = t.ts += 1000;
	ch.data = s.b;
	ch.len = ch.orig_len = s.n;
	th_conn_feed_chunk(t.c, &ch);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_str_eq(th_ended(t.h, 0)->name, "SELECT t");
	teardown(&t);
}
END_TEST

/* test_dark_next_command without a next command: the timer ends the
 * answer at its last server bytes once the server has been silent for
 * dark_timeout (30 s), not before. */
START_TEST(v11_dark_answer_ended_by_timer)
{
	struct t t = setup(SONDE_ROLE_CLIENT);
	static struct pk c, s;
	uint64_t last;

	c.n = s.n = 0;
	t.ts = wall_now();
	connect_db(&t, 1, CAPS_BASE, "shop");
	query(&c, MY_COM_QUERY, "SELECT intcol1,charcol1 FROM t1");
	chunk(&t, CL, c.b, c.n);
	big_answer(&s, 600);
	for (size_t off = 0; off < s.n; off += 16384) {
		size_t orig = s.n - off < 16384 ? s.n - off : 16384;

		/* every write cut by the capture, the last one too */
		chunk_cut(&t, SV, s.b + off, orig > 4096 ? 4096 : orig / 2, orig, 0);
	}
	last = t.ts;
	th_run_timers(t.h, last + 29ull * 1000000000ull);
	ck_assert_uint_eq(th_n_ended(t.h), 0);
	th_run_timers(t.h, last + 35ull * 1000000000ull);
	ck_assert_uint_eq(th_n_ended(t.h), 1);
	ck_assert_uint_eq(th_ended(t.h, 0)->end_ns, last);
	ck_assert_uint_eq(teardown(&t).ended_unseen, 1);
}
END_TEST

/* ---- same-host links: both ends of a connection watched by one host ------------------------- */

struct ends {
	struct th_host *h;
	struct th_conn *cl, *sv;
	uint64_t ts;
};

/* The client 127.0.0.2:cport and the server 127.0.0.1:3306 of one
 * connection, in one host (v10: a 1.0 host, without span_set_pos). */
static struct ends ends_new(uint16_t cport, int v10)
{
	struct ends e = { .ts = 1000000 };

	e.h = th_new();
	ck_assert_int_eq(th_load_minor(e.h, sonde_plugin_entry(), "mysql", v10 ? 0 : SONDE_ABI_MINOR),
	                 SONDE_OK);
	th_conn_pair(e.h, cport, 3306, &e.cl, &e.sv);
	ck_assert_ptr_nonnull(e.cl);
	ck_assert_ptr_nonnull(e.sv);
	return e;
}

/* The same bytes seen by both ends: side CL is written by the client and
 * read by the server, SV the other way. reader_first: the reading end's
 * chunk comes first. cut (0 < cut < n): the reader reads it in two. */
static void both(struct ends *e, int side, const void *b, size_t n, int reader_first, size_t cut)
{
	struct th_conn *w = side == CL ? e->cl : e->sv, *r = side == CL ? e->sv : e->cl;
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

static void both_play(struct ends *e, const struct vec *v, size_t n, int reader_first)
{
	for (size_t i = 0; i < n; i++)
		both(e, v[i].side, v[i].data, v[i].len, reader_first, 0);
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

/* The recorded sessions (mariadb client, USE, mysql2 prepared statements),
 * either end's chunk first: every statement links. A failed
 * COM_STMT_PREPARE, whose span starts and ends at the error on each end,
 * links when the server's error is read first (its ended span is held for
 * the client's), not when the client's is (a client span does not wait). */
START_TEST(link_recorded_sessions)
{
	static const struct {
		const struct vec *v;
		size_t n, spans;
		uint32_t linked;
	} ss[] = { { my_cli, NV(my_cli), 2, 0x3 },
		   { my_use, NV(my_use), 3, 0x7 },
		   { my_prepared, NV(my_prepared), 8, 0x7f } };
	size_t k = (size_t)_i / 2;
	struct ends e = ends_new((uint16_t)(42000 + _i), 0);

	both_play(&e, ss[k].v, ss[k].n, _i % 2);
	assert_linked_mask(e.h, ss[k].spans,
	                   ss[k].linked | (k == 2 && _i % 2 == 0 ? 0x80u : 0));
	ends_free(&e);
}
END_TEST

/* A multi-statement COM_QUERY read by the server cut at any byte, its
 * results written one at a time, each read before the next is written:
 * every statement links, by where its text starts in the packet. Written
 * at once, the later statements start and end inside one chunk on each
 * end: the server's chunk comes first and its ended spans are held until
 * the client's come, so they link too. */
START_TEST(link_multi_statement_any_split)
{
	struct ends e = ends_new(42100, 0);
	struct pk c = { .n = 0 }, r[3] = { { .n = 0 } }, all = { .n = 0 };
	uint8_t seq;
	int stepwise = _i % 2;

	/* greeting and handshake: replay the recorded ones */
	both_play(&e, my_cli, 3, 0);
	query(&c, MY_COM_QUERY, "SELECT a FROM t1; UPDATE t2 SET x = 5; SELECT 1");
	both(&e, CL, c.b, c.n, 0, (size_t)_i / 2);
	seq = result(&r[0], 1, 3, 0x000a);
	ok(&r[1], seq++, 4, 0x000a);
	result(&r[2], seq, 1, 0x0002);
	for (int i = 0; i < 3; i++) {
		if (stepwise)
			both(&e, SV, r[i].b, r[i].n, 0, 0);
		memcpy(all.b + all.n, r[i].b, r[i].n);
		all.n += r[i].n;
	}
	if (!stepwise)
		both(&e, SV, all.b, all.n, 0, 0);
	assert_linked_mask(e.h, 3, 0x7);
	ends_free(&e);
}
END_TEST

/* What must not link: a command after the server end lost bytes (its
 * place is found again by a guess), and a 1.0 host. */
START_TEST(link_none_after_gap)
{
	struct ends e = ends_new(42200, 0);
	struct pk q1 = { .n = 0 }, q2 = { .n = 0 }, q3 = { .n = 0 }, a = { .n = 0 };

	both_play(&e, my_cli, 3, 0);
	query(&q1, MY_COM_QUERY, "SELECT 1");
	query(&q2, MY_COM_QUERY, "SELECT 2");
	query(&q3, MY_COM_QUERY, "SELECT 3");
	ok(&a, 1, 0, 0x0002);
	both(&e, CL, q1.b, q1.n, 0, 0);
	both(&e, SV, a.b, a.n, 0, 0);
	/* the server end does not see q2: its next chunk (q3) says so */
	th_conn_feed(e.cl, SONDE_DIR_EGRESS, e.ts + 10, q2.b, q2.n);
	th_conn_feed(e.sv, SONDE_DIR_EGRESS, e.ts + 11, a.b, a.n);
	th_conn_feed(e.cl, SONDE_DIR_INGRESS, e.ts + 12, a.b, a.n);
	e.ts += 100;
	th_conn_feed(e.cl, SONDE_DIR_EGRESS, e.ts, q3.b, q3.n);
	th_conn_feed_lossy(e.sv, SONDE_DIR_INGRESS, e.ts + 1, q2.n, q3.b, q3.n, q3.n);
	both(&e, SV, a.b, a.n, 0, 0);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_CLIENT), 3);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_SERVER), 2); /* q1, q3 */
	ck_assert(th_span_child_of(nth_kind(e.h, SONDE_SPAN_SERVER, 0),
	                           nth_kind(e.h, SONDE_SPAN_CLIENT, 0)));
	ck_assert_str_eq(nth_kind(e.h, SONDE_SPAN_SERVER, 1)->parent_span_id, "");
	ck_assert_uint_eq(th_n_links(e.h), 1);
	ends_free(&e);

	e = ends_new(42201, 1);
	both_play(&e, my_cli, NV(my_cli), 0);
	ck_assert_uint_eq(n_kind(e.h, SONDE_SPAN_SERVER), 2);
	ck_assert_str_eq(nth_kind(e.h, SONDE_SPAN_SERVER, 0)->parent_span_id, "");
	ck_assert_uint_eq(th_n_links(e.h), 0);
	ends_free(&e);
}
END_TEST

Suite *mysql_suite(void)
{
	Suite *s = suite_create("mysql_plugin");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_mariadb_client);
	tcase_add_test(tc, test_use_database);
	tcase_add_test(tc, test_mysql2_prepared);
	tcase_add_test(tc, test_server_side);
	tcase_add_test(tc, test_every_split_point);
	tcase_add_test(tc, test_multi_statement);
	tcase_add_test(tc, test_call_results);
	tcase_add_test(tc, test_multi_statement_error);
	tcase_add_test(tc, test_deprecate_eof_and_metadata);
	tcase_add_test(tc, test_prepared_1000);
	tcase_add_test(tc, test_cursor_fetch);
	tcase_add_test(tc, test_local_infile);
	tcase_add_test(tc, test_dark_tail);
	tcase_add_test(tc, test_dark_next_command);
	tcase_add_test(tc, test_big_packets);
	tcase_add_test(tc, test_gap_client);
	tcase_add_test(tc, test_midstream);
	tcase_add_test(tc, test_midstream_server_split_reads);
	tcase_add_test(tc, v11_capture_cap_server_side);
	tcase_add_test(tc, v11_given_up_muted);
	tcase_add_test(tc, v11_skip_big_row);
	tcase_add_test(tc, v11_tls_from_chunk_source);
	tcase_add_test(tc, v11_dark_answer_ended_by_timer);
	tcase_add_test(tc, test_midstream_system_remembered);
	tcase_add_test(tc, test_tls);
	tcase_add_test(tc, test_tls_late);
	tcase_add_test(tc, test_compression);
	tcase_add_test(tc, test_auth_failed);
	tcase_add_test(tc, test_nothing_of_a_value_leaves);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_detect);
	tcase_add_loop_test(tc, link_recorded_sessions, 0, 6);
	tcase_add_loop_test(tc, link_multi_statement_any_split, 0, 2 * 80);
	tcase_add_test(tc, link_none_after_gap);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mysql_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
