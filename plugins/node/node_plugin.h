/*
 * node_plugin.h - the Node.js plugin's internals that its unit tests read.
 */
#ifndef SONDE_NODE_PLUGIN_H
#define SONDE_NODE_PLUGIN_H

#include <stdint.h>

struct node_counters {
	uint64_t procs_ok;       /* processes whose contexts are followed */
	uint64_t procs_refused;  /* Node.js processes left to the generic layer */
	uint64_t regs;           /* registration records accepted */
	uint64_t regs_stray;     /* ... for no process being instrumented */
	uint64_t bad;            /* records too short or of an unknown type */
	uint64_t h2_given;       /* HTTP/2 client stream keys given to the host */
	uint64_t h2_noconn;      /* ... whose connection the host does not know */
	uint64_t h2_nohost;      /* ... dropped: the host lacks SDK 1.2 */
	uint64_t h2_stray;       /* ... of a process not (or no longer) followed */
};

/* The plugin loaded last (NULL after its fini). */
const struct node_counters *node_debug_counters(void);
uint32_t node_debug_rec_base(void);
/* Tests: treat pid as a process whose contexts are followed (as after its
 * registration), so its records are taken. 0, or -1 without a plugin. */
int node_debug_set_active(uint32_t pid);

/* The script the plugin runs in each process (NUL-terminated). */
const char *node_script_text(void);

#endif /* SONDE_NODE_PLUGIN_H */
