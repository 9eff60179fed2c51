/*
 * node_proc.h - what the Node.js plugin reads about a process from /proc,
 * as parsers of the files' text (so tests and the fuzzer feed them bytes)
 * plus the few calls that read the real files.
 */
#ifndef SONDE_NODE_PROC_H
#define SONDE_NODE_PROC_H

#include <stddef.h>
#include <stdint.h>

/* Signal masks of /proc/PID/status (bit n-1 is signal n). */
struct node_sigmasks {
	uint64_t cgt; /* caught */
	uint64_t ign; /* ignored */
	uint64_t blk; /* blocked (the thread's) */
};

/* Parse status text. 0 when SigCgt and SigIgn were both found, else -1. */
int node_status_parse(const char *text, size_t len, struct node_sigmasks *m);

/* What Node's own options say about its inspector (node_opts_scan). */
#define NODE_OPT_INSPECT (1u << 0)     /* --inspect, --inspect-brk, --inspect-wait:
                                          a debugger of the user's is already on */
#define NODE_OPT_NO_SIGUSR1 (1u << 1)  /* --disable-sigusr1 */
#define NODE_OPT_PORT_PUBLIC (1u << 2) /* --inspect-port/--debug-port naming a host
                                          that is not loopback */
#define NODE_OPT_BAD (1u << 3)         /* too long or malformed to read */

/* Scan Node's options: the NUL-separated /proc/PID/cmdline (options end at
 * the first argument that is not one: the script; what follows is the
 * script's own), and NODE_OPTIONS from the NUL-separated /proc/PID/environ
 * (may be NULL). Returns NODE_OPT_* bits. */
uint32_t node_opts_scan(const char *cmdline, size_t clen, const char *environ, size_t elen);

/* One line of /proc/PID/maps. */
struct node_map {
	uint64_t lo, hi, off;
	uint64_t inode;
	char perms[5];
	const char *path; /* into the line, or "" */
	size_t path_len;
};

/* Parse a maps line (without its newline). 0 or -1. */
int node_maps_line(const char *line, size_t len, struct node_map *m);

/* One line of /proc/PID/net/tcp or tcp6. */
struct node_sock {
	uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes */
	int v6;
	uint16_t port;
	uint8_t state;    /* 0x0A: LISTEN */
	uint64_t inode;
};

/* Parse a net/tcp(6) line (the header line gives -1). 0 or -1. */
int node_net_line(const char *line, size_t len, struct node_sock *s);

/* Is this listening address one a local client reaches: loopback or any? */
int node_sock_local(const struct node_sock *s);

/* --- real files --------------------------------------------------------------- */

/* Read a whole /proc file (at most cap bytes) into a malloc'd buffer with a
 * NUL after it. NULL on error. */
char *node_read_file(const char *path, size_t cap, size_t *len);

/* Listening TCP sockets of pid (its fds): up to max, inodes and sockets.
 * Returns the count, -1 on error. */
int node_listeners(uint32_t pid, struct node_sock *out, int max);

/* The start of the mapping at file offset 0 of the file with this inode
 * (the executable or libnode), and its path if wanted. 0 or -1. */
int node_map_start(uint32_t pid, uint64_t inode, uint64_t *start, char *path, size_t path_cap);

/* The first mapped file whose name starts with prefix (libnode.so,
 * libssl.so): its path as the process sees it. 0 or -1. */
int node_find_mapped(uint32_t pid, const char *prefix, char *path, size_t cap);
int node_find_libnode(uint32_t pid, char *path, size_t cap);

#endif /* SONDE_NODE_PROC_H */
