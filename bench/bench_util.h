/*
 * bench_util.h - the few helpers the C benchmarks share: clocks, a
 * deterministic random generator, medians, and the BENCH output line.
 *
 * The one idea: every figure a benchmark prints is a median over
 * repetitions, printed on one machine-readable line with the raw values
 * beside it, so bench/run.sh can put it in the table without recomputing
 * anything:
 *
 *   BENCH <name> <median> <unit> raw=<v1>,<v2>,...
 *
 * Header-only (static functions) because each benchmark is one C file
 * compiled by bench/run.sh with cc.
 */
#ifndef SONDE_BENCH_UTIL_H
#define SONDE_BENCH_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MAX_REPS 64

static inline double bench_now(clockid_t clk)
{
	struct timespec t;

	clock_gettime(clk, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* xorshift64*: the corpora must be byte-identical from run to run. */
static inline uint64_t bench_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static inline unsigned bench_range(uint64_t *s, unsigned lo, unsigned hi)
{
	return lo + (unsigned)(bench_rand(s) % (uint64_t)(hi - lo + 1));
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static inline double bench_median(const double *v, int n)
{
	double s[BENCH_MAX_REPS];

	if (n <= 0)
		return 0;
	if (n > BENCH_MAX_REPS)
		n = BENCH_MAX_REPS;
	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), bench_cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* BENCH <name> <median> <unit> raw=v1,v2,... */
static inline void bench_print(const char *name, const double *v, int n, const char *unit)
{
	printf("BENCH %s %.6g %s raw=", name, bench_median(v, n), unit);
	for (int i = 0; i < n; i++)
		printf("%s%.6g", i ? "," : "", v[i]);
	printf("\n");
}

/* A growable byte buffer for building corpora. Aborts on out of memory:
 * a benchmark that cannot build its corpus has nothing to measure. */
struct bench_buf {
	char *p;
	size_t len, cap;
};

static inline void bench_buf_add(struct bench_buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 65536;
		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p) {
			fprintf(stderr, "bench: out of memory\n");
			exit(1);
		}
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static inline void bench_buf_str(struct bench_buf *b, const char *s)
{
	bench_buf_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static inline void bench_buf_fmt(struct bench_buf *b, const char *fmt, ...)
{
	char tmp[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		fprintf(stderr, "bench: corpus line too long\n");
		exit(1);
	}
	bench_buf_add(b, tmp, (size_t)n);
}

/* n filler bytes (printable, deterministic). */
static inline void bench_buf_fill(struct bench_buf *b, size_t n, uint64_t *rs)
{
	static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 {}:\",";
	char tmp[256];

	while (n) {
		size_t k = n < sizeof(tmp) ? n : sizeof(tmp);
		for (size_t i = 0; i < k; i++)
			tmp[i] = al[bench_rand(rs) % (sizeof(al) - 1)];
		bench_buf_add(b, tmp, k);
		n -= k;
	}
}

#endif /* SONDE_BENCH_UTIL_H */
