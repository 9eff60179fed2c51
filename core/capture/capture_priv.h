/*
 * capture_priv.h - what core/capture.c and core/tls.c share and nobody else
 * sees: the capture handle itself and the TLS attach state's life cycle.
 *
 * The one idea: the BPF object (and so every program and map) belongs to
 * capture.c; tls.c only attaches the object's uprobe programs to library
 * files and owns the resulting links, which capture_close() destroys
 * (through tls_free) before the object goes.
 */
#ifndef SONDE_CAPTURE_PRIV_H
#define SONDE_CAPTURE_PRIV_H

#include "capture/capture.h"
#include "sonde_events.h"

struct capture_bpf;
struct ring_buffer;
struct capture_tls;
struct bpf_link;

struct capture {
	struct capture_bpf *skel;
	struct ring_buffer *rb;
	struct capture_tls *tls; /* core/tls.c; NULL until the first attach */
	bool uprobe_multi;       /* TLS uprobes go through uprobe_multi links */
	bool tls_per_process;    /* never share TLS uprobes (capture_tls_share) */
	struct capture_features feat;
	capture_cb cb;
	void *ctx;
	int ncpu;
	uint64_t *pids;          /* the mmap'ed pid table (sonde_pids) */
	size_t pids_len;
	uint32_t pid_words;
	struct sonde_ctl *ctl;   /* the mmap'ed control words (sonde_ctl) */
	size_t ctl_len;
	struct sonde_exe_suffix suffixes[SONDE_EXE_SUFFIX_MAX];
	uint32_t n_suffixes;
	int delivered;  /* records handed to cb during this capture_poll() */
	int slice;      /* at most this many records per capture_poll() (0: all) */
	bool more;      /* the last capture_poll() stopped at the slice */
	int stop_rc;    /* what cb returned when it asked to stop */
	bool stopped;
	bool inject;             /* traceparent injection programs loaded */
	bool inject_attached;    /* ... and attached (inject.c) */
	struct bpf_link *inject_cgroup;
};

/* Sum of one slot of the per-CPU `counters` map, or 0. */
uint64_t capture_counter(struct capture *c, uint32_t slot);

/* Before the object is loaded: choose the TLS programs' flavour (two
 * uprobe_multi dispatch programs on kernels that have them, else one
 * perf-event program per function) and set c->uprobe_multi. */
void tls_prepare(struct capture *c);

/* Does the kernel offer BPF uprobe_multi links (6.6+)? */
bool tls_probe_uprobe_multi(void);

/* Called from capture_poll(): attach to TLS libraries that watched
 * processes mapped since the last call (the kernel flags them). */
void tls_poll(struct capture *c);

/* Destroy every uprobe link and free the state (c->tls becomes NULL).
 * Called by capture_close() while c->skel is still loaded. */
void tls_free(struct capture *c);

/* inject.c: traceparent injection. prepare before the load (on: load its
 * programs and maps), attach after it (a message in err when it cannot:
 * injection stays off), detach before the object goes. */
void inject_prepare(struct capture *c, bool on);
int inject_attach(struct capture *c, char *err, size_t errlen);
void inject_detach(struct capture *c);

/* features.c: paths and the filesystem check capture.c's mounts share. */
#define CAPTURE_BTF_PATH "/sys/kernel/btf/vmlinux"
#define CAPTURE_TRACEFS "/sys/kernel/tracing"
#define CAPTURE_TRACEFS_OLD "/sys/kernel/debug/tracing"
bool capture_is_fs(const char *dir, long magic);

#endif /* SONDE_CAPTURE_PRIV_H */
