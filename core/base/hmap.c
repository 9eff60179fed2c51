/*
 * hmap.c - open addressing, linear probing, backward-shift deletion.
 * The one idea: a slot is empty iff its value is NULL, and deletion moves
 * later members of the probe run back so that no run ever has a hole.
 */
#include "base/hmap.h"

#include <stdlib.h>

static size_t slot_of(uint64_t key, size_t cap)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return (size_t)key & (cap - 1);
}

void hmap_init(struct hmap *m)
{
	m->keys = NULL;
	m->vals = NULL;
	m->cap = 0;
	m->n = 0;
}

void hmap_free(struct hmap *m)
{
	free(m->keys);
	free(m->vals);
	hmap_init(m);
}

void *hmap_get(const struct hmap *m, uint64_t key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (!m->vals[i])
			return NULL;
		if (m->keys[i] == key)
			return m->vals[i];
	}
}

static int grow(struct hmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	uint64_t *nk = calloc(ncap, sizeof(*nk));
	void **nv = calloc(ncap, sizeof(*nv));

	if (!nk || !nv) {
		free(nk);
		free(nv);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->vals[i])
			continue;
		size_t j = slot_of(m->keys[i], ncap);
		while (nv[j])
			j = (j + 1) & (ncap - 1);
		nk[j] = m->keys[i];
		nv[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = nk;
	m->vals = nv;
	m->cap = ncap;
	return 0;
}

int hmap_put(struct hmap *m, uint64_t key, void *val)
{
	if (!val)
		return -1;
	if ((m->n + 1) * 4 > m->cap * 3 && grow(m))
		return -1;
	size_t i = slot_of(key, m->cap);
	while (m->vals[i] && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	if (!m->vals[i])
		m->n++;
	m->keys[i] = key;
	m->vals[i] = val;
	return 0;
}

void *hmap_del(struct hmap *m, uint64_t key)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1, i = slot_of(key, m->cap);
	while (m->vals[i] && m->keys[i] != key)
		i = (i + 1) & mask;
	void *old = m->vals[i];
	if (!old)
		return NULL;
	/* Backward shift: pull later run members into the hole when their home
	 * slot is not strictly between the hole and themselves. */
	size_t hole = i;
	for (size_t j = (i + 1) & mask; m->vals[j]; j = (j + 1) & mask) {
		size_t home = slot_of(m->keys[j], m->cap);
		int between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (between)
			continue;
		m->keys[hole] = m->keys[j];
		m->vals[hole] = m->vals[j];
		hole = j;
	}
	m->vals[hole] = NULL;
	m->n--;
	return old;
}

int hmap_next(const struct hmap *m, size_t *it, uint64_t *key, void **val)
{
	for (; *it < m->cap; (*it)++) {
		if (m->vals[*it]) {
			if (key)
				*key = m->keys[*it];
			if (val)
				*val = m->vals[*it];
			(*it)++;
			return 1;
		}
	}
	return 0;
}
