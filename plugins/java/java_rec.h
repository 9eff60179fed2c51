/*
 * java_rec.h - what the Java plugin's BPF program (java.bpf.c) and its
 * user side (java_plugin.c) share: the per-process configuration and the
 * record the program writes into the host's ring buffer.
 *
 * The one idea: the BPF program understands nothing of Java. The agent in
 * the JVM writes each message with pwrite(2) to /dev/null at an offset only
 * it and the plugin know (the token); the uprobe on the C library's
 * pwrite64 copies the buffer of a call with that offset, as it is, behind
 * the host's record header. What the message says is java_msg.h's business,
 * in user space.
 *
 * Layouts are packed by hand (explicit padding) so clang -target bpf and
 * the host compiler agree.
 */
#ifndef SONDE_JAVA_REC_H
#define SONDE_JAVA_REC_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define JAVA_MSG_HDR 40u         /* the agent's message header (java_msg.h) */
#define JAVA_MAX_PAYLOAD 16384u  /* plaintext bytes per message at most */
#define JAVA_MSG_MAX (JAVA_MSG_HDR + JAVA_MAX_PAYLOAD)

/* What the kernel side reads of a message (java_msg.h has the rest). */
#define JAVA_MSG_KIND_BEGIN 5
#define JAVA_MSG_KIND_END 6
#define JAVA_MSG_KIND_SLOT 7  /* a carrier thread's key word: its address in the key field */
#define JAVA_MSG_OFF_KIND 6
#define JAVA_MSG_OFF_KEY 16   /* BEGIN/END: the task's key */
#define JAVA_MSG_OFF_KEY2 24  /* BEGIN: the parent key; END: the key restored */

/* Record types, relative to the base the plugin claimed (java_cfg.rec_base). */
enum java_rec_type {
	JAVA_REC_MSG = 0, /* struct java_rec + the agent's message */
	JAVA_REC_COUNT = 1,
};

/* Per process (map java_cfgs, by tgid). */
struct java_cfg {
	__u32 rec_base;
	__u32 flags;      /* JAVA_CFG_* */
	__u64 token;      /* the pwrite offset the agent writes at */
};

/* java_cfg.flags */
#define JAVA_CFG_CTX 1u   /* contexts on: keep sonde_thread_ctx for its threads */

/* Runtime-context keys (sonde_thread_ctx values, the host's context keys).
 * A thread's own key is JAVA_KEY_THREAD | its tid, kept by the kernel side
 * (set when the thread is created, or by the plugin for threads that
 * existed before); a task handed to another thread gets a fresh key
 * JAVA_KEY_TASK | a counter of the agent's, made current on the thread
 * that runs it for the task's duration (messages BEGIN and END). */
#define JAVA_KEY_THREAD 0x4a54000000000000ull /* "JT" */
#define JAVA_KEY_TASK   0x4a4b000000000000ull /* "JK" */
/* A virtual thread (JDK 21+): JAVA_KEY_VT | its Java thread id. Its carrier
 * threads read it through their key word (SONDE_CTX_INDIRECT, SDK 1.2): the
 * agent writes the key of the virtual thread it mounts into the carrier's
 * word, and the carrier's sonde_thread_ctx entry points at that word. */
#define JAVA_KEY_VT     0x4a56000000000000ull /* "JV" */
#define JAVA_KEY_TAG    0xffff000000000000ull

/* Same layout as struct sonde_bpf_hdr (sonde/bpf.h). */
struct java_rec_hdr {
	__u32 type;
	__u32 tgid;
	__u32 tid;        /* the thread that made the TLS call */
	__u32 fd;         /* the fd pwrite was given (the agent's /dev/null) */
	__u64 ts_ns;      /* bpf_ktime_get_ns() */
};

struct java_rec {
	struct java_rec_hdr h;
	__u32 len;        /* pwrite's count: the message's length */
	__u32 cap_len;    /* bytes that follow (== len, or 0 if unreadable) */
	__u64 ctx;        /* the thread's context after the message (contexts on), or 0 */
	__u8 data[];
};

/* Self-counters (per-CPU array java_stats). */
enum java_stat {
	JAVA_ST_MSG = 0,  /* messages copied */
	JAVA_ST_LOST,     /* not written: ring buffer full */
	JAVA_ST_BAD,      /* a call with the token whose length is out of bounds */
	JAVA_ST_KEYED,    /* BEGIN / END messages applied to sonde_thread_ctx */
	JAVA_ST_THREADS,  /* threads of a JVM given their own key at creation */
	JAVA_ST_COUNT,
};

#endif /* SONDE_JAVA_REC_H */
