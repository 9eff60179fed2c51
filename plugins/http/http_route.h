/*
 * http_route.h - low-cardinality routes (http.route) from URL paths.
 *
 * The one idea: a route is the path with its identifiers blanked out.
 * Configured patterns say exactly what the identifiers are; without them a
 * heuristic looks at each path segment on its own and replaces the ones
 * that look like ids (numbers, UUIDs, long hex, random tokens) with `*`.
 *
 * Pattern syntax (the `routes:` list of the http plugin's configuration):
 *   /users/{id}/orders/{order}   `{name}` matches exactly one non-empty segment;
 *                                a segment that is just `*` does too
 *   a last segment `*`           ("/static/" then `*`) matches the rest of the
 *                                path, even nothing ("/static" matches)
 *   a last segment `abc*`        matches segments starting with abc, then anything
 * Patterns must start with '/'. A single trailing '/' on the path is
 * ignored when matching. The query string and fragment never take part.
 */
#ifndef SONDE_HTTP_ROUTE_H
#define SONDE_HTTP_ROUTE_H

#include <stddef.h>

#define HTTP_ROUTE_MAX 256 /* longest route written by http_route_guess, NUL included */

/* Does one path segment look like an identifier? */
int http_route_segment_is_id(const char *seg, size_t len);

/*
 * Heuristic route of path[0..len) (stops at '?' or '#') into out (cap >= 3,
 * NUL-terminated). A path that does not start with '/' gives "/". When the
 * route would not fit, it is cut at a segment boundary and its last segment
 * is `*`.
 * Returns the route's length.
 */
size_t http_route_guess(const char *path, size_t len, char *out, size_t cap);

/* 1 if pattern matches path[0..len) (stops at '?' or '#'), else 0.
 * An invalid pattern never matches. */
int http_route_match(const char *pattern, const char *path, size_t len);

/* 1 if the pattern is well-formed (starts with '/', braces balanced within
 * a segment, '*' only as described above). */
int http_route_pattern_valid(const char *pattern);

/* The first of n patterns that matches, or NULL. The result is one of the
 * caller's pointers. */
const char *http_route_find(const char *const *patterns, size_t n, const char *path,
                            size_t len);

#endif /* SONDE_HTTP_ROUTE_H */
