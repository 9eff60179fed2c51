/*
 * go_inspect.h - from a Go executable to what the plugin attaches: the
 * probe sites (function entries and every RET), the per-process
 * configuration for the BPF programs, and why something is not possible.
 *
 * The one idea: each feature (TLS plaintext, goroutine tracking, the two
 * net/http helpers) needs a fixed list of names (functions, struct fields,
 * parameters); a feature is on only if every name it needs was found and
 * checked, so a binary is instrumented as far as it is known and never
 * with a guessed layout.
 */
#ifndef SONDE_GO_INSPECT_H
#define SONDE_GO_INSPECT_H

#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

#include "go_rec.h"

#define GO_MAX_PROBES 96
#define GO_WHY_LEN 200

/* Programs of go.bpf.c, in the order of their names in go_prog_names. */
enum go_prog {
	GO_P_TLS_WRITE_ENTER = 0,
	GO_P_TLS_WRITE_RET,
	GO_P_TLS_READ_ENTER,
	GO_P_TLS_READ_RET,
	GO_P_EXECUTE,
	GO_P_NEWPROC_ENTER,
	GO_P_NEWPROC_RET,
	GO_P_GOEXIT,
	GO_P_HTTP_ROUNDTRIP,
	GO_P_HTTP_WRITE_ENTER,
	GO_P_HTTP_BGREAD,
	GO_P_TLS_READ_RET_NX,  /* Read's RET, arguments from the stack (no entry) */
	GO_P_TLS_WRITE_RET_NX, /* the same for Write (where DWARF allows) */
	GO_P_NEWPROC_RET_NX,   /* newproc1's RET, callergp from the stack */
	GO_P_COUNT,
};

extern const char *const go_prog_names[GO_P_COUNT];

/* The feature (GO_F_*) a program serves. */
uint32_t go_prog_feature(enum go_prog p);

struct go_probe {
	enum go_prog prog;
	uint64_t vaddr;     /* link-time address of the instruction */
	uint64_t offset;    /* file offset (what the uprobe is attached at) */
	uint64_t cookie;    /* GO_COOKIE(...) for the _NX programs, else 0 */
};

/* Everything learned about one executable. */
struct go_target {
	int is_go;                  /* a Go executable at all */
	int ok;                     /* something can be instrumented */
	char why[GO_WHY_LEN];       /* !ok: the reason; ok: what is off and why ("" if nothing) */
	char version[32];           /* "go1.19.8" or "" */
	int pie;
	uint64_t base;              /* link-time address of the first mapping */
	struct go_cfg cfg;          /* type addresses link-time (add the load bias) */
	size_t nprobes;
	struct go_probe probes[GO_MAX_PROBES];
};

/* Read path (an executable) and fill t. Returns 0 when t->ok (some
 * feature is on), -1 otherwise (t->why says why; t->is_go says whether it
 * is Go at all). Never attaches anything. */
int go_inspect(const char *path, struct go_target *t);
/* The same for an executable's image in memory (the fuzz harness). */
int go_inspect_mem(const void *image, size_t len, struct go_target *t);

/* Names of the features in cfg.features, for log lines ("tls goroutines"). */
void go_features_str(uint32_t features, char *out, size_t len);

#endif /* SONDE_GO_INSPECT_H */
