/*
 * sql_sanitize.c - one SQL lexer, three uses: the sanitised query text,
 * the operation/collection classifier, and the statement splitter.
 *
 * The one idea: lex() returns the next token and never looks back. A token
 * is white space (comments included), a word, a quoted identifier, a
 * literal, a parameter, one punctuation byte, or STOP (the lexer cannot
 * tell where a literal ends: everything from there on is withheld). The
 * writer turns literals into `?`, the classifier watches the depth-0 words,
 * and the splitter watches the depth-0 semicolons; none of them ever sees
 * the inside of a literal.
 *
 * Dialects: PostgreSQL ("x" identifiers, E'..', U&'..', $tag$..$tag$, $1,
 * nested block comments) and MySQL/MariaDB ("x" strings, `x` identifiers,
 * # and "-- " comments, executable comments (slash-star-bang) whose content
 * is lexed as SQL, 0x.. and 0b.. numbers, ? parameters).
 */
#include "sql_sanitize.h"

#include <string.h>
#include <strings.h>

enum tk {
	TK_END = 0,
	TK_SPACE,  /* white space, comments, control bytes */
	TK_WORD,   /* identifier or keyword */
	TK_QIDENT, /* "x" (PostgreSQL) or `x` (MySQL) */
	TK_LIT,    /* string, number, boolean, bit/hex string, dollar body */
	TK_PARAM,  /* $1 (PostgreSQL), ? (MySQL) */
	TK_PUNCT,  /* one byte */
	TK_STOP,   /* ambiguous literal: stop here */
};

struct tok {
	enum tk t;
	size_t s, e; /* [s, e) in the input */
};

struct lex {
	enum sql_dialect d;
	enum sql_backslash bs;
	const char *p;
	size_t n, i;
	uint8_t exec_comment; /* inside a MySQL executable comment */
	uint8_t complete;     /* the input is the whole statement */
	uint8_t cut;          /* the input ended inside a token */
};

/* ---- character classes ------------------------------------------------- */

static int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int ident_start(const struct lex *lx, unsigned char c)
{
	return is_alpha(c) || c == '_' || c >= 0x80 || (lx->d == SQL_DIALECT_MYSQL && c == '$');
}

static int ident_cont(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '_' || c == '$' || c >= 0x80;
}

static int word_is(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(p, w, n) == 0;
}

static int word_in(const char *p, size_t n, const char *const *list)
{
	for (; *list; list++)
		if (word_is(p, n, *list))
			return 1;
	return 0;
}

/* ---- the lexer ----------------------------------------------------------- */

static size_t skip_line(const struct lex *lx, size_t j)
{
	while (j < lx->n && lx->p[j] != '\n')
		j++;
	return j;
}

/* A block comment from j (at the '/'). PostgreSQL nests them. */
static size_t skip_block(const struct lex *lx, size_t j)
{
	unsigned depth = 1;

	j += 2;
	while (j < lx->n) {
		if (lx->p[j] == '*' && j + 1 < lx->n && lx->p[j + 1] == '/') {
			j += 2;
			if (--depth == 0 || lx->d == SQL_DIALECT_MYSQL)
				return j;
			continue;
		}
		if (lx->d == SQL_DIALECT_PG && lx->p[j] == '/' && j + 1 < lx->n &&
		    lx->p[j + 1] == '*') {
			depth++;
			j += 2;
			continue;
		}
		j++;
	}
	return j;
}

/* End of a quoted run from the opening quote at j, reading a backslash as
 * an escape (esc) or as a plain byte. Returns the index after the closing
 * quote, or n when unterminated (*open set). */
static size_t quoted_end(const struct lex *lx, size_t j, char q, int esc, int *open)
{
	j++;
	while (j < lx->n) {
		char c = lx->p[j];

		if (esc && c == '\\') {
			j += 2;
			continue;
		}
		if (c == q) {
			if (j + 1 < lx->n && lx->p[j + 1] == q) {
				j += 2;
				continue;
			}
			*open = 0;
			return j + 1;
		}
		j++;
	}
	*open = 1;
	return lx->n;
}

/* A string literal from the quote at j, with the escaping mode given.
 * Returns TK_LIT (t->e set) or TK_STOP when the mode is unknown and the
 * two readings end at different places. */
static enum tk lex_string(struct lex *lx, size_t j, char q, enum sql_backslash bs,
                          struct tok *t)
{
	int open_a = 0, open_b = 0;
	size_t a, b;

	if (bs == SQL_BS_ESCAPE || bs == SQL_BS_PLAIN) {
		a = quoted_end(lx, j, q, bs == SQL_BS_ESCAPE, &open_a);
	} else {
		a = quoted_end(lx, j, q, 0, &open_a);
		b = quoted_end(lx, j, q, 1, &open_b);
		if (a != b || open_a != open_b)
			return TK_STOP;
	}
	if (open_a)
		lx->cut = 1;
	t->e = a;
	return TK_LIT;
}

/* $tag$ at j (PostgreSQL): returns the tag length (both dollars
 * included), or 0 when j does not start a dollar quote. */
static size_t dollar_tag(const struct lex *lx, size_t j)
{
	size_t k = j + 1;

	if (k < lx->n && lx->p[k] == '$')
		return 2;
	if (k >= lx->n || !(is_alpha((unsigned char)lx->p[k]) || lx->p[k] == '_' ||
	                    (unsigned char)lx->p[k] >= 0x80))
		return 0;
	while (k < lx->n && lx->p[k] != '$') {
		unsigned char c = (unsigned char)lx->p[k];

		if (!(is_alpha(c) || is_digit(c) || c == '_' || c >= 0x80))
			return 0;
		k++;
	}
	return k < lx->n ? k - j + 1 : 0;
}

static enum tk lex_dollar(struct lex *lx, size_t j, size_t tag, struct tok *t)
{
	const char *tp = lx->p + j;
	size_t k = j + tag;

	while (k + tag <= lx->n) {
		if (lx->p[k] == '$' && memcmp(lx->p + k, tp, tag) == 0) {
			t->e = k + tag;
			return TK_LIT;
		}
		k++;
	}
	lx->cut = 1;
	t->e = lx->n;
	return TK_LIT;
}

static enum tk lex_number(struct lex *lx, size_t j, struct tok *t)
{
	const char *p = lx->p;
	size_t n = lx->n;

	if (p[j] == '0' && j + 1 < n && strchr("xXbBoO", p[j + 1]) && p[j + 1] != '\0') {
		j += 2;
		while (j < n && (is_hex((unsigned char)p[j]) || p[j] == '_'))
			j++;
	} else {
		while (j < n && (is_digit((unsigned char)p[j]) || p[j] == '_'))
			j++;
		if (j < n && p[j] == '.') {
			j++;
			while (j < n && (is_digit((unsigned char)p[j]) || p[j] == '_'))
				j++;
		}
		if (j < n && (p[j] == 'e' || p[j] == 'E')) {
			size_t k = j + 1;

			if (k < n && (p[k] == '+' || p[k] == '-'))
				k++;
			if (k < n && is_digit((unsigned char)p[k])) {
				j = k;
				while (j < n && is_digit((unsigned char)p[j]))
					j++;
			}
		}
	}
	/* Whatever sticks to a number is part of it (MySQL identifiers may
	 * start with a digit; "1abc" is withheld rather than guessed), except
	 * a string prefix: PostgreSQL reads 1E'x' as 1 and then E'x'. */
	while (j < n && ident_cont((unsigned char)p[j])) {
		if (j + 1 < n && strchr("eEbBxXnNuU", p[j]) && (p[j + 1] == '\'' || p[j + 1] == '&'))
			break;
		if (p[j] == '$' && lx->d == SQL_DIALECT_PG)
			break; /* 1$$..$$ is a number then a dollar quote */
		j++;
	}
	if (j == n && !lx->complete)
		lx->cut = 1; /* may go on beyond the captured bytes */
	t->e = j;
	return TK_LIT;
}

static int prefix_string(const struct lex *lx, size_t s, size_t e, enum sql_backslash *bs)
{
	size_t len = e - s;
	char c = lx->p[s];

	if (e >= lx->n || lx->p[e] != '\'' || len != 1)
		return 0;
	if (lx->d == SQL_DIALECT_PG && (c == 'e' || c == 'E')) {
		*bs = SQL_BS_ESCAPE;
		return 1;
	}
	if (strchr("bBxX", c)) {
		*bs = SQL_BS_PLAIN; /* digits only: no escapes */
		return 1;
	}
	if (c == 'n' || c == 'N') {
		*bs = lx->bs; /* national strings escape like plain ones */
		return 1;
	}
	return 0;
}

static enum tk lex_word(struct lex *lx, size_t j, struct tok *t)
{
	const char *p = lx->p;
	size_t s = j;
	enum sql_backslash bs;

	while (j < lx->n && ident_cont((unsigned char)p[j]))
		j++;
	if (prefix_string(lx, s, j, &bs))
		return lex_string(lx, j, '\'', bs, t);
	/* U&'..' (string) and U&".." (identifier), PostgreSQL */
	if (lx->d == SQL_DIALECT_PG && j - s == 1 && (p[s] == 'u' || p[s] == 'U') &&
	    j + 1 < lx->n && p[j] == '&' && (p[j + 1] == '\'' || p[j + 1] == '"')) {
		if (p[j + 1] == '\'')
			return lex_string(lx, j + 1, '\'', SQL_BS_PLAIN, t);
		{
			int open = 0;

			t->e = quoted_end(lx, j + 1, '"', 0, &open);
			if (open)
				lx->cut = 1;
			return TK_QIDENT;
		}
	}
	t->e = j;
	if (j == lx->n && !lx->complete)
		lx->cut = 1; /* a word at the very end may be longer */
	if (word_is(p + s, j - s, "TRUE") || word_is(p + s, j - s, "FALSE"))
		return TK_LIT;
	return TK_WORD;
}

static enum tk lex_space_or_comment(struct lex *lx, size_t j, struct tok *t)
{
	const char *p = lx->p;
	size_t n = lx->n;
	unsigned char c = (unsigned char)p[j];

	if (c == '-' && j + 1 < n && p[j + 1] == '-' &&
	    (lx->d == SQL_DIALECT_PG || j + 2 >= n || (unsigned char)p[j + 2] <= ' ')) {
		t->e = skip_line(lx, j);
		return TK_SPACE;
	}
	if (c == '#' && lx->d == SQL_DIALECT_MYSQL) {
		t->e = skip_line(lx, j);
		return TK_SPACE;
	}
	if (c == '/' && j + 1 < n && p[j + 1] == '*') {
		/* MySQL executable comments: the content is SQL. */
		if (lx->d == SQL_DIALECT_MYSQL && !lx->exec_comment &&
		    ((j + 2 < n && p[j + 2] == '!') ||
		     (j + 3 < n && p[j + 2] == 'M' && p[j + 3] == '!'))) {
			j += p[j + 2] == '!' ? 3 : 4;
			while (j < n && is_digit((unsigned char)p[j]))
				j++;
			lx->exec_comment = 1;
			t->e = j;
			return TK_SPACE;
		}
		t->e = skip_block(lx, j);
		return TK_SPACE;
	}
	if (c == '*' && lx->exec_comment && j + 1 < n && p[j + 1] == '/') {
		lx->exec_comment = 0;
		t->e = j + 2;
		return TK_SPACE;
	}
	if (is_space(c) || c < 0x20 || c == 0x7f) {
		while (j < n && (is_space((unsigned char)p[j]) || (unsigned char)p[j] < 0x20 ||
		                 p[j] == 0x7f))
			j++;
		t->e = j;
		return TK_SPACE;
	}
	return TK_END; /* not space */
}

static enum tk lex(struct lex *lx, struct tok *t)
{
	const char *p = lx->p;
	size_t j = lx->i, n = lx->n;
	unsigned char c;
	enum tk k;

	t->s = j;
	t->e = j;
	if (j >= n)
		return t->t = TK_END;
	c = (unsigned char)p[j];
	k = lex_space_or_comment(lx, j, t);
	if (k != TK_END)
		goto done;
	if (c == '\'') {
		k = lex_string(lx, j, '\'', lx->bs, t);
	} else if (c == '"') {
		if (lx->d == SQL_DIALECT_MYSQL) {
			k = lex_string(lx, j, '"', lx->bs, t);
		} else {
			int open = 0;

			t->e = quoted_end(lx, j, '"', 0, &open);
			lx->cut |= (uint8_t)open;
			k = TK_QIDENT;
		}
	} else if (c == '`' && lx->d == SQL_DIALECT_MYSQL) {
		int open = 0;

		t->e = quoted_end(lx, j, '`', 0, &open);
		lx->cut |= (uint8_t)open;
		k = TK_QIDENT;
	} else if (c == '$' && lx->d == SQL_DIALECT_PG) {
		size_t tag;

		if (j + 1 < n && is_digit((unsigned char)p[j + 1])) {
			j++;
			while (j < n && is_digit((unsigned char)p[j]))
				j++;
			t->e = j;
			k = TK_PARAM;
		} else if ((tag = dollar_tag(lx, j)) > 0) {
			k = lex_dollar(lx, j, tag, t);
		} else {
			/* "$" alone at the end may start a dollar quote */
			int open = j + 1 >= n && !lx->complete;

			lx->cut |= (uint8_t)open;
			t->e = j + 1;
			k = open ? TK_LIT : TK_PUNCT;
		}
	} else if (is_digit(c) || (c == '.' && j + 1 < n && is_digit((unsigned char)p[j + 1]))) {
		k = lex_number(lx, j, t);
	} else if (c == '?' && lx->d == SQL_DIALECT_MYSQL) {
		t->e = j + 1;
		k = TK_PARAM;
	} else if (ident_start(lx, c)) {
		k = lex_word(lx, j, t);
	} else {
		t->e = j + 1;
		k = TK_PUNCT;
	}
done:
	t->t = k;
	if (k != TK_STOP)
		lx->i = t->e;
	return k;
}

static void lex_init(struct lex *lx, enum sql_dialect d, enum sql_backslash bs, const char *in,
                     size_t n, int complete)
{
	memset(lx, 0, sizeof(*lx));
	lx->complete = (uint8_t)(complete != 0);
	lx->d = d;
	lx->bs = bs;
	lx->p = in;
	lx->n = n;
}

/* ---- words ------------------------------------------------------------------ */

static const char *const verbs[] = {
	"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH", "VALUES", "TABLE",
	"REPLACE", "UPSERT", "CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME", "COMMENT",
	"BEGIN", "START", "COMMIT", "ROLLBACK", "END", "ABORT", "SAVEPOINT", "RELEASE",
	"PREPARE", "EXECUTE", "DEALLOCATE", "DECLARE", "FETCH", "MOVE", "CLOSE", "OPEN",
	"SET", "SHOW", "RESET", "USE", "DESCRIBE", "DESC", "EXPLAIN", "ANALYZE", "ANALYSE",
	"VACUUM", "COPY", "GRANT", "REVOKE", "LOCK", "UNLOCK", "LISTEN", "NOTIFY", "UNLISTEN",
	"DO", "CALL", "CHECKPOINT", "CLUSTER", "DISCARD", "IMPORT", "LOAD", "REFRESH",
	"REINDEX", "REASSIGN", "SECURITY", "HANDLER", "OPTIMIZE", "REPAIR", "CHECK",
	"CHECKSUM", "FLUSH", "KILL", "PURGE", "INSTALL", "UNINSTALL", "XA", "SIGNAL",
	"RESIGNAL", "GET", "HELP", "BINLOG", "CACHE", "SHUTDOWN", "RESTART", "BACKUP", NULL,
};

int sql_is_verb(const char *word, size_t n)
{
	return word_in(word, n, verbs);
}

/* Words after which a sign is unary ("WHERE a = -1", "SELECT -1"). */
static const char *const operand_words[] = {
	"SELECT", "WHERE", "AND", "OR", "NOT", "THEN", "ELSE", "WHEN", "VALUES", "SET",
	"BY", "LIMIT", "OFFSET", "RETURN", "IN", "IS", "LIKE", "BETWEEN", "CASE", "INTERVAL",
	"AS", "ON", "HAVING", "DEFAULT", "RETURNING", "ALL", "ANY", "SOME", "DISTINCT", NULL,
};

/* Modifiers between a table keyword and the table name. */
static const char *const table_mods[] = {
	"ONLY", "TABLE", "TABLES", "IF", "NOT", "EXISTS", "LOW_PRIORITY", "QUICK", "IGNORE",
	"DELAYED", "HIGH_PRIORITY", NULL,
};

/* Words that cannot be the table name (something else came). */
static const char *const not_names[] = {
	"SELECT", "WHERE", "SET", "VALUES", "DEFAULT", "FROM", "JOIN", "ON", "USING",
	"GROUP", "ORDER", "LIMIT", "UNION", "WITH", "LATERAL", "STDIN", "STDOUT", "AS", NULL,
};

/* Words that, right after the table name, mean there is another table. */
static const char *const join_words[] = {
	"JOIN", "NATURAL", "CROSS", "LEFT", "RIGHT", "INNER", "FULL", "OUTER",
	"STRAIGHT_JOIN", "UNION", "INTERSECT", "EXCEPT", "MINUS", NULL,
};

static const char *const dml_ops[] = {
	"SELECT", "INSERT", "REPLACE", "UPDATE", "DELETE", "MERGE", "TABLE", "TRUNCATE",
	"COPY", "LOCK", "UPSERT", NULL,
};

static const char *const ddl_ops[] = { "CREATE", "DROP", "ALTER", NULL };

/* ---- classifier --------------------------------------------------------------- */

enum cap_state { CAP_IDLE = 0, CAP_MODS, CAP_NAME, CAP_DOT, CAP_DONE, CAP_FAIL };

struct classifier {
	const struct lex *lx;
	struct sql_class *out;
	unsigned depth;
	uint8_t seen_word;      /* the first word was seen (op decided) */
	uint8_t with;           /* op is WITH, main verb not found yet */
	uint8_t after_close0;   /* previous depth-0 significant token was ')' */
	uint8_t sub;            /* SELECT/VALUES/WITH below depth 0 */
	uint8_t setop;          /* UNION/INTERSECT/EXCEPT at depth 0 */
	uint8_t n_tab;          /* depth-0 table keywords */
	uint8_t tab_is_table;   /* the (first) table keyword was TABLE/TABLES */
	uint8_t tab_paren_ok;   /* '(' may follow the name (INTO, TABLE, COPY) */
	uint8_t use_state;      /* USE db: 1 want name, 2 got name, 3 bad */
	enum cap_state cap;
	uint8_t parts;
	size_t name_s, name_e;
	size_t prev0_s, prev0_e; /* previous depth-0 word */
	uint8_t have_prev0;
};

static int prev0_is(const struct classifier *c, const char *w)
{
	return c->have_prev0 && word_is(c->lx->p + c->prev0_s, c->prev0_e - c->prev0_s, w);
}

static int op_is(const struct classifier *c, const char *w)
{
	return strcmp(c->out->op, w) == 0;
}

static void set_op(struct classifier *c, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && i < SQL_OP_MAX - 1; i++) {
		char ch = p[i];

		c->out->op[i] = (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
	}
	c->out->op[i] = '\0';
}

static void table_keyword(struct classifier *c, int is_table, int paren_ok)
{
	if (c->n_tab < 255)
		c->n_tab++;
	if (c->n_tab > 1) {
		c->cap = CAP_FAIL;
		return;
	}
	c->tab_is_table = (uint8_t)is_table;
	c->tab_paren_ok = (uint8_t)paren_ok;
	c->cap = CAP_MODS;
	c->parts = 0;
}

/* The first word: the operation. */
static void first_word(struct classifier *c, const struct tok *t)
{
	const char *w = c->lx->p + t->s;
	size_t n = t->e - t->s;

	c->seen_word = 1;
	if (!sql_is_verb(w, n) || (c->lx->cut && t->e == c->lx->n))
		return;
	set_op(c, w, n);
	if (op_is(c, "WITH"))
		c->with = 1;
	else if (op_is(c, "UPDATE") || op_is(c, "TRUNCATE") || op_is(c, "LOCK"))
		table_keyword(c, !op_is(c, "UPDATE"), 0);
	else if (op_is(c, "COPY"))
		table_keyword(c, 0, 1);
	else if (op_is(c, "TABLE"))
		table_keyword(c, 1, 0);
	else if (op_is(c, "USE"))
		c->use_state = 1;
}

/* A depth-0 word after the first one. */
static void depth0_word(struct classifier *c, const struct tok *t)
{
	const char *w = c->lx->p + t->s;
	size_t n = t->e - t->s;

	if (c->with && c->after_close0 &&
	    (word_is(w, n, "SELECT") || word_is(w, n, "INSERT") || word_is(w, n, "UPDATE") ||
	     word_is(w, n, "DELETE") || word_is(w, n, "MERGE") || word_is(w, n, "VALUES") ||
	     word_is(w, n, "TABLE"))) {
		set_op(c, w, n);
		c->with = 0;
		c->sub = 1; /* the CTEs name other tables: never a collection */
		return;
	}
	if (word_is(w, n, "UNION") || word_is(w, n, "INTERSECT") || word_is(w, n, "EXCEPT") ||
	    word_is(w, n, "MINUS")) {
		c->setop = 1;
		return;
	}
	if (word_is(w, n, "FROM")) {
		if (!op_is(c, "COPY") && !prev0_is(c, "DISTINCT"))
			table_keyword(c, 0, 0);
	} else if (word_is(w, n, "JOIN") || word_is(w, n, "STRAIGHT_JOIN")) {
		table_keyword(c, 0, 0);
	} else if (word_is(w, n, "INTO")) {
		table_keyword(c, 0, 1);
	} else if (word_is(w, n, "UPDATE")) {
		if (!prev0_is(c, "FOR") && !prev0_is(c, "KEY") && !prev0_is(c, "DO"))
			table_keyword(c, 0, 0);
	} else if (word_is(w, n, "USING")) {
		if (op_is(c, "DELETE") || op_is(c, "MERGE"))
			table_keyword(c, 0, 0);
	} else if (word_is(w, n, "TABLE") || word_is(w, n, "TABLES")) {
		if (c->cap == CAP_MODS && c->parts == 0)
			return; /* TRUNCATE TABLE t, LOCK TABLE t */
		table_keyword(c, 1, 1);
	}
}

/* Follow the table name after a table keyword. */
static void capture(struct classifier *c, const struct tok *t)
{
	const char *w = c->lx->p + t->s;
	size_t n = t->e - t->s;

	switch (c->cap) {
	case CAP_MODS:
		if (t->t == TK_WORD && word_in(w, n, table_mods))
			return;
		if ((t->t == TK_WORD && !word_in(w, n, not_names)) || t->t == TK_QIDENT) {
			c->name_s = t->s;
			c->name_e = t->e;
			c->parts = 1;
			c->cap = CAP_NAME;
			return;
		}
		c->cap = CAP_FAIL;
		return;
	case CAP_NAME:
		if (t->t == TK_PUNCT && w[0] == '.' && t->s == c->name_e && c->parts < 3) {
			c->cap = CAP_DOT;
			return;
		}
		if (t->t == TK_PUNCT && w[0] == ';') {
			c->cap = CAP_DONE;
			return;
		}
		if (t->t == TK_PUNCT && w[0] == '(' && c->tab_paren_ok) {
			c->cap = CAP_DONE;
			return;
		}
		if (t->t == TK_WORD && !word_in(w, n, join_words)) {
			c->cap = CAP_DONE;
			return;
		}
		c->cap = CAP_FAIL;
		return;
	case CAP_DOT:
		if ((t->t == TK_WORD || t->t == TK_QIDENT) && t->s == c->name_e + 1) {
			c->name_e = t->e;
			c->parts++;
			c->cap = CAP_NAME;
			return;
		}
		c->cap = CAP_FAIL;
		return;
	default:
		return;
	}
}

static void use_db(struct classifier *c, const struct tok *t)
{
	const char *w = c->lx->p + t->s;
	size_t n = t->e - t->s, k = 0;

	if (c->use_state == 1 && (t->t == TK_WORD || t->t == TK_QIDENT)) {
		if (t->t == TK_QIDENT) {
			w++;
			n = n >= 2 ? n - 2 : 0;
		}
		for (size_t i = 0; i < n && k < SQL_COLL_MAX - 1; i++) {
			if (t->t == TK_QIDENT && w[i] == '`' && i + 1 < n && w[i + 1] == '`')
				i++;
			c->out->use_db[k++] = w[i];
		}
		c->out->use_db[k] = '\0';
		c->use_state = n > 0 && n < SQL_COLL_MAX ? 2 : 3;
		return;
	}
	if (c->use_state == 2 && t->t == TK_PUNCT && w[0] == ';')
		return;
	c->use_state = 3;
}

static void classify_tok(struct classifier *c, const struct tok *t)
{
	const char *w = c->lx->p + t->s;

	if (t->t == TK_SPACE)
		return;
	if (c->cap == CAP_MODS || c->cap == CAP_NAME || c->cap == CAP_DOT)
		capture(c, t);
	if (c->use_state == 1 || c->use_state == 2)
		use_db(c, t);
	if (t->t == TK_PUNCT && w[0] == '(') {
		c->depth++;
		c->after_close0 = 0;
		return;
	}
	if (t->t == TK_PUNCT && w[0] == ')') {
		if (c->depth > 0)
			c->depth--;
		c->after_close0 = c->depth == 0;
		return;
	}
	if (t->t == TK_WORD && !c->seen_word) {
		first_word(c, t);
	} else if (t->t == TK_WORD && c->depth == 0) {
		depth0_word(c, t);
	} else if (t->t == TK_WORD && (word_is(w, t->e - t->s, "SELECT") ||
	                               word_is(w, t->e - t->s, "VALUES") ||
	                               word_is(w, t->e - t->s, "WITH"))) {
		c->sub = 1;
	}
	if (c->depth == 0) {
		c->after_close0 = 0;
		if (t->t == TK_WORD) {
			c->prev0_s = t->s;
			c->prev0_e = t->e;
			c->have_prev0 = 1;
		}
	}
}

static void classify_end(struct classifier *c, int complete, int stopped)
{
	struct sql_class *o = c->out;
	int name_ok = c->cap == CAP_DONE || (c->cap == CAP_NAME && complete && !stopped);
	size_t n = c->name_e - c->name_s;

	if (c->use_state != 2 || stopped || !complete)
		o->use_db[0] = '\0';
	if (!name_ok || c->n_tab != 1 || c->sub || c->setop || n == 0 || n >= SQL_COLL_MAX)
		return;
	if (word_in(o->op, strlen(o->op), ddl_ops)) {
		if (!c->tab_is_table)
			return;
	} else if (!word_in(o->op, strlen(o->op), dml_ops)) {
		return;
	}
	memcpy(o->coll, c->lx->p + c->name_s, n);
	o->coll[n] = '\0';
}

/* ---- the writer ------------------------------------------------------------------ */

struct writer {
	char *buf;
	size_t cap, len;
	uint8_t full;
	uint8_t space;        /* white space pending */
	uint8_t unary_ok;     /* a sign here would be unary */
	size_t sign_at;       /* output offset of a unary sign just written, or SIZE_MAX */
	/* IN (...) collapsing */
	uint8_t in_state;     /* 0 idle, 1 after IN, 2 inside the list */
	uint8_t in_ok, in_expect;
	unsigned in_items, depth, in_depth;
	size_t in_pos;
};

static void put(struct writer *w, const char *s, size_t n)
{
	if (!w->buf || w->full)
		return;
	if (w->len + n + 1 > w->cap) {
		w->full = 1;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static void in_list_tok(struct writer *w, const struct lex *lx, const struct tok *t)
{
	const char *s = lx->p + t->s;
	int lit = t->t == TK_LIT || (t->t == TK_PARAM && lx->d == SQL_DIALECT_MYSQL);

	if (w->in_state == 1) {
		if (t->t == TK_PUNCT && s[0] == '(') {
			w->in_state = 2;
			w->in_depth = w->depth + 1;
			w->in_ok = 1;
			w->in_expect = 1;
			w->in_items = 0;
			w->in_pos = SIZE_MAX; /* set after '(' is written */
		} else {
			w->in_state = 0;
		}
		return;
	}
	if (lit && w->in_expect) {
		w->in_expect = 0;
		w->in_items++;
	} else if (t->t == TK_PUNCT && (s[0] == '-' || s[0] == '+') && w->in_expect) {
		/* a sign: the literal follows */
	} else if (t->t == TK_PUNCT && s[0] == ',' && !w->in_expect) {
		w->in_expect = 1;
	} else if (!(t->t == TK_PUNCT && s[0] == ')')) {
		w->in_ok = 0;
		w->in_state = 0;
	}
}

static void write_tok(struct writer *w, const struct lex *lx, const struct tok *t)
{
	const char *s = lx->p + t->s;
	size_t n = t->e - t->s;
	int is_sign;

	if (t->t == TK_SPACE) {
		w->space = 1;
		w->sign_at = SIZE_MAX;
		return;
	}
	if (w->in_state)
		in_list_tok(w, lx, t);
	if (t->t == TK_PUNCT && s[0] == ')' && w->in_state == 2 && w->depth == w->in_depth) {
		if (w->in_ok && w->in_items > 0 && !w->in_expect && w->in_pos != SIZE_MAX &&
		    w->buf && !w->full) {
			w->len = w->in_pos;
			w->space = 0;
			put(w, "?", 1);
		}
		w->in_state = 0;
	}
	if (w->space && w->len > 0)
		put(w, " ", 1);
	w->space = 0;
	if (t->t == TK_LIT) {
		if (w->sign_at != SIZE_MAX && w->buf && !w->full)
			w->len = w->sign_at; /* "-1" is one literal */
		put(w, "?", 1);
	} else {
		size_t at = w->len;

		put(w, s, n);
		/* a quoted identifier may hold control bytes: never NUL out */
		for (size_t i = at; t->t == TK_QIDENT && w->buf && !w->full && i < w->len; i++)
			if ((unsigned char)w->buf[i] < 0x20 || w->buf[i] == 0x7f)
				w->buf[i] = '?';
	}
	is_sign = t->t == TK_PUNCT && (s[0] == '-' || s[0] == '+');
	w->sign_at = is_sign && w->unary_ok && !w->full ? w->len - 1 : SIZE_MAX;
	if (t->t == TK_PUNCT && s[0] == '(') {
		w->depth++;
		if (w->in_state == 2 && w->in_pos == SIZE_MAX)
			w->in_pos = w->len;
	} else if (t->t == TK_PUNCT && s[0] == ')' && w->depth > 0) {
		w->depth--;
	}
	if (t->t == TK_WORD && word_is(s, n, "IN"))
		w->in_state = 1;
	/* Where a sign would be unary: after an operator or an opening
	 * bracket or comma, after a keyword expecting an operand, at start. */
	if (t->t == TK_PUNCT)
		w->unary_ok = s[0] != ')' && s[0] != ']';
	else if (t->t == TK_WORD)
		w->unary_ok = (uint8_t)word_in(s, n, operand_words);
	else
		w->unary_ok = 0;
}

/* ---- entry points ------------------------------------------------------------------- */

static size_t run(enum sql_dialect d, enum sql_backslash bs, const char *in, size_t n,
                  int complete, char *out, size_t cap, struct sql_class *cls)
{
	struct lex lx;
	struct tok t;
	struct classifier c;
	struct sql_class dummy;
	struct writer w;
	int stopped = 0;

	if (!cls)
		cls = &dummy;
	memset(cls, 0, sizeof(*cls));
	memset(&c, 0, sizeof(c));
	memset(&w, 0, sizeof(w));
	lex_init(&lx, d, bs, in ? in : "", in ? n : 0, complete);
	c.lx = &lx;
	c.out = cls;
	w.buf = out && cap > 0 ? out : NULL;
	w.cap = cap;
	w.sign_at = SIZE_MAX;
	w.unary_ok = 1;
	for (;;) {
		enum tk k = lex(&lx, &t);

		if (k == TK_END)
			break;
		if (k == TK_STOP) {
			stopped = 1;
			break;
		}
		classify_tok(&c, &t);
		if (!w.buf)
			continue;
		write_tok(&w, &lx, &t);
		if (w.full)
			break;
	}
	/* A trailing sign whose number was cut off stays "-": harmless. */
	if (w.buf) {
		while (w.len > 0 && w.buf[w.len - 1] == ' ')
			w.len--;
		w.buf[w.len] = '\0';
	}
	if (!complete)
		lx.cut = 1;
	classify_end(&c, complete && !lx.cut, stopped || w.full);
	cls->cut = (uint8_t)(stopped || w.full || lx.cut);
	return w.buf ? w.len : 0;
}

size_t sql_sanitize(enum sql_dialect d, enum sql_backslash bs, const char *in, size_t n,
                    int complete, char *out, size_t cap, struct sql_class *cls)
{
	return run(d, bs, in, n, complete, out, cap, cls);
}

void sql_classify(enum sql_dialect d, enum sql_backslash bs, const char *in, size_t n,
                  int complete, struct sql_class *cls)
{
	run(d, bs, in, n, complete, NULL, 0, cls);
}

size_t sql_split(enum sql_dialect d, enum sql_backslash bs, const char *in, size_t n,
                 int complete, struct sql_range *out, size_t max)
{
	struct lex lx;
	struct tok t;
	size_t count = 0, st_s = 0, st_e = 0;
	unsigned depth = 0, words = 0;
	int have = 0;

	if (!complete || !in)
		return 0;
	lex_init(&lx, d, bs, in, n, complete);
	for (;;) {
		enum tk k = lex(&lx, &t);
		const char *s = in + t.s;
		int end = k == TK_END || (k == TK_PUNCT && s[0] == ';' && depth == 0);

		if (k == TK_STOP || lx.cut)
			return 0;
		if (end) {
			if (have) {
				if (count == max)
					return 0;
				out[count].start = st_s;
				out[count].end = st_e;
				count++;
			}
			have = 0;
			words = 0;
			if (k == TK_END)
				break;
			continue;
		}
		if (k == TK_SPACE)
			continue;
		if (!have)
			st_s = t.s;
		have = 1;
		st_e = t.e;
		if (k == TK_PUNCT && s[0] == '(')
			depth++;
		else if (k == TK_PUNCT && s[0] == ')' && depth > 0)
			depth--;
		if (k == TK_WORD && depth == 0) {
			/* Compound bodies hold semicolons of their own. */
			if (word_is(s, t.e - t.s, "ATOMIC") ||
			    (words > 0 && word_is(s, t.e - t.s, "BEGIN")))
				return 0;
			words++;
		}
	}
	return count;
}

int sql_is_blank(enum sql_dialect d, const char *in, size_t n)
{
	struct lex lx;
	struct tok t;

	lex_init(&lx, d, SQL_BS_PLAIN, in, n, 1);
	for (;;) {
		enum tk k = lex(&lx, &t);

		if (k == TK_END)
			return 1;
		if (k != TK_SPACE && !(k == TK_PUNCT && in[t.s] == ';'))
			return 0;
	}
}

int64_t sql_pg_tag(const char *tag, size_t n, char op[SQL_OP_MAX])
{
	static const char *const counted[] = { "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE",
		                               "FETCH",  "MOVE",   "COPY",   NULL };
	size_t w = 0, i;
	int64_t v = -1;

	while (w < n && w < SQL_OP_MAX - 1 && is_alpha((unsigned char)tag[w])) {
		op[w] = (char)(tag[w] >= 'a' && tag[w] <= 'z' ? tag[w] - 32 : tag[w]);
		w++;
	}
	op[w] = '\0';
	if (w == 0 || !word_in(op, w, counted))
		return -1;
	/* the last space-separated field is the count */
	i = n;
	while (i > w && is_digit((unsigned char)tag[i - 1]))
		i--;
	if (i == n || i == w || tag[i - 1] != ' ' || n - i > 18)
		return -1;
	v = 0;
	for (; i < n; i++)
		v = v * 10 + (tag[i] - '0');
	return v;
}
