/*
 * conns.c - see conns.h.
 *
 * An entry is keyed by gen alone: the kernel gives every connection
 * generation a unique number, so a reused fd never aliases its predecessor.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/hmap.h"
#include "capture/capture.h"
#include "host/host.h"
#include "pipeline/conns.h"
#include "pipeline/procs.h"
#include "telemetry/span.h"

/* The pipeline's view of one connection. */
struct flow {
	uint64_t gen;
	uint32_t tgid;
	uint32_t fd;
	struct sonde_conn *hc;     /* the host's connection */
	uint64_t next_pos[2][2];   /* [source][dir]: expected byte position */
	bool pos_known[2][2];
	bool tls;                  /* plaintext arrives from TLS uprobes */
	bool seen_data;            /* a chunk went to the host already */
	uint32_t ctl;              /* SONDE_CTL_* flags written to the kernel */
	uint32_t cap;              /* the owner's payload cap (0: global) */
	uint64_t skip[2];          /* the owner's skip positions */
	uint64_t ports_key;        /* its key in by_ports (TCP), 0 */
};

struct conns {
	struct host *host;
	struct capture *cap;       /* the kernel's control words; NULL in replays */
	struct hmap flows;         /* gen -> struct flow */
	struct hmap by_fd;         /* tgid << 32 | fd -> struct flow (the current one) */
	struct hmap by_ports;      /* tgid << 32 | lport << 16 | rport -> struct flow */
	struct conns_counters n;
};

struct conns *conns_new(struct host *h, struct capture *cap)
{
	struct conns *cs = calloc(1, sizeof(*cs));

	if (!cs)
		return NULL;
	cs->host = h;
	cs->cap = cap;
	hmap_init(&cs->flows);
	hmap_init(&cs->by_fd);
	hmap_init(&cs->by_ports);
	return cs;
}

void conns_set_capture(struct conns *cs, struct capture *cap)
{
	cs->cap = cap;
}

void conns_free(struct conns *cs)
{
	if (!cs)
		return;
	conns_close_all(cs, 0);
	hmap_free(&cs->flows);
	hmap_free(&cs->by_fd);
	hmap_free(&cs->by_ports);
	free(cs);
}

static void addr_text(uint16_t family, const uint8_t a[16], char *out, size_t n)
{
	if (family == AF_INET)
		inet_ntop(AF_INET, a + 12, out, (socklen_t)n);
	else if (family == AF_INET6)
		inet_ntop(AF_INET6, a, out, (socklen_t)n);
	else
		out[0] = 0;
}

/* Tell the kernel what this connection needs from now on (only when that
 * changes: a write is a few stores, but the kernel reads it per syscall). */
static void flow_ctl(struct conns *cs, struct flow *f, uint32_t flags)
{
	if (!cs->cap || (f->ctl | flags) == f->ctl)
		return;
	f->ctl |= flags;
	capture_conn_ctl(cs->cap, f->gen, f->ctl, f->cap, f->skip[0], f->skip[1]);
}

/* What the owning plugin asked for (SDK conn_set_capture), to the kernel. */
static void flow_policy(struct conns *cs, struct flow *f)
{
	struct sonde_capture_policy p;

	if (!host_conn_capture(f->hc, &p) || !cs->cap)
		return;
	if (p.flags & SONDE_CAPTURE_MUTE)
		f->ctl |= SONDE_CTL_MUTE;
	f->cap = p.cap;
	f->skip[0] = p.skip_to[0];
	f->skip[1] = p.skip_to[1];
	capture_conn_ctl(cs->cap, f->gen, f->ctl, f->cap, f->skip[0], f->skip[1]);
}

static enum sonde_role infer_role(const struct proc *p, uint16_t lport)
{
	for (unsigned i = 0; p && i < p->n_listen; i++)
		if (p->listen_ports[i] == lport)
			return SONDE_ROLE_SERVER;
	return SONDE_ROLE_CLIENT;
}

static uint64_t fd_key(uint32_t tgid, uint32_t fd)
{
	return (uint64_t)tgid << 32 | fd;
}

static void flow_free(struct conns *cs, struct flow *f, uint64_t ts)
{
	hmap_del(&cs->flows, f->gen);
	if (hmap_get(&cs->by_fd, fd_key(f->tgid, f->fd)) == f)
		hmap_del(&cs->by_fd, fd_key(f->tgid, f->fd));
	if (f->ports_key && hmap_get(&cs->by_ports, f->ports_key) == f)
		hmap_del(&cs->by_ports, f->ports_key);
	host_conn_close(f->hc, ts);
	free(f);
}

void conns_open(struct conns *cs, const struct sonde_ev_conn *ev, struct proc *p,
                uint64_t ts_unix_ns)
{
	struct host_conn_desc d;
	struct flow *f = hmap_get(&cs->flows, ev->gen);

	if (f)
		flow_free(cs, f, ts_unix_ns);
	memset(&d, 0, sizeof(d));
	d.info.struct_size = sizeof(d.info);
	d.info.pid = ev->h.tgid;
	d.info.conn_id = ev->gen;
	d.info.family = ev->t.family;
	d.info.local_port = ev->t.lport;
	d.info.peer_port = ev->t.rport;
	addr_text(ev->t.family, ev->t.laddr, d.info.local_addr, sizeof(d.info.local_addr));
	addr_text(ev->t.family, ev->t.raddr, d.info.peer_addr, sizeof(d.info.peer_addr));
	if (ev->t.family == AF_UNIX) {
		/* ABI 1.0 has no room for a unix path: its start is the best the
		 * address fields can carry. */
		snprintf(d.info.peer_addr, sizeof(d.info.peer_addr), "%.*s",
		         (int)sizeof(d.info.peer_addr) - 1, ev->unix_path);
		d.info.local_port = d.info.peer_port = 0;
	}
	d.info.service_name = p->res ? p->res->service_name : p->exe_name;
	d.info.exe_name = p->exe_name;
	switch (ev->role) {
	case SONDE_EV_ROLE_SERVER: d.info.role = SONDE_ROLE_SERVER; break;
	case SONDE_EV_ROLE_CLIENT: d.info.role = SONDE_ROLE_CLIENT; break;
	default:
		d.info.role = infer_role(p, ev->t.lport);
		d.info.flags |= SONDE_CONN_ROLE_INFERRED;
		break;
	}
	/* First seen at a read or write, not at accept/connect: the kernel side
	 * met it mid-life (a unix socket's role still comes from its name). */
	if (ev->role == SONDE_EV_ROLE_UNKNOWN || (ev->cflags & SONDE_EVC_MIDSTREAM))
		d.info.flags |= SONDE_CONN_MIDSTREAM;
	d.info.transport = ev->t.family == AF_UNIX ? SONDE_TRANSPORT_UNIX : SONDE_TRANSPORT_TCP;
	d.info.unix_path = ev->t.family == AF_UNIX ? ev->unix_path : "";
	d.res = p->res;
	d.svc = p->svc ? p->svc->cfg : NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return;
	f->gen = ev->gen;
	f->tgid = ev->h.tgid;
	f->fd = ev->h.fd;
	f->hc = host_conn_new(cs->host, &d);
	if (!f->hc || hmap_put(&cs->flows, f->gen, f)) {
		host_conn_close(f->hc, ts_unix_ns);
		free(f);
		return;
	}
	hmap_put(&cs->by_fd, fd_key(f->tgid, f->fd), f);
	if (ev->t.family != AF_UNIX && ev->t.lport && ev->t.rport) {
		f->ports_key = (uint64_t)f->tgid << 32 | (uint64_t)ev->t.lport << 16 | ev->t.rport;
		hmap_put(&cs->by_ports, f->ports_key, f);
	}
	cs->n.opened++;
}

void conns_injected(struct conns *cs, const struct sonde_ev_inject *ev)
{
	uint64_t k = (uint64_t)ev->h.tgid << 32 | (uint64_t)ev->lport << 16 | ev->rport;
	struct flow *f = hmap_get(&cs->by_ports, k);

	if (!f) {
		cs->n.inject_unknown++;
		return;
	}
	host_conn_injected(f->hc, ev->pos, ev->trace_id, ev->span_id,
	                   ev->has_parent ? ev->parent_id : NULL);
}

bool conns_trace_ctx(struct conns *cs, uint64_t gen, struct sonde_trace_ctx *t)
{
	struct flow *f = hmap_get(&cs->flows, gen);

	if (!f)
		return false;
	t->tgid = f->tgid;
	t->fd = f->fd;
	t->gen = f->gen;
	t->out_pos = f->pos_known[0][1] ? f->next_pos[0][1] : 0;
	return true;
}

/* Bytes the socket moved that never reached us, at the very end (its last
 * records were lost or shed): the owner hears of the hole before the close,
 * so it does not take a lost answer for no answer. */
static void end_gaps(struct conns *cs, struct flow *f, uint64_t ts, const uint64_t end_pos[2])
{
	if (f->tls || host_conn_state(f->hc) != HOST_CONN_OWNED)
		return; /* socket positions do not count its plaintext */
	for (unsigned dir = 0; dir < 2; dir++) {
		uint64_t seen = f->pos_known[0][dir] ? f->next_pos[0][dir] : 0;
		struct sonde_chunk ch;

		if (end_pos[dir] <= seen)
			continue;
		memset(&ch, 0, sizeof(ch));
		ch.struct_size = sizeof(ch);
		ch.dir = dir ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
		ch.ts_unix_ns = ts;
		ch.orig_len = end_pos[dir] - seen;
		ch.flags = SONDE_CHUNK_GAP | SONDE_CHUNK_NOBUF | SONDE_CHUNK_TRUNCATED;
		ch.pos = end_pos[dir];
		ch.source = SONDE_SRC_SOCKET;
		cs->n.gaps++;
		cs->n.end_gaps++;
		host_conn_data(f->hc, &ch);
		if (host_conn_state(f->hc) != HOST_CONN_OWNED)
			return;
	}
}

/* The connection ends without us knowing what its last bytes were (the
 * agent stops, a recording ends, a process that lost records exits): a hole
 * of unknown size in both directions, so no owner reads silence into it. */
static void unknown_tail(struct conns *cs, struct flow *f, uint64_t ts)
{
	for (unsigned dir = 0; dir < 2; dir++) {
		struct sonde_chunk ch;

		if (host_conn_state(f->hc) != HOST_CONN_OWNED)
			return;
		memset(&ch, 0, sizeof(ch));
		ch.struct_size = sizeof(ch);
		ch.dir = dir ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
		ch.ts_unix_ns = ts;
		ch.flags = SONDE_CHUNK_GAP | SONDE_CHUNK_NOBUF;
		ch.pos = f->pos_known[0][dir] ? f->next_pos[0][dir] : 0;
		ch.source = SONDE_SRC_SOCKET;
		host_conn_data(f->hc, &ch);
	}
	(void)cs;
}

void conns_close(struct conns *cs, uint64_t gen, uint64_t ts_unix_ns, const uint64_t end_pos[2])
{
	struct flow *f = hmap_get(&cs->flows, gen);

	if (!f)
		return;
	if (end_pos)
		end_gaps(cs, f, ts_unix_ns, end_pos);
	flow_free(cs, f, ts_unix_ns);
}

static int looks_like_tls(const uint8_t *d, size_t n)
{
	/* A TLS record: handshake (22) or application data (23), version 3.x */
	return n >= 3 && (d[0] == 0x16 || d[0] == 0x17 || d[0] == 0x15) && d[1] == 0x03 && d[2] <= 0x04;
}

void conns_data(struct conns *cs, const struct sonde_ev_data *ev, uint64_t ts_unix_ns)
{
	struct flow *f = hmap_get(&cs->flows, ev->gen);
	struct sonde_chunk ch;
	unsigned src = ev->source == SONDE_EV_SRC_TLS ? 1 : 0, dir = ev->dir ? 1 : 0;

	if (!f) {
		/* The kernel always sends CONN_OPEN first; a miss means the open
		 * record was lost (ring buffer full) or the process is gone. */
		cs->n.unknown_data++;
		return;
	}
	if (src) {
		if (!f->tls) {
			f->tls = true;
			host_conn_set_tls(f->hc);
		}
	} else if (f->tls || (!f->seen_data && host_conn_state(f->hc) == HOST_CONN_DETECTING &&
	                      looks_like_tls(ev->data, ev->cap_len))) {
		/* Ciphertext: the TLS uprobes deliver the plaintext (or nobody
		 * can); the kernel stops copying it. */
		f->tls = true;
		host_conn_set_tls(f->hc);
		flow_ctl(cs, f, SONDE_CTL_TLS);
		return;
	}
	if (host_conn_state(f->hc) == HOST_CONN_IGNORED) {
		flow_ctl(cs, f, SONDE_CTL_MUTE);
		return;
	}

	memset(&ch, 0, sizeof(ch));
	ch.struct_size = sizeof(ch);
	ch.dir = dir ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
	ch.ts_unix_ns = ts_unix_ns;
	ch.data = ev->data;
	ch.len = ev->cap_len;
	ch.orig_len = ev->len;
	ch.tid = ev->h.tid;
	if ((ev->flags & SONDE_EVF_TRUNCATED) || ev->cap_len < ev->len)
		ch.flags |= SONDE_CHUNK_TRUNCATED;
	if (ev->flags & SONDE_EVF_SKIPPED)
		ch.flags |= SONDE_CHUNK_SKIPPED;
	if (ev->flags & SONDE_EVF_NOBUF)
		ch.flags |= SONDE_CHUNK_NOBUF;
	ch.pos = ev->pos;
	ch.source = src ? SONDE_SRC_TLS : SONDE_SRC_SOCKET;
	ch.context = ev->ctx;
	if (f->pos_known[src][dir] && ev->pos != f->next_pos[src][dir]) {
		ch.flags |= SONDE_CHUNK_GAP;
		cs->n.gaps++;
	}
	f->pos_known[src][dir] = true;
	f->next_pos[src][dir] = ev->pos + ev->len;
	f->seen_data = true;
	host_conn_data(f->hc, &ch);
	/* Nobody wants this connection (detection failed, or its parser gave
	 * up): the kernel stops sending it. */
	if (host_conn_state(f->hc) == HOST_CONN_IGNORED)
		flow_ctl(cs, f, SONDE_CTL_MUTE);
	else
		flow_policy(cs, f);
}

struct sonde_conn *conns_lookup_fd(struct conns *cs, uint32_t tgid, uint32_t fd)
{
	struct flow *f = hmap_get(&cs->by_fd, fd_key(tgid, fd));

	return f ? f->hc : NULL;
}

/* Apply fn to every flow of tgid (collected first: fn may delete). */
static void each_of_proc(struct conns *cs, uint32_t tgid, uint64_t ts,
                         void (*fn)(struct conns *, struct flow *, uint64_t, const struct proc *),
                         const struct proc *p)
{
	uint64_t key, *doomed = NULL;
	void *val;
	size_t n = 0, cap = 0;

	for (size_t it = 0; hmap_next(&cs->flows, &it, &key, &val);) {
		if (((struct flow *)val)->tgid != tgid)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *nd = realloc(doomed, cap * sizeof(*nd));
			if (!nd)
				break;
			doomed = nd;
		}
		doomed[n++] = key;
	}
	for (size_t i = 0; i < n; i++) {
		struct flow *f = hmap_get(&cs->flows, doomed[i]);
		if (f)
			fn(cs, f, ts, p);
	}
	free(doomed);
}

static void close_one(struct conns *cs, struct flow *f, uint64_t ts, const struct proc *p)
{
	(void)p;
	flow_free(cs, f, ts);
}

static void close_one_unsure(struct conns *cs, struct flow *f, uint64_t ts, const struct proc *p)
{
	(void)p;
	unknown_tail(cs, f, ts);
	flow_free(cs, f, ts);
}

static void renew_one(struct conns *cs, struct flow *f, uint64_t ts, const struct proc *p)
{
	(void)cs;
	(void)ts;
	host_conn_set_identity(f->hc, p->res ? p->res->service_name : p->exe_name, p->exe_name,
	                       p->res);
}

void conns_close_proc(struct conns *cs, uint32_t tgid, uint64_t ts_unix_ns, bool unsure)
{
	each_of_proc(cs, tgid, ts_unix_ns, unsure ? close_one_unsure : close_one, NULL);
}

void conns_renew_proc(struct conns *cs, const struct proc *p)
{
	each_of_proc(cs, p->tgid, 0, renew_one, p);
}

void conns_close_all(struct conns *cs, uint64_t ts_unix_ns)
{
	uint64_t key;
	void *val;

	for (;;) {
		size_t it = 0;
		if (!hmap_next(&cs->flows, &it, &key, &val))
			break;
		unknown_tail(cs, val, ts_unix_ns);
		flow_free(cs, val, ts_unix_ns);
	}
}

size_t conns_count(const struct conns *cs)
{
	return cs->flows.n;
}

const struct conns_counters *conns_counters(const struct conns *cs)
{
	return &cs->n;
}
