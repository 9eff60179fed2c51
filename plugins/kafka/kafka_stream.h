/*
 * kafka_stream.h - one direction of a Kafka connection: size-prefixed
 * frames, their headers, and the body walk (kafka_walk.h), with frame sync
 * kept across bytes that were never captured and regained after loss.
 *
 * The one idea: a Kafka frame announces its own size, so once the 4-byte
 * size prefix and the fixed header of a frame have been seen, every later
 * byte of that frame can be passed over by count even if it was never
 * captured (payload cap, sendfile); only a size prefix that falls into
 * uncaptured bytes, or a GAP, loses the place. The place is then searched
 * again only at the start of a later chunk (a read or write usually starts
 * on a frame boundary): a request must look like one (known API key and
 * version, sane client id), a response must answer a request this
 * connection is waiting for (or be followed, inside the same chunk, by one
 * that does), and the first frame after a resync is on probation until
 * its header has been checked.
 */
#ifndef SONDE_KAFKA_STREAM_H
#define SONDE_KAFKA_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "kafka_walk.h"

/* kfk_check_request() verdicts, weakest first. */
enum {
	KFK_START_NO = -1,      /* not a request frame start */
	KFK_START_PARTIAL = 0,  /* consistent, but too few bytes to judge the header */
	KFK_START_HEADER = 1,   /* a valid request header; the frame goes on later */
	KFK_START_FRAMES = 2,   /* whole valid frames (as far as captured) */
};

/*
 * Stateless check: does p[0..len) start with a Kafka request? `total` is the
 * number of bytes the transfer really had (>= len; bytes past len were not
 * captured), so a frame cut by the capture still counts as whole.
 */
int kfk_check_request(const uint8_t *p, size_t len, size_t total);

/* A frame, as handed to the callback when its last byte went by. */
struct kfk_frame {
	uint8_t request;
	uint8_t matched;         /* response: a request was waiting for it */
	uint8_t body;            /* enum kfk_body that was walked */
	int16_t api_key, api_version;
	int32_t corr;
	uint32_t size;           /* bytes after the size prefix */
	uint64_t ts_start;       /* chunk of the frame's first byte */
	uint64_t ts_end;         /* chunk of its last byte */
	uint32_t tid_start;
	uint8_t at_exact;        /* at is exact: the place was never lost before */
	uint64_t at;             /* offset of its size prefix from the first byte
	                            given to the stream (captured or not) */
	const struct kfk_sum *sum;
};

struct kfk_stream_cb {
	void *ctx;
	/* Response direction: is a request with this correlation id waiting?
	 * Returns 1 and its API key and version, or 0. */
	int (*lookup)(void *ctx, int32_t corr, int16_t *api_key, int16_t *api_version);
	/* A whole frame went by. The pointers are valid during the call. */
	void (*frame)(void *ctx, const struct kfk_frame *f);
};

struct kfk_stream_stats {
	uint64_t frames;         /* whole frames */
	uint64_t sync_lost;      /* times the place was lost */
	uint64_t resyncs;        /* times it was found again (first sync included) */
	uint64_t probation_failed; /* resyncs refused by the frame's own header */
	uint64_t bytes_unsynced; /* bytes passed over while lost */
	uint64_t unmatched;      /* responses nobody waited for (skipped) */
	uint64_t unknown_api;    /* requests of an API or version not in the table (skipped) */
	uint64_t walk_failed;    /* bodies whose structure could not be followed */
	uint64_t trailing;       /* bodies with bytes after their last field */
};

enum { KS_UNSYNCED = 0, KS_HEAD, KS_BODY, KS_SKIP };

struct kfk_stream {
	uint8_t request;         /* this direction carries requests */
	uint8_t state;           /* KS_* */
	uint8_t probation;
	uint8_t fresh;           /* no chunk begun yet */
	uint8_t head_have;
	uint8_t head[12];        /* size prefix + fixed header */
	uint8_t ever_lost;       /* the place was lost once: offsets found again
	                            are guesses */
	uint64_t left;           /* bytes of the current frame not yet consumed */
	uint64_t fed;            /* bytes given so far (the offset of the next) */
	uint64_t frame_at;       /* offset of the current frame's first byte */
	struct kfk_frame f;
	struct kfk_walk w;
	struct kfk_sum sum;
	struct kfk_stream_cb cb;
	struct kfk_stream_stats st;
};

void kfk_stream_init(struct kfk_stream *s, int request, const struct kfk_stream_cb *cb);

/*
 * A chunk begins: when the place is lost, p[0..len) (of `total` bytes
 * transferred) is checked for a frame start. Then its bytes are given with
 * kfk_stream_take(), in as many pieces as wanted (p == NULL: n bytes that
 * were not captured); the pieces give the same frames however they are cut.
 */
void kfk_stream_begin(struct kfk_stream *s, const uint8_t *p, size_t len, size_t total);
void kfk_stream_take(struct kfk_stream *s, const uint8_t *p, size_t n, uint64_t ts, uint32_t tid);

/*
 * begin + take, for one chunk: p[0..len) captured, then `missing` bytes that went by without
 * being captured. ts/tid: the chunk's time and thread.
 */
void kfk_stream_feed(struct kfk_stream *s, const uint8_t *p, size_t len, size_t missing,
                     uint64_t ts, uint32_t tid);

/* An unknown number of bytes was lost before the next chunk (GAP). */
void kfk_stream_gap(struct kfk_stream *s);

/* 1 when the stream knows where it is (on probation included). */
int kfk_stream_synced(const struct kfk_stream *s);

/* A stream that starts without its place (a connection picked up
 * mid-stream): its first chunk is checked like a chunk after a loss. */
void kfk_stream_start_unsynced(struct kfk_stream *s);

/* Bytes from here on that are passed over unread (the rest of a frame the
 * walker is done with, records of a batch after its header), or 0: what a
 * capture policy may leave out. */
uint64_t kfk_stream_skippable(const struct kfk_stream *s);

#endif
