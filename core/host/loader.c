/*
 * loader.c - plugin directories, ELF pre-check, ABI check, dlopen, registry.
 *
 * The one idea: a file earns trust in three steps (ELF says it exports our
 * entry symbol, the descriptor's ABI matches, init() succeeds) and every
 * refusal is recorded with a sentence an operator can act on. Nothing a
 * plugin file contains can make the agent exit.
 */
#define _GNU_SOURCE
#include "host/host_priv.h"
#include "host/loader.h"
#include "telemetry/intern.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

void plugins_init(struct plugin_registry *r, const struct sonde_host_api *host)
{
	memset(r, 0, sizeof(*r));
	r->host = host;
	r->inotify_fd = -1;
}

void plugins_add_dir(struct plugin_registry *r, const char *dir)
{
	for (size_t i = 0; i < r->n_dirs; i++)
		if (!strcmp(r->dirs[i], dir))
			return;
	char **n = realloc(r->dirs, (r->n_dirs + 1) * sizeof(*n));
	if (!n)
		return;
	r->dirs = n;
	r->dirs[r->n_dirs] = strdup(dir);
	if (r->dirs[r->n_dirs])
		r->n_dirs++;
}

static int elf_machine_self(void)
{
#if defined(__x86_64__)
	return EM_X86_64;
#elif defined(__aarch64__)
	return EM_AARCH64;
#elif defined(__i386__)
	return EM_386;
#else
	return -1;
#endif
}

static int dynsym_has(Elf *e, const char *want)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(e, scn))) {
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM || !sh.sh_entsize)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		if (!d)
			return 0;
		size_t n = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < n; i++) {
			GElf_Sym s;
			if (!gelf_getsym(d, (int)i, &s))
				break;
			if (s.st_shndx == SHN_UNDEF || GELF_ST_TYPE(s.st_info) != STT_FUNC)
				continue;
			const char *nm = elf_strptr(e, sh.sh_link, s.st_name);
			if (nm && !strcmp(nm, want))
				return 1;
		}
	}
	return 0;
}

int plugin_elf_check(const char *path, char *why, size_t whylen)
{
	int fd = -1, ret = -1;
	Elf *e = NULL;
	GElf_Ehdr eh;
	struct stat st;

	if (elf_version(EV_CURRENT) == EV_NONE) {
		snprintf(why, whylen, "libelf unusable: %s", elf_errmsg(-1));
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		goto out;
	}
	e = elf_begin(fd, ELF_C_READ, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF) {
		snprintf(why, whylen, "not an ELF shared object (is it a plugin? %s)",
		         e ? "wrong file type" : elf_errmsg(-1));
		goto out;
	}
	if (!gelf_getehdr(e, &eh)) {
		snprintf(why, whylen, "truncated or damaged ELF header: %s", elf_errmsg(-1));
		goto out;
	}
	if (eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
	    eh.e_machine != elf_machine_self()) {
		snprintf(why, whylen, "built for another architecture (ELF machine %u)", eh.e_machine);
		goto out;
	}
	if (eh.e_type != ET_DYN) {
		snprintf(why, whylen, "not a shared object (ELF type %u)", eh.e_type);
		goto out;
	}
	/* A truncated file has section headers pointing past its end. */
	if (eh.e_shoff + (GElf_Off)eh.e_shnum * eh.e_shentsize > (GElf_Off)st.st_size) {
		snprintf(why, whylen, "truncated: section table ends at byte %llu, file has %lld",
		         (unsigned long long)(eh.e_shoff + (GElf_Off)eh.e_shnum * eh.e_shentsize),
		         (long long)st.st_size);
		goto out;
	}
	if (!dynsym_has(e, SONDE_PLUGIN_ENTRY_SYMBOL)) {
		snprintf(why, whylen, "not a sonde plugin: it does not export %s()",
		         SONDE_PLUGIN_ENTRY_SYMBOL);
		goto out;
	}
	ret = 0;
out:
	if (e)
		elf_end(e);
	close(fd);
	return ret;
}

static int name_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 32)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return 0;
	return 1;
}

int plugin_abi_check(const struct sonde_plugin *d, char *why, size_t whylen)
{
	if (!d) {
		snprintf(why, whylen, "%s() returned NULL", SONDE_PLUGIN_ENTRY_SYMBOL);
		return -1;
	}
	if (d->abi_major != SONDE_ABI_MAJOR) {
		snprintf(why, whylen, "ABI mismatch: plugin is built for ABI %u.%u, this agent speaks %u.%u "
		         "(rebuild the plugin against this SDK)",
		         d->abi_major, d->abi_minor, SONDE_ABI_MAJOR, SONDE_ABI_MINOR);
		return -1;
	}
	if (d->abi_minor > SONDE_ABI_MINOR) {
		snprintf(why, whylen, "ABI too new: plugin needs ABI %u.%u, this agent has %u.%u "
		         "(upgrade sonde)",
		         d->abi_major, d->abi_minor, SONDE_ABI_MAJOR, SONDE_ABI_MINOR);
		return -1;
	}
	if (d->struct_size < offsetof(struct sonde_plugin, protocols) + sizeof(d->protocols)) {
		snprintf(why, whylen, "descriptor too small (%u bytes)", d->struct_size);
		return -1;
	}
	if (!name_ok(d->name)) {
		snprintf(why, whylen, "invalid plugin name (want 1-32 of [a-z0-9_-])");
		return -1;
	}
	for (size_t i = 0; d->protocols && d->protocols[i]; i++) {
		const struct sonde_protocol *p = d->protocols[i];
		if (p->struct_size < offsetof(struct sonde_protocol, conn_close) + sizeof(p->conn_close) ||
		    !name_ok(p->name) || !p->detect || !p->conn_open || !p->conn_data || !p->conn_close) {
			snprintf(why, whylen, "protocol #%zu is incomplete (needs name, detect, "
			         "conn_open, conn_data, conn_close)", i);
			return -1;
		}
		if (i >= 64) {
			snprintf(why, whylen, "too many protocols");
			return -1;
		}
	}
	return 0;
}

static struct sonde_plugin_handle *find_loaded(struct plugin_registry *r, const char *name)
{
	for (size_t i = 0; i < r->n_files; i++)
		if (r->files[i]->loaded && !strcmp(r->files[i]->desc->name, name))
			return r->files[i];
	return NULL;
}

static void register_protos(struct plugin_registry *r, struct sonde_plugin_handle *h)
{
	const struct sonde_plugin *d = h->desc;

	for (size_t i = 0; d->protocols && d->protocols[i]; i++) {
		if (plugins_find_proto(r, d->protocols[i]->name)) {
			fprintf(stderr, "sonde: plugin %s: protocol '%s' already provided, ignored\n",
			        d->name, d->protocols[i]->name);
			continue;
		}
		struct proto_entry **n = realloc(r->protos, (r->n_protos + 1) * sizeof(*n));
		struct proto_entry *e = malloc(sizeof(*e));
		if (n)
			r->protos = n;
		if (!n || !e) {
			free(e);
			return;
		}
		e->proto = d->protocols[i];
		e->plugin = h;
		r->protos[r->n_protos++] = e;
	}
	r->generation++;
}

/* Step three for a descriptor in hand: ABI, name clash, init. SONDE_OK,
 * SONDE_ERR_ABI (refused by a check) or init()'s error, with h->reason set. */
static int adopt(struct plugin_registry *r, struct sonde_plugin_handle *h,
                 const struct sonde_plugin *d)
{
	struct sonde_plugin_handle *other;
	int rc;

	if (plugin_abi_check(d, h->reason, sizeof(h->reason)))
		return SONDE_ERR_ABI;
	other = find_loaded(r, d->name);
	if (other) {
		snprintf(h->reason, sizeof(h->reason), "duplicate: plugin '%s' is already loaded from %s",
		         d->name, other->path);
		return SONDE_ERR_ABI;
	}
	h->desc = d;
	if (d->init) {
		rc = d->init(r->host, h, &h->state);
		if (rc) {
			snprintf(h->reason, sizeof(h->reason), "init() failed: %s",
			         r->host->strerror(rc));
			h->desc = NULL;
			return rc < 0 ? rc : SONDE_ERR_INVAL;
		}
	}
	h->loaded = true;
	h->reason[0] = 0;
	register_protos(r, h);
	if (r->owner)
		runtime_plugin_loaded(r->owner, h);
	return SONDE_OK;
}

/* Steps two and three: dlopen, entry, then adopt(). */
static void load_file(struct plugin_registry *r, struct sonde_plugin_handle *h)
{
	sonde_plugin_entry_fn entry;

	if (plugin_elf_check(h->path, h->reason, sizeof(h->reason)))
		return;
	h->dl = dlopen(h->path, RTLD_NOW | RTLD_LOCAL);
	if (!h->dl) {
		snprintf(h->reason, sizeof(h->reason), "dlopen failed: %s", dlerror());
		return;
	}
	intern_mappings_changed();
	*(void **)&entry = dlsym(h->dl, SONDE_PLUGIN_ENTRY_SYMBOL);
	if (!adopt(r, h, entry ? entry() : NULL))
		return;
	dlclose(h->dl);
	h->dl = NULL;
	intern_mappings_changed();
}

int plugins_load_builtin(struct plugin_registry *r, const struct sonde_plugin *desc,
                         const char *origin, char *why, size_t whylen)
{
	struct sonde_plugin_handle *h = calloc(1, sizeof(*h));
	struct sonde_plugin_handle **n;
	int rc;

	if (!h || !(h->path = strdup(origin ? origin : "(built in)"))) {
		free(h);
		snprintf(why, whylen, "out of memory");
		return SONDE_ERR_NOMEM;
	}
	h->reg = r;
	n = realloc(r->files, (r->n_files + 1) * sizeof(*n));
	if (!n) {
		free(h->path);
		free(h);
		snprintf(why, whylen, "out of memory");
		return SONDE_ERR_NOMEM;
	}
	r->files = n;
	r->files[r->n_files++] = h;
	rc = adopt(r, h, desc);
	if (rc)
		snprintf(why, whylen, "%s", h->reason);
	return rc;
}

static int seen(struct plugin_registry *r, const struct stat *st)
{
	for (size_t i = 0; i < r->n_files; i++)
		if (r->files[i]->dev == st->st_dev && r->files[i]->ino == st->st_ino &&
		    r->files[i]->mtime == st->st_mtime)
			return 1;
	return 0;
}

/* A refused file that changed (a copy finished, a rebuild) gets a new try:
 * drop the old verdict so the listing shows only the current one. */
static void forget_refused(struct plugin_registry *r, const char *path)
{
	for (size_t i = 0; i < r->n_files; i++) {
		struct sonde_plugin_handle *h = r->files[i];
		if (h->loaded || strcmp(h->path, path))
			continue;
		free(h->path);
		free(h);
		r->files[i] = r->files[--r->n_files];
		return;
	}
}

static int ends_with_so(const char *n)
{
	size_t l = strlen(n);
	return l > 3 && !strcmp(n + l - 3, ".so");
}

static int scan_dir(struct plugin_registry *r, const char *dir, bool verbose)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	int loaded = 0;

	if (!dp) {
		if (verbose && errno != ENOENT)
			fprintf(stderr, "sonde: plugin dir %s: %s\n", dir, strerror(errno));
		return 0;
	}
	while ((de = readdir(dp))) {
		char path[PATH_MAX];
		struct stat st;

		if (de->d_name[0] == '.' || !ends_with_so(de->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) || seen(r, &st))
			continue;
		forget_refused(r, path);
		struct sonde_plugin_handle *h = calloc(1, sizeof(*h));
		struct sonde_plugin_handle **n = realloc(r->files, (r->n_files + 1) * sizeof(*n));
		if (!h || !n) {
			free(h);
			if (n)
				r->files = n;
			break;
		}
		r->files = n;
		h->path = strdup(path);
		h->dev = st.st_dev;
		h->ino = st.st_ino;
		h->mtime = st.st_mtime;
		h->reg = r;
		r->files[r->n_files++] = h;
		load_file(r, h);
		if (h->loaded) {
			loaded++;
			if (verbose)
				fprintf(stderr, "sonde: loaded plugin %s %s from %s\n",
				        h->desc->name, h->desc->version ? h->desc->version : "?", path);
		} else if (verbose) {
			fprintf(stderr, "sonde: refused plugin %s: %s\n", path, h->reason);
		}
	}
	closedir(dp);
	return loaded;
}

int plugins_scan(struct plugin_registry *r, bool verbose)
{
	int n = 0;

	for (size_t i = 0; i < r->n_dirs; i++)
		n += scan_dir(r, r->dirs[i], verbose);
	return n;
}

int plugins_watch(struct plugin_registry *r)
{
	r->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (r->inotify_fd < 0)
		return -errno;
	for (size_t i = 0; i < r->n_dirs; i++)
		inotify_add_watch(r->inotify_fd, r->dirs[i], IN_CLOSE_WRITE | IN_MOVED_TO);
	return r->inotify_fd;
}

int plugins_on_notify(struct plugin_registry *r)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	if (r->inotify_fd < 0)
		return 0;
	while (read(r->inotify_fd, buf, sizeof(buf)) > 0)
		;
	return plugins_scan(r, true);
}

const struct proto_entry *plugins_find_proto(const struct plugin_registry *r, const char *name)
{
	for (size_t i = 0; i < r->n_protos; i++)
		if (!strcmp(r->protos[i]->proto->name, name))
			return r->protos[i];
	return NULL;
}

void plugins_list(const struct plugin_registry *r, FILE *out)
{
	fprintf(out, "%-12s %-10s %-6s %-16s %-8s %s\n", "NAME", "VERSION", "ABI", "PROTOCOLS",
	        "STATUS", "PATH / REASON");
	for (size_t i = 0; i < r->n_files; i++) {
		const struct sonde_plugin_handle *h = r->files[i];
		char protos[128] = "", abi[16] = "-";
		const struct sonde_plugin *d = h->desc;

		if (h->loaded) {
			snprintf(abi, sizeof(abi), "%u.%u", d->abi_major, d->abi_minor);
			for (size_t j = 0; d->protocols && d->protocols[j]; j++) {
				size_t l = strlen(protos);
				snprintf(protos + l, sizeof(protos) - l, "%s%s", l ? "," : "",
				         d->protocols[j]->name);
			}
			fprintf(out, "%-12s %-10s %-6s %-16s %-8s %s\n", d->name,
			        d->version ? d->version : "?", abi, protos[0] ? protos : "-",
			        "loaded", h->path);
		} else {
			const char *slash = strrchr(h->path, '/');
			fprintf(out, "%-12s %-10s %-6s %-16s %-8s %s: %s\n", slash ? slash + 1 : h->path,
			        "-", abi, "-", "refused", h->path, h->reason);
		}
	}
}

void plugins_free(struct plugin_registry *r)
{
	for (size_t i = 0; i < r->n_files; i++) {
		struct sonde_plugin_handle *h = r->files[i];
		/* fini first: the plugin's timers, BPF objects and claims are
		 * still valid in it (timer_stop, a last map read). */
		if (h->loaded && h->desc->fini)
			h->desc->fini(h->state);
		if (h->loaded && r->owner)
			runtime_plugin_unloading(r->owner, h);
		if (h->dl) {
			dlclose(h->dl);
			intern_mappings_changed();
		}
		free(h->path);
		free(h);
	}
	for (size_t i = 0; i < r->n_dirs; i++)
		free(r->dirs[i]);
	if (r->inotify_fd >= 0)
		close(r->inotify_fd);
	free(r->files);
	for (size_t i = 0; i < r->n_protos; i++)
		free(r->protos[i]);
	free(r->protos);
	free(r->dirs);
	memset(r, 0, sizeof(*r));
	r->inotify_fd = -1;
}
