/*
 * sonde_conn.bpf.h - maps, tunables and the emit path of the capture layer:
 * the in-kernel connection table and the helpers that write records into
 * the ring buffer. Included by exactly one BPF object (capture.bpf.c), which
 * owns the maps; the TLS-library uprobes (sonde_tls.bpf.h) live in that
 * object too and call the same helpers.
 *
 * The one idea: a connection is {tgid, fd} -> struct sonde_kconn, and the
 * entry remembers the struct sock it was made for. Whoever finds the entry
 * stale (fd reused without a close we saw) or removes it sends CONN_CLOSE for
 * the old gen, and CONN_OPEN always goes out before the first DATA of a gen,
 * so user space sees, per gen: OPEN, DATA..., CLOSE (CLOSE may be missing if
 * the process exits; PROC_EXIT covers it).
 *
 * Every helper here is ctx-independent (no tracepoint ctx argument) so that a
 * uprobe program can call it. Nothing blocks: map operations, bounded probe
 * reads, one ring-buffer copy.
 */
#ifndef SONDE_CONN_BPF_H
#define SONDE_CONN_BPF_H

#include "sonde_sock.bpf.h"

#define SONDE_MAX_IOV 4 /* iovecs walked per readv/writev/recvmsg/sendmsg */

/* --- tunables: set by user space in skel->rodata before load ------------ */
const volatile __u32 payload_cap = SONDE_DEFAULT_PAYLOAD; /* <= SONDE_MAX_PAYLOAD */
const volatile __u32 wakeup_bytes = 0; /* 0: wake on every record */
/* 1: every process that execs is watched provisionally (value 2 in
 * watched_pids) until user space has matched its executable against the
 * exe_path selectors, so a short-lived program loses none of its bytes. */
const volatile __u8 exec_adopt = 0;

/* --- maps ------------------------------------------------------------------ */
struct sonde_kconn_key {
	__u32 tgid;
	__u32 fd;
};

struct sonde_kconn {
	__u64 gen;
	__u64 pos[2];     /* syscall bytes moved so far, by enum sonde_ev_dir */
	__u64 sk;         /* struct sock * the entry was made for */
	struct sonde_tuple t;
	__u8 role;        /* enum sonde_ev_role */
	__u8 open_sent;   /* CONN_OPEN emitted (deferred while lport == 0) */
	__u8 tls;         /* a TLS library runs over it: syscall data not sent */
	__u8 pad[5];
	__u64 tls_pos[2]; /* plaintext bytes moved so far (source TLS), by dir */
};

/* Filter: tgids user space (or fork inheritance) asked for. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} watched_pids SEC(".maps");

/* LRU: entries of processes that died without closing age out first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sonde_kconn_key);
	__type(value, struct sonde_kconn);
} conns SEC(".maps");

/* Single slot: the global generation counter (atomic add). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gen_counter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SONDE_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Scratch for one data record per CPU: header + payload. Twice the maximum
 * payload so the verifier can bound "offset < MAX, size <= MAX" copies of
 * the iovec walk; a plain array indexed by CPU because a per-CPU value may
 * not exceed 32 KiB. User space sets max_entries to the number of CPUs. */
struct sonde_scratch {
	__u8 raw[sizeof(struct sonde_ev_data) + 2 * SONDE_MAX_PAYLOAD];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sonde_scratch);
} scratch SEC(".maps");

/* Size set by user space before load (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* --- small helpers ---------------------------------------------------------- */
static __always_inline void sonde_count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);

	if (v)
		*v += 1;
}

static __always_inline int sonde_is_watched(__u32 tgid)
{
	return bpf_map_lookup_elem(&watched_pids, &tgid) != NULL;
}

/* Batched wake-ups: wake user space only once the ring holds more than
 * wakeup_bytes; user space polls with a short timeout for the rest. Urgent
 * records (exec, fork, listen: discovery acts on them while the new process
 * starts up) always wake. */
static __always_inline __u64 sonde_rb_flags(int urgent)
{
	if (urgent)
		return BPF_RB_FORCE_WAKEUP;
	if (!wakeup_bytes)
		return 0;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

/* Copy a finished record into the ring buffer and count the outcome. */
static __always_inline int sonde_output(void *rec, __u64 size, int urgent)
{
	if (bpf_ringbuf_output(&events, rec, size, sonde_rb_flags(urgent))) {
		sonde_count(SONDE_CNT_LOST);
		return -1;
	}
	sonde_count(SONDE_CNT_EVENTS);
	return 0;
}

static __always_inline void sonde_hdr(struct sonde_ev_hdr *h, __u32 type, __u32 tgid,
				      __u32 tid, __u32 fd)
{
	h->type = type;
	h->tgid = tgid;
	h->tid = tid;
	h->fd = fd;
	h->ts_ns = bpf_ktime_get_ns();
}

static __always_inline __u64 sonde_next_gen(void)
{
	__u32 zero = 0;
	__u64 *g = bpf_map_lookup_elem(&gen_counter, &zero);

	if (!g)
		return 0;
	return __sync_fetch_and_add(g, 1) + 1;
}

/* CONN_OPEN, CONN_CLOSE or LISTEN (gen 0). */
static __always_inline void sonde_emit_conn(__u32 type, __u32 tgid, __u32 tid, __u32 fd,
					    __u64 gen, const struct sonde_tuple *t, __u8 role)
{
	struct sonde_ev_conn ev = {};

	sonde_hdr(&ev.h, type, tgid, tid, fd);
	ev.gen = gen;
	ev.t = *t;
	ev.role = role;
	sonde_output(&ev, sizeof(ev), type == SONDE_EV_LISTEN);
}

/* --- the connection table ---------------------------------------------------- */

/* Send CONN_OPEN for c unless already sent; while the local port is still 0
 * (connect in progress) re-read the tuple and defer. */
static __always_inline void sonde_conn_announce(__u32 tgid, __u32 tid, __u32 fd,
						struct sonde_kconn *c, struct sock *sk)
{
	if (c->open_sent)
		return;
	if (c->t.lport == 0)
		sonde_sock_tuple(sk, &c->t);
	if (c->t.lport == 0)
		return;
	c->open_sent = 1;
	sonde_emit_conn(SONDE_EV_CONN_OPEN, tgid, tid, fd, c->gen, &c->t, c->role);
}

/* Remove the entry for key if it still is generation gen; CONN_CLOSE goes out
 * only from the caller whose delete succeeded, and only if OPEN went out. */
static __always_inline void sonde_conn_drop(struct sonde_kconn_key *key, __u32 tid,
					    struct sonde_kconn *c, __u64 gen)
{
	struct sonde_kconn old;

	if (!c || c->gen != gen)
		return;
	old = *c;
	if (bpf_map_delete_elem(&conns, key))
		return;
	if (old.open_sent)
		sonde_emit_conn(SONDE_EV_CONN_CLOSE, key->tgid, tid, key->fd, old.gen,
				&old.t, old.role);
}

/* A new connection on fd (accept, connect, or first sight of a pre-existing
 * one). Replaces a stale entry, closing it first. flags: BPF_ANY for accept
 * and connect, BPF_NOEXIST for lazy creation (a racing thread may win).
 * Returns the entry in the map, or NULL. */
static __always_inline struct sonde_kconn *sonde_conn_new(__u32 tgid, __u32 tid, __u32 fd,
							 struct sock *sk, __u8 role, __u64 flags)
{
	struct sonde_kconn_key key = { .tgid = tgid, .fd = fd };
	struct sonde_kconn n = {};
	struct sonde_kconn *c;

	if (flags == BPF_ANY) {
		c = bpf_map_lookup_elem(&conns, &key);
		if (c)
			sonde_conn_drop(&key, tid, c, c->gen);
	}
	n.gen = sonde_next_gen();
	n.sk = (__u64)sk;
	n.role = role;
	sonde_sock_tuple(sk, &n.t);
	if (bpf_map_update_elem(&conns, &key, &n, flags) && flags != BPF_NOEXIST)
		return NULL;
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return NULL;
	sonde_conn_announce(tgid, tid, fd, c, sk);
	return c;
}

/* The entry for a data event on fd: the known one if it was made for this
 * very socket, else a new one with role UNKNOWN (pre-existing connection, or
 * an fd reused behind our back). */
static __always_inline struct sonde_kconn *sonde_conn_get(__u32 tgid, __u32 tid, __u32 fd,
							 struct sock *sk)
{
	struct sonde_kconn_key key = { .tgid = tgid, .fd = fd };
	struct sonde_kconn *c = bpf_map_lookup_elem(&conns, &key);

	if (c && c->sk == (__u64)sk) {
		sonde_conn_announce(tgid, tid, fd, c, sk);
		return c;
	}
	if (c)
		sonde_conn_drop(&key, tid, c, c->gen);
	return sonde_conn_new(tgid, tid, fd, sk, SONDE_EV_ROLE_UNKNOWN, BPF_NOEXIST);
}

/* --- the data path (shared with the TLS uprobes of issue 4) -------------------- */

static __always_inline __u32 sonde_cap(void)
{
	__u32 cap = payload_cap;

	return cap > SONDE_MAX_PAYLOAD ? SONDE_MAX_PAYLOAD : cap;
}

/* Take the scratch record and fill everything but the payload; advances the
 * connection's position of that source and direction by len (atomically:
 * threads may share an fd). Syscall bytes and TLS plaintext count apart. */
static __always_inline struct sonde_ev_data *sonde_data_begin(__u32 tgid, __u32 tid, __u32 fd,
							      struct sonde_kconn *c, __u8 dir,
							      __u8 source, __u32 len)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct sonde_scratch *s;
	struct sonde_ev_data *ev;
	__u64 pos;

	if (source == SONDE_EV_SRC_TLS)
		pos = __sync_fetch_and_add(&c->tls_pos[dir & 1], (__u64)len);
	else
		pos = __sync_fetch_and_add(&c->pos[dir & 1], (__u64)len);
	s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s) {
		sonde_count(SONDE_CNT_LOST);
		return NULL;
	}
	ev = (struct sonde_ev_data *)s->raw;
	sonde_hdr(&ev->h, SONDE_EV_DATA, tgid, tid, fd);
	ev->gen = c->gen;
	ev->pos = pos;
	ev->len = len;
	ev->cap_len = 0;
	ev->dir = dir;
	ev->source = source;
	ev->flags = 0;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	return ev;
}

static __always_inline int sonde_data_end(struct sonde_ev_data *ev, __u32 cap_len)
{
	if (cap_len > SONDE_MAX_PAYLOAD)
		cap_len = SONDE_MAX_PAYLOAD;
	ev->cap_len = cap_len;
	if (cap_len < ev->len) {
		ev->flags |= SONDE_EVF_TRUNCATED;
		sonde_count(SONDE_CNT_TRUNCATED);
	}
	return sonde_output(ev, sizeof(*ev) + cap_len, 0);
}

/* DATA for len bytes moved through c, payload in one user buffer. A NULL
 * ubuf sends the record without payload (position still advances). */
static __always_inline int sonde_emit_data(__u32 tgid, __u32 tid, __u32 fd,
					   struct sonde_kconn *c, __u8 dir, __u8 source,
					   const void *ubuf, __u32 len)
{
	struct sonde_ev_data *ev = sonde_data_begin(tgid, tid, fd, c, dir, source, len);
	__u32 n = sonde_cap();

	if (!ev)
		return -1;
	if (n > len)
		n = len;
	if (!ubuf)
		n = 0;
	if (n > SONDE_MAX_PAYLOAD)
		n = SONDE_MAX_PAYLOAD;
	if (n && bpf_probe_read_user(ev->data, n, ubuf))
		n = 0;
	return sonde_data_end(ev, n);
}

/* DATA for len bytes moved through c, payload spread over up to
 * SONDE_MAX_IOV user iovecs (readv/writev/recvmsg/sendmsg). */
static __always_inline int sonde_emit_data_iov(__u32 tgid, __u32 tid, __u32 fd,
					       struct sonde_kconn *c, __u8 dir, __u8 source,
					       const struct iovec *iov, __u32 iovcnt, __u32 len)
{
	struct sonde_ev_data *ev = sonde_data_begin(tgid, tid, fd, c, dir, source, len);
	__u32 cap = sonde_cap();
	__u32 off = 0;
	int i;

	if (!ev)
		return -1;
	if (cap > len)
		cap = len;
	if (!iov)
		cap = 0;
	for (i = 0; i < SONDE_MAX_IOV; i++) {
		struct iovec v;
		__u64 n;

		if (i >= iovcnt || off >= cap)
			break;
		if (bpf_probe_read_user(&v, sizeof(v), &iov[i]))
			break;
		n = v.iov_len;
		if (n > cap - off)
			n = cap - off;
		off &= SONDE_MAX_PAYLOAD - 1; /* no-op: off < cap <= MAX */
		if (n > SONDE_MAX_PAYLOAD)
			n = SONDE_MAX_PAYLOAD;
		if (bpf_probe_read_user(ev->data + off, n, v.iov_base))
			break;
		off += n;
	}
	return sonde_data_end(ev, off);
}

#endif /* SONDE_CONN_BPF_H */
