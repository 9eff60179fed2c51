/*
 * otlp_pb.h - the two OTLP wire encoders (protobuf in otlp_pb.c, JSON in
 * otlp_json.c), pure functions of a finished batch
 * (export/otlp_model.h).
 *
 * The one idea: spans are encoded straight from the shared, immutable
 * struct span, histogram points from an otlp_mbatch snapshot, so neither
 * encoder ever touches a lock. Nothing here is part of the agent's API:
 * otlp.h is; tests include this header to check each piece on its own.
 */
#ifndef SONDE_OTLP_PB_H
#define SONDE_OTLP_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export/otlp_model.h"
#include "telemetry/span.h"

/* A growable byte buffer. oom latches: after a failed allocation every
 * append is ignored and the encoder reports -ENOMEM once at the end. */
struct otlp_buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};
void otlp_buf_free(struct otlp_buf *b);

/* Encoders. 0 or -ENOMEM; out is appended to. JSON returns a malloc'd,
 * NUL-terminated string (NULL on ENOMEM). spans[i] are borrowed. */
int otlp_pb_traces(struct span *const *spans, size_t n, struct otlp_buf *out);
int otlp_pb_metrics(const struct otlp_mbatch *b, struct otlp_buf *out);
char *otlp_json_traces(struct span *const *spans, size_t n);
char *otlp_json_metrics(const struct otlp_mbatch *b);

#endif
