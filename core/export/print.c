/*
 * print.c - the stdout span printer (JSON lines or human text lines).
 *
 * The one idea: a span becomes one complete line in memory first and is
 * appended, under a mutex, to a buffer that grows up to a bound; a writer
 * thread of the
 * sink's own swaps it out and writes it. So concurrent emitters
 * never interleave, and the thread that drains the ring buffer never
 * waits on a slow reader (a pipe to a busy script, a paused terminal):
 * when the buffer is full the span is dropped and counted. The agent
 * signals the writer after each slice of records it drains (the sink's
 * flush), not after every span: a write(2) per span cost more than making
 * the span. Everything that
 * came off the wire (names, attribute values) is sanitised on the way out:
 * JSON gets valid UTF-8, the terminal gets no control characters.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sonde/plugin.h>

#include "export/print.h"
#include "base/hex.h"
#include "base/utf8.h"

struct print_ctx {
	struct span_sink sink; /* first: print_sink_free gets this pointer */
	FILE *out;
	enum print_mode mode;
	pthread_mutex_t mu;
	pthread_cond_t wake;   /* the writer: lines are waiting */
	pthread_cond_t room;   /* waiting emitters: the writer took the lines */
	bool wait_when_full;   /* replay: no ring to protect, lose nothing */
	pthread_t writer;
	char *buf;        /* lines waiting for the writer */
	size_t len, size; /* bytes in buf, bytes allocated */
	size_t cap;       /* most bytes that may wait */
	bool stop;
	uint64_t dropped; /* spans not printed: the buffer was full */
};

static const char *kind_name(int kind)
{
	switch (kind) {
	case SONDE_SPAN_SERVER: return "SERVER";
	case SONDE_SPAN_CLIENT: return "CLIENT";
	case SONDE_SPAN_INTERNAL: return "INTERNAL";
	case SONDE_SPAN_PRODUCER: return "PRODUCER";
	case SONDE_SPAN_CONSUMER: return "CONSUMER";
	default: return "UNSPECIFIED";
	}
}

static const char *status_name(int st)
{
	switch (st) {
	case SONDE_STATUS_OK: return "OK";
	case SONDE_STATUS_ERROR: return "ERROR";
	default: return "UNSET";
	}
}

static bool is_root(const struct span *s)
{
	static const uint8_t zero[8];

	return memcmp(s->parent_span_id, zero, sizeof(zero)) == 0;
}


/* ---- JSON ----------------------------------------------------------- */

/* Written straight into the line, not through a JSON library's object tree
 * (jansson made and freed one per span: about 9 us a span, most of the
 * agent's time with --print json). The output is what jansson's compact
 * dump gives: keys in insertion order, "\u00XX" for other control bytes,
 * UTF-8 passed through, reals as %.17g with ".0" when integral. Bytes that
 * are not UTF-8 become U+FFFD, as utf8_repair does. */
static void j_str(FILE *f, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p);

	fputc_unlocked('"', f);
	while (n) {
		size_t l = utf8_seq_len(p, n);

		if (!l) {
			fwrite_unlocked("\xef\xbf\xbd", 1, 3, f);
			l = 1;
		} else if (l > 1) {
			fwrite_unlocked(p, 1, l, f);
		} else if (*p == '"' || *p == '\\') {
			fputc_unlocked('\\', f);
			fputc_unlocked(*p, f);
		} else if (*p >= 0x20) {
			fputc_unlocked(*p, f);
		} else {
			const char *e = *p == '\b' ? "\\b" : *p == '\f' ? "\\f" : *p == '\n' ? "\\n"
			              : *p == '\r' ? "\\r" : *p == '\t' ? "\\t" : NULL;

			if (e) {
				fwrite_unlocked(e, 1, 2, f);
			} else {
				fwrite_unlocked("\\u00", 1, 4, f);
				fputc_unlocked(hex[*p >> 4], f);
				fputc_unlocked(hex[*p & 15], f);
			}
		}
		p += l;
		n -= l;
	}
	fputc_unlocked('"', f);
}

static void j_key(FILE *f, bool *first, const char *key)
{
	if (!*first)
		fputc_unlocked(',', f);
	*first = false;
	j_str(f, key);
	fputc_unlocked(':', f);
}

static void j_i64(FILE *f, int64_t v)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%" PRId64, v);

	fwrite_unlocked(b, 1, (size_t)n, f);
}

static void j_double(FILE *f, double d)
{
	char b[40], *e;
	int n;

	if (isnan(d) || isinf(d)) {
		j_str(f, isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
		return;
	}
	n = snprintf(b, sizeof(b) - 2, "%.17g", d);
	if (!strchr(b, '.') && !strchr(b, 'e')) {
		memcpy(b + n, ".0", 3);
		n += 2;
	}
	if ((e = strchr(b, 'e'))) { /* "1e+20" -> "1e20", "1e-05" -> "1e-5" */
		char *q = e + 1, *r;

		if (*q == '-')
			q++;
		for (r = q; *r == '+' || *r == '0'; r++)
			;
		if (!*r)
			r--;
		memmove(q, r, strlen(r) + 1);
		n = (int)strlen(b);
	}
	fwrite_unlocked(b, 1, (size_t)n, f);
}

static void j_attr(FILE *f, const struct attr *a)
{
	switch (a->type) {
	case ATTR_STR: j_str(f, a->v.s); return;
	case ATTR_INT: j_i64(f, a->v.i); return;
	case ATTR_DOUBLE: j_double(f, a->v.d); return;
	case ATTR_BOOL: fputs_unlocked(a->v.b ? "true" : "false", f); return;
	}
	fputs_unlocked("null", f);
}

static void j_attrs(FILE *f, const struct attr_list *l, const struct resource *r)
{
	bool first = true;

	fputc_unlocked('{', f);
	for (size_t i = 0; l && i < l->n; i++) {
		j_key(f, &first, l->a[i].key);
		j_attr(f, &l->a[i]);
	}
	if (r && r->service_name && !attr_find(&r->attrs, "service.name")) {
		j_key(f, &first, "service.name");
		j_str(f, r->service_name);
	}
	fputc_unlocked('}', f);
}

static char *format_json(const struct span *s)
{
	char trace[33], span[17], parent[17], scope[sizeof(s->scope) + 1];
	char *buf = NULL;
	size_t len = 0;
	bool first = true;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	hex_encode(s->trace_id, sizeof(s->trace_id), trace);
	hex_encode(s->span_id, sizeof(s->span_id), span);
	if (is_root(s))
		parent[0] = '\0';
	else
		hex_encode(s->parent_span_id, sizeof(s->parent_span_id), parent);
	len = strnlen(s->scope, sizeof(s->scope));
	memcpy(scope, s->scope, len);
	scope[len] = '\0';
	fputc_unlocked('{', f);
	j_key(f, &first, "trace_id");
	j_str(f, trace);
	j_key(f, &first, "span_id");
	j_str(f, span);
	j_key(f, &first, "parent_span_id");
	j_str(f, parent);
	j_key(f, &first, "name");
	j_str(f, s->name);
	j_key(f, &first, "kind");
	j_str(f, kind_name(s->kind));
	j_key(f, &first, "start_time_unix_nano");
	j_i64(f, (int64_t)s->start_unix_ns);
	j_key(f, &first, "end_time_unix_nano");
	j_i64(f, (int64_t)s->end_unix_ns);
	j_key(f, &first, "status");
	fputs_unlocked("{\"code\":", f);
	j_str(f, status_name(s->status));
	if (s->status_msg && *s->status_msg) {
		fputs_unlocked(",\"message\":", f);
		j_str(f, s->status_msg);
	}
	fputc_unlocked('}', f);
	j_key(f, &first, "attributes");
	j_attrs(f, &s->attrs, NULL);
	j_key(f, &first, "resource");
	j_attrs(f, s->res ? &s->res->attrs : NULL, s->res);
	j_key(f, &first, "scope");
	j_str(f, scope);
	if (s->n_links) {
		j_key(f, &first, "links");
		fputc_unlocked('[', f);
		for (uint32_t i = 0; i < s->n_links; i++) {
			char lt[33], ls[17];

			hex_encode(s->links[i].trace_id, 16, lt);
			hex_encode(s->links[i].span_id, 8, ls);
			fputs_unlocked(i ? ",{\"trace_id\":\"" : "{\"trace_id\":\"", f);
			fputs_unlocked(lt, f);
			fputs_unlocked("\",\"span_id\":\"", f);
			fputs_unlocked(ls, f);
			fputs_unlocked("\"}", f);
		}
		fputc_unlocked(']', f);
	}
	fputs_unlocked("}\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- text ----------------------------------------------------------- */

/* Writes s for a terminal: control characters (C0, DEL, C1) and invalid
 * UTF-8 bytes become '?', so wire data cannot drive the terminal. */
static void put_clean(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p);

	while (n) {
		size_t l = utf8_seq_len(p, n);
		bool c1 = l == 2 && p[0] == 0xc2 && p[1] < 0xa0;

		if (!l || c1 || (l == 1 && (*p < 0x20 || *p == 0x7f))) {
			fputc('?', f);
			l = l ? l : 1;
		} else {
			fwrite(p, 1, l, f);
		}
		p += l;
		n -= l;
	}
}

static void put_time(FILE *f, uint64_t ns)
{
	time_t sec = (time_t)(ns / 1000000000ull);
	struct tm tm;
	char buf[32];

	if (!gmtime_r(&sec, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm)) {
		fprintf(f, "@%" PRIu64, ns); /* out of gmtime range */
		return;
	}
	fprintf(f, "%s.%03uZ", buf, (unsigned)(ns % 1000000000ull / 1000000ull));
}

static void put_duration(FILE *f, uint64_t start, uint64_t end)
{
	uint64_t d = end > start ? end - start : 0;

	if (d >= 1000000000ull)
		fprintf(f, "%.3fs", (double)d / 1e9);
	else
		fprintf(f, "%.3fms", (double)d / 1e6);
}

/* Prints an attribute's value; returns false when the key is absent. */
static bool put_attr(FILE *f, const struct attr_list *l, const char *key)
{
	const struct attr *a = attr_find(l, key);

	if (!a)
		return false;
	switch (a->type) {
	case ATTR_STR: put_clean(f, a->v.s); break;
	case ATTR_INT: fprintf(f, "%" PRId64, a->v.i); break;
	case ATTR_DOUBLE: fprintf(f, "%g", a->v.d); break;
	case ATTR_BOOL: fputs(a->v.b ? "true" : "false", f); break;
	}
	return true;
}

/* The protocol's own result code, else the span status. */
static void put_result(FILE *f, const struct span *s)
{
	static const char *const keys[] = {
		"http.response.status_code", "rpc.grpc.status_code", "db.response.status_code",
	};
	bool have = false;

	for (size_t i = 0; !have && i < sizeof(keys) / sizeof(keys[0]); i++)
		have = put_attr(f, &s->attrs, keys[i]);
	if (!have)
		fputs(s->status == SONDE_STATUS_UNSET ? "-" : status_name(s->status), f);
	else if (s->status == SONDE_STATUS_ERROR)
		fputs(" ERROR", f);
}

/* Where the other end is: the server for outgoing spans, the client for
 * incoming ones. Prints nothing when unknown. */
static void put_peer(FILE *f, const struct span *s)
{
	bool out = s->kind == SONDE_SPAN_CLIENT || s->kind == SONDE_SPAN_PRODUCER;
	const char *addr = out ? "server.address" : "client.address";
	const char *port = out ? "server.port" : "client.port";

	if (!attr_find(&s->attrs, addr)) {
		addr = "network.peer.address";
		port = "network.peer.port";
	}
	if (!attr_find(&s->attrs, addr))
		return;
	fputs(" peer=", f);
	put_attr(f, &s->attrs, addr);
	if (attr_find(&s->attrs, port)) {
		fputc(':', f);
		put_attr(f, &s->attrs, port);
	}
}

static char *format_text(const struct span *s)
{
	char trace[33], span[17], parent[17] = "-";
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	hex_encode(s->trace_id, sizeof(s->trace_id), trace);
	hex_encode(s->span_id, sizeof(s->span_id), span);
	if (!is_root(s))
		hex_encode(s->parent_span_id, sizeof(s->parent_span_id), parent);
	put_time(f, s->start_unix_ns);
	fprintf(f, " %-8s %.*s ", kind_name(s->kind), (int)strnlen(s->scope, sizeof(s->scope)),
	        s->scope);
	put_clean(f, s->name);
	fputc(' ', f);
	put_result(f, s);
	fputc(' ', f);
	put_duration(f, s->start_unix_ns, s->end_unix_ns);
	fputc(' ', f);
	put_clean(f, s->res && s->res->service_name ? s->res->service_name : "?");
	fprintf(f, "[%u]", s->res ? s->res->pid : 0);
	put_peer(f, s);
	fprintf(f, " trace=%s span=%s parent=%s", trace, span, parent);
	if (s->status == SONDE_STATUS_ERROR && s->status_msg && *s->status_msg) {
		fputs(" error=\"", f);
		put_clean(f, s->status_msg);
		fputc('"', f);
	}
	fputc('\n', f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

char *print_format(const struct span *s, enum print_mode mode)
{
	if (!s)
		return NULL;
	if (mode == PRINT_JSON)
		return format_json(s);
	if (mode == PRINT_TEXT)
		return format_text(s);
	return NULL;
}

/* ---- sink ----------------------------------------------------------- */

static void print_emit(void *ctx, struct span *s)
{
	struct print_ctx *p = ctx;
	char *line = print_format(s, p->mode);
	size_t l;

	if (!line)
		return;
	l = strlen(line);
	pthread_mutex_lock(&p->mu);
	while (p->wait_when_full && p->len && p->len + l > p->cap) {
		pthread_cond_signal(&p->wake);
		pthread_cond_wait(&p->room, &p->mu);
	}
	if (p->len + l > p->size && p->len + l <= p->cap) {
		size_t n = p->size ? p->size : PRINT_BUFFER_START;
		char *nb;

		while (n < p->len + l)
			n *= 2;
		if (n > p->cap)
			n = p->cap;
		nb = realloc(p->buf, n);
		if (nb) {
			p->buf = nb;
			p->size = n;
		}
	}
	if (p->len + l > p->size) {
		p->dropped++;
	} else {
		memcpy(p->buf + p->len, line, l);
		p->len += l;
		/* A long run of spans between flushes (a replay) is written
		 * while it is made, not all at the end. */
		if (p->len >= PRINT_WAKE_BYTES && p->len - l < PRINT_WAKE_BYTES)
			pthread_cond_signal(&p->wake);
	}
	pthread_mutex_unlock(&p->mu);
	free(line);
}

static void print_flush(void *ctx)
{
	struct print_ctx *p = ctx;

	pthread_mutex_lock(&p->mu);
	if (p->len)
		pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->mu);
}

/* Takes what is waiting (swapping in its own empty buffer, so emitters go
 * on at once) and writes it with no lock held. Exits once stopped and
 * empty, so everything emitted before print_sink_free is written. */
static void *print_writer(void *arg)
{
	struct print_ctx *p = arg;
	char *mine = NULL;
	size_t mine_size = 0;
	bool broken = false;
	sigset_t all;

	/* Signals (SIGTERM, SIGINT) are the main thread's: one landing here
	 * would cut a write short and lose the lines still to come. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->len && !p->stop)
			pthread_cond_wait(&p->wake, &p->mu);
		if (!p->len)
			break;
		size_t n = p->len;
		if (broken) {
			p->len = 0; /* nowhere to write: keep taking so emit goes on */
			pthread_cond_broadcast(&p->room);
			continue;
		}
		char *full = p->buf;
		size_t full_size = p->size;

		p->buf = mine;
		p->size = mine_size;
		p->len = 0;
		mine = full;
		mine_size = full_size;
		pthread_cond_broadcast(&p->room);
		pthread_mutex_unlock(&p->mu);
		if (fwrite(mine, 1, n, p->out) != n || fflush(p->out) != 0)
			broken = true; /* a closed pipe or a full disk: stop trying */
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	free(mine);
	return NULL;
}

struct span_sink *print_sink_new_opts(FILE *out, enum print_mode mode, size_t cap,
                                      bool wait_when_full)
{
	struct print_ctx *p;

	if (!out || (mode != PRINT_JSON && mode != PRINT_TEXT) || cap == 0)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->out = out;
	p->mode = mode;
	p->cap = cap;
	p->wait_when_full = wait_when_full;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->room, NULL);
	fflush(out); /* what the caller wrote before goes first */
	if (pthread_create(&p->writer, NULL, print_writer, p) != 0) {
		pthread_cond_destroy(&p->room);
		pthread_cond_destroy(&p->wake);
		pthread_mutex_destroy(&p->mu);
		free(p->buf);
		free(p);
		return NULL;
	}
	p->sink.name = "print";
	p->sink.emit = print_emit;
	p->sink.flush = print_flush;
	p->sink.ctx = p;
	return &p->sink;
}

struct span_sink *print_sink_new(FILE *out, enum print_mode mode)
{
	return print_sink_new_opts(out, mode, PRINT_BUFFER_BYTES, false);
}

uint64_t print_sink_dropped(struct span_sink *sink)
{
	struct print_ctx *p;
	uint64_t n;

	if (!sink)
		return 0;
	p = sink->ctx;
	pthread_mutex_lock(&p->mu);
	n = p->dropped;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void print_sink_free(struct span_sink *sink)
{
	struct print_ctx *p;

	if (!sink)
		return;
	p = sink->ctx;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->writer, NULL);
	pthread_cond_destroy(&p->room);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->mu);
	free(p->buf);
	free(p);
}
