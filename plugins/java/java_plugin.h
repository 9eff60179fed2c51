/*
 * java_plugin.h - the Java plugin's internals that its unit tests read:
 * what it counted, which record types it claimed, and the entry points a
 * test uses in place of the kernel and the clock.
 */
#ifndef SONDE_JAVA_PLUGIN_H
#define SONDE_JAVA_PLUGIN_H

#include <stdint.h>

struct java_counters {
	uint64_t procs_attached;  /* JVMs whose agent said hello */
	uint64_t procs_refused;   /* JVMs left to the generic layer */
	uint64_t msgs;            /* agent messages received */
	uint64_t data;            /* ... plaintext */
	uint64_t injected;        /* ... injected into a host connection */
	uint64_t no_socket;       /* ... whose socket the agent did not know */
	uint64_t no_conn;         /* ... whose (pid, fd) the host did not know */
	uint64_t inject_err;      /* ... the host refused */
	uint64_t gaps;            /* ... after missing plaintext of their stream */
	uint64_t bad;             /* records or messages that do not parse */
	uint64_t procs_ctx;       /* JVMs whose request contexts are followed */
	uint64_t begins;          /* hand-offs: a task started on another thread */
	uint64_t begins_orphan;   /* ... whose submitting thread's key was unknown */
	uint64_t ends;            /* ... and ended */
	uint64_t threads_keyed;   /* threads given their key when contexts went on */
	uint64_t slots;           /* carrier threads whose key word was registered */
	uint64_t vstarts;         /* virtual threads started by a thread with a key */
	uint64_t vends;           /* ... terminated */
};

/* The plugin loaded last (NULL after its fini). */
const struct java_counters *java_debug_counters(void);
uint32_t java_debug_rec_base(void);

#endif /* SONDE_JAVA_PLUGIN_H */
