/*
 * http_plugin.c - the HTTP/1.x protocol plugin: bytes of a connection in,
 * one OpenTelemetry HTTP span (and one duration histogram value) per
 * request/response exchange out.
 *
 * The one idea: each direction of a connection is its own little state
 * machine (expecting a head, skipping a body by count, lost), and the two
 * directions meet only in a FIFO of transactions. The request side appends
 * a transaction (and starts its span) on the first byte of every request;
 * the response side completes the oldest one. Pipelining is then just a
 * FIFO longer than one, and losing bytes in one direction never corrupts
 * the other.
 *
 * Choices worth knowing when reading the code:
 *  - Body bytes are counted, never looked at (except chunked framing). A
 *    chunk whose payload was cut (orig_len > len) still advances the count
 *    by orig_len, so a Content-Length body stays in sync.
 *  - "Lost" (DS_LOST) means the position in the byte stream is unknown:
 *    after a GAP, after cut bytes that were not body, or after garbage. A
 *    lost direction scans each line start for a request line (or status
 *    line) and picks up from there.
 *  - A response whose end cannot be known (delimited by close, or a cut
 *    chunked body) is "open-ended": its span ends at the last response
 *    chunk seen, when the next request starts, the next response starts,
 *    or the connection closes - whichever comes first.
 *  - Connection closed mid-message: a transaction whose response head was
 *    seen is ended at close with status ERROR and error.type
 *    "incomplete_response" (unless an error.type from its status code is
 *    already set); one without any response is dropped, so every exported
 *    span has a status code and metric counts never include guesses.
 *  - GAP in the response direction: the transaction whose response was in
 *    progress is dropped, and so are all waiting requests but the newest
 *    (see lose_bytes). A GAP in the request direction drops the request
 *    whose head was being read.
 *  - Giving up (SONDE_ERR_PROTO): a head longer than HTTP_HEAD_MAX, more
 *    than HTTP_MAX_PENDING requests waiting, too much garbage in a row, or
 *    out of memory. Open spans are dropped first.
 *  - SDK 1.1, when the host has it: after a socket chunk that ends inside
 *    a body whose remaining length is known (Content-Length, or the data
 *    of a chunk of chunked coding), the kernel is told that no payload is
 *    needed before the position where it ends (skip_to), so body bytes are
 *    not even copied; after CONNECT 2xx or 101 (a tunnel, a WebSocket) the
 *    connection is muted, nothing of it is HTTP any more.
 */
#include <sonde/plugin.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "http_route.h"

#define HTTP_HEAD_MAX (16 * 1024) /* longest head followed across reads */
#define HTTP_BUF_MIN 1024
#define HTTP_MAX_PENDING 32       /* requests waiting for their responses */
#define HTTP_MAX_GARBAGE 8        /* unparsable heads in a row before giving up */
#define HTTP_UA_MAX 512           /* user_agent.original is cut there */
#define HTTP_PATH_MAX 2048        /* url.path is cut there */
#define HTTP_METHOD_ORIG_MAX 64
#define HTTP_NAME_MAX (16 + HTTP_ROUTE_MAX)
#define HTTP_SKIP_MIN 4096        /* skip_to only for at least this many body bytes */

#define HOST_HAS(h, f) ((h)->abi_minor >= 1 && SONDE_HAS_FIELD(h, struct sonde_host_api, f))

/* Guessed routes of recent paths: a service asks for the same paths again
 * and again, and the guess reads every byte of every segment. One slot per
 * path hash; short paths and routes only. */
#define ROUTE_CACHE_SLOTS 256
#define ROUTE_CACHE_LEN 64

struct route_slot {
	uint8_t path_len;  /* 0: empty slot */
	char path[ROUTE_CACHE_LEN];
	char route[ROUTE_CACHE_LEN];
};

struct http_plugin {
	const struct sonde_host_api *host;
	struct sonde_plugin_handle *self;
	struct sonde_metric *server_hist;
	struct sonde_metric *client_hist;
	const char *const *checked_routes; /* last route list validated */
	struct route_slot routes[ROUTE_CACHE_SLOTS];
};

enum http_ds {
	DS_IDLE = 0,     /* between messages */
	DS_HEAD,         /* a head is being read (maybe accumulated in buf) */
	DS_BODY_LEN,     /* body_left bytes to skip */
	DS_BODY_CHUNKED, /* chunked decoder */
	DS_BODY_CLOSE,   /* response body delimited by close */
	DS_LOST,         /* position unknown: scanning for a start line */
	DS_TUNNEL,       /* after CONNECT 2xx or 101: not HTTP any more */
};

struct http_dir {
	enum http_ds st;
	bool cur;          /* the message being read has a transaction: the one
	                      with id cur_id (requests) or the FIFO front
	                      (responses) */
	uint64_t cur_id;
	char *buf;         /* a head split across reads */
	size_t buf_len, buf_cap;
	uint64_t body_left;
	struct http_chunked chunked;
	unsigned garbage;  /* unparsable heads in a row */
};

struct http_txn {
	uint64_t id;
	struct sonde_span *span;   /* NULL when the host refused one */
	uint64_t resp_last_ns;     /* last chunk of the response seen */
	bool req_parsed;           /* the request head was parsed */
	bool req_done;             /* ... and its body went by */
	bool resp_started;         /* the final response head was parsed */
	bool resp_open_end;        /* the response's end can't be seen */
	bool is_head, is_connect;
	bool error_set;            /* error.type already set */
	bool resp_unsure;          /* response bytes were lost while it waited:
	                              "no response" cannot be told at close */
};

struct http_conn {
	struct http_plugin *pl;
	struct sonde_conn *conn;
	int req_dir;               /* enum sonde_dir carrying requests, -1 unknown */
	const char *const *routes; /* configured patterns (host-owned) */
	size_t n_routes;
	struct http_dir dir[2];
	struct http_txn q[HTTP_MAX_PENDING];
	unsigned q_front, q_len;
	uint64_t next_id;
	bool dead;
	bool muted;                      /* SDK 1.1: the kernel sends nothing more */
	struct sonde_capture_policy pol; /* SDK 1.1: what was asked */
};

/* --- transactions ----------------------------------------------------------- */

static struct http_txn *q_at(struct http_conn *hc, unsigned i)
{
	return &hc->q[(hc->q_front + i) % HTTP_MAX_PENDING];
}

static struct http_txn *q_front(struct http_conn *hc)
{
	return hc->q_len ? q_at(hc, 0) : NULL;
}

static struct http_txn *q_find(struct http_conn *hc, uint64_t id)
{
	for (unsigned i = 0; i < hc->q_len; i++)
		if (q_at(hc, i)->id == id)
			return q_at(hc, i);
	return NULL;
}

static struct http_txn *q_push(struct http_conn *hc)
{
	struct http_txn *t;

	if (hc->q_len == HTTP_MAX_PENDING)
		return NULL;
	t = q_at(hc, hc->q_len++);
	memset(t, 0, sizeof(*t));
	t->id = ++hc->next_id;
	return t;
}

static void txn_drop_span(struct http_conn *hc, struct http_txn *t)
{
	if (t->span)
		hc->pl->host->span_drop(t->span);
	t->span = NULL;
}

static void q_drop_front(struct http_conn *hc)
{
	txn_drop_span(hc, q_front(hc));
	hc->q_front = (hc->q_front + 1) % HTTP_MAX_PENDING;
	hc->q_len--;
}

/* End the oldest transaction's span at ts and remove it. */
static void q_finish_front(struct http_conn *hc, uint64_t ts)
{
	struct http_txn *t = q_front(hc);

	if (t->span)
		hc->pl->host->span_end(t->span, ts);
	t->span = NULL;
	hc->q_front = (hc->q_front + 1) % HTTP_MAX_PENDING;
	hc->q_len--;
}

/* Drop the transaction with this id if it is the newest one. */
static void q_drop_back(struct http_conn *hc, uint64_t id)
{
	struct http_txn *t;

	if (!hc->q_len)
		return;
	t = q_at(hc, hc->q_len - 1);
	if (t->id != id)
		return;
	txn_drop_span(hc, t);
	hc->q_len--;
}

static bool is_req_dir(const struct http_conn *hc, int dir)
{
	return hc->req_dir == dir;
}

static struct http_dir *req_side(struct http_conn *hc)
{
	return &hc->dir[hc->req_dir];
}

static struct http_dir *resp_side(struct http_conn *hc)
{
	return &hc->dir[!hc->req_dir];
}

static bool is_server(const struct http_conn *hc)
{
	return hc->req_dir == SONDE_DIR_INGRESS;
}

/* --- span attributes -------------------------------------------------------- */

static const char *const semconv_methods[] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
};

/* The method as a static string when semconv knows it, else NULL. */
static const char *known_method(const char *m, size_t n)
{
	for (size_t i = 0; i < sizeof(semconv_methods) / sizeof(semconv_methods[0]); i++)
		if (strlen(semconv_methods[i]) == n && !memcmp(semconv_methods[i], m, n))
			return semconv_methods[i];
	return NULL;
}

static bool method_is(const struct http_request *req, const char *m)
{
	return req->method_len == strlen(m) && !memcmp(req->method, m, req->method_len);
}

/* url.path from the request target: origin-form or absolute-form; none for
 * authority-form (CONNECT) and asterisk-form. */
static bool target_path(const struct http_request *req, const char **path, size_t *len)
{
	const char *t = req->target, *end = t + req->target_len, *p;

	if (t[0] != '/') {
		p = NULL;
		for (const char *s = t; s + 3 <= end; s++) {
			if (s[0] == ':' && s[1] == '/' && s[2] == '/') {
				p = s + 3;
				break;
			}
			if (s[0] == '/' || s[0] == '?')
				break;
		}
		if (!p)
			return false;
		while (p < end && *p != '/' && *p != '?' && *p != '#')
			p++;
		if (p == end || *p != '/') {
			*path = "/";
			*len = 1;
			return true;
		}
		t = p;
	}
	p = t;
	while (p < end && *p != '?' && *p != '#')
		p++;
	*path = t;
	*len = (size_t)(p - t);
	return true;
}

/* Host header value -> address (without brackets) and port (-1: none). */
static bool host_split(const char *v, size_t n, const char **addr, size_t *alen, int *port)
{
	const char *colon = NULL;
	long pv = 0;

	*port = -1;
	if (!n)
		return false;
	if (v[0] == '[') {
		const char *close = memchr(v, ']', n);
		if (!close || close == v + 1)
			return false;
		*addr = v + 1;
		*alen = (size_t)(close - v - 1);
		if (close + 1 < v + n && close[1] == ':')
			colon = close + 1;
	} else {
		colon = memchr(v, ':', n);
		*addr = v;
		*alen = colon ? (size_t)(colon - v) : n;
		if (!*alen)
			return false;
	}
	if (!colon)
		return true;
	for (const char *p = colon + 1; p < v + n; p++) {
		if (*p < '0' || *p > '9' || pv > 65535)
			return true;
		pv = pv * 10 + (*p - '0');
	}
	if (colon + 1 < v + n && pv > 0 && pv <= 65535)
		*port = (int)pv;
	return true;
}

static void set_server_address(struct http_conn *hc, struct sonde_span *s,
                               const struct http_request *req,
                               const struct sonde_conn_info *ci)
{
	const struct sonde_host_api *host = hc->pl->host;
	const struct http_header *h = http_header_find(req->headers, req->n_headers, "host");
	const char *addr = NULL;
	size_t alen = 0;
	int port = -1;

	if (!h || !host_split(h->value, h->value_len, &addr, &alen, &port))
		addr = NULL;
	if (!addr && ci) {
		addr = is_server(hc) ? ci->local_addr : ci->peer_addr;
		alen = strnlen(addr, sizeof(ci->local_addr));
	}
	if (port < 0 && ci)
		port = is_server(hc) ? ci->local_port : ci->peer_port;
	if (addr && alen)
		host->span_attr_str(s, "server.address", addr, alen);
	if (port > 0)
		host->span_attr_int(s, "server.port", port);
}

/* http_route_guess through the plugin's cache of recent paths. */
static const char *guess_route(struct http_plugin *pl, const char *path, size_t len, char *buf)
{
	size_t n = 0, rl;
	uint32_t h = 2166136261u;
	struct route_slot *slot;

	/* The guess reads the path up to its query or fragment: so does the key. */
	while (n < len && path[n] != '?' && path[n] != '#') {
		h = (h ^ (uint8_t)path[n]) * 16777619u;
		n++;
	}
	if (!n || n >= ROUTE_CACHE_LEN) {
		http_route_guess(path, len, buf, HTTP_ROUTE_MAX);
		return buf;
	}
	slot = &pl->routes[(h ^ (h >> 16)) & (ROUTE_CACHE_SLOTS - 1)];
	if (slot->path_len == n && !memcmp(slot->path, path, n))
		return slot->route;
	rl = http_route_guess(path, n, buf, HTTP_ROUTE_MAX);
	if (rl < ROUTE_CACHE_LEN) {
		slot->path_len = (uint8_t)n;
		memcpy(slot->path, path, n);
		memcpy(slot->route, buf, rl + 1);
	}
	return buf;
}

static const char *pick_route(struct http_conn *hc, const char *path, size_t len, char *buf)
{
	const char *r = NULL;

	if (hc->n_routes)
		r = http_route_find(hc->routes, hc->n_routes, path, len);
	if (r)
		return r;
	return guess_route(hc->pl, path, len, buf);
}

/* "METHOD route" (or the method alone) into buf, cut to fit. */
static const char *span_name(char *buf, size_t cap, const char *method, const char *route)
{
	size_t ml = strlen(method), rl = route ? strlen(route) : 0, n;

	n = ml < cap - 1 ? ml : cap - 1;
	memcpy(buf, method, n);
	if (route && n + 1 < cap - 1) {
		buf[n++] = ' ';
		if (rl > cap - 1 - n)
			rl = cap - 1 - n;
		memcpy(buf + n, route, rl);
		n += rl;
	}
	buf[n] = 0;
	return buf;
}

/* Decimal text of a status code (3 digits, or what fits). */
static size_t status_text(int status, char out[8])
{
	char tmp[8];
	size_t k = 0, n = 0;
	unsigned v = status < 0 ? 0 : (unsigned)status;

	do {
		tmp[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && k < 7);
	while (k)
		out[n++] = tmp[--k];
	out[n] = 0;
	return n;
}

/* Everything the request head tells: attributes, name, traceparent, metric. */
static void annotate_request(struct http_conn *hc, struct http_txn *t,
                             const struct http_request *req)
{
	const struct sonde_host_api *host = hc->pl->host;
	const struct sonde_conn_info *ci = host->conn_info(hc->conn);
	struct sonde_span *s = t->span;
	struct sonde_metric *m = is_server(hc) ? hc->pl->server_hist : hc->pl->client_hist;
	const struct http_header *h;
	const char *method = known_method(req->method, req->method_len);
	const char *path, *route = NULL;
	char route_buf[HTTP_ROUTE_MAX], name[HTTP_NAME_MAX], ver[8];
	size_t path_len;

	if (!s)
		return;
	if (method) {
		host->span_attr_str(s, "http.request.method", method, strlen(method));
	} else {
		size_t n = req->method_len < HTTP_METHOD_ORIG_MAX ? req->method_len
		                                                  : HTTP_METHOD_ORIG_MAX;
		host->span_attr_str(s, "http.request.method", "_OTHER", 6);
		host->span_attr_str(s, "http.request.method_original", req->method, n);
	}
	if (target_path(req, &path, &path_len)) {
		host->span_attr_str(s, "url.path", path,
		                    path_len < HTTP_PATH_MAX ? path_len : HTTP_PATH_MAX);
		route = pick_route(hc, path, path_len, route_buf);
		/* http.route is a server attribute; a client's template is url.template. */
		host->span_attr_str(s, is_server(hc) ? "http.route" : "url.template", route,
		                    strlen(route));
	}
	if (ci && ci->tls)
		host->span_attr_str(s, "url.scheme", "https", 5);
	else
		host->span_attr_str(s, "url.scheme", "http", 4);
	ver[0] = '1';
	ver[1] = '.';
	ver[2] = (char)('0' + (req->minor_version >= 0 && req->minor_version <= 9
	                       ? req->minor_version : 0));
	host->span_attr_str(s, "network.protocol.version", ver, 3);
	set_server_address(hc, s, req, ci);
	if (is_server(hc) && ci && ci->peer_addr[0])
		host->span_attr_str(s, "client.address", ci->peer_addr,
		                    strnlen(ci->peer_addr, sizeof(ci->peer_addr)));
	h = http_header_find(req->headers, req->n_headers, "user-agent");
	if (h && h->value_len)
		host->span_attr_str(s, "user_agent.original", h->value,
		                    h->value_len < HTTP_UA_MAX ? h->value_len : HTTP_UA_MAX);
	/* The incoming context a server span continues; on a client request,
	 * the one it forwards (1.1 hosts find the proxy's server span by it). */
	h = http_header_find(req->headers, req->n_headers, "traceparent");
	if (h && (is_server(hc) || SONDE_HAS_FIELD(host, struct sonde_host_api, span_set_pos)))
		host->span_set_traceparent(s, h->value, h->value_len); /* malformed: ignored */
	host->span_set_name(s, span_name(name, sizeof(name), method ? method : "HTTP", route));
	if (m)
		host->span_add_metric(s, m);
}

static void annotate_response(struct http_conn *hc, struct http_txn *t, int status)
{
	const struct sonde_host_api *host = hc->pl->host;
	char code[8];

	if (!t->span)
		return;
	host->span_attr_int(t->span, "http.response.status_code", status);
	if (status >= 500 || (!is_server(hc) && status >= 400)) {
		host->span_attr_str(t->span, "error.type", code, status_text(status, code));
		host->span_set_status(t->span, SONDE_STATUS_ERROR, NULL);
		t->error_set = true;
	}
}

/* --- direction helpers ---------------------------------------------------- */

static int buf_append(struct http_dir *d, const char *p, size_t n)
{
	size_t need = d->buf_len + n, cap = d->buf_cap ? d->buf_cap : HTTP_BUF_MIN;
	char *nb;

	if (need > d->buf_cap) {
		while (cap < need)
			cap *= 2;
		nb = realloc(d->buf, cap);
		if (!nb)
			return -1;
		d->buf = nb;
		d->buf_cap = cap;
	}
	memcpy(d->buf + d->buf_len, p, n);
	d->buf_len = need;
	return 0;
}

static void dir_reset(struct http_dir *d, enum http_ds st)
{
	d->st = st;
	d->cur = false;
	d->buf_len = 0;
	d->body_left = 0;
}

static void enter_tunnel(struct http_conn *hc)
{
	dir_reset(&hc->dir[0], DS_TUNNEL);
	dir_reset(&hc->dir[1], DS_TUNNEL);
}

/* The oldest transaction, if its response can no longer be delimited. */
static struct http_txn *open_end_front(struct http_conn *hc)
{
	struct http_txn *t = q_front(hc);

	return t && t->resp_open_end ? t : NULL;
}

static void finish_open_end(struct http_conn *hc)
{
	struct http_txn *t = open_end_front(hc);

	if (t)
		q_finish_front(hc, t->resp_last_ns);
}

/* A new request starts: whatever response could not be delimited is over,
 * and the response direction must look for the next status line. */
static void new_request_seen(struct http_conn *hc)
{
	struct http_dir *rs = resp_side(hc);

	finish_open_end(hc);
	if (rs->st == DS_BODY_CLOSE)
		dir_reset(rs, DS_LOST);
}

static void request_done(struct http_conn *hc, struct http_dir *d)
{
	struct http_txn *t = d->cur ? q_find(hc, d->cur_id) : NULL;

	if (t)
		t->req_done = true;
	dir_reset(d, DS_IDLE);
}

static void response_done(struct http_conn *hc, struct http_dir *d, uint64_t ts)
{
	if (d->cur && q_front(hc))
		q_finish_front(hc, ts);
	dir_reset(d, DS_IDLE);
}

static void message_done(struct http_conn *hc, struct http_dir *d, const struct sonde_chunk *c)
{
	if (is_req_dir(hc, c->dir))
		request_done(hc, d);
	else
		response_done(hc, d, c->ts_unix_ns);
}

/* A body whose framing was lost: the request is over as far as we can
 * tell; the response becomes open-ended. */
static void lose_body(struct http_conn *hc, struct http_dir *d, const struct sonde_chunk *c)
{
	struct http_txn *t;

	if (is_req_dir(hc, c->dir)) {
		t = d->cur ? q_find(hc, d->cur_id) : NULL;
		if (t)
			t->req_done = true;
	} else if (d->cur && (t = q_front(hc))) {
		t->resp_open_end = true;
		t->resp_last_ns = c->ts_unix_ns;
	}
	dir_reset(d, DS_LOST);
}

/*
 * Bytes of direction `dir` were lost. `strict`: they were lost after bytes
 * of the same write (so they may hold whole responses); otherwise they were
 * lost before a new write (a GAP), whose first byte starts afresh.
 *
 * Response side, GAP: the response in progress is damaged, so its
 * transaction is dropped. Of the requests still waiting, only the newest
 * is kept: a response that starts a write after the gap answers a request
 * already seen, and when several wait, the older ones' responses are the
 * likelier to have been lost (a keep-alive client only sends the next
 * request after the previous response; a pipelining server answers in
 * order). A request still being read takes no part.
 */
static void lose_bytes(struct http_conn *hc, int dir, bool strict)
{
	struct http_dir *d = &hc->dir[dir];
	struct http_dir *rq = req_side(hc);
	struct http_txn *front = q_front(hc);
	unsigned awaiting, reading;

	if (d->st == DS_TUNNEL)
		return;
	if (is_req_dir(hc, dir)) {
		if (d->st == DS_HEAD && d->cur)
			q_drop_back(hc, d->cur_id);
		else
			request_done(hc, d);
		dir_reset(d, DS_LOST);
		return;
	}
	reading = rq->cur && rq->st != DS_IDLE && hc->q_len &&
	          q_at(hc, hc->q_len - 1)->id == rq->cur_id;
	awaiting = hc->q_len - reading;
	for (unsigned i = 0; i < awaiting; i++)
		q_at(hc, i)->resp_unsure = true;
	if (awaiting && !strict && (front->resp_started || d->st == DS_HEAD)) {
		q_drop_front(hc);
		awaiting--;
	}
	while (awaiting > (strict ? 0u : 1u)) {
		q_drop_front(hc);
		awaiting--;
	}
	dir_reset(d, DS_LOST);
}

static int give_up(struct http_conn *hc, const char *why)
{
	const struct sonde_host_api *host = hc->pl->host;

	host->log(hc->pl->self, SONDE_LOG_DEBUG, "connection given up: %s", why);
	while (hc->q_len)
		q_drop_front(hc);
	for (int i = 0; i < 2; i++) {
		free(hc->dir[i].buf);
		hc->dir[i].buf = NULL;
		hc->dir[i].buf_cap = 0;
		dir_reset(&hc->dir[i], DS_TUNNEL);
	}
	hc->dead = true;
	return SONDE_ERR_PROTO;
}

/* An unparsable head. Returns 0, or -1 when there was too much of it. */
static int garbage(struct http_conn *hc, struct http_dir *d, const struct sonde_chunk *c)
{
	if (is_req_dir(hc, c->dir) && d->cur)
		q_drop_back(hc, d->cur_id);
	dir_reset(d, DS_LOST);
	return ++d->garbage > HTTP_MAX_GARBAGE ? -1 : 0;
}

/* --- heads ------------------------------------------------------------------ */

static int on_request(struct http_conn *hc, struct http_dir *d, const struct http_request *req)
{
	struct http_txn *t = d->cur ? q_find(hc, d->cur_id) : NULL;
	struct http_framing f;

	if (http_request_framing(req, &f))
		return -1;
	d->garbage = 0;
	if (t) {
		t->req_parsed = true;
		t->is_head = method_is(req, "HEAD");
		t->is_connect = method_is(req, "CONNECT");
		annotate_request(hc, t, req);
	}
	if (f.kind == HTTP_BODY_LENGTH) {
		d->st = DS_BODY_LEN;
		d->body_left = f.length;
	} else if (f.kind == HTTP_BODY_CHUNKED) {
		d->st = DS_BODY_CHUNKED;
		http_chunked_init(&d->chunked);
	} else {
		request_done(hc, d);
	}
	return 0;
}

static int on_response(struct http_conn *hc, struct http_dir *d, const struct sonde_chunk *c,
                       const struct http_response *res)
{
	struct http_txn *t = q_front(hc);
	struct http_framing f;

	if (t && !t->req_parsed)
		t = NULL;
	if (http_response_framing(res, t && t->is_head, t && t->is_connect, &f))
		return -1;
	d->garbage = 0;
	if (res->status < 200) {
		if (res->status == 101) { /* Switching Protocols: HTTP ends here */
			if (t) {
				annotate_response(hc, t, res->status);
				q_finish_front(hc, c->ts_unix_ns);
			}
			enter_tunnel(hc);
			return 0;
		}
		dir_reset(d, DS_IDLE); /* 100 Continue, 103 Early Hints: not the end */
		return 0;
	}
	if (t) {
		annotate_response(hc, t, res->status);
		t->resp_started = true;
		t->resp_last_ns = c->ts_unix_ns;
	}
	d->cur = t != NULL;
	if (t && t->is_connect && res->status < 300) {
		q_finish_front(hc, c->ts_unix_ns);
		enter_tunnel(hc);
		return 0;
	}
	switch (f.kind) {
	case HTTP_BODY_NONE:
		response_done(hc, d, c->ts_unix_ns);
		break;
	case HTTP_BODY_LENGTH:
		d->st = DS_BODY_LEN;
		d->body_left = f.length;
		break;
	case HTTP_BODY_CHUNKED:
		d->st = DS_BODY_CHUNKED;
		http_chunked_init(&d->chunked);
		break;
	case HTTP_BODY_CLOSE:
		if (t)
			t->resp_open_end = true;
		d->st = DS_BODY_CLOSE;
		break;
	}
	return 0;
}

/* Parse a whole head in buf. Returns its length (handled), 0 when more
 * bytes are needed, -1 for garbage. */
static int try_head(struct http_conn *hc, struct http_dir *d, const struct sonde_chunk *c,
                    const char *buf, size_t n)
{
	int r;

	if (is_req_dir(hc, c->dir)) {
		struct http_request req;
		r = http_parse_request(buf, n, &req);
		if (r > 0 && on_request(hc, d, &req))
			r = -1;
	} else {
		struct http_response res;
		r = http_parse_response(buf, n, &res);
		if (r > 0 && on_response(hc, d, c, &res))
			r = -1;
	}
	if (r == HTTP_PARSE_INCOMPLETE)
		return 0;
	return r < 0 ? -1 : r;
}

/* Did bytes old..len of buf complete an empty line (the end of a head)? */
static bool has_head_end(const char *buf, size_t old, size_t len)
{
	for (size_t i = old ? old : 1; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i - 1] == '\n' || (i >= 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n'))
			return true;
	}
	return false;
}

/* The head was cut (the rest of the write was not captured): take what the
 * start line and the complete header lines say, then the stream is lost. */
static void head_cut(struct http_conn *hc, struct http_dir *d, const struct sonde_chunk *c)
{
	struct http_txn *t;

	if (is_req_dir(hc, c->dir)) {
		struct http_request req;
		t = d->cur ? q_find(hc, d->cur_id) : NULL;
		if (t && http_parse_request_prefix(d->buf, d->buf_len, &req) > 0) {
			t->req_parsed = true;
			t->req_done = true;
			t->is_head = method_is(&req, "HEAD");
			t->is_connect = method_is(&req, "CONNECT");
			annotate_request(hc, t, &req);
		} else if (d->cur) {
			q_drop_back(hc, d->cur_id);
		}
		dir_reset(d, DS_LOST);
		return;
	}
	struct http_response res;
	t = q_front(hc);
	if (!t || !t->req_parsed || http_parse_response_prefix(d->buf, d->buf_len, &res) <= 0 ||
	    res.status < 200) {
		lose_bytes(hc, c->dir, true);
		return;
	}
	annotate_response(hc, t, res.status);
	t->resp_started = true;
	if (t->is_head || res.status == 204 || res.status == 304) {
		q_finish_front(hc, c->ts_unix_ns); /* no body: it ended in this write */
	} else {
		t->resp_open_end = true;
		t->resp_last_ns = c->ts_unix_ns;
	}
	dir_reset(d, DS_LOST);
}

/* --- per-state steps: each consumes bytes of data[pos..len) or changes
 * state; a negative result gives the connection up. ------------------------ */

static ssize_t step_idle(struct http_conn *hc, struct http_dir *d, const struct sonde_chunk *c,
                         const char *data, size_t pos, size_t len)
{
	const struct sonde_host_api *host = hc->pl->host;
	struct http_txn *t;
	size_t p = pos;

	while (p < len && (data[p] == '\r' || data[p] == '\n'))
		p++;
	if (p > pos)
		return (ssize_t)(p - pos);
	dir_reset(d, DS_HEAD);
	if (!is_req_dir(hc, c->dir))
		return 0;
	new_request_seen(hc);
	t = q_push(hc);
	if (!t)
		return give_up(hc, "too many pipelined requests");
	t->span = host->span_start(hc->conn, "HTTP",
	                           is_server(hc) ? SONDE_SPAN_SERVER : SONDE_SPAN_CLIENT,
	                           c->ts_unix_ns);
	/* Where the request starts in the stream: the host links the two ends
	 * of a connection it watches on both sides by it. */
	if (t->span && SONDE_HAS_FIELD(host, struct sonde_host_api, span_set_pos) &&
	    host->span_set_pos && SONDE_HAS_FIELD(c, struct sonde_chunk, pos))
		host->span_set_pos(t->span, c->source, c->pos + pos);
	d->cur = true;
	d->cur_id = t->id;
	return 0;
}

static ssize_t step_head(struct http_conn *hc, struct http_dir *d, const struct sonde_chunk *c,
                         const char *p, size_t n)
{
	size_t old = d->buf_len, k;
	int r;

	if (!old) {
		r = try_head(hc, d, c, p, n);
		if (r > 0)
			return r;
		if (r < 0)
			return garbage(hc, d, c) ? give_up(hc, "garbage") : 1;
		if (n >= HTTP_HEAD_MAX)
			return give_up(hc, "head too long");
		if (buf_append(d, p, n))
			return give_up(hc, "out of memory");
		return (ssize_t)n;
	}
	k = n < HTTP_HEAD_MAX - old ? n : HTTP_HEAD_MAX - old;
	if (buf_append(d, p, k))
		return give_up(hc, "out of memory");
	if (!has_head_end(d->buf, old, d->buf_len)) {
		if (d->buf_len >= HTTP_HEAD_MAX)
			return give_up(hc, "head too long");
		return (ssize_t)k;
	}
	r = try_head(hc, d, c, d->buf, d->buf_len);
	if (r > 0 && (size_t)r > old) {
		d->buf_len = 0;
		return (ssize_t)((size_t)r - old);
	}
	if (r != 0) {
		if (r > 0) /* cannot happen: the head would have ended earlier */
			dir_reset(d, DS_LOST);
		else if (garbage(hc, d, c))
			return give_up(hc, "garbage");
		return (ssize_t)k;
	}
	if (d->buf_len >= HTTP_HEAD_MAX)
		return give_up(hc, "head too long");
	return (ssize_t)k;
}

static ssize_t step_body_len(struct http_conn *hc, struct http_dir *d,
                             const struct sonde_chunk *c, size_t n)
{
	size_t k = n < d->body_left ? n : (size_t)d->body_left;

	d->body_left -= k;
	if (!d->body_left)
		message_done(hc, d, c);
	return (ssize_t)k;
}

static ssize_t step_chunked(struct http_conn *hc, struct http_dir *d,
                            const struct sonde_chunk *c, const char *p, size_t n)
{
	ssize_t k = http_chunked_feed(&d->chunked, p, n);

	if (k < 0) {
		lose_body(hc, d, c);
		return 0;
	}
	if (http_chunked_done(&d->chunked))
		message_done(hc, d, c);
	return k;
}

/* Scan line starts for the start of a message. */
static ssize_t step_lost(struct http_conn *hc, struct http_dir *d, const struct sonde_chunk *c,
                         const char *data, size_t pos, size_t len)
{
	bool req = is_req_dir(hc, c->dir);
	struct http_txn *t = req ? NULL : open_end_front(hc);
	size_t p = pos;

	while (p < len) {
		if (p > 0 && data[p - 1] != '\n') {
			const char *nl = memchr(data + p, '\n', len - p);
			if (!nl)
				break;
			p = (size_t)(nl - data) + 1;
			continue;
		}
		if (http_start_line_check(data + p, len - p, req) >= 0) {
			if (t && p > pos)
				t->resp_last_ns = c->ts_unix_ns;
			if (t)
				finish_open_end(hc);
			dir_reset(d, DS_IDLE);
			return (ssize_t)(p - pos);
		}
		p++;
	}
	if (t)
		t->resp_last_ns = c->ts_unix_ns;
	return (ssize_t)(len - pos);
}

static ssize_t step(struct http_conn *hc, const struct sonde_chunk *c, const char *data,
                    size_t pos, size_t len)
{
	struct http_dir *d = &hc->dir[c->dir];
	struct http_txn *t;

	switch (d->st) {
	case DS_IDLE:
		return step_idle(hc, d, c, data, pos, len);
	case DS_HEAD:
		return step_head(hc, d, c, data + pos, len - pos);
	case DS_BODY_LEN:
		return step_body_len(hc, d, c, len - pos);
	case DS_BODY_CHUNKED:
		return step_chunked(hc, d, c, data + pos, len - pos);
	case DS_BODY_CLOSE:
		t = d->cur ? open_end_front(hc) : NULL;
		if (t)
			t->resp_last_ns = c->ts_unix_ns;
		return (ssize_t)(len - pos);
	case DS_LOST:
		return step_lost(hc, d, c, data, pos, len);
	case DS_TUNNEL:
		return (ssize_t)(len - pos);
	}
	return (ssize_t)(len - pos);
}

/* Bytes of this chunk that were transferred but not captured. */
static void feed_hidden(struct http_conn *hc, const struct sonde_chunk *c, uint64_t n)
{
	struct http_dir *d = &hc->dir[c->dir];
	struct http_txn *t;

	switch (d->st) {
	case DS_IDLE:
		lose_bytes(hc, c->dir, true);
		break;
	case DS_HEAD:
		head_cut(hc, d, c);
		break;
	case DS_BODY_LEN:
		if (n < d->body_left) {
			d->body_left -= n;
			break;
		}
		n -= d->body_left;
		d->body_left = 0;
		message_done(hc, d, c);
		if (n)
			lose_bytes(hc, c->dir, true);
		break;
	case DS_BODY_CHUNKED:
		if (http_chunked_skip(&d->chunked, n))
			lose_body(hc, d, c);
		break;
	case DS_BODY_CLOSE:
	case DS_LOST:
		t = is_req_dir(hc, c->dir) ? NULL : open_end_front(hc);
		if (t)
			t->resp_last_ns = c->ts_unix_ns;
		break;
	case DS_TUNNEL:
		break;
	}
}

/* Role UNKNOWN: the first request line (or status line) seen tells which
 * direction carries requests. */
static bool learn_role(struct http_conn *hc, const struct sonde_chunk *c, const char *data,
                       size_t len)
{
	for (size_t p = 0; p < len; p++) {
		if (p > 0 && data[p - 1] != '\n')
			continue;
		if (http_start_line_check(data + p, len - p, 1) > 0) {
			hc->req_dir = (int)c->dir;
			return true;
		}
		if (http_start_line_check(data + p, len - p, 0) > 0) {
			hc->req_dir = !c->dir;
			return true;
		}
	}
	return false;
}

/* --- protocol callbacks ------------------------------------------------------ */

static int http_detect(void *plugin_state, const struct sonde_conn_info *ci,
                       const struct sonde_chunk *c)
{
	const char *data;
	int rq, rs;

	if (!c)
		return SONDE_DETECT_NO;
	if (!c->len)
		return SONDE_DETECT_NEED_MORE;
	if (!c->data)
		return SONDE_DETECT_NO;
	data = (const char *)c->data;
	rq = http_start_line_check(data, c->len, 1);
	rs = http_start_line_check(data, c->len, 0);
	if (rq > 0 || rs > 0)
		return SONDE_DETECT_SURE;
	if (rq == 0 || rs == 0)
		return SONDE_DETECT_NEED_MORE;
	return SONDE_DETECT_NO;
}

/* Configured route patterns for this connection's service; invalid ones are
 * reported once per list (the host keeps the list until fini). */
static void load_routes(struct http_plugin *pl, struct http_conn *hc)
{
	const char *const *vals = NULL;
	size_t n = pl->host->config_get(pl->self, hc->conn, "routes", &vals);

	if (!n || !vals)
		return;
	hc->routes = vals;
	hc->n_routes = n;
	if (pl->checked_routes == vals)
		return;
	pl->checked_routes = vals;
	for (size_t i = 0; i < n; i++)
		if (!http_route_pattern_valid(vals[i]))
			pl->host->log(pl->self, SONDE_LOG_WARN,
			              "routes: ignoring invalid pattern \"%s\" (patterns start "
			              "with '/'; {name} or * stand for one segment; a final * "
			              "for the rest)", vals[i] ? vals[i] : "(null)");
}

static int http_conn_open(void *plugin_state, struct sonde_conn *conn,
                          const struct sonde_conn_info *ci, void **conn_state)
{
	struct http_plugin *pl = plugin_state;
	struct http_conn *hc;

	if (!pl || !conn_state)
		return SONDE_ERR_INVAL;
	hc = calloc(1, sizeof(*hc));
	if (!hc)
		return SONDE_ERR_NOMEM;
	hc->pl = pl;
	hc->conn = conn;
	hc->pol.struct_size = sizeof(hc->pol);
	switch (ci ? ci->role : SONDE_ROLE_UNKNOWN) {
	case SONDE_ROLE_SERVER:
		hc->req_dir = SONDE_DIR_INGRESS;
		break;
	case SONDE_ROLE_CLIENT:
		hc->req_dir = SONDE_DIR_EGRESS;
		break;
	default:
		hc->req_dir = -1;
		break;
	}
	/* A connection seen from its start begins between messages; one that
	 * was already open may begin anywhere. */
	dir_reset(&hc->dir[0], hc->req_dir < 0 ? DS_LOST : DS_IDLE);
	dir_reset(&hc->dir[1], hc->req_dir < 0 ? DS_LOST : DS_IDLE);
	load_routes(pl, hc);
	*conn_state = hc;
	return SONDE_OK;
}

/* Tell the kernel what this connection needs from now on (SDK 1.1). */
static void ask_capture(struct http_conn *hc)
{
	const struct sonde_host_api *h = hc->pl->host;

	if (HOST_HAS(h, conn_set_capture))
		h->conn_set_capture(hc->conn, &hc->pol); /* SONDE_ERR_UNSUPPORTED: no kernel */
}

/* After a chunk: body bytes of a known count come next in its direction
 * (skip_to), or the connection became a tunnel (mute). Positions are the
 * socket's: chunks from a TLS library set no skip_to. */
static void after_chunk(struct http_conn *hc, const struct sonde_chunk *c)
{
	const struct http_dir *d = &hc->dir[c->dir];
	uint64_t left = 0, to;

	if (hc->muted || !HOST_HAS(hc->pl->host, conn_set_capture))
		return;
	if (hc->dir[0].st == DS_TUNNEL && hc->dir[1].st == DS_TUNNEL && !hc->q_len) {
		hc->pol.flags |= SONDE_CAPTURE_MUTE;
		hc->muted = true;
		ask_capture(hc);
		return;
	}
	if (d->st == DS_BODY_LEN)
		left = d->body_left;
	else if (d->st == DS_BODY_CHUNKED)
		left = http_chunked_data_left(&d->chunked);
	if (left < HTTP_SKIP_MIN || !SONDE_HAS_FIELD(c, struct sonde_chunk, source) ||
	    c->source != SONDE_SRC_SOCKET)
		return;
	to = c->pos + c->orig_len + left;
	if (to <= hc->pol.skip_to[c->dir])
		return;
	hc->pol.skip_to[c->dir] = to;
	ask_capture(hc);
}

static int http_conn_data(void *conn_state, struct sonde_conn *conn,
                          const struct sonde_chunk *c)
{
	struct http_conn *hc = conn_state;
	const char *data;
	size_t len, pos = 0;

	if (!hc || !c || (c->dir != SONDE_DIR_INGRESS && c->dir != SONDE_DIR_EGRESS))
		return SONDE_ERR_INVAL;
	if (hc->dead)
		return SONDE_ERR_PROTO;
	data = (const char *)c->data;
	len = data ? c->len : 0;
	if (hc->req_dir < 0 && !learn_role(hc, c, data, len))
		return SONDE_OK;
	if (c->flags & SONDE_CHUNK_GAP)
		lose_bytes(hc, c->dir, false);
	while (pos < len) {
		ssize_t k = step(hc, c, data, pos, len);
		if (k < 0)
			return SONDE_ERR_PROTO;
		pos += (size_t)k;
	}
	if (c->orig_len > len)
		feed_hidden(hc, c, c->orig_len - len);
	after_chunk(hc, c);
	return SONDE_OK;
}

static void http_conn_close(void *conn_state, struct sonde_conn *conn, uint64_t ts_unix_ns)
{
	struct http_conn *hc = conn_state;
	const struct sonde_host_api *host;

	if (!hc)
		return;
	host = hc->pl->host;
	while (hc->q_len) {
		struct http_txn *t = q_front(hc);
		if (t->resp_open_end) {
			q_finish_front(hc, t->resp_last_ns);
		} else if (t->resp_started) {
			if (t->span && !t->error_set)
				host->span_attr_str(t->span, "error.type", "incomplete_response", 19);
			if (t->span)
				host->span_set_status(t->span, SONDE_STATUS_ERROR,
				                      "connection closed before the response ended");
			q_finish_front(hc, ts_unix_ns);
		} else if (t->req_parsed && t->span && !t->resp_unsure) {
			/* A request that never got an answer (the peer crashed, the
			 * process exited) is still a request, and a failed one. */
			host->span_attr_str(t->span, "error.type", "no_response", 11);
			host->span_set_status(t->span, SONDE_STATUS_ERROR,
			                      "connection closed before any response");
			q_finish_front(hc, ts_unix_ns);
		} else {
			q_drop_front(hc);
		}
	}
	free(hc->dir[0].buf);
	free(hc->dir[1].buf);
	free(hc);
}

/* --- plugin -------------------------------------------------------------------- */

static const double duration_bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
};

static const char *const server_keys[] = {
	"http.request.method", "http.response.status_code", "http.route",
	"url.scheme",          "network.protocol.version",  "error.type",
};

static const char *const client_keys[] = {
	"http.request.method",      "http.response.status_code", "url.scheme",
	"network.protocol.version", "error.type",                "server.address",
	"server.port",
};

static struct sonde_metric *register_hist(struct http_plugin *pl, const char *name,
                                          const char *descr, const char *const *keys,
                                          size_t n_keys)
{
	struct sonde_histogram_desc d = {
		.struct_size = sizeof(d),
		.name = name,
		.unit = "s",
		.description = descr,
		.bounds = duration_bounds,
		.n_bounds = sizeof(duration_bounds) / sizeof(duration_bounds[0]),
		.attr_keys = keys,
		.n_attr_keys = n_keys,
	};
	struct sonde_metric *m = pl->host->histogram_register(pl->self, &d);

	if (!m)
		pl->host->log(pl->self, SONDE_LOG_WARN, "cannot register %s: no metric", name);
	return m;
}

static int http_init(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
                     void **plugin_state)
{
	struct http_plugin *pl;

	if (!host || host->abi_major != SONDE_ABI_MAJOR ||
	    host->struct_size < offsetof(struct sonde_host_api, histogram_record) +
	                            sizeof(host->histogram_record))
		return SONDE_ERR_ABI;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return SONDE_ERR_NOMEM;
	pl->host = host;
	pl->self = self;
	pl->server_hist = register_hist(pl, "http.server.request.duration",
	                                "Duration of HTTP server requests.", server_keys,
	                                sizeof(server_keys) / sizeof(server_keys[0]));
	pl->client_hist = register_hist(pl, "http.client.request.duration",
	                                "Duration of HTTP client requests.", client_keys,
	                                sizeof(client_keys) / sizeof(client_keys[0]));
	*plugin_state = pl;
	return SONDE_OK;
}

static void http_fini(void *plugin_state)
{
	free(plugin_state);
}

static const struct sonde_protocol http_protocol = {
	.struct_size = sizeof(struct sonde_protocol),
	.name = "http",
	.detect = http_detect,
	.conn_open = http_conn_open,
	.conn_data = http_conn_data,
	.conn_close = http_conn_close,
};

static const struct sonde_protocol *const http_protocols[] = { &http_protocol, NULL };

static const struct sonde_plugin http_plugin_desc = {
	.abi_major = SONDE_ABI_MAJOR,
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "http",
	.version = "0.1.0",
	.license = "Apache-2.0",
	.description = "HTTP/1.x requests and responses as OpenTelemetry HTTP spans and "
	               "request-duration histograms",
	.init = http_init,
	.fini = http_fini,
	.protocols = http_protocols,
};

SONDE_PLUGIN_DEFINE(http_plugin_desc)
