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

struct sonde_ev_conn {
	struct sonde_ev_hdr h;
	__u64 gen;    /* 0 for LISTEN */
	struct sonde_tuple t;
	__u8 role;    /* enum sonde_ev_role */
	__u8 pad[7];
};

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
	__u8 data[];   /* cap_len bytes */
};

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
	SONDE_CNT_NOT_TCP = 3,   /* watched fds skipped as non-TCP */
	SONDE_CNT_TLS_DATA = 4,  /* plaintext records written by the TLS uprobes */
	SONDE_CNT_TLS_NOFD = 5,  /* plaintext dropped: its socket was unknown */
	SONDE_CNT_RECOVERED = 6, /* syscalls with no enter stash, args taken from regs */
	SONDE_CNT_MAX = 8,
};

#endif /* SONDE_EVENTS_H */
