/*
 * go_inspect.c - from a Go executable to probe sites and a go_cfg: which
 * Go, which functions, which offsets and registers, where the RETs are.
 *
 * The one idea: a feature is a list of requirements (symbols with code,
 * struct fields of a plausible size, parameters in registers, decodable
 * returns); go_need_* record the first one that fails as the feature's
 * reason, and only features whose requirements all hold are switched on.
 * The goroutine id field is the one thing every feature needs.
 */
#include <elf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "go_dwarf.h"
#include "go_elf.h"
#include "go_inspect.h"
#include "go_x86.h"

const char *const go_prog_names[GO_P_COUNT] = {
	"go_tls_write_enter", "go_tls_write_ret", "go_tls_read_enter", "go_tls_read_ret",
	"go_execute", "go_newproc_enter", "go_newproc_ret", "go_goexit",
	"go_http_roundtrip", "go_http_write_enter", "go_http_bgread",
	"go_tls_read_ret_nx", "go_tls_write_ret_nx", "go_newproc_ret_nx",
};

uint32_t go_prog_feature(enum go_prog p)
{
	switch (p) {
	case GO_P_TLS_WRITE_ENTER: case GO_P_TLS_WRITE_RET: case GO_P_TLS_READ_ENTER:
	case GO_P_TLS_READ_RET: case GO_P_TLS_READ_RET_NX: case GO_P_TLS_WRITE_RET_NX:
		return GO_F_TLS;
	case GO_P_EXECUTE: case GO_P_NEWPROC_ENTER: case GO_P_NEWPROC_RET: case GO_P_NEWPROC_RET_NX:
		return GO_F_GOROUTINES;
	case GO_P_GOEXIT:
		return GO_F_GOEXIT;
	case GO_P_HTTP_ROUNDTRIP: case GO_P_HTTP_WRITE_ENTER:
		return GO_F_HTTP_CLIENT;
	case GO_P_HTTP_BGREAD:
		return GO_F_HTTP_BGREAD;
	default:
		return 0;
	}
}

#define MAX_RETS 32

/* Symbols and DWARF names, by index. */
enum {
	S_TLS_READ, S_TLS_WRITE, S_EXECUTE, S_NEWPROC1, S_GOEXIT0, S_RT, S_RW, S_BGREAD,
	S_ITAB_TCP, S_ITAB_UNIX, S_COUNT,
};

static const char *const sym_names[S_COUNT] = {
	"crypto/tls.(*Conn).Read",
	"crypto/tls.(*Conn).Write",
	"runtime.execute",
	"runtime.newproc1",
	"runtime.goexit0",
	"net/http.(*persistConn).roundTrip",
	"net/http.(*Request).write",
	"net/http.(*connReader).backgroundRead",
	"go.itab.*net.TCPConn,net.Conn",
	"go.itab.*net.UnixConn,net.Conn",
};

static const char *const dwarf_types[] = {
	"runtime.g", "runtime.itab", "crypto/tls.Conn", "net.TCPConn", "net.UnixConn",
	"net.conn", "net.netFD", "internal/poll.FD", "net/http.transportRequest",
};

/* Working state of one inspection. */
struct go_insp {
	struct go_elf *elf;
	struct go_dwarf *dw;
	struct go_target *t;
	struct go_sym syms[S_COUNT];
	char fail[GO_WHY_LEN];     /* the current feature's first failed requirement */
};

static void go_failf(struct go_insp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void go_failf(struct go_insp *s, const char *fmt, ...)
{
	va_list ap;

	if (s->fail[0])
		return;
	va_start(ap, fmt);
	vsnprintf(s->fail, sizeof(s->fail), fmt, ap);
	va_end(ap);
}

void go_features_str(uint32_t f, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s%s%s", f & GO_F_TLS ? "crypto/tls " : "",
		 f & GO_F_GOROUTINES ? "goroutines " : "", f & GO_F_GOEXIT ? "goexit " : "",
		 f & GO_F_HTTP_CLIENT ? "http-client " : "", f & GO_F_HTTP_BGREAD ? "http-bgread " : "");
	if (out[0] && out[strlen(out) - 1] == ' ')
		out[strlen(out) - 1] = 0;
}

/* --- requirements ----------------------------------------------------------- */

static const struct go_sym *go_need_func(struct go_insp *s, int idx)
{
	const struct go_sym *y = &s->syms[idx];

	if (!y->addr || !y->size || !go_elf_file_offset(s->elf, y->addr)) {
		go_failf(s, "%s not found", sym_names[idx]);
		return NULL;
	}
	return y;
}

/* A field of `size` bytes (0: any, 48: 4 or 8) that fits in 16 bits. */
static int go_need_field(struct go_insp *s, const char *type, const char *field, uint32_t size,
			 uint16_t *off, uint32_t *got)
{
	uint32_t o, z;

	if (go_dwarf_field(s->dw, type, field, &o, &z)) {
		go_failf(s, "DWARF has no %s.%s", type, field);
		return -1;
	}
	if ((size == 48 && z != 4 && z != 8) || (size && size != 48 && z != size) || o > 0xffff) {
		go_failf(s, "%s.%s has an unexpected layout (offset %u, size %u)", type, field, o, z);
		return -1;
	}
	*off = (uint16_t)o;
	if (got)
		*got = z;
	return 0;
}

/* Parameter (or first result when param is NULL and output) in `want`
 * registers; stores the k-th register in slot[k] (unless it is < 0). */
static int go_need_regs(struct go_insp *s, const char *func, const char *param, int output,
			int want, const int *slots)
{
	uint8_t regs[GO_MAX_PARAM_REGS];
	int n;

	if (go_dwarf_param_regs(s->dw, func, param, output, &n, regs) || n != want) {
		go_failf(s, "%s: %s %s is not in %d register(s)", func, output ? "result" : "argument",
			 param ? param : "#1", want);
		return -1;
	}
	for (int k = 0; k < want; k++)
		if (slots[k] >= 0)
			s->t->cfg.reg[slots[k]] = regs[k];
	return 0;
}

static int go_add_probe_c(struct go_insp *s, enum go_prog p, uint64_t vaddr, uint64_t cookie)
{
	struct go_target *t = s->t;
	uint64_t off = go_elf_file_offset(s->elf, vaddr);

	if (!off || t->nprobes >= GO_MAX_PROBES) {
		go_failf(s, "too many probe sites");
		return -1;
	}
	t->probes[t->nprobes].prog = p;
	t->probes[t->nprobes].vaddr = vaddr;
	t->probes[t->nprobes].offset = off;
	t->probes[t->nprobes].cookie = cookie;
	t->nprobes++;
	return 0;
}

static int go_add_probe(struct go_insp *s, enum go_prog p, uint64_t vaddr)
{
	return go_add_probe_c(s, p, vaddr, 0);
}

/* The RET instructions of a function (decoded from its entry): count, or
 * -1 with the reason recorded. */
static int go_rets(struct go_insp *s, const struct go_sym *y, uint32_t rets[MAX_RETS])
{
	const uint8_t *code = go_elf_bytes(s->elf, y->addr, y->size);
	int n;

	if (!code) {
		go_failf(s, "%s: code not in the file", y->name);
		return -1;
	}
	n = go_x86_ret_sites(code, y->size, rets, MAX_RETS);
	if (n <= 0 || n > MAX_RETS) {
		go_failf(s, n == 0 ? "%s: no return instruction" :
			 n < 0 ? "%s: code could not be decoded" : "%s: too many returns", y->name);
		return -1;
	}
	return n;
}

/* One probe at every RET of the function. */
static int go_add_rets(struct go_insp *s, const struct go_sym *y, enum go_prog p)
{
	uint32_t rets[MAX_RETS];
	int n = go_rets(s, y, rets);

	for (int i = 0; i < n; i++)
		if (go_add_probe(s, p, y->addr + rets[i]))
			return -1;
	return n < 0 ? -1 : 0;
}

/* "No entry" returns: when DWARF places the named arguments (b may be NULL)
 * in stack slots at every RET of the function, one probe per RET with
 * their CFA offsets in the cookie replaces the entry probe: one trap per
 * call instead of two, and a call already under way when the probes are
 * attached is still seen. 1 if added, 0 if DWARF does not allow it (the
 * caller then uses entry + RET), -1 on failure. */
static int go_add_rets_nx(struct go_insp *s, const struct go_sym *y, enum go_prog p,
			  const char *a, const char *b)
{
	uint32_t rets[MAX_RETS];
	int32_t oa[MAX_RETS], ob[MAX_RETS];
	int n = go_rets(s, y, rets);

	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		ob[i] = 0;
		if (go_dwarf_param_mem_at(s->dw, y->name, a, y->addr + rets[i], &oa[i]) ||
		    (b && go_dwarf_param_mem_at(s->dw, y->name, b, y->addr + rets[i], &ob[i])))
			return 0;
	}
	for (int i = 0; i < n; i++)
		if (go_add_probe_c(s, p, y->addr + rets[i], GO_COOKIE(oa[i], ob[i])))
			return -1;
	return 1;
}

/* --- features ------------------------------------------------------------------ */

/* Run a feature builder; on failure drop the probes it added and keep its
 * reason in t->why (the first feature reason only). */
static void go_feature(struct go_insp *s, int (*fn)(struct go_insp *), uint32_t bit,
		       const char *label)
{
	size_t np = s->t->nprobes;
	char tmp[GO_WHY_LEN];

	s->fail[0] = 0;
	if (fn(s) == 0) {
		s->t->cfg.features |= bit;
		return;
	}
	s->t->nprobes = np;
	if (!s->fail[0])
		return; /* not applicable (e.g. no crypto/tls in this program) */
	if (!s->t->why[0]) {
		snprintf(tmp, sizeof(tmp), "%s off: %s", label, s->fail);
		memcpy(s->t->why, tmp, sizeof(tmp));
	}
}

static int go_feat_goroutines(struct go_insp *s)
{
	static const int exec_g[] = { GO_R_EXEC_G };
	static const int parent[] = { GO_R_NEWPROC_PARENT };
	static const int newg[] = { GO_R_NEWPROC_G };
	const struct go_sym *ex = go_need_func(s, S_EXECUTE);
	const struct go_sym *np = go_need_func(s, S_NEWPROC1);

	if (!ex || !np || go_need_regs(s, sym_names[S_EXECUTE], "gp", 0, 1, exec_g) ||
	    go_need_regs(s, sym_names[S_NEWPROC1], "callergp", 0, 1, parent) ||
	    go_need_regs(s, sym_names[S_NEWPROC1], NULL, 1, 1, newg))
		return -1;
	if (go_add_probe(s, GO_P_EXECUTE, ex->addr))
		return -1;
	switch (go_add_rets_nx(s, np, GO_P_NEWPROC_RET_NX, "callergp", NULL)) {
	case 1:
		return 0;
	case 0:
		return go_add_probe(s, GO_P_NEWPROC_ENTER, np->addr) ||
		       go_add_rets(s, np, GO_P_NEWPROC_RET) ? -1 : 0;
	default:
		return -1;
	}
}

static int go_feat_goexit(struct go_insp *s)
{
	static const int g[] = { GO_R_EXIT_G };
	const struct go_sym *ge = go_need_func(s, S_GOEXIT0);

	if (!(s->t->cfg.features & GO_F_GOROUTINES) || !ge ||
	    go_need_regs(s, sym_names[S_GOEXIT0], "gp", 0, 1, g))
		return -1;
	return go_add_probe(s, GO_P_GOEXIT, ge->addr);
}

/* The socket behind a tls.Conn: offsets, and the *net.TCPConn type's
 * address read from the (net.Conn, *net.TCPConn) itab. */
static int go_tls_layout(struct go_insp *s)
{
	struct go_cfg *c = &s->t->cfg;
	uint16_t a, b, pfd, sys;
	uint32_t sz, uo, uz;

	if (go_need_field(s, "crypto/tls.Conn", "conn", 16, &c->tls_conn_off, NULL) ||
	    go_need_field(s, "runtime.itab", "_type", 8, &c->itab_type_off, NULL) ||
	    go_need_field(s, "net.TCPConn", "conn", 0, &a, NULL) ||
	    go_need_field(s, "net.conn", "fd", 8, &b, NULL) ||
	    go_need_field(s, "net.netFD", "pfd", 0, &pfd, NULL) ||
	    go_need_field(s, "internal/poll.FD", "Sysfd", 48, &sys, &sz))
		return -1;
	c->tcp_fd_off = (uint16_t)(a + b);
	c->sysfd_off = (uint16_t)(pfd + sys);
	c->sysfd_size = (uint8_t)sz;
	if (!s->syms[S_ITAB_TCP].addr) {
		go_failf(s, "no (net.Conn, *net.TCPConn) itab in the symbol table");
		return -1;
	}
	c->type_tcp = go_elf_read_ptr(s->elf, s->syms[S_ITAB_TCP].addr + c->itab_type_off);
	if (!c->type_tcp) {
		go_failf(s, "the *net.TCPConn itab has no type");
		return -1;
	}
	/* Unix sockets: optional, same path through their own conn field. */
	if (s->syms[S_ITAB_UNIX].addr && go_dwarf_field(s->dw, "net.UnixConn", "conn", &uo, &uz) == 0 &&
	    uz == 8) {
		c->unix_fd_off = (uint16_t)(uo + b);
		c->type_unix = go_elf_read_ptr(s->elf, s->syms[S_ITAB_UNIX].addr + c->itab_type_off);
	}
	return 0;
}

static int go_feat_tls(struct go_insp *s)
{
	/* b []byte arrives as data, len, cap; cap is not needed. */
	static const int rd[] = { GO_R_READ_CONN }, rb[] = { GO_R_READ_BUF, GO_R_READ_CAP, -1 };
	static const int rn[] = { GO_R_READ_N };
	static const int wc[] = { GO_R_WRITE_CONN }, wb[] = { GO_R_WRITE_BUF, GO_R_WRITE_LEN, -1 };
	static const int wn[] = { GO_R_WRITE_N };
	const struct go_sym *r, *w;

	if (!s->syms[S_TLS_READ].addr && !s->syms[S_TLS_WRITE].addr)
		return -1; /* the program does not use crypto/tls: nothing to say */
	r = go_need_func(s, S_TLS_READ);
	w = go_need_func(s, S_TLS_WRITE);
	if (!r || !w || go_tls_layout(s))
		return -1;
	if (go_need_regs(s, sym_names[S_TLS_READ], "c", 0, 1, rd) ||
	    go_need_regs(s, sym_names[S_TLS_READ], "b", 0, 3, rb) ||
	    go_need_regs(s, sym_names[S_TLS_READ], NULL, 1, 1, rn) ||
	    go_need_regs(s, sym_names[S_TLS_WRITE], "c", 0, 1, wc) ||
	    go_need_regs(s, sym_names[S_TLS_WRITE], "b", 0, 3, wb) ||
	    go_need_regs(s, sym_names[S_TLS_WRITE], NULL, 1, 1, wn))
		return -1;
	switch (go_add_rets_nx(s, r, GO_P_TLS_READ_RET_NX, "c", "b")) {
	case 1:
		break;
	case 0:
		if (go_add_probe(s, GO_P_TLS_READ_ENTER, r->addr) || go_add_rets(s, r, GO_P_TLS_READ_RET))
			return -1;
		break;
	default:
		return -1;
	}
	/* go1.19 does not keep Write's receiver to its returns: entry + RET. */
	switch (go_add_rets_nx(s, w, GO_P_TLS_WRITE_RET_NX, "c", "b")) {
	case 1:
		return 0;
	case 0:
		return go_add_probe(s, GO_P_TLS_WRITE_ENTER, w->addr) ||
		       go_add_rets(s, w, GO_P_TLS_WRITE_RET) ? -1 : 0;
	default:
		return -1;
	}
}

static int go_feat_http_client(struct go_insp *s)
{
	static const int tr[] = { GO_R_RT_TREQ }, rq[] = { GO_R_RW_REQ };
	const struct go_sym *rt, *rw;

	if (!s->syms[S_RT].addr && !s->syms[S_RW].addr)
		return -1; /* no net/http client in this program */
	if (!(s->t->cfg.features & GO_F_GOROUTINES)) {
		go_failf(s, "needs goroutine tracking");
		return -1;
	}
	rt = go_need_func(s, S_RT);
	rw = go_need_func(s, S_RW);
	if (!rt || !rw ||
	    go_need_field(s, "net/http.transportRequest", "Request", 8, &s->t->cfg.treq_req_off, NULL) ||
	    go_need_regs(s, sym_names[S_RT], "req", 0, 1, tr) ||
	    go_need_regs(s, sym_names[S_RW], "r", 0, 1, rq))
		return -1;
	if (go_add_probe(s, GO_P_HTTP_ROUNDTRIP, rt->addr) ||
	    go_add_probe(s, GO_P_HTTP_WRITE_ENTER, rw->addr))
		return -1;
	return 0;
}

static int go_feat_http_bgread(struct go_insp *s)
{
	const struct go_sym *bg;

	if (!s->syms[S_BGREAD].addr)
		return -1; /* no net/http server */
	if (!(s->t->cfg.features & GO_F_GOROUTINES)) {
		go_failf(s, "needs goroutine tracking");
		return -1;
	}
	bg = go_need_func(s, S_BGREAD);
	return bg ? go_add_probe(s, GO_P_HTTP_BGREAD, bg->addr) : -1;
}

/* --- the whole binary -------------------------------------------------------------- */

/* Can this binary be instrumented at all? Sets t->why when not. */
static int go_preconditions(struct go_insp *s)
{
	struct go_target *t = s->t;
	int major = 0, minor = 0;
	uint16_t goid;

	if (go_elf_machine(s->elf) != EM_X86_64) {
		snprintf(t->why, sizeof(t->why), "%s for machine %u: only x86-64 is supported",
			 t->version[0] ? t->version : "Go", go_elf_machine(s->elf));
		return -1;
	}
	if (go_elf_version_num(s->elf, &major, &minor)) {
		snprintf(t->why, sizeof(t->why), "Go version unknown (no build information)");
		return -1;
	}
	if (major == 1 && minor < 17) {
		snprintf(t->why, sizeof(t->why),
			 "%s passes arguments on the stack (the register ABI came with go1.17): not supported",
			 t->version);
		return -1;
	}
	if (!go_elf_has_symtab(s->elf) || !go_elf_has_dwarf(s->elf)) {
		snprintf(t->why, sizeof(t->why),
			 "%s binary is stripped (%s): struct offsets unknown",
			 t->version, !go_elf_has_symtab(s->elf) ? "no symbol table or DWARF, built with -ldflags=-s?"
								 : "no DWARF, built with -ldflags=-w?");
		return -1;
	}
	s->dw = go_dwarf_open(go_elf_handle(s->elf));
	if (!s->dw) {
		snprintf(t->why, sizeof(t->why), "%s: DWARF unreadable", t->version);
		return -1;
	}
	{
		const char *names[S_COUNT + sizeof(dwarf_types) / sizeof(dwarf_types[0])];
		size_t n = 0;

		for (int i = 0; i < S_ITAB_TCP; i++)
			names[n++] = sym_names[i];
		for (size_t i = 0; i < sizeof(dwarf_types) / sizeof(dwarf_types[0]); i++)
			names[n++] = dwarf_types[i];
		go_dwarf_index(s->dw, names, n);
	}
	go_elf_find_syms(s->elf, s->syms, S_COUNT);
	s->fail[0] = 0;
	if (go_need_field(s, "runtime.g", "goid", 8, &goid, NULL)) {
		snprintf(t->why, sizeof(t->why), "%s: %s", t->version, s->fail);
		return -1;
	}
	t->cfg.goid_off = goid;
	return 0;
}

static int go_inspect_elf(struct go_elf *elf, const char *err, struct go_target *t);

int go_inspect(const char *path, struct go_target *t)
{
	char err[GO_WHY_LEN] = "";

	return go_inspect_elf(go_elf_open(path, err, sizeof(err)), err, t);
}

int go_inspect_mem(const void *image, size_t len, struct go_target *t)
{
	char err[GO_WHY_LEN] = "";

	return go_inspect_elf(go_elf_open_mem(image, len, err, sizeof(err)), err, t);
}

/* Takes elf over (closes it). */
static int go_inspect_elf(struct go_elf *elf, const char *err, struct go_target *t)
{
	struct go_insp s = { .t = t, .elf = elf };
	int rc = -1;

	memset(t, 0, sizeof(*t));
	memset(t->cfg.reg, 0xff, sizeof(t->cfg.reg));
	t->cfg.cap = GO_MAX_PAYLOAD;
	for (int i = 0; i < S_COUNT; i++)
		s.syms[i].name = sym_names[i];
	if (!s.elf) {
		snprintf(t->why, sizeof(t->why), "%s", err);
		return -1;
	}
	t->is_go = go_elf_is_go(s.elf);
	snprintf(t->version, sizeof(t->version), "%s", go_elf_version(s.elf));
	t->pie = go_elf_is_pie(s.elf);
	t->base = go_elf_base(s.elf);
	if (!t->is_go) {
		snprintf(t->why, sizeof(t->why), "not a Go executable");
		goto out;
	}
	if (go_preconditions(&s))
		goto out;
	go_feature(&s, go_feat_goroutines, GO_F_GOROUTINES, "goroutine tracking");
	go_feature(&s, go_feat_goexit, GO_F_GOEXIT, "goroutine exits");
	go_feature(&s, go_feat_tls, GO_F_TLS, "crypto/tls");
	go_feature(&s, go_feat_http_client, GO_F_HTTP_CLIENT, "net/http client context");
	go_feature(&s, go_feat_http_bgread, GO_F_HTTP_BGREAD, "net/http background read");
	t->ok = (t->cfg.features & (GO_F_TLS | GO_F_GOROUTINES)) != 0;
	if (!t->ok && !t->why[0])
		snprintf(t->why, sizeof(t->why), "%s: nothing to instrument", t->version);
	rc = t->ok ? 0 : -1;
out:
	go_dwarf_close(s.dw);
	go_elf_close(s.elf);
	return rc;
}
