/*
 * plugin_bpf.c - BPF objects that runtime plugins ship (SDK 1.1 bpf_load,
 * bpf_uprobe, bpf_map_fd), loaded next to the capture object.
 *
 * The one idea: a plugin's object declares the host's shared maps with the
 * same definitions (sdk/include/sonde/bpf.h); before loading it, every map
 * whose name is one of them is pointed at the capture object's own map
 * (bpf_map__reuse_fd), after checking type, key and value sizes. So the
 * plugin's programs read the host's pid table and write into the host's
 * ring buffer, and the host's capture reads the thread contexts they keep.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "capture/capture.h"
#include "capture/capture_priv.h"
#include "capture.skel.h"

#define SONDE_BPF_VERSION 1 /* sdk/include/sonde/bpf.h */

struct plugin_link {
	struct bpf_link *link;
	uint32_t pid;
};

struct capture_obj {
	struct bpf_object *obj;
	struct plugin_link *links;
	size_t n_links, cap_links;
	char name[64];
};

static struct bpf_map *host_map(struct capture *c, const char *name)
{
	if (!strcmp(name, "sonde_pids"))
		return c->skel->maps.sonde_pids;
	if (!strcmp(name, "events"))
		return c->skel->maps.events;
	if (!strcmp(name, "sonde_thread_ctx"))
		return c->skel->maps.sonde_thread_ctx;
	return NULL;
}

/* Point the object's declarations of shared maps at the host's maps. */
static int reuse_shared(struct capture *c, struct bpf_object *obj, char *err, size_t errlen)
{
	struct bpf_map *m;

	bpf_object__for_each_map(m, obj) {
		struct bpf_map *h = host_map(c, bpf_map__name(m));
		int rc;

		if (!h)
			continue;
		if (bpf_map__type(m) != bpf_map__type(h) ||
		    bpf_map__key_size(m) != bpf_map__key_size(h) ||
		    bpf_map__value_size(m) != bpf_map__value_size(h)) {
			snprintf(err, errlen, "map '%s' is not declared like the host's (sonde/bpf.h)",
			         bpf_map__name(m));
			return -EINVAL;
		}
		rc = bpf_map__reuse_fd(m, bpf_map__fd(h));
		if (rc) {
			snprintf(err, errlen, "map '%s': cannot share the host's: %s",
			         bpf_map__name(m), strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* The object's sonde_bpf_version (a .rodata variable found through the
 * object's BTF), or 0 when absent. */
static uint32_t object_version(struct bpf_object *obj)
{
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_type *sec;
	const struct btf_var_secinfo *vs;
	struct bpf_map *m;
	int id;

	if (!btf || (id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC)) < 0)
		return 0;
	sec = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(sec);
	for (unsigned i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *v = btf__type_by_id(btf, vs->type);
		size_t sz = 0;
		const uint8_t *data;

		if (strcmp(btf__name_by_offset(btf, v->name_off), "sonde_bpf_version"))
			continue;
		bpf_object__for_each_map(m, obj) {
			if (!strstr(bpf_map__name(m), ".rodata"))
				continue;
			data = bpf_map__initial_value(m, &sz);
			if (data && vs->offset + sizeof(uint32_t) <= sz) {
				uint32_t ver;

				memcpy(&ver, data + vs->offset, sizeof(ver));
				return ver;
			}
		}
	}
	return 0;
}

int capture_obj_load(struct capture *c, const char *name, const void *bytes, size_t len,
                     struct capture_obj **out, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = name);
	struct capture_obj *o;
	int rc;

	*out = NULL;
	if (!c || !c->skel) {
		snprintf(err, errlen, "no kernel capture (replay)");
		return -ENOTSUP;
	}
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	snprintf(o->name, sizeof(o->name), "%s", name ? name : "plugin");
	o->obj = bpf_object__open_mem(bytes, len, &oo);
	if (!o->obj) {
		rc = -errno;
		snprintf(err, errlen, "not a BPF object: %s", strerror(errno));
		goto fail;
	}
	if (object_version(o->obj) != SONDE_BPF_VERSION) {
		rc = -EINVAL;
		snprintf(err, errlen, "built for sonde/bpf.h version %u, this agent has %u",
		         object_version(o->obj), SONDE_BPF_VERSION);
		goto fail;
	}
	rc = reuse_shared(c, o->obj, err, errlen);
	if (rc)
		goto fail;
	rc = bpf_object__load(o->obj);
	if (rc) {
		snprintf(err, errlen, "the kernel refused it: %s (SONDE_DEBUG_BPF=1 shows the "
		         "verifier's log)", strerror(-rc));
		goto fail;
	}
	*out = o;
	return 0;
fail:
	bpf_object__close(o->obj);
	free(o);
	return rc;
}

int capture_obj_uprobe(struct capture_obj *o, uint32_t pid, const char *prog, const char *path,
                       const char *symbol, uint64_t offset, bool retprobe, uint64_t cookie)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .retprobe = retprobe, .bpf_cookie = cookie,
	            .func_name = symbol);
	struct bpf_program *p;
	struct bpf_link *l;

	if (!o || !prog || !path)
		return -EINVAL;
	p = bpf_object__find_program_by_name(o->obj, prog);
	if (!p)
		return -ENOENT;
	if (o->n_links == o->cap_links) {
		size_t ncap = o->cap_links ? o->cap_links * 2 : 16;
		struct plugin_link *n = realloc(o->links, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		o->links = n;
		o->cap_links = ncap;
	}
	l = bpf_program__attach_uprobe_opts(p, pid ? (pid_t)pid : -1, path, (size_t)offset, &uo);
	if (!l)
		return -errno;
	o->links[o->n_links].link = l;
	o->links[o->n_links].pid = pid;
	o->n_links++;
	return 0;
}

void capture_obj_detach_pid(struct capture_obj *o, uint32_t pid)
{
	size_t j = 0;

	if (!o || !pid)
		return;
	for (size_t i = 0; i < o->n_links; i++) {
		if (o->links[i].pid == pid)
			bpf_link__destroy(o->links[i].link);
		else
			o->links[j++] = o->links[i];
	}
	o->n_links = j;
}

int capture_obj_map_fd(struct capture_obj *o, const char *map)
{
	struct bpf_map *m = o && map ? bpf_object__find_map_by_name(o->obj, map) : NULL;

	return m ? bpf_map__fd(m) : -ENOENT;
}

void capture_obj_free(struct capture_obj *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n_links; i++)
		bpf_link__destroy(o->links[i].link);
	free(o->links);
	bpf_object__close(o->obj);
	free(o);
}
