/*
 * kafka_stream.c - frames of one direction (see kafka_stream.h).
 *
 * The one idea: a frame goes through three states. KS_HEAD collects the
 * 4-byte size and the fixed header (request: API key, version, correlation
 * id; response: correlation id) into 12 bytes; these must be captured.
 * KS_BODY hands the body to the walker, captured or not; KS_SKIP passes over
 * what the walker did not want. When the frame's last byte has gone by,
 * the callback gets the frame and the stream is back in KS_HEAD. Losing the
 * place (KS_UNSYNCED) only ever happens in KS_HEAD or on a GAP, and the
 * place is looked for again only at the start of a chunk.
 */
#include "kafka_stream.h"

#include <string.h>

static uint16_t be16(const uint8_t *b)
{
	return (uint16_t)((b[0] << 8) | b[1]);
}

static uint32_t be32(const uint8_t *b)
{
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

/* ---- stateless start check ------------------------------------------------ */

static int client_id_chars_ok(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return 0;
	return 1;
}

/* One request frame at p[0..len): KFK_START_* for that frame alone, and
 * *frame_len (4 + size) once the header is valid. */
static int check_one(const uint8_t *p, size_t len, uint64_t *frame_len)
{
	uint32_t size;
	int16_t api, ver, cl;
	int hv;

	if (len < 4)
		return KFK_START_PARTIAL;
	size = be32(p);
	if (size < 8 || size > KFK_PLAUSIBLE_FRAME)
		return KFK_START_NO;
	if (len < 8)
		return KFK_START_PARTIAL;
	api = (int16_t)be16(p + 4);
	ver = (int16_t)be16(p + 6);
	if (!kfk_api_version_known(api, ver, KFK_VERSION_SLACK))
		return KFK_START_NO;
	hv = kfk_request_header_version(api, ver);
	if (hv >= 1 && size < 10)
		return KFK_START_NO;
	*frame_len = 4 + (uint64_t)size;
	if (len < 12 || hv == 0)
		return len < 12 ? KFK_START_PARTIAL : KFK_START_HEADER;
	if (len < 14)
		return KFK_START_PARTIAL;
	cl = (int16_t)be16(p + 12);
	if (cl < -1 || (cl > 0 && (uint32_t)cl > size - 10))
		return KFK_START_NO;
	if (cl > 0 && !client_id_chars_ok(p + 14, len - 14 < (size_t)cl ? len - 14 : (size_t)cl))
		return KFK_START_NO;
	if (cl > 0 && len - 14 < (size_t)cl)
		return KFK_START_PARTIAL;
	return KFK_START_HEADER;
}

int kfk_check_request(const uint8_t *p, size_t len, size_t total)
{
	size_t off = 0;
	int frames = 0;

	if (total < len)
		total = len;
	for (;;) {
		uint64_t flen = 0;
		int r = check_one(p + off, len - off, &flen);

		if (r == KFK_START_NO)
			return KFK_START_NO; /* after a whole frame, too: its size was wrong */
		if (r == KFK_START_PARTIAL)
			return frames ? KFK_START_FRAMES : KFK_START_PARTIAL;
		if (off + flen > total)
			return frames ? KFK_START_FRAMES : KFK_START_HEADER;
		frames++;
		if (off + flen >= len)
			return KFK_START_FRAMES;
		off += (size_t)flen;
	}
}

/* ---- the stream ---------------------------------------------------------------- */

void kfk_stream_init(struct kfk_stream *s, int request, const struct kfk_stream_cb *cb)
{
	memset(s, 0, sizeof(*s));
	s->request = request ? 1 : 0;
	/* A connection seen from its first byte starts on a frame boundary;
	 * one picked up mid-stream fails the first frame's checks and then
	 * looks for its place like after a loss. */
	s->state = KS_HEAD;
	s->probation = 1;
	s->fresh = 1;
	s->cb = *cb;
}

int kfk_stream_synced(const struct kfk_stream *s)
{
	return s->state != KS_UNSYNCED;
}

void kfk_stream_start_unsynced(struct kfk_stream *s)
{
	s->state = KS_UNSYNCED;
	s->fresh = 0;
	s->probation = 0;
	s->ever_lost = 1;
}

uint64_t kfk_stream_skippable(const struct kfk_stream *s)
{
	if (s->state == KS_SKIP)
		return s->left;
	if (s->state == KS_BODY && !s->w.done && !s->w.failed)
		return s->w.skip < s->left ? s->w.skip : s->left;
	return 0;
}

static void lose(struct kfk_stream *s)
{
	s->fresh = 0;
	s->ever_lost = 1;
	if (s->state != KS_UNSYNCED)
		s->st.sync_lost++;
	if (s->probation)
		s->st.probation_failed++;
	s->state = KS_UNSYNCED;
	s->probation = 0;
	s->head_have = 0;
}

void kfk_stream_gap(struct kfk_stream *s)
{
	lose(s);
}

static size_t head_len(const struct kfk_stream *s)
{
	return s->request ? 12 : 8;
}

static void end_frame(struct kfk_stream *s, uint64_t ts)
{
	kfk_walk_finish(&s->w);
	if (s->probation) {
		/* the frame ended before its header could be checked */
		if (!s->sum.hdr_done || s->sum.client_id_state == 3) {
			lose(s);
			return;
		}
		s->probation = 0;
	}
	if (s->w.failed)
		s->st.walk_failed++;
	s->f.ts_end = ts;
	s->f.at = s->frame_at;
	s->f.at_exact = !s->ever_lost;
	s->f.sum = &s->sum;
	s->st.frames++;
	if (s->cb.frame)
		s->cb.frame(s->cb.ctx, &s->f);
	s->state = KS_HEAD;
	s->head_have = 0;
}

/* The fixed header is complete: decide what to do with the body. Returns 0
 * when the place was lost. */
static int start_frame(struct kfk_stream *s)
{
	uint32_t size = be32(s->head);
	int hv, flex;
	enum kfk_body body = KFK_BODY_NONE;

	memset(&s->f, 0, sizeof(s->f));
	s->f.request = s->request;
	s->f.size = size;
	s->f.ts_start = s->f.ts_end = 0;
	s->left = size - (head_len(s) - 4);
	if (s->request) {
		s->f.api_key = (int16_t)be16(s->head + 4);
		s->f.api_version = (int16_t)be16(s->head + 6);
		s->f.corr = (int32_t)be32(s->head + 8);
		if (s->f.api_key < 0 || s->f.api_version < 0) {
			lose(s);
			return 0;
		}
		hv = kfk_request_header_version(s->f.api_key, s->f.api_version);
		if (hv < 0 || !kfk_api_version_known(s->f.api_key, s->f.api_version, KFK_VERSION_SLACK)) {
			if (s->probation) {
				lose(s);
				return 0;
			}
			s->st.unknown_api++;
			kfk_walk_init(&s->w, 1, 0, KFK_BODY_NONE, 0, 0, s->left, &s->sum);
			s->w.done = 1;
			s->state = KS_SKIP;
			return 1;
		}
		flex = kfk_flexible(s->f.api_key, s->f.api_version);
		body = kfk_body_for(1, s->f.api_key, s->f.api_version);
	} else {
		int16_t api = 0, ver = 0;

		s->f.corr = (int32_t)be32(s->head + 4);
		if (!s->cb.lookup || !s->cb.lookup(s->cb.ctx, s->f.corr, &api, &ver)) {
			if (s->probation) {
				lose(s);
				return 0;
			}
			s->st.unmatched++;
			kfk_walk_init(&s->w, 0, 0, KFK_BODY_NONE, 0, 0, s->left, &s->sum);
			s->w.done = 1;
			s->state = KS_SKIP;
			return 1;
		}
		s->probation = 0; /* a waiting request answers for it */
		s->f.matched = 1;
		s->f.api_key = api;
		s->f.api_version = ver;
		hv = kfk_response_header_version(api, ver);
		flex = kfk_flexible(api, ver);
		body = kfk_body_for(0, api, ver);
	}
	s->f.body = (uint8_t)body;
	kfk_walk_init(&s->w, s->request, hv, body, s->f.api_version, flex, s->left, &s->sum);
	s->state = KS_BODY;
	return 1;
}

/* Check the size prefix as soon as it is complete. */
static int size_ok(const struct kfk_stream *s)
{
	uint32_t size = be32(s->head);

	return size >= head_len(s) - 4 && size <= KFK_MAX_FRAME;
}

/* KS_HEAD: returns bytes taken; the state is KS_UNSYNCED after losing the
 * place. The size prefix is judged before a byte after it is taken, so the
 * place is lost at the same byte however the chunk is cut. */
static size_t feed_head(struct kfk_stream *s, const uint8_t *p, size_t n, uint64_t ts,
                        uint32_t tid)
{
	size_t want = (s->head_have < 4 ? 4 : head_len(s)) - s->head_have;
	size_t k = n < want ? n : want;

	if (!p) {
		lose(s);
		return 0;
	}
	if (s->head_have == 0) {
		s->f.ts_start = ts;
		s->f.tid_start = tid;
		s->frame_at = s->fed;
	}
	memcpy(s->head + s->head_have, p, k);
	s->head_have = (uint8_t)(s->head_have + k);
	if (s->head_have == 4 && k && !size_ok(s)) {
		lose(s);
		return k;
	}
	if (s->head_have == head_len(s)) {
		uint64_t t0 = s->f.ts_start;
		uint32_t tid0 = s->f.tid_start;

		if (!start_frame(s))
			return k;
		s->f.ts_start = t0;
		s->f.tid_start = tid0;
	}
	return k;
}

/* After some body bytes: settle probation from the header, move to
 * KS_SKIP when the walker is finished, end the frame when no byte is left.
 * Returns 0 when the place was lost. */
static int after_body(struct kfk_stream *s, uint64_t ts)
{
	if (s->probation && s->request && (s->sum.hdr_done || s->w.failed)) {
		if (!s->sum.hdr_done || s->sum.client_id_state == 3) {
			lose(s);
			return 0;
		}
		s->probation = 0;
	}
	if (s->left == 0) {
		end_frame(s, ts);
		return s->state != KS_UNSYNCED;
	}
	if (s->state == KS_BODY && (s->w.done || s->w.failed)) {
		if (s->sum.complete) { /* the body program ended before the frame */
			s->sum.trailing = 1;
			s->st.trailing++;
		}
		s->state = KS_SKIP;
	}
	return 1;
}

/* Consume p[0..n) (p == NULL: n bytes not captured); s->fed is the
 * offset of p[0] on the way. */
static void consume_bytes(struct kfk_stream *s, const uint8_t *p, size_t n, uint64_t ts,
                          uint32_t tid)
{
	while (n > 0 || ((s->state == KS_BODY || s->state == KS_SKIP) && s->left == 0)) {
		size_t k;

		switch (s->state) {
		case KS_UNSYNCED:
			s->st.bytes_unsynced += n;
			return;
		case KS_HEAD:
			k = feed_head(s, p, n, ts, tid);
			if (s->state == KS_UNSYNCED) {
				s->st.bytes_unsynced += n - k;
				return;
			}
			break;
		case KS_BODY:
			k = kfk_walk_feed(&s->w, p, n < s->left ? n : (size_t)s->left);
			s->left -= k;
			if (!after_body(s, ts)) {
				s->st.bytes_unsynced += n - k;
				return;
			}
			break;
		default: /* KS_SKIP */
			k = n < s->left ? n : (size_t)s->left;
			s->left -= k;
			if (s->left == 0)
				end_frame(s, ts);
			break;
		}
		n -= k;
		s->fed += k;
		if (p)
			p += k;
	}
}

static void consume(struct kfk_stream *s, const uint8_t *p, size_t n, uint64_t ts, uint32_t tid)
{
	uint64_t end = s->fed + n;

	consume_bytes(s, p, n, ts, tid);
	s->fed = end;
}

/* Unsynced, at the start of a chunk: does a response frame start here? */
static int resync_response(struct kfk_stream *s, const uint8_t *p, size_t len)
{
	size_t off = 0;

	while (off + 4 <= len) {
		uint32_t size = be32(p + off);
		int16_t api, ver;

		if (size < 4 || size > KFK_PLAUSIBLE_FRAME)
			return 0;
		if (off + 8 > len)
			break;
		if (s->cb.lookup && s->cb.lookup(s->cb.ctx, (int32_t)be32(p + off + 4), &api, &ver)) {
			s->probation = 0;
			return 1;
		}
		off += 4 + (size_t)size;
	}
	/* only a size prefix so far: its correlation id comes next */
	if (off == 0 && len >= 4 && len < 8) {
		s->probation = 1;
		return 1;
	}
	return 0;
}

static int resync(struct kfk_stream *s, const uint8_t *p, size_t len, size_t total)
{
	int ok;

	if (s->request) {
		ok = kfk_check_request(p, len, total) != KFK_START_NO;
		s->probation = 1;
	} else {
		ok = resync_response(s, p, len);
	}
	if (!ok) {
		s->probation = 0;
		return 0;
	}
	s->st.resyncs++;
	s->state = KS_HEAD;
	s->head_have = 0;
	return 1;
}

void kfk_stream_begin(struct kfk_stream *s, const uint8_t *p, size_t len, size_t total)
{
	if (s->fresh && len) {
		/* First chunk of a response direction: answers to requests the
		 * table has forgotten may come before one it knows. */
		s->fresh = 0;
		if (!s->request && len >= 8 && resync_response(s, p, len))
			s->probation = 0;
		else
			s->probation = 1;
		return;
	}
	if (s->state == KS_UNSYNCED && len)
		resync(s, p, len, total < len ? len : total);
}

void kfk_stream_take(struct kfk_stream *s, const uint8_t *p, size_t n, uint64_t ts, uint32_t tid)
{
	consume(s, p, n, ts, tid);
}

void kfk_stream_feed(struct kfk_stream *s, const uint8_t *p, size_t len, size_t missing,
                     uint64_t ts, uint32_t tid)
{
	kfk_stream_begin(s, p, len, len + missing);
	consume(s, p, len, ts, tid);
	if (missing)
		consume(s, NULL, missing, ts, tid);
}
