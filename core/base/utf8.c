/*
 * utf8.c - see utf8.h. The one idea: validate by decoding, then reject the
 * encodings RFC 3629 forbids (overlong forms, surrogates, > U+10FFFF).
 */
#include "base/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t utf8_seq_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), k;

	for (size_t i = 0; i < n; i += k)
		if (!(k = utf8_seq_len(p + i, n - i)))
			return false;
	return true;
}

char *utf8_repair(const char *s, bool *oom)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, bad = 0, k;
	char *out, *o;

	while (i < n) {
		k = utf8_seq_len(p + i, n - i);
		bad += !k;
		i += k ? k : 1;
	}
	if (!bad)
		return NULL;
	out = malloc(n + 2 * bad + 1);
	if (!out) {
		*oom = true;
		return NULL;
	}
	for (i = 0, o = out; i < n; i += k ? k : 1) {
		k = utf8_seq_len(p + i, n - i);
		if (k) {
			memcpy(o, p + i, k);
			o += k;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
		}
	}
	*o = '\0';
	return out;
}
