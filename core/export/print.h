/*
 * print.h - the stdout span printer: one line per finished span, either
 * JSON (for scripts and tests) or text (for a human at a terminal).
 *
 * JSON line keys: trace_id, span_id, parent_span_id ("" for a root),
 * name, kind ("SERVER", "CLIENT", "INTERNAL", "PRODUCER", "CONSUMER"),
 * start_time_unix_nano, end_time_unix_nano (integers), status
 * ({"code": "UNSET"|"OK"|"ERROR", "message": only when set}), attributes
 * and resource (objects, values in their native JSON type), scope (the
 * plugin name). Strings that are not valid UTF-8 get U+FFFD for each bad
 * byte; a NaN or infinite double becomes the string "NaN"/"Infinity"/
 * "-Infinity" (as in OTLP/JSON).
 */
#ifndef SONDE_PRINT_H
#define SONDE_PRINT_H

#include <stdio.h>

#include "config/config.h"
#include "telemetry/span.h"

/* A sink writing to `out` (borrowed: the caller closes it after
 * print_sink_free). Each span is one write of one whole line followed by
 * fflush, so lines from several threads never interleave. v1 writes
 * synchronously: a full pipe blocks the emitting thread until the reader
 * catches up. Returns NULL for PRINT_NONE, a NULL out, or out of memory. */
struct span_sink *print_sink_new(FILE *out, enum print_mode mode);

/* Flushes and frees a sink from print_sink_new. NULL is a no-op. */
void print_sink_free(struct span_sink *sink);

/* One span as one line, '\n'-terminated, malloc'd (caller frees). NULL for
 * PRINT_NONE or out of memory. The sink uses this; tests can too. */
char *print_format(const struct span *s, enum print_mode mode);

#endif
