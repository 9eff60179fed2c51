/*
 * node_check.h - may the plugin send SIGUSR1 to this Node.js process?
 * Pure decisions from what /proc and the kernel reported (tests feed them
 * made-up facts).
 */
#ifndef SONDE_NODE_CHECK_H
#define SONDE_NODE_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "node_elf.h"
#include "node_proc.h"
#include "node_rec.h"

#define NODE_SIGUSR1 10
#define NODE_SA_RESTART 0x10000000ull

enum node_sig_verdict {
	NODE_SIG_REFUSE = 0,   /* not Node's own handler, or none: never send */
	NODE_SIG_OWN_SYMBOL,   /* the handler is Node's StartIoThreadWakeup (symbol) */
	NODE_SIG_OWN_FLAGS,    /* inside Node's code, without libuv's SA_RESTART */
};

/* From /proc/PID/status and Node's options: 0 when nothing forbids the
 * signal, else -1 with the reason in why. */
int node_precheck(const struct node_sigmasks *m, uint32_t opts, char *why, size_t cap);

/* Node.js majors the script knows (node_ctx.js checks the same range). */
#define NODE_MAJOR_MIN 18
#define NODE_MAJOR_MAX 24

/* From the image's version: 0 when known and supported, or unknown (the
 * script checks again in the process before it installs anything); -1
 * with the reason when it is a version outside the range. */
int node_version_check(const struct node_image *im, char *why, size_t cap);

/* From the kernel's sigaction (the task iterator) and the image that holds
 * Node's code, loaded at bias. */
enum node_sig_verdict node_sig_verdict(const struct node_sig *s, const struct node_image *im,
                                       uint64_t bias, char *why, size_t cap);

#endif /* SONDE_NODE_CHECK_H */
