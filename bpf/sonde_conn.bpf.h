/*
 * sonde_conn.bpf.h - maps, tunables and the emit path of the capture layer:
 * the pid table, the in-kernel connection table, the control words user
 * space writes, pressure accounting, and the helpers that write records
 * into the ring buffer. Included by exactly one BPF object (capture.bpf.c),
 * which owns the maps; the TLS-library uprobes (sonde_tls.bpf.h) live in
 * that object too and call the same helpers.
 *
 * The one idea: a connection is {tgid, fd} -> struct sonde_kconn, and the
 * entry remembers the struct file it was made for. A data syscall reads the
 * fd's file pointer (one probe read) and compares: same file, same
 * connection, no socket walk. Whoever finds the entry stale (fd reused
 * without a close we saw) or removes it sends CONN_CLOSE for the old gen,
 * and CONN_OPEN always goes out before the first DATA of a gen, so user
 * space sees, per gen: OPEN, DATA..., CLOSE (CLOSE may be missing if the
 * process exits; PROC_EXIT covers it).
 *
 * Every helper here is ctx-independent (no tracepoint ctx argument) so that a
 * uprobe program can call it. Nothing blocks: map operations, bounded probe
 * reads, one ring-buffer copy.
 */
#ifndef SONDE_CONN_BPF_H
#define SONDE_CONN_BPF_H

#include "sonde_sock.bpf.h"

#define SONDE_IOV_BATCH 4
#define SONDE_MAX_IOV 64 /* iovecs walked per readv/writev/recvmsg/sendmsg (gRPC
                          * writes each frame as several, up to the cap) */

/* --- tunables: set by user space in skel->rodata before load ------------ */
const volatile __u32 payload_cap = SONDE_DEFAULT_PAYLOAD; /* <= SONDE_MAX_PAYLOAD */
const volatile __u32 wakeup_bytes = 0; /* 0: wake on every record */
/* Exec adoption: 0 none; 1 programs whose path ends with one of the
 * exe_suffixes; 2 every program (a selector had no literal ending). */
const volatile __u8 exec_adopt = 0;
const volatile __u32 n_exe_suffixes = 0;
/* Pressure (see sonde_shed): shed_high and shed_low are bytes waiting in
 * the ring, budget_bytes a process's bytes per window of budget_window_ns.
 * shed_high 0: off. */
const volatile __u64 shed_high = 0;
const volatile __u64 shed_low = 0;
const volatile __u64 budget_bytes = 0;
const volatile __u64 budget_window_ns = 100000000;
/* The agent's own process: its connections to watched processes (a
 * runtime plugin's inspector session, OTLP export to a watched collector)
 * are never captured on the watched side. */
const volatile __u32 self_tgid = 0;

/* --- maps ------------------------------------------------------------------ */
struct sonde_kconn_key {
	__u32 tgid;
	__u32 fd;
};

struct sonde_kconn {
	__u64 gen;
	__u64 file;       /* struct file * the entry was made for */
	__u64 sk;         /* its struct sock * */
	__u64 pos[2];     /* syscall bytes moved so far, by enum sonde_ev_dir */
	__u64 tls_pos[2]; /* plaintext bytes moved so far (source TLS), by dir */
	struct sonde_tuple t;
	__u8 role;        /* enum sonde_ev_role */
	__u8 open_sent;   /* CONN_OPEN emitted (deferred while a TCP lport is 0) */
	__u8 tls;         /* a TLS library runs over it: syscall data not sent */
	__u8 kind;        /* enum sonde_sock_kind */
	__u8 shed;        /* records dropped under pressure: keep shedding */
	__u8 self;        /* 1: its peer is the agent itself, never captured;
	                     2: checked, it is not */
	__u8 pad[2];
};

/* The pid table: one flag byte per tgid (SONDE_PID_*), eight per word. An
 * mmap'able array: user space sets and clears bits with atomics, no
 * syscall. User space sets max_entries from pid_max. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} sonde_pids SEC(".maps");

/* LRU: entries of processes that died without closing age out first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sonde_kconn_key);
	__type(value, struct sonde_kconn);
} conns SEC(".maps");

/* A connection handed to a child process before either moved a byte: the
 * PostgreSQL postmaster accepts, forks a backend and closes its own copy.
 * The child's first read is then the stream's first byte, and the role is
 * the parent's. Keyed by struct file; sk and the tuple must match too. */
struct sonde_handoff {
	__u64 sk;
	struct sonde_tuple t;
	__u8 role;
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct sonde_handoff);
} sonde_handoff SEC(".maps");

/* TCP connections the agent itself opened: lport << 16 | rport -> when.
 * A watched socket whose peer is one of them (its rport << 16 | lport)
 * is the agent talking to a watched process. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} sonde_self_conns SEC(".maps");

#define SONDE_SELF_MAX_AGE_NS 10000000000ull

/* The first bytes of c: is its peer the agent? The agent's connect has
 * returned before it wrote, and the watched side read nothing before that,
 * so the entry is always there by the first record. */
static __always_inline int sonde_conn_is_self(struct sonde_kconn *c)
{
	__u32 k;
	__u64 *at;

	if (c->self)
		return c->self == 1;
	if (!self_tgid || c->pos[0] || c->pos[1] || c->kind != SONDE_KIND_TCP)
		return 0;
	c->self = 2; /* looked once: not the agent */
	k = (__u32)c->t.rport << 16 | c->t.lport;
	at = bpf_map_lookup_elem(&sonde_self_conns, &k);
	if (!at || bpf_ktime_get_ns() - *at > SONDE_SELF_MAX_AGE_NS)
		return 0;
	bpf_map_delete_elem(&sonde_self_conns, &k);
	c->self = 1;
	return 1;
}

/* Control words, written by user space through mmap (sonde_events.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, SONDE_CTL_SLOTS);
	__type(key, __u32);
	__type(value, struct sonde_ctl);
} sonde_ctl SEC(".maps");

/* Per-process pressure accounting (only touched while the ring is under
 * pressure, or when something was dropped). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct sonde_budget);
} sonde_budget SEC(".maps");

/* tid -> runtime context (a goroutine id ...), kept by runtime plugins'
 * BPF programs (sdk/include/sonde/bpf.h declares it the same way). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} sonde_thread_ctx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SONDE_EXE_SUFFIX_MAX);
	__type(key, __u32);
	__type(value, struct sonde_exe_suffix);
} exe_suffixes SEC(".maps");

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

static __always_inline void sonde_count_n(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);

	if (v)
		*v += n;
}

/* The flag byte of tgid in the pid table (0 when outside it). */
static __always_inline __u8 sonde_pid_flags(__u32 tgid)
{
	__u32 k = tgid >> 3;
	__u64 *w = bpf_map_lookup_elem(&sonde_pids, &k);

	return w ? (__u8)(*w >> ((tgid & 7) * 8)) : 0;
}

static __always_inline void sonde_pid_set(__u32 tgid, __u8 bits)
{
	__u32 k = tgid >> 3;
	__u64 *w = bpf_map_lookup_elem(&sonde_pids, &k);

	if (w)
		__sync_fetch_and_or(w, (__u64)bits << ((tgid & 7) * 8));
}

static __always_inline void sonde_pid_clear(__u32 tgid, __u8 bits)
{
	__u32 k = tgid >> 3;
	__u64 *w = bpf_map_lookup_elem(&sonde_pids, &k);

	if (w)
		__sync_fetch_and_and(w, ~((__u64)bits << ((tgid & 7) * 8)));
}

static __always_inline int sonde_is_watched(__u32 tgid)
{
	return (sonde_pid_flags(tgid) & SONDE_PID_CAPTURE) != 0;
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

/* A record of tgid was dropped: count it globally and for the process. */
static __always_inline void sonde_dropped(__u32 tgid, __u32 slot, __u64 bytes)
{
	struct sonde_budget *b = bpf_map_lookup_elem(&sonde_budget, &tgid);
	struct sonde_budget nb = {};

	sonde_count(slot);
	if (!b) {
		bpf_map_update_elem(&sonde_budget, &tgid, &nb, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&sonde_budget, &tgid);
		if (!b)
			return;
	}
	__sync_fetch_and_add(&b->dropped, 1);
	__sync_fetch_and_add(&b->dropped_bytes, bytes);
}

/* Copy a finished record into the ring buffer and count the outcome. */
static __always_inline int sonde_output(__u32 tgid, void *rec, __u64 size, int urgent)
{
	if (bpf_ringbuf_output(&events, rec, size, sonde_rb_flags(urgent))) {
		sonde_dropped(tgid, SONDE_CNT_LOST, size);
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

/* CONN_OPEN, CONN_CLOSE or LISTEN (gen 0); sk (may be NULL) gives the unix
 * path of a unix socket. Built in the scratch slot: the record is larger
 * than the BPF stack likes. */
static __always_inline void sonde_emit_conn(__u32 type, __u32 tgid, __u32 tid, __u32 fd,
					    __u64 gen, const struct sonde_tuple *t, __u8 role,
					    struct sock *sk, const __u64 *end_pos)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct sonde_scratch *s = bpf_map_lookup_elem(&scratch, &cpu);
	struct sonde_ev_conn *ev;
	int server_end = 0;

	if (!s)
		return;
	ev = (struct sonde_ev_conn *)s->raw;
	__builtin_memset(ev, 0, sizeof(*ev));
	sonde_hdr(&ev->h, type, tgid, tid, fd);
	ev->gen = gen;
	ev->t = *t;
	ev->role = role;
	if (role == SONDE_EV_ROLE_UNKNOWN)
		ev->cflags = SONDE_EVC_MIDSTREAM;
	if (t->family == SONDE_AF_UNIX && sk && type == SONDE_EV_CONN_OPEN) {
		sonde_unix_path(sk, ev->unix_path, &server_end);
		if (role == SONDE_EV_ROLE_UNKNOWN)
			ev->role = server_end ? SONDE_EV_ROLE_SERVER : SONDE_EV_ROLE_CLIENT;
	}
	if (end_pos) {
		ev->end_pos[0] = end_pos[0];
		ev->end_pos[1] = end_pos[1];
	}
	sonde_output(tgid, ev, sizeof(*ev), type == SONDE_EV_LISTEN);
}

/* --- the connection table ---------------------------------------------------- */

/* Send CONN_OPEN for c unless already sent; while a TCP socket's local port
 * is still 0 (connect in progress) re-read the tuple and defer. */
static __always_inline void sonde_conn_announce(__u32 tgid, __u32 tid, __u32 fd,
						struct sonde_kconn *c, struct sock *sk)
{
	if (c->open_sent)
		return;
	if (c->kind == SONDE_KIND_TCP && c->t.lport == 0)
		sonde_sock_tuple(sk, &c->t);
	if (c->kind == SONDE_KIND_TCP && c->t.lport == 0)
		return;
	c->open_sent = 1;
	sonde_emit_conn(SONDE_EV_CONN_OPEN, tgid, tid, fd, c->gen, &c->t, c->role, sk, NULL);
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
	/* Closed before it moved a byte, its role known: a child that shares
	 * the socket may take it from the start (sonde_conn_inherit). */
	if (!old.pos[0] && !old.pos[1] && old.kind == SONDE_KIND_TCP &&
	    old.role != SONDE_EV_ROLE_UNKNOWN) {
		struct sonde_handoff ho = { .sk = old.sk, .t = old.t, .role = old.role };

		bpf_map_update_elem(&sonde_handoff, &old.file, &ho, BPF_ANY);
	}
	if (old.open_sent)
		sonde_emit_conn(SONDE_EV_CONN_CLOSE, key->tgid, tid, key->fd, old.gen, &old.t,
				old.role, NULL, old.pos);
}

/* A new connection on fd (accept, connect, or first sight of a pre-existing
 * one). Replaces a stale entry, closing it first. flags: BPF_ANY for accept
 * and connect, BPF_NOEXIST for lazy creation (a racing thread may win).
 * Returns the entry in the map, or NULL. */
static __always_inline struct sonde_kconn *sonde_conn_new(__u32 tgid, __u32 tid, __u32 fd,
							  __u64 file, struct sock *sk, int kind,
							  __u8 role, __u64 flags)
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
	n.file = file;
	n.sk = (__u64)sk;
	n.role = role;
	n.kind = kind;
	sonde_sock_tuple(sk, &n.t);
	if (bpf_map_update_elem(&conns, &key, &n, flags) && flags != BPF_NOEXIST)
		return NULL;
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return NULL;
	if (role == SONDE_EV_ROLE_UNKNOWN)
		sonde_count(SONDE_CNT_PREEXISTING);
	sonde_conn_announce(tgid, tid, fd, c, sk);
	return c;
}

/* First sight of a TCP socket in a process: did its parent hand it over
 * before either moved a byte? Then the stream starts here, in the parent's
 * role: returns that role, else SONDE_EV_ROLE_UNKNOWN. */
static __always_inline __u8 sonde_conn_inherit(__u32 fd, __u64 file, struct sock *sk)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct sonde_kconn_key pk = { .fd = fd };
	struct sonde_handoff *ho = bpf_map_lookup_elem(&sonde_handoff, &file);
	struct sonde_kconn *pc;
	struct sonde_tuple t;
	__u8 role;

	if (ho) {
		role = ho->role;
		if (ho->sk != (__u64)sk)
			return SONDE_EV_ROLE_UNKNOWN;
		sonde_sock_tuple(sk, &t);
		if (t.lport != ho->t.lport || t.rport != ho->t.rport)
			return SONDE_EV_ROLE_UNKNOWN;
		bpf_map_delete_elem(&sonde_handoff, &file);
		return role;
	}
	/* The parent still holds it (same fd number after fork). */
	pk.tgid = BPF_CORE_READ(task, real_parent, tgid);
	pc = bpf_map_lookup_elem(&conns, &pk);
	if (pc && pc->file == file && pc->sk == (__u64)sk && !pc->pos[0] && !pc->pos[1])
		return pc->role;
	return SONDE_EV_ROLE_UNKNOWN;
}

/* The entry for a data event on fd whose file is `file`: the known one if it
 * was made for this very file, else a new one with role UNKNOWN
 * (pre-existing connection, or an fd reused behind our back), or NULL when
 * the file is not a socket we follow. */
static __always_inline struct sonde_kconn *sonde_conn_get(__u32 tgid, __u32 tid, __u32 fd,
							  __u64 file)
{
	struct sonde_kconn_key key = { .tgid = tgid, .fd = fd };
	struct sonde_kconn *c = bpf_map_lookup_elem(&conns, &key);
	struct sock *sk = NULL;
	int kind;

	if (c && c->file == file) {
		if (!c->open_sent)
			sonde_conn_announce(tgid, tid, fd, c, (struct sock *)c->sk);
		return c;
	}
	if (c)
		sonde_conn_drop(&key, tid, c, c->gen);
	kind = sonde_file_sock(file, &sk);
	if (kind == SONDE_KIND_NONE) {
		sonde_count(SONDE_CNT_NOT_TCP);
		return NULL;
	}
	return sonde_conn_new(tgid, tid, fd, file, sk, kind,
			      kind == SONDE_KIND_TCP ? sonde_conn_inherit(fd, file, sk)
						     : SONDE_EV_ROLE_UNKNOWN,
			      BPF_NOEXIST);
}

/* The control word of c, if user space wrote one for this gen. */
static __always_inline struct sonde_ctl *sonde_conn_ctl(const struct sonde_kconn *c)
{
	__u32 slot = (__u32)c->gen & (SONDE_CTL_SLOTS - 1);
	struct sonde_ctl *w = bpf_map_lookup_elem(&sonde_ctl, &slot);

	return w && w->gen == c->gen ? w : NULL;
}

/* --- the data path (shared with the TLS uprobes) ------------------------------- */

static __always_inline __u32 sonde_cap(const struct sonde_ctl *w)
{
	__u32 cap = w && w->cap ? w->cap : payload_cap;

	return cap > SONDE_MAX_PAYLOAD ? SONDE_MAX_PAYLOAD : cap;
}

/* Bytes written into the ring by everyone, per window of budget_window_ns
 * (idx = now / window): the denominator of a process's share. At each new
 * window the count is halved, so a share looks back about two windows and
 * a process's first record in a fresh window is not judged alone. */
struct sonde_window {
	__u64 idx;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sonde_window);
} sonde_window SEC(".maps");

/* Counts of the window `idx` seen from a count last touched at `*at`. */
static __always_inline void sonde_window_roll(__u64 *at, __u64 *bytes, __u64 idx)
{
	if (*at == idx)
		return;
	*bytes = *at + 1 == idx ? *bytes / 2 : 0;
	*at = idx;
}

/* Under ring pressure, should a record of `size` bytes from tgid on c be
 * dropped? Only the processes that fill the ring pay. Once the ring holds
 * more than shed_low bytes, shares are kept; a process whose bytes are more
 * than half of everyone's (it dominates), or more than budget_bytes a window
 * (when set), may
 * not take the ring past shed_high: the space above is left to the others.
 * A connection that started shedding keeps shedding until the ring drains
 * below shed_low, so a request is lost whole rather than in pieces. */
static __always_inline int sonde_shed(__u32 tgid, struct sonde_kconn *c, __u64 size)
{
	struct sonde_budget *b;
	struct sonde_window *w;
	__u64 avail, idx, mine, all;
	__u32 zero = 0;

	if (!shed_high)
		return 0;
	avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (c->shed && avail < shed_low)
		c->shed = 0;
	/* Shares are only kept while there is pressure (cheap otherwise). They
	 * count what processes ask to send, shed or not: a process shedding
	 * still dominates. */
	if (avail < shed_low)
		return 0;
	idx = bpf_ktime_get_ns() / budget_window_ns;
	w = bpf_map_lookup_elem(&sonde_window, &zero);
	b = bpf_map_lookup_elem(&sonde_budget, &tgid);
	if (!b) {
		struct sonde_budget nb = {};

		bpf_map_update_elem(&sonde_budget, &tgid, &nb, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&sonde_budget, &tgid);
	}
	if (!w || !b)
		return c->shed;
	sonde_window_roll(&w->idx, &w->bytes, idx);
	sonde_window_roll(&b->window_idx, &b->window_bytes, idx);
	all = __sync_fetch_and_add(&w->bytes, size) + size;
	b->window_bytes += size;
	mine = b->window_bytes;
	if (c->shed)
		return 1;
	if (avail + size <= shed_high)
		return 0;
	/* Halved each window, a steady rate r sums to about 2r. */
	if (mine * 2 <= all && (!budget_bytes || mine <= 2 * budget_bytes))
		return 0;
	c->shed = 1;
	return 1;
}

/* Decide what to send for len bytes at the connection's current position:
 * advances the position (atomically: threads may share an fd), and returns
 * the number of payload bytes wanted (0..cap), or -1 for no record at all
 * (muted, or shed under pressure). *flags gets SONDE_EVF_SKIPPED when the
 * payload is left out on user space's request. */
static __always_inline long sonde_data_plan(__u32 tgid, struct sonde_kconn *c, __u8 dir,
					    __u8 source, __u32 len, __u64 *posp, __u8 *flags)
{
	struct sonde_ctl *w = sonde_conn_ctl(c);
	__u64 pos;
	__u32 cap;

	if (source == SONDE_EV_SRC_TLS)
		pos = __sync_fetch_and_add(&c->tls_pos[dir & 1], (__u64)len);
	else
		pos = __sync_fetch_and_add(&c->pos[dir & 1], (__u64)len);
	*posp = pos;
	*flags = 0;
	if (w && (w->flags & SONDE_CTL_MUTE)) {
		sonde_count(SONDE_CNT_MUTED);
		return -1;
	}
	if (w && (w->flags & SONDE_CTL_TLS) && source == SONDE_EV_SRC_SYSCALL) {
		c->tls = 1; /* ciphertext from now on: checked before any work */
		return -1;
	}
	/* What the record will cost in the ring decides shedding. */
	cap = sonde_cap(w);
	if (w && pos + len <= w->skip_to[dir & 1])
		cap = 0;
	else if (cap > len)
		cap = len;
	if (sonde_shed(tgid, c, sizeof(struct sonde_ev_data) + cap)) {
		sonde_dropped(tgid, SONDE_CNT_SHED, sizeof(struct sonde_ev_data) + cap);
		return -1;
	}
	if (w && pos + len <= w->skip_to[dir & 1]) {
		sonde_count_n(SONDE_CNT_SKIPPED, len);
		*flags = SONDE_EVF_SKIPPED;
	}
	return cap;
}

/* Take the scratch record and fill everything but the payload. */
static __always_inline struct sonde_ev_data *sonde_data_begin(__u32 tgid, __u8 pf, __u32 tid,
							      __u32 fd, struct sonde_kconn *c,
							      __u8 dir, __u8 source, __u32 len,
							      __u64 pos, __u8 flags)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct sonde_scratch *s = bpf_map_lookup_elem(&scratch, &cpu);
	struct sonde_ev_data *ev;

	if (!s) {
		sonde_dropped(tgid, SONDE_CNT_LOST, len);
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
	ev->flags = flags;
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	ev->ctx = 0;
	if (pf & SONDE_PID_CONTEXTS) {
		__u64 *k = bpf_map_lookup_elem(&sonde_thread_ctx, &tid);

		if (k && !(*k & SONDE_CTX_INDIRECT)) {
			ev->ctx = *k;
		} else if (k) {
			__u64 key = 0;

			if (!bpf_probe_read_user(&key, sizeof(key),
						 (const void *)(*k & ~SONDE_CTX_INDIRECT)) &&
			    !(key & SONDE_CTX_INDIRECT))
				ev->ctx = key;
		}
	}
	return ev;
}

static __always_inline int sonde_data_end(__u32 tgid, __u8 pf, struct sonde_kconn *c,
					  struct sonde_ev_data *ev, __u32 cap_len)
{
	if (cap_len > SONDE_MAX_PAYLOAD)
		cap_len = SONDE_MAX_PAYLOAD;
	ev->cap_len = cap_len;
	if (cap_len < ev->len) {
		ev->flags |= SONDE_EVF_TRUNCATED;
		if (!(ev->flags & (SONDE_EVF_SKIPPED | SONDE_EVF_NOBUF)))
			sonde_count(SONDE_CNT_TRUNCATED);
	}
	/* A request read by a process that injects traceparent: user space
	 * should publish what the thread serves before it calls out. */
	if (sonde_output(tgid, ev, sizeof(*ev) + cap_len,
			 ev->dir == SONDE_EV_DIR_INGRESS &&
				 (pf & SONDE_PID_INJECT))) {
		c->shed = shed_high ? 1 : 0;
		return -1;
	}
	return 0;
}

/* DATA for len bytes moved through c, payload in one user buffer. A NULL
 * ubuf sends the record without payload (sendfile, splice, MSG_TRUNC: the
 * position still advances and the record says how much moved). */
static __always_inline int sonde_emit_data(__u32 tgid, __u8 pf, __u32 tid, __u32 fd,
					   struct sonde_kconn *c, __u8 dir, __u8 source,
					   const void *ubuf, __u32 len)
{
	struct sonde_ev_data *ev;
	__u64 pos;
	__u8 flags;
	long n = sonde_data_plan(tgid, c, dir, source, len, &pos, &flags);

	if (n < 0)
		return 0;
	if (!ubuf) {
		n = 0;
		flags |= SONDE_EVF_NOBUF;
		sonde_count(SONDE_CNT_NOBUF);
	}
	ev = sonde_data_begin(tgid, pf, tid, fd, c, dir, source, len, pos, flags);
	if (!ev)
		return -1;
	if (n > SONDE_MAX_PAYLOAD)
		n = SONDE_MAX_PAYLOAD;
	if (n > 0 && bpf_probe_read_user(ev->data, n, ubuf))
		n = 0;
	return sonde_data_end(tgid, pf, c, ev, n);
}

/* DATA for len bytes moved through c, payload spread over up to
 * SONDE_MAX_IOV user iovecs (readv/writev/recvmsg/sendmsg). */
static __always_inline int sonde_emit_data_iov(__u32 tgid, __u8 pf, __u32 tid, __u32 fd,
					       struct sonde_kconn *c, __u8 dir, __u8 source,
					       const struct iovec *iov, __u32 iovcnt, __u32 len)
{
	struct sonde_ev_data *ev;
	__u32 off = 0, cap;
	__u64 pos;
	__u8 flags;
	long n = sonde_data_plan(tgid, c, dir, source, len, &pos, &flags);
	struct iovec vs[2 * SONDE_IOV_BATCH];
	int i;

	if (n < 0)
		return 0;
	ev = sonde_data_begin(tgid, pf, tid, fd, c, dir, source, len, pos, flags);
	if (!ev)
		return -1;
	cap = (__u32)n;
	if (!iov)
		cap = 0;
	/* The iovec array is read SONDE_IOV_BATCH entries at a time: each
	 * bpf_probe_read_user costs about as much as the bytes it copies. */
	for (i = 0; i < SONDE_MAX_IOV; i++) {
		struct iovec v;
		__u64 k;

		if (i >= iovcnt || off >= cap)
			break;
		if ((i & (SONDE_IOV_BATCH - 1)) == 0) {
			__u32 sz = (iovcnt - i) * sizeof(vs[0]);

			if (sz > SONDE_IOV_BATCH * sizeof(vs[0]))
				sz = SONDE_IOV_BATCH * sizeof(vs[0]);
			sz &= sizeof(vs) - 1; /* a no-op, for the verifier: vs is twice the batch */
			if (bpf_probe_read_user(vs, sz, &iov[i]))
				break;
		}
		v = vs[i & (SONDE_IOV_BATCH - 1)];
		k = v.iov_len;
		if (k > cap - off)
			k = cap - off;
		off &= SONDE_MAX_PAYLOAD - 1; /* no-op: off < cap <= MAX */
		if (k > SONDE_MAX_PAYLOAD)
			k = SONDE_MAX_PAYLOAD;
		if (bpf_probe_read_user(ev->data + off, k, v.iov_base))
			break;
		off += k;
	}
	return sonde_data_end(tgid, pf, c, ev, off);
}

#endif /* SONDE_CONN_BPF_H */
