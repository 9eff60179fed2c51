/*
 * h2_conn.c - the incremental HTTP/2 reader (see h2_conn.h).
 *
 * The one idea: a frame's payload is three regions by offset - a fixed
 * part (pad length, priority, promised stream id, or a whole small control
 * payload), the body (header-block fragment, DATA, SETTINGS items) and
 * padding - and captured bytes and uncaptured ("hidden") bytes walk the
 * same regions. Hidden bytes in the body of a DATA frame cost nothing; in a
 * header-block fragment they cut the block; outside any frame whose header
 * was seen they lose the position.
 */
#include "h2_conn.h"

#include <stdlib.h>
#include <string.h>

enum dstate {
	D_START = 0, /* nothing seen in this direction yet */
	D_PREFACE,   /* inside the client preface */
	D_HDR,       /* reading a frame header (hdr_n bytes so far) */
	D_PAYLOAD,   /* inside frame f's payload (off bytes so far) */
	D_LOST,      /* position unknown: looking for frame boundaries */
};

struct h2_dir {
	enum dstate st;
	uint8_t hdr[H2_FRAME_HDR_LEN];
	uint8_t hdr_n;
	uint8_t preface_n;
	struct h2_frame_hdr f;
	uint32_t off;      /* payload bytes of f passed (captured or not) */
	uint32_t fixed;    /* size of the fixed region */
	uint32_t body_end; /* payload offset where padding starts */
	uint8_t pre[8];    /* the fixed region's bytes */
	bool pre_lost;     /* ... not all captured */
	uint8_t item[6];   /* a SETTINGS item being read */
	uint8_t item_n;
	bool items_lost;

	/* The header block being assembled. */
	bool blk_open;     /* HEADERS/PUSH_PROMISE seen, END_HEADERS not yet */
	bool blk_skip;     /* CONTINUATION of a block whose start was lost */
	bool blk_cut;      /* some of its bytes were not captured */
	uint32_t blk_sid;
	uint8_t blk_type;
	bool blk_end_stream;
	uint64_t blk_ts;
	uint8_t *blk;
	size_t blk_len, blk_cap;

	bool hp_dirty;     /* header-block bytes went undecoded: reset first */
	struct hpack_dec *hp;
	unsigned lost_chunks;

	/* Offsets from the direction's first byte fed (same-host links). */
	uint64_t fed;      /* bytes fed before the current chunk (orig_len) */
	uint64_t hdr_at;   /* where the frame header being read starts */
	uint64_t blk_at;   /* where the open block's first frame starts */
	bool ever_lost;    /* the position was lost once: offsets are guesses */
};

struct h2_conn {
	struct h2_dir d[2];
	int req_dir;
	enum h2_mode mode;
	const struct h2_events *ev;
	void *ctx;
	struct h2_stats st;
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* --- header blocks ------------------------------------------------------------ */

static void field_tramp(void *ctx, unsigned pos, const uint8_t *n, size_t nl, const uint8_t *v,
                        size_t vl)
{
	struct h2_conn *h = ctx;

	if (h->ev->field)
		h->ev->field(h->ctx, n, nl, v, vl);
	(void)pos;
}

static void to_midstream(struct h2_conn *h)
{
	h->mode = H2_MODE_MIDSTREAM;
	h->d[0].hp_dirty = true;
	h->d[1].hp_dirty = true;
}

static void blk_clear(struct h2_dir *d)
{
	d->blk_open = false;
	d->blk_skip = false;
	d->blk_cut = false;
	d->blk_len = 0;
}

/* Decode the assembled block (cut: its tail is missing) and report it. */
static void finish_block(struct h2_conn *h, int dir, bool cut, uint64_t ts)
{
	struct h2_dir *d = &h->d[dir];
	struct hpack_result res;

	cut = cut || d->blk_cut;
	if (h->mode == H2_MODE_UNDECIDED)
		to_midstream(h);
	if (d->hp_dirty) {
		hpack_dec_reset(d->hp);
		h->st.hpack_resets++;
		d->hp_dirty = false;
	}
	if (h->ev->block_begin)
		h->ev->block_begin(h->ctx, dir, d->blk_sid, d->blk_type, d->blk_end_stream,
		                   d->blk_ts);
	hpack_decode(d->hp, d->blk, d->blk_len, !cut, field_tramp, h, &res);
	h->st.blocks++;
	h->st.blocks_cut += cut;
	h->st.hpack_errors += res.error;
	h->st.unknown_fields += res.unknown;
	if (cut || res.error)
		h->st.hpack_resets++;
	if (h->ev->block_end)
		h->ev->block_end(h->ctx, &res);
	blk_clear(d);
	(void)ts;
}

static void blk_append(struct h2_dir *d, const uint8_t *p, size_t n)
{
	size_t room;

	if (d->blk_cut || d->blk_skip)
		return;
	room = H2_BLOCK_MAX - d->blk_len;
	if (n > room) {
		n = room;
		d->blk_cut = true;
	}
	if (d->blk_len + n > d->blk_cap) {
		size_t cap = d->blk_cap ? d->blk_cap : 1024;
		uint8_t *nb;
		while (cap < d->blk_len + n)
			cap *= 2;
		if (cap > H2_BLOCK_MAX)
			cap = H2_BLOCK_MAX;
		nb = realloc(d->blk, cap);
		if (!nb) {
			d->blk_cut = true;
			return;
		}
		d->blk = nb;
		d->blk_cap = cap;
	}
	memcpy(d->blk + d->blk_len, p, n);
	d->blk_len += n;
}

/* --- losing and finding the position ----------------------------------------- */

static void lose(struct h2_conn *h, int dir, uint64_t ts)
{
	struct h2_dir *d = &h->d[dir];

	if (d->st == D_LOST)
		return;
	h->st.losses++;
	if (d->blk_open && !d->blk_skip)
		finish_block(h, dir, true, ts);
	blk_clear(d);
	d->hp_dirty = true;
	d->st = D_LOST;
	d->hdr_n = 0;
	d->ever_lost = true;
	if (h->ev->loss)
		h->ev->loss(h->ctx, dir, ts);
}

static void garbage(struct h2_conn *h, int dir, uint64_t ts)
{
	h->st.garbage++;
	lose(h, dir, ts);
}

static size_t step_lost(struct h2_conn *h, int dir, const uint8_t *p, size_t n, size_t total,
                        bool *found)
{
	struct h2_dir *d = &h->d[dir];
	long off = h2_resync_find(p, n, total, H2_RESYNC_SCAN);

	if (off != 0)
		d->hp_dirty = true; /* the bytes passed over may hold header blocks */
	if (off < 0) {
		h->st.skipped_bytes += n;
		return n;
	}
	h->st.resyncs++;
	h->st.skipped_bytes += (uint64_t)off;
	d->st = D_HDR;
	d->hdr_n = 0;
	*found = true;
	return (size_t)off;
}

/* --- frames -------------------------------------------------------------------- */

static void open_block(struct h2_dir *d, uint64_t ts)
{
	blk_clear(d);
	d->blk_open = true;
	d->blk_sid = d->f.sid;
	d->blk_type = d->f.type;
	d->blk_end_stream = d->f.type == H2_HEADERS && (d->f.flags & H2_F_END_STREAM);
	d->blk_ts = ts;
	d->blk_at = d->hdr_at;
}

/* A valid frame header was read. Returns -1 when it breaks the rules
 * between frames (a CONTINUATION expected and not given, or given out of
 * turn). */
static int frame_begin(struct h2_conn *h, int dir, uint64_t ts)
{
	struct h2_dir *d = &h->d[dir];
	const struct h2_frame_hdr *f = &d->f;
	bool padded = f->flags & H2_F_PADDED;

	h->st.frames++;
	d->off = 0;
	d->pre_lost = false;
	d->item_n = 0;
	d->items_lost = false;
	d->fixed = 0;
	d->body_end = f->len;
	if (d->blk_open && (f->type != H2_CONTINUATION || f->sid != d->blk_sid))
		return -1;
	switch (f->type) {
	case H2_HEADERS:
		d->fixed = (padded ? 1 : 0) + (f->flags & H2_F_PRIORITY ? 5 : 0);
		open_block(d, ts);
		break;
	case H2_PUSH_PROMISE:
		d->fixed = (padded ? 1 : 0) + 4;
		open_block(d, ts);
		break;
	case H2_CONTINUATION:
		if (!d->blk_open) { /* its block started in bytes we lost */
			d->blk_skip = true;
			d->blk_open = true;
			d->blk_sid = f->sid;
			d->hp_dirty = true;
		}
		break;
	case H2_DATA:
		d->fixed = padded ? 1 : 0;
		break;
	case H2_RST_STREAM:
	case H2_WINDOW_UPDATE:
	case H2_PING:
	case H2_PRIORITY:
		d->fixed = f->len;
		break;
	case H2_GOAWAY:
		d->fixed = 8;
		break;
	}
	d->st = D_PAYLOAD;
	return 0;
}

/* The fixed region is complete: padding tells where the body ends. */
static int fixed_done(struct h2_dir *d)
{
	uint32_t pad;

	if (!(d->f.flags & H2_F_PADDED) ||
	    (d->f.type != H2_DATA && d->f.type != H2_HEADERS && d->f.type != H2_PUSH_PROMISE))
		return 0;
	if (d->pre_lost) { /* padding unknown: the block (if any) is cut */
		d->blk_cut = true;
		return 0;
	}
	pad = d->pre[0];
	if (pad > d->f.len - d->fixed)
		return -1;
	d->body_end = d->f.len - pad;
	return 0;
}

static void settings_item(struct h2_conn *h, int dir)
{
	struct h2_dir *d = &h->d[dir];
	uint16_t id = (uint16_t)(d->item[0] << 8 | d->item[1]);

	/* Our peer's encoder (the other direction) may use a table this big. */
	if (id == H2_SET_HEADER_TABLE_SIZE)
		hpack_dec_accept_size(h->d[!dir].hp, be32(d->item + 2));
}

static void body_bytes(struct h2_conn *h, int dir, const uint8_t *p, size_t n)
{
	struct h2_dir *d = &h->d[dir];

	switch (d->f.type) {
	case H2_HEADERS:
	case H2_PUSH_PROMISE:
	case H2_CONTINUATION:
		blk_append(d, p, n);
		break;
	case H2_SETTINGS:
		if (d->f.flags & H2_F_ACK)
			break;
		for (size_t i = 0; i < n; i++) {
			d->item[d->item_n++] = p[i];
			if (d->item_n == 6) {
				if (!d->items_lost)
					settings_item(h, dir);
				d->item_n = 0;
			}
		}
		break;
	}
}

static void body_lost(struct h2_dir *d, size_t n)
{
	switch (d->f.type) {
	case H2_HEADERS:
	case H2_PUSH_PROMISE:
	case H2_CONTINUATION:
		if (d->blk_skip)
			d->hp_dirty = true;
		else
			d->blk_cut = true;
		break;
	case H2_SETTINGS:
		d->items_lost = true; /* the rest of the frame is not trusted */
		d->item_n = (uint8_t)((d->item_n + n) % 6);
		break;
	}
}

static void frame_end(struct h2_conn *h, int dir, uint64_t ts)
{
	struct h2_dir *d = &h->d[dir];
	const struct h2_frame_hdr *f = &d->f;
	const struct h2_events *ev = h->ev;

	d->st = D_HDR;
	d->hdr_n = 0;
	switch (f->type) {
	case H2_HEADERS:
	case H2_PUSH_PROMISE:
	case H2_CONTINUATION:
		if (!(f->flags & H2_F_END_HEADERS))
			break;
		if (d->blk_skip) {
			blk_clear(d);
			d->hp_dirty = true;
		} else {
			finish_block(h, dir, false, ts);
		}
		break;
	case H2_DATA:
		if (ev->data)
			ev->data(h->ctx, dir, f->sid, f->len, f->flags & H2_F_END_STREAM, ts);
		break;
	case H2_RST_STREAM:
		if (ev->rst)
			ev->rst(h->ctx, dir, f->sid, d->pre_lost ? H2_ERR_UNKNOWN : be32(d->pre), ts);
		break;
	case H2_GOAWAY:
		if (ev->goaway)
			ev->goaway(h->ctx, dir, be32(d->pre) & 0x7fffffffu, !d->pre_lost,
			           d->pre_lost ? H2_ERR_UNKNOWN : be32(d->pre + 4), ts);
		break;
	}
}

/* Captured payload bytes. Returns the bytes consumed; the state may have
 * become D_LOST (bad padding). */
static size_t step_payload(struct h2_conn *h, int dir, const uint8_t *p, size_t n, uint64_t ts)
{
	struct h2_dir *d = &h->d[dir];
	size_t want = d->f.len - d->off, k = 0;

	if (want > n)
		want = n;
	while (k < want) {
		size_t c;
		if (d->off < d->fixed) {
			c = d->fixed - d->off < want - k ? d->fixed - d->off : want - k;
			memcpy(d->pre + d->off, p + k, c);
			d->off += (uint32_t)c;
			k += c;
			if (d->off == d->fixed && fixed_done(d)) {
				garbage(h, dir, ts);
				return k;
			}
		} else if (d->off < d->body_end) {
			c = d->body_end - d->off < want - k ? d->body_end - d->off : want - k;
			body_bytes(h, dir, p + k, c);
			d->off += (uint32_t)c;
			k += c;
		} else {
			c = want - k;
			d->off += (uint32_t)c;
			k += c;
		}
	}
	if (d->off == d->f.len)
		frame_end(h, dir, ts);
	return k;
}

/* Payload bytes that were transferred but not captured. */
static uint64_t payload_hidden(struct h2_conn *h, int dir, uint64_t m, uint64_t ts)
{
	struct h2_dir *d = &h->d[dir];
	uint64_t want = d->f.len - d->off, k = 0;

	if (want > m)
		want = m;
	while (k < want) {
		uint64_t c;
		if (d->off < d->fixed) {
			c = d->fixed - d->off < want - k ? d->fixed - d->off : want - k;
			d->pre_lost = true;
			d->off += (uint32_t)c;
			k += c;
			if (d->off == d->fixed)
				fixed_done(d);
		} else if (d->off < d->body_end) {
			c = d->body_end - d->off < want - k ? d->body_end - d->off : want - k;
			body_lost(d, c);
			d->off += (uint32_t)c;
			k += c;
		} else {
			c = want - k;
			d->off += (uint32_t)c;
			k += c;
		}
	}
	if (d->off == d->f.len)
		frame_end(h, dir, ts);
	return k;
}

static size_t step_hdr(struct h2_conn *h, int dir, const uint8_t *p, size_t n, uint64_t ts)
{
	struct h2_dir *d = &h->d[dir];
	size_t c = H2_FRAME_HDR_LEN - d->hdr_n;

	if (c > n)
		c = n;
	memcpy(d->hdr + d->hdr_n, p, c);
	d->hdr_n += (uint8_t)c;
	if (d->hdr_n < H2_FRAME_HDR_LEN)
		return c;
	h2_frame_hdr_parse(d->hdr, &d->f);
	if (h2_frame_hdr_check(&d->f, H2_MAX_FRAME_LEN) || frame_begin(h, dir, ts)) {
		garbage(h, dir, ts);
		return c;
	}
	if (d->f.len == 0)
		frame_end(h, dir, ts);
	return c;
}

static size_t step_preface(struct h2_conn *h, int dir, const uint8_t *p, size_t n, uint64_t ts)
{
	struct h2_dir *d = &h->d[dir];
	size_t c = H2_PREFACE_LEN - d->preface_n;

	if (c > n)
		c = n;
	if (memcmp(p, &H2_PREFACE[d->preface_n], c)) {
		garbage(h, dir, ts);
		return 0;
	}
	d->preface_n += (uint8_t)c;
	if (d->preface_n < H2_PREFACE_LEN)
		return c;
	d->st = D_HDR;
	d->hdr_n = 0;
	h->req_dir = dir; /* the preface is the client's: it overrides the role */
	if (h->mode == H2_MODE_UNDECIDED)
		h->mode = H2_MODE_FROM_START;
	if (h->ev->preface)
		h->ev->preface(h->ctx, dir);
	return c;
}

/* First bytes of a direction: the preface, or frames. A direction's first
 * captured byte is where a read or write started, almost always a frame
 * boundary: frames are taken from there when the headers in the chunk
 * chain and end within the transfer, or when the chunk is shorter than a
 * header (checked once complete) or holds one header of a frame of usual
 * size that the next read will finish. Otherwise the direction looks for a
 * boundary. */
static bool start_plausible(const uint8_t *p, size_t n, size_t total)
{
	size_t end;
	int k;

	if (n < H2_FRAME_HDR_LEN)
		return true;
	k = h2_chain_walk(p, n, H2_MAX_FRAME_LEN, 64, &end);
	if (k < 1)
		return false;
	if (end <= total || k >= 2)
		return true;
	return n == total && end - H2_FRAME_HDR_LEN <= H2_DEFAULT_MAX_FRAME; /* a short read */
}

static void dir_start(struct h2_conn *h, int dir, const uint8_t *p, size_t n, size_t total)
{
	struct h2_dir *d = &h->d[dir];

	if (h2_preface_check(p, n) >= 0) {
		d->st = D_PREFACE;
		return;
	}
	if (dir == h->req_dir && h->mode == H2_MODE_UNDECIDED)
		to_midstream(h);
	if (start_plausible(p, n, total)) {
		d->st = D_HDR;
		d->hdr_n = 0;
		return;
	}
	d->st = D_LOST;
	d->ever_lost = true;
}

/* --- public ------------------------------------------------------------------------ */

struct h2_conn *h2_conn_new(int req_dir, const struct h2_events *ev, void *ctx)
{
	static const struct h2_events none;
	struct h2_conn *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->req_dir = req_dir;
	h->ev = ev ? ev : &none;
	h->ctx = ctx;
	for (int i = 0; i < 2; i++) {
		h->d[i].hp = hpack_dec_new();
		if (!h->d[i].hp) {
			h2_conn_free(h);
			return NULL;
		}
	}
	return h;
}

void h2_conn_free(struct h2_conn *h)
{
	if (!h)
		return;
	for (int i = 0; i < 2; i++) {
		hpack_dec_free(h->d[i].hp);
		free(h->d[i].blk);
	}
	free(h);
}

int h2_conn_feed(struct h2_conn *h, int dir, const uint8_t *data, size_t len, size_t orig_len,
                 unsigned flags, uint64_t ts)
{
	struct h2_dir *d;
	size_t pos = 0;
	bool found = false;

	if (dir != 0 && dir != 1)
		return -1;
	d = &h->d[dir];
	if (!data)
		len = 0;
	if (orig_len < len)
		orig_len = len;
	if ((flags & H2_IN_GAP) && d->st != D_START)
		lose(h, dir, ts);
	while (pos < len) {
		switch (d->st) {
		case D_START:
			dir_start(h, dir, data + pos, len - pos, orig_len - pos);
			break;
		case D_PREFACE:
			pos += step_preface(h, dir, data + pos, len - pos, ts);
			break;
		case D_HDR:
			if (d->hdr_n == 0)
				d->hdr_at = d->fed + pos;
			pos += step_hdr(h, dir, data + pos, len - pos, ts);
			break;
		case D_PAYLOAD:
			pos += step_payload(h, dir, data + pos, len - pos, ts);
			break;
		case D_LOST:
			/* the transfer's total size counts only from its first byte */
			pos += step_lost(h, dir, data + pos, len - pos, pos ? len - pos : orig_len,
			                 &found);
			break;
		}
	}
	if (orig_len > len) {
		uint64_t m = orig_len - len;
		while (m && d->st == D_PAYLOAD)
			m -= payload_hidden(h, dir, m, ts);
		if (m && d->st != D_LOST)
			lose(h, dir, ts); /* a frame header (or the preface) was not captured */
		else if (m)
			d->hp_dirty = true;
	}
	d->fed += orig_len;
	/* Only a chunk captured whole counts against the connection: inside a
	 * bulk transfer cut by the capture, a boundary is rarely in reach. */
	if (d->st == D_LOST && !found && len && len == orig_len)
		d->lost_chunks++;
	else if (found)
		d->lost_chunks = 0;
	return 0;
}

enum h2_mode h2_conn_mode(const struct h2_conn *h)
{
	return h->mode;
}

int h2_conn_req_dir(const struct h2_conn *h)
{
	return h->req_dir;
}

void h2_conn_set_req_dir(struct h2_conn *h, int dir)
{
	if (h->req_dir < 0 && (dir == 0 || dir == 1))
		h->req_dir = dir;
}

const struct h2_stats *h2_conn_stats(const struct h2_conn *h)
{
	return &h->st;
}

int h2_conn_lost(const struct h2_conn *h, int dir)
{
	return (dir == 0 || dir == 1) && h->d[dir].st == D_LOST;
}

int h2_conn_block_at(const struct h2_conn *h, int dir, uint64_t *at)
{
	if ((dir != 0 && dir != 1) || h->d[dir].ever_lost)
		return -1;
	*at = h->d[dir].blk_at;
	return 0;
}

unsigned h2_conn_lost_chunks(const struct h2_conn *h, int dir)
{
	return (dir == 0 || dir == 1) ? h->d[dir].lost_chunks : 0;
}
