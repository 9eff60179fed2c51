/*
 * node_cdp.c - inspector protocol messages (Runtime.evaluate and /json/list)
 * built and read with jansson.
 *
 * The one idea: the plugin only ever needs one answer per request id and
 * one string in it; everything else in a message is ignored, and anything
 * that is not the expected shape is an error with a short reason, never a
 * guess.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "node_cdp.h"

static json_t *load(const char *text, size_t len)
{
	json_error_t e;

	if (!text || len > NODE_CDP_MSG_MAX)
		return NULL;
	return json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
}

static int path_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '/' || c == '~';
}

/* ws://HOST[:PORT]/PATH -> "/PATH" */
static int ws_url_path(const char *url, char *path, size_t cap)
{
	const char *p;
	size_t n;

	if (strncmp(url, "ws://", 5))
		return -1;
	p = strchr(url + 5, '/');
	if (!p || p == url + 5)
		return -1;
	n = strlen(p);
	if (n < 2 || n >= cap)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!path_char_ok(p[i]))
			return -1;
	memcpy(path, p, n + 1);
	return 0;
}

int node_cdp_ws_path(const char *json, size_t len, char *path, size_t cap)
{
	json_t *root = load(json, len), *t;
	size_t i;
	int rc = -1;

	if (!root)
		return -1;
	if (!json_is_array(root))
		goto out;
	json_array_foreach(root, i, t) {
		const char *type = json_string_value(json_object_get(t, "type"));
		const char *url = json_string_value(json_object_get(t, "webSocketDebuggerUrl"));

		if (!type || strcmp(type, "node") || !url)
			continue;
		rc = ws_url_path(url, path, cap);
		break;
	}
out:
	json_decref(root);
	return rc;
}

char *node_cdp_eval_request(int id, const char *expression)
{
	json_t *m = json_pack("{s:i, s:s, s:{s:s, s:b, s:b, s:b}}", "id", id, "method",
			      "Runtime.evaluate", "params", "expression", expression,
			      "includeCommandLineAPI", 1, "returnByValue", 1, "silent", 1);
	char *s;

	if (!m)
		return NULL;
	s = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	return s;
}

static void copy(char *out, size_t cap, const char *s)
{
	if (cap)
		snprintf(out, cap, "%s", s ? s : "");
}

int node_cdp_eval_response(const char *msg, size_t len, int id, char *value, size_t vcap,
			   char *err, size_t ecap)
{
	json_t *root = load(msg, len), *jid, *res, *inner, *exc;
	int rc = 0;

	copy(value, vcap, "");
	copy(err, ecap, "");
	if (!root)
		return -1;
	if (!json_is_object(root)) {
		json_decref(root);
		return -1;
	}
	jid = json_object_get(root, "id");
	if (!json_is_integer(jid) || json_integer_value(jid) != id)
		goto out;
	rc = 1;
	if ((res = json_object_get(root, "error"))) {
		copy(err, ecap, json_string_value(json_object_get(res, "message")));
		if (!err[0])
			copy(err, ecap, "protocol error");
		goto out;
	}
	res = json_object_get(root, "result");
	if ((exc = json_object_get(res, "exceptionDetails"))) {
		const char *d = json_string_value(
			json_object_get(json_object_get(exc, "exception"), "description"));

		copy(err, ecap, d ? d : json_string_value(json_object_get(exc, "text")));
		if (!err[0])
			copy(err, ecap, "exception");
		goto out;
	}
	inner = json_object_get(res, "result");
	if (!json_is_string(json_object_get(inner, "value"))) {
		copy(err, ecap, "the evaluation gave no string");
		goto out;
	}
	copy(value, vcap, json_string_value(json_object_get(inner, "value")));
out:
	json_decref(root);
	return rc;
}

int node_script_result_parse(const char *text, size_t len, struct node_script_result *r)
{
	json_t *root = load(text, len), *ok;

	memset(r, 0, sizeof(*r));
	if (!root)
		return -1;
	ok = json_object_get(root, "ok");
	if (!json_is_object(root) || !json_is_boolean(ok)) {
		json_decref(root);
		return -1;
	}
	r->ok = json_is_true(ok);
	r->replaced = json_is_true(json_object_get(root, "replaced"));
	copy(r->node, sizeof(r->node), json_string_value(json_object_get(root, "node")));
	copy(r->why, sizeof(r->why), json_string_value(json_object_get(root, "why")));
	if (!r->ok && !r->why[0])
		copy(r->why, sizeof(r->why), "the script gave no reason");
	json_decref(root);
	return 0;
}

char *node_cdp_script_call(const char *script, uint64_t nonce, uint32_t agent_pid, uint32_t nfd)
{
	const uint8_t *b = (const uint8_t *)&nonce;
	char *s = NULL, hex[17];
	size_t n = strlen(script);

	/* The nonce's bytes in memory order: the script copies them into its
	 * buffer one by one and the BPF program reads them back as a u64. */
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", b[i]);
	/* the script ends in its function expression, maybe a newline */
	while (n && (script[n - 1] == '\n' || script[n - 1] == ' ' || script[n - 1] == ';'))
		n--;
	if (asprintf(&s, "(%.*s)(\"%s\", %u, %u)", (int)n, script, hex, agent_pid, nfd) < 0)
		return NULL;
	return s;
}

const char *node_cdp_finish_expr(int registered)
{
	/* The reply to this evaluation is sent before setImmediate runs; close()
	 * then ends the session and stops the inspector's thread. */
#define FINISH(KEEP)                                                                             \
	"(function (keep) {"                                                                       \
	"  const a = globalThis[Symbol.for('sonde.node.ctx')];"                                     \
	"  if (a && !keep) a.stop('not registered');"                                              \
	"  const m = typeof process.getBuiltinModule === 'function' ?"                             \
	"    process.getBuiltinModule('inspector') : require('inspector');"                        \
	"  setImmediate(() => { try { m.close(); } catch (e) {} });"                               \
	"  return a && keep ? 'kept' : 'removed';"                                                 \
	"})(" KEEP ")"
	return registered ? FINISH("true") : FINISH("false");
#undef FINISH
}
