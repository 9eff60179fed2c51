// SPDX-License-Identifier: GPL-2.0
/*
 * capture.bpf.c - the generic capture layer, kernel side: syscall
 * tracepoints for TCP traffic of watched processes, the sched hooks that
 * keep the watch list current and tell discovery about new processes, and
 * the TLS-library uprobes (attached per process by core/tls.c).
 *
 * The one idea: enter handlers only stash their arguments per thread
 * (pid_tgid -> struct sonde_args); exit handlers see the result, and only
 * then decide (socket check, connection lookup, copy of min(ret, cap) bytes).
 * A thread that entered its syscall before its process was watched has no
 * stash; its exit handler takes the arguments from the user registers saved
 * at syscall entry instead (recover_args), so a server already blocked in
 * read() when the agent starts loses nothing. Every syscall handler first
 * asks watched_pids and leaves at once for other processes; only listen()
 * and exec are reported for every process, because discovery needs them.
 * The maps and the emit path are in sonde_conn.bpf.h; the TLS state and
 * the ssl -> socket linking in sonde_tls.bpf.h.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "sonde_events.h"
#include "sonde_sock.bpf.h"
#include "sonde_conn.bpf.h"
#include "sonde_tls.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define SONDE_EINPROGRESS 115
#define SONDE_EBADF 9
#define SONDE_MSG_PEEK 0x2
#define SONDE_MSG_TRUNC 0x20

enum sonde_args_kind {
	SONDE_ARGS_BUF = 0, /* buf = contiguous user buffer */
	SONDE_ARGS_IOV = 1, /* buf = struct iovec *, iovcnt entries */
	SONDE_ARGS_MSG = 2, /* buf = struct user_msghdr * (iovecs read at exit) */
	SONDE_ARGS_NOCOPY = 3, /* bytes moved but not in buf (recv MSG_TRUNC) */
};

/* What an enter handler leaves for its exit handler, per thread. */
struct sonde_args {
	__u64 buf;
	__u64 gen;    /* close: generation of the entry at enter */
	__u32 fd;
	__u32 iovcnt;
	__u8 kind;    /* enum sonde_args_kind */
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct sonde_args);
} args SEC(".maps");

/* --- enter side ------------------------------------------------------------ */

static __always_inline int stash(__u32 fd, __u64 buf, __u32 iovcnt, __u8 kind, __u64 gen)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sonde_args a = {};

	if (!sonde_is_watched(id >> 32))
		return 0;
	a.fd = fd;
	a.buf = buf;
	a.iovcnt = iovcnt;
	a.kind = kind;
	a.gen = gen;
	bpf_map_update_elem(&args, &id, &a, BPF_ANY);
	return 0;
}

/* recv side with flags: a MSG_PEEK read would count its bytes twice. */
static __always_inline int stash_recv(__u32 fd, __u64 buf, __u32 iovcnt, __u8 kind,
				      __u64 flags)
{
	if (flags & SONDE_MSG_PEEK)
		return 0;
	if (flags & SONDE_MSG_TRUNC)
		kind = SONDE_ARGS_NOCOPY;
	return stash(fd, buf, iovcnt, kind, 0);
}

/* Copy this thread's stash into *out and remove it; -1 if there is none. */
static __always_inline int unstash(__u64 id, struct sonde_args *out)
{
	struct sonde_args *a = bpf_map_lookup_elem(&args, &id);

	if (!a)
		return -1;
	*out = *a;
	bpf_map_delete_elem(&args, &id);
	return 0;
}

/* --- exit side: data --------------------------------------------------------- */

/* Which argument layout a data syscall has, for recovering its arguments at
 * exit when the enter handler left nothing. */
enum sonde_call {
	SONDE_CALL_RW = 0,       /* read, write, sendto: (fd, buf, len, ...) */
	SONDE_CALL_RECVFROM = 1, /* (fd, buf, len, flags, ...) */
	SONDE_CALL_VEC = 2,      /* readv, writev: (fd, iov, iovcnt) */
	SONDE_CALL_RECVMSG = 3,  /* (fd, msg, flags) */
	SONDE_CALL_SENDMSG = 4,  /* (fd, msg, flags) */
};

/* No stash: the thread entered the syscall before its process was watched
 * (a server blocked in read() when the agent started). The arguments are
 * still in the user registers saved at syscall entry (x86_64 di, si, dx,
 * r10; arm64 orig_x0, x1..x3). Returns -1 if the call is not to be counted. */
static __always_inline int recover_args(__u8 call, struct sonde_args *a)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	__u64 flags = 0;

	if (!regs)
		return -1;
	__builtin_memset(a, 0, sizeof(*a));
	a->fd = PT_REGS_PARM1_CORE_SYSCALL(regs);
	a->buf = PT_REGS_PARM2_CORE_SYSCALL(regs);
	a->kind = SONDE_ARGS_BUF;
	switch (call) {
	case SONDE_CALL_RECVFROM:
		flags = PT_REGS_PARM4_CORE_SYSCALL(regs);
		break;
	case SONDE_CALL_VEC:
		a->kind = SONDE_ARGS_IOV;
		a->iovcnt = PT_REGS_PARM3_CORE_SYSCALL(regs);
		break;
	case SONDE_CALL_RECVMSG:
		flags = PT_REGS_PARM3_CORE_SYSCALL(regs);
		/* fall through */
	case SONDE_CALL_SENDMSG:
		a->kind = SONDE_ARGS_MSG;
		break;
	}
	if (flags & SONDE_MSG_PEEK)
		return -1;
	if (flags & SONDE_MSG_TRUNC)
		a->kind = SONDE_ARGS_NOCOPY;
	return 0;
}

static __always_inline int data_exit(long ret, __u8 dir, __u8 call)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct sonde_args a;
	struct sonde_kconn *c;
	struct sock *sk = NULL;
	const struct iovec *iov;
	__u32 iovcnt;

	int recovered = 0;

	if (!sonde_is_watched(tgid))
		return 0;
	if (unstash(id, &a)) {
		if (ret <= 0 || recover_args(call, &a))
			return 0;
		recovered = 1;
	}
	if (ret <= 0)
		return 0;
	if (sonde_fd_sock(a.fd, &sk) != SONDE_SOCK_TCP) {
		sonde_count(SONDE_CNT_NOT_TCP);
		return 0;
	}
	if (recovered)
		sonde_count(SONDE_CNT_RECOVERED);
	c = sonde_conn_get(tgid, tid, a.fd, sk);
	if (!c)
		return 0;
	/* Ciphertext of a TLS library call on this thread: the uprobes send
	 * the plaintext, so nothing goes out here. */
	if (sonde_tls_nested(id, a.fd, sk)) {
		c->tls = 1;
		return 0;
	}
	if (dir == SONDE_EV_DIR_INGRESS)
		sonde_tls_note_read(id, a.fd, sk, c->tls,
				    a.kind == SONDE_ARGS_BUF ? (const void *)a.buf : NULL, ret);
	if (c->tls)
		return 0;
	if (a.kind == SONDE_ARGS_BUF)
		return sonde_emit_data(tgid, tid, a.fd, c, dir, SONDE_EV_SRC_SYSCALL,
				       (const void *)a.buf, ret);
	if (a.kind == SONDE_ARGS_NOCOPY)
		return sonde_emit_data(tgid, tid, a.fd, c, dir, SONDE_EV_SRC_SYSCALL, NULL, ret);
	iov = (const struct iovec *)a.buf;
	iovcnt = a.iovcnt;
	if (a.kind == SONDE_ARGS_MSG) {
		struct user_msghdr *m = (struct user_msghdr *)a.buf;
		__u64 cnt = 0;

		iov = NULL;
		bpf_probe_read_user(&iov, sizeof(iov), &m->msg_iov);
		bpf_probe_read_user(&cnt, sizeof(cnt), &m->msg_iovlen);
		iovcnt = cnt > SONDE_MAX_IOV ? SONDE_MAX_IOV : cnt;
	}
	return sonde_emit_data_iov(tgid, tid, a.fd, c, dir, SONDE_EV_SRC_SYSCALL, iov, iovcnt,
				   ret);
}

SEC("tracepoint/syscalls/sys_enter_read")
int sys_enter_read(struct trace_event_raw_sys_enter *ctx)
{
	return stash(ctx->args[0], ctx->args[1], 0, SONDE_ARGS_BUF, 0);
}

SEC("tracepoint/syscalls/sys_exit_read")
int sys_exit_read(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_INGRESS, SONDE_CALL_RW);
}

SEC("tracepoint/syscalls/sys_enter_write")
int sys_enter_write(struct trace_event_raw_sys_enter *ctx)
{
	return stash(ctx->args[0], ctx->args[1], 0, SONDE_ARGS_BUF, 0);
}

SEC("tracepoint/syscalls/sys_exit_write")
int sys_exit_write(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_EGRESS, SONDE_CALL_RW);
}

SEC("tracepoint/syscalls/sys_enter_readv")
int sys_enter_readv(struct trace_event_raw_sys_enter *ctx)
{
	return stash(ctx->args[0], ctx->args[1], ctx->args[2], SONDE_ARGS_IOV, 0);
}

SEC("tracepoint/syscalls/sys_exit_readv")
int sys_exit_readv(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_INGRESS, SONDE_CALL_VEC);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int sys_enter_writev(struct trace_event_raw_sys_enter *ctx)
{
	return stash(ctx->args[0], ctx->args[1], ctx->args[2], SONDE_ARGS_IOV, 0);
}

SEC("tracepoint/syscalls/sys_exit_writev")
int sys_exit_writev(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_EGRESS, SONDE_CALL_VEC);
}

/* recvfrom(fd, buf, size, flags, addr, addrlen) */
SEC("tracepoint/syscalls/sys_enter_recvfrom")
int sys_enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	return stash_recv(ctx->args[0], ctx->args[1], 0, SONDE_ARGS_BUF, ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int sys_exit_recvfrom(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_INGRESS, SONDE_CALL_RECVFROM);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int sys_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return stash(ctx->args[0], ctx->args[1], 0, SONDE_ARGS_BUF, 0);
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int sys_exit_sendto(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_EGRESS, SONDE_CALL_RW);
}

/* recvmsg(fd, msg, flags) */
SEC("tracepoint/syscalls/sys_enter_recvmsg")
int sys_enter_recvmsg(struct trace_event_raw_sys_enter *ctx)
{
	return stash_recv(ctx->args[0], ctx->args[1], 0, SONDE_ARGS_MSG, ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int sys_exit_recvmsg(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_INGRESS, SONDE_CALL_RECVMSG);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int sys_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	return stash(ctx->args[0], ctx->args[1], 0, SONDE_ARGS_MSG, 0);
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int sys_exit_sendmsg(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_EGRESS, SONDE_CALL_SENDMSG);
}

/* --- connection lifecycle ------------------------------------------------------ */

/* accept/accept4 exit: ret is the new fd, a server-side connection. */
static __always_inline int accept_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct sock *sk = NULL;

	if (!sonde_is_watched(tgid) || ret < 0)
		return 0;
	if (sonde_fd_sock(ret, &sk) != SONDE_SOCK_TCP) {
		sonde_count(SONDE_CNT_NOT_TCP);
		return 0;
	}
	sonde_conn_new(tgid, (__u32)id, ret, sk, SONDE_EV_ROLE_SERVER, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int sys_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return accept_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int sys_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return accept_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int sys_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	return stash(ctx->args[0], 0, 0, SONDE_ARGS_BUF, 0);
}

/* connect exit: 0, or -EINPROGRESS for a non-blocking socket. */
SEC("tracepoint/syscalls/sys_exit_connect")
int sys_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct sonde_args a;
	struct sock *sk = NULL;
	long ret = ctx->ret;

	if (!sonde_is_watched(tgid))
		return 0;
	if (unstash(id, &a))
		return 0;
	if (ret != 0 && ret != -SONDE_EINPROGRESS)
		return 0;
	if (sonde_fd_sock(a.fd, &sk) != SONDE_SOCK_TCP) {
		sonde_count(SONDE_CNT_NOT_TCP);
		return 0;
	}
	sonde_conn_new(tgid, (__u32)id, a.fd, sk, SONDE_EV_ROLE_CLIENT, BPF_ANY);
	return 0;
}

/* close: remember which generation the fd held at enter, so that a racing
 * accept that reuses the number before our exit runs is not closed. */
SEC("tracepoint/syscalls/sys_enter_close")
int sys_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sonde_kconn_key key = { .tgid = id >> 32, .fd = ctx->args[0] };
	struct sonde_kconn *c;

	if (!sonde_is_watched(key.tgid))
		return 0;
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	return stash(key.fd, 0, 0, SONDE_ARGS_BUF, c->gen);
}

SEC("tracepoint/syscalls/sys_exit_close")
int sys_exit_close(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sonde_kconn_key key = { .tgid = id >> 32 };
	struct sonde_args a;

	if (!sonde_is_watched(key.tgid))
		return 0;
	if (unstash(id, &a) || ctx->ret == -SONDE_EBADF)
		return 0;
	key.fd = a.fd;
	sonde_conn_drop(&key, (__u32)id, bpf_map_lookup_elem(&conns, &key), a.gen);
	return 0;
}

/* listen: reported for every process (discovery by port). Stashed for every
 * process too; listen is rare. */
SEC("tracepoint/syscalls/sys_enter_listen")
int sys_enter_listen(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sonde_args a = { .fd = ctx->args[0] };

	bpf_map_update_elem(&args, &id, &a, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_listen")
int sys_exit_listen(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sonde_tuple t = {};
	struct sonde_args a;
	struct sock *sk = NULL;

	if (unstash(id, &a) || ctx->ret != 0)
		return 0;
	if (sonde_fd_sock(a.fd, &sk) != SONDE_SOCK_TCP)
		return 0;
	sonde_sock_tuple(sk, &t);
	sonde_emit_conn(SONDE_EV_LISTEN, id >> 32, (__u32)id, a.fd, 0, &t, 0);
	return 0;
}

/* --- processes ------------------------------------------------------------------ */

static __always_inline void emit_proc(__u32 type, __u32 tgid, __u32 tid, __u32 ppid,
				      struct task_struct *task)
{
	struct sonde_ev_proc ev = {};

	sonde_hdr(&ev.h, type, tgid, tid, 0);
	ev.ppid = ppid;
	BPF_CORE_READ_STR_INTO(&ev.comm, task, comm);
	sonde_output(&ev, sizeof(ev), type != SONDE_EV_PROC_EXIT);
}

/* exec: every process (rare, and discovery matches exe/cmdline on it). */
SEC("tracepoint/sched/sched_process_exec")
int sched_process_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct sonde_ev_exec ev = {};

	/* Provisional watch before the record goes out, so nothing the new
	 * program does is missed while user space decides. */
	if (exec_adopt) {
		__u8 provisional = 2;

		bpf_map_update_elem(&watched_pids, &tgid, &provisional, BPF_NOEXIST);
	}
	sonde_hdr(&ev.p.h, SONDE_EV_PROC_EXEC, tgid, (__u32)id, 0);
	ev.p.ppid = BPF_CORE_READ(task, real_parent, tgid);
	BPF_CORE_READ_STR_INTO(&ev.p.comm, task, comm);
	bpf_probe_read_kernel_str(ev.filename, sizeof(ev.filename),
				  (char *)ctx + (ctx->__data_loc_filename & 0xFFFF));
	sonde_output(&ev, sizeof(ev), 1);
	return 0;
}

/* exit: once per watched process, when its last thread goes (signal->live
 * has already been decremented when the tracepoint fires). */
SEC("tracepoint/sched/sched_process_exit")
int sched_process_exit(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;

	if (!sonde_is_watched(tgid))
		return 0;
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	bpf_map_delete_elem(&watched_pids, &tgid);
	emit_proc(SONDE_EV_PROC_EXIT, tgid, (__u32)id, BPF_CORE_READ(task, real_parent, tgid),
		  task);
	return 0;
}

/* fork: a new process (not a thread) of a watched parent is watched from its
 * first instruction on. Raw tracepoint: args[0] parent, args[1] child. */
SEC("raw_tracepoint/sched_process_fork")
int sched_process_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid, cpid;
	__u8 one = 1;

	if (!sonde_is_watched(ptgid))
		return 0;
	ctgid = BPF_CORE_READ(child, tgid);
	cpid = BPF_CORE_READ(child, pid);
	if (ctgid == ptgid || cpid != ctgid)
		return 0;
	bpf_map_update_elem(&watched_pids, &ctgid, &one, BPF_ANY);
	emit_proc(SONDE_EV_PROC_FORK, ctgid, cpid, ptgid, child);
	return 0;
}

/* --- TLS libraries (sonde_tls.bpf.h) --------------------------------------------
 * Attached by core/tls.c per watched process and library file, with a pid
 * filter, so other processes never trap. SEC("uprobe") without a target is
 * not auto-attached by the skeleton. */

#define SONDE_PROT_EXEC 0x4

/* SSL_read(ssl, buf, num) -> int */
SEC("uprobe")
int ssl_read_enter(struct pt_regs *ctx)
{
	return sonde_tls_enter(ctx, SONDE_EV_DIR_INGRESS, 1, 0);
}

SEC("uretprobe")
int ssl_read_exit(struct pt_regs *ctx)
{
	return sonde_tls_exit(ctx, 0);
}

/* SSL_write(ssl, buf, num) -> int */
SEC("uprobe")
int ssl_write_enter(struct pt_regs *ctx)
{
	return sonde_tls_enter(ctx, SONDE_EV_DIR_EGRESS, 1, 0);
}

SEC("uretprobe")
int ssl_write_exit(struct pt_regs *ctx)
{
	return sonde_tls_exit(ctx, 0);
}

/* SSL_read_ex(ssl, buf, num, size_t *readbytes) -> 1 on success */
SEC("uprobe")
int ssl_read_ex_enter(struct pt_regs *ctx)
{
	return sonde_tls_enter(ctx, SONDE_EV_DIR_INGRESS, 1, PT_REGS_PARM4(ctx));
}

SEC("uretprobe")
int ssl_read_ex_exit(struct pt_regs *ctx)
{
	return sonde_tls_exit(ctx, 1);
}

/* SSL_write_ex(ssl, buf, num, size_t *written) -> 1 on success */
SEC("uprobe")
int ssl_write_ex_enter(struct pt_regs *ctx)
{
	return sonde_tls_enter(ctx, SONDE_EV_DIR_EGRESS, 1, PT_REGS_PARM4(ctx));
}

SEC("uretprobe")
int ssl_write_ex_exit(struct pt_regs *ctx)
{
	return sonde_tls_exit(ctx, 1);
}

/* SSL_do_handshake(ssl): no data, but its nested reads and writes link the
 * SSL object to its socket before the first SSL_read. */
SEC("uprobe")
int ssl_handshake_enter(struct pt_regs *ctx)
{
	return sonde_tls_enter(ctx, SONDE_EV_DIR_INGRESS, 0, 0);
}

SEC("uretprobe")
int ssl_handshake_exit(struct pt_regs *ctx)
{
	return sonde_tls_exit(ctx, 0);
}

/* SSL_shutdown(ssl), SSL_free(ssl): the object's socket link goes. */
SEC("uprobe")
int ssl_forget_enter(struct pt_regs *ctx)
{
	return sonde_tls_forget(ctx);
}

/* The same hooks as two programs for a uprobe_multi link each (kernel 6.6+):
 * the attach cookie says which function fired. core/tls.c uses these when
 * the kernel has uprobe_multi, because a link costs one RCU-tasks grace
 * period to tear down (~0.1 s) and this makes 2 links per process and
 * library instead of 12. */
SEC("uprobe")
int ssl_multi_enter(struct pt_regs *ctx)
{
	__u64 fn = bpf_get_attach_cookie(ctx);
	__u8 dir = SONDE_EV_DIR_INGRESS;
	__u64 out = 0;

	if (fn == SONDE_TLS_FN_SHUTDOWN || fn == SONDE_TLS_FN_FREE)
		return sonde_tls_forget(ctx);
	if (fn == SONDE_TLS_FN_WRITE || fn == SONDE_TLS_FN_WRITE_EX)
		dir = SONDE_EV_DIR_EGRESS;
	if (fn == SONDE_TLS_FN_READ_EX || fn == SONDE_TLS_FN_WRITE_EX)
		out = PT_REGS_PARM4(ctx);
	return sonde_tls_enter(ctx, dir, fn != SONDE_TLS_FN_HANDSHAKE, out);
}

SEC("uretprobe")
int ssl_multi_exit(struct pt_regs *ctx)
{
	__u64 fn = bpf_get_attach_cookie(ctx);

	return sonde_tls_exit(ctx, fn == SONDE_TLS_FN_READ_EX || fn == SONDE_TLS_FN_WRITE_EX);
}

/* mmap(addr, len, prot, flags, fd, off) of executable file pages by a
 * watched process: a library may have been loaded (dlopen); user space
 * re-reads its maps for TLS libraries once the mapping exists. */
SEC("tracepoint/syscalls/sys_enter_mmap")
int sys_enter_mmap(struct trace_event_raw_sys_enter *ctx)
{
	if (!(ctx->args[2] & SONDE_PROT_EXEC) || (int)ctx->args[4] < 0)
		return 0;
	return stash(ctx->args[4], 0, 0, SONDE_ARGS_BUF, 0);
}

SEC("tracepoint/syscalls/sys_exit_mmap")
int sys_exit_mmap(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct sonde_args a;
	__u8 one = 1;

	if (!sonde_is_watched(tgid) || unstash(id, &a))
		return 0;
	if (ctx->ret < 0 && ctx->ret > -4096)
		return 0;
	bpf_map_update_elem(&tls_rescan, &tgid, &one, BPF_ANY);
	return 0;
}
