/*
 * conn.c - the connection table and dispatch.
 *
 * The one idea: a connection is undecided until a protocol enabled for its
 * service claims it through detect(); from then on that protocol is its
 * sticky owner and sees every chunk in order, with gaps and truncation
 * flagged. Chunks seen while undecided are held (bounded) and replayed to
 * the owner, so the first request is never lost to detection.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent.h"

#define HOLD_MAX_BYTES 8192   /* undecided bytes kept per connection */
#define DETECT_MAX_CHUNKS 8   /* give up detection after this many chunks */

bool service_enables(const struct service *svc, const char *proto)
{
	if (!svc || !svc->cfg || !svc->cfg->n_protocols)
		return true;
	for (size_t i = 0; i < svc->cfg->n_protocols; i++)
		if (!strcmp(svc->cfg->protocols[i], proto))
			return true;
	return false;
}

static void addr_text(uint16_t family, const uint8_t a[16], char *out, size_t n)
{
	if (family == AF_INET)
		inet_ntop(AF_INET, a + 12, out, (socklen_t)n);
	else
		inet_ntop(AF_INET6, a, out, (socklen_t)n);
}

static enum sonde_role infer_role(const struct proc *p, uint16_t lport)
{
	for (unsigned i = 0; p && i < p->n_listen; i++)
		if (p->listen_ports[i] == lport)
			return SONDE_ROLE_SERVER;
	return SONDE_ROLE_CLIENT;
}

struct sonde_conn *conn_open(struct agent *a, const struct sonde_ev_conn *ev)
{
	struct sonde_conn *c, *old;
	struct proc *p = proc_get(a, ev->h.tgid);

	if (!p)
		return NULL;
	old = hmap_get(&a->conns, ev->gen);
	if (old)
		conn_close(a, old, ev->h.ts_ns + a->mono_to_real);
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->gen = ev->gen;
	c->tgid = ev->h.tgid;
	c->fd = ev->h.fd;
	c->proc = p;
	c->held_tail = &c->held;
	c->info.struct_size = sizeof(c->info);
	c->info.pid = ev->h.tgid;
	c->info.conn_id = ev->gen;
	c->info.family = ev->t.family;
	c->info.local_port = ev->t.lport;
	c->info.peer_port = ev->t.rport;
	addr_text(ev->t.family, ev->t.laddr, c->info.local_addr, sizeof(c->info.local_addr));
	addr_text(ev->t.family, ev->t.raddr, c->info.peer_addr, sizeof(c->info.peer_addr));
	c->info.service_name = p->res ? p->res->service_name : p->exe_name;
	c->info.exe_name = p->exe_name;
	switch (ev->role) {
	case SONDE_EV_ROLE_SERVER: c->info.role = SONDE_ROLE_SERVER; break;
	case SONDE_EV_ROLE_CLIENT: c->info.role = SONDE_ROLE_CLIENT; break;
	default: c->info.role = infer_role(p, ev->t.lport); break;
	}
	if (hmap_put(&a->conns, c->gen, c)) {
		free(c);
		return NULL;
	}
	a->n.conns_opened++;
	return c;
}

static void free_held(struct sonde_conn *c)
{
	struct held_chunk *h = c->held, *n;

	for (; h; h = n) {
		n = h->next;
		free(h);
	}
	c->held = NULL;
	c->held_tail = &c->held;
	c->held_bytes = 0;
}

static void give_up(struct agent *a, struct sonde_conn *c, uint64_t ts)
{
	if (c->state == CONN_OWNED) {
		a->cur_tid = 0;
		c->owner->proto->conn_close(c->owner_state, c, ts);
		host_drop_conn_spans(c);
	}
	c->state = CONN_IGNORED;
	c->owner = NULL;
	c->owner_state = NULL;
	free_held(c);
}

void conn_close(struct agent *a, struct sonde_conn *c, uint64_t ts_unix_ns)
{
	if (c->state == CONN_OWNED) {
		a->cur_tid = 0;
		c->owner->proto->conn_close(c->owner_state, c, ts_unix_ns);
		host_drop_conn_spans(c);
	}
	free_held(c);
	hmap_del(&a->conns, c->gen);
	free(c);
}

static int feed(struct agent *a, struct sonde_conn *c, const struct sonde_chunk *ch)
{
	int rc;

	a->cur_tid = ch->tid;
	rc = c->owner->proto->conn_data(c->owner_state, c, ch);
	if (rc == SONDE_ERR_PROTO) {
		a->n.proto_errors++;
		give_up(a, c, ch->ts_unix_ns);
	}
	return rc;
}

static int hold(struct sonde_conn *c, const struct sonde_chunk *ch)
{
	struct held_chunk *h = malloc(sizeof(*h) + ch->len);

	if (!h)
		return -1;
	h->next = NULL;
	h->c = *ch;
	memcpy(h->data, ch->data, ch->len);
	h->c.data = h->data;
	*c->held_tail = h;
	c->held_tail = &h->next;
	c->held_bytes += ch->len;
	return 0;
}

/* The held bytes of one direction, concatenated (bounded), for detect(). */
static size_t held_view(const struct sonde_conn *c, enum sonde_dir dir, uint8_t *buf, size_t cap,
                        struct sonde_chunk *view)
{
	size_t n = 0;
	const struct held_chunk *first = NULL;

	for (const struct held_chunk *h = c->held; h; h = h->next) {
		if (h->c.dir != dir)
			continue;
		if (!first)
			first = h;
		size_t k = h->c.len < cap - n ? h->c.len : cap - n;
		memcpy(buf + n, h->c.data, k);
		n += k;
		if (h->c.len < h->c.orig_len) /* bytes after a cut are unknown */
			break;
	}
	if (first) {
		*view = first->c;
		view->data = buf;
		view->len = n;
		view->orig_len = n;
	}
	return n;
}

static void detect(struct agent *a, struct sonde_conn *c, const struct sonde_chunk *ch)
{
	static uint8_t buf[HOLD_MAX_BYTES];
	const struct proto_entry *best = NULL;
	struct sonde_chunk view;
	int best_score = 0, need_more = 0;

	if (hold(c, ch)) {
		give_up(a, c, ch->ts_unix_ns);
		return;
	}
	c->detect_tries++;
	if (!held_view(c, ch->dir, buf, sizeof(buf), &view))
		return;
	for (size_t i = 0; i < a->plugins.n_protos; i++) {
		const struct proto_entry *pe = a->plugins.protos[i];
		if (!service_enables(c->proc ? c->proc->svc : NULL, pe->proto->name))
			continue;
		int s = pe->proto->detect(pe->plugin->state, &c->info, &view);
		if (s == SONDE_DETECT_NEED_MORE)
			need_more = 1;
		else if (s > best_score) {
			best_score = s;
			best = pe;
		}
	}
	if (!best) {
		if ((!need_more && c->detect_tries >= 2) || c->detect_tries >= DETECT_MAX_CHUNKS ||
		    c->held_bytes >= HOLD_MAX_BYTES) {
			a->n.conns_ignored++;
			give_up(a, c, ch->ts_unix_ns);
		}
		return;
	}
	c->owner = best;
	c->info.service_name = c->proc && c->proc->res ? c->proc->res->service_name : "";
	if (best->proto->conn_open(best->plugin->state, c, &c->info, &c->owner_state)) {
		c->owner = NULL;
		a->n.conns_ignored++;
		give_up(a, c, ch->ts_unix_ns);
		return;
	}
	c->state = CONN_OWNED;
	a->n.conns_owned++;
	struct held_chunk *h = c->held;
	c->held = NULL;
	c->held_tail = &c->held;
	c->held_bytes = 0;
	while (h) {
		struct held_chunk *n = h->next;
		if (c->state == CONN_OWNED)
			feed(a, c, &h->c);
		free(h);
		h = n;
	}
}

static int looks_like_tls(const uint8_t *d, size_t n)
{
	/* A TLS record: handshake (22) or application data (23), version 3.x */
	return n >= 3 && (d[0] == 0x16 || d[0] == 0x17 || d[0] == 0x15) && d[1] == 0x03 && d[2] <= 0x04;
}

void conn_data(struct agent *a, struct sonde_conn *c, const struct sonde_ev_data *ev,
               uint64_t ts_unix_ns)
{
	struct sonde_chunk ch;
	unsigned src = ev->source == SONDE_EV_SRC_TLS ? 1 : 0, dir = ev->dir ? 1 : 0;

	if (src) {
		if (!c->tls) {
			c->tls = true;
			c->info.tls = 1;
		}
	} else if (c->tls || (c->state == CONN_DETECTING && !c->held &&
	                      looks_like_tls(ev->data, ev->cap_len))) {
		/* Ciphertext: the TLS uprobes deliver the plaintext. */
		c->tls = true;
		c->info.tls = 1;
		return;
	}
	if (c->state == CONN_IGNORED)
		return;

	memset(&ch, 0, sizeof(ch));
	ch.struct_size = sizeof(ch);
	ch.dir = dir ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
	ch.ts_unix_ns = ts_unix_ns;
	ch.data = ev->data;
	ch.len = ev->cap_len;
	ch.orig_len = ev->len;
	ch.tid = ev->h.tid;
	if (ev->flags & SONDE_EVF_TRUNCATED)
		ch.flags |= SONDE_CHUNK_TRUNCATED;
	if (c->pos_known[src][dir] && ev->pos != c->next_pos[src][dir]) {
		ch.flags |= SONDE_CHUNK_GAP;
		a->n.gaps++;
	}
	c->pos_known[src][dir] = true;
	c->next_pos[src][dir] = ev->pos + ev->len;

	if (c->state == CONN_OWNED)
		feed(a, c, &ch);
	else
		detect(a, c, &ch);
}
