/*
 * h2_frame.c - HTTP/2 frame headers: decoding, validation, chains and
 * resynchronisation (see h2_frame.h).
 *
 * The one idea: validation is strict on purpose. A peer that follows RFC
 * 9113 never sets an undefined flag or the reserved bit and always gives
 * fixed-size frames their size, so refusing anything else costs nothing on
 * real traffic and makes a false frame boundary (after lost bytes, or in a
 * connection that is not HTTP/2) very unlikely.
 */
#include "h2_frame.h"

#include <string.h>

void h2_frame_hdr_parse(const uint8_t *p, struct h2_frame_hdr *h)
{
	h->len = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
	h->type = p[3];
	h->flags = p[4];
	h->r = p[5] >> 7;
	h->sid = ((uint32_t)(p[5] & 0x7f) << 24) | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 |
	         p[8];
}

/* Flags each type defines; -1 for a type we do not accept. */
static int allowed_flags(uint8_t type)
{
	switch (type) {
	case H2_DATA: return H2_F_END_STREAM | H2_F_PADDED;
	case H2_HEADERS: return H2_F_END_STREAM | H2_F_END_HEADERS | H2_F_PADDED | H2_F_PRIORITY;
	case H2_PRIORITY: return 0;
	case H2_RST_STREAM: return 0;
	case H2_SETTINGS: return H2_F_ACK;
	case H2_PUSH_PROMISE: return H2_F_END_HEADERS | H2_F_PADDED;
	case H2_PING: return H2_F_ACK;
	case H2_GOAWAY: return 0;
	case H2_WINDOW_UPDATE: return 0;
	case H2_CONTINUATION: return H2_F_END_HEADERS;
	case H2_ALTSVC: return 0;
	case H2_ORIGIN: return 0;
	case H2_PRIORITY_UPDATE: return 0;
	}
	return -1;
}

/* 1 when the type is about one stream, 0 when about the connection, -1 either. */
static int wants_stream(uint8_t type)
{
	switch (type) {
	case H2_SETTINGS:
	case H2_PING:
	case H2_GOAWAY:
	case H2_ORIGIN:
	case H2_PRIORITY_UPDATE:
		return 0;
	case H2_WINDOW_UPDATE:
	case H2_ALTSVC:
		return -1;
	}
	return 1;
}

static int len_ok(const struct h2_frame_hdr *h)
{
	uint32_t min = 0;

	switch (h->type) {
	case H2_PRIORITY: return h->len == 5;
	case H2_RST_STREAM: return h->len == 4;
	case H2_WINDOW_UPDATE: return h->len == 4;
	case H2_PING: return h->len == 8;
	case H2_GOAWAY: return h->len >= 8;
	case H2_PRIORITY_UPDATE: return h->len >= 4;
	case H2_SETTINGS:
		return (h->flags & H2_F_ACK) ? h->len == 0 : h->len % 6 == 0;
	case H2_HEADERS:
		min = (h->flags & H2_F_PADDED ? 1 : 0) + (h->flags & H2_F_PRIORITY ? 5 : 0);
		return h->len >= min;
	case H2_PUSH_PROMISE:
		min = (h->flags & H2_F_PADDED ? 1 : 0) + 4;
		return h->len >= min;
	case H2_DATA:
		return !(h->flags & H2_F_PADDED) || h->len >= 1;
	}
	return 1;
}

int h2_frame_type_known(uint8_t type)
{
	return allowed_flags(type) >= 0;
}

int h2_frame_hdr_check(const struct h2_frame_hdr *h, uint32_t max_len)
{
	int fl = allowed_flags(h->type), ws = wants_stream(h->type);

	if (fl < 0 || (h->flags & ~fl) || h->r || h->len > max_len)
		return -1;
	if ((ws == 1 && !h->sid) || (ws == 0 && h->sid))
		return -1;
	return len_ok(h) ? 0 : -1;
}

int h2_preface_check(const uint8_t *p, size_t n)
{
	size_t k = n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN;

	if (memcmp(p, H2_PREFACE, k))
		return -1;
	return k == H2_PREFACE_LEN ? 1 : 0;
}

int h2_chain_walk(const uint8_t *p, size_t n, uint32_t max_len, unsigned max_frames,
                  size_t *last_end)
{
	size_t off = 0;
	int count = 0;

	*last_end = 0;
	while (off + H2_FRAME_HDR_LEN <= n && (unsigned)count < max_frames) {
		struct h2_frame_hdr h;

		h2_frame_hdr_parse(p + off, &h);
		if (h2_frame_hdr_check(&h, max_len))
			return -1;
		count++;
		off += H2_FRAME_HDR_LEN + (size_t)h.len;
		*last_end = off;
	}
	return count;
}

long h2_resync_find(const uint8_t *p, size_t n, size_t total, size_t scan_max)
{
	size_t last;

	if (n < H2_FRAME_HDR_LEN)
		return -1;
	last = n - H2_FRAME_HDR_LEN;
	if (last > scan_max)
		last = scan_max;
	for (size_t off = 0; off <= last; off++) {
		size_t end;
		int k = h2_chain_walk(p + off, n - off, H2_MAX_FRAME_LEN, 64, &end);

		if (k >= 2 || (k == 1 && off == 0 && end <= (total > n ? total : n)))
			return (long)off;
	}
	return -1;
}

const char *h2_error_name(uint32_t code)
{
	static const char *const names[] = {
		"NO_ERROR",          "PROTOCOL_ERROR",      "INTERNAL_ERROR",
		"FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",   "STREAM_CLOSED",
		"FRAME_SIZE_ERROR",  "REFUSED_STREAM",      "CANCEL",
		"COMPRESSION_ERROR", "CONNECT_ERROR",       "ENHANCE_YOUR_CALM",
		"INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
	};

	return code < sizeof(names) / sizeof(names[0]) ? names[code] : NULL;
}
