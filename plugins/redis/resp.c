/*
 * resp.c - the stateless RESP parser: header lines, whole values, inline
 * commands.
 *
 * Everything here is a pure function of a caller-owned buffer: nothing is
 * allocated, nothing is kept, and the answer for a prefix of a value is
 * always RESP_INCOMPLETE, so a caller may retry with more bytes. Nesting is
 * walked with a fixed array of element counts (RESP_MAX_DEPTH), never by
 * recursion, so a "*1\r\n*1\r\n..." bomb costs 32 entries and an error.
 */
#include "resp.h"

#include <string.h>
#include <strings.h>

int resp_type_is_string(uint8_t t)
{
	return t == RESP_BULK || t == RESP_BLOB_ERROR || t == RESP_VERBATIM;
}

int resp_type_is_aggregate(uint8_t t)
{
	return t == RESP_ARRAY || t == RESP_MAP || t == RESP_SET || t == RESP_PUSH ||
	       t == RESP_ATTR;
}

static int is_text_type(uint8_t t)
{
	return t == RESP_SIMPLE || t == RESP_ERROR || t == RESP_DOUBLE || t == RESP_BIGNUM;
}

static int is_known_type(uint8_t t)
{
	return is_text_type(t) || resp_type_is_string(t) || resp_type_is_aggregate(t) ||
	       t == RESP_INTEGER || t == RESP_NULL || t == RESP_BOOL;
}

int64_t resp_hdr_children(const struct resp_hdr *h)
{
	if (!resp_type_is_aggregate(h->type) || h->n <= 0)
		return 0;
	if (h->type == RESP_MAP || h->type == RESP_ATTR)
		return 2 * h->n;
	return h->n;
}

/* Decimal digits only, at most 18 of them (fits int64). */
static int parse_digits(const uint8_t *p, size_t n, int64_t *out)
{
	int64_t v = 0;

	if (n == 0 || n > 18)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return 0;
}

/* A length or count: digits, or "-1" when the type has a RESP2 null. */
static int parse_len(uint8_t type, const uint8_t *p, size_t n, int64_t *out)
{
	if (n == 2 && p[0] == '-' && p[1] == '1') {
		if (type != RESP_BULK && type != RESP_ARRAY)
			return RESP_ERR;
		*out = -1;
		return 0;
	}
	if (n == 1 && p[0] == '?')
		return RESP_UNSUPPORTED;
	if (parse_digits(p, n, out) < 0 || *out > RESP_MAX_LEN)
		return RESP_ERR;
	if (type == RESP_VERBATIM && *out < 4)
		return RESP_ERR; /* "txt:" prefix is mandatory */
	return 0;
}

/* An integer reply: optional sign, up to 19 digits, within int64. */
static int parse_integer(const uint8_t *p, size_t n, int64_t *out)
{
	uint64_t v = 0, limit = INT64_MAX;
	int neg = 0;

	if (n > 0 && (p[0] == '-' || p[0] == '+')) {
		neg = p[0] == '-';
		limit += neg; /* |INT64_MIN| */
		p++;
		n--;
	}
	if (n == 0 || n > 19)
		return RESP_ERR;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return RESP_ERR;
		if (v > (limit - (uint64_t)(p[i] - '0')) / 10)
			return RESP_ERR;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static int valid_double(const uint8_t *p, size_t n)
{
	static const char *const words[] = { "inf", "-inf", "+inf", "nan" };

	if (n == 0)
		return 0;
	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
		if (n == strlen(words[w]) && strncasecmp((const char *)p, words[w], n) == 0)
			return 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!strchr("0123456789+-.eE", p[i]))
			return 0;
	}
	return 1;
}

static int valid_bignum(const uint8_t *p, size_t n)
{
	if (n > 0 && (p[0] == '-' || p[0] == '+')) {
		p++;
		n--;
	}
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
	}
	return 1;
}

/* Validate the text of a header line and fill h. */
static int check_line(uint8_t type, const uint8_t *p, size_t n, struct resp_hdr *h)
{
	h->type = type;
	h->n = 0;
	h->text = p;
	h->text_len = n;
	switch (type) {
	case RESP_SIMPLE:
	case RESP_ERROR:
		return 0;
	case RESP_INTEGER:
		return parse_integer(p, n, &h->n);
	case RESP_NULL:
		return n == 0 ? 0 : RESP_ERR;
	case RESP_BOOL:
		if (n != 1 || (p[0] != 't' && p[0] != 'f'))
			return RESP_ERR;
		h->n = p[0] == 't';
		return 0;
	case RESP_DOUBLE:
		return valid_double(p, n) ? 0 : RESP_ERR;
	case RESP_BIGNUM:
		return valid_bignum(p, n) ? 0 : RESP_ERR;
	default:
		h->text = NULL;
		h->text_len = 0;
		return parse_len(type, p, n, &h->n);
	}
}

ssize_t resp_parse_hdr(const uint8_t *buf, size_t len, struct resp_hdr *h)
{
	size_t max, i;
	uint8_t t;
	int rc;

	if (len == 0)
		return RESP_INCOMPLETE;
	t = buf[0];
	if (t == ';' || t == '.')
		return RESP_UNSUPPORTED; /* streamed string chunk / aggregate end */
	if (!is_known_type(t))
		return RESP_ERR;
	max = is_text_type(t) ? RESP_MAX_LINE : RESP_MAX_NUM_LINE;
	/* buf[1..i) is the line; buf[i] must be CR and buf[i+1] LF. */
	for (i = 1; i < len && i <= max + 1; i++) {
		if (buf[i] == '\n')
			return RESP_ERR; /* LF without CR */
		if (buf[i] != '\r')
			continue;
		if (i + 1 == len)
			return RESP_INCOMPLETE;
		if (buf[i + 1] != '\n')
			return RESP_ERR; /* CR inside a line */
		rc = check_line(t, buf + 1, i - 1, h);
		if (rc < 0)
			return rc;
		return (ssize_t)(i + 2);
	}
	return i > max + 1 ? RESP_ERR : RESP_INCOMPLETE;
}

/* Bookkeeping for one value of a message being walked. */
struct walk {
	int depth;
	struct {
		int64_t left;
		uint8_t attr;
	} stk[RESP_MAX_DEPTH];
};

/* A value ended. Pops every aggregate it completes. Returns 1 when the
 * whole message (a non-attribute top-level value) is complete. */
static int walk_complete(struct walk *w, int was_attr)
{
	while (w->depth > 0) {
		int top = w->depth - 1;

		if (!was_attr)
			w->stk[top].left--;
		if (w->stk[top].left > 0)
			return 0;
		was_attr = w->stk[top].attr;
		w->depth--;
	}
	return !was_attr;
}

static void record(struct resp_msg *m, const struct walk *w, const struct resp_hdr *h,
                   const uint8_t *payload)
{
	const uint8_t *p = payload ? payload : h->text;
	size_t n = payload ? (size_t)h->n : h->text_len;

	if (h->type == RESP_ATTR)
		return;
	if (w->depth == 0) {
		m->type = h->type;
		m->n = h->n;
		m->text = p;
		m->text_len = p ? n : 0;
		return;
	}
	if (w->depth != 1 || w->stk[0].attr || m->n_args >= RESP_MAX_ARGS)
		return;
	m->args[m->n_args].type = h->type;
	m->args[m->n_args].p = p;
	m->args[m->n_args].len = p ? n : 0;
	m->n_args++;
}

ssize_t resp_parse(const uint8_t *buf, size_t len, struct resp_msg *m)
{
	struct walk w = { 0 };
	size_t off = 0;

	memset(m, 0, sizeof(*m));
	for (;;) {
		struct resp_hdr h;
		const uint8_t *payload = NULL;
		int64_t kids;
		ssize_t r = resp_parse_hdr(buf + off, len - off, &h);

		if (r < 0)
			return r;
		off += (size_t)r;
		if (resp_type_is_string(h.type) && h.n >= 0) {
			if (len - off < (size_t)h.n + 2)
				return RESP_INCOMPLETE;
			payload = buf + off;
			if (payload[h.n] != '\r' || payload[h.n + 1] != '\n')
				return RESP_ERR;
			off += (size_t)h.n + 2;
		}
		record(m, &w, &h, payload);
		kids = resp_hdr_children(&h);
		if (kids > 0) {
			if (w.depth == RESP_MAX_DEPTH)
				return RESP_ERR;
			w.stk[w.depth].left = kids;
			w.stk[w.depth].attr = h.type == RESP_ATTR;
			w.depth++;
			continue;
		}
		if (walk_complete(&w, h.type == RESP_ATTR))
			return (ssize_t)off;
	}
}

static int is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* One quoted word starting at p[i] (the quote). Sets *end past the closing
 * quote. Returns -1 when unbalanced or when the quote is not followed by a
 * space or the end of the line (Redis's sdssplitargs rules). */
static int quoted_word(const uint8_t *p, size_t n, size_t i, size_t *end)
{
	uint8_t q = p[i];

	for (i++; i < n; i++) {
		if (p[i] == '\\' && i + 1 < n) {
			i++;
			continue;
		}
		if (p[i] != q)
			continue;
		if (i + 1 < n && !is_space(p[i + 1]))
			return -1;
		*end = i + 1;
		return 0;
	}
	return -1;
}

int resp_split_inline(const uint8_t *line, size_t n, struct resp_str *args, size_t max,
                      int64_t *words)
{
	size_t i = 0;

	*words = 0;
	while (i < n) {
		size_t start, end;

		while (i < n && is_space(line[i]))
			i++;
		if (i == n)
			break;
		start = i;
		if (line[i] == '"' || line[i] == '\'') {
			if (quoted_word(line, n, i, &end) < 0)
				return -1;
			i = end;
			start++;
			end--;
		} else {
			while (i < n && !is_space(line[i]))
				i++;
			end = i;
		}
		if ((size_t)*words < max) {
			args[*words].type = RESP_BULK;
			args[*words].p = line + start;
			args[*words].len = end - start;
		}
		(*words)++;
	}
	return 0;
}

ssize_t resp_parse_request(const uint8_t *buf, size_t len, struct resp_msg *m)
{
	const uint8_t *lf;
	size_t linelen;

	if (len > 0 && buf[0] == '*')
		return resp_parse(buf, len, m);
	memset(m, 0, sizeof(*m));
	lf = memchr(buf, '\n', len < RESP_MAX_LINE ? len : RESP_MAX_LINE);
	if (!lf)
		return len < RESP_MAX_LINE ? RESP_INCOMPLETE : RESP_ERR;
	linelen = (size_t)(lf - buf);
	if (linelen > 0 && buf[linelen - 1] == '\r')
		linelen--;
	m->type = RESP_INLINE;
	if (resp_split_inline(buf, linelen, m->args, RESP_MAX_ARGS, &m->n) < 0)
		return RESP_ERR;
	m->n_args = m->n < RESP_MAX_ARGS ? (size_t)m->n : RESP_MAX_ARGS;
	return (ssize_t)(lf - buf) + 1;
}
