/*
 * hpack.c - HPACK decoding for an observer that may not know the dynamic
 * table (see hpack.h for the reasoning).
 *
 * The one idea: split the block into representations ourselves (integers
 * and string lengths only, no Huffman), look at the index each one uses,
 * and hand nghttp2 either the representation as it is or a rewritten one
 * that needs no unknown entry. nghttp2 does all the decoding, Huffman and
 * table bookkeeping; this file only decides what it may be shown.
 */
#include "hpack.h"

#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#define HPACK_STATIC_ENTRIES 61

struct hpack_dec {
	nghttp2_hd_inflater *inf; /* NULL after an allocation failure */
	uint32_t accept;          /* largest table size update accepted */
	uint64_t inserted;        /* insertions since the inflater was made */
	uint8_t *taint;           /* bit per insertion number (mod taint_bits) */
	uint32_t taint_bits;      /* power of two, > accept / 32 */
	unsigned resets;
};

enum rep_kind { REP_INDEXED, REP_INC, REP_NOIDX, REP_NEVER, REP_SIZE };

/* One representation at the head of a block (RFC 7541 section 6). */
struct rep {
	enum rep_kind kind;
	uint32_t index;  /* field index, name index (0: literal name), or size */
	size_t len;      /* bytes the representation takes */
	size_t val_off;  /* literals: where the value string starts */
};

/* --- scanning -------------------------------------------------------------- */

/* An integer with an N-bit prefix (section 5.1). 1 = done, 0 = needs more
 * bytes, -1 = longer than any value we accept (2^28). */
static int varint(const uint8_t *p, size_t n, unsigned prefix, uint32_t *out, size_t *used)
{
	uint32_t mask = (1u << prefix) - 1, v;
	unsigned shift = 0;
	size_t i = 1;

	if (!n)
		return 0;
	v = p[0] & mask;
	if (v < mask) {
		*out = v;
		*used = 1;
		return 1;
	}
	for (;;) {
		uint8_t b;

		if (i >= n)
			return 0;
		if (shift > 21)
			return -1;
		b = p[i++];
		v += (uint32_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			break;
	}
	*out = v;
	*used = i;
	return 1;
}

/* A string literal (section 5.2): its total size in *used. */
static int str_scan(const uint8_t *p, size_t n, size_t *used)
{
	uint32_t len;
	size_t u;
	int k = varint(p, n, 7, &len, &u);

	if (k <= 0)
		return k;
	if (len > n - u)
		return 0;
	*used = u + len;
	return 1;
}

static int rep_scan(const uint8_t *p, size_t n, struct rep *r)
{
	unsigned prefix;
	size_t u, s;
	int k;

	r->val_off = 0;
	if (p[0] & 0x80) {
		r->kind = REP_INDEXED;
		prefix = 7;
	} else if (p[0] & 0x40) {
		r->kind = REP_INC;
		prefix = 6;
	} else if (p[0] & 0x20) {
		r->kind = REP_SIZE;
		prefix = 5;
	} else {
		r->kind = (p[0] & 0x10) ? REP_NEVER : REP_NOIDX;
		prefix = 4;
	}
	k = varint(p, n, prefix, &r->index, &u);
	if (k <= 0)
		return k;
	if (r->kind == REP_INDEXED || r->kind == REP_SIZE) {
		r->len = u;
		return 1;
	}
	if (r->index == 0) {
		k = str_scan(p + u, n - u, &s);
		if (k <= 0)
			return k;
		u += s;
	}
	r->val_off = u;
	k = str_scan(p + u, n - u, &s);
	if (k <= 0)
		return k;
	r->len = u + s;
	return 1;
}

/* --- taint: entries whose name we inserted empty because it was unknown - */

static uint32_t ring_bits_for(uint32_t accept)
{
	uint32_t bits = 64;

	while (bits <= accept / 32 + 1)
		bits *= 2;
	return bits;
}

static bool bit_get(const uint8_t *r, uint64_t i, uint32_t bits)
{
	uint64_t k = i & (bits - 1);

	return r[k >> 3] >> (k & 7) & 1;
}

static void bit_put(uint8_t *r, uint64_t i, uint32_t bits, bool v)
{
	uint64_t k = i & (bits - 1);

	if (v)
		r[k >> 3] |= (uint8_t)(1u << (k & 7));
	else
		r[k >> 3] &= (uint8_t)~(1u << (k & 7));
}

static size_t dyn_entries(const struct hpack_dec *d)
{
	size_t n = nghttp2_hd_inflate_get_num_table_entries((nghttp2_hd_inflater *)d->inf);

	return n > HPACK_STATIC_ENTRIES ? n - HPACK_STATIC_ENTRIES : 0;
}

/* Is the dynamic entry at position pos (0 = newest) tainted? */
static bool tainted(const struct hpack_dec *d, size_t pos)
{
	if (!d->taint || pos >= d->inserted)
		return d->taint != NULL;
	return bit_get(d->taint, d->inserted - 1 - pos, d->taint_bits);
}

/* A ring big enough for `accept`, keeping the bits of the live entries. */
static int ring_fit(struct hpack_dec *d)
{
	uint32_t bits = ring_bits_for(d->accept);
	size_t live = dyn_entries(d);
	uint8_t *r;

	if (d->taint && bits <= d->taint_bits)
		return 0;
	r = calloc(bits / 8, 1);
	if (!r)
		return -1;
	for (size_t pos = 0; d->taint && pos < live && pos < d->inserted; pos++)
		bit_put(r, d->inserted - 1 - pos, bits, tainted(d, pos));
	free(d->taint);
	d->taint = r;
	d->taint_bits = bits;
	return 0;
}

/* An entry was inserted (it may not fit and empty the table: nghttp2 and
 * the real decoder agree on that). */
static int note_insert(struct hpack_dec *d, bool is_tainted)
{
	uint64_t seq = d->inserted++;

	if (is_tainted && !d->taint && ring_fit(d))
		return -1;
	if (d->taint)
		bit_put(d->taint, seq, d->taint_bits, is_tainted);
	return 0;
}

/* --- feeding nghttp2 ---------------------------------------------------------- */

/* Give n bytes (one representation, or part of one) to nghttp2. A field
 * emitted is left in *nv and *emitted set; final ends the block. */
static int feed(struct hpack_dec *d, const uint8_t *p, size_t n, int final, nghttp2_nv *nv,
                bool *emitted)
{
	for (;;) {
		int fl = 0;
#if NGHTTP2_VERSION_NUM >= 0x013d00
		nghttp2_ssize r = nghttp2_hd_inflate_hd3(d->inf, nv, &fl, p, n, final);
#else
		ssize_t r = nghttp2_hd_inflate_hd2(d->inf, nv, &fl, p, n, final);
#endif
		if (r < 0 || (size_t)r > n)
			return -1;
		if (r) {
			p += r;
			n -= (size_t)r;
		}
		if (fl & NGHTTP2_HD_INFLATE_EMIT)
			*emitted = true;
		if (fl & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(d->inf);
			return 0;
		}
		if (!n && !final)
			return 0;
		if (!n && !(fl & NGHTTP2_HD_INFLATE_EMIT))
			return -1; /* final asked, not reached */
		if (n && (fl & NGHTTP2_HD_INFLATE_EMIT))
			return -1; /* more than one field in one representation */
	}
}

/* A literal's replacement when its name is an unknown entry: same kind,
 * empty literal name, the original value string. */
static int feed_unknown_name(struct hpack_dec *d, const uint8_t *p, const struct rep *r,
                             nghttp2_nv *nv, bool *emitted)
{
	uint8_t head[2] = { 0x00, 0x00 };

	if (r->kind == REP_INC)
		head[0] = 0x40;
	else if (r->kind == REP_NEVER)
		head[0] = 0x10;
	if (feed(d, head, sizeof(head), 0, nv, emitted))
		return -1;
	return feed(d, p + r->val_off, r->len - r->val_off, 0, nv, emitted);
}

static int one_rep(struct hpack_dec *d, const uint8_t *p, const struct rep *r,
                   hpack_field_cb cb, void *ctx, struct hpack_result *res)
{
	static const uint8_t unknown_field[3] = { 0x00, 0x00, 0x00 }; /* "": "" */
	nghttp2_nv nv;
	bool emitted = false, unknown = false;
	int rc;

	memset(&nv, 0, sizeof(nv));
	if (r->kind == REP_SIZE)
		return feed(d, p, r->len, 0, &nv, &emitted);
	if (r->index > HPACK_STATIC_ENTRIES) {
		size_t pos = r->index - HPACK_STATIC_ENTRIES - 1;
		if (pos >= dyn_entries(d)) {
			unknown = true;
			if (r->kind == REP_INDEXED)
				rc = feed(d, unknown_field, sizeof(unknown_field), 0, &nv, &emitted);
			else
				rc = feed_unknown_name(d, p, r, &nv, &emitted);
		} else {
			unknown = tainted(d, pos);
			rc = feed(d, p, r->len, 0, &nv, &emitted);
		}
	} else {
		rc = feed(d, p, r->len, 0, &nv, &emitted);
	}
	if (rc || !emitted)
		return -1;
	if (r->kind == REP_INC && note_insert(d, unknown))
		return -1;
	if (unknown) {
		res->unknown++;
		return 0;
	}
	res->fields++;
	if (cb)
		cb(ctx, res->fields + res->unknown - 1, nv.name, nv.namelen, nv.value, nv.valuelen);
	return 0;
}

/* --- public ------------------------------------------------------------------ */

static int inflater_make(struct hpack_dec *d)
{
	if (nghttp2_hd_inflate_new(&d->inf)) {
		d->inf = NULL;
		return -1;
	}
	if (nghttp2_hd_inflate_change_table_size(d->inf, d->accept)) {
		nghttp2_hd_inflate_del(d->inf);
		d->inf = NULL;
		return -1;
	}
	d->inserted = 0;
	return 0;
}

struct hpack_dec *hpack_dec_new(void)
{
	struct hpack_dec *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->accept = HPACK_TABLE_ACCEPT;
	if (inflater_make(d)) {
		free(d);
		return NULL;
	}
	return d;
}

void hpack_dec_free(struct hpack_dec *d)
{
	if (!d)
		return;
	if (d->inf)
		nghttp2_hd_inflate_del(d->inf);
	free(d->taint);
	free(d);
}

int hpack_dec_reset(struct hpack_dec *d)
{
	uint8_t blk[8];
	size_t n = 0;
	uint32_t v = d->accept;
	nghttp2_nv nv;
	bool emitted = false;

	d->resets++;
	if (d->inf)
		nghttp2_hd_inflate_del(d->inf);
	free(d->taint);
	d->taint = NULL;
	d->taint_bits = 0;
	if (inflater_make(d))
		return -1;
	/* Our table's maximum size: the largest the real one may have. */
	blk[n++] = 0x20 | 31;
	v -= 31;
	while (v >= 128) {
		blk[n++] = (uint8_t)(0x80 | (v & 0x7f));
		v >>= 7;
	}
	blk[n++] = (uint8_t)v;
	if (feed(d, blk, n, 0, &nv, &emitted) || feed(d, NULL, 0, 1, &nv, &emitted)) {
		nghttp2_hd_inflate_del(d->inf);
		d->inf = NULL;
		return -1;
	}
	return 0;
}

void hpack_dec_accept_size(struct hpack_dec *d, uint32_t settings_value)
{
	uint32_t v = settings_value > HPACK_TABLE_MAX ? HPACK_TABLE_MAX : settings_value;

	if (v <= d->accept)
		return;
	d->accept = v;
	if (d->inf && nghttp2_hd_inflate_change_table_size(d->inf, v))
		hpack_dec_reset(d);
	if (d->taint && ring_fit(d))
		hpack_dec_reset(d);
}

int hpack_decode(struct hpack_dec *d, const uint8_t *blk, size_t len, int complete,
                 hpack_field_cb cb, void *ctx, struct hpack_result *res)
{
	size_t pos = 0;
	nghttp2_nv nv;
	bool emitted = false;

	memset(res, 0, sizeof(*res));
	if (!d->inf && hpack_dec_reset(d)) {
		res->error = true;
		return -1;
	}
	while (pos < len) {
		struct rep r;
		int k = rep_scan(blk + pos, len - pos, &r);

		if (k == 0 && !complete)
			break;
		if (k <= 0 || one_rep(d, blk + pos, &r, cb, ctx, res))
			goto bad;
		pos += r.len;
	}
	if (!complete) {
		res->cut = true;
		hpack_dec_reset(d);
		return 0;
	}
	if (feed(d, NULL, 0, 1, &nv, &emitted))
		goto bad;
	return 0;
bad:
	res->error = true;
	hpack_dec_reset(d);
	return -1;
}

size_t hpack_dec_entries(const struct hpack_dec *d)
{
	return d->inf ? dyn_entries(d) : 0;
}

unsigned hpack_dec_resets(const struct hpack_dec *d)
{
	return d->resets;
}
