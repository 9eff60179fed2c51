/*
 * kafka_walk.h - an incremental walker over the body of one Kafka frame,
 * driven by a small field program per message (header rest, Produce
 * request, Produce response, Fetch response).
 *
 * The one idea: a Kafka message is a fixed sequence of typed fields whose
 * presence depends only on the API version, so a message can be described
 * as a list of ops (int16, string, array ... end-of-element, records,
 * tagged fields) with a version range each, and one interpreter walks any
 * of them. The interpreter keeps only a program counter, a loop stack
 * three deep, a few bytes of the field being read and a byte count to
 * skip, so bytes may arrive cut anywhere, and bytes that were never
 * captured (TRUNCATED chunks, sendfile) are walked by count: a field whose
 * value was not seen becomes "unknown", and only a length or count that
 * was not seen stops the walk (the frame itself is then skipped by count).
 *
 * What the walk learns goes into struct kfk_sum: the client id, acks, the
 * destinations (one topic / one partition, or several, or unknown), record
 * counts from record-batch headers (never from the records themselves) and
 * error codes.
 */
#ifndef SONDE_KAFKA_WALK_H
#define SONDE_KAFKA_WALK_H

#include <stddef.h>
#include <stdint.h>

#include "kafka_proto.h"

/* Which body program to run after the header. */
enum kfk_body {
	KFK_BODY_NONE = 0,      /* header only: the rest is skipped */
	KFK_BODY_PRODUCE_REQ,
	KFK_BODY_PRODUCE_RESP,
	KFK_BODY_FETCH_RESP,
};

/* Distinct values seen: none, exactly one, or several. */
enum { KFK_N_NONE = 0, KFK_N_ONE = 1, KFK_N_MANY = 2 };

/* Bytes of a record batch header (magic 2) up to and including the
 * records count. */
#define KFK_BATCH_HDR 61

/* What one frame told. Flags are 1 when the thing is known to be so. */
struct kfk_sum {
	/* request header */
	uint8_t client_id_state;   /* 0 absent/unknown, 1 null, 2 captured */
	uint16_t client_id_len;
	char client_id[KFK_CLIENT_ID_MAX + 1];

	/* Produce request */
	uint8_t acks_known;
	int16_t acks;

	/* Destinations: the topic-partitions the frame is about (Produce:
	 * every partition of the request or response; Fetch response: the
	 * partitions that returned records or an error). */
	uint32_t n_parts;          /* partitions counted */
	uint8_t topic_n;           /* KFK_N_* over distinct topic names */
	uint8_t topic_unknown;     /* a partition's topic was not readable */
	uint16_t topic_len;
	char topic[KFK_TOPIC_MAX + 1]; /* the one topic when topic_n == ONE */
	uint8_t part_unknown;      /* a partition index was not readable */
	int32_t part;              /* the first partition index */

	/* Records, from record-batch headers. */
	uint64_t records;          /* records of complete non-control batches */
	uint32_t batches;          /* complete batches counted */
	uint8_t records_unknown;   /* a batch header or a legacy message set was not counted */
	uint8_t has_record_bytes;  /* some partition carried non-empty records */

	/* Errors. */
	int16_t error;             /* first non-zero error code (top level first) */
	uint8_t error_unknown;     /* an error code was not readable */

	/* The walk. */
	uint8_t hdr_done;          /* the header was walked */
	uint8_t complete;          /* the whole body program ran to its end */
	uint8_t failed;            /* a length or count was lost or impossible */
	uint8_t trailing;          /* bytes left in the frame after the program */
};

struct kfk_op;

#define KFK_WALK_DEPTH 4

struct kfk_walk {
	const struct kfk_op *prog;
	const struct kfk_op *next_prog; /* body program after the header */
	uint8_t body;              /* enum kfk_body of next_prog */
	uint8_t ver;
	uint8_t flex;              /* body uses the flexible encoding */
	uint8_t done, failed;
	uint8_t hdr_told;          /* feed returned once at the end of the header */
	uint16_t pc;
	uint8_t depth;
	struct {
		uint16_t body_pc;
		uint32_t left;     /* elements still to walk, this one included */
		uint64_t at;       /* `consumed` when this element began */
	} stk[KFK_WALK_DEPTH];

	/* The field being read. */
	uint8_t sub;               /* step within the current op */
	uint8_t need, have, miss;  /* fixed-size read into buf */
	uint8_t vbytes;            /* varint bytes read */
	uint32_t vval;             /* varint value so far */
	uint8_t buf[KFK_BATCH_HDR];
	uint64_t skip;             /* bytes to pass over before the next step */
	uint32_t count;            /* tags left, string length ... */
	uint64_t rec_left;         /* records bytes not yet walked */

	uint64_t left;             /* bytes of the frame not yet walked */
	uint64_t consumed;         /* bytes walked (seen or not) */

	/* The current topic and partition, committed at partition end. */
	uint8_t topic_ok;          /* name captured and legal */
	uint16_t topic_len;
	char topic[KFK_TOPIC_MAX + 1];
	uint8_t p_index_ok, p_err_ok, p_rec_unknown, p_bytes;
	int32_t p_index;
	int16_t p_err;
	uint64_t p_records;

	struct kfk_sum *sum;
};

/*
 * Start walking a frame's body after its fixed header bytes (request:
 * api key, version, correlation id; response: correlation id).
 * hdr_version: request 0/1/2, response 0/1. left: bytes of the frame after
 * those fixed bytes. sum is cleared and filled as the walk goes.
 */
void kfk_walk_init(struct kfk_walk *w, int request, int hdr_version, enum kfk_body body,
                   int api_version, int flexible, uint64_t left, struct kfk_sum *sum);

/*
 * Walk n bytes: p points to them, or p == NULL when they were not captured.
 * Returns the bytes taken (<= n); fewer than n when the walk is finished
 * (done or failed: the caller skips the rest of the frame), and once when
 * the header has just been walked (sum->hdr_done), so that the caller can
 * judge it before the body: call again for the rest.
 */
size_t kfk_walk_feed(struct kfk_walk *w, const uint8_t *p, size_t n);

/* The frame ended (all its bytes were fed): records whether the program
 * ran to its end. */
void kfk_walk_finish(struct kfk_walk *w);

/* The body program for (api_key, api_version), KFK_BODY_NONE when the
 * plugin does not read that message. */
enum kfk_body kfk_body_for(int request, int api_key, int api_version);

#endif
