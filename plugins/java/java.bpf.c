// SPDX-License-Identifier: GPL-2.0
/*
 * java.bpf.c - the Java plugin's kernel side: one uprobe, on the C
 * library's pwrite64 in each JVM the plugin attached its agent to
 * (pid-filtered by the host). Loaded by the host (host->bpf_load), which
 * reuses its own maps for the shared ones (sonde/bpf.h: sonde_pids,
 * events).
 *
 * The one idea: the agent in the JVM writes every message with
 * pwrite(fd of /dev/null, message, length, token), the token being a
 * random 62-bit offset the plugin chose for that JVM (java_cfgs). A call
 * with any other offset is the application's own and is left alone at the
 * cost of one map lookup; a call with the token is copied, bounded, into a
 * record behind the host's header, with the calling thread's id and the
 * time. What the message means is read in user space (java_msg.c).
 *
 * Runtime contexts (java_cfg.flags JAVA_CFG_CTX): the kernel keeps
 * sonde_thread_ctx[tid] for every thread of the JVM, so the host's capture
 * stamps its socket data with it. A thread's own key is JAVA_KEY_THREAD |
 * tid, set when the thread is created (task_newtask) and removed when it
 * exits; the agent's BEGIN and END messages (a handed-off task starts or
 * ends on the writing thread) set it to the task's key and back. These two
 * tracepoints are attached by the plugin itself (java_tp.c): the host
 * attaches uprobes only.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <sonde/bpf.h>

#include "java_rec.h"

#define CLONE_THREAD_FLAG 0x00010000ull

char LICENSE[] SEC("license") = "GPL";

_Static_assert(sizeof(struct java_rec_hdr) == sizeof(struct sonde_bpf_hdr), "record header");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct java_cfg);
} java_cfgs SEC(".maps");

struct java_scratch {
	__u8 raw[sizeof(struct java_rec) + JAVA_MSG_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct java_scratch);
} java_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, JAVA_ST_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} java_stats SEC(".maps");

static __always_inline void java_stat(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&java_stats, &slot);

	if (v)
		*v += 1;
}

/* Wake-ups batched like the host's own records (bpf/sonde_conn.bpf.h): the
 * agent drains the ring at least every 100 ms, so a record only wakes it
 * when the ring is filling up (more than a sixteenth of it waiting). */
static __always_inline __u64 java_rb_flags(void)
{
	__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);

	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > size / 16 ? BPF_RB_FORCE_WAKEUP
									   : BPF_RB_NO_WAKEUP;
}

static __always_inline __u64 rd_key(const __u8 *p)
{
	__u64 v;

	__builtin_memcpy(&v, p, sizeof(v)); /* little-endian, like the agent */
	return v;
}

/* A BEGIN or END message: make its key the thread's context. A SLOT
 * message: the thread's context is read from then on from the word at the
 * address it gives (SONDE_CTX_INDIRECT, a carrier of virtual threads). */
static __always_inline void apply_key(struct java_rec *rec, __u32 len)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u8 kind = rec->data[JAVA_MSG_OFF_KIND];
	__u64 key;

	if (len == JAVA_MSG_HDR && kind == JAVA_MSG_KIND_SLOT) {
		key = rd_key(rec->data + JAVA_MSG_OFF_KEY);
		if (!key || key >= (1ull << 47) || (key & 7))
			return;
		key |= SONDE_CTX_INDIRECT;
		bpf_map_update_elem(&sonde_thread_ctx, &tid, &key, BPF_ANY);
		java_stat(JAVA_ST_KEYED);
		return;
	}
	if (len != JAVA_MSG_HDR || (kind != JAVA_MSG_KIND_BEGIN && kind != JAVA_MSG_KIND_END))
		return;
	key = rd_key(rec->data + (kind == JAVA_MSG_KIND_BEGIN ? JAVA_MSG_OFF_KEY : JAVA_MSG_OFF_KEY2));
	if (kind == JAVA_MSG_KIND_END && !key)
		key = JAVA_KEY_THREAD | tid;
	if ((key & JAVA_KEY_TAG) != JAVA_KEY_TASK && (key & JAVA_KEY_TAG) != JAVA_KEY_THREAD)
		return;
	bpf_map_update_elem(&sonde_thread_ctx, &tid, &key, BPF_ANY);
	java_stat(JAVA_ST_KEYED);
}

/* pwrite64(int fd, const void *buf, size_t count, off_t offset) entry. */
SEC("uprobe")
int java_pwrite(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, zero = 0;
	struct java_cfg *cfg = bpf_map_lookup_elem(&java_cfgs, &tgid);
	struct java_scratch *sc;
	struct java_rec *rec;
	__u64 count, buf;
	__u32 len;

	if (!cfg || PT_REGS_PARM4(ctx) != cfg->token)
		return 0;
	count = PT_REGS_PARM3(ctx);
	buf = PT_REGS_PARM2(ctx);
	if (count < JAVA_MSG_HDR || count > JAVA_MSG_MAX || !buf) {
		java_stat(JAVA_ST_BAD);
		return 0;
	}
	sc = bpf_map_lookup_elem(&java_scratch, &zero);
	if (!sc)
		return 0;
	rec = (struct java_rec *)sc->raw;
	sonde_hdr_fill((struct sonde_bpf_hdr *)&rec->h, cfg->rec_base + JAVA_REC_MSG,
		       (__u32)PT_REGS_PARM1(ctx));
	len = (__u32)count;
	if (len > JAVA_MSG_MAX)
		len = JAVA_MSG_MAX;
	rec->len = len;
	if (bpf_probe_read_user(rec->data, len, (const void *)buf))
		len = 0;
	rec->cap_len = len;
	rec->ctx = 0;
	if (len && (cfg->flags & JAVA_CFG_CTX)) {
		apply_key(rec, len);
		rec->ctx = sonde_thread_ctx_get((__u32)bpf_get_current_pid_tgid());
	}
	if (bpf_ringbuf_output(&events, rec, sizeof(*rec) + len, java_rb_flags())) {
		java_stat(JAVA_ST_LOST);
		return 0;
	}
	java_stat(JAVA_ST_MSG);
	return 0;
}

/* A thread created in a JVM with contexts on gets its own key before it
 * runs (the tracepoint fires in the creating thread). */
SEC("tracepoint/task/task_newtask")
int java_newtask(struct trace_event_raw_task_newtask *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, tid;
	struct java_cfg *cfg = bpf_map_lookup_elem(&java_cfgs, &tgid);
	__u64 key;

	if (!cfg || !(cfg->flags & JAVA_CFG_CTX) || !(ctx->clone_flags & CLONE_THREAD_FLAG))
		return 0;
	tid = (__u32)ctx->pid;
	key = JAVA_KEY_THREAD | tid;
	bpf_map_update_elem(&sonde_thread_ctx, &tid, &key, BPF_ANY);
	java_stat(JAVA_ST_THREADS);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int java_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct java_cfg *cfg = bpf_map_lookup_elem(&java_cfgs, &tgid);

	if (cfg && (cfg->flags & JAVA_CFG_CTX))
		bpf_map_delete_elem(&sonde_thread_ctx, &tid);
	return 0;
}
