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
};

/* The plugin loaded last (NULL after its fini). */
const struct node_counters *node_debug_counters(void);
uint32_t node_debug_rec_base(void);

/* The script the plugin runs in each process (NUL-terminated). */
const char *node_script_text(void);

#endif /* SONDE_NODE_PLUGIN_H */
