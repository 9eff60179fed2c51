/*
 * node_bpf.c - node.bpf.c's object, twice: the host loads it (host->bpf_load)
 * and so shares its own maps with it (sonde_pids, events, sonde_thread_ctx);
 * the plugin opens it again with libbpf, points every map of that copy at
 * the host copy's map of the same name (host->bpf_map_fd), loads it and
 * attaches its syscall tracepoints and runs its task iterator.
 *
 * The one idea: the host API attaches uprobes only; tracepoints cost a
 * fraction of a uprobe (no trap) and an iterator is the only way to read
 * another process's sigaction, so the plugin attaches them itself, on maps
 * that stay the host's. When the host offers tracepoints and iterators
 * (see README, NEEDS FROM CORE), the second copy goes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "node_bpf.h"

#define NODE_MAX_LINKS 16

struct node_bpf {
	struct sonde_bpf *host_copy;
	struct bpf_object *obj;
	struct bpf_link *links[NODE_MAX_LINKS];
	size_t nlinks;
	struct bpf_program *iter;
	int procs_fd, stats_fd;
};

static int reuse_maps(const struct sonde_host_api *host, struct node_bpf *b, char *why,
		      size_t cap)
{
	struct bpf_map *m;

	bpf_object__for_each_map(m, b->obj) {
		const char *name = bpf_map__name(m);
		int fd;

		if (!name || name[0] == '.' || strchr(name, '.'))
			continue; /* .rodata and friends: this copy's own */
		fd = host->bpf_map_fd(b->host_copy, name);
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

static int attach_tracepoints(struct node_bpf *b, char *why, size_t cap)
{
	struct bpf_program *p;

	bpf_object__for_each_program(p, b->obj) {
		const char *sec = bpf_program__section_name(p);
		struct bpf_link *l;

		if (strncmp(sec, "tracepoint/", 11))
			continue;
		if (b->nlinks == NODE_MAX_LINKS) {
			snprintf(why, cap, "too many programs");
			return -1;
		}
		l = bpf_program__attach(p);
		if (!l) {
			snprintf(why, cap, "%s not attached: %s", sec, strerror(errno));
			return -1;
		}
		b->links[b->nlinks++] = l;
	}
	return 0;
}

struct node_bpf *node_bpf_open(const struct sonde_host_api *host,
			       struct sonde_plugin_handle *self, const void *obj, size_t len,
			       char *why, size_t cap)
{
	struct sonde_bpf_opts ho = {
		.struct_size = sizeof(ho), .name = "node", .obj = obj, .obj_len = len,
	};
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "node_tp");
	struct node_bpf *b = calloc(1, sizeof(*b));
	int rc;

	if (!b) {
		snprintf(why, cap, "out of memory");
		return NULL;
	}
	rc = host->bpf_load(self, &ho, &b->host_copy);
	if (rc != SONDE_OK) {
		snprintf(why, cap, "the host did not load the BPF object (%s)", host->strerror(rc));
		free(b);
		return NULL;
	}
	b->obj = bpf_object__open_mem(obj, len, &oo);
	if (!b->obj) {
		snprintf(why, cap, "the BPF object does not open: %s", strerror(errno));
		free(b);
		return NULL;
	}
	if (reuse_maps(host, b, why, cap))
		goto fail;
	b->iter = bpf_object__find_program_by_name(b->obj, "node_sigusr1");
	if (b->iter)
		bpf_program__set_autoattach(b->iter, false);
	if ((rc = bpf_object__load(b->obj))) {
		snprintf(why, cap, "the kernel refused the BPF programs: %s", strerror(-rc));
		goto fail;
	}
	if (attach_tracepoints(b, why, cap))
		goto fail;
	b->procs_fd = bpf_object__find_map_fd_by_name(b->obj, "node_procs");
	b->stats_fd = bpf_object__find_map_fd_by_name(b->obj, "node_stats");
	if (b->procs_fd < 0 || !b->iter) {
		snprintf(why, cap, "the BPF object lacks node_procs or node_sigusr1");
		goto fail;
	}
	return b;
fail:
	node_bpf_close(b);
	return NULL;
}

void node_bpf_close(struct node_bpf *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->nlinks; i++)
		bpf_link__destroy(b->links[i]);
	bpf_object__close(b->obj);
	free(b);
}

/* Run the iterator (limited to pid when the kernel can) and keep the
 * record of pid's main thread. */
static int run_iter(struct node_bpf *b, uint32_t pid, int filtered, struct node_sig *out)
{
	union bpf_iter_link_info li;
	LIBBPF_OPTS(bpf_iter_attach_opts, io);
	struct bpf_link *l;
	struct node_sig rec[64];
	int fd, found = 0;

	memset(&li, 0, sizeof(li));
	if (filtered) {
		li.task.pid = pid;
		io.link_info = &li;
		io.link_info_len = sizeof(li);
	}
	l = bpf_program__attach_iter(b->iter, &io);
	if (!l)
		return -1;
	fd = bpf_iter_create(bpf_link__fd(l));
	if (fd < 0) {
		bpf_link__destroy(l);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (size_t i = 0; i + 1 <= (size_t)n / sizeof(rec[0]); i++) {
			if (rec[i].tgid == pid && rec[i].tid == pid) {
				*out = rec[i];
				found = 1;
			}
		}
	}
	close(fd);
	bpf_link__destroy(l);
	if (!found)
		errno = ESRCH;
	return found ? 0 : -1;
}

int node_bpf_sig(struct node_bpf *b, uint32_t pid, struct node_sig *out)
{
	if (run_iter(b, pid, 1, out) == 0)
		return 0;
	if (errno == ESRCH)
		return -1;
	return run_iter(b, pid, 0, out); /* a kernel without task filters (< 6.1) */
}

int node_bpf_uprobe(struct node_bpf *b, const struct sonde_host_api *host, uint32_t pid,
		    const char *prog, const char *path, const char *symbol)
{
	struct sonde_uprobe_opts o = {
		.struct_size = sizeof(o),
		.pid = pid,
		.prog = prog,
		.path = path,
		.symbol = symbol,
	};

	return host->bpf_uprobe(b->host_copy, &o);
}

int node_bpf_proc_set(struct node_bpf *b, uint32_t pid, const struct node_proc *p)
{
	return bpf_map_update_elem(b->procs_fd, &pid, p, BPF_ANY);
}

int node_bpf_proc_del(struct node_bpf *b, uint32_t pid)
{
	return bpf_map_delete_elem(b->procs_fd, &pid);
}

void node_bpf_stats(struct node_bpf *b, uint64_t out[NODE_ST_COUNT])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *v;

	memset(out, 0, NODE_ST_COUNT * sizeof(out[0]));
	if (!b || b->stats_fd < 0 || ncpu <= 0)
		return;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return;
	for (uint32_t i = 0; i < NODE_ST_COUNT; i++) {
		if (bpf_map_lookup_elem(b->stats_fd, &i, v))
			continue;
		for (int c = 0; c < ncpu; c++)
			out[i] += v[c];
	}
	free(v);
}
