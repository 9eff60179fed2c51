/*
 * intern.h - one copy of every attribute key, for the life of the process.
 *
 * The one idea: attribute keys come from a small, fixed vocabulary
 * ("http.request.method", ...), so each is stored once and compared by
 * pointer. intern() is safe from any thread; a per-thread cache answers the
 * common case (a plugin passing the same string literal again) with one
 * pointer compare and one short strcmp, without the lock.
 */
#ifndef SONDE_TELEMETRY_INTERN_H
#define SONDE_TELEMETRY_INTERN_H

#include <stddef.h>

/* The interned copy of s (NUL-terminated), or NULL when out of memory.
 * Equal strings give the same pointer. Never freed. */
const char *intern(const char *s);
/* Same, for s[0..len) (need not be terminated). */
const char *intern_n(const char *s, size_t len);
/* Number of distinct keys interned so far (tests, self-metrics). */
size_t intern_count(void);

#endif
