/*
 * sonde_sock.bpf.h - from a file descriptor of the current task to a TCP
 * struct sock, and from a struct sock to a sonde_tuple. Stateless.
 *
 * The one idea: every kernel structure is read with CO-RE (BPF_CORE_READ),
 * so the walk task->files->fdt->fd[fd]->private_data->sk works on any kernel
 * with BTF; nothing here dereferences a kernel pointer directly. A fd is kept
 * only if its inode is a socket and the socket is SOCK_STREAM, AF_INET or
 * AF_INET6, IPPROTO_TCP: files, pipes and unix sockets stop here.
 */
#ifndef SONDE_SOCK_BPF_H
#define SONDE_SOCK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "sonde_events.h"

/* uapi constants that vmlinux.h does not carry as macros */
#define SONDE_S_IFMT 0170000
#define SONDE_S_IFSOCK 0140000
#define SONDE_AF_INET 2
#define SONDE_AF_INET6 10
#define SONDE_SOCK_STREAM 1
#define SONDE_IPPROTO_TCP 6

enum sonde_sock_verdict {
	SONDE_SOCK_TCP = 0,   /* a TCP socket: *skp is set */
	SONDE_SOCK_NOFD = 1,  /* fd not open (or out of range) */
	SONDE_SOCK_OTHER = 2, /* open, but not a TCP socket */
};

/* Resolve fd of the current task. Returns enum sonde_sock_verdict; on
 * SONDE_SOCK_TCP, *skp is the socket's struct sock (a kernel address that is
 * only ever compared or read through CO-RE). */
static __always_inline int sonde_fd_sock(__u32 fd, struct sock **skp)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;
	struct socket *sock;
	struct sock *sk;
	unsigned int max_fds;
	umode_t mode;
	short type;
	__u16 family, proto;

	if (!fdt)
		return SONDE_SOCK_NOFD;
	max_fds = BPF_CORE_READ(fdt, max_fds);
	if (fd >= max_fds)
		return SONDE_SOCK_NOFD;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return SONDE_SOCK_NOFD;
	mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & SONDE_S_IFMT) != SONDE_S_IFSOCK)
		return SONDE_SOCK_OTHER;
	sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return SONDE_SOCK_OTHER;
	type = BPF_CORE_READ(sock, type);
	sk = BPF_CORE_READ(sock, sk);
	if (type != SONDE_SOCK_STREAM || !sk)
		return SONDE_SOCK_OTHER;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != SONDE_AF_INET && family != SONDE_AF_INET6)
		return SONDE_SOCK_OTHER;
	proto = BPF_CORE_READ(sk, sk_protocol);
	if (proto != SONDE_IPPROTO_TCP)
		return SONDE_SOCK_OTHER;
	*skp = sk;
	return SONDE_SOCK_TCP;
}

/* IPv4 address (network order) as IPv4-mapped IPv6 ::ffff:a.b.c.d. */
static __always_inline void sonde_map_v4(__u8 dst[16], __be32 a)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &a, 4);
}

/* Fill t from sk: family, ports in host order, addresses in network order. */
static __always_inline void sonde_sock_tuple(struct sock *sk, struct sonde_tuple *t)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	t->family = family;
	t->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	t->pad = 0;
	if (family == SONDE_AF_INET) {
		sonde_map_v4(t->laddr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		sonde_map_v4(t->raddr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
		return;
	}
	BPF_CORE_READ_INTO(&t->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	BPF_CORE_READ_INTO(&t->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
}

#endif /* SONDE_SOCK_BPF_H */
