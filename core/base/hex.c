/*
 * hex.c - see hex.h.
 */
#include "base/hex.h"

int hex_decode(const char *s, uint8_t *out, size_t n, bool lower_only)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit(s[2 * i], lower_only), lo = hex_digit(s[2 * i + 1], lower_only);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}
