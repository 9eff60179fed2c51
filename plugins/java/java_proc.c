/*
 * java_proc.c - reads /proc for the Java plugin (java_proc.h).
 *
 * The one idea: every path goes through /proc/PID (root, cwd, maps ...),
 * so a JVM in another mount or pid namespace is read as it sees itself.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "java_proc.h"

#define PERF_MAX (1u << 20)
#define LIST_MAX (256u << 10)

/* The last number of a "Key:\tn\tn..." line. */
static int last_number(const char *s, uint32_t *out)
{
	const char *end = s + strcspn(s, "\n");
	int found = 0;

	while (s < end) {
		char *e;
		unsigned long v;

		s += strspn(s, " \t");
		if (s >= end)
			break;
		v = strtoul(s, &e, 10);
		if (e == s)
			return found ? 0 : -1;
		*out = (uint32_t)v;
		found = 1;
		s = e;
	}
	return found ? 0 : -1;
}

/* The n-th (0-based) number of such a line. */
static int nth_number(const char *s, int n, uint32_t *out)
{
	for (int i = 0; i <= n; i++) {
		char *e;
		unsigned long v;

		s += strspn(s, " \t");
		v = strtoul(s, &e, 10);
		if (e == s)
			return -1;
		if (i == n)
			*out = (uint32_t)v;
		s = e;
	}
	return 0;
}

int java_proc_parse_status(const char *text, struct java_proc *p)
{
	int have = 0;

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (!strncmp(l, "NSpid:", 6))
			have |= last_number(l + 6, &p->nspid) ? 0 : 1;
		else if (!strncmp(l, "Uid:", 4))
			have |= nth_number(l + 4, 1, &p->uid) ? 0 : 2;
		else if (!strncmp(l, "Gid:", 4))
			have |= nth_number(l + 4, 1, &p->gid) ? 0 : 4;
		else if (!strncmp(l, "SigCgt:", 7))
			have |= sscanf(l + 7, "%" SCNx64, &p->sigcgt) == 1 ? 8 : 0;
	}
	return have == 15 ? 0 : -1;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

void java_proc_parse_maps_line(const char *line, struct java_proc *p)
{
	const char *path = strchr(line, '/');
	char buf[PATH_MAX];
	const char *base;
	size_t n;

	if (!path)
		return;
	n = strcspn(path, "\n");
	if (n >= sizeof(buf))
		return;
	memcpy(buf, path, n);
	buf[n] = 0;
	if (ends_with(buf, " (deleted)"))
		return;
	base = strrchr(buf, '/') + 1;
	if (!strcmp(base, "libjvm.so"))
		p->jvm = 1;
	else if (!strcmp(base, "libjli.so"))
		p->launcher = 1;
	else if (!strncmp(base, "libj9vm", 7))
		p->openj9 = 1;
	else if (!p->libc[0] && (!strcmp(base, "libc.so.6") || !strncmp(base, "libc-2.", 7) ||
				 !strncmp(base, "ld-musl-", 8)))
		snprintf(p->libc, sizeof(p->libc), "%s", buf);
}

/* Read a whole (small) file into a new NUL-terminated buffer. */
static char *slurp(const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf;
	size_t got = 0;

	if (fd < 0)
		return NULL;
	buf = malloc(max + 1);
	while (buf && got < max) {
		ssize_t n = read(fd, buf + got, max - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (buf)
		buf[got] = 0;
	if (len)
		*len = got;
	return buf;
}

static const char no_attach_flag[] = "-XX:+DisableAttachMechanism";

static int has_option(const char *s, size_t n)
{
	return memmem(s, n, no_attach_flag, sizeof(no_attach_flag) - 1) != NULL;
}

int java_proc_no_attach(const char *buf, size_t n, int environ)
{
	static const char *const vars[] = {"JAVA_TOOL_OPTIONS=", "JDK_JAVA_OPTIONS=", "_JAVA_OPTIONS="};
	size_t i = 0;

	while (buf && i < n) {
		const char *s = buf + i;
		size_t len = strnlen(s, n - i);

		if (!environ) {
			if (len == sizeof(no_attach_flag) - 1 && has_option(s, len))
				return 1;
		} else {
			for (size_t v = 0; v < sizeof(vars) / sizeof(vars[0]); v++) {
				size_t pl = strlen(vars[v]);

				if (len >= pl && !memcmp(s, vars[v], pl) && has_option(s, len))
					return 1;
			}
		}
		i += len + 1;
	}
	return 0;
}

static void read_maps(uint32_t pid, struct java_proc *p)
{
	char path[64], line[PATH_MAX + 128];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%u/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		java_proc_parse_maps_line(line, p);
	fclose(f);
}

/* /proc/PID/root/tmp/hsperfdata_<user>/<nspid>, owned by the JVM's uid. */
static void read_perf(uint32_t pid, struct java_proc *p)
{
	char dir[64], path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%u/root/tmp", pid);
	d = opendir(dir);
	if (!d)
		return;
	while (!p->perf_found && (de = readdir(d))) {
		struct stat sb;
		uint8_t *buf;
		size_t n;

		if (strncmp(de->d_name, "hsperfdata_", 11))
			continue;
		snprintf(path, sizeof(path), "%s/%s/%u", dir, de->d_name, p->nspid);
		if (lstat(path, &sb) || !S_ISREG(sb.st_mode) || sb.st_uid != p->uid)
			continue;
		buf = (uint8_t *)slurp(path, PERF_MAX, &n);
		if (buf && !java_perf_parse(buf, n, &p->perf))
			p->perf_found = 1;
		free(buf);
	}
	closedir(d);
}

int java_proc_read(uint32_t pid, struct java_proc *p)
{
	char path[64], exe[PATH_MAX];
	char *txt;
	size_t n;
	ssize_t k;

	memset(p, 0, sizeof(*p));
	snprintf(path, sizeof(path), "/proc/%u/status", pid);
	txt = slurp(path, 16384, NULL);
	if (!txt)
		return -1;
	if (java_proc_parse_status(txt, p)) {
		free(txt);
		return -1;
	}
	free(txt);
	read_maps(pid, p);
	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	k = readlink(path, exe, sizeof(exe) - 1);
	if (k > 0) {
		exe[k] = 0;
		if (ends_with(exe, "/java"))
			p->launcher = 1;
	}
	if (!p->jvm)
		return 0;
	read_perf(pid, p);
	snprintf(path, sizeof(path), "/proc/%u/cmdline", pid);
	txt = slurp(path, LIST_MAX, &n);
	p->flag_no_attach = txt && java_proc_no_attach(txt, n, 0);
	free(txt);
	snprintf(path, sizeof(path), "/proc/%u/environ", pid);
	txt = slurp(path, LIST_MAX, &n);
	p->flag_no_attach |= txt && java_proc_no_attach(txt, n, 1);
	free(txt);
	return 0;
}
