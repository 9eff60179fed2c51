/*
 * utf8.h - UTF-8 validation and repair for bytes that came off the wire.
 *
 * Captured traffic is not text we control: a path, a user agent or a Redis
 * key may hold any bytes. Every exporter (printer, Prometheus, OTLP) must
 * emit valid UTF-8, so they share one strict validator: no overlongs, no
 * surrogates, nothing above U+10FFFF; an invalid byte becomes U+FFFD.
 */
#ifndef SONDE_UTF8_H
#define SONDE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid UTF-8 sequence at p (n >= 1 bytes left), 0 if the
 * byte at p does not start one. */
size_t utf8_seq_len(const unsigned char *p, size_t n);

/* True when all of s is valid UTF-8. */
bool utf8_valid(const char *s);

/* A malloc'd copy of s with every invalid byte replaced by U+FFFD, or NULL
 * when s is already valid (then *oom stays false) or memory ran out (then
 * *oom is set). The caller frees the copy. */
char *utf8_repair(const char *s, bool *oom);

#endif
