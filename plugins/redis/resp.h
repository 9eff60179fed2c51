/*
 * resp.h - RESP (REdis Serialization Protocol) parsing, RESP2 and RESP3.
 *
 * Two layers, both allocation-free:
 *
 *   resp_parse_hdr / resp_parse / resp_parse_request are stateless and
 *   zero-copy, in the picohttpparser manner: they look at a buffer the caller
 *   owns and return the number of bytes one value takes, RESP_INCOMPLETE (-2)
 *   when the buffer ends inside it, RESP_ERR (-1) when the bytes are not RESP
 *   and RESP_UNSUPPORTED (-3) for RESP3 streamed strings and aggregates
 *   ($? *? ; .), which sonde does not follow.
 *
 *   struct resp_stream is the incremental form used on live connections. It
 *   is fed chunk by chunk, keeps only small fixed-size state (a 32-level
 *   stack of element counts, the bytes left in the current bulk string, a
 *   short copy of the first few elements) and skips bulk payloads of any
 *   size by count, so it can also step over bytes it never saw
 *   (resp_stream_skip: payload cut off at the capture cap).
 *
 * The one idea: a RESP value is a header line ("$5\r\n", "*3\r\n", "+OK\r\n")
 * followed, for string types, by exactly n payload bytes and CRLF, and, for
 * aggregates, by n further values. Counting is all it takes to find the end.
 *
 * Both layers agree on what a "message" is: one top-level value, with any
 * RESP3 attribute (|) in front of it folded in. Attributes never count as
 * elements of the aggregate they sit in.
 */
#ifndef SONDE_REDIS_RESP_H
#define SONDE_REDIS_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RESP_ERR (-1)
#define RESP_INCOMPLETE (-2)
#define RESP_UNSUPPORTED (-3)

/* Bounds that keep hostile input cheap: nesting is limited to RESP_MAX_DEPTH
 * aggregates; counts and lengths above RESP_MAX_LEN are refused (nothing is
 * ever allocated per element, so a large count costs nothing but time).
 * Text lines (+ - , ( and inline commands) are limited like Redis's own
 * PROTO_INLINE_MAX_SIZE; number lines to RESP_MAX_NUM_LINE bytes. */
#define RESP_MAX_DEPTH 32
#define RESP_MAX_LEN ((int64_t)1 << 32)
#define RESP_MAX_LINE (64 * 1024)
#define RESP_MAX_NUM_LINE 24

/* Type bytes. RESP_INLINE is sonde's marker for a space-separated inline
 * command ("PING\r\n"); it never appears on the wire. */
enum resp_type {
	RESP_SIMPLE = '+',
	RESP_ERROR = '-',
	RESP_INTEGER = ':',
	RESP_BULK = '$',
	RESP_ARRAY = '*',
	RESP_NULL = '_',
	RESP_DOUBLE = ',',
	RESP_BOOL = '#',
	RESP_BLOB_ERROR = '!',
	RESP_VERBATIM = '=',
	RESP_BIGNUM = '(',
	RESP_MAP = '%',
	RESP_SET = '~',
	RESP_PUSH = '>',
	RESP_ATTR = '|',
	RESP_INLINE = 'I',
};

/* One header line. For string types (bulk, blob error, verbatim) n is the
 * payload length, -1 for the RESP2 null bulk; for aggregates it is the
 * number of elements (pairs for map and attribute), -1 for the RESP2 null
 * array; for integers it is the value. For line types (+ - , # ( _ :) text
 * points at the line after the type byte, without CRLF. */
struct resp_hdr {
	uint8_t type;
	int64_t n;
	const uint8_t *text;
	size_t text_len;
};

/* Parse the header line at buf. Returns its length including CRLF, or
 * RESP_INCOMPLETE / RESP_ERR / RESP_UNSUPPORTED. Pointers in *h point into
 * buf (caller-owned). */
ssize_t resp_parse_hdr(const uint8_t *buf, size_t len, struct resp_hdr *h);

/* True for types followed by a counted payload ($ ! =). */
int resp_type_is_string(uint8_t type);
/* True for types followed by elements (* % ~ > |). */
int resp_type_is_aggregate(uint8_t type);
/* Number of values that follow an aggregate header (2n for % and |). */
int64_t resp_hdr_children(const struct resp_hdr *h);

#define RESP_MAX_ARGS 8

/* A leading element of a top-level aggregate. p/len is the bulk payload or
 * the line text of a scalar; p is NULL for nested aggregates and nulls. */
struct resp_str {
	uint8_t type;
	const uint8_t *p;
	size_t len;
};

/* One complete message, as seen by the stateless parser. All pointers point
 * into the caller's buffer. */
struct resp_msg {
	uint8_t type;           /* top-level type, attributes skipped */
	int64_t n;              /* as resp_hdr.n; inline: number of words */
	const uint8_t *text;    /* line text or string payload of a scalar */
	size_t text_len;
	size_t n_args;          /* leading elements stored in args */
	struct resp_str args[RESP_MAX_ARGS];
};

/* Parse one complete value (a reply, or a command in array form). Returns
 * the bytes it takes, or RESP_INCOMPLETE / RESP_ERR / RESP_UNSUPPORTED. */
ssize_t resp_parse(const uint8_t *buf, size_t len, struct resp_msg *m);

/* Parse one command as a server reads it: an array when the first byte is
 * '*', otherwise an inline command line ending in LF (type RESP_INLINE, the
 * words in args). An empty inline line is a message with n == 0, which
 * Redis ignores. */
ssize_t resp_parse_request(const uint8_t *buf, size_t len, struct resp_msg *m);

/* Split an inline command line (without its line end) into words the way
 * Redis does: blanks separate, "double" and 'single' quotes group (escapes
 * are skipped, not decoded; the quotes are not part of the word). Stores at
 * most max words in args, counts all in *words. Returns -1 for unbalanced
 * quotes. */
int resp_split_inline(const uint8_t *line, size_t n, struct resp_str *args, size_t max,
                      int64_t *words);

/* ---- Incremental decoding ---------------------------------------------- */

#define RESP_KEEP_ARGS 3   /* leading elements copied per message */
#define RESP_KEEP_LEN 64   /* bytes copied per element (the rest is counted) */
#define RESP_INLINE_KEEP 256

/* A copied element. len is the number of bytes kept; full_len the real
 * length (bulk payload length, or text line length). */
struct resp_copy {
	uint8_t type;
	uint8_t present;   /* 0: no such element */
	uint8_t lost;      /* some of its bytes were skipped unseen */
	uint16_t len;
	uint64_t full_len;
	char buf[RESP_KEEP_LEN]; /* its first len bytes; the rest is unspecified */
};

/* One complete message as copied out by the stream decoder. */
struct resp_summary {
	uint8_t type;           /* top-level type (attributes skipped) or RESP_INLINE */
	int64_t n;              /* as resp_hdr.n; inline: number of words */
	struct resp_copy text;  /* scalar top-level value: its text or payload */
	struct resp_copy args[RESP_KEEP_ARGS];
	uint64_t wire_len;      /* bytes the message took on the wire */
	uint8_t lost;           /* some bytes were skipped unseen */
};

/* Decoder state, plain data: call resp_stream_init to start. About 1.2 KiB
 * per direction, whatever the traffic. */
struct resp_stream {
	uint8_t request;        /* 1: allow inline commands at the top level */
	uint8_t state;          /* internal RS_* */
	uint8_t line_type;      /* type byte of the line being read */
	uint8_t line_cr;        /* last byte seen was CR */
	uint8_t line_bad;       /* a CR or LF appeared inside the line */
	uint32_t line_len;      /* bytes of the line seen so far (type byte excluded) */
	uint8_t line[RESP_INLINE_KEEP]; /* their first bytes */
	uint64_t bulk_left;     /* payload bytes still to come, then CRLF */
	uint8_t bulk_type;
	int8_t bulk_dest;       /* where payload bytes are copied: -1 none, 0..2 arg, 3 text */
	int depth;
	struct {
		int64_t left;       /* values still to come in this aggregate */
		uint8_t attr;       /* it is an attribute (does not count upward) */
	} stk[RESP_MAX_DEPTH];
	uint8_t in_msg;         /* a message has begun and not ended */
	uint8_t top_seen;       /* the top-level (non-attribute) header was read */
	uint32_t arg_idx;       /* index of the next top-level element */
	struct resp_summary cur;
};

void resp_stream_init(struct resp_stream *s, int request);

/* 1 when a message has started and not ended (the next byte is not at a
 * message boundary). */
int resp_stream_in_msg(const struct resp_stream *s);

/* Feed bytes. Consumes until one message completes or the buffer ends, and
 * returns the bytes consumed (>= 0). When a message completed, *done is set
 * and *out holds it (copied, independent of buf). On RESP_ERR or
 * RESP_UNSUPPORTED the decoder is unusable until resp_stream_init. */
ssize_t resp_stream_feed(struct resp_stream *s, const uint8_t *buf, size_t len,
                         struct resp_summary *out, int *done);

/* 1 when two summaries say the same: their fields and the bytes their
 * copies hold (a copy's buffer past its len is unspecified, so summaries
 * are never compared with memcmp). */
int resp_summary_eq(const struct resp_summary *a, const struct resp_summary *b);

/* Payload bytes of the current bulk string still to come that nobody
 * reads (its copy, if any, is full), its CRLF excluded; 0 otherwise. What
 * a capture policy may leave out. */
uint64_t resp_stream_skippable(const struct resp_stream *s);

/* n bytes went by that were not captured. They are absorbed by count while
 * they fall inside a bulk payload (and its CRLF); the message may complete
 * (*done, *out). Returns the bytes absorbed; fewer than n with !*done means
 * the gap covered structure: the decoder has lost sync. */
uint64_t resp_stream_skip(struct resp_stream *s, uint64_t n,
                          struct resp_summary *out, int *done);

#endif
