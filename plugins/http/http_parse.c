/*
 * http_parse.c - HTTP/1.x heads and chunked bodies (see http_parse.h).
 *
 * The one idea: every reader below walks a cursor and, at every byte,
 * answers one of three things - fine, invalid (-1), or ran out of bytes
 * (-2). Because "ran out" is only ever answered at the end of the buffer
 * and "invalid" only for a byte that is there, a cut message is -2 at every
 * cut point and a whole message parses identically however it was cut.
 */
#include "http_parse.h"

#include <limits.h>
#include <string.h>

enum {
	HC_SIZE = 0,  /* reading hex digits of a chunk size */
	HC_EXT,       /* chunk extension, up to the line end */
	HC_SIZE_LF,   /* CR seen after the size line */
	HC_DATA,      /* `left` data bytes to go */
	HC_DATA_CR,   /* CRLF after the data */
	HC_DATA_LF,
	HC_TRAILER,   /* at the start of a trailer line (or the final CRLF) */
	HC_TRAILER_LINE,
	HC_END_LF,
	HC_DONE,
};

/* The head readers below run for every header line: inlined into the
 * parsers, the cursor stays in registers (as calls they were a third of a
 * head's time). */
#define HOT static inline __attribute__((always_inline))

struct cur {
	const char *p;
	const char *end;
	int partial;    /* prefix mode: a cut header line ends the head */
};

/* RFC 9110 5.6.2 tchar. */
static const uint8_t tchar_tab[256] = {
	['0' ... '9'] = 1, ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1,
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
	['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
	['~'] = 1,
};

/* Field-value and reason-phrase bytes: HTAB, SP, visible ASCII, obs-text. */
static const uint8_t vchar_tab[256] = {
	['\t'] = 1, [0x20 ... 0x7e] = 1, [0x80 ... 0xff] = 1,
};

/* The first byte at or after p that is not in tab (or end); unrolled,
 * because field values are where a head spends its bytes. */
HOT const char *scan(const uint8_t *tab, const char *p, const char *end)
{
	while (end - p >= 4) {
		if (!tab[(uint8_t)p[0]])
			return p;
		if (!tab[(uint8_t)p[1]])
			return p + 1;
		if (!tab[(uint8_t)p[2]])
			return p + 2;
		if (!tab[(uint8_t)p[3]])
			return p + 3;
		p += 4;
	}
	while (p < end && tab[(uint8_t)*p])
		p++;
	return p;
}

/* scan(vchar_tab, ...) eight bytes at a time: a word with no byte below
 * 0x20 and no DEL is all field-value bytes (0x80.. is obs-text); only a
 * word holding a tab, a line end or a control byte is looked at byte by
 * byte. Header values are most of a head's bytes. */
HOT const char *scan_value(const char *p, const char *end)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;

	while (end - p >= 8) {
		uint64_t x, del;

		memcpy(&x, p, 8);
		del = x ^ (0x7f * ones);
		if (((x - 0x20 * ones) & ~x & highs) || ((del - ones) & ~del & highs)) {
			const char *q = scan(vchar_tab, p, p + 8);

			if (q < p + 8)
				return q;
		}
		p += 8;
	}
	return scan(vchar_tab, p, end);
}

/* Request-target bytes: visible ASCII and (leniently) obs-text. */
static const uint8_t target_tab[256] = {
	[0x21 ... 0x7e] = 1, [0x80 ... 0xff] = 1,
};

static int is_tchar(unsigned char c)
{
	return tchar_tab[c];
}

static int is_vchar(unsigned char c)
{
	return vchar_tab[c];
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* CRLF, or a bare LF. */
HOT int eol(struct cur *c)
{
	if (c->p == c->end)
		return HTTP_PARSE_INCOMPLETE;
	if (*c->p == '\n') {
		c->p++;
		return 0;
	}
	if (*c->p != '\r')
		return HTTP_PARSE_ERROR;
	c->p++;
	if (c->p == c->end)
		return HTTP_PARSE_INCOMPLETE;
	if (*c->p != '\n')
		return HTTP_PARSE_ERROR;
	c->p++;
	return 0;
}

/* A token followed by `stop` (consumed). */
HOT int token(struct cur *c, char stop, const char **tok, size_t *len)
{
	const char *start = c->p;

	c->p = scan(tchar_tab, c->p, c->end);
	if (c->p == c->end)
		return HTTP_PARSE_INCOMPLETE;
	if (c->p == start || *c->p != stop)
		return HTTP_PARSE_ERROR;
	*tok = start;
	*len = (size_t)(c->p - start);
	c->p++;
	return 0;
}

/* A literal, byte by byte, so that a cut literal is -2 and not -1. */
HOT int literal(struct cur *c, const char *lit)
{
	for (; *lit; lit++, c->p++) {
		if (c->p == c->end)
			return HTTP_PARSE_INCOMPLETE;
		if (*c->p != *lit)
			return HTTP_PARSE_ERROR;
	}
	return 0;
}

/* "HTTP/1." DIGIT */
HOT int version(struct cur *c, int *minor)
{
	int r = literal(c, "HTTP/1.");

	if (r)
		return r;
	if (c->p == c->end)
		return HTTP_PARSE_INCOMPLETE;
	if (*c->p < '0' || *c->p > '9')
		return HTTP_PARSE_ERROR;
	*minor = *c->p - '0';
	c->p++;
	return 0;
}

/* The rest of a line as a field value or reason phrase: leading
 * whitespace skipped, trailing whitespace trimmed, line end consumed. */
HOT int line_value(struct cur *c, const char **val, size_t *len)
{
	const char *start, *last;
	int r;

	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
	start = c->p;
	c->p = scan_value(c->p, c->end);
	if (c->p < c->end && *c->p != '\r' && *c->p != '\n')
		return HTTP_PARSE_ERROR;
	last = c->p;
	r = eol(c);
	if (r)
		return r;
	while (last > start && (last[-1] == ' ' || last[-1] == '\t'))
		last--;
	*val = start;
	*len = (size_t)(last - start);
	return 0;
}

/* Header lines up to and including the empty line. In prefix mode a cut
 * line ends the head at the last complete line (returned through c->p). */
static int headers(struct cur *c, struct http_header *h, size_t *n)
{
	*n = 0;
	for (;;) {
		const char *line = c->p;
		struct http_header *cur;
		int r;

		if (c->p == c->end)
			return HTTP_PARSE_INCOMPLETE;
		if (*c->p == '\r' || *c->p == '\n') {
			r = eol(c);
			if (r == HTTP_PARSE_INCOMPLETE && c->partial)
				c->p = line;
			return r;
		}
		if (*n == HTTP_MAX_HEADERS)
			return HTTP_PARSE_ERROR;
		cur = &h[*n];
		if (*c->p == ' ' || *c->p == '\t') {
			if (*n == 0)
				return HTTP_PARSE_ERROR;
			cur->name = NULL;
			cur->name_len = 0;
			r = 0;
		} else {
			r = token(c, ':', &cur->name, &cur->name_len);
		}
		if (!r)
			r = line_value(c, &cur->value, &cur->value_len);
		if (r == HTTP_PARSE_INCOMPLETE && c->partial) {
			c->p = line;
			return r;
		}
		if (r)
			return r;
		(*n)++;
	}
}

static int finish(struct cur *c, const char *buf, int r, int start_line_done)
{
	if (r == HTTP_PARSE_INCOMPLETE && c->partial && start_line_done && c->p > buf)
		return (int)(c->p - buf);
	if (r)
		return r;
	return (int)(c->p - buf);
}

static int parse_request(const char *buf, size_t len, struct http_request *req, int partial)
{
	struct cur c = { buf, buf + (len > INT_MAX ? INT_MAX : len), partial };
	int r;

	/* Empty lines before the request line are tolerated. */
	while (c.p < c.end && (*c.p == '\r' || *c.p == '\n')) {
		r = eol(&c);
		if (r)
			return r;
	}
	r = token(&c, ' ', &req->method, &req->method_len);
	if (r)
		return r;
	req->target = c.p;
	c.p = scan(target_tab, c.p, c.end);
	if (c.p == c.end)
		return HTTP_PARSE_INCOMPLETE;
	if (*c.p != ' ')
		return HTTP_PARSE_ERROR;
	req->target_len = (size_t)(c.p - req->target);
	if (!req->target_len)
		return HTTP_PARSE_ERROR;
	c.p++;
	r = version(&c, &req->minor_version);
	if (!r)
		r = eol(&c);
	if (r)
		return r;
	r = headers(&c, req->headers, &req->n_headers);
	return finish(&c, buf, r, 1);
}

static int parse_response(const char *buf, size_t len, struct http_response *res, int partial)
{
	struct cur c = { buf, buf + (len > INT_MAX ? INT_MAX : len), partial };
	int r, i;

	r = version(&c, &res->minor_version);
	if (!r)
		r = literal(&c, " ");
	if (r)
		return r;
	res->status = 0;
	for (i = 0; i < 3; i++, c.p++) {
		if (c.p == c.end)
			return HTTP_PARSE_INCOMPLETE;
		if (*c.p < '0' || *c.p > '9')
			return HTTP_PARSE_ERROR;
		res->status = res->status * 10 + (*c.p - '0');
	}
	if (res->status < 100)
		return HTTP_PARSE_ERROR;
	if (c.p == c.end)
		return HTTP_PARSE_INCOMPLETE;
	res->reason = c.p;
	res->reason_len = 0;
	if (*c.p == ' ')
		r = line_value(&c, &res->reason, &res->reason_len);
	else
		r = eol(&c); /* "HTTP/1.1 200" with no reason phrase */
	if (r)
		return r;
	r = headers(&c, res->headers, &res->n_headers);
	return finish(&c, buf, r, 1);
}

int http_parse_request(const char *buf, size_t len, struct http_request *req)
{
	return parse_request(buf, len, req, 0);
}

int http_parse_response(const char *buf, size_t len, struct http_response *res)
{
	return parse_response(buf, len, res, 0);
}

int http_parse_request_prefix(const char *buf, size_t len, struct http_request *req)
{
	return parse_request(buf, len, req, 1);
}

int http_parse_response_prefix(const char *buf, size_t len, struct http_response *res)
{
	return parse_response(buf, len, res, 1);
}

/* --- Start-line check (detection, resynchronisation) ---------------------- */

/* Registered methods (IANA HTTP Method Registry, the common part). */
static const char *const known_methods[] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
	"QUERY", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK",
	"SEARCH", "REPORT", "MKCALENDAR", "ACL", "BIND", "REBIND", "UNBIND", "LINK",
	"UNLINK", "MERGE", "CHECKOUT", "MKACTIVITY", "PURGE", "NOTIFY", "SUBSCRIBE",
	"UNSUBSCRIBE", "M-SEARCH",
};

#define N_KNOWN_METHODS (sizeof(known_methods) / sizeof(known_methods[0]))

/* 1: buf[0..len) is a known method; 0: a prefix of one; -1: neither. */
static int method_check(const char *buf, size_t len)
{
	int prefix = 0;

	for (size_t i = 0; i < N_KNOWN_METHODS; i++) {
		size_t ml = strlen(known_methods[i]);
		if (len <= ml && !memcmp(buf, known_methods[i], len)) {
			if (len == ml)
				return 1;
			prefix = 1;
		}
	}
	return prefix ? 0 : -1;
}

/* Does the rest of the line read " HTTP/1.x" EOL? 1 yes, 0 cut, -1 no. */
static int line_tail_check(const char *p, const char *end)
{
	struct cur c = { p, end, 0 };
	int minor, r;

	while (c.p < c.end && *c.p != ' ') {
		unsigned char ch = (unsigned char)*c.p;
		if (ch <= 0x20 || ch == 0x7f)
			return -1;
		c.p++;
	}
	if (c.p == c.end)
		return 0;
	c.p++;
	r = version(&c, &minor);
	if (!r)
		r = eol(&c);
	if (r == HTTP_PARSE_INCOMPLETE)
		return 0;
	return r ? -1 : 1;
}

static int prefix_of(const char *p, size_t n, const char *lit)
{
	size_t l = strlen(lit);

	if (n < l)
		return memcmp(p, lit, n) ? -1 : 0;
	return memcmp(p, lit, l) ? -1 : 1;
}

static int request_line_check(const char *buf, size_t len)
{
	const char *sp = memchr(buf, ' ', len < 16 ? len : 16);
	const char *t, *end = buf + len;
	int r;

	if (!sp)
		return method_check(buf, len < 16 ? len : 16) >= 0 && len < 16 ? 0 : -1;
	if (method_check(buf, (size_t)(sp - buf)) != 1)
		return -1;
	t = sp + 1;
	if (t == end)
		return 0;
	if (*t == '/' || *t == '*') {
		r = 1;
	} else if ((size_t)(sp - buf) == 7 && !memcmp(buf, "CONNECT", 7)) {
		r = (*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
		    (*t >= '0' && *t <= '9') || *t == '[' ? 1 : -1;
	} else {
		r = prefix_of(t, (size_t)(end - t), "http://");
		if (r < 0)
			r = prefix_of(t, (size_t)(end - t), "https://");
	}
	if (r <= 0)
		return r;
	/* When the whole line is there, its version must be HTTP/1.x. */
	r = line_tail_check(t, end);
	return r < 0 ? -1 : 1;
}

static int status_line_check(const char *buf, size_t len)
{
	static const char lit[] = "HTTP/1.x ddd";
	size_t n = len < sizeof(lit) - 1 ? len : sizeof(lit) - 1;

	for (size_t i = 0; i < n; i++) {
		char want = lit[i];
		if (want == 'x' || want == 'd') {
			if (buf[i] < '0' || buf[i] > '9')
				return -1;
		} else if (buf[i] != want) {
			return -1;
		}
	}
	if (n < sizeof(lit) - 1)
		return 0;
	return buf[9] == '0' ? -1 : 1;
}

int http_start_line_check(const char *buf, size_t len, int want_request)
{
	if (!len)
		return 0;
	return want_request ? request_line_check(buf, len) : status_line_check(buf, len);
}

/* --- Header helpers ------------------------------------------------------- */

/* Case-insensitive a[0..alen) == b[0..blen) (b is lower case). */
static int name_eq_n(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return 0;
	for (size_t i = 0; i < alen; i++)
		if (lower((unsigned char)a[i]) != (unsigned char)b[i])
			return 0;
	return 1;
}

/* Case-insensitive a[0..alen) == the string b (any case). */
static int name_eq(const char *a, size_t alen, const char *b)
{
	size_t i;

	for (i = 0; i < alen; i++)
		if (!b[i] || lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return b[i] == '\0';
}

const struct http_header *http_header_find(const struct http_header *h, size_t n,
                                           const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < n; i++)
		if (h[i].name && h[i].name_len == len && name_eq(h[i].name, h[i].name_len, name))
			return &h[i];
	return NULL;
}

/* Calls back for each trimmed element of a comma-separated list; stops
 * when cb returns non-zero and returns that. */
static int each_element(const char *val, size_t len, const char *token,
                        int (*cb)(const char *e, size_t n, const char *token))
{
	size_t i = 0;

	while (i < len) {
		size_t s, e;
		int r;

		while (i < len && (val[i] == ' ' || val[i] == '\t' || val[i] == ','))
			i++;
		s = i;
		while (i < len && val[i] != ',')
			i++;
		e = i;
		while (e > s && (val[e - 1] == ' ' || val[e - 1] == '\t'))
			e--;
		if (e == s)
			continue;
		r = cb(val + s, e - s, token);
		if (r)
			return r;
	}
	return 0;
}

static int elem_is(const char *e, size_t n, const char *token)
{
	/* Strip parameters ("gzip;q=1"). */
	const char *semi = memchr(e, ';', n);

	if (semi) {
		n = (size_t)(semi - e);
		while (n && (e[n - 1] == ' ' || e[n - 1] == '\t'))
			n--;
	}
	return name_eq(e, n, token);
}

int http_value_has_token(const char *val, size_t len, const char *token)
{
	return each_element(val, len, token, elem_is);
}

int http_value_last_token_is(const char *val, size_t len, const char *token)
{
	size_t e = len, s;

	while (e && (val[e - 1] == ' ' || val[e - 1] == '\t' || val[e - 1] == ','))
		e--;
	s = e;
	while (s && val[s - 1] != ',')
		s--;
	while (s < e && (val[s] == ' ' || val[s] == '\t'))
		s++;
	return e > s && elem_is(val + s, e - s, token);
}

int http_parse_content_length(const char *val, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (!len || len > 18)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (val[i] < '0' || val[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(val[i] - '0');
	}
	*out = v;
	return 0;
}

/* Content-Length, possibly repeated (in several lines or as "n, n"): all
 * values must agree. Returns 1 when present, 0 when absent, -1 invalid. */
static int content_length(const struct http_header *h, size_t n, uint64_t *out)
{
	int found = 0;

	for (size_t i = 0; i < n; i++) {
		const char *v;
		size_t vl, k = 0;

		if (!h[i].name || !name_eq_n(h[i].name, h[i].name_len, "content-length", 14))
			continue;
		v = h[i].value;
		vl = h[i].value_len;
		while (k <= vl) {
			size_t s = k, e;
			uint64_t x;

			while (k < vl && v[k] != ',')
				k++;
			e = k;
			while (s < e && (v[s] == ' ' || v[s] == '\t'))
				s++;
			while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
				e--;
			if (http_parse_content_length(v + s, e - s, &x))
				return -1;
			if (found && x != *out)
				return -1;
			*out = x;
			found = 1;
			k++;
		}
	}
	return found;
}

/* 1: chunked is the final coding; 0: no Transfer-Encoding; -1: another
 * final coding. */
static int transfer_encoding(const struct http_header *h, size_t n)
{
	const struct http_header *last = NULL;

	for (size_t i = 0; i < n; i++)
		if (h[i].name && name_eq_n(h[i].name, h[i].name_len, "transfer-encoding", 17))
			last = &h[i];
	if (!last)
		return 0;
	return http_value_last_token_is(last->value, last->value_len, "chunked") ? 1 : -1;
}

int http_request_framing(const struct http_request *req, struct http_framing *f)
{
	int te = transfer_encoding(req->headers, req->n_headers);
	int cl;

	f->length = 0;
	if (te > 0) {
		f->kind = HTTP_BODY_CHUNKED;
		return 0;
	}
	if (te < 0)
		return -1; /* RFC 9112 6.3: the server cannot frame it either */
	cl = content_length(req->headers, req->n_headers, &f->length);
	if (cl < 0)
		return -1;
	f->kind = cl && f->length ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
	return 0;
}

int http_response_framing(const struct http_response *res, int req_is_head,
                          int req_is_connect, struct http_framing *f)
{
	int te, cl;

	f->length = 0;
	f->kind = HTTP_BODY_NONE;
	if (req_is_head || res->status < 200 || res->status == 204 || res->status == 304)
		return 0;
	if (req_is_connect && res->status < 300)
		return 0;
	te = transfer_encoding(res->headers, res->n_headers);
	if (te > 0) {
		f->kind = HTTP_BODY_CHUNKED;
		return 0;
	}
	if (te < 0) {
		f->kind = HTTP_BODY_CLOSE;
		return 0;
	}
	cl = content_length(res->headers, res->n_headers, &f->length);
	if (cl < 0)
		return -1;
	if (!cl)
		f->kind = HTTP_BODY_CLOSE;
	else if (f->length)
		f->kind = HTTP_BODY_LENGTH;
	return 0;
}

/* --- Chunked decoder ------------------------------------------------------ */

void http_chunked_init(struct http_chunked *d)
{
	d->left = 0;
	d->state = HC_SIZE;
	d->n_hex = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)lower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void size_line_done(struct http_chunked *d)
{
	d->n_hex = 0;
	d->state = d->left ? HC_DATA : HC_TRAILER;
}

/* One byte of framing (every state but HC_DATA). Returns 0 or -1. */
static int chunked_byte(struct http_chunked *d, char ch)
{
	int v;

	switch (d->state) {
	case HC_SIZE:
		v = hexval(ch);
		if (v >= 0) {
			if (d->n_hex == 15) /* > 2^60: not a real size */
				return -1;
			d->left = d->left * 16 + (uint64_t)v;
			d->n_hex++;
			return 0;
		}
		if (!d->n_hex)
			return -1;
		if (ch == ';' || ch == ' ' || ch == '\t')
			d->state = HC_EXT;
		else if (ch == '\r')
			d->state = HC_SIZE_LF;
		else if (ch == '\n')
			size_line_done(d);
		else
			return -1;
		return 0;
	case HC_EXT:
		if (ch == '\r')
			d->state = HC_SIZE_LF;
		else if (ch == '\n')
			size_line_done(d);
		else if (!is_vchar((unsigned char)ch))
			return -1;
		return 0;
	case HC_SIZE_LF:
		if (ch != '\n')
			return -1;
		size_line_done(d);
		return 0;
	case HC_DATA_CR:
		if (ch == '\r')
			d->state = HC_DATA_LF;
		else if (ch == '\n')
			d->state = HC_SIZE;
		else
			return -1;
		return 0;
	case HC_DATA_LF:
		if (ch != '\n')
			return -1;
		d->state = HC_SIZE;
		return 0;
	case HC_TRAILER:
		if (ch == '\r')
			d->state = HC_END_LF;
		else if (ch == '\n')
			d->state = HC_DONE;
		else if (is_tchar((unsigned char)ch))
			d->state = HC_TRAILER_LINE;
		else
			return -1;
		return 0;
	case HC_TRAILER_LINE:
		if (ch == '\n')
			d->state = HC_TRAILER;
		else if (ch != '\r' && !is_vchar((unsigned char)ch))
			return -1;
		return 0;
	case HC_END_LF:
		if (ch != '\n')
			return -1;
		d->state = HC_DONE;
		return 0;
	}
	return -1;
}

ssize_t http_chunked_feed(struct http_chunked *d, const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && d->state != HC_DONE) {
		if (d->state == HC_DATA) {
			size_t k = len - i;
			if (k > d->left)
				k = (size_t)d->left;
			d->left -= k;
			i += k;
			if (!d->left)
				d->state = HC_DATA_CR;
			continue;
		}
		if (chunked_byte(d, buf[i]))
			return -1;
		i++;
	}
	return (ssize_t)i;
}

int http_chunked_skip(struct http_chunked *d, uint64_t n)
{
	if (!n)
		return 0;
	if (d->state != HC_DATA || n > d->left)
		return -1;
	d->left -= n;
	if (!d->left)
		d->state = HC_DATA_CR;
	return 0;
}

uint64_t http_chunked_data_left(const struct http_chunked *d)
{
	return d->state == HC_DATA ? d->left : 0;
}

int http_chunked_done(const struct http_chunked *d)
{
	return d->state == HC_DONE;
}
