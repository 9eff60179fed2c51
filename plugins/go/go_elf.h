/*
 * go_elf.h - a Go executable as an ELF file: is it Go, which Go, where are
 * its functions and data (libelf).
 *
 * The one idea: everything the plugin needs from the file is found by name
 * (sections, symbols) and read through the program headers, so the same
 * code reads any Go release's output; nothing here knows a Go version's
 * layout. Addresses are link-time virtual addresses; a PIE's load bias is
 * the caller's business (go_inspect.c).
 */
#ifndef SONDE_GO_ELF_H
#define SONDE_GO_ELF_H

#include <stddef.h>
#include <stdint.h>

struct go_elf;

/* A function or data symbol found by name (.symtab). */
struct go_sym {
	const char *name;   /* the name asked for (caller's string) */
	uint64_t addr;      /* link-time virtual address, 0: not found */
	uint64_t size;
};

/* Open path (read-only). NULL on failure with the reason in err. Not being
 * ELF is a failure; not being Go is not (go_elf_is_go says). */
struct go_elf *go_elf_open(const char *path, char *err, size_t errlen);
/* The same for an image in memory (copied). */
struct go_elf *go_elf_open_mem(const void *image, size_t len, char *err, size_t errlen);
void go_elf_close(struct go_elf *g);

/* The libelf handle, for the DWARF reader. */
void *go_elf_handle(struct go_elf *g);

/* 1 if the file carries Go build information (.go.buildinfo) or the Go
 * runtime's version variable. */
int go_elf_is_go(const struct go_elf *g);
/* "go1.19.8" (or "" when unknown), and its numbers (0 when unknown). */
const char *go_elf_version(const struct go_elf *g);
int go_elf_version_num(const struct go_elf *g, int *major, int *minor);

uint16_t go_elf_machine(const struct go_elf *g); /* EM_X86_64 ... */
int go_elf_is_pie(const struct go_elf *g);       /* ET_DYN */
int go_elf_has_symtab(const struct go_elf *g);
int go_elf_has_dwarf(const struct go_elf *g);
/* Link-time address of the first PT_LOAD, rounded down to its alignment:
 * what the first mapping of the file starts at, before the load bias. */
uint64_t go_elf_base(const struct go_elf *g);

/* Look up n symbols by exact name in one pass over .symtab. Names that
 * start with "go.itab." also match the "go:itab." spelling (Go >= 1.20).
 * Returns the number found. */
size_t go_elf_find_syms(struct go_elf *g, struct go_sym *syms, size_t n);

/* File offset of a virtual address in an executable segment (what a uprobe
 * wants); 0 if none holds it. */
uint64_t go_elf_file_offset(const struct go_elf *g, uint64_t vaddr);

/* Copy len bytes at a virtual address (file-backed part of a PT_LOAD).
 * 0, or -1 if the range is not all in the file. */
int go_elf_read(struct go_elf *g, uint64_t vaddr, void *buf, size_t len);

/* A pointer-sized word stored at vaddr as the loaded program sees it before
 * the load bias: in a PIE the file holds 0 and a relative relocation holds
 * the value, so the relocation's addend wins. 0 on failure. */
uint64_t go_elf_read_ptr(struct go_elf *g, uint64_t vaddr);

/* The bytes of [vaddr, vaddr+len) in the file as a pointer valid until
 * go_elf_close, or NULL. */
const uint8_t *go_elf_bytes(struct go_elf *g, uint64_t vaddr, size_t len);

/* Parse a build-info blob (the .go.buildinfo section's bytes) into the
 * version string: the 32-byte header "\xff Go buildinf:", pointer size,
 * flags; flags bit 1 = the strings follow inline as varint-prefixed data
 * (Go >= 1.18), else two pointers to string headers (read via g, which may
 * be NULL for the inline form). 0, or -1. Exposed for the tests. */
int go_buildinfo_version(struct go_elf *g, const uint8_t *blob, size_t len, char *out,
                         size_t outlen);

/* "go1.19.8", "go1.21rc2", "devel go1.22-abc" -> 1, 19. 0, or -1. */
int go_version_parse(const char *v, int *major, int *minor);

#endif /* SONDE_GO_ELF_H */
