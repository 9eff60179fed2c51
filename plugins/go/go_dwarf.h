/*
 * go_dwarf.h - what the Go compiler wrote about its own layouts (libdw):
 * struct field offsets and the registers a function receives its
 * arguments in.
 *
 * The one idea: the plugin knows names (runtime.g.goid, the receiver of
 * crypto/tls.(*Conn).Read), never numbers; the numbers come from the
 * binary's DWARF, so one build of the plugin reads every Go release that
 * keeps those names.
 */
#ifndef SONDE_GO_DWARF_H
#define SONDE_GO_DWARF_H

#include <stddef.h>
#include <stdint.h>

struct go_dwarf;

/* Register ABI (Go >= 1.17, amd64): integer arguments and results go in
 * RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11, in that order; these are the
 * indexes the plugin stores (GO_REG_*). */
enum go_reg {
	GO_REG_AX = 0, GO_REG_BX, GO_REG_CX, GO_REG_DI, GO_REG_SI,
	GO_REG_R8, GO_REG_R9, GO_REG_R10, GO_REG_R11,
	GO_NREG_INT,
	GO_REG_NONE = 0xff,
};

#define GO_MAX_PARAM_REGS 4

/* One parameter of a function: the integer registers its words arrive in
 * (a pointer: 1, a slice: 3, ...). */
struct go_param {
	char name[32];
	int output;                      /* a result, not an argument */
	int nregs;                       /* registers used (0: on the stack) */
	uint8_t regs[GO_MAX_PARAM_REGS]; /* enum go_reg */
	int loc_nregs;                   /* the same read from the location list at
	                                    entry (-1: none given) */
	uint8_t loc_regs[GO_MAX_PARAM_REGS];
};

/* elf: the libelf handle (go_elf_handle). NULL if the file has no DWARF. */
struct go_dwarf *go_dwarf_open(void *elf);
void go_dwarf_close(struct go_dwarf *d);

/* Index the top-level types and functions named in names[0..n) (one pass
 * over every compilation unit). Later lookups only find these. Returns how
 * many were found. */
size_t go_dwarf_index(struct go_dwarf *d, const char *const *names, size_t n);

/* Offset and size of a field of a struct type: ("runtime.g", "goid").
 * 0, or -1 if the type or the field is unknown. */
int go_dwarf_field(struct go_dwarf *d, const char *type, const char *field, uint32_t *off,
                   uint32_t *size);

/* The parameters of a function in declaration order (arguments, then
 * results), registers assigned by the ABI from their DWARF types. Returns
 * the count (at most max), or -1 if the function is unknown. */
int go_dwarf_params(struct go_dwarf *d, const char *func, struct go_param *out, size_t max);

/* The registers of one named parameter (argument or result): *nregs and
 * regs[]. If DWARF also gives a location at entry it must agree (it is the
 * compiler's own word). 0, or -1 unknown / on the stack / disagreeing. */
int go_dwarf_param_regs(struct go_dwarf *d, const char *func, const char *param, int output,
                        int *nregs, uint8_t regs[GO_MAX_PARAM_REGS]);

/* Where an argument's first word is at one instruction of its function,
 * per the compiler's location list: in memory at the canonical frame
 * address plus cfa_off (a spill slot; the CFA is the stack pointer before
 * the call pushed the return address, so at a RET it is RSP + 8). 0, or -1
 * when DWARF gives no such location there (a register, nothing, or an
 * expression this reader does not follow). */
int go_dwarf_param_mem_at(struct go_dwarf *d, const char *func, const char *param,
                          uint64_t pc, int32_t *cfa_off);

/* DWARF register number (x86-64) -> enum go_reg, or GO_REG_NONE. */
uint8_t go_dwarf_reg_to_go(unsigned dwreg);

#endif /* SONDE_GO_DWARF_H */
