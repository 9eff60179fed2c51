/*
 * sonde_events.h - records the capture layer writes into its one ring buffer.
 *
 * Shared by the BPF programs (bpf/NAME.bpf.c) and user space (core/). Every
 * record starts with struct sonde_ev_hdr; `type` says which struct follows.
 * Records are packed by hand (explicit padding) so that both compilers see
 * the same layout, and they are also the on-disk format of `sonde --record`
 * (see core/record.c), so fields are only ever appended.
 *
 * Connection identity is {tgid, fd, gen}: gen is a global counter taken when
 * the kernel side first sees the connection, so a reused fd never aliases
 * its predecessor. User space keys connections by gen alone.
 */
#ifndef SONDE_EVENTS_H
#define SONDE_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Hard upper bound of captured payload per event (power of two, so the
 * verifier can bound it with a mask). The runtime cap is a tunable <= this. */
#define SONDE_MAX_PAYLOAD 16384u
#define SONDE_DEFAULT_PAYLOAD 4096u

enum sonde_ev_type {
	SONDE_EV_DATA = 1,       /* struct sonde_ev_data + payload */
	SONDE_EV_CONN_OPEN = 2,  /* struct sonde_ev_conn */
	SONDE_EV_CONN_CLOSE = 3, /* struct sonde_ev_conn */
	SONDE_EV_PROC_EXEC = 4,  /* struct sonde_ev_exec (any process) */
	SONDE_EV_PROC_EXIT = 5,  /* struct sonde_ev_proc (watched only) */
	SONDE_EV_PROC_FORK = 6,  /* struct sonde_ev_proc (watched parent) */
	SONDE_EV_LISTEN = 7,     /* struct sonde_ev_conn (any process; tuple = local) */
	SONDE_EV_INJECT = 8,     /* struct sonde_ev_inject: a traceparent was inserted */
};

enum sonde_ev_dir {
	SONDE_EV_DIR_INGRESS = 0, /* read by the process */
	SONDE_EV_DIR_EGRESS = 1,  /* written by the process */
};

enum sonde_ev_role {
	SONDE_EV_ROLE_UNKNOWN = 0, /* first seen mid-life (pre-existing) */
	SONDE_EV_ROLE_SERVER = 1,  /* accept() */
	SONDE_EV_ROLE_CLIENT = 2,  /* connect() */
};

enum sonde_ev_source {
	SONDE_EV_SRC_SYSCALL = 0,
	SONDE_EV_SRC_TLS = 1, /* plaintext from a TLS library uprobe */
};

/* sonde_ev_data.flags */
#define SONDE_EVF_TRUNCATED (1u << 0) /* cap_len < len */
#define SONDE_EVF_NOBUF (1u << 1)     /* bytes moved without a user buffer (sendfile,
                                         splice, recv MSG_TRUNC): never any payload */
#define SONDE_EVF_SKIPPED (1u << 2)   /* user space asked for nothing before a
                                         position past this record (control word):
                                         payload left out on purpose */

struct sonde_ev_hdr {
	__u32 type;  /* enum sonde_ev_type */
	__u32 tgid;
	__u32 tid;
	__u32 fd;
	__u64 ts_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
};

/* Addresses in network byte order, ports in host byte order.
 * IPv4 is stored as IPv4-mapped IPv6 (::ffff:a.b.c.d) with family AF_INET. */
struct sonde_tuple {
	__u16 family; /* AF_INET or AF_INET6 */
	__u16 lport;  /* local port */
	__u16 rport;  /* remote port */
	__u16 pad;
	__u8 laddr[16];
	__u8 raddr[16];
};

/* Address families as the kernel numbers them (t.family). */
#define SONDE_AF_UNIX 1
#define SONDE_AF_INET 2
#define SONDE_AF_INET6 10

#define SONDE_UNIX_PATH_MAX 108

struct sonde_ev_conn {
	struct sonde_ev_hdr h;
	__u64 gen;    /* 0 for LISTEN */
	struct sonde_tuple t; /* AF_UNIX: family only, ports 0 */
	__u8 role;    /* enum sonde_ev_role */
	__u8 cflags;  /* SONDE_EVC_* (was padding: 0 in older recordings) */
	__u8 pad[6];
	/* Appended (older recordings end above): for AF_UNIX, the path of the
	 * socket's server end (the bound name of this or the peer socket);
	 * "@name" for the abstract namespace; "" when unnamed. */
	char unix_path[SONDE_UNIX_PATH_MAX];
	__u32 pad2;
	/* Appended (older recordings end above): CONN_CLOSE only, the bytes
	 * the socket moved per direction (socket source), so user space can
	 * tell a hole at the very end (the last records lost) from silence. */
	__u64 end_pos[2];
};
#define SONDE_EVC_MIDSTREAM (1u << 0) /* first seen at a read/write, not at
                                        accept/connect (open before capture) */

/* The size of the record before unix_path was appended. */
#define SONDE_EV_CONN_V1_SIZE 80

struct sonde_ev_data {
	struct sonde_ev_hdr h;
	__u64 gen;
	__u64 pos;     /* bytes moved in this direction before this event */
	__u32 len;     /* bytes really moved by the call */
	__u32 cap_len; /* bytes captured below (<= len, <= payload cap) */
	__u8 dir;      /* enum sonde_ev_dir */
	__u8 source;   /* enum sonde_ev_source */
	__u8 flags;    /* SONDE_EVF_* */
	__u8 pad[5];
	__u64 ctx;     /* the thread's runtime context (sonde_thread_ctx), 0: none.
	                  Added in recording version 2 (version 1 records lack it) */
	__u8 data[];   /* cap_len bytes */
};
/* Where data[] started before ctx was added (recording version 1). */
#define SONDE_EV_DATA_V1_SIZE 56

struct sonde_ev_proc {
	struct sonde_ev_hdr h; /* tgid = the process; for FORK, the child */
	__u32 ppid;
	__u32 pad;
	char comm[16];
};

/* EXEC carries the path given to execve, so a program that exits before
 * user space reads /proc/PID/exe can still be matched. */
#define SONDE_EXEC_PATH_MAX 256
struct sonde_ev_exec {
	struct sonde_ev_proc p;
	char filename[SONDE_EXEC_PATH_MAX]; /* bprm->filename, NUL-terminated */
};

/* Self-counters, one slot each in a per-CPU array map `counters`. */
enum sonde_counter {
	SONDE_CNT_EVENTS = 0,    /* records written to the ring buffer */
	SONDE_CNT_LOST = 1,      /* records dropped: ring buffer full */
	SONDE_CNT_TRUNCATED = 2, /* data records whose payload was cut */
	SONDE_CNT_NOT_TCP = 3,   /* watched fds skipped: not a TCP or unix stream socket */
	SONDE_CNT_TLS_DATA = 4,  /* plaintext records written by the TLS uprobes */
	SONDE_CNT_TLS_NOFD = 5,  /* plaintext dropped: its socket was unknown */
	SONDE_CNT_PREEXISTING = 6, /* connections first seen mid-life (opened before us) */
	SONDE_CNT_MUTED = 7,     /* records not sent: user space muted the connection */
	SONDE_CNT_SHED = 8,      /* records dropped on purpose under ring pressure */
	SONDE_CNT_SKIPPED = 9,   /* payload bytes not copied: before a skip position */
	SONDE_CNT_NOBUF = 10,    /* sendfile/splice records (byte counts only) */
	SONDE_CNT_EXEC_ADOPTED = 11, /* exec'd processes watched provisionally */
	SONDE_CNT_INJECTED = 12,     /* traceparent headers inserted */
	SONDE_CNT_INJ_HAS_TP = 13,   /* requests left alone: they carry a traceparent */
	SONDE_CNT_INJ_UNSURE = 14,   /* messages not exactly whole HTTP/1 requests (or
	                                after one: the connection is left alone) */
	SONDE_CNT_INJ_NOCTX = 15,    /* requests of a serving thread whose request
	                                context was not known yet */
	SONDE_CNT_MAX = 16,
};

/* One byte of flags per process in the kernel's pid table (sonde_pids: a
 * u64 array, eight processes per word, tgid -> word tgid/8, byte tgid%8). */
#define SONDE_PID_WATCHED (1u << 0)     /* capture its traffic */
#define SONDE_PID_PROVISIONAL (1u << 1) /* exec'd, matches an exe suffix, user
                                           space has not decided yet */
#define SONDE_PID_TLS (1u << 2)         /* TLS-library uprobes attached */
#define SONDE_PID_CONTEXTS (1u << 3)    /* a runtime plugin keeps sonde_thread_ctx
                                           current: stamp data with it */
#define SONDE_PID_INJECT (1u << 4)      /* insert traceparent into its HTTP/1
                                           requests (opt-in per service) */
#define SONDE_PID_SERVES (1u << 5)      /* it accepted a connection: a request
                                           it sends may belong to one it serves */
#define SONDE_PID_CAPTURE (SONDE_PID_WATCHED | SONDE_PID_PROVISIONAL)

/* A sonde_thread_ctx value with this bit is the user address of the u64
 * key current on the thread (SDK 1.2, sdk/include/sonde/bpf.h). */
#define SONDE_CTX_INDIRECT (1ull << 63)

/* The per-connection control word user space writes (sonde_ctl: an mmap'ed
 * array, slot gen % SONDE_CTL_SLOTS). The kernel obeys a slot only while
 * its gen is the connection's. */
#define SONDE_CTL_SLOTS 65536
#define SONDE_CTL_MUTE (1u << 0)   /* send nothing more for this connection */
#define SONDE_CTL_TLS (1u << 1)    /* ciphertext: send no syscall payload */
struct sonde_ctl {
	__u64 gen;
	__u32 flags;      /* SONDE_CTL_* */
	__u32 cap;        /* payload cap for this connection; 0 = the global one */
	__u64 skip_to[2]; /* per direction: no payload needed before this position */
};

/* A traceparent inserted into a request (bpf/sonde_inject.bpf.h). The
 * connection is told by its ports within the process; pos is the request's
 * first byte in the application's stream (the bytes the process wrote,
 * without the inserted ones), as DATA records count it. */
struct sonde_ev_inject {
	struct sonde_ev_hdr h;
	__u16 lport, rport;
	__u8 has_parent;   /* parent_id is the serving request's span */
	__u8 pad[3];
	__u64 pos;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_id[8];
};

/* What a serving thread is serving, for injection (sonde_tid_trace, by
 * tid): written by user space when a server span starts on the thread. It
 * holds while the server connection (tgid, fd, gen) has written no byte
 * since (pos[EGRESS] == out_pos): a response, or the next request's, ends
 * it. */
struct sonde_trace_ctx {
	__u8 trace_id[16];
	__u8 span_id[8];
	__u32 tgid, fd;
	__u64 gen;
	__u64 out_pos;
};

/* Per-process pressure accounting (sonde_budget, keyed by tgid): what the
 * process sent and what was dropped, read by user space per service. */
struct sonde_budget {
	__u64 window_idx;   /* window (ns / budget_window_ns) window_bytes is for */
	__u64 window_bytes; /* record bytes sent, halved at each new window */
	__u64 dropped;      /* records dropped for this process (full ring or shed) */
	__u64 dropped_bytes;
};

/* Literal endings of exe_path selectors, tested in the kernel at exec so
 * only programs that may match are watched provisionally. */
#define SONDE_EXE_SUFFIX_MAX 15
#define SONDE_EXE_SUFFIX_LEN 56
struct sonde_exe_suffix {
	__u32 len;
	__u32 pad;
	char s[SONDE_EXE_SUFFIX_LEN];
};

#endif /* SONDE_EVENTS_H */
