/*
 * record.h - the recording file of `sonde --record FILE` / `--replay FILE`.
 *
 * The one idea: a recording is the ring buffer itself, written to disk. The
 * kernel's records (bpf/sonde_events.h) are stored as they arrived, each
 * behind a 4-byte length, after a header that carries the clock offset; a
 * META_PROC record per watched process carries what /proc said about it.
 * Reading gives the same records back to a callback, so a replay goes
 * through exactly the code a live capture does. This file only knows the
 * format; what a record means is the pipeline's business.
 *
 * File layout (little endian, the host's):
 *   "SONDEREC" | u32 version | u32 header size | i64 mono_to_real | ...
 *   then repeated: u32 len | len bytes (a record, starting with sonde_ev_hdr)
 */
#ifndef SONDE_PIPELINE_RECORD_H
#define SONDE_PIPELINE_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sonde_events.h"

#define RECORD_MAGIC "SONDEREC"
#define RECORD_VERSION 2 /* 2: DATA records carry ctx; version 1 files still read */

/* Meta record written once per process into recordings (type >= 100 never
 * comes from the kernel). */
#define SONDE_EV_META_PROC 100
struct sonde_ev_meta_proc {
	struct sonde_ev_hdr h;
	char service[64];
	char exe_name[64];
	uint16_t listen_ports[32];
	uint32_t n_listen;
	uint32_t pad;
};

struct record_writer;

/* NULL with a message in err. */
struct record_writer *record_create(const char *path, int64_t mono_to_real, char *err,
                                    size_t errlen);
/* Append one record. On a write error the recording stops (said once on
 * stderr) and later calls do nothing. */
void record_write(struct record_writer *w, const void *rec, size_t len);
void record_close(struct record_writer *w);

/* Read a recording: *mono_to_real from its header, then cb for every
 * record in order (META_PROC included). 0, or -1 with a message in err
 * (bad magic, version, length, truncation). */
int record_read(const char *path, int64_t *mono_to_real,
                void (*cb)(void *ctx, const void *rec, size_t len), void *ctx, char *err,
                size_t errlen);

#endif
