/*
 * redis.c - the Redis protocol plugin: RESP bytes in, one span per command
 * out, with db.client.operation.duration for client spans.
 *
 * The one idea: Redis answers the commands of one connection in order, so
 * a connection needs only a FIFO of commands awaiting their reply. A
 * complete command from the command direction starts a span and is pushed;
 * a complete reply from the other direction ends the span at the head and
 * pops it. The exceptions are few and explicit: messages that are not
 * replies (pub/sub messages, RESP3 pushes, MONITOR lines), commands with
 * several replies (SUBSCRIBE a b c) or none (CLIENT REPLY OFF|SKIP).
 *
 * When bytes are lost (a GAP chunk, a truncation that cuts structure, bytes
 * that are not RESP) the FIFO cannot be trusted any more: it is dropped
 * and counted, and each direction waits for a chunk that starts cleanly
 * (commands: "*<n>\r\n$" or a known inline command; replies: a valid header
 * in a chunk no older than the oldest command queued since). Truncated bulk
 * payloads alone never cost sync: they are skipped by count.
 *
 * Nothing typed by a client is exported except the command name (from a
 * table, or a short [A-Z0-9.] token) and, when `query_text: true`, the
 * sanitised text of redis_cmd.c.
 */
#include <sonde/plugin.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "redis_cmd.h"
#include "redis_internal.h"
#include "resp.h"

enum { SIDE_CMD = 0, SIDE_REPLY = 1 };

/* Give up a connection whose command direction has not found a clean
 * start in this many chunks: it is very likely not Redis at all. */
#define REDIS_MAX_UNSYNCED_CHUNKS 256
#define REDIS_SKIP_MIN 4096 /* skip_to only for at least this many payload bytes */

#define HOST_HAS(h, f) ((h)->abi_minor >= 1 && SONDE_HAS_FIELD(h, struct sonde_host_api, f))

static const double duration_bounds[] = { 0.001, 0.005, 0.01, 0.05, 0.1,
	                                  0.5,   1,     5,    10 };
static const char *const duration_keys[] = { "db.system.name", "db.operation.name",
	                                     "db.namespace",   "server.address",
	                                     "server.port",    "error.type" };

struct redis_plugin {
	const struct sonde_host_api *host;
	struct sonde_plugin_handle *self;
	struct sonde_metric *duration; /* db.client.operation.duration */
	struct redis_stats tot;
};

/* Totals for tests (redis_internal.h): reset at init, added at close. */
static struct redis_stats debug_totals;

const struct redis_stats *redis_debug_totals(void)
{
	return &debug_totals;
}

/* A command awaiting its reply. When the host refuses a span at command
 * time (its per-connection limit of open spans, smaller than a deep
 * pipeline), the name is kept and the span is started late, at the reply,
 * with the command's start time. */
struct pending {
	struct sonde_span *span;
	char *late_qtext;         /* late start: db.query.text (malloc'd) or NULL */
	char late_name[REDIS_NAME_MAX]; /* late start: span name; "" otherwise */
	uint64_t start_ns;
	uint32_t replies_left;    /* SUBSCRIBE a b c: 3 confirmations */
	uint8_t kind;             /* enum redis_cmd_kind */
	uint8_t all;              /* UNSUBSCRIBE without channels */
	uint8_t has_pos;          /* pos is exact (same-host links) */
	int64_t arg;              /* SELECT: the db index, -1 if not a number */
	uint64_t pos;             /* stream position of the command's first byte */
};

struct side {
	struct resp_stream rs;
	uint8_t sync;             /* rs is at a known place in the byte stream */
	uint8_t ever_synced;
	uint32_t unsynced_chunks;
	uint64_t msg_ts;          /* ts of the chunk where the current message began */
	/* Same-host links: message boundaries are known exactly only when
	 * decoding began at the stream's first byte and never lost its place;
	 * positions are then the chunks' own (chunk->pos, one source). */
	uint8_t exact;
	uint8_t src;              /* chunk->source the positions count in */
	uint64_t next_pos;        /* chunk->pos the next chunk must have */
};

struct redis_conn {
	struct redis_plugin *pl;
	struct sonde_conn *conn;
	uint64_t conn_id;
	enum sonde_role role;
	int cmd_dir;              /* enum sonde_dir carrying commands, -1 until known */
	struct side side[2];

	struct pending *q;        /* ring of q_cap entries, q_len used from q_head */
	size_t q_head, q_len, q_cap;
	uint64_t skip_replies;    /* replies owed to commands evicted at overflow */

	int64_t db;               /* SELECTed db index, -1 unknown */
	uint8_t db_unsure;        /* a SELECT was QUEUED: unknown after EXEC */
	uint8_t subscribed;       /* RESP2 pub/sub mode */
	uint8_t monitor;
	uint8_t reply_off, reply_skip;
	uint8_t query_text;
	uint8_t resp3;            /* a RESP3-only type was seen in a reply */
	int64_t sub_total[2];     /* last count reported: [0] channels+patterns, [1] shard */
	uint32_t n_sub[3];        /* channels, patterns, shard channels */

	char local_addr[48], peer_addr[48];
	uint16_t local_port, peer_port;
	struct sonde_capture_policy pol; /* SDK 1.1: what was asked */
	struct redis_stats st;
};

/* ---- FIFO ----------------------------------------------------------------- */

static struct pending *q_peek(struct redis_conn *rc)
{
	return rc->q_len ? &rc->q[rc->q_head] : NULL;
}

static void q_pop(struct redis_conn *rc)
{
	rc->q_head = (rc->q_head + 1) % rc->q_cap;
	rc->q_len--;
}

/* A new slot at the tail, or NULL when out of memory. The caller checked
 * q_len < REDIS_MAX_PENDING. */
static struct pending *q_push(struct redis_conn *rc)
{
	if (rc->q_len == rc->q_cap) {
		size_t cap = rc->q_cap ? rc->q_cap * 2 : 16;
		struct pending *n;

		if (cap > REDIS_MAX_PENDING)
			cap = REDIS_MAX_PENDING;
		n = malloc(cap * sizeof(*n));
		if (!n)
			return NULL;
		for (size_t i = 0; i < rc->q_len; i++)
			n[i] = rc->q[(rc->q_head + i) % rc->q_cap];
		free(rc->q);
		rc->q = n;
		rc->q_cap = cap;
		rc->q_head = 0;
	}
	rc->q_len++;
	return &rc->q[(rc->q_head + rc->q_len - 1) % rc->q_cap];
}

/* ---- spans ---------------------------------------------------------------- */

static void drop_pending(struct redis_conn *rc, struct pending *p)
{
	if (p->span)
		rc->pl->host->span_drop(p->span);
	p->span = NULL;
	free(p->late_qtext);
	p->late_qtext = NULL;
	rc->st.dropped++;
}

static void drop_all(struct redis_conn *rc)
{
	while (rc->q_len) {
		drop_pending(rc, q_peek(rc));
		q_pop(rc);
	}
	rc->skip_replies = 0;
}

static struct sonde_span *start_span(struct redis_conn *rc, const char *name, uint64_t ts,
                                     const char *qtext, const struct pending *p)
{
	const struct sonde_host_api *h = rc->pl->host;
	int server = rc->role == SONDE_ROLE_SERVER;
	const char *saddr = server ? rc->local_addr : rc->peer_addr;
	uint16_t sport = server ? rc->local_port : rc->peer_port;
	struct sonde_span *s;

	s = h->span_start(rc->conn, name, server ? SONDE_SPAN_SERVER : SONDE_SPAN_CLIENT, ts);
	if (!s)
		return NULL;
	/* Where the command starts in the stream: the host links the two ends
	 * of a connection it watches on both sides by it. */
	if (p->has_pos && SONDE_HAS_FIELD(h, struct sonde_host_api, span_set_pos) &&
	    h->span_set_pos)
		h->span_set_pos(s, rc->side[SIDE_CMD].src, p->pos);
	h->span_attr_str(s, "db.system.name", "redis", 5);
	h->span_attr_str(s, "db.operation.name", name, strlen(name));
	h->span_attr_str(s, "server.address", saddr, strlen(saddr));
	h->span_attr_int(s, "server.port", sport);
	h->span_attr_str(s, "network.peer.address", rc->peer_addr, strlen(rc->peer_addr));
	h->span_attr_int(s, "network.peer.port", rc->peer_port);
	if (qtext)
		h->span_attr_str(s, "db.query.text", qtext, strlen(qtext));
	if (!server && rc->pl->duration)
		h->span_add_metric(s, rc->pl->duration);
	return s;
}

/* End the span of p at ts. errtype: error.type of an error reply, or NULL. */
static void finish(struct redis_conn *rc, struct pending *p, uint64_t ts, const char *errtype)
{
	const struct sonde_host_api *h = rc->pl->host;
	char db[24];

	if (!p->span && p->late_name[0]) {
		p->span = start_span(rc, p->late_name, p->start_ns, p->late_qtext, p);
		rc->st.late_spans += p->span != NULL;
		rc->st.dropped += p->span == NULL;
	}
	free(p->late_qtext);
	p->late_qtext = NULL;
	if (!p->span)
		return;
	if (rc->db >= 0) {
		/* Decimal by hand: this runs for every command. */
		char *e = db + sizeof(db), *q = e;
		uint64_t v = (uint64_t)rc->db;

		do {
			*--q = (char)('0' + v % 10);
			v /= 10;
		} while (v && q > db);
		h->span_attr_str(p->span, "db.namespace", q, (size_t)(e - q));
	}
	if (errtype) {
		h->span_attr_str(p->span, "error.type", errtype, strlen(errtype));
		h->span_set_status(p->span, SONDE_STATUS_ERROR, errtype);
	}
	h->span_end(p->span, ts);
	p->span = NULL;
	rc->st.spans++;
}

/* ---- losing and finding sync ------------------------------------------------ */

static void lose_sync(struct redis_conn *rc, int si, const char *why)
{
	size_t n = rc->q_len;

	rc->st.sync_lost++;
	drop_all(rc);
	rc->side[si].exact = 0; /* a place found again is a guess */
	rc->side[SIDE_REPLY].sync = 0;
	if (si == SIDE_CMD) {
		/* The lost bytes may have held SELECT or CLIENT REPLY. */
		rc->side[SIDE_CMD].sync = 0;
		rc->db = -1;
		rc->db_unsure = 0;
		rc->reply_off = 0;
		rc->reply_skip = 0;
	}
	rc->pl->host->log(rc->pl->self, SONDE_LOG_DEBUG,
	                  "conn %llu: %s lost sync (%s), %zu pending commands dropped",
	                  (unsigned long long)rc->conn_id, si == SIDE_CMD ? "commands" : "replies",
	                  why, n);
}

static int is_alpha(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* "*<count>\r\n$" with a count of 1..1048576 (Redis's own request limit). */
static int array_start(const uint8_t *p, size_t n)
{
	size_t i = 1;
	int64_t v = 0;

	while (i < n && i <= 8 && is_digit(p[i]))
		v = v * 10 + (p[i++] - '0');
	if (i == n)
		return i <= 8 ? SONDE_DETECT_NEED_MORE : SONDE_DETECT_NO;
	if (i == 1 || i > 8 || v < 1 || v > 1024 * 1024 || p[i] != '\r')
		return SONDE_DETECT_NO;
	if (++i == n)
		return SONDE_DETECT_NEED_MORE;
	if (p[i] != '\n')
		return SONDE_DETECT_NO;
	if (++i == n)
		return SONDE_DETECT_NEED_MORE;
	return p[i] == '$' ? SONDE_DETECT_SURE : SONDE_DETECT_NO;
}

static int has_http_version(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 6 <= n; i++) {
		if (memcmp(p + i, " HTTP/", 6) == 0)
			return 1;
	}
	return 0;
}

/* An inline command: a known command name, then a printable line. */
static int inline_start(const uint8_t *p, size_t n)
{
	const uint8_t *lf;
	size_t w = 0, line;

	while (w < n && w <= 20 && is_alpha(p[w]))
		w++;
	if (w == 0 || w > 20)
		return SONDE_DETECT_NO;
	if (w == n)
		return redis_cmd_is_prefix((const char *)p, w) ? SONDE_DETECT_NEED_MORE
		                                               : SONDE_DETECT_NO;
	if (p[w] != ' ' && p[w] != '\r' && p[w] != '\n')
		return SONDE_DETECT_NO;
	if (!redis_cmd_lookup((const char *)p, w))
		return SONDE_DETECT_NO;
	lf = memchr(p, '\n', n);
	line = lf ? (size_t)(lf - p) : n;
	for (size_t i = 0; i < line; i++) {
		if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\r')
			return SONDE_DETECT_NO;
	}
	if (has_http_version(p, line))
		return SONDE_DETECT_NO;
	if (!lf)
		return n < 1024 ? SONDE_DETECT_NEED_MORE : SONDE_DETECT_NO;
	return SONDE_DETECT_MAYBE;
}

/* How much the start of a chunk looks like a command. */
static int command_start(const uint8_t *p, size_t n)
{
	if (n == 0)
		return SONDE_DETECT_NEED_MORE;
	return p[0] == '*' ? array_start(p, n) : inline_start(p, n);
}

/* A chunk that starts with a RESP header (possibly cut, possibly one of the
 * RESP3 streamed types the decoder will refuse). */
static int reply_start(const uint8_t *p, size_t n)
{
	struct resp_hdr h;
	ssize_t r = resp_parse_hdr(p, n, &h);

	return r > 0 || r == RESP_UNSUPPORTED || (r == RESP_INCOMPLETE && n > 0);
}

/* May side si start decoding again at chunk c? */
static int resync_ok(struct redis_conn *rc, int si, const struct sonde_chunk *c)
{
	struct pending *head;
	int r;

	if (si == SIDE_CMD) {
		/* A chunk may end inside "*3\r\n$": a valid prefix is enough,
		 * the decoder will notice if it was not a command after all. */
		r = command_start(c->data, c->len);
		return r == SONDE_DETECT_SURE || r == SONDE_DETECT_MAYBE ||
		       (r == SONDE_DETECT_NEED_MORE && c->len > 0 && c->data[0] == '*');
	}
	/* A reply chunk can only answer commands queued since sync was lost:
	 * it must not be older than the oldest of them. */
	head = q_peek(rc);
	if (!head || rc->side[SIDE_CMD].sync == 0 || c->ts_unix_ns < head->start_ns)
		return 0;
	return reply_start(c->data, c->len);
}

/* ---- commands -------------------------------------------------------------- */

static int copy_eq(const struct resp_copy *c, const char *s)
{
	size_t n = strlen(s);

	return c->present && c->len == n && c->full_len == n && strncasecmp(c->buf, s, n) == 0;
}

enum { CR_NONE = 0, CR_ON, CR_OFF, CR_SKIP };

static int client_reply_mode(const struct redis_cmd_def *d, const struct resp_summary *m)
{
	if (!d || d->kind != RCMD_CLIENT || !copy_eq(&m->args[1], "REPLY"))
		return CR_NONE;
	if (copy_eq(&m->args[2], "ON"))
		return CR_ON;
	if (copy_eq(&m->args[2], "OFF"))
		return CR_OFF;
	if (copy_eq(&m->args[2], "SKIP"))
		return CR_SKIP;
	return CR_NONE;
}

/* CLIENT REPLY bookkeeping. Returns 1 when the command gets no reply. */
static int suppressed(struct redis_conn *rc, int mode)
{
	if (rc->reply_off) {
		if (mode != CR_ON)
			return 1;
		rc->reply_off = 0; /* ON itself is answered */
		return 0;
	}
	if (rc->reply_skip) {
		rc->reply_skip = 0;
		return 1;
	}
	if (mode == CR_OFF)
		rc->reply_off = 1;
	if (mode == CR_SKIP)
		rc->reply_skip = 1;
	return mode == CR_OFF || mode == CR_SKIP;
}

static int64_t copy_int(const struct resp_copy *c)
{
	int64_t v = 0;

	if (!c->present || c->len == 0 || c->len > 9 || c->full_len != c->len)
		return -1;
	for (size_t i = 0; i < c->len; i++) {
		if (!is_digit((uint8_t)c->buf[i]))
			return -1;
		v = v * 10 + (c->buf[i] - '0');
	}
	return v;
}

/* Make room for one more command: at REDIS_MAX_PENDING the oldest one is
 * dropped and its reply skipped by count. Returns 0, or -1 when the oldest
 * one changes connection state and sync had to be given up. */
static int make_room(struct redis_conn *rc)
{
	struct pending *old;

	if (rc->q_len < REDIS_MAX_PENDING)
		return 0;
	old = q_peek(rc);
	rc->st.overflow++;
	switch (old->kind) {
	case RCMD_PLAIN:
	case RCMD_MULTI:
	case RCMD_DISCARD:
	case RCMD_CLIENT:
		break;
	case RCMD_SELECT:
	case RCMD_EXEC:
		rc->db = -1;
		break;
	default:
		lose_sync(rc, SIDE_CMD, "pipeline overflow");
		return -1;
	}
	rc->skip_replies += old->replies_left;
	drop_pending(rc, old);
	q_pop(rc);
	return 0;
}

/* pos: stream position of the command's first byte, or UINT64_MAX when
 * not known exactly. */
static void on_command(struct redis_conn *rc, const struct resp_summary *m, uint64_t ts,
                       uint64_t pos)
{
	const struct redis_cmd_def *d;
	char name[REDIS_NAME_MAX], qtext[REDIS_QUERY_MAX];
	struct pending *p;

	rc->st.commands++;
	if (m->type == RESP_ARRAY && m->n <= 0)
		return; /* Redis ignores *0 and *-1 */
	if (!m->args[0].present || m->args[0].type != RESP_BULK) {
		lose_sync(rc, SIDE_CMD, "not a command");
		return;
	}
	d = redis_cmd_lookup(m->args[0].buf, m->args[0].len);
	if (suppressed(rc, client_reply_mode(d, m))) {
		rc->st.noreply++;
		return;
	}
	redis_cmd_name(m->args[0].buf, m->args[0].len, name);
	if (rc->query_text)
		redis_query_text(m, name, d, qtext);
	if (make_room(rc) < 0)
		return;
	p = q_push(rc);
	if (!p) {
		lose_sync(rc, SIDE_CMD, "out of memory");
		return;
	}
	memset(p, 0, sizeof(*p));
	p->start_ns = ts;
	p->has_pos = pos != UINT64_MAX;
	p->pos = pos;
	p->kind = d ? d->kind : RCMD_PLAIN;
	p->replies_left = 1;
	p->arg = -1;
	switch (p->kind) {
	case RCMD_SUBSCRIBE:
	case RCMD_PSUBSCRIBE:
	case RCMD_SSUBSCRIBE:
		p->replies_left = m->n > 1 ? (uint32_t)(m->n - 1) : 1;
		break;
	case RCMD_UNSUBSCRIBE:
	case RCMD_PUNSUBSCRIBE:
	case RCMD_SUNSUBSCRIBE:
		if (m->n > 1)
			p->replies_left = (uint32_t)(m->n - 1);
		else
			p->all = 1;
		break;
	case RCMD_SELECT:
		p->arg = copy_int(&m->args[1]);
		break;
	}
	p->span = start_span(rc, name, ts, rc->query_text ? qtext : NULL, p);
	if (p->span)
		return;
	rc->st.span_limit++;
	memcpy(p->late_name, name, sizeof(p->late_name));
	if (rc->query_text)
		p->late_qtext = strdup(qtext); /* NULL: the late span goes without */
}

/* ---- replies --------------------------------------------------------------- */

struct sub_name {
	const char *name;
	int group;   /* 0 channels, 1 patterns, 2 shard channels */
	int unsub;
};

static const struct sub_name sub_names[] = {
	{ "subscribe", 0, 0 },   { "psubscribe", 1, 0 },   { "ssubscribe", 2, 0 },
	{ "unsubscribe", 0, 1 }, { "punsubscribe", 1, 1 }, { "sunsubscribe", 2, 1 },
};

/* Can m be a pub/sub message or confirmation (an array or push whose first
 * element is a string)? Every reply is asked, so this goes first. */
static int names_first(const struct resp_summary *m)
{
	const struct resp_copy *a = &m->args[0];

	return (m->type == RESP_ARRAY || m->type == RESP_PUSH) && a->present &&
	       (a->type == RESP_BULK || a->type == RESP_SIMPLE);
}

/* m's first element is s (names_first(m) already checked). */
static int first_is(const struct resp_summary *m, const char *s)
{
	const struct resp_copy *a = &m->args[0];
	size_t n = strlen(s);

	return a->len == n && memcmp(a->buf, s, n) == 0;
}

/* The pub/sub confirmation a reply is, or NULL. */
static const struct sub_name *confirmation(const struct resp_summary *m)
{
	if (!names_first(m))
		return NULL;
	for (size_t i = 0; i < sizeof(sub_names) / sizeof(sub_names[0]); i++) {
		if (first_is(m, sub_names[i].name))
			return &sub_names[i];
	}
	return NULL;
}

static int is_message(const struct resp_summary *m)
{
	return names_first(m) &&
	       (first_is(m, "message") || first_is(m, "pmessage") || first_is(m, "smessage"));
}

static int confirms(const struct pending *p, const struct sub_name *sn)
{
	static const uint8_t kinds[2][3] = {
		{ RCMD_SUBSCRIBE, RCMD_PSUBSCRIBE, RCMD_SSUBSCRIBE },
		{ RCMD_UNSUBSCRIBE, RCMD_PUNSUBSCRIBE, RCMD_SUNSUBSCRIBE },
	};

	return p && sn && p->kind == kinds[sn->unsub][sn->group];
}

/* Follow the subscription counts a confirmation reports. */
static int64_t track_sub(struct redis_conn *rc, const struct sub_name *sn,
                         const struct resp_summary *m)
{
	int t = sn->group == 2;
	int64_t count = -1;

	if (m->args[2].present && m->args[2].type == RESP_INTEGER)
		count = copy_int(&m->args[2]);
	if (count < 0)
		return -1;
	if (!sn->unsub && count > rc->sub_total[t])
		rc->n_sub[sn->group]++;
	if (sn->unsub && count < rc->sub_total[t] && rc->n_sub[sn->group] > 0)
		rc->n_sub[sn->group]--;
	rc->sub_total[t] = count;
	rc->subscribed = rc->sub_total[0] + rc->sub_total[1] > 0;
	return count;
}

static void sub_confirm(struct redis_conn *rc, struct pending *p, const struct sub_name *sn,
                        const struct resp_summary *m, uint64_t ts)
{
	int64_t count = track_sub(rc, sn, m);
	int done;

	if (p->all)
		done = count == 0 || rc->n_sub[sn->group] == 0;
	else
		done = --p->replies_left == 0;
	if (!done)
		return;
	finish(rc, p, ts, NULL);
	q_pop(rc);
}

/* Connection state changed by a command's reply, applied after its span
 * ended (so SELECT's own span carries the db it was sent in). */
static void apply_reply(struct redis_conn *rc, const struct pending *p,
                        const struct resp_summary *m, int error)
{
	int ok = m->type == RESP_SIMPLE && copy_eq(&m->text, "OK");

	switch (p->kind) {
	case RCMD_SELECT:
		if (ok)
			rc->db = p->arg;
		break;
	case RCMD_MONITOR:
		if (ok)
			rc->monitor = 1;
		break;
	case RCMD_RESET:
		if (m->type == RESP_SIMPLE && copy_eq(&m->text, "RESET")) {
			rc->db = 0;
			rc->subscribed = rc->monitor = rc->reply_off = rc->reply_skip = 0;
			rc->resp3 = 0;
			memset(rc->n_sub, 0, sizeof(rc->n_sub));
			memset(rc->sub_total, 0, sizeof(rc->sub_total));
			rc->db_unsure = 0;
		}
		break;
	case RCMD_EXEC:
		if (!error && m->type == RESP_ARRAY && m->n >= 0 && rc->db_unsure)
			rc->db = -1;
		rc->db_unsure = 0;
		break;
	case RCMD_DISCARD:
		rc->db_unsure = 0;
		break;
	}
}

/* Types only a RESP3 connection (after HELLO 3) receives. */
static int is_resp3_type(uint8_t t)
{
	return t != RESP_SIMPLE && t != RESP_ERROR && t != RESP_INTEGER && t != RESP_BULK &&
	       t != RESP_ARRAY;
}

/* One complete reply. In RESP2 pub/sub mode, arrays that start with
 * "message" or a confirmation name are pushes, not replies; in RESP3 only
 * the push type is. */
static void on_reply(struct redis_conn *rc, const struct resp_summary *m, uint64_t ts)
{
	const struct sub_name *sn = confirmation(m);
	char errtype[REDIS_ERRTYPE_MAX];
	struct pending *p;
	int error;

	rc->st.replies++;
	if (is_resp3_type(m->type))
		rc->resp3 = 1;
	if (m->type == RESP_PUSH ||
	    (rc->subscribed && !rc->resp3 && m->type == RESP_ARRAY && (sn || is_message(m)))) {
		p = rc->skip_replies ? NULL : q_peek(rc);
		if (confirms(p, sn)) {
			sub_confirm(rc, p, sn, m, ts);
			return;
		}
		if (sn)
			track_sub(rc, sn, m); /* e.g. a server-side unsubscribe */
		rc->st.pushes++;
		return;
	}
	if (rc->monitor && m->type == RESP_SIMPLE && m->text.len > 0 &&
	    is_digit((uint8_t)m->text.buf[0])) {
		rc->st.pushes++; /* "+1795288824.188430 [0 127.0.0.1:52856] ..." */
		return;
	}
	if (rc->skip_replies) {
		rc->skip_replies--;
		return;
	}
	p = q_peek(rc);
	if (!p) {
		rc->st.unmatched++;
		return;
	}
	error = m->type == RESP_ERROR || m->type == RESP_BLOB_ERROR;
	if (!error && m->type == RESP_SIMPLE && copy_eq(&m->text, "QUEUED")) {
		if (p->kind == RCMD_SELECT)
			rc->db_unsure = 1;
		finish(rc, p, ts, NULL);
		q_pop(rc);
		return;
	}
	if (!error && confirms(p, sn)) {
		sub_confirm(rc, p, sn, m, ts);
		return;
	}
	if (error)
		redis_error_type(m->text.buf, m->text.len, errtype);
	finish(rc, p, ts, error ? errtype : NULL);
	apply_reply(rc, p, m, error);
	q_pop(rc);
}

/* ---- bytes in ------------------------------------------------------------- */

/* end: stream position just after the message's last byte. */
static void on_message(struct redis_conn *rc, int si, const struct resp_summary *m,
                       const struct sonde_chunk *c, uint64_t end)
{
	const struct side *sd = &rc->side[si];

	if (si == SIDE_CMD)
		on_command(rc, m, sd->msg_ts,
		           sd->exact && m->wire_len <= end ? end - m->wire_len : UINT64_MAX);
	else
		on_reply(rc, m, c->ts_unix_ns);
}

/* 1.1 chunks say where they are in the stream; 1.0 ones do not. */
static int chunk_has_pos(const struct sonde_chunk *c)
{
	return SONDE_HAS_FIELD(c, struct sonde_chunk, source);
}

/* Keep sd->exact true only while every chunk since decoding began at the
 * stream's first byte followed the previous one without a hole, in one
 * source. syncing: decoding (re)starts at c. */
static void track_pos(struct side *sd, const struct sonde_chunk *c, int syncing)
{
	if (!chunk_has_pos(c)) {
		sd->exact = 0;
		return;
	}
	if (syncing) {
		sd->exact = !sd->ever_synced && c->pos == 0 && !(c->flags & SONDE_CHUNK_GAP);
		sd->src = c->source;
	} else if (c->source != sd->src || c->pos != sd->next_pos) {
		sd->exact = 0;
	}
	sd->next_pos = c->pos + c->orig_len;
}

/* Decode the captured bytes of c. Returns 0 or a RESP_* error. */
static int feed(struct redis_conn *rc, int si, const struct sonde_chunk *c)
{
	struct side *sd = &rc->side[si];
	const uint8_t *p = c->data;
	size_t left = c->len;
	uint64_t base = chunk_has_pos(c) ? c->pos : 0;

	while (left > 0 && sd->sync) {
		struct resp_summary m;
		int done;
		ssize_t r;

		if (!resp_stream_in_msg(&sd->rs))
			sd->msg_ts = c->ts_unix_ns;
		r = resp_stream_feed(&sd->rs, p, left, &m, &done);
		if (r < 0)
			return (int)r;
		p += r;
		left -= (size_t)r;
		if (done)
			on_message(rc, si, &m, c, base + (uint64_t)(p - c->data));
	}
	return 0;
}

/* The bytes of c beyond the capture cap: skipped by count while they fall
 * inside bulk payloads. */
static void skip_uncaptured(struct redis_conn *rc, int si, const struct sonde_chunk *c)
{
	struct side *sd = &rc->side[si];
	uint64_t miss = c->orig_len - c->len, at = (chunk_has_pos(c) ? c->pos : 0) + c->len;

	while (miss > 0 && sd->sync) {
		struct resp_summary m;
		int done;
		uint64_t used = resp_stream_skip(&sd->rs, miss, &m, &done);

		miss -= used;
		at += used;
		if (done)
			on_message(rc, si, &m, c, at);
		else if (miss > 0)
			lose_sync(rc, si, "truncated inside structure");
	}
}

/* Learn which direction carries commands from the first chunk that says. */
static int infer_dir(struct redis_conn *rc, const struct sonde_chunk *c)
{
	int r = command_start(c->data, c->len);

	if (r == SONDE_DETECT_SURE || r == SONDE_DETECT_MAYBE)
		rc->cmd_dir = (int)c->dir;
	else if (reply_start(c->data, c->len) && c->len > 0)
		rc->cmd_dir = c->dir == SONDE_DIR_EGRESS ? SONDE_DIR_INGRESS : SONDE_DIR_EGRESS;
	else
		return -1;
	rc->role = rc->cmd_dir == SONDE_DIR_EGRESS ? SONDE_ROLE_CLIENT : SONDE_ROLE_SERVER;
	return 0;
}

/* SDK 1.1: after a socket chunk that ends inside a big bulk string (a
 * large value written or read), no payload is needed before the position
 * where that string's payload ends (its CRLF is still read). Chunks from a
 * TLS library count positions of their own: never used. */
static void ask_skip(struct redis_conn *rc, const struct side *sd, const struct sonde_chunk *c)
{
	const struct sonde_host_api *h = rc->pl->host;
	uint64_t left, to;

	if (!sd->sync || !HOST_HAS(h, conn_set_capture) ||
	    !SONDE_HAS_FIELD(c, struct sonde_chunk, source) || c->source != SONDE_SRC_SOCKET)
		return;
	left = resp_stream_skippable(&sd->rs);
	if (left < REDIS_SKIP_MIN)
		return;
	to = c->pos + c->orig_len + left;
	if (to <= rc->pol.skip_to[c->dir])
		return;
	rc->pol.skip_to[c->dir] = to;
	h->conn_set_capture(rc->conn, &rc->pol); /* SONDE_ERR_UNSUPPORTED: no kernel */
}

static int redis_conn_data(void *conn_state, struct sonde_conn *conn,
                           const struct sonde_chunk *c)
{
	struct redis_conn *rc = conn_state;
	struct side *sd;
	int si, r;

	rc->conn = conn;
	if (rc->cmd_dir < 0 && infer_dir(rc, c) < 0)
		return SONDE_OK;
	si = (int)c->dir == rc->cmd_dir ? SIDE_CMD : SIDE_REPLY;
	sd = &rc->side[si];
	/* Bytes of this direction were lost: whatever is pending may have had
	 * its command or its reply among them. */
	if ((c->flags & SONDE_CHUNK_GAP) && (sd->sync || rc->q_len))
		lose_sync(rc, si, "gap");
	if (!sd->sync) {
		if (!resync_ok(rc, si, c)) {
			if (si == SIDE_CMD && ++sd->unsynced_chunks > REDIS_MAX_UNSYNCED_CHUNKS)
				return SONDE_ERR_PROTO;
			return SONDE_OK;
		}
		resp_stream_init(&sd->rs, si == SIDE_CMD);
		track_pos(sd, c, 1);
		sd->sync = 1;
		sd->unsynced_chunks = 0;
		if (sd->ever_synced)
			rc->st.resyncs++;
		sd->ever_synced = 1;
	} else {
		track_pos(sd, c, 0);
	}
	r = feed(rc, si, c);
	if (r == RESP_UNSUPPORTED) {
		rc->pl->host->log(rc->pl->self, SONDE_LOG_DEBUG,
		                  "conn %llu: RESP3 streamed type, not followed",
		                  (unsigned long long)rc->conn_id);
		return SONDE_ERR_PROTO;
	}
	if (r < 0)
		lose_sync(rc, si, "not RESP");
	else if (c->orig_len > c->len)
		skip_uncaptured(rc, si, c);
	ask_skip(rc, sd, c);
	return SONDE_OK;
}

/* ---- lifecycle ------------------------------------------------------------- */

static int config_true(struct redis_plugin *pl, struct sonde_conn *conn, const char *key)
{
	const char *const *v = NULL;
	size_t n = pl->host->config_get(pl->self, conn, key, &v);

	if (n == 0 || !v || !v[0])
		return 0;
	return strcasecmp(v[0], "true") == 0 || strcasecmp(v[0], "yes") == 0 ||
	       strcasecmp(v[0], "on") == 0 || strcmp(v[0], "1") == 0;
}

static int redis_conn_open(void *plugin_state, struct sonde_conn *conn,
                           const struct sonde_conn_info *ci, void **conn_state)
{
	struct redis_plugin *pl = plugin_state;
	struct redis_conn *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return SONDE_ERR_NOMEM;
	rc->pl = pl;
	rc->conn = conn;
	rc->pol.struct_size = sizeof(rc->pol);
	rc->conn_id = ci->conn_id;
	rc->role = ci->role;
	rc->cmd_dir = -1;
	if (ci->role == SONDE_ROLE_CLIENT)
		rc->cmd_dir = SONDE_DIR_EGRESS;
	else if (ci->role == SONDE_ROLE_SERVER)
		rc->cmd_dir = SONDE_DIR_INGRESS;
	rc->db = -1;
	snprintf(rc->local_addr, sizeof(rc->local_addr), "%s", ci->local_addr);
	snprintf(rc->peer_addr, sizeof(rc->peer_addr), "%s", ci->peer_addr);
	rc->local_port = ci->local_port;
	rc->peer_port = ci->peer_port;
	rc->query_text = (uint8_t)config_true(pl, conn, "query_text");
	/* Both directions start "unsynced": the first chunk must start cleanly,
	 * which it does on a new connection, and may not on one that was open
	 * before the agent started. */
	*conn_state = rc;
	return SONDE_OK;
}

static void add_stats(struct redis_stats *to, const struct redis_stats *from)
{
	to->commands += from->commands;
	to->replies += from->replies;
	to->spans += from->spans;
	to->dropped += from->dropped;
	to->overflow += from->overflow;
	to->pushes += from->pushes;
	to->unmatched += from->unmatched;
	to->noreply += from->noreply;
	to->sync_lost += from->sync_lost;
	to->resyncs += from->resyncs;
	to->span_limit += from->span_limit;
	to->late_spans += from->late_spans;
}

static void redis_conn_close(void *conn_state, struct sonde_conn *conn, uint64_t ts)
{
	struct redis_conn *rc = conn_state;
	const struct redis_stats *s = &rc->st;

	drop_all(rc);
	if (s->dropped || s->unmatched || s->sync_lost || s->span_limit)
		rc->pl->host->log(rc->pl->self, SONDE_LOG_DEBUG,
		                  "conn %llu: %llu commands, %llu spans, %llu dropped, "
		                  "%llu unmatched replies, %llu sync losses",
		                  (unsigned long long)rc->conn_id, (unsigned long long)s->commands,
		                  (unsigned long long)s->spans, (unsigned long long)s->dropped,
		                  (unsigned long long)s->unmatched,
		                  (unsigned long long)s->sync_lost);
	add_stats(&rc->pl->tot, s);
	add_stats(&debug_totals, s);
	free(rc->q);
	free(rc);
}

static int redis_detect(void *plugin_state, const struct sonde_conn_info *ci,
                        const struct sonde_chunk *c)
{
	int cmd_side = ci->role == SONDE_ROLE_UNKNOWN ||
	               (ci->role == SONDE_ROLE_CLIENT && c->dir == SONDE_DIR_EGRESS) ||
	               (ci->role == SONDE_ROLE_SERVER && c->dir == SONDE_DIR_INGRESS);
	struct resp_hdr h;

	if (cmd_side) {
		int r = command_start(c->data, c->len);

		if (r != SONDE_DETECT_NO || ci->role != SONDE_ROLE_UNKNOWN)
			return r;
	}
	/* A reply seen first (a connection older than the agent): wait for a
	 * command rather than say no. */
	if (c->len > 0 && resp_parse_hdr(c->data, c->len, &h) > 0)
		return SONDE_DETECT_NEED_MORE;
	return SONDE_DETECT_NO;
}

static int redis_init(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
                      void **plugin_state)
{
	struct sonde_histogram_desc d = {
		.struct_size = sizeof(d),
		.name = "db.client.operation.duration",
		.unit = "s",
		.description = "Duration of database client operations.",
		.bounds = duration_bounds,
		.n_bounds = sizeof(duration_bounds) / sizeof(duration_bounds[0]),
		.attr_keys = duration_keys,
		.n_attr_keys = sizeof(duration_keys) / sizeof(duration_keys[0]),
	};
	struct redis_plugin *pl;

	if (host->abi_major != SONDE_ABI_MAJOR ||
	    host->struct_size < offsetof(struct sonde_host_api, histogram_record) +
	                                sizeof(host->histogram_record))
		return SONDE_ERR_ABI;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return SONDE_ERR_NOMEM;
	pl->host = host;
	pl->self = self;
	pl->duration = host->histogram_register(self, &d);
	if (!pl->duration)
		host->log(self, SONDE_LOG_WARN, "db.client.operation.duration not registered; "
		                                "client spans will have no metric");
	memset(&debug_totals, 0, sizeof(debug_totals));
	*plugin_state = pl;
	return SONDE_OK;
}

static void redis_fini(void *plugin_state)
{
	struct redis_plugin *pl = plugin_state;
	const struct redis_stats *t;

	if (!pl)
		return;
	t = &pl->tot;
	if (t->commands)
		pl->host->log(pl->self, SONDE_LOG_INFO,
		              "%llu commands, %llu spans, %llu dropped (%llu pipeline overflow), "
		              "%llu pushes, %llu unmatched replies, %llu unreplied, "
		              "%llu sync losses, %llu resyncs",
		              (unsigned long long)t->commands, (unsigned long long)t->spans,
		              (unsigned long long)t->dropped, (unsigned long long)t->overflow,
		              (unsigned long long)t->pushes, (unsigned long long)t->unmatched,
		              (unsigned long long)t->noreply, (unsigned long long)t->sync_lost,
		              (unsigned long long)t->resyncs);
	free(pl);
}

static const struct sonde_protocol redis_protocol = {
	.struct_size = sizeof(struct sonde_protocol),
	.name = "redis",
	.detect = redis_detect,
	.conn_open = redis_conn_open,
	.conn_data = redis_conn_data,
	.conn_close = redis_conn_close,
};

static const struct sonde_protocol *const redis_protocols[] = { &redis_protocol, NULL };

static const struct sonde_plugin redis_plugin = {
	.abi_major = SONDE_ABI_MAJOR,
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "redis",
	.version = "0.1.0",
	.license = "Apache-2.0",
	.description = "Redis (RESP2/RESP3): one span per command, "
	               "db.client.operation.duration",
	.init = redis_init,
	.fini = redis_fini,
	.protocols = redis_protocols,
};

SONDE_PLUGIN_DEFINE(redis_plugin)
