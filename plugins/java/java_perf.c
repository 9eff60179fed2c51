/*
 * java_perf.c - reads a HotSpot performance data file (java_perf.h).
 *
 * The one idea: a prologue (magic 0xcafec0c0, byte order, the offset and
 * number of entries), then entries that each carry their own length, the
 * offset of their NUL-terminated name and the offset of their data. Every
 * offset is checked against the entry and the buffer before it is used;
 * a walk stops at the first entry that does not fit, keeping what it found.
 */
#include <string.h>

#include "java_perf.h"

#define PROLOGUE 32
#define ENTRY 20
#define MAX_ENTRIES 100000

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A string entry's value ('B' vector), cut at its NUL, into out. */
static void str_value(const uint8_t *d, size_t len, char *out, size_t outlen)
{
	size_t i = 0;

	for (; i < len && i + 1 < outlen && d[i]; i++)
		out[i] = (d[i] >= 0x20 && d[i] < 0x7f) ? (char)d[i] : '?';
	out[i] = 0;
}

static void entry(const uint8_t *e, size_t elen, struct java_perf *out)
{
	uint32_t name_off = rd32(e + 4), vlen = rd32(e + 8), data_off = rd32(e + 16);
	uint8_t type = e[12];
	const char *name;
	char cap[8];

	if (name_off < ENTRY || name_off >= elen || !memchr(e + name_off, 0, elen - name_off))
		return;
	name = (const char *)e + name_off;
	if (data_off < ENTRY || data_off >= elen)
		return;
	if (type == 'B' && vlen > 0 && vlen <= elen - data_off) {
		if (!strcmp(name, "sun.rt.jvmCapabilities")) {
			str_value(e + data_off, vlen, cap, sizeof(cap));
			if (cap[0] == '0' || cap[0] == '1')
				out->attachable = cap[0] == '1';
		} else if (!strcmp(name, "java.property.java.version")) {
			str_value(e + data_off, vlen, out->version, sizeof(out->version));
		} else if (!strcmp(name, "java.property.java.vm.name")) {
			str_value(e + data_off, vlen, out->vm_name, sizeof(out->vm_name));
		}
	} else if (type == 'J' && vlen == 0 && 8 <= elen - data_off &&
		   !strcmp(name, "sun.rt.createVmEndTime")) {
		out->started = rd32(e + data_off) || rd32(e + data_off + 4);
	}
}

int java_perf_parse(const uint8_t *buf, size_t n, struct java_perf *out)
{
	uint32_t off, count;

	memset(out, 0, sizeof(*out));
	out->attachable = out->started = -1;
	if (!buf || n < PROLOGUE)
		return -1;
	if (buf[0] != 0xca || buf[1] != 0xfe || buf[2] != 0xc0 || buf[3] != 0xc0)
		return -1;
	if (buf[4] != 1) /* byte order: only little-endian files are read */
		return -1;
	off = rd32(buf + 24);
	count = rd32(buf + 28);
	if (count > MAX_ENTRIES)
		count = MAX_ENTRIES;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t elen;

		if (off < PROLOGUE || off > n || n - off < ENTRY)
			break;
		elen = rd32(buf + off);
		if (elen < ENTRY || elen > n - off)
			break;
		entry(buf + off, elen, out);
		off += elen;
	}
	return 0;
}
