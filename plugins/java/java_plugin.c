/*
 * java_plugin.c - the Java runtime plugin: loads a small Java agent into
 * each HotSpot JVM the host watches (dynamic attach, no restart) and turns
 * the JSSE plaintext the agent reports into chunks of the host's own
 * connections, so the HTTP, gRPC or SQL plugin reads TLS traffic of Java
 * programs like any bytes (url.scheme=https).
 *
 * The one idea: three parties, each doing one thing. The agent
 * (agent/, Java) hooks SSLSocket and SSLEngine and writes each piece of
 * plaintext, with its socket's fd, to /dev/null with pwrite at a secret
 * offset (the token). The BPF program (java.bpf.c), a uprobe on that JVM's
 * pwrite64, copies calls with the token into the ring buffer. This file
 * attaches, hands out tokens, reads the messages back, and injects them
 * into the connection the host has for (pid, fd).
 *
 * Per JVM (process_new, then a timer): wait until it finished starting,
 * refuse (one log line, the generic layer keeps it) if it disables attach
 * or does not handle SIGQUIT, else: a token in java_cfgs, the uprobe, a
 * lock file it holds and the agent's jar in the JVM's /tmp, and the attach
 * on a thread of its own (java_attach.c blocks). Holding the lock keeps the
 * agent running; closing it (fini, process_gone, or this process dying)
 * makes the agent restore the JDK's classes and stop.
 *
 * Request contexts: once the agent said hello, every thread of the JVM
 * carries a key in the host's sonde_thread_ctx (its own, JAVA_KEY_THREAD |
 * tid, or a handed-off task's), the process is marked
 * SONDE_PROCESS_CONTEXTS, and each BEGIN message (task key K on this thread,
 * handed from a thread whose key was P) becomes context_link(K, P), each
 * END context_end(K). So a client span made by a task finds the server span
 * of the thread that handed it off (java.bpf.c, README "Hand-offs").
 */
#define _GNU_SOURCE
#include <sonde/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "java_attach.h"
#include "java_msg.h"
#include "java_plugin.h"
#include "java_proc.h"
#include "java_rec.h"
#include "java_tp.h"

/* The BPF object and the agent jar, embedded by java_bpf_obj.c and
 * java_agent_jar.c. */
extern const unsigned char java_bpf_obj_start[], java_bpf_obj_end[];
extern const unsigned char java_agent_jar_start[], java_agent_jar_end[];

#define JAVA_REC_BASES 8       /* record-type bases tried: 1300, 1400, ... */
#define JAVA_JVMS_MAX 256
#define JAVA_STREAMS 8192      /* plaintext streams followed for gaps */
#define JAVA_STREAM_WAYS 8
#define JAVA_WAIT_TRIES 24     /* looks at a starting JVM (about 40 s) */
#define JAVA_HELLO_NS (15ull * 1000000000ull) /* the agent's first word, at most */
#define JAVA_TICK_NS 200000000ull
#define JAVA_ATTACH_MS 10000

enum jvm_state {
	J_WAIT = 0,   /* not ready yet: look again at next_ns */
	J_ATTACHING,  /* the attach thread runs */
	J_LOADED,     /* the JVM ran the agent: waiting for its hello */
	J_ON,         /* the agent said hello */
	J_OFF,        /* refused or failed: the generic layer only */
};

struct job {
	pthread_t th;
	struct java_attach_req req;
	char agent[1100];
	volatile int cancel;
	atomic_int done;
	int rc;
	struct java_attach_res res;
	char err[256];
};

struct jvm {
	uint32_t pid;
	enum jvm_state state;
	unsigned tries;
	uint64_t next_ns;      /* J_WAIT: next look; J_LOADED: hello deadline */
	uint64_t t0_ns;        /* attach started */
	uint64_t token;
	int lock_fd;
	int probed;            /* the uprobe is attached (lives until process_gone) */
	int ctx_on;            /* contexts followed (SONDE_PROCESS_CONTEXTS set) */
	char lock_path[96];    /* host-side paths, for unlink */
	char jar_path[96];
	char exe[64];
	struct job *job;
};

struct jstream {
	uint32_t pid;
	uint32_t tick;         /* last use, 0: free */
	uint64_t id;
	uint64_t next[2];
	uint8_t known[2];
};

struct java_state {
	const struct sonde_host_api *host;
	struct sonde_plugin_handle *self;
	struct sonde_bpf *bpf;
	int bpf_tried;
	int cfg_fd, stats_fd, thr_fd;
	struct java_tp *tp;
	int tp_tried;
	int contexts;           /* setting `contexts` */
	uint32_t rec_base;
	uint32_t cap;
	int attach;             /* setting `attach` */
	int64_t mono_to_real;
	struct jvm *jvms;
	size_t njvms;
	struct jstream *streams;
	uint32_t tick;
	struct sonde_timer *timer;
	uint64_t kstats[JAVA_ST_COUNT];
	struct java_counters c;
};

static const struct java_state *debug_state;

/* --- small helpers ------------------------------------------------------------------ */

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int64_t clock_offset(void)
{
	struct timespec r, m;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return ((int64_t)r.tv_sec - m.tv_sec) * 1000000000ll + ((int64_t)r.tv_nsec - m.tv_nsec);
}

static int map_call(int cmd, int fd, const void *key, void *val)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)fd;
	a.key = (uint64_t)(uintptr_t)key;
	a.value = (uint64_t)(uintptr_t)val;
	a.flags = cmd == BPF_MAP_UPDATE_ELEM ? BPF_ANY : 0;
	return (int)syscall(__NR_bpf, cmd, &a, sizeof(a));
}

static const char *basename_of(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : (p && *p ? p : "?");
}

static int host_ok(const struct sonde_host_api *h)
{
	return h->abi_minor >= 1 && SONDE_HAS_FIELD(h, struct sonde_host_api, process_set) &&
	       h->conn_lookup && h->conn_inject && h->bpf_load && h->bpf_uprobe && h->bpf_map_fd &&
	       h->records_claim && h->timer_start;
}

/* Sum the BPF program's per-CPU counters (while the object is loaded). */
static void stats_refresh(struct java_state *st)
{
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	uint64_t *v;

	if (st->stats_fd < 0 || ncpu <= 0)
		return;
	v = calloc((size_t)ncpu, sizeof(uint64_t));
	if (!v)
		return;
	for (uint32_t i = 0; i < JAVA_ST_COUNT; i++) {
		uint64_t sum = 0;

		if (map_call(BPF_MAP_LOOKUP_ELEM, st->stats_fd, &i, v))
			continue;
		for (long c = 0; c < ncpu; c++)
			sum += v[c];
		st->kstats[i] = sum;
	}
	free(v);
}

/* --- settings ------------------------------------------------------------------------ */

static void cfg_number(struct java_state *st, const char *key, uint32_t *out, uint32_t lo,
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

static void cfg_bool(struct java_state *st, const char *key, int *out)
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

/* --- JVM table ----------------------------------------------------------------------- */

static struct jvm *jvm_find(struct java_state *st, uint32_t pid)
{
	for (size_t i = 0; i < st->njvms; i++)
		if (st->jvms[i].pid == pid)
			return &st->jvms[i];
	return NULL;
}

static struct jvm *jvm_add(struct java_state *st, uint32_t pid, const char *exe)
{
	struct jvm *j;

	if (!st->jvms) {
		st->jvms = calloc(JAVA_JVMS_MAX, sizeof(*st->jvms));
		if (!st->jvms)
			return NULL;
	}
	if (st->njvms == JAVA_JVMS_MAX)
		return NULL;
	j = &st->jvms[st->njvms++];
	memset(j, 0, sizeof(*j));
	j->pid = pid;
	j->lock_fd = -1;
	snprintf(j->exe, sizeof(j->exe), "%s", basename_of(exe));
	return j;
}

static void streams_forget(struct java_state *st, uint32_t pid)
{
	for (size_t i = 0; st->streams && i < JAVA_STREAMS; i++)
		if (st->streams[i].tick && st->streams[i].pid == pid)
			memset(&st->streams[i], 0, sizeof(st->streams[i]));
}

/* Stop the attach thread of j, if any (it polls its cancel flag). */
static void job_stop(struct jvm *j)
{
	if (!j->job)
		return;
	j->job->cancel = 1;
	pthread_join(j->job->th, NULL);
	free(j->job);
	j->job = NULL;
}

/* Everything j holds, let go: the agent stops when the lock goes. */
static void jvm_release(struct java_state *st, struct jvm *j)
{
	job_stop(j);
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	j->lock_fd = -1;
	if (j->lock_path[0])
		unlink(j->lock_path);
	if (j->jar_path[0])
		unlink(j->jar_path);
	j->lock_path[0] = j->jar_path[0] = 0;
	if (st->cfg_fd >= 0 && j->token)
		map_call(BPF_MAP_DELETE_ELEM, st->cfg_fd, &j->pid, NULL);
	j->token = 0;
	/* Back to the host's thread guess (not at fini: the host goes too). */
	if (j->ctx_on && st->cfg_fd >= 0)
		st->host->process_set(st->self, j->pid, 0);
	j->ctx_on = 0;
}

static void jvm_del(struct java_state *st, struct jvm *j)
{
	jvm_release(st, j);
	streams_forget(st, j->pid);
	*j = st->jvms[--st->njvms];
}

/* One line, once per process, and the generic layer keeps it. NOENT:
 * the host does not log a second, vaguer line. */
static int jvm_refuse(struct java_state *st, struct jvm *j, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int jvm_refuse(struct java_state *st, struct jvm *j, const char *fmt, ...)
{
	char why[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	st->host->log(st->self, SONDE_LOG_WARN,
		      "pid %u (%s): %s; JSSE plaintext off, the process stays watched through the "
		      "generic layer",
		      j->pid, j->exe, why);
	jvm_release(st, j);
	j->state = J_OFF;
	st->c.procs_refused++;
	return SONDE_ERR_NOENT;
}

/* --- BPF ---------------------------------------------------------------------------------- */

static void load_bpf(struct java_state *st)
{
	struct sonde_bpf_opts o = {
		.struct_size = sizeof(o),
		.name = "java",
		.obj = java_bpf_obj_start,
		.obj_len = (size_t)(java_bpf_obj_end - java_bpf_obj_start),
	};
	int rc;

	if (st->bpf_tried)
		return;
	st->bpf_tried = 1;
	rc = st->host->bpf_load(st->self, &o, &st->bpf);
	if (rc != SONDE_OK) {
		st->bpf = NULL;
		st->host->log(st->self, rc == SONDE_ERR_UNSUPPORTED ? SONDE_LOG_INFO : SONDE_LOG_ERROR,
			      "BPF object not loaded (%s): JVMs are not instrumented",
			      st->host->strerror(rc));
		return;
	}
	st->cfg_fd = st->host->bpf_map_fd(st->bpf, "java_cfgs");
	st->stats_fd = st->host->bpf_map_fd(st->bpf, "java_stats");
	st->thr_fd = st->host->bpf_map_fd(st->bpf, "sonde_thread_ctx");
	if (st->cfg_fd < 0) {
		st->host->log(st->self, SONDE_LOG_ERROR, "BPF object has no java_cfgs map");
		st->bpf = NULL;
	}
}

/* --- request contexts ------------------------------------------------------------------- */

/* Every thread of pid that exists now gets its own key (the tracepoint
 * gives one to every thread created from now on). Threads counted. */
static size_t key_threads(struct java_state *st, uint32_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	size_t n = 0;

	snprintf(path, sizeof(path), "/proc/%u/task", pid);
	dir = opendir(path);
	if (!dir)
		return 0;
	while ((d = readdir(dir))) {
		char *end;
		unsigned long tid = strtoul(d->d_name, &end, 10);
		uint32_t key32;
		uint64_t key;

		if (*end || !tid || tid > 0x7fffffffu)
			continue;
		key32 = (uint32_t)tid;
		key = JAVA_KEY_THREAD | key32;
		if (!map_call(BPF_MAP_UPDATE_ELEM, st->thr_fd, &key32, &key))
			n++;
	}
	closedir(dir);
	return n;
}

/* The agent is on: follow the JVM's request contexts, or say why not (the
 * host's thread guess stays). Returns a note for the log line. */
static const char *contexts_on(struct java_state *st, struct jvm *j)
{
	static char why[200];
	struct java_cfg cfg = {.rec_base = st->rec_base, .flags = JAVA_CFG_CTX, .token = j->token};
	size_t n;

	if (!st->contexts)
		return "request contexts off (setting)";
	if (st->thr_fd < 0 || st->cfg_fd < 0 || !st->bpf)
		return "request contexts off (no thread-context map)";
	if (!st->tp_tried) {
		char err[160] = "";

		st->tp_tried = 1;
		st->tp = java_tp_open(st->host, st->bpf, java_bpf_obj_start,
				      (size_t)(java_bpf_obj_end - java_bpf_obj_start), err, sizeof(err));
		if (!st->tp)
			snprintf(why, sizeof(why), "request contexts off (tracepoints: %s)", err);
	}
	if (!st->tp)
		return why;
	/* The flag first (new threads keyed by the kernel), then the threads
	 * that exist, then the host reads the keys. */
	if (map_call(BPF_MAP_UPDATE_ELEM, st->cfg_fd, &j->pid, &cfg))
		return "request contexts off (java_cfgs update failed)";
	n = key_threads(st, j->pid);
	st->c.threads_keyed += n;
	if (st->host->process_set(st->self, j->pid, SONDE_PROCESS_CONTEXTS) != SONDE_OK) {
		cfg.flags = 0;
		map_call(BPF_MAP_UPDATE_ELEM, st->cfg_fd, &j->pid, &cfg);
		return "request contexts off (the host refused SONDE_PROCESS_CONTEXTS)";
	}
	j->ctx_on = 1;
	st->c.procs_ctx++;
	snprintf(why, sizeof(why), "request contexts on (%zu threads keyed)", n);
	return why;
}

/* A task handed off by the thread whose key was parent runs on this thread
 * with key key (BEGIN), or ended (END). */
static void on_task(struct java_state *st, const struct java_rec *r, const struct java_msg *m)
{
	if (m->kind == JAVA_MSG_BEGIN) {
		st->c.begins++;
		if (m->pos)
			st->host->context_link(st->self, r->h.tgid, m->stream, m->pos);
		else
			st->c.begins_orphan++;
		return;
	}
	st->c.ends++;
	st->host->context_end(st->self, r->h.tgid, m->stream);
}

/* Virtual threads. SLOT: the kernel already pointed the carrier's entry at
 * its key word when contexts were on at that moment; here it is done again
 * from user space, for a carrier whose SLOT came before contexts went on
 * (key_threads then gave it its thread key), never over anything else.
 * VSTART and VEND link and end the virtual thread's key. */
static void on_vthread(struct java_state *st, const struct java_rec *r, const struct java_msg *m)
{
	if (m->kind == JAVA_MSG_SLOT) {
		uint32_t tid = r->h.tid;
		uint64_t have = 0, want = m->stream | SONDE_CTX_INDIRECT;
		struct jvm *j = jvm_find(st, r->h.tgid);

		st->c.slots++;
		if (!j || !j->ctx_on || st->thr_fd < 0)
			return;
		if (map_call(BPF_MAP_LOOKUP_ELEM, st->thr_fd, &tid, &have) ||
		    have == (JAVA_KEY_THREAD | tid))
			map_call(BPF_MAP_UPDATE_ELEM, st->thr_fd, &tid, &want);
		return;
	}
	if (m->kind == JAVA_MSG_VSTART) {
		st->c.vstarts++;
		st->host->context_link(st->self, r->h.tgid, m->stream, m->pos);
		return;
	}
	st->c.vends++;
	st->host->context_end(st->self, r->h.tgid, m->stream);
}

/* --- attaching ---------------------------------------------------------------------------- */

static void *job_main(void *arg)
{
	struct job *jb = arg;

	jb->rc = java_attach_load(&jb->req, &jb->res, jb->err, sizeof(jb->err));
	atomic_store(&jb->done, 1);
	return NULL;
}

/* Write the embedded jar to path (a new file: O_EXCL, so nobody else's). */
static int write_jar(const char *path, uint32_t uid, uint32_t gid)
{
	const unsigned char *p = java_agent_jar_start;
	size_t n = (size_t)(java_agent_jar_end - java_agent_jar_start);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0)
		return -1;
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w <= 0) {
			close(fd);
			unlink(path);
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	/* Owned by the JVM's user; root-owned and world-readable loads too. */
	(void)!fchown(fd, uid, gid);
	close(fd);
	return 0;
}

/* The lock file the agent waits on, created and locked by us. */
static int make_lock(const char *path)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0)
		return -1;
	if (fcntl(fd, F_SETLK, &fl)) {
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

static int jvm_probe(struct java_state *st, struct jvm *j, const struct java_proc *p)
{
	char lib[PATH_MAX + 32];
	struct sonde_uprobe_opts o = {
		.struct_size = sizeof(o),
		.pid = j->pid,
		.prog = "java_pwrite",
		.path = lib,
		.symbol = "pwrite64",
	};

	if (j->probed)
		return SONDE_OK;
	snprintf(lib, sizeof(lib), "/proc/%u/root%s", j->pid, p->libc);
	if (st->host->bpf_uprobe(st->bpf, &o) != SONDE_OK)
		return SONDE_ERR_IO;
	j->probed = 1;
	return SONDE_OK;
}

/* Everything the agent needs, then the attach thread. */
static int jvm_start(struct java_state *st, struct jvm *j, const struct java_proc *p)
{
	struct java_cfg cfg = {.rec_base = st->rec_base};
	char tag[24], in_lock[64], in_jar[64];
	struct job *jb;
	int rc;

	if (getrandom(&j->token, sizeof(j->token), 0) != sizeof(j->token))
		return jvm_refuse(st, j, "no random bytes for its token");
	j->token &= 0x3fffffffffffffffull; /* a valid file offset */
	j->token |= 1ull << 61;
	cfg.token = j->token;
	if (map_call(BPF_MAP_UPDATE_ELEM, st->cfg_fd, &j->pid, &cfg))
		return jvm_refuse(st, j, "java_cfgs update failed: %s", strerror(errno));
	rc = jvm_probe(st, j, p);
	if (rc != SONDE_OK)
		return jvm_refuse(st, j, "no uprobe on pwrite64 in %s", p->libc);
	snprintf(tag, sizeof(tag), "%016" PRIx64, j->token);
	snprintf(in_lock, sizeof(in_lock), "/tmp/.sonde-java-%s.lock", tag);
	snprintf(in_jar, sizeof(in_jar), "/tmp/.sonde-java-%s.jar", tag);
	snprintf(j->lock_path, sizeof(j->lock_path), "/proc/%u/root%s", j->pid, in_lock);
	snprintf(j->jar_path, sizeof(j->jar_path), "/proc/%u/root%s", j->pid, in_jar);
	j->lock_fd = make_lock(j->lock_path);
	if (j->lock_fd < 0) {
		j->lock_path[0] = 0;
		return jvm_refuse(st, j, "cannot make its lock file in its /tmp: %s",
				  strerror(errno));
	}
	if (write_jar(j->jar_path, p->uid, p->gid)) {
		j->jar_path[0] = 0;
		return jvm_refuse(st, j, "cannot write the agent jar into its /tmp: %s",
				  strerror(errno));
	}
	jb = calloc(1, sizeof(*jb));
	if (!jb)
		return jvm_refuse(st, j, "out of memory");
	snprintf(jb->agent, sizeof(jb->agent), "%s=v=1,token=%" PRIu64 ",lock=%s,jar=%s,cap=%u", in_jar,
		 j->token, in_lock, in_jar, st->cap);
	jb->req = (struct java_attach_req){
		.pid = j->pid,
		.nspid = p->nspid,
		.uid = p->uid,
		.gid = p->gid,
		.may_signal = 1,
		.agent = jb->agent,
		.timeout_ms = JAVA_ATTACH_MS,
		.cancel = &jb->cancel,
	};
	if (pthread_create(&jb->th, NULL, job_main, jb)) {
		free(jb);
		return jvm_refuse(st, j, "no thread to attach from");
	}
	j->job = jb;
	j->state = J_ATTACHING;
	j->t0_ns = mono_ns();
	return SONDE_OK;
}

/* Not ready yet: look again later, a bounded number of times. */
static int jvm_wait(struct java_state *st, struct jvm *j, const char *why)
{
	uint64_t delay = 250000000ull << (j->tries < 3 ? j->tries : 3);

	if (++j->tries > JAVA_WAIT_TRIES)
		return jvm_refuse(st, j, "%s after %u looks", why, JAVA_WAIT_TRIES);
	j->state = J_WAIT;
	j->next_ns = mono_ns() + delay;
	return SONDE_OK;
}

/* Look at the process and move it on: wait, refuse, or start attaching.
 * *gone set when it is no JVM (the entry is deleted). */
static int jvm_look(struct java_state *st, struct jvm *j, int *gone)
{
	struct java_proc p;
	char sock[96];
	int have_socket;

	*gone = 0;
	if (java_proc_read(j->pid, &p) || (!p.jvm && !p.launcher)) {
		*gone = 1;
		return SONDE_OK;
	}
	if (p.openj9)
		return jvm_refuse(st, j, "an OpenJ9 JVM (its attach mechanism is not HotSpot's)");
	if (!p.jvm)
		return jvm_wait(st, j, "libjvm.so not loaded");
	if ((p.perf_found && p.perf.attachable == 0) || (!p.perf_found && p.flag_no_attach))
		return jvm_refuse(st, j, "the JVM refuses dynamic attach (-XX:+DisableAttachMechanism)");
	snprintf(sock, sizeof(sock), "/proc/%u/root/tmp/.java_pid%u", j->pid, p.nspid);
	have_socket = access(sock, F_OK) == 0;
	/* SIGQUIT goes only to a JVM that said, in its own performance data,
	 * that it is HotSpot, started, and takes attach: to anything else it
	 * may be a thread dump on its stdout, or its end. */
	if (!have_socket && !p.perf_found)
		return jvm_wait(st, j, "no HotSpot performance data (-XX:-UsePerfData?), not signalled");
	if (!have_socket && p.perf.started != 1)
		return jvm_wait(st, j, "the JVM did not finish starting");
	if (!have_socket && !JAVA_SIGQUIT_CAUGHT(&p))
		return jvm_wait(st, j, "the JVM does not handle SIGQUIT (-Xrs?), not signalled");
	if (!p.libc[0])
		return jvm_refuse(st, j, "no C library found in its memory map");
	load_bpf(st);
	if (!st->bpf)
		return jvm_refuse(st, j, "no BPF object loaded");
	return jvm_start(st, j, &p);
}

/* The attach thread finished: what did the JVM answer? */
static void jvm_attached(struct java_state *st, struct jvm *j)
{
	struct job *jb = j->job;
	uint64_t ms = (mono_ns() - j->t0_ns) / 1000000;
	int rc = jb->rc, op = jb->res.op, ag = jb->res.agent;
	char err[256], text[256];

	snprintf(err, sizeof(err), "%s", jb->err);
	snprintf(text, sizeof(text), "%s", jb->res.text);
	job_stop(j);
	/* The agent has opened both: the names can go now. */
	if (j->jar_path[0])
		unlink(j->jar_path);
	if (j->lock_path[0])
		unlink(j->lock_path);
	j->jar_path[0] = j->lock_path[0] = 0;
	if (j->state == J_ON) /* the hello came first */
		return;
	if (rc) {
		jvm_refuse(st, j, "attach failed: %s", err);
		return;
	}
	if (op != 0 || ag != 0) {
		jvm_refuse(st, j, "the JVM did not load the agent (answer %d, %s)", op,
			   text[0] ? text : "no detail");
		return;
	}
	j->state = J_LOADED;
	j->next_ns = mono_ns() + JAVA_HELLO_NS;
	st->host->log(st->self, SONDE_LOG_DEBUG, "pid %u (%s): agent loaded in %" PRIu64 " ms", j->pid,
		      j->exe, ms);
}

static void tick(void *arg, uint64_t now_unix)
{
	struct java_state *st = arg;
	uint64_t now = mono_ns();

	(void)now_unix;
	for (size_t i = 0; i < st->njvms;) {
		struct jvm *j = &st->jvms[i];
		int gone = 0;

		if (j->state == J_WAIT && now >= j->next_ns)
			jvm_look(st, j, &gone);
		else if (j->job && atomic_load(&j->job->done))
			jvm_attached(st, j);
		else if (j->state == J_LOADED && now >= j->next_ns)
			jvm_refuse(st, j, "the agent loaded but never reported (see the "
				   "JVM's stderr)");
		if (gone)
			jvm_del(st, j); /* the last entry moved here: look at i again */
		else
			i++;
	}
	stats_refresh(st);
}

/* --- init / fini ------------------------------------------------------------------------ */

static int claim(struct java_state *st)
{
	for (uint32_t i = 0; i < JAVA_REC_BASES; i++) {
		uint32_t base = 1300 + 100 * i;

		if (st->host->records_claim(st->self, base, JAVA_REC_COUNT) == SONDE_OK) {
			st->rec_base = base;
			return 0;
		}
	}
	return -1;
}

static int java_init(const struct sonde_host_api *host, struct sonde_plugin_handle *self,
		     void **state)
{
	struct java_state *st;

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
	st->cfg_fd = st->stats_fd = st->thr_fd = -1;
	st->cap = JAVA_MAX_PAYLOAD;
	st->attach = 1;
	st->contexts = 1;
	st->mono_to_real = clock_offset();
	cfg_number(st, "payload_cap", &st->cap, 64, JAVA_MAX_PAYLOAD);
	cfg_bool(st, "attach", &st->attach);
	cfg_bool(st, "contexts", &st->contexts);
	st->streams = calloc(JAVA_STREAMS, sizeof(*st->streams));
	if (!st->streams) {
		free(st);
		return SONDE_ERR_NOMEM;
	}
	if (claim(st)) {
		host->log(self, SONDE_LOG_ERROR, "no free record-type range (tried 1300..%u)",
			  1300 + 100 * (JAVA_REC_BASES - 1));
		free(st->streams);
		free(st);
		return SONDE_ERR_LIMIT;
	}
	*state = st;
	debug_state = st;
	return SONDE_OK;
}

static void java_fini(void *state)
{
	struct java_state *st = state;
	const uint64_t *k;

	if (!st)
		return;
	/* The object is the host's and may be gone: no more map calls. */
	st->cfg_fd = st->stats_fd = st->thr_fd = -1;
	for (size_t i = 0; i < st->njvms; i++)
		jvm_release(st, &st->jvms[i]); /* each agent stops when its lock goes */
	java_tp_close(st->tp);
	st->tp = NULL;
	k = st->kstats;
	st->host->log(st->self, SONDE_LOG_INFO,
		      "JVMs %" PRIu64 " instrumented, %" PRIu64 " refused; messages %" PRIu64
		      ", plaintext %" PRIu64 " (injected %" PRIu64 ", socket unknown %" PRIu64
		      ", no connection %" PRIu64 ", after a gap %" PRIu64 "), lost in the kernel %" PRIu64
		      ", bad records %" PRIu64 "; contexts: JVMs %" PRIu64 ", hand-offs %" PRIu64
		      " (submitter unknown %" PRIu64 ", ended %" PRIu64 "), threads keyed %" PRIu64
		      " + %" PRIu64 " created, virtual threads: carriers %" PRIu64 ", started %" PRIu64
		      " (ended %" PRIu64 ")",
		      st->c.procs_attached, st->c.procs_refused, st->c.msgs, st->c.data, st->c.injected,
		      st->c.no_socket, st->c.no_conn, st->c.gaps, k[JAVA_ST_LOST],
		      st->c.bad + k[JAVA_ST_BAD], st->c.procs_ctx, st->c.begins, st->c.begins_orphan,
		      st->c.ends, st->c.threads_keyed, k[JAVA_ST_THREADS], st->c.slots, st->c.vstarts,
		      st->c.vends);
	free(st->jvms);
	free(st->streams);
	if (debug_state == st)
		debug_state = NULL;
	free(st);
}

/* --- processes ------------------------------------------------------------------------------ */

static int java_process_new(void *state, const struct sonde_process_info *pi)
{
	struct java_state *st = state;
	struct java_proc p;
	struct jvm *j;
	int gone, rc;

	if (!st || !pi)
		return SONDE_ERR_INVAL;
	if (!st->attach || jvm_find(st, pi->pid))
		return SONDE_OK;
	/* Most processes are no JVM: decide that from the maps alone. */
	if (java_proc_read(pi->pid, &p) || (!p.jvm && !p.launcher))
		return SONDE_OK;
	if (!st->timer)
		st->timer = st->host->timer_start(st->self, JAVA_TICK_NS, JAVA_TICK_NS, tick, st);
	j = jvm_add(st, pi->pid, pi->exe_path);
	if (!j) {
		st->host->log(st->self, SONDE_LOG_WARN, "pid %u: more than %d JVMs, not instrumented",
			      pi->pid, JAVA_JVMS_MAX);
		return SONDE_ERR_LIMIT;
	}
	rc = jvm_look(st, j, &gone);
	if (gone)
		jvm_del(st, j);
	return rc;
}

static void java_process_gone(void *state, uint32_t pid)
{
	struct java_state *st = state;
	struct jvm *j = st ? jvm_find(st, pid) : NULL;

	if (!j)
		return;
	stats_refresh(st);
	jvm_del(st, j);
}

/* --- records ---------------------------------------------------------------------------------- */

/* Was plaintext of this stream and direction missing before pos? */
static int stream_gap(struct java_state *st, uint32_t pid, const struct java_msg *m)
{
	uint64_t h = (m->stream * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)pid * 0xc2b2ae3d27d4eb4full);
	struct jstream *s = NULL, *victim = NULL;
	size_t base = (size_t)(h >> 40) & (JAVA_STREAMS - 1);
	int gap;

	for (size_t i = 0; i < JAVA_STREAM_WAYS; i++) {
		struct jstream *c = &st->streams[(base + i) & (JAVA_STREAMS - 1)];

		if (c->tick && c->pid == pid && c->id == m->stream) {
			s = c;
			break;
		}
		if (!victim || c->tick < victim->tick)
			victim = c;
	}
	if (!s) {
		s = victim;
		memset(s, 0, sizeof(*s));
		s->pid = pid;
		s->id = m->stream;
	}
	s->tick = ++st->tick ? st->tick : (st->tick = 1);
	gap = s->known[m->dir] ? m->pos != s->next[m->dir] : m->pos != 0;
	s->known[m->dir] = 1;
	s->next[m->dir] = m->pos + m->len;
	return gap;
}

static void on_data(struct java_state *st, const struct java_rec *r, const struct java_msg *m)
{
	struct sonde_chunk ch;
	struct sonde_conn *conn;
	int gap;

	st->c.data++;
	gap = stream_gap(st, r->h.tgid, m);
	st->c.gaps += gap != 0;
	if (m->fd < 0) {
		st->c.no_socket++;
		return;
	}
	conn = st->host->conn_lookup(st->self, r->h.tgid, (uint32_t)m->fd);
	if (!conn) {
		st->c.no_conn++;
		return;
	}
	memset(&ch, 0, sizeof(ch));
	ch.struct_size = sizeof(ch);
	ch.dir = m->dir ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
	ch.ts_unix_ns = r->h.ts_ns + (uint64_t)st->mono_to_real;
	ch.data = m->data;
	ch.len = m->cap_len;
	ch.orig_len = m->len;
	ch.flags = (m->cap_len < m->len ? SONDE_CHUNK_TRUNCATED : 0) | (gap ? SONDE_CHUNK_GAP : 0);
	ch.tid = r->h.tid;
	ch.pos = m->pos;
	ch.source = SONDE_SRC_RUNTIME;
	ch.context = r->ctx;
	if (st->host->conn_inject(conn, &ch) == SONDE_OK)
		st->c.injected++;
	else
		st->c.inject_err++;
}

/* The agent's text (HELLO, NOTE, FAIL), printable, for one log line. */
static void on_text(struct java_state *st, const struct java_rec *r, const struct java_msg *m)
{
	struct jvm *j = jvm_find(st, r->h.tgid);
	const char *exe = j ? j->exe : "?";
	char text[600];
	size_t n = m->cap_len < sizeof(text) - 1 ? m->cap_len : sizeof(text) - 1;

	for (size_t i = 0; i < n; i++)
		text[i] = (m->data[i] >= 0x20 && m->data[i] < 0x7f) ? (char)m->data[i] : '?';
	text[n] = 0;
	if (m->kind == JAVA_MSG_FAIL) {
		if (j && j->state != J_OFF)
			jvm_refuse(st, j, "the agent did not start: %s", text);
		return;
	}
	if (m->kind == JAVA_MSG_HELLO && j && (j->state == J_LOADED || j->state == J_ATTACHING)) {
		const char *ctx = contexts_on(st, j);

		j->state = J_ON;
		st->c.procs_attached++;
		st->host->log(st->self, SONDE_LOG_INFO, "pid %u (%s): agent on: %s; %s", r->h.tgid,
			      exe, text, ctx);
		return;
	}
	st->host->log(st->self, SONDE_LOG_INFO, "pid %u (%s): agent %s: %s", r->h.tgid, exe,
		      m->kind == JAVA_MSG_HELLO ? "on" : "note", text);
}

static void java_record(void *state, const void *rec, size_t len)
{
	struct java_state *st = state;
	const struct java_rec *r = rec;
	struct java_msg m;

	if (!st)
		return;
	if (!rec || len < sizeof(*r) || r->h.type != st->rec_base + JAVA_REC_MSG ||
	    r->cap_len > JAVA_MSG_MAX || r->cap_len != r->len || len < sizeof(*r) + r->cap_len ||
	    java_msg_parse(r->data, r->cap_len, &m)) {
		st->c.bad++;
		return;
	}
	st->c.msgs++;
	if (m.kind == JAVA_MSG_DATA)
		on_data(st, r, &m);
	else if (m.kind == JAVA_MSG_BEGIN || m.kind == JAVA_MSG_END)
		on_task(st, r, &m);
	else if (m.kind >= JAVA_MSG_SLOT)
		on_vthread(st, r, &m);
	else
		on_text(st, r, &m);
}

const struct java_counters *java_debug_counters(void)
{
	return debug_state ? &debug_state->c : NULL;
}

uint32_t java_debug_rec_base(void)
{
	return debug_state ? debug_state->rec_base : 0;
}

static const struct sonde_plugin java_plugin = {
	.abi_major = SONDE_ABI_MAJOR,
	.abi_minor = SONDE_ABI_MINOR,
	.struct_size = sizeof(struct sonde_plugin),
	.name = "java",
	.version = "0.1.0",
	.license = "Apache-2.0",
	.description = "Java runtime (HotSpot): JSSE plaintext (SSLSocket, SSLEngine) into the "
	               "connection's stream, through an agent loaded by dynamic attach",
	.init = java_init,
	.fini = java_fini,
	.process_new = java_process_new,
	.process_gone = java_process_gone,
	.record = java_record,
};

SONDE_PLUGIN_DEFINE(java_plugin)
