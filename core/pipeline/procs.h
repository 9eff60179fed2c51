/*
 * procs.h - the process table: which processes are watched, as which
 * service, and what each one is (its resource).
 *
 * The one idea: a process is chosen by a service's selectors (open port,
 * executable regex, pid) at start-up from a /proc scan, or later from kernel
 * events (exec, listen, fork). The table tells whoever listens (the
 * pipeline) that a process came, changed or went, through an observer; it
 * never reaches into connections itself.
 */
#ifndef SONDE_PIPELINE_PROCS_H
#define SONDE_PIPELINE_PROCS_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sonde_events.h"

struct capture;
struct config;
struct metric_hist;
struct resource;
struct service_cfg;

/* A service as configured (or the implicit one from command-line flags). */
struct service {
	const struct service_cfg *cfg;
	regex_t exe_re;
	bool has_re;
};

#define PROC_MAX_LISTEN 32

struct proc {
	uint32_t tgid;
	struct service *svc;
	struct resource *res;
	char exe_name[64];
	char *exe_path;
	uint16_t listen_ports[PROC_MAX_LISTEN];
	unsigned n_listen;
	bool existed;        /* found running (scan, listen), not seen starting */
	uint64_t dropped_seen; /* kernel drops already added to the drop metric */
	uint64_t dropped_bytes_seen; /* ... and their bytes */
	unsigned gone_at_sweep; /* the sweep that first found it gone (0: none) */
};

/* Told about every change, on the pipeline's thread. on_gone runs before
 * the process is freed. Any member may be NULL. */
struct procs_observer {
	void (*on_new)(void *ctx, struct proc *p);
	void (*on_renew)(void *ctx, struct proc *p);
	void (*on_gone)(void *ctx, struct proc *p);
	void *ctx;
};

struct procs_opts {
	const struct config *cfg;   /* services, service.name and resource settings */
	struct capture *cap;        /* the kernel filter; NULL when replaying */
	bool replay;                /* no /proc: processes are what records say */
	struct procs_observer obs;
};

struct procs;

/* Compiles the selectors. NULL with a message in err on a bad regex. */
struct procs *procs_new(const struct procs_opts *o, char *err, size_t errlen);
/* Forgets every process (observer told). NULL is a no-op. */
void procs_free(struct procs *ps);

/* The kernel filter to keep in step; NULL before the capture closes. */
void procs_set_capture(struct procs *ps, struct capture *cap);

size_t procs_count(const struct procs *ps);
size_t procs_n_services(const struct procs *ps);
struct service *procs_service(struct procs *ps, size_t i);
/* True when some service selects by executable path. */
bool procs_have_exe_selector(const struct procs *ps);

/* The per-service sum the kernel's drops for each process are added to
 * (sonde.events.dropped); NULL: not counted. */
/* Records the kernel dropped per service, and their bytes (either NULL). */
void procs_set_drop_metric(struct procs *ps, struct metric_hist *dropped,
                           struct metric_hist *dropped_bytes);
/* Adds what the kernel dropped since the last call, for every process; a
 * process that goes is accounted for one last time before it is forgotten. */
void procs_account_drops(struct procs *ps);

/* A full /proc scan for processes the selectors choose. */
void procs_scan(struct procs *ps);
/* Forget processes that no longer exist (their EXIT record was lost). A
 * process is forgotten at the second sweep that finds it gone, not the
 * first: a short-lived one (a curl) may have exited while its records,
 * EXIT included, still wait in the ring behind a burst. */
void procs_sweep(struct procs *ps);
/* Every watched process (do not watch or forget from fn). */
void procs_foreach(struct procs *ps, void (*fn)(void *ctx, struct proc *p), void *ctx);
/* Kernel events. */
void procs_on_exec(struct procs *ps, const struct sonde_ev_exec *ev);
void procs_on_fork(struct procs *ps, const struct sonde_ev_proc *ev);
void procs_on_exit(struct procs *ps, const struct sonde_ev_proc *ev);
void procs_on_listen(struct procs *ps, const struct sonde_ev_conn *ev);

struct proc *procs_find(const struct procs *ps, uint32_t tgid);
/* The process, made when needed: in a replay a placeholder; live, a child
 * the kernel adopted whose FORK record was lost. NULL: not watched. */
struct proc *procs_get(struct procs *ps, uint32_t tgid);
struct proc *procs_watch(struct procs *ps, uint32_t tgid, struct service *svc);
void procs_forget(struct procs *ps, uint32_t tgid);
/* A recorded process (replay): created with the recorded identity. */
struct proc *procs_restore(struct procs *ps, uint32_t tgid, const char *service,
                           const char *exe_name, const uint16_t *ports, unsigned n_ports);

#endif
