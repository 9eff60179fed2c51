/*
 * go_x86.c - an x86-64 instruction length decoder, enough to walk compiled
 * code (Go's, and the C compilers'), and the RET sites of a function.
 *
 * Why our own: a uretprobe replaces the return address on the stack, and Go
 * moves goroutine stacks (copystack), after which the runtime meets the
 * probe's trampoline address while unwinding and aborts. So the plugin
 * plants plain uprobes on each return instruction instead, and to find them
 * it must know where instructions start. Debian has no capstone here and
 * libopcodes has no stable API or installed header; the lengths of x86-64
 * encodings need only a few tables, which are below.
 *
 * The one idea: an instruction is [legacy prefixes][REX][opcode: 1 byte,
 * 0F xx, 0F 38 xx, 0F 3A xx, or a VEX/EVEX-introduced opcode][ModRM [SIB]
 * [displacement]][immediate]. The opcode says whether a ModRM byte and
 * which immediate follow; ModRM says whether SIB and which displacement do.
 * Nothing is decoded beyond what the length needs.
 */
#include <string.h>

#include "go_x86.h"

/* Operand flags of an opcode. */
#define F_M 0x01      /* ModRM follows */
#define F_I8 0x02     /* imm8 */
#define F_IZ 0x04     /* imm16 (66 prefix) or imm32 */
#define F_IW 0x08     /* imm16 */
#define F_IV 0x10     /* imm16/32/64 (MOV r, imm: B8+r) */
#define F_REL32 0x20  /* rel32, whatever the operand size */
#define F_MOFFS 0x40  /* moffs64 (moffs32 with 67) */
#define F_GRP3 0x80   /* F6/F7: TEST (reg 0 or 1) has an immediate */
#define F_BAD 0x100   /* invalid in 64-bit mode, or not handled */
#define F_ENTER 0x200 /* imm16 + imm8 */

static unsigned op1(uint8_t op)
{
	if (op < 0x40) {
		unsigned lo = op & 7;

		if (op == 0x0f)
			return F_BAD; /* escapes are handled by the caller */
		if (lo < 4)
			return F_M;
		if (lo == 4)
			return F_I8;
		if (lo == 5)
			return F_IZ;
		return F_BAD; /* push/pop seg, daa/das/aaa/aas; prefixes handled earlier */
	}
	if (op >= 0x50 && op <= 0x5f)
		return 0;
	if (op >= 0x70 && op <= 0x7f)
		return F_I8;
	if (op >= 0x84 && op <= 0x8f)
		return F_M;
	if (op >= 0x90 && op <= 0x99)
		return 0;
	if (op >= 0x9b && op <= 0x9f)
		return 0;
	if (op >= 0xa4 && op <= 0xa7)
		return 0;
	if (op >= 0xaa && op <= 0xaf)
		return 0;
	if (op >= 0xb0 && op <= 0xb7)
		return F_I8;
	if (op >= 0xb8 && op <= 0xbf)
		return F_IV;
	if (op >= 0xd8 && op <= 0xdf)
		return F_M; /* x87 */
	if (op >= 0xe0 && op <= 0xe7)
		return F_I8;
	if (op >= 0xec && op <= 0xef)
		return 0;
	if (op >= 0xf8 && op <= 0xfd)
		return 0;
	switch (op) {
	case 0x63: return F_M;
	case 0x68: return F_IZ;
	case 0x69: return F_M | F_IZ;
	case 0x6a: return F_I8;
	case 0x6b: return F_M | F_I8;
	case 0x6c: case 0x6d: case 0x6e: case 0x6f: return 0;
	case 0x80: return F_M | F_I8;
	case 0x81: return F_M | F_IZ;
	case 0x83: return F_M | F_I8;
	case 0xa0: case 0xa1: case 0xa2: case 0xa3: return F_MOFFS;
	case 0xa8: return F_I8;
	case 0xa9: return F_IZ;
	case 0xc0: case 0xc1: return F_M | F_I8;
	case 0xc2: return F_IW;
	case 0xc3: return 0;
	case 0xc6: return F_M | F_I8;
	case 0xc7: return F_M | F_IZ;
	case 0xc8: return F_ENTER;
	case 0xc9: return 0;
	case 0xca: return F_IW;
	case 0xcb: case 0xcc: return 0;
	case 0xcd: return F_I8;
	case 0xcf: return 0;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: return F_M;
	case 0xd7: return 0;
	case 0xe8: case 0xe9: return F_REL32;
	case 0xeb: return F_I8;
	case 0xf1: case 0xf4: case 0xf5: return 0;
	case 0xf6: return F_M | F_GRP3;
	case 0xf7: return F_M | F_GRP3;
	case 0xfe: case 0xff: return F_M;
	default: return F_BAD;
	}
}

/* The 0F xx map. */
static unsigned op2(uint8_t op)
{
	if (op >= 0x10 && op <= 0x1f)
		return F_M;
	if (op >= 0x40 && op <= 0x6f)
		return F_M;
	if (op >= 0x80 && op <= 0x8f)
		return F_REL32;
	if (op >= 0x90 && op <= 0x9f)
		return F_M;
	if (op >= 0xb0 && op <= 0xb9)
		return F_M;
	if (op >= 0xbb && op <= 0xbf)
		return F_M;
	if (op >= 0xc8 && op <= 0xcf)
		return 0; /* bswap */
	if (op >= 0xd0)
		return F_M;
	switch (op) {
	case 0x00: case 0x01: case 0x02: case 0x03: case 0x0d: return F_M;
	case 0x05: case 0x06: case 0x07: case 0x08: case 0x09: case 0x0b: case 0x0e: return 0;
	case 0x20: case 0x21: case 0x22: case 0x23: return F_M;
	case 0x28: case 0x29: case 0x2a: case 0x2b: case 0x2c: case 0x2d: case 0x2e: case 0x2f:
		return F_M;
	case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35: case 0x37: return 0;
	case 0x70: case 0x71: case 0x72: case 0x73: return F_M | F_I8;
	case 0x74: case 0x75: case 0x76: return F_M;
	case 0x77: return 0;
	case 0x78: case 0x79: case 0x7c: case 0x7d: case 0x7e: case 0x7f: return F_M;
	case 0xa0: case 0xa1: case 0xa2: case 0xa8: case 0xa9: case 0xaa: return 0;
	case 0xa3: case 0xa5: case 0xab: case 0xad: case 0xae: case 0xaf: return F_M;
	case 0xa4: case 0xac: case 0xba: return F_M | F_I8;
	case 0xc0: case 0xc1: case 0xc3: case 0xc7: return F_M;
	case 0xc2: case 0xc4: case 0xc5: case 0xc6: return F_M | F_I8;
	default: return F_BAD;
	}
}

/* Opcode flags in map 1 (0F), 2 (0F 38) or 3 (0F 3A) under VEX/EVEX: always
 * ModRM (vzeroupper/vzeroall excepted), imm8 as in the legacy map. */
static unsigned opvex(int map, uint8_t op)
{
	if (map == 2)
		return F_M;
	if (map == 3)
		return F_M | F_I8;
	if (op == 0x77)
		return 0;
	if ((op >= 0x70 && op <= 0x73) || op == 0xc2 || op == 0xc4 || op == 0xc5 || op == 0xc6)
		return F_M | F_I8;
	return F_M;
}

/* Bytes taken by ModRM, SIB and displacement at p; -1 if past n. */
static int modrm_len(const uint8_t *p, size_t n)
{
	uint8_t m, mod, rm;
	int len = 1;

	if (n < 1)
		return -1;
	m = p[0];
	mod = m >> 6;
	rm = m & 7;
	if (mod == 3)
		return 1;
	if (rm == 4) {
		if (n < 2)
			return -1;
		len++;
		if (mod == 0 && (p[1] & 7) == 5)
			len += 4; /* SIB with no base: disp32 */
	} else if (mod == 0 && rm == 5) {
		len += 4; /* RIP-relative */
	}
	if (mod == 1)
		len += 1;
	else if (mod == 2)
		len += 4;
	return (size_t)len <= n ? len : -1;
}

static int is_legacy_prefix(uint8_t b)
{
	switch (b) {
	case 0xf0: case 0xf2: case 0xf3: case 0x2e: case 0x36: case 0x3e: case 0x26:
	case 0x64: case 0x65: case 0x66: case 0x67:
		return 1;
	default:
		return 0;
	}
}

/* Immediate size for flags f. */
static int imm_len(unsigned f, int opsize16, int rexw, int addr32)
{
	int len = 0;

	if (f & F_I8)
		len += 1;
	if (f & F_IZ)
		len += opsize16 ? 2 : 4;
	if (f & F_IW)
		len += 2;
	if (f & F_IV)
		len += rexw ? 8 : (opsize16 ? 2 : 4);
	if (f & F_REL32)
		len += 4;
	if (f & F_MOFFS)
		len += addr32 ? 4 : 8;
	if (f & F_ENTER)
		len += 3;
	return len;
}

int go_x86_insn_len(const uint8_t *p, size_t n)
{
	size_t i = 0, lim = n < 15 ? n : 15;
	int opsize16 = 0, addr32 = 0, rexw = 0, m, imm;
	unsigned f;
	uint8_t op;

	while (i < lim && is_legacy_prefix(p[i])) {
		if (p[i] == 0x66)
			opsize16 = 1;
		else if (p[i] == 0x67)
			addr32 = 1;
		i++;
	}
	if (i < lim && (p[i] & 0xf0) == 0x40) {
		rexw = (p[i] >> 3) & 1;
		i++;
	}
	if (i >= lim)
		return -1;
	op = p[i++];
	if (op == 0xc4 || op == 0xc5 || op == 0x62) {
		int map;

		if (op == 0xc5) {
			if (i + 1 > lim)
				return -1;
			map = 1;
			i += 1;
		} else if (op == 0xc4) {
			if (i + 2 > lim)
				return -1;
			map = p[i] & 0x1f;
			rexw = (p[i + 1] >> 7) & 1;
			i += 2;
		} else {
			if (i + 3 > lim)
				return -1;
			map = p[i] & 0x07;
			i += 3;
		}
		if (map < 1 || map > 3 || i >= lim)
			return -1;
		op = p[i++];
		f = opvex(map, op);
	} else if (op == 0x0f) {
		if (i >= lim)
			return -1;
		op = p[i++];
		if (op == 0x38 || op == 0x3a) {
			if (i >= lim)
				return -1;
			i++;
			f = op == 0x38 ? F_M : F_M | F_I8;
		} else {
			f = op2(op);
		}
	} else {
		f = op1(op);
	}
	if (f & F_BAD)
		return -1;
	if (f & F_M) {
		m = modrm_len(p + i, lim - i);
		if (m < 0)
			return -1;
		if ((f & F_GRP3) && ((p[i] >> 3) & 7) < 2)
			f |= op == 0xf6 ? F_I8 : F_IZ;
		i += (size_t)m;
	}
	imm = imm_len(f, opsize16 && !rexw, rexw, addr32);
	if (i + (size_t)imm > lim)
		return -1;
	return (int)(i + (size_t)imm);
}

int go_x86_is_ret(const uint8_t *p, int len)
{
	int i = 0;

	while (i < len && (is_legacy_prefix(p[i]) || (p[i] & 0xf0) == 0x40))
		i++;
	if (i >= len)
		return 0;
	return (p[i] == 0xc3 && i + 1 == len) || (p[i] == 0xc2 && i + 3 == len);
}

int go_x86_ret_sites(const uint8_t *code, size_t n, uint32_t *out, size_t max)
{
	size_t pos = 0;
	int count = 0;

	while (pos < n) {
		int len = go_x86_insn_len(code + pos, n - pos);

		if (len < 0) {
			/* Trailing INT3 padding is not part of any instruction stream. */
			size_t k = pos;

			while (k < n && code[k] == 0xcc)
				k++;
			return k == n && pos > 0 ? count : -1;
		}
		if (go_x86_is_ret(code + pos, len)) {
			if ((size_t)count < max)
				out[count] = (uint32_t)pos;
			count++;
		}
		pos += (size_t)len;
	}
	return pos == n ? count : -1;
}
