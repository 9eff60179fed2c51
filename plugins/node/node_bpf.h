/*
 * node_bpf.h - the Node.js plugin's BPF object: loaded by the host (which
 * shares its maps) and a second time by the plugin, whose copy of the
 * programs uses the host copy's maps and is attached here (syscall
 * tracepoints, the task iterator), because the host attaches only uprobes.
 */
#ifndef SONDE_NODE_BPF_H
#define SONDE_NODE_BPF_H

#include <stddef.h>
#include <stdint.h>

#include <sonde/plugin.h>

#include "node_rec.h"

struct node_bpf;

/* Load (host copy, then ours) and attach the tracepoints. NULL with the
 * reason in why. */
struct node_bpf *node_bpf_open(const struct sonde_host_api *host,
                               struct sonde_plugin_handle *self, const void *obj, size_t len,
                               char *why, size_t cap);

/* Detach and close our copy (the host's goes with the plugin). */
void node_bpf_close(struct node_bpf *b);

/* How pid's main thread handles SIGUSR1 now. 0, or -1 with errno. */
int node_bpf_sig(struct node_bpf *b, uint32_t pid, struct node_sig *out);

/* A uprobe of program prog on symbol in path, for pid only, through the
 * host (its copy). A sonde_err. */
int node_bpf_uprobe(struct node_bpf *b, const struct sonde_host_api *host, uint32_t pid,
                    const char *prog, const char *path, const char *symbol);

int node_bpf_proc_set(struct node_bpf *b, uint32_t pid, const struct node_proc *p);
int node_bpf_proc_del(struct node_bpf *b, uint32_t pid);

/* The programs' counters, summed over CPUs. */
void node_bpf_stats(struct node_bpf *b, uint64_t out[NODE_ST_COUNT]);

#endif /* SONDE_NODE_BPF_H */
