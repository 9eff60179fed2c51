/*
 * node_elf.h - a Node.js executable (or libnode.so) as an ELF file: is it
 * Node, and where is Node's own SIGUSR1 handler.
 */
#ifndef SONDE_NODE_ELF_H
#define SONDE_NODE_ELF_H

#include <stddef.h>
#include <stdint.h>

#define NODE_TEXT_MAX 8

struct node_image {
	int is_node;            /* exports napi_module_register / node_module_register */
	int has_ssl_write;      /* exports SSL_write (OpenSSL linked in) */
	int has_ssl_write_ex;   /* ... and SSL_write_ex */
	int pie;                /* ET_DYN: load address + bias */
	uint64_t base;          /* lowest PT_LOAD address, page-aligned (link time) */
	uint64_t usr1_handler;  /* link-time address of Node's SIGUSR1 handler
	                           (node::inspector::StartIoThreadWakeup), 0: unknown
	                           (no symbol table) */
	struct {
		uint64_t lo, hi;    /* executable PT_LOAD ranges (link time) */
	} text[NODE_TEXT_MAX];
	size_t ntext;
	char version[24];       /* "20.20.2" from the release URL Node carries
	                           (process.release), "" when absent */
	int major;              /* its first number, 0 when unknown */
};

/* The version in text that holds ".../release/vX.Y.Z/..." (the release URL
 * Node builds carry for process.release): 0, or -1 if there is none. */
int node_version_find(const uint8_t *text, size_t len, char *out, size_t cap, int *major);

/* Inspect a file. 0 when it is a readable ELF file (is_node says whether it
 * is Node), -1 otherwise. */
int node_elf_inspect(const char *path, struct node_image *out);

/* The same on an image in memory (tests, fuzzing). */
int node_elf_inspect_mem(const void *img, size_t len, struct node_image *out);

/* Is addr (link time) inside an executable segment? */
int node_image_in_text(const struct node_image *im, uint64_t addr);

#endif /* SONDE_NODE_ELF_H */
