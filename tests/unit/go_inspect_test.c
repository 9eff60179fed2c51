/*
 * go_inspect_test.c - the Go plugin's reading of Go executables: build
 * information, symbols, DWARF offsets and argument registers, RET sites,
 * and the verdict for stripped, DWARF-less, PIE and non-Go files.
 *
 * The executables are built now by Debian's go from tests/live/go_peers
 * (go_test_util.h). What the plugin reads is checked against independent
 * sources: `go env GOVERSION` for the version, Go's own type checker
 * (go/types, tests/live/go_peers/offsets) for struct offsets, the
 * compiler's location lists for argument registers, objdump for RET
 * instructions.
 */
#define _GNU_SOURCE
#include <check.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "go_dwarf.h"
#include "go_elf.h"
#include "go_inspect.h"
#include "go_test_util.h"

static const char *bin(const char *name)
{
	const char *p = gt_binary(name, "");

	ck_assert_msg(p != NULL, "%s was not built (see the build output above)", name);
	return p;
}

/* --- version and build information ------------------------------------------ */

START_TEST(version_strings)
{
	int a, b;

	ck_assert_int_eq(go_version_parse("go1.19.8", &a, &b), 0);
	ck_assert_int_eq(a, 1);
	ck_assert_int_eq(b, 19);
	ck_assert_int_eq(go_version_parse("go1.21rc2", &a, &b), 0);
	ck_assert_int_eq(b, 21);
	ck_assert_int_eq(go_version_parse("devel go1.23-4f5c2d X:boringcrypto", &a, &b), 0);
	ck_assert_int_eq(b, 23);
	ck_assert_int_eq(go_version_parse("go1.17", &a, &b), 0);
	ck_assert_int_eq(b, 17);
	ck_assert_int_eq(go_version_parse("", &a, &b), -1);
	ck_assert_int_eq(go_version_parse("go", &a, &b), -1);
	ck_assert_int_eq(go_version_parse("go1", &a, &b), -1);
	ck_assert_int_eq(go_version_parse("go1.", &a, &b), -1);
	ck_assert_int_eq(go_version_parse("gox.y", &a, &b), -1);
	ck_assert_int_eq(go_version_parse(NULL, &a, &b), -1);
}
END_TEST

/* A Go >= 1.18 blob: header, then varint-prefixed version and module info. */
static size_t inline_blob(uint8_t *b, const char *v, size_t vlen_claimed)
{
	memset(b, 0, 32);
	memcpy(b, "\xff Go buildinf:", 14);
	b[14] = 8;
	b[15] = 2;
	b[32] = (uint8_t)vlen_claimed;
	memcpy(b + 33, v, strlen(v));
	b[33 + strlen(v)] = 0;
	return 33 + strlen(v) + 1;
}

START_TEST(buildinfo_blobs)
{
	uint8_t b[128];
	char out[32];
	size_t n = inline_blob(b, "go1.20.3", 8);

	ck_assert_int_eq(go_buildinfo_version(NULL, b, n, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "go1.20.3");
	/* Cut anywhere before the end of the version: refused, never read past. */
	for (size_t cut = 0; cut < 33 + 8; cut++)
		ck_assert_int_eq(go_buildinfo_version(NULL, b, cut, out, sizeof(out)), -1);
	/* A length that runs past the blob. */
	n = inline_blob(b, "go1.20.3", 100);
	ck_assert_int_eq(go_buildinfo_version(NULL, b, n, out, sizeof(out)), -1);
	/* An endless varint. */
	n = inline_blob(b, "", 0);
	memset(b + 32, 0xff, 20);
	ck_assert_int_eq(go_buildinfo_version(NULL, b, 52, out, sizeof(out)), -1);
	/* Not the magic. */
	n = inline_blob(b, "go1.20.3", 8);
	b[1] = 'X';
	ck_assert_int_eq(go_buildinfo_version(NULL, b, n, out, sizeof(out)), -1);
	/* Non-printable bytes are not copied as they are. */
	n = inline_blob(b, "go1\n\x01", 5);
	ck_assert_int_eq(go_buildinfo_version(NULL, b, n, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "go1??");
	/* The older pointer form needs the file to follow the pointers. */
	n = inline_blob(b, "go1.20.3", 8);
	b[15] = 0;
	ck_assert_int_eq(go_buildinfo_version(NULL, b, n, out, sizeof(out)), -1);
	/* A long version is cut to the output buffer. */
	n = inline_blob(b, "go1.20.3-some-very-long-suffix-here", 35);
	ck_assert_int_eq(go_buildinfo_version(NULL, b, n, out, 8), 0);
	ck_assert_str_eq(out, "go1.20.");
}
END_TEST

START_TEST(elf_of_a_go_binary)
{
	char err[256];
	struct go_elf *g = go_elf_open(bin("tlsserver"), err, sizeof(err));
	struct go_sym s[2] = { { .name = "crypto/tls.(*Conn).Read" },
			       { .name = "go.itab.*net.TCPConn,net.Conn" } };
	int a, b;

	ck_assert_msg(g, "%s", err);
	ck_assert(go_elf_is_go(g));
	ck_assert_str_eq(go_elf_version(g), gt_goversion);
	ck_assert_int_eq(go_elf_version_num(g, &a, &b), 0);
	ck_assert_uint_eq(go_elf_machine(g), EM_X86_64);
	ck_assert(!go_elf_is_pie(g));
	ck_assert(go_elf_has_symtab(g));
	ck_assert(go_elf_has_dwarf(g));
	ck_assert_uint_eq(go_elf_find_syms(g, s, 2), 2);
	ck_assert_uint_gt(s[0].size, 100);
	ck_assert_uint_gt(go_elf_file_offset(g, s[0].addr), 0);
	/* Data is not code: no uprobe offset for an itab. */
	ck_assert_uint_eq(go_elf_file_offset(g, s[1].addr), 0);
	ck_assert_ptr_nonnull(go_elf_bytes(g, s[1].addr, 16));
	ck_assert_ptr_null(go_elf_bytes(g, 0x10, 16));
	go_elf_close(g);
}
END_TEST

START_TEST(elf_refuses_what_is_not_elf)
{
	char err[256], path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/not-elf.txt", GO_TEST_WORK);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("#!/bin/sh\necho hello\n", f);
	fclose(f);
	ck_assert_ptr_null(go_elf_open(path, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "not an ELF"));
	ck_assert_ptr_null(go_elf_open("/nonexistent/x", err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "cannot open"));
}
END_TEST

/* --- DWARF ---------------------------------------------------------------------------- */

/* Every "pkg.Type.field offset size" line of the go/types oracle. */
START_TEST(dwarf_offsets_agree_with_go_types)
{
	char err[256], path[600], line[256];
	struct go_elf *g = go_elf_open(bin("tlsserver"), err, sizeof(err));
	const char *types[16];
	char names[16][160], fields[16][32];
	uint32_t offs[16], sizes[16];
	struct go_dwarf *d;
	size_t n = 0;
	FILE *f;

	ck_assert_msg(g, "%s", err);
	snprintf(path, sizeof(path), "%s/offsets.txt", GO_TEST_WORK);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "the go/types oracle did not run");
	while (n < 16 && fgets(line, sizeof(line), f)) {
		char full[160];
		char *dot;

		ck_assert_int_eq(sscanf(line, "%159s %u %u", full, &offs[n], &sizes[n]), 3);
		dot = strrchr(full, '.');
		ck_assert_ptr_nonnull(dot);
		*dot = 0;
		snprintf(names[n], sizeof(names[n]), "%s", full);
		snprintf(fields[n], sizeof(fields[n]), "%s", dot + 1);
		types[n] = names[n];
		n++;
	}
	fclose(f);
	ck_assert_uint_eq(n, 8);
	d = go_dwarf_open(go_elf_handle(g));
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(go_dwarf_index(d, types, n), n);
	for (size_t i = 0; i < n; i++) {
		uint32_t o, z;

		ck_assert_msg(go_dwarf_field(d, types[i], fields[i], &o, &z) == 0, "%s.%s", types[i],
			      fields[i]);
		ck_assert_msg(o == offs[i], "%s.%s: DWARF %u, go/types %u", types[i], fields[i], o,
			      offs[i]);
		/* go/types leaves out a struct's trailing padding; words agree. */
		if (sizes[i] <= 16)
			ck_assert_msg(z == sizes[i], "%s.%s size: DWARF %u, go/types %u", types[i],
				      fields[i], z, sizes[i]);
	}
	ck_assert_int_eq(go_dwarf_field(d, "runtime.g", "nosuchfield", &offs[0], &sizes[0]), -1);
	ck_assert_int_eq(go_dwarf_field(d, "no.Such", "x", &offs[0], &sizes[0]), -1);
	go_dwarf_close(d);
	go_elf_close(g);
}
END_TEST

/* Registers by the ABI from DWARF types == the compiler's own location
 * list at entry, for every argument that has one; and the ABI's first
 * registers where the spec fixes them. */
START_TEST(argument_registers)
{
	static const char *const funcs[] = {
		"crypto/tls.(*Conn).Read", "crypto/tls.(*Conn).Write", "runtime.execute",
		"runtime.newproc1", "runtime.goexit0", "net/http.(*persistConn).roundTrip",
		"net/http.(*Request).write", "net/http.(*connReader).backgroundRead",
		"net/http.(*Transport).roundTrip", "crypto/tls.(*Conn).readRecordOrCCS",
		"net.(*conn).Read", "runtime.gopark",
	};
	const size_t nf = sizeof(funcs) / sizeof(funcs[0]);
	char err[256];
	struct go_elf *g = go_elf_open(bin("tlsserver"), err, sizeof(err));
	struct go_dwarf *d = go_dwarf_open(go_elf_handle(g));
	int compared = 0, nregs;
	uint8_t regs[GO_MAX_PARAM_REGS];

	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(go_dwarf_index(d, funcs, nf), nf);
	for (size_t i = 0; i < nf; i++) {
		struct go_param ps[16];
		int n = go_dwarf_params(d, funcs[i], ps, 16);

		ck_assert_int_gt(n, 0);
		for (int k = 0; k < n; k++) {
			if (ps[k].output || ps[k].loc_nregs < 0)
				continue;
			ck_assert_msg(ps[k].loc_nregs == ps[k].nregs &&
					      !memcmp(ps[k].loc_regs, ps[k].regs, (size_t)ps[k].nregs),
				      "%s %s: ABI and location list disagree", funcs[i], ps[k].name);
			compared++;
		}
	}
	ck_assert_int_ge(compared, 15);
	/* (*Conn).Read(c, b []byte) (int, error): c in RAX, b in RBX, RCX, RDI,
	 * n in RAX at return. */
	ck_assert_int_eq(go_dwarf_param_regs(d, funcs[0], "c", 0, &nregs, regs), 0);
	ck_assert_int_eq(nregs, 1);
	ck_assert_int_eq(regs[0], GO_REG_AX);
	ck_assert_int_eq(go_dwarf_param_regs(d, funcs[0], "b", 0, &nregs, regs), 0);
	ck_assert_int_eq(nregs, 3);
	ck_assert_int_eq(regs[0], GO_REG_BX);
	ck_assert_int_eq(regs[1], GO_REG_CX);
	ck_assert_int_eq(regs[2], GO_REG_DI);
	ck_assert_int_eq(go_dwarf_param_regs(d, funcs[0], NULL, 1, &nregs, regs), 0);
	ck_assert_int_eq(regs[0], GO_REG_AX);
	ck_assert_int_eq(go_dwarf_param_regs(d, funcs[3], "callergp", 0, &nregs, regs), 0);
	ck_assert_int_eq(regs[0], GO_REG_BX);
	ck_assert_int_eq(go_dwarf_param_regs(d, funcs[0], "nosuch", 0, &nregs, regs), -1);
	ck_assert_int_eq(go_dwarf_param_regs(d, "no.such", "c", 0, &nregs, regs), -1);
	go_dwarf_close(d);
	go_elf_close(g);
}
END_TEST

/* --- the verdicts ------------------------------------------------------------------------- */

/* objdump's RETs in [lo, hi). */
static size_t objdump_rets(const char *path, uint64_t lo, uint64_t hi, uint64_t *out, size_t max)
{
	char cmd[1024], line[512];
	size_t n = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "objdump -d --no-show-raw-insn --start-address=0x%lx --stop-address=0x%lx '%s'",
		 (unsigned long)lo, (unsigned long)hi, path);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t'), *end;
		uint64_t a = strtoull(line, &end, 16);

		if (tab && end != line && *end == ':' && !strncmp(tab + 1, "ret", 3) && n < max)
			out[n++] = a;
	}
	pclose(f);
	return n;
}

/* Every probe of t: entries at their function's first byte, returns at
 * exactly objdump's RETs of that function (with an entry probe, or as
 * "no entry" returns with their stack offsets in the cookie). */
static void check_probes(const char *path, const struct go_target *t)
{
	static const struct {
		const char *sym;
		enum go_prog entry, ret, ret_nx;
	} fn[] = {
		{ "crypto/tls.(*Conn).Read", GO_P_TLS_READ_ENTER, GO_P_TLS_READ_RET, GO_P_TLS_READ_RET_NX },
		{ "crypto/tls.(*Conn).Write", GO_P_TLS_WRITE_ENTER, GO_P_TLS_WRITE_RET, GO_P_TLS_WRITE_RET_NX },
		{ "runtime.newproc1", GO_P_NEWPROC_ENTER, GO_P_NEWPROC_RET, GO_P_NEWPROC_RET_NX },
		{ "net/http.(*Request).write", GO_P_HTTP_WRITE_ENTER, GO_P_COUNT, GO_P_COUNT },
		{ "runtime.execute", GO_P_EXECUTE, GO_P_COUNT, GO_P_COUNT },
		{ "runtime.goexit0", GO_P_GOEXIT, GO_P_COUNT, GO_P_COUNT },
		{ "net/http.(*persistConn).roundTrip", GO_P_HTTP_ROUNDTRIP, GO_P_COUNT, GO_P_COUNT },
		{ "net/http.(*connReader).backgroundRead", GO_P_HTTP_BGREAD, GO_P_COUNT, GO_P_COUNT },
	};
	char err[256];
	struct go_elf *g = go_elf_open(path, err, sizeof(err));
	size_t total = 0;

	for (size_t i = 0; i < sizeof(fn) / sizeof(fn[0]); i++) {
		struct go_sym s = { .name = fn[i].sym };
		uint64_t want[64];
		size_t nw, nentry = 0, nret = 0, nnx = 0;

		ck_assert_uint_eq(go_elf_find_syms(g, &s, 1), 1);
		nw = fn[i].ret == GO_P_COUNT ? 0 : objdump_rets(path, s.addr, s.addr + s.size, want, 64);
		for (size_t k = 0; k < t->nprobes; k++) {
			const struct go_probe *p = &t->probes[k];

			ck_assert_uint_eq(p->offset, go_elf_file_offset(g, p->vaddr));
			if (p->prog == fn[i].entry) {
				ck_assert_uint_eq(p->vaddr, s.addr);
				ck_assert_uint_eq(p->cookie, 0);
				nentry++;
			}
			if (fn[i].ret != GO_P_COUNT && (p->prog == fn[i].ret || p->prog == fn[i].ret_nx)) {
				ck_assert_msg(nret < nw && p->vaddr == want[nret],
					      "%s: RET probe %zu at %lx, objdump says %lx", fn[i].sym, nret,
					      (unsigned long)p->vaddr, nret < nw ? (unsigned long)want[nret] : 0ul);
				nnx += p->prog == fn[i].ret_nx;
				nret++;
			}
		}
		ck_assert_uint_eq(nret, nw);
		/* Either every RET reads its arguments from the stack and there is
		 * no entry probe, or there is one entry and plain RETs. */
		ck_assert_msg((nnx == nw && nentry == 0) || (nnx == 0 && nentry == 1), "%s: %zu entries, %zu of %zu RETs without entry",
			      fn[i].sym, nentry, nnx, nw);
		if (fn[i].ret != GO_P_COUNT)
			ck_assert_uint_gt(nw, 0);
		total += nentry + nret;
	}
	ck_assert_uint_eq(total, t->nprobes);
	go_elf_close(g);
}

/* The modes go1.19's DWARF allows: Read's receiver and b stay in their
 * spill slots (the ABI lays them out like stack arguments from the CFA:
 * c at +0, b's data at +8) to every RET, and so does newproc1's callergp;
 * Write's receiver does not, so Write keeps its entry probe. */
static void check_nx_modes(const struct go_target *t)
{
	size_t read_nx = 0, write_entry = 0, newproc_nx = 0;

	for (size_t k = 0; k < t->nprobes; k++) {
		const struct go_probe *p = &t->probes[k];

		if (p->prog == GO_P_TLS_READ_RET_NX) {
			ck_assert_int_eq(GO_COOKIE_A(p->cookie), 0);
			ck_assert_int_eq(GO_COOKIE_B(p->cookie), 8);
			read_nx++;
		}
		write_entry += p->prog == GO_P_TLS_WRITE_ENTER;
		newproc_nx += p->prog == GO_P_NEWPROC_RET_NX;
	}
	ck_assert_uint_gt(read_nx, 0);
	ck_assert_uint_eq(write_entry, 1);
	ck_assert_uint_gt(newproc_nx, 0);
}

START_TEST(unstripped_binary_is_instrumented_fully)
{
	static struct go_target t;
	const char *path = bin("tlsserver");

	ck_assert_int_eq(go_inspect(path, &t), 0);
	ck_assert(t.is_go && t.ok);
	ck_assert_str_eq(t.why, "");
	ck_assert_str_eq(t.version, gt_goversion);
	ck_assert_uint_eq(t.cfg.features, GO_F_TLS | GO_F_GOROUTINES | GO_F_GOEXIT |
						  GO_F_HTTP_CLIENT | GO_F_HTTP_BGREAD);
	ck_assert_uint_ne(t.cfg.type_tcp, 0);
	ck_assert_uint_ne(t.cfg.type_tcp, t.cfg.type_unix);
	ck_assert(t.cfg.sysfd_size == 8);
	for (int i = 0; i < GO_R_COUNT; i++)
		ck_assert_msg(t.cfg.reg[i] < GO_NREG_INT, "register slot %d unset", i);
	check_probes(path, &t);
	if (!strncmp(gt_goversion, "go1.19", 6))
		check_nx_modes(&t);
}
END_TEST

START_TEST(pie_binary_is_instrumented_fully)
{
	static struct go_target t, plain;
	char err[256];
	const char *path = bin("tlsserver_pie");
	struct go_elf *g;

	ck_assert_int_eq(go_inspect(path, &t), 0);
	ck_assert(t.pie);
	ck_assert_uint_eq(t.cfg.features, GO_F_TLS | GO_F_GOROUTINES | GO_F_GOEXIT |
						  GO_F_HTTP_CLIENT | GO_F_HTTP_BGREAD);
	/* The type address came from a relocation (the file holds 0 there) and
	 * points into the file's image. */
	g = go_elf_open(path, err, sizeof(err));
	ck_assert_ptr_nonnull(go_elf_bytes(g, t.cfg.type_tcp, 8));
	go_elf_close(g);
	ck_assert_int_eq(go_inspect(bin("tlsserver"), &plain), 0);
	ck_assert_uint_eq(t.cfg.goid_off, plain.cfg.goid_off);
	check_probes(path, &t);
}
END_TEST

START_TEST(stripped_binary_is_refused_with_the_reason)
{
	static struct go_target t;

	ck_assert_int_eq(go_inspect(bin("tlsserver_stripped"), &t), -1);
	ck_assert(t.is_go && !t.ok);
	ck_assert_str_eq(t.version, gt_goversion);
	ck_assert_msg(strstr(t.why, "stripped") && strstr(t.why, "-s"), "%s", t.why);
	ck_assert_uint_eq(t.nprobes, 0);
	ck_assert_int_eq(go_inspect(bin("tlsserver_nodwarf"), &t), -1);
	ck_assert(t.is_go && !t.ok);
	ck_assert_msg(strstr(t.why, "no DWARF") && strstr(t.why, "-w"), "%s", t.why);
}
END_TEST

START_TEST(program_without_tls_or_http_gets_goroutines_only)
{
	static struct go_target t;

	ck_assert_int_eq(go_inspect(bin("plain"), &t), 0);
	ck_assert_uint_eq(t.cfg.features, GO_F_GOROUTINES | GO_F_GOEXIT);
	ck_assert_str_eq(t.why, ""); /* nothing is missing: it has no TLS to see */
	for (size_t i = 0; i < t.nprobes; i++)
		ck_assert(t.probes[i].prog == GO_P_EXECUTE || t.probes[i].prog == GO_P_NEWPROC_ENTER ||
			  t.probes[i].prog == GO_P_NEWPROC_RET || t.probes[i].prog == GO_P_NEWPROC_RET_NX ||
			  t.probes[i].prog == GO_P_GOEXIT);
}
END_TEST

START_TEST(other_executables_are_not_go)
{
	static struct go_target t;
	char self[600];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	ck_assert_int_gt(n, 0);
	self[n] = 0;
	ck_assert_int_eq(go_inspect(self, &t), -1);
	ck_assert(!t.is_go);
	ck_assert_str_eq(t.why, "not a Go executable");
	ck_assert_int_eq(go_inspect("/nonexistent", &t), -1);
	ck_assert(!t.is_go);
}
END_TEST

/* Truncated copies of a Go binary: whatever survives, no crash, and never
 * a probe outside the file. */
START_TEST(truncated_binaries)
{
	static struct go_target t;
	static const double cuts[] = { 0.001, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99 };
	char cut[600], cmd[1400];
	const char *path = bin("tlsserver");
	long size;
	FILE *f = fopen(path, "rb");

	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fclose(f);
	snprintf(cut, sizeof(cut), "%s/truncated", GO_TEST_WORK);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		snprintf(cmd, sizeof(cmd), "head -c %ld '%s' > '%s'", (long)(size * cuts[i]), path, cut);
		ck_assert_int_eq(system(cmd), 0);
		go_inspect(cut, &t);
		for (size_t k = 0; k < t.nprobes; k++)
			ck_assert_uint_lt(t.probes[k].offset, (uint64_t)(size * cuts[i]));
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("go_inspect");
	TCase *tc = tcase_create("inspect");
	SRunner *sr;
	int failed;

	gt_setup();
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, version_strings);
	tcase_add_test(tc, buildinfo_blobs);
	tcase_add_test(tc, elf_of_a_go_binary);
	tcase_add_test(tc, elf_refuses_what_is_not_elf);
	tcase_add_test(tc, dwarf_offsets_agree_with_go_types);
	tcase_add_test(tc, argument_registers);
	tcase_add_test(tc, unstripped_binary_is_instrumented_fully);
	tcase_add_test(tc, pie_binary_is_instrumented_fully);
	tcase_add_test(tc, stripped_binary_is_refused_with_the_reason);
	tcase_add_test(tc, program_without_tls_or_http_gets_goroutines_only);
	tcase_add_test(tc, other_executables_are_not_go);
	tcase_add_test(tc, truncated_binaries);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
