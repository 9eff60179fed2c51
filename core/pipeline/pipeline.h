/*
 * pipeline.h - captured records in, host connections fed.
 *
 * The one idea: pipeline_handle() is the only entry point for captured
 * data, live (from capture) or replayed (from a recording), so whatever a
 * recording shows is what the live agent does. It keeps the process table
 * (procs.h) and the connection table (conns.h) in step and tells the host
 * nothing but "this connection opened, moved these bytes, closed".
 */
#ifndef SONDE_PIPELINE_H
#define SONDE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct capture;
struct config;
struct conns;
struct host;
struct procs;

struct pipeline_opts {
	size_t struct_size;
	const struct config *cfg;
	struct host *host;
	struct capture *cap;     /* NULL: no kernel (replay, tests) */
	bool replay;             /* no /proc: processes come from records */
	int64_t mono_to_real;    /* add to kernel timestamps for unix ns */
};

struct pipeline_counters {
	uint64_t records;        /* records handled */
};

struct pipeline;

struct pipeline *pipeline_new(const struct pipeline_opts *o, char *err, size_t errlen);
/* Closes every connection (ts 0) and forgets every process. */
void pipeline_free(struct pipeline *pl);

/* One record (struct sonde_ev_hdr first), from the kernel or a file. */
int pipeline_handle(struct pipeline *pl, const void *rec, size_t len);
/* Also write every record to path. 0, or -1 with a message. */
int pipeline_record_to(struct pipeline *pl, const char *path, char *err, size_t errlen);
/* Push a recording through pipeline_handle(). 0, or -1 with a message. */
int pipeline_replay(struct pipeline *pl, const char *path, char *err, size_t errlen);
/* Finish every connection at ts (shutdown). */
void pipeline_close_all(struct pipeline *pl, uint64_t ts_unix_ns);

/* The kernel side to keep in step; NULL before the capture closes. */
void pipeline_set_capture(struct pipeline *pl, struct capture *cap);

struct procs *pipeline_procs(struct pipeline *pl);
struct conns *pipeline_conns(struct pipeline *pl);
const struct pipeline_counters *pipeline_counters(const struct pipeline *pl);

#endif
