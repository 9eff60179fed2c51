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

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "telemetry/span.h"

/* Bytes of printed lines that may wait for a slow reader before spans are
 * dropped (and counted) instead of blocking the agent. The buffer starts at
 * PRINT_BUFFER_START and doubles as needed. */
#define PRINT_BUFFER_BYTES (64u << 20)
#define PRINT_BUFFER_START (64u << 10)
/* Waiting bytes past which emit wakes the writer without a flush. */
#define PRINT_WAKE_BYTES (256u << 10)

/* A sink writing to `out` (borrowed: the caller closes it after
 * print_sink_free; nobody else writes to it meanwhile). emit formats one
 * whole line and appends it to a buffer of up to PRINT_BUFFER_BYTES; flush wakes
 * the sink's writer thread, which writes it out. Lines from several
 * threads never interleave, and emit never waits on the reader: a span
 * that does not fit is dropped (print_sink_dropped). Returns NULL for
 * PRINT_NONE, a NULL out, or out of memory. */
struct span_sink *print_sink_new(FILE *out, enum print_mode mode);

/* The same with a buffer of up to cap bytes; with wait_when_full, emit
 * waits for the writer instead of dropping (a replay, where no ring buffer
 * fills while the agent waits). */
struct span_sink *print_sink_new_opts(FILE *out, enum print_mode mode, size_t cap,
                                      bool wait_when_full);

/* Spans dropped because the reader was too slow. 0 for NULL. */
uint64_t print_sink_dropped(struct span_sink *sink);

/* Writes what is waiting, stops the writer and frees a sink from
 * print_sink_new. Blocks until the reader took it. NULL is a no-op. */
void print_sink_free(struct span_sink *sink);

/* One span as one line, '\n'-terminated, malloc'd (caller frees). NULL for
 * PRINT_NONE or out of memory. The sink uses this; tests can too. */
char *print_format(const struct span *s, enum print_mode mode);

#endif
