/*
 * kafka.c - the Kafka protocol plugin: size-prefixed frames in, PRODUCER /
 * CONSUMER / SERVER spans for Produce and Fetch out, with
 * messaging.client.operation.duration for the client side.
 *
 * The one idea: every Kafka request carries its API key, version and a
 * correlation id, and its response repeats the correlation id, in request
 * order. So the connection keeps a bounded table of requests awaiting an
 * answer, in the order they were sent; a response is matched by its
 * correlation id, and the requests queued before it can never be answered
 * any more (their answers were lost) and are dropped, counted. The two
 * directions are two kafka_stream.c decoders; a response can be decoded
 * only through the table (its layout depends on the request's API and
 * version), which is what the stream's lookup callback asks.
 *
 * Spans:
 *  - Produce (client side): one PRODUCER span per request, "send <topic>",
 *    started when the request frame is complete (with the time of its first
 *    byte), ended by its response; acks=0 requests have no response and end
 *    at once.
 *  - Fetch (client side): one CONSUMER span per response that returned
 *    records or an error, "receive <topic>", from the request's first byte
 *    to the response's last. Empty long-poll answers make no span
 *    (setting empty_fetch_spans).
 *  - The broker side (requests are ingress): the same, as SERVER spans.
 *  - A request naming several topics (or partitions) makes one span with the
 *    topic (or partition) left out: it is never guessed.
 * Other APIs are recognised and counted by name, not spanned.
 *
 * SDK 1.1, each part used only when the host has it: the counters
 * messaging.client.sent.messages and messaging.client.consumed.messages
 * (client side, from record-batch headers) and sonde.kafka.dropped.requests;
 * skip_to while a direction passes over bytes of a known length (records
 * after a batch header, the rest of a frame nobody reads); a connection met
 * mid-stream starts unsynced; a timer drops requests waiting longer than
 * request_timeout (their answer was lost).
 */
#include <sonde/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_internal.h"
#include "kafka_proto.h"
#include "kafka_stream.h"

/* Give up a connection whose request direction found no frame in this
 * many chunks from its start: it is not Kafka. */
#define KAFKA_MAX_UNSYNCED_CHUNKS 256

#define HOST_HAS(h, f) ((h)->abi_minor >= 1 && SONDE_HAS_FIELD(h, struct sonde_host_api, f))
#define KAFKA_SKIP_MIN 4096u           /* skip_to only for at least this many bytes */
#define KAFKA_TICK_NS (10ull * 1000000000ull)
#define KAFKA_REQUEST_TIMEOUT_S 300    /* setting request_timeout */

enum { SIDE_REQ = 0, SIDE_RESP = 1 };

static const double duration_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
	                                  0.5,   0.75, 1,     2.5,  5,     7.5, 10 };
static const char *const duration_keys[] = {
	"messaging.system",           "messaging.operation.name",
	"messaging.operation.type",   "messaging.destination.name",
	"messaging.destination.partition.id", "server.address",
	"server.port",                "error.type",
};

/* Keys of the two message counters (semconv v1.28.0 metrics;
 * messaging.consumer.group.name is never known here). */
static const char *const count_keys[] = {
	"messaging.system",           "messaging.operation.name",
	"messaging.destination.name", "messaging.destination.partition.id",
	"server.address",             "server.port",
	"error.type",
};
#define N_COUNT_KEYS (sizeof(count_keys) / sizeof(count_keys[0]))

struct kafka_conn;

struct kafka_plugin {
	const struct sonde_host_api *host;
	struct sonde_plugin_handle *self;
	struct sonde_metric *duration; /* messaging.client.operation.duration */
	/* SDK 1.1 (NULL on a 1.0 host) */
	struct sonde_metric *sent, *consumed, *dropped;
	struct sonde_timer *tick;      /* freed by the host at unload */
	struct kafka_conn *conns;      /* open connections, for the timer */
	struct kafka_stats tot;
};

static struct kafka_stats debug_totals;

const struct kafka_stats *kafka_debug_totals(void)
{
	return &debug_totals;
}

/* A request awaiting its response. */
struct pending {
	int32_t corr;
	int16_t api, ver;
	uint64_t ts;              /* first byte of the request */
	uint64_t pos;             /* where the request starts (POS_NONE: unknown) */
	uint16_t cgen;            /* client id generation at request time */
	uint8_t dest_set;         /* Produce: destination attributes were set */
	struct sonde_span *span;  /* Produce: started at the request */
	/* Produce, for messaging.client.sent.messages at the answer */
	uint8_t records_known, topic_one, part_one;
	uint64_t records;
	int32_t part;
	uint16_t topic_len;
	char topic[KFK_TOPIC_MAX + 1];
};

struct kafka_conn {
	struct kafka_plugin *pl;
	struct kafka_conn *next, **pprev; /* pl->conns */
	struct sonde_conn *conn;
	int req_dir;              /* enum sonde_dir carrying requests, -1 until known */
	uint8_t server;           /* the watched process is the broker */
	uint8_t ever_synced;      /* a whole request frame was seen */
	uint8_t empty_fetch_spans;
	uint8_t cand_ok[2];       /* role unknown: a request candidate per direction */
	int32_t cand_corr[2];     /* (index 1: egress) and its correlation id */
	uint32_t unsynced_chunks;
	struct kfk_stream side[2];
	/* Same-host links: the request direction's chunks followed from its
	 * first byte (chunk->pos 0) without a hole, in one source. */
	uint8_t trk_started, trk_exact, trk_src;
	uint64_t trk_next;

	struct pending *q;        /* ring of q_cap entries, q_len used from q_head */
	size_t q_head, q_len, q_cap, q_max;

	uint8_t client_known;
	uint16_t cgen;
	uint16_t client_len;
	char client_id[KFK_CLIENT_ID_MAX + 1];

	char local_addr[48], peer_addr[48];
	uint16_t local_port, peer_port;
	uint64_t request_timeout_ns;   /* 1.1 timer: older waiting requests are dropped */
	struct sonde_capture_policy pol; /* what was asked (1.1) */
	struct kafka_stats st;
};

/* ---- the table of requests awaiting an answer ---------------------------- */

static struct pending *q_at(struct kafka_conn *kc, size_t i)
{
	return &kc->q[(kc->q_head + i) % kc->q_cap];
}

static void q_pop(struct kafka_conn *kc)
{
	kc->q_head = (kc->q_head + 1) % kc->q_cap;
	kc->q_len--;
}

/* One value of sonde.kafka.dropped.requests (1.1). */
static void count_dropped(struct kafka_conn *kc, const char *reason)
{
	const char *vals[1] = { reason };

	if (kc->pl->dropped)
		kc->pl->host->counter_add(kc->pl->dropped, kc->conn, 1, vals);
}

/* A request that will get no answer: its span (if any) goes, counted. */
static void drop_pending(struct kafka_conn *kc, struct pending *p, const char *reason)
{
	if (p->span)
		kc->pl->host->span_drop(p->span);
	p->span = NULL;
	count_dropped(kc, reason);
}

static int q_grow(struct kafka_conn *kc)
{
	size_t cap = kc->q_cap ? kc->q_cap * 2 : 16;
	struct pending *nq;

	if (cap > kc->q_max)
		cap = kc->q_max;
	nq = calloc(cap, sizeof(*nq));
	if (!nq)
		return -1;
	for (size_t i = 0; i < kc->q_len; i++)
		nq[i] = *q_at(kc, i);
	free(kc->q);
	kc->q = nq;
	kc->q_cap = cap;
	kc->q_head = 0;
	return 0;
}

static struct pending *q_push(struct kafka_conn *kc)
{
	struct pending *p;

	if (kc->q_len == kc->q_max) { /* the oldest can no longer be matched */
		drop_pending(kc, q_at(kc, 0), "evicted");
		q_pop(kc);
		kc->st.evicted++;
	}
	if (kc->q_len == kc->q_cap && q_grow(kc) < 0)
		return NULL;
	p = q_at(kc, kc->q_len);
	memset(p, 0, sizeof(*p));
	kc->q_len++;
	return p;
}

static int q_find(struct kafka_conn *kc, int32_t corr, size_t *idx)
{
	for (size_t i = 0; i < kc->q_len; i++) {
		if (q_at(kc, i)->corr == corr) {
			*idx = i;
			return 1;
		}
	}
	return 0;
}

/* ---- spans ----------------------------------------------------------------- */

static int is_produce(int api)
{
	return api == KFK_API_PRODUCE;
}

static const char *op_name(int api)
{
	return is_produce(api) ? "send" : "receive";
}

/* Span name and destination attributes from what the frame told; only
 * what is known: one topic, one partition, a whole count. */
static int set_dest(struct kafka_conn *kc, struct sonde_span *s, int api,
                    const struct kfk_sum *sum)
{
	const struct sonde_host_api *h = kc->pl->host;
	char buf[16 + KFK_TOPIC_MAX];
	int set = 0;

	if (!sum->complete)
		return 0;
	if (sum->topic_n == KFK_N_ONE && !sum->topic_unknown) {
		snprintf(buf, sizeof(buf), "%s %s", op_name(api), sum->topic);
		h->span_set_name(s, buf);
		h->span_attr_str(s, "messaging.destination.name", sum->topic, sum->topic_len);
		set = 1;
	}
	if (sum->n_parts == 1 && !sum->part_unknown) {
		int n = snprintf(buf, sizeof(buf), "%d", (int)sum->part);

		h->span_attr_str(s, "messaging.destination.partition.id", buf, (size_t)n);
	}
	if (!sum->records_unknown)
		h->span_attr_int(s, "messaging.batch.message_count", (int64_t)sum->records);
	return set;
}

static void set_error(struct kafka_conn *kc, struct sonde_span *s, int code)
{
	const struct sonde_host_api *h = kc->pl->host;
	const char *name = kfk_error_name(code);
	char desc[32];

	if (!code)
		return;
	if (name) {
		h->span_attr_str(s, "error.type", name, strlen(name));
		h->span_set_status(s, SONDE_STATUS_ERROR, name);
		return;
	}
	snprintf(desc, sizeof(desc), "kafka error code %d", code);
	h->span_attr_str(s, "error.type", "_OTHER", 6);
	h->span_set_status(s, SONDE_STATUS_ERROR, desc);
}

#define POS_NONE UINT64_MAX

/* Where a request frame starts in its direction's stream (its size
 * prefix's first byte), or POS_NONE when not exactly known: the stream was
 * not followed from its first byte without a loss. */
static uint64_t request_pos(const struct kafka_conn *kc, const struct kfk_frame *f)
{
	return kc->trk_exact && f->at_exact ? f->at : POS_NONE;
}

/* The request direction's next chunk (before it is decoded). */
static void track_chunk(struct kafka_conn *kc, const struct sonde_chunk *c)
{
	if (!SONDE_HAS_FIELD(c, struct sonde_chunk, source)) {
		kc->trk_started = 1;
		kc->trk_exact = 0;
		return;
	}
	if (!kc->trk_started)
		kc->trk_exact = c->pos == 0 && !(c->flags & SONDE_CHUNK_GAP);
	else if (c->source != kc->trk_src || c->pos != kc->trk_next || (c->flags & SONDE_CHUNK_GAP))
		kc->trk_exact = 0;
	kc->trk_started = 1;
	kc->trk_src = c->source;
	kc->trk_next = c->pos + (c->orig_len > c->len ? c->orig_len : c->len);
}

/* SDK 1.1: say where the span's request starts, so the host links the
 * client and broker spans of a connection it watches on both ends. */
static void span_pos(struct kafka_conn *kc, struct sonde_span *s, uint64_t pos)
{
	const struct sonde_host_api *h = kc->pl->host;

	if (s && pos != POS_NONE && HOST_HAS(h, span_set_pos) && h->span_set_pos)
		h->span_set_pos(s, kc->trk_src, pos);
}

static struct sonde_span *start_span(struct kafka_conn *kc, int api, uint64_t ts, uint16_t cgen)
{
	const struct sonde_host_api *h = kc->pl->host;
	enum sonde_span_kind kind = kc->server ? SONDE_SPAN_SERVER
	                          : is_produce(api) ? SONDE_SPAN_PRODUCER : SONDE_SPAN_CONSUMER;
	const char *op = op_name(api);
	const char *saddr = kc->server ? kc->local_addr : kc->peer_addr;
	int sport = kc->server ? kc->local_port : kc->peer_port;
	struct sonde_span *s = h->span_start(kc->conn, op, kind, ts);

	if (!s) {
		kc->st.span_refused++;
		return NULL;
	}
	h->span_attr_str(s, "messaging.system", "kafka", 5);
	h->span_attr_str(s, "messaging.operation.name", op, strlen(op));
	h->span_attr_str(s, "messaging.operation.type", op, strlen(op));
	if (kc->client_known && cgen == kc->cgen)
		h->span_attr_str(s, "messaging.client.id", kc->client_id, kc->client_len);
	h->span_attr_str(s, "server.address", saddr, strlen(saddr));
	h->span_attr_int(s, "server.port", sport);
	h->span_attr_str(s, "network.peer.address", kc->peer_addr, strlen(kc->peer_addr));
	h->span_attr_int(s, "network.peer.port", kc->peer_port);
	if (!kc->server && kc->pl->duration)
		h->span_add_metric(s, kc->pl->duration);
	return s;
}

/* messaging.client.sent.messages / consumed.messages (1.1): client side
 * only, and only a count read from record-batch headers. */
static void count_messages(struct kafka_conn *kc, struct sonde_metric *m, const char *op,
                           uint64_t n, const char *topic, int part_one, int32_t part, int error)
{
	const char *vals[N_COUNT_KEYS] = { "kafka", op, topic, NULL, NULL, NULL, NULL };
	char pbuf[16], portbuf[8];
	const char *ename = error ? kfk_error_name(error) : NULL;

	if (!m || kc->server || !n)
		return;
	if (part_one) {
		snprintf(pbuf, sizeof(pbuf), "%d", (int)part);
		vals[3] = pbuf;
	}
	vals[4] = kc->peer_addr;
	snprintf(portbuf, sizeof(portbuf), "%u", kc->peer_port);
	vals[5] = portbuf;
	if (error)
		vals[6] = ename ? ename : "_OTHER";
	kc->pl->host->counter_add(m, kc->conn, (double)n, vals);
}

/* Remember what the sent-messages counter needs of a Produce request. */
static void keep_produce(struct pending *p, const struct kfk_sum *sum)
{
	p->records_known = sum->complete && !sum->records_unknown;
	p->records = sum->records;
	p->topic_one = sum->complete && sum->topic_n == KFK_N_ONE && !sum->topic_unknown;
	if (p->topic_one) {
		memcpy(p->topic, sum->topic, sum->topic_len);
		p->topic[sum->topic_len] = 0;
		p->topic_len = sum->topic_len;
	}
	p->part_one = sum->complete && sum->n_parts == 1 && !sum->part_unknown;
	p->part = sum->part;
}

static void count_sent(struct kafka_conn *kc, const struct pending *p, int error)
{
	if (p->records_known)
		count_messages(kc, kc->pl->sent, "send", p->records, p->topic_one ? p->topic : NULL,
		               p->part_one, p->part, error);
}

static void end_span(struct kafka_conn *kc, struct sonde_span *s, int api, uint64_t ts)
{
	kc->pl->host->span_end(s, ts);
	kc->st.spans++;
	if (is_produce(api))
		kc->st.produce_spans++;
	else
		kc->st.fetch_spans++;
}

/* ---- frames ---------------------------------------------------------------- */

static void note_client_id(struct kafka_conn *kc, const struct kfk_sum *sum)
{
	int known = sum->client_id_state == 2;

	if (known && kc->client_known && kc->client_len == sum->client_id_len &&
	    !memcmp(kc->client_id, sum->client_id, sum->client_id_len))
		return;
	if (!known && !kc->client_known)
		return;
	kc->cgen++;
	kc->client_known = (uint8_t)known;
	if (known) {
		memcpy(kc->client_id, sum->client_id, sum->client_id_len);
		kc->client_len = sum->client_id_len;
	}
}

static void on_request(struct kafka_conn *kc, const struct kfk_frame *f)
{
	const struct kfk_sum *sum = f->sum;
	struct sonde_span *s = NULL;
	struct pending *p;
	int dest = 0;

	kc->st.requests++;
	kc->ever_synced = 1;
	if (f->api_key >= 0 && f->api_key <= KFK_API_MAX && kfk_api_name(f->api_key))
		kc->st.by_api[f->api_key]++;
	else
		kc->st.by_api[KFK_API_MAX + 1]++;
	if (sum->hdr_done)
		note_client_id(kc, sum);
	if (f->body == KFK_BODY_PRODUCE_REQ) {
		s = start_span(kc, f->api_key, f->ts_start, kc->cgen);
		span_pos(kc, s, request_pos(kc, f));
		if (s)
			dest = set_dest(kc, s, f->api_key, sum);
		if (s && sum->acks_known && sum->acks == 0) {
			struct pending once;

			kc->st.acks0++;
			end_span(kc, s, f->api_key, f->ts_end);
			keep_produce(&once, sum);
			count_sent(kc, &once, 0);
			return;
		}
	}
	p = q_push(kc);
	if (!p) {
		if (s)
			kc->pl->host->span_drop(s);
		return;
	}
	if (f->body == KFK_BODY_PRODUCE_REQ)
		keep_produce(p, sum);
	p->corr = f->corr;
	p->api = f->api_key;
	p->ver = f->api_version;
	p->ts = f->ts_start;
	p->pos = request_pos(kc, f);
	p->cgen = kc->cgen;
	p->span = s;
	p->dest_set = (uint8_t)dest;
}

static int fetch_wanted(const struct kafka_conn *kc, const struct kfk_sum *sum)
{
	if (sum->error || sum->records > 0 || (sum->records_unknown && sum->has_record_bytes))
		return 1;
	return kc->empty_fetch_spans && sum->complete;
}

static void on_fetch_response(struct kafka_conn *kc, const struct pending *p,
                              const struct kfk_frame *f)
{
	const struct kfk_sum *sum = f->sum;
	struct sonde_span *s;

	if (f->body != KFK_BODY_FETCH_RESP || (!sum->complete && !fetch_wanted(kc, sum))) {
		kc->st.fetch_unknown++;
		return;
	}
	if (!fetch_wanted(kc, sum)) {
		kc->st.fetch_empty++;
		return;
	}
	s = start_span(kc, p->api, p->ts, p->cgen);
	if (!s)
		return;
	span_pos(kc, s, p->pos); /* started and ended at once: links only if the
	                            other end's span is open then */
	set_dest(kc, s, p->api, sum);
	set_error(kc, s, sum->error);
	end_span(kc, s, p->api, f->ts_end);
	if (sum->complete && !sum->records_unknown)
		count_messages(kc, kc->pl->consumed, "receive", sum->records,
		               sum->topic_n == KFK_N_ONE && !sum->topic_unknown ? sum->topic : NULL,
		               sum->n_parts == 1 && !sum->part_unknown, sum->part, sum->error);
}

static void on_produce_response(struct kafka_conn *kc, struct pending *p,
                                const struct kfk_frame *f)
{
	const struct kfk_sum *sum = f->sum;
	int walked = f->body == KFK_BODY_PRODUCE_RESP;

	/* attempted and answered: counted even when the span was refused, but
	 * only when the answer says whether it failed (a whole answer, or an
	 * error code seen): a count without error.type claims success */
	if (!p->topic_one && walked && sum->complete && sum->topic_n == KFK_N_ONE &&
	    !sum->topic_unknown) {
		memcpy(p->topic, sum->topic, sum->topic_len);
		p->topic[sum->topic_len] = 0;
		p->topic_one = 1;
	}
	if (walked && (sum->error || (sum->complete && !sum->error_unknown)))
		count_sent(kc, p, sum->error);
	if (!p->span)
		return;
	if (f->body == KFK_BODY_PRODUCE_RESP) {
		/* the request's destination was not readable: the answer names it */
		if (!p->dest_set && sum->complete && sum->topic_n == KFK_N_ONE && !sum->topic_unknown) {
			char buf[16 + KFK_TOPIC_MAX];

			snprintf(buf, sizeof(buf), "send %s", sum->topic);
			kc->pl->host->span_set_name(p->span, buf);
			kc->pl->host->span_attr_str(p->span, "messaging.destination.name", sum->topic,
			                            sum->topic_len);
		}
		set_error(kc, p->span, sum->error);
	}
	end_span(kc, p->span, p->api, f->ts_end);
	p->span = NULL;
}

static void on_response(struct kafka_conn *kc, const struct kfk_frame *f)
{
	struct pending *p;
	size_t idx;

	if (!f->matched || !q_find(kc, f->corr, &idx))
		return;
	kc->st.responses++;
	/* Kafka answers in request order: those before were never answered */
	while (idx--) {
		drop_pending(kc, q_at(kc, 0), "unanswered");
		q_pop(kc);
		kc->st.unanswered++;
	}
	p = q_at(kc, 0);
	if (p->api == KFK_API_PRODUCE)
		on_produce_response(kc, p, f);
	else if (p->api == KFK_API_FETCH)
		on_fetch_response(kc, p, f);
	q_pop(kc);
}

static void on_frame(void *ctx, const struct kfk_frame *f)
{
	struct kafka_conn *kc = ctx;

	if (f->request)
		on_request(kc, f);
	else
		on_response(kc, f);
}

static int on_lookup(void *ctx, int32_t corr, int16_t *api, int16_t *ver)
{
	struct kafka_conn *kc = ctx;
	size_t idx;

	if (!q_find(kc, corr, &idx))
		return 0;
	*api = q_at(kc, idx)->api;
	*ver = q_at(kc, idx)->ver;
	return 1;
}

/* ---- the protocol callbacks --------------------------------------------------------- */

/*
 * Role unknown: which direction carries requests? A chunk that starts like a
 * request is only a candidate (an early response, correlation id 1 ... 13,
 * also reads as a Produce request header); the direction is decided when
 * the other direction answers that candidate's correlation id. The frames
 * seen before are lost (counted), never guessed.
 */
static uint32_t be32p(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int infer_dir(struct kafka_conn *kc, const struct sonde_chunk *c)
{
	int d = c->dir == SONDE_DIR_EGRESS;
	uint32_t size = c->len >= 8 ? be32p(c->data) : 0;

	if (kc->cand_ok[!d] && size >= 4 && size <= KFK_PLAUSIBLE_FRAME &&
	    (int32_t)be32p(c->data + 4) == kc->cand_corr[!d]) {
		kc->req_dir = d ? SONDE_DIR_INGRESS : SONDE_DIR_EGRESS;
		kc->server = kc->req_dir == SONDE_DIR_INGRESS;
		return 1;
	}
	if (c->len >= 12 && kfk_check_request(c->data, c->len, c->orig_len) >= KFK_START_HEADER) {
		kc->cand_ok[d] = 1;
		kc->cand_corr[d] = (int32_t)be32p(c->data + 8);
	}
	return 0;
}

/* After a socket chunk: bytes of a known length that nobody reads come
 * next (records after a batch header, the rest of a frame the walker is
 * done with): no payload is needed before the position where they end
 * (SDK 1.1 skip_to). Chunks from a TLS library count positions of their
 * own: never used. */
static void ask_skip(struct kafka_conn *kc, const struct sonde_chunk *c,
                     const struct kfk_stream *s)
{
	const struct sonde_host_api *h = kc->pl->host;
	uint64_t left = kfk_stream_skippable(s), to;
	int d = c->dir == SONDE_DIR_EGRESS;

	if (left < KAFKA_SKIP_MIN || !HOST_HAS(h, conn_set_capture) ||
	    !SONDE_HAS_FIELD(c, struct sonde_chunk, source) || c->source != SONDE_SRC_SOCKET)
		return;
	to = c->pos + c->orig_len + left;
	if (to <= kc->pol.skip_to[d])
		return;
	kc->pol.skip_to[d] = to;
	h->conn_set_capture(kc->conn, &kc->pol); /* SONDE_ERR_UNSUPPORTED: no kernel */
}

static int kafka_conn_data(void *conn_state, struct sonde_conn *conn,
                           const struct sonde_chunk *c)
{
	struct kafka_conn *kc = conn_state;
	size_t missing = c->orig_len > c->len ? c->orig_len - c->len : 0;
	struct kfk_stream *s;
	int side;

	if (kc->req_dir < 0 && !infer_dir(kc, c)) {
		kc->st.chunks_unassigned++;
		return SONDE_OK;
	}
	side = (int)c->dir == kc->req_dir ? SIDE_REQ : SIDE_RESP;
	s = &kc->side[side];
	if (side == SIDE_REQ)
		track_chunk(kc, c);
	if (c->flags & SONDE_CHUNK_GAP)
		kfk_stream_gap(s);
	kfk_stream_feed(s, c->data, c->len, missing, c->ts_unix_ns, c->tid);
	ask_skip(kc, c, s);
	if (side == SIDE_REQ && !kc->ever_synced &&
	    ++kc->unsynced_chunks > KAFKA_MAX_UNSYNCED_CHUNKS) {
		kc->pl->host->log(kc->pl->self, SONDE_LOG_DEBUG,
		                  "conn %s:%u: no Kafka request in %u chunks, giving up",
		                  kc->peer_addr, kc->peer_port, KAFKA_MAX_UNSYNCED_CHUNKS);
		return SONDE_ERR_PROTO;
	}
	return SONDE_OK;
}

static long config_long(struct kafka_plugin *pl, struct sonde_conn *conn, const char *key,
                        long dflt, long lo, long hi)
{
	const char *const *v;
	size_t n = pl->host->config_get(pl->self, conn, key, &v);
	char *end;
	long x;

	if (n < 1 || !v[0])
		return dflt;
	x = strtol(v[0], &end, 10);
	if (*end || end == v[0] || x < lo || x > hi) {
		pl->host->log(pl->self, SONDE_LOG_WARN, "%s: '%s' is not in %ld..%ld; using %ld",
		              key, v[0], lo, hi, dflt);
		return dflt;
	}
	return x;
}

static int config_true(struct kafka_plugin *pl, struct sonde_conn *conn, const char *key)
{
	const char *const *v;
	size_t n = pl->host->config_get(pl->self, conn, key, &v);

	return n >= 1 && v[0] && (!strcmp(v[0], "true") || !strcmp(v[0], "yes") || !strcmp(v[0], "1"));
}

static int kafka_conn_open(void *plugin_state, struct sonde_conn *conn,
                           const struct sonde_conn_info *ci, void **conn_state)
{
	struct kafka_plugin *pl = plugin_state;
	struct kafka_conn *kc = calloc(1, sizeof(*kc));
	struct kfk_stream_cb cb = { 0 };

	if (!kc)
		return SONDE_ERR_NOMEM;
	kc->pl = pl;
	kc->conn = conn;
	kc->req_dir = -1;
	if (ci->role == SONDE_ROLE_CLIENT)
		kc->req_dir = SONDE_DIR_EGRESS;
	else if (ci->role == SONDE_ROLE_SERVER)
		kc->req_dir = SONDE_DIR_INGRESS;
	kc->server = ci->role == SONDE_ROLE_SERVER;
	kc->q_max = (size_t)config_long(pl, conn, "max_in_flight", KAFKA_MAX_IN_FLIGHT, 1,
	                                KAFKA_MAX_IN_FLIGHT_LIMIT);
	kc->empty_fetch_spans = (uint8_t)config_true(pl, conn, "empty_fetch_spans");
	memcpy(kc->local_addr, ci->local_addr, sizeof(kc->local_addr));
	memcpy(kc->peer_addr, ci->peer_addr, sizeof(kc->peer_addr));
	kc->local_addr[sizeof(kc->local_addr) - 1] = 0;
	kc->peer_addr[sizeof(kc->peer_addr) - 1] = 0;
	kc->local_port = ci->local_port;
	kc->peer_port = ci->peer_port;
	cb.ctx = kc;
	cb.lookup = on_lookup;
	cb.frame = on_frame;
	kfk_stream_init(&kc->side[SIDE_REQ], 1, &cb);
	kfk_stream_init(&kc->side[SIDE_RESP], 0, &cb);
	/* SDK 1.1: a connection met mid-stream does not start on a frame
	 * boundary: both directions look for their place from the first
	 * chunk, like after a loss. */
	if (SONDE_HAS_FIELD(ci, struct sonde_conn_info, flags) &&
	    (ci->flags & SONDE_CONN_MIDSTREAM)) {
		kfk_stream_start_unsynced(&kc->side[SIDE_REQ]);
		kfk_stream_start_unsynced(&kc->side[SIDE_RESP]);
	}
	kc->request_timeout_ns = (uint64_t)config_long(pl, conn, "request_timeout",
	                                               KAFKA_REQUEST_TIMEOUT_S, 0, 86400) *
	                         1000000000ull;
	kc->pol.struct_size = sizeof(kc->pol);
	kc->next = pl->conns;
	if (pl->conns)
		pl->conns->pprev = &kc->next;
	kc->pprev = &pl->conns;
	pl->conns = kc;
	*conn_state = kc;
	return SONDE_OK;
}

static void add_stream_stats(struct kafka_stats *to, const struct kfk_stream_stats *s)
{
	to->sync_lost += s->sync_lost;
	to->resyncs += s->resyncs;
	to->probation_failed += s->probation_failed;
	to->walk_failed += s->walk_failed;
	to->bytes_unsynced += s->bytes_unsynced;
	to->unmatched += s->unmatched;
	to->unknown_api += s->unknown_api;
}

static void add_stats(struct kafka_stats *to, const struct kafka_stats *from)
{
	const uint64_t *f = (const uint64_t *)from;
	uint64_t *t = (uint64_t *)to;

	for (size_t i = 0; i < sizeof(*from) / sizeof(uint64_t); i++)
		t[i] += f[i];
}

static void kafka_conn_close(void *conn_state, struct sonde_conn *conn, uint64_t ts)
{
	struct kafka_conn *kc = conn_state;
	struct kafka_plugin *pl = kc->pl;

	while (kc->q_len) {
		drop_pending(kc, q_at(kc, 0), "closed");
		q_pop(kc);
		kc->st.closed_pending++;
	}
	*kc->pprev = kc->next;
	if (kc->next)
		kc->next->pprev = kc->pprev;
	add_stream_stats(&kc->st, &kc->side[SIDE_REQ].st);
	add_stream_stats(&kc->st, &kc->side[SIDE_RESP].st);
	pl->host->log(pl->self, SONDE_LOG_DEBUG,
	              "conn %s:%u closed: %llu requests, %llu responses, %llu spans, "
	              "%llu empty fetches, %llu unmatched, %llu unanswered, %llu sync lost",
	              kc->peer_addr, kc->peer_port, (unsigned long long)kc->st.requests,
	              (unsigned long long)kc->st.responses, (unsigned long long)kc->st.spans,
	              (unsigned long long)kc->st.fetch_empty, (unsigned long long)kc->st.unmatched,
	              (unsigned long long)kc->st.unanswered, (unsigned long long)kc->st.sync_lost);
	add_stats(&pl->tot, &kc->st);
	add_stats(&debug_totals, &kc->st);
	free(kc->q);
	free(kc);
}

/* ---- detection ----------------------------------------------------------------------- */

/* Bytes in the response direction: plausible only as a size prefix. */
static int response_like(const struct sonde_chunk *c)
{
	uint32_t size;

	if (c->len < 4)
		return SONDE_DETECT_NEED_MORE;
	size = ((uint32_t)c->data[0] << 24) | ((uint32_t)c->data[1] << 16) |
	       ((uint32_t)c->data[2] << 8) | c->data[3];
	return size >= 4 && size <= KFK_PLAUSIBLE_FRAME ? SONDE_DETECT_NEED_MORE : SONDE_DETECT_NO;
}

static int kafka_detect(void *plugin_state, const struct sonde_conn_info *ci,
                        const struct sonde_chunk *c)
{
	int req_side = ci->role == SONDE_ROLE_UNKNOWN ||
	               (ci->role == SONDE_ROLE_CLIENT) == (c->dir == SONDE_DIR_EGRESS);
	int r;

	if (!req_side)
		return response_like(c);
	r = kfk_check_request(c->data, c->len, c->orig_len);
	switch (r) {
	case KFK_START_FRAMES:
		return SONDE_DETECT_SURE;
	case KFK_START_HEADER:
		return 75;
	case KFK_START_PARTIAL:
		return SONDE_DETECT_NEED_MORE;
	default:
		return ci->role == SONDE_ROLE_UNKNOWN ? response_like(c) : SONDE_DETECT_NO;
	}
}

/* ---- plugin ---------------------------------------------------------------------------- */

/* SDK 1.1 timer: requests waiting longer than request_timeout (Kafka
 * clients give up at request.timeout.ms, 30 s by default; a JoinGroup may
 * wait for a rebalance, 5 min by default) had their answer lost: dropped,
 * counted as expired. */
static void kafka_tick(void *arg, uint64_t now)
{
	struct kafka_plugin *pl = arg;

	for (struct kafka_conn *kc = pl->conns; kc; kc = kc->next) {
		uint64_t t = kc->request_timeout_ns;

		while (t && kc->q_len && now > q_at(kc, 0)->ts && now - q_at(kc, 0)->ts > t) {
			drop_pending(kc, q_at(kc, 0), "expired");
			q_pop(kc);
			kc->st.expired++;
		}
	}
}

static struct sonde_metric *counter(struct kafka_plugin *pl, const char *name, const char *unit,
                                    const char *descr, const char *const *keys, size_t n)
{
	struct sonde_counter_desc d = {
		.struct_size = sizeof(d),
		.name = name,
		.unit = unit,
		.description = descr,
		.attr_keys = keys,
		.n_attr_keys = n,
	};
	struct sonde_metric *m = pl->host->counter_register(pl->self, &d);

	if (!m)
		pl->host->log(pl->self, SONDE_LOG_WARN, "%s not registered", name);
	return m;
}

static void init_v11(struct kafka_plugin *pl)
{
	static const char *const reason[] = { "sonde.reason" };
	const struct sonde_host_api *h = pl->host;

	if (HOST_HAS(h, counter_add)) {
		pl->sent = counter(pl, "messaging.client.sent.messages", "{message}",
		                   "Number of messages producer attempted to send to the broker.",
		                   count_keys, N_COUNT_KEYS);
		pl->consumed = counter(pl, "messaging.client.consumed.messages", "{message}",
		                       "Number of messages that were delivered to the application.",
		                       count_keys, N_COUNT_KEYS);
		pl->dropped = counter(pl, "sonde.kafka.dropped.requests", "{request}",
		                      "Kafka requests whose answer was never matched, by sonde.reason.",
		                      reason, 1);
	}
	if (HOST_HAS(h, timer_start))
		pl->tick = h->timer_start(pl->self, KAFKA_TICK_NS, KAFKA_TICK_NS, kafka_tick, pl);
}

static int kafka_init(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
                      void **plugin_state)
{
	struct kafka_plugin *pl;
	struct sonde_histogram_desc d = {
		.struct_size = sizeof(d),
		.name = "messaging.client.operation.duration",
		.unit = "s",
		.description = "Duration of messaging operation initiated by a producer or consumer client.",
		.bounds = duration_bounds,
		.n_bounds = sizeof(duration_bounds) / sizeof(duration_bounds[0]),
		.attr_keys = duration_keys,
		.n_attr_keys = sizeof(duration_keys) / sizeof(duration_keys[0]),
	};

	if (host->abi_major != SONDE_ABI_MAJOR ||
	    host->struct_size < offsetof(struct sonde_host_api, histogram_record) +
	                                sizeof(host->histogram_record))
		return SONDE_ERR_ABI;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return SONDE_ERR_NOMEM;
	pl->host = host;
	pl->self = self;
	pl->duration = host->histogram_register(self, &d);
	if (!pl->duration)
		host->log(self, SONDE_LOG_WARN, "messaging.client.operation.duration not registered; "
		                                "spans only");
	init_v11(pl);
	memset(&debug_totals, 0, sizeof(debug_totals));
	*plugin_state = pl;
	return SONDE_OK;
}

/* "Produce=12 Fetch=40 ..." for the APIs seen. */
static void api_counts(const struct kafka_stats *t, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = 0;
	for (int i = 0; i <= KFK_API_MAX + 1 && off + 1 < size; i++) {
		const char *name = i <= KFK_API_MAX ? kfk_api_name(i) : "unknown";
		int n;

		if (!t->by_api[i] || !name)
			continue;
		n = snprintf(buf + off, size - off, "%s%s=%llu", off ? " " : "", name,
		             (unsigned long long)t->by_api[i]);
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

static void kafka_fini(void *plugin_state)
{
	struct kafka_plugin *pl = plugin_state;
	char apis[1024];

	if (!pl)
		return;
	api_counts(&pl->tot, apis, sizeof(apis));
	pl->host->log(pl->self, SONDE_LOG_INFO,
	              "totals: %llu requests (%s), %llu spans (%llu produce, %llu fetch), "
	              "%llu acks=0, %llu empty fetches, %llu unreadable fetches, %llu unmatched "
	              "responses, %llu unanswered, %llu evicted, %llu pending at close, "
	              "%llu refused spans, %llu sync lost, %llu resyncs, %llu walks failed",
	              (unsigned long long)pl->tot.requests, apis,
	              (unsigned long long)pl->tot.spans, (unsigned long long)pl->tot.produce_spans,
	              (unsigned long long)pl->tot.fetch_spans, (unsigned long long)pl->tot.acks0,
	              (unsigned long long)pl->tot.fetch_empty,
	              (unsigned long long)pl->tot.fetch_unknown,
	              (unsigned long long)pl->tot.unmatched, (unsigned long long)pl->tot.unanswered,
	              (unsigned long long)pl->tot.evicted,
	              (unsigned long long)pl->tot.closed_pending,
	              (unsigned long long)pl->tot.span_refused,
	              (unsigned long long)pl->tot.sync_lost, (unsigned long long)pl->tot.resyncs,
	              (unsigned long long)pl->tot.walk_failed);
	free(pl);
}

static const struct sonde_protocol kafka_protocol = {
	.struct_size = sizeof(struct sonde_protocol),
	.name = "kafka",
	.detect = kafka_detect,
	.conn_open = kafka_conn_open,
	.conn_data = kafka_conn_data,
	.conn_close = kafka_conn_close,
};

static const struct sonde_protocol *const kafka_protocols[] = { &kafka_protocol, NULL };

static const struct sonde_plugin kafka_plugin = {
	.abi_major = SONDE_ABI_MAJOR,
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "kafka",
	.version = "0.1.0",
	.license = "Apache-2.0",
	.description = "Apache Kafka wire protocol: Produce and Fetch spans",
	.init = kafka_init,
	.fini = kafka_fini,
	.protocols = kafka_protocols,
};

SONDE_PLUGIN_DEFINE(kafka_plugin)
