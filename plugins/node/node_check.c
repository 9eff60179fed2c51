/*
 * node_check.c - the decision to send SIGUSR1 to a Node.js process, or not.
 *
 * The one idea: SIGUSR1 is only sent when it is certain to reach Node's own
 * handler (which starts the inspector and does nothing else). Node installs
 * that handler at start-up; an application that calls
 * process.on('SIGUSR1') replaces it with libuv's (installed with
 * SA_RESTART), and a native addon may install anything. So the kernel's
 * sigaction for SIGUSR1 is compared with the address of
 * node::inspector::StartIoThreadWakeup when the symbol table gives it, and
 * otherwise accepted only if it points into Node's own code and lacks
 * SA_RESTART. Everything else is refused with its reason.
 */
#include <stdio.h>

#include "node_check.h"

#define BIT(sig) (1ull << ((sig) - 1))

int node_precheck(const struct node_sigmasks *m, uint32_t opts, char *why, size_t cap)
{
	if (opts & NODE_OPT_BAD) {
		snprintf(why, cap, "its command line or NODE_OPTIONS cannot be read whole");
		return -1;
	}
	if (opts & NODE_OPT_INSPECT) {
		snprintf(why, cap, "it was started with --inspect: its inspector is the user's "
				   "debugger and is left alone");
		return -1;
	}
	if (opts & NODE_OPT_NO_SIGUSR1) {
		snprintf(why, cap, "it was started with --disable-sigusr1");
		return -1;
	}
	if (opts & NODE_OPT_PORT_PUBLIC) {
		snprintf(why, cap, "its inspector port is set to a non-loopback address: it is not "
				   "opened");
		return -1;
	}
	if (m->ign & BIT(NODE_SIGUSR1)) {
		snprintf(why, cap, "it ignores SIGUSR1: its inspector cannot be started");
		return -1;
	}
	if (!(m->cgt & BIT(NODE_SIGUSR1))) {
		snprintf(why, cap, "it does not catch SIGUSR1 (a Node.js without its inspector?): "
				   "the signal would terminate it");
		return -1;
	}
	return 0;
}

int node_version_check(const struct node_image *im, char *why, size_t cap)
{
	if (!im->major || (im->major >= NODE_MAJOR_MIN && im->major <= NODE_MAJOR_MAX))
		return 0;
	snprintf(why, cap, "Node.js v%s is not a version this plugin knows (%d..%d): its inspector "
			   "is not opened",
		 im->version, NODE_MAJOR_MIN, NODE_MAJOR_MAX);
	return -1;
}

enum node_sig_verdict node_sig_verdict(const struct node_sig *s, const struct node_image *im,
				       uint64_t bias, char *why, size_t cap)
{
	uint64_t h = s->handler;

	if (h == 0) {
		snprintf(why, cap, "SIGUSR1 has its default action: the signal would terminate it");
		return NODE_SIG_REFUSE;
	}
	if (h == 1) {
		snprintf(why, cap, "it ignores SIGUSR1: its inspector cannot be started");
		return NODE_SIG_REFUSE;
	}
	if (im->usr1_handler) {
		if (h == im->usr1_handler + bias)
			return NODE_SIG_OWN_SYMBOL;
		snprintf(why, cap, "the application handles SIGUSR1 itself (handler 0x%llx, Node's "
				   "is 0x%llx): the signal is not sent",
			 (unsigned long long)h, (unsigned long long)(im->usr1_handler + bias));
		return NODE_SIG_REFUSE;
	}
	if (h < bias || !node_image_in_text(im, h - bias)) {
		snprintf(why, cap, "SIGUSR1 is handled outside Node's code (handler 0x%llx, a native "
				   "addon?): the signal is not sent",
			 (unsigned long long)h);
		return NODE_SIG_REFUSE;
	}
	if (s->flags & NODE_SA_RESTART) {
		snprintf(why, cap, "the application handles SIGUSR1 itself (a libuv handler, "
				   "process.on('SIGUSR1')): the signal is not sent");
		return NODE_SIG_REFUSE;
	}
	return NODE_SIG_OWN_FLAGS;
}
