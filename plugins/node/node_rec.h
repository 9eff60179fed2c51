/*
 * node_rec.h - what the Node.js plugin's BPF programs (node.bpf.c) and its
 * user side (node_plugin.c) share: the per-process state the programs read,
 * the record they write, what the signal check reports, their counters.
 *
 * The one idea: the programs know nothing of Node.js. A script the plugin
 * runs in the process (node_ctx.js) keeps, in one ArrayBuffer, the request
 * key current on the event-loop thread and a table fd -> key of accepted
 * connections; the script writes the buffer's first bytes (magic + nonce)
 * to /dev/null once, which tells the kernel its address. From then on every
 * socket syscall of that thread copies the right key into the host's
 * sonde_thread_ctx, so the host stamps the chunk with it.
 *
 * Layouts are packed by hand (explicit padding) so clang -target bpf and
 * the host compiler agree.
 */
#ifndef SONDE_NODE_REC_H
#define SONDE_NODE_REC_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* The script's buffer (node_ctx.js). */
#define NODE_MAGIC "SONDE-NODE-CTX1" /* 15 characters and a NUL: 16 bytes */
#define NODE_MAGIC_LEN 16
#define NODE_OFF_NONCE 16
#define NODE_OFF_CUR 24
#define NODE_OFF_NFD 28
#define NODE_OFF_TABLE 32
#define NODE_HDR_LEN 32
#define NODE_NFD_MAX (1u << 20) /* table entries at most (fds 0..NFD_MAX-1) */

/* An HTTP/2 client stream's key (node_ctx.js writes it to /dev/null from
 * the event-loop thread): magic, nonce, then fd, stream id, key, 0. */
#define NODE_H2_MAGIC "SONDE-NODE-H2S1"
#define NODE_H2_LEN 40
#define NODE_H2_OFF_FD 24

/* Record types, relative to the base the plugin claimed. */
enum node_rec_type {
	NODE_REC_REG = 0, /* struct node_rec_reg: the script's buffer was found */
	NODE_REC_H2 = 1,  /* struct node_rec_h2: an HTTP/2 client stream's key */
	NODE_REC_COUNT = 2,
};

/* node_proc.state */
#define NODE_PS_WAIT 1   /* waiting for the registration write */
#define NODE_PS_ACTIVE 2 /* buffer known: keep the thread's context */

/* Per process (map node_procs, by tgid). */
struct node_proc {
	__u64 nonce;    /* what the registration write must carry */
	__u64 slot;     /* the buffer's address in the process (ACTIVE) */
	__u32 tid;      /* the thread that registered: the event loop's */
	__u32 nfd;      /* table entries */
	__u32 state;    /* NODE_PS_* */
	__u32 rec_base; /* first record type claimed */
};

/* Same layout as struct sonde_bpf_hdr (sonde/bpf.h). */
struct node_rec_hdr {
	__u32 type;
	__u32 tgid;
	__u32 tid;
	__u32 fd;
	__u64 ts_ns;
};

struct node_rec_reg {
	struct node_rec_hdr h; /* tid: the event-loop thread */
	__u64 slot;
	__u64 nonce;
	__u32 nfd;
	__u32 pad;
};

struct node_rec_h2 {
	struct node_rec_hdr h; /* fd: the session's socket */
	__u32 stream;          /* HTTP/2 stream id */
	__u32 key;             /* the request key current when it was asked for */
};

/* What the task iterator reports about SIGUSR1 (one per process: its main
 * thread). */
struct node_sig {
	__u32 tgid;
	__u32 tid;
	__u64 handler;  /* sa_handler: 0 SIG_DFL, 1 SIG_IGN, else an address */
	__u64 flags;    /* sa_flags (SA_RESTART ...) */
	__u64 blocked;  /* the main thread's blocked mask, first word */
};

/* Self-counters (per-CPU array node_stats). */
enum node_stat {
	NODE_ST_REG = 0,   /* registrations accepted */
	NODE_ST_REG_BAD,   /* other writes of a waiting process (not the registration) */
	NODE_ST_CUR,       /* syscalls whose key came from the current word */
	NODE_ST_TABLE,     /* ... from the fd table (outside JavaScript) */
	NODE_ST_NONE,      /* ... with no key */
	NODE_ST_STALE,     /* table keys of fds closed since (ignored) */
	NODE_ST_FAULT,     /* the buffer could not be read */
	NODE_ST_LOST,      /* records the ring buffer refused */
	NODE_ST_H2,        /* HTTP/2 client stream keys passed on */
	NODE_ST_H2_BAD,    /* 40-byte non-socket writes that were not one */
	NODE_ST_COUNT,
};

#endif /* SONDE_NODE_REC_H */
