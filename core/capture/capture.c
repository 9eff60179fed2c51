/*
 * capture.c - user side of the generic capture layer (see capture.h).
 *
 * Loads bpf/capture.bpf.c through its libbpf skeleton, feeds the in-kernel
 * pid filter, and drains the one ring buffer into the caller's callback.
 * The TLS-library uprobes of the same object are attached per process by
 * core/tls.c (capture_priv.h holds the handle both files share).
 *
 * The one idea: the kernel side batches wake-ups (it only wakes us once the
 * ring holds more than wakeup_bytes), so capture_poll() never trusts epoll
 * alone: after waiting up to timeout_ms it always drains whatever is in the
 * ring. Latency is therefore bounded by the caller's poll timeout, and a busy
 * ring still wakes us early.
 *
 * Errors are negative errnos; capture_open() explains its failures in one
 * line (which mount, which feature, which BPF program the verifier refused).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "capture/capture.h"
#include "capture/capture_priv.h"
#include "sonde_events.h"
#include "sonde_tls.h"
#include "capture.skel.h"

#define CAPTURE_DEFAULT_RINGBUF (8u << 20)
#define CAPTURE_BPFFS "/sys/fs/bpf"

/* --- libbpf messages -------------------------------------------------------
 * libbpf names the failing program in its warnings ("prog 'x': ...") and
 * dumps the verifier log between BEGIN/END markers. The print hook keeps the
 * last program name and the verifier's last meaningful line so that
 * capture_open() can say which program was refused and why. libbpf's print
 * hook is process-global, so this state is too. */
#define CAPTURE_LOG_BEGIN "-- BEGIN PROG LOAD LOG --\n"
#define CAPTURE_LOG_END "-- END PROG LOAD LOG --"

static struct {
	const char *kind; /* "program" or "map" */
	char prog[64];
	char reason[192];
} capture_last;

static bool capture_debug_bpf(void)
{
	const char *v = getenv("SONDE_DEBUG_BPF");

	return v && strcmp(v, "1") == 0;
}

/* Last line of a verifier log that is not the closing statistics. */
static void capture_note_log(const char *log, const char *end)
{
	const char *line_end = end;

	while (line_end > log) {
		const char *p = line_end;
		size_t n;

		while (p > log && p[-1] != '\n')
			p--;
		n = (size_t)(line_end - p);
		if (n && p[n - 1] == '\n')
			n--;
		if (n && strncmp(p, "processed ", 10) != 0 &&
		    strncmp(p, "verification time", 17) != 0 &&
		    strncmp(p, "stack depth", 11) != 0) {
			if (n >= sizeof(capture_last.reason))
				n = sizeof(capture_last.reason) - 1;
			memcpy(capture_last.reason, p, n);
			capture_last.reason[n] = '\0';
			return;
		}
		line_end = p > log ? p - 1 : log;
	}
}

static void capture_note(const char *msg)
{
	const char *p = strstr(msg, "prog '");
	const char *q, *end;
	size_t n;

	if (p) {
		capture_last.kind = "program";
		p += strlen("prog '");
	} else if ((p = strstr(msg, "map '")) != NULL) {
		capture_last.kind = "map";
		p += strlen("map '");
	} else {
		return;
	}
	q = strchr(p, '\'');
	if (!q)
		return;
	n = (size_t)(q - p);
	if (n >= sizeof(capture_last.prog))
		n = sizeof(capture_last.prog) - 1;
	if (strncmp(capture_last.prog, p, n) || capture_last.prog[n])
		capture_last.reason[0] = '\0'; /* another object: forget the old reason */
	memcpy(capture_last.prog, p, n);
	capture_last.prog[n] = '\0';
	p = strstr(q, CAPTURE_LOG_BEGIN);
	end = p ? strstr(p, CAPTURE_LOG_END) : NULL;
	if (p && end)
		capture_note_log(p + strlen(CAPTURE_LOG_BEGIN), end);
	else if (!capture_last.reason[0] && (p = strstr(q, "': ")) != NULL)
		snprintf(capture_last.reason, sizeof(capture_last.reason), "%.*s",
			 (int)strcspn(p + 3, "\n"), p + 3);
}

static int capture_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char *msg = NULL;
	va_list copy;
	int n;

	if (level != LIBBPF_WARN && !capture_debug_bpf())
		return 0;
	va_copy(copy, ap);
	n = vasprintf(&msg, fmt, copy);
	va_end(copy);
	if (n < 0)
		return 0;
	if (level == LIBBPF_WARN)
		capture_note(msg);
	fputs(msg, stderr);
	free(msg);
	return n;
}

/* --- open ------------------------------------------------------------------------ */

/* Loading BPF needs CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN); mounting
 * tracefs needs CAP_SYS_ADMIN. Say so before anything fails obscurely. */
static int capture_check_privileges(char *err, size_t errlen)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long eff = 0;
	const unsigned long long sys_admin = 1ULL << 21, perfmon = 1ULL << 38, bpf = 1ULL << 39;

	if (!f)
		return 0; /* cannot tell: let the kernel decide */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	if ((eff & sys_admin) || ((eff & bpf) && (eff & perfmon)))
		return 0;
	snprintf(err, errlen, "sonde loads eBPF programs and needs root (or the capabilities "
		 "CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN); this process has CapEff=%llx: run it "
		 "with sudo", eff);
	return -EPERM;
}

/* Mount fstype on dir unless one of the dirs already holds that filesystem. */
static int capture_mount(const char *fstype, const char *dir, long magic, char *err,
			 size_t errlen)
{
	if (capture_is_fs(dir, magic))
		return 0;
	if (mount(fstype, dir, fstype, 0, NULL) == 0)
		return 0;
	snprintf(err, errlen, "cannot mount %s on %s: %s", fstype, dir, strerror(errno));
	return -errno;
}

/* tracefs is needed (libbpf resolves tracepoint ids through it); bpffs is
 * not used by capture itself, so failing to mount it is only a warning. */
static int capture_mounts(char *err, size_t errlen)
{
	char warn[256];
	int rc;

	if (!capture_is_fs(CAPTURE_TRACEFS_OLD, TRACEFS_MAGIC)) {
		rc = capture_mount("tracefs", CAPTURE_TRACEFS, TRACEFS_MAGIC, err, errlen);
		if (rc)
			return rc;
	}
	if (capture_mount("bpf", CAPTURE_BPFFS, BPF_FS_MAGIC, warn, sizeof(warn)))
		fprintf(stderr, "sonde: warning: %s (BPF pinning unavailable)\n", warn);
	return 0;
}

static int capture_check_features(const struct capture_features *f, char *err, size_t errlen)
{
	if (!f->btf) {
		snprintf(err, errlen, "no kernel BTF at %s: sonde needs CONFIG_DEBUG_INFO_BTF=y",
			 CAPTURE_BTF_PATH);
		return -ENOTSUP;
	}
	if (!f->tracepoints) {
		snprintf(err, errlen,
			 "no syscall tracepoints: %s/events/syscalls/sys_enter_read/id missing "
			 "(kernel needs CONFIG_FTRACE_SYSCALLS=y)",
			 f->tracefs[0] ? f->tracefs : CAPTURE_TRACEFS);
		return -ENOTSUP;
	}
	if (!f->ringbuf) {
		snprintf(err, errlen, "no BPF ring buffer map (kernel 5.8 or later needed)");
		return -ENOTSUP;
	}
	if (!f->raw_tp) {
		snprintf(err, errlen, "no raw tracepoint programs (needed for sched_process_fork)");
		return -ENOTSUP;
	}
	return 0;
}

static int capture_on_record(void *ctx, void *data, size_t len)
{
	struct capture *c = ctx;
	int rc;

	if (len < sizeof(struct sonde_ev_hdr))
		return 0;
	c->delivered++;
	rc = c->cb ? c->cb(c->ctx, data, len) : 0;
	if (!rc) {
		if (c->slice && c->delivered >= c->slice) {
			c->more = true;
			return -EAGAIN; /* this record is consumed; the rest waits */
		}
		return 0;
	}
	c->stopped = true;
	c->stop_rc = rc;
	return -ECANCELED;
}

/* Explain a failed load or attach, naming the program libbpf complained
 * about (the skeleton API itself does not say which one failed). */
static void capture_explain(const char *what, int rc, char *err, size_t errlen)
{
	if (capture_last.prog[0] && capture_last.reason[0])
		snprintf(err, errlen, "%s: BPF %s '%s': %s", what, capture_last.kind,
			 capture_last.prog, capture_last.reason);
	else if (capture_last.prog[0])
		snprintf(err, errlen, "%s: BPF %s '%s': %s", what, capture_last.kind,
			 capture_last.prog, strerror(-rc));
	else
		snprintf(err, errlen, "%s: %s", what, strerror(-rc));
}

/* The largest pid the kernel hands out (+1): the pid table's size. */
static uint32_t capture_pid_max(void)
{
	FILE *f = fopen("/proc/sys/kernel/pid_max", "re");
	unsigned long v = 0;

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
	}
	if (!v || v > (1u << 22))
		v = 1u << 22; /* PID_MAX_LIMIT on 64-bit */
	return (uint32_t)v + 1;
}

static void capture_set_exec_adopt(struct capture *c, const struct capture_opts *o,
				   struct capture_bpf *skel)
{
	c->n_suffixes = 0;
	skel->rodata->exec_adopt = 0;
	if (!o->exec_adopt)
		return;
	if (!SONDE_HAS_OPT(o, exe_suffixes) || o->exec_adopt_all || !o->n_exe_suffixes) {
		skel->rodata->exec_adopt = 2;
		return;
	}
	for (size_t i = 0; i < o->n_exe_suffixes && i < SONDE_EXE_SUFFIX_MAX; i++) {
		struct sonde_exe_suffix *s = &c->suffixes[c->n_suffixes];
		size_t n = strlen(o->exe_suffixes[i]);

		if (!n || n > SONDE_EXE_SUFFIX_LEN)
			continue;
		memset(s, 0, sizeof(*s));
		s->len = (uint32_t)n;
		memcpy(s->s, o->exe_suffixes[i], n);
		c->n_suffixes++;
	}
	skel->rodata->exec_adopt = c->n_suffixes ? 1 : 2;
	skel->rodata->n_exe_suffixes = (uint32_t)c->n_suffixes;
}

/* Shedding under pressure (sonde_shed in bpf/sonde_conn.bpf.h): a process
 * that asked for more than half of everyone's ring bytes over the last
 * ~two 100 ms windows, or more than budget_bytes per window (0, the
 * default: no fixed budget), may not fill the ring past shed_pct (75%);
 * its connections shed until the ring is below half of shed_pct.
 * shed_pct > 100 turns it off. */
static void capture_set_pressure(const struct capture_opts *o, uint32_t rb,
				 struct capture_bpf *skel)
{
	uint32_t pct = SONDE_HAS_OPT(o, shed_pct) && o->shed_pct ? o->shed_pct : 75;

	if (SONDE_HAS_OPT(o, shed_pct) && o->shed_pct > 100)
		pct = 0;
	if (!pct)
		return;
	skel->rodata->shed_high = (uint64_t)rb * pct / 100;
	skel->rodata->shed_low = (uint64_t)rb * pct / 200;
	skel->rodata->budget_bytes = SONDE_HAS_OPT(o, budget_bytes) ? o->budget_bytes : 0;
	skel->rodata->budget_window_ns = 100000000ull;
}

/* mmap the pid table and the control words, and fill the exe suffixes. */
static int capture_map_shared(struct capture *c, char *err, size_t errlen)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t pids_len = ((size_t)c->pid_words * 8 + (size_t)page - 1) & ~((size_t)page - 1);
	size_t ctl_len = sizeof(struct sonde_ctl) * SONDE_CTL_SLOTS;

	c->pids = mmap(NULL, pids_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       bpf_map__fd(c->skel->maps.sonde_pids), 0);
	if (c->pids == MAP_FAILED) {
		c->pids = NULL;
		snprintf(err, errlen, "mapping the pid table: %s", strerror(errno));
		return -errno;
	}
	c->pids_len = pids_len;
	c->ctl = mmap(NULL, ctl_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		      bpf_map__fd(c->skel->maps.sonde_ctl), 0);
	if (c->ctl == MAP_FAILED) {
		c->ctl = NULL;
		snprintf(err, errlen, "mapping the control words: %s", strerror(errno));
		return -errno;
	}
	c->ctl_len = ctl_len;
	for (uint32_t i = 0; i < c->n_suffixes; i++)
		if (bpf_map__update_elem(c->skel->maps.exe_suffixes, &i, sizeof(i),
					 &c->suffixes[i], sizeof(c->suffixes[i]), BPF_ANY)) {
			snprintf(err, errlen, "filling the exe suffix table: %s", strerror(errno));
			return -errno;
		}
	return 0;
}

static int capture_load(struct capture *c, const struct capture_opts *o, char *err,
			size_t errlen)
{
	struct capture_bpf *skel;
	uint32_t cap = o->payload_cap ? o->payload_cap : SONDE_DEFAULT_PAYLOAD;
	uint32_t rb = o->ringbuf_bytes ? o->ringbuf_bytes : CAPTURE_DEFAULT_RINGBUF;
	long page = sysconf(_SC_PAGESIZE);
	int rc;

	if (cap > SONDE_MAX_PAYLOAD) {
		snprintf(err, errlen, "payload cap %u is above the maximum %u", cap,
			 SONDE_MAX_PAYLOAD);
		return -EINVAL;
	}
	if ((rb & (rb - 1)) || rb < (uint32_t)page) {
		snprintf(err, errlen, "ring buffer size %u is not a power of two >= %ld", rb,
			 page);
		return -EINVAL;
	}
	skel = capture_bpf__open();
	if (!skel) {
		rc = -errno;
		snprintf(err, errlen, "opening the capture BPF object: %s", strerror(errno));
		return rc;
	}
	c->skel = skel;
	skel->rodata->payload_cap = cap;
	skel->rodata->self_tgid = (uint32_t)getpid();
	skel->rodata->wakeup_bytes = rb / 16;
	capture_set_exec_adopt(c, o, skel);
	capture_set_pressure(o, rb, skel);
	inject_prepare(c, SONDE_HAS_OPT(o, inject) && o->inject);
	c->tls_per_process = SONDE_HAS_OPT(o, tls_per_process) && o->tls_per_process;
	c->pid_words = (capture_pid_max() + 7) / 8;
	rc = bpf_map__set_max_entries(skel->maps.events, rb);
	if (!rc)
		rc = bpf_map__set_max_entries(skel->maps.scratch, (uint32_t)c->ncpu);
	if (!rc)
		rc = bpf_map__set_max_entries(skel->maps.sonde_pids, c->pid_words);
	if (!rc && SONDE_HAS_OPT(o, max_connections) && o->max_connections)
		rc = bpf_map__set_max_entries(skel->maps.conns, o->max_connections);
	if (rc) {
		snprintf(err, errlen, "sizing the capture maps: %s", strerror(-rc));
		return rc;
	}
	tls_prepare(c);
	memset(&capture_last, 0, sizeof(capture_last));
	rc = capture_bpf__load(skel);
	if (rc && c->inject) {
		/* Injection is optional: without it, the rest must still load. */
		struct capture_opts no = *o;

		capture_explain("loading the traceparent injection programs", rc, err, errlen);
		fprintf(stderr, "sonde: warning: traceparent injection off: %s\n", err);
		err[0] = 0;
		no.inject = false;
		capture_bpf__destroy(skel);
		c->skel = NULL;
		return capture_load(c, &no, err, errlen);
	}
	if (rc) {
		capture_explain("loading the capture BPF programs", rc, err, errlen);
		return rc;
	}
	rc = capture_map_shared(c, err, errlen);
	if (rc)
		return rc;
	memset(&capture_last, 0, sizeof(capture_last));
	rc = capture_bpf__attach(skel);
	if (rc) {
		capture_explain("attaching the capture BPF programs", rc, err, errlen);
		return rc;
	}
	if (c->inject) {
		char why[256];

		if (inject_attach(c, why, sizeof(why)))
			fprintf(stderr, "sonde: warning: traceparent injection off: %s\n", why);
	}
	c->rb = ring_buffer__new(bpf_map__fd(skel->maps.events), capture_on_record, c, NULL);
	if (!c->rb) {
		rc = -errno;
		snprintf(err, errlen, "opening the ring buffer: %s", strerror(errno));
		return rc;
	}
	return 0;
}

struct capture *capture_open(const struct capture_opts *opts, capture_cb cb, void *ctx,
			     char *err, size_t errlen)
{
	struct capture_opts o = { .struct_size = sizeof(o) };
	struct capture *c = NULL;
	char dummy[8];

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (opts) {
		size_t n = opts->struct_size < sizeof(o) ? opts->struct_size : sizeof(o);

		memcpy(&o, opts, n);
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "capture_open: out of memory");
		return NULL;
	}
	c->cb = cb;
	c->ctx = ctx;
	c->ncpu = libbpf_num_possible_cpus();
	if (c->ncpu <= 0) {
		snprintf(err, errlen, "cannot count possible CPUs: %s", strerror(-c->ncpu));
		goto fail;
	}
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	libbpf_set_print(capture_libbpf_print);
	if (capture_check_privileges(err, errlen))
		goto fail;
	if (capture_mounts(err, errlen))
		goto fail;
	capture_probe_features(&c->feat);
	if (capture_check_features(&c->feat, err, errlen))
		goto fail;
	/* o.prefer_kprobes: no kprobe/fentry accelerators exist yet; the
	 * tracepoint path is complete without them. */
	if (capture_load(c, &o, err, errlen))
		goto fail;
	return c;
fail:
	capture_close(c);
	return NULL;
}

/* One stderr line for the counters no metric carries yet. */
static void capture_summary(struct capture *c)
{
	uint64_t tls = capture_counter(c, SONDE_CNT_TLS_DATA);
	uint64_t nofd = capture_counter(c, SONDE_CNT_TLS_NOFD);
	uint64_t pre = capture_counter(c, SONDE_CNT_PREEXISTING);

	if (tls || nofd || pre)
		fprintf(stderr,
			"sonde: capture: %llu TLS plaintext records, %llu dropped (socket unknown), "
			"%llu connections first seen mid-life\n",
			(unsigned long long)tls, (unsigned long long)nofd, (unsigned long long)pre);
}

/* Detaching a tracepoint program waits for an RCU grace period in the
 * kernel (~70 ms here); one after the other, 28 of them made every exit take
 * 2 s. The waits overlap when the links are destroyed from several threads. */
#define DETACH_THREADS 8

struct detach_job {
	struct bpf_link **links[64];
	unsigned n;
};

static void *detach_worker(void *arg)
{
	struct detach_job *j = arg;

	for (unsigned i = 0; i < j->n; i++) {
		bpf_link__destroy(*j->links[i]);
		*j->links[i] = NULL;
	}
	return NULL;
}

static void capture_detach_parallel(struct capture_bpf *skel)
{
	struct bpf_object_skeleton *sk = skel ? skel->skeleton : NULL;
	struct detach_job jobs[DETACH_THREADS] = {0};
	pthread_t tid[DETACH_THREADS];
	bool started[DETACH_THREADS] = {0};
	unsigned next = 0;

	if (!sk)
		return;
	for (int i = 0; i < sk->prog_cnt; i++) {
		struct bpf_prog_skeleton *ps =
			(void *)((char *)sk->progs + (size_t)i * (size_t)sk->prog_skel_sz);
		struct detach_job *j = &jobs[next++ % DETACH_THREADS];
		if (ps->link && *ps->link && j->n < 64)
			j->links[j->n++] = ps->link;
	}
	for (unsigned t = 0; t < DETACH_THREADS; t++)
		started[t] = jobs[t].n && !pthread_create(&tid[t], NULL, detach_worker, &jobs[t]);
	for (unsigned t = 0; t < DETACH_THREADS; t++) {
		if (started[t])
			pthread_join(tid[t], NULL);
		else if (jobs[t].n)
			detach_worker(&jobs[t]); /* no thread: do it here */
	}
}

void capture_close(struct capture *c)
{
	if (!c)
		return;
	if (c->skel)
		capture_summary(c);
	tls_free(c);
	inject_detach(c);
	ring_buffer__free(c->rb);
	if (c->pids)
		munmap(c->pids, c->pids_len);
	if (c->ctl)
		munmap(c->ctl, c->ctl_len);
	capture_detach_parallel(c->skel);
	capture_bpf__destroy(c->skel);
	free(c);
}

const struct capture_features *capture_features(const struct capture *c)
{
	return c ? &c->feat : NULL;
}

/* --- run time ------------------------------------------------------------------------ */

static uint64_t *capture_pid_word(struct capture *c, uint32_t tgid)
{
	if (!c || !c->pids || !tgid || tgid / 8 >= c->pid_words)
		return NULL;
	return &c->pids[tgid / 8];
}

int capture_pid_set(struct capture *c, uint32_t tgid, uint8_t set, uint8_t clear)
{
	uint64_t *w = capture_pid_word(c, tgid);
	unsigned sh = (tgid & 7) * 8;

	if (!w)
		return -EINVAL;
	if (clear)
		__atomic_fetch_and(w, ~((uint64_t)clear << sh), __ATOMIC_SEQ_CST);
	if (set)
		__atomic_fetch_or(w, (uint64_t)set << sh, __ATOMIC_SEQ_CST);
	return 0;
}

uint8_t capture_pid_flags(struct capture *c, uint32_t tgid)
{
	uint64_t *w = capture_pid_word(c, tgid);

	return w ? (uint8_t)(__atomic_load_n(w, __ATOMIC_RELAXED) >> ((tgid & 7) * 8)) : 0;
}

int capture_watch(struct capture *c, uint32_t tgid)
{
	return capture_pid_set(c, tgid, SONDE_PID_WATCHED, SONDE_PID_PROVISIONAL);
}

/* Connections of tgid stay in the kernel's LRU table until they age out or
 * their fd is reused; user space closes them on PROC_EXIT or here. */
int capture_unwatch(struct capture *c, uint32_t tgid)
{
	int rc = capture_pid_set(c, tgid, 0, 0xff);

	/* Its drop counts were read by the caller; the table forgets it. */
	if (c && c->skel)
		bpf_map__delete_elem(c->skel->maps.sonde_budget, &tgid, sizeof(tgid), 0);
	return rc;
}

int capture_conn_ctl(struct capture *c, uint64_t gen, uint32_t flags, uint32_t cap,
		     uint64_t skip_in, uint64_t skip_out)
{
	struct sonde_ctl *w;

	if (!c || !c->ctl || !gen)
		return -EINVAL;
	w = &c->ctl[gen & (SONDE_CTL_SLOTS - 1)];
	/* The kernel obeys a slot only while its gen matches: write the gen
	 * last, so a half-written word is never taken for this connection. */
	__atomic_store_n(&w->gen, 0, __ATOMIC_SEQ_CST);
	w->flags = flags;
	w->cap = cap;
	w->skip_to[0] = skip_in;
	w->skip_to[1] = skip_out;
	__atomic_store_n(&w->gen, gen, __ATOMIC_SEQ_CST);
	return 0;
}

int capture_proc_dropped(struct capture *c, uint32_t tgid, uint64_t *records, uint64_t *bytes)
{
	struct sonde_budget b;

	*records = *bytes = 0;
	if (!c || !c->skel)
		return -EINVAL;
	if (bpf_map__lookup_elem(c->skel->maps.sonde_budget, &tgid, sizeof(tgid), &b, sizeof(b),
				 0))
		return -ENOENT;
	*records = b.dropped;
	*bytes = b.dropped_bytes;
	return 0;
}

int capture_poll(struct capture *c, int timeout_ms)
{
	int rc;

	if (!c)
		return -EINVAL;
	c->delivered = 0;
	c->stopped = false;
	c->more = false;
	rc = ring_buffer__poll(c->rb, timeout_ms);
	/* Wake-ups are batched: drain what arrived without one. */
	if (rc >= 0 && !c->stopped && !c->more)
		rc = ring_buffer__consume(c->rb);
	tls_poll(c);
	if (c->stopped)
		return c->stop_rc < 0 ? c->stop_rc : c->delivered;
	if (rc < 0 && !c->more)
		return rc;
	return c->delivered;
}

void capture_set_slice(struct capture *c, int records)
{
	if (c)
		c->slice = records > 0 ? records : 0;
}

bool capture_more(const struct capture *c)
{
	return c && c->more;
}

static int capture_sum(int map_fd, uint32_t slot, uint64_t *vals, int ncpu, uint64_t *out)
{
	int i;

	if (bpf_map_lookup_elem(map_fd, &slot, vals))
		return -errno;
	*out = 0;
	for (i = 0; i < ncpu; i++)
		*out += vals[i];
	return 0;
}

uint64_t capture_counter(struct capture *c, uint32_t slot)
{
	uint64_t *vals, sum = 0;

	if (!c || !c->skel)
		return 0;
	vals = calloc((size_t)c->ncpu, sizeof(*vals));
	if (!vals)
		return 0;
	if (capture_sum(bpf_map__fd(c->skel->maps.counters), slot, vals, c->ncpu, &sum))
		sum = 0;
	free(vals);
	return sum;
}

int capture_stats(struct capture *c, struct capture_stats *out)
{
	uint64_t *vals;
	int fd, rc;

	if (!c || !out)
		return -EINVAL;
	vals = calloc((size_t)c->ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	fd = bpf_map__fd(c->skel->maps.counters);
	rc = capture_sum(fd, SONDE_CNT_EVENTS, vals, c->ncpu, &out->events);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_LOST, vals, c->ncpu, &out->lost);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_TRUNCATED, vals, c->ncpu, &out->truncated);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_NOT_TCP, vals, c->ncpu, &out->not_tcp);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_TLS_DATA, vals, c->ncpu, &out->tls_records);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_TLS_NOFD, vals, c->ncpu, &out->tls_dropped);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_PREEXISTING, vals, c->ncpu, &out->preexisting);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_MUTED, vals, c->ncpu, &out->muted);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_SHED, vals, c->ncpu, &out->shed);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_SKIPPED, vals, c->ncpu, &out->skipped_bytes);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_NOBUF, vals, c->ncpu, &out->nobuf);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_EXEC_ADOPTED, vals, c->ncpu, &out->exec_adopted);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_INJECTED, vals, c->ncpu, &out->injected);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_INJ_HAS_TP, vals, c->ncpu, &out->inj_present);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_INJ_UNSURE, vals, c->ncpu, &out->inj_unsure);
	if (!rc)
		rc = capture_sum(fd, SONDE_CNT_INJ_NOCTX, vals, c->ncpu, &out->inj_noctx);
	free(vals);
	return rc;
}

void capture_set_callback(struct capture *c, capture_cb cb, void *ctx)
{
	c->cb = cb;
	c->ctx = ctx;
}
