/*
 * h2_build.h - builds HTTP/2 byte streams for the grpc plugin's tests, fuzz
 * seeds and benchmark (header-only; test code, never in the plugin).
 *
 * The one idea: header blocks are encoded by libnghttp2's own deflater, one
 * per direction, exactly as a real peer's encoder would (it inserts fields
 * into its dynamic table and refers back to them), so the tests exercise
 * the dynamic-table references that make mid-connection decoding hard;
 * frames around them are laid out by hand so every flag, padding and split
 * can be chosen.
 */
#ifndef SONDE_H2_BUILD_H
#define SONDE_H2_BUILD_H

#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h2_frame.h"

struct h2b {
	uint8_t *p;
	size_t len, cap;
};

static inline void h2b_add(struct h2b *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			abort();
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static inline void h2b_free(struct h2b *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static inline void h2b_hdr(struct h2b *b, uint32_t len, uint8_t type, uint8_t flags, uint32_t sid)
{
	uint8_t h[9] = { (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len, type, flags,
		         (uint8_t)(sid >> 24 & 0x7f), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8),
		         (uint8_t)sid };
	h2b_add(b, h, 9);
}

static inline void h2b_frame(struct h2b *b, uint8_t type, uint8_t flags, uint32_t sid,
                             const void *payload, size_t n)
{
	h2b_hdr(b, (uint32_t)n, type, flags, sid);
	h2b_add(b, payload, n);
}

static inline void h2b_preface(struct h2b *b)
{
	h2b_add(b, H2_PREFACE, H2_PREFACE_LEN);
}

/* SETTINGS with (id, value) pairs, n pairs. */
static inline void h2b_settings(struct h2b *b, const uint32_t *kv, size_t n)
{
	uint8_t p[6 * 8];

	for (size_t i = 0; i < n && i < 8; i++) {
		p[6 * i] = (uint8_t)(kv[2 * i] >> 8);
		p[6 * i + 1] = (uint8_t)kv[2 * i];
		p[6 * i + 2] = (uint8_t)(kv[2 * i + 1] >> 24);
		p[6 * i + 3] = (uint8_t)(kv[2 * i + 1] >> 16);
		p[6 * i + 4] = (uint8_t)(kv[2 * i + 1] >> 8);
		p[6 * i + 5] = (uint8_t)kv[2 * i + 1];
	}
	h2b_frame(b, H2_SETTINGS, 0, 0, p, 6 * (n < 8 ? n : 8));
}

static inline void h2b_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void h2b_rst(struct h2b *b, uint32_t sid, uint32_t code)
{
	uint8_t p[4];

	h2b_u32(p, code);
	h2b_frame(b, H2_RST_STREAM, 0, sid, p, 4);
}

static inline void h2b_goaway(struct h2b *b, uint32_t last, uint32_t code)
{
	uint8_t p[8];

	h2b_u32(p, last);
	h2b_u32(p + 4, code);
	h2b_frame(b, H2_GOAWAY, 0, 0, p, 8);
}

static inline void h2b_window(struct h2b *b, uint32_t sid, uint32_t inc)
{
	uint8_t p[4];

	h2b_u32(p, inc);
	h2b_frame(b, H2_WINDOW_UPDATE, 0, sid, p, 4);
}

static inline void h2b_ping(struct h2b *b, int ack)
{
	uint8_t p[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	h2b_frame(b, H2_PING, ack ? H2_F_ACK : 0, 0, p, 8);
}

/* DATA with n filler bytes; pad > 0 adds PADDED with that many zeros. */
static inline void h2b_data(struct h2b *b, uint32_t sid, size_t n, int end, unsigned pad)
{
	uint8_t z[256] = { 0 };
	size_t total = n + (pad ? pad + 1 : 0);

	h2b_hdr(b, (uint32_t)total, H2_DATA, (end ? H2_F_END_STREAM : 0) | (pad ? H2_F_PADDED : 0),
	        sid);
	if (pad) {
		uint8_t pl = (uint8_t)pad;
		h2b_add(b, &pl, 1);
	}
	while (n) {
		size_t k = n < sizeof(z) ? n : sizeof(z);
		memset(z, 'x', k);
		h2b_add(b, z, k);
		n -= k;
	}
	memset(z, 0, sizeof(z));
	h2b_add(b, z, pad);
}

/* A gRPC length-prefixed message of n bytes in one DATA frame. */
static inline void h2b_grpc_msg(struct h2b *b, uint32_t sid, size_t n, int end)
{
	uint8_t pre[5] = { 0, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
	uint8_t z[256];

	h2b_hdr(b, (uint32_t)(n + 5), H2_DATA, end ? H2_F_END_STREAM : 0, sid);
	h2b_add(b, pre, 5);
	memset(z, 'm', sizeof(z));
	while (n) {
		size_t k = n < sizeof(z) ? n : sizeof(z);
		h2b_add(b, z, k);
		n -= k;
	}
}

/* Encode a NULL-terminated list of name, value, name, value ... */
static inline size_t h2b_hpack_v(nghttp2_hd_deflater *d, uint8_t *out, size_t cap, va_list ap)
{
	nghttp2_nv nv[64];
	size_t n = 0;
	const char *name;
	ssize_t r;

	while ((name = va_arg(ap, const char *)) && n < 64) {
		const char *val = va_arg(ap, const char *);
		nv[n].name = (uint8_t *)name;
		nv[n].namelen = strlen(name);
		nv[n].value = (uint8_t *)val;
		nv[n].valuelen = strlen(val);
		nv[n].flags = NGHTTP2_NV_FLAG_NONE;
		n++;
	}
	r = nghttp2_hd_deflate_hd(d, out, cap, nv, n);
	if (r < 0) {
		fprintf(stderr, "h2b: deflate failed: %s\n", nghttp2_strerror((int)r));
		abort();
	}
	return (size_t)r;
}

static inline size_t h2b_hpack(nghttp2_hd_deflater *d, uint8_t *out, size_t cap, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, cap);
	n = h2b_hpack_v(d, out, cap, ap);
	va_end(ap);
	return n;
}

/*
 * A header block as HEADERS (+ CONTINUATION frames of at most `frag`
 * bytes when frag > 0), END_STREAM when end. pad > 0: HEADERS PADDED.
 */
static inline void h2b_block(struct h2b *b, uint32_t sid, const uint8_t *blk, size_t n,
                             int end, size_t frag, unsigned pad)
{
	size_t first = frag && frag < n ? frag : n, off;
	uint8_t fl = (end ? H2_F_END_STREAM : 0) | (first == n ? H2_F_END_HEADERS : 0);
	uint8_t z[256] = { 0 };

	if (pad) {
		uint8_t pl = (uint8_t)pad;
		h2b_hdr(b, (uint32_t)(first + pad + 1), H2_HEADERS, fl | H2_F_PADDED, sid);
		h2b_add(b, &pl, 1);
		h2b_add(b, blk, first);
		h2b_add(b, z, pad);
	} else {
		h2b_frame(b, H2_HEADERS, fl, sid, blk, first);
	}
	for (off = first; off < n;) {
		size_t k = n - off < frag ? n - off : frag;
		h2b_frame(b, H2_CONTINUATION, off + k == n ? H2_F_END_HEADERS : 0, sid, blk + off, k);
		off += k;
	}
}

/* HEADERS from name/value pairs (NULL-terminated), in one frame. */
static inline void h2b_headers(struct h2b *b, nghttp2_hd_deflater *d, uint32_t sid, int end, ...)
{
	uint8_t blk[16384];
	va_list ap;
	size_t n;

	va_start(ap, end);
	n = h2b_hpack_v(d, blk, sizeof(blk), ap);
	va_end(ap);
	h2b_block(b, sid, blk, n, end, 0, 0);
}

/*
 * An HPACK encoder that, like gRPC's, inserts every field into its dynamic
 * table (:path, content-type, grpc-status included) and refers to it from
 * then on; a name is a static-table index or a literal, never a dynamic
 * entry's. No Huffman. Maximum table size 4096.
 */
#define H2E_MAX 160 /* > 4096 / 33: never reached */

struct h2enc {
	char *name[H2E_MAX], *value[H2E_MAX]; /* [0] = newest */
	unsigned n;
	size_t size, max;
};

static const char *const h2e_static[][2] = {
	{ ":authority", "" }, { ":method", "GET" }, { ":method", "POST" }, { ":path", "/" },
	{ ":path", "/index.html" }, { ":scheme", "http" }, { ":scheme", "https" },
	{ ":status", "200" }, { ":status", "204" }, { ":status", "206" }, { ":status", "304" },
	{ ":status", "400" }, { ":status", "404" }, { ":status", "500" },
};

static inline void h2e_init(struct h2enc *e)
{
	memset(e, 0, sizeof(*e));
	e->max = 4096;
}

static inline void h2e_free(struct h2enc *e)
{
	for (unsigned i = 0; i < e->n; i++) {
		free(e->name[i]);
		free(e->value[i]);
	}
	e->n = 0;
}

static inline void h2e_int(struct h2b *b, uint8_t first, unsigned prefix, uint32_t v)
{
	uint32_t mask = (1u << prefix) - 1;
	uint8_t c;

	if (v < mask) {
		c = (uint8_t)(first | v);
		h2b_add(b, &c, 1);
		return;
	}
	c = (uint8_t)(first | mask);
	h2b_add(b, &c, 1);
	v -= mask;
	while (v >= 128) {
		c = (uint8_t)(0x80 | (v & 0x7f));
		h2b_add(b, &c, 1);
		v >>= 7;
	}
	c = (uint8_t)v;
	h2b_add(b, &c, 1);
}

static inline void h2e_str(struct h2b *b, const char *s)
{
	h2e_int(b, 0, 7, (uint32_t)strlen(s));
	h2b_add(b, s, strlen(s));
}

static inline void h2e_field(struct h2enc *e, struct h2b *b, const char *n, const char *v)
{
	size_t room = strlen(n) + strlen(v) + 32;
	unsigned name_idx = 0;

	for (unsigned i = 0; i < sizeof(h2e_static) / sizeof(h2e_static[0]); i++) {
		if (strcmp(h2e_static[i][0], n))
			continue;
		if (!strcmp(h2e_static[i][1], v)) {
			h2e_int(b, 0x80, 7, i + 1);
			return;
		}
		if (!name_idx)
			name_idx = i + 1;
	}
	if (!strcmp(n, "content-type"))
		name_idx = 31;
	else if (!strcmp(n, "user-agent"))
		name_idx = 58;
	for (unsigned i = 0; i < e->n; i++) {
		if (!strcmp(e->name[i], n) && !strcmp(e->value[i], v)) {
			h2e_int(b, 0x80, 7, 62 + i);
			return;
		}
	}
	h2e_int(b, 0x40, 6, name_idx);
	if (!name_idx)
		h2e_str(b, n);
	h2e_str(b, v);
	while (e->n && e->size + room > e->max) {
		e->n--;
		e->size -= strlen(e->name[e->n]) + strlen(e->value[e->n]) + 32;
		free(e->name[e->n]);
		free(e->value[e->n]);
	}
	if (room > e->max)
		return;
	memmove(e->name + 1, e->name, e->n * sizeof(char *));
	memmove(e->value + 1, e->value, e->n * sizeof(char *));
	e->name[0] = strdup(n);
	e->value[0] = strdup(v);
	e->n++;
	e->size += room;
}

/* HEADERS (one frame) from NULL-terminated name/value pairs. */
static inline void h2e_headers(struct h2enc *e, struct h2b *b, uint32_t sid, int end, ...)
{
	struct h2b blk = { 0 };
	const char *n;
	va_list ap;

	va_start(ap, end);
	while ((n = va_arg(ap, const char *)))
		h2e_field(e, &blk, n, va_arg(ap, const char *));
	va_end(ap);
	h2b_block(b, sid, blk.p, blk.len, end, 0, 0);
	h2b_free(&blk);
}

/* Hex string ("82 86 84 ...", spaces ignored) to bytes; returns the count. */
static inline size_t h2b_unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (; *hex; hex++) {
		int v;
		if (*hex >= '0' && *hex <= '9')
			v = *hex - '0';
		else if (*hex >= 'a' && *hex <= 'f')
			v = *hex - 'a' + 10;
		else if (*hex >= 'A' && *hex <= 'F')
			v = *hex - 'A' + 10;
		else
			continue;
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (n < cap)
			out[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	return n;
}

#endif /* SONDE_H2_BUILD_H */
