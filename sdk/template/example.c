/*
 * example.c - a complete, small sonde protocol plugin, meant to be copied.
 *
 * The protocol it understands is the simplest request/response protocol
 * there is: a "line protocol". The client sends one line ("VERB args\n"),
 * the server answers one line ("OK ...\n" or "ERR ...\n"). Clients may send
 * several lines before reading the answers (pipelining); answers come back
 * in order. Many real protocols start out like this (SMTP, POP3, memcached
 * text, Redis inline commands), so the shape of this file is the shape of
 * most plugins:
 *
 *   init()      once: keep the host table, register a metric, read settings
 *   detect()    per new connection: "is this my protocol?" with a confidence
 *   conn_open   per connection: allocate our state
 *   conn_data   per chunk of bytes: find requests and responses, make spans
 *   conn_close  per connection: drop what is unfinished, free our state
 *   fini()      once: free what init() allocated
 *
 * The one idea needed to read it: bytes arrive in chunks that may end in the
 * middle of a line, so the plugin keeps a little state per direction (the
 * start of the current line) and reacts only when a line is complete. Each
 * complete request line starts a span and goes into a queue; each complete
 * response line ends the span at the front of the queue.
 *
 * Build:  make            (uses `pkg-config --cflags sonde-sdk`)
 * Try:    see README.md in this directory.
 *
 * Settings (YAML, under `plugins: line:` or per service):
 *   verbs: [PING, ECHO, TIME]   request words that identify the protocol
 */
#include <sonde/plugin.h>   /* the only sonde header a plugin ever includes */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERB_MAX 16     /* longest verb we keep (span name) */
#define MAX_PENDING 64  /* requests waiting for a response, per connection */
#define MAX_VERBS 16

/* ---- plugin-wide state (one per loaded plugin) --------------------------- */

struct example_plugin {
	const struct sonde_host_api *host; /* the host's function table; valid until fini */
	struct sonde_plugin_handle *self;  /* who we are, for log and config_get */
	struct sonde_metric *duration;     /* our histogram, owned by the host */
	char verbs[MAX_VERBS][VERB_MAX + 1];
	size_t n_verbs;
};

/* ---- per-connection state ------------------------------------------------- */

/* One direction's partial line. We never copy whole lines: only the first
 * VERB_MAX bytes (enough for the verb / status word) and a length. */
struct line_state {
	char head[VERB_MAX + 1];
	size_t len;          /* bytes of the current line seen so far */
	uint64_t start_ns;   /* timestamp of the chunk holding its first byte */
};

struct pending {
	struct sonde_span *span; /* NULL if the host refused one (limits) */
};

struct example_conn {
	struct example_plugin *pl;
	struct sonde_conn *conn;
	enum sonde_dir req_dir;  /* the direction that carries requests */
	int role_known;
	int in_sync;             /* 0 after lost bytes: wait for a fresh chunk */
	struct line_state line[2]; /* indexed by enum sonde_dir */
	struct pending q[MAX_PENDING];
	size_t q_head, q_len;
	char server_addr[48];
	uint16_t server_port;
	char peer_addr[48];
	uint16_t peer_port;
};

/* ---- small helpers --------------------------------------------------------- */

static int is_upper_alpha(char c)
{
	return c >= 'A' && c <= 'Z';
}

/* The verb of a line: its first word, upper-cased, if it is made of letters
 * only. Anything else becomes "OTHER": never put raw user bytes into a span
 * name or an attribute (privacy, and cardinality of metrics). */
static void verb_of(const char *head, size_t len, char *out)
{
	size_t n = 0;

	while (n < len && n < VERB_MAX && head[n] != ' ' && head[n] != '\r' && head[n] != '\n') {
		char c = head[n];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (!is_upper_alpha(c)) {
			snprintf(out, VERB_MAX + 1, "OTHER");
			return;
		}
		out[n++] = c;
	}
	if (n == 0) {
		snprintf(out, VERB_MAX + 1, "OTHER");
		return;
	}
	out[n] = '\0';
}

static int known_verb(const struct example_plugin *pl, const char *verb)
{
	for (size_t i = 0; i < pl->n_verbs; i++) {
		if (strcmp(pl->verbs[i], verb) == 0)
			return 1;
	}
	return 0;
}

/* ---- spans ----------------------------------------------------------------- */

/* A request line began: start its span now, on the thread of this chunk,
 * so the host can make it the child of whatever request that thread is
 * serving. The span stays open until its response line. */
static void on_request(struct example_conn *ec, const char *verb, uint64_t ts)
{
	const struct sonde_host_api *h = ec->pl->host;
	int server = ec->req_dir == SONDE_DIR_INGRESS; /* we read requests: we serve */
	struct sonde_span *s;

	if (ec->q_len == MAX_PENDING) {
		/* Too deep a pipeline for us: give up following this connection
		 * rather than pair requests with the wrong responses. */
		ec->in_sync = 0;
		return;
	}
	s = h->span_start(ec->conn, verb, server ? SONDE_SPAN_SERVER : SONDE_SPAN_CLIENT, ts);
	if (s) {
		/* Attribute setters copy; keys are semantic-convention names where
		 * one exists, and a plugin-specific namespace otherwise. */
		h->span_attr_str(s, "example.verb", verb, strlen(verb));
		h->span_attr_str(s, "server.address", ec->server_addr, strlen(ec->server_addr));
		h->span_attr_int(s, "server.port", ec->server_port);
		h->span_attr_str(s, "network.peer.address", ec->peer_addr, strlen(ec->peer_addr));
		h->span_attr_int(s, "network.peer.port", ec->peer_port);
		/* Ask the host to record this span's duration in our histogram
		 * when it ends, with attribute values taken from the span. */
		if (ec->pl->duration)
			h->span_add_metric(s, ec->pl->duration);
	}
	/* Queue it even when s == NULL: the response still has to be matched. */
	ec->q[(ec->q_head + ec->q_len) % MAX_PENDING].span = s;
	ec->q_len++;
}

/* A response line is complete: it answers the oldest pending request. */
static void on_response(struct example_conn *ec, const char *status, uint64_t ts)
{
	const struct sonde_host_api *h = ec->pl->host;
	struct pending *p;

	if (ec->q_len == 0)
		return; /* a response to nothing we saw: ignore it */
	p = &ec->q[ec->q_head];
	ec->q_head = (ec->q_head + 1) % MAX_PENDING;
	ec->q_len--;
	if (!p->span)
		return;
	if (strcmp(status, "ERR") == 0) {
		h->span_attr_str(p->span, "error.type", "ERR", 3);
		h->span_set_status(p->span, SONDE_STATUS_ERROR, "ERR");
	}
	h->span_end(p->span, ts); /* the host owns the span from here on */
}

/* Drop every pending span: after lost bytes we cannot tell which response
 * belongs to which request any more. Dropped spans are not exported. */
static void drop_pending(struct example_conn *ec)
{
	while (ec->q_len) {
		struct pending *p = &ec->q[ec->q_head];

		if (p->span)
			ec->pl->host->span_drop(p->span);
		ec->q_head = (ec->q_head + 1) % MAX_PENDING;
		ec->q_len--;
	}
	memset(ec->line, 0, sizeof(ec->line));
}

/* ---- protocol callbacks ---------------------------------------------------- */

/* detect(): called with the first chunk(s) of a new connection, before any
 * plugin owns it. Must not keep c->data. Answer NO (0), a confidence 1..100,
 * or NEED_MORE to be asked again with the next chunk. */
static int example_detect(void *plugin_state, const struct sonde_conn_info *ci,
                          const struct sonde_chunk *c)
{
	const struct example_plugin *pl = plugin_state;
	int req_side = ci->role == SONDE_ROLE_UNKNOWN ||
	               (ci->role == SONDE_ROLE_CLIENT && c->dir == SONDE_DIR_EGRESS) ||
	               (ci->role == SONDE_ROLE_SERVER && c->dir == SONDE_DIR_INGRESS);
	const char *nl;
	char verb[VERB_MAX + 1];

	if (!req_side)
		return SONDE_DETECT_NO;
	if (c->len == 0)
		return SONDE_DETECT_NEED_MORE;
	nl = memchr(c->data, '\n', c->len);
	if (!nl)
		return c->len < 256 ? SONDE_DETECT_NEED_MORE : SONDE_DETECT_NO;
	verb_of((const char *)c->data, (size_t)(nl - (const char *)c->data), verb);
	/* A low confidence: a generic line protocol should lose against any
	 * plugin that recognises the bytes more precisely. */
	return known_verb(pl, verb) ? 25 : SONDE_DETECT_NO;
}

static int example_conn_open(void *plugin_state, struct sonde_conn *conn,
                             const struct sonde_conn_info *ci, void **conn_state)
{
	struct example_plugin *pl = plugin_state;
	struct example_conn *ec = calloc(1, sizeof(*ec));

	if (!ec)
		return SONDE_ERR_NOMEM; /* the host then ignores this connection */
	ec->pl = pl;
	ec->conn = conn; /* valid until conn_close returns */
	ec->in_sync = 1;
	/* ci is only valid during this call: copy what we need. */
	if (ci->role != SONDE_ROLE_UNKNOWN) {
		ec->role_known = 1;
		ec->req_dir = ci->role == SONDE_ROLE_CLIENT ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
	}
	snprintf(ec->peer_addr, sizeof(ec->peer_addr), "%s", ci->peer_addr);
	ec->peer_port = ci->peer_port;
	/* The server is the peer when we are the client, ourselves otherwise. */
	if (ci->role == SONDE_ROLE_SERVER) {
		snprintf(ec->server_addr, sizeof(ec->server_addr), "%s", ci->local_addr);
		ec->server_port = ci->local_port;
	} else {
		snprintf(ec->server_addr, sizeof(ec->server_addr), "%s", ci->peer_addr);
		ec->server_port = ci->peer_port;
	}
	*conn_state = ec;
	return SONDE_OK;
}

/* One complete line of direction dir. */
static void on_line(struct example_conn *ec, enum sonde_dir dir, uint64_t ts)
{
	struct line_state *ls = &ec->line[dir];
	char word[VERB_MAX + 1];

	verb_of(ls->head, ls->len < VERB_MAX ? ls->len : VERB_MAX, word);
	if (dir == ec->req_dir)
		on_request(ec, word, ls->start_ns);
	else
		on_response(ec, word, ts);
	ls->len = 0;
}

static int example_conn_data(void *conn_state, struct sonde_conn *conn,
                             const struct sonde_chunk *c)
{
	struct example_conn *ec = conn_state;
	struct line_state *ls;

	ec->conn = conn;
	/* Unknown role: whoever speaks first is the one asking. */
	if (!ec->role_known) {
		ec->req_dir = c->dir;
		ec->role_known = 1;
	}
	/* Lost bytes (GAP) or bytes we could not see (TRUNCATED: only the first
	 * c->len of c->orig_len bytes were captured) may have held line ends:
	 * we can no longer count lines. Drop what is pending and start again
	 * at the next chunk, assuming it starts a line (true for most
	 * line-protocol clients, which write whole lines). */
	if (c->flags & SONDE_CHUNK_GAP)
		ec->in_sync = 0;
	if (!ec->in_sync) {
		drop_pending(ec);
		ec->in_sync = 1;
	}
	ls = &ec->line[c->dir];
	for (size_t i = 0; i < c->len && ec->in_sync; i++) {
		char ch = (char)c->data[i];

		if (ls->len == 0)
			ls->start_ns = c->ts_unix_ns; /* the line's first byte is here */
		if (ch == '\n') {
			on_line(ec, c->dir, c->ts_unix_ns);
			continue;
		}
		if (ls->len < VERB_MAX)
			ls->head[ls->len] = ch;
		ls->len++;
	}
	if (c->orig_len > c->len)
		ec->in_sync = 0;
	/* SONDE_ERR_PROTO would tell the host to stop feeding us this
	 * connection; a line protocol can always carry on. */
	return SONDE_OK;
}

static void example_conn_close(void *conn_state, struct sonde_conn *conn, uint64_t ts)
{
	struct example_conn *ec = conn_state;

	/* Unanswered requests: we do not know how they ended. Every span we
	 * started must be ended or dropped before we return. */
	drop_pending(ec);
	free(ec);
}

/* ---- plugin lifecycle -------------------------------------------------------- */

static const double duration_bounds[] = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10 };
static const char *const duration_keys[] = { "example.verb", "server.address", "server.port",
	                                     "error.type" };

static void read_verbs(struct example_plugin *pl)
{
	static const char *const defaults[] = { "PING", "ECHO", "TIME" };
	const char *const *v = NULL;
	/* conn == NULL: the plugin's global section (`plugins: line: verbs:`).
	 * Strings belong to the host and live until fini. */
	size_t n = pl->host->config_get(pl->self, NULL, "verbs", &v);

	if (n == 0) {
		v = defaults;
		n = sizeof(defaults) / sizeof(defaults[0]);
	}
	for (size_t i = 0; i < n && pl->n_verbs < MAX_VERBS; i++) {
		verb_of(v[i], strlen(v[i]), pl->verbs[pl->n_verbs]);
		pl->n_verbs++;
	}
}

static int example_init(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
                        void **plugin_state)
{
	struct sonde_histogram_desc d = {
		.struct_size = sizeof(d), /* every struct crossing the ABI starts with its size */
		.name = "example.line.duration",
		.unit = "s",
		.description = "Duration of line-protocol requests.",
		.bounds = duration_bounds,
		.n_bounds = sizeof(duration_bounds) / sizeof(duration_bounds[0]),
		.attr_keys = duration_keys,
		.n_attr_keys = sizeof(duration_keys) / sizeof(duration_keys[0]),
	};
	struct example_plugin *pl;

	/* A host of an older minor version has a shorter table: check before
	 * using a function that was added later (none here: all are 1.0). */
	if (host->abi_major != SONDE_ABI_MAJOR)
		return SONDE_ERR_ABI;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return SONDE_ERR_NOMEM;
	pl->host = host;
	pl->self = self;
	pl->duration = host->histogram_register(self, &d); /* the host copies d */
	read_verbs(pl);
	host->log(self, SONDE_LOG_INFO, "line protocol plugin ready (%zu verbs)", pl->n_verbs);
	*plugin_state = pl;
	return SONDE_OK;
}

static void example_fini(void *plugin_state)
{
	free(plugin_state);
}

/* ---- what the host finds: one descriptor, one entry symbol ------------------ */

static const struct sonde_protocol line_protocol = {
	.struct_size = sizeof(struct sonde_protocol),
	.name = "line", /* the name used in YAML: services[].protocols: [line] */
	.detect = example_detect,
	.conn_open = example_conn_open,
	.conn_data = example_conn_data,
	.conn_close = example_conn_close,
};

static const struct sonde_protocol *const protocols[] = { &line_protocol, NULL };

static const struct sonde_plugin example_plugin = {
	.abi_major = SONDE_ABI_MAJOR, /* the ABI this file was compiled against */
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "example",
	.version = "0.1.0",
	.license = "Apache-2.0",
	.description = "Example line protocol: one span per request/response line pair",
	.init = example_init,
	.fini = example_fini,
	.protocols = protocols,
};

/* Exports sonde_plugin_entry(), the only symbol the host looks up. With
 * -fvisibility=hidden (from pkg-config) everything else stays private. */
SONDE_PLUGIN_DEFINE(example_plugin)
