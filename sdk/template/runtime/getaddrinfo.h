/*
 * getaddrinfo.h - what the plugin's BPF programs (getaddrinfo.bpf.c) and
 * its user side (getaddrinfo.c) share: the record the programs write into
 * the host's ring buffer.
 *
 * The one idea: a record starts with the host's record header (struct
 * sonde_bpf_hdr in sonde/bpf.h: type, tgid, tid, fd, timestamp) and its
 * type is one the plugin claimed (records_claim); the host hands every
 * record of a claimed type to the plugin's record() callback untouched.
 * Fields are laid out by hand (explicit padding) so clang -target bpf and
 * the host compiler agree.
 */
#ifndef GETADDRINFO_EXAMPLE_H
#define GETADDRINFO_EXAMPLE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Record types this plugin claims: choose your own range (>= 1000). The
 * host refuses a range another plugin holds, and this plugin then does
 * not load (one log line says so). */
#define GAI_REC_FIRST 2000
#define GAI_REC_CALL (GAI_REC_FIRST + 0) /* struct gai_rec: one finished call */
#define GAI_REC_COUNT 1

/* The same layout as struct sonde_bpf_hdr (sonde/bpf.h). */
struct gai_hdr {
	__u32 type;
	__u32 tgid;
	__u32 tid;
	__u32 fd;       /* 0: not about a socket */
	__u64 ts_ns;    /* bpf_ktime_get_ns() at the return */
};

struct gai_rec {
	struct gai_hdr h;
	__u64 duration_ns; /* entry to return, on the calling thread */
	__s32 rc;          /* getaddrinfo's result: 0 or an EAI_* code */
	__u32 pad;
};

/* Slots of the per-CPU counter array gai_stats. */
enum gai_stat {
	GAI_ST_RECORDS = 0, /* records written */
	GAI_ST_LOST = 1,    /* records not written: the ring buffer was full */
	GAI_ST_COUNT = 2,
};

#endif /* GETADDRINFO_EXAMPLE_H */
