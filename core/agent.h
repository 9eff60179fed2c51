/*
 * agent.h - the agent's own state: services, watched processes,
 * connections, the span builder, and the pipeline that ties them together.
 *
 * Data flows one way: capture records -> agent_handle_record() -> process
 * and connection tables -> dispatch to the owning protocol plugin -> spans
 * built through the host API -> sinks (printer, OTLP) and metrics. All of it
 * runs on one thread (the capture thread); only the metric registry and the
 * OTLP queue are shared with other threads, and they lock for themselves.
 */
#ifndef SONDE_AGENT_H
#define SONDE_AGENT_H

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <sonde/plugin.h>

#include "config.h"
#include "hmap.h"
#include "plugin.h"
#include "sonde_events.h"
#include "span.h"

struct metrics;
struct capture;

/* A service as configured (or the implicit one from command-line flags). */
struct service {
	const struct service_cfg *cfg;
	regex_t exe_re;
	bool has_re;
};

struct proc {
	uint32_t tgid;
	struct service *svc;
	struct resource *res;
	char exe_name[64];
	char *exe_path;
	uint16_t listen_ports[32];
	unsigned n_listen;
};

/* Chunks held while a connection's protocol is not decided yet. */
struct held_chunk {
	struct held_chunk *next;
	struct sonde_chunk c;
	uint8_t data[];
};

enum conn_state { CONN_DETECTING = 0, CONN_OWNED, CONN_IGNORED };

/* The host's record of one connection; plugins see it as an opaque
 * struct sonde_conn. */
struct sonde_conn {
	uint64_t gen;
	uint32_t tgid;
	uint32_t fd;
	struct proc *proc;
	struct sonde_conn_info info;
	enum conn_state state;
	const struct proto_entry *owner;
	void *owner_state;
	uint64_t next_pos[2][2];   /* [source][dir]: expected byte position */
	bool pos_known[2][2];
	bool tls;                  /* plaintext arrives from TLS uprobes */
	struct held_chunk *held, **held_tail;
	size_t held_bytes;
	unsigned detect_tries;
	unsigned open_spans;
	struct sonde_span *spans;  /* open spans (host.c's list) */
	unsigned plugin_gen;       /* registry generation at last detection */
};

struct agent_counters {
	uint64_t records, spans, conns_opened, conns_owned, conns_ignored;
	uint64_t gaps, proto_errors, spans_dropped, unknown_conn_data;
};

struct agent {
	struct config *cfg;
	struct plugin_registry plugins;
	struct sonde_host_api host;
	struct capture *cap;          /* NULL when replaying */
	struct metrics *metrics;
	struct span_sink *sinks[4];
	size_t n_sinks;

	struct service *services;
	size_t n_services;
	struct service_cfg cli_service; /* from --open-port/--exe-path/--pid */
	bool have_cli_service;

	struct hmap procs;   /* tgid -> struct proc */
	struct hmap conns;   /* gen -> struct sonde_conn */
	struct hmap active;  /* tid -> struct sonde_span (server span being served) */

	int64_t mono_to_real; /* add to bpf_ktime_get_ns() to get unix ns */
	char hostname[256];
	FILE *record;         /* --record */
	bool replay;

	uint32_t cur_tid;     /* thread of the chunk being dispatched */
	struct agent_counters n;
	int verbose;
};

/* agent.c */
int agent_init(struct agent *a, struct config *cfg);
void agent_fini(struct agent *a);
int agent_handle_record(struct agent *a, const void *rec, size_t len);
void agent_add_sink(struct agent *a, struct span_sink *s);
void agent_publish_self_metrics(struct agent *a);
void agent_close_all(struct agent *a, uint64_t ts_unix_ns);

/* host.c: the SDK host table and the span builder */
void host_api_init(struct agent *a, struct sonde_host_api *api);
void host_api_fini(void);
/* Drop the spans a plugin left open on a closed connection. */
void host_drop_conn_spans(struct sonde_conn *conn);
const char *sonde_strerror(int err);
/* Parse a W3C traceparent; 0 on success. Exposed for tests. */
int traceparent_parse(const char *s, size_t len, uint8_t trace_id[16], uint8_t span_id[8],
                      uint8_t *flags);

/* conn.c */
struct sonde_conn *conn_open(struct agent *a, const struct sonde_ev_conn *ev);
void conn_close(struct agent *a, struct sonde_conn *c, uint64_t ts_unix_ns);
void conn_data(struct agent *a, struct sonde_conn *c, const struct sonde_ev_data *ev,
               uint64_t ts_unix_ns);
bool service_enables(const struct service *svc, const char *proto);

/* discovery.c */
int discovery_init(struct agent *a);
void discovery_scan(struct agent *a);            /* full /proc scan */
void discovery_on_exec(struct agent *a, const struct sonde_ev_exec *ev);
void discovery_on_fork(struct agent *a, const struct sonde_ev_proc *ev);
void discovery_on_exit(struct agent *a, const struct sonde_ev_proc *ev);
void discovery_on_listen(struct agent *a, const struct sonde_ev_conn *ev);
struct proc *proc_watch(struct agent *a, uint32_t tgid, struct service *svc);
void proc_forget(struct agent *a, uint32_t tgid);
struct proc *proc_get(struct agent *a, uint32_t tgid); /* may create from /proc */

/* record.c: --record / --replay file format */
#define RECORD_MAGIC "SONDEREC"
#define RECORD_VERSION 1
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
int record_open(struct agent *a, const char *path, char *err, size_t errlen);
void record_write(struct agent *a, const void *rec, size_t len);
void record_proc(struct agent *a, const struct proc *p);
int replay_run(struct agent *a, const char *path, char *err, size_t errlen);

#endif
