/*
 * record.c - see record.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/record.h"

struct record_header {
	char magic[8];
	uint32_t version;
	uint32_t size;
	int64_t mono_to_real;
};

struct record_writer {
	FILE *f;
};

#define RECORD_MAX_LEN (sizeof(struct sonde_ev_data) + SONDE_MAX_PAYLOAD + 64)
#define RECORD_SLICE (1u << 20)

/* A version-1 DATA record has no ctx field: shift its payload up and zero
 * ctx, so readers only ever see the current layout. */
static size_t upgrade_v1(uint8_t *buf, size_t len)
{
	struct sonde_ev_hdr *h = (void *)buf;
	size_t grow = sizeof(struct sonde_ev_data) - SONDE_EV_DATA_V1_SIZE;

	if (h->type != SONDE_EV_DATA || len < SONDE_EV_DATA_V1_SIZE)
		return len;
	memmove(buf + sizeof(struct sonde_ev_data), buf + SONDE_EV_DATA_V1_SIZE,
	        len - SONDE_EV_DATA_V1_SIZE);
	memset(buf + SONDE_EV_DATA_V1_SIZE, 0, grow);
	return len + grow;
}

struct record_writer *record_create(const char *path, int64_t mono_to_real, char *err,
                                    size_t errlen)
{
	struct record_writer *w = calloc(1, sizeof(*w));
	struct record_header h;

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->f = fopen(path, "we");
	if (!w->f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(w);
		return NULL;
	}
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, RECORD_MAGIC, 8);
	h.version = RECORD_VERSION;
	h.size = sizeof(h);
	h.mono_to_real = mono_to_real;
	if (fwrite(&h, sizeof(h), 1, w->f) != 1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		fclose(w->f);
		free(w);
		return NULL;
	}
	return w;
}

void record_write(struct record_writer *w, const void *rec, size_t len)
{
	uint32_t l = (uint32_t)len;

	if (!w || !w->f)
		return;
	if (fwrite(&l, sizeof(l), 1, w->f) != 1 || fwrite(rec, len, 1, w->f) != 1) {
		fprintf(stderr, "sonde: recording stopped: %s\n", strerror(errno));
		fclose(w->f);
		w->f = NULL;
	}
}

void record_close(struct record_writer *w)
{
	if (!w)
		return;
	if (w->f)
		fclose(w->f);
	free(w);
}

int record_read(const char *path, int64_t *mono_to_real,
                void (*cb)(void *ctx, const void *rec, size_t len), void *ctx, char *err,
                size_t errlen)
{
	FILE *f = fopen(path, "re");
	struct record_header h;
	uint8_t *buf = NULL;
	char *slice = NULL;
	uint32_t len;
	long n = 0;
	int ret = -1;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* Records are a few hundred bytes: read the file in large slices, not
	 * stdio's default page per read(2) (glibc ignores the size without a
	 * buffer of ours), and without stdio's lock per record (one thread). */
	if ((slice = malloc(RECORD_SLICE)))
		setvbuf(f, slice, _IOFBF, RECORD_SLICE);
	if (fread(&h, sizeof(h), 1, f) != 1 || memcmp(h.magic, RECORD_MAGIC, 8)) {
		snprintf(err, errlen, "%s: not a sonde recording (bad magic)", path);
		goto out;
	}
	if (h.version < 1 || h.version > RECORD_VERSION || h.size < sizeof(h)) {
		snprintf(err, errlen, "%s: recording version %u, this sonde reads %u", path,
		         h.version, RECORD_VERSION);
		goto out;
	}
	if (h.size > sizeof(h) && fseek(f, h.size, SEEK_SET)) {
		snprintf(err, errlen, "%s: truncated header", path);
		goto out;
	}
	*mono_to_real = h.mono_to_real;
	buf = malloc(RECORD_MAX_LEN);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (fread_unlocked(&len, sizeof(len), 1, f) == 1) {
		n++;
		if (len < sizeof(struct sonde_ev_hdr) || len > RECORD_MAX_LEN) {
			snprintf(err, errlen, "%s: record %ld has a bad length %u", path, n, len);
			goto out;
		}
		if (fread_unlocked(buf, len, 1, f) != 1) {
			snprintf(err, errlen, "%s: record %ld is truncated", path, n);
			goto out;
		}
		cb(ctx, buf, h.version == 1 ? upgrade_v1(buf, len) : len);
	}
	ret = 0;
out:
	free(buf);
	fclose(f);
	free(slice);
	return ret;
}
