/*
 * go_x86.h - x86-64 instruction lengths, and the return instructions of a
 * function (where the plugin plants its "return" uprobes).
 *
 * The one idea: a RET byte (0xC3) is only a return if an instruction starts
 * there, so the function's code is walked instruction by instruction from
 * its entry with a length decoder; the walk must land exactly on the
 * function's end (or on INT3 padding), which checks the decoder on every
 * function it is used on.
 */
#ifndef SONDE_GO_X86_H
#define SONDE_GO_X86_H

#include <stddef.h>
#include <stdint.h>

/* Length of the instruction at p (at most n bytes readable), 1..15, or -1
 * for an invalid or unknown encoding or one that runs past n. */
int go_x86_insn_len(const uint8_t *p, size_t n);

/* 1 if the instruction at p (of length len) is a near return (C3, C2 iw,
 * with any prefixes: F3 C3 included). */
int go_x86_is_ret(const uint8_t *p, int len);

/* Offsets (from code[0]) of every near return in a function of n bytes.
 * Returns the count (may exceed max: only max are stored), or -1 if the
 * walk hit an undecodable instruction or did not end exactly at n (INT3
 * padding after the last instruction is accepted). */
int go_x86_ret_sites(const uint8_t *code, size_t n, uint32_t *out, size_t max);

#endif /* SONDE_GO_X86_H */
