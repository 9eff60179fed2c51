/*
 * go_elf.c - a Go executable as an ELF file (libelf): build information,
 * symbols by name, reads at virtual addresses.
 *
 * The one idea: go_elf keeps the libelf handle and the program headers and
 * answers "what is at this address" through them; sections are only used
 * to find things by name (.go.buildinfo, .symtab, .rela.dyn, .debug_info).
 * The file is mapped once (ELF_C_READ_MMAP), so reading a function's code
 * or a symbol table costs no copy.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "go_elf.h"

#define GO_MAX_PHDR 64

/* One R_X86_64_RELATIVE (or R_AARCH64_RELATIVE) relocation: the word at
 * off holds addend + load bias once loaded. */
struct go_rel {
	uint64_t off;
	uint64_t addend;
};

struct go_elf {
	int fd;
	Elf *e;
	GElf_Ehdr eh;
	size_t nphdr;
	GElf_Phdr ph[GO_MAX_PHDR];
	const uint8_t *image;  /* the whole file (libelf's mapping) */
	size_t image_len;
	int is_go;
	int has_symtab;
	int has_dwarf;
	char version[64];
	char *mem;             /* go_elf_open_mem's copy of the image */
	struct go_rel *rels;   /* sorted by off; only loaded for a PIE, lazily */
	size_t nrels;
	int rels_loaded;
};

static void go_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, a, b);
}

int go_version_parse(const char *v, int *major, int *minor)
{
	const char *p = strstr(v ? v : "", "go");
	char *end;
	long a, b;

	if (!p)
		return -1;
	p += 2;
	a = strtol(p, &end, 10);
	if (end == p || *end != '.')
		return -1;
	p = end + 1;
	b = strtol(p, &end, 10);
	if (end == p || a <= 0 || a > 99 || b < 0 || b > 999)
		return -1;
	*major = (int)a;
	*minor = (int)b;
	return 0;
}

/* Unsigned LEB128 as Go's binary.Uvarint writes it. Returns bytes used, 0
 * on truncation or overflow. */
static size_t go_uvarint(const uint8_t *p, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	for (size_t i = 0; i < len && i < 10; i++) {
		v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*out = v;
			return i + 1;
		}
	}
	return 0;
}

static void go_copy_str(char *out, size_t outlen, const uint8_t *s, uint64_t n)
{
	size_t k = n < outlen - 1 ? (size_t)n : outlen - 1;

	for (size_t i = 0; i < k; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
	out[k] = 0;
}

int go_buildinfo_version(struct go_elf *g, const uint8_t *blob, size_t len, char *out,
			 size_t outlen)
{
	static const char magic[] = "\xff Go buildinf:";
	uint64_t n, strp, slen;
	size_t used;
	uint8_t hdr[16];
	int psize;

	if (!outlen || len < 32 || memcmp(blob, magic, 14) != 0)
		return -1;
	psize = blob[14];
	if (blob[15] & 2) {
		used = go_uvarint(blob + 32, len - 32, &n);
		if (!used || n == 0 || n > len - 32 - used)
			return -1;
		go_copy_str(out, outlen, blob + 32 + used, n);
		return 0;
	}
	/* Before Go 1.18: a pointer to runtime.buildVersion's string header. */
	if (!g || psize != 8 || (blob[15] & 1))
		return -1;
	memcpy(&strp, blob + 16, 8);
	if (go_elf_read(g, strp, hdr, 16))
		return -1;
	memcpy(&strp, hdr, 8);
	memcpy(&slen, hdr + 8, 8);
	if (slen == 0 || slen > 64)
		return -1;
	{
		uint8_t s[64];

		if (go_elf_read(g, strp, s, (size_t)slen))
			return -1;
		go_copy_str(out, outlen, s, slen);
	}
	return 0;
}

static Elf_Scn *go_section(Elf *e, const char *want, GElf_Shdr *sh)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrstrndx(e, &shstrndx))
		return NULL;
	while ((scn = elf_nextscn(e, scn))) {
		const char *name;

		if (!gelf_getshdr(scn, sh))
			continue;
		name = elf_strptr(e, shstrndx, sh->sh_name);
		if (name && !strcmp(name, want))
			return scn;
	}
	return NULL;
}

/* The version from runtime.buildVersion (a Go string header) when there is
 * no build-info section. */
static void go_version_from_symbol(struct go_elf *g)
{
	struct go_sym s = { .name = "runtime.buildVersion" };
	uint8_t hdr[16], str[64];
	uint64_t p, n;

	if (go_elf_find_syms(g, &s, 1) != 1 || go_elf_read(g, s.addr, hdr, 16))
		return;
	memcpy(&p, hdr, 8);
	memcpy(&n, hdr + 8, 8);
	if (!n || n > sizeof(str) || go_elf_read(g, p, str, (size_t)n))
		return;
	go_copy_str(g->version, sizeof(g->version), str, n);
	g->is_go = 1;
}

static void go_probe_sections(struct go_elf *g)
{
	GElf_Shdr sh;
	Elf_Scn *scn;

	g->has_symtab = go_section(g->e, ".symtab", &sh) != NULL;
	g->has_dwarf = go_section(g->e, ".debug_info", &sh) != NULL ||
		       go_section(g->e, ".zdebug_info", &sh) != NULL;
	scn = go_section(g->e, ".go.buildinfo", &sh);
	if (scn && sh.sh_type != SHT_NOBITS && sh.sh_offset + sh.sh_size <= g->image_len &&
	    sh.sh_size >= 32) {
		g->is_go = 1;
		go_buildinfo_version(g, g->image + sh.sh_offset, sh.sh_size, g->version,
				     sizeof(g->version));
	}
	if (!g->version[0] && g->has_symtab)
		go_version_from_symbol(g);
}

/* The part of opening shared by files and memory images. */
static struct go_elf *go_elf_finish(struct go_elf *g, const char *path, char *err, size_t errlen)
{
	size_t n;

	if (!g->e || elf_kind(g->e) != ELF_K_ELF || !gelf_getehdr(g->e, &g->eh)) {
		go_err(err, errlen, "%s is not an ELF file%s", path, "");
		goto fail;
	}
	g->image = (const uint8_t *)elf_rawfile(g->e, &n);
	g->image_len = n;
	if (!g->image || elf_getphdrnum(g->e, &n) || n == 0) {
		go_err(err, errlen, "%s has no program headers%s", path, "");
		goto fail;
	}
	for (size_t i = 0; i < n && g->nphdr < GO_MAX_PHDR; i++)
		if (gelf_getphdr(g->e, (int)i, &g->ph[g->nphdr]) &&
		    g->ph[g->nphdr].p_type == PT_LOAD)
			g->nphdr++;
	go_probe_sections(g);
	return g;
fail:
	go_elf_close(g);
	return NULL;
}

struct go_elf *go_elf_open(const char *path, char *err, size_t errlen)
{
	struct go_elf *g = calloc(1, sizeof(*g));

	if (!g) {
		go_err(err, errlen, "%s%s", "out of memory", "");
		return NULL;
	}
	elf_version(EV_CURRENT);
	g->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (g->fd < 0) {
		go_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
		go_elf_close(g);
		return NULL;
	}
	g->e = elf_begin(g->fd, ELF_C_READ_MMAP, NULL);
	return go_elf_finish(g, path, err, errlen);
}

struct go_elf *go_elf_open_mem(const void *image, size_t len, char *err, size_t errlen)
{
	struct go_elf *g = calloc(1, sizeof(*g));

	if (!g) {
		go_err(err, errlen, "%s%s", "out of memory", "");
		return NULL;
	}
	elf_version(EV_CURRENT);
	g->fd = -1;
	g->mem = malloc(len ? len : 1);
	if (!g->mem) {
		go_elf_close(g);
		return NULL;
	}
	memcpy(g->mem, image, len);
	g->e = elf_memory(g->mem, len);
	return go_elf_finish(g, "(memory)", err, errlen);
}

void go_elf_close(struct go_elf *g)
{
	if (!g)
		return;
	if (g->e)
		elf_end(g->e);
	if (g->fd >= 0)
		close(g->fd);
	free(g->mem);
	free(g->rels);
	free(g);
}

void *go_elf_handle(struct go_elf *g) { return g->e; }
int go_elf_is_go(const struct go_elf *g) { return g->is_go; }
const char *go_elf_version(const struct go_elf *g) { return g->version; }
uint16_t go_elf_machine(const struct go_elf *g) { return g->eh.e_machine; }
int go_elf_is_pie(const struct go_elf *g) { return g->eh.e_type == ET_DYN; }
int go_elf_has_symtab(const struct go_elf *g) { return g->has_symtab; }
int go_elf_has_dwarf(const struct go_elf *g) { return g->has_dwarf; }

int go_elf_version_num(const struct go_elf *g, int *major, int *minor)
{
	*major = *minor = 0;
	return go_version_parse(g->version, major, minor);
}

uint64_t go_elf_base(const struct go_elf *g)
{
	uint64_t lo = UINT64_MAX;

	for (size_t i = 0; i < g->nphdr; i++) {
		uint64_t a = g->ph[i].p_align > 1 ? g->ph[i].p_align : 1;
		uint64_t v = g->ph[i].p_vaddr - (g->ph[i].p_offset % a);

		v &= ~(a - 1);
		if (v < lo)
			lo = v;
	}
	return lo == UINT64_MAX ? 0 : lo;
}

/* "go.itab.X" asked for also matches "go:itab.X". */
static int go_sym_match(const char *want, const char *name)
{
	if (!strcmp(want, name))
		return 1;
	if (!strncmp(want, "go.itab.", 8) && !strncmp(name, "go:itab.", 8))
		return !strcmp(want + 8, name + 8);
	return 0;
}

size_t go_elf_find_syms(struct go_elf *g, struct go_sym *syms, size_t n)
{
	GElf_Shdr sh;
	Elf_Scn *scn = go_section(g->e, ".symtab", &sh);
	Elf_Data *data;
	size_t count, found = 0;

	for (size_t k = 0; k < n; k++)
		syms[k].addr = syms[k].size = 0;
	if (!scn || !sh.sh_entsize || !(data = elf_getdata(scn, NULL)))
		return 0;
	count = sh.sh_size / sh.sh_entsize;
	for (size_t i = 0; i < count && found < n; i++) {
		GElf_Sym sym;
		const char *name;

		if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF || !sym.st_value)
			continue;
		name = elf_strptr(g->e, sh.sh_link, sym.st_name);
		if (!name)
			continue;
		for (size_t k = 0; k < n; k++) {
			if (syms[k].addr || !go_sym_match(syms[k].name, name))
				continue;
			syms[k].addr = sym.st_value;
			syms[k].size = sym.st_size;
			found++;
			break;
		}
	}
	return found;
}

uint64_t go_elf_file_offset(const struct go_elf *g, uint64_t vaddr)
{
	for (size_t i = 0; i < g->nphdr; i++) {
		const GElf_Phdr *p = &g->ph[i];

		if ((p->p_flags & PF_X) && vaddr >= p->p_vaddr && vaddr < p->p_vaddr + p->p_filesz &&
		    vaddr - p->p_vaddr + p->p_offset < g->image_len)
			return vaddr - p->p_vaddr + p->p_offset;
	}
	return 0;
}

const uint8_t *go_elf_bytes(struct go_elf *g, uint64_t vaddr, size_t len)
{
	for (size_t i = 0; i < g->nphdr; i++) {
		const GElf_Phdr *p = &g->ph[i];
		uint64_t off;

		if (vaddr < p->p_vaddr || vaddr - p->p_vaddr > p->p_filesz ||
		    len > p->p_filesz - (vaddr - p->p_vaddr))
			continue;
		off = vaddr - p->p_vaddr + p->p_offset;
		if (off > g->image_len || len > g->image_len - off)
			return NULL;
		return g->image + off;
	}
	return NULL;
}

int go_elf_read(struct go_elf *g, uint64_t vaddr, void *buf, size_t len)
{
	const uint8_t *p = go_elf_bytes(g, vaddr, len);

	if (!p)
		return -1;
	memcpy(buf, p, len);
	return 0;
}

static int go_rel_cmp(const void *a, const void *b)
{
	const struct go_rel *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* The relative relocations of every SHT_RELA section, sorted. */
static void go_load_rels(struct go_elf *g)
{
	Elf_Scn *scn = NULL;
	uint32_t rel_type = g->eh.e_machine == EM_AARCH64 ? 1027 /* R_AARCH64_RELATIVE */
							 : R_X86_64_RELATIVE;
	size_t cap = 0;

	g->rels_loaded = 1;
	while ((scn = elf_nextscn(g->e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		size_t cnt;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || !sh.sh_entsize ||
		    !(d = elf_getdata(scn, NULL)))
			continue;
		cnt = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < cnt; i++) {
			GElf_Rela r;

			if (!gelf_getrela(d, (int)i, &r) || GELF_R_TYPE(r.r_info) != rel_type)
				continue;
			if (g->nrels == cap) {
				size_t nc = cap ? cap * 2 : 1024;
				struct go_rel *nr = realloc(g->rels, nc * sizeof(*nr));

				if (!nr)
					return;
				g->rels = nr;
				cap = nc;
			}
			g->rels[g->nrels].off = r.r_offset;
			g->rels[g->nrels].addend = (uint64_t)r.r_addend;
			g->nrels++;
		}
	}
	if (g->nrels)
		qsort(g->rels, g->nrels, sizeof(*g->rels), go_rel_cmp);
}

uint64_t go_elf_read_ptr(struct go_elf *g, uint64_t vaddr)
{
	uint64_t v = 0;

	if (g->eh.e_type == ET_DYN) {
		struct go_rel key = { .off = vaddr }, *r;

		if (!g->rels_loaded)
			go_load_rels(g);
		r = g->nrels ? bsearch(&key, g->rels, g->nrels, sizeof(key), go_rel_cmp) : NULL;
		if (r)
			return r->addend;
	}
	if (go_elf_read(g, vaddr, &v, sizeof(v)))
		return 0;
	return v;
}
