/*
 * node_cdp.h - the few messages of the inspector protocol (Chrome DevTools
 * Protocol) the plugin sends and reads, as JSON (jansson).
 */
#ifndef SONDE_NODE_CDP_H
#define SONDE_NODE_CDP_H

#include <stddef.h>
#include <stdint.h>

#define NODE_CDP_MSG_MAX (1u << 20) /* a message longer than this is refused */

/* From GET /json/list: the path of the first target of type "node" whose
 * webSocketDebuggerUrl is ws://HOST[:PORT]/PATH ("/PATH" into path).
 * 0, or -1 (no such target, malformed JSON, a path that does not fit or is
 * not made of URL path characters). */
int node_cdp_ws_path(const char *json, size_t len, char *path, size_t cap);

/* A Runtime.evaluate request, as a malloc'd JSON text (NULL on error). */
char *node_cdp_eval_request(int id, const char *expression);

/* A message read back. If it answers request id: returns 1, with the
 * evaluation's string value in value (or its error in err: an exception,
 * a protocol error, a value that is not a string). Returns 0 for any other
 * message (an event, another id), -1 for text that is not a JSON object. */
int node_cdp_eval_response(const char *msg, size_t len, int id, char *value, size_t vcap,
                           char *err, size_t ecap);

/* What node_ctx.js returned (its JSON text). */
struct node_script_result {
	int ok;
	int replaced;        /* it replaced an earlier copy (an earlier agent's) */
	char node[32];       /* process.versions.node */
	char why[200];       /* when !ok */
};

/* 0, or -1 when the text is not the script's answer. */
int node_script_result_parse(const char *text, size_t len, struct node_script_result *r);

/* The expression that runs the script: "(<script>)(nonce, agentPid, nfd)". */
char *node_cdp_script_call(const char *script, uint64_t nonce, uint32_t agent_pid, uint32_t nfd);

/* The expression that ends the session: keep (registered) or remove the
 * script's hooks, then close the inspector once this reply is sent. */
const char *node_cdp_finish_expr(int registered);

#endif /* SONDE_NODE_CDP_H */
