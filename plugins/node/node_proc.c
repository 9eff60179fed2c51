/*
 * node_proc.c - reading /proc for the Node.js plugin: signal masks, Node's
 * own options, mappings and listening sockets.
 *
 * The one idea: every file is parsed from its text by a function that takes
 * (bytes, length) and never trusts a field: the unit tests and the fuzzer
 * feed the same functions the real files go through. Nothing here writes
 * or signals anything.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node_proc.h"

#define NODE_OPT_MAX 4096 /* option words looked at, at most */

/* --- small text helpers ----------------------------------------------------------- */

/* Hex digits at p (at most max, at least one). Returns digits used, 0 if none
 * or more than max. */
static size_t hex_u64(const char *p, size_t len, size_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	for (; i < len && isxdigit((unsigned char)p[i]); i++) {
		int c = (unsigned char)p[i];

		if (i == max)
			return 0;
		v = v << 4 | (uint64_t)(isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10));
	}
	*out = v;
	return i;
}

static size_t dec_u64(const char *p, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	for (; i < len && isdigit((unsigned char)p[i]); i++) {
		if (i == 19)
			return 0;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return i;
}

static size_t skip_sp(const char *p, size_t len, size_t i)
{
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i;
}

/* --- /proc/PID/status ----------------------------------------------------------------- */

static int status_field(const char *line, size_t len, const char *name, uint64_t *out)
{
	size_t n = strlen(name), i;

	if (len < n || memcmp(line, name, n))
		return 0;
	i = skip_sp(line, len, n);
	if (i == len || hex_u64(line + i, len - i, 16, out) == 0)
		return 0;
	return 1;
}

int node_status_parse(const char *text, size_t len, struct node_sigmasks *m)
{
	int have = 0;
	size_t i = 0;

	memset(m, 0, sizeof(*m));
	while (i < len) {
		const char *e = memchr(text + i, '\n', len - i);
		size_t n = e ? (size_t)(e - (text + i)) : len - i;

		if (status_field(text + i, n, "SigCgt:", &m->cgt))
			have |= 1;
		else if (status_field(text + i, n, "SigIgn:", &m->ign))
			have |= 2;
		else
			status_field(text + i, n, "SigBlk:", &m->blk);
		i += n + 1;
	}
	return have == 3 ? 0 : -1;
}

/* --- Node's options ------------------------------------------------------------------- */

/* Is host (up to its ':' port) loopback? Accepts 127.x.y.z, localhost, [::1],
 * ::1. A bare port (no host) is loopback (Node's default host). */
static int host_is_loopback(const char *v, size_t n)
{
	const char *colon;

	if (!n)
		return 1;
	if (v[0] == '[')
		return n >= 5 && !memcmp(v, "[::1]", 5);
	if (n >= 3 && !memcmp(v, "::1", 3))
		return 1;
	colon = memchr(v, ':', n);
	if (colon)
		n = (size_t)(colon - v);
	if (!n)
		return 1;
	for (size_t i = 0; i < n && isdigit((unsigned char)v[i]); i++)
		if (i + 1 == n)
			return 1; /* a port alone */
	if (n == 9 && !memcmp(v, "localhost", 9))
		return 1;
	return n >= 4 && !memcmp(v, "127.", 4);
}

/* One option word (NUL-free, length n). *takes_value: the next word is its
 * value. Returns NODE_OPT_* bits. */
static uint32_t opt_word(const char *w, size_t n, int *takes_value)
{
	static const char *const valued[] = { "-r", "--require", "-e", "--eval", "-p", "--print",
					      "--import", "--loader", "--experimental-loader",
					      "--title", "-C", "--conditions", "--inspect-port",
					      "--debug-port", "--env-file", "--input-type", NULL };
	const char *eq = memchr(w, '=', n);
	size_t name = eq ? (size_t)(eq - w) : n;

	*takes_value = 0;
	if ((name == 14 && !memcmp(w, "--inspect-port", 14)) ||
	    (name == 12 && !memcmp(w, "--debug-port", 12))) {
		if (!eq) {
			*takes_value = 2; /* the value is a host:port */
			return 0;
		}
		return host_is_loopback(eq + 1, n - name - 1) ? 0 : NODE_OPT_PORT_PUBLIC;
	}
	if ((name == 9 && !memcmp(w, "--inspect", 9)) ||
	    (name == 13 && !memcmp(w, "--inspect-brk", 13)) ||
	    (name == 14 && !memcmp(w, "--inspect-wait", 14)) ||
	    (name == 7 && !memcmp(w, "--debug", 7)) || (name == 11 && !memcmp(w, "--debug-brk", 11)))
		return NODE_OPT_INSPECT | (eq && !host_is_loopback(eq + 1, n - name - 1)
						   ? NODE_OPT_PORT_PUBLIC : 0);
	if (name == 17 && !memcmp(w, "--disable-sigusr1", 17))
		return NODE_OPT_NO_SIGUSR1;
	if (!eq) {
		for (int i = 0; valued[i]; i++)
			if (strlen(valued[i]) == n && !memcmp(w, valued[i], n))
				*takes_value = 1;
	}
	return 0;
}

/* A value word of --inspect-port given apart. */
static uint32_t port_value(const char *w, size_t n)
{
	return host_is_loopback(w, n) ? 0 : NODE_OPT_PORT_PUBLIC;
}

static uint32_t scan_cmdline(const char *p, size_t len)
{
	uint32_t f = 0;
	size_t i = 0, words = 0;
	int value = 0, first = 1;

	while (i < len) {
		const char *z = memchr(p + i, '\0', len - i);
		size_t n = z ? (size_t)(z - (p + i)) : len - i;
		const char *w = p + i;

		i += n + 1;
		if (++words > NODE_OPT_MAX)
			return f | NODE_OPT_BAD;
		if (first) { /* argv[0] */
			first = 0;
			continue;
		}
		if (value) {
			if (value == 2)
				f |= port_value(w, n);
			value = 0;
			continue;
		}
		if (n == 2 && !memcmp(w, "--", 2))
			break;
		if (!n || w[0] != '-')
			break; /* the script: the rest is its own */
		f |= opt_word(w, n, &value);
	}
	return f;
}

/* NODE_OPTIONS=... in a NUL-separated environment: words split on spaces
 * (Node also honours quotes; a quoted word here is read as it stands). */
static uint32_t scan_environ(const char *p, size_t len)
{
	static const char key[] = "NODE_OPTIONS=";
	uint32_t f = 0;
	size_t i = 0;

	while (i < len) {
		const char *z = memchr(p + i, '\0', len - i);
		size_t n = z ? (size_t)(z - (p + i)) : len - i;
		const char *v = p + i;

		i += n + 1;
		if (n < sizeof(key) - 1 || memcmp(v, key, sizeof(key) - 1))
			continue;
		v += sizeof(key) - 1;
		n -= sizeof(key) - 1;
		for (size_t j = 0, words = 0; j < n;) {
			size_t k = j, wl;
			int value;

			while (k < n && v[k] != ' ')
				k++;
			wl = k - j;
			if (wl && ++words > NODE_OPT_MAX)
				return f | NODE_OPT_BAD;
			if (wl) {
				f |= opt_word(v + j, wl, &value);
				if (value) { /* its value is the next word */
					size_t a = k + 1, b;

					while (a < n && v[a] == ' ')
						a++;
					b = a;
					while (b < n && v[b] != ' ')
						b++;
					if (value == 2)
						f |= port_value(v + a, b - a);
					k = b;
				}
			}
			j = k + 1;
		}
	}
	return f;
}

uint32_t node_opts_scan(const char *cmdline, size_t clen, const char *environ, size_t elen)
{
	uint32_t f = 0;

	if (cmdline)
		f |= scan_cmdline(cmdline, clen);
	if (environ)
		f |= scan_environ(environ, elen);
	return f;
}

/* --- /proc/PID/maps ------------------------------------------------------------------- */

int node_maps_line(const char *l, size_t len, struct node_map *m)
{
	uint64_t dummy;
	size_t i = 0, n;

	memset(m, 0, sizeof(*m));
	m->path = "";
	if (!(n = hex_u64(l, len, 16, &m->lo)) || (i = n) >= len || l[i++] != '-')
		return -1;
	if (!(n = hex_u64(l + i, len - i, 16, &m->hi)) || m->hi < m->lo)
		return -1;
	i = skip_sp(l, len, i + n);
	if (len - i < 4)
		return -1;
	memcpy(m->perms, l + i, 4);
	i = skip_sp(l, len, i + 4);
	if (!(n = hex_u64(l + i, len - i, 16, &m->off)))
		return -1;
	i = skip_sp(l, len, i + n);
	/* dev: maj:min */
	if (!(n = hex_u64(l + i, len - i, 8, &dummy)) || i + n >= len || l[i + n] != ':')
		return -1;
	i += n + 1;
	if (!(n = hex_u64(l + i, len - i, 8, &dummy)))
		return -1;
	i = skip_sp(l, len, i + n);
	if (!(n = dec_u64(l + i, len - i, &m->inode)))
		return -1;
	i = skip_sp(l, len, i + n);
	m->path = l + i;
	m->path_len = len - i;
	return 0;
}

/* --- /proc/net/tcp(6) ------------------------------------------------------------------ */

int node_net_line(const char *l, size_t len, struct node_sock *s)
{
	uint64_t v, dummy;
	size_t i = skip_sp(l, len, 0), n, words;

	memset(s, 0, sizeof(*s));
	/* "sl:" */
	if (!(n = dec_u64(l + i, len - i, &dummy)) || i + n >= len || l[i + n] != ':')
		return -1;
	i = skip_sp(l, len, i + n + 1);
	/* local address: 8 or 32 hex digits, ':', port */
	for (n = 0; i + n < len && isxdigit((unsigned char)l[i + n]); n++)
		;
	if (n != 8 && n != 32)
		return -1;
	s->v6 = n == 32;
	words = n / 8;
	for (size_t w = 0; w < words; w++) {
		uint32_t word;

		hex_u64(l + i + 8 * w, 8, 8, &v);
		word = (uint32_t)v;
		/* the kernel prints each 32-bit word of the address as a host
		 * integer: its bytes in memory are the network bytes */
		memcpy(s->addr + 4 * w, &word, 4);
	}
	i += n;
	if (i >= len || l[i++] != ':' || !(n = hex_u64(l + i, len - i, 4, &v)))
		return -1;
	s->port = (uint16_t)v;
	i = skip_sp(l, len, i + n);
	/* remote address:port (skipped) */
	while (i < len && l[i] != ' ')
		i++;
	i = skip_sp(l, len, i);
	if (!(n = hex_u64(l + i, len - i, 2, &v)))
		return -1;
	s->state = (uint8_t)v;
	i += n;
	/* tx:rx tr:when retrnsmt uid timeout inode */
	for (int f = 0; f < 5; f++) {
		i = skip_sp(l, len, i);
		if (i >= len)
			return -1;
		while (i < len && l[i] != ' ')
			i++;
	}
	i = skip_sp(l, len, i);
	if (!dec_u64(l + i, len - i, &s->inode))
		return -1;
	return 0;
}

int node_sock_local(const struct node_sock *s)
{
	static const uint8_t any[16], v6_loop[16] = { [15] = 1 };
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (!s->v6)
		return s->addr[0] == 127 || !memcmp(s->addr, any, 4);
	if (!memcmp(s->addr, any, 16) || !memcmp(s->addr, v6_loop, 16))
		return 1;
	return !memcmp(s->addr, v4mapped, 12) && s->addr[12] == 127;
}

/* --- real files ---------------------------------------------------------------------------- */

char *node_read_file(const char *path, size_t cap, size_t *len)
{
	size_t n = 0, sz = 4096;
	char *buf = malloc(sz + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || !buf)
		goto fail;
	for (;;) {
		ssize_t r;

		if (n == sz) {
			char *nb;

			if (sz >= cap)
				break;
			sz = sz * 2 > cap ? cap : sz * 2;
			nb = realloc(buf, sz + 1);
			if (!nb)
				goto fail;
			buf = nb;
		}
		r = read(fd, buf + n, sz - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	*len = n;
	return buf;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

/* Socket inodes among pid's fds, up to max. */
static int fd_inodes(uint32_t pid, uint64_t *out, int max)
{
	char path[64], link[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%u/fd", pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir)) && n < max) {
		char fp[320];
		ssize_t l;
		unsigned long long ino;

		if (d->d_name[0] == '.')
			continue;
		snprintf(fp, sizeof(fp), "%s/%s", path, d->d_name);
		l = readlink(fp, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = 0;
		if (sscanf(link, "socket:[%llu]", &ino) == 1)
			out[n++] = ino;
	}
	closedir(dir);
	return n;
}

int node_listeners(uint32_t pid, struct node_sock *out, int max)
{
	static const char *const files[] = { "tcp", "tcp6" };
	enum { MAX_FDS = 65536 };
	uint64_t *inodes = malloc(MAX_FDS * sizeof(*inodes));
	int ninodes, n = 0;

	if (!inodes)
		return -1;
	ninodes = fd_inodes(pid, inodes, MAX_FDS);
	if (ninodes < 0) {
		free(inodes);
		return -1;
	}
	for (int f = 0; f < 2 && ninodes > 0; f++) {
		char path[64], *text;
		size_t len, i = 0;

		snprintf(path, sizeof(path), "/proc/%u/net/%s", pid, files[f]);
		text = node_read_file(path, 64u << 20, &len);
		if (!text)
			continue;
		while (i < len && n < max) {
			const char *e = memchr(text + i, '\n', len - i);
			size_t ll = e ? (size_t)(e - (text + i)) : len - i;
			struct node_sock s;

			if (!node_net_line(text + i, ll, &s) && s.state == 0x0A && s.inode) {
				for (int k = 0; k < ninodes; k++) {
					if (inodes[k] == s.inode) {
						out[n++] = s;
						break;
					}
				}
			}
			i += ll + 1;
		}
		free(text);
	}
	free(inodes);
	return n;
}

static int maps_walk(uint32_t pid, uint64_t inode, const char *name_part, uint64_t *start,
		     char *path, size_t cap)
{
	char fn[64], *text;
	size_t len, i = 0;
	int rc = -1;

	snprintf(fn, sizeof(fn), "/proc/%u/maps", pid);
	text = node_read_file(fn, 64u << 20, &len);
	if (!text)
		return -1;
	while (i < len) {
		const char *e = memchr(text + i, '\n', len - i);
		size_t ll = e ? (size_t)(e - (text + i)) : len - i;
		struct node_map m;

		if (!node_maps_line(text + i, ll, &m) && m.off == 0 && m.path_len && m.path[0] == '/') {
			int hit = inode ? m.inode == inode : 0;

			if (!hit && name_part) {
				const char *base = m.path + m.path_len;

				while (base > m.path && base[-1] != '/')
					base--;
				hit = (size_t)(m.path + m.path_len - base) > strlen(name_part) &&
				      !memcmp(base, name_part, strlen(name_part));
			}
			if (hit) {
				if (start)
					*start = m.lo;
				if (path && cap) {
					size_t k = m.path_len < cap - 1 ? m.path_len : cap - 1;

					memcpy(path, m.path, k);
					path[k] = 0;
				}
				rc = 0;
				break;
			}
		}
		i += ll + 1;
	}
	free(text);
	return rc;
}

int node_map_start(uint32_t pid, uint64_t inode, uint64_t *start, char *path, size_t path_cap)
{
	return maps_walk(pid, inode, NULL, start, path, path_cap);
}

int node_find_mapped(uint32_t pid, const char *prefix, char *path, size_t cap)
{
	return maps_walk(pid, 0, prefix, NULL, path, cap);
}

int node_find_libnode(uint32_t pid, char *path, size_t cap)
{
	return node_find_mapped(pid, "libnode.so", path, cap);
}
