/*
 * hex.h - hexadecimal digits both ways, for the few places the core reads or
 * writes them (trace ids, percent-encoding in configuration values).
 *
 * The one idea: one definition of "what is a hex digit", so W3C trace
 * context (lowercase only) and RFC 3986 percent-encoding (either case) differ
 * only in the flag they pass.
 */
#ifndef SONDE_BASE_HEX_H
#define SONDE_BASE_HEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Value of one hex digit, or -1. With lower_only, 'A'..'F' are refused. */
static inline int hex_digit(char c, bool lower_only)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (!lower_only && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* n bytes from 2n hex digits; 0, or -1 on a bad digit (out is then partial). */
int hex_decode(const char *s, uint8_t *out, size_t n, bool lower_only);

/* n bytes as 2n lowercase digits plus NUL: out holds 2n+1 bytes. */
void hex_encode(const uint8_t *in, size_t n, char *out);

#endif
