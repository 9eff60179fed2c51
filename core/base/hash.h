/*
 * hash.h - the one non-cryptographic hash the core uses for its tables
 * (metric series, OTLP delta state, interned keys): 64-bit FNV-1a.
 *
 * The one idea: hashes can be chained, so a key made of several parts is
 * hashed part by part from FNV_OFFSET without building it first.
 */
#ifndef SONDE_BASE_HASH_H
#define SONDE_BASE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static inline uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= FNV_PRIME;
	}
	return h;
}

#endif
