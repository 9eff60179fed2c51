/*
 * h2_frame.h - HTTP/2 framing facts (RFC 9113 section 4 and 6), stateless.
 *
 * The one idea: an HTTP/2 byte stream is a sequence of frames, each a fixed
 * 9-byte header (24-bit length, type, flags, 31-bit stream id) and a payload
 * of that length. Everything here looks at headers only, never at payloads,
 * so it is cheap enough for detection and for finding frame boundaries again
 * after lost bytes: a run of valid headers, each one found exactly where the
 * previous frame's length says, is what a real frame stream looks like and
 * what random bytes almost never do.
 */
#ifndef SONDE_H2_FRAME_H
#define SONDE_H2_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define H2_FRAME_HDR_LEN 9
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define H2_MAX_FRAME_LEN ((1u << 24) - 1) /* largest length the format allows */
#define H2_DEFAULT_MAX_FRAME 16384        /* SETTINGS_MAX_FRAME_SIZE default */

enum h2_type {
	H2_DATA = 0x0,
	H2_HEADERS = 0x1,
	H2_PRIORITY = 0x2,
	H2_RST_STREAM = 0x3,
	H2_SETTINGS = 0x4,
	H2_PUSH_PROMISE = 0x5,
	H2_PING = 0x6,
	H2_GOAWAY = 0x7,
	H2_WINDOW_UPDATE = 0x8,
	H2_CONTINUATION = 0x9,
	/* Extension frames seen in the wild (RFC 7838, 8336, 9218). */
	H2_ALTSVC = 0xa,
	H2_ORIGIN = 0xc,
	H2_PRIORITY_UPDATE = 0x10,
};

#define H2_F_END_STREAM 0x1
#define H2_F_ACK 0x1
#define H2_F_END_HEADERS 0x4
#define H2_F_PADDED 0x8
#define H2_F_PRIORITY 0x20

enum h2_settings_id {
	H2_SET_HEADER_TABLE_SIZE = 0x1,
	H2_SET_ENABLE_PUSH = 0x2,
	H2_SET_MAX_CONCURRENT_STREAMS = 0x3,
	H2_SET_INITIAL_WINDOW_SIZE = 0x4,
	H2_SET_MAX_FRAME_SIZE = 0x5,
	H2_SET_MAX_HEADER_LIST_SIZE = 0x6,
};

/* Error codes (RFC 9113 section 7). */
#define H2_ERR_NO_ERROR 0x0
#define H2_ERR_CANCEL 0x8
#define H2_ERR_UNKNOWN 0xffffffffu /* sonde's: the code was not captured */

struct h2_frame_hdr {
	uint32_t len;
	uint8_t type;
	uint8_t flags;
	uint8_t r;    /* the reserved bit before the stream id */
	uint32_t sid; /* 31 bits */
};

/* Decode 9 header bytes (no checks). */
void h2_frame_hdr_parse(const uint8_t *p, struct h2_frame_hdr *h);

/* Is this header one a conforming peer sends? Checks the stream id (zero
 * or not) and the length each type requires, and that no undefined flag or
 * reserved bit is set. len must be <= max_len. Unknown frame types are
 * refused (extensions above are accepted with flags 0). 0 = valid, -1 not. */
int h2_frame_hdr_check(const struct h2_frame_hdr *h, uint32_t max_len);

/* The connection preface at the start of p: 1 = all 24 bytes, 0 = p is a
 * (possibly empty) proper prefix of it, -1 = not the preface. */
int h2_preface_check(const uint8_t *p, size_t n);

/*
 * Walk frame headers from p[0]: each must pass h2_frame_hdr_check and the
 * next is found after the previous payload. Stops at the end of p (a frame
 * whose payload runs past n, or fewer than 9 bytes left, ends the walk) or
 * after max_frames headers. Returns the number of valid headers walked, or
 * -1 when a header inside p is invalid. *last_end is where the last frame
 * walked ends (may be > n).
 */
int h2_chain_walk(const uint8_t *p, size_t n, uint32_t max_len, unsigned max_frames,
                  size_t *last_end);

/*
 * Where frames start again in p[0..n) after a loss. p is the start of the
 * bytes of one read or write whose total size is total (>= n; the bytes
 * after n were not captured). Accepted: the smallest offset from which
 * h2_chain_walk finds at least 2 headers, or offset 0 when its headers
 * chain and the last frame ends within the transfer (<= total). Offsets
 * are searched up to scan_max. Returns the offset, or -1.
 */
long h2_resync_find(const uint8_t *p, size_t n, size_t total, size_t scan_max);

/* A frame type h2_frame_hdr_check accepts. */
int h2_frame_type_known(uint8_t type);

/* Name of an error code for error.type ("CANCEL"); NULL when unknown. */
const char *h2_error_name(uint32_t code);

#endif /* SONDE_H2_FRAME_H */
