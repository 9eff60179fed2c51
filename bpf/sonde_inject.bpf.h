/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sonde_inject.bpf.h - opt-in W3C traceparent injection into the HTTP/1
 * requests of watched clients. A sockops program (cgroup) puts the TCP
 * sockets that processes flagged SONDE_PID_INJECT connect into a sockhash;
 * an sk_msg program on that sockhash inserts one header line right after
 * the request line with bpf_msg_push_data, and reports what it inserted.
 *
 * The one idea: a message is touched only when it is exactly one whole
 * request head (its body, of known length, in this message or the next
 * ones). Anything else - two requests in one write, a head split over
 * writes, a chunked body, TLS bytes, a request that already carries a
 * traceparent - passes unchanged, and after any doubt the connection is
 * never touched again. The context is the one of the request the sending
 * thread is serving (sonde_tid_trace, checked to be still current) or, in
 * a process that serves nothing, a new trace; a serving thread whose
 * request user space has not seen yet gets nothing (counted).
 */
#ifndef SONDE_INJECT_BPF_H
#define SONDE_INJECT_BPF_H

#define INJ_SCAN 1024  /* bytes of a message looked at for the head */
#define INJ_LINE 70    /* "traceparent: 00-<32 hex>-<16 hex>-01\r\n" */

struct inj_state {
	__u64 app_pos;   /* bytes the application has sent on the socket */
	__u64 body_left; /* body bytes of the current request still to come */
	__u8 dirty;      /* lost track once: never touched again */
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inj_state);
} inj_state SEC(".maps");

/* Sockets of injecting processes between connect() and established. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} inj_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} inj_socks SEC(".maps");

/* tid -> the request it serves (user space writes it). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct sonde_trace_ctx);
} sonde_tid_trace SEC(".maps");

SEC("sockops")
int sonde_inject_sockops(struct bpf_sock_ops *skops)
{
	__u64 cookie;
	__u32 tgid;

	if (skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		/* connect() runs in the connecting process. */
		tgid = bpf_get_current_pid_tgid() >> 32;
		if (!(sonde_pid_flags(tgid) & SONDE_PID_INJECT))
			return 1;
		cookie = bpf_get_socket_cookie(skops);
		bpf_map_update_elem(&inj_pending, &cookie, &tgid, BPF_ANY);
	} else if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		cookie = bpf_get_socket_cookie(skops);
		if (!bpf_map_lookup_elem(&inj_pending, &cookie))
			return 1;
		bpf_map_delete_elem(&inj_pending, &cookie);
		bpf_sock_hash_update(skops, &inj_socks, &cookie, BPF_NOEXIST);
	}
	return 1;
}

/* What the head scan found. */
struct inj_head {
	__u32 line_end;  /* offset after the request line's CRLF */
	__u32 head_len;  /* offset after the empty line */
	__u32 cl_off;    /* offset of the Content-Length value */
	__u64 clen;      /* Content-Length (0 if absent) */
	__u8 has_tp, has_te, has_cl, bad;
};

/* Header names, lowercase, as little-endian words (string constants would
 * land in .rodata, where clang's merged strings make a BTF the kernel
 * refuses). Letters are compared with their 0x20 bit set; '-' and ':'
 * have it already. */
#define W_TRACEPAR 0x7261706563617274ull /* "tracepar" */
#define W_ENT      0x3a746e65u           /* "ent:" */
#define W_CONTENT_ 0x2d746e65746e6f63ull /* "content-" */
#define W_LENGTH   0x3a6874676e656cull   /* "length:" (7 bytes) */
#define W_TRANSFER 0x726566736e617274ull /* "transfer" */
#define W__ENCODIN 0x6e69646f636e652dull /* "-encodin" */
#define W_G        0x3a67u               /* "g:" */
#define LOWER8     0x2020202020202020ull

static __always_inline __u64 inj_word(const __u8 *p, int n)
{
	__u64 w = 0;

	for (int i = 0; i < n; i++)
		w |= (__u64)p[i] << (8 * i);
	return w | (LOWER8 >> (8 * (8 - n)));
}

/* The header line starting at off: is it one of the three we look at? */
static __always_inline void inj_header(struct sk_msg_md *msg, __u32 off, struct inj_head *hd)
{
	__u8 *d = msg->data, *end = msg->data_end, *p;

	if (off >= INJ_SCAN)
		return;
	p = d + off;
	asm volatile("" : "+r"(p));
	if (p + 12 > end)
		return;
	if (inj_word(p, 8) == W_TRACEPAR && inj_word(p + 8, 4) == W_ENT)
		hd->has_tp = 1;
	if (p + 15 > end)
		return;
	if (inj_word(p, 8) == W_CONTENT_ && inj_word(p + 8, 7) == W_LENGTH) {
		if (hd->has_cl)
			hd->bad = 1; /* two Content-Lengths: leave it alone */
		hd->has_cl = 1;
		hd->cl_off = off + 15;
	}
	if (p + 18 > end)
		return;
	if (inj_word(p, 8) == W_TRANSFER && inj_word(p + 8, 8) == W__ENCODIN &&
	    inj_word(p + 16, 2) == W_G)
		hd->has_te = 1;
}

/* The head scan, one byte per bpf_loop step (the verifier checks the step
 * once, not every byte): line ends, and the names of the lines. */
struct inj_scan {
	struct sk_msg_md *msg;
	__u32 n, line_start;
	__u8 prev;
	struct inj_head hd;
};

static long inj_step(__u32 i, void *vctx)
{
	struct inj_scan *s = vctx;
	__u8 *d, *end, c;

	if (i >= INJ_SCAN || i >= s->n)
		return 1;
	d = s->msg->data;
	end = s->msg->data_end;
	if (d + i + 1 > end)
		return 1;
	c = d[i];
	if (s->prev == '\r' && c == '\n') {
		if (s->line_start + 1 == i) { /* the empty line: the head ends */
			s->hd.head_len = i + 1;
			return 1;
		}
		if (!s->hd.line_end)
			s->hd.line_end = i + 1;
		s->line_start = i + 1;
		inj_header(s->msg, i + 1, &s->hd);
	}
	s->prev = c;
	return 0;
}

/* Content-Length's value: digits, spaces around. */
struct inj_num {
	struct sk_msg_md *msg;
	__u32 off;
	__u64 v;
	__u8 digits, bad;
};

static long inj_digit_step(__u32 i, void *vctx)
{
	struct inj_num *s = vctx;
	__u8 *d = s->msg->data, *end = s->msg->data_end, c;
	__u32 at = s->off + i;

	if (at >= INJ_SCAN || d + at + 1 > end)
		return 1;
	c = d[at];
	if (c >= '0' && c <= '9') {
		s->v = s->v * 10 + (c - '0');
		s->digits++;
		return 0;
	}
	if (c == ' ' || c == '\t')
		return 0;
	if (c != '\r')
		s->bad = 1;
	return 1;
}

static __always_inline void inj_scan(struct sk_msg_md *msg, __u32 n, struct inj_head *hd)
{
	struct inj_scan s = {.msg = msg, .n = n};
	struct inj_num num = {.msg = msg};

	bpf_loop(INJ_SCAN, inj_step, &s, 0);
	*hd = s.hd;
	if (!hd->has_cl || !hd->head_len)
		return;
	num.off = hd->cl_off;
	bpf_loop(24, inj_digit_step, &num, 0);
	if (num.bad || !num.digits || num.digits > 12)
		hd->bad = 1;
	hd->clen = num.v;
}

/* The request line is "<TOKEN> <target> HTTP/1.x". */
static __always_inline int inj_request_line(struct sk_msg_md *msg, __u32 line_end)
{
	__u8 *d = msg->data, *end = msg->data_end, *p;
	__u32 v;

	if (line_end < 16 || line_end > INJ_SCAN)
		return 0;
	if (d + 1 > end || d[0] < 'A' || d[0] > 'Z')
		return 0;
	v = line_end - 10;
	if (v > INJ_SCAN - 10)
		return 0;
	p = d + v;
	/* one pointer, checked once: keep clang from recomputing d + v + k */
	asm volatile("" : "+r"(p));
	if (p + 10 > end)
		return 0;
	return p[0] == 'H' && p[1] == 'T' && p[2] == 'T' && p[3] == 'P' && p[4] == '/' &&
	       p[5] == '1' && p[6] == '.';
}

static __always_inline __u8 inj_digit(__u8 v)
{
	return v < 10 ? '0' + v : 'a' + v - 10;
}

static __always_inline void inj_hex(__u8 *out, const __u8 *in, int n)
{
	for (int i = 0; i < n; i++) {
		out[2 * i] = inj_digit(in[i] >> 4);
		out[2 * i + 1] = inj_digit(in[i] & 15);
	}
}

/* n bytes of a little-endian word. */
static __always_inline void inj_put(__u8 *out, __u64 w, int n)
{
	for (int i = 0; i < n; i++)
		out[i] = (__u8)(w >> (8 * i));
}

static __always_inline void inj_random(__u8 *out, int n)
{
	for (int i = 0; i < n; i += 4) {
		__u32 r = bpf_get_prandom_u32();

		__builtin_memcpy(out + i, &r, 4);
	}
	out[0] |= 1; /* never all zero */
}

/* The context for a request sent now by the current thread: 1 with a
 * parent (the request it serves), 0 a new trace, -1 none known. */
static __always_inline int inj_context(__u32 tgid, __u32 tid, struct sonde_ev_inject *ev)
{
	struct sonde_trace_ctx *t = bpf_map_lookup_elem(&sonde_tid_trace, &tid);

	if (t && t->tgid == tgid) {
		struct sonde_kconn_key key = {.tgid = t->tgid, .fd = t->fd};
		struct sonde_kconn *c = bpf_map_lookup_elem(&conns, &key);

		if (c && c->gen == t->gen && c->pos[SONDE_EV_DIR_EGRESS] == t->out_pos) {
			__builtin_memcpy(ev->trace_id, t->trace_id, 16);
			__builtin_memcpy(ev->parent_id, t->span_id, 8);
			ev->has_parent = 1;
			return 1;
		}
	}
	if (sonde_pid_flags(tgid) & SONDE_PID_SERVES)
		return -1;
	inj_random(ev->trace_id, 16);
	return 0;
}

static __always_inline int inj_dirty(struct inj_state *st)
{
	st->dirty = 1;
	sonde_count(SONDE_CNT_INJ_UNSURE);
	return SK_PASS;
}

SEC("sk_msg")
int sonde_inject_msg(struct sk_msg_md *msg)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, size = msg->size, n;
	struct inj_head hd = {};
	struct sonde_ev_inject ev = {};
	struct inj_state *st;
	__u64 pos, body_here;
	__u32 rp;
	__u8 *d, *end;

	if (!msg->sk)
		return SK_PASS;
	st = bpf_sk_storage_get(&inj_state, msg->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return SK_PASS;
	pos = st->app_pos;
	st->app_pos += size;
	if (st->dirty)
		return SK_PASS;
	if (st->body_left) {
		if (size > st->body_left)
			return inj_dirty(st); /* the next request starts in here */
		st->body_left -= size;
		return SK_PASS;
	}
	if (!size)
		return SK_PASS;
	n = size < INJ_SCAN ? size : INJ_SCAN;
	if (bpf_msg_pull_data(msg, 0, n, 0))
		return inj_dirty(st);
	inj_scan(msg, n, &hd);
	if (!hd.head_len || hd.bad || hd.has_te || !inj_request_line(msg, hd.line_end))
		return inj_dirty(st);
	body_here = size - hd.head_len;
	if (body_here > hd.clen)
		return inj_dirty(st); /* more than one request in this write */
	st->body_left = hd.clen - body_here;
	if (hd.has_tp) {
		sonde_count(SONDE_CNT_INJ_HAS_TP);
		return SK_PASS;
	}
	if (inj_context(tgid, (__u32)id, &ev) < 0) {
		sonde_count(SONDE_CNT_INJ_NOCTX);
		return SK_PASS;
	}
	inj_random(ev.span_id, 8);
	if (bpf_msg_push_data(msg, hd.line_end, INJ_LINE, 0))
		return SK_PASS;
	if (bpf_msg_pull_data(msg, hd.line_end, hd.line_end + INJ_LINE, 0))
		goto undo;
	d = msg->data;
	end = msg->data_end;
	if (d + INJ_LINE > end)
		goto undo;
	inj_put(d, 0x7261706563617274ull, 8);      /* "tracepar" */
	inj_put(d + 8, 0x2d3030203a746e65ull, 8);  /* "ent: 00-" */
	inj_hex(d + 16, ev.trace_id, 16);
	d[48] = '-';
	inj_hex(d + 49, ev.span_id, 8);
	inj_put(d + 65, 0xa0d31302dull, 5);        /* "-01\r\n" */
	sonde_hdr(&ev.h, SONDE_EV_INJECT, tgid, (__u32)id, 0);
	ev.lport = (__u16)msg->local_port;
	/* remote_port: network order, in the low or the high half depending
	 * on the kernel's conversion */
	rp = msg->remote_port;
	ev.rport = bpf_ntohs((__u16)(rp > 0xffff ? rp >> 16 : rp));
	ev.pos = pos;
	sonde_count(SONDE_CNT_INJECTED);
	sonde_output(tgid, &ev, sizeof(ev), 0);
	return SK_PASS;
undo:
	/* The line could not be written: take the room out again. */
	bpf_msg_pop_data(msg, hd.line_end, INJ_LINE, 0);
	return inj_dirty(st);
}

#endif
