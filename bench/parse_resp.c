/*
 * parse_resp.c - sonde's RESP parser (plugins/redis/resp*.c) against the
 * hiredis reader (Debian libhiredis-dev), on the same corpus.
 *
 * The one idea: both sides decode the same keep-alive byte stream, fed in
 * the same 16 KiB pieces (a large read() from a socket), and both must find
 * exactly the number of messages the corpus was built with, or the
 * benchmark fails instead of printing a figure.
 *
 *   ours: resp_stream_feed, the incremental decoder the plugin runs on live
 *         connections. It walks every header line, counts bulk payloads
 *         down without buffering them, and copies the first 3 top-level
 *         elements (up to 64 bytes each: command name, key) into a summary.
 *   ref:  hiredis redisReaderFeed + redisReaderGetReply with no reply-object
 *         functions (redisReaderCreateWithFunctions(NULL)): pure parsing,
 *         no allocation per element. hiredis copies every fed byte into its
 *         own buffer first, which is how it works in a client.
 *   also printed, not in the ratio: our stateless resp_parse_request /
 *         resp_parse over the whole buffer, and hiredis with its default
 *         redisReply objects (an allocation per element, freed at once).
 *
 * The corpus is deterministic: commands as clients send them (GET, SET with
 * EX, HSET, MGET of 10 keys, INCR, LPUSH, EXPIRE) and replies as a server
 * sends them (bulk strings of 16 B..1 KiB, +OK, integers, MGET arrays with
 * nils, LRANGE arrays, nil bulks, errors). A stream of them is what a
 * pipeline looks like on the wire. Timing is thread CPU time; repetitions
 * are interleaved and medians are printed.
 *
 * usage: parse_resp [seconds-per-measurement] [repetitions]
 */
#define _GNU_SOURCE
#include <hiredis/hiredis.h>

#include "bench_util.h"
#include "resp.h"

#define N_MSGS 20000
#define FEED 16384

struct corpus {
	struct bench_buf b;
	size_t msgs;
};

static void bulk(struct bench_buf *b, const char *s)
{
	bench_buf_fmt(b, "$%zu\r\n%s\r\n", strlen(s), s);
}

static void bulk_fill(struct bench_buf *b, size_t n, uint64_t *rs)
{
	bench_buf_fmt(b, "$%zu\r\n", n);
	bench_buf_fill(b, n, rs);
	bench_buf_str(b, "\r\n");
}

static void key(char *k, size_t n, uint64_t *rs)
{
	snprintf(k, n, "user:%u:profile", bench_range(rs, 1, 999999));
}

static void command(struct bench_buf *b, uint64_t *rs)
{
	unsigned c = bench_range(rs, 0, 99);
	char k[64];

	key(k, sizeof(k), rs);
	if (c < 35) {
		bench_buf_str(b, "*2\r\n");
		bulk(b, "GET");
		bulk(b, k);
	} else if (c < 60) {
		bench_buf_str(b, "*5\r\n");
		bulk(b, "SET");
		bulk(b, k);
		bulk_fill(b, bench_range(rs, 16, 512), rs);
		bulk(b, "EX");
		bulk(b, "60");
	} else if (c < 70) {
		bench_buf_str(b, "*4\r\n");
		bulk(b, "HSET");
		bulk(b, k);
		bulk(b, "last_seen");
		bulk_fill(b, bench_range(rs, 8, 64), rs);
	} else if (c < 80) {
		bench_buf_str(b, "*11\r\n");
		bulk(b, "MGET");
		for (int i = 0; i < 10; i++) {
			key(k, sizeof(k), rs);
			bulk(b, k);
		}
	} else if (c < 90) {
		bench_buf_str(b, "*2\r\n");
		bulk(b, "INCR");
		bulk(b, "counter:page_views");
	} else if (c < 95) {
		bench_buf_str(b, "*3\r\n");
		bulk(b, "LPUSH");
		bulk(b, "queue:jobs");
		bulk_fill(b, bench_range(rs, 32, 256), rs);
	} else {
		bench_buf_str(b, "*3\r\n");
		bulk(b, "EXPIRE");
		bulk(b, k);
		bulk(b, "3600");
	}
}

static void reply(struct bench_buf *b, uint64_t *rs)
{
	unsigned c = bench_range(rs, 0, 99);

	if (c < 35) {
		bulk_fill(b, bench_range(rs, 16, 1024), rs);
	} else if (c < 60) {
		bench_buf_str(b, "+OK\r\n");
	} else if (c < 75) {
		bench_buf_fmt(b, ":%u\r\n", bench_range(rs, 0, 5000000));
	} else if (c < 85) {
		bench_buf_str(b, "*10\r\n");
		for (int i = 0; i < 10; i++) {
			if (bench_range(rs, 0, 4) == 0)
				bench_buf_str(b, "$-1\r\n");
			else
				bulk_fill(b, bench_range(rs, 16, 128), rs);
		}
	} else if (c < 90) {
		unsigned n = bench_range(rs, 10, 50);
		bench_buf_fmt(b, "*%u\r\n", n);
		for (unsigned i = 0; i < n; i++)
			bulk_fill(b, bench_range(rs, 32, 256), rs);
	} else if (c < 95) {
		bench_buf_str(b, "$-1\r\n");
	} else {
		bench_buf_str(b, "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	}
}

static void build(struct corpus *c, int commands)
{
	uint64_t rs = commands ? 0x5eed0003 : 0x5eed0004;

	for (int i = 0; i < N_MSGS; i++) {
		if (commands)
			command(&c->b, &rs);
		else
			reply(&c->b, &rs);
		c->msgs++;
	}
}

/* ---- ours ---------------------------------------------------------------- */

static volatile size_t sink;

static size_t ours_stream(const char *buf, size_t len, int request)
{
	static struct resp_stream s;
	static struct resp_summary out;
	size_t off = 0, msgs = 0;

	resp_stream_init(&s, request);
	while (off < len) {
		size_t left = len - off < FEED ? len - off : FEED;
		const uint8_t *p = (const uint8_t *)buf + off;
		off += left;
		while (left) {
			int done = 0;
			ssize_t r = resp_stream_feed(&s, p, left, &out, &done);
			if (r < 0 || (r == 0 && !done))
				return 0;
			p += r;
			left -= (size_t)r;
			if (done) {
				sink += out.args[0].len + (size_t)out.n;
				msgs++;
			}
		}
	}
	return msgs;
}

static size_t ours_cmd(const char *buf, size_t len)
{
	return ours_stream(buf, len, 1);
}

static size_t ours_reply(const char *buf, size_t len)
{
	return ours_stream(buf, len, 0);
}

static size_t ours_stateless(const char *buf, size_t len, int request)
{
	static struct resp_msg m;
	const uint8_t *p = (const uint8_t *)buf;
	size_t off = 0, msgs = 0;

	while (off < len) {
		ssize_t r = request ? resp_parse_request(p + off, len - off, &m)
		                    : resp_parse(p + off, len - off, &m);
		if (r <= 0)
			return 0;
		off += (size_t)r;
		sink += m.n_args + (size_t)m.n;
		msgs++;
	}
	return msgs;
}

static size_t ours_sl_cmd(const char *buf, size_t len)
{
	return ours_stateless(buf, len, 1);
}

static size_t ours_sl_reply(const char *buf, size_t len)
{
	return ours_stateless(buf, len, 0);
}

/* ---- hiredis --------------------------------------------------------------- */

static size_t hiredis_run(const char *buf, size_t len, int objects)
{
	redisReader *r = objects ? redisReaderCreate() : redisReaderCreateWithFunctions(NULL);
	size_t off = 0, msgs = 0;
	void *rep;

	if (!r)
		return 0;
	while (off < len) {
		size_t n = len - off < FEED ? len - off : FEED;
		if (redisReaderFeed(r, buf + off, n) != REDIS_OK)
			goto fail;
		off += n;
		for (;;) {
			rep = NULL;
			if (redisReaderGetReply(r, &rep) != REDIS_OK)
				goto fail;
			if (!rep)
				break;
			if (objects)
				freeReplyObject(rep);
			msgs++;
		}
	}
	redisReaderFree(r);
	return msgs;
fail:
	redisReaderFree(r);
	return 0;
}

static size_t ref_plain(const char *buf, size_t len)
{
	return hiredis_run(buf, len, 0);
}

static size_t ref_objects(const char *buf, size_t len)
{
	return hiredis_run(buf, len, 1);
}

/* ---- timing ---------------------------------------------------------------- */

typedef size_t (*parse_fn)(const char *, size_t);

static int measure(parse_fn fn, const struct corpus *c, double secs, double *mbps,
                   double *msgs)
{
	double t0 = bench_now(CLOCK_THREAD_CPUTIME_ID), t;
	size_t passes = 0;

	do {
		if (fn(c->b.p, c->b.len) != c->msgs)
			return -1;
		passes++;
		t = bench_now(CLOCK_THREAD_CPUTIME_ID) - t0;
	} while (t < secs);
	*mbps = (double)c->b.len * (double)passes / t / 1e6;
	*msgs = (double)c->msgs * (double)passes / t;
	return 0;
}

enum { OURS, REF, OURS_SL, REF_OBJ, N_VARIANTS };
static const char *const variant_names[N_VARIANTS] = {"ours", "ref", "ours_stateless",
                                                      "ref_objects"};

struct set {
	const char *name;
	const struct corpus *c;
	parse_fn fn[N_VARIANTS];
	double mb[N_VARIANTS][BENCH_MAX_REPS], msg[N_VARIANTS][BENCH_MAX_REPS];
	double ratio[BENCH_MAX_REPS];
};

static void report(const struct set *s, int reps)
{
	char n[128];

	for (int v = 0; v < N_VARIANTS; v++) {
		snprintf(n, sizeof(n), "parse_%s_%s_mbps", s->name, variant_names[v]);
		bench_print(n, s->mb[v], reps, "MB/s");
		snprintf(n, sizeof(n), "parse_%s_%s_msgs", s->name, variant_names[v]);
		bench_print(n, s->msg[v], reps, "msg/s");
	}
	snprintf(n, sizeof(n), "parse_%s_ratio", s->name);
	bench_print(n, s->ratio, reps, "ours/ref");
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 0.5;
	int reps = argc > 2 ? atoi(argv[2]) : 3;
	struct corpus cmd = {0}, rep = {0};
	struct set sets[2] = {
		{.name = "resp_cmd", .c = &cmd,
		 .fn = {ours_cmd, ref_plain, ours_sl_cmd, ref_objects}},
		{.name = "resp_reply", .c = &rep,
		 .fn = {ours_reply, ref_plain, ours_sl_reply, ref_objects}},
	};

	if (secs <= 0 || reps < 1 || reps > BENCH_MAX_REPS) {
		fprintf(stderr, "usage: parse_resp [seconds > 0] [repetitions 1..%d]\n",
		        BENCH_MAX_REPS);
		return 2;
	}
	build(&cmd, 1);
	build(&rep, 0);
	printf("# resp corpus: %zu commands in %zu bytes, %zu replies in %zu bytes; "
	       "hiredis %d.%d.%d\n", cmd.msgs, cmd.b.len, rep.msgs, rep.b.len,
	       HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
	for (int r = 0; r < reps; r++) {
		for (int i = 0; i < 2; i++) {
			struct set *s = &sets[i];
			for (int v = 0; v < N_VARIANTS; v++) {
				if (measure(s->fn[v], s->c, secs, &s->mb[v][r], &s->msg[v][r])) {
					fprintf(stderr, "parse_resp: %s did not find %zu messages in %s\n",
					        variant_names[v], s->c->msgs, s->name);
					return 1;
				}
			}
			s->ratio[r] = s->msg[OURS][r] / s->msg[REF][r];
		}
	}
	for (int i = 0; i < 2; i++)
		report(&sets[i], reps);
	return 0;
}
