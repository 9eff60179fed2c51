/*
 * pipeline.c - see pipeline.h: one kernel record in, tables updated, bytes
 * on their way to the host.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include <sonde/plugin.h>

#include "capture/capture.h"
#include "host/host.h"
#include "pipeline/conns.h"
#include "pipeline/pipeline.h"
#include "pipeline/procs.h"
#include "pipeline/record.h"
#include "telemetry/span.h"

struct pipeline {
	struct pipeline_opts o;
	struct procs *procs;
	struct conns *conns;
	struct record_writer *rec;
	struct pipeline_counters n;
	uint64_t next_timer;       /* replay: when the host's next timer is due */
	uint64_t cur_ts;           /* wall time of the record being handled, 0 */
	uint64_t replay_n;         /* records replayed (metrics batches) */
};

/* --- the process table tells us ---------------------------------------------- */

static void write_meta(struct pipeline *pl, const struct proc *p)
{
	struct sonde_ev_meta_proc m;

	if (!pl->rec)
		return;
	memset(&m, 0, sizeof(m));
	m.h.type = SONDE_EV_META_PROC;
	m.h.tgid = p->tgid;
	snprintf(m.service, sizeof(m.service), "%s", p->res ? p->res->service_name : "");
	snprintf(m.exe_name, sizeof(m.exe_name), "%s", p->exe_name);
	memcpy(m.listen_ports, p->listen_ports, sizeof(m.listen_ports));
	m.n_listen = p->n_listen;
	record_write(pl->rec, &m, sizeof(m));
}

static void process_info(const struct proc *p, struct sonde_process_info *pi, uint32_t flags)
{
	memset(pi, 0, sizeof(*pi));
	pi->struct_size = sizeof(*pi);
	pi->pid = p->tgid;
	pi->exe_path = p->exe_path ? p->exe_path : "";
	pi->service_name = p->res ? p->res->service_name : p->exe_name;
	pi->flags = flags;
}

static void on_proc_new(void *ctx, struct proc *p)
{
	struct pipeline *pl = ctx;
	struct sonde_process_info pi;

	write_meta(pl, p);
	process_info(p, &pi, p->existed ? SONDE_PROC_EXISTED : 0);
	host_process_new(pl->o.host, &pi);
}

static void on_proc_renew(void *ctx, struct proc *p)
{
	struct pipeline *pl = ctx;

	conns_renew_proc(pl->conns, p);
	write_meta(pl, p);
}

static void on_proc_gone(void *ctx, struct proc *p)
{
	struct pipeline *pl = ctx;

	uint64_t ts = pl->cur_ts;

	/* A process that went between records (the housekeeping sweep) went
	 * now; its connections end then, so their open requests have a
	 * duration. */
	if (!ts && !pl->o.replay) {
		struct timespec t;

		clock_gettime(CLOCK_REALTIME, &t);
		ts = (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
	}
	/* A process whose records were lost may have answered in them. */
	uint64_t lost = 0, lost_bytes;

	if (pl->o.cap)
		capture_proc_dropped(pl->o.cap, p->tgid, &lost, &lost_bytes);
	conns_close_proc(pl->conns, p->tgid, ts, lost > 0);
	host_process_gone(pl->o.host, p->tgid);
}

/* --- lifecycle ------------------------------------------------------------------- */

struct pipeline *pipeline_new(const struct pipeline_opts *o, char *err, size_t errlen)
{
	struct pipeline *pl = calloc(1, sizeof(*pl));
	struct procs_opts po;

	if (!pl) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memcpy(&pl->o, o, o->struct_size < sizeof(pl->o) ? o->struct_size : sizeof(pl->o));
	pl->conns = conns_new(o->host, o->cap);
	if (!pl->conns) {
		snprintf(err, errlen, "out of memory");
		free(pl);
		return NULL;
	}
	memset(&po, 0, sizeof(po));
	po.cfg = o->cfg;
	po.cap = o->cap;
	po.replay = o->replay;
	po.obs.on_new = on_proc_new;
	po.obs.on_renew = on_proc_renew;
	po.obs.on_gone = on_proc_gone;
	po.obs.ctx = pl;
	pl->procs = procs_new(&po, err, errlen);
	if (!pl->procs) {
		conns_free(pl->conns);
		free(pl);
		return NULL;
	}
	return pl;
}

void pipeline_free(struct pipeline *pl)
{
	if (!pl)
		return;
	conns_close_all(pl->conns, 0);
	procs_free(pl->procs);
	conns_free(pl->conns);
	record_close(pl->rec);
	free(pl);
}

void pipeline_set_capture(struct pipeline *pl, struct capture *cap)
{
	pl->o.cap = cap;
	procs_set_capture(pl->procs, cap);
	conns_set_capture(pl->conns, cap);
}

struct procs *pipeline_procs(struct pipeline *pl)
{
	return pl->procs;
}

struct conns *pipeline_conns(struct pipeline *pl)
{
	return pl->conns;
}

const struct pipeline_counters *pipeline_counters(const struct pipeline *pl)
{
	return &pl->n;
}

void pipeline_close_all(struct pipeline *pl, uint64_t ts_unix_ns)
{
	conns_close_all(pl->conns, ts_unix_ns);
}

/* --- records ------------------------------------------------------------------------ */

/* CONN records grew (unix_path was appended): an older recording's short
 * record reads as the full one with an empty path. NULL if too short. */
static const struct sonde_ev_conn *conn_record(const void *rec, size_t len,
                                               struct sonde_ev_conn *buf)
{
	if (len >= sizeof(*buf))
		return rec;
	if (len < SONDE_EV_CONN_V1_SIZE)
		return NULL;
	memset(buf, 0, sizeof(*buf));
	memcpy(buf, rec, len);
	return buf;
}

static void on_conn_open(struct pipeline *pl, const struct sonde_ev_conn *ev)
{
	struct proc *p = procs_get(pl->procs, ev->h.tgid);

	if (p)
		conns_open(pl->conns, ev, p, ev->h.ts_ns + pl->o.mono_to_real);
}

static void on_data(struct pipeline *pl, const struct sonde_ev_data *ev, size_t len)
{
	if (len < sizeof(*ev) || ev->cap_len > len - sizeof(*ev) || ev->cap_len > ev->len)
		return;
	conns_data(pl->conns, ev, ev->h.ts_ns + pl->o.mono_to_real);
}

int pipeline_handle(struct pipeline *pl, const void *rec, size_t len)
{
	const struct sonde_ev_hdr *h = rec;
	const struct sonde_ev_conn *cev;
	struct sonde_ev_conn cbuf;
	bool live = !pl->o.replay;

	if (len < sizeof(*h))
		return 0;
	pl->n.records++;
	/* A replay runs the plugins' timers on the recording's own clock. */
	if (pl->o.replay && h->ts_ns) {
		uint64_t ts = h->ts_ns + pl->o.mono_to_real;

		if (!pl->next_timer || ts >= pl->next_timer)
			pl->next_timer = host_timers_run(pl->o.host, ts);
	}
	record_write(pl->rec, rec, len);
	pl->cur_ts = h->ts_ns ? h->ts_ns + pl->o.mono_to_real : 0;
	switch (h->type) {
	case SONDE_EV_DATA:
		on_data(pl, rec, len);
		break;
	case SONDE_EV_CONN_OPEN:
		if ((cev = conn_record(rec, len, &cbuf)))
			on_conn_open(pl, cev);
		break;
	case SONDE_EV_CONN_CLOSE:
		if ((cev = conn_record(rec, len, &cbuf)))
			conns_close(pl->conns, cev->gen, cev->h.ts_ns + pl->o.mono_to_real,
			            (const uint64_t *)cev->end_pos);
		break;
	case SONDE_EV_PROC_EXEC:
		if (len >= sizeof(struct sonde_ev_exec) && live)
			procs_on_exec(pl->procs, rec);
		break;
	case SONDE_EV_PROC_FORK:
		if (len >= sizeof(struct sonde_ev_proc) && live)
			procs_on_fork(pl->procs, rec);
		break;
	case SONDE_EV_PROC_EXIT:
		if (len >= sizeof(struct sonde_ev_proc))
			procs_on_exit(pl->procs, rec);
		break;
	case SONDE_EV_INJECT:
		if (len >= sizeof(struct sonde_ev_inject))
			conns_injected(pl->conns, rec);
		break;
	case SONDE_EV_LISTEN:
		if ((cev = conn_record(rec, len, &cbuf)) && live)
			procs_on_listen(pl->procs, cev);
		break;
	default:
		if (h->type >= SONDE_RECORD_PLUGIN_FIRST)
			host_record(pl->o.host, rec, len);
		break;
	}
	pl->cur_ts = 0;
	return 0;
}

int pipeline_record_to(struct pipeline *pl, const char *path, char *err, size_t errlen)
{
	pl->rec = record_create(path, pl->o.mono_to_real, err, errlen);
	return pl->rec ? 0 : -1;
}

/* In a replay, META_PROC brings the process back as it was recorded. */
static void replay_one(void *ctx, const void *rec, size_t len)
{
	struct pipeline *pl = ctx;
	const struct sonde_ev_hdr *h = rec;

	if (h->type != SONDE_EV_META_PROC) {
		/* Metrics are locked once per slice of records, as live. */
		if (++pl->replay_n % 256 == 1) {
			host_batch_end(pl->o.host);
			host_batch_begin(pl->o.host);
		}
		pipeline_handle(pl, rec, len);
		return;
	}
	if (len >= sizeof(struct sonde_ev_meta_proc)) {
		const struct sonde_ev_meta_proc *m = rec;
		char svc[sizeof(m->service) + 1], exe[sizeof(m->exe_name) + 1];

		memcpy(svc, m->service, sizeof(m->service));
		svc[sizeof(m->service)] = 0;
		memcpy(exe, m->exe_name, sizeof(m->exe_name));
		exe[sizeof(m->exe_name)] = 0;
		procs_restore(pl->procs, m->h.tgid, svc, exe, m->listen_ports,
		              m->n_listen < 32 ? m->n_listen : 32);
	}
}

int pipeline_replay(struct pipeline *pl, const char *path, char *err, size_t errlen)
{
	int rc = record_read(path, &pl->o.mono_to_real, replay_one, pl, err, errlen);

	host_batch_end(pl->o.host);
	return rc;
}
