/*
 * redis_cmd.h - what the Redis plugin knows about command names: the table
 * of commands with special reply rules, safe span names, the db.query.text
 * sanitiser and the error.type of an error reply.
 *
 * The one idea: nothing a client typed leaves the plugin unless it passed
 * through one of these functions, and each of them either picks a constant
 * from the table or keeps only a short [A-Z0-9.] token / a key *shape*.
 */
#ifndef SONDE_REDIS_CMD_H
#define SONDE_REDIS_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "resp.h"

/* Commands whose replies do not follow "one command, one reply". */
enum redis_cmd_kind {
	RCMD_PLAIN = 0,
	RCMD_SUBSCRIBE,    /* one confirmation per channel */
	RCMD_PSUBSCRIBE,
	RCMD_SSUBSCRIBE,
	RCMD_UNSUBSCRIBE,  /* one per channel; no channel: one per subscription */
	RCMD_PUNSUBSCRIBE,
	RCMD_SUNSUBSCRIBE,
	RCMD_SELECT,       /* +OK changes db.namespace */
	RCMD_MULTI,
	RCMD_EXEC,
	RCMD_DISCARD,
	RCMD_MONITOR,      /* +OK, then a stream of +<timestamp> lines */
	RCMD_RESET,        /* +RESET leaves pub/sub and monitor modes, db 0 */
	RCMD_CLIENT,       /* CLIENT REPLY OFF|SKIP suppress replies */
};

/* Flags. */
#define RCMD_F_KEY1 1u      /* the first argument is a key (shown as a shape) */
#define RCMD_F_SECRET 2u    /* arguments never shown, not even as "?" (AUTH, HELLO) */
#define RCMD_F_CONTAINER 4u /* the first argument is a subcommand keyword */

struct redis_cmd_def {
	const char *name;  /* canonical upper-case name */
	uint8_t kind;      /* enum redis_cmd_kind */
	uint8_t flags;     /* RCMD_F_* */
};

/* Case-insensitive lookup of a command name; NULL when unknown. The result
 * is static storage. */
const struct redis_cmd_def *redis_cmd_lookup(const char *p, size_t len);

/* 1 when p[0..len) is a case-insensitive prefix of a known command name
 * (detection of an inline command still being typed). */
int redis_cmd_is_prefix(const char *p, size_t len);

/* 0 when the table is sorted and unique (checked by the unit test). */
int redis_cmd_table_check(void);

#define REDIS_NAME_MAX 24

/* The span name / db.operation.name for a command word: the canonical name
 * of a known command; else, for a module command ("<letters>.<[A-Za-z0-9.]>",
 * at most 20 bytes: FT.SEARCH, JSON.GET), the word upper-cased; else
 * "UNKNOWN" - an unknown plain word may be anything a user typed. out has
 * REDIS_NAME_MAX bytes. */
void redis_cmd_name(const char *p, size_t len, char *out);

#define REDIS_QUERY_MAX 192

/* The opt-in db.query.text of a command: its name, then, depending on the
 * command, a subcommand keyword or the first key's shape, then one "?" per
 * remaining argument (at most 16, then "..."). Key shape: the key split at
 * ':'; a segment of 1..24 letters, '_' or '-' is kept, any other segment
 * (digits, ids, hashes, hash tags, a cut-off tail) becomes '*'. AUTH, HELLO
 * and MIGRATE give their name only. Returns the length written into out
 * (REDIS_QUERY_MAX bytes, NUL-terminated). */
size_t redis_query_text(const struct resp_summary *m, const char *name,
                        const struct redis_cmd_def *d, char *out);

#define REDIS_ERRTYPE_MAX 33

/* error.type of an error reply: its first word when that is an upper-case
 * code ([A-Z][A-Z0-9_]*, at most 32 bytes: ERR, WRONGTYPE, MOVED, NOSCRIPT),
 * else "_OTHER". Never the message. */
void redis_error_type(const char *p, size_t len, char *out);

#endif
