/*
 * getaddrinfo.c - a complete, small sonde RUNTIME plugin, meant to be
 * copied: it ships its own BPF object (getaddrinfo.bpf.c, embedded in the
 * .so), probes libc's getaddrinfo() in every process sonde watches, and
 * turns the records its programs write into a counter:
 *
 *   example.getaddrinfo.calls{error.type}    (Prometheus:
 *                                             example_getaddrinfo_calls_total)
 *
 * A protocol plugin (../example.c) parses bytes the host captured; a
 * runtime plugin adds what the host cannot see by itself (a language
 * runtime's TLS, its threads of execution, a library call) with its own
 * probes. The shape of this file is the shape of every runtime plugin:
 *
 *   init()          once: check the host offers SDK 1.1, claim record
 *                   types, register instruments
 *   process_new()   per watched process: load the BPF object (the first
 *                   time), attach the probes to this process
 *   record()        per record of a claimed type: count it
 *   process_gone()  per process: read the object's own counters
 *   fini()          once: free what init() allocated
 *
 * The one idea needed to read it: the plugin never touches libbpf or the
 * ring buffer. It hands the object's bytes to the host (bpf_load), asks
 * the host to attach programs (bpf_uprobe, by symbol, per pid), and the
 * host's ring-buffer reader calls record() with each record whose type
 * this plugin claimed (records_claim). The host owns the object and its
 * links: a process's links go with it, everything else at fini.
 *
 * Build:  make       (uses pkg-config sonde-sdk, clang, bpftool)
 * Try:    see README.md in this directory.
 */
#define _GNU_SOURCE
#include <sonde/plugin.h>

#include <linux/bpf.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "getaddrinfo.h"

/* The BPF object's bytes, embedded by getaddrinfo_obj.c. */
extern const unsigned char gai_bpf_start[], gai_bpf_end[];

struct gai_plugin {
	const struct sonde_host_api *host;
	struct sonde_plugin_handle *self;
	struct sonde_bpf *bpf;        /* host-owned; NULL until the first process */
	int bpf_tried;
	int stats_fd;                 /* the object's gai_stats map, or -1 */
	struct sonde_metric *calls;   /* host-owned counter */
	uint64_t n_calls, n_failed, n_bad, n_procs;
	uint64_t kstats[GAI_ST_COUNT]; /* gai_stats, last read */
};

/* --- small helpers ------------------------------------------------------------ */

/* The EAI_* name of a getaddrinfo result, for error.type. A code we do
 * not know becomes "_OTHER" (OpenTelemetry's value for that), never a
 * number that would make a new series for every libc. */
static const char *gai_error_type(int rc)
{
	static const struct {
		int rc;
		const char *name;
	} names[] = {
		{ EAI_BADFLAGS, "EAI_BADFLAGS" }, { EAI_NONAME, "EAI_NONAME" },
		{ EAI_AGAIN, "EAI_AGAIN" },       { EAI_FAIL, "EAI_FAIL" },
		{ EAI_FAMILY, "EAI_FAMILY" },     { EAI_SOCKTYPE, "EAI_SOCKTYPE" },
		{ EAI_SERVICE, "EAI_SERVICE" },   { EAI_MEMORY, "EAI_MEMORY" },
		{ EAI_SYSTEM, "EAI_SYSTEM" },     { EAI_OVERFLOW, "EAI_OVERFLOW" },
		{ EAI_NODATA, "EAI_NODATA" },     { EAI_ADDRFAMILY, "EAI_ADDRFAMILY" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].rc == rc)
			return names[i].name;
	return "_OTHER";
}

/* Sum the per-CPU counters of the object's gai_stats map into kstats,
 * with bpf(2) on the map's fd (host->bpf_map_fd). Only while the object
 * is loaded: from process_new/process_gone/record, not from fini. */
static void gai_stats_read(struct gai_plugin *p)
{
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	uint64_t *v;

	if (p->stats_fd < 0 || ncpu <= 0)
		return;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return;
	for (uint32_t slot = 0; slot < GAI_ST_COUNT; slot++) {
		union bpf_attr a;
		uint64_t sum = 0;

		memset(&a, 0, sizeof(a));
		a.map_fd = (uint32_t)p->stats_fd;
		a.key = (uint64_t)(uintptr_t)&slot;
		a.value = (uint64_t)(uintptr_t)v;
		if (syscall(__NR_bpf, BPF_MAP_LOOKUP_ELEM, &a, sizeof(a)))
			continue;
		for (long c = 0; c < ncpu; c++)
			sum += v[c];
		p->kstats[slot] = sum;
	}
	free(v);
}

/* Where this process has libc mapped, as a path the agent can open
 * (through /proc/PID/root, so a process in a container works too). 0, or
 * -1 when no libc is mapped (a static binary, or a process caught before
 * its dynamic loader ran). */
static int gai_find_libc(uint32_t pid, char *out, size_t outlen)
{
	char path[64], line[512];
	FILE *f;
	int rc = -1;

	snprintf(path, sizeof(path), "/proc/%u/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (rc && fgets(line, sizeof(line), f)) {
		char *file = strchr(line, '/'), *base;

		if (!file)
			continue;
		file[strcspn(file, "\n")] = '\0';
		base = strrchr(file, '/') + 1;
		/* libc.so.6 (glibc), or libc-2.31.so in older glibc layouts. */
		if (!strncmp(base, "libc.so", 7) || (!strncmp(base, "libc-", 5) &&
		                                     strstr(base, ".so"))) {
			snprintf(out, outlen, "/proc/%u/root%s", pid, file);
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

/* --- lifecycle ------------------------------------------------------------------ */

static int gai_init(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
                    void **state)
{
	static const char *const keys[] = { "error.type" };
	struct sonde_counter_desc d = {
		.struct_size = sizeof(d),
		.name = "example.getaddrinfo.calls",
		.unit = "{call}",
		.description = "getaddrinfo() calls made by watched processes.",
		.attr_keys = keys,
		.n_attr_keys = 1,
	};
	struct gai_plugin *p;
	int rc;

	/* A runtime plugin needs the 1.1 table: an older host has a shorter
	 * one, and the fields below would not exist in it. */
	if (host->abi_major != SONDE_ABI_MAJOR || host->abi_minor < 1 ||
	    !SONDE_HAS_FIELD(host, struct sonde_host_api, process_set)) {
		host->log(self, SONDE_LOG_WARN, "needs a host with SDK 1.1 (this one has %u.%u)",
		          host->abi_major, host->abi_minor);
		return SONDE_ERR_UNSUPPORTED;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return SONDE_ERR_NOMEM;
	p->host = host;
	p->self = self;
	p->stats_fd = -1;
	rc = host->records_claim(self, GAI_REC_FIRST, GAI_REC_COUNT);
	if (rc != SONDE_OK) {
		host->log(self, SONDE_LOG_ERROR, "record types %u..%u are taken: %s", GAI_REC_FIRST,
		          GAI_REC_FIRST + GAI_REC_COUNT - 1, host->strerror(rc));
		free(p);
		return rc;
	}
	p->calls = host->counter_register(self, &d); /* the host copies d */
	*state = p;
	return SONDE_OK;
}

static void gai_fini(void *state)
{
	struct gai_plugin *p = state;

	if (!p)
		return;
	/* The object, its links and the counter are the host's: nothing to
	 * free but our own state. kstats holds the last read. */
	p->host->log(p->self, SONDE_LOG_INFO,
	             "processes probed %llu; getaddrinfo calls %llu (failed %llu); records written "
	             "by the kernel %llu, lost %llu; bad records %llu",
	             (unsigned long long)p->n_procs, (unsigned long long)p->n_calls,
	             (unsigned long long)p->n_failed, (unsigned long long)p->kstats[GAI_ST_RECORDS],
	             (unsigned long long)p->kstats[GAI_ST_LOST], (unsigned long long)p->n_bad);
	free(p);
}

/* --- processes ---------------------------------------------------------------------- */

/* The object is loaded when the first process shows up: the agent
 * installs its BPF side after plugins are loaded, so not from init. */
static void gai_load(struct gai_plugin *p)
{
	struct sonde_bpf_opts o = {
		.struct_size = sizeof(o),
		.name = "getaddrinfo",
		.obj = gai_bpf_start,
		.obj_len = (size_t)(gai_bpf_end - gai_bpf_start),
	};
	int rc;

	if (p->bpf_tried)
		return;
	p->bpf_tried = 1;
	rc = p->host->bpf_load(p->self, &o, &p->bpf);
	if (rc != SONDE_OK) {
		p->bpf = NULL; /* a replay has no kernel: records only */
		p->host->log(p->self, rc == SONDE_ERR_UNSUPPORTED ? SONDE_LOG_INFO : SONDE_LOG_ERROR,
		             "BPF object not loaded: %s", p->host->strerror(rc));
		return;
	}
	p->stats_fd = p->host->bpf_map_fd(p->bpf, "gai_stats");
	p->host->log(p->self, SONDE_LOG_INFO, "BPF object loaded (%zu bytes)", o.obj_len);
}

static int gai_process_new(void *state, const struct sonde_process_info *pi)
{
	struct gai_plugin *p = state;
	struct sonde_uprobe_opts o = {
		.struct_size = sizeof(o),
		.pid = pi->pid,          /* this process only */
		.symbol = "getaddrinfo", /* the host finds it in the library */
	};
	char libc[300];
	int rc;

	if (gai_find_libc(pi->pid, libc, sizeof(libc))) {
		p->host->log(p->self, SONDE_LOG_INFO, "pid %u: no libc mapped, not probed", pi->pid);
		return SONDE_ERR_NOENT; /* NOENT: said already, the host adds nothing */
	}
	gai_load(p);
	if (!p->bpf)
		return SONDE_ERR_UNSUPPORTED;
	o.path = libc;
	o.prog = "gai_enter";
	rc = p->host->bpf_uprobe(p->bpf, &o);
	if (rc == SONDE_OK) {
		o.prog = "gai_return";
		o.retprobe = 1; /* fine on C code; never on Go code (moving stacks) */
		rc = p->host->bpf_uprobe(p->bpf, &o);
	}
	if (rc != SONDE_OK) {
		/* A link made before the failure lives until process_gone. */
		p->host->log(p->self, SONDE_LOG_WARN, "pid %u: cannot probe getaddrinfo in %s: %s",
		             pi->pid, libc, p->host->strerror(rc));
		return SONDE_ERR_NOENT;
	}
	p->n_procs++;
	p->host->log(p->self, SONDE_LOG_INFO, "pid %u: getaddrinfo probed in %s", pi->pid, libc);
	return SONDE_OK;
}

static void gai_process_gone(void *state, uint32_t pid)
{
	(void)pid;
	gai_stats_read(state); /* the object is still loaded here */
}

/* --- records --------------------------------------------------------------------------- */

/* One record of a claimed type, as the BPF program wrote it. Check
 * everything: a record is input like any other. */
static void gai_record(void *state, const void *rec, size_t len)
{
	struct gai_plugin *p = state;
	const struct gai_rec *r = rec;
	const char *err[1] = { NULL };

	if (!p || !rec || len < sizeof(*r) || r->h.type != GAI_REC_CALL) {
		if (p)
			p->n_bad++;
		return;
	}
	p->n_calls++;
	if (r->rc != 0) {
		err[0] = gai_error_type(r->rc); /* absent (NULL) for a success */
		p->n_failed++;
	}
	/* No connection here: the point carries no service resource. */
	p->host->counter_add(p->calls, NULL, 1, err);
}

/* --- what the host finds ------------------------------------------------------------------ */

static const struct sonde_plugin gai_plugin = {
	.abi_major = SONDE_ABI_MAJOR,
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "getaddrinfo",
	.version = "0.1.0",
	.license = "Apache-2.0",
	.description = "Example runtime plugin: counts libc getaddrinfo() calls with its own uprobes",
	.init = gai_init,
	.fini = gai_fini,
	.process_new = gai_process_new,
	.process_gone = gai_process_gone,
	.record = gai_record,
};

SONDE_PLUGIN_DEFINE(gai_plugin)
