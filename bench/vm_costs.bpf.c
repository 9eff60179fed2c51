/* vm_costs.bpf.c - the smallest programs, to price what the machine charges
 * for the mechanisms sonde's capture stands on (bench/vm_costs.sh). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} ring SEC(".maps");

struct rec {
	char b[256];
};

/* Does nothing: what running a syscall tracepoint program costs. */
SEC("tracepoint/syscalls/sys_exit_getppid")
int empty_tp(void *ctx)
{
	return 0;
}

/* Reserves a ring-buffer record and gives it back: the ring's lock. */
SEC("tracepoint/syscalls/sys_exit_getppid")
int ring_tp(void *ctx)
{
	struct rec *r = bpf_ringbuf_reserve(&ring, sizeof(*r), 0);

	if (r)
		bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("uprobe")
int empty_uprobe(void *ctx)
{
	return 0;
}

SEC("uretprobe")
int empty_uretprobe(void *ctx)
{
	return 0;
}
