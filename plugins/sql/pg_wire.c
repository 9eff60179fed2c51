/*
 * pg_wire.c - PostgreSQL v3 message framing (see pg_wire.h).
 *
 * The one idea: a header is five bytes (type, length) or four (startup
 * phase); its validity is judged by the type's own bounds (Sync is exactly
 * 4 bytes long, ReadyForQuery 5, a command tag is short, ...), which is
 * what lets a chain of headers tell a message boundary from the middle of
 * a row.
 */
#include "pg_wire.h"

#include <stdlib.h>
#include <string.h>

#define KIB 1024u
#define MIB (1024u * 1024u)

struct bounds {
	uint8_t type;
	uint32_t min, max; /* of the length field (which counts itself) */
};

static const struct bounds fe_bounds[] = {
	{ 'Q', 5, PG_MAX_MSG },  { 'P', 8, PG_MAX_MSG },   { 'B', 12, PG_MAX_MSG },
	{ 'E', 9, 4 + 4 * KIB }, { 'S', 4, 4 },            { 'H', 4, 4 },
	{ 'X', 4, 4 },           { 'c', 4, 4 },            { 'C', 6, 4 + 4 * KIB },
	{ 'D', 6, 4 + 4 * KIB }, { 'F', 14, PG_MAX_MSG },  { 'd', 4, PG_MAX_MSG },
	{ 'f', 5, MIB },         { 'p', 4, MIB },          { 0, 0, 0 },
};

static const struct bounds be_bounds[] = {
	{ 'R', 8, 64 * KIB },       { 'K', 12, 4 + 4 + 256 },    { 'S', 6, 64 * KIB },
	{ 'Z', 5, 5 },              { 'C', 5, 4 + 4 * KIB },     { 'D', 6, PG_MAX_MSG },
	{ 'E', 5, 16 * MIB },       { 'N', 5, 16 * MIB },        { 'T', 6, PG_MAX_MSG },
	{ 't', 6, 4 + 2 + 4 * 65535u }, { 'n', 4, 4 },           { '1', 4, 4 },
	{ '2', 4, 4 },              { '3', 4, 4 },               { 'I', 4, 4 },
	{ 's', 4, 4 },              { 'c', 4, 4 },               { 'G', 7, 4 + 3 + 2 * 65535u },
	{ 'H', 7, 4 + 3 + 2 * 65535u }, { 'W', 7, 4 + 3 + 2 * 65535u }, { 'd', 4, PG_MAX_MSG },
	{ 'A', 10, MIB },           { 'V', 8, PG_MAX_MSG },      { 'v', 12, 64 * KIB },
	{ 0, 0, 0 },
};

static const struct bounds *bounds_of(int side, uint8_t type)
{
	const struct bounds *b = side == PG_FE ? fe_bounds : be_bounds;

	for (; b->type; b++)
		if (b->type == type)
			return b;
	return NULL;
}

int pg_type_ok(int side, uint8_t type)
{
	return bounds_of(side, type) != NULL;
}

int pg_header_ok(int side, uint8_t type, uint32_t lenfield)
{
	const struct bounds *b;

	if (type == 0)
		return side == PG_FE && lenfield >= 8 && lenfield <= PG_MAX_STARTUP;
	b = bounds_of(side, type);
	return b && lenfield >= b->min && lenfield <= b->max;
}

/* How much of a body to copy: only what the plugin reads. */
static uint32_t want_for(const struct pg_stream *s, uint8_t type, uint32_t len)
{
	uint32_t w = 0;

	if (s->side == PG_FE) {
		switch (type) {
		case 0: w = 2048; break;                  /* startup parameters */
		case 'Q': w = s->query_max; break;
		case 'P': w = s->query_max + 260; break;  /* name, then the query */
		case 'B': case 'E': case 'C': case 'D': w = 260; break; /* names only */
		default: break;                           /* never: passwords, data */
		}
	} else {
		switch (type) {
		case 'C': w = 128; break;                 /* command tag */
		case 'E': w = 512; break;                 /* fields up to SQLSTATE */
		case 'S': w = 128; break;                 /* parameter status */
		case 'Z': case 'G': case 'H': case 'W': w = 1; break;
		case 'R': w = 4; break;
		default: break;
		}
	}
	return w < len ? w : len;
}

void pg_stream_init(struct pg_stream *s, int side, uint32_t query_max)
{
	memset(s, 0, sizeof(*s));
	s->side = (uint8_t)side;
	s->query_max = query_max;
}

void pg_stream_free(struct pg_stream *s)
{
	free(s->buf);
	s->buf = NULL;
	s->buf_cap = 0;
}

void pg_stream_reset(struct pg_stream *s, int startup)
{
	s->hdr_n = 0;
	s->in_body = 0;
	s->buf_n = 0;
	s->startup = (uint8_t)startup;
}

int pg_stream_in_msg(const struct pg_stream *s)
{
	return s->in_body || s->hdr_n > 0;
}

static void reserve(struct pg_stream *s)
{
	uint8_t *nb;
	uint32_t cap;

	if (s->want <= s->buf_cap)
		return;
	cap = s->buf_cap ? s->buf_cap : 256;
	while (cap < s->want)
		cap *= 2;
	nb = realloc(s->buf, cap);
	if (!nb) {
		s->want = s->buf_cap; /* copy less rather than fail */
		s->partial = 1;
		return;
	}
	s->buf = nb;
	s->buf_cap = cap;
}

static void emit(struct pg_stream *s, struct pg_msg *m, int *done)
{
	m->type = s->type;
	m->partial = s->partial;
	m->len = s->body_len;
	m->body = s->buf;
	m->copied = s->buf_n;
	m->start_ts = s->start_ts;
	s->in_body = 0;
	*done = 1;
}

static int start_body(struct pg_stream *s)
{
	uint32_t lenfield;
	uint8_t type;

	if (s->startup) {
		type = 0;
		lenfield = pg_be32(s->hdr);
	} else {
		type = s->hdr[0];
		lenfield = pg_be32(s->hdr + 1);
	}
	s->hdr_n = 0;
	if (!pg_header_ok(s->side, type, lenfield))
		return PG_EBAD;
	s->startup = 0;
	s->type = type;
	s->body_len = lenfield - 4;
	s->body_done = 0;
	s->buf_n = 0;
	s->partial = 0;
	s->want = want_for(s, type, s->body_len);
	reserve(s);
	s->in_body = 1;
	return 0;
}

ssize_t pg_stream_feed(struct pg_stream *s, const uint8_t *p, size_t n, uint64_t ts,
                       struct pg_msg *m, int *done)
{
	size_t used = 0, take;

	*done = 0;
	if (!s->in_body) {
		size_t hlen = s->startup ? 4 : 5;

		if (s->hdr_n == 0)
			s->start_ts = ts;
		while (s->hdr_n < hlen && used < n)
			s->hdr[s->hdr_n++] = p[used++];
		if (s->hdr_n < hlen)
			return (ssize_t)used;
		if (start_body(s) < 0)
			return PG_EBAD;
	}
	take = n - used;
	if (take > s->body_len - s->body_done)
		take = s->body_len - s->body_done;
	if (s->body_done < s->want) {
		size_t c = s->want - s->body_done;

		if (c > take)
			c = take;
		memcpy(s->buf + s->buf_n, p + used, c);
		s->buf_n += (uint32_t)c;
	}
	s->body_done += (uint32_t)take;
	used += take;
	if (s->body_done == s->body_len)
		emit(s, m, done);
	return (ssize_t)used;
}

uint64_t pg_stream_skip(struct pg_stream *s, uint64_t n, struct pg_msg *m, int *done)
{
	uint64_t k;

	*done = 0;
	if (!s->in_body)
		return 0;
	k = s->body_len - s->body_done;
	if (k > n)
		k = n;
	if (k > 0 && s->body_done < s->want) {
		s->want = s->buf_n; /* nothing after a hole is copied */
		s->partial = 1;
	}
	s->body_done += (uint32_t)k;
	if (s->body_done == s->body_len)
		emit(s, m, done);
	return k;
}

uint64_t pg_stream_skippable(const struct pg_stream *s)
{
	if (!s->in_body || s->body_done < s->want)
		return 0;
	return s->body_len - s->body_done;
}

int pg_chain(int side, const uint8_t *p, size_t n, int *end)
{
	size_t k = 0;
	int count = 0;

	while (k < n) {
		uint32_t lf;

		if (n - k < 5) {
			if (!pg_type_ok(side, p[k]))
				return -1;
			*end = 2;
			return count;
		}
		lf = pg_be32(p + k + 1);
		if (!pg_header_ok(side, p[k], lf))
			return -1;
		if ((uint64_t)k + 1 + lf > n) {
			*end = 1;
			return count;
		}
		k += 1 + (size_t)lf;
		count++;
	}
	*end = 0;
	return count;
}

/* Does a chain from p[0] hold a type of `want`'s list and none of
 * `other`'s? */
static int chain_has(int side, const uint8_t *p, size_t n, const char *want, const char *other)
{
	size_t k = 0;
	int seen = 0, end = 0;

	if (pg_chain(side, p, n, &end) < 0 || (end == 2 && n < 5))
		return 0;
	while (k + 5 <= n) {
		if (strchr(other, p[k]))
			return 0;
		seen |= strchr(want, p[k]) != NULL;
		k += 1 + (size_t)pg_be32(p + k + 1);
	}
	return seen;
}

int pg_side_of(const uint8_t *p, size_t n)
{
	static const char fe_only[] = "QPBFXfp";
	static const char be_only[] = "RKZTtn123IsGWAVvN";

	if (n == 0 || p[0] == 0)
		return -1;
	if (chain_has(PG_FE, p, n, fe_only, be_only))
		return PG_FE;
	if (chain_has(PG_BE, p, n, be_only, fe_only))
		return PG_BE;
	return -1;
}

#define TAIL_WINDOW 65536u

long pg_tail_after_rows(const uint8_t *p, size_t n)
{
	uint8_t reach[TAIL_WINDOW / 8 + 1];
	size_t base = 0, i, start = SIZE_MAX, after = SIZE_MAX;

	if (n < 6)
		return -1;
	if (n > TAIL_WINDOW) {
		base = n - TAIL_WINDOW;
		p += base;
		n = TAIL_WINDOW;
	}
	if (p[n - 6] != 'Z' || pg_be32(p + n - 5) != 5 ||
	    (p[n - 1] != 'I' && p[n - 1] != 'T' && p[n - 1] != 'E'))
		return -1;
	memset(reach, 0, n / 8 + 1);
	/* reach[i]: a chain of valid headers from i ends exactly at n */
	for (i = n; i-- > 0;) {
		uint32_t lf;
		uint64_t nx;

		if (n - i < 5)
			continue;
		lf = pg_be32(p + i + 1);
		if (!pg_header_ok(PG_BE, p[i], lf))
			continue;
		nx = (uint64_t)i + 1 + lf;
		if (nx == n || (nx < n && (reach[nx / 8] >> (nx % 8) & 1))) {
			reach[i / 8] |= (uint8_t)(1u << (i % 8));
			start = i;
		}
	}
	if (start == SIZE_MAX)
		return -1;
	for (i = start; i < n; i += 1 + (size_t)pg_be32(p + i + 1)) {
		if (after == SIZE_MAX)
			after = i;
		if (p[i] == 'D' || p[i] == 'd')
			after = SIZE_MAX;
	}
	return after == SIZE_MAX ? -1 : (long)(after + base);
}

long pg_cstr(const uint8_t *body, size_t n, size_t *off)
{
	const uint8_t *z;
	long len;

	if (*off >= n)
		return -1;
	z = memchr(body + *off, 0, n - *off);
	if (!z)
		return -1;
	len = (long)(z - (body + *off));
	*off += (size_t)len + 1;
	return len;
}

int pg_startup_param(const uint8_t *body, size_t n, const char *key, const uint8_t **val,
                     size_t *vlen)
{
	size_t off = 4, klen = strlen(key);

	while (off < n && body[off] != 0) {
		size_t ks = off, vs;
		long kl = pg_cstr(body, n, &off), vl;

		if (kl < 0)
			return 0;
		vs = off;
		vl = pg_cstr(body, n, &off);
		if (vl < 0)
			return 0;
		if ((size_t)kl == klen && memcmp(body + ks, key, klen) == 0) {
			*val = body + vs;
			*vlen = (size_t)vl;
			return 1;
		}
	}
	return 0;
}
