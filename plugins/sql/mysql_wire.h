/*
 * mysql_wire.h - MySQL/MariaDB client/server protocol framing: an
 * incremental packet decoder, the packet layouts the plugin reads
 * (greeting, handshake response, OK, ERR, EOF, column count, prepare OK)
 * and the stateless checks used for detection and resynchronisation.
 *
 * The one idea: every packet is a 3-byte little-endian payload length and
 * a 1-byte sequence id that counts up within one command's exchange, so a
 * chain of headers with consecutive sequence ids marks packet boundaries,
 * and a payload of 0xffffff bytes is continued by the next packet. The
 * decoder copies at most `want` bytes of a payload (set by the caller for
 * the packet it expects next) and skips the rest by count.
 */
#ifndef SONDE_MYSQL_WIRE_H
#define SONDE_MYSQL_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MY_MAX_PAYLOAD 0xffffffu

/* Capability flags (lower 32 bits; MariaDB's extended ones shifted up). */
#define MY_CLIENT_MYSQL (1u << 0) /* MariaDB: set by MySQL, not by MariaDB */
#define MY_CLIENT_CONNECT_WITH_DB (1u << 3)
#define MY_CLIENT_COMPRESS (1u << 5)
#define MY_CLIENT_PROTOCOL_41 (1u << 9)
#define MY_CLIENT_SSL (1u << 11)
#define MY_CLIENT_SECURE_CONNECTION (1u << 15)
#define MY_CLIENT_MULTI_STATEMENTS (1u << 16)
#define MY_CLIENT_PLUGIN_AUTH (1u << 19)
#define MY_CLIENT_PLUGIN_AUTH_LENENC (1u << 21)
#define MY_CLIENT_SESSION_TRACK (1u << 23)
#define MY_CLIENT_DEPRECATE_EOF (1u << 24)
#define MY_CLIENT_ZSTD (1u << 26)
#define MY_CLIENT_QUERY_ATTRIBUTES (1u << 27)

/* Server status flags (OK, EOF). */
#define MY_STATUS_MORE_RESULTS 0x0008u
#define MY_STATUS_CURSOR_EXISTS 0x0040u
#define MY_STATUS_NO_BACKSLASH_ESCAPES 0x0200u
#define MY_STATUS_SESSION_STATE_CHANGED 0x4000u

/* Commands. */
enum {
	MY_COM_QUIT = 0x01, MY_COM_INIT_DB = 0x02, MY_COM_QUERY = 0x03,
	MY_COM_FIELD_LIST = 0x04, MY_COM_REFRESH = 0x07, MY_COM_SHUTDOWN = 0x08,
	MY_COM_STATISTICS = 0x09, MY_COM_PROCESS_INFO = 0x0a, MY_COM_PROCESS_KILL = 0x0c,
	MY_COM_DEBUG = 0x0d, MY_COM_PING = 0x0e, MY_COM_CHANGE_USER = 0x11,
	MY_COM_BINLOG_DUMP = 0x12, MY_COM_REGISTER_SLAVE = 0x15, MY_COM_STMT_PREPARE = 0x16,
	MY_COM_STMT_EXECUTE = 0x17, MY_COM_STMT_SEND_LONG_DATA = 0x18, MY_COM_STMT_CLOSE = 0x19,
	MY_COM_STMT_RESET = 0x1a, MY_COM_SET_OPTION = 0x1b, MY_COM_STMT_FETCH = 0x1c,
	MY_COM_BINLOG_DUMP_GTID = 0x1e, MY_COM_RESET_CONNECTION = 0x1f,
	MY_COM_STMT_BULK_EXECUTE = 0xfa,
};

/* One packet. body points into the decoder's buffer, valid until the next
 * call on the decoder. */
struct my_pkt {
	uint32_t len;        /* payload length */
	uint8_t seq;
	uint8_t cont;        /* continues a logical packet (previous was 0xffffff long) */
	uint8_t partial;     /* part of the copied range was never captured */
	const uint8_t *body;
	uint32_t copied;
	uint64_t start_ts;
};

struct my_stream {
	uint8_t hdr[4];
	uint8_t hdr_n;
	uint8_t in_body;
	uint8_t partial;
	uint8_t cont;        /* the packet being read continues a logical packet */
	uint8_t next_cont;
	uint8_t seq;
	uint32_t body_len, body_done, want;
	uint32_t next_want;  /* bytes to copy of the next packet (set by the caller) */
	uint32_t text_want;  /* by_cmd: bytes to copy of a command carrying text */
	uint8_t by_cmd;      /* decide the copy from the first payload byte (command) */
	uint8_t *buf;
	uint32_t buf_cap, buf_n;
	uint64_t start_ts;
};

void my_stream_init(struct my_stream *s);
void my_stream_free(struct my_stream *s);
void my_stream_reset(struct my_stream *s);
int my_stream_in_pkt(const struct my_stream *s);

/* Payload bytes of the current packet left that nobody reads (beyond the
 * copy), or 0: what a capture policy may skip. */
uint64_t my_stream_skippable(const struct my_stream *s);

/* 1 for the commands whose payload carries text the plugin reads. */
int my_cmd_has_text(uint8_t cmd);

/* Decode from p[0..n): returns bytes consumed (at most to the end of one
 * packet). *done = 1 when *k holds a complete packet. */
size_t my_stream_feed(struct my_stream *s, const uint8_t *p, size_t n, uint64_t ts,
                      struct my_pkt *k, int *done);
/* n bytes transferred but not captured: returns how many fall inside the
 * current payload (skipped by count). */
uint64_t my_stream_skip(struct my_stream *s, uint64_t n, struct my_pkt *k, int *done);

/* Length-encoded integer at p[*off..n): 0 and *v, or -1 (incomplete, or
 * 0xfb/0xff which are not integers). */
int my_lenenc(const uint8_t *p, size_t n, size_t *off, uint64_t *v);

/* Server greeting (protocol 10). */
struct my_greeting {
	uint8_t mariadb;     /* the version string says MariaDB */
	uint32_t caps;
	uint32_t ext_caps;   /* MariaDB extended capabilities (caps >> 32) */
	uint16_t status;
};
int my_parse_greeting(const uint8_t *b, size_t n, struct my_greeting *g);

/* Client HandshakeResponse41 (or SSLRequest when it is 32 bytes with
 * CLIENT_SSL). The database, when given and within the copy, is pointed
 * to by *db (not NUL-terminated). The user name and the authentication
 * data are skipped, never returned. Returns 0, or -1 if malformed. */
struct my_handshake {
	uint32_t caps;
	uint32_t ext_caps;
	uint8_t ssl_request;
	const uint8_t *db;
	size_t db_len;
};
int my_parse_handshake(const uint8_t *b, size_t n, int partial, struct my_handshake *h);

struct my_ok {
	uint64_t affected;
	uint16_t status;
	const uint8_t *schema; /* SESSION_TRACK_SCHEMA, or NULL */
	size_t schema_len;
};
/* OK (0x00 or 0xfe header); session is 1 when CLIENT_SESSION_TRACK. */
int my_parse_ok(const uint8_t *b, size_t n, int session, struct my_ok *ok);

/* ERR: code, and the SQLSTATE when present ("" otherwise). */
int my_parse_err(const uint8_t *b, size_t n, uint16_t *code, char sqlstate[6]);

/* EOF (0xfe, payload of 5 bytes): status. */
int my_is_eof(const struct my_pkt *k);

/*
 * Walk a chain of packet headers from p[0] with consecutive sequence ids.
 * Returns the number of complete packets; *end: 0 exactly at n, 1 the last
 * runs past n, 2 inside a header.
 */
int my_chain(const uint8_t *p, size_t n, int *end);

/*
 * Bytes ending exactly with the last packet of a response (EOF, an OK
 * with a 0xfe header, or an ERR; without MORE_RESULTS): the offset of that
 * packet in the earliest chain with consecutive sequence ids reaching n,
 * or -1.
 */
long my_tail_end(const uint8_t *p, size_t n);

static inline uint32_t my_le24(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static inline uint16_t my_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t my_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
