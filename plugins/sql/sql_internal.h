/*
 * sql_internal.h - what the PostgreSQL and MySQL halves of the sql plugin
 * share: the plugin state, prepared-statement records, span helpers and
 * counters. Not part of the plugin's ABI: the agent only ever sees
 * sonde_plugin_entry(). Unit tests and fuzz harnesses link these sources
 * directly and read the counters through sql_debug_totals().
 *
 * The one idea: a protocol decoder decides WHEN an operation starts and
 * ends and what the server said; everything about HOW it becomes a span
 * (name, attributes, metric, late start when the host refuses a span) is
 * here, once, for both protocols.
 */
#ifndef SONDE_SQL_INTERNAL_H
#define SONDE_SQL_INTERNAL_H

#include <sonde/plugin.h>

#include <stddef.h>
#include <stdint.h>

#include "sql_sanitize.h"

/* ---- counters ----------------------------------------------------------------- */

struct sql_stats {
	uint64_t ops;            /* operations seen (statements, executes) */
	uint64_t spans;          /* spans ended */
	uint64_t errors;         /* of which: with an error from the server */
	uint64_t dropped;        /* operations that got no span (loss, close, overflow) */
	uint64_t unmatched;      /* responses with nothing pending */
	uint64_t sync_lost;      /* times a direction lost its place */
	uint64_t resyncs;        /* times a direction found a boundary again */
	uint64_t dark_done;      /* responses finished from their tail after a loss */
	uint64_t ended_unseen;   /* responses whose end was never seen (ended at next request) */
	uint64_t unknown_stmt;   /* executes of statements prepared before we joined */
	uint64_t stmt_evicted;   /* prepared statements forgotten (per-connection bound) */
	uint64_t not_run;        /* statements skipped by the server after an error */
	uint64_t split_mismatch; /* multi-statement strings whose results did not match */
	uint64_t unanswered;     /* executions the server never answered before ReadyForQuery */
	uint64_t tls;            /* connections that switched to TLS */
	uint64_t compressed;     /* MySQL connections with compression (not followed) */
	uint64_t given_up;       /* connections given up (replication, GSS encryption, ...) */
	uint64_t span_limit;     /* span_start returned NULL at the operation's start */
	uint64_t late_spans;     /* of which: started at the end instead */
	uint64_t cancels;        /* PostgreSQL CancelRequest connections */
	uint64_t auth_failed;    /* connections refused at start-up */
};

void sql_stats_add(struct sql_stats *to, const struct sql_stats *from);

/* Totals of the most recently initialised plugin instance, added when each
 * connection closes. For tests only. */
const struct sql_stats *sql_debug_totals(void);

/* ---- the plugin ---------------------------------------------------------------------- */

#define SQL_QUERY_DEFAULT 4096u  /* bytes of query text copied per message */
#define SQL_QUERY_MIN 256u
#define SQL_QUERY_MAX_CFG 65536u
#define SQL_PREPARED_DEFAULT 256u /* prepared statements remembered per connection */
#define SQL_MAX_PENDING 4096u     /* operations awaiting their response per connection */
#define SQL_MAX_PARTS 64u         /* statements split out of one query string */

#define SQL_SERVERS 64 /* MySQL-protocol servers remembered (MariaDB or MySQL) */

/* ---- SDK 1.1 (each member used only when the host has it) ---------------------- */

#define SQL_HOST_HAS(h, f) ((h)->abi_minor >= 1 && SONDE_HAS_FIELD(h, struct sonde_host_api, f))
#define SQL_SERVER_CAP 16384u     /* capture cap asked for the server side */
#define SQL_SKIP_MIN 4096u        /* skip_to only for at least this many bytes */
#define SQL_TICK_NS (5ull * 1000000000ull)
#define SQL_DARK_TIMEOUT_DEFAULT 30 /* seconds; the `dark_timeout` setting */

struct sql_conn;

struct sql_plugin {
	const struct sonde_host_api *host;
	struct sonde_plugin_handle *self;
	struct sonde_metric *duration; /* db.client.operation.duration */
	struct sonde_metric *events;   /* sonde.sql.events (1.1 counter) or NULL */
	struct sonde_timer *tick;      /* 1.1; freed by the host at unload */
	struct sql_conn *conns;        /* open connections, for the timer */
	struct sql_stats tot;
	uint8_t logged_compress;       /* "compression is on" said once */
	struct {
		char addr[112];
		uint16_t port;
		uint8_t mariadb;
	} servers[SQL_SERVERS];
	unsigned servers_next;
};

/* Per-connection settings read at conn_open. */
struct sql_settings {
	uint8_t query_text;      /* export db.query.text (default on: it is sanitised) */
	uint32_t query_max;      /* bytes of query text copied */
	uint32_t prepared_max;   /* prepared statements remembered */
	uint32_t dark_timeout_s; /* end a dark operation after this silence (0: never) */
};

void sql_settings_read(struct sql_plugin *pl, struct sonde_conn *conn, struct sql_settings *s);

/* ---- statements -------------------------------------------------------------------------- */

/* What is known about one statement text: shared (reference counted)
 * between a prepared statement, the portals bound to it and the
 * operations executing it. */
struct sql_stmt {
	uint32_t refs;
	struct sql_class cls;
	char *text;            /* sanitised db.query.text, or NULL */
	uint64_t raw_hash;     /* hash of the raw text (never exported): the same
	                          text parsed again reuses this record */
	uint32_t raw_len;
	uint8_t raw_complete;
	uint8_t raw_bs;        /* the escaping mode it was read with */
};

/* Is st the record of exactly this raw text? */
int sql_stmt_same(const struct sql_stmt *st, enum sql_backslash bs, const char *in, size_t n,
                  int complete);

/* Sanitise and classify; text kept only when with_text. NULL on ENOMEM. */
struct sql_stmt *sql_stmt_new(enum sql_dialect d, enum sql_backslash bs, const char *in,
                              size_t n, int complete, int with_text);
struct sql_stmt *sql_stmt_ref(struct sql_stmt *st);
void sql_stmt_unref(struct sql_stmt *st);

/* A bounded map from a statement key (MySQL statement id, or PostgreSQL
 * statement/portal name) to a statement. Open addressing; at the bound the
 * least recently used entry is evicted (counted). */
struct sql_map_ent {
	uint64_t hash;
	char *name;            /* PostgreSQL names; NULL for ids */
	uint32_t name_len;
	uint64_t used;         /* LRU clock */
	struct sql_stmt *st;
};

struct sql_map {
	struct sql_map_ent *e;
	uint32_t cap, n, max;
	uint64_t clock;
};

void sql_map_init(struct sql_map *m, uint32_t max);
void sql_map_free(struct sql_map *m);
void sql_map_clear(struct sql_map *m);
/* Takes a new reference to st. Returns 1 if an entry was evicted, 0, or -1. */
int sql_map_put(struct sql_map *m, uint64_t id, const char *name, size_t name_len,
                struct sql_stmt *st);
/* Borrowed pointer, or NULL. */
struct sql_stmt *sql_map_get(struct sql_map *m, uint64_t id, const char *name, size_t name_len);
void sql_map_del(struct sql_map *m, uint64_t id, const char *name, size_t name_len);

/* ---- connections and spans -------------------------------------------------------------------- */

/* Same-host links: where a request starts in its direction's stream
 * (chunk->pos coordinates of chunk->source). Positions are exact only while
 * decoding has followed every byte since the stream's first one: a place
 * found again after a loss is a guess, and gives no position. */
#define SQL_NOPOS UINT64_MAX

struct sql_track {
	uint8_t started;         /* a chunk of this stream was seen */
	uint8_t exact;           /* every byte followed since the stream's first */
	uint8_t src;             /* chunk->source the positions count in */
	uint64_t next;           /* chunk->pos the next chunk must have */
};

/* c is the requests' direction's next chunk, about to be decoded: exact
 * stays (or, for the first chunk, becomes) true only when c follows
 * without a hole from the stream's first byte, in one source. */
void sql_track_chunk(struct sql_track *t, const struct sonde_chunk *c);
/* The place was lost: no more positions on this connection's stream. */
void sql_track_lost(struct sql_track *t);
/* A new stream starts with the next chunk (TLS plaintext after the
 * socket's SSL request: its own positions, from 0). */
void sql_track_restart(struct sql_track *t);
/* Where byte off of c's data is, or SQL_NOPOS when not exact. */
uint64_t sql_track_pos(const struct sql_track *t, const struct sonde_chunk *c, size_t off);

/* What both protocols keep about a connection for its spans. */
struct sql_conn {
	struct sql_plugin *pl;
	struct sonde_conn *conn;
	uint64_t conn_id;
	enum sonde_role role;
	const char *system;      /* "postgresql", "mysql", "mariadb" */
	char ns[SQL_COLL_MAX];   /* db.namespace, "" unknown */
	char local_addr[112], peer_addr[112]; /* a unix socket path fits */
	uint16_t local_port, peer_port;
	uint16_t family;
	struct sql_settings set;
	struct sql_stats st;
	/* SDK 1.1 */
	struct sql_conn *next, **pprev;  /* pl->conns */
	void (*tick)(struct sql_conn *sc, uint64_t now); /* the protocol's timer step */
	struct sql_stats reported;       /* already added to pl->events */
	struct sonde_capture_policy pol; /* what was asked with conn_set_capture */
	uint32_t flags;                  /* conn_info.flags (SONDE_CONN_*), 0 on 1.0 */
	uint8_t muted;                   /* given up: the kernel was told to stop */
	struct sql_track req;            /* the requests' direction (links) */
};

void sql_conn_init(struct sql_conn *sc, struct sql_plugin *pl, struct sonde_conn *conn,
                   const struct sonde_conn_info *ci, const char *system);
/* Log the counters (debug) and add them to the totals. */
void sql_conn_fini(struct sql_conn *sc);

/* May the bytes decide who is the client? Not when the host saw the
 * connection accepted or connected (SDK 1.1: the role is neither inferred
 * nor of a connection met mid-stream); always on a 1.0 host. */
int sql_role_from_bytes(const struct sql_conn *sc);
/* Plaintext from a TLS library: the chunk's source (1.1), else
 * conn_info.tls. */
int sql_chunk_tls(const struct sql_conn *sc, const struct sonde_chunk *c);
/* The server side asks for the larger capture cap (after a role change too). */
void sql_capture_role(struct sql_conn *sc);
/* The connection is given up: tell the kernel to send nothing more. 1 when
 * it will (a 1.1 host with a kernel); 0 on a 1.0 host or without a kernel
 * (replays, the test host): the caller then gives up the 1.0 way. */
int sql_capture_mute(struct sql_conn *sc);
/* After a socket chunk of c's direction: the next `left` bytes are inside
 * a message body nobody reads, so no payload is needed before the stream
 * position just after them (skip_to). */
void sql_capture_skip(struct sql_conn *sc, const struct sonde_chunk *c, uint64_t left);
/* Add what the connection counted since the last report to sonde.sql.events. */
void sql_report_stats(struct sql_conn *sc);

/* One operation becoming one span. */
struct sql_op {
	struct sonde_span *span;
	struct sql_stmt *st;     /* reference, or NULL (statement unknown) */
	uint64_t start_ns;
	uint64_t pos;            /* where its request starts (SQL_NOPOS: unknown) */
	uint8_t src;             /* ... in the stream of this chunk->source */
	uint8_t late;            /* the host refused the span at start: try at the end */
	uint8_t active;
};

/* How an operation ended. Fields left at their zero value are not known. */
struct sql_result {
	const char *status_code; /* db.response.status_code (SQLSTATE, MySQL error number) */
	const char *error_type;  /* error.type */
	int64_t returned_rows;   /* -1 unknown */
	int64_t affected_rows;   /* -1 unknown */
	const char *op;          /* operation learnt from the response (WITH -> SELECT) */
};

void sql_result_init(struct sql_result *r);

/* Start op for statement st (may be NULL) at ts; takes a reference. pos:
 * where its request starts in sc->req's stream (chunk->pos coordinates of
 * sc->req.src), or SQL_NOPOS. */
void sql_op_start(struct sql_conn *sc, struct sql_op *op, struct sql_stmt *st, uint64_t ts,
                  uint64_t pos);
/* End the op's span at ts with what the server said (r may be NULL). */
void sql_op_end(struct sql_conn *sc, struct sql_op *op, uint64_t ts, const struct sql_result *r);
/* Abandon the op (no span), counted as dropped. */
void sql_op_drop(struct sql_conn *sc, struct sql_op *op);

/* Config helpers. */
int sql_config_bool(struct sql_plugin *pl, struct sonde_conn *conn, const char *key, int dflt);
long sql_config_long(struct sql_plugin *pl, struct sonde_conn *conn, const char *key, long dflt,
                     long min, long max);

/* The two protocols (pg.c, mysql.c). */
extern const struct sonde_protocol sql_pg_protocol;
extern const struct sonde_protocol sql_mysql_protocol;

#endif
