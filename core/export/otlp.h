/*
 * otlp.h - the OTLP/HTTP exporter for spans and histogram metrics.
 *
 * One exporter thread owns a libcurl handle and talks to a collector with
 * OTLP/HTTP (protobuf by default, or JSON). The capture thread only ever
 * calls emit() on the span sink, which takes a mutex for an O(1) enqueue
 * into a bounded ring of span references: when the ring is full the span
 * is dropped and counted, so an outage of any length costs bounded memory
 * and never blocks capture. Spans leave in batches of up to 512 or every
 * second; histograms are read from the registry every interval_ms. Failed
 * batches are retried with exponential backoff on 429/502/503/504 and on
 * connection errors (Retry-After honoured), and dropped on anything else.
 *
 * docs/exporting.md describes the wire format, the pinned OTLP version and
 * the self-metrics this module publishes.
 */
#ifndef SONDE_OTLP_H
#define SONDE_OTLP_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct metrics;
struct span_sink;

/* What an empty ("") endpoint means: OTLP on, the spec's HTTP default. */
#define OTLP_DEFAULT_ENDPOINT "http://localhost:4318"

struct otlp;

/*
 * Start the exporter thread. cfg is copied (the caller keeps ownership); m
 * (may be NULL: no metric export, no self-metrics) must outlive the
 * exporter. Returns NULL with err "" when OTLP is off (no endpoint and no
 * signal endpoint), NULL with a message in err on bad settings or when the
 * thread cannot start.
 */
struct otlp *otlp_start(const struct otlp_cfg *cfg, struct metrics *m, char *err, size_t errlen);

/* The sink to register with the span pipeline. Owned by o, valid until
 * otlp_stop. emit() takes a reference (span_ref) and never blocks; when
 * traces are not exported (only a metrics endpoint set) emit() ignores the
 * span. */
struct span_sink *otlp_span_sink(struct otlp *o);

/* Final flush (queued spans and one last metric export), bounded by
 * cfg->timeout_ms overall, then join the thread and free everything.
 * Spans that could not be sent in time are counted as dropped. NULL is a
 * no-op. */
void otlp_stop(struct otlp *o);

/* Counters since start: [0] = spans, [1] = metric data points.
 * exported: accepted by the collector (2xx); failed: rejected with a
 * non-retryable answer or retried until the retry budget ran out;
 * dropped: never sent (queue full, or still queued when stop's time ran
 * out). */
struct otlp_stats {
	uint64_t exported[2], failed[2], dropped[2];
};
void otlp_get_stats(struct otlp *o, struct otlp_stats *out);

/* ---- exposed for tests: the pure policies otlp.c drives ---------------- */

/*
 * The retry policy. status: HTTP status (0 when the request never got an
 * answer); net: what went wrong in transport. retry_after: the response's
 * Retry-After header value or NULL. attempt: 0 for the first retry.
 * jitter: a number in [0, 1). Returns the delay in ms before the next try,
 * 0 for success (2xx), or -1 to give the batch up.
 */
enum otlp_net { OTLP_NET_OK = 0, OTLP_NET_RETRYABLE, OTLP_NET_FATAL };
#define OTLP_BACKOFF_INITIAL_MS 1000
#define OTLP_BACKOFF_MAX_MS 30000
#define OTLP_RETRY_AFTER_MAX_MS 300000
long otlp_retry_delay_ms(long status, enum otlp_net net, const char *retry_after,
                         unsigned attempt, double jitter);

struct span;
struct otlp_buf;

/* gzip (RFC 1952) of in into out (appended). 0 or -ENOMEM/-EIO. */
int otlp_gzip(const uint8_t *in, size_t n, struct otlp_buf *out);

/* The bounded span queue: a ring of span references. push takes a
 * reference or, when full, counts a drop and returns -ENOSPC. pop hands
 * the caller the queue's reference. Not locked: otlp.c holds its mutex. */
struct otlp_queue {
	struct span **ring;
	size_t cap, head, len;
	uint64_t dropped;
};
int otlp_queue_init(struct otlp_queue *q, size_t cap);
int otlp_queue_push(struct otlp_queue *q, struct span *s);
size_t otlp_queue_pop(struct otlp_queue *q, struct span **out, size_t max);
void otlp_queue_free(struct otlp_queue *q);   /* unrefs what is left */

#endif
