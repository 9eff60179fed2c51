/*
 * capture.h - the generic eBPF capture layer as user space sees it.
 *
 * capture_open() probes what the kernel offers, mounts tracefs/bpffs when
 * they are missing, loads the CO-RE skeleton built from bpf/capture.bpf.c,
 * attaches the syscall tracepoints and sched hooks, and opens the ring
 * buffer. capture_poll() then hands every raw record (bpf/sonde_events.h)
 * to the callback, in ring-buffer order. Nothing here knows a protocol.
 */
#ifndef SONDE_CAPTURE_H
#define SONDE_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct capture;
struct sonde_trace_ctx;

struct capture_opts {
	size_t struct_size;
	uint32_t payload_cap;   /* bytes copied per read/write; 0 = default */
	uint32_t ringbuf_bytes; /* ring buffer size, power of two; 0 = default 8 MiB */
	bool prefer_kprobes;    /* use kprobe/fentry accelerators if the kernel has them */
	bool exec_adopt;        /* watch exec'd programs provisionally until user
	                           space has matched them (capture_watch) or not
	                           (capture_unwatch) */
	bool exec_adopt_all;    /* ... every program (a selector has no literal end) */
	const char *const *exe_suffixes; /* ... else only those whose path ends with
	                                    one of these (at most 15, 56 bytes) */
	size_t n_exe_suffixes;
	uint32_t shed_pct;      /* ring fill (%) where shedding starts; 0 = 75,
	                           >100 = never */
	uint32_t budget_bytes;  /* a process's share per 100 ms under pressure;
	                           0 = a quarter of the ring */
	uint32_t max_connections; /* the kernel's connection table; 0 = 65536 */
	bool inject;            /* load the traceparent injection programs (a
	                           service asked for it) */
	bool tls_per_process;   /* capture_tls_share does nothing */
};

/* True when opts (of its own struct_size) carries field f. */
#define SONDE_HAS_OPT(o, f) \
	((o)->struct_size >= offsetof(struct capture_opts, f) + sizeof((o)->f))

struct capture_features {
	bool tracepoints;   /* syscalls:* tracepoints usable */
	bool raw_tp;
	bool ringbuf;
	bool uprobes;
	bool kprobes;
	bool fentry;
	bool btf;           /* /sys/kernel/btf/vmlinux present */
	bool rdonly_cast;   /* the bpf_rdonly_cast kfunc (6.2+): typed socket reads */
	char tracefs[64];   /* where tracefs is mounted ("" = none) */
};

struct capture_stats {
	uint64_t events;    /* records written by the kernel side */
	uint64_t lost;      /* records dropped because the ring buffer was full */
	uint64_t truncated; /* data records whose payload was cut at the cap */
	uint64_t not_tcp;   /* watched fds skipped in the kernel as not TCP */
	uint64_t tls_records; /* plaintext records from the TLS uprobes */
	uint64_t tls_dropped; /* plaintext dropped: its socket was unknown */
	uint64_t preexisting; /* connections first seen mid-life (opened before us) */
	uint64_t muted;     /* records not sent: the connection was muted */
	uint64_t shed;      /* records dropped on purpose under ring pressure */
	uint64_t skipped_bytes; /* payload bytes not copied: before a skip position */
	uint64_t nobuf;     /* sendfile/splice records (byte counts only) */
	uint64_t exec_adopted; /* exec'd programs watched provisionally */
	uint64_t injected;     /* traceparent headers inserted (injection) */
	uint64_t inj_present;  /* requests left alone: they carried a traceparent */
	uint64_t inj_unsure;   /* messages left alone: not exactly whole requests */
	uint64_t inj_noctx;    /* requests of a serving thread left alone: what it
	                          served was not published in time */
};

/* Called for every record. `rec` points at a struct sonde_ev_hdr; it is only
 * valid during the call. Return 0 to go on. */
typedef int (*capture_cb)(void *ctx, const void *rec, size_t len);

/* Returns NULL and writes a one-line reason into err on failure (missing
 * feature, no permission, verifier refusal with the program name). */
struct capture *capture_open(const struct capture_opts *opts, capture_cb cb,
                             void *ctx, char *err, size_t errlen);
void capture_close(struct capture *c);
/* Set (or replace) the record callback; cb may be NULL at open and set
 * here before the first capture_poll. */
void capture_set_callback(struct capture *c, capture_cb cb, void *ctx);

/* Feature probe results (valid after capture_open). */
const struct capture_features *capture_features(const struct capture *c);
/* Probe without loading anything (for --features / error messages). */
int capture_probe_features(struct capture_features *f);

/* Add or remove a process (tgid) from the in-kernel filter. */
int capture_watch(struct capture *c, uint32_t tgid);
int capture_unwatch(struct capture *c, uint32_t tgid);
/* The process's flag byte (SONDE_PID_* of sonde_events.h): set and clear
 * bits atomically; read. */
int capture_pid_set(struct capture *c, uint32_t tgid, uint8_t set, uint8_t clear);
uint8_t capture_pid_flags(struct capture *c, uint32_t tgid);

/* Write the control word of connection generation gen (SONDE_CTL_* flags,
 * payload cap, and per direction the position before which no payload is
 * needed). Takes effect for the connection's next syscall. */
int capture_conn_ctl(struct capture *c, uint64_t gen, uint32_t flags, uint32_t cap,
                     uint64_t skip_in, uint64_t skip_out);

/* Records (and bytes) dropped for process tgid: ring full or shed. */
int capture_proc_dropped(struct capture *c, uint32_t tgid, uint64_t *records, uint64_t *bytes);

/* Wait up to timeout_ms for records and deliver them. Returns the number of
 * records delivered, or a negative errno. */
int capture_poll(struct capture *c, int timeout_ms);
/* Traceparent injection is attached (capture_opts.inject, and the kernel
 * and cgroup v2 allowed it). */
bool capture_injecting(const struct capture *c);
/* What thread tid is serving now, for the requests it sends (injection). */
int capture_trace_ctx(struct capture *c, uint32_t tid, const struct sonde_trace_ctx *t);

/* Deliver at most `records` per capture_poll() (0: everything waiting), so
 * the caller can give the CPU back between slices. */
void capture_set_slice(struct capture *c, int records);
/* The last capture_poll() stopped at the slice with records still waiting. */
bool capture_more(const struct capture *c);

int capture_stats(struct capture *c, struct capture_stats *out);

/* TLS plaintext (core/tls.c): attach uprobes on the TLS library functions
 * a watched process uses (libssl as mapped from /proc/PID/maps, or OpenSSL/
 * BoringSSL linked into the executable). Idempotent; returns the number of
 * libraries attached for this process (0: no TLS library found), or a
 * negative errno. Detach when the process goes away. */
int capture_tls_attach(struct capture *c, uint32_t tgid);
void capture_tls_detach(struct capture *c, uint32_t tgid);
/* tgid forks children: attach its TLS library files once for every process
 * (the programs filter by the kernel's pid flags), so a child is covered
 * from its first instruction instead of from when discovery attaches it.
 * Returns how many files became shared. */
int capture_tls_share(struct capture *c, uint32_t tgid);

/* Runtime plugins' BPF objects (plugin_bpf.c): load with the host's shared
 * maps reused, attach uprobes (per pid, or every process for pid 0), give
 * map fds. Errors are negative errnos; load explains in err. */
struct capture_obj;
int capture_obj_load(struct capture *c, const char *name, const void *bytes, size_t len,
                     struct capture_obj **out, char *err, size_t errlen);
int capture_obj_uprobe(struct capture_obj *o, uint32_t pid, const char *prog, const char *path,
                       const char *symbol, uint64_t offset, bool retprobe, uint64_t cookie);
void capture_obj_detach_pid(struct capture_obj *o, uint32_t pid);
int capture_obj_map_fd(struct capture_obj *o, const char *map);
void capture_obj_free(struct capture_obj *o);

#endif
