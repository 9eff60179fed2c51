/*
 * http_route.c - http.route from a URL path: configured patterns, else a
 * per-segment heuristic (see http_route.h for the pattern syntax).
 *
 * The one idea: a path is a list of segments between '/'. Matching walks a
 * pattern and a path segment by segment; the heuristic classifies each
 * segment alone ("is this an identifier?") from the counts of its character
 * classes, so it needs no dictionary and no state.
 */
#include "http_route.h"

#include <string.h>

struct seg_stats {
	size_t digits, lower, upper, hex, seps, b64, other;
	int has_pct, has_at;
};

static void seg_count(const char *s, size_t n, struct seg_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int is_hex = 0;

		if (c >= '0' && c <= '9') {
			st->digits++;
			is_hex = 1;
		} else if (c >= 'a' && c <= 'z') {
			st->lower++;
			is_hex = c <= 'f';
		} else if (c >= 'A' && c <= 'Z') {
			st->upper++;
			is_hex = c <= 'F';
		} else if (c == '-' || c == '_' || c == '.' || c == ':' || c == ',') {
			st->seps++;
		} else if (c == '+' || c == '=' || c == '~') {
			st->b64++;
		} else {
			st->other++;
			if (c == '%')
				st->has_pct = 1;
			if (c == '@' && i > 0)
				st->has_at = 1;
		}
		st->hex += (size_t)is_hex;
	}
}

static int is_uuid(const char *s, size_t n)
{
	if (n != 36)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		             (c >= 'A' && c <= 'F'))) {
			return 0;
		}
	}
	return 1;
}

int http_route_segment_is_id(const char *seg, size_t n)
{
	struct seg_stats st;
	size_t letters, alnum;

	if (!n)
		return 0;
	seg_count(seg, n, &st);
	letters = st.lower + st.upper;
	alnum = letters + st.digits;
	if (st.digits == n)                     /* 42, 2024 */
		return 1;
	if (is_uuid(seg, n))
		return 1;
	if (st.hex == n && n >= 16)             /* hashes, object ids */
		return 1;
	if (st.has_pct || st.has_at)            /* encoded values, e-mail addresses */
		return 1;
	if (st.digits >= 4 && st.digits + st.seps == n) /* 2024-01-31, 555-0100 */
		return 1;
	if (st.other)
		return 0;
	/* Tokens: letters and digits mixed (order12345, a1b2c3d4e5f6g7h8). */
	if (alnum == n && n >= 8 && st.digits >= 4 && letters)
		return 1;
	if (n >= 16 && st.digits && letters)    /* long tokens, slugs with numbers */
		return 1;
	if (n >= 8 && seg[n - 1] == '=' && alnum + st.b64 + st.seps == n) /* base64 pad */
		return 1;
	if (n >= 32 && alnum == n)              /* base62 secrets without digits */
		return 1;
	return 0;
}

static size_t path_len(const char *path, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (path[i] == '?' || path[i] == '#')
			break;
	return i;
}

size_t http_route_guess(const char *path, size_t len, char *out, size_t cap)
{
	size_t n = path_len(path, len), i = 0, o = 0;

	if (cap < 3) {
		if (cap)
			out[0] = '\0';
		return 0;
	}
	if (!n || path[0] != '/') {
		memcpy(out, "/", 2);
		return 1;
	}
	while (i < n) {
		size_t j = i + 1, sl, need, room;
		const char *piece;

		while (j < n && path[j] != '/')
			j++;
		sl = j - i - 1;
		piece = path + i + 1;
		if (http_route_segment_is_id(piece, sl)) {
			piece = "*";
			sl = 1;
		}
		need = 1 + sl;
		/* Keep room for a closing "/" "*" unless this is the last segment. */
		room = cap - 1 - o - (j < n ? 2 : 0);
		if (o + 2 + 1 > cap || need > room) {
			memcpy(out + o, "/*", 2);
			o += 2;
			break;
		}
		out[o++] = '/';
		memcpy(out + o, piece, sl);
		o += sl;
		i = j;
	}
	out[o] = '\0';
	return o;
}

static int seg_valid(const char *s, size_t n, int last)
{
	const char *open = memchr(s, '{', n), *close = memchr(s, '}', n);
	const char *star = memchr(s, '*', n);

	if (open || close) {
		if (!open || !close || open != s || close != s + n - 1 || n < 3)
			return 0;
		return !memchr(s + 1, '{', n - 2) && !memchr(s + 1, '}', n - 2) && !star;
	}
	if (!star)
		return 1;
	/* '*' alone, or at the end of the last segment. */
	if (star == s && n == 1)
		return 1;
	return last && star == s + n - 1;
}

int http_route_pattern_valid(const char *pattern)
{
	size_t i = 0, n;

	if (!pattern || pattern[0] != '/')
		return 0;
	n = strlen(pattern);
	while (i < n) {
		size_t j = i + 1;
		while (j < n && pattern[j] != '/')
			j++;
		if (!seg_valid(pattern + i + 1, j - i - 1, j >= n))
			return 0;
		i = j;
	}
	return 1;
}

static size_t seg_end(const char *s, size_t i, size_t n)
{
	i++;
	while (i < n && s[i] != '/')
		i++;
	return i;
}

int http_route_match(const char *pattern, const char *path, size_t len)
{
	size_t pn, sn, pi = 0, si = 0;

	if (!http_route_pattern_valid(pattern))
		return 0;
	sn = path_len(path, len);
	if (!sn || path[0] != '/')
		return 0;
	pn = strlen(pattern);
	if (sn > 1 && path[sn - 1] == '/')
		sn--;
	if (pn > 1 && pattern[pn - 1] == '/')
		pn--;
	for (;;) {
		size_t pj, sj, pl, sl;
		const char *ps, *ss;

		if (pi == pn)
			return si == sn;
		pj = seg_end(pattern, pi, pn);
		ps = pattern + pi + 1;
		pl = pj - pi - 1;
		if (pj == pn && pl == 1 && ps[0] == '*')
			return 1; /* trailing "/" "*": the rest, even nothing */
		if (si == sn)
			return 0;
		sj = seg_end(path, si, sn);
		ss = path + si + 1;
		sl = sj - si - 1;
		if (pj == pn && pl && ps[pl - 1] == '*')
			return sl >= pl - 1 && !memcmp(ps, ss, pl - 1);
		if ((pl == 1 && ps[0] == '*') || (pl && ps[0] == '{')) {
			if (!sl)
				return 0;
		} else if (pl != sl || memcmp(ps, ss, sl)) {
			return 0;
		}
		pi = pj;
		si = sj;
	}
}

const char *http_route_find(const char *const *patterns, size_t n, const char *path,
                            size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (patterns[i] && http_route_match(patterns[i], path, len))
			return patterns[i];
	return NULL;
}
