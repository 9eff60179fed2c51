/*
 * tls.c - TLS plaintext capture, user side: find the TLS library code a
 * watched process runs and attach the capture object's uprobes to it.
 *
 * The one idea: a uprobe is attached to a file (inode + offset), and with a
 * pid filter the kernel only plants its breakpoint in that process's memory,
 * so every other process runs the library untouched. sonde therefore
 * attaches once per (process, library file), where "library file" is any
 * executable mapping of the process whose ELF symbols define both SSL_read
 * and SSL_write: libssl.so.* (OpenSSL 1.1/3.x, LibreSSL), BoringSSL's
 * libssl, or an executable that links OpenSSL/BoringSSL statically (the
 * Node.js binary). Symbol offsets are resolved here with libelf (.dynsym,
 * then .symtab) and cached per file, so a 100 MB node binary is read once
 * however many node processes there are.
 *
 * When to look: when discovery starts watching a process
 * (capture_tls_attach), and again whenever the kernel flags that a watched
 * process mapped executable file pages (sys_exit_mmap -> map tls_rescan,
 * drained by tls_poll from capture_poll): that is how a library loaded late
 * (dlopen, Python's lazy `import ssl`) is found within ~100 ms, without
 * re-reading every process's maps on a timer.
 *
 * Paths: a file is opened and attached through /proc/PID/map_files/A-B, the
 * very inode the process mapped (right inside containers and after a package
 * upgrade replaced the file on disk), with /proc/PID/root/PATH as fallback.
 *
 * Links: two uprobe_multi links per (process, file) where the kernel has
 * them (6.6+), else one perf-event uprobe per function and direction.
 * Tearing a link down waits for a kernel grace period (~0.1 s, serialized),
 * so detached links are destroyed on a background thread (tls_gc), never on
 * the ring-buffer loop. docs/tls.md has the whole design.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "capture/capture.h"
#include "capture/capture_priv.h"
#include "base/hmap.h"
#include "sonde_tls.h"
#include "capture.skel.h"

/* The functions hooked; the values are the uprobe_multi attach cookies. */
enum tls_sym {
	TLS_SSL_READ = SONDE_TLS_FN_READ,
	TLS_SSL_WRITE = SONDE_TLS_FN_WRITE,
	TLS_SSL_READ_EX = SONDE_TLS_FN_READ_EX,
	TLS_SSL_WRITE_EX = SONDE_TLS_FN_WRITE_EX,
	TLS_SSL_DO_HANDSHAKE = SONDE_TLS_FN_HANDSHAKE,
	TLS_SSL_SHUTDOWN = SONDE_TLS_FN_SHUTDOWN,
	TLS_SSL_FREE = SONDE_TLS_FN_FREE,
	TLS_NSYM = SONDE_TLS_FN_COUNT,
};

static const char *const tls_sym_names[TLS_NSYM] = {
	"SSL_read", "SSL_write", "SSL_read_ex", "SSL_write_ex",
	"SSL_do_handshake", "SSL_shutdown", "SSL_free",
};

#define TLS_MAX_LINKS (2 * TLS_NSYM)
#define TLS_POLL_NS 50000000ull /* drain the rescan flags at most every 50 ms */
#define TLS_MAX_FILES 8         /* candidate files looked at per maps read */

/* What tears one attachment down: a libbpf perf-event link, or the fd of
 * a uprobe_multi link (which libbpf 1.1 cannot create). */
struct tls_link {
	struct bpf_link *link;
	int fd;
};

/* One library file attached in one process (or, as a library's `shared`
 * attachment, in every process). */
struct tls_file {
	dev_t dev;
	ino_t ino;
	int nlinks;
	bool shared;               /* covered by the library's shared attachment */
	struct tls_link links[TLS_MAX_LINKS];
};

/* One ELF file examined (cached by device, inode, size and mtime). */
struct tls_lib {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	bool ssl;                  /* defines SSL_read and SSL_write */
	uint64_t off[TLS_NSYM];    /* file offset of each function; 0 = absent */
	/* Attached without a pid filter (the programs check the kernel's pid
	 * flags): set once a watched process that uses the file forks per
	 * connection (capture_tls_share), so its children are covered from
	 * their first instruction. */
	struct tls_file shared;
};

struct tls_proc {
	uint32_t tgid;
	size_t nfiles;
	struct tls_file *files;
};

/* Links waiting to be destroyed, and the thread that destroys them. */
struct tls_gc {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool running;
	bool stop;
	struct tls_link *q;
	size_t n, cap;
};

struct capture_tls {
	struct hmap procs;  /* tgid -> struct tls_proc (every process asked about) */
	struct tls_gc gc;
	struct tls_lib *libs;
	size_t nlibs, libs_cap;
	uint64_t last_poll_ns;
};

static void tls_gc_push(struct tls_gc *gc, struct tls_link *links, int n);

/* A candidate mapping from /proc/PID/maps. */
struct tls_map {
	unsigned long start, end;
	dev_t dev;
	ino_t ino;
	char path[512];
};

static uint64_t tls_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* --- ELF symbols ------------------------------------------------------------ */

static int tls_sym_index(const char *name)
{
	if (strncmp(name, "SSL_", 4) != 0)
		return -1;
	for (int i = 0; i < TLS_NSYM; i++)
		if (!strcmp(name, tls_sym_names[i]))
			return i;
	return -1;
}

/* Virtual address -> file offset, through the executable PT_LOAD segment
 * that holds it (what the kernel's uprobe wants). 0 if none. */
static uint64_t tls_vaddr_to_off(Elf *e, size_t nphdr, uint64_t vaddr)
{
	for (size_t i = 0; i < nphdr; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD || !(ph.p_flags & PF_X))
			continue;
		if (vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_filesz)
			return vaddr - ph.p_vaddr + ph.p_offset;
	}
	return 0;
}

/* Fill lib->off[] from the defined function symbols of one symbol table. */
static void tls_scan_symtab(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, size_t nphdr,
			    struct tls_lib *lib)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t n = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0;

	for (size_t i = 0; data && i < n; i++) {
		GElf_Sym sym;
		const char *name;
		int k;

		if (!gelf_getsym(data, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
		    sym.st_shndx == SHN_UNDEF || !sym.st_value)
			continue;
		name = elf_strptr(e, sh->sh_link, sym.st_name);
		if (!name || (k = tls_sym_index(name)) < 0 || lib->off[k])
			continue;
		lib->off[k] = tls_vaddr_to_off(e, nphdr, sym.st_value);
	}
}

/* Read the offsets of the SSL functions in the ELF file at path: .dynsym
 * first (exported), .symtab only if that did not find SSL_read/SSL_write
 * (static, unexported builds). Returns 0, or -errno if the file is not a
 * readable ELF (lib then says "no TLS here"). */
static int tls_elf_scan(const char *path, struct tls_lib *lib)
{
	int types[2] = { SHT_DYNSYM, SHT_SYMTAB };
	size_t nphdr = 0;
	Elf *e = NULL;
	int fd, rc = 0;

	memset(lib->off, 0, sizeof(lib->off));
	lib->ssl = false;
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -ENOTSUP;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF || elf_getphdrnum(e, &nphdr)) {
		rc = -ENOEXEC;
		goto out;
	}
	for (int t = 0; t < 2; t++) {
		Elf_Scn *scn = NULL;

		if (lib->off[TLS_SSL_READ] && lib->off[TLS_SSL_WRITE])
			break;
		while ((scn = elf_nextscn(e, scn)) != NULL) {
			GElf_Shdr sh;

			if (gelf_getshdr(scn, &sh) && sh.sh_type == (unsigned)types[t])
				tls_scan_symtab(e, scn, &sh, nphdr, lib);
		}
	}
	lib->ssl = lib->off[TLS_SSL_READ] && lib->off[TLS_SSL_WRITE];
out:
	if (e)
		elf_end(e);
	close(fd);
	return rc;
}

static bool tls_lib_is(const struct tls_lib *lib, const struct stat *st)
{
	return lib->dev == st->st_dev && lib->ino == st->st_ino && lib->size == st->st_size &&
	       lib->mtime.tv_sec == st->st_mtim.tv_sec && lib->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* The cached scan of the file st describes, scanning path on first sight. */
static struct tls_lib *tls_lib_get(struct capture_tls *t, const struct stat *st,
				   const char *path)
{
	struct tls_lib *lib = NULL;

	for (size_t i = 0; i < t->nlibs; i++) {
		if (t->libs[i].dev != st->st_dev || t->libs[i].ino != st->st_ino)
			continue;
		if (tls_lib_is(&t->libs[i], st))
			return &t->libs[i];
		lib = &t->libs[i]; /* rewritten in place: scan again */
		tls_gc_push(&t->gc, lib->shared.links, lib->shared.nlinks);
		break;
	}
	if (!lib && t->nlibs == t->libs_cap) {
		size_t nc = t->libs_cap ? t->libs_cap * 2 : 16;
		struct tls_lib *nl = realloc(t->libs, nc * sizeof(*nl));

		if (!nl)
			return NULL;
		t->libs = nl;
		t->libs_cap = nc;
	}
	if (!lib)
		lib = &t->libs[t->nlibs++];
	memset(lib, 0, sizeof(*lib));
	lib->dev = st->st_dev;
	lib->ino = st->st_ino;
	lib->size = st->st_size;
	lib->mtime = st->st_mtim;
	tls_elf_scan(path, lib); /* an unreadable file is cached as "no TLS" */
	return lib;
}

/* --- /proc/PID/maps ------------------------------------------------------------ */

/* A file worth an ELF look: a TLS library by name, or the executable. */
static bool tls_candidate(const char *path, dev_t dev, ino_t ino, const struct stat *exe)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (strstr(base, "ssl") || strstr(base, "SSL"))
		return true;
	return exe && exe->st_ino == ino && exe->st_dev == dev;
}

/* Distinct candidate files among the executable mappings of tgid. Returns
 * how many were written to out (at most max), or -errno. */
static int tls_read_maps(uint32_t tgid, struct tls_map *out, int max)
{
	char path[64], line[1024];
	struct stat exe;
	bool have_exe;
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%u/exe", tgid);
	have_exe = stat(path, &exe) == 0;
	snprintf(path, sizeof(path), "/proc/%u/maps", tgid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (n < max && fgets(line, sizeof(line), f)) {
		unsigned long start, end, off, ino;
		unsigned maj, min;
		char perms[8];
		int pos = 0;
		char *p;
		bool dup = false;

		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu %n", &start, &end, perms, &off, &maj,
			   &min, &ino, &pos) < 7 || !pos || !ino || perms[2] != 'x')
			continue;
		p = line + pos;
		p[strcspn(p, "\n")] = '\0';
		if (p[0] != '/')
			continue;
		if (!tls_candidate(p, makedev(maj, min), (ino_t)ino, have_exe ? &exe : NULL))
			continue;
		for (int i = 0; i < n; i++)
			dup |= out[i].ino == (ino_t)ino && out[i].dev == makedev(maj, min);
		if (dup)
			continue;
		out[n].start = start;
		out[n].end = end;
		out[n].dev = makedev(maj, min);
		out[n].ino = (ino_t)ino;
		snprintf(out[n].path, sizeof(out[n].path), "%s", p);
		n++;
	}
	fclose(f);
	return n;
}

/* A path that opens the mapped inode itself; fills st. */
static int tls_open_path(uint32_t tgid, const struct tls_map *m, char *buf, size_t len,
			 struct stat *st)
{
	char *del;

	snprintf(buf, len, "/proc/%u/map_files/%lx-%lx", tgid, m->start, m->end);
	if (stat(buf, st) == 0)
		return 0;
	snprintf(buf, len, "/proc/%u/root%s", tgid, m->path);
	del = strstr(buf, " (deleted)");
	if (del && !del[10])
		*del = '\0';
	if (stat(buf, st) == 0)
		return 0;
	return -errno;
}

/* --- attach / detach --------------------------------------------------------- */

/* The entry and return programs for one function (NULL: none). */
static void tls_progs(struct capture_bpf *skel, int sym, struct bpf_program *p[2])
{
	p[0] = p[1] = NULL;
	switch (sym) {
	case TLS_SSL_READ:
		p[0] = skel->progs.ssl_read_enter;
		p[1] = skel->progs.ssl_read_exit;
		break;
	case TLS_SSL_WRITE:
		p[0] = skel->progs.ssl_write_enter;
		p[1] = skel->progs.ssl_write_exit;
		break;
	case TLS_SSL_READ_EX:
		p[0] = skel->progs.ssl_read_ex_enter;
		p[1] = skel->progs.ssl_read_ex_exit;
		break;
	case TLS_SSL_WRITE_EX:
		p[0] = skel->progs.ssl_write_ex_enter;
		p[1] = skel->progs.ssl_write_ex_exit;
		break;
	case TLS_SSL_DO_HANDSHAKE:
		p[0] = skel->progs.ssl_handshake_enter;
		p[1] = skel->progs.ssl_handshake_exit;
		break;
	case TLS_SSL_SHUTDOWN:
	case TLS_SSL_FREE:
		p[0] = skel->progs.ssl_forget_enter;
		break;
	}
}

/* --- destroying links, off the event loop ---------------------------------
 * Closing a uprobe perf event waits for an RCU-tasks grace period inside the
 * kernel (~0.1 s each here), so detaching one process (12 links) would stall
 * the ring-buffer loop for over a second. Detached links are queued for a
 * background thread instead, which closes each batch from several threads
 * at once so the waits overlap. Until a link is gone its probes may still
 * fire; that is harmless: the programs check the pid filter, and an entry
 * probe seen twice only rewrites the same per-thread stash. */

#define TLS_GC_FANOUT 16

struct tls_gc_slice {
	struct tls_link *links;
	size_t n, stride;
};

static void *tls_gc_slice_run(void *arg)
{
	struct tls_gc_slice *s = arg;

	for (size_t i = 0; i < s->n; i += s->stride) {
		if (s->links[i].link)
			bpf_link__destroy(s->links[i].link);
		else if (s->links[i].fd >= 0)
			close(s->links[i].fd);
	}
	return NULL;
}

/* Destroy n links with up to TLS_GC_FANOUT threads (inline if none start). */
static void tls_gc_destroy(struct tls_link *links, size_t n)
{
	struct tls_gc_slice sl[TLS_GC_FANOUT];
	pthread_t th[TLS_GC_FANOUT];
	bool started[TLS_GC_FANOUT] = { false };
	size_t k = n < TLS_GC_FANOUT ? n : TLS_GC_FANOUT;

	for (size_t j = 0; j < k; j++) {
		sl[j] = (struct tls_gc_slice){ .links = links + j, .n = n - j, .stride = k };
		started[j] = pthread_create(&th[j], NULL, tls_gc_slice_run, &sl[j]) == 0;
		if (!started[j])
			tls_gc_slice_run(&sl[j]);
	}
	for (size_t j = 0; j < k; j++)
		if (started[j])
			pthread_join(th[j], NULL);
}

static void *tls_gc_run(void *arg)
{
	struct tls_gc *gc = arg;

	pthread_mutex_lock(&gc->mu);
	for (;;) {
		struct tls_link *batch;
		size_t n;

		while (!gc->n && !gc->stop)
			pthread_cond_wait(&gc->cv, &gc->mu);
		if (!gc->n)
			break;
		batch = gc->q;
		n = gc->n;
		gc->q = NULL;
		gc->n = gc->cap = 0;
		pthread_mutex_unlock(&gc->mu);
		tls_gc_destroy(batch, n);
		free(batch);
		pthread_mutex_lock(&gc->mu);
	}
	pthread_mutex_unlock(&gc->mu);
	return NULL;
}

static void tls_gc_init(struct tls_gc *gc)
{
	pthread_mutex_init(&gc->mu, NULL);
	pthread_cond_init(&gc->cv, NULL);
	gc->running = pthread_create(&gc->thread, NULL, tls_gc_run, gc) == 0;
}

/* Hand links over for destruction (destroys inline if it cannot queue). */
static void tls_gc_push(struct tls_gc *gc, struct tls_link *links, int n)
{
	if (n <= 0)
		return;
	pthread_mutex_lock(&gc->mu);
	if (gc->running && gc->n + (size_t)n > gc->cap) {
		size_t nc = gc->cap ? gc->cap * 2 : 64;
		struct tls_link *nq;

		while (nc < gc->n + (size_t)n)
			nc *= 2;
		nq = realloc(gc->q, nc * sizeof(*nq));
		if (nq) {
			gc->q = nq;
			gc->cap = nc;
		}
	}
	if (gc->running && gc->n + (size_t)n <= gc->cap) {
		memcpy(gc->q + gc->n, links, (size_t)n * sizeof(*links));
		gc->n += (size_t)n;
		pthread_cond_signal(&gc->cv);
		pthread_mutex_unlock(&gc->mu);
		return;
	}
	pthread_mutex_unlock(&gc->mu);
	tls_gc_destroy(links, (size_t)n);
}

/* Destroy what is queued and stop the thread; returns when all are gone. */
static void tls_gc_fini(struct tls_gc *gc)
{
	if (gc->running) {
		pthread_mutex_lock(&gc->mu);
		gc->stop = true;
		pthread_cond_signal(&gc->cv);
		pthread_mutex_unlock(&gc->mu);
		pthread_join(gc->thread, NULL);
	}
	if (gc->n)
		tls_gc_destroy(gc->q, gc->n);
	free(gc->q);
	pthread_cond_destroy(&gc->cv);
	pthread_mutex_destroy(&gc->mu);
}

static struct capture_tls *tls_state(struct capture *c)
{
	if (!c->tls) {
		c->tls = calloc(1, sizeof(*c->tls));
		if (c->tls) {
			hmap_init(&c->tls->procs);
			tls_gc_init(&c->tls->gc);
		}
	}
	return c->tls;
}

static void tls_file_detach(struct capture_tls *t, struct tls_file *f)
{
	tls_gc_push(&t->gc, f->links, f->nlinks);
	f->nlinks = 0;
}

/* Attach every program for the functions lib defines, in tgid only (0: in
 * every process), one perf-event uprobe each. */
static int tls_file_attach_perf(struct capture *c, uint32_t tgid, const char *path,
				const struct tls_lib *lib, struct tls_file *f)
{
	for (int s = 0; s < TLS_NSYM; s++) {
		struct bpf_program *p[2];

		if (!lib->off[s])
			continue;
		tls_progs(c->skel, s, p);
		for (int r = 0; r < 2; r++) {
			LIBBPF_OPTS(bpf_uprobe_opts, uo, .retprobe = r == 1);
			struct bpf_link *l;

			if (!p[r])
				continue;
			l = bpf_program__attach_uprobe_opts(p[r], tgid ? (pid_t)tgid : -1, path,
							    (size_t)lib->off[s], &uo);
			if (!l)
				return errno ? -errno : -EINVAL;
			f->links[f->nlinks++] = (struct tls_link){ .link = l, .fd = -1 };
		}
	}
	return 0;
}

/* BPF_LINK_CREATE for a uprobe_multi link, by hand: libbpf 1.1 predates
 * it and the system's linux/bpf.h may too. The layout is the kernel's
 * union bpf_attr link_create.uprobe_multi (stable uapi). */
#define TLS_BPF_LINK_CREATE 28
#define TLS_BPF_TRACE_UPROBE_MULTI 48
#define TLS_BPF_F_UPROBE_MULTI_RETURN 1u

struct tls_link_create_umulti {
	uint32_t prog_fd;
	uint32_t target_fd;
	uint32_t attach_type;
	uint32_t flags;
	uint64_t path;
	uint64_t offsets;
	uint64_t ref_ctr_offsets;
	uint64_t cookies;
	uint32_t cnt;
	uint32_t umulti_flags;
	uint32_t pid;
	uint32_t pad;
};

static int tls_umulti_link(int prog_fd, const char *path, const uint64_t *offs,
			   const uint64_t *cookies, uint32_t cnt, bool ret, uint32_t pid)
{
	struct tls_link_create_umulti a;
	long fd;

	memset(&a, 0, sizeof(a));
	a.prog_fd = (uint32_t)prog_fd;
	a.attach_type = TLS_BPF_TRACE_UPROBE_MULTI;
	a.path = (uint64_t)(uintptr_t)path;
	a.offsets = (uint64_t)(uintptr_t)offs;
	a.cookies = (uint64_t)(uintptr_t)cookies;
	a.cnt = cnt;
	a.umulti_flags = ret ? TLS_BPF_F_UPROBE_MULTI_RETURN : 0;
	a.pid = pid;
	fd = syscall(__NR_bpf, TLS_BPF_LINK_CREATE, &a, sizeof(a));
	return fd < 0 ? -errno : (int)fd;
}

bool tls_probe_uprobe_multi(void)
{
	struct bpf_insn insns[2] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, lo, .expected_attach_type = TLS_BPF_TRACE_UPROBE_MULTI);
	uint64_t off = 0, cookie = 0;
	int prog_fd, fd;

	prog_fd = bpf_prog_load(BPF_PROG_TYPE_KPROBE, "sonde_umulti", "GPL", insns, 2, &lo);
	if (prog_fd < 0)
		return false;
	/* "/" is not a regular file: a kernel that knows uprobe_multi says
	 * EBADF; one that does not refuses the attach type (EINVAL). */
	fd = tls_umulti_link(prog_fd, "/", &off, &cookie, 1, false, 0);
	if (fd >= 0)
		close(fd);
	close(prog_fd);
	return fd == -EBADF;
}

/* Attach the two dispatch programs as one entry and one return uprobe_multi
 * link covering every function lib defines, in tgid only (0: in every
 * process). */
static int tls_file_attach_multi(struct capture *c, uint32_t tgid, const char *path,
				 const struct tls_lib *lib, struct tls_file *f)
{
	uint64_t offs[TLS_NSYM], cookies[TLS_NSYM];
	uint32_t n;
	int fd;

	for (int r = 0; r < 2; r++) {
		n = 0;
		for (int s = 0; s < TLS_NSYM; s++) {
			if (!lib->off[s] || (r && (s == TLS_SSL_SHUTDOWN || s == TLS_SSL_FREE)))
				continue;
			offs[n] = lib->off[s];
			cookies[n++] = (uint64_t)s;
		}
		fd = tls_umulti_link(bpf_program__fd(r ? c->skel->progs.ssl_multi_exit
						       : c->skel->progs.ssl_multi_enter),
				     path, offs, cookies, n, r == 1, tgid);
		if (fd < 0)
			return fd;
		f->links[f->nlinks++] = (struct tls_link){ .link = NULL, .fd = fd };
	}
	return 0;
}

/* All or nothing: on failure the links made so far are destroyed. */
static int tls_file_attach(struct capture *c, uint32_t tgid, const char *path,
			   const struct tls_lib *lib, struct tls_file *f)
{
	int rc = c->uprobe_multi ? tls_file_attach_multi(c, tgid, path, lib, f)
				 : tls_file_attach_perf(c, tgid, path, lib, f);

	if (rc)
		tls_file_detach(c->tls, f);
	return rc;
}

void tls_prepare(struct capture *c)
{
	struct bpf_program *single[] = {
		c->skel->progs.ssl_read_enter,     c->skel->progs.ssl_read_exit,
		c->skel->progs.ssl_write_enter,    c->skel->progs.ssl_write_exit,
		c->skel->progs.ssl_read_ex_enter,  c->skel->progs.ssl_read_ex_exit,
		c->skel->progs.ssl_write_ex_enter, c->skel->progs.ssl_write_ex_exit,
		c->skel->progs.ssl_handshake_enter, c->skel->progs.ssl_handshake_exit,
		c->skel->progs.ssl_forget_enter,
	};
	const char *no = getenv("SONDE_NO_UPROBE_MULTI");
	bool multi = c->feat.uprobes && !(no && !strcmp(no, "1")) && tls_probe_uprobe_multi();

	c->uprobe_multi = multi;
	if (!c->feat.uprobes)
		fprintf(stderr, "sonde: warning: the kernel offers no uprobes: TLS plaintext "
				"(HTTPS) will not be captured\n");
	for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++)
		bpf_program__set_autoload(single[i], !multi);
	bpf_program__set_autoload(c->skel->progs.ssl_multi_enter, multi);
	bpf_program__set_autoload(c->skel->progs.ssl_multi_exit, multi);
	if (multi) {
		bpf_program__set_expected_attach_type(c->skel->progs.ssl_multi_enter,
						      TLS_BPF_TRACE_UPROBE_MULTI);
		bpf_program__set_expected_attach_type(c->skel->progs.ssl_multi_exit,
						      TLS_BPF_TRACE_UPROBE_MULTI);
	}
}

static struct tls_proc *tls_proc_get(struct capture_tls *t, uint32_t tgid)
{
	struct tls_proc *p = hmap_get(&t->procs, tgid);

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->tgid = tgid;
	if (hmap_put(&t->procs, tgid, p)) {
		free(p);
		return NULL;
	}
	return p;
}

static bool tls_proc_has(const struct tls_proc *p, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < p->nfiles; i++)
		if (p->files[i].dev == dev && p->files[i].ino == ino)
			return true;
	return false;
}

/* The identity /proc/PID/maps shows for a file and the one stat() gives
 * can differ (overlayfs): remember the maps one too, without links, so the
 * file counts as attached either way. */
static void tls_proc_alias(struct tls_proc *p, dev_t dev, ino_t ino)
{
	struct tls_file *nf = realloc(p->files, (p->nfiles + 1) * sizeof(*nf));

	if (!nf)
		return;
	p->files = nf;
	memset(&nf[p->nfiles], 0, sizeof(*nf));
	nf[p->nfiles].dev = dev;
	nf[p->nfiles].ino = ino;
	p->nfiles++;
}

/* Attach to one candidate mapping unless done already. 1: newly attached,
 * 0: nothing to do (not TLS, or already attached), <0: -errno. */
static int tls_attach_map(struct capture *c, struct tls_proc *p, const struct tls_map *m)
{
	struct capture_tls *t = c->tls;
	struct tls_lib *lib;
	struct tls_file *nf;
	struct stat st;
	char path[600];
	int rc, nlinks;

	if (tls_proc_has(p, m->dev, m->ino))
		return 0;
	rc = tls_open_path(p->tgid, m, path, sizeof(path), &st);
	if (rc)
		return rc;
	if (tls_proc_has(p, st.st_dev, st.st_ino))
		return 0;
	lib = tls_lib_get(t, &st, path);
	if (!lib)
		return -ENOMEM;
	if (!lib->ssl)
		return 0;
	nf = realloc(p->files, (p->nfiles + 1) * sizeof(*nf));
	if (!nf)
		return -ENOMEM;
	p->files = nf;
	nf = &p->files[p->nfiles];
	memset(nf, 0, sizeof(*nf));
	nf->dev = st.st_dev;
	nf->ino = st.st_ino;
	nf->shared = lib->shared.nlinks > 0;
	if (!nf->shared && (rc = tls_file_attach(c, p->tgid, path, lib, nf)))
		return rc;
	nlinks = nf->nlinks;
	p->nfiles++;
	if (m->dev != st.st_dev || m->ino != st.st_ino)
		tls_proc_alias(p, m->dev, m->ino);
	if (!nlinks) {
		fprintf(stderr, "sonde: tls: pid %u: %s is covered by its shared uprobes\n",
			p->tgid, m->path);
		return 1;
	}
	fprintf(stderr, "sonde: tls: pid %u: uprobes on %s (%s%s%s; %d %s)\n", p->tgid, m->path,
		lib->off[TLS_SSL_READ_EX] ? "SSL_read/_ex, SSL_write/_ex" : "SSL_read, SSL_write",
		lib->off[TLS_SSL_DO_HANDSHAKE] ? ", SSL_do_handshake" : "",
		lib->off[TLS_SSL_FREE] ? ", SSL_free" : "", nlinks,
		c->uprobe_multi ? "uprobe_multi links" : "perf-event links");
	return 1;
}

static size_t tls_proc_libs(const struct tls_proc *p)
{
	size_t n = 0;

	for (size_t i = 0; i < p->nfiles; i++)
		n += p->files[i].nlinks > 0 || p->files[i].shared;
	return n;
}

int capture_tls_attach(struct capture *c, uint32_t tgid)
{
	struct tls_map maps[TLS_MAX_FILES];
	struct capture_tls *t;
	struct tls_proc *p;
	int n, rc = 0;

	if (!c || !c->skel || !tgid)
		return -EINVAL;
	if (!c->feat.uprobes)
		return -ENOTSUP;
	t = tls_state(c);
	if (!t || !(p = tls_proc_get(t, tgid)))
		return -ENOMEM;
	n = tls_read_maps(tgid, maps, TLS_MAX_FILES);
	/* The syscall hooks link ciphertext to SSL calls only for processes
	 * flagged TLS; flag before the first uprobe can fire. */
	if (n > 0)
		capture_pid_set(c, tgid, SONDE_PID_TLS, 0);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		int r = tls_attach_map(c, p, &maps[i]);

		if (r < 0 && r != -ENOENT && r != -ESRCH) {
			fprintf(stderr, "sonde: tls: pid %u: cannot attach to %s: %s\n", tgid,
				maps[i].path, strerror(-r));
			rc = r;
		}
	}
	if (rc && !tls_proc_libs(p))
		return rc;
	return (int)tls_proc_libs(p);
}

static void tls_proc_free(struct capture_tls *t, struct tls_proc *p)
{
	for (size_t i = 0; i < p->nfiles; i++)
		tls_file_detach(t, &p->files[i]);
	free(p->files);
	free(p);
}

/* A path naming the file dev/ino (as stat() sees it) through a mapping of
 * tgid. 0 or -errno. */
static int tls_lib_path(uint32_t tgid, dev_t dev, ino_t ino, char *buf, size_t len)
{
	struct tls_map maps[TLS_MAX_FILES];
	struct stat st;
	int n = tls_read_maps(tgid, maps, TLS_MAX_FILES);

	for (int i = 0; i < n; i++)
		if (!tls_open_path(tgid, &maps[i], buf, len, &st) && st.st_dev == dev &&
		    st.st_ino == ino)
			return 0;
	return n < 0 ? n : -ENOENT;
}

/* Whether any process still asked about uses the file dev/ino. */
static bool tls_file_in_use(struct capture_tls *t, dev_t dev, ino_t ino)
{
	uint64_t key;
	void *val;

	for (size_t it = 0; hmap_next(&t->procs, &it, &key, &val);)
		if (tls_proc_has(val, dev, ino))
			return true;
	return false;
}

void capture_tls_detach(struct capture *c, uint32_t tgid)
{
	struct capture_tls *t = c ? c->tls : NULL;
	struct tls_proc *p;

	if (!t)
		return;
	p = hmap_del(&t->procs, tgid);
	if (!p)
		return;
	tls_proc_free(t, p);
	/* A shared attachment lasts while a watched process uses its file:
	 * after that, other processes would trap on it for nothing. */
	for (size_t i = 0; i < t->nlibs; i++) {
		struct tls_lib *lib = &t->libs[i];

		if (lib->shared.nlinks && !tls_file_in_use(t, lib->dev, lib->ino)) {
			tls_file_detach(t, &lib->shared);
			fprintf(stderr, "sonde: tls: shared uprobes on dev %lu inode %lu removed "
					"(no watched process uses the file)\n",
				(unsigned long)lib->dev, (unsigned long)lib->ino);
		}
	}
}

int capture_tls_share(struct capture *c, uint32_t tgid)
{
	struct capture_tls *t = c ? c->tls : NULL;
	struct tls_proc *p = t ? hmap_get(&t->procs, tgid) : NULL;
	int shared = 0;

	if (!p || !c->skel || c->tls_per_process)
		return 0;
	for (size_t i = 0; i < p->nfiles; i++) {
		struct tls_file *f = &p->files[i];
		struct tls_lib *lib = NULL;
		char path[600];
		int rc;

		if (f->shared || !f->nlinks)
			continue; /* covered already, or an alias */
		for (size_t j = 0; j < t->nlibs && !lib; j++)
			if (t->libs[j].dev == f->dev && t->libs[j].ino == f->ino)
				lib = &t->libs[j];
		if (!lib || !lib->ssl)
			continue;
		if (!lib->shared.nlinks) {
			if (tls_lib_path(tgid, f->dev, f->ino, path, sizeof(path)))
				continue;
			rc = tls_file_attach(c, 0, path, lib, &lib->shared);
			if (rc) {
				fprintf(stderr, "sonde: tls: pid %u forks: cannot attach shared "
						"uprobes: %s\n", tgid, strerror(-rc));
				continue;
			}
			fprintf(stderr, "sonde: tls: pid %u forks: uprobes on dev %lu inode %lu "
					"are now shared by every process (its children are covered "
					"from their first instruction)\n",
				tgid, (unsigned long)f->dev, (unsigned long)f->ino);
			shared++;
		}
		/* Per-process links on the same file would run the programs
		 * twice per call: the shared ones replace them. */
		uint64_t key;
		void *val;

		for (size_t it = 0; hmap_next(&t->procs, &it, &key, &val);) {
			struct tls_proc *q = val;

			for (size_t k = 0; k < q->nfiles; k++) {
				struct tls_file *g = &q->files[k];

				if (g->dev == lib->dev && g->ino == lib->ino && !g->shared) {
					tls_file_detach(t, g);
					g->shared = true;
				}
			}
		}
	}
	return shared;
}

/* --- late libraries ------------------------------------------------------------ */

void tls_poll(struct capture *c)
{
	struct capture_tls *t = c ? c->tls : NULL;
	uint32_t keys[64], key, *prev = NULL;
	uint64_t now;
	int fd, n = 0;

	if (!t || !c->skel)
		return;
	now = tls_now_ns();
	if (now - t->last_poll_ns < TLS_POLL_NS)
		return;
	t->last_poll_ns = now;
	fd = bpf_map__fd(c->skel->maps.tls_rescan);
	while (n < 64 && bpf_map_get_next_key(fd, prev, &key) == 0) {
		keys[n] = key;
		prev = &keys[n];
		n++;
	}
	for (int i = 0; i < n; i++) {
		bpf_map_delete_elem(fd, &keys[i]);
		/* Only processes discovery watches (and so asked us about). */
		if (hmap_get(&t->procs, keys[i]))
			capture_tls_attach(c, keys[i]);
	}
}

void tls_free(struct capture *c)
{
	struct capture_tls *t = c ? c->tls : NULL;
	uint64_t key;
	void *val;

	if (!t)
		return;
	for (size_t it = 0; hmap_next(&t->procs, &it, &key, &val);)
		tls_proc_free(t, val);
	for (size_t i = 0; i < t->nlibs; i++)
		tls_file_detach(t, &t->libs[i].shared);
	hmap_free(&t->procs);
	tls_gc_fini(&t->gc);
	free(t->libs);
	free(t);
	c->tls = NULL;
}
