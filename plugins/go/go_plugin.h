/*
 * go_plugin.h - the Go plugin's internals that its unit tests read: what it
 * counted, and which record types it claimed.
 */
#ifndef SONDE_GO_PLUGIN_H
#define SONDE_GO_PLUGIN_H

#include <stdint.h>

struct go_counters {
	uint64_t procs_ok;       /* processes instrumented */
	uint64_t procs_refused;  /* Go processes left to the generic layer */
	uint64_t data;           /* plaintext records received */
	uint64_t injected;       /* ... injected into a host connection */
	uint64_t no_conn;        /* ... whose (pid, fd) the host did not know */
	uint64_t inject_err;     /* ... the host refused */
	uint64_t links;          /* goroutine creations passed on */
	uint64_t ends;           /* goroutine exits passed on */
	uint64_t bad;            /* records too short or inconsistent */
};

/* The plugin loaded last (NULL after its fini). */
const struct go_counters *go_debug_counters(void);
uint32_t go_debug_rec_base(void);

#endif /* SONDE_GO_PLUGIN_H */
