/*
 * procs.c - the process table (procs.h): which processes to watch, and what
 * each one is.
 *
 * The one idea: a process is chosen by a service's selectors (open port,
 * executable regex, pid) either at start-up, from a /proc scan, or later
 * from kernel events (exec for new programs, listen for new servers, fork
 * for children, which the kernel side already adopts in its pid filter).
 * Every watched process gets a resource (service.name, process.pid, ...)
 * that all its spans and metrics share. Changes are reported through the
 * observer (procs.h); this file never touches connections.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <signal.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/hmap.h"
#include "capture/capture.h"
#include "config/config.h"
#include "pipeline/procs.h"
#include "telemetry/metrics.h"
#include "telemetry/span.h"

struct procs {
	const struct config *cfg;
	struct capture *cap;
	bool replay;
	struct procs_observer obs;
	struct service *services;
	size_t n_services;
	struct hmap procs;    /* tgid -> struct proc */
	char hostname[256];
	bool starting;        /* the process being watched was seen starting */
	unsigned sweeps;      /* procs_sweep calls so far */
	struct metric_hist *dropped, *dropped_bytes;
};

/* --- listening sockets: inode -> port, from /proc/net/tcp{,6} -------- */

struct listen_map {
	uint64_t *inode;
	uint16_t *port;
	size_t n, cap;
};

static void listen_map_read(struct listen_map *m, const char *path)
{
	FILE *f = fopen(path, "re");
	char line[512];

	if (!f)
		return;
	if (!fgets(line, sizeof(line), f)) { /* header */
		fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		char local[64], rem[64];
		unsigned st;
		unsigned long long inode;
		/* sl local rem st tx:rx tr:tm retr uid timeout inode */
		if (sscanf(line, " %*s %63s %63s %x %*s %*s %*s %*s %*s %llu", local, rem, &st,
		           &inode) != 4 || st != 0x0A)
			continue;
		char *colon = strrchr(local, ':');
		if (!colon)
			continue;
		if (m->n == m->cap) {
			size_t nc = m->cap ? m->cap * 2 : 64;
			uint64_t *ni = realloc(m->inode, nc * sizeof(*ni));
			if (!ni)
				break;
			m->inode = ni;
			uint16_t *np = realloc(m->port, nc * sizeof(*np));
			if (!np)
				break;
			m->port = np;
			m->cap = nc;
		}
		m->inode[m->n] = inode;
		m->port[m->n] = (uint16_t)strtoul(colon + 1, NULL, 16);
		m->n++;
	}
	fclose(f);
}

static int listen_map_port(const struct listen_map *m, uint64_t inode)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->inode[i] == inode)
			return m->port[i];
	return -1;
}

/* Ports this process listens on (through any of its fds). */
static unsigned proc_listen_ports(uint32_t pid, const struct listen_map *m, uint16_t *out,
                                  unsigned max)
{
	char dir[64], link[320], tgt[128];
	DIR *d;
	struct dirent *de;
	unsigned n = 0;

	if (!m->n)
		return 0;
	snprintf(dir, sizeof(dir), "/proc/%u/fd", pid);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		unsigned long long ino;
		if (de->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", dir, de->d_name);
		ssize_t l = readlink(link, tgt, sizeof(tgt) - 1);
		if (l <= 0)
			continue;
		tgt[l] = 0;
		if (sscanf(tgt, "socket:[%llu]", &ino) != 1)
			continue;
		int port = listen_map_port(m, ino);
		if (port < 0)
			continue;
		bool dup = false;
		for (unsigned i = 0; i < n; i++)
			dup |= out[i] == port;
		if (!dup)
			out[n++] = (uint16_t)port;
	}
	closedir(d);
	return n;
}

/* --- selectors ----------------------------------------------------------- */

static bool port_selected(const struct service_cfg *s, uint16_t port)
{
	for (size_t i = 0; i < s->n_ports; i++)
		if (port >= s->ports[i].lo && port <= s->ports[i].hi)
			return true;
	return false;
}

static bool service_matches(const struct service *svc, uint32_t pid, const char *exe,
                            const uint16_t *ports, unsigned n_ports)
{
	const struct service_cfg *s = svc->cfg;

	for (size_t i = 0; i < s->n_pids; i++)
		if (s->pids[i] == pid)
			return true;
	if (svc->has_re && exe && !regexec(&svc->exe_re, exe, 0, NULL, 0))
		return true;
	for (unsigned i = 0; i < n_ports; i++)
		if (port_selected(s, ports[i]))
			return true;
	return false;
}

static bool any_port_selector(const struct procs *ps)
{
	for (size_t i = 0; i < ps->n_services; i++)
		if (ps->services[i].cfg->n_ports)
			return true;
	return false;
}

struct procs *procs_new(const struct procs_opts *o, char *err, size_t errlen)
{
	const struct config *cfg = o->cfg;
	size_t n = cfg->n_services + (cfg->have_cli_service ? 1 : 0);
	struct procs *ps = calloc(1, sizeof(*ps));

	if (!ps || !(ps->services = calloc(n ? n : 1, sizeof(*ps->services)))) {
		free(ps);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ps->cfg = cfg;
	ps->cap = o->cap;
	ps->replay = o->replay;
	ps->obs = o->obs;
	hmap_init(&ps->procs);
	if (gethostname(ps->hostname, sizeof(ps->hostname) - 1))
		snprintf(ps->hostname, sizeof(ps->hostname), "localhost");
	/* Command-line selectors come first: they are the most specific ask. */
	if (cfg->have_cli_service)
		ps->services[ps->n_services++].cfg = &cfg->cli_service;
	for (size_t i = 0; i < cfg->n_services; i++)
		ps->services[ps->n_services++].cfg = &cfg->services[i];
	for (size_t i = 0; i < ps->n_services; i++) {
		struct service *s = &ps->services[i];
		if (!s->cfg->exe_path)
			continue;
		if (regcomp(&s->exe_re, s->cfg->exe_path, REG_EXTENDED | REG_NOSUB)) {
			snprintf(err, errlen, "invalid exe_path regex '%s'", s->cfg->exe_path);
			procs_free(ps);
			return NULL;
		}
		s->has_re = true;
	}
	return ps;
}

void procs_free(struct procs *ps)
{
	uint64_t key;
	void *val;

	if (!ps)
		return;
	for (;;) {
		size_t it = 0;
		if (!hmap_next(&ps->procs, &it, &key, &val))
			break;
		procs_forget(ps, (uint32_t)key);
	}
	for (size_t i = 0; i < ps->n_services; i++)
		if (ps->services[i].has_re)
			regfree(&ps->services[i].exe_re);
	free(ps->services);
	hmap_free(&ps->procs);
	free(ps);
}

void procs_set_capture(struct procs *ps, struct capture *cap)
{
	ps->cap = cap;
}

size_t procs_count(const struct procs *ps)
{
	return ps->procs.n;
}

size_t procs_n_services(const struct procs *ps)
{
	return ps->n_services;
}

struct service *procs_service(struct procs *ps, size_t i)
{
	return i < ps->n_services ? &ps->services[i] : NULL;
}

bool procs_have_exe_selector(const struct procs *ps)
{
	for (size_t i = 0; i < ps->n_services; i++)
		if (ps->services[i].has_re)
			return true;
	return false;
}

struct proc *procs_find(const struct procs *ps, uint32_t tgid)
{
	return hmap_get(&ps->procs, tgid);
}

/* --- processes and their resources --------------------------------------- */

static char *read_exe(uint32_t pid)
{
	char link[64], buf[PATH_MAX];
	ssize_t l;

	snprintf(link, sizeof(link), "/proc/%u/exe", pid);
	l = readlink(link, buf, sizeof(buf) - 1);
	if (l <= 0)
		return NULL;
	buf[l] = 0;
	/* A replaced binary reads "/path (deleted)"; keep the path. */
	char *del = strstr(buf, " (deleted)");
	if (del && del[10] == 0)
		*del = 0;
	return strdup(buf);
}

/* process.executable.name: semconv says the Name of /proc/PID/status (the
 * kernel's comm), which keeps the name the program was started by:
 * Debian's redis-server is a symlink to redis-check-rdb, and exe resolves
 * links. */
static int read_comm(uint32_t pid, char *out, size_t n)
{
	char path[64];
	FILE *f;
	int ok = 0;

	snprintf(path, sizeof(path), "/proc/%u/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(out, (int)n, f)) {
		out[strcspn(out, "\n")] = 0;
		ok = out[0] != 0;
	}
	fclose(f);
	return ok;
}

/* The fields of /proc/PID/stat after the command's ')' (field 3 on) into
 * buf; NULL when unreadable. */
static char *read_stat(uint32_t pid, char *buf, size_t len)
{
	char path[64], *rp = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	if (fgets(buf, (int)len, f))
		rp = strrchr(buf, ')');
	fclose(f);
	return rp ? rp + 1 : NULL;
}

static uint32_t read_ppid(uint32_t pid)
{
	char buf[512], *st = read_stat(pid, buf, sizeof(buf));
	unsigned ppid = 0;

	if (st)
		sscanf(st, " %*c %u", &ppid);
	return ppid;
}

/* How long pid has been running (ms), from the start time in
 * /proc/PID/stat (field 22); -1 when unknown. */
static int64_t proc_age_ms(uint32_t pid)
{
	char buf[1024], *save = NULL, *tok = read_stat(pid, buf, sizeof(buf));
	long hz = sysconf(_SC_CLK_TCK);
	int field = 3;
	struct timespec now;

	if (!tok || hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &now))
		return -1;
	for (tok = strtok_r(tok, " ", &save); tok && field < 22; tok = strtok_r(NULL, " ", &save))
		field++;
	if (!tok)
		return -1;
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 -
	       (int64_t)(strtoull(tok, NULL, 10) * 1000 / (unsigned long long)hz);
}

static void uuid4(char out[37])
{
	uint8_t b[16];

	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		memset(b, 0x5a, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
}

static struct resource *resource_for(struct procs *ps, struct proc *p, const char *name_hint)
{
	struct resource *r = calloc(1, sizeof(*r));
	char uuid[37];
	const char *name;

	if (!r)
		return NULL;
	r->refs = 1;
	r->pid = p->tgid;
	/* service.name: the service's own name > OTEL_SERVICE_NAME or
	 * --service-name (for services without one) > recorded > exe */
	if (p->svc && p->svc->cfg->name)
		name = p->svc->cfg->name;
	else if (ps->cfg->service_name)
		name = ps->cfg->service_name;
	else if (name_hint && *name_hint)
		name = name_hint;
	else
		name = p->exe_name;
	r->service_name = strdup(name);
	uuid4(uuid);
	attr_set_str(&r->attrs, "service.name", name, strlen(name));
	attr_set_str(&r->attrs, "service.instance.id", uuid, strlen(uuid));
	attr_set_str(&r->attrs, "telemetry.sdk.name", "sonde", 5);
	attr_set_str(&r->attrs, "telemetry.sdk.language", "c", 1);
	attr_set_str(&r->attrs, "telemetry.sdk.version", SONDE_VERSION, strlen(SONDE_VERSION));
	attr_set_int(&r->attrs, "process.pid", p->tgid);
	attr_set_str(&r->attrs, "process.executable.name", p->exe_name, strlen(p->exe_name));
	if (p->exe_path)
		attr_set_str(&r->attrs, "process.executable.path", p->exe_path, strlen(p->exe_path));
	attr_set_str(&r->attrs, "host.name", ps->hostname, strlen(ps->hostname));
	for (size_t i = 0; i < ps->cfg->n_resource_attrs; i++) {
		const struct kv *kv = &ps->cfg->resource_attrs[i];
		if (kv->n_values && strcmp(kv->key, "service.name"))
			attr_set_str(&r->attrs, kv->key, kv->values[0], strlen(kv->values[0]));
	}
	if (!r->service_name) {
		resource_unref(r);
		return NULL;
	}
	return r;
}

static struct proc *proc_new(struct procs *ps, uint32_t tgid, struct service *svc, char *exe,
                             const char *name_hint)
{
	struct proc *p = calloc(1, sizeof(*p));

	if (!p) {
		free(exe);
		return NULL;
	}
	p->tgid = tgid;
	p->svc = svc;
	p->exe_path = exe;
	p->existed = !ps->starting;
	const char *base = exe ? strrchr(exe, '/') : NULL;
	if (ps->replay || !read_comm(tgid, p->exe_name, sizeof(p->exe_name)))
		snprintf(p->exe_name, sizeof(p->exe_name), "%s", base ? base + 1 : exe ? exe : "unknown");
	p->res = resource_for(ps, p, name_hint);
	if (!p->res || hmap_put(&ps->procs, tgid, p)) {
		if (p->res)
			resource_unref(p->res);
		free(p->exe_path);
		free(p);
		return NULL;
	}
	/* Its service asked for traceparent injection: the kernel's sk_msg
	 * program looks at its connections (bpf/sonde_inject.bpf.h). */
	if (ps->cap && svc && svc->cfg->inject_traceparent)
		capture_pid_set(ps->cap, tgid, SONDE_PID_INJECT, 0);
	return p;
}

static void adopt_children(struct procs *ps, uint32_t parent, struct service *svc, int depth);
static struct proc *watch_tree(struct procs *ps, uint32_t tgid, struct service *svc, int depth);

struct proc *procs_watch(struct procs *ps, uint32_t tgid, struct service *svc)
{
	return watch_tree(ps, tgid, svc, 0);
}

/* proc_watch for a process that may have exited already: exe and comm (from
 * the EXEC record) stand in for what /proc can no longer say. */
static struct proc *watch_as(struct procs *ps, uint32_t tgid, struct service *svc,
                                  const char *exe, const char comm[16])
{
	struct proc *p = procs_watch(ps, tgid, svc);

	if (!p || !exe)
		return p;
	if (!p->exe_path)
		p->exe_path = strdup(exe);
	if (!strcmp(p->exe_name, "unknown") && comm[0]) {
		snprintf(p->exe_name, sizeof(p->exe_name), "%.15s", comm);
		struct resource *r = resource_for(ps, p, NULL);
		if (r) {
			resource_unref(p->res);
			p->res = r;
		}
	}
	return p;
}

static struct proc *watch_tree(struct procs *ps, uint32_t tgid, struct service *svc, int depth)
{
	struct proc *p = hmap_get(&ps->procs, tgid);
	struct listen_map lm = {0};

	if (p)
		return p;
	p = proc_new(ps, tgid, svc, read_exe(tgid), NULL);
	if (!p)
		return NULL;
	listen_map_read(&lm, "/proc/net/tcp");
	listen_map_read(&lm, "/proc/net/tcp6");
	p->n_listen = proc_listen_ports(tgid, &lm, p->listen_ports, 32);
	free(lm.inode);
	free(lm.port);
	/* It listens: a request it sends may belong to one it serves. */
	if (ps->cap && p->n_listen && svc && svc->cfg->inject_traceparent)
		capture_pid_set(ps->cap, tgid, SONDE_PID_SERVES, 0);
	if (ps->cap && capture_watch(ps->cap, tgid))
		fprintf(stderr, "sonde: cannot watch pid %u in the kernel filter\n", tgid);
	if (ps->cap)
		capture_tls_attach(ps->cap, tgid);
	if (ps->obs.on_new)
		ps->obs.on_new(ps->obs.ctx, p);
	fprintf(stderr, "sonde: watching pid %u (%s) as service '%s'\n", tgid, p->exe_name,
	        p->res->service_name);
	/* Children forked before we watched the parent (nginx workers, gunicorn
	 * workers) missed the kernel's fork-time adoption: take them now. */
	if (!ps->replay)
		adopt_children(ps, tgid, svc, depth);
	return p;
}

/* Children of `parent`: from /proc/PID/task/TID/children (cheap, one file
 * per thread) where the kernel has it, else from a scan of every ppid. */
static unsigned list_children(uint32_t parent, uint32_t *kids, unsigned max)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	unsigned n = 0;

	snprintf(path, sizeof(path), "/proc/%u/task", parent);
	if (!access("/proc/self/task", R_OK) && (d = opendir(path))) {
		bool have = false;
		while ((de = readdir(d)) && n < max) {
			char cpath[400];
			FILE *f;
			unsigned long v;
			if (!isdigit((unsigned char)de->d_name[0]))
				continue;
			snprintf(cpath, sizeof(cpath), "%s/%s/children", path, de->d_name);
			if (!(f = fopen(cpath, "re")))
				continue;
			have = true;
			while (n < max && fscanf(f, "%lu", &v) == 1)
				kids[n++] = (uint32_t)v;
			fclose(f);
		}
		closedir(d);
		if (have)
			return n;
	}
	if (!(d = opendir("/proc")))
		return 0;
	while ((de = readdir(d)) && n < max) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		uint32_t pid = (uint32_t)strtoul(de->d_name, NULL, 10);
		if (pid != parent && read_ppid(pid) == parent)
			kids[n++] = pid;
	}
	closedir(d);
	return n;
}

/* child was forked by parent (found at discovery, or its fork read). A
 * listening parent whose child holds none of its listening sockets hands
 * connections to children (PostgreSQL's backends) rather than running
 * workers that accept (nginx): its next child must be covered by the TLS
 * uprobes from its first instruction, so they are shared now. A child with
 * no listening socket of its own serves on the parent's ports. */
static void child_of(struct procs *ps, struct proc *parent, struct proc *child)
{
	if (!parent || !child || child->n_listen)
		return;
	if (parent->n_listen && ps->cap)
		capture_tls_share(ps->cap, parent->tgid);
	memcpy(child->listen_ports, parent->listen_ports, sizeof(parent->listen_ports));
	child->n_listen = parent->n_listen;
}

static void adopt_children(struct procs *ps, uint32_t parent, struct service *svc, int depth)
{
	uint32_t kids[64];
	unsigned n;

	if (depth >= 4)
		return;
	n = list_children(parent, kids, 64);
	for (unsigned i = 0; i < n; i++) {
		if (hmap_get(&ps->procs, kids[i]))
			continue;
		struct proc *c = watch_tree(ps, kids[i], svc, depth + 1);

		child_of(ps, hmap_get(&ps->procs, parent), c);
	}
}

void procs_set_drop_metric(struct procs *ps, struct metric_hist *dropped,
                           struct metric_hist *dropped_bytes)
{
	ps->dropped = dropped;
	ps->dropped_bytes = dropped_bytes;
}

static void account_drops(struct procs *ps, struct proc *p)
{
	uint64_t recs, bytes;

	if (!ps->dropped || capture_proc_dropped(ps->cap, p->tgid, &recs, &bytes))
		return;
	if (recs > p->dropped_seen) {
		metrics_hist_record(ps->dropped, p->res, (double)(recs - p->dropped_seen), NULL);
		p->dropped_seen = recs;
	}
	if (ps->dropped_bytes && bytes > p->dropped_bytes_seen) {
		metrics_hist_record(ps->dropped_bytes, p->res, (double)(bytes - p->dropped_bytes_seen),
		                    NULL);
		p->dropped_bytes_seen = bytes;
	}
}

void procs_account_drops(struct procs *ps)
{
	uint64_t key;
	void *val;

	for (size_t it = 0; hmap_next(&ps->procs, &it, &key, &val);)
		account_drops(ps, val);
}

void procs_forget(struct procs *ps, uint32_t tgid)
{
	struct proc *p = hmap_get(&ps->procs, tgid);

	if (!p)
		return;
	account_drops(ps, p);
	/* Listeners close the process's connections first: their spans
	 * reference its resource. */
	if (ps->obs.on_gone)
		ps->obs.on_gone(ps->obs.ctx, p);
	hmap_del(&ps->procs, tgid);
	if (ps->cap) {
		capture_unwatch(ps->cap, tgid);
		capture_tls_detach(ps->cap, tgid);
	}
	resource_unref(p->res);
	free(p->exe_path);
	free(p);
}

struct proc *procs_get(struct procs *ps, uint32_t tgid)
{
	struct proc *p = hmap_get(&ps->procs, tgid);

	if (p || ps->replay)
		return p ? p : proc_new(ps, tgid, ps->n_services ? &ps->services[0] : NULL, NULL, NULL);
	/* The kernel adopted a child whose FORK record we have not seen (lost):
	 * inherit. Anything else is a process no selector chose (a provisional
	 * exec watch that discovery has just ended): its records are dropped. */
	struct proc *parent = hmap_get(&ps->procs, read_ppid(tgid));
	if (parent)
		return procs_watch(ps, tgid, parent->svc);
	if (ps->cap)
		capture_unwatch(ps->cap, tgid);
	return NULL;
}

/* Processes whose EXIT record never came (lost under pressure, or gone
 * while provisional): whoever no longer exists leaves the table. */
void procs_sweep(struct procs *ps)
{
	uint64_t key, gone[256];
	void *val;
	size_t n = 0;

	if (ps->replay)
		return;
	ps->sweeps++;
	for (size_t it = 0; n < 256 && hmap_next(&ps->procs, &it, &key, &val);) {
		struct proc *p = val;

		if (!kill((pid_t)key, 0) || errno != ESRCH)
			p->gone_at_sweep = 0;
		else if (!p->gone_at_sweep)
			p->gone_at_sweep = ps->sweeps; /* its records may still come */
		else
			gone[n++] = key;
	}
	for (size_t i = 0; i < n; i++)
		procs_forget(ps, (uint32_t)gone[i]);
}

void procs_foreach(struct procs *ps, void (*fn)(void *ctx, struct proc *p), void *ctx)
{
	uint64_t key;
	void *val;

	for (size_t it = 0; hmap_next(&ps->procs, &it, &key, &val);)
		fn(ctx, val);
}

void procs_scan(struct procs *ps)
{
	struct listen_map lm = {0};
	DIR *d = opendir("/proc");
	struct dirent *de;
	bool ports = any_port_selector(ps);
	uint32_t self = (uint32_t)getpid();

	if (!d)
		return;
	if (ports) {
		listen_map_read(&lm, "/proc/net/tcp");
		listen_map_read(&lm, "/proc/net/tcp6");
	}
	while ((de = readdir(d))) {
		uint16_t lp[32];
		unsigned nlp = 0;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		uint32_t pid = (uint32_t)strtoul(de->d_name, NULL, 10);
		if (pid == self || hmap_get(&ps->procs, pid))
			continue;
		char *exe = read_exe(pid);
		if (!exe)
			continue; /* kernel thread or gone */
		if (ports)
			nlp = proc_listen_ports(pid, &lm, lp, 32);
		for (size_t i = 0; i < ps->n_services; i++) {
			if (service_matches(&ps->services[i], pid, exe, lp, nlp)) {
				procs_watch(ps, pid, &ps->services[i]);
				break;
			}
		}
		free(exe);
	}
	closedir(d);
	free(lm.inode);
	free(lm.port);
}

/* A watched process became another program (a shell's exec, a wrapper's
 * exec): it stays in the kernel filter, with no window where its bytes are
 * dropped; only its identity (exe, resource) is renewed. Its connections
 * survive exec unless close-on-exec closes them (the kernel reports that). */
static void proc_renew(struct procs *ps, struct proc *p)
{
	char *exe = read_exe(p->tgid);
	struct resource *old = p->res;

	if (!exe)
		return;
	free(p->exe_path);
	p->exe_path = exe;
	if (!read_comm(p->tgid, p->exe_name, sizeof(p->exe_name))) {
		const char *base = strrchr(exe, '/');
		snprintf(p->exe_name, sizeof(p->exe_name), "%s", base ? base + 1 : exe);
	}
	p->res = resource_for(ps, p, NULL);
	if (!p->res) {
		p->res = old;
		return;
	}
	resource_unref(old);
	if (ps->cap)
		capture_tls_attach(ps->cap, p->tgid);
	if (ps->obs.on_renew)
		ps->obs.on_renew(ps->obs.ctx, p);
	fprintf(stderr, "sonde: pid %u is now %s (service '%s')\n", p->tgid, p->exe_name,
	        p->res->service_name);
}

void procs_on_exec(struct procs *ps, const struct sonde_ev_exec *ev)
{
	uint32_t pid = ev->p.h.tgid;
	struct proc *p = hmap_get(&ps->procs, pid);

	if (pid == (uint32_t)getpid())
		return;
	if (p) {
		proc_renew(ps, p);
		return;
	}
	/* A short-lived program may be gone already: then match the path it
	 * was started with, and name it from the record. */
	char *exe = read_exe(pid);
	bool gone = !exe;
	if (gone)
		exe = strndup(ev->filename, sizeof(ev->filename));
	for (size_t i = 0; exe && i < ps->n_services; i++) {
		if (service_matches(&ps->services[i], pid, exe, NULL, 0)) {
			ps->starting = true;
			watch_as(ps, pid, &ps->services[i], gone ? exe : NULL, ev->p.comm);
			ps->starting = false;
			free(exe);
			return;
		}
	}
	free(exe);
	/* Not ours: end the kernel's provisional watch (capture exec_adopt). */
	if (ps->cap)
		capture_unwatch(ps->cap, pid);
}

#define TLS_SHARE_AGE_MS 2000

void procs_on_fork(struct procs *ps, const struct sonde_ev_proc *ev)
{
	struct proc *parent = hmap_get(&ps->procs, ev->ppid);
	struct proc *child;

	if (hmap_get(&ps->procs, ev->h.tgid))
		return;
	if (!parent) {
		/* A provisionally watched program that was not chosen forked
		 * before we dropped it: drop the child too. */
		if (ps->cap)
			capture_unwatch(ps->cap, ev->h.tgid);
		return;
	}
	/* A server that forks long after its start forks per connection or on
	 * demand (PostgreSQL, Apache prefork): before the child is attached,
	 * share the parent's TLS uprobes, so its next children are covered from
	 * their first instruction. Workers forked at start-up (nginx) are not a
	 * reason: their fork is followed at once, and sharing makes every other
	 * user of the library trap. */
	if (ps->cap && proc_age_ms(parent->tgid) >= TLS_SHARE_AGE_MS)
		capture_tls_share(ps->cap, parent->tgid);
	ps->starting = true;
	child = procs_watch(ps, ev->h.tgid, parent->svc);
	ps->starting = false;
	/* Whatever the parent's age (the child's own first moments may have
	 * passed unseen; its siblings' will not). */
	child_of(ps, parent, child);
}

void procs_on_exit(struct procs *ps, const struct sonde_ev_proc *ev)
{
	procs_forget(ps, ev->h.tgid);
}

void procs_on_listen(struct procs *ps, const struct sonde_ev_conn *ev)
{
	struct proc *p = hmap_get(&ps->procs, ev->h.tgid);
	uint16_t port = ev->t.lport;

	if (!p) {
		for (size_t i = 0; i < ps->n_services; i++) {
			if (port_selected(ps->services[i].cfg, port)) {
				p = procs_watch(ps, ev->h.tgid, &ps->services[i]);
				break;
			}
		}
		if (!p)
			return;
	}
	for (unsigned i = 0; i < p->n_listen; i++)
		if (p->listen_ports[i] == port)
			return;
	if (p->n_listen < 32)
		p->listen_ports[p->n_listen++] = port;
}

/* In a replay, a recorded process comes back with the identity it had. */
struct proc *procs_restore(struct procs *ps, uint32_t tgid, const char *service,
                           const char *exe_name, const uint16_t *ports, unsigned n_ports)
{
	struct proc *p;
	bool named;

	procs_forget(ps, tgid);
	p = procs_get(ps, tgid);
	if (!p)
		return NULL;
	/* procs_get made a placeholder; give it the recorded identity. */
	snprintf(p->exe_name, sizeof(p->exe_name), "%.63s", exe_name);
	/* The recorded name, unless the replay's config names the service. */
	named = ps->cfg->service_name || (p->svc && p->svc->cfg->name);
	if (!named && service[0] && p->res) {
		char *n = strdup(service);
		if (n) {
			free(p->res->service_name);
			p->res->service_name = n;
			attr_set_str(&p->res->attrs, "service.name", n, strlen(n));
		}
	}
	if (p->res)
		attr_set_str(&p->res->attrs, "process.executable.name", exe_name, strlen(exe_name));
	p->n_listen = n_ports < PROC_MAX_LISTEN ? n_ports : PROC_MAX_LISTEN;
	memcpy(p->listen_ports, ports, p->n_listen * sizeof(*ports));
	return p;
}
