/*
 * kafka_make_seeds.c - writes the spec-built fuzz seeds of
 * tests/fuzz/corpus/kafka/spec-* (the rec-* seeds are recordings).
 *
 * The one idea: the recordings only hold what kcat and librdkafka's mock
 * broker speak (Produce v7, Fetch v11, non-flexible); these seeds add the
 * flexible versions, topic ids, tagged fields, control batches, legacy
 * message sets and cut batches, built byte-exact by kafka_build.h, in the
 * harness's format (tests/fuzz/kafka_fuzz.c): a configuration byte, then
 * chunks of [flags][length:2][bytes].
 *
 * Usage: kafka_make_seeds DIR   (build target kafka_make_seeds)
 */
#include <stdio.h>
#include <stdlib.h>

#include "kafka_build.h"

static void chunk(struct kb *out, int egress, const struct kb *k)
{
	size_t off = 0;

	while (off < k->n) {
		size_t n = k->n - off > 1000 ? 1000 : k->n - off; /* several chunks per frame */

		kb_u8(out, egress ? 1 : 0);
		kb_i16(out, (int)n);
		kb_put(out, k->b + off, n);
		off += n;
	}
}

static int write_seed(const char *dir, const char *name, const struct kb *k)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(k->b, 1, k->n, f) != k->n) {
		perror(path);
		return -1;
	}
	return fclose(f);
}

/* A client connection: ApiVersions, then Produce and Fetch at one version
 * pair; role byte 2 (client). */
static void conversation(struct kb *out, int pv, int fv)
{
	struct kb q = { 0 }, r = { 0 };
	struct kb_topic t[2] = {
		{ "orders", 2, { { .index = 0, .nbatches = 2, .recs = { 3, 1 }, .attr = { 0, 0x20 } },
		                 { .index = 1, .err = 6 } } },
		{ "audit.log", 1, { { .index = 4, .nbatches = 1, .recs = { 2 }, .partial_tail = 30 } } },
	};

	kb_u8(out, 2);
	kb_other_req(&q, KFK_API_API_VERSIONS, 3, 1, "seed-client", 20);
	kb_other_resp(&r, KFK_API_API_VERSIONS, 3, 1, 60);
	chunk(out, 1, &q);
	chunk(out, 0, &r);
	kb_free(&q);
	kb_free(&r);
	kb_produce_req(&q, pv, 2, "seed-client", -1, t, 2);
	kb_produce_resp(&r, pv, 2, t, 2);
	chunk(out, 1, &q);
	chunk(out, 0, &r);
	kb_free(&q);
	kb_free(&r);
	kb_fetch_req(&q, fv, 3, "seed-client", "orders", 2);
	kb_fetch_resp(&r, fv, 3, 0, t, 2);
	chunk(out, 1, &q);
	chunk(out, 0, &r);
	kb_free(&q);
	kb_free(&r);
}

int main(int argc, char **argv)
{
	static const int pairs[][2] = { { 3, 4 }, { 8, 11 }, { 9, 12 }, { 11, 16 }, { 13, 17 } };
	char name[64];

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		struct kb out = { 0 };

		conversation(&out, pairs[i][0], pairs[i][1]);
		snprintf(name, sizeof(name), "spec-produce-v%d-fetch-v%d", pairs[i][0], pairs[i][1]);
		if (write_seed(argv[1], name, &out))
			return 1;
		kb_free(&out);
	}
	{
		/* a legacy message set and an acks=0 request */
		struct kb out = { 0 }, q = { 0 }, r = { 0 };
		struct kb_topic t = { "old", 1, { { .index = 0, .nbatches = 3, .legacy = 1 } } };

		kb_u8(&out, 2);
		kb_produce_req(&q, 3, 1, "seed", 0, &t, 1);
		kb_fetch_req(&q, 4, 2, "seed", "old", 1);
		kb_fetch_resp(&r, 4, 2, 0, &t, 1);
		chunk(&out, 1, &q);
		chunk(&out, 0, &r);
		if (write_seed(argv[1], "spec-legacy-acks0", &out))
			return 1;
		kb_free(&out);
		kb_free(&q);
		kb_free(&r);
	}
	return 0;
}
