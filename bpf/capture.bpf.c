// SPDX-License-Identifier: GPL-2.0
/*
 * capture.bpf.c - the generic capture layer, kernel side: syscall exit
 * tracepoints for the TCP and unix-stream traffic of watched processes
 * (sendfile and splice as byte counts), the sched hooks that keep the pid
 * table current and tell discovery about new processes, and the
 * TLS-library uprobes (attached per process by core/capture/tls.c).
 *
 * The one idea: only exits are hooked. An exit handler sees the result and
 * takes the arguments from the user registers the kernel saved at entry, so
 * there is no enter program and no per-thread stash, and a call that was
 * already blocked when the agent attached loses nothing. Every handler
 * first reads the process's flag byte (an array load) and leaves at once
 * for other processes; only listen and exec are reported for every process,
 * because discovery needs them. The maps and the emit path are in
 * sonde_conn.bpf.h; the TLS state and the ssl -> socket linking in
 * sonde_tls.bpf.h.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "sonde_events.h"
#include "sonde_sock.bpf.h"
#include "sonde_conn.bpf.h"
#include "sonde_tls.bpf.h"
#include "sonde_inject.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define SONDE_EINPROGRESS 115
#define SONDE_EBADF 9
#define SONDE_MSG_PEEK 0x2
#define SONDE_MSG_TRUNC 0x20

/* --- data syscalls: everything happens at exit ------------------------------
 * The arguments are read from the user registers the kernel saved at
 * syscall entry (x86_64 di, si, dx, r10; arm64 orig_x0, x1..x3): no enter
 * program, no per-thread stash, and a call that was already blocked when the
 * agent attached is seen like any other. */

/* Which argument layout a data syscall has. */
enum sonde_call {
	SONDE_CALL_RW = 0,       /* read, write, sendto: (fd, buf, len, ...) */
	SONDE_CALL_RECVFROM = 1, /* (fd, buf, len, flags, ...) */
	SONDE_CALL_VEC = 2,      /* readv, writev: (fd, iov, iovcnt) */
	SONDE_CALL_RECVMSG = 3,  /* (fd, msg, flags) */
	SONDE_CALL_SENDMSG = 4,  /* (fd, msg, flags) */
};

struct sonde_args {
	__u64 buf;     /* buffer, iovec array or msghdr */
	__u32 fd;
	__u32 iovcnt;
	__u8 nocopy;   /* bytes moved but not into buf (recv MSG_TRUNC) */
};

/* Arguments from the saved registers; -1 when the call is not to be
 * counted (MSG_PEEK: its bytes will be read again). */
static __always_inline int sonde_args(struct pt_regs *regs, __u8 call, struct sonde_args *a)
{
	__u64 flags = 0;

	a->fd = PT_REGS_PARM1_CORE_SYSCALL(regs);
	a->buf = PT_REGS_PARM2_CORE_SYSCALL(regs);
	a->iovcnt = 0;
	a->nocopy = 0;
	if (call == SONDE_CALL_RECVFROM)
		flags = PT_REGS_PARM4_CORE_SYSCALL(regs);
	else if (call == SONDE_CALL_VEC)
		a->iovcnt = PT_REGS_PARM3_CORE_SYSCALL(regs);
	else if (call == SONDE_CALL_RECVMSG)
		flags = PT_REGS_PARM3_CORE_SYSCALL(regs);
	if (flags & SONDE_MSG_PEEK)
		return -1;
	if (flags & SONDE_MSG_TRUNC)
		a->nocopy = 1;
	return 0;
}

static __always_inline int data_exit(long ret, __u8 dir, __u8 call)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	__u8 pf = sonde_pid_flags(tgid);
	struct task_struct *task;
	struct sonde_args a;
	struct sonde_kconn *c;
	const struct iovec *iov;
	__u32 iovcnt;
	__u64 file;

	if (!(pf & SONDE_PID_CAPTURE) || ret <= 0)
		return 0;
	task = bpf_get_current_task_btf();
	if (sonde_args((struct pt_regs *)bpf_task_pt_regs(task), call, &a))
		return 0;
	file = sonde_fd_file(task, a.fd);
	if (!file)
		return 0;
	c = sonde_conn_get(tgid, tid, a.fd, file);
	if (!c || sonde_conn_is_self(c))
		return 0;
	if (pf & SONDE_PID_TLS) {
		/* Ciphertext of a TLS library call on this thread: the uprobes
		 * send the plaintext, so nothing goes out here. */
		if (sonde_tls_nested(id, a.fd, file)) {
			c->tls = 1;
			return 0;
		}
		if (dir == SONDE_EV_DIR_INGRESS)
			sonde_tls_note_read(id, a.fd, file, c->tls,
					    call == SONDE_CALL_VEC || call >= SONDE_CALL_RECVMSG
						    ? NULL : (const void *)a.buf, ret);
	}
	if (c->tls)
		return 0;
	if (a.nocopy)
		return sonde_emit_data(tgid, pf, tid, a.fd, c, dir, SONDE_EV_SRC_SYSCALL, NULL, ret);
	if (call <= SONDE_CALL_RECVFROM)
		return sonde_emit_data(tgid, pf, tid, a.fd, c, dir, SONDE_EV_SRC_SYSCALL,
				       (const void *)a.buf, ret);
	iov = (const struct iovec *)a.buf;
	iovcnt = a.iovcnt;
	if (call >= SONDE_CALL_RECVMSG) {
		struct user_msghdr *m = (struct user_msghdr *)a.buf;
		__u64 cnt = 0;

		iov = NULL;
		bpf_probe_read_user(&iov, sizeof(iov), &m->msg_iov);
		bpf_probe_read_user(&cnt, sizeof(cnt), &m->msg_iovlen);
		iovcnt = cnt > SONDE_MAX_IOV ? SONDE_MAX_IOV : cnt;
	}
	return sonde_emit_data_iov(tgid, pf, tid, a.fd, c, dir, SONDE_EV_SRC_SYSCALL, iov, iovcnt,
				   ret);
}

SEC("tracepoint/syscalls/sys_exit_read")
int sys_exit_read(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_INGRESS, SONDE_CALL_RW);
}

SEC("tracepoint/syscalls/sys_exit_write")
int sys_exit_write(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_EGRESS, SONDE_CALL_RW);
}

SEC("tracepoint/syscalls/sys_exit_readv")
int sys_exit_readv(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_INGRESS, SONDE_CALL_VEC);
}

SEC("tracepoint/syscalls/sys_exit_writev")
int sys_exit_writev(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_EGRESS, SONDE_CALL_VEC);
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int sys_exit_recvfrom(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_INGRESS, SONDE_CALL_RECVFROM);
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int sys_exit_sendto(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_EGRESS, SONDE_CALL_RW);
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int sys_exit_recvmsg(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_INGRESS, SONDE_CALL_RECVMSG);
}

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int sys_exit_sendmsg(struct trace_event_raw_sys_exit *ctx)
{
	return data_exit(ctx->ret, SONDE_EV_DIR_EGRESS, SONDE_CALL_SENDMSG);
}

/* --- bytes that move without a user buffer --------------------------------
 * sendfile and splice carry no payload sonde could copy, but their byte
 * counts keep the connection's positions, and so the parsers' framing,
 * right: a payload-less record (SONDE_EVF_NOBUF) says how much moved. */

static __always_inline int nobuf_exit(long ret, __u32 fd, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	__u8 pf = sonde_pid_flags(tgid);
	struct sonde_kconn *c;
	__u64 file;

	if (ret <= 0 || !(pf & SONDE_PID_CAPTURE))
		return 0;
	file = sonde_fd_file(bpf_get_current_task_btf(), fd);
	if (!file)
		return 0;
	c = sonde_conn_get(tgid, (__u32)id, fd, file);
	if (!c || c->tls)
		return 0;
	return sonde_emit_data(tgid, pf, (__u32)id, fd, c, dir, SONDE_EV_SRC_SYSCALL, NULL, ret);
}

static __always_inline struct pt_regs *sonde_regs(void)
{
	return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

/* sendfile(out_fd, in_fd, offset, count): out_fd may be a socket. */
SEC("tracepoint/syscalls/sys_exit_sendfile64")
int sys_exit_sendfile64(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret <= 0 || !sonde_is_watched(bpf_get_current_pid_tgid() >> 32))
		return 0;
	return nobuf_exit(ctx->ret, PT_REGS_PARM1_CORE_SYSCALL(sonde_regs()),
			  SONDE_EV_DIR_EGRESS);
}

/* splice(fd_in, off_in, fd_out, off_out, len, flags): a socket on either
 * side (never both: one end of a splice is a pipe). */
SEC("tracepoint/syscalls/sys_exit_splice")
int sys_exit_splice(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *regs;

	if (ctx->ret <= 0 || !sonde_is_watched(bpf_get_current_pid_tgid() >> 32))
		return 0;
	regs = sonde_regs();
	nobuf_exit(ctx->ret, PT_REGS_PARM1_CORE_SYSCALL(regs), SONDE_EV_DIR_INGRESS);
	return nobuf_exit(ctx->ret, PT_REGS_PARM3_CORE_SYSCALL(regs), SONDE_EV_DIR_EGRESS);
}

/* --- connection lifecycle ------------------------------------------------------ */

/* accept/accept4 exit: ret is the new fd, a server-side connection. */
static __always_inline int accept_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct sock *sk = NULL;
	__u64 file;
	int kind;

	if (ret < 0 || !sonde_is_watched(tgid))
		return 0;
	file = sonde_fd_file(bpf_get_current_task_btf(), ret);
	kind = sonde_file_sock(file, &sk);
	if (kind == SONDE_KIND_NONE) {
		sonde_count(SONDE_CNT_NOT_TCP);
		return 0;
	}
	sonde_conn_new(tgid, (__u32)id, ret, file, sk, kind, SONDE_EV_ROLE_SERVER, BPF_ANY);
	/* A process that serves: a request it sends may belong to one it
	 * serves (traceparent injection needs that context or nothing). */
	if ((sonde_pid_flags(tgid) & (SONDE_PID_INJECT | SONDE_PID_SERVES)) == SONDE_PID_INJECT)
		sonde_pid_set(tgid, SONDE_PID_SERVES);
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

/* connect exit: 0, or -EINPROGRESS for a non-blocking socket. */
SEC("tracepoint/syscalls/sys_exit_connect")
int sys_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, fd;
	struct task_struct *task;
	struct sock *sk = NULL;
	long ret = ctx->ret;
	__u64 file;
	int kind;

	if (ret != 0 && ret != -SONDE_EINPROGRESS)
		return 0;
	if (tgid == self_tgid && self_tgid) {
		/* The agent's own connection: remember it, capture nothing. */
		struct sonde_tuple t = {};
		__u64 now = bpf_ktime_get_ns();
		__u32 k;

		task = bpf_get_current_task_btf();
		fd = PT_REGS_PARM1_CORE_SYSCALL((struct pt_regs *)bpf_task_pt_regs(task));
		file = sonde_fd_file(task, fd);
		if (sonde_file_sock(file, &sk) != SONDE_KIND_TCP)
			return 0;
		sonde_sock_tuple(sk, &t);
		k = (__u32)t.lport << 16 | t.rport;
		if (t.lport)
			bpf_map_update_elem(&sonde_self_conns, &k, &now, BPF_ANY);
		return 0;
	}
	if (!sonde_is_watched(tgid))
		return 0;
	task = bpf_get_current_task_btf();
	fd = PT_REGS_PARM1_CORE_SYSCALL((struct pt_regs *)bpf_task_pt_regs(task));
	file = sonde_fd_file(task, fd);
	kind = sonde_file_sock(file, &sk);
	if (kind == SONDE_KIND_NONE) {
		sonde_count(SONDE_CNT_NOT_TCP);
		return 0;
	}
	sonde_conn_new(tgid, (__u32)id, fd, file, sk, kind, SONDE_EV_ROLE_CLIENT, BPF_ANY);
	return 0;
}

/* close exit: the fd number is free again; if it still (or already again,
 * after a racing accept on another thread) holds the entry's file, the
 * entry stays. */
SEC("tracepoint/syscalls/sys_exit_close")
int sys_exit_close(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sonde_kconn_key key = { .tgid = id >> 32 };
	struct task_struct *task;
	struct sonde_kconn *c;

	if (ctx->ret == -SONDE_EBADF || !sonde_is_watched(key.tgid))
		return 0;
	task = bpf_get_current_task_btf();
	key.fd = PT_REGS_PARM1_CORE_SYSCALL((struct pt_regs *)bpf_task_pt_regs(task));
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c || sonde_fd_file(task, key.fd) == c->file)
		return 0;
	sonde_conn_drop(&key, (__u32)id, c, c->gen);
	return 0;
}

/* listen: reported for every process (discovery by port); listen is rare. */
SEC("tracepoint/syscalls/sys_exit_listen")
int sys_exit_listen(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task;
	struct sonde_tuple t = {};
	struct sock *sk = NULL;
	__u32 fd;

	if (ctx->ret != 0)
		return 0;
	task = bpf_get_current_task_btf();
	fd = PT_REGS_PARM1_CORE_SYSCALL((struct pt_regs *)bpf_task_pt_regs(task));
	if (sonde_file_sock(sonde_fd_file(task, fd), &sk) != SONDE_KIND_TCP)
		return 0;
	sonde_sock_tuple(sk, &t);
	sonde_emit_conn(SONDE_EV_LISTEN, id >> 32, (__u32)id, fd, 0, &t, 0, NULL, NULL);
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
	sonde_output(tgid, &ev, sizeof(ev), type != SONDE_EV_PROC_EXIT);
}

/* Does name[0..len) end with one of the exe_path selectors' literal
 * endings? */
static __always_inline int exe_suffix_match(const char *name, int len)
{
	for (__u32 i = 0; i < SONDE_EXE_SUFFIX_MAX && i < n_exe_suffixes; i++) {
		struct sonde_exe_suffix *sf = bpf_map_lookup_elem(&exe_suffixes, &i);
		int k, sl, ok = 1;

		if (!sf)
			continue;
		sl = sf->len;
		if (sl <= 0 || sl > SONDE_EXE_SUFFIX_LEN || sl > len)
			continue;
		for (k = 0; k < SONDE_EXE_SUFFIX_LEN && k < sl; k++) {
			int at = len - sl + k;

			if (at < 0 || at >= SONDE_EXEC_PATH_MAX) {
				ok = 0;
				break;
			}
			if (name[at & (SONDE_EXEC_PATH_MAX - 1)] != sf->s[k]) {
				ok = 0;
				break;
			}
		}
		if (ok)
			return 1;
	}
	return 0;
}

/* exec: a watched process became another program, or (with exe_path
 * selectors) a program that may match started. Other execs on the host are
 * none of our business: no record, no wake-up. */
SEC("tracepoint/sched/sched_process_exec")
int sched_process_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, cpu = bpf_get_smp_processor_id();
	struct sonde_scratch *s;
	struct sonde_ev_exec *ev;
	int len;

	if (!exec_adopt && !sonde_pid_flags(tgid))
		return 0;
	s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s)
		return 0;
	ev = (struct sonde_ev_exec *)s->raw;
	__builtin_memset(ev, 0, sizeof(*ev));
	sonde_hdr(&ev->p.h, SONDE_EV_PROC_EXEC, tgid, (__u32)id, 0);
	ev->p.ppid = BPF_CORE_READ(task, real_parent, tgid);
	BPF_CORE_READ_STR_INTO(&ev->p.comm, task, comm);
	len = bpf_probe_read_kernel_str(ev->filename, sizeof(ev->filename),
					(char *)ctx + (ctx->__data_loc_filename & 0xFFFF)) - 1;
	/* Provisional watch before the record goes out, so nothing the new
	 * program does is missed while user space decides: every program, or
	 * only those whose path (as exec'd, or the real file's name) ends like
	 * an exe_path selector. */
	if (exec_adopt && !(sonde_pid_flags(tgid) & SONDE_PID_WATCHED)) {
		int adopt = exec_adopt == 2;

		if (!adopt && len > 0)
			adopt = exe_suffix_match(ev->filename, len);
		if (!adopt) {
			char *real = (char *)ev->filename + SONDE_EXEC_PATH_MAX;
			const unsigned char *nm =
				BPF_CORE_READ(task, mm, exe_file, f_path.dentry, d_name.name);
			int rl = nm ? bpf_probe_read_kernel_str(real, 64, nm) - 1 : 0;

			if (rl > 0)
				adopt = exe_suffix_match(real, rl);
		}
		if (adopt) {
			sonde_pid_set(tgid, SONDE_PID_PROVISIONAL);
			sonde_count(SONDE_CNT_EXEC_ADOPTED);
		}
	}
	/* A path whose ending no selector has cannot match one. */
	if (!sonde_pid_flags(tgid))
		return 0;
	sonde_output(tgid, ev, sizeof(*ev), 1);
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

	if (!sonde_pid_flags(tgid))
		return 0;
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	sonde_pid_clear(tgid, 0xff);
	emit_proc(SONDE_EV_PROC_EXIT, tgid, (__u32)id, BPF_CORE_READ(task, real_parent, tgid),
		  task);
	return 0;
}

/* fork: a new process (not a thread) of a watched parent is watched from its
 * first instruction on, in the same way (watched or provisional). Raw
 * tracepoint: args[0] parent, args[1] child. */
SEC("raw_tracepoint/sched_process_fork")
int sched_process_fork(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx->args[0];
	struct task_struct *child = (struct task_struct *)ctx->args[1];
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u8 all = sonde_pid_flags(ptgid), pf = all & SONDE_PID_CAPTURE;
	__u32 ctgid, cpid;

	if (!pf)
		return 0;
	/* A forked worker serves and injects like its parent (prefork). */
	pf |= all & (SONDE_PID_INJECT | SONDE_PID_SERVES | SONDE_PID_TLS);
	ctgid = BPF_CORE_READ(child, tgid);
	cpid = BPF_CORE_READ(child, pid);
	if (ctgid == ptgid || cpid != ctgid)
		return 0;
	sonde_pid_set(ctgid, pf);
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
SEC("tracepoint/syscalls/sys_exit_mmap")
int sys_exit_mmap(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct pt_regs *regs;
	__u8 one = 1;

	if (ctx->ret < 0 && ctx->ret > -4096)
		return 0;
	if (!sonde_is_watched(tgid))
		return 0;
	regs = sonde_regs();
	if (!(PT_REGS_PARM3_CORE_SYSCALL(regs) & SONDE_PROT_EXEC) ||
	    (int)PT_REGS_PARM5_CORE_SYSCALL(regs) < 0)
		return 0;
	bpf_map_update_elem(&tls_rescan, &tgid, &one, BPF_ANY);
	return 0;
}
