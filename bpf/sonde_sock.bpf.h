/*
 * sonde_sock.bpf.h - from a file descriptor of the current task to its
 * struct file, from a file to a stream socket (TCP or unix), and from a
 * socket to what user space shows of it (4-tuple or unix path). Stateless.
 *
 * The one idea: the expensive part of "is this fd a socket, and which one"
 * is the walk, so it is split in two. sonde_fd_file() does the part every
 * data syscall needs (task -> files -> fdt -> fd[n], one probe read); the
 * connection table caches the file pointer, and only a file it has not
 * seen is classified (sonde_file_sock). Where the kernel has the
 * bpf_rdonly_cast kfunc (6.2+), kernel structures are read with plain
 * loads through typed pointers; elsewhere with CO-RE probe reads.
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
#define SONDE_SOCK_STREAM 1
#define SONDE_IPPROTO_TCP 6

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/* libbpf 1.2+ has it; a weak kfunc the kernel lacks resolves to 0 and the
 * verifier drops the branch that calls it. */
#ifndef bpf_ksym_exists
#define bpf_ksym_exists(sym) (!!(sym))
#endif

enum sonde_sock_kind {
	SONDE_KIND_NONE = 0,  /* not a socket we follow (file, pipe, UDP, ...) */
	SONDE_KIND_TCP = 1,   /* AF_INET/AF_INET6 SOCK_STREAM IPPROTO_TCP */
	SONDE_KIND_UNIX = 2,  /* AF_UNIX SOCK_STREAM */
};

/* The struct file behind fd in the current task, or 0. */
static __always_inline __u64 sonde_fd_file(struct task_struct *task, __u32 fd)
{
	struct fdtable *fdt;
	struct file **fds;
	struct file *f = NULL;

	if (bpf_ksym_exists(bpf_rdonly_cast)) {
		fdt = task->files->fdt;
		if (!fdt || fd >= fdt->max_fds)
			return 0;
		fds = fdt->fd;
	} else {
		fdt = BPF_CORE_READ(task, files, fdt);
		if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
			return 0;
		fds = BPF_CORE_READ(fdt, fd);
	}
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return 0;
	return (__u64)f;
}

/* What kind of socket file f is; *skp is its struct sock for TCP/unix. */
static __always_inline int sonde_file_sock(__u64 file, struct sock **skp)
{
	struct file *f = (struct file *)file;
	struct socket *sock;
	struct sock *sk;
	umode_t mode;
	short type;
	__u16 family, proto = 0;

	if (!f)
		return SONDE_KIND_NONE;
	if (bpf_ksym_exists(bpf_rdonly_cast)) {
		f = bpf_rdonly_cast(f, bpf_core_type_id_kernel(struct file));
		mode = f->f_inode->i_mode;
		if ((mode & SONDE_S_IFMT) != SONDE_S_IFSOCK)
			return SONDE_KIND_NONE;
		sock = bpf_rdonly_cast(f->private_data, bpf_core_type_id_kernel(struct socket));
		if (!sock)
			return SONDE_KIND_NONE;
		type = sock->type;
		sk = sock->sk;
		if (type != SONDE_SOCK_STREAM || !sk)
			return SONDE_KIND_NONE;
		family = sk->__sk_common.skc_family;
		if (family != SONDE_AF_UNIX)
			proto = sk->sk_protocol;
	} else {
		mode = BPF_CORE_READ(f, f_inode, i_mode);
		if ((mode & SONDE_S_IFMT) != SONDE_S_IFSOCK)
			return SONDE_KIND_NONE;
		sock = BPF_CORE_READ(f, private_data);
		if (!sock)
			return SONDE_KIND_NONE;
		type = BPF_CORE_READ(sock, type);
		sk = BPF_CORE_READ(sock, sk);
		if (type != SONDE_SOCK_STREAM || !sk)
			return SONDE_KIND_NONE;
		family = BPF_CORE_READ(sk, __sk_common.skc_family);
		if (family != SONDE_AF_UNIX)
			proto = BPF_CORE_READ(sk, sk_protocol);
	}
	*skp = sk;
	if (family == SONDE_AF_UNIX)
		return SONDE_KIND_UNIX;
	if ((family == SONDE_AF_INET || family == SONDE_AF_INET6) && proto == SONDE_IPPROTO_TCP)
		return SONDE_KIND_TCP;
	return SONDE_KIND_NONE;
}

/* IPv4 address (network order) as IPv4-mapped IPv6 ::ffff:a.b.c.d. */
static __always_inline void sonde_map_v4(__u8 dst[16], __be32 a)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &a, 4);
}

/* Fill t from sk: family, ports in host order, addresses in network order.
 * A unix socket has its family only. */
static __always_inline void sonde_sock_tuple(struct sock *sk, struct sonde_tuple *t)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	t->family = family;
	t->pad = 0;
	if (family == SONDE_AF_UNIX) {
		t->lport = 1; /* "known": a unix socket has no port to wait for */
		t->rport = 0;
		return;
	}
	t->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == SONDE_AF_INET) {
		sonde_map_v4(t->laddr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		sonde_map_v4(t->raddr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
		return;
	}
	BPF_CORE_READ_INTO(&t->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	BPF_CORE_READ_INTO(&t->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
}

/* The bound name of a unix socket into out (NUL-terminated; abstract names
 * start with '@'). Returns its length, 0 when unnamed. */
static __always_inline int sonde_unix_name(struct sock *sk, char *out)
{
	struct unix_sock *u = (struct unix_sock *)sk;
	struct unix_address *addr = BPF_CORE_READ(u, addr);
	int len, n;

	out[0] = 0;
	if (!addr)
		return 0;
	len = BPF_CORE_READ(addr, len) - (int)sizeof(short); /* minus sun_family */
	if (len <= 0)
		return 0;
	if (len > SONDE_UNIX_PATH_MAX - 1)
		len = SONDE_UNIX_PATH_MAX - 1;
	n = bpf_probe_read_kernel_str(out, SONDE_UNIX_PATH_MAX, &addr->name[0].sun_path[0]);
	if (n > 1)
		return n - 1;
	/* Abstract namespace: a leading NUL, then the name. */
	if (bpf_probe_read_kernel_str(out + 1, SONDE_UNIX_PATH_MAX - 1,
				      &addr->name[0].sun_path[1]) > 1) {
		out[0] = '@';
		return len;
	}
	out[0] = 0;
	return 0;
}

/* The server end's name of a unix stream: our own bound name (an accepted
 * socket carries its listener's), else the peer's. Also says which end we
 * are: 1 if our socket is the named (server) end. */
static __always_inline int sonde_unix_path(struct sock *sk, char *out, int *server_end)
{
	struct sock *peer;

	*server_end = 0;
	if (sonde_unix_name(sk, out) > 0) {
		*server_end = 1;
		return 1;
	}
	peer = BPF_CORE_READ((struct unix_sock *)sk, peer);
	if (peer && sonde_unix_name(peer, out) > 0)
		return 1;
	return 0;
}

#endif /* SONDE_SOCK_BPF_H */
