/*
 * http_parse.h - HTTP/1.x message heads and chunked bodies, stateless and
 * zero-copy (in the manner of picohttpparser).
 *
 * The one idea: a head parser never keeps state between calls. The caller
 * hands it everything it has so far; it answers with the length of the head
 * (start line + header lines + the empty line), -1 when the bytes cannot be
 * HTTP/1.x, or -2 when they are a valid prefix and more is needed. Parsing
 * the same bytes cut at any point therefore gives -2 until the head is
 * whole, then the same answer as the uncut parse. Output structs only point
 * into the caller's buffer: the caller owns the bytes and keeps them alive
 * as long as it reads the struct.
 *
 * Bodies are not the parser's business, except chunked transfer coding,
 * whose framing has to be followed byte by byte: struct http_chunked is a
 * small incremental decoder that walks sizes, extensions, data and trailers,
 * never needs to see data bytes (they can be skipped by count) and says when
 * the body has ended.
 */
#ifndef SONDE_HTTP_PARSE_H
#define SONDE_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_MAX_HEADERS 64 /* one more header line is an error (-1) */

#define HTTP_PARSE_ERROR (-1)
#define HTTP_PARSE_INCOMPLETE (-2)

/* One header line. An obs-fold continuation line (starting with SP/HTAB)
 * is reported as its own entry with name == NULL and name_len == 0. The
 * value has no leading or trailing whitespace. */
struct http_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

struct http_request {
	const char *method;   /* token, as sent (case preserved) */
	size_t method_len;
	const char *target;   /* request-target as sent, query included */
	size_t target_len;
	int minor_version;    /* HTTP/1.<minor_version>, 0..9 */
	size_t n_headers;
	struct http_header headers[HTTP_MAX_HEADERS];
};

struct http_response {
	int minor_version;
	int status;           /* 100..999 */
	const char *reason;   /* may be empty (len 0) */
	size_t reason_len;
	size_t n_headers;
	struct http_header headers[HTTP_MAX_HEADERS];
};

/*
 * Parse a request head from buf[0..len). Returns the head length (> 0),
 * HTTP_PARSE_ERROR or HTTP_PARSE_INCOMPLETE. Empty lines before the request
 * line are skipped (RFC 9112 2.2) and counted in the result. *req is
 * written on success and is undefined otherwise. Pointers in *req point
 * into buf (caller-owned).
 */
int http_parse_request(const char *buf, size_t len, struct http_request *req);

/* Same for a status line + headers. */
int http_parse_response(const char *buf, size_t len, struct http_response *res);

/*
 * For a head known to be cut (its end was never captured): parse the start
 * line and every complete header line. Returns the bytes covered (> 0) when
 * at least the start line is complete, HTTP_PARSE_ERROR on invalid bytes,
 * HTTP_PARSE_INCOMPLETE when even the start line is cut. On a complete
 * head it answers like the functions above.
 */
int http_parse_request_prefix(const char *buf, size_t len, struct http_request *req);
int http_parse_response_prefix(const char *buf, size_t len, struct http_response *res);

/*
 * Does buf start like a request line (want_request != 0) or a status line?
 * Stricter than the parsers: the method must be a registered one (RFC 9110,
 * PATCH, WebDAV, ...) and the target must look like a target, so it is
 * usable for protocol detection and for finding a message start after lost
 * bytes. Returns 1 for yes, 0 when buf is a valid but too short prefix,
 * -1 for no.
 */
int http_start_line_check(const char *buf, size_t len, int want_request);

/* Case-insensitive lookup; returns the first match or NULL. */
const struct http_header *http_header_find(const struct http_header *h, size_t n,
                                           const char *name);

/* Does a comma-separated header value contain `token` (case-insensitive)? */
int http_value_has_token(const char *val, size_t len, const char *token);

/* Is `token` the last element of a comma-separated list (Transfer-Encoding)? */
int http_value_last_token_is(const char *val, size_t len, const char *token);

/* Strict Content-Length value: 1..18 digits. Returns 0 or -1. */
int http_parse_content_length(const char *val, size_t len, uint64_t *out);

/* How a message body is delimited (RFC 9112 6.3). */
enum http_body_kind {
	HTTP_BODY_NONE = 0,
	HTTP_BODY_LENGTH,  /* exactly `length` bytes */
	HTTP_BODY_CHUNKED, /* chunked transfer coding: use struct http_chunked */
	HTTP_BODY_CLOSE,   /* until the connection closes (responses only) */
};

struct http_framing {
	enum http_body_kind kind;
	uint64_t length;   /* HTTP_BODY_LENGTH only */
};

/* Framing of a request body. Returns 0, or -1 for a head whose framing is
 * invalid (conflicting Content-Length values, an unknown final transfer
 * coding) - such a stream cannot be followed. */
int http_request_framing(const struct http_request *req, struct http_framing *f);

/* Framing of a response body, given what the request was (a response to
 * HEAD, and a 2xx to CONNECT, have no body; so have 1xx, 204 and 304). */
int http_response_framing(const struct http_response *res, int req_is_head,
                          int req_is_connect, struct http_framing *f);

/* --- Chunked transfer coding -------------------------------------------- */

struct http_chunked {
	uint64_t left;     /* data bytes left in the current chunk */
	uint8_t state;     /* internal */
	uint8_t n_hex;     /* hex digits read in the current size line */
};

void http_chunked_init(struct http_chunked *d);

/* Consume buf[0..len). Returns the bytes consumed (< len only when the body
 * ended inside buf: what follows belongs to the next message), or -1 when
 * the bytes are not chunked coding. */
ssize_t http_chunked_feed(struct http_chunked *d, const char *buf, size_t len);

/* Account for n body bytes that went by unseen. Returns 0 when they were all
 * chunk data (the decoder is still in sync), -1 when they ran past the
 * current chunk's data (the framing position is lost). */
int http_chunked_skip(struct http_chunked *d, uint64_t n);

/* 1 once the last-chunk and the trailer section have been consumed. */
int http_chunked_done(const struct http_chunked *d);

/* Data bytes of the current chunk still to come (0 outside chunk data):
 * bytes that may go by unseen without losing the framing. */
uint64_t http_chunked_data_left(const struct http_chunked *d);

#endif /* SONDE_HTTP_PARSE_H */
