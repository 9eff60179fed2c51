/*
 * kafka_build.h - builds Kafka frames byte-exact from the protocol schemas,
 * for the plugin's unit tests (never compiled into the plugin).
 *
 * The one idea: a test says what a client or broker would send (API,
 * version, correlation id, topics, partitions, record batches with their
 * counts, error codes) and gets the bytes, in the non-flexible or the
 * flexible encoding the version calls for. Record batches carry a real
 * 61-byte magic-2 header (count, attributes, length) and filler bytes for
 * their records: the plugin must never look past the header.
 */
#ifndef SONDE_KAFKA_BUILD_H
#define SONDE_KAFKA_BUILD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_proto.h"

struct kb {
	uint8_t *b;
	size_t n, cap;
};

static inline void kb_free(struct kb *k)
{
	free(k->b);
	memset(k, 0, sizeof(*k));
}

static inline void kb_put(struct kb *k, const void *p, size_t n)
{
	if (k->n + n > k->cap) {
		size_t cap = k->cap ? k->cap : 256;

		while (cap < k->n + n)
			cap *= 2;
		k->b = realloc(k->b, cap);
		k->cap = cap;
	}
	if (p)
		memcpy(k->b + k->n, p, n);
	else
		memset(k->b + k->n, 'x', n); /* record filler: what a payload would be */
	k->n += n;
}

static inline void kb_u8(struct kb *k, unsigned v)
{
	uint8_t b = (uint8_t)v;

	kb_put(k, &b, 1);
}

static inline void kb_i16(struct kb *k, int v)
{
	kb_u8(k, ((unsigned)v >> 8) & 255);
	kb_u8(k, (unsigned)v & 255);
}

static inline void kb_i32(struct kb *k, int64_t v)
{
	for (int s = 24; s >= 0; s -= 8)
		kb_u8(k, (unsigned)(((uint64_t)v >> s) & 255));
}

static inline void kb_i64(struct kb *k, int64_t v)
{
	for (int s = 56; s >= 0; s -= 8)
		kb_u8(k, (unsigned)(((uint64_t)v >> s) & 255));
}

static inline void kb_uvar(struct kb *k, uint32_t v)
{
	while (v >= 0x80) {
		kb_u8(k, (v & 0x7f) | 0x80);
		v >>= 7;
	}
	kb_u8(k, v);
}

/* Nullable string: compact (uvarint len+1) when flex, else int16. */
static inline void kb_str(struct kb *k, const char *s, int flex)
{
	size_t n = s ? strlen(s) : 0;

	if (flex)
		kb_uvar(k, s ? (uint32_t)n + 1 : 0);
	else
		kb_i16(k, s ? (int)n : -1);
	if (s)
		kb_put(k, s, n);
}

/* Array count (or nullable bytes length): compact when flex, else int32. */
static inline void kb_count(struct kb *k, int64_t n, int flex)
{
	if (flex)
		kb_uvar(k, n < 0 ? 0 : (uint32_t)n + 1);
	else
		kb_i32(k, n);
}

/* Empty tagged fields (flexible versions only). */
static inline void kb_tags(struct kb *k, int flex)
{
	if (flex)
		kb_uvar(k, 0);
}

/* One tagged field of `size` filler bytes. */
static inline void kb_tags_one(struct kb *k, int flex, uint32_t tag, uint32_t size)
{
	if (!flex)
		return;
	kb_uvar(k, 1);
	kb_uvar(k, tag);
	kb_uvar(k, size);
	kb_put(k, NULL, size);
}

static inline size_t kb_frame_begin(struct kb *k)
{
	size_t at = k->n;

	kb_i32(k, 0);
	return at;
}

static inline void kb_frame_end(struct kb *k, size_t at)
{
	uint32_t size = (uint32_t)(k->n - at - 4);

	for (int i = 0; i < 4; i++)
		k->b[at + i] = (uint8_t)(size >> (24 - 8 * i));
}

static inline void kb_req_header(struct kb *k, int api, int ver, int32_t corr, const char *client)
{
	int hv = kfk_request_header_version(api, ver);

	kb_i16(k, api);
	kb_i16(k, ver);
	kb_i32(k, corr);
	if (hv >= 1)
		kb_str(k, client, 0);
	if (hv >= 2)
		kb_tags(k, 1);
}

static inline void kb_resp_header(struct kb *k, int api, int ver, int32_t corr)
{
	kb_i32(k, corr);
	if (kfk_response_header_version(api, ver) >= 1)
		kb_tags(k, 1);
}

/* A magic-2 record batch: 61-byte header then body_len filler bytes. */
static inline void kb_batch(struct kb *k, int64_t base, int32_t nrec, uint32_t body_len,
                            int attr)
{
	kb_i64(k, base);                 /* baseOffset */
	kb_i32(k, 49 + body_len);        /* batchLength */
	kb_i32(k, 0);                    /* partitionLeaderEpoch */
	kb_u8(k, 2);                     /* magic */
	kb_i32(k, 0x12345678);           /* crc (not checked) */
	kb_i16(k, attr);                 /* attributes */
	kb_i32(k, nrec > 0 ? nrec - 1 : 0); /* lastOffsetDelta */
	kb_i64(k, 1700000000000LL);      /* baseTimestamp */
	kb_i64(k, 1700000000000LL);      /* maxTimestamp */
	kb_i64(k, -1);                   /* producerId */
	kb_i16(k, -1);                   /* producerEpoch */
	kb_i32(k, -1);                   /* baseSequence */
	kb_i32(k, nrec);                 /* records count */
	kb_put(k, NULL, body_len);
}

/* A legacy (magic 1) message set entry holding one message. */
static inline void kb_legacy(struct kb *k, int64_t offset, uint32_t value_len)
{
	kb_i64(k, offset);
	kb_i32(k, 4 + 1 + 1 + 8 + 4 + 4 + value_len); /* message size */
	kb_i32(k, 0);                     /* crc */
	kb_u8(k, 1);                      /* magic */
	kb_u8(k, 0);                      /* attributes */
	kb_i64(k, 1700000000000LL);       /* timestamp */
	kb_i32(k, -1);                    /* key: null */
	kb_i32(k, value_len);
	kb_put(k, NULL, value_len);
}

#define KB_MAX_BATCHES 4

struct kb_part {
	int32_t index;
	int16_t err;
	int nbatches;
	int32_t recs[KB_MAX_BATCHES];  /* records per batch */
	int attr[KB_MAX_BATCHES];      /* batch attributes (0x20: control) */
	uint32_t body;                 /* filler bytes per batch (default 10 per record) */
	uint32_t partial_tail;         /* bytes of a cut batch appended */
	int legacy;                    /* magic-1 message set of nbatches messages */
	int null_records;
};

struct kb_topic {
	const char *name;
	int nparts;
	struct kb_part parts[4];
};

static inline void kb_records(struct kb *k, const struct kb_part *p, int flex)
{
	struct kb r = { 0 };

	if (p->null_records) {
		kb_count(k, -1, flex);
		return;
	}
	for (int i = 0; i < p->nbatches; i++) {
		if (p->legacy)
			kb_legacy(&r, i, 5);
		else
			kb_batch(&r, 100 * i, p->recs[i], p->body ? p->body : 10u * (uint32_t)p->recs[i],
			         p->attr[i]);
	}
	if (p->partial_tail) {
		struct kb t = { 0 };

		kb_batch(&t, 999, 3, 100, 0);
		kb_put(&r, t.b, p->partial_tail < t.n ? p->partial_tail : t.n);
		kb_free(&t);
	}
	kb_count(k, (int64_t)r.n, flex);
	kb_put(k, r.b, r.n);
	kb_free(&r);
}

static inline void kb_topic_key(struct kb *k, const struct kb_topic *t, int ver, int id_from, int flex)
{
	if (ver >= id_from) {
		kb_i64(k, 0x0102030405060708LL); /* topic id (uuid) */
		kb_i64(k, 0x0807060504030201LL);
	} else {
		kb_str(k, t->name, flex);
	}
}

static inline void kb_produce_req(struct kb *k, int ver, int32_t corr, const char *client,
                                  int acks, const struct kb_topic *t, int nt)
{
	int flex = kfk_flexible(KFK_API_PRODUCE, ver);
	size_t at = kb_frame_begin(k);

	kb_req_header(k, KFK_API_PRODUCE, ver, corr, client);
	if (ver >= 3)
		kb_str(k, NULL, flex);       /* transactional_id */
	kb_i16(k, acks);
	kb_i32(k, 30000);
	kb_count(k, nt, flex);
	for (int i = 0; i < nt; i++) {
		kb_topic_key(k, &t[i], ver, 13, flex);
		kb_count(k, t[i].nparts, flex);
		for (int j = 0; j < t[i].nparts; j++) {
			kb_i32(k, t[i].parts[j].index);
			kb_records(k, &t[i].parts[j], flex);
			kb_tags(k, flex);
		}
		kb_tags(k, flex);
	}
	kb_tags(k, flex);
	kb_frame_end(k, at);
}

static inline void kb_produce_resp(struct kb *k, int ver, int32_t corr, const struct kb_topic *t,
                                   int nt)
{
	int flex = kfk_flexible(KFK_API_PRODUCE, ver);
	size_t at = kb_frame_begin(k);

	kb_resp_header(k, KFK_API_PRODUCE, ver, corr);
	kb_count(k, nt, flex);
	for (int i = 0; i < nt; i++) {
		kb_topic_key(k, &t[i], ver, 13, flex);
		kb_count(k, t[i].nparts, flex);
		for (int j = 0; j < t[i].nparts; j++) {
			kb_i32(k, t[i].parts[j].index);
			kb_i16(k, t[i].parts[j].err);
			kb_i64(k, 42);                /* base_offset */
			if (ver >= 2)
				kb_i64(k, -1);        /* log_append_time_ms */
			if (ver >= 5)
				kb_i64(k, 0);         /* log_start_offset */
			if (ver >= 8) {
				kb_count(k, t[i].parts[j].err ? 1 : 0, flex); /* record_errors */
				if (t[i].parts[j].err) {
					kb_i32(k, 0);
					kb_str(k, "bad record", flex);
					kb_tags(k, flex);
				}
				kb_str(k, t[i].parts[j].err ? "it failed" : NULL, flex);
			}
			if (ver >= 10 && t[i].parts[j].err)
				kb_tags_one(k, flex, 0, 8); /* current_leader */
			else
				kb_tags(k, flex);
		}
		kb_tags(k, flex);
	}
	if (ver >= 1)
		kb_i32(k, 0);                         /* throttle_time_ms */
	kb_tags(k, flex);
	kb_frame_end(k, at);
}

static inline void kb_fetch_req(struct kb *k, int ver, int32_t corr, const char *client,
                                const char *topic, int nparts)
{
	int flex = kfk_flexible(KFK_API_FETCH, ver);
	size_t at = kb_frame_begin(k);

	kb_req_header(k, KFK_API_FETCH, ver, corr, client);
	if (ver < 15)
		kb_i32(k, -1);                        /* replica_id */
	kb_i32(k, 500);                               /* max_wait_ms */
	kb_i32(k, 1);                                 /* min_bytes */
	if (ver >= 3)
		kb_i32(k, 52428800);                  /* max_bytes */
	if (ver >= 4)
		kb_u8(k, 0);                          /* isolation_level */
	if (ver >= 7) {
		kb_i32(k, 0);                         /* session_id */
		kb_i32(k, -1);                        /* session_epoch */
	}
	kb_count(k, 1, flex);
	if (ver >= 13) {
		kb_i64(k, 1);
		kb_i64(k, 2);
	} else {
		kb_str(k, topic, flex);
	}
	kb_count(k, nparts, flex);
	for (int j = 0; j < nparts; j++) {
		kb_i32(k, j);
		if (ver >= 9)
			kb_i32(k, -1);                /* current_leader_epoch */
		kb_i64(k, 0);                         /* fetch_offset */
		if (ver >= 12)
			kb_i32(k, -1);                /* last_fetched_epoch */
		if (ver >= 5)
			kb_i64(k, -1);                /* log_start_offset */
		kb_i32(k, 1048576);                   /* partition_max_bytes */
		kb_tags(k, flex);
	}
	kb_tags(k, flex);
	if (ver >= 7)
		kb_count(k, 0, flex);                 /* forgotten_topics_data */
	if (ver >= 11)
		kb_str(k, "", flex);                  /* rack_id */
	kb_tags(k, flex);
	kb_frame_end(k, at);
}

static inline void kb_fetch_resp(struct kb *k, int ver, int32_t corr, int top_err,
                                 const struct kb_topic *t, int nt)
{
	int flex = kfk_flexible(KFK_API_FETCH, ver);
	size_t at = kb_frame_begin(k);

	kb_resp_header(k, KFK_API_FETCH, ver, corr);
	if (ver >= 1)
		kb_i32(k, 0);                         /* throttle_time_ms */
	if (ver >= 7) {
		kb_i16(k, top_err);
		kb_i32(k, 7);                         /* session_id */
	}
	kb_count(k, nt, flex);
	for (int i = 0; i < nt; i++) {
		kb_topic_key(k, &t[i], ver, 13, flex);
		kb_count(k, t[i].nparts, flex);
		for (int j = 0; j < t[i].nparts; j++) {
			const struct kb_part *p = &t[i].parts[j];

			kb_i32(k, p->index);
			kb_i16(k, p->err);
			kb_i64(k, 1000);              /* high_watermark */
			if (ver >= 4)
				kb_i64(k, 1000);      /* last_stable_offset */
			if (ver >= 5)
				kb_i64(k, 0);         /* log_start_offset */
			if (ver >= 4) {               /* aborted_transactions */
				kb_count(k, j == 1 ? 1 : -1, flex);
				if (j == 1) {
					kb_i64(k, 77);
					kb_i64(k, 5);
					kb_tags(k, flex);
				}
			}
			if (ver >= 11)
				kb_i32(k, -1);        /* preferred_read_replica */
			kb_records(k, p, flex);
			if (ver >= 12 && p->err)
				kb_tags_one(k, flex, 1, 8); /* current_leader */
			else
				kb_tags(k, flex);
		}
		kb_tags(k, flex);
	}
	kb_tags(k, flex);
	kb_frame_end(k, at);
}

/* A request of an API whose body the plugin does not read. */
static inline void kb_other_req(struct kb *k, int api, int ver, int32_t corr, const char *client,
                                size_t body)
{
	size_t at = kb_frame_begin(k);

	kb_req_header(k, api, ver, corr, client);
	kb_put(k, NULL, body);
	kb_frame_end(k, at);
}

static inline void kb_other_resp(struct kb *k, int api, int ver, int32_t corr, size_t body)
{
	size_t at = kb_frame_begin(k);

	kb_resp_header(k, api, ver, corr);
	kb_put(k, NULL, body);
	kb_frame_end(k, at);
}

#endif
