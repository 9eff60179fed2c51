/*
 * sonde_tls.bpf.h - TLS plaintext: the state and helpers behind the
 * TLS-library uprobes (SSL_read/SSL_write/_ex, SSL_do_handshake, SSL_free,
 * SSL_shutdown) and the hooks the syscall handlers call to link an SSL
 * object to its socket. The programs themselves are in capture.bpf.c; the
 * connection table and the emit path are sonde_conn.bpf.h's.
 *
 * The one idea: plaintext is only useful with its connection, and an SSL
 * object does not name its socket, so sonde learns ssl -> fd from what the
 * thread does around the call:
 *   1. nested: an OpenSSL socket BIO reads or writes the fd *inside*
 *      SSL_read/SSL_write/SSL_do_handshake on the same thread. The syscall
 *      exit handler finds the thread's open SSL call and records the fd in
 *      it and in ssl_socks (for later calls served from OpenSSL's buffer).
 *   2. read-before: a memory-BIO runtime (Node.js) reads the ciphertext with
 *      a plain read() and then, on the same thread, calls SSL_read (or
 *      SSL_write for data queued during the handshake). A read of
 *      TLS-looking bytes outside any SSL call is remembered per thread and
 *      adopted by the next SSL call on an SSL object that has no socket
 *      yet; every SSL call consumes it, so it binds at most one object.
 * Nested links always win over remembered ones. Plaintext whose socket is
 * still unknown is dropped and counted (SONDE_CNT_TLS_NOFD). A link is only
 * trusted while the fd still holds the same struct file. The syscall-side
 * hooks run only for processes that have TLS uprobes (SONDE_PID_TLS), so a
 * plain-TCP server pays nothing for them.
 */
#ifndef SONDE_TLS_BPF_H
#define SONDE_TLS_BPF_H

#include "sonde_conn.bpf.h"
#include "sonde_tls.h"

/* One SSL call in progress, per thread (pid_tgid). */
struct sonde_ssl_call {
	__u64 ssl;  /* SSL * (user address, only used as a key) */
	__u64 buf;  /* plaintext buffer */
	__u64 out;  /* size_t * of SSL_read_ex/SSL_write_ex; 0 otherwise */
	__u64 sp;   /* user stack pointer at entry: tells nested calls apart */
	__u64 file; /* struct file * of the nested syscall's fd */
	__s32 fd;   /* fd of a nested read/write; -1 until one is seen */
	__u8 dir;   /* enum sonde_ev_dir */
	__u8 data;  /* 1: SSL_read/SSL_write (emits); 0: handshake (links only) */
	__u8 pad[2];
};

struct sonde_ssl_key {
	__u64 ssl;
	__u32 tgid;
	__u32 pad;
};

/* The socket an SSL object was last seen on, or a thread's last TLS read. */
struct sonde_ssl_sock {
	__u64 file;
	__u32 fd;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct sonde_ssl_call);
} ssl_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sonde_ssl_key);
	__type(value, struct sonde_ssl_sock);
} ssl_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct sonde_ssl_sock);
} tls_last_read SEC(".maps");

/* tgids of watched processes that mapped executable file pages since user
 * space last looked: it re-reads their /proc/PID/maps for TLS libraries
 * loaded late (dlopen, Python's lazy `import ssl`). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} tls_rescan SEC(".maps");

/* A TLS record header: content type 20..23, major version 3, minor <= 4. */
static __always_inline int sonde_tls_looks(const void *ubuf, __u32 len)
{
	__u8 h[3];

	if (!ubuf || len < 3 || bpf_probe_read_user(h, sizeof(h), ubuf))
		return 0;
	return h[0] >= 20 && h[0] <= 23 && h[1] == 3 && h[2] <= 4;
}

/* Mark {tgid, fd} as TLS if the entry still belongs to file. */
static __always_inline void sonde_tls_mark(__u32 tgid, __u32 fd, __u64 file)
{
	struct sonde_kconn_key key = { .tgid = tgid, .fd = fd };
	struct sonde_kconn *c = bpf_map_lookup_elem(&conns, &key);

	if (c && c->file == file)
		c->tls = 1;
}

static __always_inline void sonde_tls_link(__u32 tgid, __u64 ssl, __u32 fd, __u64 file)
{
	struct sonde_ssl_key key = { .ssl = ssl, .tgid = tgid };
	struct sonde_ssl_sock v = { .file = file, .fd = fd };

	bpf_map_update_elem(&ssl_socks, &key, &v, BPF_ANY);
}

/* --- called from the syscall exit handlers ------------------------------- */

/* A read/write on a TCP socket: if the thread is inside an SSL call, this is
 * its ciphertext. Records the link and returns 1 (caller sends nothing). */
static __always_inline int sonde_tls_nested(__u64 id, __u32 fd, __u64 file)
{
	struct sonde_ssl_call *call = bpf_map_lookup_elem(&ssl_calls, &id);

	if (!call)
		return 0;
	call->fd = fd;
	call->file = file;
	sonde_tls_link(id >> 32, call->ssl, fd, file);
	return 1;
}

/* An ingress read outside any SSL call: remember it if it may be ciphertext
 * (the connection is known TLS, or the bytes start a TLS record); any other
 * read clears the memory, so only the latest read can be adopted. */
static __always_inline void sonde_tls_note_read(__u64 id, __u32 fd, __u64 file, int tls,
						const void *ubuf, __u32 len)
{
	struct sonde_ssl_sock v = { .file = file, .fd = fd };

	if (tls || sonde_tls_looks(ubuf, len))
		bpf_map_update_elem(&tls_last_read, &id, &v, BPF_ANY);
	else if (bpf_map_lookup_elem(&tls_last_read, &id))
		bpf_map_delete_elem(&tls_last_read, &id); /* a delete takes the bucket
							     lock: only when there is one */
}

/* --- called from the uprobes ----------------------------------------------- */

/* Consume the thread's remembered read; if ssl has no socket yet, the
 * read's socket becomes its socket. Any SSL call adopts, writes included:
 * Node.js runs SSL_write for data queued during the handshake right after
 * the read that completed it, before its SSL_read. */
static __always_inline void sonde_tls_adopt_read(__u64 id, __u64 ssl)
{
	struct sonde_ssl_key key = { .ssl = ssl, .tgid = id >> 32 };
	struct sonde_ssl_sock *r = bpf_map_lookup_elem(&tls_last_read, &id);
	struct sonde_ssl_sock v;

	if (!r)
		return;
	v = *r;
	bpf_map_delete_elem(&tls_last_read, &id);
	if (bpf_map_lookup_elem(&ssl_socks, &key))
		return;
	bpf_map_update_elem(&ssl_socks, &key, &v, BPF_NOEXIST);
	sonde_tls_mark(key.tgid, v.fd, v.file);
}

/* Entry of an SSL function: ssl is its first argument. A call made from
 * inside another hooked call on the same SSL (BoringSSL's SSL_read calls
 * SSL_do_handshake; SSL_connect does too) is left to the outer one, known
 * by its deeper stack pointer. */
static __always_inline int sonde_tls_enter(struct pt_regs *ctx, __u8 dir, __u8 data, __u64 out)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sonde_ssl_call *old, call = {};

	if (!sonde_is_watched(id >> 32))
		return 0;
	call.ssl = PT_REGS_PARM1(ctx);
	call.buf = PT_REGS_PARM2(ctx);
	call.out = out;
	call.sp = PT_REGS_SP(ctx);
	call.fd = -1;
	call.dir = dir;
	call.data = data;
	old = bpf_map_lookup_elem(&ssl_calls, &id);
	if (old && old->ssl == call.ssl && call.sp < old->sp)
		return 0;
	bpf_map_update_elem(&ssl_calls, &id, &call, BPF_ANY);
	sonde_tls_adopt_read(id, call.ssl);
	return 0;
}

/* The socket of a finished call: the nested one (its file was read by the
 * syscall moments ago), else the remembered link if the fd still holds the
 * same file. Returns 0 and sets *fd, *file. */
static __always_inline int sonde_tls_sock(__u32 tgid, const struct sonde_ssl_call *a, __u32 *fd,
					  __u64 *file)
{
	struct sonde_ssl_key key = { .ssl = a->ssl, .tgid = tgid };
	struct sonde_ssl_sock *l;

	if (a->fd >= 0) {
		*fd = a->fd;
		*file = a->file;
		return 0;
	}
	l = bpf_map_lookup_elem(&ssl_socks, &key);
	if (!l)
		return -1;
	*fd = l->fd;
	*file = sonde_fd_file(bpf_get_current_task_btf(), l->fd);
	if (*file && *file == l->file)
		return 0;
	bpf_map_delete_elem(&ssl_socks, &key); /* fd closed or reused */
	return -1;
}

/* Return of an SSL function. ex: the _ex variant (ret 1 = success, the byte
 * count is in *out). Emits the plaintext as a TLS-source data record. */
static __always_inline int sonde_tls_exit(struct pt_regs *ctx, int ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id, fd = 0;
	struct sonde_ssl_call *p = bpf_map_lookup_elem(&ssl_calls, &id);
	struct sonde_ssl_call a;
	struct sonde_kconn *c;
	__u64 file = 0;
	long ret = (int)PT_REGS_RC(ctx);
	__u64 n = 0;

	if (!p)
		return 0;
	if (PT_REGS_SP(ctx) < p->sp)
		return 0; /* a nested hooked call returned; the outer one reports */
	a = *p;
	bpf_map_delete_elem(&ssl_calls, &id);
	if (!a.data)
		return 0;
	if (ex) {
		if (ret != 1 || !a.out || bpf_probe_read_user(&n, sizeof(n), (void *)a.out))
			return 0;
	} else {
		if (ret <= 0)
			return 0;
		n = ret;
	}
	if (!n)
		return 0;
	if (n > 0x7fffffff)
		n = 0x7fffffff;
	if (sonde_tls_sock(tgid, &a, &fd, &file)) {
		sonde_count(SONDE_CNT_TLS_NOFD);
		return 0;
	}
	c = sonde_conn_get(tgid, tid, fd, file);
	if (!c || c->self == 1)
		return 0;
	c->tls = 1;
	sonde_count(SONDE_CNT_TLS_DATA);
	return sonde_emit_data(tgid, sonde_pid_flags(tgid), tid, fd, c, a.dir, SONDE_EV_SRC_TLS,
			       (const void *)a.buf, n);
}

/* SSL_free / SSL_shutdown: forget the object's socket. */
static __always_inline int sonde_tls_forget(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sonde_ssl_key key = { .ssl = PT_REGS_PARM1(ctx), .tgid = id >> 32 };

	bpf_map_delete_elem(&ssl_socks, &key);
	return 0;
}

#endif /* SONDE_TLS_BPF_H */
