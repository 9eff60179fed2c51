/*
 * node_inject.h - run a script once in a running Node.js process through
 * its inspector: SIGUSR1 opens it, one WebSocket session evaluates the
 * script, a last evaluation closes it again.
 *
 * A job is a non-blocking state machine: the caller calls node_job_step()
 * often (a timer) until it returns NJ_DONE or NJ_FAILED; nothing blocks.
 * The caller must have checked first that SIGUSR1 is Node's own in this
 * process (node_sig_verdict): node_job_start sends it.
 */
#ifndef SONDE_NODE_INJECT_H
#define SONDE_NODE_INJECT_H

#include <stddef.h>
#include <stdint.h>

#include "node_cdp.h"
#include "node_proc.h"
#include "node_ws.h"

enum node_job_phase {
	NJ_PORT = 0,  /* SIGUSR1 sent: waiting for a new listening socket */
	NJ_LIST,      /* GET /json/list: the session's path */
	NJ_UPGRADE,   /* the WebSocket handshake */
	NJ_EVAL,      /* the script's evaluation */
	NJ_WAIT_REG,  /* waiting for the caller: did the kernel see the registration? */
	NJ_FINISH,    /* the last evaluation: keep or remove, close the inspector */
	NJ_CLOSE,     /* waiting for the inspector's socket to go */
	NJ_DONE,      /* finished; see ok */
	NJ_FAILED,    /* failed; see why */
};

#define NODE_JOB_LISTEN_MAX 128
#define NODE_JOB_PHASE_NS (5000000000ull)   /* each phase: 5 s at most */
#define NODE_JOB_REG_NS (3000000000ull)     /* the registration: 3 s at most */

struct node_job {
	uint32_t pid;
	enum node_job_phase phase;
	uint64_t deadline;           /* of the current phase (caller's clock, ns) */
	char *expr;                  /* the script call (owned) */
	struct node_sock before[NODE_JOB_LISTEN_MAX]; /* listening before SIGUSR1 */
	int nbefore;
	struct node_sock insp;       /* the inspector's listening socket */
	int have_insp;
	int fd;                      /* our connection, -1 */
	int connected;
	uint8_t *rx;                 /* received, not yet consumed */
	size_t rx_len, rx_cap;
	uint8_t *tx;                 /* to send */
	size_t tx_len, tx_off;
	struct node_ws_msg msg;
	char ws_path[160];
	char ws_key[32];
	int registered;              /* -1: not said yet; 0 / 1 (node_job_registered) */
	int session_open;            /* the WebSocket session works: finish can be sent */
	int script_ok;               /* the script answered ok */
	struct node_script_result res;
	char finish_value[32];       /* 'kept' or 'removed' */
	char why[256];               /* NJ_FAILED: the reason */
	char warn[160];              /* NJ_DONE / NJ_FAILED: a remark (port left open) */
	int ok;                      /* NJ_DONE: instrumented (script ok and registered) */
};

/* Snapshot the listening sockets of pid, send SIGUSR1, start. expr is the
 * script call (node_cdp_script_call), taken over. 0, or -1 with j->why set
 * (phase NJ_FAILED; nothing was sent). */
int node_job_start(struct node_job *j, uint32_t pid, char *expr, uint64_t now);

/* Advance. Returns the phase reached. */
enum node_job_phase node_job_step(struct node_job *j, uint64_t now);

/* The caller's answer for NJ_WAIT_REG: the registration was (1) or was not
 * (0) seen. */
void node_job_registered(struct node_job *j, int yes);

/* Close and free what the job holds (not j itself). */
void node_job_free(struct node_job *j);

const char *node_job_phase_name(enum node_job_phase p);

#endif /* SONDE_NODE_INJECT_H */
