/*
 * intern.c - see intern.h. An open-addressing table under a mutex, and a
 * direct-mapped per-thread cache in front of it keyed by the caller's
 * pointer.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "telemetry/intern.h"

#define INTERN_MAX 65536   /* keys are a vocabulary; past this, refuse */
#define CACHE_SLOTS 256

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char **table;  /* capacity cap, power of two */
static size_t cap, count;

struct cache_slot {
	const char *from, *to;
};
static __thread struct cache_slot cache[CACHE_SLOTS];

static int grow(void)
{
	size_t ncap = cap ? cap * 2 : 256;
	const char **nt = calloc(ncap, sizeof(*nt));

	if (!nt)
		return -1;
	for (size_t i = 0; i < cap; i++) {
		const char *s = table[i];
		size_t j;

		if (!s)
			continue;
		j = fnv1a(FNV_OFFSET, s, strlen(s)) & (ncap - 1);
		while (nt[j])
			j = (j + 1) & (ncap - 1);
		nt[j] = s;
	}
	free(table);
	table = nt;
	cap = ncap;
	return 0;
}

static const char *lookup_locked(const char *s, size_t len)
{
	size_t j;
	char *copy;

	if ((count + 1) * 2 > cap && (count >= INTERN_MAX || grow()))
		return NULL;
	j = fnv1a(FNV_OFFSET, s, len) & (cap - 1);
	for (; table[j]; j = (j + 1) & (cap - 1))
		if (!strncmp(table[j], s, len) && table[j][len] == 0)
			return table[j];
	copy = malloc(len + 1);
	if (!copy)
		return NULL;
	memcpy(copy, s, len);
	copy[len] = 0;
	table[j] = copy;
	count++;
	return copy;
}

const char *intern_n(const char *s, size_t len)
{
	const char *r;

	if (!s)
		return NULL;
	pthread_mutex_lock(&lock);
	r = lookup_locked(s, len);
	pthread_mutex_unlock(&lock);
	return r;
}

const char *intern(const char *s)
{
	struct cache_slot *c;
	const char *r;

	if (!s)
		return NULL;
	c = &cache[((uintptr_t)s >> 3) & (CACHE_SLOTS - 1)];
	/* Same pointer as last time: an interned key itself, or a literal
	 * whose text must still be checked (a caller may reuse a buffer). */
	if (c->from == s && (s == c->to || !strcmp(c->to, s)))
		return c->to;
	r = intern_n(s, strlen(s));
	if (r) {
		c->from = s;
		c->to = r;
	}
	return r;
}

size_t intern_count(void)
{
	size_t n;

	pthread_mutex_lock(&lock);
	n = count;
	pthread_mutex_unlock(&lock);
	return n;
}
