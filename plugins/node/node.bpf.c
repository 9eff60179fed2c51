// SPDX-License-Identifier: GPL-2.0
/*
 * node.bpf.c - the Node.js runtime plugin's kernel side: syscall
 * tracepoints that keep the host's sonde_thread_ctx current for the
 * event-loop thread of instrumented Node.js processes, and a task iterator
 * that reports how a process handles SIGUSR1.
 *
 * The one idea: the request key is not computed here, it is read. The
 * plugin's script (node_ctx.js) keeps, in one ArrayBuffer of the process,
 * the key current on the event loop (a word it rewrites each time Node
 * enters or leaves an async resource) and a table fd -> key of accepted
 * connections. At every socket read or write of that thread the program
 * copies the key into sonde_thread_ctx[tid]: the current word if
 * JavaScript is running with one (a write from a handler), else the fd's
 * table entry (libuv reading a request, or flushing a response, outside
 * any JavaScript). The host's capture reads sonde_thread_ctx at the
 * syscall's exit, so the chunk carries the key.
 *
 * The buffer's address comes from one write: the script writes the
 * buffer's first 32 bytes (magic + the nonce the plugin gave it) to
 * /dev/null; for a process waiting in node_procs that write registers it.
 *
 * The tracepoints and the iterator are attached by the plugin itself (the
 * host attaches only uprobes), on the maps of the host's copy of this same
 * object; the SSL_write uprobe is attached through the host, per process
 * (see node_bpf.c and node_plugin.c).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <sonde/bpf.h>

#include "node_rec.h"

char LICENSE[] SEC("license") = "GPL";

_Static_assert(sizeof(struct node_rec_hdr) == sizeof(struct sonde_bpf_hdr), "record header");

#define NODE_SIGUSR1 10

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct node_proc);
} node_procs SEC(".maps");

/* A table key seen in place when its fd was closed: until the script
 * writes another key there (or clears it), the entry is stale. */
struct node_fd_key {
	__u32 tgid;
	__u32 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct node_fd_key);
	__type(value, __u32);
} node_dead SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NODE_ST_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} node_stats SEC(".maps");

static __always_inline void node_stat(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&node_stats, &slot);

	if (v)
		*v += 1;
}

/* Wake-ups batched like the host's own records (bpf/sonde_conn.bpf.h). */
static __always_inline __u64 node_rb_flags(void)
{
	__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);

	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > size / 16 ? BPF_RB_FORCE_WAKEUP
									   : BPF_RB_NO_WAKEUP;
}

/* A write of a waiting process: is it the script's registration? */
static __always_inline void node_register(struct node_proc *p, __u32 tgid, __u64 buf, __u64 len)
{
	static const char magic[NODE_MAGIC_LEN] = NODE_MAGIC;
	__u8 hdr[NODE_HDR_LEN];
	struct node_rec_reg r = {};
	__u64 nonce;
	__u32 nfd;

	if (len != NODE_HDR_LEN || !buf || bpf_probe_read_user(hdr, sizeof(hdr), (const void *)buf)) {
		node_stat(NODE_ST_REG_BAD);
		return;
	}
	for (int i = 0; i < NODE_MAGIC_LEN; i++) {
		if (hdr[i] != (__u8)magic[i]) {
			node_stat(NODE_ST_REG_BAD);
			return;
		}
	}
	__builtin_memcpy(&nonce, hdr + NODE_OFF_NONCE, sizeof(nonce));
	__builtin_memcpy(&nfd, hdr + NODE_OFF_NFD, sizeof(nfd));
	if (nonce != p->nonce || !nfd || nfd > NODE_NFD_MAX) {
		node_stat(NODE_ST_REG_BAD);
		return;
	}
	sonde_hdr_fill((struct sonde_bpf_hdr *)&r.h, p->rec_base + NODE_REC_REG, 0);
	p->slot = buf;
	p->nfd = nfd;
	p->tid = r.h.tid;
	p->state = NODE_PS_ACTIVE;
	r.slot = buf;
	r.nonce = nonce;
	r.nfd = nfd;
	node_stat(NODE_ST_REG);
	if (bpf_ringbuf_output(&events, &r, sizeof(r), node_rb_flags()))
		node_stat(NODE_ST_LOST);
}

/* A write of 40 bytes to a file that is not a socket, by the event loop of
 * an active process: the script's record of an HTTP/2 client stream's key
 * (magic, nonce, fd, stream id, key)? Passed on as a record. */
static __always_inline void node_h2(const struct node_proc *p, __u64 buf)
{
	static const char magic[NODE_MAGIC_LEN] = NODE_H2_MAGIC;
	__u8 b[NODE_H2_LEN];
	struct node_rec_h2 r = {};
	__u64 nonce;
	__u32 v[3];

	if (!buf || bpf_probe_read_user(b, sizeof(b), (const void *)buf))
		return;
	for (int i = 0; i < NODE_MAGIC_LEN; i++) {
		if (b[i] != (__u8)magic[i]) {
			node_stat(NODE_ST_H2_BAD);
			return;
		}
	}
	__builtin_memcpy(&nonce, b + NODE_OFF_NONCE, sizeof(nonce));
	__builtin_memcpy(v, b + NODE_H2_OFF_FD, sizeof(v));
	if (nonce != p->nonce || !v[1] || !v[2]) {
		node_stat(NODE_ST_H2_BAD);
		return;
	}
	sonde_hdr_fill((struct sonde_bpf_hdr *)&r.h, p->rec_base + NODE_REC_H2, v[0]);
	r.stream = v[1];
	r.key = v[2];
	node_stat(NODE_ST_H2);
	if (bpf_ringbuf_output(&events, &r, sizeof(r), node_rb_flags()))
		node_stat(NODE_ST_LOST);
}

/* The key for a syscall on fd now: the current word, else the fd's table
 * entry unless that fd was closed while it held it. */
static __always_inline __u32 node_key(const struct node_proc *p, __u32 tgid, __u64 fd)
{
	struct node_fd_key dk = { .tgid = tgid };
	__u32 key = 0, *dead;

	if (bpf_probe_read_user(&key, sizeof(key), (const void *)(p->slot + NODE_OFF_CUR))) {
		node_stat(NODE_ST_FAULT);
		return 0;
	}
	if (key) {
		node_stat(NODE_ST_CUR);
		return key;
	}
	if (fd >= p->nfd) {
		node_stat(NODE_ST_NONE);
		return 0;
	}
	if (bpf_probe_read_user(&key, sizeof(key), (const void *)(p->slot + NODE_OFF_TABLE + 4 * fd))) {
		node_stat(NODE_ST_FAULT);
		return 0;
	}
	if (!key) {
		node_stat(NODE_ST_NONE);
		return 0;
	}
	dk.fd = (__u32)fd;
	dead = bpf_map_lookup_elem(&node_dead, &dk);
	if (dead) {
		if (*dead == key) {
			node_stat(NODE_ST_STALE);
			return 0;
		}
		bpf_map_delete_elem(&node_dead, &dk); /* a new connection on that fd */
	}
	node_stat(NODE_ST_TABLE);
	return key;
}

#define NODE_S_IFMT 0170000
#define NODE_S_IFSOCK 0140000

/* Is fd a socket of the current task? Only sockets carry chunks; a read of
 * another file (OpenSSL reading /etc/localtime inside SSL_write, while it
 * finishes a handshake) must not change the thread's key. */
static __always_inline int node_is_sock(__u64 fd)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct file **fds = BPF_CORE_READ(t, files, fdt, fd);
	unsigned int max = BPF_CORE_READ(t, files, fdt, max_fds);
	struct file *f = NULL;
	umode_t mode;

	if (fd >= max || !fds || bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	mode = BPF_CORE_READ(f, f_inode, i_mode);
	return (mode & NODE_S_IFMT) == NODE_S_IFSOCK;
}

static __always_inline int node_sys(__u64 fd, __u64 buf, __u64 len, int is_write)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct node_proc *p = bpf_map_lookup_elem(&node_procs, &tgid);
	__u64 *have;
	__u64 key;

	if (!p)
		return 0;
	if (p->state == NODE_PS_WAIT) {
		if (is_write)
			node_register(p, tgid, buf, len);
		return 0;
	}
	if (p->state != NODE_PS_ACTIVE || tid != p->tid)
		return 0;
	if (!node_is_sock(fd)) {
		if (is_write && len == NODE_H2_LEN)
			node_h2(p, buf);
		return 0;
	}
	key = node_key(p, tgid, fd);
	have = bpf_map_lookup_elem(&sonde_thread_ctx, &tid);
	if (key) {
		if (!have || *have != key)
			bpf_map_update_elem(&sonde_thread_ctx, &tid, &key, BPF_ANY);
	} else if (have) {
		bpf_map_delete_elem(&sonde_thread_ctx, &tid);
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int node_enter_write(struct trace_event_raw_sys_enter *ctx)
{
	return node_sys(ctx->args[0], ctx->args[1], ctx->args[2], 1);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int node_enter_writev(struct trace_event_raw_sys_enter *ctx)
{
	return node_sys(ctx->args[0], 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int node_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return node_sys(ctx->args[0], 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int node_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	return node_sys(ctx->args[0], 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_read")
int node_enter_read(struct trace_event_raw_sys_enter *ctx)
{
	return node_sys(ctx->args[0], 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_readv")
int node_enter_readv(struct trace_event_raw_sys_enter *ctx)
{
	return node_sys(ctx->args[0], 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int node_enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	return node_sys(ctx->args[0], 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int node_enter_recvmsg(struct trace_event_raw_sys_enter *ctx)
{
	return node_sys(ctx->args[0], 0, 0, 0);
}

/* TLS connections (SSL *) -> the key of the request that made the client
 * connection, or that last wrote on it from JavaScript. */
struct node_ssl_key {
	__u32 tgid;
	__u32 pad;
	__u64 ssl;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct node_ssl_key);
	__type(value, __u32);
} node_ssl_keys SEC(".maps");

/* The current word of an active process's event-loop thread, or NULL when
 * this is not one (*cur = 0 if it cannot be read). */
static __always_inline struct node_proc *node_loop_cur(__u32 *cur)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct node_proc *p = bpf_map_lookup_elem(&node_procs, &tgid);

	*cur = 0;
	if (!p || p->state != NODE_PS_ACTIVE || (__u32)id != p->tid)
		return NULL;
	if (bpf_probe_read_user(cur, sizeof(*cur), (const void *)(p->slot + NODE_OFF_CUR))) {
		node_stat(NODE_ST_FAULT);
		*cur = 0;
	}
	return p;
}

/* SSL_set_connect_state(ssl): Node makes a client TLS connection, in the
 * JavaScript of the request that asked for it. */
SEC("uprobe")
int node_ssl_connect(struct pt_regs *ctx)
{
	struct node_ssl_key k = { .tgid = bpf_get_current_pid_tgid() >> 32 };
	__u32 cur;

	if (!node_loop_cur(&cur))
		return 0;
	k.ssl = PT_REGS_PARM1(ctx);
	if (cur)
		bpf_map_update_elem(&node_ssl_keys, &k, &cur, BPF_ANY);
	else
		bpf_map_delete_elem(&node_ssl_keys, &k);
	return 0;
}

/* SSL_set_accept_state(ssl): a server connection (its reads are keyed by
 * fd); whatever an earlier SSL at this address held is stale. */
SEC("uprobe")
int node_ssl_accept(struct pt_regs *ctx)
{
	struct node_ssl_key k = { .tgid = bpf_get_current_pid_tgid() >> 32 };

	k.ssl = PT_REGS_PARM1(ctx);
	bpf_map_delete_elem(&node_ssl_keys, &k);
	return 0;
}

/* SSL_write / SSL_write_ex entry (OpenSSL in the node executable or the
 * libssl it maps): the host's TLS probe hands the plaintext over when
 * SSL_write returns, before Node writes the ciphertext to the socket (a
 * memory BIO), so no syscall has set the thread's key for it yet: set it
 * here from the current word, or, outside JavaScript (the first request
 * of a new connection, flushed by Node after the handshake), from the
 * connection's key. */
SEC("uprobe")
int node_ssl_write(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct node_ssl_key k = { .tgid = id >> 32 };
	__u32 tid = (__u32)id, cur, *sk;
	__u64 key, *have;

	if (!node_loop_cur(&cur))
		return 0;
	k.ssl = PT_REGS_PARM1(ctx);
	if (cur) {
		bpf_map_update_elem(&node_ssl_keys, &k, &cur, BPF_ANY);
		node_stat(NODE_ST_CUR);
	} else if ((sk = bpf_map_lookup_elem(&node_ssl_keys, &k))) {
		cur = *sk;
		node_stat(NODE_ST_TABLE);
	} else {
		node_stat(NODE_ST_NONE);
	}
	key = cur;
	have = bpf_map_lookup_elem(&sonde_thread_ctx, &tid);
	if (key) {
		if (!have || *have != key)
			bpf_map_update_elem(&sonde_thread_ctx, &tid, &key, BPF_ANY);
	} else if (have) {
		bpf_map_delete_elem(&sonde_thread_ctx, &tid);
	}
	return 0;
}

/* close(fd) of an instrumented process (any thread): remember the table
 * key that fd held, which is stale from now on. */
SEC("tracepoint/syscalls/sys_enter_close")
int node_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct node_proc *p = bpf_map_lookup_elem(&node_procs, &tgid);
	struct node_fd_key dk = { .tgid = tgid };
	__u64 fd = ctx->args[0];
	__u32 key = 0;

	if (!p || p->state != NODE_PS_ACTIVE || fd >= p->nfd)
		return 0;
	if (bpf_probe_read_user(&key, sizeof(key), (const void *)(p->slot + NODE_OFF_TABLE + 4 * fd)) ||
	    !key)
		return 0;
	dk.fd = (__u32)fd;
	bpf_map_update_elem(&node_dead, &dk, &key, BPF_ANY);
	return 0;
}

/* How the process handles SIGUSR1 (run by the plugin with the iterator
 * limited to one process: one record, its main thread's). */
SEC("iter/task")
int node_sigusr1(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *t = ctx->task;
	struct node_sig s = {};

	if (!t || t->pid != t->tgid)
		return 0;
	s.tgid = t->tgid;
	s.tid = t->pid;
	s.handler = (__u64)BPF_CORE_READ(t, sighand, action[NODE_SIGUSR1 - 1].sa.sa_handler);
	s.flags = BPF_CORE_READ(t, sighand, action[NODE_SIGUSR1 - 1].sa.sa_flags);
	s.blocked = BPF_CORE_READ(t, blocked.sig[0]);
	bpf_seq_write(seq, &s, sizeof(s));
	return 0;
}
