/*
 * sonde/bpf.h - for the BPF programs of a runtime plugin (CO-RE, compiled
 * with clang -target bpf against the kernel's vmlinux.h).
 *
 * The one idea: a plugin's BPF object shares the host's maps by name. The
 * maps declared here have exactly the host's definitions; when the host
 * loads your object (host->bpf_load) it reuses its own maps for them, so
 * your programs see the host's pid table and write into the host's ring
 * buffer. Everything else in your object is yours.
 *
 * What you may do with them:
 *   - read a process's flags: sonde_pid_flags(tgid) & SONDE_PID_WATCHED;
 *   - keep sonde_thread_ctx[tid] = the runtime context running on a thread
 *     (a goroutine id), for processes you marked with SONDE_PROCESS_CONTEXTS;
 *     the host's capture then stamps every chunk of that thread with it;
 *   - write records of the types you claimed (records_claim, >= 1000),
 *     each starting with struct sonde_bpf_hdr, into `events`; they come back
 *     to your descriptor's record().
 *
 * Versioned apart from the C ABI: SONDE_BPF_VERSION changes when a shared
 * map's definition changes; the host refuses an object built for another.
 * Include it after vmlinux.h and <bpf/bpf_helpers.h>.
 */
#ifndef SONDE_BPF_H
#define SONDE_BPF_H

#define SONDE_BPF_VERSION 1

/* The host compares this with its own before reusing maps. */
const volatile __u32 sonde_bpf_version SEC(".rodata") = SONDE_BPF_VERSION;

/* Flags per process in sonde_pids (one byte each, eight per word). */
#define SONDE_PID_WATCHED (1u << 0)
#define SONDE_PID_PROVISIONAL (1u << 1)
#define SONDE_PID_TLS (1u << 2)
#define SONDE_PID_CONTEXTS (1u << 3)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 4096); /* the host's size wins (reused) */
	__type(key, __u32);
	__type(value, __u64);
} sonde_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* the host's size wins (reused) */
} events SEC(".maps");

/* tid -> runtime context key (a goroutine id ...).
 *
 * SDK 1.2: a value with SONDE_CTX_INDIRECT set is not a key but the address,
 * in the thread's own process, of a little-endian u64 holding the key
 * current on that thread (0: none); the host reads it at every capture.
 * For runtimes that switch contexts far more often than they do I/O
 * (virtual threads mounting on carrier threads): the runtime rewrites one
 * word of its own memory, and no probe fires per switch. Keys themselves
 * never have that bit set. Use it only when host->abi_minor >= 2. */
#define SONDE_CTX_INDIRECT (1ull << 63)
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} sonde_thread_ctx SEC(".maps");

/* Every record starts with this (the host's own record header). */
struct sonde_bpf_hdr {
	__u32 type;  /* a type you claimed */
	__u32 tgid;
	__u32 tid;
	__u32 fd;    /* or 0 */
	__u64 ts_ns; /* bpf_ktime_get_ns() */
};

static __always_inline __u8 sonde_pid_flags(__u32 tgid)
{
	__u32 k = tgid >> 3;
	__u64 *w = bpf_map_lookup_elem(&sonde_pids, &k);

	return w ? (__u8)(*w >> ((tgid & 7) * 8)) : 0;
}

static __always_inline int sonde_watched(__u32 tgid)
{
	return (sonde_pid_flags(tgid) & (SONDE_PID_WATCHED | SONDE_PID_PROVISIONAL)) != 0;
}

static __always_inline void sonde_hdr_fill(struct sonde_bpf_hdr *h, __u32 type, __u32 fd)
{
	__u64 id = bpf_get_current_pid_tgid();

	h->type = type;
	h->tgid = id >> 32;
	h->tid = (__u32)id;
	h->fd = fd;
	h->ts_ns = bpf_ktime_get_ns();
}

/* The context current on thread tid (0: none), through SONDE_CTX_INDIRECT
 * when the entry says so. Call it from the thread itself (the address is
 * in the current process). */
static __always_inline __u64 sonde_thread_ctx_get(__u32 tid)
{
	__u64 *v = bpf_map_lookup_elem(&sonde_thread_ctx, &tid);
	__u64 key = 0;

	if (!v)
		return 0;
	if (!(*v & SONDE_CTX_INDIRECT))
		return *v;
	if (bpf_probe_read_user(&key, sizeof(key), (const void *)(*v & ~SONDE_CTX_INDIRECT)))
		return 0;
	return key & SONDE_CTX_INDIRECT ? 0 : key;
}

/* The running context of this thread from now on (0: none). */
static __always_inline void sonde_thread_ctx_set(__u64 key)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (key)
		bpf_map_update_elem(&sonde_thread_ctx, &tid, &key, BPF_ANY);
	else
		bpf_map_delete_elem(&sonde_thread_ctx, &tid);
}

#endif /* SONDE_BPF_H */
