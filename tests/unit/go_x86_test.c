/*
 * go_x86_test.c - the Go plugin's x86-64 length decoder and RET finder.
 *
 * Three kinds of evidence: encodings assembled by GNU as (one per
 * instruction family the compilers emit: legacy, 0F/0F38/0F3A maps, VEX,
 * EVEX, every immediate and displacement form), cut at every length; code
 * built so that RET bytes hide inside other instructions; and whole
 * binaries (a Go program built now with Debian's go, libc, libcrypto)
 * walked function by function and compared with objdump instruction by
 * instruction.
 */
#define _GNU_SOURCE
#include <check.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "go_elf.h"
#include "go_x86.h"
#include "go_test_util.h"

struct vec {
	const char *bytes;
	int len;
	const char *what; /* objdump -M intel */
};

/* Assembled with `as` (binutils 2.40) and listed by objdump. */
static const struct vec vecs[] = {
	{ "\xc3", 1, "ret" },
	{ "\xc2\x08\x00", 3, "ret 0x8" },
	{ "\xf3\xc3", 2, "repz ret" },
	{ "\x48\x8b\x44\x24\x08", 5, "mov rax,QWORD PTR [rsp+0x8]" },
	{ "\x49\x3b\x66\x10", 4, "cmp rsp,QWORD PTR [r14+0x10]" },
	{ "\x0f\x86\xfa\x00\x00\x00", 6, "jbe 0x10f" },
	{ "\x48\xb8\x88\x77\x66\x55\x44\x33\x22\x11", 10, "movabs rax,0x1122334455667788" },
	{ "\xb8\xc3\xc3\xc3\xc3", 5, "mov eax,0xc3c3c3c3" },
	{ "\x66\x0f\x1f\x04\x00", 5, "nop WORD PTR [rax+rax*1]" },
	{ "\xc5\xf8\x77", 3, "vzeroupper" },
	{ "\xc5\xfe\x6f\x06", 4, "vmovdqu ymm0,YMMWORD PTR [rsi]" },
	{ "\xc4\xe2\x6d\x00\xcb", 5, "vpshufb ymm1,ymm2,ymm3" },
	{ "\xc4\xe3\x69\x0f\xcb\x04", 6, "vpalignr xmm1,xmm2,xmm3,0x4" },
	{ "\x62\xf1\xfe\x48\x6f\x07", 6, "vmovdqu64 zmm0,ZMMWORD PTR [rdi]" },
	{ "\x62\xf3\x6d\x48\x25\xcb\x96", 7, "vpternlogd zmm1,zmm2,zmm3,0x96" },
	{ "\xe8\xfb\x0f\x00\x00", 5, "call 0x1048" },
	{ "\xf6\xc1\x01", 3, "test cl,0x1" },
	{ "\xf7\xc1\x00\x00\x01\x00", 6, "test ecx,0x10000" },
	{ "\x66\xf7\xc1\x00\x01", 5, "test cx,0x100" },
	{ "\xa1\x88\x77\x66\x55\x44\x33\x22\x11", 9, "movabs eax,ds:0x1122334455667788" },
	{ "\xc6\x05\x10\x00\x00\x00\x7f", 7, "mov BYTE PTR [rip+0x10],0x7f" },
	{ "\x48\x8d\x05\x34\x12\x00\x00", 7, "lea rax,[rip+0x1234]" },
	{ "\x48\x89\x94\xcc\x80\x00\x00\x00", 8, "mov QWORD PTR [rsp+rcx*8+0x80],rdx" },
	{ "\xc7\x45\xf8\x01\x00\x00\x00", 7, "mov DWORD PTR [rbp-0x8],0x1" },
	{ "\x68\x45\x23\x01\x00", 5, "push 0x12345" },
	{ "\x6a\x01", 2, "push 0x1" },
	{ "\x69\xc1\xe8\x03\x00\x00", 6, "imul eax,ecx,0x3e8" },
	{ "\x6b\xc1\x0a", 3, "imul eax,ecx,0xa" },
	{ "\x48\x83\x04\x24\x01", 5, "add QWORD PTR [rsp],0x1" },
	{ "\x45\x0f\x57\xff", 4, "xorps xmm15,xmm15" },
	{ "\x44\x0f\x11\x7c\x24\x20", 6, "movups XMMWORD PTR [rsp+0x20],xmm15" },
	{ "\x66\x0f\x70\xc1\x1b", 5, "pshufd xmm0,xmm1,0x1b" },
	{ "\x66\x0f\x38\xdc\xc1", 5, "aesenc xmm0,xmm1" },
	{ "\x66\x0f\x3a\x44\xc1\x11", 6, "pclmulhqhqdq xmm0,xmm1" },
	{ "\xf2\x0f\x38\xf0\x06", 5, "crc32 eax,BYTE PTR [rsi]" },
	{ "\xf0\x48\x0f\xb1\x0f", 5, "lock cmpxchg QWORD PTR [rdi],rcx" },
	{ "\x64\x48\x8b\x04\x25\xf8\xff\xff\xff", 9, "mov rax,QWORD PTR fs:0xfffffffffffffff8" },
	{ "\x0f\x05", 2, "syscall" },
	{ "\xcc", 1, "int3" },
	{ "\x0f\x0b", 2, "ud2" },
	{ "\xf3\x0f\x1e\xfa", 4, "endbr64" },
	{ "\x66\x90", 2, "xchg ax,ax" },
	{ "\xf3\x90", 2, "pause" },
	{ "\xc8\x10\x00\x00", 4, "enter 0x10,0x0" },
	{ "\x0f\xc8", 2, "bswap eax" },
	{ "\x0f\xb7\x84\x58\x44\x33\x22\x11", 8, "movzx eax,WORD PTR [rax+rbx*2+0x11223344]" },
	{ "\x48\xc1\xe0\x03", 4, "shl rax,0x3" },
	{ "\x0f\x94\xc0", 3, "sete al" },
	{ "\x48\x0f\x45\xc3", 4, "cmovne rax,rbx" },
	{ "\x0f\x31", 2, "rdtsc" },
	{ "\x0f\xa2", 2, "cpuid" },
	{ "\xeb\x0e", 2, "jmp 0xfd" },
	{ "\xff\xe0", 2, "jmp rax" },
	{ "\xff\x50\x08", 3, "call QWORD PTR [rax+0x8]" },
	{ "\x0f\x38\xf0\x07", 4, "movbe eax,DWORD PTR [rdi]" },
	{ "\x66\xb8\x34\x12", 4, "mov ax,0x1234" },
};

#define NVEC (sizeof(vecs) / sizeof(vecs[0]))

START_TEST(lengths_of_assembled_code)
{
	for (size_t i = 0; i < NVEC; i++) {
		const uint8_t *p = (const uint8_t *)vecs[i].bytes;
		int n = vecs[i].len;

		ck_assert_msg(go_x86_insn_len(p, (size_t)n) == n, "%s: got %d, want %d", vecs[i].what,
			      go_x86_insn_len(p, (size_t)n), n);
		/* Cut anywhere: never a length past what is readable. */
		for (int cut = 0; cut < n; cut++)
			ck_assert_msg(go_x86_insn_len(p, (size_t)cut) == -1, "%s cut at %d", vecs[i].what,
				      cut);
		ck_assert_int_eq(go_x86_is_ret(p, n), strncmp(vecs[i].what, "ret", 3) == 0 ||
							      strncmp(vecs[i].what, "repz ret", 8) == 0);
	}
}
END_TEST

/* All vectors back to back: the walk must find each start. */
START_TEST(walk_of_assembled_code)
{
	uint8_t code[1024];
	size_t n = 0, pos = 0, i = 0;

	for (size_t k = 0; k < NVEC; k++) {
		memcpy(code + n, vecs[k].bytes, (size_t)vecs[k].len);
		n += (size_t)vecs[k].len;
	}
	while (pos < n) {
		int len = go_x86_insn_len(code + pos, n - pos);

		ck_assert_msg(len == vecs[i].len, "%s", vecs[i].what);
		pos += (size_t)len;
		i++;
	}
	ck_assert_uint_eq(i, NVEC);
}
END_TEST

START_TEST(ret_bytes_inside_other_instructions)
{
	/* mov eax, 0xc3c3c3c3; mov byte [rip+0xc3], 0xc3; lea rax,[rip+0xc3c3];
	 * ret 8; nop; ret; int3 padding */
	static const uint8_t code[] = {
		0xb8, 0xc3, 0xc3, 0xc3, 0xc3,
		0xc6, 0x05, 0xc3, 0x00, 0x00, 0x00, 0xc3,
		0x48, 0x8d, 0x05, 0xc3, 0xc3, 0x00, 0x00,
		0xc2, 0x08, 0x00,
		0x90,
		0xc3,
		0xcc, 0xcc, 0xcc,
	};
	uint32_t out[8];

	ck_assert_int_eq(go_x86_ret_sites(code, sizeof(code), out, 8), 2);
	ck_assert_uint_eq(out[0], 19);
	ck_assert_uint_eq(out[1], 23);
	/* Only as many stored as there is room for; the count is still right. */
	ck_assert_int_eq(go_x86_ret_sites(code, sizeof(code), out, 1), 2);
	ck_assert_uint_eq(out[0], 19);
}
END_TEST

START_TEST(undecodable_or_cut_code_is_refused)
{
	static const uint8_t bad[] = { 0x90, 0x06, 0xc3 };          /* push es: invalid */
	static const uint8_t cut[] = { 0x90, 0x48, 0x8b, 0x44, 0x24 }; /* mov cut short */
	static const uint8_t bad_vex[] = { 0xc4, 0xe0, 0x7d, 0x00, 0xc1, 0xc3 }; /* map 0 */
	uint32_t out[4];

	ck_assert_int_eq(go_x86_ret_sites(bad, sizeof(bad), out, 4), -1);
	ck_assert_int_eq(go_x86_ret_sites(cut, sizeof(cut), out, 4), -1);
	ck_assert_int_eq(go_x86_ret_sites(bad_vex, sizeof(bad_vex), out, 4), -1);
	ck_assert_int_eq(go_x86_ret_sites(bad, 0, out, 4), 0);
}
END_TEST

START_TEST(every_byte_string_is_bounded)
{
	uint8_t buf[15];
	unsigned seed = 12345;

	/* Any input: a length in 1..n or -1, never more than offered. */
	for (int i = 0; i < 200000; i++) {
		for (size_t k = 0; k < sizeof(buf); k++) {
			seed = seed * 1103515245u + 12345u;
			buf[k] = (uint8_t)(seed >> 16);
		}
		for (size_t n = 0; n <= sizeof(buf); n += 5) {
			int len = go_x86_insn_len(buf, n);

			ck_assert(len == -1 || (len >= 1 && (size_t)len <= n));
		}
	}
}
END_TEST

/* --- whole binaries against objdump ------------------------------------------- */

struct insn_set {
	uint64_t *a;
	size_t n, cap;
};

static void set_add(struct insn_set *s, uint64_t a)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 65536;
		s->a = realloc(s->a, s->cap * sizeof(*s->a));
		ck_assert_ptr_nonnull(s->a);
	}
	s->a[s->n++] = a;
}

static int u64cmp(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

static int set_has(const struct insn_set *s, uint64_t a)
{
	return s->n && bsearch(&a, s->a, s->n, sizeof(a), u64cmp) != NULL;
}

/* objdump's instruction starts and returns; addresses inside "(bad)"
 * regions (data in .text) are collected too, to skip those functions. */
static void objdump_read(const char *path, struct insn_set *starts, struct insn_set *rets,
			 struct insn_set *bad)
{
	char cmd[1024], line[1024];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "objdump -d --no-show-raw-insn '%s' 2>/dev/null", path);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t'), *end;
		uint64_t a = strtoull(line, &end, 16);

		if (!tab || end == line || *end != ':')
			continue;
		set_add(starts, a);
		tab++;
		if (!strncmp(tab, "ret", 3) || !strncmp(tab, "repz ret", 8) || !strncmp(tab, "bnd ret", 7))
			set_add(rets, a);
		/* Data decoded as code: "(bad)", ".byte", a lone REX prefix. */
		if (strstr(tab, "(bad)") || !strncmp(tab, ".byte", 5) || !strncmp(tab, "rex", 3))
			set_add(bad, a);
	}
	pclose(f);
	qsort(starts->a, starts->n, sizeof(uint64_t), u64cmp);
	qsort(rets->a, rets->n, sizeof(uint64_t), u64cmp);
	if (bad->n)
		qsort(bad->a, bad->n, sizeof(uint64_t), u64cmp);
}

static int range_has_bad(const struct insn_set *bad, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i < bad->n; i++)
		if (bad->a[i] >= lo && bad->a[i] < hi)
			return 1;
	return 0;
}

/* Walk every defined function of path's symbol tables; compare. Returns
 * the number of functions compared. */
static size_t compare_with_objdump(const char *path)
{
	struct insn_set starts = { 0 }, rets = { 0 }, bad = { 0 };
	char err[256];
	struct go_elf *g = go_elf_open(path, err, sizeof(err));
	Elf *e;
	Elf_Scn *scn = NULL;
	size_t nfunc = 0, ninsn = 0, nret = 0;

	ck_assert_msg(g != NULL, "%s", err);
	objdump_read(path, &starts, &rets, &bad);
	ck_assert_uint_gt(starts.n, 1000);
	e = go_elf_handle(g);
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) ||
		    !sh.sh_entsize || !(d = elf_getdata(scn, NULL)))
			continue;
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym s;
			const uint8_t *code;
			uint32_t out[2048];
			size_t pos = 0;
			int nr, k = 0;

			if (!gelf_getsym(d, (int)i, &s) || GELF_ST_TYPE(s.st_info) != STT_FUNC ||
			    !s.st_size || s.st_shndx == SHN_UNDEF ||
			    !(code = go_elf_bytes(g, s.st_value, s.st_size)) ||
			    !set_has(&starts, s.st_value) ||
			    range_has_bad(&bad, s.st_value, s.st_value + s.st_size))
				continue;
			nfunc++;
			while (pos < s.st_size) {
				int len = go_x86_insn_len(code + pos, s.st_size - pos);

				ck_assert_msg(len > 0, "%s: %s+%zx undecodable", path,
					      elf_strptr(e, sh.sh_link, s.st_name), pos);
				ck_assert_msg(set_has(&starts, s.st_value + pos),
					      "%s: %s+%zx is no instruction start for objdump", path,
					      elf_strptr(e, sh.sh_link, s.st_name), pos);
				ninsn++;
				pos += (size_t)len;
			}
			ck_assert_uint_eq(pos, s.st_size);
			nr = go_x86_ret_sites(code, s.st_size, out, 2048);
			ck_assert_int_ge(nr, 0);
			/* Same returns as objdump, in this function's range. */
			for (size_t r = 0; r < rets.n; r++) {
				if (rets.a[r] < s.st_value || rets.a[r] >= s.st_value + s.st_size)
					continue;
				ck_assert_msg(k < nr && k < 2048 && s.st_value + out[k] == rets.a[r],
					      "%s: %s: ret at %lx missed", path,
					      elf_strptr(e, sh.sh_link, s.st_name), (unsigned long)rets.a[r]);
				k++;
			}
			ck_assert_int_lt(nr, 2048);
			ck_assert_int_eq(k, nr);
			nret += (size_t)k;
		}
	}
	printf("%s: %zu functions, %zu instructions, %zu returns as objdump has them\n", path,
	       nfunc, ninsn, nret);
	free(starts.a);
	free(rets.a);
	free(bad.a);
	go_elf_close(g);
	return nfunc;
}

START_TEST(go_binary_matches_objdump)
{
	const char *bin = gt_binary("tlsserver", "");

	if (!gt_have("objdump") || !bin)
		return; /* gt_main already said which is missing */
	ck_assert_uint_gt(compare_with_objdump(bin), 3000);
}
END_TEST

START_TEST(c_libraries_match_objdump)
{
	static const char *const libs[] = {
		"/usr/lib/x86_64-linux-gnu/libc.so.6",
		"/usr/lib/x86_64-linux-gnu/libcrypto.so.3", /* AVX2 and AVX-512 */
	};
	size_t done = 0;

	if (!gt_have("objdump"))
		return;
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		if (access(libs[i], R_OK))
			continue;
		ck_assert_uint_gt(compare_with_objdump(libs[i]), 1000);
		done++;
	}
	ck_assert_uint_gt(done, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("go_x86");
	TCase *tc = tcase_create("decoder");
	SRunner *sr;
	int failed;

	gt_setup();
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, lengths_of_assembled_code);
	tcase_add_test(tc, walk_of_assembled_code);
	tcase_add_test(tc, ret_bytes_inside_other_instructions);
	tcase_add_test(tc, undecodable_or_cut_code_is_refused);
	tcase_add_test(tc, every_byte_string_is_bounded);
	tcase_add_test(tc, go_binary_matches_objdump);
	tcase_add_test(tc, c_libraries_match_objdump);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
