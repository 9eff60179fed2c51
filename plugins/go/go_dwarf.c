/*
 * go_dwarf.c - struct field offsets and argument registers from a Go
 * binary's DWARF, with libdw (elfutils).
 *
 * Why libdw: Go compresses its DWARF sections (zlib, SHF_COMPRESSED or the
 * older .zdebug_ names), and a function's parameters need location lists;
 * libdw handles both, is what Debian ships (libdw-dev), and is the same
 * project as the libelf the core already uses.
 *
 * The one idea: one pass over the top-level DIEs of every compilation unit
 * remembers where the few named types and functions the plugin asks for
 * are; everything else is a walk from those DIEs. Registers are assigned
 * from the parameters' DWARF types by Go's register ABI (integer words in
 * RAX, RBX, RCX, RDI, RSI, R8..R11; a value that does not fit whole goes on
 * the stack), and where the compiler also wrote a location list at the
 * function's entry, the two must agree.
 */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "go_dwarf.h"

#define GO_MAX_TYPE_DEPTH 8
#define GO_MAX_FLOAT_REGS 15

struct go_dwarf_entry {
	char *name;
	Dwarf_Off type_off;  /* a struct type of that name, 0: none */
	Dwarf_Off func_off;  /* a subprogram with code, 0: none */
};

struct go_dwarf {
	Dwarf *dbg;
	struct go_dwarf_entry *ents;
	size_t n;
};

/* x86-64 DWARF numbering: 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp,
 * 7 rsp, 8..15 r8..r15. */
uint8_t go_dwarf_reg_to_go(unsigned r)
{
	switch (r) {
	case 0: return GO_REG_AX;
	case 3: return GO_REG_BX;
	case 2: return GO_REG_CX;
	case 5: return GO_REG_DI;
	case 4: return GO_REG_SI;
	case 8: return GO_REG_R8;
	case 9: return GO_REG_R9;
	case 10: return GO_REG_R10;
	case 11: return GO_REG_R11;
	default: return GO_REG_NONE;
	}
}

struct go_dwarf *go_dwarf_open(void *elf)
{
	struct go_dwarf *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->dbg = dwarf_begin_elf((Elf *)elf, DWARF_C_READ, NULL);
	if (!d->dbg) {
		free(d);
		return NULL;
	}
	return d;
}

void go_dwarf_close(struct go_dwarf *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->ents[i].name);
	free(d->ents);
	dwarf_end(d->dbg);
	free(d);
}

static const char *go_die_name(Dwarf_Die *die)
{
	Dwarf_Attribute a;

	if (!dwarf_attr_integrate(die, DW_AT_name, &a))
		return NULL;
	return dwarf_formstring(&a);
}

static struct go_dwarf_entry *go_entry(struct go_dwarf *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->ents[i].name, name))
			return &d->ents[i];
	return NULL;
}

static void go_note_die(struct go_dwarf *d, Dwarf_Die *die)
{
	int tag = dwarf_tag(die);
	struct go_dwarf_entry *e;
	const char *name;
	Dwarf_Addr lo;

	if (tag != DW_TAG_structure_type && tag != DW_TAG_subprogram)
		return;
	name = go_die_name(die);
	if (!name || !(e = go_entry(d, name)))
		return;
	if (tag == DW_TAG_structure_type && !e->type_off && !dwarf_hasattr(die, DW_AT_declaration))
		e->type_off = dwarf_dieoffset(die);
	if (tag == DW_TAG_subprogram && !e->func_off && dwarf_lowpc(die, &lo) == 0)
		e->func_off = dwarf_dieoffset(die);
}

size_t go_dwarf_index(struct go_dwarf *d, const char *const *names, size_t n)
{
	Dwarf_Off off = 0, next;
	size_t hsize, found = 0;

	d->ents = calloc(n ? n : 1, sizeof(*d->ents));
	if (!d->ents)
		return 0;
	for (size_t i = 0; i < n; i++) {
		d->ents[d->n].name = strdup(names[i]);
		if (d->ents[d->n].name)
			d->n++;
	}
	while (dwarf_nextcu(d->dbg, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu, die;

		if (dwarf_offdie(d->dbg, off + hsize, &cu) && dwarf_child(&cu, &die) == 0) {
			do
				go_note_die(d, &die);
			while (dwarf_siblingof(&die, &die) == 0);
		}
		off = next;
	}
	for (size_t i = 0; i < d->n; i++)
		found += d->ents[i].type_off || d->ents[i].func_off;
	return found;
}

static int go_type_of(Dwarf_Die *die, Dwarf_Die *type)
{
	Dwarf_Attribute a;

	if (!dwarf_attr_integrate(die, DW_AT_type, &a) || !dwarf_formref_die(&a, type))
		return -1;
	return 0;
}

static int go_type_size(Dwarf_Die *type, uint32_t *size)
{
	Dwarf_Word w;
	int tag = dwarf_tag(type);

	if (dwarf_aggregate_size(type, &w) == 0) {
		*size = (uint32_t)w;
		return 0;
	}
	if (tag == DW_TAG_pointer_type) {
		*size = 8;
		return 0;
	}
	return -1;
}

int go_dwarf_field(struct go_dwarf *d, const char *type, const char *field, uint32_t *off,
		   uint32_t *size)
{
	struct go_dwarf_entry *e = go_entry(d, type);
	Dwarf_Die st, m;

	if (!e || !e->type_off || !dwarf_offdie(d->dbg, e->type_off, &st) ||
	    dwarf_child(&st, &m) != 0)
		return -1;
	do {
		Dwarf_Attribute a;
		Dwarf_Word w;
		Dwarf_Die t;
		const char *name;

		if (dwarf_tag(&m) != DW_TAG_member || !(name = dwarf_diename(&m)) ||
		    strcmp(name, field))
			continue;
		if (!dwarf_attr(&m, DW_AT_data_member_location, &a) || dwarf_formudata(&a, &w))
			return -1;
		*off = (uint32_t)w;
		if (go_type_of(&m, &t) || go_type_size(&t, size))
			return -1;
		return 0;
	} while (dwarf_siblingof(&m, &m) == 0);
	return -1;
}

/* --- register assignment (Go internal ABI, integer and float classes) ----- */

struct go_abi {
	int ints, floats;          /* registers taken so far */
	uint8_t regs[GO_MAX_PARAM_REGS];
	int nregs;                 /* integer registers of the current value */
	int fail;
};

static void go_abi_int(struct go_abi *s)
{
	if (s->ints >= GO_NREG_INT) {
		s->fail = 1;
		return;
	}
	if (s->nregs < GO_MAX_PARAM_REGS)
		s->regs[s->nregs] = (uint8_t)s->ints;
	s->nregs++;
	s->ints++;
}

static void go_abi_float(struct go_abi *s)
{
	if (s->floats >= GO_MAX_FLOAT_REGS)
		s->fail = 1;
	else
		s->floats++;
}

static void go_abi_assign(struct go_abi *s, Dwarf_Die *t, int depth);

static void go_abi_struct(struct go_abi *s, Dwarf_Die *t, int depth)
{
	Dwarf_Die m, mt;

	if (dwarf_child(t, &m) != 0)
		return;
	do {
		if (dwarf_tag(&m) != DW_TAG_member)
			continue;
		if (go_type_of(&m, &mt)) {
			s->fail = 1;
			return;
		}
		go_abi_assign(s, &mt, depth + 1);
	} while (!s->fail && dwarf_siblingof(&m, &m) == 0);
}

static void go_abi_array(struct go_abi *s, Dwarf_Die *t, int depth)
{
	Dwarf_Die sub, et;
	Dwarf_Attribute a;
	Dwarf_Word count = 0;

	if (dwarf_child(t, &sub) == 0 && dwarf_tag(&sub) == DW_TAG_subrange_type &&
	    dwarf_attr(&sub, DW_AT_count, &a))
		dwarf_formudata(&a, &count);
	else
		s->fail = 1;
	if (s->fail || count == 0)
		return;
	if (count > 1 || go_type_of(t, &et)) {
		s->fail = 1; /* arrays longer than 1 always go on the stack */
		return;
	}
	go_abi_assign(s, &et, depth + 1);
}

static void go_abi_assign(struct go_abi *s, Dwarf_Die *t, int depth)
{
	Dwarf_Attribute a;
	Dwarf_Word enc = 0;
	uint32_t size = 0;
	Dwarf_Die u;

	if (depth > GO_MAX_TYPE_DEPTH) {
		s->fail = 1;
		return;
	}
	switch (dwarf_tag(t)) {
	case DW_TAG_typedef:
		if (go_type_of(t, &u))
			s->fail = 1;
		else
			go_abi_assign(s, &u, depth + 1);
		return;
	case DW_TAG_pointer_type:
	case DW_TAG_subroutine_type:
		go_abi_int(s);
		return;
	case DW_TAG_structure_type:
		go_abi_struct(s, t, depth);
		return;
	case DW_TAG_array_type:
		go_abi_array(s, t, depth);
		return;
	case DW_TAG_base_type:
		if (go_type_size(t, &size) || size == 0) {
			s->fail = size != 0;
			return;
		}
		if (dwarf_attr(t, DW_AT_encoding, &a))
			dwarf_formudata(&a, &enc);
		if (enc == DW_ATE_float) {
			go_abi_float(s);
		} else if (enc == DW_ATE_complex_float) {
			go_abi_float(s);
			go_abi_float(s);
		} else if (size <= 8) {
			go_abi_int(s);
		} else {
			s->fail = 1;
		}
		return;
	default:
		s->fail = 1; /* unknown kind: do not guess */
		return;
	}
}

/* Registers from the location list at the function's entry: a sequence of
 * "register [piece n]" operations. -1 when there is none or it is not all
 * registers. */
static int go_loc_regs(Dwarf_Die *p, Dwarf_Addr entry, uint8_t regs[GO_MAX_PARAM_REGS])
{
	Dwarf_Attribute a;
	Dwarf_Op *ops;
	size_t nops;
	int n = 0;

	if (!dwarf_attr(p, DW_AT_location, &a) ||
	    dwarf_getlocation_addr(&a, entry, &ops, &nops, 1) != 1 || nops == 0)
		return -1;
	for (size_t i = 0; i < nops; i++) {
		unsigned atom = ops[i].atom, r;

		if (atom == DW_OP_piece)
			continue;
		if (atom >= DW_OP_reg0 && atom <= DW_OP_reg31)
			r = atom - DW_OP_reg0;
		else if (atom == DW_OP_regx)
			r = (unsigned)ops[i].number;
		else
			return -1;
		if (n >= GO_MAX_PARAM_REGS || go_dwarf_reg_to_go(r) == GO_REG_NONE)
			return -1;
		regs[n++] = go_dwarf_reg_to_go(r);
	}
	return n;
}

int go_dwarf_params(struct go_dwarf *d, const char *func, struct go_param *out, size_t max)
{
	struct go_dwarf_entry *e = go_entry(d, func);
	struct go_abi in = { 0 }, res = { 0 };
	Dwarf_Die f, p, t;
	Dwarf_Addr entry;
	size_t n = 0;
	int seen_output_names = 0;

	if (!e || !e->func_off || !dwarf_offdie(d->dbg, e->func_off, &f) ||
	    dwarf_lowpc(&f, &entry) || dwarf_child(&f, &p) != 0)
		return -1;
	do {
		struct go_abi *s, save;
		struct go_param *q;
		Dwarf_Attribute a;
		const char *name;
		bool out_flag = false;

		if (dwarf_tag(&p) != DW_TAG_formal_parameter)
			continue;
		if (dwarf_attr_integrate(&p, DW_AT_variable_parameter, &a))
			dwarf_formflag(&a, &out_flag);
		name = go_die_name(&p);
		/* Go 1.19 lists some results twice; a result name seen before
		 * is the same result. */
		if (out_flag && name) {
			int dup = 0;

			for (size_t k = 0; k < n; k++)
				dup |= out[k].output && !strcmp(out[k].name, name);
			if (dup)
				continue;
			seen_output_names++;
		}
		if (n >= max)
			break;
		q = &out[n++];
		memset(q, 0, sizeof(*q));
		snprintf(q->name, sizeof(q->name), "%s", name ? name : "");
		q->output = out_flag;
		s = out_flag ? &res : &in;
		save = *s;
		s->nregs = 0;
		if (go_type_of(&p, &t))
			s->fail = 1;
		else
			go_abi_assign(s, &t, 0);
		if (s->fail) {
			/* On the stack; the register counts are as before it. */
			*s = save;
			q->nregs = 0;
		} else {
			q->nregs = s->nregs > GO_MAX_PARAM_REGS ? 0 : s->nregs;
			memcpy(q->regs, s->regs, sizeof(q->regs));
		}
		s->nregs = 0;
		q->loc_nregs = out_flag ? -1 : go_loc_regs(&p, entry, q->loc_regs);
	} while (dwarf_siblingof(&p, &p) == 0);
	(void)seen_output_names;
	return (int)n;
}

int go_dwarf_param_regs(struct go_dwarf *d, const char *func, const char *param, int output,
			int *nregs, uint8_t regs[GO_MAX_PARAM_REGS])
{
	struct go_param ps[16];
	int n = go_dwarf_params(d, func, ps, 16);

	for (int i = 0; i < n; i++) {
		const struct go_param *q = &ps[i];

		if (q->output != !!output || (param && strcmp(q->name, param)))
			continue;
		if (q->nregs == 0)
			return -1;
		if (q->loc_nregs >= 0 &&
		    (q->loc_nregs != q->nregs || memcmp(q->loc_regs, q->regs, (size_t)q->nregs)))
			return -1;
		*nregs = q->nregs;
		memcpy(regs, q->regs, GO_MAX_PARAM_REGS);
		return 0;
	}
	return -1;
}

/* Is the function's frame base the CFA (what Go's compiler always says)?
 * Go writes it as a one-byte block, which libdw's dwarf_getlocation does
 * not take for this attribute: read the block. */
static int go_frame_base_is_cfa(Dwarf_Die *f)
{
	Dwarf_Attribute a;
	Dwarf_Block b;

	if (!dwarf_attr(f, DW_AT_frame_base, &a) || dwarf_formblock(&a, &b))
		return 0;
	return b.length == 1 && b.data[0] == DW_OP_call_frame_cfa;
}

int go_dwarf_param_mem_at(struct go_dwarf *d, const char *func, const char *param,
			  uint64_t pc, int32_t *cfa_off)
{
	struct go_dwarf_entry *e = go_entry(d, func);
	Dwarf_Die f, p;

	if (!e || !e->func_off || !dwarf_offdie(d->dbg, e->func_off, &f) || dwarf_child(&f, &p) != 0)
		return -1;
	do {
		Dwarf_Attribute a;
		Dwarf_Op *ops;
		size_t n;
		const char *name;
		int64_t off;

		if (dwarf_tag(&p) != DW_TAG_formal_parameter || !(name = go_die_name(&p)) ||
		    strcmp(name, param))
			continue;
		if (!dwarf_attr(&p, DW_AT_location, &a) ||
		    dwarf_getlocation_addr(&a, pc, &ops, &n, 1) != 1 || n == 0)
			return -1;
		/* The first piece only: "cfa [+k]" or "fbreg k" (frame base = CFA). */
		if (ops[0].atom == DW_OP_call_frame_cfa) {
			off = 0;
			if (n > 1 && ops[1].atom == DW_OP_plus_uconst)
				off = (int64_t)ops[1].number;
			else if (n > 1 && ops[1].atom != DW_OP_piece)
				return -1;
		} else if (ops[0].atom == DW_OP_fbreg && go_frame_base_is_cfa(&f)) {
			off = (int64_t)ops[0].number;
			if (n > 1 && ops[1].atom != DW_OP_piece)
				return -1;
		} else {
			return -1;
		}
		if (off < -4096 || off > 4096)
			return -1;
		*cfa_off = (int32_t)off;
		return 0;
	} while (dwarf_siblingof(&p, &p) == 0);
	return -1;
}
