// SPDX-License-Identifier: GPL-2.0
/*
 * go.bpf.c - the Go runtime plugin's kernel side: uprobes in Go executables
 * (x86-64, register ABI, Go >= 1.17). Loaded by the host (host->bpf_load),
 * which reuses its own maps for the shared ones (sonde/bpf.h: sonde_pids,
 * events, sonde_thread_ctx); attached per process by go_plugin.c at
 * addresses found by go_inspect.c.
 *
 * The one idea: in Go code R14 always holds the running goroutine (g), so
 * any probe knows its goroutine id without asking the thread; state that
 * must survive from a function's entry to its return is keyed by goroutine
 * id (a goroutine may block and come back on another thread), and returns
 * are probed at each RET instruction, never with a uretprobe (Go moves
 * goroutine stacks, which breaks a uretprobe's return-address swap).
 *
 * What each program does:
 *   crypto/tls.(*Conn).Write / Read entry  remember {conn, buffer} per goroutine
 *   ... at each RET                         n = result: copy n bytes as a record
 *   (or only at each RET, reading the arguments from their stack slots
 *   where DWARF says they are there: "_nx", no entry probe)
 *   runtime.execute(gp)                      sonde_thread_ctx[tid] = gp's context
 *   runtime.newproc1 entry / RETs            creation record {child, parent ctx}
 *   runtime.goexit0(gp)                      exit record
 *   net/http.(*persistConn).roundTrip        request -> the caller's context
 *   net/http.(*Request).write entry          the writeLoop goroutine works for
 *                                            that caller from now on
 *   net/http.(*connReader).backgroundRead    works for the goroutine that
 *                                            started it (the connection's)
 * A goroutine's "context" is its own id unless it is working for another
 * goroutine (go_override), so chunks and spans land where the request is.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <sonde/bpf.h>

#include "go_rec.h"

char LICENSE[] SEC("license") = "GPL";

_Static_assert(sizeof(struct go_rec_hdr) == sizeof(struct sonde_bpf_hdr), "record header");

#define GO_REG_NONE 0xff

/* Per-process configuration, by tgid (go_rec.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct go_cfg);
} go_cfgs SEC(".maps");

struct go_key {
	__u32 tgid;
	__u32 pad;
	__u64 id; /* a goroutine id, or an address */
};

/* A crypto/tls call in progress, per goroutine. */
struct go_call {
	__u64 conn;
	__u64 buf;
	__u64 len;
	__u8 dir;
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_key);
	__type(value, struct go_call);
} go_calls SEC(".maps");

/* goroutine -> the context it works for (when not its own), and the
 * *http.Request that made it so (0 when not a request write). */
struct go_work {
	__u64 ctx;
	__u64 req;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_key);
	__type(value, struct go_work);
} go_override SEC(".maps");

/* goroutine -> the context of the goroutine that created it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct go_key);
	__type(value, __u64);
} go_parents SEC(".maps");

/* *http.Request -> the context of the goroutine that asked for it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_key);
	__type(value, __u64);
} go_req_origin SEC(".maps");

/* runtime.newproc1 in progress, per thread (it runs on the system stack and
 * never switches goroutines): the creator's context. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} go_newproc SEC(".maps");

/* Byte positions per plaintext stream {tgid, fd, tls.Conn} and direction. */
struct go_stream_key {
	__u32 tgid;
	__u32 fd;
	__u64 conn;
};

struct go_stream {
	__u64 pos[2];
	__u8 lost[2];
	__u8 pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct go_stream_key);
	__type(value, struct go_stream);
} go_streams SEC(".maps");

struct go_scratch {
	__u8 raw[sizeof(struct go_rec_data) + GO_MAX_PAYLOAD];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct go_scratch);
} go_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GO_ST_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} go_stats SEC(".maps");

/* --- helpers ------------------------------------------------------------- */

static __always_inline void go_stat(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&go_stats, &slot);

	if (v)
		*v += 1;
}

static __always_inline struct go_cfg *go_cfg_get(__u32 tgid)
{
	return bpf_map_lookup_elem(&go_cfgs, &tgid);
}

/* An integer argument or result register by its ABI index. Copied to the
 * stack first: the verifier refuses a ctx load at a computed offset, which
 * is what a switch over the fields compiles to. */
static __always_inline __u64 go_reg(struct pt_regs *ctx, __u8 r)
{
	__u64 v[9] = { ctx->ax, ctx->bx, ctx->cx, ctx->di, ctx->si,
		       ctx->r8, ctx->r9, ctx->r10, ctx->r11 };

	return r < 9 ? v[r] : 0;
}

static __always_inline __u64 go_read_u64(__u64 addr)
{
	__u64 v = 0;

	if (addr)
		bpf_probe_read_user(&v, sizeof(v), (const void *)addr);
	return v;
}

/* The goroutine id of the g at gp (0 if unreadable). */
static __always_inline __u64 go_goid_of(const struct go_cfg *cfg, __u64 gp)
{
	return gp ? go_read_u64(gp + cfg->goid_off) : 0;
}

/* The running goroutine: R14 in Go's register ABI. */
static __always_inline __u64 go_cur_goid(struct pt_regs *ctx, const struct go_cfg *cfg)
{
	return go_goid_of(cfg, ctx->r14);
}

/* The context a goroutine works in: whom it works for, else itself. */
static __always_inline __u64 go_ctx_of(__u32 tgid, __u64 goid)
{
	struct go_key k = { .tgid = tgid, .id = goid };
	struct go_work *o = bpf_map_lookup_elem(&go_override, &k);

	return o && o->ctx ? o->ctx : goid;
}

/* The socket under a *tls.Conn: its conn (a net.Conn interface) must hold a
 * *net.TCPConn or *net.UnixConn, known by the itab's type; then
 * conn.fd (*netFD) -> pfd.Sysfd. -1 when it is anything else. */
static __always_inline int go_conn_fd(const struct go_cfg *cfg, __u64 tconn)
{
	__u64 iface[2] = {};
	__u64 typ, netfd, fd = 0;
	__u16 fdoff;

	if (bpf_probe_read_user(iface, sizeof(iface), (const void *)(tconn + cfg->tls_conn_off)) ||
	    !iface[0] || !iface[1])
		return -1;
	typ = go_read_u64(iface[0] + cfg->itab_type_off);
	if (typ && typ == cfg->type_tcp)
		fdoff = cfg->tcp_fd_off;
	else if (typ && typ == cfg->type_unix)
		fdoff = cfg->unix_fd_off;
	else
		return -1;
	netfd = go_read_u64(iface[1] + fdoff);
	if (!netfd ||
	    bpf_probe_read_user(&fd, cfg->sysfd_size == 4 ? 4 : 8,
				(const void *)(netfd + cfg->sysfd_off)))
		return -1;
	if ((__s64)fd < 0 || fd > 0x7fffffff)
		return -1;
	return (int)fd;
}

/* Wake-ups batched like the host's own records (bpf/sonde_conn.bpf.h): the
 * agent drains the ring at least every 100 ms, so a record only wakes it
 * when the ring is filling up (more than a sixteenth of it waiting). A
 * wake-up per record would cost more than everything else a probe does. */
static __always_inline __u64 go_rb_flags(void)
{
	__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);

	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > size / 16 ? BPF_RB_FORCE_WAKEUP
									   : BPF_RB_NO_WAKEUP;
}

static __always_inline void go_hdr(struct go_rec_hdr *h, __u32 type, __u32 fd)
{
	sonde_hdr_fill((struct sonde_bpf_hdr *)h, type, fd);
}

/* --- crypto/tls -------------------------------------------------------------- */

static __always_inline int go_tls_enter(struct pt_regs *ctx, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct go_cfg *cfg = go_cfg_get(tgid);
	struct go_call call = {};
	struct go_key k = { .tgid = tgid };
	__u8 rc, rb, rl;

	if (!cfg || !(cfg->features & GO_F_TLS))
		return 0;
	rc = cfg->reg[dir ? GO_R_WRITE_CONN : GO_R_READ_CONN];
	rb = cfg->reg[dir ? GO_R_WRITE_BUF : GO_R_READ_BUF];
	rl = cfg->reg[dir ? GO_R_WRITE_LEN : GO_R_READ_CAP];
	k.id = go_cur_goid(ctx, cfg);
	if (!k.id)
		return 0;
	call.conn = go_reg(ctx, rc);
	call.buf = go_reg(ctx, rb);
	call.len = go_reg(ctx, rl);
	call.dir = dir;
	bpf_map_update_elem(&go_calls, &k, &call, BPF_ANY);
	return 0;
}

/* Copy n bytes of a finished call into a data record. */
static __always_inline int go_emit(struct go_cfg *cfg, struct go_call *c, __u64 goid, __u64 n,
				   int fd)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, zero = 0;
	struct go_stream_key sk = { .tgid = tgid, .fd = fd, .conn = c->conn };
	struct go_stream ns = {}, *st;
	struct go_scratch *sc = bpf_map_lookup_elem(&go_scratch, &zero);
	struct go_rec_data *rec;
	__u32 cap = cfg->cap, len;
	__u8 dir = c->dir & 1;

	if (!sc)
		return 0;
	rec = (struct go_rec_data *)sc->raw;
	st = bpf_map_lookup_elem(&go_streams, &sk);
	if (!st) {
		bpf_map_update_elem(&go_streams, &sk, &ns, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&go_streams, &sk);
		if (!st)
			return 0;
	}
	if (cap > GO_MAX_PAYLOAD)
		cap = GO_MAX_PAYLOAD;
	len = n < cap ? (__u32)n : cap;
	if (len > GO_MAX_PAYLOAD)
		len = GO_MAX_PAYLOAD;
	go_hdr(&rec->h, cfg->rec_base + GO_REC_DATA, fd);
	rec->goid = goid;
	rec->ctx = go_ctx_of(tgid, goid);
	rec->conn = c->conn;
	rec->pos = st->pos[dir];
	rec->len = (__u32)n;
	rec->dir = dir;
	rec->flags = st->lost[dir] ? GO_RECF_GAP : 0;
	if (bpf_probe_read_user(rec->data, len, (const void *)c->buf))
		len = 0;
	rec->cap_len = len;
	st->pos[dir] += n;
	if (bpf_ringbuf_output(&events, rec, sizeof(*rec) + len, go_rb_flags())) {
		st->lost[dir] = 1;
		go_stat(GO_ST_LOST);
		return 0;
	}
	st->lost[dir] = 0;
	go_stat(GO_ST_DATA);
	return 0;
}

static __always_inline int go_tls_ret(struct pt_regs *ctx, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct go_cfg *cfg = go_cfg_get(tgid);
	struct go_key k = { .tgid = tgid };
	struct go_call *p, c;
	__s64 n;
	int fd;

	if (!cfg || !(cfg->features & GO_F_TLS))
		return 0;
	k.id = go_cur_goid(ctx, cfg);
	p = bpf_map_lookup_elem(&go_calls, &k);
	if (!p || p->dir != dir) {
		go_stat(GO_ST_NOENTRY);
		return 0;
	}
	c = *p;
	bpf_map_delete_elem(&go_calls, &k);
	n = (__s64)go_reg(ctx, cfg->reg[dir ? GO_R_WRITE_N : GO_R_READ_N]);
	if (n <= 0 || !c.buf)
		return 0;
	if ((__u64)n > c.len)
		n = (__s64)c.len; /* never more than the buffer holds */
	fd = go_conn_fd(cfg, c.conn);
	if (fd < 0) {
		go_stat(GO_ST_NOCONN);
		return 0;
	}
	return go_emit(cfg, &c, k.id, (__u64)n, fd);
}

/* A RET whose function's arguments DWARF places in stack slots there: the
 * receiver and b's data pointer are read at CFA (RSP + 8) + the cookie's
 * offsets; no entry probe, so a call already blocked when the probes were
 * attached (a Read waiting for a keep-alive request) is seen too. */
static __always_inline int go_tls_ret_nx(struct pt_regs *ctx, __u8 dir)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_cfg *cfg = go_cfg_get(tgid);
	__u64 cookie = bpf_get_attach_cookie(ctx), cfa = ctx->sp + 8, goid;
	struct go_call c = { .dir = dir };
	__s64 n;
	int fd;

	if (!cfg || !(cfg->features & GO_F_TLS))
		return 0;
	n = (__s64)go_reg(ctx, cfg->reg[dir ? GO_R_WRITE_N : GO_R_READ_N]);
	if (n <= 0)
		return 0;
	c.conn = go_read_u64(cfa + GO_COOKIE_A(cookie));
	c.buf = go_read_u64(cfa + GO_COOKIE_B(cookie));
	c.len = (__u64)n;
	goid = go_cur_goid(ctx, cfg);
	if (!c.conn || !c.buf || !goid)
		return 0;
	fd = go_conn_fd(cfg, c.conn);
	if (fd < 0) {
		go_stat(GO_ST_NOCONN);
		return 0;
	}
	return go_emit(cfg, &c, goid, (__u64)n, fd);
}

SEC("uprobe")
int go_tls_read_ret_nx(struct pt_regs *ctx) { return go_tls_ret_nx(ctx, 0); }

SEC("uprobe")
int go_tls_write_ret_nx(struct pt_regs *ctx) { return go_tls_ret_nx(ctx, 1); }

SEC("uprobe")
int go_tls_write_enter(struct pt_regs *ctx) { return go_tls_enter(ctx, 1); }

SEC("uprobe")
int go_tls_write_ret(struct pt_regs *ctx) { return go_tls_ret(ctx, 1); }

SEC("uprobe")
int go_tls_read_enter(struct pt_regs *ctx) { return go_tls_enter(ctx, 0); }

SEC("uprobe")
int go_tls_read_ret(struct pt_regs *ctx) { return go_tls_ret(ctx, 0); }

/* --- goroutines -------------------------------------------------------------- */

/* runtime.execute(gp): this thread runs gp from now on. */
SEC("uprobe")
int go_execute(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_cfg *cfg = go_cfg_get(tgid);
	__u64 goid;

	if (!cfg || !(cfg->features & GO_F_GOROUTINES))
		return 0;
	goid = go_goid_of(cfg, go_reg(ctx, cfg->reg[GO_R_EXEC_G]));
	sonde_thread_ctx_set(goid ? go_ctx_of(tgid, goid) : 0);
	return 0;
}

/* runtime.newproc1(fn, callergp, ...) entry: remember the creator. */
SEC("uprobe")
int go_newproc_enter(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct go_cfg *cfg = go_cfg_get(tgid);
	__u64 parent;

	if (!cfg || !(cfg->features & GO_F_GOROUTINES))
		return 0;
	parent = go_goid_of(cfg, go_reg(ctx, cfg->reg[GO_R_NEWPROC_PARENT]));
	if (!parent)
		return 0;
	parent = go_ctx_of(tgid, parent);
	bpf_map_update_elem(&go_newproc, &id, &parent, BPF_ANY);
	return 0;
}

/* The creation record for the g in the result register, made by parent. */
static __always_inline int go_newproc_done(struct pt_regs *ctx, struct go_cfg *cfg, __u32 tgid,
					   __u64 parent)
{
	struct go_rec_go r = {};
	struct go_key k = { .tgid = tgid };

	k.id = go_goid_of(cfg, go_reg(ctx, cfg->reg[GO_R_NEWPROC_G]));
	if (!k.id || !parent)
		return 0;
	bpf_map_update_elem(&go_parents, &k, &parent, BPF_ANY);
	go_hdr(&r.h, cfg->rec_base + GO_REC_GO_NEW, 0);
	r.goid = k.id;
	r.parent = parent;
	if (bpf_ringbuf_output(&events, &r, sizeof(r), go_rb_flags()))
		go_stat(GO_ST_LOST);
	else
		go_stat(GO_ST_GO_NEW);
	return 0;
}

/* ... at each RET: the new g is the result. */
SEC("uprobe")
int go_newproc_ret(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct go_cfg *cfg = go_cfg_get(tgid);
	__u64 *pp, parent;

	if (!cfg || !(cfg->features & GO_F_GOROUTINES))
		return 0;
	pp = bpf_map_lookup_elem(&go_newproc, &id);
	if (!pp)
		return 0;
	parent = *pp;
	bpf_map_delete_elem(&go_newproc, &id);
	return go_newproc_done(ctx, cfg, tgid, parent);
}

/* newproc1's RET where DWARF keeps callergp in a stack slot (go1.19: in
 * the callee's frame just popped; nothing runs on this stack between the
 * epilogue and the RET): no entry probe. */
SEC("uprobe")
int go_newproc_ret_nx(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_cfg *cfg = go_cfg_get(tgid);
	__u64 cookie = bpf_get_attach_cookie(ctx), parent;

	if (!cfg || !(cfg->features & GO_F_GOROUTINES))
		return 0;
	parent = go_goid_of(cfg, go_read_u64(ctx->sp + 8 + GO_COOKIE_A(cookie)));
	if (!parent)
		return 0;
	return go_newproc_done(ctx, cfg, tgid, go_ctx_of(tgid, parent));
}

/* runtime.goexit0(gp): gp is done. */
SEC("uprobe")
int go_goexit(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_cfg *cfg = go_cfg_get(tgid);
	struct go_key k = { .tgid = tgid };
	struct go_rec_go r = {};

	if (!cfg || !(cfg->features & GO_F_GOEXIT))
		return 0;
	k.id = go_goid_of(cfg, go_reg(ctx, cfg->reg[GO_R_EXIT_G]));
	if (!k.id)
		return 0;
	bpf_map_delete_elem(&go_parents, &k);
	bpf_map_delete_elem(&go_override, &k);
	bpf_map_delete_elem(&go_calls, &k);
	go_hdr(&r.h, cfg->rec_base + GO_REC_GO_END, 0);
	r.goid = k.id;
	if (bpf_ringbuf_output(&events, &r, sizeof(r), go_rb_flags()))
		go_stat(GO_ST_LOST);
	else
		go_stat(GO_ST_GO_END);
	return 0;
}

/* --- net/http: goroutines that work for another --------------------------------- */

/* (*persistConn).roundTrip(req *transportRequest), on the caller's goroutine:
 * its *Request will be written by the connection's writeLoop goroutine. */
SEC("uprobe")
int go_http_roundtrip(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_cfg *cfg = go_cfg_get(tgid);
	struct go_key k = { .tgid = tgid };
	__u64 goid, c;

	if (!cfg || !(cfg->features & GO_F_HTTP_CLIENT))
		return 0;
	k.id = go_read_u64(go_reg(ctx, cfg->reg[GO_R_RT_TREQ]) + cfg->treq_req_off);
	goid = go_cur_goid(ctx, cfg);
	if (!k.id || !goid)
		return 0;
	c = go_ctx_of(tgid, goid);
	bpf_map_update_elem(&go_req_origin, &k, &c, BPF_ANY);
	return 0;
}

/* (*Request).write(...) entry, on a connection's writeLoop goroutine: it
 * writes this request for the goroutine that asked for it. Only the
 * headers reach the socket inside write(); writeLoop flushes the rest
 * after it returns, so the goroutine keeps working for that caller until
 * it starts on its next request (or exits): its work in between is
 * waiting for that next request.
 *
 * An entry probe of a Go function can fire twice for one call: when the
 * goroutine's stack is too small for the frame, the prologue calls
 * runtime.morestack, which copies the stack and restarts the function at
 * its entry. The origin was taken (deleted) at the first hit, so a second
 * hit for the same request must keep the delegation, not end it: the
 * override remembers which request it was made for. */
SEC("uprobe")
int go_http_write_enter(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_cfg *cfg = go_cfg_get(tgid);
	struct go_key rk = { .tgid = tgid }, gk = { .tgid = tgid };
	struct go_work w = {}, *cur;
	__u64 *o;

	if (!cfg || !(cfg->features & GO_F_HTTP_CLIENT))
		return 0;
	gk.id = go_cur_goid(ctx, cfg);
	if (!gk.id)
		return 0;
	rk.id = go_reg(ctx, cfg->reg[GO_R_RW_REQ]);
	o = bpf_map_lookup_elem(&go_req_origin, &rk);
	if (!o) {
		cur = bpf_map_lookup_elem(&go_override, &gk);
		if (cur && rk.id && cur->req == rk.id) {
			/* The same call again, after stack growth. */
			sonde_thread_ctx_set(cur->ctx);
			go_stat(GO_ST_HTTP_REENTRY);
			return 0;
		}
		/* Nobody we know of waits for this one: its own context. */
		if (bpf_map_delete_elem(&go_override, &gk) == 0)
			sonde_thread_ctx_set(gk.id);
		return 0;
	}
	w.ctx = *o;
	w.req = rk.id;
	bpf_map_delete_elem(&go_req_origin, &rk);
	bpf_map_update_elem(&go_override, &gk, &w, BPF_ANY);
	sonde_thread_ctx_set(w.ctx);
	go_stat(GO_ST_HTTP_DELEGATE);
	return 0;
}

/* (*connReader).backgroundRead entry: a goroutine the connection's
 * goroutine started to watch the socket between requests; what it reads
 * (the next request's first bytes) belongs to the connection's goroutine. */
SEC("uprobe")
int go_http_bgread(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_cfg *cfg = go_cfg_get(tgid);
	struct go_key gk = { .tgid = tgid };
	struct go_work w = {};
	__u64 *parent;

	if (!cfg || !(cfg->features & GO_F_HTTP_BGREAD))
		return 0;
	gk.id = go_cur_goid(ctx, cfg);
	parent = gk.id ? bpf_map_lookup_elem(&go_parents, &gk) : NULL;
	if (!parent)
		return 0;
	w.ctx = *parent;
	bpf_map_update_elem(&go_override, &gk, &w, BPF_ANY);
	sonde_thread_ctx_set(w.ctx);
	return 0;
}
