/*
 * features.c - what the kernel offers, probed without loading the capture
 * programs: BTF, tracefs, syscall tracepoints, raw tracepoints, ring
 * buffers, uprobes, and the optional accelerators (kprobes, fentry) sonde
 * never requires.
 *
 * The one idea: a feature counts as present only when the kernel says so
 * (a file exists, a program really loads), never from a version number.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/vfs.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "capture/capture.h"
#include "capture/capture_priv.h"

/* --- feature probes ----------------------------------------------------------- */

bool capture_is_fs(const char *dir, long magic)
{
	struct statfs s;

	return statfs(dir, &s) == 0 && (long)s.f_type == magic;
}

static bool capture_path_exists(const char *dir, const char *rel)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return access(path, F_OK) == 0;
}

/* fentry: true only if a two-instruction fentry program really loads and
 * attaches (to bpf_fentry_test1, which only BPF_PROG_TEST_RUN calls). */
static bool capture_probe_fentry(void)
{
	struct bpf_insn insns[2] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	struct btf *vmlinux = btf__load_vmlinux_btf();
	int id, prog_fd, link_fd;
	bool ok = false;

	if (!vmlinux)
		return false;
	id = btf__find_by_name_kind(vmlinux, "bpf_fentry_test1", BTF_KIND_FUNC);
	btf__free(vmlinux);
	if (id <= 0)
		return false;
	LIBBPF_OPTS(bpf_prog_load_opts, lo, .expected_attach_type = BPF_TRACE_FENTRY,
		    .attach_btf_id = (__u32)id);
	prog_fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "sonde_fentry", "GPL", insns, 2, &lo);
	if (prog_fd < 0)
		return false;
	link_fd = bpf_raw_tracepoint_open(NULL, prog_fd);
	if (link_fd >= 0) {
		ok = true;
		close(link_fd);
	}
	close(prog_fd);
	return ok;
}

int capture_probe_features(struct capture_features *f)
{
	if (!f)
		return -EINVAL;
	memset(f, 0, sizeof(*f));
	f->btf = access(CAPTURE_BTF_PATH, R_OK) == 0;
	if (capture_is_fs(CAPTURE_TRACEFS, TRACEFS_MAGIC))
		snprintf(f->tracefs, sizeof(f->tracefs), "%s", CAPTURE_TRACEFS);
	else if (capture_is_fs(CAPTURE_TRACEFS_OLD, TRACEFS_MAGIC))
		snprintf(f->tracefs, sizeof(f->tracefs), "%s", CAPTURE_TRACEFS_OLD);
	f->tracepoints = f->tracefs[0] &&
			 capture_path_exists(f->tracefs, "events/syscalls/sys_enter_read/id");
	f->raw_tp = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_RAW_TRACEPOINT, NULL) > 0;
	f->ringbuf = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL) > 0;
	f->uprobes = access("/sys/bus/event_source/devices/uprobe/type", R_OK) == 0 ||
		     (f->tracefs[0] && capture_path_exists(f->tracefs, "uprobe_events"));
	f->kprobes = access("/sys/bus/event_source/devices/kprobe/type", R_OK) == 0 ||
		     (f->tracefs[0] && capture_path_exists(f->tracefs, "kprobe_events"));
	f->fentry = f->btf && capture_probe_fentry();
	if (f->btf) {
		struct btf *vmlinux = btf__load_vmlinux_btf();

		f->rdonly_cast = vmlinux &&
		                 btf__find_by_name_kind(vmlinux, "bpf_rdonly_cast", BTF_KIND_FUNC) > 0;
		btf__free(vmlinux);
	}
	return 0;
}

