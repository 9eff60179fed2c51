/*
 * node_elf.c - a Node.js executable or libnode.so as an ELF file (libelf):
 * whether it is Node, its executable segments, and the address of Node's
 * own SIGUSR1 handler, node::inspector::StartIoThreadWakeup.
 *
 * The one idea: Node is recognised by what it exports to native addons
 * (napi_module_register, node_module_register in .dynsym); the handler is
 * a local function, so it is found only in .symtab (Node's release builds
 * keep it; a stripped build leaves it unknown, and the signal check falls
 * back to what libuv's handlers always have and Node's never: SA_RESTART).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node_elf.h"

static int sym_is_usr1_handler(const char *name)
{
	/* _ZN4node9inspector12_GLOBAL__N_1L19StartIoThreadWakeupEiP9siginfo_tPv
	 * and the forms other compilers or releases mangle it to. */
	return strstr(name, "StartIoThreadWakeup") && strstr(name, "inspector");
}

static int sym_is_node_export(const char *name)
{
	return !strcmp(name, "napi_module_register") || !strcmp(name, "node_module_register");
}

static void scan_symbols(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, struct node_image *out)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	size_t n;

	if (!d || !sh->sh_entsize || !d->d_buf)
		return;
	n = d->d_size / sh->sh_entsize;
	for (size_t i = 0; i < n; i++) {
		GElf_Sym s;
		const char *name;

		if (!gelf_getsym(d, (int)i, &s) || !s.st_name)
			continue;
		name = elf_strptr(e, sh->sh_link, s.st_name);
		if (!name)
			continue;
		if (sh->sh_type == SHT_DYNSYM) {
			if (s.st_shndx == SHN_UNDEF)
				continue;
			if (sym_is_node_export(name))
				out->is_node = 1;
			else if (!strcmp(name, "SSL_write"))
				out->has_ssl_write = 1;
			else if (!strcmp(name, "SSL_write_ex"))
				out->has_ssl_write_ex = 1;
		} else if (GELF_ST_TYPE(s.st_info) == STT_FUNC && s.st_value &&
			   !out->usr1_handler && sym_is_usr1_handler(name)) {
			out->usr1_handler = s.st_value;
		}
	}
}

int node_version_find(const uint8_t *text, size_t len, char *out, size_t cap, int *major)
{
	static const char pat[] = "/release/v";
	const uint8_t *p = text, *end = text + len;

	while (p < end) {
		const uint8_t *m = memmem(p, (size_t)(end - p), pat, sizeof(pat) - 1);
		const uint8_t *v;
		size_t n = 0;
		int dots = 0, digits = 0;

		if (!m)
			return -1;
		v = m + sizeof(pat) - 1;
		/* X.Y.Z then '/' */
		while (v + n < end && n < 20 && ((v[n] >= '0' && v[n] <= '9') || v[n] == '.')) {
			dots += v[n] == '.';
			digits += v[n] != '.';
			n++;
		}
		if (dots == 2 && digits >= 3 && v + n < end && v[n] == '/' && v[0] != '.' &&
		    v[n - 1] != '.' && n < cap) {
			memcpy(out, v, n);
			out[n] = 0;
			*major = atoi(out);
			return 0;
		}
		p = m + 1;
	}
	return -1;
}

/* The release URL is in a read-only data section. */
static void find_version(Elf *e, struct node_image *out)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrstrndx(e, &shstrndx))
		return;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		const char *name;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS)
			continue;
		name = elf_strptr(e, shstrndx, sh.sh_name);
		if (!name || strncmp(name, ".rodata", 7))
			continue;
		d = elf_getdata(scn, NULL);
		if (d && d->d_buf &&
		    node_version_find(d->d_buf, d->d_size, out->version, sizeof(out->version),
				      &out->major) == 0)
			return;
	}
}

static int inspect(Elf *e, struct node_image *out)
{
	GElf_Ehdr eh;
	Elf_Scn *scn = NULL;
	size_t nph;
	int have_base = 0;

	memset(out, 0, sizeof(*out));
	if (elf_kind(e) != ELF_K_ELF || !gelf_getehdr(e, &eh) || elf_getphdrnum(e, &nph))
		return -1;
	out->pie = eh.e_type == ET_DYN;
	for (size_t i = 0; i < nph && i < 256; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (!have_base || (ph.p_vaddr & ~0xfffull) < out->base)
			out->base = ph.p_vaddr & ~0xfffull;
		have_base = 1;
		if ((ph.p_flags & PF_X) && out->ntext < NODE_TEXT_MAX &&
		    ph.p_vaddr + ph.p_memsz > ph.p_vaddr) {
			out->text[out->ntext].lo = ph.p_vaddr;
			out->text[out->ntext].hi = ph.p_vaddr + ph.p_memsz;
			out->ntext++;
		}
	}
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_DYNSYM || sh.sh_type == SHT_SYMTAB)
			scan_symbols(e, scn, &sh, out);
	}
	if (!out->is_node)
		out->usr1_handler = 0;
	else
		find_version(e, out);
	return 0;
}

int node_elf_inspect_mem(const void *img, size_t len, struct node_image *out)
{
	Elf *e;
	int rc;

	memset(out, 0, sizeof(*out));
	if (elf_version(EV_CURRENT) == EV_NONE || !img || !len)
		return -1;
	e = elf_memory((char *)img, len);
	if (!e)
		return -1;
	rc = inspect(e, out);
	elf_end(e);
	return rc;
}

int node_elf_inspect(const char *path, struct node_image *out)
{
	Elf *e;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e) {
		close(fd);
		return -1;
	}
	rc = inspect(e, out);
	elf_end(e);
	close(fd);
	return rc;
}

int node_image_in_text(const struct node_image *im, uint64_t addr)
{
	for (size_t i = 0; i < im->ntext; i++)
		if (addr >= im->text[i].lo && addr < im->text[i].hi)
			return 1;
	return 0;
}
