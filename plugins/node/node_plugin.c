/*
 * node_plugin.c - the Node.js runtime plugin: request contexts for Node.js
 * processes, so a client call made while serving a request (HTTP, Redis,
 * SQL ...) is parented under that request's server span even when many
 * requests interleave on the one event-loop thread.
 *
 * The one idea: Node.js knows which request a callback works for (its
 * async_hooks follow every promise, timer and socket from the request that
 * created it); the kernel does not. The plugin runs a small script in the
 * process once (node_ctx.js, through Node's inspector, opened by SIGUSR1
 * only when the handler is Node's own) that writes the current request key
 * where the plugin's BPF programs read it at every socket syscall of the
 * event loop (node.bpf.c), and the host stamps each chunk with that key.
 * A server span then becomes the active span of its request's key, and a
 * client span written under the same key finds it as its parent: no
 * context_link is needed, the keys are the requests'.
 *
 * Per process (process_new): recognise Node (its ELF, node_elf.c), queue
 * it; a timer works the queue one process at a time (the inspector's port
 * is shared): checks (node_check.c: /proc, Node's options, the kernel's
 * sigaction for SIGUSR1 through the BPF task iterator), then the injection
 * job (node_inject.c) and, when the kernel saw the script's registration
 * (a record), process_set(SONDE_PROCESS_CONTEXTS). Any refusal or failure
 * is one log line; the process stays watched through the generic layer.
 */
#define _GNU_SOURCE
#include <sonde/plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "node_bpf.h"
#include "node_cdp.h"
#include "node_check.h"
#include "node_elf.h"
#include "node_inject.h"
#include "node_plugin.h"
#include "node_proc.h"
#include "node_rec.h"

/* Embedded by node_embed.c. */
extern const unsigned char node_bpf_obj_start[], node_bpf_obj_end[];
extern const char node_ctx_js_start[];

#define NODE_REC_BASES 8        /* record-type bases tried: 1500, 1600, ... */
#define NODE_CACHE_MAX 16       /* executables remembered */
#define NODE_PROCS_MAX 4096
#define NODE_TICK_NS 20000000ull   /* the queue's timer */
#define NODE_TICK_BUDGET_NS 30000000ull /* time one tick may spend on a job */
#define NODE_NFD_DEFAULT 65536u

enum node_pstate {
	NP_QUEUED = 1,  /* waits for its turn */
	NP_JOB,         /* the injection job runs */
	NP_ACTIVE,      /* contexts followed */
	NP_REFUSED,     /* left to the generic layer */
};

struct node_pp {
	uint32_t pid;
	enum node_pstate state;
	uint64_t nonce;
	char exe[64];            /* basename, for log lines */
	char how[64];            /* how SIGUSR1 was found to be Node's */
};

struct node_cache_ent {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct node_image im;
	int ok;                  /* node_elf_inspect succeeded */
};

struct node_state {
	const struct sonde_host_api *host;
	struct sonde_plugin_handle *self;
	struct node_bpf *bpf;
	int bpf_tried;
	char bpf_why[200];
	uint32_t rec_base;
	uint32_t nfd;
	int inspector;           /* the setting: may the plugin open the inspector */
	struct node_pp *procs;
	size_t nprocs;
	struct node_job job;
	struct node_pp *job_pp;  /* the process the job is for, or NULL */
	struct sonde_timer *tick;
	struct node_cache_ent cache[NODE_CACHE_MAX];
	size_t ncache;
	struct node_counters c;
	uint64_t kstats[NODE_ST_COUNT];
};

static const struct node_state *debug_state;

const char *node_script_text(void)
{
	return node_ctx_js_start;
}

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : (p ? p : "?");
}

static int host_ok(const struct sonde_host_api *h)
{
	return h->abi_minor >= 1 && SONDE_HAS_FIELD(h, struct sonde_host_api, process_set) &&
	       h->bpf_load && h->bpf_map_fd && h->records_claim && h->process_set &&
	       h->timer_start && h->timer_stop;
}

/* --- settings ----------------------------------------------------------------------- */

static void cfg_bool(struct node_state *st, const char *key, int *out)
{
	const char *const *v;

	if (st->host->config_get(st->self, NULL, key, &v) < 1)
		return;
	if (!strcmp(v[0], "false") || !strcmp(v[0], "no") || !strcmp(v[0], "0"))
		*out = 0;
	else if (!strcmp(v[0], "true") || !strcmp(v[0], "yes") || !strcmp(v[0], "1"))
		*out = 1;
	else
		st->host->log(st->self, SONDE_LOG_WARN, "%s: %s is not true or false, ignored", key,
			      v[0]);
}

static void cfg_number(struct node_state *st, const char *key, uint32_t *out, uint32_t lo,
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

/* --- processes ------------------------------------------------------------------------- */

static struct node_pp *pp_find(struct node_state *st, uint32_t pid)
{
	for (size_t i = 0; i < st->nprocs; i++)
		if (st->procs[i].pid == pid)
			return &st->procs[i];
	return NULL;
}

static struct node_pp *pp_add(struct node_state *st, uint32_t pid)
{
	struct node_pp *p;

	if (!st->procs) {
		st->procs = calloc(NODE_PROCS_MAX, sizeof(*st->procs));
		if (!st->procs)
			return NULL;
	}
	if (st->nprocs == NODE_PROCS_MAX)
		return NULL;
	p = &st->procs[st->nprocs++];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	return p;
}

static void pp_del(struct node_state *st, struct node_pp *p)
{
	size_t i = (size_t)(p - st->procs);

	if (st->job_pp == p)
		st->job_pp = NULL;
	st->procs[i] = st->procs[--st->nprocs];
	if (st->job_pp == &st->procs[st->nprocs])
		st->job_pp = &st->procs[i]; /* it moved */
}

static const struct node_cache_ent *image_for(struct node_state *st, const char *path)
{
	struct node_cache_ent *e;
	struct stat sb;

	if (stat(path, &sb))
		return NULL;
	for (size_t i = 0; i < st->ncache; i++) {
		e = &st->cache[i];
		if (e->dev == sb.st_dev && e->ino == sb.st_ino && e->size == sb.st_size &&
		    e->mtime.tv_sec == sb.st_mtim.tv_sec && e->mtime.tv_nsec == sb.st_mtim.tv_nsec)
			return e;
	}
	if (st->ncache == NODE_CACHE_MAX) {
		memmove(st->cache, st->cache + 1, (NODE_CACHE_MAX - 1) * sizeof(st->cache[0]));
		st->ncache--;
	}
	e = &st->cache[st->ncache++];
	memset(e, 0, sizeof(*e));
	e->ok = node_elf_inspect(path, &e->im) == 0;
	e->dev = sb.st_dev;
	e->ino = sb.st_ino;
	e->size = sb.st_size;
	e->mtime = sb.st_mtim;
	return e;
}

/* The image holding Node's code in pid (the executable, or a libnode.so it
 * maps), and its load bias. 1 found, 0 not Node. */
static int node_image_of(struct node_state *st, uint32_t pid, struct node_image *im,
			 uint64_t *bias, char *where, size_t cap)
{
	char exe[64], lib[512];
	const struct node_cache_ent *e;
	struct stat sb;
	uint64_t start;

	snprintf(exe, sizeof(exe), "/proc/%u/exe", pid);
	e = image_for(st, exe);
	if (e && e->ok && e->im.is_node) {
		*im = e->im;
		if (stat(exe, &sb) || node_map_start(pid, sb.st_ino, &start, NULL, 0))
			return 0;
		*bias = im->pie ? start - im->base : 0;
		snprintf(where, cap, "%s", exe);
		return 1;
	}
	if (node_find_libnode(pid, lib, sizeof(lib)))
		return 0;
	snprintf(where, cap, "/proc/%u/root%s", pid, lib);
	e = image_for(st, where);
	if (!e || !e->ok || !e->im.is_node || stat(where, &sb) ||
	    node_map_start(pid, sb.st_ino, &start, NULL, 0))
		return 0;
	*im = e->im;
	*bias = start - im->base;
	return 1;
}

static int refuse(struct node_state *st, struct node_pp *p, const char *why, const char *warn)
{
	st->host->log(st->self, SONDE_LOG_WARN,
		      "pid %u (%s): %s%s%s; request contexts off, the process stays watched through "
		      "the generic layer",
		      p->pid, p->exe, why, warn && warn[0] ? "; " : "", warn ? warn : "");
	p->state = NP_REFUSED;
	st->c.procs_refused++;
	return SONDE_ERR_NOENT;
}

static void load_bpf(struct node_state *st)
{
	if (st->bpf_tried)
		return;
	st->bpf_tried = 1;
	st->bpf = node_bpf_open(st->host, st->self, node_bpf_obj_start,
				(size_t)(node_bpf_obj_end - node_bpf_obj_start), st->bpf_why,
				sizeof(st->bpf_why));
	if (!st->bpf)
		st->host->log(st->self, SONDE_LOG_INFO, "%s: Node.js processes keep the generic layer",
			      st->bpf_why);
}

/* Checks, then the job. 0 started, -1 refused (logged). */
static int job_begin(struct node_state *st, struct node_pp *p)
{
	char path[64], why[256], where[600], *status, *cmd, *env, *expr;
	size_t slen = 0, clen = 0, elen = 0;
	struct node_sigmasks m;
	struct node_image im;
	struct node_sig sig;
	struct node_proc kp;
	uint64_t bias = 0;
	uint32_t opts;
	enum node_sig_verdict v;
	int rc;

	load_bpf(st);
	if (!st->bpf)
		return refuse(st, p, "no BPF object", NULL), -1;
	if (!node_image_of(st, p->pid, &im, &bias, where, sizeof(where)))
		return refuse(st, p, "Node's code is not found in its mappings", NULL), -1;
	if (node_version_check(&im, why, sizeof(why)))
		return refuse(st, p, why, NULL), -1;
	snprintf(path, sizeof(path), "/proc/%u/status", p->pid);
	status = node_read_file(path, 1 << 16, &slen);
	snprintf(path, sizeof(path), "/proc/%u/cmdline", p->pid);
	cmd = node_read_file(path, 1 << 20, &clen);
	snprintf(path, sizeof(path), "/proc/%u/environ", p->pid);
	env = node_read_file(path, 1 << 20, &elen);
	rc = !status || node_status_parse(status, slen, &m) ? -1 : 0;
	opts = node_opts_scan(cmd, cmd ? clen : 0, env, env ? elen : 0);
	free(status);
	free(cmd);
	free(env);
	if (rc)
		return refuse(st, p, "its /proc/PID/status cannot be read", NULL), -1;
	if (node_precheck(&m, opts, why, sizeof(why)))
		return refuse(st, p, why, NULL), -1;
	if (node_bpf_sig(st->bpf, p->pid, &sig)) {
		snprintf(why, sizeof(why), "its SIGUSR1 handler cannot be read (%s)", strerror(errno));
		return refuse(st, p, why, NULL), -1;
	}
	v = node_sig_verdict(&sig, &im, bias, why, sizeof(why));
	if (v == NODE_SIG_REFUSE)
		return refuse(st, p, why, NULL), -1;
	snprintf(p->how, sizeof(p->how), "%s",
		 v == NODE_SIG_OWN_SYMBOL ? "Node's own, by its symbol" : "Node's own, by its flags");
	if (getrandom(&p->nonce, sizeof(p->nonce), 0) != sizeof(p->nonce) || !p->nonce)
		return refuse(st, p, "no random nonce", NULL), -1;
	memset(&kp, 0, sizeof(kp));
	kp.nonce = p->nonce;
	kp.state = NODE_PS_WAIT;
	kp.rec_base = st->rec_base;
	if (node_bpf_proc_set(st->bpf, p->pid, &kp)) {
		snprintf(why, sizeof(why), "node_procs update failed: %s", strerror(errno));
		return refuse(st, p, why, NULL), -1;
	}
	expr = node_cdp_script_call(node_ctx_js_start, p->nonce, (uint32_t)getpid(), st->nfd);
	if (node_job_start(&st->job, p->pid, expr, mono_ns())) {
		node_bpf_proc_del(st->bpf, p->pid);
		snprintf(why, sizeof(why), "%s", st->job.why);
		node_job_free(&st->job);
		return refuse(st, p, why, NULL), -1;
	}
	p->state = NP_JOB;
	st->job_pp = p;
	return 0;
}

/* Key TLS writes too, in the OpenSSL the process runs (the executable,
 * libnode or libssl): SSL_write and SSL_write_ex take the current key (or
 * their connection's), SSL_set_connect_state gives a client connection the
 * key of the request that made it, SSL_set_accept_state forgets a server
 * connection's. Says in note what was done. */
static void attach_tls(struct node_state *st, struct node_pp *p, char *note, size_t cap)
{
	static const struct {
		const char *prog, *sym;
	} probes[] = {
		{ "node_ssl_write", "SSL_write" },
		{ "node_ssl_write", "SSL_write_ex" },
		{ "node_ssl_connect", "SSL_set_connect_state" },
		{ "node_ssl_accept", "SSL_set_accept_state" },
	};
	const struct node_cache_ent *e;
	struct node_image im;
	char where[600], lib[400];
	uint64_t bias;
	int n = 0, rc = SONDE_OK;

	if (!node_image_of(st, p->pid, &im, &bias, where, sizeof(where)))
		im.has_ssl_write = 0;
	if (!im.has_ssl_write) {
		if (node_find_mapped(p->pid, "libssl.so", lib, sizeof(lib))) {
			snprintf(note, cap, "no OpenSSL mapped: TLS writes not keyed");
			return;
		}
		snprintf(where, sizeof(where), "/proc/%u/root%s", p->pid, lib);
		e = image_for(st, where);
		if (!e || !e->ok || !e->im.has_ssl_write) {
			snprintf(note, cap, "its libssl has no SSL_write: TLS writes not keyed");
			return;
		}
		im = e->im;
	}
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		if (i == 1 && !im.has_ssl_write_ex)
			continue;
		rc = node_bpf_uprobe(st->bpf, st->host, p->pid, probes[i].prog, where, probes[i].sym);
		if (rc != SONDE_OK)
			break;
		n++;
	}
	if (rc != SONDE_OK)
		snprintf(note, cap, "TLS probes not all attached (%s): TLS writes may have no key",
			 st->host->strerror(rc));
	else
		snprintf(note, cap, "TLS writes keyed (%d probes)", n);
}

static void job_end(struct node_state *st)
{
	struct node_pp *p = st->job_pp;
	struct node_job *j = &st->job;
	char tls[160];
	int rc;

	st->job_pp = NULL;
	if (!p) {
		node_job_free(j);
		return;
	}
	if (j->phase != NJ_DONE || !j->ok) {
		if (st->bpf)
			node_bpf_proc_del(st->bpf, p->pid);
		refuse(st, p, j->why[0] ? j->why : "the script was not installed", j->warn);
		node_job_free(j);
		return;
	}
	attach_tls(st, p, tls, sizeof(tls));
	rc = st->host->process_set(st->self, p->pid, SONDE_PROCESS_CONTEXTS);
	st->host->log(st->self, rc == SONDE_OK ? SONDE_LOG_INFO : SONDE_LOG_WARN,
		      "pid %u (%s): Node.js v%s, request contexts on (async_hooks script through the "
		      "inspector, opened and closed again; SIGUSR1 handler: %s)%s, %s, records %u..%u",
		      p->pid, p->exe, j->res.node, p->how,
		      j->res.replaced ? ", replacing an earlier agent's script" : "", tls, st->rec_base,
		      st->rec_base + NODE_REC_COUNT - 1);
	if (j->warn[0])
		st->host->log(st->self, SONDE_LOG_WARN, "pid %u (%s): %s", p->pid, p->exe, j->warn);
	p->state = NP_ACTIVE;
	st->c.procs_ok++;
	node_job_free(j);
}

static void job_pump(struct node_state *st)
{
	uint64_t t0 = mono_ns();

	for (int guard = 0; guard < 64; guard++) {
		enum node_job_phase before = st->job.phase, now;

		now = node_job_step(&st->job, mono_ns());
		if (now == NJ_DONE || now == NJ_FAILED) {
			job_end(st);
			return;
		}
		if (now != before)
			continue;
		/* Nothing moved: wait a little for the inspector's answer, within
		 * this tick's budget, so its port is open for as short a time as
		 * possible; the rest waits for the next tick. */
		if (st->job.fd < 0 || mono_ns() - t0 > NODE_TICK_BUDGET_NS)
			return;
		{
			struct pollfd pf = { .fd = st->job.fd, .events = POLLIN };

			poll(&pf, 1, 5);
		}
	}
}

static void tick(void *arg, uint64_t now)
{
	struct node_state *st = arg;

	(void)now;
	if (st->job_pp) {
		job_pump(st);
		return;
	}
	for (size_t i = 0; i < st->nprocs; i++) {
		if (st->procs[i].state != NP_QUEUED)
			continue;
		if (job_begin(st, &st->procs[i]) == 0) {
			job_pump(st);
			return;
		}
	}
	/* Nothing left to do. */
	st->host->timer_stop(st->tick);
	st->tick = NULL;
	node_bpf_stats(st->bpf, st->kstats);
}

static void tick_start(struct node_state *st)
{
	if (!st->tick)
		st->tick = st->host->timer_start(st->self, 0, NODE_TICK_NS, tick, st);
}

static int node_process_new(void *state, const struct sonde_process_info *pi)
{
	struct node_state *st = state;
	struct node_image im;
	struct node_pp *p;
	char where[600];
	uint64_t bias;

	if (!st || !pi)
		return SONDE_ERR_INVAL;
	if (pp_find(st, pi->pid))
		return SONDE_OK;
	if (!node_image_of(st, pi->pid, &im, &bias, where, sizeof(where)))
		return SONDE_OK; /* not Node.js: not ours to say anything */
	p = pp_add(st, pi->pid);
	if (!p)
		return SONDE_ERR_LIMIT;
	snprintf(p->exe, sizeof(p->exe), "%s", base_name(pi->exe_path));
	if (!st->inspector)
		return refuse(st, p, "the setting inspector: false forbids opening its inspector",
			      NULL);
	p->state = NP_QUEUED;
	tick_start(st);
	return SONDE_OK;
}

static void node_process_gone(void *state, uint32_t pid)
{
	struct node_state *st = state;
	struct node_pp *p = st ? pp_find(st, pid) : NULL;

	if (!p)
		return;
	if (st->job_pp == p) {
		node_job_free(&st->job);
		st->job_pp = NULL;
	}
	if (st->bpf && p->state != NP_REFUSED)
		node_bpf_proc_del(st->bpf, pid);
	pp_del(st, p);
	node_bpf_stats(st->bpf, st->kstats);
}

/* --- records ------------------------------------------------------------------------------ */

/* The key of the request that opened an HTTP/2 client stream: the grpc
 * plugin takes it when it starts that stream's span (SDK 1.2). Only for a
 * process whose contexts are followed; without the host call, counted. */
static void h2_record(struct node_state *st, const struct node_rec_h2 *r)
{
	const struct sonde_host_api *host = st->host;
	struct node_pp *p = pp_find(st, r->h.tgid);
	struct sonde_conn *conn;

	if (!r->stream || !r->key || r->stream > 0x7fffffffu) {
		st->c.bad++;
		return;
	}
	if (!p || p->state != NP_ACTIVE) {
		st->c.h2_stray++;
		return;
	}
	if (!SONDE_HAS_FIELD(host, struct sonde_host_api, conn_stream_context_set) ||
	    !host->conn_stream_context_set || !host->conn_lookup) {
		st->c.h2_nohost++;
		return;
	}
	conn = host->conn_lookup(st->self, r->h.tgid, r->h.fd);
	if (!conn) {
		st->c.h2_noconn++;
		return;
	}
	if (host->conn_stream_context_set(conn, r->stream, r->key) == SONDE_OK)
		st->c.h2_given++;
	else
		st->c.h2_noconn++;
}

static void node_record(void *state, const void *rec, size_t len)
{
	struct node_state *st = state;
	const struct node_rec_hdr *h = rec;
	const struct node_rec_reg *r = rec;
	struct node_pp *p;

	if (!st || !rec || len < sizeof(*h) || h->type < st->rec_base ||
	    h->type >= st->rec_base + NODE_REC_COUNT) {
		if (st)
			st->c.bad++;
		return;
	}
	if (h->type - st->rec_base == NODE_REC_H2) {
		if (len < sizeof(struct node_rec_h2)) {
			st->c.bad++;
			return;
		}
		h2_record(st, rec);
		return;
	}
	if (h->type - st->rec_base != NODE_REC_REG || len < sizeof(*r) || !r->slot || !r->nfd ||
	    r->nfd > NODE_NFD_MAX) {
		st->c.bad++;
		return;
	}
	p = pp_find(st, h->tgid);
	if (!p || p->state != NP_JOB || st->job_pp != p || r->nonce != p->nonce) {
		st->c.regs_stray++;
		return;
	}
	st->c.regs++;
	node_job_registered(&st->job, 1);
}

/* --- init / fini ----------------------------------------------------------------------------- */

static int claim(struct node_state *st)
{
	for (uint32_t i = 0; i < NODE_REC_BASES; i++) {
		uint32_t base = 1500 + 100 * i;

		if (st->host->records_claim(st->self, base, NODE_REC_COUNT) == SONDE_OK) {
			st->rec_base = base;
			return 0;
		}
	}
	return -1;
}

static int node_init(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
		     void **state)
{
	struct node_state *st;

	if (!host_ok(host)) {
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
	st->inspector = 1;
	st->nfd = NODE_NFD_DEFAULT;
	st->job.fd = -1;
	cfg_bool(st, "inspector", &st->inspector);
	cfg_number(st, "fd_table", &st->nfd, 1024, NODE_NFD_MAX);
	if (claim(st)) {
		host->log(self, SONDE_LOG_ERROR, "no free record-type range (tried 1500..%u)",
			  1500 + 100 * (NODE_REC_BASES - 1));
		free(st);
		return SONDE_ERR_LIMIT;
	}
	*state = st;
	debug_state = st;
	return SONDE_OK;
}

/* At exit, a job in the middle of its session still closes the inspector:
 * it is told the registration was not seen (the script's hooks go) and
 * worked for a short while. */
static void finish_job(struct node_state *st)
{
	uint64_t end = mono_ns() + 2000000000ull;

	if (!st->job_pp)
		return;
	if (st->job.phase <= NJ_WAIT_REG && st->job.registered < 0)
		node_job_registered(&st->job, 0);
	while (mono_ns() < end) {
		enum node_job_phase ph = node_job_step(&st->job, mono_ns());

		if (ph == NJ_DONE || ph == NJ_FAILED || ph == NJ_CLOSE)
			break;
		usleep(5000);
	}
	node_job_free(&st->job);
	st->job_pp = NULL;
}

static void node_fini(void *state)
{
	struct node_state *st = state;
	const uint64_t *k;

	if (!st)
		return;
	finish_job(st);
	node_bpf_stats(st->bpf, st->kstats);
	k = st->kstats;
	st->host->log(st->self, SONDE_LOG_INFO,
		      "processes %" PRIu64 " with request contexts, %" PRIu64 " refused; syscalls "
		      "keyed %" PRIu64 " by JavaScript, %" PRIu64 " by fd, %" PRIu64 " without a key"
		      ", %" PRIu64 " stale fd keys, %" PRIu64 " unreadable; registrations %" PRIu64
		      " (stray %" PRIu64 ", other writes while waiting %" PRIu64 "); HTTP/2 client "
		      "streams keyed %" PRIu64 " (kernel %" PRIu64 ", not ours %" PRIu64 "; no "
		      "connection %" PRIu64 ", host without SDK 1.2 %" PRIu64 ", stray %" PRIu64
		      "); bad records %" PRIu64,
		      st->c.procs_ok, st->c.procs_refused, k[NODE_ST_CUR], k[NODE_ST_TABLE],
		      k[NODE_ST_NONE], k[NODE_ST_STALE], k[NODE_ST_FAULT], st->c.regs,
		      st->c.regs_stray, k[NODE_ST_REG_BAD], st->c.h2_given, k[NODE_ST_H2],
		      k[NODE_ST_H2_BAD], st->c.h2_noconn, st->c.h2_nohost, st->c.h2_stray, st->c.bad);
	/* Our copy of the object goes here (its maps are the host's copy's,
	 * which the host frees after this). */
	node_bpf_close(st->bpf);
	free(st->procs);
	if (debug_state == st)
		debug_state = NULL;
	free(st);
}

const struct node_counters *node_debug_counters(void)
{
	return debug_state ? &debug_state->c : NULL;
}

uint32_t node_debug_rec_base(void)
{
	return debug_state ? debug_state->rec_base : 0;
}

int node_debug_set_active(uint32_t pid)
{
	struct node_state *st = (struct node_state *)debug_state;
	struct node_pp *p;

	if (!st)
		return -1;
	p = pp_find(st, pid);
	if (!p && !(p = pp_add(st, pid)))
		return -1;
	p->state = NP_ACTIVE;
	return 0;
}

static const struct sonde_plugin node_plugin = {
	.abi_major = SONDE_ABI_MAJOR,
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "node",
	.version = "0.1.0",
	.license = "Apache-2.0",
	.description = "Node.js runtime: request contexts across the event loop (async_hooks "
	               "through the inspector) for span parenting",
	.init = node_init,
	.fini = node_fini,
	.process_new = node_process_new,
	.process_gone = node_process_gone,
	.record = node_record,
};

SONDE_PLUGIN_DEFINE(node_plugin)
