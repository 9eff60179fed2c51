/*
 * redis_cmd.c - the command table and the functions that turn client bytes
 * into exportable names (span name, db.query.text, error.type).
 *
 * The table is sorted by name (strcmp order, checked by the unit test).
 * Lookups upper-case the word into a small buffer and find it through an
 * open-addressing hash index over the table, built once (a binary search
 * cost eight string compares per command, a tenth of the agent's time on
 * pipelined Redis).
 * It lists the commands of Redis 7 that matter for naming and privacy:
 * which ones take a key first, which ones take a subcommand, which ones
 * carry secrets, and which ones do not follow "one command, one reply".
 * A command missing from the table still works: it is named by its
 * sanitised token and all its arguments become "?".
 */
#include "redis_cmd.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct redis_cmd_def cmd_table[] = {
	{ "ACL", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "APPEND", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ASKING", RCMD_PLAIN, 0 },
	{ "AUTH", RCMD_PLAIN, RCMD_F_SECRET },
	{ "BGREWRITEAOF", RCMD_PLAIN, 0 },
	{ "BGSAVE", RCMD_PLAIN, 0 },
	{ "BITCOUNT", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "BITFIELD", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "BITFIELD_RO", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "BITOP", RCMD_PLAIN, 0 },
	{ "BITPOS", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "BLMOVE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "BLMPOP", RCMD_PLAIN, 0 },
	{ "BLPOP", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "BRPOP", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "BRPOPLPUSH", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "BZMPOP", RCMD_PLAIN, 0 },
	{ "BZPOPMAX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "BZPOPMIN", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "CLIENT", RCMD_CLIENT, RCMD_F_CONTAINER },
	{ "CLUSTER", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "COMMAND", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "CONFIG", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "COPY", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "DBSIZE", RCMD_PLAIN, 0 },
	{ "DEBUG", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "DECR", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "DECRBY", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "DEL", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "DISCARD", RCMD_DISCARD, 0 },
	{ "DUMP", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ECHO", RCMD_PLAIN, 0 },
	{ "EVAL", RCMD_PLAIN, 0 },
	{ "EVALSHA", RCMD_PLAIN, 0 },
	{ "EVALSHA_RO", RCMD_PLAIN, 0 },
	{ "EVAL_RO", RCMD_PLAIN, 0 },
	{ "EXEC", RCMD_EXEC, 0 },
	{ "EXISTS", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "EXPIRE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "EXPIREAT", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "EXPIRETIME", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "FAILOVER", RCMD_PLAIN, 0 },
	{ "FCALL", RCMD_PLAIN, 0 },
	{ "FCALL_RO", RCMD_PLAIN, 0 },
	{ "FLUSHALL", RCMD_PLAIN, 0 },
	{ "FLUSHDB", RCMD_PLAIN, 0 },
	{ "FUNCTION", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "GEOADD", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GEODIST", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GEOHASH", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GEOPOS", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GEORADIUS", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GEORADIUSBYMEMBER", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GEORADIUSBYMEMBER_RO", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GEORADIUS_RO", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GEOSEARCH", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GEOSEARCHSTORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GET", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GETBIT", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GETDEL", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GETEX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GETRANGE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "GETSET", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HDEL", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HELLO", RCMD_PLAIN, RCMD_F_SECRET },
	{ "HEXISTS", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HEXPIRE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HGET", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HGETALL", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HINCRBY", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HINCRBYFLOAT", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HKEYS", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HLEN", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HMGET", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HMSET", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HPERSIST", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HRANDFIELD", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HSCAN", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HSET", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HSETNX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HSTRLEN", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HTTL", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "HVALS", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "INCR", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "INCRBY", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "INCRBYFLOAT", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "INFO", RCMD_PLAIN, 0 },
	{ "KEYS", RCMD_PLAIN, 0 },
	{ "LASTSAVE", RCMD_PLAIN, 0 },
	{ "LATENCY", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "LCS", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "LINDEX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "LINSERT", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "LLEN", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "LMOVE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "LMPOP", RCMD_PLAIN, 0 },
	{ "LOLWUT", RCMD_PLAIN, 0 },
	{ "LPOP", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "LPOS", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "LPUSH", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "LPUSHX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "LRANGE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "LREM", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "LSET", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "LTRIM", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "MEMORY", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "MGET", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "MIGRATE", RCMD_PLAIN, RCMD_F_SECRET },
	{ "MODULE", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "MONITOR", RCMD_MONITOR, 0 },
	{ "MOVE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "MSET", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "MSETNX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "MULTI", RCMD_MULTI, 0 },
	{ "OBJECT", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "PERSIST", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "PEXPIRE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "PEXPIREAT", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "PEXPIRETIME", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "PFADD", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "PFCOUNT", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "PFMERGE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "PING", RCMD_PLAIN, 0 },
	{ "PSETEX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "PSUBSCRIBE", RCMD_PSUBSCRIBE, 0 },
	{ "PSYNC", RCMD_PLAIN, 0 },
	{ "PTTL", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "PUBLISH", RCMD_PLAIN, 0 },
	{ "PUBSUB", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "PUNSUBSCRIBE", RCMD_PUNSUBSCRIBE, 0 },
	{ "QUIT", RCMD_PLAIN, 0 },
	{ "RANDOMKEY", RCMD_PLAIN, 0 },
	{ "READONLY", RCMD_PLAIN, 0 },
	{ "READWRITE", RCMD_PLAIN, 0 },
	{ "RENAME", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "RENAMENX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "REPLICAOF", RCMD_PLAIN, 0 },
	{ "RESET", RCMD_RESET, 0 },
	{ "RESTORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ROLE", RCMD_PLAIN, 0 },
	{ "RPOP", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "RPOPLPUSH", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "RPUSH", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "RPUSHX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SADD", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SAVE", RCMD_PLAIN, 0 },
	{ "SCAN", RCMD_PLAIN, 0 },
	{ "SCARD", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SCRIPT", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "SDIFF", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SDIFFSTORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SELECT", RCMD_SELECT, 0 },
	{ "SET", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SETBIT", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SETEX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SETNX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SETRANGE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SHUTDOWN", RCMD_PLAIN, 0 },
	{ "SINTER", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SINTERCARD", RCMD_PLAIN, 0 },
	{ "SINTERSTORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SISMEMBER", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SLAVEOF", RCMD_PLAIN, 0 },
	{ "SLOWLOG", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "SMEMBERS", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SMISMEMBER", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SMOVE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SORT", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SORT_RO", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SPOP", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SPUBLISH", RCMD_PLAIN, 0 },
	{ "SRANDMEMBER", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SREM", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SSCAN", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SSUBSCRIBE", RCMD_SSUBSCRIBE, 0 },
	{ "STRLEN", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SUBSCRIBE", RCMD_SUBSCRIBE, 0 },
	{ "SUBSTR", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SUNION", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SUNIONSTORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "SUNSUBSCRIBE", RCMD_SUNSUBSCRIBE, 0 },
	{ "SWAPDB", RCMD_PLAIN, 0 },
	{ "SYNC", RCMD_PLAIN, 0 },
	{ "TIME", RCMD_PLAIN, 0 },
	{ "TOUCH", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "TTL", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "TYPE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "UNLINK", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "UNSUBSCRIBE", RCMD_UNSUBSCRIBE, 0 },
	{ "UNWATCH", RCMD_PLAIN, 0 },
	{ "WAIT", RCMD_PLAIN, 0 },
	{ "WAITAOF", RCMD_PLAIN, 0 },
	{ "WATCH", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "XACK", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "XADD", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "XAUTOCLAIM", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "XCLAIM", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "XDEL", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "XGROUP", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "XINFO", RCMD_PLAIN, RCMD_F_CONTAINER },
	{ "XLEN", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "XPENDING", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "XRANGE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "XREAD", RCMD_PLAIN, 0 },
	{ "XREADGROUP", RCMD_PLAIN, 0 },
	{ "XREVRANGE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "XSETID", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "XTRIM", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZADD", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZCARD", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZCOUNT", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZDIFF", RCMD_PLAIN, 0 },
	{ "ZDIFFSTORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZINCRBY", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZINTER", RCMD_PLAIN, 0 },
	{ "ZINTERCARD", RCMD_PLAIN, 0 },
	{ "ZINTERSTORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZLEXCOUNT", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZMPOP", RCMD_PLAIN, 0 },
	{ "ZMSCORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZPOPMAX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZPOPMIN", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZRANDMEMBER", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZRANGE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZRANGEBYLEX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZRANGEBYSCORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZRANGESTORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZRANK", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZREM", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZREMRANGEBYLEX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZREMRANGEBYRANK", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZREMRANGEBYSCORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZREVRANGE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZREVRANGEBYLEX", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZREVRANGEBYSCORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZREVRANK", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZSCAN", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZSCORE", RCMD_PLAIN, RCMD_F_KEY1 },
	{ "ZUNION", RCMD_PLAIN, 0 },
	{ "ZUNIONSTORE", RCMD_PLAIN, RCMD_F_KEY1 },
};

#define N_CMDS (sizeof(cmd_table) / sizeof(cmd_table[0]))

/* Slots of the hash index: a power of two, at least twice the table. */
#define CMD_SLOTS 1024

static uint16_t cmd_index[CMD_SLOTS]; /* 1 + table position; 0 empty */
static pthread_once_t cmd_index_once = PTHREAD_ONCE_INIT;

static uint32_t name_hash(const char *p, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

static void cmd_index_build(void)
{
	_Static_assert(N_CMDS * 2 <= CMD_SLOTS, "command hash index too small");
	for (size_t i = 0; i < N_CMDS; i++) {
		uint32_t j = name_hash(cmd_table[i].name, strlen(cmd_table[i].name));

		while (cmd_index[j & (CMD_SLOTS - 1)])
			j++;
		cmd_index[j & (CMD_SLOTS - 1)] = (uint16_t)(i + 1);
	}
}

/* Upper-case a word into out (REDIS_NAME_MAX bytes). -1 when too long or
 * empty. */
static int upper_word(const char *p, size_t len, char *out)
{
	if (len == 0 || len >= REDIS_NAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		out[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
	}
	out[len] = '\0';
	return 0;
}

const struct redis_cmd_def *redis_cmd_lookup(const char *p, size_t len)
{
	char up[REDIS_NAME_MAX];

	if (upper_word(p, len, up) < 0)
		return NULL;
	pthread_once(&cmd_index_once, cmd_index_build);
	for (uint32_t j = name_hash(up, len);; j++) {
		uint16_t at = cmd_index[j & (CMD_SLOTS - 1)];

		if (!at)
			return NULL;
		if (!strcmp(cmd_table[at - 1].name, up))
			return &cmd_table[at - 1];
	}
}

int redis_cmd_is_prefix(const char *p, size_t len)
{
	for (size_t i = 0; i < N_CMDS; i++) {
		if (strlen(cmd_table[i].name) >= len && strncasecmp(cmd_table[i].name, p, len) == 0)
			return 1;
	}
	return 0;
}

int redis_cmd_table_check(void)
{
	for (size_t i = 1; i < N_CMDS; i++) {
		if (strcmp(cmd_table[i - 1].name, cmd_table[i].name) >= 0)
			return -1;
	}
	return 0;
}

static int is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A module command: "<letters>.<letters or digits or dots>", e.g. FT.SEARCH,
 * JSON.GET, BF.ADD. Plain unknown words are not exported: they may be
 * anything a user typed (a password pasted at the wrong prompt). */
static int module_token(const char *p, size_t len)
{
	size_t i = 0;

	if (len > 20)
		return 0;
	while (i < len && is_alpha(p[i]))
		i++;
	if (i == 0 || i + 1 >= len || p[i] != '.')
		return 0;
	for (i++; i < len; i++) {
		if (!is_alpha(p[i]) && !is_digit(p[i]) && p[i] != '.')
			return 0;
	}
	return 1;
}

void redis_cmd_name(const char *p, size_t len, char *out)
{
	const struct redis_cmd_def *d = redis_cmd_lookup(p, len);

	if (d) {
		size_t n = strlen(d->name);

		if (n >= REDIS_NAME_MAX)
			n = REDIS_NAME_MAX - 1;
		memcpy(out, d->name, n);
		out[n] = '\0';
		return;
	}
	if (module_token(p, len)) {
		upper_word(p, len, out);
		return;
	}
	snprintf(out, REDIS_NAME_MAX, "UNKNOWN");
}

/* Append s to out (REDIS_QUERY_MAX bytes) at *off, truncating. */
static void put(char *out, size_t *off, const char *s, size_t n)
{
	if (*off + n >= REDIS_QUERY_MAX)
		n = REDIS_QUERY_MAX - 1 - *off;
	memcpy(out + *off, s, n);
	*off += n;
	out[*off] = '\0';
}

static int keep_segment(const char *p, size_t n)
{
	if (n > 24)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_alpha(p[i]) && p[i] != '_' && p[i] != '-')
			return 0;
	}
	return 1;
}

/* The shape of a key copy: word segments kept, everything else '*'. A key
 * that was not copied whole has its last (cut) segment replaced too. */
static void put_key_shape(char *out, size_t *off, const struct resp_copy *k)
{
	int cut = k->lost || k->full_len > k->len;
	size_t start = 0;

	if (k->len == 0) {
		put(out, off, "*", 1);
		return;
	}
	for (size_t i = 0; i <= k->len; i++) {
		int last = i == k->len;

		if (!last && k->buf[i] != ':')
			continue;
		if (start > 0)
			put(out, off, ":", 1);
		if (keep_segment(k->buf + start, i - start) && !(last && cut))
			put(out, off, k->buf + start, i - start);
		else
			put(out, off, "*", 1);
		start = i + 1;
	}
}

/* A subcommand keyword is shown when it looks like one. */
static void put_subcommand(char *out, size_t *off, const struct resp_copy *a)
{
	char up[REDIS_NAME_MAX];

	if (!a->lost && a->full_len == a->len && keep_segment(a->buf, a->len) &&
	    upper_word(a->buf, a->len, up) == 0) {
		put(out, off, up, strlen(up));
		return;
	}
	put(out, off, "?", 1);
}

size_t redis_query_text(const struct resp_summary *m, const char *name,
                        const struct redis_cmd_def *d, char *out)
{
	int64_t n = m->n; /* words, command name included */
	int64_t shown = 1;
	size_t off = 0;

	out[0] = '\0';
	put(out, &off, name, strlen(name));
	if (d && (d->flags & RCMD_F_SECRET))
		return off;
	if (n >= 2 && d && (d->flags & (RCMD_F_KEY1 | RCMD_F_CONTAINER)) &&
	    m->args[1].present && m->args[1].type == RESP_BULK) {
		put(out, &off, " ", 1);
		if (d->flags & RCMD_F_KEY1)
			put_key_shape(out, &off, &m->args[1]);
		else
			put_subcommand(out, &off, &m->args[1]);
		shown = 2;
	}
	for (int64_t i = shown; i < n; i++) {
		if (i - shown == 16) {
			put(out, &off, " ...", 4);
			break;
		}
		put(out, &off, " ?", 2);
	}
	return off;
}

void redis_error_type(const char *p, size_t len, char *out)
{
	size_t n = 0;

	while (n < len && p[n] != ' ')
		n++;
	if (n == 0 || n >= REDIS_ERRTYPE_MAX || !(p[0] >= 'A' && p[0] <= 'Z'))
		goto other;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (!(c >= 'A' && c <= 'Z') && !is_digit(c) && c != '_')
			goto other;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	return;
other:
	snprintf(out, REDIS_ERRTYPE_MAX, "_OTHER");
}
