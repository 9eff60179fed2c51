/*
 * h2_conn.h - an incremental HTTP/2 reader for both directions of one
 * connection, as seen by an observer: frames, header blocks decoded with
 * HPACK, and what was lost. No sonde types: the plugin glue (grpc_plugin.c)
 * turns its events into spans, tests and the fuzzer drive it directly.
 *
 * The one idea: each direction is a small state machine over the byte
 * stream (preface, frame header, payload, lost) that keeps at most one
 * frame header, 8 payload bytes and the header block being assembled; DATA
 * payloads are counted, never stored. What is lost is always followed by
 * count when the frame header that covers it was seen (a capture cut
 * inside a payload), and otherwise the direction looks for frame boundaries
 * again by chaining valid headers (h2_resync_find). Any header-block byte
 * that was not decoded makes that direction's HPACK table unknown; the
 * table is reset right before the next block is decoded, so the reset
 * point is after every byte that was missed (see hpack.h).
 *
 * Mid-connection: a connection whose request direction does not start with
 * the client preface, or whose first header block comes before any
 * preface, was already open: both tables are unknown from the start.
 */
#ifndef SONDE_H2_CONN_H
#define SONDE_H2_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h2_frame.h"
#include "hpack.h"

#define H2_BLOCK_MAX (64 * 1024) /* header block bytes kept; the rest is cut */
#define H2_RESYNC_SCAN (64 * 1024)

#define H2_IN_GAP 0x1 /* bytes were lost before this chunk (unknown count) */

enum h2_mode {
	H2_MODE_UNDECIDED = 0, /* nothing told yet */
	H2_MODE_FROM_START,    /* the preface was seen: tables known */
	H2_MODE_MIDSTREAM,     /* joined an open connection: tables unknown */
};

/* Events, called during h2_conn_feed. dir is 0 (ingress) or 1 (egress),
 * as in enum sonde_dir. Any callback may be NULL. */
struct h2_events {
	/* The client preface was seen at the start of dir. */
	void (*preface)(void *ctx, int dir);
	/* A header block (HEADERS or PUSH_PROMISE, with its CONTINUATIONs) is
	 * decoded: block_begin, then field() per decoded field, then
	 * block_end. ts is the time of the chunk holding the first frame's
	 * header. end_stream: the HEADERS frame had END_STREAM. */
	void (*block_begin)(void *ctx, int dir, uint32_t sid, uint8_t type, bool end_stream,
	                    uint64_t ts);
	void (*field)(void *ctx, const uint8_t *name, size_t name_len, const uint8_t *value,
	              size_t value_len);
	void (*block_end)(void *ctx, const struct hpack_result *res);
	/* A DATA frame ended (its payload may not have been captured). */
	void (*data)(void *ctx, int dir, uint32_t sid, uint32_t len, bool end_stream, uint64_t ts);
	/* RST_STREAM / GOAWAY; code H2_ERR_UNKNOWN when its bytes were lost. */
	void (*rst)(void *ctx, int dir, uint32_t sid, uint32_t code, uint64_t ts);
	void (*goaway)(void *ctx, int dir, uint32_t last_sid, bool last_known, uint32_t code,
	               uint64_t ts);
	/* The position in dir's byte stream was lost: frames of any stream may
	 * have gone unseen. */
	void (*loss)(void *ctx, int dir, uint64_t ts);
};

struct h2_stats {
	uint64_t frames;
	uint64_t blocks;         /* header blocks decoded (incl. cut ones) */
	uint64_t blocks_cut;     /* ... whose tail was not captured */
	uint64_t hpack_errors;
	uint64_t unknown_fields; /* fields that could not be attributed */
	uint64_t losses;         /* position lost (gap, cut header, garbage) */
	uint64_t garbage;        /* invalid frame header while in sync */
	uint64_t resyncs;        /* frame boundaries found again */
	uint64_t hpack_resets;
	uint64_t skipped_bytes;  /* bytes passed over while lost */
};

struct h2_conn;

/* req_dir: the direction carrying the client's frames (0/1), or -1 when
 * unknown. The client preface, when seen, decides (it overrides req_dir).
 * NULL when out of memory. */
struct h2_conn *h2_conn_new(int req_dir, const struct h2_events *ev, void *ctx);
void h2_conn_free(struct h2_conn *h);

/* Bytes of one read/write: len captured of orig_len transferred; flags
 * H2_IN_*. Returns 0, or -1 when out of memory (the connection cannot be
 * followed). */
int h2_conn_feed(struct h2_conn *h, int dir, const uint8_t *data, size_t len, size_t orig_len,
                 unsigned flags, uint64_t ts);

enum h2_mode h2_conn_mode(const struct h2_conn *h);
int h2_conn_req_dir(const struct h2_conn *h);
/* The glue learnt which direction carries requests (role UNKNOWN). */
void h2_conn_set_req_dir(struct h2_conn *h, int dir);
const struct h2_stats *h2_conn_stats(const struct h2_conn *h);
/* 1 when dir is lost (looking for frame boundaries). */
int h2_conn_lost(const struct h2_conn *h, int dir);
/* Consecutive chunks of dir, captured whole, in which no frame boundary
 * was found while lost. */
unsigned h2_conn_lost_chunks(const struct h2_conn *h, int dir);

/* During a header block's events (block_begin .. block_end): where its
 * first frame's header starts, counted from the first byte fed in dir
 * (orig_len of every chunk). 0 and *at, or -1 when dir lost its place
 * before that block (offsets found again are guesses). */
int h2_conn_block_at(const struct h2_conn *h, int dir, uint64_t *at);

#endif /* SONDE_H2_CONN_H */
