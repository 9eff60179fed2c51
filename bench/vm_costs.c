/*
 * vm_costs.c - what this machine charges for a syscall, a syscall
 * tracepoint program, a ring-buffer record and a uprobe hit, measured with
 * the smallest BPF programs (vm_costs.bpf.c). Prints one "VMCOST name value
 * unit" line per figure. Run as root: bench/vm_costs.sh builds and runs it.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CALLS 1000000
#define UCALLS 20000

__attribute__((noinline)) int vm_costs_target(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

static double now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static double syscall_ns(void)
{
	double t0 = now_ns();

	for (int i = 0; i < CALLS; i++)
		syscall(SYS_getppid);
	return (now_ns() - t0) / CALLS;
}

static double call_ns(void)
{
	volatile int s = 0;
	double t0 = now_ns();

	for (int i = 0; i < UCALLS; i++)
		s += vm_costs_target(i);
	return (now_ns() - t0) / UCALLS;
}

static int set_stats(int on)
{
	FILE *f = fopen("/proc/sys/kernel/bpf_stats_enabled", "w");

	if (!f)
		return -1;
	fprintf(f, "%d\n", on);
	return fclose(f);
}

static double run_ns(struct bpf_program *p)
{
	struct bpf_prog_info info = {0};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len) || !info.run_cnt)
		return -1;
	return (double)info.run_time_ns / info.run_cnt;
}

/* A program attached alone: the syscall loop's cost with it, and (stats on)
 * what bpf_stats says one run took. */
static int tp_row(struct bpf_object *o, const char *name, double *with, double *stat)
{
	struct bpf_program *p = bpf_object__find_program_by_name(o, name);
	struct bpf_link *l = p ? bpf_program__attach(p) : NULL;

	if (!l)
		return -1;
	set_stats(0);
	*with = syscall_ns();
	set_stats(1);
	syscall_ns();
	*stat = run_ns(p);
	set_stats(0);
	bpf_link__destroy(l);
	return 0;
}

static long target_offset(void)
{
	/* The function's file offset in this executable, from its address
	 * and the mapping that holds it. */
	unsigned long a = (unsigned long)vm_costs_target, lo, hi, off;
	char line[512], perm[8];
	FILE *f = fopen("/proc/self/maps", "r");
	long r = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %7s %lx", &lo, &hi, perm, &off) == 4 && a >= lo &&
		    a < hi) {
			r = (long)(a - lo + off);
			break;
		}
	fclose(f);
	return r;
}

static double uprobe_row(struct bpf_object *o, long off, int enter, int ret)
{
	struct bpf_link *a = NULL, *b = NULL;
	double t;

	if (enter)
		a = bpf_program__attach_uprobe(bpf_object__find_program_by_name(o, "empty_uprobe"),
					       false, 0, "/proc/self/exe", off);
	if (ret)
		b = bpf_program__attach_uprobe(bpf_object__find_program_by_name(o, "empty_uretprobe"),
					       true, 0, "/proc/self/exe", off);
	if ((enter && !a) || (ret && !b))
		return -1;
	t = call_ns();
	bpf_link__destroy(a);
	bpf_link__destroy(b);
	return t;
}

int main(int argc, char **argv)
{
	struct bpf_object *o;
	double bare, with, stat, ring_with, ring_stat, call, u1, u2;
	long off;

	if (argc != 2) {
		fprintf(stderr, "usage: vm_costs OBJECT.bpf.o\n");
		return 2;
	}
	libbpf_set_print(NULL);
	o = bpf_object__open_file(argv[1], NULL);
	if (!o || bpf_object__load(o)) {
		fprintf(stderr, "vm_costs: cannot load %s (root, BPF, tracefs?)\n", argv[1]);
		return 1;
	}
	bare = syscall_ns();
	if (tp_row(o, "empty_tp", &with, &stat) || tp_row(o, "ring_tp", &ring_with, &ring_stat)) {
		fprintf(stderr, "vm_costs: cannot attach the syscall tracepoint programs\n");
		return 1;
	}
	printf("VMCOST syscall_getppid %.0f ns\n", bare);
	printf("VMCOST tracepoint_empty_added %.0f ns\n", with - bare);
	printf("VMCOST tracepoint_empty_bpf_stats %.0f ns\n", stat);
	printf("VMCOST ringbuf_reserve_bpf_stats %.0f ns\n", ring_stat - stat);
	off = target_offset();
	call = call_ns();
	u1 = off > 0 ? uprobe_row(o, off, 1, 0) : -1;
	u2 = off > 0 ? uprobe_row(o, off, 1, 1) : -1;
	if (u1 < 0 || u2 < 0) {
		fprintf(stderr, "vm_costs: cannot attach the uprobes\n");
		return 1;
	}
	printf("VMCOST uprobe_hit %.0f ns\n", u1 - call);
	printf("VMCOST uprobe_and_uretprobe_hit %.0f ns\n", u2 - call);
	bpf_object__close(o);
	return 0;
}
