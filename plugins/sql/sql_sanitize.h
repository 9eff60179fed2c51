/*
 * sql_sanitize.h - the SQL sanitiser and statement classifier shared by the
 * PostgreSQL and MySQL/MariaDB parsers of the sql plugin.
 *
 * The one idea: one lexer reads the statement text once, token by token,
 * and everything else follows from its tokens. Literal tokens (strings,
 * numbers, booleans, hex and bit strings, dollar-quoted bodies) are written
 * out as `?`; comments and runs of white space become one space; every
 * other token is copied. The same tokens at parenthesis depth 0 give the
 * operation (the first keyword, or the main verb of WITH) and the
 * collection (only when the statement names exactly one simple table), and
 * the depth-0 semicolons split a query string into statements.
 *
 * When the lexer cannot be sure where a literal ends (a backslash inside
 * '...' while the server's escaping mode is unknown, with the two readings
 * ending at different places), the output stops there: a cut query text is
 * better than one that may hold a piece of a value.
 *
 * Pure functions on caller buffers: no allocation, no global state, no
 * recursion. Bounded by the input length.
 */
#ifndef SONDE_SQL_SANITIZE_H
#define SONDE_SQL_SANITIZE_H

#include <stddef.h>
#include <stdint.h>

enum sql_dialect {
	SQL_DIALECT_PG = 0,    /* "x" identifier, $1 params, $$ dollar quotes, nested comments */
	SQL_DIALECT_MYSQL = 1, /* "x" string, `x` identifier, ? params, # comments, 0x.. hex */
};

/* What a backslash inside '...' means. PostgreSQL: standard_conforming_strings
 * (reported by the server in ParameterStatus); MySQL: NO_BACKSLASH_ESCAPES
 * (reported in the status flags of OK/EOF packets). */
enum sql_backslash {
	SQL_BS_UNKNOWN = 0, /* either: stop the output where the readings differ */
	SQL_BS_ESCAPE = 1,  /* \' escapes the quote */
	SQL_BS_PLAIN = 2,   /* a backslash is an ordinary character */
};

#define SQL_OP_MAX 24    /* "SELECT", "INSERT", ... with NUL */
#define SQL_COLL_MAX 128 /* a table name as written, with NUL */

/* What the classifier found. An empty string means "not known": such an
 * attribute is left out, never guessed. */
struct sql_class {
	char op[SQL_OP_MAX];     /* upper-cased statement verb from a fixed list */
	char coll[SQL_COLL_MAX]; /* the one simple table, as written (quotes kept) */
	char use_db[SQL_COLL_MAX]; /* `USE db` (MySQL): the database, unquoted */
	uint8_t cut;             /* the text was cut (input partial, ambiguity, or cap) */
};

struct sql_range {
	size_t start, end;
};

/*
 * Sanitise in[0..n) into out (at most cap-1 bytes plus a NUL) and classify
 * it. `complete` is 0 when the input is only the first part of the
 * statement (the capture cut it): then a token touching the end is never
 * taken as a table name. Returns the length written. `cls` may be NULL.
 */
size_t sql_sanitize(enum sql_dialect d, enum sql_backslash bs, const char *in, size_t n,
                    int complete, char *out, size_t cap, struct sql_class *cls);

/* Classify only (no output text). */
void sql_classify(enum sql_dialect d, enum sql_backslash bs, const char *in, size_t n,
                  int complete, struct sql_class *cls);

/*
 * Split a query string into its statements at depth-0 semicolons; empty
 * statements (only white space and comments) are left out. Returns the
 * number of statements written to out (at most max), or 0 when the text
 * should not be split: it holds a compound body (BEGIN ... END inside a
 * CREATE, BEGIN ATOMIC, BEGIN NOT ATOMIC), an ambiguous literal, more than
 * max statements, or it is incomplete.
 */
size_t sql_split(enum sql_dialect d, enum sql_backslash bs, const char *in, size_t n,
                 int complete, struct sql_range *out, size_t max);

/* 1 if the text holds no statement (white space, comments, semicolons). */
int sql_is_blank(enum sql_dialect d, const char *in, size_t n);

/* The verb of a PostgreSQL CommandComplete tag ("INSERT 0 5" -> "INSERT",
 * "CREATE TABLE" -> "CREATE") copied to op; returns the row count the tag
 * carries (SELECT, INSERT, UPDATE, DELETE, MERGE, FETCH, MOVE, COPY) or -1. */
int64_t sql_pg_tag(const char *tag, size_t n, char op[SQL_OP_MAX]);

/* 1 if op is a statement verb of the fixed list (used for resync checks). */
int sql_is_verb(const char *word, size_t n);

#endif
