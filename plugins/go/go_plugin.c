/*
 * go_plugin.c - the Go runtime plugin: instruments Go executables the host
 * watches (crypto/tls plaintext, goroutine contexts) and hands what its
 * BPF programs report back to the host.
 *
 * The one idea: the plugin parses no protocol. It turns Go's TLS calls into
 * plaintext chunks injected into the host's own connection for (pid, fd),
 * so the HTTP, gRPC or SQL plugin reads them like any bytes, and it keeps
 * the host told which goroutine runs on which thread and which goroutine
 * started which, so the host parents a client span under the request its
 * goroutine (or an ancestor) serves.
 *
 * Per process (process_new): inspect /proc/PID/exe (go_inspect.c, cached by
 * file identity), store its go_cfg under its pid in the BPF map go_cfgs,
 * attach every probe site with host->bpf_uprobe (pid-filtered), and ask the
 * host for contexts (SONDE_PROCESS_CONTEXTS). Anything that stops this
 * gives one log line and an error the host only logs: the process stays
 * watched through the generic layer.
 */
#define _GNU_SOURCE
#include <sonde/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "go_inspect.h"
#include "go_plugin.h"
#include "go_rec.h"

/* The BPF object, embedded by go_bpf_obj.c. */
extern const unsigned char go_bpf_obj_start[], go_bpf_obj_end[];

#define GO_REC_BASES 8      /* record-type bases tried: 1100, 1200, ... */
#define GO_CACHE_MAX 32     /* executables remembered */
#define GO_PROCS_MAX 4096

struct go_cache_ent {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct go_target t;
};

struct go_state {
	const struct sonde_host_api *host;
	struct sonde_plugin_handle *self;
	struct sonde_bpf *bpf;      /* NULL: no kernel (replay, tests): records only */
	int bpf_tried;              /* loaded on the first Go process, once */
	int cfg_fd, stats_fd;
	uint32_t rec_base;
	uint32_t cap;
	uint32_t features;          /* GO_F_* allowed by the settings */
	int64_t mono_to_real;
	struct go_cache_ent *cache;
	size_t ncache;
	uint32_t *procs;            /* pids with a go_cfgs entry */
	size_t nprocs;
	struct sonde_timer *stats_timer;
	uint64_t kstats[GO_ST_COUNT]; /* the BPF programs' counters, last read */
	struct go_counters c;
};

/* The live state, for the unit tests' eyes only (go_plugin.h); the plugin
 * itself never reads it. */
static const struct go_state *debug_state;

/* --- bpf(2) map calls on the object's own maps ------------------------------- */

static int go_map_update(int fd, const void *key, const void *val)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)fd;
	a.key = (uint64_t)(uintptr_t)key;
	a.value = (uint64_t)(uintptr_t)val;
	a.flags = BPF_ANY;
	return (int)syscall(__NR_bpf, BPF_MAP_UPDATE_ELEM, &a, sizeof(a));
}

static int go_map_delete(int fd, const void *key)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)fd;
	a.key = (uint64_t)(uintptr_t)key;
	return (int)syscall(__NR_bpf, BPF_MAP_DELETE_ELEM, &a, sizeof(a));
}

static int go_map_lookup(int fd, const void *key, void *val)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)fd;
	a.key = (uint64_t)(uintptr_t)key;
	a.value = (uint64_t)(uintptr_t)val;
	return (int)syscall(__NR_bpf, BPF_MAP_LOOKUP_ELEM, &a, sizeof(a));
}

/* --- helpers ---------------------------------------------------------------------- */

static int64_t go_clock_offset(void)
{
	struct timespec r, m;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return ((int64_t)r.tv_sec - m.tv_sec) * 1000000000ll + ((int64_t)r.tv_nsec - m.tv_nsec);
}

/* Sum the BPF programs' per-CPU counters into st->kstats (a timer,
 * process_gone, and a last time in fini through our own descriptor). */
static void go_stats_refresh(struct go_state *st)
{
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	uint64_t *v;

	if (st->stats_fd < 0 || ncpu <= 0)
		return;
	v = calloc((size_t)ncpu, sizeof(uint64_t));
	if (!v)
		return;
	for (uint32_t i = 0; i < GO_ST_COUNT; i++) {
		uint64_t sum = 0;

		if (go_map_lookup(st->stats_fd, &i, v))
			continue;
		for (long c = 0; c < ncpu; c++)
			sum += v[c];
		st->kstats[i] = sum;
	}
	free(v);
}

static void go_stats_tick(void *arg, uint64_t now)
{
	(void)now;
	go_stats_refresh(arg);
}

/* Does this host offer the 1.1 calls a runtime plugin needs? */
static int go_host_ok(const struct sonde_host_api *h)
{
	return h->abi_minor >= 1 && SONDE_HAS_FIELD(h, struct sonde_host_api, process_set) &&
	       h->conn_lookup && h->conn_inject && h->bpf_load && h->bpf_uprobe &&
	       h->bpf_map_fd && h->records_claim && h->context_link && h->context_end &&
	       h->process_set;
}

static const char *go_basename(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : (p ? p : "?");
}

static void go_cfg_number(struct go_state *st, const char *key, uint32_t *out, uint32_t lo,
			  uint32_t hi)
{
	const char *const *v;
	char *end;
	unsigned long n;

	if (st->host->config_get(st->self, NULL, key, &v) < 1)
		return;
	n = strtoul(v[0], &end, 10);
	if (*end || n < lo || n > hi) {
		st->host->log(st->self, SONDE_LOG_WARN, "%s: %s is not in %u..%u, ignored", key, v[0],
			      lo, hi);
		return;
	}
	*out = (uint32_t)n;
}

/* `goroutines: false`: crypto/tls plaintext only, no goroutine contexts
 * (4 probe hits per keep-alive HTTPS request instead of about 9; client
 * spans then only get the host's conservative thread guess). */
static void go_cfg_goroutines(struct go_state *st)
{
	const char *const *v;

	if (st->host->config_get(st->self, NULL, "goroutines", &v) < 1)
		return;
	if (!strcmp(v[0], "false") || !strcmp(v[0], "no") || !strcmp(v[0], "0"))
		st->features = GO_F_TLS;
	else if (strcmp(v[0], "true") && strcmp(v[0], "yes") && strcmp(v[0], "1"))
		st->host->log(st->self, SONDE_LOG_WARN, "goroutines: %s is not true or false, ignored",
			      v[0]);
}

/* --- init / fini ------------------------------------------------------------------- */

static int go_claim(struct go_state *st)
{
	for (uint32_t i = 0; i < GO_REC_BASES; i++) {
		uint32_t base = 1100 + 100 * i;

		if (st->host->records_claim(st->self, base, GO_REC_COUNT) == SONDE_OK) {
			st->rec_base = base;
			return 0;
		}
	}
	return -1;
}

/* The object is loaded when the first Go process shows up (not in init:
 * the agent installs its BPF calls after plugins load, and a host that
 * never watches Go need not pay for it). */
static void go_load_bpf(struct go_state *st)
{
	struct sonde_bpf_opts o = {
		.struct_size = sizeof(o),
		.name = "go",
		.obj = go_bpf_obj_start,
		.obj_len = (size_t)(go_bpf_obj_end - go_bpf_obj_start),
	};
	int rc, stats_fd;

	if (st->bpf_tried)
		return;
	st->bpf_tried = 1;
	rc = st->host->bpf_load(st->self, &o, &st->bpf);
	if (rc != SONDE_OK) {
		st->bpf = NULL;
		st->host->log(st->self, rc == SONDE_ERR_UNSUPPORTED ? SONDE_LOG_INFO : SONDE_LOG_ERROR,
			      "BPF object not loaded (%s): Go processes are not instrumented",
			      st->host->strerror(rc));
		return;
	}
	st->cfg_fd = st->host->bpf_map_fd(st->bpf, "go_cfgs");
	/* The counters map is kept open by a descriptor of our own: the agent
	 * frees plugins' BPF objects before it calls fini, and the totals line
	 * of fini needs a last read. */
	stats_fd = st->host->bpf_map_fd(st->bpf, "go_stats");
	st->stats_fd = stats_fd >= 0 ? fcntl(stats_fd, F_DUPFD_CLOEXEC, 3) : -1;
	if (st->cfg_fd < 0) {
		st->host->log(st->self, SONDE_LOG_ERROR, "BPF object has no go_cfgs map");
		st->bpf = NULL;
		return;
	}
	st->stats_timer = st->host->timer_start(st->self, 5000000000ull, 5000000000ull,
						go_stats_tick, st);
}

static int go_init(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
		   void **state)
{
	struct go_state *st;

	if (!go_host_ok(host)) {
		host->log(self, SONDE_LOG_WARN,
			  "the host (SDK %u.%u) lacks the runtime-plugin calls of SDK 1.1: not loaded",
			  host->abi_major, host->abi_minor);
		return SONDE_ERR_UNSUPPORTED;
	}
	st = calloc(1, sizeof(*st));
	if (!st)
		return SONDE_ERR_NOMEM;
	st->host = host;
	st->self = self;
	st->cfg_fd = st->stats_fd = -1;
	st->cap = GO_MAX_PAYLOAD;
	st->mono_to_real = go_clock_offset();
	go_cfg_number(st, "payload_cap", &st->cap, 64, GO_MAX_PAYLOAD);
	st->features = GO_F_TLS | GO_F_GOROUTINES | GO_F_GOEXIT | GO_F_HTTP_CLIENT | GO_F_HTTP_BGREAD;
	go_cfg_goroutines(st);
	if (go_claim(st)) {
		host->log(self, SONDE_LOG_ERROR, "no free record-type range (tried 1100..%u)",
			  1100 + 100 * (GO_REC_BASES - 1));
		free(st);
		return SONDE_ERR_LIMIT;
	}
	*state = st;
	debug_state = st;
	return SONDE_OK;
}

static void go_fini(void *state)
{
	struct go_state *st = state;
	const uint64_t *k;

	if (!st)
		return;
	go_stats_refresh(st);
	if (st->stats_fd >= 0)
		close(st->stats_fd);
	k = st->kstats;
	st->host->log(st->self, SONDE_LOG_INFO,
		      "processes %" PRIu64 " instrumented, %" PRIu64 " refused; plaintext records %" PRIu64
		      " (injected %" PRIu64 ", no connection %" PRIu64 ", lost in the kernel %" PRIu64
		      ", not over TCP %" PRIu64 "), goroutines %" PRIu64 " created / %" PRIu64
		      " ended, http writes on behalf %" PRIu64 " (re-entered after stack growth %" PRIu64
		      "), bad records %" PRIu64,
		      st->c.procs_ok, st->c.procs_refused, st->c.data, st->c.injected, st->c.no_conn,
		      k[GO_ST_LOST], k[GO_ST_NOCONN], st->c.links, st->c.ends, k[GO_ST_HTTP_DELEGATE],
		      k[GO_ST_HTTP_REENTRY], st->c.bad);
	/* The timer and the BPF object are the host's. */
	free(st->cache);
	free(st->procs);
	if (debug_state == st)
		debug_state = NULL;
	free(st);
}

/* --- processes ------------------------------------------------------------------------ */

static const struct go_target *go_target_for(struct go_state *st, const char *path)
{
	struct go_cache_ent *e;
	struct stat sb;

	if (stat(path, &sb))
		return NULL;
	for (size_t i = 0; i < st->ncache; i++) {
		e = &st->cache[i];
		if (e->dev == sb.st_dev && e->ino == sb.st_ino && e->size == sb.st_size &&
		    e->mtime.tv_sec == sb.st_mtim.tv_sec && e->mtime.tv_nsec == sb.st_mtim.tv_nsec)
			return &e->t;
	}
	if (!st->cache) {
		st->cache = calloc(GO_CACHE_MAX, sizeof(*st->cache));
		if (!st->cache)
			return NULL;
	}
	/* Full: the oldest goes (entries are only a cache of file contents). */
	if (st->ncache == GO_CACHE_MAX) {
		memmove(st->cache, st->cache + 1, (GO_CACHE_MAX - 1) * sizeof(*st->cache));
		st->ncache--;
	}
	e = &st->cache[st->ncache];
	memset(e, 0, sizeof(*e));
	go_inspect(path, &e->t);
	e->dev = sb.st_dev;
	e->ino = sb.st_ino;
	e->size = sb.st_size;
	e->mtime = sb.st_mtim;
	st->ncache++;
	return &e->t;
}

/* Load bias of a PIE: where the file's first mapping starts minus where it
 * was linked to start. 0 for a fixed-address executable. -1 if unknown. */
static int go_bias(uint32_t pid, const struct go_target *t, uint64_t *bias)
{
	char path[64], line[512];
	struct stat sb;
	FILE *f;
	int rc = -1;

	*bias = 0;
	if (!t->pie)
		return 0;
	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	if (stat(path, &sb))
		return -1;
	snprintf(path, sizeof(path), "/proc/%u/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, off, ino;
		unsigned maj, min;

		if (sscanf(line, "%lx-%lx %*s %lx %x:%x %lu", &lo, &hi, &off, &maj, &min, &ino) != 6)
			continue;
		if (ino == sb.st_ino && off == 0) {
			*bias = lo - t->base;
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

static int go_proc_add(struct go_state *st, uint32_t pid)
{
	if (!st->procs) {
		st->procs = calloc(GO_PROCS_MAX, sizeof(*st->procs));
		if (!st->procs)
			return -1;
	}
	for (size_t i = 0; i < st->nprocs; i++)
		if (st->procs[i] == pid)
			return 0;
	if (st->nprocs == GO_PROCS_MAX)
		return -1;
	st->procs[st->nprocs++] = pid;
	return 0;
}

static int go_proc_del(struct go_state *st, uint32_t pid)
{
	for (size_t i = 0; i < st->nprocs; i++) {
		if (st->procs[i] == pid) {
			st->procs[i] = st->procs[--st->nprocs];
			return 1;
		}
	}
	return 0;
}

/* Attach every probe of t to pid. 0, or the error of the first that failed
 * (its name in *failed). */
static int go_attach(struct go_state *st, uint32_t pid, const char *exe,
		     const struct go_target *t, uint32_t features, const char **failed)
{
	for (size_t i = 0; i < t->nprobes; i++) {
		struct sonde_uprobe_opts o = {
			.struct_size = sizeof(o),
			.pid = pid,
			.prog = go_prog_names[t->probes[i].prog],
			.path = exe,
			.offset = t->probes[i].offset,
			.cookie = t->probes[i].cookie,
		};
		int rc;

		if (!(go_prog_feature(t->probes[i].prog) & features))
			continue;
		rc = st->host->bpf_uprobe(st->bpf, &o);

		if (rc != SONDE_OK) {
			*failed = o.prog;
			return rc;
		}
	}
	return SONDE_OK;
}

static int go_refuse(struct go_state *st, const struct sonde_process_info *pi, int rc,
		     const char *fmt, const char *a, const char *b)
{
	char why[300];

	snprintf(why, sizeof(why), fmt, a, b);
	st->host->log(st->self, SONDE_LOG_WARN,
		      "pid %u (%s): %s; Go TLS and goroutine contexts off, the process stays "
		      "watched through the generic layer",
		      pi->pid, go_basename(pi->exe_path), why);
	st->c.procs_refused++;
	return rc;
}

static int go_process_new(void *state, const struct sonde_process_info *pi)
{
	struct go_state *st = state;
	const struct go_target *t;
	const char *failed = "";
	struct go_cfg cfg;
	char exe[64], feats[128], errs[64];
	size_t nprobes = 0;
	uint64_t bias;
	int rc;

	if (!st || !pi)
		return SONDE_ERR_INVAL;
	snprintf(exe, sizeof(exe), "/proc/%u/exe", pi->pid);
	t = go_target_for(st, exe);
	if (!t)
		return SONDE_OK; /* gone already, or not readable: not ours to say */
	if (!t->is_go)
		return SONDE_OK;
	/* What the binary does not tell (stripped, too old, an unknown layout)
	 * is said here once, with its reason; NOENT keeps the host from adding
	 * a second, vaguer line. */
	if (!t->ok)
		return go_refuse(st, pi, SONDE_ERR_NOENT, "%s%s", t->why, "");
	go_load_bpf(st);
	if (!st->bpf)
		return go_refuse(st, pi, SONDE_ERR_UNSUPPORTED, "%s%s", "no BPF object loaded", "");
	if (go_bias(pi->pid, t, &bias))
		return go_refuse(st, pi, SONDE_ERR_NOENT, "%s%s", "PIE load address not found", "");
	cfg = t->cfg;
	cfg.rec_base = st->rec_base;
	cfg.cap = st->cap;
	cfg.features &= st->features;
	if (!cfg.features)
		return go_refuse(st, pi, SONDE_ERR_NOENT, "%s%s", "nothing enabled by the settings", "");
	if (cfg.type_tcp)
		cfg.type_tcp += bias;
	if (cfg.type_unix)
		cfg.type_unix += bias;
	if (go_map_update(st->cfg_fd, &pi->pid, &cfg)) {
		snprintf(errs, sizeof(errs), "%s", strerror(errno));
		return go_refuse(st, pi, SONDE_ERR_IO, "go_cfgs update failed: %s%s", errs, "");
	}
	go_proc_add(st, pi->pid);
	rc = go_attach(st, pi->pid, exe, t, cfg.features, &failed);
	if (rc != SONDE_OK) {
		/* The links made so far live until process_gone; without a
		 * configuration their programs return at once. */
		go_map_delete(st->cfg_fd, &pi->pid);
		go_proc_del(st, pi->pid);
		return go_refuse(st, pi, rc, "attaching %s failed: %s", failed, st->host->strerror(rc));
	}
	if (cfg.features & GO_F_GOROUTINES)
		st->host->process_set(st->self, pi->pid, SONDE_PROCESS_CONTEXTS);
	go_features_str(cfg.features, feats, sizeof(feats));
	for (size_t i = 0; i < t->nprobes; i++)
		nprobes += (go_prog_feature(t->probes[i].prog) & cfg.features) != 0;
	st->host->log(st->self, SONDE_LOG_INFO, "pid %u (%s): %s, %zu probes (%s), records %u..%u%s%s",
		      pi->pid, go_basename(pi->exe_path), t->version, nprobes, feats, st->rec_base,
		      st->rec_base + GO_REC_COUNT - 1, t->why[0] ? "; " : "", t->why);
	st->c.procs_ok++;
	return SONDE_OK;
}

static void go_process_gone(void *state, uint32_t pid)
{
	struct go_state *st = state;

	if (st && st->cfg_fd >= 0 && go_proc_del(st, pid)) {
		go_map_delete(st->cfg_fd, &pid);
		go_stats_refresh(st);
	}
}

/* --- records ---------------------------------------------------------------------------- */

static void go_record_data(struct go_state *st, const struct go_rec_data *r, size_t len)
{
	struct sonde_chunk ch;
	struct sonde_conn *conn;

	if (len < sizeof(*r) || r->cap_len > GO_MAX_PAYLOAD || r->cap_len > r->len ||
	    len < sizeof(*r) + r->cap_len || r->dir > 1) {
		st->c.bad++;
		return;
	}
	st->c.data++;
	conn = st->host->conn_lookup(st->self, r->h.tgid, r->h.fd);
	if (!conn) {
		st->c.no_conn++;
		return;
	}
	memset(&ch, 0, sizeof(ch));
	ch.struct_size = sizeof(ch);
	ch.dir = r->dir ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
	ch.ts_unix_ns = r->h.ts_ns + (uint64_t)st->mono_to_real;
	ch.data = r->data;
	ch.len = r->cap_len;
	ch.orig_len = r->len;
	ch.flags = (r->cap_len < r->len ? SONDE_CHUNK_TRUNCATED : 0) |
		   (r->flags & GO_RECF_GAP ? SONDE_CHUNK_GAP : 0);
	ch.tid = r->h.tid;
	ch.pos = r->pos;
	ch.source = SONDE_SRC_RUNTIME;
	ch.context = r->ctx;
	if (st->host->conn_inject(conn, &ch) == SONDE_OK)
		st->c.injected++;
	else
		st->c.inject_err++;
}

static void go_record(void *state, const void *rec, size_t len)
{
	struct go_state *st = state;
	const struct go_rec_hdr *h = rec;
	const struct go_rec_go *g = rec;

	if (!st || !rec || len < sizeof(*h) || h->type < st->rec_base ||
	    h->type >= st->rec_base + GO_REC_COUNT) {
		if (st)
			st->c.bad++;
		return;
	}
	switch (h->type - st->rec_base) {
	case GO_REC_DATA:
		go_record_data(st, rec, len);
		return;
	case GO_REC_GO_NEW:
		if (len < sizeof(*g) || !g->goid || !g->parent || g->goid == g->parent) {
			st->c.bad++;
			return;
		}
		st->host->context_link(st->self, h->tgid, g->goid, g->parent);
		st->c.links++;
		return;
	case GO_REC_GO_END:
		if (len < sizeof(*g) || !g->goid) {
			st->c.bad++;
			return;
		}
		st->host->context_end(st->self, h->tgid, g->goid);
		st->c.ends++;
		return;
	}
}

const struct go_counters *go_debug_counters(void)
{
	return debug_state ? &debug_state->c : NULL;
}

uint32_t go_debug_rec_base(void)
{
	return debug_state ? debug_state->rec_base : 0;
}

static const struct sonde_plugin go_plugin = {
	.abi_major = SONDE_ABI_MAJOR,
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "go",
	.version = "0.1.0",
	.license = "Apache-2.0",
	.description = "Go runtime: crypto/tls plaintext into the connection's stream, "
	               "goroutine contexts for span parenting (x86-64, Go >= 1.17)",
	.init = go_init,
	.fini = go_fini,
	.process_new = go_process_new,
	.process_gone = go_process_gone,
	.record = go_record,
};

SONDE_PLUGIN_DEFINE(go_plugin)
