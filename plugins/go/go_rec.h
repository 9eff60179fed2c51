/*
 * go_rec.h - what the Go plugin's BPF programs (go.bpf.c) and its user
 * side (go_plugin.c) share: the per-process configuration the programs read
 * and the records they write into the host's ring buffer.
 *
 * The one idea: the programs know no Go release. Every offset and register
 * they use comes from struct go_cfg, filled per process from the binary's
 * DWARF and symbol table (go_inspect.c) and stored in the map go_cfgs under
 * the process's tgid; a process without an entry is ignored.
 *
 * Layouts are packed by hand (explicit padding) so clang -target bpf and
 * the host compiler agree.
 */
#ifndef SONDE_GO_REC_H
#define SONDE_GO_REC_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define GO_MAX_PAYLOAD 16384u /* bytes of plaintext copied per call at most */

/* Record types, relative to the base the plugin claimed (go_cfg.rec_base). */
enum go_rec_type {
	GO_REC_DATA = 0,   /* struct go_rec_data + payload */
	GO_REC_GO_NEW = 1, /* struct go_rec_go: goroutine created */
	GO_REC_GO_END = 2, /* struct go_rec_go: goroutine exited */
	GO_REC_COUNT = 3,
};

/* Argument and result registers, by use (values: enum go_reg, go_dwarf.h:
 * 0 RAX, 1 RBX, 2 RCX, 3 RDI, 4 RSI, 5 R8, 6 R9, 7 R10, 8 R11). */
enum go_regslot {
	GO_R_READ_CONN = 0, /* crypto/tls.(*Conn).Read: receiver */
	GO_R_READ_BUF,      /* b's data pointer */
	GO_R_READ_CAP,      /* b's length */
	GO_R_READ_N,        /* first result at return */
	GO_R_WRITE_CONN,    /* crypto/tls.(*Conn).Write */
	GO_R_WRITE_BUF,
	GO_R_WRITE_LEN,
	GO_R_WRITE_N,
	GO_R_EXEC_G,        /* runtime.execute: gp */
	GO_R_NEWPROC_PARENT,/* runtime.newproc1: callergp */
	GO_R_NEWPROC_G,     /* runtime.newproc1: the new g, at return */
	GO_R_EXIT_G,        /* runtime.goexit0: gp */
	GO_R_RT_TREQ,       /* net/http.(*persistConn).roundTrip: req */
	GO_R_RW_REQ,        /* net/http.(*Request).write: receiver */
	GO_R_COUNT,
};

/* The attach cookie of a "no entry" RET probe: two stack offsets from the
 * canonical frame address (RSP + 8 at a RET), biased to 16 bits each. */
#define GO_COOKIE(a, b) ((__u64)(__u16)((a) + 0x8000) | (__u64)(__u16)((b) + 0x8000) << 16)
#define GO_COOKIE_A(c) ((__s32)((c) & 0xffff) - 0x8000)
#define GO_COOKIE_B(c) ((__s32)(((c) >> 16) & 0xffff) - 0x8000)

/* go_cfg.features */
#define GO_F_TLS (1u << 0)        /* crypto/tls plaintext */
#define GO_F_GOROUTINES (1u << 1) /* thread -> goroutine, creation links */
#define GO_F_GOEXIT (1u << 2)     /* goroutine exits */
#define GO_F_HTTP_CLIENT (1u << 3)/* net/http writeLoop works for the caller */
#define GO_F_HTTP_BGREAD (1u << 4)/* net/http backgroundRead works for its conn */

struct go_cfg {
	__u32 rec_base;       /* first record type claimed */
	__u32 cap;            /* payload bytes copied per call, <= GO_MAX_PAYLOAD */
	__u32 features;       /* GO_F_* */
	__u16 goid_off;       /* runtime.g.goid */
	__u16 itab_type_off;  /* runtime.itab._type */
	__u16 tls_conn_off;   /* crypto/tls.Conn.conn (net.Conn: itab, data) */
	__u16 tcp_fd_off;     /* *net.TCPConn -> its conn.fd (*netFD) */
	__u16 unix_fd_off;    /* *net.UnixConn -> its conn.fd */
	__u16 sysfd_off;      /* netFD -> pfd.Sysfd */
	__u16 treq_req_off;   /* net/http.transportRequest.Request */
	__u8 sysfd_size;      /* 4 or 8 */
	__u8 pad0;
	__u8 reg[GO_R_COUNT]; /* enum go_reg per slot, 0xff: unknown */
	__u8 pad1[6];
	__u64 type_tcp;       /* run-time address of the *net.TCPConn type, 0: unknown */
	__u64 type_unix;      /* ... of *net.UnixConn */
};

/* Same layout as struct sonde_bpf_hdr (sonde/bpf.h). */
struct go_rec_hdr {
	__u32 type;
	__u32 tgid;
	__u32 tid;
	__u32 fd;
	__u64 ts_ns;          /* bpf_ktime_get_ns() */
};

/* go_rec_data.flags */
#define GO_RECF_GAP (1u << 0) /* records of this stream and direction were lost
                                 before this one (ring buffer full) */

struct go_rec_data {
	struct go_rec_hdr h;  /* fd: the socket under the tls.Conn */
	__u64 goid;           /* goroutine that made the call */
	__u64 ctx;            /* its context: goid, or the goroutine it works for */
	__u64 conn;           /* the *tls.Conn (a stream key only) */
	__u64 pos;            /* plaintext bytes of this stream and direction before */
	__u32 len;            /* bytes really moved by the call */
	__u32 cap_len;        /* bytes that follow (<= len, <= cap) */
	__u8 dir;             /* 0 ingress (Read), 1 egress (Write) */
	__u8 flags;           /* GO_RECF_* */
	__u8 pad[6];
	__u8 data[];
};

struct go_rec_go {
	struct go_rec_hdr h;
	__u64 goid;           /* the goroutine created or ended */
	__u64 parent;         /* GO_NEW: the context of the goroutine that created it */
};

/* Self-counters (per-CPU array go_stats). */
enum go_stat {
	GO_ST_DATA = 0,      /* data records written */
	GO_ST_LOST,          /* records not written: ring buffer full */
	GO_ST_NOCONN,        /* plaintext dropped: the tls.Conn is not over a TCP/unix conn */
	GO_ST_NOENTRY,       /* a return without its entry (attached mid-call) */
	GO_ST_GO_NEW,        /* goroutine creations reported */
	GO_ST_GO_END,        /* goroutine exits reported */
	GO_ST_HTTP_DELEGATE, /* net/http request writes done for another goroutine */
	GO_ST_HTTP_REENTRY,  /* (*Request).write entered again for the same request
	                        (its prologue grew the stack and restarted it) */
	GO_ST_COUNT,
};

#endif /* SONDE_GO_REC_H */
