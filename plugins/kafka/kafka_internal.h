/*
 * kafka_internal.h - the Kafka plugin's counters, for its own unit tests and
 * fuzz harness (which link the plugin's sources directly). Not part of the
 * plugin's ABI: the agent only ever sees sonde_plugin_entry().
 *
 * The counters say where frames went that did not become spans; the plugin
 * logs them per connection (debug) and in total at fini (info), with the
 * number of requests per API name; on an SDK 1.1 host the dropped requests
 * are also a counter (sonde.kafka.dropped.requests).
 */
#ifndef SONDE_KAFKA_INTERNAL_H
#define SONDE_KAFKA_INTERNAL_H

#include <stdint.h>

#include "kafka_proto.h"

struct kafka_stats {
	uint64_t requests;       /* whole request frames */
	uint64_t responses;      /* whole response frames answering a request */
	uint64_t spans;          /* spans ended */
	uint64_t produce_spans;  /* of which Produce */
	uint64_t fetch_spans;    /* of which Fetch */
	uint64_t acks0;          /* Produce with acks=0: span ended at the request */
	uint64_t fetch_empty;    /* Fetch answered with no record and no error: no span */
	uint64_t fetch_unknown;  /* Fetch whose answer could not be read: no span */
	uint64_t unanswered;     /* requests passed over by a later answer (answer lost) */
	uint64_t evicted;        /* requests dropped because too many were in flight */
	uint64_t closed_pending; /* requests still waiting at close */
	uint64_t expired;        /* requests waiting longer than request_timeout (1.1 timer) */
	uint64_t span_refused;   /* span_start returned NULL */
	uint64_t unmatched;      /* responses to requests never seen */
	uint64_t unknown_api;    /* requests of an unknown API or version */
	uint64_t sync_lost;      /* a direction lost its place */
	uint64_t resyncs;        /* a direction found its place (first time included) */
	uint64_t probation_failed;
	uint64_t walk_failed;    /* bodies whose structure could not be followed */
	uint64_t bytes_unsynced;
	uint64_t chunks_unassigned; /* role unknown and no request seen yet */
	uint64_t by_api[KFK_API_MAX + 2]; /* requests per API key; last: unknown keys */
};

/* Totals of the most recently initialised plugin instance, added when each
 * connection closes. For tests only. */
const struct kafka_stats *kafka_debug_totals(void);

/* Default bound of the per-connection table of requests awaiting an answer
 * (setting max_in_flight). */
#define KAFKA_MAX_IN_FLIGHT 1024
#define KAFKA_MAX_IN_FLIGHT_LIMIT 65536

#endif
