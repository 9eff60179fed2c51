/*
 * node_ws.h - the bytes of the inspector's transport: an HTTP/1.1 response
 * head (GET /json/list, the WebSocket upgrade) and WebSocket frames
 * (RFC 6455), client side.
 *
 * Parsers are stateless and zero-copy: they return the bytes consumed,
 * NODE_NEED_MORE (-2) when the buffer ends first, NODE_BAD (-1) when the
 * bytes cannot be what they should.
 */
#ifndef SONDE_NODE_WS_H
#define SONDE_NODE_WS_H

#include <stddef.h>
#include <stdint.h>

#define NODE_BAD (-1)
#define NODE_NEED_MORE (-2)

#define NODE_HTTP_HEAD_MAX 8192 /* a response head longer than this is refused */

struct node_http_resp {
	int status;               /* 100..599 */
	int64_t content_length;   /* -1: absent */
	int upgrade_websocket;    /* Upgrade: websocket */
	int connection_upgrade;   /* Connection: ... upgrade ... */
	char accept[32];          /* Sec-WebSocket-Accept (NUL-terminated, cut) */
};

/* Parse a response head ending in an empty line. Returns its length. */
int node_http_head(const uint8_t *buf, size_t len, struct node_http_resp *r);

/* The Sec-WebSocket-Accept a server must answer to key (base64 of
 * SHA-1(key + RFC 6455's GUID)). 0, or -1 if the digest failed. */
int node_ws_accept(const char *key, char out[32]);

/* WebSocket opcodes. */
#define NODE_WS_CONT 0x0
#define NODE_WS_TEXT 0x1
#define NODE_WS_BIN 0x2
#define NODE_WS_CLOSE 0x8
#define NODE_WS_PING 0x9
#define NODE_WS_PONG 0xA

struct node_ws_frame {
	int fin;
	int opcode;
	const uint8_t *payload;   /* into the parsed buffer (servers never mask) */
	size_t len;
};

/* Parse one server frame. max_payload bounds the length a frame may claim
 * (a longer one is NODE_BAD). Returns the frame's size. */
int node_ws_frame_parse(const uint8_t *buf, size_t len, size_t max_payload,
                        struct node_ws_frame *f);

/* Bytes a client frame of payload length n takes. */
size_t node_ws_frame_size(size_t n);

/* Write a masked client frame (FIN set) into out (node_ws_frame_size(n)
 * bytes). Returns its size. */
size_t node_ws_frame_build(uint8_t *out, int opcode, const uint8_t *payload, size_t n,
                           const uint8_t mask[4]);

/* Assembles a message from frames (fragmented text, control frames
 * between), bounded: a message longer than cap is refused. */
struct node_ws_msg {
	uint8_t *buf;
	size_t len, cap;
	int active;               /* a fragmented message is under way */
	int opcode;
};

/* Feed one parsed data frame (TEXT, BIN or CONT). Returns 1 when a whole
 * message is in m->buf[0..len), 0 when more frames are needed, NODE_BAD on
 * a protocol error or a message over cap. Control frames are not fed. */
int node_ws_msg_add(struct node_ws_msg *m, const struct node_ws_frame *f);
void node_ws_msg_reset(struct node_ws_msg *m);

#endif /* SONDE_NODE_WS_H */
