/*
 * hpack_decode_test.c - plugins/grpc/hpack.c: RFC 7541 Appendix C through
 * our decoding path, blocks cut at every byte, and the mid-connection
 * guarantee: after the table is lost, a field is either exactly what the
 * encoder meant at that position or reported unknown, never a stale entry.
 *
 * The one idea for the last part: a reference decoder that saw everything
 * (plain nghttp2 from the first block) says what each position of each
 * block really is; our decoder, started late or made to lose blocks, must
 * agree at every position it reports.
 */
#include <check.h>
#include <stdbool.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#include "hpack.h"
#include "test/h2_build.h"

#define MAXF 64

struct got {
	unsigned n;
	unsigned pos[MAXF];
	char name[MAXF][128];
	char value[MAXF][256];
};

static void rec(void *ctx, unsigned pos, const uint8_t *n, size_t nl, const uint8_t *v, size_t vl)
{
	struct got *g = ctx;

	if (g->n >= MAXF)
		return;
	g->pos[g->n] = pos;
	snprintf(g->name[g->n], sizeof(g->name[0]), "%.*s", (int)nl, (const char *)n);
	snprintf(g->value[g->n], sizeof(g->value[0]), "%.*s", (int)vl, (const char *)v);
	g->n++;
}

/* "name: value\n" lines of what was decoded. */
static void text(const struct got *g, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = 0;
	for (unsigned i = 0; i < g->n && o < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s: %s\n", g->name[i], g->value[i]);
}

static void decode_hex(struct hpack_dec *d, const char *hex, const char *want, size_t entries)
{
	uint8_t blk[1024];
	size_t n = h2b_unhex(hex, blk, sizeof(blk));
	struct hpack_result r;
	struct got g = { 0 };
	char t[4096];

	ck_assert_int_eq(hpack_decode(d, blk, n, 1, rec, &g, &r), 0);
	ck_assert(!r.error && !r.cut);
	ck_assert_uint_eq(r.unknown, 0);
	text(&g, t, sizeof(t));
	ck_assert_str_eq(t, want);
	ck_assert_uint_eq(hpack_dec_entries(d), entries);
}

/* --- RFC 7541 Appendix C ------------------------------------------------------------ */

static const char *const c3_want[] = {
	":method: GET\n:scheme: http\n:path: /\n:authority: www.example.com\n",
	":method: GET\n:scheme: http\n:path: /\n:authority: www.example.com\ncache-control: no-cache\n",
	(":method: GET\n:scheme: https\n:path: /index.html\n:authority: www.example.com\n"
	 "custom-key: custom-value\n"),
};

START_TEST(rfc_c3_requests_plain)
{
	struct hpack_dec *d = hpack_dec_new();

	decode_hex(d, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", c3_want[0], 1);
	decode_hex(d, "8286 84be 5808 6e6f 2d63 6163 6865", c3_want[1], 2);
	decode_hex(d, "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
	           c3_want[2], 3);
	hpack_dec_free(d);
}
END_TEST

START_TEST(rfc_c4_requests_huffman)
{
	struct hpack_dec *d = hpack_dec_new();

	decode_hex(d, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", c3_want[0], 1);
	decode_hex(d, "8286 84be 5886 a8eb 1064 9cbf", c3_want[1], 2);
	decode_hex(d, "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", c3_want[2], 3);
	hpack_dec_free(d);
}
END_TEST

static const char *const c5_want[] = {
	":status: 302\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:21 GMT\n"
	"location: https://www.example.com\n",
	":status: 307\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:21 GMT\n"
	"location: https://www.example.com\n",
	":status: 200\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:22 GMT\n"
	"location: https://www.example.com\ncontent-encoding: gzip\n"
	"set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1\n",
};

static const char *const c5_hex[] = {
	"4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 "
	"303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
	"4803 3330 37c1 c0bf",
	"88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 "
	"5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 "
	"5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
};

static const char *const c6_hex[] = {
	"4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b "
	"ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
	"4883 640e ffc1 c0bf",
	"88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad "
	"94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 "
	"65c0 03ed 4ee5 b106 3d50 07",
};

/* The examples assume SETTINGS_HEADER_TABLE_SIZE = 256 on both sides: an
 * empty block with a table size update to 256 puts our decoder there. */
static void table_256(struct hpack_dec *d)
{
	decode_hex(d, "3fe101", "", 0);
}

static void responses(const char *const *hex, int exact_256)
{
	static const size_t entries_256[] = { 4, 4, 3 };
	static const size_t entries_4096[] = { 4, 5, 8 };
	struct hpack_dec *d = hpack_dec_new();

	if (exact_256)
		table_256(d);
	for (int i = 0; i < 3; i++)
		decode_hex(d, hex[i], c5_want[i], exact_256 ? entries_256[i] : entries_4096[i]);
	hpack_dec_free(d);
}

START_TEST(rfc_c5_responses_plain)
{
	responses(c5_hex, 1);
}
END_TEST

START_TEST(rfc_c6_responses_huffman)
{
	responses(c6_hex, 1);
}
END_TEST

/* A larger table than the encoder's (what a reset gives) decodes the same:
 * the encoder never refers to the entries only we still hold. */
START_TEST(rfc_c5_c6_larger_table_same_fields)
{
	responses(c5_hex, 0);
	responses(c6_hex, 0);
}
END_TEST

/* --- cut blocks ------------------------------------------------------------------------ */

/* C.4.3 and C.6.3 cut at every byte: what comes out is exactly a prefix of
 * the full decode, and the table is reset afterwards. */
START_TEST(cut_at_every_byte)
{
	const char *first_hex = "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff";
	const char *full_hex = "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf";
	uint8_t blk[256];
	size_t n = h2b_unhex(full_hex, blk, sizeof(blk));

	for (size_t cut = 0; cut <= n; cut++) {
		struct hpack_dec *d = hpack_dec_new();
		uint8_t p1[64];
		size_t n1 = h2b_unhex(first_hex, p1, sizeof(p1));
		struct hpack_result r;
		struct got g = { 0 };
		const char *names[] = { ":method", ":scheme", ":path", ":authority", "custom-key" };
		const char *vals[] = { "GET", "https", "/index.html", "www.example.com",
			               "custom-value" };

		ck_assert_int_eq(hpack_decode(d, p1, n1, 1, NULL, NULL, &r), 0);
		/* the second block of C.4 is skipped: its insertion is unknown */
		ck_assert_int_eq(hpack_dec_reset(d), 0);
		ck_assert_int_eq(hpack_decode(d, blk, cut, 0, rec, &g, &r), 0);
		ck_assert(r.cut);
		for (unsigned i = 0; i < g.n; i++) {
			ck_assert_str_eq(g.name[i], names[g.pos[i]]);
			ck_assert_str_eq(g.value[i], vals[g.pos[i]]);
		}
		/* "bf" (index 63) refers to an entry inserted before the reset */
		for (unsigned i = 0; i < g.n; i++)
			ck_assert_uint_ne(g.pos[i], 3);
		ck_assert_uint_eq(hpack_dec_entries(d), 0);
		hpack_dec_free(d);
	}
}
END_TEST

/* --- unknown dynamic entries -------------------------------------------------------------- */

/* Joined late: the table held entries we never saw. */
START_TEST(stale_index_never_attributed)
{
	struct hpack_dec *d = hpack_dec_new();
	struct hpack_result r;
	struct got g = { 0 };
	uint8_t blk[64];
	size_t n;

	ck_assert_int_eq(hpack_dec_reset(d), 0);
	/* :method GET, then index 62 (unknown), then a literal "x-a: 1" inserted */
	n = h2b_unhex("82 be 40 03 782d61 01 31", blk, sizeof(blk));
	ck_assert_int_eq(hpack_decode(d, blk, n, 1, rec, &g, &r), 0);
	ck_assert_uint_eq(r.fields, 2);
	ck_assert_uint_eq(r.unknown, 1);
	ck_assert_str_eq(g.name[0], ":method");
	ck_assert_str_eq(g.name[1], "x-a");
	ck_assert_uint_eq(g.pos[1], 2);
	ck_assert_uint_eq(hpack_dec_entries(d), 1);

	/* 62 is now x-a: 1 (exact); 63 is whatever was there before: unknown.
	 * A decoder that kept a stale table would answer something for 63. */
	memset(&g, 0, sizeof(g));
	n = h2b_unhex("be bf", blk, sizeof(blk));
	ck_assert_int_eq(hpack_decode(d, blk, n, 1, rec, &g, &r), 0);
	ck_assert_uint_eq(r.fields, 1);
	ck_assert_uint_eq(r.unknown, 1);
	ck_assert_str_eq(g.name[0], "x-a");
	ck_assert_str_eq(g.value[0], "1");
	hpack_dec_free(d);
}
END_TEST

/* A literal with incremental indexing whose name is an unknown entry: the
 * value is inserted (indexes stay aligned), the entry is tainted. */
START_TEST(unknown_name_insert_is_tainted)
{
	struct hpack_dec *d = hpack_dec_new();
	struct hpack_result r;
	struct got g = { 0 };
	uint8_t blk[64];
	size_t n;

	ck_assert_int_eq(hpack_dec_reset(d), 0);
	/* 0x7e = literal inc-index, name index 62 (unknown), value "v" */
	n = h2b_unhex("7e 01 76", blk, sizeof(blk));
	ck_assert_int_eq(hpack_decode(d, blk, n, 1, rec, &g, &r), 0);
	ck_assert_uint_eq(r.fields, 0);
	ck_assert_uint_eq(r.unknown, 1);
	ck_assert_uint_eq(hpack_dec_entries(d), 1);
	/* then "x-b: 2" inserted: 62 = x-b, 63 = the tainted one */
	n = h2b_unhex("40 03 782d62 01 32", blk, sizeof(blk));
	ck_assert_int_eq(hpack_decode(d, blk, n, 1, rec, &g, &r), 0);
	memset(&g, 0, sizeof(g));
	/* 62 (known), 63 (tainted), literal name-ref 63 without indexing */
	n = h2b_unhex("be bf 0f 30 01 77", blk, sizeof(blk));
	ck_assert_int_eq(hpack_decode(d, blk, n, 1, rec, &g, &r), 0);
	ck_assert_uint_eq(r.fields, 1);
	ck_assert_uint_eq(r.unknown, 2);
	ck_assert_str_eq(g.name[0], "x-b");
	hpack_dec_free(d);
}
END_TEST

START_TEST(garbage_is_an_error_and_resets)
{
	struct hpack_dec *d = hpack_dec_new();
	struct hpack_result r;
	uint8_t blk[] = { 0x80 }; /* index 0 is invalid */
	uint8_t big[] = { 0x3f, 0xff, 0xff, 0xff, 0x7f }; /* table size way too big */
	uint8_t trunc[] = { 0x40, 0x05, 'a' };            /* string runs past the end */

	ck_assert_int_eq(hpack_decode(d, blk, sizeof(blk), 1, NULL, NULL, &r), -1);
	ck_assert(r.error);
	ck_assert_int_eq(hpack_decode(d, big, sizeof(big), 1, NULL, NULL, &r), -1);
	ck_assert_int_eq(hpack_decode(d, trunc, sizeof(trunc), 1, NULL, NULL, &r), -1);
	ck_assert_uint_ge(hpack_dec_resets(d), 3);
	/* still usable */
	decode_hex(d, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", c3_want[0], 1);
	hpack_dec_free(d);
}
END_TEST

/* --- the property, at scale ---------------------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A header list from a small vocabulary, so values repeat and the encoder
 * refers back to its table; lengths vary so eviction happens. */
static size_t make_list(uint64_t *rs, unsigned blk_no, nghttp2_nv *nv, char store[][96])
{
	static const char *const names[] = { ":method", ":path", "content-type", "x-id",
		                             "user-agent", "x-long", "grpc-status", "te" };
	size_t n = 4 + rnd(rs) % 10;

	for (size_t i = 0; i < n; i++) {
		unsigned k = (unsigned)(rnd(rs) % 8);
		unsigned v = (unsigned)(rnd(rs) % 6);
		int len;
		if (k == 3) /* a value unique to the block: inserted every time */
			len = snprintf(store[i], 96, "id-%u-%zu", blk_no, i);
		else if (k == 5)
			len = snprintf(store[i], 96, "%0*u", (int)(10 + v * 12), v);
		else
			len = snprintf(store[i], 96, "val%u", v);
		nv[i].name = (uint8_t *)names[k];
		nv[i].namelen = strlen(names[k]);
		nv[i].value = (uint8_t *)store[i];
		nv[i].valuelen = (size_t)len;
		nv[i].flags = (rnd(rs) % 9 == 0) ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
	}
	return n;
}

static void reference(nghttp2_hd_inflater *inf, const uint8_t *b, size_t n, struct got *g)
{
	memset(g, 0, sizeof(*g));
	for (;;) {
		nghttp2_nv nv;
		int fl = 0;
		ssize_t r = nghttp2_hd_inflate_hd2(inf, &nv, &fl, b, n, 1);
		ck_assert_int_ge(r, 0);
		b += r;
		n -= (size_t)r;
		if (fl & NGHTTP2_HD_INFLATE_EMIT)
			rec(g, g->n, nv.name, nv.namelen, nv.value, nv.valuelen);
		if (fl & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(inf);
			return;
		}
	}
}

/*
 * 400 blocks from one encoder (its table size changed now and then). Our
 * decoder joins at block `join` and also loses some blocks entirely or
 * partly on the way. Every field it reports must equal the reference at the
 * same position; and fields must become known again after the losses.
 */
static void property_run(uint64_t seed, unsigned join, unsigned loss_every)
{
	uint64_t rs = seed;
	nghttp2_hd_deflater *def;
	nghttp2_hd_inflater *ref;
	struct hpack_dec *d = hpack_dec_new();
	unsigned reported = 0, unknown = 0, late_known = 0;
	bool dirty = false;

	ck_assert_int_eq(nghttp2_hd_deflate_new(&def, 4096), 0);
	ck_assert_int_eq(nghttp2_hd_inflate_new(&ref), 0);
	nghttp2_hd_inflate_change_table_size(ref, 65536);
	for (unsigned b = 0; b < 400; b++) {
		nghttp2_nv nv[16];
		char store[16][96];
		uint8_t blk[8192];
		size_t n = make_list(&rs, b, nv, store);
		ssize_t len;
		struct got want, g = { 0 };
		struct hpack_result r;

		if (rnd(&rs) % 50 == 0) /* SETTINGS changed: encoder announces it */
			nghttp2_hd_deflate_change_table_size(def, (size_t)(256 + rnd(&rs) % 8000));
		len = nghttp2_hd_deflate_hd(def, blk, sizeof(blk), nv, n);
		ck_assert_int_gt(len, 0);
		reference(ref, blk, (size_t)len, &want);
		if (b < join)
			continue;
		if (b == join)
			dirty = true; /* joined here: everything before is unknown */
		if (b > join && loss_every && b % loss_every == 0) {
			if (rnd(&rs) % 2) {
				dirty = true; /* the whole block lost */
				continue;
			}
			/* the block's tail lost: decoded up to the cut, then reset */
			size_t cut = (size_t)(rnd(&rs) % (size_t)len);
			if (dirty)
				ck_assert_int_eq(hpack_dec_reset(d), 0);
			dirty = false;
			ck_assert_int_eq(hpack_decode(d, blk, cut, 0, rec, &g, &r), 0);
			ck_assert(r.cut);
		} else {
			/* what h2_conn does: reset right before the next block */
			if (dirty)
				ck_assert_int_eq(hpack_dec_reset(d), 0);
			dirty = false;
			ck_assert_int_eq(hpack_decode(d, blk, (size_t)len, 1, rec, &g, &r), 0);
			ck_assert_uint_eq(r.fields + r.unknown, want.n);
			unknown += r.unknown;
			if (b > 300)
				late_known += r.fields;
		}
		for (unsigned i = 0; i < g.n; i++) {
			ck_assert_uint_lt(g.pos[i], want.n);
			ck_assert_str_eq(g.name[i], want.name[g.pos[i]]);
			ck_assert_str_eq(g.value[i], want.value[g.pos[i]]);
		}
		reported += g.n;
	}
	ck_assert_uint_gt(reported, 0);
	ck_assert_uint_gt(unknown, 0);    /* the join did hide something */
	ck_assert_uint_gt(late_known, 0); /* and knowledge came back */
	nghttp2_hd_deflate_del(def);
	nghttp2_hd_inflate_del(ref);
	hpack_dec_free(d);
}

START_TEST(midstream_join_never_misattributes)
{
	for (uint64_t seed = 1; seed <= 40; seed++)
		property_run(seed * 0x9e3779b97f4a7c15ull, (unsigned)(seed * 7 % 60), 0);
}
END_TEST

START_TEST(losses_never_misattribute)
{
	for (uint64_t seed = 1; seed <= 40; seed++)
		property_run(seed * 0xbf58476d1ce4e5b9ull, (unsigned)(seed % 20), 5 + (unsigned)(seed % 11));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("hpack");
	TCase *t = tcase_create("hpack");

	tcase_add_test(t, rfc_c3_requests_plain);
	tcase_add_test(t, rfc_c4_requests_huffman);
	tcase_add_test(t, rfc_c5_responses_plain);
	tcase_add_test(t, rfc_c6_responses_huffman);
	tcase_add_test(t, rfc_c5_c6_larger_table_same_fields);
	tcase_add_test(t, cut_at_every_byte);
	tcase_add_test(t, stale_index_never_attributed);
	tcase_add_test(t, unknown_name_insert_is_tainted);
	tcase_add_test(t, garbage_is_an_error_and_resets);
	tcase_add_test(t, midstream_join_never_misattributes);
	tcase_add_test(t, losses_never_misattribute);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
