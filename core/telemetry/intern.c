/*
 * intern.c - see intern.h. An open-addressing table under a mutex, and a
 * direct-mapped per-thread cache in front of it keyed by the caller's
 * pointer. Each cache slot remembers whether its pointer lies in a
 * read-only segment (dl_iterate_phdr, read again whenever objects come or
 * go; a generation number retires every slot filled before).
 */
#define _GNU_SOURCE
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
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
	unsigned gen;   /* ro_gen when filled */
	bool ro;        /* from is in a read-only segment: its text never changes */
};
static __thread struct cache_slot cache[CACHE_SLOTS];

/* Read-only PT_LOAD segments of the loaded objects, under lock. The agent
 * maps about 50 objects with 3-4 read-only segments each (libcurl and its
 * TLS stack, libbpf, the plugins): a fixed list of 128 once left out the
 * plugins, loaded last, whose keys then paid a strcmp on every use. So the
 * list grows with what is loaded. */
struct ro_range {
	uintptr_t lo, hi;
};
static struct ro_range *ro;
static unsigned n_ro, ro_cap, ro_gen = 1; /* slots of gen 0 (never filled) never hit */
static bool ro_read;

static int ro_collect(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *p = &info->dlpi_phdr[i];

		if (p->p_type != PT_LOAD || (p->p_flags & PF_W))
			continue;
		if (n_ro == ro_cap) {
			unsigned ncap = ro_cap ? ro_cap * 2 : 256;
			struct ro_range *nr = realloc(ro, ncap * sizeof(*nr));

			if (!nr)
				return 1; /* out of memory: what is listed stays right */
			ro = nr;
			ro_cap = ncap;
		}
		ro[n_ro].lo = info->dlpi_addr + p->p_vaddr;
		ro[n_ro].hi = ro[n_ro].lo + p->p_memsz;
		n_ro++;
	}
	return 0;
}

static bool ro_locked(const char *s)
{
	uintptr_t a = (uintptr_t)s;

	if (!ro_read) {
		n_ro = 0;
		dl_iterate_phdr(ro_collect, NULL);
		ro_read = true;
	}
	for (unsigned i = 0; i < n_ro; i++)
		if (a >= ro[i].lo && a < ro[i].hi)
			return true;
	return false;
}

bool intern_is_readonly(const char *s)
{
	bool r;

	pthread_mutex_lock(&lock);
	r = ro_locked(s);
	pthread_mutex_unlock(&lock);
	return r;
}

void intern_mappings_changed(void)
{
	pthread_mutex_lock(&lock);
	ro_read = false;
	__atomic_add_fetch(&ro_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&lock);
}

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
	unsigned gen;
	const char *r;
	bool is_ro;

	if (!s)
		return NULL;
	c = &cache[((uintptr_t)s >> 3) & (CACHE_SLOTS - 1)];
	gen = __atomic_load_n(&ro_gen, __ATOMIC_ACQUIRE);
	/* Same pointer as last time: an interned key itself, a literal of a
	 * loaded object, or a buffer whose text must be checked again (a
	 * caller may reuse it). */
	if (c->from == s && c->gen == gen && (s == c->to || c->ro || !strcmp(c->to, s)))
		return c->to;
	pthread_mutex_lock(&lock);
	r = lookup_locked(s, strlen(s));
	is_ro = r && ro_locked(s);
	gen = ro_gen;
	pthread_mutex_unlock(&lock);
	if (r) {
		c->from = s;
		c->to = r;
		c->gen = gen;
		c->ro = is_ro;
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
