/*
 * grpc_recorded_test.c - the grpc plugin on a real conversation: python3
 * grpcio 1.51 (gRPC C-core) client and server, recorded with
 * plugins/grpc/test/record_proxy.py (each record is one read of the proxy,
 * i.e. what one side received). C-core indexes :path, content-type and
 * grpc-status in its HPACK tables and refers to them afterwards, which is
 * what makes joining such a connection mid-way hard.
 *
 * The calls, as the client and the server counted them: warm-up Unary and
 * ServerStream, then Unary x3 (OK), Unary failing with 5 and 14,
 * ServerStream, ClientStream, Bidi, an unknown method "Nope" (12), and 3
 * concurrent Unary calls.
 *
 * The one idea: the full conversation gives the truth for every stream,
 * keyed by the records holding its first and last bytes; every other way
 * of feeding it (cut anywhere, joined at any record, cut by a small
 * capture) must never say anything that contradicts that truth.
 */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "testhost.h"
#include "test/h2_build.h"

const struct sonde_plugin *sonde_plugin_entry(void);

struct rec {
	int from_client;
	size_t len;
	const char *hex;
};

static const struct rec recs[] = {
	{ 1, 82, "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a0000240400000000000002000000000003000000000004003fffff0005003fffff000600002000fe0300000001000004080000000000003f0000" },
	{ 0, 46, "0000180400000000000004003fffff0005003fffff000600002000fe0300000001000004080000000000003f0000" },
	{ 0, 9, "000000040100000000" },
	{ 1, 285, "0000000401000000000000df01040000000140053a70617468102f64656d6f2e4563686f2f556e617279400a3a617574686f726974790f3132372e302e302e313a35303537338386400c636f6e74656e742d74797065106170706c69636174696f6e2f677270634002746508747261696c6572734014677270632d6163636570742d656e636f64696e67176964656e746974792c206465666c6174652c20677a6970400c677270632d74696d656f757403323053400a757365722d6167656e7430677270632d707974686f6e2f312e35312e3120677270632d632f32392e302e3020286c696e75783b20636874747032290000040800000000010000000500000900010000000100000000047761726d00000408000000000000000005" },
	{ 0, 17, "0000080600000000000000000000000000" },
	{ 1, 17, "0000080601000000000000000000000000" },
	{ 0, 147, "00004e01040000000188400c636f6e74656e742d74797065106170706c69636174696f6e2f677270634014677270632d6163636570742d656e636f64696e67176964656e746974792c206465666c6174652c20677a697000000e00000000000100000000096563686f3a7761726d00000f010500000001400b677270632d737461747573013000000408000000000000000009" },
	{ 1, 17, "0000080600000000000000000000000000" },
	{ 0, 17, "0000080601000000000000000000000000" },
	{ 1, 96, "00003b01040000000340053a70617468172f64656d6f2e4563686f2f53657276657253747265616dc48386c3c2c1400c677270632d74696d656f75740632303130306dc000000600010000000300000000013200000408000000000000000009" },
	{ 0, 45, "00000301040000000388c0bf00000b00000000000300000000066974656d203000000408000000000000000006" },
	{ 1, 26, "0000040800000000030000001000000408000000000000000010" },
	{ 0, 30, "00000b00000000000300000000066974656d2031000001010500000003be" },
	{ 1, 65, "000009010400000005c6c58386c4c3c2bec00000040800000000050000000500000c000100000005000000000768656c6c6f20300000040800000000000000000b" },
	{ 0, 61, "00000301040000000588c0bf000011000000000005000000000c6563686f3a68656c6c6f2030000001010500000005be0000040800000000000000000c" },
	{ 1, 65, "000009010400000007c6c58386c4c3c2bec00000040800000000070000000500000c000100000007000000000768656c6c6f203100000408000000000000000011" },
	{ 0, 61, "00000301040000000788c0bf000011000000000007000000000c6563686f3a68656c6c6f2031000001010500000007be0000040800000000000000000c" },
	{ 1, 65, "000009010400000009c6c58386c4c3c2bec00000040800000000090000000500000c000100000009000000000768656c6c6f203200000408000000000000000011" },
	{ 0, 61, "00000301040000000988c0bf000011000000000009000000000c6563686f3a68656c6c6f2032000001010500000009be0000040800000000000000000c" },
	{ 1, 64, "00000901040000000bc6c58386c4c3c2bec000000408000000000b0000000500000b00010000000b00000000066661696c3a3500000408000000000000000011" },
	{ 0, 103, "00005101050000000b88c0400b677270632d7374617475730135000c677270632d6d657373616765316661696c6564206f6e20707572706f73653a20757365722064617461206d757374206e6f74206265206578706f727465640000040800000000000000000b" },
	{ 1, 52, "00000901040000000dc6c58386c4c3c2bec000000408000000000d0000000500000c00010000000d00000000076661696c3a3134" },
	{ 0, 104, "00005201050000000d88c1400b677270632d737461747573023134000c677270632d6d657373616765316661696c6564206f6e20707572706f73653a20757365722064617461206d757374206e6f74206265206578706f727465640000040800000000000000000c" },
	{ 1, 33, "00000901040000000fbfc58386c4c3c2bec000000600010000000f000000000135" },
	{ 0, 65, "00000301040000000f88c2c100000b00000000000f00000000066974656d20300000040800000000000000000600000b00000000000f00000000066974656d2031" },
	{ 0, 20, "00000b00000000000f00000000066974656d2032" },
	{ 0, 20, "00000b00000000000f00000000066974656d2033" },
	{ 1, 26, "00000408000000000f0000001b00000408000000000000000016" },
	{ 1, 26, "00000408000000000f0000000b0000040800000000000000000b" },
	{ 0, 20, "00000b00000000000f00000000066974656d2034" },
	{ 0, 10, "00000101050000000fc0" },
	{ 1, 26, "00000408000000000f0000000b0000040800000000000000000b" },
	{ 1, 74, "00002701040000001140053a70617468172f64656d6f2e4563686f2f436c69656e7453747265616dc68386c5c4c3bfc1000004080000000011000000050000040800000000000000000b" },
	{ 1, 15, "000006000000000011000000000161" },
	{ 1, 15, "000006000000000011000000000162" },
	{ 1, 15, "000006000000000011000000000163" },
	{ 1, 9, "000000000100000011" },
	{ 0, 50, "00000301040000001188c2c1000006000000000011000000000133000001010500000011c000000408000000000000000012" },
	{ 1, 53, "00001f01040000001340053a706174680f2f64656d6f2e4563686f2f42696469c78386c6c5c4c0c200000408000000000000000001" },
	{ 1, 15, "000006000000000013000000000178" },
	{ 1, 41, "0000040800000000130000000500000600000000001300000000017900000408000000000000000005" },
	{ 1, 9, "000000000100000013" },
	{ 0, 43, "00000408000000001300000005000004080000000000000000050000080600000000000000000000000001" },
	{ 1, 17, "0000080601000000000000000000000001" },
	{ 0, 40, "00000301040000001388c2c100000600000000001300000000017800000408000000000000000007" },
	{ 1, 26, "0000040800000000130000000600000408000000000000000006" },
	{ 0, 15, "000006000000000013000000000179" },
	{ 1, 26, "0000040800000000130000000600000408000000000000000006" },
	{ 0, 10, "000001010500000013c0" },
	{ 1, 68, "00001f01040000001540053a706174680f2f64656d6f2e4563686f2f4e6f7065c88386c7c6c5c1c300000408000000001500000005000006000100000015000000000178" },
	{ 1, 17, "0000080600000000000000000000000001" },
	{ 0, 30, "000008060100000000000000000000000100000408000000000000000006" },
	{ 0, 59, "00003201050000001588c2400b677270632d737461747573023132000c677270632d6d657373616765114d6574686f64206e6f7420666f756e6421" },
	{ 1, 74, "00001d010400000017c9c88386c7c6c5400c677270632d74696d656f75740633303130306dc40000040800000000170000000500000e0001000000170000000009736c6565703a323030" },
	{ 1, 134, "000009010400000019cac98386c8c7c6bec40000040800000000190000000500000e0001000000190000000009736c6565703a3230300000040800000000000000000500000901040000001bcac98386c8c7c6bec400000408000000001b0000000500000e00010000001b0000000009736c6565703a32303000000408000000000000000005" },
	{ 0, 17, "0000080600000000000000000000000002" },
	{ 1, 17, "0000080601000000000000000000000002" },
	{ 0, 63, "00000301040000001788c3c2000013000000000017000000000e6563686f3a736c6565703a323030000001010500000017c10000040800000000000000002a" },
	{ 1, 17, "0000080600000000000000000000000002" },
	{ 0, 17, "0000080601000000000000000000000002" },
	{ 0, 50, "00000301040000001988c3c2000013000000000019000000000e6563686f3a736c6565703a323030000001010500000019c1" },
	{ 0, 50, "00000301040000001b88c3c200001300000000001b000000000e6563686f3a736c6565703a32303000000101050000001bc1" },
};
#define N_RECS (sizeof(recs) / sizeof(recs[0]))

static uint8_t *bytes[N_RECS];

static void load(void)
{
	for (size_t i = 0; i < N_RECS; i++) {
		if (bytes[i])
			continue;
		bytes[i] = malloc(recs[i].len);
		ck_assert_uint_eq(h2b_unhex(recs[i].hex, bytes[i], recs[i].len), recs[i].len);
	}
}

static uint64_t ts_of(size_t i)
{
	return 1000000ull * (i + 1);
}

/* Feed records [from, N) as role sees them; split > 0 cuts each record into
 * chunks of that size; cap > 0 captures only cap bytes of each record. */
static struct th_host *run(enum sonde_role role, size_t from, size_t split, size_t cap)
{
	struct th_host *h = th_new();
	struct sonde_conn_info ci;
	struct th_conn *c;

	load();
	ck_assert_int_eq(th_load(h, sonde_plugin_entry(), "grpc"), SONDE_OK);
	th_conn_info_init(&ci, role);
	c = th_conn_open(h, &ci);
	for (size_t i = from; i < N_RECS; i++) {
		enum sonde_dir dir = (recs[i].from_client == (role == SONDE_ROLE_CLIENT))
		                             ? SONDE_DIR_EGRESS
		                             : SONDE_DIR_INGRESS;
		size_t pos = 0;
		if (cap) {
			struct sonde_chunk ch = { 0 };
			ch.dir = dir;
			ch.ts_unix_ns = ts_of(i);
			ch.data = bytes[i];
			ch.orig_len = recs[i].len;
			ch.len = recs[i].len < cap ? recs[i].len : cap;
			ch.flags = ch.len < ch.orig_len ? SONDE_CHUNK_TRUNCATED : 0;
			th_conn_feed_chunk(c, &ch);
			continue;
		}
		do {
			size_t k = recs[i].len - pos;
			if (split && k > split)
				k = split;
			th_conn_feed(c, dir, ts_of(i), bytes[i] + pos, k);
			pos += k;
		} while (pos < recs[i].len);
	}
	th_conn_close(c, ts_of(N_RECS + 5));
	ck_assert_uint_eq(th_n_open(h), 0);
	ck_assert_uint_eq(th_misuse(h), 0);
	return h;
}

/* "Method code" of an RPC span, or NULL. */
static const char *call_of(const struct th_span *s, char *buf, size_t n)
{
	const char *m = th_span_str(s, "rpc.method");
	int64_t code;

	if (!m || th_span_int(s, "rpc.grpc.status_code", &code))
		return NULL;
	snprintf(buf, n, "%s %lld", m, (long long)code);
	return buf;
}

static int count(struct th_host *h, const char *want)
{
	char b[64];
	int n = 0;

	for (size_t i = 0; i < th_n_ended(h); i++) {
		const char *c = call_of(th_ended(h, i), b, sizeof(b));
		n += c && !strcmp(c, want);
	}
	return n;
}

static const struct {
	const char *call;
	int n;
} truth[] = {
	{ "Unary 0", 7 }, { "ServerStream 0", 2 }, { "Unary 5", 1 }, { "Unary 14", 1 },
	{ "ClientStream 0", 1 }, { "Bidi 0", 1 }, { "Nope 12", 1 },
};
#define N_CALLS 14

START_TEST(whole_both_roles)
{
	for (int role = SONDE_ROLE_SERVER; role <= SONDE_ROLE_CLIENT; role++) {
		struct th_host *h = run(role, 0, 0, 0);
		ck_assert_uint_eq(th_n_ended(h), N_CALLS);
		for (size_t i = 0; i < sizeof(truth) / sizeof(truth[0]); i++)
			ck_assert_int_eq(count(h, truth[i].call), truth[i].n);
		for (size_t i = 0; i < th_n_ended(h); i++) {
			const struct th_span *s = th_ended(h, i);
			ck_assert_ptr_null(th_span_attr(s, "sonde.h2.headers_partial"));
			ck_assert_int_eq(s->kind, role == SONDE_ROLE_SERVER ? SONDE_SPAN_SERVER
			                                                    : SONDE_SPAN_CLIENT);
		}
		ck_assert_int_eq(th_ended(h, 0)->kind,
		                 role == SONDE_ROLE_SERVER ? SONDE_SPAN_SERVER : SONDE_SPAN_CLIENT);
		th_free(h);
	}
}
END_TEST

START_TEST(every_split_same_spans)
{
	struct th_host *whole = run(_i, 0, 0, 0);

	for (size_t split = 1; split <= 80; split++) {
		struct th_host *h = run(_i, 0, split, 0);
		ck_assert_uint_eq(th_n_ended(h), th_n_ended(whole));
		for (size_t i = 0; i < th_n_ended(h); i++) {
			const struct th_span *a = th_ended(h, i), *b = th_ended(whole, i);
			ck_assert_str_eq(a->name, b->name);
			ck_assert_uint_eq(a->start_ns, b->start_ns);
			ck_assert_uint_eq(a->end_ns, b->end_ns);
			ck_assert_int_eq(a->status, b->status);
			ck_assert_uint_eq(a->n_attrs, b->n_attrs);
			for (size_t k = 0; k < a->n_attrs; k++) {
				const struct th_attr *x = &a->attrs[k], *y = th_span_attr(b, x->key);
				ck_assert_ptr_nonnull(y);
				ck_assert_int_eq(x->type, y->type);
				if (x->type == TH_ATTR_STR)
					ck_assert_str_eq(x->s, y->s);
				else if (x->type == TH_ATTR_INT)
					ck_assert_int_eq(x->i, y->i);
			}
		}
		th_free(h);
	}
	th_free(whole);
}
END_TEST

/* What the full run says about the stream whose span is s (same first and
 * last record); NULL when no stream of the full run matches. */
static const struct th_span *truth_of(struct th_host *whole, const struct th_span *s)
{
	for (size_t i = 0; i < th_n_ended(whole); i++) {
		const struct th_span *w = th_ended(whole, i);
		if (w->start_ns == s->start_ns && w->end_ns == s->end_ns)
			return w;
	}
	return NULL;
}

static void never_contradicts(struct th_host *whole, struct th_host *h)
{
	static const char *const keys[] = { "rpc.method", "url.path", "rpc.service" };

	ck_assert_uint_le(th_n_ended(h), th_n_ended(whole));
	for (size_t i = 0; i < th_n_ended(h); i++) {
		const struct th_span *s = th_ended(h, i), *w = truth_of(whole, s);
		int64_t a, b;
		ck_assert_ptr_nonnull(w);
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			const char *v = th_span_str(s, keys[k]);
			if (v && !strcmp(keys[k], "url.path")) {
				char want[128];
				snprintf(want, sizeof(want), "/%s/%s", th_span_str(w, "rpc.service"),
				         th_span_str(w, "rpc.method"));
				ck_assert_str_eq(v, want);
			} else if (v) {
				ck_assert_str_eq(v, th_span_str(w, keys[k]));
			}
		}
		if (!th_span_int(s, "rpc.grpc.status_code", &a)) {
			ck_assert_int_eq(th_span_int(w, "rpc.grpc.status_code", &b), 0);
			ck_assert_int_eq(a, b);
		}
		if (s->status == SONDE_STATUS_ERROR && !th_span_attr(s, "error.type"))
			ck_abort_msg("error without error.type");
	}
}

/* Joined at every record: nothing known is ever wrong. */
START_TEST(joined_at_every_record)
{
	for (int role = SONDE_ROLE_SERVER; role <= SONDE_ROLE_CLIENT; role++) {
		struct th_host *whole = run(role, 0, 0, 0);
		for (size_t from = 1; from < N_RECS; from++) {
			struct th_host *h = run(role, from, 0, 0);
			never_contradicts(whole, h);
			th_free(h);
		}
		th_free(whole);
	}
}
END_TEST

/* Every record captured only in part (as a small payload cap or the
 * kernel's iovec limit does): nothing known is ever wrong. */
START_TEST(capture_cut_at_every_size)
{
	for (int role = SONDE_ROLE_SERVER; role <= SONDE_ROLE_CLIENT; role++) {
		struct th_host *whole = run(role, 0, 0, 0);
		for (size_t cap = 9; cap <= 200; cap++) {
			struct th_host *h = run(role, 0, 0, cap);
			never_contradicts(whole, h);
			th_free(h);
		}
		th_free(whole);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("grpc_recorded");
	TCase *t = tcase_create("recorded");

	tcase_set_timeout(t, 120);
	tcase_add_test(t, whole_both_roles);
	tcase_add_loop_test(t, every_split_same_spans, SONDE_ROLE_SERVER, SONDE_ROLE_CLIENT + 1);
	tcase_add_test(t, joined_at_every_record);
	tcase_add_test(t, capture_cut_at_every_size);
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
	for (size_t i = 0; i < N_RECS; i++)
		free(bytes[i]);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
