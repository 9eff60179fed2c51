/*
 * node_ws.c - HTTP/1.1 response heads and WebSocket frames, as spoken by
 * Node's inspector server, from the client's side.
 *
 * The one idea: the plugin talks to exactly one kind of peer (Node's own
 * inspector on loopback), but the bytes are still read as if hostile: every
 * length is bounded before use, a frame never claims more than the caller
 * allows, and a fragmented message is assembled into a buffer the caller
 * sized. SHA-1 for the handshake comes from OpenSSL's libcrypto.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "node_ws.h"

/* --- HTTP response head ---------------------------------------------------------------- */

static int ieq(const char *a, size_t n, const char *lit)
{
	size_t m = strlen(lit);

	if (n != m)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (tolower((unsigned char)a[i]) != lit[i])
			return 0;
	return 1;
}

/* Does the comma-separated value contain token (case-insensitive)? */
static int has_token(const char *v, size_t n, const char *token)
{
	size_t i = 0;

	while (i < n) {
		size_t s, e;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (ieq(v + s, e - s, token))
			return 1;
	}
	return 0;
}

static int header_line(const char *l, size_t n, struct node_http_resp *r)
{
	const char *colon = memchr(l, ':', n);
	size_t name, vs, ve;

	if (!colon || colon == l)
		return -1;
	name = (size_t)(colon - l);
	for (size_t i = 0; i < name; i++)
		if (l[i] <= ' ' || l[i] >= 0x7f)
			return -1;
	vs = name + 1;
	while (vs < n && (l[vs] == ' ' || l[vs] == '\t'))
		vs++;
	ve = n;
	while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
		ve--;
	if (ieq(l, name, "content-length")) {
		int64_t v = 0;

		if (ve == vs || ve - vs > 15)
			return -1;
		for (size_t i = vs; i < ve; i++) {
			if (!isdigit((unsigned char)l[i]))
				return -1;
			v = v * 10 + (l[i] - '0');
		}
		r->content_length = v;
	} else if (ieq(l, name, "upgrade")) {
		r->upgrade_websocket = has_token(l + vs, ve - vs, "websocket");
	} else if (ieq(l, name, "connection")) {
		r->connection_upgrade = has_token(l + vs, ve - vs, "upgrade");
	} else if (ieq(l, name, "sec-websocket-accept")) {
		size_t k = ve - vs < sizeof(r->accept) - 1 ? ve - vs : sizeof(r->accept) - 1;

		memcpy(r->accept, l + vs, k);
		r->accept[k] = 0;
	}
	return 0;
}

static int status_line(const char *l, size_t n, struct node_http_resp *r)
{
	/* HTTP/1.x SP 3DIGIT [SP reason] */
	if (n < 12 || memcmp(l, "HTTP/1.", 7) || !isdigit((unsigned char)l[7]) || l[8] != ' ')
		return -1;
	for (int i = 9; i < 12; i++)
		if (!isdigit((unsigned char)l[i]))
			return -1;
	if (n > 12 && l[12] != ' ')
		return -1;
	r->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	return r->status >= 100 ? 0 : -1;
}

int node_http_head(const uint8_t *buf, size_t len, struct node_http_resp *r)
{
	const char *p = (const char *)buf;
	size_t i = 0;
	int line = 0;

	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	for (;;) {
		const char *nl;
		size_t n;

		if (i >= NODE_HTTP_HEAD_MAX)
			return NODE_BAD;
		nl = memchr(p + i, '\n', len - i);
		if (!nl)
			return len - i >= NODE_HTTP_HEAD_MAX ? NODE_BAD : NODE_NEED_MORE;
		n = (size_t)(nl - (p + i));
		if (n && p[i + n - 1] == '\r')
			n--;
		if (line == 0) {
			if (status_line(p + i, n, r))
				return NODE_BAD;
		} else if (n == 0) {
			i = (size_t)(nl - p) + 1;
			return i > NODE_HTTP_HEAD_MAX ? NODE_BAD : (int)i;
		} else if (header_line(p + i, n, r)) {
			return NODE_BAD;
		}
		line++;
		i = (size_t)(nl - p) + 1;
	}
}

/* --- handshake ---------------------------------------------------------------------------- */

int node_ws_accept(const char *key, char out[32])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char in[128];
	int n;

	n = snprintf(in, sizeof(in), "%s%s", key, guid);
	if (n <= 0 || (size_t)n >= sizeof(in) ||
	    !EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
		return -1;
	/* 20 bytes -> 28 characters and a NUL */
	return EVP_EncodeBlock((unsigned char *)out, md, 20) == 28 ? 0 : -1;
}

/* --- frames ------------------------------------------------------------------------------ */

int node_ws_frame_parse(const uint8_t *buf, size_t len, size_t max_payload,
			struct node_ws_frame *f)
{
	size_t hdr = 2;
	uint64_t n;

	if (len < 2)
		return NODE_NEED_MORE;
	if (buf[0] & 0x70)
		return NODE_BAD; /* RSV bits: no extension was negotiated */
	if (buf[1] & 0x80)
		return NODE_BAD; /* a server never masks */
	f->fin = buf[0] >> 7;
	f->opcode = buf[0] & 0x0f;
	n = buf[1] & 0x7f;
	switch (f->opcode) {
	case NODE_WS_CONT:
	case NODE_WS_TEXT:
	case NODE_WS_BIN:
		break;
	case NODE_WS_CLOSE:
	case NODE_WS_PING:
	case NODE_WS_PONG:
		if (!f->fin || n > 125)
			return NODE_BAD;
		break;
	default:
		return NODE_BAD;
	}
	if (n == 126) {
		if (len < 4)
			return NODE_NEED_MORE;
		n = (uint64_t)buf[2] << 8 | buf[3];
		hdr = 4;
	} else if (n == 127) {
		if (len < 10)
			return NODE_NEED_MORE;
		if (buf[2] & 0x80)
			return NODE_BAD;
		n = 0;
		for (int i = 2; i < 10; i++)
			n = n << 8 | buf[i];
		hdr = 10;
	}
	if (n > max_payload || n > (uint64_t)(INT32_MAX - 16))
		return NODE_BAD;
	if (len - hdr < n)
		return NODE_NEED_MORE;
	f->payload = buf + hdr;
	f->len = (size_t)n;
	return (int)(hdr + n);
}

size_t node_ws_frame_size(size_t n)
{
	return (n < 126 ? 2 : n < 65536 ? 4 : 10) + 4 + n;
}

size_t node_ws_frame_build(uint8_t *out, int opcode, const uint8_t *payload, size_t n,
			   const uint8_t mask[4])
{
	size_t i = 0;

	out[i++] = (uint8_t)(0x80 | (opcode & 0x0f));
	if (n < 126) {
		out[i++] = (uint8_t)(0x80 | n);
	} else if (n < 65536) {
		out[i++] = 0x80 | 126;
		out[i++] = (uint8_t)(n >> 8);
		out[i++] = (uint8_t)n;
	} else {
		out[i++] = 0x80 | 127;
		for (int s = 56; s >= 0; s -= 8)
			out[i++] = (uint8_t)((uint64_t)n >> s);
	}
	memcpy(out + i, mask, 4);
	i += 4;
	for (size_t k = 0; k < n; k++)
		out[i + k] = payload[k] ^ mask[k & 3];
	return i + n;
}

void node_ws_msg_reset(struct node_ws_msg *m)
{
	m->len = 0;
	m->active = 0;
	m->opcode = 0;
}

int node_ws_msg_add(struct node_ws_msg *m, const struct node_ws_frame *f)
{
	if (f->opcode == NODE_WS_CONT) {
		if (!m->active)
			return NODE_BAD;
	} else if (f->opcode == NODE_WS_TEXT || f->opcode == NODE_WS_BIN) {
		if (m->active)
			return NODE_BAD; /* a new message inside a fragmented one */
		m->len = 0;
		m->opcode = f->opcode;
	} else {
		return NODE_BAD;
	}
	if (f->len > m->cap - m->len)
		return NODE_BAD;
	if (f->len)
		memcpy(m->buf + m->len, f->payload, f->len);
	m->len += f->len;
	m->active = !f->fin;
	return f->fin ? 1 : 0;
}
