/*
 * print.c - the stdout span printer (JSON lines or human text lines).
 *
 * The one idea: a span becomes one complete line in memory first, then one
 * locked fwrite + fflush puts it out, so concurrent emitters never interleave
 * and a reader piping into jq always sees whole objects. Everything that
 * came off the wire (names, attribute values) is sanitised on the way out:
 * JSON gets valid UTF-8, the terminal gets no control characters.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <sonde/plugin.h>

#include "export/print.h"
#include "base/hex.h"
#include "base/utf8.h"

struct print_ctx {
	struct span_sink sink; /* first: print_sink_free gets this pointer */
	FILE *out;
	enum print_mode mode;
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

/* A malloc'd copy of s with each byte of invalid UTF-8 replaced by U+FFFD. */
static char *utf8_clean(const char *s)
{
	bool oom = false;
	char *c = utf8_repair(s, &oom);

	return c || oom ? c : strdup(s);
}

/* A JSON string from bytes that may not be UTF-8 (see utf8_clean). */
static json_t *json_str_safe(const char *s)
{
	char *clean;
	json_t *j;

	if (!s)
		s = "";
	if (utf8_valid(s))
		return json_string(s);
	clean = utf8_clean(s);
	if (!clean)
		return NULL;
	j = json_string(clean);
	free(clean);
	return j;
}

static json_t *json_double_safe(double d)
{
	if (isnan(d))
		return json_string("NaN");
	if (isinf(d))
		return json_string(d > 0 ? "Infinity" : "-Infinity");
	return json_real(d);
}

static json_t *attr_json(const struct attr *a)
{
	switch (a->type) {
	case ATTR_STR: return json_str_safe(a->v.s);
	case ATTR_INT: return json_integer((json_int_t)a->v.i);
	case ATTR_DOUBLE: return json_double_safe(a->v.d);
	case ATTR_BOOL: return json_boolean(a->v.b);
	}
	return json_null();
}

/* Sets key (sanitised) to v, stealing v. -1 on failure. */
static int obj_set(json_t *obj, const char *key, json_t *v)
{
	char *clean = NULL;
	int ret;

	if (!v)
		return -1;
	if (!utf8_valid(key)) {
		clean = utf8_clean(key);
		if (!clean) {
			json_decref(v);
			return -1;
		}
		key = clean;
	}
	ret = json_object_set_new(obj, key, v); /* steals v even on failure */
	free(clean);
	return ret;
}

static json_t *attrs_json(const struct attr_list *l)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	for (size_t i = 0; l && i < l->n; i++) {
		if (obj_set(o, l->a[i].key, attr_json(&l->a[i])) < 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *resource_json(const struct resource *r)
{
	json_t *o;

	if (!r)
		return json_object();
	o = attrs_json(&r->attrs);
	if (o && r->service_name && !attr_find(&r->attrs, "service.name") &&
	    obj_set(o, "service.name", json_str_safe(r->service_name)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *status_json(const struct span *s)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (obj_set(o, "code", json_string(status_name(s->status))) < 0)
		goto fail;
	if (s->status_msg && *s->status_msg &&
	    obj_set(o, "message", json_str_safe(s->status_msg)) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static char *format_json(const struct span *s)
{
	char trace[33], span[17], parent[17], scope[sizeof(s->scope) + 1];
	json_t *o = json_object();
	char *dump = NULL, *line = NULL;
	size_t n;

	if (!o)
		return NULL;
	hex_encode(s->trace_id, sizeof(s->trace_id), trace);
	hex_encode(s->span_id, sizeof(s->span_id), span);
	if (is_root(s))
		parent[0] = '\0';
	else
		hex_encode(s->parent_span_id, sizeof(s->parent_span_id), parent);
	n = strnlen(s->scope, sizeof(s->scope));
	memcpy(scope, s->scope, n);
	scope[n] = '\0';
	if (obj_set(o, "trace_id", json_string(trace)) < 0 ||
	    obj_set(o, "span_id", json_string(span)) < 0 ||
	    obj_set(o, "parent_span_id", json_string(parent)) < 0 ||
	    obj_set(o, "name", json_str_safe(s->name)) < 0 ||
	    obj_set(o, "kind", json_string(kind_name(s->kind))) < 0 ||
	    obj_set(o, "start_time_unix_nano", json_integer((json_int_t)s->start_unix_ns)) < 0 ||
	    obj_set(o, "end_time_unix_nano", json_integer((json_int_t)s->end_unix_ns)) < 0 ||
	    obj_set(o, "status", status_json(s)) < 0 ||
	    obj_set(o, "attributes", attrs_json(&s->attrs)) < 0 ||
	    obj_set(o, "resource", resource_json(s->res)) < 0 ||
	    obj_set(o, "scope", json_str_safe(scope)) < 0)
		goto out;
	if (s->n_links) {
		json_t *links = json_array();

		for (uint32_t i = 0; links && i < s->n_links; i++) {
			char lt[33], ls[17];
			json_t *l = json_object();

			hex_encode(s->links[i].trace_id, 16, lt);
			hex_encode(s->links[i].span_id, 8, ls);
			if (!l || obj_set(l, "trace_id", json_string(lt)) < 0 ||
			    obj_set(l, "span_id", json_string(ls)) < 0 ||
			    json_array_append_new(links, l) < 0) {
				json_decref(l);
				break;
			}
		}
		if (obj_set(o, "links", links) < 0)
			goto out;
	}
	dump = json_dumps(o, JSON_COMPACT);
	if (!dump)
		goto out;
	n = strlen(dump);
	line = malloc(n + 2);
	if (!line)
		goto out;
	memcpy(line, dump, n);
	line[n] = '\n';
	line[n + 1] = '\0';
out:
	free(dump);
	json_decref(o);
	return line;
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

	if (!line)
		return;
	flockfile(p->out);
	fwrite_unlocked(line, 1, strlen(line), p->out);
	fflush_unlocked(p->out);
	funlockfile(p->out);
	free(line);
}

static void print_flush(void *ctx)
{
	struct print_ctx *p = ctx;

	fflush(p->out);
}

struct span_sink *print_sink_new(FILE *out, enum print_mode mode)
{
	struct print_ctx *p;

	if (!out || (mode != PRINT_JSON && mode != PRINT_TEXT))
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->out = out;
	p->mode = mode;
	p->sink.name = "print";
	p->sink.emit = print_emit;
	p->sink.flush = print_flush;
	p->sink.ctx = p;
	return &p->sink;
}

void print_sink_free(struct span_sink *sink)
{
	struct print_ctx *p;

	if (!sink)
		return;
	p = sink->ctx;
	fflush(p->out);
	free(p);
}
