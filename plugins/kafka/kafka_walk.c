/*
 * kafka_walk.c - the field-program interpreter of kafka_walk.h.
 *
 * The one idea: each op is (code, first version, last version, argument);
 * an op outside the frame's version range is passed over (an array op
 * together with its elements), and every op that reads bytes keeps its
 * progress in `sub`, so kfk_walk_feed() can return after any byte and
 * resume with the next call. p == NULL means "these bytes exist but were
 * not captured": fixed-size fields become unknown, skipped spans shrink,
 * and a length, count or varint that was not seen fails the walk.
 *
 * The programs below follow the message schemas of Apache Kafka
 * (ProduceRequest.json v0-13, ProduceResponse.json v0-13,
 * FetchResponse.json v0-17): in flexible versions strings, bytes and
 * arrays carry unsigned-varint lengths plus one, and every struct ends
 * with its tagged fields.
 */
#include "kafka_walk.h"

#include <string.h>

enum kfk_opcode {
	OP_END = 0,   /* end of the program */
	OP_SKIP,      /* arg bytes, not read */
	OP_STR,       /* nullable string, not read */
	OP_CLIENT_ID, /* request header client id: nullable int16 string, kept */
	OP_HTAGS,     /* header tagged fields */
	OP_TAGS,      /* a struct's tagged fields (flexible versions only) */
	OP_ACKS,      /* int16 */
	OP_TOPERR,    /* int16 top-level error code */
	OP_TOPIC,     /* string: the topic name */
	OP_TOPIC_ID,  /* uuid in place of the topic name */
	OP_PART,      /* int32 partition index: a partition element begins */
	OP_ERR,       /* int16 partition error code */
	OP_RECORDS,   /* nullable bytes holding record batches */
	OP_ARRAY,     /* count, then elements up to the matching OP_NEXT; arg 1: nullable */
	OP_NEXT,      /* end of one array element */
	OP_PART_END,  /* a partition element is complete */
};

struct kfk_op {
	uint8_t code, vmin, vmax, arg;
};

#define ANY 255
#define O(c) { OP_##c, 0, ANY, 0 }
#define OV(c, lo) { OP_##c, lo, ANY, 0 }
#define ORANGE(c, lo, hi) { OP_##c, lo, hi, 0 }
#define SKIP(n, lo) { OP_SKIP, lo, ANY, n }
#define NARRAY(lo) { OP_ARRAY, lo, ANY, 1 }

static const struct kfk_op hdr_req0[] = { O(END) };
static const struct kfk_op hdr_req1[] = { O(CLIENT_ID), O(END) };
static const struct kfk_op hdr_req2[] = { O(CLIENT_ID), O(HTAGS), O(END) };
static const struct kfk_op hdr_resp0[] = { O(END) };
static const struct kfk_op hdr_resp1[] = { O(HTAGS), O(END) };

static const struct kfk_op produce_req[] = {
	OV(STR, 3),                       /* transactional_id */
	O(ACKS),
	SKIP(4, 0),                       /* timeout_ms */
	O(ARRAY),                         /* topic_data */
	ORANGE(TOPIC, 0, 12), OV(TOPIC_ID, 13),
	O(ARRAY),                         /* partition_data */
	O(PART), O(RECORDS), O(TAGS), O(PART_END),
	O(NEXT),
	O(TAGS),
	O(NEXT),
	O(TAGS),
	O(END),
};

static const struct kfk_op produce_resp[] = {
	O(ARRAY),                         /* responses */
	ORANGE(TOPIC, 0, 12), OV(TOPIC_ID, 13),
	O(ARRAY),                         /* partition_responses */
	O(PART), O(ERR),
	SKIP(8, 0),                       /* base_offset */
	SKIP(8, 2),                       /* log_append_time_ms */
	SKIP(8, 5),                       /* log_start_offset */
	OV(ARRAY, 8),                     /* record_errors */
	SKIP(4, 8), OV(STR, 8), OV(TAGS, 8),
	OV(NEXT, 8),
	OV(STR, 8),                       /* error_message */
	O(TAGS), O(PART_END),
	O(NEXT),
	O(TAGS),
	O(NEXT),
	SKIP(4, 1),                       /* throttle_time_ms */
	O(TAGS),
	O(END),
};

static const struct kfk_op fetch_resp[] = {
	SKIP(4, 1),                       /* throttle_time_ms */
	OV(TOPERR, 7),                    /* error_code */
	SKIP(4, 7),                       /* session_id */
	O(ARRAY),                         /* responses */
	ORANGE(TOPIC, 0, 12), OV(TOPIC_ID, 13),
	O(ARRAY),                         /* partitions */
	O(PART), O(ERR),
	SKIP(8, 0),                       /* high_watermark */
	SKIP(8, 4),                       /* last_stable_offset */
	SKIP(8, 5),                       /* log_start_offset */
	NARRAY(4),                        /* aborted_transactions */
	SKIP(16, 4), OV(TAGS, 4),
	OV(NEXT, 4),
	SKIP(4, 11),                      /* preferred_read_replica */
	O(RECORDS),
	O(TAGS), O(PART_END),
	O(NEXT),
	O(TAGS),
	O(NEXT),
	O(TAGS),
	O(END),
};

enum kfk_body kfk_body_for(int request, int api_key, int api_version)
{
	if (api_key == KFK_API_PRODUCE && api_version >= 0 && api_version <= 13)
		return request ? KFK_BODY_PRODUCE_REQ : KFK_BODY_PRODUCE_RESP;
	if (api_key == KFK_API_FETCH && !request && api_version >= 0 && api_version <= 17)
		return KFK_BODY_FETCH_RESP;
	return KFK_BODY_NONE;
}

static const struct kfk_op *body_prog(enum kfk_body b)
{
	switch (b) {
	case KFK_BODY_PRODUCE_REQ:
		return produce_req;
	case KFK_BODY_PRODUCE_RESP:
		return produce_resp;
	case KFK_BODY_FETCH_RESP:
		return fetch_resp;
	default:
		return NULL;
	}
}

void kfk_walk_init(struct kfk_walk *w, int request, int hdr_version, enum kfk_body body,
                   int api_version, int flexible, uint64_t left, struct kfk_sum *sum)
{
	memset(w, 0, sizeof(*w));
	memset(sum, 0, sizeof(*sum));
	if (request)
		w->prog = hdr_version >= 2 ? hdr_req2 : hdr_version == 1 ? hdr_req1 : hdr_req0;
	else
		w->prog = hdr_version >= 1 ? hdr_resp1 : hdr_resp0;
	w->next_prog = body_prog(body);
	w->body = (uint8_t)body;
	w->ver = api_version < 0 ? 0 : api_version > 254 ? 254 : (uint8_t)api_version;
	w->flex = flexible ? 1 : 0;
	w->left = left;
	w->sum = sum;
}

/* ---- reading primitives ------------------------------------------------- */

static uint16_t be16(const uint8_t *b)
{
	return (uint16_t)((b[0] << 8) | b[1]);
}

static uint32_t be32(const uint8_t *b)
{
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

static void fail(struct kfk_walk *w)
{
	w->failed = 1;
	w->sum->failed = 1;
}

/* Start a fixed-size read of `need` bytes into buf. */
static void fixed_start(struct kfk_walk *w, uint8_t need)
{
	w->need = need;
	w->have = 0;
	w->miss = 0;
}

/* Continue it; returns bytes taken. Complete when have == need. */
static size_t fixed_take(struct kfk_walk *w, const uint8_t *q, size_t avail)
{
	size_t k = (size_t)(w->need - w->have);

	if (k > avail)
		k = avail;
	if (q)
		memcpy(w->buf + w->have, q, k);
	else
		w->miss = 1;
	w->have = (uint8_t)(w->have + k);
	return k;
}

static void varint_start(struct kfk_walk *w)
{
	w->vval = 0;
	w->vbytes = 0;
}

/* Continue an unsigned varint (at most 32 bits). Returns bytes taken;
 * *st: 0 incomplete, 1 complete (value in vval), -1 lost or too long. */
static size_t varint_take(struct kfk_walk *w, const uint8_t *q, size_t avail, int *st)
{
	size_t i = 0;

	*st = 0;
	if (!q) {
		*st = -1;
		return 0;
	}
	while (i < avail) {
		uint8_t b = q[i++];

		if (w->vbytes == 4 && (b & 0xf0)) {
			*st = -1;
			return i;
		}
		w->vval |= (uint32_t)(b & 0x7f) << (7 * w->vbytes);
		w->vbytes++;
		if (!(b & 0x80)) {
			*st = 1;
			return i;
		}
	}
	return i;
}

/*
 * A length or count prefix: compact (uvarint N+1, 0 = null) in flexible
 * encodings, else a big-endian int16 (strings) or int32. Call with
 * sub_phase == 0 the first time. *st: 0 need more, 1 done (*len: -1 for
 * null), -1 lost.
 */
static size_t len_take(struct kfk_walk *w, const uint8_t *q, size_t avail, int compact,
                       int width, int64_t *len, int *st)
{
	size_t k;

	if (compact) {
		k = varint_take(w, q, avail, st);
		if (*st == 1)
			*len = (int64_t)w->vval - 1;
		return k;
	}
	k = fixed_take(w, q, avail);
	*st = 0;
	if (w->have < w->need)
		return k;
	if (w->miss) {
		*st = -1;
		return k;
	}
	*st = 1;
	*len = width == 2 ? (int64_t)(int16_t)be16(w->buf) : (int64_t)(int32_t)be32(w->buf);
	if (*len < -1)
		*st = -1;
	return k;
}

static void len_start(struct kfk_walk *w, int compact, int width)
{
	if (compact)
		varint_start(w);
	else
		fixed_start(w, (uint8_t)width);
}

/* ---- program control -------------------------------------------------------- */

static int op_applies(const struct kfk_walk *w, const struct kfk_op *op)
{
	if (w->ver < op->vmin || (op->vmax != ANY && w->ver > op->vmax))
		return 0;
	if (op->code == OP_TAGS && !w->flex)
		return 0;
	return 1;
}

/* pc of the op after the OP_NEXT matching the OP_ARRAY at pc. */
static uint16_t after_array(const struct kfk_op *prog, uint16_t pc)
{
	int depth = 0;

	for (uint16_t i = pc; prog[i].code != OP_END; i++) {
		if (prog[i].code == OP_ARRAY)
			depth++;
		else if (prog[i].code == OP_NEXT && --depth == 0)
			return (uint16_t)(i + 1);
	}
	return pc; /* unreachable with the programs above */
}

static void next_op(struct kfk_walk *w)
{
	w->pc++;
	w->sub = 0;
}

static void pass_over(struct kfk_walk *w)
{
	if (w->prog[w->pc].code == OP_ARRAY) {
		w->pc = after_array(w->prog, w->pc);
		w->sub = 0;
		return;
	}
	next_op(w);
}

/* Set bytes to skip; a length beyond the frame fails the walk. */
static int set_skip(struct kfk_walk *w, uint64_t n)
{
	if (n > w->left) {
		fail(w);
		return 0;
	}
	w->skip = n;
	return 1;
}

/* ---- partitions and destinations ------------------------------------------------ */

static void part_begin(struct kfk_walk *w)
{
	w->p_index_ok = 0;
	w->p_err_ok = 0;
	w->p_rec_unknown = 0;
	w->p_bytes = 0;
	w->p_index = 0;
	w->p_err = 0;
	w->p_records = 0;
}

static void add_dest(struct kfk_walk *w)
{
	struct kfk_sum *s = w->sum;

	s->n_parts++;
	if (!w->p_index_ok)
		s->part_unknown = 1;
	else if (s->n_parts == 1)
		s->part = w->p_index;
	if (!w->topic_ok) {
		s->topic_unknown = 1;
		return;
	}
	if (s->topic_n == KFK_N_NONE) {
		memcpy(s->topic, w->topic, w->topic_len);
		s->topic[w->topic_len] = 0;
		s->topic_len = w->topic_len;
		s->topic_n = KFK_N_ONE;
	} else if (s->topic_n == KFK_N_ONE &&
	           (s->topic_len != w->topic_len || memcmp(s->topic, w->topic, w->topic_len))) {
		s->topic_n = KFK_N_MANY;
	}
}

static void part_end(struct kfk_walk *w)
{
	struct kfk_sum *s = w->sum;
	int relevant = 1;

	if (w->body != KFK_BODY_PRODUCE_REQ) {
		if (!w->p_err_ok)
			s->error_unknown = 1;
		else if (w->p_err && !s->error)
			s->error = w->p_err;
	}
	if (w->p_bytes)
		s->has_record_bytes = 1;
	if (w->body == KFK_BODY_FETCH_RESP)
		relevant = w->p_records > 0 || w->p_rec_unknown || !w->p_err_ok || w->p_err;
	if (!relevant)
		return;
	add_dest(w);
	s->records += w->p_records;
	if (w->p_rec_unknown)
		s->records_unknown = 1;
}

/* ---- ops ------------------------------------------------------------------------ */

/* int16/int32 fields whose value the walk keeps. */
static int op_int(struct kfk_walk *w, const struct kfk_op *op, const uint8_t *q, size_t avail,
                  size_t *took)
{
	uint8_t size = op->code == OP_PART ? 4 : 2;
	int known;

	if (w->sub == 0) {
		if (op->code == OP_PART)
			part_begin(w);
		fixed_start(w, size);
		w->sub = 1;
	}
	if (!avail)
		return 0;
	*took = fixed_take(w, q, avail);
	if (w->have < w->need)
		return 1;
	known = !w->miss;
	switch (op->code) {
	case OP_ACKS:
		w->sum->acks_known = (uint8_t)known;
		w->sum->acks = (int16_t)be16(w->buf);
		break;
	case OP_TOPERR:
		if (!known)
			w->sum->error_unknown = 1;
		else if (be16(w->buf) && !w->sum->error)
			w->sum->error = (int16_t)be16(w->buf);
		break;
	case OP_PART:
		w->p_index_ok = (uint8_t)known;
		w->p_index = (int32_t)be32(w->buf);
		if (known && w->p_index < 0)
			w->p_index_ok = 0;
		break;
	case OP_ERR:
		w->p_err_ok = (uint8_t)known;
		w->p_err = (int16_t)be16(w->buf);
		break;
	}
	next_op(w);
	return 1;
}

static int client_id_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* The string has been read whole (or passed over): judge what was kept. */
static void str_done(struct kfk_walk *w, const struct kfk_op *op)
{
	struct kfk_sum *s = w->sum;

	if (op->code == OP_CLIENT_ID && s->client_id_state == 2) {
		s->client_id[s->client_id_len] = 0;
		if (!client_id_ok(s->client_id, s->client_id_len))
			s->client_id_state = 3;
	}
	if (op->code == OP_TOPIC && w->topic_ok)
		w->topic_ok = (uint8_t)kfk_topic_legal(w->topic, w->topic_len);
	next_op(w);
}

/* Strings: skipped (OP_STR), kept as the client id, or kept as the topic. */
static int op_str(struct kfk_walk *w, const struct kfk_op *op, const uint8_t *q, size_t avail,
                  size_t *took)
{
	int compact = w->flex && op->code != OP_CLIENT_ID;
	int64_t len = 0;
	int st;

	if (w->sub == 0) {
		len_start(w, compact, 2);
		if (op->code == OP_TOPIC)
			w->topic_ok = 0;
		w->sub = 1;
	}
	if (w->sub == 1) {
		if (!avail)
			return 0;
		*took = len_take(w, q, avail, compact, 2, &len, &st);
		if (st < 0 || (st == 1 && len > (int64_t)w->left - (int64_t)*took)) {
			fail(w);
			return 1;
		}
		if (st == 0)
			return 1;
		if (len < 0) {
			if (op->code == OP_CLIENT_ID)
				w->sum->client_id_state = 1;
			next_op(w);
			return 1;
		}
		w->count = (uint32_t)len;
		if (op->code == OP_CLIENT_ID) {
			w->sum->client_id_state = len <= KFK_CLIENT_ID_MAX ? 2 : 0;
			w->sum->client_id_len = 0;
		} else if (op->code == OP_TOPIC) {
			w->topic_ok = len <= KFK_TOPIC_MAX;
			w->topic_len = 0;
		}
		w->sub = 2;
		return 1;
	}
	if (w->count == 0) {
		str_done(w, op);
		return 1;
	}
	if (!avail)
		return 0;
	{
		size_t k = avail < w->count ? avail : w->count;

		if (op->code == OP_CLIENT_ID && w->sum->client_id_state == 2) {
			if (q) {
				memcpy(w->sum->client_id + w->sum->client_id_len, q, k);
				w->sum->client_id_len = (uint16_t)(w->sum->client_id_len + k);
			} else {
				w->sum->client_id_state = 0;
				w->sum->client_id_len = 0;
			}
		} else if (op->code == OP_TOPIC && w->topic_ok) {
			if (q) {
				memcpy(w->topic + w->topic_len, q, k);
				w->topic_len = (uint16_t)(w->topic_len + k);
			} else {
				w->topic_ok = 0;
			}
		}
		w->count -= (uint32_t)k;
		*took = k;
	}
	if (w->count == 0)
		str_done(w, op);
	return 1;
}

/* One record-batch (or legacy message set) entry header has been read. */
static void batch_header(struct kfk_walk *w, uint64_t entry_left)
{
	uint8_t got = w->have;
	int64_t len = (int32_t)be32(w->buf + 8);
	uint64_t entry;

	if (w->miss || len < 0) {
		w->p_rec_unknown = 1;
		w->skip = w->rec_left;
		w->rec_left = 0;
		return;
	}
	entry = 12 + (uint64_t)len;
	if (entry > entry_left) { /* a partial trailing batch: nobody gets it */
		w->skip = w->rec_left;
		w->rec_left = 0;
		return;
	}
	if (entry < got || got < 17 || w->buf[16] != 2 || entry < KFK_BATCH_HDR) {
		/* legacy message set (magic 0/1, maybe compressed), or nonsense */
		w->p_rec_unknown = 1;
		w->skip = w->rec_left;
		w->rec_left = 0;
		return;
	}
	{
		int32_t n = (int32_t)be32(w->buf + 57);
		uint16_t attr = be16(w->buf + 21);

		if (n < 0)
			w->p_rec_unknown = 1;
		else if (!(attr & 0x20)) /* control batches carry no messages */
			w->p_records += (uint64_t)n;
		if (!(attr & 0x20))
			w->sum->batches++;
	}
	w->skip = entry - got;
	w->rec_left -= entry - got;
}

static int op_records(struct kfk_walk *w, const uint8_t *q, size_t avail, size_t *took)
{
	if (w->sub == 0) {
		len_start(w, w->flex, 4);
		w->sub = 1;
	}
	if (w->sub == 1) {
		int64_t len = 0;
		int st;

		if (!avail)
			return 0;
		*took = len_take(w, q, avail, w->flex, 4, &len, &st);
		if (st < 0 || (st == 1 && len > (int64_t)w->left - (int64_t)*took)) {
			fail(w);
			return 1;
		}
		if (st == 0)
			return 1;
		if (len <= 0) {
			next_op(w);
			return 1;
		}
		w->p_bytes = 1;
		w->rec_left = (uint64_t)len;
		w->sub = 2;
		return 1;
	}
	if (w->sub == 2) { /* an entry begins */
		if (w->rec_left == 0) {
			next_op(w);
			return 1;
		}
		if (w->rec_left < 12) { /* partial trailing entry */
			w->skip = w->rec_left;
			w->rec_left = 0;
			return 1;
		}
		fixed_start(w, (uint8_t)(w->rec_left < KFK_BATCH_HDR ? w->rec_left : KFK_BATCH_HDR));
		w->sub = 3;
	}
	if (!avail)
		return 0;
	*took = fixed_take(w, q, avail);
	if (w->have == w->need) {
		uint64_t entry_left = w->rec_left;

		w->rec_left -= w->have;
		batch_header(w, entry_left);
		w->sub = 2;
	}
	return 1;
}

static int op_array(struct kfk_walk *w, const struct kfk_op *op, const uint8_t *q,
                    size_t avail, size_t *took)
{
	int64_t n = 0;
	int st;

	if (w->sub == 0) {
		len_start(w, w->flex, 4);
		w->sub = 1;
	}
	if (!avail)
		return 0;
	*took = len_take(w, q, avail, w->flex, 4, &n, &st);
	if (st < 0 || (st == 1 && n < 0 && !op->arg) ||
	    (st == 1 && n > (int64_t)w->left - (int64_t)*took)) {
		fail(w);
		return 1;
	}
	if (st == 0)
		return 1;
	if (n <= 0) {
		w->pc = after_array(w->prog, w->pc);
		w->sub = 0;
		return 1;
	}
	if (w->depth == KFK_WALK_DEPTH) {
		fail(w);
		return 1;
	}
	w->stk[w->depth].body_pc = (uint16_t)(w->pc + 1);
	w->stk[w->depth].left = (uint32_t)n;
	w->stk[w->depth].at = w->consumed + *took;
	w->depth++;
	next_op(w);
	return 1;
}

static int op_next(struct kfk_walk *w)
{
	if (w->depth == 0 || w->stk[w->depth - 1].at == w->consumed) {
		fail(w); /* an element that took no byte: the count cannot be right */
		return 1;
	}
	if (--w->stk[w->depth - 1].left) {
		w->pc = w->stk[w->depth - 1].body_pc;
		w->stk[w->depth - 1].at = w->consumed;
		w->sub = 0;
		return 1;
	}
	w->depth--;
	next_op(w);
	return 1;
}

static int op_tags(struct kfk_walk *w, const uint8_t *q, size_t avail, size_t *took)
{
	int st;

	if (w->sub == 0) {
		varint_start(w);
		w->sub = 1;
	}
	if (!avail)
		return 0;
	*took = varint_take(w, q, avail, &st);
	if (st < 0) {
		fail(w);
		return 1;
	}
	if (st == 0)
		return 1;
	switch (w->sub) {
	case 1: /* number of tagged fields */
		if (w->vval > w->left - *took) {
			fail(w);
			return 1;
		}
		w->count = w->vval;
		if (!w->count) {
			next_op(w);
			return 1;
		}
		w->sub = 2;
		break;
	case 2: /* tag */
		w->sub = 3;
		break;
	default: /* size, then the data is skipped */
		if (w->vval > w->left - *took) {
			fail(w);
			return 1;
		}
		w->skip = w->vval;
		if (--w->count == 0) {
			next_op(w);
			return 1;
		}
		w->sub = 2;
		break;
	}
	varint_start(w);
	return 1;
}

/* Run the current op as far as the bytes allow. Returns 0 when it needs
 * bytes and none are left, 1 when it made progress; *took: bytes used. */
static int step(struct kfk_walk *w, const uint8_t *q, size_t avail, size_t *took)
{
	const struct kfk_op *op = &w->prog[w->pc];

	*took = 0;
	if (w->sub == 0 && op->code != OP_END && !op_applies(w, op)) {
		pass_over(w);
		return 1;
	}
	switch (op->code) {
	case OP_END:
		if (w->prog == w->next_prog) {
			w->sum->complete = 1;
			w->done = 1;
		} else {
			w->sum->hdr_done = 1;
			if (!w->next_prog) {
				w->done = 1;
			} else {
				w->prog = w->next_prog;
				w->pc = 0;
				w->sub = 0;
			}
		}
		return 1;
	case OP_SKIP:
		set_skip(w, op->arg);
		next_op(w);
		return 1;
	case OP_TOPIC_ID:
		w->topic_ok = 0;
		set_skip(w, 16);
		next_op(w);
		return 1;
	case OP_STR:
	case OP_CLIENT_ID:
	case OP_TOPIC:
		return op_str(w, op, q, avail, took);
	case OP_HTAGS:
	case OP_TAGS:
		return op_tags(w, q, avail, took);
	case OP_ACKS:
	case OP_TOPERR:
	case OP_PART:
	case OP_ERR:
		return op_int(w, op, q, avail, took);
	case OP_RECORDS:
		return op_records(w, q, avail, took);
	case OP_ARRAY:
		return op_array(w, op, q, avail, took);
	case OP_NEXT:
		return op_next(w);
	case OP_PART_END:
		part_end(w);
		next_op(w);
		return 1;
	}
	fail(w);
	return 1;
}

static void advance(struct kfk_walk *w, size_t k)
{
	w->left -= k;
	w->consumed += k;
}

size_t kfk_walk_feed(struct kfk_walk *w, const uint8_t *p, size_t n)
{
	size_t used = 0;

	if (n > w->left)
		n = (size_t)w->left;
	while (!w->done && !w->failed) {
		size_t avail = n - used;
		const uint8_t *q = p ? p + used : NULL;
		size_t took;

		if (w->skip) {
			took = avail < w->skip ? avail : (size_t)w->skip;
			w->skip -= took;
			used += took;
			advance(w, took);
			if (w->skip)
				break;
			continue;
		}
		if (!step(w, q, avail, &took))
			break;
		used += took;
		advance(w, took);
		if (w->sum->hdr_done && !w->hdr_told) {
			w->hdr_told = 1; /* let the caller judge the header first */
			break;
		}
	}
	return used;
}

void kfk_walk_finish(struct kfk_walk *w)
{
	if (!w->done && !w->failed && w->skip == 0 && w->prog == w->next_prog &&
	    w->prog[w->pc].code == OP_END) {
		w->sum->complete = 1;
		w->done = 1;
	}
}
