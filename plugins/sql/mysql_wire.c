/*
 * mysql_wire.c - MySQL/MariaDB packet framing and packet layouts (see
 * mysql_wire.h).
 *
 * The one idea: a header is four bytes (length, sequence id) and any four
 * bytes are a header, so a single header proves nothing; what marks a
 * boundary is a chain of them whose sequence ids count up by one and whose
 * lengths land exactly on the next header. Every field read from a payload
 * is bounds-checked against the bytes copied, never against the length
 * announced.
 */
#include "mysql_wire.h"

#include <stdlib.h>
#include <string.h>

void my_stream_init(struct my_stream *s)
{
	memset(s, 0, sizeof(*s));
}

void my_stream_free(struct my_stream *s)
{
	free(s->buf);
	s->buf = NULL;
	s->buf_cap = 0;
}

void my_stream_reset(struct my_stream *s)
{
	s->hdr_n = 0;
	s->in_body = 0;
	s->buf_n = 0;
	s->next_cont = 0;
}

int my_stream_in_pkt(const struct my_stream *s)
{
	return s->in_body || s->hdr_n > 0;
}

static void reserve(struct my_stream *s)
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
		s->want = s->buf_cap;
		s->partial = 1;
		return;
	}
	s->buf = nb;
	s->buf_cap = cap;
}

static void emit(struct my_stream *s, struct my_pkt *k, int *done)
{
	k->len = s->body_len;
	k->seq = s->seq;
	k->cont = s->cont;
	k->partial = s->partial;
	k->body = s->buf;
	k->copied = s->buf_n;
	k->start_ts = s->start_ts;
	s->in_body = 0;
	*done = 1;
}

uint64_t my_stream_skippable(const struct my_stream *s)
{
	/* by_cmd: the command byte decides the copy; it must be read first */
	if (!s->in_body || s->body_done < s->want || (s->by_cmd && !s->cont && !s->body_done))
		return 0;
	return s->body_len - s->body_done;
}

int my_cmd_has_text(uint8_t cmd)
{
	return cmd == MY_COM_QUERY || cmd == MY_COM_STMT_PREPARE || cmd == MY_COM_INIT_DB ||
	       cmd == MY_COM_CHANGE_USER;
}

/* With by_cmd, the first byte of a payload decides how much is copied:
 * the text of a query, or only the few bytes of a command's header (an
 * execute's parameters are never copied). */
static void want_by_cmd(struct my_stream *s)
{
	uint32_t w = my_cmd_has_text(s->buf[0]) ? s->text_want : s->next_want;

	s->want = w < s->body_len ? w : s->body_len;
	if (s->want < 1)
		s->want = 1;
	reserve(s);
}

size_t my_stream_feed(struct my_stream *s, const uint8_t *p, size_t n, uint64_t ts,
                      struct my_pkt *k, int *done)
{
	size_t used = 0;

	*done = 0;
	if (!s->in_body) {
		if (s->hdr_n == 0)
			s->start_ts = ts;
		while (s->hdr_n < 4 && used < n)
			s->hdr[s->hdr_n++] = p[used++];
		if (s->hdr_n < 4)
			return used;
		s->hdr_n = 0;
		s->body_len = my_le24(s->hdr);
		s->seq = s->hdr[3];
		s->cont = s->next_cont;
		s->next_cont = s->body_len == MY_MAX_PAYLOAD;
		s->want = s->cont ? 0 : s->next_want < s->body_len ? s->next_want : s->body_len;
		if (s->by_cmd && !s->cont && s->body_len > 0)
			s->want = 1; /* the command byte first */
		s->body_done = 0;
		s->buf_n = 0;
		s->partial = 0;
		reserve(s);
		s->in_body = 1;
	}
	while (used < n && s->body_done < s->body_len) {
		size_t take = n - used;

		if (take > s->body_len - s->body_done)
			take = s->body_len - s->body_done;
		if (s->body_done < s->want) {
			if (take > s->want - s->body_done)
				take = s->want - s->body_done;
			memcpy(s->buf + s->buf_n, p + used, take);
			s->buf_n += (uint32_t)take;
			if (s->by_cmd && !s->cont && s->body_done == 0)
				want_by_cmd(s);
		}
		s->body_done += (uint32_t)take;
		used += take;
	}
	if (s->body_done == s->body_len)
		emit(s, k, done);
	return used;
}

uint64_t my_stream_skip(struct my_stream *s, uint64_t n, struct my_pkt *k, int *done)
{
	uint64_t c;

	*done = 0;
	if (!s->in_body)
		return 0;
	c = s->body_len - s->body_done;
	if (c > n)
		c = n;
	if (c > 0 && s->body_done < s->want) {
		s->want = s->buf_n;
		s->partial = 1;
	}
	s->body_done += (uint32_t)c;
	if (s->body_done == s->body_len)
		emit(s, k, done);
	return c;
}

int my_lenenc(const uint8_t *p, size_t n, size_t *off, uint64_t *v)
{
	size_t o = *off, w;
	uint8_t b;

	if (o >= n)
		return -1;
	b = p[o];
	if (b < 0xfb) {
		*v = b;
		*off = o + 1;
		return 0;
	}
	if (b == 0xfc)
		w = 2;
	else if (b == 0xfd)
		w = 3;
	else if (b == 0xfe)
		w = 8;
	else
		return -1;
	if (n - o - 1 < w)
		return -1;
	*v = 0;
	for (size_t i = 0; i < w; i++)
		*v |= (uint64_t)p[o + 1 + i] << (8 * i);
	*off = o + 1 + w;
	return 0;
}

static int has_word(const uint8_t *p, size_t n, const char *w)
{
	size_t wl = strlen(w);

	for (size_t i = 0; i + wl <= n; i++)
		if (memcmp(p + i, w, wl) == 0)
			return 1;
	return 0;
}

int my_parse_greeting(const uint8_t *b, size_t n, struct my_greeting *g)
{
	const uint8_t *nul;
	size_t off, vlen;

	memset(g, 0, sizeof(*g));
	if (n < 2 || b[0] != 0x0a)
		return -1;
	nul = memchr(b + 1, 0, n - 1 < 128 ? n - 1 : 128);
	if (!nul)
		return -1;
	vlen = (size_t)(nul - (b + 1));
	g->mariadb = (uint8_t)has_word(b + 1, vlen, "MariaDB");
	off = 1 + vlen + 1 + 4 + 8 + 1; /* version, thread id, scramble, filler */
	if (off + 2 > n)
		return 0;
	g->caps = my_le16(b + off);
	off += 2;
	if (off + 5 > n)
		return 0;
	g->status = my_le16(b + off + 1);
	g->caps |= (uint32_t)my_le16(b + off + 3) << 16;
	off += 5 + 1 + 6; /* charset, status, caps, scramble length, filler */
	if (!(g->caps & MY_CLIENT_MYSQL) && off + 4 <= n)
		g->ext_caps = my_le32(b + off);
	return 0;
}

/* A NUL-terminated field at *off: 0 and moves past it, or -1. */
static int skip_cstr(const uint8_t *b, size_t n, size_t *off, size_t *len)
{
	const uint8_t *nul;

	if (*off >= n)
		return -1;
	nul = memchr(b + *off, 0, n - *off);
	if (!nul)
		return -1;
	*len = (size_t)(nul - (b + *off));
	*off += *len + 1;
	return 0;
}

int my_parse_handshake(const uint8_t *b, size_t n, int partial, struct my_handshake *h)
{
	size_t off = 32, len = 0;
	uint64_t alen;

	(void)partial;
	memset(h, 0, sizeof(*h));
	if (n < 4)
		return -1;
	h->caps = my_le32(b);
	if (!(h->caps & MY_CLIENT_PROTOCOL_41)) {
		h->caps &= 0xffff;
		return 0; /* HandshakeResponse320: no database field read */
	}
	if (n < 32)
		return -1;
	h->ext_caps = my_le32(b + 28);
	if (skip_cstr(b, n, &off, &len) < 0) /* user name: skipped */
		return 0;
	if (h->caps & MY_CLIENT_PLUGIN_AUTH_LENENC) {
		if (my_lenenc(b, n, &off, &alen) < 0 || alen > n - off)
			return 0;
		off += (size_t)alen;
	} else if (h->caps & MY_CLIENT_SECURE_CONNECTION) {
		if (off >= n || b[off] > n - off - 1)
			return 0;
		off += 1 + b[off];
	} else if (skip_cstr(b, n, &off, &len) < 0) {
		return 0;
	}
	if (h->caps & MY_CLIENT_CONNECT_WITH_DB) {
		size_t start = off;

		if (skip_cstr(b, n, &off, &len) == 0 && len > 0) {
			h->db = b + start;
			h->db_len = len;
		}
	}
	return 0;
}

int my_parse_ok(const uint8_t *b, size_t n, int session, struct my_ok *ok)
{
	size_t off = 1;
	uint64_t v, total, elen;

	memset(ok, 0, sizeof(*ok));
	if (n < 1 || (b[0] != 0x00 && b[0] != 0xfe))
		return -1;
	if (my_lenenc(b, n, &off, &ok->affected) < 0 || my_lenenc(b, n, &off, &v) < 0)
		return -1;
	if (off + 4 > n)
		return -1;
	ok->status = my_le16(b + off);
	off += 4; /* status, warnings */
	if (!session || off >= n)
		return 0;
	if (my_lenenc(b, n, &off, &v) < 0 || v > n - off) /* info */
		return 0;
	off += (size_t)v;
	if (!(ok->status & MY_STATUS_SESSION_STATE_CHANGED))
		return 0;
	if (my_lenenc(b, n, &off, &total) < 0)
		return 0;
	while (off < n) {
		uint8_t type = b[off++];
		size_t data;

		if (my_lenenc(b, n, &off, &elen) < 0 || elen > n - off)
			return 0;
		data = off;
		off += (size_t)elen;
		if (type == 1) { /* SESSION_TRACK_SCHEMA: lenenc name */
			size_t o = data;

			if (my_lenenc(b, off, &o, &v) == 0 && v <= off - o && v > 0) {
				ok->schema = b + o;
				ok->schema_len = (size_t)v;
			}
		}
	}
	return 0;
}

int my_parse_err(const uint8_t *b, size_t n, uint16_t *code, char sqlstate[6])
{
	sqlstate[0] = '\0';
	if (n < 3 || b[0] != 0xff)
		return -1;
	*code = my_le16(b + 1);
	if (n >= 9 && b[3] == '#') {
		for (int i = 0; i < 5; i++) {
			char c = (char)b[4 + i];

			if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'))) {
				sqlstate[0] = '\0';
				return 0;
			}
			sqlstate[i] = c;
		}
		sqlstate[5] = '\0';
	}
	return 0;
}

int my_is_eof(const struct my_pkt *k)
{
	return !k->cont && k->copied >= 1 && k->body[0] == 0xfe && (k->len == 5 || k->len == 1);
}

int my_chain(const uint8_t *p, size_t n, int *end)
{
	size_t k = 0;
	int count = 0, have = 0;
	uint8_t prev = 0;

	while (k < n) {
		uint32_t len;

		if (n - k < 4) {
			*end = 2;
			return count;
		}
		len = my_le24(p + k);
		if (have && p[k + 3] != (uint8_t)(prev + 1))
			return -1;
		prev = p[k + 3];
		have = 1;
		if ((uint64_t)k + 4 + len > n) {
			*end = 1;
			return count;
		}
		k += 4 + (size_t)len;
		count++;
	}
	*end = 0;
	return count;
}

#define TAIL_WINDOW 65536u

/* The last packet of a response: EOF or OK (0xfe) or ERR, no more results. */
static int final_packet(const uint8_t *b, uint32_t len)
{
	struct my_ok ok;

	if (len == 0)
		return 0;
	if (b[0] == 0xff)
		return len >= 3 && my_le16(b + 1) != 0xffff; /* 0xffff: progress report */
	if (b[0] != 0xfe)
		return 0;
	if (len == 5)
		return !(my_le16(b + 3) & MY_STATUS_MORE_RESULTS);
	if (len >= 7 && len < MY_MAX_PAYLOAD && my_parse_ok(b, len, 0, &ok) == 0)
		return !(ok.status & MY_STATUS_MORE_RESULTS);
	return 0;
}

long my_tail_end(const uint8_t *p, size_t n)
{
	uint8_t reach[TAIL_WINDOW / 8 + 1];
	size_t base = 0, i, start = SIZE_MAX, last = SIZE_MAX;

	if (n < 5)
		return -1;
	if (n > TAIL_WINDOW) {
		base = n - TAIL_WINDOW;
		p += base;
		n = TAIL_WINDOW;
	}
	memset(reach, 0, n / 8 + 1);
	for (i = n; i-- > 0;) {
		uint64_t nx;

		if (n - i < 4)
			continue;
		nx = (uint64_t)i + 4 + my_le24(p + i);
		if (nx == n || (nx + 4 <= n && (reach[nx / 8] >> (nx % 8) & 1) &&
		                p[nx + 3] == (uint8_t)(p[i + 3] + 1))) {
			reach[i / 8] |= (uint8_t)(1u << (i % 8));
			start = i;
		}
	}
	if (start == SIZE_MAX)
		return -1;
	for (i = start; i < n; i += 4 + (size_t)my_le24(p + i))
		last = i;
	if (last == SIZE_MAX || !final_packet(p + last + 4, my_le24(p + last)))
		return -1;
	return (long)(last + base);
}
