/*
 * conns.h - the pipeline's connection table: one entry per captured
 * connection generation, turning kernel DATA records into chunks for the
 * host.
 *
 * The one idea: the kernel says "gen G moved N bytes starting at position
 * P"; this table remembers where each direction (and each source: socket or
 * TLS library) should continue, so a mismatch becomes a GAP flag, and it
 * drops TLS ciphertext once a connection is known to carry TLS. What a
 * connection *means* (its protocol, its spans) is the host's business:
 * each entry owns one host connection (struct sonde_conn).
 */
#ifndef SONDE_PIPELINE_CONNS_H
#define SONDE_PIPELINE_CONNS_H

#include <stddef.h>
#include <stdint.h>

#include "sonde_events.h"

struct capture;
struct host;
struct sonde_conn;
struct proc;
struct conns;

struct conns_counters {
	uint64_t opened;       /* connections seen */
	uint64_t gaps;         /* places where captured bytes were missing */
	uint64_t unknown_data; /* DATA for a gen never opened (its OPEN was lost) */
	uint64_t end_gaps;     /* of gaps: holes at the very end, found at close */
	uint64_t inject_unknown; /* INJECT records for a connection not known */
};

/* cap (may be NULL) receives the control words: mute, TLS. */
struct conns *conns_new(struct host *h, struct capture *cap);
void conns_set_capture(struct conns *cs, struct capture *cap);
/* Closes what is left (at ts 0). NULL is a no-op. */
void conns_free(struct conns *cs);

/* CONN_OPEN for a watched process p. A repeated gen closes the old one. */
void conns_open(struct conns *cs, const struct sonde_ev_conn *ev, struct proc *p,
                uint64_t ts_unix_ns);
/* CONN_CLOSE; end_pos (may be NULL, or zeros from older recordings): the
 * bytes the socket moved per direction, to flag a hole at the very end. */
void conns_close(struct conns *cs, uint64_t gen, uint64_t ts_unix_ns, const uint64_t end_pos[2]);
/* One DATA record (already length-checked by the caller). */
void conns_data(struct conns *cs, const struct sonde_ev_data *ev, uint64_t ts_unix_ns);

/* Every connection of process tgid: closed (it exited), or renamed
 * (it exec'd another program). */
/* unsure: records of the process were lost, so what its connections last
 * moved is not known (a hole is reported before each close). */
void conns_close_proc(struct conns *cs, uint32_t tgid, uint64_t ts_unix_ns, bool unsure);
void conns_renew_proc(struct conns *cs, const struct proc *p);
void conns_close_all(struct conns *cs, uint64_t ts_unix_ns);

/* The kernel inserted a traceparent into a request of a connection (told
 * by its process and ports): its host connection hears of it. */
void conns_injected(struct conns *cs, const struct sonde_ev_inject *ev);
/* The kernel's identity of connection gen (tgid, fd, gen, bytes written
 * so far) for the serving-thread table; false if unknown. */
bool conns_trace_ctx(struct conns *cs, uint64_t gen, struct sonde_trace_ctx *t);

/* The host connection process tgid has on fd now, or NULL. */
struct sonde_conn *conns_lookup_fd(struct conns *cs, uint32_t tgid, uint32_t fd);

size_t conns_count(const struct conns *cs);
const struct conns_counters *conns_counters(const struct conns *cs);

#endif
