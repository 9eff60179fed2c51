// SPDX-License-Identifier: GPL-2.0
/*
 * getaddrinfo.bpf.c - the kernel side of the runtime-plugin template: a
 * uprobe and a uretprobe on libc's getaddrinfo() in the processes sonde
 * watches. Each finished call becomes one record in the host's ring
 * buffer; the plugin (getaddrinfo.c) counts them.
 *
 * The one idea: this object declares the host's shared maps through
 * <sonde/bpf.h> (sonde_pids, events, sonde_thread_ctx) and the host, when
 * it loads the object (host->bpf_load), points those declarations at its
 * own maps. So `events` here IS the agent's ring buffer, and sonde_pids its
 * table of watched processes. Everything else (gai_start, gai_stats, the
 * programs) is this plugin's own.
 *
 * CO-RE: compiled once against the vmlinux.h of the build machine (bpftool
 * btf dump file /sys/kernel/btf/vmlinux format c); libbpf relocates it for
 * the running kernel when the host loads it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <sonde/bpf.h>

#include "getaddrinfo.h"

char LICENSE[] SEC("license") = "GPL";

_Static_assert(sizeof(struct gai_hdr) == sizeof(struct sonde_bpf_hdr), "record header");

/* When the running call started, per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u64);
} gai_start SEC(".maps");

/* What the programs did (read by the plugin with host->bpf_map_fd). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GAI_ST_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} gai_stats SEC(".maps");

static __always_inline void gai_stat(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&gai_stats, &slot);

	if (v)
		*v += 1;
}

/* Ring-buffer wake-ups: the agent drains the ring on its own at least
 * every 100 ms, so a record only wakes it when the ring is filling up. A
 * wake-up per record costs more than the rest of the probe. */
static __always_inline __u64 gai_rb_flags(void)
{
	__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);

	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > size / 16 ? BPF_RB_FORCE_WAKEUP
									   : BPF_RB_NO_WAKEUP;
}

SEC("uprobe")
int gai_enter(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), now = bpf_ktime_get_ns();
	__u32 tid = (__u32)id;

	/* The probe is attached for one process; the host may stop watching
	 * it before the plugin hears that it went. */
	if (!sonde_watched(id >> 32))
		return 0;
	bpf_map_update_elem(&gai_start, &tid, &now, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int gai_return(struct pt_regs *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *t0 = bpf_map_lookup_elem(&gai_start, &tid);
	struct gai_rec r = {};

	if (!t0)
		return 0; /* the call began before the probe was attached */
	sonde_hdr_fill((struct sonde_bpf_hdr *)&r.h, GAI_REC_CALL, 0);
	r.duration_ns = r.h.ts_ns - *t0;
	r.rc = (__s32)PT_REGS_RC(ctx);
	bpf_map_delete_elem(&gai_start, &tid);
	if (bpf_ringbuf_output(&events, &r, sizeof(r), gai_rb_flags()))
		gai_stat(GAI_ST_LOST);
	else
		gai_stat(GAI_ST_RECORDS);
	return 0;
}
