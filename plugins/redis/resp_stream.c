/*
 * resp_stream.c - the incremental RESP decoder used on live connections.
 *
 * A chunk may end anywhere: inside a header line, inside a bulk payload,
 * between the CR and the LF. The decoder is a four-state machine (start of
 * a value, inside a header line, inside an inline command line, inside a
 * bulk payload) whose only memory is plain fields of struct resp_stream, so
 * feeding a message one byte at a time gives exactly what feeding it whole
 * gives. Header lines are completed in a small buffer and then checked by
 * the stateless resp_parse_hdr(), so both layers accept the same bytes.
 *
 * Bulk payloads are never buffered: they are counted down in bulk_left, and
 * only the first RESP_KEEP_LEN bytes of the first RESP_KEEP_ARGS top-level
 * elements are copied (command name, key, subcommand; reply kind). That is
 * what lets resp_stream_skip() step over bytes that were never captured.
 */
#include "resp.h"

#include <string.h>

enum { RS_HDR = 0, RS_LINE, RS_INLINE, RS_BULK };

#define DEST_NONE (-1)
#define DEST_TEXT 3

void resp_stream_init(struct resp_stream *s, int request)
{
	memset(s, 0, sizeof(*s));
	s->request = request ? 1 : 0;
	s->bulk_dest = DEST_NONE;
}

int resp_stream_in_msg(const struct resp_stream *s)
{
	return s->in_msg;
}

static int is_text_line(uint8_t t)
{
	return t == RESP_SIMPLE || t == RESP_ERROR || t == RESP_DOUBLE || t == RESP_BIGNUM;
}

static struct resp_copy *dest_ptr(struct resp_stream *s, int idx)
{
	if (idx == DEST_TEXT)
		return &s->cur.text;
	if (idx >= 0 && idx < RESP_KEEP_ARGS)
		return &s->cur.args[idx];
	return NULL;
}

static void copy_in(struct resp_copy *d, const uint8_t *p, size_t n)
{
	size_t room = RESP_KEEP_LEN - d->len;

	if (n > room)
		n = room;
	memcpy(d->buf + d->len, p, n);
	d->len += (uint16_t)n;
}

/* Which copy slot the value whose header was just read goes to. */
static int dest_for(struct resp_stream *s, uint8_t type)
{
	uint32_t i;

	if (type == RESP_ATTR)
		return DEST_NONE;
	if (s->depth == 0)
		return DEST_TEXT;
	if (s->depth != 1 || s->stk[0].attr)
		return DEST_NONE;
	i = s->arg_idx++;
	return i < RESP_KEEP_ARGS ? (int)i : DEST_NONE;
}

/* A value ended: pop the aggregates it completes. Sets *done when the
 * message's top-level value is complete. */
static int value_done(struct resp_stream *s, int was_attr, int *done)
{
	s->state = RS_HDR;
	while (s->depth > 0) {
		int top = s->depth - 1;

		if (!was_attr)
			s->stk[top].left--;
		if (s->stk[top].left > 0)
			return 0;
		was_attr = s->stk[top].attr;
		s->depth--;
	}
	if (!was_attr) {
		s->in_msg = 0;
		*done = 1;
	}
	return 0;
}

static int on_header(struct resp_stream *s, const struct resp_hdr *h, int *done)
{
	int di = dest_for(s, h->type);
	struct resp_copy *d = dest_ptr(s, di);
	int64_t kids;

	if (s->depth == 0 && h->type != RESP_ATTR) {
		s->cur.type = h->type;
		s->cur.n = h->n;
		s->top_seen = 1;
	}
	if (d) {
		d->present = 1;
		d->type = h->type;
		if (h->text) {
			copy_in(d, h->text, h->text_len);
			d->full_len = s->line_len;
		}
	}
	if (resp_type_is_string(h->type) && h->n >= 0) {
		s->state = RS_BULK;
		s->bulk_left = (uint64_t)h->n + 2;
		s->bulk_dest = (int8_t)(d ? di : DEST_NONE);
		if (d)
			d->full_len = (uint64_t)h->n;
		return 0;
	}
	kids = resp_hdr_children(h);
	if (kids > 0) {
		if (s->depth == RESP_MAX_DEPTH)
			return RESP_ERR;
		s->stk[s->depth].left = kids;
		s->stk[s->depth].attr = h->type == RESP_ATTR;
		s->depth++;
		s->state = RS_HDR;
		return 0;
	}
	return value_done(s, h->type == RESP_ATTR, done);
}

/* An empty copy. Its buffer is not cleared: only its first len bytes are
 * ever read (clearing and copying whole 350-byte summaries took most of
 * the decoder's own samples in a profile of pipelined GETs). */
static void copy_clear(struct resp_copy *c)
{
	c->type = 0;
	c->present = 0;
	c->lost = 0;
	c->len = 0;
	c->full_len = 0;
}

static void copy_out(struct resp_copy *d, const struct resp_copy *c)
{
	d->type = c->type;
	d->present = c->present;
	d->lost = c->lost;
	d->len = c->len;
	d->full_len = c->full_len;
	memcpy(d->buf, c->buf, c->len);
}

/* A completed message to the caller: the copies' used bytes only. */
static void summary_out(struct resp_summary *out, const struct resp_summary *m)
{
	out->type = m->type;
	out->n = m->n;
	out->wire_len = m->wire_len;
	out->lost = m->lost;
	copy_out(&out->text, &m->text);
	for (int i = 0; i < RESP_KEEP_ARGS; i++)
		copy_out(&out->args[i], &m->args[i]);
}

static int copy_eq(const struct resp_copy *a, const struct resp_copy *b)
{
	return a->type == b->type && a->present == b->present && a->lost == b->lost &&
	       a->len == b->len && a->full_len == b->full_len && a->len <= RESP_KEEP_LEN &&
	       memcmp(a->buf, b->buf, a->len) == 0;
}

int resp_summary_eq(const struct resp_summary *a, const struct resp_summary *b)
{
	if (a->type != b->type || a->n != b->n || a->wire_len != b->wire_len ||
	    a->lost != b->lost || !copy_eq(&a->text, &b->text))
		return 0;
	for (int i = 0; i < RESP_KEEP_ARGS; i++)
		if (!copy_eq(&a->args[i], &b->args[i]))
			return 0;
	return 1;
}

/* The first value of a message starts a fresh summary. */
static void begin_msg(struct resp_stream *s)
{
	if (s->in_msg)
		return;
	s->cur.type = 0;
	s->cur.n = 0;
	s->cur.wire_len = 0;
	s->cur.lost = 0;
	copy_clear(&s->cur.text);
	for (int i = 0; i < RESP_KEEP_ARGS; i++)
		copy_clear(&s->cur.args[i]);
	s->in_msg = 1;
	s->top_seen = 0;
	s->arg_idx = 0;
}

/* First byte of a value. Consumes it (returns 1) unless it starts an inline
 * command, which the inline state reads from its first byte (returns 0). */
static int start_value(struct resp_stream *s, uint8_t b)
{
	struct resp_hdr h;
	ssize_t r;

	begin_msg(s);
	s->line_len = 0;
	s->line_cr = 0;
	if (s->request && s->depth == 0 && !s->top_seen && b != RESP_ARRAY) {
		s->state = RS_INLINE;
		return 0;
	}
	r = resp_parse_hdr(&b, 1, &h); /* only says whether the type byte is valid */
	if (r != RESP_INCOMPLETE)
		return r < 0 ? (int)r : RESP_ERR;
	s->line_type = b;
	s->state = RS_LINE;
	return 1;
}

static int finish_line(struct resp_stream *s, int *done)
{
	uint8_t tmp[1 + RESP_INLINE_KEEP + 2];
	size_t k = s->line_len < RESP_INLINE_KEEP ? s->line_len : RESP_INLINE_KEEP;
	struct resp_hdr h;
	ssize_t r;

	tmp[0] = s->line_type;
	memcpy(tmp + 1, s->line, k);
	tmp[1 + k] = '\r';
	tmp[2 + k] = '\n';
	r = resp_parse_hdr(tmp, k + 3, &h);
	if (r < 0)
		return (int)r;
	if ((size_t)r != k + 3)
		return RESP_ERR;
	return on_header(s, &h, done);
}

/* A whole header line at the start of p (type byte, at most
 * RESP_INLINE_KEEP line bytes, CRLF): read in one go, without the byte
 * states. Returns 1 when it was (and *used bytes were consumed), 0 to let
 * the byte states do it (an inline command, a line cut by the chunk's end,
 * a longer line, or bytes they will reject the same way), or a negative
 * error from the header. What it leaves in s is what the byte states
 * leave, so where a chunk ends never changes the result. */
static int header_whole(struct resp_stream *s, const uint8_t *p, size_t n, size_t *used,
                        int *done)
{
	size_t lim = n < RESP_INLINE_KEEP + 3 ? n : RESP_INLINE_KEEP + 3;
	struct resp_hdr h;
	ssize_t r;

	if (s->request && s->depth == 0 && (!s->in_msg || !s->top_seen) && p[0] != RESP_ARRAY)
		return 0;
	r = resp_parse_hdr(p, lim, &h);
	if (r < 3)
		return 0;
	begin_msg(s);
	s->line_type = p[0];
	s->line_len = (uint32_t)(r - 3);
	s->line_cr = 0;
	*used = (size_t)r;
	r = on_header(s, &h, done);
	return r < 0 ? (int)r : 1;
}

static int line_bytes(struct resp_stream *s, const uint8_t *p, size_t n, size_t *used,
                      int *done)
{
	uint32_t max = is_text_line(s->line_type) ? RESP_MAX_LINE : RESP_MAX_NUM_LINE;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (s->line_cr) {
			if (c != '\n')
				return RESP_ERR; /* CR inside a line */
			*used = i + 1;
			return finish_line(s, done);
		}
		if (c == '\n')
			return RESP_ERR; /* LF without CR */
		if (c == '\r') {
			s->line_cr = 1;
			continue;
		}
		if (s->line_len < RESP_INLINE_KEEP)
			s->line[s->line_len] = c;
		if (++s->line_len > max)
			return RESP_ERR;
	}
	*used = n;
	return 0;
}

static int finish_inline(struct resp_stream *s, int *done)
{
	size_t k = s->line_len < RESP_INLINE_KEEP ? s->line_len : RESP_INLINE_KEEP;
	int cut = s->line_len > RESP_INLINE_KEEP;
	struct resp_str w[RESP_KEEP_ARGS];
	int64_t words;

	if (!cut && k > 0 && s->line[k - 1] == '\r')
		k--;
	if (resp_split_inline(s->line, k, w, RESP_KEEP_ARGS, &words) < 0 && !cut)
		return RESP_ERR;
	s->state = RS_HDR;
	if (words == 0) {
		s->in_msg = 0; /* an empty line: Redis ignores it, so do we */
		return 0;
	}
	s->cur.type = RESP_INLINE;
	s->cur.n = words;
	s->cur.lost = (uint8_t)cut;
	for (int64_t i = 0; i < words && i < RESP_KEEP_ARGS; i++) {
		struct resp_copy *d = &s->cur.args[i];

		d->present = 1;
		d->type = RESP_BULK;
		d->full_len = w[i].len;
		copy_in(d, w[i].p, w[i].len);
	}
	s->in_msg = 0;
	*done = 1;
	return 0;
}

static int inline_bytes(struct resp_stream *s, const uint8_t *p, size_t n, size_t *used,
                        int *done)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			*used = i + 1;
			return finish_inline(s, done);
		}
		if (s->line_len < RESP_INLINE_KEEP)
			s->line[s->line_len] = p[i];
		if (++s->line_len >= RESP_MAX_LINE)
			return RESP_ERR;
	}
	*used = n;
	return 0;
}

static int bulk_bytes(struct resp_stream *s, const uint8_t *p, size_t n, size_t *used,
                      int *done)
{
	struct resp_copy *d = dest_ptr(s, s->bulk_dest);
	size_t i = 0;

	while (i < n) {
		if (s->bulk_left > 2) {
			uint64_t take = s->bulk_left - 2;

			if (take > n - i)
				take = n - i;
			if (d)
				copy_in(d, p + i, (size_t)take);
			i += (size_t)take;
			s->bulk_left -= take;
			continue;
		}
		if (p[i] != (s->bulk_left == 2 ? '\r' : '\n'))
			return RESP_ERR;
		i++;
		if (--s->bulk_left == 0) {
			*used = i;
			return value_done(s, 0, done);
		}
	}
	*used = i;
	return 0;
}

uint64_t resp_stream_skippable(const struct resp_stream *s)
{
	const struct resp_copy *d;

	if (s->state != RS_BULK || s->bulk_left <= 2)
		return 0;
	d = dest_ptr((struct resp_stream *)s, s->bulk_dest);
	if (d && d->len < RESP_KEEP_LEN)
		return 0; /* its first bytes are still to be copied */
	return s->bulk_left - 2;
}

ssize_t resp_stream_feed(struct resp_stream *s, const uint8_t *buf, size_t len,
                         struct resp_summary *out, int *done)
{
	size_t off = 0;

	*done = 0;
	while (off < len && !*done) {
		size_t used = 0;
		int rc;

		switch (s->state) {
		case RS_HDR:
			rc = header_whole(s, buf + off, len - off, &used, done);
			if (rc > 0) {
				rc = 0;
				break;
			}
			if (rc < 0)
				return rc;
			rc = start_value(s, buf[off]);
			used = rc > 0 ? 1 : 0;
			break;
		case RS_LINE:
			rc = line_bytes(s, buf + off, len - off, &used, done);
			break;
		case RS_INLINE:
			rc = inline_bytes(s, buf + off, len - off, &used, done);
			break;
		default:
			rc = bulk_bytes(s, buf + off, len - off, &used, done);
			break;
		}
		if (rc < 0)
			return rc;
		off += used;
		s->cur.wire_len += used;
	}
	if (*done)
		summary_out(out, &s->cur);
	return (ssize_t)off;
}

uint64_t resp_stream_skip(struct resp_stream *s, uint64_t n, struct resp_summary *out,
                          int *done)
{
	struct resp_copy *d;
	uint64_t used;

	*done = 0;
	if (s->state != RS_BULK || n == 0)
		return 0;
	d = dest_ptr(s, s->bulk_dest);
	if (d)
		d->lost = 1;
	s->cur.lost = 1;
	if (n < s->bulk_left) {
		s->bulk_left -= n;
		s->cur.wire_len += n;
		return n;
	}
	used = s->bulk_left;
	s->bulk_left = 0;
	s->cur.wire_len += used;
	value_done(s, 0, done);
	if (*done)
		summary_out(out, &s->cur);
	return used;
}
