/*
 * pg_wire.h - PostgreSQL frontend/backend protocol v3 framing: an
 * incremental message decoder and the stateless checks used for detection
 * and for finding message boundaries again after bytes were lost.
 *
 * The one idea: every v3 message is a type byte and a big-endian length
 * (the startup-phase packets have the length only), so a decoder needs to
 * keep just the header bytes seen so far, how much of the body is left,
 * and a bounded copy of the body's first bytes for the few message types
 * whose content matters (query text, statement and portal names, command
 * tags, SQLSTATE). Bodies beyond that copy are skipped by count, captured
 * or not. No allocation proportional to a length read from the wire.
 */
#ifndef SONDE_PG_WIRE_H
#define SONDE_PG_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PG_CODE_PROTO3 196608u        /* 3.0 */
#define PG_CODE_CANCEL 80877102u
#define PG_CODE_SSL 80877103u
#define PG_CODE_GSSENC 80877104u

#define PG_MAX_STARTUP 10000u         /* the server's own limit */
#define PG_MAX_MSG 0x3fffffffu        /* 1 GiB - 1 */

enum pg_side { PG_FE = 0, PG_BE = 1 }; /* frontend (client) / backend (server) */

#define PG_EBAD (-1)                  /* not a valid header for this side */

/* One complete message. body points into the decoder's copy buffer and is
 * valid until the next call on the decoder. */
struct pg_msg {
	uint8_t type;        /* 0: a startup-phase packet (length only) */
	uint8_t partial;     /* part of the copied range was never captured */
	uint32_t len;        /* body length */
	const uint8_t *body; /* first `copied` bytes of the body */
	uint32_t copied;
	uint64_t start_ts;   /* ts of the chunk that held its first byte */
};

struct pg_stream {
	uint8_t side;
	uint8_t startup;     /* the next message has no type byte */
	uint8_t hdr[5];
	uint8_t hdr_n;
	uint8_t in_body;
	uint8_t partial;
	uint8_t type;
	uint32_t body_len, body_done, want;
	uint8_t *buf;        /* copy buffer, grown up to the largest `want` */
	uint32_t buf_cap, buf_n;
	uint32_t query_max;  /* copy bound for query texts */
	uint64_t start_ts;
};

void pg_stream_init(struct pg_stream *s, int side, uint32_t query_max);
void pg_stream_free(struct pg_stream *s);
/* Forget any partial message; startup=1: the next one is a startup packet. */
void pg_stream_reset(struct pg_stream *s, int startup);
int pg_stream_in_msg(const struct pg_stream *s);

/* Decode from p[0..n). Returns the bytes consumed (at most up to the end of
 * one message), or PG_EBAD. *done = 1 when *m holds a complete message. */
ssize_t pg_stream_feed(struct pg_stream *s, const uint8_t *p, size_t n, uint64_t ts,
                       struct pg_msg *m, int *done);
/* n bytes were transferred but not captured. Returns how many of them fall
 * inside the current message body (skipped by count; *done as above). The
 * rest, if any, would be structure: the caller has lost its place. */
uint64_t pg_stream_skip(struct pg_stream *s, uint64_t n, struct pg_msg *m, int *done);

/* Body bytes of the current message left that nobody reads (beyond the
 * copy), or 0: what a capture policy may skip. */
uint64_t pg_stream_skippable(const struct pg_stream *s);

/* Is (type, length field) a plausible header for this side? type 0 is a
 * startup-phase packet (frontend only). */
int pg_header_ok(int side, uint8_t type, uint32_t lenfield);
int pg_type_ok(int side, uint8_t type);

/*
 * Walk a chain of headers from p[0]. Returns the number of complete
 * messages, or -1 when a header is invalid. *end: 0 the chain ends exactly
 * at n, 1 its last message runs past n, 2 it ends inside a header.
 */
int pg_chain(int side, const uint8_t *p, size_t n, int *end);

/*
 * Backend bytes ending exactly with ReadyForQuery: the offset of the first
 * message after the last DataRow/CopyData of the earliest header chain that
 * reaches n exactly, or -1. Used to finish a cycle whose middle was lost.
 */
long pg_tail_after_rows(const uint8_t *p, size_t n);

/* Which side wrote these bytes, from the message types of a valid chain
 * (some types exist on one side only): PG_FE, PG_BE, or -1 (cannot tell). */
int pg_side_of(const uint8_t *p, size_t n);

/* The value of a startup parameter (body of a StartupMessage, from the
 * protocol code on). Returns 1 and points *val into body, or 0. */
int pg_startup_param(const uint8_t *body, size_t n, const char *key, const uint8_t **val,
                     size_t *vlen);

/* A NUL-terminated string at body[*off..n): returns its length and moves
 * *off past the NUL, or -1 when no NUL is within n. */
long pg_cstr(const uint8_t *body, size_t n, size_t *off);

static inline uint32_t pg_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
