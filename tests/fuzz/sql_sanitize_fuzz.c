/*
 * sql_sanitize_fuzz.c - libFuzzer harness for the sql plugin's sanitiser
 * (plugins/sql/sql_sanitize.c).
 *
 * The one idea: two properties. (1) Any bytes, any dialect and escaping
 * mode, cut or whole: no crash, a NUL-terminated output within its bound,
 * a classification within its bounds, splits inside the input. (2) The
 * input also drives a generator of statements made of whole tokens in
 * which every literal carries a marker (MRK, or the digits 7319); the
 * marker must never appear in the output, of the whole statement or of any
 * prefix, in the generation's mode or in the unknown mode.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sql_sanitize.h"

static void check_any(const uint8_t *p, size_t n)
{
	static char out[8192];
	struct sql_range r[16];
	struct sql_class c;
	int d = n ? p[0] & 1 : 0, bs = n ? (p[0] >> 1) % 3 : 0, complete = n ? (p[0] >> 3) & 1 : 1;
	size_t cap = n ? 1 + (p[0] >> 4) * 100 : 1, len;

	if (n)
		p++, n--;
	len = sql_sanitize(d, bs, (const char *)p, n, complete, out, cap, &c);
	if (len >= cap || out[len] != '\0' || strlen(out) != len)
		__builtin_trap();
	if (strlen(c.op) >= SQL_OP_MAX || strlen(c.coll) >= SQL_COLL_MAX)
		__builtin_trap();
	len = sql_split(d, bs, (const char *)p, n, complete, r, 16);
	for (size_t i = 0; i < len; i++)
		if (r[i].start >= r[i].end || r[i].end > n)
			__builtin_trap();
	sql_is_blank(d, (const char *)p, n);
}

struct gen {
	const uint8_t *p;
	size_t n, i;
	char s[4096];
	size_t len;
};

static unsigned pick(struct gen *g, unsigned k)
{
	return g->i < g->n ? g->p[g->i++] % k : 0;
}

static void add(struct gen *g, const char *s)
{
	size_t l = strlen(s);

	if (g->len + l + 1 < sizeof(g->s)) {
		memcpy(g->s + g->len, s, l);
		g->len += l;
		g->s[g->len] = '\0';
	}
}

static const char *const words[] = {
	"SELECT", "FROM", "WHERE", "t", "IN", "E", "X", "N", "B", "U&", "INSERT", "INTO", "VALUES",
	"UPDATE", "SET", "WITH", "AS", "_utf8mb4", "a1", "USE", "BEGIN", "ATOMIC", "TRUE", "NULL",
	"\"q\"", "`b`", "\"we\"\"ird\"",
};
static const char *const puncts[] = {
	"(", ")", ",", "-", "+", "*", "/", ";", ".", "=", ":", "::", "$", "?", "@", "#", "--", "/*",
	"*/", "/*!", "/*M!", "\n", "\\", "''", "\"\"", "$$", "$a$",
};

static void literal(struct gen *g, int d, int bs, unsigned m)
{
	char t[128];

	switch (pick(g, 12)) {
	case 0: snprintf(t, sizeof t, "'MRK%u'", m); break;
	case 1: snprintf(t, sizeof t, "'x''MRK%u'", m); break;
	case 2: snprintf(t, sizeof t, "-7319%u", m); break;
	case 3: snprintf(t, sizeof t, "7319%u.5e-3", m); break;
	case 4: snprintf(t, sizeof t, "X'7319%u'", m); break;
	case 5: snprintf(t, sizeof t, "0x7319%u", m); break;
	case 6: snprintf(t, sizeof t, "'%sMRK%u'", bs == SQL_BS_ESCAPE ? "\\'\\\\" : "''", m); break;
	case 7: snprintf(t, sizeof t, "/* MRK%u */", m); break;
	case 8: snprintf(t, sizeof t, "-- MRK%u\n", m); break;
	case 9:
		if (d == SQL_DIALECT_PG)
			snprintf(t, sizeof t, "E'\\'MRK%u\\\\'", m);
		else
			snprintf(t, sizeof t, "\"MRK%u%s\"", m, bs == SQL_BS_ESCAPE ? "\\\"" : "\"\"");
		break;
	case 10:
		snprintf(t, sizeof t, d == SQL_DIALECT_PG ? "$z$ MRK%u $y$ $z$" : "'MRK%u'", m);
		break;
	default: snprintf(t, sizeof t, "N'MRK%u'", m); break;
	}
	add(g, t);
}

static int leaked(const char *s)
{
	return strstr(s, "MRK") || strstr(s, "7319");
}

static void check_markers(const uint8_t *p, size_t n)
{
	static struct gen g;
	static char out[4096];
	struct sql_class c;
	int d, gen_bs, bs;
	unsigned m = 1;

	if (n < 2)
		return;
	d = p[0] & 1;
	gen_bs = (p[0] >> 1) & 1 ? SQL_BS_ESCAPE : SQL_BS_PLAIN;
	if (d == SQL_DIALECT_PG && gen_bs == SQL_BS_ESCAPE && ((p[0] >> 2) & 1))
		gen_bs = SQL_BS_PLAIN;
	g.p = p + 1;
	g.n = n - 1;
	g.i = 0;
	g.len = 0;
	g.s[0] = '\0';
	while (g.i < g.n && g.len < 2000) {
		unsigned k = pick(&g, 3);

		if (k == 0)
			literal(&g, d, gen_bs, m++);
		else if (k == 1)
			add(&g, words[pick(&g, sizeof(words) / sizeof(words[0]))]);
		else
			add(&g, puncts[pick(&g, sizeof(puncts) / sizeof(puncts[0]))]);
		add(&g, " ");
	}
	/* No token opens a quote it does not close, except comment and
	 * dollar-quote openers, whose closers inside a marked literal come
	 * after its marker: every marker stays inside a literal or comment. */
	for (int mode = 0; mode < 2; mode++) {
		bs = mode ? SQL_BS_UNKNOWN : gen_bs;
		for (size_t cut = 0; cut <= g.len; cut += 1 + cut / 16) {
			sql_sanitize(d, bs, g.s, cut, cut == g.len, out, sizeof(out), &c);
			if (leaked(out) || leaked(c.coll))
				__builtin_trap();
		}
		sql_sanitize(d, bs, g.s, g.len, 1, out, sizeof(out), &c);
		if (leaked(out) || leaked(c.coll))
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_any(data, size);
	check_markers(data, size);
	return 0;
}
