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
	if (!rc)
		return 0;
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
	skel->rodata->wakeup_bytes = rb / 16;
	skel->rodata->exec_adopt = o->exec_adopt ? 1 : 0;
	rc = bpf_map__set_max_entries(skel->maps.events, rb);
	if (!rc)
		rc = bpf_map__set_max_entries(skel->maps.scratch, (uint32_t)c->ncpu);
	if (rc) {
		snprintf(err, errlen, "sizing the capture maps: %s", strerror(-rc));
		return rc;
	}
	tls_prepare(c);
	memset(&capture_last, 0, sizeof(capture_last));
	rc = capture_bpf__load(skel);
	if (rc) {
		capture_explain("loading the capture BPF programs", rc, err, errlen);
		return rc;
	}
	memset(&capture_last, 0, sizeof(capture_last));
	rc = capture_bpf__attach(skel);
	if (rc) {
		capture_explain("attaching the capture BPF programs", rc, err, errlen);
		return rc;
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
	uint64_t rec = capture_counter(c, SONDE_CNT_RECOVERED);

	if (tls || nofd || rec)
		fprintf(stderr,
			"sonde: capture: %llu TLS plaintext records, %llu dropped (socket unknown), "
			"%llu syscalls recovered from registers\n",
			(unsigned long long)tls, (unsigned long long)nofd, (unsigned long long)rec);
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
	ring_buffer__free(c->rb);
	capture_detach_parallel(c->skel);
	capture_bpf__destroy(c->skel);
	free(c);
}

const struct capture_features *capture_features(const struct capture *c)
{
	return c ? &c->feat : NULL;
}

/* --- run time ------------------------------------------------------------------------ */

int capture_watch(struct capture *c, uint32_t tgid)
{
	__u8 one = 1;

	if (!c || !tgid)
		return -EINVAL;
	return bpf_map__update_elem(c->skel->maps.watched_pids, &tgid, sizeof(tgid), &one,
				    sizeof(one), BPF_ANY);
}

/* Connections of tgid stay in the kernel's LRU table until they age out or
 * their fd is reused; user space closes them on PROC_EXIT or here. */
int capture_unwatch(struct capture *c, uint32_t tgid)
{
	int rc;

	if (!c || !tgid)
		return -EINVAL;
	rc = bpf_map__delete_elem(c->skel->maps.watched_pids, &tgid, sizeof(tgid), 0);
	return rc == -ENOENT ? 0 : rc;
}

int capture_poll(struct capture *c, int timeout_ms)
{
	int rc;

	if (!c)
		return -EINVAL;
	c->delivered = 0;
	c->stopped = false;
	rc = ring_buffer__poll(c->rb, timeout_ms);
	/* Wake-ups are batched: drain what arrived without one. */
	if (rc >= 0 && !c->stopped)
		rc = ring_buffer__consume(c->rb);
	tls_poll(c);
	if (c->stopped)
		return c->stop_rc < 0 ? c->stop_rc : c->delivered;
	if (rc < 0)
		return rc;
	return c->delivered;
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
		rc = capture_sum(fd, SONDE_CNT_RECOVERED, vals, c->ncpu, &out->recovered);
	free(vals);
	return rc;
}

void capture_set_callback(struct capture *c, capture_cb cb, void *ctx)
{
	c->cb = cb;
	c->ctx = ctx;
}
