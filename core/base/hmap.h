/*
 * hmap.h - a small open-addressing hash map from uint64_t keys to pointers.
 *
 * The core keys everything it tracks by an integer: connections by gen,
 * processes by tgid, active server spans by tid. Linear probing with
 * backward-shift deletion keeps lookups to one cache line in the common case
 * and needs no tombstones. Not thread-safe; the capture thread owns them.
 */
#ifndef SONDE_HMAP_H
#define SONDE_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap {
	uint64_t *keys;
	void **vals;   /* NULL value = empty slot */
	size_t cap;    /* power of two, or 0 */
	size_t n;
};

void hmap_init(struct hmap *m);
void hmap_free(struct hmap *m);                          /* values not freed */
void *hmap_get(const struct hmap *m, uint64_t key);
int hmap_put(struct hmap *m, uint64_t key, void *val);   /* val != NULL; -1 on ENOMEM */
void *hmap_del(struct hmap *m, uint64_t key);            /* returns the old value */

/* Iterate: for (size_t i = 0; hmap_next(m, &i, &k, &v);) ... ; do not
 * insert while iterating; deleting the current key is not allowed either
 * (collect keys first). */
int hmap_next(const struct hmap *m, size_t *it, uint64_t *key, void **val);

#endif
