/*
 * intern.h - one copy of every attribute key, for the life of the process.
 *
 * The one idea: attribute keys come from a small, fixed vocabulary
 * ("http.request.method", ...), so each is stored once and compared by
 * pointer. intern() is safe from any thread; a per-thread cache answers the
 * common case (a plugin passing the same string literal again) with one
 * pointer compare, without the lock: a literal in a read-only segment of
 * a loaded object cannot change, so its text is not compared again; any
 * other pointer (a buffer the caller may reuse) is compared with strcmp.
 */
#ifndef SONDE_TELEMETRY_INTERN_H
#define SONDE_TELEMETRY_INTERN_H

#include <stdbool.h>
#include <stddef.h>

/* The interned copy of s (NUL-terminated), or NULL when out of memory.
 * Equal strings give the same pointer. Never freed. */
const char *intern(const char *s);
/* Same, for s[0..len) (need not be terminated). */
const char *intern_n(const char *s, size_t len);
/* Objects were loaded or unloaded (dlopen, dlclose): read the read-only
 * segments again and forget every cached pointer. */
void intern_mappings_changed(void);

/* Whether s lies in a read-only segment of a loaded object (its text can
 * never change, so the cache trusts it without a compare). */
bool intern_is_readonly(const char *s);
/* Number of distinct keys interned so far (tests, self-metrics). */
size_t intern_count(void);

#endif
