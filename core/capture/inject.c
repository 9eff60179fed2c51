/*
 * inject.c - opt-in traceparent injection, user-space side: load the
 * sockops and sk_msg programs only when a service asks for it, attach them
 * (the sockops program to the root of the cgroup v2 hierarchy, the sk_msg
 * program to the sockhash), and keep the kernel's table of what each
 * serving thread is serving (sonde_tid_trace).
 *
 * The one idea: injection changes bytes on the wire, so every step that
 * fails leaves it off and says why in one line; the rest of capture does
 * not depend on it. The kernel side is bpf/sonde_inject.bpf.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>

#include "capture/capture_priv.h"
#include "capture.skel.h"

#define CGROUP2_MOUNT "/run/sonde/cgroup2"

void inject_prepare(struct capture *c, bool on)
{
	struct capture_bpf *skel = c->skel;

	c->inject = on;
	if (on)
		return;
	bpf_program__set_autoload(skel->progs.sonde_inject_sockops, false);
	bpf_program__set_autoload(skel->progs.sonde_inject_msg, false);
	bpf_map__set_autocreate(skel->maps.inj_state, false);
	bpf_map__set_autocreate(skel->maps.inj_pending, false);
	bpf_map__set_autocreate(skel->maps.inj_socks, false);
	bpf_map__set_autocreate(skel->maps.sonde_tid_trace, false);
}

/* The root of the cgroup v2 hierarchy: where it is mounted, or a mount of
 * our own. */
static int cgroup2_root(char *out, size_t n, char *err, size_t errlen)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	char dev[256], dir[512], type[64];
	struct statfs sf;

	while (f && fscanf(f, "%255s %511s %63s %*s %*d %*d\n", dev, dir, type) == 3) {
		if (!strcmp(type, "cgroup2")) {
			snprintf(out, n, "%s", dir);
			fclose(f);
			return 0;
		}
	}
	if (f)
		fclose(f);
	mkdir("/run/sonde", 0755);
	mkdir(CGROUP2_MOUNT, 0755);
	if (statfs(CGROUP2_MOUNT, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC) {
		snprintf(out, n, "%s", CGROUP2_MOUNT);
		return 0;
	}
	if (mount("cgroup2", CGROUP2_MOUNT, "cgroup2", 0, NULL)) {
		snprintf(err, errlen, "no cgroup v2 hierarchy mounted, and mounting one on %s failed: %s",
		         CGROUP2_MOUNT, strerror(errno));
		return -errno;
	}
	snprintf(out, n, "%s", CGROUP2_MOUNT);
	return 0;
}

int inject_attach(struct capture *c, char *err, size_t errlen)
{
	struct capture_bpf *skel = c->skel;
	char root[512];
	int cg, rc;

	if (!c->inject)
		return 0;
	rc = cgroup2_root(root, sizeof(root), err, errlen);
	if (rc)
		return rc;
	cg = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0) {
		rc = -errno;
		snprintf(err, errlen, "opening the cgroup v2 root %s: %s", root, strerror(errno));
		return rc;
	}
	c->inject_cgroup = bpf_program__attach_cgroup(skel->progs.sonde_inject_sockops, cg);
	close(cg);
	if (!c->inject_cgroup) {
		rc = -errno;
		snprintf(err, errlen, "attaching the sockops program to %s: %s", root, strerror(errno));
		return rc;
	}
	rc = bpf_prog_attach(bpf_program__fd(skel->progs.sonde_inject_msg),
	                     bpf_map__fd(skel->maps.inj_socks), BPF_SK_MSG_VERDICT, 0);
	if (rc) {
		rc = -errno;
		snprintf(err, errlen, "attaching the sk_msg program to its sockhash: %s",
		         strerror(errno));
		bpf_link__destroy(c->inject_cgroup);
		c->inject_cgroup = NULL;
		return rc;
	}
	c->inject_attached = true;
	return 0;
}

void inject_detach(struct capture *c)
{
	if (!c->skel)
		return;
	/* New connections stop joining first; the map's sockets leave with it. */
	if (c->inject_cgroup) {
		bpf_link__destroy(c->inject_cgroup);
		c->inject_cgroup = NULL;
	}
	if (c->inject_attached) {
		bpf_prog_detach2(bpf_program__fd(c->skel->progs.sonde_inject_msg),
		                 bpf_map__fd(c->skel->maps.inj_socks), BPF_SK_MSG_VERDICT);
		c->inject_attached = false;
	}
}

bool capture_injecting(const struct capture *c)
{
	return c && c->inject_attached;
}

int capture_trace_ctx(struct capture *c, uint32_t tid, const struct sonde_trace_ctx *t)
{
	if (!c || !c->inject_attached)
		return -ENOTSUP;
	if (bpf_map__update_elem(c->skel->maps.sonde_tid_trace, &tid, sizeof(tid), t, sizeof(*t),
	                         BPF_ANY))
		return -errno;
	return 0;
}
