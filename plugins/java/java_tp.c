/*
 * java_tp.c - java.bpf.c's tracepoints (task_newtask, sched_process_exit),
 * attached on a second copy of the object: the host loads the object and
 * attaches uprobes only, so the plugin opens the same bytes again with
 * libbpf, points every map of that copy at the host copy's map of the same
 * name (host->bpf_map_fd), loads it and attaches the two tracepoints.
 *
 * The one idea: both copies share every map, so the tracepoints keep the
 * host's sonde_thread_ctx for the JVMs listed in the host copy's
 * java_cfgs. When the host offers tracepoints, the second copy goes (see
 * README, NEEDS FROM CORE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "java_tp.h"

#define JAVA_TP_LINKS 4

struct java_tp {
	struct bpf_object *obj;
	struct bpf_link *links[JAVA_TP_LINKS];
	size_t nlinks;
};

static int reuse_maps(const struct sonde_host_api *host, struct sonde_bpf *hc, struct java_tp *t,
		      char *why, size_t cap)
{
	struct bpf_map *m;

	bpf_object__for_each_map(m, t->obj) {
		const char *name = bpf_map__name(m);
		int fd;

		if (!name || name[0] == '.' || strchr(name, '.'))
			continue; /* .rodata and friends: this copy's own */
		fd = host->bpf_map_fd(hc, name);
		if (fd < 0) {
			snprintf(why, cap, "the host's copy has no map %s", name);
			return -1;
		}
		if (bpf_map__reuse_fd(m, fd)) {
			snprintf(why, cap, "map %s cannot be shared: %s", name, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int attach(struct java_tp *t, char *why, size_t cap)
{
	struct bpf_program *p;

	bpf_object__for_each_program(p, t->obj) {
		const char *sec = bpf_program__section_name(p);
		struct bpf_link *l;

		if (strncmp(sec, "tracepoint/", 11))
			continue;
		if (t->nlinks == JAVA_TP_LINKS) {
			snprintf(why, cap, "too many programs");
			return -1;
		}
		l = bpf_program__attach(p);
		if (!l) {
			snprintf(why, cap, "%s not attached: %s", sec, strerror(errno));
			return -1;
		}
		t->links[t->nlinks++] = l;
	}
	return t->nlinks ? 0 : (snprintf(why, cap, "no tracepoint program"), -1);
}

struct java_tp *java_tp_open(const struct sonde_host_api *host, struct sonde_bpf *host_copy,
			     const void *obj, size_t len, char *why, size_t cap)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "java_tp");
	struct java_tp *t = calloc(1, sizeof(*t));
	struct bpf_program *p;
	int rc;

	if (!t) {
		snprintf(why, cap, "out of memory");
		return NULL;
	}
	t->obj = bpf_object__open_mem(obj, len, &oo);
	if (!t->obj) {
		snprintf(why, cap, "the BPF object does not open: %s", strerror(errno));
		free(t);
		return NULL;
	}
	if (reuse_maps(host, host_copy, t, why, cap))
		goto fail;
	bpf_object__for_each_program(p, t->obj)
		if (strncmp(bpf_program__section_name(p), "tracepoint/", 11))
			bpf_program__set_autoload(p, false); /* the uprobe: the host copy's */
	if ((rc = bpf_object__load(t->obj))) {
		snprintf(why, cap, "the kernel refused the tracepoints: %s", strerror(-rc));
		goto fail;
	}
	if (attach(t, why, cap))
		goto fail;
	return t;
fail:
	java_tp_close(t);
	return NULL;
}

void java_tp_close(struct java_tp *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nlinks; i++)
		bpf_link__destroy(t->links[i]);
	bpf_object__close(t->obj);
	free(t);
}
