/*
 * grpc_plugin.c - the HTTP/2 and gRPC protocol plugin: the bytes of a
 * connection in, one span per HTTP/2 stream out (an RPC span for a gRPC
 * call whose service and method are known, an HTTP span otherwise), with
 * the duration histograms of semantic conventions v1.27.0.
 *
 * The one idea: h2_conn.c turns bytes into events (header blocks already
 * decoded, DATA ends, resets, losses) and this file keeps one small record
 * per open stream, filled from those events and turned into span
 * attributes only when the stream ends, because a gRPC call's outcome (and
 * sometimes even whether it is gRPC) is known only from its trailers.
 *
 * Choices worth knowing when reading the code:
 *  - The span starts when the request's header block is decoded, with the
 *    time of the chunk that held its HEADERS frame, and ends with the chunk
 *    that ends the response (END_STREAM), or with a RST_STREAM (error).
 *  - A field that HPACK could not attribute (see hpack.h) is simply absent:
 *    the span says sonde.h2.headers_partial=true and carries what is known.
 *    RPC spans need rpc.service and rpc.method (semconv: an RPC span only
 *    when they are known); a gRPC call whose :path is unknown is an HTTP
 *    span with rpc.system=grpc.
 *  - Lost bytes (a gap, a cut through structure) make every stream open at
 *    that moment "uncertain": it still ends normally if its end is seen,
 *    but at close it is dropped (span_drop, counted) instead of being
 *    reported as cut short, since its end may have been among the lost
 *    bytes. A status that was lost is left out, never guessed.
 *  - Header values other than method, path, scheme, authority, status,
 *    content-type, grpc-status and traceparent are never looked at; message
 *    payloads are never read.
 *  - SDK 1.1, used only when the host has it (abi_minor >= 1): a SERVER
 *    span of a stream that starts while another stream of its connection
 *    is in flight does not become its thread's active span (one thread
 *    reads every stream of a multiplexed connection, so it would be a
 *    guessed parent); a capture cap of 16384 bytes per read or write;
 *    counters for dropped streams, lost positions and unknown header
 *    fields; a periodic timer that drops uncertain streams nobody has
 *    heard of for GRPC_EXPIRE_NS. On a 1.0 host none of these exist and
 *    the plugin behaves as before.
 */
#include <sonde/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "h2_conn.h"
#include "http_route.h"

#define GRPC_MAX_STREAMS 1000  /* tracked per connection (host: 1024 spans) */
#define GRPC_PATH_MAX 1024     /* url.path is cut there */
#define GRPC_AUTH_MAX 256
#define GRPC_METHOD_ORIG_MAX 16
#define GRPC_TP_MAX 64
#define GRPC_NAME_MAX (GRPC_PATH_MAX + 16)
#define GRPC_LOST_CHUNKS_MAX 64 /* chunks without a frame boundary: give up */
#define GRPC_CAPTURE_CAP 16384  /* bytes captured per read/write (SDK 1.1) */
#define GRPC_EXPIRE_NS (60ull * 1000000000ull)  /* uncertain and silent: dropped */
#define GRPC_EXPIRE_EVERY_NS (10ull * 1000000000ull)

/* The host has a 1.1 member. */
#define HOST_HAS(h, f) ((h)->abi_minor >= 1 && SONDE_HAS_FIELD(h, struct sonde_host_api, f))

struct grpc_stats {
	uint64_t streams, spans, rpc_spans, dropped, refused, orphans, untracked, pushes,
		resets, partial, losses, resyncs, garbage, hpack_errors, unknown_fields, stream_ctx;
};

struct grpc_conn;

struct grpc_plugin {
	const struct sonde_host_api *host;
	struct sonde_plugin_handle *self;
	struct sonde_metric *http_server, *http_client, *rpc_server, *rpc_client;
	/* SDK 1.1 counters (NULL on a 1.0 host) */
	struct sonde_metric *c_dropped, *c_losses, *c_unknown;
	struct sonde_timer *expiry;  /* owned by the host; freed by it at unload */
	struct grpc_conn *conns;     /* open connections, for the expiry timer */
	const char *const *checked_routes;
	struct grpc_stats tot;
};

/* Stream flags. */
#define S_REQ_END 0x001     /* the client's side ended */
#define S_RESP_HDRS 0x002   /* the final response head was seen */
#define S_UNCERTAIN 0x004   /* bytes were lost while it was open */
#define S_GRPC 0x008        /* content-type application/grpc or grpc-status */
#define S_PARTIAL 0x010     /* some header field could not be decoded */

enum { M_UNKNOWN = 0, M_OTHER = 255 };

static const char *const methods[] = {
	NULL, "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
};
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

struct h2s {
	uint32_t id;
	uint16_t flags;
	uint8_t method;            /* index in methods[], M_UNKNOWN or M_OTHER */
	int8_t scheme_https;       /* from :scheme: 1, 0, or -1 unknown */
	int16_t status;            /* :status, 0 = unknown */
	int16_t grpc_status;       /* -1 = unknown */
	int32_t auth_port;         /* port in :authority, -1 = none */
	struct sonde_span *span;   /* NULL when the host refused one */
	uint64_t start_ns;
	uint64_t last_ns;          /* time of the last frame of this stream seen */
	uint8_t tls;               /* its request came from a TLS library (chunk source) */
	char *path;                /* :path as sent (cut), NULL = unknown */
	char *authority;           /* host part of :authority, NULL = unknown */
	char method_orig[GRPC_METHOD_ORIG_MAX];
};

/* What one header block said (filled by the field callback). */
struct blk_scratch {
	int dir;
	uint32_t sid;
	uint8_t type;
	bool end_stream;
	uint64_t ts;
	bool has_method, has_path, has_status, has_grpc_status, has_ct, ct_grpc, has_auth,
		has_scheme, scheme_https, has_tp;
	int status, grpc_status;
	char method[GRPC_METHOD_ORIG_MAX];
	size_t method_len;
	char path[GRPC_PATH_MAX];
	size_t path_len;
	char auth[GRPC_AUTH_MAX];
	size_t auth_len;
	char tp[GRPC_TP_MAX];
	size_t tp_len;
};

/* Same-host links: a direction's chunk positions are followed from its
 * first byte (chunk->pos 0) without a hole, in one source. */
struct pos_track {
	bool started, exact;
	uint8_t src;
	uint64_t next;
};

struct grpc_conn {
	struct grpc_plugin *pl;
	struct grpc_conn *next, **pprev; /* pl->conns */
	struct sonde_conn *conn;
	struct h2_conn *h2;
	const char *const *routes;
	size_t n_routes;
	struct h2s *s;             /* sorted by id */
	size_t n, cap;
	uint32_t max_sid;          /* highest request stream id seen */
	uint64_t cur_ts;
	uint8_t cur_tls;           /* the chunk being read came from a TLS library */
	struct blk_scratch b;
	struct grpc_stats st;
	struct pos_track trk[2];   /* per direction */
	bool dead;
};

/* --- small text helpers ------------------------------------------------------------ */

static bool name_is(const uint8_t *n, size_t nl, const char *s)
{
	return nl == strlen(s) && !memcmp(n, s, nl);
}

static void copy_cut(char *dst, size_t cap, size_t *len, const uint8_t *v, size_t vl)
{
	size_t k = vl < cap - 1 ? vl : cap - 1;

	memcpy(dst, v, k);
	dst[k] = 0;
	*len = k;
}

/* A 1..3 digit number, or -1. */
static int small_int(const uint8_t *v, size_t vl)
{
	int x = 0;

	if (!vl || vl > 3)
		return -1;
	for (size_t i = 0; i < vl; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	return x;
}

/* application/grpc, application/grpc+proto, application/grpc;... */
static bool ct_is_grpc(const uint8_t *v, size_t vl)
{
	static const char g[] = "application/grpc";
	size_t n = sizeof(g) - 1;

	if (vl < n || strncasecmp((const char *)v, g, n))
		return false;
	return vl == n || v[n] == '+' || v[n] == ';';
}

/* --- streams -------------------------------------------------------------------------- */

static size_t s_lower(const struct grpc_conn *gc, uint32_t id)
{
	size_t lo = 0, hi = gc->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (gc->s[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct h2s *s_find(struct grpc_conn *gc, uint32_t id)
{
	size_t i = s_lower(gc, id);

	return i < gc->n && gc->s[i].id == id ? &gc->s[i] : NULL;
}

static void s_free_fields(struct h2s *s)
{
	free(s->path);
	free(s->authority);
	s->path = s->authority = NULL;
}

/* Forget a stream whose span was ended or dropped. */
static void s_remove(struct grpc_conn *gc, struct h2s *s)
{
	size_t i = (size_t)(s - gc->s);

	s_free_fields(s);
	memmove(&gc->s[i], &gc->s[i + 1], (gc->n - i - 1) * sizeof(*s));
	gc->n--;
}

/* Add v to a 1.1 counter (no-op on a 1.0 host) with one attribute value. */
static void count(struct grpc_conn *gc, struct sonde_metric *m, double v, const char *attr)
{
	const char *vals[1] = { attr };

	if (m && v > 0)
		gc->pl->host->counter_add(m, gc->conn, v, vals);
}

/* Drop a stream without a span (reason: sonde.reason of the counter). */
static void s_drop(struct grpc_conn *gc, struct h2s *s, const char *reason)
{
	if (s->span)
		gc->pl->host->span_drop(s->span);
	gc->st.dropped++;
	count(gc, gc->pl->c_dropped, 1, reason);
	s_remove(gc, s);
}

/* Room for one more stream: make it by dropping the oldest uncertain one. */
static bool s_room(struct grpc_conn *gc)
{
	struct h2s *ns;

	if (gc->n == gc->cap && gc->cap < GRPC_MAX_STREAMS) {
		size_t cap = gc->cap ? gc->cap * 2 : 8;
		if (cap > GRPC_MAX_STREAMS)
			cap = GRPC_MAX_STREAMS;
		ns = realloc(gc->s, cap * sizeof(*ns));
		if (ns) {
			gc->s = ns;
			gc->cap = cap;
		}
	}
	if (gc->n < gc->cap)
		return true;
	for (size_t i = 0; i < gc->n; i++) {
		if (gc->s[i].flags & S_UNCERTAIN) {
			s_drop(gc, &gc->s[i], "evicted");
			return true;
		}
	}
	return false;
}

static struct h2s *s_add(struct grpc_conn *gc, uint32_t id)
{
	size_t i;
	struct h2s *s;

	if (!s_room(gc))
		return NULL;
	i = s_lower(gc, id);
	memmove(&gc->s[i + 1], &gc->s[i], (gc->n - i) * sizeof(*s));
	gc->n++;
	s = &gc->s[i];
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->grpc_status = -1;
	s->scheme_https = -1;
	s->auth_port = -1;
	return s;
}

/* --- span attributes ----------------------------------------------------------------- */

static bool is_server(const struct grpc_conn *gc)
{
	return h2_conn_req_dir(gc->h2) == SONDE_DIR_INGRESS;
}

/* "/pkg.Service/Method" -> service and method (lengths), or false. */
static bool grpc_path_split(const char *p, const char **svc, size_t *sl, const char **m,
                            size_t *ml)
{
	const char *slash;

	if (!p || p[0] != '/')
		return false;
	slash = strchr(p + 1, '/');
	if (!slash || slash == p + 1 || !slash[1] || strchr(slash + 1, '/'))
		return false;
	for (const char *q = p + 1; *q; q++)
		if (*q <= ' ' || *q >= 127 || *q == '?' || *q == '#')
			return false;
	*svc = p + 1;
	*sl = (size_t)(slash - p - 1);
	*m = slash + 1;
	*ml = strlen(slash + 1);
	return true;
}

static const char *grpc_code_name(int c)
{
	static const char *const n[] = {
		"OK",        "CANCELLED",          "UNKNOWN",  "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
		"NOT_FOUND", "ALREADY_EXISTS",     "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
		"FAILED_PRECONDITION", "ABORTED",  "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
		"UNAVAILABLE", "DATA_LOSS",        "UNAUTHENTICATED",
	};

	return c >= 0 && c < (int)(sizeof(n) / sizeof(n[0])) ? n[c] : "_OTHER";
}

/* semconv v1.27.0 gRPC status table. */
static bool grpc_is_error(int code, bool server)
{
	if (!server)
		return code != 0;
	return code == 2 || code == 4 || code == 12 || code == 13 || code == 14 || code == 15;
}

static void attr_s(struct grpc_conn *gc, struct h2s *s, const char *k, const char *v)
{
	gc->pl->host->span_attr_str(s->span, k, v, strlen(v));
}

static void common_attrs(struct grpc_conn *gc, struct h2s *s, bool server,
                         const struct sonde_conn_info *ci)
{
	const struct sonde_host_api *host = gc->pl->host;
	int port = s->auth_port;

	if (s->authority)
		attr_s(gc, s, "server.address", s->authority);
	else if (ci)
		attr_s(gc, s, "server.address", server ? ci->local_addr : ci->peer_addr);
	if (port <= 0 && ci)
		port = server ? ci->local_port : ci->peer_port;
	if (port > 0)
		host->span_attr_int(s->span, "server.port", port);
	if (!ci)
		return;
	if (server && ci->peer_addr[0])
		attr_s(gc, s, "client.address", ci->peer_addr);
	if (ci->peer_addr[0])
		attr_s(gc, s, "network.peer.address", ci->peer_addr);
	if (ci->peer_port)
		host->span_attr_int(s->span, "network.peer.port", ci->peer_port);
}

static void rpc_span(struct grpc_conn *gc, struct h2s *s, bool server,
                     const struct sonde_conn_info *ci, const char *svc, size_t sl,
                     const char *m, size_t ml)
{
	const struct sonde_host_api *host = gc->pl->host;
	char name[GRPC_NAME_MAX];

	snprintf(name, sizeof(name), "%.*s/%.*s", (int)sl, svc, (int)ml, m);
	host->span_set_name(s->span, name);
	attr_s(gc, s, "rpc.system", "grpc");
	host->span_attr_str(s->span, "rpc.service", svc, sl);
	host->span_attr_str(s->span, "rpc.method", m, ml);
	attr_s(gc, s, "network.transport", "tcp");
	if (ci)
		attr_s(gc, s, "network.type", ci->family == AF_INET6 ? "ipv6" : "ipv4");
	common_attrs(gc, s, server, ci);
}

static void http_span(struct grpc_conn *gc, struct h2s *s, bool server,
                      const struct sonde_conn_info *ci)
{
	const struct sonde_host_api *host = gc->pl->host;
	const char *method = s->method && s->method != M_OTHER ? methods[s->method] : NULL;
	const char *route = NULL;
	char name[GRPC_NAME_MAX];
	size_t plen = 0;
	struct sonde_metric *m = server ? gc->pl->http_server : gc->pl->http_client;

	if (s->method == M_OTHER) {
		attr_s(gc, s, "http.request.method", "_OTHER");
		attr_s(gc, s, "http.request.method_original", s->method_orig);
	} else if (method) {
		attr_s(gc, s, "http.request.method", method);
	}
	if (s->path && s->path[0] == '/') {
		while (s->path[plen] && s->path[plen] != '?' && s->path[plen] != '#')
			plen++;
		host->span_attr_str(s->span, "url.path", s->path, plen);
		if (gc->n_routes)
			route = http_route_find(gc->routes, gc->n_routes, s->path, plen);
		if (route)
			attr_s(gc, s, server ? "http.route" : "url.template", route);
	}
	if (s->tls || (ci && ci->tls) || s->scheme_https == 1)
		attr_s(gc, s, "url.scheme", "https");
	else
		attr_s(gc, s, "url.scheme", "http");
	attr_s(gc, s, "network.protocol.name", "http");
	attr_s(gc, s, "network.protocol.version", "2");
	if (s->status)
		host->span_attr_int(s->span, "http.response.status_code", s->status);
	if (s->flags & S_GRPC)
		attr_s(gc, s, "rpc.system", "grpc");
	common_attrs(gc, s, server, ci);
	snprintf(name, sizeof(name), "%s%s%s", method ? method : "HTTP", route ? " " : "",
	         route ? route : "");
	host->span_set_name(s->span, name);
	if (m)
		host->span_add_metric(s->span, m);
}

/* Status and error.type from what is known; etype forces an error. */
static void set_outcome(struct grpc_conn *gc, struct h2s *s, bool server, bool rpc,
                        const char *etype, const char *desc)
{
	const struct sonde_host_api *host = gc->pl->host;
	char code[8];

	if (s->grpc_status >= 0)
		host->span_attr_int(s->span, "rpc.grpc.status_code", s->grpc_status);
	if (etype) {
		attr_s(gc, s, "error.type", etype);
		host->span_set_status(s->span, SONDE_STATUS_ERROR, desc);
		return;
	}
	if (s->grpc_status >= 0 && grpc_is_error(s->grpc_status, server)) {
		attr_s(gc, s, "error.type", grpc_code_name(s->grpc_status));
		host->span_set_status(s->span, SONDE_STATUS_ERROR, NULL);
		return;
	}
	/* A gRPC call answered without a gRPC status but with an HTTP error
	 * (a proxy's 503, a 404): the HTTP status is the error. */
	if (rpc && s->grpc_status < 0 && s->status && s->status != 200) {
		snprintf(code, sizeof(code), "%d", s->status);
		attr_s(gc, s, "error.type", code);
		host->span_set_status(s->span, SONDE_STATUS_ERROR, NULL);
		return;
	}
	if (!rpc && s->status && (s->status >= 500 || (!server && s->status >= 400))) {
		snprintf(code, sizeof(code), "%d", s->status);
		attr_s(gc, s, "error.type", code);
		host->span_set_status(s->span, SONDE_STATUS_ERROR, NULL);
	}
}

static void rpc_record(struct grpc_conn *gc, struct h2s *s, bool server, uint64_t end,
                       const struct sonde_conn_info *ci, const char *svc, size_t sl,
                       const char *m, size_t ml)
{
	struct sonde_metric *hist = server ? gc->pl->rpc_server : gc->pl->rpc_client;
	char svc_b[GRPC_PATH_MAX], m_b[GRPC_PATH_MAX], code[12], port[12];
	const char *vals[8] = { "grpc", svc_b, m_b, NULL, "tcp", NULL, NULL, NULL };
	double ms;

	if (!hist)
		return;
	snprintf(svc_b, sizeof(svc_b), "%.*s", (int)sl, svc);
	snprintf(m_b, sizeof(m_b), "%.*s", (int)ml, m);
	if (s->grpc_status >= 0) {
		snprintf(code, sizeof(code), "%d", s->grpc_status);
		vals[3] = code;
	}
	if (ci)
		vals[5] = ci->family == AF_INET6 ? "ipv6" : "ipv4";
	if (!server) {
		vals[6] = s->authority ? s->authority : ci ? ci->peer_addr : NULL;
		if (s->auth_port > 0 || (ci && ci->peer_port)) {
			snprintf(port, sizeof(port), "%d", s->auth_port > 0 ? s->auth_port : ci->peer_port);
			vals[7] = port;
		}
	}
	ms = end > s->start_ns ? (double)(end - s->start_ns) / 1e6 : 0;
	gc->pl->host->histogram_record(hist, gc->conn, ms, vals);
}

/* End the stream's span at ts; etype != NULL: it ended in error. */
static void s_end(struct grpc_conn *gc, struct h2s *s, uint64_t ts, const char *etype,
                  const char *desc)
{
	const struct sonde_conn_info *ci = gc->pl->host->conn_info(gc->conn);
	bool server = is_server(gc);
	const char *svc = NULL, *m = NULL;
	size_t sl = 0, ml = 0;
	bool rpc = (s->flags & S_GRPC) && grpc_path_split(s->path, &svc, &sl, &m, &ml);

	if (s->span) {
		if (rpc)
			rpc_span(gc, s, server, ci, svc, sl, m, ml);
		else
			http_span(gc, s, server, ci);
		set_outcome(gc, s, server, rpc, etype, desc);
		if (s->flags & S_PARTIAL)
			gc->pl->host->span_attr_bool(s->span, "sonde.h2.headers_partial", 1);
		gc->pl->host->span_end(s->span, ts);
		if (rpc)
			rpc_record(gc, s, server, ts < s->start_ns ? s->start_ns : ts, ci, svc, sl, m,
			           ml);
		gc->st.spans++;
		gc->st.rpc_spans += rpc;
		gc->st.partial += (s->flags & S_PARTIAL) != 0;
	}
	s_remove(gc, s);
}

/* --- events from h2_conn ------------------------------------------------------------- */

static void ev_block_begin(void *ctx, int dir, uint32_t sid, uint8_t type, bool end_stream,
                           uint64_t ts)
{
	struct grpc_conn *gc = ctx;
	struct blk_scratch *b = &gc->b;

	memset(b, 0, offsetof(struct blk_scratch, method));
	b->dir = dir;
	b->sid = sid;
	b->type = type;
	b->end_stream = end_stream;
	b->ts = ts;
}

static void ev_field(void *ctx, const uint8_t *n, size_t nl, const uint8_t *v, size_t vl)
{
	struct blk_scratch *b = &((struct grpc_conn *)ctx)->b;

	if (!nl)
		return;
	if (n[0] == ':') {
		if (name_is(n, nl, ":method")) {
			b->has_method = true;
			copy_cut(b->method, sizeof(b->method), &b->method_len, v, vl);
		} else if (name_is(n, nl, ":path")) {
			b->has_path = true;
			copy_cut(b->path, sizeof(b->path), &b->path_len, v, vl);
		} else if (name_is(n, nl, ":authority")) {
			b->has_auth = true;
			copy_cut(b->auth, sizeof(b->auth), &b->auth_len, v, vl);
		} else if (name_is(n, nl, ":scheme")) {
			b->has_scheme = true;
			b->scheme_https = vl == 5 && !memcmp(v, "https", 5);
		} else if (name_is(n, nl, ":status")) {
			b->status = small_int(v, vl);
			b->has_status = b->status >= 100;
		}
		return;
	}
	if (name_is(n, nl, "content-type")) {
		b->has_ct = true;
		b->ct_grpc = ct_is_grpc(v, vl);
	} else if (name_is(n, nl, "grpc-status")) {
		b->grpc_status = small_int(v, vl);
		b->has_grpc_status = b->grpc_status >= 0;
	} else if (name_is(n, nl, "traceparent") && vl < GRPC_TP_MAX) {
		b->has_tp = true;
		copy_cut(b->tp, sizeof(b->tp), &b->tp_len, v, vl);
	} else if (name_is(n, nl, "host") && !b->has_auth) {
		b->has_auth = true;
		copy_cut(b->auth, sizeof(b->auth), &b->auth_len, v, vl);
	}
}

static uint8_t method_index(const char *m, size_t n)
{
	for (size_t i = 1; i < N_METHODS; i++)
		if (strlen(methods[i]) == n && !memcmp(methods[i], m, n))
			return (uint8_t)i;
	return M_OTHER;
}

/* :authority -> host part (no brackets) and port. */
static void set_authority(struct h2s *s, const char *a, size_t n)
{
	const char *host = a, *colon;
	size_t hl;
	long port = 0;

	if (n && a[0] == '[') {
		const char *close = memchr(a, ']', n);
		if (!close)
			return;
		host = a + 1;
		hl = (size_t)(close - a - 1);
		colon = close + 1 < a + n && close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = memchr(a, ':', n);
		hl = colon ? (size_t)(colon - a) : n;
	}
	if (!hl || memchr(host, '@', hl))
		return;
	for (const char *p = colon ? colon + 1 : a + n; colon && p < a + n; p++) {
		if (*p < '0' || *p > '9' || port > 65535)
			return;
		port = port * 10 + (*p - '0');
	}
	s->authority = strndup(host, hl);
	if (colon && port > 0 && port <= 65535)
		s->auth_port = (int32_t)port;
}

/* A SERVER span of a stream that starts while another stream of the
 * connection is in flight must not become its thread's active span: the
 * thread reads every stream of the connection, and a CLIENT span it starts
 * could then be given this stream as a guessed parent (SDK 1.1,
 * SONDE_SPAN_NOT_ACTIVE). A stream alone on its connection starts the
 * usual way. A CLIENT span takes the runtime context a runtime plugin gave
 * for its stream (SDK 1.2: the Node.js plugin knows which request opened
 * each stream of a shared connection, which the write's context cannot
 * tell); without one it keeps the host's default (the chunk's context, or
 * the thread's one open server span). */
static struct sonde_span *stream_span_start(struct grpc_conn *gc, uint32_t sid, uint64_t ts)
{
	const struct sonde_host_api *host = gc->pl->host;
	bool server = is_server(gc);
	struct sonde_span_opts o = {
		.struct_size = sizeof(o),
		.kind = SONDE_SPAN_SERVER,
		.name = "HTTP",
		.start_unix_ns = ts,
		.flags = SONDE_SPAN_NOT_ACTIVE,
	};

	if (server && gc->n > 1 && HOST_HAS(host, span_start_v2))
		return host->span_start_v2(gc->conn, &o);
	if (!server && HOST_HAS(host, conn_stream_context_take) && host->conn_stream_context_take &&
	    host->span_start_v2) {
		o.context = host->conn_stream_context_take(gc->conn, sid);
		if (o.context) {
			o.kind = SONDE_SPAN_CLIENT;
			o.flags = 0;
			gc->st.stream_ctx++;
			return host->span_start_v2(gc->conn, &o);
		}
	}
	return host->span_start(gc->conn, "HTTP", server ? SONDE_SPAN_SERVER : SONDE_SPAN_CLIENT,
	                        ts);
}

/* Where the stream's request starts: its HEADERS frame's first byte in the
 * request direction (SDK 1.1), so the host links the client and server
 * spans of a connection it watches on both ends. Both ends count the same
 * bytes, so they find the same position whatever the other streams of the
 * connection do. Only while the direction was followed from its first
 * byte without a loss: an offset found again is a guess. */
static void stream_set_pos(struct grpc_conn *gc, struct sonde_span *sp, int dir)
{
	const struct sonde_host_api *host = gc->pl->host;
	const struct pos_track *t = &gc->trk[dir];
	uint64_t at;

	if (!sp || !t->exact || !HOST_HAS(host, span_set_pos) || !host->span_set_pos ||
	    h2_conn_block_at(gc->h2, dir, &at) < 0)
		return;
	host->span_set_pos(sp, t->src, at);
}

/* c is the next chunk of its direction. */
static void track_chunk(struct pos_track *t, const struct sonde_chunk *c)
{
	if (!SONDE_HAS_FIELD(c, struct sonde_chunk, source)) {
		t->started = true;
		t->exact = false;
		return;
	}
	if (!t->started)
		t->exact = c->pos == 0 && !(c->flags & SONDE_CHUNK_GAP);
	else if (c->source != t->src || c->pos != t->next || (c->flags & SONDE_CHUNK_GAP))
		t->exact = false;
	t->started = true;
	t->src = c->source;
	t->next = c->pos + (c->orig_len > c->len ? c->orig_len : c->len);
}

static void request_block(struct grpc_conn *gc, const struct hpack_result *res, bool partial)
{
	const struct sonde_host_api *host = gc->pl->host;
	struct blk_scratch *b = &gc->b;
	struct h2s *s = s_find(gc, b->sid);

	if (s) { /* trailers of the request */
		s->last_ns = b->ts;
		if (b->end_stream)
			s->flags |= S_REQ_END;
		if (partial)
			s->flags |= S_PARTIAL;
		return;
	}
	/* A new request has a new, higher, odd stream id and pseudo-headers;
	 * anything else is trailers or a late block of a stream we do not
	 * follow (its HEADERS were lost, or it already ended). */
	if (!(b->sid & 1) || b->sid <= gc->max_sid || (!b->has_method && !b->has_path))
		return;
	gc->max_sid = b->sid;
	s = s_add(gc, b->sid);
	if (!s) {
		gc->st.untracked++;
		count(gc, gc->pl->c_dropped, 1, "untracked");
		return;
	}
	gc->st.streams++;
	s->start_ns = s->last_ns = b->ts;
	s->tls = gc->cur_tls;
	s->span = stream_span_start(gc, b->sid, b->ts);
	stream_set_pos(gc, s->span, b->dir);
	if (b->has_method) {
		s->method = method_index(b->method, b->method_len);
		if (s->method == M_OTHER)
			memcpy(s->method_orig, b->method, b->method_len + 1);
	}
	if (b->has_path && b->path_len)
		s->path = strndup(b->path, b->path_len);
	if (b->has_auth)
		set_authority(s, b->auth, b->auth_len);
	if (b->has_scheme)
		s->scheme_https = b->scheme_https;
	if (b->has_ct && b->ct_grpc)
		s->flags |= S_GRPC;
	if (partial)
		s->flags |= S_PARTIAL;
	if (b->end_stream)
		s->flags |= S_REQ_END;
	if (b->has_tp && is_server(gc) && s->span)
		host->span_set_traceparent(s->span, b->tp, b->tp_len);
	(void)res;
}

static void response_block(struct grpc_conn *gc, bool partial)
{
	struct blk_scratch *b = &gc->b;
	struct h2s *s = s_find(gc, b->sid);

	if (!s) {
		gc->st.orphans++;
		return;
	}
	s->last_ns = b->ts;
	if (partial)
		s->flags |= S_PARTIAL;
	if (b->has_status && b->status >= 200 && !(s->flags & S_RESP_HDRS)) {
		s->status = (int16_t)b->status;
		s->flags |= S_RESP_HDRS;
	}
	if (b->has_ct && b->ct_grpc)
		s->flags |= S_GRPC;
	if (b->has_grpc_status) {
		s->grpc_status = (int16_t)b->grpc_status;
		s->flags |= S_GRPC;
	}
	if (b->end_stream)
		s_end(gc, s, gc->cur_ts, NULL, NULL);
}

/* Role UNKNOWN and no preface: the first block that says which side it is. */
static bool place_block(struct grpc_conn *gc)
{
	struct blk_scratch *b = &gc->b;

	if (h2_conn_req_dir(gc->h2) >= 0)
		return true;
	if (b->has_method || b->has_path)
		h2_conn_set_req_dir(gc->h2, b->dir);
	else if (b->has_status)
		h2_conn_set_req_dir(gc->h2, !b->dir);
	return h2_conn_req_dir(gc->h2) >= 0;
}

static void ev_block_end(void *ctx, const struct hpack_result *res)
{
	struct grpc_conn *gc = ctx;
	struct blk_scratch *b = &gc->b;
	bool partial = res->unknown || res->cut || res->error;

	gc->st.unknown_fields += res->unknown;
	count(gc, gc->pl->c_unknown, res->unknown, NULL);
	if (res->error) { /* fields decoded before the error are not trusted */
		gc->st.hpack_errors++;
		ev_block_begin(gc, b->dir, b->sid, b->type, b->end_stream, b->ts);
	}
	if (b->type == H2_PUSH_PROMISE) {
		gc->st.pushes++;
		return;
	}
	if (!place_block(gc))
		return;
	if (b->dir == h2_conn_req_dir(gc->h2))
		request_block(gc, res, partial);
	else
		response_block(gc, partial);
}

static void ev_data(void *ctx, int dir, uint32_t sid, uint32_t len, bool end_stream,
                    uint64_t ts)
{
	struct grpc_conn *gc = ctx;
	struct h2s *s;
	int rq = h2_conn_req_dir(gc->h2);

	if (rq < 0 || !(s = s_find(gc, sid)))
		return;
	s->last_ns = ts;
	if (!end_stream)
		return;
	if (dir == rq)
		s->flags |= S_REQ_END;
	else
		s_end(gc, s, ts, NULL, NULL);
	(void)len;
}

static void ev_rst(void *ctx, int dir, uint32_t sid, uint32_t code, uint64_t ts)
{
	struct grpc_conn *gc = ctx;
	struct h2s *s = s_find(gc, sid);
	const char *name = h2_error_name(code);

	if (!s)
		return;
	gc->st.resets++;
	s_end(gc, s, ts, name ? name : "_OTHER", "stream reset (RST_STREAM)");
	(void)dir;
}

static void ev_goaway(void *ctx, int dir, uint32_t last, bool last_known, uint32_t code,
                      uint64_t ts)
{
	struct grpc_conn *gc = ctx;
	int rq = h2_conn_req_dir(gc->h2);

	/* A server's GOAWAY: client streams above `last` were never processed
	 * (the client may retry them elsewhere). */
	if (!last_known || rq < 0 || dir == rq)
		return;
	for (size_t i = gc->n; i-- > 0;) {
		if (gc->s[i].id <= last)
			break;
		gc->st.refused++;
		s_drop(gc, &gc->s[i], "goaway");
	}
	(void)code;
	(void)ts;
}

static void ev_loss(void *ctx, int dir, uint64_t ts)
{
	struct grpc_conn *gc = ctx;

	gc->st.losses++;
	count(gc, gc->pl->c_losses, 1, dir == SONDE_DIR_EGRESS ? "transmit" : "receive");
	for (size_t i = 0; i < gc->n; i++)
		gc->s[i].flags |= S_UNCERTAIN;
	(void)ts;
}

static const struct h2_events grpc_events = {
	.block_begin = ev_block_begin,
	.field = ev_field,
	.block_end = ev_block_end,
	.data = ev_data,
	.rst = ev_rst,
	.goaway = ev_goaway,
	.loss = ev_loss,
};

/* --- protocol callbacks ---------------------------------------------------------------- */

static int grpc_detect(void *plugin_state, const struct sonde_conn_info *ci,
                       const struct sonde_chunk *c)
{
	size_t end;
	int r;

	if (!c || !c->data)
		return SONDE_DETECT_NO;
	if (!c->len)
		return SONDE_DETECT_NEED_MORE;
	r = h2_preface_check(c->data, c->len);
	if (r > 0)
		return SONDE_DETECT_SURE;
	if (r == 0)
		return SONDE_DETECT_NEED_MORE;
	/* An open connection: frames from the first byte of the chunk. */
	if (c->len < H2_FRAME_HDR_LEN)
		return c->len < 4 || h2_frame_type_known(c->data[3]) ? SONDE_DETECT_NEED_MORE
		                                                       : SONDE_DETECT_NO;
	r = h2_chain_walk(c->data, c->len, H2_MAX_FRAME_LEN, 64, &end);
	if (r >= 2 || (r == 1 && end == c->len))
		return 80; /* below HTTP/1's SURE: a structural match, no preface */
	if (r == 1)
		return SONDE_DETECT_NEED_MORE; /* one frame, its payload not all here */
	return SONDE_DETECT_NO;
}

static void load_routes(struct grpc_plugin *pl, struct grpc_conn *gc)
{
	const char *const *vals = NULL;
	size_t n = pl->host->config_get(pl->self, gc->conn, "routes", &vals);

	if (!n || !vals)
		return;
	gc->routes = vals;
	gc->n_routes = n;
	if (pl->checked_routes == vals)
		return;
	pl->checked_routes = vals;
	for (size_t i = 0; i < n; i++)
		if (!http_route_pattern_valid(vals[i]))
			pl->host->log(pl->self, SONDE_LOG_WARN,
			              "routes: ignoring invalid pattern \"%s\"", vals[i] ? vals[i] : "(null)");
}

/* Frame headers inside a large write are seen only when the write is
 * captured far enough: ask for the largest cap (SDK 1.1). Without a kernel
 * (replays, tests) the host answers SONDE_ERR_UNSUPPORTED: nothing to do. */
static void ask_capture(struct grpc_conn *gc)
{
	const struct sonde_host_api *host = gc->pl->host;
	struct sonde_capture_policy p = {
		.struct_size = sizeof(p),
		.cap = GRPC_CAPTURE_CAP,
	};

	if (HOST_HAS(host, conn_set_capture))
		(void)host->conn_set_capture(gc->conn, &p);
}

static int grpc_conn_open(void *plugin_state, struct sonde_conn *conn,
                          const struct sonde_conn_info *ci, void **conn_state)
{
	struct grpc_plugin *pl = plugin_state;
	struct grpc_conn *gc;
	int req_dir = -1;

	if (!pl || !conn_state)
		return SONDE_ERR_INVAL;
	gc = calloc(1, sizeof(*gc));
	if (!gc)
		return SONDE_ERR_NOMEM;
	if (ci && ci->role == SONDE_ROLE_SERVER)
		req_dir = SONDE_DIR_INGRESS;
	else if (ci && ci->role == SONDE_ROLE_CLIENT)
		req_dir = SONDE_DIR_EGRESS;
	gc->pl = pl;
	gc->conn = conn;
	gc->h2 = h2_conn_new(req_dir, &grpc_events, gc);
	if (!gc->h2) {
		free(gc);
		return SONDE_ERR_NOMEM;
	}
	load_routes(pl, gc);
	ask_capture(gc);
	gc->next = pl->conns;
	if (pl->conns)
		pl->conns->pprev = &gc->next;
	gc->pprev = &pl->conns;
	pl->conns = gc;
	*conn_state = gc;
	return SONDE_OK;
}

static void add_stats(struct grpc_stats *t, const struct grpc_stats *s)
{
	const uint64_t *a = (const uint64_t *)s;
	uint64_t *b = (uint64_t *)t;

	for (size_t i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
		b[i] += a[i];
}

static int give_up(struct grpc_conn *gc, const char *why)
{
	for (size_t i = 0; i < gc->n; i++)
		gc->s[i].flags |= S_UNCERTAIN;
	gc->dead = true;
	gc->pl->host->log(gc->pl->self, SONDE_LOG_DEBUG, "connection given up: %s", why);
	return SONDE_ERR_PROTO;
}

static int grpc_conn_data(void *conn_state, struct sonde_conn *conn,
                          const struct sonde_chunk *c)
{
	struct grpc_conn *gc = conn_state;
	unsigned fl = 0;
	int dir;

	if (!gc || !c || (c->dir != SONDE_DIR_INGRESS && c->dir != SONDE_DIR_EGRESS))
		return SONDE_ERR_INVAL;
	if (gc->dead)
		return SONDE_ERR_PROTO;
	dir = (int)c->dir;
	if (c->flags & SONDE_CHUNK_GAP)
		fl |= H2_IN_GAP;
	gc->cur_ts = c->ts_unix_ns;
	track_chunk(&gc->trk[dir], c);
	/* TLS-ness is per chunk in SDK 1.1 (conn_info.tls on a 1.0 host). */
	gc->cur_tls = SONDE_HAS_FIELD(c, struct sonde_chunk, source) && c->source != SONDE_SRC_SOCKET;
	if (h2_conn_feed(gc->h2, dir, c->data, c->data ? c->len : 0,
	                 c->orig_len > c->len ? c->orig_len : c->len, fl, c->ts_unix_ns))
		return give_up(gc, "out of memory");
	if (h2_conn_lost_chunks(gc->h2, dir) > GRPC_LOST_CHUNKS_MAX)
		return give_up(gc, "no HTTP/2 frame boundary found");
	return SONDE_OK;
}

static void grpc_conn_close(void *conn_state, struct sonde_conn *conn, uint64_t ts_unix_ns)
{
	struct grpc_conn *gc = conn_state;
	const struct h2_stats *hs;

	if (!gc)
		return;
	while (gc->n) {
		struct h2s *s = &gc->s[gc->n - 1];
		if (s->flags & S_UNCERTAIN)
			s_drop(gc, s, "uncertain_at_close");
		else
			s_end(gc, s, ts_unix_ns, "connection_closed",
			      "connection closed before the stream ended");
	}
	hs = h2_conn_stats(gc->h2);
	gc->st.resyncs = hs->resyncs;
	gc->st.garbage = hs->garbage;
	if (gc->st.streams || hs->losses || hs->garbage)
		gc->pl->host->log(gc->pl->self, SONDE_LOG_DEBUG,
		                  "connection: %llu streams, %llu spans, %llu dropped, %llu losses, "
		                  "%llu resyncs, %llu unknown header fields",
		                  (unsigned long long)gc->st.streams, (unsigned long long)gc->st.spans,
		                  (unsigned long long)gc->st.dropped, (unsigned long long)hs->losses,
		                  (unsigned long long)hs->resyncs,
		                  (unsigned long long)gc->st.unknown_fields);
	add_stats(&gc->pl->tot, &gc->st);
	*gc->pprev = gc->next;
	if (gc->next)
		gc->next->pprev = gc->pprev;
	h2_conn_free(gc->h2);
	free(gc->s);
	free(gc);
}

/* --- plugin -------------------------------------------------------------------------------- */

static const double http_bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
};
static const double rpc_bounds[] = {
	5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000,
};

/* The same keys as plugins/http (the host shares a histogram by name). */
static const char *const http_server_keys[] = {
	"http.request.method", "http.response.status_code", "http.route",
	"url.scheme",          "network.protocol.version",  "error.type",
};
static const char *const http_client_keys[] = {
	"http.request.method",      "http.response.status_code", "url.scheme",
	"network.protocol.version", "error.type",                "server.address",
	"server.port",
};
/* Order matters: rpc_record fills values in this order. */
static const char *const rpc_keys[] = {
	"rpc.system",   "rpc.service",  "rpc.method",     "rpc.grpc.status_code",
	"network.transport", "network.type", "server.address", "server.port",
};

static struct sonde_metric *hist(struct grpc_plugin *pl, const char *name, const char *unit,
                                 const char *descr, const double *bounds, size_t nb,
                                 const char *const *keys, size_t nk)
{
	struct sonde_histogram_desc d = {
		.struct_size = sizeof(d),
		.name = name,
		.unit = unit,
		.description = descr,
		.bounds = bounds,
		.n_bounds = nb,
		.attr_keys = keys,
		.n_attr_keys = nk,
	};
	struct sonde_metric *m = pl->host->histogram_register(pl->self, &d);

	if (!m)
		pl->host->log(pl->self, SONDE_LOG_WARN, "cannot register %s", name);
	return m;
}

#define NB(a) (sizeof(a) / sizeof((a)[0]))

/* Streams made uncertain by lost bytes whose end may have been among
 * them: when nothing of them was seen for GRPC_EXPIRE_NS they are dropped
 * (counted as expired) instead of waiting for the connection to close. A
 * stream never touched by a loss is kept however long it lasts (a
 * streaming call may be open for hours). */
static void expire_streams(void *arg, uint64_t now)
{
	struct grpc_plugin *pl = arg;

	for (struct grpc_conn *gc = pl->conns; gc; gc = gc->next) {
		for (size_t i = gc->n; i-- > 0;) {
			struct h2s *s = &gc->s[i];

			if ((s->flags & S_UNCERTAIN) && now > s->last_ns &&
			    now - s->last_ns > GRPC_EXPIRE_NS)
				s_drop(gc, s, "expired");
		}
	}
}

static struct sonde_metric *counter(struct grpc_plugin *pl, const char *name, const char *unit,
                                    const char *descr, const char *key)
{
	const char *const keys[1] = { key };
	struct sonde_counter_desc d = {
		.struct_size = sizeof(d),
		.name = name,
		.unit = unit,
		.description = descr,
		.attr_keys = keys,
		.n_attr_keys = key ? 1 : 0,
	};
	struct sonde_metric *m = pl->host->counter_register(pl->self, &d);

	if (!m)
		pl->host->log(pl->self, SONDE_LOG_WARN, "cannot register %s", name);
	return m;
}

/* SDK 1.1: counters and the expiry timer. Nothing on a 1.0 host. */
static void init_v11(struct grpc_plugin *pl)
{
	const struct sonde_host_api *host = pl->host;

	if (HOST_HAS(host, counter_add)) {
		pl->c_dropped = counter(pl, "sonde.h2.dropped.streams", "{stream}",
		                        "HTTP/2 streams that got no span, by sonde.reason.",
		                        "sonde.reason");
		pl->c_losses = counter(pl, "sonde.h2.position.losses", "{loss}",
		                       "Times a direction of an HTTP/2 connection lost its frame "
		                       "position (gap, capture cut through a frame header, garbage).",
		                       "network.io.direction");
		pl->c_unknown = counter(pl, "sonde.h2.unknown.header_fields", "{field}",
		                        "HTTP/2 header fields that could not be decoded (HPACK "
		                        "dynamic-table entries never seen).",
		                        NULL);
	}
	if (HOST_HAS(host, timer_start))
		pl->expiry = host->timer_start(pl->self, GRPC_EXPIRE_EVERY_NS, GRPC_EXPIRE_EVERY_NS,
		                               expire_streams, pl);
}

static int grpc_init(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
                     void **plugin_state)
{
	struct grpc_plugin *pl;

	if (!host || host->abi_major != SONDE_ABI_MAJOR ||
	    host->struct_size < offsetof(struct sonde_host_api, histogram_record) +
	                            sizeof(host->histogram_record))
		return SONDE_ERR_ABI;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return SONDE_ERR_NOMEM;
	pl->host = host;
	pl->self = self;
	pl->http_server = hist(pl, "http.server.request.duration", "s",
	                       "Duration of HTTP server requests.", http_bounds, NB(http_bounds),
	                       http_server_keys, NB(http_server_keys));
	pl->http_client = hist(pl, "http.client.request.duration", "s",
	                       "Duration of HTTP client requests.", http_bounds, NB(http_bounds),
	                       http_client_keys, NB(http_client_keys));
	pl->rpc_server = hist(pl, "rpc.server.duration", "ms", "Measures the duration of inbound RPC.",
	                      rpc_bounds, NB(rpc_bounds), rpc_keys, 6);
	pl->rpc_client = hist(pl, "rpc.client.duration", "ms",
	                      "Measures the duration of outbound RPC.", rpc_bounds, NB(rpc_bounds),
	                      rpc_keys, NB(rpc_keys));
	init_v11(pl);
	*plugin_state = pl;
	return SONDE_OK;
}

static void grpc_fini(void *plugin_state)
{
	struct grpc_plugin *pl = plugin_state;
	const struct grpc_stats *t;

	if (!pl)
		return;
	t = &pl->tot;
	if (t->streams || t->losses || t->garbage)
		pl->host->log(pl->self, SONDE_LOG_INFO,
		              "%llu streams: %llu spans (%llu rpc, %llu with partial headers), "
		              "%llu dropped (%llu refused by GOAWAY), %llu resets, %llu untracked, "
		              "%llu orphan responses, %llu pushes, %llu losses, %llu resyncs, "
		              "%llu garbage, %llu HPACK errors, %llu unknown header fields, "
		              "%llu client streams with a runtime context",
		              (unsigned long long)t->streams, (unsigned long long)t->spans,
		              (unsigned long long)t->rpc_spans, (unsigned long long)t->partial,
		              (unsigned long long)t->dropped, (unsigned long long)t->refused,
		              (unsigned long long)t->resets, (unsigned long long)t->untracked,
		              (unsigned long long)t->orphans, (unsigned long long)t->pushes,
		              (unsigned long long)t->losses, (unsigned long long)t->resyncs,
		              (unsigned long long)t->garbage, (unsigned long long)t->hpack_errors,
		              (unsigned long long)t->unknown_fields, (unsigned long long)t->stream_ctx);
	free(pl);
}

static const struct sonde_protocol grpc_protocol = {
	.struct_size = sizeof(struct sonde_protocol),
	.name = "grpc",
	.detect = grpc_detect,
	.conn_open = grpc_conn_open,
	.conn_data = grpc_conn_data,
	.conn_close = grpc_conn_close,
};

static const struct sonde_protocol *const grpc_protocols[] = { &grpc_protocol, NULL };

static const struct sonde_plugin grpc_plugin_desc = {
	.abi_major = SONDE_ABI_MAJOR,
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "grpc",
	.version = "0.1.0",
	.license = "Apache-2.0",
	.description = "HTTP/2 (h2c and h2 through the TLS probes) and gRPC: one span per stream, "
	               "HTTP and RPC duration histograms",
	.init = grpc_init,
	.fini = grpc_fini,
	.protocols = grpc_protocols,
};

SONDE_PLUGIN_DEFINE(grpc_plugin_desc)
