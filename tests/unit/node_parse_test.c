/*
 * node_parse_test.c - what the Node.js plugin reads, from byte vectors:
 * HTTP response heads and WebSocket frames of the inspector (split at every
 * byte, several in one buffer, fragmented, hostile lengths, garbage), its
 * JSON (/json/list, Runtime.evaluate answers, the script's answer), /proc
 * text (status, maps, net/tcp, Node's options), the SIGUSR1 decision, and
 * the ELF reader on /usr/bin/node when it is there.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node_cdp.h"
#include "node_check.h"
#include "node_elf.h"
#include "node_proc.h"
#include "node_rec.h"
#include "node_ws.h"

/* --- HTTP heads --------------------------------------------------------------------- */

static const char list_resp[] =
	"HTTP/1.0 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\n"
	"Cache-Control: no-cache\r\nContent-Length: 614\r\n\r\n";

static const char upgrade_resp[] =
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

START_TEST(http_head_whole_and_split_at_every_byte)
{
	const char *const cases[] = { list_resp, upgrade_resp };

	for (int c = 0; c < 2; c++) {
		const uint8_t *b = (const uint8_t *)cases[c];
		size_t n = strlen(cases[c]);
		struct node_http_resp r;

		for (size_t cut = 0; cut < n; cut++)
			ck_assert_int_eq(node_http_head(b, cut, &r), NODE_NEED_MORE);
		ck_assert_int_eq(node_http_head(b, n, &r), (int)n);
	}
}
END_TEST

START_TEST(http_head_fields)
{
	struct node_http_resp r;
	char buf[512];

	ck_assert_int_gt(node_http_head((const uint8_t *)list_resp, strlen(list_resp), &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(r.content_length, 614);
	ck_assert_int_eq(r.upgrade_websocket, 0);
	ck_assert_int_gt(node_http_head((const uint8_t *)upgrade_resp, strlen(upgrade_resp), &r), 0);
	ck_assert_int_eq(r.status, 101);
	ck_assert_int_eq(r.content_length, -1);
	ck_assert_int_eq(r.upgrade_websocket, 1);
	ck_assert_int_eq(r.connection_upgrade, 1);
	ck_assert_str_eq(r.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	/* bare LF, token lists, the body after the head is not consumed */
	snprintf(buf, sizeof(buf), "HTTP/1.1 101 X\nUPGRADE:  WebSocket \nConnection: keep-alive, "
				   "Upgrade\n\nBODY");
	ck_assert_int_eq(node_http_head((const uint8_t *)buf, strlen(buf), &r),
			 (int)strlen(buf) - 4);
	ck_assert_int_eq(r.upgrade_websocket, 1);
	ck_assert_int_eq(r.connection_upgrade, 1);
}
END_TEST

START_TEST(http_head_garbage)
{
	const char *const bad[] = {
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 099 Low\r\n\r\n",
		"HTTP/1.1 200OK\r\n\r\n",
		"http/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
		"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
	};
	struct node_http_resp r;
	char *big;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(node_http_head((const uint8_t *)bad[i], strlen(bad[i]), &r) == NODE_BAD,
			      "accepted: %s", bad[i]);
	/* an endless head is refused once it passes the bound, never buffered */
	big = malloc(NODE_HTTP_HEAD_MAX * 2);
	ck_assert_ptr_nonnull(big);
	memcpy(big, "HTTP/1.1 200 OK\r\n", 17);
	for (size_t i = 17; i < NODE_HTTP_HEAD_MAX * 2; i++)
		big[i] = (i % 40 == 39) ? '\n' : 'a';
	for (size_t i = 17; i < NODE_HTTP_HEAD_MAX * 2; i += 40)
		memcpy(big + i, "X-A: ", 5);
	ck_assert_int_eq(node_http_head((const uint8_t *)big, NODE_HTTP_HEAD_MAX * 2, &r), NODE_BAD);
	memset(big + 17, 'a', NODE_HTTP_HEAD_MAX * 2 - 17); /* one line, no newline */
	ck_assert_int_eq(node_http_head((const uint8_t *)big, NODE_HTTP_HEAD_MAX * 2, &r), NODE_BAD);
	ck_assert_int_eq(node_http_head((const uint8_t *)big, 100, &r), NODE_NEED_MORE);
	free(big);
}
END_TEST

/* --- WebSocket ------------------------------------------------------------------------ */

START_TEST(ws_accept_is_rfc6455s_example)
{
	char out[32];

	ck_assert_int_eq(node_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

/* A server frame (unmasked) with FIN and opcode. */
static size_t server_frame(uint8_t *out, int fin, int op, const uint8_t *p, size_t n)
{
	size_t i = 0;

	out[i++] = (uint8_t)((fin ? 0x80 : 0) | op);
	if (n < 126) {
		out[i++] = (uint8_t)n;
	} else if (n < 65536) {
		out[i++] = 126;
		out[i++] = (uint8_t)(n >> 8);
		out[i++] = (uint8_t)n;
	} else {
		out[i++] = 127;
		for (int s = 56; s >= 0; s -= 8)
			out[i++] = (uint8_t)((uint64_t)n >> s);
	}
	memcpy(out + i, p, n);
	return i + n;
}

START_TEST(ws_frames_of_every_length_class_split_at_every_byte)
{
	const size_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536, 70000 };
	uint8_t *payload = malloc(70000), *buf = malloc(70016);

	ck_assert_ptr_nonnull(payload);
	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < 70000; i++)
		payload[i] = (uint8_t)(i * 7);
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		size_t n = server_frame(buf, 1, NODE_WS_TEXT, payload, lens[k]);
		struct node_ws_frame f;
		size_t step = lens[k] > 1000 ? 997 : 1;

		for (size_t cut = 0; cut < n; cut += step)
			ck_assert_int_eq(node_ws_frame_parse(buf, cut, 1 << 20, &f), NODE_NEED_MORE);
		ck_assert_int_eq(node_ws_frame_parse(buf, n, 1 << 20, &f), (int)n);
		ck_assert_int_eq(f.fin, 1);
		ck_assert_int_eq(f.opcode, NODE_WS_TEXT);
		ck_assert_uint_eq(f.len, lens[k]);
		ck_assert(lens[k] == 0 || !memcmp(f.payload, payload, lens[k]));
	}
	free(payload);
	free(buf);
}
END_TEST

START_TEST(ws_several_frames_in_one_buffer)
{
	uint8_t buf[256];
	size_t n = 0;
	struct node_ws_frame f;
	int used;

	n += server_frame(buf + n, 1, NODE_WS_TEXT, (const uint8_t *)"{\"a\":1}", 7);
	n += server_frame(buf + n, 1, NODE_WS_PING, (const uint8_t *)"hi", 2);
	n += server_frame(buf + n, 1, NODE_WS_TEXT, (const uint8_t *)"{}", 2);
	used = node_ws_frame_parse(buf, n, 64, &f);
	ck_assert_int_eq(used, 2 + 7);
	ck_assert_int_eq(f.opcode, NODE_WS_TEXT);
	used += node_ws_frame_parse(buf + used, n - (size_t)used, 64, &f);
	ck_assert_int_eq(f.opcode, NODE_WS_PING);
	ck_assert_uint_eq(f.len, 2);
	used += node_ws_frame_parse(buf + used, n - (size_t)used, 64, &f);
	ck_assert_int_eq(used, (int)n);
	ck_assert_uint_eq(f.len, 2);
}
END_TEST

START_TEST(ws_hostile_frames)
{
	uint8_t b[16];
	struct node_ws_frame f;

	/* masked by the server */
	memcpy(b, "\x81\x81\x01\x02\x03\x04x", 7);
	ck_assert_int_eq(node_ws_frame_parse(b, 7, 64, &f), NODE_BAD);
	/* RSV bits */
	memcpy(b, "\xc1\x01x", 3);
	ck_assert_int_eq(node_ws_frame_parse(b, 3, 64, &f), NODE_BAD);
	/* unknown opcode */
	memcpy(b, "\x83\x01x", 3);
	ck_assert_int_eq(node_ws_frame_parse(b, 3, 64, &f), NODE_BAD);
	/* a control frame longer than 125, or fragmented */
	memcpy(b, "\x89\x7e\x00\x80", 4);
	ck_assert_int_eq(node_ws_frame_parse(b, 4, 1 << 20, &f), NODE_BAD);
	memcpy(b, "\x09\x00", 2);
	ck_assert_int_eq(node_ws_frame_parse(b, 2, 64, &f), NODE_BAD);
	/* longer than the caller allows: refused before any byte of it */
	memcpy(b, "\x81\x7e\x10\x00", 4);
	ck_assert_int_eq(node_ws_frame_parse(b, 4, 4095, &f), NODE_BAD);
	/* 64-bit lengths: top bit set, or beyond any sane size */
	memcpy(b, "\x81\x7f\x80\x00\x00\x00\x00\x00\x00\x01", 10);
	ck_assert_int_eq(node_ws_frame_parse(b, 10, (size_t)-1, &f), NODE_BAD);
	memcpy(b, "\x81\x7f\x00\x00\x00\x01\x00\x00\x00\x00", 10);
	ck_assert_int_eq(node_ws_frame_parse(b, 10, (size_t)-1, &f), NODE_BAD);
}
END_TEST

START_TEST(ws_client_frames_are_masked_and_round_trip)
{
	const size_t lens[] = { 0, 5, 125, 126, 300, 65535, 65536, 100000 };
	const uint8_t mask[4] = { 0x11, 0x22, 0x33, 0x44 };
	uint8_t *p = malloc(100000), *out = malloc(node_ws_frame_size(100000));

	for (size_t i = 0; i < 100000; i++)
		p[i] = (uint8_t)(i ^ (i >> 8));
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		size_t n = lens[k], sz = node_ws_frame_build(out, NODE_WS_TEXT, p, n, mask), hdr;
		uint64_t got;

		ck_assert_uint_eq(sz, node_ws_frame_size(n));
		ck_assert_uint_eq(out[0], 0x81);
		ck_assert(out[1] & 0x80);
		hdr = n < 126 ? 2 : n < 65536 ? 4 : 10;
		got = out[1] & 0x7f;
		if (hdr == 4)
			got = (uint64_t)out[2] << 8 | out[3];
		else if (hdr == 10)
			for (int i = 2, s = 56; i < 10; i++, s -= 8)
				got = (i == 2 ? 0 : got) | (uint64_t)out[i] << s;
		ck_assert_uint_eq(got, n);
		ck_assert(!memcmp(out + hdr, mask, 4));
		for (size_t i = 0; i < n; i++)
			ck_assert_uint_eq(out[hdr + 4 + i] ^ mask[i & 3], p[i]);
	}
	free(p);
	free(out);
}
END_TEST

START_TEST(ws_fragmented_message_is_assembled_within_its_bound)
{
	uint8_t store[16], buf[64];
	struct node_ws_msg m = { .buf = store, .cap = sizeof(store) };
	struct node_ws_frame f;
	size_t n;

	n = server_frame(buf, 0, NODE_WS_TEXT, (const uint8_t *)"abc", 3);
	ck_assert_int_eq(node_ws_frame_parse(buf, n, 64, &f), (int)n);
	ck_assert_int_eq(node_ws_msg_add(&m, &f), 0);
	n = server_frame(buf, 0, NODE_WS_CONT, (const uint8_t *)"def", 3);
	node_ws_frame_parse(buf, n, 64, &f);
	ck_assert_int_eq(node_ws_msg_add(&m, &f), 0);
	n = server_frame(buf, 1, NODE_WS_CONT, (const uint8_t *)"g", 1);
	node_ws_frame_parse(buf, n, 64, &f);
	ck_assert_int_eq(node_ws_msg_add(&m, &f), 1);
	ck_assert_uint_eq(m.len, 7);
	ck_assert(!memcmp(m.buf, "abcdefg", 7));
	node_ws_msg_reset(&m);
	/* a continuation with nothing to continue */
	ck_assert_int_eq(node_ws_msg_add(&m, &f), NODE_BAD);
	/* a new message inside a fragmented one */
	n = server_frame(buf, 0, NODE_WS_TEXT, (const uint8_t *)"x", 1);
	node_ws_frame_parse(buf, n, 64, &f);
	ck_assert_int_eq(node_ws_msg_add(&m, &f), 0);
	ck_assert_int_eq(node_ws_msg_add(&m, &f), NODE_BAD);
	/* longer than the buffer */
	node_ws_msg_reset(&m);
	n = server_frame(buf, 1, NODE_WS_TEXT, (const uint8_t *)"0123456789abcdefg", 17);
	node_ws_frame_parse(buf, n, 64, &f);
	ck_assert_int_eq(node_ws_msg_add(&m, &f), NODE_BAD);
	/* a control frame is not a message */
	n = server_frame(buf, 1, NODE_WS_PING, (const uint8_t *)"", 0);
	node_ws_frame_parse(buf, n, 64, &f);
	node_ws_msg_reset(&m);
	ck_assert_int_eq(node_ws_msg_add(&m, &f), NODE_BAD);
}
END_TEST

/* --- inspector JSON -------------------------------------------------------------------- */

/* What node v20 answered to GET /json/list (shortened descriptions). */
static const char json_list[] =
	"[ {\n  \"description\": \"node.js instance\",\n  \"devtoolsFrontendUrl\": "
	"\"devtools://devtools/bundled/js_app.html?experiments=true&v8only=true&ws=127.0.0.1/"
	"7ea1a2a2-df80-46f0-a4c2-3496fcd84964\",\n  \"faviconUrl\": "
	"\"https://nodejs.org/static/images/favicons/favicon.ico\",\n  \"id\": "
	"\"7ea1a2a2-df80-46f0-a4c2-3496fcd84964\",\n  \"title\": \"node[29757]\",\n  \"type\": "
	"\"node\",\n  \"url\": \"file://\",\n  \"webSocketDebuggerUrl\": "
	"\"ws://127.0.0.1/7ea1a2a2-df80-46f0-a4c2-3496fcd84964\"\n} ]\n\n";

START_TEST(cdp_ws_path_from_json_list)
{
	char path[160];

	ck_assert_int_eq(node_cdp_ws_path(json_list, strlen(json_list), path, sizeof(path)), 0);
	ck_assert_str_eq(path, "/7ea1a2a2-df80-46f0-a4c2-3496fcd84964");
	/* with a port in the URL, after a target of another type */
	{
		const char *j = "[{\"type\":\"page\",\"webSocketDebuggerUrl\":\"ws://x/1\"},"
				"{\"type\":\"node\",\"webSocketDebuggerUrl\":\"ws://127.0.0.1:9229/ab-c\"}]";

		ck_assert_int_eq(node_cdp_ws_path(j, strlen(j), path, sizeof(path)), 0);
		ck_assert_str_eq(path, "/ab-c");
	}
}
END_TEST

START_TEST(cdp_ws_path_refusals)
{
	const char *const bad[] = {
		"[]",
		"{}",
		"[{\"type\":\"node\"}]",
		"[{\"type\":\"node\",\"webSocketDebuggerUrl\":\"http://127.0.0.1/x\"}]",
		"[{\"type\":\"node\",\"webSocketDebuggerUrl\":\"ws://127.0.0.1\"}]",
		"[{\"type\":\"node\",\"webSocketDebuggerUrl\":\"ws://127.0.0.1/\"}]",
		"[{\"type\":\"node\",\"webSocketDebuggerUrl\":\"ws://127.0.0.1/a b\"}]",
		"[{\"type\":\"node\",\"webSocketDebuggerUrl\":\"ws://127.0.0.1/a\\r\\nX: y\"}]",
		"[{\"type\":\"node\",\"webSocketDebuggerUrl\":7}]",
		"[{\"type\":\"node\",\"type\":\"node\",\"webSocketDebuggerUrl\":\"ws://h/a\"}]",
		"not json",
		"[",
	};
	char path[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(node_cdp_ws_path(bad[i], strlen(bad[i]), path, sizeof(path)) == -1,
			      "accepted: %s", bad[i]);
	/* a path that does not fit */
	{
		const char *j = "[{\"type\":\"node\",\"webSocketDebuggerUrl\":\"ws://h/0123456789abcdef\"}]";

		ck_assert_int_eq(node_cdp_ws_path(j, strlen(j), path, sizeof(path)), -1);
	}
}
END_TEST

START_TEST(cdp_eval_request_is_json_with_the_expression)
{
	char *m = node_cdp_eval_request(7, "a \"quoted\"\nline");
	char value[64], err[64];

	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_nonnull(strstr(m, "\"id\":7"));
	ck_assert_ptr_nonnull(strstr(m, "\"method\":\"Runtime.evaluate\""));
	ck_assert_ptr_nonnull(strstr(m, "\"expression\":\"a \\\"quoted\\\"\\nline\""));
	ck_assert_ptr_nonnull(strstr(m, "\"includeCommandLineAPI\":true"));
	/* it is not an answer to itself */
	ck_assert_int_eq(node_cdp_eval_response(m, strlen(m), 7, value, sizeof(value), err,
						sizeof(err)), 1);
	ck_assert_str_eq(err, "the evaluation gave no string");
	free(m);
}
END_TEST

START_TEST(cdp_eval_responses)
{
	char value[64], err[128];
	const char *ok = "{\"id\":1,\"result\":{\"result\":{\"type\":\"string\",\"value\":\"{\\\"ok\\\":true}\"}}}";
	const char *exc = "{\"id\":1,\"result\":{\"result\":{\"type\":\"object\"},\"exceptionDetails\":"
			  "{\"text\":\"Uncaught\",\"exception\":{\"description\":\"TypeError: x\"}}}}";
	const char *perr = "{\"id\":1,\"error\":{\"code\":-32601,\"message\":\"no such method\"}}";
	const char *num = "{\"id\":1,\"result\":{\"result\":{\"type\":\"number\",\"value\":1}}}";
	const char *other = "{\"id\":2,\"result\":{}}";
	const char *event = "{\"method\":\"Runtime.consoleAPICalled\",\"params\":{}}";

	ck_assert_int_eq(node_cdp_eval_response(ok, strlen(ok), 1, value, sizeof(value), err,
						sizeof(err)), 1);
	ck_assert_str_eq(value, "{\"ok\":true}");
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(node_cdp_eval_response(exc, strlen(exc), 1, value, sizeof(value), err,
						sizeof(err)), 1);
	ck_assert_str_eq(err, "TypeError: x");
	ck_assert_int_eq(node_cdp_eval_response(perr, strlen(perr), 1, value, sizeof(value), err,
						sizeof(err)), 1);
	ck_assert_str_eq(err, "no such method");
	ck_assert_int_eq(node_cdp_eval_response(num, strlen(num), 1, value, sizeof(value), err,
						sizeof(err)), 1);
	ck_assert_str_ne(err, "");
	ck_assert_int_eq(node_cdp_eval_response(other, strlen(other), 1, value, sizeof(value), err,
						sizeof(err)), 0);
	ck_assert_int_eq(node_cdp_eval_response(event, strlen(event), 1, value, sizeof(value), err,
						sizeof(err)), 0);
	ck_assert_int_eq(node_cdp_eval_response("[1]", 3, 1, value, sizeof(value), err,
						sizeof(err)), -1);
	ck_assert_int_eq(node_cdp_eval_response("{", 1, 1, value, sizeof(value), err,
						sizeof(err)), -1);
}
END_TEST

START_TEST(script_results)
{
	struct node_script_result r;
	const char *ok = "{\"node\":\"20.20.2\",\"pid\":1,\"ok\":true,\"nfd\":65536,\"replaced\":true}";
	const char *no = "{\"node\":\"12.22.9\",\"pid\":1,\"ok\":false,\"why\":\"too old\"}";
	const char *nowhy = "{\"ok\":false}";

	ck_assert_int_eq(node_script_result_parse(ok, strlen(ok), &r), 0);
	ck_assert_int_eq(r.ok, 1);
	ck_assert_int_eq(r.replaced, 1);
	ck_assert_str_eq(r.node, "20.20.2");
	ck_assert_int_eq(node_script_result_parse(no, strlen(no), &r), 0);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.why, "too old");
	ck_assert_int_eq(node_script_result_parse(nowhy, strlen(nowhy), &r), 0);
	ck_assert_str_ne(r.why, "");
	ck_assert_int_eq(node_script_result_parse("{\"ok\":1}", 8, &r), -1);
	ck_assert_int_eq(node_script_result_parse("true", 4, &r), -1);
	ck_assert_int_eq(node_script_result_parse("", 0, &r), -1);
}
END_TEST

START_TEST(script_call_passes_the_nonce_in_memory_order)
{
	uint64_t nonce = 0x0807060504030201ull;
	char *e = node_cdp_script_call("(function f(a, b, c) { return a; })\n;\n", nonce, 77, 1024);

	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(e, "((function f(a, b, c) { return a; }))(\"0102030405060708\", 77, 1024)");
	free(e);
	/* the finishing expression names what it keeps */
	ck_assert_ptr_nonnull(strstr(node_cdp_finish_expr(1), "(true)"));
	ck_assert_ptr_nonnull(strstr(node_cdp_finish_expr(0), "(false)"));
	ck_assert_ptr_nonnull(strstr(node_cdp_finish_expr(0), "close()"));
}
END_TEST

/* --- /proc ----------------------------------------------------------------------------------- */

START_TEST(status_signal_masks)
{
	const char st[] = "Name:\tnode\nState:\tS (sleeping)\nSigQ:\t1/96362\n"
			  "SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n"
			  "SigBlk:\t0000000000000000\nSigIgn:\t0000000001001000\n"
			  "SigCgt:\t0000000100004602\nCapInh:\t0000000000000000\n";
	struct node_sigmasks m;

	ck_assert_int_eq(node_status_parse(st, strlen(st), &m), 0);
	ck_assert_uint_eq(m.cgt, 0x100004602ull);
	ck_assert_uint_eq(m.ign, 0x1001000ull);
	ck_assert_uint_eq(m.blk, 0);
	ck_assert_int_eq(node_status_parse(st, 60, &m), -1); /* cut before the masks */
	ck_assert_int_eq(node_status_parse("SigCgt:\tzz\nSigIgn:\t0\n", 21, &m), -1);
	ck_assert_int_eq(node_status_parse("SigCgt:\t00000000000000000\nSigIgn:\t0\n", 36, &m), -1);
}
END_TEST

static uint32_t opts_of(const char *const *argv, size_t n, const char *env)
{
	char buf[1024];
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(argv[i]) + 1;

		memcpy(buf + len, argv[i], l);
		len += l;
	}
	return node_opts_scan(buf, len, env, env ? strlen(env) + 1 : 0);
}

START_TEST(node_options)
{
	const char *plain[] = { "node", "server.js", "8080" };
	const char *insp[] = { "node", "--inspect", "server.js" };
	const char *insp_pub[] = { "node", "--inspect=0.0.0.0:9229", "server.js" };
	const char *insp_lo[] = { "node", "--inspect-brk=127.0.0.1:9230", "s.js" };
	const char *port_pub[] = { "node", "--inspect-port", "0.0.0.0:9229", "s.js" };
	const char *port_lo[] = { "node", "--inspect-port=9300", "s.js" };
	const char *after[] = { "node", "server.js", "--inspect", "--disable-sigusr1" };
	const char *req[] = { "node", "-r", "--inspect", "s.js" }; /* a module named so */
	const char *nosig[] = { "node", "--disable-sigusr1", "s.js" };
	const char *eval[] = { "node", "-e", "1", "--inspect" };
	char env[] = "PATH=/bin\0NODE_OPTIONS=--max-old-space-size=100 --inspect-port 10.0.0.1:1\0";
	char env2[] = "NODE_OPTIONS=--require x --inspect\0";

	ck_assert_uint_eq(opts_of(plain, 3, NULL), 0);
	ck_assert_uint_eq(opts_of(insp, 3, NULL), NODE_OPT_INSPECT);
	ck_assert_uint_eq(opts_of(insp_pub, 3, NULL), NODE_OPT_INSPECT | NODE_OPT_PORT_PUBLIC);
	ck_assert_uint_eq(opts_of(insp_lo, 3, NULL), NODE_OPT_INSPECT);
	ck_assert_uint_eq(opts_of(port_pub, 4, NULL), NODE_OPT_PORT_PUBLIC);
	ck_assert_uint_eq(opts_of(port_lo, 3, NULL), 0);
	ck_assert_uint_eq(opts_of(after, 4, NULL), 0);
	ck_assert_uint_eq(opts_of(req, 4, NULL), 0);
	ck_assert_uint_eq(opts_of(nosig, 3, NULL), NODE_OPT_NO_SIGUSR1);
	ck_assert_uint_eq(opts_of(eval, 4, NULL), NODE_OPT_INSPECT); /* -e takes "1"; then an option */
	ck_assert_uint_eq(node_opts_scan(NULL, 0, env, sizeof(env)), NODE_OPT_PORT_PUBLIC);
	ck_assert_uint_eq(node_opts_scan(NULL, 0, env2, sizeof(env2)), NODE_OPT_INSPECT);
}
END_TEST

START_TEST(maps_lines)
{
	const char a[] = "00400000-00b6f000 r--p 00000000 fe:00 247134                     /usr/bin/node";
	const char b[] = "7ffd1000-7ffd2000 rw-p 00000000 00:00 0 ";
	struct node_map m;

	ck_assert_int_eq(node_maps_line(a, strlen(a), &m), 0);
	ck_assert_uint_eq(m.lo, 0x400000);
	ck_assert_uint_eq(m.hi, 0xb6f000);
	ck_assert_uint_eq(m.off, 0);
	ck_assert_uint_eq(m.inode, 247134);
	ck_assert_str_eq(m.perms, "r--p");
	ck_assert_uint_eq(m.path_len, 13);
	ck_assert(!memcmp(m.path, "/usr/bin/node", 13));
	ck_assert_int_eq(node_maps_line(b, strlen(b), &m), 0);
	ck_assert_uint_eq(m.path_len, 0);
	ck_assert_int_eq(node_maps_line("00400000-003 r--p 0 fe:00 1", 27, &m), -1); /* hi < lo */
	ck_assert_int_eq(node_maps_line("zz", 2, &m), -1);
	ck_assert_int_eq(node_maps_line(a, 20, &m), -1);
}
END_TEST

START_TEST(net_tcp_lines)
{
	const char v4[] = "   0: 0100007F:240D 00000000:0000 0A 00000000:00000000 00:00000000 "
			  "00000000     0        0 2497175 1 000000002dd88ed6 100 0 0 10 0";
	const char v4any[] = "  12: 00000000:46AA 00000000:0000 0A 00000000:00000000 00:00000000 "
			     "00000000     0        0 588 1 0";
	const char v6[] = "   0: 00000000000000000000000001000000:1F90 "
			  "00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 "
			  "00000000     0        0 777 1 0";
	const char v6pub[] = "   1: 0000000000000000FFFF00000100000A:1F90 "
			     "00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 "
			     "00000000     0        0 778 1 0";
	const char hdr[] = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when";
	struct node_sock s;

	ck_assert_int_eq(node_net_line(v4, strlen(v4), &s), 0);
	ck_assert_int_eq(s.v6, 0);
	ck_assert_uint_eq(s.addr[0], 127);
	ck_assert_uint_eq(s.addr[3], 1);
	ck_assert_uint_eq(s.port, 9229);
	ck_assert_uint_eq(s.state, 0x0A);
	ck_assert_uint_eq(s.inode, 2497175);
	ck_assert(node_sock_local(&s));
	ck_assert_int_eq(node_net_line(v4any, strlen(v4any), &s), 0);
	ck_assert_uint_eq(s.port, 18090);
	ck_assert(node_sock_local(&s));
	ck_assert_int_eq(node_net_line(v6, strlen(v6), &s), 0);
	ck_assert_int_eq(s.v6, 1);
	ck_assert_uint_eq(s.addr[15], 1);
	ck_assert_uint_eq(s.port, 8080);
	ck_assert(node_sock_local(&s));
	ck_assert_int_eq(node_net_line(v6pub, strlen(v6pub), &s), 0);
	ck_assert_uint_eq(s.addr[10], 0xff);
	ck_assert_uint_eq(s.addr[12], 10);
	ck_assert(!node_sock_local(&s));
	ck_assert_int_eq(node_net_line(hdr, strlen(hdr), &s), -1);
	/* cut anywhere before the inode (the last field read): refused */
	for (size_t cut = 0; cut < (size_t)(strstr(v4, "2497175") - v4); cut++)
		ck_assert_int_eq(node_net_line(v4, cut, &s), -1);
}
END_TEST

/* --- the SIGUSR1 decision --------------------------------------------------------------------- */

START_TEST(precheck_reasons)
{
	struct node_sigmasks m = { .cgt = 1ull << 9 };
	char why[256];

	ck_assert_int_eq(node_precheck(&m, 0, why, sizeof(why)), 0);
	ck_assert_int_eq(node_precheck(&m, NODE_OPT_INSPECT, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "--inspect"));
	ck_assert_int_eq(node_precheck(&m, NODE_OPT_NO_SIGUSR1, why, sizeof(why)), -1);
	ck_assert_int_eq(node_precheck(&m, NODE_OPT_PORT_PUBLIC, why, sizeof(why)), -1);
	ck_assert_int_eq(node_precheck(&m, NODE_OPT_BAD, why, sizeof(why)), -1);
	m.cgt = 0;
	ck_assert_int_eq(node_precheck(&m, 0, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "terminate"));
	m.cgt = 1ull << 9;
	m.ign = 1ull << 9;
	ck_assert_int_eq(node_precheck(&m, 0, why, sizeof(why)), -1);
}
END_TEST

START_TEST(sigusr1_verdicts)
{
	struct node_image im = { .is_node = 1, .usr1_handler = 0xdfa590, .ntext = 1,
				 .text = { { 0xb72000, 0x25fdca0 } } };
	struct node_sig s = { .tgid = 1, .tid = 1 };
	char why[256];

	s.handler = 0;
	ck_assert_int_eq(node_sig_verdict(&s, &im, 0, why, sizeof(why)), NODE_SIG_REFUSE);
	s.handler = 1;
	ck_assert_int_eq(node_sig_verdict(&s, &im, 0, why, sizeof(why)), NODE_SIG_REFUSE);
	s.handler = 0xdfa590;
	ck_assert_int_eq(node_sig_verdict(&s, &im, 0, why, sizeof(why)), NODE_SIG_OWN_SYMBOL);
	ck_assert_int_eq(node_sig_verdict(&s, &im, 0x1000, why, sizeof(why)), NODE_SIG_REFUSE);
	s.handler = 0xdfa590 + 0x1000; /* a PIE loaded at +0x1000 */
	ck_assert_int_eq(node_sig_verdict(&s, &im, 0x1000, why, sizeof(why)), NODE_SIG_OWN_SYMBOL);
	s.handler = 0x18b68a0; /* libuv's handler: process.on('SIGUSR1') */
	s.flags = NODE_SA_RESTART;
	ck_assert_int_eq(node_sig_verdict(&s, &im, 0, why, sizeof(why)), NODE_SIG_REFUSE);
	ck_assert_ptr_nonnull(strstr(why, "itself"));
	/* without the symbol: inside Node's code and without SA_RESTART */
	im.usr1_handler = 0;
	s.flags = 0x04000000; /* SA_RESTORER only */
	s.handler = 0xdfa590;
	ck_assert_int_eq(node_sig_verdict(&s, &im, 0, why, sizeof(why)), NODE_SIG_OWN_FLAGS);
	s.flags |= NODE_SA_RESTART;
	ck_assert_int_eq(node_sig_verdict(&s, &im, 0, why, sizeof(why)), NODE_SIG_REFUSE);
	s.flags = 0;
	s.handler = 0x7f0000001000; /* a native addon's */
	ck_assert_int_eq(node_sig_verdict(&s, &im, 0, why, sizeof(why)), NODE_SIG_REFUSE);
	ck_assert_ptr_nonnull(strstr(why, "outside"));
	s.handler = 0x500; /* below the bias */
	ck_assert_int_eq(node_sig_verdict(&s, &im, 0x1000, why, sizeof(why)), NODE_SIG_REFUSE);
}
END_TEST

/* --- ELF ---------------------------------------------------------------------------------------- */

START_TEST(elf_of_node_and_not_node)
{
	struct node_image im;

	if (access("/usr/bin/node", R_OK) == 0) {
		ck_assert_int_eq(node_elf_inspect("/usr/bin/node", &im), 0);
		ck_assert_int_eq(im.is_node, 1);
		ck_assert_uint_ge(im.ntext, 1);
		if (im.major) { /* the release URL agrees with the binary's own answer */
			char ver[64] = "";
			FILE *f = popen("/usr/bin/node -p process.versions.node", "r");

			ck_assert_ptr_nonnull(f);
			ck_assert_ptr_nonnull(fgets(ver, sizeof(ver), f));
			pclose(f);
			ver[strcspn(ver, "\n")] = 0;
			ck_assert_str_eq(im.version, ver);
		}
		if (im.usr1_handler)
			ck_assert(node_image_in_text(&im, im.usr1_handler));
	}
	ck_assert_int_eq(node_elf_inspect("/bin/sh", &im), 0);
	ck_assert_int_eq(im.is_node, 0);
	ck_assert_uint_eq(im.usr1_handler, 0);
	ck_assert_int_eq(node_elf_inspect("/nonexistent/node", &im), -1);
	ck_assert_int_eq(node_elf_inspect("/proc/self/status", &im), -1);
	ck_assert_int_eq(node_elf_inspect_mem("\x7f" "ELF", 4, &im), -1);
	ck_assert_int_eq(node_elf_inspect_mem("", 0, &im), -1);
}
END_TEST

START_TEST(node_versions)
{
	static const char url[] = "x\0https://nodejs.org/download/release/v20.20.2/node-v20.20.2.tar.gz";
	const char *odd[] = { "/release/v20.20/", "/release/v.20.2/", "/release/v20.20.2.", "/release/v",
			      "/release/vabc/", "/release/v2.0./" };
	struct node_image im = { .is_node = 1 };
	char v[24], why[256];
	int major = 0;

	ck_assert_int_eq(node_version_find((const uint8_t *)url, sizeof(url) - 1, v, sizeof(v), &major), 0);
	ck_assert_str_eq(v, "20.20.2");
	ck_assert_int_eq(major, 20);
	/* a later, well-formed one after malformed ones */
	{
		const char *t = "/release/v1.2/ /release/v18.19.1/";

		ck_assert_int_eq(node_version_find((const uint8_t *)t, strlen(t), v, sizeof(v), &major), 0);
		ck_assert_str_eq(v, "18.19.1");
	}
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		ck_assert_msg(node_version_find((const uint8_t *)odd[i], strlen(odd[i]), v, sizeof(v),
						&major) == -1, "accepted %s", odd[i]);
	ck_assert_int_eq(node_version_find((const uint8_t *)url, sizeof(url) - 1, v, 4, &major), -1); /* no room */
	/* the check: known, unknown (left to the script), outside the range */
	ck_assert_int_eq(node_version_check(&im, why, sizeof(why)), 0);
	snprintf(im.version, sizeof(im.version), "20.20.2");
	im.major = 20;
	ck_assert_int_eq(node_version_check(&im, why, sizeof(why)), 0);
	snprintf(im.version, sizeof(im.version), "16.20.2");
	im.major = 16;
	ck_assert_int_eq(node_version_check(&im, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "v16.20.2"));
	im.major = 26;
	ck_assert_int_eq(node_version_check(&im, why, sizeof(why)), -1);
}
END_TEST

/* Every prefix of a real ELF file: never a crash, never Node. */
START_TEST(elf_truncated_images)
{
	size_t len = 0;
	char *img = node_read_file("/bin/true", 1 << 20, &len);
	struct node_image im;

	ck_assert_ptr_nonnull(img);
	for (size_t cut = 0; cut < len; cut += cut < 256 ? 1 : 211)
		if (node_elf_inspect_mem(img, cut, &im) == 0)
			ck_assert_int_eq(im.is_node, 0);
	free(img);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("node_parse");
	TCase *tc = tcase_create("all");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, http_head_whole_and_split_at_every_byte);
	tcase_add_test(tc, http_head_fields);
	tcase_add_test(tc, http_head_garbage);
	tcase_add_test(tc, ws_accept_is_rfc6455s_example);
	tcase_add_test(tc, ws_frames_of_every_length_class_split_at_every_byte);
	tcase_add_test(tc, ws_several_frames_in_one_buffer);
	tcase_add_test(tc, ws_hostile_frames);
	tcase_add_test(tc, ws_client_frames_are_masked_and_round_trip);
	tcase_add_test(tc, ws_fragmented_message_is_assembled_within_its_bound);
	tcase_add_test(tc, cdp_ws_path_from_json_list);
	tcase_add_test(tc, cdp_ws_path_refusals);
	tcase_add_test(tc, cdp_eval_request_is_json_with_the_expression);
	tcase_add_test(tc, cdp_eval_responses);
	tcase_add_test(tc, script_results);
	tcase_add_test(tc, script_call_passes_the_nonce_in_memory_order);
	tcase_add_test(tc, status_signal_masks);
	tcase_add_test(tc, node_options);
	tcase_add_test(tc, maps_lines);
	tcase_add_test(tc, net_tcp_lines);
	tcase_add_test(tc, precheck_reasons);
	tcase_add_test(tc, sigusr1_verdicts);
	tcase_add_test(tc, elf_of_node_and_not_node);
	tcase_add_test(tc, elf_truncated_images);
	tcase_add_test(tc, node_versions);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
