/*
 * redis_internal.h - the Redis plugin's counters, for its own unit tests and
 * fuzz harness (which link the plugin's sources directly). Not part of the
 * plugin's ABI: the agent only ever sees sonde_plugin_entry().
 *
 * The counters say where bytes went that did not become spans; the plugin
 * logs them per connection (debug) and in total at fini (info).
 */
#ifndef SONDE_REDIS_INTERNAL_H
#define SONDE_REDIS_INTERNAL_H

#include <stdint.h>

struct redis_stats {
	uint64_t commands;    /* complete commands parsed */
	uint64_t replies;     /* complete replies parsed (pushes included) */
	uint64_t spans;       /* spans ended */
	uint64_t dropped;     /* commands dropped without a span: sync lost, close, overflow */
	uint64_t overflow;    /* of which: the pending FIFO was full */
	uint64_t pushes;      /* pub/sub messages, RESP3 pushes, MONITOR lines */
	uint64_t unmatched;   /* replies with no pending command */
	uint64_t noreply;     /* commands sent under CLIENT REPLY OFF/SKIP */
	uint64_t sync_lost;   /* times a direction lost its place */
	uint64_t resyncs;     /* times a direction found a clean boundary again */
	uint64_t span_limit;  /* span_start returned NULL when the command was seen */
	uint64_t late_spans;  /* of which: started at the reply instead */
};

/* Totals of the most recently initialised plugin instance, added when each
 * connection closes. For tests only. */
const struct redis_stats *redis_debug_totals(void);

/* Bound of the per-connection FIFO of commands awaiting a reply. */
#define REDIS_MAX_PENDING 4096

#endif
